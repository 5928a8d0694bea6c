/* Nets in lanes (NASC_NET_PARALLEL_LANES): the batch split between
 * one-thread nets that run at the same time gives what one net on all
 * threads gives, up to rounding. An uneven split (batch 5 on 2 threads:
 * 3 + 2) included. The models are the zoo's: a cell net (DARTS-V2:
 * separable and dilated convolutions, pools, concats, sums, batch norms),
 * the baseline CNN (dense 3x3 convolutions, which oneDNN runs as Winograd
 * in inference on AVX-512, a primitive with a scratchpad; conv, batch
 * norm, relu) and a character LSTM ((N, T) tokens in, (N, T, V) logits
 * and the state out).
 *
 * Inference: the outputs and losses, pass after pass and after a store
 * write.
 *
 * Training: the loss, every parameter gradient (the lanes' sum), the
 * inputs' gradients and the running statistics written into the store,
 * for a step and again for a step after an SGD update of both stores (the
 * lanes read the updated weights). Batch norms normalise over the whole
 * batch, not a lane's slice: with lanes of 3 and 2 images, statistics
 * weighted per lane instead of per image would show. Also a backward pass
 * seeded by a given output gradient (nasc_net_set_output_grad), sliced
 * between the lanes.
 *
 * The policy: which nets AUTO puts in lanes (training ones too), which
 * ones LANES refuses, and why. Under a failing allocator: every
 * allocation of an inference and of a training lane net (with the batch
 * norms' exchange buffers) made to fail in turn.
 *
 * Its own executable: the thread count (2) is the process's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "nasc_frontend.h"
#include "testutil.h"

typedef struct model {
    nasc_ctx ctx;
    nasc_module *prim;
    nasc_param_store *ps;
} model;

static void model_load(model *m, const char *rel, int seq_len) {
    nasc_ctx_init(&m->ctx);
    char *path = nasc_test_path(rel);
    nasc_module *arch = NULL;
    if (nasc_model_load(&m->ctx, path, NULL, 0, &arch)) nasc_test_fail_diag(&m->ctx, rel);
    free(path);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = seq_len;
    if (nasc_lower_with(arch, &lo, &m->prim)) nasc_test_fail_diag(&m->ctx, "lower");
    nasc_module_destroy(arch);
    m->ps = nasc_params_create(&m->ctx);
    assert_non_null(m->ps);
    if (nasc_params_init(m->ps, m->prim, 5)) nasc_test_fail_diag(&m->ctx, "params");
}

/* A model given as prim text, its parameters from seed 5 as model_load's. */
static void model_parse(model *m, const char *text) {
    nasc_ctx_init(&m->ctx);
    if (nasc_text_parse(&m->ctx, text, strlen(text), "lanes.nir", &m->prim)) nasc_test_fail_diag(&m->ctx, "parse");
    m->ps = nasc_params_create(&m->ctx);
    assert_non_null(m->ps);
    if (nasc_params_init(m->ps, m->prim, 5)) nasc_test_fail_diag(&m->ctx, "params");
}

static void model_free(model *m) {
    nasc_params_destroy(m->ps);
    nasc_module_destroy(m->prim);
}

static nasc_net *compile(model *m, int batch, nasc_net_parallel par) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = batch;
    o.mode = NASC_MODE_INFER;
    o.fuse = true;
    o.parallel = par;
    nasc_net *net = NULL;
    if (nasc_net_compile(&m->ctx, m->prim, m->ps, &o, &net)) nasc_test_fail_diag(&m->ctx, "compile");
    return net;
}

static int64_t per_image(const nasc_type *t) {
    int64_t n = 1;
    for (int d = 1; d < t->rank; d++) n *= t->dims[d];
    return n;
}

/* Every input of the net: token numbers below the class count for a
 * language model's first input (rank 2), normal values otherwise. */
