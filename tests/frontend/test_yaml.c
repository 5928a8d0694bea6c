/* YAML model files: the happy path, overrides, and one test per error kind
 * (inline strings and the tests/bad/yaml corpus). */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- */
/* helpers                                                          */
/* ---------------------------------------------------------------- */

static nasc_module *load_ok(nasc_ctx *ctx, const char *text, const nasc_override *ov,
                            size_t n_ov) {
    nasc_module *m = NULL;
    nasc_status st = nasc_yaml_load_string(ctx, text, strlen(text), "t.yaml", ov, n_ov, &m);
    if (st != NASC_OK) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("expected the model to load");
    }
    assert_non_null(m);
    return m;
}

static int n_wrong; /* wrong diagnostics so far (all are printed, then the test fails) */

/* Load text expecting an error at line:col whose message contains sub. */
static void expect_error(const char *text, int line, int col, const char *sub) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = (nasc_module *)1;
    nasc_status st = nasc_yaml_load_string(&ctx, text, strlen(text), "e.yaml", NULL, 0, &m);
    if (st != NASC_EINPUT || ctx.diag.line != line || ctx.diag.col != col ||
        !strstr(ctx.diag.msg, sub)) {
        fprintf(stderr, "want %d:%d: ...%s...\ngot  ", line, col, sub);
        nasc_diag_print(&ctx.diag, stderr);
        n_wrong++;
    }
    assert_null(m);
    assert_string_equal(ctx.diag.file, "e.yaml");
}

static const nasc_cell *cell_named(const nasc_module *m, const char *name) {
    int i = nasc_cell_find(m, name);
    assert_true(i >= 0);
    return &m->cells[i];
}

/* The node of cell c called name. */
static const nasc_node *node_named(const nasc_module *m, const nasc_cell *c, const char *name) {
    int64_t v = nasc_cell_lookup(m, c, name, strlen(name));
    assert_true(v >= (int64_t)c->n_inputs);
    return &m->nodes[c->first_node + (uint32_t)(v - c->n_inputs)];
}

/* Name of operand i of node n. */
static const char *arg_name(const nasc_module *m, const nasc_cell *c, const nasc_node *n,
                            uint32_t i) {
    assert_true(i < n->n_args);
    return nasc_cell_value_name(m, c, m->args[n->first_arg + i]);
}

/* Position of a node within its cell (the builder order). */
static uint32_t node_pos(const nasc_module *m, const nasc_cell *c, const char *name) {
    int64_t v = nasc_cell_lookup(m, c, name, strlen(name));
    assert_true(v >= (int64_t)c->n_inputs);
    return (uint32_t)(v - c->n_inputs);
}

/* ---------------------------------------------------------------- */
/* happy path                                                        */
/* ---------------------------------------------------------------- */

static const char *two_cells =
    "# a two-cell net\n"                                              /* 1 */
    "name: two-cells\n"                                               /* 2 */
    "kind: cells\n"                                                   /* 3 */
    "input: 3x32x32\n"                                                /* 4 */
    "classes: 10\n"                                                   /* 5 */
    "channels: 24\n"                                                  /* 6 */
    "cells_per_stage: 3\n"                                            /* 7 */
    "stages: 2\n"                                                     /* 8 */
    "stem_multiplier: 2\n"                                            /* 9 */
    "normal: nrm\n"                                                   /* 10 */
    "reduction: red\n"                                                /* 11 */
    "cells:\n"                                                        /* 12 */
    "  nrm:\n"                                                        /* 13 */
    "    kind: normal\n"                                              /* 14 */
    "    blocks:\n"                                                   /* 15 */
    "      - [h2, sep_conv_3x3, h1, skip_connect, add]\n"             /* 16 */
    "      - [b0, conv_7x1_1x7, h1, max_pool_3x3, concat]\n"          /* 17 */
    "    nodes:\n"                                                    /* 18 */
    "      - {name: l1, op: conv, in: [b1], kernel: 1, stride: 1}\n" /* 19 */
    "      - name: l2\n"                                              /* 20 */
    "        op: add\n"                                               /* 21 */
    "        in: [l1, b0]\n"                                          /* 22 */
    "    output: sum\n"                                               /* 23 */
    "  red:\n"                                                        /* 24 */
    "    kind: reduction\n"                                           /* 25 */
    "    blocks:\n"                                                   /* 26 */
    "      - [h2, max_pool_3x3, h1, avg_pool_3x3, add]\n"             /* 27 */
    "      - [h1, dil_conv_3x3, b0, identity, add]\n"                 /* 28 */
    "    output: {rule: concat, from: [b0, b1]}\n";                   /* 29 */

