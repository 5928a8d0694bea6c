/* ref.c - the naive double-precision reference of the prim dialect (ref.h).
 *
 * Every op is the textbook loop nest over row-major tensors, forward and
 * backward side by side. No blocking, no layouts, no shortcuts: if a loop
 * here looks slow, that is the point.
 */
#include "ref.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print "ref: message" on stderr and evaluate to -1. */
static int ref_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ref_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ref: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}
#define REF_FAIL(...) ref_fail(__VA_ARGS__)

/* Element (a, b, c, e) of a rank-4 row-major tensor of dims d. */
#define AT4(d, a, b, c, e) ((((a) * (d)[1] + (b)) * (d)[2] + (c)) * (d)[3] + (e))

int ref_dims(const nasc_module *prim, uint32_t v, int batch, int64_t dims[NASC_MAX_RANK]) {
    const nasc_type *t = &prim->values[v].type;
    for (int i = 0; i < NASC_MAX_RANK; i++) dims[i] = 1;
    for (int i = 0; i < t->rank; i++) dims[i] = t->dims[i] == NASC_BATCH ? batch : t->dims[i];
    return t->rank;
}

int64_t ref_numel(const nasc_module *prim, uint32_t v, int batch) {
    int64_t d[NASC_MAX_RANK];
    int r = ref_dims(prim, v, batch, d);
    int64_t n = 1;
    for (int i = 0; i < r; i++) n *= d[i];
    return n;
}

/* The buffer of value v, allocated zero-filled on first use. */
static double *slot(const nasc_module *m, double **values, uint32_t v, int batch) {
    if (!values[v]) {
        int64_t n = ref_numel(m, v, batch);
        values[v] = calloc((size_t)n, sizeof(double));
        if (!values[v]) REF_FAIL("out of memory for value '%s' (%lld doubles)", nasc_str(m, m->values[v].name), (long long)n);
    }
    return values[v];
}

static const char *vname(const nasc_module *m, uint32_t v) { return nasc_str(m, m->values[v].name); }

/* ---------------------------------------------------------------- */
/* Convolution                                                       */
/* ---------------------------------------------------------------- */

/* y (N,O,Ho,Wo) = x (N,C,H,W) (*) w (O,C/g,kh,kw); cross-correlation, zero padding. */
static void conv_fwd(double *y, const double *x, const double *w, const int64_t *yd, const int64_t *xd,
                     const int64_t *wd, const nasc_prim_attrs *a) {
    int64_t og = wd[0] / a->groups, cg = wd[1];
    for (int64_t n = 0; n < yd[0]; n++)
        for (int64_t o = 0; o < yd[1]; o++) {
            int64_t g = o / og;
            for (int64_t i = 0; i < yd[2]; i++)
                for (int64_t j = 0; j < yd[3]; j++) {
                    double s = 0;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t ki = 0; ki < wd[2]; ki++) {
                            int64_t ih = i * a->sh - a->pt + ki * a->dh;
                            if (ih < 0 || ih >= xd[2]) continue;
                            for (int64_t kj = 0; kj < wd[3]; kj++) {
                                int64_t iw = j * a->sw - a->pl + kj * a->dw;
                                if (iw < 0 || iw >= xd[3]) continue;
                                s += x[AT4(xd, n, g * cg + c, ih, iw)] * w[AT4(wd, o, c, ki, kj)];
                            }
                        }
                    y[AT4(yd, n, o, i, j)] = s;
                }
        }
}

/* dx += dy (*)^T w, dw += x (*) dy: the same loop nest as conv_fwd. */
static void conv_bwd(double *dx, double *dw, const double *dy, const double *x, const double *w, const int64_t *yd,
                     const int64_t *xd, const int64_t *wd, const nasc_prim_attrs *a) {
    int64_t og = wd[0] / a->groups, cg = wd[1];
    for (int64_t n = 0; n < yd[0]; n++)
        for (int64_t o = 0; o < yd[1]; o++) {
            int64_t g = o / og;
            for (int64_t i = 0; i < yd[2]; i++)
                for (int64_t j = 0; j < yd[3]; j++) {
                    double gy = dy[AT4(yd, n, o, i, j)];
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t ki = 0; ki < wd[2]; ki++) {
                            int64_t ih = i * a->sh - a->pt + ki * a->dh;
                            if (ih < 0 || ih >= xd[2]) continue;
                            for (int64_t kj = 0; kj < wd[3]; kj++) {
                                int64_t iw = j * a->sw - a->pl + kj * a->dw;
                                if (iw < 0 || iw >= xd[3]) continue;
                                int64_t xi = AT4(xd, n, g * cg + c, ih, iw), wi = AT4(wd, o, c, ki, kj);
                                dx[xi] += gy * w[wi];
                                dw[wi] += gy * x[xi];
                            }
                        }
                }
        }
}

/* ---------------------------------------------------------------- */
/* Batch norm                                                        */
/* ---------------------------------------------------------------- */

