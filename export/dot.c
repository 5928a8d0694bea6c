/* dot.c - graphviz pictures of arch and prim modules (nasc_export.h). */
#include "nasc_export.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

/* Append s as the inside of a DOT double-quoted string. A newline becomes
 * the line break escape \n; quotes and backslashes are escaped so that a
 * name can never end the string or start one of graphviz's \N, \G, \l
 * escapes. Other control characters are dropped. */
static void put_escaped(nasc_buf *b, const char *s) {
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        const char *rep = NULL;
        if (ch == '"') rep = "\\\"";
        else if (ch == '\\') rep = "\\\\";
        else if (ch == '\n') rep = "\\n";
        else if (ch < 0x20 || ch == 0x7f) rep = "";
        if (!rep) continue;
        nasc_buf_append(b, run, (size_t)(s - run));
        nasc_buf_append(b, rep, strlen(rep));
        run = s + 1;
    }
    nasc_buf_append(b, run, (size_t)(s - run));
}

/* Append `"text"` where text is printf-formatted, then escaped. Labels are
 * short; a label longer than the scratch buffer is cut, never broken. */
__attribute__((format(printf, 2, 3))) static void put_quoted(nasc_buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    nasc_buf_append(b, "\"", 1);
    put_escaped(b, tmp);
    nasc_buf_append(b, "\"", 1);
}

static void put_header(nasc_buf *b, const nasc_module *m, const char *what) {
    nasc_buf_printf(b, "digraph nasc_%s {\n", what);
    nasc_buf_printf(b, "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11, label=");
    put_quoted(b, "%s (%s)", m->source && m->source[0] ? m->source : "module", what);
    nasc_buf_printf(b, ", labelloc=t];\n");
    nasc_buf_printf(b, "  node [fontname=\"Helvetica\", fontsize=10];\n");
    nasc_buf_printf(b, "  edge [fontname=\"Helvetica\", fontsize=9];\n");
}

static nasc_status finish(const nasc_module *m, nasc_buf *b) {
    nasc_buf_printf(b, "}\n");
    if (b->oom) {
        return nasc_error(m->ctx, NASC_ENOMEM, m->source, NASC_NOLOC,
                          "out of memory writing DOT");
    }
    return NASC_OK;
}

/* ------------------------------------------------------------------ */
/* arch                                                                */
/* ------------------------------------------------------------------ */

static const char *cell_name_or_none(const nasc_module *m, int cell) {
    if (cell < 0 || (uint32_t)cell >= m->n_cells) return "(none)";
    return nasc_str(m, m->cells[cell].name);
}

static void put_skeleton(nasc_buf *b, const nasc_module *m) {
    char text[768];
    if (!m->has_skeleton) {
        snprintf(text, sizeof text, "no skeleton\n%u cell(s)", m->n_cells);
    } else {
        const nasc_skeleton *s = &m->skel;
        char input[64];
        if (s->kind == NASC_NET_RECURRENT)
            snprintf(input, sizeof input, "%d", s->in_c);
        else
            snprintf(input, sizeof input, "%dx%dx%d", s->in_c, s->in_h, s->in_w);
        int n = snprintf(text, sizeof text, "%s net\ninput %s\nclasses %d\nchannels %d",
                         nasc_net_kind_name(s->kind), input, s->classes, s->channels);
        if (s->kind == NASC_NET_CELLS && n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, "\n%d stage(s) x %d cell(s)",
                          s->stages, s->cells_per_stage);
        if (s->kind != NASC_NET_RECURRENT && n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, "\nstem_multiplier %d",
                          s->stem_multiplier);
        if (n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, "\nnormal @%s",
                          cell_name_or_none(m, s->normal_cell));
        if (s->reduction_cell >= 0 && n > 0 && (size_t)n < sizeof text)
            snprintf(text + n, sizeof text - (size_t)n, "\nreduction @%s",
                     cell_name_or_none(m, s->reduction_cell));
    }
    nasc_buf_printf(b, "  skeleton [shape=note, style=filled, fillcolor=\"#fff7d6\", label=");
    put_quoted(b, "%s", text);
    nasc_buf_printf(b, "];\n");
}

