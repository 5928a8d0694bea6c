/* checkpoint.c - write a parameter store (or any file) to disk, atomically.
 *
 * The bytes come from nasc_params_serialize (docs/checkpoint.md). They go
 * to "<path>.tmp", which is flushed to the disk before it is renamed over
 * path, and the directory is synced after the rename: a crash at any point
 * leaves either the old checkpoint or the new one, never a torn file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nasc_export.h"

static nasc_status io_error(nasc_ctx *ctx, const char *path, const char *what, int err) {
    return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot %s: %s", what, strerror(err));
}

static bool write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* fsync the directory that holds path, so the rename itself is durable. */
static nasc_status sync_dir(nasc_ctx *ctx, const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = nasc_alloc(ctx, n + 1);
    if (!dir) return NASC_ENOMEM;
    memcpy(dir, slash ? path : ".", n);
    dir[n] = 0;
    nasc_status st = NASC_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        st = io_error(ctx, dir, "open the directory", errno);
    } else {
        /* Some file systems cannot sync a directory; the file itself is safe. */
        if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
            st = io_error(ctx, dir, "fsync the directory", errno);
        close(fd);
    }
    nasc_free(ctx, dir);
    return st;
}

nasc_status nasc_file_write_atomic(nasc_ctx *ctx, const char *path, const void *data, size_t len) {
    size_t n = strlen(path);
    char *tmp = nasc_alloc(ctx, n + 5);
    if (!tmp) return NASC_ENOMEM;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    nasc_status st = NASC_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = io_error(ctx, tmp, "create", errno);
    } else {
        if (!write_all(fd, data, len))
            st = io_error(ctx, tmp, "write", errno);
        else if (fsync(fd) != 0)
            st = io_error(ctx, tmp, "fsync", errno);
        if (close(fd) != 0 && st == NASC_OK) st = io_error(ctx, tmp, "close", errno);
        if (st == NASC_OK && rename(tmp, path) != 0) st = io_error(ctx, path, "rename the temporary file to", errno);
        if (st != NASC_OK)
            unlink(tmp);
        else
            st = sync_dir(ctx, path);
    }
    nasc_free(ctx, tmp);
    return st;
}

nasc_status nasc_params_save(const nasc_param_store *s, const char *path) {
    nasc_buf b;
    nasc_buf_init(&b, s->ctx);
    nasc_status st = nasc_params_serialize(s, &b);
    if (st == NASC_OK) st = nasc_file_write_atomic(s->ctx, path, b.data, b.len);
    nasc_buf_free(&b);
    return st;
}
