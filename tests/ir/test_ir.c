/* IR passes: canonical hashing, the verifiers (and the builders' own
 * checks), the arch -> prim lowering, and the cost model.
 *
 * Tests marked "BUG:" assert the intended behaviour and fail until the ir/
 * code named in their comment is fixed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define BAD32 UINT32_MAX

/* ------------------------------------------------------------ helpers */

static void fail_diag(const nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fprintf(stderr, "%s: %s\n", what, buf);
    fail();
}

/* The canonical hashes of a module that must have them. */
static uint64_t cell_hash_ok(const nasc_module *m, uint32_t cell) {
    uint64_t h = 0;
    if (nasc_cell_hash(m, cell, &h)) fail_diag(m->ctx, "cell hash");
    return h;
}

static uint64_t arch_hash_ok(const nasc_module *m) {
    uint64_t h = 0;
    if (nasc_arch_hash(m, &h)) fail_diag(m->ctx, "arch hash");
    return h;
}

/* The call returned `got`; the diagnostic must carry `want` and `substr`. */
static void expect_diag(const nasc_ctx *ctx, nasc_status got, nasc_status want, const char *substr) {
    if (got != want || ctx->diag.status != want || !strstr(ctx->diag.msg, substr)) {
        char buf[1024];
        nasc_diag_format(&ctx->diag, buf, sizeof buf);
        fprintf(stderr, "expected status %d with '%s'\n     got status %d (diag %d): %s\n", (int)want, substr,
                (int)got, (int)ctx->diag.status, buf);
        fail();
    }
}

static nasc_module *parse_ok(nasc_ctx *ctx, const char *text) {
    nasc_module *m = NULL;
    if (nasc_text_parse(ctx, text, strlen(text), "t.nir", &m)) fail_diag(ctx, "parse failed");
    assert_non_null(m);
    return m;
}

/* The text fails to parse (or to verify) at line:col with a message containing msg. */
static void expect_text_error(const char *text, nasc_status want, int line, int col, const char *msg) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = (nasc_module *)1;
    nasc_status st = nasc_text_parse(&ctx, text, strlen(text), "v.nir", &m);
    if (st != want || ctx.diag.line != line || ctx.diag.col != col || !strstr(ctx.diag.msg, msg)) {
        char buf[1024];
        nasc_diag_format(&ctx.diag, buf, sizeof buf);
        fprintf(stderr, "text:\n%s\nexpected (%d) %d:%d '%s'\n     got (%d) %s\n", text, (int)want, line, col, msg,
                (int)st, buf);
        fail();
    }
    assert_null(m);
    assert_string_equal(ctx.diag.file, "v.nir");
    assert_int_equal(ta.live, 0);
}

/* A node of a cell spec: operands by name (inputs or earlier nodes). */
typedef struct nspec {
    const char *name;
    nasc_op op;
    const char *args[3];
    nasc_node_attrs at;
} nspec;

/* Build one cell through the builder; any failure fails the test. outs NULL: loose ends. */
static int build_cell(nasc_module *m, const char *cname, nasc_cell_kind kind, uint32_t n_in, const nspec *nodes,
                      int n, nasc_out_rule rule, const char *const *outs, uint32_t n_outs) {
    int ci = nasc_cell_begin(m, cname, kind, n_in, NASC_NOLOC);
    if (ci < 0) fail_diag(m->ctx, "cell_begin");
    for (int i = 0; i < n; i++) {
        uint32_t args[3], na = 0;
        for (; na < 3 && nodes[i].args[na]; na++) {
            int64_t v = nasc_cell_lookup(m, &m->cells[ci], nodes[i].args[na], strlen(nodes[i].args[na]));
            if (v < 0) fail_msg("unknown operand '%s' of node '%s'", nodes[i].args[na], nodes[i].name);
            args[na] = (uint32_t)v;
        }
        if (nasc_cell_add_node(m, nodes[i].op, args, na, &nodes[i].at, nodes[i].name, NASC_NOLOC) == BAD32)
            fail_diag(m->ctx, "add_node");
    }
    uint32_t ov[16];
    assert_true(n_outs <= 16);
    for (uint32_t i = 0; i < n_outs; i++) {
        int64_t v = nasc_cell_lookup(m, &m->cells[ci], outs[i], strlen(outs[i]));
        if (v < 0) fail_msg("unknown output '%s'", outs[i]);
        ov[i] = (uint32_t)v;
    }
    if (nasc_cell_set_output(m, rule, ov, n_outs)) fail_diag(m->ctx, "set_output");
    if (nasc_cell_end(m)) fail_diag(m->ctx, "cell_end");
    return ci;
}

/* Hash of a single normal cell built from a spec, in a fresh module. */
static uint64_t spec_hash(const char *cname, const nspec *nodes, int n, nasc_out_rule rule, const char *const *outs,
                          uint32_t n_outs) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "h");
    assert_non_null(m);
    int ci = build_cell(m, cname, NASC_CELL_NORMAL, 2, nodes, n, rule, outs, n_outs);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
    sk.stages = 1;
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    if (nasc_arch_verify(m)) fail_diag(&ctx, "verify");
    uint64_t h = cell_hash_ok(m, (uint32_t)ci);
    nasc_module_destroy(m);
    return h;
}

#define N_(a) (int)(sizeof(a) / sizeof((a)[0]))
#define NOATTR {0, 0, 0, 0, 0, 0, 0}

/* ------------------------------------------------------------ 1. canonical hash */

/* Four NASNet blocks: a chain a -> b -> c and a block d on the inputs; c and d
 * are the loose ends. */
static const nspec BASE[] = {
    {"a0", NASC_OP_SEP_CONV_3X3, {"h2"}, NOATTR},
    {"a1", NASC_OP_MAX_POOL_3X3, {"h1"}, NOATTR},
    {"a", NASC_OP_ADD, {"a0", "a1"}, NOATTR},
    {"b0", NASC_OP_IDENTITY, {"h1"}, NOATTR},
    {"b1", NASC_OP_CONV_1X7_7X1, {"a"}, NOATTR},
    {"b", NASC_OP_ADD, {"b0", "b1"}, NOATTR},
    {"c0", NASC_OP_AVG_POOL_3X3, {"h2"}, NOATTR},
    {"c1", NASC_OP_SEP_CONV_5X5, {"b"}, NOATTR},
    {"c", NASC_OP_ADD, {"c0", "c1"}, NOATTR},
    {"d0", NASC_OP_DIL_CONV_3X3, {"h1"}, NOATTR},
    {"d1", NASC_OP_IDENTITY, {"h2"}, NOATTR},
    {"d", NASC_OP_ADD, {"d0", "d1"}, NOATTR},
};

static uint64_t base_hash(void) { return spec_hash("n", BASE, N_(BASE), NASC_OUT_CONCAT, NULL, 0); }

/* Blocks in another topological order, node names and cell name changed: same hash. */
static void test_hash_order_and_names(void **state) {
    (void)state;
    static const nspec reordered[] = {
        {"q1", NASC_OP_IDENTITY, {"h2"}, NOATTR},
        {"p1", NASC_OP_MAX_POOL_3X3, {"h1"}, NOATTR},
        {"q0", NASC_OP_DIL_CONV_3X3, {"h1"}, NOATTR},
        {"p0", NASC_OP_SEP_CONV_3X3, {"h2"}, NOATTR},
        {"q", NASC_OP_ADD, {"q0", "q1"}, NOATTR},
        {"p", NASC_OP_ADD, {"p0", "p1"}, NOATTR},
        {"r0", NASC_OP_IDENTITY, {"h1"}, NOATTR},
        {"r1", NASC_OP_CONV_1X7_7X1, {"p"}, NOATTR},
        {"s0", NASC_OP_AVG_POOL_3X3, {"h2"}, NOATTR},
        {"r", NASC_OP_ADD, {"r0", "r1"}, NOATTR},
        {"s1", NASC_OP_SEP_CONV_5X5, {"r"}, NOATTR},
        {"s", NASC_OP_ADD, {"s0", "s1"}, NOATTR},
    };
    uint64_t h = base_hash();
    assert_int_not_equal(h, 0);
    assert_true(h == spec_hash("other_name", reordered, N_(reordered), NASC_OUT_CONCAT, NULL, 0));
    /* an explicit output list naming the loose ends is the same cell */
    const char *outs[] = {"d", "c"};
    assert_true(h == spec_hash("n", BASE, N_(BASE), NASC_OUT_CONCAT, outs, 2));
}

/* add(x, y) == add(y, x); mul too (recurrent cells). */
static void test_hash_commutative(void **state) {
    (void)state;
    nspec sw[N_(BASE)];
    memcpy(sw, BASE, sizeof sw);
    sw[2].args[0] = "a1";
    sw[2].args[1] = "a0";
    sw[11].args[0] = "d1";
    sw[11].args[1] = "d0";
    assert_true(base_hash() == spec_hash("n", sw, N_(sw), NASC_OUT_CONCAT, NULL, 0));
}

/* Which input feeds which op matters when the ops differ. */
static void test_hash_non_commutative_position(void **state) {
    (void)state;
    uint64_t h = base_hash();
    nspec sw[N_(BASE)];
    memcpy(sw, BASE, sizeof sw);
    sw[0].args[0] = "h1"; /* sep_conv_3x3 h1 */
    sw[1].args[0] = "h2"; /* max_pool_3x3 h2 */
    assert_true(h != spec_hash("n", sw, N_(sw), NASC_OUT_CONCAT, NULL, 0));
    /* one input changed: h2 -> h1 */
    memcpy(sw, BASE, sizeof sw);
    sw[6].args[0] = "h1";
    assert_true(h != spec_hash("n", sw, N_(sw), NASC_OUT_CONCAT, NULL, 0));
    /* a deeper operand moved: conv_1x7_7x1 reads h1 instead of block a (a becomes a loose end) */
    memcpy(sw, BASE, sizeof sw);
    sw[4].args[0] = "h1";
    assert_true(h != spec_hash("n", sw, N_(sw), NASC_OUT_CONCAT, NULL, 0));
}

static void test_hash_op_and_rule_changes(void **state) {
    (void)state;
    uint64_t h = base_hash();
    nspec ch[N_(BASE)];
    for (int i = 0; i < N_(BASE); i++) {
        if (BASE[i].op == NASC_OP_ADD) continue;
        memcpy(ch, BASE, sizeof ch);
        ch[i].op = ch[i].op == NASC_OP_SEP_CONV_7X7 ? NASC_OP_SEP_CONV_5X5 : NASC_OP_SEP_CONV_7X7;
        if (h == spec_hash("n", ch, N_(ch), NASC_OUT_CONCAT, NULL, 0)) fail_msg("changing node %d's op kept the hash", i);
    }
    /* an attribute is part of the op */
    memcpy(ch, BASE, sizeof ch);
    ch[0].at.stride = 2;
    assert_true(h != spec_hash("n", ch, N_(ch), NASC_OUT_CONCAT, NULL, 0));
    /* the output rule, and the choice of outputs */
    assert_true(h != spec_hash("n", BASE, N_(BASE), NASC_OUT_SUM, NULL, 0));
    assert_true(h != spec_hash("n", BASE, N_(BASE), NASC_OUT_AVG, NULL, 0));
    const char *outs[] = {"d", "c", "a"};
    assert_true(h != spec_hash("n", BASE, N_(BASE), NASC_OUT_CONCAT, outs, 3));
}

static uint64_t rnn_hash(const nspec *nodes, int n, const char *const *outs, uint32_t n_outs) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "r");
    assert_non_null(m);
    int ci = build_cell(m, "rnn", NASC_CELL_RECURRENT, 3, nodes, n, NASC_OUT_STATE, outs, n_outs);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_RECURRENT);
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    if (nasc_arch_verify(m)) fail_diag(&ctx, "verify");
    uint64_t h = cell_hash_ok(m, (uint32_t)ci);
    nasc_module_destroy(m);
    return h;
}

/* Recurrent cells: mul commutes, highway's gate does not, state keeps its order. */
static void test_hash_recurrent(void **state) {
    (void)state;
    nspec r[] = {
        {"g", NASC_OP_LINEAR, {"x", "h"}, NOATTR},  {"s", NASC_OP_SIGMOID, {"g"}, NOATTR},
        {"t", NASC_OP_TANH, {"g"}, NOATTR},         {"hw", NASC_OP_HIGHWAY, {"s", "t", "h"}, NOATTR},
        {"m", NASC_OP_MUL, {"s", "c"}, NOATTR},     {"ct", NASC_OP_ADD, {"m", "hw"}, NOATTR},
    };
    const char *outs[] = {"hw", "ct"};
    uint64_t h = rnn_hash(r, N_(r), outs, 2);
    nspec v[N_(r)];
    memcpy(v, r, sizeof v);
    v[4].args[0] = "c";
    v[4].args[1] = "s";
    assert_true(h == rnn_hash(v, N_(v), outs, 2));
    memcpy(v, r, sizeof v);
    v[3].args[0] = "t";
    v[3].args[1] = "s";
    assert_true(h != rnn_hash(v, N_(v), outs, 2));
    const char *swapped[] = {"ct", "hw"};
    assert_true(h != rnn_hash(r, N_(r), swapped, 2));
}

