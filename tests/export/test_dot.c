/* Tests of the graphviz writers (export/dot.c). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nasc_export.h"

/* A cells net with one normal cell:
 *   %a = sep_conv_3x3 %h2
 *   %b = max_pool_3x3 %h1
 *   %c = add %a, %b
 *   %d = conv %c {kernel=1x7, filters=8}
 *   out concat            (loose ends: %d only)
 * and one reduction cell with an explicit `out sum %p, %q`. */
static nasc_module *build_arch(nasc_ctx *ctx, const char *source) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_ARCH, source);
    assert_non_null(m);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);

    int normal = nasc_cell_begin(m, "norm", NASC_CELL_NORMAL, 2, NASC_NOLOC);
    assert_int_equal(normal, 0);
    uint32_t h2 = 0, h1 = 1;
    uint32_t a = nasc_cell_add_node(m, NASC_OP_SEP_CONV_3X3, &h2, 1, NULL, "a", NASC_NOLOC);
    uint32_t b = nasc_cell_add_node(m, NASC_OP_MAX_POOL_3X3, &h1, 1, NULL, "b", NASC_NOLOC);
    uint32_t ab[2] = {a, b};
    uint32_t c = nasc_cell_add_node(m, NASC_OP_ADD, ab, 2, NULL, "c", NASC_NOLOC);
    nasc_node_attrs at = {.kh = 1, .kw = 7, .filters = 8, .stride = 0};
    uint32_t d = nasc_cell_add_node(m, NASC_OP_CONV, &c, 1, &at, "d", NASC_NOLOC);
    assert_int_equal(a, 2);
    assert_int_equal(b, 3);
    assert_int_equal(c, 4);
    assert_int_equal(d, 5);
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);

    int red = nasc_cell_begin(m, "red", NASC_CELL_REDUCTION, 2, NASC_NOLOC);
    assert_int_equal(red, 1);
    uint32_t p = nasc_cell_add_node(m, NASC_OP_MAX_POOL_3X3, &h2, 1, NULL, "p", NASC_NOLOC);
    uint32_t q = nasc_cell_add_node(m, NASC_OP_IDENTITY, &h1, 1, NULL, "q", NASC_NOLOC);
    uint32_t pq[2] = {p, q};
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_SUM, pq, 2), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);

    sk.normal_cell = normal;
    sk.reduction_cell = red;
    nasc_net_set_skeleton(m, &sk);
    return m;
}

/* input x (N,1,8,8) -> conv 3x3 (4 filters) [stem] -> relu [cell0]
 * -> global_avg_pool, flatten [head]; output the flattened vector. */
static nasc_module *build_prim(nasc_ctx *ctx) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "prim-test");
    assert_non_null(m);
    nasc_type tx = {NASC_F32, 4, {NASC_BATCH, 1, 8, 8}};
    nasc_type tw = {NASC_F32, 4, {4, 1, 3, 3}};
    uint32_t x = nasc_prim_add_input(m, "x", &tx);
    uint32_t w = nasc_prim_add_param(m, "stem.w", &tw);
    assert_int_equal(x, 0);
    assert_int_equal(w, 1);
    nasc_prim_attrs ca = nasc_prim_attrs_default();
    ca.kh = ca.kw = 3;
    ca.pt = ca.pl = ca.pb = ca.pr = 1;
    uint32_t xw[2] = {x, w};
    uint32_t conv = nasc_prim_add_op(m, NASC_PRIM_CONV, xw, 2, &ca, "stem.conv", "stem", NASC_NOLOC);
    nasc_prim_attrs none = nasc_prim_attrs_default();
    uint32_t relu = nasc_prim_add_op(m, NASC_PRIM_RELU, &conv, 1, &none, "cell0.relu", "cell0",
                                     NASC_NOLOC);
    uint32_t gap = nasc_prim_add_op(m, NASC_PRIM_GLOBAL_AVG_POOL, &relu, 1, &none, "head.gap",
                                    "head", NASC_NOLOC);
    uint32_t flat = nasc_prim_add_op(m, NASC_PRIM_FLATTEN, &gap, 1, &none, "head.flat", "head",
                                     NASC_NOLOC);
    assert_int_equal(conv, 2);
    assert_int_equal(relu, 3);
    assert_int_equal(gap, 4);
    assert_int_equal(flat, 5);
    assert_int_equal(nasc_prim_add_output(m, flat), NASC_OK);
    return m;
}

