/* strategies.c - the search strategies behind one interface, and their
 * table: random search (here), REINFORCE with the NAS-RL LSTM controller
 * (reinforce.c) and regularized evolution (evolve.c). Strategies see
 * decisions and rewards only. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strategies_internal.h"

/* The strategy table: the only place a strategy is registered. One row per
 * strategy, in the order help texts and listings show them:
 * X(name, one-line summary, vtable or NULL, one-shot run or NULL, its
 * spaces or NULL). The name is what --strategy takes and must be the
 * vtable's name (it keys the saved state). Per-child strategies have a
 * vtable and run in nasc_search_loop, one trial at a time; one-shot
 * strategies own their training (shared weights, a hypernetwork) and run
 * through nasc_oneshot_search on the spaces they list. */
#define STRATEGY_TABLE(X)                                                                                      \
    X("random", "every decision uniform at random: the baseline", &nasc_strategy_random_vt, NULL, NULL)        \
    X("reinforce", "REINFORCE with the NAS-RL LSTM controller (Zoph & Le 2017)", &nasc_strategy_reinforce_vt,   \
      NULL, NULL)                                                                                              \
    X("evolution", "regularized evolution: tournament, one mutation, oldest dies (Real et al. 2019)",          \
      &nasc_strategy_evolution_vt, NULL, NULL)                                                                 \
    X("enas", "ENAS: shared weights, one training run, the ENAS controller (Pham et al. 2018); enas spaces",    \
      NULL, nasc_enas_search, nasc_enas_spaces)                                                               \
    X("smash", "SMASH: a hypernetwork generates every child's weights, children ranked by them (Brock et al. "  \
               "2018); smash space",                                                                           \
      NULL, nasc_smash_search, nasc_smash_spaces)

typedef nasc_status (*oneshot_fn)(nasc_ctx *ctx, nasc_oneshot_run *r);
#define ROW_NAME(name, summary, vt, run, spaces) name,
#define ROW_ENTRY(name, summary, vt, run, spaces) {name, summary, false}, /* oneshot: from runs[] */
#define ROW_VT(name, summary, vt, run, spaces) vt,
#define ROW_RUN(name, summary, vt, run, spaces) run,
#define ROW_SPACES(name, summary, vt, run, spaces) spaces,
const char *const nasc_strategy_names[] = {STRATEGY_TABLE(ROW_NAME) NULL};
static const nasc_strategy_entry entries[] = {STRATEGY_TABLE(ROW_ENTRY)};
static const nasc_strategy_vt *const vts[] = {STRATEGY_TABLE(ROW_VT)};
static const oneshot_fn runs[] = {STRATEGY_TABLE(ROW_RUN)};
static const char *const *const row_spaces[] = {STRATEGY_TABLE(ROW_SPACES)};
#undef ROW_NAME
#undef ROW_ENTRY
#undef ROW_VT
#undef ROW_RUN
#undef ROW_SPACES
#define N_STRATEGIES (sizeof entries / sizeof entries[0])

bool nasc_strategy_registered(size_t i, nasc_strategy_entry *out) {
    if (i >= N_STRATEGIES) return false;
    *out = entries[i];
    out->oneshot = runs[i] != NULL;
    return true;
}

nasc_strategy_options nasc_strategy_options_default(void) {
    nasc_strategy_options o;
    memset(&o, 0, sizeof o);
    o.seed = NASC_DEFAULT_SEED;
    o.lstm_size = 64;
    o.batch = 5;
    o.lr = 0.006f;
    o.entropy = 7e-3f;
    o.baseline_decay = 0.9f;
    o.children_per_replica = 1;
    o.grads_per_update = 1;
    o.population = 20;
    o.sample_size = 5;
    return o;
}

/* A signature of the decision list, so that a state is not loaded into a
 * strategy over other decisions. */
