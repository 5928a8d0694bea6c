/* train.c - the training loop and evaluation over a byte data set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_internal.h" /* nb_xent_row */

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

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float meta_float(const nasc_param_store *s, const char *key, float dflt) {
    const char *v = nasc_params_meta(s, key);
    return v ? strtof(v, NULL) : dflt;
}

static nasc_status set_meta_num(nasc_param_store *s, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return nasc_params_set_meta(s, key, buf);
}

/* The net's input must be (N, C, H, W) of the data set's image shape and its
 * output (N, classes) with at least as many classes as the labels use. */
static nasc_status check_shapes(nasc_ctx *ctx, const nasc_module *prim, const nasc_dataset *d) {
    int64_t in = -1;
    uint32_t n_in = 0;
    for (uint32_t v = 0; v < prim->n_values; v++)
        if (prim->values[v].kind == NASC_VAL_INPUT) in = v, n_in++;
    if (n_in != 1 || prim->n_outputs < 1)
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
    const nasc_type *o = &prim->values[prim->outputs[0]].type;
    if (o->rank != 2 || o->dims[1] < d->classes)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "the net's output must be (N, %d) logits for this data set (use --set classes=%d)",
                          d->classes, d->classes);
    return NASC_OK;
}

nasc_status nasc_evaluate(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_dataset *d,
                          int64_t begin, int64_t end, int batch, int threads, float *acc, float *loss) {
    nasc_status st = check_shapes(ctx, prim, d);
    if (st) return st;
    if (end <= begin) {
        *acc = *loss = NAN;
        return NASC_OK;
    }
    nasc_net_options no = nasc_net_options_default();
    no.batch = batch;
    no.mode = NASC_MODE_INFER;
    no.fuse = true;
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
    if (!st && !logits) st = NASC_ENOMEM;
    double total_loss = 0;
    int64_t correct = 0, seen = 0;
    if (!st) nasc_batcher_start(b, 0);
    const char *out_name = nasc_str(prim, prim->values[prim->outputs[0]].name);
    while (!st) {
        int n = nasc_batcher_next(b, x, y);
        if (n == 0) break;
        st = nasc_net_set_input(net, 0, x);
        if (!st) st = nasc_net_forward(net);
        if (!st) st = nasc_net_read(net, out_name, logits);
        for (int i = 0; !st && i < n; i++) {
            int arg;
            total_loss += nb_xent_row(logits + (size_t)i * k, k, y[i], &arg, NULL, 1);
            correct += arg == y[i];
        }
        seen += n;
    }
    if (!st) {
        *acc = (float)((double)correct / (double)seen);
        *loss = (float)(total_loss / (double)seen);
    }
    nasc_free(ctx, logits);
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_batcher_destroy(b);
    nasc_net_destroy(net);
    return st;
}

nasc_status nasc_train(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_dataset *train,
                       const nasc_train_options *o, nasc_train_result *out) {
    memset(out, 0, sizeof *out);
    out->val_acc = out->val_loss = NAN;
    nasc_status st = check_shapes(ctx, prim, train);
    if (st) return st;
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "epochs, batch and learning rate must be positive");
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
        st = set_meta_num(store, "data/mean", mean);
        if (!st) st = set_meta_num(store, "data/std", sd);
        if (st) return st;
    }
    int first_epoch = (int)meta_float(store, "train/epoch", 0);
    if (first_epoch >= o->epochs) {
        out->epochs_run = 0;
        return NASC_OK;
    }

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
    float *x = NULL;
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
        if (!x || !y) st = NASC_ENOMEM;
    }
    int64_t steps = st ? 0 : nasc_batcher_count(b);
    int64_t total_steps = steps * o->epochs, warmup = steps * o->warmup_epochs;
    int64_t global = steps * first_epoch, run_steps = 0;
    double t0 = now();
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
            float lr = nasc_lr_cosine(o->lr, global, total_steps, warmup);
            float loss;
            int ok;
            st = nasc_net_set_input(net, 0, x);
            if (!st) st = nasc_net_forward(net);
            if (!st) st = nasc_net_loss(net, y, &loss, &ok);
            if (!st && !isfinite(loss))
                st = nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                                "the loss is %s at step %lld (epoch %d, batch %lld): training diverged; try a "
                                "smaller --lr",
                                isnan(loss) ? "NaN" : "infinite", (long long)global + 1, e + 1, (long long)s + 1);
            if (!st) st = nasc_net_backward(net);
            if (!st) {
                const nasc_param_grad *g;
                uint32_t ng = nasc_net_grads(net, &g);
                st = nasc_optim_step(opt, g, ng, lr);
            }
            if (st) break;
            loss_sum += (double)loss * n;
            correct += ok;
            seen += n;
            global++;
            run_steps++;
            double dt = now() - t0;
            pr.epoch = e;
            pr.step = s + 1;
            pr.global_step = global;
            pr.loss = (float)(loss_sum / (double)seen);
            pr.acc = (float)((double)correct / (double)seen);
            pr.images_per_s = dt > 0 ? (double)run_steps * o->batch / dt : 0;
            pr.eta_s = run_steps ? dt / (double)run_steps * (double)(total_steps - global) : 0;
            pr.epoch_end = false;
            pr.val_acc = pr.val_loss = NAN;
            pr.lr = lr;
            if (o->progress) st = o->progress(o->ud, &pr);
            if (!st && o->max_steps > 0 && run_steps >= o->max_steps) break;
        }
        if (st) break;
        if (o->max_steps > 0 && run_steps >= o->max_steps && pr.step < steps) break; /* a partial epoch is not recorded */
        out->train_loss = pr.loss;
        out->train_acc = pr.acc;
        out->epochs_run++;
        /* validation on the held-out end of the training set */
        float va = NAN, vl = NAN;
        if (o->val_size > 0) st = nasc_evaluate(ctx, prim, store, train, n_train, train->n, o->batch, o->threads, &va, &vl);
        if (st) break;
        out->val_acc = va;
        out->val_loss = vl;
        st = set_meta_num(store, "train/epoch", e + 1);
        if (st) break;
        pr.epoch_end = true;
        pr.val_acc = va;
        pr.val_loss = vl;
        if (o->progress) st = o->progress(o->ud, &pr);
        if (o->max_steps > 0 && run_steps >= o->max_steps) break;
    }
    out->seconds = now() - t0;
    out->images_per_s = out->seconds > 0 ? (double)run_steps * o->batch / out->seconds : 0;
    nasc_free(ctx, x);
    nasc_free(ctx, y);
    nasc_optim_destroy(opt);
    nasc_batcher_destroy(b);
    nasc_net_destroy(net);
    return st;
}
