/* Shared helpers for the cmocka tests. */
#ifndef NASC_TESTUTIL_H
#define NASC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nasc_frontend.h"
#include "nasc_ir.h"

/* An allocator that fails the fail_at-th allocation (1-based; 0 never) and
 * counts the blocks still live, so tests can check that failure paths free
 * everything. */
typedef struct nasc_test_alloc {
    long fail_at; /* which allocation fails; 0 = none */
    long count;   /* allocations (and growing reallocs) so far */
    long live;    /* blocks allocated and not freed */
    bool failed;  /* the planned failure happened */
} nasc_test_alloc;

void *nasc_test_realloc(void *ud, void *ptr, size_t size);
/* Initialise ctx with a counting allocator that fails allocation fail_at. */
void nasc_test_ctx(nasc_ctx *ctx, nasc_test_alloc *ta, long fail_at);

/* Path of a file in the source tree (NASC_SOURCE_DIR); returns a malloc'd string. */
char *nasc_test_path(const char *rel);
/* Whole file from the source tree, NUL-terminated, malloc'd; NULL if missing. */
char *nasc_test_read(const char *rel, size_t *len);

/* A test that cannot run here (a tool, a package or a data set missing):
 * prints "SKIP: <reason>" and skips the cmocka test (it does not return).
 * main() then returns nasc_test_exit(cmocka_run_group_tests...(...)): the
 * number of failures, else 77 when a test was skipped, which CTest reports
 * as skipped (SKIP_RETURN_CODE) instead of passed. */
void nasc_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int nasc_test_exit(int failures);

/* Fail the test with ctx's diagnostic, after "what: ". */
void nasc_test_fail_diag(const nasc_ctx *ctx, const char *what);
/* Fail unless got == want, ctx's diagnostic has that status and its
 * message contains substr. */
void nasc_test_expect_diag(const nasc_ctx *ctx, nasc_status got, nasc_status want, const char *substr);

#endif
