/* The net's interface at its edges: nets whose output is a net input, the
 * compile options that choose the layout, the depthwise kernel and the
 * profile (set only through the options, whatever the environment says),
 * and the message of a failed oneDNN call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nasc_backend.h"
#include "net_internal.h" /* the oneDNN status wrappers */
#include "dwconv.h"
#include "testutil.h"

/* A module whose output 0 is its input x (N, k): the logits are the data. */
static nasc_module *passthrough_module(nasc_ctx *ctx, int64_t k) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "passthrough");
    assert_non_null(m);
    nasc_type ty = {NASC_F32, 2, {NASC_BATCH, k}};
    uint32_t x = nasc_prim_add_input(m, "x", &ty);
    assert_int_not_equal(x, UINT32_MAX);
    assert_int_equal(nasc_prim_add_output(m, x), NASC_OK);
    return m;
}

/* -log softmax(z)[y] in double. */
static double xent(const float *z, int k, int y) {
    double mx = z[0];
    for (int j = 1; j < k; j++)
        if (z[j] > mx) mx = z[j];
    double s = 0;
    for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
    return log(s) - ((double)z[y] - mx);
}

/* nasc_net_loss on a net whose output 0 is a net input, in both modes and
 * with and without the input's gradient: the loss of the input itself, and
 * (with the input's gradient) softmax - onehot over the batch size as that
 * gradient. */
static void test_loss_output_is_input(void **state) {
    (void)state;
    enum { N = 3, K = 5 };
    const float x[N * K] = {0.5f, -1.0f, 2.0f, 0.25f, 0.0f,  1.5f, 1.0f, -0.5f,
                            3.0f, -2.0f, 0.0f, 0.1f, 0.2f,  0.3f, 0.4f};
    const int32_t y[N] = {2, 3, 0};
    double want = 0;
    int want_ok = 0;
    for (int i = 0; i < N; i++) {
        want += xent(x + i * K, K, y[i]) / N;
        int arg = 0;
        for (int j = 1; j < K; j++)
            if (x[i * K + j] > x[i * K + arg]) arg = j;
        want_ok += arg == y[i];
    }
    for (int variant = 0; variant < 3; variant++) {
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_module *m = passthrough_module(&ctx, K);
        nasc_param_store *ps = nasc_params_create(&ctx);
        assert_non_null(ps);
        nasc_net_options o = nasc_net_options_default();
        o.batch = N;
        o.mode = variant == 2 ? NASC_MODE_INFER : NASC_MODE_TRAIN;
        o.input_grad = variant == 1;
        nasc_net *net = NULL;
        nasc_status st = nasc_net_compile(&ctx, m, ps, &o, &net);
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        float loss = NAN;
        int ok = -1;
        st = nasc_net_loss(net, y, &loss, &ok);
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_true(fabs(loss - want) <= 1e-5 * fabs(want));
        assert_int_equal(ok, want_ok);
        if (variant == 1) {
            assert_int_equal(nasc_net_backward(net), NASC_OK);
            float g[N * K];
            assert_int_equal(nasc_net_read_grad(net, "x", g), NASC_OK);
            for (int i = 0; i < N; i++) {
                double mx = x[i * K], s = 0;
                for (int j = 1; j < K; j++)
                    if (x[i * K + j] > mx) mx = x[i * K + j];
                for (int j = 0; j < K; j++) s += exp((double)x[i * K + j] - mx);
                for (int j = 0; j < K; j++) {
                    double p = exp((double)x[i * K + j] - mx) / s;
                    assert_true(fabs(g[i * K + j] - (p - (j == y[i])) / N) <= 1e-6);
                }
            }
        }
        nasc_net_destroy(net);
        nasc_params_destroy(ps);
        nasc_module_destroy(m);
    }
}

/* A failed oneDNN call becomes a diagnostic that names the call (not its
 * arguments), oneDNN's status, our file:line and what the call was for, and
 * suggests ONEDNN_VERBOSE=check; once the net is compiled, a failure no
 * longer marks the net as broken. */
