/* text_print.c - the printer of the textual IR (docs/text-ir.md).
 *
 * The printer writes exactly one spelling for every module, so that
 * print(parse(print(m))) == print(m). Names that the parser could not read
 * back are refused (NASC_EINTERNAL) rather than printed.
 */
#include <string.h>

#include "text_internal.h"

typedef struct printer {
    const nasc_module *m;
    nasc_buf *out;
} printer;

static bool name_ok(const char *s) {
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!nasc_text_name_char((unsigned char)*s)) return false;
    return true;
}

static bool group_ok(const char *s) {
    for (; *s; s++)
        if (!nasc_text_group_char((unsigned char)*s)) return false;
    return true;
}

static nasc_status bad_name(const printer *pr, const char *what, const char *s) {
    return nasc_error(pr->m->ctx, NASC_EINTERNAL, pr->m->source, NASC_NOLOC,
                      "%s name '%.64s' cannot be written in the text IR", what, s ? s : "");
}

/* ---------------------------------------------------------------- arch */

static nasc_status print_skeleton(printer *pr) {
    const nasc_module *m = pr->m;
    nasc_buf *b = pr->out;
    nasc_buf_append(b, "arch {\n", 7);
    if (m->has_skeleton) {
        const nasc_skeleton *sk = &m->skel;
        nasc_buf_printf(b, "  kind %s\n", nasc_net_kind_name(sk->kind));
        if (sk->kind == NASC_NET_RECURRENT && sk->in_h == 1 && sk->in_w == 1)
            nasc_buf_printf(b, "  input %d\n", sk->in_c);
        else
            nasc_buf_printf(b, "  input %dx%dx%d\n", sk->in_c, sk->in_h, sk->in_w);
        nasc_buf_printf(b, "  classes %d\n", sk->classes);
        nasc_buf_printf(b, "  channels %d\n", sk->channels);
        nasc_buf_printf(b, "  cells_per_stage %d\n", sk->cells_per_stage);
        nasc_buf_printf(b, "  stages %d\n", sk->stages);
        nasc_buf_printf(b, "  stem_multiplier %d\n", sk->stem_multiplier);
        const int refs[2] = {sk->normal_cell, sk->reduction_cell};
        const char *keys[2] = {"normal", "reduction"};
        for (int i = 0; i < 2; i++) {
            if (refs[i] < 0) continue;
            if ((uint32_t)refs[i] >= m->n_cells)
                return nasc_error(m->ctx, NASC_EINTERNAL, m->source, sk->loc,
                                  "skeleton key '%s' names cell %d, which does not exist",
                                  keys[i], refs[i]);
            const char *cn = nasc_str(m, m->cells[refs[i]].name);
            if (!name_ok(cn)) return bad_name(pr, "cell", cn);
            nasc_buf_printf(b, "  %s @%s\n", keys[i], cn);
        }
    }
    nasc_buf_append(b, "}\n", 2);
    return NASC_OK;
}

/* The name of cell-local value v, or NULL when v is out of range. */
static const char *value_name(const nasc_module *m, const nasc_cell *c, uint32_t v) {
    if (v < c->n_inputs) return nasc_cell_input_name(c->kind, v);
    uint32_t k = v - c->n_inputs;
    if (k >= c->n_nodes) return NULL;
    return nasc_str(m, m->nodes[c->first_node + k].name);
}

static nasc_status print_values(printer *pr, const nasc_cell *c, uint32_t first, uint32_t n) {
    const nasc_module *m = pr->m;
    for (uint32_t i = 0; i < n; i++) {
        if ((size_t)first + i >= m->n_args)
            return nasc_error(m->ctx, NASC_EINTERNAL, m->source, c->loc,
                              "operand list past the end of the module's argument array");
        const char *vn = value_name(m, c, m->args[first + i]);
        if (!vn)
            return nasc_error(m->ctx, NASC_EINTERNAL, m->source, c->loc,
                              "operand %u is not a value of cell '%s'", m->args[first + i],
                              nasc_str(m, c->name));
        if (!name_ok(vn)) return bad_name(pr, "value", vn);
        nasc_buf_printf(pr->out, "%s%%%s", i ? ", " : " ", vn);
    }
    return NASC_OK;
}

