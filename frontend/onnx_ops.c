/* onnx_ops.c - one lowering per ONNX operator, from the node being
 * imported (ox_node) to prim ops (docs/onnx-import.md has the table).
 *
 * A lowering reads its inputs as values (ox_value: a prim value, or a
 * parameter made from a float constant) or as constants (ox_const_in:
 * weights, shapes, pads), checks every attribute it is given, emits prim
 * ops and defines the node's outputs. Anything it cannot express is an
 * error naming the node, the operator and the attribute or input.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

/* The attributes every operator may carry without meaning: none are
 * honoured, none change the result in inference. */
#define LEGACY "consumed_inputs"

nasc_status ox_status(ox_imp *x) { return x->ctx->diag.status ? x->ctx->diag.status : NASC_EINTERNAL; }
#define status_of ox_status

static bool axis_in(ox_imp *x, int64_t axis, int rank, bool allow_end, int *out) {
    int64_t hi = allow_end ? rank : rank - 1;
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > hi) {
        ox_fail(x, "axis %lld is out of range for rank %d", (long long)(axis < 0 ? axis - rank : axis), rank);
        return false;
    }
    *out = (int)axis;
    return true;
}

/* Only the first output: any other (optional) output that is asked for is
 * an error naming what it is. */
static bool one_output(ox_imp *x, const char *what) {
    const Onnx__NodeProto *n = ox_node(x);
    for (size_t o = 1; o < n->n_output; o++)
        if (n->output[o] && n->output[o][0]) {
            ox_fail(x, "output %zu ('%.80s', %s) is not supported", o + 1, n->output[o], what);
            return false;
        }
    return true;
}

static void fmt_dims(const nasc_type *t, char *buf, size_t size) { nasc_type_format(t, buf, size); }

/* ---------------------------------------------------------------- */
/* Elementwise                                                       */
/* ---------------------------------------------------------------- */

static nasc_status unary(ox_imp *x, nasc_prim_op op) {
    static const char *const known[] = {LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, ox_op(x, op, &v, 1, NULL, 0));
}

static nasc_status lower_relu(ox_imp *x) { return unary(x, NASC_PRIM_RELU); }
static nasc_status lower_sigmoid(ox_imp *x) { return unary(x, NASC_PRIM_SIGMOID); }
static nasc_status lower_tanh(ox_imp *x) { return unary(x, NASC_PRIM_TANH); }

/* Identity of a constant is that constant; of a value, an identity op. */
static nasc_status pass_through(ox_imp *x) {
    if (ox_is_const(x, 0) && !ox_has_value(x, 0)) {
        const ox_const *c = ox_shape_in(x, 0, "input");
        if (!c) return status_of(x);
        return ox_define_const(x, 0, (int)(c - x->consts));
    }
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, 0));
}

static nasc_status lower_identity(ox_imp *x) {
    static const char *const known[] = {NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    return pass_through(x);
}

/* Inference: the output is the input. */
static nasc_status lower_dropout(ox_imp *x) {
    static const char *const known[] = {"ratio", "seed", "is_test", LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t is_test;
    if (!ox_attr_int(x, "is_test", 1, &is_test)) return status_of(x);
    if (x->opset < 7 && !is_test) return ox_fail(x, "attribute 'is_test' = 0 (training mode) is not supported");
    if (!one_output(x, "the training mask")) return status_of(x);
    if (ox_in(x, 2)) {
        const ox_const *t = ox_const_in(x, 2, "training_mode");
        if (!t) return status_of(x);
        bool on = t->numel > 0 && (t->dtype == OX_F32 ? t->f[0] != 0 : t->i[0] != 0);
        if (on) return ox_fail(x, "input 3 training_mode = true is not supported (inference only)");
    }
    return pass_through(x);
}

/* The numpy broadcast of every input's type into out; false (with a
 * message) when they do not broadcast. */
static bool broadcast_all(ox_imp *x, const uint32_t *v, uint32_t n, nasc_type *out) {
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < n; i++)
        if (ox_type(x, v[i])->rank > out->rank) out->rank = ox_type(x, v[i])->rank;
    for (int k = 0; k < out->rank; k++) {
        int64_t d = 1;
        for (uint32_t i = 0; i < n; i++) {
            const nasc_type *t = ox_type(x, v[i]);
            int j = t->rank - out->rank + k;
            if (j < 0) continue;
            int64_t e = t->dims[j];
            if (e == 1 || e == d) continue;
            if (d == 1) {
                d = e;
                continue;
            }
            char a[64], b[64];
            fmt_dims(ox_type(x, v[0]), a, sizeof a);
            fmt_dims(t, b, sizeof b);
            ox_fail(x, "input shapes %s and %s do not broadcast", a, b);
            return false;
        }
        out->dims[k] = d;
    }
    for (int k = 1; k < out->rank; k++)
        if (out->dims[k] == NASC_BATCH) {
            ox_fail(x, "broadcasting would move the batch dimension N away from the first dim");
            return false;
        }
    return true;
}

/* op over values v[0..n) (Add, Mul, Sum): the prim ops take the operand of
 * the result's shape first and broadcast the others to it. The result is
 * the node's output 0, or a helper "<output 0>.<suffix>" when suffix is
 * given. */
static uint32_t broadcast_op(ox_imp *x, nasc_prim_op op, uint32_t *v, uint32_t n, const char *suffix) {
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == UINT32_MAX) return UINT32_MAX;
    if (n == 1) return suffix ? ox_op_tmp(x, NASC_PRIM_IDENTITY, v, 1, NULL, 0, suffix)
                              : ox_op(x, NASC_PRIM_IDENTITY, v, 1, NULL, 0);
    nasc_type y;
    if (!broadcast_all(x, v, n, &y)) return UINT32_MAX;
    uint32_t full = n;
    for (uint32_t i = 0; i < n && full == n; i++) {
        const nasc_type *t = ox_type(x, v[i]);
        bool same = t->rank == y.rank;
        for (int k = 0; same && k < y.rank; k++) same = t->dims[k] == y.dims[k];
        if (same) full = i;
    }
    if (full == n) {
        char b[64];
        fmt_dims(&y, b, sizeof b);
        ox_fail(x, "broadcasting where no input has the result's shape %s is not supported", b);
        return UINT32_MAX;
    }
    uint32_t t = v[0];
    v[0] = v[full];
    v[full] = t;
    return suffix ? ox_op_tmp(x, op, v, n, NULL, 0, suffix) : ox_op(x, op, v, n, NULL, 0);
}

