/* ops.c - forward and backward emitters, one pair per prim op.
 *
 * A forward emitter turns one prim op into steps and gives its result a
 * tensor; a backward emitter receives the gradient of the result and adds
 * a contribution to each operand that needs one (parameters go to the
 * net's gradient arrays). Every 4-D activation is in the net's layout, so
 * the only reorders are of weights (plain in the store), of the net input,
 * around flatten, and of gradients arriving in another layout.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if __has_include("dwconv.h")
#include "avgpool.h"
#include "conv1x1.h"
#include "dwconv.h"
#define NASC_HAVE_DW 1
#endif
#include "net_internal.h"

static const nasc_module *M(nasc_net *n) { return n->m; }
static uint32_t arg(nasc_net *net, const nasc_prim *p, uint32_t j) { return M(net)->args[p->first_arg + j]; }
static const nasc_type *vtype(nasc_net *net, uint32_t v) { return &M(net)->values[v].type; }
static dnnl_prop_kind_t fwd_prop(nasc_net *net) {
    return net->opt.mode == NASC_MODE_TRAIN ? dnnl_forward_training : dnnl_forward_inference;
}
static const dnnl_memory_desc_t *md_of(nasc_net *net, int t) { return &net->trefs[t].md; }

/* The forward tensor of value v. Net inputs are plain; consumers that
 * cannot read plain activations get (once) a copy in the net's layout. */
static int src_of(nasc_net *net, uint32_t v, bool plain_ok) {
    nb_value *nv = &net->vals[v];
    if (M(net)->values[v].kind != NASC_VAL_INPUT) return nv->fwd;
    if (plain_ok || vtype(net, v)->rank != 4 || net->act_tag == dnnl_nchw) return nv->fwd_plain;
    if (nv->fwd < 0) {
        dnnl_memory_desc_t md;
        if (nb_act_md(net, vtype(net, v), &md)) return -1;
        nv->fwd = nb_reorder(net, nv->fwd_plain, &md, -1);
    }
    return nv->fwd;
}

/* A tref an emitter needs could not be made (out of memory, a failed oneDNN
 * call, already recorded): stop with the recorded status. */
#define NEED(t)                                                              \
    do {                                                                     \
        if ((t) < 0) return net->status ? net->status : NASC_EINTERNAL;      \
    } while (0)

static int new_result(nasc_net *net, const nasc_prim *p, const dnnl_memory_desc_t *md) {
    int t = nb_tensor_new(net, md);
    net->vals[p->result].fwd = t;
    return t;
}

static nasc_status pd_create(nasc_net *net, dnnl_primitive_desc_t *pd, const void *desc, const_dnnl_primitive_desc_t hint,
                             const char *what) {
    return NB_TRY_AS(net, what, dnnl_primitive_desc_create(pd, desc, nb_attr(net), net->engine, hint));
}

static const dnnl_memory_desc_t *q(const_dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* ---------------------------------------------------------------- */
/* Convolution                                                      */
/* ---------------------------------------------------------------- */

typedef struct conv_geom {
    dnnl_dims_t strides, dil, pl, pr;
    dnnl_memory_desc_t w_any;  /* weights, format any */
    dnnl_memory_desc_t w_plain; /* the store's layout (oihw or goihw) */
    int64_t flops;
} conv_geom;

static nasc_status conv_geometry(nasc_net *net, const nasc_prim *p, conv_geom *g) {
    const nasc_prim_attrs *a = &p->a;
    const nasc_type *w = vtype(net, arg(net, p, 1));
    const nasc_type *y = vtype(net, p->result);
    g->strides[0] = a->sh, g->strides[1] = a->sw;
    g->dil[0] = a->dh - 1, g->dil[1] = a->dw - 1;
    g->pl[0] = a->pt, g->pl[1] = a->pl;
    g->pr[0] = a->pb, g->pr[1] = a->pr;
    g->flops = 2 * nb_dim0(net, y) * y->dims[1] * y->dims[2] * y->dims[3] * w->dims[1] * w->dims[2] * w->dims[3];
    if (a->groups > 1) {
        dnnl_dims_t d = {a->groups, w->dims[0] / a->groups, w->dims[1], w->dims[2], w->dims[3]};
        NB_CHECK(net, dnnl_memory_desc_init_by_tag(&g->w_any, 5, d, dnnl_f32, dnnl_format_tag_any));
        NB_CHECK(net, dnnl_memory_desc_init_by_tag(&g->w_plain, 5, d, dnnl_f32, dnnl_goihw));
    } else {
        dnnl_dims_t d = {w->dims[0], w->dims[1], w->dims[2], w->dims[3]};
        NB_CHECK(net, dnnl_memory_desc_init_by_tag(&g->w_any, 4, d, dnnl_f32, dnnl_format_tag_any));
        NB_CHECK(net, dnnl_memory_desc_init_by_tag(&g->w_plain, 4, d, dnnl_f32, dnnl_oihw));
    }
    return NASC_OK;
}

/* The weights of a conv/inner product in the layout a primitive chose. */
/* Weights w seen through their plain layout `plain` (which may group
 * them: goihw): a parameter's store buffer as it is; weights the net
 * computes first reordered to their plain layout. */
static int weights_plain(nasc_net *net, uint32_t w, const dnnl_memory_desc_t *plain) {
    int t = net->vals[w].fwd;
    if (M(net)->values[w].kind != NASC_VAL_PARAM) {
        dnnl_memory_desc_t md;
        if (nb_plain_md(net, vtype(net, w), &md)) return -1;
        t = nb_match(net, t, &md);
        if (t < 0) return -1;
    }
    return nb_tref_new(net, net->trefs[t].buf, plain);
}

static int weights_in(nasc_net *net, uint32_t w, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want) {
    int t = weights_plain(net, w, plain);
    return t < 0 ? -1 : nb_match(net, t, want);
}

/* Fold batch norm into the conv weights and a bias, before every forward
 * pass (so that a store updated between passes is honoured):
 * s = scale / sqrt(var + eps), W' = W * s (per output channel),
 * b = shift - mean * s. */
static void k_fold_bn(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    const float *w = nb_ptr(net, a[0].tref), *sc = nb_ptr(net, a[1].tref), *sh = nb_ptr(net, a[2].tref);
    const float *mean = nb_ptr(net, a[3].tref), *var = nb_ptr(net, a[4].tref);
    float *wo = nb_ptr(net, a[5].tref), *bo = nb_ptr(net, a[6].tref);
    int64_t cout = s->i[0], per = (int64_t)s->i[1];
    for (int64_t o = 0; o < cout; o++) {
        float k = sc[o] / sqrtf(var[o] + s->f[0]);
        for (int64_t e = 0; e < per; e++) wo[o * per + e] = w[o * per + e] * k;
        bo[o] = sh[o] - mean[o] * k;
    }
}

static int store_vec(nasc_net *net, const nasc_prim *p, const char *suffix, int64_t c, float fill);
static bool is_jit(nasc_net *net, const_dnnl_primitive_desc_t pd);
static bool impl_has(nasc_net *net, const_dnnl_primitive_desc_t pd, const char *part);
static int block_of(const dnnl_memory_desc_t *md);

#ifdef NASC_HAVE_DW
/* Depthwise forward and backward-data with our own kernels: dwconv.h says
 * which shapes (nChw16c, k 3/5/7, stride 1/2, pad k/2). On AVX-512 their
 * backward-data is 1.9-3.9x oneDNN's jit_dw and their forward 0.92-1.8x
 * (about even where memory bounds it: 3x3, stride 2 from 28x28); they run
 * only there. */
static void k_dw_fwd(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    nasc_status st = nasc_dw_fwd_run(s->ptr, nb_ptr(net, a[0].tref), nb_ptr(net, a[1].tref), nb_ptr(net, a[2].tref),
                                     NASC_DW_ISA_AUTO);
    assert(st == NASC_OK); /* the shape was checked when the net was compiled */
    (void)st;
}

static void k_dw_bwd_data(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    nasc_status st = nasc_dw_bwd_data_run(s->ptr, nb_ptr(net, a[0].tref), nb_ptr(net, a[1].tref),
                                          nb_ptr(net, a[2].tref), NASC_DW_ISA_AUTO);
    assert(st == NASC_OK);
    (void)st;
}

/* The geometry of depthwise conv p (its dims already checked to fit int). */
static nasc_dw_shape dw_shape_of(nasc_net *net, const nasc_prim *p) {
    const nasc_type *xt = vtype(net, arg(net, p, 0)), *yt = vtype(net, p->result);
    return (nasc_dw_shape){(int)nb_dim0(net, xt), (int)xt->dims[1], (int)xt->dims[2], (int)xt->dims[3],
                           (int)yt->dims[2], (int)yt->dims[3], p->a.kh, p->a.kw, p->a.sh, p->a.sw,
                           p->a.pt, p->a.pl, p->a.dh, p->a.dw};
}

/* The shape of depthwise conv p when our forward and backward-data kernels
 * take it (its input in tensor xs), else false. */
static bool own_dw_fd(nasc_net *net, const nasc_prim *p, int xs, nasc_dw_shape *sh) {
    const nasc_type *xt = vtype(net, arg(net, p, 0)), *yt = vtype(net, p->result);
    if (net->opt.onednn_dw || nasc_dw_isa_best() != NASC_DW_ISA_AVX512) return false;
    if (p->a.groups <= 1 || p->a.groups != xt->dims[1] || yt->dims[1] != xt->dims[1]) return false;
    if (block_of(md_of(net, xs)) != 16 || xt->dims[1] > INT32_MAX || xt->dims[2] > INT32_MAX ||
        xt->dims[3] > INT32_MAX || yt->dims[2] > INT32_MAX || yt->dims[3] > INT32_MAX)
        return false;
    *sh = dw_shape_of(net, p);
    return nasc_dw_fd_supported(sh);
}

/* The descriptor of depthwise weights in the layout our kernels read:
 * (C/16, k, k, 16), oneDNN's Goihw16g. */
static nasc_status dw_weights_md(nasc_net *net, const nasc_dw_shape *sh, dnnl_memory_desc_t *md) {
    dnnl_dims_t d = {sh->c, 1, 1, sh->kh, sh->kw};
    return NB_TRY(net, dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, dnnl_Goihw16g));
}

/* A step running kernel fn on the n args a, with a copy of the size bytes
 * at data as its ptr (the step owns it); its index, or -1 (failure in
 * net->status). */
static int step_owning(nasc_net *net, nb_kernel_fn fn, const char *what, int n, const nb_arg *a, const void *data,
                       size_t size) {
    void *own = nasc_alloc(net->ctx, size);
    if (!own) {
        if (!net->status) net->status = NASC_ENOMEM;
        return -1;
    }
    memcpy(own, data, size);
    int s = nb_step_kernel(net, fn, what, n, a);
    if (s < 0) {
        nasc_free(net->ctx, own);
        return -1;
    }
    net->steps[s].ptr = own;
    net->steps[s].i[7] = 1; /* the step owns ptr */
    return s;
}
#endif

/* ---------------------------------------------------------------- */
/* Subsampled 1x1 convolutions (net.c plan_subsample)               */
/* ---------------------------------------------------------------- */

/* Floats per pixel of a dense 4-D activation tensor (nchw: 1; nChw8c or
 * nChw16c, channels padded or not: 8 or 16), 0 for any other layout. */
static int pixel_floats(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->offset0 != 0) return 0;
    const dnnl_dim_t *d = md->padded_dims;
    int v = 1;
    if (b->inner_nblks == 1 && b->inner_idxs[0] == 1 && (b->inner_blks[0] == 8 || b->inner_blks[0] == 16))
        v = (int)b->inner_blks[0];
    else if (b->inner_nblks != 0)
        return 0;
    dnnl_dim_t plane = d[2] * d[3] * v;
    bool dense = b->strides[3] == v && b->strides[2] == d[3] * v && b->strides[1] == plane &&
                 b->strides[0] == d[1] / v * plane;
    return dense ? v : 0;
}

/* A copy of v floats (a pixel's channels), the size a constant for the
 * compiler where it matters. */
static inline void copy_pixel(float *restrict d, const float *restrict x, int v) {
    if (v == 16)
        memcpy(d, x, 16 * sizeof *d);
    else if (v == 8)
        memcpy(d, x, 8 * sizeof *d);
    else
        memcpy(d, x, (size_t)v * sizeof *d);
}

/* Whether sample i (of a row or a column) of a stride-2 read at offset
 * off exists in n pixels: the stride-2 input's pixel 2i (n of them, the
 * rest padding) and the offset pixel 2i + off (zero outside, as a shift
 * makes it). */
static inline bool sample_in(int i, int off, int n) { return 2 * i < n && 2 * i + off >= 0 && 2 * i + off < n; }

/* Args: a 4-D source, its subsample (both dense, one layout). i[0..6]: h,
 * w (source), oh, ow (subsample), v floats per pixel, oy, ox: subsample
 * pixel (i, j) is source pixel (2i + oy, 2j + ox), zero where none. */
static void k_subsample(nasc_net *net, const nb_step *s) {
    const nb_arg *a = &net->args[s->first_arg];
    const float *x = nb_ptr(net, a[0].tref);
    float *d = nb_ptr(net, a[1].tref);
    const dnnl_memory_desc_t *dmd = &net->trefs[a[1].tref].md;
    int h = s->i[0], w = s->i[1], oh = s->i[2], ow = s->i[3], v = s->i[4], oy = s->i[5], ox = s->i[6];
    int64_t planes = dmd->padded_dims[0] * (dmd->padded_dims[1] / v);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && omp_get_max_threads() > 1 && planes > 1)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w * v;
        float *dp = d + p * oh * ow * v;
        for (int i = 0; i < oh; i++) {
            float *row = dp + (int64_t)i * ow * v;
            if (!sample_in(i, oy, h)) {
                memset(row, 0, (size_t)ow * v * sizeof *row);
                continue;
            }
            const float *src = xp + (int64_t)(2 * i + oy) * w * v;
            for (int j = 0; j < ow; j++) {
                if (sample_in(j, ox, w))
                    copy_pixel(row + (int64_t)j * v, src + (int64_t)(2 * j + ox) * v, v);
                else
                    memset(row + (int64_t)j * v, 0, (size_t)v * sizeof *row);
            }
        }
    }
}

/* The backward of k_subsample: args the subsample's gradient and the
 * source's, i[] as there; f[0] 0: the source's is written whole (zero at
 * the pixels no sample read), 1: added into at the sampled pixels only (a
 * gradient another subsample's backward wrote first). */
static void k_subsample_bwd(nasc_net *net, const nb_step *s) {
    const nb_arg *a = &net->args[s->first_arg];
    const float *g = nb_ptr(net, a[0].tref);
    float *dx = nb_ptr(net, a[1].tref);
    const dnnl_memory_desc_t *dmd = &net->trefs[a[0].tref].md;
    int h = s->i[0], w = s->i[1], oh = s->i[2], ow = s->i[3], v = s->i[4], oy = s->i[5], ox = s->i[6];
    bool add = s->f[0] != 0;
    int64_t planes = dmd->padded_dims[0] * (dmd->padded_dims[1] / v);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && omp_get_max_threads() > 1 && planes > 1)
    for (int64_t p = 0; p < planes; p++) {
        const float *gp = g + p * oh * ow * v;
        float *xp = dx + p * h * w * v;
        for (int r = 0; r < h; r++) {
            float *row = xp + (int64_t)r * w * v;
            int i = (r - oy) / 2;
            if ((r - oy) % 2 != 0 || r - oy < 0 || i >= oh || !sample_in(i, oy, h)) {
                if (!add) memset(row, 0, (size_t)w * v * sizeof *row);
                continue;
            }
            const float *src = gp + (int64_t)i * ow * v;
            for (int c = 0; c < w; c++) {
                int j = (c - ox) / 2;
                float *px = row + (int64_t)c * v;
                bool in = (c - ox) % 2 == 0 && c - ox >= 0 && j < ow && sample_in(j, ox, w);
                if (add && in) {
                    const float *q = src + (int64_t)j * v;
#pragma omp simd
                    for (int k = 0; k < v; k++) px[k] += q[k];
                } else if (in) {
                    copy_pixel(px, src + (int64_t)j * v, v);
                } else if (!add) {
                    memset(px, 0, (size_t)v * sizeof *px);
                }
            }
        }
    }
}

static void subsample_args(int *i, const dnnl_memory_desc_t *x, const nasc_type *y, int v, const int *off) {
    i[0] = (int)x->dims[2], i[1] = (int)x->dims[3], i[2] = (int)y->dims[2], i[3] = (int)y->dims[3];
    i[4] = v, i[5] = off[0], i[6] = off[1];
}

/* The stride-1 geometry that runs a subsampling conv. */
static void subsample_geometry(conv_geom *g) {
    g->strides[0] = g->strides[1] = 1;
    g->pr[0] = g->pr[1] = 0;
}

/* Forward of a subsampling conv pi: the subsample of xs (its source's
 * tensor), made dense first if it is not; *g becomes the stride-1
 * geometry. Returns the subsample's tref (-1: failed, in net->status);
 * t[2] keeps the source's, t[3] the subsample's. */
