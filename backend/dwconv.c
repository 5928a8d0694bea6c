/* dwconv.c - depthwise convolution backward-weights (see dwconv.h).
 *
 * Work: tasks (channel block cb of 8, batch chunk t), t < T. A task, for each
 * of its images, packs the x plane of its 8 channels into a zero-padded,
 * channel-interleaved buffer xp (Hp, Wp, 8) so that every tap reads in
 * bounds and without branches, gets dy as (OH, OW, 8) (in place for nChw8c,
 * transposed for NCHW), and adds into acc (kh, kw, 8) with the tile kernel.
 *
 * Tile kernel: taps are processed in tiles of R kernel rows x J kernel
 * columns (R*J <= 15, J <= 7) held in 8-lane registers; per output pixel it
 * loads dy once and does one load+FMA per tap. Small tiles (R*J <= 7) keep
 * two accumulator sets over even and odd output columns so that at least 8
 * independent FMA chains cover the FMA latency.
 */
#include "dwconv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DW_X86 1
#include <immintrin.h>
#define DW_AVX2 __attribute__((target("avx2,fma")))
#define DW_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#endif

#define DW_V 8        /* channels per block = lanes per accumulator */
#define DW_MAX_TILE 15 /* taps per register tile (16 ymm registers, one for dy) */
#define DW_MAX_J 7     /* kernel columns per tile */
#define DW_MAX_R 7     /* kernel rows per tile */

/* Everything a task needs, computed once per call. */
typedef struct dw_plan {
    nasc_dw_shape s;
    nasc_dw_layout layout;
    int cb;        /* channel blocks, ceil(C/8) */
    int hp, wp;    /* padded x plane: rows (OH-1)*sh + (kh-1)*dh + 1, columns likewise */
    int taps;      /* kh*kw */
    int t;         /* batch chunks per channel block */
    size_t per_thr; /* scratch floats per thread: xp, dyp (NCHW), acc */
    size_t xp_off, dy_off, acc_off;
    bool avx2;
} dw_plan;

bool nasc_dw_shape_valid(const nasc_dw_shape *s) {
    return s && s->n >= 1 && s->c >= 1 && s->h >= 1 && s->w >= 1 && s->oh >= 1 && s->ow >= 1 && s->kh >= 1 &&
           s->kw >= 1 && s->sh >= 1 && s->sw >= 1 && s->dh >= 1 && s->dw >= 1;
}

