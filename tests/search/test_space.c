/* Search spaces: every sampled decision vector decodes to an arch that
 * verifies, lowers and prim-verifies at the default skeleton, and encodes
 * back to itself; the decision lists, cardinalities and log10 sizes of the
 * defaults are pinned; check() names the bad decision; encode reads the
 * model zoo's ENAS micro cells and rejects what is not of the space, naming
 * cell and node; a failing allocator neither crashes nor leaks.
 *
 * Seeds: 1,000 per space. Under AddressSanitizer (detected at compile time)
 * 250 per space keep the run short; the release build runs all 1,000. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_search.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define NASC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NASC_TEST_ASAN 1
#endif
#endif
#ifdef NASC_TEST_ASAN
#define SEEDS 250
#else
#define SEEDS 1000
#endif

/* cmocka 1.1 has no assert_double_equal */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%s = %.9g, expected %.9g", #a, a_, b_);           \
    } while (0)

static void fail_diag(const nasc_ctx *ctx, const char *what) {
    char buf[1024];
    nasc_diag_format(&ctx->diag, buf, sizeof buf);
    fail_msg("%s: %s", what, buf);
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

static void expect_diag(const nasc_ctx *ctx, nasc_status got, nasc_status want, const char *substr) {
    if (got != want || ctx->diag.status != want || !strstr(ctx->diag.msg, substr)) {
        char buf[1024];
        nasc_diag_format(&ctx->diag, buf, sizeof buf);
        fail_msg("expected status %d with '%s'; got %d: %s", (int)want, substr, (int)got, buf);
    }
}

static nasc_space *make_space(nasc_ctx *ctx, const char *name, int blocks, int layers) {
    nasc_space_options o = {blocks, layers};
    nasc_space *sp = NULL;
    if (nasc_space_create(ctx, name, &o, &sp)) fail_diag(ctx, name);
    assert_non_null(sp);
    return sp;
}

/* ------------------------------------------------------------ registry */

static void test_names_and_options(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    const char *want[] = {"nasnet", "enas-micro", "enas-macro", "nasrl", "enas-rnn", "nasrl-rnn", "smash"};
    const char *about[] = {"block", "block", "layer", "layer", "node", "base", "bank"};
    for (int i = 0; i < 7; i++) {
        assert_non_null(nasc_space_names[i]);
        assert_string_equal(nasc_space_names[i], want[i]);
        nasc_space *sp = make_space(&ctx, want[i], 0, 0);
        assert_string_equal(nasc_space_name(sp), want[i]);
        assert_non_null(strstr(nasc_space_summary(sp), about[i]));
        nasc_space_destroy(sp);
    }
    assert_null(nasc_space_names[7]);

    nasc_space *sp = (nasc_space *)1;
    expect_diag(&ctx, nasc_space_create(&ctx, "darts", NULL, &sp), NASC_EINPUT,
                "unknown search space 'darts' (spaces: nasnet, enas-micro, enas-macro, nasrl, enas-rnn, nasrl-rnn, smash)");
    assert_null(sp);
    expect_diag(&ctx, nasc_space_create(&ctx, NULL, NULL, &sp), NASC_EINPUT, "unknown search space");
    struct {
        const char *name;
        int blocks, layers;
        const char *msg;
    } bad[] = {
        {"nasnet", 11, 0, "blocks must be between 1 and 10 in the nasnet space, got 11"},
        {"enas-micro", -1, 0, "blocks must be between 1 and 10"},
        {"nasnet", 0, 4, "the nasnet space has no 'layers' option"},
        {"enas-macro", 0, 31, "layers must be between 1 and 30 in the enas-macro space"},
        {"nasrl", 0, 16, "layers must be between 1 and 15 in the nasrl space"},
        {"nasrl", 3, 0, "the nasrl space has no 'blocks' option"},
        {"enas-rnn", 25, 0, "blocks must be between 1 and 24 in the enas-rnn space"},
        {"nasrl-rnn", 3, 0, "the nasrl-rnn space's base (--blocks) is 2, 4 or 8 leaves, not 3"},
        {"smash", 0, 9, "layers must be between 1 and 8 in the smash space"},
        {"smash", 2, 0, "the smash space has no 'blocks' option"},
        {"nasrl-rnn", 16, 0, "blocks must be between 1 and 8 in the nasrl-rnn space"},
        {"enas-rnn", 0, 4, "the enas-rnn space has no 'layers' option"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nasc_space_options o = {bad[i].blocks, bad[i].layers};
        expect_diag(&ctx, nasc_space_create(&ctx, bad[i].name, &o, &sp), NASC_EINPUT, bad[i].msg);
        assert_null(sp);
    }
    assert_int_equal(ta.live, 0);
}

/* ------------------------------------------------------------ pinned lists */

static double cells_log10(int blocks, int ops, bool combine) {
    double s = 0;
    for (int b = 0; b < blocks; b++)
        s += 2 * log10(2.0 + b) + 2 * log10((double)ops) + (combine ? log10(2.0) : 0);
    return 2 * s;
}

static void test_pinned_defaults(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);

    /* nasnet: 2 cells x 5 blocks x (in_a, in_b, op_a, op_b, combine) */
    nasc_space *sp = make_space(&ctx, "nasnet", 0, 0);
    assert_int_equal(nasc_space_count(sp), 50);
    const nasc_decision *d = nasc_space_decisions(sp);
    const char *names[] = {"normal.b0.in_a", "normal.b0.in_b", "normal.b0.op_a", "normal.b0.op_b",
                           "normal.b0.combine"};
    for (int i = 0; i < 5; i++) assert_string_equal(d[i].name, names[i]);
    assert_string_equal(d[25].name, "reduction.b0.in_a");
    assert_string_equal(d[49].name, "reduction.b4.combine");
    assert_int_equal(d[0].card, 2);
    assert_int_equal(d[20].card, 6); /* normal.b4.in_a: h2, h1, b0..b3 */
    assert_string_equal(d[20].labels[5], "b3");
    assert_int_equal(d[2].card, 13);
    assert_string_equal(d[2].labels[0], "identity");
    assert_string_equal(d[2].labels[12], "max_pool_7x7");
    assert_int_equal(d[4].card, 2);
    assert_string_equal(d[4].labels[1], "concat");
    for (uint32_t i = 0; i < 50; i++) {
        assert_int_equal(d[i].kind, NASC_DEC_CHOICE);
        assert_int_equal(d[i].layer, -1);
        assert_non_null(d[i].labels);
    }
    assert_near(nasc_space_log10_size(sp), cells_log10(5, 13, true), 1e-9);
    assert_near(nasc_space_log10_size(sp), 36.7180, 1e-3);
    nasc_space_destroy(sp);

    /* enas-micro: 2 cells x 5 nodes x (in_a, in_b, op_a, op_b); ENAS's op numbering */
    sp = make_space(&ctx, "enas-micro", 0, 0);
    assert_int_equal(nasc_space_count(sp), 40);
    d = nasc_space_decisions(sp);
    assert_string_equal(d[3].name, "normal.b0.op_b");
    assert_string_equal(d[4].name, "normal.b1.in_a");
    assert_string_equal(d[39].name, "reduction.b4.op_b");
    assert_int_equal(d[2].card, 5);
    const char *micro[] = {"sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"};
    for (int i = 0; i < 5; i++) assert_string_equal(d[2].labels[i], micro[i]);
    assert_near(nasc_space_log10_size(sp), cells_log10(5, 5, false), 1e-9);
    assert_near(nasc_space_log10_size(sp), 25.4090, 1e-3);
    nasc_space_destroy(sp);

    /* enas-macro: 12 layers x (op, skip); skip of layer k over k candidates */
    sp = make_space(&ctx, "enas-macro", 0, 0);
    assert_int_equal(nasc_space_count(sp), 24);
    d = nasc_space_decisions(sp);
    double want = 0;
    for (int k = 0; k < 12; k++) {
        char n[48];
        snprintf(n, sizeof n, "l%d.op", k);
        assert_string_equal(d[2 * k].name, n);
        assert_int_equal(d[2 * k].kind, NASC_DEC_CHOICE);
        assert_int_equal(d[2 * k].card, 6);
        assert_int_equal(d[2 * k].layer, k);
        snprintf(n, sizeof n, "l%d.skip", k);
        assert_string_equal(d[2 * k + 1].name, n);
        assert_int_equal(d[2 * k + 1].kind, NASC_DEC_SKIP);
        assert_int_equal(d[2 * k + 1].card, k);
        assert_int_equal(d[2 * k + 1].layer, k);
        assert_null(d[2 * k + 1].labels);
        want += log10(6.0) + k * log10(2.0);
    }
    assert_string_equal(d[0].labels[5], "max_pool_3x3");
    assert_near(nasc_space_log10_size(sp), want, 1e-9);
    assert_near(nasc_space_log10_size(sp), 29.2062, 1e-3);
    nasc_space_destroy(sp);

    /* nasrl: 6 layers x (kh, kw, [stride], filters, skip); strides at l1 and l3 */
    sp = make_space(&ctx, "nasrl", 0, 0);
    assert_int_equal(nasc_space_count(sp), 26);
    d = nasc_space_decisions(sp);
    const char *rl[] = {"l0.kh", "l0.kw", "l0.filters", "l0.skip", "l1.kh", "l1.kw", "l1.stride",
                        "l1.filters", "l1.skip", "l2.kh"};
    for (int i = 0; i < 10; i++) assert_string_equal(d[i].name, rl[i]);
    assert_string_equal(d[15].name, "l3.stride");
    assert_string_equal(d[25].name, "l5.skip");
    assert_int_equal(d[25].card, 5);
    assert_string_equal(d[2].labels[3], "64");
    assert_string_equal(d[0].labels[3], "7");
    assert_string_equal(d[6].labels[1], "2");
    want = 18 * log10(4.0) + 2 * log10(2.0) + 15 * log10(2.0);
    assert_near(nasc_space_log10_size(sp), want, 1e-9);
    assert_near(nasc_space_log10_size(sp), 15.9546, 1e-3);
    nasc_space_destroy(sp);
}

/* The labels are the arch op names the decoder uses. */
static void test_labels_are_ops(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    const char *spaces[] = {"nasnet", "enas-micro"};
    for (int s = 0; s < 2; s++) {
        nasc_space *sp = make_space(&ctx, spaces[s], 1, 0);
        uint32_t n = nasc_space_count(sp);
        const nasc_decision *dc = nasc_space_decisions(sp);
        uint32_t d[16] = {0};
        for (int op = 0; op < dc[2].card; op++) {
            for (uint32_t i = 0; i < n; i++) d[i] = strstr(dc[i].name, ".op_") ? (uint32_t)op : 0;
            nasc_module *m = NULL;
            if (nasc_space_decode(sp, d, &m)) fail_diag(&ctx, "decode");
            const nasc_cell *c = &m->cells[m->skel.normal_cell];
            assert_string_equal(nasc_arch_op_info_get(m->nodes[c->first_node].op)->name, dc[2].labels[op]);
            nasc_module_destroy(m);
        }
        nasc_space_destroy(sp);
    }
    nasc_space *sp = make_space(&ctx, "enas-macro", 0, 1);
    const nasc_decision *dc = nasc_space_decisions(sp);
    for (uint32_t op = 0; op < 6; op++) {
        uint32_t d[2] = {op, 0};
        nasc_module *m = NULL;
        if (nasc_space_decode(sp, d, &m)) fail_diag(&ctx, "decode");
        assert_string_equal(nasc_arch_op_info_get(m->nodes[0].op)->name, dc[0].labels[op]);
        nasc_module_destroy(m);
    }
    nasc_space_destroy(sp);
}

/* ------------------------------------------------------------ round trips */

/* n seeds: sample, decode (verified), lower, prim-verify, encode back; also
 * through YAML text when yaml is set. Returns the distinct hashes seen. */
static int roundtrip(const char *name, int blocks, int layers, int n, bool yaml) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = make_space(&ctx, name, blocks, layers);
    uint32_t nd = nasc_space_count(sp);
    uint32_t *d = calloc(nd + 1, sizeof *d), *e = calloc(nd + 1, sizeof *e);
    uint64_t *hashes = calloc((size_t)n, sizeof *hashes);
    assert_non_null(d);
    assert_non_null(e);
    assert_non_null(hashes);
    int distinct = 0;
    for (int seed = 0; seed < n; seed++) {
        nasc_rng r;
        nasc_rng_seed(&r, (uint64_t)seed);
        nasc_space_sample(sp, &r, d);
        if (nasc_space_check(sp, d)) fail_diag(&ctx, "check of a sample");
        nasc_module *m = NULL, *p = NULL;
        if (nasc_space_decode(sp, d, &m)) fail_diag(&ctx, "decode");
        if (nasc_arch_verify(m)) fail_diag(&ctx, "verify");
        nasc_lower_options lo = nasc_lower_options_default();
        lo.seq_len = 2; /* recurrent nets: two steps show the cell lowers */
        if (nasc_lower_with(m, &lo, &p)) {
            char buf[1024];
            nasc_diag_format(&ctx.diag, buf, sizeof buf);
            fail_msg("%s seed %d: lower: %s", name, seed, buf);
        }
        if (nasc_prim_verify(p)) fail_diag(&ctx, "prim verify");
        memset(e, 0xff, nd * sizeof *e);
        if (nasc_space_encode(sp, m, e)) fail_diag(&ctx, "encode");
        if (memcmp(d, e, nd * sizeof *d) != 0) fail_msg("%s seed %d: encode(decode(d)) != d", name, seed);
        uint64_t h = arch_hash_ok(m);
        bool seen = false;
        for (int k = 0; k < distinct && !seen; k++) seen = hashes[k] == h;
        if (!seen) hashes[distinct++] = h;
        if (yaml) {
            nasc_buf b;
            nasc_buf_init(&b, &ctx);
            if (nasc_yaml_write(m, &b)) fail_diag(&ctx, "yaml write");
            nasc_module *y = NULL;
            if (nasc_yaml_load_string(&ctx, b.data, b.len, "sample.yaml", NULL, 0, &y))
                fail_diag(&ctx, "yaml load");
            assert_true(arch_hash_ok(y) == h);
            memset(e, 0xff, nd * sizeof *e);
            if (nasc_space_encode(sp, y, e)) fail_diag(&ctx, "encode of the YAML");
            assert_memory_equal(d, e, nd * sizeof *d);
            nasc_module_destroy(y);
            nasc_buf_free(&b);
        }
        nasc_module_destroy(p);
        nasc_module_destroy(m);
    }
    free(hashes);
    free(d);
    free(e);
    nasc_space_destroy(sp);
    return distinct;
}

