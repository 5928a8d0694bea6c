/* avgpool.h - average pooling backward on nChw16c, our own kernel (private
 * to backend/).
 *
 * oneDNN 2.6's pooling backward takes its jit kernel only for a dense
 * output gradient. In a cell, a pooling's output gradient is often a slice
 * of its concat's gradient (a view, channels [c0, c0+C) of a wider tensor),
 * which oneDNN would first copy out. This kernel reads such a view in
 * place:
 *
 *     dx[n, c, ih, iw] = sum over the windows (oh, ow) that hold (ih, iw)
 *                        of dy[n, c, oh, ow] / count(oh, ow)
 *
 * where a window is kh x kw pixels from (oh*sh - pt, ow*sw - pl) and
 * count is the number of its pixels inside the input (padding excluded,
 * oneDNN's avg_exclude_padding, PyTorch's count_include_pad=False).
 *
 * Layouts: dx (N, C/16, H, W, 16), dense; dy (N, C/16, OH, OW, 16) with
 * images dy_image floats apart (C/16 * OH * OW * 16 for a dense one, more
 * for a view into a wider tensor), C a multiple of 16. dx is overwritten.
 * Threads: one inside a parallel region (training lanes), else the OpenMP
 * count, each a run of (image, channel block, row); each element is summed
 * in one fixed order, whatever the thread count.
 */
#ifndef NASC_AVGPOOL_H
#define NASC_AVGPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "dwconv.h" /* nasc_dw_isa */

typedef struct nasc_ap_shape {
    int n, c;   /* images, channels (a multiple of 16) */
    int h, w;   /* input */
    int oh, ow; /* output */
    int kh, kw; /* window, 1 to 7 */
    int sh, sw; /* strides, >= 1 */
    int pt, pl; /* top and left padding, 0 to k-1; bottom and right follow from oh, ow */
} nasc_ap_shape;

/* Whether the kernel takes s: the sizes above, and every window holds at
 * least one input pixel. */
bool nasc_ap_supported(const nasc_ap_shape *s);

/* dx = the input gradient of average pooling s for output gradient dy
 * (images dy_image floats apart, >= C/16 * OH * OW * 16). isa AUTO or
 * AVX512: AVX-512 when the CPU has avx512f, else a portable loop. Returns
 * NASC_EINPUT (nothing written) for a shape the kernel does not take, a
 * short dy_image or a NULL pointer, else NASC_OK. */
nasc_status nasc_avgpool_bwd_run(const nasc_ap_shape *s, const float *dy, int64_t dy_image, float *dx,
                                 nasc_dw_isa isa);

#endif
