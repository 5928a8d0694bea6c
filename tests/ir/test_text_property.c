/* Text IR property test: random arch and prim modules built with the builder
 * print, parse back to the same arrays, and print to the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* splitmix64: small, seedable, the same on every platform. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t below(rng *r, uint32_t n) { return (uint32_t)(next_u64(r) % n); }
/* Uniform in [lo, hi]. */
static int range(rng *r, int lo, int hi) { return lo + (int)below(r, (uint32_t)(hi - lo + 1)); }

static void fail_diag(nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fprintf(stderr, "%s: %s\n", what, buf);
    fail();
}

/* ------------------------------------------------------------ arch */

#define MAX_NODES 10

static void gen_cell(nasc_module *m, rng *r, nasc_cell_kind kind, int index) {
    uint32_t n_in = kind == NASC_CELL_MACRO ? 1 : 2;
    if (kind == NASC_CELL_RECURRENT) n_in = (uint32_t)range(r, 2, 3);
    int need = kind == NASC_CELL_RECURRENT ? NASC_DOM_RNN : NASC_DOM_CNN;
    nasc_op ops[NASC_OP_COUNT];
    int n_ops = 0;
    for (int op = 0; op < NASC_OP_COUNT; op++)
        if (nasc_arch_op_info_get((nasc_op)op)->domain & need) ops[n_ops++] = (nasc_op)op;

    /* Output mode: 0 loose ends, 1 explicit list covering the loose ends, 2 state. */
    int mode = kind == NASC_CELL_RECURRENT ? range(r, 0, 2) : range(r, 0, 1);
    if (n_in == 3) mode = 2; /* a cell that reads c outputs (h_t, c_t) */
    nasc_out_rule rule;
    if (mode == 2)
        rule = NASC_OUT_STATE;
    else if (kind == NASC_CELL_RECURRENT)
        rule = below(r, 2) ? NASC_OUT_SUM : NASC_OUT_AVG;
    else
        rule = (nasc_out_rule)below(r, 3);
    /* always read a loose end; recurrent cells always do and start with
     * linear(x, h), so that h_t depends on x_t and h_{t-1} as the verifier
     * requires */
    bool chain = mode == 2 || kind == NASC_CELL_RECURRENT || below(r, 3) == 0;

    char name[32];
    snprintf(name, sizeof name, "%c%d_%s", 'a' + (int)below(r, 26), index,
             nasc_cell_kind_name(kind));
    int ci = nasc_cell_begin(m, name, kind, n_in, NASC_NOLOC);
    if (ci < 0) fail_diag(m->ctx, "cell_begin");
    uint32_t n_nodes = (uint32_t)range(r, 1, MAX_NODES);
    bool used[MAX_NODES] = {false};
    for (uint32_t i = 0; i < n_nodes; i++) {
        nasc_op op = ops[below(r, (uint32_t)n_ops)];
        if (kind == NASC_CELL_RECURRENT && i == 0) op = NASC_OP_LINEAR;
        const nasc_arch_op_info *info = nasc_arch_op_info_get(op);
        uint32_t n = info->arity >= 0 ? (uint32_t)info->arity : (uint32_t)range(r, 1, 4);
        if (kind == NASC_CELL_RECURRENT && i == 0) n = 2;
        uint32_t args[4];
        uint32_t loose[MAX_NODES], n_loose = 0;
        for (uint32_t j = 0; j < i; j++)
            if (!used[j]) loose[n_loose++] = j;
        for (uint32_t k = 0; k < n; k++) {
            if (kind == NASC_CELL_RECURRENT && i == 0)
                args[k] = k; /* x, h */
            else if (k == 0 && n_loose && (chain || below(r, 2)))
                args[k] = n_in + loose[below(r, n_loose)];
            else
                args[k] = below(r, n_in + i);
            if (args[k] >= n_in) used[args[k] - n_in] = true;
        }
        nasc_node_attrs a = {0, 0, 0, 0, 0, 0, 0};
        if (op == NASC_OP_CONV) {
            a.kh = range(r, 1, 7);
            a.kw = range(r, 1, 7);
            a.filters = range(r, 1, 64);
        } else if (info->attrs & NASC_ATTR_FILTERS) {
            a.filters = below(r, 2) ? range(r, 1, 64) : 0;
        }
        if (info->attrs & NASC_ATTR_STRIDE) a.stride = range(r, 0, 2);
        char nn[32];
        snprintf(nn, sizeof nn, "n%c%u%s", 'a' + (int)below(r, 26), i,
                 below(r, 2) ? "_x" : "");
        if (nasc_cell_add_node(m, op, args, n, &a, nn, NASC_NOLOC) == UINT32_MAX)
            fail_diag(m->ctx, "add_node");
    }
    uint32_t outs[MAX_NODES + 4], n_outs = 0;
    if (mode == 2) {
        outs[n_outs++] = n_in + n_nodes - 1; /* the one loose end of a chain */
        if (n_in == 3) outs[n_outs++] = below(r, n_in + n_nodes);
    } else if (mode == 1) {
        for (uint32_t j = 0; j < n_nodes; j++)
            if (!used[j]) outs[n_outs++] = n_in + j;
        for (uint32_t k = n_outs; k > 1; k--) { /* shuffle */
            uint32_t j = below(r, k), t = outs[k - 1];
            outs[k - 1] = outs[j];
            outs[j] = t;
        }
        uint32_t extra = below(r, 3);
        for (uint32_t k = 0; k < extra; k++) {
            uint32_t v = below(r, n_in + n_nodes);
            bool dup = false;
            for (uint32_t j = 0; j < n_outs; j++) dup |= outs[j] == v;
            if (!dup) outs[n_outs++] = v;
        }
    }
    if (nasc_cell_set_output(m, rule, outs, n_outs)) fail_diag(m->ctx, "set_output");
    if (nasc_cell_end(m)) fail_diag(m->ctx, "cell_end");
}