static void test_two_cells(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_ok(&ctx, two_cells, NULL, 0);
    assert_int_equal(m->dialect, NASC_DIALECT_ARCH);
    assert_string_equal(m->source, "t.yaml");
    assert_true(m->has_skeleton);
    const nasc_skeleton *sk = &m->skel;
    assert_int_equal(sk->kind, NASC_NET_CELLS);
    assert_int_equal(sk->in_c, 3);
    assert_int_equal(sk->in_h, 32);
    assert_int_equal(sk->in_w, 32);
    assert_int_equal(sk->classes, 10);
    assert_int_equal(sk->channels, 24);
    assert_int_equal(sk->cells_per_stage, 3);
    assert_int_equal(sk->stages, 2);
    assert_int_equal(sk->stem_multiplier, 2);
    assert_int_equal(m->n_cells, 2);
    assert_int_equal(sk->normal_cell, nasc_cell_find(m, "nrm"));
    assert_int_equal(sk->reduction_cell, nasc_cell_find(m, "red"));

    const nasc_cell *n = cell_named(m, "nrm");
    assert_int_equal(n->kind, NASC_CELL_NORMAL);
    assert_int_equal(n->n_inputs, 2);
    assert_int_equal(n->n_nodes, 8);
    assert_int_equal(n->loc.line, 13);
    assert_int_equal(n->loc.col, 3);
    assert_int_equal(n->out_rule, NASC_OUT_SUM);
    assert_int_equal(n->n_outs, 0);
    assert_int_equal(n->out_loc.line, 23);

    const nasc_node *b0a = node_named(m, n, "b0a");
    assert_int_equal(b0a->op, NASC_OP_SEP_CONV_3X3);
    assert_string_equal(arg_name(m, n, b0a, 0), "h2");
    assert_int_equal(b0a->loc.line, 16); /* a block's nodes point at its sequence */
    assert_int_equal(b0a->loc.col, 9);
    const nasc_node *b0b = node_named(m, n, "b0b");
    assert_int_equal(b0b->op, NASC_OP_IDENTITY); /* skip_connect */
    assert_string_equal(arg_name(m, n, b0b, 0), "h1");
    const nasc_node *b0 = node_named(m, n, "b0");
    assert_int_equal(b0->op, NASC_OP_ADD);
    assert_int_equal(b0->n_args, 2);
    assert_string_equal(arg_name(m, n, b0, 0), "b0a");
    assert_string_equal(arg_name(m, n, b0, 1), "b0b");
    assert_int_equal(b0->loc.line, 16); /* the combine node points at its op */
    assert_int_equal(b0->loc.col, 46);
    const nasc_node *b1a = node_named(m, n, "b1a");
    assert_int_equal(b1a->op, NASC_OP_CONV_1X7_7X1);
    assert_string_equal(arg_name(m, n, b1a, 0), "b0");
    assert_int_equal(node_named(m, n, "b1")->op, NASC_OP_CONCAT);
    const nasc_node *l1 = node_named(m, n, "l1");
    assert_int_equal(l1->op, NASC_OP_CONV);
    assert_int_equal(l1->attrs.filters, 0);
    assert_int_equal(l1->attrs.kh, 1);
    assert_int_equal(l1->attrs.kw, 1);
    assert_int_equal(l1->attrs.stride, 1);
    assert_int_equal(l1->loc.line, 19);
    assert_int_equal(l1->loc.col, 9);
    const nasc_node *l2 = node_named(m, n, "l2");
    assert_int_equal(l2->op, NASC_OP_ADD);
    assert_string_equal(arg_name(m, n, l2, 0), "l1");
    assert_string_equal(arg_name(m, n, l2, 1), "b0");
    assert_int_equal(l2->loc.line, 20); /* a block-style mapping starts at its first key */
    assert_int_equal(l2->loc.col, 9);
    /* file order kept: blocks, then nodes */
    assert_int_equal(node_pos(m, n, "b0a"), 0);
    assert_int_equal(node_pos(m, n, "b1"), 5);
    assert_int_equal(node_pos(m, n, "l2"), 7);

    const nasc_cell *r = cell_named(m, "red");
    assert_int_equal(r->kind, NASC_CELL_REDUCTION);
    assert_int_equal(r->n_nodes, 6);
    assert_int_equal(r->out_rule, NASC_OUT_CONCAT);
    assert_int_equal(r->n_outs, 2);
    assert_string_equal(nasc_cell_value_name(m, r, m->args[r->first_out]), "b0");
    assert_string_equal(nasc_cell_value_name(m, r, m->args[r->first_out + 1]), "b1");
    assert_int_equal(r->out_loc.line, 29);
    assert_int_equal(r->out_loc.col, 13);
    assert_int_equal(node_named(m, r, "b0b")->op, NASC_OP_AVG_POOL_3X3);
    assert_int_equal(node_named(m, r, "b1a")->op, NASC_OP_DIL_CONV_3X3);

    /* It lowers (shapes fit), and lowering errors would point back here. */
    nasc_module *p = NULL;
    assert_int_equal(nasc_lower(m, &p), NASC_OK);
    assert_non_null(p);
    nasc_module_destroy(p);
    nasc_module_destroy(m);
}

