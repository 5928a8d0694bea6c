/* lm.c - character language models: truncated backpropagation through time
 * over a contiguous text, and their evaluation in bits per character.
 *
 * A range of the corpus is cut into B streams of equal length L, one per
 * row of the batch (the last (end - begin) mod B bytes are left out). Step
 * k reads characters [k T, k T + T) of every stream and predicts the one
 * after each; the state after a step is the next step's initial state, so
 * each stream is read as one sequence (gradients stop at step boundaries).
 * The state starts at zero in every epoch and every evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"


/* The shape of a recurrent net (nasc_lower of a recurrent arch): input 0
 * (N, T) token numbers, inputs 1.. (N, H) state; output 0 (N, T, V)
 * logits, outputs 1.. the state after the last step, as many as inputs. */
typedef struct lm_shape {
    int64_t steps;   /* T */
    int64_t vocab;   /* V */
    uint32_t n_state;
    uint32_t state_in[2], state_out[2]; /* value ids */
    int64_t state_size[2];
    uint32_t n_mask; /* dropout masks (nasc_lower_options.rnn_dropout) */
    uint32_t mask_input[3]; /* their net input numbers */
    int64_t mask_size[3];
} lm_shape;

/* Whether input value v is a dropout mask: "drop.<x|s|o>". */
static bool is_mask(const nasc_module *prim, uint32_t v) {
    const char *n = nasc_str(prim, prim->values[v].name);
    return strcmp(n, "drop.x") == 0 || strcmp(n, "drop.s") == 0 || strcmp(n, "drop.o") == 0;
}

static nasc_status check_lm(nasc_ctx *ctx, const nasc_module *prim, lm_shape *sh) {
    memset(sh, 0, sizeof *sh);
    uint32_t ins[4], n_in = 0, k = 0;
    for (uint32_t v = 0; v < prim->n_values; v++) {
        if (prim->values[v].kind != NASC_VAL_INPUT) continue;
        if (is_mask(prim, v) && sh->n_mask < 3) {
            sh->mask_input[sh->n_mask] = k;
            sh->mask_size[sh->n_mask++] = prim->values[v].type.dims[1];
        } else {
            if (n_in == 4) break;
            ins[n_in++] = v;
        }
        k++;
    }
    const char *why = NULL;
    const nasc_type *x = n_in ? &prim->values[ins[0]].type : NULL;
    const nasc_type *y = prim->n_outputs ? &prim->values[prim->outputs[0]].type : NULL;
    if (n_in < 2 || n_in > 3 || prim->n_outputs != n_in)
        why = "it needs token numbers and one or two state inputs, and as many outputs";
    else if (x->rank != 2 || x->dims[0] != NASC_BATCH)
        why = "its first input is not (N, T) token numbers";
    else if (y->rank != 3 || y->dims[0] != NASC_BATCH || y->dims[1] != x->dims[1])
        why = "its first output is not (N, T, classes) logits";
    for (uint32_t i = 1; !why && i < n_in; i++) {
        const nasc_type *a = &prim->values[ins[i]].type, *b = &prim->values[prim->outputs[i]].type;
        if (a->rank != 2 || b->rank != 2 || a->dims[0] != NASC_BATCH || b->dims[0] != NASC_BATCH ||
            a->dims[1] != b->dims[1])
            why = "a state output does not match its input";
    }
    if (why)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "not a language model (a lowered recurrent net): %s", why);
    sh->steps = x->dims[1];
    sh->vocab = y->dims[2];
    sh->n_state = n_in - 1;
    for (uint32_t i = 0; i < sh->n_state; i++) {
        sh->state_in[i] = ins[i + 1];
        sh->state_out[i] = prim->outputs[i + 1];
        sh->state_size[i] = prim->values[ins[i + 1]].type.dims[1];
    }
    return NASC_OK;
}

