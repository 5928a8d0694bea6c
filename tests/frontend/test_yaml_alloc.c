/* YAML loading under a failing allocator: for every n, making the n-th
 * allocation fail gives NASC_ENOMEM (or NASC_OK once n is past the last
 * allocation), no module, and nothing left allocated. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Blocks, general nodes with forward references, outputs, three cells. */
static const char *model =
    "name: medium\n"
    "kind: cells\n"
    "input: 3x32x32\n"
    "channels: 12\n"
    "stages: 2\n"
    "normal: nrm\n"
    "reduction: red\n"
    "cells:\n"
    "  nrm:\n"
    "    kind: normal\n"
    "    blocks:\n"
    "      - [0, sep_conv_3x3, 1, sep_conv_5x5, add]\n"
    "      - [2, skip_connect, 0, max_pool_3x3, add]\n"
    "      - [h1, dil_conv_3x3, b1, avg_pool_3x3, add]\n"
    "      - [3, conv_7x1_1x7, 4, identity, add]\n"
    "    nodes:\n"
    "      - {name: s, op: add, in: [p, q]}\n"
    "      - {name: p, op: conv, in: [b3], kernel: 3x1}\n"
    "      - {name: q, op: conv, in: [b2], kernel: 1}\n"
    "    output: {rule: concat, from: [s, b2, b3]}\n"
    "  red:\n"
    "    kind: reduction\n"
    "    blocks:\n"
    "      - [h2, max_pool_3x3, h1, max_pool_3x3, add]\n"
    "      - [2, skip_connect, 1, max_pool_3x3, add]\n"
    "      - [0, sep_conv_3x3, 2, skip_connect, concat]\n"
    "  spare:\n"
    "    kind: macro\n"
    "    nodes:\n"
    "      - {name: a, op: conv, in: x, kernel: 5, filters: 8, stride: 1}\n"
    "      - {op: max_pool_3x3, in: [a]}\n"
    "    output: sum\n";

typedef nasc_status (*load_fn)(nasc_ctx *ctx, const void *arg, nasc_module **out);

/* Run load with allocation n failing for n = 1, 2, ... until it succeeds. */
static long fail_each(load_fn load, const void *arg) {
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_module *m = (nasc_module *)1;
        nasc_status st = load(&ctx, arg, &m);
        if (ta.failed) {
            if (st != NASC_ENOMEM) {
                nasc_diag_print(&ctx.diag, stderr);
                fail_msg("allocation %ld failed but the status is %d", n, (int)st);
            }
            assert_null(m);
            assert_int_equal(ta.live, 0);
            continue;
        }
        if (st != NASC_OK) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_non_null(m);
        assert_true(m->n_cells == 3);
        assert_true(ta.live > 0);
        nasc_module_destroy(m);
        assert_int_equal(ta.live, 0);
        break;
    }
    return n;
}

static nasc_status load_string(nasc_ctx *ctx, const void *arg, nasc_module **out) {
    (void)arg;
    nasc_override ov[] = {{"channels", "20"}, {"classes", "7"}};
    nasc_status st = nasc_yaml_load_string(ctx, model, strlen(model), "medium.yaml", ov, 2, out);
    if (st == NASC_OK && ((*out)->skel.channels != 20 || (*out)->skel.classes != 7))
        return NASC_EINTERNAL;
    return st;
}

static nasc_status load_path(nasc_ctx *ctx, const void *arg, nasc_module **out) {
    return nasc_model_load(ctx, (const char *)arg, NULL, 0, out);
}

static void test_alloc_string(void **state) {
    (void)state;
    long n = fail_each(load_string, NULL);
    assert_true(n > 20); /* the loop really did walk through many allocations */
}

static void test_alloc_file(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/tmp/nasc_test_yaml_alloc_%d.yaml", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(model, f);
    fclose(f);
    long n = fail_each(load_path, path);
    unlink(path);
    assert_true(n > 20);
}

/* Errors found after some allocations also free everything. */
static void test_alloc_error_paths(void **state) {
    (void)state;
    static const char *bad[] = {
        "normal: c\ncells:\n  c:\n    kind: normal\n    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, add]\n"
        "    nodes:\n      - {name: a, op: add, in: [b, b0]}\n      - {name: b, op: add, in: [a]}\n",
        "normal: c\ncells:\n  c:\n    kind: normal\n    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, add]\n"
        "  c:\n    kind: normal\n",
        "normal: d\ncells:\n  c:\n    kind: normal\n    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, add]\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (long n = 1;; n++) {
            nasc_ctx ctx;
            nasc_test_alloc ta;
            nasc_test_ctx(&ctx, &ta, n);
            nasc_module *m = NULL;
            nasc_status st = nasc_yaml_load_string(&ctx, bad[i], strlen(bad[i]), "b.yaml", NULL, 0, &m);
            assert_null(m);
            assert_int_equal(ta.live, 0);
            if (!ta.failed) {
                assert_int_equal(st, NASC_EINPUT);
                break;
            }
            assert_int_equal(st, NASC_ENOMEM);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_string),
        cmocka_unit_test(test_alloc_file),
        cmocka_unit_test(test_alloc_error_paths),
    };
    return cmocka_run_group_tests_name("frontend/yaml_alloc", tests, NULL, NULL);
}
