/* run_internal.h - the steps of a per-child search that the local loop
 * (run.c) and the distributed one (distributed.c) share. */
#ifndef NASC_RUN_INTERNAL_H
#define NASC_RUN_INTERNAL_H

#include "nasc_search.h"

/* Feed the strategy the journal's trials its saved state has not seen,
 * then save the state (nothing when there are none). */
nasc_status nasc_search_resume(nasc_ctx *ctx, nasc_search_run *r);
/* Decisions d of proposal `proposal` into t (t->d = d): decoded and hashed
 * against the journal. Undecodable: a failed trial; seen before: a cached
 * (or failed) one. When the child must be trained, *arch is its decoded
 * architecture (the caller destroys it) and t->status is "". */
nasc_status nasc_run_prepare(nasc_ctx *ctx, const nasc_search_run *r, uint32_t *d, int64_t proposal, nasc_trial *t,
                             nasc_module **arch);
/* t takes the outcome of an earlier trial of the same architecture. */
void nasc_run_copy_result(nasc_trial *t, const nasc_trial *seen);
/* t takes an evaluator's result. */
void nasc_run_set_result(nasc_trial *t, const nasc_eval_result *er);
/* Append t to the journal (as its next trial), report it to the strategy,
 * save the strategy state, call progress. */
nasc_status nasc_run_record(nasc_ctx *ctx, nasc_search_run *r, nasc_trial *t);

#endif /* NASC_RUN_INTERNAL_H */
