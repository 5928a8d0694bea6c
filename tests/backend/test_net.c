/* The net's interface at its edges: nets whose output is a net input, the
 * compile options that choose the layout, the depthwise kernel and the
 * profile (set only through the options, whatever the environment says),
 * and the message of a failed oneDNN call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "net_internal.h" /* the oneDNN status wrappers */
#include "testutil.h"

/* A module whose output 0 is its input x (N, k): the logits are the data. */
static nasc_module *passthrough_module(nasc_ctx *ctx, int64_t k) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "passthrough");
    assert_non_null(m);
    nasc_type ty = {NASC_F32, 2, {NASC_BATCH, k}};
    uint32_t x = nasc_prim_add_input(m, "x", &ty);
    assert_int_not_equal(x, UINT32_MAX);
    assert_int_equal(nasc_prim_add_output(m, x), NASC_OK);
    return m;
}

/* -log softmax(z)[y] in double. */
static double xent(const float *z, int k, int y) {
    double mx = z[0];
    for (int j = 1; j < k; j++)
        if (z[j] > mx) mx = z[j];
    double s = 0;
    for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
    return log(s) - ((double)z[y] - mx);
}

/* nasc_net_loss on a net whose output 0 is a net input, in both modes and
 * with and without the input's gradient: the loss of the input itself, and
 * (with the input's gradient) softmax - onehot over the batch size as that
 * gradient. */
static void test_loss_output_is_input(void **state) {
    (void)state;
    enum { N = 3, K = 5 };
    const float x[N * K] = {0.5f, -1.0f, 2.0f, 0.25f, 0.0f,  1.5f, 1.0f, -0.5f,
                            3.0f, -2.0f, 0.0f, 0.1f, 0.2f,  0.3f, 0.4f};
    const int32_t y[N] = {2, 3, 0};
    double want = 0;
    int want_ok = 0;
    for (int i = 0; i < N; i++) {
        want += xent(x + i * K, K, y[i]) / N;
        int arg = 0;
        for (int j = 1; j < K; j++)
            if (x[i * K + j] > x[i * K + arg]) arg = j;
        want_ok += arg == y[i];
    }
    for (int variant = 0; variant < 3; variant++) {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *m = passthrough_module(&ctx, K);
        nasc_param_store *ps = nasc_params_create(&ctx);
        assert_non_null(ps);
        nasc_net_options o = nasc_net_options_default();
        o.batch = N;
        o.mode = variant == 2 ? NASC_MODE_INFER : NASC_MODE_TRAIN;
        o.input_grad = variant == 1;
        nasc_net *net = NULL;
        nasc_status st = nasc_net_compile(&ctx, m, ps, &o, &net);
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        float loss = NAN;
        int ok = -1;
        st = nasc_net_loss(net, y, &loss, &ok);
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_true(fabs(loss - want) <= 1e-5 * fabs(want));
        assert_int_equal(ok, want_ok);
        if (variant == 1) {
            assert_int_equal(nasc_net_backward(net), NASC_OK);
            float g[N * K];
            assert_int_equal(nasc_net_read_grad(net, "x", g), NASC_OK);
            for (int i = 0; i < N; i++) {
                double mx = x[i * K], s = 0;
                for (int j = 1; j < K; j++)
                    if (x[i * K + j] > mx) mx = x[i * K + j];
                for (int j = 0; j < K; j++) s += exp((double)x[i * K + j] - mx);
                for (int j = 0; j < K; j++) {
                    double p = exp((double)x[i * K + j] - mx) / s;
                    assert_true(fabs(g[i * K + j] - (p - (j == y[i])) / N) <= 1e-6);
                }
            }
        }
        nasc_net_destroy(net);
        nasc_params_destroy(ps);
        nasc_module_destroy(m);
    }
}

/* A failed oneDNN call becomes a diagnostic that names the call (not its
 * arguments), oneDNN's status, our file:line and what the call was for, and
 * suggests ONEDNN_VERBOSE=check; once the net is compiled, a failure no
 * longer marks the net as broken. */
static void test_onednn_failure_message(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = passthrough_module(&ctx, 4);
    nasc_param_store *ps = nasc_params_create(&ctx);
    nasc_net_options o = nasc_net_options_default();
    o.batch = 2;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &net), NASC_OK);
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {2, 3};
    int line = __LINE__ + 1;
    nasc_status st = NB_TRY_AS(net, "a test", dnnl_memory_desc_init_by_tag(&md, DNNL_MAX_NDIMS + 1, d, dnnl_f32, dnnl_ab));
    assert_int_equal(st, NASC_EINTERNAL);
    assert_int_equal(ctx.diag.status, NASC_EINTERNAL);
    char where[64];
    snprintf(where, sizeof where, "test_net.c:%d", line);
    printf("%s\n", ctx.diag.msg);
    assert_non_null(strstr(ctx.diag.msg, "oneDNN call dnnl_memory_desc_init_by_tag (a test) failed: invalid_arguments"));
    assert_null(strstr(ctx.diag.msg, "&md"));
    assert_non_null(strstr(ctx.diag.msg, where));
    assert_non_null(strstr(ctx.diag.msg, "ONEDNN_VERBOSE=check"));
    assert_int_equal(net->status, NASC_OK);
    /* the context-only form */
    nasc_ctx c2;
    nasc_ctx_init(&c2);
    assert_int_equal(NB_TRY_CTX(&c2, dnnl_stream_wait(NULL)), NASC_EINTERNAL);
    assert_non_null(strstr(c2.diag.msg, "oneDNN call dnnl_stream_wait failed: invalid_arguments"));
    assert_non_null(strstr(c2.diag.msg, "ONEDNN_VERBOSE=check"));
    /* the net still runs */
    float x[8] = {0};
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_output_is_input),
        cmocka_unit_test(test_onednn_failure_message),
    };
    return cmocka_run_group_tests_name("backend/net", tests, NULL, NULL);
}