/* x is (N, C) or (N, C, H, W): n images, c channels, s = H*W (1 for rank 2). */
static void bn_shape(const int64_t *d, int rank, int64_t *n, int64_t *c, int64_t *s) {
    *n = d[0];
    *c = d[1];
    *s = rank == 4 ? d[2] * d[3] : 1;
}

static void bn_batch_stats(const double *x, int64_t n, int64_t c, int64_t s, double *mean, double *var) {
    double cnt = (double)(n * s);
    for (int64_t ch = 0; ch < c; ch++) {
        double m = 0, v = 0;
        for (int64_t b = 0; b < n; b++)
            for (int64_t k = 0; k < s; k++) m += x[(b * c + ch) * s + k];
        m /= cnt;
        for (int64_t b = 0; b < n; b++)
            for (int64_t k = 0; k < s; k++) {
                double e = x[(b * c + ch) * s + k] - m;
                v += e * e;
            }
        mean[ch] = m;
        var[ch] = v / cnt; /* biased */
    }
}

static void bn_fwd(double *y, const double *x, const double *gamma, const double *beta, const double *mean,
                   const double *var, double eps, int64_t n, int64_t c, int64_t s) {
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            double istd = 1.0 / sqrt(var[ch] + eps);
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (b * c + ch) * s + k;
                y[i] = gamma[ch] * (x[i] - mean[ch]) * istd + beta[ch];
            }
        }
}

/* Training-mode backward (the statistics depend on x):
 * dx = gamma * istd / M * (M dy - sum(dy) - xhat * sum(dy xhat)). */
static void bn_bwd(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x, const double *gamma,
                   const double *mean, const double *var, double eps, int64_t n, int64_t c, int64_t s) {
    double cnt = (double)(n * s);
    for (int64_t ch = 0; ch < c; ch++) {
        double istd = 1.0 / sqrt(var[ch] + eps), sdy = 0, sdyx = 0;
        for (int64_t b = 0; b < n; b++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (b * c + ch) * s + k;
                sdy += dy[i];
                sdyx += dy[i] * (x[i] - mean[ch]) * istd;
            }
        dgamma[ch] += sdyx;
        dbeta[ch] += sdy;
        for (int64_t b = 0; b < n; b++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (b * c + ch) * s + k;
                double xhat = (x[i] - mean[ch]) * istd;
                dx[i] += gamma[ch] * istd / cnt * (cnt * dy[i] - sdy - xhat * sdyx);
            }
    }
}

/* ---------------------------------------------------------------- */
/* Pooling                                                           */
/* ---------------------------------------------------------------- */

/* Index in x of the first maximum of the window of output (n, c, i, j),
 * ignoring padded positions (the pads are smaller than the kernel, so
 * every window holds at least one real pixel). */
static int64_t max_pool_arg(const double *x, const int64_t *xd, const nasc_prim_attrs *a, int64_t n, int64_t c,
                            int64_t i, int64_t j) {
    int64_t best = -1;
    for (int64_t ki = 0; ki < a->kh; ki++) {
        int64_t ih = i * a->sh - a->pt + ki * a->dh;
        if (ih < 0 || ih >= xd[2]) continue;
        for (int64_t kj = 0; kj < a->kw; kj++) {
            int64_t iw = j * a->sw - a->pl + kj * a->dw;
            if (iw < 0 || iw >= xd[3]) continue;
            int64_t xi = AT4(xd, n, c, ih, iw);
            if (best < 0 || x[xi] > x[best]) best = xi;
        }
    }
    return best;
}

/* The divisor of avg_pool's window at output (i, j). */
static double avg_pool_div(const int64_t *xd, const nasc_prim_attrs *a, int64_t i, int64_t j) {
    if (a->count_include_pad) return (double)a->kh * a->kw;
    int64_t cnt = 0;
    for (int64_t ki = 0; ki < a->kh; ki++) {
        int64_t ih = i * a->sh - a->pt + ki;
        for (int64_t kj = 0; kj < a->kw; kj++) {
            int64_t iw = j * a->sw - a->pl + kj;
            if (ih >= 0 && ih < xd[2] && iw >= 0 && iw < xd[3]) cnt++;
        }
    }
    return (double)cnt;
}

/* Average pooling forward (dy == NULL) or backward (dx += dy / div over the
 * real pixels of each window). */
static void avg_pool(double *y, double *dx, const double *x, const double *dy, const int64_t *yd, const int64_t *xd,
                     const nasc_prim_attrs *a) {
    for (int64_t n = 0; n < yd[0]; n++)
        for (int64_t c = 0; c < yd[1]; c++)
            for (int64_t i = 0; i < yd[2]; i++)
                for (int64_t j = 0; j < yd[3]; j++) {
                    double div = avg_pool_div(xd, a, i, j), s = 0;
                    double g = dy ? dy[AT4(yd, n, c, i, j)] / div : 0;
                    for (int64_t ki = 0; ki < a->kh; ki++) {
                        int64_t ih = i * a->sh - a->pt + ki;
                        if (ih < 0 || ih >= xd[2]) continue;
                        for (int64_t kj = 0; kj < a->kw; kj++) {
                            int64_t iw = j * a->sw - a->pl + kj;
                            if (iw < 0 || iw >= xd[3]) continue;
                            if (dy)
                                dx[AT4(xd, n, c, ih, iw)] += g;
                            else
                                s += x[AT4(xd, n, c, ih, iw)];
                        }
                    }
                    if (!dy) y[AT4(yd, n, c, i, j)] = s / div;
                }
}

