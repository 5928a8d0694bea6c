/* oneshot_lm.c - ENAS on the recurrent cell (enas-rnn): the shared weights
 * trained as one character language model whose cell changes every step.
 *
 * As the reference (src/ptb/ptb_enas_child.py): B streams over the
 * training split read T characters a step, a freshly sampled child per
 * step, the hidden state carried from step to step (across children) and
 * zeroed each epoch; the weights of node i are keyed by (node, parent,
 * activation) (nasc_space_share_key), so a child binds to its slice of
 * the large graph. A child is scored on one window of the validation split
 * (B streams x T characters, the state starting at zero, as the
 * reference's valid_rl): reward 1 / perplexity per character. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "oneshot_internal.h"

typedef struct key_ctx {
    const nasc_space *sp;
    const uint32_t *d;
} key_ctx;

static void share_key(void *ud, const char *name, char *out, size_t size) {
    const key_ctx *k = ud;
    nasc_space_share_key(k->sp, k->d, name, out, size);
}

/* The child's arch (the run's overrides applied). */
static nasc_status child_arch(enas *e, const uint32_t *d, nasc_module **arch) {
    nasc_status st = nasc_space_decode(e->r->space, d, arch);
    if (!st) st = nasc_arch_apply_overrides(*arch, e->r->set_keys, e->r->set_vals, e->r->n_set);
    return st;
}

/* Child d lowered with the store's keys; tensors it reads for the first
 * time initialised from the seed and their name. */
static nasc_status child_prim(enas *e, const uint32_t *d, nasc_module **out) {
    *out = NULL;
    nasc_module *arch = NULL;
    nasc_status st = child_arch(e, d, &arch);
    key_ctx k = {e->r->space, d};
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = e->o->bptt;
    lo.param_key = share_key;
    lo.param_key_ud = &k;
    if (!st) st = nasc_lower_with(arch, &lo, out);
    nasc_module_destroy(arch);
    if (!st) st = nasc_params_init(e->st, *out, e->o->seed);
    if (st) {
        nasc_module_destroy(*out);
        *out = NULL;
    }
    return st;
}

nasc_status nasc_oneshot_lm_setup(enas *e) {
    nasc_ctx *ctx = e->ctx;
    const nasc_enas_options *o = e->o;
    const nasc_corpus *text = e->r->text;
    if (!text || text->n < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the enas-rnn search needs a text to train on");
    if (o->bptt < 1 || o->bptt > NASC_MAX_SEQ_LEN)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "ENAS options: the BPTT length must be 1..%d, not %d",
                          NASC_MAX_SEQ_LEN, o->bptt);
    int64_t B = o->batch, T = o->bptt, train_end, val_end;
    nasc_corpus_split(text->n, &train_end, &val_end);
    int64_t train_stop = o->train_subset > 0 && o->train_subset < train_end ? o->train_subset : train_end;
    e->train_stream = train_stop / B;
    e->train_steps = e->train_stream > 1 ? (e->train_stream - 1) / T : 0;
    e->val_begin = train_end;
    e->val_stream = (val_end - train_end) / B;
    e->val_steps = e->val_stream > 1 ? (e->val_stream - 1) / T : 0;
    if (e->train_steps < 1 || e->val_steps < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "the text's %s split (%lld bytes) holds no window of %lld streams of %lld characters and the "
                          "one after (a longer text, a smaller --batch or --bptt)",
                          e->train_steps < 1 ? "training" : "validation",
                          (long long)(e->train_steps < 1 ? train_stop : val_end - train_end), (long long)B,
                          (long long)T);
    /* the state's width and the vocabulary: the skeleton every child shares */
    uint32_t *d0 = nasc_alloc(ctx, (size_t)e->n * sizeof *d0);
    if (!d0) return NASC_ENOMEM;
    memset(d0, 0, (size_t)e->n * sizeof *d0);
    nasc_module *arch = NULL;
    nasc_status st = child_arch(e, d0, &arch);
    nasc_free(ctx, d0);
    if (st) {
        nasc_module_destroy(arch);
        return st;
    }
    e->lm_hidden = arch->skel.channels;
    int64_t vocab = arch->skel.classes;
    nasc_module_destroy(arch);
    st = nasc_lm_check_vocab(ctx, text, 0, e->train_stream * B + 1, vocab);
    if (!st) st = nasc_lm_check_vocab(ctx, text, e->val_begin, e->val_begin + e->val_stream * B, vocab);
    if (st) return st;
    size_t bh = (size_t)B * (size_t)e->lm_hidden, bt = (size_t)B * (size_t)T;
    e->state = nasc_alloc(ctx, bh * sizeof *e->state);
    e->zero_state = nasc_alloc(ctx, bh * sizeof *e->zero_state);
    e->tokens = nasc_alloc(ctx, bt * sizeof *e->tokens);
    e->next = nasc_alloc(ctx, bt * sizeof *e->next);
    if (!e->state || !e->zero_state || !e->tokens || !e->next) return NASC_ENOMEM;
    memset(e->zero_state, 0, bh * sizeof *e->zero_state);
    nasc_optim_options ao = nasc_optim_options_default(NASC_OPTIM_ADAM);
    ao.weight_decay = o->weight_decay;
    ao.per_tensor_steps = true;
    e->opt = nasc_optim_create(ctx, &ao, e->st);
    return e->opt ? NASC_OK : ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
}

