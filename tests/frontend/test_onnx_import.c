/* ONNX import (frontend/onnx_import.c, onnx_ops.c):
 *  - the bad-input corpus (tests/bad/onnx, made by make.py): every file is
 *    NASC_EINPUT with the expected message, naming the file;
 *  - every prefix of a model: no crash, nothing leaked;
 *  - a failing allocator at every allocation: NASC_ENOMEM, nothing leaked;
 *  - what a model becomes: the prim text, the store (initializers under
 *    the parameter names, batch-norm statistics under "<bn>.mean"/".var"),
 *    the inputs and outputs, feeds by name and by position;
 *  - export -> import: a zoo model and a hand-written prim module that
 *    uses every op the exporter writes come back as the same text (but
 *    the group lines) and the same weights, bit for bit;
 *  - PyTorch's exports (tests/onnx/torch, made by make_models.py): what
 *    shape chains, F.pad, slicing, Clip, ReduceSum, initializers listed as
 *    inputs and Gemm transposes become; their prefixes and a failing
 *    allocator at every allocation (tests/onnx/test_torch_models.sh
 *    checks their numerics against ONNX Runtime).
 * The numerics of imported models are checked by `nasc test-onnx`
 * (tests/frontend/test_onnx_cases.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_export.h"
#include "testutil.h"

static char *read_or_die(const char *rel, size_t *len) {
    char *d = nasc_test_read(rel, len);
    if (!d) fail_msg("cannot read %s", rel);
    return d;
}

/* ---------------------------------------------------------------- */
/* Bad inputs                                                        */
/* ---------------------------------------------------------------- */

static void test_bad_corpus(void **state) {
    (void)state;
    size_t len;
    char *list = read_or_die("tests/bad/onnx/expect.txt", &len);
    int n = 0, bad = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = 0;
        const char *want = tab + 1;
        char rel[256];
        snprintf(rel, sizeof rel, "tests/bad/onnx/%s", line);
        size_t flen;
        char *data = read_or_die(rel, &flen);
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = (nasc_module *)1;
        nasc_param_store *w = (nasc_param_store *)1;
        nasc_status st = nasc_onnx_import(&ctx, data, flen, line, &m, &w);
        char msg[1024];
        nasc_diag_format(&ctx.diag, msg, sizeof msg);
        bool ok = st == NASC_EINPUT && m == NULL && w == NULL && strstr(msg, want) && strcmp(ctx.diag.file, line) == 0;
        printf("%s %-32s %s\n", ok ? "ok  " : "FAIL", line, msg);
        if (!ok) {
            printf("     expected NASC_EINPUT and '%s' (status %d)\n", want, (int)st);
            bad++;
        }
        assert_int_equal(ta.live, 0);
        free(data);
        n++;
    }
    free(list);
    assert_true(n >= 30);
    assert_int_equal(bad, 0);
}

/* Every prefix of a model either imports or is rejected as input; none
 * crashes or leaks. */
static void prefixes(const char *rel) {
    size_t len;
    char *data = read_or_die(rel, &len);
    int ok = 0;
    for (size_t n = 0; n < len; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_module *m = NULL;
        nasc_param_store *w = NULL;
        nasc_status st = nasc_onnx_import(&ctx, data, n, "prefix.onnx", &m, &w);
        assert_true(st == NASC_OK || st == NASC_EINPUT);
        if (st == NASC_OK) ok++;
        nasc_module_destroy(m);
        nasc_params_destroy(w);
        assert_int_equal(ta.live, 0);
    }
    printf("%s: %zu prefixes, %d of them import\n", rel, len, ok);
    free(data);
}

static void test_prefixes(void **state) {
    (void)state;
    prefixes("tests/onnx/cases/nasc_cnn_classifier_batch/model.onnx");
    prefixes("tests/onnx/torch/bad_reflect_pad/model.onnx"); /* a pads chain of Constant, Slice, Transpose, ... */
}