/* ---------------------------------------------------------------- */
/* Axis helpers (concat, softmax)                                    */
/* ---------------------------------------------------------------- */

/* A tensor seen as (outer, len, inner) around axis. */
static void around_axis(const int64_t *d, int rank, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= d[i];
    for (int i = axis + 1; i < rank; i++) *inner *= d[i];
    *len = d[axis];
}

/* ---------------------------------------------------------------- */
/* Broadcasting (add, mul) and matmul                                */
/* ---------------------------------------------------------------- */

/* The element of operand o (rank orank, dims od) that element i of a
 * result (rank rank, dims yd) reads: aligned on the last dim, dims of 1
 * repeat. */
static int64_t bcast_at(const int64_t *yd, int rank, const int64_t *od, int orank, int64_t i) {
    int64_t idx[NASC_MAX_RANK], off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = i % yd[d];
        i /= yd[d];
    }
    for (int d = 0; d < orank; d++) {
        int64_t k = idx[rank - orank + d];
        off = off * od[d] + (od[d] == 1 ? 0 : k);
    }
    return off;
}

/* The element of a slice's operand (dims xd) that element i of its result
 * (rank rank, dims yd) reads: the result's index plus begin. */
static int64_t slice_src(const int64_t *xd, int rank, const nasc_prim_attrs *a, const int64_t *yd, int64_t i) {
    int64_t idx[NASC_MAX_RANK], off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = i % yd[d] + a->begin[d];
        i /= yd[d];
    }
    for (int d = 0; d < rank; d++) off = off * xd[d] + idx[d];
    return off;
}

/* Geometry of matmul: the result (..., M, N) over batch b, with the offset
 * of each operand's matrix for batch b and its element strides. */
typedef struct mm_geom {
    int64_t batches, m, n, k;
    int64_t yd[NASC_MAX_RANK];
    int rank;
    int64_t ad[NASC_MAX_RANK], bd[NASC_MAX_RANK];
    int arank, brank;
} mm_geom;

static void mm_geometry(const nasc_module *m, const nasc_prim *p, int batch, mm_geom *g) {
    const uint32_t *args = &m->args[p->first_arg];
    g->rank = ref_dims(m, p->result, batch, g->yd);
    g->arank = ref_dims(m, args[0], batch, g->ad);
    g->brank = ref_dims(m, args[1], batch, g->bd);
    g->m = g->yd[g->rank - 2];
    g->n = g->yd[g->rank - 1];
    g->k = p->a.trans_a ? g->ad[g->arank - 2] : g->ad[g->arank - 1];
    g->batches = 1;
    for (int d = 0; d < g->rank - 2; d++) g->batches *= g->yd[d];
}

/* Offset of the matrix of batch b in an operand (rank or, dims od) of a
 * result with batch dims yd[0 .. rank-2). */
static int64_t mm_matrix(const mm_geom *g, const int64_t *od, int orank, int64_t b) {
    int64_t ybd[NASC_MAX_RANK], obd[NASC_MAX_RANK];
    for (int d = 0; d < g->rank - 2; d++) ybd[d] = g->yd[d];
    for (int d = 0; d < orank - 2; d++) obd[d] = od[d];
    int64_t mat = od[orank - 2] * od[orank - 1];
    if (g->rank == 2) return 0;
    return bcast_at(ybd, g->rank - 2, obd, orank - 2, b) * mat;
}

/* Element (r, c) of operand matrix op(X) where X is (rows, cols) row-major. */
static double mm_el(const double *x, int64_t cols, int trans, int64_t r, int64_t c) {
    return trans ? x[c * cols + r] : x[r * cols + c];
}

static void matmul_fwd(double *y, const double *x, const double *w, const mm_geom *g, const nasc_prim_attrs *a) {
    int64_t acols = g->ad[g->arank - 1], bcols = g->bd[g->brank - 1];
    for (int64_t b = 0; b < g->batches; b++) {
        const double *xa = x + mm_matrix(g, g->ad, g->arank, b), *wb = w + mm_matrix(g, g->bd, g->brank, b);
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double s = 0;
                for (int64_t k = 0; k < g->k; k++) s += mm_el(xa, acols, a->trans_a, i, k) * mm_el(wb, bcols, a->trans_b, k, j);
                y[(b * g->m + i) * g->n + j] = s;
            }
    }
}