static int subsample_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int xs, conv_geom *g) {
    uint32_t src = (uint32_t)net->ps[pi].sub_src;
    int v = pixel_floats(md_of(net, xs));
    if (!v) {
        dnnl_memory_desc_t md;
        if (nb_act_md(net, vtype(net, src), &md)) return -1;
        xs = nb_match(net, xs, &md);
        if (xs < 0 || !(v = pixel_floats(md_of(net, xs)))) {
            if (!net->status)
                net->status = nasc_error(net->ctx, NASC_EINTERNAL, M(net)->source, p->loc,
                                         "no dense layout to subsample the convolution's input in");
            return -1;
        }
    }
    const nasc_type *y = vtype(net, p->result);
    const dnnl_memory_desc_t *xmd = md_of(net, xs);
    dnnl_dims_t dd = {xmd->dims[0], xmd->dims[1], y->dims[2], y->dims[3]};
    dnnl_memory_desc_t dmd;
    dnnl_format_tag_t tag = v == 16 ? dnnl_nChw16c : v == 8 ? dnnl_nChw8c : dnnl_nchw;
    if (NB_TRY(net, dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dnnl_f32, tag))) return -1;
    int d = nb_tensor_new(net, &dmd);
    if (d < 0) return -1;
    nb_arg a[2] = {{0, xs}, {1, d}};
    int s = nb_step_kernel(net, k_subsample, "subsample", 2, a);
    if (s < 0) return -1;
    subsample_args(net->steps[s].i, md_of(net, xs), y, v, net->ps[pi].sub_off);
    net->ps[pi].t[2] = xs;
    net->ps[pi].t[3] = d; /* t[0] becomes the conv's source: d, or d reordered for it */
    subsample_geometry(g);
    return d;
}

/* The gradient dx of conv pi's input goes to its operand, or, through the
 * backward of its subsample, to the subsample's source: into the
 * contribution an earlier subsample's backward made there (the two paths
 * of a factorized reduction read disjoint pixels of one tensor: one
 * gradient tensor, written whole once), else into a new one. */
static void contribute_input(nasc_net *net, uint32_t pi, const nasc_prim *p, int dx) {
    if (net->ps[pi].sub_src < 0) {
        nb_contribute(net, arg(net, p, 0), dx);
        return;
    }
    nb_value *src = &net->vals[net->ps[pi].sub_src];
    int xs = net->ps[pi].t[2];
    const dnnl_memory_desc_t x_md = *md_of(net, xs); /* trefs may move */
    int g = nb_match(net, dx, md_of(net, net->ps[pi].t[3])); /* in the subsample's own layout */
    bool add = src->sub_grad >= 0 && dnnl_memory_desc_equal(md_of(net, src->sub_grad), &x_md);
    int into = g < 0 ? -1 : add ? src->sub_grad : nb_tensor_new(net, &x_md);
    if (into < 0) return;
    nb_arg a[2] = {{0, g}, {1, into}};
    int s = nb_step_kernel(net, k_subsample_bwd, "subsample bwd", 2, a);
    if (s < 0) return;
    subsample_args(net->steps[s].i, &x_md, vtype(net, p->result), pixel_floats(&x_md), net->ps[pi].sub_off);
    net->steps[s].f[0] = add;
    if (add) return;
    src->sub_grad = into;
    nb_contribute(net, (uint32_t)net->ps[pi].sub_src, into);
}

/* Ask oneDNN again for the forward convolution of geometry g with source
 * src and result dst; its choice replaces *pd (destroyed) when it is a jit
 * kernel, and *taken says so. */
static nasc_status conv_fwd_retry(nasc_net *net, const conv_geom *g, dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src,
                                  const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst,
                                  const_dnnl_primitive_attr_t attr, const char *what, dnnl_primitive_desc_t *pd,
                                  bool *taken) {
    *taken = false;
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd2 = NULL;
    nasc_status st = NB_TRY(net, dnnl_dilated_convolution_forward_desc_init(&d, fwd_prop(net), alg, src, &g->w_any, bias,
                                                                             dst, g->strides, g->dil, g->pl, g->pr));
    if (!st) st = NB_TRY_AS(net, what, dnnl_primitive_desc_create(&pd2, &d, attr, net->engine, NULL));
    if (st) return st;
    if (is_jit(net, pd2)) {
        NB_DESTROY(dnnl_primitive_desc_destroy(*pd));
        *pd = pd2;
        *taken = true;
    } else {
        NB_DESTROY(dnnl_primitive_desc_destroy(pd2));
    }
    return NASC_OK;
}

static nasc_status conv_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    uint32_t x = arg(net, p, 0), w = arg(net, p, 1);
    conv_geom g;
    NB_PASS(conv_geometry(net, p, &g));
    int sub = net->ps[pi].sub_src;
    if (sub >= 0) x = (uint32_t)sub; /* read through its subsample, in the net's layout */
    int xs = src_of(net, x, sub < 0);
    NEED(xs);
    if (sub >= 0) {
        xs = subsample_fwd(net, pi, p, xs, &g);
        NEED(xs);
    }
    dnnl_memory_desc_t dst, bias_md;
    NB_PASS(nb_act_md(net, vtype(net, p->result), &dst));
    int64_t cout = vtype(net, p->result)->dims[1];
    dnnl_dims_t bd = {cout};
    NB_CHECK(net, dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_a));
    int fold = net->ps[pi].fold_bn, relu = net->ps[pi].post_relu;
    dnnl_convolution_desc_t d;
    /* inference: oneDNN may pick Winograd (AVX-512, 3x3, stride 1, batch 4
     * or more) where its heuristic expects it to be faster than direct */
    dnnl_alg_kind_t alg = net->opt.mode == NASC_MODE_INFER ? dnnl_convolution_auto : dnnl_convolution_direct;
    NB_CHECK(net, dnnl_dilated_convolution_forward_desc_init(&d, fwd_prop(net), alg, md_of(net, xs), &g.w_any,
                                                             fold >= 0 ? &bias_md : NULL, &dst, g.strides, g.dil, g.pl,
                                                             g.pr));
    dnnl_primitive_attr_t attr = NULL;
    nasc_status st = NASC_OK;
    int sum = net->ps[pi].sum_add, into = -1; /* sum: the add computed by adding into into */
    if (sum >= 0) {
        const nasc_prim *ap = &M(net)->prims[sum];
        uint32_t mine = fold >= 0 ? M(net)->prims[fold].result : p->result;
        uint32_t other = arg(net, ap, 0) == mine ? arg(net, ap, 1) : arg(net, ap, 0);
        into = nb_match(net, net->vals[other].fwd, &dst); /* its own tensor, in the conv's layout */
        NEED(into);
    }
    if (relu >= 0 || sum >= 0) {
        dnnl_post_ops_t po;
        NB_CHECK(net, dnnl_post_ops_create(&po));
        if (sum >= 0) st = NB_TRY(net, dnnl_post_ops_append_sum(po, 1.0f));
        if (!st && relu >= 0) st = NB_TRY(net, dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0));
        if (!st) st = NB_TRY(net, dnnl_primitive_attr_create(&attr));
        if (!st) st = NB_TRY(net, dnnl_primitive_attr_set_post_ops(attr, po));
        if (!st) st = nb_attr_own(net, attr);
        NB_DESTROY(dnnl_post_ops_destroy(po));
    }
    const_dnnl_primitive_attr_t conv_attr = attr ? attr : nb_attr(net);
    dnnl_primitive_desc_t pd;
    if (!st) st = NB_TRY_AS(net, "conv forward", dnnl_primitive_desc_create(&pd, &d, conv_attr, net->engine, NULL));
    /* oneDNN 2.6 has no jit kernel for a plain source of many channels (a
     * net input) into blocked results: read the input's copy in the net's
     * layout instead (the copy is made only when that gives a jit kernel) */
    const dnnl_memory_desc_t *bias_arg = fold >= 0 ? &bias_md : NULL;
    bool taken = false;
    if (!st && !is_jit(net, pd) && xs == net->vals[x].fwd_plain && block_of(md_of(net, xs)) == 1 &&
        net->act_tag != dnnl_nchw) {
        dnnl_memory_desc_t xb_md;
        st = nb_act_md(net, vtype(net, x), &xb_md);
        if (!st) st = conv_fwd_retry(net, &g, alg, &xb_md, bias_arg, &dst, conv_attr, "conv forward on blocked input", &pd, &taken);
        if (!st && taken && (xs = src_of(net, x, false)) < 0) st = net->status ? net->status : NASC_ENOMEM;
        if (st) NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    }
    /* nor for many grouped or dilated convolutions on blocked activations
     * (channels per group not a multiple of the block): its reference loop
     * is ~100x slower than letting it pick the activations' layout too
     * (gemm on plain ones), which costs a reorder */
    if (!st && sum < 0 && !is_jit(net, pd) && block_of(md_of(net, xs)) > 1) {
        dnnl_memory_desc_t src_any, dst_any;
        st = NB_TRY(net, dnnl_memory_desc_init_by_tag(&src_any, 4, md_of(net, xs)->dims, dnnl_f32, dnnl_format_tag_any));
        if (!st) st = NB_TRY(net, dnnl_memory_desc_init_by_tag(&dst_any, 4, dst.dims, dnnl_f32, dnnl_format_tag_any));
        if (!st) st = conv_fwd_retry(net, &g, alg, &src_any, bias_arg, &dst_any, conv_attr, "conv forward in any layout", &pd, &taken);
        if (st) NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    }
    if (attr) NB_DESTROY(dnnl_primitive_attr_destroy(attr));
    if (st) return st;
    net->ps[pi].pd = pd;
    if (!dnnl_memory_desc_equal(q(pd, dnnl_query_src_md), md_of(net, xs))) xs = nb_reorder(net, xs, q(pd, dnnl_query_src_md), -1);
    int wsrc = weights_plain(net, w, &g.w_plain), bias = -1;
    NEED(wsrc);
    /* weights from the store are prepared once per change of the store;
     * weights the net computes, every pass */
    bool prep = M(net)->values[w].kind == NASC_VAL_PARAM;
    if (fold >= 0) {
        const nasc_prim *bn = &M(net)->prims[fold];
        int wf = nb_tensor_new(net, &g.w_plain);
        bias = nb_tensor_new(net, &bias_md);
        int sc = nb_tref_new(net, net->trefs[net->vals[arg(net, bn, 1)].fwd].buf, &bias_md);
        int sf = nb_tref_new(net, net->trefs[net->vals[arg(net, bn, 2)].fwd].buf, &bias_md);
        int rm = store_vec(net, bn, "mean", cout, 0), rv = store_vec(net, bn, "var", cout, 1);
        nb_arg fa[7] = {{0, wsrc}, {1, sc}, {2, sf}, {3, rm}, {4, rv}, {5, wf}, {6, bias}};
        net->emit_prep = true;
        int s = nb_step_kernel(net, k_fold_bn, "fold bnorm", 7, fa);
        net->emit_prep = false;
        if (s >= 0) {
            net->steps[s].i[0] = (int)cout;
            net->steps[s].i[1] = (int)(nasc_type_numel(vtype(net, w)) / cout);
            net->steps[s].f[0] = bn->a.eps;
        }
        wsrc = wf;
    }
    /* our depthwise kernel instead of oneDNN's primitive (whose descriptor
     * still hints the backward ones) */
    bool own = false;
    dnnl_memory_desc_t w_md = *q(pd, dnnl_query_weights_md);
#ifdef NASC_HAVE_DW
    nasc_dw_shape dsh;
    if (fold < 0 && relu < 0 && sum < 0 && own_dw_fd(net, p, xs, &dsh) &&
        block_of(q(pd, dnnl_query_dst_md)) == 16) {
        NB_PASS(dw_weights_md(net, &dsh, &w_md));
        own = true;
    }
#endif
    net->emit_prep = prep;
    int wt = nb_match(net, wsrc, &w_md);
    net->emit_prep = false;
    int y;
    if (into >= 0 && dnnl_memory_desc_equal(md_of(net, into), q(pd, dnnl_query_dst_md))) {
        y = into;
        net->vals[p->result].fwd = y;
        net->vals[M(net)->prims[sum].result].fwd = y; /* the add's result */
    } else if (into >= 0) {
        return nasc_error(net->ctx, NASC_EINTERNAL, M(net)->source, p->loc,
                          "the convolution chose another layout than the tensor it sums into");
    } else {
        y = new_result(net, p, q(pd, dnnl_query_dst_md));
    }
    nb_arg a[4] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_WEIGHTS, wt}, {DNNL_ARG_DST, y}, {DNNL_ARG_BIAS, bias}};
#ifdef NASC_HAVE_DW
    if (own) {
        nb_arg ka[3] = {{0, xs}, {1, wt}, {2, y}};
        int s = step_owning(net, k_dw_fwd, "dwconv fwd (nasc)", 3, ka, &dsh, sizeof dsh);
        if (s >= 0) net->steps[s].flops = g.flops;
    }
#endif
    if (!own) {
        bool wino = impl_has(net, pd, "wino");
        net->n_winograd += wino;
        nb_step_prim(net, pd, wino ? "conv fwd winograd" : "conv fwd", g.flops, fold >= 0 ? 4 : 3, a);
    }
    net->ps[pi].t[0] = xs;
    net->ps[pi].t[1] = wt;
    /* the fused ops' results are the conv's */
    if (fold >= 0) net->vals[M(net)->prims[fold].result].fwd = y;
    if (relu >= 0) net->vals[M(net)->prims[relu].result].fwd = y;
    return net->status;
}

/* Channels per pixel block of a dense 4-D tensor: 8 (nChw8c), 16 (nChw16c), 1 (nchw), 0 other. */
static int block_of(const dnnl_memory_desc_t *md) {
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->offset0 != 0) return 0;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (b->inner_nblks == 0) {
        bool nchw = b->strides[3] == 1 && b->strides[2] == md->dims[3] && b->strides[1] == md->dims[2] * md->dims[3] &&
                    b->strides[0] == md->dims[1] * md->dims[2] * md->dims[3];
        return nchw ? 1 : 0;
    }
    if (b->inner_nblks == 1 && b->inner_idxs[0] == 1 && (b->inner_blks[0] == 8 || b->inner_blks[0] == 16) &&
        md->padded_dims[1] == md->dims[1])
        return (int)b->inner_blks[0];
    return 0;
}

/* Depthwise backward-weights with our own kernel (oneDNN 2.6 falls back
 * to a slow gemm path for kernels larger than 3x3). */
#ifdef NASC_HAVE_DW
static void k_dw_bwd_weights(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    nasc_status st = nasc_dw_bwd_weights_run(s->ptr, (nasc_dw_layout)s->i[0], nb_ptr(net, a[0].tref),
                                             nb_ptr(net, a[1].tref), nb_ptr(net, a[2].tref), NASC_DW_ISA_AUTO,
                                             nb_ptr(net, a[3].tref), net->bufs[net->trefs[a[3].tref].buf].bytes);
    /* the shape was checked and the scratch planned (64-byte aligned in the
     * arena) when the net was compiled */
    assert(st == NASC_OK);
    (void)st;
}

static bool use_own_dw(nasc_net *net, const nasc_prim *p, const_dnnl_primitive_desc_t bwd_w, int xs, int G) {
    const nasc_type *x = vtype(net, arg(net, p, 0));
    if (p->a.groups <= 1 || p->a.groups != x->dims[1] || vtype(net, p->result)->dims[1] != x->dims[1]) return false;
    if (p->a.kh < 1 || p->a.kw < 1 || p->a.sh < 1 || p->a.sw < 1 || p->a.dh < 1 || p->a.dw < 1) return false;
    if (net->opt.onednn_dw) return false;
    int bx = block_of(md_of(net, xs)), bg = block_of(md_of(net, G));
    if (bx == 0 || bx != bg) return false;
    const char *impl = NULL;
    if (NB_TRY(net, dnnl_primitive_desc_query(bwd_w, dnnl_query_impl_info_str, 0, &impl))) return false;
    /* oneDNN's own depthwise kernel (jit_dw) is fast; anything else it
     * falls back to (gemm, ref) is far slower than ours */
    return impl && strncmp(impl, "jit_dw", 6) != 0;
}

#endif

/* Whether oneDNN found a jit kernel for pd (not a reference loop). */
static bool is_jit(nasc_net *net, const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (NB_TRY(net, dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl))) return false;
    return impl && strncmp(impl, "ref", 3) != 0;
}

/* Whether the name of the implementation oneDNN chose contains part ("wino"). */
static bool impl_has(nasc_net *net, const_dnnl_primitive_desc_t pd, const char *part) {
    const char *impl = NULL;
    if (NB_TRY(net, dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl))) return false;
    return impl && strstr(impl, part) != NULL;
}

/* w_flip[g][i][o][a][b] = w[g][o][i][kh-1-a][kw-1-b]: the weights of the
 * forward convolution that computes a stride-1 convolution's backward-data. */
static void k_flip_weights(nasc_net *net, const nb_step *s) {
    const float *w = nb_ptr(net, net->args[s->first_arg].tref);
    float *f = nb_ptr(net, net->args[s->first_arg + 1].tref);
    int64_t groups = s->i[0], og = s->i[1], ig = s->i[2], kh = s->i[3], kw = s->i[4], k = kh * kw;
    for (int64_t gi = 0; gi < groups; gi++)
        for (int64_t o = 0; o < og; o++)
            for (int64_t i = 0; i < ig; i++) {
                const float *src = w + ((gi * og + o) * ig + i) * k;
                float *dst = f + ((gi * ig + i) * og + o) * k;
                for (int64_t e = 0; e < k; e++) dst[e] = src[k - 1 - e];
            }
}

/* oneDNN 2.6 has no jit kernel for some backward-data convolutions (dilated
 * depthwise ones run a reference loop, hundreds of times slower than the
 * forward pass). With stride 1, the gradient of the input is itself a
 * forward convolution: of dy, with the kernel flipped in space and its
 * input and output channels swapped per group, the same dilation, and pads
 * d*(k-1) - pad on each side. Emits that when the pads allow it (returns
 * true; failures are in net->status), else returns false. */