/* A two-cell net; cells are created in the given order under the given names. */
static nasc_module *two_cell_net(nasc_ctx *ctx, bool reduction_first, const char *nname, const char *rname,
                                 int channels) {
    static const nspec red[] = {
        {"a", NASC_OP_MAX_POOL_3X3, {"h1"}, NOATTR},
        {"b", NASC_OP_IDENTITY, {"h2"}, NOATTR},
        {"c", NASC_OP_ADD, {"a", "b"}, NOATTR},
    };
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_ARCH, "net");
    assert_non_null(m);
    int ni, ri;
    if (reduction_first) {
        ri = build_cell(m, rname, NASC_CELL_REDUCTION, 2, red, N_(red), NASC_OUT_CONCAT, NULL, 0);
        ni = build_cell(m, nname, NASC_CELL_NORMAL, 2, BASE, N_(BASE), NASC_OUT_CONCAT, NULL, 0);
    } else {
        ni = build_cell(m, nname, NASC_CELL_NORMAL, 2, BASE, N_(BASE), NASC_OUT_CONCAT, NULL, 0);
        ri = build_cell(m, rname, NASC_CELL_REDUCTION, 2, red, N_(red), NASC_OUT_CONCAT, NULL, 0);
    }
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
    sk.channels = channels;
    sk.normal_cell = ni;
    sk.reduction_cell = ri;
    nasc_net_set_skeleton(m, &sk);
    if (nasc_arch_verify(m)) fail_diag(ctx, "verify");
    return m;
}

static void test_arch_hash(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = two_cell_net(&ctx, false, "n", "r", 16);
    nasc_module *b = two_cell_net(&ctx, true, "normal_x", "reduce_y", 16);
    nasc_module *c = two_cell_net(&ctx, false, "n", "r", 20);
    uint64_t ha = arch_hash_ok(a);
    assert_true(ha == arch_hash_ok(b));
    assert_true(ha != arch_hash_ok(c));
    /* the cells themselves did not change, only the skeleton */
    assert_true(cell_hash_ok(a, (uint32_t)a->skel.normal_cell) == cell_hash_ok(c, (uint32_t)c->skel.normal_cell));
    /* swapping the roles of the cells is a different net */
    nasc_module *d = two_cell_net(&ctx, false, "n", "r", 16);
    assert_true(cell_hash_ok(d, 0) != cell_hash_ok(d, 1));
    /* every other skeleton field is part of the net */
    int *fields[] = {&d->skel.in_c, &d->skel.in_h, &d->skel.in_w, &d->skel.classes, &d->skel.cells_per_stage,
                     &d->skel.stages, &d->skel.stem_multiplier};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        (*fields[i])++;
        if (arch_hash_ok(d) == ha) fail_msg("skeleton field %zu does not change the hash", i);
        (*fields[i])--;
        assert_true(arch_hash_ok(d) == ha);
    }
    nasc_module_destroy(a);
    nasc_module_destroy(b);
    nasc_module_destroy(c);
    nasc_module_destroy(d);
}

/* ---- randomized: NASNet cells in shuffled topological orders */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(rng *r, uint32_t n) { return (uint32_t)(next_u64(r) % n); }

#define NB 5
#define NASNET_OPS 13 /* NASC_OP_IDENTITY .. NASC_OP_MAX_POOL_7X7 */

/* in: 0 = h2, 1 = h1, 2 + k = block k. */
typedef struct nas_block {
    int in[2];
    int op[2];
} nas_block;

/* Build the cell with its 3*NB nodes emitted in `order` (node 3k+j: block k,
 * j = 0/1 the two ops, 2 the add); swap[k] swaps the add's operands. */
static int build_nasnet(nasc_module *m, const char *cname, const nas_block *b, const int *order, const bool *swap,
                        int name_salt) {
    int ci = nasc_cell_begin(m, cname, NASC_CELL_NORMAL, 2, NASC_NOLOC);
    if (ci < 0) fail_diag(m->ctx, "cell_begin");
    uint32_t val[3 * NB];
    for (int i = 0; i < 3 * NB; i++) {
        int node = order[i], k = node / 3, j = node % 3;
        uint32_t args[2];
        char name[32];
        snprintf(name, sizeof name, "v%d_%d", (node * 7 + name_salt) % 97, node);
        nasc_op op;
        uint32_t n;
        if (j < 2) {
            int in = b[k].in[j];
            args[0] = in < 2 ? (uint32_t)in : val[3 * (in - 2) + 2];
            op = (nasc_op)b[k].op[j];
            n = 1;
        } else {
            args[0] = val[3 * k + (swap[k] ? 1 : 0)];
            args[1] = val[3 * k + (swap[k] ? 0 : 1)];
            op = NASC_OP_ADD;
            n = 2;
        }
        val[node] = nasc_cell_add_node(m, op, args, n, NULL, name, NASC_NOLOC);
        if (val[node] == BAD32) fail_diag(m->ctx, "add_node");
    }
    if (nasc_cell_end(m)) fail_diag(m->ctx, "cell_end");
    return ci;
}

/* A random topological order of the 3*NB nodes. */
static void random_order(rng *r, const nas_block *b, int *order) {
    bool done[3 * NB] = {false};
    for (int i = 0; i < 3 * NB; i++) {
        int ready[3 * NB], n = 0;
        for (int node = 0; node < 3 * NB; node++) {
            if (done[node]) continue;
            int k = node / 3, j = node % 3;
            bool ok;
            if (j < 2)
                ok = b[k].in[j] < 2 || done[3 * (b[k].in[j] - 2) + 2];
            else
                ok = done[3 * k] && done[3 * k + 1];
            if (ok) ready[n++] = node;
        }
        assert_true(n > 0);
        order[i] = ready[below(r, (uint32_t)n)];
        done[order[i]] = true;
    }
}

/* Ground truth: an exact canonical form of the cell up to isomorphism.
 * Blocks are renumbered by every topologically valid permutation; each
 * block is written as its two (op, source) pairs, sorted because add
 * commutes; the least string over all permutations is the canonical form.
 * (Loose ends follow from the structure, so they need no separate entry.)
 * Equal strings <=> the same architecture. */
static void canon_perm(const nas_block *b, int *perm, int depth, unsigned used, int *new_of, char *best) {
    if (depth == NB) {
        char s[NB * 64] = "";
        for (int i = 0; i < NB; i++) {
            const nas_block *k = &b[perm[i]];
            char pair[2][32];
            for (int j = 0; j < 2; j++) {
                int in = k->in[j];
                snprintf(pair[j], sizeof pair[j], "%d:%c", k->op[j], in < 2 ? "AB"[in] : (char)('0' + new_of[in - 2]));
            }
            int lo = strcmp(pair[0], pair[1]) <= 0 ? 0 : 1;
            char blk[72];
            snprintf(blk, sizeof blk, "(%s,%s)", pair[lo], pair[1 - lo]);
            strcat(s, blk);
        }
        if (!best[0] || strcmp(s, best) < 0) strcpy(best, s);
        return;
    }
    for (int old = 0; old < NB; old++) {
        if (used & (1u << old)) continue;
        bool ready = true; /* its sources must already be numbered */
        for (int j = 0; j < 2; j++)
            if (b[old].in[j] >= 2 && !(used & (1u << (b[old].in[j] - 2)))) ready = false;
        if (!ready) continue;
        perm[depth] = old;
        new_of[old] = depth;
        canon_perm(b, perm, depth + 1, used | (1u << old), new_of, best);
    }
}

static char *canon_cell(const nas_block *b) {
    int perm[NB], new_of[NB];
    char *best = calloc(1, NB * 64);
    assert_non_null(best);
    canon_perm(b, perm, 0, 0, new_of, best);
    assert_true(best[0] != 0);
    return best;
}

typedef struct hashed {
    char *canon;
    uint64_t hash;
} hashed;

static int cmp_hashed(const void *a, const void *b) {
    const hashed *x = a, *y = b;
    return strcmp(x->canon, y->canon);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hash_random_nasnet(void **state) {
    (void)state;
    enum { CELLS = 500 };
    rng r = {20240531u};
    hashed *all = calloc(CELLS, sizeof *all);
    assert_non_null(all);
    int reordered = 0;
    for (int i = 0; i < CELLS; i++) {
        nas_block b[NB];
        for (int k = 0; k < NB; k++)
            for (int j = 0; j < 2; j++) {
                b[k].in[j] = (int)below(&r, (uint32_t)(2 + k));
                b[k].op[j] = (int)below(&r, NASNET_OPS);
            }
        int natural[3 * NB], shuffled[3 * NB];
        for (int k = 0; k < 3 * NB; k++) natural[k] = k;
        random_order(&r, b, shuffled);
        bool no_swap[NB] = {false}, swap[NB];
        for (int k = 0; k < NB; k++) swap[k] = below(&r, 2);
        if (memcmp(natural, shuffled, sizeof natural) != 0) reordered++;

        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "rand");
        assert_non_null(m);
        int c0 = build_nasnet(m, "orig", b, natural, no_swap, 0);
        int c1 = build_nasnet(m, "shuf", b, shuffled, swap, i + 1);
        nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
        sk.stages = 1;
        sk.normal_cell = c0;
        nasc_net_set_skeleton(m, &sk);
        if (nasc_arch_verify(m)) fail_diag(&ctx, "verify"); /* both cells are valid */
        uint64_t h0 = cell_hash_ok(m, (uint32_t)c0), h1 = cell_hash_ok(m, (uint32_t)c1);
        if (h0 != h1) {
            char *s = canon_cell(b);
            fprintf(stderr, "cell %d: reordering changed the hash (%s)\n", i, s);
            free(s);
            fail();
        }
        all[i].canon = canon_cell(b);
        all[i].hash = h0;
        nasc_module_destroy(m);
    }
    assert_true(reordered > CELLS * 9 / 10); /* the shuffle really reorders */

    /* distinct canonical cells <=> distinct hashes */
    qsort(all, CELLS, sizeof *all, cmp_hashed);
    int distinct_canon = 0;
    for (int i = 0; i < CELLS; i++) {
        if (i == 0 || strcmp(all[i].canon, all[i - 1].canon) != 0) distinct_canon++;
        else
            assert_true(all[i].hash == all[i - 1].hash);
    }
    uint64_t hs[CELLS];
    for (int i = 0; i < CELLS; i++) hs[i] = all[i].hash;
    qsort(hs, CELLS, sizeof hs[0], cmp_u64);
    int distinct_hash = 0;
    for (int i = 0; i < CELLS; i++)
        if (i == 0 || hs[i] != hs[i - 1]) distinct_hash++;
    assert_int_equal(distinct_hash, distinct_canon);
    assert_true(distinct_canon > CELLS - 5); /* the space is large: nearly all are distinct */
    for (int i = 0; i < CELLS; i++) free(all[i].canon);
    free(all);
}

/* BUG: ir/hash.c, nasc_cell_hash (its Merkle loop) hashed a
 * cell's tree unfolding, not its DAG: a node hashes only from its op and its
 * operands' hashes, so two structurally identical nodes get one hash and a
 * consumer cannot tell which of them it reads. Cells that differ only in
 * that wiring hash alike although they are different architectures (below:
 * different parameter counts; in a fixed-size NASNet space: same counts,
 * different wiring), so the search would skip a new architecture as a
 * duplicate. Fix idea: canonicalise the DAG (e.g. order nodes by Merkle hash
 * and break ties between equal-hash nodes by trying their permutations, or
 * refine labels with consumer hashes as in Weisfeiler-Lehman) and hash the
 * edge list over canonical node numbers. */
static void test_bug_hash_shared_subexpression(void **state) {
    (void)state;
    /* A: one block X read twice. B: two copies of X, each read once. */
    static const nspec a[] = {
        {"x0", NASC_OP_SEP_CONV_3X3, {"h1"}, NOATTR}, {"x1", NASC_OP_CONV_3X3, {"h2"}, NOATTR},
        {"x", NASC_OP_ADD, {"x0", "x1"}, NOATTR},     {"y0", NASC_OP_SEP_CONV_5X5, {"x"}, NOATTR},
        {"y1", NASC_OP_SEP_CONV_5X5, {"x"}, NOATTR},  {"y", NASC_OP_ADD, {"y0", "y1"}, NOATTR},
    };
    static const nspec b[] = {
        {"x0", NASC_OP_SEP_CONV_3X3, {"h1"}, NOATTR}, {"x1", NASC_OP_CONV_3X3, {"h2"}, NOATTR},
        {"x", NASC_OP_ADD, {"x0", "x1"}, NOATTR},     {"z0", NASC_OP_SEP_CONV_3X3, {"h1"}, NOATTR},
        {"z1", NASC_OP_CONV_3X3, {"h2"}, NOATTR},     {"z", NASC_OP_ADD, {"z0", "z1"}, NOATTR},
        {"y0", NASC_OP_SEP_CONV_5X5, {"x"}, NOATTR},  {"y1", NASC_OP_SEP_CONV_5X5, {"z"}, NOATTR},
        {"y", NASC_OP_ADD, {"y0", "y1"}, NOATTR},
    };
    /* They really are different nets: B has a second copy of X's weights. */
    int64_t params[2];
    for (int k = 0; k < 2; k++) {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "s");
        assert_non_null(m);
        int ci = build_cell(m, "n", NASC_CELL_NORMAL, 2, k ? b : a, k ? N_(b) : N_(a), NASC_OUT_CONCAT, NULL, 0);
        nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
        sk.stages = 1;
        sk.normal_cell = ci;
        nasc_net_set_skeleton(m, &sk);
        nasc_module *p = NULL;
        if (nasc_lower(m, &p)) fail_diag(&ctx, "lower");
        nasc_cost c;
        assert_int_equal(nasc_cost_compute(p, &c), NASC_OK);
        params[k] = c.params;
        nasc_cost_free(p, &c);
        nasc_module_destroy(p);
        nasc_module_destroy(m);
    }
    assert_true(params[0] != params[1]);
    uint64_t ha = spec_hash("n", a, N_(a), NASC_OUT_CONCAT, NULL, 0);
    uint64_t hb = spec_hash("n", b, N_(b), NASC_OUT_CONCAT, NULL, 0);

    /* The same inside NASNet's fixed-size space (4 blocks): X and X' are
     * identical blocks; C1 feeds each later block from both, C2 feeds one
     * later block from X twice and the other from X' twice. */
    static const nspec c1[] = {
        {"a0", NASC_OP_SEP_CONV_3X3, {"h1"}, NOATTR}, {"a1", NASC_OP_CONV_3X3, {"h2"}, NOATTR},
        {"a", NASC_OP_ADD, {"a0", "a1"}, NOATTR},     {"b0", NASC_OP_SEP_CONV_3X3, {"h1"}, NOATTR},
        {"b1", NASC_OP_CONV_3X3, {"h2"}, NOATTR},     {"b", NASC_OP_ADD, {"b0", "b1"}, NOATTR},
        {"c0", NASC_OP_CONV_1X1, {"a"}, NOATTR},      {"c1", NASC_OP_CONV_1X1, {"b"}, NOATTR},
        {"c", NASC_OP_ADD, {"c0", "c1"}, NOATTR},     {"d0", NASC_OP_CONV_1X1, {"a"}, NOATTR},
        {"d1", NASC_OP_CONV_1X1, {"b"}, NOATTR},      {"d", NASC_OP_ADD, {"d0", "d1"}, NOATTR},
    };
    nspec c2[N_(c1)];
    memcpy(c2, c1, sizeof c2);
    c2[7].args[0] = "a"; /* c = conv_1x1(a) + conv_1x1(a) */
    c2[9].args[0] = "b"; /* d = conv_1x1(b) + conv_1x1(b) */
    uint64_t h1 = spec_hash("n", c1, N_(c1), NASC_OUT_CONCAT, NULL, 0);
    uint64_t h2 = spec_hash("n", c2, N_(c2), NASC_OUT_CONCAT, NULL, 0);
    if (ha == hb) fprintf(stderr, "BUG (hash.c): X read twice and two copies of X read once hash alike\n");
    if (h1 == h2) fprintf(stderr, "BUG (hash.c): two NASNet cells that differ in wiring hash alike\n");
    assert_true(ha != hb);
    assert_true(h1 != h2);
}

