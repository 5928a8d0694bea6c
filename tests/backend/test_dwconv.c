/* Depthwise convolution backward-weights (backend/dwconv.c) against a naive
 * double-precision reference written here, and against finite differences of
 * the forward convolution; forward and backward-data on nChw16c
 * (backend/dwconv_fd.c, the fd_ tests) against a double-precision forward
 * and its adjoint written here.
 *
 *  - random: randomised shapes (fixed seeds): N 1..4, C 1..20 (mostly not a
 *    multiple of 8), odd and even H, W, kernels {1,3,5,7} square and
 *    asymmetric (1x7, 7x1, 3x5...), strides and dilations 1/2 per axis, pads
 *    from 0 to the "same" pad and beyond, output sizes from any right pad.
 *    Each shape runs in the three layouts (nchw, nChw8c, nChw16c), on every
 *    code path (direct summation, scalar, AVX2 and AVX-512 when the CPU has
 *    them), the AVX2 and AVX-512 paths with 1, 2 and 3 threads (the scalar
 *    one when it is the best); the padding lanes of the blocked layouts hold
 *    NaN to show they never reach a result.
 *  - fixed: the benchmark shapes (64 channels, 14x14, 3/5/7, stride 1/2) at
 *    a small batch, kernels wider than 7 (tiled in column groups), kernels
 *    larger than the input, negative pads (cropping), a single pixel.
 *  - finite differences: dW against central differences in double of
 *    L(W) = sum(conv(x, W) * dy) for a small dilated, strided case.
 *  - api: invalid shapes and layouts are refused without touching dW; a
 *    result is bit-identical run to run at a fixed thread count; a run keeps
 *    to the threads its scratch was planned for, on every path and layout;
 *    misaligned scratch is refused, no scratch is the direct summation, and
 *    scratch the context's allocator cannot give is NASC_ENOMEM.
 *  - avx512: the AVX-512 path against the direct summation on shapes
 *    awkward for 16-channel groups, in every layout at 1 and 2 threads;
 *    skipped (exit 77) when the CPU has no avx512f.
 *
 *  - fd_api: shapes dwconv_fd.c does not take (C not a multiple of 16,
 *    kh != kw, k 1/4/9, stride 3, 1x2 or 2x1, dilation, top/left pad not
 *    k/2, an output row or column past the input, N 0, NULL) are refused by
 *    nasc_dw_fd_supported and by both run functions (NASC_EINPUT, the output
 *    left as it was), as are NULL pointers; AVX2, DIRECT and unknown isa
 *    values give the SCALAR bits.
 *  - fd_fixed, fd_random, fd_sweep: forward (y = sum x*w over the taps,
 *    zero padding) and backward-data (dx, its adjoint) against the double
 *    reference, on the scalar path always and on the AVX-512 kernels when
 *    the CPU has avx512f (else a message says they were not tested); the
 *    result at 1 thread within FD_TOL, at 2 and 3 threads (fd_fixed, a
 *    third of fd_random) bit-identical to it, AUTO bit-identical to AVX512; outputs are filled with NaN first, so
 *    an element left unwritten fails. fd_fixed: the NASNet-like layers at
 *    batch 2. fd_random: N_FD_RANDOM shapes (fixed seed) with N 1..3, C
 *    16/32/48, H and W 1..40 (half of them drawn from the sizes where the
 *    kernels change code path: 1, 2, 7, 8, 9, 14-17, 28, 33, 40), k 3/5/7,
 *    stride 1/2, top/left pad k/2 and per axis a bottom/right pad of k/2,
 *    0 (the least giving an output when 0 does not), one in [0, k/2], or
 *    (one axis in ten) any output size the kernels take (cropping, or
 *    reading up to k-1-k/2 past the input). fd_sweep: every width 1..40
 *    and 47, 48, 64 for each k and stride, at heights 1, 2, 3, 9, with
 *    "same" and with the least bottom/right pads, and every output size
 *    (bottom/right pad) nasc_dw_fd_supported takes for widths and for
 *    heights 1..24, 28, 32, 33, 40; at 1 thread only.
 *  - fd_adjoint: sum(y*dy) = sum(x*dx) in double for the kernels' own
 *    float results on four shapes, to 1e-5 relative (no reference used).
 *
 * Error: max |ours - ref| / max |ref| over dW, must be <= 1e-4; over y or
 * dx (FD_TOL), <= 1e-5.
 * NASC_TEST_FILTER=<cmocka pattern> runs a subset.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "dwconv.h"
#include "testutil.h"

#define TOL 1e-4
#define N_RANDOM 120

/* ---------------------------------------------------------------- */
/* Reference and helpers                                            */
/* ---------------------------------------------------------------- */

/* A depthwise case: plain double tensors and the shape. */
typedef struct dcase {
    nasc_dw_shape s;
    double *x;  /* (N, C, H, W) */
    double *dy; /* (N, C, OH, OW) */
} dcase;

static int ri(nasc_rng *r, int lo, int hi) { return lo + (int)nasc_rng_below(r, (uint64_t)(hi - lo + 1)); }

/* Output size for input n, kernel k, stride s, dilation d, pads a and b. */
static int out_size(int n, int k, int s, int d, int a, int b) { return (n + a + b - d * (k - 1) - 1) / s + 1; }

static size_t x_numel(const nasc_dw_shape *s) { return (size_t)s->n * s->c * s->h * s->w; }
static size_t y_numel(const nasc_dw_shape *s) { return (size_t)s->n * s->c * s->oh * s->ow; }
static size_t w_numel(const nasc_dw_shape *s) { return (size_t)s->c * s->kh * s->kw; }

static void dcase_init(dcase *t, const nasc_dw_shape *s, uint64_t seed) {
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    t->s = *s;
    t->x = malloc(x_numel(s) * sizeof *t->x);
    t->dy = malloc(y_numel(s) * sizeof *t->dy);
    assert_non_null(t->x);
    assert_non_null(t->dy);
    for (size_t i = 0; i < x_numel(s); i++) t->x[i] = 2.0 * nasc_rng_uniform(&r) - 1.0;
    for (size_t i = 0; i < y_numel(s); i++) t->dy[i] = 2.0 * nasc_rng_uniform(&r) - 1.0;
}

static void dcase_free(dcase *t) {
    free(t->x);
    free(t->dy);
}

/* The definition, in double: dW[c,i,j] = sum x[n,c,ih,iw] * dy[n,c,oh,ow]. */
static void ref_dw(const nasc_dw_shape *s, const double *x, const double *dy, double *dw) {
    for (int c = 0; c < s->c; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                double sum = 0;
                for (int n = 0; n < s->n; n++)
                    for (int oh = 0; oh < s->oh; oh++)
                        for (int ow = 0; ow < s->ow; ow++) {
                            int ih = oh * s->sh - s->pt + i * s->dh, iw = ow * s->sw - s->pl + j * s->dw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            sum += x[(((size_t)n * s->c + c) * s->h + ih) * s->w + iw] *
                                   dy[(((size_t)n * s->c + c) * s->oh + oh) * s->ow + ow];
                        }
                dw[((size_t)c * s->kh + i) * s->kw + j] = sum;
            }
}