static void test_roundtrip_nasnet(void **state) {
    (void)state;
    assert_true(roundtrip("nasnet", 0, 0, SEEDS, false) >= SEEDS - 1);
}
static void test_roundtrip_enas_micro(void **state) {
    (void)state;
    assert_true(roundtrip("enas-micro", 0, 0, SEEDS, false) >= SEEDS - 1);
}
static void test_roundtrip_enas_macro(void **state) {
    (void)state;
    assert_true(roundtrip("enas-macro", 0, 0, SEEDS, false) >= SEEDS - 1);
}
static void test_roundtrip_nasrl(void **state) {
    (void)state;
    assert_true(roundtrip("nasrl", 0, 0, SEEDS, false) >= SEEDS - 1);
}

static void test_roundtrip_enas_rnn(void **state) {
    (void)state;
    assert_true(roundtrip("enas-rnn", 0, 0, SEEDS, false) >= SEEDS - 1);
}
static void test_roundtrip_nasrl_rnn(void **state) {
    (void)state;
    assert_true(roundtrip("nasrl-rnn", 0, 0, SEEDS, false) >= SEEDS - 1);
}
static void test_roundtrip_smash(void **state) {
    (void)state;
    assert_int_equal(roundtrip("smash", 0, 0, SEEDS, false), SEEDS);
}

