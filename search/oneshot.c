/* oneshot.c - ENAS: one store of shared weights trained on a freshly
 * sampled child per minibatch, the controller trained on the children's
 * validation accuracy, then candidates scored with the shared weights
 * (docs/oneshot.md).
 *
 * Design: a child is lowered with shared names (nasc_lower_options.shared)
 * and compiled for every step; its net binds to the store's tensors, so
 * nothing is copied, and the optimizer steps only the tensors the child
 * read (the others keep their values and momentum). oneDNN's primitive
 * cache makes the compile of a seen shape cheap; the cache is enlarged at
 * the start so that the supernet's shapes fit in it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nasc_export.h"
#include "nasc_frontend.h"
#include "oneshot_internal.h"
#include "strategies_internal.h"

const char *const nasc_enas_spaces[] = {"enas-micro", "enas-macro", "enas-rnn", NULL};

nasc_enas_options nasc_enas_options_default(void) {
    nasc_enas_options o;
    memset(&o, 0, sizeof o);
    o.epochs = 10;
    o.batch = 64;
    o.lr_max = 0.05f;
    o.lr_min = 0.0005f;
    o.lr_t0 = 10;
    o.lr_tmul = 2;
    o.weight_decay = 1e-4f;
    o.grad_clip = 5.0f;
    o.aux_weight = 0.4f;
    o.val_size = 5000;
    o.lstm_size = 64;
    o.ctl_lr = 0.0035f;
    o.tanh_constant = 1.10f;
    o.op_tanh_reduce = 2.5f;
    o.temperature = 0.0f;
    o.entropy_weight = 1e-4f;
    o.baseline_decay = 0.99f;
    o.ctl_steps = 30;
    o.ctl_aggregate = 10;
    o.skip_target = 0.4f;
    o.skip_weight = 0.8f;
    o.candidates = 100;
    o.seed = NASC_DEFAULT_SEED;
    return o;
}

nasc_enas_options nasc_enas_options_for(const char *space) {
    nasc_enas_options o = nasc_enas_options_default();
    if (space && strcmp(space, "enas-rnn") == 0) {
        /* the controller: scripts/ptb_search.sh and src/ptb/main.py */
        o.lstm_size = 100;
        o.ctl_lr = 0.001f;
        o.tanh_constant = 2.5f;
        o.temperature = 5.0f;
        o.entropy_weight = 0.001f;
        o.ctl_steps = 100;
        o.ctl_aggregate = 10;
        /* the shared training: nasc's character-model recipe (Adam, clip 5,
         * cosine over the run), not the reference's SGD at 0.25 for its
         * word-level, batch-normalised cell (docs/oneshot.md) */
        o.lr_max = 0.002f;
        o.lr_min = 0.0f;
        o.lr_t0 = 0;
        o.weight_decay = 0;
        o.aux_weight = 0;
        o.epochs = 5;
        o.bptt = NASC_DEFAULT_SEQ_LEN;
    }
    if (space && strcmp(space, "enas-macro") == 0) { /* scripts/cifar10_macro_search.sh */
        o.weight_decay = 2.5e-4f;
        o.ctl_lr = 0.001f;
        o.tanh_constant = 1.5f;
        o.ctl_steps = 50;
        o.ctl_aggregate = 20;
        o.aux_weight = 0; /* nasc lowers no auxiliary head on a macro net */
    }
    return o;
}

