/* reinforce.c - the NAS-RL LSTM controller and the REINFORCE strategy
 * (Zoph & Le, ICLR 2017): one LSTM step per decision, softmax heads,
 * anchor-point attention for skip connections, REINFORCE with a moving
 * average baseline and an entropy bonus, Adam. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reinforce.h"
#include "strategies_internal.h"

typedef struct step_cache {
    size_t x_src;    /* parameter offset of this step's input vector */
    double *hp, *cp; /* previous h, c (H) */
    double *gates;   /* i, f, g, o after their nonlinearity (4H) */
    double *c, *h;   /* this step's c, h (H) */
    double *probs;   /* CHOICE: card; SKIP: card bit probabilities */
    double *logits;  /* SKIP: the attention scores s_j */
    double ent;      /* entropy of this step's distribution(s) */
} step_cache;

struct nasc_controller {
    nasc_ctx *ctx;
    const nasc_decision *dec;
    uint32_t n;
    int H;
    float *theta;
    size_t size;
    /* parameter offsets */
    size_t W, b, start, Wp, Wc, v;
    size_t *emb;  /* per decision: embedding table (card x H) or skip vector (H) */
    size_t *head; /* per CHOICE: weights (card x H) then bias (card) */
    int n_layers;
    int *anchor_step; /* per layer: the step of its anchor, -1 none */
    uint32_t *vals;   /* the values of the last run */
    step_cache *st;
    double *arena;
    double *dh_ext, *tmp; /* backward scratch: (n+1) x H, 8H */
};

static size_t add_block(size_t *size, size_t n) {
    size_t at = *size;
    *size += n;
    return at;
}

nasc_controller *nasc_controller_create(nasc_ctx *ctx, const nasc_decision *dec, uint32_t n, int hidden,
                                        uint64_t seed) {
    if (hidden < 1 || hidden > 4096) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "controller: hidden size %d is not in [1, 4096]", hidden);
        return NULL;
    }
    nasc_controller *c = nasc_alloc(ctx, sizeof *c);
    if (!c) return NULL;
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->dec = dec;
    c->n = n;
    c->H = hidden;
    size_t H = (size_t)hidden, sz = 0;
    c->W = add_block(&sz, 4 * H * 2 * H);
    c->b = add_block(&sz, 4 * H);
    c->start = add_block(&sz, H);
    c->Wp = add_block(&sz, H * H);
    c->Wc = add_block(&sz, H * H);
    c->v = add_block(&sz, H);
    c->emb = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *c->emb);
    c->head = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *c->head);
    c->st = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *c->st);
    c->vals = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *c->vals);
    if (!c->emb || !c->head || !c->st || !c->vals) {
        nasc_controller_destroy(c);
        return NULL;
    }
    size_t cache = 0;
    for (uint32_t k = 0; k < n; k++) {
        size_t card = (size_t)(dec[k].card > 0 ? dec[k].card : 0);
        if (dec[k].kind == NASC_DEC_CHOICE) {
            c->emb[k] = add_block(&sz, card * H);
            c->head[k] = add_block(&sz, card * H + card);
        } else {
            c->emb[k] = add_block(&sz, H);
            c->head[k] = 0;
            if (dec[k].layer + 1 > c->n_layers) c->n_layers = dec[k].layer + 1;
        }
        cache += 10 * H + 2 * card;
    }
    c->size = sz;
    c->theta = nasc_alloc(ctx, (sz ? sz : 1) * sizeof *c->theta);
    c->arena = nasc_alloc(ctx, (cache + (size_t)(n + 1) * H + 8 * H + 1) * sizeof *c->arena);
    c->anchor_step = nasc_alloc(ctx, (size_t)(c->n_layers ? c->n_layers : 1) * sizeof *c->anchor_step);
    if (!c->theta || !c->arena || !c->anchor_step) {
        nasc_controller_destroy(c);
        return NULL;
    }
    double *p = c->arena;
    for (uint32_t k = 0; k < n; k++) {
        size_t card = (size_t)(dec[k].card > 0 ? dec[k].card : 0);
        step_cache *s = &c->st[k];
        s->hp = p, p += H;
        s->cp = p, p += H;
        s->gates = p, p += 4 * H;
        s->c = p, p += H;
        s->h = p, p += H;
        s->probs = p, p += card;
        s->logits = p, p += card;
        p += H; /* spare: keeps the layout 10H per step */
    }
    c->dh_ext = p, p += (size_t)(n + 1) * H;
    c->tmp = p;
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    for (size_t i = 0; i < sz; i++) c->theta[i] = 0.2f * nasc_rng_uniform(&r) - 0.1f;
    for (size_t i = 0; i < 4 * H; i++) c->theta[c->b + i] = 0;
    for (uint32_t k = 0; k < n; k++)
        if (dec[k].kind == NASC_DEC_CHOICE)
            for (int j = 0; j < dec[k].card; j++) c->theta[c->head[k] + (size_t)dec[k].card * H + (size_t)j] = 0;
    return c;
}

void nasc_controller_destroy(nasc_controller *c) {
    if (!c) return;
    nasc_free(c->ctx, c->emb);
    nasc_free(c->ctx, c->head);
    nasc_free(c->ctx, c->st);
    nasc_free(c->ctx, c->vals);
    nasc_free(c->ctx, c->theta);
    nasc_free(c->ctx, c->arena);
    nasc_free(c->ctx, c->anchor_step);
    nasc_free(c->ctx, c);
}