/* Allocation n fails, for every n until the import needs no more. */
static void fail_each(const char *rel, const nasc_onnx_import_options *o) {
    size_t len;
    char *data = read_or_die(rel, &len);
    long n;
    for (n = 1;; n++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, n);
        nasc_module *m = NULL;
        nasc_param_store *w = NULL;
        nasc_onnx_import_info info;
        nasc_status st = nasc_onnx_import_ex(&ctx, data, len, rel, o, &m, &w, &info);
        if (ta.failed) {
            if (st != NASC_ENOMEM) {
                nasc_diag_print(&ctx.diag, stderr);
                fail_msg("%s: allocation %ld failed but the status is %d", rel, n, (int)st);
            }
            assert_null(m);
            assert_null(w);
            assert_int_equal(ta.live, 0);
            continue;
        }
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        nasc_module_destroy(m);
        nasc_params_destroy(w);
        nasc_onnx_import_info_free(&ctx, &info);
        assert_int_equal(ta.live, 0);
        break;
    }
    printf("%s: %ld allocations\n", rel, n);
    assert_true(n > 20);
    free(data);
}

static void test_alloc_failures(void **state) {
    (void)state;
    fail_each("tests/onnx/torch/pad/model.onnx", NULL);
    fail_each("tests/onnx/torch/view_flatten/model.onnx", NULL);
    fail_each("tests/onnx/cases/nasc_cnn_classifier_batch/model.onnx", NULL);
    fail_each("tests/onnx/cases/nasc_shift_pattern/model.onnx", NULL);
    fail_each("tests/onnx/cases/nasc_gemm_initializers/model.onnx", NULL);
    fail_each("tests/onnx/cases/nasc_names_constants_broadcast/model.onnx", NULL);
    /* with a feed (a constant from a graph input) */
    size_t flen;
    char *feed = read_or_die("tests/onnx/cases/nasc_softmax_opset11_batch/test_data_set_0/input_0.pb", &flen);
    nasc_onnx_feed f = {"x", feed, flen};
    nasc_onnx_import_options o = nasc_onnx_import_options_default();
    o.feeds = &f;
    o.n_feeds = 1;
    fail_each("tests/onnx/cases/nasc_softmax_opset11_batch/model.onnx", &o);
    free(feed);
}

/* ---------------------------------------------------------------- */
/* What a model becomes                                              */
/* ---------------------------------------------------------------- */

static char *print(const nasc_module *m) {
    nasc_buf b;
    nasc_buf_init(&b, m->ctx);
    assert_int_equal(nasc_text_print(m, &b), NASC_OK);
    char *s = strdup(b.data);
    nasc_buf_free(&b);
    return s;
}

static void expect_tensor(const nasc_param_store *w, const char *name, int rank, int64_t d0, int64_t d1) {
    const nasc_tensor *t = nasc_params_find(w, name);
    if (!t) fail_msg("the store has no '%s'", name);
    assert_int_equal(t->rank, rank);
    assert_int_equal(t->dims[0], d0);
    if (rank > 1) assert_int_equal(t->dims[1], d1);
}

static void test_classifier(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m;
    nasc_param_store *w;
    char *path = nasc_test_path("tests/onnx/cases/nasc_cnn_classifier_batch/model.onnx");
    assert_int_equal(nasc_onnx_load(&ctx, path, &m, &w), NASC_OK);
    free(path);
    char *text = print(m);
    static const char *want =
        "prim {\n"
        "  input %x : f32[N,2,6,6]\n"
        "  param %conv.w : f32[8,2,3,3]\n"
        "  param %bn.scale : f32[8]\n"
        "  param %bn.shift : f32[8]\n"
        "  param %fc.w : f32[5,8]\n"
        "  param %fc.b : f32[5]\n"
        "  group onnx\n"
        "  %conv = conv %x, %conv.w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,8,6,6]\n"
        "  %bn = batch_norm %conv, %bn.scale, %bn.shift {eps=0.00100000005} : f32[N,8,6,6]\n"
        "  %relu = relu %bn : f32[N,8,6,6]\n"
        "  %pool = max_pool %relu {kernel=2x2, stride=2x2, pad=0,0,0,0} : f32[N,8,3,3]\n"
        "  %gap = global_avg_pool %pool : f32[N,8,1,1]\n"
        "  %flat = flatten %gap : f32[N,8]\n"
        "  %logits = inner_product %flat, %fc.w, %fc.b : f32[N,5]\n"
        "  %prob = softmax %logits {axis=1} : f32[N,5]\n"
        "  output %prob\n"
        "}\n";
    if (strcmp(text, want) != 0) fail_msg("got:\n%s\nwant:\n%s", text, want);
    free(text);
    expect_tensor(w, "conv.w", 4, 8, 2);
    expect_tensor(w, "fc.w", 2, 5, 8);
    expect_tensor(w, "bn.mean", 1, 8, 0);
    expect_tensor(w, "bn.var", 1, 8, 0);
    assert_null(nasc_params_find(w, "bn.m")); /* the statistics live under the batch norm's name only */
    assert_int_equal(w->n, 7);
    const nasc_tensor *var = nasc_params_find(w, "bn.var");
    for (int i = 0; i < 8; i++) assert_true(var->data[i] >= 0.5f); /* make_cases.py: |N(0,1)| + 0.5 */
    nasc_module_destroy(m);
    nasc_params_destroy(w);
}