double nasc_oneshot_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nasc_status nasc_oneshot_interrupted(enas *e) {
    if (e->r->stop && *e->r->stop) return nasc_error(e->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    return NASC_OK;
}

void nasc_oneshot_report(enas *e, nasc_oneshot_progress *p) {
    p->epochs = e->o->epochs;
    p->seconds = nasc_oneshot_now() - e->t0;
    if (e->r->progress) e->r->progress(e->r->ud, p);
}

/* ------------------------------------------------------------------ */
/* Children                                                            */
/* ------------------------------------------------------------------ */

/* The prim module of child d with shared names (with the auxiliary head
 * when aux), its tensors in st. */
static nasc_status shared_prim(const nasc_space *sp, const char *const *keys, const char *const *vals, int n_set,
                               nasc_param_store *st, uint64_t seed, const uint32_t *d, bool aux, nasc_module **out) {
    *out = NULL;
    nasc_module *arch = NULL;
    nasc_status s = nasc_space_decode(sp, d, &arch);
    if (!s) s = nasc_arch_apply_overrides(arch, keys, vals, n_set);
    nasc_lower_options lo = nasc_lower_options_default();
    /* ENAS keys micro weights by the input too, macro layers by the op */
    lo.shared = strcmp(nasc_space_name(sp), "enas-macro") == 0 ? NASC_SHARE_BY_OP : NASC_SHARE_BY_INPUT;
    lo.aux_head = aux;
    if (!s) s = nasc_lower_with(arch, &lo, out);
    nasc_module_destroy(arch);
    /* tensors a child reads for the first time start as nasc_params_init
     * makes them; their values depend on the seed and the name only */
    if (!s) s = nasc_params_init(st, *out, seed);
    if (s) {
        nasc_module_destroy(*out);
        *out = NULL;
    }
    return s;
}

static nasc_status child_prim(enas *e, const uint32_t *d, bool train, nasc_module **out) {
    return shared_prim(e->r->space, e->r->set_keys, e->r->set_vals, e->r->n_set, e->st, e->o->seed, d,
                       train && e->o->aux_weight > 0, out);
}

/* The number of the n logit rows whose largest entry is at the label. */
int nasc_oneshot_correct(const float *logits, const int32_t *y, int n, int k) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best]) best = j;
        ok += best == y[i];
    }
    return ok;
}

nasc_status nasc_oneshot_net(enas *e, const nasc_module *prim, bool train, nasc_net **net) {
    nasc_net_options no = nasc_net_options_default();
    no.batch = e->o->batch;
    no.threads = e->o->threads;
    no.arena = &e->arena;
    if (train) {
        no.mode = NASC_MODE_TRAIN;
    } else {
        no.mode = NASC_MODE_INFER;
        no.bn_batch_stats = true; /* ENAS scores children in training mode */
    }
    no.fuse = e->lm;
    return nasc_net_compile(e->ctx, prim, e->st, &no, net);
}

/* ENAS's learning rate: cosine from lr_max to lr_min over periods of
 * lr_t0, lr_t0 * lr_tmul, ... epochs (lr_t0 0: one period, the run),
 * constant within an epoch. */
float nasc_oneshot_lr(const nasc_enas_options *o, int epoch) {
    float c = nasc_lr_restarts(1.0f, epoch, 0, o->epochs, o->lr_t0, o->lr_tmul); /* 1 down to 0 */
    return o->lr_min + (o->lr_max - o->lr_min) * c;
}

nasc_status nasc_oneshot_journal(nasc_oneshot_run *r, uint32_t *d, double reward, double loss, int seq_len,
                                 double t0) {
    nasc_trial t;
    memset(&t, 0, sizeof t);
    t.index = t.proposal = r->journal->n;
    t.d = d;
    snprintf(t.status, sizeof t.status, "ok");
    t.reward = reward;
    t.val_loss = loss;
    t.params = t.macs = -1;
    nasc_module *arch = NULL, *prim = NULL;
    nasc_status st = nasc_space_decode(r->space, d, &arch);
    if (!st) st = nasc_arch_apply_overrides(arch, r->set_keys, r->set_vals, r->n_set);
    if (!st) st = nasc_arch_hash(arch, &t.hash);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = seq_len;
    if (!st) st = nasc_lower_with(arch, &lo, &prim);
    nasc_cost c;
    if (!st && nasc_cost_compute(prim, &c) == NASC_OK) {
        t.params = c.params;
        t.macs = c.macs;
        nasc_cost_free(prim, &c);
    }
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    t.seconds = nasc_oneshot_now() - t0;
    return st ? st : nasc_journal_append(r->journal, &t);
}

void nasc_oneshot_compiled(enas *e, const nasc_net *net, double t0) {
    nasc_net_stats ns;
    nasc_net_get_stats(net, &ns);
    e->created = ns.n_created < 0 || e->created < 0 ? -1 : e->created + ns.n_created;
    e->compile_s += nasc_oneshot_now() - t0;
}