static void set_inputs(model *m, nasc_net *net, int batch, unsigned seed) {
    const nasc_type *out = &m->prim->values[m->prim->outputs[0]].type;
    int64_t classes = out->dims[out->rank - 1];
    srand(seed);
    uint32_t k = 0;
    for (uint32_t v = 0; v < m->prim->n_values; v++) {
        const nasc_value *val = &m->prim->values[v];
        if (val->kind != NASC_VAL_INPUT) continue;
        int64_t n = per_image(&val->type) * batch;
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        bool tokens = k == 0 && val->type.rank == 2 && out->rank == 3;
        for (int64_t i = 0; i < n; i++)
            x[i] = tokens ? (float)(rand() % classes) : (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
        assert_int_equal(nasc_net_set_input(net, k++, x), NASC_OK);
        free(x);
    }
}

/* Output 0 of both nets agree within relative L2 1e-5 (the lanes' primitives
 * are made for another batch size, so the last bits may differ), and so do
 * their losses and counts of correct argmaxes. */
static void compare(model *m, nasc_net *one, nasc_net *lanes, int batch) {
    const nasc_value *ov = &m->prim->values[m->prim->outputs[0]];
    const char *name = nasc_str(m->prim, ov->name);
    int64_t n = per_image(&ov->type) * batch, k = ov->type.dims[ov->type.rank - 1];
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    int32_t *y = malloc((size_t)(n / k) * sizeof *y);
    assert_true(a && b && y);
    assert_int_equal(nasc_net_read(one, name, a), NASC_OK);
    assert_int_equal(nasc_net_read(lanes, name, b), NASC_OK);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    printf("  %s: %lld values, relative L2 difference %.2g\n", name, (long long)n, sqrt(num / den));
    assert_true(den > 0);
    assert_true(sqrt(num / den) < 1e-5);
    for (int64_t r = 0; r < n / k; r++) y[r] = (int32_t)((r * 7) % k);
    float la, lb;
    int ca, cb;
    assert_int_equal(nasc_net_loss(one, y, &la, &ca), NASC_OK);
    assert_int_equal(nasc_net_loss(lanes, y, &lb, &cb), NASC_OK);
    assert_float_equal(la, lb, 1e-5 * (1 + fabsf(la)));
    assert_int_equal(ca, cb);
    /* a bad label is named by its place in the whole batch */
    y[n / k - 1] = (int32_t)k;
    char want[64];
    snprintf(want, sizeof want, " %lld is not in [0, %lld)", (long long)(n / k - 1), (long long)k);
    nasc_test_expect_diag(&m->ctx, nasc_net_loss(lanes, y, &lb, &cb), NASC_EINPUT, want);
    free(a);
    free(b);
    free(y);
}

static void check_model(const char *rel, int seq_len, int batch) {
    model m;
    model_load(&m, rel, seq_len);
    nasc_net *one = compile(&m, batch, NASC_NET_PARALLEL_ALL);
    nasc_net *lanes = compile(&m, batch, NASC_NET_PARALLEL_LANES);
    nasc_net_stats s1, s2;
    nasc_net_get_stats(one, &s1);
    nasc_net_get_stats(lanes, &s2);
    assert_int_equal(s1.n_lanes, 0);
    assert_int_equal(s2.n_lanes, 2);
    /* the FLOPs of a pass are the whole batch's, split or not */
    assert_true(llabs(s1.flops_forward - s2.flops_forward) <= s1.flops_forward / 1000);
    for (unsigned pass = 0; pass < 2; pass++) {
        set_inputs(&m, one, batch, 11 + pass);
        set_inputs(&m, lanes, batch, 11 + pass);
        assert_int_equal(nasc_net_forward(one), NASC_OK);
        assert_int_equal(nasc_net_forward(lanes), NASC_OK);
        compare(&m, one, lanes, batch);
    }
    /* a store write is seen by every lane's next pass */
    for (uint32_t i = 0; i < m.ps->n; i++) {
        nasc_tensor *t = m.ps->tensors[i];
        for (int64_t j = 0; j < t->numel; j++) t->data[j] *= 0.75f;
    }
    assert_int_equal(nasc_net_forward(one), NASC_OK);
    assert_int_equal(nasc_net_forward(lanes), NASC_OK);
    compare(&m, one, lanes, batch);
    nasc_net_destroy(one);
    nasc_net_destroy(lanes);
    model_free(&m);
}

static void test_lanes_darts(void **state) {
    (void)state;
    check_model("models/darts-v2.yaml", 0, 5);
}

static void test_lanes_baseline(void **state) {
    (void)state;
    check_model("models/baseline-cnn.yaml", 0, 9); /* lanes of 5 and 4: Winograd's batch */
}

static void test_lanes_lstm(void **state) {
    (void)state;
    check_model("models/lstm.yaml", 6, 3);
}

/* ---------------------------------------------------------------- */
/* Training                                                         */
/* ---------------------------------------------------------------- */

/* Relative L2 difference of b from a, accumulated over pieces. */
typedef struct rel_l2 {
    double num, den;
} rel_l2;

static void rel_l2_add(rel_l2 *d, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d->num += e * e;
        d->den += (double)a[i] * a[i];
    }
}

static double rel_l2_of(const rel_l2 *d) { return d->den > 0 ? sqrt(d->num / d->den) : INFINITY; }

/* A second store initialised as m's (the same seed gives the same values). */
static nasc_param_store *store_like(model *m) {
    nasc_param_store *ps = nasc_params_create(&m->ctx);
    assert_non_null(ps);
    if (nasc_params_init(ps, m->prim, 5)) nasc_test_fail_diag(&m->ctx, "params");
    assert_int_equal(ps->n, m->ps->n);
    for (uint32_t i = 0; i < ps->n; i++) {
        assert_string_equal(ps->tensors[i]->name, m->ps->tensors[i]->name);
        assert_memory_equal(ps->tensors[i]->data, m->ps->tensors[i]->data,
                            (size_t)ps->tensors[i]->numel * sizeof(float));
    }
    return ps;
}

/* A training net on store ps, with the inputs' gradients, fused as
 * nasc_train fuses; one net (ALL) or lanes, which must be 2. */
static nasc_net *compile_train(model *m, nasc_param_store *ps, int batch, nasc_net_parallel par) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = batch;
    o.mode = NASC_MODE_TRAIN;
    o.input_grad = true;
    o.fuse = true;
    o.parallel = par;
    nasc_net *net = NULL;
    if (nasc_net_compile(&m->ctx, m->prim, ps, &o, &net)) nasc_test_fail_diag(&m->ctx, "compile");
    nasc_net_stats s;
    nasc_net_get_stats(net, &s);
    assert_int_equal(s.n_lanes, par == NASC_NET_PARALLEL_LANES ? 2 : 0);
    return net;
}

/* Whether input value v is a language model's token numbers (set_inputs
 * fills them with class numbers; they take no gradient). */
static bool token_input(const model *m, uint32_t v) {
    const nasc_type *out = &m->prim->values[m->prim->outputs[0]].type;
    for (uint32_t u = 0; u < m->prim->n_values; u++)
        if (m->prim->values[u].kind == NASC_VAL_INPUT) /* the first input */
            return u == v && m->prim->values[v].type.rank == 2 && out->rank == 3;
    return false;
}