/* Names that are not prim names, helper values, the info. */
static void test_names_and_info(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    size_t len;
    char *data = read_or_die("tests/onnx/cases/nasc_names_constants_broadcast/model.onnx", &len);
    nasc_module *m;
    nasc_param_store *w;
    nasc_onnx_import_info info;
    nasc_onnx_import_options o = nasc_onnx_import_options_default();
    o.group = "imported";
    assert_int_equal(nasc_onnx_import_ex(&ctx, data, len, "names.onnx", &o, &m, &w, &info), NASC_OK);
    char *text = print(m);
    assert_non_null(strstr(text, "  group imported\n"));
    assert_non_null(strstr(text, "%model_mul_0 = mul %input_0, %scale_1 : f32[N,3,2,2]"));
    assert_non_null(strstr(text, "%model_reshape = reshape %model_mul_0 {shape=Nx3x4} : f32[N,3,4]"));
    assert_non_null(strstr(text, "%out_put = add %model_reshape, %bias_vec : f32[N,3,4]"));
    free(text);
    assert_int_equal(info.n_inputs, 1);
    assert_string_equal(info.inputs[0].name, "input:0");
    assert_string_equal(nasc_str(m, m->values[info.inputs[0].value].name), "input_0");
    assert_int_equal(info.n_outputs, 1);
    assert_string_equal(info.outputs[0].name, "out put");
    assert_int_equal((uint32_t)info.outputs[0].value, m->outputs[0]);
    expect_tensor(w, "scale_1", 3, 3, 1);
    nasc_onnx_import_info_free(&ctx, &info);
    nasc_module_destroy(m);
    nasc_params_destroy(w);
    free(data);
}

/* Feeds: by name or by position; a fed input read as a constant is one. */
static void test_feeds(void **state) {
    (void)state;
    const char *dir = "/usr/share/libonnx-testdata/data/node/test_reshape_reduced_dims";
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) nasc_test_skip("%s is missing (libonnx-testdata)", path);
    fclose(probe);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char *model, *in0, *in1;
    size_t lm, l0, l1;
    assert_int_equal(nasc_file_read(&ctx, path, &model, &lm), NASC_OK);
    snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
    assert_int_equal(nasc_file_read(&ctx, path, &in0, &l0), NASC_OK);
    snprintf(path, sizeof path, "%s/test_data_set_0/input_1.pb", dir);
    assert_int_equal(nasc_file_read(&ctx, path, &in1, &l1), NASC_OK);
    nasc_module *m = NULL;
    nasc_param_store *w = NULL;
    /* without feeds the shape is no constant */
    assert_int_equal(nasc_onnx_import(&ctx, model, lm, "r.onnx", &m, &w), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "(the shape) must be a constant"));
    nasc_onnx_feed named[2] = {{"shape", in1, l1}, {"data", in0, l0}};
    nasc_onnx_feed pos[2] = {{NULL, in0, l0}, {NULL, in1, l1}};
    for (int k = 0; k < 2; k++) {
        nasc_onnx_import_options o = nasc_onnx_import_options_default();
        o.feeds = k ? pos : named;
        o.n_feeds = 2;
        nasc_onnx_import_info info;
        assert_int_equal(nasc_onnx_import_ex(&ctx, model, lm, "r.onnx", &o, &m, &w, &info), NASC_OK);
        assert_int_equal(info.n_inputs, 2);
        assert_true(info.inputs[0].value >= 0);     /* data: a value */
        assert_int_equal(info.inputs[1].value, -1); /* shape: read as a constant only */
        const nasc_type *t = &m->values[m->outputs[0]].type;
        assert_int_equal(t->rank, 2);
        assert_int_equal(t->dims[0], 2);
        assert_int_equal(t->dims[1], 12);
        nasc_onnx_import_info_free(&ctx, &info);
        nasc_module_destroy(m);
        nasc_params_destroy(w);
    }
    nasc_onnx_feed unknown = {"nope", in0, l0};
    nasc_onnx_import_options o = nasc_onnx_import_options_default();
    o.feeds = &unknown;
    o.n_feeds = 1;
    assert_int_equal(nasc_onnx_import_ex(&ctx, model, lm, "r.onnx", &o, &m, &w, NULL), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "feed 0 ('nope') names no graph input"));
    nasc_onnx_feed twice[2] = {{"data", in0, l0}, {"data", in0, l0}};
    o.feeds = twice;
    o.n_feeds = 2;
    assert_int_equal(nasc_onnx_import_ex(&ctx, model, lm, "r.onnx", &o, &m, &w, NULL), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "is fed twice"));
    nasc_onnx_feed junk = {"shape", "\xff\xff\xff", 3};
    o.feeds = &junk;
    o.n_feeds = 1;
    assert_int_equal(nasc_onnx_import_ex(&ctx, model, lm, "r.onnx", &o, &m, &w, NULL), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.msg, "not an ONNX TensorProto"));
    nasc_free(&ctx, model);
    nasc_free(&ctx, in0);
    nasc_free(&ctx, in1);
}

