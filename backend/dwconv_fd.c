/* dwconv_fd.c - depthwise convolution forward and backward-data on nChw16c
 * (see dwconv.h).
 *
 * A plane is one 16-channel block of one image: (H, W, 16) floats, one zmm
 * register a pixel. The weights of a block are (k, k, 16).
 *
 * Forward, per output row: the row is cut into strips of U <= 16 output
 * pixels (8 at stride 2), each held in U accumulators. For each kernel row
 * that lands inside the input, the k weights of that row sit in k registers
 * and the input pixels feeding the strip, (U-1)*S + k of them, are loaded
 * once each, left to right, and multiplied into every accumulator they
 * reach (about k/S FMAs a load, no broadcasts). Every index is a
 * compile-time constant: a function per (k, stride, U). Input columns in the
 * padding are skipped by a test per load; strips inside the row (rows
 * wider than ~32 pixels) have a variant without it. A plane of 8 or fewer
 * output columns (7x7 in NASNet-like nets) is done two output rows at a
 * time: each input row is loaded once for both rows it feeds.
 *
 * Backward-data is the same with the roles swapped: a strip of dx pixels in
 * registers (starting at a multiple of the stride), each dy pixel of each dy
 * row that reaches it loaded once and multiplied into the accumulators
 * (dx[ih][iw] = sum dy[oh][ow] w[i][j] over oh*S - P + i = ih,
 * ow*S - P + j = iw); strided convolutions need no flipped or dilated copy.
 * Narrow planes take two dx rows at a time.
 *
 * Measured against oneDNN 2.6's jit_dw:avx512_core (the kernel it picks for
 * these shapes) on Zen 5, one thread, nChw16c, the shapes of NASNet-A's
 * cells (16 channels at 28x28 to 64 at 7x7, k 3/5/7, stride 1 and 2;
 * `dwconv_bench fd 32 1 21`): forward 0.94-1.70x as fast at 32 images (the
 * 3x3 and stride-2 28x28 layers, bound by memory, about even),
 * backward-data 1.9-3.9x; at one image forward 0.92-1.83x, backward-data
 * 1.9-3.9x.
 *
 * A strip of U pixels uses U accumulators plus k weight registers: at most
 * 16 + 7 of the 32 zmm registers. The pair variants use 2U + 2k <= 30.
 */
#include "dwconv.h"

#include <stdint.h>

#include <omp.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NASC_DW_PORTABLE)
#define FD_X86 1
#include <immintrin.h>
#define FD_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FD_INLINE static inline __attribute__((always_inline, target("avx512f,avx2,fma")))
#endif

#define FD_UMAX 16 /* output pixels a strip (registers) */
#define FD_PAIR_MAX 8 /* planes this narrow or narrower take two rows at a time */

static int imin(int a, int b) { return a < b ? a : b; }
#ifdef FD_X86
static int imax(int a, int b) { return a > b ? a : b; }
#endif

bool nasc_dw_fd_supported(const nasc_dw_shape *s) {
    if (!nasc_dw_shape_valid(s) || s->c % 16 != 0) return false;
    if (s->kh != s->kw || (s->kh != 3 && s->kh != 5 && s->kh != 7)) return false;
    if (s->sh != s->sw || (s->sh != 1 && s->sh != 2) || s->dh != 1 || s->dw != 1) return false;
    if (s->pt != s->kh / 2 || s->pl != s->kw / 2) return false;
    /* the bottom and right pads are what the output size implies: any
     * output row or column reads at least one input pixel */
    return (int64_t)(s->oh - 1) * s->sh - s->pt < s->h && (int64_t)(s->ow - 1) * s->sw - s->pl < s->w;
}

/* One plane's tensors and sizes, the same for every strip of it. */
typedef struct fd_plane {
    const float *src; /* forward: x (H, W, 16); backward: dy (OH, OW, 16) */
    const float *w;   /* (k, k, 16) */
    float *dst;       /* forward: y (OH, OW, 16); backward: dx (H, W, 16) */
    int h, w_, oh, ow;
} fd_plane;

/* ---------------------------------------------------------------- */
/* Portable path                                                    */
/* ---------------------------------------------------------------- */

