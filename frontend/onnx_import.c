/* onnx_import.c - an ONNX ModelProto as a verified prim module and a
 * parameter store (docs/onnx-import.md).
 *
 * The pipeline, in order:
 *   unpack         protobuf-c, allocating from the context
 *   check_model    graph present, default-domain opset, no external data
 *   name_all       every ONNX tensor name gets a symbol and a sanitised,
 *                  unique prim name (so helper values never collide)
 *   constants      initializers, then feeds, decoded into ox_const
 *   plan_inputs    which graph inputs are values (prim inputs, in graph
 *                  order) and which are only read as constants
 *   lower_nodes    node by node in ONNX order (a use before a definition
 *                  is a cycle or a misordered graph); onnx_ops.c has the
 *                  operator table and most lowerings, onnx_fold.c the
 *                  operators evaluated at import (shape chains),
 *                  onnx_window.c Pad, Slice and Gather
 *   bind_outputs   graph outputs become prim outputs; declared shapes must
 *                  match the inferred ones
 *   verify         nasc_prim_verify
 *
 * Everything the import allocates for itself lives in one arena freed at
 * the end; the module, the store and the info are the caller's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "pb_depth.h"

/* ---------------------------------------------------------------- */
/* Memory                                                            */
/* ---------------------------------------------------------------- */

void *ox_alloc(ox_imp *x, size_t size) { return nasc_onnx_arena_alloc(&x->arena, size); }

char *ox_strdup(ox_imp *x, const char *s) { return nasc_onnx_arena_strdup(&x->arena, s); }

static bool grow(ox_imp *x, void **p, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    if (need > (1u << 28)) {
        nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "the model is too large");
        return false;
    }
    uint32_t nc = *cap ? *cap * 2 : 32;
    while (nc < need) nc *= 2;
    void *q = nasc_realloc(x->ctx, *p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* ---------------------------------------------------------------- */
/* Diagnostics                                                       */
/* ---------------------------------------------------------------- */

const Onnx__NodeProto *ox_node(ox_imp *x) { return x->cur >= 0 ? x->g->node[x->cur] : NULL; }

static bool name_ok(const char *s) { return s && s[0]; }

nasc_status ox_fail(ox_imp *x, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = ox_node(x);
    if (!n) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "%s", msg);
    char who[160];
    if (n->name && n->name[0])
        snprintf(who, sizeof who, "'%.100s' (#%d", n->name, x->cur);
    else
        snprintf(who, sizeof who, "#%d (unnamed", x->cur);
    return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "node %s, %.60s): %s", who,
                      n->op_type ? n->op_type : "?", msg);
}

/* ---------------------------------------------------------------- */
/* Names                                                             */
/* ---------------------------------------------------------------- */

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The symbol of an ONNX name, or -1. */
static int64_t sym_find(const ox_imp *x, const char *name) {
    if (!x->index_cap) return -1;
    uint32_t mask = x->index_cap - 1;
    for (uint32_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        uint32_t e = x->index[i];
        if (!e) return -1;
        if (strcmp(x->syms[e - 1].name, name) == 0) return e - 1;
    }
}

static bool pname_taken(const ox_imp *x, const char *name) {
    if (!x->pindex_cap) return false;
    uint32_t mask = x->pindex_cap - 1;
    for (uint32_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        uint32_t e = x->pindex[i];
        if (!e) return false;
        if (strcmp(x->pnames[e - 1], name) == 0) return true;
    }
}

/* Rebuild an open-addressing table of cap slots over n keys. */
static bool rehash(ox_imp *x, uint32_t **tab, uint32_t *tcap, uint32_t n,
                   const char *(*key)(const ox_imp *, uint32_t)) {
    uint32_t cap = *tcap ? *tcap : 64;
    while (cap < 2 * (n + 1)) cap *= 2;
    if (cap == *tcap) return true;
    uint32_t *t = nasc_alloc(x->ctx, cap * sizeof *t);
    if (!t) return false;
    memset(t, 0, cap * sizeof *t);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = hash_str(key(x, k)) & (cap - 1);
        while (t[i]) i = (i + 1) & (cap - 1);
        t[i] = k + 1;
    }
    nasc_free(x->ctx, *tab);
    *tab = t;
    *tcap = cap;
    return true;
}

static const char *sym_key(const ox_imp *x, uint32_t k) { return x->syms[k].name; }
static const char *pname_key(const ox_imp *x, uint32_t k) { return x->pnames[k]; }

static bool reserve(ox_imp *x, const char *name) {
    if (!grow(x, (void **)&x->pnames, &x->cap_pnames, x->n_pnames + 1, sizeof *x->pnames)) return false;
    x->pnames[x->n_pnames++] = name;
    if (2 * (x->n_pnames + 1) > x->pindex_cap) return rehash(x, &x->pindex, &x->pindex_cap, x->n_pnames, pname_key);
    uint32_t mask = x->pindex_cap - 1, i = hash_str(name) & mask;
    while (x->pindex[i]) i = (i + 1) & mask;
    x->pindex[i] = x->n_pnames;
    return true;
}

#define NAME_MAX_LEN 160

/* A unique prim name for base + suffix: letters, digits, '_' and '.' only
 * (others become '_'), at most NAME_MAX_LEN bytes, then "_2", "_3", ...
 * until it is free. Reserved before returning. */