static void test_integer_refs(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_ok(&ctx,
                             "stages: 1\n"
                             "normal: c\n"
                             "cells:\n"
                             "  c:\n"
                             "    kind: normal\n"
                             "    blocks:\n"
                             "      - [0, sep_conv_3x3, 1, sep_conv_5x5, add]\n"
                             "      - [2, skip_connect, 0, max_pool_3x3, add]\n"
                             "      - [3, avg_pool_3x3, 2, dil_conv_3x3, add]\n",
                             NULL, 0);
    const nasc_cell *c = cell_named(m, "c");
    assert_int_equal(c->n_nodes, 9);
    assert_string_equal(arg_name(m, c, node_named(m, c, "b0a"), 0), "h2");
    assert_string_equal(arg_name(m, c, node_named(m, c, "b0b"), 0), "h1");
    assert_int_equal(node_named(m, c, "b0b")->op, NASC_OP_SEP_CONV_5X5);
    assert_string_equal(arg_name(m, c, node_named(m, c, "b1a"), 0), "b0");
    assert_string_equal(arg_name(m, c, node_named(m, c, "b1b"), 0), "h2");
    assert_string_equal(arg_name(m, c, node_named(m, c, "b2a"), 0), "b1");
    assert_string_equal(arg_name(m, c, node_named(m, c, "b2b"), 0), "b0");
    /* defaults: a cells net with the default skeleton */
    assert_int_equal(m->skel.in_c, 1);
    assert_int_equal(m->skel.in_h, 28);
    assert_int_equal(m->skel.channels, 16);
    assert_int_equal(m->skel.reduction_cell, -1);
    assert_int_equal(c->out_rule, NASC_OUT_CONCAT);
    nasc_module_destroy(m);
}

static void test_forward_refs_sorted(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_ok(&ctx,
                             "kind: macro\n"
                             "body: net\n"
                             "cells:\n"
                             "  net:\n"
                             "    kind: macro\n"
                             "    nodes:\n"
                             "      - {name: l3, op: add, in: [l2, l1]}\n"
                             "      - {name: l1, op: conv, in: [x], kernel: 3x5, filters: 36}\n"
                             "      - {name: l0, op: conv, in: x, kernel: 1, stride: 2}\n"
                             "      - {name: l2, op: conv, in: [l1], kernel: 5, filters: 36}\n",
                             NULL, 0);
    assert_int_equal(m->skel.kind, NASC_NET_MACRO);
    assert_int_equal(m->skel.stem_multiplier, 1);
    const nasc_cell *c = cell_named(m, "net");
    assert_int_equal(c->n_inputs, 1);
    /* l3 needs l2 and l1, l2 needs l1: l1, l2, l3, then l0 (file order otherwise) */
    assert_int_equal(node_pos(m, c, "l1"), 0);
    assert_int_equal(node_pos(m, c, "l2"), 1);
    assert_int_equal(node_pos(m, c, "l3"), 2);
    assert_int_equal(node_pos(m, c, "l0"), 3);
    const nasc_node *l1 = node_named(m, c, "l1");
    assert_int_equal(l1->attrs.kh, 3);
    assert_int_equal(l1->attrs.kw, 5);
    assert_int_equal(l1->attrs.filters, 36);
    assert_int_equal(l1->loc.line, 8);
    const nasc_node *l0 = node_named(m, c, "l0");
    assert_int_equal(l0->attrs.kh, 1);
    assert_int_equal(l0->attrs.kw, 1);
    assert_int_equal(l0->attrs.stride, 2);
    assert_int_equal(l0->attrs.filters, 0);
    const nasc_node *l3 = node_named(m, c, "l3");
    assert_string_equal(arg_name(m, c, l3, 0), "l2");
    assert_string_equal(arg_name(m, c, l3, 1), "l1");
    assert_int_equal(l3->loc.line, 7);
    nasc_module_destroy(m);
}

