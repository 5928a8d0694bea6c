/* onnx_fold.c - ONNX operators evaluated at import.
 *
 * Exporters compute shapes in the graph: x.view(x.size(0), -1) becomes
 * Shape, Gather, Unsqueeze, Concat, Reshape; F.pad's pads come out of a
 * ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast chain. nasc's
 * shapes are static (but for the batch N), so every such chain is a
 * constant: the operators here compute it when all their inputs are
 * constants (ox_all_const), and the few that also take computed tensors
 * (Unsqueeze, Squeeze, Cast, Transpose) lower those to prim ops.
 *
 * Shape of a value whose first dim is N gives a vector with that element
 * marked (ox_const.nb). Marks move with the element through Gather,
 * Concat, Unsqueeze, Squeeze, Reshape, Slice, Transpose, Identity and Cast
 * to an integer type; Reshape reads a marked shape[0] as "keep N". Any
 * arithmetic on a marked element is an error that says so.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

#define status_of ox_status

/* ---------------------------------------------------------------- */
/* Elements                                                          */
/* ---------------------------------------------------------------- */

/* Element k of constant src becomes element j of dst (same dtype), mark included. */
static bool copy_elem(ox_imp *x, int dst, int64_t j, int src, int64_t k) {
    ox_const *d = &x->consts[dst];
    const ox_const *s = &x->consts[src];
    if (d->dtype == OX_F32) {
        d->f[j] = s->f[k];
        return true;
    }
    d->i[j] = s->i[k];
    if (s->nb && s->nb[k]) {
        if (!d->nb) {
            uint8_t *nb = ox_alloc(x, (size_t)(d->numel ? d->numel : 1));
            if (!nb) return false;
            x->consts[dst].nb = nb; /* d is still valid: ox_alloc does not move consts */
        }
        d->nb[j] = 1;
    }
    return true;
}

static bool has_nb(const ox_const *c) {
    for (int64_t i = 0; c->nb && i < c->numel; i++)
        if (c->nb[i]) return true;
    return false;
}

static const char *dtype_str(int dt) { return dt == OX_F32 ? "FLOAT" : "INT64"; }

/* Row-major strides of dims. */
static void strides_of(int rank, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) st[d] = s, s *= dims[d];
}

/* A fold that can make a constant larger than its inputs (ConstantOfShape,
 * a broadcast, a Gather) may make it as large as its inputs, or 2^20
 * elements: shapes are small, and a few bytes of model must not ask for
 * gigabytes. */
#define MAX_GROWN ((int64_t)1 << 20)

static bool fold_size_ok(ox_imp *x, int rank, const int64_t *dims, int64_t inputs) {
    int64_t cap = inputs > MAX_GROWN ? inputs : MAX_GROWN, n = 1;
    for (int d = 0; d < rank; d++)
        if (dims[d] == 0) return true;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0 || n > cap / dims[d]) {
            ox_fail(x, "the result would have more than %lld elements (or a negative dim): a constant computed at "
                       "import may be as large as its inputs, or 2^20 elements",
                    (long long)cap);
            return false;
        }
        n *= dims[d];
    }
    return true;
}

/* A constant input read by a fold: decodable, any dtype, marks allowed. */
static int fold_in(ox_imp *x, uint32_t i, const char *what) {
    const ox_const *c = ox_shape_in(x, i, what);
    return c ? (int)(c - x->consts) : -1;
}

/* ---------------------------------------------------------------- */
/* Shape, ConstantOfShape, Cast                                      */
/* ---------------------------------------------------------------- */