nasc_dw_isa nasc_dw_isa_best(void) {
#ifdef DW_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NASC_DW_ISA_AVX2;
#endif
    return NASC_DW_ISA_SCALAR;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int gcd(int a, int b) {
    while (b) {
        int r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* ---------------------------------------------------------------- */
/* Packing                                                          */
/* ---------------------------------------------------------------- */

/* The columns [lo, hi) of a padded row of wp pixels come from the input
 * (iw = col - pl); the rest are zero. */
static void pad_cols(int wp, int pl, int w, int *lo, int *hi) {
    *lo = pl > 0 ? pl : 0;
    *hi = pl + w < wp ? pl + w : wp;
    if (*lo > wp) *lo = wp;
    if (*hi < *lo) *hi = *lo;
}

/* The interior of xp (hp, wp, 8) from the nChw8c plane src (h, w, 8); the
 * border (padding) is left as it is: zeroed once per task. */
static void pack_blocked(float *xp, int hp, int wp, const float *src, int h, int w, int pt, int pl) {
    int lo, hi;
    pad_cols(wp, pl, w, &lo, &hi);
    if (lo == hi) return;
    for (int r = pt > 0 ? pt : 0; r < hp && r - pt < h; r++)
        memcpy(xp + ((size_t)r * wp + lo) * DW_V, src + ((size_t)(r - pt) * w + (lo - pl)) * DW_V,
               (size_t)(hi - lo) * DW_V * sizeof *xp);
}

/* The interior of xp (hp, wp, 8) from cn <= 8 plain planes src + c*plane,
 * each (h, w); lanes >= cn are zero. Also packs dy (hp = h, wp = w, no
 * padding). */
static void pack_plain_scalar(float *xp, int hp, int wp, const float *src, size_t plane, int cn, int h, int w, int pt,
                              int pl) {
    int lo, hi;
    pad_cols(wp, pl, w, &lo, &hi);
    for (int r = pt > 0 ? pt : 0; r < hp && r - pt < h; r++) {
        float *d = xp + (size_t)r * wp * DW_V;
        const float *s = src + (size_t)(r - pt) * w - pl;
        for (int col = lo; col < hi; col++)
            for (int c = 0; c < DW_V; c++) d[(size_t)col * DW_V + c] = c < cn ? s[c * plane + col] : 0.0f;
    }
}

#ifdef DW_X86
/* 8 vectors v[c] (8 pixels of channel c) to 8 vectors (8 channels of pixel
 * k), the first `count` stored at o + 8k. */
DW_AVX2_INLINE void transpose8_store(float *o, const __m256 *v, int count) {
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
    if (count == 8) {
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(o + k * DW_V, r[k]);
    } else {
        for (int k = 0; k < count; k++) _mm256_storeu_ps(o + k * DW_V, r[k]);
    }
}

/* pack_plain_scalar with an 8x8 register transpose per 8 columns (masked
 * loads for the last few, so nothing past a row is read). */
DW_AVX2 static void pack_plain_avx2(float *xp, int hp, int wp, const float *src, size_t plane, int cn, int h, int w,
                                    int pt, int pl) {
    int lo, hi;
    pad_cols(wp, pl, w, &lo, &hi);
    const __m256 z = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((hi - lo) % 8), lane);
    for (int r = pt > 0 ? pt : 0; r < hp && r - pt < h; r++) {
        float *d = xp + (size_t)r * wp * DW_V;
        const float *s = src + (size_t)(r - pt) * w - pl;
        __m256 v[8];
        int col = lo;
        for (; col + 8 <= hi; col += 8) {
            for (int c = 0; c < 8; c++) v[c] = c < cn ? _mm256_loadu_ps(s + c * plane + col) : z;
            transpose8_store(d + (size_t)col * DW_V, v, 8);
        }
        if (col < hi) {
            for (int c = 0; c < 8; c++) v[c] = c < cn ? _mm256_maskload_ps(s + c * plane + col, tail) : z;
            transpose8_store(d + (size_t)col * DW_V, v, hi - col);
        }
    }
}
#endif

/* ---------------------------------------------------------------- */
/* Tile kernels                                                     */
/* ---------------------------------------------------------------- */

/* Arguments of one tile: kernel rows [i0, i0+R), columns [j0, j0+J). */
typedef struct dw_tile {
    float *acc;       /* (kh, kw, 8), added into */
    const float *xp;  /* (hp, wp, 8) */
    const float *dy;  /* (oh, ow, 8) */
    int kw, wp, oh, ow, sh, sw, dh, dw;
    int i0, j0;
} dw_tile;

/* Portable: one tap at a time, 8 lanes in plain C. */
static void tile_scalar(const dw_tile *t, int R, int J) {
    for (int r = 0; r < R; r++)
        for (int j = 0; j < J; j++) {
            float a[DW_V];
            float *acc = t->acc + ((size_t)(t->i0 + r) * t->kw + t->j0 + j) * DW_V;
            memcpy(a, acc, sizeof a);
            for (int oh = 0; oh < t->oh; oh++) {
                const float *x = t->xp + ((size_t)(oh * t->sh + (t->i0 + r) * t->dh) * t->wp + (size_t)(t->j0 + j) * t->dw) * DW_V;
                const float *d = t->dy + (size_t)oh * t->ow * DW_V;
                for (int ow = 0; ow < t->ow; ow++)
                    for (int l = 0; l < DW_V; l++) a[l] += x[(size_t)ow * t->sw * DW_V + l] * d[(size_t)ow * DW_V + l];
            }
            memcpy(acc, a, sizeof a);
        }
}

#ifdef DW_X86
/* R, J, U (1 or 2 accumulator sets) and DWC (column dilation, 0 = runtime)
 * are constants at every call site, so the loops unroll fully and a[][][]
 * lives in registers. */
DW_AVX2_INLINE void tile_avx2_body(const dw_tile *t, const int R, const int J, const int U, const int DWC) {
    __m256 a[2][DW_MAX_R][DW_MAX_J];
    const size_t cstep = (size_t)(DWC ? DWC : t->dw) * DW_V; /* floats between kernel columns */
    const size_t ostep = (size_t)t->sw * DW_V;                /* floats between output columns */
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            a[0][r][j] = _mm256_loadu_ps(t->acc + ((size_t)(t->i0 + r) * t->kw + t->j0 + j) * DW_V);
            a[1][r][j] = _mm256_setzero_ps();
        }
    for (int oh = 0; oh < t->oh; oh++) {
        const float *x[DW_MAX_R];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            x[r] = t->xp + (size_t)(oh * t->sh + (t->i0 + r) * t->dh) * t->wp * DW_V + (size_t)t->j0 * cstep;
        const float *d = t->dy + (size_t)oh * t->ow * DW_V;
        int ow = 0;
        if (U == 2) {
            for (; ow + 1 < t->ow; ow += 2) {
                __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + DW_V);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
#pragma GCC unroll 8
                    for (int j = 0; j < J; j++) {
                        a[0][r][j] = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + j * cstep), d0, a[0][r][j]);
                        a[1][r][j] = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + ostep + j * cstep), d1, a[1][r][j]);
                    }
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) x[r] += 2 * ostep;
                d += 2 * DW_V;
            }
        }
        for (; ow < t->ow; ow++) {
            __m256 d0 = _mm256_loadu_ps(d);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
#pragma GCC unroll 8
                for (int j = 0; j < J; j++)
                    a[0][r][j] = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + j * cstep), d0, a[0][r][j]);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) x[r] += ostep;
            d += DW_V;
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            __m256 v = U == 2 ? _mm256_add_ps(a[0][r][j], a[1][r][j]) : a[0][r][j];
            _mm256_storeu_ps(t->acc + ((size_t)(t->i0 + r) * t->kw + t->j0 + j) * DW_V, v);
        }
}