/* ------------------------------------------------------------ 2. verifier and builder checks */

static const nasc_node_attrs NO_ATTRS = {0, 0, 0, 0, 0, 0, 0};

/* Builder refusals of cells and nodes: each leaves the module as it was. */
static void test_builder_arch_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "b.nir");
    assert_non_null(m);
    nasc_loc L = {7, 9};

    /* cell_begin */
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_NORMAL, 3, L), NASC_EINPUT,
                "a normal cell takes 2 inputs, not 3");
    assert_int_equal(ctx.diag.line, 7);
    assert_int_equal(ctx.diag.col, 9);
    assert_string_equal(ctx.diag.file, "b.nir");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_REDUCTION, 1, L), NASC_EINPUT,
                "a reduction cell takes 2 inputs, not 1");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_MACRO, 2, L), NASC_EINPUT,
                "a macro cell takes 1 inputs, not 2");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_RECURRENT, 1, L), NASC_EINPUT,
                "a recurrent cell takes 2 or 3 inputs, not 1");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_RECURRENT, 4, L), NASC_EINPUT,
                "a recurrent cell takes 2 or 3 inputs, not 4");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", (nasc_cell_kind)9, 2, L), NASC_EINPUT, "bad cell kind");
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "", NASC_CELL_NORMAL, 2, L), NASC_EINPUT, "cell name is empty");
    assert_int_equal(m->n_cells, 0);

    /* nodes outside a cell */
    uint32_t in[3] = {0, 1, 2};
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_CONV_3X3, in, 1, NULL, "a", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINTERNAL, "node 'a' added outside a cell");
    expect_diag(&ctx, nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0), NASC_EINTERNAL, "output set outside a cell");
    expect_diag(&ctx, nasc_cell_end(m), NASC_EINTERNAL, "no cell to end");

    assert_int_equal(nasc_cell_begin(m, "n", NASC_CELL_NORMAL, 2, L), 0);
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "m", NASC_CELL_NORMAL, 2, L), NASC_EINTERNAL,
                "started before the previous one ended");
    expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, "a cell was not ended");

    struct {
        nasc_op op;
        uint32_t n;
        nasc_node_attrs at;
        const char *name;
        const char *msg;
    } bad[] = {
        {NASC_OP_COUNT, 1, NO_ATTRS, "a", "unknown op"},
        {NASC_OP_CONV_3X3, 1, NO_ATTRS, "9a", "bad node name '9a'"},
        {NASC_OP_CONV_3X3, 1, NO_ATTRS, "a-b", "bad node name 'a-b'"},
        {NASC_OP_CONV_3X3, 1, NO_ATTRS, "", "bad node name ''"},
        {NASC_OP_CONV_3X3, 1, NO_ATTRS, "h1", "duplicate name 'h1' in cell 'n'"},
        /* rnn ops in a CNN cell */
        {NASC_OP_TANH, 1, NO_ATTRS, "a", "op 'tanh' cannot be used in a normal cell"},
        {NASC_OP_LINEAR, 2, NO_ATTRS, "a", "op 'linear' cannot be used in a normal cell"},
        {NASC_OP_HIGHWAY, 3, NO_ATTRS, "a", "op 'highway' cannot be used in a normal cell"},
        /* arity */
        {NASC_OP_ADD, 0, NO_ATTRS, "a", "op 'add' needs at least one operand"},
        {NASC_OP_CONCAT, 0, NO_ATTRS, "a", "op 'concat' needs at least one operand"},
        {NASC_OP_SEP_CONV_3X3, 2, NO_ATTRS, "a", "op 'sep_conv_3x3' takes 1 operand, got 2"},
        {NASC_OP_IDENTITY, 0, NO_ATTRS, "a", "op 'identity' takes 1 operand, got 0"},
        /* operands: only inputs (0, 1) exist so far */
        {NASC_OP_ADD, 3, NO_ATTRS, "a", "operand 3 of 'a' refers to a value not defined before it"},
        /* attributes */
        {NASC_OP_CONV_3X3, 1, {0, 0, 0, 9, 0, 0, 0}, "a", "attribute out of range on 'a'"},
        {NASC_OP_CONV_3X3, 1, {0, 0, 0, -1, 0, 0, 0}, "a", "attribute out of range on 'a'"},
        {NASC_OP_CONV, 1, {65, 3, 8, 0, 0, 0, 0}, "a", "attribute out of range on 'a'"},
        {NASC_OP_CONV, 1, {3, 3, (1 << 20) + 1, 0, 0, 0, 0}, "a", "attribute out of range on 'a'"},
        {NASC_OP_SEP_CONV_3X3, 1, {3, 3, 0, 0, 0, 0, 0}, "a", "op 'sep_conv_3x3' takes no 'kernel' attribute"},
        {NASC_OP_MAX_POOL_3X3, 1, {0, 0, 8, 0, 0, 0, 0}, "a", "op 'max_pool_3x3' takes no 'filters' attribute"},
        {NASC_OP_FACTORIZED_REDUCE, 1, {0, 0, 0, 2, 0, 0, 0}, "a", "op 'factorized_reduce' takes no 'stride' attribute"},
        {NASC_OP_CONV, 1, {0, 0, 8, 0, 0, 0, 0}, "a", "op 'conv' needs a 'kernel' attribute"},
        {NASC_OP_CONV, 1, {3, 0, 8, 0, 0, 0, 0}, "a", "op 'conv' needs a 'kernel' attribute"},
        /* dilation and groups: conv only, both dilations, groups that divide the filters */
        {NASC_OP_SEP_CONV_3X3, 1, {0, 0, 0, 0, 2, 2, 0}, "a", "op 'sep_conv_3x3' takes no 'dilation' attribute"},
        {NASC_OP_CONV_3X3, 1, {0, 0, 0, 0, 0, 0, 2}, "a", "op 'conv_3x3' takes no 'groups' attribute"},
        {NASC_OP_CONV, 1, {3, 3, 8, 0, 2, 0, 0}, "a", "dilation needs both a height and a width"},
        {NASC_OP_CONV, 1, {3, 3, 8, 0, 0, 0, 3}, "a", "'a': 8 filters do not split into 3 groups"},
        {NASC_OP_CONV, 1, {3, 3, 8, 0, 65, 1, 0}, "a", "attribute out of range on 'a'"},
        {NASC_OP_CONV, 1, {3, 3, 8, 0, 0, 0, -2}, "a", "attribute out of range on 'a'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctx.diag.status = NASC_OK;
        uint32_t v = nasc_cell_add_node(m, bad[i].op, in, bad[i].n, &bad[i].at, bad[i].name, L);
        if (v != BAD32) fail_msg("case %zu was accepted", i);
        expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, bad[i].msg);
        assert_int_equal(ctx.diag.line, 7);
        assert_int_equal(ctx.diag.col, 9);
        assert_int_equal(m->cells[0].n_nodes, 0);
    }
    /* a node, then the same name again and a self-reference */
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_CONV_3X3, in, 1, NULL, "a", L), 2);
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_CONV_3X3, in, 1, NULL, "a", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "duplicate name 'a' in cell 'n'");
    uint32_t self = 3;
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_CONV_3X3, &self, 1, NULL, "b", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "operand 1 of 'b' refers to a value not defined before it");
    /* outputs */
    uint32_t outs[2] = {2, 3};
    expect_diag(&ctx, nasc_cell_set_output(m, NASC_OUT_CONCAT, outs, 2), NASC_EINPUT,
                "output 2 of cell 'n' refers to an undefined value");
    expect_diag(&ctx, nasc_cell_set_output(m, (nasc_out_rule)7, outs, 1), NASC_EINPUT, "bad output rule");
    assert_int_equal(m->cells[0].n_outs, 0);
    assert_int_equal(nasc_cell_end(m), NASC_OK);
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(m, "n", NASC_CELL_NORMAL, 2, L), NASC_EINPUT,
                "duplicate cell name 'n'");

    /* CNN ops in a recurrent cell */
    assert_int_equal(nasc_cell_begin(m, "r", NASC_CELL_RECURRENT, 2, L), 1);
    nasc_op cnn[] = {NASC_OP_SEP_CONV_3X3, NASC_OP_MAX_POOL_3X3, NASC_OP_CONCAT, NASC_OP_FACTORIZED_REDUCE};
    for (size_t i = 0; i < sizeof cnn / sizeof cnn[0]; i++) {
        assert_int_equal(nasc_cell_add_node(m, cnn[i], in, 1, NULL, "a", L), BAD32);
        char want[96];
        snprintf(want, sizeof want, "op '%s' cannot be used in a recurrent cell", nasc_arch_op_info_get(cnn[i])->name);
        expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, want);
    }
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_HIGHWAY, in, 2, NULL, "a", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "op 'highway' takes 3 operands, got 2");
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_MUL, in, 1, NULL, "a", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "op 'mul' takes 2 operands, got 1");
    /* a 2-input recurrent cell has no %c */
    assert_int_equal(nasc_cell_add_node(m, NASC_OP_MUL, &in[1], 2, NULL, "a", L), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "operand 2 of 'a' refers to a value not defined before it");
    assert_int_equal(nasc_cell_end(m), NASC_OK);

    /* the prim dialect has no cells */
    nasc_module *p = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "p");
    assert_non_null(p);
    expect_diag(&ctx, (nasc_status)-nasc_cell_begin(p, "n", NASC_CELL_NORMAL, 2, L), NASC_EINPUT,
                "cells belong to the arch dialect");
    expect_diag(&ctx, nasc_arch_verify(p), NASC_EINPUT, "expected an arch module");
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINPUT, "expected a prim module");
    nasc_module_destroy(p);
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
}

/* A module holding a normal cell "n", a reduction cell "r", a macro cell "b"
 * and a recurrent cell "t", with no skeleton yet. */
static nasc_module *four_cells(nasc_ctx *ctx) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_ARCH, "k.nir");
    assert_non_null(m);
    static const nspec cnn2[] = {{"a", NASC_OP_CONV_3X3, {"h1"}, NOATTR}};
    static const nspec cnn1[] = {{"a", NASC_OP_CONV_3X3, {"x"}, NOATTR}};
    static const nspec rnn[] = {{"a", NASC_OP_LINEAR, {"x", "h"}, NOATTR}};
    assert_int_equal(build_cell(m, "n", NASC_CELL_NORMAL, 2, cnn2, 1, NASC_OUT_CONCAT, NULL, 0), 0);
    assert_int_equal(build_cell(m, "r", NASC_CELL_REDUCTION, 2, cnn2, 1, NASC_OUT_CONCAT, NULL, 0), 1);
    assert_int_equal(build_cell(m, "b", NASC_CELL_MACRO, 1, cnn1, 1, NASC_OUT_CONCAT, NULL, 0), 2);
    assert_int_equal(build_cell(m, "t", NASC_CELL_RECURRENT, 2, rnn, 1, NASC_OUT_AVG, NULL, 0), 3);
    return m;
}

