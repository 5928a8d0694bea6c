/* enas_ctl.c - the ENAS controllers, micro and macro: sampling,
 * log-probability, the skip penalty and their gradient (enas_ctl.h). */
#include <math.h>
#include <string.h>

#include "enas_ctl.h"

enum {
    SRC_PARAM,  /* a vector of theta (g_emb, an op embedding) */
    SRC_ANCHOR, /* the h of an earlier step */
    SRC_ZERO,
    SRC_MEAN,   /* macro: the chosen anchors' h summed, divided by (1 + their number) */
    SRC_SCALED, /* rnn: the h of an earlier step times scale */
};

typedef struct lstm_step {
    int src;          /* SRC_*: what the step reads */
    size_t src_off;   /* SRC_PARAM: offset of the vector in theta */
    int src_step;     /* SRC_ANCHOR: the step whose h is read */
    uint64_t mask;    /* SRC_MEAN: the layers whose anchors are read */
    double scale;     /* SRC_SCALED */
    double *hp, *cp;  /* previous state (H each) */
    double *gates;    /* i, f, o, g after their nonlinearity (4H) */
    double *c, *h;    /* this step's state (H each) */
} lstm_step;

enum { HEAD_INDEX, HEAD_OP, HEAD_SKIP };

typedef struct head {
    int kind;         /* HEAD_*: attention softmax, op softmax, or independent skips */
    bool bias;        /* micro op head: b_soft is learned */
    int step;         /* the LSTM step whose h it reads */
    int n;            /* choices (index, op) or candidate layers (skip) */
    uint32_t choice;  /* index, op, or the skip mask */
    double *raw;      /* (n) scores before the squashing, divided by the temperature */
    double *p;        /* (n) probabilities; skip: P(on) of each candidate */
} head;

struct nasc_enas_ctl {
    nasc_ctx *ctx;
    nasc_enas_ctl_options o;
    int H, n_steps, n_heads, n_skip_heads;
    float *theta;
    size_t size;
    size_t W, g_emb, w_emb, w_soft, b_soft, w1, w2, v; /* parameter offsets (b_soft: micro) */
    lstm_step *steps;
    head *heads;
    int *anchor;      /* micro: 2 cells x (nodes + 2) anchor steps; macro, rnn: one per layer or node */
    double *mem;      /* step and head buffers */
    double *zero, *tmp, *dh, *dx; /* H, 8H, n_steps x H, H */
};

static size_t block(size_t *size, size_t n) {
    size_t at = *size;
    *size += n;
    return at;
}

nasc_enas_ctl *nasc_enas_ctl_create(nasc_ctx *ctx, const nasc_enas_ctl_options *o, uint64_t seed) {
    int max_nodes = o->macro ? 64 : 64;
    if (o->hidden < 1 || o->hidden > 4096 || o->nodes < 1 || o->nodes > max_nodes || o->ops < 2 || o->ops > 64 ||
        !(o->tanh_constant >= 0) || !(o->op_tanh_reduce > 0) || !(o->temperature >= 0) ||
        (o->macro && !(o->skip_target > 0 && o->skip_target < 1))) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                   "ENAS controller: hidden %d, %s %d, ops %d, tanh constant %g, op tanh reduce %g, temperature %g, "
                   "skip target %g (need hidden in [1, 4096], 1 to 64 %s, ops in [2, 64], a tanh constant and "
                   "temperature >= 0, op tanh reduce > 0, a skip target in (0, 1))",
                   o->hidden, o->macro ? "layers" : "nodes", o->nodes, o->ops, o->tanh_constant, o->op_tanh_reduce,
                   o->temperature, o->skip_target, o->macro ? "layers" : "nodes");
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
    c->b_soft = o->macro || o->rnn ? 0 : block(&sz, K);
    c->w1 = block(&sz, H * H);
    c->w2 = block(&sz, H * H);
    c->v = block(&sz, H);
    c->size = sz;
    size_t per_head, n_anchor;
    if (o->rnn) {
        c->n_steps = (int)(2 * B);
        c->n_heads = (int)(2 * B - 1);
        per_head = 2 * (B > K ? B : K);
        n_anchor = B;
    } else if (o->macro) {
        c->n_steps = (int)(2 * B);
        c->n_heads = (int)(2 * B - 1);
        per_head = 2 * (B > K ? B : K);
        n_anchor = B;
    } else {
        c->n_steps = (int)(2 * (2 + 5 * B));
        c->n_heads = (int)(2 * 4 * B);
        per_head = 2 * (B + 2 > K ? B + 2 : K);
        n_anchor = 2 * (B + 2);
    }
    size_t per_step = 9 * H;
    c->theta = nasc_alloc(ctx, sz * sizeof *c->theta);
    c->steps = nasc_alloc(ctx, (size_t)c->n_steps * sizeof *c->steps);
    c->heads = nasc_alloc(ctx, (size_t)c->n_heads * sizeof *c->heads);
    c->anchor = nasc_alloc(ctx, n_anchor * sizeof *c->anchor);
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
    if (!o->macro && !o->rnn)
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
uint32_t nasc_enas_ctl_count(const nasc_enas_ctl *c) {
    return (uint32_t)(c->o.rnn ? 2 * c->o.nodes - 1 : c->o.macro ? 2 * c->o.nodes : 8 * c->o.nodes);
}

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

