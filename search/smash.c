/* smash.c - SMASH: one hypernetwork H trained to generate the weights of
 * every architecture of the smash space, then architectures ranked by
 * their validation accuracy with generated weights (docs/smash.md).
 *
 * A training step draws a uniformly random architecture, lowers it with
 * its encoding and H as one program (nasc_smash_child_make,
 * nasc_lower_options.hyper), and steps Adam on what that program read:
 * H's tensors, the block tensors the main convolutions are cut from, and
 * the stem, transitions, batch norms and head, all in one store. The
 * store (with the optimizer's moments, the random stream and the epoch)
 * is saved to RUN/oneshot.nasc after every epoch. Then `candidates`
 * random architectures, and `perturb` perturbations of the best of them,
 * are scored on the validation split and appended to the journal; the
 * search's final training trains the best from scratch with free
 * weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nasc_export.h"
#include "nasc_frontend.h"
#include "oneshot_internal.h"
#include "strategies_internal.h"

const char *const nasc_smash_spaces[] = {"smash", NULL};

nasc_smash_options nasc_smash_options_default(void) {
    nasc_smash_options o;
    memset(&o, 0, sizeof o);
    o.epochs = 3;
    o.batch = 50;
    o.lr = 1e-3f;
    o.beta1 = 0.5f;
    o.beta2 = 0.999f;
    o.eps = 1e-4f;
    o.weight_decay = 1e-4f;
    o.val_size = 5000;
    o.candidates = 500;
    o.perturb = 100;
    o.perturb_prob = 0.05f;
    o.score_images = 1000;
    o.seed = NASC_DEFAULT_SEED;
    return o;
}

typedef struct smash {
    nasc_ctx *ctx;
    nasc_oneshot_run *r;
    const nasc_smash_options *o;
    nasc_param_store *st; /* H, the shared tensors, the optimizer's state, meta */
    nasc_optimizer *opt;
    nasc_rng rng; /* the architectures of the training steps */
    nasc_net_arena arena;
    uint32_t *d, n;
    int epoch; /* epochs done */
    double t0, compile_s, step_s;
    int64_t created;
    nasc_batcher *tb, *vb;
    float *x, *logits;
    int32_t *y;
    int classes;
    int64_t val_begin, val_end;
} smash;

static double now(void) { return nasc_oneshot_now(); }

static nasc_status interrupted(smash *e) {
    if (e->r->stop && *e->r->stop) return nasc_error(e->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    return NASC_OK;
}

static void report(smash *e, nasc_oneshot_progress *p) {
    p->epochs = e->o->epochs;
    p->seconds = now() - e->t0;
    if (e->r->progress) e->r->progress(e->r->ud, p);
}

/* Child d lowered with H into *prim (its view in *c), its tensors in st
 * (those it reads first are initialised from seed and their names). */
static nasc_status child_prim(const nasc_space *sp, const char *const *keys, const char *const *vals, int n_set,
                              nasc_param_store *st, uint64_t seed, const uint32_t *d, nasc_smash_child *c,
                              nasc_module **prim) {
    *prim = NULL;
    nasc_module *arch = NULL;
    nasc_status s = nasc_smash_child_make(sp, d, c);
    if (!s) s = nasc_space_decode(sp, d, &arch);
    if (!s) s = nasc_arch_apply_overrides(arch, keys, vals, n_set);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.hyper = &c->hyper;
    if (!s) s = nasc_lower_with(arch, &lo, prim);
    nasc_module_destroy(arch);
    if (!s) s = nasc_params_init(st, *prim, seed);
    if (s) {
        nasc_module_destroy(*prim);
        *prim = NULL;
    }
    return s;
}

/* Accuracy of child d with generated weights on the batches of b (from
 * its start), at most `images` of them (0: all). */
typedef struct scorer {
    nasc_ctx *ctx;
    const nasc_space *sp;
    const char *const *keys, *const *vals;
    int n_set;
    nasc_param_store *st;
    uint64_t seed;
    nasc_batcher *b;
    float *x, *logits;
    int32_t *y;
    int batch, threads, classes;
    int64_t images;
    nasc_net_arena *arena;
} scorer;

static nasc_status score(const scorer *s, const uint32_t *d, double *acc) {
    nasc_smash_child c;
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    nasc_status st = child_prim(s->sp, s->keys, s->vals, s->n_set, s->st, s->seed, d, &c, &prim);
    nasc_net_options no = nasc_net_options_default();
    no.batch = s->batch;
    no.threads = s->threads;
    no.arena = s->arena;
    no.mode = NASC_MODE_INFER;
    no.bn_batch_stats = true;
    if (!st) st = nasc_net_compile(s->ctx, prim, s->st, &no, &net);
    if (!st) st = nasc_net_set_input(net, 1, c.enc);
    int64_t ok = 0, seen = 0;
    if (!st) nasc_batcher_start(s->b, 0);
    while (!st && (s->images <= 0 || seen < s->images) && nasc_batcher_next(s->b, s->x, s->y) > 0) {
        st = nasc_net_set_input(net, 0, s->x);
        if (!st) st = nasc_net_forward(net);
        if (!st) st = nasc_net_read(net, nasc_str(prim, prim->values[prim->outputs[0]].name), s->logits);
        if (!st) ok += nasc_oneshot_correct(s->logits, s->y, s->batch, s->classes);
        seen += s->batch;
    }
    if (!st && seen == 0)
        st = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the validation split holds no full batch of %d images",
                        s->batch);
    if (!st) *acc = (double)ok / (double)seen;
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    nasc_smash_child_free(&c);
    return st;
}

