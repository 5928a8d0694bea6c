/* SMASH children: weights computed by the hypernetwork inside the net.
 * The lowering of a child with nasc_smash_child_make's view: the 1x1
 * convolutions have no parameters of their own (their weights are cut from
 * H's output and normalised), the main convolutions are boxes of the
 * block's shared tensor, H's tensors are shared by every child; the
 * gradients of H's parameters and of the shared tensors match central
 * finite differences of the net's output; bad shapes and wrong spaces are
 * clear errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "nasc_search.h"

static nasc_space *smash_space(nasc_ctx *ctx, int layers) {
    nasc_space_options o = {0, layers};
    nasc_space *sp = NULL;
    assert_int_equal(nasc_space_create(ctx, "smash", &o, &sp), NASC_OK);
    return sp;
}

/* Child `seed` of sp lowered with its hypernetwork into *prim; the child's
 * view in *c (free it). */
static void lower_child(nasc_ctx *ctx, nasc_space *sp, uint64_t seed, nasc_smash_child *c, nasc_module **prim) {
    uint32_t d[128];
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    nasc_space_sample(sp, &r, d);
    assert_int_equal(nasc_smash_child_make(sp, d, c), NASC_OK);
    nasc_module *arch = NULL;
    assert_int_equal(nasc_space_decode(sp, d, &arch), NASC_OK);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.hyper = &c->hyper;
    if (nasc_lower_with(arch, &lo, prim)) nasc_test_fail_diag(ctx, "lower with the hypernetwork");
    nasc_module_destroy(arch);
}

static bool has_value(const nasc_module *p, const char *name, nasc_value_kind kind) {
    int64_t v = nasc_prim_lookup(p, name, strlen(name));
    return v >= 0 && p->values[v].kind == kind;
}

static void test_child_structure(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = smash_space(&ctx, 3);
    nasc_smash_child a, b;
    nasc_module *pa = NULL, *pb = NULL;
    lower_child(&ctx, sp, 1, &a, &pa);
    lower_child(&ctx, sp, 2, &b, &pb);
    assert_int_equal(a.hyper.n_convs, 9);
    assert_int_equal(a.hyper.out_channels, 64);
    /* every column is +1 or -1 and names its block and its op once */
    for (int64_t col = 0; col < a.hyper.columns; col++) {
        int ones_block = 0, ones_op = 0;
        for (int row = 0; row < a.hyper.enc_channels; row++) {
            float e = a.enc[(int64_t)row * a.hyper.columns + col];
            assert_true(e == 1.0f || e == -1.0f);
            if (row < 3) ones_block += e > 0;
            if (row >= 3 && row < 11) ones_op += e > 0;
        }
        assert_int_equal(ones_block, 1);
        assert_int_equal(ones_op, 1);
    }
    for (int i = 0; i < 2; i++) {
        const nasc_module *p = i ? pb : pa;
        assert_true(has_value(p, "hyper.enc", NASC_VAL_INPUT));
        assert_true(has_value(p, "hyper.out.w", NASC_VAL_PARAM));
        assert_true(has_value(p, "smash.b0.w", NASC_VAL_PARAM));
        assert_true(has_value(p, "smash.b2.w", NASC_VAL_PARAM));
        /* generated, not a parameter: the normalised box of H's output */
        assert_true(has_value(p, "body.b0o0_1x1.conv.w", NASC_VAL_OP));
        assert_int_equal(p->prims[p->values[nasc_prim_lookup(p, "body.b0o0_1x1.conv.w", 20)].def].op,
                         NASC_PRIM_NORMALIZE);
        /* a main conv's weights: a box of the block's tensor */
        int64_t v = nasc_prim_lookup(p, "body.b1o2.conv.w", 16);
        assert_true(v >= 0 && p->values[v].kind == NASC_VAL_OP);
        assert_int_equal(p->prims[p->values[v].def].op, NASC_PRIM_SLICE);
        int64_t big = nasc_prim_lookup(p, "smash.b1.w", 10);
        assert_int_equal(p->values[big].type.dims[0], 16);
        assert_int_equal(p->values[big].type.dims[1], 32);
        assert_int_equal(p->values[big].type.dims[2], 7);
        /* no op has a parameter of its own for either conv */
        for (uint32_t k = 0; k < p->n_values; k++) {
            const char *n = nasc_str(p, p->values[k].name);
            if (p->values[k].kind == NASC_VAL_PARAM && strncmp(n, "body.b", 6) == 0 && strstr(n, ".conv.w"))
                fail_msg("%s is a parameter", n);
        }
    }
    /* one store serves both children: H and the block tensors are the same tensors */
    nasc_param_store *st = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(st, pa, 1), NASC_OK);
    uint32_t after_a = st->n;
    if (nasc_params_init(st, pb, 1)) nasc_test_fail_diag(&ctx, "the second child's tensors");
    assert_true(st->n < 2 * after_a);
    nasc_params_destroy(st);
    nasc_module_destroy(pa);
    nasc_module_destroy(pb);
    nasc_smash_child_free(&a);
    nasc_smash_child_free(&b);
    nasc_space_destroy(sp);
}