static void scalar_fwd_row(const fd_plane *pl, int k, int st, int oh) {
    int p = k / 2;
    for (int ow = 0; ow < pl->ow; ow++) {
        float acc[16] = {0};
        for (int i = 0; i < k; i++) {
            int ih = oh * st - p + i;
            if (ih < 0 || ih >= pl->h) continue;
            for (int j = 0; j < k; j++) {
                int iw = ow * st - p + j;
                if (iw < 0 || iw >= pl->w_) continue;
                const float *xv = pl->src + ((size_t)ih * pl->w_ + iw) * 16, *wv = pl->w + (i * k + j) * 16;
                for (int l = 0; l < 16; l++) acc[l] += xv[l] * wv[l];
            }
        }
        float *yv = pl->dst + ((size_t)oh * pl->ow + ow) * 16;
        for (int l = 0; l < 16; l++) yv[l] = acc[l];
    }
}

static void scalar_bwd_row(const fd_plane *pl, int k, int st, int ih) {
    int p = k / 2;
    for (int iw = 0; iw < pl->w_; iw++) {
        float acc[16] = {0};
        for (int i = 0; i < k; i++) {
            int num = ih + p - i;
            if (num < 0 || num % st || num / st >= pl->oh) continue;
            for (int j = 0; j < k; j++) {
                int nw = iw + p - j;
                if (nw < 0 || nw % st || nw / st >= pl->ow) continue;
                const float *dv = pl->src + ((size_t)(num / st) * pl->ow + nw / st) * 16, *wv = pl->w + (i * k + j) * 16;
                for (int l = 0; l < 16; l++) acc[l] += dv[l] * wv[l];
            }
        }
        float *xv = pl->dst + ((size_t)ih * pl->w_ + iw) * 16;
        for (int l = 0; l < 16; l++) xv[l] = acc[l];
    }
}

/* ---------------------------------------------------------------- */
/* AVX-512 kernels                                                  */
/* ---------------------------------------------------------------- */

#ifdef FD_X86

/* Output row oh, pixels [o0, o0+U) of one plane. CHK: test each input
 * column against the row's bounds (else every one is inside). */
FD_INLINE void fwd_strip(const fd_plane *pl, int oh, int o0, const int K, const int S, const int U, const int CHK) {
    const int P = K / 2, T = (U - 1) * S + K, W = pl->w_;
    __m512 acc[FD_UMAX];
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) acc[u] = _mm512_setzero_ps();
    const int cb = o0 * S - P; /* the input column of strip position 0 */
    const int tlo = imax(0, -cb), thi = imin(T, W - cb);
    const int ih0 = oh * S - P;
    const int ilo = imax(0, -ih0), ihi = imin(K, pl->h - ih0);
    for (int i = ilo; i < ihi; i++) {
        const float *xr = pl->src + (ptrdiff_t)(ih0 + i) * W * 16;
        __m512 w[7];
#pragma GCC unroll 7
        for (int j = 0; j < K; j++) w[j] = _mm512_loadu_ps(pl->w + (i * K + j) * 16);
#pragma GCC unroll 32
        for (int t = 0; t < T; t++) {
            if (CHK && (t < tlo || t >= thi)) continue;
            __m512 xv = _mm512_loadu_ps(xr + (ptrdiff_t)(cb + t) * 16);
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) {
                int d = t - j;
                if (d < 0 || d % S || d / S >= U) continue;
                acc[d / S] = _mm512_fmadd_ps(xv, w[j], acc[d / S]);
            }
        }
    }
    float *yr = pl->dst + ((size_t)oh * pl->ow + o0) * 16;
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) _mm512_storeu_ps(yr + u * 16, acc[u]);
}

/* Output rows oh and oh+1, the whole row (U = OW <= 8). Input row ih0 + r
 * feeds kernel row r of row oh and r - S of row oh+1. */
