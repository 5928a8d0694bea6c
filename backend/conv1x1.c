/* conv1x1.c - the weight gradient of a 1x1 convolution on nChw16c (see
 * conv1x1.h). */
#include "conv1x1.h"

#include <string.h>

#include "dwconv.h" /* nasc_dw_isa_best */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NASC_DW_PORTABLE)
#define C1_X86 1
#include <immintrin.h>
#define C1_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

/* Bytes of both tensors a chunk of pixels takes (all channels): about a
 * tenth of a 1 MB L2, so that the chunk stays there while every tile of dw
 * passes over it. */
enum { C1_CHUNK_BYTES = 96 * 1024, C1_CHUNK_MIN = 16 };

bool nasc_c1_supported(const nasc_c1_shape *s) {
#ifdef C1_X86
    if (!s || s->n < 1 || s->p < 1 || s->ic < 16 || s->oc < 16 || s->ic % 16 || s->oc % 16) return false;
    if (s->x_image < (int64_t)s->ic * s->p || s->dy_image < (int64_t)s->oc * s->p) return false;
    return nasc_dw_isa_best() == NASC_DW_ISA_AVX512;
#else
    (void)s;
    return false;
#endif
}

#ifdef C1_X86
/* dw's 16x16 tile at t (rows ld floats apart: output channel r's 16 input
 * channels) += the products of ni images of np pixels: x's block planes at
 * x (images xs floats apart), dy's at dy (ds apart). nx and nd, when not
 * NULL, are the same planes of the next chunk, of nni images of nnp pixels,
 * fetched into the cache a line a pixel meanwhile (x comes from memory: the
 * forward pass wrote it long before). */
C1_AVX512 static void tile(const float *x, int64_t xs, const float *dy, int64_t ds, int ni, int64_t np, float *t,
                           int64_t ld, const float *nx, const float *nd, int nni, int64_t nnp) {
    __m512 a[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) a[r] = _mm512_loadu_ps(t + r * ld);
    for (int k = 0; k < ni; k++) {
        const float *px = x + k * xs, *pd = dy + k * ds;
        bool more = k < nni; /* the next chunk has an image k */
        const char *fx = nx && more ? (const char *)(nx + k * xs) : NULL;
        const char *fd = nd && more ? (const char *)(nd + k * ds) : NULL;
        for (int64_t q = 0; q < np; q++, px += 16, pd += 16) {
            if (q < nnp) {
                if (fx) _mm_prefetch(fx + q * 64, _MM_HINT_T0);
                if (fd) _mm_prefetch(fd + q * 64, _MM_HINT_T0);
            }
            __m512 v = _mm512_loadu_ps(px);
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(pd[r]), v, a[r]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) _mm512_storeu_ps(t + r * ld, a[r]);
}
#endif

nasc_status nasc_c1_bwd_weights_run(const nasc_c1_shape *s, const float *x, const float *dy, float *dw) {
    if (!nasc_c1_supported(s) || !x || !dy || !dw) return NASC_EINPUT;
#ifdef C1_X86
    int ib_n = s->ic / 16, ob_n = s->oc / 16;
    int64_t plane_x = s->p * 16, plane_d = s->p * 16;
    memset(dw, 0, (size_t)s->oc * (size_t)s->ic * sizeof *dw);
    int64_t chunk = C1_CHUNK_BYTES / ((int64_t)(s->ic + s->oc) * (int64_t)sizeof(float));
    if (chunk < C1_CHUNK_MIN) chunk = C1_CHUNK_MIN;
    /* chunks of whole images, or of runs of one image's pixels */
    int per = s->p <= chunk ? (int)(chunk / s->p) : 1;
    int64_t run = s->p <= chunk ? s->p : chunk;
    for (int n0 = 0; n0 < s->n; n0 += per)
        for (int64_t p0 = 0; p0 < s->p; p0 += run) {
            int ni = s->n - n0 < per ? s->n - n0 : per;
            int64_t np = s->p - p0 < run ? s->p - p0 : run;
            const float *xn = x + n0 * s->x_image + p0 * 16, *dn = dy + n0 * s->dy_image + p0 * 16;
            /* the next chunk: the rest of this image, or the next images */
            int n1 = p0 + run < s->p ? n0 : n0 + per;
            int64_t p1 = p0 + run < s->p ? p0 + run : 0;
            const float *nx = NULL, *nd = NULL;
            int nni = 0;
            int64_t nnp = 0;
            if (n1 < s->n) {
                nx = x + n1 * s->x_image + p1 * 16, nd = dy + n1 * s->dy_image + p1 * 16;
                nni = s->n - n1 < per ? s->n - n1 : per;
                nnp = s->p - p1 < run ? s->p - p1 : run;
            }
            for (int ob = 0; ob < ob_n; ob++)
                for (int ib = 0; ib < ib_n; ib++)
                    tile(xn + ib * plane_x, s->x_image, dn + ob * plane_d, s->dy_image, ni, np,
                         dw + (int64_t)ob * 16 * s->ic + ib * 16, s->ic, nx && ob == 0 ? nx + ib * plane_x : NULL,
                         nd && ib == 0 ? nd + ob * plane_d : NULL, nni, nnp);
        }
#endif
    return NASC_OK;
}
