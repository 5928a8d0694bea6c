/* dwconv_bench - depthwise convolution backward-weights: oneDNN 2.6's own
 * primitive against nasc's kernel (backend/dwconv.c), in the same run.
 *
 * For each case (batch 64, 64 channels, 14x14, kernels 3/5/7, stride 1 and
 * 2, "same" padding; 1 thread, then 2) it creates oneDNN's backward-weights
 * primitive three ways, each hinted by a forward-training primitive with the
 * same descriptors: activations format_tag_any (oneDNN's own choice), fixed
 * nChw8c and fixed nchw (the two layouts the backend runs nets in). It
 * prints each implementation's name and GFLOP/s (FLOPs = 2*N*C*OH*OW*kh*kw),
 * ours on nChw8c and on nchw, the ratios ours/oneDNN for the same layout,
 * and the largest difference between any two results relative to the
 * largest |dW|. Layout conversions are done once, outside the timing.
 *
 *     dwconv_bench                 the default table
 *     dwconv_bench N C H W k s d   one case (k x k, stride s, dilation d)
 *     dwconv_bench N C H W k s d t   the same at t threads only
 *     dwconv_bench paths [N [t]]   ours only, AVX2 path against AVX-512 path
 *                                  in each layout, on NASNet-like layers (16
 *                                  channels at 28x28, 32 at 14x14, 64 at 7x7;
 *                                  3x3, 5x5, 7x7 at stride 1, 3x3 and 5x5 at
 *                                  stride 2 from 28x28), batch N (32) at t
 *                                  threads (1, as a net runs it inside its
 *                                  parallel region); each result checked
 *                                  against the direct summation
 *     dwconv_bench fd [N [t [r]]]  forward and backward-data on nChw16c
 *                                  (backend/dwconv_fd.c): oneDNN's
 *                                  depthwise forward_training and
 *                                  backward_data primitives (src/dst
 *                                  nChw16c, weights format_tag_any and
 *                                  reordered once to what each chose; the
 *                                  16g column says whether both chose
 *                                  Goihw16g) against nasc_dw_fwd_run and
 *                                  nasc_dw_bwd_data_run (weights Goihw16g)
 *                                  on NASNet-like layers (16 channels at
 *                                  28x28, 32 at 14x14, 64 at 7x7, k 3/5/7
 *                                  stride 1; 32 at 28x28 and 64 at 14x14,
 *                                  k 3/5/7 stride 2; "same" padding), batch
 *                                  N (32), t threads (1), r rounds (31):
 *                                  each round times the four in turn (a
 *                                  sample: ~5 ms of calls); prints the
 *                                  medians in ms a call, oneDNN/ours, the
 *                                  implementations oneDNN chose and the
 *                                  largest difference between ours and
 *                                  oneDNN's result relative to the largest
 *                                  |oneDNN| (outputs of the last calls)
 *
 * Two threads on two cores: another process running OpenMP threads at the
 * same time makes the spinning barriers of both stall (results fall to a
 * few GFLOP/s for oneDNN and us alike); measure on a quiet machine.
 *
 * Exits 1 if a oneDNN call fails or the results disagree (> 1e-4). The
 * paths and fd tables need an AVX-512 CPU to mean anything (elsewhere both
 * paths columns run the best path there is, and fd times our portable
 * loops).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "dwconv.h"

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        dnnl_status_t st_ = (call);                                                                                    \
        if (st_ != dnnl_success) {                                                                                     \
            fprintf(stderr, "%s:%d: %s failed: %s (try ONEDNN_VERBOSE=check)\n", __FILE__, __LINE__, #call,           \
                    dnnl_status2str(st_));                                                                             \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

typedef struct bench_case {
    int n, c, h, w, k, s, d;
} bench_case;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per call: the best of 5 rounds, each >= 0.1 s of calls (slow
 * reference implementations: the best of 3 single calls). */
typedef void (*bench_fn)(void *ud);
static double time_it(bench_fn f, void *ud) {
    double t0 = now();
    f(ud);
    double first = now() - t0;
    if (first > 0.05) {
        double best = first;
        for (int i = 0; i < 2; i++) {
            t0 = now();
            f(ud);
            if (now() - t0 < best) best = now() - t0;
        }
        return best;
    }
    for (int i = 0; i < 2; i++) f(ud);
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        int iters = 0;
        double t;
        t0 = now();
        do {
            f(ud);
            iters++;
            t = now() - t0;
        } while (t < 0.1);
        if (t / iters < best) best = t / iters;
    }
    return best;
}