static void test_onednn_failure_message(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = passthrough_module(&ctx, 4);
    nasc_param_store *ps = nasc_params_create(&ctx);
    nasc_net_options o = nasc_net_options_default();
    o.batch = 2;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &net), NASC_OK);
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {2, 3};
    int line = __LINE__ + 1;
    nasc_status st = NB_TRY_AS(net, "a test", dnnl_memory_desc_init_by_tag(&md, DNNL_MAX_NDIMS + 1, d, dnnl_f32, dnnl_ab));
    assert_int_equal(st, NASC_EINTERNAL);
    assert_int_equal(ctx.diag.status, NASC_EINTERNAL);
    char where[64];
    snprintf(where, sizeof where, "test_net.c:%d", line);
    printf("%s\n", ctx.diag.msg);
    assert_non_null(strstr(ctx.diag.msg, "oneDNN call dnnl_memory_desc_init_by_tag (a test) failed: invalid_arguments"));
    assert_null(strstr(ctx.diag.msg, "&md"));
    assert_non_null(strstr(ctx.diag.msg, where));
    assert_non_null(strstr(ctx.diag.msg, "ONEDNN_VERBOSE=check"));
    assert_int_equal(net->status, NASC_OK);
    /* the context-only form */
    nasc_ctx c2;
    nasc_ctx_init(&c2);
    assert_int_equal(NB_TRY_CTX(&c2, dnnl_stream_wait(NULL)), NASC_EINTERNAL);
    assert_non_null(strstr(c2.diag.msg, "oneDNN call dnnl_stream_wait failed: invalid_arguments"));
    assert_non_null(strstr(c2.diag.msg, "ONEDNN_VERBOSE=check"));
    /* the net still runs */
    float x[8] = {0};
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* A net with every switch in play: 8 channels (the blocked layout by
 * default), a depthwise 5x5 convolution (nasc's own backward-weights kernel
 * by default). */
static const char *switch_net =
    "prim {\n"
    "  input %x : f32[N,8,5,5]\n"
    "  param %w : f32[8,8,3,3]\n"
    "  param %dw : f32[8,1,5,5]\n"
    "  param %fc.w : f32[3,8]\n"
    "  param %fc.b : f32[3]\n"
    "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,8,5,5]\n"
    "  %d = conv %c, %dw {kernel=5x5, stride=1x1, pad=2,2,2,2, dilation=1x1, groups=8} : f32[N,8,5,5]\n"
    "  %gap = global_avg_pool %d : f32[N,8,1,1]\n"
    "  %fl = flatten %gap : f32[N,8]\n"
    "  %fc = inner_product %fl, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

/* The net's profile (nasc_net_profile_print) as text in buf. */
static void capture_profile(const nasc_net *net, char *buf, size_t size) {
    FILE *f = fmemopen(buf, size, "w");
    assert_non_null(f);
    nasc_net_profile_print(net, f);
    fclose(f);
}

/* A net compiled from IR text (file names it in diagnostics), its
 * parameters initialised from seed; text_net_free releases all of it. */
typedef struct text_net {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *ps;
    nasc_net *net;
} text_net;

static void text_net_compile(text_net *t, const char *text, const char *file, uint64_t seed,
                             const nasc_net_options *o) {
    nasc_ctx_init(&t->ctx);
    t->m = NULL;
    t->net = NULL;
    assert_int_equal(nasc_text_parse(&t->ctx, text, strlen(text), file, &t->m), NASC_OK);
    t->ps = nasc_params_create(&t->ctx);
    assert_non_null(t->ps);
    assert_int_equal(nasc_params_init(t->ps, t->m, seed), NASC_OK);
    nasc_status st = nasc_net_compile(&t->ctx, t->m, t->ps, o, &t->net);
    if (st) nasc_diag_print(&t->ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
}

static void text_net_free(text_net *t) {
    nasc_net_destroy(t->net);
    nasc_params_destroy(t->ps);
    nasc_module_destroy(t->m);
}

typedef struct switch_run {
    int n_reorders;
    char profile[4096]; /* nasc_net_profile_print after one training step */
    float grad_dw[8 * 25];
} switch_run;

static void run_switches(const nasc_net_options *opt, switch_run *r) {
    text_net t;
    text_net_compile(&t, switch_net, "switches.nir", 11, opt);
    nasc_net *net = t.net;
    float x[2 * 8 * 25];
    for (int i = 0; i < 2 * 8 * 25; i++) x[i] = (float)((i * 29) % 17) / 8.0f - 1.0f;
    int32_t y[2] = {1, 2};
    float loss;
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_loss(net, y, &loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "dw", r->grad_dw), NASC_OK);
    nasc_net_stats stats;
    nasc_net_get_stats(net, &stats);
    r->n_reorders = stats.n_reorders;
    capture_profile(net, r->profile, sizeof r->profile);
    text_net_free(&t);
}

/* The switches that used to be environment variables (NASC_LAYOUT,
 * NASC_PROFILE, NASC_ONEDNN_DW) change nothing any more: with them set, a
 * net compiled with the default options is the net compiled without. */
static void test_environment_ignored(void **state) {
    (void)state;
    nasc_net_options o = nasc_net_options_default();
    o.batch = 2;
    switch_run plain, env, env_prof;
    run_switches(&o, &plain);
    setenv("NASC_LAYOUT", "nchw", 1);
    setenv("NASC_PROFILE", "1", 1);
    setenv("NASC_ONEDNN_DW", "1", 1);
    run_switches(&o, &env);
    o.profile = true;
    run_switches(&o, &env_prof);
    unsetenv("NASC_LAYOUT");
    unsetenv("NASC_PROFILE");
    unsetenv("NASC_ONEDNN_DW");
    printf("  reorders %d without the variables, %d with\n", plain.n_reorders, env.n_reorders);
    assert_int_equal(env.n_reorders, plain.n_reorders);
    assert_non_null(strstr(env.profile, "no profile"));
    assert_non_null(strstr(env_prof.profile, "dwconv bwd-weights (nasc)"));
}