/* After both nets' backward passes: the parameter gradients (the same
 * tensors in the same order, relative L2 over all of them together below
 * tol) and every input's gradient, gathered slice by slice from the lanes
 * (below tol too). An input of token numbers has a zero gradient on both
 * sides; every other input is compared, and at least one is. Every
 * difference is measured and printed before any is asserted, so that a
 * failure shows them all.
 *
 * tol: the lanes' primitives and batch norms are other float code, and
 * round otherwise. Where a relu's input lies within that rounding of 0,
 * one side passes the gradient and the other does not, and everything
 * upstream moves by about 1e-3 relative: on DARTS-V2, two one-net runs
 * (all threads and one thread, no lanes) differ so by 3e-3 to 7e-3 at
 * batch 3 to 8, the baseline CNN's second step by 2e-3 in lanes. Models
 * with many relus are held to TOL_KINKS, which a wrong batch norm
 * backward exceeds tenfold (summing one lane's slice instead of the
 * whole batch's: 0.3 to 0.8); a small net, to TOL_SMOOTH. */
enum { TOL_KINKS_PER_MILLE = 50 };
#define TOL_KINKS (TOL_KINKS_PER_MILLE / 1000.0)
#define TOL_SMOOTH 1e-5
static void compare_grads(model *m, nasc_net *one, nasc_net *lanes, int batch, double tol) {
    const nasc_param_grad *ga, *gb;
    uint32_t na = nasc_net_grads(one, &ga), nb = nasc_net_grads(lanes, &gb);
    assert_int_equal(na, nb);
    assert_true(na > 0);
    rel_l2 d = {0, 0};
    int64_t total = 0;
    double worst = 0; /* the tensor whose own relative difference is largest */
    const char *worst_name = "";
    for (uint32_t i = 0; i < na; i++) {
        assert_string_equal(ga[i].param->name, gb[i].param->name);
        assert_int_equal(ga[i].param->numel, gb[i].param->numel);
        rel_l2 di = {0, 0};
        rel_l2_add(&di, ga[i].grad, gb[i].grad, ga[i].param->numel);
        if (di.den > 0 && rel_l2_of(&di) > worst) worst = rel_l2_of(&di), worst_name = ga[i].param->name;
        d.num += di.num;
        d.den += di.den;
        total += ga[i].param->numel;
    }
    printf("  %u parameter gradients, %lld values: relative L2 difference %.2g (largest of one tensor: %s, %.2g)\n", na,
           (long long)total, rel_l2_of(&d), worst_name, worst);
    bool inputs_ok = true;
    int compared = 0;
    for (uint32_t v = 0; v < m->prim->n_values; v++) {
        const nasc_value *val = &m->prim->values[v];
        if (val->kind != NASC_VAL_INPUT) continue;
        const char *name = nasc_str(m->prim, val->name);
        int64_t n = per_image(&val->type) * batch;
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        assert_true(a && b);
        memset(b, 0xff, (size_t)n * sizeof *b); /* NaNs: every slice must be written */
        if (nasc_net_read_grad(one, name, a)) nasc_test_fail_diag(&m->ctx, name);
        if (nasc_net_read_grad(lanes, name, b)) nasc_test_fail_diag(&m->ctx, name);
        rel_l2 di = {0, 0};
        rel_l2_add(&di, a, b, n);
        if (token_input(m, v)) {
            printf("  input %s (token numbers): %lld gradients, all zero: %s\n", name, (long long)n,
                   di.den == 0 && di.num == 0 ? "yes" : "NO");
            inputs_ok = inputs_ok && di.den == 0 && di.num == 0;
        } else {
            printf("  input %s: %lld gradients, relative L2 difference %.2g\n", name, (long long)n, rel_l2_of(&di));
            inputs_ok = inputs_ok && di.den > 0 && rel_l2_of(&di) < tol;
            compared++;
        }
        free(a);
        free(b);
    }
    assert_true(d.den > 0);
    assert_true(rel_l2_of(&d) < tol);
    assert_true(inputs_ok);
    assert_true(compared > 0);
}

static bool running_stat(const char *name) {
    size_t n = strlen(name);
    return (n > 5 && !strcmp(name + n - 5, ".mean")) || (n > 4 && !strcmp(name + n - 4, ".var"));
}

/* Every store tensor "<bn result>.mean" / ".var" of store a and of store
 * b (relative L2 below 1e-5; the stores started equal). Their updates
 * are compared too (below 1e-4), the values now minus before_a and
 * before_b (save_running's, in a's order): most of a running variance
 * after one step is its initial 1 * (1 - momentum), which would hide a
 * wrong batch variance in the stored values. Returns how many tensors
 * there are. */
static int compare_running(const nasc_param_store *a, const nasc_param_store *b, const float *before_a,
                           const float *before_b) {
    rel_l2 d = {0, 0}, du = {0, 0};
    int n = 0;
    int64_t at = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        const nasc_tensor *ta = a->tensors[i];
        if (!running_stat(ta->name)) continue;
        const nasc_tensor *tb = nasc_params_find(b, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->numel, tb->numel);
        rel_l2_add(&d, ta->data, tb->data, ta->numel);
        for (int64_t j = 0; j < ta->numel; j++) {
            float ua = ta->data[j] - before_a[at + j], ub = tb->data[j] - before_b[at + j];
            rel_l2_add(&du, &ua, &ub, 1);
        }
        at += ta->numel;
        n++;
    }
    if (n) {
        printf("  %d running statistics, %lld values: relative L2 difference %.2g, of their updates %.2g\n", n,
               (long long)at, rel_l2_of(&d), rel_l2_of(&du));
        assert_true(d.den > 0 && du.den > 0);
        assert_true(rel_l2_of(&d) < 1e-5);
        assert_true(rel_l2_of(&du) < 1e-4);
    }
    return n;
}