static const char *unique_name(ox_imp *x, const char *base, const char *suffix) {
    char buf[NAME_MAX_LEN + 40];
    size_t n = 0;
    for (const char *s = base; *s && n < NAME_MAX_LEN; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        buf[n++] = ok ? (char)c : '_';
    }
    if (n == 0) buf[n++] = 't';
    if (suffix) {
        buf[n++] = '.';
        for (const char *s = suffix; *s && n < NAME_MAX_LEN + 20; s++) buf[n++] = *s;
    }
    buf[n] = 0;
    char cand[NAME_MAX_LEN + 64];
    snprintf(cand, sizeof cand, "%s", buf);
    for (unsigned k = 2; pname_taken(x, cand); k++) snprintf(cand, sizeof cand, "%s_%u", buf, k);
    char *d = ox_strdup(x, cand);
    if (!d || !reserve(x, d)) return NULL;
    return d;
}

const char *ox_fresh(ox_imp *x, const char *base, const char *suffix) { return unique_name(x, base, suffix); }

/* The symbol of an ONNX name, created when missing (*made says so). */
static int64_t sym_get(ox_imp *x, const char *name, bool *made) {
    int64_t k = sym_find(x, name);
    if (made) *made = k < 0;
    if (k >= 0) return k;
    if (!grow(x, (void **)&x->syms, &x->cap_syms, x->n_syms + 1, sizeof *x->syms)) return -1;
    ox_sym *s = &x->syms[x->n_syms];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->konst = -1;
    s->def = -1;
    s->value = UINT32_MAX;
    x->n_syms++;
    if (2 * (x->n_syms + 1) > x->index_cap) {
        if (!rehash(x, &x->index, &x->index_cap, x->n_syms, sym_key)) return -1;
    } else {
        uint32_t mask = x->index_cap - 1, i = hash_str(name) & mask;
        while (x->index[i]) i = (i + 1) & mask;
        x->index[i] = x->n_syms;
    }
    return x->n_syms - 1;
}

/* ---------------------------------------------------------------- */
/* Constants                                                         */
/* ---------------------------------------------------------------- */

static int const_add(ox_imp *x) {
    if (!grow(x, (void **)&x->consts, &x->cap_consts, x->n_consts + 1, sizeof *x->consts)) return -1;
    memset(&x->consts[x->n_consts], 0, sizeof x->consts[0]);
    return (int)x->n_consts++;
}

#define MAX_NUMEL ((int64_t)1 << 31)

int ox_const_make(ox_imp *x, int dtype, int rank, const int64_t *dims) {
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && numel > MAX_NUMEL / dims[i])) {
            ox_fail(x, "a constant of more than 2^31 elements (or a negative dim) is not supported");
            return -1;
        }
        numel *= dims[i];
    }
    int k = const_add(x);
    if (k < 0) return -1;
    ox_const *c = &x->consts[k];
    c->dtype = dtype;
    c->rank = rank;
    c->numel = numel;
    for (int i = 0; i < rank; i++) c->dims[i] = dims[i];
    size_t n = (size_t)(numel ? numel : 1);
    if (dtype == OX_I64)
        c->i = ox_alloc(x, n * sizeof *c->i);
    else
        c->f = ox_alloc(x, n * sizeof *c->f);
    return c->i || c->f ? k : -1;
}

int ox_const_new(ox_imp *x, int rank, const int64_t *dims) { return ox_const_make(x, OX_F32, rank, dims); }

/* Decode a TensorProto into c. A tensor nasc cannot read is not an error
 * yet: c->why says why, and it becomes one when something uses it. Only
 * out of memory fails. */
nasc_status ox_decode(ox_imp *x, const Onnx__TensorProto *t, ox_const *c) {
    char buf[200];
    memset(c, 0, sizeof *c);
    if ((t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        t->n_external_data) {
        c->why = "its data is in an external file (not supported)";
        return NASC_OK;
    }
    if (t->segment) {
        c->why = "it is segmented (not supported)";
        return NASC_OK;
    }
    if (t->n_dims > OX_MAX_RANK) {
        c->why = "it has more than 8 dims";
        return NASC_OK;
    }
    int64_t numel = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || (t->dims[d] > 0 && numel > MAX_NUMEL / t->dims[d])) {
            c->why = t->dims[d] < 0 ? "it has a negative dim" : "it is too large";
            return NASC_OK;
        }
        numel *= t->dims[d];
        c->dims[d] = t->dims[d];
    }
    c->rank = (int)t->n_dims;
    c->numel = numel;
    int32_t dt = t->has_data_type ? t->data_type : 0;
    size_t have, size;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data, size = 4; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data, size = 8; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: have = t->n_int32_data, size = 4; break;
    default:
        snprintf(buf, sizeof buf, "its data type is %s (%d); nasc reads FLOAT, INT64 and INT32 tensors", nasc_onnx_elem_name(dt),
                 (int)dt);
        c->why = ox_strdup(x, buf);
        return c->why ? NASC_OK : NASC_ENOMEM;
    }
    if (t->has_raw_data) have = t->raw_data.len / size;
    if ((int64_t)have != numel || (t->has_raw_data && t->raw_data.len % size)) {
        snprintf(buf, sizeof buf, "it holds %zu values (%s) where its dims need %lld",
                 t->has_raw_data ? t->raw_data.len / size : have, t->has_raw_data ? "raw_data" : "typed field",
                 (long long)numel);
        c->why = ox_strdup(x, buf);
        return c->why ? NASC_OK : NASC_ENOMEM;
    }
    size_t n = (size_t)(numel ? numel : 1);
    if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        c->f = ox_alloc(x, n * sizeof *c->f);
        if (!c->f) return NASC_ENOMEM;
        for (int64_t i = 0; i < numel; i++) {
            c->f[i] = t->has_raw_data ? nasc_onnx_raw_f32(t->raw_data.data, (size_t)i) : t->float_data[i];
        }
        c->dtype = OX_F32;
    } else {
        c->i = ox_alloc(x, n * sizeof *c->i);
        if (!c->i) return NASC_ENOMEM;
        for (int64_t i = 0; i < numel; i++) {
            if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
                c->i[i] = t->has_raw_data ? nasc_onnx_raw_i64(t->raw_data.data, (size_t)i) : t->int64_data[i];
            else
                c->i[i] = t->has_raw_data ? nasc_onnx_raw_i32(t->raw_data.data, (size_t)i) : t->int32_data[i];
        }
        c->dtype = OX_I64;
    }
    return NASC_OK;
}

