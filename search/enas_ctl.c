/* enas_ctl.c - the ENAS micro controller: sampling, log-probability and
 * its gradient (enas_ctl.h). */
#include <math.h>
#include <string.h>

#include "enas_ctl.h"

enum { SRC_PARAM, SRC_ANCHOR, SRC_ZERO };

typedef struct lstm_step {
    int src;          /* SRC_*: what the step reads */
    size_t src_off;   /* SRC_PARAM: offset of the vector in theta */
    int src_step;     /* SRC_ANCHOR: the step whose h is read */
    double *hp, *cp;  /* previous state (H each) */
    double *gates;    /* i, f, o, g after their nonlinearity (4H) */
    double *c, *h;    /* this step's state (H each) */
} lstm_step;

typedef struct head {
    bool index;       /* input-index (attention) or op */
    bool bias;        /* op head of the normal cell: the fixed bias was added */
    int step;         /* the LSTM step whose h it reads */
    int n;            /* choices */
    const int *anchors; /* index heads: the anchor steps of choices 0..n-1 */
    uint32_t choice;
    double *raw;      /* (n) scores before tanh, divided by the temperature */
    double *p;        /* (n) probabilities */
} head;

struct nasc_enas_ctl {
    nasc_ctx *ctx;
    nasc_enas_ctl_options o;
    int H, n_steps, n_heads;
    float *theta;
    size_t size;
    size_t W, g_emb, w_emb, w_soft, b_soft, w1, w2, v; /* parameter offsets */
    lstm_step *steps;
    head *heads;
    int *anchor;      /* 2 cells x (nodes + 2) anchor steps */
    double *mem;      /* step and head buffers */
    double *zero, *tmp, *dh, *dx; /* H, 8H, n_steps x H, H */
};

static size_t block(size_t *size, size_t n) {
    size_t at = *size;
    *size += n;
    return at;
}

nasc_enas_ctl *nasc_enas_ctl_create(nasc_ctx *ctx, const nasc_enas_ctl_options *o, uint64_t seed) {
    if (o->hidden < 1 || o->hidden > 4096 || o->nodes < 1 || o->nodes > 64 || o->ops < 2 || o->ops > 64 ||
        !(o->tanh_constant >= 0) || !(o->op_tanh_reduce > 0) || !(o->temperature >= 0)) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                   "ENAS controller: hidden %d, nodes %d, ops %d, tanh constant %g, op tanh reduce %g, temperature %g "
                   "(need hidden in [1, 4096], nodes in [1, 64], ops in [2, 64], a tanh constant and temperature >= 0, "
                   "op tanh reduce > 0)",
                   o->hidden, o->nodes, o->ops, o->tanh_constant, o->op_tanh_reduce, o->temperature);
        return NULL;
    }
    nasc_enas_ctl *c = nasc_alloc(ctx, sizeof *c);
    if (!c) return NULL;
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->o = *o;
    size_t H = (size_t)o->hidden, K = (size_t)o->ops, B = (size_t)o->nodes, sz = 0;
    c->H = o->hidden;
    c->W = block(&sz, 4 * H * 2 * H);
    c->g_emb = block(&sz, H);
    c->w_emb = block(&sz, K * H);
    c->w_soft = block(&sz, K * H);
    c->b_soft = block(&sz, K);
    c->w1 = block(&sz, H * H);
    c->w2 = block(&sz, H * H);
    c->v = block(&sz, H);
    c->size = sz;
    c->n_steps = (int)(2 * (2 + 5 * B));
    c->n_heads = (int)(2 * 4 * B);
    size_t per_step = 9 * H, per_head = 2 * (B + 2 > K ? B + 2 : K);
    c->theta = nasc_alloc(ctx, sz * sizeof *c->theta);
    c->steps = nasc_alloc(ctx, (size_t)c->n_steps * sizeof *c->steps);
    c->heads = nasc_alloc(ctx, (size_t)c->n_heads * sizeof *c->heads);
    c->anchor = nasc_alloc(ctx, 2 * (B + 2) * sizeof *c->anchor);
    c->mem = nasc_alloc(ctx, ((size_t)c->n_steps * (per_step + H) + (size_t)c->n_heads * per_head + 10 * H) *
                                 sizeof *c->mem);
    if (!c->theta || !c->steps || !c->heads || !c->anchor || !c->mem) {
        nasc_enas_ctl_destroy(c);
        return NULL;
    }
    double *p = c->mem;
    for (int t = 0; t < c->n_steps; t++) {
        lstm_step *s = &c->steps[t];
        s->hp = p, p += H;
        s->cp = p, p += H;
        s->gates = p, p += 4 * H;
        s->c = p, p += H;
        s->h = p, p += H;
        p += H; /* spare, keeps 9H per step */
    }
    for (int k = 0; k < c->n_heads; k++) {
        c->heads[k].raw = p, p += per_head / 2;
        c->heads[k].p = p, p += per_head / 2;
    }
    c->zero = p, p += H;
    c->tmp = p, p += 8 * H;
    c->dx = p, p += H;
    c->dh = p; /* n_steps x H */
    memset(c->zero, 0, H * sizeof *c->zero);
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    for (size_t i = 0; i < sz; i++) c->theta[i] = 0.2f * nasc_rng_uniform(&r) - 0.1f;
    for (size_t j = 0; j < K; j++) c->theta[c->b_soft + j] = j < 2 ? 10.0f : 0.0f;
    return c;
}