nasc_status nasc_lm_check_vocab(nasc_ctx *ctx, const nasc_corpus *text, int64_t begin, int64_t end, int64_t vocab) {
    if (vocab >= 256) return NASC_OK;
    for (int64_t i = begin; i < end; i++)
        if (text->bytes[i] >= vocab)
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "byte 0x%02x at offset %lld of the text is not one of the model's %lld classes "
                              "(a byte-level model needs classes: 256)",
                              text->bytes[i], (long long)i, (long long)vocab);
    return NASC_OK;
}

/* One pass's buffers and net over a range of the text. */
typedef struct lm_run {
    nasc_ctx *ctx;
    const nasc_module *prim;
    lm_shape sh;
    nasc_net *net;
    int batch;
    int64_t begin, stream, steps; /* streams of `stream` bytes; steps per pass */
    float *x;
    int32_t *y;
    float *state[2];
    float *mask;      /* one mask's values */
    float drop;       /* dropout probability of the masks (0: all 1) */
    uint64_t seed;
} lm_run;

static void lm_run_free(lm_run *r) {
    nasc_net_destroy(r->net);
    nasc_free(r->ctx, r->x);
    nasc_free(r->ctx, r->y);
    for (int i = 0; i < 2; i++) nasc_free(r->ctx, r->state[i]);
    nasc_free(r->ctx, r->mask);
    memset(r, 0, sizeof *r);
}

static nasc_status lm_run_init(lm_run *r, nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store,
                               const nasc_corpus *text, int64_t begin, int64_t end, int batch, int threads,
                               nasc_net_mode mode, const char *what) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->prim = prim;
    nasc_status st = check_lm(ctx, prim, &r->sh);
    if (st) return st;
    if (batch < 1) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "batch must be at least 1, not %d", batch);
    r->batch = batch;
    r->begin = begin;
    r->stream = (end - begin) / batch;
    r->steps = r->stream > 1 ? (r->stream - 1) / r->sh.steps : 0;
    if (r->steps < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "the %s text has %lld bytes, fewer than %d streams of %lld characters and the one after "
                          "(fewer streams or shorter steps)",
                          what, (long long)(end - begin), batch, (long long)r->sh.steps);
    st = nasc_lm_check_vocab(ctx, text, begin, begin + r->stream * batch, r->sh.vocab);
    if (st) return st;
    nasc_net_options no = nasc_net_options_default();
    no.batch = batch;
    no.threads = threads;
    no.mode = mode;
    no.fuse = true;
    st = nasc_net_compile(ctx, prim, store, &no, &r->net);
    size_t bt = (size_t)batch * (size_t)r->sh.steps;
    if (!st) {
        r->x = nasc_alloc(ctx, bt * sizeof *r->x);
        r->y = nasc_alloc(ctx, bt * sizeof *r->y);
        if (!r->x || !r->y) st = NASC_ENOMEM;
    }
    for (uint32_t i = 0; !st && i < r->sh.n_state; i++) {
        r->state[i] = nasc_alloc(ctx, (size_t)batch * (size_t)r->sh.state_size[i] * sizeof(float));
        if (!r->state[i]) st = NASC_ENOMEM;
    }
    int64_t most = 1;
    for (uint32_t i = 0; i < r->sh.n_mask; i++) most = r->sh.mask_size[i] > most ? r->sh.mask_size[i] : most;
    if (!st && r->sh.n_mask) {
        r->mask = nasc_alloc(ctx, (size_t)batch * (size_t)most * sizeof(float));
        if (!r->mask) st = NASC_ENOMEM;
    }
    if (st) lm_run_free(r);
    return st;
}

static void lm_reset_state(lm_run *r) {
    for (uint32_t i = 0; i < r->sh.n_state; i++)
        memset(r->state[i], 0, (size_t)r->batch * (size_t)r->sh.state_size[i] * sizeof(float));
}

/* Inputs of step k: characters and the carried state; then forward and the
 * loss (mean nats per character) and the correct next-character guesses. */