/* Other sizes (the extremes of each option), and the YAML writer in the loop. */
static void test_roundtrip_sizes(void **state) {
    (void)state;
    roundtrip("nasnet", 1, 0, 40, true);
    roundtrip("nasnet", 10, 0, 40, true);
    roundtrip("enas-micro", 1, 0, 40, true);
    roundtrip("enas-micro", 10, 0, 40, true);
    for (int l = 1; l <= 4; l++) roundtrip("enas-macro", 0, l, 40, true);
    roundtrip("enas-macro", 0, 30, 20, true);
    for (int l = 1; l <= 4; l++) roundtrip("nasrl", 0, l, 40, true);
    roundtrip("nasrl", 0, 15, 20, true);
    roundtrip("nasnet", 0, 0, 40, true);
    roundtrip("enas-micro", 0, 0, 40, true);
    roundtrip("enas-macro", 0, 0, 40, true);
    roundtrip("nasrl", 0, 0, 40, true);
    roundtrip("enas-rnn", 1, 0, 20, true);
    roundtrip("enas-rnn", 24, 0, 20, true);
    roundtrip("enas-rnn", 0, 0, 40, true);
    roundtrip("nasrl-rnn", 2, 0, 40, true);
    roundtrip("nasrl-rnn", 4, 0, 40, true);
    roundtrip("nasrl-rnn", 0, 0, 40, true);
    for (int l = 1; l <= 8; l++) roundtrip("smash", 0, l, 20, true);
}