/* ------------------------------------------------------------------ */
/* Training H                                                          */
/* ------------------------------------------------------------------ */

static nasc_status train_step(smash *e, float lr, int64_t step, float *loss, int *correct) {
    double t0 = now();
    nasc_space_sample(e->r->space, &e->rng, e->d);
    nasc_smash_child c;
    nasc_module *prim = NULL;
    nasc_net *net = NULL;
    nasc_status st = child_prim(e->r->space, e->r->set_keys, e->r->set_vals, e->r->n_set, e->st, e->o->seed, e->d, &c,
                                &prim);
    nasc_net_options no = nasc_net_options_default();
    no.batch = e->o->batch;
    no.threads = e->o->threads;
    no.arena = &e->arena;
    no.mode = NASC_MODE_TRAIN;
    if (!st) st = nasc_net_compile(e->ctx, prim, e->st, &no, &net);
    if (!st) {
        nasc_net_stats ns;
        nasc_net_get_stats(net, &ns);
        e->created = ns.n_created < 0 || e->created < 0 ? -1 : e->created + ns.n_created;
        e->compile_s += now() - t0;
    }
    if (!st) st = nasc_net_set_input(net, 0, e->x);
    if (!st) st = nasc_net_set_input(net, 1, c.enc);
    if (!st) st = nasc_net_forward(net);
    if (!st) st = nasc_net_loss(net, e->y, loss, correct);
    if (!st && !isfinite(*loss))
        st = nasc_error(e->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                        "hypernetwork training diverged: the loss is %g at epoch %d, step %lld (try a lower --lr); "
                        "the checkpoint of the last finished epoch is kept",
                        (double)*loss, e->epoch + 1, (long long)step + 1);
    if (!st) st = nasc_net_backward(net);
    if (!st) {
        const nasc_param_grad *g;
        uint32_t ng = nasc_net_grads(net, &g);
        st = nasc_optim_step(e->opt, g, ng, lr);
    }
    nasc_net_destroy(net);
    nasc_module_destroy(prim);
    nasc_smash_child_free(&c);
    e->step_s += now() - t0;
    return st;
}

