/* Text IR: hand-written round trips, parse errors with exact locations, the
 * bad-input corpus (tests/bad/text), and failing allocations. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *const TWO_CELL =
    "arch {\n"
    "  kind cells\n"
    "  input 3x32x32\n"
    "  classes 10\n"
    "  channels 16\n"
    "  cells_per_stage 2\n"
    "  stages 3\n"
    "  stem_multiplier 3\n"
    "  normal @darts_normal\n"
    "  reduction @darts_reduction\n"
    "}\n"
    "\n"
    "cell @darts_normal normal (%h2, %h1) {\n"
    "  %b0a = sep_conv_3x3 %h2\n"
    "  %b0b = sep_conv_3x3 %h1\n"
    "  %b0 = add %b0a, %b0b\n"
    "  %b1a = identity %h1\n"
    "  %b1b = dil_conv_3x3 %b0\n"
    "  %b1 = add %b1a, %b1b\n"
    "  out concat %b0, %b1\n"
    "}\n"
    "\n"
    "cell @darts_reduction reduction (%h2, %h1) {\n"
    "  %b0a = max_pool_3x3 %h2\n"
    "  %b0b = factorized_reduce %h1 {filters=16}\n"
    "  %b0 = add %b0a, %b0b\n"
    "  %b1 = concat %b0, %b0a\n"
    "  %b2 = conv_1x7_7x1 %b1 {stride=1}\n"
    "  out sum\n"
    "}\n";

static const char *const MACRO =
    "arch {\n"
    "  kind macro\n"
    "  input 1x28x28\n"
    "  classes 10\n"
    "  channels 24\n"
    "  cells_per_stage 2\n"
    "  stages 3\n"
    "  stem_multiplier 1\n"
    "  normal @body\n"
    "}\n"
    "\n"
    "cell @body macro (%x) {\n"
    "  %l0 = conv %x {kernel=3x5, filters=36}\n"
    "  %l1 = conv %l0 {kernel=5x5, filters=36, stride=1}\n"
    "  %l2 = add %l0, %l1\n"
    "  %l3 = max_pool_3x3 %l2 {stride=2}\n"
    "  %l4 = conv %l3 {kernel=1x7, filters=48}\n"
    "  out concat\n"
    "}\n";

static const char *const RECURRENT =
    "arch {\n"
    "  kind recurrent\n"
    "  input 32\n"
    "  classes 100\n"
    "  channels 64\n"
    "  cells_per_stage 2\n"
    "  stages 3\n"
    "  stem_multiplier 3\n"
    "  normal @rnn\n"
    "}\n"
    "\n"
    "cell @rnn recurrent (%x, %h, %c) {\n"
    "  %g = linear %x, %h\n"
    "  %s = sigmoid %g\n"
    "  %t = tanh %g\n"
    "  %hw = highway %s, %t, %h\n"
    "  %m = mul %s, %c\n"
    "  %r = relu %m\n"
    "  %i = identity %r\n"
    "  %ct = add %i, %hw\n"
    "  out state %hw, %ct\n"
    "}\n";

static const char *const PRIM_ALL =
    "prim {\n"
    "  input %x : f32[N,3,8,8]\n"
    "  param %w : f32[4,3,3,3]\n"
    "  param %g : f32[4]\n"
    "  param %b : f32[4]\n"
    "  param %fc.w : f32[10,16]\n"
    "  param %fc.b : f32[10]\n"
    "  group stem\n"
    "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,8,8]\n"
    "  %bn = batch_norm %c, %g, %b {eps=9.99999975e-06} : f32[N,4,8,8]\n"
    "  %r = relu %bn : f32[N,4,8,8]\n"
    "  %t = tanh %r : f32[N,4,8,8]\n"
    "  %s = sigmoid %t : f32[N,4,8,8]\n"
    "  %i = identity %s : f32[N,4,8,8]\n"
    "  group cell0\n"
    "  %mp = max_pool %i {kernel=3x3, stride=2x2, pad=1,1,1,1} : f32[N,4,4,4]\n"
    "  %ap = avg_pool %i {kernel=3x3, stride=2x2, pad=1,1,1,1, count_include_pad=0} : f32[N,4,4,4]\n"
    "  %sh = shift %i {offset=1,0} : f32[N,4,8,8]\n"
    "  %sp = max_pool %sh {kernel=2x2, stride=2x2, pad=0,0,0,0} : f32[N,4,4,4]\n"
    "  %a = add %mp, %ap, %sp : f32[N,4,4,4]\n"
    "  %m = mul %a, %mp : f32[N,4,4,4]\n"
    "  %cat = concat %a, %m, %mp, %ap {axis=1} : f32[N,16,4,4]\n"
    "  group head\n"
    "  %gap = global_avg_pool %cat : f32[N,16,1,1]\n"
    "  %fl = flatten %gap : f32[N,16]\n"
    "  %fc = inner_product %fl, %fc.w, %fc.b : f32[N,10]\n"
    "  %sm = softmax %fc {axis=1} : f32[N,10]\n"
    "  output %sm\n"
    "  output %cat\n"
    "}\n";

/* The empty group prints as a bare `group`; a group may come back. */
static const char *const PRIM_GROUPS =
    "prim {\n"
    "  input %x : f32[N,2]\n"
    "  group\n"
    "  %a = relu %x : f32[N,2]\n"
    "  group g1\n"
    "  %b = tanh %a : f32[N,2]\n"
    "  group\n"
    "  %c = sigmoid %b : f32[N,2]\n"
    "  group g1\n"
    "  %d = add %c, %a, %b : f32[N,2]\n"
    "  output %d\n"
    "}\n";

