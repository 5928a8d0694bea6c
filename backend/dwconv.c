/* dwconv.c - depthwise convolution backward-weights (see dwconv.h).
 *
 * One register-tiled inner kernel serves both layouts. It sees an input
 * buffer of rows of 8-float vectors and an output-gradient buffer of rows of
 * 8-float vectors, and adds, for a tile of up to 15 filter taps (R kernel
 * rows x J tap columns, held in 8-lane registers), x-vector * dy-vector over
 * every output vector: one dy load and one fused load+FMA per tap. Tiles with
 * 7 taps or fewer keep a second accumulator set over odd output vectors so
 * that at least 8 independent FMA chains hide the FMA latency.
 *
 *  - nChw8c ("blocked"): a vector is the 8 channels of one pixel. A unit of
 *    work is one block of 8 channels of one image; its x plane is copied
 *    into a zero-padded buffer (Hp, Wp, 8) so that every tap reads in
 *    bounds; dy is used in place. Lanes are channels: no reduction at the end.
 *  - NCHW ("plain"): a vector is 8 consecutive output columns of one channel.
 *    A unit is one channel of one image; its x plane is copied into zero-
 *    padded rows split into sw column phases (phase q holds padded columns
 *    q, q+sw, q+2sw, ...), so the input of 8 consecutive outputs for one tap
 *    is 8 consecutive floats of one phase; taps of one phase are evenly
 *    spaced. dy rows are padded with zeros to a multiple of 8 (in place when
 *    OW already is). Lanes are output columns: summed at the end.
 *
 * Parallel split: T batch chunks x G unit groups, T*G >= threads; each task
 * accumulates into its own partial (units, kh, kw, 8), then the partials are
 * added in chunk order, so results depend only on shape and thread count.
 * Each thread streams through whole images (all units of image n, then
 * n+1), which is contiguous memory in both layouts.
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

#define DW_V 8         /* floats per vector (lanes per accumulator) */
#define DW_MAX_TILE 15 /* taps per register tile (16 ymm registers, one for dy) */
#define DW_MAX_J 7     /* tap columns per tile */
#define DW_MAX_R 7     /* kernel rows per tile */

/* One register tile of taps: kernel rows [i0, i0+R), tap columns j0,
 * j0+jstep, ..., J of them; xoff is where tap (i0, j0) of output vector
 * (0, 0) reads in its phase of the x buffer. */
typedef struct dw_tile_spec {
    int i0, r, j0, j, jstep;
    int phase;
    size_t xoff;   /* floats from the phase start: i0*dh rows and the column offset */
    size_t cstep;  /* floats between consecutive tap columns */
} dw_tile_spec;