void nasc_oneshot_lm_free(enas *e) {
    nasc_free(e->ctx, e->state);
    nasc_free(e->ctx, e->zero_state);
    nasc_free(e->ctx, e->tokens);
    nasc_free(e->ctx, e->next);
    e->state = e->zero_state = e->tokens = NULL;
    e->next = NULL;
}

/* One step of shared training on a freshly sampled child: window k of the
 * training streams from the carried state. */
static nasc_status train_step(enas *e, float lr, int64_t k, float *loss, int *correct) {
    double lp, ent, t0 = nasc_oneshot_now();
    nasc_status st = nasc_enas_ctl_run(e->ctl, e->d, &e->rng, &lp, &ent, NULL);
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    if (!st) st = child_prim(e, e->d, &prim);
    if (!st) st = nasc_oneshot_net(e, prim, true, &net);
    if (!st) nasc_oneshot_compiled(e, net, t0);
    if (!st) {
        nasc_lm_window(e->r->text, 0, e->train_stream, e->o->batch, e->o->bptt, k, e->tokens, e->next);
        st = nasc_net_set_input(net, 0, e->tokens);
    }
    if (!st) st = nasc_net_set_input(net, 1, e->state);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_loss(net, e->next, loss, correct);
    if (!st) st = nasc_oneshot_update(e, net, *loss, k, lr);
    /* the state after the window starts the next one, whatever child reads it */
    if (!st) st = nasc_net_read(net, nasc_str(prim, prim->values[prim->outputs[1]].name), e->state);
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    e->step_s += nasc_oneshot_now() - t0;
    return st;
}

nasc_status nasc_oneshot_lm_train_epoch(enas *e) {
    int64_t steps = e->train_steps;
    float lr = nasc_oneshot_lr(e->o, e->epoch);
    double sum_loss = 0, tokens = (double)e->o->batch * (double)e->o->bptt;
    int64_t correct = 0;
    e->compile_s = e->step_s = 0;
    e->created = 0;
    memset(e->state, 0, (size_t)e->o->batch * (size_t)e->lm_hidden * sizeof *e->state);
    nasc_status st = NASC_OK;
    for (int64_t k = 0; k < steps && !st; k++) {
        st = nasc_oneshot_interrupted(e);
        float loss = 0;
        int ok = 0;
        if (!st) st = train_step(e, lr, k, &loss, &ok);
        if (st) break;
        sum_loss += loss;
        correct += ok;
        nasc_oneshot_progress p = {.phase = "train", .epoch = e->epoch, .step = k + 1, .steps = steps,
                                   .loss = (float)(sum_loss / (double)(k + 1)),
                                   .acc = (float)((double)correct / ((double)(k + 1) * tokens)), .reward = NAN,
                                   .baseline = NAN, .entropy = NAN, .phase_end = k + 1 == steps,
                                   .step_s = e->step_s / (double)(k + 1), .compile_s = e->compile_s / (double)(k + 1),
                                   .created = e->created};
        nasc_oneshot_report(e, &p);
    }
    return st;
}

nasc_status nasc_oneshot_lm_score(enas *e, const uint32_t *d, int64_t k, double *loss) {
    *loss = NAN;
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    nasc_status st = child_prim(e, d, &prim);
    if (!st) st = nasc_oneshot_net(e, prim, false, &net);
    if (!st) {
        nasc_lm_window(e->r->text, e->val_begin, e->val_stream, e->o->batch, e->o->bptt, k % e->val_steps, e->tokens,
                       e->next);
        st = nasc_net_set_input(net, 0, e->tokens);
    }
    if (!st) st = nasc_net_set_input(net, 1, e->zero_state);
    if (!st) st = nasc_net_forward(net);
    float l = NAN;
    int ok;
    if (!st) st = nasc_net_loss(net, e->next, &l, &ok);
    if (!st) *loss = l;
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    return st;
}
