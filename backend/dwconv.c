/* dwconv.c - depthwise convolution backward-weights (see dwconv.h).
 *
 * A unit of work is one group of G channels of one image: G = 16 (a zmm
 * register) on the AVX-512 path, 8 (a ymm register) on the AVX2 and scalar
 * paths. Its x plane goes into a zero-padded, channel-interleaved buffer
 * (Hp, Wp, G), so that every tap reads in bounds without a branch:
 *   nChw16c  a row copy (G 16), or a strided copy of one half of each
 *            pixel's 16 channels (G 8);
 *   nChw8c   a row copy (G 8), or blocks 2b and 2b+1 side by side in each
 *            pixel (G 16; zeros for a second block past the last);
 *   NCHW     an 8x8 register transpose per 8 channels (zero lanes past C).
 * Its dy plane is used in place when its pixels are G floats apart (nChw16c
 * on AVX-512, nChw8c on the others) and is otherwise copied into (OH, OW,
 * G) the same way as x.
 *
 * The inner kernel adds, for a tile of filter taps (R kernel rows x J
 * kernel columns, one G-lane register each), x * dy over every output
 * pixel: one dy load and one fused load+FMA per tap (x loads aligned to the
 * vector). A tile holds up to 15 taps with AVX2's 16 registers and up to 28
 * with AVX-512's 32: 5x5 is one tile and 7x7 two, so the x buffer and dy
 * are swept fewer times (on nChw16c, 16 channels at 28x28, measured 4-7%
 * faster on 5x5 and 7x7 than 15-tap tiles, and no faster with 31). Tiles
 * of 7 taps or fewer keep a second accumulator set over odd output columns
 * so that at least 8 independent FMA chains hide the FMA latency; larger
 * tiles have enough (a second set on the AVX-512 3x3 tile measured no
 * faster). (A kernel on NCHW that vectorises along output columns instead
 * avoids the transposes but loses more to misaligned loads, short rows and
 * idle lanes on 7x7 and 14x14 planes: it measured 1.4x to 2.4x slower.)
 *
 * The AVX-512 path takes 16-channel groups in every layout. On nChw8c,
 * where it copies the dy that the AVX2 path reads in place, and on NCHW it
 * measured (bench/dwconv_bench.c paths, the layers dwconv.h names, medians
 * of ten runs) 1.1-1.8x the AVX2 path on 5x5 and 7x7 and 1.0-1.3x on 3x3 at
 * stride 1, but 0.79x (nChw8c) and 0.87x (NCHW) on 3x3 at stride 2 from
 * 28x28, where packing takes most of the time; 16 channels everywhere keeps
 * one path per machine.
 *
 * Prefetching the next group's x and dy while a tile runs measured about a
 * quarter faster on 3x3 but up to a tenth slower on 5x5 and 7x7: there is
 * none.
 *
 * Parallel split: the N*CB planes, in image-major order (contiguous memory
 * in every layout), are cut into one equal run per thread; each thread sums
 * into its own partial (CB, kh, kw, G), and the partials are then added in
 * thread order, so a result depends only on the shape, the path and the
 * thread count. Scratch is planned for the larger of the 8- and 16-channel
 * plans, and a run takes no more threads than that plan holds, whichever
 * path runs (a path that needs less does not take more threads from it).
 */
#include "dwconv.h"

#include <stdint.h>
#include <string.h>

#include <omp.h>

/* NASC_DW_PORTABLE builds only the portable path (what other CPUs get). */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NASC_DW_PORTABLE)
#define DW_X86 1
#include <immintrin.h>
#define DW_AVX2 __attribute__((target("avx2,fma")))
#define DW_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define DW_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define DW_AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx2,fma")))
#endif

#define DW_V 8            /* lanes of a ymm register: channels per group on the scalar and AVX2 paths */
#define DW_V16 16         /* lanes of a zmm register: channels per group on the AVX-512 path */
#define DW_MAX_TILE 15    /* taps per register tile, AVX2 (16 ymm registers, one for dy) */
#define DW_MAX_TILE16 28  /* taps per register tile, AVX-512 (32 zmm registers, one for dy) */
#define DW_MAX_J 7        /* tap columns per tile */
#define DW_MAX_R 7        /* kernel rows per tile */

/* One register tile of taps: kernel rows [i0, i0+r), columns [j0, j0+j). */
typedef struct dw_tile_spec {
    int i0, r, j0, j;
} dw_tile_spec;