static nasc_module *gen_arch(nasc_ctx *ctx, rng *r) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_ARCH, "gen");
    assert_non_null(m);
    nasc_cell_kind kinds[12];
    int n = 0;
    for (int k = 0; k < 4; k++) {
        int count = range(r, 1, 3);
        for (int i = 0; i < count; i++) kinds[n++] = (nasc_cell_kind)k;
    }
    for (int i = n; i > 1; i--) {
        int j = (int)below(r, (uint32_t)i);
        nasc_cell_kind t = kinds[i - 1];
        kinds[i - 1] = kinds[j];
        kinds[j] = t;
    }
    for (int i = 0; i < n; i++) gen_cell(m, r, kinds[i], i);

    nasc_net_kind nk = (nasc_net_kind)below(r, 3);
    nasc_skeleton sk = nasc_skeleton_default(nk);
    if (nk == NASC_NET_RECURRENT) {
        sk.in_c = range(r, 1, 1000);
        sk.in_h = sk.in_w = 1;
    } else {
        sk.in_c = range(r, 1, 4);
        sk.in_h = range(r, 1, 64);
        sk.in_w = range(r, 1, 64);
    }
    sk.classes = range(r, 1, 1000);
    sk.channels = range(r, 1, 256);
    sk.cells_per_stage = range(r, 1, 64);
    sk.stages = range(r, 1, 8);
    sk.stem_multiplier = range(r, 1, 5);
    nasc_cell_kind want = nk == NASC_NET_CELLS   ? NASC_CELL_NORMAL
                          : nk == NASC_NET_MACRO ? NASC_CELL_MACRO
                                                 : NASC_CELL_RECURRENT;
    int cand[12], nc = 0, red[12], nr = 0;
    for (int i = 0; i < n; i++) {
        if (kinds[i] == want) cand[nc++] = i;
        if (kinds[i] == NASC_CELL_REDUCTION) red[nr++] = i;
    }
    sk.normal_cell = cand[below(r, (uint32_t)nc)];
    sk.reduction_cell = -1;
    if (nk == NASC_NET_CELLS && (sk.stages > 1 || below(r, 2))) sk.reduction_cell = red[below(r, (uint32_t)nr)];
    nasc_net_set_skeleton(m, &sk);
    if (nasc_module_verify(m)) fail_diag(ctx, "generated arch module does not verify");
    return m;
}

