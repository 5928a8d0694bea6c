/* nasc_frontend.h - reading every outside format into the IR.
 *
 * Model files: YAML cell descriptions (docs/yaml-format.md) and the textual
 * IR (.nir). Both end in a verified arch (or prim) module. Skeleton values
 * can be overridden the way `--set key=value` does on the command line.
 *
 *     nasc_ctx ctx; nasc_ctx_init(&ctx);
 *     nasc_override ov[] = {{"input", "3x32x32"}, {"channels", "36"}};
 *     nasc_module *m = NULL;
 *     if (nasc_model_load(&ctx, "models/darts-v2.yaml", ov, 2, &m) != NASC_OK)
 *         nasc_diag_print(&ctx.diag, stderr);   // file:line:col: error: ...
 *     ...
 *     nasc_module_destroy(m);
 *
 * API stability: public API, with the promise nasc_ir.h states (unchanged
 * within a 0.x minor release). The file formats it reads are described
 * in docs/ and are not covered by this promise.
 */
#ifndef NASC_FRONTEND_H
#define NASC_FRONTEND_H

#include "nasc_ir.h"

typedef struct nasc_override {
    const char *key;   /* a skeleton key: input, classes, channels, cells_per_stage, ... */
    const char *value; /* its value as it would be written in YAML */
} nasc_override;

/* Parse a YAML model, apply the overrides, build the arch module and verify
 * it. name is used in diagnostics. *out is NULL on failure. A file whose
 * sequences and mappings nest deeper than NASC_YAML_MAX_DEPTH is refused at
 * the first collection past the limit, before the rest is read. */
#define NASC_YAML_MAX_DEPTH 64
nasc_status nasc_yaml_load_string(nasc_ctx *ctx, const char *text, size_t len, const char *name,
                                  const nasc_override *ov, size_t n_ov, nasc_module **out);
nasc_status nasc_yaml_load_file(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                                size_t n_ov, nasc_module **out);

/* Any model file, by extension: .yaml/.yml (YAML), .nir (text IR, either
 * dialect; overrides apply to an arch module's skeleton), .onnx (an ONNX
 * model as a prim module, its weights dropped: see nasc_onnx_load). */
nasc_status nasc_model_load(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                            size_t n_ov, nasc_module **out);

/* Read a whole file; the result is NUL-terminated and freed with nasc_free. */
nasc_status nasc_file_read(nasc_ctx *ctx, const char *path, char **data, size_t *len);

/* Data sets (frontend/idx.c). nasc_idx_load reads an IDX image file
 * (magic 0x00000803: u8, n x rows x columns) and its IDX label file (magic
 * 0x00000801: u8, n), each plain or gzipped, into out: images (n, 1, rows,
 * columns), every label checked against classes (1..256). Errors name the
 * file; out is zeroed on failure and freed with nasc_dataset_free.
 *
 * nasc_data_load: spec "fashion-mnist" (the Debian package
 * dataset-fashion-mnist, /usr/share/datasets/fashion-mnist) or a directory
 * holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz;
 * MNIST's train-images.idx3-ubyte names work too). 10 classes. */
nasc_status nasc_idx_load(nasc_ctx *ctx, const char *images_path, const char *labels_path,
                          int classes, nasc_dataset *out);
nasc_status nasc_data_load(nasc_ctx *ctx, const char *spec, nasc_dataset *train,
                           nasc_dataset *test);

/* Text corpora (frontend/text.c). spec "fortunes": the English fortunes
 * of Debian's `fortunes` package, every file of NASC_FORTUNES_DIR whose
 * name has no '.' (the .dat indexes and .u8 links are left out), in name
 * order, concatenated (about 2.6 MB); else the path of any file, read as
 * bytes. Fewer than 2 bytes is an error naming the file. out is zeroed on
 * failure and freed with nasc_corpus_free. */
#define NASC_FORTUNES_DIR "/usr/share/games/fortunes"
nasc_status nasc_corpus_load(nasc_ctx *ctx, const char *spec, nasc_corpus *out);

/* Read a checkpoint written by nasc_params_save (docs/checkpoint.md) into a
 * new store on ctx. Every error names path and the byte offset; *out is NULL
 * on failure. */
nasc_status nasc_params_load(nasc_ctx *ctx, const char *path, nasc_param_store **out);

/* ONNX TensorProto files (frontend/tensor_pb.c): one tensor per file, as
 * ONNX test data (input_0.pb) and `nasc run` use them. The reader takes
 * data_type FLOAT with the values in float_data or in little-endian
 * raw_data, and rejects everything else, naming file and what is wrong:
 * truncated or malformed protobuf, another data type, external or
 * segmented data, more than NASC_TENSOR_PB_MAX_RANK dims, a negative dim,
 * a value count that does not match the dims. *out is zeroed on failure;
 * free it with nasc_tensor_pb_free.
 *
 *     nasc_tensor_pb t;
 *     if (nasc_tensor_pb_load(&ctx, "input_0.pb", &t) != NASC_OK)
 *         nasc_diag_print(&ctx.diag, stderr);  // input_0.pb: error: ...
 *     else
 *         use(t.data, t.numel);                  // (t.dims[0], ..., t.dims[rank-1])
 *     nasc_tensor_pb_free(&ctx, &t);
 */