#define FWD_PAIR_SWEEP(ROW0, ROW1)                                                                                     \
    do {                                                                                                               \
        _Pragma("GCC unroll 32") for (int t = 0; t < T; t++) {                                                         \
            if (t < tlo || t >= thi) continue;                                                                         \
            __m512 xv = _mm512_loadu_ps(xr + (ptrdiff_t)(cb + t) * 16);                                                \
            _Pragma("GCC unroll 7") for (int j = 0; j < K; j++) {                                                      \
                int d = t - j;                                                                                         \
                if (d < 0 || d % S || d / S >= U) continue;                                                            \
                if (ROW0) a0[d / S] = _mm512_fmadd_ps(xv, w0[j], a0[d / S]);                                           \
                if (ROW1) a1[d / S] = _mm512_fmadd_ps(xv, w1[j], a1[d / S]);                                           \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

FD_INLINE void fwd_pair(const fd_plane *pl, int oh, const int K, const int S, const int U) {
    const int P = K / 2, T = (U - 1) * S + K, W = pl->w_;
    __m512 a0[FD_PAIR_MAX], a1[FD_PAIR_MAX];
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) a0[u] = a1[u] = _mm512_setzero_ps();
    const int cb = -P, tlo = P, thi = imin(T, W + P);
    const int ih0 = oh * S - P;
    const int rlo = imax(0, -ih0), rhi = imin(K + S, pl->h - ih0);
    for (int r = rlo; r < rhi; r++) {
        const float *xr = pl->src + (ptrdiff_t)(ih0 + r) * W * 16;
        __m512 w0[7], w1[7];
        if (r < S) {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) w0[j] = _mm512_loadu_ps(pl->w + (r * K + j) * 16);
            FWD_PAIR_SWEEP(1, 0);
        } else if (r >= K) {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) w1[j] = _mm512_loadu_ps(pl->w + ((r - S) * K + j) * 16);
            FWD_PAIR_SWEEP(0, 1);
        } else {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) {
                w0[j] = _mm512_loadu_ps(pl->w + (r * K + j) * 16);
                w1[j] = _mm512_loadu_ps(pl->w + ((r - S) * K + j) * 16);
            }
            FWD_PAIR_SWEEP(1, 1);
        }
    }
    float *yr = pl->dst + (size_t)oh * U * 16;
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
        _mm512_storeu_ps(yr + u * 16, a0[u]);
        _mm512_storeu_ps(yr + (U + u) * 16, a1[u]);
    }
}

/* dx row ih, pixels [i0, i0+U) of one plane, i0 a multiple of S. dy column
 * ob + q reaches dx pixel u = q*S - P + j of the strip through tap j. CHK:
 * test each dy column against the row's bounds. */
FD_INLINE void bwd_strip(const fd_plane *pl, int ih, int i0, const int K, const int S, const int U, const int CHK) {
    const int P = K / 2, QMIN = -((K - 1 - P) / S), QMAX = (U - 1 + P) / S, OW = pl->ow;
    __m512 acc[FD_UMAX];
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) acc[u] = _mm512_setzero_ps();
    const int ob = i0 / S;
    const int qlo = imax(QMIN, -ob), qhi = imin(QMAX, OW - 1 - ob);
    for (int i = 0; i < K; i++) {
        int num = ih + P - i;
        if (num < 0 || num % S || num / S >= pl->oh) continue;
        const float *dr = pl->src + (size_t)(num / S) * OW * 16;
        __m512 w[7];
#pragma GCC unroll 7
        for (int j = 0; j < K; j++) w[j] = _mm512_loadu_ps(pl->w + (i * K + j) * 16);
#pragma GCC unroll 32
        for (int q = QMIN; q <= QMAX; q++) {
            if (CHK && (q < qlo || q > qhi)) continue;
            __m512 dv = _mm512_loadu_ps(dr + (ptrdiff_t)(ob + q) * 16);
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) {
                int u = q * S - P + j;
                if (u < 0 || u >= U) continue;
                acc[u] = _mm512_fmadd_ps(dv, w[j], acc[u]);
            }
        }
    }
    float *xr = pl->dst + ((size_t)ih * pl->w_ + i0) * 16;
#pragma GCC unroll 16
    for (int u = 0; u < U; u++) _mm512_storeu_ps(xr + u * 16, acc[u]);
}

/* dx rows ih and ih+1, the whole row (U = W <= 8): dy row oh reaches row ih
 * through kernel row i = ih + P - oh*S and row ih+1 through i + 1. */
