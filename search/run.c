/* run.c - the search loop: propose, decode, deduplicate by canonical hash,
 * evaluate, journal, report, checkpoint the strategy. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "nasc_export.h"
#include "nasc_search.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nasc_status save_state(nasc_ctx *ctx, const nasc_search_run *r) {
    nasc_param_store *st = nasc_params_create(ctx);
    if (!st) return NASC_ENOMEM;
    nasc_status s = nasc_strategy_save(r->strategy, st);
    if (!s) s = nasc_params_set_meta(st, "search/space", nasc_space_name(r->space));
    if (!s) s = nasc_params_save(st, r->state_path);
    nasc_params_destroy(st);
    return s;
}

static const nasc_trial *find_hash(const nasc_journal *j, uint64_t h) {
    for (int64_t i = 0; i < j->n; i++)
        if (j->trials[i].hash == h && strcmp(j->trials[i].status, "cached") != 0) return &j->trials[i];
    return NULL;
}

static void progress(const nasc_search_run *r, const nasc_trial *t) {
    if (!r->progress) return;
    nasc_search_progress p = {t, r->budget, NAN, -1};
    int64_t b = nasc_journal_best(r->journal);
    if (b >= 0) {
        p.best_index = b;
        p.best_reward = r->journal->trials[b].reward;
    }
    r->progress(r->ud, &p);
}

/* A replayed record must be what the strategy proposes now: the same
 * strategy with the same seed and options, fed the same rewards, proposes
 * the same decisions. */
static nasc_status check_replay(nasc_ctx *ctx, const nasc_search_run *r, int64_t i, const uint32_t *proposed) {
    const nasc_trial *t = &r->journal->trials[i];
    uint32_t n = nasc_space_count(r->space);
    const nasc_decision *dec = nasc_space_decisions(r->space);
    for (uint32_t k = 0; k < n; k++) {
        if (t->d[k] == proposed[k]) continue;
        /* trial i is on line i + 2, after the header */
        return nasc_error(ctx, NASC_EINPUT, r->journal->path, (nasc_loc){(int)(i + 2), 1},
                          "trial %lld is not what strategy %s proposes when the journal is replayed: decision %u "
                          "'%s' is %u in the journal, %u now; the journal is of another search (another seed or "
                          "strategy options)",
                          (long long)i, nasc_strategy_name(r->strategy), k, dec[k].name, t->d[k], proposed[k]);
    }
    return NASC_OK;
}

/* Decisions d (proposal number `proposal`) into trial t (t->d points at
 * d): decoded and hashed; a decision vector the space cannot build is a
 * failed trial, an architecture seen before a cached (or failed) one. When
 * it must be trained, *arch is the decoded architecture (the caller's to
 * destroy) and t->status is empty. */
nasc_status nasc_run_prepare(nasc_ctx *ctx, const nasc_search_run *r, uint32_t *d, int64_t proposal, nasc_trial *t,
                             nasc_module **arch_out) {
    *arch_out = NULL;
    memset(t, 0, sizeof *t);
    t->index = r->journal->n;
    t->proposal = proposal;
    t->d = d;
    t->reward = t->val_loss = NAN;
    t->params = t->macs = -1;
    nasc_module *arch = NULL;
    nasc_status st = nasc_space_decode(r->space, d, &arch);
    if (!st) st = nasc_arch_apply_overrides(arch, r->set_keys, r->set_vals, r->n_set);
    if (st) {
        /* a decision vector the space cannot build: a failed trial, not the end of the search */
        char msg[600];
        nasc_diag_format(&ctx->diag, msg, sizeof msg);
        nasc_module_destroy(arch);
        if (st == NASC_ENOMEM) return st;
        snprintf(t->status, sizeof t->status, "failed");
        snprintf(t->reason, sizeof t->reason, "decode: %.200s", msg);
        return NASC_OK;
    }
    st = nasc_arch_hash(arch, &t->hash);
    if (st) {
        /* no hash, no deduplication: the search stops rather than guess */
        nasc_module_destroy(arch);
        return st;
    }
    const nasc_trial *seen = find_hash(r->journal, t->hash);
    if (seen) {
        nasc_run_copy_result(t, seen);
        nasc_module_destroy(arch);
        return NASC_OK;
    }
    *arch_out = arch;
    return NASC_OK;
}

void nasc_run_copy_result(nasc_trial *t, const nasc_trial *seen) {
    t->params = seen->params;
    t->macs = seen->macs;
    if (strcmp(seen->status, "ok") == 0) {
        snprintf(t->status, sizeof t->status, "cached");
        t->reward = seen->reward;
        t->val_loss = seen->val_loss;
        snprintf(t->reason, sizeof t->reason, "same architecture as trial %lld", (long long)seen->index);
    } else {
        snprintf(t->status, sizeof t->status, "failed");
        snprintf(t->reason, sizeof t->reason, "same architecture as failed trial %lld", (long long)seen->index);
    }
}

void nasc_run_set_result(nasc_trial *t, const nasc_eval_result *er) {
    t->params = er->params;
    t->macs = er->macs;
    if (er->ok) {
        snprintf(t->status, sizeof t->status, "ok");
        t->reward = er->reward;
        t->val_loss = er->val_loss;
    } else {
        snprintf(t->status, sizeof t->status, "failed");
        snprintf(t->reason, sizeof t->reason, "%s", er->reason);
    }
}

