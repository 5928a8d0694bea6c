/* The YAML writer: every model of the zoo (recurrent ones too) and sampled
 * architectures of every search space are written and read back to a
 * module with the same canonical hash and the same text IR; writing the
 * read-back module gives the same bytes; what YAML cannot say is
 * NASC_EINPUT with nothing appended; a failing allocator neither crashes
 * nor leaks. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_search.h"
#include "testutil.h"

static void fail_diag(const nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fail_msg("%s: %s", what, buf);
}

static char *print_text(nasc_ctx *ctx, const nasc_module *m) {
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    if (nasc_text_print(m, &b)) fail_diag(ctx, "text print");
    char *s = strdup(b.data);
    nasc_buf_free(&b);
    return s;
}

/* write -> load -> same hash, same text; write again -> same bytes. */
static void roundtrip(nasc_ctx *ctx, const nasc_module *m, const char *what) {
    nasc_buf y1, y2;
    nasc_buf_init(&y1, ctx);
    nasc_buf_init(&y2, ctx);
    if (nasc_yaml_write(m, &y1)) fail_diag(ctx, what);
    nasc_module *back = NULL;
    if (nasc_yaml_load_string(ctx, y1.data, y1.len, "written.yaml", NULL, 0, &back)) {
        fprintf(stderr, "%s\n", y1.data);
        fail_diag(ctx, what);
    }
    uint64_t hb = 0, hm = 0; /* clang cannot see that fail_diag does not return */
    if (nasc_arch_hash(back, &hb) || nasc_arch_hash(m, &hm)) fail_diag(ctx, what);
    if (hb != hm) fail_msg("%s: the hash changed", what);
    char *t1 = print_text(ctx, m), *t2 = print_text(ctx, back);
    if (strcmp(t1, t2) != 0) fail_msg("%s: the text IR changed:\n%s\n---\n%s\n---\n%s", what, t1, t2, y1.data);
    if (nasc_yaml_write(back, &y2)) fail_diag(ctx, what);
    assert_string_equal(y1.data, y2.data);
    free(t1);
    free(t2);
    nasc_module_destroy(back);
    nasc_buf_free(&y1);
    nasc_buf_free(&y2);
}

static void test_zoo(void **state) {
    (void)state;
    char *dir = nasc_test_path("models");
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int seen = 0;
    bool rnn = false;
    for (struct dirent *e; (e = readdir(dp)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = NULL;
        if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
        rnn |= m->skel.kind == NASC_NET_RECURRENT;
        roundtrip(&ctx, m, path);
        nasc_module_destroy(m);
        assert_int_equal(ta.live, 0);
        seen++;
    }
    closedir(dp);
    free(dir);
    assert_true(seen >= 6);
    assert_true(rnn); /* enas-rnn.yaml */
}

/* conv with a dilation per axis and channel groups keeps them through
 * YAML (and its hash differs from the same net without them). */
static void test_dilation_groups(void **state) {
    (void)state;
    char *path = nasc_test_path("tests/export/conv-dilation-groups.yaml");
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = NULL;
    if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
    roundtrip(&ctx, m, path);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_OK);
    assert_non_null(strstr(b.data, "kernel: 5x3, filters: 32, stride: 2, dilation: 1x3, groups: 4"));
    nasc_buf_free(&b);
    uint64_t h0 = 0, h1 = 0;
    assert_int_equal(nasc_arch_hash(m, &h0), NASC_OK);
    const nasc_cell *c = &m->cells[0];
    nasc_node *c2 = &m->nodes[c->first_node + 1];
    assert_int_equal(c2->attrs.groups, 4);
    c2->attrs.groups = 1; /* the same as none */
    assert_int_equal(nasc_arch_hash(m, &h1), NASC_OK);
    assert_true(h0 != h1);
    uint64_t h2 = 0;
    c2->attrs.groups = 0;
    assert_int_equal(nasc_arch_hash(m, &h2), NASC_OK);
    assert_true(h1 == h2);
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
    free(path);
}

/* The block form: a cell that is exactly blocks is written as blocks. */
static void test_forms(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char *path = nasc_test_path("models/darts-v2.yaml");
    nasc_module *m = NULL;
    if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
    free(path);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_OK);
    assert_non_null(strstr(b.data, "kind: cells\ninput: 1x28x28\nclasses: 10\nchannels: 16\n"
                                    "cells_per_stage: 2\nstages: 3\nstem_multiplier: 3\n"
                                    "normal: darts_v2_normal\nreduction: darts_v2_reduction\ncells:\n"));
    assert_non_null(strstr(b.data, "    blocks:\n      - [h2, sep_conv_3x3, h1, sep_conv_3x3, add]\n"));
    assert_non_null(strstr(b.data, "    output: {rule: concat, from: [b0, b1, b2, b3]}\n"));
    nasc_buf_free(&b);
    nasc_module_destroy(m);

    path = nasc_test_path("models/baseline-cnn.yaml");
    if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
    free(path);
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_OK);
    assert_non_null(strstr(b.data, "body: baseline_body\n"));
    assert_non_null(strstr(b.data, "      - {name: c2, op: conv, in: [c1], kernel: 3x3, filters: 64, stride: 2}\n"));
    assert_non_null(strstr(b.data, "    output: concat\n"));
    nasc_buf_free(&b);
    nasc_module_destroy(m);

    path = nasc_test_path("models/enas-rnn.yaml");
    if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
    free(path);
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_OK);
    assert_non_null(strstr(b.data, "kind: recurrent\ninput: 748\n"));
    assert_non_null(strstr(b.data, "    inputs: [x, h]\n"));
    assert_non_null(strstr(b.data, "      - {name: n0, op: highway, in: [n0c, n0g, h]}\n"));
    assert_non_null(strstr(b.data, "    output: avg\n"));
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

