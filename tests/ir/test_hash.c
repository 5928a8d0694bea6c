/* Canonical hashing when it cannot allocate. Cells of up to 256 values are
 * hashed on the stack; a larger cell needs scratch memory from the context's
 * allocator. Making each of those allocations fail must give NASC_ENOMEM
 * with the out-parameter untouched and nothing leaked, never a hash value
 * (a made-up value would let the search take two architectures for one).
 * A cell index out of range is an error too. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

/* A macro net whose body is a chain of `layers` conv/pool pairs over x, each
 * pair summed, with a second, identical branch at every fifth layer so that
 * the canonical ordering has ties to break: 1 + 3 * layers + 2 * (layers / 5)
 * values. `flip` changes the op of the last layer. */
static nasc_module *big_net(nasc_ctx *ctx, int layers, bool flip) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_ARCH, "big");
    assert_non_null(m);
    int body = nasc_cell_begin(m, "body", NASC_CELL_MACRO, 1, NASC_NOLOC);
    assert_true(body >= 0);
    uint32_t prev = 0;
    for (int l = 0; l < layers; l++) {
        char name[32];
        nasc_op op = flip && l == layers - 1 ? NASC_OP_SEP_CONV_5X5 : NASC_OP_SEP_CONV_3X3;
        snprintf(name, sizeof name, "a%d", l);
        uint32_t a = nasc_cell_add_node(m, op, &prev, 1, NULL, name, NASC_NOLOC);
        snprintf(name, sizeof name, "b%d", l);
        uint32_t b = nasc_cell_add_node(m, NASC_OP_MAX_POOL_3X3, &prev, 1, NULL, name, NASC_NOLOC);
        assert_true(a != UINT32_MAX && b != UINT32_MAX);
        if (l % 5 == 4) {
            /* the same pair again: equal Merkle hashes */
            snprintf(name, sizeof name, "a%d_2", l);
            a = nasc_cell_add_node(m, op, &prev, 1, NULL, name, NASC_NOLOC);
            snprintf(name, sizeof name, "b%d_2", l);
            b = nasc_cell_add_node(m, NASC_OP_MAX_POOL_3X3, &prev, 1, NULL, name, NASC_NOLOC);
        }
        uint32_t ab[2] = {a, b};
        snprintf(name, sizeof name, "s%d", l);
        prev = nasc_cell_add_node(m, NASC_OP_ADD, ab, 2, NULL, name, NASC_NOLOC);
        assert_true(prev != UINT32_MAX);
    }
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_CONCAT, &prev, 1), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_MACRO);
    sk.normal_cell = body;
    nasc_net_set_skeleton(m, &sk);
    return m;
}

typedef nasc_status (*hash_fn)(const nasc_module *m, uint64_t *out);

static nasc_status cell0_hash(const nasc_module *m, uint64_t *out) { return nasc_cell_hash(m, 0, out); }

/* Fail every allocation the hash makes, one at a time; returns how many
 * allocations one hash needs. */
static long fail_each(hash_fn fn, int layers, uint64_t *want) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = big_net(&ctx, layers, false);
    long live = ta.live;
    assert_int_equal(fn(m, want), NASC_OK);
    assert_int_equal(ta.live, live);
    long n;
    for (n = 1;; n++) {
        ta.fail_at = ta.count + n;
        ta.failed = false;
        uint64_t h = 0x5e7e5e7e5e7e5e7eULL;
        nasc_status st = fn(m, &h);
        assert_int_equal(ta.live, live);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            assert_true(h == *want);
            break;
        }
        if (st != NASC_ENOMEM) fail_msg("allocation %ld of the hash failed but the status is %d", n, (int)st);
        assert_int_equal(ctx.diag.status, NASC_ENOMEM);
        assert_true(h == 0x5e7e5e7e5e7e5e7eULL); /* untouched */
    }
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
    return n - 1;
}

static void test_hash_alloc_failures(void **state) {
    (void)state;
    uint64_t cell, arch;
    /* 100 layers: 1 + 300 + 40 values, past the 256 kept on the stack */
    long nc = fail_each(cell0_hash, 100, &cell);
    long na = fail_each(nasc_arch_hash, 100, &arch);
    printf("hash of a 341-value cell: %ld allocations (cell), %ld (net)\n", nc, na);
    assert_true(nc >= 1 && na >= 1);
    /* a small cell needs no allocation: a failing allocator cannot stop it */
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = big_net(&ctx, 20, false);
    ta.fail_at = ta.count + 1;
    uint64_t h;
    assert_int_equal(nasc_arch_hash(m, &h), NASC_OK);
    assert_false(ta.failed);
    nasc_module_destroy(m);
}

/* Two different large nets hash apart; the same net twice hashes alike. */
static void test_hash_large_cells(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = big_net(&ctx, 100, false), *b = big_net(&ctx, 100, true), *c = big_net(&ctx, 100, false);
    uint64_t ha, hb, hc;
    assert_int_equal(nasc_arch_hash(a, &ha), NASC_OK);
    assert_int_equal(nasc_arch_hash(b, &hb), NASC_OK);
    assert_int_equal(nasc_arch_hash(c, &hc), NASC_OK);
    assert_true(ha != hb);
    assert_true(ha == hc);
    nasc_module_destroy(a);
    nasc_module_destroy(b);
    nasc_module_destroy(c);
}

static void test_hash_bad_cell(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = big_net(&ctx, 3, false);
    uint64_t h = 42;
    assert_int_equal(nasc_cell_hash(m, 1, &h), NASC_EINPUT);
    assert_true(h == 42);
    assert_non_null(strstr(ctx.diag.msg, "cell 1"));
    /* a skeleton naming a cell that is not there */
    nasc_skeleton sk = m->skel;
    sk.normal_cell = 5;
    nasc_net_set_skeleton(m, &sk);
    assert_int_equal(nasc_arch_hash(m, &h), NASC_EINPUT);
    assert_true(h == 42);
    nasc_module_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_alloc_failures),
        cmocka_unit_test(test_hash_large_cells),
        cmocka_unit_test(test_hash_bad_cell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