/* Everything a task needs, computed once per call. */
typedef struct dw_plan {
    nasc_dw_shape s;
    bool blocked;    /* x and dy are nChw8c or nChw16c, else NCHW */
    int pix;         /* blocked: floats per pixel of x and dy, 8 or 16 */
    nasc_dw_isa isa; /* the path that runs: SCALAR, AVX2 or AVX512 */
    int g;           /* channels per group (lanes per accumulator): 16 on AVX512, else 8 */
    int cb;          /* channel groups, ceil(C/g) */
    int taps;        /* kh*kw */
    int hp, wp;      /* x buffer: (OH-1)*sh + (kh-1)*dh + 1 rows, (OW-1)*sw + (kw-1)*dw + 1 columns */
    size_t xbuf;     /* floats of the x buffer, hp*wp*g */
    size_t dybuf;    /* floats of the dy buffer: OH*OW*g, 0 when dy is read in place (pix == g) */
    int n_tiles;
    dw_tile_spec *tiles;
    size_t per_thr; /* scratch floats per thread */
} dw_plan;

bool nasc_dw_shape_valid(const nasc_dw_shape *s) {
    return s && s->n >= 1 && s->c >= 1 && s->h >= 1 && s->w >= 1 && s->oh >= 1 && s->ow >= 1 && s->kh >= 1 &&
           s->kw >= 1 && s->sh >= 1 && s->sw >= 1 && s->dh >= 1 && s->dw >= 1;
}

nasc_dw_isa nasc_dw_isa_best(void) {
#ifdef DW_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512f") ? NASC_DW_ISA_AVX512 : NASC_DW_ISA_AVX2;
#endif
    return NASC_DW_ISA_SCALAR;
}

/* The path a request runs on this CPU: AUTO and AVX512 the best there is,
 * AVX2 that or scalar, anything else scalar. */
static nasc_dw_isa path_of(nasc_dw_isa isa) {
    nasc_dw_isa best = nasc_dw_isa_best();
    if (isa == NASC_DW_ISA_AUTO || isa == NASC_DW_ISA_AVX512) return best;
    if (isa == NASC_DW_ISA_AVX2 && best != NASC_DW_ISA_SCALAR) return NASC_DW_ISA_AVX2;
    return NASC_DW_ISA_SCALAR;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- */
/* Packing                                                          */
/* ---------------------------------------------------------------- */

/* Input columns [lo, hi) of a buffer row: those with iw = col - pl in [0, w). */
static void buf_cols(int wp, int pl, int w, int *lo, int *hi) {
    *lo = imin(imax(pl, 0), wp);
    *hi = imax(imin(pl + w, wp), *lo);
}

/* The interior of a buffer (hp, wp, 8) from the 8 channels at src of a
 * blocked plane (h, w, pix): pix 8 is a whole nChw8c plane, pix 16 one half
 * of an nChw16c one. Packs dy too (hp = h, wp = w, no padding). The border
 * stays as it is: zeroed once per task. */
static void pack_blocked(float *xb, int hp, int wp, const float *src, int pix, int h, int w, int pt, int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    if (lo == hi) return;
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + ((size_t)r * wp + lo) * DW_V;
        const float *from = src + ((size_t)(r - pt) * w + (lo - pl)) * pix;
        if (pix == DW_V) {
            memcpy(d, from, (size_t)(hi - lo) * DW_V * sizeof *xb);
            continue;
        }
        for (int k = 0; k < hi - lo; k++) memcpy(d + (size_t)k * DW_V, from + (size_t)k * pix, DW_V * sizeof *xb);
    }
}

/* Lanes [0, 8) of the interior of a buffer (hp, wp, g) from cn <= 8 NCHW
 * planes src + c*plane, each (h, w); lanes >= cn are zero. Packs dy too
 * (hp = h, wp = w, no padding). */
static void pack_plain_scalar(float *xb, int g, int hp, int wp, const float *src, size_t plane, int cn, int h, int w,
                              int pt, int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + (size_t)r * wp * g;
        const float *row = src + (size_t)(r - pt) * w; /* input column col - pl */
        for (int col = lo; col < hi; col++)
            for (int c = 0; c < DW_V; c++) d[(size_t)col * g + c] = c < cn ? row[c * plane + (col - pl)] : 0.0f;
    }
}

#ifdef DW_X86
/* pack_blocked with inline vector copies: rows are a few hundred bytes, and
 * a memcpy call per row costs as much as the copy. */
DW_AVX2 static void pack_blocked_avx2(float *xb, int hp, int wp, const float *src, int pix, int h, int w, int pt,
                                      int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    if (hi <= lo) return; /* every column is padding: no source row to point into */
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + ((size_t)r * wp + lo) * DW_V;
        const float *from = src + ((size_t)(r - pt) * w + (lo - pl)) * pix;
        int k = 0;
        for (; k + 4 <= hi - lo; k += 4) {
            __m256 a = _mm256_loadu_ps(from + k * pix), b = _mm256_loadu_ps(from + (k + 1) * pix);
            __m256 c = _mm256_loadu_ps(from + (k + 2) * pix), e = _mm256_loadu_ps(from + (k + 3) * pix);
            _mm256_store_ps(d + k * DW_V, a);
            _mm256_store_ps(d + (k + 1) * DW_V, b);
            _mm256_store_ps(d + (k + 2) * DW_V, c);
            _mm256_store_ps(d + (k + 3) * DW_V, e);
        }
        for (; k < hi - lo; k++) _mm256_store_ps(d + k * DW_V, _mm256_loadu_ps(from + k * pix));
    }
}