size_t nasc_controller_size(const nasc_controller *c) { return c->size; }
float *nasc_controller_params(nasc_controller *c) { return c->theta; }
const double *nasc_controller_probs(const nasc_controller *c, uint32_t k) { return c->st[k].probs; }

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
/* log sigmoid(x) and log(1 - sigmoid(x)), without overflow */
static double log_sigm(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

/* y = M x for a (rows x cols) float block at off. */
static void matvec(const float *th, size_t off, int rows, int cols, const double *x, double *y) {
    for (int r = 0; r < rows; r++) {
        const float *m = th + off + (size_t)r * cols;
        double s = 0;
        for (int k = 0; k < cols; k++) s += m[k] * x[k];
        y[r] = s;
    }
}

nasc_status nasc_controller_run(nasc_controller *c, uint32_t *d, nasc_rng *rng, double *logp, double *entropy) {
    int H = c->H;
    const float *th = c->theta;
    double lp = 0, ent = 0;
    for (int l = 0; l < c->n_layers; l++) c->anchor_step[l] = -1;
    double *pre = c->tmp, *u = c->tmp + 4 * H;
    for (uint32_t t = 0; t < c->n; t++) {
        step_cache *s = &c->st[t];
        const nasc_decision *dc = &c->dec[t];
        if (t == 0) {
            s->x_src = c->start;
            for (int k = 0; k < H; k++) s->hp[k] = s->cp[k] = 0;
        } else {
            const step_cache *q = &c->st[t - 1];
            s->x_src = c->dec[t - 1].kind == NASC_DEC_CHOICE ? c->emb[t - 1] + (size_t)c->vals[t - 1] * H : c->emb[t - 1];
            memcpy(s->hp, q->h, (size_t)H * sizeof *s->hp);
            memcpy(s->cp, q->c, (size_t)H * sizeof *s->cp);
        }
        /* LSTM step: pre = W [x; h_prev] + b */
        for (int r = 0; r < 4 * H; r++) {
            const float *w = th + c->W + (size_t)r * 2 * H;
            double acc = th[c->b + r];
            for (int k = 0; k < H; k++) acc += w[k] * th[s->x_src + k];
            for (int k = 0; k < H; k++) acc += w[H + k] * s->hp[k];
            pre[r] = acc;
        }
        for (int k = 0; k < H; k++) {
            double i = sigm(pre[k]), f = sigm(pre[H + k]), g = tanh(pre[2 * H + k]), o = sigm(pre[3 * H + k]);
            s->gates[k] = i, s->gates[H + k] = f, s->gates[2 * H + k] = g, s->gates[3 * H + k] = o;
            s->c[k] = f * s->cp[k] + i * g;
            s->h[k] = o * tanh(s->c[k]);
        }
        s->ent = 0;
        if (dc->kind == NASC_DEC_CHOICE) {
            int K = dc->card;
            matvec(th, c->head[t], K, H, s->h, s->probs);
            double mx = -INFINITY, z = 0;
            for (int j = 0; j < K; j++) {
                s->probs[j] += th[c->head[t] + (size_t)K * H + (size_t)j];
                if (s->probs[j] > mx) mx = s->probs[j];
            }
            for (int j = 0; j < K; j++) z += (s->probs[j] = exp(s->probs[j] - mx));
            for (int j = 0; j < K; j++) {
                s->probs[j] /= z;
                if (s->probs[j] > 0) s->ent -= s->probs[j] * log(s->probs[j]);
            }
            if (rng) {
                double x = nasc_rng_uniform(rng), acc = 0;
                int pick = K - 1;
                for (int j = 0; j < K; j++) {
                    acc += s->probs[j];
                    if (x < acc) {
                        pick = j;
                        break;
                    }
                }
                d[t] = (uint32_t)pick;
            } else if (d[t] >= (uint32_t)K) {
                return nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "decision %u (%s): value %u out of range", t,
                                  dc->name, d[t]);
            }
            lp += log(s->probs[d[t]] > 1e-300 ? s->probs[d[t]] : 1e-300);
        } else {
            uint32_t bits = rng ? 0 : d[t];
            if (!rng && dc->card < 32 && bits >> dc->card)
                return nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "decision %u (%s): mask %u out of range", t,
                                  dc->name, d[t]);
            double *wc = c->tmp + 5 * H;
            matvec(th, c->Wc, H, H, s->h, wc);
            for (int j = 0; j < dc->card; j++) {
                int a = j < c->n_layers ? c->anchor_step[j] : -1;
                if (a >= 0)
                    matvec(th, c->Wp, H, H, c->st[a].h, u);
                else
                    for (int k = 0; k < H; k++) u[k] = 0;
                double sc = 0;
                for (int k = 0; k < H; k++) sc += th[c->v + k] * tanh(u[k] + wc[k]);
                double q = sigm(sc);
                s->logits[j] = sc;
                s->probs[j] = q;
                if (rng && nasc_rng_uniform(rng) < q) bits |= 1u << j;
                bool on = (bits >> j) & 1;
                lp += on ? log_sigm(sc) : log_sigm(-sc);
                s->ent -= q * log_sigm(sc) + (1 - q) * log_sigm(-sc);
            }
            d[t] = bits;
            if (dc->layer >= 0 && dc->layer < c->n_layers) c->anchor_step[dc->layer] = (int)t;
        }
        c->vals[t] = d[t];
        ent += s->ent;
    }
    *logp = lp;
    *entropy = ent;
    return NASC_OK;
}

