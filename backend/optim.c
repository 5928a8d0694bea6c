/* optim.c - SGD (momentum, Nesterov) and Adam over parameter-store tensors.
 *
 * All optimizer state lives in the store, not here: the momentum or first
 * moment of parameter P is the tensor "opt/m/P", Adam's second moment
 * "opt/v/P", and the number of steps taken the metadata "opt/step". So a
 * checkpoint of the store resumes training exactly, and an optimizer
 * object is cheap to recreate. The update rules are PyTorch's
 * (torch.optim.SGD with dampening 0, torch.optim.Adam with amsgrad off).
 *
 * Plain C on plain row-major floats: no oneDNN here.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"

struct nasc_optimizer {
    nasc_ctx *ctx;
    nasc_optim_options o;
    nasc_param_store *store; /* holds the state; not owned */
    nasc_buf name;           /* scratch for state tensor names */
};

nasc_optim_options nasc_optim_options_default(nasc_optim_kind kind) {
    nasc_optim_options o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    if (kind == NASC_OPTIM_SGD) {
        o.momentum = 0.9f;
        o.nesterov = true;
        o.weight_decay = 3e-4f;
    } else {
        o.weight_decay = 0.0f;
    }
    /* Adam's constants are set for both kinds so switching kind is enough. */
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    return o;
}

nasc_optimizer *nasc_optim_create(nasc_ctx *ctx, const nasc_optim_options *o, nasc_param_store *store) {
    const char *bad = NULL;
    if (o->kind != NASC_OPTIM_SGD && o->kind != NASC_OPTIM_ADAM)
        bad = "unknown optimizer kind";
    else if (!(o->weight_decay >= 0.0f))
        bad = "weight_decay must be >= 0";
    else if (o->kind == NASC_OPTIM_SGD && !(o->momentum >= 0.0f && o->momentum < 1.0f))
        bad = "SGD momentum must be in [0, 1)";
    else if (o->kind == NASC_OPTIM_SGD && o->nesterov && o->momentum == 0.0f)
        bad = "Nesterov momentum needs momentum > 0";
    else if (o->kind == NASC_OPTIM_ADAM &&
             !(o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f && o->eps > 0.0f))
        bad = "Adam needs beta1 and beta2 in [0, 1) and eps > 0";
    if (bad) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "optimizer options: %s", bad);
        return NULL;
    }
    if (!store) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "optimizer needs a parameter store for its state");
        return NULL;
    }
    nasc_optimizer *opt = nasc_alloc(ctx, sizeof *opt);
    if (!opt) return NULL;
    opt->ctx = ctx;
    opt->o = *o;
    opt->store = store;
    nasc_buf_init(&opt->name, ctx);
    return opt;
}

void nasc_optim_destroy(nasc_optimizer *o) {
    if (!o) return;
    nasc_buf_free(&o->name);
    nasc_free(o->ctx, o);
}

/* The state tensor "opt/<which>/<param>", created (zero) when missing. */
static nasc_tensor *state(nasc_optimizer *o, char which, const nasc_tensor *p) {
    o->name.len = 0;
    o->name.oom = false;
    nasc_buf_printf(&o->name, "opt/%c/%s", which, p->name);
    if (o->name.oom) return NULL;
    return nasc_params_get(o->store, o->name.data, p->rank, p->dims);
}

/* Adam with per_tensor_steps: the step count of p, "opt/n/<param>" (one
 * float, exact to 2^24 steps), created (zero) when missing. */
static nasc_tensor *step_state(nasc_optimizer *o, const nasc_tensor *p) {
    o->name.len = 0;
    o->name.oom = false;
    nasc_buf_printf(&o->name, "opt/n/%s", p->name);
    if (o->name.oom) return NULL;
    int64_t one[1] = {1};
    return nasc_params_get(o->store, o->name.data, 1, one);
}

static nasc_status read_step(nasc_optimizer *o, int64_t *step) {
    const char *s = nasc_params_meta(o->store, "opt/step");
    *step = 0;
    if (!s) return NASC_OK;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return nasc_error(o->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "optimizer state: metadata opt/step is '%s', not a step count", s);
    *step = v;
    return NASC_OK;
}

static void sgd_update(const nasc_optim_options *op, float *p, const float *g, float *buf, int64_t n,
                       float wd, float lr, float gs) {
    float mu = op->momentum;
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i] + wd * p[i];
        if (buf) {
            buf[i] = mu * buf[i] + d;
            d = op->nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* torch.optim.Adam: denom = sqrt(v) / sqrt(1 - b2^t) + eps,
 * p -= lr / (1 - b1^t) * m / denom. */
static void adam_update(const nasc_optim_options *op, float *p, const float *g, float *m, float *v, int64_t n,
                        float wd, float lr, int64_t t, float gs) {
    float b1 = op->beta1, b2 = op->beta2;
    double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        v[i] = b2 * v[i] + (1.0f - b2) * d * d;
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + op->eps;
        p[i] -= step_size * m[i] / denom;
    }
}