void nasc_enas_ctl_destroy(nasc_enas_ctl *c) {
    if (!c) return;
    nasc_free(c->ctx, c->theta);
    nasc_free(c->ctx, c->steps);
    nasc_free(c->ctx, c->heads);
    nasc_free(c->ctx, c->anchor);
    nasc_free(c->ctx, c->mem);
    nasc_free(c->ctx, c);
}

size_t nasc_enas_ctl_size(const nasc_enas_ctl *c) { return c->size; }
float *nasc_enas_ctl_params(nasc_enas_ctl *c) { return c->theta; }
uint32_t nasc_enas_ctl_count(const nasc_enas_ctl *c) { return (uint32_t)(8 * c->o.nodes); }

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* y = M x for a (rows x cols) float block at off of theta. */
static void matvec(const float *th, size_t off, int rows, int cols, const double *x, double *y) {
    for (int r = 0; r < rows; r++) {
        const float *m = th + off + (size_t)r * (size_t)cols;
        double s = 0;
        for (int k = 0; k < cols; k++) s += m[k] * x[k];
        y[r] = s;
    }
}

static const double *step_input(const nasc_enas_ctl *c, const lstm_step *s, double *buf) {
    if (s->src == SRC_ZERO) return c->zero;
    if (s->src == SRC_ANCHOR) return c->steps[s->src_step].h;
    for (int k = 0; k < c->H; k++) buf[k] = c->theta[s->src_off + (size_t)k];
    return buf;
}

/* LSTM step t from the state of step t-1 (zero for t = 0). */
static void lstm_forward(nasc_enas_ctl *c, int t) {
    int H = c->H;
    lstm_step *s = &c->steps[t];
    if (t == 0) {
        memset(s->hp, 0, (size_t)H * sizeof *s->hp);
        memset(s->cp, 0, (size_t)H * sizeof *s->cp);
    } else {
        memcpy(s->hp, c->steps[t - 1].h, (size_t)H * sizeof *s->hp);
        memcpy(s->cp, c->steps[t - 1].c, (size_t)H * sizeof *s->cp);
    }
    double *pre = c->tmp, *xb = c->tmp + 4 * H;
    const double *x = step_input(c, s, xb);
    const float *th = c->theta;
    for (int r = 0; r < 4 * H; r++) {
        const float *w = th + c->W + (size_t)r * 2 * (size_t)H;
        double acc = 0;
        for (int k = 0; k < H; k++) acc += w[k] * x[k] + w[H + k] * s->hp[k];
        pre[r] = acc;
    }
    for (int k = 0; k < H; k++) {
        double i = sigm(pre[k]), f = sigm(pre[H + k]), o = sigm(pre[2 * H + k]), g = tanh(pre[3 * H + k]);
        s->gates[k] = i, s->gates[H + k] = f, s->gates[2 * H + k] = o, s->gates[3 * H + k] = g;
        s->c[k] = f * s->cp[k] + i * g;
        s->h[k] = o * tanh(s->c[k]);
    }
}

/* Scores -> probabilities (softmax of tanh-squashed scores), sample or
 * check, log p and entropy. */
