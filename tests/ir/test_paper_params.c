/* Parameter counts of the model zoo at the papers' CIFAR-10 settings,
 * against the numbers the papers publish.
 *
 * Every count here is nasc's own: YAML loader, --set overrides, lowering,
 * cost model. None of the three includes an auxiliary head: the papers
 * train one (loss weight 0.4) but do not count it in the figures below,
 * and nasc does not build one.
 *
 *  - NASNet-A (6 @ 768): Zoph et al., "Learning Transferable Architectures
 *    for Scalable Image Recognition", CVPR 2018, Table 1 (CIFAR-10):
 *    3.3M parameters. N = 6 normal cells per stage, 768 channels in the
 *    last cell's output: F = 32 (32 * 4 * 6 = 768).
 *  - AmoebaNet-A (N=6, F=36): Real et al., "Regularized Evolution for
 *    Image Classifier Architecture Search", AAAI 2019, CIFAR-10 results
 *    table, row "AmoebaNet-A (N=6, F=36)": 3.2M parameters.
 *  - DARTS (second order): Liu et al., "DARTS: Differentiable Architecture
 *    Search", ICLR 2019, Table 1 (CIFAR-10): 3.3M parameters, 20 cells,
 *    36 initial channels; the DARTS code counts parameters without the
 *    auxiliary head (utils.count_parameters_in_MB skips it).
 *
 * The tolerance is the 3%. Exact counts are pinned too, so that a
 * change to the scaffold shows up here first.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t count_params(const char *model, const char *channels) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_override ov[] = {
        {"input", "3x32x32"},
        {"classes", "10"},
        {"channels", channels},
        {"cells_per_stage", "6"},
    };
    char *path = nasc_test_path(model);
    nasc_module *arch = NULL, *prim = NULL;
    if (nasc_model_load(&ctx, path, ov, 4, &arch) != NASC_OK || nasc_lower(arch, &prim) != NASC_OK) {
        nasc_diag_print(&ctx.diag, stderr);
        fail_msg("%s did not load and lower", model);
    }
    nasc_cost c;
    assert_int_equal(nasc_cost_compute(prim, &c), NASC_OK);
    int64_t params = c.params;
    /* 2 reductions + 3 stages of 6 normal cells = 20 cells, plus stem and head */
    int cells = 0;
    for (uint32_t g = 0; g < c.n_groups; g++)
        if (strncmp(nasc_str(prim, c.groups[g].name), "cell", 4) == 0) cells++;
    assert_int_equal(cells, 20);
    nasc_cost_free(prim, &c);
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    free(path);
    return params;
}

static void check(const char *what, int64_t got, double paper) {
    double rel = ((double)got - paper) / paper;
    fprintf(stderr, "%-28s nasc %lld, paper %.1fM, %+.2f%%\n", what, (long long)got, paper / 1e6,
            100 * rel);
    assert_true(fabs(rel) <= 0.03);
}

static void test_nasnet_a(void **state) {
    (void)state;
    int64_t p = count_params("models/nasnet-a.yaml", "32");
    check("NASNet-A (6 @ 768)", p, 3.3e6);
    assert_int_equal(p, 3328234);
}

static void test_amoebanet_a(void **state) {
    (void)state;
    int64_t p = count_params("models/amoebanet-a.yaml", "36");
    check("AmoebaNet-A (N=6, F=36)", p, 3.2e6);
    assert_int_equal(p, 3207106);
}

static void test_darts_v2(void **state) {
    (void)state;
    int64_t p = count_params("models/darts-v2.yaml", "36");
    check("DARTS-V2 (20 cells, 36 ch)", p, 3.3e6);
    assert_int_equal(p, 3349342);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nasnet_a),
        cmocka_unit_test(test_amoebanet_a),
        cmocka_unit_test(test_darts_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
