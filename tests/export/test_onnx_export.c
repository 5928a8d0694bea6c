/* Tests of the ONNX writer (export/onnx.c), TensorProto files
 * (export/onnx_io.c, frontend/tensor_pb.c) and the atomic file writer.
 *
 * The exported bytes are parsed back with the protobuf-c code generated from
 * onnx.proto. Its header lives in the build tree, which the tests do not see,
 * so fields are reached through the generated descriptors by name (protobuf-c
 * reflection): the same parser, without hard-coding struct layouts here. */
#include "testutil.h"

#include <math.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nasc_export.h"

extern const ProtobufCMessageDescriptor onnx__model_proto__descriptor;
extern const ProtobufCMessageDescriptor onnx__tensor_proto__descriptor;

/* ---------------------------------------------------------------- */
/* Reflection helpers                                                */
/* ---------------------------------------------------------------- */

static const ProtobufCFieldDescriptor *fd(const ProtobufCMessage *m, const char *name) {
    assert_non_null(m);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f) fail_msg("%s has no field '%s'", m->descriptor->name, name);
    return f;
}

static const void *at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    return (const char *)m + f->offset;
}

static bool has(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = fd(m, name);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)((const char *)m + f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)at(m, f) != NULL;
    return *(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset);
}

static size_t count(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = fd(m, name);
    assert_int_equal(f->label, PROTOBUF_C_LABEL_REPEATED);
    return *(const size_t *)((const char *)m + f->quantifier_offset);
}

static const ProtobufCMessage *msg(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = fd(m, name);
    assert_int_equal(f->type, PROTOBUF_C_TYPE_MESSAGE);
    return *(ProtobufCMessage *const *)at(m, f);
}

static const ProtobufCMessage *rmsg(const ProtobufCMessage *m, const char *name, size_t i) {
    assert_true(i < count(m, name));
    return (*(ProtobufCMessage **const *)at(m, fd(m, name)))[i];
}

static const char *str(const ProtobufCMessage *m, const char *name) {
    const char *s = *(char *const *)at(m, fd(m, name));
    return s ? s : "";
}

static const char *rstr(const ProtobufCMessage *m, const char *name, size_t i) {
    assert_true(i < count(m, name));
    return (*(char **const *)at(m, fd(m, name)))[i];
}

static int64_t i64(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = fd(m, name);
    if (f->type == PROTOBUF_C_TYPE_INT64) return *(const int64_t *)at(m, f);
    return *(const int32_t *)at(m, f); /* int32 and enums */
}

static int64_t ri64(const ProtobufCMessage *m, const char *name, size_t i) {
    assert_true(i < count(m, name));
    return (*(int64_t *const *)at(m, fd(m, name)))[i];
}

static float f32(const ProtobufCMessage *m, const char *name) { return *(const float *)at(m, fd(m, name)); }

static ProtobufCBinaryData bytes(const ProtobufCMessage *m, const char *name) {
    return *(const ProtobufCBinaryData *)at(m, fd(m, name));
}

static const ProtobufCMessage *unpack_model(const nasc_buf *b) {
    ProtobufCMessage *m =
        protobuf_c_message_unpack(&onnx__model_proto__descriptor, NULL, b->len, (const uint8_t *)b->data);
    assert_non_null(m);
    return m;
}

static const ProtobufCMessage *node_named(const ProtobufCMessage *graph, const char *name) {
    for (size_t i = 0; i < count(graph, "node"); i++)
        if (strcmp(str(rmsg(graph, "node", i), "name"), name) == 0) return rmsg(graph, "node", i);
    return NULL;
}

static const ProtobufCMessage *init_named(const ProtobufCMessage *graph, const char *name) {
    for (size_t i = 0; i < count(graph, "initializer"); i++)
        if (strcmp(str(rmsg(graph, "initializer", i), "name"), name) == 0) return rmsg(graph, "initializer", i);
    return NULL;
}

static const ProtobufCMessage *attr_named(const ProtobufCMessage *node, const char *name) {
    for (size_t i = 0; i < count(node, "attribute"); i++)
        if (strcmp(str(rmsg(node, "attribute", i), "name"), name) == 0) return rmsg(node, "attribute", i);
    return NULL;
}

static int64_t attr_i(const ProtobufCMessage *node, const char *name) {
    const ProtobufCMessage *a = attr_named(node, name);
    if (!a) fail_msg("node %s has no attribute %s", str(node, "name"), name);
    return i64(a, "i");
}