static double max_rel_diff(const float *a, const float *b, int n) {
    double scale = 0, err = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (int i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - (double)b[i]));
    return scale > 0 ? err / scale : err;
}

/* The options that replaced them: opt.layout, opt.onednn_dw, opt.profile
 * each change what they say and nothing else (the gradients agree). */
/* Inference nets prepare their weights (batch norm folded into the conv,
 * weights reordered into the conv's layout) once and again only when the
 * store's bytes change: a forward pass after a write to the weights, the
 * running statistics or the batch-norm scale gives what a freshly compiled
 * net gives, and forward passes without a write give the same bits. With
 * fixed_weights they are prepared on the first pass only. */
static void test_prepared_weights_follow_the_store(void **state) {
    (void)state;
    enum { N = 2, C = 16, H = 5, W = 5, NY = N * C * H * W };
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "prepared");
    assert_non_null(m);
    nasc_type xt = {NASC_F32, 4, {NASC_BATCH, C, H, W}}, wt = {NASC_F32, 4, {C, C, 3, 3}}, vt = {NASC_F32, 1, {C}};
    uint32_t x = nasc_prim_add_input(m, "x", &xt);
    uint32_t cargs[2] = {x, nasc_prim_add_param(m, "w", &wt)};
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = a.kw = 3;
    a.pt = a.pl = a.pb = a.pr = 1;
    uint32_t conv = nasc_prim_add_op(m, NASC_PRIM_CONV, cargs, 2, &a, "conv", NULL, NASC_NOLOC);
    uint32_t bargs[3] = {conv, nasc_prim_add_param(m, "bn.scale", &vt), nasc_prim_add_param(m, "bn.shift", &vt)};
    nasc_prim_attrs ba = nasc_prim_attrs_default();
    ba.eps = 1e-5f;
    uint32_t bn = nasc_prim_add_op(m, NASC_PRIM_BATCH_NORM, bargs, 3, &ba, "bn", NULL, NASC_NOLOC);
    assert_int_not_equal(bn, UINT32_MAX);
    assert_int_equal(nasc_prim_add_output(m, bn), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    assert_int_equal(nasc_params_init(ps, m, 3), NASC_OK);

    nasc_net_options o = nasc_net_options_default();
    o.batch = N;
    o.mode = NASC_MODE_INFER;
    o.fuse = true;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &net), NASC_OK);
    static float in[NY], y0[NY], y1[NY], want[NY];
    for (int i = 0; i < NY; i++) in[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;
    assert_int_equal(nasc_net_set_input(net, 0, in), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "bn", y0), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "bn", y1), NASC_OK);
    assert_memory_equal(y0, y1, sizeof y0);

    /* each write is seen by the next forward pass */
    const char *names[] = {"w", "bn.scale", "bn.mean", "bn.var"};
    for (int k = 0; k < 4; k++) {
        nasc_tensor *t = nasc_params_find(ps, names[k]);
        assert_non_null(t);
        t->data[k] += 0.75f;
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        assert_int_equal(nasc_net_read(net, "bn", y1), NASC_OK);
        nasc_net *fresh = NULL;
        assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &fresh), NASC_OK);
        assert_int_equal(nasc_net_set_input(fresh, 0, in), NASC_OK);
        assert_int_equal(nasc_net_forward(fresh), NASC_OK);
        assert_int_equal(nasc_net_read(fresh, "bn", want), NASC_OK);
        nasc_net_destroy(fresh);
        assert_memory_equal(y1, want, sizeof want);
        assert_memory_not_equal(y0, y1, sizeof y0);
        memcpy(y0, y1, sizeof y0);
    }

    /* fixed_weights: the same output, prepared once; a later write to the
     * store is not seen (the caller promised there would be none) */
    nasc_net_options fo = o;
    fo.fixed_weights = true;
    nasc_net *fixed = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &fo, &fixed), NASC_OK);
    assert_int_equal(nasc_net_set_input(fixed, 0, in), NASC_OK);
    assert_int_equal(nasc_net_forward(fixed), NASC_OK);
    assert_int_equal(nasc_net_read(fixed, "bn", y1), NASC_OK);
    assert_memory_equal(y0, y1, sizeof y0);
    nasc_params_find(ps, "w")->data[0] += 0.75f;
    assert_int_equal(nasc_net_forward(fixed), NASC_OK);
    assert_int_equal(nasc_net_read(fixed, "bn", y1), NASC_OK);
    assert_memory_equal(y0, y1, sizeof y0);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "bn", y1), NASC_OK);
    assert_memory_not_equal(y0, y1, sizeof y0);
    nasc_net_destroy(fixed);
    nasc_net_destroy(net);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* The VmFlags line and AnonHugePages (kB) of the mapping that holds addr,
 * from /proc/self/smaps; false when it cannot be read. */
