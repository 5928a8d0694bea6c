/* evolve.c - regularized (aging) evolution (Real et al., AAAI 2019).
 *
 * The first `population` proposals are random. After that, each proposal
 * draws `sample_size` distinct members of the population, takes the one
 * with the highest reward as the parent and changes exactly one of its
 * decisions (a CHOICE to another value, one bit of a SKIP mask). When the
 * child's reward is reported it joins the population and the oldest member
 * dies. Failed children (reward NaN) do not join. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "strategies_internal.h"

typedef struct evo {
    int cap;          /* population size */
    int size;         /* members alive */
    int oldest;       /* ring index of the oldest member */
    uint32_t *archs;  /* cap x n decisions */
    double *rewards;  /* cap */
} evo;

static nasc_status evo_init(nasc_strategy *s) {
    if (s->opt.population < 2 || s->opt.population > 100000)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "evolution: population %d is not in [2, 100000]",
                          s->opt.population);
    if (s->opt.sample_size < 1 || s->opt.sample_size > s->opt.population)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "evolution: sample size %d is not in [1, %d]",
                          s->opt.sample_size, s->opt.population);
    evo *e = nasc_alloc(s->ctx, sizeof *e);
    if (!e) return NASC_ENOMEM;
    memset(e, 0, sizeof *e);
    e->cap = s->opt.population;
    e->archs = nasc_alloc(s->ctx, (size_t)e->cap * (s->n ? s->n : 1) * sizeof *e->archs);
    e->rewards = nasc_alloc(s->ctx, (size_t)e->cap * sizeof *e->rewards);
    s->impl = e;
    if (!e->archs || !e->rewards) return NASC_ENOMEM;
    return NASC_OK;
}

static void evo_fini(nasc_strategy *s) {
    evo *e = s->impl;
    if (!e) return;
    nasc_free(s->ctx, e->archs);
    nasc_free(s->ctx, e->rewards);
    nasc_free(s->ctx, e);
}

/* Member k in age order (0 = oldest). */
static int member(const evo *e, int k) { return (e->oldest + k) % e->cap; }

/* Change exactly one decision of d. Decisions with a single value cannot
 * change; when none can, d stays as it is. */
static void mutate(nasc_strategy *s, uint32_t *d) {
    uint32_t mutable = 0;
    for (uint32_t i = 0; i < s->n; i++)
        mutable += s->dec[i].kind == NASC_DEC_CHOICE ? s->dec[i].card > 1 : s->dec[i].card > 0;
    if (!mutable) return;
    uint64_t pick = nasc_rng_below(&s->rng, mutable);
    for (uint32_t i = 0; i < s->n; i++) {
        const nasc_decision *dc = &s->dec[i];
        bool can = dc->kind == NASC_DEC_CHOICE ? dc->card > 1 : dc->card > 0;
        if (!can || pick--) continue;
        if (dc->kind == NASC_DEC_CHOICE) {
            uint32_t v = (uint32_t)nasc_rng_below(&s->rng, (uint64_t)dc->card - 1);
            d[i] = v >= d[i] ? v + 1 : v;
        } else {
            d[i] ^= 1u << nasc_rng_below(&s->rng, (uint64_t)dc->card);
        }
        return;
    }
}

static nasc_status evo_propose(nasc_strategy *s, uint32_t *d) {
    evo *e = s->impl;
    if (e->size < e->cap) {
        for (uint32_t i = 0; i < s->n; i++) d[i] = nasc_strategy_random_value(&s->dec[i], &s->rng);
        return NASC_OK;
    }
    /* tournament: sample_size distinct members (partial Fisher-Yates) */
    int idx[256], *pool = idx;
    if (e->cap > 256) {
        pool = nasc_alloc(s->ctx, (size_t)e->cap * sizeof *pool);
        if (!pool) return NASC_ENOMEM;
    }
    for (int k = 0; k < e->cap; k++) pool[k] = k;
    int best = -1;
    for (int k = 0; k < s->opt.sample_size; k++) {
        int j = k + (int)nasc_rng_below(&s->rng, (uint64_t)(e->cap - k));
        int t = pool[k];
        pool[k] = pool[j];
        pool[j] = t;
        int m = member(e, pool[k]);
        if (best < 0 || e->rewards[m] > e->rewards[best]) best = m;
    }
    if (pool != idx) nasc_free(s->ctx, pool);
    memcpy(d, e->archs + (size_t)best * s->n, (size_t)s->n * sizeof *d);
    mutate(s, d);
    return NASC_OK;
}

static nasc_status evo_report(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward) {
    (void)proposal;
    evo *e = s->impl;
    if (isnan(reward)) return NASC_OK; /* a failed child does not join */
    int slot;
    if (e->size < e->cap) {
        slot = member(e, e->size);
        e->size++;
    } else {
        slot = e->oldest; /* the oldest dies, the child takes its place */
        e->oldest = (e->oldest + 1) % e->cap;
    }
    memcpy(e->archs + (size_t)slot * s->n, d, (size_t)s->n * sizeof *d);
    e->rewards[slot] = reward;
    return NASC_OK;
}

static nasc_status evo_save(nasc_strategy *s, nasc_param_store *st) {
    evo *e = s->impl;
    char num[32];
    snprintf(num, sizeof num, "%d", e->size);
    nasc_status r = nasc_params_set_meta(st, "evolution/size", num);
    snprintf(num, sizeof num, "%d", e->cap);
    if (!r) r = nasc_params_set_meta(st, "evolution/population", num);
    for (int k = 0; !r && k < e->size; k++) {
        char key[48];
        snprintf(key, sizeof key, "evolution/member/%d", k); /* in age order, oldest first */
        int m = member(e, k);
        r = nasc_strategy_meta_arch(s, st, key, e->rewards[m], e->archs + (size_t)m * s->n, 0);
    }
    return r;
}

static nasc_status evo_load(nasc_strategy *s, const nasc_param_store *st) {
    evo *e = s->impl;
    int64_t size, cap;
    nasc_status r = nasc_strategy_read_i64(s->ctx, st, "evolution/population", e->cap, e->cap, &cap);
    if (!r) r = nasc_strategy_read_i64(s->ctx, st, "evolution/size", 0, e->cap, &size);
    if (r) return r;
    e->oldest = 0;
    e->size = 0;
    for (int k = 0; !r && k < (int)size; k++) {
        char key[48];
        snprintf(key, sizeof key, "evolution/member/%d", k);
        int64_t extra;
        r = nasc_strategy_read_arch(s, st, key, &e->rewards[k], e->archs + (size_t)k * s->n, &extra);
        if (!r && !isfinite(e->rewards[k]))
            r = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: '%s' has no finite reward", key);
        if (!r) e->size++;
    }
    return r;
}

const nasc_strategy_vt nasc_strategy_evolution_vt = {"evolution", evo_init,   evo_fini, evo_propose,
                                                     evo_report,  evo_save, evo_load, NULL};