static nasc_status train_epoch(smash *e) {
    nasc_batcher_start(e->tb, e->epoch);
    int64_t steps = nasc_batcher_count(e->tb), total = steps * e->o->epochs;
    double sum_loss = 0;
    int64_t correct = 0, seen = 0;
    e->compile_s = e->step_s = 0;
    e->created = 0;
    nasc_status st = NASC_OK;
    for (int64_t k = 0; k < steps && !st; k++) {
        st = interrupted(e);
        if (st || nasc_batcher_next(e->tb, e->x, e->y) == 0) break;
        /* the reference's cosine over every step of the run */
        int64_t t = (int64_t)e->epoch * steps + k;
        float lr = 0.5f * e->o->lr * (1.0f + cosf(3.14159265f * (float)t / (float)total));
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
        report(e, &p);
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

static nasc_status save_state(smash *e) {
    char num[32];
    nasc_status st = nasc_params_set_meta(e->st, "strategy/name", "smash");
    if (!st) st = nasc_params_set_meta(e->st, "search/space", nasc_space_name(e->r->space));
    snprintf(num, sizeof num, "%d", e->epoch);
    if (!st) st = nasc_params_set_meta(e->st, "smash/epoch", num);
    if (!st) st = nasc_strategy_meta_u64s(e->st, "smash/rng", e->rng.s, 4);
    snprintf(num, sizeof num, "%llu", (unsigned long long)e->o->seed);
    if (!st) st = nasc_params_set_meta(e->st, "smash/seed", num);
    if (!st) st = nasc_params_save(e->st, e->r->state_path);
    return st;
}

static nasc_status load_state(smash *e) {
    nasc_ctx *ctx = e->ctx;
    const char *name = nasc_params_meta(e->st, "strategy/name");
    const char *space = nasc_params_meta(e->st, "search/space");
    if (!name || strcmp(name, "smash") != 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'strategy/name' is %s, not smash", name ? name : "missing");
    if (!space || strcmp(space, nasc_space_name(e->r->space)) != 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'search/space' is %s, not %s", space ? space : "missing",
                          nasc_space_name(e->r->space));
    int64_t ep;
    uint64_t rng[4];
    nasc_status st = nasc_strategy_read_i64(ctx, e->st, "smash/epoch", 0, e->o->epochs, &ep);
    if (!st) st = nasc_strategy_read_u64s(ctx, e->st, "smash/rng", rng, 4);
    if (!st && !(rng[0] | rng[1] | rng[2] | rng[3]))
        st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'smash/rng' is not a valid value");
    const char *sd = nasc_params_meta(e->st, "data/std");
    if (!st && !(sd && strtof(sd, NULL) > 0))
        st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'data/std' is missing or not > 0");
    /* every tensor finite: a corrupt hypernetwork is refused here, not
     * found later as a diverged loss */
    for (uint32_t i = 0; i < e->st->n && !st; i++) {
        const nasc_tensor *t = e->st->tensors[i];
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k])) {
                st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor '%s' holds a value that is not finite",
                                t->name);
                break;
            }
    }
    if (st) return st;
    e->epoch = (int)ep;
    memcpy(e->rng.s, rng, sizeof rng);
    return NASC_OK;
}

static nasc_status load_smash(void *ud) { return load_state(ud); }

static nasc_status check_options(nasc_ctx *ctx, const nasc_smash_options *o) {
    const char *bad = NULL;
    if (o->epochs < 1) bad = "epochs must be >= 1";
    else if (o->batch < 1) bad = "the batch must be >= 1";
    else if (!(o->lr > 0)) bad = "the learning rate must be > 0";
    else if (!(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0))
        bad = "Adam needs betas in [0, 1) and eps > 0";
    else if (!(o->weight_decay >= 0)) bad = "the weight decay must be >= 0";
    else if (o->candidates < 1) bad = "at least one candidate";
    else if (o->perturb < 0) bad = "perturbations must be >= 0";
    else if (!(o->perturb_prob > 0 && o->perturb_prob <= 1)) bad = "the perturbation probability must be in (0, 1]";
    else if (o->train_subset < 0 || o->score_images < 0) bad = "a negative number of images";
    if (bad) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "SMASH options: %s", bad);
    return NASC_OK;
}