static bool mapping_of(const void *addr, char *flags, size_t size, long *huge_kb) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return false;
    char line[512];
    bool in = false, found = false;
    uintptr_t at = (uintptr_t)addr;
    *huge_kb = -1;
    flags[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            if (in) break; /* past the mapping */
            in = lo <= at && at < hi;
            continue;
        }
        if (!in) continue;
        long kb;
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) *huge_kb = kb;
        if (!strncmp(line, "VmFlags:", 8)) {
            size_t n = strcspn(line + 8, "\n");
            if (n >= size) n = size - 1;
            memcpy(flags, line + 8, n);
            flags[n] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Whether the VmFlags of a mapping list flag (two letters). */
static bool has_flag(const char *flags, const char *flag) {
    for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += 2)
        if ((p == flags || p[-1] == ' ') && (p[2] == ' ' || p[2] == '\n' || p[2] == '\0')) return true;
    return false;
}

/* A net with a 32 MB arena (input and result of a relu) after one pass:
 * the VmFlags of the mapping in the middle of its arena, and how much of
 * that mapping is on huge pages. */
static void arena_pages(bool small_pages, char *flags, size_t size, long *huge_kb) {
    enum { N = 64, K = 65536 };
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_PRIM, "relu");
    assert_non_null(m);
    nasc_type ty = {NASC_F32, 2, {NASC_BATCH, K}};
    uint32_t in = nasc_prim_add_input(m, "x", &ty);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    uint32_t r = nasc_prim_add_op(m, NASC_PRIM_RELU, &in, 1, &a, "r", NULL, NASC_NOLOC);
    assert_int_equal(nasc_prim_add_output(m, r), NASC_OK);
    nasc_param_store *ps = nasc_params_create(&ctx);
    assert_non_null(ps);
    nasc_net_options o = nasc_net_options_default();
    o.batch = N;
    o.small_pages = small_pages;
    o.parallel = NASC_NET_PARALLEL_ALL; /* one net, whose arena this is */
    float *x = calloc((size_t)N * K, sizeof *x);
    assert_non_null(x);
    nasc_net *net = NULL;
    if (nasc_net_compile(&ctx, m, ps, &o, &net)) nasc_test_fail_diag(&ctx, "compile");
    if (nasc_net_set_input(net, 0, x) || nasc_net_forward(net)) nasc_test_fail_diag(&ctx, "forward");
    assert_true(net->arena_bytes >= (size_t)N * K * 4);
    assert_true(mapping_of(net->arena + net->arena_bytes / 2, flags, size, huge_kb));
    nasc_net_destroy(net);
    free(x);
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* A large arena is advised to use huge pages (the kernel marks its mapping
 * "hg"), and with small_pages advised not to ("nh"). Whether the kernel
 * then has huge pages to give is its own affair: printed, not checked. */
static void test_huge_pages(void **state) {
    (void)state;
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0) {
        printf("  not checked here: this kernel has no transparent huge pages\n");
        skip();
    }
    char flags[256];
    long huge_kb;
    arena_pages(false, flags, sizeof flags, &huge_kb);
    printf("  advised: VmFlags%s (%ld kB of the mapping on huge pages after a pass)\n", flags, huge_kb);
    assert_true(has_flag(flags, "hg"));
    assert_false(has_flag(flags, "nh"));
    arena_pages(true, flags, sizeof flags, &huge_kb);
    printf("  small_pages: VmFlags%s (%ld kB on huge pages)\n", flags, huge_kb);
    assert_true(has_flag(flags, "nh"));
    assert_false(has_flag(flags, "hg"));
    assert_int_equal(huge_kb, 0);
}

static void test_switch_options(void **state) {
    (void)state;
    nasc_net_options o = nasc_net_options_default();
    o.batch = 2;
    o.profile = true;
    switch_run dflt, nchw, onednn;
    run_switches(&o, &dflt);
    o.layout = NASC_NET_LAYOUT_NCHW;
    run_switches(&o, &nchw);
    o.layout = NASC_NET_LAYOUT_AUTO;
    o.onednn_dw = true;
    run_switches(&o, &onednn);
    printf("  reorders: auto %d, nchw %d\n", dflt.n_reorders, nchw.n_reorders);
    /* the blocked layout reorders the input and the weights' gradients; plain does less */
    assert_true(nchw.n_reorders < dflt.n_reorders);
    assert_non_null(strstr(dflt.profile, "total"));
    assert_non_null(strstr(dflt.profile, "dwconv bwd-weights (nasc)"));
    assert_non_null(strstr(nchw.profile, "dwconv bwd-weights (nasc)"));
    assert_null(strstr(onednn.profile, "dwconv bwd-weights (nasc)"));
    assert_non_null(strstr(onednn.profile, "conv bwd-weights"));
    assert_true(max_rel_diff(nchw.grad_dw, dflt.grad_dw, 8 * 25) < 1e-5);
    assert_true(max_rel_diff(onednn.grad_dw, dflt.grad_dw, 8 * 25) < 1e-5);
    /* an unknown layout is refused */
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = passthrough_module(&ctx, 3);
    nasc_param_store *ps = nasc_params_create(&ctx);
    o.layout = (nasc_net_layout)9;
    nasc_net *net = NULL;
    assert_int_equal(nasc_net_compile(&ctx, m, ps, &o, &net), NASC_EINPUT);
    assert_null(net);
    assert_non_null(strstr(ctx.diag.msg, "layout"));
    nasc_params_destroy(ps);
    nasc_module_destroy(m);
}