static void test_verify_skeleton(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = four_cells(&ctx);
    expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, "the net has no skeleton");

    struct {
        nasc_net_kind kind;
        int normal, reduction, stages;
        const char *msg; /* NULL: valid */
    } roles[] = {
        {NASC_NET_CELLS, 0, 1, 3, NULL},
        {NASC_NET_CELLS, 0, -1, 1, NULL}, /* one stage needs no reduction cell */
        {NASC_NET_CELLS, -1, 1, 3, "a cells net needs a normal cell"},
        {NASC_NET_CELLS, 0, -1, 2, "a cells net needs a reduction cell"},
        {NASC_NET_CELLS, 1, 1, 3, "the normal cell 'r' is a reduction cell, expected a normal cell"},
        {NASC_NET_CELLS, 0, 0, 3, "the reduction cell 'n' is a normal cell, expected a reduction cell"},
        {NASC_NET_CELLS, 2, 1, 3, "the normal cell 'b' is a macro cell, expected a normal cell"},
        {NASC_NET_CELLS, 7, 1, 3, "the normal cell index 7 is out of range"},
        {NASC_NET_CELLS, 0, 4, 3, "the reduction cell index 4 is out of range"},
        {NASC_NET_MACRO, 2, -1, 3, NULL},
        {NASC_NET_MACRO, -1, -1, 3, "a macro net needs a body cell"},
        {NASC_NET_MACRO, 0, -1, 3, "the body cell 'n' is a normal cell, expected a macro cell"},
        {NASC_NET_MACRO, 2, 1, 3, "a macro net has one body cell and no reduction cell"},
        {NASC_NET_RECURRENT, 3, -1, 3, NULL},
        {NASC_NET_RECURRENT, 2, -1, 3, "the recurrent cell 'b' is a macro cell, expected a recurrent cell"},
        {NASC_NET_RECURRENT, 3, 1, 3, "a recurrent net has one cell and no reduction cell"},
        {NASC_NET_RECURRENT, -1, -1, 3, "a recurrent net needs a recurrent cell"},
        {(nasc_net_kind)5, 0, 1, 3, "bad net kind"},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        nasc_skeleton sk = nasc_skeleton_default(roles[i].kind <= NASC_NET_RECURRENT ? roles[i].kind : NASC_NET_CELLS);
        sk.kind = roles[i].kind;
        sk.normal_cell = roles[i].normal;
        sk.reduction_cell = roles[i].reduction;
        sk.stages = roles[i].stages;
        sk.loc = (nasc_loc){3, 4};
        nasc_net_set_skeleton(m, &sk);
        nasc_status st = nasc_arch_verify(m);
        if (!roles[i].msg) {
            if (st) fail_diag(&ctx, "valid skeleton refused");
            continue;
        }
        expect_diag(&ctx, st, NASC_EINPUT, roles[i].msg);
        assert_int_equal(ctx.diag.line, 3);
        assert_int_equal(ctx.diag.col, 4);
    }

    /* value ranges */
    struct {
        size_t off;
        int v;
        const char *msg;
    } vals[] = {
        {offsetof(nasc_skeleton, in_c), 0, "input channels must be between 1 and 1048576, got 0"},
        {offsetof(nasc_skeleton, in_h), -3, "input height must be between 1 and 1048576, got -3"},
        {offsetof(nasc_skeleton, in_w), (1 << 20) + 1, "input width must be between 1 and 1048576"},
        {offsetof(nasc_skeleton, classes), 0, "classes must be between"},
        {offsetof(nasc_skeleton, channels), 0, "channels must be between"},
        {offsetof(nasc_skeleton, stem_multiplier), 0, "stem_multiplier must be between"},
        {offsetof(nasc_skeleton, stages), 9, "at most 8 stages, got 9"},
        {offsetof(nasc_skeleton, cells_per_stage), 65, "at most 64 cells per stage, got 65"},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
        sk.normal_cell = 0;
        sk.reduction_cell = 1;
        *(int *)((char *)&sk + vals[i].off) = vals[i].v;
        nasc_net_set_skeleton(m, &sk);
        expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, vals[i].msg);
    }
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
}

/* Cell rules the builder accepts and the verifier refuses, and recurrent
 * cells with 2 or 3 inputs. */
static void test_verify_cells(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    static const nspec rnn3[] = {
        {"g", NASC_OP_LINEAR, {"x", "h", "c"}, NOATTR},
        {"ht", NASC_OP_TANH, {"g"}, NOATTR},
        {"ct", NASC_OP_SIGMOID, {"g"}, NOATTR},
    };
    static const nspec rnn2[] = {
        {"g", NASC_OP_LINEAR, {"x", "h"}, NOATTR},
        {"ht", NASC_OP_TANH, {"g"}, NOATTR},
        {"ct", NASC_OP_SIGMOID, {"g"}, NOATTR},
    };
    const char *two[] = {"ht", "ct"}, *one[] = {"ht"};
    struct {
        nasc_cell_kind kind;
        uint32_t n_in;
        const nspec *nodes;
        int n;
        nasc_out_rule rule;
        const char *const *outs;
        uint32_t n_outs;
        const char *msg; /* NULL: valid */
    } cases[] = {
        {NASC_CELL_RECURRENT, 3, rnn3, 3, NASC_OUT_STATE, two, 2, NULL},
        {NASC_CELL_RECURRENT, 3, rnn3, 3, NASC_OUT_AVG, NULL, 0, "reads a memory state c, so its output must be 'state'"},
        {NASC_CELL_RECURRENT, 2, rnn2, 3, NASC_OUT_SUM, NULL, 0, NULL},
        {NASC_CELL_RECURRENT, 2, rnn2, 2, NASC_OUT_STATE, one, 1, NULL},
        {NASC_CELL_RECURRENT, 2, rnn2, 3, NASC_OUT_STATE, two, 2, "'state' lists h_t, plus c_t when the cell has a c input"},
        {NASC_CELL_RECURRENT, 3, rnn3, 3, NASC_OUT_STATE, NULL, 0, "'state' lists h_t"},
        {NASC_CELL_RECURRENT, 3, rnn3, 3, NASC_OUT_CONCAT, NULL, 0, "output is avg, sum or state, not concat"},
        /* unused node with an explicit output list: ct is neither read nor listed */
        {NASC_CELL_RECURRENT, 2, rnn2, 3, NASC_OUT_STATE, one, 1, "node 'ct' of cell 'c' is never used"},
        /* a cell that reads c must give c_t too */
        {NASC_CELL_RECURRENT, 3, rnn3, 3, NASC_OUT_STATE, one, 1, "'state' lists h_t, plus c_t when the cell has a c input"},
        {NASC_CELL_NORMAL, 2, NULL, 0, NASC_OUT_CONCAT, NULL, 0, "cell 'c' has no nodes and no outputs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "c");
        assert_non_null(m);
        int ci = build_cell(m, "c", cases[i].kind, cases[i].n_in, cases[i].nodes, cases[i].n, cases[i].rule,
                            cases[i].outs, cases[i].n_outs);
        nasc_skeleton sk = nasc_skeleton_default(cases[i].kind == NASC_CELL_RECURRENT ? NASC_NET_RECURRENT : NASC_NET_CELLS);
        sk.normal_cell = ci;
        sk.stages = 1;
        nasc_net_set_skeleton(m, &sk);
        nasc_status st = nasc_arch_verify(m);
        if (!cases[i].msg) {
            if (st) fail_diag(&ctx, "valid cell refused");
        } else {
            expect_diag(&ctx, st, NASC_EINPUT, cases[i].msg);
        }
        nasc_module_destroy(m);
    }

    /* the 'state' rule in a CNN cell; explicit outputs with an unused node */
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "c");
    static const nspec cnn[] = {
        {"a", NASC_OP_CONV_3X3, {"h1"}, NOATTR},
        {"b", NASC_OP_CONV_3X3, {"h2"}, NOATTR},
        {"c", NASC_OP_CONV_3X3, {"a"}, NOATTR},
    };
    const char *outs_c[] = {"c"};
    int ci = build_cell(m, "n", NASC_CELL_NORMAL, 2, cnn, 3, NASC_OUT_CONCAT, outs_c, 1);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
    sk.stages = 1;
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    m->nodes[m->cells[ci].first_node + 1].loc = (nasc_loc){12, 3};
    expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT,
                "node 'b' of cell 'n' is never used: no node reads it and the output list leaves it out");
    assert_int_equal(ctx.diag.line, 12);
    assert_int_equal(ctx.diag.col, 3);
    nasc_module_destroy(m);

    m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "c");
    ci = build_cell(m, "n", NASC_CELL_NORMAL, 2, cnn, 3, NASC_OUT_STATE, outs_c, 1);
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, "the 'state' output rule is for recurrent cells");
    nasc_module_destroy(m);
}

/* Modules edited in place (a search decoder may write the arrays directly):
 * the verifier catches what the builder would have refused. */
static void test_verify_edited_arch(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    static const nspec cnn[] = {
        {"a", NASC_OP_CONV_3X3, {"h1"}, NOATTR},
        {"b", NASC_OP_SEP_CONV_3X3, {"a"}, NOATTR},
        {"c", NASC_OP_ADD, {"a", "b"}, NOATTR},
    };
    for (int k = 0; k < 7; k++) {
        nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "e.nir");
        int ci = build_cell(m, "n", NASC_CELL_NORMAL, 2, cnn, 3, NASC_OUT_CONCAT, NULL, 0);
        nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
        sk.stages = 1;
        sk.normal_cell = ci;
        nasc_net_set_skeleton(m, &sk);
        assert_int_equal(nasc_arch_verify(m), NASC_OK);
        nasc_cell *c = &m->cells[ci];
        nasc_node *a = &m->nodes[c->first_node], *b = &m->nodes[c->first_node + 1];
        a->loc = (nasc_loc){4, 5};
        b->loc = (nasc_loc){5, 5};
        const char *msg = NULL;
        nasc_loc at = {4, 5};
        switch (k) {
        case 0: /* a reads b, which comes later */
            m->args[a->first_arg] = 3;
            msg = "node 'a' uses a value that is not defined before it";
            break;
        case 1: /* b reads itself */
            m->args[b->first_arg] = 3;
            msg = "node 'b' uses a value that is not defined before it";
            at = b->loc;
            break;
        case 2:
            a->op = NASC_OP_SIGMOID;
            msg = "op 'sigmoid' cannot be used in a normal cell";
            break;
        case 3:
            a->n_args = 2;
            msg = "node 'a': op 'conv_3x3' has the wrong number of operands (2)";
            break;
        case 4:
            a->op = (nasc_op)NASC_OP_COUNT;
            msg = "node 'a' has an unknown op";
            break;
        case 5:
            a->op = NASC_OP_CONV;
            msg = "node 'a': conv needs a kernel";
            break;
        case 6:
            c->out_rule = (nasc_out_rule)9;
            c->out_loc = (nasc_loc){9, 3};
            msg = "cell 'n': bad output rule";
            at = c->out_loc;
            break;
        }
        expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, msg);
        assert_int_equal(ctx.diag.line, at.line);
        assert_int_equal(ctx.diag.col, at.col);
        assert_string_equal(ctx.diag.file, "e.nir");
        nasc_module_destroy(m);
    }
    /* an explicit output out of range */
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "e.nir");
    const char *outs[] = {"c"};
    int ci = build_cell(m, "n", NASC_CELL_NORMAL, 2, cnn, 3, NASC_OUT_SUM, outs, 1);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
    sk.stages = 1;
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    assert_int_equal(nasc_arch_verify(m), NASC_OK);
    m->args[m->cells[ci].first_out] = 5;
    expect_diag(&ctx, nasc_arch_verify(m), NASC_EINPUT, "cell 'n': output 1 is not a value of the cell");
    nasc_module_destroy(m);
}

#define SKEL_CELLS(extra)                                                                                   \
    "arch {\n  kind cells\n  input 3x8x8\n  channels 4\n  cells_per_stage 1\n" extra "}\n\n"

/* Errors through the text parser, with their line:col (cases tests/bad/text
 * and tests/ir/test_text.c do not have). */
