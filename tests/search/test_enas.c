/* The ENAS micro controller: its gradient against central finite
 * differences (with and without the tanh squashing and a temperature);
 * sampled decisions in range and a log-probability that scoring the same
 * decisions again reproduces; the reference's initial bias toward the two
 * separable convolutions; bad options and out-of-range decisions refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enas_ctl.h"

static nasc_enas_ctl_options opts(int hidden, int nodes) {
    nasc_enas_ctl_options o = {hidden, nodes, 5, 1.10f, 2.5f, 0.0f};
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
    double lp, ent;
    assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent), NASC_OK);
    double *g = calloc(P, sizeof *g);
    assert_non_null(g);
    double a = -0.8;
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent), NASC_OK);
    nasc_enas_ctl_backward(c, a, g);
    int checked = 0, bad = 0, nonzero = 0;
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        float keep = th[i], hi = keep + 1e-3f, lo = keep - 1e-3f;
        double lp1, lp2;
        th[i] = hi;
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp1, &ent), NASC_OK);
        th[i] = lo;
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent), NASC_OK);
        th[i] = keep;
        double fd = a * (lp1 - lp2) / ((double)hi - (double)lo);
        double err = fabs(fd - g[i]) / fmax(1e-4, fabs(fd) + fabs(g[i]));
        if (err > worst) worst = err;
        if (err > 2e-3) {
            if (bad < 5) printf("  parameter %zu: backward %.6e, finite difference %.6e\n", i, g[i], fd);
            bad++;
        }
        if (fabs(g[i]) > 1e-6) nonzero++;
        checked++;
    }
    printf("ENAS controller gradient (hidden %d, nodes %d, tanh %g, temperature %g): %d parameters, %d non-zero, "
           "worst relative error %.2e\n",
           o.hidden, o.nodes, o.tanh_constant, o.temperature, checked, nonzero, worst);
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
        assert_int_equal(nasc_enas_ctl_run(c, d, &r, &lp, &ent), NASC_OK);
        for (int cell = 0; cell < 2; cell++)
            for (int b = 0; b < 5; b++) {
                const uint32_t *bd = d + cell * 20 + b * 4;
                assert_true(bd[0] < (uint32_t)(b + 2) && bd[1] < (uint32_t)(b + 2));
                assert_true(bd[2] < 5 && bd[3] < 5);
                sep += (bd[2] < 2) + (bd[3] < 2);
                ops += 2;
            }
        assert_true(lp < 0 && ent > 0);
        assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp2, &ent2), NASC_OK);
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
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent), NASC_EINPUT);
    d[0] = 1;
    d[2] = 5; /* 5 ops */
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent), NASC_EINPUT);
    d[2] = 4;
    assert_int_equal(nasc_enas_ctl_run(c, d, NULL, &lp, &ent), NASC_OK);
    nasc_enas_ctl_destroy(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
