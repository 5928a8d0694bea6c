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

#endif /* NASC_EXPORT_H */
