/* ENAS. The controller: its gradient against central finite differences
 * (with and without the tanh squashing and a temperature); sampled
 * decisions in range and a log-probability that scoring the same decisions
 * again reproduces; the reference's initial bias toward the two separable
 * convolutions; bad options and out-of-range decisions refused. The shared
 * store: a training step on child A changes exactly A's tensors (its
 * parameters, their momentum, its batch norms' running statistics) and
 * nothing else; child B's net binds to the same tensors (nothing copied);
 * two ops at the same place never share a tensor. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enas_ctl.h"
#include "nasc_backend.h"

static nasc_enas_ctl_options opts(int hidden, int nodes) {
    nasc_enas_ctl_options o = {hidden, nodes, 5, 1.10f, 2.5f, 0.0f, false, 0.4f, false};
    return o;
}

static nasc_enas_ctl_options macro_opts(int hidden, int layers) {
    nasc_enas_ctl_options o = {hidden, layers, 6, 1.5f, 2.5f, 0.0f, true, 0.4f, false};
    return o;
}

/* enas-rnn: 4 activations, ptb_search.sh's tanh constant and temperature */
static nasc_enas_ctl_options rnn_opts(int hidden, int nodes) {
    nasc_enas_ctl_options o = {hidden, nodes, 4, 2.5f, 2.5f, 5.0f, false, 0.4f, true};
    return o;
}

static void check_gradient(nasc_enas_ctl_options o, uint64_t seed) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, seed);
    assert_non_null(c);
    float *th = nasc_enas_ctl_params(c);
    size_t P = nasc_enas_ctl_size(c);
    nasc_rng r;
    nasc_rng_seed(&r, seed + 11);
    /* weights larger than the default so that every path matters; b_soft
     * small so that the tanh is not saturated */
    for (size_t i = 0; i < P; i++) th[i] = 1.2f * nasc_rng_uniform(&r) - 0.6f;
    uint32_t d[8 * 64];
    double lp, ent, pen;
    assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent, NULL), NASC_OK);
    double *g = calloc(P, sizeof *g);
    assert_non_null(g);
    double a = -0.8, b = o.macro ? 0.7 : 0.0; /* the skip penalty's weight (macro) */
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent, &pen), NASC_OK);
    nasc_enas_ctl_backward(c, a, b, g);
    int checked = 0, bad = 0, nonzero = 0;
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        float keep = th[i], hi = keep + 1e-3f, lo = keep - 1e-3f;
        double lp1, lp2, pen1, pen2;
        th[i] = hi;
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp1, &ent, &pen1), NASC_OK);
        th[i] = lo;
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent, &pen2), NASC_OK);
        th[i] = keep;
        double fd = (a * (lp1 - lp2) + b * (pen1 - pen2)) / ((double)hi - (double)lo);
        double err = fabs(fd - g[i]) / fmax(1e-4, fabs(fd) + fabs(g[i]));
        if (err > worst) worst = err;
        if (err > 2e-3) {
            if (bad < 5) printf("  parameter %zu: backward %.6e, finite difference %.6e\n", i, g[i], fd);
            bad++;
        }
        if (fabs(g[i]) > 1e-6) nonzero++;
        checked++;
    }
    printf("ENAS %s controller gradient (hidden %d, %d %s, tanh %g, temperature %g): %d parameters, %d non-zero, "
           "worst relative error %.2e\n",
           o.rnn ? "rnn" : o.macro ? "macro" : "micro", o.hidden, o.nodes, o.macro ? "layers" : "nodes", o.tanh_constant,
           o.temperature, checked, nonzero, worst);
    assert_int_equal(bad, 0);
    /* every block of parameters takes part: the LSTM, both embeddings, the
     * op head and the attention (only a few entries may be exactly 0) */
    assert_true(nonzero > (int)(P * 9 / 10));
    free(g);
    nasc_enas_ctl_destroy(c);
}

