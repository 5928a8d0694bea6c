/* Module storage, op tables and the builders of both dialects. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

/* ---------------------------------------------------------------- */
/* Op tables                                                         */
/* ---------------------------------------------------------------- */

static const nasc_arch_op_info arch_ops[NASC_OP_COUNT] = {
#define NASC_ARCH_OP(ID, name, arity, dom, attrs) {name, arity, dom, attrs},
#include "ops.def"
#undef NASC_ARCH_OP
};

static const nasc_prim_op_info prim_ops[NASC_PRIM_COUNT] = {
#define NASC_PRIM_OP(ID, name, arity, attrs) {name, arity, attrs},
#include "ops.def"
#undef NASC_PRIM_OP
};

const nasc_arch_op_info *nasc_arch_op_info_get(nasc_op op) {
    return (unsigned)op < NASC_OP_COUNT ? &arch_ops[op] : NULL;
}

const nasc_prim_op_info *nasc_prim_op_info_get(nasc_prim_op op) {
    return (unsigned)op < NASC_PRIM_COUNT ? &prim_ops[op] : NULL;
}

int nasc_arch_op_from_name(const char *name, size_t len) {
    for (int i = 0; i < NASC_OP_COUNT; i++)
        if (strlen(arch_ops[i].name) == len && memcmp(arch_ops[i].name, name, len) == 0) return i;
    return -1;
}

int nasc_prim_op_from_name(const char *name, size_t len) {
    for (int i = 0; i < NASC_PRIM_COUNT; i++)
        if (strlen(prim_ops[i].name) == len && memcmp(prim_ops[i].name, name, len) == 0) return i;
    return -1;
}

bool nasc_arch_op_commutative(nasc_op op) { return op == NASC_OP_ADD || op == NASC_OP_MUL; }

static const char *const input_names[][NASC_MAX_CELL_INPUTS] = {
    [NASC_CELL_NORMAL] = {"h2", "h1", NULL},
    [NASC_CELL_REDUCTION] = {"h2", "h1", NULL},
    [NASC_CELL_MACRO] = {"x", NULL, NULL},
    [NASC_CELL_RECURRENT] = {"x", "h", "c"},
};

const char *nasc_cell_input_name(nasc_cell_kind kind, uint32_t i) {
    if ((unsigned)kind > NASC_CELL_RECURRENT || i >= NASC_MAX_CELL_INPUTS) return NULL;
    return input_names[kind][i];
}

const char *nasc_cell_kind_name(nasc_cell_kind kind) {
    static const char *const names[] = {"normal", "reduction", "macro", "recurrent"};
    return (unsigned)kind <= NASC_CELL_RECURRENT ? names[kind] : "?";
}

const char *nasc_net_kind_name(nasc_net_kind kind) {
    static const char *const names[] = {"cells", "macro", "recurrent"};
    return (unsigned)kind <= NASC_NET_RECURRENT ? names[kind] : "?";
}

const char *nasc_out_rule_name(nasc_out_rule rule) {
    static const char *const names[] = {"concat", "sum", "avg", "state"};
    return (unsigned)rule <= NASC_OUT_STATE ? names[rule] : "?";
}

const char *nasc_cell_value_name(const nasc_module *m, const nasc_cell *c, uint32_t v) {
    if (v < c->n_inputs) return nasc_cell_input_name(c->kind, v);
    if (v - c->n_inputs >= c->n_nodes) return "?";
    return nasc_str(m, m->nodes[c->first_node + v - c->n_inputs].name);
}

/* ---------------------------------------------------------------- */
/* Module, strings, growable arrays                                  */
/* ---------------------------------------------------------------- */

static bool grow(nasc_ctx *ctx, void **p, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    if (need > UINT32_MAX / 2) {
        nasc_error(ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "module too large");
        return false;
    }
    uint32_t ncap = *cap ? *cap : 16;
    while (ncap < need) ncap *= 2;
    void *np = nasc_realloc(ctx, *p, (size_t)ncap * elem);
    if (!np) return false;
    *p = np;
    *cap = ncap;
    return true;
}

#define GROW(m, arr, cap, need) grow((m)->ctx, (void **)&(m)->arr, &(m)->cap, (need), sizeof *(m)->arr)

nasc_module *nasc_module_create(nasc_ctx *ctx, nasc_dialect dialect, const char *source) {
    nasc_module *m = nasc_alloc(ctx, sizeof *m);
    if (!m) return NULL;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->dialect = dialect;
    m->open_cell = -1;
    m->source = nasc_strdup(ctx, source ? source : "");
    if (!m->source) {
        nasc_free(ctx, m);
        return NULL;
    }
    if (nasc_str_intern(m, "", 0) == UINT32_MAX) {
        nasc_module_destroy(m);
        return NULL;
    }
    m->skel = nasc_skeleton_default(NASC_NET_CELLS);
    return m;
}

void nasc_module_destroy(nasc_module *m) {
    if (!m) return;
    nasc_ctx *ctx = m->ctx;
    nasc_free(ctx, m->source);
    nasc_free(ctx, m->strs);
    nasc_free(ctx, m->args);
    nasc_free(ctx, m->cells);
    nasc_free(ctx, m->nodes);
    nasc_free(ctx, m->values);
    nasc_free(ctx, m->prims);
    nasc_free(ctx, m->outputs);
    nasc_free(ctx, m->value_index);
    nasc_free(ctx, m->str_index);
    nasc_free(ctx, m);
}

