/* Lowering arch -> prim.
 *
 * The net scaffold follows DARTS/NASNet: a 3x3 stem conv + BN; stages of
 * normal cells separated by reduction cells that double the channels; each
 * cell preprocesses h_{i-1} with ReLU-conv1x1-BN and h_{i-2} with either the
 * same or, when h_{i-2} is twice the spatial size, a factorized reduction;
 * ops applied directly to the inputs of a reduction cell have stride 2; the
 * head is global average pooling and a linear layer. A macro net is the stem,
 * its body cell and the head. A recurrent net is unrolled over a sequence
 * (lower_recurrent below).
 *
 * Each arch op lowers through one row of `lowerings` below. Shape errors
 * are reported at the arch node being lowered.
 */
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

typedef struct lower {
    const nasc_module *arch;
    nasc_lower_options o;
    nasc_module *p;
    nasc_ctx *ctx;
    char group[64];   /* cost-report group of the ops being emitted */
    char prefix[8320]; /* name prefix of the values being emitted (node names are < 4096 bytes) */
    nasc_loc loc;     /* arch location reported on errors */
    nasc_status status;
    /* recurrent nets with dropout: the mask inputs (BAD without), and per
     * step the masked value of each cell value (BAD until a linear reads it) */
    uint32_t drop_x, drop_s, drop_o;
    uint32_t *masked;
    /* SMASH (o.hyper): the body node being lowered (NULL outside the
     * body) and H's output */
    const nasc_node *node;
    uint32_t hyper_out;
} lower;

#define BAD UINT32_MAX

static const nasc_type *ty(lower *l, uint32_t v) { return &l->p->values[v].type; }

/* Value names are prefix.suffix; a name too long for the buffer is an error
 * (cell and node names are short, so this only guards the invariant). */
static void name_of(lower *l, char *buf, size_t size, const char *suffix) {
    int n = snprintf(buf, size, "%s%s%s", l->prefix, suffix[0] ? "." : "", suffix);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = 0;
        if (!l->status)
            l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc, "value name '%s.%s' is too long",
                                   l->prefix, suffix);
    }
}

static uint32_t emit(lower *l, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a,
                     const char *suffix) {
    if (l->status) return BAD;
    for (uint32_t i = 0; i < n; i++)
        if (args[i] == BAD) return BAD;
    char name[8448];
    name_of(l, name, sizeof name, suffix);
    uint32_t v = nasc_prim_add_op(l->p, op, args, n, a, name, l->group, l->loc);
    if (v == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
    return v;
}

static uint32_t cut_param(lower *l, const char *name, const nasc_type *t);

static uint32_t param(lower *l, const char *suffix, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (l->status) return BAD;
    nasc_type t = {NASC_F32, rank, {d0, d1, d2, d3}};
    char name[8448];
    name_of(l, name, sizeof name, suffix);
    if (l->node && l->o.hyper && l->o.hyper->cut) return cut_param(l, name, &t);
    uint32_t v = nasc_prim_add_param(l->p, name, &t);
    if (v == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
    return v;
}

/* The parameter `name` of type t of a body node, as nasc_hyper.cut says:
 * a box of a shared tensor, a tensor under another key, or the plain
 * parameter. */
static uint32_t cut_param(lower *l, const char *name, const nasc_type *t) {
    char key[4200];
    int64_t big[NASC_MAX_RANK] = {0}, begin[NASC_MAX_RANK] = {0};
    key[0] = 0;
    int cut = l->o.hyper->cut(l->o.hyper->ud, name, t->rank, t->dims, key, sizeof key, big, begin);
    key[sizeof key - 1] = 0;
    uint32_t v = BAD;
    if (cut == NASC_CUT_KEY)
        for (int i = 0; i < t->rank; i++) {
            big[i] = t->dims[i];
            begin[i] = 0;
        }
    if (cut != NASC_CUT_BOX && cut != NASC_CUT_KEY) {
        v = nasc_prim_add_param(l->p, name, t);
        if (v == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
        return v;
    }
    nasc_type bt = {NASC_F32, t->rank, {0, 0, 0, 0}};
    for (int i = 0; i < t->rank; i++) {
        bt.dims[i] = big[i];
        if (begin[i] < 0 || big[i] < 1 || begin[i] + t->dims[i] > big[i]) key[0] = 0;
    }
    if (!key[0]) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc,
                               "parameter '%s' is not a box of the shared tensor it is cut from", name);
        return BAD;
    }
    int64_t found = nasc_prim_lookup(l->p, key, strlen(key));
    if (found >= 0) {
        const nasc_value *fv = &l->p->values[found];
        bool ok = fv->kind == NASC_VAL_PARAM && fv->type.rank == bt.rank;
        for (int i = 0; ok && i < bt.rank; i++) ok = fv->type.dims[i] == bt.dims[i];
        if (!ok) {
            l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc,
                                   "shared tensor '%s' is used with two shapes", key);
            return BAD;
        }
        v = (uint32_t)found;
    } else {
        v = nasc_prim_add_param(l->p, key, &bt);
    }
    if (v == BAD || cut == NASC_CUT_KEY) {
        if (v == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
        return v;
    }
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.shape_rank = t->rank;
    for (int i = 0; i < t->rank; i++) {
        a.shape[i] = t->dims[i];
        a.begin[i] = begin[i];
    }
    uint32_t r = nasc_prim_add_op(l->p, NASC_PRIM_SLICE, &v, 1, &a, name, l->group, l->loc);
    if (r == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
    return r;
}

/* The generated weights of the current node's 1x1 convolution (cout x
 * cin), or BAD (no error) when H does not make them. */
static uint32_t hyper_weight(lower *l, const char *suffix, int64_t cout, int64_t cin) {
    const nasc_hyper *h = l->o.hyper;
    if (!h || !l->node || l->hyper_out == BAD || l->status) return BAD;
    const char *node = nasc_str(l->arch, l->node->name);
    const nasc_hyper_conv *hc = NULL;
    for (uint32_t i = 0; i < h->n_convs && !hc; i++)
        if (strcmp(h->convs[i].node, node) == 0) hc = &h->convs[i];
    if (!hc) return BAD;
    if (cout > h->out_channels || hc->col < 0 || hc->col + cin > h->columns) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc,
                               "node '%s': generated weights of %lld x %lld do not fit the hypernetwork's output "
                               "(%d rows, columns %lld..%lld of %lld)",
                               node, (long long)cout, (long long)cin, h->out_channels, (long long)hc->col,
                               (long long)(hc->col + cin), (long long)h->columns);
        return BAD;
    }
    char name[8448];
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.shape_rank = 4;
    a.shape[0] = 1, a.shape[1] = cout, a.shape[2] = 1, a.shape[3] = cin;
    a.begin[3] = hc->col;
    snprintf(name, sizeof name, "%s.hyper", suffix);
    uint32_t box = emit(l, NASC_PRIM_SLICE, &l->hyper_out, 1, &a, name);
    nasc_prim_attrs ra = nasc_prim_attrs_default();
    ra.shape_rank = 4;
    ra.shape[0] = cout, ra.shape[1] = cin, ra.shape[2] = ra.shape[3] = 1;
    snprintf(name, sizeof name, "%s.hyper_w", suffix);
    uint32_t w = emit(l, NASC_PRIM_RESHAPE, &box, 1, &ra, name);
    snprintf(name, sizeof name, "%s.w", suffix);
    return emit(l, NASC_PRIM_NORMALIZE, &w, 1, NULL, name);
}

