/* The search loop (search/run.c) with the in-process evaluator on a tiny
 * synthetic data set, so that every trial trains for real in a moment:
 *  - SIGINT, delivered by raise() to a handler that sets a volatile
 *    sig_atomic_t flag, stops the loop cleanly, whether it arrives while a
 *    child trains (that trial is abandoned) or between trials; the journal
 *    and the strategy state agree, and continuing gives the uninterrupted
 *    run's trials;
 *  - the states a killed search can leave (journal ahead of the saved
 *    state, a torn last record, no state at all), built exactly rather than
 *    by killing at a random moment, continue to the uninterrupted run's
 *    trials;
 *  - a journal of another search (another seed) is refused when it is
 *    replayed, naming the record's line and the decision that differs, and
 *    the run directory is left as it was. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nasc_search.h"

static char dir[] = "/tmp/nasc-run-XXXXXX";
static nasc_dataset data;

/* 96 random 1x8x8 images of 10 classes: children (8x8 input, 4 channels)
 * train on 32 of them and are rewarded on the last 32. */
static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    data.n = 96;
    data.c = 1;
    data.h = data.w = 8;
    data.classes = 10;
    data.images = malloc((size_t)data.n * 8 * 8);
    data.labels = malloc((size_t)data.n);
    if (!data.images || !data.labels) return -1;
    nasc_rng r;
    nasc_rng_seed(&r, 5);
    for (int64_t i = 0; i < data.n * 8 * 8; i++) data.images[i] = (uint8_t)nasc_rng_below(&r, 256);
    for (int64_t i = 0; i < data.n; i++) data.labels[i] = (uint8_t)nasc_rng_below(&r, 10);
    return 0;
}

static void clear_dir(void) {
    static const char *names[] = {"journal.jsonl", "strategy.nasc", "strategy.nasc.tmp", "copy.nasc",
                                  "copy.jsonl", NULL};
    for (int i = 0; names[i]; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

/* The run's own files, the copies kept. */
static void remove_run(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/journal.jsonl", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/strategy.nasc", dir);
    unlink(p);
}

static int teardown(void **state) {
    (void)state;
    clear_dir();
    rmdir(dir);
    free(data.images);
    free(data.labels);
    return 0;
}

static void fail_diag(const nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fail_msg("%s: %s", what, buf);
}

/* ---------------------------------------------------------------- */
/* One process's worth of a search: space, strategy, journal, loop   */
/* ---------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* Wraps the in-process evaluator: raises SIGINT before or after the
 * evaluation with the given number (0-based; -1 never). */
typedef struct sig_eval {
    nasc_evaluator inner;
    int64_t calls, raise_before, raise_after;
} sig_eval;

static nasc_status sig_evaluate(void *ud, const nasc_module *arch, nasc_eval_result *out) {
    sig_eval *e = ud;
    int64_t k = e->calls++;
    if (k == e->raise_before) raise(SIGINT);
    nasc_status st = e->inner.evaluate(e->inner.ud, arch, out);
    if (k == e->raise_after) raise(SIGINT);
    return st;
}

typedef struct session {
    nasc_ctx ctx;
    nasc_space *sp;
    nasc_strategy *s;
    nasc_journal *j;
    char journal[300], state[300];
    char warning[512];
} session;

static const char *set_keys[] = {"channels", "input"}, *set_vals[] = {"4", "1x8x8"};

/* Space nasrl with 2 layers; the strategy with this seed; the journal and
 * the state in dir (the state loaded when it is there). The status of the
 * first step that fails. */
static nasc_status open_session(session *ss, const char *strategy, uint64_t seed) {
    memset(ss, 0, sizeof *ss);
    nasc_ctx_init(&ss->ctx);
    snprintf(ss->journal, sizeof ss->journal, "%s/journal.jsonl", dir);
    snprintf(ss->state, sizeof ss->state, "%s/strategy.nasc", dir);
    nasc_space_options so = {0, 2};
    nasc_status st = nasc_space_create(&ss->ctx, "nasrl", &so, &ss->sp);
    if (st) return st;
    nasc_strategy_options o = nasc_strategy_options_default();
    o.seed = seed;
    o.population = 3;
    o.sample_size = 2;
    o.batch = 2;
    st = nasc_strategy_create(&ss->ctx, strategy, nasc_space_decisions(ss->sp), nasc_space_count(ss->sp), &o, &ss->s);
    if (st) return st;
    st = nasc_journal_open(&ss->ctx, ss->journal, ss->sp, strategy, &ss->j, ss->warning,
                           sizeof ss->warning);
    if (st) return st;
    if (access(ss->state, F_OK) == 0) {
        nasc_param_store *ps = NULL;
        st = nasc_params_load(&ss->ctx, ss->state, &ps);
        if (!st) st = nasc_strategy_load(ss->s, ps);
        nasc_params_destroy(ps);
    }
    return st;
}

static void close_session(session *ss) {
    nasc_journal_close(ss->j);
    nasc_strategy_destroy(ss->s);
    nasc_space_destroy(ss->sp);
}

/* Run the loop to budget; SIGINT is raised before (or after) evaluation
 * number `before` (`after`), -1 for none. */
static nasc_status run_loop(session *ss, int64_t budget, int64_t before, int64_t after) {
    nasc_train_eval_options eo = {0};
    eo.train = &data;
    eo.epochs = 1;
    eo.train_subset = 32;
    eo.val_size = 32;
    eo.batch = 16;
    eo.lr = 0.05f;
    eo.seed = 1;
    eo.threads = 1;
    eo.stop = &stop_flag;
    sig_eval se = {nasc_train_evaluator(&eo), 0, before, after};
    nasc_search_run r = {0};
    r.space = ss->sp;
    r.strategy = ss->s;
    r.journal = ss->j;
    r.state_path = ss->state;
    r.budget = budget;
    r.eval.evaluate = sig_evaluate;
    r.eval.ud = &se;
    r.set_keys = set_keys;
    r.set_vals = set_vals;
    r.n_set = 2;
    r.stop = &stop_flag;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGINT, &sa, &old), 0);
    stop_flag = 0;
    nasc_status st = nasc_search_loop(&ss->ctx, &r);
    assert_int_equal(sigaction(SIGINT, &old, NULL), 0);
    return st;
}