static bool conv_bwd_data_as_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p, const conv_geom *g, int xs, int G) {
    const nasc_prim_attrs *a = &p->a;
    if (a->sh != 1 || a->sw != 1) return false;
    dnnl_dims_t pl = {(a->kh - 1) * a->dh - a->pt, (a->kw - 1) * a->dw - a->pl};
    dnnl_dims_t pr = {(a->kh - 1) * a->dh - a->pb, (a->kw - 1) * a->dw - a->pr};
    if (pl[0] < 0 || pl[1] < 0 || pr[0] < 0 || pr[1] < 0) return false;
    const nasc_type *w = vtype(net, arg(net, p, 1));
    int64_t groups = a->groups > 1 ? a->groups : 1, og = w->dims[0] / groups, ig = w->dims[1];
    dnnl_memory_desc_t fl_any, fl_plain;
    dnnl_dims_t d5 = {groups, ig, og, w->dims[2], w->dims[3]}, d4 = {ig, og, w->dims[2], w->dims[3]};
    dnnl_format_tag_t plain_tag = groups > 1 ? dnnl_goihw : dnnl_oihw;
    int nd = groups > 1 ? 5 : 4;
    const dnnl_dim_t *dd = groups > 1 ? d5 : d4;
    if (NB_TRY(net, dnnl_memory_desc_init_by_tag(&fl_any, nd, dd, dnnl_f32, dnnl_format_tag_any)) ||
        NB_TRY(net, dnnl_memory_desc_init_by_tag(&fl_plain, nd, dd, dnnl_f32, plain_tag)))
        return true;
    dnnl_memory_desc_t dx_md = *md_of(net, xs), dy_md = *md_of(net, G);
    dnnl_convolution_desc_t d;
    if (NB_TRY(net, dnnl_dilated_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct,
                                                                &dy_md, &fl_any, NULL, &dx_md, g->strides, g->dil, pl, pr)))
        return true;
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "conv backward data as forward")) return true;
    if (!is_jit(net, pd)) { /* no faster: leave it to the backward primitive */
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
        return net->status != NASC_OK;
    }
    int wsrc = nb_tref_new(net, net->trefs[net->vals[arg(net, p, 1)].fwd].buf, &g->w_plain);
    int flip = nb_tensor_new(net, &fl_plain);
    nb_arg fa[2] = {{0, wsrc}, {1, flip}};
    int s = nb_step_kernel(net, k_flip_weights, "flip weights", 2, fa);
    if (s >= 0) {
        int *i = net->steps[s].i;
        i[0] = (int)groups, i[1] = (int)og, i[2] = (int)ig, i[3] = (int)w->dims[2], i[4] = (int)w->dims[3];
    }
    int wt = nb_match(net, flip, q(pd, dnnl_query_weights_md));
    int gd = nb_match(net, G, q(pd, dnnl_query_src_md));
    int dx = nb_tensor_new(net, q(pd, dnnl_query_dst_md));
    nb_arg ca[3] = {{DNNL_ARG_SRC, gd}, {DNNL_ARG_WEIGHTS, wt}, {DNNL_ARG_DST, dx}};
    nb_step_prim(net, pd, "conv bwd-data", g->flops, 3, ca);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    contribute_input(net, pi, p, dx);
    return true;
}

#ifdef NASC_HAVE_DW
static void k_1x1_bwd_weights(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    const float *x = nb_ptr(net, a[0].tref), *dy = nb_ptr(net, a[1].tref);
    nasc_status st = nasc_c1_bwd_weights_run(s->ptr, x + net->trefs[a[0].tref].md.offset0,
                                             dy + net->trefs[a[1].tref].md.offset0, nb_ptr(net, a[2].tref));
    assert(st == NASC_OK); /* the shape was checked when the net was compiled */
    (void)st;
}

/* The weight gradient of a 1x1 convolution at stride 1 without padding, x
 * and dy in 16-channel blocks, by nasc's kernel (conv1x1.h) in a one-thread
 * net (a training lane, a serial net): whether it emitted it. */
static bool own_1x1_bwd_weights(nasc_net *net, const nasc_prim *p, const conv_geom *g, int xs, int G) {
    if (!net->lane && !net->serial) return false;
    const nasc_type *wt = vtype(net, arg(net, p, 1)), *yt = vtype(net, p->result);
    if (p->a.groups > 1 || wt->rank != 4 || wt->dims[2] != 1 || wt->dims[3] != 1 || g->strides[0] != 1 ||
        g->strides[1] != 1 || g->pl[0] || g->pl[1] || g->pr[0] || g->pr[1] || g->dil[0] || g->dil[1])
        return false;
    const dnnl_memory_desc_t *xm = md_of(net, xs), *dm = md_of(net, G);
    int64_t xi = nb_planes16_image(xm), di = nb_planes16_image(dm);
    if (!xi || !di || xm->dims[0] != dm->dims[0] || xm->dims[2] != dm->dims[2] || xm->dims[3] != dm->dims[3] ||
        xm->dims[1] != wt->dims[1] || dm->dims[1] != wt->dims[0] || yt->dims[1] != wt->dims[0] ||
        xm->dims[0] > INT32_MAX || xm->dims[1] > INT32_MAX || dm->dims[1] > INT32_MAX)
        return false;
    nasc_c1_shape sh = {(int)xm->dims[0], (int)xm->dims[1], (int)dm->dims[1], xm->dims[2] * xm->dims[3], xi, di};
    if (!nasc_c1_supported(&sh)) return false;
    int dw = nb_tensor_new(net, &g->w_plain);
    nb_arg a[3] = {{0, xs}, {1, G}, {2, dw}};
    int s = dw < 0 ? -1 : step_owning(net, k_1x1_bwd_weights, "conv bwd-weights (nasc)", 3, a, &sh, sizeof sh);
    if (s < 0) return true;
    net->steps[s].flops = g->flops;
    nb_param_grad(net, arg(net, p, 1), dw, &g->w_plain); /* on the first use, dw becomes the gradient array */
    return true;
}
#endif

static nasc_status conv_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    uint32_t x = arg(net, p, 0), w = arg(net, p, 1);
    conv_geom g;
    NB_PASS(conv_geometry(net, p, &g));
    if (net->ps[pi].sub_src >= 0) subsample_geometry(&g);
    int xs = net->ps[pi].t[0]; /* a subsampling conv's subsample */
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    const dnnl_memory_desc_t dy_md = *md_of(net, G), *dy = &dy_md; /* trefs may move */
#ifdef NASC_HAVE_DW
    nasc_dw_shape dsh;
    if (net->vals[x].needs_grad && own_dw_fd(net, p, xs, &dsh) && block_of(dy) == 16) {
        dnnl_memory_desc_t w_md;
        NB_PASS(dw_weights_md(net, &dsh, &w_md));
        /* the forward pass's copy of the weights when it is in this layout */
        int wt = net->ps[pi].t[1];
        if (!dnnl_memory_desc_equal(md_of(net, wt), &w_md)) wt = weights_in(net, w, &g.w_plain, &w_md);
        NEED(wt);
        const dnnl_memory_desc_t x_md = *md_of(net, xs); /* trefs may move */
        int dx = nb_tensor_new(net, &x_md);
        NEED(dx);
        nb_arg a[3] = {{0, G}, {1, wt}, {2, dx}};
        int s = step_owning(net, k_dw_bwd_data, "dwconv bwd-data (nasc)", 3, a, &dsh, sizeof dsh);
        if (s < 0) return net->status;
        net->steps[s].flops = g.flops;
        nb_contribute(net, x, dx);
    } else
#endif
    if (net->vals[x].needs_grad) {
        dnnl_convolution_desc_t d;
        NB_CHECK(net, dnnl_dilated_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, md_of(net, xs), &g.w_any, dy,
                                                               g.strides, g.dil, g.pl, g.pr));
        dnnl_primitive_desc_t pd;
        if (pd_create(net, &pd, &d, net->ps[pi].pd, "conv backward data")) return net->status;
        if (!is_jit(net, pd) && conv_bwd_data_as_fwd(net, pi, p, &g, xs, G)) {
            NB_DESTROY(dnnl_primitive_desc_destroy(pd));
            if (net->status) return net->status;
        } else {
            /* the forward pass's copy of the weights when it is in this layout too */
            int wt = net->ps[pi].t[1];
            if (!dnnl_memory_desc_equal(md_of(net, wt), q(pd, dnnl_query_weights_md)))
                wt = weights_in(net, w, &g.w_plain, q(pd, dnnl_query_weights_md));
            int gd = nb_match(net, G, q(pd, dnnl_query_diff_dst_md));
            int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
            nb_arg a[3] = {{DNNL_ARG_DIFF_DST, gd}, {DNNL_ARG_WEIGHTS, wt}, {DNNL_ARG_DIFF_SRC, dx}};
            nb_step_prim(net, pd, "conv bwd-data", g.flops, 3, a);
            NB_DESTROY(dnnl_primitive_desc_destroy(pd));
            contribute_input(net, pi, p, dx);
        }
    }
#ifdef NASC_HAVE_DW
    if (net->vals[w].needs_grad && own_1x1_bwd_weights(net, p, &g, xs, G)) return net->status;
#endif
    if (net->vals[w].needs_grad) {
        /* a plain source (the net input) may not have a fast backward-weights
         * kernel: let oneDNN pick its layout and reorder the input once */
        dnnl_memory_desc_t src_md = *md_of(net, xs);
        if (block_of(&src_md) == 1 && net->act_tag != dnnl_nchw) {
            dnnl_dims_t dd;
            memcpy(dd, src_md.dims, sizeof dd);
            NB_CHECK(net, dnnl_memory_desc_init_by_tag(&src_md, 4, dd, dnnl_f32, dnnl_format_tag_any));
        }
        dnnl_convolution_desc_t d;
        NB_CHECK(net, dnnl_dilated_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &src_md, &g.w_any,
                                                                  NULL, dy, g.strides, g.dil, g.pl, g.pr));
        dnnl_primitive_desc_t pd;
        if (pd_create(net, &pd, &d, net->ps[pi].pd, "conv backward weights")) return net->status;
        if (!is_jit(net, pd)) { /* as the forward pass: a reference loop; let oneDNN pick the layouts */
            dnnl_memory_desc_t src_any, dy_any;
            dnnl_convolution_desc_t d2;
            dnnl_primitive_desc_t pd2 = NULL;
            if (!NB_TRY(net, dnnl_memory_desc_init_by_tag(&src_any, 4, src_md.dims, dnnl_f32, dnnl_format_tag_any)) &&
                !NB_TRY(net, dnnl_memory_desc_init_by_tag(&dy_any, 4, dy->dims, dnnl_f32, dnnl_format_tag_any)) &&
                !NB_TRY(net, dnnl_dilated_convolution_backward_weights_desc_init(
                                 &d2, dnnl_convolution_direct, &src_any, &g.w_any, NULL, &dy_any, g.strides, g.dil,
                                 g.pl, g.pr)) &&
                !pd_create(net, &pd2, &d2, net->ps[pi].pd, "conv backward weights in any layout")) {
                if (is_jit(net, pd2)) {
                    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
                    pd = pd2;
                } else {
                    NB_DESTROY(dnnl_primitive_desc_destroy(pd2));
                }
            }
            if (net->status) {
                NB_DESTROY(dnnl_primitive_desc_destroy(pd));
                return net->status;
            }
        }
#ifdef NASC_HAVE_DW
        if (use_own_dw(net, p, pd, xs, G)) {
            NB_DESTROY(dnnl_primitive_desc_destroy(pd));
            nasc_dw_shape sh = dw_shape_of(net, p);
            /* scratch in the arena, for the threads the process runs (set
             * once, before nets are compiled: nasc_backend_set_threads) */
            dnnl_memory_desc_t scr_md;
            dnnl_dims_t scr_d = {(dnnl_dim_t)(nasc_dw_scratch_bytes(&sh, nasc_backend_threads()) / sizeof(float))};
            int dw = nb_tensor_new(net, &g.w_plain), scr = -1;
            if (!NB_TRY(net, dnnl_memory_desc_init_by_tag(&scr_md, 1, scr_d, dnnl_f32, dnnl_a)))
                scr = nb_tensor_new(net, &scr_md);
            nb_arg a[4] = {{0, xs}, {1, G}, {2, dw}, {3, scr}};
            int s = step_owning(net, k_dw_bwd_weights, "dwconv bwd-weights (nasc)", 4, a, &sh, sizeof sh);
            if (s < 0) return net->status;
            int blk = block_of(md_of(net, xs));
            net->steps[s].i[0] = blk == 16 ? NASC_DW_NCHW16C : blk == 8 ? NASC_DW_NCHW8C : NASC_DW_NCHW;
            net->steps[s].flops = g.flops;
            nb_param_grad(net, w, dw, &g.w_plain); /* on the first use, dw becomes the gradient array */
            return net->status;
        }
#endif
        int xw = nb_match(net, xs, q(pd, dnnl_query_src_md));
        int gd = nb_match(net, G, q(pd, dnnl_query_diff_dst_md));
        int dw = nb_tensor_new(net, q(pd, dnnl_query_diff_weights_md));
        nb_arg a[3] = {{DNNL_ARG_SRC, xw}, {DNNL_ARG_DIFF_DST, gd}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
        nb_step_prim(net, pd, "conv bwd-weights", g.flops, 3, a);
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
        /* diff weights come in the primitive's layout, grouped 5-D or 4-D */
        nb_param_grad(net, w, dw, &g.w_plain);
    }
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Batch normalisation                                              */
/* ---------------------------------------------------------------- */

static void k_bn_running(nasc_net *net, const nb_step *s) {
    const float *mean = nb_ptr(net, net->args[s->first_arg].tref);
    const float *var = nb_ptr(net, net->args[s->first_arg + 1].tref);
    float *rm = nb_ptr(net, net->args[s->first_arg + 2].tref);
    float *rv = nb_ptr(net, net->args[s->first_arg + 3].tref);
    float m = s->f[0], unbias = s->f[1];
    for (int c = 0; c < s->i[0]; c++) {
        rm[c] = (1 - m) * rm[c] + m * mean[c];
        rv[c] = (1 - m) * rv[c] + m * var[c] * unbias;
    }
}

static int store_vec(nasc_net *net, const nasc_prim *p, const char *suffix, int64_t c, float fill) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", nasc_str(M(net), M(net)->values[p->result].name), suffix);
    nasc_tensor *t = nasc_params_find(net->store, name);
    if (!t) {
        t = nasc_params_get(net->store, name, 1, &c);
        if (!t) {
            if (!net->status) net->status = net->ctx->diag.status ? net->ctx->diag.status : NASC_ENOMEM;
            return -1;
        }
        for (int64_t i = 0; i < c; i++) t->data[i] = fill;
    } else if (t->rank != 1 || t->dims[0] != c) {
        net->status = nasc_error(net->ctx, NASC_EINPUT, M(net)->source, NASC_NOLOC,
                                 "running statistics '%s' in the parameter store have the wrong size", name);
        return -1;
    }
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {c};
    if (NB_TRY(net, dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_a))) return -1;
    int b = nb_buffer_new(net, 0);
    if (b < 0) return -1;
    net->bufs[b].ext = t->data;
    return nb_tref_new(net, b, &md);
}

/* The step folding a training batch's mean and variance into the running
 * statistics rm, rv. */
static void running_stats(nasc_net *net, uint32_t x, int mean, int var, int rm, int rv, int64_t c) {
    if (net->sync && net->lane_index > 0) return; /* lanes: all compute the same; the first keeps them */
    nb_arg r[4] = {{0, mean}, {1, var}, {2, rm}, {3, rv}};
    int s = nb_step_kernel(net, k_bn_running, "bnorm running stats", 4, r);
    if (s < 0) return;
    const nasc_type *t = vtype(net, x);
    double n = (double)(net->sync ? net->sync->batch : nb_dim0(net, t)) *
               (double)(t->rank == 4 ? t->dims[2] * t->dims[3] : 1);
    net->steps[s].f[0] = net->opt.bn_momentum;
    net->steps[s].f[1] = n > 1 ? (float)(n / (n - 1)) : 1.0f;
    net->steps[s].i[0] = (int)c;
}

/* The descriptor of a batch norm's per-channel vectors (c floats). */
static nasc_status vec_md(nasc_net *net, int64_t c, dnnl_memory_desc_t *vmd) {
    dnnl_dims_t vd = {c};
    return NB_TRY(net, dnnl_memory_desc_init_by_tag(vmd, 1, vd, dnnl_f32, dnnl_a));
}

/* Batch norm p's per-channel vectors (c channels, descriptor vmd): the
 * running mean and variance in the store, the scale and shift. */
static nasc_status bn_vectors(nasc_net *net, const nasc_prim *p, int64_t c, dnnl_memory_desc_t *vmd, int *rm, int *rv,
                              int *sc, int *sf) {
    *rm = store_vec(net, p, "mean", c, 0);
    *rv = store_vec(net, p, "var", c, 1);
    NB_PASS(vec_md(net, c, vmd));
    *sc = nb_tref_new(net, net->trefs[net->vals[arg(net, p, 1)].fwd].buf, vmd);
    *sf = nb_tref_new(net, net->trefs[net->vals[arg(net, p, 2)].fwd].buf, vmd);
    return net->status;
}

/* Training lanes: nasc's own batch norm over the whole batch (lanes.c), in
 * the input's layout; a relu fused into it (bn_relu) runs inside it. */