static void test_verify_text_errors(void **state) {
    (void)state;
    /* wrong arity */
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h) {\n  %a = highway %x, %h\n  out avg\n}\n",
                      NASC_EINPUT, 7, 8, "op 'highway' takes 3 operands, found 2");
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h) {\n  %a = tanh %x, %h\n  out avg\n}\n",
                      NASC_EINPUT, 7, 8, "op 'tanh' takes 1 operand, found 2");
    /* CNN ops in a recurrent cell, RNN ops in CNN cells */
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h, %c) {\n  %g = linear %x, %h\n  %a = sep_conv_3x3 %g\n  out avg\n}\n",
                      NASC_EINPUT, 8, 8, "op 'sep_conv_3x3' cannot be used in a recurrent cell");
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h) {\n  %a = concat %x, %h\n  out avg\n}\n",
                      NASC_EINPUT, 7, 8, "op 'concat' cannot be used in a recurrent cell");
    expect_text_error("arch {\n  kind macro\n  normal @b\n}\n\n"
                      "cell @b macro (%x) {\n  %a = linear %x\n  out concat\n}\n",
                      NASC_EINPUT, 7, 8, "op 'linear' cannot be used in a macro cell");
    expect_text_error(SKEL_CELLS("  stages 2\n  normal @n\n  reduction @r\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n\n"
                      "cell @r reduction (%h2, %h1) {\n  %a = conv_3x3 %h1\n  %b = mul %a, %h2\n  out concat\n}\n",
                      NASC_EINPUT, 18, 8, "op 'mul' cannot be used in a reduction cell");
    /* an operand that names a later node, or a node of another cell */
    expect_text_error(SKEL_CELLS("  stages 1\n  normal @n\n")
                      "cell @n normal (%h2, %h1) {\n  %a = add %h1, %b\n  %b = conv_3x3 %h2\n  out concat\n}\n",
                      NASC_EINPUT, 11, 17, "use of undefined value '%b'");
    expect_text_error(SKEL_CELLS("  stages 1\n  normal @n\n")
                      "cell @m normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n\n"
                      "cell @n normal (%h2, %h1) {\n  %b = conv_3x3 %a\n  out concat\n}\n",
                      NASC_EINPUT, 16, 17, "use of undefined value '%a'");
    expect_text_error(SKEL_CELLS("  stages 1\n  normal @n\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat %a, %z\n}\n",
                      NASC_EINPUT, 12, 18, "use of undefined value '%z'");
    /* missing skeleton cells and kind mismatches: reported at the arch block */
    expect_text_error(SKEL_CELLS("  stages 2\n  normal @n\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "a cells net needs a reduction cell");
    expect_text_error(SKEL_CELLS("  stages 1\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "a cells net needs a normal cell");
    expect_text_error(SKEL_CELLS("  stages 1\n  normal @r\n")
                      "cell @r reduction (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "the normal cell 'r' is a reduction cell, expected a normal cell");
    expect_text_error(SKEL_CELLS("  stages 2\n  normal @n\n  reduction @n\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "the reduction cell 'n' is a normal cell, expected a reduction cell");
    expect_text_error("arch {\n  kind macro\n  normal @b\n  reduction @b\n}\n\n"
                      "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "a macro net has one body cell and no reduction cell");
    expect_text_error(SKEL_CELLS("  stages 9\n  normal @n\n  reduction @n\n")
                      "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  out concat\n}\n",
                      NASC_EINPUT, 1, 1, "at most 8 stages, got 9");
    /* recurrent state rules */
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h) {\n  %a = linear %x, %h\n  %b = tanh %a\n  out state %a, %b\n}\n",
                      NASC_EINPUT, 9, 3, "'state' lists h_t, plus c_t when the cell has a c input");
    expect_text_error("arch {\n  kind recurrent\n  normal @r\n}\n\n"
                      "cell @r recurrent (%x, %h) {\n  %a = linear %x, %h\n  out concat\n}\n",
                      NASC_EINPUT, 8, 3, "a recurrent cell's output is avg, sum or state, not concat");
    /* an empty cell; attributes out of range (builder message, node location) */
    expect_text_error("arch {\n  kind macro\n  normal @b\n}\n\ncell @b macro (%x) {\n  out concat\n}\n",
                      NASC_EINPUT, 6, 1, "cell 'b' has no nodes and no outputs");
    expect_text_error("arch {\n  kind macro\n  normal @b\n}\n\ncell @b macro (%x) {\n  %a = conv_3x3 %x {stride=9}\n"
                      "  out concat\n}\n",
                      NASC_EINPUT, 7, 3, "attribute out of range on 'a'");
    expect_text_error("arch {\n  kind macro\n  normal @b\n}\n\ncell @b macro (%x) {\n"
                      "  %a = conv %x {kernel=65x1, filters=4}\n  out concat\n}\n",
                      NASC_EINPUT, 7, 3, "attribute out of range on 'a'");
    expect_text_error("arch {\n  kind macro\n  normal @b\n}\n\ncell @b macro (%x) {\n"
                      "  %a = conv %x {kernel=3x3, filters=-4}\n  out concat\n}\n",
                      NASC_EINPUT, 7, 3, "attribute out of range on 'a'");

    /* prim shape rules */
#define PRIM_X "prim {\n  input %x : f32[N,3,8,8]\n"
    expect_text_error(PRIM_X "  param %w : f32[4,3,5,5]\n"
                             "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,8,8]\n",
                      NASC_EINPUT, 4, 3, "conv '%c': conv kernel 3x3 does not match weight 5x5");
    expect_text_error(PRIM_X "  param %w : f32[4,2,3,3]\n"
                             "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,8,8]\n",
                      NASC_EINPUT, 4, 3, "conv input has 3 channels, weight expects 2");
    expect_text_error(PRIM_X "  input %y : f32[N,3,4,4]\n"
                             "  %c = concat %x, %y {axis=1} : f32[N,6,8,8]\n",
                      NASC_EINPUT, 4, 3, "concat operands differ outside axis 1: f32[N,3,8,8] vs f32[N,3,4,4]");
    expect_text_error(PRIM_X "  input %y : f32[N,3,8,4]\n  %s = add %x, %y : f32[N,3,8,8]\n", NASC_EINPUT, 4, 3,
                      "add '%s': add operands differ in shape: f32[N,3,8,8] vs f32[N,3,8,4]");
    expect_text_error(PRIM_X "  param %w : f32[10,191]\n  param %b : f32[10]\n  %f = flatten %x : f32[N,192]\n"
                             "  %y = inner_product %f, %w, %b : f32[N,10]\n",
                      NASC_EINPUT, 6, 3, "inner_product shapes do not fit: x has 192 features, w is [10,191]");
#undef PRIM_X
}

/* Prim builder refusals (shape rules) and the prim verifier on edited modules. */
static void test_prim_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "p.nir");
    assert_non_null(m);
    nasc_type tx = {NASC_F32, 4, {NASC_BATCH, 3, 8, 8}}, ty4 = {NASC_F32, 4, {NASC_BATCH, 3, 8, 4}},
              tsmall = {NASC_F32, 4, {NASC_BATCH, 3, 4, 4}}, tflat = {NASC_F32, 2, {NASC_BATCH, 5, 0, 0}};
    uint32_t x = nasc_prim_add_input(m, "x", &tx);
    uint32_t y = nasc_prim_add_input(m, "y", &ty4);
    uint32_t s = nasc_prim_add_input(m, "s", &tsmall);
    uint32_t f = nasc_prim_add_input(m, "f", &tflat);
    nasc_type tw55 = {NASC_F32, 4, {4, 3, 5, 5}}, tw2 = {NASC_F32, 4, {4, 2, 3, 3}}, tw6 = {NASC_F32, 4, {4, 1, 3, 3}},
              tw33 = {NASC_F32, 4, {4, 3, 3, 3}}, tw_r2 = {NASC_F32, 2, {4, 3, 0, 0}}, tv3 = {NASC_F32, 1, {3}},
              tv4 = {NASC_F32, 1, {4}}, tfw = {NASC_F32, 2, {10, 6, 0, 0}}, tfb = {NASC_F32, 1, {10}};
    uint32_t w55 = nasc_prim_add_param(m, "w55", &tw55), w2 = nasc_prim_add_param(m, "w2", &tw2),
             w6 = nasc_prim_add_param(m, "w6", &tw6), w33 = nasc_prim_add_param(m, "w33", &tw33),
             wr2 = nasc_prim_add_param(m, "wr2", &tw_r2), v3 = nasc_prim_add_param(m, "v3", &tv3),
             v4 = nasc_prim_add_param(m, "v4", &tv4), fw = nasc_prim_add_param(m, "fw", &tfw),
             fb = nasc_prim_add_param(m, "fb", &tfb);
    assert_int_equal(fb, 12);
    nasc_prim_attrs conv3 = nasc_prim_attrs_default();
    conv3.kh = conv3.kw = 3;
    conv3.pt = conv3.pl = conv3.pb = conv3.pr = 1;
    nasc_prim_attrs g4 = conv3;
    g4.groups = 3;
    nasc_prim_attrs nopad5 = nasc_prim_attrs_default();
    nopad5.kh = nopad5.kw = 5;
    nasc_prim_attrs pool = nasc_prim_attrs_default();
    pool.kh = pool.kw = 3;
    pool.pt = 3;
    nasc_prim_attrs sh = nasc_prim_attrs_default();
    sh.dy = 8;
    nasc_prim_attrs ax0 = nasc_prim_attrs_default(), ax4 = nasc_prim_attrs_default();
    ax0.axis = 0;
    ax4.axis = 4;
    nasc_prim_attrs stride0 = conv3;
    stride0.sh = 0;
    nasc_prim_attrs dil0 = conv3;
    dil0.dh = 0;
    nasc_prim_attrs eps = nasc_prim_attrs_default();
    eps.eps = 0;
    struct {
        nasc_prim_op op;
        uint32_t args[3];
        uint32_t n;
        const nasc_prim_attrs *a;
        const char *msg;
    } bad[] = {
        {NASC_PRIM_ADD, {x, y}, 2, NULL, "add '%r': add operands differ in shape: f32[N,3,8,8] vs f32[N,3,8,4]"},
        {NASC_PRIM_MUL, {x, s}, 2, NULL, "mul operands differ in shape"},
        {NASC_PRIM_CONV, {x, w55}, 2, &conv3, "conv kernel 3x3 does not match weight 5x5"},
        {NASC_PRIM_CONV, {x, w2}, 2, &conv3, "conv input has 3 channels, weight expects 2 (2 per group x 1 groups)"},
        {NASC_PRIM_CONV, {x, w6}, 2, &g4, "conv output channels 4 not divisible by groups 3"},
        {NASC_PRIM_CONV, {x, wr2}, 2, &conv3, "conv needs a rank-4 input and weight"},
        {NASC_PRIM_CONV, {s, w55}, 2, &nopad5, "kernel 5x5 (dilated 5x5) is larger than the padded input 4x4"},
        {NASC_PRIM_CONV, {x, w33}, 2, &stride0, "strides must be 1..64"},
        {NASC_PRIM_CONV, {x, w33}, 2, &dil0, "dilations must be 1..64"},
        {NASC_PRIM_CONV, {x}, 1, &conv3, "'conv' takes 2 operands, got 1"},
        {NASC_PRIM_CONCAT, {x, s}, 2, NULL, "concat operands differ outside axis 1: f32[N,3,8,8] vs f32[N,3,4,4]"},
        {NASC_PRIM_CONCAT, {x, f}, 2, NULL, "concat operands differ in rank"},
        {NASC_PRIM_CONCAT, {x, x}, 2, &ax0, "concat along the batch axis is not supported"},
        {NASC_PRIM_CONCAT, {x, x}, 2, &ax4, "concat axis 4 out of range for rank 4"},
        {NASC_PRIM_BATCH_NORM, {x, v4, v4}, 3, NULL, "batch_norm scale and shift must have shape [3]"},
        {NASC_PRIM_BATCH_NORM, {x, v3, v3}, 3, &eps, "batch_norm eps must be in (0, 1)"},
        {NASC_PRIM_MAX_POOL, {x}, 1, &pool, "pooling pads must be smaller than the kernel"},
        {NASC_PRIM_MAX_POOL, {f}, 1, &pool, "pooling needs a rank-4 input"},
        {NASC_PRIM_SHIFT, {x}, 1, &sh, "shift offset 8,0 out of range"},
        {NASC_PRIM_INNER_PRODUCT, {f, fw, fb}, 3, NULL, "inner_product shapes do not fit: x has 5 features, w is [10,6]"},
        {NASC_PRIM_INNER_PRODUCT, {x, fw, fb}, 3, NULL, "inner_product needs x [N,I], w [O,I], b [O]"},
        {NASC_PRIM_GLOBAL_AVG_POOL, {f}, 1, NULL, "global_avg_pool needs a rank-4 input"},
        {NASC_PRIM_RELU, {x, x}, 2, NULL, "'relu' takes 1 operand, got 2"},
        {NASC_PRIM_ADD, {x, 99}, 2, NULL, "operand 2 of '%r' is not a defined value"},
        {NASC_PRIM_SOFTMAX, {f}, 1, &ax4, "softmax axis 4 out of range"},
        {(nasc_prim_op)NASC_PRIM_COUNT, {x}, 1, NULL, "unknown prim op"},
    };
    uint32_t n_values = m->n_values;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctx.diag.status = NASC_OK;
        uint32_t v = nasc_prim_add_op(m, bad[i].op, bad[i].args, bad[i].n, bad[i].a, "r", "g", (nasc_loc){6, 3});
        if (v != BAD32) fail_msg("case %zu was accepted", i);
        expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, bad[i].msg);
        assert_int_equal(ctx.diag.line, 6);
        assert_int_equal(ctx.diag.col, 3);
        assert_int_equal(m->n_values, n_values);
        assert_int_equal(m->n_prims, 0);
    }
    /* values */
    nasc_type t0 = {NASC_F32, 2, {NASC_BATCH, 0, 0, 0}}, tr5 = {NASC_F32, 5, {1, 1, 1, 1}};
    assert_int_equal(nasc_prim_add_input(m, "z", &t0), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "bad type for '%z'");
    assert_int_equal(nasc_prim_add_input(m, "z", &tr5), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "bad type for '%z'");
    assert_int_equal(nasc_prim_add_param(m, "z", &tx), BAD32); /* a parameter has no batch dimension */
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "bad type for '%z'");
    assert_int_equal(nasc_prim_add_input(m, "x", &tx), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "duplicate name '%x'");
    assert_int_equal(nasc_prim_add_input(m, "a b", &tx), BAD32);
    expect_diag(&ctx, ctx.diag.status, NASC_EINPUT, "bad value name 'a b'");
    expect_diag(&ctx, nasc_prim_add_output(m, 999), NASC_EINPUT, "output is not a defined value");

    /* a valid module, then the verifier on edits */
    uint32_t c = nasc_prim_add_op(m, NASC_PRIM_CONV, (uint32_t[]){x, w33}, 2, &conv3, "c", "g", (nasc_loc){7, 3});
    assert_int_not_equal(c, BAD32);
    uint32_t r = nasc_prim_add_op(m, NASC_PRIM_RELU, &c, 1, NULL, "r", "g", (nasc_loc){8, 3});
    assert_int_not_equal(r, BAD32);
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINPUT, "the module has no output");
    assert_int_equal(nasc_prim_add_output(m, r), NASC_OK);
    assert_int_equal(nasc_prim_verify(m), NASC_OK);
    assert_int_equal(m->values[c].type.dims[1], 4);
    assert_int_equal(m->values[c].type.dims[2], 8);

    m->values[r].type.dims[1] = 5; /* the stored type no longer follows the rule */
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINPUT, "'%r' has type f32[N,5,8,8] but relu gives f32[N,4,8,8]");
    assert_int_equal(ctx.diag.line, 8);
    m->values[r].type.dims[1] = 4;
    m->values[w33].type.dims[3] = 5; /* an operand's type changed under the op */
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINPUT, "conv '%c': conv kernel 3x3 does not match weight 3x5");
    assert_int_equal(ctx.diag.line, 7);
    m->values[w33].type.dims[3] = 3;
    uint32_t *arg = &m->args[m->prims[1].first_arg];
    *arg = r; /* relu reads its own result */
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINPUT, "'%r': operand 1 is not defined before it");
    *arg = c;
    m->values[c].def = 1;
    expect_diag(&ctx, nasc_prim_verify(m), NASC_EINTERNAL, "value '%c' has a bad definition");
    m->values[c].def = 0;
    assert_int_equal(nasc_prim_verify(m), NASC_OK);
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
}