/* The trials of a journal, without the wall times. */
typedef struct record {
    uint32_t d[64];
    uint64_t hash;
    char status[8];
    double reward;
} record;

static int64_t snapshot(const nasc_journal *j, record *out, int64_t cap) {
    assert_true(j->n <= cap);
    assert_true(j->n_decisions <= 64);
    for (int64_t i = 0; i < j->n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        memcpy(out[i].d, j->trials[i].d, j->n_decisions * sizeof *out[i].d);
        out[i].hash = j->trials[i].hash;
        snprintf(out[i].status, sizeof out[i].status, "%s", j->trials[i].status);
        out[i].reward = j->trials[i].reward;
    }
    return j->n;
}

static void same_records(const record *a, const record *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(a[i].d, b[i].d, sizeof a[i].d) != 0) fail_msg("trial %lld: other decisions", (long long)i);
        if (a[i].hash != b[i].hash) fail_msg("trial %lld: another hash", (long long)i);
        assert_string_equal(a[i].status, b[i].status);
        if (!(a[i].reward == b[i].reward || (a[i].reward != a[i].reward && b[i].reward != b[i].reward)))
            fail_msg("trial %lld: reward %.17g, expected %.17g", (long long)i, b[i].reward, a[i].reward);
    }
}

#define BUDGET 6

/* The uninterrupted run of a strategy. */
static int64_t reference(const char *strategy, record *ref) {
    clear_dir();
    session ss;
    if (open_session(&ss, strategy, 7)) fail_diag(&ss.ctx, "open");
    if (run_loop(&ss, BUDGET, -1, -1)) fail_diag(&ss.ctx, "reference run");
    int64_t n = snapshot(ss.j, ref, BUDGET);
    assert_int_equal(n, BUDGET);
    close_session(&ss);
    return n;
}

/* The saved state has seen exactly the journal's trials. */
static void state_matches_journal(session *ss) {
    nasc_param_store *ps = NULL;
    if (nasc_params_load(&ss->ctx, ss->state, &ps)) fail_diag(&ss->ctx, "state");
    const char *rep = nasc_params_meta(ps, "strategy/reported");
    assert_non_null(rep);
    assert_int_equal(strtoll(rep, NULL, 10), ss->j->n);
    nasc_params_destroy(ps);
}

/* ---------------------------------------------------------------- */