/* v[c] = 8 pixels of channel c -> 8 channels of pixel k, stored at o + g*k
 * for the first `count` pixels. */
DW_AVX2_INLINE void transpose8_store(float *o, int g, const __m256 *v, int count) {
    __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    __m256 r[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                   _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                   _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                   _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
    /* unrolled with a test per store: a loop to `count` becomes a memcpy call */
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        if (k < count) _mm256_store_ps(o + k * g, r[k]);
}

/* pack_plain_scalar with an 8x8 register transpose per 8 columns. The last
 * few columns of a row load 8 floats anyway (the extra lanes are not
 * stored), running into the next row, unless that would go past the end of
 * the plane: then the load is masked. */
DW_AVX2 static void pack_plain_avx2(float *xb, int g, int hp, int wp, const float *src, size_t plane, int cn, int h,
                                    int w, int pt, int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    const __m256 z = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((hi - lo) % 8), lane); /* the last columns */
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + (size_t)r * wp * g;
        const float *row = src + (size_t)(r - pt) * w; /* input column col - pl */
        __m256 v[8];
        int col = lo;
        for (; col + 8 <= hi; col += 8) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) v[c] = c < cn ? _mm256_loadu_ps(row + c * plane + (col - pl)) : z;
            transpose8_store(d + (size_t)col * g, g, v, 8);
        }
        if (col == hi) continue;
        if ((size_t)(r - pt) * w + (size_t)(col - pl) + 8 <= (size_t)h * w) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) v[c] = c < cn ? _mm256_loadu_ps(row + c * plane + (col - pl)) : z;
        } else {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) v[c] = c < cn ? _mm256_maskload_ps(row + c * plane + (col - pl), tail) : z;
        }
        transpose8_store(d + (size_t)col * g, g, v, hi - col);
    }
}

/* The interior of a buffer (hp, wp, 16) from a whole nChw16c plane (h, w,
 * 16): a row copy. */
DW_AVX512 static void pack_rows_avx512(float *xb, int hp, int wp, const float *src, int h, int w, int pt, int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    if (hi <= lo) return; /* every column is padding: no source row to point into */
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + ((size_t)r * wp + lo) * DW_V16;
        const float *from = src + ((size_t)(r - pt) * w + (lo - pl)) * DW_V16;
        int k = 0;
        for (; k + 4 <= hi - lo; k += 4) {
            __m512 a = _mm512_loadu_ps(from + k * DW_V16), b = _mm512_loadu_ps(from + (k + 1) * DW_V16);
            __m512 c = _mm512_loadu_ps(from + (k + 2) * DW_V16), e = _mm512_loadu_ps(from + (k + 3) * DW_V16);
            _mm512_store_ps(d + k * DW_V16, a);
            _mm512_store_ps(d + (k + 1) * DW_V16, b);
            _mm512_store_ps(d + (k + 2) * DW_V16, c);
            _mm512_store_ps(d + (k + 3) * DW_V16, e);
        }
        for (; k < hi - lo; k++) _mm512_store_ps(d + k * DW_V16, _mm512_loadu_ps(from + k * DW_V16));
    }
}