/* Operator set < 7 broadcast attributes, unknown attributes, arity. */
static bool binary_attrs(ox_imp *x, uint32_t lo, uint32_t hi) {
    static const char *const known[] = {LEGACY, NULL};
    if (ox_attr(x, "broadcast") || ox_attr(x, "axis")) {
        ox_fail(x, "the legacy attributes 'broadcast' / 'axis' (operator set < 7) are not supported");
        return false;
    }
    if (!ox_attrs_known(x, known)) return false;
    uint32_t n = (uint32_t)ox_node(x)->n_input;
    if (n < lo || n > hi) {
        ox_fail(x, "%u inputs is not supported", n);
        return false;
    }
    return true;
}

static nasc_status elementwise(ox_imp *x, nasc_prim_op op) {
    if (!binary_attrs(x, op == NASC_PRIM_MUL ? 2 : 1, op == NASC_PRIM_MUL ? 2 : 64)) return status_of(x);
    uint32_t n = (uint32_t)ox_node(x)->n_input;
    if (n == 2 && ox_all_const(x)) return ox_fold_arith(x, op == NASC_PRIM_MUL ? '*' : '+');
    uint32_t v[64];
    for (uint32_t i = 0; i < n; i++)
        if ((v[i] = ox_value(x, i)) == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, broadcast_op(x, op, v, n, NULL));
}

static nasc_status lower_add(ox_imp *x) { return elementwise(x, NASC_PRIM_ADD); }
static nasc_status lower_sum(ox_imp *x) { return elementwise(x, NASC_PRIM_ADD); }
static nasc_status lower_mul(ox_imp *x) { return elementwise(x, NASC_PRIM_MUL); }

/* A parameter "<output 0>.<suffix>" holding f(c) for the float constant of
 * input i: -c ('-') or 1 / c ('/'). */
static uint32_t mapped_param(ox_imp *x, uint32_t i, char f, const char *suffix) {
    const ox_const *c = ox_const_in(x, i, f == '/' ? "divisor" : "subtrahend");
    if (!c) return UINT32_MAX;
    if (c->dtype != OX_F32) {
        ox_fail(x, "input %u is an integer tensor; computed tensors are float", i + 1);
        return UINT32_MAX;
    }
    if (c->rank > NASC_MAX_RANK) {
        ox_fail(x, "input %u has rank %d; nasc tensors have rank 1 to %d", i + 1, c->rank, NASC_MAX_RANK);
        return UINT32_MAX;
    }
    int src = (int)(c - x->consts);
    int64_t dims[NASC_MAX_RANK] = {1};
    int rank = c->rank ? c->rank : 1;
    for (int d = 0; d < c->rank; d++) dims[d] = c->dims[d];
    int k = ox_const_new(x, rank, dims);
    if (k < 0) return UINT32_MAX;
    for (int64_t e = 0; e < x->consts[k].numel; e++) {
        float v = x->consts[src].f[e];
        x->consts[k].f[e] = f == '/' ? 1.0f / v : -v;
    }
    return ox_param(x, k, rank, dims, suffix, 0);
}

/* a - b: a + (-b) for a constant b, (-b) + a for a constant a, else
 * a + b * -1. */
static nasc_status lower_sub(ox_imp *x) {
    if (!binary_attrs(x, 2, 2)) return status_of(x);
    if (ox_all_const(x)) return ox_fold_arith(x, '-');
    uint32_t v[2];
    if (!ox_has_value(x, 1) && ox_is_const(x, 1)) {
        v[0] = ox_value(x, 0);
        v[1] = mapped_param(x, 1, '-', "neg");
    } else {
        uint32_t m[2] = {ox_value(x, 1), ox_scalar_param(x, -1.0f, "minus_one")};
        v[1] = ox_value(x, 0);
        v[0] = m[0] == UINT32_MAX || m[1] == UINT32_MAX ? UINT32_MAX : ox_op_tmp(x, NASC_PRIM_MUL, m, 2, NULL, 0, "neg");
    }
    if (v[0] == UINT32_MAX || v[1] == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, broadcast_op(x, NASC_PRIM_ADD, v, 2, NULL));
}

/* a / b for a constant b: a * (1 / b) (within an ulp of the quotient). */
static nasc_status lower_div(ox_imp *x) {
    if (!binary_attrs(x, 2, 2)) return status_of(x);
    if (ox_all_const(x)) return ox_fold_arith(x, '/');
    if (ox_has_value(x, 1) || !ox_is_const(x, 1))
        return ox_fail(x, "division by a computed tensor is not supported (only by a constant)");
    uint32_t v[2] = {ox_value(x, 0), mapped_param(x, 1, '/', "reciprocal")};
    if (v[0] == UINT32_MAX || v[1] == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, broadcast_op(x, NASC_PRIM_MUL, v, 2, NULL));
}

