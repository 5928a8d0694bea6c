/* rundir.c - the run directory's configuration: the options that define a
 * search, as "key = value" lines in config.txt. The file is written once,
 * through the atomic writer like every other file of a run, so a crash
 * leaves either no config.txt or a whole one; continuing a search compares
 * the file with the options given, key by key. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_frontend.h"
#include "nasc_search.h"

void nasc_run_config_init(nasc_run_config *c, nasc_ctx *ctx) {
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
}

void nasc_run_config_free(nasc_run_config *c) {
    if (!c->ctx) return; /* zero-initialised, never used */
    for (int i = 0; i < c->n; i++) {
        nasc_free(c->ctx, c->keys[i]);
        nasc_free(c->ctx, c->vals[i]);
    }
    nasc_free(c->ctx, c->keys);
    nasc_free(c->ctx, c->vals);
    c->keys = c->vals = NULL;
    c->n = c->cap = 0;
}

static nasc_status sticky(nasc_run_config *c, nasc_status st) {
    if (st && !c->error) c->error = st;
    return st;
}

nasc_status nasc_run_config_add(nasc_run_config *c, const char *key, const char *fmt, ...) {
    if (c->error) return c->error;
    if (!key[0] || strstr(key, " = ") || strchr(key, '\n') || strchr(key, '#') == key)
        return sticky(c, nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                    "configuration key '%.64s': not a key (empty, a comment, or holding ' = ' or "
                                    "a newline)",
                                    key));
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0)
            return sticky(c, nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "configuration key '%.64s' twice",
                                        key));
    /* the value, formatted on the stack, or again at its size when longer */
    char small[256], *val = small;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) return sticky(c, nasc_error(c->ctx, NASC_EINTERNAL, NULL, NASC_NOLOC, "cannot format '%s'", key));
    if ((size_t)len >= sizeof small) {
        val = nasc_alloc(c->ctx, (size_t)len + 1);
        if (!val) return sticky(c, NASC_ENOMEM);
        va_start(ap, fmt);
        vsnprintf(val, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    nasc_status st = NASC_OK;
    if (strchr(val, '\n'))
        st = nasc_error(c->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                        "configuration key '%.64s': a value cannot hold a newline", key);
    if (!st && c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        char **k = nasc_realloc(c->ctx, c->keys, (size_t)cap * sizeof *k);
        if (k) c->keys = k;
        char **v = k ? nasc_realloc(c->ctx, c->vals, (size_t)cap * sizeof *v) : NULL;
        if (v) c->vals = v;
        if (!k || !v)
            st = NASC_ENOMEM;
        else
            c->cap = cap;
    }
    char *kc = st ? NULL : nasc_strdup(c->ctx, key);
    char *vc = kc ? (val == small ? nasc_strdup(c->ctx, small) : val) : NULL;
    if (!st && (!kc || !vc)) st = NASC_ENOMEM;
    if (st) {
        nasc_free(c->ctx, kc);
        if (val != small) nasc_free(c->ctx, val);
        return sticky(c, st);
    }
    c->keys[c->n] = kc;
    c->vals[c->n] = vc;
    c->n++;
    return NASC_OK;
}

nasc_status nasc_run_config_write(const nasc_run_config *c, const char *path) {
    if (c->error) return c->error;
    nasc_buf b;
    nasc_buf_init(&b, c->ctx);
    nasc_buf_printf(&b, "# nasc search configuration: written when the run starts; --resume checks\n"
                        "# that the options are the same (budget, final-epochs and threads may change)\n");
    for (int i = 0; i < c->n; i++) nasc_buf_printf(&b, "%s = %s\n", c->keys[i], c->vals[i]);
    nasc_status st = b.oom ? NASC_ENOMEM : nasc_file_write_atomic(c->ctx, path, b.data, b.len);
    nasc_buf_free(&b);
    return st;
}

/* The file's "key = value" lines, pointing into text (which is cut up). */
typedef struct file_entry {
    const char *key, *val;
    int line;
} file_entry;

nasc_status nasc_run_config_check(const nasc_run_config *c, const char *path) {
    if (c->error) return c->error;
    nasc_ctx *ctx = c->ctx;
    char *text = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &text, &len);
    if (st) return st;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    file_entry *f = nasc_alloc(ctx, lines * sizeof *f);
    if (!f) {
        nasc_free(ctx, text);
        return NASC_ENOMEM;
    }
    int n = 0, line = 0;
    for (char *p = text; p && *p && !st;) {
        line++;
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (*p && *p != '#') {
            char *eq = strstr(p, " = ");
            if (!eq || eq == p) {
                st = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){line, 1}, "expected 'key = value'");
            } else {
                *eq = 0;
                for (int k = 0; k < n && !st; k++)
                    if (strcmp(f[k].key, p) == 0)
                        st = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){line, 1},
                                        "configuration key '%s' again (first on line %d)", p, f[k].line);
                f[n++] = (file_entry){p, eq + 3, line};
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    for (int i = 0; !st && i < c->n; i++) {
        int k = 0;
        while (k < n && strcmp(f[k].key, c->keys[i]) != 0) k++;
        if (k == n)
            st = nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "the run directory's configuration has no '%s'",
                            c->keys[i]);
        else if (strcmp(f[k].val, c->vals[i]) != 0)
            st = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){f[k].line, 1},
                            "this run directory belongs to another search: %s was '%s', now '%s' (use the same "
                            "options, or another run directory)",
                            c->keys[i], f[k].val, c->vals[i]);
    }
    for (int k = 0; !st && k < n; k++) {
        int i = 0;
        while (i < c->n && strcmp(f[k].key, c->keys[i]) != 0) i++;
        if (i == c->n)
            st = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){f[k].line, 1}, "unknown configuration key '%s'",
                            f[k].key);
    }
    nasc_free(ctx, f);
    nasc_free(ctx, text);
    return st;
}
