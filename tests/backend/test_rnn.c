/* test_rnn.c - recurrent nets: lowered, unrolled and trained as language
 * models.
 *
 *  - whole nets: models/lstm.yaml, nasrl-ptb.yaml and enas-rnn.yaml made tiny,
 *    unrolled over a few steps and compiled; logits, the per-position loss
 *    and the state after the last step against the naive reference
 *    (tests/backend/ref.c); the gradients of parameter elements and of the
 *    initial state against central finite differences of the reference's
 *    loss, which here is the cross-entropy plus a random linear function
 *    of the final state (so both the loss and a state output seed the
 *    backward pass);
 *  - an LSTM written in YAML against two steps of the LSTM equations
 *    computed here by hand, with hand-picked weights;
 *  - a language model learns: 8 short epochs on a periodic text bring the
 *    validation loss near zero, which needs the state carried from step to
 *    step (test_lm_learns says why); bad inputs of the trainer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "nasc_frontend.h"
#include "ref.h"
#include "testutil.h"

#define FWD_TOL 1e-4
#define BWD_TOL 1e-2
#define FD_EPS 1e-4

static void die(nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fail_msg("%s: %s", what, buf);
}

/* A model file made small by overrides, unrolled over steps. */
static nasc_module *load_lm(nasc_ctx *ctx, const char *file, const nasc_override *ov, size_t n_ov, int steps) {
    char *path = nasc_test_path(file);
    assert_non_null(path);
    nasc_module *arch = NULL;
    if (nasc_model_load(ctx, path, ov, n_ov, &arch)) die(ctx, "nasc_model_load");
    free(path);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = steps;
    nasc_module *prim = NULL;
    if (nasc_lower_with(arch, &lo, &prim)) die(ctx, "nasc_lower_with");
    nasc_module_destroy(arch);
    return prim;
}

/* L = mean cross-entropy of the logits (N*T rows) + sum_i R_i . state_i */
typedef struct lm_loss {
    const nasc_module *m;
    int batch;
    const int32_t *labels;
    double *r[2]; /* per state output */
} lm_loss;

static double loss_of(const lm_loss *l, double *const *vals) {
    const nasc_module *m = l->m;
    const nasc_type *y = &m->values[m->outputs[0]].type;
    int rows = l->batch * (int)y->dims[1], k = (int)y->dims[2];
    double total = ref_softmax_xent(vals[m->outputs[0]], rows, k, l->labels);
    for (uint32_t i = 1; i < m->n_outputs; i++) {
        int64_t n = ref_numel(m, m->outputs[i], l->batch);
        for (int64_t j = 0; j < n; j++) total += l->r[i - 1][j] * vals[m->outputs[i]][j];
    }
    return total;
}

/* Forward, loss and every gradient of a tiny language model against the
 * reference and finite differences. */
