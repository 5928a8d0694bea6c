/* yaml_write.c - an arch module as a YAML model file (docs/yaml-format.md).
 *
 * The file is written so that nasc_yaml_load_string builds the same module
 * again: every skeleton value is spelt out (no defaults are relied on),
 * cells come in module order, nodes in node order (the loader keeps an
 * order that already has operands first), and every output rule is
 * explicit. A normal or reduction cell whose nodes are exactly the
 * expansion of blocks (b<i>a, b<i>b, b<i> = add/concat of the two) is
 * written in the compact `blocks` form; any other cell as `nodes`.
 *
 * What YAML cannot say is refused with NASC_EINPUT before anything is
 * appended: names the YAML reader would reject (node names longer than 128
 * characters or shadowing an input, cell names with other characters) and
 * a recurrent net whose input is not a vector.
 */
#include <stdio.h>
#include <string.h>

#include "nasc_export.h"

#define YAML_NAME_MAX 128

static bool yaml_node_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > YAML_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9')) return false;
    }
    return true;
}

static bool yaml_cell_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > YAML_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

static const char *value_name(const nasc_module *m, const nasc_cell *c, uint32_t v) {
    return nasc_cell_value_name(m, c, v);
}

/* Names and shapes the YAML reader accepts; the first problem as NASC_EINPUT. */
static nasc_status check_cell(const nasc_module *m, const nasc_cell *c) {
    const char *cn = nasc_str(m, c->name);
    if (!yaml_cell_name_ok(cn))
        return nasc_error(m->ctx, NASC_EINPUT, m->source, c->loc,
                          "cell name '%.64s' cannot be written in YAML (letters, digits, _ and ., "
                          "at most %d characters)",
                          cn, YAML_NAME_MAX);
    /* The reader keeps x, h and c free in every recurrent cell. */
    uint32_t n_shadow = c->kind == NASC_CELL_RECURRENT ? 3 : c->n_inputs;
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        const char *nn = nasc_str(m, nd->name);
        if (!yaml_node_name_ok(nn))
            return nasc_error(m->ctx, NASC_EINPUT, m->source, nd->loc,
                              "node name '%.64s' of cell '%s' cannot be written in YAML (a letter "
                              "or _, then letters, digits or _, at most %d characters)",
                              nn, cn, YAML_NAME_MAX);
        for (uint32_t i = 0; i < n_shadow; i++)
            if (strcmp(nn, nasc_cell_input_name(c->kind, i)) == 0)
                return nasc_error(m->ctx, NASC_EINPUT, m->source, nd->loc,
                                  "node '%s' of cell '%s' has the name of an input of a %s cell, "
                                  "which YAML does not allow",
                                  nn, cn, nasc_cell_kind_name(c->kind));
        if (nd->n_args == 0)
            return nasc_error(m->ctx, NASC_EINPUT, m->source, nd->loc,
                              "node '%s' of cell '%s' has no inputs", nn, cn);
    }
    return NASC_OK;
}

/* The cell is exactly blocks b0..b(n-1), in order. */
static bool is_blocks(const nasc_module *m, const nasc_cell *c) {
    if (c->kind != NASC_CELL_NORMAL && c->kind != NASC_CELL_REDUCTION) return false;
    if (c->n_nodes == 0 || c->n_nodes % 3 != 0) return false;
    for (uint32_t b = 0; b < c->n_nodes / 3; b++) {
        char want[3][24];
        snprintf(want[0], sizeof want[0], "b%ua", b);
        snprintf(want[1], sizeof want[1], "b%ub", b);
        snprintf(want[2], sizeof want[2], "b%u", b);
        for (uint32_t k = 0; k < 3; k++) {
            const nasc_node *nd = &m->nodes[c->first_node + 3 * b + k];
            if (strcmp(nasc_str(m, nd->name), want[k]) != 0) return false;
            if (nd->attrs.kh || nd->attrs.kw || nd->attrs.filters || nd->attrs.stride || nd->attrs.dh || nd->attrs.dw ||
                nd->attrs.groups)
                return false;
            if (k < 2 && (nd->n_args != 1 || nasc_arch_op_info_get(nd->op)->arity != 1))
                return false;
        }
        const nasc_node *comb = &m->nodes[c->first_node + 3 * b + 2];
        uint32_t va = c->n_inputs + 3 * b, vb = va + 1;
        if ((comb->op != NASC_OP_ADD && comb->op != NASC_OP_CONCAT) || comb->n_args != 2 ||
            m->args[comb->first_arg] != va || m->args[comb->first_arg + 1] != vb)
            return false;
    }
    return true;
}

static void write_values(nasc_buf *b, const nasc_module *m, const nasc_cell *c, uint32_t first,
                         uint32_t n) {
    nasc_buf_append(b, "[", 1);
    for (uint32_t i = 0; i < n; i++)
        nasc_buf_printf(b, "%s%s", i ? ", " : "", value_name(m, c, m->args[first + i]));
    nasc_buf_append(b, "]", 1);
}