/* The float values of an initializer (raw_data, little-endian). */
static float init_f(const ProtobufCMessage *t, size_t i) {
    ProtobufCBinaryData raw = bytes(t, "raw_data");
    assert_true(4 * (i + 1) <= raw.len);
    const uint8_t *p = raw.data + 4 * i;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- */
/* A small prim module that uses every prim op                       */
/* ---------------------------------------------------------------- */

/*   x (N,2,6,6)
 *   c1 = conv x, c1.w (4,2,3,3) pad 1          bn1 = batch_norm c1   [foldable]
 *   r = relu bn1; sh = shift r {1,1}; c2 = conv sh, c2.w (4,1,1,1) groups 4 stride 2
 *   mp = max_pool r 3x3/2 pad 1; ap = avg_pool r 3x3/2 pad 1 count_include_pad 1
 *   a2 = add c2, mp; s3 = add c2, mp, ap; mu = mul a2, ap; cat = concat s3, mu
 *   c3 = conv cat, c3.w (8,8,1,1) (two users)   bn2 = batch_norm c3
 *   t = tanh bn2; sg = sigmoid c3; id = identity sg; s = add t, id
 *   gap; flat; logits = inner_product flat, fc.w, fc.b; prob = softmax logits
 * outputs: prob, logits */
static nasc_module *build_prim(nasc_ctx *ctx) {
    nasc_module *m = nasc_module_create(ctx, NASC_DIALECT_PRIM, "models/tiny-net.nir");
    assert_non_null(m);
    nasc_type tx = {NASC_F32, 4, {NASC_BATCH, 2, 6, 6}};
    uint32_t x = nasc_prim_add_input(m, "x", &tx);
    nasc_type t1 = {NASC_F32, 4, {4, 2, 3, 3}}, t2 = {NASC_F32, 4, {4, 1, 1, 1}}, t3 = {NASC_F32, 4, {8, 8, 1, 1}};
    nasc_type v4 = {NASC_F32, 1, {4}}, v8 = {NASC_F32, 1, {8}}, fw = {NASC_F32, 2, {3, 8}}, fb = {NASC_F32, 1, {3}};
    uint32_t w1 = nasc_prim_add_param(m, "c1.w", &t1), w2 = nasc_prim_add_param(m, "c2.w", &t2);
    uint32_t w3 = nasc_prim_add_param(m, "c3.w", &t3);
    uint32_t g1 = nasc_prim_add_param(m, "bn1.scale", &v4), b1 = nasc_prim_add_param(m, "bn1.shift", &v4);
    uint32_t g2 = nasc_prim_add_param(m, "bn2.scale", &v8), b2 = nasc_prim_add_param(m, "bn2.shift", &v8);
    uint32_t fcw = nasc_prim_add_param(m, "fc.w", &fw), fcb = nasc_prim_add_param(m, "fc.b", &fb);

    nasc_prim_attrs none = nasc_prim_attrs_default(), a = none;
    a.kh = a.kw = 3;
    a.pt = a.pl = a.pb = a.pr = 1;
    uint32_t args[4] = {x, w1};
    uint32_t c1 = nasc_prim_add_op(m, NASC_PRIM_CONV, args, 2, &a, "c1", "stem", NASC_NOLOC);
    uint32_t bnargs[3] = {c1, g1, b1};
    uint32_t bn1 = nasc_prim_add_op(m, NASC_PRIM_BATCH_NORM, bnargs, 3, &none, "bn1", "stem", NASC_NOLOC);
    uint32_t r = nasc_prim_add_op(m, NASC_PRIM_RELU, &bn1, 1, &none, "cell0.r", "cell0", NASC_NOLOC);
    nasc_prim_attrs sa = none;
    sa.dy = sa.dx = 1;
    uint32_t sh = nasc_prim_add_op(m, NASC_PRIM_SHIFT, &r, 1, &sa, "cell0.sh", "cell0", NASC_NOLOC);
    nasc_prim_attrs dw = none;
    dw.groups = 4;
    dw.sh = dw.sw = 2;
    args[0] = sh, args[1] = w2;
    uint32_t c2 = nasc_prim_add_op(m, NASC_PRIM_CONV, args, 2, &dw, "cell0.c2", "cell0", NASC_NOLOC);
    nasc_prim_attrs pa = none;
    pa.kh = pa.kw = 3;
    pa.sh = pa.sw = 2;
    pa.pt = pa.pl = pa.pb = pa.pr = 1;
    uint32_t mp = nasc_prim_add_op(m, NASC_PRIM_MAX_POOL, &r, 1, &pa, "cell0.mp", "cell0", NASC_NOLOC);
    pa.count_include_pad = 1;
    uint32_t ap = nasc_prim_add_op(m, NASC_PRIM_AVG_POOL, &r, 1, &pa, "cell0.ap", "cell0", NASC_NOLOC);
    args[0] = c2, args[1] = mp, args[2] = ap;
    uint32_t a2 = nasc_prim_add_op(m, NASC_PRIM_ADD, args, 2, &none, "cell0.a2", "cell0", NASC_NOLOC);
    uint32_t s3 = nasc_prim_add_op(m, NASC_PRIM_ADD, args, 3, &none, "cell0.s3", "cell0", NASC_NOLOC);
    args[0] = a2, args[1] = ap;
    uint32_t mu = nasc_prim_add_op(m, NASC_PRIM_MUL, args, 2, &none, "cell0.mu", "cell0", NASC_NOLOC);
    args[0] = s3, args[1] = mu;
    uint32_t cat = nasc_prim_add_op(m, NASC_PRIM_CONCAT, args, 2, &none, "cell0.cat", "cell0", NASC_NOLOC);
    args[0] = cat, args[1] = w3;
    uint32_t c3 = nasc_prim_add_op(m, NASC_PRIM_CONV, args, 2, &none, "c3", "cell0", NASC_NOLOC);
    bnargs[0] = c3, bnargs[1] = g2, bnargs[2] = b2;
    uint32_t bn2 = nasc_prim_add_op(m, NASC_PRIM_BATCH_NORM, bnargs, 3, &none, "bn2", "cell0", NASC_NOLOC);
    uint32_t t = nasc_prim_add_op(m, NASC_PRIM_TANH, &bn2, 1, &none, "cell0.t", "cell0", NASC_NOLOC);
    uint32_t sg = nasc_prim_add_op(m, NASC_PRIM_SIGMOID, &c3, 1, &none, "cell0.sg", "cell0", NASC_NOLOC);
    uint32_t id = nasc_prim_add_op(m, NASC_PRIM_IDENTITY, &sg, 1, &none, "cell0.id", "cell0", NASC_NOLOC);
    args[0] = t, args[1] = id;
    uint32_t s = nasc_prim_add_op(m, NASC_PRIM_ADD, args, 2, &none, "cell0.s", "cell0", NASC_NOLOC);
    uint32_t gap = nasc_prim_add_op(m, NASC_PRIM_GLOBAL_AVG_POOL, &s, 1, &none, "head.gap", "head", NASC_NOLOC);
    uint32_t flat = nasc_prim_add_op(m, NASC_PRIM_FLATTEN, &gap, 1, &none, "head.flat", "head", NASC_NOLOC);
    args[0] = flat, args[1] = fcw, args[2] = fcb;
    uint32_t logits = nasc_prim_add_op(m, NASC_PRIM_INNER_PRODUCT, args, 3, &none, "logits", "head", NASC_NOLOC);
    uint32_t prob = nasc_prim_add_op(m, NASC_PRIM_SOFTMAX, &logits, 1, &none, "prob", "head", NASC_NOLOC);
    assert_true(prob < m->n_values);
    assert_int_equal(nasc_prim_add_output(m, prob), NASC_OK);
    assert_int_equal(nasc_prim_add_output(m, logits), NASC_OK);
    assert_int_equal(nasc_prim_verify(m), NASC_OK);
    return m;
}

/* Weights: the default initialisation with non-trivial batch-norm
 * parameters and running statistics for bn1 (bn2 has none: mean 0, var 1). */
static nasc_param_store *build_store(nasc_ctx *ctx, const nasc_module *m) {
    nasc_param_store *s = nasc_params_create(ctx);
    assert_non_null(s);
    assert_int_equal(nasc_params_init(s, m, 7), NASC_OK);
    int64_t c = 4;
    nasc_tensor *mean = nasc_params_get(s, "bn1.mean", 1, &c), *var = nasc_params_get(s, "bn1.var", 1, &c);
    nasc_tensor *sc = nasc_params_find(s, "bn1.scale"), *sf = nasc_params_find(s, "bn1.shift");
    assert_non_null(mean);
    assert_non_null(var);
    for (int i = 0; i < 4; i++) {
        mean->data[i] = 0.25f * (float)i - 0.3f;
        var->data[i] = 0.5f + (float)i;
        sc->data[i] = 1.5f - 0.25f * (float)i;
        sf->data[i] = 0.1f * (float)i;
    }
    assert_int_equal(nasc_params_set_meta(s, "data/mean", "0.5"), NASC_OK);
    return s;
}

typedef struct fixture {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *s;
    nasc_buf b;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    nasc_ctx_init(&f->ctx);
    f->m = build_prim(&f->ctx);
    f->s = build_store(&f->ctx, f->m);
    nasc_buf_init(&f->b, &f->ctx);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    nasc_buf_free(&f->b);
    nasc_params_destroy(f->s);
    nasc_module_destroy(f->m);
    free(f);
    return 0;
}

static const nasc_onnx_meta test_meta[] = {
    {"nasc.arch", "arch {\n  kind cells\n}\n"}, {"nasc.hash", "arch:0123456789abcdef"}, {"nasc.data_mean", "0.5"}};

/* ---------------------------------------------------------------- */
/* Model structure                                                   */
/* ---------------------------------------------------------------- */

static void check_dim_n(const ProtobufCMessage *vi, int rank, const int64_t *dims) {
    const ProtobufCMessage *tt = msg(msg(vi, "type"), "tensor_type");
    assert_int_equal(i64(tt, "elem_type"), 1);
    const ProtobufCMessage *shape = msg(tt, "shape");
    assert_int_equal(count(shape, "dim"), rank);
    const ProtobufCMessage *d0 = rmsg(shape, "dim", 0);
    assert_true(has(d0, "dim_param"));
    assert_string_equal(str(d0, "dim_param"), "N");
    for (int d = 1; d < rank; d++) {
        const ProtobufCMessage *dm = rmsg(shape, "dim", (size_t)d);
        assert_true(has(dm, "dim_value"));
        assert_int_equal(i64(dm, "dim_value"), dims[d]);
    }
}

static void test_model(void **state) {
    fixture *f = *state;
    nasc_onnx_options o = nasc_onnx_options_default();
    assert_int_equal(o.opset, 13);
    assert_false(o.fold_bn);
    o.meta = test_meta;
    o.n_meta = 3;
    assert_int_equal(nasc_onnx_export(f->m, f->s, &o, &f->b), NASC_OK);
    const ProtobufCMessage *model = unpack_model(&f->b);

    assert_int_equal(i64(model, "ir_version"), 7);
    assert_int_equal(count(model, "opset_import"), 1);
    assert_string_equal(str(rmsg(model, "opset_import", 0), "domain"), "");
    assert_int_equal(i64(rmsg(model, "opset_import", 0), "version"), 13);
    assert_string_equal(str(model, "producer_name"), "nasc");
    assert_string_equal(str(model, "producer_version"), NASC_VERSION);
    nasc_cost c;
    assert_int_equal(nasc_cost_compute(f->m, &c), NASC_OK);
    char doc[200];
    snprintf(doc, sizeof doc, "nasc %s: %lld parameters, %lld multiply-adds per image", NASC_VERSION,
             (long long)c.params, (long long)c.macs);
    nasc_cost_free(f->m, &c);
    assert_string_equal(str(model, "doc_string"), doc);
    assert_int_equal(count(model, "metadata_props"), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(str(rmsg(model, "metadata_props", i), "key"), test_meta[i].key);
        assert_string_equal(str(rmsg(model, "metadata_props", i), "value"), test_meta[i].value);
    }

    const ProtobufCMessage *g = msg(model, "graph");
    assert_string_equal(str(g, "name"), "tiny-net");
    assert_int_equal(count(g, "input"), 1);
    assert_string_equal(str(rmsg(g, "input", 0), "name"), "x");
    check_dim_n(rmsg(g, "input", 0), 4, (const int64_t[]){-1, 2, 6, 6});
    assert_int_equal(count(g, "output"), 2);
    assert_string_equal(str(rmsg(g, "output", 0), "name"), "prob");
    assert_string_equal(str(rmsg(g, "output", 1), "name"), "logits");
    check_dim_n(rmsg(g, "output", 0), 2, (const int64_t[]){-1, 3});

    /* one node per op, named after its result; shift is Pad then Slice */
    static const char *const want[][2] = {
        {"c1", "Conv"}, {"bn1", "BatchNormalization"}, {"cell0.r", "Relu"}, {"cell0.sh.padded", "Pad"},
        {"cell0.sh", "Slice"}, {"cell0.c2", "Conv"}, {"cell0.mp", "MaxPool"}, {"cell0.ap", "AveragePool"},
        {"cell0.a2", "Add"}, {"cell0.s3", "Sum"}, {"cell0.mu", "Mul"}, {"cell0.cat", "Concat"}, {"c3", "Conv"},
        {"bn2", "BatchNormalization"}, {"cell0.t", "Tanh"}, {"cell0.sg", "Sigmoid"}, {"cell0.id", "Identity"},
        {"cell0.s", "Add"}, {"head.gap", "GlobalAveragePool"}, {"head.flat", "Flatten"}, {"logits", "Gemm"},
        {"prob", "Softmax"}};
    size_t n = sizeof want / sizeof want[0];
    assert_int_equal(count(g, "node"), n);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessage *nd = rmsg(g, "node", i);
        assert_string_equal(str(nd, "name"), want[i][0]);
        assert_string_equal(str(nd, "op_type"), want[i][1]);
        assert_int_equal(count(nd, "output"), 1);
        assert_string_equal(rstr(nd, "output", 0), want[i][0]);
    }
    /* every op result that is not an output has its shape */
    assert_int_equal(count(g, "value_info"), 21 - 2); /* 21 prims, minus the two outputs */

    /* attributes */
    const ProtobufCMessage *conv = node_named(g, "c1");
    assert_int_equal(count(conv, "input"), 2);
    assert_string_equal(rstr(conv, "input", 0), "x");
    assert_string_equal(rstr(conv, "input", 1), "c1.w");
    assert_int_equal(attr_i(conv, "group"), 1);
    const ProtobufCMessage *pads = attr_named(conv, "pads");
    assert_int_equal(count(pads, "ints"), 4);
    for (size_t i = 0; i < 4; i++) assert_int_equal(ri64(pads, "ints", i), 1);
    assert_int_equal(ri64(attr_named(conv, "kernel_shape"), "ints", 0), 3);
    assert_int_equal(ri64(attr_named(conv, "dilations"), "ints", 1), 1);
    const ProtobufCMessage *dwc = node_named(g, "cell0.c2");
    assert_int_equal(attr_i(dwc, "group"), 4);
    assert_int_equal(ri64(attr_named(dwc, "strides"), "ints", 0), 2);
    assert_int_equal(attr_i(node_named(g, "cell0.ap"), "count_include_pad"), 1);
    assert_null(attr_named(node_named(g, "cell0.mp"), "count_include_pad"));
    assert_int_equal(attr_i(node_named(g, "cell0.cat"), "axis"), 1);
    assert_int_equal(attr_i(node_named(g, "logits"), "transB"), 1);
    assert_int_equal(attr_i(node_named(g, "head.flat"), "axis"), 1);
    assert_int_equal(attr_i(node_named(g, "prob"), "axis"), 1);
    assert_int_equal(count(node_named(g, "cell0.s3"), "input"), 3);
    const ProtobufCMessage *bn = node_named(g, "bn1");
    assert_int_equal(count(bn, "input"), 5);
    assert_string_equal(rstr(bn, "input", 1), "bn1.scale");
    assert_string_equal(rstr(bn, "input", 2), "bn1.shift");
    assert_string_equal(rstr(bn, "input", 3), "bn1.mean");
    assert_string_equal(rstr(bn, "input", 4), "bn1.var");
    assert_float_equal(f32(attr_named(bn, "epsilon"), "f"), 1e-5f, 1e-12f);

    /* shift {1,1}: pad bottom/right by 1, slice [1, 1+6) on H and W */
    const ProtobufCMessage *pad = node_named(g, "cell0.sh.padded");
    assert_string_equal(rstr(pad, "input", 0), "cell0.r");
    const ProtobufCMessage *pt = init_named(g, rstr(pad, "input", 1));
    assert_non_null(pt);
    assert_int_equal(i64(pt, "data_type"), 7);
    static const int64_t want_pads[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    assert_int_equal(count(pt, "int64_data"), 8);
    for (size_t i = 0; i < 8; i++) assert_int_equal(ri64(pt, "int64_data", i), want_pads[i]);
    const ProtobufCMessage *sl = node_named(g, "cell0.sh");
    assert_int_equal(count(sl, "input"), 4);
    const ProtobufCMessage *st = init_named(g, rstr(sl, "input", 1)), *en = init_named(g, rstr(sl, "input", 2));
    const ProtobufCMessage *ax = init_named(g, rstr(sl, "input", 3));
    assert_int_equal(ri64(st, "int64_data", 0), 1);
    assert_int_equal(ri64(st, "int64_data", 1), 1);
    assert_int_equal(ri64(en, "int64_data", 0), 7);
    assert_int_equal(ri64(en, "int64_data", 1), 7);
    assert_int_equal(ri64(ax, "int64_data", 0), 2);
    assert_int_equal(ri64(ax, "int64_data", 1), 3);

    /* initializers: parameters under their names, bytes as in the store */
    for (uint32_t i = 0; i < f->s->n; i++) {
        const nasc_tensor *t = f->s->tensors[i];
        const ProtobufCMessage *it = init_named(g, t->name);
        if (!it) fail_msg("no initializer %s", t->name);
        assert_int_equal(i64(it, "data_type"), 1);
        assert_int_equal(count(it, "dims"), t->rank);
        for (int d = 0; d < t->rank; d++) assert_int_equal(ri64(it, "dims", (size_t)d), t->dims[d]);
        assert_int_equal(bytes(it, "raw_data").len, (size_t)t->numel * 4);
        for (int64_t k = 0; k < t->numel; k++) assert_true(init_f(it, (size_t)k) == t->data[k]);
    }
    /* bn2 has no statistics in the store: mean 0, var 1 (the backend's defaults) */
    const ProtobufCMessage *m2 = init_named(g, "bn2.mean"), *v2 = init_named(g, "bn2.var");
    assert_non_null(m2);
    assert_non_null(v2);
    for (size_t k = 0; k < 8; k++) {
        assert_true(init_f(m2, k) == 0.0f);
        assert_true(init_f(v2, k) == 1.0f);
    }
    /* parameters and statistics, 4 shift constants */
    assert_int_equal(count(g, "initializer"), 9 + 4 + 4);
    protobuf_c_message_free_unpacked((ProtobufCMessage *)model, NULL);
}

static void test_opsets(void **state) {
    fixture *f = *state;
    for (int op = 12; op <= 18; op++) {
        nasc_onnx_options o = nasc_onnx_options_default();
        o.opset = op;
        f->b.len = 0;
        nasc_status st = nasc_onnx_export(f->m, f->s, &o, &f->b);
        if (op < 13 || op > 17) {
            assert_int_equal(st, NASC_EINPUT);
            assert_non_null(strstr(f->ctx.diag.msg, "opset"));
            assert_int_equal(f->b.len, 0);
            continue;
        }
        assert_int_equal(st, NASC_OK);
        const ProtobufCMessage *model = unpack_model(&f->b);
        assert_int_equal(i64(rmsg(model, "opset_import", 0), "version"), op);
        assert_int_equal(i64(model, "ir_version"), op >= 15 ? 8 : 7);
        assert_int_equal(count(model, "metadata_props"), 0);
        protobuf_c_message_free_unpacked((ProtobufCMessage *)model, NULL);
    }
}

/* Folding: bn1 (its conv has one user) folds, bn2 (conv c3 also feeds the
 * sigmoid) stays a BatchNormalization. */
static void test_fold_bn(void **state) {
    fixture *f = *state;
    nasc_onnx_options o = nasc_onnx_options_default();
    o.fold_bn = true;
    o.doc = "custom doc";
    o.graph_name = "g";
    assert_int_equal(nasc_onnx_export(f->m, f->s, &o, &f->b), NASC_OK);
    const ProtobufCMessage *model = unpack_model(&f->b);
    assert_string_equal(str(model, "doc_string"), "custom doc");
    const ProtobufCMessage *g = msg(model, "graph");
    assert_string_equal(str(g, "name"), "g");
    assert_null(node_named(g, "c1"));
    const ProtobufCMessage *conv = node_named(g, "bn1");
    assert_non_null(conv);
    assert_string_equal(str(conv, "op_type"), "Conv");
    assert_string_equal(rstr(conv, "output", 0), "bn1");
    assert_int_equal(count(conv, "input"), 3);
    assert_string_equal(rstr(conv, "input", 1), "c1.w");
    assert_string_equal(rstr(conv, "input", 2), "c1.b");
    assert_null(init_named(g, "bn1.scale"));
    assert_null(init_named(g, "bn1.mean"));
    assert_string_equal(str(node_named(g, "bn2"), "op_type"), "BatchNormalization");
    assert_string_equal(str(node_named(g, "c3"), "op_type"), "Conv");
    assert_int_equal(count(g, "node"), 21);

    const nasc_tensor *w = nasc_params_find(f->s, "c1.w"), *sc = nasc_params_find(f->s, "bn1.scale");
    const nasc_tensor *sf = nasc_params_find(f->s, "bn1.shift"), *mean = nasc_params_find(f->s, "bn1.mean");
    const nasc_tensor *var = nasc_params_find(f->s, "bn1.var");
    const ProtobufCMessage *wt = init_named(g, "c1.w"), *bt = init_named(g, "c1.b");
    assert_int_equal(count(bt, "dims"), 1);
    assert_int_equal(ri64(bt, "dims", 0), 4);
    for (int o2 = 0; o2 < 4; o2++) {
        double k = sc->data[o2] / sqrt((double)var->data[o2] + 1e-5);
        for (int e = 0; e < 18; e++) {
            double want = w->data[o2 * 18 + e] * k;
            assert_float_equal(init_f(wt, (size_t)(o2 * 18 + e)), want, 1e-6 * (1 + fabs(want)));
        }
        double b = sf->data[o2] - mean->data[o2] * k;
        assert_float_equal(init_f(bt, (size_t)o2), b, 1e-6 * (1 + fabs(b)));
    }
    protobuf_c_message_free_unpacked((ProtobufCMessage *)model, NULL);
}

/* ---------------------------------------------------------------- */
/* Export errors                                                     */
/* ---------------------------------------------------------------- */

static void expect_fail(fixture *f, const nasc_module *m, const nasc_param_store *s, const nasc_onnx_options *o,
                        const char *needle) {
    f->b.len = 0;
    assert_int_equal(nasc_onnx_export(m, s, o, &f->b), NASC_EINPUT);
    if (!strstr(f->ctx.diag.msg, needle)) fail_msg("message '%s' lacks '%s'", f->ctx.diag.msg, needle);
    assert_int_equal(f->b.len, 0);
}

static void test_errors(void **state) {
    fixture *f = *state;
    nasc_onnx_options o = nasc_onnx_options_default();
    expect_fail(f, f->m, NULL, &o, "needs weights");
    assert_string_equal(f->ctx.diag.file, "models/tiny-net.nir");

    nasc_onnx_meta dup[2] = {{"k", "1"}, {"k", "2"}};
    o.meta = dup;
    o.n_meta = 2;
    expect_fail(f, f->m, f->s, &o, "'k' is given twice");
    nasc_onnx_meta nokey[1] = {{NULL, "1"}};
    o.meta = nokey;
    o.n_meta = 1;
    expect_fail(f, f->m, f->s, &o, "no key");
    o = nasc_onnx_options_default();

    /* a parameter missing from the store, then one of other dims */
    nasc_param_store *s = nasc_params_create(&f->ctx);
    expect_fail(f, f->m, s, &o, "parameter 'c1.w' is not in the weights");
    int64_t d[4] = {4, 2, 5, 5};
    assert_non_null(nasc_params_get(s, "c1.w", 4, d));
    expect_fail(f, f->m, s, &o, "f32[4,2,5,5] in the weights, the model wants f32[4,2,3,3]");
    nasc_params_destroy(s);

    /* running statistics of the wrong size */
    s = nasc_params_create(&f->ctx);
    assert_int_equal(nasc_params_init(s, f->m, 1), NASC_OK);
    int64_t three = 3;
    assert_non_null(nasc_params_get(s, "bn2.var", 1, &three));
    expect_fail(f, f->m, s, &o, "'bn2.var' has 3 values");
    o.fold_bn = true;
    expect_fail(f, f->m, s, &o, "'bn2.var' has 3 values");
    o.fold_bn = false;
    nasc_params_destroy(s);

    /* an arch module */
    nasc_module *arch = nasc_module_create(&f->ctx, NASC_DIALECT_ARCH, "a.yaml");
    expect_fail(f, arch, f->s, &o, "prim module");
    nasc_module_destroy(arch);

    /* an op the verifier does not know (a future op) is refused, not written */
    nasc_prim_op saved = f->m->prims[2].op;
    f->m->prims[2].op = NASC_PRIM_COUNT;
    f->b.len = 0;
    assert_int_equal(nasc_onnx_export(f->m, f->s, &o, &f->b), NASC_EINPUT);
    assert_int_equal(f->b.len, 0);
    f->m->prims[2].op = saved;
}

/* Out of memory at every allocation: ENOMEM (or success), nothing leaked. */
static void test_export_alloc_failures(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_module *m = build_prim(&ctx);
    nasc_param_store *s = build_store(&ctx, m);
    nasc_onnx_options o = nasc_onnx_options_default();
    o.meta = test_meta;
    o.n_meta = 3;
    bool ok = false;
    for (int fold = 0; fold < 2; fold++) {
        o.fold_bn = fold;
        ok = false;
        for (long k = 1; k < 10000 && !ok; k++) {
            long live = ta.live;
            ta.fail_at = ta.count + k;
            ta.failed = false;
            nasc_buf b;
            nasc_buf_init(&b, &ctx);
            nasc_status st = nasc_onnx_export(m, s, &o, &b);
            nasc_buf_free(&b);
            ta.fail_at = 0;
            assert_int_equal(ta.live, live);
            if (st == NASC_OK) {
                assert_false(ta.failed);
                ok = true;
            } else {
                assert_int_equal(st, NASC_ENOMEM);
                assert_true(ta.failed);
            }
        }
        assert_true(ok);
    }
    nasc_params_destroy(s);
    nasc_module_destroy(m);
    assert_int_equal(ta.live, 0);
}

/* ---------------------------------------------------------------- */
/* TensorProto files                                                 */
/* ---------------------------------------------------------------- */

static void test_tensor_roundtrip(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    float data[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++) data[i] = (float)i * 0.5f - 7.25f;
    data[7] = -0.0f;
    data[8] = 1e-38f;
    int64_t dims[4] = {2, 3, 4, 5};
    assert_int_equal(nasc_tensor_pb_write("input.0", 4, dims, data, &b), NASC_OK);

    /* what protobuf-c sees */
    ProtobufCMessage *t =
        protobuf_c_message_unpack(&onnx__tensor_proto__descriptor, NULL, b.len, (const uint8_t *)b.data);
    assert_non_null(t);
    assert_int_equal(i64(t, "data_type"), 1);
    assert_string_equal(str(t, "name"), "input.0");
    assert_int_equal(count(t, "dims"), 4);
    assert_int_equal(bytes(t, "raw_data").len, 480);
    assert_int_equal(count(t, "float_data"), 0);
    protobuf_c_message_free_unpacked(t, NULL);

    nasc_tensor_pb r;
    assert_int_equal(nasc_tensor_pb_read(&ctx, b.data, b.len, "in.pb", &r), NASC_OK);
    assert_string_equal(r.name, "input.0");
    assert_int_equal(r.rank, 4);
    for (int d = 0; d < 4; d++) assert_int_equal(r.dims[d], dims[d]);
    assert_int_equal(r.numel, 120);
    assert_memory_equal(r.data, data, sizeof data);
    nasc_tensor_pb_free(&ctx, &r);
    assert_null(r.data);

    /* rank 0 (a scalar), an empty tensor, no name */
    b.len = 0;
    float one = 3.5f;
    assert_int_equal(nasc_tensor_pb_write(NULL, 0, NULL, &one, &b), NASC_OK);
    assert_int_equal(nasc_tensor_pb_read(&ctx, b.data, b.len, "s.pb", &r), NASC_OK);
    assert_int_equal(r.rank, 0);
    assert_int_equal(r.numel, 1);
    assert_true(r.data[0] == 3.5f);
    assert_string_equal(r.name, "");
    nasc_tensor_pb_free(&ctx, &r);
    b.len = 0;
    int64_t zero[2] = {0, 3};
    assert_int_equal(nasc_tensor_pb_write("e", 2, zero, NULL, &b), NASC_OK);
    assert_int_equal(nasc_tensor_pb_read(&ctx, b.data, b.len, "e.pb", &r), NASC_OK);
    assert_int_equal(r.numel, 0);
    assert_null(r.data);
    nasc_tensor_pb_free(&ctx, &r);

    /* the writer refuses bad shapes */
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -1};
    assert_int_equal(nasc_tensor_pb_write("x", 9, nine, data, &b), NASC_EINPUT);
    assert_int_equal(nasc_tensor_pb_write("x", 2, neg, data, &b), NASC_EINPUT);
    assert_int_equal(nasc_tensor_pb_write("x", -1, neg, data, &b), NASC_EINPUT);
    nasc_buf_free(&b);
}

