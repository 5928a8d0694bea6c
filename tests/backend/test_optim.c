/* Optimizers and the learning-rate schedule: three steps of each rule on a
 * 3-element tensor against values worked out by hand (in double precision,
 * following torch.optim.SGD / torch.optim.Adam), the state kept in the
 * store, and exact resumption from a serialised store. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nasc_backend.h"

static const float p0[3] = {1.0f, -0.5f, 2.0f};
static const float grads[3][3] = {{0.5f, -1.0f, 0.25f}, {0.1f, 0.2f, -0.3f}, {-0.4f, 0.0f, 1.0f}};
static const float LR = 0.1f;

/* Three steps of optimizer o on a tensor named name of shape dims; checks
 * the parameter after each step against want. */
static void run3(const nasc_optim_options *o, int rank, const int64_t *dims, const float want[3][3]) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    nasc_tensor *p = nasc_params_get(s, "w", rank, dims);
    assert_non_null(p);
    memcpy(p->data, p0, sizeof p0);
    nasc_optimizer *opt = nasc_optim_create(&ctx, o, s);
    assert_non_null(opt);
    for (int t = 0; t < 3; t++) {
        nasc_param_grad g = {p, grads[t]};
        assert_int_equal(nasc_optim_step(opt, &g, 1, LR), NASC_OK);
        for (int i = 0; i < 3; i++)
            if (fabsf(p->data[i] - want[t][i]) > 2e-6f)
                fail_msg("step %d element %d: %.9g, want %.9g", t + 1, i, p->data[i], want[t][i]);
    }
    assert_string_equal(nasc_params_meta(s, "opt/step"), "3");
    nasc_optim_destroy(opt);
    nasc_params_destroy(s);
}

static const int64_t vec[] = {3}, mat[] = {1, 3};

/* p -= lr * g: 1 - 0.1*0.5 = 0.95, then 0.95 - 0.01 = 0.94, 0.94 + 0.04 = 0.98. */
static void test_sgd_plain(void **state) {
    (void)state;
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_SGD);
    o.momentum = 0;
    o.nesterov = false;
    o.weight_decay = 0;
    static const float want[3][3] = {{0.95f, -0.4f, 1.975f}, {0.94f, -0.42f, 2.005f}, {0.98f, -0.42f, 1.905f}};
    run3(&o, 1, vec, want);
    /* No momentum, no state tensors. */
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    nasc_tensor *p = nasc_params_get(s, "w", 1, vec);
    nasc_optimizer *opt = nasc_optim_create(&ctx, &o, s);
    nasc_param_grad g = {p, grads[0]};
    assert_int_equal(nasc_optim_step(opt, &g, 1, LR), NASC_OK);
    assert_int_equal(s->n, 1);
    nasc_optim_destroy(opt);
    nasc_params_destroy(s);
}

/* buf = 0.9 buf + g; p -= lr buf. Element 0: buf 0.5, p 0.95; buf 0.55,
 * p 0.895; buf 0.095, p 0.8855. */
static void test_sgd_momentum(void **state) {
    (void)state;
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_SGD);
    o.nesterov = false;
    o.weight_decay = 0;
    static const float want[3][3] = {
        {0.95f, -0.4f, 1.975f}, {0.895f, -0.33f, 1.9825f}, {0.8855f, -0.267f, 1.88925f}};
    run3(&o, 1, vec, want);
}

/* Nesterov: p -= lr (g + 0.9 buf). Element 0: buf 0.5, d 0.95, p 0.905;
 * buf 0.55, d 0.595, p 0.8455; buf 0.095, d -0.3145, p 0.87695. */
static void test_sgd_nesterov(void **state) {
    (void)state;
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_SGD);
    o.weight_decay = 0;
    static const float want[3][3] = {
        {0.905f, -0.31f, 1.9525f}, {0.8455f, -0.267f, 1.98925f}, {0.87695f, -0.2103f, 1.805325f}};
    run3(&o, 1, vec, want);
}

/* Weight decay 0.01 adds 0.01 p to g for a matrix (element 0, step 1:
 * d = 0.5 + 0.01 = 0.51, buf 0.51, p = 1 - 0.1 (0.51 + 0.459) = 0.9031),
 * and leaves a vector alone. */
