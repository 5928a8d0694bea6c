/* avgpool.c - average pooling backward on nChw16c (see avgpool.h).
 *
 * A task is one dx row of one (image, channel block) plane. For each dx
 * pixel the windows holding it are the output rows [lo, hi] and columns
 * [lo_w, hi_w] that reach it (at most ceil(k/s) each); their dy pixels,
 * 16 channels a register, are added with weight 1 / (count_h * count_w).
 * The weights of the output rows and columns and the windows of each input
 * row and column are computed once a call. dx is written once; dy pixels
 * are read by every window row that holds them, mostly from the cache. For
 * 3-wide windows at column stride 1 (avx512_row_w3) each dy column's
 * weighted sum over the window rows is made once and three of them are
 * added per pixel.
 */
#include "avgpool.h"

#include <omp.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NASC_DW_PORTABLE)
#define AP_X86 1
#include <immintrin.h>
#define AP_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

#define AP_MAX 1024 /* rows and columns whose windows and weights a call keeps on the stack */

static int imin(int a, int b) { return a < b ? a : b; }

/* Pixels of window o (size k, stride s, pad p) inside an input of n. */
static int count_in(int o, int k, int s, int p, int n) {
    int64_t a = (int64_t)o * s - p;
    return (int)((a + k < n ? a + k : n) - (a > 0 ? a : 0));
}

/* The windows holding input position i: [*lo, *hi], empty when lo > hi. */
static void windows_of(int i, int k, int s, int p, int o_n, int *lo, int *hi) {
    int a = i + p - k + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = imin((i + p) / s, o_n - 1);
}

bool nasc_ap_supported(const nasc_ap_shape *s) {
    if (!s || s->n < 1 || s->c < 16 || s->c % 16 || s->h < 1 || s->w < 1 || s->oh < 1 || s->ow < 1) return false;
    if (s->h > AP_MAX || s->w > AP_MAX || s->oh > AP_MAX || s->ow > AP_MAX || s->kh < 1 || s->kh > 7 || s->kw < 1 || s->kw > 7 || s->sh < 1 || s->sw < 1) return false;
    if (s->pt < 0 || s->pt >= s->kh || s->pl < 0 || s->pl >= s->kw) return false;
    /* every window holds an input pixel: the last ones start inside */
    return (int64_t)(s->oh - 1) * s->sh - s->pt < s->h && (int64_t)(s->ow - 1) * s->sw - s->pl < s->w;
}

typedef struct ap_run {
    const nasc_ap_shape *s;
    const float *dy;
    int64_t dy_image;
    float *dx;
    bool avx512;
    float inv_h[AP_MAX], inv_w[AP_MAX];   /* 1 / count of output row oh, column ow */
    short hlo[AP_MAX], hhi[AP_MAX];       /* the output rows holding input row ih */
    short wlo[AP_MAX], whi[AP_MAX];       /* the output columns holding input column iw */
} ap_run;

/* dx row ih of plane (n, b). */
static void scalar_row(const ap_run *r, int n, int b, int ih) {
    const nasc_ap_shape *s = r->s;
    const float *dy = r->dy + n * r->dy_image + (int64_t)b * s->oh * s->ow * 16;
    float *dx = r->dx + (((int64_t)n * (s->c / 16) + b) * s->h + ih) * s->w * 16;
    for (int iw = 0; iw < s->w; iw++) {
        float acc[16] = {0};
        for (int oh = r->hlo[ih]; oh <= r->hhi[ih]; oh++)
            for (int ow = r->wlo[iw]; ow <= r->whi[iw]; ow++) {
                const float *d = dy + ((int64_t)oh * s->ow + ow) * 16;
                float wt = r->inv_h[oh] * r->inv_w[ow];
                for (int l = 0; l < 16; l++) acc[l] += d[l] * wt;
            }
        for (int l = 0; l < 16; l++) dx[(int64_t)iw * 16 + l] = acc[l];
    }
}

#ifdef AP_X86
/* Windows 3 wide at column stride 1 (the pools of NASNet-like normal
 * cells): v(ow), the weighted sum of column ow over the windows' rows, is
 * made once per column, and dx[iw] = v(iw+pl-2) + v(iw+pl-1) + v(iw+pl)
 * (outside [0, OW) v is 0): 3 loads and 6 operations a pixel. */