DW_AVX512_INLINE __m512 join8(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

/* The interior of a buffer (hp, wp, 16) from two nChw8c planes (h, w, 8):
 * lanes 0-7 from lo8, lanes 8-15 from hi8, or zero when hi8 is NULL (the
 * group's second block is past the last). Packs dy too (hp = h, wp = w, no
 * padding). */
DW_AVX512 static void pack_pair_avx512(float *xb, int hp, int wp, const float *lo8, const float *hi8, int h, int w,
                                       int pt, int pl) {
    int lo, hi;
    buf_cols(wp, pl, w, &lo, &hi);
    if (hi <= lo) return; /* every column is padding: no source row to point into */
    const __m256 z = _mm256_setzero_ps();
    for (int r = imax(pt, 0); r < hp && r - pt < h; r++) {
        float *d = xb + ((size_t)r * wp + lo) * DW_V16;
        size_t at = ((size_t)(r - pt) * w + (lo - pl)) * DW_V;
        const float *a = lo8 + at;
        if (hi8) {
            const float *b = hi8 + at;
            for (int k = 0; k < hi - lo; k++)
                _mm512_store_ps(d + k * DW_V16, join8(_mm256_loadu_ps(a + k * DW_V), _mm256_loadu_ps(b + k * DW_V)));
        } else {
            for (int k = 0; k < hi - lo; k++) _mm512_store_ps(d + k * DW_V16, join8(_mm256_loadu_ps(a + k * DW_V), z));
        }
    }
}
#endif

/* ---------------------------------------------------------------- */
/* Tile kernels                                                     */
/* ---------------------------------------------------------------- */

/* Arguments of one tile on one group of one image. */
typedef struct dw_tile {
    float *acc;      /* tap (i0, j0) of the group's (kh, kw, g) sums, added into */
    size_t acc_row;  /* floats between kernel rows in acc: kw*g */
    size_t acc_col;  /* floats between kernel columns in acc: g */
    const float *x;  /* the input of tap (i0, j0) at output pixel (0, 0) */
    size_t x_oh;     /* floats between output rows: sh buffer rows */
    size_t x_kr;     /* floats between kernel rows: dh buffer rows */
    size_t cstep;    /* floats between kernel columns: dw pixels */
    size_t ostep;    /* floats between output pixels of a row: sw pixels */
    const float *dy; /* (oh, nv, g) */
    size_t dy_row;   /* floats between dy rows */
    int oh, nv;      /* output rows, output pixels per row */
} dw_tile;

/* Portable: one tap at a time, g lanes in plain C. */
static void tile_scalar(const dw_tile *t, int R, int J, int g) {
    for (int r = 0; r < R; r++)
        for (int j = 0; j < J; j++) {
            float a[DW_V16];
            float *acc = t->acc + r * t->acc_row + j * t->acc_col;
            memcpy(a, acc, (size_t)g * sizeof *a);
            for (int oh = 0; oh < t->oh; oh++) {
                const float *x = t->x + oh * t->x_oh + r * t->x_kr + j * t->cstep;
                const float *d = t->dy + oh * t->dy_row;
                for (int v = 0; v < t->nv; v++)
                    for (int l = 0; l < g; l++) a[l] += x[v * t->ostep + l] * d[v * g + l];
            }
            memcpy(acc, a, (size_t)g * sizeof *a);
        }
}

#ifdef DW_X86
/* The register tile's loop for one vector width: VEC the register type,
 * N its floats, P the intrinsics' prefix (_mm256 or _mm512), ATTR the
 * target attribute. R, J and U (1 or 2 accumulator sets) are constants at
 * every call site, so the loops unroll fully and a[][][] lives in
 * registers. */
#define DW_TILE_BODY(NAME, VEC, N, P, ATTR)                                                                     \
    ATTR void NAME(const dw_tile *t, const int R, const int J, const int U) {                                   \
        VEC a[2][DW_MAX_R][DW_MAX_J];                                                                           \
        const size_t cstep = t->cstep, ostep = t->ostep;                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                     \
            _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) {                                               \
                a[0][r][j] = P##_loadu_ps(t->acc + r * t->acc_row + j * t->acc_col);                            \
                a[1][r][j] = P##_setzero_ps();                                                                  \
            }                                                                                                   \
        for (int oh = 0; oh < t->oh; oh++) {                                                                    \
            const float *x[DW_MAX_R];                                                                           \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) x[r] = t->x + oh * t->x_oh + r * t->x_kr;       \
            const float *d = t->dy + oh * t->dy_row;                                                            \
            int v = 0;                                                                                          \
            if (U == 2) {                                                                                       \
                for (; v + 1 < t->nv; v += 2) {                                                                 \
                    VEC d0 = P##_loadu_ps(d), d1 = P##_loadu_ps(d + (N));                                       \
                    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                         \
                        _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) {                                   \
                            a[0][r][j] = P##_fmadd_ps(P##_loadu_ps(x[r] + j * cstep), d0, a[0][r][j]);          \
                            a[1][r][j] = P##_fmadd_ps(P##_loadu_ps(x[r] + ostep + j * cstep), d1, a[1][r][j]);  \
                        }                                                                                       \
                    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) x[r] += 2 * ostep;                      \
                    d += 2 * (N);                                                                               \
                }                                                                                               \
            }                                                                                                   \
            for (; v < t->nv; v++) {                                                                            \
                VEC d0 = P##_loadu_ps(d);                                                                       \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                             \
                    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++)                                         \
                        a[0][r][j] = P##_fmadd_ps(P##_loadu_ps(x[r] + j * cstep), d0, a[0][r][j]);              \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) x[r] += ostep;                              \
                d += (N);                                                                                       \
            }                                                                                                   \
        }                                                                                                       \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                     \
            _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) {                                               \
                VEC sum = U == 2 ? P##_add_ps(a[0][r][j], a[1][r][j]) : a[0][r][j];                             \
                P##_storeu_ps(t->acc + r * t->acc_row + j * t->acc_col, sum);                                   \
            }                                                                                                   \
    }