/* ---------------------------------------------------------------- */
/* Node inputs and attributes                                        */
/* ---------------------------------------------------------------- */

const char *ox_in(ox_imp *x, uint32_t i) {
    const Onnx__NodeProto *n = ox_node(x);
    if (!n || i >= n->n_input || !n->input[i] || !n->input[i][0]) return NULL;
    return n->input[i];
}

ox_sym *ox_in_sym(ox_imp *x, uint32_t i) {
    const char *name = ox_in(x, i);
    int64_t k = name ? sym_find(x, name) : -1;
    return k >= 0 ? &x->syms[k] : NULL;
}

bool ox_is_const(ox_imp *x, uint32_t i) {
    ox_sym *s = ox_in_sym(x, i);
    return s && s->konst >= 0;
}

bool ox_has_value(ox_imp *x, uint32_t i) {
    ox_sym *s = ox_in_sym(x, i);
    return s && s->value != UINT32_MAX;
}

const ox_const *ox_const_in(ox_imp *x, uint32_t i, const char *what) {
    const ox_const *c = ox_shape_in(x, i, what);
    if (c && c->nb) {
        ox_fail(x, "input %u '%.80s' (the %s) depends on the batch size N, which is not known at import", i + 1,
                ox_in(x, i), what);
        return NULL;
    }
    return c;
}

const ox_const *ox_shape_in(ox_imp *x, uint32_t i, const char *what) {
    ox_sym *s = ox_in_sym(x, i);
    if (!s) {
        ox_fail(x, "input %u (the %s) is missing", i + 1, what);
        return NULL;
    }
    if (s->konst < 0) {
        ox_fail(x, "input %u '%.80s' (the %s) must be a constant: an initializer or a Constant node", i + 1, s->name,
                what);
        return NULL;
    }
    const ox_const *c = &x->consts[s->konst];
    if (c->dtype == OX_NONE) {
        ox_fail(x, "input %u '%.80s' (the %s) cannot be read: %s", i + 1, s->name, what, c->why);
        return NULL;
    }
    return c;
}

bool ox_all_const(ox_imp *x) {
    const Onnx__NodeProto *n = ox_node(x);
    for (uint32_t i = 0; i < n->n_input; i++) {
        ox_sym *s = ox_in_sym(x, i);
        if (ox_in(x, i) && (!s || s->konst < 0 || s->value != UINT32_MAX)) return false;
    }
    return true;
}

const nasc_type *ox_type(ox_imp *x, uint32_t value) { return &x->m->values[value].type; }

uint32_t ox_value(ox_imp *x, uint32_t i) {
    ox_sym *s = ox_in_sym(x, i);
    if (!s) {
        ox_fail(x, "input %u is missing", i + 1);
        return UINT32_MAX;
    }
    if (s->value != UINT32_MAX) return s->value;
    if (s->win) return ox_window_emit(x, s);
    if (s->konst < 0) {
        ox_fail(x, "input %u '%.80s' has no value", i + 1, s->name);
        return UINT32_MAX;
    }
    const ox_const *c = &x->consts[s->konst];
    if (c->dtype != OX_F32) {
        ox_fail(x, "input %u '%.80s' cannot be used as a tensor: %s", i + 1, s->name,
                c->dtype == OX_NONE ? c->why : "it is INT64 (nasc computes in float only)");
        return UINT32_MAX;
    }
    return ox_param(x, s->konst, -1, NULL, NULL, 0);
}

const Onnx__AttributeProto *ox_attr(ox_imp *x, const char *name) {
    const Onnx__NodeProto *n = ox_node(x);
    for (size_t i = 0; n && i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

/* The attribute's type, inferred from its content when the type field is missing (old models). */
static int attr_type(const Onnx__AttributeProto *a) {
    if (a->has_type) return a->type;
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static bool attr_wrong(ox_imp *x, const char *name, const char *want) {
    ox_fail(x, "attribute '%s' must be %s", name, want);
    return false;
}

bool ox_attr_int(ox_imp *x, const char *name, int64_t dflt, int64_t *out) {
    const Onnx__AttributeProto *a = ox_attr(x, name);
    *out = dflt;
    if (!a) return true;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) return attr_wrong(x, name, "an integer");
    *out = a->i;
    return true;
}

bool ox_attr_float(ox_imp *x, const char *name, float dflt, float *out) {
    const Onnx__AttributeProto *a = ox_attr(x, name);
    *out = dflt;
    if (!a) return true;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) return attr_wrong(x, name, "a float");
    *out = a->f;
    return true;
}

bool ox_attr_ints(ox_imp *x, const char *name, int64_t *out, int cap, int *n) {
    const Onnx__AttributeProto *a = ox_attr(x, name);
    *n = 0;
    if (!a) return true;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) return attr_wrong(x, name, "a list of integers");
    if (a->n_ints > (size_t)cap) {
        ox_fail(x, "attribute '%s' has %zu values; at most %d are supported here", name, a->n_ints, cap);
        return false;
    }
    for (size_t i = 0; i < a->n_ints; i++) out[i] = a->ints[i];
    *n = (int)a->n_ints;
    return true;
}

