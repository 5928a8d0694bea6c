/* load.c - model files by extension, and whole-file reads. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nasc_frontend.h"
#include "yaml_internal.h"

nasc_status nasc_file_read(nasc_ctx *ctx, const char *path, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot open: %s", strerror(errno));
    struct stat stbuf;
    if (fstat(fd, &stbuf) != 0) {
        int e = errno;
        close(fd);
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot read: %s", strerror(e));
    }
    if (S_ISDIR(stbuf.st_mode)) {
        close(fd);
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot read: %s",
                          strerror(EISDIR));
    }
    /* Regular files: size as the first guess; pipes and the like grow. */
    size_t cap = S_ISREG(stbuf.st_mode) && stbuf.st_size > 0 ? (size_t)stbuf.st_size + 1 : 4096;
    size_t n = 0;
    char *buf = nasc_alloc(ctx, cap);
    if (!buf) {
        close(fd);
        return NASC_ENOMEM;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > ((size_t)-1) / 2) {
                nasc_free(ctx, buf);
                close(fd);
                return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot read: too large");
            }
            char *nb = nasc_realloc(ctx, buf, cap * 2);
            if (!nb) {
                nasc_free(ctx, buf);
                close(fd);
                return NASC_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            nasc_free(ctx, buf);
            close(fd);
            return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot read: %s", strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return NASC_OK;
}

nasc_status nasc_yaml_load_file(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                                size_t n_ov, nasc_module **out) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &text, &len);
    if (st) return st;
    st = nasc_yaml_load_string(ctx, text, len, path, ov, n_ov, out);
    nasc_free(ctx, text);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static nasc_status load_nir(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                            size_t n_ov, nasc_module **out) {
    char *text = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &text, &len);
    if (st) return st;
    nasc_module *m = NULL;
    st = nasc_text_parse(ctx, text, len, path, &m);
    nasc_free(ctx, text);
    if (st) {
        nasc_module_destroy(m);
        return st;
    }
    if (n_ov > 0) {
        if (m->dialect != NASC_DIALECT_ARCH || !m->has_skeleton) {
            nasc_module_destroy(m);
            return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                              "--set applies to arch models only; this file holds a prim module");
        }
        st = nasc_yaml_apply_overrides(ctx, path, &m->skel, ov, n_ov);
        if (!st) st = nasc_arch_verify(m);
        if (st) {
            nasc_module_destroy(m);
            return st;
        }
    }
    *out = m;
    return NASC_OK;
}

nasc_status nasc_model_load(nasc_ctx *ctx, const char *path, const nasc_override *ov,
                            size_t n_ov, nasc_module **out) {
    *out = NULL;
    if (ends_with(path, ".yaml") || ends_with(path, ".yml"))
        return nasc_yaml_load_file(ctx, path, ov, n_ov, out);
    if (ends_with(path, ".nir")) return load_nir(ctx, path, ov, n_ov, out);
    if (ends_with(path, ".onnx")) {
        /* the prim module only; nasc_onnx_load also returns the weights */
        if (n_ov > 0)
            return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                              "--set applies to YAML and arch models; an ONNX model's shapes are fixed");
        return nasc_onnx_load(ctx, path, out, NULL);
    }
    return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                      "unknown model file type: expected .yaml, .yml (YAML model), .nir "
                      "(text IR) or .onnx (ONNX model)");
}