void nasc_lm_window(const nasc_corpus *text, int64_t begin, int64_t stream, int batch, int64_t T, int64_t k, float *x,
                    int32_t *y) {
    for (int b = 0; b < batch; b++) {
        const uint8_t *src = text->bytes + begin + (int64_t)b * stream + k * T;
        for (int64_t t = 0; t < T; t++) {
            x[b * T + t] = (float)src[t];
            y[b * T + t] = src[t + 1];
        }
    }
}

static nasc_status lm_forward(lm_run *r, const nasc_corpus *text, int64_t k, int64_t global, float *loss,
                              int *correct) {
    nasc_lm_window(text, r->begin, r->stream, r->batch, r->sh.steps, k, r->x, r->y);
    nasc_status st = nasc_net_set_input(r->net, 0, r->x);
    for (uint32_t i = 0; !st && i < r->sh.n_state; i++) st = nasc_net_set_input(r->net, i + 1, r->state[i]);
    /* a fresh draw of each dropout mask for every step (the same for all
     * T positions: variational dropout), from (seed, mask, step) alone */
    for (uint32_t i = 0; !st && i < r->sh.n_mask; i++) {
        nasc_drop_path_masks(r->mask, (int64_t)r->batch * r->sh.mask_size[i], r->drop,
                             r->seed ^ (0x9e3779b97f4a7c15ull * (i + 1)), global);
        st = nasc_net_set_input(r->net, r->sh.mask_input[i], r->mask);
    }
    if (!st) st = nasc_net_forward(r->net);
    if (!st) st = nasc_net_loss(r->net, r->y, loss, correct);
    return st;
}

/* The state after the step, kept for the next one. */
static nasc_status lm_carry(lm_run *r) {
    nasc_status st = NASC_OK;
    for (uint32_t i = 0; !st && i < r->sh.n_state; i++)
        st = nasc_net_read(r->net, nasc_str(r->prim, r->prim->values[r->sh.state_out[i]].name), r->state[i]);
    return st;
}

nasc_status nasc_evaluate_lm(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_corpus *text,
                             int64_t begin, int64_t end, int batch, int threads, float *loss, float *acc) {
    *loss = *acc = NAN;
    if (begin < 0 || end > text->n || begin >= end)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "bytes [%lld, %lld) are not a range of the text",
                          (long long)begin, (long long)end);
    lm_run r;
    nasc_status st = lm_run_init(&r, ctx, prim, store, text, begin, end, batch, threads, NASC_MODE_INFER, "evaluation");
    if (st) return st;
    lm_reset_state(&r);
    double total = 0;
    int64_t right = 0;
    for (int64_t k = 0; !st && k < r.steps; k++) {
        float l;
        int ok;
        st = lm_forward(&r, text, k, k, &l, &ok);
        if (!st) st = lm_carry(&r);
        total += l;
        right += ok;
    }
    if (!st) {
        *loss = (float)(total / (double)r.steps);
        *acc = (float)((double)right / ((double)r.steps * (double)r.batch * (double)r.sh.steps));
    }
    lm_run_free(&r);
    return st;
}