bool ox_attr_string(ox_imp *x, const char *name, const char *dflt, char *buf, size_t size) {
    const Onnx__AttributeProto *a = ox_attr(x, name);
    snprintf(buf, size, "%s", dflt);
    if (!a) return true;
    if (attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) return attr_wrong(x, name, "a string");
    size_t n = a->s.len < size - 1 ? a->s.len : size - 1;
    if (n) memcpy(buf, a->s.data, n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 0 || (unsigned char)buf[i] < 0x20) buf[i] = '?';
    return true;
}

bool ox_attrs_known(ox_imp *x, const char *const *known) {
    const Onnx__NodeProto *n = ox_node(x);
    for (size_t i = 0; i < n->n_attribute; i++) {
        const char *an = n->attribute[i]->name ? n->attribute[i]->name : "";
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, an) == 0;
        if (!ok) {
            ox_fail(x, "attribute '%.60s' is not supported", an);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- */
/* Results, parameters                                               */
/* ---------------------------------------------------------------- */

ox_sym *ox_out_sym(ox_imp *x, uint32_t out) {
    const Onnx__NodeProto *n = ox_node(x);
    if (!n || out >= n->n_output || !n->output[out] || !n->output[out][0]) return NULL;
    int64_t k = sym_find(x, n->output[out]);
    return k >= 0 ? &x->syms[k] : NULL;
}

const char *ox_out_pname(ox_imp *x, uint32_t out) {
    ox_sym *s = ox_out_sym(x, out);
    return s ? s->pname : "t";
}

nasc_status ox_define(ox_imp *x, uint32_t out, uint32_t value) {
    if (value == UINT32_MAX) return x->ctx->diag.status ? x->ctx->diag.status : NASC_EINTERNAL;
    ox_sym *s = ox_out_sym(x, out);
    if (!s) return NASC_OK; /* an optional output nobody asked for */
    s->value = value;
    s->defined = true;
    return NASC_OK;
}

nasc_status ox_define_const(ox_imp *x, uint32_t out, int konst) {
    if (konst < 0) return x->ctx->diag.status ? x->ctx->diag.status : NASC_ENOMEM;
    ox_sym *s = ox_out_sym(x, out);
    if (!s) return NASC_OK;
    s->konst = konst;
    s->defined = true;
    if (!x->consts[konst].pname) x->consts[konst].pname = s->pname;
    return NASC_OK;
}

uint32_t ox_op(ox_imp *x, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a, uint32_t out) {
    for (uint32_t i = 0; i < n; i++)
        if (args[i] == UINT32_MAX) return UINT32_MAX;
    uint32_t v = nasc_prim_add_op(x->m, op, args, n, a, ox_out_pname(x, out), x->group, NASC_NOLOC);
    if (v == UINT32_MAX && x->ctx->diag.status == NASC_EINPUT) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", x->ctx->diag.msg);
        ox_fail(x, "%s", msg);
    }
    return v;
}

uint32_t ox_op_tmp(ox_imp *x, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a, uint32_t out,
                   const char *suffix) {
    for (uint32_t i = 0; i < n; i++)
        if (args[i] == UINT32_MAX) return UINT32_MAX;
    const char *name = ox_fresh(x, ox_out_pname(x, out), suffix);
    if (!name) return UINT32_MAX;
    uint32_t v = nasc_prim_add_op(x->m, op, args, n, a, name, x->group, NASC_NOLOC);
    if (v == UINT32_MAX && x->ctx->diag.status == NASC_EINPUT) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", x->ctx->diag.msg);
        ox_fail(x, "%s", msg);
    }
    return v;
}

static bool same_dims(int ra, const int64_t *a, int rb, const int64_t *b) {
    if (ra != rb) return false;
    for (int i = 0; i < ra; i++)
        if (a[i] != b[i]) return false;
    return true;
}

uint32_t ox_param(ox_imp *x, int k, int rank, const int64_t *dims, const char *name, uint32_t out) {
    const ox_const *c = &x->consts[k];
    int64_t own[NASC_MAX_RANK];
    if (!dims) {
        if (c->rank > NASC_MAX_RANK) {
            ox_fail(x, "constant '%s' has rank %d; nasc tensors have rank 1 to %d", c->pname ? c->pname : "?", c->rank,
                    NASC_MAX_RANK);
            return UINT32_MAX;
        }
        rank = c->rank ? c->rank : 1;
        own[0] = 1;
        for (int i = 0; i < c->rank; i++) own[i] = c->dims[i];
        dims = own;
    }
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) numel *= dims[i];
    if (c->dtype != OX_F32 || numel != c->numel || numel < 1) {
        ox_fail(x, "constant '%s' cannot be a float tensor of %lld elements", c->pname ? c->pname : "?",
                (long long)numel);
        return UINT32_MAX;
    }
    for (uint32_t i = 0; i < x->n_params; i++) {
        const ox_made *p = &x->params[i];
        if (p->konst == k && same_dims(p->rank, p->dims, rank, dims) && !name) return p->value;
    }
    const char *pn;
    if (name)
        pn = ox_fresh(x, ox_out_pname(x, out), name);
    else if (c->pname && nasc_prim_lookup(x->m, c->pname, strlen(c->pname)) < 0)
        pn = c->pname; /* reserved for it when the names were given out */
    else
        pn = ox_fresh(x, c->pname ? c->pname : ox_out_pname(x, out), "r");
    if (!pn) return UINT32_MAX;
    nasc_type t;
    memset(&t, 0, sizeof t);
    t.dtype = NASC_F32;
    t.rank = rank;
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    uint32_t v = nasc_prim_add_param(x->m, pn, &t);
    if (v == UINT32_MAX) return UINT32_MAX;
    nasc_tensor *ts = nasc_params_find(x->w, pn);
    if (ts) {
        nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "the store already holds a tensor named '%s'", pn);
        return UINT32_MAX;
    }
    ts = nasc_params_get(x->w, pn, rank, t.dims);
    if (!ts) return UINT32_MAX;
    memcpy(ts->data, c->f, (size_t)numel * sizeof *ts->data);
    if (!grow(x, (void **)&x->params, &x->cap_params, x->n_params + 1, sizeof *x->params)) return UINT32_MAX;
    ox_made *p = &x->params[x->n_params++];
    memset(p, 0, sizeof *p);
    p->konst = k;
    p->rank = rank;
    for (int i = 0; i < rank; i++) p->dims[i] = dims[i];
    p->value = v;
    return v;
}