/* ---------------------------------------------------------------- */
/* PyTorch's exports                                                 */
/* ---------------------------------------------------------------- */

typedef struct torch_model {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *w;
    char *text;
} torch_model;

static void torch_load(torch_model *t, const char *name) {
    nasc_ctx_init(&t->ctx);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/onnx/torch/%s/model.onnx", name);
    char *path = nasc_test_path(rel);
    if (nasc_onnx_load(&t->ctx, path, &t->m, &t->w)) {
        nasc_diag_print(&t->ctx.diag, stderr);
        fail_msg("%s does not import", rel);
    }
    free(path);
    t->text = print(t->m);
}

static void torch_free(torch_model *t) {
    free(t->text);
    nasc_module_destroy(t->m);
    nasc_params_destroy(t->w);
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

#define HAS(t, line)                                                                          \
    do {                                                                                      \
        if (!strstr((t)->text, line)) fail_msg("expected\n%s\nin\n%s", line, (t)->text); \
    } while (0)

/* x.view(x.size(0), -1) and a reshape to (N, C // 196, 196): the Shape,
 * Gather, Unsqueeze, Div, Cast, Concat chains fold into reshapes that keep
 * N, at opset 13 (Unsqueeze axes as an input) and 11 (as an attribute). */
static void test_torch_shape_chains(void **state) {
    (void)state;
    const char *names[] = {"view_flatten", "view_flatten_opset11"};
    for (int i = 0; i < 2; i++) {
        torch_model t;
        torch_load(&t, names[i]);
        HAS(&t, "%_Reshape_output_0 = reshape %_Relu_output_0 {shape=Nx784} : f32[N,784]\n");
        HAS(&t, "%_Reshape_1_output_0 = reshape %_Reshape_output_0 {shape=Nx4x196} : f32[N,4,196]\n");
        assert_int_equal(t.m->n_prims, 7); /* conv, add (bias), relu, 2 reshapes, flatten, inner_product */
        torch_free(&t);
    }
}

/* F.pad: folded into the conv after it (pads 1,1,1,1 and 0,2,2,0), into
 * an average pool (which then counts its padding), a one-hot depthwise conv
 * before a max pool, a constant mask for a pad value of 0.5; the pads come
 * out of a ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast chain. */
static void test_torch_pad(void **state) {
    (void)state;
    torch_model t;
    torch_load(&t, "pad");
    HAS(&t, "= conv %x, %c1.weight {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,28,28]\n");
    HAS(&t, "%_Pad_1_output_0 = conv %_Relu_output_0, %_Pad_1_output_0.onehot {kernel=1x1, stride=1x1, "
            "pad=0,0,1,1, dilation=1x1, groups=4} : f32[N,4,29,29]\n");
    HAS(&t, "= conv %_MaxPool_output_0, %c2.weight {kernel=3x3, stride=1x1, pad=0,2,2,0, dilation=1x1, groups=4}");
    HAS(&t, "%_Pad_3_output_0 = add %_Pad_3_output_0.window, %_Pad_3_output_0.pad_value : f32[N,4,14,14]\n");
    HAS(&t, "%_AveragePool_output_0 = avg_pool %_Add_output_0 {kernel=2x2, stride=2x2, pad=1,1,1,1, "
            "count_include_pad=1} : f32[N,4,8,8]\n");
    /* x[:, :, :7, :7] of 8x8, two Slices: one 2x2 one-hot conv */
    HAS(&t, "%_Slice_8_output_0 = conv %_AveragePool_output_0, %_Slice_8_output_0.onehot {kernel=2x2, stride=1x1, "
            "pad=0,0,0,0, dilation=1x1, groups=4} : f32[N,4,7,7]\n");
    /* the mask: 0.5 on the top row and left column (F.pad (1, 0, 1, 0)), 0 inside */
    const nasc_tensor *mask = nasc_params_find(t.w, "_Pad_3_output_0.pad_value");
    assert_non_null(mask);
    assert_int_equal(mask->numel, 4 * 14 * 14);
    assert_true(mask->data[0] == 0.5f && mask->data[13] == 0.5f && mask->data[14] == 0.5f);
    assert_true(mask->data[15] == 0.0f && mask->data[14 * 14 - 1] == 0.0f);
    const nasc_tensor *onehot = nasc_params_find(t.w, "_Slice_8_output_0.onehot");
    assert_non_null(onehot);
    assert_true(onehot->data[0] == 1.0f && onehot->data[1] == 0.0f && onehot->data[3] == 0.0f);
    assert_int_equal(count(t.text, " = shift "), 0);
    torch_free(&t);
}

/* x[:, :4, 1:-1, 2:] is a 3x3 one-hot conv over the 8 channels; b =
 * x[:, 4:, ::2, 1::2] only feeds two more Slices, each of which becomes one
 * strided conv of x itself (b[:, :, 1:, :-1]: rows 2, 4, ..., columns 1, 3, ...). */
static void test_torch_slice(void **state) {
    (void)state;
    torch_model t;
    torch_load(&t, "slice");
    HAS(&t, "%_Slice_2_output_0 = conv %_Tanh_output_0, %_Slice_2_output_0.onehot {kernel=3x3, stride=1x1, "
            "pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,4,26,26]\n");
    HAS(&t, "%_Slice_7_output_0 = conv %_Tanh_output_0, %_Slice_7_output_0.onehot {kernel=3x3, stride=2x2, "
            "pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,4,13,13]\n");
    HAS(&t, "%_Slice_9_output_0 = conv %_Tanh_output_0, %_Slice_9_output_0.onehot {kernel=3x4, stride=2x2, "
            "pad=0,0,0,0, dilation=1x1, groups=1} : f32[N,4,13,13]\n");
    assert_int_equal(t.m->n_prims, 15);
    /* output channel c reads input channel c0 + c at row r, column q of the kernel */
    static const struct {
        const char *name;
        int64_t c0, kw, r, q;
    } sel[] = {{"_Slice_2_output_0.onehot", 0, 3, 1, 2}, {"_Slice_7_output_0.onehot", 4, 3, 2, 1},
               {"_Slice_9_output_0.onehot", 4, 4, 0, 3}};
    for (int i = 0; i < 3; i++) {
        const nasc_tensor *w = nasc_params_find(t.w, sel[i].name);
        assert_non_null(w);
        int64_t per = 8 * 3 * sel[i].kw;
        assert_int_equal(w->numel, 4 * per);
        for (int64_t c = 0; c < 4; c++)
            for (int64_t e = 0; e < per; e++) {
                int64_t hot = ((sel[i].c0 + c) * 3 + sel[i].r) * sel[i].kw + sel[i].q;
                if (w->data[c * per + e] != (e == hot ? 1.0f : 0.0f)) fail_msg("%s: element %lld", sel[i].name, (long long)(c * per + e));
            }
    }
    torch_free(&t);
}

/* NASNet: the two-path reduction's F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
 * (a Pad, then a Slice per axis) is the shift prim; ZeroPad2d before a
 * strided separable conv joins the conv's pads, also when two convs read
 * the same Pad; only the Pad that a max pool also reads stays a conv. */
static void test_torch_nasnet(void **state) {
    (void)state;
    torch_model t;
    torch_load(&t, "nasnet_cells");
    HAS(&t, "%_skip_Slice_2_output_0 = shift %_red_conv_1x1_conv_1x1.0_Relu_output_0 {offset=1,1} : f32[N,24,28,28]\n");
    assert_int_equal(count(t.text, " = shift "), 1);
    assert_int_equal(count(t.text, "{kernel=1x1, stride=1x1, pad=1,1,0,0, dilation=1x1, groups=8}"), 1);
    HAS(&t, "{kernel=7x7, stride=2x2, pad=4,4,3,3, dilation=1x1, groups=8}");
    HAS(&t, "{kernel=5x5, stride=2x2, pad=3,3,2,2, dilation=1x1, groups=8}");
    /* y.mean([2, 3]) */
    HAS(&t, "= global_avg_pool ");
    torch_free(&t);
}

/* ReLU6 (Clip 0..6 with Constant min and max) from relu, mul and add;
 * initializers that are also graph inputs are weights; Gemm transposes;
 * ReduceSum over the channels as a matmul with a row of ones. */
static void test_torch_misc(void **state) {
    (void)state;
    torch_model t;
    torch_load(&t, "mobilenet_v2");
    assert_int_equal(count(t.text, "_Clip_output_0 = add "), 10);
    assert_int_equal(count(t.text, " = relu "), 20);
    torch_free(&t);

    torch_load(&t, "keep_initializers");
    assert_int_equal(count(t.text, "  input "), 1);
    HAS(&t, "  input %x : f32[N,1,28,28]\n");
    assert_non_null(nasc_params_find(t.w, "fc.weight"));
    torch_free(&t);

    torch_load(&t, "gemm_transpose");
    HAS(&t, "%_Gemm_1_output_0.matmul = matmul %w2, %_Relu_output_0 {trans=1,1} : f32[12,2]\n");
    HAS(&t, "%y.matmul = matmul %_Tanh_output_0, %w3 {trans=1,1} : f32[2,10]\n");
    torch_free(&t);

    torch_load(&t, "constants");
    HAS(&t, "= matmul %_ReduceSum_output_0.ones, %_Reshape_output_0 : f32[N,1,784]\n");
    HAS(&t, "%_ReduceSum_output_0 = reshape %_ReduceSum_output_0.sum {shape=Nx784} : f32[N,784]\n");
    const nasc_tensor *scale = nasc_params_find(t.w, "_Constant_output_0");
    assert_non_null(scale);
    assert_true(scale->data[0] == 0.5f && scale->data[1] == -1.0f && scale->data[2] == 2.0f);
    torch_free(&t);
}

/* ---------------------------------------------------------------- */
/* Export, then import                                               */
/* ---------------------------------------------------------------- */

/* The text without its group lines. */
static void drop_groups(char *s) {
    char *out = s;
    for (char *line = s; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, "  group", 7) != 0) {
            memmove(out, line, n);
            out += n;
        }
        line += n;
    }
    *out = 0;
}