nasc_status nasc_oneshot_update(enas *e, nasc_net *net, float loss, int64_t step, float lr) {
    if (!isfinite(loss))
        return nasc_error(e->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "shared-weight training diverged: the loss is %g at epoch %d, step %lld (try a lower --lr); "
                          "the checkpoint of the last finished epoch is kept",
                          (double)loss, e->epoch + 1, (long long)step + 1);
    nasc_status st = nasc_net_backward(net);
    if (st) return st;
    const nasc_param_grad *g;
    uint32_t ng = nasc_net_grads(net, &g);
    float gs = nasc_clip_scale(nasc_grad_norm(g, ng), e->o->grad_clip);
    return nasc_optim_step_scaled(e->opt, g, ng, lr, gs);
}

/* One step of shared-weight training on a freshly sampled child. */
static nasc_status train_step(enas *e, float lr, int64_t step, float *loss, int *correct) {
    double lp, ent, t0 = nasc_oneshot_now();
    nasc_status st = nasc_enas_ctl_run(e->ctl, e->d, &e->rng, &lp, &ent, NULL);
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    if (!st) st = child_prim(e, e->d, true, &prim);
    if (!st) st = nasc_oneshot_net(e, prim, true, &net);
    if (!st) nasc_oneshot_compiled(e, net, t0);
    if (!st) st = nasc_net_set_input(net, 0, e->x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_loss_at(net, 0, e->y, 1.0f, 0.0f, loss, correct);
    float aux_loss = 0;
    if (!st && prim->n_outputs > 1) st = nasc_net_loss_at(net, 1, e->y, e->o->aux_weight, 0.0f, &aux_loss, NULL);
    if (!st) st = nasc_oneshot_update(e, net, isfinite(aux_loss) ? *loss : aux_loss, step, lr);
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    e->step_s += nasc_oneshot_now() - t0;
    return st;
}

/* The next validation batch into x, y (the validation split again from
 * the start, in a new order, when it runs out). */
static nasc_status next_val(enas *e, int64_t *val_epoch) {
    for (int tries = 0; tries < 2; tries++) {
        if (nasc_batcher_next(e->vb, e->x, e->y) > 0) return NASC_OK;
        nasc_batcher_start(e->vb, ++*val_epoch);
    }
    return nasc_error(e->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the validation split holds no full batch of %d images",
                      e->o->batch);
}

/* Accuracy of child d with the shared weights on the batch in x, y. */
static nasc_status score(enas *e, const uint32_t *d, double *acc) {
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    nasc_status st = child_prim(e, d, false, &prim);
    if (!st) st = nasc_oneshot_net(e, prim, false, &net);
    if (!st) st = nasc_net_set_input(net, 0, e->x);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_read(net, nasc_str(prim, prim->values[prim->outputs[0]].name), e->logits);
    if (!st) *acc = (double)nasc_oneshot_correct(e->logits, e->y, e->o->batch, e->classes) / (double)e->o->batch;
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    return st;
}

/* ------------------------------------------------------------------ */
/* The controller                                                      */
/* ------------------------------------------------------------------ */

/* tf.train.AdamOptimizer(lr, beta1=0.0, epsilon=1e-3), as the reference's
 * controller: m = g, v = b2 v + (1 - b2) g^2,
 * theta -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps). */
static void ctl_adam(enas *e) {
    const double b2 = 0.999, eps = 1e-3;
    e->ctl_updates++;
    double lr_t = e->o->ctl_lr * sqrt(1.0 - pow(b2, (double)e->ctl_updates));
    float *th = nasc_enas_ctl_params(e->ctl);
    for (size_t i = 0; i < e->P; i++) {
        double g = e->grad[i];
        double v = b2 * e->adam_v[i] + (1 - b2) * g * g;
        e->adam_v[i] = (float)v;
        th[i] = (float)(th[i] - lr_t * g / (sqrt(v) + eps));
    }
}

/* Child d scored with the shared weights on a validation batch: images
 * the next batch of the validation batcher (*cursor its epoch), reward =
 * accuracy; language models window *cursor (then the next one), reward =
 * 1 / perplexity per character, *loss its nats per character. */
static nasc_status score_next(enas *e, const uint32_t *d, int64_t *cursor, double *reward, double *loss) {
    *loss = NAN;
    if (e->lm) {
        nasc_status st = nasc_oneshot_lm_score(e, d, (*cursor)++, loss);
        *reward = isfinite(*loss) ? exp(-*loss) : 0.0; /* a child whose loss overflows scores 0 */
        return st;
    }
    nasc_status st = next_val(e, cursor);
    return st ? st : score(e, d, reward);
}

/* ctl_steps updates, each on the mean policy gradient of ctl_aggregate
 * children: reward = validation-batch accuracy (language models: 1 /
 * perplexity on one validation window) + entropy_weight * entropy,
 * the baseline moved toward it first, loss = -(reward - baseline) log p
 * (+ skip_weight * the skip penalty, macro). */
static nasc_status controller_phase(enas *e) {
    const nasc_enas_options *o = e->o;
    int64_t val_epoch = (int64_t)e->epoch * 1000003;
    if (!e->lm) nasc_batcher_start(e->vb, val_epoch);
    double sum_r = 0, sum_h = 0;
    int64_t total = (int64_t)o->ctl_steps * o->ctl_aggregate, done = 0;
    nasc_status st = NASC_OK;
    for (int u = 0; u < o->ctl_steps && !st; u++) {
        memset(e->grad, 0, e->P * sizeof *e->grad);
        for (int k = 0; k < o->ctl_aggregate && !st; k++) {
            double lp, ent, pen, acc = 0, loss;
            st = nasc_oneshot_interrupted(e);
            if (!st) st = nasc_enas_ctl_run(e->ctl, e->d, &e->rng, &lp, &ent, &pen);
            /* language models: a random window, as the reference's valid_rl */
            if (e->lm) val_epoch = (int64_t)nasc_rng_below(&e->rng, (uint64_t)e->val_steps);
            if (!st) st = score_next(e, e->d, &val_epoch, &acc, &loss);
            if (st) break;
            double reward = acc + o->entropy_weight * ent;
            e->baseline -= (1.0 - o->baseline_decay) * (e->baseline - reward);
            nasc_enas_ctl_backward(e->ctl, -(reward - e->baseline) / o->ctl_aggregate,
                                   (double)o->skip_weight / o->ctl_aggregate, e->grad);
            sum_r += acc;
            sum_h += ent;
            done++;
            nasc_oneshot_progress p = {.phase = "controller", .epoch = e->epoch, .step = done, .steps = total,
                                       .loss = NAN, .acc = NAN, .reward = (float)(sum_r / (double)done),
                                       .baseline = (float)e->baseline, .entropy = (float)(sum_h / (double)done),
                                       .phase_end = done == total};
            nasc_oneshot_report(e, &p);
        }
        if (!st) ctl_adam(e);
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

static nasc_status save_state(enas *e) {
    char num[32];
    nasc_status st = nasc_strategy_put_floats(e->st, "enas/theta", nasc_enas_ctl_params(e->ctl), (int64_t)e->P);
    if (!st) st = nasc_strategy_put_floats(e->st, "enas/adam_v", e->adam_v, (int64_t)e->P);
    if (!st) st = nasc_params_set_meta(e->st, "strategy/name", "enas");
    if (!st) st = nasc_params_set_meta(e->st, "search/space", nasc_space_name(e->r->space));
    snprintf(num, sizeof num, "%d", e->epoch);
    if (!st) st = nasc_params_set_meta(e->st, "enas/epoch", num);
    snprintf(num, sizeof num, "%lld", (long long)e->ctl_updates);
    if (!st) st = nasc_params_set_meta(e->st, "enas/ctl_updates", num);
    if (!st) st = nasc_strategy_meta_f64(e->st, "enas/baseline", e->baseline);
    if (!st) st = nasc_strategy_meta_u64s(e->st, "enas/rng", e->rng.s, 4);
    if (!st) st = nasc_params_save(e->st, e->r->state_path);
    return st;
}

/* The store read from state_path: its metadata and controller tensors
 * checked and taken (the caller names the file on failure). */
static nasc_status load_state(enas *e) {
    nasc_ctx *ctx = e->ctx;
    const char *name = nasc_params_meta(e->st, "strategy/name");
    const char *space = nasc_params_meta(e->st, "search/space");
    if (!name || strcmp(name, "enas") != 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'strategy/name' is %s, not enas",
                          name ? name : "missing");
    if (!space || strcmp(space, nasc_space_name(e->r->space)) != 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'search/space' is %s, not %s",
                          space ? space : "missing", nasc_space_name(e->r->space));
    int64_t ep, cu;
    double bl;
    uint64_t rng[4];
    nasc_status st = nasc_strategy_read_i64(ctx, e->st, "enas/epoch", 0, e->o->epochs, &ep);
    if (!st) st = nasc_strategy_read_i64(ctx, e->st, "enas/ctl_updates", 0, INT64_C(1) << 50, &cu);
    if (!st) st = nasc_strategy_read_f64(ctx, e->st, "enas/baseline", &bl);
    if (!st) st = nasc_strategy_read_u64s(ctx, e->st, "enas/rng", rng, 4);
    if (!st && (!isfinite(bl) || !(rng[0] | rng[1] | rng[2] | rng[3])))
        st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'%s' is not a valid value",
                        isfinite(bl) ? "enas/rng" : "enas/baseline");
    if (!st) st = nasc_strategy_get_floats(ctx, e->st, "enas/theta", nasc_enas_ctl_params(e->ctl), (int64_t)e->P);
    if (!st) st = nasc_strategy_get_floats(ctx, e->st, "enas/adam_v", e->adam_v, (int64_t)e->P);
    if (st) return st;
    e->epoch = (int)ep;
    e->ctl_updates = cu;
    e->baseline = bl;
    memcpy(e->rng.s, rng, sizeof rng);
    return NASC_OK;
}

/* ------------------------------------------------------------------ */
/* The search                                                          */
/* ------------------------------------------------------------------ */

static nasc_status check_options(nasc_ctx *ctx, const nasc_enas_options *o) {
    const char *bad = NULL;
    if (o->epochs < 1) bad = "epochs must be >= 1";
    else if (o->batch < 1) bad = "the batch must be >= 1";
    else if (!(o->lr_max > 0) || !(o->lr_min >= 0) || o->lr_min > o->lr_max) bad = "need 0 <= lr_min <= lr_max, lr_max > 0";
    else if (o->lr_t0 < 0 || o->lr_tmul < 1) bad = "the restart period must be >= 0 and its multiplier >= 1";
    else if (!(o->weight_decay >= 0) || !(o->grad_clip >= 0) || !(o->aux_weight >= 0))
        bad = "weight decay, gradient clipping and the auxiliary weight must be >= 0";
    else if (!(o->ctl_lr > 0)) bad = "the controller learning rate must be > 0";
    else if (!(o->entropy_weight >= 0)) bad = "the entropy weight must be >= 0";
    else if (!(o->baseline_decay >= 0 && o->baseline_decay < 1)) bad = "the baseline decay must be in [0, 1)";
    else if (o->ctl_steps < 0 || o->ctl_aggregate < 1) bad = "controller steps must be >= 0, aggregate >= 1";
    else if (o->candidates < 1) bad = "at least one candidate";
    if (bad) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "ENAS options: %s", bad);
    return NASC_OK;
}

nasc_status nasc_oneshot_open_store(nasc_ctx *ctx, const char *path, nasc_param_store **st,
                                    nasc_status (*load)(void *ud), void *ud) {
    if (access(path, F_OK) != 0) {
        *st = nasc_params_create(ctx);
        return *st ? NASC_OK : NASC_ENOMEM;
    }
    nasc_status s = nasc_params_load(ctx, path, st);
    if (!s) s = load(ud);
    if (s) {
        char msg[600];
        nasc_diag_format(&ctx->diag, msg, sizeof msg);
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "corrupt one-shot state: %s", msg);
    }
    return NASC_OK;
}