/* Copy the running statistics of store s, in the order of store a's,
 * into out; returns how many floats (out NULL: only count). */
static int64_t save_running(const nasc_param_store *a, const nasc_param_store *s, float *out) {
    int64_t at = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        if (!running_stat(a->tensors[i]->name)) continue;
        const nasc_tensor *t = nasc_params_find(s, a->tensors[i]->name);
        assert_non_null(t);
        assert_int_equal(t->numel, a->tensors[i]->numel);
        if (out) memcpy(out + at, t->data, (size_t)t->numel * sizeof *out);
        at += t->numel;
    }
    return at;
}

/* One training step of a net on all threads (store A: m's) and of a net
 * in 2 lanes (store B, initialised alike) on the same inputs: loss with
 * label smoothing 0.1, backward, and the same loss, correct count,
 * gradients and running statistics. Then plain SGD (p -= 0.05 g) on both
 * stores from the one net's gradients (so that the stores stay equal,
 * whatever rounding the gradients differ by): the first step's inputs give
 * both nets the loss of the updated weights (at least 10 tolerances away
 * from the loss before), and a second step on new inputs compares
 * everything again. bn: the model has batch norms (running statistics). */
static void check_train(model *mp, int batch, bool bn, double tol) {
    model m = *mp;
    nasc_param_store *psb = store_like(&m);
    nasc_net *one = compile_train(&m, m.ps, batch, NASC_NET_PARALLEL_ALL);
    nasc_net *lanes = compile_train(&m, psb, batch, NASC_NET_PARALLEL_LANES);
    const nasc_value *ov = &m.prim->values[m.prim->outputs[0]];
    int64_t k = ov->type.dims[ov->type.rank - 1], rows = per_image(&ov->type) * batch / k;
    int32_t *y = malloc((size_t)rows * sizeof *y);
    int64_t nr = save_running(m.ps, m.ps, NULL);
    float *before_a = malloc((size_t)(nr + 1) * sizeof(float)), *before_b = malloc((size_t)(nr + 1) * sizeof(float));
    assert_true(y && before_a && before_b);
    float la = 0, lb = 0; /* the losses of the step */
    for (unsigned step = 0; step < 2; step++) {
        save_running(m.ps, m.ps, before_a);
        save_running(m.ps, psb, before_b);
        set_inputs(&m, one, batch, 21 + step);
        set_inputs(&m, lanes, batch, 21 + step);
        assert_int_equal(nasc_net_forward(one), NASC_OK);
        assert_int_equal(nasc_net_forward(lanes), NASC_OK);
        for (int64_t r = 0; r < rows; r++) y[r] = (int32_t)((r * 7 + step) % k);
        int ca, cb;
        if (nasc_net_loss_at(one, 0, y, 1.0f, 0.1f, &la, &ca)) nasc_test_fail_diag(&m.ctx, "loss");
        if (nasc_net_loss_at(lanes, 0, y, 1.0f, 0.1f, &lb, &cb)) nasc_test_fail_diag(&m.ctx, "loss (lanes)");
        printf("  step %u: loss %.7f and %.7f (difference %.2g), %d and %d correct of %lld\n", step + 1, (double)la,
               (double)lb, fabs((double)la - lb), ca, cb, (long long)rows);
        assert_float_equal(la, lb, 1e-5 * (1 + fabsf(la)));
        assert_int_equal(ca, cb);
        if (nasc_net_backward(one)) nasc_test_fail_diag(&m.ctx, "backward");
        if (nasc_net_backward(lanes)) nasc_test_fail_diag(&m.ctx, "backward (lanes)");
        compare_grads(&m, one, lanes, batch, tol);
        int n_stats = compare_running(m.ps, psb, before_a, before_b);
        if (bn) assert_true(n_stats > 0);
        if (step == 1) break;
        /* p -= 0.05 g in both stores, g the one net's */
        rel_l2 du = {0, 0};
        const nasc_param_grad *g;
        uint32_t ng = nasc_net_grads(one, &g);
        for (uint32_t i = 0; i < ng; i++) {
            nasc_tensor *tb = nasc_params_find(psb, g[i].param->name);
            assert_non_null(tb);
            for (int64_t j = 0; j < g[i].param->numel; j++) {
                float w = g[i].param->data[j], u = 0.05f * g[i].grad[j];
                du.num += (double)u * u; /* |update| / |weights| */
                du.den += (double)w * w;
                g[i].param->data[j] = w - u;
                tb->data[j] = w - u;
            }
        }
        printf("  SGD update: relative L2 size %.2g of the weights\n", rel_l2_of(&du));
        assert_true(du.num > 0);
        /* step 1's inputs again: both nets give the loss of the updated
         * weights, well away from the loss before the update, which
         * lanes that kept the old weights would give */
        float ua, ub;
        set_inputs(&m, one, batch, 21);
        set_inputs(&m, lanes, batch, 21);
        assert_int_equal(nasc_net_forward(one), NASC_OK);
        assert_int_equal(nasc_net_forward(lanes), NASC_OK);
        if (nasc_net_loss_at(one, 0, y, 1.0f, 0.1f, &ua, NULL)) nasc_test_fail_diag(&m.ctx, "loss");
        if (nasc_net_loss_at(lanes, 0, y, 1.0f, 0.1f, &ub, NULL)) nasc_test_fail_diag(&m.ctx, "loss (lanes)");
        printf("  step 1 again after the update: loss %.7f and %.7f (difference %.2g; the update changed it by %.2g)\n",
               (double)ua, (double)ub, fabs((double)ua - ub), fabs((double)ua - la));
        assert_float_equal(ua, ub, 1e-5 * (1 + fabsf(ua)));
        assert_true(fabsf(ua - la) > 10 * 1e-5 * (1 + fabsf(la)));
    }
    free(y);
    free(before_a);
    free(before_b);
    nasc_net_destroy(one);
    nasc_net_destroy(lanes);
    nasc_params_destroy(psb);
    model_free(&m);
}