static uint32_t hash_name(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The string index rebuilt at twice the capacity (64 at first) from the
 * pool; false when out of memory. */
static bool str_index_grow(nasc_module *m) {
    uint32_t ncap = m->str_index_cap ? m->str_index_cap * 2 : 64;
    uint32_t *idx = nasc_alloc(m->ctx, ncap * sizeof *idx);
    if (!idx) return false;
    memset(idx, 0, ncap * sizeof *idx);
    for (uint32_t off = 0; off < m->strs_len;) {
        size_t n = strlen(m->strs + off);
        uint32_t i = hash_name(m->strs + off, n) & (ncap - 1);
        while (idx[i]) i = (i + 1) & (ncap - 1);
        idx[i] = off + 1;
        off += (uint32_t)n + 1;
    }
    nasc_free(m->ctx, m->str_index);
    m->str_index = idx;
    m->str_index_cap = ncap;
    return true;
}

uint32_t nasc_str_intern(nasc_module *m, const char *s, size_t len) {
    /* ids are offsets into one pool, so they stay stable as it grows; a
     * hash of the pool finds a string already there */
    if (len > 4096) {
        nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "name longer than 4096 bytes");
        return UINT32_MAX;
    }
    if ((m->n_strs + 1) * 2 > m->str_index_cap && !str_index_grow(m)) return UINT32_MAX;
    uint32_t mask = m->str_index_cap - 1, i = hash_name(s, len) & mask;
    for (; m->str_index[i]; i = (i + 1) & mask) {
        const char *p = m->strs + m->str_index[i] - 1;
        if (strlen(p) == len && memcmp(p, s, len) == 0) return m->str_index[i] - 1;
    }
    if (!GROW(m, strs, strs_cap, m->strs_len + (uint32_t)len + 1)) return UINT32_MAX;
    uint32_t id = m->strs_len;
    memcpy(m->strs + id, s, len);
    m->strs[id + len] = 0;
    m->strs_len += (uint32_t)len + 1;
    m->str_index[i] = id + 1;
    m->n_strs++;
    return id;
}

const char *nasc_str(const nasc_module *m, uint32_t id) {
    if (!m->strs || id >= m->strs_len) return "";
    return m->strs + id;
}

static uint32_t push_args(nasc_module *m, const uint32_t *args, uint32_t n) {
    if (!GROW(m, args, cap_args, m->n_args + n + 1)) return UINT32_MAX;
    uint32_t first = m->n_args;
    if (n) memcpy(m->args + first, args, n * sizeof *args);
    m->n_args += n;
    return first;
}

/* ---------------------------------------------------------------- */
/* Skeleton                                                          */
/* ---------------------------------------------------------------- */

nasc_skeleton nasc_skeleton_default(nasc_net_kind kind) {
    nasc_skeleton sk;
    memset(&sk, 0, sizeof sk);
    sk.kind = kind;
    sk.in_c = 1;
    sk.in_h = 28;
    sk.in_w = 28;
    sk.classes = 10;
    sk.channels = 16;
    sk.cells_per_stage = 2;
    sk.stages = 3;
    sk.stem_multiplier = kind == NASC_NET_MACRO ? 1 : 3;
    if (kind == NASC_NET_RECURRENT) {
        sk.in_c = 32;
        sk.in_h = sk.in_w = 1;
        sk.channels = 32;
        sk.classes = 10000;
        sk.stem_multiplier = 1;
    }
    sk.normal_cell = -1;
    sk.reduction_cell = -1;
    return sk;
}

/* Parse a positive int in [1, 1<<20]; the whole string must be used. */
static bool parse_pos(const char *s, size_t n, int *out) {
    if (n == 0 || n > 9) return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > (1 << 20)) return false;
    *out = (int)v;
    return true;
}

nasc_status nasc_skeleton_set(nasc_skeleton *sk, const char *key, const char *value, char *msg,
                              size_t msg_size) {
    size_t n = strlen(value);
    int v = 0;
    if (strcmp(key, "input") == 0) {
        if (sk->kind == NASC_NET_RECURRENT) {
            if (!parse_pos(value, n, &v)) {
                snprintf(msg, msg_size, "input of a recurrent net must be a positive integer (the input vector size), got '%s'", value);
                return NASC_EINPUT;
            }
            sk->in_c = v;
            sk->in_h = sk->in_w = 1;
            return NASC_OK;
        }
        int d[3];
        const char *p = value;
        for (int i = 0; i < 3; i++) {
            const char *e = strchr(p, 'x');
            size_t len = (i < 2) ? (e ? (size_t)(e - p) : strlen(p) + 1000) : strlen(p);
            if ((i < 2 && !e) || !parse_pos(p, len, &d[i])) {
                snprintf(msg, msg_size, "input must be CxHxW with positive integers (e.g. 1x28x28), got '%s'", value);
                return NASC_EINPUT;
            }
            p = e ? e + 1 : p;
        }
        sk->in_c = d[0];
        sk->in_h = d[1];
        sk->in_w = d[2];
        return NASC_OK;
    }
    static const struct {
        const char *key;
        size_t off;
    } ints[] = {
        {"classes", offsetof(nasc_skeleton, classes)},
        {"channels", offsetof(nasc_skeleton, channels)},
        {"cells_per_stage", offsetof(nasc_skeleton, cells_per_stage)},
        {"stages", offsetof(nasc_skeleton, stages)},
        {"stem_multiplier", offsetof(nasc_skeleton, stem_multiplier)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].key) != 0) continue;
        if (!parse_pos(value, n, &v)) {
            snprintf(msg, msg_size, "%s must be a positive integer (at most 1048576), got '%s'", key, value);
            return NASC_EINPUT;
        }
        *(int *)((char *)sk + ints[i].off) = v;
        return NASC_OK;
    }
    snprintf(msg, msg_size,
             "unknown skeleton key '%s' (expected input, classes, channels, cells_per_stage, stages or stem_multiplier)",
             key);
    return NASC_EINPUT;
}