static nasc_status lower_neg(ox_imp *x) {
    static const char *const known[] = {LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    uint32_t v[2] = {ox_value(x, 0), ox_scalar_param(x, -1.0f, "minus_one")};
    if (v[0] == UINT32_MAX || v[1] == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, broadcast_op(x, NASC_PRIM_MUL, v, 2, NULL));
}

/* Clip(x, lo, hi) from relu, mul and add (nasc has no clip op):
 *     t = relu(x) when lo is 0, else relu(x - lo) + lo
 *     y = hi - relu(hi - t)
 * y is exactly min(max(x, lo), hi) when lo is 0 and t >= hi / 2 (and
 * wherever t >= hi); below hi / 2 the rounding of hi - t makes it off by at
 * most half an ulp of hi (2.4e-7 for ReLU6). */
static nasc_status lower_clip(ox_imp *x) {
    static const char *const known[] = {"min", "max", LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    float lo = -FLT_MAX, hi = FLT_MAX;
    if (x->opset < 11) {
        if (!ox_attr_float(x, "min", lo, &lo) || !ox_attr_float(x, "max", hi, &hi)) return status_of(x);
    } else {
        for (uint32_t i = 1; i <= 2; i++) {
            if (!ox_in(x, i)) continue;
            const ox_const *c = ox_const_in(x, i, i == 1 ? "min" : "max");
            if (!c) return status_of(x);
            if (c->dtype != OX_F32 || c->numel != 1)
                return ox_fail(x, "input %u (%s) must be a float scalar", i + 1, i == 1 ? "min" : "max");
            *(i == 1 ? &lo : &hi) = c->f[0];
        }
    }
    if (!(lo <= hi)) return ox_fail(x, "min %g is above max %g", (double)lo, (double)hi);
    if (!isfinite(lo) && lo > 0) return ox_fail(x, "min is +inf");
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    bool has_lo = lo > -FLT_MAX, has_hi = hi < FLT_MAX;
    if (!has_lo && !has_hi) return ox_define(x, 0, ox_op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, 0));
    uint32_t t = v;
    if (has_lo && lo == 0.0f) {
        t = has_hi ? ox_op_tmp(x, NASC_PRIM_RELU, &t, 1, NULL, 0, "relu") : ox_op(x, NASC_PRIM_RELU, &t, 1, NULL, 0);
    } else if (has_lo) {
        uint32_t a[2] = {t, ox_scalar_param(x, -lo, "minus_min")};
        uint32_t sh = ox_op_tmp(x, NASC_PRIM_ADD, a, 2, NULL, 0, "shifted");
        uint32_t b[2] = {ox_op_tmp(x, NASC_PRIM_RELU, &sh, 1, NULL, 0, "relu"), ox_scalar_param(x, lo, "min")};
        t = has_hi ? ox_op_tmp(x, NASC_PRIM_ADD, b, 2, NULL, 0, "low") : ox_op(x, NASC_PRIM_ADD, b, 2, NULL, 0);
    }
    if (has_hi) {
        uint32_t m1 = ox_scalar_param(x, -1.0f, "minus_one"), h = ox_scalar_param(x, hi, "max");
        uint32_t a[2] = {t, m1};
        uint32_t b[2] = {ox_op_tmp(x, NASC_PRIM_MUL, a, 2, NULL, 0, "neg"), h};
        uint32_t r = ox_op_tmp(x, NASC_PRIM_ADD, b, 2, NULL, 0, "room");
        uint32_t c[2] = {ox_op_tmp(x, NASC_PRIM_RELU, &r, 1, NULL, 0, "room_relu"), m1};
        uint32_t d[2] = {ox_op_tmp(x, NASC_PRIM_MUL, c, 2, NULL, 0, "room_neg"), h};
        t = ox_op(x, NASC_PRIM_ADD, d, 2, NULL, 0);
    }
    return ox_define(x, 0, t);
}

/* ---------------------------------------------------------------- */
/* Shapes: concat, softmax, flatten, reshape                         */
/* ---------------------------------------------------------------- */

static nasc_status lower_concat(ox_imp *x) {
    static const char *const known[] = {"axis", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    const Onnx__NodeProto *nd = ox_node(x);
    uint32_t n = (uint32_t)nd->n_input;
    if (n < 1 || n > 64) return ox_fail(x, "%u inputs is not supported", n);
    if (!ox_attr(x, "axis") && x->opset >= 4) return ox_fail(x, "attribute 'axis' is required");
    int64_t axis;
    if (!ox_attr_int(x, "axis", 1, &axis)) return status_of(x);
    if (ox_all_const(x)) return ox_fold_concat(x);
    uint32_t v[64];
    for (uint32_t i = 0; i < n; i++)
        if ((v[i] = ox_value(x, i)) == UINT32_MAX) return status_of(x);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    if (!axis_in(x, axis, ox_type(x, v[0])->rank, false, &a.axis)) return status_of(x);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_CONCAT, v, n, &a, 0));
}

/* A reshape attribute for dims d (rank r; d[0] may be NASC_BATCH). */
static nasc_prim_attrs reshape_attrs(int r, const int64_t *d) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.shape_rank = r;
    for (int i = 0; i < r; i++) a.shape[i] = d[i];
    return a;
}

/* x seen as 2-D around axis: (d[0] * ... * d[axis-1], d[axis] * ...).
 * With a batch, the first part can only be N itself (axis 1). */
static bool coerce_2d(ox_imp *x, const nasc_type *t, int axis, int64_t *d2) {
    int64_t a = 1, b = 1;
    bool batched = t->dims[0] == NASC_BATCH;
    for (int i = 0; i < t->rank; i++) {
        int64_t d = t->dims[i] == NASC_BATCH ? 1 : t->dims[i];
        if (i < axis)
            a *= d;
        else
            b *= d;
    }
    if (batched && axis != 1) {
        ox_fail(x, "axis %d would mix the batch dimension N with others (only axis 1 keeps it apart)", axis);
        return false;
    }
    d2[0] = batched ? NASC_BATCH : a;
    d2[1] = b;
    return true;
}

static nasc_status lower_softmax(ox_imp *x) {
    static const char *const known[] = {"axis", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t axis;
    if (!ox_attr_int(x, "axis", x->opset >= 13 ? -1 : 1, &axis)) return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    const nasc_type t = *ox_type(x, v);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    if (!axis_in(x, axis, t.rank, false, &a.axis)) return status_of(x);
    if (x->opset >= 13 || a.axis == t.rank - 1) return ox_define(x, 0, ox_op(x, NASC_PRIM_SOFTMAX, &v, 1, &a, 0));
    /* before operator set 13: softmax over everything from axis on */
    int64_t d2[2];
    if (!coerce_2d(x, &t, a.axis, d2)) return status_of(x);
    nasc_prim_attrs r = reshape_attrs(2, d2);
    uint32_t f = ox_op_tmp(x, NASC_PRIM_RESHAPE, &v, 1, &r, 0, "2d");
    a.axis = 1;
    uint32_t s = ox_op_tmp(x, NASC_PRIM_SOFTMAX, &f, 1, &a, 0, "softmax");
    nasc_prim_attrs back = reshape_attrs(t.rank, t.dims);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &s, 1, &back, 0));
}

static nasc_status lower_flatten(ox_imp *x) {
    static const char *const known[] = {"axis", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t axis;
    if (!ox_attr_int(x, "axis", 1, &axis)) return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    const nasc_type t = *ox_type(x, v);
    int ax;
    if (!axis_in(x, axis, t.rank, true, &ax)) return status_of(x);
    if (ax == 1 && t.rank >= 2) return ox_define(x, 0, ox_op(x, NASC_PRIM_FLATTEN, &v, 1, NULL, 0));
    int64_t d2[2];
    if (!coerce_2d(x, &t, ax, d2)) return status_of(x);
    nasc_prim_attrs a = reshape_attrs(2, d2);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &v, 1, &a, 0));
}