/* sum(r * logits) for fixed random r, in double */
static double objective(nasc_net *net, const float *r, float *logits, int n) {
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "logits", logits), NASC_OK);
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)r[i] * logits[i];
    return s;
}

static void test_gradients_through_hypernetwork(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = smash_space(&ctx, 2);
    nasc_smash_child c;
    nasc_module *p = NULL;
    lower_child(&ctx, sp, 5, &c, &p);
    nasc_param_store *st = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(st, p, 3), NASC_OK);
    nasc_net_options no = nasc_net_options_default();
    enum { B = 4, K = 10 };
    no.batch = B;
    no.threads = 1;
    nasc_net *net = NULL;
    if (nasc_net_compile(&ctx, p, st, &no, &net)) nasc_test_fail_diag(&ctx, "compile");
    nasc_rng r;
    nasc_rng_seed(&r, 17);
    float *x = malloc(B * 28 * 28 * sizeof *x), rr[B * K], logits[B * K];
    for (int i = 0; i < B * 28 * 28; i++) x[i] = nasc_rng_normal(&r);
    for (int i = 0; i < B * K; i++) rr[i] = nasc_rng_normal(&r);
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_set_input(net, 1, c.enc), NASC_OK);
    objective(net, rr, logits, B * K);
    assert_int_equal(nasc_net_set_output_grad(net, 0, rr), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    const nasc_param_grad *g;
    uint32_t ng = nasc_net_grads(net, &g);
    const char *names[] = {"hyper.in.w", "hyper.l0.w", "hyper.l1.w", "hyper.out.w", "smash.b0.w", "smash.b2.w"};
    int checked = 0;
    for (int t = 0; t < 6; t++) {
        const nasc_param_grad *pg = NULL;
        for (uint32_t i = 0; i < ng && !pg; i++)
            if (strcmp(g[i].param->name, names[t]) == 0) pg = &g[i];
        assert_non_null(pg);
        float *w = pg->param->data;
        /* the three entries of largest gradient, and one at random */
        int64_t pick[4] = {-1, -1, -1, (int64_t)nasc_rng_below(&r, (uint64_t)pg->param->numel)};
        for (int k = 0; k < 3; k++)
            for (int64_t i = 0; i < pg->param->numel; i++) {
                bool taken = false;
                for (int q = 0; q < k; q++) taken |= pick[q] == i;
                if (!taken && (pick[k] < 0 || fabsf(pg->grad[i]) > fabsf(pg->grad[pick[k]]))) pick[k] = i;
            }
        double gmax = fabsf(pg->grad[pick[0]]);
        assert_true(gmax > 0);
        for (int k = 0; k < 4; k++) {
            int64_t i = pick[k];
            float keep = w[i], h = (getenv("NASC_TEST_H") ? (float)atof(getenv("NASC_TEST_H")) : 3e-3f) * fmaxf(fabsf(keep), 0.05f);
            w[i] = keep + h;
            double up = objective(net, rr, logits, B * K);
            w[i] = keep - h;
            double down = objective(net, rr, logits, B * K);
            w[i] = keep;
            double fd = (up - down) / (2.0 * (double)h), an = pg->grad[i];
            double err = fabs(fd - an) / fmax(fabs(fd) + fabs(an), 0.25 * gmax);
            if (getenv("NASC_TEST_VERBOSE"))
                printf("  %s[%lld]: analytic %.6g, fd %.6g, max %.3g, err %.3g\n", names[t], (long long)i, an, fd, gmax, err);
            /* the random pick's gradient may be small: finite differences
             * are noisier relative to it (float32, ReLU kinks) */
            if (err > (k < 3 ? 0.05 : 0.1))
                fail_msg("%s[%lld]: analytic %.6g, finite differences %.6g (relative error %.3g)", names[t],
                         (long long)i, an, fd, err);
            checked++;
        }
    }
    assert_int_equal(checked, 24);
    free(x);
    nasc_net_destroy(net);
    nasc_params_destroy(st);
    nasc_module_destroy(p);
    nasc_smash_child_free(&c);
    nasc_space_destroy(sp);
}