static void test_sgd_weight_decay(void **state) {
    (void)state;
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_SGD);
    o.weight_decay = 0.01f;
    static const float want[3][3] = {{0.9031f, -0.30905f, 1.9487f},
                                     {0.84107411f, -0.265057805f, 1.98012747f},
                                     {0.869465558f, -0.207239365f, 1.78940378f}};
    run3(&o, 2, mat, want);
    static const float plain[3][3] = {
        {0.905f, -0.31f, 1.9525f}, {0.8455f, -0.267f, 1.98925f}, {0.87695f, -0.2103f, 1.805325f}};
    run3(&o, 1, vec, plain);
}

/* Adam with bias correction: the first step moves every element by lr
 * against the sign of its gradient (m/(1-b1) = g, sqrt(v/(1-b2)) = |g|). */
static void test_adam(void **state) {
    (void)state;
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_ADAM);
    static const float want[3][3] = {{0.900000002f, -0.400000001f, 1.9f},
                                     {0.819695906f, -0.348897394f, 1.91429448f},
                                     {0.810325966f, -0.309394931f, 1.85880086f}};
    run3(&o, 1, vec, want);
    /* L2 weight decay 0.1 on a matrix goes through the moments. */
    o.weight_decay = 0.1f;
    static const float wd[3][3] = {{0.900000002f, -0.400000001f, 1.9f},
                                   {0.813648345f, -0.344974884f, 1.85259055f},
                                   {0.782983779f, -0.30038696f, 1.77975506f}};
    run3(&o, 2, mat, wd);
    run3(&o, 1, vec, want);
}

static void test_defaults_and_options(void **state) {
    (void)state;
    nasc_optim_options s = nasc_optim_options_default(NASC_OPTIM_SGD);
    assert_int_equal(s.kind, NASC_OPTIM_SGD);
    assert_true(s.momentum == 0.9f && s.nesterov && s.weight_decay == 3e-4f);
    nasc_optim_options a = nasc_optim_options_default(NASC_OPTIM_ADAM);
    assert_int_equal(a.kind, NASC_OPTIM_ADAM);
    assert_true(a.beta1 == 0.9f && a.beta2 == 0.999f && a.eps == 1e-8f && a.weight_decay == 0.0f);

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *st = nasc_params_create(&ctx);
    nasc_optim_options bad = s;
    bad.momentum = 1.0f;
    assert_null(nasc_optim_create(&ctx, &bad, st));
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    bad = s;
    bad.momentum = 0;
    assert_null(nasc_optim_create(&ctx, &bad, st)); /* Nesterov without momentum */
    bad = s;
    bad.weight_decay = -1;
    assert_null(nasc_optim_create(&ctx, &bad, st));
    bad = a;
    bad.eps = 0;
    assert_null(nasc_optim_create(&ctx, &bad, st));
    bad = a;
    bad.beta2 = 1.0f;
    assert_null(nasc_optim_create(&ctx, &bad, st));
    assert_null(nasc_optim_create(&ctx, &a, NULL));
    nasc_optim_destroy(NULL);
    nasc_params_destroy(st);
}

static void test_state_in_store(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    int64_t d[] = {2, 3};
    nasc_tensor *p = nasc_params_get(s, "conv.w", 2, d);
    nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_ADAM);
    nasc_optimizer *opt = nasc_optim_create(&ctx, &o, s);
    float g6[6] = {1, 2, 3, 4, 5, 6};
    nasc_param_grad g = {p, g6};
    assert_int_equal(nasc_optim_step(opt, &g, 1, 0.01f), NASC_OK);
    nasc_tensor *m = nasc_params_find(s, "opt/m/conv.w"), *v = nasc_params_find(s, "opt/v/conv.w");
    assert_non_null(m);
    assert_non_null(v);
    assert_int_equal(m->rank, 2);
    assert_true(m->dims[0] == 2 && m->dims[1] == 3);
    assert_true(fabsf(m->data[5] - 0.6f) < 1e-6f);   /* (1 - 0.9) * 6 */
    assert_true(fabsf(v->data[5] - 0.036f) < 1e-6f); /* (1 - 0.999) * 36 */
    assert_string_equal(nasc_params_meta(s, "opt/step"), "1");

    /* A state tensor of the wrong shape is an error that changes nothing. */
    int64_t d2[] = {3};
    float g3[3] = {1, 1, 1};
    nasc_tensor *q = nasc_params_get(s, "q", 1, d2);
    int64_t wrong[] = {4};
    assert_non_null(nasc_params_get(s, "opt/v/q", 1, wrong));
    nasc_param_grad gg[2] = {{p, g6}, {q, g3}};
    float before = p->data[0];
    assert_int_equal(nasc_optim_step(opt, gg, 2, 0.01f), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "opt/v/q"));
    assert_true(p->data[0] == before);
    assert_string_equal(nasc_params_meta(s, "opt/step"), "1");

    /* A step count that is not a number. */
    assert_int_equal(nasc_params_set_meta(s, "opt/step", "seven"), NASC_OK);
    assert_int_equal(nasc_optim_step(opt, &g, 1, 0.01f), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "opt/step"));
    nasc_optim_destroy(opt);
    nasc_params_destroy(s);
}

