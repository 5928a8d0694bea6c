/* onnx.c - a prim module and its weights as an ONNX ModelProto.
 *
 * The protobuf-c message tree is built in an arena (onnx/) taken from the
 * module's context (one free at the end, whatever happened), packed straight
 * into the caller's nasc_buf, and dropped. Initializers point at the
 * parameter store's floats (no copy on little-endian hosts); only folded
 * conv weights, default batch-norm statistics and the constants of the
 * shift pattern are new data.
 *
 * One prim op becomes one node, except shift (Pad then Slice), embedding
 * (Gather, Cast, Gather), a matmul with transposes (Transpose first) and a
 * conv with a folded batch norm (one Conv for two prims). docs/onnx.md has
 * the table.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_onnx.h"

#define OPSET_MIN 13
#define OPSET_MAX 17

nasc_onnx_options nasc_onnx_options_default(void) {
    nasc_onnx_options o;
    memset(&o, 0, sizeof o);
    o.opset = OPSET_MIN;
    return o;
}

/* The export under way: the module, the options, the arena and the lists
 * that become the GraphProto. */
typedef struct ox {
    nasc_ctx *ctx;
    const nasc_module *m;
    const nasc_param_store *w;
    const nasc_onnx_options *o;
    nasc_onnx_arena arena; /* every message of the model; freed at the end */
    nasc_status st; /* the first error; later steps do nothing */

    Onnx__NodeProto **nodes; /* (cap_nodes,) */
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits; /* (cap_inits,) */
    size_t n_inits, cap_inits;
    Onnx__ValueInfoProto **vinfo; /* (n_values,) at most */
    size_t n_vinfo;

    const char **names; /* open-addressing set of every name in the graph */
    size_t names_cap;   /* a power of two */

    uint32_t *uses;      /* (n_values,) operand references plus output references */
    uint32_t *user;      /* (n_values,) the last prim that takes the value, UINT32_MAX none */
    const char **pname;  /* (n_values,) initializer name of a parameter once emitted */
    uint32_t *fold_into; /* (n_prims,) conv: the batch norm folded into it, else UINT32_MAX */
    bool *skip;          /* (n_prims,) batch norms folded away */
} ox;

static void *ox_alloc(ox *x, size_t size) {
    if (x->st) return NULL;
    void *p = nasc_onnx_arena_alloc(&x->arena, size);
    if (!p) x->st = x->ctx->diag.status ? x->ctx->diag.status : NASC_ENOMEM;
    return p;
}