void nasc_net_set_skeleton(nasc_module *m, const nasc_skeleton *sk) {
    m->skel = *sk;
    m->has_skeleton = true;
}

/* ---------------------------------------------------------------- */
/* Arch builder                                                      */
/* ---------------------------------------------------------------- */

int nasc_cell_find(const nasc_module *m, const char *name) {
    for (uint32_t i = 0; i < m->n_cells; i++)
        if (strcmp(nasc_str(m, m->cells[i].name), name) == 0) return (int)i;
    return -1;
}

int64_t nasc_cell_lookup(const nasc_module *m, const nasc_cell *c, const char *name, size_t len) {
    for (uint32_t i = 0; i < c->n_inputs; i++) {
        const char *in = nasc_cell_input_name(c->kind, i);
        if (strlen(in) == len && memcmp(in, name, len) == 0) return i;
    }
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const char *nn = nasc_str(m, m->nodes[c->first_node + j].name);
        if (strlen(nn) == len && memcmp(nn, name, len) == 0) return c->n_inputs + j;
    }
    return -1;
}

int nasc_cell_begin(nasc_module *m, const char *name, nasc_cell_kind kind, uint32_t n_inputs,
                    nasc_loc loc) {
    nasc_ctx *ctx = m->ctx;
    if (m->dialect != NASC_DIALECT_ARCH)
        return -nasc_error(ctx, NASC_EINPUT, m->source, loc, "cells belong to the arch dialect");
    if (m->open_cell >= 0)
        return -nasc_error(ctx, NASC_EINTERNAL, m->source, loc, "cell '%s' started before the previous one ended", name);
    if ((unsigned)kind > NASC_CELL_RECURRENT)
        return -nasc_error(ctx, NASC_EINPUT, m->source, loc, "bad cell kind");
    uint32_t lo = kind == NASC_CELL_MACRO ? 1 : 2, hi = kind == NASC_CELL_RECURRENT ? 3 : lo;
    if (n_inputs < lo || n_inputs > hi)
        return -nasc_error(ctx, NASC_EINPUT, m->source, loc, "a %s cell takes %u%s inputs, not %u",
                           nasc_cell_kind_name(kind), lo, hi > lo ? " or 3" : "", n_inputs);
    if (!name[0]) return -nasc_error(ctx, NASC_EINPUT, m->source, loc, "cell name is empty");
    if (nasc_cell_find(m, name) >= 0)
        return -nasc_error(ctx, NASC_EINPUT, m->source, loc, "duplicate cell name '%s'", name);
    if (!GROW(m, cells, cap_cells, m->n_cells + 1)) return -NASC_ENOMEM;
    uint32_t sid = nasc_str_intern(m, name, strlen(name));
    if (sid == UINT32_MAX) return -(int)ctx->diag.status;
    nasc_cell *c = &m->cells[m->n_cells];
    memset(c, 0, sizeof *c);
    c->name = sid;
    c->kind = kind;
    c->n_inputs = n_inputs;
    c->first_node = m->n_nodes;
    c->out_rule = kind == NASC_CELL_RECURRENT ? NASC_OUT_AVG : NASC_OUT_CONCAT;
    c->first_out = m->n_args;
    c->loc = loc;
    m->open_cell = (int)m->n_cells;
    return (int)m->n_cells++;
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.') return false;
    return true;
}