/* Hand-made protobuf bytes for the reader's error paths. */
typedef struct pbw {
    uint8_t b[512];
    size_t n;
} pbw;

static void put_varint(pbw *w, uint64_t v) {
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        w->b[w->n++] = c | (v ? 0x80 : 0);
    } while (v);
}

static void put_tag(pbw *w, int field, int wire) { put_varint(w, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_dims(pbw *w, const int64_t *d, int n) {
    for (int i = 0; i < n; i++) put_tag(w, 1, 0), put_varint(w, (uint64_t)d[i]);
}

static void put_type(pbw *w, int t) { put_tag(w, 2, 0), put_varint(w, (uint64_t)t); }

static void put_floats(pbw *w, int field, int n) { /* packed float_data (4) or raw_data (9) */
    put_tag(w, field, 2);
    put_varint(w, (uint64_t)n * 4);
    for (int i = 0; i < n; i++) {
        float f = (float)i + 0.5f;
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int k = 0; k < 4; k++) w->b[w->n++] = (uint8_t)(u >> (8 * k));
    }
}

static void expect_read_error(const pbw *w, const char *needle) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_tensor_pb r;
    memset(&r, 0x5a, sizeof r);
    assert_int_equal(nasc_tensor_pb_read(&ctx, w->b, w->n, "bad/t.pb", &r), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, "bad/t.pb");
    if (!strstr(ctx.diag.msg, needle)) fail_msg("message '%s' lacks '%s'", ctx.diag.msg, needle);
    assert_null(r.data);
    assert_null(r.name);
    assert_int_equal(r.rank, 0);
}