static int popcount64(uint64_t m) {
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

static const double *step_input(const nasc_enas_ctl *c, const lstm_step *s, double *buf) {
    if (s->src == SRC_ZERO) return c->zero;
    if (s->src == SRC_ANCHOR) return c->steps[s->src_step].h;
    if (s->src == SRC_SCALED) {
        for (int k = 0; k < c->H; k++) buf[k] = s->scale * c->steps[s->src_step].h[k];
        return buf;
    }
    if (s->src == SRC_MEAN) {
        double scale = 1.0 / (1.0 + popcount64(s->mask));
        memset(buf, 0, (size_t)c->H * sizeof *buf);
        for (int j = 0; j < 64; j++)
            if (s->mask >> j & 1)
                for (int k = 0; k < c->H; k++) buf[k] += scale * c->steps[c->anchor[j]].h[k];
        return buf;
    }
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

/* A new LSTM step reading src; returns its index. */
static int add_step(nasc_enas_ctl *c, int *t, const lstm_step *src) {
    lstm_step *s = &c->steps[*t];
    s->src = src->src, s->src_off = src->src_off, s->src_step = src->src_step, s->mask = src->mask;
    s->scale = src->scale;
    lstm_forward(c, *t);
    return (*t)++;
}

/* Attention scores of step t's h against anchors[0..n) into raw (divided
 * by the temperature). */
static void attention(nasc_enas_ctl *c, int t, const int *anchors, int n, double *raw) {
    int H = c->H;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0;
    double *w2h = c->tmp + 5 * H, *att = c->tmp + 6 * H;
    matvec(th, c->w2, H, H, c->steps[t].h, w2h);
    for (int j = 0; j < n; j++) {
        matvec(th, c->w1, H, H, c->steps[anchors[j]].h, att);
        double q = 0;
        for (int k = 0; k < H; k++) q += th[c->v + (size_t)k] * tanh(att[k] + w2h[k]);
        raw[j] = q * inv_t;
    }
}

static double squash(double k, double u) { return k > 0 ? k * tanh(u) : u; }
/* d squash / d u */
static double squash_grad(double k, double u) {
    if (!(k > 0)) return 1.0;
    double t = tanh(u);
    return k * (1 - t * t);
}

/* A softmax head: squashed scores (plus a fixed bias) -> probabilities,
 * then sample or check, log p and entropy (full: of the distribution;
 * else -p log p of the value taken). */
static nasc_status softmax_decide(nasc_enas_ctl *c, head *hd, double k, const double *fixed_bias, nasc_rng *rng,
                                  uint32_t *d, double *lp, double *ent) {
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < hd->n; j++) {
        double x = squash(k, hd->raw[j]) + (fixed_bias ? fixed_bias[j] : 0.0);
        hd->p[j] = x;
        if (x > mx) mx = x;
    }
    for (int j = 0; j < hd->n; j++) z += (hd->p[j] = exp(hd->p[j] - mx));
    for (int j = 0; j < hd->n; j++) hd->p[j] /= z;
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
    double pc = hd->p[*d] > 1e-300 ? hd->p[*d] : 1e-300;
    *lp += log(pc);
    if (c->o.macro || c->o.rnn)
        *ent -= pc * log(pc);
    else
        for (int j = 0; j < hd->n; j++)
            if (hd->p[j] > 0) *ent -= hd->p[j] * log(hd->p[j]);
    return NASC_OK;
}

/* sigmoid(x) log(sigmoid(x) / t) and its derivative in x */
static double kl_term(double x, double t) {
    double s = sigm(x);
    return s * log(s / t);
}
static double kl_grad(double x, double t) {
    double s = sigm(x);
    return s * (1 - s) * (log(s / t) + 1);
}

static nasc_status run_micro(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *lp, double *ent) {
    int H = c->H, B = c->o.nodes, K = c->o.ops;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0;
    double k_idx = c->o.tanh_constant, k_op = c->o.tanh_constant / c->o.op_tanh_reduce;
    double fixed[64];
    for (int j = 0; j < K; j++) fixed[j] = j < 2 ? 0.25 : -0.25;
    int t = 0, hk = 0;
    uint32_t di = 0;
    (void)H;
    for (int cell = 0; cell < 2; cell++) {
        int *anchor = c->anchor + cell * (B + 2);
        lstm_step in = {.src = SRC_PARAM, .src_off = c->g_emb};
        for (int j = 0; j < 2; j++) anchor[j] = add_step(c, &t, &in);
        for (int b = 0; b < B; b++) {
            in = (lstm_step){.src = SRC_PARAM, .src_off = c->g_emb};
            for (int i = 0; i < 2; i++) { /* input indices */
                int s = add_step(c, &t, &in);
                head *hd = &c->heads[hk++];
                *hd = (head){.kind = HEAD_INDEX, .step = s, .n = b + 2, .raw = hd->raw, .p = hd->p};
                attention(c, s, anchor, b + 2, hd->raw);
                uint32_t *dv = &d[di++];
                nasc_status st = softmax_decide(c, hd, k_idx, NULL, rng, dv, lp, ent);
                if (st) return st;
                in = *dv < 2 ? (lstm_step){.src = SRC_ZERO} : (lstm_step){.src = SRC_ANCHOR, .src_step = anchor[*dv]};
            }
            for (int i = 0; i < 2; i++) { /* ops */
                int s = add_step(c, &t, &in);
                head *hd = &c->heads[hk++];
                *hd = (head){.kind = HEAD_OP, .bias = true, .step = s, .n = K, .raw = hd->raw, .p = hd->p};
                matvec(th, c->w_soft, K, H, c->steps[s].h, hd->raw);
                for (int j = 0; j < K; j++) hd->raw[j] = (hd->raw[j] + th[c->b_soft + (size_t)j]) * inv_t;
                uint32_t *dv = &d[di++];
                nasc_status st = softmax_decide(c, hd, k_op, cell == 0 ? fixed : NULL, rng, dv, lp, ent);
                if (st) return st;
                in = (lstm_step){.src = SRC_PARAM, .src_off = c->w_emb + (size_t)*dv * (size_t)H};
            }
            anchor[b + 2] = add_step(c, &t, &in); /* the node's anchor */
        }
    }
    return NASC_OK;
}

static nasc_status run_macro(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *lp, double *ent, double *pen) {
    int H = c->H, L = c->o.nodes, K = c->o.ops;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0, k = c->o.tanh_constant;
    double tgt = c->o.skip_target;
    int t = 0, hk = 0;
    double kl = 0;
    lstm_step in = {.src = SRC_PARAM, .src_off = c->g_emb};
    for (int l = 0; l < L; l++) {
        int s = add_step(c, &t, &in); /* the op */
        head *hd = &c->heads[hk++];
        *hd = (head){.kind = HEAD_OP, .step = s, .n = K, .raw = hd->raw, .p = hd->p};
        matvec(th, c->w_soft, K, H, c->steps[s].h, hd->raw);
        for (int j = 0; j < K; j++) hd->raw[j] *= inv_t;
        nasc_status st = softmax_decide(c, hd, k, NULL, rng, &d[2 * l], lp, ent);
        if (st) return st;
        in = (lstm_step){.src = SRC_PARAM, .src_off = c->w_emb + (size_t)d[2 * l] * (size_t)H};
        s = add_step(c, &t, &in); /* the layer's anchor */
        c->anchor[l] = s;
        uint32_t *mask = &d[2 * l + 1];
        if (l == 0) {
            if (!rng && *mask != 0)
                return nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                  "ENAS controller: layer 0 has no skip candidates, mask %u", *mask);
            *mask = 0;
            in = (lstm_step){.src = SRC_PARAM, .src_off = c->g_emb};
            continue;
        }
        if (!rng && (l < 32 && *mask >> l))
            return nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "ENAS controller: layer %d skip mask %u out of range",
                              l, *mask);
        hd = &c->heads[hk++];
        *hd = (head){.kind = HEAD_SKIP, .step = s, .n = l, .raw = hd->raw, .p = hd->p};
        attention(c, s, c->anchor, l, hd->raw);
        uint32_t bits = rng ? 0 : *mask;
        double layer_kl = 0;
        for (int j = 0; j < l; j++) {
            double q = squash(k, hd->raw[j]);
            double p = sigm(2 * q); /* softmax of (-q, q) at 1 */
            hd->p[j] = p;
            if (rng && nasc_rng_uniform(rng) < p) bits |= 1u << j;
            double pb = (bits >> j & 1) ? p : 1 - p;
            pb = pb > 1e-300 ? pb : 1e-300;
            *lp += log(pb);
            *ent -= pb * log(pb);
            layer_kl += kl_term(-q, 1 - tgt) + kl_term(q, tgt);
        }
        kl += layer_kl;
        hd->choice = *mask = bits;
        in = bits ? (lstm_step){.src = SRC_MEAN, .mask = bits} : (lstm_step){.src = SRC_ZERO};
    }
    c->n_skip_heads = L - 1;
    *pen = L > 1 ? kl / (L - 1) : 0;
    return NASC_OK;
}

