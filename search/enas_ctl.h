/* enas_ctl.h - the ENAS controllers (Pham et al., ICML 2018, and its
 * published code: micro_controller.py and general_controller.py), exposed
 * inside search/ for the one-shot search and its tests.
 *
 * Both are one LSTM without bias (gates i, f, o, g) over the decisions in
 * nasc's order, with an additive attention v . tanh(W1 anchor + W2 h) over
 * the anchors (hidden states) of earlier nodes or layers; every score is
 * divided by the temperature (if any) and then squashed to
 * constant * tanh(score).
 *
 * Micro (enas-micro, decisions per node: in_a, in_b, op_a, op_b, the normal
 * cell first, the reduction cell continuing from its last state):
 *  - two steps on the start vector g_emb: the anchors of the cell's two
 *    inputs (their anchor vectors read as zero);
 *  - per node: two input-index steps, each a softmax over the attention
 *    scores of the anchors so far (tanh constant), the next step reading
 *    the chosen anchor's vector; two op steps, logits W_soft h + b_soft
 *    squashed with tanh_constant / op_tanh_reduce, plus the fixed bias
 *    (0.25, 0.25, -0.25, ...) in the normal cell only, the next step
 *    reading the op's embedding; a last step gives the node's anchor.
 *    b_soft starts at (10, 10, 0, ...). Entropy: of each distribution.
 * Macro (enas-macro, decisions per layer: op, skip mask):
 *  - per layer: an op step (logits W_soft h, no bias, tanh constant),
 *    then a step on the op's embedding that is the layer's anchor; from
 *    layer 1 on, each earlier layer j is a skip with P(on) = softmax of
 *    (-s_j, s_j), s_j the squashed attention score; the next layer's first
 *    step reads the sum of the chosen anchors divided by (1 + their
 *    number) (g_emb after layer 0). Entropy: -p log p of each sampled
 *    value, as the reference. The skip penalty: per layer the KL-like term
 *    sum over j, b of sigmoid(l_b) log(sigmoid(l_b) / target_b) with
 *    l = (-s_j, s_j) and target (1 - skip_target, skip_target), averaged
 *    over layers 1.., which the loss adds times skip_weight.
 *
 * RNN (enas-rnn, decisions: n0.act, then per node i >= 1 n<i>.prev and
 * n<i>.act; src/ptb/ptb_enas_controller.py):
 *  - per node: a first step (on g_emb for node 0, else on the embedding of
 *    the previous node's activation) whose h is the node's anchor; from
 *    node 1 on, the parent index is a softmax over the attention scores of
 *    the anchors of nodes 0..i-1 (temperature, tanh constant), each minus
 *    (i - j)^2 / 6 after the squashing; a second step reads the chosen
 *    anchor's h divided by (0.1 + i - j) (node 0: g_emb again); its
 *    activation logits W_soft h (no bias; temperature, tanh constant), the
 *    next node's first step reading the activation's embedding. Entropy:
 *    -p log p of each sampled value, as the reference.
 *
 * Parameters are float32 (a saved state is exact); the passes run in
 * double. Weights uniform in [-0.1, 0.1].
 */
#ifndef NASC_ENAS_CTL_H
#define NASC_ENAS_CTL_H

#include "nasc_search.h"

typedef struct nasc_enas_ctl_options {
    int hidden;           /* LSTM units (64) */
    int nodes;            /* micro: nodes per cell (B); macro: layers */
    int ops;              /* ops per node or layer (micro 5, macro 6) */
    float tanh_constant;  /* micro 1.10, macro 1.5; 0 none */
    float op_tanh_reduce; /* micro: 2.5 */
    float temperature;    /* 0 none */
    bool macro;
    float skip_target;    /* macro: 0.4 */
    bool rnn;             /* the recurrent cell (enas-rnn): nodes = the cell's nodes, ops = activations */
} nasc_enas_ctl_options;

typedef struct nasc_enas_ctl nasc_enas_ctl;

/* NULL (diagnostic in ctx) on bad options or out of memory. */
nasc_enas_ctl *nasc_enas_ctl_create(nasc_ctx *ctx, const nasc_enas_ctl_options *o, uint64_t seed);
void nasc_enas_ctl_destroy(nasc_enas_ctl *c);
size_t nasc_enas_ctl_size(const nasc_enas_ctl *c); /* parameters */
float *nasc_enas_ctl_params(nasc_enas_ctl *c);
/* Decisions per architecture: micro 2 cells x nodes x 4, macro 2 x layers,
 * rnn 2 x nodes - 1. */
uint32_t nasc_enas_ctl_count(const nasc_enas_ctl *c);

/* One pass over the decisions. With rng, d is sampled; without, d is read
 * (NASC_EINPUT naming a value out of range). *logp = log p(d), *entropy
 * as above, *penalty the macro skip penalty (0 for micro); penalty may be
 * NULL. Keeps what backward needs. */
nasc_status nasc_enas_ctl_run(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy,
                              double *penalty);
/* After run: grad[i] += a * d logp / d theta_i + b * d penalty / d theta_i. */
void nasc_enas_ctl_backward(nasc_enas_ctl *c, double a, double b, double *grad);

#endif /* NASC_ENAS_CTL_H */