/* dX += dY op(W)^T, dW += op(X)^T dY, through the transposes and broadcast batches. */
static void matmul_bwd(double *dx, double *dw, const double *dy, const double *x, const double *w, const mm_geom *g,
                       const nasc_prim_attrs *a) {
    int64_t acols = g->ad[g->arank - 1], bcols = g->bd[g->brank - 1];
    for (int64_t b = 0; b < g->batches; b++) {
        int64_t ao = mm_matrix(g, g->ad, g->arank, b), bo = mm_matrix(g, g->bd, g->brank, b);
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double gy = dy[(b * g->m + i) * g->n + j];
                for (int64_t k = 0; k < g->k; k++) {
                    int64_t xi = ao + (a->trans_a ? k * acols + i : i * acols + k);
                    int64_t wi = bo + (a->trans_b ? j * bcols + k : k * bcols + j);
                    double xv = x[xi], wv = w[wi];
                    dx[xi] += gy * wv; /* dx and dw may be one buffer: matmul(t, t) */
                    dw[wi] += gy * xv;
                }
            }
    }
}

/* ---------------------------------------------------------------- */
/* Forward of the whole module                                       */
/* ---------------------------------------------------------------- */

int ref_load(const nasc_module *prim, const nasc_param_store *params, int batch, const double *const *inputs,
             double **values) {
    uint32_t next_input = 0;
    for (uint32_t v = 0; v < prim->n_values; v++) {
        const nasc_value *val = &prim->values[v];
        if (val->kind == NASC_VAL_OP) continue;
        double *dst = slot(prim, values, v, batch);
        if (!dst) return -1;
        int64_t n = ref_numel(prim, v, batch);
        if (val->kind == NASC_VAL_INPUT) {
            if (!inputs || !inputs[next_input]) return REF_FAIL("no data for input %u '%s'", next_input, vname(prim, v));
            memcpy(dst, inputs[next_input++], (size_t)n * sizeof(double));
            continue;
        }
        const nasc_tensor *t = params ? nasc_params_find(params, vname(prim, v)) : NULL;
        if (!t) return REF_FAIL("parameter '%s' is not in the store", vname(prim, v));
        if (t->numel != n || t->rank != val->type.rank)
            return REF_FAIL("parameter '%s' has %lld elements in the store, the module wants %lld", vname(prim, v),
                            (long long)t->numel, (long long)n);
        for (int64_t i = 0; i < n; i++) dst[i] = t->data[i];
    }
    return 0;
}

/* Running statistic "<bn result>.<suffix>" of c channels, widened to double. */
static int running_stat(const nasc_module *m, const nasc_param_store *params, uint32_t result, const char *suffix,
                        int64_t c, double *out) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", vname(m, result), suffix);
    const nasc_tensor *t = params ? nasc_params_find(params, name) : NULL;
    if (!t) return REF_FAIL("inference batch_norm needs '%s' in the parameter store", name);
    if (t->numel != c) return REF_FAIL("'%s' has %lld elements, expected %lld", name, (long long)t->numel, (long long)c);
    for (int64_t i = 0; i < c; i++) out[i] = t->data[i];
    return 0;
}

