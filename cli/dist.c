/* dist.c - `nasc search` under mpirun: rank 0 serves children to worker
 * ranks and records their results (docs/distributed.md).
 *
 * Messages (MPI_BYTE; every rank runs the same nasc build, so the structs
 * below are laid out alike):
 *   worker -> 0  HELLO   whether the worker could start (or why not)
 *   0 -> worker  TASK    a proposal number and its decisions
 *   worker -> 0  RESULT  the child's reward, loss, cost, time, reason
 *   0 -> worker  STOP    no more work
 *   worker -> 0  BYE     the worker goes into MPI_Finalize
 * Nobody blocks in MPI: ranks poll with MPI_Iprobe and sleep between polls
 * (from 1 ms up to 2 ms on rank 0, 16 ms on a worker), so a waiting rank
 * does not take a core from the ranks training children (Open MPI's
 * blocking calls spin). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef NASC_HAVE_MPI
#include <mpi.h>
#endif

#include "dist.h"
#include "opts.h"

bool nasc_cli_mpi_launched(void) {
    /* the job size each launcher gives the processes it starts: Open MPI's
     * mpirun, PMIx, Slurm's PMI (tests/search/test_rules.sh allows these) */
    static const char *const launcher_size[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", NULL};
    for (int i = 0; launcher_size[i]; i++) {
        const char *v = getenv(launcher_size[i]);
        if (v && atoi(v) > 1) return true;
    }
    return false;
}

bool nasc_cli_mpi_built(void) {
#ifdef NASC_HAVE_MPI
    return true;
#else
    return false;
#endif
}

void nasc_cli_mpi_library(char *buf, size_t size) {
#ifdef NASC_HAVE_MPI
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len); /* callable before MPI_Init */
    v[len < (int)sizeof v ? len : (int)sizeof v - 1] = 0;
    v[strcspn(v, ",\n")] = 0; /* its first part: "Open MPI v4.1.4" */
    snprintf(buf, size, "built with %s", v);
#else
    snprintf(buf, size, "built without MPI: searches run in one process");
#endif
}

int nasc_cli_mpi_worker_threads(const nasc_cli_mpi *m) {
    int workers = m->local_size - (m->server_here ? 1 : 0);
    if (workers < 1) workers = 1;
    int t = m->cores / workers;
    return t < 1 ? 1 : t;
}

/* A search in this one process: rank 0 of 1, on the node's cores. */
static void one_process(nasc_cli_mpi *m) {
    memset(m, 0, sizeof *m);
    m->size = m->local_size = 1;
    m->server_here = true;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = c > 0 ? (int)c : 1;
}

#ifndef NASC_HAVE_MPI

nasc_status nasc_cli_mpi_init(nasc_ctx *ctx, nasc_cli_mpi *m) {
    one_process(m);
    if (nasc_cli_mpi_launched())
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "started as one of several MPI ranks, but this nasc was built without MPI: a distributed "
                          "search needs nasc built with Open MPI (Debian: libopenmpi-dev openmpi-bin; "
                          "docs/distributed.md)");
    return NASC_OK;
}

void nasc_cli_mpi_finish(nasc_cli_mpi *m, int rc) {
    (void)m;
    (void)rc;
}

nasc_status nasc_cli_mpi_serve(nasc_ctx *ctx, nasc_cli_mpi *m, nasc_search_run *r, double hang_s,
                               nasc_cli_mpi_stats *stats) {
    (void)m;
    (void)r;
    (void)hang_s;
    (void)stats;
    return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "this nasc was built without MPI");
}

nasc_status nasc_cli_mpi_work(nasc_ctx *ctx, nasc_cli_mpi *m, const nasc_space *sp, nasc_evaluator eval,
                              const char *const *set_keys, const char *const *set_vals, int n_set,
                              const char *error) {
    (void)m;
    (void)sp;
    (void)eval;
    (void)set_keys;
    (void)set_vals;
    (void)n_set;
    (void)error;
    return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "this nasc was built without MPI");
}

#else /* NASC_HAVE_MPI */

enum { TAG_HELLO = 1, TAG_TASK, TAG_RESULT, TAG_STOP, TAG_BYE };

typedef struct hello_msg {
    int32_t ok;
    int32_t threads;
    char error[512];
} hello_msg;