static void same_arch(const nasc_module *a, const nasc_module *b) {
    assert_int_equal(a->has_skeleton, b->has_skeleton);
    nasc_skeleton sa = a->skel, sb = b->skel;
    sa.loc = sb.loc = NASC_NOLOC;
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_int_equal(a->n_cells, b->n_cells);
    for (uint32_t i = 0; i < a->n_cells; i++) {
        const nasc_cell *x = &a->cells[i], *y = &b->cells[i];
        assert_string_equal(nasc_str(a, x->name), nasc_str(b, y->name));
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->n_inputs, y->n_inputs);
        assert_int_equal(x->first_node, y->first_node);
        assert_int_equal(x->n_nodes, y->n_nodes);
        assert_int_equal(x->out_rule, y->out_rule);
        assert_int_equal(x->first_out, y->first_out);
        assert_int_equal(x->n_outs, y->n_outs);
        assert_true(y->loc.line > 0 && y->out_loc.line > y->loc.line);
    }
    assert_int_equal(a->n_nodes, b->n_nodes);
    for (uint32_t i = 0; i < a->n_nodes; i++) {
        const nasc_node *x = &a->nodes[i], *y = &b->nodes[i];
        assert_int_equal(x->op, y->op);
        assert_string_equal(nasc_str(a, x->name), nasc_str(b, y->name));
        assert_int_equal(x->first_arg, y->first_arg);
        assert_int_equal(x->n_args, y->n_args);
        assert_memory_equal(&x->attrs, &y->attrs, sizeof x->attrs);
        assert_true(y->loc.line > 0 && y->loc.col == 3);
    }
    assert_int_equal(a->n_args, b->n_args);
    if (a->n_args) assert_memory_equal(a->args, b->args, a->n_args * sizeof *a->args);
}

/* print, parse, print: the same bytes, and the module it parses to. */
static nasc_module *roundtrip(nasc_ctx *ctx, const nasc_module *m) {
    nasc_buf b1, b2;
    nasc_buf_init(&b1, ctx);
    nasc_buf_init(&b2, ctx);
    if (nasc_text_print(m, &b1)) fail_diag(ctx, "print");
    nasc_module *p = NULL;
    if (nasc_text_parse(ctx, b1.data, b1.len, "gen.nir", &p)) {
        fprintf(stderr, "%s", b1.data);
        fail_diag(ctx, "parse of printed text");
    }
    if (nasc_text_print(p, &b2)) fail_diag(ctx, "print of parsed module");
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) {
        fprintf(stderr, "first print:\n%s\nsecond print:\n%s\n", b1.data, b2.data);
        fail();
    }
    nasc_buf_free(&b1);
    nasc_buf_free(&b2);
    return p;
}

static void test_random_arch(void **state) {
    (void)state;
    rng r = {20240611};
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    for (int i = 0; i < 3000; i++) {
        nasc_module *m = gen_arch(&ctx, &r);
        nasc_module *p = roundtrip(&ctx, m);
        same_arch(m, p);
        nasc_module_destroy(m);
        nasc_module_destroy(p);
    }
    assert_int_equal(ta.live, 0);
}

/* ------------------------------------------------------------ prim */

typedef struct pgen {
    nasc_module *m;
    rng *r;
    const char *group;
    int n_names;
} pgen;

static const char *fresh(pgen *g, const char *prefix, char *buf, size_t size) {
    snprintf(buf, size, "%s%d%s", prefix, g->n_names++, below(g->r, 2) ? ".w" : "");
    return buf;
}

static uint32_t param(pgen *g, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    nasc_type t = {NASC_F32, rank, {d0, d1, d2, d3}};
    char nb[32];
    uint32_t v = nasc_prim_add_param(g->m, fresh(g, "p", nb, sizeof nb), &t);
    if (v == UINT32_MAX) fail_diag(g->m->ctx, "add_param");
    return v;
}

static uint32_t op(pgen *g, nasc_prim_op o, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a) {
    char nb[32];
    uint32_t v = nasc_prim_add_op(g->m, o, args, n, a, fresh(g, "v", nb, sizeof nb), g->group,
                                  NASC_NOLOC);
    if (v == UINT32_MAX) fail_diag(g->m->ctx, "add_op");
    return v;
}

static const nasc_type *type_of(pgen *g, uint32_t v) { return &g->m->values[v].type; }

/* A random rank-4 activation (an input or op result). */
static uint32_t pick4(pgen *g) {
    for (;;) {
        uint32_t v = below(g->r, g->m->n_values);
        const nasc_value *val = &g->m->values[v];
        if (val->kind != NASC_VAL_PARAM && val->type.rank == 4) return v;
    }
}

