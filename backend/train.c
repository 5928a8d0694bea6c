/* train.c - the training loop and evaluation over a byte data set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_internal.h" /* nb_xent_row */
#include "train_internal.h"

nasc_train_options nasc_train_options_default(void) {
    nasc_train_options o = {0};
    o.epochs = 10;
    o.batch = 64;
    o.lr = 0.05f;
    o.warmup_epochs = 1;
    o.seed = NASC_DEFAULT_SEED;
    o.optim = nasc_optim_options_default(NASC_OPTIM_SGD);
    o.val_size = 10000;
    return o;
}

/* DARTS's final training (quark0/darts, cnn/train.py defaults): SGD
 * 0.025 with momentum 0.9 and weight decay 3e-4, batch 96, cosine without
 * warm-up, random crops after padding by 4 and flips, cutout 16, an
 * auxiliary head weighted 0.4, drop-path 0.2, gradient norm clipped to 5;
 * plain (not Nesterov) momentum, as there. */
void nasc_train_final_recipe(nasc_train_options *o) {
    o->optim = nasc_optim_options_default(NASC_OPTIM_SGD);
    o->optim.nesterov = false;
    o->lr = 0.025f;
    o->batch = 96;
    o->warmup_epochs = 0;
    o->crop_pad = 4;
    o->flip = true;
    o->cutout = 16;
    o->aux_weight = 0.4f;
    o->drop_path = 0.2f;
    o->grad_clip = 5.0f;
}

double nb_train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float meta_float(const nasc_param_store *s, const char *key, float dflt) {
    const char *v = nasc_params_meta(s, key);
    return v ? strtof(v, NULL) : dflt;
}

nasc_status nb_set_meta_num(nasc_param_store *s, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return nasc_params_set_meta(s, key, buf);
}

nasc_status nb_end_epoch(const nasc_train_options *o, nasc_train_progress *p, nasc_param_store *store, int e,
                         float val_acc, float val_loss, nasc_train_result *out) {
    out->val_acc = val_acc;
    out->val_loss = val_loss;
    nasc_status st = nb_set_meta_num(store, "train/epoch", e + 1);
    if (st) return st;
    p->epoch_end = true;
    p->val_acc = val_acc;
    p->val_loss = val_loss;
    return o->progress ? o->progress(o->ud, p) : NASC_OK;
}

nasc_status nb_report_step(const nasc_train_options *o, nasc_train_progress *p, int e, int64_t step, int64_t global,
                           int64_t run_steps, int64_t total_steps, float loss, float acc, double units_per_step,
                           double t0, float lr) {
    double dt = nb_train_now() - t0;
    p->epoch = e;
    p->step = step;
    p->global_step = global;
    p->loss = loss;
    p->acc = acc;
    p->images_per_s = dt > 0 ? (double)run_steps * units_per_step / dt : 0;
    p->eta_s = run_steps ? dt / (double)run_steps * (double)(total_steps - global) : 0;
    p->epoch_end = false;
    p->val_acc = p->val_loss = NAN;
    p->lr = lr;
    return o->progress ? o->progress(o->ud, p) : NASC_OK;
}

/* Whether net input v is a drop-path mask: "<...>.drop" of shape (N, 1, 1, 1). */
static bool is_mask(const nasc_module *prim, uint32_t v) {
    const char *name = nasc_str(prim, prim->values[v].name);
    size_t n = strlen(name), k = strlen("." NASC_DROP_PATH_SUFFIX);
    const nasc_type *t = &prim->values[v].type;
    return n > k && strcmp(name + n - k, "." NASC_DROP_PATH_SUFFIX) == 0 && t->rank == 4 && t->dims[0] == NASC_BATCH &&
           t->dims[1] == 1 && t->dims[2] == 1 && t->dims[3] == 1;
}

/* The net's first input must be (N, C, H, W) of the data set's image shape,
 * any other input a drop-path mask, and output 0 (N, classes) with at least
 * as many classes as the labels use; so must an output 1 (an auxiliary
 * head). Sets *n_masks. */
