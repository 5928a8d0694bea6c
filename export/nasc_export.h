/* nasc_export.h - writing the IR into outside formats.
 *
 * The export layer turns a verified module into something another program
 * reads. Today that is graphviz DOT (pictures of cells and of the lowered
 * net); ONNX export will join it here. Every writer appends to a nasc_buf,
 * so the caller decides where the bytes go (a file, stdout, a test string),
 * and every allocation comes from the module's context.
 *
 *  - nasc_dot_arch draws an arch module: a small note with the skeleton,
 *    then one cluster per cell: its inputs as boxes, one node per cell node
 *    (name, op and any attributes), an edge per operand, and an output node
 *    that shows the cell's output rule, fed by the values it combines (the
 *    loose ends when the rule names none).
 *  - nasc_dot_prim draws a prim module: one cluster per cost group (stem,
 *    cell0, ..., head), ops labelled with their name, op, attributes and
 *    result type, an edge per non-parameter operand. Parameters are not
 *    drawn (they would double the picture); a group's label counts them.
 *
 * Both return NASC_ENOMEM when the buffer could not grow, NASC_EINPUT when
 * the module is of the other dialect, and NASC_OK otherwise. The output is
 * valid input for `dot` (all labels are escaped).
 *
 * Worked example (picture of a model's cells as SVG):
 *
 *     nasc_ctx ctx; nasc_ctx_init(&ctx);
 *     nasc_module *m = NULL;
 *     if (nasc_model_load(&ctx, "models/darts-v2.yaml", NULL, 0, &m)) {
 *         nasc_diag_print(&ctx.diag, stderr);
 *         return 1;
 *     }
 *     nasc_buf b; nasc_buf_init(&b, &ctx);
 *     if (nasc_dot_arch(m, &b) == NASC_OK) {
 *         FILE *f = fopen("cells.dot", "w");
 *         fwrite(b.data, 1, b.len, f);      // then: dot -Tsvg cells.dot
 *         fclose(f);
 *     }
 *     nasc_buf_free(&b);
 *     nasc_module_destroy(m);
 *
 * API stability: public API, with the promise nasc_ir.h states (unchanged
 * within a 0.x minor release). The meaning of what the writers produce is
 * covered; their exact bytes (node and tensor order, helper names, DOT and
 * SVG layout) are not and may change in any release.
 */
#ifndef NASC_EXPORT_H
#define NASC_EXPORT_H

#include "nasc_ir.h"

/* Graphviz digraph of an arch module (cells and skeleton), appended to out. */
nasc_status nasc_dot_arch(const nasc_module *arch, nasc_buf *out);
/* Graphviz digraph of a prim module (ops clustered by cost group), appended to out. */
nasc_status nasc_dot_prim(const nasc_module *prim, nasc_buf *out);

/* Write a parameter store to path in the checkpoint format
 * (docs/checkpoint.md), atomically: the bytes go to "<path>.tmp", which is
 * fsynced and renamed over path, and then the directory is fsynced. A crash
 * leaves the old file or the new one. I/O errors are NASC_EINPUT naming the
 * file and the failing call. */
nasc_status nasc_params_save(const nasc_param_store *s, const char *path);

/* ---- SVG line charts (export/svg.c) ----
 *
 * Training curves (loss and accuracy per epoch or step) and search progress
 * (reward per trial, running best) as a standalone SVG 1.1 document: nice
 * 1/2/5 x 10^k ticks (4 to 8 per axis, the axis widened to whole steps), a
 * title, axis labels, a legend, and a colour-blind-safe palette (series past
 * the seventh reuse it with dashes or hollow markers). A point whose x or y
 * is NaN or infinite (or beyond 1e300) is not drawn and breaks its line; a
 * lone point between breaks is a dot. A series with more than
 * NASC_PLOT_MAX_POINTS usable points is thinned deterministically: 500
 * buckets of consecutive points each keep their first, lowest, highest and
 * last point, so the envelope and the extremes survive. A point range is
 * padded (+-10%, or +-1 around 0); no points at all gives 0..1.
 *
 *     double ep[3] = {1, 2, 3}, loss[3] = {2.3, 1.1, 0.7}, acc[3] = {.4, .7, .8};
 *     nasc_plot_series s[2] = {{"loss", ep, loss, 3, 0, false},
 *                              {"accuracy", ep, acc, 3, 1, false}};
 *     nasc_plot p = {"training", "epoch", "loss", "accuracy", s, 2, 0, 0};
 *     nasc_buf b; nasc_buf_init(&b, &ctx);
 *     if (nasc_svg_plot(&p, &b) == NASC_OK) fwrite(b.data, 1, b.len, f);
 *     nasc_buf_free(&b);
 */
#define NASC_PLOT_MAX_POINTS 2000 /* most points drawn per series */

typedef struct nasc_plot_series {
    const char *label;    /* legend text; NULL: "series <i+1>" */
    const double *x, *y;  /* (n,) each; x NULL: 0, 1, ..., n-1 */
    int n;                /* points; 0 draws nothing but the legend entry */
    int axis;             /* 0: left y axis, 1: right (needs nasc_plot.y2label) */
    bool points;          /* true: a marker per point, no line */
} nasc_plot_series;

typedef struct nasc_plot {
    const char *title, *xlabel, *ylabel; /* NULL: left out */
    const char *y2label;                 /* NULL: no right axis */
    const nasc_plot_series *series;      /* (n_series,) drawn in this order */
    int n_series;                        /* 0..100000 */
    int width, height; /* px; 0: 720 x 420; else 200..16384 x 150..16384. The
                        * picture grows when labels or the legend need room. */
} nasc_plot;