nasc_status nasc_optim_step(nasc_optimizer *o, const nasc_param_grad *g, uint32_t n, float lr) {
    return nasc_optim_step_scaled(o, g, n, lr, 1.0f);
}

double nasc_grad_norm(const nasc_param_grad *g, uint32_t n) {
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int64_t j = 0; j < g[i].param->numel; j++) s += (double)g[i].grad[j] * (double)g[i].grad[j];
    return sqrt(s);
}

float nasc_clip_scale(double norm, float max_norm) {
    if (!(max_norm > 0.0f)) return 1.0f;
    double c = (double)max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

nasc_status nasc_optim_step_scaled(nasc_optimizer *o, const nasc_param_grad *g, uint32_t n, float lr, float gscale) {
    const nasc_optim_options *op = &o->o;
    int64_t step;
    nasc_status st = read_step(o, &step);
    if (st) return st;
    bool need_m = op->kind == NASC_OPTIM_ADAM || op->momentum != 0.0f;
    bool need_v = op->kind == NASC_OPTIM_ADAM;
    /* Create every state tensor before touching any parameter, so a failure
     * (no memory, a shape clash) leaves parameters, state and step count as
     * they were (new state tensors are zero, which is what they would start
     * as anyway). */
    for (uint32_t i = 0; i < n; i++) {
        if (!g[i].param || !g[i].grad)
            return nasc_error(o->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "optimizer: gradient %u has no tensor", i);
        if ((need_m && !state(o, 'm', g[i].param)) || (need_v && !state(o, 'v', g[i].param)))
            return o->ctx->diag.status;
        if (need_v && op->per_tensor_steps) {
            const nasc_tensor *n_t = step_state(o, g[i].param);
            if (!n_t) return o->ctx->diag.status;
            float k = n_t->data[0];
            if (!(k >= 0 && k < 16777216.0f) || k != floorf(k))
                return nasc_error(o->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                  "optimizer state: opt/n/%s is %g, not a step count", g[i].param->name, (double)k);
        }
    }
    /* The step count is written before the update: nothing after it fails. */
    int64_t t = step + 1;
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, t);
    st = nasc_params_set_meta(o->store, "opt/step", buf);
    if (st) return st;
    for (uint32_t i = 0; i < n; i++) {
        nasc_tensor *p = g[i].param;
        /* Weight decay regularises weights, not batch-norm vectors or biases. */
        float wd = p->rank > 1 ? op->weight_decay : 0.0f;
        if (op->no_decay_prefix && strncmp(p->name, op->no_decay_prefix, strlen(op->no_decay_prefix)) == 0) wd = 0.0f;
        /* Both exist now: these lookups cannot fail. */
        nasc_tensor *m = need_m ? state(o, 'm', p) : NULL, *v = need_v ? state(o, 'v', p) : NULL;
        if ((need_m && !m) || (need_v && !v)) return NASC_EINTERNAL;
        if (op->kind == NASC_OPTIM_SGD) {
            sgd_update(op, p->data, g[i].grad, m ? m->data : NULL, p->numel, wd, lr, gscale);
        } else if (op->per_tensor_steps) {
            nasc_tensor *n_t = step_state(o, p); /* exists now */
            if (!n_t) return NASC_EINTERNAL;
            n_t->data[0] += 1.0f;
            adam_update(op, p->data, g[i].grad, m->data, v->data, p->numel, wd, lr, (int64_t)n_t->data[0], gscale);
        } else {
            adam_update(op, p->data, g[i].grad, m->data, v->data, p->numel, wd, lr, t, gscale);
        }
    }
    return NASC_OK;
}

float nasc_lr_cosine(float lr, int64_t step, int64_t total, int64_t warmup) {
    if (warmup < 0) warmup = 0;
    if (step < 0) step = 0;
    if (step < warmup) return lr * (float)((double)step / (double)warmup);
    if (total <= warmup) return lr;
    double t = (double)(step - warmup) / (double)(total - warmup);
    if (t > 1.0) t = 1.0;
    return (float)(lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
}

float nasc_lr_restarts(float lr, int64_t step, int64_t warmup, int64_t total, int64_t period, double mult) {
    if (period <= 0) return nasc_lr_cosine(lr, step, total, warmup);
    if (warmup < 0) warmup = 0;
    if (step < 0) step = 0;
    if (step < warmup) return lr * (float)((double)step / (double)warmup);
    /* Find the cycle holding step: cycle i lasts period * mult^i steps. */
    double t = (double)(step - warmup), len = (double)period;
    if (!(mult > 1.0))
        t = fmod(t, len);
    else
        while (t >= len) {
            t -= len;
            len *= mult;
        }
    return (float)(lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t / len)));
}
