/* Average pooling backward on nChw16c (backend/avgpool.c) against a naive
 * double-precision reference written here:
 *
 *     dx[n, c, ih, iw] = sum over the windows (oh, ow) holding (ih, iw)
 *                        of dy[n, c, oh, ow] / count(oh, ow)
 *
 * a window kh x kw from (oh*sh - pt, ow*sw - pl), count its pixels inside
 * the input (counted pixel by pixel here, not with the kernel's formula),
 * the bottom and right pads implied by OH and OW. Every kernel run is on
 * the scalar path, and on the AVX-512 one when the CPU has avx512f (else a
 * NOTE says it was not tested); dx is filled with NaN first, so an element
 * left unwritten fails.
 *
 *  - fixed: the NASNet-like pools at batch 2 (16 channels at 28x28, 32 at
 *    14x14, 64 at 7x7; k3 s1 p1, and k3 s2 p1 with OH = (H+2-3)/2+1).
 *  - random: N_RANDOM shapes nasc_ap_supported takes (fixed seed): N 1..3,
 *    C 16/32/48, H and W 1..40 (half of them drawn from 1, 2, 3, 7, 8, 14,
 *    15, 28, 40), kh and kw 1..7, strides 1..3 per axis, pt in [0, kh-1],
 *    pl in [0, kw-1], OH and OW from a bottom / right pad in [0, k-1] (one
 *    draw in ten an output row or column more, which may start past the
 *    input). A third of the draws are the 3-wide, column-stride-1 windows
 *    of the kernel's fast path (avx512_row_w3) with pl cycling 0, 1, 2.
 *    nasc_ap_supported must agree with the definition (every window holds
 *    an input pixel) on every draw, and take at least half of them.
 *  - w3_sweep: the fast path's windows (kw 3, sw 1) at every width 1..24,
 *    28, 40, every pl 0..2 and every OW the kernel takes (1 to W + pl).
 *  - views: dy a channel slice (block 1) of a (N, C+32, OH, OW) nChw16c
 *    tensor whose other channels are NaN, images (C+32)*OH*OW apart: the
 *    result bit-identical to the dense run.
 *  - threads: 1, 2 and 3 OpenMP threads bit-identical (fixed shapes, a
 *    fifth of the random ones, shapes with fewer rows than threads), AUTO
 *    bit-identical to AVX512, and AVX2 / DIRECT / unknown isa values to
 *    SCALAR.
 *  - api: shapes the kernel does not take (C not a multiple of 16, C 0, N
 *    0, k 0 or 8, stride 0, pt >= kh, pl >= kw, negative pads, a last
 *    window wholly in the padding, H or W over 1024, OH or OW 0) are
 *    refused by nasc_ap_supported and by the run (NASC_EINPUT, dx left as
 *    it was), as are NULL pointers and a dy_image under C*OH*OW; the
 *    boundaries (the last window holding one pixel, H / W 1024, dy_image
 *    exactly C*OH*OW) are taken.
 *
 * Error: max |ours - ref| / max |ref| over dx, must be <= TOL.
 * NASC_TEST_FILTER=<cmocka pattern> runs a subset.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "avgpool.h"
#include "testutil.h"

#define TOL 1e-5
#define N_RANDOM 150

/* ---------------------------------------------------------------- */
/* Reference and helpers                                            */
/* ---------------------------------------------------------------- */

static int ri(nasc_rng *r, int lo, int hi) { return lo + (int)nasc_rng_below(r, (uint64_t)(hi - lo + 1)); }

static bool have_avx512(void) { return nasc_dw_isa_best() == NASC_DW_ISA_AVX512; }

static const char *isa_name(nasc_dw_isa i) {
    return i == NASC_DW_ISA_AVX512 ? "avx512"
           : i == NASC_DW_ISA_AVX2 ? "avx2"
           : i == NASC_DW_ISA_AUTO ? "auto"
                                   : "scalar";
}