typedef struct onednn_run {
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[3];
} onednn_run;

static void run_onednn(void *ud) {
    onednn_run *r = ud;
    CHECK(dnnl_primitive_execute(r->prim, r->stream, 3, r->args));
    CHECK(dnnl_stream_wait(r->stream));
}

/* Ours as a net runs it: scratch allocated once, reused by every call. */
typedef struct ours_run {
    nasc_dw_shape s;
    nasc_dw_layout layout;
    const float *x, *dy;
    float *dw;
    void *scratch;
    size_t bytes;
    nasc_dw_isa isa;
} ours_run;

static void run_ours(void *ud) {
    ours_run *r = ud;
    if (nasc_dw_bwd_weights_run(&r->s, r->layout, r->x, r->dy, r->dw, r->isa, r->scratch, r->bytes)) {
        fprintf(stderr, "nasc_dw_bwd_weights_run refused the case\n");
        exit(1);
    }
}

/* A memory in md, with its data copied (reordered) from user memory src. */
static dnnl_memory_t like(dnnl_engine_t eng, dnnl_stream_t st, dnnl_memory_t src, const dnnl_memory_desc_t *md) {
    const dnnl_memory_desc_t *smd;
    CHECK(dnnl_memory_get_memory_desc(src, &smd));
    if (dnnl_memory_desc_equal(smd, md)) return NULL;
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, smd, eng, md, eng, NULL));
    dnnl_primitive_t r;
    CHECK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, m}};
    CHECK(dnnl_primitive_execute(r, st, 2, a));
    CHECK(dnnl_stream_wait(st));
    CHECK(dnnl_primitive_destroy(r));
    CHECK(dnnl_primitive_desc_destroy(rpd));
    return m;
}

static void *data_of(dnnl_memory_t m) {
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    return p;
}

static float frand(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* oneDNN's backward-weights for case bc with activations in src_md/dst_md
 * (format_tag_any or fixed), hinted by a forward-training primitive with the
 * same descriptors. Times it on x8/dy8 (nChw8c; reordered once, outside
 * the timing, if oneDNN wants another layout), sets *impl (oneDNN's
 * string), writes dW as goihw into dw_out, returns seconds per call. */
static double time_onednn(dnnl_engine_t eng, dnnl_stream_t st, const nasc_dw_shape *s, const dnnl_memory_desc_t *src_md,
                          const dnnl_memory_desc_t *dst_md, dnnl_memory_t x8, dnnl_memory_t dy8, const char **impl,
                          float *dw_out) {
    dnnl_dims_t wei_d = {s->c, 1, 1, s->kh, s->kw};
    dnnl_dims_t strides = {s->sh, s->sw}, dil = {s->dh - 1, s->dw - 1}, pad = {s->pt, s->pl};
    dnnl_dims_t pad_r = {(s->oh - 1) * s->sh + s->dh * (s->kh - 1) - s->pt - s->h + 1,
                         (s->ow - 1) * s->sw + s->dw * (s->kw - 1) - s->pl - s->w + 1};
    dnnl_memory_desc_t wei_any, wei_plain;
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 5, wei_d, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_plain, 5, wei_d, dnnl_f32, dnnl_goihw));
    dnnl_convolution_desc_t fd, bd;
    CHECK(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, src_md,
                                                     &wei_any, NULL, dst_md, strides, dil, pad, pad_r));
    dnnl_primitive_desc_t fpd, bpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CHECK(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, src_md, &wei_any, NULL,
                                                              dst_md, strides, dil, pad, pad_r));
    CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    CHECK(dnnl_primitive_desc_query(bpd, dnnl_query_impl_info_str, 0, impl));

    dnnl_memory_t xs = like(eng, st, x8, dnnl_primitive_desc_query_md(bpd, dnnl_query_src_md, 0));
    dnnl_memory_t gs = like(eng, st, dy8, dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0));
    dnnl_memory_t dwm;
    CHECK(dnnl_memory_create(&dwm, dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_weights_md, 0), eng,
                             DNNL_MEMORY_ALLOCATE));
    onednn_run od = {NULL, st,
                     {{DNNL_ARG_SRC, xs ? xs : x8}, {DNNL_ARG_DIFF_DST, gs ? gs : dy8}, {DNNL_ARG_DIFF_WEIGHTS, dwm}}};
    CHECK(dnnl_primitive_create(&od.prim, bpd));
    double t = time_it(run_onednn, &od);
    dnnl_memory_t dwr = like(eng, st, dwm, &wei_plain);
    memcpy(dw_out, data_of(dwr ? dwr : dwm), (size_t)s->c * s->kh * s->kw * sizeof *dw_out);

    CHECK(dnnl_primitive_destroy(od.prim));
    dnnl_memory_t mems[] = {xs, gs, dwm, dwr};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) CHECK(dnnl_memory_destroy(mems[i]));
    CHECK(dnnl_primitive_desc_destroy(bpd));
    CHECK(dnnl_primitive_desc_destroy(fpd));
    return t;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (isnan(e)) return e; /* a NaN shows */
        if (e > err) err = e;
    }
    return err / (scale > 0 ? scale : 1);
}

