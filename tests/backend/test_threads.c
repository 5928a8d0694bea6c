/* The process's thread count is set once: by nasc_backend_set_threads or
 * by the first compile that asks for a count, never again by compiling or
 * running nets (whoever changes OpenMP's count afterwards keeps it), and a
 * different count asked for later is an error, not a silent change.
 *
 * Its own executable: the count is the process's.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "testutil.h"

static const char *net_text =
    "prim {\n"
    "  input %x : f32[N,8,4,4]\n"
    "  param %w : f32[8,1,5,5]\n"
    "  param %fc.w : f32[3,8]\n"
    "  param %fc.b : f32[3]\n"
    "  %d = conv %x, %w {kernel=5x5, stride=1x1, pad=2,2,2,2, dilation=1x1, groups=8} : f32[N,8,4,4]\n"
    "  %gap = global_avg_pool %d : f32[N,8,1,1]\n"
    "  %fl = flatten %gap : f32[N,8]\n"
    "  %fc = inner_product %fl, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

typedef struct fixture {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *ps;
} fixture;

static void fx_init(fixture *f) {
    nasc_ctx_init(&f->ctx);
    assert_int_equal(nasc_text_parse(&f->ctx, net_text, strlen(net_text), "threads.nir", &f->m), NASC_OK);
    f->ps = nasc_params_create(&f->ctx);
    assert_non_null(f->ps);
    assert_int_equal(nasc_params_init(f->ps, f->m, 3), NASC_OK);
}

static void fx_free(fixture *f) {
    nasc_params_destroy(f->ps);
    nasc_module_destroy(f->m);
}

/* Compile with opt.threads = threads and run a training step. */
static nasc_status compile_and_step(fixture *f, int threads) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = 2;
    o.threads = threads;
    nasc_net *net = NULL;
    nasc_status st = nasc_net_compile(&f->ctx, f->m, f->ps, &o, &net);
    if (st) return st;
    float x[2 * 8 * 16] = {0};
    int32_t y[2] = {0, 2};
    float loss;
    st = nasc_net_set_input(net, 0, x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_loss(net, y, &loss, NULL);
    if (!st) st = nasc_net_backward(net);
    nasc_net_destroy(net);
    return st;
}

static void test_threads_set_once(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    int start = omp_get_max_threads();
    /* bad counts; 0 leaves OpenMP's count alone */
    assert_int_equal(nasc_backend_set_threads(&f.ctx, -2), NASC_EINPUT);
    assert_int_equal(nasc_backend_set_threads(&f.ctx, 0), NASC_OK);
    assert_int_equal(compile_and_step(&f, 0), NASC_OK);
    assert_int_equal(omp_get_max_threads(), start);

    /* the first compile that asks sets it */
    assert_int_equal(compile_and_step(&f, 1), NASC_OK);
    assert_int_equal(omp_get_max_threads(), 1);
    assert_int_equal(nasc_backend_threads(), 1);

    /* someone changes OpenMP's count: compiling and running nets, asking
     * for the count already set, leave it alone */
    omp_set_num_threads(2);
    assert_int_equal(compile_and_step(&f, 1), NASC_OK);
    assert_int_equal(omp_get_max_threads(), 2);
    assert_int_equal(nasc_backend_set_threads(&f.ctx, 1), NASC_OK);
    assert_int_equal(omp_get_max_threads(), 2);
    assert_true(nasc_sgemm_gflops(64, 1) > 0);
    assert_int_equal(omp_get_max_threads(), 2);

    /* another count is an error that says why */
    assert_int_equal(compile_and_step(&f, 3), NASC_EINPUT);
    printf("  %s\n", f.ctx.diag.msg);
    assert_non_null(strstr(f.ctx.diag.msg, "once per process"));
    assert_int_equal(nasc_backend_set_threads(&f.ctx, 4), NASC_EINPUT);
    assert_true(nasc_sgemm_gflops(64, 4) == 0);
    assert_int_equal(omp_get_max_threads(), 2);
    fx_free(&f);
}

/* Batch-1 inference runs its passes on the calling thread alone
 * (NASC_NET_PARALLEL_AUTO): the same outputs as on all threads, and the
 * caller's OpenMP count is what it was after each pass. An unknown policy
 * is refused. */
static void test_batch1_inference_serial(void **state) {
    (void)state;
    fixture f;
    fx_init(&f);
    omp_set_num_threads(2);
    float x[8 * 16], y[2][3];
    for (int i = 0; i < 8 * 16; i++) x[i] = (float)(i % 7) - 3.0f;
    for (int k = 0; k < 2; k++) {
        nasc_net_options o = nasc_net_options_default();
        o.batch = 1;
        o.mode = NASC_MODE_INFER;
        o.parallel = k ? NASC_NET_PARALLEL_ALL : NASC_NET_PARALLEL_AUTO;
        nasc_net *net = NULL;
        assert_int_equal(nasc_net_compile(&f.ctx, f.m, f.ps, &o, &net), NASC_OK);
        assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        assert_int_equal(omp_get_max_threads(), 2);
        assert_int_equal(nasc_net_read(net, "fc", y[k]), NASC_OK);
        nasc_net_destroy(net);
    }
    for (int j = 0; j < 3; j++) assert_float_equal(y[0][j], y[1][j], 1e-5 * (1 + fabsf(y[1][j])));
    nasc_net_options o = nasc_net_options_default();
    o.parallel = (nasc_net_parallel)9;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&f.ctx, f.m, f.ps, &o, &net), NASC_EINPUT);
    assert_non_null(strstr(f.ctx.diag.msg, "parallel policy"));
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_set_once),
        cmocka_unit_test(test_batch1_inference_serial),
    };
    return cmocka_run_group_tests_name("backend/threads", tests, NULL, NULL);
}