static nasc_status setup(smash *e) {
    nasc_ctx *ctx = e->ctx;
    nasc_oneshot_run *r = e->r;
    const nasc_smash_options *o = e->o;
    nasc_status st = check_options(ctx, o);
    if (st) return st;
    const nasc_dataset *ds = r->train;
    if (!ds) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "SMASH searches image classifiers: no images");
    if (o->val_size < o->batch || o->val_size >= ds->n - o->batch)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "--val-size %lld: the validation split needs at least one batch (%d images) and must leave "
                          "one for training (%lld images in all)",
                          (long long)o->val_size, o->batch, (long long)ds->n);
    e->n = nasc_space_count(r->space);
    e->d = nasc_alloc(ctx, (size_t)(e->n + 1) * sizeof *e->d);
    if (!e->d) return NASC_ENOMEM;
    nasc_rng_seed(&e->rng, o->seed ^ 0x53a54e7ULL);
    e->val_begin = ds->n - o->val_size;
    e->val_end = ds->n;
    e->classes = ds->classes;
    bool resumed = access(r->state_path, F_OK) == 0;
    st = nasc_oneshot_open_store(ctx, r->state_path, &e->st, load_smash, e);
    if (st) return st;
    if (!resumed) {
        float mean, sd;
        nasc_dataset_stats(ds, 0, e->val_begin, &mean, &sd);
        st = nasc_strategy_meta_f64(e->st, "data/mean", mean);
        if (!st) st = nasc_strategy_meta_f64(e->st, "data/std", sd);
        if (st) return st;
    }
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = o->batch;
    bo.seed = o->seed;
    bo.shuffle = true;
    bo.drop_last = true;
    bo.mean = strtof(nasc_params_meta(e->st, "data/mean"), NULL);
    bo.std = strtof(nasc_params_meta(e->st, "data/std"), NULL);
    int64_t train_end = o->train_subset > 0 && o->train_subset < e->val_begin ? o->train_subset : e->val_begin;
    st = nasc_batcher_create(ctx, ds, 0, train_end, &bo, &e->tb);
    bo.shuffle = false;
    if (!st) st = nasc_batcher_create(ctx, ds, e->val_begin, e->val_end, &bo, &e->vb);
    if (st) return st;
    size_t img = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    e->x = nasc_alloc(ctx, (size_t)o->batch * img * sizeof *e->x);
    e->y = nasc_alloc(ctx, (size_t)o->batch * sizeof *e->y);
    e->logits = nasc_alloc(ctx, (size_t)o->batch * (size_t)(e->classes > 0 ? e->classes : 1) * sizeof *e->logits);
    if (!e->x || !e->y || !e->logits) return NASC_ENOMEM;
    nasc_optim_options ao = nasc_optim_options_default(NASC_OPTIM_ADAM);
    ao.beta1 = o->beta1;
    ao.beta2 = o->beta2;
    ao.eps = o->eps;
    ao.weight_decay = o->weight_decay;
    ao.no_decay_prefix = "hyper.";
    /* a shared tensor is stepped only when a sampled child reads it */
    ao.per_tensor_steps = true;
    e->opt = nasc_optim_create(ctx, &ao, e->st);
    if (!e->opt) return ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    return NASC_OK;
}

/* ------------------------------------------------------------------ */
/* Ranking                                                             */
/* ------------------------------------------------------------------ */

/* Candidate i into e->d: a uniformly random architecture for the first
 * `candidates`, then a perturbation of `best` (each decision redrawn
 * with probability perturb_prob, at least one changed). Drawn from
 * streams of the seed and i alone, so a resumed run draws the same. */
static void candidate(smash *e, int i, const uint32_t *best) {
    nasc_rng r;
    nasc_rng_seed(&r, e->o->seed ^ 0x5c0e5ULL ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL));
    if (i < e->o->candidates) {
        nasc_space_sample(e->r->space, &r, e->d);
        return;
    }
    const nasc_decision *dc = nasc_space_decisions(e->r->space);
    memcpy(e->d, best, (size_t)e->n * sizeof *e->d);
    bool changed = false;
    for (int tries = 0; !changed && tries < 64; tries++)
        for (uint32_t k = 0; k < e->n; k++) {
            if (dc[k].card < 2 || nasc_rng_uniform(&r) >= e->o->perturb_prob) continue;
            e->d[k] = nasc_strategy_random_value(&dc[k], &r);
            changed |= e->d[k] != best[k];
        }
}