/* ------------------------------------------------------------ helpers */

static nasc_module *parse_ok(nasc_ctx *ctx, const char *text) {
    nasc_module *m = NULL;
    nasc_status st = nasc_text_parse(ctx, text, strlen(text), "t.nir", &m);
    if (st) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("parse failed");
    }
    assert_non_null(m);
    return m;
}

static void check_roundtrip(const char *text) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = parse_ok(&ctx, text);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_text_print(m, &b), NASC_OK);
    assert_string_equal(b.data, text);
    /* and once more from the printed bytes */
    nasc_module *m2 = parse_ok(&ctx, b.data);
    nasc_buf b2;
    nasc_buf_init(&b2, &ctx);
    assert_int_equal(nasc_text_print(m2, &b2), NASC_OK);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    nasc_buf_free(&b);
    nasc_buf_free(&b2);
    nasc_module_destroy(m);
    nasc_module_destroy(m2);
    assert_int_equal(ta.live, 0);
}

static void test_roundtrip_two_cell(void **state) {
    (void)state;
    check_roundtrip(TWO_CELL);
}
static void test_roundtrip_macro(void **state) {
    (void)state;
    check_roundtrip(MACRO);
}
static void test_roundtrip_recurrent(void **state) {
    (void)state;
    check_roundtrip(RECURRENT);
}
static void test_roundtrip_prim(void **state) {
    (void)state;
    check_roundtrip(PRIM_ALL);
    check_roundtrip(PRIM_GROUPS);
}

