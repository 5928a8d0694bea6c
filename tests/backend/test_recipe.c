/* The final-training recipe, element by element: label smoothing against
 * the loss and gradient computed by hand, the auxiliary head's loss reaching
 * the layers below it, drop-path masks (probability, rescaling, whole paths
 * of one image, the per-image kernel's gradient), gradient clipping, cosine
 * with warm restarts, and the weight average across nasc_train calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "nasc_frontend.h"
#include "testutil.h"

/* A small DARTS-V2 net (two stages, one cell each, 5 classes) as arch. */
static nasc_module *small_darts(nasc_ctx *ctx, const char *stages) {
    const nasc_override ov[] = {{"input", "1x8x8"}, {"channels", "4"}, {"cells_per_stage", "1"},
                                {"stages", stages}, {"classes", "5"}};
    char *path = nasc_test_path("models/darts-v2.yaml");
    assert_non_null(path);
    nasc_module *arch = NULL;
    nasc_status st = nasc_model_load(ctx, path, ov, sizeof ov / sizeof ov[0], &arch);
    free(path);
    if (st) nasc_diag_print(&ctx->diag, stderr);
    assert_int_equal(st, NASC_OK);
    return arch;
}

static nasc_module *lower_with(nasc_ctx *ctx, const nasc_module *arch, bool drop, bool aux) {
    nasc_lower_options lo = nasc_lower_options_default();
    lo.drop_path = drop;
    lo.aux_head = aux;
    nasc_module *m = NULL;
    nasc_status st = nasc_lower_with(arch, &lo, &m);
    if (st) nasc_diag_print(&ctx->diag, stderr);
    assert_int_equal(st, NASC_OK);
    return m;
}

static nasc_net *compile(nasc_ctx *ctx, const nasc_module *m, nasc_param_store *ps, int batch, nasc_net_mode mode) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = batch;
    o.mode = mode;
    nasc_net *net = NULL;
    nasc_status st = nasc_net_compile(ctx, m, ps, &o, &net);
    if (st) nasc_diag_print(&ctx->diag, stderr);
    assert_int_equal(st, NASC_OK);
    return net;
}

static void fill(float *x, int64_t n, uint64_t seed) {
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = nasc_rng_normal(&r);
}

/* ------------------------------------------------------------------ */

/* nasc_net_loss_at with smoothing s and weight w on a net whose logits
 * are its input: loss = mean_i -sum_j t_ij log p_ij with
 * t = (1 - s) onehot + s / K, and d loss / d z = w (p - t) / N. */