static int run_op(const nasc_module *m, const nasc_param_store *params, ref_mode mode, int batch, double **values,
                  const nasc_prim *p) {
    const uint32_t *args = &m->args[p->first_arg];
    const nasc_prim_attrs *a = &p->a;
    double *y = slot(m, values, p->result, batch);
    if (!y) return -1;
    for (uint32_t i = 0; i < p->n_args; i++)
        if (!values[args[i]]) return REF_FAIL("operand '%s' of '%s' has no value", vname(m, args[i]), vname(m, p->result));
    const double *x = values[args[0]];
    int64_t yd[NASC_MAX_RANK], xd[NASC_MAX_RANK], wd[NASC_MAX_RANK];
    int rank = ref_dims(m, p->result, batch, yd);
    int xrank = ref_dims(m, args[0], batch, xd);
    int64_t ny = ref_numel(m, p->result, batch);
    switch (p->op) {
    case NASC_PRIM_CONV:
        ref_dims(m, args[1], batch, wd);
        conv_fwd(y, x, values[args[1]], yd, xd, wd, a);
        return 0;
    case NASC_PRIM_BATCH_NORM: {
        int64_t n, c, s;
        bn_shape(xd, xrank, &n, &c, &s);
        double *mean = malloc((size_t)c * sizeof *mean), *var = malloc((size_t)c * sizeof *var);
        int rc = 0;
        if (!mean || !var)
            rc = REF_FAIL("out of memory");
        else if (mode == REF_TRAIN)
            bn_batch_stats(x, n, c, s, mean, var);
        else if (running_stat(m, params, p->result, "mean", c, mean) || running_stat(m, params, p->result, "var", c, var))
            rc = -1;
        if (!rc) bn_fwd(y, x, values[args[1]], values[args[2]], mean, var, (double)a->eps, n, c, s);
        free(mean);
        free(var);
        return rc;
    }
    case NASC_PRIM_RELU:
        for (int64_t i = 0; i < ny; i++) y[i] = x[i] > 0 ? x[i] : 0;
        return 0;
    case NASC_PRIM_TANH:
        for (int64_t i = 0; i < ny; i++) y[i] = tanh(x[i]);
        return 0;
    case NASC_PRIM_SIGMOID:
        for (int64_t i = 0; i < ny; i++) y[i] = 1.0 / (1.0 + exp(-x[i]));
        return 0;
    case NASC_PRIM_IDENTITY:
    case NASC_PRIM_FLATTEN:
        memcpy(y, x, (size_t)ny * sizeof *y);
        return 0;
    case NASC_PRIM_MAX_POOL:
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t c = 0; c < yd[1]; c++)
                for (int64_t i = 0; i < yd[2]; i++)
                    for (int64_t j = 0; j < yd[3]; j++) y[AT4(yd, n, c, i, j)] = x[max_pool_arg(x, xd, a, n, c, i, j)];
        return 0;
    case NASC_PRIM_AVG_POOL:
        avg_pool(y, NULL, x, NULL, yd, xd, a);
        return 0;
    case NASC_PRIM_GLOBAL_AVG_POOL: {
        int64_t s = xd[2] * xd[3];
        for (int64_t nc = 0; nc < xd[0] * xd[1]; nc++) {
            double acc = 0;
            for (int64_t k = 0; k < s; k++) acc += x[nc * s + k];
            y[nc] = acc / (double)s;
        }
        return 0;
    }
    case NASC_PRIM_SHIFT:
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t c = 0; c < yd[1]; c++)
                for (int64_t i = 0; i < yd[2]; i++)
                    for (int64_t j = 0; j < yd[3]; j++) {
                        int64_t si = i + a->dy, sj = j + a->dx;
                        y[AT4(yd, n, c, i, j)] = (si < xd[2] && sj < xd[3]) ? x[AT4(xd, n, c, si, sj)] : 0;
                    }
        return 0;
    case NASC_PRIM_ADD:
        for (int64_t i = 0; i < ny; i++) {
            double s = 0;
            for (uint32_t k = 0; k < p->n_args; k++) {
                int64_t od[NASC_MAX_RANK];
                int orank = ref_dims(m, args[k], batch, od);
                s += values[args[k]][bcast_at(yd, rank, od, orank, i)];
            }
            y[i] = s;
        }
        return 0;
    case NASC_PRIM_MUL: {
        int64_t od[NASC_MAX_RANK];
        int orank = ref_dims(m, args[1], batch, od);
        for (int64_t i = 0; i < ny; i++) y[i] = x[i] * values[args[1]][bcast_at(yd, rank, od, orank, i)];
        return 0;
    }
    case NASC_PRIM_MATMUL: {
        mm_geom g;
        mm_geometry(m, p, batch, &g);
        matmul_fwd(y, x, values[args[1]], &g, a);
        return 0;
    }
    case NASC_PRIM_RESHAPE:
        memcpy(y, x, (size_t)ny * sizeof *y);
        return 0;
    case NASC_PRIM_SUB: {
        int64_t od[NASC_MAX_RANK];
        int orank = ref_dims(m, args[1], batch, od);
        for (int64_t i = 0; i < ny; i++) y[i] = x[i] - values[args[1]][bcast_at(yd, rank, od, orank, i)];
        return 0;
    }
    case NASC_PRIM_SCALE:
        for (int64_t i = 0; i < ny; i++) y[i] = (double)a->alpha * x[i];
        return 0;
    case NASC_PRIM_SLICE:
        for (int64_t i = 0; i < ny; i++) y[i] = x[slice_src(xd, rank, a, yd, i)];
        return 0;
    case NASC_PRIM_NORMALIZE: {
        double ss = 0;
        for (int64_t i = 0; i < ny; i++) ss += x[i] * x[i];
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (int64_t i = 0; i < ny; i++) y[i] = x[i] * inv;
        return 0;
    }
    case NASC_PRIM_EMBEDDING: {
        ref_dims(m, args[1], batch, wd);
        for (int64_t n = 0; n < yd[0]; n++) {
            double id = x[n * xd[1] + a->index];
            for (int64_t e = 0; e < yd[1]; e++)
                y[n * yd[1] + e] = id >= 0 && id < (double)wd[0] ? values[args[1]][(int64_t)id * wd[1] + e] : 0;
        }
        return 0;
    }
    case NASC_PRIM_CONCAT: {
        int64_t outer, ylen, inner, off = 0;
        around_axis(yd, rank, a->axis, &outer, &ylen, &inner);
        for (uint32_t k = 0; k < p->n_args; k++) {
            int64_t ad[NASC_MAX_RANK];
            ref_dims(m, args[k], batch, ad);
            int64_t len = ad[a->axis];
            for (int64_t o = 0; o < outer; o++)
                memcpy(y + (o * ylen + off) * inner, values[args[k]] + o * len * inner, (size_t)(len * inner) * sizeof *y);
            off += len;
        }
        return 0;
    }
    case NASC_PRIM_INNER_PRODUCT: {
        const double *w = values[args[1]], *b = values[args[2]];
        int64_t in = xd[1], out = yd[1];
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t o = 0; o < out; o++) {
                double s = b[o];
                for (int64_t i = 0; i < in; i++) s += x[n * in + i] * w[o * in + i];
                y[n * out + o] = s;
            }
        return 0;
    }
    case NASC_PRIM_SOFTMAX: {
        int64_t outer, len, inner;
        around_axis(yd, rank, a->axis, &outer, &len, &inner);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t in = 0; in < inner; in++) {
                const double *xs = x + o * len * inner + in;
                double *ys = y + o * len * inner + in;
                double mx = xs[0], sum = 0;
                for (int64_t k = 1; k < len; k++) mx = fmax(mx, xs[k * inner]);
                for (int64_t k = 0; k < len; k++) sum += (ys[k * inner] = exp(xs[k * inner] - mx));
                for (int64_t k = 0; k < len; k++) ys[k * inner] /= sum;
            }
        return 0;
    }
    default:
        return REF_FAIL("prim op %d ('%s') has no reference", (int)p->op, vname(m, p->result));
    }
}