DW_TILE_BODY(tile_avx2_body, __m256, DW_V, _mm256, DW_AVX2_INLINE)
DW_TILE_BODY(tile_avx512_body, __m512, DW_V16, _mm512, DW_AVX512_INLINE)
#undef DW_TILE_BODY

/* Every (R, J) with R*J <= 15, R <= 7, J <= 7 (what plan_tiles makes). */
#define DW_TILES(X)                                                                                                    \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2)   \
        X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(1, 4) X(2, 4) X(3, 4) X(1, 5) X(2, 5) X(3, 5) X(1, 6) X(2, 6)       \
            X(1, 7) X(2, 7)

#define DW_DEF_TILE(R, J)                                                                                              \
    DW_AVX2 static void tile_avx2_##R##_##J(const dw_tile *t) { tile_avx2_body(t, R, J, (R) * (J) <= 7 ? 2 : 1); }
DW_TILES(DW_DEF_TILE)
#undef DW_DEF_TILE

static void tile_avx2(const dw_tile *t, int R, int J) {
    switch (R * 8 + J) {
#define DW_CASE(R, J)                                                                                                  \
    case (R) * 8 + (J): tile_avx2_##R##_##J(t); return;
        DW_TILES(DW_CASE)
#undef DW_CASE
    default: tile_scalar(t, R, J, DW_V); return; /* not reached: plan_tiles keeps to the table */
    }
}

/* Every (R, J) with R*J <= 28, R <= 7, J <= 7 (what plan_tiles makes for
 * the AVX-512 path). */
#define DW_TILES16(X)                                                                                                  \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2)   \
        X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(6, 3) X(7, 3) X(1, 4) X(2, 4) X(3, 4) X(4, 4) X(5, 4) X(6, 4)       \
            X(7, 4) X(1, 5) X(2, 5) X(3, 5) X(4, 5) X(5, 5) X(1, 6) X(2, 6) X(3, 6) X(4, 6) X(1, 7) X(2, 7) X(3, 7)   \
                X(4, 7)

#define DW_DEF_TILE(R, J)                                                                                              \
    DW_AVX512 static void tile_avx512_##R##_##J(const dw_tile *t) {                                                    \
        tile_avx512_body(t, R, J, (R) * (J) <= 7 ? 2 : 1);                                                           \
    }
DW_TILES16(DW_DEF_TILE)
#undef DW_DEF_TILE

static void tile_avx512(const dw_tile *t, int R, int J) {
    switch (R * 8 + J) {
#define DW_CASE(R, J)                                                                                                  \
    case (R) * 8 + (J): tile_avx512_##R##_##J(t); return;
        DW_TILES16(DW_CASE)
#undef DW_CASE
    default: tile_scalar(t, R, J, DW_V16); return; /* not reached: plan_tiles keeps to the table */
    }
}
#endif

/* Split the taps into register tiles of at most max_tile taps: columns into
 * near-equal groups of at most 7, rows into near-equal groups of at most
 * max_tile/J, 7 at most (max_tile 15: 5x5 is 2+3 rows of 5, 7x7 1+2+2+2
 * rows of 7, 9x9 columns 4+5; max_tile 28: 5x5 is one tile, 7x7 3+4 rows).
 * Returns the number of tiles, written to out unless it is NULL. */
static int plan_tiles(const nasc_dw_shape *s, int max_tile, dw_tile_spec *out) {
    int n = 0;
    int ng = (s->kw + DW_MAX_J - 1) / DW_MAX_J;
    for (int cg = 0; cg < ng; cg++) {
        int j0 = cg * s->kw / ng, J = (cg + 1) * s->kw / ng - j0;
        int rmax = imin(max_tile / J, DW_MAX_R);
        int nr = (s->kh + rmax - 1) / rmax;
        for (int rg = 0; rg < nr; rg++) {
            int i0 = rg * s->kh / nr, R = (rg + 1) * s->kh / nr - i0;
            if (out) out[n] = (dw_tile_spec){i0, R, j0, J};
            n++;
        }
    }
    return n;
}

/* acc (kh, kw, g) += the taps of one group of one image: x buffer xb (hp, wp, g), dy (OH, OW, g). */
static void block_taps(const dw_plan *p, float *acc, const float *xb, const float *dyv) {
    const nasc_dw_shape *s = &p->s;
    size_t g = (size_t)p->g, row = (size_t)p->wp * g;
    dw_tile t = {.acc_row = (size_t)s->kw * g,
                 .acc_col = g,
                 .x_oh = (size_t)s->sh * row,
                 .x_kr = (size_t)s->dh * row,
                 .cstep = (size_t)s->dw * g,
                 .ostep = (size_t)s->sw * g,
                 .dy = dyv,
                 .dy_row = (size_t)s->ow * g,
                 .oh = s->oh,
                 .nv = s->ow};
    for (int k = 0; k < p->n_tiles; k++) {
        const dw_tile_spec *ts = &p->tiles[k];
        t.acc = acc + ((size_t)ts->i0 * s->kw + ts->j0) * g;
        t.x = xb + (size_t)ts->i0 * s->dh * row + (size_t)ts->j0 * s->dw * g;
        switch (p->isa) {
#ifdef DW_X86
        case NASC_DW_ISA_AVX512: tile_avx512(&t, ts->r, ts->j); break;
        case NASC_DW_ISA_AVX2: tile_avx2(&t, ts->r, ts->j); break;
#endif
        default: tile_scalar(&t, ts->r, ts->j, p->g); break;
        }
    }
}

