/* test_onnx_depth.c - ONNX bytes that nest messages without end.
 *
 * A ModelProto whose graph holds a node whose attribute holds a graph whose
 * node ... is a few bytes a level; protobuf-c unpacks it by recursion and a
 * few hundred kB overflowed the stack (a crash, not an error). The importer
 * now measures the nesting first and refuses such a file with an error.
 */
#include "testutil.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, n);
}

/* field `field` (length-delimited) holding inner's bytes, replacing inner. */
static void wrap(buf *inner, unsigned field) {
    buf out = {0};
    put_varint(&out, (uint64_t)field << 3 | 2);
    put_varint(&out, inner->n);
    put(&out, inner->p, inner->n);
    free(inner->p);
    *inner = out;
}

/* ir_version 8 and a graph `levels` GraphProto -> NodeProto -> AttributeProto
 * -> GraphProto ... deep (GraphProto.node = 1, NodeProto.attribute = 5,
 * AttributeProto.g = 6, ModelProto.graph = 7). */
static buf deep_model(int levels) {
    buf g = {0};
    for (int i = 0; i < levels; i++) {
        wrap(&g, 6);
        wrap(&g, 5);
        wrap(&g, 1);
    }
    wrap(&g, 7);
    buf m = {0};
    put_varint(&m, 1 << 3 | 0);
    put_varint(&m, 8);
    put(&m, g.p, g.n);
    free(g.p);
    return m;
}

static nasc_status import(const buf *b, nasc_ctx *ctx) {
    nasc_module *prim = NULL;
    nasc_param_store *w = NULL;
    nasc_status st = nasc_onnx_import(ctx, b->p, b->n, "deep.onnx", &prim, &w);
    nasc_module_destroy(prim);
    nasc_params_destroy(w);
    return st;
}

static void test_deep_refused(void **state) {
    (void)state;
    buf b = deep_model(40000); /* about 470 kB */
    assert_true(b.n > 400000);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    assert_int_equal(import(&b, &ctx), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "nested more than"));
    assert_string_equal(ctx.diag.file, "deep.onnx");
    free(b.p);
}

/* Shallow nesting is not refused for its depth: the model is judged on what
 * it holds (here a node without an op type, or graphs that are empty). */
static void test_shallow_not_refused(void **state) {
    (void)state;
    buf b = deep_model(5);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    assert_int_equal(import(&b, &ctx), NASC_EINPUT);
    assert_null(strstr(ctx.diag.msg, "nested more than"));
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_refused),
        cmocka_unit_test(test_shallow_not_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
