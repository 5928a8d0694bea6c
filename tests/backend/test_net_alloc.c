/* The backend under a failing allocator. For every n, making the n-th
 * allocation after the module and its parameters exist fail gives an error
 * status (NASC_ENOMEM) from compiling or from the training step, never a
 * crash, and once everything is destroyed nothing is left allocated (the
 * counting allocator and ASan both check). Past the last allocation the same
 * calls succeed and give the same loss as an undisturbed run. A training
 * step on a compiled net allocates nothing.
 *
 * The net has what allocates while compiling: reorders of the input into
 * the blocked layout for two of its consumers, batch norm (running
 * statistics created in the store), a depthwise 5x5 convolution (nasc's own
 * backward-weights kernel and its scratch), max pooling (a workspace), add,
 * mul, concat, gradient sums where values fan out, parameter gradients, and
 * the inference net fusing batch norm and relu into the convolution. The
 * same holds for nasc_train (batches, optimizer state, evaluation) on a
 * tiny data set.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "testutil.h"

static const char *net_text =
    "prim {\n"
    "  input %x : f32[N,8,6,6]\n"
    "  param %w1 : f32[8,8,3,3]\n"
    "  param %g : f32[8]\n"
    "  param %b : f32[8]\n"
    "  param %dw : f32[8,1,5,5]\n"
    "  param %fc.w : f32[4,16]\n"
    "  param %fc.b : f32[4]\n"
    "  %xr = relu %x : f32[N,8,6,6]\n"
    "  %c = conv %xr, %w1 {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,8,6,6]\n"
    "  %bn = batch_norm %c, %g, %b {eps=9.99999975e-06} : f32[N,8,6,6]\n"
    "  %r = relu %bn : f32[N,8,6,6]\n"
    "  %d = conv %r, %dw {kernel=5x5, stride=1x1, pad=2,2,2,2, dilation=1x1, groups=8} : f32[N,8,6,6]\n"
    "  %mp = max_pool %x {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,8,6,6]\n"
    "  %a = add %r, %d, %mp : f32[N,8,6,6]\n"
    "  %m = mul %a, %r : f32[N,8,6,6]\n"
    "  %cat = concat %m, %a {axis=1} : f32[N,16,6,6]\n"
    "  %gap = global_avg_pool %cat : f32[N,16,1,1]\n"
    "  %fl = flatten %gap : f32[N,16]\n"
    "  %fc = inner_product %fl, %fc.w, %fc.b : f32[N,4]\n"
    "  output %fc\n"
    "}\n";

enum { BATCH = 2, PIXELS = 8 * 6 * 6, CLASSES = 4 };

static void inputs(float *x, int32_t *y) {
    for (int i = 0; i < BATCH * PIXELS; i++) x[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    for (int i = 0; i < BATCH; i++) y[i] = (i * 3 + 1) % CLASSES;
}

typedef struct outcome {
    nasc_status st;
    float loss;      /* the training step's */
    float logit0;    /* the inference net's first logit */
    long step_allocs; /* allocations made by a second training step */
} outcome;

/* Module and store with allocation counting, then with allocation fail_at
 * (counted from there; 0 none) failing: compile a training net, run a step
 * (forward, loss, backward, SGD), then compile the fused inference net and
 * run it. Everything is destroyed before returning. */