typedef struct result_msg {
    int64_t proposal;
    int32_t ok;
    int32_t leaving; /* the worker stops after this message (interrupted, or an error) */
    double reward, val_loss, seconds;
    int64_t params, macs;
    char reason[256];
} result_msg;

static bool hung_rank;    /* a worker was given up as hung: MPI_Finalize would wait for it */
static int busy_at_exit; /* workers still training when rank 0 left its loop */

/* Sleep between polls: 1 ms, doubling while nothing arrives, up to max_ms
 * (*idle counts the empty polls; a message resets it). */
static void nap(int *idle, int max_ms) {
    int ms = *idle < 5 ? 1 << *idle : max_ms;
    if (ms > max_ms) ms = max_ms;
    (*idle)++;
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

nasc_status nasc_cli_mpi_init(nasc_ctx *ctx, nasc_cli_mpi *m) {
    one_process(m);
    if (!nasc_cli_mpi_launched()) return NASC_OK;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "MPI_Init failed");
    m->active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    /* the ranks on this node, and whether rank 0 is one of them */
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &m->local_size);
    int here = m->rank == 0, any = 0;
    MPI_Allreduce(&here, &any, 1, MPI_INT, MPI_MAX, local);
    m->server_here = any != 0;
    MPI_Comm_free(&local);
    return NASC_OK;
}

/* Rank 0: wait for every worker's BYE (each sends one just before
 * MPI_Finalize), at most grace seconds when grace > 0, receiving and
 * dropping what else still comes (late results, a HELLO). Returns the
 * workers that did not say it; who they are goes into *first_missing. */
static int collect_byes(const nasc_cli_mpi *m, double grace, int *first_missing) {
    unsigned char *bye = calloc((size_t)m->size, 1);
    if (!bye) return m->size - 1;
    int missing = m->size - 1, idle = 0;
    double t0 = nasc_cli_now();
    while (missing > 0 && (grace <= 0 || nasc_cli_now() - t0 < grace)) {
        int flag = 0;
        MPI_Status ps;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ps);
        if (!flag) {
            nap(&idle, 2);
            continue;
        }
        idle = 0;
        int count = 0;
        MPI_Get_count(&ps, MPI_BYTE, &count);
        unsigned char *buf = malloc(count > 0 ? (size_t)count : 1);
        if (!buf) break;
        MPI_Recv(buf, count, MPI_BYTE, ps.MPI_SOURCE, ps.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        free(buf);
        if (ps.MPI_TAG == TAG_BYE && ps.MPI_SOURCE > 0 && ps.MPI_SOURCE < m->size && !bye[ps.MPI_SOURCE]) {
            bye[ps.MPI_SOURCE] = 1;
            missing--;
        }
    }
    *first_missing = -1;
    for (int k = 1; k < m->size && *first_missing < 0; k++)
        if (!bye[k]) *first_missing = k;
    free(bye);
    return missing;
}

void nasc_cli_mpi_finish(nasc_cli_mpi *m, int rc) {
    if (!m->active) return;
    if (m->rank > 0) {
        /* rank 0 waits for this before it ends the job */
        MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_BYE, MPI_COMM_WORLD);
    } else {
        /* every worker is told to stop, whatever happened here */
        for (int k = 1; k < m->size; k++) MPI_Send(NULL, 0, MPI_BYTE, k, TAG_STOP, MPI_COMM_WORLD);
        /* Idle workers answer at once. One given up as hung may be back (a
         * stopped process, a partition that healed) or not; busy ones would
         * answer once their child is trained. MPI_Finalize would wait for
         * them, so after 10 s the job ends with MPI_Abort instead. */
        int first = -1;
        int missing = collect_byes(m, hung_rank || busy_at_exit ? 10.0 : 0.0, &first);
        if (missing) {
            fprintf(stderr,
                    "nasc search: %d worker rank%s (rank %d%s) did not stop within 10 s (%s); ending the MPI job "
                    "with MPI_Abort\n",
                    missing, missing == 1 ? "" : "s", first, missing > 1 ? " and others" : "",
                    hung_rank ? "given up as hung" : "still training");
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, rc);
        }
    }
    MPI_Finalize();
    m->active = false;
}

