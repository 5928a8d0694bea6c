/* dwconv.h - depthwise convolution backward-weights, our own kernel (private
 * to backend/).
 *
 * oneDNN 2.6 has a fast jit kernel for depthwise backward-weights only for
 * 3x3 filters; 5x5 and 7x7 (sep_conv_5x5/7x7, dil_conv_5x5) fall back to
 * gemm:jit at a few GFLOP/s, which would dominate training a NASNet/ENAS
 * cell. This computes, for a depthwise convolution (groups = C, one kh x kw
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
 *                   the padding lanes of the last block are never read into
 *                   a result (they may hold anything).
 * dW is written plain, (C, 1, kh, kw) floats, overwritten (not accumulated).
 *
 * How: the work is split into tasks (channel block of 8, range of images),
 * run with an OpenMP parallel for. A task copies each image's x plane for its
 * 8 channels into a zero-padded, channel-interleaved buffer (transposing on
 * the way for NCHW, as it does dy) and runs a register-tiled kernel: one
 * 8-lane accumulator per filter tap, a tile of up to 15 taps in registers,
 * one dy load per output pixel and one fused load-FMA per tap. When there are
 * fewer channel blocks than threads (or they do not divide evenly), the batch
 * is also split and the per-task partial sums are reduced in a fixed order,
 * so a result depends only on the shape and the thread count.
 *
 * The AVX2+FMA path is compiled with a function target attribute and chosen
 * at run time (__builtin_cpu_supports); elsewhere a portable scalar path runs
 * the same algorithm. The scratch memory (a few padded planes per thread) is
 * taken from malloc; if that fails, a slow path that needs no memory still
 * gives the right answer. Results agree with a double-precision reference to
 * about 1e-6 relative (float accumulation per task).
 *
 * Worked example (a 5x5 depthwise conv, stride 1, pad 2, on nChw8c):
 *
 *     nasc_dw_shape s = {.n = 64, .c = 64, .h = 14, .w = 14, .oh = 14, .ow = 14,
 *                        .kh = 5, .kw = 5, .sh = 1, .sw = 1, .pt = 2, .pl = 2,
 *                        .dh = 1, .dw = 1};
 *     float *dw = malloc(64 * 5 * 5 * sizeof *dw);   // (C, 1, kh, kw)
 *     if (nasc_dw_bwd_weights(&s, NASC_DW_NCHW8C, x, dy, dw) != NASC_OK) ...;
 */
#ifndef NASC_DWCONV_H
#define NASC_DWCONV_H

#include <stdbool.h>

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
} nasc_dw_layout;

/* Which code path runs the kernel. */
typedef enum nasc_dw_isa {
    NASC_DW_ISA_AUTO,   /* the best the CPU supports */
    NASC_DW_ISA_SCALAR, /* portable C (any x86-64 or other CPU) */
    NASC_DW_ISA_AVX2,   /* AVX2 + FMA; falls back to scalar when the CPU lacks them */
} nasc_dw_isa;

/* True when every size, stride and dilation is >= 1 (what the kernel needs;
 * oh/ow are taken as given, not recomputed from the pads). */
bool nasc_dw_shape_valid(const nasc_dw_shape *s);

/* dw_out (C, 1, kh, kw) = the weights gradient of the depthwise conv s, for
 * input x and output gradient dy, both in `layout`. Uses the OpenMP thread
 * count (omp_get_max_threads). Returns NASC_EINPUT (dw_out untouched) when
 * the shape is not valid or the layout unknown, else NASC_OK. */
nasc_status nasc_dw_bwd_weights(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                float *dw_out);

/* The same with a chosen code path (tests and benchmarks). */
nasc_status nasc_dw_bwd_weights_isa(const nasc_dw_shape *s, nasc_dw_layout layout, const float *x, const float *dy,
                                    float *dw_out, nasc_dw_isa isa);

/* The path NASC_DW_ISA_AUTO takes on this CPU (SCALAR or AVX2). */
nasc_dw_isa nasc_dw_isa_best(void);

#endif