#define assert_has(hay, needle)                                                    \
    do {                                                                           \
        if (!strstr((hay), (needle)))                                              \
            fail_msg("expected to find [%s] in the DOT output:\n%s", (needle), (hay)); \
    } while (0)
#define assert_lacks(hay, needle)                                                  \
    do {                                                                           \
        if (strstr((hay), (needle)))                                               \
            fail_msg("did not expect [%s] in the DOT output:\n%s", (needle), (hay)); \
    } while (0)

/* Graphviz is a declared dependency: a missing `dot` is a failure, not a skip. */
static void assert_dot_renders(const char *text) {
    if (system("command -v dot >/dev/null 2>&1") != 0)
        fail_msg("graphviz `dot` is not on PATH; it is a declared dependency "
                 "(scripts/install-deps.sh installs it)");
    char path[] = "/tmp/nasc_test_dot_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "dot -Tsvg -o /dev/null %s", path);
    int st = system(cmd);
    unlink(path);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("`dot -Tsvg` rejected the output (status %d):\n%s", st, text);
}

static void test_arch_dot(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = build_arch(&ctx, "cells.yaml");
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_dot_arch(m, &b), NASC_OK);
    const char *s = b.data;

    assert_true(strncmp(s, "digraph ", 8) == 0);
    assert_true(b.len > 2 && strcmp(s + b.len - 2, "}\n") == 0);
    /* the skeleton summary */
    assert_has(s, "skeleton [shape=note");
    assert_has(s, "cells net\\ninput 1x28x28\\nclasses 10\\nchannels 16");
    assert_has(s, "normal @norm");
    assert_has(s, "reduction @red");
    /* one cluster per cell */
    assert_has(s, "subgraph cluster_c0 {");
    assert_has(s, "label=\"@norm (normal)\"");
    assert_has(s, "subgraph cluster_c1 {");
    assert_has(s, "label=\"@red (reduction)\"");
    /* inputs are boxes, nodes carry op and attributes */
    assert_has(s, "c0_v0 [shape=box");
    assert_has(s, "label=\"%h2\"");
    assert_has(s, "label=\"%h1\"");
    assert_has(s, "c0_v2 [shape=ellipse, label=\"%a\\nsep_conv_3x3\"]");
    assert_has(s, "c0_v4 [shape=circle, label=\"%c\\nadd\"]");
    assert_has(s, "label=\"%d\\nconv\\n{kernel=1x7, filters=8}\"");
    /* operand edges */
    assert_has(s, "c0_v0 -> c0_v2;");
    assert_has(s, "c0_v1 -> c0_v3;");
    assert_has(s, "c0_v2 -> c0_v4;");
    assert_has(s, "c0_v3 -> c0_v4;");
    assert_has(s, "c0_v4 -> c0_v5;");
    /* output rules: loose ends (only %d) and an explicit sum */
    assert_has(s, "label=\"out concat\\n(loose ends)\"");
    assert_has(s, "c0_v5 -> c0_out;");
    assert_lacks(s, "c0_v4 -> c0_out;");
    assert_lacks(s, "c0_v2 -> c0_out;");
    assert_has(s, "label=\"out sum\"");
    assert_has(s, "c1_v2 -> c1_out;");
    assert_has(s, "c1_v3 -> c1_out;");

    assert_dot_renders(s);
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