/* Everything a task needs, computed once per call. */
typedef struct dw_plan {
    nasc_dw_shape s;
    bool blocked;     /* nChw8c, else NCHW */
    bool avx2;
    int units;        /* channel blocks (blocked) or channels (plain) per image */
    int taps;         /* kh*kw */
    int hp;           /* padded x rows: (OH-1)*sh + (kh-1)*dh + 1 */
    int xw;           /* x buffer row width in vectors (blocked) or floats (plain, per phase) */
    int phases;       /* column phases of the x buffer: 1 (blocked) or sw (plain) */
    size_t xbuf;      /* floats of the x buffer */
    int nv;           /* output vectors per row: OW (blocked) or ceil(OW/8) (plain) */
    size_t dy_row;    /* floats per dy row as the kernel reads it */
    bool dy_copy;     /* plain with OW % 8 != 0: dy rows padded into a buffer */
    size_t dybuf;     /* floats of that buffer */
    int n_tiles;
    dw_tile_spec *tiles;
    int t, g;         /* batch chunks, unit groups */
    size_t per_thr;   /* scratch floats per thread: x buffer, dy buffer */
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

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- */
/* Packing                                                          */
/* ---------------------------------------------------------------- */

/* The interior of the blocked x buffer (hp, xw, 8) from the nChw8c plane
 * src (h, w, 8). The border stays as it is: zeroed once per task. */
static void pack_blocked(const dw_plan *p, float *xb, const float *src) {
    const nasc_dw_shape *s = &p->s;
    int lo = imax(s->pl, 0), hi = imin(s->pl + s->w, p->xw);
    if (lo >= hi) return;
    for (int r = imax(s->pt, 0); r < p->hp && r - s->pt < s->h; r++)
        memcpy(xb + ((size_t)r * p->xw + lo) * DW_V, src + ((size_t)(r - s->pt) * s->w + (lo - s->pl)) * DW_V,
               (size_t)(hi - lo) * DW_V * sizeof *xb);
}

/* Phase q of the plain x buffer holds padded columns q + m*sw, m < xw; the
 * range of m that falls inside the input. */
static void phase_cols(const dw_plan *p, int q, int *lo, int *hi) {
    const nasc_dw_shape *s = &p->s;
    /* iw = m*sw + q - pl in [0, w) */
    int a = s->pl - q; /* m*sw >= a */
    *lo = a <= 0 ? 0 : (a + s->sw - 1) / s->sw;
    int b = s->w - 1 + s->pl - q; /* m*sw <= b */
    *hi = b < 0 ? 0 : imin(b / s->sw + 1, p->xw);
    if (*hi < *lo) *hi = *lo;
}

/* The interior of the plain x buffer (phases, hp, xw) from the plane src (h, w). */
static void pack_plain_scalar(const dw_plan *p, float *xb, const float *src) {
    const nasc_dw_shape *s = &p->s;
    for (int q = 0; q < p->phases; q++) {
        int lo, hi;
        phase_cols(p, q, &lo, &hi);
        if (lo >= hi) continue;
        for (int r = imax(s->pt, 0); r < p->hp && r - s->pt < s->h; r++) {
            float *d = xb + ((size_t)q * p->hp + r) * p->xw;
            const float *row = src + (size_t)(r - s->pt) * s->w + q - s->pl;
            if (s->sw == 1)
                memcpy(d + lo, row + lo, (size_t)(hi - lo) * sizeof *d);
            else
                for (int m = lo; m < hi; m++) d[m] = row[(size_t)m * s->sw];
        }
    }
}

#ifdef DW_X86
/* Stride 2: both phases from 16 input floats at a time. */
DW_AVX2 static void pack_plain_s2_avx2(const dw_plan *p, float *xb, const float *src) {
    const nasc_dw_shape *s = &p->s;
    int lo[2], hi[2];
    phase_cols(p, 0, &lo[0], &hi[0]);
    phase_cols(p, 1, &lo[1], &hi[1]);
    for (int r = imax(s->pt, 0); r < p->hp && r - s->pt < s->h; r++) {
        const float *row = src + (size_t)(r - s->pt) * s->w;
        for (int q = 0; q < 2; q++) {
            /* phase q, column m reads row[2m + q - pl]; go 8 m at a time while
             * the 16 floats from row[2m + q - pl] stay inside the row */
            float *d = xb + ((size_t)q * p->hp + r) * p->xw;
            const float *base = row + q - s->pl;
            int m = lo[q];
            for (; m + 8 <= hi[q] && 2 * m + q - s->pl + 16 <= s->w; m += 8) {
                __m256 a = _mm256_loadu_ps(base + 2 * m), b = _mm256_loadu_ps(base + 2 * m + 8);
                __m256 e = _mm256_shuffle_ps(a, b, 0x88); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
                e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
                _mm256_storeu_ps(d + m, e);
            }
            for (; m < hi[q]; m++) d[m] = base[2 * m];
        }
    }
}
#endif

/* ---------------------------------------------------------------- */
/* Tile kernels                                                     */
/* ---------------------------------------------------------------- */

/* Arguments of one tile on one unit. */
typedef struct dw_tile {
    float *acc;        /* tap (i0, j0) of the unit's (kh, kw, 8) sums, added into */
    size_t acc_row;    /* floats between kernel rows in acc: kw*8 */
    size_t acc_col;    /* floats between tile columns in acc: jstep*8 */
    const float *x;    /* tap (i0, j0), output vector (0, 0) */
    size_t x_oh;       /* floats between output rows: sh input rows */
    size_t x_kr;       /* floats between kernel rows: dh input rows */
    size_t cstep;      /* floats between tile columns */
    size_t ostep;      /* floats between output vectors of a row */
    const float *dy;   /* (oh, nv vectors) */
    size_t dy_row;     /* floats between dy rows */
    int oh, nv;
} dw_tile;

/* Portable: one tap at a time, 8 lanes in plain C. */
static void tile_scalar(const dw_tile *t, int R, int J) {
    for (int r = 0; r < R; r++)
        for (int j = 0; j < J; j++) {
            float a[DW_V];
            float *acc = t->acc + r * t->acc_row + j * t->acc_col;
            memcpy(a, acc, sizeof a);
            for (int oh = 0; oh < t->oh; oh++) {
                const float *x = t->x + oh * t->x_oh + r * t->x_kr + j * t->cstep;
                const float *d = t->dy + oh * t->dy_row;
                for (int v = 0; v < t->nv; v++)
                    for (int l = 0; l < DW_V; l++) a[l] += x[v * t->ostep + l] * d[v * DW_V + l];
            }
            memcpy(acc, a, sizeof a);
        }
}

#ifdef DW_X86
/* R, J and U (1 or 2 accumulator sets) are constants at every call site, so
 * the loops unroll fully and a[][][] lives in registers. */
DW_AVX2_INLINE void tile_avx2_body(const dw_tile *t, const int R, const int J, const int U) {
    __m256 a[2][DW_MAX_R][DW_MAX_J];
    const size_t cstep = t->cstep, ostep = t->ostep;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < J; j++) {
            a[0][r][j] = _mm256_loadu_ps(t->acc + r * t->acc_row + j * t->acc_col);
            a[1][r][j] = _mm256_setzero_ps();
        }
    for (int oh = 0; oh < t->oh; oh++) {
        const float *x[DW_MAX_R];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) x[r] = t->x + oh * t->x_oh + r * t->x_kr;
        const float *d = t->dy + oh * t->dy_row;
        int v = 0;
        if (U == 2) {
            for (; v + 1 < t->nv; v += 2) {
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
        for (; v < t->nv; v++) {
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
            __m256 sum = U == 2 ? _mm256_add_ps(a[0][r][j], a[1][r][j]) : a[0][r][j];
            _mm256_storeu_ps(t->acc + r * t->acc_row + j * t->acc_col, sum);
        }
}

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
    default: tile_scalar(t, R, J); return; /* not reached: plan_tiles keeps to the table */
    }
}
#endif