static void gen_prim_op(pgen *g) {
    rng *r = g->r;
    static const char *const groups[] = {"", "stem", "cell0", "cell1.n", "head", "x/y-z"};
    if (below(r, 4) == 0) g->group = groups[below(r, 6)];
    uint32_t x = pick4(g);
    const nasc_type *t = type_of(g, x);
    int64_t c = t->dims[1], h = t->dims[2], w = t->dims[3];
    nasc_prim_attrs a = nasc_prim_attrs_default();
    uint32_t args[4];
    switch (below(r, 10)) {
    case 0: { /* conv, sometimes depthwise */
        a.kh = range(r, 1, (int)(h < 5 ? h : 5));
        a.kw = range(r, 1, (int)(w < 5 ? w : 5));
        a.sh = range(r, 1, 2);
        a.sw = range(r, 1, 2);
        a.pt = a.pb = a.kh / 2;
        a.pl = a.pr = a.kw / 2;
        a.groups = below(r, 3) == 0 ? (int)c : 1;
        int64_t co = a.groups > 1 ? c : range(r, 1, 16);
        args[0] = x;
        args[1] = param(g, 4, co, c / a.groups, a.kh, a.kw);
        op(g, NASC_PRIM_CONV, args, 2, &a);
        break;
    }
    case 1: {
        static const float eps[] = {1e-5f, 1e-3f, 0.1f, 0.3333333f};
        a.eps = eps[below(r, 4)];
        args[0] = x;
        args[1] = param(g, 1, c, 0, 0, 0);
        args[2] = param(g, 1, c, 0, 0, 0);
        op(g, NASC_PRIM_BATCH_NORM, args, 3, &a);
        break;
    }
    case 2:
        op(g, (nasc_prim_op)(NASC_PRIM_RELU + below(r, 4)), &x, 1, NULL);
        break;
    case 3: {
        a.kh = range(r, 1, (int)(h < 3 ? h : 3));
        a.kw = range(r, 1, (int)(w < 3 ? w : 3));
        a.sh = range(r, 1, 2);
        a.sw = range(r, 1, 2);
        a.pt = range(r, 0, a.kh - 1);
        a.pb = range(r, 0, a.kh - 1);
        a.pl = range(r, 0, a.kw - 1);
        a.pr = range(r, 0, a.kw - 1);
        bool avg = below(r, 2);
        if (avg) a.count_include_pad = range(r, 0, 1);
        op(g, avg ? NASC_PRIM_AVG_POOL : NASC_PRIM_MAX_POOL, &x, 1, &a);
        break;
    }
    case 4:
        a.dy = range(r, 0, (int)(h - 1 < 1 ? h - 1 : 1));
        a.dx = range(r, 0, (int)(w - 1 < 1 ? w - 1 : 1));
        op(g, NASC_PRIM_SHIFT, &x, 1, &a);
        break;
    case 5:
    case 6: { /* add / mul over values of the same type */
        uint32_t same[64], n = 0;
        for (uint32_t v = 0; v < g->m->n_values && n < 64; v++) {
            const nasc_type *u = type_of(g, v);
            if (g->m->values[v].kind != NASC_VAL_PARAM && u->rank == 4 &&
                !memcmp(u->dims, t->dims, sizeof u->dims))
                same[n++] = v;
        }
        bool mul = below(r, 3) == 0;
        uint32_t k = mul ? 2 : (uint32_t)range(r, 1, 4);
        for (uint32_t i = 0; i < k; i++) args[i] = same[below(r, n)];
        op(g, mul ? NASC_PRIM_MUL : NASC_PRIM_ADD, args, k, NULL);
        break;
    }
    case 7: { /* concat along channels */
        uint32_t fit[64], n = 0;
        for (uint32_t v = 0; v < g->m->n_values && n < 64; v++) {
            const nasc_type *u = type_of(g, v);
            if (g->m->values[v].kind != NASC_VAL_PARAM && u->rank == 4 && u->dims[2] == h &&
                u->dims[3] == w)
                fit[n++] = v;
        }
        uint32_t k = (uint32_t)range(r, 1, 4);
        for (uint32_t i = 0; i < k; i++) args[i] = fit[below(r, n)];
        op(g, NASC_PRIM_CONCAT, args, k, &a);
        break;
    }
    case 8:
        op(g, NASC_PRIM_GLOBAL_AVG_POOL, &x, 1, NULL);
        break;
    default: { /* a head: flatten, inner product, softmax */
        uint32_t f = op(g, NASC_PRIM_FLATTEN, &x, 1, NULL);
        int64_t in = type_of(g, f)->dims[1], out = range(r, 1, 10);
        args[0] = f;
        args[1] = param(g, 2, out, in, 0, 0);
        args[2] = param(g, 1, out, 0, 0, 0);
        uint32_t fc = op(g, NASC_PRIM_INNER_PRODUCT, args, 3, NULL);
        a.axis = 1;
        uint32_t sm = op(g, NASC_PRIM_SOFTMAX, &fc, 1, &a);
        if (nasc_prim_add_output(g->m, sm)) fail_diag(g->m->ctx, "add_output");
        break;
    }
    }
}