nasc_status ox_lower_shape(ox_imp *x) {
    static const char *const known[] = {"start", "end", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t start, end;
    if (!ox_attr_int(x, "start", 0, &start) || !ox_attr_int(x, "end", INT64_MAX, &end)) return status_of(x);
    int rank;
    int64_t dims[OX_MAX_RANK];
    bool batch = false;
    ox_sym *s = ox_in_sym(x, 0);
    if (!s) return ox_fail(x, "input 1 is missing");
    if (s->value == UINT32_MAX && s->konst >= 0) {
        const ox_const *c = ox_shape_in(x, 0, "input");
        if (!c) return status_of(x);
        rank = c->rank;
        for (int d = 0; d < rank; d++) dims[d] = c->dims[d];
    } else {
        uint32_t v = ox_value(x, 0);
        if (v == UINT32_MAX) return status_of(x);
        const nasc_type *t = ox_type(x, v);
        rank = t->rank;
        for (int d = 0; d < rank; d++) dims[d] = t->dims[d];
        batch = t->dims[0] == NASC_BATCH;
    }
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < 0 ? 0 : end > rank ? rank : end;
    int64_t n = end > start ? end - start : 0;
    int k = ox_const_make(x, OX_I64, 1, &n);
    if (k < 0) return status_of(x);
    ox_const *c = &x->consts[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t d = start + i;
        if (d == 0 && batch) {
            if (!c->nb && !(c->nb = ox_alloc(x, (size_t)n))) return status_of(x);
            c->nb[i] = 1;
            c->i[i] = -1; /* never read as a number: the mark says what it is */
        } else {
            c->i[i] = dims[d];
        }
    }
    return ox_define_const(x, 0, k);
}

nasc_status ox_lower_constant_of_shape(ox_imp *x) {
    static const char *const known[] = {"value", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    const ox_const *sc = ox_const_in(x, 0, "shape");
    if (!sc) return status_of(x);
    if (sc->dtype != OX_I64 || sc->rank != 1 || sc->numel > OX_MAX_RANK)
        return ox_fail(x, "input 1 (the shape) must be a 1-D integer tensor of at most %d values", OX_MAX_RANK);
    int rank = (int)sc->numel;
    int64_t dims[OX_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        dims[d] = sc->i[d];
        if (dims[d] < 0) return ox_fail(x, "shape[%d] = %lld is negative", d, (long long)dims[d]);
    }
    if (!fold_size_ok(x, rank, dims, 0)) return status_of(x);
    int dtype = OX_F32;
    double fill = 0;
    const Onnx__AttributeProto *a = ox_attr(x, "value");
    if (a) {
        if (!a->t) return ox_fail(x, "attribute 'value' must be a tensor");
        int kv = ox_const_new(x, 0, NULL);
        if (kv < 0) return status_of(x);
        nasc_status st = ox_decode(x, a->t, &x->consts[kv]);
        if (st) return st;
        const ox_const *vc = &x->consts[kv];
        if (vc->dtype == OX_NONE) return ox_fail(x, "attribute 'value' cannot be read: %s", vc->why);
        if (vc->numel != 1) return ox_fail(x, "attribute 'value' must hold one element");
        dtype = vc->dtype;
        fill = dtype == OX_F32 ? (double)vc->f[0] : (double)vc->i[0];
    }
    int k = ox_const_make(x, dtype, rank, dims);
    if (k < 0) return status_of(x);
    ox_const *c = &x->consts[k];
    for (int64_t i = 0; i < c->numel; i++) {
        if (dtype == OX_F32)
            c->f[i] = (float)fill;
        else
            c->i[i] = (int64_t)fill;
    }
    return ox_define_const(x, 0, k);
}

/* TensorProto data types by what a cast to them gives here. */
static int cast_target(int64_t to, int64_t *lo, int64_t *hi) {
    *lo = INT64_MIN, *hi = INT64_MAX;
    switch (to) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return OX_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *lo = INT32_MIN, *hi = INT32_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: *lo = INT16_MIN, *hi = INT16_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *lo = INT8_MIN, *hi = INT8_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: *lo = 0, *hi = UINT8_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: *lo = 0, *hi = UINT16_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: *lo = 0, *hi = UINT32_MAX; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: *lo = 0; return OX_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *lo = 0, *hi = 1; return OX_I64;
    default: return OX_NONE;
    }
}

nasc_status ox_lower_cast(ox_imp *x) {
    static const char *const known[] = {"to", "saturate", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    const Onnx__AttributeProto *at = ox_attr(x, "to");
    if (!at) return ox_fail(x, "attribute 'to' is required");
    int64_t to, lo, hi;
    if (at->has_s && !at->has_i) return ox_fail(x, "attribute 'to' as a string (operator set 1) is not supported");
    if (!ox_attr_int(x, "to", 0, &to)) return status_of(x);
    int dt = cast_target(to, &lo, &hi);
    if (dt == OX_NONE)
        return ox_fail(x, "a cast to %s is not supported", nasc_onnx_elem_name((int32_t)to));
    if (!ox_all_const(x)) {
        if (dt != OX_F32 || to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return ox_fail(x, "a cast of a computed tensor to %s is not supported: nasc computes in FLOAT only",
                           nasc_onnx_elem_name((int32_t)to));
        uint32_t v = ox_value(x, 0);
        if (v == UINT32_MAX) return status_of(x);
        return ox_define(x, 0, ox_op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, 0));
    }
    int src = fold_in(x, 0, "input");
    if (src < 0) return status_of(x);
    int k = ox_const_make(x, dt, x->consts[src].rank, x->consts[src].dims);
    if (k < 0) return status_of(x);
    const ox_const *s = &x->consts[src];
    for (int64_t i = 0; i < s->numel; i++) {
        if (s->dtype == dt) {
            if (!copy_elem(x, k, i, src, i)) return status_of(x);
            s = &x->consts[src];
            if (dt == OX_I64 && !(s->nb && s->nb[i]) && (s->i[i] < lo || s->i[i] > hi))
                return ox_fail(x, "value %lld does not fit %s", (long long)s->i[i], nasc_onnx_elem_name((int32_t)to));
            if (to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL && !(s->nb && s->nb[i]))
                x->consts[k].i[i] = s->i[i] != 0;
        } else if (dt == OX_F32) {
            if (s->nb && s->nb[i])
                return ox_fail(x, "the input holds the batch size N, which is not known at import");
            x->consts[k].f[i] = (float)s->i[i];
        } else {
            float f = s->f[i];
            if (to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
                x->consts[k].i[i] = f != 0.0f;
                continue;
            }
            if (!isfinite(f) || truncf(f) < (float)lo || truncf(f) > (float)hi)
                return ox_fail(x, "value %g does not fit %s", (double)f, nasc_onnx_elem_name((int32_t)to));
            x->consts[k].i[i] = (int64_t)truncf(f);
        }
    }
    return ox_define_const(x, 0, k);
}

/* ---------------------------------------------------------------- */
/* Reshaping constants and values                                    */
/* ---------------------------------------------------------------- */

/* Constant src with other dims (same elements). */
static nasc_status const_reshaped(ox_imp *x, int src, int rank, const int64_t *dims) {
    int k = ox_const_make(x, x->consts[src].dtype, rank, dims);
    if (k < 0) return status_of(x);
    if (x->consts[k].numel != x->consts[src].numel)
        return ox_fail(x, "%lld elements cannot take a shape of %lld", (long long)x->consts[src].numel,
                       (long long)x->consts[k].numel);
    for (int64_t i = 0; i < x->consts[src].numel; i++)
        if (!copy_elem(x, k, i, src, i)) return status_of(x);
    return ox_define_const(x, 0, k);
}

/* Value v with dims d (rank r) through a reshape prim; the batch must stay first. */
static nasc_status value_reshaped(ox_imp *x, uint32_t v, int r, const int64_t *d) {
    if (r < 1 || r > NASC_MAX_RANK)
        return ox_fail(x, "the result would have rank %d; nasc tensors have rank 1 to %d", r, NASC_MAX_RANK);
    const nasc_type *t = ox_type(x, v);
    if ((t->dims[0] == NASC_BATCH) != (d[0] == NASC_BATCH))
        return ox_fail(x, "the result would move the batch dimension N away from the first dim");
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.shape_rank = r;
    for (int i = 0; i < r; i++) a.shape[i] = d[i];
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &v, 1, &a, 0));
}