static nasc_status print_cell(printer *pr, const nasc_cell *c) {
    const nasc_module *m = pr->m;
    nasc_buf *b = pr->out;
    const char *cn = nasc_str(m, c->name);
    if (!name_ok(cn)) return bad_name(pr, "cell", cn);
    if ((size_t)c->first_node + c->n_nodes > m->n_nodes || c->n_inputs > NASC_MAX_CELL_INPUTS)
        return nasc_error(m->ctx, NASC_EINTERNAL, m->source, c->loc, "cell '%s' is malformed",
                          cn);
    nasc_buf_printf(b, "cell @%s %s (", cn, nasc_cell_kind_name(c->kind));
    for (uint32_t i = 0; i < c->n_inputs; i++) {
        const char *in = nasc_cell_input_name(c->kind, i);
        if (!name_ok(in)) return bad_name(pr, "input", in);
        nasc_buf_printf(b, "%s%%%s", i ? ", " : "", in);
    }
    nasc_buf_append(b, ") {\n", 4);
    for (uint32_t k = 0; k < c->n_nodes; k++) {
        const nasc_node *n = &m->nodes[c->first_node + k];
        const char *nn = nasc_str(m, n->name);
        if (!name_ok(nn)) return bad_name(pr, "value", nn);
        const nasc_arch_op_info *info =
            (unsigned)n->op < NASC_OP_COUNT ? nasc_arch_op_info_get(n->op) : NULL;
        if (!info)
            return nasc_error(m->ctx, NASC_EINTERNAL, m->source, n->loc, "node '%s' has op %d",
                              nn, (int)n->op);
        nasc_buf_printf(b, "  %%%s = %s", nn, info->name);
        nasc_status st = print_values(pr, c, n->first_arg, n->n_args);
        if (st) return st;
        const nasc_node_attrs *a = &n->attrs;
        if (a->kh || a->kw || a->filters || a->stride || a->dh || a->dw || a->groups) {
            const char *sep = " {";
            if (a->kh || a->kw) {
                nasc_buf_printf(b, "%skernel=%dx%d", sep, a->kh, a->kw);
                sep = ", ";
            }
            if (a->filters) {
                nasc_buf_printf(b, "%sfilters=%d", sep, a->filters);
                sep = ", ";
            }
            if (a->stride) {
                nasc_buf_printf(b, "%sstride=%d", sep, a->stride);
                sep = ", ";
            }
            if (a->dh || a->dw) {
                nasc_buf_printf(b, "%sdilation=%dx%d", sep, a->dh, a->dw);
                sep = ", ";
            }
            if (a->groups) nasc_buf_printf(b, "%sgroups=%d", sep, a->groups);
            nasc_buf_append(b, "}", 1);
        }
        nasc_buf_append(b, "\n", 1);
    }
    nasc_buf_printf(b, "  out %s", nasc_out_rule_name(c->out_rule));
    nasc_status st = print_values(pr, c, c->first_out, c->n_outs);
    if (st) return st;
    nasc_buf_append(b, "\n}\n", 3);
    return NASC_OK;
}

static nasc_status print_arch(printer *pr) {
    nasc_status st = print_skeleton(pr);
    for (uint32_t i = 0; !st && i < pr->m->n_cells; i++) {
        nasc_buf_append(pr->out, "\n", 1);
        st = print_cell(pr, &pr->m->cells[i]);
    }
    return st;
}

/* ---------------------------------------------------------------- prim */

