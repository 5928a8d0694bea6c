/* conv1x1.h - the weight gradient of a 1x1 convolution on nChw16c, our own
 * kernel (private to backend/).
 *
 * For a 1x1 convolution at stride 1 without padding the weight gradient is
 * one product over all pixels of all images:
 *
 *     dw[o][i] = sum over n, p of dy[n, o, p] x[n, i, p]
 *
 * In a training step x was written by the forward pass long before and
 * comes from memory, not cache: at 16 to 96 channels that read is as long
 * as the arithmetic (oneDNN 2.6's jit_1x1 backward-weights ran NASNet-A's
 * 1x1 layers at 100-157 GFLOP/s on one thread, where sgemm does about
 * 200). This kernel keeps a 16x16 tile of dw in 16 AVX-512 registers (a row
 * of 16 input channels per output channel), and per pixel loads the 16
 * input channels once and broadcasts each of the 16 output channels'
 * gradients into one FMA. The pixels are taken in chunks that fit in L2
 * with all channels of both tensors (96 KB); every tile of dw passes over a
 * chunk, and while they do, the next chunk is fetched into the cache, a
 * line per pixel of each tile. The result is written in the parameter's
 * plain layout (no reorder after it, unlike oneDNN's blocked one).
 *
 * Measured in `nasc bench models/nasnet-a.yaml --profile` (Zen 5, training
 * lanes, three runs alternating with oneDNN's kernel): the 98 1x1 weight
 * gradients of a lane step took 14.6-15.2 ms (150-155 GFLOP/s) against
 * 17.1-17.5 ms, and the step has 98 fewer reorders.
 *
 * Layouts: x (N, IC/16, P, 16) and dy (N, OC/16, P, 16), images x_image and
 * dy_image floats apart (more than the block planes for a channel slice of
 * a wider tensor); IC and OC multiples of 16. dw is plain (OC, IC),
 * overwritten. One thread: the caller is a training lane or a serial net.
 * Each element is summed in one fixed order.
 */
#ifndef NASC_CONV1X1_H
#define NASC_CONV1X1_H

#include <stdbool.h>
#include <stdint.h>

#include "nasc_backend.h"

typedef struct nasc_c1_shape {
    int n;       /* images */
    int ic, oc;  /* channels, multiples of 16 */
    int64_t p;   /* pixels an image (H * W) */
    int64_t x_image, dy_image; /* floats between images, at least the channels' planes */
} nasc_c1_shape;

/* Whether this CPU runs the kernel (AVX-512) and it takes s. */
bool nasc_c1_supported(const nasc_c1_shape *s);

/* dw = the weight gradient above. Returns NASC_EINPUT (nothing written)
 * for a shape nasc_c1_supported refuses or a NULL pointer. */
nasc_status nasc_c1_bwd_weights_run(const nasc_c1_shape *s, const float *x, const float *dy, float *dw);

#endif