static void test_gradient(void **state) {
    (void)state;
    check_gradient(opts(6, 3), 1);
    nasc_enas_ctl_options o = opts(5, 2);
    o.tanh_constant = 0; /* plain logits */
    check_gradient(o, 2);
    o = opts(4, 3);
    o.temperature = 1.7f;
    check_gradient(o, 3);
    /* macro: op heads, skip heads and their penalty, inputs that average the chosen anchors */
    check_gradient(macro_opts(6, 5), 4);
    o = macro_opts(5, 4);
    o.tanh_constant = 0;
    o.temperature = 1.3f;
    check_gradient(o, 5);
    /* rnn: parent heads with the distance bias, inputs that scale the chosen anchor */
    check_gradient(rnn_opts(6, 5), 6);
    o = rnn_opts(5, 4);
    o.tanh_constant = 0;
    o.temperature = 0;
    check_gradient(o, 7);
}

/* RNN: decisions in range (n0.act, then n<i>.prev < i and n<i>.act), log p
 * and entropy reproduced when scored again, the distance bias favouring
 * near parents at initialisation, out-of-range values refused. */
static void test_rnn_sampling(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl_options o = rnn_opts(32, 8);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, 5);
    assert_non_null(c);
    assert_int_equal(nasc_enas_ctl_count(c), 15);
    nasc_rng r;
    nasc_rng_seed(&r, 9);
    long near = 0, parents = 0;
    for (int k = 0; k < 300; k++) {
        uint32_t d[15];
        double lp, ent, lp2, ent2;
        assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent, NULL), NASC_OK);
        assert_true(d[0] < 4);
        for (int i = 1; i < 8; i++) {
            assert_true(d[2 * i - 1] < (uint32_t)i);
            assert_true(d[2 * i] < 4);
            if (i >= 3) {
                near += d[2 * i - 1] == (uint32_t)(i - 1);
                parents++;
            }
        }
        assert_true(lp < 0 && ent > 0);
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent2, NULL), NASC_OK);
        assert_true(fabs(lp - lp2) < 1e-12 && fabs(ent - ent2) < 1e-12);
    }
    /* the scores start near 0, so the (i - j)^2 / 6 bias decides: for node
     * i >= 3 the last node gets e^(-1/6) / sum_j e^(-(i-j)^2/6), between
     * 0.535 (i = 3) and 0.507 (i = 7); uniform would be 1/3 .. 1/7 */
    double frac = (double)near / (double)parents;
    printf("rnn controller: the previous node as parent at initialisation: %.3f\n", frac);
    assert_true(frac > 0.46 && frac < 0.57);
    uint32_t bad[15] = {0};
    double lp, ent;
    bad[3] = 2; /* n2.prev must be 0 or 1 */
    assert_int_equal(nasc_enas_ctl_run(c, bad, NULL, &lp, &ent, NULL), NASC_EINPUT);
    bad[3] = 1;
    bad[2] = 4; /* n1.act */
    assert_int_equal(nasc_enas_ctl_run(c, bad, NULL, &lp, &ent, NULL), NASC_EINPUT);
    nasc_enas_ctl_destroy(c);
}

static void test_sampling(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl_options o = opts(16, 5);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, 5);
    assert_non_null(c);
    assert_int_equal(nasc_enas_ctl_count(c), 40);
    nasc_rng r;
    nasc_rng_seed(&r, 9);
    long sep = 0, ops = 0;
    for (int k = 0; k < 200; k++) {
        uint32_t d[40];
        double lp, ent, lp2, ent2;
        assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent, NULL), NASC_OK);
        for (int cell = 0; cell < 2; cell++)
            for (int b = 0; b < 5; b++) {
                const uint32_t *bd = d + cell * 20 + b * 4;
                assert_true(bd[0] < (uint32_t)(b + 2) && bd[1] < (uint32_t)(b + 2));
                assert_true(bd[2] < 5 && bd[3] < 5);
                sep += (bd[2] < 2) + (bd[3] < 2);
                ops += 2;
            }
        assert_true(lp < 0 && ent > 0);
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent2, NULL), NASC_OK);
        assert_true(fabs(lp - lp2) < 1e-12 && fabs(ent - ent2) < 1e-12);
    }
    /* b_soft starts at (10, 10, 0, 0, 0): with the op tanh constant
     * 1.1 / 2.5 the two separable convolutions get logit 0.44 against 0
     * (and +0.25 / -0.25 more in the normal cell): p = 2 e^0.44 / (2 e^0.44
     * + 3) = 0.51 in the reduction cell, 0.66 in the normal one, about 0.58
     * over both, where uniform would be 0.4 */
    double frac = (double)sep / (double)ops;
    printf("separable convolutions among sampled ops at initialisation: %.3f\n", frac);
    assert_true(frac > 0.52 && frac < 0.64);
    nasc_enas_ctl_destroy(c);
}

