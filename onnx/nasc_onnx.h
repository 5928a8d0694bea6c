/* nasc_onnx.h - what nasc's ONNX reader (frontend/) and writer (export/)
 * share: an arena for protobuf-c message trees, the protobuf-c allocator
 * and packer over the context, ONNX element types and their raw bytes.
 *
 * It depends on ir/ (the context, its allocator, nasc_buf) and on the C
 * bindings protoc-c generates from onnx.proto, nothing else. Both layers
 * link it privately: no public header of frontend/ or export/ includes it.
 *
 *     nasc_onnx_arena a;
 *     nasc_onnx_arena_init(&a, ctx);
 *     Onnx__TensorProto *t = nasc_onnx_arena_alloc(&a, sizeof *t);  // zeroed
 *     if (t) onnx__tensor_proto__init(t);
 *     ...
 *     nasc_onnx_pack(&model.base, &buf);     // appends the bytes to buf
 *     nasc_onnx_arena_free(&a);              // every block at once
 *
 *     nasc_onnx_pb pb;                       // protobuf-c allocating from ctx
 *     nasc_onnx_pb_init(&pb, ctx);
 *     Onnx__ModelProto *mp = onnx__model_proto__unpack(&pb.base, len, data);
 *     if (!mp && pb.oom) ...                 // out of memory, not a bad file
 */
#ifndef NASC_ONNX_H
#define NASC_ONNX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nasc_ir.h"
#include "onnx/onnx.pb-c.h"

/* ---- Arena ----
 *
 * Zeroed blocks aligned for any type, carved from chunks of at least
 * NASC_ONNX_CHUNK bytes taken from the context's allocator; everything is
 * freed at once. A failed allocation returns NULL with a diagnostic in the
 * context (NASC_ENOMEM). */
#define NASC_ONNX_CHUNK ((size_t)64 * 1024)

typedef struct nasc_onnx_chunk nasc_onnx_chunk;

typedef struct nasc_onnx_arena {
    nasc_ctx *ctx;           /* where chunks come from */
    nasc_onnx_chunk *chunks; /* newest first */
} nasc_onnx_arena;

void nasc_onnx_arena_init(nasc_onnx_arena *a, nasc_ctx *ctx);
void *nasc_onnx_arena_alloc(nasc_onnx_arena *a, size_t size);
char *nasc_onnx_arena_strdup(nasc_onnx_arena *a, const char *s);
void nasc_onnx_arena_free(nasc_onnx_arena *a);

/* ---- protobuf-c over the context ----
 *
 * base is the allocator to hand to protobuf-c's unpack and free_unpacked;
 * oom records that one of its allocations failed (so a NULL from unpack
 * can be told apart from a malformed message). The struct must not move
 * while protobuf-c uses it. */
typedef struct nasc_onnx_pb {
    ProtobufCAllocator base;
    nasc_ctx *ctx;
    bool oom;
} nasc_onnx_pb;

void nasc_onnx_pb_init(nasc_onnx_pb *pb, nasc_ctx *ctx);

/* Append the packed message to out. NASC_ENOMEM (out->len unchanged) when
 * out could not grow. */
nasc_status nasc_onnx_pack(const ProtobufCMessage *msg, nasc_buf *out);

/* ---- Element types ---- */

/* ONNX's name of a TensorProto data type ("FLOAT", "INT64"), "unknown"
 * for a number onnx.proto does not name. */
const char *nasc_onnx_elem_name(int32_t elem);
/* The nasc dtype of an ONNX element type; false when nasc does not compute
 * in it. */
bool nasc_onnx_elem_dtype(int32_t elem, nasc_dtype *out);
/* The ONNX element type of a nasc dtype. */
int32_t nasc_onnx_dtype_elem(nasc_dtype dtype);
/* Bytes per element in raw_data for the fixed-size numeric types; 0 for
 * strings, undefined and unknown types. */
size_t nasc_onnx_elem_size(int32_t elem);

/* ---- raw_data: little-endian, whatever the host ---- */
float nasc_onnx_raw_f32(const uint8_t *raw, size_t i);
int64_t nasc_onnx_raw_i64(const uint8_t *raw, size_t i);
int32_t nasc_onnx_raw_i32(const uint8_t *raw, size_t i);
bool nasc_onnx_host_le(void);
/* n floats as little-endian bytes into dst (4 n bytes). */
void nasc_onnx_f32_to_le(uint8_t *dst, const float *src, size_t n);

#endif /* NASC_ONNX_H */