/* The all-zero and all-maximal vectors decode (edges of every decision). */
static void test_extreme_vectors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    /* the defaults, then the largest size of each space */
    for (int s = 0; s < 8; s++) {
        const char *name = nasc_space_names[s % 4];
        static const int big[4] = {10, 10, 30, 15};
        int size = s < 4 ? 0 : big[s % 4];
        nasc_space *sp = make_space(&ctx, name, s % 4 < 2 ? size : 0, s % 4 < 2 ? 0 : size);
        uint32_t n = nasc_space_count(sp);
        const nasc_decision *dc = nasc_space_decisions(sp);
        uint32_t *d = calloc(n, sizeof *d), *e = calloc(n, sizeof *e);
        for (int hi = 0; hi < 2; hi++) {
            for (uint32_t i = 0; i < n; i++)
                d[i] = !hi ? 0
                       : dc[i].kind == NASC_DEC_SKIP ? (uint32_t)((1ull << dc[i].card) - 1)
                                                     : (uint32_t)dc[i].card - 1;
            nasc_module *m = NULL, *p = NULL;
            if (nasc_space_decode(sp, d, &m)) fail_diag(&ctx, "decode");
            if (nasc_lower(m, &p) || nasc_prim_verify(p)) fail_diag(&ctx, "lower");
            if (nasc_space_encode(sp, m, e)) fail_diag(&ctx, "encode");
            assert_memory_equal(d, e, n * sizeof *d);
            nasc_module_destroy(p);
            nasc_module_destroy(m);
        }
        free(d);
        free(e);
        nasc_space_destroy(sp);
    }
}

static void test_sample_deterministic(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    for (int s = 0; nasc_space_names[s]; s++) {
        nasc_space *sp = make_space(&ctx, nasc_space_names[s], 0, 0);
        uint32_t n = nasc_space_count(sp), a[64], b[64];
        assert_true(n <= 64);
        nasc_rng r1, r2;
        nasc_rng_seed(&r1, 42);
        nasc_rng_seed(&r2, 42);
        nasc_space_sample(sp, &r1, a);
        nasc_space_sample(sp, &r2, b);
        assert_memory_equal(a, b, n * sizeof *a);
        nasc_space_sample(sp, &r2, b);
        assert_true(memcmp(a, b, n * sizeof *a) != 0);
        nasc_space_destroy(sp);
    }
}

/* ------------------------------------------------------------ check */

static void test_check_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = make_space(&ctx, "nasnet", 0, 0);
    uint32_t d[50] = {0};
    assert_int_equal(nasc_space_check(sp, d), NASC_OK);
    d[2] = 13;
    expect_diag(&ctx, nasc_space_check(sp, d), NASC_EINPUT,
                "decision 2 'normal.b0.op_a' of the nasnet space is 13, but it has 13 options (0..12)");
    nasc_module *m = (nasc_module *)1;
    expect_diag(&ctx, nasc_space_decode(sp, d, &m), NASC_EINPUT, "'normal.b0.op_a'");
    assert_null(m);
    d[2] = 0;
    d[0] = 2; /* block 0 may only read h2 or h1 */
    expect_diag(&ctx, nasc_space_check(sp, d), NASC_EINPUT, "'normal.b0.in_a' of the nasnet space is 2, but it has 2 options");
    nasc_space_destroy(sp);

    sp = make_space(&ctx, "enas-macro", 0, 0);
    uint32_t e[24] = {0};
    e[7] = 7; /* l3.skip: 3 candidates, masks 0..7 */
    assert_int_equal(nasc_space_check(sp, e), NASC_OK);
    e[7] = 8;
    expect_diag(&ctx, nasc_space_check(sp, e), NASC_EINPUT,
                "decision 7 'l3.skip' of the enas-macro space is 8: a skip mask over 3 earlier layers must be below 8");
    e[7] = 0;
    e[1] = 1; /* l0.skip has no candidates */
    expect_diag(&ctx, nasc_space_check(sp, e), NASC_EINPUT, "'l0.skip'");
    nasc_space_destroy(sp);
}