/* ------------------------------------------------------------------ */
/* Rank 0                                                              */
/* ------------------------------------------------------------------ */

enum { W_STARTING, W_IDLE, W_BUSY, W_LOST };

typedef struct worker {
    int state;
    double since;  /* when the task was sent */
    nasc_trial t;  /* the trial it trains (t.d = d) */
    uint32_t *d;
} worker;

/* A child whose architecture is being trained by a worker for another
 * proposal: it takes that trial's result when it arrives. */
typedef struct waiting {
    nasc_trial t;
    uint32_t *d;
    int64_t after; /* the proposal it waits for */
} waiting;

typedef struct server {
    nasc_ctx *ctx;
    nasc_cli_mpi *m;
    nasc_search_run *r;
    nasc_cli_mpi_stats *stats;
    uint32_t n;
    worker *w;     /* indexed by rank (0 unused) */
    waiting *wait;
    int n_wait, cap_wait;
    unsigned char *task; /* a TASK message */
    size_t task_size;
    int failed_start;    /* workers whose HELLO was an error */
} server;

static int64_t in_flight(const server *s) {
    int64_t k = s->n_wait;
    for (int i = 1; i < s->m->size; i++) k += s->w[i].state == W_BUSY;
    return k;
}

static bool is_in_flight(const server *s, int64_t proposal) {
    for (int i = 1; i < s->m->size; i++)
        if (s->w[i].state == W_BUSY && s->w[i].t.proposal == proposal) return true;
    for (int i = 0; i < s->n_wait; i++)
        if (s->wait[i].t.proposal == proposal) return true;
    return false;
}

static nasc_status record(server *s, nasc_trial *t) {
    double t0 = nasc_cli_now();
    nasc_status st = nasc_run_record(s->ctx, s->r, t);
    s->stats->record_s += nasc_cli_now() - t0;
    s->stats->trials++;
    return st;
}

/* Trial t (whose result is set) is recorded; the children that wait for
 * its proposal take its result and are recorded after it. */
static nasc_status finish(server *s, nasc_trial *t) {
    int64_t proposal = t->proposal;
    nasc_status st = record(s, t);
    const nasc_journal *j = s->r->journal;
    int64_t src = j->n - 1; /* t's record (an index: the records may move) */
    for (int i = 0; !st && i < s->n_wait;) {
        waiting *q = &s->wait[i];
        if (q->after != proposal) {
            i++;
            continue;
        }
        nasc_run_copy_result(&q->t, &j->trials[src]);
        q->t.d = q->d;
        st = record(s, &q->t);
        nasc_free(s->ctx, q->d);
        s->wait[i] = s->wait[--s->n_wait];
    }
    return st;
}

/* The next decisions to train into d and their proposal number: an
 * outstanding proposal of a resumed run that nobody trains, else a new
 * one; -1 when the strategy waits for rewards. */
static int64_t next_proposal(server *s, uint32_t *d, nasc_status *st) {
    nasc_strategy *sg = s->r->strategy;
    for (int64_t k = 0;; k++) {
        int64_t p = nasc_strategy_outstanding(sg, k, d);
        if (p < 0) break;
        if (!is_in_flight(s, p)) return p;
    }
    if (!nasc_strategy_ready(sg)) return -1;
    int64_t p = nasc_strategy_proposed(sg);
    *st = nasc_strategy_propose(sg, d);
    return *st ? -1 : p;
}

/* Hand children to idle worker k until it has one (or the budget or the
 * strategy says wait). Children that need no training are recorded here. */
