/* text.c - text corpora for character language models: a file read as
 * bytes, or the English fortunes of Debian's `fortunes` package. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nasc_frontend.h"

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names of the regular files of dir without a '.' in them, sorted;
 * *n of them in *out (each and the array owned by the caller). */
static nasc_status fortune_files(nasc_ctx *ctx, const char *dir, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC,
                          "cannot open the fortunes corpus: %s (it comes with Debian's `fortunes` package: "
                          "`make deps` installs it)",
                          strerror(errno));
    char **names = NULL;
    size_t cap = 0;
    nasc_status st = NASC_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (strchr(e->d_name, '.')) continue; /* ., .., *.dat indexes, *.u8 links */
        char path[4096];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **q = nasc_realloc(ctx, names, nc * sizeof *q);
            if (!q) {
                st = NASC_ENOMEM;
                break;
            }
            names = q;
            cap = nc;
        }
        size_t len = strlen(e->d_name);
        names[*n] = nasc_alloc(ctx, len + 1);
        if (!names[*n]) {
            st = NASC_ENOMEM;
            break;
        }
        memcpy(names[*n], e->d_name, len + 1);
        (*n)++;
    }
    closedir(d);
    if (!st && *n == 0)
        st = nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC, "no fortune files in the fortunes corpus directory");
    if (st) {
        for (size_t i = 0; i < *n; i++) nasc_free(ctx, names[i]);
        nasc_free(ctx, names);
        *n = 0;
        return st;
    }
    qsort(names, *n, sizeof *names, cmp_names);
    *out = names;
    return NASC_OK;
}

/* Append the bytes of the file at path to out. */
static nasc_status append_file(nasc_ctx *ctx, const char *path, nasc_corpus *out) {
    char *data;
    size_t len;
    nasc_status st = nasc_file_read(ctx, path, &data, &len);
    if (st) return st;
    uint8_t *q = nasc_realloc(ctx, out->bytes, (size_t)out->n + len + 1);
    if (!q) {
        nasc_free(ctx, data);
        return NASC_ENOMEM;
    }
    memcpy(q + out->n, data, len);
    out->bytes = q;
    out->n += (int64_t)len;
    nasc_free(ctx, data);
    return NASC_OK;
}

nasc_status nasc_corpus_load(nasc_ctx *ctx, const char *spec, nasc_corpus *out) {
    memset(out, 0, sizeof *out);
    nasc_status st = NASC_OK;
    const char *what = spec;
    if (strcmp(spec, "fortunes") == 0) {
        char **names;
        size_t n;
        st = fortune_files(ctx, NASC_FORTUNES_DIR, &names, &n);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", NASC_FORTUNES_DIR, names[i]);
            if (!st) st = append_file(ctx, path, out);
            nasc_free(ctx, names[i]);
        }
        nasc_free(ctx, names);
        what = NASC_FORTUNES_DIR;
    } else {
        st = append_file(ctx, spec, out);
    }
    if (!st && out->n < 2)
        st = nasc_error(ctx, NASC_EINPUT, what, NASC_NOLOC,
                        "the text has %lld byte%s: a language model needs at least a character and the one after it",
                        (long long)out->n, out->n == 1 ? "" : "s");
    if (st) nasc_corpus_free(ctx, out);
    return st;
}