static nasc_status load_enas(void *ud) { return load_state(ud); }

/* The one-shot store: resumed from state_path, or new. */
static nasc_status open_store(enas *e) { return nasc_oneshot_open_store(e->ctx, e->r->state_path, &e->st, load_enas, e); }

static nasc_status setup(enas *e) {
    nasc_ctx *ctx = e->ctx;
    nasc_oneshot_run *r = e->r;
    const nasc_enas_options *o = e->o;
    const char *sp = nasc_space_name(r->space);
    bool known = false; /* nasc_oneshot_search names the supported spaces */
    for (int i = 0; nasc_enas_spaces[i]; i++) known |= strcmp(sp, nasc_enas_spaces[i]) == 0;
    if (!known) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'%s' is not an ENAS space", sp);
    nasc_status st = check_options(ctx, o);
    if (st) return st;
    if (strcmp(sp, "enas-macro") == 0 && o->aux_weight > 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "--aux-weight %g: enas-macro nets have no auxiliary head (it follows a reduction cell)",
                          (double)o->aux_weight);
    e->n = nasc_space_count(r->space);
    int value;
    nasc_space_option(r->space, &value);
    bool macro = strcmp(sp, "enas-macro") == 0;
    e->lm = strcmp(sp, "enas-rnn") == 0;
    nasc_enas_ctl_options co = {o->lstm_size,   value, e->lm ? 4 : macro ? 6 : 5, o->tanh_constant, o->op_tanh_reduce,
                                o->temperature, macro, o->skip_target,          e->lm};
    e->ctl = nasc_enas_ctl_create(ctx, &co, o->seed ^ 0xe1a5c0de);
    if (!e->ctl) return ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    if (nasc_enas_ctl_count(e->ctl) != e->n)
        return nasc_error(ctx, NASC_EINTERNAL, NULL, NASC_NOLOC, "ENAS controller emits %u decisions, the space has %u",
                          nasc_enas_ctl_count(e->ctl), e->n);
    e->P = nasc_enas_ctl_size(e->ctl);
    e->adam_v = nasc_alloc(ctx, e->P * sizeof *e->adam_v);
    e->grad = nasc_alloc(ctx, e->P * sizeof *e->grad);
    e->d = nasc_alloc(ctx, (size_t)e->n * sizeof *e->d);
    if (!e->adam_v || !e->grad || !e->d) return NASC_ENOMEM;
    memset(e->adam_v, 0, e->P * sizeof *e->adam_v);
    nasc_rng_seed(&e->rng, o->seed ^ 0x0e5a5eedULL);

    if (o->train_subset < 0) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "ENAS options: a negative training subset");
    if (e->lm) {
        st = open_store(e);
        return st ? st : nasc_oneshot_lm_setup(e);
    }
    const nasc_dataset *ds = r->train;
    if (o->val_size < o->batch || o->val_size >= ds->n - o->batch)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "--val-size %lld: the validation split needs at least one batch (%d images) and must leave "
                          "one for training (%lld images in all)",
                          (long long)o->val_size, o->batch, (long long)ds->n);
    int64_t val_begin = ds->n - o->val_size;
    e->classes = ds->classes;
    /* the store: resumed, or new with the normalisation measured on the training split */
    bool resumed = access(r->state_path, F_OK) == 0;
    st = open_store(e);
    if (st) return st;
    if (!resumed) {
        float mean, std;
        nasc_dataset_stats(ds, 0, val_begin, &mean, &std);
        st = nasc_strategy_meta_f64(e->st, "data/mean", mean);
        if (!st) st = nasc_strategy_meta_f64(e->st, "data/std", std);
        if (st) return st;
    }
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = o->batch;
    bo.seed = o->seed;
    bo.shuffle = true;
    bo.drop_last = true;
    const char *m = nasc_params_meta(e->st, "data/mean"), *s = nasc_params_meta(e->st, "data/std");
    bo.mean = m ? strtof(m, NULL) : 0;
    bo.std = s ? strtof(s, NULL) : 1;
    if (!(bo.std > 0))
        return nasc_error(ctx, NASC_EINPUT, r->state_path, NASC_NOLOC, "corrupt one-shot state: 'data/std' is not > 0");
    int64_t train_end = o->train_subset > 0 && o->train_subset < val_begin ? o->train_subset : val_begin;
    st = nasc_batcher_create(ctx, ds, 0, train_end, &bo, &e->tb);
    bo.seed = o->seed ^ 0x7a11da7eULL;
    if (!st) st = nasc_batcher_create(ctx, ds, val_begin, ds->n, &bo, &e->vb);
    if (st) return st;
    size_t img = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    e->x = nasc_alloc(ctx, (size_t)o->batch * img * sizeof *e->x);
    e->y = nasc_alloc(ctx, (size_t)o->batch * sizeof *e->y);
    e->logits = nasc_alloc(ctx, (size_t)o->batch * (size_t)(e->classes > 0 ? e->classes : 1) * sizeof *e->logits);
    if (!e->x || !e->y || !e->logits) return NASC_ENOMEM;
    nasc_optim_options so = nasc_optim_options_default(NASC_OPTIM_SGD);
    so.momentum = 0.9f;
    so.nesterov = true;
    so.weight_decay = o->weight_decay;
    e->opt = nasc_optim_create(ctx, &so, e->st);
    if (!e->opt) return ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    return NASC_OK;
}