/* Out of memory in a step leaves parameters, state and step count alone. */
static void test_step_alloc(void **state) {
    (void)state;
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_param_store *s = nasc_params_create(&ctx);
        int64_t d[] = {3};
        /* A name past 256 bytes makes the optimizer's name buffer grow. */
        char long_name[300];
        memset(long_name, 'b', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = 0;
        nasc_tensor *a = nasc_params_get(s, "a", 1, d), *b = nasc_params_get(s, long_name, 1, d);
        assert_non_null(b);
        memcpy(a->data, p0, sizeof p0);
        memcpy(b->data, p0, sizeof p0);
        nasc_optim_options o = nasc_optim_options_default(NASC_OPTIM_ADAM);
        nasc_optimizer *opt = nasc_optim_create(&ctx, &o, s);
        assert_non_null(opt);
        ta.fail_at = ta.count + n;
        nasc_param_grad g[2] = {{a, grads[0]}, {b, grads[0]}};
        nasc_status st = nasc_optim_step(opt, g, 2, LR);
        bool failed = ta.failed;
        if (failed) {
            assert_int_equal(st, NASC_ENOMEM);
            assert_memory_equal(a->data, p0, sizeof p0);
            assert_memory_equal(b->data, p0, sizeof p0);
            assert_null(nasc_params_meta(s, "opt/step"));
        } else {
            assert_int_equal(st, NASC_OK);
            assert_true(fabsf(a->data[0] - 0.9f) < 1e-6f);
        }
        nasc_optim_destroy(opt);
        nasc_params_destroy(s);
        assert_int_equal(ta.live, 0);
        if (!failed) break;
    }
    assert_true(n > 4);
}

/* A gradient that depends on the parameters and the step, so any state
 * lost in a resume shows up. */
static void grad_of(const nasc_tensor *p, int step, float *g) {
    for (int64_t i = 0; i < p->numel; i++)
        g[i] = 2.0f * (p->data[i] - 0.1f * (float)i) + 0.05f * (float)((step * 7 + i * 3) % 5 - 2);
}

static void take_steps(nasc_optimizer *opt, nasc_param_store *s, int from, int to, int64_t total) {
    const char *names[] = {"conv.w", "bn.g"};
    float g[2][12];
    for (int t = from; t < to; t++) {
        nasc_param_grad pg[2];
        for (int k = 0; k < 2; k++) {
            pg[k].param = nasc_params_find(s, names[k]);
            assert_non_null(pg[k].param);
            grad_of(pg[k].param, t, g[k]);
            pg[k].grad = g[k];
        }
        assert_int_equal(nasc_optim_step(opt, pg, 2, nasc_lr_cosine(0.1f, t, total, 2)), NASC_OK);
    }
}

static nasc_param_store *resume_store(nasc_ctx *ctx) {
    nasc_param_store *s = nasc_params_create(ctx);
    int64_t dw[] = {3, 4}, db[] = {4};
    nasc_tensor *w = nasc_params_get(s, "conv.w", 2, dw), *b = nasc_params_get(s, "bn.g", 1, db);
    for (int i = 0; i < 12; i++) w->data[i] = 0.3f * (float)(i % 5) - 0.5f;
    for (int i = 0; i < 4; i++) b->data[i] = 1.0f;
    return s;
}