/* Macro: masks within each layer's candidates, log p, entropy and the skip
 * penalty reproduced when the same decisions are scored again, the skip
 * rate near 0.5 at initialisation (small weights: scores near 0), values
 * out of range refused. */
static void test_macro_sampling(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl_options o = macro_opts(16, 8);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, 6);
    assert_non_null(c);
    assert_int_equal(nasc_enas_ctl_count(c), 16);
    nasc_rng r;
    nasc_rng_seed(&r, 3);
    long on = 0, cand = 0;
    for (int k = 0; k < 300; k++) {
        uint32_t d[16];
        double lp, ent, pen, lp2, ent2, pen2;
        assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent, &pen), NASC_OK);
        for (int l = 0; l < 8; l++) {
            assert_true(d[2 * l] < 6);
            assert_true((d[2 * l + 1] >> l) == 0);
            for (int j = 0; j < l; j++) on += d[2 * l + 1] >> j & 1;
            cand += l;
        }
        assert_true(lp < 0 && ent > 0 && pen > 0);
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent2, &pen2), NASC_OK);
        assert_true(fabs(lp - lp2) < 1e-12 && fabs(ent - ent2) < 1e-12 && fabs(pen - pen2) < 1e-12);
    }
    double rate = (double)on / (double)cand;
    printf("macro skip rate at initialisation: %.3f\n", rate);
    assert_true(rate > 0.4 && rate < 0.6);
    uint32_t bad[16] = {0};
    double lp, ent;
    bad[1] = 1; /* layer 0 has no candidates */
    assert_int_equal(nasc_enas_ctl_run(c, bad, NULL, &lp, &ent, NULL), NASC_EINPUT);
    bad[1] = 0;
    bad[3] = 2; /* layer 1 has one candidate */
    assert_int_equal(nasc_enas_ctl_run(c, bad, NULL, &lp, &ent, NULL), NASC_EINPUT);
    bad[3] = 1;
    bad[2] = 6; /* 6 ops */
    assert_int_equal(nasc_enas_ctl_run(c, bad, NULL, &lp, &ent, NULL), NASC_EINPUT);
    nasc_enas_ctl_destroy(c);
}

/* REINFORCE through the controller's gradient learns a synthetic reward:
 * the share of op decisions equal to one op (micro: sep_conv_5x5, about
 * half at first since b_soft starts at 10 for both separable convolutions;
 * macro: avg_pool_3x3, 1 in 6). */
static void learn(nasc_enas_ctl_options o, int target_op, int ops_at, int stride, double *before, double *after) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, 8);
    assert_non_null(c);
    size_t P = nasc_enas_ctl_size(c);
    uint32_t n = nasc_enas_ctl_count(c), d[64];
    double *g = calloc(P, sizeof *g), baseline = 0;
    *before = *after = 0;
    float *th = nasc_enas_ctl_params(c);
    nasc_rng r;
    nasc_rng_seed(&r, 17);
    for (int u = 0; u < 150; u++) {
        memset(g, 0, P * sizeof *g);
        double mean = 0;
        for (int k = 0; k < 10; k++) {
            double lp, ent, hits = 0, total = 0;
            assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent, NULL), NASC_OK);
            for (uint32_t i = (uint32_t)ops_at; i < n; i += (uint32_t)stride) {
                hits += d[i] == (uint32_t)target_op;
                total++;
                if (stride == 4) { /* micro: op_a and op_b */
                    hits += d[i + 1] == (uint32_t)target_op;
                    total++;
                }
            }
            double reward = hits / total;
            mean += reward / 10;
            baseline = u == 0 && k == 0 ? reward : 0.9 * baseline + 0.1 * reward;
            nasc_enas_ctl_backward(c, (reward - baseline) / 10, 0.0, g);
        }
        if (u == 0) *before = mean; /* the first 10 samples, before any update; the last 50 */
        if (u >= 145) *after += mean / 5;
        for (size_t i = 0; i < P; i++) th[i] += (float)(2.0 * g[i]); /* ascent on the expected reward */
    }
    free(g);
    nasc_enas_ctl_destroy(c);
}