/* Append the chart as a whole SVG document to out. NASC_EINPUT (message in
 * out->ctx) for a NULL plot, n < 0, missing y, a bad axis or size, nothing
 * appended then; NASC_ENOMEM when the buffer could not grow. */
nasc_status nasc_svg_plot(const nasc_plot *p, nasc_buf *out);

/* ---- ONNX (export/onnx.c, export/onnx_io.c) ----
 *
 * nasc_onnx_export writes a prim module and its weights as one ONNX
 * ModelProto (protobuf, default domain, opset 13..17; docs/onnx.md has the
 * op mapping). Node and tensor names are the prim value names: a node is
 * named after its result, an initializer after its parameter; helper
 * tensors append a suffix (".mean", ".var", ".b", ".pads", ...). Input and
 * output dim 0 is the symbolic "N" (any batch). Every op result that is not
 * a graph output gets a value_info with its static shape. Batch-norm
 * running statistics are the store's "<bn result>.mean" / ".var" tensors,
 * mean 0 and variance 1 when missing (what the backend uses). With fold_bn a
 * batch norm whose input is a conv used by nothing else is folded into that
 * conv (W' = W * s, b = shift - mean * s, s = scale / sqrt(var + eps)); the
 * Conv node then takes the batch norm's name and result.
 *
 * Errors (NASC_EINPUT, naming the module's source): weights NULL, an opset
 * outside 13..17, an arch module, a parameter missing from the weights or of
 * other dims, a prim op without an ONNX mapping (naming op and value), a
 * duplicate or NULL metadata key. NASC_ENOMEM when out of memory. Nothing is
 * appended to out on failure. Every allocation comes from the module's
 * context and is freed before returning.
 *
 *     nasc_onnx_meta meta[] = {{"nasc.hash", "arch:0123456789abcdef"}};
 *     nasc_onnx_options o = nasc_onnx_options_default();
 *     o.fold_bn = true;
 *     o.meta = meta;
 *     o.n_meta = 1;
 *     nasc_buf b; nasc_buf_init(&b, &ctx);
 *     if (nasc_onnx_export(prim, store, &o, &b) == NASC_OK)
 *         nasc_file_write_atomic(&ctx, "net.onnx", b.data, b.len);
 *     nasc_buf_free(&b);
 */
typedef struct nasc_onnx_meta {
    const char *key;   /* metadata_props key, distinct within the model */
    const char *value; /* any UTF-8 text */
} nasc_onnx_meta;

typedef struct nasc_onnx_options {
    int opset;                  /* ONNX opset of the default domain, 13..17 (default 13) */
    bool fold_bn;               /* fold batch norm into the conv before it (default off) */
    const nasc_onnx_meta *meta; /* (n_meta,) ModelProto.metadata_props, in this order */
    size_t n_meta;
    const char *doc;            /* ModelProto.doc_string; NULL: "nasc <version>: <params>
                                 * parameters, <macs> multiply-adds per image" */
    const char *graph_name;     /* GraphProto.name; NULL: the source file's base name
                                 * without extension, or "nasc" */
} nasc_onnx_options;

nasc_onnx_options nasc_onnx_options_default(void);

/* Append the ModelProto of prim (verified first) with its parameters from
 * weights to out. */
nasc_status nasc_onnx_export(const nasc_module *prim, const nasc_param_store *weights,
                             const nasc_onnx_options *o, nasc_buf *out);

/* The most dims a TensorProto file may have here (the net's tensors have at
 * most NASC_MAX_RANK). */
#ifndef NASC_TENSOR_PB_MAX_RANK
#define NASC_TENSOR_PB_MAX_RANK 8
#endif

/* Append one ONNX TensorProto (data_type FLOAT, dims, name, the values as
 * little-endian raw_data): the format of ONNX test data (input_0.pb) that
 * onnx.numpy_helper and ONNX Runtime tools read. data holds the product of
 * dims floats (row-major); rank 0..NASC_TENSOR_PB_MAX_RANK, dims >= 0; name
 * may be NULL. NASC_EINPUT for a bad shape, NASC_ENOMEM (out->oom). */
nasc_status nasc_tensor_pb_write(const char *name, int rank, const int64_t *dims, const float *data,
                                 nasc_buf *out);

/* Write len bytes to path atomically: "<path>.tmp" is written, fsynced and
 * renamed over path, then the directory is fsynced. I/O errors are
 * NASC_EINPUT naming the file and the failing call; the temporary file is
 * removed then. */
nasc_status nasc_file_write_atomic(nasc_ctx *ctx, const char *path, const void *data, size_t len);

/* ---- YAML model files (export/yaml_write.c) ----
 *
 * nasc_yaml_write appends a verified arch module as a YAML model file
 * (docs/yaml-format.md) that nasc_yaml_load_string reads back to a module
 * with the same nasc_arch_hash and the same nasc_text_print: every skeleton
 * value written out, cells in module order, nodes in node order, explicit
 * output rules. Cells that are exactly blocks (b<i>a, b<i>b, b<i>) use the
 * `blocks` form, others the general `nodes` form. NASC_EINPUT (nothing
 * appended) for a prim module, a module without a skeleton, names the YAML
 * reader rejects, or a recurrent net whose input is not a vector;
 * NASC_ENOMEM when out of memory.
 *
 *     nasc_buf b; nasc_buf_init(&b, &ctx);
 *     if (nasc_yaml_write(arch, &b) == NASC_OK)
 *         nasc_file_write_atomic(&ctx, "net.yaml", b.data, b.len);
 *     nasc_buf_free(&b);
 */
nasc_status nasc_yaml_write(const nasc_module *arch, nasc_buf *out);

#endif /* NASC_EXPORT_H */