static void roundtrip(nasc_ctx *ctx, const nasc_module *prim) {
    nasc_param_store *ws = nasc_params_create(ctx);
    assert_int_equal(nasc_params_init(ws, prim, 3), NASC_OK);
    /* running statistics other than the defaults */
    for (uint32_t i = 0; i < prim->n_prims; i++) {
        const nasc_prim *p = &prim->prims[i];
        if (p->op != NASC_PRIM_BATCH_NORM) continue;
        int64_t c = prim->values[p->result].type.dims[1];
        char name[300];
        snprintf(name, sizeof name, "%s.var", nasc_str(prim, prim->values[p->result].name));
        nasc_tensor *t = nasc_params_get(ws, name, 1, &c);
        assert_non_null(t);
        for (int64_t k = 0; k < c; k++) t->data[k] = 0.5f + (float)k;
    }
    nasc_onnx_options eo = nasc_onnx_options_default();
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    if (nasc_onnx_export(prim, ws, &eo, &b)) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("export failed");
    }
    nasc_module *back;
    nasc_param_store *wb;
    if (nasc_onnx_import(ctx, b.data, b.len, "exported.onnx", &back, &wb)) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("import failed");
    }
    char *t1 = print(prim), *t2 = print(back);
    drop_groups(t1);
    drop_groups(t2);
    if (strcmp(t1, t2) != 0) fail_msg("export -> import changed the module:\n%s\nbecame\n%s", t1, t2);
    /* every parameter and statistic, bit for bit */
    for (uint32_t i = 0; i < ws->n; i++) {
        const nasc_tensor *a = ws->tensors[i], *c = nasc_params_find(wb, a->name);
        if (!c) fail_msg("'%s' is missing after the round trip", a->name);
        assert_int_equal(a->numel, c->numel);
        assert_memory_equal(a->data, c->data, (size_t)a->numel * sizeof(float));
    }
    printf("round trip: %u ops, %u tensors\n", prim->n_prims, ws->n);
    free(t1);
    free(t2);
    nasc_buf_free(&b);
    nasc_module_destroy(back);
    nasc_params_destroy(wb);
    nasc_params_destroy(ws);
}