int ref_run_from(const nasc_module *prim, const nasc_param_store *params, ref_mode mode, int batch, double **values,
                 uint32_t first_prim) {
    if (prim->dialect != NASC_DIALECT_PRIM) return REF_FAIL("not a prim module");
    for (uint32_t i = first_prim; i < prim->n_prims; i++)
        if (run_op(prim, params, mode, batch, values, &prim->prims[i])) return -1;
    return 0;
}

int ref_run(const nasc_module *prim, const nasc_param_store *params, ref_mode mode, int batch, double **values) {
    return ref_run_from(prim, params, mode, batch, values, 0);
}

uint32_t ref_first_use(const nasc_module *prim, uint32_t v) {
    for (uint32_t i = 0; i < prim->n_prims; i++)
        for (uint32_t k = 0; k < prim->prims[i].n_args; k++)
            if (prim->args[prim->prims[i].first_arg + k] == v) return i;
    return prim->n_prims;
}

int ref_forward(const nasc_module *prim, const nasc_param_store *params, int batch, const double *const *inputs,
                double **values) {
    if (ref_load(prim, params, batch, inputs, values)) return -1;
    return ref_run(prim, params, REF_TRAIN, batch, values);
}

int ref_forward_infer(const nasc_module *prim, const nasc_param_store *params, int batch,
                      const double *const *inputs, double **values) {
    if (ref_load(prim, params, batch, inputs, values)) return -1;
    return ref_run(prim, params, REF_INFER, batch, values);
}

void ref_free(const nasc_module *prim, double **values) {
    if (!values) return;
    for (uint32_t v = 0; v < prim->n_values; v++) {
        free(values[v]);
        values[v] = NULL;
    }
}