static void test_resume(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_optim_options o = nasc_optim_options_default(kind ? NASC_OPTIM_ADAM : NASC_OPTIM_SGD);
        o.weight_decay = 0.01f;

        /* Uninterrupted: 8 steps. */
        nasc_param_store *a = resume_store(&ctx);
        nasc_optimizer *oa = nasc_optim_create(&ctx, &o, a);
        take_steps(oa, a, 0, 8, 8);

        /* Interrupted after 3: serialise, throw everything away, reload. */
        nasc_param_store *b = resume_store(&ctx);
        nasc_optimizer *ob = nasc_optim_create(&ctx, &o, b);
        take_steps(ob, b, 0, 3, 8);
        nasc_buf buf;
        nasc_buf_init(&buf, &ctx);
        assert_int_equal(nasc_params_serialize(b, &buf), NASC_OK);
        nasc_optim_destroy(ob);
        nasc_params_destroy(b);
        nasc_param_store *c = NULL;
        assert_int_equal(nasc_params_deserialize(&ctx, buf.data, buf.len, "resume.ckpt", &c), NASC_OK);
        nasc_buf_free(&buf);
        assert_string_equal(nasc_params_meta(c, "opt/step"), "3");
        nasc_optimizer *oc = nasc_optim_create(&ctx, &o, c);
        take_steps(oc, c, 3, 8, 8);

        assert_string_equal(nasc_params_meta(c, "opt/step"), "8");
        for (uint32_t i = 0; i < a->n; i++) {
            nasc_tensor *x = a->tensors[i], *y = nasc_params_find(c, x->name);
            assert_non_null(y);
            assert_memory_equal(x->data, y->data, (size_t)x->numel * sizeof(float));
        }
        assert_int_equal(a->n, c->n);
        assert_int_equal(a->n, kind ? 6 : 4); /* params plus m (and v) */
        nasc_optim_destroy(oa);
        nasc_optim_destroy(oc);
        nasc_params_destroy(a);
        nasc_params_destroy(c);
    }
}

static void test_lr_cosine(void **state) {
    (void)state;
    const float lr = 0.1f;
    /* warm-up of 10 steps, 110 in all */
    assert_true(nasc_lr_cosine(lr, 0, 110, 10) == 0.0f);
    assert_true(fabsf(nasc_lr_cosine(lr, 5, 110, 10) - 0.05f) < 1e-7f);
    assert_true(fabsf(nasc_lr_cosine(lr, 10, 110, 10) - 0.1f) < 1e-7f);         /* warm-up end */
    assert_true(fabsf(nasc_lr_cosine(lr, 35, 110, 10) - 0.0853553391f) < 1e-7f); /* a quarter of the way */
    assert_true(fabsf(nasc_lr_cosine(lr, 60, 110, 10) - 0.05f) < 1e-7f);         /* middle */
    assert_true(fabsf(nasc_lr_cosine(lr, 110, 110, 10)) < 1e-9f);                /* end */
    assert_true(fabsf(nasc_lr_cosine(lr, 200, 110, 10)) < 1e-9f);                /* past the end */
    /* without warm-up */
    assert_true(fabsf(nasc_lr_cosine(lr, 0, 100, 0) - 0.1f) < 1e-7f);
    assert_true(fabsf(nasc_lr_cosine(lr, 50, 100, 0) - 0.05f) < 1e-7f);
    assert_true(fabsf(nasc_lr_cosine(lr, 100, 100, 0)) < 1e-9f);
    /* never increasing after the warm-up */
    float prev = nasc_lr_cosine(lr, 10, 110, 10);
    for (int64_t s = 11; s <= 110; s++) {
        float v = nasc_lr_cosine(lr, s, 110, 10);
        assert_true(v <= prev && v >= 0.0f);
        prev = v;
    }
    /* degenerate schedules do not divide by zero */
    assert_true(fabsf(nasc_lr_cosine(lr, 5, 5, 5) - 0.1f) < 1e-7f);
    assert_true(isfinite(nasc_lr_cosine(lr, 0, 0, 0)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_defaults_and_options),
        cmocka_unit_test(test_state_in_store),
        cmocka_unit_test(test_step_alloc),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_lr_cosine),
    };
    return cmocka_run_group_tests_name("backend/optim", tests, NULL, NULL);
}