static void test_recurrent(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_ok(&ctx,
                             "kind: recurrent\n"
                             "input: 32\n"
                             "channels: 64\n"
                             "classes: 100\n"
                             "cell: rc\n"
                             "cells:\n"
                             "  rc:\n"
                             "    kind: recurrent\n"
                             "    inputs: [x, h]\n"
                             "    nodes:\n"
                             "      - {name: xh, op: linear, in: [x, h]}\n"
                             "      - {name: g, op: sigmoid, in: xh}\n"
                             "      - {op: tanh, in: [xh]}\n"
                             "      - {name: o, op: highway, in: [g, n2, h]}\n",
                             NULL, 0);
    assert_int_equal(m->skel.kind, NASC_NET_RECURRENT);
    assert_int_equal(m->skel.in_c, 32);
    assert_int_equal(m->skel.in_h, 1);
    assert_int_equal(m->skel.in_w, 1);
    assert_int_equal(m->skel.channels, 64);
    const nasc_cell *c = cell_named(m, "rc");
    assert_int_equal(c->kind, NASC_CELL_RECURRENT);
    assert_int_equal(c->n_inputs, 2);
    assert_int_equal(c->out_rule, NASC_OUT_AVG);
    const nasc_node *n2 = node_named(m, c, "n2"); /* unnamed node 2 */
    assert_int_equal(n2->op, NASC_OP_TANH);
    const nasc_node *o = node_named(m, c, "o");
    assert_string_equal(arg_name(m, c, o, 2), "h");
    nasc_module_destroy(m);
}

static void test_overrides(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    /* The YAML value of an overridden key is replaced, even when it is invalid. */
    const char *text = "input: 1x28\n"
                       "channels: 8\n"
                       "stages: 1\n"
                       "normal: c\n"
                       "cells:\n"
                       "  c: {kind: normal, blocks: [[0, sep_conv_3x3, 1, sep_conv_3x3, add]]}\n";
    nasc_override ov[] = {{"input", "3x32x32"}, {"channels", "36"}, {"classes", "100"}};
    nasc_module *m = load_ok(&ctx, text, ov, 3);
    assert_int_equal(m->skel.in_c, 3);
    assert_int_equal(m->skel.in_h, 32);
    assert_int_equal(m->skel.channels, 36);
    assert_int_equal(m->skel.classes, 100);
    assert_int_equal(m->skel.stages, 1);
    nasc_module_destroy(m);

    /* Without the override, the invalid input is reported at its value. */
    expect_error(text, 1, 8, "input must be CxHxW");
    assert_int_equal(n_wrong, 0);

    /* Override errors name the file and the override, not a line. */
    nasc_override bad[][1] = {{{"depth", "3"}}, {{"channels", "-4"}}, {{"input", "1x28"}}};
    const char *subs[] = {"--set depth=3: unknown skeleton key 'depth'",
                          "--set channels=-4: channels must be a positive integer",
                          "--set input=1x28: input must be CxHxW"};
    for (int i = 0; i < 3; i++) {
        m = (nasc_module *)1;
        nasc_status st =
            nasc_yaml_load_string(&ctx, two_cells, strlen(two_cells), "o.yaml", bad[i], 1, &m);
        assert_int_equal(st, NASC_EINPUT);
        assert_null(m);
        assert_string_equal(ctx.diag.file, "o.yaml");
        assert_int_equal(ctx.diag.line, 0);
        if (!strstr(ctx.diag.msg, subs[i])) fail_msg("got '%s'", ctx.diag.msg);
        char buf[600];
        nasc_diag_format(&ctx.diag, buf, sizeof buf);
        assert_true(strncmp(buf, "o.yaml: error: --set ", 21) == 0);
    }
}

/* ---------------------------------------------------------------- */
/* errors                                                            */
/* ---------------------------------------------------------------- */

#define NORMAL_HEAD "normal: c\ncells:\n  c:\n    kind: normal\n"
#define MACRO_HEAD "kind: macro\nbody: c\ncells:\n  c:\n    kind: macro\n    nodes:\n"