static nasc_status print_type(printer *pr, const nasc_type *t) {
    if (t->dtype != NASC_F32 || t->rank < 0 || t->rank > NASC_MAX_RANK)
        return nasc_error(pr->m->ctx, NASC_EINTERNAL, pr->m->source, NASC_NOLOC,
                          "a value has a type the text IR cannot write");
    nasc_buf_append(pr->out, "f32[", 4);
    for (int i = 0; i < t->rank; i++) {
        if (i) nasc_buf_append(pr->out, ",", 1);
        if (t->dims[i] == NASC_BATCH)
            nasc_buf_append(pr->out, "N", 1);
        else
            nasc_buf_printf(pr->out, "%lld", (long long)t->dims[i]);
    }
    nasc_buf_append(pr->out, "]", 1);
    return NASC_OK;
}

static const nasc_value *value_of(const printer *pr, uint32_t id) {
    return id < pr->m->n_values ? &pr->m->values[id] : NULL;
}

static nasc_status print_value_ref(printer *pr, uint32_t id, nasc_loc loc) {
    const nasc_value *v = value_of(pr, id);
    if (!v)
        return nasc_error(pr->m->ctx, NASC_EINTERNAL, pr->m->source, loc,
                          "value %u does not exist", id);
    const char *vn = nasc_str(pr->m, v->name);
    if (!name_ok(vn)) return bad_name(pr, "value", vn);
    nasc_buf_printf(pr->out, "%%%s", vn);
    return NASC_OK;
}

/* The attributes the text shows: every one the op carries, and the
 * optional ones (NASC_PATTR_OPT) only when they are not neutral. */
static unsigned shown_attrs(const nasc_prim_attrs *a, unsigned attrs) {
    unsigned shown = attrs & 0xffffu, opt = attrs >> 16;
    if ((opt & NASC_PATTR_DILATION) && (a->dh != 1 || a->dw != 1)) shown |= NASC_PATTR_DILATION;
    if ((opt & NASC_PATTR_TRANS) && (a->trans_a || a->trans_b)) shown |= NASC_PATTR_TRANS;
    return shown;
}

static void print_prim_attrs(printer *pr, const nasc_prim *p, unsigned attrs) {
    nasc_buf *b = pr->out;
    const nasc_prim_attrs *a = &p->a;
    const char *sep = " {";
    attrs = shown_attrs(a, attrs);
#define SEP() (nasc_buf_append(b, sep, strlen(sep)), sep = ", ")
    if (attrs & NASC_PATTR_KERNEL) SEP(), nasc_buf_printf(b, "kernel=%dx%d", a->kh, a->kw);
    if (attrs & NASC_PATTR_STRIDE) SEP(), nasc_buf_printf(b, "stride=%dx%d", a->sh, a->sw);
    if (attrs & NASC_PATTR_PAD)
        SEP(), nasc_buf_printf(b, "pad=%d,%d,%d,%d", a->pt, a->pl, a->pb, a->pr);
    if (attrs & NASC_PATTR_DILATION) SEP(), nasc_buf_printf(b, "dilation=%dx%d", a->dh, a->dw);
    if (attrs & NASC_PATTR_GROUPS) SEP(), nasc_buf_printf(b, "groups=%d", a->groups);
    if (attrs & NASC_PATTR_AXIS) SEP(), nasc_buf_printf(b, "axis=%d", a->axis);
    if (attrs & NASC_PATTR_COUNT_PAD)
        SEP(), nasc_buf_printf(b, "count_include_pad=%d", a->count_include_pad);
    if (attrs & NASC_PATTR_EPS) SEP(), nasc_buf_printf(b, "eps=%.9g", (double)a->eps);
    if (attrs & NASC_PATTR_OFFSET) SEP(), nasc_buf_printf(b, "offset=%d,%d", a->dy, a->dx);
    if (attrs & NASC_PATTR_TRANS) SEP(), nasc_buf_printf(b, "trans=%d,%d", a->trans_a, a->trans_b);
    if (attrs & NASC_PATTR_SHAPE) {
        SEP(), nasc_buf_append(b, "shape=", 6);
        for (int i = 0; i < a->shape_rank && i < NASC_MAX_RANK; i++) {
            if (a->shape[i] == NASC_BATCH)
                nasc_buf_printf(b, "%sN", i ? "x" : "");
            else
                nasc_buf_printf(b, "%s%lld", i ? "x" : "", (long long)a->shape[i]);
        }
    }
    if (attrs & NASC_PATTR_INDEX) SEP(), nasc_buf_printf(b, "index=%d", a->index);
    if (attrs & NASC_PATTR_ALPHA) SEP(), nasc_buf_printf(b, "alpha=%.9g", (double)a->alpha);
    if (attrs & NASC_PATTR_BEGIN) {
        SEP(), nasc_buf_append(b, "begin=", 6);
        for (int i = 0; i < a->shape_rank && i < NASC_MAX_RANK; i++)
            nasc_buf_printf(b, "%s%lld", i ? "x" : "", (long long)a->begin[i]);
    }
#undef SEP
    if (attrs) nasc_buf_append(b, "}", 1);
}