static nasc_status train_epoch(enas *e) {
    nasc_batcher_start(e->tb, e->epoch);
    int64_t steps = nasc_batcher_count(e->tb);
    float lr = nasc_oneshot_lr(e->o, e->epoch);
    double sum_loss = 0;
    int64_t correct = 0, seen = 0;
    e->compile_s = e->step_s = 0;
    e->created = 0;
    nasc_status st = NASC_OK;
    for (int64_t k = 0; k < steps && !st; k++) {
        st = nasc_oneshot_interrupted(e);
        if (st) break;
        if (nasc_batcher_next(e->tb, e->x, e->y) == 0) break;
        float loss = 0;
        int ok = 0;
        st = train_step(e, lr, k, &loss, &ok);
        if (st) break;
        sum_loss += loss;
        correct += ok;
        seen += e->o->batch;
        nasc_oneshot_progress p = {.phase = "train", .epoch = e->epoch, .step = k + 1, .steps = steps,
                                   .loss = (float)(sum_loss / (double)(k + 1)),
                                   .acc = (float)((double)correct / (double)seen), .reward = NAN, .baseline = NAN,
                                   .entropy = NAN, .phase_end = k + 1 == steps,
                                   .step_s = e->step_s / (double)(k + 1), .compile_s = e->compile_s / (double)(k + 1),
                                   .created = e->created};
        nasc_oneshot_report(e, &p);
    }
    return st;
}