static void test_bad_inputs(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = smash_space(&ctx, 2);
    uint32_t d[128];
    nasc_rng r;
    nasc_rng_seed(&r, 4);
    nasc_space_sample(sp, &r, d);
    nasc_smash_child c;
    assert_int_equal(nasc_smash_child_make(sp, d, &c), NASC_OK);
    nasc_module *arch = NULL, *p = NULL;
    assert_int_equal(nasc_space_decode(sp, d, &arch), NASC_OK);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.hyper = &c.hyper;
    /* H too narrow for a 1x1 convolution's fan-out */
    c.hyper.out_channels = 4;
    nasc_test_expect_diag(&ctx, nasc_lower_with(arch, &lo, &p), NASC_EINPUT, "do not fit the hypernetwork's output");
    assert_null(p);
    /* columns that end before an op's inputs do */
    c.hyper.out_channels = 64;
    c.hyper.columns -= 1;
    nasc_test_expect_diag(&ctx, nasc_lower_with(arch, &lo, &p), NASC_EINPUT, "do not fit the hypernetwork's output");
    c.hyper.columns += 1;
    c.hyper.depth = -1;
    nasc_test_expect_diag(&ctx, nasc_lower_with(arch, &lo, &p), NASC_EINPUT, "bad hypernetwork shape");
    c.hyper.depth = 6;
    /* an out-of-range decision */
    d[2] = 6;
    nasc_smash_child bad;
    nasc_test_expect_diag(&ctx, nasc_smash_child_make(sp, d, &bad), NASC_EINPUT, "'b0.o0.kh' of the smash space is 6");
    nasc_module_destroy(arch);
    nasc_smash_child_free(&c);
    /* another space */
    nasc_space *other = NULL;
    nasc_space_options o = {0, 2};
    assert_int_equal(nasc_space_create(&ctx, "enas-macro", &o, &other), NASC_OK);
    uint32_t e[8] = {0};
    nasc_test_expect_diag(&ctx, nasc_smash_child_make(other, e, &bad), NASC_EINPUT, "not for enas-macro");
    /* a net that is not a macro net */
    nasc_module *cells = NULL;
    nasc_space *micro = NULL;
    assert_int_equal(nasc_space_create(&ctx, "enas-micro", NULL, &micro), NASC_OK);
    uint32_t m[64] = {0};
    assert_int_equal(nasc_space_decode(micro, m, &cells), NASC_OK);
    nasc_smash_child_make(sp, (nasc_space_sample(sp, &r, d), d), &c);
    lo.hyper = &c.hyper;
    nasc_test_expect_diag(&ctx, nasc_lower_with(cells, &lo, &p), NASC_EINPUT, "not of a cells net");
    nasc_smash_child_free(&c);
    nasc_module_destroy(cells);
    nasc_space_destroy(micro);
    nasc_space_destroy(other);
    nasc_space_destroy(sp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_structure),
        cmocka_unit_test(test_gradients_through_hypernetwork),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests_name("search/smash", tests, NULL, NULL);
}