/* ------------------------------------------------------------ encode */

static nasc_module *load_yaml(nasc_ctx *ctx, const char *text) {
    nasc_module *m = NULL;
    if (nasc_yaml_load_string(ctx, text, strlen(text), "t.yaml", NULL, 0, &m)) fail_diag(ctx, "load");
    return m;
}

static nasc_module *load_model(nasc_ctx *ctx, const char *rel) {
    char *path = nasc_test_path(rel);
    nasc_module *m = NULL;
    if (nasc_model_load(ctx, path, NULL, 0, &m)) fail_diag(ctx, rel);
    free(path);
    return m;
}

/* models/enas-micro.yaml is the ENAS paper's cell: its vector is the
 * official fixed_arc reordered per node from (in_a, op_a, in_b, op_b) to
 * (in_a, in_b, op_a, op_b). It is also a nasnet architecture (all add). */
static void test_encode_zoo(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = load_model(&ctx, "models/enas-micro.yaml");
    static const uint32_t arc[2][20] = {
        {0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1},
        {1, 0, 1, 0, 0, 3, 0, 2, 1, 1, 3, 1, 1, 0, 0, 4, 0, 3, 1, 1},
    };
    uint32_t want[40];
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 5; b++) {
            const uint32_t *a = &arc[c][4 * b];
            uint32_t *w = &want[20 * c + 4 * b];
            w[0] = a[0];
            w[1] = a[2];
            w[2] = a[1];
            w[3] = a[3];
        }
    nasc_space *sp = make_space(&ctx, "enas-micro", 0, 0);
    uint32_t d[50];
    if (nasc_space_encode(sp, m, d)) fail_diag(&ctx, "encode enas-micro.yaml");
    assert_memory_equal(d, want, sizeof want);
    nasc_module *back = NULL;
    if (nasc_space_decode(sp, d, &back)) fail_diag(&ctx, "decode");
    assert_true(cell_hash_ok(back, (uint32_t)back->skel.normal_cell) ==
                cell_hash_ok(m, (uint32_t)m->skel.normal_cell));
    nasc_module_destroy(back);
    nasc_space_destroy(sp);

    sp = make_space(&ctx, "nasnet", 0, 0);
    if (nasc_space_encode(sp, m, d)) fail_diag(&ctx, "encode enas-micro.yaml in nasnet");
    assert_int_equal(d[2], 9); /* avg_pool_3x3 */
    assert_int_equal(d[4], 0); /* add */
    nasc_space_destroy(sp);

    sp = make_space(&ctx, "enas-micro", 4, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT,
                "cell 'enas_normal', node 'b4': the cell has more than 4 blocks");
    nasc_space_destroy(sp);
    nasc_module_destroy(m);

    /* NASNet-A's outputs include h2 (and a block that another block reads) */
    m = load_model(&ctx, "models/nasnet-a.yaml");
    sp = make_space(&ctx, "nasnet", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT,
                "not an architecture of the nasnet space: cell 'nasnet_a_normal': its output lists 'h2'");
    assert_string_equal(ctx.diag.file + strlen(ctx.diag.file) - strlen("models/nasnet-a.yaml"), "models/nasnet-a.yaml");
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "nasrl", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT, "it is a cells net; this space builds macro nets");
    nasc_space_destroy(sp);
    nasc_module_destroy(m);

    /* the published recurrent cells: ENAS's PTB cell is its fixed_arc
     * (scripts/ptb_final.sh), NAS-RL's is TensorFlow's NASCell */
    m = load_model(&ctx, "models/enas-rnn.yaml");
    sp = make_space(&ctx, "enas-rnn", 0, 0);
    static const uint32_t enas_arc[23] = {0, 0, 0, 1, 1, 2, 1, 2, 0, 2, 0, 5, 1, 1, 0, 6, 1, 8, 1, 8, 1, 8, 1};
    if (nasc_space_encode(sp, m, d)) fail_diag(&ctx, "encode enas-rnn.yaml");
    assert_memory_equal(d, enas_arc, sizeof enas_arc);
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "enas-rnn", 6, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT, "decode to a different cell");
    nasc_space_destroy(sp);
    nasc_module_destroy(m);
    m = load_model(&ctx, "models/nasrl-ptb.yaml");
    sp = make_space(&ctx, "nasrl-rnn", 0, 0);
    /* per node (comb: add 0 mul 1; act: identity 0 tanh 1 sigmoid 2 relu 3),
     * then inject at l2_0 by add and tanh, c_t = l3_0 (inner node 4) */
    static const uint32_t nascell[34] = {0, 2, 0, 3, 0, 2, 1, 3, 0, 1, 0, 2, 0, 1, 0, 2, 1, 1,
                                         0, 1, 1, 1, 0, 2, 1, 0, 0, 1, 1, 1, 0, 0, 1, 4};
    if (nasc_space_encode(sp, m, d)) fail_diag(&ctx, "encode nasrl-ptb.yaml");
    assert_memory_equal(d, nascell, sizeof nascell);
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "enas-rnn", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT, "no node n0");
    nasc_space_destroy(sp);
    nasc_module_destroy(m);

    m = load_model(&ctx, "models/baseline-cnn.yaml");
    sp = make_space(&ctx, "nasrl-rnn", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT, "not a recurrent net");
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "nasrl", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT,
                "cell 'baseline_body', node 'c1': 32 filters: this space has 24, 36, 48 or 64");
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "enas-macro", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT,
                "cell 'baseline_body', node 'c1': op 'conv' is not part of this space");
    nasc_space_destroy(sp);
    sp = make_space(&ctx, "enas-micro", 0, 0);
    expect_diag(&ctx, nasc_space_encode(sp, m, d), NASC_EINPUT, "it is a macro net");
    nasc_space_destroy(sp);
    nasc_module_destroy(m);
}

