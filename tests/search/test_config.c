/* The run directory's configuration (config.txt): any number of keys round
 * trip and a change to any of them (the fortieth as much as the first) is
 * named by the check; the file is written with the atomic writer, so a
 * process killed while writing it (RLIMIT_FSIZE: SIGXFSZ at the first byte
 * past the limit) leaves no config.txt at all, never a partial one; bad keys
 * and values are errors that stick; a failing allocator does not crash or
 * leak. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nasc_search.h"

static char dir[] = "/tmp/nasc-config-XXXXXX";
static char path[256], tmp_path[256];

static int setup(void **state) {
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/config.txt", dir);
    snprintf(tmp_path, sizeof tmp_path, "%s/config.txt.tmp", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    unlink(tmp_path);
    rmdir(dir);
    return 0;
}

#define NKEYS 40

/* Keys k00..k39; key `changed` gets another value. */
static nasc_status fill(nasc_run_config *c, int changed) {
    nasc_status st = NASC_OK;
    for (int i = 0; i < NKEYS && !st; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        st = nasc_run_config_add(c, key, "value %d%s", i * 7, i == changed ? " (changed)" : "");
    }
    return st;
}

static int count_lines(const char *p) {
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void test_many_keys(void **state) {
    (void)state;
    unlink(path);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_run_config c;
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(fill(&c, -1), NASC_OK);
    assert_int_equal(c.n, NKEYS);
    assert_int_equal(nasc_run_config_write(&c, path), NASC_OK);
    assert_int_equal(count_lines(path), NKEYS + 2); /* two comment lines */
    assert_int_equal(access(tmp_path, F_OK), -1);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_OK);
    nasc_run_config_free(&c);
    /* every key is compared, those past the 24th included */
    for (int i = 0; i < NKEYS; i++) {
        nasc_run_config_init(&c, &ctx);
        assert_int_equal(fill(&c, i), NASC_OK);
        assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
        char want[64];
        snprintf(want, sizeof want, "k%02d was 'value %d', now 'value %d (changed)'", i, i * 7, i * 7);
        if (!strstr(ctx.diag.msg, want)) fail_msg("key %d: '%s' not in '%s'", i, want, ctx.diag.msg);
        assert_int_equal(ctx.diag.line, i + 3);
        nasc_run_config_free(&c);
    }
    /* a key the file does not have, and one the search does not know */
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(fill(&c, -1), NASC_OK);
    assert_int_equal(nasc_run_config_add(&c, "k40", "new"), NASC_OK);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "has no 'k40'"));
    nasc_run_config_free(&c);
    nasc_run_config_init(&c, &ctx);
    for (int i = 0; i < NKEYS - 1; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        assert_int_equal(nasc_run_config_add(&c, key, "value %d", i * 7), NASC_OK);
    }
    assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "unknown configuration key 'k39'"));
    nasc_run_config_free(&c);
    /* a long value round trips */
    unlink(path);
    nasc_run_config_init(&c, &ctx);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(nasc_run_config_add(&c, "set", "%s", big), NASC_OK);
    assert_int_equal(nasc_run_config_write(&c, path), NASC_OK);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_OK);
    nasc_run_config_free(&c);
    nasc_run_config_init(&c, &ctx);
    big[2000] = 'y';
    assert_int_equal(nasc_run_config_add(&c, "set", "%s", big), NASC_OK);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
    nasc_run_config_free(&c);
    nasc_run_config free_twice = {0};
    nasc_run_config_free(&free_twice);
}

/* A child process writes the configuration with a file size limit below
 * its length and dies of SIGXFSZ in the middle of the write. */
static void test_killed_while_writing(void **state) {
    (void)state;
    unlink(path);
    unlink(tmp_path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_DFL);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 100;
        setrlimit(RLIMIT_FSIZE, &rl);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_run_config c;
        nasc_run_config_init(&c, &ctx);
        fill(&c, -1);
        nasc_run_config_write(&c, path);
        _exit(0); /* not reached: the write is larger than the limit */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGXFSZ);
    /* no config.txt: a continued run starts afresh instead of finding a
     * configuration cut short that it can neither continue nor replace */
    assert_int_equal(access(path, F_OK), -1);
    /* the next write replaces the temporary file */
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_run_config c;
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(fill(&c, -1), NASC_OK);
    assert_int_equal(nasc_run_config_write(&c, path), NASC_OK);
    assert_int_equal(access(tmp_path, F_OK), -1);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_OK);
    nasc_run_config_free(&c);
}

static void test_bad_keys(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    static const char *bad[] = {"", "a = b", "two\nlines", "# comment"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nasc_run_config c;
        nasc_run_config_init(&c, &ctx);
        assert_int_equal(nasc_run_config_add(&c, "space", "nasrl"), NASC_OK);
        assert_int_equal(nasc_run_config_add(&c, bad[i], "x"), NASC_EINPUT);
        /* the error sticks: later adds, write and check return it */
        assert_int_equal(nasc_run_config_add(&c, "seed", "1"), NASC_EINPUT);
        assert_int_equal(nasc_run_config_write(&c, path), NASC_EINPUT);
        assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
        nasc_run_config_free(&c);
    }
    nasc_run_config c;
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(nasc_run_config_add(&c, "data", "a\nb"), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "newline"));
    nasc_run_config_free(&c);
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(nasc_run_config_add(&c, "seed", "1"), NASC_OK);
    assert_int_equal(nasc_run_config_add(&c, "seed", "2"), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "twice"));
    nasc_run_config_free(&c);
    /* files that are not a configuration */
    static const char *files[] = {"space nasrl\n", "space = nasrl\nspace = nasrl\n", " = x\n"};
    static const int lines[] = {1, 2, 1};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i], f);
        fclose(f);
        nasc_run_config_init(&c, &ctx);
        assert_int_equal(nasc_run_config_add(&c, "space", "nasrl"), NASC_OK);
        assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT);
        assert_int_equal(ctx.diag.line, lines[i]);
        nasc_run_config_free(&c);
    }
    unlink(path);
    nasc_run_config_init(&c, &ctx);
    assert_int_equal(nasc_run_config_check(&c, path), NASC_EINPUT); /* no file */
    nasc_run_config_free(&c);
}

static void test_alloc_failures(void **state) {
    (void)state;
    unlink(path);
    {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_run_config c;
        nasc_run_config_init(&c, &ctx);
        assert_int_equal(fill(&c, -1), NASC_OK);
        assert_int_equal(nasc_run_config_write(&c, path), NASC_OK);
        nasc_run_config_free(&c);
    }
    for (long k = 1; k < 1000; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_run_config c;
        nasc_run_config_init(&c, &ctx);
        nasc_status st = fill(&c, -1);
        if (!st) st = nasc_run_config_check(&c, path);
        if (!st) st = nasc_run_config_write(&c, tmp_path);
        nasc_run_config_free(&c);
        assert_true(st == NASC_OK || st == NASC_ENOMEM);
        assert_int_equal(st == NASC_ENOMEM, ta.failed);
        assert_int_equal(ta.live, 0);
        if (!ta.failed) break;
    }
    unlink(tmp_path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_killed_while_writing),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