void nasc_controller_backward(nasc_controller *c, double a, double b, double *grad) {
    int H = c->H;
    const float *th = c->theta;
    uint32_t n = c->n;
    memset(c->dh_ext, 0, (size_t)(n + 1) * H * sizeof *c->dh_ext);
    double *dpre = c->tmp, *u = c->tmp + 4 * H, *du = c->tmp + 5 * H, *wc = c->tmp + 6 * H;
    /* anchors as they were during the run, rebuilt step by step */
    int *anchor = c->anchor_step;
    for (int l = 0; l < c->n_layers; l++) anchor[l] = -1;
    /* pass 1 (forward order): the heads' gradients into dh_ext */
    for (uint32_t t = 0; t < n; t++) {
        step_cache *s = &c->st[t];
        const nasc_decision *dc = &c->dec[t];
        double *dh = c->dh_ext + (size_t)t * H;
        if (dc->kind == NASC_DEC_CHOICE) {
            int K = dc->card;
            size_t Wk = c->head[t], bk = Wk + (size_t)K * H;
            for (int j = 0; j < K; j++) {
                double p = s->probs[j];
                double lg = p > 0 ? log(p) : 0;
                double dz = a * ((uint32_t)j == c->vals[t] ? 1 - p : -p) + b * (-p * (lg + s->ent));
                grad[bk + j] += dz;
                for (int k = 0; k < H; k++) {
                    grad[Wk + (size_t)j * H + k] += dz * s->h[k];
                    dh[k] += dz * th[Wk + (size_t)j * H + k];
                }
            }
        } else {
            matvec(th, c->Wc, H, H, s->h, wc);
            for (int j = 0; j < dc->card; j++) {
                int at = j < c->n_layers ? anchor[j] : -1;
                if (at >= 0)
                    matvec(th, c->Wp, H, H, c->st[at].h, u);
                else
                    for (int k = 0; k < H; k++) u[k] = 0;
                double q = s->probs[j], sc = s->logits[j];
                bool on = (c->vals[t] >> j) & 1;
                double ds = a * ((on ? 1.0 : 0.0) - q) + b * (-sc * q * (1 - q));
                for (int k = 0; k < H; k++) {
                    double tk = tanh(u[k] + wc[k]);
                    grad[c->v + k] += ds * tk;
                    du[k] = ds * th[c->v + k] * (1 - tk * tk);
                }
                for (int r = 0; r < H; r++) {
                    for (int k = 0; k < H; k++) {
                        grad[c->Wc + (size_t)r * H + k] += du[r] * s->h[k];
                        dh[k] += du[r] * th[c->Wc + (size_t)r * H + k];
                    }
                    if (at >= 0) {
                        double *dha = c->dh_ext + (size_t)at * H;
                        for (int k = 0; k < H; k++) {
                            grad[c->Wp + (size_t)r * H + k] += du[r] * c->st[at].h[k];
                            dha[k] += du[r] * th[c->Wp + (size_t)r * H + k];
                        }
                    }
                }
            }
            if (dc->layer >= 0 && dc->layer < c->n_layers) anchor[dc->layer] = (int)t;
        }
    }
    /* pass 2 (backward through time) */
    double *dh_next = c->dh_ext + (size_t)n * H; /* zero */
    double *dc_next = c->tmp + 7 * H;
    for (int k = 0; k < H; k++) dc_next[k] = 0;
    for (uint32_t t = n; t-- > 0;) {
        step_cache *s = &c->st[t];
        double *dh = c->dh_ext + (size_t)t * H;
        for (int k = 0; k < H; k++) {
            double dhk = dh[k] + dh_next[k];
            double i = s->gates[k], f = s->gates[H + k], g = s->gates[2 * H + k], o = s->gates[3 * H + k];
            double tc = tanh(s->c[k]);
            double dct = dc_next[k] + dhk * o * (1 - tc * tc);
            dpre[k] = dct * g * i * (1 - i);
            dpre[H + k] = dct * s->cp[k] * f * (1 - f);
            dpre[2 * H + k] = dct * i * (1 - g * g);
            dpre[3 * H + k] = dhk * tc * o * (1 - o);
            dc_next[k] = dct * f;
        }
        /* dh_prev = W_h^T dpre, dx = W_x^T dpre; into dh (reused as dh_prev for t-1) */

        double *dhp_out = u; /* scratch H */
        for (int k = 0; k < H; k++) dhp_out[k] = 0;
        for (int r = 0; r < 4 * H; r++) {
            double g = dpre[r];
            if (g == 0) continue;
            const float *w = th + c->W + (size_t)r * 2 * H;
            double *gw = grad + c->W + (size_t)r * 2 * H;
            grad[c->b + r] += g;
            for (int k = 0; k < H; k++) {
                gw[k] += g * th[s->x_src + k];
                grad[s->x_src + k] += g * w[k];
                gw[H + k] += g * s->hp[k];
                dhp_out[k] += g * w[H + k];
            }
        }
        dh_next = du; /* scratch H: dh flowing into step t-1 */
        memcpy(du, dhp_out, (size_t)H * sizeof *du);
    }
}