/* The end of a cell: two adds whose only use is the concat (written into
 * its tensor in place), an operand the concat copies (y, which the adds
 * use too), and two relus of the concat feeding the next cells. Before it,
 * a batch norm whose only uses are two relus of it (each reader applying
 * its own), as cells do to the stem. */
static const char *cell_end_net =
    "prim {\n"
    "  input %x : f32[N,16,4,4]\n"
    "  param %g : f32[16]\n"
    "  param %bb : f32[16]\n"
    "  param %w : f32[16,16,3,3]\n"
    "  param %p : f32[8,48,1,1]\n"
    "  %b = batch_norm %x, %g, %bb {eps=9.99999975e-06} : f32[N,16,4,4]\n"
    "  %q1 = relu %b : f32[N,16,4,4]\n"
    "  %q2 = relu %b : f32[N,16,4,4]\n"
    "  %y = conv %q1, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,16,4,4]\n"
    "  %s1 = add %y, %q2 : f32[N,16,4,4]\n"
    "  %s2 = add %q2, %y, %q1 : f32[N,16,4,4]\n"
    "  %cat = concat %s1, %y, %s2 {axis=1} : f32[N,48,4,4]\n"
    "  %r1 = relu %cat : f32[N,48,4,4]\n"
    "  %r2 = relu %cat : f32[N,48,4,4]\n"
    "  %n1 = conv %r1, %p {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,8,4,4]\n"
    "  %n2 = conv %r2, %p {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,8,4,4]\n"
    "  %o = add %n1, %n2 : f32[N,8,4,4]\n"
    "  %gap = global_avg_pool %o : f32[N,8,1,1]\n"
    "  %fl = flatten %gap : f32[N,8]\n"
    "  output %fl\n"
    "}\n";

enum { CE_N = 2, CE_PART = 16 * 16, CE_CAT = 48 * 16 };

/* Whether a profile (nasc_net_profile_print) has a line of step kind `kind`
 * (the kind column, padded with spaces, at the start of a line). */
static bool has_kind(const char *profile, const char *kind) {
    size_t n = strlen(kind);
    for (const char *l = profile; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, kind, n) == 0 && l[n] == ' ') return true;
    return false;
}

typedef struct cell_end_run {
    char profile[4096];
    float r1[CE_N * CE_CAT], s1[CE_N * CE_PART], s2[CE_N * CE_PART], cat[CE_N * CE_CAT];
    float gw[16 * 16 * 9], gp[8 * 48], gx[CE_N * CE_PART], gg[16];
    nasc_status read_s1, read_s2, read_cat;
} cell_end_run;

static void run_cell_end(bool fuse, cell_end_run *r) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = CE_N;
    o.fuse = fuse;
    o.profile = true;
    o.input_grad = true;
    text_net t;
    text_net_compile(&t, cell_end_net, "cell_end.nir", 5, &o);
    nasc_net *net = t.net;
    float x[CE_N * CE_PART];
    for (int i = 0; i < CE_N * CE_PART; i++) x[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    int32_t y[CE_N] = {3, 6};
    float loss;
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "r1", r->r1), NASC_OK);
    r->read_s1 = nasc_net_read(net, "s1", r->s1);
    r->read_s2 = nasc_net_read(net, "s2", r->s2);
    r->read_cat = nasc_net_read(net, "cat", r->cat);
    assert_int_equal(nasc_net_loss(net, y, &loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "w", r->gw), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "p", r->gp), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "x", r->gx), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "g", r->gg), NASC_OK);
    capture_profile(net, r->profile, sizeof r->profile);
    text_net_free(&t);
}

/* The adds write into the concat's tensor (read back, they are the sums
 * they compute, at their channels of the concat); with fuse the concat
 * writes its relus' result and the batch norm its relus' (no relu forward
 * step; the concat and the adds' results, which hold the relu's result, no
 * longer readable): the same result and gradients as the net without. */