/* The parsed module holds what the text says, with token locations. */
static void test_parsed_content(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = parse_ok(&ctx, TWO_CELL);
    assert_int_equal(m->dialect, NASC_DIALECT_ARCH);
    assert_true(m->has_skeleton);
    assert_int_equal(m->skel.kind, NASC_NET_CELLS);
    assert_int_equal(m->skel.in_c, 3);
    assert_int_equal(m->skel.in_h, 32);
    assert_int_equal(m->skel.channels, 16);
    assert_int_equal(m->skel.normal_cell, 0);
    assert_int_equal(m->skel.reduction_cell, 1);
    assert_int_equal(m->skel.loc.line, 1);
    assert_int_equal(m->skel.loc.col, 1);
    assert_int_equal(m->n_cells, 2);
    const nasc_cell *c = &m->cells[0];
    assert_string_equal(nasc_str(m, c->name), "darts_normal");
    assert_int_equal(c->n_inputs, 2);
    assert_int_equal(c->n_nodes, 6);
    assert_int_equal(c->loc.line, 13);
    assert_int_equal(c->loc.col, 1);
    assert_int_equal(c->out_loc.line, 20);
    assert_int_equal(c->out_loc.col, 3);
    assert_int_equal(c->n_outs, 2);
    assert_int_equal(m->args[c->first_out], 2 + 2); /* %b0 is node 2 */
    assert_int_equal(m->args[c->first_out + 1], 2 + 5);
    const nasc_node *n = &m->nodes[c->first_node + 2];
    assert_int_equal(n->op, NASC_OP_ADD);
    assert_int_equal(n->n_args, 2);
    assert_int_equal(m->args[n->first_arg], 2);
    assert_int_equal(m->args[n->first_arg + 1], 3);
    assert_int_equal(n->loc.line, 16);
    assert_int_equal(n->loc.col, 3);
    const nasc_cell *r = &m->cells[1];
    assert_int_equal(r->n_outs, 0);
    assert_int_equal(r->out_rule, NASC_OUT_SUM);
    assert_int_equal(m->nodes[r->first_node + 1].attrs.filters, 16);
    assert_int_equal(m->nodes[r->first_node + 4].attrs.stride, 1);
    nasc_module_destroy(m);

    m = parse_ok(&ctx, MACRO);
    n = &m->nodes[m->cells[0].first_node + 1];
    assert_int_equal(n->op, NASC_OP_CONV);
    assert_int_equal(n->attrs.kh, 5);
    assert_int_equal(n->attrs.kw, 5);
    assert_int_equal(n->attrs.filters, 36);
    assert_int_equal(n->attrs.stride, 1);
    assert_int_equal(m->nodes[0].attrs.kh, 3);
    assert_int_equal(m->nodes[0].attrs.kw, 5);
    nasc_module_destroy(m);

    m = parse_ok(&ctx, PRIM_ALL);
    assert_int_equal(m->dialect, NASC_DIALECT_PRIM);
    assert_int_equal(m->n_prims, 17);
    assert_int_equal(m->n_outputs, 2);
    const nasc_prim *p = &m->prims[0];
    assert_int_equal(p->op, NASC_PRIM_CONV);
    assert_int_equal(p->a.pt, 1);
    assert_int_equal(p->loc.line, 9);
    assert_int_equal(p->loc.col, 3);
    assert_string_equal(nasc_str(m, p->group), "stem");
    assert_true(m->prims[1].a.eps == 1e-5f);
    assert_string_equal(nasc_str(m, m->prims[6].group), "cell0");
    assert_int_equal(m->prims[8].a.dy, 1);
    assert_int_equal(m->prims[8].a.dx, 0);
    const nasc_type *t = &m->values[m->prims[12].result].type;
    assert_int_equal(t->rank, 4);
    assert_int_equal(t->dims[0], NASC_BATCH);
    assert_int_equal(t->dims[1], 16);
    nasc_module_destroy(m);
}

/* Comments, blank lines and spacing are accepted and dropped. */
static void test_comments_and_spacing(void **state) {
    (void)state;
    const char *text =
        "# a comment\n\n"
        "prim {   # trailing\n"
        "\tinput   %x:f32[ N , 2 ]\r\n"
        "\n"
        "    %y=relu %x:f32[N,2]\n"
        "  output %y # done\n"
        "}";
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = parse_ok(&ctx, text);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_text_print(m, &b), NASC_OK);
    assert_string_equal(b.data, "prim {\n"
                                "  input %x : f32[N,2]\n"
                                "  group\n"
                                "  %y = relu %x : f32[N,2]\n"
                                "  output %y\n"
                                "}\n");
    assert_int_equal(m->prims[0].loc.line, 6);
    assert_int_equal(m->prims[0].loc.col, 5);
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

/* ------------------------------------------------------------ errors */

typedef struct err_case {
    const char *text;
    size_t len; /* 0: strlen(text) */
    int line, col;
    const char *msg; /* substring of the message */
} err_case;

#define SKEL                                                                                       \
    "arch {\n  kind macro\n  input 1x28x28\n  classes 10\n  channels 16\n  cells_per_stage 2\n"   \
    "  stages 3\n  stem_multiplier 1\n  normal @b\n}\n\n"
/* SKEL is 11 lines; the cell starts on line 12. */

static void expect_error(const err_case *e) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = (nasc_module *)1;
    size_t len = e->len ? e->len : strlen(e->text);
    nasc_status st = nasc_text_parse(&ctx, e->text, len, "e.nir", &m);
    char buf[1024];
    nasc_diag_format(&ctx.diag, buf, sizeof buf);
    if (st != NASC_EINPUT || ctx.diag.line != e->line || ctx.diag.col != e->col ||
        !strstr(ctx.diag.msg, e->msg)) {
        fprintf(stderr, "text:\n%.*s\nexpected %d:%d '%s'\ngot (%d) %s\n", (int)(len > 400 ? 400 : len),
                e->text, e->line, e->col, e->msg, (int)st, buf);
        fail();
    }
    assert_null(m);
    assert_string_equal(ctx.diag.file, "e.nir");
    assert_int_equal(ta.live, 0);
}

