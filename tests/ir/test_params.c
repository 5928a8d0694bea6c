/* The parameter store: get/find/metadata, initialisation from a prim
 * module, the checkpoint format (round trips, every truncation, every byte
 * flip, hand-made bad files, a failing allocator) and the file wrappers
 * nasc_params_save / nasc_params_load. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nasc_export.h"

/* ---------------------------------------------------------------- */
/* helpers                                                          */
/* ---------------------------------------------------------------- */

/* Bitwise CRC-32 (IEEE), independent of the table in ir/params.c. */
static uint32_t crc32_ref(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

/* Hand-made checkpoint bytes. */
typedef struct bytes {
    uint8_t d[4096];
    size_t n;
} bytes;

static void b_raw(bytes *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void b_u32(bytes *b, uint32_t v) {
    uint8_t c[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    b_raw(b, c, 4);
}
static void b_i64(bytes *b, int64_t x) {
    uint64_t v = (uint64_t)x;
    for (int i = 0; i < 8; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        b_raw(b, &c, 1);
    }
}
static void b_str(bytes *b, const char *s) {
    b_u32(b, (uint32_t)strlen(s));
    b_raw(b, s, strlen(s));
}
static void b_f32(bytes *b, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    b_u32(b, v);
}
static void b_header(bytes *b, uint32_t version, uint32_t n_meta, uint32_t n_tensors) {
    b->n = 0;
    b_raw(b, "NASCPRM1", 8);
    b_u32(b, version);
    b_u32(b, n_meta);
    b_u32(b, n_tensors);
}
static void b_crc(bytes *b) { b_u32(b, crc32_ref(b->d, b->n)); }

/* Deserialize from an exact-size heap copy, so ASan sees any over-read. */
static nasc_status deser(nasc_ctx *ctx, const void *data, size_t len, nasc_param_store **out) {
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, data, len);
    nasc_status st = nasc_params_deserialize(ctx, len ? copy : NULL, len, "t.ckpt", out);
    free(copy);
    return st;
}

static int n_wrong;

static void expect_bad(const bytes *b, const char *sub) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = (nasc_param_store *)1;
    nasc_status st = deser(&ctx, b->d, b->n, &s);
    if (st != NASC_EINPUT || !strstr(ctx.diag.msg, sub) || strcmp(ctx.diag.file, "t.ckpt") != 0) {
        fprintf(stderr, "want ...%s...\ngot  ", sub);
        nasc_diag_print(&ctx.diag, stderr);
        n_wrong++;
    }
    assert_null(s);
}

static void fill_pattern(nasc_tensor *t, float base) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = base + (float)i * 0.25f - (float)(i % 7);
}

/* A store with metadata and tensors of every rank. */
static nasc_param_store *sample_store(nasc_ctx *ctx) {
    nasc_param_store *s = nasc_params_create(ctx);
    assert_non_null(s);
    assert_int_equal(nasc_params_set_meta(s, "arch", "0123456789abcdef"), NASC_OK);
    assert_int_equal(nasc_params_set_meta(s, "epoch", "7"), NASC_OK);
    assert_int_equal(nasc_params_set_meta(s, "note", ""), NASC_OK);
    static const int64_t d1[] = {5}, d2[] = {3, 4}, d3[] = {2, 3, 2}, d4[] = {4, 2, 3, 3};
    const int64_t *dims[] = {d1, d2, d3, d4};
    const char *names[] = {"bn.gamma", "fc.w", "odd.t", "stem.conv.w"};
    for (int i = 0; i < 4; i++) {
        nasc_tensor *t = nasc_params_get(s, names[i], i + 1, dims[i]);
        assert_non_null(t);
        fill_pattern(t, (float)i);
    }
    return s;
}

static void assert_same_store(const nasc_param_store *a, const nasc_param_store *b) {
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_meta, b->n_meta);
    for (uint32_t i = 0; i < a->n_meta; i++) {
        assert_string_equal(a->meta_keys[i], b->meta_keys[i]);
        assert_string_equal(a->meta_vals[i], b->meta_vals[i]);
    }
    for (uint32_t i = 0; i < a->n; i++) {
        const nasc_tensor *x = a->tensors[i], *y = b->tensors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->rank, y->rank);
        assert_memory_equal(x->dims, y->dims, sizeof(int64_t) * (size_t)x->rank);
        assert_int_equal(x->numel, y->numel);
        assert_memory_equal(x->data, y->data, sizeof(float) * (size_t)x->numel);
        assert_true(((uintptr_t)y->data & 63) == 0);
    }
}

