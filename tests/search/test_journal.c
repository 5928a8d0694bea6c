/* The run journal: records round trip exactly; a torn last record (cut at
 * every byte, or a flipped byte in it) is dropped with a warning, left in
 * the file by opening and cut off by the next append; damage before the last
 * record is an error naming the line; a journal of another search (space,
 * size, strategy, a changed decision list) or with a record outside the
 * space is an error naming the line and what differs, and the file is left
 * as it was; a failing allocator does not crash or leak. */
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

/* The journals here are of enas-macro with 30 layers (60 decisions, the
 * last a skip mask over 29 layers) searched by evolution. */
#define ND 60
static nasc_ctx space_ctx;
static nasc_space *space;

static nasc_space *make_space(const char *name, int blocks, int layers) {
    nasc_space_options o = {blocks, layers};
    nasc_space *sp = NULL;
    assert_int_equal(nasc_space_create(&space_ctx, name, &o, &sp), NASC_OK);
    return sp;
}

static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    nasc_ctx_init(&space_ctx);
    nasc_space_options o = {0, 30};
    if (nasc_space_create(&space_ctx, "enas-macro", &o, &space) || nasc_space_count(space) != ND) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(dir);
    nasc_space_destroy(space);
    return 0;
}

static nasc_status jopen(nasc_ctx *ctx, nasc_journal **j, char *warn, size_t size) {
    return nasc_journal_open(ctx, path, space, "evolution", j, warn, size);
}

static void make_trial(nasc_trial *t, uint32_t *d, int64_t i) {
    memset(t, 0, sizeof *t);
    t->index = t->proposal = i;
    t->d = d;
    const nasc_decision *dec = nasc_space_decisions(space);
    for (int k = 0; k < ND; k++) {
        uint32_t v = (uint32_t)(i * 7 + k * 3) * 2654435761u;
        d[k] = dec[k].kind == NASC_DEC_CHOICE ? v % (uint32_t)dec[k].card : v & ((1u << dec[k].card) - 1);
    }
    d[ND - 1] = 0x1fffffffu; /* a SKIP mask with 29 bits */
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
    assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
    assert_string_equal(warn, "");
    for (int i = 0; i < n; i++) {
        nasc_trial t;
        uint32_t d[ND];
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
    assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
    assert_string_equal(warn, "");
    assert_int_equal(j->n, 7);
    for (int i = 0; i < 7; i++) {
        nasc_trial t;
        uint32_t d[ND];
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
    uint32_t d[ND];
    make_trial(&t, d, 7);
    assert_int_equal(nasc_journal_append(j, &t), NASC_OK);
    nasc_journal_close(j);
    assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
    assert_int_equal(j->n, 8);
    nasc_journal_close(j);
}

static off_t file_size(void) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Cut the file at every byte inside the last record: the first records
 * survive and the torn one is dropped with a warning. Opening leaves the
 * bytes; the next append cuts them off and the journal reads back whole. */
static void test_torn_tail(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
    size_t last = len - 1;
    while (last > 0 && full[last - 1] != '\n') last--;
    for (size_t cut = last + 1; cut <= len; cut++) {
        /* cut == len - 1: the whole record without its newline */
        if (cut == len) cut = len - 1;
        spit(full, cut);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_journal *j = NULL;
        char warn[256];
        assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
        assert_int_equal(j->n, 2);
        assert_non_null(strstr(warn, "torn"));
        assert_non_null(strstr(warn, ":4:")); /* line 1 is the header */
        assert_int_equal((size_t)file_size(), cut);
        nasc_trial t;
        uint32_t d[ND];
        make_trial(&t, d, 2);
        assert_int_equal(nasc_journal_append(j, &t), NASC_OK);
        nasc_journal_close(j);
        size_t now;
        char *again = slurp(&now);
        assert_int_equal(now, len);
        assert_memory_equal(again, full, len);
        free(again);
        if (cut == len - 1) break;
    }
    /* a torn first record takes the header with it: the journal starts again */
    size_t header = strchr(full, '\n') - full + 1;
    for (size_t cut = 1; cut < header; cut += 7) {
        spit(full, cut);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_journal *j = NULL;
        char warn[256];
        assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
        assert_int_equal(j->n, 0);
        assert_non_null(strstr(warn, ":1: dropped a torn header"));
        assert_int_equal((size_t)file_size(), cut);
        nasc_trial t;
        uint32_t d[ND];
        make_trial(&t, d, 0);
        assert_int_equal(nasc_journal_append(j, &t), NASC_OK);
        nasc_journal_close(j);
        assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_OK);
        assert_string_equal(warn, "");
        assert_int_equal(j->n, 1);
        nasc_journal_close(j);
    }
    free(full);
}

static int line_of(const char *text, size_t i) {
    int line = 1;
    for (size_t k = 0; k < i; k++) line += text[k] == '\n';
    return line;
}

/* A flipped byte: in the last record it is dropped; earlier (the header
 * included), an error naming the line. */
static void test_flipped_byte(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
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
        nasc_status st = jopen(&ctx, &j, warn, sizeof warn);
        if (i >= last) {
            assert_int_equal(st, NASC_OK);
            assert_int_equal(j->n, 2);
            assert_non_null(strstr(warn, "torn"));
            nasc_journal_close(j);
        } else {
            assert_int_equal(st, NASC_EINPUT);
            assert_null(j);
            assert_int_equal(ctx.diag.line, line_of(full, i));
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
        assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_EINPUT);
        assert_null(j);
        assert_int_equal(ctx.diag.line, 1);
    }
    /* records out of order (the records copied twice) */
    write_n(2);
    size_t len;
    char *full = slurp(&len);
    size_t header = strchr(full, '\n') - full + 1;
    char *twice = malloc(2 * len);
    memcpy(twice, full, len);
    memcpy(twice + len, full + header, len - header);
    spit(twice, 2 * len - header);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = NULL;
    char warn[256];
    assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "order"));
    assert_int_equal(ctx.diag.line, 4);
    /* a journal of an older nasc: records without a header */
    spit(full + header, len - header);
    assert_int_equal(jopen(&ctx, &j, warn, sizeof warn), NASC_EINPUT);
    assert_int_equal(ctx.diag.line, 1);
    assert_non_null(strstr(ctx.diag.msg, "not a journal header"));
    free(full);
    free(twice);
    /* a directory that does not exist */
    assert_int_equal(nasc_journal_open(&ctx, "/nonexistent/dir/journal.jsonl", space, "evolution", &j, warn, sizeof warn),
                     NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.file, "/nonexistent/dir"));
}