static void test_tensor_read(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    int64_t d23[2] = {2, 3};

    /* float_data (packed) is accepted as well as raw_data */
    pbw w = {{0}, 0};
    put_dims(&w, d23, 2);
    put_type(&w, 1);
    put_floats(&w, 4, 6);
    nasc_tensor_pb r;
    assert_int_equal(nasc_tensor_pb_read(&ctx, w.b, w.n, "f.pb", &r), NASC_OK);
    assert_int_equal(r.numel, 6);
    assert_true(r.data[5] == 5.5f);
    nasc_tensor_pb_free(&ctx, &r);

    /* unpacked float_data (one fixed32 per value) too */
    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    for (int i = 0; i < 2; i++) {
        put_tag(&w, 4, 5);
        float f = 2.0f + (float)i;
        memcpy(w.b + w.n, &f, 4);
        w.n += 4;
    }
    assert_int_equal(nasc_tensor_pb_read(&ctx, w.b, w.n, "u.pb", &r), NASC_OK);
    assert_int_equal(r.numel, 2);
    assert_true(r.data[1] == 3.0f);
    nasc_tensor_pb_free(&ctx, &r);

    w.n = 0;
    expect_read_error(&w, "empty file");

    memcpy(w.b, "\xff\xff\xff\xff", 4);
    w.n = 4;
    expect_read_error(&w, "truncated or malformed protobuf");

    /* a valid tensor cut inside its raw_data */
    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 1);
    put_floats(&w, 9, 6);
    w.n -= 5;
    expect_read_error(&w, "truncated or malformed protobuf");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_floats(&w, 9, 6);
    expect_read_error(&w, "no data type");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 7);
    put_tag(&w, 7, 2), put_varint(&w, 6);
    for (int i = 0; i < 6; i++) w.b[w.n++] = (uint8_t)i;
    expect_read_error(&w, "data type INT64 (7)");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 11);
    expect_read_error(&w, "DOUBLE");

    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    w.n = 0;
    put_dims(&w, nine, 9);
    put_type(&w, 1);
    put_floats(&w, 9, 1);
    expect_read_error(&w, "9 dims; at most 8");

    int64_t neg[2] = {2, -3};
    w.n = 0;
    put_dims(&w, neg, 2);
    put_type(&w, 1);
    expect_read_error(&w, "negative dimension: [2,-3]");

    int64_t huge[3] = {1 << 20, 1 << 20, 1 << 20};
    w.n = 0;
    put_dims(&w, huge, 3);
    put_type(&w, 1);
    expect_read_error(&w, "too large");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 1);
    put_floats(&w, 9, 5);
    expect_read_error(&w, "shape [2,3] needs 6 values, the file holds 5");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 1);
    put_floats(&w, 4, 7);
    expect_read_error(&w, "needs 6 values, the file holds 7");

    w.n = 0;
    put_dims(&w, d23, 2);
    put_type(&w, 1);
    expect_read_error(&w, "needs 6 values, the file holds 0");

    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    put_tag(&w, 9, 2), put_varint(&w, 7);
    for (int i = 0; i < 7; i++) w.b[w.n++] = 0;
    expect_read_error(&w, "not a whole number of floats");

    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    put_floats(&w, 4, 2);
    put_floats(&w, 9, 2);
    expect_read_error(&w, "both float_data and raw_data");

    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    put_tag(&w, 14, 0), put_varint(&w, 1);
    expect_read_error(&w, "external file");

    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    put_tag(&w, 3, 2), put_varint(&w, 4);
    put_tag(&w, 1, 0), put_varint(&w, 0), put_tag(&w, 2, 0), put_varint(&w, 2);
    expect_read_error(&w, "segmented");

    w.n = 0;
    put_dims(&w, d23, 1);
    put_type(&w, 1);
    put_tag(&w, 5, 0), put_varint(&w, 1); /* int32_data */
    expect_read_error(&w, "field of another type");

    /* files */
    assert_int_equal(nasc_tensor_pb_load(&ctx, "/nonexistent/dir/x.pb", &r), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, "/nonexistent/dir/x.pb");
    assert_null(r.data);
}