/* ---------------------------------------------------------------- */
/* store                                                            */
/* ---------------------------------------------------------------- */

static void test_get_find(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    assert_non_null(s);
    assert_null(nasc_params_find(s, "w"));
    int64_t d[] = {2, 3};
    nasc_tensor *t = nasc_params_get(s, "w", 2, d);
    assert_non_null(t);
    assert_string_equal(t->name, "w");
    assert_int_equal(t->numel, 6);
    assert_true(((uintptr_t)t->data & 63) == 0);
    for (int i = 0; i < 6; i++) assert_true(t->data[i] == 0.0f);
    assert_ptr_equal(nasc_params_find(s, "w"), t);
    assert_ptr_equal(nasc_params_get(s, "w", 2, d), t);

    /* Other dims: an error naming the tensor and both shapes. */
    int64_t other[] = {3, 2};
    assert_null(nasc_params_get(s, "w", 2, other));
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "'w'"));
    assert_non_null(strstr(ctx.diag.msg, "f32[2,3]"));
    assert_non_null(strstr(ctx.diag.msg, "f32[3,2]"));
    assert_null(nasc_params_get(s, "w", 1, d));
    assert_non_null(strstr(ctx.diag.msg, "f32[2]"));

    /* Bad shapes and names. */
    int64_t zero[] = {4, 0}, neg[] = {-1}, huge[] = {INT64_MAX / 2, 4, 4, 4};
    assert_null(nasc_params_get(s, "z", 2, zero));
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    assert_null(nasc_params_get(s, "n", 1, neg));
    assert_null(nasc_params_get(s, "h", 4, huge));
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    assert_null(nasc_params_get(s, "r", 0, d));
    assert_null(nasc_params_get(s, "r5", 5, d));
    assert_null(nasc_params_get(s, "", 2, d));
    assert_int_equal(s->n, 1);

    /* Many tensors: the index grows and every name is still found. */
    char name[32];
    int64_t one[] = {1};
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        nasc_tensor *x = nasc_params_get(s, name, 1, one);
        assert_non_null(x);
        x->data[0] = (float)i;
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        nasc_tensor *x = nasc_params_find(s, name);
        assert_non_null(x);
        assert_true(x->data[0] == (float)i);
        assert_ptr_equal(s->tensors[i + 1], x); /* insertion order */
    }
    assert_null(nasc_params_find(s, "t2000"));
    assert_ptr_equal(nasc_params_find(s, "w"), t); /* pointers stay valid */
    nasc_params_destroy(s);
    nasc_params_destroy(NULL);
}

static void test_meta(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    assert_null(nasc_params_meta(s, "epoch"));
    assert_int_equal(nasc_params_set_meta(s, "epoch", "1"), NASC_OK);
    assert_string_equal(nasc_params_meta(s, "epoch"), "1");
    assert_int_equal(nasc_params_set_meta(s, "epoch", "2"), NASC_OK);
    assert_string_equal(nasc_params_meta(s, "epoch"), "2");
    assert_int_equal(s->n_meta, 1);
    char k[16], v[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i * i);
        assert_int_equal(nasc_params_set_meta(s, k, v), NASC_OK);
    }
    assert_string_equal(nasc_params_meta(s, "k99"), "v9801");
    assert_null(nasc_params_meta(s, "k"));
    assert_null(nasc_params_meta(s, "k100"));
    assert_int_equal(nasc_params_set_meta(s, "x", NULL), NASC_EINPUT);
    nasc_params_destroy(s);
}

/* Everything that allocates in the store, under a failing allocator. */
static void test_store_alloc(void **state) {
    (void)state;
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_param_store *s = nasc_params_create(&ctx);
        bool ok = s != NULL;
        char name[16];
        int64_t d[] = {3, 5};
        for (int i = 0; ok && i < 40; i++) {
            snprintf(name, sizeof name, "w%d", i);
            ok = nasc_params_get(s, name, 2, d) != NULL && nasc_params_set_meta(s, name, "v") == NASC_OK;
            if (!ok) assert_int_equal(ctx.diag.status, NASC_ENOMEM);
        }
        if (s) {
            /* What got in is whole: every tensor found by name. */
            for (uint32_t i = 0; i < s->n; i++) assert_ptr_equal(nasc_params_find(s, s->tensors[i]->name), s->tensors[i]);
        }
        nasc_params_destroy(s);
        assert_int_equal(ta.live, 0);
        if (!ta.failed) {
            assert_true(ok);
            break;
        }
    }
    assert_true(n > 80);
}