/* dims of the input (constant or value): rank, dims; -1 on error. */
static int in_dims(ox_imp *x, uint32_t i, int64_t *dims, uint32_t *v, int *k) {
    *v = UINT32_MAX;
    *k = -1;
    if (ox_all_const(x)) {
        if ((*k = fold_in(x, i, "input")) < 0) return -1;
        for (int d = 0; d < x->consts[*k].rank; d++) dims[d] = x->consts[*k].dims[d];
        return x->consts[*k].rank;
    }
    if ((*v = ox_value(x, i)) == UINT32_MAX) return -1;
    const nasc_type *t = ox_type(x, *v);
    for (int d = 0; d < t->rank; d++) dims[d] = t->dims[d];
    return t->rank;
}

nasc_status ox_lower_unsqueeze(ox_imp *x) {
    static const char *const known[] = {"axes", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t axes[OX_MAX_RANK], dims[OX_MAX_RANK], out[OX_MAX_RANK];
    int na;
    if (!ox_ints_of(x, 1, "axes", 13, "axes", axes, OX_MAX_RANK, &na)) return status_of(x);
    if (na == 0) return ox_fail(x, "the axes are required");
    uint32_t v;
    int k, r = in_dims(x, 0, dims, &v, &k);
    if (r < 0) return status_of(x);
    int orank = r + na;
    if (orank > OX_MAX_RANK) return ox_fail(x, "the result would have rank %d (at most %d)", orank, OX_MAX_RANK);
    bool ins[OX_MAX_RANK] = {false};
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + orank : axes[i];
        if (a < 0 || a >= orank || ins[a]) return ox_fail(x, "axis %lld is out of range or repeated", (long long)axes[i]);
        ins[a] = true;
    }
    for (int d = 0, j = 0; d < orank; d++) out[d] = ins[d] ? 1 : dims[j++];
    if (k >= 0) return const_reshaped(x, k, orank, out);
    return value_reshaped(x, v, orank, out);
}