static bool check_lm(const char *label, nasc_module *m, int batch, uint64_t seed) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    if (nasc_params_init(ps, m, seed)) die(&ctx, "nasc_params_init");
    nasc_rng rng;
    nasc_rng_seed(&rng, seed);
    /* biases random too, so their gradients are not special */
    for (uint32_t i = 0; i < ps->n; i++)
        if (ps->tensors[i]->rank == 1)
            for (int64_t k = 0; k < ps->tensors[i]->numel; k++) ps->tensors[i]->data[k] = 0.3f * nasc_rng_normal(&rng);

    /* inputs: token numbers, then random initial states (and dropout masks) */
    uint32_t ins[8], n_in = 0;
    for (uint32_t v = 0; v < m->n_values && n_in < 8; v++)
        if (m->values[v].kind == NASC_VAL_INPUT) ins[n_in++] = v;
    const nasc_type *y = &m->values[m->outputs[0]].type;
    int steps = (int)y->dims[1], vocab = (int)y->dims[2], rows = batch * steps;
    float *in_f[8];
    double *in_d[8];
    for (uint32_t i = 0; i < n_in; i++) {
        int64_t n = ref_numel(m, ins[i], batch);
        in_f[i] = malloc((size_t)n * sizeof(float));
        in_d[i] = malloc((size_t)n * sizeof(double));
        assert_true(in_f[i] && in_d[i]);
        for (int64_t k = 0; k < n; k++) {
            in_f[i][k] = i == 0 ? (float)nasc_rng_below(&rng, (uint64_t)vocab) : 0.5f * nasc_rng_normal(&rng);
            in_d[i][k] = in_f[i][k];
        }
    }
    int32_t *labels = malloc((size_t)rows * sizeof *labels);
    assert_non_null(labels);
    for (int i = 0; i < rows; i++) labels[i] = (int32_t)nasc_rng_below(&rng, (uint64_t)vocab);
    lm_loss L = {m, batch, labels, {NULL, NULL}};
    float *r_f[2] = {NULL, NULL};
    for (uint32_t i = 1; i < m->n_outputs; i++) {
        int64_t n = ref_numel(m, m->outputs[i], batch);
        L.r[i - 1] = malloc((size_t)n * sizeof(double));
        r_f[i - 1] = malloc((size_t)n * sizeof(float));
        assert_true(L.r[i - 1] && r_f[i - 1]);
        for (int64_t k = 0; k < n; k++) L.r[i - 1][k] = r_f[i - 1][k] = nasc_rng_normal(&rng);
    }

    double **vals = calloc(m->n_values, sizeof *vals);
    assert_non_null(vals);
    assert_int_equal(ref_forward(m, ps, batch, (const double *const *)in_d, vals), 0);
    double l_ref = ref_softmax_xent(vals[m->outputs[0]], rows, vocab, labels);

    nasc_net_options o = nasc_net_options_default();
    o.batch = batch;
    o.input_grad = true;
    nasc_net *net = NULL;
    if (nasc_net_compile(&ctx, m, ps, &o, &net)) die(&ctx, "nasc_net_compile");
    for (uint32_t i = 0; i < n_in; i++) assert_int_equal(nasc_net_set_input(net, i, in_f[i]), NASC_OK);
    if (nasc_net_forward(net)) die(&ctx, "forward");
    bool ok = true;
    char line[4096];
    int off = snprintf(line, sizeof line, "[%s] seed %llu batch %d steps %d: %u ops |", label,
                       (unsigned long long)seed, batch, steps, m->n_prims);
    double worst = 0;
    for (uint32_t i = 0; i < m->n_outputs; i++) {
        int64_t n = ref_numel(m, m->outputs[i], batch);
        float *got = malloc((size_t)n * sizeof *got);
        assert_non_null(got);
        if (nasc_net_read(net, nasc_str(m, m->values[m->outputs[i]].name), got)) die(&ctx, "read");
        worst = fmax(worst, ref_rel_err_f(got, vals[m->outputs[i]], n, NULL));
        free(got);
    }
    float loss;
    int correct;
    if (nasc_net_loss(net, labels, &loss, &correct)) die(&ctx, "loss");
    off += snprintf(line + off, sizeof line - (size_t)off, " fwd %.1e loss %.6f (ref %.6f)", worst, (double)loss, l_ref);
    if (!(worst <= FWD_TOL) || !(fabs(loss - l_ref) <= 1e-4 * fmax(1, fabs(l_ref)))) ok = false;
    assert_int_equal(ref_correct(vals[m->outputs[0]], rows, vocab, labels), correct);
    for (uint32_t i = 1; i < m->n_outputs; i++) assert_int_equal(nasc_net_set_output_grad(net, i, r_f[i - 1]), NASC_OK);
    if (nasc_net_backward(net)) die(&ctx, "backward");

    /* finite differences: 12 elements of every parameter and initial state */
    double bworst = 0;
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        if (val->kind == NASC_VAL_OP || v == ins[0]) continue;
        int64_t n = ref_numel(m, v, batch);
        float *g = malloc((size_t)n * sizeof *g);
        assert_non_null(g);
        if (nasc_net_read_grad(net, nasc_str(m, val->name), g)) die(&ctx, "read_grad");
        double fd[12], gg[12];
        uint32_t from = ref_first_use(m, v);
        for (int s = 0; s < 12; s++) {
            int64_t k = (int64_t)nasc_rng_below(&rng, (uint64_t)n);
            double save = vals[v][k];
            vals[v][k] = save + FD_EPS;
            assert_int_equal(ref_run_from(m, NULL, REF_TRAIN, batch, vals, from), 0);
            double lp = loss_of(&L, vals);
            vals[v][k] = save - FD_EPS;
            assert_int_equal(ref_run_from(m, NULL, REF_TRAIN, batch, vals, from), 0);
            double lm = loss_of(&L, vals);
            vals[v][k] = save;
            assert_int_equal(ref_run_from(m, NULL, REF_TRAIN, batch, vals, from), 0);
            fd[s] = (lp - lm) / (2 * FD_EPS);
            gg[s] = g[k];
        }
        double e = ref_rel_err_d(gg, fd, 12, NULL);
        if (!(e <= BWD_TOL)) {
            ok = false;
            off += snprintf(line + off, sizeof line - (size_t)off, " %s %.1e", nasc_str(m, val->name), e);
        }
        bworst = fmax(bworst, e);
        free(g);
    }
    /* the token numbers take no gradient */
    int64_t nx = ref_numel(m, ins[0], batch);
    float *gx = malloc((size_t)nx * sizeof *gx);
    assert_non_null(gx);
    if (nasc_net_read_grad(net, nasc_str(m, m->values[ins[0]].name), gx)) die(&ctx, "read_grad x");
    for (int64_t k = 0; k < nx; k++)
        if (gx[k] != 0) ok = false;
    free(gx);
    if ((size_t)off < sizeof line)
        snprintf(line + off, sizeof line - (size_t)off, " bwd worst %.1e%s", bworst, ok ? "" : "  <-- FAIL");
    printf("%s\n", line);
    fflush(stdout);

    nasc_net_destroy(net);
    ref_free(m, vals);
    free(vals);
    for (uint32_t i = 0; i < n_in; i++) {
        free(in_f[i]);
        free(in_d[i]);
    }
    for (int i = 0; i < 2; i++) {
        free(L.r[i]);
        free(r_f[i]);
    }
    free(labels);
    nasc_params_destroy(ps);
    return ok;
}