/* ------------------------------------------------------------ 3. lowering */

static const nasc_prim *prim_of(const nasc_module *p, const char *name) {
    int64_t v = nasc_prim_lookup(p, name, strlen(name));
    if (v < 0) fail_msg("no value '%s'", name);
    if (p->values[v].kind != NASC_VAL_OP) fail_msg("'%s' is not an op result", name);
    return &p->prims[p->values[v].def];
}

/* The value's type, formatted ("f32[N,4,8,8]"); its kind must be `kind`. */
static void check_value(const nasc_module *p, const char *name, nasc_value_kind kind, const char *type) {
    int64_t v = nasc_prim_lookup(p, name, strlen(name));
    if (v < 0) fail_msg("no value '%s'", name);
    if (p->values[v].kind != kind) fail_msg("'%s' has kind %d, expected %d", name, (int)p->values[v].kind, (int)kind);
    char buf[96];
    nasc_type_format(&p->values[v].type, buf, sizeof buf);
    if (strcmp(buf, type) != 0) fail_msg("'%s' has type %s, expected %s", name, buf, type);
}

static const char *arg_name(const nasc_module *p, const nasc_prim *op, uint32_t i) {
    assert_true(i < op->n_args);
    return nasc_str(p, p->values[p->args[op->first_arg + i]].name);
}

typedef struct step {
    nasc_prim_op op;
    const char *name;
} step;

/* Prims s[0..n) follow each other in this order, starting at s[0].name. */
static void expect_seq(const nasc_module *p, const step *s, int n) {
    uint32_t i0 = (uint32_t)(prim_of(p, s[0].name) - p->prims);
    assert_true(i0 + (uint32_t)n <= p->n_prims);
    for (int i = 0; i < n; i++) {
        const nasc_prim *q = &p->prims[i0 + (uint32_t)i];
        const char *got = nasc_str(p, p->values[q->result].name);
        if (q->op != s[i].op || strcmp(got, s[i].name) != 0)
            fail_msg("step %d: got %s '%s', expected %s '%s'", i, nasc_prim_op_info_get(q->op)->name, got,
                     nasc_prim_op_info_get(s[i].op)->name, s[i].name);
    }
}

static nasc_module *lower_ok(nasc_ctx *ctx, const nasc_module *a) {
    nasc_module *p = NULL;
    if (nasc_lower(a, &p)) fail_diag(ctx, "lower");
    assert_non_null(p);
    assert_int_equal(p->dialect, NASC_DIALECT_PRIM);
    assert_int_equal(nasc_prim_verify(p), NASC_OK);
    return p;
}

static const char *const ONE_NODE =
    "arch {\n  kind macro\n  input 1x8x8\n  classes 3\n  channels 4\n  stem_multiplier 1\n  normal @body\n}\n\n"
    "cell @body macro (%x) {\n  %l0 = conv_3x3 %x\n  out concat\n}\n";

/* A recurrent net unrolled over 2 steps: per step an embedding, the
 * cell's ops (highway as sub, mul, add; two loose ends averaged), one set
 * of parameters for both steps; the decoder over the stacked h_t. */
static void test_lower_recurrent(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *a = parse_ok(&ctx, "arch {\n  kind recurrent\n  input 3\n  classes 7\n  channels 4\n  normal @r\n}\n\n"
                                    "cell @r recurrent (%x, %h) {\n  %g = linear %x, %h\n  %c = sigmoid %g\n"
                                    "  %t = tanh %g\n  %s = highway %c, %t, %h\n  %u = relu %g\n  out avg\n}\n");
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = 2;
    nasc_module *p = NULL;
    if (nasc_lower_with(a, &lo, &p)) {
        nasc_diag_print(&ctx.diag, stderr);
        fail();
    }
    static const step seq[] = {
        {NASC_PRIM_EMBEDDING, "t0.embed"}, {NASC_PRIM_CONCAT, "t0.g.cat"},   {NASC_PRIM_INNER_PRODUCT, "t0.g"},
        {NASC_PRIM_SIGMOID, "t0.c"},       {NASC_PRIM_TANH, "t0.t"},         {NASC_PRIM_SUB, "t0.s.diff"},
        {NASC_PRIM_MUL, "t0.s.gated"},     {NASC_PRIM_ADD, "t0.s"},          {NASC_PRIM_RELU, "t0.u"},
        {NASC_PRIM_ADD, "t0.sum"},         {NASC_PRIM_SCALE, "t0.avg"},      {NASC_PRIM_RESHAPE, "t0.h_row"},
        {NASC_PRIM_EMBEDDING, "t1.embed"},
    };
    expect_seq(p, seq, sizeof seq / sizeof seq[0]);
    check_value(p, "x", NASC_VAL_INPUT, "f32[N,2]");
    check_value(p, "h0", NASC_VAL_INPUT, "f32[N,4]");
    check_value(p, "embed.w", NASC_VAL_PARAM, "f32[7,3]");
    check_value(p, "cell.g.w", NASC_VAL_PARAM, "f32[4,7]");
    check_value(p, "cell.g.b", NASC_VAL_PARAM, "f32[4]");
    check_value(p, "decoder.w", NASC_VAL_PARAM, "f32[4,7]");
    check_value(p, "decoder.b", NASC_VAL_PARAM, "f32[7]");
    check_value(p, "t1.g.cat", NASC_VAL_OP, "f32[N,7]");
    check_value(p, "decoder.h_all", NASC_VAL_OP, "f32[N,2,4]");
    check_value(p, "logits", NASC_VAL_OP, "f32[N,2,7]");
    uint32_t n_params = 0;
    for (uint32_t v = 0; v < p->n_values; v++) n_params += p->values[v].kind == NASC_VAL_PARAM;
    assert_int_equal(n_params, 5); /* shared by both steps */
    assert_int_equal(p->n_outputs, 2);
    assert_string_equal(nasc_str(p, p->values[p->outputs[0]].name), "logits");
    assert_string_equal(nasc_str(p, p->values[p->outputs[1]].name), "t1.avg");
    const nasc_prim *avg = &p->prims[10];
    assert_true(avg->a.alpha == 0.5f);
    /* step 1 reads step 0's h_t */
    const nasc_prim *cat1 = &p->prims[13];
    assert_int_equal(p->args[cat1->first_arg + 1], p->prims[10].result);
    nasc_module_destroy(p);
    nasc_module_destroy(a);
    assert_int_equal(ta.live, 0);
}

static void test_lower_one_node(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *a = parse_ok(&ctx, ONE_NODE);
    nasc_module *p = lower_ok(&ctx, a);
    static const step seq[] = {
        {NASC_PRIM_CONV, "stem.conv"},        {NASC_PRIM_BATCH_NORM, "stem.bn"},
        {NASC_PRIM_RELU, "body.l0.relu"},     {NASC_PRIM_CONV, "body.l0.conv"},
        {NASC_PRIM_BATCH_NORM, "body.l0.bn"}, {NASC_PRIM_GLOBAL_AVG_POOL, "head.gap"},
        {NASC_PRIM_FLATTEN, "head.flatten"},  {NASC_PRIM_INNER_PRODUCT, "logits"},
    };
    assert_int_equal(p->n_prims, 8);
    expect_seq(p, seq, 8);
    assert_int_equal(p->n_values, 17); /* 1 input, 8 parameters, 8 results */
    check_value(p, "x", NASC_VAL_INPUT, "f32[N,1,8,8]");
    check_value(p, "stem.conv.w", NASC_VAL_PARAM, "f32[4,1,3,3]");
    check_value(p, "stem.bn.scale", NASC_VAL_PARAM, "f32[4]");
    check_value(p, "stem.bn.shift", NASC_VAL_PARAM, "f32[4]");
    check_value(p, "body.l0.conv.w", NASC_VAL_PARAM, "f32[4,4,3,3]");
    check_value(p, "body.l0.bn.scale", NASC_VAL_PARAM, "f32[4]");
    check_value(p, "body.l0.bn.shift", NASC_VAL_PARAM, "f32[4]");
    check_value(p, "head.fc.w", NASC_VAL_PARAM, "f32[3,4]");
    check_value(p, "head.fc.b", NASC_VAL_PARAM, "f32[3]");
    check_value(p, "stem.conv", NASC_VAL_OP, "f32[N,4,8,8]");
    check_value(p, "body.l0.conv", NASC_VAL_OP, "f32[N,4,8,8]");
    check_value(p, "head.gap", NASC_VAL_OP, "f32[N,4,1,1]");
    check_value(p, "head.flatten", NASC_VAL_OP, "f32[N,4]");
    check_value(p, "logits", NASC_VAL_OP, "f32[N,3]");
    /* dataflow */
    const nasc_prim *c = prim_of(p, "body.l0.conv");
    assert_string_equal(arg_name(p, c, 0), "body.l0.relu");
    assert_string_equal(arg_name(p, c, 1), "body.l0.conv.w");
    assert_string_equal(arg_name(p, prim_of(p, "body.l0.relu"), 0), "stem.bn");
    assert_string_equal(arg_name(p, prim_of(p, "stem.conv"), 0), "x");
    const nasc_prim *fc = prim_of(p, "logits");
    assert_string_equal(arg_name(p, fc, 0), "head.flatten");
    assert_string_equal(arg_name(p, fc, 1), "head.fc.w");
    assert_string_equal(arg_name(p, fc, 2), "head.fc.b");
    /* "same" padding, stride 1 */
    assert_int_equal(c->a.kh, 3);
    assert_int_equal(c->a.pt + c->a.pb, 2);
    assert_int_equal(c->a.pl, 1);
    assert_int_equal(c->a.sh, 1);
    assert_int_equal(c->a.groups, 1);
    /* cost-report groups */
    const char *groups[] = {"stem", "stem", "body.body", "body.body", "body.body", "head", "head", "head"};
    for (uint32_t i = 0; i < 8; i++) assert_string_equal(nasc_str(p, p->prims[i].group), groups[i]);
    assert_int_equal(p->n_outputs, 1);
    assert_int_equal(p->outputs[0], (uint32_t)nasc_prim_lookup(p, "logits", 6));
    nasc_module_destroy(p);
    nasc_module_destroy(a);
    assert_int_equal(ta.live, 0);
}

static const char *const REDUCE_NET =
    "arch {\n  kind cells\n  input 3x8x8\n  classes 10\n  channels 4\n  cells_per_stage 1\n  stages 2\n"
    "  stem_multiplier 1\n  normal @n\n  reduction @r\n}\n\n"
    "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  %b = conv_1x1 %h2\n  %c = add %a, %b\n  out concat\n}\n\n"
    "cell @r reduction (%h2, %h1) {\n  %a = max_pool_3x3 %h1\n  %b = identity %h2\n  %c = add %a, %b\n  out concat\n}\n";

static void test_lower_reduction(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = parse_ok(&ctx, REDUCE_NET);
    nasc_module *p = lower_ok(&ctx, a);
    /* cell0 normal (stage 0), cell1 reduction, cell2 normal (stage 1) */
    check_value(p, "stem.bn", NASC_VAL_OP, "f32[N,4,8,8]");
    check_value(p, "cell0.c.add", NASC_VAL_OP, "f32[N,4,8,8]");
    check_value(p, "cell1.c.add", NASC_VAL_OP, "f32[N,8,4,4]");
    check_value(p, "cell2.c.add", NASC_VAL_OP, "f32[N,8,4,4]");
    check_value(p, "cell0.a.conv.w", NASC_VAL_PARAM, "f32[4,4,3,3]");
    check_value(p, "cell2.a.conv.w", NASC_VAL_PARAM, "f32[8,8,3,3]");
    check_value(p, "head.fc.w", NASC_VAL_PARAM, "f32[10,8]");
    /* in the normal cells the ops keep stride 1; in the reduction cell the
     * ops on the inputs have stride 2 */
    assert_int_equal(prim_of(p, "cell0.a.conv")->a.sh, 1);
    assert_int_equal(prim_of(p, "cell2.a.conv")->a.sh, 1);
    const nasc_prim *mp = prim_of(p, "cell1.a.maxpool");
    assert_int_equal(mp->op, NASC_PRIM_MAX_POOL);
    assert_int_equal(mp->a.sh, 2);
    assert_int_equal(mp->a.sw, 2);
    assert_string_equal(arg_name(p, mp, 0), "cell1.h1.bn");
    check_value(p, "cell1.h1.bn", NASC_VAL_OP, "f32[N,8,8,8]"); /* preprocessed to the doubled count */

    /* identity in a reduction cell: a factorized reduction */
    static const step fr[] = {
        {NASC_PRIM_RELU, "cell1.b.relu"},   {NASC_PRIM_CONV, "cell1.b.path1"},  {NASC_PRIM_SHIFT, "cell1.b.shift"},
        {NASC_PRIM_CONV, "cell1.b.path2"},  {NASC_PRIM_CONCAT, "cell1.b.concat"}, {NASC_PRIM_BATCH_NORM, "cell1.b.bn"},
    };
    expect_seq(p, fr, N_(fr));
    assert_string_equal(arg_name(p, prim_of(p, "cell1.b.relu"), 0), "cell1.h2.bn");
    const nasc_prim *p1 = prim_of(p, "cell1.b.path1"), *p2 = prim_of(p, "cell1.b.path2");
    const nasc_prim *shift = prim_of(p, "cell1.b.shift");
    assert_string_equal(arg_name(p, p1, 0), "cell1.b.relu");
    assert_string_equal(arg_name(p, shift, 0), "cell1.b.relu");
    assert_string_equal(arg_name(p, p2, 0), "cell1.b.shift");
    assert_int_equal(shift->a.dy, 1);
    assert_int_equal(shift->a.dx, 1);
    for (int k = 0; k < 2; k++) {
        const nasc_prim *q = k ? p2 : p1;
        assert_int_equal(q->a.kh, 1);
        assert_int_equal(q->a.kw, 1);
        assert_int_equal(q->a.sh, 2);
        assert_int_equal(q->a.sw, 2);
    }
    check_value(p, "cell1.b.path1.w", NASC_VAL_PARAM, "f32[4,8,1,1]");
    check_value(p, "cell1.b.path2.w", NASC_VAL_PARAM, "f32[4,8,1,1]");
    check_value(p, "cell1.b.concat", NASC_VAL_OP, "f32[N,8,4,4]");
    /* the next normal cell reduces its 8x8 h2 the same way */
    check_value(p, "cell2.h2.concat", NASC_VAL_OP, "f32[N,8,4,4]");
    assert_int_equal(prim_of(p, "cell2.h2.shift")->op, NASC_PRIM_SHIFT);
    assert_string_equal(arg_name(p, prim_of(p, "cell2.h2.relu"), 0), "cell0.c.add");
    /* ops read the preprocessed inputs */
    assert_string_equal(arg_name(p, prim_of(p, "cell0.b.relu"), 0), "cell0.h2.bn");
    assert_string_equal(arg_name(p, prim_of(p, "cell0.h2.relu"), 0), "stem.bn");
    nasc_module_destroy(p);
    nasc_module_destroy(a);
}