static void note_path(void) {
    if (!have_avx512())
        print_message("  NOTE: no avx512f here (best path %s): the AVX-512 kernel (and its 3-wide fast path) is NOT "
                      "tested, only the scalar path\n",
                      isa_name(nasc_dw_isa_best()));
}

static size_t x_numel(const nasc_ap_shape *s) { return (size_t)s->n * s->c * s->h * s->w; }
static size_t y_numel(const nasc_ap_shape *s) { return (size_t)s->n * s->c * s->oh * s->ow; }

/* Index of (n, c, y, x) in an nChw16c tensor of cc channels, hh x ww. */
static size_t idx16(int n, int c, int y, int x, int cc, int hh, int ww) {
    return ((((size_t)n * (cc / 16) + c / 16) * hh + y) * ww + x) * 16 + c % 16;
}

static void shape_str(const nasc_ap_shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N%d C%d %dx%d -> %dx%d k%dx%d s%d,%d p%d,%d", s->n, s->c, s->h, s->w, s->oh, s->ow, s->kh,
             s->kw, s->sh, s->sw, s->pt, s->pl);
}

/* Input pixels of window o along one axis (size k, stride st, pad p, input
 * n), counted one by one. */
static int window_pixels(int o, int k, int st, int p, int n) {
    int cnt = 0;
    for (int j = 0; j < k; j++) {
        int64_t i = (int64_t)o * st - p + j;
        cnt += i >= 0 && i < n;
    }
    return cnt;
}

/* The definition of what the kernel takes (avgpool.h): the sizes, and
 * every window holds an input pixel. */
static bool want_supported(const nasc_ap_shape *s) {
    if (s->n < 1 || s->c < 16 || s->c % 16 || s->h < 1 || s->w < 1 || s->oh < 1 || s->ow < 1) return false;
    if (s->h > 1024 || s->w > 1024 || s->oh > 1024 || s->ow > 1024) return false;
    if (s->kh < 1 || s->kh > 7 || s->kw < 1 || s->kw > 7 || s->sh < 1 || s->sw < 1) return false;
    if (s->pt < 0 || s->pt >= s->kh || s->pl < 0 || s->pl >= s->kw) return false;
    for (int o = 0; o < s->oh; o++)
        if (window_pixels(o, s->kh, s->sh, s->pt, s->h) == 0) return false;
    for (int o = 0; o < s->ow; o++)
        if (window_pixels(o, s->kw, s->sw, s->pl, s->w) == 0) return false;
    return true;
}

/* dx in double, nChw16c, from dy (nChw16c, images dy_image floats apart). */
static void ref_bwd(const nasc_ap_shape *s, const float *dy, int64_t dy_image, double *dx) {
    memset(dx, 0, x_numel(s) * sizeof *dx);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++)
            for (int oh = 0; oh < s->oh; oh++)
                for (int ow = 0; ow < s->ow; ow++) {
                    int y0 = oh * s->sh - s->pt, x0 = ow * s->sw - s->pl, count = 0;
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++)
                            count += y0 + i >= 0 && y0 + i < s->h && x0 + j >= 0 && x0 + j < s->w;
                    assert_true(count > 0);
                    double g = (double)dy[(size_t)n * dy_image + idx16(0, c, oh, ow, s->c, s->oh, s->ow)] / count;
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int y = y0 + i, x = x0 + j;
                            if (y < 0 || y >= s->h || x < 0 || x >= s->w) continue;
                            dx[idx16(n, c, y, x, s->c, s->h, s->w)] += g;
                        }
                }
}

/* max |got - want| / max |want| (absolute when want is all zero); NaN
 * anywhere in got (an element left unwritten) gives NaN. */
static double rel_err(const float *got, const double *want, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (isnan(e)) return NAN;
        if (e > err) err = e;
    }
    return scale > 0 ? err / scale : err;
}