static nasc_module *gen_prim(nasc_ctx *ctx, rng *r) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "gen");
    assert_non_null(m);
    pgen g = {m, r, "", 0};
    int inputs = range(r, 1, 2);
    for (int i = 0; i < inputs; i++) {
        nasc_type t = {NASC_F32, 4, {NASC_BATCH, range(r, 1, 8), range(r, 2, 16), range(r, 2, 16)}};
        char nb[32];
        if (nasc_prim_add_input(m, fresh(&g, "in", nb, sizeof nb), &t) == UINT32_MAX)
            fail_diag(ctx, "add_input");
    }
    int n_ops = range(r, 1, 20);
    for (int i = 0; i < n_ops; i++) gen_prim_op(&g);
    if (m->n_outputs == 0 || below(r, 2)) {
        uint32_t v = m->n_values - 1;
        if (nasc_prim_add_output(m, v)) fail_diag(ctx, "add_output");
    }
    if (nasc_module_verify(m)) fail_diag(ctx, "generated prim module does not verify");
    return m;
}

static const nasc_value *by_name(const nasc_module *m, const char *name) {
    int64_t v = nasc_prim_lookup(m, name, strlen(name));
    assert_true(v >= 0);
    return &m->values[v];
}

static void same_type(const nasc_type *a, const nasc_type *b) {
    assert_int_equal(a->rank, b->rank);
    for (int d = 0; d < a->rank; d++) assert_int_equal(a->dims[d], b->dims[d]);
}

/* Params are printed before the ops, so compare by name, not by value id. */
static void same_prim(const nasc_module *a, const nasc_module *b) {
    assert_int_equal(a->n_values, b->n_values);
    for (uint32_t v = 0; v < a->n_values; v++) {
        const nasc_value *x = &a->values[v], *y = by_name(b, nasc_str(a, x->name));
        assert_int_equal(x->kind, y->kind);
        same_type(&x->type, &y->type);
    }
    assert_int_equal(a->n_prims, b->n_prims);
    for (uint32_t i = 0; i < a->n_prims; i++) {
        const nasc_prim *x = &a->prims[i], *y = &b->prims[i];
        assert_int_equal(x->op, y->op);
        assert_string_equal(nasc_str(a, a->values[x->result].name),
                            nasc_str(b, b->values[y->result].name));
        assert_int_equal(x->n_args, y->n_args);
        for (uint32_t k = 0; k < x->n_args; k++)
            assert_string_equal(nasc_str(a, a->values[a->args[x->first_arg + k]].name),
                                nasc_str(b, b->values[b->args[y->first_arg + k]].name));
        assert_memory_equal(&x->a, &y->a, sizeof x->a);
        assert_string_equal(nasc_str(a, x->group), nasc_str(b, y->group));
        assert_true(y->loc.line > 0);
    }
    assert_int_equal(a->n_outputs, b->n_outputs);
    for (uint32_t i = 0; i < a->n_outputs; i++)
        assert_string_equal(nasc_str(a, a->values[a->outputs[i]].name),
                            nasc_str(b, b->values[b->outputs[i]].name));
}

static void test_random_prim(void **state) {
    (void)state;
    rng r = {77};
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    for (int i = 0; i < 400; i++) {
        nasc_module *m = gen_prim(&ctx, &r);
        nasc_module *p = roundtrip(&ctx, m);
        same_prim(m, p);
        nasc_module_destroy(m);
        nasc_module_destroy(p);
    }
    assert_int_equal(ta.live, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_arch),
        cmocka_unit_test(test_random_prim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