static void test_cell_end_in_place(void **state) {
    (void)state;
    static cell_end_run plain, fused;
    run_cell_end(false, &plain);
    run_cell_end(true, &fused);
    printf("  profile with fuse:\n%s", fused.profile);
    assert_true(has_kind(plain.profile, "add fwd (nasc, into concat)"));
    assert_true(has_kind(fused.profile, "add fwd (nasc, into concat)"));
    assert_true(has_kind(plain.profile, "relu fwd"));
    assert_false(has_kind(fused.profile, "relu fwd"));
    assert_true(has_kind(fused.profile, "bnorm+relu fwd (lanes)") || has_kind(fused.profile, "bnorm+relu fwd"));
    assert_false(strstr(plain.profile, "bnorm+relu"));
    assert_int_equal(plain.read_cat, NASC_OK);
    assert_int_equal(plain.read_s1, NASC_OK);
    assert_int_equal(plain.read_s2, NASC_OK);
    assert_int_equal(fused.read_cat, NASC_EINPUT);
    assert_int_equal(fused.read_s1, NASC_EINPUT);
    assert_int_equal(fused.read_s2, NASC_EINPUT);
    for (int n = 0; n < CE_N; n++)
        for (int i = 0; i < CE_PART; i++) {
            assert_float_equal(plain.cat[n * CE_CAT + i], plain.s1[n * CE_PART + i], 0);
            assert_float_equal(plain.cat[n * CE_CAT + 2 * CE_PART + i], plain.s2[n * CE_PART + i], 0);
        }
    for (int i = 0; i < CE_N * CE_CAT; i++) assert_float_equal(plain.r1[i], fmaxf(plain.cat[i], 0.0f), 0);
    assert_true(max_rel_diff(fused.r1, plain.r1, CE_N * CE_CAT) == 0);
    assert_true(max_rel_diff(fused.gw, plain.gw, 16 * 16 * 9) < 1e-6);
    assert_true(max_rel_diff(fused.gp, plain.gp, 8 * 48) < 1e-6);
    assert_true(max_rel_diff(fused.gx, plain.gx, CE_N * CE_PART) < 1e-6);
    assert_true(max_rel_diff(fused.gg, plain.gg, 16) < 1e-6);
}

/* A value pooled twice the same way (as a NASNet normal cell pools one
 * state twice, a reduction cell max-pools one twice) is pooled once: in
 * same_pools_net the second avg and max pools are the first ones', read
 * through their own values; the same net written with the first pools used
 * twice (same_pools_once) gives the same loss, results and gradients. The
 * adds' gradients are slices of the concats' (summed by nasc's own kernel,
 * "grad sum (nasc)", not oneDNN's slow path for such views). */
#define SAME_POOLS_HEAD                                                                                                \
    "prim {\n"                                                                                                         \
    "  input %x : f32[N,16,8,8]\n"                                                                                     \
    "  param %w : f32[16,16,1,1]\n"                                                                                    \
    "  param %fc.w : f32[3,64]\n"                                                                                      \
    "  param %fc.b : f32[3]\n"                                                                                         \
    "  %c = conv %x, %w {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,16,8,8]\n"               \
    "  %p1 = avg_pool %c {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,16,8,8]\n"                                      \
    "  %m1 = max_pool %c {kernel=3x3, stride=2x2, pad=1,1,1,1} : f32[N,16,4,4]\n"
#define SAME_POOLS_TAIL                                                                                                \
    "  %cat = concat %s, %c {axis=1} : f32[N,32,8,8]\n"                                                                \
    "  %cat2 = concat %t, %m1 {axis=1} : f32[N,32,4,4]\n"                                                              \
    "  %g1 = global_avg_pool %cat : f32[N,32,1,1]\n"                                                                   \
    "  %g2 = global_avg_pool %cat2 : f32[N,32,1,1]\n"                                                                  \
    "  %f1 = flatten %g1 : f32[N,32]\n"                                                                                \
    "  %f2 = flatten %g2 : f32[N,32]\n"                                                                                \
    "  %f = concat %f1, %f2 {axis=1} : f32[N,64]\n"                                                                    \
    "  %fc = inner_product %f, %fc.w, %fc.b : f32[N,3]\n"                                                              \
    "  output %fc\n"                                                                                                   \
    "}\n"
static const char *same_pools_net = SAME_POOLS_HEAD
    "  %p2 = avg_pool %c {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,16,8,8]\n"
    "  %m2 = max_pool %c {kernel=3x3, stride=2x2, pad=1,1,1,1} : f32[N,16,4,4]\n"
    "  %s = add %p1, %p2 : f32[N,16,8,8]\n"
    "  %t = add %m1, %m2 : f32[N,16,4,4]\n" SAME_POOLS_TAIL;
static const char *same_pools_once = SAME_POOLS_HEAD
    "  %s = add %p1, %p1 : f32[N,16,8,8]\n"
    "  %t = add %m1, %m1 : f32[N,16,4,4]\n" SAME_POOLS_TAIL;

enum { SP_N = 3 };