static nasc_status bn_lanes_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int xs, int64_t c) {
    uint32_t x = arg(net, p, 0);
    dnnl_memory_desc_t amd; /* dense: not a view into a concat's buffer */
    NB_PASS(nb_act_md(net, vtype(net, x), &amd));
    xs = nb_match(net, xs, &amd);
    NEED(xs);
    if (!nb_chan_walk_ok(md_of(net, xs)))
        return net->status = nasc_error(net->ctx, NASC_EINTERNAL, M(net)->source, p->loc,
                                        "batch norm in lanes: unexpected layout of its input");
    int y = new_result(net, p, md_of(net, xs));
    int relu = net->ps[pi].bn_relu;
    if (relu >= 0) net->vals[M(net)->prims[relu].result].fwd = y;
    dnnl_memory_desc_t vmd;
    int rm, rv, sc, sf;
    NB_PASS(bn_vectors(net, p, c, &vmd, &rm, &rv, &sc, &sf));
    int mean = nb_tensor_new(net, &vmd), var = nb_tensor_new(net, &vmd);
    nb_arg a[6] = {{0, xs}, {1, y}, {2, mean}, {3, var}, {4, sc}, {5, sf}};
    int s = nb_step_kernel(net, nb_k_bn_lanes_fwd, relu >= 0 ? "bnorm+relu fwd (lanes)" : "bnorm fwd (lanes)", 6, a);
    if (s >= 0) {
        net->steps[s].sync = true;
        net->steps[s].f[0] = p->a.eps;
        net->steps[s].i[0] = (int)c;
        net->steps[s].i[1] = (int)net->sync->off[pi];
        net->steps[s].i[2] = relu >= 0;
    }
    running_stats(net, x, mean, var, rm, rv, c);
    int *t = net->ps[pi].t;
    t[0] = xs, t[1] = mean, t[2] = var, t[3] = sc, t[4] = sf, t[5] = -1;
    return net->status;
}

/* gs: the ng gradients of the result (the kernel sums them when more than
 * one), each in the input's layout or a view of a larger tensor in it. */
static nasc_status bn_lanes_bwd_n(nasc_net *net, uint32_t pi, const nasc_prim *p, const int *gs, int ng) {
    uint32_t x = arg(net, p, 0);
    const int *t = net->ps[pi].t;
    int G = gs[0]; /* in the input's layout, or a view of a larger tensor in it (a concat's) */
    if (ng == 1 && !nb_chan_walk_like(md_of(net, G), md_of(net, t[0]))) G = nb_match(net, G, md_of(net, t[0]));
    NEED(G);
    int64_t c = vtype(net, x)->dims[1];
    dnnl_memory_desc_t vmd;
    NB_PASS(vec_md(net, c, &vmd));
    int dx = nb_tensor_new(net, md_of(net, t[0]));
    int dsc = nb_tensor_new(net, &vmd), dsf = nb_tensor_new(net, &vmd);
    nb_arg a[8 + NB_BN_GRADS_MAX] = {{0, t[0]}, {1, G},    {2, dx},  {3, t[1]}, {4, t[2]},
                                     {5, t[3]}, {6, t[4]}, {7, dsc}, {8, dsf}};
    for (int j = 1; j < ng; j++) a[8 + j] = (nb_arg){8 + j, gs[j]};
    bool relu = net->ps[pi].bn_relu >= 0;
    int s = nb_step_kernel(net, nb_k_bn_lanes_bwd, relu ? "bnorm+relu bwd (lanes)" : "bnorm bwd (lanes)", 8 + ng, a);
    if (s >= 0) {
        net->steps[s].sync = true;
        net->steps[s].f[0] = p->a.eps;
        net->steps[s].i[0] = (int)c;
        net->steps[s].i[1] = (int)(net->sync->off[pi] + 3 * c);
        net->steps[s].i[2] = relu;
        net->steps[s].i[3] = ng;
    }
    nb_contribute(net, x, dx);
    /* this lane's share: the lanes' parameter gradients are summed after the pass */
    if (net->vals[arg(net, p, 1)].needs_grad) nb_param_grad(net, arg(net, p, 1), dsc, NULL);
    if (net->vals[arg(net, p, 2)].needs_grad) nb_param_grad(net, arg(net, p, 2), dsf, NULL);
    return net->status;
}

bool nb_emit_bn_lanes_bwd_sum(nasc_net *net, uint32_t pi) {
    const nasc_prim *p = &M(net)->prims[pi];
    const nb_value *nv = &net->vals[p->result];
    if (!net->sync || p->op != NASC_PRIM_BATCH_NORM || net->ps[pi].skip || net->ps[pi].same_as >= 0 || nv->got < 2 ||
        nv->got > NB_BN_GRADS_MAX)
        return false;
    const dnnl_memory_desc_t *md = md_of(net, net->ps[pi].t[0]);
    for (int j = 0; j < nv->got; j++)
        if (!nb_chan_walk_like(md_of(net, nv->contrib[j]), md)) return false; /* another layout */
    bn_lanes_bwd_n(net, pi, p, nv->contrib, nv->got);
    return true;
}

static unsigned bn_flags(nasc_net *net, uint32_t pi) {
    unsigned f = dnnl_use_scale | dnnl_use_shift;
    if (net->opt.mode != NASC_MODE_TRAIN && !net->opt.bn_batch_stats) f |= dnnl_use_global_stats;
    if (net->ps[pi].bn_relu >= 0) f |= dnnl_fuse_norm_relu;
    return f;
}

static nasc_status bn_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    uint32_t x = arg(net, p, 0);
    int xs = src_of(net, x, false);
    NEED(xs);
    int64_t c = vtype(net, x)->dims[1];
    if (net->sync && net->opt.mode == NASC_MODE_TRAIN) return bn_lanes_fwd(net, pi, p, xs, c);
    dnnl_batch_normalization_desc_t d;
    NB_CHECK(net, dnnl_batch_normalization_forward_desc_init(&d, fwd_prop(net), md_of(net, xs), p->a.eps,
                                                             bn_flags(net, pi)));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "batch norm forward")) return net->status;
    net->ps[pi].pd = pd;
    int y = new_result(net, p, q(pd, dnnl_query_dst_md));
    int relu = net->ps[pi].bn_relu, ws = -1;
    if (relu >= 0) {
        net->vals[M(net)->prims[relu].result].fwd = y; /* the relu's result is the batch norm's */
        const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_workspace_md);
        if (wmd && wmd->ndims) ws = nb_tensor_new(net, wmd); /* training: the relu's mask */
    }
    net->ps[pi].t[5] = ws;
    dnnl_memory_desc_t vmd;
    int rm, rv, sc, sf;
    NB_PASS(bn_vectors(net, p, c, &vmd, &rm, &rv, &sc, &sf));
    if (net->opt.mode == NASC_MODE_TRAIN) {
        int mean = nb_tensor_new(net, &vmd), var = nb_tensor_new(net, &vmd);
        nb_arg a[7] = {{DNNL_ARG_SRC, xs},    {DNNL_ARG_DST, y},          {DNNL_ARG_SCALE, sc},
                       {DNNL_ARG_SHIFT, sf},  {DNNL_ARG_MEAN, mean},      {DNNL_ARG_VARIANCE, var},
                       {DNNL_ARG_WORKSPACE, ws}};
        nb_step_prim(net, pd, relu >= 0 ? "bnorm+relu fwd" : "bnorm fwd", 0, ws >= 0 ? 7 : 6, a);
        running_stats(net, x, mean, var, rm, rv, c);
        net->ps[pi].t[0] = xs;
        net->ps[pi].t[1] = mean;
        net->ps[pi].t[2] = var;
        net->ps[pi].t[3] = sc;
        net->ps[pi].t[4] = sf;
    } else {
        if (net->opt.bn_batch_stats) { /* the batch's statistics, written to scratch, not to the running ones */
            rm = nb_tensor_new(net, &vmd);
            rv = nb_tensor_new(net, &vmd);
        }
        nb_arg a[6] = {{DNNL_ARG_SRC, xs},  {DNNL_ARG_DST, y},     {DNNL_ARG_SCALE, sc},
                       {DNNL_ARG_SHIFT, sf}, {DNNL_ARG_MEAN, rm}, {DNNL_ARG_VARIANCE, rv}};
        nb_step_prim(net, pd, relu >= 0 ? "bnorm+relu fwd" : "bnorm fwd", 0, 6, a);
    }
    return net->status;
}

static nasc_status bn_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    if (net->sync) return bn_lanes_bwd_n(net, pi, p, &G, 1);
    uint32_t x = arg(net, p, 0);
    int xs = net->ps[pi].t[0];
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    dnnl_batch_normalization_desc_t d;
    NB_CHECK(net, dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, md_of(net, G), md_of(net, xs), p->a.eps,
                                                              bn_flags(net, pi)));
    dnnl_memory_desc_t vmd;
    NB_PASS(vec_md(net, vtype(net, x)->dims[1], &vmd));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, net->ps[pi].pd, "batch norm backward")) return net->status;
    int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
    int dsc = nb_tensor_new(net, &vmd), dsf = nb_tensor_new(net, &vmd);
    /* oneDNN 2.6 wants the shift too when use_shift is set, although the
     * backward pass does not read it */
    int ws = net->ps[pi].t[5]; /* fused relu: its mask, from the forward pass */
    nb_arg a[10] = {{DNNL_ARG_SRC, xs},        {DNNL_ARG_MEAN, net->ps[pi].t[1]}, {DNNL_ARG_VARIANCE, net->ps[pi].t[2]},
                    {DNNL_ARG_DIFF_DST, G},    {DNNL_ARG_SCALE, net->ps[pi].t[3]}, {DNNL_ARG_SHIFT, net->ps[pi].t[4]},
                    {DNNL_ARG_DIFF_SRC, dx},   {DNNL_ARG_DIFF_SCALE, dsc},       {DNNL_ARG_DIFF_SHIFT, dsf},
                    {DNNL_ARG_WORKSPACE, ws}};
    nb_step_prim(net, pd, ws >= 0 ? "bnorm+relu bwd" : "bnorm bwd", 0, ws >= 0 ? 10 : 9, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    nb_contribute(net, x, dx);
    if (net->vals[arg(net, p, 1)].needs_grad) nb_param_grad(net, arg(net, p, 1), dsc, NULL);
    if (net->vals[arg(net, p, 2)].needs_grad) nb_param_grad(net, arg(net, p, 2), dsf, NULL);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Elementwise, pooling, softmax                                    */
/* ---------------------------------------------------------------- */

static dnnl_alg_kind_t eltwise_alg(nasc_prim_op op) {
    switch (op) {
    case NASC_PRIM_RELU: return dnnl_eltwise_relu;
    case NASC_PRIM_TANH: return dnnl_eltwise_tanh;
    case NASC_PRIM_SIGMOID: return dnnl_eltwise_logistic;
    default: return dnnl_eltwise_linear;
    }
}
static float eltwise_alpha(const nasc_prim *p) {
    return p->op == NASC_PRIM_SCALE ? p->a.alpha : p->op == NASC_PRIM_IDENTITY ? 1.0f : 0.0f;
}

static nasc_status eltwise_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    int xs = src_of(net, arg(net, p, 0), false);
    NEED(xs);
    dnnl_eltwise_desc_t d;
    NB_CHECK(net, dnnl_eltwise_forward_desc_init(&d, fwd_prop(net), eltwise_alg(p->op), md_of(net, xs), eltwise_alpha(p), 0));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "eltwise forward")) return net->status;
    net->ps[pi].pd = pd;
    net->ps[pi].t[0] = xs;
    if (net->ps[pi].in_concat) { /* the concat wrote the result (plan_concat) */
        net->vals[p->result].fwd = xs;
        return net->status;
    }
    int y = new_result(net, p, q(pd, dnnl_query_dst_md));
    nb_arg a[2] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DST, y}};
    nb_step_prim(net, pd, p->op == NASC_PRIM_RELU ? "relu fwd" : "eltwise fwd", 0, 2, a);
    return net->status;
}

static nasc_status eltwise_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    int xs = net->ps[pi].t[0];
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    dnnl_eltwise_desc_t d;
    NB_CHECK(net, dnnl_eltwise_backward_desc_init(&d, eltwise_alg(p->op), md_of(net, G), md_of(net, xs), eltwise_alpha(p), 0));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, net->ps[pi].pd, "eltwise backward")) return net->status;
    int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
    nb_arg a[3] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DIFF_DST, G}, {DNNL_ARG_DIFF_SRC, dx}};
    nb_step_prim(net, pd, p->op == NASC_PRIM_RELU ? "relu bwd" : "eltwise bwd", 0, 3, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    nb_contribute(net, arg(net, p, 0), dx);
    return net->status;
}

/* dx = (sum of k gradients) where x > 0, else 0: args x, dx, g0 .. g(k-1),
 * i[0] k, i[1] floats in each (dense tensors of one descriptor), chunks of
 * 4096 floats summed while they are in the cache. */
enum { RELU_SUM_MAX = 8, RELU_SUM_CHUNK = 4096 };

NB_CLONES static void relu_sum_chunk(const float *restrict x, float *restrict dx, const float *const *g, int k,
                                     int64_t a, int64_t b) {
    const float *restrict g0 = g[0], *restrict g1 = g[1];
#pragma omp simd
    for (int64_t i = a; i < b; i++) dx[i] = g0[i] + g1[i];
    for (int j = 2; j < k; j++) {
        const float *restrict gj = g[j];
#pragma omp simd
        for (int64_t i = a; i < b; i++) dx[i] += gj[i];
    }
#pragma omp simd
    for (int64_t i = a; i < b; i++) dx[i] = x[i] > 0.0f ? dx[i] : 0.0f;
}

static void k_relu_bwd_sum(nasc_net *net, const nb_step *s) {
    const nb_arg *a = &net->args[s->first_arg];
    const float *x = nb_ptr(net, a[0].tref);
    float *dx = nb_ptr(net, a[1].tref);
    const float *g[RELU_SUM_MAX];
    int k = s->i[0];
    for (int j = 0; j < k; j++) g[j] = nb_ptr(net, a[2 + j].tref);
    int64_t n = s->i[1], chunks = (n + RELU_SUM_CHUNK - 1) / RELU_SUM_CHUNK;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && chunks > 1)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * RELU_SUM_CHUNK, hi = lo + RELU_SUM_CHUNK < n ? lo + RELU_SUM_CHUNK : n;
        relu_sum_chunk(x, dx, g, k, lo, hi);
    }
}

bool nb_emit_relu_bwd_sum(nasc_net *net, uint32_t pi) {
    const nasc_prim *p = &M(net)->prims[pi];
    uint32_t r = p->result;
    const nb_value *nv = &net->vals[r];
    if (p->op != NASC_PRIM_RELU || net->ps[pi].skip || net->ps[pi].same_as >= 0 || nv->got < 2 ||
        nv->got > RELU_SUM_MAX || net->opt.mode != NASC_MODE_TRAIN || nv->fwd < 0)
        return false;
    int xs = net->ps[pi].t[0];
    const dnnl_memory_desc_t *md = md_of(net, xs);
    size_t bytes = dnnl_memory_desc_get_size(md);
    /* dense: each buffer holds exactly its tensor (no view into a larger one), so that the
     * kernel's flat loop reads nothing else */
    if (md->offset0 != 0 || bytes % sizeof(float) || bytes / sizeof(float) > INT32_MAX ||
        !dnnl_memory_desc_equal(md, md_of(net, nv->fwd)) || net->bufs[net->trefs[xs].buf].bytes != bytes)
        return false;
    for (int j = 0; j < nv->got; j++) {
        int t = nv->contrib[j];
        if (!dnnl_memory_desc_equal(md_of(net, t), md) || net->bufs[net->trefs[t].buf].bytes != bytes) return false;
    }
    int dx = nb_tensor_new(net, md);
    nb_arg a[2 + RELU_SUM_MAX];
    a[0] = (nb_arg){0, xs};
    a[1] = (nb_arg){1, dx};
    for (int j = 0; j < nv->got; j++) a[2 + j] = (nb_arg){2 + j, nv->contrib[j]};
    int s = nb_step_kernel(net, k_relu_bwd_sum, "relu bwd + grad sum (nasc)", 2 + nv->got, a);
    if (s >= 0) {
        net->steps[s].i[0] = nv->got;
        net->steps[s].i[1] = (int)(bytes / sizeof(float));
    }
    nb_contribute(net, arg(net, p, 0), dx);
    return true;
}

typedef struct pool_geom {
    dnnl_alg_kind_t alg;
    dnnl_dims_t strides, kernel, dil, pl, pr;
} pool_geom;

static void pool_geometry(nasc_net *net, const nasc_prim *p, pool_geom *g) {
    const nasc_prim_attrs *a = &p->a;
    memset(g, 0, sizeof *g);
    if (p->op == NASC_PRIM_GLOBAL_AVG_POOL) {
        const nasc_type *x = vtype(net, arg(net, p, 0));
        g->alg = dnnl_pooling_avg_exclude_padding;
        g->kernel[0] = x->dims[2], g->kernel[1] = x->dims[3];
        g->strides[0] = g->strides[1] = 1;
        return;
    }
    g->alg = p->op == NASC_PRIM_MAX_POOL ? dnnl_pooling_max
             : a->count_include_pad      ? dnnl_pooling_avg_include_padding
                                         : dnnl_pooling_avg_exclude_padding;
    g->strides[0] = a->sh, g->strides[1] = a->sw;
    g->kernel[0] = a->kh, g->kernel[1] = a->kw;
    g->dil[0] = a->dh - 1, g->dil[1] = a->dw - 1; /* oneDNN counts dilation from 0 */
    g->pl[0] = a->pt, g->pl[1] = a->pl;
    g->pr[0] = a->pb, g->pr[1] = a->pr;
}