static bool valid_node_name(const char *s) {
    if (!isalpha((unsigned char)*s) && *s != '_') return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

uint32_t nasc_cell_add_node(nasc_module *m, nasc_op op, const uint32_t *args, uint32_t n_args,
                            const nasc_node_attrs *attrs, const char *name, nasc_loc loc) {
    nasc_ctx *ctx = m->ctx;
    const char *src = m->source;
    if (m->open_cell < 0) {
        nasc_error(ctx, NASC_EINTERNAL, src, loc, "node '%s' added outside a cell", name);
        return UINT32_MAX;
    }
    nasc_cell *c = &m->cells[m->open_cell];
    const nasc_arch_op_info *info = nasc_arch_op_info_get(op);
    if (!info) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "unknown op %d", (int)op);
        return UINT32_MAX;
    }
    if (!valid_node_name(name)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "bad node name '%s' (a letter or '_', then letters, digits or '_')", name);
        return UINT32_MAX;
    }
    if (nasc_cell_lookup(m, c, name, strlen(name)) >= 0) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "duplicate name '%s' in cell '%s'", name, nasc_str(m, c->name));
        return UINT32_MAX;
    }
    int dom = c->kind == NASC_CELL_RECURRENT ? NASC_DOM_RNN : NASC_DOM_CNN;
    if (!(info->domain & dom)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' cannot be used in a %s cell", info->name,
                   nasc_cell_kind_name(c->kind));
        return UINT32_MAX;
    }
    if ((info->arity >= 0 && n_args != (uint32_t)info->arity) || (info->arity < 0 && n_args < 1)) {
        if (info->arity < 0)
            nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' needs at least one operand", info->name);
        else
            nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes %d operand%s, got %u", info->name,
                       info->arity, info->arity == 1 ? "" : "s", n_args);
        return UINT32_MAX;
    }
    uint32_t limit = c->n_inputs + c->n_nodes;
    for (uint32_t i = 0; i < n_args; i++) {
        if (args[i] >= limit) {
            nasc_error(ctx, NASC_EINPUT, src, loc, "operand %u of '%s' refers to a value not defined before it", i + 1, name);
            return UINT32_MAX;
        }
    }
    nasc_node_attrs a = {0, 0, 0, 0, 0, 0, 0};
    if (attrs) a = *attrs;
    if (a.kh < 0 || a.kw < 0 || a.filters < 0 || a.stride < 0 || a.kh > 64 || a.kw > 64 ||
        a.stride > 8 || a.filters > (1 << 20) || a.dh < 0 || a.dw < 0 || a.dh > 64 || a.dw > 64 || a.groups < 0 ||
        a.groups > (1 << 20)) {
        nasc_error(ctx, NASC_EINPUT, src, loc,
                   "attribute out of range on '%s' (kernel 1..64, stride 1..8, filters 1..1048576, dilation 1..64, "
                   "groups 1..1048576)",
                   name);
        return UINT32_MAX;
    }
    if ((a.dh || a.dw) && !(info->attrs & NASC_ATTR_DILATION)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes no 'dilation' attribute", info->name);
        return UINT32_MAX;
    }
    if (a.groups && !(info->attrs & NASC_ATTR_GROUPS)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes no 'groups' attribute", info->name);
        return UINT32_MAX;
    }
    if ((a.dh == 0) != (a.dw == 0)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "dilation needs both a height and a width");
        return UINT32_MAX;
    }
    if (a.groups && a.filters && a.filters % a.groups) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "'%s': %d filters do not split into %d groups", name, a.filters,
                   a.groups);
        return UINT32_MAX;
    }
    if ((a.kh || a.kw) && !(info->attrs & NASC_ATTR_KERNEL)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes no 'kernel' attribute", info->name);
        return UINT32_MAX;
    }
    if (a.filters && !(info->attrs & NASC_ATTR_FILTERS)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes no 'filters' attribute", info->name);
        return UINT32_MAX;
    }
    if (a.stride && !(info->attrs & NASC_ATTR_STRIDE)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op '%s' takes no 'stride' attribute", info->name);
        return UINT32_MAX;
    }
    if (op == NASC_OP_CONV && (a.kh == 0 || a.kw == 0)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "op 'conv' needs a 'kernel' attribute (e.g. kernel=3x5)");
        return UINT32_MAX;
    }
    if ((a.kh == 0) != (a.kw == 0)) {
        nasc_error(ctx, NASC_EINPUT, src, loc, "kernel needs both a height and a width");
        return UINT32_MAX;
    }
    if (!GROW(m, nodes, cap_nodes, m->n_nodes + 1)) return UINT32_MAX;
    uint32_t sid = nasc_str_intern(m, name, strlen(name));
    if (sid == UINT32_MAX) return UINT32_MAX;
    uint32_t first = push_args(m, args, n_args);
    if (first == UINT32_MAX) return UINT32_MAX;
    nasc_node *n = &m->nodes[m->n_nodes++];
    n->op = op;
    n->name = sid;
    n->first_arg = first;
    n->n_args = n_args;
    n->attrs = a;
    n->loc = loc;
    c->n_nodes++;
    return limit;
}

nasc_status nasc_cell_set_output(nasc_module *m, nasc_out_rule rule, const uint32_t *outs,
                                 uint32_t n_outs) {
    nasc_ctx *ctx = m->ctx;
    if (m->open_cell < 0) return nasc_error(ctx, NASC_EINTERNAL, m->source, NASC_NOLOC, "output set outside a cell");
    nasc_cell *c = &m->cells[m->open_cell];
    if ((unsigned)rule > NASC_OUT_STATE) return nasc_error(ctx, NASC_EINPUT, m->source, c->out_loc, "bad output rule");
    uint32_t limit = c->n_inputs + c->n_nodes;
    for (uint32_t i = 0; i < n_outs; i++)
        if (outs[i] >= limit)
            return nasc_error(ctx, NASC_EINPUT, m->source, c->out_loc, "output %u of cell '%s' refers to an undefined value",
                              i + 1, nasc_str(m, c->name));
    uint32_t first = push_args(m, outs, n_outs);
    if (first == UINT32_MAX) return ctx->diag.status;
    c->out_rule = rule;
    c->first_out = first;
    c->n_outs = n_outs;
    return NASC_OK;
}

nasc_status nasc_cell_end(nasc_module *m) {
    if (m->open_cell < 0) return nasc_error(m->ctx, NASC_EINTERNAL, m->source, NASC_NOLOC, "no cell to end");
    m->open_cell = -1;
    return NASC_OK;
}

/* ---------------------------------------------------------------- */
/* Types and prim shape rules                                        */
/* ---------------------------------------------------------------- */

int64_t nasc_type_numel(const nasc_type *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] != NASC_BATCH) n *= t->dims[i];
    return n;
}

void nasc_type_format(const nasc_type *t, char *buf, size_t size) {
    size_t off = (size_t)snprintf(buf, size, "f32[");
    for (int i = 0; i < t->rank && off < size; i++) {
        if (t->dims[i] == NASC_BATCH)
            off += (size_t)snprintf(buf + off, size - off, "%sN", i ? "," : "");
        else
            off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    }
    if (off < size) snprintf(buf + off, size - off, "]");
}

nasc_prim_attrs nasc_prim_attrs_default(void) {
    nasc_prim_attrs a;
    memset(&a, 0, sizeof a);
    a.kh = a.kw = 1;
    a.sh = a.sw = 1;
    a.dh = a.dw = 1;
    a.groups = 1;
    a.axis = 1;
    a.eps = 1e-5f;
    a.alpha = 1.0f;
    return a;
}