/* Split the taps into register tiles: tap columns into groups of one phase
 * (plain) and at most 7, near-equal; kernel rows into near-equal groups of
 * at most 15/J. Returns the number of tiles written to out (NULL: count). */
static int plan_tiles(const dw_plan *p, dw_tile_spec *out) {
    const nasc_dw_shape *s = &p->s;
    int n = 0;
    /* plain: taps j with (j*dw) % sw == q are j_q, j_q + jstep, ... and read
     * phase q at column (j*dw)/sw, cstep apart */
    int g = gcd(s->dw, s->sw);
    int jstep = p->blocked ? 1 : s->sw / g;
    size_t cstep = p->blocked ? (size_t)s->dw * DW_V : (size_t)(s->dw / g);
    for (int j_first = 0; j_first < imin(jstep, s->kw); j_first++) {
        int count = (s->kw - j_first + jstep - 1) / jstep;
        int phase = p->blocked ? 0 : (j_first * s->dw) % s->sw;
        size_t col0 = p->blocked ? 0 : (size_t)(j_first * s->dw) / s->sw;
        int ng = (count + DW_MAX_J - 1) / DW_MAX_J;
        for (int cg = 0; cg < ng; cg++) {
            int k0 = cg * count / ng, J = (cg + 1) * count / ng - k0;
            int rmax = imin(DW_MAX_TILE / J, DW_MAX_R);
            int nr = (s->kh + rmax - 1) / rmax;
            for (int rg = 0; rg < nr; rg++) {
                int i0 = rg * s->kh / nr, R = (rg + 1) * s->kh / nr - i0;
                if (out) {
                    dw_tile_spec *t = &out[n];
                    t->i0 = i0, t->r = R, t->j0 = j_first + k0 * jstep, t->j = J, t->jstep = jstep;
                    t->phase = phase;
                    t->cstep = cstep;
                    size_t vw = p->blocked ? DW_V : 1; /* floats per buffer column */
                    t->xoff = (size_t)i0 * s->dh * p->xw * vw + (col0 + k0 * cstep / (p->blocked ? DW_V : 1)) * vw;
                    if (p->blocked) t->xoff = (size_t)i0 * s->dh * p->xw * DW_V + (size_t)t->j0 * s->dw * DW_V;
                }
                n++;
            }
        }
    }
    return n;
}