/* ---------------------------------------------------------------- */
/* Driver                                                           */
/* ---------------------------------------------------------------- */

/* Channel group b of image n: x into the buffer xb and, unless it can be
 * read in place, dy into dyb. Returns where the group's dy (OH, OW, g) is. */
static const float *pack_group(const dw_plan *p, const float *x, const float *dy, int n, int b, float *xb, float *dyb) {
    const nasc_dw_shape *s = &p->s;
    size_t xplane = (size_t)s->h * s->w, yplane = (size_t)s->oh * s->ow;
    if (!p->blocked) {
        /* 8 channels at a time into lanes [l, l+8), zeros past C */
        for (int l = 0; l < p->g; l += DW_V) {
            int c0 = b * p->g + l, cn = imin(imax(s->c - c0, 0), DW_V);
            size_t c = (size_t)n * s->c + (size_t)(cn > 0 ? c0 : 0);
            const float *xs = x + c * xplane, *ys = dy + c * yplane;
#ifdef DW_X86
            if (p->isa != NASC_DW_ISA_SCALAR) {
                pack_plain_avx2(xb + l, p->g, p->hp, p->wp, xs, xplane, cn, s->h, s->w, s->pt, s->pl);
                pack_plain_avx2(dyb + l, p->g, s->oh, s->ow, ys, yplane, cn, s->oh, s->ow, 0, 0);
                continue;
            }
#endif
            pack_plain_scalar(xb + l, p->g, p->hp, p->wp, xs, xplane, cn, s->h, s->w, s->pt, s->pl);
            pack_plain_scalar(dyb + l, p->g, s->oh, s->ow, ys, yplane, cn, s->oh, s->ow, 0, 0);
        }
        return dyb;
    }
    int nblk = (s->c + p->pix - 1) / p->pix;
#ifdef DW_X86
    if (p->g > p->pix) {
        /* 16 lanes over nChw8c: blocks 2b and 2b+1 side by side */
        size_t b0 = (size_t)n * nblk + 2 * (size_t)b;
        bool two = 2 * b + 1 < nblk;
        pack_pair_avx512(xb, p->hp, p->wp, x + b0 * xplane * DW_V, two ? x + (b0 + 1) * xplane * DW_V : NULL, s->h,
                         s->w, s->pt, s->pl);
        pack_pair_avx512(dyb, s->oh, s->ow, dy + b0 * yplane * DW_V, two ? dy + (b0 + 1) * yplane * DW_V : NULL,
                         s->oh, s->ow, 0, 0);
        return dyb;
    }
#endif
    /* the group is a whole block (dy read in place) or, 8 lanes over
     * nChw16c, the half of one from lane (b % 2) * 8 */
    int per = p->pix / p->g;
    size_t blk = (size_t)n * nblk + (size_t)(b / per), lane = (size_t)(b % per) * p->g;
    const float *xs = x + blk * xplane * p->pix + lane, *ys = dy + blk * yplane * p->pix + lane;
    switch (p->isa) {
#ifdef DW_X86
    case NASC_DW_ISA_AVX512: pack_rows_avx512(xb, p->hp, p->wp, xs, s->h, s->w, s->pt, s->pl); return ys;
    case NASC_DW_ISA_AVX2:
        pack_blocked_avx2(xb, p->hp, p->wp, xs, p->pix, s->h, s->w, s->pt, s->pl);
        if (per == 1) return ys;
        pack_blocked_avx2(dyb, s->oh, s->ow, ys, p->pix, s->oh, s->ow, 0, 0);
        return dyb;
#endif
    default:
        pack_blocked(xb, p->hp, p->wp, xs, p->pix, s->h, s->w, s->pt, s->pl);
        if (per == 1) return ys;
        pack_blocked(dyb, s->oh, s->ow, ys, p->pix, s->oh, s->ow, 0, 0);
        return dyb;
    }
}

/* part (CB, kh, kw, g) += the planes [lo, hi) of the sequence (image 0,
 * group 0), (0, 1), ..., (0, CB-1), (1, 0), ... */