/* A conv of H: Frobenius-normalised weight "hyper.<name>.w" (cout, cin,
 * 1, k), padding along the columns only. */
static uint32_t hyper_conv(lower *l, uint32_t x, const char *name, int64_t cout, int k) {
    if (l->status || x == BAD) return BAD;
    char wn[64], nn[64];
    snprintf(wn, sizeof wn, "%s.w", name);
    snprintf(nn, sizeof nn, "%s.wn", name);
    uint32_t w = param(l, wn, 4, cout, ty(l, x)->dims[1], 1, k);
    w = emit(l, NASC_PRIM_NORMALIZE, &w, 1, NULL, nn);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = 1;
    a.kw = k;
    a.pl = a.pr = (k - 1) / 2;
    uint32_t args[2] = {x, w};
    return emit(l, NASC_PRIM_CONV, args, 2, &a, name);
}

/* H (nasc_hyper): its output, (1, out_channels, 1, columns). */
static uint32_t lower_hyper(lower *l) {
    const nasc_hyper *h = l->o.hyper;
    snprintf(l->group, sizeof l->group, "hyper");
    snprintf(l->prefix, sizeof l->prefix, "hyper");
    l->loc = l->arch->skel.loc;
    if (h->enc_channels < 1 || h->columns < 1 || h->out_channels < 1 || h->width < 1 || h->growth < 1 ||
        h->depth < 0 || h->depth > 62) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc,
                               "bad hypernetwork shape: encoding %d x %lld, output %d, width %d, growth %d, depth %d",
                               h->enc_channels, (long long)h->columns, h->out_channels, h->width, h->growth, h->depth);
        return BAD;
    }
    nasc_type et = {NASC_F32, 4, {1, h->enc_channels, 1, h->columns}};
    uint32_t enc = nasc_prim_add_input(l->p, "hyper.enc", &et);
    if (enc == BAD) {
        l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
        return BAD;
    }
    uint32_t feats[64];
    feats[0] = hyper_conv(l, enc, "in", h->width, 3);
    uint32_t all = feats[0];
    for (int i = 0; i < h->depth && !l->status; i++) {
        char name[32], rn[32], cn[32];
        snprintf(name, sizeof name, "l%d", i);
        snprintf(rn, sizeof rn, "l%d.relu", i);
        snprintf(cn, sizeof cn, "l%d.cat", i);
        feats[i + 1] = hyper_conv(l, emit(l, NASC_PRIM_RELU, &all, 1, NULL, rn), name, h->growth, 3);
        all = emit(l, NASC_PRIM_CONCAT, feats, (uint32_t)i + 2, NULL, cn);
    }
    return hyper_conv(l, emit(l, NASC_PRIM_RELU, &all, 1, NULL, "out.relu"), "out", h->out_channels, 1);
}

static uint32_t relu(lower *l, uint32_t x, const char *suffix) {
    return emit(l, NASC_PRIM_RELU, &x, 1, NULL, suffix);
}

/* Convolution with "same"-style padding: total pad = effective kernel - 1,
 * the extra pixel (even kernels) at the bottom/right. */
/* A convolution, "same" padding for stride 1, dilation dh x dw. */
static uint32_t conv_dil(lower *l, uint32_t x, const char *suffix, int64_t cout, int kh, int kw, int sh, int sw,
                         int dh, int dw, int groups) {
    if (l->status || x == BAD) return BAD;
    int64_t cin = ty(l, x)->dims[1];
    char wname[128];
    snprintf(wname, sizeof wname, "%s.w", suffix);
    uint32_t w = kh == 1 && kw == 1 && groups == 1 ? hyper_weight(l, suffix, cout, cin) : BAD;
    if (w == BAD) w = param(l, wname, 4, cout, cin / groups, kh, kw);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = kh;
    a.kw = kw;
    a.sh = sh;
    a.sw = sw;
    a.dh = dh;
    a.dw = dw;
    a.groups = groups;
    int th = (kh - 1) * dh, tw = (kw - 1) * dw;
    a.pt = th / 2;
    a.pb = th - th / 2;
    a.pl = tw / 2;
    a.pr = tw - tw / 2;
    uint32_t args[2] = {x, w};
    return emit(l, NASC_PRIM_CONV, args, 2, &a, suffix);
}

static uint32_t conv(lower *l, uint32_t x, const char *suffix, int64_t cout, int kh, int kw, int sh, int sw, int dil,
                     int groups) {
    return conv_dil(l, x, suffix, cout, kh, kw, sh, sw, dil, dil, groups);
}

static uint32_t bn(lower *l, uint32_t x, const char *suffix) {
    if (l->status || x == BAD) return BAD;
    int64_t c = ty(l, x)->dims[1];
    char n1[128], n2[128], keyed[96];
    if (l->o.hyper && l->node) { /* a SMASH child: keyed by its width, running statistics too */
        snprintf(keyed, sizeof keyed, "%s.c%lld", suffix, (long long)c);
        suffix = keyed;
    }
    snprintf(n1, sizeof n1, "%s.scale", suffix);
    snprintf(n2, sizeof n2, "%s.shift", suffix);
    uint32_t args[3] = {x, param(l, n1, 1, c, 0, 0, 0), param(l, n2, 1, c, 0, 0, 0)};
    return emit(l, NASC_PRIM_BATCH_NORM, args, 3, NULL, suffix);
}

static uint32_t relu_conv_bn(lower *l, uint32_t x, int64_t cout, int kh, int kw, int stride) {
    uint32_t r = relu(l, x, "relu");
    uint32_t c = conv(l, r, "conv", cout, kh, kw, stride, stride, 1, 1);
    return bn(l, c, "bn");
}

/* Halve H and W: two 1x1 stride-2 convs, one on the input and one on the
 * input shifted by one pixel, concatenated (NASNet's factorized reduction). */