/* ---------------------------------------------------------------- */
/* initialisation                                                   */
/* ---------------------------------------------------------------- */

static nasc_type ty(int rank, int64_t a, int64_t b, int64_t c, int64_t d) {
    nasc_type t = {NASC_F32, rank, {a, b, c, d}};
    return t;
}

/* x -> conv(c1.w) -> batch_norm(bn.g, bn.b) -> relu -> conv(big.w) ->
 * global_avg_pool -> flatten -> inner_product(fc.w, fc.b) -> y.
 * reverse declares the parameters in the opposite order. */
static nasc_module *small_net(nasc_ctx *ctx, bool reverse) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "small.nir");
    assert_non_null(m);
    nasc_type tx = ty(4, NASC_BATCH, 3, 8, 8);
    uint32_t x = nasc_prim_add_input(m, "x", &tx);
    struct {
        const char *name;
        nasc_type t;
    } ps[] = {
        {"c1.w", ty(4, 16, 3, 3, 3)},   {"bn.g", ty(1, 16, 0, 0, 0)},    {"bn.b", ty(1, 16, 0, 0, 0)},
        {"big.w", ty(4, 64, 16, 3, 3)}, {"fc.w", ty(2, 512, 64, 0, 0)}, {"fc.b", ty(1, 512, 0, 0, 0)},
    };
    uint32_t id[6];
    for (int k = 0; k < 6; k++) {
        int i = reverse ? 5 - k : k;
        id[i] = nasc_prim_add_param(m, ps[i].name, &ps[i].t);
        assert_true(id[i] != UINT32_MAX);
    }
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = a.kw = 3;
    a.pt = a.pl = a.pb = a.pr = 1;
    uint32_t args[3] = {x, id[0]};
    uint32_t c1 = nasc_prim_add_op(m, NASC_PRIM_CONV, args, 2, &a, "c1", "stem", NASC_NOLOC);
    assert_true(c1 != UINT32_MAX);
    uint32_t bargs[3] = {c1, id[1], id[2]};
    uint32_t bn = nasc_prim_add_op(m, NASC_PRIM_BATCH_NORM, bargs, 3, NULL, "bn", "stem", NASC_NOLOC);
    uint32_t r = nasc_prim_add_op(m, NASC_PRIM_RELU, &bn, 1, NULL, "r", "stem", NASC_NOLOC);
    uint32_t cargs[2] = {r, id[3]};
    uint32_t c2 = nasc_prim_add_op(m, NASC_PRIM_CONV, cargs, 2, &a, "c2", "body", NASC_NOLOC);
    uint32_t g = nasc_prim_add_op(m, NASC_PRIM_GLOBAL_AVG_POOL, &c2, 1, NULL, "gap", "head", NASC_NOLOC);
    uint32_t f = nasc_prim_add_op(m, NASC_PRIM_FLATTEN, &g, 1, NULL, "flat", "head", NASC_NOLOC);
    uint32_t fargs[3] = {f, id[4], id[5]};
    uint32_t y = nasc_prim_add_op(m, NASC_PRIM_INNER_PRODUCT, fargs, 3, NULL, "y", "head", NASC_NOLOC);
    if (y == UINT32_MAX) nasc_diag_print(&ctx->diag, stderr);
    assert_true(y != UINT32_MAX);
    assert_int_equal(nasc_prim_add_output(m, y), NASC_OK);
    assert_int_equal(nasc_prim_verify(m), NASC_OK);
    return m;
}

static void moments(const nasc_tensor *t, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        s += t->data[i];
        s2 += (double)t->data[i] * t->data[i];
    }
    *mean = s / (double)t->numel;
    *std = sqrt(s2 / (double)t->numel - *mean * *mean);
}