typedef struct same_pools_run {
    char profile[4096];
    float loss, p[SP_N * 3], gw[16 * 16], gx[SP_N * 16 * 64]; /* p: the logits */
} same_pools_run;

static void run_same_pools(const char *text, same_pools_run *r) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = SP_N;
    o.profile = true;
    o.input_grad = true;
    text_net t;
    text_net_compile(&t, text, "same_pools.nir", 7, &o);
    nasc_net *net = t.net;
    float x[SP_N * 16 * 64];
    for (int i = 0; i < SP_N * 16 * 64; i++) x[i] = (float)((i * 37) % 29) / 14.0f - 1.0f;
    int32_t y[SP_N] = {2, 0, 1};
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "fc", r->p), NASC_OK);
    assert_int_equal(nasc_net_loss(net, y, &r->loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "w", r->gw), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "x", r->gx), NASC_OK);
    capture_profile(net, r->profile, sizeof r->profile);
    text_net_free(&t);
}

/* The count of steps of one kind in a captured profile (0 when absent). */
static int kind_count(const char *profile, const char *kind) {
    size_t n = strlen(kind);
    for (const char *l = profile; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        int count = 0;
        if (strncmp(l, kind, n) == 0 && l[n] == ' ' && sscanf(l + n, "%d", &count) == 1) return count;
    }
    return 0;
}

static void test_same_pools(void **state) {
    (void)state;
    static same_pools_run twice, once;
    run_same_pools(same_pools_net, &twice);
    run_same_pools(same_pools_once, &once);
    printf("  profile:\n%s", twice.profile);
    /* the same steps as the net that pools once (avgpool also counts the
     * two global average pools) */
    static const char *kinds[] = {"avgpool fwd", "avgpool bwd", "avgpool bwd (nasc)", "maxpool fwd",
                                  "maxpool bwd", "grad sum",    "grad sum (nasc)",    "add fwd (nasc, into concat)"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        assert_int_equal(kind_count(twice.profile, kinds[k]), kind_count(once.profile, kinds[k]));
    assert_int_equal(kind_count(twice.profile, "maxpool fwd"), 1);
    assert_int_equal(kind_count(twice.profile, "avgpool fwd"), 3);
    if (nasc_dw_isa_best() == NASC_DW_ISA_AVX512) {
        assert_int_equal(kind_count(twice.profile, "avgpool bwd (nasc)"), 1);
        assert_true(kind_count(twice.profile, "grad sum (nasc)") >= 2);
    }
    assert_float_equal(twice.loss, once.loss, 0);
    assert_true(max_rel_diff(twice.p, once.p, SP_N * 3) == 0);
    assert_true(max_rel_diff(twice.gw, once.gw, 16 * 16) == 0);
    assert_true(max_rel_diff(twice.gx, once.gx, SP_N * 16 * 64) == 0);
}

/* A factorized reduction at an odd size (7x7 to 4x4: the shifted path's
 * last row and column of samples fall outside the input). Each 1x1
 * stride-2 convolution runs as a subsample and a stride-1 convolution;
 * with fuse the shift emits nothing (its offsets move the second path's
 * samples). Both nets give the same loss, logits and gradients, bit for
 * bit (test_ops checks such nets against the reference). */
static const char *reduce_net =
    "prim {\n"
    "  input %x : f32[N,16,7,7]\n"
    "  param %p1 : f32[16,16,1,1]\n"
    "  param %p2 : f32[16,16,1,1]\n"
    "  param %fc.w : f32[3,32]\n"
    "  param %fc.b : f32[3]\n"
    "  %r = relu %x : f32[N,16,7,7]\n"
    "  %a = conv %r, %p1 {kernel=1x1, stride=2x2, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,16,4,4]\n"
    "  %sh = shift %r {offset=1,1} : f32[N,16,7,7]\n"
    "  %b = conv %sh, %p2 {kernel=1x1, stride=2x2, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,16,4,4]\n"
    "  %cat = concat %a, %b {axis=1} : f32[N,32,4,4]\n"
    "  %g = global_avg_pool %cat : f32[N,32,1,1]\n"
    "  %f = flatten %g : f32[N,32]\n"
    "  %fc = inner_product %f, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

typedef struct reduce_run {
    char profile[4096];
    float loss, p[SP_N * 3], g1[16 * 16], g2[16 * 16], gx[SP_N * 16 * 49];
} reduce_run;

static void run_reduce(bool fuse, reduce_run *r) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = SP_N;
    o.fuse = fuse;
    o.profile = true;
    o.input_grad = true;
    text_net t;
    text_net_compile(&t, reduce_net, "reduce.nir", 13, &o);
    nasc_net *net = t.net;
    float x[SP_N * 16 * 49];
    for (int i = 0; i < SP_N * 16 * 49; i++) x[i] = (float)((i * 43) % 37) / 18.0f - 1.0f;
    int32_t y[SP_N] = {1, 2, 0};
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "fc", r->p), NASC_OK);
    assert_int_equal(nasc_net_loss(net, y, &r->loss, NULL), NASC_OK);
    assert_int_equal(nasc_net_backward(net), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "p1", r->g1), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "p2", r->g2), NASC_OK);
    assert_int_equal(nasc_net_read_grad(net, "x", r->gx), NASC_OK);
    capture_profile(net, r->profile, sizeof r->profile);
    text_net_free(&t);
}