/* One case at the current thread count; returns 0 when the results agree. */
static int bench_one(dnnl_engine_t eng, dnnl_stream_t st, const bench_case *bc, int threads) {
    int p = bc->d * (bc->k - 1) / 2;
    int oh = (bc->h + 2 * p - bc->d * (bc->k - 1) - 1) / bc->s + 1;
    int ow = (bc->w + 2 * p - bc->d * (bc->k - 1) - 1) / bc->s + 1;
    nasc_dw_shape s = {bc->n, bc->c, bc->h, bc->w, oh, ow, bc->k, bc->k, bc->s, bc->s, p, p, bc->d, bc->d};
    dnnl_dims_t src_d = {bc->n, bc->c, bc->h, bc->w}, dst_d = {bc->n, bc->c, oh, ow};
    dnnl_memory_desc_t src_any, dst_any, src_8c, dst_8c, src_pl, dst_pl;
    CHECK(dnnl_memory_desc_init_by_tag(&src_any, 4, src_d, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_d, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&src_8c, 4, src_d, dnnl_f32, dnnl_nChw8c));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_8c, 4, dst_d, dnnl_f32, dnnl_nChw8c));
    CHECK(dnnl_memory_desc_init_by_tag(&src_pl, 4, src_d, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_pl, 4, dst_d, dnnl_f32, dnnl_nchw));

    /* inputs in nChw8c, random */
    dnnl_memory_t x8, dy8;
    CHECK(dnnl_memory_create(&x8, &src_8c, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&dy8, &dst_8c, eng, DNNL_MEMORY_ALLOCATE));
    float *xv = data_of(x8), *dyv = data_of(dy8);
    size_t xn = dnnl_memory_desc_get_size(&src_8c) / sizeof(float);
    size_t yn = dnnl_memory_desc_get_size(&dst_8c) / sizeof(float);
    unsigned seed = 12345;
    for (size_t i = 0; i < xn; i++) xv[i] = frand(&seed);
    for (size_t i = 0; i < yn; i++) dyv[i] = frand(&seed);
    /* the same values in NCHW, for our plain path */
    int cb = (bc->c + 7) / 8;
    float *xp = malloc((size_t)bc->n * bc->c * bc->h * bc->w * sizeof *xp);
    float *dyp = malloc((size_t)bc->n * bc->c * oh * ow * sizeof *dyp);
    for (int n = 0; n < bc->n; n++)
        for (int c = 0; c < bc->c; c++) {
            for (int i = 0; i < bc->h * bc->w; i++)
                xp[((size_t)n * bc->c + c) * bc->h * bc->w + i] =
                    xv[(((size_t)n * cb + c / 8) * bc->h * bc->w + i) * 8 + c % 8];
            for (int i = 0; i < oh * ow; i++)
                dyp[((size_t)n * bc->c + c) * oh * ow + i] = dyv[(((size_t)n * cb + c / 8) * oh * ow + i) * 8 + c % 8];
        }

    size_t wn = (size_t)bc->c * bc->k * bc->k;
    float *ref_any = malloc(wn * sizeof(float)), *ref_8c = malloc(wn * sizeof(float));
    float *ref_pl = malloc(wn * sizeof(float));
    float *dw8 = malloc(wn * sizeof *dw8), *dwp = malloc(wn * sizeof *dwp);
    const char *impl_any, *impl_8c, *impl_pl;
    double t_any = time_onednn(eng, st, &s, &src_any, &dst_any, x8, dy8, &impl_any, ref_any);
    double t_8c = time_onednn(eng, st, &s, &src_8c, &dst_8c, x8, dy8, &impl_8c, ref_8c);
    double t_pl = time_onednn(eng, st, &s, &src_pl, &dst_pl, x8, dy8, &impl_pl, ref_pl);

    size_t bytes = nasc_dw_scratch_bytes(&s, threads);
    void *scratch = aligned_alloc(64, bytes);
    if (!scratch) {
        fprintf(stderr, "dwconv_bench: out of memory (%zu bytes of scratch)\n", bytes);
        exit(1);
    }
    ours_run o8 = {s, NASC_DW_NCHW8C, xv, dyv, dw8, scratch, bytes, NASC_DW_ISA_AUTO};
    ours_run op = {s, NASC_DW_NCHW, xp, dyp, dwp, scratch, bytes, NASC_DW_ISA_AUTO};
    double t8 = time_it(run_ours, &o8), tp = time_it(run_ours, &op);
    free(scratch);

    double err = fmax(fmax(rel_err(dw8, ref_any, wn), rel_err(dwp, ref_any, wn)),
                      fmax(rel_err(ref_8c, ref_any, wn), rel_err(ref_pl, ref_any, wn)));
    double flops = 2.0 * bc->n * bc->c * oh * ow * bc->k * bc->k, g = flops * 1e-9;
    char name[32];
    snprintf(name, sizeof name, "%dx%d s%d d%d", bc->k, bc->k, bc->s, bc->d);
    printf("%-3d %-10s | %-18s %6.1f | %-18s %6.1f | %-18s %6.1f | %6.1f %6.1f | %6.1fx %6.1fx | %7.1e\n", threads,
           name, impl_any, g / t_any, impl_8c, g / t_8c, impl_pl, g / t_pl, g / t8, g / tp, t_8c / t8, t_pl / tp, err);
    fflush(stdout);

    free(ref_any), free(ref_8c), free(ref_pl), free(dw8), free(dwp), free(xp), free(dyp);
    CHECK(dnnl_memory_destroy(x8));
    CHECK(dnnl_memory_destroy(dy8));
    return err > 1e-4;
}