static void test_errors(void **state) {
    (void)state;
    static const char nul_text[] = "prim {\n  input %x\0 : f32[N,2]\n}\n";
    const err_case cases[] = {
        {"", 0, 1, 1, "expected 'arch' or 'prim', found end of file"},
        {"  \n# only a comment\n", 0, 3, 1, "expected 'arch' or 'prim', found end of file"},
        {"hello world\n", 0, 1, 1, "expected 'arch' or 'prim', found 'hello'"},
        {"\x01\x02", 2, 1, 1, "expected 'arch' or 'prim', found byte 0x01"},
        {nul_text, sizeof nul_text - 1, 2, 11, "found byte 0x00"},
        {"arch", 0, 1, 5, "expected '{' after 'arch', found end of file"},
        {"arch {\n  kind cells\n", 0, 3, 1, "expected a skeleton key or '}', found end of file"},
        {"arch {\n  kind tree\n}\n", 0, 2, 8, "expected a net kind (cells, macro or recurrent), found 'tree'"},
        {"arch {\n  classes 1\n  classes 2\n}\n", 0, 3, 3, "duplicate skeleton key 'classes'"},
        {"arch {\n  input 3x32\n}\n", 0, 2, 13, "expected 'x' in the input size (CxHxW), found end of line"},
        {"arch {\n  classes -99999999999\n}\n", 0, 2, 11, "is too small"},
        {"arch {\n  classes 10 10\n}\n", 0, 2, 14, "expected end of line after the skeleton value, found '10'"},
        {"arch {\n  kind macro\n}\ncell @b macro (%x) {\n  %a = conv_3x3 %x\n  out concat\n}\nextra\n",
         0, 8, 1, "expected 'cell' or end of file, found 'extra'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  out concat %a, }\n}\n", 0, 14, 18,
         "expected an output value, found '}'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  out concat %a\n  %c = conv_3x3 %a\n}\n",
         0, 15, 3, "expected '}' after 'out', found '%c'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x, }\n  out concat\n}\n", 0, 13, 21,
         "expected an operand, found '}'"},
        {SKEL "cell @b macro (%x) {\n  %a = add %x %x\n  out concat\n}\n", 0, 13, 15,
         "expected ',' or end of line after operand, found '%x'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x {stride=1 \n  out concat\n}\n", 0, 13, 30,
         "expected ',' or '}' after the attribute, found end of line"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x {stride=1, stride=2}\n  out concat\n}\n",
         0, 13, 31, "duplicate attribute 'stride'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv %x {filters=3}\n  out concat\n}\n", 0, 13, 8,
         "op 'conv' needs attribute 'kernel'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv %x {kernel=3x3}\n  out concat\n}\n", 0, 13, 8,
         "op 'conv' needs attribute 'filters'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  %b = conv_3x3 %b\n  out concat\n}\n",
         0, 14, 17, "use of undefined value '%b'"},
        {SKEL "cell @b macro (%x) {\n  %x = conv_3x3 %x\n  out concat\n}\n", 0, 13, 3,
         "duplicate name '%x'"},
        {SKEL "cell @b macro (%x) {\n  %a = add\n  out concat\n}\n", 0, 13, 11,
         "expected an operand, found end of line"},
        {SKEL "cell @b macro (%x, %h) {\n", 0, 12, 20, "too many inputs: a macro cell has inputs (%x)"},
        {SKEL "cell @b recurrent (%x) {\n", 0, 12, 22,
         "missing inputs: a recurrent cell has inputs (%x, %h[, %c])"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  out concat\n}\n\ncell @b macro (%x) {\n",
         0, 17, 6, "duplicate cell '@b'"},
        {SKEL "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  out state %a\n}\n", 0, 14, 3,
         "'state' output rule is for recurrent cells"},
        {SKEL "cell @b macro (%x) {\n  %9a = conv_3x3 %x\n  out concat\n}\n", 0, 13, 3,
         "bad node name '9a'"},
        {SKEL "cell b macro (%x) {\n", 0, 12, 6, "expected a cell name after 'cell', found 'b'"},
        {SKEL "cell @b macro %x {\n", 0, 12, 15, "expected '(' before the cell inputs, found '%x'"},
        {"arch {\n  kind macro\n  normal @b\n}\n", 0, 3, 10, "use of undefined cell '@b'"},
        {"arch {\n}\n", 0, 1, 1, "the net has no skeleton"},
        {"prim {\n  input %x : f32[N,2]\n}\n", 0, 3, 1, "the module has no output"},
        {"prim {\n  input %x : f32[N,2]\n  input %x : f32[N,2]\n", 0, 3, 9, "duplicate name '%x'"},
        {"prim {\n  input %x : f32[N,2,3,4,5]\n", 0, 2, 26, "a type has at most 4 dimensions"},
        {"prim {\n  input %x : f32[N,99999999999999999999]\n", 0, 2, 20, "is too large"},
        {"prim {\n  input %x : f32[N,-2]\n", 0, 2, 20, "is too small"},
        {"prim {\n  input %x : f32[N,2\n", 0, 2, 21, "expected ',' or ']' in the type, found end of line"},
        {"prim {\n  input %x : f32[0,2]\n  output %x\n}\n", 0, 2, 3, "bad type for '%x'"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relu %x\n", 0, 3, 15,
         "expected ',' or ':' after operand, found end of line"},
        {"prim {\n  input %x : f32[N,2]\n  %y = softmax %x {axis=1, kernel=3x3} : f32[N,2]\n", 0, 3,
         28, "op 'softmax' does not take attribute 'kernel'"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relu %x, %x : f32[N,2]\n", 0, 3, 8,
         "op 'relu' takes 1 operand, found 2"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relux %x : f32[N,2]\n", 0, 3, 8, "unknown op 'relux'"},
        {"prim {\n  input %x : f32[N,3,4,4]\n  param %g : f32[3]\n"
         "  %y = batch_norm %x, %g, %g {eps=zero} : f32[N,3,4,4]\n",
         0, 4, 35, "bad number 'zero' after 'eps='"},
        {"prim {\n  input %x : f32[N,3,4,4]\n  %y = max_pool %x {kernel=2x2, pad=0,0,0} : f32[N,3,3,3]\n",
         0, 3, 42, "expected ',' in pad=T,L,B,R, found '}'"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relu %x : f32[N,2]\n  output %y\n"
         "  %z = relu %y : f32[N,2]\n}\n",
         0, 5, 3, "expected 'output' or '}', found '%z'"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relu %x : f32[N,2]\n  param %w : f32[2]\n", 0, 4, 3,
         "expected 'group', an op, 'output' or '}', found 'param'"},
        {"prim {\n  input %x : f32[N,2]\n  output %x\n}\n}\n", 0, 5, 1,
         "expected end of file after the prim block, found '}'"},
        {"prim {\n  %y = relu %x : f32[N,2]\n", 0, 2, 13, "use of undefined value '%x'"},
        {"prim {\n  input %x : f32[N,2]\n  %y = relu %x : f32[N,2]\n  %z = add %y, %w : f32[N,2]\n"
         "  %w = relu %x : f32[N,2]\n",
         0, 4, 16, "use of undefined value '%w'"},
        {"arch {\n{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n", 0, 2, 1,
         "expected a skeleton key or '}', found '{'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(&cases[i]);
}

/* Names past the builder's limit still get our location. */
static void test_long_name(void **state) {
    (void)state;
    size_t n = 6000;
    const char *head = SKEL "cell @b macro (%x) {\n  %";
    const char *tail = " = conv_3x3 %x\n  out concat\n}\n";
    char *text = malloc(strlen(head) + n + strlen(tail) + 1);
    assert_non_null(text);
    strcpy(text, head);
    memset(text + strlen(head), 'a', n);
    strcpy(text + strlen(head) + n, tail);
    err_case e = {text, 0, 13, 3, "name longer than"};
    expect_error(&e);
    /* a long unknown word is shortened in the message */
    memcpy(text, "zzzz", 4);
    memset(text, 'z', strlen(head) + n);
    err_case e2 = {text, 0, 1, 1, "...'"};
    expect_error(&e2);
    free(text);
}

/* Every file of tests/bad/text fails where its first line says. */
static void test_bad_corpus(void **state) {
    (void)state;
    char *dir = nasc_test_path("tests/bad/text");
    assert_non_null(dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".nir") != 0) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "tests/bad/text/%s", de->d_name);
        size_t len;
        char *text = nasc_test_read(rel, &len);
        assert_non_null(text);
        int line = 0, col = 0, off = 0;
        if (sscanf(text, "# expect: %d:%d: %n", &line, &col, &off) != 2 || off == 0) {
            fprintf(stderr, "%s: first line is not '# expect: LINE:COL: MESSAGE'\n", rel);
            fail();
        }
        char want[512];
        const char *nlp = strchr(text + off, '\n');
        size_t wl = nlp ? (size_t)(nlp - (text + off)) : strlen(text + off);
        assert_true(wl > 0 && wl < sizeof want);
        memcpy(want, text + off, wl);
        want[wl] = 0;
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = NULL;
        nasc_status st = nasc_text_parse(&ctx, text, len, rel, &m);
        if (st != NASC_EINPUT || ctx.diag.line != line || ctx.diag.col != col ||
            !strstr(ctx.diag.msg, want) || strcmp(ctx.diag.file, rel) != 0) {
            char buf[1024];
            nasc_diag_format(&ctx.diag, buf, sizeof buf);
            fprintf(stderr, "%s: expected %d:%d '%s'\n  got %s\n", rel, line, col, want, buf);
            fail();
        }
        assert_null(m);
        assert_int_equal(ta.live, 0);
        free(text);
        files++;
    }
    closedir(d);
    free(dir);
    assert_true(files >= 15);
}