static void put_node_attrs(char *dst, size_t size, const nasc_node_attrs *a) {
    size_t n = 0;
    dst[0] = 0;
    if (a->kh || a->kw) n += (size_t)snprintf(dst + n, size - n, "kernel=%dx%d", a->kh, a->kw);
    if (a->filters && n < size)
        n += (size_t)snprintf(dst + n, size - n, "%sfilters=%d", n ? ", " : "", a->filters);
    if (a->stride && n < size)
        n += (size_t)snprintf(dst + n, size - n, "%sstride=%d", n ? ", " : "", a->stride);
    if ((a->dh || a->dw) && n < size)
        n += (size_t)snprintf(dst + n, size - n, "%sdilation=%dx%d", n ? ", " : "", a->dh, a->dw);
    if (a->groups && n < size) snprintf(dst + n, size - n, "%sgroups=%d", n ? ", " : "", a->groups);
}

static bool is_combine(nasc_op op) { return op == NASC_OP_ADD || op == NASC_OP_CONCAT; }

static void put_cell(nasc_buf *b, const nasc_module *m, uint32_t ci, bool *used) {
    const nasc_cell *c = &m->cells[ci];
    nasc_buf_printf(b, "  subgraph cluster_c%u {\n    label=", ci);
    put_quoted(b, "@%s (%s)", nasc_str(m, c->name), nasc_cell_kind_name(c->kind));
    nasc_buf_printf(b, ";\n    style=rounded; color=\"#7a869a\";\n");

    for (uint32_t i = 0; i < c->n_inputs; i++) {
        nasc_buf_printf(b, "    c%u_v%u [shape=box, style=filled, fillcolor=\"#e8eefc\", label=",
                        ci, i);
        put_quoted(b, "%%%s", nasc_cell_value_name(m, c, i));
        nasc_buf_printf(b, "];\n");
    }
    for (uint32_t k = 0; k < c->n_nodes; k++) {
        const nasc_node *nd = &m->nodes[c->first_node + k];
        const nasc_arch_op_info *info = nasc_arch_op_info_get(nd->op);
        char attrs[160];
        put_node_attrs(attrs, sizeof attrs, &nd->attrs);
        nasc_buf_printf(b, "    c%u_v%u [shape=%s, label=", ci, c->n_inputs + k,
                        is_combine(nd->op) ? "circle" : "ellipse");
        put_quoted(b, "%%%s\n%s%s%s%s", nasc_str(m, nd->name), info ? info->name : "?",
                   attrs[0] ? "\n{" : "", attrs, attrs[0] ? "}" : "");
        nasc_buf_printf(b, "];\n");
    }
    nasc_buf_printf(b, "    c%u_out [shape=doubleoctagon, style=filled, fillcolor=\"#e3f4e1\", "
                       "label=", ci);
    put_quoted(b, "out %s%s", nasc_out_rule_name(c->out_rule), c->n_outs ? "" : "\n(loose ends)");
    nasc_buf_printf(b, "];\n");

    /* Operand edges; remember which nodes are used, for the loose ends. */
    uint32_t n_vals = c->n_inputs + c->n_nodes;
    memset(used, 0, n_vals * sizeof *used);
    for (uint32_t k = 0; k < c->n_nodes; k++) {
        const nasc_node *nd = &m->nodes[c->first_node + k];
        for (uint32_t j = 0; j < nd->n_args; j++) {
            uint32_t v = m->args[nd->first_arg + j];
            if (v >= n_vals) continue; /* not verified; draw what makes sense */
            used[v] = true;
            nasc_buf_printf(b, "    c%u_v%u -> c%u_v%u", ci, v, ci, c->n_inputs + k);
            if (nd->n_args > 1 && !nasc_arch_op_commutative(nd->op))
                nasc_buf_printf(b, " [label=\"%u\"]", j);
            nasc_buf_printf(b, ";\n");
        }
    }
    if (c->n_outs) {
        for (uint32_t j = 0; j < c->n_outs; j++) {
            uint32_t v = m->args[c->first_out + j];
            if (v < n_vals) nasc_buf_printf(b, "    c%u_v%u -> c%u_out;\n", ci, v, ci);
        }
    } else {
        for (uint32_t k = 0; k < c->n_nodes; k++)
            if (!used[c->n_inputs + k])
                nasc_buf_printf(b, "    c%u_v%u -> c%u_out;\n", ci, c->n_inputs + k, ci);
    }
    nasc_buf_printf(b, "  }\n");
}