static void test_roundtrip_zoo(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char *path = nasc_test_path("models/darts-v2.yaml");
    nasc_override ov[] = {{"input", "3x8x8"}, {"channels", "8"}, {"stages", "2"}};
    nasc_module *arch, *prim;
    assert_int_equal(nasc_model_load(&ctx, path, ov, 3, &arch), NASC_OK);
    assert_int_equal(nasc_lower(arch, &prim), NASC_OK);
    roundtrip(&ctx, prim);
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    free(path);
}

static void test_roundtrip_ops(void **state) {
    (void)state;
    static const char *text =
        "prim {\n"
        "  input %x : f32[N,4,6,6]\n"
        "  param %w : f32[4,4,3,3]\n"
        "  param %dw : f32[4,1,3,3]\n"
        "  param %s : f32[4]\n"
        "  param %t : f32[4]\n"
        "  param %fc.w : f32[3,16]\n"
        "  param %fc.b : f32[3]\n"
        "  group g\n"
        "  %c = conv %x, %w {kernel=3x3, stride=1x1, pad=1,1,1,1, dilation=1x1, groups=1} : f32[N,4,6,6]\n"
        "  %d = conv %c, %dw {kernel=3x3, stride=2x2, pad=2,2,2,2, dilation=2x2, groups=4} : f32[N,4,3,3]\n"
        "  %bn = batch_norm %d, %s, %t {eps=0.00999999978} : f32[N,4,3,3]\n"
        "  %r = relu %bn : f32[N,4,3,3]\n"
        "  %th = tanh %r : f32[N,4,3,3]\n"
        "  %sg = sigmoid %r : f32[N,4,3,3]\n"
        "  %m = mul %th, %sg : f32[N,4,3,3]\n"
        "  %a = add %m, %r, %th : f32[N,4,3,3]\n"
        "  %id = identity %a : f32[N,4,3,3]\n"
        "  %sh = shift %id {offset=1,2} : f32[N,4,3,3]\n"
        "  %mp = max_pool %sh {kernel=3x3, stride=1x1, pad=1,1,1,1} : f32[N,4,3,3]\n"
        "  %ap = avg_pool %sh {kernel=2x2, stride=1x1, pad=0,0,1,1, count_include_pad=1} : f32[N,4,3,3]\n"
        "  %cat = concat %mp, %ap {axis=1} : f32[N,8,3,3]\n"
        "  %cat2 = concat %cat, %cat {axis=3} : f32[N,8,3,6]\n"
        "  %g = global_avg_pool %cat2 : f32[N,8,1,1]\n"
        "  %gg = concat %g, %g {axis=1} : f32[N,16,1,1]\n"
        "  %f = flatten %gg : f32[N,16]\n"
        "  %l = inner_product %f, %fc.w, %fc.b : f32[N,3]\n"
        "  %p = softmax %l {axis=1} : f32[N,3]\n"
        "  output %p\n"
        "  output %a\n"
        "}\n";
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m;
    if (nasc_text_parse(&ctx, text, strlen(text), "ops.nir", &m)) {
        nasc_diag_print(&ctx.diag, stderr);
        fail_msg("parse");
    }
    roundtrip(&ctx, m);
    nasc_module_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_corpus),     cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_alloc_failures), cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_names_and_info), cmocka_unit_test(test_feeds),
        cmocka_unit_test(test_roundtrip_zoo),  cmocka_unit_test(test_roundtrip_ops),
        cmocka_unit_test(test_torch_shape_chains), cmocka_unit_test(test_torch_pad),
        cmocka_unit_test(test_torch_slice),    cmocka_unit_test(test_torch_nasnet),
        cmocka_unit_test(test_torch_misc),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("onnx_import", tests, NULL, NULL));
}