static void test_errors(void **state) {
    (void)state;
    /* not a model */
    expect_error("", 1, 1, "empty file");
    expect_error("# only a comment\n\n", 1, 1, "empty file");
    expect_error("just a string\n", 1, 1, "not a YAML model");
    expect_error("- a\n- b\n", 1, 1, "found a sequence");
    expect_error("kind: cells\n--- \nkind: macro\n", 2, 1, "multiple documents");
    expect_error("kind: [cells\n", 2, 1, "YAML syntax error");
    expect_error("kind: cells\n  bad: indent\n", 2, 6, "YAML syntax error");
    expect_error("kind: \"cells\n", 2, 1, "YAML syntax error");
    expect_error("a: \xff\n", 1, 4, "YAML syntax error");
    /* keys and types */
    expect_error("kind: cells\nkind: macro\n", 2, 1, "duplicate key 'kind' in the model (first at line 1)");
    expect_error("knd: cells\n", 1, 1, "unknown key 'knd' in the model (did you mean 'kind'?)");
    expect_error("? [a]\n: 1\n", 1, 3, "keys of the model must be scalars");
    expect_error("kind: mcaro\n", 1, 7, "unknown net kind 'mcaro' (did you mean 'macro'?)");
    expect_error("name: [x]\n", 1, 7, "'name' must be a scalar, found a sequence");
    expect_error("channels: 0\n", 1, 11, "channels must be a positive integer");
    expect_error("kind: macro\ninput: 3\n", 2, 8, "input must be CxHxW");
    expect_error("kind: recurrent\ninput: 3x4x4\n", 2, 8, "input of a recurrent net");
    expect_error("cells: {}\n", 1, 1, "missing key 'normal'");
    expect_error("kind: macro\ncells: {}\n", 1, 1, "missing key 'body'");
    expect_error("kind: recurrent\ncells: {}\n", 1, 1, "missing key 'cell'");
    expect_error("normal: c\n", 1, 1, "missing key 'cells'");
    expect_error("kind: macro\nbody: c\nnormal: c\ncells: {}\n", 3, 1, "'normal' is for cells nets");
    expect_error("normal: c\ncells: [c]\n", 2, 8, "'cells' must be a mapping, found a sequence");
    expect_error("normal: c\ncells:\n  c: 3\n", 3, 6, "cell 'c' must be a mapping, found a scalar");
    expect_error("normal: c\ncells:\n  c/1: {}\n", 3, 3, "invalid cell name 'c/1'");
    expect_error("normal: zz\ncells:\n  c: {kind: normal, blocks: [[0, identity, 1, identity, add]]}\n",
                 1, 9, "'normal' names cell 'zz', which is not defined");
    expect_error("kind: macro\nbody: c\ncells:\n  c: {kind: normal, blocks: [[0, identity, 1, identity, add]]}\n",
                 2, 7, "'body' must name a macro cell, but cell 'c' is a normal cell");
    /* cells */
    expect_error(NORMAL_HEAD "    kin: normal\n", 5, 5, "unknown key 'kin' in cell 'c'");
    expect_error("normal: c\ncells:\n  c: {blocks: []}\n", 3, 6, "cell 'c' has no 'kind'");
    expect_error(NORMAL_HEAD "    kind: normal\n", 5, 5, "duplicate key 'kind' in cell 'c' (first at line 4)");
    expect_error("normal: c\ncells:\n  c: {kind: norml}\n", 3, 13, "unknown cell kind 'norml' (did you mean 'normal'?)");
    expect_error(NORMAL_HEAD "    inputs: [x, h]\n", 5, 5, "'inputs' is for recurrent cells only");
    expect_error("kind: recurrent\ncell: c\ncells:\n  c: {kind: recurrent, inputs: [x, c]}\n", 4, 32,
                 "recurrent cell inputs must be [x, h] or [x, h, c]");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    blocks: []\n", 8, 5,
                 "'blocks' are for normal and reduction cells");
    expect_error(NORMAL_HEAD "    blocks: {a: 1}\n", 5, 13, "'blocks' must be a sequence, found a mapping");
    expect_error(NORMAL_HEAD "    blocks:\n      - h2\n", 6, 9, "a block must be a sequence, found a scalar");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, add, add]\n", 6, 9,
                 "found 6 items");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, add, 1, sep_conv_3x3, add]\n", 6, 13,
                 "op 'add' cannot be a block's input op");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, identity]\n", 6, 44,
                 "a block's combine op must be add or concat");
    expect_error(NORMAL_HEAD "    blocks:\n      - [-1, sep_conv_3x3, 1, sep_conv_3x3, add]\n", 6, 10,
                 "input index -1 out of range: block 0 may use 0..1");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, sep_conv_3x3, 1, sep_conv_3x3, add]\n"
                             "      - [0, sep_conv_3x3, 3, sep_conv_3x3, add]\n", 7, 27,
                 "input index 3 out of range: block 1 may use 0..2");
    expect_error(NORMAL_HEAD "    blocks:\n      - [[0], sep_conv_3x3, 1, sep_conv_3x3, add]\n", 6, 10,
                 "an input reference must be a scalar");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, none, 1, sep_conv_3x3, add]\n", 6, 13,
                 "the 'none' op (zero) is not part of a final architecture");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, maxpool_3x3, 1, sep_conv_3x3, add]\n", 6, 13,
                 "unknown op 'maxpool_3x3' (did you mean 'max_pool_3x3'?)");
    expect_error(NORMAL_HEAD "    blocks:\n      - [0, frobnicate, 1, sep_conv_3x3, add]\n", 6, 13,
                 "unknown op 'frobnicate'");
    /* nodes */
    expect_error(MACRO_HEAD "      - [conv]\n", 7, 9, "a node must be a mapping, found a sequence");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3, size: 2}\n", 7, 49,
                 "unknown key 'size' in node 0 of cell 'c'");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, kernel: 3}\n", 7, 9, "node 'a' has no 'in'");
    expect_error(MACRO_HEAD "      - {op: conv, in: [x], kernel: 3}\n      - {in: [x]}\n", 8, 9,
                 "node 'n1' has no 'op'");
    expect_error(MACRO_HEAD "      - {name: 1a, op: conv, in: [x], kernel: 3}\n", 7, 16, "invalid node name '1a'");
    expect_error(MACRO_HEAD "      - {name: x, op: conv, in: [x], kernel: 3}\n", 7, 9,
                 "node name 'x' shadows an input of macro cell 'c'");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n"
                            "      - {name: a, op: conv, in: [a], kernel: 3}\n", 8, 9,
                 "duplicate node name 'a' in cell 'c' (first at line 7)");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [0], kernel: 3}\n", 7, 34,
                 "integers name inputs only inside blocks");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n"
                            "      - {name: b, op: add, in: [a, y]}\n", 8, 36,
                 "unknown input 'y' in cell 'c': not an input");
    expect_error(MACRO_HEAD "      - {name: abc, op: conv, in: [x], kernel: 3}\n"
                            "      - {name: b, op: add, in: [abd]}\n", 8, 33,
                 "unknown input 'abd' in cell 'c' (did you mean 'abc'?)");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: {x: 1}, kernel: 3}\n", 7, 33,
                 "'in' must be a sequence, found a mapping");
    expect_error(MACRO_HEAD "      - {name: a, op: mul, in: [x]}\n", 7, 32, "op 'mul' takes 2 inputs, found 1");
    expect_error(MACRO_HEAD "      - {name: a, op: add, in: []}\n", 7, 32, "op 'add' needs at least one input");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x]}\n", 7, 9, "op 'conv' needs a 'kernel'");
    expect_error(MACRO_HEAD "      - {name: a, op: identity, in: [x], filters: 3}\n", 7, 42,
                 "op 'identity' does not take 'filters' (its attributes: stride)");
    expect_error(MACRO_HEAD "      - {name: a, op: add, in: [x], stride: 2}\n", 7, 37,
                 "op 'add' does not take 'stride' (its attributes: none)");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3x0}\n", 7, 46, "kernel must be KHxKW or K");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: [3, 3]}\n", 7, 46, "kernel must be KHxKW or K, found a sequence");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3, filters: -2}\n", 7, 58,
                 "filters must be a positive integer");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3, stride: two}\n", 7, 57,
                 "stride must be a positive integer");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [a], kernel: 3}\n", 7, 9, "cycle: a -> a");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [c], kernel: 3}\n"
                            "      - {name: b, op: conv, in: [a], kernel: 3}\n"
                            "      - {name: c, op: conv, in: [b], kernel: 3}\n", 8, 9,
                 "cycle: b -> c -> a -> b");
    /* outputs */
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: cat\n", 8, 13,
                 "unknown output rule 'cat'");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: state\n", 8, 13,
                 "'state' is for recurrent cells only");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: {rule: sum, to: [a]}\n",
                 8, 25, "unknown key 'to' in the output of cell 'c'");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: {from: [b]}\n", 8, 21,
                 "unknown input 'b' in cell 'c': not an input");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: {from: []}\n", 8, 20,
                 "'from' lists no values");
    expect_error(MACRO_HEAD "      - {name: a, op: conv, in: [x], kernel: 3}\n    output: [a]\n", 8, 13,
                 "an output rule must be a scalar");
    assert_int_equal(n_wrong, 0);
}