static void test_learns(void **state) {
    (void)state;
    double before, after;
    /* without the tanh squashing: with the reference's constants (1.10 / 2.5)
     * an op's logits span only +-0.44, so no op can pass p = 0.38 */
    nasc_enas_ctl_options mo = opts(16, 3);
    mo.tanh_constant = 0;
    learn(mo, 1, 2, 4, &before, &after);
    printf("micro controller, reward = share of sep_conv_5x5 ops: %.3f at first, %.3f in the last 5 of 150 updates\n", before,
           after);
    assert_true(before < 0.6 && after > 0.85);
    learn(macro_opts(16, 6), 4, 0, 2, &before, &after);
    printf("macro controller, reward = share of avg_pool_3x3 layers: %.3f at first, %.3f in the last 5 of 150 updates\n", before,
           after);
    assert_true(before < 0.3 && after > 0.6);
}

static void test_bad(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_enas_ctl_options o = opts(8, 2);
    o.op_tanh_reduce = 0;
    assert_null(nasc_enas_ctl_create(&ctx, &o, 1));
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    o = opts(8, 2);
    o.ops = 1;
    assert_null(nasc_enas_ctl_create(&ctx, &o, 1));
    o = opts(8, 2);
    nasc_enas_ctl *c = nasc_enas_ctl_create(&ctx, &o, 1);
    assert_non_null(c);
    uint32_t d[16] = {0};
    d[0] = 2; /* node 0 reads one of 2 inputs */
    double lp, ent;
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent, NULL), NASC_EINPUT);
    d[0] = 1;
    d[2] = 5; /* 5 ops */
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent, NULL), NASC_EINPUT);
    d[2] = 4;
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent, NULL), NASC_OK);
    nasc_enas_ctl_destroy(c);
}


/* Whether store tensor `name` is one child A's step may write: a parameter
 * of A, its momentum, or a running statistic of one of A's batch norms. */
static bool touched_by(const nasc_module *a, const char *name) {
    if (strncmp(name, "opt/m/", 6) == 0) name += 6;
    for (uint32_t v = 0; v < a->n_values; v++)
        if (a->values[v].kind == NASC_VAL_PARAM && strcmp(nasc_str(a, a->values[v].name), name) == 0) return true;
    for (uint32_t p = 0; p < a->n_prims; p++) {
        if (a->prims[p].op != NASC_PRIM_BATCH_NORM) continue;
        const char *r = nasc_str(a, a->values[a->prims[p].result].name);
        size_t n = strlen(r);
        if (strncmp(name, r, n) == 0 && (strcmp(name + n, ".mean") == 0 || strcmp(name + n, ".var") == 0))
            return true;
    }
    return false;
}

static nasc_module *shared_child(nasc_space *sp, const uint32_t *d) {
    nasc_module *arch = NULL, *prim = NULL;
    assert_int_equal(nasc_space_decode(sp, d, &arch), NASC_OK);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.shared = NASC_SHARE_BY_INPUT;
    assert_int_equal(nasc_lower_with(arch, &lo, &prim), NASC_OK);
    nasc_module_destroy(arch);
    return prim;
}