static uint32_t factorized_reduce(lower *l, uint32_t x, int64_t cout) {
    if (cout < 2) {
        if (!l->status)
            l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc,
                                   "a factorized reduction needs at least 2 output channels");
        return BAD;
    }
    uint32_t r = relu(l, x, "relu");
    uint32_t a = conv(l, r, "path1", cout / 2, 1, 1, 2, 2, 1, 1);
    nasc_prim_attrs sa = nasc_prim_attrs_default();
    sa.dy = sa.dx = 1;
    uint32_t s = emit(l, NASC_PRIM_SHIFT, &r, 1, &sa, "shift");
    uint32_t b = conv(l, s, "path2", cout - cout / 2, 1, 1, 2, 2, 1, 1);
    uint32_t cat[2] = {a, b};
    uint32_t c = emit(l, NASC_PRIM_CONCAT, cat, 2, NULL, "concat");
    return bn(l, c, "bn");
}

/* ---------------------------------------------------------------- */
/* One lowering per arch op                                          */
/* ---------------------------------------------------------------- */

typedef struct op_ctx {
    const nasc_node *node;
    const uint32_t *in; /* operand values */
    int64_t channels;   /* filters attr, or the cell's channel count */
    int stride;
    int k;        /* the row's kernel size */
    int dil;      /* the row's dilation */
} op_ctx;

typedef uint32_t (*lower_fn)(lower *l, const op_ctx *o);

static uint32_t lower_identity(lower *l, const op_ctx *o) {
    if (o->stride == 1) return o->in[0];
    return factorized_reduce(l, o->in[0], o->channels);
}

static uint32_t lower_conv_kxk(lower *l, const op_ctx *o) {
    const nasc_node_attrs *at = &o->node->attrs;
    int kh = o->k, kw = o->k;
    if (at->kh) {
        kh = at->kh;
        kw = at->kw;
    }
    int dh = at->dh ? at->dh : 1, dw = at->dw ? at->dw : 1, g = at->groups ? at->groups : 1;
    if (dh == 1 && dw == 1 && g == 1) return relu_conv_bn(l, o->in[0], o->channels, kh, kw, o->stride);
    uint32_t x = o->in[0];
    if (l->status || x == BAD) return BAD;
    int64_t cin = ty(l, x)->dims[1];
    if (cin % g || o->channels % g) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, o->node->loc,
                               "%lld input and %lld output channels do not split into %d groups", (long long)cin,
                               (long long)o->channels, g);
        return BAD;
    }
    uint32_t r = relu(l, x, "relu");
    uint32_t c = conv_dil(l, r, "conv", o->channels, kh, kw, o->stride, o->stride, dh, dw, g);
    return bn(l, c, "bn");
}

static uint32_t lower_conv_1xk_kx1(lower *l, const op_ctx *o) {
    uint32_t r = relu(l, o->in[0], "relu");
    uint32_t a = conv(l, r, "conv1", o->channels, 1, o->k, 1, o->stride, 1, 1);
    uint32_t b = conv(l, a, "conv2", o->channels, o->k, 1, o->stride, 1, 1, 1);
    return bn(l, b, "bn");
}

/* AmoebaNet (tensorflow/tpu amoeba_net network_utils.py): ReLU, 1x1 to
 * C/4, BN, ReLU, 1x7, BN, ReLU, 7x1, BN, ReLU, 1x1 back to C, BN. Without
 * room for a bottleneck (C < 4) it is the plain 1x7-then-7x1 op. */
static uint32_t lower_bottleneck_1xk_kx1(lower *l, const op_ctx *o) {
    int64_t mid = o->channels / 4;
    if (mid < 1) return lower_conv_1xk_kx1(l, o);
    uint32_t r0 = relu(l, o->in[0], "relu0");
    uint32_t b0 = bn(l, conv(l, r0, "pre", mid, 1, 1, 1, 1, 1, 1), "pre_bn");
    uint32_t r1 = relu(l, b0, "relu1");
    uint32_t b1 = bn(l, conv(l, r1, "conv1", mid, 1, o->k, 1, o->stride, 1, 1), "bn1");
    uint32_t r2 = relu(l, b1, "relu2");
    uint32_t b2 = bn(l, conv(l, r2, "conv2", mid, o->k, 1, o->stride, 1, 1, 1), "bn2");
    uint32_t r3 = relu(l, b2, "relu3");
    return bn(l, conv(l, r3, "post", o->channels, 1, 1, 1, 1, 1, 1), "post_bn");
}

static uint32_t lower_dil_conv(lower *l, const op_ctx *o) {
    uint32_t x = o->in[0];
    if (x == BAD) return BAD;
    int64_t cin = ty(l, x)->dims[1];
    uint32_t r = relu(l, x, "relu");
    uint32_t d = conv(l, r, "dw", cin, o->k, o->k, o->stride, o->stride, o->dil, (int)cin);
    uint32_t p = conv(l, d, "pw", o->channels, 1, 1, 1, 1, 1, 1);
    return bn(l, p, "bn");
}

static uint32_t lower_sep_conv(lower *l, const op_ctx *o) {
    uint32_t x = o->in[0];
    if (x == BAD) return BAD;
    int64_t cin = ty(l, x)->dims[1];
    uint32_t r1 = relu(l, x, "relu1");
    uint32_t d1 = conv(l, r1, "dw1", cin, o->k, o->k, o->stride, o->stride, 1, (int)cin);
    uint32_t p1 = conv(l, d1, "pw1", o->channels, 1, 1, 1, 1, 1, 1);
    uint32_t b1 = bn(l, p1, "bn1");
    uint32_t r2 = relu(l, b1, "relu2");
    uint32_t d2 = conv(l, r2, "dw2", o->channels, o->k, o->k, 1, 1, 1, (int)o->channels);
    uint32_t p2 = conv(l, d2, "pw2", o->channels, 1, 1, 1, 1, 1, 1);
    return bn(l, p2, "bn2");
}

static uint32_t lower_pool(lower *l, const op_ctx *o, nasc_prim_op op) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = a.kw = o->k;
    a.sh = a.sw = o->stride;
    a.pt = a.pl = (o->k - 1) / 2;
    a.pb = a.pr = (o->k - 1) - (o->k - 1) / 2;
    a.count_include_pad = 0;
    return emit(l, op, o->in, 1, &a, op == NASC_PRIM_MAX_POOL ? "maxpool" : "avgpool");
}

static uint32_t lower_max_pool(lower *l, const op_ctx *o) { return lower_pool(l, o, NASC_PRIM_MAX_POOL); }
static uint32_t lower_avg_pool(lower *l, const op_ctx *o) { return lower_pool(l, o, NASC_PRIM_AVG_POOL); }