/* Hand-written cells: what fits (blocks in the YAML block form, an explicit
 * output list of the loose ends, a projection after a concat block), and
 * what does not, with the cell and node named. */
static void encode_cells_case(const char *space, int blocks, const char *normal, const char *msg) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char text[2048];
    int n = snprintf(text, sizeof text, "kind: cells\nstages: 2\nnormal: n\nreduction: r\ncells:\n"
                                        "  r:\n    kind: reduction\n    blocks:\n");
    for (int b = 0; b < blocks; b++)
        n += snprintf(text + n, sizeof text - (size_t)n, "      - [h1, sep_conv_3x3, h2, identity, add]\n");
    snprintf(text + n, sizeof text - (size_t)n, "  n:\n    kind: normal\n%s", normal);
    nasc_module *m = load_yaml(&ctx, text);
    nasc_space *sp = make_space(&ctx, space, blocks, 0);
    uint32_t d[64];
    nasc_status st = nasc_space_encode(sp, m, d);
    if (msg) {
        expect_diag(&ctx, st, NASC_EINPUT, msg);
        assert_string_equal(ctx.diag.file, "t.yaml");
    } else if (st) {
        fail_diag(&ctx, normal);
    } else {
        nasc_module *back = NULL;
        if (nasc_space_decode(sp, d, &back)) fail_diag(&ctx, "decode");
        assert_true(cell_hash_ok(back, 0) == cell_hash_ok(m, 1));
        nasc_module_destroy(back);
    }
    nasc_space_destroy(sp);
    nasc_module_destroy(m);
}

static void test_encode_cells_by_hand(void **state) {
    (void)state;
    encode_cells_case("nasnet", 1, "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n", NULL);
    encode_cells_case("enas-micro", 1, "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n", NULL);
    /* an explicit list of exactly the loose ends is the same cell */
    encode_cells_case("nasnet", 2,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n"
                      "      - [h1, max_pool_5x5, h2, identity, concat]\n"
                      "    output: {rule: concat, from: [b1, b0]}\n",
                      NULL);
    /* a pool of a concat block followed by the 1x1 projection */
    encode_cells_case("nasnet", 2,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, concat]\n"
                      "    nodes:\n      - {name: p, op: avg_pool_3x3, in: b0}\n"
                      "      - {name: q, op: conv, in: p, kernel: 1}\n"
                      "      - {name: r, op: sep_conv_7x7, in: h1}\n"
                      "      - {name: s, op: add, in: [q, r]}\n",
                      NULL);
}

static void test_encode_cells_reject(void **state) {
    (void)state;
    encode_cells_case("nasnet", 2,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, max_pool_3x3, concat]\n"
                      "      - [b0, max_pool_3x3, h1, conv_1x1, add]\n"
                      "    nodes:\n      - {name: x1, op: conv, in: [b1a], kernel: 1}\n",
                      "cell 'n', node 'b1': it combines 'b1a', which is not a block branch");
    encode_cells_case("nasnet", 2,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, max_pool_3x3, concat]\n"
                      "      - [b0, identity, h1, conv_1x1, add]\n",
                      "cell 'n', node 'b1a': identity of the concat block 'b0' (2C channels) is a 1x1 'conv'");
    encode_cells_case("enas-micro", 1, "    blocks:\n      - [h1, dil_conv_3x3, h2, identity, add]\n",
                      "cell 'n', node 'b0a': op 'dil_conv_3x3' is not one of the 5 ops of this space");
    encode_cells_case("enas-micro", 1, "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, concat]\n",
                      "cell 'n', node 'b0': its blocks add their two branches");
    encode_cells_case("nasnet", 2, "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n",
                      "cell 'n': it has 1 block; this space has 2");
    encode_cells_case("nasnet", 1,
                      "    nodes:\n      - {name: a, op: sep_conv_3x3, in: h1, stride: 1}\n"
                      "      - {name: b, op: identity, in: h2}\n      - {name: c, op: add, in: [a, b]}\n",
                      "cell 'n', node 'a': this space sets no kernel, filters or stride");
    encode_cells_case("nasnet", 1,
                      "    nodes:\n      - {name: a, op: sep_conv_3x3, in: h1}\n"
                      "      - {name: b, op: identity, in: h2}\n      - {name: c, op: add, in: [a, b, h1]}\n",
                      "cell 'n', node 'c': a block combines two branches; this 'add' has 3 inputs");
    encode_cells_case("nasnet", 1,
                      "    nodes:\n      - {name: a, op: sep_conv_3x3, in: h1}\n"
                      "      - {name: b, op: identity, in: h2}\n      - {name: c, op: add, in: [a, b]}\n"
                      "      - {name: d, op: identity, in: h2}\n",
                      "cell 'n', node 'd': no block combines it");
    encode_cells_case("nasnet", 1,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n"
                      "    output: {rule: concat, from: [b0, h1]}\n",
                      "cell 'n': its output lists 'h1'");
    encode_cells_case("nasnet", 1,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n    output: sum\n",
                      "cell 'n': its output rule is 'sum'");
    encode_cells_case("nasnet", 2,
                      "    blocks:\n      - [h1, sep_conv_3x3, h2, identity, add]\n"
                      "    nodes:\n      - {name: q, op: conv, in: b0, kernel: 1}\n"
                      "      - {name: r, op: sep_conv_7x7, in: h1}\n"
                      "      - {name: s, op: add, in: [q, r]}\n",
                      "cell 'n', node 'q': a 1x1 'conv' appears in this space only after identity or pooling of a concat block");
}