#define FAIL(...) (snprintf(msg, msg_size, __VA_ARGS__), NASC_EINPUT)

/* Dim k of t counted from the last one (k = 0 is the last), 1 past its rank. */
static int64_t dim_from_end(const nasc_type *t, int k) { return k < t->rank ? t->dims[t->rank - 1 - k] : 1; }

/* b equals a or broadcasts to it: b's rank is at most a's and, aligned on
 * the last dim, each of b's dims is a's or 1. */
static bool broadcasts_to(const nasc_type *b, const nasc_type *a) {
    if (b->rank > a->rank) return false;
    for (int k = 0; k < b->rank; k++) {
        int64_t db = dim_from_end(b, k), da = dim_from_end(a, k);
        if (db != da && db != 1) return false;
    }
    return true;
}

/* matmul: (..., M, K) x (..., K, N) -> (..., M, N) after the transposes;
 * leading dims broadcast (1 against anything), the lower rank gains leading 1s. */
static nasc_status matmul_shape(const nasc_prim_attrs *a, const nasc_type *x, const nasc_type *w, nasc_type *out,
                                char *msg, size_t msg_size) {
    if (x->rank < 2 || w->rank < 2) return FAIL("matmul needs operands of rank 2 to 4");
    if ((a->trans_a != 0 && a->trans_a != 1) || (a->trans_b != 0 && a->trans_b != 1))
        return FAIL("matmul transposes are 0 or 1");
    int64_t m = dim_from_end(x, a->trans_a ? 0 : 1), k = dim_from_end(x, a->trans_a ? 1 : 0);
    int64_t k2 = dim_from_end(w, a->trans_b ? 0 : 1), nn = dim_from_end(w, a->trans_b ? 1 : 0);
    if (k != k2 || k == NASC_BATCH || nn == NASC_BATCH) {
        char ta[64], tb[64];
        nasc_type_format(x, ta, sizeof ta);
        nasc_type_format(w, tb, sizeof tb);
        return FAIL("matmul shapes do not fit: %s%s x %s%s", ta, a->trans_a ? "^T" : "", tb, a->trans_b ? "^T" : "");
    }
    int r = x->rank > w->rank ? x->rank : w->rank;
    memset(out, 0, sizeof *out);
    out->dtype = x->dtype;
    out->rank = r;
    out->dims[r - 2] = m;
    out->dims[r - 1] = nn;
    for (int j = 2; j < r; j++) {
        int64_t dx = dim_from_end(x, j), dw = dim_from_end(w, j);
        if (dx != dw && dx != 1 && dw != 1) return FAIL("matmul batch dims %lld and %lld do not broadcast", (long long)dx, (long long)dw);
        out->dims[r - 1 - j] = dx == 1 ? dw : dx;
    }
    for (int d = 1; d < r; d++)
        if (out->dims[d] == NASC_BATCH) return FAIL("matmul would move the batch dimension N away from the first dim");
    return NASC_OK;
}

static nasc_status spatial(const nasc_type *x, int kh, int kw, const nasc_prim_attrs *a, int dh, int dw,
                           nasc_type *out, char *msg, size_t msg_size) {
    if (a->sh < 1 || a->sw < 1 || a->sh > 64 || a->sw > 64) return FAIL("strides must be 1..64");
    if (a->pt < 0 || a->pl < 0 || a->pb < 0 || a->pr < 0 || a->pt > 64 || a->pl > 64 || a->pb > 64 || a->pr > 64)
        return FAIL("pads must be 0..64");
    int64_t ekh = (int64_t)(kh - 1) * dh + 1, ekw = (int64_t)(kw - 1) * dw + 1;
    int64_t h = x->dims[2] + a->pt + a->pb - ekh, w = x->dims[3] + a->pl + a->pr - ekw;
    if (h < 0 || w < 0)
        return FAIL("kernel %dx%d (dilated %lldx%lld) is larger than the padded input %lldx%lld", kh, kw,
                    (long long)ekh, (long long)ekw, (long long)(x->dims[2] + a->pt + a->pb),
                    (long long)(x->dims[3] + a->pl + a->pr));
    *out = *x;
    out->dims[2] = h / a->sh + 1;
    out->dims[3] = w / a->sw + 1;
    return NASC_OK;
}