static void check_train_model(const char *rel, int seq_len, int batch, bool bn, double tol) {
    model m;
    model_load(&m, rel, seq_len);
    check_train(&m, batch, bn, tol);
}

static void test_lanes_train_darts(void **state) {
    (void)state;
    check_train_model("models/darts-v2.yaml", 0, 5, true, TOL_KINKS); /* lanes of 3 and 2 */
}

static void test_lanes_train_baseline(void **state) {
    (void)state;
    check_train_model("models/baseline-cnn.yaml", 0, 6, true, TOL_KINKS);
}

static void test_lanes_train_lstm(void **state) {
    (void)state;
    check_train_model("models/lstm.yaml", 6, 3, false, TOL_SMOOTH * 10);
}

/* Batch norms in every form a lane runs them: after a convolution, with
 * and without a fused relu, on a value that also feeds a concat (a view
 * of the concat's buffer), with a result whose two gradients (one a view
 * of the concat's) the backward sums itself, with a result whose one
 * gradient is a view of a concat's (n4), and on (N, C) rows; few
 * enough relu inputs
 * that none lies within rounding of 0 (checked: the gradients agree to
 * about 1e-6), so the whole-batch backward is held to TOL_SMOOTH. Lanes
 * of 3 and 2 images. */
static const char *bn_net =
    "prim {\n"
    "  input %x : f32[N,8,6,6]\n"
    "  param %w1 : f32[16,8,3,3]\n"
    "  param %g1 : f32[16]\n"
    "  param %b1 : f32[16]\n"
    "  param %w2 : f32[16,16,3,3]\n"
    "  param %g2 : f32[16]\n"
    "  param %b2 : f32[16]\n"
    "  param %g3 : f32[48]\n"
    "  param %b3 : f32[48]\n"
    "  param %g4 : f32[16]\n"
    "  param %b4 : f32[16]\n"
    "  param %fc.w : f32[3,48]\n"
    "  param %fc.b : f32[3]\n"
    "  %c1 = conv %x, %w1 {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,16,6,6]\n"
    "  %n1 = batch_norm %c1, %g1, %b1 {eps=9.99999975e-06} : f32[N,16,6,6]\n"
    "  %r1 = relu %n1 : f32[N,16,6,6]\n"
    "  %c2 = conv %r1, %w2 {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,16,6,6]\n"
    "  %n2 = batch_norm %c2, %g2, %b2 {eps=9.99999975e-06} : f32[N,16,6,6]\n"
    "  %cat = concat %n2, %c1 {axis=1} : f32[N,32,6,6]\n"
    "  %s = add %cat, %cat : f32[N,32,6,6]\n"
    "  %n4 = batch_norm %c2, %g4, %b4 {eps=9.99999975e-06} : f32[N,16,6,6]\n"
    "  %cat2 = concat %c1, %n4 {axis=1} : f32[N,32,6,6]\n"
    "  %s2 = add %s, %cat2 : f32[N,32,6,6]\n"
    "  %gap = global_avg_pool %s2 : f32[N,32,1,1]\n"
    "  %fl = flatten %gap : f32[N,32]\n"
    "  %gap2 = global_avg_pool %n2 : f32[N,16,1,1]\n"
    "  %fl2 = flatten %gap2 : f32[N,16]\n"
    "  %f = concat %fl, %fl2 {axis=1} : f32[N,48]\n"
    "  %n3 = batch_norm %f, %g3, %b3 {eps=9.99999975e-06} : f32[N,48]\n"
    "  %h = add %n3, %f : f32[N,48]\n"
    "  %fc = inner_product %h, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

/* The net's profile (nasc_net_profile_print) as text, at most size - 1
 * bytes of it; not empty. */
static void profile_text(nasc_net *net, char *text, size_t size) {
    FILE *f = tmpfile();
    assert_non_null(f);
    nasc_net_profile_print(net, f);
    rewind(f);
    size_t got = fread(text, 1, size - 1, f);
    fclose(f);
    text[got] = '\0';
    assert_true(got > 0);
}

/* The count of steps of kind `kind` in the profile of a net after one
 * training step on bn_net (seed 41), with a store of its own. */