static const char *isa_str(nasc_dw_isa i) {
    return i == NASC_DW_ISA_AVX512 ? "avx512" : i == NASC_DW_ISA_AVX2 ? "avx2" : "scalar";
}

/* t (N, C, hh, ww) -> layout (blocked: padding lanes zero). */
static float *to_layout(const float *t, int n, int c, int hh, int ww, nasc_dw_layout layout) {
    int blk = layout == NASC_DW_NCHW16C ? 16 : 8, cb = (c + blk - 1) / blk;
    size_t numel = layout == NASC_DW_NCHW ? (size_t)n * c * hh * ww : (size_t)n * cb * hh * ww * blk;
    float *f = calloc(numel, sizeof *f);
    if (!f) {
        fprintf(stderr, "dwconv_bench: out of memory\n");
        exit(1);
    }
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hh * ww; i++) {
                float v = t[((size_t)b * c + ch) * hh * ww + i];
                if (layout == NASC_DW_NCHW)
                    f[((size_t)b * c + ch) * hh * ww + i] = v;
                else
                    f[(((size_t)b * cb + ch / blk) * hh * ww + i) * blk + ch % blk] = v;
            }
    return f;
}

/* Ours on the AVX2 and AVX-512 paths, in each layout, on the depthwise
 * layers of a NASNet-like net at batch n (16 channels at 28x28, 32 at
 * 14x14, 64 at 7x7; "same" padding), with scratch planned once per case by
 * nasc_dw_scratch_bytes as a net plans it. Prints GFLOP/s and the largest
 * difference from the direct summation relative to the largest |dW|;
 * returns the number of cases over 1e-4. */