static uint32_t lower_factorized_reduce(lower *l, const op_ctx *o) {
    if (o->in[0] == BAD) return BAD;
    int64_t c = o->node->attrs.filters ? o->node->attrs.filters : ty(l, o->in[0])->dims[1];
    return factorized_reduce(l, o->in[0], c);
}

static uint32_t lower_add(lower *l, const op_ctx *o) {
    if (o->node->n_args == 1) return o->in[0];
    return emit(l, NASC_PRIM_ADD, o->in, o->node->n_args, NULL, "add");
}

static uint32_t lower_concat(lower *l, const op_ctx *o) {
    if (o->node->n_args == 1) return o->in[0];
    return emit(l, NASC_PRIM_CONCAT, o->in, o->node->n_args, NULL, "concat");
}

static const struct lowering {
    lower_fn fn; /* NULL: not lowered (recurrent ops) */
    int k, dil;
} lowerings[NASC_OP_COUNT] = {
    [NASC_OP_IDENTITY] = {lower_identity, 0, 1},
    [NASC_OP_CONV_1X7_7X1] = {lower_conv_1xk_kx1, 7, 1},
    [NASC_OP_CONV_1X3_3X1] = {lower_conv_1xk_kx1, 3, 1},
    [NASC_OP_CONV_1X1] = {lower_conv_kxk, 1, 1},
    [NASC_OP_CONV_3X3] = {lower_conv_kxk, 3, 1},
    [NASC_OP_DIL_CONV_3X3] = {lower_dil_conv, 3, 2},
    [NASC_OP_SEP_CONV_3X3] = {lower_sep_conv, 3, 1},
    [NASC_OP_SEP_CONV_5X5] = {lower_sep_conv, 5, 1},
    [NASC_OP_SEP_CONV_7X7] = {lower_sep_conv, 7, 1},
    [NASC_OP_AVG_POOL_3X3] = {lower_avg_pool, 3, 1},
    [NASC_OP_MAX_POOL_3X3] = {lower_max_pool, 3, 1},
    [NASC_OP_MAX_POOL_5X5] = {lower_max_pool, 5, 1},
    [NASC_OP_MAX_POOL_7X7] = {lower_max_pool, 7, 1},
    [NASC_OP_DIL_CONV_5X5] = {lower_dil_conv, 5, 2},
    [NASC_OP_CONV_5X5] = {lower_conv_kxk, 5, 1},
    [NASC_OP_BOTTLENECK_1X7_7X1] = {lower_bottleneck_1xk_kx1, 7, 1},
    [NASC_OP_CONV] = {lower_conv_kxk, 0, 1},
    [NASC_OP_FACTORIZED_REDUCE] = {lower_factorized_reduce, 1, 1},
    [NASC_OP_ADD] = {lower_add, 0, 1},
    [NASC_OP_CONCAT] = {lower_concat, 0, 1},
};

/* ---------------------------------------------------------------- */
/* Cells and the net                                                 */
/* ---------------------------------------------------------------- */

static bool in_list(uint32_t v, const uint32_t *list, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (list[i] == v) return true;
    return false;
}

/* Drop-path (FractalNet; DARTS's drop_path): x times a per-image mask, the
 * net input "<prefix>.drop" of shape (N, 1, 1, 1) that the trainer fills
 * with 0 or 1 / keep-probability every step. */
static uint32_t drop_path(lower *l, uint32_t x) {
    if (l->status) return BAD;
    char name[8448];
    name_of(l, name, sizeof name, NASC_DROP_PATH_SUFFIX);
    nasc_type t = {NASC_F32, 4, {NASC_BATCH, 1, 1, 1}};
    uint32_t m = nasc_prim_add_input(l->p, name, &t);
    if (m == BAD) {
        l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
        return BAD;
    }
    uint32_t args[2] = {x, m};
    return emit(l, NASC_PRIM_MUL, args, 2, NULL, "dropped");
}

/* The name prefix of a cell node's values: "<cell>.<node>", and with
 * shared names also its op (and the cell values it reads). */
static void set_node_prefix(lower *l, const nasc_cell *c, const nasc_node *nd, const char *inst) {
    const nasc_module *a = l->arch;
    int n = snprintf(l->prefix, sizeof l->prefix, "%s.%s", inst, nasc_str(a, nd->name));
    if (!l->o.shared || nd->op == NASC_OP_ADD || nd->op == NASC_OP_CONCAT) return;
    n += snprintf(l->prefix + n, sizeof l->prefix - (size_t)n, ".%s", nasc_arch_op_info_get(nd->op)->name);
    for (uint32_t k = 0; l->o.shared == NASC_SHARE_BY_INPUT && k < nd->n_args && (size_t)n < sizeof l->prefix; k++)
        n += snprintf(l->prefix + n, sizeof l->prefix - (size_t)n, ".%s",
                      nasc_cell_value_name(a, c, a->args[nd->first_arg + k]));
}

/* ENAS's shared cell output: ReLU and a 1x1 convolution per output value,
 * summed, batch norm (nasc_lower_options.shared). */
static uint32_t shared_cell_out(lower *l, const nasc_cell *c, const char *inst, const uint32_t *outs,
                                const uint32_t *ov, uint32_t n, int64_t channels) {
    uint32_t proj[64];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(l->prefix, sizeof l->prefix, "%s.out.%s", inst, nasc_cell_value_name(l->arch, c, outs[i]));
        proj[i] = conv(l, relu(l, ov[i], "relu"), "conv", channels, 1, 1, 1, 1, 1, 1);
    }
    snprintf(l->prefix, sizeof l->prefix, "%s.out", inst);
    uint32_t sum = n == 1 ? proj[0] : emit(l, NASC_PRIM_ADD, proj, n, NULL, "sum");
    return bn(l, sum, "bn");
}

/* Cell c's outputs (its output list, else its loose ends) into outs (cell
 * values) and ov (their prim values, from vals); their count, or 0 with
 * the error set when there are none or more than 64. */
static uint32_t cell_out_vals(lower *l, const nasc_cell *c, const uint32_t *vals, uint32_t *outs, uint32_t *ov) {
    uint32_t n = nasc_cell_out_values(l->arch, c, outs, 64);
    l->loc = c->n_outs ? c->out_loc : c->loc;
    if (n == 0 || n > 64) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc, "cell '%s' has %u outputs (1..64 supported)",
                               nasc_str(l->arch, c->name), n);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) ov[i] = vals[outs[i]];
    return n;
}