static nasc_status lower_reshape(ox_imp *x) {
    static const char *const known[] = {"allowzero", "shape", LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t allowzero, s[OX_MAX_RANK];
    int n = 0;
    bool nb[OX_MAX_RANK] = {false};
    if (!ox_attr_int(x, "allowzero", 0, &allowzero)) return status_of(x);
    if (x->opset < 5) {
        if (!ox_attr_ints(x, "shape", s, OX_MAX_RANK, &n)) return status_of(x);
    } else {
        const ox_const *c = ox_shape_in(x, 1, "shape");
        if (!c) return status_of(x);
        if (c->dtype != OX_I64 || c->rank != 1) return ox_fail(x, "input 2 (the shape) must be a 1-D INT64 tensor");
        if (c->numel > OX_MAX_RANK) return ox_fail(x, "a shape of %lld dims is not supported", (long long)c->numel);
        n = (int)c->numel;
        for (int i = 0; i < n; i++) s[i] = c->i[i], nb[i] = c->nb && c->nb[i];
    }
    if (ox_is_const(x, 0) && !ox_has_value(x, 0)) return ox_fold_reshape(x);
    if (n > NASC_MAX_RANK)
        return ox_fail(x, "the result would have rank %d; nasc tensors have rank 1 to %d", n, NASC_MAX_RANK);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    const nasc_type t = *ox_type(x, v);
    bool batched = t.dims[0] == NASC_BATCH;
    int64_t d[NASC_MAX_RANK], known_p = 1;
    int infer = -1;
    for (int i = 0; i < n; i++) {
        if (nb[i]) {
            /* the batch size N, read from a Shape: it stays where it was */
            if (i != 0 || !batched)
                return ox_fail(x, "shape[%d] is the batch size N of another tensor; only shape[0] of a batched input "
                                  "may be",
                               i);
            d[i] = NASC_BATCH;
            continue;
        }
        if (s[i] == 0 && allowzero) return ox_fail(x, "a zero dim (an empty tensor) is not supported");
        if (s[i] == 0) {
            if (i >= t.rank) return ox_fail(x, "shape[%d] = 0 copies a dim the input does not have", i);
            d[i] = t.dims[i];
        } else if (s[i] == -1) {
            if (infer >= 0) return ox_fail(x, "the shape has more than one -1");
            infer = i;
            d[i] = -1;
            continue;
        } else if (s[i] < 0) {
            return ox_fail(x, "shape[%d] = %lld is not a dim", i, (long long)s[i]);
        } else if (s[i] > (1 << 24)) {
            return ox_fail(x, "shape[%d] = %lld is not supported (dims are 1 to 2^24)", i, (long long)s[i]);
        } else {
            d[i] = s[i];
        }
        if (d[i] != NASC_BATCH && known_p <= ((int64_t)1 << 40)) known_p *= d[i]; /* past 2^40 it fits nothing */
    }
    int64_t numel = nasc_type_numel(&t); /* per image when batched */
    if (batched) {
        if (n == 0 || (d[0] != NASC_BATCH && !(infer == 0 && known_p == numel)))
            return ox_fail(x, "the reshape would move or change the batch dimension N (it must stay the first dim)");
        if (infer == 0) {
            d[0] = NASC_BATCH;
            infer = -1;
        }
    }
    if (infer >= 0) {
        if (known_p == 0 || numel % known_p) return ox_fail(x, "the shape does not fit the input's elements");
        d[infer] = numel / known_p;
    }
    if (n == 0) d[n++] = 1; /* a scalar: rank 1 here */
    nasc_prim_attrs a = reshape_attrs(n, d);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &v, 1, &a, 0));
}

/* ---------------------------------------------------------------- */
/* Gemm, MatMul                                                      */
/* ---------------------------------------------------------------- */

static nasc_status lower_matmul(ox_imp *x) {
    static const char *const known[] = {NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    uint32_t v[2] = {ox_value(x, 0), ox_value(x, 1)};
    if (v[0] == UINT32_MAX || v[1] == UINT32_MAX) return status_of(x);
    if (ox_type(x, v[0])->rank < 2 || ox_type(x, v[1])->rank < 2)
        return ox_fail(x, "1-D operands are not supported (ranks 2 to 4 are)");
    return ox_define(x, 0, ox_op(x, NASC_PRIM_MATMUL, v, 2, NULL, 0));
}

uint32_t ox_scalar_param(ox_imp *x, float f, const char *name) {
    int64_t one = 1;
    int k = ox_const_new(x, 1, &one);
    if (k < 0) return UINT32_MAX;
    x->consts[k].f[0] = f;
    return ox_param(x, k, 1, &one, name, 0);
}

/* Y = alpha * op(A) op(B) + beta * C. An inner product when B and C are
 * constants that make a weight (N, K) and a bias (N) (what nasc exports:
 * transB = 1, alpha = beta = 1); else a matmul, then a mul by alpha and an
 * add of beta * C as needed. */
static nasc_status lower_gemm(ox_imp *x) {
    static const char *const known[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    float alpha, beta;
    int64_t ta, tb;
    if (!ox_attr_float(x, "alpha", 1.0f, &alpha) || !ox_attr_float(x, "beta", 1.0f, &beta) ||
        !ox_attr_int(x, "transA", 0, &ta) || !ox_attr_int(x, "transB", 0, &tb))
        return status_of(x);
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1)) return ox_fail(x, "attributes transA / transB must be 0 or 1");
    uint32_t a = ox_value(x, 0);
    if (a == UINT32_MAX) return status_of(x);
    const nasc_type at = *ox_type(x, a);
    if (at.rank != 2) return ox_fail(x, "input 1 (A) must be 2-D");
    /* constants by index: ox_const_new may move x->consts */
    int ib = -1, ic = -1;
    if (ox_is_const(x, 1)) {
        const ox_const *c = ox_const_in(x, 1, "B");
        if (!c) return status_of(x);
        ib = (int)(c - x->consts);
    }
    if (ox_in(x, 2) && ox_is_const(x, 2)) {
        const ox_const *c = ox_const_in(x, 2, "C");
        if (!c) return status_of(x);
        ic = (int)(c - x->consts);
    }
#define BC (&x->consts[ib])
#define CC (&x->consts[ic])
    bool has_c = ox_in(x, 2) && beta != 0.0f;

    if (!ta && ib >= 0 && BC->dtype == OX_F32 && BC->rank == 2 && (!has_c || ic >= 0)) {
        int64_t n = tb ? BC->dims[0] : BC->dims[1], k = tb ? BC->dims[1] : BC->dims[0];
        bool c_vec =
            !has_c || (CC->dtype == OX_F32 &&
                       (CC->numel == 1 || (CC->numel == n && (CC->rank == 1 || (CC->rank == 2 && CC->dims[0] == 1)))));
        if (c_vec && n > 0 && k > 0) {
            uint32_t w, b;
            int64_t wd[2] = {n, k};
            if (tb && alpha == 1.0f) {
                w = ox_param(x, ib, 2, wd, NULL, 0);
            } else {
                int kw = ox_const_new(x, 2, wd);
                if (kw < 0) return NASC_ENOMEM;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < k; j++)
                        x->consts[kw].f[i * k + j] = alpha * (tb ? BC->f[i * k + j] : BC->f[j * n + i]);
                w = ox_param(x, kw, 2, wd, "weight", 0);
            }
            if (has_c && CC->numel == n && beta == 1.0f) {
                b = ox_param(x, ic, 1, &n, NULL, 0);
            } else {
                int kb = ox_const_new(x, 1, &n);
                if (kb < 0) return NASC_ENOMEM;
                for (int64_t i = 0; i < n; i++)
                    x->consts[kb].f[i] = has_c ? beta * CC->f[CC->numel == 1 ? 0 : i] : 0.0f;
                b = ox_param(x, kb, 1, &n, "bias", 0);
            }
            uint32_t args[3] = {a, w, b};
            return ox_define(x, 0, ox_op(x, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, 0));
        }
    }

    uint32_t b = ox_value(x, 1);
    if (b == UINT32_MAX) return status_of(x);
    if (ox_type(x, b)->rank != 2) return ox_fail(x, "input 2 (B) must be 2-D");
    nasc_prim_attrs ma = nasc_prim_attrs_default();
    ma.trans_a = (int)ta;
    ma.trans_b = (int)tb;
    bool scale = alpha != 1.0f;
    uint32_t mm[2] = {a, b};
    uint32_t y = (scale || has_c) ? ox_op_tmp(x, NASC_PRIM_MATMUL, mm, 2, &ma, 0, "matmul")
                                  : ox_op(x, NASC_PRIM_MATMUL, mm, 2, &ma, 0);
    if (scale) {
        uint32_t s[2] = {y, ox_scalar_param(x, alpha, "alpha")};
        y = has_c ? ox_op_tmp(x, NASC_PRIM_MUL, s, 2, NULL, 0, "scaled") : ox_op(x, NASC_PRIM_MUL, s, 2, NULL, 0);
    }
    if (has_c) {
        uint32_t c;
        if (ic >= 0 && beta != 1.0f) {
            int64_t d[OX_MAX_RANK];
            int r = CC->rank ? CC->rank : 1;
            d[0] = 1;
            for (int i = 0; i < CC->rank; i++) d[i] = CC->dims[i];
            if (r > NASC_MAX_RANK || CC->dtype != OX_F32 || CC->numel < 1)
                return ox_fail(x, "input 3 (C) must be a float tensor of rank 0 to 2");
            int kc = ox_const_new(x, r, d);
            if (kc < 0) return NASC_ENOMEM;
            for (int64_t i = 0; i < CC->numel; i++) x->consts[kc].f[i] = beta * CC->f[i];
            c = ox_param(x, kc, r, d, "c", 0);
        } else {
            c = ox_value(x, 2);
            if (c != UINT32_MAX && beta != 1.0f) {
                uint32_t s[2] = {c, ox_scalar_param(x, beta, "beta")};
                c = ox_op_tmp(x, NASC_PRIM_MUL, s, 2, NULL, 0, "c");
            }
        }
        if (c == UINT32_MAX) return status_of(x);
        uint32_t s[2] = {y, c};
        y = ox_op(x, NASC_PRIM_ADD, s, 2, NULL, 0);
    }
    return ox_define(x, 0, y);
