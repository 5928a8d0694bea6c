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

#endif