nasc_status nasc_train_lm(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_corpus *text,
                          const nasc_train_options *o, nasc_train_result *out) {
    memset(out, 0, sizeof *out);
    out->val_acc = out->val_loss = NAN;
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "epochs, batch and learning rate must be positive");
    if (!(o->grad_clip >= 0))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the gradient clipping norm must be >= 0");
    if (!(o->rnn_dropout >= 0 && o->rnn_dropout < 1))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the dropout probability must be in [0, 1)");
    if (o->label_smoothing != 0 || o->aux_weight != 0 || o->drop_path != 0 || o->ema_decay != 0 || o->crop_pad ||
        o->cutout || o->flip)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "a language model trains without the image recipe (augmentation, label smoothing, an "
                          "auxiliary head, drop-path, a weight average)");
    int64_t train_end, val_end;
    nasc_corpus_split(text->n, &train_end, &val_end);
    int64_t train_stop = o->train_subset > 0 && o->train_subset < train_end ? o->train_subset : train_end;
    nasc_status st = nasc_params_init(store, prim, o->seed);
    if (st) return st;
    const char *e0 = nasc_params_meta(store, "train/epoch");
    int first_epoch = e0 ? (int)strtol(e0, NULL, 10) : 0;
    if (first_epoch >= o->epochs) return NASC_OK;

    const nasc_module *eval_prim = o->eval_prim ? o->eval_prim : prim;
    lm_run r;
    st = lm_run_init(&r, ctx, prim, store, text, 0, train_stop, o->batch, o->threads, NASC_MODE_TRAIN, "training");
    if (st) return st;
    r.drop = o->rnn_dropout;
    r.seed = o->seed;
    if (o->rnn_dropout > 0 && r.sh.n_mask == 0) {
        lm_run_free(&r);
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "dropout needs a net lowered with dropout masks (nasc_lower_options.rnn_dropout)");
    }
    nasc_optimizer *opt = nasc_optim_create(ctx, &o->optim, store);
    if (!opt) st = ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    int64_t steps = r.steps, total_steps = steps * o->epochs, warmup = steps * o->warmup_epochs;
    int64_t global = steps * first_epoch, run_steps = 0;
    int64_t tokens = (int64_t)o->batch * r.sh.steps;
    double t0 = nb_train_now();
    nasc_train_progress pr = {0};
    pr.epochs = o->epochs;
    pr.steps = steps;
    for (int e = first_epoch; !st && e < o->epochs; e++) {
        lm_reset_state(&r);
        double loss_sum = 0;
        int64_t correct = 0;
        for (int64_t k = 0; !st && k < steps; k++) {
            float lr = nasc_lr_restarts(o->lr, global, warmup, total_steps, steps * o->restart_epochs, o->restart_mult);
            float loss;
            int ok;
            st = lm_forward(&r, text, k, global, &loss, &ok);
            if (!st && !isfinite(loss))
                st = nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                                "the loss is %s at step %lld (epoch %d, step %lld): training diverged; try a smaller "
                                "--lr or --grad-clip",
                                isnan(loss) ? "NaN" : "infinite", (long long)global + 1, e + 1, (long long)k + 1);
            if (!st) st = nasc_net_backward(r.net);
            if (!st) {
                const nasc_param_grad *g;
                uint32_t ng = nasc_net_grads(r.net, &g);
                float gs = o->grad_clip > 0 ? nasc_clip_scale(nasc_grad_norm(g, ng), o->grad_clip) : 1.0f;
                st = nasc_optim_step_scaled(opt, g, ng, lr, gs);
            }
            if (!st) st = lm_carry(&r);
            if (st) break;
            loss_sum += loss;
            correct += ok;
            global++;
            run_steps++;
            st = nb_report_step(o, &pr, e, k + 1, global, run_steps, total_steps, (float)(loss_sum / (double)(k + 1)),
                                (float)((double)correct / ((double)(k + 1) * (double)tokens)), (double)tokens, t0, lr);
            if (!st && o->max_steps > 0 && run_steps >= o->max_steps) break;
        }
        if (st) break;
        if (o->max_steps > 0 && run_steps >= o->max_steps && pr.step < steps) break; /* a partial epoch is not recorded */
        out->train_loss = pr.loss;
        out->train_acc = pr.acc;
        out->epochs_run++;
        float va, vl;
        st = nasc_evaluate_lm(ctx, eval_prim, store, text, train_end, val_end, o->batch, o->threads, &vl, &va);
        if (st) break;
        st = nb_end_epoch(o, &pr, store, e, va, vl, out);
        if (o->max_steps > 0 && run_steps >= o->max_steps) break;
    }
    out->seconds = nb_train_now() - t0;
    out->images_per_s = out->seconds > 0 ? (double)run_steps * (double)tokens / out->seconds : 0;
    nasc_optim_destroy(opt);
    lm_run_free(&r);
    return st;
}