static nasc_status lower_cell(lower *l, const nasc_cell *c, const uint32_t *inputs, int64_t channels,
                              const char *inst, uint32_t *out) {
    const nasc_module *a = l->arch;
    uint32_t nv = c->n_inputs + c->n_nodes;
    uint32_t *vals = nasc_alloc(l->ctx, (nv + 1) * sizeof *vals);
    if (!vals) return l->status = NASC_ENOMEM;
    for (uint32_t i = 0; i < c->n_inputs; i++) vals[i] = inputs[i];
    bool reduction = c->kind == NASC_CELL_REDUCTION;
    for (uint32_t j = 0; j < c->n_nodes && !l->status; j++) {
        const nasc_node *nd = &a->nodes[c->first_node + j];
        const struct lowering *row = &lowerings[nd->op];
        l->loc = nd->loc;
        if (!row->fn) {
            l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, nd->loc, "op '%s' cannot be lowered in a %s cell",
                                   nasc_arch_op_info_get(nd->op)->name, nasc_cell_kind_name(c->kind));
            break;
        }
        uint32_t in[16], n = nd->n_args < 16 ? nd->n_args : 16;
        if (nd->n_args > 16) {
            l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, nd->loc, "node '%s' has more than 16 operands",
                                   nasc_str(a, nd->name));
            break;
        }
        bool on_inputs = true;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t v = a->args[nd->first_arg + k];
            in[k] = vals[v];
            if (v >= c->n_inputs) on_inputs = false;
        }
        op_ctx o = {nd, in, nd->attrs.filters ? nd->attrs.filters : channels, 1, row->k, row->dil};
        if (nd->attrs.stride)
            o.stride = nd->attrs.stride;
        else if (reduction && on_inputs && (nasc_arch_op_info_get(nd->op)->attrs & NASC_ATTR_STRIDE))
            o.stride = 2;
        set_node_prefix(l, c, nd, inst);
        l->node = l->o.hyper ? nd : NULL;
        uint32_t r = row->fn(l, &o);
        l->node = NULL;
        if (l->o.drop_path && r != BAD && !in_list(r, in, n) && nd->op != NASC_OP_ADD && nd->op != NASC_OP_CONCAT)
            r = drop_path(l, r);
        vals[c->n_inputs + j] = r;
        if (vals[c->n_inputs + j] == BAD && !l->status) l->status = NASC_EINTERNAL;
    }
    if (!l->status) {
        uint32_t outs[64], ov[64];
        snprintf(l->prefix, sizeof l->prefix, "%s", inst);
        uint32_t n = cell_out_vals(l, c, vals, outs, ov);
        if (n) {
            if (l->o.shared && c->kind != NASC_CELL_MACRO)
                *out = shared_cell_out(l, c, inst, outs, ov, n, channels);
            else if (n == 1)
                *out = ov[0];
            else if (c->out_rule == NASC_OUT_CONCAT)
                *out = emit(l, NASC_PRIM_CONCAT, ov, n, NULL, "out");
            else if (c->out_rule == NASC_OUT_SUM)
                *out = emit(l, NASC_PRIM_ADD, ov, n, NULL, "out");
            else
                l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, l->loc,
                                       "cell '%s': the '%s' output rule is not supported in CNN cells (use concat or sum)",
                                       nasc_str(a, c->name), nasc_out_rule_name(c->out_rule));
        }
    }
    nasc_free(l->ctx, vals);
    return l->status;
}

/* Preprocess (h_{i-2}, h_{i-1}) to the cell's channel count. */
static void preprocess(lower *l, const char *inst, uint32_t s0, uint32_t s1, int64_t channels, uint32_t pre[2]) {
    if (s0 == BAD || s1 == BAD) {
        pre[0] = pre[1] = BAD;
        return;
    }
    snprintf(l->prefix, sizeof l->prefix, "%s.h2", inst);
    if (ty(l, s0)->dims[2] != ty(l, s1)->dims[2] || ty(l, s0)->dims[3] != ty(l, s1)->dims[3])
        pre[0] = factorized_reduce(l, s0, channels);
    else
        pre[0] = relu_conv_bn(l, s0, channels, 1, 1, 1);
    snprintf(l->prefix, sizeof l->prefix, "%s.h1", inst);
    pre[1] = relu_conv_bn(l, s1, channels, 1, 1, 1);
}

static uint32_t lower_head(lower *l, uint32_t x, int classes) {
    snprintf(l->group, sizeof l->group, "head");
    snprintf(l->prefix, sizeof l->prefix, "head");
    l->loc = l->arch->skel.loc;
    uint32_t g = emit(l, NASC_PRIM_GLOBAL_AVG_POOL, &x, 1, NULL, "gap");
    uint32_t f = emit(l, NASC_PRIM_FLATTEN, &g, 1, NULL, "flatten");
    if (f == BAD) return BAD;
    int64_t feat = ty(l, f)->dims[1];
    uint32_t args[3] = {f, param(l, "fc.w", 2, classes, feat, 0, 0), param(l, "fc.b", 1, classes, 0, 0, 0)};
    snprintf(l->prefix, sizeof l->prefix, "logits");
    return emit(l, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "");
}

/* NASNet's / DARTS's auxiliary classifier (DARTS AuxiliaryHeadCIFAR):
 * ReLU, average pooling 5x5 (fewer rows or columns when the map is
 * smaller) down to 2x2, 1x1 conv to 128 channels, BN, ReLU, a conv over
 * the whole 2x2 map to 768 channels, BN, ReLU, a linear layer. */
static uint32_t lower_aux_head(lower *l, uint32_t x, int classes) {
    if (l->status || x == BAD) return BAD;
    snprintf(l->group, sizeof l->group, "aux");
    snprintf(l->prefix, sizeof l->prefix, "aux");
    l->loc = l->arch->skel.loc;
    const nasc_type *t = ty(l, x);
    int64_t h = t->dims[2], w = t->dims[3];
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = h < 5 ? (int)h : 5;
    a.kw = w < 5 ? (int)w : 5;
    a.sh = h > a.kh ? (int)(h - a.kh) : 1; /* two windows: at 0 and at h - k */
    a.sw = w > a.kw ? (int)(w - a.kw) : 1;
    a.count_include_pad = 0;
    uint32_t r = relu(l, x, "relu");
    uint32_t p = emit(l, NASC_PRIM_AVG_POOL, &r, 1, &a, "avgpool");
    if (p == BAD) return BAD;
    int oh = (int)ty(l, p)->dims[2], ow = (int)ty(l, p)->dims[3];
    uint32_t b1 = bn(l, conv(l, p, "conv1", 128, 1, 1, 1, 1, 1, 1), "bn1");
    uint32_t r1 = relu(l, b1, "relu1");
    /* a valid (unpadded) conv over the whole map: 1x1 out */
    if (l->status || r1 == BAD) return BAD;
    uint32_t wv = param(l, "conv2.w", 4, 768, 128, oh, ow);
    nasc_prim_attrs ca = nasc_prim_attrs_default();
    ca.kh = oh;
    ca.kw = ow;
    uint32_t cargs[2] = {r1, wv};
    uint32_t c2 = emit(l, NASC_PRIM_CONV, cargs, 2, &ca, "conv2");
    uint32_t r2 = relu(l, bn(l, c2, "bn2"), "relu2");
    uint32_t f = emit(l, NASC_PRIM_FLATTEN, &r2, 1, NULL, "flatten");
    if (f == BAD) return BAD;
    uint32_t args[3] = {f, param(l, "fc.w", 2, classes, 768, 0, 0), param(l, "fc.b", 1, classes, 0, 0, 0)};
    snprintf(l->prefix, sizeof l->prefix, "aux_logits");
    return emit(l, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "");
}