static nasc_status check_shapes(nasc_ctx *ctx, const nasc_module *prim, const nasc_dataset *d, uint32_t *n_masks) {
    int64_t in = -1;
    uint32_t n_in = 0, masks = 0;
    for (uint32_t v = 0; v < prim->n_values; v++) {
        if (prim->values[v].kind != NASC_VAL_INPUT) continue;
        if (n_in++ == 0)
            in = v;
        else if (is_mask(prim, v))
            masks++;
        else
            return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                              "training needs a net with one image input (and drop-path masks); input '%s' is neither",
                              nasc_str(prim, prim->values[v].name));
    }
    if (n_in < 1 || prim->n_outputs < 1)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "training needs a net with one image input and a logits output (this one has %u inputs)",
                          n_in);
    const nasc_type *t = &prim->values[in].type;
    if (t->rank != 4 || t->dims[1] != d->c || t->dims[2] != d->h || t->dims[3] != d->w) {
        char have[64];
        nasc_type_format(t, have, sizeof have);
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "the net's input is %s but the data set's images are %dx%dx%d (use --set input=%dx%dx%d)",
                          have, d->c, d->h, d->w, d->c, d->h, d->w);
    }
    for (uint32_t o = 0; o < prim->n_outputs && o < 2; o++) {
        const nasc_type *ot = &prim->values[prim->outputs[o]].type;
        if (ot->rank != 2 || ot->dims[1] < d->classes)
            return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                              "the net's output %u must be (N, %d) logits for this data set (use --set classes=%d)", o,
                              d->classes, d->classes);
    }
    if (n_masks) *n_masks = masks;
    return NASC_OK;
}

void nasc_drop_path_masks(float *out, int64_t n, float p, uint64_t seed, int64_t step) {
    nasc_rng r;
    nasc_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(step + 1)));
    float keep = 1.0f - p, scale = 1.0f / keep;
    for (int64_t i = 0; i < n; i++) out[i] = p > 0 ? (nasc_rng_uniform(&r) < keep ? scale : 0.0f) : 1.0f;
}

/* Fill the n_masks drop-path mask inputs (inputs 1...) of net from buf
 * (n_masks * batch floats): nasc_drop_path_masks for the step. */
static nasc_status fill_masks(nasc_net *net, uint32_t n_masks, int batch, float p, uint64_t seed, int64_t step,
                              float *buf) {
    nasc_drop_path_masks(buf, (int64_t)n_masks * batch, p, seed, step);
    for (uint32_t m = 0; m < n_masks; m++) {
        nasc_status st = nasc_net_set_input(net, 1 + m, buf + (size_t)m * batch);
        if (st) return st;
    }
    return NASC_OK;
}

nasc_status nasc_evaluate(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_dataset *d,
                          int64_t begin, int64_t end, int batch, int threads, float *acc, float *loss) {
    uint32_t n_masks = 0;
    nasc_status st = check_shapes(ctx, prim, d, &n_masks);
    if (st) return st;
    if (end <= begin) {
        *acc = *loss = NAN;
        return NASC_OK;
    }
    nasc_net_options no = nasc_net_options_default();
    no.batch = batch;
    no.mode = NASC_MODE_INFER;
    no.fuse = true;
    no.fixed_weights = true; /* nothing writes the store during the evaluation */
    no.threads = threads;
    nasc_net *net = NULL;
    nasc_batcher *b = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = batch;
    bo.shuffle = false;
    bo.mean = meta_float(store, "data/mean", 0);
    bo.std = meta_float(store, "data/std", 1);
    st = nasc_net_compile(ctx, prim, store, &no, &net);
    if (!st) st = nasc_batcher_create(ctx, d, begin, end, &bo, &b);
    if (!st) {
        x = nasc_alloc(ctx, (size_t)batch * d->c * d->h * d->w * sizeof *x);
        y = nasc_alloc(ctx, (size_t)batch * sizeof *y);
        if (!x || !y) st = NASC_ENOMEM;
    }
    const nasc_type *ot = &prim->values[prim->outputs[0]].type;
    int k = (int)ot->dims[1];
    float *logits = st ? NULL : nasc_alloc(ctx, (size_t)batch * k * sizeof *logits);
    float *ones = st ? NULL : nasc_alloc(ctx, (size_t)batch * (n_masks ? n_masks : 1) * sizeof *ones);
    if (!st && (!logits || !ones)) st = NASC_ENOMEM;
    double total_loss = 0;
    int64_t correct = 0, seen = 0;
    if (!st) nasc_batcher_start(b, 0);
    const char *out_name = nasc_str(prim, prim->values[prim->outputs[0]].name);
    while (!st) {
        int n = nasc_batcher_next(b, x, y);
        if (n == 0) break;
        st = nasc_net_set_input(net, 0, x);
        if (!st) st = fill_masks(net, n_masks, batch, 0, 0, 0, ones); /* p = 0: all ones */
        if (!st) st = nasc_net_forward(net);
        if (!st) st = nasc_net_read(net, out_name, logits);
        for (int i = 0; !st && i < n; i++) {
            int arg;
            total_loss += nb_xent_row(logits + (size_t)i * k, k, y[i], &arg, NULL, 1, 0);
            correct += arg == y[i];
        }
        seen += n;
    }
    if (!st) {
        *acc = (float)((double)correct / (double)seen);
        *loss = (float)(total_loss / (double)seen);
    }
    nasc_free(ctx, logits);
    nasc_free(ctx, ones);
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_batcher_destroy(b);
    nasc_net_destroy(net);
    return st;
}