int ref_bn_stats(const nasc_module *prim, int batch, double *const *values, uint32_t bn_value, double *mean,
                 double *var) {
    if (bn_value >= prim->n_values || prim->values[bn_value].kind != NASC_VAL_OP) return REF_FAIL("not an op result");
    const nasc_prim *p = &prim->prims[prim->values[bn_value].def];
    if (p->op != NASC_PRIM_BATCH_NORM) return REF_FAIL("'%s' is not a batch_norm result", vname(prim, bn_value));
    uint32_t x = prim->args[p->first_arg];
    if (!values[x]) return REF_FAIL("the input of '%s' has no value", vname(prim, bn_value));
    int64_t d[NASC_MAX_RANK], n, c, s;
    int r = ref_dims(prim, x, batch, d);
    bn_shape(d, r, &n, &c, &s);
    bn_batch_stats(values[x], n, c, s, mean, var);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Backward of the whole module (training mode)                     */
/* ---------------------------------------------------------------- */

static int backward_op(const nasc_module *m, int batch, double *const *values, double **grads, const nasc_prim *p) {
    const uint32_t *args = &m->args[p->first_arg];
    const nasc_prim_attrs *a = &p->a;
    const double *dy = grads[p->result], *y = values[p->result], *x = values[args[0]];
    double *dx = grads[args[0]];
    int64_t yd[NASC_MAX_RANK], xd[NASC_MAX_RANK], wd[NASC_MAX_RANK];
    int rank = ref_dims(m, p->result, batch, yd);
    int xrank = ref_dims(m, args[0], batch, xd);
    int64_t ny = ref_numel(m, p->result, batch);
    switch (p->op) {
    case NASC_PRIM_CONV:
        ref_dims(m, args[1], batch, wd);
        conv_bwd(dx, grads[args[1]], dy, x, values[args[1]], yd, xd, wd, a);
        return 0;
    case NASC_PRIM_BATCH_NORM: {
        int64_t n, c, s;
        bn_shape(xd, xrank, &n, &c, &s);
        double *mean = malloc((size_t)c * sizeof *mean), *var = malloc((size_t)c * sizeof *var);
        if (!mean || !var) {
            free(mean);
            free(var);
            return REF_FAIL("out of memory");
        }
        bn_batch_stats(x, n, c, s, mean, var);
        bn_bwd(dx, grads[args[1]], grads[args[2]], dy, x, values[args[1]], mean, var, (double)a->eps, n, c, s);
        free(mean);
        free(var);
        return 0;
    }
    case NASC_PRIM_RELU:
        for (int64_t i = 0; i < ny; i++) dx[i] += x[i] > 0 ? dy[i] : 0;
        return 0;
    case NASC_PRIM_TANH:
        for (int64_t i = 0; i < ny; i++) dx[i] += dy[i] * (1 - y[i] * y[i]);
        return 0;
    case NASC_PRIM_SIGMOID:
        for (int64_t i = 0; i < ny; i++) dx[i] += dy[i] * y[i] * (1 - y[i]);
        return 0;
    case NASC_PRIM_IDENTITY:
    case NASC_PRIM_FLATTEN:
    case NASC_PRIM_RESHAPE:
        for (int64_t i = 0; i < ny; i++) dx[i] += dy[i];
        return 0;
    case NASC_PRIM_MATMUL: {
        mm_geom g;
        mm_geometry(m, p, batch, &g);
        matmul_bwd(dx, grads[args[1]], dy, x, values[args[1]], &g, a);
        return 0;
    }
    case NASC_PRIM_MAX_POOL:
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t c = 0; c < yd[1]; c++)
                for (int64_t i = 0; i < yd[2]; i++)
                    for (int64_t j = 0; j < yd[3]; j++)
                        dx[max_pool_arg(x, xd, a, n, c, i, j)] += dy[AT4(yd, n, c, i, j)];
        return 0;
    case NASC_PRIM_AVG_POOL:
        avg_pool(NULL, dx, x, dy, yd, xd, a);
        return 0;
    case NASC_PRIM_GLOBAL_AVG_POOL: {
        int64_t s = xd[2] * xd[3];
        for (int64_t nc = 0; nc < xd[0] * xd[1]; nc++)
            for (int64_t k = 0; k < s; k++) dx[nc * s + k] += dy[nc] / (double)s;
        return 0;
    }
    case NASC_PRIM_SHIFT:
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t c = 0; c < yd[1]; c++)
                for (int64_t i = 0; i + a->dy < xd[2]; i++)
                    for (int64_t j = 0; j + a->dx < xd[3]; j++)
                        dx[AT4(xd, n, c, i + a->dy, j + a->dx)] += dy[AT4(yd, n, c, i, j)];
        return 0;
    case NASC_PRIM_ADD:
        for (uint32_t k = 0; k < p->n_args; k++) {
            int64_t od[NASC_MAX_RANK];
            int orank = ref_dims(m, args[k], batch, od);
            for (int64_t i = 0; i < ny; i++) grads[args[k]][bcast_at(yd, rank, od, orank, i)] += dy[i];
        }
        return 0;
    case NASC_PRIM_MUL: {
        const double *x1 = values[args[1]];
        double *dx1 = grads[args[1]];
        int64_t od[NASC_MAX_RANK];
        int orank = ref_dims(m, args[1], batch, od);
        for (int64_t i = 0; i < ny; i++) {
            int64_t j = bcast_at(yd, rank, od, orank, i);
            double g0 = dy[i] * x1[j], g1 = dy[i] * x[i];
            dx[i] += g0; /* dx and dx1 may be the same buffer: mul(t, t) */
            dx1[j] += g1;
        }
        return 0;
    }
    case NASC_PRIM_CONCAT: {
        int64_t outer, ylen, inner, off = 0;
        around_axis(yd, rank, a->axis, &outer, &ylen, &inner);
        for (uint32_t k = 0; k < p->n_args; k++) {
            int64_t ad[NASC_MAX_RANK];
            ref_dims(m, args[k], batch, ad);
            int64_t len = ad[a->axis];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < len * inner; i++)
                    grads[args[k]][o * len * inner + i] += dy[(o * ylen + off) * inner + i];
            off += len;
        }
        return 0;
    }
    case NASC_PRIM_INNER_PRODUCT: {
        const double *w = values[args[1]];
        double *dw = grads[args[1]], *db = grads[args[2]];
        int64_t in = xd[1], out = yd[1];
        for (int64_t n = 0; n < yd[0]; n++)
            for (int64_t o = 0; o < out; o++) {
                double g = dy[n * out + o];
                db[o] += g;
                for (int64_t i = 0; i < in; i++) {
                    dx[n * in + i] += g * w[o * in + i];
                    dw[o * in + i] += g * x[n * in + i];
                }
            }
        return 0;
    }
    case NASC_PRIM_SUB: {
        int64_t od[NASC_MAX_RANK];
        int orank = ref_dims(m, args[1], batch, od);
        for (int64_t i = 0; i < ny; i++) {
            dx[i] += dy[i];
            grads[args[1]][bcast_at(yd, rank, od, orank, i)] -= dy[i];
        }
        return 0;
    }
    case NASC_PRIM_SCALE:
        for (int64_t i = 0; i < ny; i++) dx[i] += (double)a->alpha * dy[i];
        return 0;
    case NASC_PRIM_SLICE:
        for (int64_t i = 0; i < ny; i++) dx[slice_src(xd, rank, a, yd, i)] += dy[i];
        return 0;
    case NASC_PRIM_NORMALIZE: { /* y = x / r: dx = (dy - y (y . dy)) / r */
        double ss = 0, ydy = 0;
        for (int64_t i = 0; i < ny; i++) ss += x[i] * x[i];
        if (!(ss > 0)) return 0;
        double r = sqrt(ss);
        for (int64_t i = 0; i < ny; i++) ydy += x[i] / r * dy[i];
        for (int64_t i = 0; i < ny; i++) dx[i] += (dy[i] - x[i] / r * ydy) / r;
        return 0;
    }
    case NASC_PRIM_EMBEDDING: { /* the ids take no gradient */
        ref_dims(m, args[1], batch, wd);
        for (int64_t n = 0; n < yd[0]; n++) {
            double id = x[n * xd[1] + a->index];
            if (!(id >= 0 && id < (double)wd[0])) continue;
            for (int64_t e = 0; e < yd[1]; e++) grads[args[1]][(int64_t)id * wd[1] + e] += dy[n * yd[1] + e];
        }
        return 0;
    }
    case NASC_PRIM_SOFTMAX: {
        int64_t outer, len, inner;
        around_axis(yd, rank, a->axis, &outer, &len, &inner);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t in = 0; in < inner; in++) {
                int64_t base = o * len * inner + in;
                double dot = 0;
                for (int64_t k = 0; k < len; k++) dot += dy[base + k * inner] * y[base + k * inner];
                for (int64_t k = 0; k < len; k++) dx[base + k * inner] += y[base + k * inner] * (dy[base + k * inner] - dot);
            }
        return 0;
    }
    default:
        return REF_FAIL("prim op %d ('%s') has no reference backward", (int)p->op, vname(m, p->result));
    }
}

