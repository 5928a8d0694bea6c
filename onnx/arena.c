/* arena.c - the chunk arena of ONNX message trees, and protobuf-c's
 * allocator and packer over the context. */
#include <stdalign.h>
#include <string.h>

#include "nasc_onnx.h"

struct nasc_onnx_chunk {
    nasc_onnx_chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

void nasc_onnx_arena_init(nasc_onnx_arena *a, nasc_ctx *ctx) {
    a->ctx = ctx;
    a->chunks = NULL;
}

void *nasc_onnx_arena_alloc(nasc_onnx_arena *a, size_t size) {
    const size_t align = alignof(max_align_t);
    if (size > SIZE_MAX - sizeof(nasc_onnx_chunk) - align) {
        nasc_error(a->ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory (%zu bytes)", size);
        return NULL;
    }
    size = size ? (size + align - 1) / align * align : align;
    nasc_onnx_chunk *c = a->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > NASC_ONNX_CHUNK ? size : NASC_ONNX_CHUNK;
        c = nasc_alloc(a->ctx, sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->chunks;
        c->used = 0;
        c->cap = cap;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *nasc_onnx_arena_strdup(nasc_onnx_arena *a, const char *s) {
    size_t n = strlen(s);
    char *d = nasc_onnx_arena_alloc(a, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

void nasc_onnx_arena_free(nasc_onnx_arena *a) {
    for (nasc_onnx_chunk *c = a->chunks, *n; c; c = n) {
        n = c->next;
        nasc_free(a->ctx, c);
    }
    a->chunks = NULL;
}

/* protobuf-c asks for 0 bytes at times; the context's allocator frees on 0. */
static void *pb_alloc(void *ud, size_t size) {
    nasc_onnx_pb *pb = ud;
    void *p = pb->ctx->realloc_fn(pb->ctx->ud, NULL, size ? size : 1);
    if (!p) pb->oom = true;
    return p;
}

static void pb_free(void *ud, void *ptr) {
    nasc_onnx_pb *pb = ud;
    if (ptr) pb->ctx->realloc_fn(pb->ctx->ud, ptr, 0);
}

void nasc_onnx_pb_init(nasc_onnx_pb *pb, nasc_ctx *ctx) {
    pb->base.alloc = pb_alloc;
    pb->base.free = pb_free;
    pb->base.allocator_data = pb;
    pb->ctx = ctx;
    pb->oom = false;
}

typedef struct buf_sink {
    ProtobufCBuffer base;
    nasc_buf *b;
} buf_sink;

static void sink_append(ProtobufCBuffer *s, size_t len, const uint8_t *data) {
    if (len) nasc_buf_append(((buf_sink *)s)->b, (const char *)data, len); /* data may be NULL then */
}

nasc_status nasc_onnx_pack(const ProtobufCMessage *msg, nasc_buf *out) {
    size_t start = out->len;
    buf_sink sink = {{sink_append}, out};
    protobuf_c_message_pack_to_buffer(msg, &sink.base);
    if (out->oom) {
        if (out->data) out->len = start, out->data[start] = 0;
        return NASC_ENOMEM;
    }
    return NASC_OK;
}