static void test_sigint(void **state) {
    (void)state;
    static const char *strategies[] = {"random", "evolution"};
    for (int si = 0; si < 2; si++) {
        record ref[BUDGET], got[BUDGET];
        reference(strategies[si], ref);
        for (int after = 0; after < 2; after++) {
            clear_dir();
            session ss;
            if (open_session(&ss, strategies[si], 7)) fail_diag(&ss.ctx, "open");
            /* SIGINT while the third child trains, or just after it trained */
            nasc_status st = run_loop(&ss, BUDGET, after ? -1 : 2, after ? 2 : -1);
            assert_int_equal(st, NASC_EINPUT);
            assert_non_null(strstr(ss.ctx.diag.msg, "interrupted"));
            assert_true(stop_flag == 1);
            /* abandoned: the trials before it; finished: that one too */
            int64_t n = ss.j->n;
            assert_true(n >= (after ? 3 : 2) && n < BUDGET);
            for (int64_t i = 0; i < n; i++) assert_string_not_equal(ss.j->trials[i].status, "failed");
            assert_int_equal(nasc_strategy_reported(ss.s), n);
            state_matches_journal(&ss);
            close_session(&ss);
            /* the journal reads back whole, and the search continues to the reference's trials */
            if (open_session(&ss, strategies[si], 7)) fail_diag(&ss.ctx, "reopen");
            assert_string_equal(ss.warning, "");
            assert_int_equal(ss.j->n, n);
            if (run_loop(&ss, BUDGET, -1, -1)) fail_diag(&ss.ctx, "continue");
            assert_int_equal(snapshot(ss.j, got, BUDGET), BUDGET);
            same_records(ref, got, BUDGET);
            close_session(&ss);
        }
    }
}

/* ---------------------------------------------------------------- */
/* Files                                                             */
/* ---------------------------------------------------------------- */

static char *slurp(const char *name, size_t *len) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void spit(const char *name, const char *b, size_t n) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = slurp(from, &n);
    assert_non_null(b);
    spit(to, b, n);
    free(b);
}

/* Bytes of the first `lines` lines of text. */
static size_t lines_prefix(const char *text, size_t len, int lines) {
    size_t pos = 0;
    for (int l = 0; l < lines; l++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        assert_non_null(nl);
        pos = (size_t)(nl - text) + 1;
    }
    return pos;
}

/* Continue the search in dir to the budget and compare with ref. */
static void continue_to_ref(const char *strategy, const record *ref, const char *warning) {
    session ss;
    if (open_session(&ss, strategy, 7)) fail_diag(&ss.ctx, "open");
    if (warning) {
        if (!strstr(ss.warning, warning)) fail_msg("warning '%s', expected '%s'", ss.warning, warning);
    } else {
        assert_string_equal(ss.warning, "");
    }
    if (run_loop(&ss, BUDGET, -1, -1)) fail_diag(&ss.ctx, "continue");
    record got[BUDGET];
    assert_int_equal(snapshot(ss.j, got, BUDGET), BUDGET);
    same_records(ref, got, BUDGET);
    state_matches_journal(&ss);
    close_session(&ss);
}

/* Run the search in dir (fresh or continued) to `budget` trials. */
static void run_to(const char *strategy, int64_t budget) {
    session ss;
    if (open_session(&ss, strategy, 7)) fail_diag(&ss.ctx, "open");
    if (run_loop(&ss, budget, -1, -1)) fail_diag(&ss.ctx, "run");
    assert_int_equal(ss.j->n, budget);
    close_session(&ss);
}

/* ---------------------------------------------------------------- */

/* What a search killed at any moment leaves behind, for each strategy:
 *  A. killed after the journal append of trial k, before its state save:
 *     the state has seen k trials, the journal k + 1 (replayed from the
 *     state);
 *  B. killed while trial k + 1 was appended: k + 1 records, a part of the
 *     next one, and the state of k + 1 trials;
 *  C. killed before any state was saved (or the state lost): records only,
 *     replayed from the start;
 *  D. killed while the state was written: a stray strategy.nasc.tmp.
 * Each continues to the uninterrupted run's trials. */
static void test_killed_states(void **state) {
    (void)state;
    static const char *strategies[] = {"random", "reinforce", "evolution"};
    for (int si = 0; si < 3; si++) {
        const char *strat = strategies[si];
        record ref[BUDGET];
        reference(strat, ref);
        size_t ref_len;
        char *ref_text = slurp("journal.jsonl", &ref_len);
        assert_non_null(ref_text);
        for (int64_t k = 1; k < BUDGET - 1; k += 2) {
            /* A */
            clear_dir();
            run_to(strat, k);
            copy_file("strategy.nasc", "copy.nasc");
            run_to(strat, k + 1);
            copy_file("copy.nasc", "strategy.nasc");
            continue_to_ref(strat, ref, NULL);
            /* B: every few bytes of the next record */
            clear_dir();
            run_to(strat, k + 1);
            copy_file("strategy.nasc", "copy.nasc");
            size_t whole = lines_prefix(ref_text, ref_len, (int)k + 2), next = lines_prefix(ref_text, ref_len, (int)k + 3);
            for (size_t cut = whole + 1; cut < next; cut += (next - whole) / 3) {
                char *torn = malloc(cut);
                assert_non_null(torn);
                memcpy(torn, ref_text, cut);
                spit("journal.jsonl", torn, cut);
                free(torn);
                copy_file("copy.nasc", "strategy.nasc");
                char want[64];
                snprintf(want, sizeof want, ":%d: dropped a torn last record", (int)k + 3);
                continue_to_ref(strat, ref, want);
            }
            /* C */
            clear_dir();
            spit("journal.jsonl", ref_text, lines_prefix(ref_text, ref_len, (int)k + 1));
            continue_to_ref(strat, ref, NULL);
            /* D */
            clear_dir();
            run_to(strat, k);
            spit("strategy.nasc.tmp", "\x01\x02", 2);
            continue_to_ref(strat, ref, NULL);
        }
        free(ref_text);
    }
}