nasc_status nasc_prim_infer(nasc_prim_op op, const nasc_prim_attrs *a, const nasc_type *t,
                            uint32_t n, nasc_type *out, char *msg, size_t msg_size) {
    const nasc_prim_op_info *info = nasc_prim_op_info_get(op);
    if (!info) return FAIL("unknown prim op");
    if ((info->arity >= 0 && n != (uint32_t)info->arity) || (info->arity < 0 && n < 1))
        return FAIL("'%s' takes %d operand%s, got %u", info->name, info->arity < 0 ? 1 : info->arity,
                    info->arity < 0 ? " or more" : (info->arity == 1 ? "" : "s"), n);
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].rank < 1 || t[i].rank > NASC_MAX_RANK) return FAIL("operand %u has rank %d", i + 1, t[i].rank);
        for (int d = 0; d < t[i].rank; d++)
            if (t[i].dims[d] < 1 && !(d == 0 && t[i].dims[d] == NASC_BATCH))
                return FAIL("operand %u has a bad dimension", i + 1);
    }
    const nasc_type *x = &t[0];
    switch (op) {
    case NASC_PRIM_CONV: {
        const nasc_type *w = &t[1];
        if (x->rank != 4 || w->rank != 4) return FAIL("conv needs a rank-4 input and weight");
        if (a->groups < 1) return FAIL("conv groups must be >= 1");
        if (a->dh < 1 || a->dw < 1 || a->dh > 64 || a->dw > 64) return FAIL("dilations must be 1..64");
        if (w->dims[2] != a->kh || w->dims[3] != a->kw)
            return FAIL("conv kernel %dx%d does not match weight %lldx%lld", a->kh, a->kw,
                        (long long)w->dims[2], (long long)w->dims[3]);
        if (x->dims[1] != w->dims[1] * a->groups)
            return FAIL("conv input has %lld channels, weight expects %lld (%lld per group x %d groups)",
                        (long long)x->dims[1], (long long)(w->dims[1] * a->groups), (long long)w->dims[1], a->groups);
        if (w->dims[0] % a->groups) return FAIL("conv output channels %lld not divisible by groups %d", (long long)w->dims[0], a->groups);
        nasc_status s = spatial(x, a->kh, a->kw, a, a->dh, a->dw, out, msg, msg_size);
        if (s) return s;
        out->dims[1] = w->dims[0];
        return NASC_OK;
    }
    case NASC_PRIM_BATCH_NORM:
        if (x->rank != 4 && x->rank != 2) return FAIL("batch_norm needs a rank-2 or rank-4 input");
        if (t[1].rank != 1 || t[2].rank != 1 || t[1].dims[0] != x->dims[1] || t[2].dims[0] != x->dims[1])
            return FAIL("batch_norm scale and shift must have shape [%lld]", (long long)x->dims[1]);
        if (!(a->eps > 0 && a->eps < 1)) return FAIL("batch_norm eps must be in (0, 1)");
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_RELU:
    case NASC_PRIM_TANH:
    case NASC_PRIM_SIGMOID:
    case NASC_PRIM_IDENTITY:
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_MAX_POOL:
    case NASC_PRIM_AVG_POOL: {
        if (x->rank != 4) return FAIL("pooling needs a rank-4 input");
        if (a->kh < 1 || a->kw < 1 || a->kh > 64 || a->kw > 64) return FAIL("pooling kernel must be 1..64");
        if (a->dh < 1 || a->dw < 1 || a->dh > 64 || a->dw > 64) return FAIL("dilations must be 1..64");
        if (op == NASC_PRIM_AVG_POOL && (a->dh != 1 || a->dw != 1)) return FAIL("avg_pool cannot be dilated");
        /* every window must hold a real pixel: pads smaller than the (dilated) kernel */
        int ekh = (a->kh - 1) * a->dh + 1, ekw = (a->kw - 1) * a->dw + 1;
        if (a->pt >= ekh || a->pb >= ekh || a->pl >= ekw || a->pr >= ekw)
            return FAIL("pooling pads must be smaller than the kernel");
        if (a->count_include_pad != 0 && a->count_include_pad != 1) return FAIL("count_include_pad must be 0 or 1");
        return spatial(x, a->kh, a->kw, a, a->dh, a->dw, out, msg, msg_size);
    }
    case NASC_PRIM_GLOBAL_AVG_POOL:
        if (x->rank != 4) return FAIL("global_avg_pool needs a rank-4 input");
        *out = *x;
        out->dims[2] = out->dims[3] = 1;
        return NASC_OK;
    case NASC_PRIM_SHIFT:
        if (x->rank != 4) return FAIL("shift needs a rank-4 input");
        if (a->dy < 0 || a->dx < 0 || a->dy >= x->dims[2] || a->dx >= x->dims[3])
            return FAIL("shift offset %d,%d out of range", a->dy, a->dx);
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_ADD:
    case NASC_PRIM_SUB:
    case NASC_PRIM_MUL: {
        char ta[64], tb[64];
        for (uint32_t i = 1; i < n; i++)
            if (!broadcasts_to(&t[i], x)) {
                nasc_type_format(x, ta, sizeof ta);
                nasc_type_format(&t[i], tb, sizeof tb);
                return FAIL("%s operands differ in shape: %s vs %s (operand %u must equal operand 1 or "
                            "broadcast to it)",
                            info->name, ta, tb, i + 1);
            }
        *out = *x;
        return NASC_OK;
    }
    case NASC_PRIM_CONCAT: {
        if (a->axis < 0 || a->axis >= x->rank) return FAIL("concat axis %d out of range for rank %d", a->axis, x->rank);
        if (a->axis == 0 && x->dims[0] == NASC_BATCH) return FAIL("concat along the batch axis is not supported");
        *out = *x;
        for (uint32_t i = 1; i < n; i++) {
            if (t[i].rank != x->rank) return FAIL("concat operands differ in rank");
            for (int d = 0; d < x->rank; d++)
                if (d != a->axis && t[i].dims[d] != x->dims[d]) {
                    char ta[64], tb[64];
                    nasc_type_format(x, ta, sizeof ta);
                    nasc_type_format(&t[i], tb, sizeof tb);
                    return FAIL("concat operands differ outside axis %d: %s vs %s", a->axis, ta, tb);
                }
            if (a->axis == 0 && t[i].dims[0] == NASC_BATCH) return FAIL("concat along the batch axis is not supported");
            out->dims[a->axis] += t[i].dims[a->axis];
        }
        return NASC_OK;
    }
    case NASC_PRIM_INNER_PRODUCT:
        if (x->rank != 2 || t[1].rank != 2 || t[2].rank != 1) return FAIL("inner_product needs x [N,I], w [O,I], b [O]");
        if (t[1].dims[1] != x->dims[1] || t[2].dims[0] != t[1].dims[0])
            return FAIL("inner_product shapes do not fit: x has %lld features, w is [%lld,%lld], b is [%lld]",
                        (long long)x->dims[1], (long long)t[1].dims[0], (long long)t[1].dims[1], (long long)t[2].dims[0]);
        *out = *x;
        out->dims[1] = t[1].dims[0];
        return NASC_OK;
    case NASC_PRIM_FLATTEN: {
        if (x->rank < 2) return FAIL("flatten needs rank >= 2");
        int64_t p = 1;
        for (int d = 1; d < x->rank; d++) p *= x->dims[d];
        *out = *x;
        out->rank = 2;
        out->dims[1] = p;
        out->dims[2] = out->dims[3] = 0;
        return NASC_OK;
    }
    case NASC_PRIM_SOFTMAX:
        if (a->axis < 0 || a->axis >= x->rank) return FAIL("softmax axis %d out of range", a->axis);
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_MATMUL:
        return matmul_shape(a, x, &t[1], out, msg, msg_size);
    case NASC_PRIM_EMBEDDING:
        if (x->rank != 2 || t[1].rank != 2) return FAIL("embedding needs ids [N,T] and a table [V,E]");
        if (t[1].dims[0] == NASC_BATCH) return FAIL("an embedding table has no batch dimension");
        if (a->index < 0 || a->index >= x->dims[1])
            return FAIL("embedding index %d out of range for ids of %lld columns", a->index, (long long)x->dims[1]);
        *out = *x;
        out->dims[1] = t[1].dims[1];
        return NASC_OK;
    case NASC_PRIM_SCALE:
        if (!isfinite(a->alpha)) return FAIL("scale factor must be finite");
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_SLICE:
        if (x->dims[0] == NASC_BATCH) return FAIL("slice cuts a tensor without a batch dimension");
        if (a->shape_rank != x->rank)
            return FAIL("slice needs a shape of the operand's rank %d, not %d", x->rank, a->shape_rank);
        *out = *x;
        for (int d = 0; d < x->rank; d++) {
            if (a->begin[d] < 0 || a->shape[d] < 1 || a->begin[d] > x->dims[d] - a->shape[d])
                return FAIL("slice of dim %d: begin %lld and size %lld do not fit in %lld", d, (long long)a->begin[d],
                            (long long)a->shape[d], (long long)x->dims[d]);
            out->dims[d] = a->shape[d];
        }
        return NASC_OK;
    case NASC_PRIM_NORMALIZE:
        if (x->dims[0] == NASC_BATCH) return FAIL("normalize divides a whole tensor by its norm: it takes no batch dimension");
        *out = *x;
        return NASC_OK;
    case NASC_PRIM_RESHAPE: {
        if (a->shape_rank < 1 || a->shape_rank > NASC_MAX_RANK)
            return FAIL("reshape needs a shape of rank 1 to %d", NASC_MAX_RANK);
        int64_t p = 1;
        for (int d = 0; d < a->shape_rank; d++) {
            if (a->shape[d] == NASC_BATCH && d == 0) continue;
            if (a->shape[d] < 1 || a->shape[d] > (1 << 24)) return FAIL("reshape dim %d must be 1..16777216", d);
            if (p > ((int64_t)1 << 40) / a->shape[d]) return FAIL("reshape to more than 2^40 elements");
            p *= a->shape[d];
        }
        if ((x->dims[0] == NASC_BATCH) != (a->shape[0] == NASC_BATCH))
            return FAIL("reshape must keep the batch dimension N as the first dim");
        if (p != nasc_type_numel(x)) {
            char ta[64];
            nasc_type_format(x, ta, sizeof ta);
            return FAIL("reshape of %s to %lld elements%s", ta, (long long)p, x->dims[0] == NASC_BATCH ? " per image" : "");
        }
        memset(out, 0, sizeof *out);
        out->dtype = x->dtype;
        out->rank = a->shape_rank;
        for (int d = 0; d < a->shape_rank; d++) out->dims[d] = a->shape[d];
        return NASC_OK;
    }
    default:
        return FAIL("unknown prim op");
    }
}