static void test_lstm_grads(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "3"}, {"channels", "4"}, {"classes", "6"}};
    int failed = 0;
    for (int steps = 1; steps <= 4; steps += 3) {
        nasc_module *m = load_lm(&ctx, "models/lstm.yaml", ov, 3, steps);
        failed += !check_lm("lstm", m, 3, 100 + (uint64_t)steps);
        nasc_module_destroy(m);
    }
    assert_int_equal(failed, 0);
}

/* The LSTM lowered with dropout masks: three more inputs, each multiplied
 * in where the linears and the decoder read; gradients (the masks' too,
 * here random numbers) against finite differences. */
static void test_dropout_grads(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char *path = nasc_test_path("models/lstm.yaml");
    const nasc_override ov[] = {{"input", "3"}, {"channels", "4"}, {"classes", "6"}};
    nasc_module *arch = NULL, *m = NULL;
    if (nasc_model_load(&ctx, path, ov, 3, &arch)) die(&ctx, "load");
    free(path);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = 3;
    lo.rnn_dropout = true;
    if (nasc_lower_with(arch, &lo, &m)) die(&ctx, "lower");
    const char *masks[] = {"drop.x", "drop.s", "drop.o"};
    for (int i = 0; i < 3; i++) {
        int64_t v = nasc_prim_lookup(m, masks[i], strlen(masks[i]));
        assert_true(v >= 0 && m->values[v].kind == NASC_VAL_INPUT);
    }
    /* x and h masked once per step, whatever the number of linears */
    uint32_t muls = 0;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const char *n = nasc_str(m, m->values[m->prims[p].result].name);
        muls += strstr(n, "dropped") != NULL;
    }
    assert_int_equal(muls, 3 * 3); /* x, h and h_t per step */
    bool ok = check_lm("lstm+dropout", m, 2, 13);
    nasc_module_destroy(m);
    /* not for CNN nets */
    nasc_module_destroy(arch);
    path = nasc_test_path("models/baseline-cnn.yaml");
    if (nasc_model_load(&ctx, path, NULL, 0, &arch)) die(&ctx, "load");
    free(path);
    assert_int_equal(nasc_lower_with(arch, &lo, &m), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "recurrent dropout is for recurrent nets"));
    nasc_module_destroy(arch);
    assert_true(ok);
}