/* ---------------------------------------------------------------- */
/* Recurrent nets: unrolled over seq_len steps                       */
/* ---------------------------------------------------------------- */

/* A parameter of the recurrent net, shared by every time step: the value
 * of that name when an earlier step made it. */
static uint32_t shared_param(lower *l, const char *name, int rank, int64_t d0, int64_t d1) {
    if (l->status) return BAD;
    int64_t v = nasc_prim_lookup(l->p, name, strlen(name));
    if (v >= 0) return (uint32_t)v;
    nasc_type t = {NASC_F32, rank, {d0, d1, 0, 0}};
    uint32_t id = nasc_prim_add_param(l->p, name, &t);
    if (id == BAD) l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
    return id;
}

/* name (a buffer of size bytes) replaced by its store key
 * (nasc_lower_options.param_key); false (status set) when it gives none. */
static bool param_key(lower *l, char *name, size_t size) {
    char key[4200];
    key[0] = 0;
    l->o.param_key(l->o.param_key_ud, name, key, sizeof key);
    key[sizeof key - 1] = 0;
    if (!key[0] || strlen(key) >= size) {
        l->status = nasc_error(l->ctx, NASC_EINPUT, l->arch->source, l->loc, "no store key for parameter '%s'", name);
        return false;
    }
    memcpy(name, key, strlen(key) + 1);
    return true;
}

/* linear(a, b, ...): an affine map of the concatenated operands to the
 * hidden size, weights "cell.<node>.w" (H, sum of the operand sizes) and
 * "cell.<node>.b" (H). */
static uint32_t rnn_linear(lower *l, const nasc_cell *c, const nasc_node *nd, const uint32_t *in, int64_t hidden,
                           int t) {
    uint32_t ops[16];
    for (uint32_t k = 0; k < nd->n_args; k++) {
        ops[k] = in[k];
        if (l->drop_x == BAD) continue;
        /* dropout on what a linear reads: x_t by the x mask, any other
         * value by the state mask; each value masked once per step */
        uint32_t v = l->arch->args[nd->first_arg + k];
        if (l->masked[v] == BAD) {
            char save[sizeof l->prefix];
            memcpy(save, l->prefix, sizeof save);
            snprintf(l->prefix, sizeof l->prefix, "t%d.%s", t, nasc_cell_value_name(l->arch, c, v));
            uint32_t margs[2] = {in[k], v == 0 ? l->drop_x : l->drop_s};
            l->masked[v] = emit(l, NASC_PRIM_MUL, margs, 2, NULL, "dropped");
            memcpy(l->prefix, save, sizeof save);
        }
        ops[k] = l->masked[v];
    }
    uint32_t x = ops[0];
    if (nd->n_args > 1) {
        nasc_prim_attrs a = nasc_prim_attrs_default();
        x = emit(l, NASC_PRIM_CONCAT, ops, nd->n_args, &a, "cat");
    }
    if (x == BAD) return BAD;
    char wn[4200], bn_[4200];
    const char *node = nasc_str(l->arch, nd->name);
    snprintf(wn, sizeof wn, "cell.%s.w", node);
    snprintf(bn_, sizeof bn_, "cell.%s.b", node);
    if (l->o.param_key && !param_key(l, wn, sizeof wn)) return BAD;
    if (l->o.param_key && !param_key(l, bn_, sizeof bn_)) return BAD;
    uint32_t args[3] = {x, shared_param(l, wn, 2, hidden, ty(l, x)->dims[1]), shared_param(l, bn_, 1, hidden, 0)};
    return emit(l, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "");
}

/* One time step of the cell: vals[0..n_inputs) are x_t, h_{t-1}[, c_{t-1}];
 * out[0] gets h_t and, with a c input, out[1] c_t. */
static void rnn_step(lower *l, const nasc_cell *c, uint32_t *vals, int t, int64_t hidden, uint32_t out[2]) {
    const nasc_module *a = l->arch;
    out[0] = out[1] = BAD;
    for (uint32_t v = 0; l->masked && v < c->n_inputs + c->n_nodes; v++) l->masked[v] = BAD;
    for (uint32_t j = 0; j < c->n_nodes && !l->status; j++) {
        const nasc_node *nd = &a->nodes[c->first_node + j];
        l->loc = nd->loc;
        if (nd->n_args > 16) {
            l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, nd->loc, "node '%s' has more than 16 operands",
                                   nasc_str(a, nd->name));
            break;
        }
        uint32_t in[16];
        for (uint32_t k = 0; k < nd->n_args; k++) in[k] = vals[a->args[nd->first_arg + k]];
        snprintf(l->prefix, sizeof l->prefix, "t%d.%s", t, nasc_str(a, nd->name));
        uint32_t r = BAD;
        switch (nd->op) {
        case NASC_OP_LINEAR: r = rnn_linear(l, c, nd, in, hidden, t); break;
        case NASC_OP_TANH: r = emit(l, NASC_PRIM_TANH, in, 1, NULL, ""); break;
        case NASC_OP_RELU: r = emit(l, NASC_PRIM_RELU, in, 1, NULL, ""); break;
        case NASC_OP_SIGMOID: r = emit(l, NASC_PRIM_SIGMOID, in, 1, NULL, ""); break;
        case NASC_OP_IDENTITY: r = in[0]; break;
        case NASC_OP_ADD: r = nd->n_args == 1 ? in[0] : emit(l, NASC_PRIM_ADD, in, nd->n_args, NULL, ""); break;
        case NASC_OP_MUL: r = emit(l, NASC_PRIM_MUL, in, 2, NULL, ""); break;
        case NASC_OP_HIGHWAY: {
            /* c * x + (1 - c) * h = h + c * (x - h) */
            uint32_t d[2] = {in[1], in[2]};
            uint32_t m[2] = {in[0], emit(l, NASC_PRIM_SUB, d, 2, NULL, "diff")};
            uint32_t s2[2] = {in[2], emit(l, NASC_PRIM_MUL, m, 2, NULL, "gated")};
            r = emit(l, NASC_PRIM_ADD, s2, 2, NULL, "");
            break;
        }
        default:
            l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, nd->loc, "op '%s' cannot be lowered in a recurrent cell",
                                   nasc_arch_op_info_get(nd->op)->name);
            break;
        }
        vals[c->n_inputs + j] = r;
        if (r == BAD && !l->status) l->status = NASC_EINTERNAL;
    }
    if (l->status) return;
    uint32_t outs[64], ov[64];
    snprintf(l->prefix, sizeof l->prefix, "t%d", t);
    uint32_t n = cell_out_vals(l, c, vals, outs, ov);
    if (!n) return;
    if (c->out_rule == NASC_OUT_STATE) {
        if (n != c->n_inputs - 1) {
            l->status = nasc_error(l->ctx, NASC_EINPUT, a->source, l->loc,
                                   "cell '%s': 'state' lists %u values for a cell of %u state%s", nasc_str(a, c->name),
                                   n, c->n_inputs - 1, c->n_inputs == 2 ? "" : "s");
            return;
        }
        out[0] = ov[0];
        if (n == 2) out[1] = ov[1];
    } else if (n == 1) {
        out[0] = ov[0];
    } else {
        uint32_t sum = emit(l, NASC_PRIM_ADD, ov, n, NULL, "sum");
        if (c->out_rule == NASC_OUT_AVG) {
            nasc_prim_attrs sa = nasc_prim_attrs_default();
            sa.alpha = 1.0f / (float)n;
            sum = emit(l, NASC_PRIM_SCALE, &sum, 1, &sa, "avg");
        }
        out[0] = sum;
    }
}