static nasc_status pool_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    int xs = src_of(net, arg(net, p, 0), false);
    NEED(xs);
    pool_geom g;
    pool_geometry(net, p, &g);
    dnnl_memory_desc_t dst;
    NB_PASS(nb_act_md(net, vtype(net, p->result), &dst));
    dnnl_pooling_v2_desc_t d;
    NB_CHECK(net, dnnl_pooling_v2_forward_desc_init(&d, fwd_prop(net), g.alg, md_of(net, xs), &dst, g.strides, g.kernel,
                                                    g.dil, g.pl, g.pr));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "pooling forward")) return net->status;
    net->ps[pi].pd = pd;
    int y = new_result(net, p, q(pd, dnnl_query_dst_md));
    const dnnl_memory_desc_t *ws = q(pd, dnnl_query_workspace_md);
    int wt = -1;
    if (ws && ws->ndims > 0) wt = nb_tensor_new(net, ws);
    nb_arg a[3] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, wt}};
    nb_step_prim(net, pd, p->op == NASC_PRIM_MAX_POOL ? "maxpool fwd" : "avgpool fwd", 0, wt >= 0 ? 3 : 2, a);
    net->ps[pi].t[0] = xs;
    net->ps[pi].t[1] = wt;
    return net->status;
}

#ifdef NASC_HAVE_DW
/* Average pooling backward by our own kernel (avgpool.h), reading the
 * output gradient where it is: often a slice of a concat's gradient, which
 * oneDNN's jit kernel does not take (it would be copied out first). */
static void k_avgpool_bwd(nasc_net *net, const nb_step *s) {
    const nb_arg *a = net->args + s->first_arg;
    const dnnl_memory_desc_t *g = &net->trefs[a[0].tref].md;
    const float *dy = (const float *)nb_ptr(net, a[0].tref) + g->offset0;
    nasc_status st = nasc_avgpool_bwd_run(s->ptr, dy, g->format_desc.blocking.strides[0], nb_ptr(net, a[1].tref),
                                          NASC_DW_ISA_AUTO);
    assert(st == NASC_OK); /* the shape and layouts were checked when the net was compiled */
    (void)st;
}

/* Emits p's backward with k_avgpool_bwd when it takes p and gradient G (a
 * dense nChw16c tensor or a channel slice of one), AVX-512 only; returns
 * whether it did (failures are in net->status). */
static bool avgpool_bwd_own(nasc_net *net, const nasc_prim *p, int G) {
    const nasc_prim_attrs *at = &p->a;
    if (p->op != NASC_PRIM_AVG_POOL || at->count_include_pad || at->dh != 1 || at->dw != 1 ||
        nasc_dw_isa_best() != NASC_DW_ISA_AVX512)
        return false;
    uint32_t x = arg(net, p, 0);
    const nasc_type *xt = vtype(net, x), *yt = vtype(net, p->result);
    if (xt->rank != 4 || xt->dims[1] > INT32_MAX || xt->dims[2] > INT32_MAX || xt->dims[3] > INT32_MAX) return false;
    nasc_ap_shape sh = {(int)nb_dim0(net, xt), (int)xt->dims[1], (int)xt->dims[2], (int)xt->dims[3], (int)yt->dims[2],
                        (int)yt->dims[3], at->kh, at->kw, at->sh, at->sw, at->pt, at->pl};
    if (!nasc_ap_supported(&sh)) return false;
    const dnnl_memory_desc_t *g = md_of(net, G);
    int64_t image = nb_planes16_image(g), ohw = (int64_t)sh.oh * sh.ow;
    if (image == 0 || g->dims[0] != sh.n || g->dims[1] != sh.c || g->dims[2] != sh.oh || g->dims[3] != sh.ow)
        return false;
    /* oneDNN's jit kernel is as fast on a dense gradient except for 3-wide
     * windows at column stride 1, where ours is about twice as fast */
    bool dense = image == sh.c * ohw && g->offset0 == 0;
    if (dense && !(sh.kw == 3 && sh.sw == 1)) return false;
    dnnl_memory_desc_t dx_md;
    if (nb_act_md(net, xt, &dx_md) || block_of(&dx_md) != 16) return false;
    int dx = nb_tensor_new(net, &dx_md);
    nb_arg a[2] = {{0, G}, {1, dx}};
    if (dx < 0 || step_owning(net, k_avgpool_bwd, "avgpool bwd (nasc)", 2, a, &sh, sizeof sh) < 0) return true;
    nb_contribute(net, x, dx);
    return true;
}
#endif

static nasc_status pool_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
#ifdef NASC_HAVE_DW
    if (avgpool_bwd_own(net, p, G)) return net->status;
#endif
    pool_geom g;
    pool_geometry(net, p, &g);
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    dnnl_pooling_v2_desc_t d;
    NB_CHECK(net, dnnl_pooling_v2_backward_desc_init(&d, g.alg, md_of(net, net->ps[pi].t[0]), md_of(net, G), g.strides,
                                                     g.kernel, g.dil, g.pl, g.pr));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, net->ps[pi].pd, "pooling backward")) return net->status;
    int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
    int wt = net->ps[pi].t[1];
    nb_arg a[3] = {{DNNL_ARG_DIFF_DST, G}, {DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_WORKSPACE, wt}};
    nb_step_prim(net, pd, p->op == NASC_PRIM_MAX_POOL ? "maxpool bwd" : "avgpool bwd", 0, wt >= 0 ? 3 : 2, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    nb_contribute(net, arg(net, p, 0), dx);
    return net->status;
}

static nasc_status softmax_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    int xs = src_of(net, arg(net, p, 0), false);
    NEED(xs);
    dnnl_softmax_desc_t d;
    NB_CHECK(net, dnnl_softmax_forward_desc_init(&d, fwd_prop(net), md_of(net, xs), p->a.axis));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "softmax forward")) return net->status;
    net->ps[pi].pd = pd;
    int y = new_result(net, p, q(pd, dnnl_query_dst_md));
    nb_arg a[2] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DST, y}};
    nb_step_prim(net, pd, "softmax fwd", 0, 2, a);
    return net->status;
}

static nasc_status softmax_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    int y = net->vals[p->result].fwd;
    G = nb_match(net, G, md_of(net, y));
    NEED(G);
    dnnl_softmax_desc_t d;
    NB_CHECK(net, dnnl_softmax_backward_desc_init(&d, md_of(net, G), md_of(net, y), p->a.axis));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, net->ps[pi].pd, "softmax backward")) return net->status;
    int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
    nb_arg a[3] = {{DNNL_ARG_DST, y}, {DNNL_ARG_DIFF_DST, G}, {DNNL_ARG_DIFF_SRC, dx}};
    nb_step_prim(net, pd, "softmax bwd", 0, 3, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    nb_contribute(net, arg(net, p, 0), dx);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Shift (the odd path of a factorized reduction)                   */
/* ---------------------------------------------------------------- */

/* y[i, j] = x[i + dy, j + dx] (zero outside) per channel plane; V = 8 for
 * nChw8c (8 channels per pixel), 16 for nChw16c, 1 for nchw. The backward
 * pass is the same shift with the offsets negated. */
static void shift_run(const float *x, float *y, int64_t planes, int h, int w, int v, int dy, int dx) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w * v;
        float *yp = y + p * h * w * v;
        for (int i = 0; i < h; i++) {
            int si = i + dy;
            float *row = yp + (int64_t)i * w * v;
            if (si < 0 || si >= h) {
                memset(row, 0, (size_t)w * v * sizeof *row);
                continue;
            }
            for (int j = 0; j < w; j++) {
                int sj = j + dx;
                if (sj < 0 || sj >= w)
                    memset(row + (int64_t)j * v, 0, (size_t)v * sizeof *row);
                else
                    memcpy(row + (int64_t)j * v, xp + ((int64_t)si * w + sj) * v, (size_t)v * sizeof *row);
            }
        }
    }
}

static void k_shift(nasc_net *net, const nb_step *s) {
    shift_run(nb_ptr(net, net->args[s->first_arg].tref), nb_ptr(net, net->args[s->first_arg + 1].tref), s->i[0], s->i[1],
              s->i[2], s->i[3], s->i[4], s->i[5]);
}

static int shift_step(nasc_net *net, int from, int to, const nasc_type *t, int dy, int dx) {
    const dnnl_memory_desc_t *md = md_of(net, from);
    int v = md->format_desc.blocking.inner_nblks ? (int)md->format_desc.blocking.inner_blks[0] : 1;
    int64_t cpad = md->padded_dims[1];
    nb_arg a[2] = {{0, from}, {1, to}};
    int s = nb_step_kernel(net, k_shift, "shift", 2, a);
    if (s >= 0) {
        int *i = net->steps[s].i;
        i[0] = (int)(nb_dim0(net, t) * cpad / v), i[1] = (int)t->dims[2], i[2] = (int)t->dims[3];
        i[3] = v, i[4] = dy, i[5] = dx;
    }
    return s;
}

static nasc_status shift_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    int xs = src_of(net, arg(net, p, 0), false);
    NEED(xs);
    int y = new_result(net, p, md_of(net, xs));
    net->trefs[y].md = *md_of(net, xs);
    shift_step(net, xs, y, vtype(net, p->result), p->a.dy, p->a.dx);
    return net->status;
}

static nasc_status shift_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    (void)pi;
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    int dx = nb_tensor_new(net, md_of(net, G));
    shift_step(net, G, dx, vtype(net, p->result), -p->a.dy, -p->a.dx);
    nb_contribute(net, arg(net, p, 0), dx);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Add, mul, concat                                                 */
/* ---------------------------------------------------------------- */

/* A gradient g for operand v: parameters go to the net's gradient arrays
 * (plain: the parameter's layout seen with g's rank, NULL its own), other
 * values get a contribution. fresh says g is written by a step of its own
 * op; otherwise (a gradient shared with other operands, or a view of one)
 * a parameter gets a copy, since nb_param_grad may move g's buffer into the
 * gradient array. */
static void give_grad(nasc_net *net, uint32_t v, int g, const dnnl_memory_desc_t *plain, bool fresh) {
    if (g < 0 || !net->vals[v].needs_grad) return;
    if (M(net)->values[v].kind != NASC_VAL_PARAM) {
        nb_contribute(net, v, g);
        return;
    }
    if (!fresh) {
        dnnl_memory_desc_t md = net->trefs[g].md;
        g = nb_reorder(net, g, &md, -1);
    }
    nb_param_grad(net, v, g, plain);
}

/* Broadcasting (add, mul): operand 1 has the result's shape; any other
 * operand has it too, or has a lower rank and/or dims of 1 and broadcasts
 * (oneDNN binary broadcasts its second source). */

NB_MUST_USE static nasc_status plain_md_dims(nasc_net *net, int rank, const dnnl_dims_t d, dnnl_memory_desc_t *md) {
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd};
    return NB_TRY(net, dnnl_memory_desc_init_by_tag(md, rank, d, dnnl_f32, tags[rank]));
}

/* The dims of value v aligned on the last dim of a rank-r result: leading 1s. */
static void padded_dims(nasc_net *net, uint32_t v, int r, dnnl_dims_t d) {
    const nasc_type *t = vtype(net, v);
    for (int i = 0; i < r; i++) d[i] = 1;
    for (int i = 0; i < t->rank; i++) d[r - t->rank + i] = t->dims[i] == NASC_BATCH ? net->opt.batch : t->dims[i];
}

/* How operand v of a broadcasting op relates to the op's result. */
typedef enum bcast_kind {
    BC_SAME,   /* same type */
    BC_ALIGN,  /* lower rank, but the same dims once aligned: a view */
    BC_SPREAD, /* some dim of 1 spreads over the result's */
} bcast_kind;

static bcast_kind bcast_of(nasc_net *net, uint32_t v, const nasc_type *y) {
    dnnl_dims_t d;
    padded_dims(net, v, y->rank, d);
    for (int i = 0; i < y->rank; i++)
        if (d[i] != (y->dims[i] == NASC_BATCH ? net->opt.batch : y->dims[i])) return BC_SPREAD;
    return vtype(net, v)->rank == y->rank ? BC_SAME : BC_ALIGN;
}

/* Plain tensor t of value v seen with the dims padded to rank r. */
static int padded_view(nasc_net *net, uint32_t v, int t, int r) {
    dnnl_memory_desc_t own, md;
    if (nb_plain_md(net, vtype(net, v), &own)) return -1;
    t = nb_match(net, t, &own);
    if (t < 0) return -1;
    dnnl_dims_t d;
    padded_dims(net, v, r, d);
    if (plain_md_dims(net, r, d, &md)) return -1;
    return nb_tref_new(net, net->trefs[t].buf, &md);
}

/* Operand v as a source of a broadcasting op with a rank-r result. */
static int bcast_src(nasc_net *net, uint32_t v, const nasc_type *y) {
    if (bcast_of(net, v, y) == BC_SAME) return src_of(net, v, false);
    return padded_view(net, v, src_of(net, v, true), y->rank);
}

/* Hand operand v its gradient from a gradient G of the result's shape:
 * G itself, a plain view of it (lower rank), or its sum over the spread
 * dims. fresh as for give_grad. */
/* dst[k] = sum over rows r of src[r * K + k]; i = {rows, K}. */
static void k_sum_rows(nasc_net *net, const nb_step *s) {
    const float *src = nb_ptr(net, net->args[s->first_arg].tref);
    float *dst = nb_ptr(net, net->args[s->first_arg + 1].tref);
    int64_t rows = s->i[0], k = s->i[1];
    memset(dst, 0, (size_t)k * sizeof *dst);
    for (int64_t r = 0; r < rows; r++) {
        const float *row = src + r * k;
        for (int64_t j = 0; j < k; j++) dst[j] += row[j];
    }
}

/* The rows a gradient G of y's shape sums over when the operand's padded
 * dims d are 1s and then y's own last dims, and G is plain row-major (a
 * bias added to (N, T, K) logits); 0 otherwise. */
static int64_t leading_rows(nasc_net *net, int G, const nasc_type *y, const dnnl_dims_t d) {
    dnnl_memory_desc_t plain;
    if (nb_plain_md(net, y, &plain) || !dnnl_memory_desc_equal(&plain, md_of(net, G))) return 0;
    int i = 0;
    while (i < y->rank && d[i] == 1) i++;
    int64_t rows = 1;
    for (int j = 0; j < i; j++) rows *= y->dims[j] == NASC_BATCH ? net->opt.batch : y->dims[j];
    for (int j = i; j < y->rank; j++)
        if (d[j] != (y->dims[j] == NASC_BATCH ? net->opt.batch : y->dims[j])) return 0;
    return i > 0 && rows <= INT32_MAX ? rows : 0;
}

static void bcast_grad(nasc_net *net, uint32_t v, int G, bool fresh, const nasc_type *y) {
    bcast_kind k = bcast_of(net, v, y);
    if (G < 0 || !net->vals[v].needs_grad) return;
    if (k == BC_SAME) {
        give_grad(net, v, G, NULL, fresh);
        return;
    }
    dnnl_memory_desc_t own, pad;
    if (nb_plain_md(net, vtype(net, v), &own)) return;
    dnnl_dims_t d;
    padded_dims(net, v, y->rank, d);
    if (plain_md_dims(net, y->rank, d, &pad)) return;
    if (k == BC_SPREAD && leading_rows(net, G, y, d) > 0) {
        /* a vector over the last dims of a plain gradient (a bias): rows summed */
        int r = nb_tensor_new(net, &pad);
        nb_arg a[2] = {{0, G}, {1, r}};
        int s = nb_step_kernel(net, k_sum_rows, "broadcast grad sum (rows)", 2, a);
        if (s >= 0) {
            int64_t kept = 1;
            for (int i = 0; i < y->rank; i++) kept *= d[i];
            net->steps[s].i[0] = (int)leading_rows(net, G, y, d);
            net->steps[s].i[1] = (int)kept;
        }
        G = r;
        fresh = true;
    } else if (k == BC_SPREAD) {
        dnnl_memory_desc_t src = *md_of(net, G);
        dnnl_reduction_desc_t rd;
        if (NB_TRY(net, dnnl_reduction_desc_init(&rd, dnnl_reduction_sum, &src, &pad, 0.0f, 0.0f))) return;
        dnnl_primitive_desc_t pd;
        if (pd_create(net, &pd, &rd, NULL, "reduction (broadcast gradient)")) return;
        int r = nb_tensor_new(net, &pad);
        nb_arg a[2] = {{DNNL_ARG_SRC, G}, {DNNL_ARG_DST, r}};
        nb_step_prim(net, pd, "broadcast grad sum", 0, 2, a);
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
        G = r;
        fresh = true;
    } else {
        G = nb_match(net, G, &pad); /* aligned: the same elements in plain order */
    }
    if (G < 0) return;
    if (M(net)->values[v].kind == NASC_VAL_PARAM)
        give_grad(net, v, G, &pad, fresh);
    else
        nb_contribute(net, v, nb_tref_new(net, net->trefs[G].buf, &own));
}

/* The operands of an n-ary op (add, concat) as oneDNN sources: their
 * descriptors and DNNL_ARG_MULTIPLE_SRC arguments. For add, operands that
 * spread are left out (n counts the ones gathered). */
static nasc_status gather_srcs(nasc_net *net, const nasc_prim *p, dnnl_memory_desc_t *srcs, nb_arg *a, uint32_t *n) {
    if (p->n_args > 64)
        return nasc_error(net->ctx, NASC_EINPUT, M(net)->source, p->loc, "%s of more than 64 operands",
                          nasc_prim_op_info_get(p->op)->name);
    const nasc_type *y = vtype(net, p->result);
    *n = 0;
    for (uint32_t j = 0; j < p->n_args; j++) {
        uint32_t v = arg(net, p, j);
        int t;
        if (p->op == NASC_PRIM_ADD) {
            if (bcast_of(net, v, y) == BC_SPREAD) continue;
            t = bcast_src(net, v, y);
        } else {
            t = src_of(net, v, false);
        }
        if (t < 0) return net->status ? net->status : NASC_EINTERNAL;
        srcs[*n] = *md_of(net, t);
        a[*n] = (nb_arg){DNNL_ARG_MULTIPLE_SRC + (int)*n, t};
        (*n)++;
    }
    return NASC_OK;
}