/* ------------------------------------------------------------------ */
/* REINFORCE                                                           */
/* ------------------------------------------------------------------ */

/* A controller replica (opt.replicas > 0): the controller's weights when
 * it started a round, and the round's m children. Replicas that started
 * at the same version share one copy of the weights. */
typedef struct replica {
    int copy;           /* its copy of the weights: rl.copy[copy] */
    int64_t version;    /* the controller's updates when the round started */
    int handed;         /* children of this round handed out (0..m) */
    int done;           /* children of this round with a reward */
    bool active;        /* a round is under way */
    int64_t *proposal;  /* m: the proposal number of each child */
    uint32_t *d;        /* m x n */
    double *adv;        /* m: R - b, NaN for a failed child */
    unsigned char *got; /* m: its reward arrived */
} replica;

typedef struct rl {
    nasc_controller *ctl;
    float *m, *v;      /* Adam moments */
    double *grad;
    int64_t adam_step;
    double baseline;
    int has_baseline;
    int pending;       /* architectures in the current batch */
    uint32_t *batch_d; /* batch x n */
    double *batch_adv; /* advantage R - b of each */
    /* replicas */
    int K, M, G;
    replica *rep;      /* K */
    double *acc;       /* P: the sum of the gradients that arrived since the last update */
    float **copy;      /* K slots: the weights of a version some replica started at (P each, or NULL) */
    int64_t *copy_version;
    int *copy_refs;    /* replicas using slot k; 0: free */
    int acc_n;         /* how many */
    int next;          /* the replica to look at first for the next proposal */
} rl;

static nasc_status rl_init(nasc_strategy *s) {
    if (s->opt.batch < 1 || s->opt.batch > 10000)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "reinforce: batch %d is not in [1, 10000]", s->opt.batch);
    if (!(s->opt.lr > 0) || !(s->opt.baseline_decay >= 0 && s->opt.baseline_decay < 1) || !(s->opt.entropy >= 0))
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "reinforce: the learning rate must be > 0, the baseline decay in [0, 1), the entropy weight >= 0");
    if (s->opt.replicas < 0 || s->opt.replicas > 100000 ||
        (s->opt.replicas && (s->opt.children_per_replica < 1 || s->opt.children_per_replica > 10000 ||
                             s->opt.grads_per_update < 1 || s->opt.grads_per_update > 100000)))
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "reinforce: replicas %d, children per replica %d, gradients per update %d: want replicas in "
                          "[0, 100000], children in [1, 10000], gradients in [1, 100000]",
                          s->opt.replicas, s->opt.children_per_replica, s->opt.grads_per_update);
    rl *r = nasc_alloc(s->ctx, sizeof *r);
    if (!r) return NASC_ENOMEM;
    memset(r, 0, sizeof *r);
    s->impl = r;
    r->ctl = nasc_controller_create(s->ctx, s->dec, s->n, s->opt.lstm_size, s->opt.seed ^ 0x5eedc0de);
    if (!r->ctl) return s->ctx->diag.status ? s->ctx->diag.status : NASC_ENOMEM;
    size_t P = nasc_controller_size(r->ctl), n = s->n ? s->n : 1;
    r->m = nasc_alloc(s->ctx, (P ? P : 1) * sizeof *r->m);
    r->v = nasc_alloc(s->ctx, (P ? P : 1) * sizeof *r->v);
    r->grad = nasc_alloc(s->ctx, (P ? P : 1) * sizeof *r->grad);
    r->batch_d = nasc_alloc(s->ctx, (size_t)s->opt.batch * n * sizeof *r->batch_d);
    r->batch_adv = nasc_alloc(s->ctx, (size_t)s->opt.batch * sizeof *r->batch_adv);
    if (!r->m || !r->v || !r->grad || !r->batch_d || !r->batch_adv) return NASC_ENOMEM;
    memset(r->m, 0, P * sizeof *r->m);
    memset(r->v, 0, P * sizeof *r->v);
    if (s->opt.replicas) {
        r->K = s->opt.replicas;
        r->M = s->opt.children_per_replica;
        r->G = s->opt.grads_per_update;
        r->rep = nasc_alloc(s->ctx, (size_t)r->K * sizeof *r->rep);
        r->acc = nasc_alloc(s->ctx, (P ? P : 1) * sizeof *r->acc);
        r->copy = nasc_alloc(s->ctx, (size_t)r->K * sizeof *r->copy);
        r->copy_version = nasc_alloc(s->ctx, (size_t)r->K * sizeof *r->copy_version);
        r->copy_refs = nasc_alloc(s->ctx, (size_t)r->K * sizeof *r->copy_refs);
        if (!r->rep || !r->acc || !r->copy || !r->copy_version || !r->copy_refs) return NASC_ENOMEM;
        memset(r->rep, 0, (size_t)r->K * sizeof *r->rep);
        memset(r->copy, 0, (size_t)r->K * sizeof *r->copy);
        memset(r->copy_refs, 0, (size_t)r->K * sizeof *r->copy_refs);
        memset(r->acc, 0, P * sizeof *r->acc);
        for (int k = 0; k < r->K; k++) {
            replica *q = &r->rep[k];
            q->proposal = nasc_alloc(s->ctx, (size_t)r->M * sizeof *q->proposal);
            q->d = nasc_alloc(s->ctx, (size_t)r->M * n * sizeof *q->d);
            q->adv = nasc_alloc(s->ctx, (size_t)r->M * sizeof *q->adv);
            q->got = nasc_alloc(s->ctx, (size_t)r->M);
            if (!q->proposal || !q->d || !q->adv || !q->got) return NASC_ENOMEM;
        }
    }
    return NASC_OK;
}