static void test_shared_step(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = NULL;
    assert_int_equal(nasc_space_create(&ctx, "enas-micro", NULL, &sp), NASC_OK);
    uint32_t n = nasc_space_count(sp), da[64], db[64];
    nasc_rng r;
    nasc_rng_seed(&r, 21);
    nasc_space_sample(sp, &r, da);
    memcpy(db, da, sizeof da);
    /* B differs from A in the normal cell's first op: sep_conv_3x3 there, sep_conv_5x5 here */
    da[2] = 0;
    db[2] = 1;
    db[n - 1] = (da[n - 1] + 1) % 5; /* and in the reduction cell's last op */
    nasc_module *pa = shared_child(sp, da), *pb = shared_child(sp, db);
    nasc_param_store *st = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(st, pa, 1), NASC_OK);
    assert_int_equal(nasc_params_init(st, pb, 1), NASC_OK);
    /* the two ops at cell0.b0a have tensors of their own, of their own shapes */
    const nasc_tensor *k3 = NULL, *k5 = NULL;
    for (uint32_t i = 0; i < st->n; i++) {
        const nasc_tensor *t = st->tensors[i];
        if (strncmp(t->name, "cell0.b0a.sep_conv_3x3.", 23) == 0 && strstr(t->name, ".dw1.w")) k3 = t;
        if (strncmp(t->name, "cell0.b0a.sep_conv_5x5.", 23) == 0 && strstr(t->name, ".dw1.w")) k5 = t;
    }
    assert_non_null(k3);
    assert_non_null(k5);
    assert_true(k3 != k5 && k3->dims[2] == 3 && k5->dims[2] == 5);

    /* the state before the step: a copy of every tensor */
    uint32_t before = st->n;
    float **copy = calloc(before, sizeof *copy);
    for (uint32_t i = 0; i < before; i++) {
        copy[i] = malloc((size_t)st->tensors[i]->numel * sizeof(float));
        memcpy(copy[i], st->tensors[i]->data, (size_t)st->tensors[i]->numel * sizeof(float));
    }
    /* one training step of A */
    nasc_net_options no = nasc_net_options_default();
    no.batch = 4;
    nasc_net *na = NULL;
    assert_int_equal(nasc_net_compile(&ctx, pa, st, &no, &na), NASC_OK);
    float *x = malloc(4 * 28 * 28 * sizeof *x);
    int32_t y[4] = {1, 7, 3, 9};
    for (int i = 0; i < 4 * 28 * 28; i++) x[i] = nasc_rng_uniform(&r) - 0.5f;
    float loss;
    int ok;
    assert_int_equal(nasc_net_set_input(na, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(na), NASC_OK);
    assert_int_equal(nasc_net_loss(na, y, &loss, &ok), NASC_OK);
    assert_int_equal(nasc_net_backward(na), NASC_OK);
    nasc_optim_options oo = nasc_optim_options_default(NASC_OPTIM_SGD);
    nasc_optimizer *opt = nasc_optim_create(&ctx, &oo, st);
    const nasc_param_grad *g;
    uint32_t ng = nasc_net_grads(na, &g);
    assert_int_equal(nasc_optim_step(opt, g, ng, 0.1f), NASC_OK);
    /* A's gradients point at the store's tensors */
    for (uint32_t i = 0; i < ng; i++) assert_ptr_equal(g[i].param, nasc_params_find(st, g[i].param->name));

    int changed = 0, kept = 0, a_params = 0;
    for (uint32_t i = 0; i < before; i++) {
        const nasc_tensor *t = st->tensors[i];
        bool same = memcmp(copy[i], t->data, (size_t)t->numel * sizeof(float)) == 0;
        if (!touched_by(pa, t->name)) {
            if (!same) printf("  %s changed, but child A does not use it\n", t->name);
            assert_true(same);
            kept++;
        } else {
            changed += !same;
        }
    }
    for (uint32_t v = 0; v < pa->n_values; v++) a_params += pa->values[v].kind == NASC_VAL_PARAM;
    /* new tensors are A's: the momentum of each of its parameters and the
     * running statistics of its batch norms (made by the compile) */
    uint32_t momenta = 0;
    for (uint32_t i = before; i < st->n; i++) {
        assert_true(touched_by(pa, st->tensors[i]->name));
        momenta += strncmp(st->tensors[i]->name, "opt/m/", 6) == 0;
    }
    assert_int_equal(momenta, (uint32_t)a_params);
    printf("shared store: %u tensors; child A's step changed %d of its tensors, left %d others untouched, added %u "
           "momentum tensors\n",
           before, changed, kept, momenta);
    assert_true(kept > 0 && changed > a_params / 2);
    nasc_net_destroy(na);

    /* B binds to the same tensors: its gradients' tensors are the store's,
     * and compiling it adds only the running statistics of its own batch
     * norms (no copy of a parameter) */
    uint32_t count = st->n;
    nasc_net *nb = NULL;
    assert_int_equal(nasc_net_compile(&ctx, pb, st, &no, &nb), NASC_OK);
    for (uint32_t i = count; i < st->n; i++) {
        const char *nm = st->tensors[i]->name;
        size_t len = strlen(nm);
        assert_true(touched_by(pb, nm) && !touched_by(pa, nm) && len > 4 &&
                    (strcmp(nm + len - 5, ".mean") == 0 || strcmp(nm + len - 4, ".var") == 0));
    }
    ng = nasc_net_grads(nb, &g);
    int shared_with_a = 0;
    for (uint32_t i = 0; i < ng; i++) {
        assert_ptr_equal(g[i].param, nasc_params_find(st, g[i].param->name));
        shared_with_a += touched_by(pa, g[i].param->name);
    }
    assert_true(shared_with_a > 0 && shared_with_a < (int)ng);
    nasc_net_destroy(nb);

    for (uint32_t i = 0; i < before; i++) free(copy[i]);
    free(copy);
    free(x);
    nasc_optim_destroy(opt);
    nasc_params_destroy(st);
    nasc_module_destroy(pa);
    nasc_module_destroy(pb);
    nasc_space_destroy(sp);
}