static void test_init_values(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = small_net(&ctx, false);
    nasc_param_store *s = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(s, m, 1), NASC_OK);
    assert_int_equal(s->n, 6);

    nasc_tensor *g = nasc_params_find(s, "bn.g"), *b = nasc_params_find(s, "bn.b");
    for (int i = 0; i < 16; i++) assert_true(g->data[i] == 1.0f && b->data[i] == 0.0f);

    /* PyTorch's default: U(-b, b), b = 1/sqrt(fan_in), fan_in = C_in*kh*kw
     * or I; the inner-product bias with its weight's fan_in. Every value lies
     * inside the bound, and the spread is that of the uniform (b/sqrt(3)). */
    struct {
        const char *name;
        double fan_in;
    } u[] = {{"big.w", 16 * 9}, {"fc.w", 64}, {"c1.w", 27}, {"fc.b", 64}};
    for (int i = 0; i < 4; i++) {
        nasc_tensor *t = nasc_params_find(s, u[i].name);
        assert_non_null(t);
        double mean, std, bound = 1.0 / sqrt(u[i].fan_in), want = bound / sqrt(3.0);
        for (int64_t j = 0; j < t->numel; j++)
            if (fabs(t->data[j]) > bound) fail_msg("%s[%lld] = %g is outside +-%g", u[i].name, (long long)j, t->data[j], bound);
        moments(t, &mean, &std);
        double tol = i == 0 || i == 1 ? 0.05 : 0.25; /* c1.w has 432 values, fc.b 512 */
        if (fabs(std / want - 1.0) > tol || fabs(mean) > 0.1 * bound)
            fail_msg("%s: std %.5f mean %.5f, want std %.5f", u[i].name, std, mean, want);
    }

    /* Same seed, same values; another seed, other values. */
    nasc_param_store *s2 = nasc_params_create(&ctx), *s3 = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(s2, m, 1), NASC_OK);
    assert_int_equal(nasc_params_init(s3, m, 2), NASC_OK);
    assert_same_store(s, s2);
    nasc_tensor *w1 = nasc_params_find(s, "fc.w"), *w3 = nasc_params_find(s3, "fc.w");
    assert_true(memcmp(w1->data, w3->data, 64 * sizeof(float)) != 0);
    /* Different names draw different streams. */
    assert_true(memcmp(nasc_params_find(s, "big.w")->data, nasc_params_find(s, "c1.w")->data, 16) != 0);

    /* Tensors already present are kept as they are. */
    w1->data[0] = 42.0f;
    assert_int_equal(nasc_params_init(s, m, 9), NASC_OK);
    assert_true(w1->data[0] == 42.0f);
    assert_int_equal(s->n, 6);
    nasc_params_destroy(s);
    nasc_params_destroy(s2);
    nasc_params_destroy(s3);
    nasc_module_destroy(m);
}

/* The values depend on (seed, name) only, not on the order of creation. */
static void test_init_order_independent(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *fwd = small_net(&ctx, false), *rev = small_net(&ctx, true);
    nasc_param_store *a = nasc_params_create(&ctx), *b = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(a, fwd, 77), NASC_OK);
    assert_int_equal(nasc_params_init(b, rev, 77), NASC_OK);
    assert_string_equal(a->tensors[0]->name, "c1.w");
    assert_string_equal(b->tensors[0]->name, "fc.b");
    for (uint32_t i = 0; i < a->n; i++) {
        nasc_tensor *x = a->tensors[i], *y = nasc_params_find(b, x->name);
        assert_non_null(y);
        assert_int_equal(x->numel, y->numel);
        assert_memory_equal(x->data, y->data, (size_t)x->numel * sizeof(float));
    }
    nasc_params_destroy(a);
    nasc_params_destroy(b);
    nasc_module_destroy(fwd);
    nasc_module_destroy(rev);
}

static void test_init_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = small_net(&ctx, false);

    /* An existing tensor with other dims: error, nothing created. */
    nasc_param_store *s = nasc_params_create(&ctx);
    int64_t d[] = {512, 32};
    assert_non_null(nasc_params_get(s, "fc.w", 2, d));
    assert_int_equal(nasc_params_init(s, m, 1), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "'fc.w'"));
    assert_non_null(strstr(ctx.diag.msg, "f32[512,32]"));
    assert_non_null(strstr(ctx.diag.msg, "f32[512,64]"));
    assert_int_equal(s->n, 1);
    nasc_params_destroy(s);

    /* A parameter in a position without an initialisation rule. */
    nasc_module *q = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "q.nir");
    nasc_type tp = ty(2, 4, 4, 0, 0), tx = ty(2, NASC_BATCH, 4, 0, 0);
    uint32_t x = nasc_prim_add_input(q, "x", &tx);
    uint32_t p = nasc_prim_add_param(q, "odd", &tp);
    uint32_t r = nasc_prim_add_op(q, NASC_PRIM_RELU, &p, 1, NULL, "r", "", NASC_NOLOC);
    assert_true(x != UINT32_MAX && r != UINT32_MAX);
    s = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(s, q, 1), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "odd"));
    assert_string_equal(ctx.diag.file, "q.nir");
    assert_int_equal(s->n, 0);
    nasc_params_destroy(s);
    nasc_module_destroy(q);

    /* A parameter no op uses. */
    q = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "u.nir");
    assert_true(nasc_prim_add_param(q, "lonely", &tp) != UINT32_MAX);
    s = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(s, q, 1), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "lonely"));
    nasc_params_destroy(s);
    nasc_module_destroy(q);

    /* An arch module. */
    q = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "a.yaml");
    s = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_init(s, q, 1), NASC_EINPUT);
    nasc_params_destroy(s);
    nasc_module_destroy(q);
    nasc_module_destroy(m);
}