/* ------------------------------------------------------------ allocation failures */

static void alloc_loop(const char *text) {
    bool done = false;
    for (long n = 1; !done && n < 100000; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_module *m = (nasc_module *)1;
        nasc_status st = nasc_text_parse(&ctx, text, strlen(text), "a.nir", &m);
        if (ta.failed) {
            if (st != NASC_ENOMEM) {
                char buf[1024];
                nasc_diag_format(&ctx.diag, buf, sizeof buf);
                fprintf(stderr, "allocation %ld failed: status %d, %s\n", n, (int)st, buf);
                fail();
            }
            assert_null(m);
        } else {
            assert_int_equal(st, NASC_OK);
            assert_non_null(m);
            nasc_module_destroy(m);
            done = true;
        }
        assert_int_equal(ta.live, 0);
    }
    assert_true(done);
}

static void test_alloc_failures_parse(void **state) {
    (void)state;
    alloc_loop(TWO_CELL);
    alloc_loop(RECURRENT);
    alloc_loop(PRIM_ALL);
}

static void test_alloc_failures_print(void **state) {
    (void)state;
    const char *texts[] = {TWO_CELL, PRIM_ALL};
    for (int k = 0; k < 2; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = parse_ok(&ctx, texts[k]);
        bool done = false;
        for (long j = 1; !done; j++) {
            ta.fail_at = ta.count + j; /* the j-th allocation of this print */
            ta.failed = false;
            nasc_buf b;
            nasc_buf_init(&b, &ctx);
            nasc_status st = nasc_text_print(m, &b);
            if (ta.failed) {
                assert_int_equal(st, NASC_ENOMEM);
            } else {
                assert_int_equal(st, NASC_OK);
                assert_string_equal(b.data, texts[k]);
                done = true;
            }
            nasc_buf_free(&b);
        }
        nasc_module_destroy(m);
        assert_int_equal(ta.live, 0);
    }
}

/* Names the parser could not read back are refused by the printer. */
static void test_print_refuses_bad_names(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "x");
    assert_non_null(m);
    nasc_type t = {NASC_F32, 2, {NASC_BATCH, 2, 0, 0}};
    assert_int_not_equal(nasc_prim_add_input(m, "x", &t), UINT32_MAX);
    uint32_t x = 0;
    assert_int_not_equal(nasc_prim_add_op(m, NASC_PRIM_RELU, &x, 1, NULL, "y", "has space", NASC_NOLOC),
                         UINT32_MAX);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_text_print(m, &b), NASC_EINTERNAL);
    assert_non_null(strstr(ctx.diag.msg, "group name 'has space'"));
    nasc_buf_free(&b);
    nasc_module_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_two_cell),
        cmocka_unit_test(test_roundtrip_macro),
        cmocka_unit_test(test_roundtrip_recurrent),
        cmocka_unit_test(test_roundtrip_prim),
        cmocka_unit_test(test_parsed_content),
        cmocka_unit_test(test_comments_and_spacing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_bad_corpus),
        cmocka_unit_test(test_alloc_failures_parse),
        cmocka_unit_test(test_alloc_failures_print),
        cmocka_unit_test(test_print_refuses_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