#undef BC
#undef CC
}

/* ---------------------------------------------------------------- */
/* Convolution, batch norm, pooling                                  */
/* ---------------------------------------------------------------- */

/* Spatial attributes of Conv and pooling: kernel, strides, dilations,
 * pads, resolved from auto_pad and ceil_mode for an input of h x w. */
typedef struct window {
    int64_t k[2], s[2], d[2], p[4]; /* p: top, left, bottom, right */
    bool overhang;                  /* ceil_mode added bottom/right padding */
} window;

static bool read_window(ox_imp *x, const nasc_type *in, const int64_t *kernel, bool ceil_ok, window *w) {
    int n;
    int64_t v[8];
    char autopad[32];
    w->overhang = false;
    for (int i = 0; i < 2; i++) w->k[i] = kernel[i], w->s[i] = 1, w->d[i] = 1, w->p[i] = w->p[i + 2] = 0;
    if (!ox_attr_ints(x, "strides", v, 8, &n)) return false;
    if (n && n != 2) return ox_fail(x, "attribute 'strides' must have 2 values"), false;
    for (int i = 0; i < n; i++) w->s[i] = v[i];
    if (!ox_attr_ints(x, "dilations", v, 8, &n)) return false;
    if (n && n != 2) return ox_fail(x, "attribute 'dilations' must have 2 values"), false;
    for (int i = 0; i < n; i++) w->d[i] = v[i];
    if (!ox_attr_ints(x, "pads", v, 8, &n)) return false;
    if (n && n != 4) return ox_fail(x, "attribute 'pads' must have 4 values"), false;
    for (int i = 0; i < n; i++) w->p[i] = v[i];
    for (int i = 0; i < 2; i++) {
        if (w->s[i] < 1 || w->s[i] > 64)
            return ox_fail(x, "attribute 'strides' value %lld is not supported (1..64)", (long long)w->s[i]), false;
        if (w->d[i] < 1 || w->d[i] > 64)
            return ox_fail(x, "attribute 'dilations' value %lld is not supported (1..64)", (long long)w->d[i]), false;
        if (w->k[i] < 1 || w->k[i] > 64)
            return ox_fail(x, "kernel size %lld is not supported (1..64)", (long long)w->k[i]), false;
    }
    for (int i = 0; i < 4; i++)
        if (w->p[i] < 0 || w->p[i] > 64)
            return ox_fail(x, "attribute 'pads' value %lld is not supported (0..64)", (long long)w->p[i]), false;
    if (!ox_attr_string(x, "auto_pad", "NOTSET", autopad, sizeof autopad)) return false;
    bool upper = strcmp(autopad, "SAME_UPPER") == 0, lower = strcmp(autopad, "SAME_LOWER") == 0;
    if (upper || lower || strcmp(autopad, "VALID") == 0) {
        if (n) return ox_fail(x, "attribute 'pads' cannot be given with auto_pad = %s", autopad), false;
        for (int i = 0; i < 2 && (upper || lower); i++) {
            int64_t size = in->dims[2 + i], out = (size + w->s[i] - 1) / w->s[i];
            int64_t total = (out - 1) * w->s[i] + (w->k[i] - 1) * w->d[i] + 1 - size;
            if (total < 0) total = 0;
            int64_t small = total / 2, big = total - small;
            w->p[i] = upper ? small : big;
            w->p[i + 2] = upper ? big : small;
        }
    } else if (strcmp(autopad, "NOTSET") != 0) {
        return ox_fail(x, "attribute 'auto_pad' value '%s' is not supported", autopad), false;
    }
    int64_t ceil_mode;
    if (!ox_attr_int(x, "ceil_mode", 0, &ceil_mode)) return false;
    if (ceil_mode && !ceil_ok) return ox_fail(x, "attribute 'ceil_mode' is not supported here"), false;
    if (ceil_mode != 0 && ceil_mode != 1) return ox_fail(x, "attribute 'ceil_mode' must be 0 or 1"), false;
    for (int i = 0; ceil_mode && i < 2; i++) {
        /* the last window may hang over the bottom/right edge: pad there */
        int64_t ek = (w->k[i] - 1) * w->d[i] + 1, size = in->dims[2 + i] + w->p[i] + w->p[i + 2];
        if (size < ek) continue;
        int64_t out = (size - ek + w->s[i] - 1) / w->s[i] + 1;
        if ((out - 1) * w->s[i] >= in->dims[2 + i] + w->p[i]) out--; /* a window must start inside */
        int64_t need = (out - 1) * w->s[i] + ek - size;
        if (need > 0) w->p[i + 2] += need, w->overhang = true;
    }
    return true;
}

