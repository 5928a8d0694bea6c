/* onnx_io.c - ONNX TensorProto files.
 *
 * A TensorProto file holds one tensor: data_type FLOAT, the dims, the name
 * and the values as little-endian raw_data (what onnx.numpy_helper writes).
 * The writer packs with protobuf-c straight into the caller's buffer.
 */
#include <stdio.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_onnx.h"

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

    uint8_t *swapped = NULL;
    if (!nasc_onnx_host_le() && numel > 0) {
        swapped = nasc_alloc(ctx, bytes);
        if (!swapped) return NASC_ENOMEM;
        nasc_onnx_f32_to_le(swapped, data, (size_t)numel);
    }
    int64_t dcopy[NASC_TENSOR_PB_MAX_RANK];
    for (int d = 0; d < rank; d++) dcopy[d] = dims[d];

    Onnx__TensorProto t;
    onnx__tensor_proto__init(&t);
    t.n_dims = (size_t)rank;
    t.dims = dcopy;
    t.has_data_type = 1;
    t.data_type = nasc_onnx_dtype_elem(NASC_F32);
    t.name = (char *)(name ? name : "");
    t.has_raw_data = 1;
    t.raw_data.len = bytes;
    t.raw_data.data = swapped ? swapped : (uint8_t *)data;

    nasc_status st = nasc_onnx_pack(&t.base, out);
    nasc_free(ctx, swapped);
    return st;
}