/* Evaluate decisions d (proposal `proposal`) into t in this process. */
static nasc_status run_trial(nasc_ctx *ctx, nasc_search_run *r, uint32_t *d, int64_t proposal, nasc_trial *t) {
    nasc_module *arch = NULL;
    nasc_status st = nasc_run_prepare(ctx, r, d, proposal, t, &arch);
    if (st || !arch) return st;
    double t0 = now_s();
    nasc_eval_result er;
    st = r->eval.evaluate(r->eval.ud, arch, &er);
    t->seconds = now_s() - t0;
    nasc_module_destroy(arch);
    if (st) return st;
    nasc_run_set_result(t, &er);
    return NASC_OK;
}

nasc_status nasc_run_record(nasc_ctx *ctx, nasc_search_run *r, nasc_trial *t) {
    t->index = r->journal->n;
    nasc_status st = nasc_journal_append(r->journal, t);
    if (!st) st = nasc_strategy_report_proposal(r->strategy, t->proposal, t->d, t->reward);
    if (!st) st = save_state(ctx, r);
    if (!st) progress(r, &r->journal->trials[r->journal->n - 1]);
    return st;
}

nasc_status nasc_search_resume(nasc_ctx *ctx, nasc_search_run *r) {
    nasc_journal *j = r->journal;
    uint32_t n = nasc_space_count(r->space);
    /* Trials the journal holds but the saved strategy state has not seen
     * (the process died between the two writes): feed them again. A trial
     * that was outstanding when the state was saved is reported. One
     * proposed after the save is proposed again, with the proposals before
     * it (they stay outstanding), and must be what the strategy proposes
     * now: exact, as no reward was reported between the save and the crash.
     * Several such trials are exact only if they were proposed and
     * reported one at a time, as in one process (proposal = trial); those
     * of a distributed search say nothing of how proposals and rewards
     * interleaved, and are refused rather than guessed. */
    int64_t seen = nasc_strategy_reported(r->strategy);
    if (seen > j->n)
        return nasc_error(ctx, NASC_EINPUT, r->state_path, NASC_NOLOC,
                          "the strategy state has seen %lld trials but the journal holds only %lld: they belong to "
                          "different runs",
                          (long long)seen, (long long)j->n);
    if (seen == j->n) return NASC_OK;
    if (j->n - seen > 1)
        for (int64_t i = seen; i < j->n; i++)
            if (j->trials[i].proposal != i)
                return nasc_error(ctx, NASC_EINPUT, j->path, (nasc_loc){(int)(i + 2), 1},
                                  "%lld trials of a distributed search (trial %lld is proposal %lld) are not in the "
                                  "strategy state %s: they cannot be replayed without the state that saw them; "
                                  "restore it, or start a new run",
                                  (long long)(j->n - seen), (long long)i, (long long)j->trials[i].proposal,
                                  r->state_path);
    uint32_t *d = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *d);
    if (!d) return NASC_ENOMEM;
    nasc_status st = NASC_OK;
    for (int64_t i = seen; !st && i < j->n; i++) {
        const nasc_trial *t = &j->trials[i];
        bool outstanding = false;
        for (int64_t k = 0; !outstanding && nasc_strategy_outstanding(r->strategy, k, NULL) >= 0; k++)
            outstanding = nasc_strategy_outstanding(r->strategy, k, NULL) == t->proposal;
        if (!outstanding) {
            if (t->proposal < nasc_strategy_proposed(r->strategy))
                st = nasc_error(ctx, NASC_EINPUT, j->path, (nasc_loc){(int)(i + 2), 1},
                                "trial %lld is proposal %lld, which the strategy state (%s) has seen reported: the "
                                "journal and the state belong to different runs",
                                (long long)i, (long long)t->proposal, r->state_path);
            while (!st && nasc_strategy_proposed(r->strategy) <= t->proposal)
                st = nasc_strategy_propose(r->strategy, d);
            if (!st) st = check_replay(ctx, r, i, d);
        }
        if (!st) st = nasc_strategy_report_proposal(r->strategy, t->proposal, t->d, t->reward);
    }
    if (!st) st = save_state(ctx, r);
    nasc_free(ctx, d);
    return st;
}

nasc_status nasc_search_loop(nasc_ctx *ctx, nasc_search_run *r) {
    nasc_status st = nasc_search_resume(ctx, r);
    if (st) return st;
    uint32_t n = nasc_space_count(r->space);
    uint32_t *d = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *d);
    if (!d) return NASC_ENOMEM;
    nasc_journal *j = r->journal;
    while (!st && j->n < r->budget) {
        if (r->stop && *r->stop) {
            st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
            break;
        }
        /* proposals made but not evaluated (a distributed search stopped
         * with trials in flight) come first */
        int64_t p = nasc_strategy_outstanding(r->strategy, 0, d);
        if (p < 0) {
            p = nasc_strategy_proposed(r->strategy);
            st = nasc_strategy_propose(r->strategy, d);
            if (st) break;
        }
        nasc_trial t;
        st = run_trial(ctx, r, d, p, &t);
        if (!st) st = nasc_run_record(ctx, r, &t);
    }
    nasc_free(ctx, d);
    return st;
}