/* acc (kh, kw, 8) += the taps of one unit: x buffer xb, dy vectors dyv. */
static void unit_taps(const dw_plan *p, float *acc, const float *xb, const float *dyv) {
    const nasc_dw_shape *s = &p->s;
    size_t vw = p->blocked ? DW_V : 1;
    size_t row = (size_t)p->xw * vw; /* floats per x buffer row */
    dw_tile t = {.acc_row = (size_t)s->kw * DW_V,
                 .x_oh = (size_t)s->sh * row,
                 .x_kr = (size_t)s->dh * row,
                 .ostep = p->blocked ? (size_t)s->sw * DW_V : DW_V,
                 .dy = dyv,
                 .dy_row = p->dy_row,
                 .oh = s->oh,
                 .nv = p->nv};
    for (int k = 0; k < p->n_tiles; k++) {
        const dw_tile_spec *ts = &p->tiles[k];
        t.acc = acc + ((size_t)ts->i0 * s->kw + ts->j0) * DW_V;
        t.acc_col = (size_t)ts->jstep * DW_V;
        t.x = xb + (size_t)ts->phase * p->hp * row + ts->xoff;
        t.cstep = ts->cstep;
#ifdef DW_X86
        if (p->avx2) {
            tile_avx2(&t, ts->r, ts->j);
            continue;
        }
#endif
        tile_scalar(&t, ts->r, ts->j);
    }
}

/* ---------------------------------------------------------------- */
/* Driver                                                           */
/* ---------------------------------------------------------------- */

/* part (units, kh, kw, 8) += images [n0, n1), units [u0, u1). */
static void run_task(const dw_plan *p, float *scratch, const float *x, const float *dy, int n0, int n1, int u0, int u1,
                     float *part) {
    const nasc_dw_shape *s = &p->s;
    float *xb = scratch, *dyb = scratch + round16(p->xbuf);
    size_t xplane = (size_t)s->h * s->w * (p->blocked ? DW_V : 1);
    size_t yplane = (size_t)s->oh * s->ow * (p->blocked ? DW_V : 1);
    size_t acc_n = (size_t)p->taps * DW_V;
    /* the padding is the same for every plane: zero it once */
    memset(xb, 0, p->xbuf * sizeof *xb);
    if (p->dy_copy) memset(dyb, 0, p->dybuf * sizeof *dyb);
    for (int n = n0; n < n1; n++)
        for (int u = u0; u < u1; u++) {
            size_t plane = (size_t)n * p->units + u;
            const float *xs = x + plane * xplane, *dys = dy + plane * yplane, *dyv = dys;
            if (p->blocked) {
                pack_blocked(p, xb, xs);
            } else {
#ifdef DW_X86
                if (p->avx2 && s->sw == 2)
                    pack_plain_s2_avx2(p, xb, xs);
                else
#endif
                    pack_plain_scalar(p, xb, xs);
                if (p->dy_copy) {
                    for (int r = 0; r < s->oh; r++)
                        memcpy(dyb + r * p->dy_row, dys + (size_t)r * s->ow, (size_t)s->ow * sizeof *dyb);
                    dyv = dyb;
                }
            }
            unit_taps(p, part + (size_t)u * acc_n, xb, dyv);
        }
}

/* dw_out rows of unit u from its sums acc (kh, kw, 8): lanes are channels
 * (blocked) or output columns to add up (plain). */
static void write_unit(const dw_plan *p, float *dw_out, int u, const float *acc) {
    if (p->blocked) {
        int c0 = u * DW_V, cn = imin(p->s.c - c0, DW_V);
        for (int l = 0; l < cn; l++)
            for (int k = 0; k < p->taps; k++) dw_out[(size_t)(c0 + l) * p->taps + k] = acc[(size_t)k * DW_V + l];
        return;
    }
    for (int k = 0; k < p->taps; k++) {
        const float *a = acc + (size_t)k * DW_V;
        dw_out[(size_t)u * p->taps + k] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    }
}

