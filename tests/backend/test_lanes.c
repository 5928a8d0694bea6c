/* Inference in lanes (NASC_NET_PARALLEL_LANES): the batch split between
 * one-thread nets that run at the same time gives the outputs and losses
 * of one net on all threads, pass after pass and after a store write; an
 * uneven split (batch 5 on 2 threads: 3 + 2) included. The models are the
 * zoo's: a cell net (DARTS-V2: separable and dilated convolutions, pools,
 * concats, sums), the baseline CNN (dense 3x3 convolutions, which oneDNN
 * runs as Winograd in inference on AVX-512, a primitive with a
 * scratchpad) and a character LSTM ((N, T) tokens in, (N, T, V) logits
 * and the state out).
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

/* The automatic policy: lanes at a batch whose primitives are large enough
 * to share out, one thread at batch 1; never for training. Asking for
 * lanes where they cannot be is an error that says why. The profile names
 * the lane it shows. */
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

    nasc_net_options o = nasc_net_options_default();
    o.batch = 4;
    o.parallel = NASC_NET_PARALLEL_LANES;
    assert_int_equal(nasc_net_compile(&m.ctx, m.prim, m.ps, &o, &net), NASC_EINPUT);
    assert_null(net);
    assert_non_null(strstr(m.ctx.diag.msg, "not for training nets"));
    o.mode = NASC_MODE_INFER;
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
    FILE *f = tmpfile();
    assert_non_null(f);
    nasc_net_profile_print(net, f);
    char text[4096] = {0};
    rewind(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(got > 0);
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

static nasc_status small_run(long fail_at, nasc_test_alloc *ta, float out[5 * 3]) {
    nasc_ctx ctx;
    nasc_test_ctx(&ctx, ta, 0);
    nasc_module *m = NULL;
    assert_int_equal(nasc_text_parse(&ctx, small_net, strlen(small_net), "lanes.nir", &m), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    assert_int_equal(nasc_params_init(ps, m, 9), NASC_OK);
    float x[5 * 8 * 36];
    for (int i = 0; i < 5 * 8 * 36; i++) x[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    if (fail_at > 0) ta->fail_at = ta->count + fail_at;
    nasc_net_options o = nasc_net_options_default();
    o.batch = 5;
    o.mode = NASC_MODE_INFER;
    o.fuse = true;
    o.parallel = NASC_NET_PARALLEL_LANES;
    nasc_net *net = NULL;
    nasc_status st = nasc_net_compile(&ctx, m, ps, &o, &net);
    if (!st) {
        nasc_net_stats s;
        nasc_net_get_stats(net, &s);
        assert_int_equal(s.n_lanes, 2);
    }
    if (!st) st = nasc_net_set_input(net, 0, x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_read(net, "fc", out);
    if (st && ctx.diag.status != st) {
        nasc_diag_print(&ctx.diag, stderr);
        fail_msg("status %d but the diagnostic says %d", (int)st, (int)ctx.diag.status);
    }
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    return st;
}

static void test_lanes_alloc(void **state) {
    (void)state;
    nasc_test_alloc ta;
    float want[15], got[15];
    assert_int_equal(small_run(0, &ta, want), NASC_OK);
    assert_int_equal(ta.live, 0);
    long n;
    for (n = 1;; n++) {
        nasc_status st = small_run(n, &ta, got);
        if (ta.live != 0) fail_msg("allocation %ld failed: %ld blocks left allocated", n, ta.live);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            assert_memory_equal(got, want, sizeof want);
            break;
        }
        if (st != NASC_ENOMEM) fail_msg("allocation %ld failed but the status is %d", n, (int)st);
    }
    printf("  %ld allocations, each made to fail in turn\n", n - 1);
    assert_true(n > 20);
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
        cmocka_unit_test(test_lanes_policy),
        cmocka_unit_test(test_lanes_alloc),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("backend/lanes", tests, NULL, NULL));
}