nasc_status ox_lower_squeeze(ox_imp *x) {
    static const char *const known[] = {"axes", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t axes[OX_MAX_RANK], dims[OX_MAX_RANK], out[OX_MAX_RANK];
    int na;
    if (!ox_ints_of(x, 1, "axes", 13, "axes", axes, OX_MAX_RANK, &na)) return status_of(x);
    uint32_t v;
    int k, r = in_dims(x, 0, dims, &v, &k);
    if (r < 0) return status_of(x);
    bool drop[OX_MAX_RANK] = {false};
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r) return ox_fail(x, "axis %lld is out of range for rank %d", (long long)axes[i], r);
        if (dims[a] == NASC_BATCH) return ox_fail(x, "squeezing the batch dimension N is not supported");
        if (dims[a] != 1) return ox_fail(x, "axis %lld has size %lld, not 1", (long long)axes[i], (long long)dims[a]);
        drop[a] = true;
    }
    for (int d = 0; na == 0 && d < r; d++) drop[d] = dims[d] == 1;
    int orank = 0;
    for (int d = 0; d < r; d++)
        if (!drop[d]) out[orank++] = dims[d];
    if (k >= 0) return const_reshaped(x, k, orank, out);
    if (orank == 0) out[orank++] = 1; /* a scalar: rank 1 here */
    return value_reshaped(x, v, orank, out);
}