nasc_status nasc_lm_generate(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const uint8_t *prompt,
                             int64_t n_prompt, int64_t n, float temperature, uint64_t seed, int threads,
                             uint8_t *out) {
    lm_shape sh;
    nasc_status st = check_lm(ctx, prim, &sh);
    if (st) return st;
    if (sh.steps != 1)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "generation runs a language model one character at a time: lower it with one step, not "
                          "%lld",
                          (long long)sh.steps);
    if (!(temperature >= 0) || !isfinite(temperature))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the temperature must be >= 0, not %g",
                          (double)temperature);
    if (n_prompt < 1) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the prompt is empty");
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] >= sh.vocab)
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "byte 0x%02x at offset %lld of the prompt is not one of the model's %lld classes",
                              prompt[i], (long long)i, (long long)sh.vocab);
    nasc_net_options no = nasc_net_options_default();
    no.batch = 1;
    no.threads = threads;
    no.mode = NASC_MODE_INFER;
    no.fuse = true;
    nasc_net *net = NULL;
    float *logits = nasc_alloc(ctx, (size_t)sh.vocab * sizeof *logits);
    float *state[2] = {NULL, NULL};
    if (!logits) return NASC_ENOMEM;
    for (uint32_t i = 0; i < sh.n_state; i++) {
        state[i] = nasc_alloc(ctx, (size_t)sh.state_size[i] * sizeof(float));
        if (!state[i]) st = NASC_ENOMEM;
        else memset(state[i], 0, (size_t)sh.state_size[i] * sizeof(float));
    }
    if (!st) st = nasc_net_compile(ctx, prim, store, &no, &net);
    /* dropout masks, if the net has them: all ones (no dropout) */
    float *ones = NULL;
    int64_t most = 0;
    for (uint32_t i = 0; i < sh.n_mask; i++) most = sh.mask_size[i] > most ? sh.mask_size[i] : most;
    if (!st && most) {
        ones = nasc_alloc(ctx, (size_t)most * sizeof *ones);
        if (!ones) st = NASC_ENOMEM;
        for (int64_t i = 0; ones && i < most; i++) ones[i] = 1.0f;
    }
    for (uint32_t i = 0; !st && i < sh.n_mask; i++) st = nasc_net_set_input(net, sh.mask_input[i], ones);
    nasc_free(ctx, ones);
    nasc_rng rng;
    nasc_rng_seed(&rng, seed);
    const char *lname = nasc_str(prim, prim->values[prim->outputs[0]].name);
    uint8_t next = prompt[0];
    /* read the prompt, then feed each sampled character back */
    for (int64_t k = 0; !st && k < n_prompt - 1 + n; k++) {
        float x = (float)(k < n_prompt ? prompt[k] : next);
        st = nasc_net_set_input(net, 0, &x);
        for (uint32_t i = 0; !st && i < sh.n_state; i++) st = nasc_net_set_input(net, i + 1, state[i]);
        if (!st) st = nasc_net_forward(net);
        if (!st) st = nasc_net_read(net, lname, logits);
        for (uint32_t i = 0; !st && i < sh.n_state; i++)
            st = nasc_net_read(net, nasc_str(prim, prim->values[sh.state_out[i]].name), state[i]);
        if (st || k < n_prompt - 1) continue;
        /* the next character: the most likely one at temperature 0, else a
         * draw from softmax(logits / temperature) */
        int64_t best = 0;
        for (int64_t j = 1; j < sh.vocab; j++)
            if (logits[j] > logits[best]) best = j;
        if (temperature > 0) {
            double sum = 0;
            for (int64_t j = 0; j < sh.vocab; j++) sum += exp((double)(logits[j] - logits[best]) / temperature);
            double u = nasc_rng_uniform(&rng) * sum, acc = 0;
            int64_t pick = best;
            for (int64_t j = 0; j < sh.vocab; j++) {
                acc += exp((double)(logits[j] - logits[best]) / temperature);
                if (u < acc) {
                    pick = j;
                    break;
                }
            }
            best = pick;
        }
        next = (uint8_t)best;
        out[k - (n_prompt - 1)] = next;
    }
    nasc_net_destroy(net);
    nasc_free(ctx, logits);
    for (int i = 0; i < 2; i++) nasc_free(ctx, state[i]);
    return st;
}