#define BWD_PAIR_SWEEP(ROW0, ROW1)                                                                                     \
    do {                                                                                                               \
        _Pragma("GCC unroll 32") for (int q = QMIN; q <= QMAX; q++) {                                                  \
            if (q < qlo || q > qhi) continue;                                                                          \
            __m512 dv = _mm512_loadu_ps(dr + (ptrdiff_t)q * 16);                                                       \
            _Pragma("GCC unroll 7") for (int j = 0; j < K; j++) {                                                      \
                int u = q * S - P + j;                                                                                 \
                if (u < 0 || u >= U) continue;                                                                         \
                if (ROW0) a0[u] = _mm512_fmadd_ps(dv, w0[j], a0[u]);                                                   \
                if (ROW1) a1[u] = _mm512_fmadd_ps(dv, w1[j], a1[u]);                                                   \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

FD_INLINE void bwd_pair(const fd_plane *pl, int ih, const int K, const int S, const int U) {
    const int P = K / 2, QMIN = -((K - 1 - P) / S), QMAX = (U - 1 + P) / S;
    __m512 a0[FD_PAIR_MAX], a1[FD_PAIR_MAX];
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) a0[u] = a1[u] = _mm512_setzero_ps();
    const int qlo = imax(QMIN, 0), qhi = imin(QMAX, pl->ow - 1);
    /* dy rows with i in [-1, K-1] */
    const int lo = ih + P - (K - 1);
    const int oh_lo = lo <= 0 ? 0 : (lo + S - 1) / S, oh_hi = imin(pl->oh - 1, (ih + 1 + P) / S);
    for (int oh = oh_lo; oh <= oh_hi; oh++) {
        const int i = ih + P - oh * S;
        const float *dr = pl->src + (size_t)oh * pl->ow * 16;
        __m512 w0[7], w1[7];
        if (i < 0) {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) w1[j] = _mm512_loadu_ps(pl->w + j * 16);
            BWD_PAIR_SWEEP(0, 1);
        } else if (i == K - 1) {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) w0[j] = _mm512_loadu_ps(pl->w + (i * K + j) * 16);
            BWD_PAIR_SWEEP(1, 0);
        } else {
#pragma GCC unroll 7
            for (int j = 0; j < K; j++) {
                w0[j] = _mm512_loadu_ps(pl->w + (i * K + j) * 16);
                w1[j] = _mm512_loadu_ps(pl->w + ((i + 1) * K + j) * 16);
            }
            BWD_PAIR_SWEEP(1, 1);
        }
    }
    float *xr = pl->dst + (size_t)ih * U * 16;
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
        _mm512_storeu_ps(xr + u * 16, a0[u]);
        _mm512_storeu_ps(xr + (U + u) * 16, a1[u]);
    }
}

/* One function per (k, stride, U, CHK): strip kernels take (plane, row,
 * first pixel), pair kernels (plane, first of the two rows, ignored). */
typedef void (*fd_fn)(const fd_plane *, int, int);

#define DEF_FWD(K, S, C, U)                                                                                            \
    FD_AVX512 static void fwd_##K##_##S##_##C##_##U(const fd_plane *pl, int row, int first) {                         \
        fwd_strip(pl, row, first, K, S, U, C);                                                                         \
    }
#define DEF_BWD(K, S, C, U)                                                                                            \
    FD_AVX512 static void bwd_##K##_##S##_##C##_##U(const fd_plane *pl, int row, int first) {                         \
        bwd_strip(pl, row, first, K, S, U, C);                                                                         \
    }
#define DEF_FWD_PAIR(K, S, C, U)                                                                                       \
    FD_AVX512 static void fwdp_##K##_##S##_##U(const fd_plane *pl, int row, int first) {                              \
        (void)first;                                                                                                   \
        fwd_pair(pl, row, K, S, U);                                                                                    \
    }
#define DEF_BWD_PAIR(K, S, C, U)                                                                                       \
    FD_AVX512 static void bwdp_##K##_##S##_##U(const fd_plane *pl, int row, int first) {                              \
        (void)first;                                                                                                   \
        bwd_pair(pl, row, K, S, U);                                                                                    \
    }
/* table entries, indexed [k/2 - 1][stride - 1][U][CHK] */
#define ENT_FWD(K, S, C, U) [K / 2 - 1][S - 1][U][C] = fwd_##K##_##S##_##C##_##U,
#define ENT_BWD(K, S, C, U) [K / 2 - 1][S - 1][U][C] = bwd_##K##_##S##_##C##_##U,
#define ENT_FWD_PAIR(K, S, C, U) [K / 2 - 1][S - 1][U] = fwdp_##K##_##S##_##U,
#define ENT_BWD_PAIR(K, S, C, U) [K / 2 - 1][S - 1][U] = bwdp_##K##_##S##_##U,

#define U1_8(M, K, S, C) M(K, S, C, 1) M(K, S, C, 2) M(K, S, C, 3) M(K, S, C, 4) M(K, S, C, 5) M(K, S, C, 6) \
    M(K, S, C, 7) M(K, S, C, 8)
#define U6_8(M, K, S, C) M(K, S, C, 6) M(K, S, C, 7) M(K, S, C, 8)
#define U9_16(M, K, S, C) M(K, S, C, 9) M(K, S, C, 10) M(K, S, C, 11) M(K, S, C, 12) M(K, S, C, 13) \
    M(K, S, C, 14) M(K, S, C, 15) M(K, S, C, 16)