static void rl_fini(nasc_strategy *s) {
    rl *r = s->impl;
    if (!r) return;
    nasc_controller_destroy(r->ctl);
    nasc_free(s->ctx, r->m);
    nasc_free(s->ctx, r->v);
    nasc_free(s->ctx, r->grad);
    nasc_free(s->ctx, r->batch_d);
    nasc_free(s->ctx, r->batch_adv);
    for (int k = 0; r->rep && k < r->K; k++) {
        nasc_free(s->ctx, r->rep[k].proposal);
        nasc_free(s->ctx, r->rep[k].d);
        nasc_free(s->ctx, r->rep[k].adv);
        nasc_free(s->ctx, r->rep[k].got);
    }
    nasc_free(s->ctx, r->rep);
    nasc_free(s->ctx, r->acc);
    for (int k = 0; r->copy && k < r->K; k++) nasc_free(s->ctx, r->copy[k]);
    nasc_free(s->ctx, r->copy);
    nasc_free(s->ctx, r->copy_version);
    nasc_free(s->ctx, r->copy_refs);
    nasc_free(s->ctx, r);
}

/* With replicas: the first replica (round robin from r->next) that has a
 * child left to hand out, or that can start a round; -1 when every
 * replica waits for rewards. */
static int replica_for_proposal(const rl *r) {
    for (int i = 0; i < r->K; i++) {
        int k = (r->next + i) % r->K;
        const replica *q = &r->rep[k];
        if (!q->active || q->handed < r->M) return k;
    }
    return -1;
}

/* A slot holding the weights of `version` for one more replica: the slot
 * that has them, else a free one (*fresh: its weights are to be filled). */
static int copy_acquire(nasc_strategy *s, int64_t version, bool *fresh) {
    rl *r = s->impl;
    int free_slot = -1;
    *fresh = false;
    for (int k = 0; k < r->K; k++) {
        if (r->copy_refs[k] > 0 && r->copy_version[k] == version) {
            r->copy_refs[k]++;
            return k;
        }
        if (r->copy_refs[k] == 0 && free_slot < 0) free_slot = k;
    }
    if (free_slot < 0) return -1; /* cannot happen: K replicas use at most K slots */
    if (!r->copy[free_slot]) {
        size_t P = nasc_controller_size(r->ctl);
        r->copy[free_slot] = nasc_alloc(s->ctx, (P ? P : 1) * sizeof *r->copy[free_slot]);
        if (!r->copy[free_slot]) return -1;
    }
    r->copy_version[free_slot] = version;
    r->copy_refs[free_slot] = 1;
    *fresh = true;
    return free_slot;
}

static bool rl_ready(const nasc_strategy *s) {
    const rl *r = s->impl;
    return !r->K || replica_for_proposal(r) >= 0;
}

static nasc_status rl_propose(nasc_strategy *s, uint32_t *d) {
    rl *r = s->impl;
    double lp, ent;
    if (!r->K) return nasc_controller_run(r->ctl, d, &s->rng, &lp, &ent);
    int k = replica_for_proposal(r);
    if (k < 0) return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "reinforce: every replica waits for rewards");
    replica *q = &r->rep[k];
    size_t n = s->n;
    if (!q->active) {
        /* a new round: keep the controller's weights (shared with replicas
         * that started at this version) and sample all m children */
        bool fresh;
        q->copy = copy_acquire(s, r->adam_step, &fresh);
        if (q->copy < 0) return NASC_ENOMEM;
        if (fresh)
            memcpy(r->copy[q->copy], nasc_controller_params(r->ctl),
                   nasc_controller_size(r->ctl) * sizeof *r->copy[q->copy]);
        q->version = r->adam_step;
        q->active = true;
        q->handed = q->done = 0;
        for (int i = 0; i < r->M; i++) {
            nasc_status st = nasc_controller_run(r->ctl, q->d + (size_t)i * n, &s->rng, &lp, &ent);
            if (st) return st;
            q->adv[i] = NAN;
            q->got[i] = 0;
        }
    }
    memcpy(d, q->d + (size_t)q->handed * n, n * sizeof *d);
    q->proposal[q->handed++] = s->proposed;
    if (q->handed == r->M) r->next = (k + 1) % r->K;
    return NASC_OK;
}

/* grad += the gradient of the mean REINFORCE loss over the count
 * architectures with a finite advantage, L = -(R - b) log p(d) -
 * entropy_weight * H, at the controller's current weights. */