static void run_task(const dw_plan *p, float *scratch, const float *x, const float *dy, int64_t lo, int64_t hi,
                     float *part) {
    float *xb = scratch, *dyb = scratch + round16(p->xbuf);
    size_t acc_n = (size_t)p->taps * p->g;
    /* the padding is the same for every plane: zero it once */
    memset(xb, 0, p->xbuf * sizeof *xb);
    for (int64_t k = lo; k < hi; k++) {
        int n = (int)(k / p->cb), b = (int)(k % p->cb);
        const float *dyv = pack_group(p, x, dy, n, b, xb, dyb);
        block_taps(p, part + (size_t)b * acc_n, xb, dyv);
    }
}

/* dw_out rows of channel group b from its sums acc (kh, kw, g). */
static void write_block(const dw_plan *p, float *dw_out, int b, const float *acc) {
    int c0 = b * p->g, cn = imin(p->s.c - c0, p->g);
    for (int l = 0; l < cn; l++)
        for (int k = 0; k < p->taps; k++) dw_out[(size_t)(c0 + l) * p->taps + k] = acc[(size_t)k * p->g + l];
}

/* Element (n, c, h, w) of x or dy in the plan's layout. */
static float at(const dw_plan *p, const float *t, int n, int c, int h, int w, int hh, int ww) {
    if (!p->blocked) return t[(((size_t)n * p->s.c + c) * hh + h) * ww + w];
    int nblk = (p->s.c + p->pix - 1) / p->pix;
    return t[((((size_t)n * nblk + c / p->pix) * hh + h) * ww + w) * p->pix + c % p->pix];
}

/* No scratch memory to be had: direct summation, one channel per thread. */
static void run_direct(const dw_plan *p, const float *x, const float *dy, float *dw_out) {
    const nasc_dw_shape *s = &p->s;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                double sum = 0;
                for (int n = 0; n < s->n; n++)
                    for (int oh = 0; oh < s->oh; oh++) {
                        int ih = oh * s->sh - s->pt + i * s->dh;
                        if (ih < 0 || ih >= s->h) continue;
                        for (int ow = 0; ow < s->ow; ow++) {
                            int iw = ow * s->sw - s->pl + j * s->dw;
                            if (iw < 0 || iw >= s->w) continue;
                            sum += (double)at(p, x, n, c, ih, iw, s->h, s->w) * at(p, dy, n, c, oh, ow, s->oh, s->ow);
                        }
                    }
                dw_out[((size_t)c * s->kh + i) * s->kw + j] = (float)sum;
            }
}

/* The plan of shape s on path isa (SCALAR, AVX2 or AVX512): everything but
 * the tiles, which go into scratch. */
static void make_plan(const nasc_dw_shape *s, nasc_dw_layout layout, nasc_dw_isa isa, dw_plan *p) {
    bool blocked = layout != NASC_DW_NCHW;
    int g = isa == NASC_DW_ISA_AVX512 ? DW_V16 : DW_V;
    *p = (dw_plan){.s = *s, .blocked = blocked, .pix = layout == NASC_DW_NCHW16C ? 16 : 8, .isa = isa, .g = g};
    p->cb = (s->c + g - 1) / g;
    p->taps = s->kh * s->kw;
    p->hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    p->wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    p->xbuf = (size_t)p->hp * p->wp * g;
    p->dybuf = blocked && p->pix == g ? 0 : (size_t)s->oh * s->ow * g;
    p->per_thr = round16(p->xbuf) + round16(p->dybuf);
    p->n_tiles = plan_tiles(s, isa == NASC_DW_ISA_AVX512 ? DW_MAX_TILE16 : DW_MAX_TILE, NULL);
}

/* Scratch layout, in floats: the tiles, then per thread its buffers, then
 * per thread its partial sums (CB, kh, kw, g). */
static size_t tiles_floats(const dw_plan *p) {
    return round16((size_t)p->n_tiles * sizeof(dw_tile_spec) / sizeof(float) + 1);
}
static size_t thread_floats(const dw_plan *p) { return p->per_thr + (size_t)p->cb * p->taps * p->g; }

/* What scratch is planned for: the largest plan of each path, NCHW (it has
 * a dy buffer) in 8-channel groups with 15-tap tiles (scalar, AVX2) and in
 * 16-channel groups with 28-tap tiles (AVX-512). Every run's plan needs no
 * more than one of them, per thread and in tiles. */
static void sizing_plans(const nasc_dw_shape *s, dw_plan q[2]) {
    make_plan(s, NASC_DW_NCHW, NASC_DW_ISA_SCALAR, &q[0]);
    make_plan(s, NASC_DW_NCHW, NASC_DW_ISA_AVX512, &q[1]);
}