nasc_status ox_fold_reshape(ox_imp *x) {
    int64_t allowzero;
    if (!ox_attr_int(x, "allowzero", 0, &allowzero)) return status_of(x);
    int src = fold_in(x, 0, "data");
    if (src < 0) return status_of(x);
    int64_t s[OX_MAX_RANK];
    int n;
    if (x->opset < 5) {
        if (!ox_attr_ints(x, "shape", s, OX_MAX_RANK, &n)) return status_of(x);
    } else {
        const ox_const *c = ox_const_in(x, 1, "shape");
        if (!c) return status_of(x);
        if (c->dtype != OX_I64 || c->rank != 1 || c->numel > OX_MAX_RANK)
            return ox_fail(x, "input 2 (the shape) must be a 1-D INT64 tensor of at most %d values", OX_MAX_RANK);
        n = (int)c->numel;
        for (int i = 0; i < n; i++) s[i] = c->i[i];
    }
    const ox_const *c = &x->consts[src];
    int64_t known = 1;
    int infer = -1;
    for (int i = 0; i < n; i++) {
        if (s[i] == 0 && !allowzero) {
            if (i >= c->rank) return ox_fail(x, "shape[%d] = 0 copies a dim the input does not have", i);
            s[i] = c->dims[i];
        }
        if (s[i] == -1) {
            if (infer >= 0) return ox_fail(x, "the shape has more than one -1");
            infer = i;
        } else if (s[i] < 0) {
            return ox_fail(x, "shape[%d] = %lld is not a dim", i, (long long)s[i]);
        } else if (s[i] > 0 && known > c->numel / s[i]) {
            return ox_fail(x, "the shape does not fit the input's %lld elements", (long long)c->numel);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || c->numel % known) return ox_fail(x, "the shape does not fit the input's elements");
        s[infer] = c->numel / known;
    }
    return const_reshaped(x, src, n, s);
}

/* ---------------------------------------------------------------- */
/* Concat, Gather, Slice, Transpose of constants                     */
/* ---------------------------------------------------------------- */

nasc_status ox_fold_concat(ox_imp *x) {
    const Onnx__NodeProto *nd = ox_node(x);
    uint32_t n = (uint32_t)nd->n_input;
    int64_t axis;
    if (!ox_attr_int(x, "axis", 1, &axis)) return status_of(x);
    int src[64];
    for (uint32_t i = 0; i < n; i++)
        if ((src[i] = fold_in(x, i, "input")) < 0) return status_of(x);
    const ox_const *c0 = &x->consts[src[0]];
    int r = c0->rank;
    if (r < 1) return ox_fail(x, "concatenating scalars is not defined");
    if (axis < -r || axis >= r) return ox_fail(x, "axis %lld is out of range for rank %d", (long long)axis, r);
    if (axis < 0) axis += r;
    int64_t dims[OX_MAX_RANK];
    for (int d = 0; d < r; d++) dims[d] = c0->dims[d];
    dims[axis] = 0;
    for (uint32_t i = 0; i < n; i++) {
        const ox_const *c = &x->consts[src[i]];
        bool ok = c->rank == r && c->dtype == c0->dtype;
        for (int d = 0; ok && d < r; d++) ok = d == axis || c->dims[d] == c0->dims[d];
        if (!ok) return ox_fail(x, "input %u does not match input 1 in element type, rank or dims", i + 1);
        dims[axis] += c->dims[axis];
    }
    int k = ox_const_make(x, c0->dtype, r, dims);
    if (k < 0) return status_of(x);
    /* outer blocks of (dims[axis..] of each input) */
    int64_t outer = 1;
    for (int d = 0; d < axis; d++) outer *= dims[d];
    int64_t j = 0;
    for (int64_t o = 0; o < outer; o++)
        for (uint32_t i = 0; i < n; i++) {
            const ox_const *c = &x->consts[src[i]];
            int64_t block = outer ? c->numel / outer : 0;
            for (int64_t e = 0; e < block; e++)
                if (!copy_elem(x, k, j++, src[i], o * block + e)) return status_of(x);
        }
    return ox_define_const(x, 0, k);
}