static void encode_macro_case(const char *space, int layers, const char *body, const char *msg) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char text[2048];
    snprintf(text, sizeof text, "kind: macro\nchannels: 24\nbody: body\ncells:\n  body:\n    kind: macro\n    nodes:\n%s",
             body);
    nasc_module *m = load_yaml(&ctx, text);
    nasc_space *sp = make_space(&ctx, space, 0, layers);
    uint32_t d[64];
    nasc_status st = nasc_space_encode(sp, m, d);
    if (msg) {
        expect_diag(&ctx, st, NASC_EINPUT, msg);
    } else if (st) {
        fail_diag(&ctx, body);
    } else {
        nasc_module *back = NULL;
        if (nasc_space_decode(sp, d, &back)) fail_diag(&ctx, "decode");
        assert_true(cell_hash_ok(back, 0) == cell_hash_ok(m, 0));
        nasc_module_destroy(back);
    }
    nasc_space_destroy(sp);
    nasc_module_destroy(m);
}

static void test_encode_macro_by_hand(void **state) {
    (void)state;
    /* enas-macro, 3 layers: reductions after l0 and l1 */
    const char *ok3 = "      - {name: a, op: conv_3x3, in: x}\n"
                      "      - {name: ar, op: factorized_reduce, in: a}\n"
                      "      - {name: xr, op: factorized_reduce, in: x}\n"
                      "      - {name: bo, op: max_pool_3x3, in: ar}\n"
                      "      - {name: b, op: add, in: [xr, bo]}\n"
                      "      - {name: br, op: factorized_reduce, in: b}\n"
                      "      - {name: c, op: sep_conv_5x5, in: br}\n";
    encode_macro_case("enas-macro", 3, ok3, NULL);
    {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        char text[2048];
        snprintf(text, sizeof text, "kind: macro\nbody: body\ncells:\n  body:\n    kind: macro\n    nodes:\n%s", ok3);
        nasc_module *m = load_yaml(&ctx, text);
        nasc_space *sp = make_space(&ctx, "enas-macro", 0, 3);
        uint32_t d[6];
        if (nasc_space_encode(sp, m, d)) fail_diag(&ctx, "encode");
        uint32_t want[6] = {0, 0, 5, 1, 3, 0};
        assert_memory_equal(d, want, sizeof want);
        nasc_space_destroy(sp);
        nasc_module_destroy(m);
    }
    encode_macro_case("enas-macro", 3,
                      "      - {name: a, op: conv_3x3, in: x}\n"
                      "      - {name: b, op: max_pool_3x3, in: a}\n"
                      "      - {name: c, op: sep_conv_5x5, in: b}\n",
                      "cell 'body', node 'b': its input 'a' is at resolution level 0, but layer 1 runs at level 1");
    encode_macro_case("enas-macro", 2,
                      "      - {name: a, op: conv_3x3, in: x}\n"
                      "      - {name: b, op: max_pool_3x3, in: x}\n",
                      "cell 'body', node 'b': its input is 'x'; in this space it is l0");
    encode_macro_case("enas-macro", 2,
                      "      - {name: a, op: conv_3x3, in: x}\n"
                      "      - {name: bo, op: max_pool_3x3, in: a}\n"
                      "      - {name: b, op: add, in: [bo, a]}\n",
                      "cell 'body', node 'b': it reads 'a'; layer 1's skip inputs are the inputs of the layers before it (x)");
    encode_macro_case("enas-macro", 3,
                      "      - {name: a, op: conv_3x3, in: x}\n",
                      "cell 'body': it has 1 layer; this space has 3");
    encode_macro_case("enas-macro", 1,
                      "      - {name: a, op: conv_3x3, in: x}\n      - {name: b, op: dil_conv_3x3, in: a}\n",
                      "cell 'body', node 'b': op 'dil_conv_3x3' is not part of this space");
    /* nasrl, 2 layers (no stride decisions) */
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 3x5, filters: 36}\n"
                      "      - {name: ai, op: concat, in: [a, x]}\n"
                      "      - {name: b, op: conv, in: ai, kernel: 7x1, filters: 64}\n",
                      NULL);
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 3x5, filters: 36}\n"
                      "      - {name: ai, op: concat, in: [x, a]}\n"
                      "      - {name: b, op: conv, in: ai, kernel: 7x1, filters: 64}\n",
                      "cell 'body', node 'ai': the first input of the concat is 'x'; in this space it is l0");
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 3x5, filters: 36, stride: 2}\n"
                      "      - {name: b, op: conv, in: a, kernel: 7x1, filters: 64}\n",
                      "cell 'body', node 'a': stride 2: layer 0 of this space has stride 1");
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 2, filters: 36}\n"
                      "      - {name: b, op: conv, in: a, kernel: 7x1, filters: 64}\n",
                      "cell 'body', node 'a': kernel 2x2: this space has kernel sizes 1, 3, 5 and 7");
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 3, filters: 36, dilation: 1x2}\n"
                      "      - {name: b, op: conv, in: a, kernel: 7x1, filters: 64}\n",
                      "cell 'body', node 'a': this space has no dilated or grouped convolutions");
    encode_macro_case("nasrl", 2,
                      "      - {name: a, op: conv, in: x, kernel: 3, filters: 36, groups: 2}\n"
                      "      - {name: b, op: conv, in: a, kernel: 7x1, filters: 64}\n",
                      "cell 'body', node 'a': this space has no dilated or grouped convolutions");
    encode_macro_case("nasrl", 1,
                      "      - {name: a, op: conv, in: x, kernel: 1, filters: 36}\n"
                      "      - {name: b, op: conv, in: x, kernel: 1, filters: 36}\n"
                      "      - {name: c, op: add, in: [a, b]}\n",
                      "cell 'body', node 'b': the body has more than 1 layers");
    /* nasrl, 3 layers: stride decisions on l0 and l1 */
    encode_macro_case("nasrl", 3,
                      "      - {name: a, op: conv, in: x, kernel: 1, filters: 24, stride: 2}\n"
                      "      - {name: b, op: conv, in: a, kernel: 3, filters: 48, stride: 2}\n"
                      "      - {name: xr, op: factorized_reduce, in: x}\n"
                      "      - {name: xr2, op: factorized_reduce, in: xr}\n"
                      "      - {name: ar, op: factorized_reduce, in: a}\n"
                      "      - {name: ci, op: concat, in: [b, xr2, ar]}\n"
                      "      - {name: c, op: conv, in: ci, kernel: 5x3, filters: 64}\n",
                      NULL);
    encode_macro_case("nasrl", 3,
                      "      - {name: a, op: conv, in: x, kernel: 1, filters: 24, stride: 2}\n"
                      "      - {name: b, op: conv, in: a, kernel: 3, filters: 48, stride: 2}\n"
                      "      - {name: xr, op: factorized_reduce, in: x}\n"
                      "      - {name: ci, op: concat, in: [b, xr]}\n"
                      "      - {name: c, op: conv, in: ci, kernel: 5x3, filters: 64}\n",
                      "cell 'body', node 'ci': a skip input 'xr' is at resolution level 1, but layer 2 runs at level 2");
}