static uint64_t decisions_signature(const nasc_decision *d, uint32_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++) {
        char buf[96];
        int k = snprintf(buf, sizeof buf, "%s/%d/%d/%d;", d[i].name, (int)d[i].kind, d[i].card, d[i].layer);
        for (int j = 0; j < k; j++) {
            h ^= (unsigned char)buf[j];
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

uint32_t nasc_strategy_random_value(const nasc_decision *d, nasc_rng *r) {
    if (d->kind == NASC_DEC_CHOICE) return d->card > 1 ? (uint32_t)nasc_rng_below(r, (uint64_t)d->card) : 0;
    uint32_t v = 0;
    for (int j = 0; j < d->card; j++)
        if (nasc_rng_next(r) >> 63) v |= 1u << j;
    return v;
}

/* ------------------------------------------------------------------ */
/* Helpers for state in a parameter store                              */
/* ------------------------------------------------------------------ */

nasc_status nasc_strategy_meta_u64s(nasc_param_store *st, const char *key, const uint64_t *v, int n) {
    char buf[4 * 20 + 8];
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && i < 4; i++) len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%016llx", i ? " " : "", (unsigned long long)v[i]);
    return nasc_params_set_meta(st, key, buf);
}

nasc_status nasc_strategy_read_u64s(nasc_ctx *ctx, const nasc_param_store *st, const char *key, uint64_t *v, int n) {
    const char *p = nasc_params_meta(st, key);
    if (!p) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing '%s'", key);
    for (int i = 0; i < n; i++) {
        char *e;
        unsigned long long x = strtoull(p, &e, 16);
        if (e == p || (*e && *e != ' '))
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
        v[i] = x;
        p = e;
    }
    if (*p) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
    return NASC_OK;
}

nasc_status nasc_strategy_read_i64(nasc_ctx *ctx, const nasc_param_store *st, const char *key, int64_t lo, int64_t hi,
                                   int64_t *v) {
    const char *p = nasc_params_meta(st, key);
    if (!p) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing '%s'", key);
    char *e;
    long long x = strtoll(p, &e, 10);
    if (e == p || *e || x < lo || x > hi)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: '%s' is '%s', not in [%lld, %lld]",
                          key, p, (long long)lo, (long long)hi);
    *v = x;
    return NASC_OK;
}

nasc_status nasc_strategy_read_f64(nasc_ctx *ctx, const nasc_param_store *st, const char *key, double *v) {
    const char *p = nasc_params_meta(st, key);
    if (!p) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing '%s'", key);
    char *e;
    *v = strtod(p, &e);
    if (e == p || *e) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
    return NASC_OK;
}

nasc_status nasc_strategy_meta_f64(nasc_param_store *st, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v); /* hexadecimal: exact */
    return nasc_params_set_meta(st, key, buf);
}

nasc_status nasc_strategy_put_floats(nasc_param_store *st, const char *name, const float *src, int64_t n) {
    nasc_tensor *t = nasc_params_get(st, name, 1, &n);
    if (!t) return st->ctx->diag.status ? st->ctx->diag.status : NASC_ENOMEM;
    memcpy(t->data, src, (size_t)n * sizeof *src);
    return NASC_OK;
}

nasc_status nasc_strategy_get_floats(nasc_ctx *ctx, const nasc_param_store *st, const char *name, float *dst,
                                     int64_t n) {
    const nasc_tensor *t = nasc_params_find(st, name);
    if (!t) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing tensor '%s'", name);
    if (t->rank != 1 || t->numel != n)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy state: tensor '%s' has %lld values, the controller %lld (another lstm size?)", name,
                          (long long)t->numel, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(t->data[i]))
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: tensor '%s' holds %g at %lld",
                              name, t->data[i], (long long)i);
    memcpy(dst, t->data, (size_t)n * sizeof *dst);
    return NASC_OK;
}

/* "reward d0,d1,..." */
nasc_status nasc_strategy_meta_arch(nasc_strategy *s, nasc_param_store *st, const char *key, double reward,
                                    const uint32_t *d, int64_t extra) {
    nasc_buf b;
    nasc_buf_init(&b, s->ctx);
    nasc_buf_printf(&b, "%a %lld ", reward, (long long)extra);
    for (uint32_t i = 0; i < s->n; i++) nasc_buf_printf(&b, "%s%u", i ? "," : "", d[i]);
    nasc_status r = b.oom ? NASC_ENOMEM : nasc_params_set_meta(st, key, b.data);
    nasc_buf_free(&b);
    return r;
}

nasc_status nasc_strategy_read_arch(nasc_strategy *s, const nasc_param_store *st, const char *key, double *reward,
                                    uint32_t *d, int64_t *extra) {
    const char *p = nasc_params_meta(st, key);
    if (!p) return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing '%s'", key);
    char *e;
    *reward = strtod(p, &e);
    if (e == p || *e != ' ') goto bad;
    p = e + 1;
    *extra = strtoll(p, &e, 10);
    if (e == p || *e != ' ') goto bad;
    p = e + 1;
    for (uint32_t i = 0; i < s->n; i++) {
        if (i) {
            if (*p != ',') goto bad;
            p++;
        }
        unsigned long v = strtoul(p, &e, 10);
        if (e == p) goto bad;
        if (nasc_strategy_check_value(&s->dec[i], (uint64_t)v)) goto bad;
        d[i] = (uint32_t)v;
        p = e;
    }
    if (*p) goto bad;
    return NASC_OK;
bad:
    return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: malformed '%s'", key);
}