nasc_status ox_fold_gather(ox_imp *x) {
    int64_t axis;
    if (!ox_attr_int(x, "axis", 0, &axis)) return status_of(x);
    int src = fold_in(x, 0, "data");
    const ox_const *ic = ox_const_in(x, 1, "indices");
    if (src < 0 || !ic) return status_of(x);
    int ik = (int)(ic - x->consts);
    const ox_const *c = &x->consts[src];
    if (ic->dtype != OX_I64) return ox_fail(x, "input 2 (indices) must be an integer tensor");
    int r = c->rank;
    if (r < 1) return ox_fail(x, "input 1 (data) is a scalar");
    if (axis < -r || axis >= r) return ox_fail(x, "axis %lld is out of range for rank %d", (long long)axis, r);
    if (axis < 0) axis += r;
    int orank = r - 1 + ic->rank;
    if (orank > OX_MAX_RANK) return ox_fail(x, "the result would have rank %d (at most %d)", orank, OX_MAX_RANK);
    int64_t dims[OX_MAX_RANK];
    int o = 0;
    for (int d = 0; d < axis; d++) dims[o++] = c->dims[d];
    for (int d = 0; d < ic->rank; d++) dims[o++] = ic->dims[d];
    for (int d = (int)axis + 1; d < r; d++) dims[o++] = c->dims[d];
    if (!fold_size_ok(x, orank, dims, c->numel + ic->numel)) return status_of(x);
    int k = ox_const_make(x, c->dtype, orank, dims);
    if (k < 0) return status_of(x);
    c = &x->consts[src];
    ic = &x->consts[ik];
    int64_t outer = 1, inner = 1, n = c->dims[axis];
    for (int d = 0; d < axis; d++) outer *= c->dims[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= c->dims[d];
    int64_t j = 0;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t q = 0; q < ic->numel; q++) {
            int64_t idx = ic->i[q] < 0 ? ic->i[q] + n : ic->i[q];
            if (idx < 0 || idx >= n)
                return ox_fail(x, "index %lld is out of range for a dim of %lld", (long long)ic->i[q], (long long)n);
            for (int64_t e = 0; e < inner; e++)
                if (!copy_elem(x, k, j++, src, (a * n + idx) * inner + e)) return status_of(x);
        }
    return ox_define_const(x, 0, k);
}

/* An end (or start) at or past this reads as "to the end": exporters write
 * INT64_MAX, INT32_MAX or the dim itself. */
#define OX_TO_END ((int64_t)1 << 30)

bool ox_slice_ranges(ox_imp *x, int rank, const int64_t *dims, int64_t *start, int64_t *step, int64_t *count) {
    static const char *const known[] = {"starts", "ends", "axes", NULL};
    if (!ox_attrs_known(x, known)) return false;
    int64_t st[OX_MAX_RANK], en[OX_MAX_RANK], ax[OX_MAX_RANK], sp[OX_MAX_RANK];
    int ns, ne, na, np = 0;
    if (!ox_ints_of(x, 1, "starts", 10, "starts", st, OX_MAX_RANK, &ns) ||
        !ox_ints_of(x, 2, "ends", 10, "ends", en, OX_MAX_RANK, &ne) ||
        !ox_ints_of(x, 3, "axes", 10, "axes", ax, OX_MAX_RANK, &na) ||
        (x->opset >= 10 && !ox_ints_of(x, 4, "steps", 10, "steps", sp, OX_MAX_RANK, &np)))
        return false;
    if (ns != ne || ns < 1 || (na && na != ns) || (np && np != ns)) {
        ox_fail(x, "starts, ends, axes and steps must have the same length");
        return false;
    }
    bool seen[OX_MAX_RANK] = {false};
    for (int d = 0; d < rank; d++) start[d] = 0, step[d] = 1, count[d] = dims[d];
    for (int i = 0; i < ns; i++) {
        int64_t a = na ? ax[i] : i, s = st[i], e = en[i], t = np ? sp[i] : 1;
        if (a < 0) a += rank;
        if (a < 0 || a >= rank || seen[a]) {
            ox_fail(x, "axis %lld is out of range or repeated", (long long)(na ? ax[i] : i));
            return false;
        }
        seen[a] = true;
        if (t == 0) {
            ox_fail(x, "a step of 0 is not allowed");
            return false;
        }
        int64_t n = dims[a];
        if (n == NASC_BATCH) {
            if (s != 0 || e < OX_TO_END || t != 1) {
                ox_fail(x, "slicing the batch dimension N is not supported (axis %lld)", (long long)a);
                return false;
            }
            continue;
        }
        if (s < 0) s += n; /* no overflow: n > 0 */
        if (e < 0) e += n;
        /* |t| as unsigned: t may be INT64_MIN */
        uint64_t mag = t > 0 ? (uint64_t)t : (uint64_t)(-(t + 1)) + 1;
        if (t > 0) {
            s = s < 0 ? 0 : s > n ? n : s;
            e = e < 0 ? 0 : e > n ? n : e;
            count[a] = e > s ? (int64_t)(1 + (uint64_t)(e - s - 1) / mag) : 0;
        } else {
            s = s < 0 ? 0 : s > n - 1 ? n - 1 : s;
            e = e < -1 ? -1 : e > n - 1 ? n - 1 : e;
            count[a] = s > e ? (int64_t)(1 + (uint64_t)(s - e - 1) / mag) : 0;
        }
        if (count[a] == 0) {
            ox_fail(x, "the slice of axis %lld is empty (an empty tensor is not supported)", (long long)a);
            return false;
        }
        start[a] = s;
        step[a] = t;
    }
    return true;
}