/* ---------------------------------------------------------------- */
/* Prim builder                                                      */
/* ---------------------------------------------------------------- */

int64_t nasc_prim_lookup(const nasc_module *m, const char *name, size_t len) {
    if (!m->value_index_cap) return -1;
    uint32_t mask = m->value_index_cap - 1;
    for (uint32_t i = hash_name(name, len) & mask;; i = (i + 1) & mask) {
        uint32_t e = m->value_index[i];
        if (!e) return -1;
        const char *vn = nasc_str(m, m->values[e - 1].name);
        if (strlen(vn) == len && memcmp(vn, name, len) == 0) return e - 1;
    }
}

static bool index_insert(nasc_module *m, uint32_t value) {
    if ((m->n_values + 1) * 2 > m->value_index_cap) {
        uint32_t ncap = m->value_index_cap ? m->value_index_cap * 2 : 64;
        uint32_t *idx = nasc_alloc(m->ctx, ncap * sizeof *idx);
        if (!idx) return false;
        memset(idx, 0, ncap * sizeof *idx);
        nasc_free(m->ctx, m->value_index);
        m->value_index = idx;
        m->value_index_cap = ncap;
        for (uint32_t v = 0; v < m->n_values; v++) {
            if (v == value) continue;
            const char *vn = nasc_str(m, m->values[v].name);
            uint32_t i = hash_name(vn, strlen(vn)) & (ncap - 1);
            while (idx[i]) i = (i + 1) & (ncap - 1);
            idx[i] = v + 1;
        }
    }
    const char *vn = nasc_str(m, m->values[value].name);
    uint32_t mask = m->value_index_cap - 1, i = hash_name(vn, strlen(vn)) & mask;
    while (m->value_index[i]) i = (i + 1) & mask;
    m->value_index[i] = value + 1;
    return true;
}