/* Every (R, J) with R*J <= 15, R <= 7, J <= 7. */
#define DW_TILES(X)                                                                                                    \
    X(1, 1) X(2, 1) X(3, 1) X(4, 1) X(5, 1) X(6, 1) X(7, 1) X(1, 2) X(2, 2) X(3, 2) X(4, 2) X(5, 2) X(6, 2) X(7, 2)   \
        X(1, 3) X(2, 3) X(3, 3) X(4, 3) X(5, 3) X(1, 4) X(2, 4) X(3, 4) X(1, 5) X(2, 5) X(3, 5) X(1, 6) X(2, 6)       \
            X(1, 7) X(2, 7)

#define DW_DEF_TILE(R, J)                                                                                              \
    DW_AVX2 static void tile_avx2_##R##_##J(const dw_tile *t) {                                                        \
        if (t->dw == 1)                                                                                                \
            tile_avx2_body(t, R, J, (R) * (J) <= 7 ? 2 : 1, 1);                                                        \
        else                                                                                                           \
            tile_avx2_body(t, R, J, (R) * (J) <= 7 ? 2 : 1, 0);                                                        \
    }
DW_TILES(DW_DEF_TILE)
#undef DW_DEF_TILE

static void tile_avx2(const dw_tile *t, int R, int J) {
    switch (R * 8 + J) {
#define DW_CASE(R, J)                                                                                                  \
    case (R) * 8 + (J): tile_avx2_##R##_##J(t); return;
        DW_TILES(DW_CASE)
#undef DW_CASE
    default: tile_scalar(t, R, J); return; /* not reached: plan_tiles keeps to the table */
    }
}
#endif