/* ------------------------------------------------------------ allocation failures */

static void test_alloc_failures(void **state) {
    (void)state;
    for (int s = 0; nasc_space_names[s]; s++) {
        uint32_t d[128], e[128];
        bool done = false;
        for (long k = 1; !done && k < 100000; k++) {
            nasc_ctx ctx;
            nasc_test_alloc ta;
            nasc_test_ctx(&ctx, &ta, k);
            nasc_space_entry ent;
            assert_true(nasc_space_registered((size_t)s, &ent));
            bool blocks = strcmp(ent.option, "blocks") == 0;
            nasc_space_options o = {blocks ? 4 : 0, blocks ? 0 : 5};
            nasc_space *sp = NULL;
            nasc_module *m = NULL;
            nasc_status st = nasc_space_create(&ctx, nasc_space_names[s], &o, &sp);
            if (!st) {
                nasc_rng r;
                nasc_rng_seed(&r, 9);
                nasc_space_sample(sp, &r, d);
                st = nasc_space_decode(sp, d, &m);
            }
            if (!st) st = nasc_space_encode(sp, m, e);
            if (!st) {
                nasc_buf b;
                nasc_buf_init(&b, &ctx);
                st = nasc_yaml_write(m, &b);
                nasc_buf_free(&b);
            }
            if (st) {
                assert_true(ta.failed);
                assert_int_equal(st, NASC_ENOMEM);
            } else {
                assert_memory_equal(d, e, nasc_space_count(sp) * sizeof *d);
                done = !ta.failed;
            }
            nasc_module_destroy(m);
            nasc_space_destroy(sp);
            assert_int_equal(ta.live, 0);
        }
        assert_true(done);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_options),
        cmocka_unit_test(test_pinned_defaults),
        cmocka_unit_test(test_labels_are_ops),
        cmocka_unit_test(test_roundtrip_nasnet),
        cmocka_unit_test(test_roundtrip_enas_micro),
        cmocka_unit_test(test_roundtrip_enas_macro),
        cmocka_unit_test(test_roundtrip_nasrl),
        cmocka_unit_test(test_roundtrip_enas_rnn),
        cmocka_unit_test(test_roundtrip_nasrl_rnn),
        cmocka_unit_test(test_roundtrip_smash),
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_extreme_vectors),
        cmocka_unit_test(test_sample_deterministic),
        cmocka_unit_test(test_check_errors),
        cmocka_unit_test(test_encode_zoo),
        cmocka_unit_test(test_encode_cells_by_hand),
        cmocka_unit_test(test_encode_cells_reject),
        cmocka_unit_test(test_encode_macro_by_hand),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("search/space", tests, NULL, NULL);
}