/* Embedding, the cell unrolled over seq_len steps with weights shared by
 * every step, and a decoder on every step's h_t. */
static void lower_recurrent(lower *l, int seq_len) {
    const nasc_module *a = l->arch;
    const nasc_skeleton *sk = &a->skel;
    const nasc_cell *c = &a->cells[sk->normal_cell];
    int64_t hidden = sk->channels, vocab = sk->classes, emb = sk->in_c;
    nasc_type xt = {NASC_F32, 2, {NASC_BATCH, seq_len, 0, 0}};
    nasc_type ht = {NASC_F32, 2, {NASC_BATCH, hidden, 0, 0}};
    uint32_t x = nasc_prim_add_input(l->p, "x", &xt);
    uint32_t state[2] = {nasc_prim_add_input(l->p, "h0", &ht), BAD};
    if (c->n_inputs == 3) state[1] = nasc_prim_add_input(l->p, "c0", &ht);
    if (x == BAD || state[0] == BAD || (c->n_inputs == 3 && state[1] == BAD)) {
        l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
        return;
    }
    l->drop_x = l->drop_s = l->drop_o = BAD;
    if (l->o.rnn_dropout) { /* masks the trainer fills: 0 or 1 / keep-probability */
        nasc_type xm = {NASC_F32, 2, {NASC_BATCH, emb, 0, 0}};
        l->drop_x = nasc_prim_add_input(l->p, "drop.x", &xm);
        l->drop_s = nasc_prim_add_input(l->p, "drop.s", &ht);
        l->drop_o = nasc_prim_add_input(l->p, "drop.o", &ht);
        if (l->drop_x == BAD || l->drop_s == BAD || l->drop_o == BAD) {
            l->status = l->ctx->diag.status ? l->ctx->diag.status : NASC_EINTERNAL;
            return;
        }
    }
    uint32_t *vals = nasc_alloc(l->ctx, (c->n_inputs + c->n_nodes + 1) * sizeof *vals);
    uint32_t *hs = nasc_alloc(l->ctx, (size_t)seq_len * sizeof *hs);
    l->masked = l->o.rnn_dropout ? nasc_alloc(l->ctx, (c->n_inputs + c->n_nodes + 1) * sizeof *l->masked) : NULL;
    if (!vals || !hs || (l->o.rnn_dropout && !l->masked)) {
        nasc_free(l->ctx, vals);
        nasc_free(l->ctx, hs);
        nasc_free(l->ctx, l->masked);
        l->masked = NULL;
        l->status = NASC_ENOMEM;
        return;
    }
    uint32_t table = shared_param(l, "embed.w", 2, vocab, emb);
    for (int t = 0; t < seq_len && !l->status; t++) {
        snprintf(l->group, sizeof l->group, "cell");
        snprintf(l->prefix, sizeof l->prefix, "t%d", t);
        l->loc = sk->loc;
        nasc_prim_attrs ea = nasc_prim_attrs_default();
        ea.index = t;
        uint32_t eargs[2] = {x, table};
        vals[0] = emit(l, NASC_PRIM_EMBEDDING, eargs, 2, &ea, "embed");
        vals[1] = state[0];
        if (c->n_inputs == 3) vals[2] = state[1];
        uint32_t out[2];
        rnn_step(l, c, vals, t, hidden, out);
        if (l->status) break;
        state[0] = out[0];
        if (c->n_inputs == 3) state[1] = out[1];
        /* (N, H) -> (N, 1, H) to stack the steps */
        nasc_prim_attrs ra = nasc_prim_attrs_default();
        ra.shape_rank = 3;
        ra.shape[0] = NASC_BATCH, ra.shape[1] = 1, ra.shape[2] = hidden;
        snprintf(l->prefix, sizeof l->prefix, "t%d", t);
        uint32_t h_out = out[0];
        if (l->drop_o != BAD) { /* dropout on what the decoder reads */
            uint32_t dargs[2] = {out[0], l->drop_o};
            h_out = emit(l, NASC_PRIM_MUL, dargs, 2, NULL, "h_dropped");
        }
        hs[t] = emit(l, NASC_PRIM_RESHAPE, &h_out, 1, &ra, "h_row");
    }
    if (!l->status) {
        snprintf(l->group, sizeof l->group, "decoder");
        snprintf(l->prefix, sizeof l->prefix, "decoder");
        l->loc = sk->loc;
        /* the steps stacked on axis 1; past 64 steps in partial stacks of
         * 64 first (the backend's concat takes up to 64 operands) */
        nasc_prim_attrs ca = nasc_prim_attrs_default();
        ca.axis = 1;
        uint32_t n = (uint32_t)seq_len;
        for (int round = 0; n > 64 && !l->status; round++) {
            uint32_t m = 0;
            for (uint32_t i = 0; i < n; i += 64, m++) {
                char part[32];
                snprintf(part, sizeof part, "h_part%d_%u", round, m);
                uint32_t k = n - i < 64 ? n - i : 64;
                hs[m] = k == 1 ? hs[i] : emit(l, NASC_PRIM_CONCAT, hs + i, k, &ca, part);
            }
            n = m;
        }
        uint32_t all = n == 1 ? hs[0] : emit(l, NASC_PRIM_CONCAT, hs, n, &ca, "h_all");
        uint32_t margs[2] = {all, shared_param(l, "decoder.w", 2, hidden, vocab)};
        uint32_t mm = emit(l, NASC_PRIM_MATMUL, margs, 2, NULL, "mm");
        uint32_t bargs[2] = {mm, shared_param(l, "decoder.b", 1, vocab, 0)};
        snprintf(l->prefix, sizeof l->prefix, "logits");
        uint32_t logits = emit(l, NASC_PRIM_ADD, bargs, 2, NULL, "");
        if (!l->status) l->status = nasc_prim_add_output(l->p, logits);
        for (int i = 0; i < (c->n_inputs == 3 ? 2 : 1) && !l->status; i++) l->status = nasc_prim_add_output(l->p, state[i]);
    }
    nasc_free(l->ctx, vals);
    nasc_free(l->ctx, hs);
    nasc_free(l->ctx, l->masked);
    l->masked = NULL;
}

