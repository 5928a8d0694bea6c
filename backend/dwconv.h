/* dwconv.h - depthwise convolution kernels of our own (private to
 * backend/): backward-weights (dwconv.c, below first) and, for nChw16c on
 * AVX-512, forward and backward-data (dwconv_fd.c, at the end).
 *
 * oneDNN 2.6 has jit kernels for depthwise backward-weights only for 3x3
 * filters on blocked layouts. Measured (bench/dwconv_bench.c): 5x5 and 7x7
 * run as x64:gemm:jit at 3-4 GFLOP/s in oneDNN's own layout and as ref:any
 * at 0.1 GFLOP/s on nChw8c; on nchw every size, 3x3 too, is gemm:jit at 2-4
 * GFLOP/s. That would dominate training any NASNet/ENAS cell with
 * sep_conv_5x5/7x7 or dil_conv_5x5, or any net in nchw.
 *
 * This computes, for a depthwise convolution (groups = C, one kh x kw
 * filter per channel):
 *
 *     dW[c, 0, i, j] = sum_n sum_oh sum_ow
 *                      x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] * dy[n, c, oh, ow]
 *
 * with x zero outside the input. Any kernel size, stride, dilation, padding
 * (pads may be zero or negative; the right/bottom pads are implied by oh/ow),
 * N, C, H, W.
 *
 * Layouts (the same for x and dy, chosen by an argument):
 *   NASC_DW_NCHW    plain: element (n, c, h, w) at ((n*C + c)*H + h)*W + w
 *   NASC_DW_NCHW8C  oneDNN's nChw8c: CB = ceil(C/8) blocks of 8 channels,
 *                   element (n, c, h, w) at ((n*CB + c/8)*H + h)*W*8 + w*8 + c%8;
 *   NASC_DW_NCHW16C oneDNN's nChw16c (AVX-512 machines): the same with blocks
 *                   of 16, element (n, c, h, w) at
 *                   ((n*CB16 + c/16)*H + h)*W*16 + w*16 + c%16;
 *                   in both blocked layouts the padding lanes of the last
 *                   block are never read into a result (they may hold anything).
 * dW is written plain, (C, 1, kh, kw) floats, overwritten (not accumulated).
 *
 * How (details in dwconv.c): for each image and group of G channels (16 on
 * the AVX-512 path, 8 on the others), x is copied into a zero-padded,
 * channel-interleaved buffer (transposed on the way for NCHW, as dy is; dy
 * is read in place when its pixels are G floats, nChw16c on AVX-512 and
 * nChw8c on the others, and copied otherwise), and a register-tiled kernel adds
 * x * dy for up to 15 taps at a time (28 with AVX-512's 32 registers), one
 * G-lane accumulator per tap. Each thread (OpenMP, omp_get_max_threads of
 * them; one when called inside a parallel region) takes an equal run of the
 * N*ceil(C/G) (image, group) planes in memory order; the threads' partial
 * sums are added in a fixed order, so a result depends only on the shape,
 * the path and the thread count, never on timing.
 *
 * The AVX2+FMA and AVX-512 paths are compiled with function target
 * attributes and chosen at run time (__builtin_cpu_supports): AVX-512 when
 * the CPU has avx512f, else AVX2+FMA, else a portable scalar path that runs
 * the same algorithm. On Zen 5 (one thread, N=32, nChw16c, the NASNet-like
 * 16 channels at 28x28, 32 at 14x14, 64 at 7x7, stride 1) the AVX-512 path
 * measured 1.3-1.6x the AVX2 one on 3x3 and 1.6-1.8x on 5x5 and 7x7
 * (medians of ten runs of bench/dwconv_bench.c paths, which prints the
 * table).
 *
 * Scratch memory (per thread: one padded x plane of G channels, one dy
 * plane unless dy is read in place, and ceil(C/G)*kh*kw*G partial sums;
 * planned for the larger of the two group widths, so it serves every path)
 * is the caller's: a net plans it into its arena when it compiles, so a
 * training step allocates nothing (nasc_dw_bwd_weights_run); tests and
 * benchmarks let nasc_dw_bwd_weights take it from a context's allocator for
 * the one call. Without scratch, a direct summation that needs none still
 * gives the answer, slowly. Sums are float; on the test shapes they agree
 * with a double-precision reference to about 1e-6 relative.
 *
 * Worked example (a 5x5 depthwise conv, stride 1, pad 2, on nChw8c, with
 * scratch planned once for the process's thread count):
 *
 *     nasc_dw_shape s = {.n = 64, .c = 64, .h = 14, .w = 14, .oh = 14, .ow = 14,
 *                        .kh = 5, .kw = 5, .sh = 1, .sw = 1, .pt = 2, .pl = 2,
 *                        .dh = 1, .dw = 1};
 *     size_t bytes = nasc_dw_scratch_bytes(&s, omp_get_max_threads());
 *     void *scratch = ...;                         // bytes, 64-byte aligned, reused
 *     float dw[64 * 5 * 5];                        // (C, 1, kh, kw)
 *     if (nasc_dw_bwd_weights_run(&s, NASC_DW_NCHW8C, x, dy, dw, NASC_DW_ISA_AUTO, scratch, bytes)) ...;
 */
#ifndef NASC_DWCONV_H
#define NASC_DWCONV_H

#include <stdbool.h>
#include <stddef.h>

#include "nasc_ir.h"

/* Geometry of one depthwise convolution. Dilation is the factor between
 * taps (1 = dense, as in the IR; oneDNN's dilation is this minus 1). */