static void test_enas_cell_grads(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "3"}, {"channels", "3"}, {"classes", "5"}};
    nasc_module *m = load_lm(&ctx, "models/enas-rnn.yaml", ov, 3, 3);
    bool ok = check_lm("enas-rnn", m, 2, 7);
    nasc_module_destroy(m);
    assert_true(ok);
}

static void test_nasrl_cell_grads(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "2"}, {"channels", "3"}, {"classes", "4"}};
    nasc_module *m = load_lm(&ctx, "models/nasrl-ptb.yaml", ov, 3, 3);
    bool ok = check_lm("nasrl-ptb", m, 2, 9);
    nasc_module_destroy(m);
    assert_true(ok);
}

/* ---------------------------------------------------------------- */
/* An LSTM by hand                                                   */
/* ---------------------------------------------------------------- */

static double sigm(double x) { return 1 / (1 + exp(-x)); }

/* models/lstm.yaml with one hidden unit, inputs of size 1 and 2 classes,
 * every weight set by hand: two steps of i, f, g, o, c, h written out. */
static void test_lstm_by_hand(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "1"}, {"channels", "1"}, {"classes", "2"}};
    nasc_module *m = load_lm(&ctx, "models/lstm.yaml", ov, 3, 2);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    if (nasc_params_init(ps, m, 1)) die(&ctx, "nasc_params_init");
    /* gate g: weights (w_x, w_h) over [x, h], bias b */
    static const struct {
        const char *gate;
        float wx, wh, b;
    } W[] = {{"i_in", 0.5f, -1.0f, 0.1f}, {"f_in", -0.3f, 0.8f, 0.2f}, {"g_in", 1.2f, 0.4f, -0.1f},
             {"o_in", 0.7f, 0.3f, 0.05f}};
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "cell.%s.w", W[k].gate);
        nasc_tensor *w = nasc_params_find(ps, name);
        snprintf(name, sizeof name, "cell.%s.b", W[k].gate);
        nasc_tensor *b = nasc_params_find(ps, name);
        assert_true(w && b && w->numel == 2 && b->numel == 1);
        w->data[0] = W[k].wx, w->data[1] = W[k].wh, b->data[0] = W[k].b;
    }
    nasc_tensor *emb = nasc_params_find(ps, "embed.w"), *dw = nasc_params_find(ps, "decoder.w"),
                *db = nasc_params_find(ps, "decoder.b");
    assert_true(emb && dw && db && emb->numel == 2 && dw->numel == 2 && db->numel == 2);
    emb->data[0] = 0.9f, emb->data[1] = -0.6f; /* token 0 -> 0.9, token 1 -> -0.6 */
    dw->data[0] = 2.0f, dw->data[1] = -1.0f;   /* logits = h * (2, -1) + (0.5, 0) */
    db->data[0] = 0.5f, db->data[1] = 0.0f;

    /* the same by hand: tokens 1 then 0, h0 = 0.25, c0 = -0.5 */
    const float tokens[2] = {1, 0}, h0 = 0.25f, c0 = -0.5f;
    double h = h0, c = c0, want_logits[4];
    for (int t = 0; t < 2; t++) {
        double x = emb->data[(int)tokens[t]];
        double gi = sigm(W[0].wx * x + W[0].wh * h + W[0].b);
        double gf = sigm(W[1].wx * x + W[1].wh * h + W[1].b);
        double gg = tanh(W[2].wx * x + W[2].wh * h + W[2].b);
        double go = sigm(W[3].wx * x + W[3].wh * h + W[3].b);
        c = gf * c + gi * gg;
        h = go * tanh(c);
        want_logits[2 * t] = 2.0 * h + 0.5;
        want_logits[2 * t + 1] = -1.0 * h;
    }
    nasc_net_options o = nasc_net_options_default();
    o.batch = 1;
    o.mode = NASC_MODE_INFER;
    nasc_net *net = NULL;
    if (nasc_net_compile(&ctx, m, ps, &o, &net)) die(&ctx, "compile");
    assert_int_equal(nasc_net_set_input(net, 0, tokens), NASC_OK);
    assert_int_equal(nasc_net_set_input(net, 1, &h0), NASC_OK);
    assert_int_equal(nasc_net_set_input(net, 2, &c0), NASC_OK);
    if (nasc_net_forward(net)) die(&ctx, "forward");
    float logits[4], hT, cT;
    const char *names[3];
    for (int i = 0; i < 3; i++) names[i] = nasc_str(m, m->values[m->outputs[i]].name);
    assert_int_equal(nasc_net_read(net, names[0], logits), NASC_OK);
    assert_int_equal(nasc_net_read(net, names[1], &hT), NASC_OK);
    assert_int_equal(nasc_net_read(net, names[2], &cT), NASC_OK);
    printf("[lstm by hand] h %.7f (want %.7f) c %.7f (want %.7f) logits %.6f %.6f %.6f %.6f\n", (double)hT, h,
           (double)cT, c, (double)logits[0], (double)logits[1], (double)logits[2], (double)logits[3]);
    assert_true(fabs(hT - h) < 1e-6);
    assert_true(fabs(cT - c) < 1e-6);
    for (int k = 0; k < 4; k++) assert_true(fabs(logits[k] - want_logits[k]) < 1e-5);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* ---------------------------------------------------------------- */