nasc_status ox_store(ox_imp *x, const char *name, int k) {
    const ox_const *c = &x->consts[k];
    if (c->dtype != OX_F32 || c->numel < 1) return ox_fail(x, "'%s' must be a float tensor", name);
    if (nasc_params_find(x->w, name)) return ox_fail(x, "the store already holds a tensor named '%s'", name);
    int64_t n = c->numel;
    nasc_tensor *t = nasc_params_get(x->w, name, 1, &n);
    if (!t) return x->ctx->diag.status ? x->ctx->diag.status : NASC_ENOMEM;
    memcpy(t->data, c->f, (size_t)n * sizeof *t->data);
    return NASC_OK;
}

/* ---------------------------------------------------------------- */
/* The pipeline                                                      */
/* ---------------------------------------------------------------- */

static nasc_status check_model(ox_imp *x) {
    const Onnx__ModelProto *mp = x->model;
    if (!mp->graph) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "the model has no graph");
    x->g = mp->graph;
    x->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        const char *d = o->domain ? o->domain : "";
        if ((d[0] == 0 || strcmp(d, "ai.onnx") == 0) && o->has_version) x->opset = o->version;
    }
    if (x->opset < 0) {
        if (mp->n_opset_import)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "the model imports no version of the default ONNX operator set");
        x->opset = 1; /* IR version 2 models have no opset_import: operator set 1 */
    }
    if (x->opset > 18)
        return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                          "operator set %lld is newer than nasc knows (at most 18)", (long long)x->opset);
    if (x->g->n_sparse_initializer)
        return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "sparse initializers are not supported");
    if (x->g->n_output == 0) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "the graph has no outputs");
    return NASC_OK;
}

/* Every name: initializers first (they shadow graph inputs of the same
 * name), graph inputs, node outputs. Prim names are given in that order. */
static nasc_status name_all(ox_imp *x) {
    const Onnx__GraphProto *g = x->g;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const char *n = g->initializer[i]->name;
        if (!name_ok(n)) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "initializer %zu has no name", i);
        bool made;
        int64_t k = sym_get(x, n, &made);
        if (k < 0) return x->ctx->diag.status;
        if (!made)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "initializer '%.100s' is given twice", n);
        x->syms[k].origin = OX_INIT;
        x->syms[k].def = (int)i;
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *n = g->input[i]->name;
        if (!name_ok(n)) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "graph input %zu has no name", i);
        bool made;
        int64_t k = sym_get(x, n, &made);
        if (k < 0) return x->ctx->diag.status;
        if (!made && x->syms[k].origin == OX_INPUT)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "graph input '%.100s' is listed twice", n);
        if (made) {
            x->syms[k].origin = OX_INPUT;
            x->syms[k].def = (int)i;
        }
    }
    for (size_t ni = 0; ni < g->n_node; ni++) {
        const Onnx__NodeProto *nd = g->node[ni];
        for (size_t o = 0; o < nd->n_output; o++) {
            const char *n = nd->output[o];
            if (!name_ok(n)) continue;
            bool made;
            int64_t k = sym_get(x, n, &made);
            if (k < 0) return x->ctx->diag.status;
            if (!made) {
                x->cur = (int)ni;
                nasc_status st = ox_fail(x, "output '%.100s' is already defined (by %s)", n,
                                         x->syms[k].origin == OX_NODE   ? "another node"
                                         : x->syms[k].origin == OX_INIT ? "an initializer"
                                                                        : "a graph input");
                x->cur = -1;
                return st;
            }
            x->syms[k].origin = OX_NODE;
            x->syms[k].def = (int)ni;
        }
    }
    for (uint32_t k = 0; k < x->n_syms; k++)
        if (!(x->syms[k].pname = unique_name(x, x->syms[k].name, NULL))) return x->ctx->diag.status;
    /* uses: what each name feeds */
    for (size_t ni = 0; ni < g->n_node; ni++) {
        const Onnx__NodeProto *nd = g->node[ni];
        for (size_t i = 0; i < nd->n_input; i++) {
            if (!name_ok(nd->input[i])) continue;
            int64_t k = sym_find(x, nd->input[i]);
            if (k < 0) continue; /* reported when the node is lowered */
            x->syms[k].uses++;
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        int64_t k = g->output[i]->name ? sym_find(x, g->output[i]->name) : -1;
        if (k >= 0) x->syms[k].is_output = true;
    }
    return NASC_OK;
}