/* enas-rnn: each node's weights keyed by (node, parent, activation); an
 * Adam step on child A (per-tensor step counts, as the one-shot search)
 * changes A's tensors only, gives each a step count of 1 and leaves B's
 * own tensors without optimizer state; B shares A's node 0 only. */
typedef struct rnn_key {
    const nasc_space *sp;
    const uint32_t *d;
} rnn_key;

static void rnn_share_key(void *ud, const char *name, char *out, size_t size) {
    const rnn_key *k = ud;
    nasc_space_share_key(k->sp, k->d, name, out, size);
}

static nasc_module *rnn_child(nasc_space *sp, const uint32_t *d) {
    nasc_module *arch = NULL, *prim = NULL;
    assert_int_equal(nasc_space_decode(sp, d, &arch), NASC_OK);
    const char *keys[] = {"channels", "input"}, *vals[] = {"8", "4"};
    assert_int_equal(nasc_arch_apply_overrides(arch, keys, vals, 2), NASC_OK);
    rnn_key k = {sp, d};
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = 3;
    lo.param_key = rnn_share_key;
    lo.param_key_ud = &k;
    assert_int_equal(nasc_lower_with(arch, &lo, &prim), NASC_OK);
    nasc_module_destroy(arch);
    return prim;
}

static void test_rnn_shared_step(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = NULL;
    nasc_space_options so = {.blocks = 3};
    assert_int_equal(nasc_space_create(&ctx, "enas-rnn", &so, &sp), NASC_OK);
    assert_int_equal(nasc_space_count(sp), 5);
    /* n0.act, n1.prev, n1.act, n2.prev, n2.act: B shares node 0 (tanh),
     * not node 1 (relu against sigmoid) nor node 2 (parent n1 against n0) */
    uint32_t da[5] = {0, 0, 1, 1, 2}, db[5] = {0, 0, 3, 0, 2};
    nasc_module *pa = rnn_child(sp, da), *pb = rnn_child(sp, db);
    assert_true(nasc_prim_lookup(pa, "cell.n0g_in.xh.tanh.w", 21) >= 0);
    assert_true(nasc_prim_lookup(pb, "cell.n0g_in.xh.tanh.w", 21) >= 0);
    assert_true(nasc_prim_lookup(pa, "cell.n1c_in.n0.relu.w", 21) >= 0);
    assert_true(nasc_prim_lookup(pb, "cell.n1c_in.n0.sigmoid.w", 24) >= 0);
    assert_true(nasc_prim_lookup(pa, "cell.n2g_in.n1.identity.b", 25) >= 0);
    assert_true(nasc_prim_lookup(pb, "cell.n2g_in.n0.identity.b", 25) >= 0);
    nasc_param_store *st = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(st, pa, 1), NASC_OK);
    assert_int_equal(nasc_params_init(st, pb, 1), NASC_OK);
    uint32_t before = st->n;
    float **copy = calloc(before, sizeof *copy);
    for (uint32_t i = 0; i < before; i++) {
        copy[i] = malloc((size_t)st->tensors[i]->numel * sizeof(float));
        memcpy(copy[i], st->tensors[i]->data, (size_t)st->tensors[i]->numel * sizeof(float));
    }
    nasc_net_options no = nasc_net_options_default();
    no.batch = 2;
    nasc_net *na = NULL;
    assert_int_equal(nasc_net_compile(&ctx, pa, st, &no, &na), NASC_OK);
    float x[6] = {104, 101, 108, 108, 111, 32}, h[16] = {0};
    int32_t y[6] = {101, 108, 108, 111, 32, 119};
    float loss;
    int ok;
    assert_int_equal(nasc_net_set_input(na, 0, x), NASC_OK);
    assert_int_equal(nasc_net_set_input(na, 1, h), NASC_OK);
    assert_int_equal(nasc_net_forward(na), NASC_OK);
    assert_int_equal(nasc_net_loss(na, y, &loss, &ok), NASC_OK);
    assert_int_equal(nasc_net_backward(na), NASC_OK);
    nasc_optim_options oo = nasc_optim_options_default(NASC_OPTIM_ADAM);
    oo.per_tensor_steps = true;
    nasc_optimizer *opt = nasc_optim_create(&ctx, &oo, st);
    const nasc_param_grad *g;
    uint32_t ng = nasc_net_grads(na, &g);
    assert_int_equal(nasc_optim_step(opt, g, ng, 0.01f), NASC_OK);
    int changed = 0, kept = 0;
    for (uint32_t i = 0; i < before; i++) {
        const nasc_tensor *t = st->tensors[i];
        bool same = memcmp(copy[i], t->data, (size_t)t->numel * sizeof(float)) == 0;
        if (touched_by(pa, t->name)) {
            changed += !same;
        } else {
            assert_true(touched_by(pb, t->name)); /* B's own: node 1 and node 2 */
            assert_true(same);
            kept++;
        }
    }
    /* A's parameters: each changed, each with m, v and a step count of 1 */
    int a_params = 0;
    for (uint32_t v = 0; v < pa->n_values; v++) {
        if (pa->values[v].kind != NASC_VAL_PARAM) continue;
        a_params++;
        char nm[256];
        snprintf(nm, sizeof nm, "opt/n/%s", nasc_str(pa, pa->values[v].name));
        const nasc_tensor *n_t = nasc_params_find(st, nm);
        assert_non_null(n_t);
        assert_true(n_t->data[0] == 1.0f);
    }
    assert_int_equal(st->n, before + 3 * (uint32_t)a_params);
    assert_int_equal(changed, a_params);
    assert_int_equal(kept, 8); /* B's nodes 1 and 2: two linears each, w and b */
    printf("enas-rnn shared store: %u tensors; child A's step changed its %d, left B's own %d untouched\n", before,
           changed, kept);
    nasc_net_destroy(na);
    for (uint32_t i = 0; i < before; i++) free(copy[i]);
    free(copy);
    nasc_optim_destroy(opt);
    nasc_params_destroy(st);
    nasc_module_destroy(pa);
    nasc_module_destroy(pb);
    nasc_space_destroy(sp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_macro_sampling),
        cmocka_unit_test(test_rnn_sampling),
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_shared_step),
        cmocka_unit_test(test_rnn_shared_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