static void test_label_smoothing(void **state) {
    (void)state;
    enum { N = 3, K = 5 };
    const float z[N * K] = {0.5f, -1.0f, 2.0f, 0.25f, 0.0f, 1.5f, 1.0f, -0.5f,
                            3.0f, -2.0f, 0.0f, 0.1f,  0.2f, 0.3f,  0.4f};
    const int32_t y[N] = {2, 3, 0};
    const float s = 0.1f, w = 0.4f;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "logits");
    nasc_type ty = {NASC_F32, 2, {NASC_BATCH, K}};
    uint32_t x = nasc_prim_add_input(m, "x", &ty);
    assert_int_equal(nasc_prim_add_output(m, x), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    nasc_net_options o = nasc_net_options_default();
    o.batch = N;
    o.input_grad = true;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &net), NASC_OK);
    assert_int_equal(nasc_net_set_input(net, 0, z), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    float loss = NAN;
    assert_int_equal(nasc_net_loss_at(net, 0, y, w, s, &loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    float g[N * K];
    assert_int_equal(nasc_net_read_grad(net, "x", g), NASC_OK);
    double want = 0;
    for (int i = 0; i < N; i++) {
        double se = 0;
        for (int j = 0; j < K; j++) se += exp((double)z[i * K + j]);
        for (int j = 0; j < K; j++) {
            double p = exp((double)z[i * K + j]) / se, t = (j == y[i] ? 1.0 - s : 0.0) + s / K;
            want -= t * log(p) / N;
            assert_true(fabs(g[i * K + j] - w * (p - t) / N) <= 1e-6);
        }
    }
    assert_true(fabs(loss - want) <= 1e-5 * want);
    /* smoothing changes the loss: the unsmoothed one is smaller here (the labels' logits are large) */
    float plain;
    assert_int_equal(nasc_net_loss_at(net, 0, y, 1, 0, &plain, NULL), NASC_OK);
    assert_true(plain < loss);
    /* out of range */
    assert_int_equal(nasc_net_loss_at(net, 0, y, 1, 1.0f, &plain, NULL), NASC_EINPUT);
    assert_int_equal(nasc_net_loss_at(net, 1, y, 1, 0, &plain, NULL), NASC_EINPUT);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* ------------------------------------------------------------------ */

static const float *grad_of(nasc_net *net, const char *name, int64_t *numel) {
    const nasc_param_grad *g;
    uint32_t n = nasc_net_grads(net, &g);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(g[i].param->name, name) == 0) {
            *numel = g[i].param->numel;
            return g[i].grad;
        }
    fail_msg("no gradient for %s", name);
    return NULL;
}

/* The L2 norm of a parameter's gradient. */
static double gnorm(nasc_net *net, const char *name) {
    int64_t n = 0;
    const float *g = grad_of(net, name, &n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

/* The auxiliary head: a second output (N, classes) after the last reduction
 * cell, params "aux.*"; its loss alone reaches the stem and the cells below
 * it but not the main head, and the main loss does not reach it. A net
 * without a reduction cell cannot have one. */
static void test_aux_head(void **state) {
    (void)state;
    enum { N = 4, K = 5 };
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *arch = small_darts(&ctx, "2");
    nasc_module *m = lower_with(&ctx, arch, false, true);
    assert_int_equal(m->n_outputs, 2);
    const nasc_value *aux = &m->values[m->outputs[1]];
    assert_string_equal(nasc_str(m, aux->name), "aux_logits");
    assert_int_equal(aux->type.rank, 2);
    assert_int_equal(aux->type.dims[1], K);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(ps, m, 5), NASC_OK);
    assert_non_null(nasc_params_find(ps, "aux.fc.w"));
    nasc_net *net = compile(&ctx, m, ps, N, NASC_MODE_TRAIN);
    static float x[N * 64];
    fill(x, N * 64, 9);
    const int32_t y[N] = {0, 1, 2, 3};
    float l0, l1;
    for (int which = 0; which < 2; which++) {
        assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        /* which 0: only the auxiliary loss; 1: only the main loss */
        assert_int_equal(nasc_net_loss_at(net, 0, y, which == 1 ? 1.0f : 0.0f, 0, &l0, NULL), NASC_OK);
        assert_int_equal(nasc_net_loss_at(net, 1, y, which == 0 ? 0.4f : 0.0f, 0, &l1, NULL), NASC_OK);
        assert_true(l0 > 0 && l1 > 0);
        assert_int_equal(nasc_net_backward(net), NASC_OK);
        double stem = gnorm(net, "stem.conv.w"), cell0 = gnorm(net, "cell0.h1.conv.w");
        double head = gnorm(net, "head.fc.w"), auxw = gnorm(net, "aux.fc.w"), auxc = gnorm(net, "aux.conv1.w");
        if (which == 0) {
            assert_true(stem > 0 && cell0 > 0 && auxw > 0 && auxc > 0);
            assert_true(head == 0);
        } else {
            assert_true(stem > 0 && cell0 > 0 && head > 0);
            assert_true(auxw == 0 && auxc == 0);
        }
    }
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    nasc_module_destroy(arch);

    arch = small_darts(&ctx, "1");
    nasc_lower_options lo = nasc_lower_options_default();
    lo.aux_head = true;
    m = NULL;
    assert_int_equal(nasc_lower_with(arch, &lo, &m), NASC_EINPUT);
    assert_null(m);
    assert_non_null(strstr(ctx.diag.msg, "auxiliary head"));
    nasc_module_destroy(arch);
}

/* ------------------------------------------------------------------ */

/* Masks: zero with probability p, else exactly 1/(1-p); a function of
 * (seed, step) only; all ones at p = 0. */
static void test_drop_path_masks(void **state) {
    (void)state;
    enum { N = 200000 };
    static float a[N], b[N];
    const float p = 0.3f;
    nasc_drop_path_masks(a, N, p, 7, 11);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        if (a[i] == 0.0f)
            zeros++;
        else
            assert_true(a[i] == 1.0f / (1.0f - p));
    }
    /* binomial: std sqrt(N p (1-p)) ~ 205; allow 5 of them */
    assert_true(fabs(zeros - N * (double)p) < 5 * sqrt(N * (double)p * (1 - p)));
    nasc_drop_path_masks(b, N, p, 7, 11);
    assert_memory_equal(a, b, sizeof a);
    nasc_drop_path_masks(b, N, p, 7, 12);
    assert_memory_not_equal(a, b, sizeof a);
    nasc_drop_path_masks(b, N, 0, 7, 11);
    for (int i = 0; i < N; i++) assert_true(b[i] == 1.0f);
}

/* The lowering: one mask input per cell op that is not the identity, each
 * (N, 1, 1, 1). With every mask 1 the net computes what the net without
 * masks does; a path's mask 0 for image 0 changes image 0's logits and no
 * other image's. */
static void test_drop_path_net(void **state) {
    (void)state;
    enum { N = 3, K = 5 };
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *arch = small_darts(&ctx, "2");
    nasc_module *plain = lower_with(&ctx, arch, false, false), *m = lower_with(&ctx, arch, true, false);
    uint32_t masks = 0, ops = 0;
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind != NASC_VAL_INPUT || v == 0) continue;
        const nasc_type *t = &m->values[v].type;
        assert_true(t->rank == 4 && t->dims[0] == NASC_BATCH && t->dims[1] == 1 && t->dims[2] == 1 && t->dims[3] == 1);
        assert_non_null(strstr(nasc_str(m, m->values[v].name), ".drop"));
        masks++;
    }
    /* DARTS-V2's cells: 8 ops each, less the identities: skip_connect at stride 1 (a skip on a
     * reduction cell's input has stride 2, a factorized reduction, dropped like any op) */
    for (uint32_t c = 0; c < arch->n_cells; c++) {
        const nasc_cell *cell = &arch->cells[c];
        for (uint32_t j = 0; j < cell->n_nodes; j++) {
            const nasc_node *nd = &arch->nodes[cell->first_node + j];
            if (nd->op == NASC_OP_ADD || nd->op == NASC_OP_CONCAT) continue;
            bool on_inputs = true;
            for (uint32_t k = 0; k < nd->n_args; k++)
                if (arch->args[nd->first_arg + k] >= cell->n_inputs) on_inputs = false;
            bool identity = nd->op == NASC_OP_IDENTITY && !(cell->kind == NASC_CELL_REDUCTION && on_inputs);
            /* the net has stages * cells_per_stage normal cells and stages - 1 reduction cells */
            const nasc_skeleton *sk = &arch->skel;
            uint32_t copies = c == (uint32_t)sk->normal_cell ? (uint32_t)(sk->stages * sk->cells_per_stage)
                              : c == (uint32_t)sk->reduction_cell ? (uint32_t)(sk->stages - 1)
                                                                  : 0;
            ops += identity ? 0 : copies;
        }
    }
    assert_true(masks > 0);
    assert_int_equal(masks, ops);

    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(ps, m, 3), NASC_OK);
    nasc_net *a = compile(&ctx, plain, ps, N, NASC_MODE_TRAIN), *b = compile(&ctx, m, ps, N, NASC_MODE_TRAIN);
    static float x[N * 64], la[N * K], lb[N * K], ones[N], mask[N];
    fill(x, N * 64, 4);
    for (int i = 0; i < N; i++) ones[i] = 1;
    assert_int_equal(nasc_net_set_input(a, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(a), NASC_OK);
    assert_int_equal(nasc_net_read(a, "logits", la), NASC_OK);
    assert_int_equal(nasc_net_set_input(b, 0, x), NASC_OK);
    for (uint32_t k = 0; k < masks; k++) assert_int_equal(nasc_net_set_input(b, 1 + k, ones), NASC_OK);
    assert_int_equal(nasc_net_forward(b), NASC_OK);
    assert_int_equal(nasc_net_read(b, "logits", lb), NASC_OK);
    for (int i = 0; i < N * K; i++) assert_true(fabsf(la[i] - lb[i]) <= 1e-5f * (1 + fabsf(la[i])));
    /* in training mode batch statistics couple the images, so compare in inference */
    nasc_net_destroy(a);
    nasc_net_destroy(b);
    a = compile(&ctx, m, ps, N, NASC_MODE_INFER);
    assert_int_equal(nasc_net_set_input(a, 0, x), NASC_OK);
    for (uint32_t k = 0; k < masks; k++) assert_int_equal(nasc_net_set_input(a, 1 + k, ones), NASC_OK);
    assert_int_equal(nasc_net_forward(a), NASC_OK);
    assert_int_equal(nasc_net_read(a, "logits", la), NASC_OK);
    mask[0] = 0, mask[1] = mask[2] = 1;
    assert_int_equal(nasc_net_set_input(a, 1, mask), NASC_OK);
    assert_int_equal(nasc_net_forward(a), NASC_OK);
    assert_int_equal(nasc_net_read(a, "logits", lb), NASC_OK);
    assert_memory_not_equal(la, lb, K * sizeof *la);
    assert_memory_equal(la + K, lb + K, (N - 1) * K * sizeof *la);
    nasc_net_destroy(a);
    nasc_params_destroy(ps);
    nasc_module_destroy(plain);
    nasc_module_destroy(m);
    nasc_module_destroy(arch);
}