static nasc_status feed(server *s, int k) {
    nasc_search_run *r = s->r;
    worker *w = &s->w[k];
    nasc_status st = NASC_OK;
    while (w->state == W_IDLE && r->journal->n + in_flight(s) < r->budget) {
        int64_t p = next_proposal(s, w->d, &st);
        if (st || p < 0) return st;
        nasc_module *arch = NULL;
        st = nasc_run_prepare(s->ctx, r, w->d, p, &w->t, &arch);
        if (st) return st;
        nasc_module_destroy(arch); /* the worker builds its own */
        if (w->t.status[0]) {
            st = finish(s, &w->t);
            if (st) return st;
            continue;
        }
        /* the same architecture in training for another proposal: wait for it */
        int64_t same = -1;
        for (int i = 1; i < s->m->size && same < 0; i++)
            if (i != k && s->w[i].state == W_BUSY && s->w[i].t.hash == w->t.hash) same = s->w[i].t.proposal;
        if (same >= 0) {
            if (s->n_wait == s->cap_wait) {
                int cap = s->cap_wait ? 2 * s->cap_wait : 8;
                waiting *nw = nasc_realloc(s->ctx, s->wait, (size_t)cap * sizeof *nw);
                if (!nw) return NASC_ENOMEM;
                s->wait = nw;
                s->cap_wait = cap;
            }
            waiting *q = &s->wait[s->n_wait];
            q->d = nasc_alloc(s->ctx, (size_t)(s->n ? s->n : 1) * sizeof *q->d);
            if (!q->d) return NASC_ENOMEM;
            memcpy(q->d, w->d, (size_t)s->n * sizeof *q->d);
            q->t = w->t;
            q->t.d = q->d;
            q->after = same;
            s->n_wait++;
            continue;
        }
        memcpy(s->task, &p, sizeof p);
        memcpy(s->task + sizeof p, w->d, (size_t)s->n * sizeof *w->d);
        MPI_Send(s->task, (int)s->task_size, MPI_BYTE, k, TAG_TASK, MPI_COMM_WORLD);
        s->stats->tasks++;
        w->state = W_BUSY;
        w->since = nasc_cli_now();
    }
    return st;
}

