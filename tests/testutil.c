#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *nasc_test_realloc(void *ud, void *ptr, size_t size) {
    nasc_test_alloc *ta = ud;
    if (size == 0) {
        if (ptr) ta->live--;
        free(ptr);
        return NULL;
    }
    ta->count++;
    if (ta->fail_at > 0 && ta->count == ta->fail_at) {
        ta->failed = true;
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p && !ptr) ta->live++;
    return p;
}

void nasc_test_ctx(nasc_ctx *ctx, nasc_test_alloc *ta, long fail_at) {
    memset(ta, 0, sizeof *ta);
    ta->fail_at = fail_at;
    nasc_ctx_init(ctx);
    nasc_ctx_set_allocator(ctx, nasc_test_realloc, ta);
}

char *nasc_test_path(const char *rel) {
    const char *root = getenv("NASC_SOURCE_DIR");
    if (!root) root = NASC_SOURCE_DIR;
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", root, rel);
    return p;
}

char *nasc_test_read(const char *rel, size_t *len) {
    char *path = nasc_test_path(rel);
    if (!path) return NULL;
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static int skipped; /* tests of this executable that called nasc_test_skip */

void nasc_test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    skipped++;
    skip();
}

int nasc_test_exit(int failures) {
    if (failures) return failures;
    return skipped ? 77 : 0;
}

void nasc_test_fail_diag(const nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fail_msg("%s: %s", what, buf);
}

void nasc_test_expect_diag(const nasc_ctx *ctx, nasc_status got, nasc_status want, const char *substr) {
    if (got != want || ctx->diag.status != want || !strstr(ctx->diag.msg, substr)) {
        char buf[1024];
        nasc_diag_format(&ctx->diag, buf, sizeof buf);
        fail_msg("expected status %d with '%s'; got %d: %s", (int)want, substr, (int)got, buf);
    }
}