/* The per-image kernel of mul(x, mask) in blocked and plain layouts: since
 * a convolution is linear, conv(x) * m[n] = conv(x * m[n]), so the output
 * and the weight gradient must equal those of a net that scales its input
 * instead. */
static void test_drop_path_kernel(void **state) {
    (void)state;
    enum { N = 3, C = 16, H = 5, W = 5 };
    for (int layout = 0; layout < 2; layout++) {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *ms[2];
        for (int v = 0; v < 2; v++) {
            nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "scaled");
            nasc_type xt = {NASC_F32, 4, {NASC_BATCH, C, H, W}}, wt = {NASC_F32, 4, {C, C, 3, 3}},
                      mt = {NASC_F32, 4, {NASC_BATCH, 1, 1, 1}};
            uint32_t x = nasc_prim_add_input(m, "x", &xt);
            uint32_t cargs[2] = {x, nasc_prim_add_param(m, "w", &wt)};
            nasc_prim_attrs a = nasc_prim_attrs_default();
            a.kh = a.kw = 3;
            a.pt = a.pl = a.pb = a.pr = 1;
            uint32_t conv = nasc_prim_add_op(m, NASC_PRIM_CONV, cargs, 2, &a, "y", NULL, NASC_NOLOC);
            if (v == 1) {
                uint32_t margs[2] = {conv, nasc_prim_add_input(m, "y.drop", &mt)};
                conv = nasc_prim_add_op(m, NASC_PRIM_MUL, margs, 2, NULL, "y.dropped", NULL, NASC_NOLOC);
            }
            assert_int_not_equal(conv, UINT32_MAX);
            assert_int_equal(nasc_prim_add_output(m, conv), NASC_OK);
            ms[v] = m;
        }
        nasc_param_store *ps = nasc_params_create(&ctx);
        assert_int_equal(nasc_params_init(ps, ms[1], 2), NASC_OK);
        static float x[N * C * H * W], xs[N * C * H * W], g[N * C * H * W], y0[N * C * H * W],
            y1[N * C * H * W], w0[C * C * 9], w1[C * C * 9];
        const float mask[N] = {1.25f, 0.0f, 1.25f};
        fill(x, N * C * H * W, 1);
        fill(g, N * C * H * W, 2);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < C * H * W; i++) xs[n * C * H * W + i] = x[n * C * H * W + i] * mask[n];
        float *ys[2] = {y0, y1}, *ws[2] = {w0, w1};
        for (int v = 0; v < 2; v++) {
            nasc_net_options o = nasc_net_options_default();
            o.batch = N;
            o.layout = layout ? NASC_NET_LAYOUT_NCHW : NASC_NET_LAYOUT_AUTO;
            nasc_net *net = NULL;
            assert_int_equal(nasc_net_compile(&ctx, ms[v], ps, &o, &net), NASC_OK);
            assert_int_equal(nasc_net_set_input(net, 0, v ? x : xs), NASC_OK);
            if (v) assert_int_equal(nasc_net_set_input(net, 1, mask), NASC_OK);
            assert_int_equal(nasc_net_forward(net), NASC_OK);
            assert_int_equal(nasc_net_read(net, v ? "y.dropped" : "y", ys[v]), NASC_OK);
            assert_int_equal(nasc_net_set_output_grad(net, 0, g), NASC_OK);
            assert_int_equal(nasc_net_backward(net), NASC_OK);
            assert_int_equal(nasc_net_read_grad(net, "w", ws[v]), NASC_OK);
            nasc_net_destroy(net);
        }
        for (int i = 0; i < N * C * H * W; i++) assert_true(fabsf(y0[i] - y1[i]) <= 1e-4f * (1 + fabsf(y0[i])));
        for (int i = C * H * W; i < 2 * C * H * W; i++) assert_true(y1[i] == 0.0f); /* image 1 dropped */
        for (int i = 0; i < C * C * 9; i++) assert_true(fabsf(w0[i] - w1[i]) <= 1e-4f * (1 + fabsf(w0[i])));
        nasc_params_destroy(ps);
        nasc_module_destroy(ms[0]);
        nasc_module_destroy(ms[1]);
    }
}