static nasc_status head_decide(nasc_enas_ctl *c, head *hd, double k_tanh, const double *fixed_bias, nasc_rng *rng,
                               uint32_t *d, double *lp, double *ent) {
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < hd->n; j++) {
        double u = hd->raw[j];
        double x = k_tanh > 0 ? k_tanh * tanh(u) : u;
        if (fixed_bias) x += fixed_bias[j];
        hd->p[j] = x;
        if (x > mx) mx = x;
    }
    for (int j = 0; j < hd->n; j++) z += (hd->p[j] = exp(hd->p[j] - mx));
    for (int j = 0; j < hd->n; j++) {
        hd->p[j] /= z;
        if (hd->p[j] > 0) *ent -= hd->p[j] * log(hd->p[j]);
    }
    if (rng) {
        double x = nasc_rng_uniform(rng), acc = 0;
        uint32_t pick = (uint32_t)hd->n - 1;
        for (int j = 0; j < hd->n; j++) {
            acc += hd->p[j];
            if (x < acc) {
                pick = (uint32_t)j;
                break;
            }
        }
        *d = pick;
    } else if (*d >= (uint32_t)hd->n) {
        return nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "ENAS controller: value %u out of range [0, %d)", *d,
                          hd->n);
    }
    hd->choice = *d;
    *lp += log(hd->p[*d] > 1e-300 ? hd->p[*d] : 1e-300);
    return NASC_OK;
}

nasc_status nasc_enas_ctl_run(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy) {
    int H = c->H, B = c->o.nodes, K = c->o.ops;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0;
    double k_idx = c->o.tanh_constant, k_op = c->o.tanh_constant / c->o.op_tanh_reduce;
    double fixed[64];
    for (int j = 0; j < K; j++) fixed[j] = j < 2 ? 0.25 : -0.25;
    double lp = 0, ent = 0;
    int t = 0, hk = 0;
    uint32_t di = 0;
    double *w2h = c->tmp + 5 * H, *att = c->tmp + 6 * H;
    for (int cell = 0; cell < 2; cell++) {
        int *anchor = c->anchor + cell * (B + 2);
        for (int j = 0; j < 2; j++) {
            c->steps[t].src = SRC_PARAM;
            c->steps[t].src_off = c->g_emb;
            lstm_forward(c, t);
            anchor[j] = t++;
        }
        for (int b = 0; b < B; b++) {
            int src = SRC_PARAM, src_step = 0;
            size_t src_off = c->g_emb;
            for (int i = 0; i < 2; i++) { /* input indices */
                lstm_step *s = &c->steps[t];
                s->src = src, s->src_off = src_off, s->src_step = src_step;
                lstm_forward(c, t);
                head *hd = &c->heads[hk++];
                hd->index = true, hd->bias = false, hd->step = t, hd->n = b + 2, hd->anchors = anchor;
                matvec(th, c->w2, H, H, s->h, w2h);
                for (int j = 0; j < b + 2; j++) {
                    matvec(th, c->w1, H, H, c->steps[anchor[j]].h, att);
                    double q = 0;
                    for (int k = 0; k < H; k++) q += th[c->v + (size_t)k] * tanh(att[k] + w2h[k]);
                    hd->raw[j] = q * inv_t;
                }
                uint32_t *dv = &d[di++];
                nasc_status st = head_decide(c, hd, k_idx, NULL, rng, dv, &lp, &ent);
                if (st) return st;
                if (*dv < 2) {
                    src = SRC_ZERO;
                } else {
                    src = SRC_ANCHOR;
                    src_step = anchor[*dv];
                }
                t++;
            }
            for (int i = 0; i < 2; i++) { /* ops */
                lstm_step *s = &c->steps[t];
                s->src = src, s->src_off = src_off, s->src_step = src_step;
                lstm_forward(c, t);
                head *hd = &c->heads[hk++];
                hd->index = false, hd->bias = cell == 0, hd->step = t, hd->n = K, hd->anchors = NULL;
                matvec(th, c->w_soft, K, H, s->h, hd->raw);
                for (int j = 0; j < K; j++) hd->raw[j] = (hd->raw[j] + th[c->b_soft + (size_t)j]) * inv_t;
                uint32_t *dv = &d[di++];
                nasc_status st = head_decide(c, hd, k_op, cell == 0 ? fixed : NULL, rng, dv, &lp, &ent);
                if (st) return st;
                src = SRC_PARAM;
                src_off = c->w_emb + (size_t)*dv * (size_t)H;
                t++;
            }
            lstm_step *s = &c->steps[t]; /* the node's anchor */
            s->src = src, s->src_off = src_off, s->src_step = src_step;
            lstm_forward(c, t);
            anchor[b + 2] = t++;
        }
    }
    *logp = lp;
    *entropy = ent;
    return NASC_OK;
}

