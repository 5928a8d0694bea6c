/* enas_ctl.h - the ENAS micro controller (Pham et al., ICML 2018, and its
 * published code, micro_controller.py), exposed inside search/ for the
 * one-shot search and its tests.
 *
 * One LSTM (no bias, gates i, f, o, g) runs over both cells, the normal
 * cell first; the reduction cell continues from the normal cell's last
 * state. A cell of B nodes is sampled as:
 *  - two steps on the start vector g_emb: the anchors of the cell's two
 *    inputs (their anchor vectors are zero);
 *  - per node: two input-index steps, each an additive attention over the
 *    anchors so far, score_j = v . tanh(W1 anchor_h_j + W2 h), then
 *    tanh_constant * tanh(score / temperature); the next step reads the
 *    chosen anchor's vector. Then two op steps: logits W_soft h + b_soft,
 *    then (tanh_constant / op_tanh_reduce) * tanh(logits / temperature),
 *    plus the fixed bias (0.25, 0.25, -0.25, ...) in the normal cell only;
 *    the next step reads the op's embedding. A last step on the op
 *    embedding gives the node's anchor (h, and W1 h for the attention).
 * The decisions come out in nasc's enas-micro order (per node: in_a, in_b,
 * op_a, op_b), which is also the order they are sampled in.
 *
 * Parameters are float32 (a saved state is exact); the passes run in
 * double. Weights uniform in [-0.1, 0.1]; b_soft starts at (10, 10, 0, ...)
 * as in the reference.
 */
#ifndef NASC_ENAS_CTL_H
#define NASC_ENAS_CTL_H

#include "nasc_search.h"

typedef struct nasc_enas_ctl_options {
    int hidden;           /* LSTM units (64) */
    int nodes;            /* nodes per cell (B) */
    int ops;              /* ops per node (5) */
    float tanh_constant;  /* 1.10; 0 none */
    float op_tanh_reduce; /* 2.5 */
    float temperature;    /* 0 none */
} nasc_enas_ctl_options;

typedef struct nasc_enas_ctl nasc_enas_ctl;

/* NULL (diagnostic in ctx) on bad options or out of memory. */
nasc_enas_ctl *nasc_enas_ctl_create(nasc_ctx *ctx, const nasc_enas_ctl_options *o, uint64_t seed);
void nasc_enas_ctl_destroy(nasc_enas_ctl *c);
size_t nasc_enas_ctl_size(const nasc_enas_ctl *c); /* parameters */
float *nasc_enas_ctl_params(nasc_enas_ctl *c);
/* Decisions per architecture: 2 cells x nodes x 4. */
uint32_t nasc_enas_ctl_count(const nasc_enas_ctl *c);

/* One pass over both cells. With rng, d is sampled; without, d is read
 * (NASC_EINPUT naming a value out of range). *logp = log p(d), *entropy =
 * the summed entropy of the distributions visited. Keeps what backward
 * needs. */
nasc_status nasc_enas_ctl_run(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy);
/* After run: grad[i] += a * d logp / d theta_i. */
void nasc_enas_ctl_backward(nasc_enas_ctl *c, double a, double *grad);

#endif /* NASC_ENAS_CTL_H */