static int profiled_steps(model *m, nasc_net_parallel par, const char *kind) {
    nasc_param_store *ps = nasc_params_create(&m->ctx);
    assert_non_null(ps);
    if (nasc_params_init(ps, m->prim, 5)) nasc_test_fail_diag(&m->ctx, "params");
    nasc_net_options o = nasc_net_options_default();
    o.batch = 5;
    o.mode = NASC_MODE_TRAIN;
    o.fuse = true;
    o.profile = true;
    o.parallel = par;
    nasc_net *net = NULL;
    if (nasc_net_compile(&m->ctx, m->prim, ps, &o, &net)) nasc_test_fail_diag(&m->ctx, "compile");
    set_inputs(m, net, 5, 41);
    int32_t y[5] = {0, 1, 2, 0, 1};
    float loss;
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_loss(net, y, &loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    char text[8192];
    profile_text(net, text, sizeof text);
    int count = 0;
    size_t n = strlen(kind);
    /* the kind exactly: "grad sum" is not "grad sum (nasc)" */
    for (const char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, kind, n) && line[n] == ' ' && line[n + strspn(line + n, " ")] >= '0' &&
            line[n + strspn(line + n, " ")] <= '9')
            assert_int_equal(sscanf(line + n, "%d", &count), 1);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    return count;
}

static void test_lanes_train_bn(void **state) {
    (void)state;
    model m;
    model_parse(&m, bn_net);
    /* the lanes run their own batch norms, and n2's two gradients are
     * summed by its batch norm's backward: one gradient sum step fewer
     * than one net has */
    int one = profiled_steps(&m, NASC_NET_PARALLEL_ALL, "grad sum") +
              profiled_steps(&m, NASC_NET_PARALLEL_ALL, "grad sum (nasc)");
    int lanes = profiled_steps(&m, NASC_NET_PARALLEL_LANES, "grad sum") +
                profiled_steps(&m, NASC_NET_PARALLEL_LANES, "grad sum (nasc)");
    printf("  gradient sums: %d in one net, %d in lanes\n", one, lanes);
    assert_int_equal(lanes, one - 1);
    assert_int_equal(profiled_steps(&m, NASC_NET_PARALLEL_LANES, "bnorm+relu bwd (lanes)"), 1);
    assert_int_equal(profiled_steps(&m, NASC_NET_PARALLEL_LANES, "bnorm bwd (lanes)"), 3);
    /* n4's one gradient is a view of cat2's: the lanes' backward reads it
     * there, where oneDNN's needs a dense copy */
    one = profiled_steps(&m, NASC_NET_PARALLEL_ALL, "reorder");
    lanes = profiled_steps(&m, NASC_NET_PARALLEL_LANES, "reorder");
    printf("  reorders: %d in one net, %d in lanes\n", one, lanes);
    assert_int_equal(lanes, one - 1);
    check_train(&m, 5, true, TOL_SMOOTH);
}

/* A backward pass seeded by a gradient given for output 0 of the whole
 * batch (no loss): the lanes each take their slice of it, and the
 * parameter and input gradients equal the one net's. */
static void test_lanes_train_output_grad(void **state) {
    (void)state;
    model m;
    model_load(&m, "models/baseline-cnn.yaml", 0);
    nasc_param_store *psb = store_like(&m);
    int batch = 5;
    nasc_net *one = compile_train(&m, m.ps, batch, NASC_NET_PARALLEL_ALL);
    nasc_net *lanes = compile_train(&m, psb, batch, NASC_NET_PARALLEL_LANES);
    set_inputs(&m, one, batch, 31);
    set_inputs(&m, lanes, batch, 31);
    assert_int_equal(nasc_net_forward(one), NASC_OK);
    assert_int_equal(nasc_net_forward(lanes), NASC_OK);
    int64_t n = per_image(&m.prim->values[m.prim->outputs[0]].type) * batch;
    float *g = malloc((size_t)n * sizeof *g);
    assert_non_null(g);
    for (int64_t i = 0; i < n; i++) g[i] = (float)sin(0.37 * (double)i + 0.1) / (float)n; /* every image its own */
    assert_int_equal(nasc_net_set_output_grad(one, 0, g), NASC_OK);
    assert_int_equal(nasc_net_set_output_grad(lanes, 0, g), NASC_OK);
    if (nasc_net_backward(one)) nasc_test_fail_diag(&m.ctx, "backward");
    if (nasc_net_backward(lanes)) nasc_test_fail_diag(&m.ctx, "backward (lanes)");
    compare_grads(&m, one, lanes, batch, TOL_KINKS);
    free(g);
    nasc_net_destroy(one);
    nasc_net_destroy(lanes);
    nasc_params_destroy(psb);
    model_free(&m);
}

/* The automatic policy: lanes at a batch whose primitives are large enough
 * to share out, one thread at batch 1; for training nets too (2 threads,
 * batch at least 2). Asking for lanes where they cannot be is an error
 * that says why. The profile names the lane it shows. */