static void test_factorized_reduce_subsampled(void **state) {
    (void)state;
    static reduce_run plain, fused;
    run_reduce(false, &plain);
    run_reduce(true, &fused);
    printf("  profile with fuse:\n%s", fused.profile);
    assert_int_equal(kind_count(plain.profile, "subsample"), 2);
    assert_int_equal(kind_count(plain.profile, "subsample bwd"), 2);
    assert_int_equal(kind_count(plain.profile, "shift"), 2); /* forward and backward */
    assert_int_equal(kind_count(fused.profile, "subsample"), 2);
    assert_int_equal(kind_count(fused.profile, "subsample bwd"), 2);
    assert_int_equal(kind_count(fused.profile, "shift"), 0);
    assert_float_equal(fused.loss, plain.loss, 0);
    assert_true(max_rel_diff(fused.p, plain.p, SP_N * 3) == 0);
    assert_true(max_rel_diff(fused.g1, plain.g1, 16 * 16) == 0);
    assert_true(max_rel_diff(fused.g2, plain.g2, 16 * 16) == 0);
    assert_true(max_rel_diff(fused.gx, plain.gx, SP_N * 16 * 49) == 0);
}

/* Inference with fuse: add(p1, conv) may run as the conv's post-op sum into
 * p1's tensor only when nothing else reads that tensor; here p2 is the same
 * pooling as p1 (computed once, plan_same), so the sum must not be fused:
 * the logits equal the unfused net's. */
static const char *shared_pool_net =
    "prim {\n"
    "  input %x : f32[N,16,8,8]\n"
    "  param %w : f32[16,16,1,1]\n"
    "  param %w2 : f32[16,16,1,1]\n"
    "  param %fc.w : f32[3,32]\n"
    "  param %fc.b : f32[3]\n"
    "  %c = conv %x, %w {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,16,8,8]\n"
    "  %p1 = avg_pool %c {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,16,8,8]\n"
    "  %p2 = avg_pool %c {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,16,8,8]\n"
    "  %d = conv %x, %w2 {kernel=1x1, stride=1x1, pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,16,8,8]\n"
    "  %s = add %p1, %d : f32[N,16,8,8]\n"
    "  %cat = concat %s, %p2 {axis=1} : f32[N,32,8,8]\n"
    "  %g = global_avg_pool %cat : f32[N,32,1,1]\n"
    "  %f = flatten %g : f32[N,32]\n"
    "  %fc = inner_product %f, %fc.w, %fc.b : f32[N,3]\n"
    "  output %fc\n"
    "}\n";

static void run_shared_pool(bool fuse, float *logits, char *profile, size_t size) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = SP_N;
    o.mode = NASC_MODE_INFER;
    o.fuse = fuse;
    o.profile = true;
    text_net t;
    text_net_compile(&t, shared_pool_net, "shared_pool.nir", 9, &o);
    nasc_net *net = t.net;
    float x[SP_N * 16 * 64];
    for (int i = 0; i < SP_N * 16 * 64; i++) x[i] = (float)((i * 41) % 31) / 15.0f - 1.0f;
    assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
    assert_int_equal(nasc_net_forward(net), NASC_OK);
    assert_int_equal(nasc_net_read(net, "fc", logits), NASC_OK);
    capture_profile(net, profile, size);
    text_net_free(&t);
}

static void test_shared_pool_not_summed_into(void **state) {
    (void)state;
    float plain[SP_N * 3], fused[SP_N * 3];
    static char pp[4096], fp[4096];
    run_shared_pool(false, plain, pp, sizeof pp);
    run_shared_pool(true, fused, fp, sizeof fp);
    assert_int_equal(kind_count(fp, "avgpool fwd"), 2); /* p1 once (p2 is p1), the global pool */
    double d = max_rel_diff(fused, plain, SP_N * 3);
    printf("  fused against unfused logits: relative difference %.2e\n", d);
    assert_true(d < 1e-5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_output_is_input),
        cmocka_unit_test(test_onednn_failure_message),
        cmocka_unit_test(test_environment_ignored),
        cmocka_unit_test(test_switch_options),
        cmocka_unit_test(test_prepared_weights_follow_the_store),
        cmocka_unit_test(test_huge_pages),
        cmocka_unit_test(test_cell_end_in_place),
        cmocka_unit_test(test_same_pools),
        cmocka_unit_test(test_shared_pool_not_summed_into),
        cmocka_unit_test(test_factorized_reduce_subsampled),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("backend/net", tests, NULL, NULL));
}
