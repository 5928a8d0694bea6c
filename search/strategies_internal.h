/* strategies_internal.h - what the strategies share inside search/. */
#ifndef NASC_STRATEGIES_INTERNAL_H
#define NASC_STRATEGIES_INTERNAL_H

#include "nasc_search.h"

typedef struct nasc_strategy_vt {
    const char *name;
    nasc_status (*init)(nasc_strategy *s);
    void (*fini)(nasc_strategy *s);
    nasc_status (*propose)(nasc_strategy *s, uint32_t *d);
    /* proposal: the number nasc_strategy_propose gave d (reports may come
     * in another order than the proposals when children run in parallel) */
    nasc_status (*report)(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward);
    nasc_status (*save)(nasc_strategy *s, nasc_param_store *st);
    nasc_status (*load)(nasc_strategy *s, const nasc_param_store *st);
    /* whether propose can give an architecture now; NULL: always */
    bool (*ready)(const nasc_strategy *s);
} nasc_strategy_vt;

struct nasc_strategy {
    nasc_ctx *ctx;
    const nasc_strategy_vt *vt;
    nasc_strategy_options opt;
    nasc_decision *dec;
    uint32_t n;
    uint64_t signature;
    nasc_rng rng;
    int64_t proposed, reported;
    /* the proposals not reported yet, oldest first: their numbers and
     * decisions (n_out x n) */
    int64_t *out_p;
    uint32_t *out_d;
    int64_t n_out, cap_out;
    void (*log)(void *ud, const char *line);
    void *log_ud;
    void *impl; /* the strategy's own state */
};

extern const nasc_strategy_vt nasc_strategy_random_vt, nasc_strategy_reinforce_vt, nasc_strategy_evolution_vt;

/* A line for the strategy's log (nasc_strategy_set_log), printf-style. */
void nasc_strategy_logf(nasc_strategy *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A uniformly random value of one decision. */
uint32_t nasc_strategy_random_value(const nasc_decision *d, nasc_rng *r);
/* true when v is out of the decision's range */
bool nasc_strategy_check_value(const nasc_decision *d, uint64_t v);

/* State in a parameter store's metadata; the readers name the key that is
 * missing or malformed (diagnostic on ctx). Doubles are written in C's
 * hexadecimal form, so they read back exactly. Used by the strategies and
 * by the one-shot search (oneshot.c). */
nasc_status nasc_strategy_meta_u64s(nasc_param_store *st, const char *key, const uint64_t *v, int n);
nasc_status nasc_strategy_read_u64s(nasc_ctx *ctx, const nasc_param_store *st, const char *key, uint64_t *v, int n);
nasc_status nasc_strategy_read_i64(nasc_ctx *ctx, const nasc_param_store *st, const char *key, int64_t lo,
                                   int64_t hi, int64_t *v);
nasc_status nasc_strategy_meta_f64(nasc_param_store *st, const char *key, double v);
nasc_status nasc_strategy_read_f64(nasc_ctx *ctx, const nasc_param_store *st, const char *key, double *v);
/* A vector of n floats as the rank-1 tensor `name` (created or replaced),
 * and back: the reader names a tensor that is missing, of another size, or
 * holds a value that is not finite. */
nasc_status nasc_strategy_put_floats(nasc_param_store *st, const char *name, const float *src, int64_t n);
nasc_status nasc_strategy_get_floats(nasc_ctx *ctx, const nasc_param_store *st, const char *name, float *dst,
                                     int64_t n);
/* An architecture with its reward and one integer ("<reward> <extra> d0,d1,..."). */
nasc_status nasc_strategy_meta_arch(nasc_strategy *s, nasc_param_store *st, const char *key, double reward,
                                    const uint32_t *d, int64_t extra);
nasc_status nasc_strategy_read_arch(nasc_strategy *s, const nasc_param_store *st, const char *key, double *reward,
                                    uint32_t *d, int64_t *extra);

#endif /* NASC_STRATEGIES_INTERNAL_H */
