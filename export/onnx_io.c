/* onnx_io.c - ONNX TensorProto files and atomic file writes.
 *
 * A TensorProto file holds one tensor: data_type FLOAT, the dims, the name
 * and the values as little-endian raw_data (what onnx.numpy_helper writes).
 * The writer packs with protobuf-c straight into the caller's buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nasc_export.h"
#include "onnx/onnx.pb-c.h"

typedef struct sink {
    ProtobufCBuffer base;
    nasc_buf *b;
} sink;

static void sink_append(ProtobufCBuffer *s, size_t len, const uint8_t *data) {
    if (len) nasc_buf_append(((sink *)s)->b, (const char *)data, len); /* data may be NULL then */
}

nasc_status nasc_tensor_pb_write(const char *name, int rank, const int64_t *dims, const float *data, nasc_buf *out) {
    nasc_ctx *ctx = out->ctx;
    if (rank < 0 || rank > NASC_TENSOR_PB_MAX_RANK || (rank > 0 && !dims))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor '%s': rank %d is not in 0..%d",
                          name ? name : "", rank, NASC_TENSOR_PB_MAX_RANK);
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0 || (dims[d] > 0 && numel > (INT64_MAX / 8) / dims[d]))
            return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor '%s': bad dimension %lld",
                              name ? name : "", (long long)dims[d]);
        numel *= dims[d];
    }
    size_t bytes = (size_t)numel * sizeof(float);
    if (bytes > (size_t)INT32_MAX - 1024)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor '%s' is too large for a protobuf file",
                          name ? name : "");
    if (numel > 0 && !data)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor '%s' has no data", name ? name : "");

    const uint16_t one = 1;
    unsigned char le;
    memcpy(&le, &one, 1);
    uint8_t *swapped = NULL;
    if (!le && numel > 0) {
        swapped = nasc_alloc(ctx, bytes);
        if (!swapped) return NASC_ENOMEM;
        for (int64_t i = 0; i < numel; i++) {
            uint32_t u;
            memcpy(&u, &data[i], 4);
            for (int k = 0; k < 4; k++) swapped[i * 4 + k] = (uint8_t)(u >> (8 * k));
        }
    }
    int64_t dcopy[NASC_TENSOR_PB_MAX_RANK];
    for (int d = 0; d < rank; d++) dcopy[d] = dims[d];

    Onnx__TensorProto t;
    onnx__tensor_proto__init(&t);
    t.n_dims = (size_t)rank;
    t.dims = dcopy;
    t.has_data_type = 1;
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t.name = (char *)(name ? name : "");
    t.has_raw_data = 1;
    t.raw_data.len = bytes;
    t.raw_data.data = swapped ? swapped : (uint8_t *)data;

    size_t start = out->len;
    sink s = {{sink_append}, out};
    protobuf_c_message_pack_to_buffer(&t.base, &s.base);
    nasc_free(ctx, swapped);
    if (out->oom) {
        if (out->data) out->len = start, out->data[start] = 0;
        return NASC_ENOMEM;
    }
    return NASC_OK;
}

static nasc_status io_error(nasc_ctx *ctx, const char *path, const char *what, int err) {
    return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot %s: %s", what, strerror(err));
}

static bool write_all(int fd, const unsigned char *p, size_t n) {
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
        nasc_free(ctx, tmp);
        return st;
    }
    if (!write_all(fd, data, len))
        st = io_error(ctx, tmp, "write", errno);
    else if (fsync(fd) != 0)
        st = io_error(ctx, tmp, "fsync", errno);
    if (close(fd) != 0 && st == NASC_OK) st = io_error(ctx, tmp, "close", errno);
    if (st == NASC_OK && rename(tmp, path) != 0) st = io_error(ctx, path, "rename the temporary file to", errno);
    if (st != NASC_OK) {
        unlink(tmp);
        nasc_free(ctx, tmp);
        return st;
    }
    nasc_free(ctx, tmp);

    /* The rename is durable once the directory is synced. */
    const char *slash = strrchr(path, '/');
    size_t dn = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = nasc_alloc(ctx, dn + 1);
    if (!dir) return NASC_ENOMEM;
    memcpy(dir, slash ? path : ".", dn);
    dir[dn] = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        st = io_error(ctx, dir, "open the directory", errno);
    } else {
        /* Some file systems cannot sync a directory; the file itself is safe. */
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
            st = io_error(ctx, dir, "fsync the directory", errno);
        close(dfd);
    }
    nasc_free(ctx, dir);
    return st;
}