/* Input 0, with the zero padding of a Pad before it taken into this op's
 * own when fold says that is exact (ox_value_unpadded); pad gets it. */
static uint32_t input_unpadded(ox_imp *x, bool fold, int64_t pad[4]) {
    if (fold) return ox_value_unpadded(x, 0, pad);
    memset(pad, 0, 4 * sizeof *pad);
    return ox_value(x, 0);
}

/* A Pad's padding (top, left, bottom, right) added to the op's own. */
static bool add_folded_pad(ox_imp *x, window *w, const int64_t *p) {
    for (int i = 0; i < 4; i++) {
        w->p[i] += p[i];
        if (w->p[i] > 64) {
            ox_fail(x, "with the padding of the Pad before it, pad %lld is not supported (0..64)", (long long)w->p[i]);
            return false;
        }
    }
    return true;
}

static void window_attrs(const window *w, nasc_prim_attrs *a) {
    a->kh = (int)w->k[0], a->kw = (int)w->k[1];
    a->sh = (int)w->s[0], a->sw = (int)w->s[1];
    a->dh = (int)w->d[0], a->dw = (int)w->d[1];
    a->pt = (int)w->p[0], a->pl = (int)w->p[1], a->pb = (int)w->p[2], a->pr = (int)w->p[3];
}

static bool rank4(ox_imp *x, uint32_t v, const char *what) {
    int r = ox_type(x, v)->rank;
    if (r == 4) return true;
    ox_fail(x, "only 2-D %s (a rank-4 N,C,H,W input) is supported; the input has rank %d", what, r);
    return false;
}

static nasc_status lower_conv(ox_imp *x) {
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    char autopad[32];
    int64_t fold[4];
    if (!ox_attr_string(x, "auto_pad", "NOTSET", autopad, sizeof autopad)) return status_of(x);
    uint32_t v = input_unpadded(x, strcmp(autopad, "NOTSET") == 0 || strcmp(autopad, "VALID") == 0, fold);
    if (v == UINT32_MAX) return status_of(x);
    if (!rank4(x, v, "convolution")) return status_of(x);
    const ox_const *wc = ox_const_in(x, 1, "weights W");
    if (!wc) return status_of(x);
    if (wc->dtype != OX_F32 || wc->rank != 4)
        return ox_fail(x, "input 2 (the weights W) must be a rank-4 float tensor");
    int64_t ks[8], group;
    int nk;
    if (!ox_attr_ints(x, "kernel_shape", ks, 8, &nk) || !ox_attr_int(x, "group", 1, &group)) return status_of(x);
    if (nk && (nk != 2 || ks[0] != wc->dims[2] || ks[1] != wc->dims[3]))
        return ox_fail(x, "attribute 'kernel_shape' does not match the weights' %lldx%lld", (long long)wc->dims[2],
                       (long long)wc->dims[3]);
    if (group < 1 || group > (1 << 20))
        return ox_fail(x, "attribute 'group' value %lld is not supported", (long long)group);
    window w;
    nasc_type in = *ox_type(x, v);
    if (!read_window(x, &in, wc->dims + 2, false, &w) || !add_folded_pad(x, &w, fold)) return status_of(x);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    window_attrs(&w, &a);
    a.groups = (int)group;
    uint32_t args[2] = {v, ox_param(x, (int)(wc - x->consts), -1, NULL, NULL, 0)};
    if (args[1] == UINT32_MAX) return status_of(x);
    if (!ox_in(x, 2)) return ox_define(x, 0, ox_op(x, NASC_PRIM_CONV, args, 2, &a, 0));
    const ox_const *bc = ox_const_in(x, 2, "bias B");
    if (!bc) return status_of(x);
    int64_t bd[3] = {wc->dims[0], 1, 1};
    if (bc->dtype != OX_F32 || bc->numel != bd[0])
        return ox_fail(x, "input 3 (the bias B) must hold %lld floats", (long long)bd[0]);
    uint32_t y = ox_op_tmp(x, NASC_PRIM_CONV, args, 2, &a, 0, "conv");
    uint32_t s[2] = {y, ox_param(x, (int)(bc - x->consts), 3, bd, NULL, 0)};
    return ox_define(x, 0, ox_op(x, NASC_PRIM_ADD, s, 2, NULL, 0));
}

static nasc_status lower_batch_norm(ox_imp *x) {
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial", "is_test", LEGACY, NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    float eps;
    int64_t training, spatial;
    if (!ox_attr_float(x, "epsilon", 1e-5f, &eps) || !ox_attr_int(x, "training_mode", 0, &training) ||
        !ox_attr_int(x, "spatial", 1, &spatial))
        return status_of(x);
    if (training)
        return ox_fail(x, "attribute 'training_mode' = %lld is not supported (inference only)", (long long)training);
    if (spatial != 1) return ox_fail(x, "attribute 'spatial' = %lld is not supported", (long long)spatial);
    if (!one_output(x, "training statistics")) return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    int r = ox_type(x, v)->rank;
    if (r != 2 && r != 4) return ox_fail(x, "the input has rank %d; rank 2 (N,C) or 4 (N,C,H,W) is supported", r);
    static const char *const what[4] = {"scale", "bias B", "mean", "var"};
    const ox_const *c[4];
    for (int i = 0; i < 4; i++)
        if (!(c[i] = ox_const_in(x, (uint32_t)i + 1, what[i]))) return status_of(x);
    int64_t ch = ox_type(x, v)->dims[1];
    for (int i = 0; i < 4; i++)
        if (c[i]->dtype != OX_F32 || c[i]->numel != ch)
            return ox_fail(x, "input %d (%s) must hold %lld floats (one per channel)", i + 2, what[i], (long long)ch);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.eps = eps;
    uint32_t args[3] = {v, ox_param(x, (int)(c[0] - x->consts), 1, &ch, NULL, 0),
                        ox_param(x, (int)(c[1] - x->consts), 1, &ch, NULL, 0)};
    uint32_t y = ox_op(x, NASC_PRIM_BATCH_NORM, args, 3, &a, 0);
    if (y == UINT32_MAX) return status_of(x);
    /* the running statistics: "<bn result>.mean" / ".var" in the store */
    const char *bn = ox_out_pname(x, 0);
    char name[256];
    snprintf(name, sizeof name, "%s.mean", bn);
    nasc_status st = ox_store(x, name, (int)(c[2] - x->consts));
    snprintf(name, sizeof name, "%s.var", bn);
    if (!st) st = ox_store(x, name, (int)(c[3] - x->consts));
    return st ? st : ox_define(x, 0, y);
}