static nasc_status run_rnn(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *lp, double *ent) {
    int H = c->H, N = c->o.nodes, K = c->o.ops;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0, k = c->o.tanh_constant;
    double dist[64];
    int t = 0, hk = 0;
    uint32_t di = 0;
    lstm_step in = {.src = SRC_PARAM, .src_off = c->g_emb};
    for (int i = 0; i < N; i++) {
        int s = add_step(c, &t, &in); /* the node's anchor */
        c->anchor[i] = s;
        if (i == 0) {
            in = (lstm_step){.src = SRC_PARAM, .src_off = c->g_emb};
        } else {
            head *hd = &c->heads[hk++];
            *hd = (head){.kind = HEAD_INDEX, .step = s, .n = i, .raw = hd->raw, .p = hd->p};
            attention(c, s, c->anchor, i, hd->raw);
            for (int j = 0; j < i; j++) dist[j] = -(double)(i - j) * (double)(i - j) / 6.0;
            uint32_t *dv = &d[di++];
            nasc_status st = softmax_decide(c, hd, k, dist, rng, dv, lp, ent);
            if (st) return st;
            in = (lstm_step){.src = SRC_SCALED, .src_step = c->anchor[*dv], .scale = 1.0 / (0.1 + (double)(i - (int)*dv))};
        }
        s = add_step(c, &t, &in); /* the activation */
        head *hd = &c->heads[hk++];
        *hd = (head){.kind = HEAD_OP, .step = s, .n = K, .raw = hd->raw, .p = hd->p};
        matvec(th, c->w_soft, K, H, c->steps[s].h, hd->raw);
        for (int j = 0; j < K; j++) hd->raw[j] *= inv_t;
        uint32_t *dv = &d[di++];
        nasc_status st = softmax_decide(c, hd, k, NULL, rng, dv, lp, ent);
        if (st) return st;
        in = (lstm_step){.src = SRC_PARAM, .src_off = c->w_emb + (size_t)*dv * (size_t)H};
    }
    return NASC_OK;
}