static int binary_step(nasc_net *net, dnnl_alg_kind_t alg, int a0, int a1, const dnnl_memory_desc_t *dst_md, int dst,
                       const char *what) {
    if (a0 < 0 || a1 < 0) return -1;
    dnnl_binary_desc_t d;
    if (NB_TRY(net, dnnl_binary_desc_init(&d, alg, md_of(net, a0), md_of(net, a1), dst_md))) return -1;
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL,
                  alg == dnnl_binary_add ? "binary add" : alg == dnnl_binary_sub ? "binary sub" : "binary mul"))
        return -1;
    if (dst < 0) dst = nb_tensor_new(net, q(pd, dnnl_query_dst_md));
    nb_arg a[3] = {{DNNL_ARG_SRC_0, a0}, {DNNL_ARG_SRC_1, a1}, {DNNL_ARG_DST, dst}};
    int s = nb_step_prim(net, pd, what, 0, 3, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return s < 0 ? -1 : dst;
}

/* Cloned functions stay static: clang 14 emits a cloned function's
 * dispatcher only in the file that defines it, so other files call the
 * plain nb_sum_runs below. */
NB_CLONES static void sum_runs(float *restrict y, const float *const *x, int n, int64_t len, bool relu) {
    const float *restrict x0 = x[0];
    if (n == 1) {
        if (!relu) {
            memcpy(y, x0, (size_t)len * sizeof *y);
            return;
        }
#pragma omp simd
        for (int64_t i = 0; i < len; i++) y[i] = x0[i] < 0.0f ? 0.0f : x0[i];
        return;
    } else {
        const float *restrict x1 = x[1];
        if (relu && n == 2) {
#pragma omp simd
            for (int64_t i = 0; i < len; i++) {
                float v = x0[i] + x1[i];
                y[i] = v < 0.0f ? 0.0f : v;
            }
            return;
        }
#pragma omp simd
        for (int64_t i = 0; i < len; i++) y[i] = x0[i] + x1[i];
        for (int j = 2; j < n; j++) {
            const float *restrict xj = x[j];
#pragma omp simd
            for (int64_t i = 0; i < len; i++) y[i] += xj[i];
        }
    }
    if (relu) {
#pragma omp simd
        for (int64_t i = 0; i < len; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
    }
}

void nb_sum_runs(float *restrict y, const float *const *x, int n, int64_t len, bool relu) {
    sum_runs(y, x, n, len, relu);
}

/* An add written into its place in a concat's result: args the n dense
 * operands, then that place (a view); i[0] n, i[1] images, i[2] floats per
 * image of an operand (one run, in the place too), i[3] floats per image
 * of the concat's result, i[4] a relu applied (the concat's relu). */
enum { ADD_CHUNK = 16384 }; /* floats: pieces for threads when the images are few */

static void k_add_into(nasc_net *net, const nb_step *s) {
    int n = s->i[0];
    int64_t images = s->i[1], run = s->i[2], stride = s->i[3], chunks = (run + ADD_CHUNK - 1) / ADD_CHUNK;
    const nb_arg *a = &net->args[s->first_arg];
    float *dst = (float *)nb_ptr(net, a[n].tref) + net->trefs[a[n].tref].md.offset0;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && images * chunks > 1)
    for (int64_t k = 0; k < images * chunks; k++) {
        int64_t b = k / chunks, lo = k % chunks * ADD_CHUNK, len = run - lo < ADD_CHUNK ? run - lo : ADD_CHUNK;
        const float *x[64];
        for (int j = 0; j < n; j++) x[j] = (const float *)nb_ptr(net, a[j].tref) + b * run + lo;
        sum_runs(dst + b * stride + lo, x, n, len, s->i[4]);
    }
}

/* Whether concat c can hold operands in place: a 4-D result along its
 * channels in a layout concat_copy copies (every operand a whole number of
 * channel blocks, none a net input); its tensor's descriptor in *md. */
bool nb_concat_in_place(nasc_net *net, const nasc_prim *c, dnnl_memory_desc_t *md) {
    if (c->op != NASC_PRIM_CONCAT || c->a.axis != 1 || vtype(net, c->result)->rank != 4) return false;
    if (nb_act_md(net, vtype(net, c->result), md)) return false;
    int blk = block_of(md);
    if (blk == 0) return false;
    for (uint32_t j = 0; j < c->n_args; j++) {
        uint32_t v = arg(net, c, j);
        if (M(net)->values[v].kind == NASC_VAL_INPUT || vtype(net, v)->dims[1] % blk) return false;
    }
    return true;
}

/* The add p written straight into its place in the concat that is its
 * result's only use (plan_concat), when the layout allows: the n operands
 * of the result's shape, dense. Returns the place's tref, else -1 (the add
 * runs as a sum of its own). */
static int add_into_concat(nasc_net *net, const nasc_prim *p, const dnnl_memory_desc_t *srcs, nb_arg *a, uint32_t n) {
    nb_value *nv = &net->vals[p->result];
    if (nv->concat < 0 || n != p->n_args) return -1;
    const nasc_type *yt = vtype(net, p->result);
    dnnl_memory_desc_t cmd, want;
    if (!nb_concat_in_place(net, &M(net)->prims[nv->concat], &cmd) || nb_act_md(net, yt, &want)) return -1;
    for (uint32_t j = 0; j < n; j++)
        if (!dnnl_memory_desc_equal(&srcs[j], &want)) return -1;
    if (cmd.format_desc.blocking.strides[0] > INT32_MAX || want.dims[0] > INT32_MAX) return -1; /* the step's int fields */
    int *buf = &net->ps[nv->concat].concat_buf;
    if (*buf < 0) *buf = nb_tensor_new(net, &cmd);
    if (*buf < 0) return -1;
    dnnl_dims_t dims = {0}, offs = {0};
    for (int k = 0; k < 4; k++) dims[k] = want.dims[k];
    offs[1] = nv->concat_off;
    dnnl_memory_desc_t sub;
    if (NB_TRY(net, dnnl_memory_desc_init_submemory(&sub, md_of(net, *buf), dims, offs))) return -1;
    int dst = nb_tref_new(net, net->trefs[*buf].buf, &sub);
    a[n] = (nb_arg){(int)n, dst};
    int s = nb_step_kernel(net, k_add_into, "add fwd (nasc, into concat)", (int)n + 1, a);
    if (s < 0) return -1;
    nb_step *st = &net->steps[s];
    st->i[0] = (int)n;
    st->i[1] = (int)want.dims[0];
    st->i[2] = (int)(want.dims[1] * want.dims[2] * want.dims[3]);
    st->i[3] = (int)cmd.format_desc.blocking.strides[0];
    st->i[4] = net->ps[nv->concat].concat_relu >= 0;
    nv->fwd = dst;
    nv->fused = st->i[4]; /* its place holds the relu of it */
    return dst;
}

/* Operands of the result's shape go through one sum (or are written into
 * the concat that uses the result); each spreading operand is then added
 * by a binary add. */
static nasc_status add_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    dnnl_memory_desc_t srcs[64], dst;
    nb_arg a[65];
    uint32_t n;
    nasc_status st = gather_srcs(net, p, srcs, a, &n);
    if (st) return st;
    if (add_into_concat(net, p, srcs, a, n) >= 0) return NASC_OK;
    if (net->status) return net->status;
    const nasc_type *yt = vtype(net, p->result);
    bool spread = n < p->n_args;
    int acc;
    if (n == 1 && spread) {
        acc = a[0].tref;
    } else {
        NB_PASS(nb_act_md(net, yt, &dst));
        float scales[64];
        for (uint32_t j = 0; j < n; j++) scales[j] = 1;
        dnnl_primitive_desc_t pd;
        NB_CHECK(net, dnnl_sum_primitive_desc_create(&pd, &dst, (int)n, scales, srcs, nb_attr(net), net->engine));
        acc = nb_tensor_new(net, &dst);
        a[n] = (nb_arg){DNNL_ARG_DST, acc};
        nb_step_prim(net, pd, "add fwd", 0, (int)n + 1, a);
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    }
    for (uint32_t j = 1; j < p->n_args && acc >= 0; j++) {
        uint32_t v = arg(net, p, j);
        if (bcast_of(net, v, yt) != BC_SPREAD) continue;
        dnnl_memory_desc_t md = *md_of(net, acc);
        acc = binary_step(net, dnnl_binary_add, acc, bcast_src(net, v, yt), &md, -1, "add fwd (broadcast)");
    }
    if (acc >= 0) net->vals[p->result].fwd = acc;
    return net->status;
}

static nasc_status add_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    (void)pi;
    /* every operand of the result's shape receives the gradient itself */
    const nasc_type *yt = vtype(net, p->result);
    for (uint32_t j = 0; j < p->n_args; j++) bcast_grad(net, arg(net, p, j), G, false, yt);
    return net->status;
}

/* Floats per image when every image of md is one contiguous run (the batch
 * dim outermost and not blocked: nchw, nChw8c, nChw16c), else 0. */
static int64_t image_run(const dnnl_memory_desc_t *md) {
    if (md->format_kind != dnnl_blocked || md->ndims < 2) return 0;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    for (int i = 0; i < b->inner_nblks; i++)
        if (b->inner_idxs[i] == 0) return 0;
    int64_t total = (int64_t)(dnnl_memory_desc_get_size(md) / sizeof(float));
    return b->strides[0] * md->dims[0] == total ? b->strides[0] : 0;
}

/* mul(x, m) with m of shape (N, 1, 1, 1) taking no gradient (a drop-path
 * mask): each image of x scaled by its own factor. */
static bool image_scale(nasc_net *net, const nasc_prim *p) {
    uint32_t v1 = arg(net, p, 1);
    const nasc_type *t = vtype(net, v1), *y = vtype(net, p->result);
    return t->rank == 4 && y->rank == 4 && t->dims[0] == NASC_BATCH && y->dims[0] == NASC_BATCH && t->dims[1] == 1 &&
           t->dims[2] == 1 && t->dims[3] == 1 && !net->vals[v1].needs_grad;
}

/* y = x * m[image]: s->i[0] images of s->i[1] floats each. */
static void k_scale_images(nasc_net *net, const nb_step *s) {
    const float *x = nb_ptr(net, net->args[s->first_arg].tref);
    const float *m = nb_ptr(net, net->args[s->first_arg + 1].tref);
    float *y = nb_ptr(net, net->args[s->first_arg + 2].tref);
    int64_t n = s->i[0], run = s->i[1];
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; b++) {
        const float f = m[b];
        const float *xb = x + b * run;
        float *yb = y + b * run;
        for (int64_t j = 0; j < run; j++) yb[j] = xb[j] * f;
    }
}

/* The kernel above from x (a dense tensor of whole-image runs) and the
 * plain mask m into a new tensor of x's layout; -1 when x is not laid out
 * in whole-image runs (or on failure). */
static int scale_images(nasc_net *net, int x, int m, const char *what) {
    int64_t run = image_run(md_of(net, x));
    if (run <= 0 || run > INT32_MAX) return -1;
    int y = nb_tensor_new(net, md_of(net, x));
    nb_arg a[3] = {{0, x}, {1, m}, {2, y}};
    int s = nb_step_kernel(net, k_scale_images, what, 3, a);
    if (s < 0) return -1;
    net->steps[s].i[0] = (int)md_of(net, x)->dims[0];
    net->steps[s].i[1] = (int)run;
    return y;
}

/* The operands of mul or sub as binary sources: operand 0 in its own
 * layout, operand 1 in the same one or broadcasting. */
static nasc_status binary_srcs(nasc_net *net, const nasc_prim *p, int *a0, int *a1) {
    const nasc_type *yt = vtype(net, p->result);
    uint32_t v1 = arg(net, p, 1);
    *a0 = src_of(net, arg(net, p, 0), false);
    *a1 = bcast_src(net, v1, yt);
    NEED(*a0);
    NEED(*a1);
    if (bcast_of(net, v1, yt) != BC_SPREAD) *a1 = nb_match(net, *a1, md_of(net, *a0));
    NEED(*a1);
    return NASC_OK;
}

static nasc_status mul_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    if (image_scale(net, p)) {
        int x = src_of(net, arg(net, p, 0), false), m = src_of(net, arg(net, p, 1), true);
        NEED(x);
        NEED(m);
        if (image_run(md_of(net, x)) > 0) {
            net->ps[pi].t[0] = x;
            net->ps[pi].t[1] = m;
            int y = scale_images(net, x, m, "mul by image (drop-path) fwd");
            NEED(y);
            net->vals[p->result].fwd = y;
            return net->status;
        }
    }
    int a0, a1;
    NB_PASS(binary_srcs(net, p, &a0, &a1));
    net->ps[pi].t[0] = a0;
    net->ps[pi].t[1] = a1;
    int y = new_result(net, p, md_of(net, a0));
    binary_step(net, dnnl_binary_mul, a0, a1, md_of(net, a0), y, "mul fwd");
    return net->status;
}

static nasc_status mul_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    int a0 = net->ps[pi].t[0], a1 = net->ps[pi].t[1];
    uint32_t v0 = arg(net, p, 0), v1 = arg(net, p, 1);
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    if (G < 0) return net->status;
    if (image_scale(net, p) && image_run(md_of(net, G)) > 0 && md_of(net, a1)->ndims == 4 &&
        md_of(net, a1)->dims[1] == 1) {
        /* d/dx (x * m) = G * m; the mask takes no gradient */
        give_grad(net, v0, scale_images(net, G, a1, "mul by image (drop-path) bwd"), NULL, true);
        return net->status;
    }
    dnnl_memory_desc_t gmd = *md_of(net, G);
    if (net->vals[v0].needs_grad) give_grad(net, v0, binary_step(net, dnnl_binary_mul, G, a1, &gmd, -1, "mul bwd"), NULL, true);
    if (net->vals[v1].needs_grad)
        bcast_grad(net, v1, binary_step(net, dnnl_binary_mul, G, a0, &gmd, -1, "mul bwd"), true, vtype(net, p->result));
    return net->status;
}

/* alpha * t into a new tensor of t's layout (an eltwise linear forward);
 * -1 on failure. */
static int scaled_copy(nasc_net *net, int t, float alpha, const char *what) {
    if (t < 0) return -1;
    dnnl_eltwise_desc_t d;
    if (NB_TRY(net, dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, dnnl_eltwise_linear, md_of(net, t), alpha, 0)))
        return -1;
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, what)) return -1;
    int y = nb_tensor_new(net, q(pd, dnnl_query_dst_md));
    nb_arg a[2] = {{DNNL_ARG_SRC, t}, {DNNL_ARG_DST, y}};
    int s = nb_step_prim(net, pd, what, 0, 2, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return s < 0 ? -1 : y;
}

/* a - b: a binary sub, b broadcasting as in mul. */
static nasc_status sub_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    int a0, a1;
    NB_PASS(binary_srcs(net, p, &a0, &a1));
    int y = new_result(net, p, md_of(net, a0));
    binary_step(net, dnnl_binary_sub, a0, a1, md_of(net, a0), y, "sub fwd");
    return net->status;
}

static nasc_status sub_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    (void)pi;
    uint32_t v0 = arg(net, p, 0), v1 = arg(net, p, 1);
    const nasc_type *yt = vtype(net, p->result);
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    if (G < 0) return net->status;
    bcast_grad(net, v0, G, false, yt);
    if (net->vals[v1].needs_grad) bcast_grad(net, v1, scaled_copy(net, G, -1.0f, "sub bwd"), true, yt);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Embedding                                                        */
/* ---------------------------------------------------------------- */

/* The token number at ids[n, index] as a row of a table of v rows, -1
 * when it is not one (a negative, fractional past float's reach, NaN or
 * too large id reads and writes nothing). */
static int64_t token_row(const float *ids, int64_t n, int t, int index, int64_t v) {
    float f = ids[n * t + index];
    return f >= 0 && f < (float)v ? (int64_t)f : -1;
}

/* y[n, :] = table[ids[n, index], :]; i = {N, T, index, V, E}. */
static void k_embed_fwd(nasc_net *net, const nb_step *s) {
    const float *ids = nb_ptr(net, net->args[s->first_arg].tref);
    const float *table = nb_ptr(net, net->args[s->first_arg + 1].tref);
    float *y = nb_ptr(net, net->args[s->first_arg + 2].tref);
    int64_t n = s->i[0], v = s->i[3], e = s->i[4];
    for (int64_t b = 0; b < n; b++) {
        int64_t r = token_row(ids, b, s->i[1], s->i[2], v);
        if (r < 0)
            memset(y + b * e, 0, (size_t)e * sizeof *y);
        else
            memcpy(y + b * e, table + r * e, (size_t)e * sizeof *y);
    }
}

/* dtable = 0, then dtable[ids[n, index], :] += G[n, :]. */
static void k_embed_bwd(nasc_net *net, const nb_step *s) {
    const float *ids = nb_ptr(net, net->args[s->first_arg].tref);
    const float *g = nb_ptr(net, net->args[s->first_arg + 1].tref);
    float *dt = nb_ptr(net, net->args[s->first_arg + 2].tref);
    int64_t n = s->i[0], v = s->i[3], e = s->i[4];
    memset(dt, 0, (size_t)(v * e) * sizeof *dt);
    for (int64_t b = 0; b < n; b++) {
        int64_t r = token_row(ids, b, s->i[1], s->i[2], v);
        if (r < 0) continue;
        float *row = dt + r * e;
        const float *gb = g + b * e;
        for (int64_t k = 0; k < e; k++) row[k] += gb[k];
    }
}