/* Aliases and unusual but valid spellings. */
/* n opening brackets (then n closing ones when closed): a 400 kB file at n = 200,000. */
static char *nested(const char *open, const char *close, size_t n, bool closed) {
    size_t lo = strlen(open), lc = strlen(close);
    char *t = malloc(n * (lo + lc) + 2);
    assert_non_null(t);
    char *p = t;
    for (size_t i = 0; i < n; i++, p += lo) memcpy(p, open, lo);
    if (closed)
        for (size_t i = 0; i < n; i++, p += lc) memcpy(p, close, lc);
    *p++ = '\n';
    *p = 0;
    return t;
}

/* Deep nesting is refused at the first collection past the limit. Before
 * the limit, libyaml's loader took minutes over 200,000 '[' (its scanner
 * rescans every open flow level on each token); the check below keeps the
 * CPU time far under that, whatever the machine's load. */
static void test_deep_nesting(void **state) {
    (void)state;
    char msg[64];
    snprintf(msg, sizeof msg, "nested more than %d levels deep", NASC_YAML_MAX_DEPTH);
    clock_t t0 = clock();
    char *t = nested("[", "]", 200000, true);
    expect_error(t, 1, NASC_YAML_MAX_DEPTH + 1, msg);
    free(t);
    t = nested("[", "]", 200000, false); /* unclosed: still the depth error first */
    expect_error(t, 1, NASC_YAML_MAX_DEPTH + 1, msg);
    free(t);
    t = nested("{a: ", "}", 100000, true);
    expect_error(t, 1, 4 * NASC_YAML_MAX_DEPTH + 1, msg);
    free(t);
    t = nested("- ", "", 100000, false); /* block sequences, one per column */
    expect_error(t, 1, 2 * NASC_YAML_MAX_DEPTH + 1, msg);
    free(t);
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(cpu < 10.0);
    /* At the limit the nesting is accepted, and the file is judged as a model. */
    t = nested("[", "]", NASC_YAML_MAX_DEPTH, true);
    expect_error(t, 1, 1, "found a sequence");
    free(t);
    assert_int_equal(n_wrong, 0);
}