nasc_status ox_fold_slice(ox_imp *x) {
    int src = fold_in(x, 0, "data");
    if (src < 0) return status_of(x);
    int r = x->consts[src].rank;
    if (r < 1) return ox_fail(x, "input 1 (data) is a scalar");
    int64_t start[OX_MAX_RANK], step[OX_MAX_RANK], count[OX_MAX_RANK], st[OX_MAX_RANK];
    int64_t dims[OX_MAX_RANK];
    for (int d = 0; d < r; d++) dims[d] = x->consts[src].dims[d];
    if (!ox_slice_ranges(x, r, dims, start, step, count)) return status_of(x);
    int k = ox_const_make(x, x->consts[src].dtype, r, count);
    if (k < 0) return status_of(x);
    strides_of(r, dims, st);
    int64_t idx[OX_MAX_RANK] = {0};
    for (int64_t j = 0; j < x->consts[k].numel; j++) {
        int64_t e = 0;
        for (int d = 0; d < r; d++) e += (start[d] + idx[d] * step[d]) * st[d];
        if (!copy_elem(x, k, j, src, e)) return status_of(x);
        for (int d = r - 1; d >= 0 && ++idx[d] == count[d]; d--) idx[d] = 0;
    }
    return ox_define_const(x, 0, k);
}

nasc_status ox_lower_transpose(ox_imp *x) {
    static const char *const known[] = {"perm", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t perm[OX_MAX_RANK], dims[OX_MAX_RANK];
    int np;
    if (!ox_attr_ints(x, "perm", perm, OX_MAX_RANK, &np)) return status_of(x);
    uint32_t v;
    int k, r = in_dims(x, 0, dims, &v, &k);
    if (r < 0) return status_of(x);
    if (np == 0) {
        np = r;
        for (int d = 0; d < r; d++) perm[d] = r - 1 - d;
    }
    bool seen[OX_MAX_RANK] = {false}, identity = true;
    if (np != r) return ox_fail(x, "attribute 'perm' has %d values for a tensor of rank %d", np, r);
    for (int d = 0; d < r; d++) {
        if (perm[d] < 0 || perm[d] >= r || seen[perm[d]])
            return ox_fail(x, "attribute 'perm' is not a permutation of 0..%d", r - 1);
        seen[perm[d]] = true;
        identity = identity && perm[d] == d;
    }
    if (k < 0) {
        if (identity) return ox_define(x, 0, ox_op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, 0));
        return ox_fail(x, "a Transpose of a computed tensor is not supported (nasc has no transpose op; "
                          "only constants are transposed at import)");
    }
    int64_t out[OX_MAX_RANK], st[OX_MAX_RANK], idx[OX_MAX_RANK] = {0};
    for (int d = 0; d < r; d++) out[d] = dims[perm[d]];
    int t = ox_const_make(x, x->consts[k].dtype, r, out);
    if (t < 0) return status_of(x);
    strides_of(r, dims, st);
    for (int64_t j = 0; j < x->consts[t].numel; j++) {
        int64_t e = 0;
        for (int d = 0; d < r; d++) e += idx[d] * st[perm[d]];
        if (!copy_elem(x, t, j, k, e)) return status_of(x);
        for (int d = r - 1; d >= 0 && ++idx[d] == out[d]; d--) idx[d] = 0;
    }
    return ox_define_const(x, 0, t);
}