static void k_zero(nasc_net *net, const nb_step *s) {
    const nb_arg *a = &net->args[s->first_arg];
    memset(nb_ptr(net, a->tref), 0, dnnl_memory_desc_get_size(&net->trefs[a->tref].md));
}

static void embed_geometry(nasc_net *net, const nasc_prim *p, int *i) {
    const nasc_type *ids = vtype(net, arg(net, p, 0)), *tab = vtype(net, arg(net, p, 1));
    i[0] = (int)nb_dim0(net, ids), i[1] = (int)ids->dims[1], i[2] = p->a.index;
    i[3] = (int)tab->dims[0], i[4] = (int)tab->dims[1];
}

static nasc_status embed_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    int ids = src_of(net, arg(net, p, 0), true), tab = src_of(net, arg(net, p, 1), true);
    NEED(ids);
    NEED(tab);
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, vtype(net, arg(net, p, 0)), &md));
    ids = nb_match(net, ids, &md);
    NEED(ids);
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &md));
    int y = new_result(net, p, &md);
    nb_arg a[3] = {{0, ids}, {1, tab}, {2, y}};
    int s = nb_step_kernel(net, k_embed_fwd, "embedding fwd", 3, a);
    if (s >= 0) embed_geometry(net, p, net->steps[s].i);
    net->ps[pi].t[0] = ids;
    return net->status;
}

static nasc_status embed_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    uint32_t vi = arg(net, p, 0), vt = arg(net, p, 1);
    if (net->vals[vi].needs_grad) { /* token numbers have no gradient: zeros */
        dnnl_memory_desc_t md;
        NB_PASS(nb_plain_md(net, vtype(net, vi), &md));
        int z = nb_tensor_new(net, &md);
        nb_arg a[1] = {{0, z}};
        if (z >= 0 && nb_step_kernel(net, k_zero, "embedding bwd (ids)", 1, a) >= 0) give_grad(net, vi, z, NULL, true);
    }
    if (!net->vals[vt].needs_grad) return net->status;
    dnnl_memory_desc_t gmd, tmd;
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &gmd));
    NB_PASS(nb_plain_md(net, vtype(net, vt), &tmd));
    G = nb_match(net, G, &gmd);
    NEED(G);
    int dt = nb_tensor_new(net, &tmd);
    NEED(dt);
    nb_arg a[3] = {{0, net->ps[pi].t[0]}, {1, G}, {2, dt}};
    int s = nb_step_kernel(net, k_embed_bwd, "embedding bwd", 3, a);
    if (s >= 0) embed_geometry(net, p, net->steps[s].i);
    give_grad(net, vt, dt, NULL, true);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Normalize: x / ||x||_F                                            */
/* ---------------------------------------------------------------- */

/* The Frobenius norm of n floats, in double. */
static double frobenius(const float *x, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    return sqrt(ss);
}

/* y = x / ||x|| (zeros for a zero x); i[0] elements, plain. */
static void k_norm_fwd(nasc_net *net, const nb_step *s) {
    const float *x = nb_ptr(net, net->args[s->first_arg].tref);
    float *y = nb_ptr(net, net->args[s->first_arg + 1].tref);
    int64_t n = (int64_t)s->i[0];
    double r = frobenius(x, n), inv = r > 0 ? 1.0 / r : 0.0;
    for (int64_t i = 0; i < n; i++) y[i] = (float)(x[i] * inv);
}

/* dx = (G - y (y . G)) / ||x|| with y = x / ||x||. */
static void k_norm_bwd(nasc_net *net, const nb_step *s) {
    const float *x = nb_ptr(net, net->args[s->first_arg].tref);
    const float *g = nb_ptr(net, net->args[s->first_arg + 1].tref);
    float *dx = nb_ptr(net, net->args[s->first_arg + 2].tref);
    int64_t n = (int64_t)s->i[0];
    double r = frobenius(x, n), yg = 0;
    if (!(r > 0)) {
        memset(dx, 0, (size_t)n * sizeof *dx);
        return;
    }
    for (int64_t i = 0; i < n; i++) yg += (double)x[i] / r * (double)g[i];
    for (int64_t i = 0; i < n; i++) dx[i] = (float)(((double)g[i] - (double)x[i] / r * yg) / r);
}

static nasc_status norm_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    if (nasc_type_numel(vtype(net, p->result)) > INT32_MAX)
        return nasc_error(net->ctx, NASC_EINPUT, M(net)->source, p->loc, "normalize of more than 2^31 elements");
    int x = src_of(net, arg(net, p, 0), true);
    NEED(x);
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &md));
    x = nb_match(net, x, &md);
    NEED(x);
    int y = new_result(net, p, &md);
    NEED(y);
    nb_arg a[2] = {{0, x}, {1, y}};
    int s = nb_step_kernel(net, k_norm_fwd, "normalize fwd", 2, a);
    if (s >= 0) net->steps[s].i[0] = (int)nasc_type_numel(vtype(net, p->result));
    net->ps[pi].t[0] = x;
    return net->status;
}

static nasc_status norm_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    uint32_t v = arg(net, p, 0);
    if (!net->vals[v].needs_grad) return net->status;
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &md));
    G = nb_match(net, G, &md);
    NEED(G);
    int dx = nb_tensor_new(net, &md);
    NEED(dx);
    nb_arg a[3] = {{0, net->ps[pi].t[0]}, {1, G}, {2, dx}};
    int s = nb_step_kernel(net, k_norm_bwd, "normalize bwd", 3, a);
    if (s >= 0) net->steps[s].i[0] = (int)nasc_type_numel(vtype(net, p->result));
    give_grad(net, v, dx, NULL, true);
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Slice: a box of a tensor                                          */
/* ---------------------------------------------------------------- */

/* The box's geometry, kept by the step (s->ptr): the operand's and the
 * result's dims (rank 4, leading 1s) and the box's first index. */
typedef struct slice_geom {
    int64_t xd[4], yd[4], begin[4];
} slice_geom;

/* Visit the box: for each of its rows (the last dim), the offset of the
 * row in the operand and in the result. */
#define SLICE_ROWS(g, XO, YO, BODY)                                                                                 \
    for (int64_t i0 = 0, YO = 0; i0 < (g)->yd[0]; i0++)                                                            \
        for (int64_t i1 = 0; i1 < (g)->yd[1]; i1++)                                                                 \
            for (int64_t i2 = 0; i2 < (g)->yd[2]; i2++, YO += (g)->yd[3]) {                                         \
                int64_t XO = (((i0 + (g)->begin[0]) * (g)->xd[1] + i1 + (g)->begin[1]) * (g)->xd[2] + i2 +         \
                              (g)->begin[2]) * (g)->xd[3] + (g)->begin[3];                                           \
                BODY;                                                                                               \
            }

static void k_slice_fwd(nasc_net *net, const nb_step *s) {
    const float *x = nb_ptr(net, net->args[s->first_arg].tref);
    float *y = nb_ptr(net, net->args[s->first_arg + 1].tref);
    const slice_geom *g = s->ptr;
    SLICE_ROWS(g, xo, yo, memcpy(y + yo, x + xo, (size_t)g->yd[3] * sizeof *y))
}

/* dx = 0 outside the box, G inside. */
static void k_slice_bwd(nasc_net *net, const nb_step *s) {
    const float *g_ = nb_ptr(net, net->args[s->first_arg].tref);
    float *dx = nb_ptr(net, net->args[s->first_arg + 1].tref);
    const slice_geom *g = s->ptr;
    memset(dx, 0, (size_t)(g->xd[0] * g->xd[1] * g->xd[2] * g->xd[3]) * sizeof *dx);
    SLICE_ROWS(g, xo, yo, memcpy(dx + xo, g_ + yo, (size_t)g->yd[3] * sizeof *dx))
}

/* A step of kernel k on a (src, dst) pair with its own slice geometry. */
static nasc_status slice_step(nasc_net *net, const nasc_prim *p, void (*k)(nasc_net *, const nb_step *),
                              const char *what, int src, int dst) {
    slice_geom *g = nasc_alloc(net->ctx, sizeof *g);
    if (!g) return NASC_ENOMEM;
    const nasc_type *xt = vtype(net, arg(net, p, 0));
    int lead = 4 - xt->rank;
    for (int d = 0; d < 4; d++) {
        int k_ = d - lead;
        g->xd[d] = k_ < 0 ? 1 : xt->dims[k_];
        g->yd[d] = k_ < 0 ? 1 : p->a.shape[k_];
        g->begin[d] = k_ < 0 ? 0 : p->a.begin[k_];
    }
    nb_arg a[2] = {{0, src}, {1, dst}};
    int s = nb_step_kernel(net, k, what, 2, a);
    if (s < 0) {
        nasc_free(net->ctx, g);
        return net->status;
    }
    net->steps[s].ptr = g;
    net->steps[s].i[7] = 1; /* the step owns ptr */
    return NASC_OK;
}

static nasc_status slice_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    int x = src_of(net, arg(net, p, 0), true);
    NEED(x);
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, vtype(net, arg(net, p, 0)), &md));
    x = nb_match(net, x, &md);
    NEED(x);
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &md));
    int y = new_result(net, p, &md);
    NEED(y);
    return slice_step(net, p, k_slice_fwd, "slice fwd", x, y);
}

static nasc_status slice_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    (void)pi;
    uint32_t v = arg(net, p, 0);
    if (!net->vals[v].needs_grad) return net->status;
    dnnl_memory_desc_t gmd, xmd;
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &gmd));
    NB_PASS(nb_plain_md(net, vtype(net, v), &xmd));
    G = nb_match(net, G, &gmd);
    NEED(G);
    int dx = nb_tensor_new(net, &xmd);
    NEED(dx);
    NB_PASS(slice_step(net, p, k_slice_bwd, "slice bwd", G, dx));
    give_grad(net, v, dx, NULL, true);
    return net->status;
}

/* Concatenation along channels of dense 4-D tensors whose channel blocks
 * do not straddle operands: per image, each operand is one contiguous run
 * of the result (nchw, and nChw8c/16c with channel offsets a multiple of
 * the block), so it is a copy per (image, operand). s->ptr holds per
 * operand its floats per image and its offset in a result image; i[0]
 * operands, i[1] images, i[2] floats per result image, i[3] a relu applied
 * as it copies (the concat's relu). */
static void k_concat(nasc_net *net, const nb_step *s) {
    int n = s->i[0];
    int64_t batch = s->i[1], total = s->i[2];
    const int64_t *run = s->ptr;
    float *dst = nb_ptr(net, net->args[s->first_arg + n].tref);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < batch * n; k++) {
        int64_t b = k / n, j = k % n;
        const float *src = nb_ptr(net, net->args[s->first_arg + j].tref);
        const float *x = src + b * run[2 * j];
        sum_runs(dst + b * total + run[2 * j + 1], &x, 1, run[2 * j], s->i[3]);
    }
}

/* The copy kernel above when every operand and the result are dense in
 * the same channel-blocked (or plain) layout with aligned offsets; else -1
 * (oneDNN's concat runs). Operands their adds wrote in place already
 * (add_into_concat) are not copied, and the result is the tensor they are
 * in; with all of them in place there is no step (0 returned). */
static int concat_copy(nasc_net *net, const nasc_prim *p, const dnnl_memory_desc_t *srcs, nb_arg *a, uint32_t n,
                       const dnnl_memory_desc_t *dst) {
    int blk = block_of(dst);
    if (blk == 0 || p->a.axis != 1 || n != p->n_args) return -1;
    const nasc_type *y = vtype(net, p->result);
    int64_t plane = y->dims[2] * y->dims[3], off = 0;
    if (y->dims[1] * plane > INT32_MAX) return -1; /* the step's int fields */
    int yt = net->ps[p - M(net)->prims].concat_buf; /* made by operands written in place, else -1 */
    bool in_place[64];
    uint32_t copies = 0;
    for (uint32_t j = 0; j < n; j++) {
        in_place[j] = yt >= 0 && net->trefs[a[j].tref].buf == net->trefs[yt].buf;
        if (in_place[j]) continue;
        copies++;
        dnnl_memory_desc_t want;
        if (nb_act_md(net, vtype(net, arg(net, p, j)), &want)) return -1;
        if (block_of(&srcs[j]) != blk || !dnnl_memory_desc_equal(&srcs[j], &want) || vtype(net, arg(net, p, j))->dims[1] % blk)
            return -1;
    }
    if (yt < 0) yt = nb_tensor_new(net, dst);
    if (yt < 0) return -1;
    net->vals[p->result].fwd = yt;
    int relu = net->ps[p - M(net)->prims].concat_relu;
    if (copies == 0) { /* every operand is in place already */
        if (relu >= 0) net->ps[relu].in_concat = true;
        return 0;
    }
    int64_t *run = nasc_alloc(net->ctx, 2 * (size_t)copies * sizeof *run);
    if (!run) {
        if (!net->status) net->status = NASC_ENOMEM;
        return -1;
    }
    uint32_t k = 0;
    for (uint32_t j = 0; j < n; j++) {
        int64_t len = vtype(net, arg(net, p, j))->dims[1] * plane;
        if (!in_place[j]) {
            run[2 * k] = len;
            run[2 * k + 1] = off;
            a[k++] = a[j];
        }
        off += len;
    }
    a[k] = (nb_arg){0, yt};
    int s = nb_step_kernel(net, k_concat, "concat (nasc)", (int)k + 1, a);
    if (s < 0) {
        nasc_free(net->ctx, run);
        return -1;
    }
    nb_step *st = &net->steps[s];
    st->ptr = run;
    st->i[7] = 1; /* the step owns ptr */
    st->i[0] = (int)k;
    st->i[1] = (int)nb_dim0(net, y);
    st->i[2] = (int)off;
    st->i[3] = relu >= 0;
    if (relu >= 0) net->ps[relu].in_concat = true;
    return s;
}

static nasc_status concat_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    (void)pi;
    dnnl_memory_desc_t srcs[64], dst;
    nb_arg a[65];
    uint32_t n;
    nasc_status st = gather_srcs(net, p, srcs, a, &n);
    if (st) return st;
    if (vtype(net, p->result)->rank != 4 || p->a.axis != 1)
        NB_PASS(nb_plain_md(net, vtype(net, p->result), &dst));
    else
        NB_PASS(nb_act_md(net, vtype(net, p->result), &dst));
    if (vtype(net, p->result)->rank == 4 && concat_copy(net, p, srcs, a, n, &dst) >= 0) return net->status;
    if (net->status) return net->status;
    dnnl_primitive_desc_t pd;
    NB_CHECK(net, dnnl_concat_primitive_desc_create(&pd, &dst, (int)n, p->a.axis, srcs, nb_attr(net), net->engine));
    int y = new_result(net, p, &dst);
    a[p->n_args] = (nb_arg){DNNL_ARG_DST, y};
    nb_step_prim(net, pd, "concat fwd", 0, (int)p->n_args + 1, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return net->status;
}

static nasc_status concat_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    (void)pi;
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    /* each operand's gradient is a view into the result's gradient; a
     * blocked layout whose blocks straddle operands cannot be viewed, so
     * such a gradient is first converted to the plain layout */
    bool straddle = false;
    const dnnl_blocking_desc_t *gb = &md_of(net, G)->format_desc.blocking;
    int64_t at = 0, blk = gb->inner_nblks ? gb->inner_blks[0] : 1;
    for (uint32_t j = 0; j < p->n_args; j++) {
        int64_t c = vtype(net, arg(net, p, j))->dims[p->a.axis];
        if (blk > 1 && (at % blk || (c % blk && j + 1 < p->n_args))) straddle = true;
        at += c;
    }
    if (straddle) {
        dnnl_memory_desc_t plain;
        NB_PASS(nb_plain_md(net, vtype(net, p->result), &plain));
        G = nb_match(net, G, &plain);
        NEED(G);
    }
    int64_t off = 0;
    for (uint32_t j = 0; j < p->n_args; j++) {
        uint32_t v = arg(net, p, j);
        const nasc_type *t = vtype(net, v);
        dnnl_dims_t dims = {0}, offs = {0};
        for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k] == NASC_BATCH ? net->opt.batch : t->dims[k];
        offs[p->a.axis] = off;
        off += t->dims[p->a.axis];
        if (!net->vals[v].needs_grad) continue;
        dnnl_memory_desc_t sub;
        NB_CHECK(net, dnnl_memory_desc_init_submemory(&sub, md_of(net, G), dims, offs));
        nb_contribute(net, v, nb_tref_new(net, net->trefs[G].buf, &sub));
    }
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Flatten (and reshape: the same steps) and inner product          */
/* ---------------------------------------------------------------- */

static nasc_status flatten_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    uint32_t x = arg(net, p, 0);
    int xs = src_of(net, x, true);
    NEED(xs);
    dnnl_memory_desc_t plain4, plain2;
    NB_PASS(nb_plain_md(net, vtype(net, x), &plain4));
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &plain2));
    int flat = nb_match(net, xs, &plain4);
    NEED(flat);
    net->ps[pi].t[0] = xs;
    net->vals[p->result].fwd = nb_tref_new(net, net->trefs[flat].buf, &plain2);
    return net->status;
}