static void test_lanes_policy(void **state) {
    (void)state;
    model m;
    model_load(&m, "models/darts-v2.yaml", 0);
    nasc_net_stats s;
    nasc_net *net = compile(&m, 32, NASC_NET_PARALLEL_AUTO);
    nasc_net_get_stats(net, &s);
    assert_int_equal(s.n_lanes, 2);
    nasc_net_destroy(net);
    net = compile(&m, 1, NASC_NET_PARALLEL_AUTO);
    nasc_net_get_stats(net, &s);
    assert_int_equal(s.n_lanes, 0);
    nasc_net_destroy(net);

    /* training nets: lanes when asked, and AUTO's choice from batch 2 */
    nasc_net_options o = nasc_net_options_default();
    assert_int_equal(o.mode, NASC_MODE_TRAIN);
    int batches[3] = {4, 32, 1}, want[3] = {2, 2, 0};
    for (int i = 0; i < 3; i++) {
        o.batch = batches[i];
        o.parallel = i == 0 ? NASC_NET_PARALLEL_LANES : NASC_NET_PARALLEL_AUTO;
        if (nasc_net_compile(&m.ctx, m.prim, m.ps, &o, &net)) nasc_test_fail_diag(&m.ctx, "compile (training)");
        nasc_net_get_stats(net, &s);
        assert_int_equal(s.n_lanes, want[i]);
        nasc_net_destroy(net);
    }
    o.batch = 4;
    o.mode = NASC_MODE_INFER;
    o.parallel = NASC_NET_PARALLEL_LANES;
    o.bn_batch_stats = true;
    nasc_test_expect_diag(&m.ctx, nasc_net_compile(&m.ctx, m.prim, m.ps, &o, &net), NASC_EINPUT,
                          "not for batch norms on batch statistics");
    o.bn_batch_stats = false;
    /* a softmax along the batch mixes images: one net, or an error; along
     * the classes, lanes */
    for (int axis = 0; axis < 2; axis++) {
        char mixed[512];
        snprintf(mixed, sizeof mixed,
                 "prim {\n"
                 "  input %%x : f32[N,512]\n"
                 "  param %%fc.w : f32[512,512]\n"
                 "  param %%fc.b : f32[512]\n"
                 "  %%l = inner_product %%x, %%fc.w, %%fc.b : f32[N,512]\n"
                 "  %%p = softmax %%l {axis=%d} : f32[N,512]\n"
                 "  output %%p\n"
                 "}\n",
                 axis);
        nasc_module *mm = NULL;
        assert_int_equal(nasc_text_parse(&m.ctx, mixed, strlen(mixed), "mixed.nir", &mm), NASC_OK);
        nasc_param_store *mps = nasc_params_create(&m.ctx);
        assert_non_null(mps);
        assert_int_equal(nasc_params_init(mps, mm, 1), NASC_OK);
        o.parallel = NASC_NET_PARALLEL_LANES;
        if (axis == 0)
            nasc_test_expect_diag(&m.ctx, nasc_net_compile(&m.ctx, mm, mps, &o, &net), NASC_EINPUT,
                                  "a softmax along it");
        o.parallel = NASC_NET_PARALLEL_AUTO; /* 4 x 512 x 512 multiply-adds: large enough to share out */
        assert_int_equal(nasc_net_compile(&m.ctx, mm, mps, &o, &net), NASC_OK);
        nasc_net_get_stats(net, &s);
        assert_int_equal(s.n_lanes, axis == 0 ? 0 : 2);
        nasc_net_destroy(net);
        nasc_params_destroy(mps);
        nasc_module_destroy(mm);
    }
    o.parallel = NASC_NET_PARALLEL_LANES;
    o.batch = 4;
    o.profile = true;
    assert_int_equal(nasc_net_compile(&m.ctx, m.prim, m.ps, &o, &net), NASC_OK);
    set_inputs(&m, net, 4, 3);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    char text[4096];
    profile_text(net, text, sizeof text);
    assert_non_null(strstr(text, "lane 1 of 2 (batch 2;"));
    assert_non_null(strstr(text, "conv fwd"));
    nasc_net_destroy(net);
    model_free(&m);
}

/* Under a failing allocator: every allocation of a lane net's compile made
 * to fail in turn gives NASC_ENOMEM with its diagnostic in the caller's
 * context and leaves nothing allocated; past the last one, the same
 * outputs as an undisturbed run. */
static const char *small_net =
    "prim {\n"
    "  input %x : f32[N,8,6,6]\n"
    "  param %w : f32[16,8,3,3]\n"
    "  param %g : f32[16]\n"
    "  param %b : f32[16]\n"
    "  param %fc.w : f32[3,24]\n"
    "  param %fc.b : f32[3]\n"
    "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,16,6,6]\n"
    "  %bn = batch_norm %c, %g, %b {eps=9.99999975e-06} : f32[N,16,6,6]\n"
    "  %r = relu %bn : f32[N,16,6,6]\n"
    "  %mp = max_pool %x {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,8,6,6]\n"
    "  %cat = concat %r, %mp {axis=1} : f32[N,24,6,6]\n"
    "  %gap = global_avg_pool %cat : f32[N,24,1,1]\n"
    "  %fl = flatten %gap : f32[N,24]\n"
    "  %fc = inner_product %fl, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

/* small_net in lanes of 3 and 2 images (mode: inference or training),
 * compiled under ta's allocator with allocation fail_at (counted from the
 * compile; 0: none) made to fail; *m, *ps and *net for the caller to free
 * (*net NULL when the compile failed), x its input. */
enum { SMALL_PARAMS = 16 * 8 * 9 + 16 + 16 + 3 * 24 + 3, SMALL_X = 5 * 8 * 36 };