void nasc_enas_ctl_backward(nasc_enas_ctl *c, double a, double *grad) {
    int H = c->H;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0;
    double k_idx = c->o.tanh_constant, k_op = c->o.tanh_constant / c->o.op_tanh_reduce;
    memset(c->dh, 0, (size_t)c->n_steps * (size_t)H * sizeof *c->dh);
    double *w2h = c->tmp, *att = c->tmp + H, *ds = c->tmp + 2 * H;
    /* the heads: d(a log p)/d scores into the parameters and dh of the steps they read */
    for (int k = 0; k < c->n_heads; k++) {
        head *hd = &c->heads[k];
        const lstm_step *s = &c->steps[hd->step];
        double *dh = c->dh + (size_t)hd->step * (size_t)H;
        double kt = hd->index ? k_idx : k_op;
        if (hd->index) matvec(th, c->w2, H, H, s->h, w2h);
        for (int j = 0; j < hd->n; j++) {
            double dz = a * (((uint32_t)j == hd->choice ? 1.0 : 0.0) - hd->p[j]);
            if (kt > 0) {
                double tu = tanh(hd->raw[j]);
                dz *= kt * (1 - tu * tu);
            }
            dz *= inv_t; /* d raw / d score */
            if (!hd->index) {
                size_t row = c->w_soft + (size_t)j * (size_t)H;
                grad[c->b_soft + (size_t)j] += dz;
                for (int q = 0; q < H; q++) {
                    grad[row + (size_t)q] += dz * s->h[q];
                    dh[q] += dz * th[row + (size_t)q];
                }
                continue;
            }
            int as = hd->anchors[j];
            const double *ha = c->steps[as].h;
            double *dha = c->dh + (size_t)as * (size_t)H;
            matvec(th, c->w1, H, H, ha, att);
            for (int q = 0; q < H; q++) {
                double tq = tanh(att[q] + w2h[q]);
                grad[c->v + (size_t)q] += dz * tq;
                ds[q] = dz * th[c->v + (size_t)q] * (1 - tq * tq);
            }
            for (int r = 0; r < H; r++) {
                if (ds[r] == 0) continue;
                size_t r1 = c->w1 + (size_t)r * (size_t)H, r2 = c->w2 + (size_t)r * (size_t)H;
                for (int q = 0; q < H; q++) {
                    grad[r2 + (size_t)q] += ds[r] * s->h[q];
                    dh[q] += ds[r] * th[r2 + (size_t)q];
                    grad[r1 + (size_t)q] += ds[r] * ha[q];
                    dha[q] += ds[r] * th[r1 + (size_t)q];
                }
            }
        }
    }
    /* back through time: one chain over both cells; an anchor step is
     * earlier than every step that reads it, so its dh is complete when
     * the reverse sweep reaches it */
    double *dpre = c->tmp, *dc_next = c->tmp + 4 * H, *dh_next = c->tmp + 5 * H, *xb = c->tmp + 6 * H;
    memset(dc_next, 0, (size_t)H * sizeof *dc_next);
    memset(dh_next, 0, (size_t)H * sizeof *dh_next);
    for (int t = c->n_steps; t-- > 0;) {
        const lstm_step *s = &c->steps[t];
        const double *dh = c->dh + (size_t)t * (size_t)H;
        for (int k = 0; k < H; k++) {
            double dhk = dh[k] + dh_next[k];
            double i = s->gates[k], f = s->gates[H + k], o = s->gates[2 * H + k], g = s->gates[3 * H + k];
            double tc = tanh(s->c[k]);
            double dct = dc_next[k] + dhk * o * (1 - tc * tc);
            dpre[k] = dct * g * i * (1 - i);
            dpre[H + k] = dct * s->cp[k] * f * (1 - f);
            dpre[2 * H + k] = dhk * tc * o * (1 - o);
            dpre[3 * H + k] = dct * i * (1 - g * g);
            dc_next[k] = dct * f;
        }
        const double *x = step_input(c, s, xb);
        memset(c->dx, 0, (size_t)H * sizeof *c->dx);
        memset(dh_next, 0, (size_t)H * sizeof *dh_next);
        for (int r = 0; r < 4 * H; r++) {
            double g = dpre[r];
            if (g == 0) continue;
            const float *w = th + c->W + (size_t)r * 2 * (size_t)H;
            double *gw = grad + c->W + (size_t)r * 2 * (size_t)H;
            for (int k = 0; k < H; k++) {
                gw[k] += g * x[k];
                gw[H + k] += g * s->hp[k];
                c->dx[k] += g * w[k];
                dh_next[k] += g * w[H + k];
            }
        }
        if (s->src == SRC_PARAM)
            for (int k = 0; k < H; k++) grad[s->src_off + (size_t)k] += c->dx[k];
        else if (s->src == SRC_ANCHOR)
            for (int k = 0; k < H; k++) c->dh[(size_t)s->src_step * (size_t)H + (size_t)k] += c->dx[k];
    }
}