nasc_status nasc_enas_ctl_run(nasc_enas_ctl *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy,
                              double *penalty) {
    double lp = 0, ent = 0, pen = 0;
    nasc_status st = c->o.rnn     ? run_rnn(c, d, rng, &lp, &ent)
                     : c->o.macro ? run_macro(c, d, rng, &lp, &ent, &pen)
                                  : run_micro(c, d, rng, &lp, &ent);
    if (st) return st;
    *logp = lp;
    *entropy = ent;
    if (penalty) *penalty = pen;
    return NASC_OK;
}

/* d(score j of an attention head) = dz: into v, W1, W2 and the dh of the
 * head's step and of anchor j. w2h holds W2 h of the head's step. */
static void attention_backward(nasc_enas_ctl *c, const head *hd, const int *anchors, int j, double dz,
                               const double *w2h, double *grad) {
    int H = c->H;
    const float *th = c->theta;
    const double *h = c->steps[hd->step].h, *ha = c->steps[anchors[j]].h;
    double *dh = c->dh + (size_t)hd->step * (size_t)H, *dha = c->dh + (size_t)anchors[j] * (size_t)H;
    double *att = c->tmp + H, *ds = c->tmp + 2 * H;
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
            grad[r2 + (size_t)q] += ds[r] * h[q];
            dh[q] += ds[r] * th[r2 + (size_t)q];
            grad[r1 + (size_t)q] += ds[r] * ha[q];
            dha[q] += ds[r] * th[r1 + (size_t)q];
        }
    }
}