/* Forward depthwise conv in double: y (N, C, OH, OW) from x and w (C, 1, kh, kw). */
static void ref_fwd(const nasc_dw_shape *s, const double *x, const double *w, double *y) {
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < s->oh; oh++)
                for (int ow = 0; ow < s->ow; ow++) {
                    double sum = 0;
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int ih = oh * s->sh - s->pt + i * s->dh, iw = ow * s->sw - s->pl + j * s->dw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            sum += x[(((size_t)n * s->c + c) * s->h + ih) * s->w + iw] *
                                   w[((size_t)c * s->kh + i) * s->kw + j];
                        }
                    y[(((size_t)n * s->c + c) * s->oh + oh) * s->ow + ow] = sum;
                }
}

/* t (N, C, hh, ww) double -> float in `layout`; blocked padding lanes get NaN. */
static float *to_layout(const double *t, int n, int c, int hh, int ww, nasc_dw_layout layout) {
    int blk = layout == NASC_DW_NCHW16C ? 16 : 8, cb = (c + blk - 1) / blk;
    size_t numel = layout == NASC_DW_NCHW ? (size_t)n * c * hh * ww : (size_t)n * cb * hh * ww * blk;
    float *f = malloc(numel * sizeof *f);
    assert_non_null(f);
    if (layout == NASC_DW_NCHW) {
        for (size_t i = 0; i < numel; i++) f[i] = (float)t[i];
        return f;
    }
    for (size_t i = 0; i < numel; i++) f[i] = NAN;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int h = 0; h < hh; h++)
                for (int w = 0; w < ww; w++)
                    f[((((size_t)b * cb + ch / blk) * hh + h) * ww + w) * blk + ch % blk] =
                        (float)t[(((size_t)b * c + ch) * hh + h) * ww + w];
    return f;
}

static const char *layout_name(nasc_dw_layout l) {
    return l == NASC_DW_NCHW ? "nchw" : l == NASC_DW_NCHW8C ? "nChw8c" : "nChw16c";
}
static const nasc_dw_layout layouts[3] = {NASC_DW_NCHW, NASC_DW_NCHW8C, NASC_DW_NCHW16C};
static const char *isa_name(nasc_dw_isa i) {
    return i == NASC_DW_ISA_AVX512 ? "avx512"
           : i == NASC_DW_ISA_AVX2 ? "avx2"
           : i == NASC_DW_ISA_DIRECT ? "direct"
                                     : "scalar";
}

/* Whether the CPU runs the AVX2 / AVX-512 paths (else they fall back). */
static bool have_avx2(void) { return nasc_dw_isa_best() != NASC_DW_ISA_SCALAR; }
static bool have_avx512(void) { return nasc_dw_isa_best() == NASC_DW_ISA_AVX512; }

static void shape_str(const nasc_dw_shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N%d C%d %dx%d -> %dx%d k%dx%d s%d,%d p%d,%d d%d,%d", s->n, s->c, s->h, s->w, s->oh, s->ow,
             s->kh, s->kw, s->sh, s->sw, s->pt, s->pl, s->dh, s->dw);
}

/* max |got - want| / max |want| (absolute when want is all zero). */
static double rel_err(const float *got, const double *want, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (isnan(e)) return e; /* an element left unwritten (NaN-filled) or a NaN result */
        if (e > err) err = e;
    }
    return scale > 0 ? err / scale : err;
}

static double rel_err_ff(const float *got, const float *want, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (isnan(e)) return e;
        if (e > err) err = e;
    }
    return scale > 0 ? err / scale : err;
}

/* A code path and the thread counts it is tested at. */
typedef struct path_run {
    nasc_dw_isa isa;
    int thr_lo, thr_hi;
} path_run;

/* The worst error of the kernel on t over layouts, paths and thread counts;
 * prints one line when verbose or when it fails. */
static double check_case(const dcase *t, bool verbose) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_dw_shape *s = &t->s;
    size_t wn = w_numel(s);
    double *want = malloc(wn * sizeof *want);
    float *got = malloc(wn * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    ref_dw(s, t->x, t->dy, want);
    /* each path with the thread counts it runs at: the split between
     * threads depends on the group width (8 or 16 channels), so both vector
     * paths run at 1-3 threads */
    path_run runs[4] = {{NASC_DW_ISA_DIRECT, 2, 2}, {NASC_DW_ISA_SCALAR, 1, 1}};
    int n_runs = 2;
    if (have_avx2()) runs[n_runs++] = (path_run){NASC_DW_ISA_AVX2, 1, 3};
    if (have_avx512()) runs[n_runs++] = (path_run){NASC_DW_ISA_AVX512, 1, 3};
    if (!have_avx2()) runs[1].thr_hi = 3;
    int saved = omp_get_max_threads();
    double worst = 0;
    char name[128];
    shape_str(s, name, sizeof name);
    for (int l = 0; l < 3; l++) {
        nasc_dw_layout layout = layouts[l];
        float *x = to_layout(t->x, s->n, s->c, s->h, s->w, layout);
        float *dy = to_layout(t->dy, s->n, s->c, s->oh, s->ow, layout);
        for (int k = 0; k < n_runs; k++)
            for (int thr = runs[k].thr_lo; thr <= runs[k].thr_hi; thr++) {
                omp_set_num_threads(thr);
                for (size_t i = 0; i < wn; i++) got[i] = NAN;
                assert_int_equal(nasc_dw_bwd_weights_isa(&ctx, s, layout, x, dy, got, runs[k].isa), NASC_OK);
                double e = rel_err(got, want, wn);
                if (!(e <= TOL) || verbose)
                    printf("  %-48s %-7s %-6s thr %d  err %.2e%s\n", name, layout_name(layout),
                           isa_name(runs[k].isa), thr, e, e <= TOL ? "" : "  FAIL");
                if (isnan(e) || (!isnan(worst) && e > worst)) worst = e; /* a NaN sticks */
            }
        free(x);
        free(dy);
    }
    omp_set_num_threads(saved);
    free(want);
    free(got);
    return worst;
}

static double run_shape(const nasc_dw_shape *s, uint64_t seed, bool verbose) {
    dcase t;
    dcase_init(&t, s, seed);
    double e = check_case(&t, verbose);
    dcase_free(&t);
    return e;
}

/* A shape from input, kernel, stride, dilation and pads (top, left, bottom, right). */
static nasc_dw_shape mk(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl,
                        int pb, int pr) {
    nasc_dw_shape s = {n, c, h, w, out_size(h, kh, sh, dh, pt, pb), out_size(w, kw, sw, dw, pl, pr), kh, kw, sh, sw,
                       pt, pl, dh, dw};
    return s;
}

/* ---------------------------------------------------------------- */
/* Tests                                                            */
/* ---------------------------------------------------------------- */