static void test_tensor_read_alloc_failures(void **state) {
    (void)state;
    nasc_ctx ctx0;
    nasc_ctx_init(&ctx0);
    nasc_buf b;
    nasc_buf_init(&b, &ctx0);
    float data[6] = {1, 2, 3, 4, 5, 6};
    int64_t dims[2] = {2, 3};
    assert_int_equal(nasc_tensor_pb_write("a-name", 2, dims, data, &b), NASC_OK);
    bool ok = false;
    for (long k = 1; k < 100 && !ok; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_tensor_pb r;
        nasc_status st = nasc_tensor_pb_read(&ctx, b.data, b.len, "a.pb", &r);
        if (st == NASC_OK) {
            ok = true;
            assert_memory_equal(r.data, data, sizeof data);
        } else {
            assert_int_equal(st, NASC_ENOMEM);
        }
        nasc_tensor_pb_free(&ctx, &r);
        assert_int_equal(ta.live, 0);
    }
    assert_true(ok);
    /* the writer too */
    for (long k = 1; k < 10; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_buf w;
        nasc_buf_init(&w, &ctx);
        nasc_status st = nasc_tensor_pb_write("a-name", 2, dims, data, &w);
        assert_true(st == NASC_OK || st == NASC_ENOMEM);
        if (st == NASC_OK) assert_memory_equal(w.data, b.data, b.len);
        nasc_buf_free(&w);
        assert_int_equal(ta.live, 0);
    }
    nasc_buf_free(&b);
}

static void test_write_atomic(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    char dir[] = "/tmp/nasc_test_onnx.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], tmp[140];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(nasc_file_write_atomic(&ctx, path, "old", 3), NASC_OK);
    assert_int_equal(nasc_file_write_atomic(&ctx, path, "new\0bytes", 9), NASC_OK);
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(nasc_file_read(&ctx, path, &got, &len), NASC_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(got, "new\0bytes", 9);
    nasc_free(&ctx, got);
    assert_int_not_equal(access(tmp, F_OK), 0);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/out.bin", dir);
    assert_int_equal(nasc_file_write_atomic(&ctx, bad, "x", 1), NASC_EINPUT);
    assert_non_null(strstr(ctx.diag.file, "missing/out.bin.tmp"));
    assert_non_null(strstr(ctx.diag.msg, "cannot create"));
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_bn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test(test_export_alloc_failures),
        cmocka_unit_test(test_tensor_roundtrip),
        cmocka_unit_test(test_tensor_read),
        cmocka_unit_test(test_tensor_read_alloc_failures),
        cmocka_unit_test(test_write_atomic),
    };
    return cmocka_run_group_tests_name("export/onnx", tests, NULL, NULL);
}