static nasc_status lower_pool(ox_imp *x, bool max) {
    static const char *const kmax[] = {"auto_pad", "ceil_mode",     "dilations", "kernel_shape",
                                       "pads",     "storage_order", "strides",   NULL};
    static const char *const kavg[] = {"auto_pad",     "ceil_mode", "count_include_pad", "dilations",
                                       "kernel_shape", "pads",      "strides",           NULL};
    if (!ox_attrs_known(x, max ? kmax : kavg)) return status_of(x);
    if (!one_output(x, "the Indices of the maxima")) return status_of(x);
    int64_t ks[8], cip, ceil_mode, own[8], fold[4];
    int nk, np;
    char autopad[32];
    if (!ox_attr_ints(x, "kernel_shape", ks, 8, &nk) || !ox_attr_int(x, "count_include_pad", 0, &cip) ||
        !ox_attr_int(x, "ceil_mode", 0, &ceil_mode) || !ox_attr_ints(x, "pads", own, 8, &np) ||
        !ox_attr_string(x, "auto_pad", "NOTSET", autopad, sizeof autopad))
        return status_of(x);
    if (nk != 2) return ox_fail(x, "attribute 'kernel_shape' must have 2 values");
    if (cip != 0 && cip != 1) return ox_fail(x, "attribute 'count_include_pad' must be 0 or 1");
    /* an average pool can count a Pad's zeros as its own padding: when it
     * counts padding, or has none of its own (then it starts to) */
    bool no_own = true;
    for (int i = 0; i < np; i++) no_own = no_own && own[i] == 0;
    bool can_fold = !max && !ceil_mode && (cip || no_own) &&
                    (strcmp(autopad, "NOTSET") == 0 || strcmp(autopad, "VALID") == 0);
    uint32_t v = input_unpadded(x, can_fold, fold);
    if (v == UINT32_MAX) return status_of(x);
    if (!rank4(x, v, "pooling")) return status_of(x);
    if (fold[0] || fold[1] || fold[2] || fold[3]) cip = 1;
    window w;
    nasc_type in = *ox_type(x, v);
    if (!read_window(x, &in, ks, true, &w) || !add_folded_pad(x, &w, fold)) return status_of(x);
    if (!max && cip && w.overhang)
        return ox_fail(x, "count_include_pad = 1 with a ceil_mode window past the edge is not supported");
    if (!max && (w.d[0] != 1 || w.d[1] != 1))
        return ox_fail(x, "attribute 'dilations' other than 1 is not supported for AveragePool");
    nasc_prim_attrs a = nasc_prim_attrs_default();
    window_attrs(&w, &a);
    a.count_include_pad = (int)cip;
    return ox_define(x, 0, ox_op(x, max ? NASC_PRIM_MAX_POOL : NASC_PRIM_AVG_POOL, &v, 1, &a, 0));
}

static nasc_status lower_max_pool(ox_imp *x) { return lower_pool(x, true); }
static nasc_status lower_avg_pool(ox_imp *x) { return lower_pool(x, false); }

static nasc_status lower_global_avg_pool(ox_imp *x) {
    static const char *const known[] = {NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    if (!rank4(x, v, "pooling")) return status_of(x);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_GLOBAL_AVG_POOL, &v, 1, NULL, 0));
}

/* ---------------------------------------------------------------- */
/* ReduceMean, ReduceSum                                             */
/* ---------------------------------------------------------------- */

/* Over a run of adjacent axes a..b that leaves the batch alone. A mean over
 * H and W of an N,C,H,W tensor is global_avg_pool; anything else is a
 * matmul of a (1, K) row of ones (of 1/K for the mean) with the input seen
 * as (N, M, K, P), K the reduced elements, then a reshape to the result. */
static nasc_status lower_reduce(ox_imp *x, bool mean) {
    static const char *const known[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    int64_t keep, noop, ax[OX_MAX_RANK];
    int na;
    if (!ox_attr_int(x, "keepdims", 1, &keep) || !ox_attr_int(x, "noop_with_empty_axes", 0, &noop) ||
        !ox_ints_of(x, 1, "axes", mean ? 18 : 13, "axes", ax, OX_MAX_RANK, &na))
        return status_of(x);
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX) return status_of(x);
    const nasc_type t = *ox_type(x, v);
    if (na == 0 && noop) return ox_define(x, 0, ox_op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, 0));
    bool on[NASC_MAX_RANK] = {false};
    if (na == 0)
        for (int d = 0; d < t.rank; d++) on[d] = true;
    for (int i = 0; i < na; i++) {
        int a;
        if (!axis_in(x, ax[i], t.rank, false, &a)) return status_of(x);
        on[a] = true;
    }
    if (on[0]) return ox_fail(x, "reducing over axis 0 (the batch) is not supported");
    int lo = -1, hi = -1;
    for (int d = 0; d < t.rank; d++)
        if (on[d]) {
            if (lo < 0) lo = d;
            else if (hi != d - 1) return ox_fail(x, "the axes must be adjacent (a run such as 2, 3)");
            hi = d;
        }
    int64_t m = 1, k = 1, p = 1, od[NASC_MAX_RANK] = {0};
    int orank = 0;
    for (int d = 0; d < t.rank; d++) {
        if (d > 0 && d < lo) m *= t.dims[d];
        if (on[d]) k *= t.dims[d];
        if (d > hi) p *= t.dims[d];
        if (!on[d] || keep) od[orank++] = on[d] ? 1 : t.dims[d];
    }
    nasc_prim_attrs ra = reshape_attrs(orank, od);
    if (mean && t.rank == 4 && lo == 2 && hi == 3) {
        if (keep) return ox_define(x, 0, ox_op(x, NASC_PRIM_GLOBAL_AVG_POOL, &v, 1, NULL, 0));
        uint32_t g = ox_op_tmp(x, NASC_PRIM_GLOBAL_AVG_POOL, &v, 1, NULL, 0, "pool");
        return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &g, 1, &ra, 0));
    }
    int64_t xs[4] = {t.dims[0], m, k, p}; /* (N, k, p) when the run starts at axis 1 */
    int xr = lo == 1 ? 3 : 4;
    if (lo == 1) xs[1] = k, xs[2] = p;
    bool same = xr == t.rank;
    for (int d = 0; same && d < xr; d++) same = xs[d] == t.dims[d];
    uint32_t in = v;
    if (!same) {
        nasc_prim_attrs a = reshape_attrs(xr, xs);
        in = ox_op_tmp(x, NASC_PRIM_RESHAPE, &v, 1, &a, 0, "rows");
    }
    int64_t wd[2] = {1, k};
    int kw = ox_const_new(x, 2, wd);
    if (kw < 0) return status_of(x);
    for (int64_t i = 0; i < k; i++) x->consts[kw].f[i] = mean ? 1.0f / (float)k : 1.0f;
    uint32_t args[2] = {ox_param(x, kw, 2, wd, mean ? "mean_weights" : "ones", 0), in};
    uint32_t y = ox_op_tmp(x, NASC_PRIM_MATMUL, args, 2, NULL, 0, mean ? "mean" : "sum");
    if (y == UINT32_MAX) return status_of(x);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &y, 1, &ra, 0));
}