nasc_status nasc_dot_arch(const nasc_module *m, nasc_buf *b) {
    if (m->dialect != NASC_DIALECT_ARCH)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                          "nasc_dot_arch needs an arch module, got a prim module");
    uint32_t max_vals = 1;
    for (uint32_t ci = 0; ci < m->n_cells; ci++) {
        uint32_t n = m->cells[ci].n_inputs + m->cells[ci].n_nodes;
        if (n > max_vals) max_vals = n;
    }
    bool *used = nasc_alloc(m->ctx, max_vals * sizeof *used);
    if (!used) return NASC_ENOMEM;

    put_header(b, m, "arch");
    put_skeleton(b, m);
    for (uint32_t ci = 0; ci < m->n_cells; ci++) put_cell(b, m, ci, used);
    /* Tie the summary to the cells it names, so it sits above them. */
    if (m->has_skeleton) {
        int roles[2] = {m->skel.normal_cell, m->skel.reduction_cell};
        const char *role_names[2] = {"normal", "reduction"};
        for (int r = 0; r < 2; r++) {
            if (roles[r] < 0 || (uint32_t)roles[r] >= m->n_cells) continue;
            if (m->cells[roles[r]].n_inputs == 0) continue;
            nasc_buf_printf(b, "  skeleton -> c%d_v0 [style=dashed, color=\"#999999\", "
                               "label=\"%s\"];\n",
                            roles[r], role_names[r]);
        }
    }
    nasc_free(m->ctx, used);
    return finish(m, b);
}

/* ------------------------------------------------------------------ */
/* prim                                                                */
/* ------------------------------------------------------------------ */

/* Compact attributes: only what differs from the neutral value. */
static void put_prim_attrs(char *dst, size_t size, const nasc_prim *p) {
    const nasc_prim_op_info *info = nasc_prim_op_info_get(p->op);
    unsigned at = info ? info->attrs : 0;
    const nasc_prim_attrs *a = &p->a;
    size_t n = 0;
    dst[0] = 0;
#define ADD(...)                                                          \
    do {                                                                  \
        if (n < size) {                                                   \
            if (n) n += (size_t)snprintf(dst + n, size - n, " ");         \
            if (n < size) n += (size_t)snprintf(dst + n, size - n, __VA_ARGS__); \
        }                                                                 \
    } while (0)
    if (at & NASC_PATTR_KERNEL) ADD("%dx%d", a->kh, a->kw);
    if ((at & NASC_PATTR_STRIDE) && (a->sh != 1 || a->sw != 1)) ADD("stride %dx%d", a->sh, a->sw);
    if ((at & NASC_PATTR_PAD) && (a->pt || a->pl || a->pb || a->pr))
        ADD("pad %d,%d,%d,%d", a->pt, a->pl, a->pb, a->pr);
    if ((at & NASC_PATTR_DILATION) && (a->dh != 1 || a->dw != 1))
        ADD("dilation %dx%d", a->dh, a->dw);
    if ((at & NASC_PATTR_GROUPS) && a->groups != 1) ADD("groups %d", a->groups);
    if (at & NASC_PATTR_AXIS) ADD("axis %d", a->axis);
    if ((at & NASC_PATTR_COUNT_PAD) && a->count_include_pad) ADD("count_include_pad");
    if (at & NASC_PATTR_EPS) ADD("eps %g", (double)a->eps);
    if (at & NASC_PATTR_OFFSET) ADD("offset %d,%d", a->dy, a->dx);
#undef ADD
}

static void put_prim_op(nasc_buf *b, const nasc_module *m, uint32_t pi, const char *indent) {
    const nasc_prim *p = &m->prims[pi];
    const nasc_prim_op_info *info = nasc_prim_op_info_get(p->op);
    char attrs[256], type[128] = "?";
    put_prim_attrs(attrs, sizeof attrs, p);
    if (p->result < m->n_values) nasc_type_format(&m->values[p->result].type, type, sizeof type);
    nasc_buf_printf(b, "%sv%u [shape=box, style=rounded, label=", indent, p->result);
    put_quoted(b, "%%%s\n%s%s%s\n%s",
               p->result < m->n_values ? nasc_str(m, m->values[p->result].name) : "?",
               info ? info->name : "?", attrs[0] ? " " : "", attrs, type);
    nasc_buf_printf(b, "];\n");
}