bool nasc_strategy_check_value(const nasc_decision *d, uint64_t v) {
    if (d->kind == NASC_DEC_CHOICE) return v >= (uint64_t)(d->card > 0 ? d->card : 1);
    return d->card < 64 && v >> d->card;
}

/* ------------------------------------------------------------------ */
/* The interface                                                       */
/* ------------------------------------------------------------------ */

static const nasc_strategy_vt *find_vt(const char *name) {
    for (size_t i = 0; i < N_STRATEGIES; i++)
        if (strcmp(entries[i].name, name) == 0) {
            assert(!vts[i] || strcmp(vts[i]->name, entries[i].name) == 0);
            return vts[i];
        }
    return NULL;
}

bool nasc_strategy_is_oneshot(const char *name) {
    for (size_t i = 0; i < N_STRATEGIES; i++)
        if (strcmp(entries[i].name, name) == 0) return runs[i] != NULL;
    return false;
}

/* The row of one-shot strategy `strategy` that supports space sp, or
 * NASC_EINPUT naming the spaces it supports. */
static nasc_status oneshot_row(nasc_ctx *ctx, const char *strategy, const char *sp, size_t *row) {
    size_t i = 0;
    while (i < N_STRATEGIES && !(strategy && strcmp(entries[i].name, strategy) == 0)) i++;
    if (i == N_STRATEGIES || !runs[i])
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "'%s' is not a one-shot strategy",
                          strategy ? strategy : "(none)");
    char list[160] = "";
    size_t used = 0;
    for (int k = 0; row_spaces[i][k]; k++) {
        if (strcmp(row_spaces[i][k], sp) == 0) {
            *row = i;
            return NASC_OK;
        }
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", row_spaces[i][k]);
    }
    return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "--strategy %s searches the %s spaces, not '%s'", strategy,
                      list, sp);
}

nasc_status nasc_oneshot_check(nasc_ctx *ctx, const char *strategy, const char *space) {
    size_t row;
    return oneshot_row(ctx, strategy, space, &row);
}

nasc_status nasc_oneshot_search(nasc_ctx *ctx, const char *strategy, nasc_oneshot_run *r) {
    size_t row;
    nasc_status st = oneshot_row(ctx, strategy, nasc_space_name(r->space), &row);
    return st ? st : runs[row](ctx, r);
}

nasc_status nasc_strategy_create(nasc_ctx *ctx, const char *name, const nasc_decision *decs, uint32_t n,
                                 const nasc_strategy_options *opt, nasc_strategy **out) {
    *out = NULL;
    if (name && nasc_strategy_is_oneshot(name))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy '%s' is one-shot: it trains shared weights itself and runs in its own loop, not "
                          "trial by trial",
                          name);
    const nasc_strategy_vt *vt = name ? find_vt(name) : NULL;
    if (!vt) {
        char known[256];
        size_t used = 0;
        known[0] = 0;
        for (size_t i = 0; i < N_STRATEGIES && used < sizeof known; i++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", entries[i].name);
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "unknown strategy '%s' (known: %s)",
                          name ? name : "(null)", known);
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((decs[i].kind == NASC_DEC_CHOICE && decs[i].card < 1) ||
            (decs[i].kind == NASC_DEC_SKIP && (decs[i].card < 0 || decs[i].card > NASC_SKIP_MAX)))
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "decision %u (%s) has cardinality %d", i,
                              decs[i].name, decs[i].card);
    }
    nasc_strategy *s = nasc_alloc(ctx, sizeof *s);
    if (!s) return NASC_ENOMEM;
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->vt = vt;
    s->opt = opt ? *opt : nasc_strategy_options_default();
    s->n = n;
    s->dec = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *s->dec);
    if (!s->dec) {
        nasc_free(ctx, s);
        return NASC_ENOMEM;
    }
    if (n) memcpy(s->dec, decs, (size_t)n * sizeof *decs);
    s->signature = decisions_signature(decs, n);
    nasc_rng_seed(&s->rng, s->opt.seed);
    nasc_status st = vt->init ? vt->init(s) : NASC_OK;
    if (st) {
        nasc_strategy_destroy(s);
        return st;
    }
    *out = s;
    return NASC_OK;
}