/* The journal of a search with seed 7, continued by one with seed 8 that
 * has no state of its own (or by a strategy state of the seed-8 search):
 * the first record that is not what seed 8 proposes is an error at its
 * line naming the decision, and nothing in the directory changes. */
static void test_replay_mismatch(void **state) {
    (void)state;
    record ref[BUDGET];
    reference("evolution", ref);
    size_t len;
    char *before = slurp("journal.jsonl", &len);
    char p[300];
    snprintf(p, sizeof p, "%s/strategy.nasc", dir);
    assert_int_equal(unlink(p), 0);
    session ss;
    if (open_session(&ss, "evolution", 8)) fail_diag(&ss.ctx, "open");
    assert_int_equal(run_loop(&ss, BUDGET + 2, -1, -1), NASC_EINPUT);
    if (ss.ctx.diag.line != 2 || !strstr(ss.ctx.diag.file, "journal.jsonl") ||
        !strstr(ss.ctx.diag.msg, "trial 0 is not what strategy evolution proposes") ||
        !strstr(ss.ctx.diag.msg, "in the journal"))
        fail_diag(&ss.ctx, "expected an error at line 2");
    close_session(&ss);
    size_t len2;
    char *after = slurp("journal.jsonl", &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    assert_int_equal(access(p, F_OK), -1); /* no state written */
    free(after);
    /* the first records agree, a later one does not: seed 8's journal from
     * trial 2 on, after seed 7's first two, with seed 7's state of trial 2 */
    clear_dir();
    run_to("evolution", 2);
    copy_file("strategy.nasc", "copy.nasc");
    copy_file("journal.jsonl", "copy.jsonl");
    remove_run();
    {
        session s8;
        if (open_session(&s8, "evolution", 8)) fail_diag(&s8.ctx, "open");
        if (run_loop(&s8, BUDGET, -1, -1)) fail_diag(&s8.ctx, "seed 8");
        close_session(&s8);
    }
    size_t l7, l8;
    char *j7 = slurp("copy.jsonl", &l7), *j8 = slurp("journal.jsonl", &l8);
    size_t keep7 = lines_prefix(j7, l7, 3), from8 = lines_prefix(j8, l8, 3);
    char *mixed = malloc(keep7 + l8 - from8);
    memcpy(mixed, j7, keep7);
    memcpy(mixed + keep7, j8 + from8, l8 - from8);
    spit("journal.jsonl", mixed, keep7 + l8 - from8);
    copy_file("copy.nasc", "strategy.nasc");
    size_t ls0;
    char *state0 = slurp("strategy.nasc", &ls0);
    if (open_session(&ss, "evolution", 7)) fail_diag(&ss.ctx, "open mixed");
    nasc_status st = run_loop(&ss, BUDGET, -1, -1);
    /* seed 8 may propose what seed 7 does for a while, never for all of them */
    assert_int_equal(st, NASC_EINPUT);
    assert_true(ss.ctx.diag.line >= 4);
    assert_non_null(strstr(ss.ctx.diag.msg, "is not what strategy evolution proposes"));
    close_session(&ss);
    size_t la, lsa;
    char *after2 = slurp("journal.jsonl", &la), *state1 = slurp("strategy.nasc", &lsa);
    assert_int_equal(la, keep7 + l8 - from8);
    assert_memory_equal(after2, mixed, la);
    assert_int_equal(ls0, lsa);
    assert_memory_equal(state0, state1, ls0);
    free(j7);
    free(j8);
    free(mixed);
    free(after2);
    free(state0);
    free(state1);
    free(before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_killed_states),
        cmocka_unit_test(test_replay_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