/* Element (n, c, h, w) of x or dy in the plan's layout. */
static float at(const dw_plan *p, const float *t, int n, int c, int h, int w, int hh, int ww) {
    if (!p->blocked) return t[(((size_t)n * p->s.c + c) * hh + h) * ww + w];
    return t[((((size_t)n * p->units + c / DW_V) * hh + h) * ww + w) * DW_V + c % DW_V];
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

/* Buffer geometry of plan p for shape s and layout. */
static void plan_init(dw_plan *p, const nasc_dw_shape *s, bool blocked, bool avx2) {
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->blocked = blocked;
    p->avx2 = avx2;
    p->taps = s->kh * s->kw;
    p->hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    if (blocked) {
        p->units = (s->c + DW_V - 1) / DW_V;
        p->phases = 1;
        p->xw = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
        p->xbuf = (size_t)p->hp * p->xw * DW_V;
        p->nv = s->ow;
        p->dy_row = (size_t)s->ow * DW_V;
    } else {
        p->units = s->c;
        p->phases = s->sw;
        p->nv = (s->ow + DW_V - 1) / DW_V;
        /* phase column m of output vector v, lane l, tap j: v*8 + l + (j*dw)/sw */
        p->xw = p->nv * DW_V + (s->kw - 1) * s->dw / s->sw + 1;
        p->xbuf = (size_t)p->phases * p->hp * p->xw;
        p->dy_copy = s->ow % DW_V != 0;
        p->dy_row = (size_t)p->nv * DW_V;
        p->dybuf = p->dy_copy ? (size_t)s->oh * p->dy_row : 0;
    }
    p->per_thr = round16(p->xbuf) + round16(p->dybuf);
}

nasc_status nasc_dw_bwd_weights_isa(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                    float *dw_out, nasc_dw_isa isa) {
    if (!nasc_dw_shape_valid(s) || (layout != NASC_DW_NCHW && layout != NASC_DW_NCHW8C) || !x || !dy || !dw_out)
        return NASC_EINPUT;
    dw_plan p;
    plan_init(&p, s, layout == NASC_DW_NCHW8C, isa != NASC_DW_ISA_SCALAR && nasc_dw_isa_best() == NASC_DW_ISA_AVX2);

    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nthr < 1) nthr = 1;
    /* batch chunks first (streaming whole images); units too when the
     * batch is smaller than the team */
    p.t = imin(nthr, s->n);
    p.g = imin((nthr + p.t - 1) / p.t, p.units);
    int tasks = p.t * p.g;
    if (nthr > tasks) nthr = tasks;

    p.n_tiles = plan_tiles(&p, NULL);
    size_t acc_n = (size_t)p.taps * DW_V;
    size_t tiles_floats = round16((size_t)p.n_tiles * sizeof(dw_tile_spec) / sizeof(float) + 1);
    size_t part_off = tiles_floats + (size_t)nthr * p.per_thr;
    size_t total = part_off + (size_t)p.t * p.units * acc_n;
    float *mem = aligned_alloc(64, round16(total) * sizeof(float));
    if (!mem) {
        run_direct(&p, x, dy, dw_out);
        return NASC_OK;
    }
    p.tiles = (dw_tile_spec *)mem;
    plan_tiles(&p, p.tiles);
    float *part = mem + part_off;
#pragma omp parallel num_threads(nthr)
    {
        float *scratch = mem + tiles_floats + (size_t)omp_get_thread_num() * p.per_thr;
#pragma omp for schedule(static)
        for (int k = 0; k < tasks; k++) {
            int t = k / p.g, g = k % p.g;
            int n0 = (int)((int64_t)t * s->n / p.t), n1 = (int)((int64_t)(t + 1) * s->n / p.t);
            int u0 = (int)((int64_t)g * p.units / p.g), u1 = (int)((int64_t)(g + 1) * p.units / p.g);
            float *pt = part + (size_t)t * p.units * acc_n;
            memset(pt + (size_t)u0 * acc_n, 0, (size_t)(u1 - u0) * acc_n * sizeof *pt);
            run_task(&p, scratch, x, dy, n0, n1, u0, u1, pt);
        }
        /* the partial sums of each unit, added in chunk order */
#pragma omp for schedule(static)
        for (int u = 0; u < p.units; u++) {
            float *sum = part + (size_t)u * acc_n;
            for (int t = 1; t < p.t; t++) {
                const float *q = part + ((size_t)t * p.units + u) * acc_n;
                for (size_t e = 0; e < acc_n; e++) sum[e] += q[e];
            }
            write_unit(&p, dw_out, u, sum);
        }
    }
    free(mem);
    return NASC_OK;
}

nasc_status nasc_dw_bwd_weights(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                float *dw_out) {
    return nasc_dw_bwd_weights_isa(s, layout, x, dy, dw_out, NASC_DW_ISA_AUTO);
}