static nasc_status add_gradient(nasc_strategy *s, uint32_t *ds, const double *adv, int count, double *grad) {
    rl *r = s->impl;
    int used = 0;
    for (int i = 0; i < count; i++) used += isfinite(adv[i]);
    if (!used) return NASC_OK;
    double inv = 1.0 / used;
    for (int i = 0; i < count; i++) {
        if (!isfinite(adv[i])) continue;
        double lp, ent;
        nasc_status st = nasc_controller_run(r->ctl, ds + (size_t)i * s->n, NULL, &lp, &ent);
        if (st) return st;
        nasc_controller_backward(r->ctl, -adv[i] * inv, -(double)s->opt.entropy * inv, grad);
    }
    return NASC_OK;
}

/* One Adam step on grad (scaled by `scale` first), clipped to a global
 * norm of 5. */
static void adam_step(nasc_strategy *s, const double *grad, double scale) {
    rl *r = s->impl;
    size_t P = nasc_controller_size(r->ctl);
    double norm = 0;
    for (size_t i = 0; i < P; i++) norm += grad[i] * scale * grad[i] * scale;
    norm = sqrt(norm);
    if (norm > 5) scale *= 5 / norm;
    r->adam_step++;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1 - pow(b1, (double)r->adam_step), c2 = 1 - pow(b2, (double)r->adam_step);
    float *th = nasc_controller_params(r->ctl);
    for (size_t i = 0; i < P; i++) {
        double g = grad[i] * scale;
        double m = b1 * r->m[i] + (1 - b1) * g, v = b2 * r->v[i] + (1 - b2) * g * g;
        r->m[i] = (float)m;
        r->v[i] = (float)v;
        th[i] = (float)(th[i] - s->opt.lr * (m / c1) / (sqrt(v / c2) + eps));
    }
}

/* One Adam step on the mean REINFORCE loss of the batch. */
static nasc_status rl_update(nasc_strategy *s) {
    rl *r = s->impl;
    memset(r->grad, 0, nasc_controller_size(r->ctl) * sizeof *r->grad);
    nasc_status st = add_gradient(s, r->batch_d, r->batch_adv, r->pending, r->grad);
    if (st) return st;
    adam_step(s, r->grad, 1.0);
    r->pending = 0;
    return NASC_OK;
}

/* Replica k's round is complete: its gradient, computed on its copy of
 * the weights, joins the others; after G of them the controller steps. */
static nasc_status replica_gradient(nasc_strategy *s, int k) {
    rl *r = s->impl;
    replica *q = &r->rep[k];
    size_t P = nasc_controller_size(r->ctl);
    float *th = nasc_controller_params(r->ctl), *copy = r->copy[q->copy];
    /* the controller's weights and the copy trade places for the gradient */
    for (size_t i = 0; i < P; i++) {
        float t = th[i];
        th[i] = copy[i];
        copy[i] = t;
    }
    memset(r->grad, 0, P * sizeof *r->grad);
    nasc_status st = add_gradient(s, q->d, q->adv, r->M, r->grad);
    for (size_t i = 0; i < P; i++) {
        float t = th[i];
        th[i] = copy[i];
        copy[i] = t;
    }
    if (st) return st;
    r->copy_refs[q->copy]--;
    int ok = 0;
    for (int i = 0; i < r->M; i++) ok += isfinite(q->adv[i]);
    q->active = false;
    if (!ok) {
        nasc_strategy_logf(s, "replica %d: children %lld..%lld all failed; no gradient", k,
                           (long long)q->proposal[0], (long long)q->proposal[r->M - 1]);
        return NASC_OK;
    }
    for (size_t i = 0; i < P; i++) r->acc[i] += r->grad[i];
    r->acc_n++;
    int64_t stale = r->adam_step - q->version;
    bool apply = r->acc_n == r->G;
    nasc_strategy_logf(s,
                       "replica %d: gradient of proposals %lld..%lld (%d with a reward) on weights of update %lld, "
                       "staleness %lld; %s",
                       k, (long long)q->proposal[0], (long long)q->proposal[r->M - 1], ok, (long long)q->version,
                       (long long)stale, apply ? "update" : "held for the next update");
    if (apply) {
        adam_step(s, r->acc, 1.0 / r->G);
        memset(r->acc, 0, P * sizeof *r->acc);
        r->acc_n = 0;
    }
    return NASC_OK;
}

static nasc_status rl_report(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward) {
    rl *r = s->impl;
    double adv = NAN;
    if (!isnan(reward)) {
        if (!r->has_baseline) {
            r->baseline = reward;
            r->has_baseline = 1;
        }
        adv = reward - r->baseline;
        r->baseline = s->opt.baseline_decay * r->baseline + (1 - s->opt.baseline_decay) * reward;
    }
    if (r->K) {
        for (int k = 0; k < r->K; k++) {
            replica *q = &r->rep[k];
            for (int i = 0; q->active && i < q->handed; i++) {
                if (q->proposal[i] != proposal || q->got[i]) continue;
                q->adv[i] = adv;
                q->got[i] = 1;
                if (++q->done == r->M) return replica_gradient(s, k);
                return NASC_OK;
            }
        }
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "reinforce: proposal %lld belongs to no replica",
                          (long long)proposal);
    }
    (void)proposal;
    if (isnan(reward)) return NASC_OK; /* a failed trial teaches nothing here */
    memcpy(r->batch_d + (size_t)r->pending * s->n, d, (size_t)s->n * sizeof *d);
    r->batch_adv[r->pending++] = adv;
    if (r->pending == s->opt.batch) return rl_update(s);
    return NASC_OK;
}