/* Architectures sampled from every space, at the default and other sizes. */
static void test_spaces(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    for (int s = 0; nasc_space_names[s]; s++) {
        for (int size = 0; size <= 3; size += 3) {
            /* each space's own size option (nasrl-rnn: a base of 2, 4 or 8) */
            nasc_space_entry ent;
            assert_true(nasc_space_registered((size_t)s, &ent));
            bool blocks = strcmp(ent.option, "blocks") == 0;
            int sz = strcmp(ent.name, "nasrl-rnn") == 0 && size ? 4 : size;
            nasc_space_options o = {blocks ? sz : 0, blocks ? 0 : sz};
            nasc_space *sp = NULL;
            if (nasc_space_create(&ctx, nasc_space_names[s], &o, &sp)) fail_diag(&ctx, "space");
            uint32_t d[128];
            for (int seed = 0; seed < 25; seed++) {
                nasc_rng r;
                nasc_rng_seed(&r, (uint64_t)seed);
                nasc_space_sample(sp, &r, d);
                nasc_module *m = NULL;
                if (nasc_space_decode(sp, d, &m)) fail_diag(&ctx, "decode");
                char what[64];
                snprintf(what, sizeof what, "%s seed %d", nasc_space_names[s], seed);
                roundtrip(&ctx, m, what);
                nasc_module_destroy(m);
            }
            nasc_space_destroy(sp);
        }
    }
}

/* What YAML cannot say, and a prim module. */
static void test_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    nasc_buf_append(&b, "keep", 4);

    /* a recurrent cell with two inputs and a node named c */
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "rnn.nir");
    int ci = nasc_cell_begin(m, "cell", NASC_CELL_RECURRENT, 2, NASC_NOLOC);
    uint32_t args[2] = {0, 1};
    uint32_t v = nasc_cell_add_node(m, NASC_OP_LINEAR, args, 2, NULL, "c", NASC_NOLOC);
    assert_int_not_equal(v, UINT32_MAX);
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_AVG, NULL, 0), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_RECURRENT);
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    assert_int_equal(nasc_arch_verify(m), NASC_OK);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "node 'c' of cell 'cell' has the name of an input"));
    assert_string_equal(ctx.diag.file, "rnn.nir");

    /* renamed: fine; with an image input: not a vector */
    m->nodes[0].name = nasc_str_intern(m, "n0", 2);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_OK);
    assert_int_equal(b.len, strlen("keep") + strlen(b.data + 4));
    m->skel.in_h = 2;
    b.len = 4;
    b.data[4] = 0;
    assert_int_equal(nasc_yaml_write(m, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "a recurrent net's input is a vector in YAML, not 32x2x1"));
    assert_int_equal(b.len, 4);
    nasc_module_destroy(m);

    /* a node name longer than YAML allows */
    m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "long.nir");
    ci = nasc_cell_begin(m, "body", NASC_CELL_MACRO, 1, NASC_NOLOC);
    char longname[200];
    memset(longname, 'a', 150);
    longname[150] = 0;
    uint32_t x = 0;
    assert_int_not_equal(nasc_cell_add_node(m, NASC_OP_CONV_3X3, &x, 1, NULL, longname, NASC_NOLOC), UINT32_MAX);
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);
    sk = nasc_skeleton_default(NASC_NET_MACRO);
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    assert_int_equal(nasc_yaml_write(m, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "cannot be written in YAML"));
    assert_int_equal(b.len, 4);

    /* no skeleton; a prim module */
    m->has_skeleton = false;
    assert_int_equal(nasc_yaml_write(m, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "no skeleton"));
    nasc_module_destroy(m);
    m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "p.nir");
    assert_int_equal(nasc_yaml_write(m, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "prim module"));
    nasc_module_destroy(m);
    assert_int_equal(b.len, 4);
    nasc_buf_free(&b);
}

static void test_alloc_failures(void **state) {
    (void)state;
    char *path = nasc_test_path("models/nasnet-a.yaml");
    bool done = false;
    for (long k = 1; !done && k < 100000; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = NULL;
        if (nasc_model_load(&ctx, path, NULL, 0, &m)) fail_diag(&ctx, path);
        ta.fail_at = ta.count + k;
        nasc_buf b;
        nasc_buf_init(&b, &ctx);
        nasc_status st = nasc_yaml_write(m, &b);
        if (st) {
            assert_int_equal(st, NASC_ENOMEM);
            assert_true(ta.failed);
        } else {
            done = !ta.failed;
        }
        nasc_buf_free(&b);
        nasc_module_destroy(m);
        assert_int_equal(ta.live, 0);
    }
    free(path);
    assert_true(done);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zoo),
        cmocka_unit_test(test_dilation_groups),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_spaces),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("export/yaml_write", tests, NULL, NULL);
}