/* A failed init leaves whole tensors only; running it again finishes the
 * job with exactly the values of a clean run. */
static void test_init_alloc(void **state) {
    (void)state;
    nasc_ctx mctx;
    nasc_ctx_init(&mctx);
    nasc_module *m = small_net(&mctx, false);
    nasc_param_store *ref = nasc_params_create(&mctx);
    assert_int_equal(nasc_params_init(ref, m, 5), NASC_OK);
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_param_store *s = nasc_params_create(&ctx);
        if (!s) {
            assert_int_equal(ta.live, 0);
            continue;
        }
        nasc_status st = nasc_params_init(s, m, 5);
        if (ta.failed) {
            assert_int_equal(st, NASC_ENOMEM);
            ta.fail_at = 0;
            assert_int_equal(nasc_params_init(s, m, 5), NASC_OK);
        } else {
            assert_int_equal(st, NASC_OK);
        }
        for (uint32_t i = 0; i < ref->n; i++) {
            nasc_tensor *x = ref->tensors[i], *y = nasc_params_find(s, x->name);
            assert_non_null(y);
            assert_memory_equal(x->data, y->data, (size_t)x->numel * sizeof(float));
        }
        nasc_params_destroy(s);
        assert_int_equal(ta.live, 0);
        if (!ta.failed) break;
    }
    assert_true(n > 10);
    nasc_params_destroy(ref);
    nasc_module_destroy(m);
}

/* ---------------------------------------------------------------- */
/* serialisation                                                    */
/* ---------------------------------------------------------------- */

static void serialize(const nasc_param_store *s, nasc_buf *b) {
    nasc_buf_init(b, s->ctx);
    assert_int_equal(nasc_params_serialize(s, b), NASC_OK);
}

static void test_crc_reference(void **state) {
    (void)state;
    assert_true(crc32_ref((const uint8_t *)"123456789", 9) == 0xcbf43926u);
}

