/* reinforce.h - the NAS-RL controller (an LSTM that emits one decision per
 * step), exposed inside search/ for the REINFORCE strategy and its tests.
 *
 * Parameters are float32 (so that a saved state is exact); the forward and
 * backward passes run in double. Step t reads the embedding of decision
 * t-1's value (a learned start vector at t = 0; SKIP decisions feed a
 * learned vector of their own), runs one LSTM step and then:
 *  - CHOICE: softmax over a linear head of h_t (one head per decision);
 *  - SKIP of layer i: h_t is layer i's anchor; candidate j < card is drawn
 *    with P(j -> i) = sigmoid(v . tanh(W_prev h_anchor(j) + W_curr h_t)).
 */
#ifndef NASC_REINFORCE_H
#define NASC_REINFORCE_H

#include "nasc_search.h"

typedef struct nasc_controller nasc_controller;

/* NULL (diagnostic in ctx) when out of memory. Weights uniform in
 * [-0.1, 0.1] from seed. */
nasc_controller *nasc_controller_create(nasc_ctx *ctx, const nasc_decision *dec, uint32_t n, int hidden,
                                        uint64_t seed);
void nasc_controller_destroy(nasc_controller *c);
size_t nasc_controller_size(const nasc_controller *c); /* number of parameters */
float *nasc_controller_params(nasc_controller *c);

/* One pass over the decisions. With rng, the values are sampled into d;
 * without, d is read. Returns log p(d) and the summed entropy of the
 * distributions visited; keeps what backward needs. */
nasc_status nasc_controller_run(nasc_controller *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy);
/* After run: grad[i] += dL/dtheta_i for L = a * logp + b * entropy. */
void nasc_controller_backward(nasc_controller *c, double a, double b, double *grad);
/* The probability of each value of decision k at the last run (CHOICE:
 * card values; SKIP: P(bit j) for each candidate). Tests only. */
const double *nasc_controller_probs(const nasc_controller *c, uint32_t k);

#endif /* NASC_REINFORCE_H */