/* After the epochs: candidates sampled from the controller, each scored on
 * one validation batch and appended to the journal (those already there
 * are checked, not scored again). */
static nasc_status derive(enas *e) {
    nasc_journal *j = e->r->journal;
    nasc_rng rng;
    nasc_rng_seed(&rng, e->o->seed ^ 0xde71e5edULL);
    int64_t val_epoch = INT64_C(1) << 40;
    if (!e->lm) nasc_batcher_start(e->vb, val_epoch);
    nasc_status st = NASC_OK;
    for (int i = 0; i < e->o->candidates && !st; i++) {
        double lp, ent, acc = 0, loss = NAN;
        st = nasc_oneshot_interrupted(e);
        if (!st) st = nasc_enas_ctl_run(e->ctl, e->d, &rng, &lp, &ent, NULL);
        /* images: the next validation batch; language models: window i */
        if (!st && !e->lm) st = next_val(e, &val_epoch);
        if (st) break;
        if (i < j->n) {
            if (memcmp(j->trials[i].d, e->d, (size_t)e->n * sizeof *e->d) != 0)
                st = nasc_error(e->ctx, NASC_EINPUT, j->path, (nasc_loc){i + 2, 1},
                                "candidate %d is not what the controller samples now: the journal belongs to another "
                                "run",
                                i);
            continue;
        }
        double t0 = nasc_oneshot_now();
        int64_t window = i;
        st = e->lm ? score_next(e, e->d, &window, &acc, &loss) : score(e, e->d, &acc);
        if (!st) st = nasc_oneshot_journal(e->r, e->d, acc, loss, e->lm ? e->o->bptt : 0, t0);
        nasc_oneshot_progress p = {.phase = "derive", .epoch = e->o->epochs - 1, .step = i + 1,
                                   .steps = e->o->candidates, .loss = NAN, .acc = NAN, .reward = (float)acc,
                                   .baseline = NAN, .entropy = NAN, .phase_end = i + 1 == e->o->candidates};
        if (!st) nasc_oneshot_report(e, &p);
    }
    return st;
}