size_t nasc_dw_scratch_bytes(const nasc_dw_shape *s, int threads) {
    if (!nasc_dw_shape_valid(s)) return 0;
    if (threads < 1) threads = 1;
    dw_plan q[2];
    sizing_plans(s, q);
    size_t need = 0;
    for (int i = 0; i < 2; i++) {
        size_t n = tiles_floats(&q[i]) + (size_t)threads * thread_floats(&q[i]);
        if (n > need) need = n;
    }
    return round16(need) * sizeof(float);
}

/* The threads `have` floats of scratch were planned for (the most that fit
 * on every path): the cap scratch puts on a run's threads is the same
 * whichever path runs. */
static size_t threads_fit(const nasc_dw_shape *s, size_t have) {
    dw_plan q[2];
    sizing_plans(s, q);
    size_t fit = SIZE_MAX;
    for (int i = 0; i < 2; i++) {
        if (have <= tiles_floats(&q[i])) return 0;
        size_t f = (have - tiles_floats(&q[i])) / thread_floats(&q[i]);
        if (f < fit) fit = f;
    }
    return fit;
}

nasc_status nasc_dw_bwd_weights_run(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                    float *dw_out, nasc_dw_isa isa, void *scratch, size_t bytes) {
    if (!nasc_dw_shape_valid(s) || (layout != NASC_DW_NCHW && layout != NASC_DW_NCHW8C && layout != NASC_DW_NCHW16C) ||
        !x || !dy || !dw_out ||
        ((uintptr_t)scratch & 63) != 0)
        return NASC_EINPUT;
    dw_plan p;
    make_plan(s, layout, path_of(isa), &p);

    /* thread k takes the k-th of nthr equal runs of planes in image-major
     * order (contiguous memory in every layout) and sums into its own
     * partial (CB, kh, kw, g); the partials are then added in thread order */
    int64_t planes = (int64_t)s->n * p.cb;
    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nthr < 1) nthr = 1;
    if (nthr > planes) nthr = (int)planes;
    size_t fit = threads_fit(s, scratch ? bytes / sizeof(float) : 0);
    if ((size_t)nthr > fit) nthr = (int)fit; /* scratch planned for fewer threads than run now */
    if (isa == NASC_DW_ISA_DIRECT || nthr < 1) {
        run_direct(&p, x, dy, dw_out);
        return NASC_OK;
    }

    size_t acc_n = (size_t)p.taps * p.g;
    size_t part_off = tiles_floats(&p) + (size_t)nthr * p.per_thr;
    float *mem = scratch;
    p.tiles = (dw_tile_spec *)mem;
    plan_tiles(s, p.isa == NASC_DW_ISA_AVX512 ? DW_MAX_TILE16 : DW_MAX_TILE, p.tiles);
    float *part = mem + part_off;
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int k = 0; k < nthr; k++) {
        float *pk = part + (size_t)k * p.cb * acc_n;
        memset(pk, 0, (size_t)p.cb * acc_n * sizeof *pk);
        run_task(&p, mem + tiles_floats(&p) + (size_t)k * p.per_thr, x, dy, planes * k / nthr, planes * (k + 1) / nthr,
                 pk);
    }
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int b = 0; b < p.cb; b++) {
        float *sum = part + (size_t)b * acc_n;
        for (int k = 1; k < nthr; k++) {
            const float *q = part + ((size_t)k * p.cb + b) * acc_n;
            for (size_t e = 0; e < acc_n; e++) sum[e] += q[e];
        }
        write_block(&p, dw_out, b, sum);
    }
    return NASC_OK;
}

nasc_status nasc_dw_bwd_weights_isa(nasc_ctx *ctx, const nasc_dw_shape *s, nasc_dw_layout layout, const float *x,
                                    const float *dy, float *dw_out, nasc_dw_isa isa) {
    if (!nasc_dw_shape_valid(s)) return NASC_EINPUT;
    if (isa == NASC_DW_ISA_DIRECT) return nasc_dw_bwd_weights_run(s, layout, x, dy, dw_out, isa, NULL, 0);
    size_t bytes = nasc_dw_scratch_bytes(s, omp_in_parallel() ? 1 : omp_get_max_threads());
    char *raw = nasc_alloc(ctx, bytes + 63); /* aligned by hand: the allocator promises no more than malloc */
    if (!raw) return NASC_ENOMEM;
    void *scratch = raw + ((64 - (uintptr_t)raw % 64) % 64);
    nasc_status st = nasc_dw_bwd_weights_run(s, layout, x, dy, dw_out, isa, scratch, bytes);
    nasc_free(ctx, raw);
    return st;
}

nasc_status nasc_dw_bwd_weights(nasc_ctx *ctx, const nasc_dw_shape *s, nasc_dw_layout layout, const float *x,
                                const float *dy, float *dw_out) {
    return nasc_dw_bwd_weights_isa(ctx, s, layout, x, dy, dw_out, NASC_DW_ISA_AUTO);
}