void nasc_strategy_destroy(nasc_strategy *s) {
    if (!s) return;
    if (s->vt->fini) s->vt->fini(s);
    nasc_free(s->ctx, s->out_p);
    nasc_free(s->ctx, s->out_d);
    nasc_free(s->ctx, s->dec);
    nasc_free(s->ctx, s);
}

const char *nasc_strategy_name(const nasc_strategy *s) { return s->vt->name; }

void nasc_strategy_set_log(nasc_strategy *s, void (*log)(void *ud, const char *line), void *ud) {
    s->log = log;
    s->log_ud = ud;
}

void nasc_strategy_logf(nasc_strategy *s, const char *fmt, ...) {
    if (!s->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->log(s->log_ud, line);
}

/* Proposal p with decisions d joins the outstanding list. */
static nasc_status add_outstanding(nasc_strategy *s, int64_t p, const uint32_t *d) {
    if (s->n_out == s->cap_out) {
        int64_t cap = s->cap_out ? 2 * s->cap_out : 8;
        int64_t *np = nasc_realloc(s->ctx, s->out_p, (size_t)cap * sizeof *np);
        if (!np) return NASC_ENOMEM;
        s->out_p = np;
        uint32_t *nd = nasc_realloc(s->ctx, s->out_d, (size_t)cap * (s->n ? s->n : 1) * sizeof *nd);
        if (!nd) return NASC_ENOMEM;
        s->out_d = nd;
        s->cap_out = cap;
    }
    s->out_p[s->n_out] = p;
    memcpy(s->out_d + (size_t)s->n_out * s->n, d, (size_t)s->n * sizeof *d);
    s->n_out++;
    return NASC_OK;
}

bool nasc_strategy_ready(const nasc_strategy *s) { return !s->vt->ready || s->vt->ready(s); }

nasc_status nasc_strategy_propose(nasc_strategy *s, uint32_t *d) {
    if (!nasc_strategy_ready(s))
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy %s: no proposal before a reward arrives (every replica waits for its children)",
                          s->vt->name);
    nasc_status st = s->vt->propose(s, d);
    if (!st) st = add_outstanding(s, s->proposed, d);
    if (!st) s->proposed++;
    return st;
}

nasc_status nasc_strategy_report_proposal(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward) {
    int64_t k = 0;
    while (k < s->n_out && s->out_p[k] != proposal) k++;
    if (k == s->n_out)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy %s: a reward reported for proposal %lld, which is not an outstanding proposal",
                          s->vt->name, (long long)proposal);
    const uint32_t *want = s->out_d + (size_t)k * s->n;
    for (uint32_t i = 0; i < s->n; i++) {
        if (nasc_strategy_check_value(&s->dec[i], d[i]))
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "decision %u (%s): value %u out of range", i,
                              s->dec[i].name, d[i]);
        if (d[i] != want[i])
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "strategy %s: the reward of proposal %lld comes with other decisions (decision %u "
                              "'%s' is %u, the proposal's %u)",
                              s->vt->name, (long long)proposal, i, s->dec[i].name, d[i], want[i]);
    }
    nasc_status st = s->vt->report(s, proposal, d, reward);
    if (st) return st;
    s->reported++;
    s->n_out--;
    memmove(s->out_p + k, s->out_p + k + 1, (size_t)(s->n_out - k) * sizeof *s->out_p);
    memmove(s->out_d + (size_t)k * s->n, s->out_d + (size_t)(k + 1) * s->n,
            (size_t)(s->n_out - k) * s->n * sizeof *s->out_d);
    return NASC_OK;
}

nasc_status nasc_strategy_report(nasc_strategy *s, const uint32_t *d, double reward) {
    if (s->n_out == 0)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy %s: a reward reported without an outstanding proposal", s->vt->name);
    return nasc_strategy_report_proposal(s, s->out_p[0], d, reward);
}

int64_t nasc_strategy_proposed(const nasc_strategy *s) { return s->proposed; }
int64_t nasc_strategy_reported(const nasc_strategy *s) { return s->reported; }

int64_t nasc_strategy_outstanding(const nasc_strategy *s, int64_t i, uint32_t *d) {
    if (i < 0 || i >= s->n_out) return -1;
    if (d) memcpy(d, s->out_d + (size_t)i * s->n, (size_t)s->n * sizeof *d);
    return s->out_p[i];
}