nasc_lower_options nasc_lower_options_default(void) {
    nasc_lower_options o;
    memset(&o, 0, sizeof o);
    return o;
}

nasc_status nasc_lower(const nasc_module *arch, nasc_module **out_prim) {
    nasc_lower_options o = nasc_lower_options_default();
    return nasc_lower_with(arch, &o, out_prim);
}

nasc_status nasc_lower_with(const nasc_module *arch, const nasc_lower_options *opt, nasc_module **out_prim) {
    nasc_ctx *ctx = arch->ctx;
    *out_prim = NULL;
    nasc_status s = nasc_arch_verify(arch);
    if (s) return s;
    const nasc_skeleton *sk = &arch->skel;
    if (sk->kind != NASC_NET_RECURRENT && opt->param_key)
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                          "store keys by callback are for recurrent nets (cell nets use nasc_lower_options.shared)");
    if (sk->kind != NASC_NET_RECURRENT && opt->rnn_dropout)
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                          "recurrent dropout is for recurrent nets (CNN cells have drop-path)");
    if (opt->hyper && sk->kind != NASC_NET_MACRO)
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                          "a hypernetwork generates weights of macro nets (SMASH), not of a %s net",
                          nasc_net_kind_name(sk->kind));
    if (sk->kind == NASC_NET_RECURRENT && (opt->aux_head || opt->drop_path || opt->shared))
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                          "a recurrent net has no %s", opt->aux_head ? "auxiliary head" : opt->drop_path ? "cell paths to drop" : "one-shot sharing yet");
    int seq_len = opt->seq_len ? opt->seq_len : NASC_DEFAULT_SEQ_LEN;
    if (sk->kind == NASC_NET_RECURRENT && (seq_len < 1 || seq_len > NASC_MAX_SEQ_LEN))
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc, "the sequence length must be 1..%d, not %d",
                          NASC_MAX_SEQ_LEN, seq_len);
    if (opt->aux_head && (sk->kind != NASC_NET_CELLS || sk->stages < 2))
        return nasc_error(ctx, NASC_EINPUT, arch->source, sk->loc,
                          "an auxiliary head sits after the last reduction cell; this net has %s",
                          sk->kind != NASC_NET_CELLS ? "no reduction cells (a macro net)" : "a single stage");
    lower l;
    memset(&l, 0, sizeof l);
    l.arch = arch;
    l.o = *opt;
    l.ctx = ctx;
    l.p = nasc_module_create(ctx, NASC_DIALECT_PRIM, arch->source);
    if (!l.p) return NASC_ENOMEM;
    l.loc = sk->loc;

    if (sk->kind == NASC_NET_RECURRENT) {
        lower_recurrent(&l, seq_len);
        if (!l.status) l.status = nasc_prim_verify(l.p);
        if (l.status) {
            nasc_module_destroy(l.p);
            return l.status;
        }
        *out_prim = l.p;
        return NASC_OK;
    }
    nasc_type xt = {NASC_F32, 4, {NASC_BATCH, sk->in_c, sk->in_h, sk->in_w}};
    uint32_t x = nasc_prim_add_input(l.p, "x", &xt);
    if (x == BAD) l.status = ctx->diag.status;
    l.hyper_out = !l.status && opt->hyper ? lower_hyper(&l) : BAD;

    snprintf(l.group, sizeof l.group, "stem");
    snprintf(l.prefix, sizeof l.prefix, "stem");
    int64_t stem_c = (int64_t)sk->stem_multiplier * sk->channels;
    uint32_t stem = bn(&l, conv(&l, x, "conv", stem_c, 3, 3, 1, 1, 1, 1), "bn");

    uint32_t body = stem, aux = BAD;
    char inst[32];
    if (sk->kind == NASC_NET_MACRO) {
        snprintf(inst, sizeof inst, "body");
        snprintf(l.group, sizeof l.group, "body.%s", nasc_str(arch, arch->cells[sk->normal_cell].name));
        if (!l.status) lower_cell(&l, &arch->cells[sk->normal_cell], &stem, sk->channels, inst, &body);
    } else {
        uint32_t s0 = stem, s1 = stem, aux_in = BAD;
        int64_t channels = sk->channels;
        int idx = 0;
        for (int stage = 0; stage < sk->stages && !l.status; stage++) {
            for (int k = -1; k < sk->cells_per_stage && !l.status; k++) {
                if (k < 0 && stage == 0) continue;
                int ci = k < 0 ? sk->reduction_cell : sk->normal_cell;
                if (k < 0) channels *= 2;
                const nasc_cell *c = &arch->cells[ci];
                snprintf(inst, sizeof inst, "cell%d", idx++);
                snprintf(l.group, sizeof l.group, "%s.%s", inst, nasc_str(arch, c->name));
                l.loc = c->loc;
                uint32_t pre[2], out = BAD;
                preprocess(&l, inst, s0, s1, channels, pre);
                if (!l.status) lower_cell(&l, c, pre, channels, inst, &out);
                s0 = s1;
                s1 = out;
                if (k < 0 && stage == sk->stages - 1) aux_in = out;
            }
        }
        body = s1;
        if (opt->aux_head) aux = lower_aux_head(&l, aux_in, sk->classes);
    }
    uint32_t logits = l.status ? BAD : lower_head(&l, body, sk->classes);
    if (!l.status && logits != BAD) l.status = nasc_prim_add_output(l.p, logits);
    if (!l.status && aux != BAD) l.status = nasc_prim_add_output(l.p, aux);
    if (!l.status) l.status = nasc_prim_verify(l.p);
    if (l.status) {
        nasc_module_destroy(l.p);
        return l.status;
    }
    *out_prim = l.p;
    return NASC_OK;
}