typedef struct nasc_dw_shape {
    int n, c;   /* batch, channels (= groups = output channels) */
    int h, w;   /* input height, width */
    int oh, ow; /* output (dy) height, width */
    int kh, kw; /* filter height, width */
    int sh, sw; /* strides (>= 1) */
    int pt, pl; /* top and left padding (zeros); may be 0 or negative */
    int dh, dw; /* dilation factors (>= 1) */
} nasc_dw_shape;

typedef enum nasc_dw_layout {
    NASC_DW_NCHW,   /* plain (N, C, H, W) */
    NASC_DW_NCHW8C, /* oneDNN nChw8c: (N, ceil(C/8), H, W, 8) */
    NASC_DW_NCHW16C, /* oneDNN nChw16c: (N, ceil(C/16), H, W, 16) */
} nasc_dw_layout;

/* Which code path runs the kernel. */
typedef enum nasc_dw_isa {
    NASC_DW_ISA_AUTO,   /* the best the CPU supports */
    NASC_DW_ISA_SCALAR, /* portable C (any x86-64 or other CPU) */
    NASC_DW_ISA_AVX2,   /* AVX2 + FMA; falls back to scalar when the CPU lacks them */
    NASC_DW_ISA_AVX512, /* AVX-512F, 16 channels per group; falls back to the best the CPU has
                           (AVX2 or scalar) when it lacks avx512f */
    NASC_DW_ISA_DIRECT, /* direct summation in double, no scratch memory (what runs
                           without scratch); slow */
} nasc_dw_isa;

/* True when every size, stride and dilation is >= 1 (what the kernel needs;
 * oh/ow are taken as given, not recomputed from the pads). */
bool nasc_dw_shape_valid(const nasc_dw_shape *s);

/* Bytes of scratch (a multiple of 64) that shape s needs in any layout, on
 * any path, for up to `threads` threads; 0 when the shape is not valid. */
size_t nasc_dw_scratch_bytes(const nasc_dw_shape *s, int threads);

/* dw_out (C, 1, kh, kw) = the weights gradient of the depthwise conv s, for
 * input x and output gradient dy, both in `layout`, with the code path isa
 * and `bytes` of scratch (64-byte aligned; see nasc_dw_scratch_bytes);
 * allocates nothing. Threads: the OpenMP count (omp_get_max_threads; one
 * inside a parallel region), but no more than nasc_dw_scratch_bytes plans
 * `bytes` for (the same on every path); without scratch for one (scratch
 * NULL), the direct summation. Returns NASC_EINPUT (dw_out untouched) when
 * the shape is not valid, the layout unknown, x, dy or dw_out NULL or
 * scratch misaligned, else NASC_OK. */
nasc_status nasc_dw_bwd_weights_run(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                    float *dw_out, nasc_dw_isa isa, void *scratch, size_t bytes);

/* The same with the best path and scratch for the OpenMP thread count taken
 * from ctx's allocator for this call (tests, benchmarks): also NASC_ENOMEM
 * (diagnostic in ctx) when the scratch cannot be had. */
nasc_status nasc_dw_bwd_weights(nasc_ctx *ctx, const nasc_dw_shape *s, nasc_dw_layout layout, const float *x,
                                const float *dy, float *dw_out);

/* The same with a chosen code path (tests and benchmarks). */
nasc_status nasc_dw_bwd_weights_isa(nasc_ctx *ctx, const nasc_dw_shape *s, nasc_dw_layout layout, const float *x,
                                    const float *dy, float *dw_out, nasc_dw_isa isa);

/* Forward and backward-data (dwconv_fd.c), for what oneDNN 2.6's own
 * depthwise kernel leaves on the table on AVX-512 (on NASNet-like shapes
 * about as fast to 1.7x forward, 1.9-3.9x backward-data): nChw16c only, C
 * a multiple of 16, square kernels 3, 5 or 7, stride 1 or 2 on both axes,
 * no dilation, top and left pad k/2. The bottom and right pads are what oh
 * and ow imply, from cropping to k-1, as long as the last output row and
 * column read at least one input pixel. nasc_dw_fd_supported says
 * whether s is such a shape.
 *
 *     y[n, c, oh, ow] = sum_i sum_j x[n, c, oh*s - k/2 + i, ow*s - k/2 + j] * w[c, i, j]
 *     dx[n, c, ih, iw] = the gradient of sum(y * dy) with respect to x
 *
 * w is in oneDNN's Goihw16g: (C/16, k, k, 16) floats. The result is
 * overwritten. Threads: the OpenMP count (omp_get_max_threads; one inside a
 * parallel region), each an equal run of (image, channel block, row) in
 * memory order; each result element is summed in one fixed order, so a
 * result does not depend on the thread count. isa: AUTO and AVX512 run the
 * AVX-512 kernels when the CPU has avx512f, anything else (or a CPU without
 * it) a portable loop. Returns NASC_EINPUT (nothing written) when the shape
 * is not supported or a pointer is NULL, else NASC_OK. */
bool nasc_dw_fd_supported(const nasc_dw_shape *s);
nasc_status nasc_dw_fwd_run(const nasc_dw_shape *s, const float *x, const float *w, float *y, nasc_dw_isa isa);
nasc_status nasc_dw_bwd_data_run(const nasc_dw_shape *s, const float *dy, const float *w, float *dx, nasc_dw_isa isa);

/* The path NASC_DW_ISA_AUTO takes on this CPU (SCALAR, AVX2 or AVX512). */
nasc_dw_isa nasc_dw_isa_best(void);

#endif