/* One message from a worker. */
static nasc_status receive(server *s, const MPI_Status *ps) {
    int k = ps->MPI_SOURCE;
    worker *w = k > 0 && k < s->m->size ? &s->w[k] : NULL;
    if (ps->MPI_TAG == TAG_HELLO) {
        hello_msg h;
        MPI_Recv(&h, (int)sizeof h, MPI_BYTE, k, TAG_HELLO, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        h.error[sizeof h.error - 1] = 0;
        if (!w) return NASC_OK;
        if (h.ok) {
            w->state = W_IDLE;
        } else {
            w->state = W_LOST;
            s->stats->lost++;
            s->failed_start++;
            fprintf(stderr, "nasc search: rank %d cannot train children: %s\n", k, h.error);
        }
        return NASC_OK;
    }
    if (ps->MPI_TAG != TAG_RESULT) { /* nothing else is sent to rank 0 */
        MPI_Recv(NULL, 0, MPI_BYTE, k, ps->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        return NASC_OK;
    }
    result_msg res;
    MPI_Recv(&res, (int)sizeof res, MPI_BYTE, k, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    s->stats->results++;
    res.reason[sizeof res.reason - 1] = 0;
    if (!w || w->state == W_LOST) return NASC_OK; /* from a rank given up */
    if (res.leaving) {
        /* the worker stopped (interrupted, or an error): its child fails */
        fprintf(stderr, "nasc search: rank %d stopped: %s\n", k, res.reason);
        bool had = w->state == W_BUSY && w->t.proposal == res.proposal;
        w->state = W_LOST;
        s->stats->lost++;
        if (!had) return NASC_OK;
        snprintf(w->t.status, sizeof w->t.status, "failed");
        snprintf(w->t.reason, sizeof w->t.reason, "rank %d stopped: %.200s", k, res.reason);
        w->t.seconds = nasc_cli_now() - w->since;
        w->t.rank = k;
        w->t.d = w->d;
        return finish(s, &w->t);
    }
    if (w->state != W_BUSY || w->t.proposal != res.proposal) return NASC_OK;
    nasc_eval_result er = {0};
    er.ok = res.ok != 0;
    er.reward = res.reward;
    er.val_loss = res.val_loss;
    er.params = res.params;
    er.macs = res.macs;
    snprintf(er.reason, sizeof er.reason, "%s", res.reason);
    nasc_run_set_result(&w->t, &er);
    w->t.seconds = res.seconds;
    w->t.rank = k;
    w->t.d = w->d;
    w->state = W_IDLE;
    return finish(s, &w->t);
}

nasc_status nasc_cli_mpi_serve(nasc_ctx *ctx, nasc_cli_mpi *m, nasc_search_run *r, double hang_s,
                               nasc_cli_mpi_stats *stats) {
    memset(stats, 0, sizeof *stats);
    double t0 = nasc_cli_now();
    nasc_status st = nasc_search_resume(ctx, r);
    if (st) return st;
    server s = {0};
    s.ctx = ctx;
    s.m = m;
    s.r = r;
    s.stats = stats;
    s.n = nasc_space_count(r->space);
    s.task_size = sizeof(int64_t) + (size_t)s.n * sizeof(uint32_t);
    stats->task_bytes = (int64_t)s.task_size;
    stats->result_bytes = (int64_t)sizeof(result_msg);
    stats->workers = m->size - 1;
    s.w = nasc_alloc(ctx, (size_t)m->size * sizeof *s.w);
    s.task = nasc_alloc(ctx, s.task_size);
    if (!s.w || !s.task) st = NASC_ENOMEM;
    if (s.w) memset(s.w, 0, (size_t)m->size * sizeof *s.w);
    for (int k = 1; !st && k < m->size; k++) {
        s.w[k].state = W_STARTING;
        s.w[k].d = nasc_alloc(ctx, (size_t)(s.n ? s.n : 1) * sizeof *s.w[k].d);
        if (!s.w[k].d) st = NASC_ENOMEM;
    }
    int idle = 0;
    bool first = true;
    while (!st) {
        if (r->stop && *r->stop) {
            st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
            break;
        }
        if (r->journal->n >= r->budget) break;
        bool moved = false;
        int flag = 0;
        MPI_Status ps;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ps);
        double busy0 = nasc_cli_now();
        if (flag) {
            st = receive(&s, &ps);
            moved = true;
        }
        /* a worker silent for longer than hang_s is given up */
        double now = nasc_cli_now();
        for (int k = 1; !st && hang_s > 0 && k < m->size; k++) {
            worker *w = &s.w[k];
            if (w->state != W_BUSY || now - w->since <= hang_s) continue;
            w->state = W_LOST;
            stats->lost++;
            hung_rank = true;
            snprintf(w->t.status, sizeof w->t.status, "failed");
            snprintf(w->t.reason, sizeof w->t.reason,
                     "rank %d gave no answer within %.0f s (hung or dead); the search goes on without it", k, hang_s);
            w->t.seconds = now - w->since;
            w->t.rank = k;
            w->t.d = w->d;
            fprintf(stderr, "nasc search: %s\n", w->t.reason);
            st = finish(&s, &w->t);
            moved = true;
        }
        /* new work only when something changed: a worker became idle, a
         * reward came in (a replica may be ready), a worker was given up */
        for (int k = 1; !st && (moved || first) && k < m->size; k++)
            if (s.w[k].state == W_IDLE) st = feed(&s, k);
        first = false;
        if (moved) stats->busy_s += nasc_cli_now() - busy0;
        if (st) break;
        int alive = 0;
        for (int k = 1; k < m->size; k++) alive += s.w[k].state != W_LOST;
        if (!alive && r->journal->n < r->budget) {
            if (stats->lost == s.failed_start)
                st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                "no worker rank could start (their errors are above); nothing was trained");
            else
                st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                "no worker rank is left to train children (%lld of %lld trials done; continue with "
                                "--resume)",
                                (long long)r->journal->n, (long long)r->budget);
            break;
        }
        if (moved)
            idle = 0;
        else
            nap(&idle, 2); /* rank 0 answers within 2 ms */
    }
    stats->wall_s = nasc_cli_now() - t0;
    busy_at_exit = 0;
    for (int k = 1; s.w && k < m->size; k++) busy_at_exit += s.w[k].state == W_BUSY;
    for (int k = 1; s.w && k < m->size; k++) nasc_free(ctx, s.w[k].d);
    for (int i = 0; i < s.n_wait; i++) nasc_free(ctx, s.wait[i].d);
    nasc_free(ctx, s.wait);
    nasc_free(ctx, s.w);
    nasc_free(ctx, s.task);
    return st;
}

/* ------------------------------------------------------------------ */
/* Worker ranks                                                        */
/* ------------------------------------------------------------------ */