/* ------------------------------------------------------------------ */

/* The global norm, PyTorch's clip factor, and a scaled step equal to a
 * step on scaled gradients (weight decay added after the scaling). */
static void test_grad_clip(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s1 = nasc_params_create(&ctx), *s2 = nasc_params_create(&ctx);
    int64_t d1[2] = {2, 2}, d2[1] = {1};
    float ga[4] = {3, 0, 0, 4}, gb[1] = {12}, gas[4], gbs[1];
    /* norm sqrt(9 + 16 + 144) = 13 */
    nasc_tensor *p1[2] = {nasc_params_get(s1, "a", 2, d1), nasc_params_get(s1, "b", 1, d2)};
    nasc_tensor *p2[2] = {nasc_params_get(s2, "a", 2, d1), nasc_params_get(s2, "b", 1, d2)};
    for (int i = 0; i < 4; i++) p1[0]->data[i] = p2[0]->data[i] = 0.5f * (float)i;
    p1[1]->data[0] = p2[1]->data[0] = -1;
    nasc_param_grad g1[2] = {{p1[0], ga}, {p1[1], gb}};
    assert_true(fabs(nasc_grad_norm(g1, 2) - 13.0) < 1e-9);
    float c = nasc_clip_scale(13.0, 5.0f);
    assert_true(fabsf(c - 5.0f / (13.0f + 1e-6f)) < 1e-7f);
    assert_true(nasc_clip_scale(13.0, 20.0f) == 1.0f);
    assert_true(nasc_clip_scale(13.0, 0.0f) == 1.0f);
    for (int i = 0; i < 4; i++) gas[i] = ga[i] * c;
    gbs[0] = gb[0] * c;
    nasc_param_grad g2[2] = {{p2[0], gas}, {p2[1], gbs}};
    nasc_optim_options oo = nasc_optim_options_default(NASC_OPTIM_SGD);
    oo.weight_decay = 0.1f;
    nasc_optimizer *o1 = nasc_optim_create(&ctx, &oo, s1), *o2 = nasc_optim_create(&ctx, &oo, s2);
    for (int step = 0; step < 3; step++) {
        assert_int_equal(nasc_optim_step_scaled(o1, g1, 2, 0.1f, c), NASC_OK);
        assert_int_equal(nasc_optim_step(o2, g2, 2, 0.1f), NASC_OK);
    }
    for (int i = 0; i < 4; i++) assert_true(fabsf(p1[0]->data[i] - p2[0]->data[i]) <= 1e-6f);
    assert_true(fabsf(p1[1]->data[0] - p2[1]->data[0]) <= 1e-6f);
    nasc_optim_destroy(o1);
    nasc_optim_destroy(o2);
    nasc_params_destroy(s1);
    nasc_params_destroy(s2);
}