nasc_status nasc_strategy_save(const nasc_strategy *s, nasc_param_store *st) {
    nasc_strategy *m = (nasc_strategy *)s; /* the helpers read, not write, through it */
    char sig[24];
    snprintf(sig, sizeof sig, "%016llx", (unsigned long long)s->signature);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)s->reported);
    nasc_status r = nasc_params_set_meta(st, "strategy/name", s->vt->name);
    if (!r) r = nasc_params_set_meta(st, "strategy/decisions", sig);
    if (!r) r = nasc_params_set_meta(st, "strategy/reported", num);
    if (!r) r = nasc_strategy_meta_u64s(st, "strategy/rng", s->rng.s, 4);
    if (s->n_out) {
        /* written only when some are outstanding: the state of a search run
         * one trial at a time stays as it was */
        snprintf(num, sizeof num, "%lld", (long long)s->proposed);
        if (!r) r = nasc_params_set_meta(st, "strategy/proposed", num);
        for (int64_t k = 0; !r && k < s->n_out; k++) {
            char key[64];
            snprintf(key, sizeof key, "strategy/outstanding/%lld", (long long)k);
            r = nasc_strategy_meta_arch(m, st, key, NAN, s->out_d + (size_t)k * s->n, s->out_p[k]);
        }
    }
    if (!r && s->vt->save) r = s->vt->save(m, st);
    return r;
}

nasc_status nasc_strategy_load(nasc_strategy *s, const nasc_param_store *st) {
    const char *name = nasc_params_meta(st, "strategy/name");
    if (!name) return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: missing 'strategy/name'");
    if (strcmp(name, s->vt->name) != 0)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy state: 'strategy/name' is the state of strategy '%s', not '%s'", name, s->vt->name);
    uint64_t sig = 0; /* written on success; gcc -O3 cannot prove that every failure returns non-zero */
    nasc_status r = nasc_strategy_read_u64s(s->ctx, st, "strategy/decisions", &sig, 1);
    if (r) return r;
    if (sig != s->signature)
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "strategy state: 'strategy/decisions' says it belongs to another search space");
    int64_t rep;
    r = nasc_strategy_read_i64(s->ctx, st, "strategy/reported", 0, INT64_C(1) << 50, &rep);
    if (!r) r = nasc_strategy_read_u64s(s->ctx, st, "strategy/rng", s->rng.s, 4);
    if (r) return r;
    if (!(s->rng.s[0] | s->rng.s[1] | s->rng.s[2] | s->rng.s[3]))
        return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "strategy state: 'strategy/rng' is all zero");
    s->reported = s->proposed = rep;
    s->n_out = 0;
    if (nasc_params_meta(st, "strategy/proposed")) {
        int64_t prop;
        r = nasc_strategy_read_i64(s->ctx, st, "strategy/proposed", rep, rep + 1000000, &prop);
        uint32_t *d = r ? NULL : nasc_alloc(s->ctx, (size_t)(s->n ? s->n : 1) * sizeof *d);
        if (!r && !d) r = NASC_ENOMEM;
        for (int64_t k = 0; !r && k < prop - rep; k++) {
            char key[64];
            snprintf(key, sizeof key, "strategy/outstanding/%lld", (long long)k);
            double unused;
            int64_t p;
            r = nasc_strategy_read_arch(s, st, key, &unused, d, &p);
            if (!r && (p < 0 || p >= prop || (s->n_out && p <= s->out_p[s->n_out - 1])))
                r = nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                               "strategy state: '%s' is proposal %lld, not a proposal in order below %lld", key,
                               (long long)p, (long long)prop);
            if (!r) r = add_outstanding(s, p, d);
        }
        nasc_free(s->ctx, d);
        if (r) return r;
        s->proposed = prop;
    }
    if (s->vt->load) r = s->vt->load(s, st);
    return r;
}

/* ------------------------------------------------------------------ */
/* Random search                                                       */
/* ------------------------------------------------------------------ */

static nasc_status random_propose(nasc_strategy *s, uint32_t *d) {
    for (uint32_t i = 0; i < s->n; i++) d[i] = nasc_strategy_random_value(&s->dec[i], &s->rng);
    return NASC_OK;
}

static nasc_status random_report(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward) {
    (void)s;
    (void)proposal;
    (void)d;
    (void)reward;
    return NASC_OK;
}

const nasc_strategy_vt nasc_strategy_random_vt = {"random", NULL, NULL, random_propose, random_report, NULL, NULL, NULL};