static nasc_status flatten_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    uint32_t x = arg(net, p, 0);
    dnnl_memory_desc_t plain4;
    NB_PASS(nb_plain_md(net, vtype(net, x), &plain4));
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd)); /* dense plain (N, C*H*W) */
    NEED(G);
    int g4 = nb_tref_new(net, net->trefs[G].buf, &plain4);
    NEED(g4);
    give_grad(net, x, nb_match(net, g4, md_of(net, net->ps[pi].t[0])), NULL, false);
    return net->status;
}

static nasc_status ip_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    uint32_t x = arg(net, p, 0), w = arg(net, p, 1), b = arg(net, p, 2);
    int xs = src_of(net, x, true);
    NEED(xs);
    const nasc_type *wt = vtype(net, w);
    dnnl_memory_desc_t w_any, w_plain, dst;
    dnnl_dims_t wd = {wt->dims[0], wt->dims[1]};
    NB_CHECK(net, dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dnnl_f32, dnnl_format_tag_any));
    NB_CHECK(net, dnnl_memory_desc_init_by_tag(&w_plain, 2, wd, dnnl_f32, dnnl_ab));
    NB_PASS(nb_plain_md(net, vtype(net, p->result), &dst));
    dnnl_inner_product_desc_t d;
    NB_CHECK(net, dnnl_inner_product_forward_desc_init(&d, fwd_prop(net), md_of(net, xs), &w_any, md_of(net, net->vals[b].fwd),
                                                       &dst));
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, "inner product forward")) return net->status;
    net->ps[pi].pd = pd;
    xs = nb_match(net, xs, q(pd, dnnl_query_src_md));
    net->emit_prep = true;
    int wm = weights_in(net, w, &w_plain, q(pd, dnnl_query_weights_md));
    net->emit_prep = false;
    int y = new_result(net, p, q(pd, dnnl_query_dst_md));
    int64_t flops = 2 * nb_dim0(net, vtype(net, x)) * wt->dims[0] * wt->dims[1];
    nb_arg a[4] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, net->vals[b].fwd}, {DNNL_ARG_DST, y}};
    nb_step_prim(net, pd, "inner product fwd", flops, 4, a);
    net->ps[pi].t[0] = xs;
    return net->status;
}

static nasc_status ip_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    uint32_t x = arg(net, p, 0), w = arg(net, p, 1), b = arg(net, p, 2);
    int xs = net->ps[pi].t[0];
    const nasc_type *wt = vtype(net, w);
    int64_t flops = 2 * nb_dim0(net, vtype(net, x)) * wt->dims[0] * wt->dims[1];
    dnnl_memory_desc_t w_any, w_plain;
    dnnl_dims_t wd = {wt->dims[0], wt->dims[1]};
    NB_CHECK(net, dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dnnl_f32, dnnl_format_tag_any));
    NB_CHECK(net, dnnl_memory_desc_init_by_tag(&w_plain, 2, wd, dnnl_f32, dnnl_ab));
    G = nb_match(net, G, md_of(net, net->vals[p->result].fwd));
    NEED(G);
    if (net->vals[x].needs_grad) {
        dnnl_inner_product_desc_t d;
        NB_CHECK(net, dnnl_inner_product_backward_data_desc_init(&d, md_of(net, xs), &w_any, md_of(net, G)));
        dnnl_primitive_desc_t pd;
        if (pd_create(net, &pd, &d, net->ps[pi].pd, "inner product backward data")) return net->status;
        int wm = weights_in(net, w, &w_plain, q(pd, dnnl_query_weights_md));
        int dx = nb_tensor_new(net, q(pd, dnnl_query_diff_src_md));
        nb_arg a[3] = {{DNNL_ARG_DIFF_DST, G}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dx}};
        nb_step_prim(net, pd, "inner product bwd-data", flops, 3, a);
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
        nb_contribute(net, x, dx);
    }
    if (net->vals[w].needs_grad) {
        dnnl_inner_product_desc_t d;
        NB_CHECK(net, dnnl_inner_product_backward_weights_desc_init(&d, md_of(net, xs), &w_any, md_of(net, net->vals[b].fwd),
                                                                    md_of(net, G)));
        dnnl_primitive_desc_t pd;
        if (pd_create(net, &pd, &d, net->ps[pi].pd, "inner product backward weights")) return net->status;
        int dw = nb_tensor_new(net, q(pd, dnnl_query_diff_weights_md));
        int db = nb_tensor_new(net, md_of(net, net->vals[b].fwd));
        nb_arg a[4] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DIFF_DST, G}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_BIAS, db}};
        nb_step_prim(net, pd, "inner product bwd-weights", flops, 4, a);
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
        nb_param_grad(net, w, dw, NULL);
        nb_param_grad(net, b, db, NULL);
    }
    return net->status;
}

/* ---------------------------------------------------------------- */
/* Matmul                                                           */
/* ---------------------------------------------------------------- */

/* Swap the last two dims of a plain descriptor (a transposed view). */
NB_MUST_USE static nasc_status swap_last2(nasc_net *net, dnnl_memory_desc_t *md) {
    int perm[DNNL_MAX_NDIMS];
    for (int i = 0; i < md->ndims; i++) perm[i] = i;
    perm[md->ndims - 1] = md->ndims - 2;
    perm[md->ndims - 2] = md->ndims - 1;
    dnnl_memory_desc_t out;
    NB_CHECK(net, dnnl_memory_desc_permute_axes(&out, md, perm));
    *md = out;
    return NASC_OK;
}

/* Operand v of a matmul with a rank-r result as oneDNN sees it: plain,
 * with leading 1s, its last two dims swapped when trans. */
static int matmul_operand(nasc_net *net, uint32_t v, int r, bool trans) {
    int t = padded_view(net, v, src_of(net, v, true), r);
    if (t < 0 || !trans) return t;
    dnnl_memory_desc_t md = *md_of(net, t);
    if (swap_last2(net, &md)) return -1;
    return nb_tref_new(net, net->trefs[t].buf, &md);
}

static int64_t matmul_flops(nasc_net *net, const nasc_prim *p) {
    const nasc_type *x = vtype(net, arg(net, p, 0)), *y = vtype(net, p->result);
    int64_t k = x->dims[x->rank - (p->a.trans_a ? 2 : 1)];
    int64_t n = nasc_type_numel(y);
    if (y->dims[0] == NASC_BATCH) n *= net->opt.batch;
    return 2 * n * k;
}

static int matmul_step(nasc_net *net, int src, int wei, int dst, const char *what, int64_t flops,
                       dnnl_primitive_desc_t *keep) {
    if (src < 0 || wei < 0 || dst < 0) return -1;
    dnnl_matmul_desc_t d;
    if (NB_TRY(net, dnnl_matmul_desc_init(&d, md_of(net, src), md_of(net, wei), NULL, md_of(net, dst)))) return -1;
    dnnl_primitive_desc_t pd;
    if (pd_create(net, &pd, &d, NULL, what)) return -1;
    nb_arg a[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    int s = nb_step_prim(net, pd, what, flops, 3, a);
    if (keep)
        *keep = pd;
    else
        NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return s < 0 ? -1 : dst;
}

static nasc_status matmul_fwd(nasc_net *net, uint32_t pi, const nasc_prim *p) {
    const nasc_type *yt = vtype(net, p->result);
    int a = matmul_operand(net, arg(net, p, 0), yt->rank, p->a.trans_a);
    int b = matmul_operand(net, arg(net, p, 1), yt->rank, p->a.trans_b);
    dnnl_memory_desc_t dst;
    NB_PASS(nb_plain_md(net, yt, &dst));
    int y = new_result(net, p, &dst);
    matmul_step(net, a, b, y, "matmul fwd", matmul_flops(net, p), &net->ps[pi].pd);
    net->ps[pi].t[0] = a;
    net->ps[pi].t[1] = b;
    return net->status;
}

/* A new plain tensor of value v's dims padded to rank r. */
static int padded_tensor(nasc_net *net, uint32_t v, int r) {
    dnnl_dims_t d;
    dnnl_memory_desc_t md;
    padded_dims(net, v, r, d);
    if (plain_md_dims(net, r, d, &md)) return -1;
    return nb_tensor_new(net, &md);
}

/* Operand v's gradient, computed into the fresh padded tensor g. */
static void matmul_grad(nasc_net *net, uint32_t v, int g) {
    if (g < 0) return;
    dnnl_memory_desc_t own;
    if (nb_plain_md(net, vtype(net, v), &own)) return;
    if (M(net)->values[v].kind == NASC_VAL_PARAM)
        give_grad(net, v, g, md_of(net, g), true);
    else
        nb_contribute(net, v, nb_tref_new(net, net->trefs[g].buf, &own));
}

/* With A' = op(A), B' = op(B) the operands as oneDNN saw them:
 * dA' = G B'^T, dB' = A'^T G, each written in its operand's own layout
 * (dA = dA'^T = B' G^T when A was transposed, likewise for B). */
static nasc_status matmul_bwd(nasc_net *net, uint32_t pi, const nasc_prim *p, int G) {
    const nasc_type *yt = vtype(net, p->result);
    uint32_t x = arg(net, p, 0), w = arg(net, p, 1);
    int r = yt->rank;
    /* b shared by every batch element (a weight matrix): its gradient sums
     * over them, one 2-D product over the batch rows folded together */
    bool shared_b = false;
    for (int k = 0; k < 2; k++) {
        dnnl_dims_t d;
        padded_dims(net, k ? w : x, r, d);
        bool all_one = true, same = true;
        for (int i = 0; i < r - 2; i++) {
            all_one &= d[i] == 1;
            same &= d[i] == (yt->dims[i] == NASC_BATCH ? net->opt.batch : yt->dims[i]);
        }
        if (k == 1 && !same && all_one && !p->a.trans_a) shared_b = true;
        else if (!same)
            return nasc_error(net->ctx, NASC_EINPUT, M(net)->source, p->loc,
                              "matmul '%s': training through broadcast batch dims is not supported (but for a "
                              "rank-2 second operand and an untransposed first one)",
                              nasc_str(M(net), M(net)->values[p->result].name));
    }
    dnnl_memory_desc_t plain;
    NB_PASS(nb_plain_md(net, yt, &plain));
    G = nb_match(net, G, &plain);
    if (G < 0) return net->status;
    dnnl_memory_desc_t gt_md = plain;
    NB_PASS(swap_last2(net, &gt_md));
    int Gt = nb_tref_new(net, net->trefs[G].buf, &gt_md);
    int a = net->ps[pi].t[0], b = net->ps[pi].t[1];
    int64_t flops = matmul_flops(net, p);
    if (net->vals[x].needs_grad) {
        int da = padded_tensor(net, x, r);
        if (!p->a.trans_a) {
            dnnl_memory_desc_t bt = *md_of(net, b);
            NB_PASS(swap_last2(net, &bt));
            matmul_step(net, G, nb_tref_new(net, net->trefs[b].buf, &bt), da, "matmul bwd-a", flops, NULL);
        } else {
            matmul_step(net, b, Gt, da, "matmul bwd-a", flops, NULL);
        }
        matmul_grad(net, x, da);
    }
    if (net->vals[w].needs_grad && shared_b) {
        /* A (..., M, K) and G (..., M, N) as (rows, K) and (rows, N): dB' = A^T G */
        const nasc_type *bt = vtype(net, w);
        int64_t rows = 1, k = bt->dims[bt->rank - (p->a.trans_b ? 1 : 2)], n = yt->dims[r - 1];
        for (int i = 0; i < r - 1; i++) rows *= yt->dims[i] == NASC_BATCH ? net->opt.batch : yt->dims[i];
        dnnl_dims_t ad = {rows, k}, gd = {rows, n}, bd = {bt->dims[bt->rank - 2], bt->dims[bt->rank - 1]};
        dnnl_memory_desc_t a2, g2, b2;
        NB_PASS(plain_md_dims(net, 2, ad, &a2));
        NB_PASS(plain_md_dims(net, 2, gd, &g2));
        NB_PASS(plain_md_dims(net, 2, bd, &b2));
        /* a is x's plain tensor (matmul_operand), so rows of it are a view */
        int a_rows = nb_tref_new(net, net->trefs[a].buf, &a2), g_rows = nb_tref_new(net, net->trefs[G].buf, &g2);
        int db = nb_tensor_new(net, &b2);
        NB_PASS(swap_last2(net, p->a.trans_b ? &g2 : &a2));
        if (!p->a.trans_b) /* dB = A^T G */
            matmul_step(net, nb_tref_new(net, net->trefs[a_rows].buf, &a2), g_rows, db, "matmul bwd-b", flops, NULL);
        else /* dB = (A^T G)^T = G^T A */
            matmul_step(net, nb_tref_new(net, net->trefs[g_rows].buf, &g2), a_rows, db, "matmul bwd-b", flops, NULL);
        dnnl_memory_desc_t own;
        NB_PASS(nb_plain_md(net, bt, &own));
        if (M(net)->values[w].kind == NASC_VAL_PARAM)
            give_grad(net, w, db, &b2, true);
        else
            nb_contribute(net, w, nb_tref_new(net, net->trefs[db].buf, &own));
    } else if (net->vals[w].needs_grad) {
        int db = padded_tensor(net, w, r);
        if (!p->a.trans_b) {
            dnnl_memory_desc_t at = *md_of(net, a);
            NB_PASS(swap_last2(net, &at));
            matmul_step(net, nb_tref_new(net, net->trefs[a].buf, &at), G, db, "matmul bwd-b", flops, NULL);
        } else {
            matmul_step(net, Gt, a, db, "matmul bwd-b", flops, NULL);
        }
        matmul_grad(net, w, db);
    }
    return net->status;
}

/* ---------------------------------------------------------------- */
/* The table                                                        */
/* ---------------------------------------------------------------- */

typedef nasc_status (*fwd_fn)(nasc_net *, uint32_t, const nasc_prim *);
typedef nasc_status (*bwd_fn)(nasc_net *, uint32_t, const nasc_prim *, int);

static const struct emitter {
    fwd_fn fwd;
    bwd_fn bwd;
} emitters[NASC_PRIM_COUNT] = {
    [NASC_PRIM_CONV] = {conv_fwd, conv_bwd},
    [NASC_PRIM_BATCH_NORM] = {bn_fwd, bn_bwd},
    [NASC_PRIM_RELU] = {eltwise_fwd, eltwise_bwd},
    [NASC_PRIM_TANH] = {eltwise_fwd, eltwise_bwd},
    [NASC_PRIM_SIGMOID] = {eltwise_fwd, eltwise_bwd},
    [NASC_PRIM_IDENTITY] = {eltwise_fwd, eltwise_bwd},
    [NASC_PRIM_MAX_POOL] = {pool_fwd, pool_bwd},
    [NASC_PRIM_AVG_POOL] = {pool_fwd, pool_bwd},
    [NASC_PRIM_GLOBAL_AVG_POOL] = {pool_fwd, pool_bwd},
    [NASC_PRIM_SHIFT] = {shift_fwd, shift_bwd},
    [NASC_PRIM_ADD] = {add_fwd, add_bwd},
    [NASC_PRIM_MUL] = {mul_fwd, mul_bwd},
    [NASC_PRIM_CONCAT] = {concat_fwd, concat_bwd},
    [NASC_PRIM_INNER_PRODUCT] = {ip_fwd, ip_bwd},
    [NASC_PRIM_FLATTEN] = {flatten_fwd, flatten_bwd},
    [NASC_PRIM_SOFTMAX] = {softmax_fwd, softmax_bwd},
    [NASC_PRIM_MATMUL] = {matmul_fwd, matmul_bwd},
    [NASC_PRIM_RESHAPE] = {flatten_fwd, flatten_bwd},
    [NASC_PRIM_EMBEDDING] = {embed_fwd, embed_bwd},
    [NASC_PRIM_SUB] = {sub_fwd, sub_bwd},
    [NASC_PRIM_NORMALIZE] = {norm_fwd, norm_bwd},
    [NASC_PRIM_SLICE] = {slice_fwd, slice_bwd},
    [NASC_PRIM_SCALE] = {eltwise_fwd, eltwise_bwd},
};

nasc_status nb_emit_forward(nasc_net *net, uint32_t pi) {
    const nasc_prim *p = &M(net)->prims[pi];
    if (net->ps[pi].same_as >= 0) { /* computed already */
        net->vals[p->result].fwd = net->vals[M(net)->prims[net->ps[pi].same_as].result].fwd;
        return net->status;
    }
    if (net->ps[pi].skip) return net->status; /* computed by the conv it was fused into */
    const struct emitter *e = &emitters[p->op];
    if (!e->fwd)
        return nasc_error(net->ctx, NASC_EINTERNAL, M(net)->source, p->loc, "prim op '%s' has no oneDNN lowering",
                          nasc_prim_op_info_get(p->op)->name);
    nasc_status st = e->fwd(net, pi, p);
    if (!st && net->vals[p->result].fwd < 0) st = net->status ? net->status : NASC_ENOMEM;
    return st;
}

nasc_status nb_emit_backward(nasc_net *net, uint32_t pi, int grad) {
    const nasc_prim *p = &M(net)->prims[pi];
    if (net->ps[pi].same_as >= 0) {
        nb_contribute(net, M(net)->prims[net->ps[pi].same_as].result, grad);
        return net->status;
    }
    if (net->ps[pi].skip) {
        /* a relu fused into the batch norm that feeds it: that batch
         * norm's backward applies it (a shift fused into a subsampling
         * conv gets no gradient: the conv gives its input's) */
        if (p->op != NASC_PRIM_RELU)
            return nasc_error(net->ctx, NASC_EINTERNAL, M(net)->source, p->loc, "a gradient reached a fused '%s'",
                              nasc_prim_op_info_get(p->op)->name);
        nb_contribute(net, arg(net, p, 0), grad);
        return net->status;
    }
    return emitters[p->op].bwd(net, pi, p, grad);
}