static uint32_t add_value(nasc_module *m, const char *name, const nasc_type *t, nasc_value_kind kind,
                          uint32_t def, nasc_loc loc) {
    nasc_ctx *ctx = m->ctx;
    if (m->dialect != NASC_DIALECT_PRIM) {
        nasc_error(ctx, NASC_EINPUT, m->source, loc, "values belong to the prim dialect");
        return UINT32_MAX;
    }
    if (!valid_name(name)) {
        nasc_error(ctx, NASC_EINPUT, m->source, loc, "bad value name '%s' (letters, digits, '_' and '.')", name);
        return UINT32_MAX;
    }
    size_t len = strlen(name);
    if (nasc_prim_lookup(m, name, len) >= 0) {
        nasc_error(ctx, NASC_EINPUT, m->source, loc, "duplicate name '%%%s'", name);
        return UINT32_MAX;
    }
    if (!GROW(m, values, cap_values, m->n_values + 1)) return UINT32_MAX;
    uint32_t sid = nasc_str_intern(m, name, len);
    if (sid == UINT32_MAX) return UINT32_MAX;
    uint32_t id = m->n_values;
    nasc_value *v = &m->values[id];
    v->name = sid;
    v->type = *t;
    v->kind = kind;
    v->def = def;
    if (!index_insert(m, id)) return UINT32_MAX;
    m->n_values++;
    return id;
}

static bool check_type(nasc_module *m, const nasc_type *t, const char *name, nasc_loc loc, bool batch) {
    bool ok = t->rank >= 1 && t->rank <= NASC_MAX_RANK && t->dtype == NASC_F32;
    for (int d = 0; ok && d < t->rank; d++)
        ok = (t->dims[d] >= 1 && t->dims[d] <= (1 << 24)) || (batch && d == 0 && t->dims[d] == NASC_BATCH);
    if (!ok) nasc_error(m->ctx, NASC_EINPUT, m->source, loc, "bad type for '%%%s'", name);
    return ok;
}

uint32_t nasc_prim_add_input(nasc_module *m, const char *name, const nasc_type *t) {
    if (!check_type(m, t, name, NASC_NOLOC, true)) return UINT32_MAX;
    return add_value(m, name, t, NASC_VAL_INPUT, 0, NASC_NOLOC);
}

uint32_t nasc_prim_add_param(nasc_module *m, const char *name, const nasc_type *t) {
    if (!check_type(m, t, name, NASC_NOLOC, false)) return UINT32_MAX;
    return add_value(m, name, t, NASC_VAL_PARAM, 0, NASC_NOLOC);
}

uint32_t nasc_prim_add_op(nasc_module *m, nasc_prim_op op, const uint32_t *args, uint32_t n_args,
                          const nasc_prim_attrs *a, const char *name, const char *group,
                          nasc_loc loc) {
    nasc_ctx *ctx = m->ctx;
    const nasc_prim_op_info *info = nasc_prim_op_info_get(op);
    if (!info) {
        nasc_error(ctx, NASC_EINPUT, m->source, loc, "unknown prim op");
        return UINT32_MAX;
    }
    nasc_type small[8], *types = small;
    if (n_args > 8) {
        types = nasc_alloc(ctx, n_args * sizeof *types);
        if (!types) return UINT32_MAX;
    }
    for (uint32_t i = 0; i < n_args; i++) {
        if (args[i] >= m->n_values) {
            nasc_error(ctx, NASC_EINPUT, m->source, loc, "operand %u of '%%%s' is not a defined value", i + 1, name);
            if (types != small) nasc_free(ctx, types);
            return UINT32_MAX;
        }
        types[i] = m->values[args[i]].type;
    }
    nasc_prim_attrs attrs = a ? *a : nasc_prim_attrs_default();
    nasc_type out;
    char msg[400];
    nasc_status s = nasc_prim_infer(op, &attrs, types, n_args, &out, msg, sizeof msg);
    if (types != small) nasc_free(ctx, types);
    if (s) {
        nasc_error(ctx, NASC_EINPUT, m->source, loc, "%s '%%%s': %s", info->name, name, msg);
        return UINT32_MAX;
    }
    if (!GROW(m, prims, cap_prims, m->n_prims + 1)) return UINT32_MAX;
    uint32_t gid = nasc_str_intern(m, group ? group : "", group ? strlen(group) : 0);
    if (gid == UINT32_MAX) return UINT32_MAX;
    uint32_t first = push_args(m, args, n_args);
    if (first == UINT32_MAX) return UINT32_MAX;
    uint32_t v = add_value(m, name, &out, NASC_VAL_OP, m->n_prims, loc);
    if (v == UINT32_MAX) return UINT32_MAX;
    nasc_prim *p = &m->prims[m->n_prims++];
    p->op = op;
    p->result = v;
    p->first_arg = first;
    p->n_args = n_args;
    p->a = attrs;
    p->group = gid;
    p->loc = loc;
    return v;
}

nasc_status nasc_prim_add_output(nasc_module *m, uint32_t value) {
    if (value >= m->n_values) return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "output is not a defined value");
    if (!GROW(m, outputs, cap_outputs, m->n_outputs + 1)) return m->ctx->diag.status;
    m->outputs[m->n_outputs++] = value;
    return NASC_OK;
}