/* Train decisions d into res. A non-OK status: stop (interrupted). */
static nasc_status train_child(nasc_ctx *ctx, const nasc_space *sp, nasc_evaluator eval, const char *const *keys,
                               const char *const *vals, int n_set, uint32_t *d, result_msg *res) {
    nasc_module *arch = NULL;
    double t0 = nasc_cli_now();
    nasc_status st = nasc_space_check(sp, d);
    if (!st) st = nasc_space_decode(sp, d, &arch);
    if (!st) st = nasc_arch_apply_overrides(arch, keys, vals, n_set);
    if (st) {
        char msg[600];
        nasc_diag_format(&ctx->diag, msg, sizeof msg);
        nasc_module_destroy(arch);
        res->ok = 0;
        res->reward = NAN;
        snprintf(res->reason, sizeof res->reason, "decode on the worker: %.200s", msg);
        return NASC_OK;
    }
    nasc_eval_result er;
    st = eval.evaluate(eval.ud, arch, &er);
    nasc_module_destroy(arch);
    if (st) return st;
    res->ok = er.ok;
    res->reward = er.reward;
    res->val_loss = er.val_loss;
    res->params = er.params;
    res->macs = er.macs;
    res->seconds = nasc_cli_now() - t0;
    snprintf(res->reason, sizeof res->reason, "%s", er.reason);
    return NASC_OK;
}

nasc_status nasc_cli_mpi_work(nasc_ctx *ctx, nasc_cli_mpi *m, const nasc_space *sp, nasc_evaluator eval,
                              const char *const *set_keys, const char *const *set_vals, int n_set,
                              const char *error) {
    (void)m;
    hello_msg h;
    memset(&h, 0, sizeof h);
    h.ok = error == NULL;
    if (error) snprintf(h.error, sizeof h.error, "%s", error);
    MPI_Send(&h, (int)sizeof h, MPI_BYTE, 0, TAG_HELLO, MPI_COMM_WORLD);
    uint32_t n = sp ? nasc_space_count(sp) : 0;
    size_t size = sizeof(int64_t) + (size_t)n * sizeof(uint32_t);
    unsigned char *task = nasc_alloc(ctx, size);
    uint32_t *d = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *d);
    nasc_status st = task && d ? NASC_OK : NASC_ENOMEM;
    int idle = 0;
    while (!st) {
        int flag = 0;
        MPI_Status ps;
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ps);
        if (!flag) {
            /* a worker waits for its next child at most 16 ms longer: nothing
             * next to a child's training, and 32 idle workers on two cores
             * wake 2,000 times a second, not 32,000 */
            nap(&idle, 16);
            continue;
        }
        idle = 0;
        if (ps.MPI_TAG == TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            break;
        }
        if (ps.MPI_TAG != TAG_TASK || error) {
            MPI_Recv(NULL, 0, MPI_BYTE, 0, ps.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            continue;
        }
        int count = 0;
        MPI_Get_count(&ps, MPI_BYTE, &count);
        result_msg res;
        memset(&res, 0, sizeof res);
        res.reward = res.val_loss = NAN;
        res.params = res.macs = -1;
        res.proposal = -1;
        if (count != (int)size) {
            unsigned char *other = nasc_alloc(ctx, count > 0 ? (size_t)count : 1);
            if (other) MPI_Recv(other, count, MPI_BYTE, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            nasc_free(ctx, other);
            st = other ? nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                    "rank %d: a task of %d bytes, not %zu: rank 0 runs another search", m->rank,
                                    count, size)
                       : NASC_ENOMEM;
        } else {
            MPI_Recv(task, (int)size, MPI_BYTE, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            memcpy(&res.proposal, task, sizeof res.proposal);
            memcpy(d, task + sizeof res.proposal, (size_t)n * sizeof *d);
            st = train_child(ctx, sp, eval, set_keys, set_vals, n_set, d, &res);
        }
        if (st) {
            /* rank 0 must not wait for this child: tell it why we stop */
            res.ok = 0;
            res.leaving = 1;
            nasc_diag_format(&ctx->diag, res.reason, sizeof res.reason);
            MPI_Send(&res, (int)sizeof res, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
            break;
        }
        MPI_Send(&res, (int)sizeof res, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    nasc_free(ctx, task);
    nasc_free(ctx, d);
    return st;
}

#endif /* NASC_HAVE_MPI */