/* ---------------------------------------------------------------- */
/* Arithmetic                                                        */
/* ---------------------------------------------------------------- */

nasc_status ox_fold_arith(ox_imp *x, char op) {
    int a = fold_in(x, 0, "A"), b = fold_in(x, 1, "B");
    if (a < 0 || b < 0) return status_of(x);
    const ox_const *ca = &x->consts[a], *cb = &x->consts[b];
    if (has_nb(ca) || has_nb(cb))
        return ox_fail(x, "the result depends on the batch size N, which is not known at import");
    if (ca->dtype != cb->dtype)
        return ox_fail(x, "inputs of element types %s and %s", dtype_str(ca->dtype), dtype_str(cb->dtype));
    int r = ca->rank > cb->rank ? ca->rank : cb->rank;
    int64_t dims[OX_MAX_RANK], da[OX_MAX_RANK], db[OX_MAX_RANK], sa[OX_MAX_RANK], sb[OX_MAX_RANK];
    for (int d = 0; d < r; d++) {
        int ia = d - (r - ca->rank), ib = d - (r - cb->rank);
        da[d] = ia >= 0 ? ca->dims[ia] : 1;
        db[d] = ib >= 0 ? cb->dims[ib] : 1;
        if (da[d] != db[d] && da[d] != 1 && db[d] != 1)
            return ox_fail(x, "input shapes do not broadcast (dim %d: %lld and %lld)", d, (long long)da[d],
                           (long long)db[d]);
        dims[d] = da[d] == 1 ? db[d] : da[d];
    }
    if (!fold_size_ok(x, r, dims, ca->numel + cb->numel)) return status_of(x);
    strides_of(r, da, sa);
    strides_of(r, db, sb);
    for (int d = 0; d < r; d++) {
        if (da[d] == 1) sa[d] = 0;
        if (db[d] == 1) sb[d] = 0;
    }
    int k = ox_const_make(x, ca->dtype, r, dims);
    if (k < 0) return status_of(x);
    ca = &x->consts[a];
    cb = &x->consts[b];
    ox_const *c = &x->consts[k];
    int64_t idx[OX_MAX_RANK] = {0};
    for (int64_t j = 0; j < c->numel; j++) {
        int64_t ea = 0, eb = 0;
        for (int d = 0; d < r; d++) ea += idx[d] * sa[d], eb += idx[d] * sb[d];
        if (c->dtype == OX_F32) {
            float p = ca->f[ea], q = cb->f[eb];
            c->f[j] = op == '+' ? p + q : op == '-' ? p - q : op == '*' ? p * q : p / q;
        } else {
            int64_t p = ca->i[ea], q = cb->i[eb];
            if (op == '/' && q == 0) return ox_fail(x, "integer division by zero");
            if (op == '/' && p == INT64_MIN && q == -1) return ox_fail(x, "integer overflow");
            bool ovf = false;
            int64_t y = 0;
            switch (op) {
            case '+': ovf = __builtin_add_overflow(p, q, &y); break;
            case '-': ovf = __builtin_sub_overflow(p, q, &y); break;
            case '*': ovf = __builtin_mul_overflow(p, q, &y); break;
            default: y = p / q; break; /* ONNX integer Div truncates, as C does */
            }
            if (ovf) return ox_fail(x, "integer overflow");
            c->i[j] = y;
        }
        for (int d = r - 1; d >= 0 && ++idx[d] == dims[d]; d--) idx[d] = 0;
    }
    return ox_define_const(x, 0, k);
}
