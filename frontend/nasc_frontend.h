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
 */
#ifndef NASC_FRONTEND_H
#define NASC_FRONTEND_H

#include "nasc_ir.h"

typedef struct nasc_override {
    const char *key;   /* a skeleton key: input, classes, channels, cells_per_stage, ... */
    const char *value; /* its value as it would be written in YAML */
} nasc_override;

/* Parse a YAML model, apply the overrides, build the arch module and verify
 * it. name is used in diagnostics. *out is NULL on failure. */
nasc_status nasc_yaml_load_string(nasc_ctx *ctx, const char *text, size_t len, const char *name,
                                  const nasc_override *ov, size_t n_ov, nasc_module **out);
nasc_status nasc_yaml_load_file(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                                size_t n_ov, nasc_module **out);

/* Any model file, by extension: .yaml/.yml (YAML), .nir (text IR, either
 * dialect; overrides apply to an arch module's skeleton). */
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

/* Read a checkpoint written by nasc_params_save (docs/checkpoint.md) into a
 * new store on ctx. Every error names path and the byte offset; *out is NULL
 * on failure. */
nasc_status nasc_params_load(nasc_ctx *ctx, const char *path, nasc_param_store **out);

#endif /* NASC_FRONTEND_H */
