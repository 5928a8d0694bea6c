/* Context: allocator, diagnostics, growable buffers. */
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

static void *libc_realloc(void *ud, void *ptr, size_t size) {
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

void nasc_ctx_init(nasc_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->realloc_fn = libc_realloc;
}

void nasc_ctx_set_allocator(nasc_ctx *ctx, nasc_realloc_fn fn, void *ud) {
    ctx->realloc_fn = fn ? fn : libc_realloc;
    ctx->ud = fn ? ud : NULL;
}

void *nasc_realloc(nasc_ctx *ctx, void *ptr, size_t size) {
    if (size == 0) size = 1; /* size 0 would mean free */
    void *p = ctx->realloc_fn(ctx->ud, ptr, size);
    if (!p) nasc_error(ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory (%zu bytes)", size);
    return p;
}

void *nasc_alloc(nasc_ctx *ctx, size_t size) { return nasc_realloc(ctx, NULL, size); }

void nasc_free(nasc_ctx *ctx, void *ptr) {
    if (ptr) ctx->realloc_fn(ctx->ud, ptr, 0);
}

char *nasc_strdup(nasc_ctx *ctx, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = nasc_alloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

nasc_status nasc_verror(nasc_ctx *ctx, nasc_status status, const char *file, nasc_loc loc,
                        const char *fmt, va_list ap) {
    nasc_diag *d = &ctx->diag;
    d->status = status;
    snprintf(d->file, sizeof d->file, "%s", file ? file : "");
    d->line = loc.line;
    d->col = loc.col;
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    return status;
}

nasc_status nasc_error(nasc_ctx *ctx, nasc_status status, const char *file, nasc_loc loc,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nasc_verror(ctx, status, file, loc, fmt, ap);
    va_end(ap);
    return status;
}

int nasc_diag_format(const nasc_diag *d, char *buf, size_t size) {
    char where[300] = "";
    if (d->file[0] && d->line > 0)
        snprintf(where, sizeof where, "%s:%d:%d: ", d->file, d->line, d->col > 0 ? d->col : 1);
    else if (d->file[0])
        snprintf(where, sizeof where, "%s: ", d->file);
    return snprintf(buf, size, "%serror: %s", where, d->msg);
}

void nasc_diag_print(const nasc_diag *d, FILE *out) {
    char buf[900];
    nasc_diag_format(d, buf, sizeof buf);
    fprintf(out, "%s\n", buf);
}

void nasc_buf_init(nasc_buf *b, nasc_ctx *ctx) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
}

void nasc_buf_free(nasc_buf *b) {
    nasc_free(b->ctx, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static bool buf_reserve(nasc_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = nasc_realloc(b->ctx, b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void nasc_buf_append(nasc_buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void nasc_buf_printf(nasc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        nasc_buf_append(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