static nasc_status lower_reduce_mean(ox_imp *x) { return lower_reduce(x, true); }
static nasc_status lower_reduce_sum(ox_imp *x) { return lower_reduce(x, false); }

/* ---------------------------------------------------------------- */
/* Constant                                                          */
/* ---------------------------------------------------------------- */

static nasc_status lower_constant(ox_imp *x) {
    static const char *const known[] = {"value", "value_float", "value_floats", "value_int", "value_ints", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    const Onnx__NodeProto *nd = ox_node(x);
    if (nd->n_attribute != 1) return ox_fail(x, "exactly one value attribute is needed");
    const Onnx__AttributeProto *at = nd->attribute[0];
    const char *an = at->name;
    int k;
    if (strcmp(an, "value") == 0) {
        if (!at->t) return ox_fail(x, "attribute 'value' must be a tensor");
        k = ox_const_new(x, 0, NULL);
        if (k < 0) return NASC_ENOMEM;
        nasc_status st = ox_decode(x, at->t, &x->consts[k]);
        if (st) return st;
        if (x->consts[k].dtype == OX_NONE) return ox_fail(x, "attribute 'value' cannot be read: %s", x->consts[k].why);
    } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_floats") == 0) {
        bool one = an[11] == 0;
        int64_t n = one ? 1 : (int64_t)at->n_floats;
        k = ox_const_new(x, one ? 0 : 1, &n);
        if (k < 0) return NASC_ENOMEM;
        for (int64_t i = 0; i < n; i++) x->consts[k].f[i] = one ? at->f : at->floats[i];
    } else {
        bool one = an[9] == 0;
        int64_t n = one ? 1 : (int64_t)at->n_ints;
        k = ox_const_new(x, one ? 0 : 1, &n);
        if (k < 0) return NASC_ENOMEM;
        ox_const *c = &x->consts[k];
        c->dtype = OX_I64;
        c->i = ox_alloc(x, (size_t)(n ? n : 1) * sizeof *c->i);
        if (!c->i) return NASC_ENOMEM;
        for (int64_t i = 0; i < n; i++) c->i[i] = one ? at->i : at->ints[i];
    }
    return ox_define_const(x, 0, k);
}

/* ---------------------------------------------------------------- */
/* Integers of constants and attributes                              */
/* ---------------------------------------------------------------- */

bool ox_ints_of(ox_imp *x, uint32_t i, const char *attr, int64_t since, const char *what, int64_t *out, int cap,
                int *n) {
    *n = 0;
    if (x->opset < since) return ox_attr_ints(x, attr, out, cap, n);
    if (!ox_in(x, i)) return true;
    const ox_const *c = ox_const_in(x, i, what);
    if (!c) return false;
    if (c->dtype != OX_I64 || c->rank > 1 || c->numel > cap) {
        ox_fail(x, "input %u (%s) must be a 1-D integer tensor of at most %d values", i + 1, what, cap);
        return false;
    }
    for (int64_t k = 0; k < c->numel; k++) out[k] = c->i[k];
    *n = (int)c->numel;
    return true;
}

/* ---------------------------------------------------------------- */
/* The table                                                         */
/* ---------------------------------------------------------------- */

/* name, lowering, inputs that must be constants, inputs taken as constants when they are */
static const ox_op_info ops[] = {
    {"Add", lower_add, 0, 0},
    {"AveragePool", lower_avg_pool, 0, 0},
    {"BatchNormalization", lower_batch_norm, 0x1e, 0},
    {"Cast", ox_lower_cast, 0, 0},
    {"Clip", lower_clip, 0x6, 0},
    {"Concat", lower_concat, 0, 0},
    {"Constant", lower_constant, 0, 0},
    {"ConstantOfShape", ox_lower_constant_of_shape, 0x1, 0},
    {"Conv", lower_conv, 0x6, 0},
    {"Div", lower_div, 0, 0x2},
    {"Dropout", lower_dropout, 0x6, 0},
    {"Flatten", lower_flatten, 0, 0},
    {"Gather", ox_lower_gather, 0x2, 0},
    {"Gemm", lower_gemm, 0, 0x6},
    {"GlobalAveragePool", lower_global_avg_pool, 0, 0},
    {"Identity", lower_identity, 0, 0},
    {"MatMul", lower_matmul, 0, 0},
    {"MaxPool", lower_max_pool, 0, 0},
    {"Mul", lower_mul, 0, 0},
    {"Neg", lower_neg, 0, 0},
    {"Pad", ox_lower_pad, 0xe, 0},
    {"ReduceMean", lower_reduce_mean, 0x2, 0},
    {"ReduceSum", lower_reduce_sum, 0x2, 0},
    {"Relu", lower_relu, 0, 0},
    {"Reshape", lower_reshape, 0x2, 0},
    {"Shape", ox_lower_shape, 0, 0},
    {"Sigmoid", lower_sigmoid, 0, 0},
    {"Slice", ox_lower_slice, 0x1e, 0},
    {"Softmax", lower_softmax, 0, 0},
    {"Squeeze", ox_lower_squeeze, 0x2, 0},
    {"Sub", lower_sub, 0, 0x2},
    {"Sum", lower_sum, 0, 0},
    {"Tanh", lower_tanh, 0, 0},
    {"Transpose", ox_lower_transpose, 0, 0},
    {"Unsqueeze", ox_lower_unsqueeze, 0x2, 0},
};

const ox_op_info *ox_op_find(const char *op_type) {
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, op_type) == 0) return &ops[i];
    return NULL;
}