static int bench_paths(int n, int threads) {
    static const bench_case cases[] = {
        {0, 16, 28, 28, 3, 1, 1}, {0, 16, 28, 28, 5, 1, 1}, {0, 16, 28, 28, 7, 1, 1}, {0, 32, 14, 14, 3, 1, 1},
        {0, 32, 14, 14, 5, 1, 1}, {0, 32, 14, 14, 7, 1, 1}, {0, 64, 7, 7, 3, 1, 1},   {0, 64, 7, 7, 5, 1, 1},
        {0, 64, 7, 7, 7, 1, 1},   {0, 32, 28, 28, 3, 2, 1}, {0, 32, 28, 28, 5, 2, 1},
    };
    static const nasc_dw_layout layouts[] = {NASC_DW_NCHW16C, NASC_DW_NCHW8C, NASC_DW_NCHW};
    static const char *const lnames[] = {"nChw16c", "nChw8c", "nchw"};
    omp_set_num_threads(threads);
    printf("nasc kernel by path, GFLOP/s; N=%d, %d thread(s), best path on this CPU %s\n", n, threads,
           isa_str(nasc_dw_isa_best()));
    printf("%-8s %-14s | %7s %7s | %8s | %s\n", "layout", "case", "avx2", "avx512", "512/avx2", "max err");
    int bad = 0;
    for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const bench_case *bc = &cases[i];
            int p = bc->d * (bc->k - 1) / 2;
            int oh = (bc->h + 2 * p - bc->d * (bc->k - 1) - 1) / bc->s + 1;
            int ow = (bc->w + 2 * p - bc->d * (bc->k - 1) - 1) / bc->s + 1;
            nasc_dw_shape s = {n, bc->c, bc->h, bc->w, oh, ow, bc->k, bc->k, bc->s, bc->s, p, p, bc->d, bc->d};
            size_t xn = (size_t)n * bc->c * bc->h * bc->w, yn = (size_t)n * bc->c * oh * ow;
            size_t wn = (size_t)bc->c * bc->k * bc->k;
            float *xp = malloc(xn * sizeof *xp), *yp = malloc(yn * sizeof *yp);
            float *ref = malloc(wn * sizeof *ref), *dw = malloc(wn * sizeof *dw);
            size_t bytes = nasc_dw_scratch_bytes(&s, threads);
            void *scratch = aligned_alloc(64, bytes);
            if (!xp || !yp || !ref || !dw || !scratch) {
                fprintf(stderr, "dwconv_bench: out of memory\n");
                exit(1);
            }
            unsigned seed = 12345;
            for (size_t e = 0; e < xn; e++) xp[e] = frand(&seed);
            for (size_t e = 0; e < yn; e++) yp[e] = frand(&seed);
            float *x = to_layout(xp, n, bc->c, bc->h, bc->w, layouts[l]);
            float *dy = to_layout(yp, n, bc->c, oh, ow, layouts[l]);
            ours_run direct = {s, layouts[l], x, dy, ref, NULL, 0, NASC_DW_ISA_DIRECT};
            run_ours(&direct);
            double gf[2], err = 0;
            nasc_dw_isa isas[2] = {NASC_DW_ISA_AVX2, NASC_DW_ISA_AVX512};
            for (int k = 0; k < 2; k++) {
                ours_run r = {s, layouts[l], x, dy, dw, scratch, bytes, isas[k]};
                gf[k] = 2.0 * n * bc->c * oh * ow * bc->k * bc->k * 1e-9 / time_it(run_ours, &r);
                err = fmax(err, rel_err(dw, ref, wn));
            }
            char name[32];
            snprintf(name, sizeof name, "C%d %dx%d %dx%d s%d", bc->c, bc->h, bc->w, bc->k, bc->k, bc->s);
            printf("%-8s %-14s | %7.1f %7.1f | %7.2fx | %7.1e\n", lnames[l], name, gf[0], gf[1], gf[1] / gf[0], err);
            fflush(stdout);
            bad += err > 1e-4;
            free(xp), free(yp), free(ref), free(dw), free(scratch), free(x), free(dy);
        }
    return bad;
}

/* ---------------------------------------------------------------- */
/* fd: forward and backward-data against oneDNN (backend/dwconv_fd.c) */
/* ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Ours, forward or backward-data, on nChw16c with Goihw16g weights. */
typedef struct fd_ours_run {
    nasc_dw_shape s;
    bool bwd;
    const float *src, *w;
    float *dst;
} fd_ours_run;

static void run_fd_ours(void *ud) {
    fd_ours_run *r = ud;
    nasc_status st = r->bwd ? nasc_dw_bwd_data_run(&r->s, r->src, r->w, r->dst, NASC_DW_ISA_AUTO)
                            : nasc_dw_fwd_run(&r->s, r->src, r->w, r->dst, NASC_DW_ISA_AUTO);
    if (st) {
        fprintf(stderr, "dwconv_bench: nasc_dw_%s_run refused the case\n", r->bwd ? "bwd_data" : "fwd");
        exit(1);
    }
}

/* Calls of f per timed sample: enough for a sample of ~5 ms (after one
 * warm-up call). */
static int reps_for(bench_fn f, void *ud) {
    f(ud);
    double t0 = now();
    f(ud);
    double t = now() - t0;
    int reps = t > 0 ? (int)(0.005 / t) + 1 : 1000;
    return reps > 1000 ? 1000 : reps;
}

