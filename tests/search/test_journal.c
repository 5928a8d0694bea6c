/* The run journal: records round trip exactly; a torn last record (cut at
 * every byte, or a flipped byte in it) is dropped with a warning and cut off
 * the file; damage before the last record is an error naming the line; a
 * failing allocator does not crash or leak. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nasc_search.h"

static char dir[] = "/tmp/nasc-journal-XXXXXX";
static char path[256];

static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void make_trial(nasc_trial *t, uint32_t *d, int64_t i) {
    memset(t, 0, sizeof *t);
    t->index = i;
    t->d = d;
    for (int k = 0; k < 5; k++) d[k] = (uint32_t)(i * 7 + k * 3) % 11;
    d[4] = 0x3fffffffu; /* a SKIP mask with 30 bits */
    t->hash = 0x0123456789abcdefULL ^ (uint64_t)i;
    if (i % 3 == 2) {
        snprintf(t->status, sizeof t->status, "failed");
        t->reward = NAN;
        t->val_loss = NAN;
        snprintf(t->reason, sizeof t->reason, "training failed: the loss is \"NaN\"\\ at step %d\n", (int)i);
    } else {
        snprintf(t->status, sizeof t->status, i % 3 ? "cached" : "ok");
        t->reward = 0.1 + 0.8 / (double)(i + 1) + 1e-17;
        t->val_loss = 1.0 / 3.0;
        snprintf(t->reason, sizeof t->reason, "%s", i % 3 ? "same architecture as trial 0" : "");
    }
    t->seconds = 1.25 * (double)i;
    t->params = 1000 + i;
    t->macs = 123456789012LL + i;
}

static void write_n(int n) {
    unlink(path);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = NULL;
    char warn[256];
    assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_OK);
    assert_string_equal(warn, "");
    for (int i = 0; i < n; i++) {
        nasc_trial t;
        uint32_t d[5];
        make_trial(&t, d, i);
        assert_int_equal(nasc_journal_append(j, &t), NASC_OK);
    }
    assert_int_equal(j->n, n);
    nasc_journal_close(j);
}

static char *slurp(size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void spit(const char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_round_trip(void **state) {
    (void)state;
    write_n(7);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = NULL;
    char warn[256];
    assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_OK);
    assert_string_equal(warn, "");
    assert_int_equal(j->n, 7);
    for (int i = 0; i < 7; i++) {
        nasc_trial t;
        uint32_t d[5];
        make_trial(&t, d, i);
        const nasc_trial *r = &j->trials[i];
        assert_int_equal(r->index, i);
        assert_memory_equal(r->d, d, sizeof d);
        assert_true(r->hash == t.hash);
        assert_string_equal(r->status, t.status);
        if (isnan(t.reward))
            assert_true(isnan(r->reward));
        else
            assert_true(r->reward == t.reward); /* %.17g: exact */
        assert_true(r->seconds == t.seconds);
        assert_int_equal(r->params, t.params);
        assert_int_equal(r->macs, t.macs);
        assert_string_equal(r->reason, t.reason);
    }
    /* best: the highest reward of a non-failed trial, earliest on ties */
    assert_int_equal(nasc_journal_best(j), 0);
    /* appending after a reopen continues the file */
    nasc_trial t;
    uint32_t d[5];
    make_trial(&t, d, 7);
    assert_int_equal(nasc_journal_append(j, &t), NASC_OK);
    nasc_journal_close(j);
    assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_OK);
    assert_int_equal(j->n, 8);
    nasc_journal_close(j);
    /* another space (decision count) cannot read it */
    assert_int_equal(nasc_journal_open(&ctx, path, 4, &j, warn, sizeof warn), NASC_EINPUT);
    assert_null(j);
    assert_non_null(strstr(ctx.diag.msg, "decisions"));
    assert_int_equal(ctx.diag.line, 1);
}

/* Cut the file at every byte inside the last record: the first records
 * survive, the torn one is dropped with a warning and cut off the file. */
static void test_torn_tail(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
    size_t last = len - 1;
    while (last > 0 && full[last - 1] != '\n') last--;
    for (size_t cut = last + 1; cut < len; cut++) {
        spit(full, cut);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_journal *j = NULL;
        char warn[256];
        assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_OK);
        assert_int_equal(j->n, 2);
        assert_non_null(strstr(warn, "torn"));
        assert_non_null(strstr(warn, ":3:"));
        nasc_journal_close(j);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((size_t)st.st_size, last);
    }
    /* the whole record without its newline is torn too */
    spit(full, len - 1);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = NULL;
    char warn[256];
    assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_OK);
    assert_int_equal(j->n, 2);
    nasc_journal_close(j);
    free(full);
}

/* A flipped byte: in the last record it is dropped; earlier, an error. */
static void test_flipped_byte(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
    size_t first_nl = strchr(full, '\n') - full;
    size_t last = len - 1;
    while (last > 0 && full[last - 1] != '\n') last--;
    for (size_t i = 0; i < len; i++) {
        if (full[i] == '\n') continue;
        char *b = malloc(len);
        memcpy(b, full, len);
        b[i] ^= 0x04;
        spit(b, len);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_journal *j = NULL;
        char warn[256];
        nasc_status st = nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn);
        if (i >= last) {
            assert_int_equal(st, NASC_OK);
            assert_int_equal(j->n, 2);
            assert_non_null(strstr(warn, "torn"));
            nasc_journal_close(j);
        } else {
            assert_int_equal(st, NASC_EINPUT);
            assert_null(j);
            assert_int_equal(ctx.diag.line, i < first_nl ? 1 : 2);
            assert_non_null(strstr(ctx.diag.file, "journal.jsonl"));
        }
        free(b);
    }
    free(full);
}

static void test_bad_files(void **state) {
    (void)state;
    static const char *bad[] = {
        "garbage\n{}\n",
        "{\"trial\":0}\n{\"trial\":1}\n",
        "\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spit(bad[i], strlen(bad[i]));
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_journal *j = NULL;
        char warn[256];
        assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_EINPUT);
        assert_null(j);
        assert_int_equal(ctx.diag.line, 1);
    }
    /* records out of order (a line copied twice) */
    write_n(2);
    size_t len;
    char *full = slurp(&len);
    char *twice = malloc(2 * len);
    memcpy(twice, full, len);
    memcpy(twice + len, full, len);
    spit(twice, 2 * len);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = NULL;
    char warn[256];
    assert_int_equal(nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "order"));
    free(full);
    free(twice);
    /* a directory that does not exist */
    assert_int_equal(nasc_journal_open(&ctx, "/nonexistent/dir/journal.jsonl", 5, &j, warn, sizeof warn), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.file, "/nonexistent/dir"));
}

static void test_alloc_failures(void **state) {
    (void)state;
    write_n(4);
    for (long k = 1; k < 200; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_journal *j = NULL;
        char warn[256];
        nasc_status st = nasc_journal_open(&ctx, path, 5, &j, warn, sizeof warn);
        if (st == NASC_OK) {
            nasc_trial t;
            uint32_t d[5];
            make_trial(&t, d, 4);
            st = nasc_journal_append(j, &t);
            nasc_journal_close(j);
            write_n(4); /* undo the append for the next round */
        } else {
            assert_int_equal(st, NASC_ENOMEM);
        }
        assert_int_equal(ta.live, 0);
        if (!ta.failed) break;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_flipped_byte),   cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
