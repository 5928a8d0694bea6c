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