static double sample(bench_fn f, void *ud, int reps) {
    double t0 = now();
    for (int i = 0; i < reps; i++) f(ud);
    return (now() - t0) / reps;
}

/* oneDNN's depthwise forward_training and backward_data (src/dst nChw16c,
 * weights format_tag_any, reordered once to what each chose) against
 * nasc_dw_fwd_run and nasc_dw_bwd_data_run (weights in Goihw16g) on the
 * NASNet-like layers at batch n: for each of `rounds` rounds, one sample
 * of each of the four in turn; prints the medians (ms a call), the ratios
 * oneDNN/ours, oneDNN's implementations and the largest difference between
 * ours and oneDNN's result relative to the largest |oneDNN|. Returns the
 * number of cases over 1e-4. */
static int bench_fd(int n, int threads, int rounds) {
    static const bench_case cases[] = {
        {0, 16, 28, 28, 3, 1, 1}, {0, 16, 28, 28, 5, 1, 1}, {0, 16, 28, 28, 7, 1, 1}, {0, 32, 14, 14, 3, 1, 1},
        {0, 32, 14, 14, 5, 1, 1}, {0, 32, 14, 14, 7, 1, 1}, {0, 64, 7, 7, 3, 1, 1},   {0, 64, 7, 7, 5, 1, 1},
        {0, 64, 7, 7, 7, 1, 1},   {0, 32, 28, 28, 3, 2, 1}, {0, 32, 28, 28, 5, 2, 1}, {0, 32, 28, 28, 7, 2, 1},
        {0, 64, 14, 14, 3, 2, 1}, {0, 64, 14, 14, 5, 2, 1}, {0, 64, 14, 14, 7, 2, 1},
    };
    if (n < 1 || threads < 1 || rounds < 1) {
        fprintf(stderr, "usage: dwconv_bench fd [N [threads [rounds]]] (each >= 1)\n");
        exit(2);
    }
    omp_set_num_threads(threads);
    const dnnl_version_t *v = dnnl_version();
    printf("depthwise conv forward and backward-data on nChw16c, ms a call (median of %d rounds); oneDNN %d.%d.%d, "
           "N=%d, %d thread(s), nasc path %s\n",
           rounds, v->major, v->minor, v->patch, n, threads,
           nasc_dw_isa_best() == NASC_DW_ISA_AVX512 ? "avx512" : "scalar (no avx512f)");
    printf("%-16s | %-20s %8s %8s %6s | %-20s %8s %8s %6s | %3s | %s\n", "case", "oneDNN fwd", "dnnl ms", "ours ms",
           "ratio", "oneDNN bwd-data", "dnnl ms", "ours ms", "ratio", "16g", "max err fwd  bwd");
    dnnl_engine_t eng;
    dnnl_stream_t st;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    double *samples = malloc((size_t)4 * rounds * sizeof *samples);
    if (!samples) {
        fprintf(stderr, "dwconv_bench: out of memory\n");
        exit(1);
    }
    int bad = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bench_case *bc = &cases[ci];
        int k = bc->k, p = k / 2;
        int oh = (bc->h + 2 * p - k) / bc->s + 1, ow = (bc->w + 2 * p - k) / bc->s + 1;
        nasc_dw_shape s = {n, bc->c, bc->h, bc->w, oh, ow, k, k, bc->s, bc->s, p, p, 1, 1};
        if (!nasc_dw_fd_supported(&s)) {
            fprintf(stderr, "dwconv_bench: nasc_dw_fd_supported refuses a case\n");
            exit(1);
        }
        dnnl_dims_t src_d = {n, bc->c, bc->h, bc->w}, dst_d = {n, bc->c, oh, ow}, wei_d = {bc->c, 1, 1, k, k};
        dnnl_dims_t strides = {bc->s, bc->s}, pad = {p, p};
        dnnl_dims_t pad_r = {(oh - 1) * bc->s + k - 1 - p - bc->h + 1, (ow - 1) * bc->s + k - 1 - p - bc->w + 1};
        dnnl_memory_desc_t src_md, dst_md, wei_any, wei_plain, wei_16g;
        CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_d, dnnl_f32, dnnl_nChw16c));
        CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_d, dnnl_f32, dnnl_nChw16c));
        CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 5, wei_d, dnnl_f32, dnnl_format_tag_any));
        CHECK(dnnl_memory_desc_init_by_tag(&wei_plain, 5, wei_d, dnnl_f32, dnnl_goihw));
        CHECK(dnnl_memory_desc_init_by_tag(&wei_16g, 5, wei_d, dnnl_f32, dnnl_Goihw16g));
        dnnl_convolution_desc_t fdesc, bdesc;
        CHECK(dnnl_convolution_forward_desc_init(&fdesc, dnnl_forward_training, dnnl_convolution_direct, &src_md,
                                                 &wei_any, NULL, &dst_md, strides, pad, pad_r));
        CHECK(dnnl_convolution_backward_data_desc_init(&bdesc, dnnl_convolution_direct, &src_md, &wei_any, &dst_md,
                                                       strides, pad, pad_r));
        dnnl_primitive_desc_t fpd, bpd;
        CHECK(dnnl_primitive_desc_create(&fpd, &fdesc, NULL, eng, NULL));
        CHECK(dnnl_primitive_desc_create(&bpd, &bdesc, NULL, eng, fpd));
        const char *fimpl, *bimpl;
        CHECK(dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &fimpl));
        CHECK(dnnl_primitive_desc_query(bpd, dnnl_query_impl_info_str, 0, &bimpl));
        const dnnl_memory_desc_t *fwei = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *bwei = dnnl_primitive_desc_query_md(bpd, dnnl_query_weights_md, 0);
        bool both_16g = dnnl_memory_desc_equal(fwei, &wei_16g) && dnnl_memory_desc_equal(bwei, &wei_16g);

        /* x, dy (nChw16c) and w (goihw), random; w reordered once to what
         * each primitive chose and to our Goihw16g */
        dnnl_memory_t xm, dym, wm, ym, dxm;
        CHECK(dnnl_memory_create(&xm, &src_md, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&dym, &dst_md, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&wm, &wei_plain, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&ym, &dst_md, eng, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_memory_create(&dxm, &src_md, eng, DNNL_MEMORY_ALLOCATE));
        size_t xn = dnnl_memory_desc_get_size(&src_md) / sizeof(float);
        size_t yn = dnnl_memory_desc_get_size(&dst_md) / sizeof(float);
        size_t wn = (size_t)bc->c * k * k;
        unsigned seed = 12345;
        float *xv = data_of(xm), *dyv = data_of(dym), *wv = data_of(wm);
        for (size_t i = 0; i < xn; i++) xv[i] = frand(&seed);
        for (size_t i = 0; i < yn; i++) dyv[i] = frand(&seed);
        for (size_t i = 0; i < wn; i++) wv[i] = frand(&seed);
        dnnl_memory_t fw = like(eng, st, wm, fwei), bw = like(eng, st, wm, bwei), ow16 = like(eng, st, wm, &wei_16g);
        float *y_ours = aligned_alloc(64, yn * sizeof(float)), *dx_ours = aligned_alloc(64, xn * sizeof(float));
        if (!y_ours || !dx_ours) {
            fprintf(stderr, "dwconv_bench: out of memory\n");
            exit(1);
        }

        onednn_run f_dnnl = {NULL, st, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, fw ? fw : wm}, {DNNL_ARG_DST, ym}}};
        onednn_run b_dnnl = {
            NULL, st, {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, bw ? bw : wm}, {DNNL_ARG_DIFF_SRC, dxm}}};
        CHECK(dnnl_primitive_create(&f_dnnl.prim, fpd));
        CHECK(dnnl_primitive_create(&b_dnnl.prim, bpd));
        const float *w16 = data_of(ow16 ? ow16 : wm);
        fd_ours_run f_ours = {s, false, xv, w16, y_ours}, b_ours = {s, true, dyv, w16, dx_ours};

        bench_fn fns[4] = {run_onednn, run_fd_ours, run_onednn, run_fd_ours};
        void *uds[4] = {&f_dnnl, &f_ours, &b_dnnl, &b_ours};
        int reps[4];
        for (int i = 0; i < 4; i++) reps[i] = reps_for(fns[i], uds[i]);
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < 4; i++) samples[i * rounds + r] = sample(fns[i], uds[i], reps[i]);
        double ms[4];
        for (int i = 0; i < 4; i++) ms[i] = 1e3 * median(samples + (size_t)i * rounds, rounds);

        /* the results of the last calls */
        double err_f = rel_err(y_ours, data_of(ym), yn), err_b = rel_err(dx_ours, data_of(dxm), xn);
        char name[32];
        snprintf(name, sizeof name, "C%d %dx%d k%d s%d", bc->c, bc->h, bc->w, k, bc->s);
        printf("%-16s | %-20s %8.3f %8.3f %5.2fx | %-20s %8.3f %8.3f %5.2fx | %3s | %7.1e %7.1e\n", name, fimpl, ms[0],
               ms[1], ms[0] / ms[1], bimpl, ms[2], ms[3], ms[2] / ms[3], both_16g ? "yes" : "no", err_f, err_b);
        fflush(stdout);
        bad += !(err_f <= 1e-4) || !(err_b <= 1e-4);

        free(y_ours), free(dx_ours);
        CHECK(dnnl_primitive_destroy(f_dnnl.prim));
        CHECK(dnnl_primitive_destroy(b_dnnl.prim));
        dnnl_memory_t mems[] = {xm, dym, wm, ym, dxm, fw, bw, ow16};
        for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
            if (mems[i]) CHECK(dnnl_memory_destroy(mems[i]));
        CHECK(dnnl_primitive_desc_destroy(bpd));
        CHECK(dnnl_primitive_desc_destroy(fpd));
    }
    printf("16g: both primitives chose Goihw16g weights (ours)\n");
    free(samples);
    CHECK(dnnl_stream_destroy(st));
    CHECK(dnnl_engine_destroy(eng));
    return bad;
}