static void test_lower_sep_conv(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    /* stem 16 channels -> cell 8 channels, so C_in != C_out */
    nasc_module *a = parse_ok(&ctx, "arch {\n  kind macro\n  input 1x8x8\n  channels 8\n  stem_multiplier 2\n"
                                    "  normal @b\n}\n\ncell @b macro (%x) {\n  %s = sep_conv_3x3 %x\n  out concat\n}\n");
    nasc_module *p = lower_ok(&ctx, a);
    static const step seq[] = {
        {NASC_PRIM_RELU, "body.s.relu1"}, {NASC_PRIM_CONV, "body.s.dw1"}, {NASC_PRIM_CONV, "body.s.pw1"},
        {NASC_PRIM_BATCH_NORM, "body.s.bn1"}, {NASC_PRIM_RELU, "body.s.relu2"}, {NASC_PRIM_CONV, "body.s.dw2"},
        {NASC_PRIM_CONV, "body.s.pw2"}, {NASC_PRIM_BATCH_NORM, "body.s.bn2"}, {NASC_PRIM_GLOBAL_AVG_POOL, "head.gap"},
    };
    expect_seq(p, seq, N_(seq));
    const nasc_prim *dw1 = prim_of(p, "body.s.dw1"), *dw2 = prim_of(p, "body.s.dw2");
    const nasc_prim *pw1 = prim_of(p, "body.s.pw1"), *pw2 = prim_of(p, "body.s.pw2");
    assert_int_equal(dw1->a.groups, 16); /* depthwise over the 16 input channels */
    assert_int_equal(dw2->a.groups, 8);
    assert_int_equal(pw1->a.groups, 1);
    assert_int_equal(pw2->a.groups, 1);
    assert_int_equal(dw1->a.kh, 3);
    assert_int_equal(dw1->a.pt, 1);
    assert_int_equal(pw1->a.kh, 1);
    check_value(p, "body.s.dw1.w", NASC_VAL_PARAM, "f32[16,1,3,3]");
    check_value(p, "body.s.pw1.w", NASC_VAL_PARAM, "f32[8,16,1,1]");
    check_value(p, "body.s.dw2.w", NASC_VAL_PARAM, "f32[8,1,3,3]");
    check_value(p, "body.s.pw2.w", NASC_VAL_PARAM, "f32[8,8,1,1]");
    check_value(p, "body.s.bn2", NASC_VAL_OP, "f32[N,8,8,8]");
    nasc_module_destroy(p);
    nasc_module_destroy(a);
}

static void test_lower_bottleneck(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = parse_ok(&ctx, "arch {\n  kind macro\n  input 1x8x8\n  channels 16\n  normal @b\n}\n\n"
                                    "cell @b macro (%x) {\n  %t = bottleneck_1x7_7x1 %x\n  out concat\n}\n");
    nasc_module *p = lower_ok(&ctx, a);
    static const step seq[] = {
        {NASC_PRIM_RELU, "body.t.relu0"}, {NASC_PRIM_CONV, "body.t.pre"},       {NASC_PRIM_BATCH_NORM, "body.t.pre_bn"},
        {NASC_PRIM_RELU, "body.t.relu1"}, {NASC_PRIM_CONV, "body.t.conv1"},     {NASC_PRIM_BATCH_NORM, "body.t.bn1"},
        {NASC_PRIM_RELU, "body.t.relu2"}, {NASC_PRIM_CONV, "body.t.conv2"},     {NASC_PRIM_BATCH_NORM, "body.t.bn2"},
        {NASC_PRIM_RELU, "body.t.relu3"}, {NASC_PRIM_CONV, "body.t.post"},      {NASC_PRIM_BATCH_NORM, "body.t.post_bn"},
    };
    expect_seq(p, seq, N_(seq));
    check_value(p, "body.t.pre.w", NASC_VAL_PARAM, "f32[4,16,1,1]"); /* 1x1 to C/4 = 4 */
    check_value(p, "body.t.conv1.w", NASC_VAL_PARAM, "f32[4,4,1,7]");
    check_value(p, "body.t.conv2.w", NASC_VAL_PARAM, "f32[4,4,7,1]");
    check_value(p, "body.t.post.w", NASC_VAL_PARAM, "f32[16,4,1,1]");
    check_value(p, "body.t.post_bn", NASC_VAL_OP, "f32[N,16,8,8]");
    const nasc_prim *c1 = prim_of(p, "body.t.conv1"), *c2 = prim_of(p, "body.t.conv2");
    assert_int_equal(c1->a.pl, 3);
    assert_int_equal(c1->a.pr, 3);
    assert_int_equal(c1->a.pt, 0);
    assert_int_equal(c2->a.pt, 3);
    assert_int_equal(c2->a.pb, 3);
    assert_int_equal(c2->a.pl, 0);
    nasc_module_destroy(p);
    nasc_module_destroy(a);

    /* below 4 channels there is no room for the bottleneck: plain 1x7 then 7x1 */
    a = parse_ok(&ctx, "arch {\n  kind macro\n  input 1x8x8\n  channels 3\n  normal @b\n}\n\n"
                       "cell @b macro (%x) {\n  %t = bottleneck_1x7_7x1 %x\n  out concat\n}\n");
    p = lower_ok(&ctx, a);
    static const step plain[] = {
        {NASC_PRIM_RELU, "body.t.relu"}, {NASC_PRIM_CONV, "body.t.conv1"},
        {NASC_PRIM_CONV, "body.t.conv2"}, {NASC_PRIM_BATCH_NORM, "body.t.bn"},
    };
    expect_seq(p, plain, N_(plain));
    check_value(p, "body.t.conv1.w", NASC_VAL_PARAM, "f32[3,3,1,7]");
    nasc_module_destroy(p);
    nasc_module_destroy(a);
}

static void test_lower_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    /* recurrent nets: a sequence length out of range, training additions
     * they do not have */
    nasc_module *a = parse_ok(&ctx, "arch {\n  kind recurrent\n  input 32\n  channels 64\n  normal @r\n}\n\n"
                                    "cell @r recurrent (%x, %h) {\n  %g = linear %x, %h\n  %t = tanh %g\n  out state %t\n}\n");
    nasc_module *p = (nasc_module *)1;
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = NASC_MAX_SEQ_LEN + 1;
    expect_diag(&ctx, nasc_lower_with(a, &lo, &p), NASC_EINPUT, "the sequence length must be 1..1024, not 1025");
    assert_null(p);
    lo.seq_len = -1;
    expect_diag(&ctx, nasc_lower_with(a, &lo, &p), NASC_EINPUT, "the sequence length must be 1..1024, not -1");
    lo = nasc_lower_options_default();
    lo.drop_path = true;
    expect_diag(&ctx, nasc_lower_with(a, &lo, &p), NASC_EINPUT, "a recurrent net has no cell paths to drop");
    assert_null(p);
    nasc_module_destroy(a);

    /* an unverified module is verified first */
    a = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "u");
    p = (nasc_module *)1;
    expect_diag(&ctx, nasc_lower(a, &p), NASC_EINPUT, "the net has no skeleton");
    assert_null(p);
    nasc_module_destroy(a);

    struct {
        const char *text;
        int line, col;
        const char *msg;
    } cases[] = {
        /* 1x2x2 with 3 stages: the second reduction meets a 1x1 map */
        {"arch {\n  kind cells\n  input 1x2x2\n  channels 4\n  cells_per_stage 1\n  stages 3\n  normal @n\n"
         "  reduction @r\n}\n\n"
         "cell @n normal (%h2, %h1) {\n  %a = conv_3x3 %h1\n  %b = add %a, %h2\n  out concat\n}\n\n"
         "cell @r reduction (%h2, %h1) {\n  %a = max_pool_3x3 %h1\n  %b = identity %h2\n  %c = add %a, %b\n"
         "  out concat\n}\n",
         19, 3, "cell3.b.shift': shift offset 1,1 out of range"},
        /* a normal cell that halves one path: the add that meets both is blamed */
        {"arch {\n  kind cells\n  input 1x8x8\n  channels 4\n  stages 1\n  normal @n\n}\n\n"
         "cell @n normal (%h2, %h1) {\n  %a = factorized_reduce %h1\n  %b = conv_3x3 %h2\n  %c = add %a, %b\n"
         "  out concat\n}\n",
         12, 3, "add '%cell0.c.add': add operands differ in shape: f32[N,4,4,4] vs f32[N,4,8,8]"},
        /* loose ends of different sizes: the cell's concat is blamed on the cell */
        {"arch {\n  kind cells\n  input 1x8x8\n  channels 4\n  stages 1\n  normal @n\n}\n\n"
         "cell @n normal (%h2, %h1) {\n  %a = factorized_reduce %h1\n  %b = conv_3x3 %h2\n  out concat\n}\n",
         9, 1, "concat '%cell0.out': concat operands differ outside axis 1"},
        {"arch {\n  kind macro\n  input 1x8x8\n  normal @b\n}\n\n"
         "cell @b macro (%x) {\n  %a = conv_3x3 %x\n  %b = conv_5x5 %x\n  out avg\n}\n",
         7, 1, "cell 'b': the 'avg' output rule is not supported in CNN cells"}, /* at the cell, not its 'out' */
        {"arch {\n  kind macro\n  input 1x8x8\n  normal @b\n}\n\n"
         "cell @b macro (%x) {\n  %a = factorized_reduce %x {filters=1}\n  out concat\n}\n",
         8, 3, "a factorized reduction needs at least 2 output channels"},
        {"arch {\n  kind macro\n  input 1x8x8\n  normal @b\n}\n\n"
         "cell @b macro (%x) {\n  %a = add %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x, %x\n"
         "  out concat\n}\n",
         8, 3, "node 'a' has more than 16 operands"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        a = parse_ok(&ctx, cases[i].text);
        p = (nasc_module *)1;
        nasc_status st = nasc_lower(a, &p);
        if (st != NASC_EINPUT || ctx.diag.line != cases[i].line || ctx.diag.col != cases[i].col ||
            !strstr(ctx.diag.msg, cases[i].msg) || strcmp(ctx.diag.file, "t.nir") != 0) {
            char buf[1024];
            nasc_diag_format(&ctx.diag, buf, sizeof buf);
            fail_msg("case %zu: expected %d:%d '%s', got (%d) %s", i, cases[i].line, cases[i].col, cases[i].msg,
                     (int)st, buf);
        }
        assert_null(p);
        nasc_module_destroy(a);
    }
    assert_int_equal(ta.live, 0);
}

/* BUG: ir/lower.c, lower_cell (the snprintf into l->prefix, `char prefix[192]`
 * in struct lower, and `char name[256]` in emit/param) truncates value names
 * silently. Node names may be up to 4096 bytes, so two nodes whose names
 * share their first ~185 bytes get the same prim value names and a valid
 * net fails to lower with "duplicate name". Fix: size the names from the
 * strings (or report a clear "name too long" from the verifier). */
static void test_bug_lower_long_node_names(void **state) {
    (void)state;
    char n1[241], n2[241];
    memset(n1, 'a', 240);
    n1[240] = 0;
    memcpy(n2, n1, sizeof n2);
    n1[239] = '1';
    n2[239] = '2';
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "long");
    assert_non_null(m);
    int ci = nasc_cell_begin(m, "b", NASC_CELL_MACRO, 1, NASC_NOLOC);
    assert_true(ci >= 0);
    uint32_t x = 0;
    uint32_t a = nasc_cell_add_node(m, NASC_OP_CONV_3X3, &x, 1, NULL, n1, NASC_NOLOC);
    uint32_t b = nasc_cell_add_node(m, NASC_OP_CONV_3X3, &x, 1, NULL, n2, NASC_NOLOC);
    assert_int_not_equal(a, BAD32);
    assert_int_not_equal(b, BAD32);
    assert_int_equal(nasc_cell_set_output(m, NASC_OUT_SUM, NULL, 0), NASC_OK);
    assert_int_equal(nasc_cell_end(m), NASC_OK);
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_MACRO);
    sk.normal_cell = ci;
    nasc_net_set_skeleton(m, &sk);
    assert_int_equal(nasc_arch_verify(m), NASC_OK);
    nasc_module *p = NULL;
    nasc_status st = nasc_lower(m, &p);
    if (st) {
        char buf[1024];
        nasc_diag_format(&ctx.diag, buf, sizeof buf);
        fprintf(stderr, "BUG (lower.c name truncation): %.200s\n", buf);
    }
    nasc_module_destroy(p);
    nasc_module_destroy(m);
    assert_int_equal(st, NASC_OK);
}

/* Every op kind, a reduction, a 9-way concat (operand arrays past the
 * builders' 8-entry stack buffers), filters and kernel attributes. */