/* A case: the shape, a dense dy (uniform in [-1, 1)) and the reference dx. */
typedef struct apcase {
    nasc_ap_shape s;
    float *dy;
    double *ref;
} apcase;

static void apcase_init(apcase *t, const nasc_ap_shape *s, uint64_t seed) {
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    t->s = *s;
    t->dy = malloc(y_numel(s) * sizeof *t->dy);
    t->ref = malloc(x_numel(s) * sizeof *t->ref);
    assert_non_null(t->dy);
    assert_non_null(t->ref);
    for (size_t i = 0; i < y_numel(s); i++) t->dy[i] = 2.0f * nasc_rng_uniform(&r) - 1.0f;
    ref_bwd(s, t->dy, (int64_t)s->c * s->oh * s->ow, t->ref);
}

static void apcase_free(apcase *t) {
    free(t->dy);
    free(t->ref);
}

/* The kernel on dy (images dy_image apart) into dx, filled with NaN first. */
static void run(const nasc_ap_shape *s, const float *dy, int64_t dy_image, float *dx, nasc_dw_isa isa) {
    for (size_t i = 0; i < x_numel(s); i++) dx[i] = NAN;
    assert_int_equal(nasc_avgpool_bwd_run(s, dy, dy_image, dx, isa), NASC_OK);
}

typedef struct stats {
    double worst;
    int fails, runs;
} stats;

static int n_paths(void) { return have_avx512() ? 2 : 1; }
static const nasc_dw_isa paths[2] = {NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX512};

/* Shape s on each path at 1 thread against the reference; with
 * thr_hi > 1 the runs at 2..thr_hi threads bit-identical to it, AUTO to
 * AVX512 and the portable isa values to SCALAR; with views, dy as a
 * channel slice of a wider tensor bit-identical to the dense run. One line
 * per failure (or per path when verbose). */
static void check_shape(const nasc_ap_shape *s, uint64_t seed, int thr_hi, bool views, bool verbose, stats *st) {
    apcase t;
    apcase_init(&t, s, seed);
    size_t xn = x_numel(s);
    int64_t image = (int64_t)s->c * s->oh * s->ow;
    float *one = malloc(xn * sizeof *one), *more = malloc(xn * sizeof *more);
    assert_non_null(one);
    assert_non_null(more);
    char name[128];
    shape_str(s, name, sizeof name);
    int saved = omp_get_max_threads();
    /* the view: channel blocks [1, 1 + C/16) of C + 32 channels */
    float *wide = NULL;
    int64_t wide_image = (int64_t)(s->c + 32) * s->oh * s->ow;
    if (views) {
        size_t wn = (size_t)s->n * (size_t)wide_image;
        wide = malloc(wn * sizeof *wide);
        assert_non_null(wide);
        for (size_t i = 0; i < wn; i++) wide[i] = NAN;
        for (int n = 0; n < s->n; n++)
            memcpy(wide + (size_t)n * wide_image + (size_t)s->oh * s->ow * 16, t.dy + (size_t)n * image,
                   (size_t)image * sizeof *wide);
    }
    for (int p = 0; p < n_paths(); p++) {
        omp_set_num_threads(1);
        run(s, t.dy, image, one, paths[p]);
        double e = rel_err(one, t.ref, xn);
        bool bad = !(e <= TOL);
        if (bad || verbose) printf("  %-44s %-6s err %.2e%s\n", name, isa_name(paths[p]), e, bad ? "  FAIL" : "");
        if (!(e <= st->worst)) st->worst = e;
        st->fails += bad;
        st->runs++;
        for (int thr = 2; thr <= thr_hi; thr++) {
            omp_set_num_threads(thr);
            run(s, t.dy, image, more, paths[p]);
            if (memcmp(one, more, xn * sizeof *one)) {
                printf("  %-44s %-6s thr %d differs from thr 1  FAIL\n", name, isa_name(paths[p]), thr);
                st->fails++;
            }
        }
        omp_set_num_threads(1);
        if (thr_hi > 1) {
            static const nasc_dw_isa portable[] = {NASC_DW_ISA_AVX2, NASC_DW_ISA_DIRECT, (nasc_dw_isa)42};
            if (paths[p] == NASC_DW_ISA_AVX512 || !have_avx512()) {
                run(s, t.dy, image, more, NASC_DW_ISA_AUTO);
                if (memcmp(one, more, xn * sizeof *one)) {
                    printf("  %-44s auto differs from %s  FAIL\n", name, isa_name(paths[p]));
                    st->fails++;
                }
            }
            if (paths[p] == NASC_DW_ISA_SCALAR)
                for (size_t k = 0; k < sizeof portable / sizeof portable[0]; k++) {
                    run(s, t.dy, image, more, portable[k]);
                    if (memcmp(one, more, xn * sizeof *one)) {
                        printf("  %-44s isa %d differs from scalar  FAIL\n", name, (int)portable[k]);
                        st->fails++;
                    }
                }
        }
        if (views) {
            run(s, wide + (size_t)s->oh * s->ow * 16, wide_image, more, paths[p]);
            if (memcmp(one, more, xn * sizeof *one)) {
                printf("  %-44s %-6s view (C+32, block 1) differs from dense (err %.2e)  FAIL\n", name,
                       isa_name(paths[p]), rel_err(more, t.ref, xn));
                st->fails++;
            }
        }
    }
    omp_set_num_threads(saved);
    free(wide);
    free(one);
    free(more);
    apcase_free(&t);
}