#define U11_16(M, K, S, C) M(K, S, C, 11) M(K, S, C, 12) M(K, S, C, 13) M(K, S, C, 14) M(K, S, C, 15) M(K, S, C, 16)
#define EACH_K(X, S) X(3, S) X(5, S) X(7, S)

/* Which variants exist. Strips are as long as they can be (up to 16, 8
 * for the forward pass at stride 2), so a strip with no padding column,
 * which needs a row of three strips or more, has at least 11 pixels (6
 * forward at stride 2); shorter ones always take the tested variant. */
#define FWD1(K, S) U1_8(M_, K, S, 1) U9_16(M_, K, S, 1) U11_16(M_, K, S, 0)
#define FWD2(K, S) U1_8(M_, K, S, 1) U6_8(M_, K, S, 0)
#define BWD(K, S) U1_8(M_, K, S, 1) U9_16(M_, K, S, 1) U11_16(M_, K, S, 0)
#define PAIR(K, S) U1_8(M_, K, S, 1)

#define M_ DEF_FWD
EACH_K(FWD1, 1)
EACH_K(FWD2, 2)
#undef M_
#define M_ DEF_BWD
EACH_K(BWD, 1)
EACH_K(BWD, 2)
#undef M_
#define M_ DEF_FWD_PAIR
EACH_K(PAIR, 1)
EACH_K(PAIR, 2)
#undef M_
#define M_ DEF_BWD_PAIR
EACH_K(PAIR, 1)
EACH_K(PAIR, 2)
#undef M_

static const fd_fn fwd_tab[3][2][FD_UMAX + 1][2] = {
#define M_ ENT_FWD
    EACH_K(FWD1, 1) EACH_K(FWD2, 2)
#undef M_
};
static const fd_fn bwd_tab[3][2][FD_UMAX + 1][2] = {
#define M_ ENT_BWD
    EACH_K(BWD, 1) EACH_K(BWD, 2)
#undef M_
};
static const fd_fn fwd_pair_tab[3][2][FD_PAIR_MAX + 1] = {
#define M_ ENT_FWD_PAIR
    EACH_K(PAIR, 1) EACH_K(PAIR, 2)
#undef M_
};
static const fd_fn bwd_pair_tab[3][2][FD_PAIR_MAX + 1] = {
#define M_ ENT_BWD_PAIR
    EACH_K(PAIR, 1) EACH_K(PAIR, 2)
#undef M_
};

#endif /* FD_X86 */

/* ---------------------------------------------------------------- */
/* Drivers                                                          */
/* ---------------------------------------------------------------- */

/* A row cut into strips of nearly equal length: strip i starts at i*len
 * (a multiple of the alignment asked for) and is len long, the last one
 * what is left. */
typedef struct fd_strips {
    int n, len;
} fd_strips;

static fd_strips cut_row(int width, int umax, int al) {
    int ns = (width + umax - 1) / umax;
    int len = (width + ns - 1) / ns;
    len = (len + al - 1) / al * al;
    if (len > umax) len = umax / al * al;
    return (fd_strips){(width + len - 1) / len, len};
}

typedef enum fd_dir { FD_FWD, FD_BWD } fd_dir;

/* Everything a run needs, computed once per call. */
typedef struct fd_run {
    const nasc_dw_shape *s;
    fd_dir dir;
    bool avx512;
    int k, st;
    int rows;      /* rows of the result a plane: OH forward, H backward */
    bool pair;     /* the result's rows go two at a time */
    int row_tasks; /* tasks a plane: rows, or pairs of rows and a last single one */
    fd_strips strips;
} fd_run;

static void plane_of(const fd_run *r, int64_t plane, const float *src, const float *w, float *dst, fd_plane *pl) {
    const nasc_dw_shape *s = r->s;
    int64_t cb = s->c / 16, b = plane % cb;
    size_t in = (size_t)s->h * s->w * 16, out = (size_t)s->oh * s->ow * 16;
    size_t src_n = r->dir == FD_FWD ? in : out, dst_n = r->dir == FD_FWD ? out : in;
    *pl = (fd_plane){src + (size_t)plane * src_n, w + (size_t)b * s->kh * s->kw * 16, dst + (size_t)plane * dst_n,
                     s->h, s->w, s->oh, s->ow};
}