static outcome run(long fail_at, nasc_test_alloc *ta) {
    nasc_ctx ctx;
    nasc_test_ctx(&ctx, ta, 0);
    nasc_module *m = NULL;
    assert_int_equal(nasc_text_parse(&ctx, net_text, strlen(net_text), "alloc.nir", &m), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    assert_int_equal(nasc_params_init(ps, m, 5), NASC_OK);
    float x[BATCH * PIXELS], logits[BATCH * CLASSES];
    int32_t y[BATCH];
    inputs(x, y);
    if (fail_at > 0) ta->fail_at = ta->count + fail_at;

    outcome o = {NASC_OK, NAN, NAN, -1};
    nasc_net_options no = nasc_net_options_default();
    no.batch = BATCH;
    nasc_net *net = NULL, *inf = NULL;
    nasc_optimizer *opt = NULL;
    int correct;
    o.st = nasc_net_compile(&ctx, m, ps, &no, &net);
    if (!o.st) {
        nasc_optim_options oo = nasc_optim_options_default(NASC_OPTIM_SGD);
        opt = nasc_optim_create(&ctx, &oo, ps);
        if (!opt) o.st = ctx.diag.status ? ctx.diag.status : NASC_EINTERNAL;
    }
    for (int step = 0; step < 2 && !o.st; step++) {
        long before = ta->count;
        o.st = nasc_net_set_input(net, 0, x);
        if (!o.st) o.st = nasc_net_forward(net);
        if (!o.st) o.st = nasc_net_loss(net, y, step ? &(float){0} : &o.loss, &correct);
        if (!o.st) o.st = nasc_net_backward(net);
        if (!o.st && step) o.step_allocs = ta->count - before;
        const nasc_param_grad *g;
        uint32_t n = nasc_net_grads(net, &g);
        if (!o.st) o.st = nasc_optim_step(opt, g, n, 0.01f);
    }
    if (!o.st) {
        no.mode = NASC_MODE_INFER;
        no.fuse = true;
        o.st = nasc_net_compile(&ctx, m, ps, &no, &inf);
    }
    if (!o.st) o.st = nasc_net_set_input(inf, 0, x);
    if (!o.st) o.st = nasc_net_forward(inf);
    if (!o.st) o.st = nasc_net_read(inf, "fc", logits);
    if (!o.st) o.logit0 = logits[0];
    if (o.st && ctx.diag.status != o.st) {
        nasc_diag_print(&ctx.diag, stderr);
        fail_msg("status %d but the diagnostic says %d", (int)o.st, (int)ctx.diag.status);
    }
    nasc_net_destroy(inf);
    nasc_optim_destroy(opt);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    return o;
}

static void test_alloc_compile_and_step(void **state) {
    (void)state;
    nasc_test_alloc ta;
    outcome want = run(0, &ta);
    if (want.st) fail_msg("the undisturbed run failed with %d", (int)want.st);
    assert_int_equal(ta.live, 0);
    assert_true(isfinite(want.loss) && isfinite(want.logit0));
    long n;
    for (n = 1;; n++) {
        outcome o = run(n, &ta);
        if (ta.live != 0) fail_msg("allocation %ld failed: %ld blocks left allocated", n, ta.live);
        if (!ta.failed) {
            assert_int_equal(o.st, NASC_OK);
            assert_true(o.loss == want.loss);
            assert_true(o.logit0 == want.logit0);
            break;
        }
        if (o.st != NASC_ENOMEM) fail_msg("allocation %ld failed but the status is %d", n, (int)o.st);
    }
    printf("  %ld allocations, each made to fail in turn\n", n - 1);
    assert_true(n > 30);
}

/* Compiling allocates; a training step on the compiled net does not. */
static void test_step_allocates_nothing(void **state) {
    (void)state;
    nasc_test_alloc ta;
    outcome o = run(0, &ta);
    assert_int_equal(o.st, NASC_OK);
    assert_int_equal(o.step_allocs, 0);
}

/* nasc_train (one epoch with a validation split, so nasc_evaluate too) on a
 * tiny data set in memory, under the same failing allocator. */
static nasc_status train_once(long fail_at, nasc_test_alloc *ta, float *loss) {
    enum { IMAGES = 24 };
    static uint8_t images[IMAGES * PIXELS], labels[IMAGES];
    for (int i = 0; i < IMAGES * PIXELS; i++) images[i] = (uint8_t)((i * 97) % 251);
    for (int i = 0; i < IMAGES; i++) labels[i] = (uint8_t)(i % CLASSES);
    nasc_dataset d = {IMAGES, 8, 6, 6, CLASSES, images, labels};
    nasc_ctx ctx;
    nasc_test_ctx(&ctx, ta, 0);
    nasc_module *m = NULL;
    assert_int_equal(nasc_text_parse(&ctx, net_text, strlen(net_text), "alloc.nir", &m), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    if (fail_at > 0) ta->fail_at = ta->count + fail_at;
    nasc_train_options o = nasc_train_options_default();
    o.epochs = 1;
    o.batch = 4;
    o.val_size = 8;
    o.warmup_epochs = 0;
    nasc_train_result r;
    nasc_status st = nasc_train(&ctx, m, ps, &d, &o, &r);
    *loss = st ? NAN : r.val_loss;
    if (st && ctx.diag.status != st) {
        nasc_diag_print(&ctx.diag, stderr);
        fail_msg("status %d but the diagnostic says %d", (int)st, (int)ctx.diag.status);
    }
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    return st;
}

static void test_alloc_train(void **state) {
    (void)state;
    nasc_test_alloc ta;
    float want, got;
    assert_int_equal(train_once(0, &ta, &want), NASC_OK);
    assert_true(isfinite(want));
    long n;
    for (n = 1;; n++) {
        nasc_status st = train_once(n, &ta, &got);
        if (ta.live != 0) fail_msg("allocation %ld failed: %ld blocks left allocated", n, ta.live);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            assert_true(got == want);
            break;
        }
        if (st != NASC_ENOMEM) fail_msg("allocation %ld failed but the status is %d", n, (int)st);
    }
    printf("  %ld allocations, each made to fail in turn\n", n - 1);
    assert_true(n > 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_compile_and_step),
        cmocka_unit_test(test_alloc_train),
        cmocka_unit_test(test_step_allocates_nothing),
    };
    return cmocka_run_group_tests_name("backend/net_alloc", tests, NULL, NULL);
}