static nasc_status rank(smash *e) {
    nasc_journal *j = e->r->journal;
    int total = e->o->candidates + e->o->perturb;
    uint32_t *best = nasc_alloc(e->ctx, (size_t)(e->n + 1) * sizeof *best);
    if (!best) return NASC_ENOMEM;
    double best_acc = -1;
    scorer s = {e->ctx,      e->r->space, e->r->set_keys, e->r->set_vals, e->r->n_set, e->st,      e->o->seed,
                e->vb,       e->x,        e->logits,      e->y,           e->o->batch, e->o->threads, e->classes,
                e->o->score_images, &e->arena};
    nasc_status st = NASC_OK;
    double t_start = now();
    for (int i = 0; i < total && !st; i++) {
        st = interrupted(e);
        if (st) break;
        if (i == e->o->candidates && best_acc < 0) break;
        candidate(e, i, best);
        double acc = 0;
        if (i < (int)j->n) {
            if (memcmp(j->trials[i].d, e->d, (size_t)e->n * sizeof *e->d) != 0) {
                st = nasc_error(e->ctx, NASC_EINPUT, j->path, (nasc_loc){i + 2, 1},
                                "candidate %d is not what this search draws: the journal belongs to another run", i);
                break;
            }
            acc = j->trials[i].reward;
        } else {
            double t0 = now();
            st = score(&s, e->d, &acc);
            if (!st) st = nasc_oneshot_journal(e->r, e->d, acc, NAN, 0, t0);
        }
        /* the best of the random candidates is what gets perturbed */
        if (!st && i < e->o->candidates && acc > best_acc) {
            best_acc = acc;
            memcpy(best, e->d, (size_t)e->n * sizeof *best);
        }
        nasc_oneshot_progress p = {.phase = "derive", .epoch = e->o->epochs - 1, .step = i + 1, .steps = total,
                                   .loss = NAN, .acc = NAN, .reward = (float)acc, .baseline = NAN, .entropy = NAN,
                                   .phase_end = i + 1 == total, .step_s = (now() - t_start) / (double)(i + 1)};
        if (!st) report(e, &p);
    }
    nasc_free(e->ctx, best);
    return st;
}

nasc_status nasc_smash_search(nasc_ctx *ctx, nasc_oneshot_run *r) {
    smash e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.r = r;
    e.o = &r->smash;
    e.t0 = now();
    e.arena.ctx = ctx;
    nasc_status st = nasc_backend_reserve_primitives(ctx, 8192);
    if (!st) st = setup(&e);
    while (!st && e.epoch < e.o->epochs) {
        st = train_epoch(&e);
        if (!st) {
            e.epoch++;
            st = save_state(&e);
        }
    }
    if (!st) st = rank(&e);
    if (e.st) {
        r->store_bytes = 0;
        r->store_tensors = 0;
        for (uint32_t i = 0; i < e.st->n; i++) {
            r->store_bytes += e.st->tensors[i]->numel * (int64_t)sizeof(float);
            r->store_tensors++;
        }
    }
    nasc_net_arena_free(&e.arena);
    nasc_optim_destroy(e.opt);
    nasc_batcher_destroy(e.tb);
    nasc_batcher_destroy(e.vb);
    nasc_params_destroy(e.st);
    nasc_free(ctx, e.d);
    nasc_free(ctx, e.x);
    nasc_free(ctx, e.y);
    nasc_free(ctx, e.logits);
    return st;
}

nasc_status nasc_smash_evaluate(nasc_ctx *ctx, const nasc_space *sp, nasc_param_store *store, const uint32_t *d,
                                const nasc_dataset *ds, int64_t begin, int64_t end, int batch, int threads,
                                double *acc) {
    *acc = NAN;
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = batch;
    bo.drop_last = true;
    bo.shuffle = false; /* the batches the search scores on: batch norms use batch statistics */
    const char *m = nasc_params_meta(store, "data/mean"), *sd = nasc_params_meta(store, "data/std");
    bo.mean = m ? strtof(m, NULL) : 0;
    bo.std = sd ? strtof(sd, NULL) : 1;
    nasc_batcher *b = NULL;
    nasc_status st = nasc_batcher_create(ctx, ds, begin, end, &bo, &b);
    float *x = NULL, *logits = NULL;
    int32_t *y = NULL;
    if (!st) {
        x = nasc_alloc(ctx, (size_t)batch * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w * sizeof *x);
        y = nasc_alloc(ctx, (size_t)batch * sizeof *y);
        logits = nasc_alloc(ctx, (size_t)batch * (size_t)ds->classes * sizeof *logits);
        if (!x || !y || !logits) st = NASC_ENOMEM;
    }
    nasc_net_arena arena = {0};
    arena.ctx = ctx;
    const char *seed = nasc_params_meta(store, "smash/seed");
    scorer s = {ctx, sp, NULL, NULL, 0, store, seed ? strtoull(seed, NULL, 10) : NASC_DEFAULT_SEED, b, x, logits, y,
                batch, threads, ds->classes, 0, &arena};
    if (!st) st = score(&s, d, acc);
    nasc_net_arena_free(&arena);
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_free(ctx, logits);
    nasc_batcher_destroy(b);
    return st;
}