static const char *const RICH_NET =
    "arch {\n  kind cells\n  input 3x8x8\n  classes 5\n  channels 8\n  cells_per_stage 1\n  stages 2\n"
    "  stem_multiplier 1\n  normal @n\n  reduction @r\n}\n\n"
    "cell @n normal (%h2, %h1) {\n"
    "  %a = sep_conv_5x5 %h1\n  %b = bottleneck_1x7_7x1 %h2\n  %c = add %a, %b\n"
    "  %d = dil_conv_3x3 %h1\n  %e = avg_pool_3x3 %h2\n  %f = add %d, %e, %c\n"
    "  %g = conv_1x3_3x1 %c\n  %i = max_pool_5x5 %f\n  %j = conv_5x5 %h1\n  %k = dil_conv_5x5 %h2\n"
    "  %l = sep_conv_7x7 %h1\n  %o = max_pool_7x7 %h2\n  %q = conv_1x7_7x1 %h1\n  %s = identity %h2\n"
    "  out concat %f, %g, %i, %j, %k, %l, %o, %q, %s\n}\n\n"
    "cell @r reduction (%h2, %h1) {\n"
    "  %a = max_pool_3x3 %h1\n  %b = identity %h2\n  %c = add %a, %b\n"
    "  %d = factorized_reduce %h1 {filters=8}\n  %e = conv %c {kernel=3x5, filters=8}\n"
    "  %f = concat %d, %e\n  %g = sep_conv_3x3 %h2\n  out concat\n}\n";

/* Make the k-th allocation of nasc_lower fail, k = 1, 2, ... until it
 * succeeds: each failure must be NASC_ENOMEM with no module and no leak.
 *
 * BUG: ir/lower.c:272, lower_cell: `if (!vals) return NASC_ENOMEM;` leaves
 * l->status at NASC_OK, and both callers (lower.c:391 and :407) ignore the
 * return value. When that allocation fails:
 *  - macro nets: nasc_lower returns NASC_OK with a module whose body cell is
 *    missing (the head reads the stem) -- ONE_NODE, allocation 11;
 *  - cells nets: the next cell sees BAD inputs and the call ends in
 *    NASC_EINTERNAL ("out of memory" in the message) or, for the last cell,
 *    NASC_EINPUT "the module has no output" -- REDUCE_NET, allocations
 *    15, 21 and 27.
 * Fix: set l->status = NASC_ENOMEM there (and let callers check it). */
static void lower_alloc_loop(const char *text) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *a = parse_ok(&ctx, text);
    nasc_module *ref = lower_ok(&ctx, a);
    nasc_buf want;
    nasc_buf_init(&want, &ctx);
    assert_int_equal(nasc_text_print(ref, &want), NASC_OK);
    nasc_module_destroy(ref);
    long live0 = ta.live;
    char problem[1200] = ""; /* the first misbehaviour; cleaned up before failing */
    bool done = false;
    long k;
    for (k = 1; !done && !problem[0] && k < 1000000; k++) {
        ta.fail_at = ta.count + k; /* the k-th allocation of this lowering fails */
        ta.failed = false;
        nasc_module *p = (nasc_module *)1;
        nasc_status st = nasc_lower(a, &p);
        bool failed = ta.failed;
        ta.fail_at = 0;
        char buf[1024];
        nasc_diag_format(&ctx.diag, buf, sizeof buf);
        if (failed) {
            if (st != NASC_ENOMEM || p != NULL) {
                snprintf(problem, sizeof problem, "allocation %ld failed: status %d, module %s, %s", k, (int)st,
                         p ? "returned" : "NULL", buf);
                if (p != (nasc_module *)1) nasc_module_destroy(p);
            }
        } else if (st != NASC_OK || !p) {
            snprintf(problem, sizeof problem, "no allocation failed but status %d: %s", (int)st, buf);
        } else {
            /* the lowering that finally succeeds is the same as the reference */
            nasc_buf got;
            nasc_buf_init(&got, &ctx);
            assert_int_equal(nasc_text_print(p, &got), NASC_OK);
            if (strcmp(got.data, want.data) != 0) snprintf(problem, sizeof problem, "the final lowering differs");
            nasc_buf_free(&got);
            nasc_module_destroy(p);
            done = true;
        }
        if (!problem[0] && ta.live != live0)
            snprintf(problem, sizeof problem, "allocation %ld: %ld blocks leaked", k, ta.live - live0);
    }
    nasc_buf_free(&want);
    nasc_module_destroy(a);
    if (problem[0]) fail_msg("%s", problem);
    assert_true(done);
    assert_true(k > 10); /* the loop walked through many allocations */
    assert_int_equal(ta.live, 0);
}

static void test_lower_alloc_failures(void **state) {
    (void)state;
    lower_alloc_loop(ONE_NODE);
    lower_alloc_loop(REDUCE_NET);
    lower_alloc_loop(RICH_NET);
}

/* ------------------------------------------------------------ 4. cost model */

static void test_cost_hand_module(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "cost");
    assert_non_null(m);
    /* Intern "head" first so that string-id order (head, stem, cell0) and
     * alphabetical order (cell0, head, stem) both differ from first use
     * (stem, cell0, head). */
    assert_int_not_equal(nasc_str_intern(m, "head", 4), BAD32);
    nasc_type tx = {NASC_F32, 4, {NASC_BATCH, 3, 8, 8}};
    nasc_type tw = {NASC_F32, 4, {8, 3, 3, 3}}, t8 = {NASC_F32, 1, {8}};
    nasc_type tfw = {NASC_F32, 2, {10, 8, 0, 0}}, t10 = {NASC_F32, 1, {10}}, t5 = {NASC_F32, 1, {5}};
    uint32_t x = nasc_prim_add_input(m, "x", &tx);
    uint32_t w = nasc_prim_add_param(m, "w", &tw);
    uint32_t g = nasc_prim_add_param(m, "g", &t8);
    uint32_t b = nasc_prim_add_param(m, "b", &t8);
    uint32_t fw = nasc_prim_add_param(m, "fw", &tfw);
    uint32_t fb = nasc_prim_add_param(m, "fb", &t10);
    assert_int_not_equal(nasc_prim_add_param(m, "spare", &t5), BAD32); /* used by no op */
    nasc_prim_attrs ca = nasc_prim_attrs_default();
    ca.kh = ca.kw = 3;
    ca.pt = ca.pl = ca.pb = ca.pr = 1;
    uint32_t c = nasc_prim_add_op(m, NASC_PRIM_CONV, (uint32_t[]){x, w}, 2, &ca, "c", "stem", NASC_NOLOC);
    uint32_t n = nasc_prim_add_op(m, NASC_PRIM_BATCH_NORM, (uint32_t[]){c, g, b}, 3, NULL, "n", "cell0", NASC_NOLOC);
    uint32_t r = nasc_prim_add_op(m, NASC_PRIM_RELU, &n, 1, NULL, "r", "stem", NASC_NOLOC);
    uint32_t p = nasc_prim_add_op(m, NASC_PRIM_GLOBAL_AVG_POOL, &r, 1, NULL, "p", "head", NASC_NOLOC);
    uint32_t f = nasc_prim_add_op(m, NASC_PRIM_FLATTEN, &p, 1, NULL, "f", "head", NASC_NOLOC);
    uint32_t y = nasc_prim_add_op(m, NASC_PRIM_INNER_PRODUCT, (uint32_t[]){f, fw, fb}, 3, NULL, "y", "head", NASC_NOLOC);
    assert_int_not_equal(y, BAD32);
    assert_int_equal(nasc_prim_add_output(m, y), NASC_OK);
    assert_int_equal(nasc_prim_verify(m), NASC_OK);
    check_value(m, "c", NASC_VAL_OP, "f32[N,8,8,8]");

    nasc_cost cost;
    assert_int_equal(nasc_cost_compute(m, &cost), NASC_OK);
    /* Parameters:
     *   conv w   8*3*3*3 = 216           (stem: first user is the conv)
     *   bn g, b  8 + 8   = 16            (cell0)
     *   fc w, b  10*8 + 10 = 90          (head)
     *   spare    5, counted in the total only
     *   total    216 + 16 + 90 + 5 = 327
     * MACs per image:
     *   conv     output 8*8*8 = 512 values, each 3*3*3 = 27 MACs: 13824
     *   fc       10*8 = 80
     *   total    13904
     * Activation bytes per image (f32 results):
     *   conv 512*4 = 2048, bn 2048, relu 2048, gap 8*4 = 32, flatten 32,
     *   fc 10*4 = 40; total 6248
     *   stem = conv + relu = 4096, cell0 = 2048, head = 32 + 32 + 40 = 104 */
    assert_int_equal(cost.params, 327);
    assert_int_equal(cost.macs, 13904);
    assert_int_equal(cost.act_bytes, 6248);
    assert_int_equal(cost.n_groups, 3);
    const char *names[] = {"stem", "cell0", "head"};
    int64_t params[] = {216, 16, 90}, macs[] = {13824, 0, 80}, act[] = {4096, 2048, 104};
    for (uint32_t i = 0; i < 3; i++) {
        assert_string_equal(nasc_str(m, cost.groups[i].name), names[i]);
        assert_int_equal(cost.groups[i].params, params[i]);
        assert_int_equal(cost.groups[i].macs, macs[i]);
        assert_int_equal(cost.groups[i].act_bytes, act[i]);
    }
    nasc_cost_free(m, &cost);
    assert_null(cost.groups);

    /* a parameter shared by two ops counts once */
    uint32_t c2 = nasc_prim_add_op(m, NASC_PRIM_CONV, (uint32_t[]){x, w}, 2, &ca, "c2", "late", NASC_NOLOC);
    assert_int_not_equal(c2, BAD32);
    assert_int_equal(nasc_cost_compute(m, &cost), NASC_OK);
    assert_int_equal(cost.params, 327);
    assert_int_equal(cost.macs, 13904 + 13824);
    assert_int_equal(cost.act_bytes, 6248 + 2048);
    assert_int_equal(cost.n_groups, 4);
    assert_string_equal(nasc_str(m, cost.groups[3].name), "late");
    assert_int_equal(cost.groups[3].params, 0);
    nasc_cost_free(m, &cost);

    /* allocation failures */
    for (long k = 1;; k++) {
        ta.fail_at = ta.count + k;
        ta.failed = false;
        long live0 = ta.live;
        nasc_status st = nasc_cost_compute(m, &cost);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            nasc_cost_free(m, &cost);
            assert_true(k > 1);
            break;
        }
        assert_int_equal(st, NASC_ENOMEM);
        assert_null(cost.groups);
        assert_int_equal(ta.live, live0);
    }
    ta.fail_at = 0;
    nasc_module_destroy(m);

    /* the cost model needs a prim module */
    nasc_module *arch = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "a");
    expect_diag(&ctx, nasc_cost_compute(arch, &cost), NASC_EINPUT, "the cost model needs a prim module");
    nasc_module_destroy(arch);
    assert_int_equal(ta.live, 0);
}

/* The lowered one-node macro net, counted by hand. */
static void test_cost_lowered(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *a = parse_ok(&ctx, ONE_NODE);
    nasc_module *p = lower_ok(&ctx, a);
    nasc_cost c;
    assert_int_equal(nasc_cost_compute(p, &c), NASC_OK);
    /* params: stem conv 4*1*3*3 = 36, stem bn 4+4 = 8, body conv 4*4*3*3 = 144,
     * body bn 8, fc 3*4 + 3 = 15: 211.
     * MACs: stem 4*8*8 * 1*3*3 = 2304, body 4*8*8 * 4*3*3 = 9216, fc 3*4 = 12: 11532.
     * act bytes: five 4x8x8 maps of 1024 bytes, gap 16, flatten 16, logits 12: 5164. */
    assert_int_equal(c.params, 211);
    assert_int_equal(c.macs, 11532);
    assert_int_equal(c.act_bytes, 5164);
    assert_int_equal(c.n_groups, 3);
    assert_string_equal(nasc_str(p, c.groups[0].name), "stem");
    assert_string_equal(nasc_str(p, c.groups[1].name), "body.body");
    assert_string_equal(nasc_str(p, c.groups[2].name), "head");
    assert_int_equal(c.groups[0].params, 44);
    assert_int_equal(c.groups[1].params, 152);
    assert_int_equal(c.groups[2].params, 15);
    nasc_cost_free(p, &c);
    nasc_module_destroy(p);
    nasc_module_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_order_and_names),
        cmocka_unit_test(test_hash_commutative),
        cmocka_unit_test(test_hash_non_commutative_position),
        cmocka_unit_test(test_hash_op_and_rule_changes),
        cmocka_unit_test(test_hash_recurrent),
        cmocka_unit_test(test_arch_hash),
        cmocka_unit_test(test_hash_random_nasnet),
        cmocka_unit_test(test_bug_hash_shared_subexpression),
        cmocka_unit_test(test_builder_arch_errors),
        cmocka_unit_test(test_verify_skeleton),
        cmocka_unit_test(test_verify_cells),
        cmocka_unit_test(test_verify_edited_arch),
        cmocka_unit_test(test_verify_text_errors),
        cmocka_unit_test(test_prim_errors),
        cmocka_unit_test(test_lower_one_node),
        cmocka_unit_test(test_lower_recurrent),
        cmocka_unit_test(test_lower_reduction),
        cmocka_unit_test(test_lower_sep_conv),
        cmocka_unit_test(test_lower_bottleneck),
        cmocka_unit_test(test_lower_errors),
        cmocka_unit_test(test_bug_lower_long_node_names),
        cmocka_unit_test(test_lower_alloc_failures),
        cmocka_unit_test(test_cost_hand_module),
        cmocka_unit_test(test_cost_lowered),
    };
    return cmocka_run_group_tests_name("ir/ir", tests, NULL, NULL);
}