/* Controller weights and Adam moments: P floats each. */
static nasc_status put_tensor(nasc_strategy *s, nasc_param_store *st, const char *name, const float *src) {
    return nasc_strategy_put_floats(st, name, src, (int64_t)nasc_controller_size(((rl *)s->impl)->ctl));
}

static nasc_status get_tensor(nasc_strategy *s, const nasc_param_store *st, const char *name, float *dst) {
    return nasc_strategy_get_floats(s->ctx, st, name, dst, (int64_t)nasc_controller_size(((rl *)s->impl)->ctl));
}

/* The replicas: "reinforce/replicas" = "K M G gradients-held next", the
 * held gradients' sum, the weights of every version a replica started at
 * ("reinforce/copy/<version>", once however many replicas share it), and
 * per replica in a round its version and children
 * ("reinforce/replica/<k>" = "version handed"; "reinforce/replica/<k>/<i>":
 * the advantage, the proposal number or -1 before it is handed out, the
 * decisions; "reinforce/replica/<k>/done": one 0/1 per child). The held
 * sum is in doubles: each is saved as three floats that add up to it. */
static nasc_status replicas_save(nasc_strategy *s, nasc_param_store *st) {
    rl *r = s->impl;
    char buf[96], key[64];
    snprintf(buf, sizeof buf, "%d %d %d %d %d", r->K, r->M, r->G, r->acc_n, r->next);
    nasc_status e = nasc_params_set_meta(st, "reinforce/replicas", buf);
    size_t P = nasc_controller_size(r->ctl);
    if (!e && r->acc_n) {
        /* each double as three floats whose sum it is, exactly */
        int64_t n = 3 * (int64_t)P;
        nasc_tensor *t = nasc_params_get(st, "reinforce/held", 1, &n);
        if (!t) return st->ctx->diag.status ? st->ctx->diag.status : NASC_ENOMEM;
        for (size_t i = 0; i < P; i++) {
            double x = r->acc[i];
            float a = (float)x, b = (float)(x - a), c = (float)(x - a - b);
            t->data[3 * i] = a;
            t->data[3 * i + 1] = b;
            t->data[3 * i + 2] = c;
        }
    }
    for (int k = 0; !e && k < r->K; k++) {
        const replica *q = &r->rep[k];
        if (!q->active) continue;
        snprintf(key, sizeof key, "reinforce/replica/%d", k);
        snprintf(buf, sizeof buf, "%lld %d", (long long)q->version, q->handed);
        e = nasc_params_set_meta(st, key, buf);
        snprintf(key, sizeof key, "reinforce/copy/%lld", (long long)q->version);
        if (!e && !nasc_params_find(st, key)) e = put_tensor(s, st, key, r->copy[q->copy]);
        if (!e) {
            char *done = nasc_alloc(s->ctx, (size_t)r->M + 1);
            if (!done) return NASC_ENOMEM;
            for (int i = 0; i < r->M; i++) done[i] = q->got[i] ? '1' : '0';
            done[r->M] = 0;
            snprintf(key, sizeof key, "reinforce/replica/%d/done", k);
            e = nasc_params_set_meta(st, key, done);
            nasc_free(s->ctx, done);
        }
        for (int i = 0; !e && i < r->M; i++) {
            snprintf(key, sizeof key, "reinforce/replica/%d/%d", k, i);
            e = nasc_strategy_meta_arch(s, st, key, q->adv[i], q->d + (size_t)i * s->n,
                                        i < q->handed ? q->proposal[i] : -1);
        }
    }
    return e;
}