nasc_status nasc_enas_search(nasc_ctx *ctx, nasc_oneshot_run *r) {
    enas e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.r = r;
    e.o = &r->enas;
    e.t0 = nasc_oneshot_now();
    e.arena.ctx = ctx;
    /* the supernet's shapes: many more primitives than one net */
    nasc_status st = nasc_backend_reserve_primitives(ctx, 8192);
    if (!st) st = setup(&e);
    while (!st && e.epoch < e.o->epochs) {
        st = e.lm ? nasc_oneshot_lm_train_epoch(&e) : train_epoch(&e);
        if (!st) st = controller_phase(&e);
        if (!st) {
            e.epoch++;
            st = save_state(&e);
        }
    }
    if (!st) st = derive(&e);
    if (e.st) {
        r->store_bytes = 0;
        r->store_tensors = 0;
        for (uint32_t i = 0; i < e.st->n; i++) {
            r->store_bytes += e.st->tensors[i]->numel * (int64_t)sizeof(float);
            r->store_tensors++;
        }
    }
    nasc_oneshot_lm_free(&e);
    nasc_net_arena_free(&e.arena);
    nasc_optim_destroy(e.opt);
    nasc_batcher_destroy(e.tb);
    nasc_batcher_destroy(e.vb);
    nasc_params_destroy(e.st);
    nasc_enas_ctl_destroy(e.ctl);
    nasc_free(ctx, e.adam_v);
    nasc_free(ctx, e.grad);
    nasc_free(ctx, e.d);
    nasc_free(ctx, e.x);
    nasc_free(ctx, e.y);
    nasc_free(ctx, e.logits);
    return st;
}