static nasc_status constants(ox_imp *x, const nasc_onnx_import_options *o) {
    const Onnx__GraphProto *g = x->g;
    for (size_t i = 0; i < g->n_initializer; i++) {
        int64_t s = sym_find(x, g->initializer[i]->name);
        int k = const_add(x);
        if (k < 0) return NASC_ENOMEM;
        nasc_status st = ox_decode(x, g->initializer[i], &x->consts[k]);
        if (st) return st;
        x->consts[k].pname = x->syms[s].pname;
        x->syms[s].konst = k;
    }
    if (!o || !o->n_feeds) return NASC_OK;
    x->feeds = nasc_alloc(x->ctx, o->n_feeds * sizeof *x->feeds);
    if (!x->feeds) return NASC_ENOMEM;
    for (uint32_t f = 0; f < o->n_feeds; f++) {
        const nasc_onnx_feed *fd = &o->feeds[f];
        int64_t s = -1;
        if (fd->name) {
            s = sym_find(x, fd->name);
        } else {
            /* unnamed: the f-th graph input that is not an initializer */
            uint32_t seen = 0;
            for (size_t i = 0; i < g->n_input && s < 0; i++) {
                int64_t k = sym_find(x, g->input[i]->name);
                if (x->syms[k].origin == OX_INPUT && seen++ == f) s = k;
            }
        }
        if (s < 0 || x->syms[s].origin != OX_INPUT)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "feed %u ('%s') names no graph input", f,
                              fd->name ? fd->name : "unnamed");
        if (x->syms[s].konst >= 0)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "graph input '%.100s' is fed twice",
                              x->syms[s].name);
        Onnx__TensorProto *t = onnx__tensor_proto__unpack(&x->pb.base, fd->len, fd->data);
        if (!t) {
            if (x->pb.oom) return nasc_error(x->ctx, NASC_ENOMEM, x->file, NASC_NOLOC, "out of memory");
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "feed %u: not an ONNX TensorProto (truncated or malformed protobuf)", f);
        }
        x->feeds[x->n_feeds++] = t;
        int k = const_add(x);
        if (k < 0) return NASC_ENOMEM;
        nasc_status st = ox_decode(x, t, &x->consts[k]);
        if (st) return st;
        x->consts[k].pname = x->syms[s].pname;
        x->syms[s].konst = k;
    }
    return NASC_OK;
}

/* Dims of a tensor type: dim 0 symbolic (a dim_param, 0 or unset) is the
 * batch; any other dim must be a positive number, except in a declaration
 * (any != NULL: graph outputs, value_info), where a symbolic dim d is
 * "whatever nasc computes" (any[d] set). rank 0 reads as [1]. */
static nasc_status tensor_type(ox_imp *x, const Onnx__TypeProto *tp, const char *what, const char *name, nasc_type *t,
                               bool *any) {
    memset(t, 0, sizeof *t);
    for (int d = 0; any && d < NASC_MAX_RANK; d++) any[d] = false;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "%s '%.100s' is not a tensor", what, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                          "%s '%.100s' is a tensor of %s; nasc computes in float (FLOAT) only", what, name,
                          tt->has_elem_type ? nasc_onnx_elem_name(tt->elem_type) : "no element type");
    if (!tt->shape) return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "%s '%.100s' has no shape", what, name);
    if (tt->shape->n_dim > NASC_MAX_RANK)
        return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                          "%s '%.100s' has rank %zu; nasc tensors have rank 1 to %d", what, name, tt->shape->n_dim,
                          NASC_MAX_RANK);
    t->dtype = NASC_F32;
    t->rank = tt->shape->n_dim ? (int)tt->shape->n_dim : 1;
    t->dims[0] = 1;
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
        bool sym = dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dm->dim_value == 0;
        if (sym && d == 0) {
            t->dims[d] = NASC_BATCH;
        } else if (sym && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "%s '%.100s': dim %zu is 0 (an empty tensor is not supported)", what, name, d);
        } else if (sym && any) {
            any[d] = true;
            t->dims[d] = 1;
        } else if (sym) {
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "%s '%.100s': dim %zu is symbolic; only the first dim may be (the batch)", what, name, d);
        } else if (dm->dim_value < 0 || dm->dim_value > (1 << 24)) {
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC, "%s '%.100s': dim %zu is %lld (1 to 2^24 are supported)",
                              what, name, d, (long long)dm->dim_value);
        } else {
            t->dims[d] = dm->dim_value;
        }
    }
    int64_t numel = 1; /* dims are at most 2^24: check before each product */
    for (int d = 0; d < t->rank; d++) {
        if (t->dims[d] == NASC_BATCH) continue;
        if (numel > MAX_NUMEL / t->dims[d])
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "%s '%.100s' is too large (more than 2^31 elements per image)", what, name);
        numel *= t->dims[d];
    }
    return NASC_OK;
}

/* Which graph inputs are values: count their uses in value and constant
 * slots, then give every input used as a value (or not at all) a prim
 * input, in graph order. An input only read in constant slots (a fed
 * weight, a shape) stays a constant. */
static nasc_status plan_inputs(ox_imp *x) {
    const Onnx__GraphProto *g = x->g;
    for (size_t ni = 0; ni < g->n_node; ni++) {
        const Onnx__NodeProto *nd = g->node[ni];
        const ox_op_info *info = nd->op_type ? ox_op_find(nd->op_type) : NULL;
        for (size_t i = 0; i < nd->n_input; i++) {
            if (!name_ok(nd->input[i])) continue;
            int64_t k = sym_find(x, nd->input[i]);
            if (k < 0 || x->syms[k].origin != OX_INPUT) continue;
            bool must = info && i < 32 && (info->const_slots >> i & 1);
            bool prefer = info && i < 32 && (info->prefer_slots >> i & 1);
            if (must || (prefer && x->syms[k].konst >= 0))
                x->syms[k].const_uses++;
            else
                x->syms[k].value_uses++;
        }
    }
    for (size_t i = 0; i < g->n_input; i++) {
        int64_t k = sym_find(x, g->input[i]->name);
        ox_sym *s = &x->syms[k];
        if (s->origin != OX_INPUT) continue; /* an initializer's default */
        if (s->const_uses && !s->value_uses && !s->is_output) continue;
        nasc_type t;
        nasc_status st = tensor_type(x, g->input[i]->type, "graph input", s->name, &t, NULL);
        if (st) return st;
        s->value = nasc_prim_add_input(x->m, s->pname, &t);
        if (s->value == UINT32_MAX) return x->ctx->diag.status;
    }
    return NASC_OK;
}