int main(int argc, char **argv) {
    bench_case def[] = {{64, 64, 14, 14, 3, 1, 1}, {64, 64, 14, 14, 5, 1, 1}, {64, 64, 14, 14, 7, 1, 1},
                        {64, 64, 14, 14, 3, 2, 1}, {64, 64, 14, 14, 5, 2, 1}, {64, 64, 14, 14, 7, 2, 1}};
    bench_case one;
    bench_case *cases = def;
    int n_cases = (int)(sizeof def / sizeof def[0]);
    int t_lo = 1, t_hi = 2;
    if (argc >= 2 && strcmp(argv[1], "paths") == 0) {
        int bad = bench_paths(argc >= 3 ? atoi(argv[2]) : 32, argc >= 4 ? atoi(argv[3]) : 1);
        if (bad) fprintf(stderr, "dwconv_bench: %d case(s) disagree with the direct summation\n", bad);
        return bad ? 1 : 0;
    }
    if (argc >= 2 && strcmp(argv[1], "fd") == 0) {
        int bad = bench_fd(argc >= 3 ? atoi(argv[2]) : 32, argc >= 4 ? atoi(argv[3]) : 1,
                           argc >= 5 ? atoi(argv[4]) : 31);
        if (bad) fprintf(stderr, "dwconv_bench: %d case(s) disagree with oneDNN\n", bad);
        return bad ? 1 : 0;
    }
    if (argc == 9) t_lo = t_hi = atoi(argv[8]);
    if (argc == 8 || argc == 9) {
        one = (bench_case){atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                           atoi(argv[5]), atoi(argv[6]), atoi(argv[7])};
        cases = &one, n_cases = 1;
    } else if (argc != 1) {
        fprintf(stderr,
                "usage: %s [N C H W k stride dilation [threads]] | paths [N [threads]] | fd [N [threads [rounds]]]\n",
                argv[0]);
        return 2;
    }
    const dnnl_version_t *v = dnnl_version();
    printf("depthwise conv backward-weights, GFLOP/s; oneDNN %d.%d.%d, nasc kernel path %s\n", v->major, v->minor,
           v->patch, isa_str(nasc_dw_isa_best()));
    printf("N=%d C=%d %dx%d\n", cases[0].n, cases[0].c, cases[0].h, cases[0].w);
    printf("%-3s %-10s | %-25s | %-25s | %-25s | %-13s | %-15s | %s\n", "thr", "kernel", "oneDNN, layouts any",
           "oneDNN on nChw8c", "oneDNN on nchw", "nasc 8c  nchw", "8c/dnnl nchw/dnnl", "max err");
    dnnl_engine_t eng;
    dnnl_stream_t st;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    int bad = 0;
    for (int threads = t_lo; threads <= t_hi; threads++) {
        omp_set_num_threads(threads);
        for (int i = 0; i < n_cases; i++) bad += bench_one(eng, st, &cases[i], threads);
    }
    CHECK(dnnl_stream_destroy(st));
    CHECK(dnnl_engine_destroy(eng));
    if (bad) fprintf(stderr, "dwconv_bench: %d case(s) disagree with oneDNN\n", bad);
    return bad ? 1 : 0;
}