/* The example in docs/checkpoint.md, byte for byte. */
static void test_doc_example(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = nasc_params_create(&ctx);
    assert_int_equal(nasc_params_set_meta(s, "epoch", "3"), NASC_OK);
    int64_t d[] = {2};
    nasc_tensor *t = nasc_params_get(s, "fc.b", 1, d);
    t->data[0] = 1.0f;
    t->data[1] = -2.0f;
    nasc_buf b;
    serialize(s, &b);
    static const uint8_t want[] = {
        0x4e, 0x41, 0x53, 0x43, 0x50, 0x52, 0x4d, 0x31, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x65, 0x70, 0x6f, 0x63, 0x68, 0x01, 0x00, 0x00,
        0x00, 0x33, 0x04, 0x00, 0x00, 0x00, 0x66, 0x63, 0x2e, 0x62, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,
    };
    assert_int_equal(b.len, sizeof want + 4);
    assert_memory_equal(b.data, want, sizeof want);
    uint32_t crc = crc32_ref(want, sizeof want);
    assert_true(crc == 0xda85ac57u); /* as docs/checkpoint.md shows */
    uint8_t c[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    assert_memory_equal(b.data + sizeof want, c, 4);
    nasc_buf_free(&b);
    nasc_params_destroy(s);
}

static void test_round_trip(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = sample_store(&ctx);
    nasc_buf b1, b2;
    serialize(s, &b1);
    /* The CRC is CRC-32 over everything before it. */
    uint32_t crc = crc32_ref((const uint8_t *)b1.data, b1.len - 4);
    const uint8_t *tail = (const uint8_t *)b1.data + b1.len - 4;
    assert_true(crc == ((uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24));

    nasc_param_store *r = NULL;
    assert_int_equal(deser(&ctx, b1.data, b1.len, &r), NASC_OK);
    assert_non_null(r);
    assert_same_store(s, r);
    serialize(r, &b2);
    assert_int_equal(b1.len, b2.len);
    assert_memory_equal(b1.data, b2.data, b1.len);

    /* An empty store round-trips too. */
    nasc_param_store *e = nasc_params_create(&ctx), *e2 = NULL;
    nasc_buf b3;
    serialize(e, &b3);
    assert_int_equal(b3.len, 24);
    assert_int_equal(deser(&ctx, b3.data, b3.len, &e2), NASC_OK);
    assert_int_equal(e2->n + e2->n_meta, 0);

    /* Serialising appends: a prefix in the buffer is left alone and not
     * covered by the CRC. */
    nasc_buf b4;
    nasc_buf_init(&b4, &ctx);
    nasc_buf_append(&b4, "xyz", 3);
    assert_int_equal(nasc_params_serialize(s, &b4), NASC_OK);
    assert_int_equal(b4.len, b1.len + 3);
    assert_memory_equal(b4.data + 3, b1.data, b1.len);

    nasc_buf_free(&b1);
    nasc_buf_free(&b2);
    nasc_buf_free(&b3);
    nasc_buf_free(&b4);
    nasc_params_destroy(s);
    nasc_params_destroy(r);
    nasc_params_destroy(e);
    nasc_params_destroy(e2);
}

static void test_every_truncation(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = sample_store(&ctx);
    nasc_buf b;
    serialize(s, &b);
    for (size_t len = 0; len < b.len; len++) {
        nasc_param_store *r = (nasc_param_store *)1;
        nasc_status st = deser(&ctx, b.data, len, &r);
        if (st != NASC_EINPUT) fail_msg("length %zu of %zu: status %d", len, b.len, (int)st);
        assert_null(r);
        assert_string_equal(ctx.diag.file, "t.ckpt");
        if (len >= 8 && !strstr(ctx.diag.msg, "truncated at byte"))
            fail_msg("length %zu: %s", len, ctx.diag.msg);
    }
    nasc_buf_free(&b);
    nasc_params_destroy(s);
}

static void test_every_byte_flip(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = sample_store(&ctx);
    nasc_buf b;
    serialize(s, &b);
    /* Where the float data and the metadata values are: a flip there cannot
     * break the structure, so only the checksum can catch it. */
    bool only_crc[4096] = {false};
    assert_true(b.len <= sizeof only_crc);
    size_t pos = 20; /* magic, version, two counts */
    for (uint32_t i = 0; i < s->n_meta; i++) {
        pos += 4 + strlen(s->meta_keys[i]) + 4;
        for (size_t k = 0; k < strlen(s->meta_vals[i]); k++) only_crc[pos + k] = true;
        pos += strlen(s->meta_vals[i]);
    }
    for (uint32_t i = 0; i < s->n; i++) {
        const nasc_tensor *t = s->tensors[i];
        pos += 4 + strlen(t->name) + 4 + 8 * (size_t)t->rank;
        for (int64_t k = 0; k < t->numel * 4; k++) only_crc[pos + (size_t)k] = true;
        pos += (size_t)t->numel * 4;
    }
    assert_int_equal(pos + 4, b.len);
    for (size_t k = pos; k < b.len; k++) only_crc[k] = true;

    uint8_t *copy = malloc(b.len);
    const uint8_t masks[] = {0x01, 0x10, 0x80, 0xff};
    for (size_t i = 0; i < b.len; i++) {
        for (size_t mk = 0; mk < sizeof masks; mk++) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= masks[mk];
            nasc_param_store *r = (nasc_param_store *)1;
            nasc_status st = deser(&ctx, copy, b.len, &r);
            if (st != NASC_EINPUT) fail_msg("flip 0x%02x at byte %zu: status %d", masks[mk], i, (int)st);
            assert_null(r);
            const char *want = i < 8 ? "not a nasc checkpoint" : i < 12 ? "format version" : only_crc[i] ? "checksum mismatch" : NULL;
            if (want && !strstr(ctx.diag.msg, want))
                fail_msg("flip 0x%02x at byte %zu: want '%s', got '%s'", masks[mk], i, want, ctx.diag.msg);
        }
    }
    free(copy);
    nasc_buf_free(&b);
    nasc_params_destroy(s);
}

static void test_bad_files(void **state) {
    (void)state;
    bytes b;
    n_wrong = 0;

    b.n = 0;
    expect_bad(&b, "empty file");
    b_raw(&b, "NASCP", 5);
    expect_bad(&b, "truncated at byte 0");
    b.n = 0;
    b_raw(&b, "PK\x03\x04 not ours at all", 20);
    expect_bad(&b, "not a nasc checkpoint");

    b_header(&b, 2, 0, 0);
    b_crc(&b);
    expect_bad(&b, "format version 2, this nasc reads 1");
    b_header(&b, 0xffffffffu, 0, 0);
    expect_bad(&b, "format version 4294967295, this nasc reads 1");

    /* Counts far beyond the bytes left: refused before allocating. */
    b_header(&b, 1, 0, 0xffffffffu);
    b_crc(&b);
    expect_bad(&b, "truncated at byte 20");
    b_header(&b, 1, 0xffffffffu, 0);
    b_crc(&b);
    expect_bad(&b, "truncated at byte 20");

    /* A string length past the end. */
    b_header(&b, 1, 1, 0);
    b_u32(&b, 1000);
    b_raw(&b, "abcd", 4);
    b_crc(&b);
    expect_bad(&b, "truncated at byte 24: expected a metadata key (1000 bytes), 8 remain");

    /* Duplicates. */
    b_header(&b, 1, 2, 0);
    b_str(&b, "k");
    b_str(&b, "1");
    b_str(&b, "k");
    b_str(&b, "2");
    b_crc(&b);
    expect_bad(&b, "duplicate metadata key 'k' at byte 30");
    b_header(&b, 1, 0, 2);
    for (int i = 0; i < 2; i++) {
        b_str(&b, "w");
        b_u32(&b, 1);
        b_i64(&b, 1);
        b_f32(&b, 0.5f);
    }
    b_crc(&b);
    expect_bad(&b, "duplicate tensor 'w' at byte 41");

    /* NUL bytes in names, empty names. */
    b_header(&b, 1, 1, 0);
    b_u32(&b, 3);
    b_raw(&b, "a\0b", 3);
    b_str(&b, "v");
    b_crc(&b);
    expect_bad(&b, "contains a NUL byte");
    b_header(&b, 1, 0, 1);
    b_u32(&b, 0);
    b_u32(&b, 1);
    b_i64(&b, 1);
    b_f32(&b, 0.5f);
    b_u32(&b, 0);
    b_crc(&b);
    expect_bad(&b, "empty tensor name at byte 20");

    /* Ranks and dims. */
    uint32_t ranks[] = {0, 5, 0xffffffffu};
    for (int i = 0; i < 3; i++) {
        b_header(&b, 1, 0, 1);
        b_str(&b, "w");
        b_u32(&b, ranks[i]);
        for (int k = 0; k < 6; k++) b_u32(&b, 1);
        b_crc(&b);
        char want[64];
        snprintf(want, sizeof want, "tensor 'w' has rank %u at byte 25", ranks[i]);
        expect_bad(&b, want);
    }
    int64_t bad_dims[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        b_header(&b, 1, 0, 1);
        b_str(&b, "w");
        b_u32(&b, 2);
        b_i64(&b, 1);
        b_i64(&b, bad_dims[i]);
        b_f32(&b, 0.5f);
        b_crc(&b);
        char want[80];
        snprintf(want, sizeof want, "dimension 1 of tensor 'w' is %lld at byte 37", (long long)bad_dims[i]);
        expect_bad(&b, want);
    }
    b_header(&b, 1, 0, 1);
    b_str(&b, "w");
    b_u32(&b, 4);
    for (int k = 0; k < 4; k++) b_i64(&b, (int64_t)1 << 40);
    b_crc(&b);
    expect_bad(&b, "is too large");
    b_header(&b, 1, 0, 1);
    b_str(&b, "w");
    b_u32(&b, 2);
    b_i64(&b, 1000);
    b_i64(&b, 1000);
    b_f32(&b, 0.5f);
    b_crc(&b);
    expect_bad(&b, "truncated at byte 45: expected the data of tensor 'w' (4000000 bytes), 8 remain");

    /* The checksum: wrong, missing, followed by junk. */
    b_header(&b, 1, 1, 0);
    b_str(&b, "k");
    b_str(&b, "v");
    b_u32(&b, 0x12345678u);
    expect_bad(&b, "checksum mismatch: the file is corrupt");
    b_header(&b, 1, 1, 0);
    b_str(&b, "k");
    b_str(&b, "v");
    expect_bad(&b, "truncated at byte 20");
    b_header(&b, 1, 0, 0);
    b_crc(&b);
    b_raw(&b, "\n", 1);
    expect_bad(&b, "1 trailing bytes at byte 24");

    /* A hand-made good file is accepted. */
    b_header(&b, 1, 1, 1);
    b_str(&b, "epoch");
    b_str(&b, "3");
    b_str(&b, "fc.b");
    b_u32(&b, 1);
    b_i64(&b, 2);
    b_f32(&b, 1.0f);
    b_f32(&b, -2.0f);
    b_crc(&b);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_param_store *s = NULL;
    assert_int_equal(deser(&ctx, b.d, b.n, &s), NASC_OK);
    assert_string_equal(nasc_params_meta(s, "epoch"), "3");
    nasc_tensor *t = nasc_params_find(s, "fc.b");
    assert_true(t && t->numel == 2 && t->data[0] == 1.0f && t->data[1] == -2.0f);
    nasc_params_destroy(s);

    assert_int_equal(n_wrong, 0);
}

static void test_deserialize_alloc(void **state) {
    (void)state;
    nasc_ctx ctx0;
    nasc_ctx_init(&ctx0);
    nasc_param_store *s = sample_store(&ctx0);
    nasc_buf b;
    serialize(s, &b);
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_param_store *r = (nasc_param_store *)1;
        nasc_status st = nasc_params_deserialize(&ctx, b.data, b.len, "t.ckpt", &r);
        if (ta.failed) {
            assert_int_equal(st, NASC_ENOMEM);
            assert_null(r);
            assert_int_equal(ta.live, 0);
            continue;
        }
        assert_int_equal(st, NASC_OK);
        assert_same_store(s, r);
        nasc_params_destroy(r);
        assert_int_equal(ta.live, 0);
        break;
    }
    assert_true(n > 15);

    /* Serialising into a buffer that cannot grow. */
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_buf o;
        nasc_buf_init(&o, &ctx);
        nasc_status st = nasc_params_serialize(s, &o);
        nasc_buf_free(&o);
        assert_int_equal(ta.live, 0);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            break;
        }
        assert_int_equal(st, NASC_ENOMEM);
    }
    nasc_buf_free(&b);
    nasc_params_destroy(s);
}