static void test_random(void **state) {
    (void)state;
    static const int ks[][2] = {{3, 3}, {5, 5}, {7, 7}, {1, 7}, {7, 1}, {3, 5}, {5, 3}, {1, 1}, {3, 1}, {1, 3}};
    nasc_rng r;
    nasc_rng_seed(&r, 20240611);
    double worst = 0;
    int done = 0;
    while (done < N_RANDOM) {
        int k = ri(&r, 0, (int)(sizeof ks / sizeof ks[0]) - 1);
        int kh = ks[k][0], kw = ks[k][1];
        int sh = ri(&r, 1, 2), sw = ri(&r, 1, 2), dh = ri(&r, 1, 2), dw = ri(&r, 1, 2);
        if (ri(&r, 0, 2) == 0) sw = sh, dw = dh; /* often symmetric */
        int n = ri(&r, 1, 4), c = ri(&r, 0, 3) == 0 ? 8 * ri(&r, 1, 2) : ri(&r, 1, 20);
        int h = ri(&r, 1, 17), w = ri(&r, 1, 17);
        /* pads up to one more than "same" */
        int pt = ri(&r, 0, dh * (kh - 1) / 2 + 1), pl = ri(&r, 0, dw * (kw - 1) / 2 + 1);
        int pb = ri(&r, 0, dh * (kh - 1) / 2 + 1), pr = ri(&r, 0, dw * (kw - 1) / 2 + 1);
        if (h + pt + pb < dh * (kh - 1) + 1 || w + pl + pr < dw * (kw - 1) + 1) continue; /* no output */
        nasc_dw_shape s = mk(n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr);
        double e = run_shape(&s, 1000 + (uint64_t)done, false);
        if (isnan(e) || (!isnan(worst) && e > worst)) worst = e; /* a NaN sticks */
        done++;
    }
    printf("  %d random shapes x 3 layouts x paths x 1-3 threads: worst error %.2e\n", done, worst);
    assert_true(worst <= TOL);
}