nasc_status nasc_dot_prim(const nasc_module *m, nasc_buf *b) {
    if (m->dialect != NASC_DIALECT_PRIM)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                          "nasc_dot_prim needs a prim module, got an arch module");
    /* Distinct groups in first-use order, and which params were counted. */
    size_t gsize = (m->n_prims ? m->n_prims : 1) * sizeof(uint32_t);
    uint32_t *groups = nasc_alloc(m->ctx, gsize);
    if (!groups) return NASC_ENOMEM;
    bool *counted = nasc_alloc(m->ctx, (m->n_values ? m->n_values : 1) * sizeof *counted);
    if (!counted) {
        nasc_free(m->ctx, groups);
        return NASC_ENOMEM;
    }
    memset(counted, 0, (m->n_values ? m->n_values : 1) * sizeof *counted);
    uint32_t n_groups = 0;
    bool ungrouped = false;
    for (uint32_t pi = 0; pi < m->n_prims; pi++) {
        uint32_t g = m->prims[pi].group;
        if (g == 0) {
            ungrouped = true;
            continue;
        }
        uint32_t k = 0;
        while (k < n_groups && groups[k] != g) k++;
        if (k == n_groups) groups[n_groups++] = g;
    }

    put_header(b, m, "prim");
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind != NASC_VAL_INPUT) continue;
        char type[128];
        nasc_type_format(&m->values[v].type, type, sizeof type);
        nasc_buf_printf(b, "  v%u [shape=box, style=filled, fillcolor=\"#e8eefc\", label=", v);
        put_quoted(b, "input %%%s\n%s", nasc_str(m, m->values[v].name), type);
        nasc_buf_printf(b, "];\n");
    }
    for (uint32_t k = 0; k < n_groups; k++) {
        /* Parameter elements of the group: each parameter counted once. */
        int64_t params = 0;
        uint32_t n_ops = 0;
        for (uint32_t pi = 0; pi < m->n_prims; pi++) {
            const nasc_prim *p = &m->prims[pi];
            if (p->group != groups[k]) continue;
            n_ops++;
            for (uint32_t j = 0; j < p->n_args; j++) {
                uint32_t v = m->args[p->first_arg + j];
                if (v >= m->n_values || m->values[v].kind != NASC_VAL_PARAM || counted[v])
                    continue;
                counted[v] = true;
                params += nasc_type_numel(&m->values[v].type);
            }
        }
        nasc_buf_printf(b, "  subgraph cluster_g%u {\n    label=", k);
        put_quoted(b, "%s: %u op(s), %" PRId64 " param(s)", nasc_str(m, groups[k]), n_ops,
                   params);
        nasc_buf_printf(b, ";\n    style=rounded; color=\"#7a869a\";\n");
        for (uint32_t pi = 0; pi < m->n_prims; pi++)
            if (m->prims[pi].group == groups[k]) put_prim_op(b, m, pi, "    ");
        nasc_buf_printf(b, "  }\n");
    }
    if (ungrouped)
        for (uint32_t pi = 0; pi < m->n_prims; pi++)
            if (m->prims[pi].group == 0) put_prim_op(b, m, pi, "  ");

    for (uint32_t pi = 0; pi < m->n_prims; pi++) {
        const nasc_prim *p = &m->prims[pi];
        for (uint32_t j = 0; j < p->n_args; j++) {
            uint32_t v = m->args[p->first_arg + j];
            if (v >= m->n_values || m->values[v].kind == NASC_VAL_PARAM) continue;
            nasc_buf_printf(b, "  v%u -> v%u;\n", v, p->result);
        }
    }
    for (uint32_t k = 0; k < m->n_outputs; k++) {
        uint32_t v = m->outputs[k];
        nasc_buf_printf(b, "  out%u [shape=doubleoctagon, style=filled, fillcolor=\"#e3f4e1\", "
                           "label=", k);
        put_quoted(b, "output %%%s", v < m->n_values ? nasc_str(m, m->values[v].name) : "?");
        nasc_buf_printf(b, "];\n");
        if (v < m->n_values) nasc_buf_printf(b, "  v%u -> out%u;\n", v, k);
    }
    nasc_free(m->ctx, counted);
    nasc_free(m->ctx, groups);
    return finish(m, b);
}