nasc_status nasc_enas_evaluate(nasc_ctx *ctx, const nasc_space *sp, nasc_param_store *store, uint64_t seed,
                               const uint32_t *d, const nasc_dataset *ds, int64_t begin, int64_t end, int batch,
                               int threads, double *acc) {
    *acc = NAN;
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    nasc_batcher *b = NULL;
    float *x = NULL, *logits = NULL;
    int32_t *y = NULL;
    nasc_status st = shared_prim(sp, NULL, NULL, 0, store, seed, d, false, &prim);
    nasc_net_options no = nasc_net_options_default();
    no.batch = batch;
    no.threads = threads;
    no.mode = NASC_MODE_INFER;
    no.bn_batch_stats = true;
    if (!st) st = nasc_net_compile(ctx, prim, store, &no, &net);
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = batch;
    bo.drop_last = true;
    const char *m = nasc_params_meta(store, "data/mean"), *s = nasc_params_meta(store, "data/std");
    bo.mean = m ? strtof(m, NULL) : 0;
    bo.std = s ? strtof(s, NULL) : 1;
    if (!st) st = nasc_batcher_create(ctx, ds, begin, end, &bo, &b);
    if (!st) {
        x = nasc_alloc(ctx, (size_t)batch * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w * sizeof *x);
        y = nasc_alloc(ctx, (size_t)batch * sizeof *y);
        logits = nasc_alloc(ctx, (size_t)batch * (size_t)ds->classes * sizeof *logits);
        if (!x || !y || !logits) st = NASC_ENOMEM;
    }
    int64_t ok = 0, seen = 0;
    if (!st) nasc_batcher_start(b, 0);
    while (!st && nasc_batcher_next(b, x, y) > 0) {
        st = nasc_net_set_input(net, 0, x);
        if (!st) st = nasc_net_forward(net);
        if (!st) st = nasc_net_read(net, nasc_str(prim, prim->values[prim->outputs[0]].name), logits);
        if (!st) ok += nasc_oneshot_correct(logits, y, batch, ds->classes);
        seen += batch;
    }
    if (!st && seen == 0)
        st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "no full batch of %d images in [%lld, %lld)", batch,
                        (long long)begin, (long long)end);
    if (!st) *acc = (double)ok / (double)seen;
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_free(ctx, logits);
    nasc_batcher_destroy(b);
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    return st;
}