AP_AVX512 static void avx512_row_w3(const ap_run *r, const float *dy, float *dx, int lo, int hi) {
    const nasc_ap_shape *s = r->s;
    __m512 hv[8];
    const int rows = hi - lo + 1;
    for (int k = 0; k < rows && k < 8; k++) hv[k] = _mm512_set1_ps(r->inv_h[lo + k]);
    __m512 v2 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps(); /* v(ow-2), v(ow-1) */
    for (int ow = 0; ow < s->w + s->pl; ow++) {
        __m512 v = _mm512_setzero_ps();
        if (ow < s->ow) {
            const float *d = dy + ((int64_t)lo * s->ow + ow) * 16;
            for (int k = 0; k < rows; k++) v = _mm512_fmadd_ps(_mm512_loadu_ps(d + (int64_t)k * s->ow * 16), hv[k], v);
            v = _mm512_mul_ps(v, _mm512_set1_ps(r->inv_w[ow]));
        }
        int iw = ow - s->pl;
        if (iw >= 0) _mm512_storeu_ps(dx + (int64_t)iw * 16, _mm512_add_ps(_mm512_add_ps(v2, v1), v));
        v2 = v1, v1 = v;
    }
}

AP_AVX512 static void avx512_row(const ap_run *r, int n, int b, int ih) {
    const nasc_ap_shape *s = r->s;
    const float *dy = r->dy + n * r->dy_image + (int64_t)b * s->oh * s->ow * 16;
    float *dx = r->dx + (((int64_t)n * (s->c / 16) + b) * s->h + ih) * s->w * 16;
    const int lo = r->hlo[ih], hi = r->hhi[ih];
    if (s->kw == 3 && s->sw == 1) {
        avx512_row_w3(r, dy, dx, lo, hi);
        return;
    }
    for (int iw = 0; iw < s->w; iw++) {
        const int wl = r->wlo[iw], wh = r->whi[iw];
        __m512 acc = _mm512_setzero_ps();
        for (int oh = lo; oh <= hi; oh++) {
            const float *d = dy + (int64_t)oh * s->ow * 16;
            __m512 row = _mm512_setzero_ps();
            for (int ow = wl; ow <= wh; ow++)
                row = _mm512_fmadd_ps(_mm512_loadu_ps(d + (int64_t)ow * 16), _mm512_set1_ps(r->inv_w[ow]), row);
            acc = _mm512_fmadd_ps(row, _mm512_set1_ps(r->inv_h[oh]), acc);
        }
        _mm512_storeu_ps(dx + (int64_t)iw * 16, acc);
    }
}
#endif

static void run_rows(const ap_run *r, int64_t lo, int64_t hi) {
    const nasc_ap_shape *s = r->s;
    for (int64_t t = lo; t < hi; t++) {
        int ih = (int)(t % s->h);
        int64_t plane = t / s->h;
        int n = (int)(plane / (s->c / 16)), b = (int)(plane % (s->c / 16));
#ifdef AP_X86
        if (r->avx512) {
            avx512_row(r, n, b, ih);
            continue;
        }
#endif
        scalar_row(r, n, b, ih);
    }
}

nasc_status nasc_avgpool_bwd_run(const nasc_ap_shape *s, const float *dy, int64_t dy_image, float *dx,
                                 nasc_dw_isa isa) {
    if (!nasc_ap_supported(s) || !dy || !dx || dy_image < (int64_t)s->c * s->oh * s->ow) return NASC_EINPUT;
    ap_run r = {.s = s, .dy = dy, .dy_image = dy_image, .dx = dx};
#ifdef AP_X86
    r.avx512 = (isa == NASC_DW_ISA_AUTO || isa == NASC_DW_ISA_AVX512) && nasc_dw_isa_best() == NASC_DW_ISA_AVX512;
#else
    (void)isa;
#endif
    for (int oh = 0; oh < s->oh; oh++) r.inv_h[oh] = 1.0f / (float)count_in(oh, s->kh, s->sh, s->pt, s->h);
    for (int ow = 0; ow < s->ow; ow++) r.inv_w[ow] = 1.0f / (float)count_in(ow, s->kw, s->sw, s->pl, s->w);
    for (int i = 0; i < s->h; i++) {
        int lo, hi;
        windows_of(i, s->kh, s->sh, s->pt, s->oh, &lo, &hi);
        r.hlo[i] = (short)lo, r.hhi[i] = (short)hi;
    }
    for (int i = 0; i < s->w; i++) {
        int lo, hi;
        windows_of(i, s->kw, s->sw, s->pl, s->ow, &lo, &hi);
        r.wlo[i] = (short)lo, r.whi[i] = (short)hi;
    }
    int64_t tasks = (int64_t)s->n * (s->c / 16) * s->h;
    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nthr > tasks) nthr = (int)tasks;
    if (nthr <= 1) { /* no team of one: it costs as much as a small pooling */
        run_rows(&r, 0, tasks);
        return NASC_OK;
    }
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int k = 0; k < nthr; k++) run_rows(&r, tasks * k / nthr, tasks * (k + 1) / nthr);
    return NASC_OK;
}