static nasc_status lower_nodes(ox_imp *x) {
    const Onnx__GraphProto *g = x->g;
    for (size_t ni = 0; ni < g->n_node; ni++) {
        x->cur = (int)ni;
        const Onnx__NodeProto *nd = g->node[ni];
        const char *dom = nd->domain ? nd->domain : "";
        if (dom[0] && strcmp(dom, "ai.onnx") != 0)
            return ox_fail(x, "operators of domain '%.60s' are not supported", dom);
        const ox_op_info *info = nd->op_type ? ox_op_find(nd->op_type) : NULL;
        if (!info) return ox_fail(x, "operator '%.60s' is not supported", nd->op_type ? nd->op_type : "");
        for (size_t i = 0; i < nd->n_input; i++) {
            if (!name_ok(nd->input[i])) continue;
            int64_t k = sym_find(x, nd->input[i]);
            if (k < 0)
                return ox_fail(x, "input '%.100s' is not defined by any node, graph input or initializer",
                               nd->input[i]);
            const ox_sym *s = &x->syms[k];
            if (s->origin == OX_NODE && !s->defined)
                return ox_fail(x, "input '%.100s' is used before it is defined (a cycle, or nodes out of order)",
                               nd->input[i]);
        }
        nasc_status st = info->lower(x);
        if (st) return st;
        for (size_t o = 0; o < nd->n_output; o++) {
            if (!name_ok(nd->output[o])) continue;
            const ox_sym *s = &x->syms[sym_find(x, nd->output[o])];
            if (!s->defined) return ox_fail(x, "output %zu ('%.100s') is not supported", o + 1, nd->output[o]);
        }
    }
    x->cur = -1;
    return NASC_OK;
}

static nasc_status bind_outputs(ox_imp *x) {
    const Onnx__GraphProto *g = x->g;
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = g->output[i];
        const char *n = vi->name ? vi->name : "";
        int64_t k = sym_find(x, n);
        if (k < 0 || (x->syms[k].origin == OX_NODE && !x->syms[k].defined))
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "graph output '%.100s' is not defined by any node, input or initializer", n);
        ox_sym *s = &x->syms[k];
        if (s->value == UINT32_MAX)
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "graph output '%.100s' is a constant; nasc outputs computed tensors only", n);
        nasc_type want;
        bool any[NASC_MAX_RANK];
        const Onnx__TypeProto *tp = vi->type;
        bool no_shape = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
                        !tp->tensor_type->shape && tp->tensor_type->has_elem_type &&
                        tp->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        nasc_status st = NASC_OK;
        if (no_shape)
            want.rank = 0; /* no shape given: nothing to check */
        else if ((st = tensor_type(x, tp, "graph output", n, &want, any)))
            return st;
        const nasc_type *have = ox_type(x, s->value);
        bool ok = want.rank == 0 || want.rank == have->rank;
        for (int d = 0; ok && d < want.rank; d++)
            ok = any[d] || want.dims[d] == have->dims[d] || (d == 0 && want.dims[0] == NASC_BATCH);
        if (!ok) {
            char a[64], b[64];
            nasc_type_format(&want, a, sizeof a);
            nasc_type_format(have, b, sizeof b);
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "graph output '%.100s' is declared %s but its node computes %s", n, a, b);
        }
        if ((st = nasc_prim_add_output(x->m, s->value))) return st;
    }
    return NASC_OK;
}

/* Shapes the model declares for intermediate tensors (value_info) must be
 * what nasc infers. */
static nasc_status check_value_info(ox_imp *x) {
    const Onnx__GraphProto *g = x->g;
    for (size_t i = 0; i < g->n_value_info; i++) {
        const Onnx__ValueInfoProto *vi = g->value_info[i];
        int64_t k = vi->name ? sym_find(x, vi->name) : -1;
        if (k < 0 || x->syms[k].value == UINT32_MAX || !vi->type) continue;
        const Onnx__TypeProto *tp = vi->type;
        if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type || !tp->tensor_type->shape)
            continue;
        nasc_type want;
        bool any[NASC_MAX_RANK];
        nasc_status st = tensor_type(x, tp, "value", vi->name, &want, any);
        if (st) return st;
        const nasc_type *have = ox_type(x, x->syms[k].value);
        bool ok = want.rank == have->rank;
        for (int d = 0; ok && d < want.rank; d++)
            ok = any[d] || want.dims[d] == have->dims[d] || (d == 0 && want.dims[0] == NASC_BATCH);
        if (!ok) {
            char a[64], b[64];
            nasc_type_format(&want, a, sizeof a);
            nasc_type_format(have, b, sizeof b);
            return nasc_error(x->ctx, NASC_EINPUT, x->file, NASC_NOLOC,
                              "tensor '%.100s' is declared %s (value_info) but its node computes %s", vi->name, a, b);
        }
    }
    return NASC_OK;
}