/* SGDR: cycles of period, period * mult, ... steps after the warm-up, each
 * a cosine from lr to 0; period 0 is the single cosine. */
static void test_warm_restarts(void **state) {
    (void)state;
    const float lr = 0.1f;
#define NEAR(a, b) assert_true(fabsf((a) - (b)) < 1e-6f)
    NEAR(nasc_lr_restarts(lr, 0, 0, 1000, 10, 2), lr);
    NEAR(nasc_lr_restarts(lr, 5, 0, 1000, 10, 2), lr / 2);    /* middle of cycle 0 (10 steps) */
    NEAR(nasc_lr_restarts(lr, 10, 0, 1000, 10, 2), lr);       /* restart */
    NEAR(nasc_lr_restarts(lr, 20, 0, 1000, 10, 2), lr / 2);   /* middle of cycle 1 (20 steps) */
    NEAR(nasc_lr_restarts(lr, 30, 0, 1000, 10, 2), lr);       /* cycle 2 starts */
    NEAR(nasc_lr_restarts(lr, 70, 0, 1000, 10, 2), lr);       /* cycle 3 starts (10 + 20 + 40) */
    NEAR(nasc_lr_restarts(lr, 25, 0, 1000, 10, 1), lr / 2);   /* mult 1: every 10 steps */
    NEAR(nasc_lr_restarts(lr, 2, 4, 1000, 10, 1), lr / 2);    /* warm-up */
    NEAR(nasc_lr_restarts(lr, 9, 4, 1000, 10, 1), lr / 2);    /* 5 steps into cycle 0 */
    for (int64_t t = 0; t < 110; t += 7) NEAR(nasc_lr_restarts(lr, t, 10, 110, 0, 2), nasc_lr_cosine(lr, t, 110, 10));
#undef NEAR
}