/* Row task t of a plane: result rows [t*2, t*2+2) when paired, else row t. */
static void run_task(const fd_run *r, const fd_plane *pl, int t) {
    const int ki = r->k / 2 - 1, si = r->st - 1;
#ifdef FD_X86
    if (r->avx512) {
        int width = r->dir == FD_FWD ? pl->ow : pl->w_;
        if (r->pair && t * 2 + 1 < r->rows) {
            const fd_fn f = (r->dir == FD_FWD ? fwd_pair_tab : bwd_pair_tab)[ki][si][width];
            f(pl, t * 2, 0);
            return;
        }
        int row = r->pair ? t * 2 : t;
        const fd_fn(*tab)[2] = (r->dir == FD_FWD ? fwd_tab : bwd_tab)[ki][si];
        for (int i = 0; i < r->strips.n; i++) {
            int a = i * r->strips.len, u = imin(r->strips.len, width - a);
            /* every column the strip reads inside the row: no tests */
            bool inside;
            if (r->dir == FD_FWD) {
                int cb = a * r->st - r->k / 2;
                inside = cb >= 0 && cb + (u - 1) * r->st + r->k <= pl->w_;
            } else {
                int p = r->k / 2, ob = a / r->st;
                inside = ob - (r->k - 1 - p) / r->st >= 0 && ob + (u - 1 + p) / r->st <= pl->ow - 1;
            }
            fd_fn f = inside && tab[u][0] ? tab[u][0] : tab[u][1];
            f(pl, row, a);
        }
        return;
    }
#endif
    (void)ki, (void)si;
    int lo = r->pair ? t * 2 : t, hi = r->pair ? imin(t * 2 + 2, r->rows) : t + 1;
    for (int row = lo; row < hi; row++) {
        if (r->dir == FD_FWD)
            scalar_fwd_row(pl, r->k, r->st, row);
        else
            scalar_bwd_row(pl, r->k, r->st, row);
    }
}

/* Tasks [lo, hi) of the run: (plane, row task) in memory order. */
static void run_tasks(const fd_run *r, const float *src, const float *w, float *dst, int64_t lo, int64_t hi) {
    fd_plane pl;
    int64_t cur = -1;
    for (int64_t t = lo; t < hi; t++) {
        int64_t plane = t / r->row_tasks;
        if (plane != cur) plane_of(r, cur = plane, src, w, dst, &pl);
        run_task(r, &pl, (int)(t % r->row_tasks));
    }
}

static nasc_status run(const nasc_dw_shape *s, fd_dir dir, const float *src, const float *w, float *dst,
                       nasc_dw_isa isa) {
    if (!nasc_dw_fd_supported(s) || !src || !w || !dst) return NASC_EINPUT;
    fd_run r = {.s = s, .dir = dir, .k = s->kh, .st = s->sh};
#ifdef FD_X86
    r.avx512 = (isa == NASC_DW_ISA_AUTO || isa == NASC_DW_ISA_AVX512) && nasc_dw_isa_best() == NASC_DW_ISA_AVX512;
#else
    (void)isa;
#endif
    int width = dir == FD_FWD ? s->ow : s->w;
    r.rows = dir == FD_FWD ? s->oh : s->h;
    r.pair = width <= FD_PAIR_MAX && r.rows >= 2;
    r.row_tasks = r.pair ? (r.rows + 1) / 2 : r.rows;
    r.strips = cut_row(width, dir == FD_FWD && r.st == 2 ? FD_PAIR_MAX : FD_UMAX, dir == FD_FWD ? 1 : r.st);

    /* thread k takes the k-th of nthr equal runs of (plane, row task) in
     * memory order; one thread inside a parallel region (training lanes),
     * without entering one (a team of one costs microseconds, as much as a
     * small plane's whole work) */
    int64_t planes = (int64_t)s->n * (s->c / 16), tasks = planes * r.row_tasks;
    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nthr > tasks) nthr = (int)tasks;
    if (nthr <= 1) {
        run_tasks(&r, src, w, dst, 0, tasks);
        return NASC_OK;
    }
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int k = 0; k < nthr; k++) run_tasks(&r, src, w, dst, tasks * k / nthr, tasks * (k + 1) / nthr);
    return NASC_OK;
}

nasc_status nasc_dw_fwd_run(const nasc_dw_shape *s, const float *x, const float *w, float *y, nasc_dw_isa isa) {
    return run(s, FD_FWD, x, w, y, isa);
}

nasc_status nasc_dw_bwd_data_run(const nasc_dw_shape *s, const float *dy, const float *w, float *dx, nasc_dw_isa isa) {
    return run(s, FD_BWD, dy, w, dx, isa);
}
