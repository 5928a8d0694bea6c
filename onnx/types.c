/* types.c - ONNX element types: names, nasc dtypes, sizes, and the
 * little-endian bytes of raw_data. */
#include <string.h>

#include "nasc_onnx.h"

const char *nasc_onnx_elem_name(int32_t elem) {
    const ProtobufCEnumValue *e =
        protobuf_c_enum_descriptor_get_value(&onnx__tensor_proto__data_type__descriptor, elem);
    return e ? e->name : "unknown";
}

bool nasc_onnx_elem_dtype(int32_t elem, nasc_dtype *out) {
    if (elem != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) return false;
    *out = NASC_F32;
    return true;
}

int32_t nasc_onnx_dtype_elem(nasc_dtype dtype) {
    switch (dtype) {
    case NASC_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    }
    return ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED;
}

size_t nasc_onnx_elem_size(int32_t elem) {
    switch (elem) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128: return 16;
    default: return 0;
    }
}

static uint64_t le_bytes(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

float nasc_onnx_raw_f32(const uint8_t *raw, size_t i) {
    uint32_t u = (uint32_t)le_bytes(raw + 4 * i, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int64_t nasc_onnx_raw_i64(const uint8_t *raw, size_t i) { return (int64_t)le_bytes(raw + 8 * i, 8); }

int32_t nasc_onnx_raw_i32(const uint8_t *raw, size_t i) { return (int32_t)(uint32_t)le_bytes(raw + 4 * i, 4); }

bool nasc_onnx_host_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

void nasc_onnx_f32_to_le(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        for (int k = 0; k < 4; k++) dst[i * 4 + k] = (uint8_t)(u >> (8 * k));
    }
}