/* ---------------------------------------------------------------- */
/* files                                                            */
/* ---------------------------------------------------------------- */

static void test_save_load(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char path[128], tmp[140];
    snprintf(path, sizeof path, "/tmp/nasc_test_params_%d.ckpt", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    nasc_param_store *s = sample_store(&ctx);
    assert_int_equal(nasc_params_save(s, path), NASC_OK);
    struct stat st;
    assert_int_equal(stat(tmp, &st), -1); /* renamed away */
    nasc_param_store *r = NULL;
    assert_int_equal(nasc_params_load(&ctx, path, &r), NASC_OK);
    assert_same_store(s, r);

    /* Saving again replaces the file. */
    assert_int_equal(nasc_params_set_meta(s, "epoch", "8"), NASC_OK);
    assert_int_equal(nasc_params_save(s, path), NASC_OK);
    nasc_params_destroy(r);
    assert_int_equal(nasc_params_load(&ctx, path, &r), NASC_OK);
    assert_string_equal(nasc_params_meta(r, "epoch"), "8");
    nasc_params_destroy(r);

    /* A damaged file: the error names the path and the problem. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -8, SEEK_END); /* inside the last tensor's data */
    fputc(0x5a, f);
    fclose(f);
    r = (nasc_param_store *)1;
    assert_int_equal(nasc_params_load(&ctx, path, &r), NASC_EINPUT);
    assert_null(r);
    assert_string_equal(ctx.diag.file, path);
    assert_non_null(strstr(ctx.diag.msg, "checksum mismatch"));
    unlink(path);

    /* Missing files and directories. */
    assert_int_equal(nasc_params_load(&ctx, path, &r), NASC_EINPUT);
    assert_null(r);
    assert_int_equal(nasc_params_save(s, "/nonexistent-nasc-dir/x.ckpt"), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.file, "/nonexistent-nasc-dir/x.ckpt"));

    /* A relative path (directory "."). */
    char cwd_name[64];
    snprintf(cwd_name, sizeof cwd_name, "nasc_test_params_%d.ckpt", (int)getpid());
    char old[512];
    assert_non_null(getcwd(old, sizeof old));
    assert_int_equal(chdir("/tmp"), 0);
    assert_int_equal(nasc_params_save(s, cwd_name), NASC_OK);
    assert_int_equal(nasc_params_load(&ctx, cwd_name, &r), NASC_OK);
    assert_same_store(s, r);
    nasc_params_destroy(r);
    unlink(cwd_name);
    assert_int_equal(chdir(old), 0);
    nasc_params_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_find),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_store_alloc),
        cmocka_unit_test(test_init_values),
        cmocka_unit_test(test_init_order_independent),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_init_alloc),
        cmocka_unit_test(test_crc_reference),
        cmocka_unit_test(test_doc_example),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_byte_flip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_deserialize_alloc),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests_name("ir/params", tests, NULL, NULL);
}