/* FNV-1a, as the journal checks its lines. */
static uint64_t fnv64(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* In line `line` (1-based) of the journal, replace the first `from` with
 * `to` and write a matching checksum: a well-formed journal that says
 * something else. */
static void edit_line(int line, const char *from, const char *to) {
    size_t len;
    char *text = slurp(&len);
    char *p = text;
    for (int l = 1; l < line; l++) p = strchr(p, '\n') + 1;
    char *nl = strchr(p, '\n');
    char *hit = strstr(p, from);
    assert_true(hit && hit < nl);
    char *ck = strstr(p, ",\"check\":\"");
    assert_true(ck && ck < nl);
    size_t n = 0, cap = len + strlen(to) + 64;
    char *out = malloc(cap);
    memcpy(out, text, (size_t)(hit - text));
    n = (size_t)(hit - text);
    n += (size_t)snprintf(out + n, cap - n, "%s", to);
    memcpy(out + n, hit + strlen(from), (size_t)(ck - hit) - strlen(from));
    n += (size_t)(ck - hit) - strlen(from);
    size_t start = (size_t)(p - text);
    n += (size_t)snprintf(out + n, cap - n, ",\"check\":\"%016llx\"}", (unsigned long long)fnv64(out + start, n - start));
    memcpy(out + n, nl, len - (size_t)(nl - text));
    n += len - (size_t)(nl - text);
    spit(out, n);
    free(out);
    free(text);
}

/* Open the journal as this search, expect NASC_EINPUT at `line` with `what`
 * in the message, and the file exactly as it was. */
static void refused(nasc_space *sp, const char *strategy, int line, const char *what) {
    size_t len0;
    char *before = slurp(&len0);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_journal *j = (nasc_journal *)1;
    char warn[256];
    assert_int_equal(nasc_journal_open(&ctx, path, sp, strategy, &j, warn, sizeof warn), NASC_EINPUT);
    assert_null(j);
    if (ctx.diag.line != line || !strstr(ctx.diag.msg, what))
        fail_msg("expected line %d and '%s', got line %d: %s", line, what, ctx.diag.line, ctx.diag.msg);
    assert_non_null(strstr(ctx.diag.file, "journal.jsonl"));
    size_t len1;
    char *after = slurp(&len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
}

/* A journal of another search is refused at line 1 with what differs; the
 * file is left alone (a torn last record included). */
static void test_other_search(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
    spit(full, len - 5); /* and a torn last record */
    nasc_space *nasrl = make_space("nasrl", 0, 2), *smaller = make_space("enas-macro", 0, 29);
    refused(nasrl, "evolution", 1, "its space is 'enas-macro' (layers=30), this search's 'nasrl' (layers=2)");
    refused(smaller, "evolution", 1, "its enas-macro space has layers=30, this search's layers=29");
    refused(space, "reinforce", 1, "its strategy is 'evolution', this search's 'reinforce'");
    /* the same space and size, but its decision list changed */
    spit(full, len);
    edit_line(1, "c6 s0 c6 s1 c6 s2", "c6 s0 c5 s1 c6 s2");
    refused(space, "evolution", 1, "decision 2 'l1.op' has 5 options in the journal but 6 options in this");
    spit(full, len);
    edit_line(1, "c6 s0 ", "");
    refused(space, "evolution", 1, "its enas-macro space has 58 decisions, this search's 60");
    spit(full, len);
    edit_line(1, "c6 s0 c6 s1", "c6 c1 c6 s1");
    refused(space, "evolution", 1, "decision 1 'l0.skip' has 1 option in the journal but a skip mask over 0");
    nasc_space_destroy(nasrl);
    nasc_space_destroy(smaller);
    free(full);
}

/* A record whose decisions are not values of the space: an error at its
 * line naming the decision, the last record too. */
static void test_record_outside_space(void **state) {
    (void)state;
    write_n(3);
    size_t len;
    char *full = slurp(&len);
    /* l0.op (6 options) = 9 in trial 1 */
    edit_line(3, "\"decisions\":[", "\"decisions\":[9");
    refused(space, "evolution", 3, "trial 1 does not fit this search's space");
    refused(space, "evolution", 3, "'l0.op'");
    spit(full, len);
    /* the skip mask of the last layer past its 29 bits, in the last record */
    edit_line(4, ",536870911]", ",536870912]");
    refused(space, "evolution", 4, "'l29.skip'");
    free(full);
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
        nasc_status st = jopen(&ctx, &j, warn, sizeof warn);
        if (st == NASC_OK) {
            nasc_trial t;
            uint32_t d[ND];
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
        cmocka_unit_test(test_other_search),   cmocka_unit_test(test_record_outside_space),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