static void test_spellings(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_ok(&ctx,
                             "kind: macro\n"
                             "body: c\n"
                             "cells:\n"
                             "  c:\n"
                             "    kind: macro\n"
                             "    nodes:\n"
                             "      - {name: a, op: conv_7x1_1x7, in: x}\n"
                             "      - {name: b, op: skip_connect, in: a, stride: 1}\n"
                             "      - {name: c_2, op: conv, in: [b], kernel: \"1x7\", filters: 8}\n"
                             "    output: {rule: avg}\n",
                             NULL, 0);
    const nasc_cell *c = cell_named(m, "c");
    assert_int_equal(node_named(m, c, "a")->op, NASC_OP_CONV_1X7_7X1);
    assert_int_equal(node_named(m, c, "b")->op, NASC_OP_IDENTITY);
    assert_int_equal(node_named(m, c, "b")->attrs.stride, 1);
    assert_int_equal(node_named(m, c, "c_2")->attrs.kw, 7);
    assert_int_equal(c->out_rule, NASC_OUT_AVG);
    assert_int_equal(c->n_outs, 0);
    nasc_module_destroy(m);
}

/* ---------------------------------------------------------------- */
/* files                                                             */
/* ---------------------------------------------------------------- */

/* Each tests/bad/yaml file starts with "# expect: LINE:COL: SUBSTRING". */
static void test_bad_corpus(void **state) {
    (void)state;
    char *dir = nasc_test_path("tests/bad/yaml");
    assert_non_null(dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int checked = 0, lowered = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "tests/bad/yaml/%s", e->d_name);
        char *text = nasc_test_read(rel, NULL);
        assert_non_null(text);
        int line = 0, col = 0, used = 0;
        if (sscanf(text, "# expect: %d:%d: %n", &line, &col, &used) != 2 || used == 0)
            fail_msg("%s: no '# expect: LINE:COL: SUBSTRING' first line", rel);
        char sub[256];
        size_t k = 0;
        for (const char *p = text + used; *p && *p != '\n' && k + 1 < sizeof sub; p++) sub[k++] = *p;
        sub[k] = 0;
        free(text);

        char *path = nasc_test_path(rel);
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *m = NULL;
        nasc_status st = nasc_model_load(&ctx, path, NULL, 0, &m);
        if (st == NASC_OK) {
            /* Only shape errors survive loading: nasc_lower finds them. */
            nasc_module *p = NULL;
            st = nasc_lower(m, &p);
            nasc_module_destroy(p);
            nasc_module_destroy(m);
            lowered++;
        }
        if (st != NASC_EINPUT || ctx.diag.line != line || ctx.diag.col != col ||
            !strstr(ctx.diag.msg, sub) || strcmp(ctx.diag.file, path) != 0) {
            nasc_diag_print(&ctx.diag, stderr);
            fail_msg("%s: expected %d:%d: %s", rel, line, col, sub);
        }
        free(path);
        checked++;
    }
    closedir(d);
    free(dir);
    assert_true(checked >= 18);
    assert_int_equal(lowered, 2); /* shape_mismatch.yaml, groups_channels.yaml */
}