#ifndef NASC_TENSOR_PB_MAX_RANK
#define NASC_TENSOR_PB_MAX_RANK 8
#endif

typedef struct nasc_tensor_pb {
    char *name;                             /* owned; "" when the file has none */
    int rank;                               /* 0..NASC_TENSOR_PB_MAX_RANK */
    int64_t dims[NASC_TENSOR_PB_MAX_RANK];  /* (dims[0], ..., dims[rank-1]) */
    int64_t numel;                          /* product of dims (1 for rank 0) */
    float *data;                            /* owned, (numel,) row-major; NULL when numel is 0 */
} nasc_tensor_pb;

/* Parse len bytes (a whole file's contents); file is used in messages. */
nasc_status nasc_tensor_pb_read(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                                nasc_tensor_pb *out);
/* Read the file at path and parse it. */
nasc_status nasc_tensor_pb_load(nasc_ctx *ctx, const char *path, nasc_tensor_pb *out);
void nasc_tensor_pb_free(nasc_ctx *ctx, nasc_tensor_pb *t);

/* ONNX import (frontend/onnx_import.c, onnx_ops.c; docs/onnx-import.md).
 * An ONNX ModelProto becomes a verified prim module and a parameter store
 * holding its initializers, named as the prim parameters (a batch norm's
 * mean and variance go to "<bn result>.mean" / ".var", where the backend
 * reads running statistics). Prim names are the ONNX names, with
 * characters other than letters, digits, '_' and '.' replaced by '_'
 * (and "_2", ... on a clash); helper values append ".<suffix>". A graph
 * input's first dim that is symbolic (dim_param, 0 or unset) becomes the
 * batch N; any other dim must be a number. Every unsupported operator,
 * attribute value or input is NASC_EINPUT naming the node (name or index)
 * and op type; malformed models (truncated protobuf, undefined names, a
 * use before its definition, wrong declared dims, non-float tensors, rank
 * above 4) are NASC_EINPUT too, never a crash.
 *
 *     nasc_module *prim; nasc_param_store *w;
 *     if (nasc_onnx_load(&ctx, "net.onnx", &prim, &w)) nasc_diag_print(&ctx.diag, stderr);
 *     nasc_net_compile(&ctx, prim, w, &opt, &net);  // weights bound by name
 *
 * Feeds (nasc test-onnx): values for graph inputs, as serialized
 * TensorProtos. A fed graph input read where a constant is needed (a
 * Conv or Gemm weight, batch-norm statistics, a Reshape shape, a Dropout
 * ratio) is that constant; where a value is needed it stays a prim input.
 */
typedef struct nasc_onnx_feed {
    const char *name;  /* a graph input; NULL: feed k is the k-th graph input that is not an initializer */
    const void *data;  /* a serialized TensorProto (an input_0.pb file's bytes) */
    size_t len;
} nasc_onnx_feed;

typedef struct nasc_onnx_import_options {
    const nasc_onnx_feed *feeds; /* (n_feeds,) */
    uint32_t n_feeds;
    const char *group;           /* cost-report group of every op (default "onnx") */
} nasc_onnx_import_options;

nasc_onnx_import_options nasc_onnx_import_options_default(void);

/* What became of a graph input or output. */
typedef struct nasc_onnx_io {
    char *name;    /* the ONNX name (owned) */
    int64_t value; /* its prim value; -1 for an input only read as a constant */
} nasc_onnx_io;

typedef struct nasc_onnx_import_info {
    nasc_onnx_io *inputs;  /* graph inputs that are not initializers, in graph order */
    uint32_t n_inputs;
    nasc_onnx_io *outputs; /* graph outputs in order (= the prim outputs) */
    uint32_t n_outputs;
} nasc_onnx_import_info;

/* Import len bytes (a .onnx file's contents); file names the model in
 * diagnostics. weights may be NULL (the initializers are then dropped). */
nasc_status nasc_onnx_import(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                             nasc_module **prim, nasc_param_store **weights);
/* The same with options (NULL: the defaults) and, when info is not NULL,
 * the graph inputs and outputs (free with nasc_onnx_import_info_free). */
nasc_status nasc_onnx_import_ex(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                                const nasc_onnx_import_options *o, nasc_module **prim,
                                nasc_param_store **weights, nasc_onnx_import_info *info);
void nasc_onnx_import_info_free(nasc_ctx *ctx, nasc_onnx_import_info *info);
/* Read the file at path and import it. */
nasc_status nasc_onnx_load(nasc_ctx *ctx, const char *path, nasc_module **prim,
                           nasc_param_store **weights);

#endif /* NASC_FRONTEND_H */
