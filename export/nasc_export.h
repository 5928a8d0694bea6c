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

#endif /* NASC_EXPORT_H */