/* ------------------------------------------------------------------ */

/* A data set of n random images and labels. */
static nasc_dataset random_data(int64_t n, int classes, uint64_t seed) {
    nasc_dataset d = {n, 1, 8, 8, classes, malloc((size_t)n * 64), malloc((size_t)n)};
    assert_non_null(d.images);
    assert_non_null(d.labels);
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    for (int64_t i = 0; i < n * 64; i++) d.images[i] = (uint8_t)nasc_rng_below(&r, 256);
    for (int64_t i = 0; i < n; i++) d.labels[i] = (uint8_t)nasc_rng_below(&r, (uint64_t)classes);
    return d;
}

/* The weight average with a decay near 1 stays at the starting weights:
 * after the last epoch the store's weights are the average (the initial
 * values, to within the decay) and "ema/<name>" the trained ones;
 * training on from that store swaps them back first. */
static void test_weight_average(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *arch = small_darts(&ctx, "2");
    nasc_module *m = lower_with(&ctx, arch, true, true), *eval = lower_with(&ctx, arch, false, false);
    nasc_dataset d = random_data(96, 5, 3);
    nasc_param_store *ps = nasc_params_create(&ctx), *init = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(init, m, 1), NASC_OK);
    nasc_train_options o = nasc_train_options_default();
    o.epochs = 1;
    o.batch = 16;
    o.val_size = 32;
    o.threads = 1;
    o.ema_decay = 0.999999f;
    o.aux_weight = 0.4f;
    o.drop_path = 0.3f;
    o.label_smoothing = 0.1f;
    o.grad_clip = 1.0f;
    o.eval_prim = eval;
    nasc_train_result res;
    nasc_status st = nasc_train(&ctx, m, ps, &d, &o, &res);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_string_equal(nasc_params_meta(ps, "train/weights"), "ema");
    const char *names[] = {"stem.conv.w", "cell1.h1.conv.w", "head.fc.w", "aux.fc.w"};
    for (int k = 0; k < 4; k++) {
        nasc_tensor *w = nasc_params_find(ps, names[k]), *i0 = nasc_params_find(init, names[k]);
        char en[64];
        snprintf(en, sizeof en, "ema/%s", names[k]);
        nasc_tensor *trained = nasc_params_find(ps, en);
        assert_non_null(w);
        assert_non_null(trained);
        double moved = 0, kept = 0;
        for (int64_t i = 0; i < w->numel; i++) {
            kept = fmax(kept, fabs(w->data[i] - i0->data[i]));
            moved = fmax(moved, fabs(trained->data[i] - i0->data[i]));
        }
        assert_true(kept < 1e-4 * (1 + moved));
        assert_true(moved > 1e-4);
    }
    /* a second epoch starts from the trained weights */
    nasc_tensor *trained = nasc_params_find(ps, "ema/stem.conv.w");
    float *copy = malloc((size_t)trained->numel * sizeof *copy);
    memcpy(copy, trained->data, (size_t)trained->numel * sizeof *copy);
    o.epochs = 2;
    o.ema_decay = 0;
    o.max_steps = 1; /* stops inside epoch 2 */
    assert_int_equal(nasc_train(&ctx, m, ps, &d, &o, &res), NASC_OK);
    assert_string_equal(nasc_params_meta(ps, "train/weights"), "trained");
    nasc_tensor *w = nasc_params_find(ps, "stem.conv.w");
    double diff = 0, from_init = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        diff = fmax(diff, fabs(w->data[i] - copy[i]));
        from_init = fmax(from_init, fabs(copy[i] - nasc_params_find(init, "stem.conv.w")->data[i]));
    }
    assert_true(diff < from_init); /* one step from the trained weights, not from the initial ones */
    free(copy);
    free(d.images);
    free(d.labels);
    nasc_params_destroy(ps);
    nasc_params_destroy(init);
    nasc_module_destroy(m);
    nasc_module_destroy(eval);
    nasc_module_destroy(arch);
}