/* The weight average: "ema/<name>" for every store tensor that is not
 * optimizer state or an average itself (parameters and batch-norm running
 * statistics), started at the tensor's value. */
static bool ema_covers(const char *name) { return strncmp(name, "opt/", 4) != 0 && strncmp(name, "ema/", 4) != 0; }

static nasc_status ema_update(nasc_param_store *s, float decay) {
    char name[4200];
    uint32_t n = s->n; /* the averages created below are not averaged */
    for (uint32_t i = 0; i < n; i++) {
        nasc_tensor *t = s->tensors[i];
        if (!ema_covers(t->name)) continue;
        snprintf(name, sizeof name, "ema/%s", t->name);
        nasc_tensor *a = nasc_params_find(s, name);
        if (!a) {
            a = nasc_params_get(s, name, t->rank, t->dims);
            if (!a) return s->ctx->diag.status ? s->ctx->diag.status : NASC_ENOMEM;
            t = s->tensors[i]; /* the store's table may have moved, not the tensor */
            memcpy(a->data, t->data, (size_t)t->numel * sizeof *a->data);
            continue;
        }
        if (a->numel != t->numel)
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'%s' does not have the shape of '%s'", name,
                              t->name);
        for (int64_t j = 0; j < t->numel; j++) a->data[j] = decay * a->data[j] + (1 - decay) * t->data[j];
    }
    return NASC_OK;
}

/* Exchange every tensor with its average (twice is a no-op). */
static void ema_swap(nasc_param_store *s) {
    char name[4200];
    for (uint32_t i = 0; i < s->n; i++) {
        nasc_tensor *t = s->tensors[i];
        if (!ema_covers(t->name)) continue;
        snprintf(name, sizeof name, "ema/%s", t->name);
        nasc_tensor *a = nasc_params_find(s, name);
        if (!a || a->numel != t->numel) continue;
        for (int64_t j = 0; j < t->numel; j++) {
            float v = t->data[j];
            t->data[j] = a->data[j];
            a->data[j] = v;
        }
    }
}

