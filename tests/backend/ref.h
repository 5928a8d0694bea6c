/* ref.h - a naive double-precision reference of the prim dialect, for tests.
 *
 * Test helper, not product code: every prim op's forward (and backward) as
 * the plainest loops over row-major tensors, in double, so that the oneDNN
 * backend (backend/net.c) can be compared against it and against finite
 * differences computed with it. Nothing here is fast or clever on purpose.
 *
 * Conventions (the backend uses the same ones):
 *
 *  - Tensors are plain row-major with the batch first: NCHW for rank 4,
 *    (N, K) for rank 2. A dimension NASC_BATCH is the batch argument.
 *    Parameters are the store's tensors as they are (no batch dimension):
 *    conv weights (C_out, C_in/groups, kh, kw), inner-product weights (O, I).
 *  - Values are indexed by value id: `values` is an array of
 *    prim->n_values pointers that the caller zero-initialises; the ref
 *    functions allocate each entry (malloc) and reuse it on later calls;
 *    ref_free frees the entries (not the array).
 *  - batch_norm, training mode: statistics over N (and H, W for rank 4) of
 *    the current batch; the variance is the biased one (divide by the count);
 *    y = scale * (x - mean) / sqrt(var + eps) + shift, eps from the op's
 *    attributes (the float eps, widened to double).
 *  - batch_norm, inference mode: the running statistics live in the
 *    parameter store as two tensors of shape (C) named after the batch-norm
 *    op's *result value*:
 *
 *        "<bn result name>.mean"   e.g. "cell0.h1.bn.mean"   (initially 0)
 *        "<bn result name>.var"    e.g. "cell0.h1.bn.var"    (initially 1)
 *
 *    They are not values of the prim module (the backend creates them in
 *    the store; see nasc_net_options.bn_momentum for their update).
 *  - Padding: conv pads with zeros; max_pool ignores padded positions (they
 *    are -inf, never selected); avg_pool divides by kh*kw when
 *    count_include_pad = 1, else by the number of real pixels under the
 *    window. Convolution is cross-correlation (no kernel flip), as in
 *    oneDNN, ONNX and PyTorch; dilation 1 is dense.
 *  - shift: y[n,c,i,j] = x[n,c,i+dy,j+dx], zero where that is outside x.
 *  - add, mul: operands after the first broadcast to it (aligned on the
 *    last dim, dims of 1 repeat); their gradients sum over the repeats.
 *  - matmul: per batch element (leading dims, broadcast like add),
 *    y = op(a) op(b) with op the transpose when trans_a / trans_b is set.
 *  - reshape, flatten: the same row-major elements with other dims.
 *  - sub: a - b, b broadcasting as in add; scale: alpha * x.
 *  - embedding: y[n, :] = table[ids[n, index], :] (zeros for an id outside
 *    the table); the ids take no gradient (the reference leaves theirs 0).
 *  - max_pool with dilation dh, dw: window element (ki, kj) reads
 *    x[i*sh - pt + ki*dh, j*sw - pl + kj*dw].
 *  - Dims: a first dim may be NASC_BATCH (the batch argument) or fixed
 *    (ONNX models with static shapes); ranks are 1 to 4.
 *  - max_pool backward sends the gradient to the first maximum of the window
 *    in row-major order (tests use inputs without ties).
 *
 * Worked example (forward, then a finite difference on one parameter):
 *
 *     double **v = calloc(prim->n_values, sizeof *v);
 *     const double *in[1] = {x};                    // (batch, C, H, W)
 *     if (ref_forward(prim, store, batch, in, v)) ...;  // v[id] for every value
 *     const double *logits = v[prim->outputs[0]];
 *     double l0 = ref_softmax_xent(logits, batch, k, labels);
 *     v[w_id][0] += 1e-4;                           // perturb in double
 *     ref_run(prim, store, REF_TRAIN, batch, v);    // recompute the ops only
 *     ...
 *     ref_free(prim, v); free(v);
 */
#ifndef NASC_TESTS_REF_H
#define NASC_TESTS_REF_H