static nasc_status fill_info(ox_imp *x, nasc_onnx_import_info *info) {
    const Onnx__GraphProto *g = x->g;
    info->inputs = nasc_alloc(x->ctx, (g->n_input + 1) * sizeof *info->inputs);
    info->outputs = nasc_alloc(x->ctx, (g->n_output + 1) * sizeof *info->outputs);
    if (!info->inputs || !info->outputs) return NASC_ENOMEM;
    for (size_t i = 0; i < g->n_input; i++) {
        const ox_sym *s = &x->syms[sym_find(x, g->input[i]->name)];
        if (s->origin != OX_INPUT) continue;
        nasc_onnx_io *io = &info->inputs[info->n_inputs];
        if (!(io->name = nasc_strdup(x->ctx, s->name))) return NASC_ENOMEM;
        io->value = s->value == UINT32_MAX ? -1 : (int64_t)s->value;
        info->n_inputs++;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const ox_sym *s = &x->syms[sym_find(x, g->output[i]->name)];
        nasc_onnx_io *io = &info->outputs[info->n_outputs];
        if (!(io->name = nasc_strdup(x->ctx, s->name))) return NASC_ENOMEM;
        io->value = (int64_t)s->value;
        info->n_outputs++;
    }
    return NASC_OK;
}

void nasc_onnx_import_info_free(nasc_ctx *ctx, nasc_onnx_import_info *info) {
    if (!info) return;
    for (uint32_t i = 0; i < info->n_inputs; i++) nasc_free(ctx, info->inputs[i].name);
    for (uint32_t i = 0; i < info->n_outputs; i++) nasc_free(ctx, info->outputs[i].name);
    nasc_free(ctx, info->inputs);
    nasc_free(ctx, info->outputs);
    memset(info, 0, sizeof *info);
}

nasc_onnx_import_options nasc_onnx_import_options_default(void) {
    nasc_onnx_import_options o;
    memset(&o, 0, sizeof o);
    o.group = "onnx";
    return o;
}

nasc_status nasc_onnx_import_ex(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                                const nasc_onnx_import_options *o, nasc_module **prim, nasc_param_store **weights,
                                nasc_onnx_import_info *info) {
    *prim = NULL;
    if (weights) *weights = NULL;
    if (info) memset(info, 0, sizeof *info);
    nasc_onnx_import_options dflt = nasc_onnx_import_options_default();
    if (!o) o = &dflt;
    if (!file) file = "<onnx>";
    ox_imp x;
    memset(&x, 0, sizeof x);
    x.ctx = ctx;
    x.file = file;
    x.cur = -1;
    x.group = o->group ? o->group : "onnx";
    nasc_onnx_pb_init(&x.pb, ctx);
    nasc_onnx_arena_init(&x.arena, ctx);
    memset(&ctx->diag, 0, sizeof ctx->diag);
    nasc_status st = NASC_OK;
    size_t deep_at = 0;
    if (len == 0 || !data) {
        st = nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC, "empty file, expected an ONNX model");
    } else if (nasc_pb_too_deep(&onnx__model_proto__descriptor, data, len, NASC_PB_MAX_DEPTH,
                                &deep_at)) {
        st = nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC,
                        "not a usable ONNX model: messages nested more than %d levels deep "
                        "(at byte %zu)",
                        NASC_PB_MAX_DEPTH, deep_at);
    } else {
        x.model = onnx__model_proto__unpack(&x.pb.base, len, data);
        if (!x.model)
            st = x.pb.oom ? nasc_error(ctx, NASC_ENOMEM, file, NASC_NOLOC, "out of memory reading the model")
                          : nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC,
                                       "not an ONNX model: truncated or malformed protobuf (%zu bytes)", len);
    }
    if (!st) st = check_model(&x);
    if (!st) {
        x.m = nasc_module_create(ctx, NASC_DIALECT_PRIM, file);
        x.w = nasc_params_create(ctx);
        if (!x.m || !x.w) st = NASC_ENOMEM;
    }
    if (!st) st = name_all(&x);
    if (!st) st = constants(&x, o);
    if (!st) st = plan_inputs(&x);
    if (!st) st = lower_nodes(&x);
    if (!st) st = bind_outputs(&x);
    if (!st) st = check_value_info(&x);
    if (!st) st = nasc_prim_verify(x.m);
    if (!st && info) st = fill_info(&x, info);
    if (st && !ctx->diag.status) nasc_error(ctx, st, file, NASC_NOLOC, "out of memory importing the model");
    /* the import's own memory */
    for (uint32_t f = 0; f < x.n_feeds; f++) onnx__tensor_proto__free_unpacked(x.feeds[f], &x.pb.base);
    nasc_free(ctx, x.feeds);
    if (x.model) onnx__model_proto__free_unpacked(x.model, &x.pb.base);
    nasc_free(ctx, x.syms);
    nasc_free(ctx, x.index);
    nasc_free(ctx, x.pindex);
    nasc_free(ctx, x.pnames);
    nasc_free(ctx, x.consts);
    nasc_free(ctx, x.params);
    nasc_onnx_arena_free(&x.arena);
    if (st) {
        nasc_module_destroy(x.m);
        nasc_params_destroy(x.w);
        if (info) nasc_onnx_import_info_free(ctx, info);
        return st;
    }
    *prim = x.m;
    if (weights)
        *weights = x.w;
    else
        nasc_params_destroy(x.w);
    return NASC_OK;
}

nasc_status nasc_onnx_import(nasc_ctx *ctx, const void *data, size_t len, const char *file, nasc_module **prim,
                             nasc_param_store **weights) {
    return nasc_onnx_import_ex(ctx, data, len, file, NULL, prim, weights, NULL);
}

nasc_status nasc_onnx_load(nasc_ctx *ctx, const char *path, nasc_module **prim, nasc_param_store **weights) {
    *prim = NULL;
    if (weights) *weights = NULL;
    char *data = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &data, &len);
    if (st) return st;
    st = nasc_onnx_import(ctx, data, len, path, prim, weights);
    nasc_free(ctx, data);
    return st;
}