static void write_cell(nasc_buf *b, const nasc_module *m, const nasc_cell *c) {
    nasc_buf_printf(b, "  %s:\n    kind: %s\n", nasc_str(m, c->name), nasc_cell_kind_name(c->kind));
    if (c->kind == NASC_CELL_RECURRENT)
        nasc_buf_printf(b, "    inputs: %s\n", c->n_inputs == 3 ? "[x, h, c]" : "[x, h]");
    if (is_blocks(m, c)) {
        nasc_buf_printf(b, "    blocks:\n");
        for (uint32_t k = 0; k < c->n_nodes; k += 3) {
            const nasc_node *na = &m->nodes[c->first_node + k];
            const nasc_node *nb = na + 1, *comb = na + 2;
            nasc_buf_printf(b, "      - [%s, %s, %s, %s, %s]\n",
                            value_name(m, c, m->args[na->first_arg]),
                            nasc_arch_op_info_get(na->op)->name,
                            value_name(m, c, m->args[nb->first_arg]),
                            nasc_arch_op_info_get(nb->op)->name,
                            nasc_arch_op_info_get(comb->op)->name);
        }
    } else if (c->n_nodes) {
        nasc_buf_printf(b, "    nodes:\n");
        for (uint32_t j = 0; j < c->n_nodes; j++) {
            const nasc_node *nd = &m->nodes[c->first_node + j];
            const nasc_node_attrs *a = &nd->attrs;
            nasc_buf_printf(b, "      - {name: %s, op: %s, in: ", nasc_str(m, nd->name),
                            nasc_arch_op_info_get(nd->op)->name);
            write_values(b, m, c, nd->first_arg, nd->n_args);
            if (a->kh || a->kw) nasc_buf_printf(b, ", kernel: %dx%d", a->kh, a->kw);
            if (a->filters) nasc_buf_printf(b, ", filters: %d", a->filters);
            if (a->stride) nasc_buf_printf(b, ", stride: %d", a->stride);
            if (a->dh || a->dw) nasc_buf_printf(b, ", dilation: %dx%d", a->dh, a->dw);
            if (a->groups) nasc_buf_printf(b, ", groups: %d", a->groups);
            nasc_buf_append(b, "}\n", 2);
        }
    }
    if (c->n_outs) {
        nasc_buf_printf(b, "    output: {rule: %s, from: ", nasc_out_rule_name(c->out_rule));
        write_values(b, m, c, c->first_out, c->n_outs);
        nasc_buf_append(b, "}\n", 2);
    } else {
        nasc_buf_printf(b, "    output: %s\n", nasc_out_rule_name(c->out_rule));
    }
}

static nasc_status cell_key(const nasc_module *m, nasc_buf *b, const char *key, int ci) {
    if (ci < 0) return NASC_OK;
    if ((uint32_t)ci >= m->n_cells)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, m->skel.loc,
                          "the skeleton's %s cell %d does not exist", key, ci);
    nasc_buf_printf(b, "%s: %s\n", key, nasc_str(m, m->cells[ci].name));
    return NASC_OK;
}

nasc_status nasc_yaml_write(const nasc_module *arch, nasc_buf *out) {
    nasc_ctx *ctx = arch->ctx;
    if (arch->dialect != NASC_DIALECT_ARCH)
        return nasc_error(ctx, NASC_EINPUT, arch->source, NASC_NOLOC,
                          "YAML model files hold arch modules; this is a prim module");
    if (!arch->has_skeleton)
        return nasc_error(ctx, NASC_EINPUT, arch->source, NASC_NOLOC,
                          "the module has no skeleton, which a YAML model file needs");
    const nasc_skeleton *sk = &arch->skel;
    for (uint32_t i = 0; i < arch->n_cells; i++) {
        nasc_status st = check_cell(arch, &arch->cells[i]);
        if (st) return st;
    }
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    nasc_buf_printf(&b, "kind: %s\n", nasc_net_kind_name(sk->kind));
    if (sk->kind == NASC_NET_RECURRENT) {
        if (sk->in_h != 1 || sk->in_w != 1) {
            nasc_buf_free(&b);
            return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                              "a recurrent net's input is a vector in YAML, not %dx%dx%d",
                              sk->in_c, sk->in_h, sk->in_w);
        }
        nasc_buf_printf(&b, "input: %d\n", sk->in_c);
    } else {
        nasc_buf_printf(&b, "input: %dx%dx%d\n", sk->in_c, sk->in_h, sk->in_w);
    }
    nasc_buf_printf(&b,
                    "classes: %d\nchannels: %d\ncells_per_stage: %d\nstages: %d\n"
                    "stem_multiplier: %d\n",
                    sk->classes, sk->channels, sk->cells_per_stage, sk->stages,
                    sk->stem_multiplier);
    nasc_status st = NASC_OK;
    switch (sk->kind) {
    case NASC_NET_CELLS:
        st = cell_key(arch, &b, "normal", sk->normal_cell);
        if (!st) st = cell_key(arch, &b, "reduction", sk->reduction_cell);
        break;
    case NASC_NET_MACRO: st = cell_key(arch, &b, "body", sk->normal_cell); break;
    case NASC_NET_RECURRENT: st = cell_key(arch, &b, "cell", sk->normal_cell); break;
    }
    if (!st) {
        nasc_buf_printf(&b, "cells:\n");
        for (uint32_t i = 0; i < arch->n_cells; i++) write_cell(&b, arch, &arch->cells[i]);
    }
    if (!st && b.oom) st = NASC_ENOMEM;
    if (!st) {
        nasc_buf_append(out, b.data, b.len);
        if (out->oom) st = NASC_ENOMEM;
    }
    nasc_buf_free(&b);
    return st;
}
