/* tensor_pb.c - read an ONNX TensorProto file into floats.
 *
 * protobuf-c unpacks the message with an allocator that draws from the
 * context (so out-of-memory is told apart from a malformed file); then
 * every field that matters is checked before anything is copied out.
 */
#include <stdio.h>
#include <string.h>

#include "nasc_frontend.h"
#include "nasc_onnx.h"

void nasc_tensor_pb_free(nasc_ctx *ctx, nasc_tensor_pb *t) {
    if (!t) return;
    nasc_free(ctx, t->name);
    nasc_free(ctx, t->data);
    memset(t, 0, sizeof *t);
}

static void shape_str(const int64_t *dims, size_t n, char *buf, size_t size) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (size_t i = 0; i < n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

#define MAX_NUMEL ((int64_t)1 << 40)

static nasc_status check_and_copy(nasc_ctx *ctx, const Onnx__TensorProto *t, const char *file, nasc_tensor_pb *out) {
#define BAD(...) nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC, __VA_ARGS__)
    if (!t->has_data_type)
        return BAD("the tensor has no data type (is this an ONNX TensorProto file?)");
    nasc_dtype dt;
    if (!nasc_onnx_elem_dtype(t->data_type, &dt))
        return BAD("the tensor is of data type %s (%d); only FLOAT (1) is supported",
                   nasc_onnx_elem_name(t->data_type), (int)t->data_type);
    if (t->segment) return BAD("segmented tensors are not supported");
    if ((t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        t->n_external_data)
        return BAD("the tensor's data is in an external file, which is not supported");
    if (t->n_dims > NASC_TENSOR_PB_MAX_RANK)
        return BAD("the tensor has %zu dims; at most %d are supported", t->n_dims, NASC_TENSOR_PB_MAX_RANK);
    char shape[256];
    shape_str(t->dims, t->n_dims, shape, sizeof shape);
    int64_t numel = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0) return BAD("the tensor has a negative dimension: %s", shape);
        if (t->dims[d] > 0 && numel > MAX_NUMEL / t->dims[d]) return BAD("the tensor is too large: %s", shape);
        numel *= t->dims[d];
    }
    if (t->n_int32_data || t->n_int64_data || t->n_double_data || t->n_uint64_data || t->n_string_data)
        return BAD("a FLOAT tensor holds values in a field of another type");
    if (t->n_float_data && t->has_raw_data)
        return BAD("the tensor has both float_data and raw_data");
    int64_t have;
    if (t->has_raw_data) {
        if (t->raw_data.len % 4)
            return BAD("raw_data has %zu bytes, not a whole number of floats", t->raw_data.len);
        have = (int64_t)(t->raw_data.len / 4);
    } else {
        have = (int64_t)t->n_float_data;
    }
    if (have != numel)
        return BAD("the tensor's shape %s needs %lld values, the file holds %lld", shape, (long long)numel,
                   (long long)have);

    out->name = nasc_strdup(ctx, t->name ? t->name : "");
    if (!out->name) return NASC_ENOMEM;
    if (numel > 0) {
        out->data = nasc_alloc(ctx, (size_t)numel * sizeof(float));
        if (!out->data) return NASC_ENOMEM;
        if (t->has_raw_data) {
            for (int64_t i = 0; i < numel; i++) out->data[i] = nasc_onnx_raw_f32(t->raw_data.data, (size_t)i);
        } else {
            memcpy(out->data, t->float_data, (size_t)numel * sizeof(float));
        }
    }
    out->rank = (int)t->n_dims;
    for (size_t d = 0; d < t->n_dims; d++) out->dims[d] = t->dims[d];
    out->numel = numel;
    return NASC_OK;
#undef BAD
}

nasc_status nasc_tensor_pb_read(nasc_ctx *ctx, const void *data, size_t len, const char *file, nasc_tensor_pb *out) {
    memset(out, 0, sizeof *out);
    if (!file) file = "<tensor>";
    if (len == 0) return nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC, "empty file, expected an ONNX TensorProto");
    nasc_onnx_pb pb;
    nasc_onnx_pb_init(&pb, ctx);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(&pb.base, len, data);
    if (!t) {
        if (pb.oom) return nasc_error(ctx, NASC_ENOMEM, file, NASC_NOLOC, "out of memory reading the tensor");
        return nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC,
                          "not an ONNX TensorProto: truncated or malformed protobuf (%zu bytes)", len);
    }
    nasc_status st = check_and_copy(ctx, t, file, out);
    onnx__tensor_proto__free_unpacked(t, &pb.base);
    if (st) nasc_tensor_pb_free(ctx, out);
    return st;
}

nasc_status nasc_tensor_pb_load(nasc_ctx *ctx, const char *path, nasc_tensor_pb *out) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &data, &len);
    if (st) return st;
    st = nasc_tensor_pb_read(ctx, data, len, path, out);
    nasc_free(ctx, data);
    return st;
}