/* Learning                                                          */
/* ---------------------------------------------------------------- */

/* "abcXabcYabcZ..." repeated: the letter after each "abc" follows from
 * the one four characters before it. A model unrolled over 8 characters
 * learns that within a step; it can only use it in the first half of a
 * step if the state read in the step before is carried over. */
static void periodic_text(nasc_corpus *c, int64_t n) {
    c->n = n;
    c->bytes = malloc((size_t)n);
    assert_non_null(c->bytes);
    const char *pattern = "abcXabcYabcZ";
    for (int64_t i = 0; i < n; i++) c->bytes[i] = (uint8_t)pattern[i % 12];
}

static void test_lm_learns(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "8"}, {"channels", "16"}};
    nasc_module *m = load_lm(&ctx, "models/lstm.yaml", ov, 2, 8); /* steps of 8 characters */
    nasc_corpus text;
    periodic_text(&text, 24000);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    nasc_train_options o = nasc_train_options_default();
    o.epochs = 8;
    o.batch = 8;
    o.lr = 0.01f;
    o.warmup_epochs = 0;
    o.optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
    o.grad_clip = 5;
    o.threads = 1;
    nasc_train_result res;
    if (nasc_train_lm(&ctx, m, ps, &text, &o, &res)) die(&ctx, "nasc_train_lm");
    int64_t train_end, val_end;
    nasc_corpus_split(text.n, &train_end, &val_end);
    float vl, va;
    if (nasc_evaluate_lm(&ctx, m, ps, &text, val_end, text.n, 8, 1, &vl, &va)) die(&ctx, "nasc_evaluate_lm");
    printf("[lm learns] %d epochs: train %.4f, validation %.4f, test %.4f bits/char, test accuracy %.2f%%\n",
           res.epochs_run, res.train_loss / 0.6931472, res.val_loss / 0.6931472, vl / 0.6931472, 100 * va);
    assert_int_equal(res.epochs_run, 8);
    /* without the state from the step before, the X/Y/Z in the first half
     * of a step are a guess among three: at best 1 - 0.25 * 0.5 * 2/3 =
     * 91.7% of the next characters right, 0.2 bits per character */
    assert_true(va > 0.97f);
    assert_true(vl / 0.6931472 < 0.1);
    /* the same with dropout 0.1 on a net lowered with masks, validated
     * without them: still learns the pattern */
    {
        nasc_module *arch = NULL, *dm = NULL;
        char *path = nasc_test_path("models/lstm.yaml");
        if (nasc_model_load(&ctx, path, ov, 2, &arch)) die(&ctx, "load");
        free(path);
        nasc_lower_options lo = nasc_lower_options_default();
        lo.seq_len = 8;
        lo.rnn_dropout = true;
        if (nasc_lower_with(arch, &lo, &dm)) die(&ctx, "lower");
        nasc_param_store *dps = nasc_params_create(&ctx);
        nasc_train_options od = o;
        od.rnn_dropout = 0.1f;
        od.eval_prim = m;
        nasc_train_result dr;
        if (nasc_train_lm(&ctx, dm, dps, &text, &od, &dr)) die(&ctx, "nasc_train_lm with dropout");
        printf("[lm learns] with dropout 0.1: validation %.4f bits/char, %.2f%% right\n", dr.val_loss / 0.6931472,
               100 * dr.val_acc);
        assert_true(dr.val_acc > 0.97f);
        /* dropout needs the masks */
        nasc_param_store *eps = nasc_params_create(&ctx);
        assert_int_equal(nasc_train_lm(&ctx, m, eps, &text, &od, &dr), NASC_EINPUT);
        assert_non_null(strstr(ctx.diag.msg, "dropout needs a net lowered with dropout masks"));
        nasc_params_destroy(eps);
        nasc_params_destroy(dps);
        nasc_module_destroy(dm);
        nasc_module_destroy(arch);
    }

    /* resuming a finished run trains nothing */
    if (nasc_train_lm(&ctx, m, ps, &text, &o, &res)) die(&ctx, "resume");
    assert_int_equal(res.epochs_run, 0);

    /* generation: the same weights one step at a time; greedy continues the
     * pattern, sampling repeats itself for a seed */
    nasc_module *step = load_lm(&ctx, "models/lstm.yaml", ov, 2, 1);
    const uint8_t prompt[] = "abcXabcYa";
    uint8_t g1[16] = {0}, g2[16] = {0}, g3[16] = {0};
    if (nasc_lm_generate(&ctx, step, ps, prompt, 9, 15, 0.0f, 1, 1, g1)) die(&ctx, "generate");
    printf("[lm learns] greedy after \"abcXabcYa\": \"%s\"\n", (const char *)g1);
    assert_string_equal((const char *)g1, "bcZabcXabcYabcZ");
    if (nasc_lm_generate(&ctx, step, ps, prompt, 9, 15, 1.5f, 5, 1, g2) ||
        nasc_lm_generate(&ctx, step, ps, prompt, 9, 15, 1.5f, 5, 1, g3))
        die(&ctx, "generate");
    assert_memory_equal(g2, g3, 15);
    assert_int_equal(nasc_lm_generate(&ctx, m, ps, prompt, 9, 15, 1.0f, 5, 1, g2), NASC_EINPUT); /* 8 steps */
    assert_non_null(strstr(ctx.diag.msg, "one character at a time"));
    nasc_module_destroy(step);
    nasc_params_destroy(ps);
    free(text.bytes);
    nasc_module_destroy(m);
}