static nasc_status replicas_load(nasc_strategy *s, const nasc_param_store *st) {
    rl *r = s->impl;
    const char *v = nasc_params_meta(st, "reinforce/replicas");
    int K, M, G, held, next;
    char end;
    if (!v || sscanf(v, "%d %d %d %d %d%c", &K, &M, &G, &held, &next, &end) != 5)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing or malformed 'reinforce/replicas'");
    if (K != r->K || M != r->M || G != r->G)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy state: saved with %d replicas of %d children and %d gradients per update, not %d, "
                          "%d and %d",
                          K, M, G, r->K, r->M, r->G);
    if (held < 0 || held >= G || next < 0 || next >= K)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed 'reinforce/replicas'");
    size_t P = nasc_controller_size(r->ctl);
    r->acc_n = held;
    r->next = next;
    memset(r->copy_refs, 0, (size_t)r->K * sizeof *r->copy_refs);
    memset(r->acc, 0, P * sizeof *r->acc);
    if (held) {
        const nasc_tensor *t = nasc_params_find(st, "reinforce/held");
        if (!t || t->numel != 3 * (int64_t)P)
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "strategy state: 'reinforce/held' is missing or not of the controller's size");
        for (size_t i = 0; i < P; i++)
            r->acc[i] = ((double)t->data[3 * i] + (double)t->data[3 * i + 1]) + (double)t->data[3 * i + 2];
    }
    nasc_status e = NASC_OK;
    for (int k = 0; !e && k < r->K; k++) {
        replica *q = &r->rep[k];
        char key[64];
        snprintf(key, sizeof key, "reinforce/replica/%d", k);
        v = nasc_params_meta(st, key);
        q->active = v != NULL;
        if (!v) continue;
        long long version;
        int handed;
        if (sscanf(v, "%lld %d%c", &version, &handed, &end) != 2 || version < 0 || version > r->adam_step ||
            handed < 1 || handed > r->M)
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
        q->version = version;
        q->handed = handed;
        bool fresh;
        q->copy = copy_acquire(s, q->version, &fresh);
        if (q->copy < 0) return NASC_ENOMEM;
        snprintf(key, sizeof key, "reinforce/copy/%lld", (long long)q->version);
        if (fresh) e = get_tensor(s, st, key, r->copy[q->copy]);
        snprintf(key, sizeof key, "reinforce/replica/%d/done", k);
        const char *done = nasc_params_meta(st, key);
        if (!e && (!done || strlen(done) != (size_t)r->M))
            e = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing or malformed '%s'", key);
        q->done = 0;
        for (int i = 0; !e && i < r->M; i++) {
            q->got[i] = done[i] == '1';
            q->done += q->got[i];
            if ((done[i] != '0' && done[i] != '1') || (q->got[i] && i >= handed))
                e = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
        }
        for (int i = 0; !e && i < r->M; i++) {
            snprintf(key, sizeof key, "reinforce/replica/%d/%d", k, i);
            int64_t p;
            e = nasc_strategy_read_arch(s, st, key, &q->adv[i], q->d + (size_t)i * s->n, &p);
            if (!e && (i < handed ? p < 0 || p >= s->proposed : p != -1))
                e = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: '%s' has proposal %lld", key,
                               (long long)p);
            if (!e && i < handed) q->proposal[i] = p;
        }
        if (!e && q->done == r->M)
            e = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: replica %d has every reward but sent no gradient", k);
    }
    return e;
}

static nasc_status rl_save(nasc_strategy *s, nasc_param_store *st) {
    rl *r = s->impl;
    char num[32];
    nasc_status e = put_tensor(s, st, "reinforce/theta", nasc_controller_params(r->ctl));
    if (!e) e = put_tensor(s, st, "reinforce/adam_m", r->m);
    if (!e) e = put_tensor(s, st, "reinforce/adam_v", r->v);
    snprintf(num, sizeof num, "%lld", (long long)r->adam_step);
    if (!e) e = nasc_params_set_meta(st, "reinforce/adam_step", num);
    if (!e) e = nasc_strategy_meta_f64(st, "reinforce/baseline", r->has_baseline ? r->baseline : NAN);
    snprintf(num, sizeof num, "%d", r->pending);
    if (!e) e = nasc_params_set_meta(st, "reinforce/pending", num);
    for (int i = 0; !e && i < r->pending; i++) {
        char key[48];
        snprintf(key, sizeof key, "reinforce/batch/%d", i);
        e = nasc_strategy_meta_arch(s, st, key, r->batch_adv[i], r->batch_d + (size_t)i * s->n, 0);
    }
    if (!e && r->K) e = replicas_save(s, st);
    return e;
}

static nasc_status rl_load(nasc_strategy *s, const nasc_param_store *st) {
    rl *r = s->impl;
    int64_t step, pending;
    double base;
    nasc_status e = get_tensor(s, st, "reinforce/theta", nasc_controller_params(r->ctl));
    if (!e) e = get_tensor(s, st, "reinforce/adam_m", r->m);
    if (!e) e = get_tensor(s, st, "reinforce/adam_v", r->v);
    if (!e) e = nasc_strategy_read_i64(s->ctx, st, "reinforce/adam_step", 0, INT64_C(1) << 50, &step);
    if (!e) e = nasc_strategy_read_f64(s->ctx, st, "reinforce/baseline", &base);
    if (!e) e = nasc_strategy_read_i64(s->ctx, st, "reinforce/pending", 0, s->opt.batch - 1, &pending);
    if (e) return e;
    r->adam_step = step;
    r->has_baseline = !isnan(base);
    r->baseline = r->has_baseline ? base : 0;
    r->pending = 0;
    for (int i = 0; !e && i < (int)pending; i++) {
        char key[48];
        snprintf(key, sizeof key, "reinforce/batch/%d", i);
        int64_t extra;
        e = nasc_strategy_read_arch(s, st, key, &r->batch_adv[i], r->batch_d + (size_t)i * s->n, &extra);
        if (!e) r->pending++;
    }
    if (!e && r->K) e = replicas_load(s, st);
    if (!e && !r->K && nasc_params_meta(st, "reinforce/replicas"))
        e = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                       "strategy state: saved by reinforce with controller replicas (%s), loaded without",
                       nasc_params_meta(st, "reinforce/replicas"));
    return e;
}

const nasc_strategy_vt nasc_strategy_reinforce_vt = {"reinforce", rl_init, rl_fini, rl_propose,
                                                     rl_report,   rl_save, rl_load, rl_ready};