static void test_fixed(void **state) {
    (void)state;
    nasc_dw_shape shapes[] = {
        /* the benchmark's layers, batch 2 */
        mk(2, 64, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
        mk(2, 64, 14, 14, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2),
        mk(2, 64, 14, 14, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3),
        mk(2, 64, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
        mk(2, 64, 14, 14, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2),
        mk(2, 64, 14, 14, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3),
        /* dil_conv_3x3 / 5x5 of NASNet, ENAS */
        mk(3, 20, 15, 15, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),
        mk(2, 36, 11, 11, 5, 5, 2, 2, 2, 2, 4, 4, 4, 4),
        /* conv_1x7_7x1 halves */
        mk(2, 12, 13, 9, 1, 7, 1, 1, 1, 1, 0, 3, 0, 3),
        mk(2, 12, 13, 9, 7, 1, 1, 1, 1, 1, 3, 0, 3, 0),
        /* wider than one column group, taller than one row group */
        mk(2, 9, 17, 23, 9, 9, 1, 1, 1, 1, 4, 4, 4, 4),
        mk(1, 5, 12, 30, 3, 11, 1, 2, 1, 1, 1, 5, 1, 5),
        mk(1, 3, 30, 8, 15, 2, 1, 1, 1, 1, 7, 0, 7, 1),
        /* kernel bigger than the input; a single pixel */
        mk(2, 8, 3, 3, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3),
        mk(1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
        mk(4, 17, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),
        /* negative pads crop the input; stride larger than the kernel */
        mk(2, 10, 12, 12, 3, 3, 1, 1, 1, 1, -1, -2, -1, 0),
        mk(2, 10, 12, 13, 3, 3, 4, 3, 1, 1, 0, 1, 0, 1),
        /* large batch, few channel blocks: the batch is split between threads */
        mk(37, 8, 6, 6, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2),
        mk(9, 24, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double e = run_shape(&shapes[i], 77 + i, false);
        char name[128];
        shape_str(&shapes[i], name, sizeof name);
        printf("  %-48s worst err %.2e\n", name, e);
        if (isnan(e) || (!isnan(worst) && e > worst)) worst = e; /* a NaN sticks */
    }
    assert_true(worst <= TOL);
}

/* L(W) = sum(conv(x, W) * dy) is linear in W, so its central difference in
 * double is dW up to rounding; our float dW must match it. */
static void test_finite_difference(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dw_shape s = mk(2, 11, 9, 8, 5, 3, 2, 1, 1, 2, 2, 2, 1, 2);
    dcase t;
    dcase_init(&t, &s, 4242);
    size_t wn = w_numel(&s), yn = y_numel(&s);
    double *w = calloc(wn, sizeof *w), *y = malloc(yn * sizeof *y), *fd = malloc(wn * sizeof *fd);
    float *got = malloc(wn * sizeof *got);
    assert_non_null(w);
    assert_non_null(y);
    assert_non_null(fd);
    assert_non_null(got);
    nasc_rng r;
    nasc_rng_seed(&r, 7);
    for (size_t i = 0; i < wn; i++) w[i] = nasc_rng_normal(&r);
    const double eps = 1e-3;
    for (size_t k = 0; k < wn; k++) {
        double l[2], w0 = w[k];
        for (int side = 0; side < 2; side++) {
            w[k] = w0 + (side ? eps : -eps);
            ref_fwd(&s, t.x, w, y);
            l[side] = 0;
            for (size_t i = 0; i < yn; i++) l[side] += y[i] * t.dy[i];
        }
        w[k] = w0;
        fd[k] = (l[1] - l[0]) / (2 * eps);
    }
    for (int lay = 0; lay < 3; lay++) {
        nasc_dw_layout layout = layouts[lay];
        float *x = to_layout(t.x, s.n, s.c, s.h, s.w, layout);
        float *dy = to_layout(t.dy, s.n, s.c, s.oh, s.ow, layout);
        assert_int_equal(nasc_dw_bwd_weights(&ctx, &s, layout, x, dy, got), NASC_OK);
        double e = rel_err(got, fd, wn);
        printf("  finite differences, %s: err %.2e\n", layout_name(layout), e);
        assert_true(e <= TOL);
        free(x);
        free(dy);
    }
    free(w);
    free(y);
    free(fd);
    free(got);
    dcase_free(&t);
}

static void test_api(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dw_shape good = mk(2, 16, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    float x[2 * 16 * 49], dy[2 * 16 * 49], dw[16 * 9], again[16 * 9];
    nasc_rng r;
    nasc_rng_seed(&r, 99);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = nasc_rng_normal(&r), dy[i] = nasc_rng_normal(&r);
    /* bad shapes, layouts and pointers: refused, dW untouched (pads may be anything) */
    static const size_t must_be_positive[] = {
        offsetof(nasc_dw_shape, n),  offsetof(nasc_dw_shape, c),  offsetof(nasc_dw_shape, h),
        offsetof(nasc_dw_shape, w),  offsetof(nasc_dw_shape, oh), offsetof(nasc_dw_shape, ow),
        offsetof(nasc_dw_shape, kh), offsetof(nasc_dw_shape, kw), offsetof(nasc_dw_shape, sh),
        offsetof(nasc_dw_shape, sw), offsetof(nasc_dw_shape, dh), offsetof(nasc_dw_shape, dw),
    };
    for (size_t f = 0; f < sizeof must_be_positive / sizeof must_be_positive[0]; f++) {
        nasc_dw_shape bad = good;
        *(int *)((char *)&bad + must_be_positive[f]) = 0;
        assert_false(nasc_dw_shape_valid(&bad));
        dw[0] = 12345.0f;
        assert_int_equal(nasc_dw_bwd_weights(&ctx, &bad, NASC_DW_NCHW, x, dy, dw), NASC_EINPUT);
        assert_true(dw[0] == 12345.0f);
    }
    assert_true(nasc_dw_shape_valid(&good));
    assert_int_equal(nasc_dw_bwd_weights(&ctx, &good, (nasc_dw_layout)7, x, dy, dw), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_weights(&ctx, NULL, NASC_DW_NCHW, x, dy, dw), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_weights(&ctx, &good, NASC_DW_NCHW, NULL, dy, dw), NASC_EINPUT);
    /* the same inputs give the same bits */
    for (int l = 0; l < 3; l++) {
        nasc_dw_layout layout = layouts[l];
        assert_int_equal(nasc_dw_bwd_weights(&ctx, &good, layout, x, dy, dw), NASC_OK);
        assert_int_equal(nasc_dw_bwd_weights(&ctx, &good, layout, x, dy, again), NASC_OK);
        assert_memory_equal(dw, again, sizeof dw);
    }
    /* caller's scratch: planned for one thread, the run keeps to one thread
     * whatever OpenMP allows, and gives the one-thread bits; misaligned
     * scratch is refused; no scratch at all is the direct summation */
    size_t one = nasc_dw_scratch_bytes(&good, 1), two = nasc_dw_scratch_bytes(&good, 2);
    assert_true(one > 0 && one % 64 == 0 && two > one);
    assert_int_equal(nasc_dw_scratch_bytes(NULL, 1), 0);
    float *scratch = aligned_alloc(64, two + 64);
    assert_non_null(scratch);
    int saved = omp_get_max_threads();
    float solo[16 * 9];
    omp_set_num_threads(1);
    assert_int_equal(nasc_dw_bwd_weights_run(&good, NASC_DW_NCHW8C, x, dy, solo, NASC_DW_ISA_AUTO, scratch, two), NASC_OK);
    omp_set_num_threads(2);
    assert_int_equal(nasc_dw_bwd_weights_run(&good, NASC_DW_NCHW8C, x, dy, dw, NASC_DW_ISA_AUTO, scratch, one), NASC_OK);
    assert_memory_equal(dw, solo, sizeof dw);
    omp_set_num_threads(saved);
    dw[0] = 12345.0f;
    assert_int_equal(nasc_dw_bwd_weights_run(&good, NASC_DW_NCHW8C, x, dy, dw, NASC_DW_ISA_AUTO, (char *)scratch + 32, one),
                     NASC_EINPUT);
    assert_true(dw[0] == 12345.0f);
    assert_int_equal(nasc_dw_bwd_weights_run(&good, NASC_DW_NCHW8C, x, dy, dw, NASC_DW_ISA_AUTO, NULL, 0), NASC_OK);
    assert_true(rel_err_ff(dw, solo, 16 * 9) <= TOL);
    /* the threads scratch was planned for are the same on every path, in
     * every layout, although the 8-channel paths need less of it per thread:
     * planned for 1 (2), a run at 2 (3) OpenMP threads gives the 1-thread
     * (2-thread) bits (three images: splits at 2 and 3 threads add them in
     * different groupings) */
    nasc_dw_shape tri = mk(3, 8, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    size_t tri1 = nasc_dw_scratch_bytes(&tri, 1), tri2 = nasc_dw_scratch_bytes(&tri, 2);
    float *tri_scratch = aligned_alloc(64, tri2);
    float *tx = malloc(3 * 16 * 49 * sizeof *tx), *tdy = malloc(3 * 16 * 49 * sizeof *tdy); /* room for nChw16c */
    assert_non_null(tri_scratch);
    assert_non_null(tx);
    assert_non_null(tdy);
    for (int i = 0; i < 3 * 16 * 49; i++) tx[i] = nasc_rng_normal(&r), tdy[i] = nasc_rng_normal(&r);
    static const nasc_dw_isa paths[] = {NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX2, NASC_DW_ISA_AVX512, NASC_DW_ISA_AUTO};
    for (int l = 0; l < 3; l++)
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
            float planned[8 * 9], run[8 * 9];
            for (int t = 1; t <= 2; t++) {
                size_t bytes = t == 1 ? tri1 : tri2;
                omp_set_num_threads(t);
                assert_int_equal(
                    nasc_dw_bwd_weights_run(&tri, layouts[l], tx, tdy, planned, paths[k], tri_scratch, bytes), NASC_OK);
                omp_set_num_threads(t + 1);
                assert_int_equal(nasc_dw_bwd_weights_run(&tri, layouts[l], tx, tdy, run, paths[k], tri_scratch, bytes),
                                 NASC_OK);
                assert_memory_equal(run, planned, sizeof run);
            }
        }
    free(tri_scratch);
    free(tx);
    free(tdy);
    omp_set_num_threads(saved);
    free(scratch);
    /* scratch from the context: out of memory is a status, not a fallback */
    nasc_test_alloc ta;
    nasc_ctx failing;
    nasc_test_ctx(&failing, &ta, 1);
    assert_int_equal(nasc_dw_bwd_weights(&failing, &good, NASC_DW_NCHW, x, dy, dw), NASC_ENOMEM);
    assert_int_equal(failing.diag.status, NASC_ENOMEM);
    assert_int_equal(ta.live, 0);
    printf("  best path on this CPU: %s\n", isa_name(nasc_dw_isa_best()));
}

/* The AVX-512 path (16-channel groups; dy read in place on nChw16c, 8c
 * blocks paired, NCHW transposed) against the direct summation in double
 * (NASC_DW_ISA_DIRECT), in every layout, at 1 and 2 threads, on shapes
 * chosen to be awkward for it: C below 16 and not a multiple of 16 (a last
 * group with lanes past C), 1x1 to 7x7 and asymmetric kernels, strides and
 * dilations of 2, zero and negative pads, planes of one pixel and odd
 * sizes, one image and several. Scratch is what nasc_dw_scratch_bytes
 * plans (nasc_dw_bwd_weights_isa), so a short plan would show under ASan.
 * Without avx512f the test is skipped, not passed. */
static void test_avx512(void **state) {
    (void)state;
    if (!have_avx512())
        nasc_test_skip("the AVX-512 path cannot run here (best path %s: no avx512f, or a NASC_DW_PORTABLE build)",
                       isa_name(nasc_dw_isa_best()));
    /* h, w, sh, sw, dh, dw and the pads top, left, bottom, right: SAME is
     * dilation*(k-1)/2 */
    enum { SAME = -100 };
    static const struct {
        int h, w, sh, sw, dh, dw, pt, pl, pb, pr;
    } geo[] = {
        {7, 7, 1, 1, 1, 1, SAME, SAME, SAME, SAME},   /* "same" */
        {13, 11, 2, 2, 1, 1, SAME, SAME, SAME, SAME}, /* stride 2, odd plane */
        {9, 10, 1, 1, 2, 2, SAME, SAME, SAME, SAME},  /* dilation 2 */
        {12, 12, 1, 1, 1, 1, -1, -2, -1, 0},          /* negative pads: cropped */
        {1, 1, 1, 1, 1, 1, SAME, SAME, SAME, SAME},   /* one pixel */
        {3, 5, 2, 2, 2, 2, SAME, SAME, SAME, SAME},   /* tiny, stride and dilation 2 */
        {9, 8, 1, 1, 1, 1, 0, 0, 0, 0},               /* zero pads */
    };
    static const int ks[] = {1, 3, 5, 7}, cs[] = {1, 5, 15, 17, 24, 33};
    nasc_dw_shape shapes[4 * 6 + 4];
    int n_shapes = 0;
    for (int ki = 0; ki < 4; ki++)
        for (int ci = 0; ci < 6; ci++) {
            int k = ks[ki], gi = (ki + 3 * ci) % (int)(sizeof geo / sizeof geo[0]);
            int sh = geo[gi].dh * (k - 1) / 2, sw = geo[gi].dw * (k - 1) / 2;
            nasc_dw_shape s = mk(ci % 2 ? 3 : 1, cs[ci], geo[gi].h, geo[gi].w, k, k, geo[gi].sh, geo[gi].sw, geo[gi].dh,
                                 geo[gi].dw, geo[gi].pt == SAME ? sh : geo[gi].pt, geo[gi].pl == SAME ? sw : geo[gi].pl,
                                 geo[gi].pb == SAME ? sh : geo[gi].pb, geo[gi].pr == SAME ? sw : geo[gi].pr);
            assert_true(s.oh >= 1 && s.ow >= 1);
            shapes[n_shapes++] = s;
        }
    /* asymmetric kernels and strides */
    shapes[n_shapes++] = mk(2, 20, 13, 9, 1, 7, 1, 1, 1, 1, 0, 3, 0, 3);
    shapes[n_shapes++] = mk(2, 20, 13, 9, 7, 1, 1, 1, 1, 1, 3, 0, 3, 0);
    shapes[n_shapes++] = mk(1, 31, 10, 15, 3, 5, 2, 1, 1, 2, 1, 4, 0, 4);
    shapes[n_shapes++] = mk(5, 16, 6, 5, 5, 3, 1, 2, 1, 1, 2, 1, 2, 1);

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    int saved = omp_get_max_threads(), runs = 0;
    double worst = 0;
    for (int i = 0; i < n_shapes; i++) {
        const nasc_dw_shape *s = &shapes[i];
        dcase t;
        dcase_init(&t, s, 500 + (uint64_t)i);
        size_t wn = w_numel(s);
        float *direct = malloc(wn * sizeof *direct), *got = malloc(wn * sizeof *got);
        float *again = malloc(wn * sizeof *again);
        assert_non_null(direct);
        assert_non_null(got);
        assert_non_null(again);
        char name[128];
        shape_str(s, name, sizeof name);
        for (int l = 0; l < 3; l++) {
            float *x = to_layout(t.x, s->n, s->c, s->h, s->w, layouts[l]);
            float *dy = to_layout(t.dy, s->n, s->c, s->oh, s->ow, layouts[l]);
            assert_int_equal(nasc_dw_bwd_weights_isa(&ctx, s, layouts[l], x, dy, direct, NASC_DW_ISA_DIRECT), NASC_OK);
            for (int thr = 1; thr <= 2; thr++) {
                omp_set_num_threads(thr);
                for (size_t e = 0; e < wn; e++) got[e] = NAN;
                assert_int_equal(nasc_dw_bwd_weights_isa(&ctx, s, layouts[l], x, dy, got, NASC_DW_ISA_AVX512), NASC_OK);
                double e = rel_err_ff(got, direct, wn);
                if (!(e <= TOL))
                    printf("  %-48s %-7s avx512 thr %d  err %.2e  FAIL\n", name, layout_name(layouts[l]), thr, e);
                if (isnan(e) || (!isnan(worst) && e > worst)) worst = e; /* a NaN sticks */
                /* the best path here: AUTO is this path, to the bit, run after run */
                assert_int_equal(nasc_dw_bwd_weights_isa(&ctx, s, layouts[l], x, dy, again, NASC_DW_ISA_AUTO), NASC_OK);
                assert_memory_equal(got, again, wn * sizeof *got);
                runs++;
            }
            free(x);
            free(dy);
        }
        free(direct);
        free(got);
        free(again);
        dcase_free(&t);
    }
    omp_set_num_threads(saved);
    printf("  %d shapes x 3 layouts x 1-2 threads (%d runs), avx512 against direct: worst error %.2e\n", n_shapes,
           runs, worst);
    assert_true(worst <= TOL);
}

/* ---------------------------------------------------------------- */
/* Forward and backward-data on nChw16c (backend/dwconv_fd.c)       */
/* ---------------------------------------------------------------- */

#define FD_TOL 1e-5
#define N_FD_RANDOM 150

/* A shape the fd kernels take: k x k, stride st on both axes, top and left
 * pad k/2, the output size from bottom and right pads pb and pr. */
static nasc_dw_shape fd_mk(int n, int c, int h, int w, int k, int st, int pb, int pr) {
    return mk(n, c, h, w, k, k, st, st, 1, 1, k / 2, k / 2, pb, pr);
}

/* The largest output size whose last row (column) still reads the input:
 * (o - 1)*st - k/2 < n. */
static int fd_max_out(int n, int k, int st) { return (n + k / 2 - 1) / st + 1; }

static int imax_i(int a, int b) { return a > b ? a : b; }

/* Backward-data in double, the adjoint of ref_fwd: dx (N, C, H, W) from dy
 * (N, C, OH, OW) and w (C, 1, kh, kw). */
static void ref_bwd_data(const nasc_dw_shape *s, const double *dy, const double *w, double *dx) {
    memset(dx, 0, x_numel(s) * sizeof *dx);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < s->oh; oh++)
                for (int ow = 0; ow < s->ow; ow++) {
                    double g = dy[(((size_t)n * s->c + c) * s->oh + oh) * s->ow + ow];
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int ih = oh * s->sh - s->pt + i * s->dh, iw = ow * s->sw - s->pl + j * s->dw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            dx[(((size_t)n * s->c + c) * s->h + ih) * s->w + iw] +=
                                g * w[((size_t)c * s->kh + i) * s->kw + j];
                        }
                }
}

/* w (C, 1, k, k) double -> oneDNN's Goihw16g floats (C/16, k, k, 16). */
static float *to_goihw16g(const double *w, int c, int k) {
    float *f = malloc((size_t)c * k * k * sizeof *f);
    assert_non_null(f);
    for (int ch = 0; ch < c; ch++)
        for (int t = 0; t < k * k; t++)
            f[(((size_t)ch / 16) * k * k + t) * 16 + ch % 16] = (float)w[(size_t)ch * k * k + t];
    return f;
}

/* nChw16c floats (C a multiple of 16) -> plain (N, C, hh, ww) floats. */
static float *from_16c(const float *f, int n, int c, int hh, int ww) {
    float *t = malloc((size_t)n * c * hh * ww * sizeof *t);
    assert_non_null(t);
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hh * ww; i++)
                t[((size_t)b * c + ch) * hh * ww + i] =
                    f[(((size_t)b * (c / 16) + ch / 16) * hh * ww + i) * 16 + ch % 16];
    return t;
}

/* One fd case: x, dy and w (float values held in double, so the reference
 * sees exactly what the kernels see), the double-precision results, and the
 * kernels' inputs in nChw16c / Goihw16g. */
typedef struct fd_case {
    dcase t;
    double *w, *y_ref, *dx_ref;
    float *x16, *dy16, *w16;
} fd_case;

static void fd_case_init(fd_case *f, const nasc_dw_shape *s, uint64_t seed) {
    assert_true(nasc_dw_fd_supported(s));
    dcase_init(&f->t, s, seed);
    for (size_t i = 0; i < x_numel(s); i++) f->t.x[i] = (float)f->t.x[i];
    for (size_t i = 0; i < y_numel(s); i++) f->t.dy[i] = (float)f->t.dy[i];
    nasc_rng r;
    nasc_rng_seed(&r, seed ^ 0x5eedu);
    f->w = malloc(w_numel(s) * sizeof *f->w);
    f->y_ref = malloc(y_numel(s) * sizeof *f->y_ref);
    f->dx_ref = malloc(x_numel(s) * sizeof *f->dx_ref);
    assert_non_null(f->w);
    assert_non_null(f->y_ref);
    assert_non_null(f->dx_ref);
    for (size_t i = 0; i < w_numel(s); i++) f->w[i] = (float)(2.0 * nasc_rng_uniform(&r) - 1.0);
    ref_fwd(s, f->t.x, f->w, f->y_ref);
    ref_bwd_data(s, f->t.dy, f->w, f->dx_ref);
    f->x16 = to_layout(f->t.x, s->n, s->c, s->h, s->w, NASC_DW_NCHW16C);
    f->dy16 = to_layout(f->t.dy, s->n, s->c, s->oh, s->ow, NASC_DW_NCHW16C);
    f->w16 = to_goihw16g(f->w, s->c, s->kh);
}

static void fd_case_free(fd_case *f) {
    dcase_free(&f->t);
    free(f->w), free(f->y_ref), free(f->dx_ref), free(f->x16), free(f->dy16), free(f->w16);
}

/* Results of checking shapes: the worst error, failures, runs. */
typedef struct fd_stats {
    double worst;
    int fails, runs;
} fd_stats;

/* Forward (dir 0) or backward-data (dir 1) of f on path isa at the current
 * OpenMP thread count, into out (nChw16c), first filled with NaN so an
 * element left unwritten shows. */
static void fd_call(const fd_case *f, int dir, nasc_dw_isa isa, float *out, size_t numel) {
    const nasc_dw_shape *s = &f->t.s;
    for (size_t i = 0; i < numel; i++) out[i] = NAN;
    nasc_status st = dir == 0 ? nasc_dw_fwd_run(s, f->x16, f->w16, out, isa)
                              : nasc_dw_bwd_data_run(s, f->dy16, f->w16, out, isa);
    assert_int_equal(st, NASC_OK);
}

/* Both directions of shape s on the scalar path, and on the AVX-512 one
 * when the CPU has it, each at 1 to thr_hi threads: the 1-thread result
 * against the double reference (max |ours - ref| / max |ref| <= FD_TOL),
 * the results at more threads bit-identical to it, AUTO bit-identical to
 * the AVX-512 path where it is that path. Prints a line per failure (or
 * per run when verbose). */
static void fd_check_shape(const nasc_dw_shape *s, uint64_t seed, int thr_hi, bool verbose, fd_stats *st) {
    fd_case f;
    fd_case_init(&f, s, seed);
    nasc_dw_isa paths[2] = {NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX512};
    int n_paths = have_avx512() ? 2 : 1, saved = omp_get_max_threads();
    char name[128];
    shape_str(s, name, sizeof name);
    for (int dir = 0; dir < 2; dir++) {
        int oh = dir == 0 ? s->oh : s->h, ow = dir == 0 ? s->ow : s->w;
        size_t numel = (size_t)s->n * s->c * oh * ow;
        const double *want = dir == 0 ? f.y_ref : f.dx_ref;
        float *one = malloc(numel * sizeof *one), *more = malloc(numel * sizeof *more);
        assert_non_null(one);
        assert_non_null(more);
        for (int p = 0; p < n_paths; p++) {
            omp_set_num_threads(1);
            fd_call(&f, dir, paths[p], one, numel);
            float *plain = from_16c(one, s->n, s->c, oh, ow);
            double e = rel_err(plain, want, numel);
            free(plain);
            bool bad = !(e <= FD_TOL);
            if (bad || verbose)
                printf("  %-48s %-4s %-6s err %.2e%s\n", name, dir ? "bwd" : "fwd", isa_name(paths[p]), e,
                       bad ? "  FAIL" : "");
            if (isnan(e) || (!isnan(st->worst) && e > st->worst)) st->worst = e;
            st->fails += bad;
            for (int thr = 2; thr <= thr_hi; thr++) {
                omp_set_num_threads(thr);
                fd_call(&f, dir, paths[p], more, numel);
                if (memcmp(one, more, numel * sizeof *one)) {
                    printf("  %-48s %-4s %-6s thr %d differs from thr 1  FAIL\n", name, dir ? "bwd" : "fwd",
                           isa_name(paths[p]), thr);
                    st->fails++;
                }
            }
            if (paths[p] == NASC_DW_ISA_AVX512) {
                fd_call(&f, dir, NASC_DW_ISA_AUTO, more, numel);
                if (memcmp(one, more, numel * sizeof *one)) {
                    printf("  %-48s %-4s auto differs from avx512  FAIL\n", name, dir ? "bwd" : "fwd");
                    st->fails++;
                }
            }
            st->runs++;
        }
        free(one);
        free(more);
    }
    omp_set_num_threads(saved);
    fd_case_free(&f);
}

static void fd_note_path(void) {
    if (!have_avx512())
        print_message("  NOTE: no avx512f here (best path %s): the AVX-512 kernels are NOT tested, only the scalar "
                      "path\n",
                      isa_name(nasc_dw_isa_best()));
}

/* A size from 1 to 40, half the time one where the kernels change code
 * path (pairs of rows up to 8, strips of 16 / 8, strips without padding
 * columns in rows over ~32). */
static int fd_size(nasc_rng *r) {
    static const int edge[] = {1, 2, 7, 8, 9, 14, 15, 16, 17, 28, 33, 40};
    return ri(r, 0, 1) ? edge[ri(r, 0, (int)(sizeof edge / sizeof edge[0]) - 1)] : ri(r, 1, 40);
}

/* The bottom (right) pad for input size n: "same" (k/2) 4 times in 10, 0
 * (or the least pad giving an output) 3 in 10, one in [0, k/2] 2 in 10;
 * else (kind 'a') any output size the kernels take, which may crop the
 * input (a negative pad) or read past it by up to k-1 - k/2 columns.
 * Returns the output size. */
static int fd_out(nasc_rng *r, int n, int k, int st, char *kind) {
    int p = k / 2, lo = imax_i(0, k - n - p), roll = ri(r, 0, 9), pb;
    if (roll < 4)
        pb = p, *kind = 's';
    else if (roll < 7)
        pb = lo, *kind = lo ? 'l' : '0';
    else if (roll < 9)
        pb = ri(r, lo, p), *kind = 'r';
    else {
        *kind = 'a';
        return ri(r, 1, fd_max_out(n, k, st));
    }
    return out_size(n, k, st, 1, p, pb);
}

/* Random shapes (fixed seeds): N 1..3, C 16/32/48, H and W 1..40, k 3/5/7,
 * stride 1/2, bottom and right pads from fd_out; one shape in three also at
 * 2 and 3 threads (runs at more threads than cores are slow when another
 * process runs OpenMP threads too). */
static void test_fd_random(void **state) {
    (void)state;
    fd_note_path();
    nasc_rng r;
    nasc_rng_seed(&r, 20261206);
    fd_stats st = {0};
    int kinds[128] = {0};
    for (int done = 0; done < N_FD_RANDOM; done++) {
        int n = ri(&r, 1, 3), c = 16 * ri(&r, 1, 3), h = fd_size(&r), w = fd_size(&r);
        int k = 2 * ri(&r, 1, 3) + 1, sd = ri(&r, 1, 2);
        char kh, kw;
        int oh = fd_out(&r, h, k, sd, &kh), ow = fd_out(&r, w, k, sd, &kw);
        kinds[(int)kh]++, kinds[(int)kw]++;
        nasc_dw_shape s = {n, c, h, w, oh, ow, k, k, sd, sd, k / 2, k / 2, 1, 1};
        assert_true(nasc_dw_fd_supported(&s));
        fd_check_shape(&s, 3000 + (uint64_t)done, done % 3 == 0 ? 3 : 1, false, &st);
    }
    printf("  %d random shapes (axes: %d same pad, %d zero pad, %d least pad, %d pad in [0, k/2], %d any output "
           "size) x fwd/bwd x %s x 1 thread (1-3 for %d): worst error %.2e, %d failure(s)\n",
           N_FD_RANDOM, kinds['s'], kinds['0'], kinds['l'], kinds['r'], kinds['a'],
           have_avx512() ? "scalar/avx512" : "scalar", (N_FD_RANDOM + 2) / 3, st.worst, st.fails);
    assert_int_equal(st.fails, 0);
}

/* Every row width from 1 to 40 (and 47, 48, 64: three and four strips),
 * each k and stride, at heights 1, 2, 3 and 9 (one row, one pair, a pair
 * and a single row, many), with "same" bottom/right pads and with the
 * least pads (0 where that gives an output); then every output size the
 * kernels take, across widths and across heights; one thread (the thread counts
 * are fd_random's and fd_fixed's: 2064 shapes at 3 threads on a 2-core
 * machine shared with another OpenMP process take minutes). */
static void test_fd_sweep(void **state) {
    (void)state;
    fd_note_path();
    static const int hs[] = {1, 2, 3, 9}, extra[] = {47, 48, 64};
    fd_stats st = {0};
    int shapes = 0;
    for (int k = 3; k <= 7; k += 2)
        for (int sd = 1; sd <= 2; sd++)
            for (int wi = 1; wi <= 40 + 3; wi++)
                for (int hi = 0; hi < 4; hi++)
                    for (int same = 0; same < 2; same++) {
                        int w = wi <= 40 ? wi : extra[wi - 41], h = hs[hi], p = k / 2;
                        int pb = same ? p : imax_i(0, k - h - p), pr = same ? p : imax_i(0, k - w - p);
                        nasc_dw_shape s = fd_mk(1 + (wi % 5 == 0), 16 * (1 + (wi % 3 == 0)), h, w, k, sd, pb, pr);
                        assert_true(nasc_dw_fd_supported(&s));
                        fd_check_shape(&s, 9000 + (uint64_t)shapes, 1, false, &st);
                        shapes++;
                    }
    /* every output size the kernels take (nasc_dw_fd_supported: from 1,
     * cropping the input, to the last row or column that reads it), for
     * widths 1..24, 28, 32, 33, 40 at height 3, then those heights at widths
     * 5 (pairs of rows) and 17 (strips) */
    static const int lens[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
                               15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 28, 32, 33, 40};
    int sizes = 0;
    for (int k = 3; k <= 7; k += 2)
        for (int sd = 1; sd <= 2; sd++)
            for (int axis = 0; axis < 2; axis++)
                for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
                    for (int len = lens[li], o = 1; o <= fd_max_out(len, k, sd); o++) {
                        int h = axis ? len : 3, w = axis ? (o % 2 ? 5 : 17) : len;
                        int other = 1 + (len + o) % fd_max_out(axis ? w : h, k, sd);
                        nasc_dw_shape s = {1, 16, h, w, axis ? o : other, axis ? other : o, k, k, sd, sd,
                                           k / 2, k / 2, 1, 1};
                        assert_true(nasc_dw_fd_supported(&s));
                        fd_check_shape(&s, 20000 + (uint64_t)sizes, 1, false, &st);
                        sizes++;
                    }
    printf("  %d sweep shapes (\"same\" and least pads) and %d (every output size) x fwd/bwd x %s x 1 thread: "
           "worst error %.2e, %d failure(s)\n",
           shapes, sizes, have_avx512() ? "scalar/avx512" : "scalar", st.worst, st.fails);
    assert_int_equal(st.fails, 0);
}

/* The layers of a NASNet-like net (16 channels at 28x28, 32 at 14x14, 64
 * at 7x7, k 3/5/7, stride 1; 32 at 28x28 and 64 at 14x14, stride 2), batch
 * 2, "same" pads; one line each. */
static void test_fd_fixed(void **state) {
    (void)state;
    fd_note_path();
    static const int geo[][4] = {{16, 28, 28, 1}, {32, 14, 14, 1}, {64, 7, 7, 1}, {32, 28, 28, 2}, {64, 14, 14, 2}};
    fd_stats st = {0};
    for (int g = 0; g < 5; g++)
        for (int k = 3; k <= 7; k += 2) {
            nasc_dw_shape s = fd_mk(2, geo[g][0], geo[g][1], geo[g][2], k, geo[g][3], k / 2, k / 2);
            fd_stats one = {0};
            fd_check_shape(&s, 700 + (uint64_t)(g * 8 + k), 3, false, &one);
            char name[128];
            shape_str(&s, name, sizeof name);
            printf("  %-48s worst err %.2e%s\n", name, one.worst, one.fails ? "  FAIL" : "");
            if (!(one.worst <= st.worst)) st.worst = one.worst;
            st.fails += one.fails;
        }
    assert_int_equal(st.fails, 0);
    assert_true(st.worst <= FD_TOL);
}

/* sum(y * dy) = sum(x * dx) for y = fwd(x), dx = bwd_data(dy): the two
 * kernels are each other's adjoint, checked without the reference (sums in
 * double of the float results; relative to the larger |sum|). */
static void test_fd_adjoint(void **state) {
    (void)state;
    fd_note_path();
    nasc_dw_shape shapes[] = {
        fd_mk(2, 32, 15, 17, 5, 2, 0, 2),
        fd_mk(1, 48, 9, 8, 7, 1, 3, 3),
        fd_mk(3, 16, 28, 33, 3, 1, 0, 1),
        fd_mk(2, 16, 40, 7, 7, 2, 3, 0),
    };
    nasc_dw_isa paths[2] = {NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX512};
    int n_paths = have_avx512() ? 2 : 1;
    double worst = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const nasc_dw_shape *s = &shapes[i];
        fd_case f;
        fd_case_init(&f, s, 4100 + i);
        size_t xn = x_numel(s), yn = y_numel(s);
        float *y = malloc(yn * sizeof *y), *dx = malloc(xn * sizeof *dx);
        assert_non_null(y);
        assert_non_null(dx);
        char name[128];
        shape_str(s, name, sizeof name);
        for (int p = 0; p < n_paths; p++) {
            fd_call(&f, 0, paths[p], y, yn);
            fd_call(&f, 1, paths[p], dx, xn);
            double a = 0, b = 0; /* both layouts are nChw16c: index by index */
            for (size_t e = 0; e < yn; e++) a += (double)y[e] * f.dy16[e];
            for (size_t e = 0; e < xn; e++) b += (double)f.x16[e] * dx[e];
            double e = fabs(a - b) / fmax(fabs(a), fabs(b));
            printf("  %-48s %-6s sum(y*dy) %+.6e sum(x*dx) %+.6e rel %.1e\n", name, isa_name(paths[p]), a, b, e);
            if (isnan(e) || (!isnan(worst) && e > worst)) worst = e; /* a NaN sticks */
        }
        free(y);
        free(dx);
        fd_case_free(&f);
    }
    assert_true(worst <= 1e-5);
}

/* Shapes the kernels do not take are refused (nasc_dw_fd_supported false,
 * NASC_EINPUT, the output untouched), and so are NULL pointers; every isa
 * but AUTO and AVX512 is the portable loop, to the bit. */
static void test_fd_api(void **state) {
    (void)state;
    nasc_dw_shape good = fd_mk(2, 32, 9, 10, 3, 1, 1, 1);
    assert_true(nasc_dw_fd_supported(&good));
    struct {
        const char *why;
        nasc_dw_shape s;
    } bad[] = {
        {"C 24", fd_mk(2, 24, 9, 10, 3, 1, 1, 1)},
        {"C 8", fd_mk(2, 8, 9, 10, 3, 1, 1, 1)},
        {"C 17", fd_mk(2, 17, 9, 10, 3, 1, 1, 1)},
        {"3x5", mk(2, 32, 9, 10, 3, 5, 1, 1, 1, 1, 1, 2, 1, 2)},
        {"5x3", mk(2, 32, 9, 10, 5, 3, 1, 1, 1, 1, 2, 1, 2, 1)},
        {"k 1", fd_mk(2, 32, 9, 10, 1, 1, 0, 0)},
        {"k 9", fd_mk(2, 32, 9, 10, 9, 1, 4, 4)},
        {"k 4", mk(2, 32, 9, 10, 4, 4, 1, 1, 1, 1, 2, 2, 1, 1)},
        {"stride 3", fd_mk(2, 32, 9, 10, 3, 3, 1, 1)},
        {"stride 1x2", mk(2, 32, 9, 10, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1)},
        {"stride 2x1", mk(2, 32, 9, 10, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1)},
        {"dilation 2", mk(2, 32, 9, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2)},
        {"dilation 1x2", mk(2, 32, 9, 10, 3, 3, 1, 1, 1, 2, 1, 2, 1, 2)},
        {"pt 0", mk(2, 32, 9, 10, 3, 3, 1, 1, 1, 1, 0, 1, 1, 1)},
        {"pt 2", mk(2, 32, 9, 10, 3, 3, 1, 1, 1, 1, 2, 1, 1, 1)},
        {"pl 0", mk(2, 32, 9, 10, 3, 3, 1, 1, 1, 1, 1, 0, 1, 1)},
        {"pt -1", mk(2, 32, 9, 10, 5, 5, 1, 1, 1, 1, -1, 2, 2, 2)},
        {"oh past the input", fd_mk(2, 32, 9, 10, 3, 1, 3, 1)},
        {"ow past the input", fd_mk(2, 32, 9, 10, 5, 2, 2, 5)},
        {"N 0", fd_mk(0, 32, 9, 10, 3, 1, 1, 1)},
    };
    /* the last rows that read the input are supported, one more is not */
    assert_true(nasc_dw_fd_supported(&(nasc_dw_shape){2, 32, 9, 10, 10, 11, 3, 3, 1, 1, 1, 1, 1, 1}));
    assert_int_equal(bad[17].s.oh, 11);
    assert_int_equal(bad[18].s.ow, 7);
    assert_false(nasc_dw_fd_supported(NULL));
    /* room for any of the shapes' tensors */
    enum { ROOM = 3 * 48 * 16 * 16 };
    float *in = malloc(ROOM * sizeof *in), *w = malloc(ROOM * sizeof *w), *out = malloc(ROOM * sizeof *out);
    assert_non_null(in);
    assert_non_null(w);
    assert_non_null(out);
    nasc_rng r;
    nasc_rng_seed(&r, 31);
    for (int i = 0; i < ROOM; i++) in[i] = nasc_rng_normal(&r), w[i] = nasc_rng_normal(&r);
    static const nasc_dw_isa isas[] = {NASC_DW_ISA_AUTO, NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX512};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        const nasc_dw_shape *s = &bad[b].s;
        assert_true(x_numel(s) <= ROOM && y_numel(s) <= ROOM && w_numel(s) <= ROOM);
        if (nasc_dw_fd_supported(s)) fail_msg("nasc_dw_fd_supported takes a shape with %s", bad[b].why);
        for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
            for (int i = 0; i < ROOM; i++) out[i] = 12345.0f;
            assert_int_equal(nasc_dw_fwd_run(s, in, w, out, isas[k]), NASC_EINPUT);
            assert_int_equal(nasc_dw_bwd_data_run(s, in, w, out, isas[k]), NASC_EINPUT);
            for (int i = 0; i < ROOM; i++)
                if (out[i] != 12345.0f) fail_msg("%s: element %d written", bad[b].why, i);
        }
    }
    /* NULL pointers, the good shape */
    for (int i = 0; i < ROOM; i++) out[i] = 12345.0f;
    assert_int_equal(nasc_dw_fwd_run(NULL, in, w, out, NASC_DW_ISA_AUTO), NASC_EINPUT);
    assert_int_equal(nasc_dw_fwd_run(&good, NULL, w, out, NASC_DW_ISA_AUTO), NASC_EINPUT);
    assert_int_equal(nasc_dw_fwd_run(&good, in, NULL, out, NASC_DW_ISA_AUTO), NASC_EINPUT);
    assert_int_equal(nasc_dw_fwd_run(&good, in, w, NULL, NASC_DW_ISA_AUTO), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_data_run(NULL, in, w, out, NASC_DW_ISA_SCALAR), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_data_run(&good, NULL, w, out, NASC_DW_ISA_SCALAR), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_data_run(&good, in, NULL, out, NASC_DW_ISA_SCALAR), NASC_EINPUT);
    assert_int_equal(nasc_dw_bwd_data_run(&good, in, w, NULL, NASC_DW_ISA_SCALAR), NASC_EINPUT);
    for (int i = 0; i < ROOM; i++)
        if (out[i] != 12345.0f) fail_msg("NULL pointer: element %d written", i);
    /* AVX2, DIRECT and an unknown value are the portable loop: the SCALAR bits */
    size_t yn = y_numel(&good), xn = x_numel(&good);
    float *ref = malloc(ROOM * sizeof *ref);
    assert_non_null(ref);
    static const nasc_dw_isa portable[] = {NASC_DW_ISA_AVX2, NASC_DW_ISA_DIRECT, (nasc_dw_isa)42};
    for (int dir = 0; dir < 2; dir++) {
        size_t numel = dir == 0 ? yn : xn;
        if (dir == 0)
            assert_int_equal(nasc_dw_fwd_run(&good, in, w, ref, NASC_DW_ISA_SCALAR), NASC_OK);
        else
            assert_int_equal(nasc_dw_bwd_data_run(&good, in, w, ref, NASC_DW_ISA_SCALAR), NASC_OK);
        for (size_t k = 0; k < sizeof portable / sizeof portable[0]; k++) {
            for (size_t i = 0; i < numel; i++) out[i] = NAN;
            if (dir == 0)
                assert_int_equal(nasc_dw_fwd_run(&good, in, w, out, portable[k]), NASC_OK);
            else
                assert_int_equal(nasc_dw_bwd_data_run(&good, in, w, out, portable[k]), NASC_OK);
            assert_memory_equal(out, ref, numel * sizeof *out);
        }
    }
    free(ref);
    free(in);
    free(w);
    free(out);
    printf("  %zu unsupported shapes and 8 NULL pointers refused, nothing written; best path %s\n",
           sizeof bad / sizeof bad[0], isa_name(nasc_dw_isa_best()));
}

int main(void) {
    const char *filter = getenv("NASC_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_finite_difference),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_fd_api),
        cmocka_unit_test(test_fd_fixed),
        cmocka_unit_test(test_fd_random),
        cmocka_unit_test(test_fd_sweep),
        cmocka_unit_test(test_fd_adjoint),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("dwconv", tests, NULL, NULL));
}