/* Options that cannot work are errors before any step. */
static void test_bad_options(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *arch = small_darts(&ctx, "2");
    nasc_module *m = lower_with(&ctx, arch, false, false);
    nasc_dataset d = random_data(64, 5, 4);
    nasc_train_options o = nasc_train_options_default();
    o.epochs = 1;
    o.batch = 16;
    o.val_size = 16;
    o.threads = 1;
    nasc_train_result res;
    nasc_param_store *ps = nasc_params_create(&ctx);
    o.drop_path = 0.2f; /* the net has no masks */
    assert_int_equal(nasc_train(&ctx, m, ps, &d, &o, &res), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "drop-path"));
    o.drop_path = 0;
    o.aux_weight = 0.4f; /* nor an auxiliary head */
    assert_int_equal(nasc_train(&ctx, m, ps, &d, &o, &res), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "auxiliary"));
    o.aux_weight = 0;
    o.label_smoothing = 1.0f;
    assert_int_equal(nasc_train(&ctx, m, ps, &d, &o, &res), NASC_EINPUT);
    o.label_smoothing = 0;
    o.restart_epochs = 1;
    o.restart_mult = 0.5f;
    assert_int_equal(nasc_train(&ctx, m, ps, &d, &o, &res), NASC_EINPUT);
    free(d.images);
    free(d.labels);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
    nasc_module_destroy(arch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_smoothing), cmocka_unit_test(test_aux_head),
        cmocka_unit_test(test_drop_path_masks), cmocka_unit_test(test_drop_path_net),
        cmocka_unit_test(test_drop_path_kernel), cmocka_unit_test(test_grad_clip),
        cmocka_unit_test(test_warm_restarts),   cmocka_unit_test(test_weight_average),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