/* acc (kh, kw, 8) += the taps of one image's packed planes. */
static void plane_taps(const dw_plan *p, float *acc, const float *xp, const float *dyp) {
    const nasc_dw_shape *s = &p->s;
    dw_tile t = {acc, xp, dyp, s->kw, p->wp, s->oh, s->ow, s->sh, s->sw, s->dh, s->dw, 0, 0};
    /* columns in ceil(kw/7) near-equal groups, then as many rows as fit */
    int ng = (s->kw + DW_MAX_J - 1) / DW_MAX_J;
    for (int g = 0; g < ng; g++) {
        int j0 = g * s->kw / ng, J = (g + 1) * s->kw / ng - j0;
        int rmax = DW_MAX_TILE / J;
        if (rmax > DW_MAX_R) rmax = DW_MAX_R;
        /* near-equal row groups too: 5 rows of 5 -> 3 + 2, 7 of 7 -> 2+2+2+1 */
        int nr = (s->kh + rmax - 1) / rmax;
        for (int q = 0; q < nr; q++) {
            int i0 = q * s->kh / nr, R = (q + 1) * s->kh / nr - i0;
            t.i0 = i0, t.j0 = j0;
#ifdef DW_X86
            if (p->avx2) {
                tile_avx2(&t, R, J);
                continue;
            }
#endif
            tile_scalar(&t, R, J);
        }
    }
}

/* ---------------------------------------------------------------- */
/* Driver                                                           */
/* ---------------------------------------------------------------- */

/* acc (kh, kw, 8) = the sum over images [n0, n1) of channel block cb. */
static void run_task(const dw_plan *p, float *scratch, const float *x, const float *dy, int cb, int n0, int n1,
                     float *acc) {
    const nasc_dw_shape *s = &p->s;
    float *xp = scratch + p->xp_off, *dyp = scratch + p->dy_off;
    int c0 = cb * DW_V, cn = s->c - c0 < DW_V ? s->c - c0 : DW_V;
    size_t xplane = (size_t)s->h * s->w, yplane = (size_t)s->oh * s->ow;
    memset(acc, 0, (size_t)p->taps * DW_V * sizeof *acc);
    /* the padding border is the same for every image: zero it once */
    memset(xp, 0, (size_t)p->hp * p->wp * DW_V * sizeof *xp);
    for (int n = n0; n < n1; n++) {
        const float *dplane;
        if (p->layout == NASC_DW_NCHW8C) {
            size_t blk = (size_t)n * p->cb + cb;
            pack_blocked(xp, p->hp, p->wp, x + blk * xplane * DW_V, s->h, s->w, s->pt, s->pl);
            dplane = dy + blk * yplane * DW_V;
        } else {
            const float *xs = x + ((size_t)n * s->c + c0) * xplane, *ys = dy + ((size_t)n * s->c + c0) * yplane;
#ifdef DW_X86
            if (p->avx2) {
                pack_plain_avx2(xp, p->hp, p->wp, xs, xplane, cn, s->h, s->w, s->pt, s->pl);
                pack_plain_avx2(dyp, s->oh, s->ow, ys, yplane, cn, s->oh, s->ow, 0, 0);
            } else
#endif
            {
                pack_plain_scalar(xp, p->hp, p->wp, xs, xplane, cn, s->h, s->w, s->pt, s->pl);
                pack_plain_scalar(dyp, s->oh, s->ow, ys, yplane, cn, s->oh, s->ow, 0, 0);
            }
            dplane = dyp;
        }
        plane_taps(p, acc, xp, dplane);
    }
}

/* dw_out rows of block cb from acc (kh, kw, 8). */
static void write_block(const dw_plan *p, float *dw_out, int cb, const float *acc) {
    int c0 = cb * DW_V, cn = p->s.c - c0 < DW_V ? p->s.c - c0 : DW_V;
    for (int l = 0; l < cn; l++)
        for (int k = 0; k < p->taps; k++) dw_out[(size_t)(c0 + l) * p->taps + k] = acc[(size_t)k * DW_V + l];
}