static void test_prim_dot(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = build_prim(&ctx);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_dot_prim(m, &b), NASC_OK);
    const char *s = b.data;

    assert_true(strncmp(s, "digraph ", 8) == 0);
    assert_has(s, "v0 [shape=box");
    assert_has(s, "input %x\\nf32[N,1,8,8]");
    /* clusters per group, in first-use order, with their parameter count */
    const char *stem = strstr(s, "subgraph cluster_g0 {");
    const char *cell = strstr(s, "subgraph cluster_g1 {");
    const char *head = strstr(s, "subgraph cluster_g2 {");
    assert_non_null(stem);
    assert_non_null(cell);
    assert_non_null(head);
    assert_true(stem < cell && cell < head);
    assert_has(s, "label=\"stem: 1 op(s), 36 param(s)\"");
    assert_has(s, "label=\"cell0: 1 op(s), 0 param(s)\"");
    assert_has(s, "label=\"head: 2 op(s), 0 param(s)\"");
    /* ops show name, op, attributes and result type */
    assert_has(s, "label=\"%stem.conv\\nconv 3x3 pad 1,1,1,1\\nf32[N,4,8,8]\"");
    assert_has(s, "label=\"%cell0.relu\\nrelu\\nf32[N,4,8,8]\"");
    assert_has(s, "label=\"%head.gap\\nglobal_avg_pool\\nf32[N,4,1,1]\"");
    /* edges between ops; parameters are not drawn */
    assert_has(s, "v0 -> v2;");
    assert_has(s, "v2 -> v3;");
    assert_has(s, "v3 -> v4;");
    assert_has(s, "v4 -> v5;");
    assert_lacks(s, "v1 ->");
    assert_lacks(s, "stem.w");
    assert_has(s, "out0 [shape=doubleoctagon");
    assert_has(s, "v5 -> out0;");

    assert_dot_renders(s);
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

/* Names with quotes and backslashes must not break the DOT syntax. */
static void test_escaping(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = build_arch(&ctx, "we\"ird\\na\nme.yaml");
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_dot_arch(m, &b), NASC_OK);
    assert_has(b.data, "label=\"we\\\"ird\\\\na\\nme.yaml (arch)\"");
    assert_dot_renders(b.data);
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

static void test_wrong_dialect(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = build_arch(&ctx, "a.yaml");
    nasc_module *p = build_prim(&ctx);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_dot_prim(a, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "prim module"));
    assert_int_equal(nasc_dot_arch(p, &b), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "arch module"));
    assert_int_equal(b.len, 0);
    nasc_buf_free(&b);
    nasc_module_destroy(p);
    nasc_module_destroy(a);
}

/* Every allocation the writers make may fail: they report NASC_ENOMEM and
 * free what they took. The modules are built first; then the n-th
 * allocation after that fails, for every n until the writer succeeds. */
static void run_failing(nasc_module *m, nasc_test_alloc *ta, bool arch) {
    long base_live = ta->live;
    long k = 1;
    for (;; k++) {
        ta->fail_at = ta->count + k;
        ta->failed = false;
        nasc_buf b;
        nasc_buf_init(&b, m->ctx);
        nasc_status st = arch ? nasc_dot_arch(m, &b) : nasc_dot_prim(m, &b);
        nasc_buf_free(&b);
        assert_int_equal(ta->live, base_live);
        if (!ta->failed) {
            assert_int_equal(st, NASC_OK);
            break;
        }
        assert_int_equal(st, NASC_ENOMEM);
        assert_int_equal(m->ctx->diag.status, NASC_ENOMEM);
    }
    assert_true(k > 1); /* at least one allocation was made and failed */
    ta->fail_at = 0;
}

static void test_failing_alloc(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *a = build_arch(&ctx, "a.yaml");
    nasc_module *p = build_prim(&ctx);
    run_failing(a, &ta, true);
    run_failing(p, &ta, false);
    nasc_module_destroy(p);
    nasc_module_destroy(a);
    assert_int_equal(ta.live, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_dot),     cmocka_unit_test(test_prim_dot),
        cmocka_unit_test(test_escaping),     cmocka_unit_test(test_wrong_dialect),
        cmocka_unit_test(test_failing_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