#include <stdint.h>

#include "nasc_ir.h"

typedef enum ref_mode {
    REF_TRAIN, /* batch_norm uses batch statistics */
    REF_INFER, /* batch_norm uses "<bn>.mean" / "<bn>.var" from the store */
} ref_mode;

/* Elements of value v for this batch (dims with NASC_BATCH replaced). */
int64_t ref_numel(const nasc_module *prim, uint32_t v, int batch);
/* Dims of value v with NASC_BATCH replaced; returns the rank. */
int ref_dims(const nasc_module *prim, uint32_t v, int batch, int64_t dims[NASC_MAX_RANK]);

/* Fill the inputs (inputs[i] is net input i in the module's input order,
 * i.e. the NASC_VAL_INPUT values by increasing id) and the parameters (from
 * the store, widened to double). Returns 0, or -1 with a message on stderr
 * (a parameter missing from the store or with other dims, out of memory). */
int ref_load(const nasc_module *prim, const nasc_param_store *params, int batch, const double *const *inputs,
             double **values);
/* Compute every op result in op order from the inputs and parameters
 * already in values (so a test can perturb values[param][k] in double and
 * re-run). params is only read for the running statistics (REF_INFER; may
 * be NULL for REF_TRAIN). Returns 0 or -1 with a message on stderr. */
int ref_run(const nasc_module *prim, const nasc_param_store *params, ref_mode mode, int batch, double **values);
/* The same from op first_prim on: after changing only values that no
 * earlier op reads (finite differences re-run from the first use). */
int ref_run_from(const nasc_module *prim, const nasc_param_store *params, ref_mode mode, int batch, double **values,
                 uint32_t first_prim);
/* The first op that reads value v (prim->n_prims when none does). */
uint32_t ref_first_use(const nasc_module *prim, uint32_t v);

/* ref_load + ref_run: the whole module in training mode (batch statistics). */
int ref_forward(const nasc_module *prim, const nasc_param_store *params, int batch, const double *const *inputs,
                double **values);
/* The same with the running statistics from the store (inference). */
int ref_forward_infer(const nasc_module *prim, const nasc_param_store *params, int batch,
                      const double *const *inputs, double **values);

/* Analytic gradients in training mode after ref_forward/ref_run: given the
 * gradient of each net output (out_grads[i] for prim->outputs[i]; NULL =
 * zero), fill grads[v] for every value (inputs, parameters, op results),
 * allocating like values. Gradients of values used several times (fan-out,
 * repeated operands) accumulate. Checked against finite differences by
 * tests/backend/test_ops.c; returns 0 or -1. */
int ref_backward(const nasc_module *prim, int batch, double *const *values, const double *const *out_grads,
                 double **grads);

/* Free every entry of values (or grads) and set it to NULL. */
void ref_free(const nasc_module *prim, double **values);

/* Batch statistics of the batch_norm op whose result is bn_value, from its
 * input in values: mean and biased variance, C doubles each. Returns 0 or
 * -1 when bn_value is not a batch_norm result. */
int ref_bn_stats(const nasc_module *prim, int batch, double *const *values, uint32_t bn_value, double *mean,
                 double *var);

/* Mean over the batch of -log softmax(logits[i])[labels[i]]; logits (n, k). */
double ref_softmax_xent(const double *logits, int n, int k, const int32_t *labels);
/* Its gradient with respect to the logits: (softmax - onehot) / n, (n, k). */
void ref_softmax_xent_grad(const double *logits, int n, int k, const int32_t *labels, double *grad);
/* Images whose largest logit is the label (the first maximum on ties). */
int ref_correct(const double *logits, int n, int k, const int32_t *labels);

/* Norm-wise relative error ||got - want|| / max(||want||, 1e-30), and the
 * largest elementwise |got - want| in *max_abs (may be NULL). */
double ref_rel_err_f(const float *got, const double *want, int64_t n, double *max_abs);
double ref_rel_err_d(const double *got, const double *want, int64_t n, double *max_abs);

#endif /* NASC_TESTS_REF_H */