/* Element (n, c, h, w) of x or dy in the plan's layout. */
static float at(const dw_plan *p, const float *t, int n, int c, int h, int w, int hh, int ww) {
    if (p->layout == NASC_DW_NCHW) return t[(((size_t)n * p->s.c + c) * hh + h) * ww + w];
    return t[((((size_t)n * p->cb + c / DW_V) * hh + h) * ww + w) * DW_V + c % DW_V];
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
                            sum += (double)at(p, x, n, c, ih, iw, s->h, s->w) *
                                   at(p, dy, n, c, oh, ow, s->oh, s->ow);
                        }
                    }
                dw_out[((size_t)c * s->kh + i) * s->kw + j] = (float)sum;
            }
}

nasc_status nasc_dw_bwd_weights_isa(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                    float *dw_out, nasc_dw_isa isa) {
    if (!nasc_dw_shape_valid(s) || (layout != NASC_DW_NCHW && layout != NASC_DW_NCHW8C) || !x || !dy || !dw_out)
        return NASC_EINPUT;
    dw_plan p = {.s = *s, .layout = layout};
    p.cb = (s->c + DW_V - 1) / DW_V;
    p.hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    p.wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    p.taps = s->kh * s->kw;
    p.avx2 = isa != NASC_DW_ISA_SCALAR && nasc_dw_isa_best() == NASC_DW_ISA_AVX2;
    p.xp_off = 0;
    p.dy_off = round16((size_t)p.hp * p.wp * DW_V);
    p.acc_off = p.dy_off + (layout == NASC_DW_NCHW ? round16((size_t)s->oh * s->ow * DW_V) : 0);
    p.per_thr = p.acc_off + round16((size_t)p.taps * DW_V);

    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nthr < 1) nthr = 1;
    /* split the batch when the channel blocks do not spread evenly */
    p.t = 1;
    if (nthr > 1 && p.cb % nthr != 0 && p.cb < 8 * nthr) p.t = nthr / gcd(p.cb, nthr);
    if (p.t > s->n) p.t = s->n;
    int tasks = p.cb * p.t;
    if (nthr > tasks) nthr = tasks;

    size_t part_off = (size_t)nthr * p.per_thr;
    size_t total = part_off + (p.t > 1 ? (size_t)tasks * p.taps * DW_V : 0);
    float *mem = aligned_alloc(64, round16(total) * sizeof(float));
    if (!mem) {
        run_direct(&p, x, dy, dw_out);
        return NASC_OK;
    }
    float *part = mem + part_off;
#pragma omp parallel num_threads(nthr)
    {
        float *scratch = mem + (size_t)omp_get_thread_num() * p.per_thr;
#pragma omp for schedule(static)
        for (int k = 0; k < tasks; k++) {
            int cb = k / p.t, t = k % p.t;
            int n0 = (int)((int64_t)t * s->n / p.t), n1 = (int)((int64_t)(t + 1) * s->n / p.t);
            float *acc = p.t > 1 ? part + (size_t)k * p.taps * DW_V : scratch + p.acc_off;
            run_task(&p, scratch, x, dy, cb, n0, n1, acc);
            if (p.t == 1) write_block(&p, dw_out, cb, acc);
        }
        if (p.t > 1) {
            /* the partial sums of block cb, added in chunk order */
#pragma omp for schedule(static)
            for (int cb = 0; cb < p.cb; cb++) {
                float *sum = part + (size_t)cb * p.t * p.taps * DW_V;
                for (int t = 1; t < p.t; t++) {
                    const float *q = sum + (size_t)t * p.taps * DW_V;
                    for (size_t e = 0; e < (size_t)p.taps * DW_V; e++) sum[e] += q[e];
                }
                write_block(&p, dw_out, cb, sum);
            }
        }
    }
    free(mem);
    return NASC_OK;
}

nasc_status nasc_dw_bwd_weights(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                float *dw_out) {
    return nasc_dw_bwd_weights_isa(s, layout, x, dy, dw_out, NASC_DW_ISA_AUTO);
}