static nasc_status print_prim(printer *pr) {
    const nasc_module *m = pr->m;
    nasc_buf *b = pr->out;
    nasc_status st = NASC_OK;
    nasc_buf_append(b, "prim {\n", 7);
    for (uint32_t i = 0; i < m->n_values; i++) {
        const nasc_value *v = &m->values[i];
        if (v->kind == NASC_VAL_OP) continue;
        nasc_buf_append(b, v->kind == NASC_VAL_INPUT ? "  input " : "  param ", 8);
        if ((st = print_value_ref(pr, i, NASC_NOLOC))) return st;
        nasc_buf_append(b, " : ", 3);
        if ((st = print_type(pr, &v->type))) return st;
        nasc_buf_append(b, "\n", 1);
    }
    const char *group = NULL;
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        const char *g = nasc_str(m, p->group);
        if (!group || strcmp(g, group) != 0) {
            if (!group_ok(g)) return bad_name(pr, "group", g);
            if (*g)
                nasc_buf_printf(b, "  group %s\n", g);
            else
                nasc_buf_append(b, "  group\n", 8); /* the empty group */
            group = g;
        }
        const nasc_prim_op_info *info =
            (unsigned)p->op < NASC_PRIM_COUNT ? nasc_prim_op_info_get(p->op) : NULL;
        const nasc_value *r = value_of(pr, p->result);
        if (!info || !r)
            return nasc_error(m->ctx, NASC_EINTERNAL, m->source, p->loc, "prim %u is malformed",
                              i);
        nasc_buf_append(b, "  ", 2);
        if ((st = print_value_ref(pr, p->result, p->loc))) return st;
        nasc_buf_printf(b, " = %s", info->name);
        for (uint32_t k = 0; k < p->n_args; k++) {
            if ((size_t)p->first_arg + k >= m->n_args)
                return nasc_error(m->ctx, NASC_EINTERNAL, m->source, p->loc,
                                  "prim %u has operands past the argument array", i);
            nasc_buf_append(b, k ? ", " : " ", k ? 2 : 1);
            if ((st = print_value_ref(pr, m->args[p->first_arg + k], p->loc))) return st;
        }
        print_prim_attrs(pr, p, info->attrs);
        nasc_buf_append(b, " : ", 3);
        if ((st = print_type(pr, &r->type))) return st;
        nasc_buf_append(b, "\n", 1);
    }
    for (uint32_t i = 0; i < m->n_outputs; i++) {
        nasc_buf_append(b, "  output ", 9);
        if ((st = print_value_ref(pr, m->outputs[i], NASC_NOLOC))) return st;
        nasc_buf_append(b, "\n", 1);
    }
    nasc_buf_append(b, "}\n", 2);
    return NASC_OK;
}

nasc_status nasc_text_print(const nasc_module *m, nasc_buf *out) {
    printer pr = {m, out};
    nasc_status st = m->dialect == NASC_DIALECT_ARCH ? print_arch(&pr) : print_prim(&pr);
    if (st) return st;
    if (out->oom)
        return nasc_error(m->ctx, NASC_ENOMEM, m->source, NASC_NOLOC,
                          "out of memory while printing the text IR");
    return NASC_OK;
}