/* Bad inputs: a text too short for one step, a byte outside the model's
 * classes, the image recipe. */
static void test_lm_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const nasc_override ov[] = {{"input", "2"}, {"channels", "3"}, {"classes", "100"}};
    nasc_module *m = load_lm(&ctx, "models/lstm.yaml", ov, 3, 5);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    nasc_train_options o = nasc_train_options_default();
    o.batch = 4;
    nasc_train_result res;
    nasc_corpus text;
    periodic_text(&text, 30);
    assert_int_equal(nasc_train_lm(&ctx, m, ps, &text, &o, &res), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "fewer than 4 streams of 5 characters"));
    free(text.bytes);
    periodic_text(&text, 4000);
    text.bytes[100] = 200;
    assert_int_equal(nasc_train_lm(&ctx, m, ps, &text, &o, &res), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "byte 0xc8 at offset 100 of the text is not one of the model's 100 classes"));
    text.bytes[100] = 'a';
    o.cutout = 4;
    assert_int_equal(nasc_train_lm(&ctx, m, ps, &text, &o, &res), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "without the image recipe"));
    free(text.bytes);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm_by_hand),  cmocka_unit_test(test_lstm_grads), cmocka_unit_test(test_enas_cell_grads),
        cmocka_unit_test(test_nasrl_cell_grads),
        cmocka_unit_test(test_dropout_grads),
        cmocka_unit_test(test_lm_errors),     cmocka_unit_test(test_lm_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