static char *write_temp(const char *suffix, const char *text) {
    static int counter;
    char *path = malloc(256);
    assert_non_null(path);
    snprintf(path, 256, "/tmp/nasc_test_yaml_%d_%d%s", (int)getpid(), counter++, suffix);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_files(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL;

    /* nasc_file_read */
    char *data = NULL;
    size_t len = 0;
    char *path = write_temp(".yml", two_cells);
    assert_int_equal(nasc_file_read(&ctx, path, &data, &len), NASC_OK);
    assert_int_equal(len, strlen(two_cells));
    assert_string_equal(data, two_cells);
    nasc_free(&ctx, data);
    assert_int_equal(nasc_file_read(&ctx, "/nonexistent/x.yaml", &data, &len), NASC_EINPUT);
    assert_null(data);
    assert_string_equal(ctx.diag.file, "/nonexistent/x.yaml");
    assert_non_null(strstr(ctx.diag.msg, "No such file or directory"));
    assert_int_equal(nasc_file_read(&ctx, "/tmp", &data, &len), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "Is a directory"));

    /* nasc_model_load by extension */
    assert_int_equal(nasc_model_load(&ctx, path, NULL, 0, &m), NASC_OK);
    assert_string_equal(m->source, path);
    assert_int_equal(m->n_cells, 2);
    nasc_module_destroy(m);
    nasc_override ov = {"stages", "4"};
    assert_int_equal(nasc_yaml_load_file(&ctx, path, &ov, 1, &m), NASC_OK);
    assert_int_equal(m->skel.stages, 4);
    nasc_module_destroy(m);
    unlink(path);
    free(path);
    m = (nasc_module *)1;
    assert_int_equal(nasc_model_load(&ctx, "model.json", NULL, 0, &m), NASC_EINPUT);
    assert_null(m);
    assert_string_equal(ctx.diag.file, "model.json");
    assert_non_null(strstr(ctx.diag.msg, ".yaml"));
    assert_non_null(strstr(ctx.diag.msg, ".nir"));
    assert_int_equal(nasc_model_load(&ctx, "/nonexistent/m.yaml", NULL, 0, &m), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "No such file"));
    /* diagnostics carry the path */
    path = write_temp(".yaml", "kind: cells\nbogus: 1\n");
    assert_int_equal(nasc_model_load(&ctx, path, NULL, 0, &m), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, path);
    assert_int_equal(ctx.diag.line, 2);
    unlink(path);
    free(path);
}

/* .nir models: overrides apply to arch modules and are an error for prim ones. */
static void test_nir(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL;
    const char *arch = "arch {\n"
                       "  kind cells\n"
                       "  input 1x28x28\n"
                       "  classes 10\n"
                       "  channels 16\n"
                       "  cells_per_stage 2\n"
                       "  stages 1\n"
                       "  stem_multiplier 3\n"
                       "  normal @n\n"
                       "}\n"
                       "\n"
                       "cell @n normal (%h2, %h1) {\n"
                       "  %b0a = sep_conv_3x3 %h2\n"
                       "  %b0b = sep_conv_3x3 %h1\n"
                       "  %b0 = add %b0a, %b0b\n"
                       "  out concat\n"
                       "}\n";
    char *path = write_temp(".nir", arch);
    nasc_override ov[] = {{"channels", "20"}, {"input", "3x32x32"}};
    nasc_status st = nasc_model_load(&ctx, path, ov, 2, &m);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_int_equal(m->skel.channels, 20);
    assert_int_equal(m->skel.in_c, 3);
    nasc_module_destroy(m);
    nasc_override bad = {"channels", "x"};
    assert_int_equal(nasc_model_load(&ctx, path, &bad, 1, &m), NASC_EINPUT);
    assert_null(m);
    assert_int_equal(ctx.diag.line, 0);
    assert_non_null(strstr(ctx.diag.msg, "--set channels=x: "));
    unlink(path);
    free(path);

    const char *prim = "prim {\n"
                       "  input %x : f32[N,4]\n"
                       "  %y = relu %x : f32[N,4]\n"
                       "  output %y\n"
                       "}\n";
    path = write_temp(".nir", prim);
    st = nasc_model_load(&ctx, path, NULL, 0, &m);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_int_equal(m->dialect, NASC_DIALECT_PRIM);
    nasc_module_destroy(m);
    assert_int_equal(nasc_model_load(&ctx, path, ov, 1, &m), NASC_EINPUT);
    assert_null(m);
    assert_non_null(strstr(ctx.diag.msg, "--set applies to arch models only"));
    unlink(path);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_cells),
        cmocka_unit_test(test_integer_refs),
        cmocka_unit_test(test_forward_refs_sorted),
        cmocka_unit_test(test_recurrent),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_bad_corpus),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_nir),
    };
    return cmocka_run_group_tests_name("frontend/yaml", tests, NULL, NULL);
}