static nasc_status fail(ox *x, nasc_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static nasc_status fail(ox *x, nasc_loc loc, const char *fmt, ...) {
    if (x->st) return x->st;
    va_list ap;
    va_start(ap, fmt);
    x->st = nasc_verror(x->ctx, NASC_EINPUT, x->m->source, loc, fmt, ap);
    va_end(ap);
    return x->st;
}

/* ---------------------------------------------------------------- */
/* Names                                                             */
/* ---------------------------------------------------------------- */

static uint64_t name_hash(const char *s) { return nasc_hash_str(s); }

static bool name_taken(const ox *x, const char *s) {
    size_t mask = x->names_cap - 1;
    for (size_t i = (size_t)name_hash(s) & mask;; i = (i + 1) & mask) {
        if (!x->names[i]) return false;
        if (strcmp(x->names[i], s) == 0) return true;
    }
}

/* The set never fills: its capacity is twice the most names an export adds. */
static void name_add(ox *x, const char *s) {
    size_t mask = x->names_cap - 1;
    size_t i = (size_t)name_hash(s) & mask;
    while (x->names[i]) {
        if (strcmp(x->names[i], s) == 0) return;
        i = (i + 1) & mask;
    }
    x->names[i] = s;
}

/* A new graph name: base + suffix, or with ".1", ".2", ... appended until
 * nothing else in the graph is called that. */
static const char *fresh_name(ox *x, const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 24;
    char *s = ox_alloc(x, n);
    if (!s) return NULL;
    snprintf(s, n, "%s%s", base, suffix);
    for (unsigned k = 1; name_taken(x, s); k++) snprintf(s, n, "%s%s.%u", base, suffix, k);
    name_add(x, s);
    return s;
}

static const char *vname(const ox *x, uint32_t v) { return nasc_str(x->m, x->m->values[v].name); }

/* ---------------------------------------------------------------- */
/* Messages                                                          */
/* ---------------------------------------------------------------- */

static Onnx__TensorProto *tensor_new(ox *x, const char *name, int rank, const int64_t *dims, int32_t dtype) {
    Onnx__TensorProto *t = ox_alloc(x, sizeof *t);
    int64_t *d = ox_alloc(x, (size_t)(rank ? rank : 1) * sizeof *d);
    if (!t || !d) return NULL;
    onnx__tensor_proto__init(t);
    if (rank) memcpy(d, dims, (size_t)rank * sizeof *d);
    t->n_dims = (size_t)rank;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->name = (char *)name;
    return t;
}

static void init_add(ox *x, Onnx__TensorProto *t) {
    if (!t || x->st) return;
    if (x->n_inits == x->cap_inits) {
        fail(x, NASC_NOLOC, "internal: too many initializers");
        return;
    }
    x->inits[x->n_inits++] = t;
}

/* A float initializer; data is used in place on little-endian hosts (it
 * must live until the model is packed). */
static void init_f32(ox *x, const char *name, int rank, const int64_t *dims, const float *data, int64_t numel) {
    Onnx__TensorProto *t = tensor_new(x, name, rank, dims, nasc_onnx_dtype_elem(NASC_F32));
    if (!t) return;
    size_t bytes = (size_t)numel * sizeof(float);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    if (nasc_onnx_host_le()) {
        t->raw_data.data = (uint8_t *)data;
    } else {
        uint8_t *b = ox_alloc(x, bytes);
        if (!b) return;
        nasc_onnx_f32_to_le(b, data, (size_t)numel);
        t->raw_data.data = b;
    }
    init_add(x, t);
}

/* A rank-1 int64 initializer (pattern constants). */
static void init_i64(ox *x, const char *name, const int64_t *vals, size_t n) {
    int64_t dim = (int64_t)n;
    Onnx__TensorProto *t = tensor_new(x, name, 1, &dim, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t *v = ox_alloc(x, n * sizeof *v);
    if (!t || !v) return;
    memcpy(v, vals, n * sizeof *v);
    t->n_int64_data = n;
    t->int64_data = v;
    init_add(x, t);
}

/* A scalar (rank 0) initializer of one int64 or float, for an index or a
 * factor. */
static void init_scalar(ox *x, const char *name, int32_t dtype, int64_t i, float f) {
    Onnx__TensorProto *t = tensor_new(x, name, 0, NULL, dtype);
    if (!t) return;
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        int64_t *v = ox_alloc(x, sizeof *v);
        if (!v) return;
        *v = i;
        t->n_int64_data = 1;
        t->int64_data = v;
    } else {
        float *v = ox_alloc(x, sizeof *v);
        if (!v) return;
        *v = f;
        t->n_float_data = 1;
        t->float_data = v;
    }
    init_add(x, t);
}

static Onnx__AttributeProto *attr_new(ox *x, const char *name, Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = ox_alloc(x, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_int(ox *x, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr_new(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_float(ox *x, const char *name, float v) {
    Onnx__AttributeProto *a = attr_new(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_ints(ox *x, const char *name, const int64_t *v, size_t n) {
    Onnx__AttributeProto *a = attr_new(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = ox_alloc(x, n * sizeof *d);
    if (!a || !d) return NULL;
    memcpy(d, v, n * sizeof *d);
    a->n_ints = n;
    a->ints = d;
    return a;
}

#define MAX_ATTRS 8

/* Append a node: op_type over inputs, one output (also its name). */
static void node_add(ox *x, const char *op_type, const char *name, const char *const *in, size_t n_in,
                     const char *out, Onnx__AttributeProto *const *attrs, size_t n_attrs) {
    if (x->st) return;
    if (x->n_nodes == x->cap_nodes) {
        fail(x, NASC_NOLOC, "internal: too many nodes");
        return;
    }
    Onnx__NodeProto *nd = ox_alloc(x, sizeof *nd);
    char **ins = ox_alloc(x, (n_in ? n_in : 1) * sizeof *ins);
    char **outs = ox_alloc(x, sizeof *outs);
    Onnx__AttributeProto **as = ox_alloc(x, (n_attrs ? n_attrs : 1) * sizeof *as);
    if (!nd || !ins || !outs || !as) return;
    onnx__node_proto__init(nd);
    for (size_t i = 0; i < n_in; i++) ins[i] = (char *)in[i];
    for (size_t i = 0; i < n_attrs; i++) {
        if (!attrs[i]) return; /* out of memory: x->st is set */
        as[i] = attrs[i];
    }
    outs[0] = (char *)out;
    nd->n_input = n_in;
    nd->input = ins;
    nd->n_output = 1;
    nd->output = outs;
    nd->name = (char *)name;
    nd->op_type = (char *)op_type;
    nd->n_attribute = n_attrs;
    nd->attribute = n_attrs ? as : NULL;
    x->nodes[x->n_nodes++] = nd;
}

/* tensor(float) of t's shape; dim 0 NASC_BATCH is the symbolic "N". */
static Onnx__ValueInfoProto *value_info(ox *x, const char *name, const nasc_type *t) {
    Onnx__ValueInfoProto *vi = ox_alloc(x, sizeof *vi);
    Onnx__TypeProto *tp = ox_alloc(x, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ox_alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ox_alloc(x, (size_t)(t->rank ? t->rank : 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    for (int d = 0; d < t->rank; d++) {
        Onnx__TensorShapeProto__Dimension *dm = ox_alloc(x, sizeof *dm);
        if (!dm) return NULL;
        onnx__tensor_shape_proto__dimension__init(dm);
        if (t->dims[d] == NASC_BATCH) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = "N";
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = t->dims[d];
        }
        dims[d] = dm;
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)t->rank;
    sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = nasc_onnx_dtype_elem(t->dtype);
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

/* ---------------------------------------------------------------- */
/* Parameters                                                        */
/* ---------------------------------------------------------------- */

/* The store's tensor of parameter value v, checked against its type. */
static const nasc_tensor *param_tensor(ox *x, uint32_t v, nasc_loc loc) {
    const nasc_value *val = &x->m->values[v];
    const nasc_tensor *t = nasc_params_find(x->w, vname(x, v));
    char want[96], got[96];
    if (!t) {
        fail(x, loc, "parameter '%s' is not in the weights", vname(x, v));
        return NULL;
    }
    bool same = t->rank == val->type.rank;
    for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == val->type.dims[d];
    if (!same) {
        nasc_type_format(&val->type, want, sizeof want);
        nasc_type tt = {NASC_F32, t->rank, {0}};
        for (int d = 0; d < t->rank && d < NASC_MAX_RANK; d++) tt.dims[d] = t->dims[d];
        nasc_type_format(&tt, got, sizeof got);
        fail(x, loc, "parameter '%s' is %s in the weights, the model wants %s", vname(x, v), got, want);
        return NULL;
    }
    return t;
}

/* The initializer name of operand v: a parameter becomes an initializer
 * (once, under its own name); other values are named as they are. */
static const char *operand(ox *x, uint32_t v, nasc_loc loc) {
    if (x->m->values[v].kind != NASC_VAL_PARAM) return vname(x, v);
    if (x->pname[v]) return x->pname[v];
    const nasc_tensor *t = param_tensor(x, v, loc);
    if (!t) return NULL;
    init_f32(x, vname(x, v), t->rank, t->dims, t->data, t->numel);
    x->pname[v] = vname(x, v);
    return x->pname[v];
}

/* A batch norm's running statistic ("<bn>.mean" or "<bn>.var") of c
 * channels: the store's tensor, else fill (what the backend assumes). */
static const float *bn_stat(ox *x, const char *bn, const char *suffix, int64_t c, float fill, nasc_loc loc) {
    char key[600];
    snprintf(key, sizeof key, "%s%s", bn, suffix);
    const nasc_tensor *t = nasc_params_find(x->w, key);
    if (t) {
        if (t->rank != 1 || t->dims[0] != c) {
            fail(x, loc, "weights tensor '%s' has %lld values, batch norm '%s' has %lld channels", key,
                 (long long)t->numel, bn, (long long)c);
            return NULL;
        }
        return t->data;
    }
    float *d = ox_alloc(x, (size_t)c * sizeof *d);
    if (d)
        for (int64_t i = 0; i < c; i++) d[i] = fill;
    return d;
}

/* ---------------------------------------------------------------- */
/* Ops                                                               */
/* ---------------------------------------------------------------- */

static uint32_t arg(const ox *x, const nasc_prim *p, uint32_t i) { return x->m->args[p->first_arg + i]; }

static void conv_attrs(ox *x, const nasc_prim_attrs *a, Onnx__AttributeProto **at) {
    int64_t k[2] = {a->kh, a->kw}, s[2] = {a->sh, a->sw}, d[2] = {a->dh, a->dw};
    int64_t pads[4] = {a->pt, a->pl, a->pb, a->pr};
    at[0] = attr_ints(x, "kernel_shape", k, 2);
    at[1] = attr_ints(x, "strides", s, 2);
    at[2] = attr_ints(x, "pads", pads, 4);
    at[3] = attr_ints(x, "dilations", d, 2);
    at[4] = attr_int(x, "group", a->groups);
}

static void pool_attrs(ox *x, const nasc_prim_attrs *a, Onnx__AttributeProto **at) {
    int64_t k[2] = {a->kh, a->kw}, s[2] = {a->sh, a->sw};
    int64_t pads[4] = {a->pt, a->pl, a->pb, a->pr};
    at[0] = attr_ints(x, "kernel_shape", k, 2);
    at[1] = attr_ints(x, "strides", s, 2);
    at[2] = attr_ints(x, "pads", pads, 4);
}

/* conv with the batch norm bn folded in: W' = W * s, b = shift - mean * s,
 * s = scale / sqrt(var + eps), the backend's folding (backend/ops.c). */
static void emit_conv_bn(ox *x, const nasc_prim *p, const nasc_prim *bn) {
    uint32_t wv = arg(x, p, 1);
    const nasc_tensor *w = param_tensor(x, wv, p->loc);
    const nasc_tensor *sc = param_tensor(x, arg(x, bn, 1), bn->loc);
    const nasc_tensor *sf = param_tensor(x, arg(x, bn, 2), bn->loc);
    if (!w || !sc || !sf) return;
    const char *out = vname(x, bn->result);
    int64_t cout = w->dims[0], per = w->numel / cout;
    const float *mean = bn_stat(x, out, ".mean", cout, 0.0f, bn->loc);
    const float *var = bn_stat(x, out, ".var", cout, 1.0f, bn->loc);
    float *wf = ox_alloc(x, (size_t)w->numel * sizeof *wf);
    float *bf = ox_alloc(x, (size_t)cout * sizeof *bf);
    if (!mean || !var || !wf || !bf) return;
    float eps = bn->a.eps;
    for (int64_t o = 0; o < cout; o++) {
        float k = sc->data[o] / sqrtf(var[o] + eps);
        for (int64_t e = 0; e < per; e++) wf[o * per + e] = w->data[o * per + e] * k;
        bf[o] = sf->data[o] - mean[o] * k;
    }
    /* The folded weight keeps the parameter's name unless another op uses
     * the original; the bias is named after the weight ("x.w" -> "x.b"). */
    const char *wn = vname(x, wv);
    const char *wname = x->uses[wv] == 1 ? wn : fresh_name(x, out, ".w");
    size_t wl = strlen(wn);
    if (wl > 2 && strcmp(wn + wl - 2, ".w") == 0) wl -= 2;
    char *base = ox_alloc(x, wl + 1);
    if (!base) return;
    memcpy(base, wn, wl);
    base[wl] = 0;
    const char *bname = fresh_name(x, base, ".b");
    if (!wname || !bname) return;
    init_f32(x, wname, w->rank, w->dims, wf, w->numel);
    init_f32(x, bname, 1, &cout, bf, cout);
    const char *in[3] = {operand(x, arg(x, p, 0), p->loc), wname, bname};
    Onnx__AttributeProto *at[5];
    conv_attrs(x, &p->a, at);
    node_add(x, "Conv", out, in, 3, out, at, 5);
}

/* y[i, j] = x[i + dy, j + dx], zero outside (backend/ops.c shift_run):
 * pad by the offset on the side it reads past, then slice the window. */
static void emit_shift(ox *x, const nasc_prim *p, const char *in0, const char *out) {
    const nasc_type *t = &x->m->values[p->result].type;
    int dy = p->a.dy, dx = p->a.dx;
    if (dy == 0 && dx == 0) {
        node_add(x, "Identity", out, &in0, 1, out, NULL, 0);
        return;
    }
    int64_t top = dy < 0 ? -dy : 0, bottom = dy > 0 ? dy : 0;
    int64_t left = dx < 0 ? -dx : 0, right = dx > 0 ? dx : 0;
    int64_t pads[8] = {0, 0, top, left, 0, 0, bottom, right};
    int64_t starts[2] = {bottom, right};
    int64_t ends[2] = {bottom + t->dims[2], right + t->dims[3]};
    int64_t axes[2] = {2, 3};
    const char *pads_n = fresh_name(x, out, ".pads"), *padded = fresh_name(x, out, ".padded");
    const char *starts_n = fresh_name(x, out, ".starts"), *ends_n = fresh_name(x, out, ".ends");
    const char *axes_n = fresh_name(x, out, ".axes");
    if (!pads_n || !padded || !starts_n || !ends_n || !axes_n) return;
    init_i64(x, pads_n, pads, 8);
    init_i64(x, starts_n, starts, 2);
    init_i64(x, ends_n, ends, 2);
    init_i64(x, axes_n, axes, 2);
    const char *pin[2] = {in0, pads_n};
    node_add(x, "Pad", padded, pin, 2, padded, NULL, 0);
    const char *sin[4] = {padded, starts_n, ends_n, axes_n};
    node_add(x, "Slice", out, sin, 4, out, NULL, 0);
}

/* embedding(ids, table, index t): column t of the ids (float token
 * numbers, as nasc's inputs are), as int64, picks rows of the table:
 * Gather(ids, t, axis 1) -> Cast -> Gather(table, ., axis 0). ONNX Gather
 * wants ids in [-V, V); nasc reads zeros for an id outside [0, V). */
static void emit_embedding(ox *x, const nasc_prim *p, const char *const *ins, const char *out) {
    const char *tn = fresh_name(x, out, ".t"), *col = fresh_name(x, out, ".ids");
    const char *ids = fresh_name(x, out, ".ids64");
    if (!tn || !col || !ids) return;
    init_scalar(x, tn, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, p->a.index, 0);
    Onnx__AttributeProto *at[1];
    const char *g1[2] = {ins[0], tn};
    at[0] = attr_int(x, "axis", 1);
    node_add(x, "Gather", col, g1, 2, col, at, 1);
    at[0] = attr_int(x, "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    node_add(x, "Cast", ids, &col, 1, ids, at, 1);
    const char *g2[2] = {ins[1], ids};
    at[0] = attr_int(x, "axis", 0);
    node_add(x, "Gather", out, g2, 2, out, at, 1);
}

static void emit_prim(ox *x, uint32_t pi) {
    const nasc_prim *p = &x->m->prims[pi];
    if (x->skip[pi]) return;
    if (x->fold_into[pi] != UINT32_MAX) {
        emit_conv_bn(x, p, &x->m->prims[x->fold_into[pi]]);
        return;
    }
    const char *out = vname(x, p->result);
    const char *in[16];
    const char **ins = in;
    if (p->n_args > 16) {
        ins = ox_alloc(x, p->n_args * sizeof *ins);
        if (!ins) return;
    }
    for (uint32_t i = 0; i < p->n_args; i++)
        if (!(ins[i] = operand(x, arg(x, p, i), p->loc))) return;
    Onnx__AttributeProto *at[MAX_ATTRS];
    switch (p->op) {
    case NASC_PRIM_CONV:
        conv_attrs(x, &p->a, at);
        node_add(x, "Conv", out, ins, 2, out, at, 5);
        return;
    case NASC_PRIM_BATCH_NORM: {
        int64_t c = x->m->values[p->result].type.dims[1];
        const float *mean = bn_stat(x, out, ".mean", c, 0.0f, p->loc);
        const float *var = bn_stat(x, out, ".var", c, 1.0f, p->loc);
        const char *mn = fresh_name(x, out, ".mean"), *vn = fresh_name(x, out, ".var");
        if (!mean || !var || !mn || !vn) return;
        init_f32(x, mn, 1, &c, mean, c);
        init_f32(x, vn, 1, &c, var, c);
        const char *bin[5] = {ins[0], ins[1], ins[2], mn, vn};
        at[0] = attr_float(x, "epsilon", p->a.eps);
        node_add(x, "BatchNormalization", out, bin, 5, out, at, 1);
        return;
    }
    case NASC_PRIM_RELU:
        node_add(x, "Relu", out, ins, 1, out, NULL, 0);
        return;
    case NASC_PRIM_TANH:
        node_add(x, "Tanh", out, ins, 1, out, NULL, 0);
        return;
    case NASC_PRIM_SIGMOID:
        node_add(x, "Sigmoid", out, ins, 1, out, NULL, 0);
        return;
    case NASC_PRIM_IDENTITY:
        node_add(x, "Identity", out, ins, 1, out, NULL, 0);
        return;
    case NASC_PRIM_MAX_POOL: {
        pool_attrs(x, &p->a, at);
        size_t n_at = 3;
        if (p->a.dh > 1 || p->a.dw > 1) { /* a dilated max pool (ONNX MaxPool-10 and later) */
            int64_t d[2] = {p->a.dh, p->a.dw};
            at[n_at++] = attr_ints(x, "dilations", d, 2);
        }
        node_add(x, "MaxPool", out, ins, 1, out, at, n_at);
        return;
    }
    case NASC_PRIM_AVG_POOL:
        pool_attrs(x, &p->a, at);
        at[3] = attr_int(x, "count_include_pad", p->a.count_include_pad);
        node_add(x, "AveragePool", out, ins, 1, out, at, 4);
        return;
    case NASC_PRIM_GLOBAL_AVG_POOL:
        node_add(x, "GlobalAveragePool", out, ins, 1, out, NULL, 0);
        return;
    case NASC_PRIM_SHIFT:
        emit_shift(x, p, ins[0], out);
        return;
    case NASC_PRIM_ADD:
        node_add(x, p->n_args == 1 ? "Identity" : p->n_args == 2 ? "Add" : "Sum", out, ins, p->n_args, out, NULL, 0);
        return;
    case NASC_PRIM_MUL:
        node_add(x, "Mul", out, ins, 2, out, NULL, 0);
        return;
    case NASC_PRIM_CONCAT:
        at[0] = attr_int(x, "axis", p->a.axis);
        node_add(x, "Concat", out, ins, p->n_args, out, at, 1);
        return;
    case NASC_PRIM_INNER_PRODUCT:
        at[0] = attr_int(x, "transB", 1);
        node_add(x, "Gemm", out, ins, 3, out, at, 1);
        return;
    case NASC_PRIM_FLATTEN:
        at[0] = attr_int(x, "axis", 1);
        node_add(x, "Flatten", out, ins, 1, out, at, 1);
        return;
    case NASC_PRIM_SOFTMAX:
        at[0] = attr_int(x, "axis", p->a.axis);
        node_add(x, "Softmax", out, ins, 1, out, at, 1);
        return;
    case NASC_PRIM_SUB:
        node_add(x, "Sub", out, ins, 2, out, NULL, 0);
        return;
    case NASC_PRIM_SCALE: {
        const char *f = fresh_name(x, out, ".alpha");
        if (!f) return;
        init_scalar(x, f, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, p->a.alpha);
        const char *min[2] = {ins[0], f};
        node_add(x, "Mul", out, min, 2, out, NULL, 0);
        return;
    }
    case NASC_PRIM_SLICE: { /* Slice(x, starts, ends, axes) with int64 initializers */
        int r = x->m->values[p->result].type.rank;
        int64_t starts[NASC_MAX_RANK], ends[NASC_MAX_RANK], axes[NASC_MAX_RANK];
        for (int d = 0; d < r; d++) {
            starts[d] = p->a.begin[d];
            ends[d] = p->a.begin[d] + p->a.shape[d];
            axes[d] = d;
        }
        const char *sn = fresh_name(x, out, ".starts"), *en = fresh_name(x, out, ".ends");
        const char *an = fresh_name(x, out, ".axes");
        if (!sn || !en || !an) return;
        init_i64(x, sn, starts, (size_t)r);
        init_i64(x, en, ends, (size_t)r);
        init_i64(x, an, axes, (size_t)r);
        const char *sin[4] = {ins[0], sn, en, an};
        node_add(x, "Slice", out, sin, 4, out, NULL, 0);
        return;
    }
    case NASC_PRIM_NORMALIZE: { /* x / ReduceL2(x) over every axis (keepdims) */
        const char *norm = fresh_name(x, out, ".norm");
        if (!norm) return;
        node_add(x, "ReduceL2", norm, ins, 1, norm, NULL, 0);
        const char *din[2] = {ins[0], norm};
        node_add(x, "Div", out, din, 2, out, NULL, 0);
        return;
    }
    case NASC_PRIM_EMBEDDING:
        emit_embedding(x, p, ins, out);
        return;
    case NASC_PRIM_RESHAPE: {
        /* the batch dim as 0: Reshape copies it from the input */
        int64_t shape[NASC_MAX_RANK];
        for (int d = 0; d < p->a.shape_rank; d++) shape[d] = p->a.shape[d] == NASC_BATCH ? 0 : p->a.shape[d];
        const char *sn = fresh_name(x, out, ".shape");
        if (!sn) return;
        init_i64(x, sn, shape, (size_t)p->a.shape_rank);
        const char *rin[2] = {ins[0], sn};
        node_add(x, "Reshape", out, rin, 2, out, NULL, 0);
        return;
    }
    case NASC_PRIM_MATMUL: {
        const char *mm[2] = {ins[0], ins[1]};
        for (int k = 0; k < 2; k++) {
            if (!(k ? p->a.trans_b : p->a.trans_a)) continue;
            /* swap the last two dims first (MatMul has no transpose flags) */
            int r = x->m->values[arg(x, p, (uint32_t)k)].type.rank;
            int64_t perm[NASC_MAX_RANK];
            for (int d = 0; d < r; d++) perm[d] = d;
            perm[r - 2] = r - 1, perm[r - 1] = r - 2;
            const char *tn = fresh_name(x, out, k ? ".bt" : ".at");
            if (!tn) return;
            at[0] = attr_ints(x, "perm", perm, (size_t)r);
            node_add(x, "Transpose", tn, &mm[k], 1, tn, at, 1);
            mm[k] = tn;
        }
        node_add(x, "MatMul", out, mm, 2, out, NULL, 0);
        return;
    }
    default: {
        const nasc_prim_op_info *info = nasc_prim_op_info_get(p->op);
        char num[16];
        snprintf(num, sizeof num, "#%d", (int)p->op);
        fail(x, p->loc, "prim op '%s' (value '%s') has no ONNX mapping yet", info ? info->name : num, out);
        return;
    }
    }
}

/* ---------------------------------------------------------------- */
/* The model                                                         */
/* ---------------------------------------------------------------- */

/* Use counts, last users and the conv/batch-norm pairs to fold. */
static void plan(ox *x) {
    const nasc_module *m = x->m;
    for (uint32_t v = 0; v < m->n_values; v++) x->user[v] = UINT32_MAX;
    for (uint32_t i = 0; i < m->n_prims; i++) {
        x->fold_into[i] = UINT32_MAX;
        const nasc_prim *p = &m->prims[i];
        for (uint32_t a = 0; a < p->n_args; a++) {
            uint32_t v = arg(x, p, a);
            x->uses[v]++;
            x->user[v] = i;
        }
    }
    for (uint32_t i = 0; i < m->n_outputs; i++) x->uses[m->outputs[i]]++;
    if (!x->o->fold_bn) return;
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        if (p->op != NASC_PRIM_CONV || x->uses[p->result] != 1 || x->user[p->result] == UINT32_MAX) continue;
        uint32_t u = x->user[p->result];
        const nasc_prim *q = &m->prims[u];
        if (q->op != NASC_PRIM_BATCH_NORM || arg(x, q, 0) != p->result) continue;
        if (m->values[arg(x, q, 1)].kind != NASC_VAL_PARAM || m->values[arg(x, q, 2)].kind != NASC_VAL_PARAM) continue;
        if (m->values[arg(x, p, 1)].kind != NASC_VAL_PARAM) continue;
        x->fold_into[i] = u;
        x->skip[u] = true;
    }
}

static const char *default_graph_name(ox *x) {
    const char *src = x->m->source;
    if (!src || !*src) return "nasc";
    const char *b = strrchr(src, '/');
    b = b ? b + 1 : src;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n == 0) return "nasc";
    char *s = ox_alloc(x, n + 1);
    if (s) memcpy(s, b, n), s[n] = 0;
    return s;
}

static const char *default_doc(ox *x) {
    nasc_cost c;
    nasc_status st = nasc_cost_compute(x->m, &c);
    if (st) {
        x->st = st;
        return NULL;
    }
    char *s = ox_alloc(x, 128);
    if (s)
        snprintf(s, 128, "nasc %s: %lld parameters, %lld multiply-adds per image", NASC_VERSION, (long long)c.params,
                 (long long)c.macs);
    nasc_cost_free(x->m, &c);
    return s;
}

static nasc_status build_and_pack(ox *x, nasc_buf *out) {
    const nasc_module *m = x->m;
    const nasc_onnx_options *o = x->o;
    size_t nv = m->n_values ? m->n_values : 1, np = m->n_prims ? m->n_prims : 1;

    /* Bounds: shift adds 2 nodes, embedding and a transposing matmul 3;
     * a prim adds at most 6 initializers. */
    x->cap_nodes = 3 * np + m->n_outputs;
    x->cap_inits = nv + 6 * np;
    x->names_cap = 16;
    while (x->names_cap < 2 * (nv + 8 * np + m->n_outputs)) x->names_cap *= 2;
    x->nodes = ox_alloc(x, x->cap_nodes * sizeof *x->nodes);
    x->inits = ox_alloc(x, x->cap_inits * sizeof *x->inits);
    x->vinfo = ox_alloc(x, nv * sizeof *x->vinfo);
    x->names = ox_alloc(x, x->names_cap * sizeof *x->names);
    x->uses = ox_alloc(x, nv * sizeof *x->uses);
    x->user = ox_alloc(x, nv * sizeof *x->user);
    x->pname = ox_alloc(x, nv * sizeof *x->pname);
    x->fold_into = ox_alloc(x, np * sizeof *x->fold_into);
    x->skip = ox_alloc(x, np * sizeof *x->skip);
    if (x->st) return x->st;
    for (uint32_t v = 0; v < m->n_values; v++) name_add(x, vname(x, v));
    plan(x);

    /* graph inputs */
    size_t n_in = 0;
    for (uint32_t v = 0; v < m->n_values; v++) n_in += m->values[v].kind == NASC_VAL_INPUT;
    Onnx__ValueInfoProto **inputs = ox_alloc(x, (n_in ? n_in : 1) * sizeof *inputs);
    if (!inputs) return x->st;
    n_in = 0;
    for (uint32_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == NASC_VAL_INPUT)
            if (!(inputs[n_in++] = value_info(x, vname(x, v), &m->values[v].type))) return x->st;

    for (uint32_t i = 0; i < m->n_prims && !x->st; i++) emit_prim(x, i);
    if (x->st) return x->st;

    /* graph outputs: an output that is not an op result goes through an
     * Identity so that the graph computes it */
    Onnx__ValueInfoProto **outputs = ox_alloc(x, (m->n_outputs ? m->n_outputs : 1) * sizeof *outputs);
    bool *is_out = ox_alloc(x, nv * sizeof *is_out);
    if (!outputs || !is_out) return x->st;
    for (uint32_t i = 0; i < m->n_outputs; i++) {
        uint32_t v = m->outputs[i];
        const char *name = vname(x, v);
        if (m->values[v].kind != NASC_VAL_OP || is_out[v]) {
            const char *src = operand(x, v, NASC_NOLOC);
            name = fresh_name(x, name, ".out");
            if (!src || !name) return x->st;
            node_add(x, "Identity", name, &src, 1, name, NULL, 0);
        }
        is_out[v] = true;
        if (!(outputs[i] = value_info(x, name, &m->values[v].type))) return x->st;
    }
    /* shapes of the values in between */
    for (uint32_t i = 0; i < m->n_prims; i++) {
        uint32_t r = m->prims[i].result;
        if (x->fold_into[i] != UINT32_MAX || is_out[r]) continue;
        if (!(x->vinfo[x->n_vinfo++] = value_info(x, vname(x, r), &m->values[r].type))) return x->st;
    }

    /* metadata */
    Onnx__StringStringEntryProto **meta = ox_alloc(x, (o->n_meta ? o->n_meta : 1) * sizeof *meta);
    if (!meta) return x->st;
    for (size_t i = 0; i < o->n_meta; i++) {
        if (!o->meta[i].key || !o->meta[i].value)
            return fail(x, NASC_NOLOC, "ONNX metadata entry %zu has no %s", i + 1, o->meta[i].key ? "value" : "key");
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->meta[i].key, o->meta[j].key) == 0)
                return fail(x, NASC_NOLOC, "ONNX metadata key '%s' is given twice", o->meta[i].key);
        Onnx__StringStringEntryProto *e = ox_alloc(x, sizeof *e);
        if (!e) return x->st;
        onnx__string_string_entry_proto__init(e);
        e->key = (char *)o->meta[i].key;
        e->value = (char *)o->meta[i].value;
        meta[i] = e;
    }

    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = (char *)(o->graph_name ? o->graph_name : default_graph_name(x));
    graph.n_node = x->n_nodes;
    graph.node = x->nodes;
    graph.n_initializer = x->n_inits;
    graph.initializer = x->inits;
    graph.n_input = n_in;
    graph.input = inputs;
    graph.n_output = m->n_outputs;
    graph.output = outputs;
    graph.n_value_info = x->n_vinfo;
    graph.value_info = x->vinfo;

    Onnx__OperatorSetIdProto opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = o->opset;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = o->opset >= 15 ? 8 : 7; /* the IR version each opset came with */
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "nasc";
    model.producer_version = NASC_VERSION;
    model.doc_string = (char *)(o->doc ? o->doc : default_doc(x));
    model.graph = &graph;
    model.n_metadata_props = o->n_meta;
    model.metadata_props = meta;
    if (x->st) return x->st;

    size_t size = protobuf_c_message_get_packed_size(&model.base);
    if (size > (size_t)INT32_MAX)
        return fail(x, NASC_NOLOC, "the ONNX model would be %zu bytes, over protobuf's 2 GB limit", size);
    return x->st = nasc_onnx_pack(&model.base, out);
}

nasc_status nasc_onnx_export(const nasc_module *prim, const nasc_param_store *weights, const nasc_onnx_options *o,
                             nasc_buf *out) {
    nasc_ctx *ctx = prim->ctx;
    nasc_onnx_options def = nasc_onnx_options_default();
    if (!o) o = &def;
    if (prim->dialect != NASC_DIALECT_PRIM)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "ONNX export needs a prim module (lower the arch module first)");
    if (!weights)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "ONNX export needs weights (initialise a store with nasc_params_init)");
    if (o->opset < OPSET_MIN || o->opset > OPSET_MAX)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC, "ONNX opset %d is not supported (%d..%d)",
                          o->opset, OPSET_MIN, OPSET_MAX);
    if (o->n_meta && !o->meta)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC, "ONNX metadata: %zu entries but no array",
                          o->n_meta);
    nasc_status st = nasc_prim_verify(prim);
    if (st) return st;
    ox x;
    memset(&x, 0, sizeof x);
    x.ctx = ctx;
    x.m = prim;
    x.w = weights;
    x.o = o;
    nasc_onnx_arena_init(&x.arena, ctx);
    st = build_and_pack(&x, out);
    nasc_onnx_arena_free(&x.arena);
    return st;
}
