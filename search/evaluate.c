/* evaluate.c - the in-process evaluator: train a child briefly on the
 * training split and reward it with its validation accuracy (a language
 * model: 1 / its validation perplexity per character). */
#include <math.h>
#include <string.h>
#include <time.h>

#include "nasc_backend.h"
#include "nasc_search.h"

nasc_status nasc_arch_apply_overrides(nasc_module *arch, const char *const *keys, const char *const *vals, int n) {
    if (n <= 0) return NASC_OK;
    nasc_skeleton sk = arch->skel;
    for (int i = 0; i < n; i++) {
        char msg[256];
        if (nasc_skeleton_set(&sk, keys[i], vals[i], msg, sizeof msg) != NASC_OK)
            return nasc_error(arch->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "--set %s=%s: %s", keys[i], vals[i], msg);
    }
    nasc_net_set_skeleton(arch, &sk);
    return nasc_arch_verify(arch);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct watch {
    const nasc_train_eval_options *o;
    nasc_ctx *ctx;
    double start;
    bool timed_out, stopped;
} watch;

static nasc_status on_step(void *ud, const nasc_train_progress *p) {
    (void)p;
    watch *w = ud;
    if (w->o->stop && *w->o->stop) {
        w->stopped = true;
        return nasc_error(w->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    }
    if (w->o->time_limit_s > 0 && now_s() - w->start > w->o->time_limit_s) {
        w->timed_out = true;
        return nasc_error(w->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "time limit of %g s exceeded at step %lld",
                          w->o->time_limit_s, (long long)p->global_step);
    }
    return NASC_OK;
}

static void fail(nasc_eval_result *out, const nasc_ctx *ctx, const char *what) {
    out->ok = false;
    out->reward = NAN;
    char msg[600];
    nasc_diag_format(&ctx->diag, msg, sizeof msg);
    snprintf(out->reason, sizeof out->reason, "%s: %.200s", what, msg);
}

static nasc_status train_eval(void *ud, const nasc_module *arch_in, nasc_eval_result *out) {
    nasc_train_eval_options *o = ud;
    nasc_ctx *ctx = arch_in->ctx;
    memset(out, 0, sizeof *out);
    out->reward = out->val_loss = NAN;
    out->params = out->macs = -1;
    bool lm = arch_in->skel.kind == NASC_NET_RECURRENT;
    if (lm && !o->text) {
        fail(out, ctx, "a recurrent architecture needs a text to train on");
        return NASC_OK;
    }
    nasc_module *prim = NULL;
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = o->steps;
    nasc_status st = nasc_lower_with(arch_in, &lo, &prim);
    if (!st) st = nasc_prim_verify(prim);
    if (st) {
        nasc_module_destroy(prim);
        if (st == NASC_ENOMEM) {
            fail(out, ctx, "out of memory while lowering");
            return NASC_OK;
        }
        fail(out, ctx, "lowering failed");
        return NASC_OK;
    }
    nasc_cost c;
    if (nasc_cost_compute(prim, &c) == NASC_OK) {
        out->params = c.params;
        out->macs = c.macs;
        nasc_cost_free(prim, &c);
    }
    nasc_param_store *store = nasc_params_create(ctx);
    if (!store) {
        nasc_module_destroy(prim);
        fail(out, ctx, "out of memory");
        return NASC_OK;
    }
    nasc_train_options to = nasc_train_options_default();
    to.epochs = o->epochs;
    to.batch = o->batch;
    to.lr = o->lr;
    to.warmup_epochs = 0;
    to.seed = o->seed;
    to.threads = o->threads;
    to.val_size = o->val_size;
    to.train_subset = o->train_subset;
    watch w = {o, ctx, now_s(), false, false};
    to.progress = on_step;
    to.ud = &w;
    nasc_train_result tr;
    if (lm) {
        to.optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
        to.optim.weight_decay = 0;
        to.grad_clip = 5;
        st = nasc_train_lm(ctx, prim, store, o->text, &to, &tr);
        /* the reward: 1 / perplexity per character, in (0, 1] */
        if (!st) tr.val_acc = (float)exp(-(double)tr.val_loss);
    } else {
        st = nasc_train(ctx, prim, store, o->train, &to, &tr);
    }
    nasc_status ret = NASC_OK;
    if (w.stopped) {
        ret = NASC_EINPUT; /* the diagnostic says "interrupted" */
    } else if (st) {
        fail(out, ctx, w.timed_out ? "time limit" : st == NASC_ENOMEM ? "out of memory" : "training failed");
    } else if (!isfinite(tr.val_acc)) {
        out->ok = false;
        snprintf(out->reason, sizeof out->reason, "no validation accuracy (is the validation split empty?)");
    } else {
        out->ok = true;
        out->reward = tr.val_acc;
        out->val_loss = tr.val_loss;
    }
    nasc_params_destroy(store);
    nasc_module_destroy(prim);
    return ret;
}

nasc_evaluator nasc_train_evaluator(nasc_train_eval_options *o) {
    nasc_evaluator e = {train_eval, o};
    return e;
}