/* The anchors an attention head at step t attends to. */
static const int *head_anchors(const nasc_enas_ctl *c, const head *hd) {
    if (c->o.macro || c->o.rnn) return c->anchor;
    int per_cell = 2 + 5 * c->o.nodes; /* steps per micro cell */
    return c->anchor + (hd->step / per_cell) * (c->o.nodes + 2);
}

void nasc_enas_ctl_backward(nasc_enas_ctl *c, double a, double b, double *grad) {
    int H = c->H;
    const float *th = c->theta;
    double inv_t = c->o.temperature > 0 ? 1.0 / c->o.temperature : 1.0;
    double k_idx = c->o.tanh_constant;
    double k_op = c->o.macro || c->o.rnn ? c->o.tanh_constant : c->o.tanh_constant / c->o.op_tanh_reduce;
    double tgt = c->o.skip_target;
    memset(c->dh, 0, (size_t)c->n_steps * (size_t)H * sizeof *c->dh);
    double *w2h = c->tmp;
    /* the heads: d(a log p + b penalty)/d scores into the parameters and
     * the dh of the steps they read */
    for (int k = 0; k < c->n_heads; k++) {
        head *hd = &c->heads[k];
        const lstm_step *s = &c->steps[hd->step];
        double *dh = c->dh + (size_t)hd->step * (size_t)H;
        const int *anchors = hd->kind == HEAD_OP ? NULL : head_anchors(c, hd);
        if (anchors) matvec(th, c->w2, H, H, s->h, w2h);
        for (int j = 0; j < hd->n; j++) {
            double dz;
            if (hd->kind == HEAD_SKIP) {
                double q = squash(k_idx, hd->raw[j]);
                double on = (hd->choice >> j & 1) ? 1.0 : 0.0;
                double dq = a * 2 * (on - hd->p[j]) +
                            b / c->n_skip_heads * (kl_grad(q, tgt) - kl_grad(-q, 1 - tgt));
                dz = dq * squash_grad(k_idx, hd->raw[j]) * inv_t;
            } else {
                double kt = hd->kind == HEAD_INDEX ? k_idx : k_op;
                dz = a * (((uint32_t)j == hd->choice ? 1.0 : 0.0) - hd->p[j]) * squash_grad(kt, hd->raw[j]) * inv_t;
            }
            if (hd->kind != HEAD_OP) {
                attention_backward(c, hd, anchors, j, dz, w2h, grad);
                continue;
            }
            size_t row = c->w_soft + (size_t)j * (size_t)H;
            if (hd->bias) grad[c->b_soft + (size_t)j] += dz;
            for (int q = 0; q < H; q++) {
                grad[row + (size_t)q] += dz * s->h[q];
                dh[q] += dz * th[row + (size_t)q];
            }
        }
    }
    /* back through time: one chain over all steps; a step read as an input
     * (an anchor) is earlier than every step that reads it, so its dh is
     * complete when the reverse sweep reaches it */
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
        if (s->src == SRC_PARAM) {
            for (int k = 0; k < H; k++) grad[s->src_off + (size_t)k] += c->dx[k];
        } else if (s->src == SRC_ANCHOR) {
            for (int k = 0; k < H; k++) c->dh[(size_t)s->src_step * (size_t)H + (size_t)k] += c->dx[k];
        } else if (s->src == SRC_SCALED) {
            for (int k = 0; k < H; k++) c->dh[(size_t)s->src_step * (size_t)H + (size_t)k] += s->scale * c->dx[k];
        } else if (s->src == SRC_MEAN) {
            double scale = 1.0 / (1.0 + popcount64(s->mask));
            for (int j = 0; j < 64; j++)
                if (s->mask >> j & 1)
                    for (int k = 0; k < H; k++)
                        c->dh[(size_t)c->anchor[j] * (size_t)H + (size_t)k] += scale * c->dx[k];
        }
    }
}