int ref_backward(const nasc_module *prim, int batch, double *const *values, const double *const *out_grads,
                 double **grads) {
    for (uint32_t v = 0; v < prim->n_values; v++) {
        if (!values[v]) return REF_FAIL("value '%s' has not been computed", vname(prim, v));
        double *g = slot(prim, grads, v, batch);
        if (!g) return -1;
        memset(g, 0, (size_t)ref_numel(prim, v, batch) * sizeof *g);
    }
    for (uint32_t i = 0; i < prim->n_outputs; i++) {
        uint32_t v = prim->outputs[i];
        if (!out_grads || !out_grads[i]) continue;
        int64_t n = ref_numel(prim, v, batch);
        for (int64_t k = 0; k < n; k++) grads[v][k] += out_grads[i][k];
    }
    for (uint32_t i = prim->n_prims; i-- > 0;)
        if (backward_op(prim, batch, values, grads, &prim->prims[i])) return -1;
    return 0;
}

/* ---------------------------------------------------------------- */
/* Loss and comparisons                                              */
/* ---------------------------------------------------------------- */

/* log sum exp of one row, shifted by its maximum. */
static double row_lse(const double *z, int k) {
    double mx = z[0], s = 0;
    for (int j = 1; j < k; j++) mx = fmax(mx, z[j]);
    for (int j = 0; j < k; j++) s += exp(z[j] - mx);
    return mx + log(s);
}

double ref_softmax_xent(const double *logits, int n, int k, const int32_t *labels) {
    double total = 0;
    for (int i = 0; i < n; i++) total += row_lse(logits + (int64_t)i * k, k) - logits[(int64_t)i * k + labels[i]];
    return total / n;
}

void ref_softmax_xent_grad(const double *logits, int n, int k, const int32_t *labels, double *grad) {
    for (int i = 0; i < n; i++) {
        const double *z = logits + (int64_t)i * k;
        double lse = row_lse(z, k);
        for (int j = 0; j < k; j++) grad[(int64_t)i * k + j] = (exp(z[j] - lse) - (j == labels[i])) / n;
    }
}

int ref_correct(const double *logits, int n, int k, const int32_t *labels) {
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const double *z = logits + (int64_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best]) best = j;
        correct += best == labels[i];
    }
    return correct;
}

double ref_rel_err_f(const float *got, const double *want, int64_t n, double *max_abs) {
    double num = 0, den = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)got[i] - want[i];
        num += e * e;
        den += want[i] * want[i];
        if (!(fabs(e) <= mx)) mx = fabs(e); /* NaN propagates */
    }
    if (max_abs) *max_abs = mx;
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double ref_rel_err_d(const double *got, const double *want, int64_t n, double *max_abs) {
    double num = 0, den = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = got[i] - want[i];
        num += e * e;
        den += want[i] * want[i];
        if (!(fabs(e) <= mx)) mx = fabs(e);
    }
    if (max_abs) *max_abs = mx;
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}