nasc_status nasc_train(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_dataset *train,
                       const nasc_train_options *o, nasc_train_result *out) {
    memset(out, 0, sizeof *out);
    out->val_acc = out->val_loss = NAN;
    uint32_t n_masks = 0;
    const nasc_module *eval_prim = o->eval_prim ? o->eval_prim : prim;
    nasc_status st = check_shapes(ctx, prim, train, &n_masks);
    if (!st && eval_prim != prim) st = check_shapes(ctx, eval_prim, train, NULL);
    if (st) return st;
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "epochs, batch and learning rate must be positive");
    const char *bad = NULL;
    if (!(o->label_smoothing >= 0 && o->label_smoothing < 1))
        bad = "label smoothing must be in [0, 1)";
    else if (!(o->grad_clip >= 0))
        bad = "the gradient clipping norm must be >= 0";
    else if (!(o->aux_weight >= 0))
        bad = "the auxiliary loss weight must be >= 0";
    else if (!(o->drop_path >= 0 && o->drop_path < 1))
        bad = "the drop-path probability must be in [0, 1)";
    else if (!(o->ema_decay >= 0 && o->ema_decay < 1))
        bad = "the weight-average decay must be in [0, 1)";
    else if (o->restart_epochs < 0 || (o->restart_epochs > 0 && !(o->restart_mult >= 1)))
        bad = "warm restarts need a period >= 1 epoch and a multiplier >= 1";
    else if (o->drop_path > 0 && n_masks == 0)
        bad = "drop-path needs a net lowered with drop-path masks (nasc_lower_options.drop_path)";
    else if (o->rnn_dropout != 0)
        bad = "rnn_dropout is for language models (nasc_train_lm)";
    else if (o->aux_weight > 0 && prim->n_outputs < 2)
        bad = "an auxiliary loss needs a net with an auxiliary head (nasc_lower_options.aux_head)";
    if (bad) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "%s", bad);
    int64_t n_train = train->n - (o->val_size > 0 ? o->val_size : 0);
    if (o->val_size < 0 || n_train < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "a validation split of %lld images leaves nothing to train on (%lld images)",
                          (long long)o->val_size, (long long)train->n);
    int64_t train_end = o->train_subset > 0 && o->train_subset < n_train ? o->train_subset : n_train;
    if (train_end < o->batch)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "%lld training images are fewer than one batch of %d",
                          (long long)train_end, o->batch);

    st = nasc_params_init(store, prim, o->seed);
    if (st) return st;
    if (!nasc_params_meta(store, "data/mean")) {
        float mean, sd;
        nasc_dataset_stats(train, 0, train_end, &mean, &sd);
        if (!(sd > 0)) sd = 1;
        st = nb_set_meta_num(store, "data/mean", mean);
        if (!st) st = nb_set_meta_num(store, "data/std", sd);
        if (st) return st;
    }
    int first_epoch = (int)meta_float(store, "train/epoch", 0);
    if (first_epoch >= o->epochs) {
        out->epochs_run = 0;
        return NASC_OK;
    }
    /* A finished run with a weight average holds the average as its weights
     * and the trained weights under "ema/": training goes on from the latter. */
    const char *held = nasc_params_meta(store, "train/weights");
    if (held && strcmp(held, "ema") == 0) ema_swap(store);
    st = nasc_params_set_meta(store, "train/weights", "trained");
    if (st) return st;

    nasc_net_options no = nasc_net_options_default();
    no.batch = o->batch;
    no.threads = o->threads;
    no.fuse = true;
    nasc_batcher_options bo = nasc_batcher_options_default();
    bo.batch = o->batch;
    bo.seed = o->seed;
    bo.drop_last = true;
    bo.crop_pad = o->crop_pad;
    bo.flip = o->flip;
    bo.cutout = o->cutout;
    bo.mean = meta_float(store, "data/mean", 0);
    bo.std = meta_float(store, "data/std", 1);

    nasc_net *net = NULL;
    nasc_batcher *b = NULL;
    nasc_optimizer *opt = NULL;
    float *x = NULL, *mask = NULL;
    int32_t *y = NULL;
    st = nasc_net_compile(ctx, prim, store, &no, &net);
    if (!st) st = nasc_batcher_create(ctx, train, 0, train_end, &bo, &b);
    if (!st) {
        opt = nasc_optim_create(ctx, &o->optim, store);
        if (!opt) st = ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    }
    if (!st) {
        x = nasc_alloc(ctx, (size_t)o->batch * train->c * train->h * train->w * sizeof *x);
        y = nasc_alloc(ctx, (size_t)o->batch * sizeof *y);
        mask = nasc_alloc(ctx, (size_t)o->batch * (n_masks ? n_masks : 1) * sizeof *mask);
        if (!x || !y || !mask) st = NASC_ENOMEM;
    }
    bool aux = o->aux_weight > 0 && prim->n_outputs > 1;
    int64_t steps = st ? 0 : nasc_batcher_count(b);
    int64_t total_steps = steps * o->epochs, warmup = steps * o->warmup_epochs;
    int64_t global = steps * first_epoch, run_steps = 0;
    double t0 = nb_train_now();
    nasc_train_progress pr = {0};
    pr.epochs = o->epochs;
    pr.steps = steps;
    for (int e = first_epoch; !st && e < o->epochs; e++) {
        nasc_batcher_start(b, e);
        double loss_sum = 0;
        int64_t correct = 0, seen = 0;
        for (int64_t s = 0; !st; s++) {
            int n = nasc_batcher_next(b, x, y);
            if (n == 0) break;
            float lr = nasc_lr_restarts(o->lr, global, warmup, total_steps, steps * o->restart_epochs,
                                        o->restart_mult);
            float loss, aux_loss;
            int ok;
            st = nasc_net_set_input(net, 0, x);
            if (!st)
                st = fill_masks(net, n_masks, o->batch, o->drop_path * (float)e / (float)o->epochs, o->seed, global,
                                mask);
            if (!st) st = nasc_net_forward(net);
            if (!st) st = nasc_net_loss_at(net, 0, y, 1.0f, o->label_smoothing, &loss, &ok);
            if (!st && aux) st = nasc_net_loss_at(net, 1, y, o->aux_weight, o->label_smoothing, &aux_loss, NULL);
            if (!st && !isfinite(loss))
                st = nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                                "the loss is %s at step %lld (epoch %d, batch %lld): training diverged; try a "
                                "smaller --lr",
                                isnan(loss) ? "NaN" : "infinite", (long long)global + 1, e + 1, (long long)s + 1);
            if (!st) st = nasc_net_backward(net);
            if (!st) {
                const nasc_param_grad *g;
                uint32_t ng = nasc_net_grads(net, &g);
                float gs = o->grad_clip > 0 ? nasc_clip_scale(nasc_grad_norm(g, ng), o->grad_clip) : 1.0f;
                st = nasc_optim_step_scaled(opt, g, ng, lr, gs);
            }
            if (!st && o->ema_decay > 0) st = ema_update(store, o->ema_decay);
            if (st) break;
            loss_sum += (double)loss * n;
            correct += ok;
            seen += n;
            global++;
            run_steps++;
            st = nb_report_step(o, &pr, e, s + 1, global, run_steps, total_steps, (float)(loss_sum / (double)seen),
                                (float)((double)correct / (double)seen), o->batch, t0, lr);
            if (!st && o->max_steps > 0 && run_steps >= o->max_steps) break;
        }
        if (st) break;
        if (o->max_steps > 0 && run_steps >= o->max_steps && pr.step < steps) break; /* a partial epoch is not recorded */
        out->train_loss = pr.loss;
        out->train_acc = pr.acc;
        out->epochs_run++;
        /* validation on the held-out end of the training set */
        float va = NAN, vl = NAN;
        bool last = e + 1 == o->epochs;
        if (o->ema_decay > 0) ema_swap(store); /* validate the average */
        if (o->val_size > 0)
            st = nasc_evaluate(ctx, eval_prim, store, train, n_train, train->n, o->batch, o->threads, &va, &vl);
        if (o->ema_decay > 0 && !last) ema_swap(store); /* after the last epoch the average stays */
        if (!st && o->ema_decay > 0 && last) st = nasc_params_set_meta(store, "train/weights", "ema");
        if (st) break;
        st = nb_end_epoch(o, &pr, store, e, va, vl, out);
        if (o->max_steps > 0 && run_steps >= o->max_steps) break;
    }
    out->seconds = nb_train_now() - t0;
    out->images_per_s = out->seconds > 0 ? (double)run_steps * o->batch / out->seconds : 0;
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_free(ctx, mask);
    nasc_optim_destroy(opt);
    nasc_batcher_destroy(b);
    nasc_net_destroy(net);
    return st;
}