/* Output size for input n, window k, stride st, pads a and b (0 when the
 * window does not fit). */
static int out_size(int n, int k, int st, int a, int b) {
    int room = n + a + b - k;
    return room < 0 ? 0 : room / st + 1;
}

static nasc_ap_shape mk(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr) {
    nasc_ap_shape s = {n,  c,  h,  w,  out_size(h, kh, sh, pt, pb), out_size(w, kw, sw, pl, pr),
                       kh, kw, sh, sw, pt,                          pl};
    return s;
}

/* The NASNet-like pools, batch 2: 3x3 stride 1 pad 1 and stride 2 pad 1. */
static int fixed_shapes(nasc_ap_shape *out) {
    static const int geo[][3] = {{16, 28, 28}, {32, 14, 14}, {64, 7, 7}};
    int k = 0;
    for (int g = 0; g < 3; g++) {
        int c = geo[g][0], h = geo[g][1], w = geo[g][2];
        out[k++] = mk(2, c, h, w, 3, 3, 1, 1, 1, 1, 1, 1);
        nasc_ap_shape s2 = {2, c, h, w, (h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1, 3, 3, 2, 2, 1, 1};
        out[k++] = s2;
    }
    return k;
}

/* A size 1..40, half the time one of the sizes of the NASNet-like layers
 * or a tiny one. */
static int draw_size(nasc_rng *r) {
    static const int edge[] = {1, 2, 3, 7, 8, 14, 15, 28, 40};
    return ri(r, 0, 1) ? edge[ri(r, 0, (int)(sizeof edge / sizeof edge[0]) - 1)] : ri(r, 1, 40);
}

typedef struct draw_stats {
    int drawn, accepted, w3[3], overshoot, overshoot_taken, gaps, cropped;
} draw_stats;

/* N_RANDOM shapes nasc_ap_supported takes (always the same ones), into out;
 * checks nasc_ap_supported against want_supported on every draw. */
static void random_shapes(nasc_ap_shape *out, draw_stats *ds) {
    nasc_rng r;
    nasc_rng_seed(&r, 20250301);
    memset(ds, 0, sizeof *ds);
    int w3_turn = 0;
    while (ds->accepted < N_RANDOM && ds->drawn < 10 * N_RANDOM) {
        nasc_ap_shape s;
        s.n = ri(&r, 1, 3);
        s.c = 16 * ri(&r, 1, 3);
        s.h = draw_size(&r);
        s.w = draw_size(&r);
        s.kh = ri(&r, 1, 7);
        s.sh = ri(&r, 1, 3);
        s.pt = ri(&r, 0, s.kh - 1);
        bool w3 = ri(&r, 0, 2) == 0;
        if (w3) {
            s.kw = 3, s.sw = 1, s.pl = w3_turn++ % 3;
        } else {
            s.kw = ri(&r, 1, 7);
            s.sw = ri(&r, 1, 3);
            s.pl = ri(&r, 0, s.kw - 1);
        }
        int pb = ri(&r, 0, s.kh - 1), pr = ri(&r, 0, s.kw - 1);
        s.oh = out_size(s.h, s.kh, s.sh, s.pt, pb);
        s.ow = out_size(s.w, s.kw, s.sw, s.pl, pr);
        bool over = ri(&r, 0, 9) == 0;
        if (over) {
            if (ri(&r, 0, 1))
                s.oh++;
            else
                s.ow++;
        }
        ds->drawn++;
        bool want = want_supported(&s), got = nasc_ap_supported(&s);
        if (want != got) {
            char name[128];
            shape_str(&s, name, sizeof name);
            fail_msg("nasc_ap_supported(%s) is %d, the definition says %d", name, got, want);
        }
        ds->overshoot += over;
        if (!got) continue;
        ds->overshoot_taken += over;
        if (w3) ds->w3[s.pl]++;
        ds->gaps += s.sh > s.kh || s.sw > s.kw;
        ds->cropped += (s.oh - 1) * s.sh - s.pt + s.kh < s.h || (s.ow - 1) * s.sw - s.pl + s.kw < s.w;
        out[ds->accepted++] = s;
    }
    assert_int_equal(ds->accepted, N_RANDOM);
    /* the test cannot go vacuous: most draws are run */
    assert_true(2 * ds->accepted >= ds->drawn);
    for (int p = 0; p < 3; p++) assert_true(ds->w3[p] >= 10);
}

/* ---------------------------------------------------------------- */
/* Tests                                                            */
/* ---------------------------------------------------------------- */

static void test_fixed(void **state) {
    (void)state;
    note_path();
    nasc_ap_shape shapes[8];
    int n = fixed_shapes(shapes);
    stats st = {0};
    for (int i = 0; i < n; i++) check_shape(&shapes[i], 100 + (uint64_t)i, 1, false, true, &st);
    assert_int_equal(st.fails, 0);
    assert_true(st.worst <= TOL);
}

static void test_random(void **state) {
    (void)state;
    note_path();
    static nasc_ap_shape shapes[N_RANDOM];
    draw_stats ds;
    random_shapes(shapes, &ds);
    stats st = {0};
    for (int i = 0; i < N_RANDOM; i++) check_shape(&shapes[i], 1000 + (uint64_t)i, 1, false, false, &st);
    printf("  %d shapes taken of %d drawn (%d of %d with an extra output row/column; kw 3 sw 1 with pl 0/1/2: "
           "%d/%d/%d; %d with a stride over the window, %d cropped) x %s: worst error %.2e, %d failure(s)\n",
           ds.accepted, ds.drawn, ds.overshoot_taken, ds.overshoot, ds.w3[0], ds.w3[1], ds.w3[2], ds.gaps,
           ds.cropped, have_avx512() ? "scalar/avx512" : "scalar", st.worst, st.fails);
    assert_int_equal(st.fails, 0);
    assert_true(st.worst <= TOL);
}

static void test_views(void **state) {
    (void)state;
    note_path();
    static nasc_ap_shape shapes[N_RANDOM + 8];
    draw_stats ds;
    random_shapes(shapes, &ds);
    int n = N_RANDOM + fixed_shapes(shapes + N_RANDOM);
    stats st = {0};
    int done = 0;
    for (int i = 0; i < n; i++) {
        if (i < N_RANDOM && i % 3) continue; /* a third of the random shapes, all the fixed ones */
        check_shape(&shapes[i], 5000 + (uint64_t)i, 1, true, false, &st);
        done++;
    }
    printf("  %d shapes, dy a slice of C+32 channels, x %s: %d failure(s)\n", done,
           have_avx512() ? "scalar/avx512" : "scalar", st.fails);
    assert_int_equal(st.fails, 0);
}

static void test_threads(void **state) {
    (void)state;
    note_path();
    static nasc_ap_shape shapes[N_RANDOM + 16];
    draw_stats ds;
    random_shapes(shapes, &ds);
    int n = N_RANDOM + fixed_shapes(shapes + N_RANDOM);
    /* fewer rows (tasks) than threads, and a few per thread */
    shapes[n++] = mk(1, 16, 1, 5, 3, 3, 1, 1, 1, 1, 1, 1);
    shapes[n++] = mk(1, 16, 2, 5, 3, 3, 1, 1, 1, 1, 1, 1);
    shapes[n++] = mk(1, 16, 4, 9, 2, 5, 2, 2, 1, 2, 0, 1);
    shapes[n++] = mk(2, 32, 5, 3, 5, 1, 3, 2, 4, 0, 2, 0);
    stats st = {0};
    int done = 0;
    for (int i = 0; i < n; i++) {
        if (i < N_RANDOM && i % 5) continue; /* a fifth of the random shapes */
        check_shape(&shapes[i], 7000 + (uint64_t)i, 3, false, false, &st);
        done++;
    }
    printf("  %d shapes x %s x 1-3 threads (and auto, avx2, direct, isa 42): %d failure(s)\n", done,
           have_avx512() ? "scalar/avx512" : "scalar", st.fails);
    assert_int_equal(st.fails, 0);
    assert_true(st.worst <= TOL);
}

/* The 3-wide, column-stride-1 fast path: every width 1..24 and 28, 40,
 * every pl 0..2 and every OW the kernel takes (1 to W + pl: cropping the
 * input on the right up to windows holding only its last column), with the
 * heights, kh, sh and pt cycling; one thread. */
static void test_w3_sweep(void **state) {
    (void)state;
    note_path();
    static const int ws[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
                             14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 28, 40};
    stats st = {0};
    int shapes = 0;
    for (size_t wi = 0; wi < sizeof ws / sizeof ws[0]; wi++)
        for (int pl = 0; pl <= 2; pl++)
            for (int ow = 1; ow <= ws[wi] + pl; ow++) {
                int h = 1 + shapes % 5, kh = 1 + shapes % 7, sh = 1 + shapes % 3, pt = shapes % kh;
                int oh = out_size(h, kh, sh, pt, kh - 1);
                if (oh < 1) oh = 1, pt = 0, kh = 1;
                nasc_ap_shape s = {1 + (shapes % 4 == 0), 16 * (1 + (shapes % 3 == 0)), h, ws[wi], oh, ow, kh, 3,
                                   sh, 1, pt, pl};
                if (!nasc_ap_supported(&s)) {
                    char name[128];
                    shape_str(&s, name, sizeof name);
                    fail_msg("nasc_ap_supported refuses %s", name);
                }
                check_shape(&s, 9000 + (uint64_t)shapes, 1, false, false, &st);
                shapes++;
            }
    printf("  %d shapes (kw 3, sw 1, every W, pl and OW) x %s: worst error %.2e, %d failure(s)\n", shapes,
           have_avx512() ? "scalar/avx512" : "scalar", st.worst, st.fails);
    assert_int_equal(st.fails, 0);
}

static void test_api(void **state) {
    (void)state;
    nasc_ap_shape good = mk(2, 32, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1);
    assert_true(nasc_ap_supported(&good));
    assert_false(nasc_ap_supported(NULL));
    struct {
        const char *why;
        nasc_ap_shape s;
    } bad[] = {
        {"C 24", mk(2, 24, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"C 8", mk(2, 8, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"C 17", mk(2, 17, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"C 0", mk(2, 0, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"C -16", mk(2, -16, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"N 0", mk(0, 32, 9, 10, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"kh 0", {2, 32, 9, 10, 9, 10, 0, 3, 1, 1, 0, 1}},
        {"kw 0", {2, 32, 9, 10, 9, 10, 3, 0, 1, 1, 1, 0}},
        {"kh 8", mk(2, 32, 9, 10, 8, 3, 1, 1, 1, 1, 1, 1)},
        {"kw 8", mk(2, 32, 9, 10, 3, 8, 1, 1, 1, 1, 1, 1)},
        {"sh 0", {2, 32, 9, 10, 9, 10, 3, 3, 0, 1, 1, 1}},
        {"sw 0", {2, 32, 9, 10, 9, 10, 3, 3, 1, 0, 1, 1}},
        {"sh -1", {2, 32, 9, 10, 1, 10, 3, 3, -1, 1, 1, 1}},
        {"pt = kh", {2, 32, 9, 10, 9, 10, 3, 3, 1, 1, 3, 1}},
        {"pl = kw", {2, 32, 9, 10, 9, 10, 3, 3, 1, 1, 1, 3}},
        {"pt -1", {2, 32, 9, 10, 9, 10, 3, 3, 1, 1, -1, 1}},
        {"pl -1", {2, 32, 9, 10, 9, 10, 3, 3, 1, 1, 1, -1}},
        {"last row wholly in padding", {2, 32, 9, 10, 11, 10, 3, 3, 1, 1, 1, 1}},
        {"last column wholly in padding", {2, 32, 9, 10, 9, 12, 3, 3, 1, 1, 1, 1}},
        {"last row in padding, stride 2", {2, 32, 9, 10, 6, 5, 3, 3, 2, 2, 1, 1}},
        {"oh far too large", {2, 32, 9, 10, 40, 10, 3, 3, 1, 1, 1, 1}},
        {"oh 0", {2, 32, 9, 10, 0, 10, 3, 3, 1, 1, 1, 1}},
        {"ow 0", {2, 32, 9, 10, 9, 0, 3, 3, 1, 1, 1, 1}},
        {"h 0", {2, 32, 0, 10, 1, 10, 3, 3, 1, 1, 1, 1}},
        {"w 0", {2, 32, 9, 0, 9, 1, 3, 3, 1, 1, 1, 1}},
        {"h 1025", mk(1, 16, 1025, 1, 1, 1, 1, 1, 0, 0, 0, 0)},
        {"w 1025", mk(1, 16, 1, 1025, 1, 1, 1, 1, 0, 0, 0, 0)},
        {"h 1025, oh 513", mk(1, 16, 1025, 1, 3, 1, 2, 1, 1, 0, 1, 0)},
        {"stride INT_MAX (windows past the input; overflows 32-bit arithmetic)", {1, 16, 4, 4, 3, 1, 3, 3, INT_MAX, 1, 0, 0}},
    };
    /* the boundaries are taken: the last windows holding one input pixel
     * (row 8 of 9, column 9 of 10), H and W 1024 */
    nasc_ap_shape edge[] = {
        {2, 32, 9, 10, 10, 11, 3, 3, 1, 1, 1, 1},  /* the last windows start on row 8, column 9 */
        {2, 32, 9, 10, 9, 10, 3, 3, 1, 1, 1, 1},   /* "same": the last windows hold 2 pixels */
        {1, 16, 9, 10, 5, 5, 3, 3, 2, 2, 2, 2},    /* stride 2: the last row starts on row 6, col 6 */
        {1, 16, 9, 10, 4, 4, 3, 3, 3, 3, 2, 2},    /* the last row starts on row 7, holds rows 7-8 */
        {1, 16, 9, 10, 5, 5, 1, 1, 2, 2, 0, 0},    /* gaps: rows / columns 1, 3..., in no window */
        {1, 16, 7, 7, 7, 7, 7, 7, 1, 1, 6, 6},     /* pt = kh-1: the first window holds one row */
        {1, 16, 1024, 1, 1024, 1, 1, 1, 1, 1, 0, 0},
        {1, 16, 1, 1024, 1, 1024, 1, 1, 1, 1, 0, 0},
    };
    /* bad[17] / bad[18]: one row / column past edge[0] */
    for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++) assert_true(want_supported(&edge[e]));
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) assert_false(want_supported(&bad[b].s));
    enum { ROOM = 2 * 64 * 41 * 41 + 16 * 1025 };
    float *dy = malloc(ROOM * sizeof *dy), *dx = malloc(ROOM * sizeof *dx);
    assert_non_null(dy);
    assert_non_null(dx);
    nasc_rng r;
    nasc_rng_seed(&r, 31);
    for (int i = 0; i < ROOM; i++) dy[i] = nasc_rng_normal(&r);
    static const nasc_dw_isa isas[] = {NASC_DW_ISA_AUTO, NASC_DW_ISA_SCALAR, NASC_DW_ISA_AVX512};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        const nasc_ap_shape *s = &bad[b].s;
        if (nasc_ap_supported(s)) fail_msg("nasc_ap_supported takes a shape with %s", bad[b].why);
        for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
            for (int i = 0; i < ROOM; i++) dx[i] = 12345.0f;
            /* a dy_image large enough for the shape's sizes */
            int64_t image = 64 * 41 * 41;
            if (nasc_avgpool_bwd_run(s, dy, image, dx, isas[k]) != NASC_EINPUT)
                fail_msg("%s, isa %s: not NASC_EINPUT", bad[b].why, isa_name(isas[k]));
            for (int i = 0; i < ROOM; i++)
                if (dx[i] != 12345.0f) fail_msg("%s: element %d written", bad[b].why, i);
        }
    }
    /* NULL pointers and a short dy_image, the good shape */
    int64_t image = (int64_t)good.c * good.oh * good.ow;
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        for (int i = 0; i < ROOM; i++) dx[i] = 12345.0f;
        assert_int_equal(nasc_avgpool_bwd_run(NULL, dy, image, dx, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, NULL, image, dx, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, image, NULL, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, image - 1, dx, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, image - 16, dx, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, 0, dx, isas[k]), NASC_EINPUT);
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, -image, dx, isas[k]), NASC_EINPUT);
        for (int i = 0; i < ROOM; i++)
            if (dx[i] != 12345.0f) fail_msg("NULL pointer or short dy_image, isa %s: element %d written",
                                            isa_name(isas[k]), i);
        /* exactly C*OH*OW is taken */
        assert_int_equal(nasc_avgpool_bwd_run(&good, dy, image, dx, isas[k]), NASC_OK);
    }
    free(dy);
    free(dx);
    /* the edge shapes are taken and right */
    stats st = {0};
    for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++) {
        if (!nasc_ap_supported(&edge[e])) {
            char name[128];
            shape_str(&edge[e], name, sizeof name);
            fail_msg("nasc_ap_supported refuses %s", name);
        }
        check_shape(&edge[e], 300 + e, 1, false, false, &st);
    }
    assert_int_equal(st.fails, 0);
    printf("  %zu unsupported shapes, NULL pointers and short dy_image refused, nothing written; %zu boundary "
           "shapes taken; best path %s\n",
           sizeof bad / sizeof bad[0], sizeof edge / sizeof edge[0], isa_name(nasc_dw_isa_best()));
}

int main(void) {
    const char *filter = getenv("NASC_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),       cmocka_unit_test(test_fixed), cmocka_unit_test(test_random),
        cmocka_unit_test(test_w3_sweep),  cmocka_unit_test(test_views), cmocka_unit_test(test_threads),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("avgpool", tests, NULL, NULL));
}