static nasc_status small_compile(nasc_ctx *ctx, nasc_test_alloc *ta, long fail_at, nasc_net_mode mode,
                                 nasc_module **m, nasc_param_store **ps, nasc_net **net, float x[SMALL_X]) {
    nasc_test_ctx(ctx, ta, 0);
    *m = NULL;
    assert_int_equal(nasc_text_parse(ctx, small_net, strlen(small_net), "lanes.nir", m), NASC_OK);
    *ps = nasc_params_create(ctx);
    assert_non_null(*ps);
    assert_int_equal(nasc_params_init(*ps, *m, 9), NASC_OK);
    for (int i = 0; i < SMALL_X; i++) x[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    if (fail_at > 0) ta->fail_at = ta->count + fail_at;
    nasc_net_options o = nasc_net_options_default();
    o.batch = 5;
    o.mode = mode;
    o.input_grad = mode == NASC_MODE_TRAIN;
    o.fuse = true;
    o.parallel = NASC_NET_PARALLEL_LANES;
    *net = NULL;
    nasc_status st = nasc_net_compile(ctx, *m, *ps, &o, net);
    if (!st) {
        nasc_net_stats s;
        nasc_net_get_stats(*net, &s);
        assert_int_equal(s.n_lanes, 2);
    }
    return st;
}

/* After small_compile and a run that ended with st: a failure carries its
 * diagnostic; frees what small_compile made and returns st. */
static nasc_status small_finish(const nasc_ctx *ctx, nasc_status st, nasc_module *m, nasc_param_store *ps,
                                nasc_net *net) {
    if (st && ctx->diag.status != st) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("status %d but the diagnostic says %d", (int)st, (int)ctx->diag.status);
    }
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    return st;
}

static nasc_status small_run(long fail_at, nasc_test_alloc *ta, float out[5 * 3]) {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *ps;
    nasc_net *net;
    float x[SMALL_X];
    nasc_status st = small_compile(&ctx, ta, fail_at, NASC_MODE_INFER, &m, &ps, &net, x);
    if (!st) st = nasc_net_set_input(net, 0, x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_read(net, "fc", out);
    return small_finish(&ctx, st, m, ps, net);
}

/* What a run under the failing allocator gives: its status, and n_out
 * floats of results in out. */
typedef nasc_status (*alloc_run)(long fail_at, nasc_test_alloc *ta, float *out);

/* Make every allocation of run fail in turn (allocation n of the run, n =
 * 1, 2, ... until one run makes no allocation fail): each gives
 * NASC_ENOMEM and leaves no block allocated; the run past the last gives
 * the results of an undisturbed run, bit for bit. Returns how many
 * allocations there were. */
static long alloc_sweep(alloc_run run, size_t n_out) {
    nasc_test_alloc ta;
    float *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
    assert_true(want && got);
    assert_int_equal(run(0, &ta, want), NASC_OK);
    assert_int_equal(ta.live, 0);
    long n;
    for (n = 1;; n++) {
        nasc_status st = run(n, &ta, got);
        if (ta.live != 0) fail_msg("allocation %ld failed: %ld blocks left allocated", n, ta.live);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            assert_memory_equal(got, want, n_out * sizeof *want);
            break;
        }
        if (st != NASC_ENOMEM) fail_msg("allocation %ld failed but the status is %d", n, (int)st);
    }
    free(want);
    free(got);
    printf("  %ld allocations, each made to fail in turn\n", n - 1);
    return n - 1;
}

static void test_lanes_alloc(void **state) {
    (void)state;
    assert_true(alloc_sweep(small_run, 5 * 3) >= 20);
}

/* The same for a training lane net (batch 5: lanes of 3 and 2): compile,
 * forward, loss, backward; its results are every parameter gradient and
 * the input's gradient. small_net's batch norm (with a relu after it,
 * fused) makes the lanes meet, through the exchange buffers its compile
 * allocates. */
static nasc_status small_train_run(long fail_at, nasc_test_alloc *ta, float *out) {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *ps;
    nasc_net *net;
    float x[SMALL_X];
    int32_t y[5] = {0, 2, 1, 1, 0};
    nasc_status st = small_compile(&ctx, ta, fail_at, NASC_MODE_TRAIN, &m, &ps, &net, x);
    float loss;
    if (!st) st = nasc_net_set_input(net, 0, x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_loss(net, y, &loss, NULL);
    if (!st) st = nasc_net_backward(net);
    if (!st) {
        const nasc_param_grad *g;
        uint32_t ng = nasc_net_grads(net, &g);
        int64_t at = 0;
        for (uint32_t i = 0; i < ng; i++) {
            assert_true(at + g[i].param->numel <= SMALL_PARAMS);
            memcpy(out + at, g[i].grad, (size_t)g[i].param->numel * sizeof *out);
            at += g[i].param->numel;
        }
        assert_int_equal(at, SMALL_PARAMS);
        st = nasc_net_read_grad(net, "x", out + SMALL_PARAMS);
    }
    return small_finish(&ctx, st, m, ps, net);
}

static void test_lanes_train_alloc(void **state) {
    (void)state;
    assert_true(alloc_sweep(small_train_run, SMALL_PARAMS + SMALL_X) >= 20);
}

int main(void) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    if (nasc_backend_set_threads(&ctx, 2)) {
        nasc_diag_print(&ctx.diag, stderr);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lanes_darts),
        cmocka_unit_test(test_lanes_baseline),
        cmocka_unit_test(test_lanes_lstm),
        cmocka_unit_test(test_lanes_train_darts),
        cmocka_unit_test(test_lanes_train_baseline),
        cmocka_unit_test(test_lanes_train_lstm),
        cmocka_unit_test(test_lanes_train_bn),
        cmocka_unit_test(test_lanes_train_output_grad),
        cmocka_unit_test(test_lanes_policy),
        cmocka_unit_test(test_lanes_alloc),
        cmocka_unit_test(test_lanes_train_alloc),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("backend/lanes", tests, NULL, NULL));
}
