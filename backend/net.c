/* net.c - compile a prim module into a oneDNN net: the pass pipeline,
 * gradient bookkeeping, memory planning and execution.
 *
 * nasc_net_compile runs, in order:
 *   check_module     verify the prim module, bind parameters to the store
 *   choose_layout    one layout for every 4-D activation (nChw16c or nChw8c,
 *                    the blocks of this CPU's vector width, when all channel
 *                    counts allow it and opt.layout is auto, else nchw), so
 *                    that no reorder is ever needed between two primitives
 *   emit_forward     one or more steps per prim op (ops.c)
 *   emit_backward    the same, in reverse, with gradient contributions
 *                    summed where a value fans out (training only)
 *   plan_memory      one arena; each buffer's lifetime is the range of
 *                    steps that touch it; greedy first-fit by size
 *   bind_memory      oneDNN memory objects over the arena
 */
#define _DEFAULT_SOURCE 1 /* madvise */
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "net_internal.h"

nasc_net_options nasc_net_options_default(void) {
    nasc_net_options o = {0};
    o.batch = 64;
    o.mode = NASC_MODE_TRAIN;
    o.bn_momentum = 0.1f;
    o.profile = false;
    o.layout = NASC_NET_LAYOUT_AUTO;
    o.parallel = NASC_NET_PARALLEL_AUTO;
    o.fixed_weights = false;
    o.onednn_dw = false;
    o.small_pages = false;
    return o;
}

/* ---------------------------------------------------------------- */
/* Growable arrays                                                  */
/* ---------------------------------------------------------------- */

static bool grow(nasc_net *net, void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = nasc_realloc(net->ctx, *p, (size_t)nc * elem);
    if (!q) {
        if (!net->status) net->status = NASC_ENOMEM;
        return false;
    }
    *p = q;
    *cap = nc;
    return true;
}

/* __FILE__ from the source tree's root (backend/... or tests/backend/...). */
static const char *our_file(const char *file) {
    const char *b = NULL;
    for (const char *p = strstr(file, "backend/"); p; p = strstr(p + 1, "backend/")) b = p;
    if (!b) {
        const char *slash = strrchr(file, '/');
        return slash ? slash + 1 : file;
    }
    if (b - file >= 6 && strncmp(b - 6, "tests/", 6) == 0) b -= 6;
    return b;
}

nasc_status nb_fail_at(nasc_net *net, dnnl_status_t st, const char *call, const char *what, const char *file, int line) {
    const char *op = NULL;
    if (net->cur_prim >= 0 && (uint32_t)net->cur_prim < net->m->n_prims) {
        const nasc_prim *p = &net->m->prims[net->cur_prim];
        op = nasc_str(net->m, net->m->values[p->result].name);
    }
    /* call is the source text of the call: name it, not its arguments */
    nasc_status s = nasc_error(net->ctx, NASC_EINTERNAL, net->m->source, NASC_NOLOC,
                               "oneDNN call %.*s%s%s%s failed: %s (at %s:%d%s%s%s; run with ONEDNN_VERBOSE=check "
                               "for details)",
                               (int)strcspn(call, " ("), call, what ? " (" : "", what ? what : "", what ? ")" : "",
                               dnnl_status2str(st), our_file(file), line,
                               op ? (net->built ? ", running '" : ", compiling '") : "", op ? op : "", op ? "'" : "");
    if (!net->built && !net->status) net->status = s;
    return s;
}

nasc_status nb_fail_ctx(nasc_ctx *ctx, dnnl_status_t st, const char *call, const char *file, int line) {
    return nasc_error(ctx, NASC_EINTERNAL, NULL, NASC_NOLOC,
                      "oneDNN call %.*s failed: %s (at %s:%d; run with ONEDNN_VERBOSE=check for details)",
                      (int)strcspn(call, " ("), call, dnnl_status2str(st), our_file(file), line);
}

int nb_buffer_new(nasc_net *net, size_t bytes) {
    if (!grow(net, (void **)&net->bufs, &net->cap_bufs, net->n_bufs + 1, sizeof *net->bufs)) return -1;
    nb_buffer *b = &net->bufs[net->n_bufs];
    memset(b, 0, sizeof *b);
    b->bytes = (bytes + 63) & ~(size_t)63;
    b->first = 1 << 30;
    b->last = -1;
    return net->n_bufs++;
}

int nb_tref_new(nasc_net *net, int buf, const dnnl_memory_desc_t *md) {
    if (buf < 0) return -1;
    dnnl_memory_desc_t copy = *md; /* md may point into trefs, which grow() moves */
    if (!grow(net, (void **)&net->trefs, &net->cap_trefs, net->n_trefs + 1, sizeof *net->trefs)) return -1;
    net->trefs[net->n_trefs].buf = buf;
    net->trefs[net->n_trefs].md = copy;
    return net->n_trefs++;
}

int nb_tensor_new(nasc_net *net, const dnnl_memory_desc_t *md) {
    return nb_tref_new(net, nb_buffer_new(net, dnnl_memory_desc_get_size(md)), md);
}

static int add_step(nasc_net *net, const char *what, int n, const nb_arg *args) {
    if (net->status) return -1;
    for (int i = 0; i < n; i++)
        if (args[i].tref < 0) {
            if (!net->status) net->status = NASC_EINTERNAL;
            return -1;
        }
    if (!grow(net, (void **)&net->steps, &net->cap_steps, net->n_steps + 1, sizeof *net->steps)) return -1;
    if (!grow(net, (void **)&net->args, &net->cap_args, net->n_args + n, sizeof *net->args)) return -1;
    nb_step *s = &net->steps[net->n_steps];
    memset(s, 0, sizeof *s);
    s->first_arg = net->n_args;
    s->n_args = n;
    s->prim_index = net->cur_prim;
    s->what = what;
    s->prep = net->emit_prep && net->opt.mode == NASC_MODE_INFER;
    memcpy(net->args + net->n_args, args, (size_t)n * sizeof *args);
    net->n_args += n;
    return net->n_steps++;
}

/* Whether oneDNN's cache holds pd's primitive already: its own query,
 * which the library exports (without declaring it in a public header) for
 * its tests; NULL when this build of oneDNN has none. */
typedef bool (*pd_in_cache_fn)(const_dnnl_primitive_desc_t);
static pd_in_cache_fn pd_in_cache(void) {
    static pd_in_cache_fn fn;
    static bool looked;
    if (!looked) {
        void *sym = dlsym(RTLD_DEFAULT, "_ZN4dnnl4impl14is_pd_in_cacheEPK19dnnl_primitive_desc");
        memcpy(&fn, &sym, sizeof fn);
        looked = true;
    }
    return fn;
}

int nb_step_prim(nasc_net *net, dnnl_primitive_desc_t pd, const char *what, int64_t flops, int n,
                 const nb_arg *args) {
    int i = add_step(net, what, n, args);
    if (i < 0) return -1;
    /* a lane's primitive takes its scratchpad (if it needs one) as its last
     * argument, memory planned for this step alone */
    const dnnl_memory_desc_t *scratch = net->lane ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    if (scratch && dnnl_memory_desc_get_size(scratch) > 0) {
        int t = nb_tensor_new(net, scratch);
        if (t < 0 || !grow(net, (void **)&net->args, &net->cap_args, net->n_args + 1, sizeof *net->args)) {
            net->n_steps--;
            return -1;
        }
        net->args[net->n_args++] = (nb_arg){DNNL_ARG_SCRATCHPAD, t};
        net->steps[i].n_args++;
    }
    pd_in_cache_fn cached = pd_in_cache();
    if (!cached)
        net->n_created = -1;
    else if (net->n_created >= 0 && !cached(pd))
        net->n_created++;
    if (NB_TRY(net, dnnl_primitive_create(&net->steps[i].prim, pd))) {
        net->steps[i].prim = NULL;
        net->n_steps--;
        return -1;
    }
    net->steps[i].flops = flops;
    return i;
}

int nb_step_kernel(nasc_net *net, nb_kernel_fn fn, const char *what, int n, const nb_arg *args) {
    int i = add_step(net, what, n, args);
    if (i >= 0) net->steps[i].fn = fn;
    return i;
}

int nb_reorder(nasc_net *net, int src, const dnnl_memory_desc_t *md, int dst) {
    if (net->status || src < 0) return -1;
    if (dst < 0) dst = nb_tensor_new(net, md);
    if (dst < 0) return -1;
    dnnl_primitive_desc_t pd;
    if (NB_TRY(net, dnnl_reorder_primitive_desc_create(&pd, &net->trefs[src].md, net->engine, &net->trefs[dst].md,
                                                       net->engine, nb_attr(net))))
        return -1;
    nb_arg a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    int s = nb_step_prim(net, pd, "reorder", 0, 2, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    if (s < 0) return -1;
    net->n_reorders++;
    return dst;
}

int nb_match(nasc_net *net, int g, const dnnl_memory_desc_t *md) {
    if (g < 0) return -1;
    if (dnnl_memory_desc_equal(&net->trefs[g].md, md)) return g;
    return nb_reorder(net, g, md, -1);
}

void *nb_ptr(const nasc_net *net, int tref) {
    const nb_buffer *b = &net->bufs[net->trefs[tref].buf];
    return b->ext ? b->ext : net->arena + b->offset;
}

nasc_status nb_plain_md(nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md) {
    dnnl_dims_t d = {0};
    for (int i = 0; i < t->rank; i++) d[i] = t->dims[i] == NASC_BATCH ? net->opt.batch : t->dims[i];
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd};
    memset(md, 0, sizeof *md);
    return NB_TRY(net, dnnl_memory_desc_init_by_tag(md, t->rank, d, dnnl_f32, tags[t->rank]));
}

int64_t nb_dim0(const nasc_net *net, const nasc_type *t) {
    return t->dims[0] == NASC_BATCH ? net->opt.batch : t->dims[0];
}

nasc_status nb_act_md(nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md) {
    NB_PASS(nb_plain_md(net, t, md));
    if (t->rank == 4 && net->act_tag != dnnl_nchw) {
        dnnl_dims_t d;
        memcpy(d, md->dims, sizeof d);
        return NB_TRY(net, dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, net->act_tag));
    }
    return NASC_OK;
}

void nb_contribute(nasc_net *net, uint32_t v, int g) {
    nb_value *nv = &net->vals[v];
    if (g < 0 || !nv->needs_grad) return;
    if (nv->got >= nv->n_contrib) {
        if (!net->status)
            net->status = nasc_error(net->ctx, NASC_EINTERNAL, net->m->source, NASC_NOLOC,
                                     "gradient bookkeeping: more contributions to '%s' than uses",
                                     nasc_str(net->m, net->m->values[v].name));
        return;
    }
    nv->contrib[nv->got++] = g;
}

/* Parameter gradients: the first use reorders into the plain gradient
 * array; later uses (shared weights) reorder into a scratch tensor and a
 * kernel adds it. */
static void k_accumulate(nasc_net *net, const nb_step *s) {
    float *dst = nb_ptr(net, net->args[s->first_arg].tref);
    const float *src = nb_ptr(net, net->args[s->first_arg + 1].tref);
    int64_t n = (int64_t)s->i[0];
    for (int64_t k = 0; k < n; k++) dst[k] += src[k];
}

void nb_param_grad(nasc_net *net, uint32_t v, int g, const dnnl_memory_desc_t *plain) {
    if (net->status || g < 0) return;
    if (net->m->values[v].kind != NASC_VAL_PARAM) {
        /* weights the net computes (a hypernetwork's output): the gradient
         * goes on to what computed them, in the value's plain layout */
        dnnl_memory_desc_t md;
        int t = plain ? nb_match(net, g, plain) : g;
        if (t < 0 || nb_plain_md(net, &net->m->values[v].type, &md)) return;
        nb_contribute(net, v, nb_tref_new(net, net->trefs[t].buf, &md));
        return;
    }
    nb_value *nv = &net->vals[v];
    nasc_param_grad *pg = &net->grads[nv->param_index];
    int dst = net->vals[v].grad;
    if (plain) dst = nb_tref_new(net, net->trefs[dst].buf, plain);
    if (dst < 0) return;
    if (net->grad_uses[nv->param_index]++ == 0) {
        if (dnnl_memory_desc_equal(&net->trefs[g].md, &net->trefs[dst].md)) {
            /* the primitive can write straight into the gradient array */
            net->trefs[g].buf = net->trefs[dst].buf;
            return;
        }
        nb_reorder(net, g, &net->trefs[dst].md, dst);
        return;
    }
    int tmp = nb_reorder(net, g, &net->trefs[dst].md, -1);
    nb_arg a[2] = {{0, dst}, {1, tmp}};
    int s = nb_step_kernel(net, k_accumulate, "grad accumulate", 2, a);
    if (s >= 0) net->steps[s].i[0] = (int)pg->param->numel;
}

/* ---------------------------------------------------------------- */
/* Passes                                                           */
/* ---------------------------------------------------------------- */

/* Whether the net's convolutions and inner products do, on average, fewer
 * than a million multiply-adds each at this batch size: then sharing each
 * one out between threads costs more than it gains (measured: DARTS-V2,
 * NASNet-A and ENAS cells at batch 1, about 0.2M each, run 2-4x faster on
 * one thread than on two; the baseline CNN's 5M each run faster on two). */
static bool small_primitives(const nasc_net *net) {
    const nasc_module *m = net->m;
    double macs = 0;
    int64_t n = 0;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pr = &m->prims[p];
        if (pr->op != NASC_PRIM_CONV && pr->op != NASC_PRIM_INNER_PRODUCT) continue;
        const nasc_type *y = &m->values[pr->result].type, *w = &m->values[m->args[pr->first_arg + 1]].type;
        double per = (double)nb_dim0(net, y);
        for (int d = 1; d < y->rank; d++) per *= (double)y->dims[d];
        for (int d = 1; d < w->rank; d++) per *= (double)w->dims[d]; /* per output element */
        macs += per;
        n++;
    }
    return n == 0 || macs / (double)n < 1e6;
}

static nasc_status check_module(nasc_net *net) {
    const nasc_module *m = net->m;
    if (m->dialect != NASC_DIALECT_PRIM)
        return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "only prim modules compile into a net");
    nasc_status st = nasc_prim_verify(m);
    if (st) return st;
    if (net->opt.batch < 1)
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "batch size must be at least 1, not %d",
                          net->opt.batch);
    if (net->opt.layout != NASC_NET_LAYOUT_AUTO && net->opt.layout != NASC_NET_LAYOUT_NCHW)
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "unknown activation layout %d", (int)net->opt.layout);
    if (net->opt.parallel < NASC_NET_PARALLEL_AUTO || net->opt.parallel > NASC_NET_PARALLEL_LANES)
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "unknown parallel policy %d", (int)net->opt.parallel);
    net->serial = net->opt.parallel == NASC_NET_PARALLEL_ONE ||
                  (net->opt.parallel == NASC_NET_PARALLEL_AUTO && net->opt.mode == NASC_MODE_INFER &&
                   small_primitives(net));
    if (m->n_outputs == 0)
        return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the module has no outputs");
    /* zeroed as soon as allocated: nasc_net_destroy reads them after any failure */
    net->vals = nasc_alloc(net->ctx, (m->n_values + 1) * sizeof *net->vals);
    if (net->vals) memset(net->vals, 0, (m->n_values + 1) * sizeof *net->vals);
    net->ps = net->vals ? nasc_alloc(net->ctx, (m->n_prims + 1) * sizeof *net->ps) : NULL;
    if (net->ps) memset(net->ps, 0, (m->n_prims + 1) * sizeof *net->ps);
    net->grads = net->ps ? nasc_alloc(net->ctx, (m->n_values + 1) * sizeof *net->grads) : NULL;
    net->grad_uses = net->grads ? nasc_alloc(net->ctx, (m->n_values + 1) * sizeof *net->grad_uses) : NULL;
    if (!net->grad_uses) return NASC_ENOMEM;
    memset(net->grad_uses, 0, (m->n_values + 1) * sizeof *net->grad_uses);
    for (uint32_t v = 0; v < m->n_values; v++) {
        nb_value *nv = &net->vals[v];
        nv->fwd = nv->fwd_plain = nv->grad = nv->sub_grad = -1;
        const nasc_value *val = &m->values[v];
        if (val->kind != NASC_VAL_PARAM) continue;
        if (val->type.dims[0] == NASC_BATCH)
            return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                              "parameter '%s' has a batch dimension", nasc_str(m, val->name));
        const char *name = nasc_str(m, val->name);
        nasc_tensor *t = nasc_params_find(net->store, name);
        if (!t)
            return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                              "parameter '%s' is not in the parameter store (initialise it with "
                              "nasc_params_init or load a checkpoint)",
                              name);
        bool same = t->rank == val->type.rank;
        for (int i = 0; same && i < t->rank; i++) same = t->dims[i] == val->type.dims[i];
        if (!same) {
            char a[64], b[64];
            nasc_type tt = {NASC_F32, t->rank, {0}};
            memcpy(tt.dims, t->dims, sizeof tt.dims);
            nasc_type_format(&val->type, a, sizeof a);
            nasc_type_format(&tt, b, sizeof b);
            return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                              "parameter '%s' is %s in the net but %s in the parameter store", name, a, b);
        }
        nv->param = t;
    }
    return NASC_OK;
}

/* Channels per block of the layout oneDNN picks for a convolution's
 * activations on this CPU (16 with AVX-512, 8 with AVX2): the machine's
 * vector width, asked of the library that dispatches on it. 8 when the
 * answer is anything else. */
static int64_t preferred_block(nasc_net *net) {
    dnnl_memory_desc_t x, w, y;
    dnnl_dims_t xd = {1, 64, 8, 8}, wd = {64, 64, 3, 3}, st = {1, 1}, pad = {1, 1};
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    int64_t blk = 8;
    if (NB_TRY(net, dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, dnnl_format_tag_any)) ||
        NB_TRY(net, dnnl_memory_desc_init_by_tag(&y, 4, xd, dnnl_f32, dnnl_format_tag_any)) ||
        NB_TRY(net, dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any)) ||
        NB_TRY(net, dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &x, &w,
                                                        NULL, &y, st, pad, pad)) ||
        NB_TRY(net, dnnl_primitive_desc_create(&pd, &d, NULL, net->engine, NULL)))
        return blk;
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_blocking_desc_t *b = &src->format_desc.blocking;
    if (src->format_kind == dnnl_blocked && b->inner_nblks == 1 && b->inner_idxs[0] == 1 && b->inner_blks[0] == 16)
        blk = 16;
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return blk;
}

static void choose_layout(nasc_net *net) {
    const nasc_module *m = net->m;
    if (net->opt.layout == NASC_NET_LAYOUT_NCHW) {
        net->act_tag = dnnl_nchw;
        return;
    }
    int64_t blk = preferred_block(net);
    for (uint32_t p = 0; p < m->n_prims && blk > 1; p++) {
        const nasc_type *t = &m->values[m->prims[p].result].type;
        while (blk > 1 && t->rank == 4 && t->dims[1] % blk != 0) blk = blk == 16 ? 8 : 1;
    }
    net->act_tag = blk == 16 ? dnnl_nChw16c : blk == 8 ? dnnl_nChw8c : dnnl_nchw;
}

/* Values, parameters and inputs get their forward tensors. */
static nasc_status bind_values(nasc_net *net) {
    const nasc_module *m = net->m;
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        nb_value *nv = &net->vals[v];
        dnnl_memory_desc_t md;
        if (val->kind == NASC_VAL_PARAM) {
            NB_PASS(nb_plain_md(net, &val->type, &md));
            int b = nb_buffer_new(net, 0);
            if (b < 0) return NASC_ENOMEM;
            net->bufs[b].ext = nv->param->data;
            nv->fwd = nb_tref_new(net, b, &md);
        } else if (val->kind == NASC_VAL_INPUT) {
            NB_PASS(nb_plain_md(net, &val->type, &md));
            size_t bytes = dnnl_memory_desc_get_size(&md);
            int b = nb_buffer_new(net, bytes);
            if (b < 0) return NASC_ENOMEM;
            net->bufs[b].ext = nasc_alloc(net->ctx, net->bufs[b].bytes);
            if (!net->bufs[b].ext) return NASC_ENOMEM;
            memset(net->bufs[b].ext, 0, net->bufs[b].bytes);
            nv->fwd_plain = nb_tref_new(net, b, &md);
            nv->fwd = -1; /* the layout the consumers want: made on demand (ops.c) */
        }
        if (nv->fwd < 0 && val->kind == NASC_VAL_PARAM) return NASC_ENOMEM;
    }
    return net->status;
}

static void mark_grads(nasc_net *net) {
    const nasc_module *m = net->m;
    bool train = net->opt.mode == NASC_MODE_TRAIN;
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        net->vals[v].needs_grad = train && (val->kind == NASC_VAL_PARAM ||
                                            (val->kind == NASC_VAL_INPUT && net->opt.input_grad));
    }
    if (!train) return;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pr = &m->prims[p];
        bool any = false;
        for (uint32_t j = 0; j < pr->n_args; j++) any |= net->vals[m->args[pr->first_arg + j]].needs_grad;
        net->vals[pr->result].needs_grad = any;
    }
    /* contributions each activation gradient will receive */
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pr = &m->prims[p];
        if (!net->vals[pr->result].needs_grad) continue;
        for (uint32_t j = 0; j < pr->n_args; j++) {
            uint32_t a = m->args[pr->first_arg + j];
            if (net->vals[a].needs_grad && m->values[a].kind != NASC_VAL_PARAM) net->vals[a].n_contrib++;
        }
    }
    for (uint32_t o = 0; o < m->n_outputs; o++)
        if (net->vals[m->outputs[o]].needs_grad) net->vals[m->outputs[o]].n_contrib++;
}

/* Whether pooling prims p and q compute the same thing from the same input. */
static bool same_pool(const nasc_module *m, const nasc_prim *p, const nasc_prim *q) {
    const nasc_prim_attrs *a = &p->a, *b = &q->a;
    return p->op == q->op && m->args[p->first_arg] == m->args[q->first_arg] && a->kh == b->kh && a->kw == b->kw &&
           a->sh == b->sh && a->sw == b->sw && a->pt == b->pt && a->pl == b->pl && a->pb == b->pb && a->pr == b->pr &&
           a->dh == b->dh && a->dw == b->dw && a->count_include_pad == b->count_include_pad;
}

/* A unary elementwise op (relu, tanh, sigmoid) applied again to a value it
 * was already applied to, or a pooling repeated with the same attributes on
 * the same value, computes nothing new: its result is the first one's
 * (same_as), and its gradient is added to the first one's. Cell nets are
 * full of these (every op of a cell applies its own relu to a shared input;
 * a NASNet-A cell pools one state twice). The first one is marked shared:
 * its tensor is read as more than one value, so no planner may write into
 * it in place. */
static nasc_status plan_same(nasc_net *net) {
    const nasc_module *m = net->m;
    for (uint32_t p = 0; p < m->n_prims; p++) net->ps[p].same_as = -1, net->ps[p].shared = false;
    /* first[3 * x + k]: the first op of kind k (relu, tanh, sigmoid) applied
     * to value x, + 1; pools[x]: the last pooling of x, + 1, and prev_pool[p]
     * the one before p */
    uint32_t *first = nasc_alloc(net->ctx, (3 * (size_t)m->n_values + 1) * sizeof *first);
    uint32_t *pools = nasc_alloc(net->ctx, ((size_t)m->n_values + 1) * sizeof *pools);
    uint32_t *prev_pool = nasc_alloc(net->ctx, ((size_t)m->n_prims + 1) * sizeof *prev_pool);
    if (!first || !pools || !prev_pool) {
        nasc_free(net->ctx, first);
        nasc_free(net->ctx, pools);
        nasc_free(net->ctx, prev_pool);
        return NASC_ENOMEM;
    }
    memset(first, 0, (3 * (size_t)m->n_values + 1) * sizeof *first);
    memset(pools, 0, ((size_t)m->n_values + 1) * sizeof *pools);
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pp = &m->prims[p];
        uint32_t x = m->args[pp->first_arg];
        int q = -1;
        if (pp->op == NASC_PRIM_RELU || pp->op == NASC_PRIM_TANH || pp->op == NASC_PRIM_SIGMOID) {
            int k = pp->op == NASC_PRIM_RELU ? 0 : pp->op == NASC_PRIM_TANH ? 1 : 2;
            uint32_t *f = &first[3 * (size_t)x + (size_t)k];
            if (!*f) *f = p + 1;
            else q = (int)(*f - 1);
        } else if (pp->op == NASC_PRIM_AVG_POOL || pp->op == NASC_PRIM_MAX_POOL) {
            /* (a NASNet normal cell pools one state twice) */
            for (uint32_t r = pools[x]; r && q < 0; r = prev_pool[r - 1])
                if (net->ps[r - 1].same_as < 0 && same_pool(m, pp, &m->prims[r - 1])) q = (int)(r - 1);
            prev_pool[p] = pools[x];
            pools[x] = p + 1;
        }
        if (q < 0) continue;
        const nasc_prim *pq = &m->prims[q];
        net->ps[p].same_as = q;
        net->ps[q].shared = true;
        /* the gradient of p's result goes to q's, not through p to x */
        if (net->vals[pp->result].needs_grad) {
            net->vals[pq->result].n_contrib++;
            if (net->vals[x].needs_grad && m->values[x].kind != NASC_VAL_PARAM) net->vals[x].n_contrib--;
        }
    }
    nasc_free(net->ctx, first);
    nasc_free(net->ctx, pools);
    nasc_free(net->ctx, prev_pool);
    return NASC_OK;
}

/* How the module's values are used, for the planners below: uses[v] (an
 * output counts two more, so that it stays a tensor of its own), user[v]
 * (the last prim reading v; meaningful when uses[v] == 1), maker[v] (the
 * prim computing v, -1 none), relus[v] (the relus reading v) and
 * first_relu[v] (the one of those the others are the same as, plan_same). */
typedef struct value_uses {
    uint32_t *uses, *relus;
    int *user, *maker, *first_relu;
} value_uses;

static void value_uses_free(nasc_net *net, value_uses *u) {
    nasc_free(net->ctx, u->uses);
    nasc_free(net->ctx, u->relus);
    nasc_free(net->ctx, u->user);
    nasc_free(net->ctx, u->maker);
    nasc_free(net->ctx, u->first_relu);
    memset(u, 0, sizeof *u);
}

static nasc_status value_uses_make(nasc_net *net, value_uses *u) {
    const nasc_module *m = net->m;
    size_t n = m->n_values + 1;
    u->uses = nasc_alloc(net->ctx, n * sizeof *u->uses);
    u->relus = nasc_alloc(net->ctx, n * sizeof *u->relus);
    u->user = nasc_alloc(net->ctx, n * sizeof *u->user);
    u->maker = nasc_alloc(net->ctx, n * sizeof *u->maker);
    u->first_relu = nasc_alloc(net->ctx, n * sizeof *u->first_relu);
    if (!u->uses || !u->relus || !u->user || !u->maker || !u->first_relu) {
        value_uses_free(net, u);
        return NASC_ENOMEM;
    }
    memset(u->uses, 0, n * sizeof *u->uses);
    memset(u->relus, 0, n * sizeof *u->relus);
    for (size_t v = 0; v < n; v++) u->user[v] = u->maker[v] = u->first_relu[v] = -1;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pp = &m->prims[p];
        u->maker[pp->result] = (int)p;
        for (uint32_t j = 0; j < pp->n_args; j++) {
            uint32_t a = m->args[pp->first_arg + j];
            u->uses[a]++;
            u->user[a] = (int)p;
        }
        if (pp->op == NASC_PRIM_RELU) {
            uint32_t x = m->args[pp->first_arg];
            if (net->ps[p].same_as < 0) u->first_relu[x] = (int)p;
            u->relus[x]++;
        }
    }
    for (uint32_t o = 0; o < m->n_outputs; o++) u->uses[m->outputs[o]] += 2;
    return NASC_OK;
}

/* With opt.fuse. Inference: fold a batch norm into the convolution that
 * feeds it (the conv's result has no other use) and run a following relu
 * as the convolution's post-op. Both modes: a relu that is the only use of
 * a batch norm's result (not folded; or its every use, as the relu each
 * of several readers applies) runs inside the batch norm, forward and
 * backward (oneDNN's fuse_norm_relu). A fused op's result is the
 * fusing primitive's; the values in between are not readable. */
static nasc_status plan_fusion(nasc_net *net, const value_uses *u) {
    const nasc_module *m = net->m;
    for (uint32_t p = 0; p < m->n_prims; p++)
        net->ps[p].fold_bn = net->ps[p].post_relu = net->ps[p].bn_relu = net->ps[p].sum_add = -1;
    if (!net->opt.fuse) return NASC_OK;
    const uint32_t *uses = u->uses;
    const int *user = u->user;
    for (uint32_t p = 0; p < m->n_prims && net->opt.mode == NASC_MODE_INFER; p++) {
        if (m->prims[p].op != NASC_PRIM_CONV) continue;
        uint32_t last = m->prims[p].result;
        /* folding rewrites the weights once per change of the store: not
         * for weights the net computes */
        bool store_w = m->values[m->args[m->prims[p].first_arg + 1]].kind == NASC_VAL_PARAM;
        if (store_w && !net->opt.bn_batch_stats && uses[last] == 1 && m->prims[user[last]].op == NASC_PRIM_BATCH_NORM &&
            m->args[m->prims[user[last]].first_arg] == last) {
            int q = user[last];
            net->ps[p].fold_bn = q;
            net->ps[q].skip = true;
            net->vals[last].fused = true;
            last = m->prims[q].result;
        }
        if (uses[last] == 1 && m->prims[user[last]].op == NASC_PRIM_RELU) {
            int q = user[last];
            net->ps[p].post_relu = q;
            net->ps[q].skip = true;
            net->vals[last].fused = true;
        }
    }
    /* inference: add(a, b) where b is a conv's result (after its folded
     * batch norm, without a relu) and both are used only there: the conv
     * adds its result into a's tensor. a must be a tensor of its own (made
     * by a conv, batch norm, add or pooling; not a unary op or a pooling
     * whose tensor is shared, plan_same) and computed before the conv. */
    int *maker = nasc_alloc(net->ctx, (m->n_values + 1) * sizeof *maker); /* changed below as adds fuse */
    if (!maker) return NASC_ENOMEM;
    memcpy(maker, u->maker, (m->n_values + 1) * sizeof *maker);
    for (uint32_t p = 0; p < m->n_prims && net->opt.mode == NASC_MODE_INFER; p++) {
        if (net->ps[p].fold_bn >= 0 && net->ps[p].post_relu < 0) maker[m->prims[net->ps[p].fold_bn].result] = (int)p;
    }
    for (uint32_t p = 0; p < m->n_prims && net->opt.mode == NASC_MODE_INFER; p++) {
        const nasc_prim *pp = &m->prims[p];
        if (pp->op != NASC_PRIM_ADD || pp->n_args != 2) continue;
        const nasc_type *yt = &m->values[pp->result].type;
        if (yt->rank != 4) continue;
        for (int side = 0; side < 2; side++) {
            uint32_t a = m->args[pp->first_arg + (1 - side)], b = m->args[pp->first_arg + side];
            int c = maker[b], pa = maker[a];
            if (a == b || c < 0 || pa < 0 || pa >= c || uses[a] != 1 || uses[b] != 1) continue;
            if (m->prims[c].op != NASC_PRIM_CONV || net->ps[c].post_relu >= 0 || net->ps[c].sum_add >= 0) continue;
            nasc_prim_op ao = m->prims[pa].op;
            if (ao != NASC_PRIM_CONV && ao != NASC_PRIM_BATCH_NORM && ao != NASC_PRIM_ADD && ao != NASC_PRIM_MAX_POOL &&
                ao != NASC_PRIM_AVG_POOL)
                continue;
            if (net->ps[pa].skip && ao != NASC_PRIM_BATCH_NORM && ao != NASC_PRIM_ADD) continue;
            if (net->ps[pa].shared || net->ps[pa].same_as >= 0) continue; /* its tensor is read as another value too */
            bool same = m->values[a].type.rank == 4 && m->values[b].type.rank == 4;
            for (int d = 0; same && d < 4; d++)
                same = m->values[a].type.dims[d] == yt->dims[d] && m->values[b].type.dims[d] == yt->dims[d];
            if (!same) continue;
            net->ps[c].sum_add = (int)p;
            net->ps[p].skip = true;
            net->vals[b].fused = true;
            maker[pp->result] = c;
            break;
        }
    }
    nasc_free(net->ctx, maker);
    /* a batch norm whose every use is a relu (the same one, applied by
     * each of several readers) */
    for (uint32_t p = 0; p < m->n_prims; p++) {
        uint32_t r = m->prims[p].result;
        if (m->prims[p].op != NASC_PRIM_BATCH_NORM || net->ps[p].skip || u->relus[r] == 0 || u->relus[r] != uses[r])
            continue;
        if (m->values[r].type.rank != 4) continue;
        net->ps[p].bn_relu = u->first_relu[r];
        net->ps[u->first_relu[r]].skip = true;
        net->vals[r].fused = true;
    }
    return NASC_OK;
}

/* A 1x1 convolution at stride 2 without top or left padding reads every
 * other pixel of every other row: it runs as a subsample step (a quarter
 * of its input, copied) and a stride-1 convolution of that, forward and
 * backward (ops.c; oneDNN's stride-2 1x1 kernels are much slower, and
 * their backward-data writes the whole input gradient). With opt.fuse, a
 * shift whose only use is such a convolution (the odd path of a
 * factorized reduction) is folded into the subsample: its offsets move the
 * sampled pixels, and the shift emits nothing. */
static void plan_subsample(nasc_net *net, const value_uses *u) {
    const nasc_module *m = net->m;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        net->ps[p].sub_src = -1;
        const nasc_prim *c = &m->prims[p];
        const nasc_prim_attrs *a = &c->a;
        if (c->op != NASC_PRIM_CONV || net->ps[p].same_as >= 0 || net->ps[p].skip) continue;
        if (a->groups > 1 || a->kh != 1 || a->kw != 1 || a->sh != 2 || a->sw != 2 || a->dh != 1 || a->dw != 1 ||
            a->pt != 0 || a->pl != 0)
            continue;
        if (net->ps[p].fold_bn >= 0 || net->ps[p].post_relu >= 0 || net->ps[p].sum_add >= 0) continue;
        uint32_t x = m->args[c->first_arg];
        if (m->values[x].type.rank != 4) continue;
        net->ps[p].sub_src = (int)x;
        net->ps[p].sub_off[0] = net->ps[p].sub_off[1] = 0;
        int sh = u->maker[x];
        if (!net->opt.fuse || sh < 0 || m->prims[sh].op != NASC_PRIM_SHIFT || u->uses[x] != 1 ||
            net->ps[sh].same_as >= 0 || net->ps[sh].shared)
            continue;
        net->ps[p].sub_src = (int)m->args[m->prims[sh].first_arg];
        net->ps[p].sub_off[0] = m->prims[sh].a.dy;
        net->ps[p].sub_off[1] = m->prims[sh].a.dx;
        net->ps[sh].skip = true;
        net->vals[x].fused = true;
    }
}

/* A concat's operand made by an add (not fused into a convolution), used
 * by nothing else, is written by that add straight into its place in the
 * concat's result, and the concat copies only the other operands (cell
 * nets end every cell with such a concat of adds). Whether the layout
 * allows it (channel counts in whole blocks) is decided when the add is
 * emitted (ops.c). With opt.fuse, a concat whose result only relus use
 * (the next cells' inputs) writes the relu's result instead: the adds and
 * copies clamp as they write, the relu emits no step, and its backward
 * reads the clamped tensor (its sign is the unclamped one's). */
static nasc_status plan_concat(nasc_net *net, const value_uses *u) {
    const nasc_module *m = net->m;
    for (uint32_t v = 0; v < m->n_values; v++) net->vals[v].concat = -1;
    for (uint32_t p = 0; p < m->n_prims; p++) net->ps[p].concat_buf = net->ps[p].concat_relu = -1;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *c = &m->prims[p];
        if (c->op != NASC_PRIM_CONCAT) continue;
        /* every use a relu: the first of them computes the others (plan_same) */
        dnnl_memory_desc_t md;
        if (net->opt.fuse && u->relus[c->result] && u->relus[c->result] == u->uses[c->result] &&
            nb_concat_in_place(net, c, &md)) {
            net->ps[p].concat_relu = u->first_relu[c->result];
            net->vals[c->result].fused = true; /* its tensor holds the relu's result */
        }
        if (c->a.axis != 1 || m->values[c->result].type.rank != 4) continue;
        int64_t off = 0;
        for (uint32_t j = 0; j < c->n_args; j++) {
            uint32_t v = m->args[c->first_arg + j];
            int a = u->maker[v];
            if (a >= 0 && u->uses[v] == 1 && m->prims[a].op == NASC_PRIM_ADD && !net->ps[a].skip) {
                net->vals[v].concat = (int)p;
                net->vals[v].concat_off = off;
            }
            off += m->values[v].type.dims[1];
        }
    }
    return NASC_OK;
}

static nasc_status emit_forward(nasc_net *net) {
    for (uint32_t p = 0; p < net->m->n_prims && !net->status; p++) {
        net->cur_prim = (int)p;
        nasc_status st = nb_emit_forward(net, p);
        if (st) return st;
    }
    net->cur_prim = -1;
    /* outputs must survive the step */
    for (uint32_t o = 0; o < net->m->n_outputs; o++) {
        int t = net->vals[net->m->outputs[o]].fwd;
        if (t < 0) t = net->vals[net->m->outputs[o]].fwd_plain;
        if (t >= 0) net->bufs[net->trefs[t].buf].keep = true;
    }
    net->n_fwd = net->n_steps;
    return net->status;
}

/* The image stride (floats) of md when it is a 4-D tensor of whole
 * 16-channel blocks whose (H, W, 16) planes are dense, alone or a channel
 * slice of a wider tensor, else 0. */
int64_t nb_planes16_image(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || b->inner_nblks != 1 || b->inner_idxs[0] != 1 ||
        b->inner_blks[0] != 16 || md->padded_dims[1] != md->dims[1] || md->dims[1] % 16)
        return 0;
    int64_t hw = md->dims[2] * md->dims[3];
    if (b->strides[3] != 16 || b->strides[2] != md->dims[3] * 16 || b->strides[1] != hw * 16 ||
        b->strides[0] < md->dims[1] * hw)
        return 0;
    return b->strides[0];
}

enum { SUM_PLANES_MAX = 8 };

/* dst (dense) = the sum of i[0] sources, each a 16-channel-block tensor
 * alone or a channel slice of a wider one (oneDNN's sum takes a slow path
 * for such views): plane by plane, (image, block) in memory order. */
static void k_sum_planes(nasc_net *net, const nb_step *s) {
    const nb_arg *a = &net->args[s->first_arg];
    int n = s->i[0];
    const dnnl_memory_desc_t *dmd = &net->trefs[a[n].tref].md;
    int64_t images = dmd->dims[0], blocks = dmd->dims[1] / 16, len = dmd->dims[2] * dmd->dims[3] * 16;
    float *dst = nb_ptr(net, a[n].tref);
    const float *base[SUM_PLANES_MAX];
    int64_t image[SUM_PLANES_MAX];
    for (int j = 0; j < n; j++) {
        const dnnl_memory_desc_t *md = &net->trefs[a[j].tref].md;
        base[j] = (const float *)nb_ptr(net, a[j].tref) + md->offset0;
        image[j] = md->format_desc.blocking.strides[0];
    }
    int64_t planes = images * blocks;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && omp_get_max_threads() > 1 && planes > 1)
    for (int64_t q = 0; q < planes; q++) {
        int64_t i = q / blocks, b = q % blocks;
        const float *src[SUM_PLANES_MAX];
        for (int j = 0; j < n; j++) src[j] = base[j] + i * image[j] + b * len;
        nb_sum_runs(dst + q * len, src, n, len, false);
    }
}

/* One sum step: dst (new tensor of md) = the sum of n trefs. */
static int sum_step(nasc_net *net, const int *src, int n, const dnnl_memory_desc_t *md) {
    bool planes = n >= 2 && n <= SUM_PLANES_MAX && nb_planes16_image(md) == md->dims[1] * md->dims[2] * md->dims[3] &&
                  md->offset0 == 0;
    for (int i = 0; planes && i < n; i++) {
        const dnnl_memory_desc_t *si = &net->trefs[src[i]].md;
        planes = nb_planes16_image(si) > 0;
        for (int d = 0; planes && d < 4; d++) planes = si->dims[d] == md->dims[d];
    }
    if (planes) {
        int dst = nb_tensor_new(net, md);
        if (dst < 0) return -1;
        nb_arg a[SUM_PLANES_MAX + 1];
        for (int i = 0; i < n; i++) a[i] = (nb_arg){i, src[i]};
        a[n] = (nb_arg){n, dst};
        int s = nb_step_kernel(net, k_sum_planes, "grad sum (nasc)", n + 1, a);
        if (s < 0) return -1;
        net->steps[s].i[0] = n;
        return dst;
    }
    dnnl_memory_desc_t srcs[64];
    nb_arg a[65];
    float scales[64];
    for (int i = 0; i < n; i++) {
        srcs[i] = net->trefs[src[i]].md;
        a[i] = (nb_arg){DNNL_ARG_MULTIPLE_SRC + i, src[i]};
        scales[i] = 1;
    }
    int dst = nb_tensor_new(net, md);
    dnnl_primitive_desc_t pd;
    if (NB_TRY(net, dnnl_sum_primitive_desc_create(&pd, md, n, scales, srcs, nb_attr(net), net->engine))) return -1;
    a[n] = (nb_arg){DNNL_ARG_DST, dst};
    int s = nb_step_prim(net, pd, "grad sum", 0, n + 1, a);
    NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return s < 0 ? -1 : dst;
}

/* Resolve the gradient of value v from its contributions: one of them, or
 * their sum (in chunks of at most 64 sources). */
static int resolve_grad(nasc_net *net, uint32_t v) {
    nb_value *nv = &net->vals[v];
    if (nv->got == 0) return -1;
    if (nv->got == 1) return nv->contrib[0];
    dnnl_memory_desc_t md;
    if (net->m->values[v].kind == NASC_VAL_INPUT) {
        if (nb_plain_md(net, &net->m->values[v].type, &md)) return -1;
    } else {
        md = net->trefs[nv->fwd].md;
    }
    int acc = -1;
    for (int i = 0; i < nv->got && !net->status;) {
        int chunk[64], k = 0;
        if (acc >= 0) chunk[k++] = acc;
        while (k < 64 && i < nv->got) chunk[k++] = nv->contrib[i++];
        acc = sum_step(net, chunk, k, &md);
    }
    return acc;
}

/* A zeroed buffer the net owns outside the arena (parameter gradients,
 * output gradient seeds), seen through md. */
static int external_tensor(nasc_net *net, const dnnl_memory_desc_t *md) {
    int b = nb_buffer_new(net, dnnl_memory_desc_get_size(md));
    if (b < 0) return -1;
    net->bufs[b].ext = nasc_alloc(net->ctx, net->bufs[b].bytes);
    if (!net->bufs[b].ext) return -1;
    memset(net->bufs[b].ext, 0, net->bufs[b].bytes);
    return nb_tref_new(net, b, md);
}

static nasc_status emit_backward(nasc_net *net) {
    const nasc_module *m = net->m;
    /* gradient slots */
    for (uint32_t v = 0; v < m->n_values; v++) {
        nb_value *nv = &net->vals[v];
        if (nv->n_contrib) {
            nv->contrib = nasc_alloc(net->ctx, (size_t)nv->n_contrib * sizeof *nv->contrib);
            if (!nv->contrib) return NASC_ENOMEM;
        }
        if (nv->needs_grad && m->values[v].kind == NASC_VAL_PARAM) {
            dnnl_memory_desc_t md;
            NB_PASS(nb_plain_md(net, &m->values[v].type, &md));
            nv->grad = external_tensor(net, &md);
            if (nv->grad < 0) return NASC_ENOMEM;
            nv->param_index = (int)net->n_grads;
            net->grads[net->n_grads].param = nv->param;
            net->grads[net->n_grads].grad = nb_ptr(net, nv->grad);
            net->n_grads++;
        }
    }
    /* seeds: the output gradients, written by nasc_net_loss or set_output_grad */
    for (uint32_t o = 0; o < m->n_outputs; o++) {
        uint32_t v = m->outputs[o];
        if (!net->vals[v].needs_grad) continue;
        dnnl_memory_desc_t md;
        NB_PASS(nb_plain_md(net, &m->values[v].type, &md));
        int t = external_tensor(net, &md);
        if (t < 0) return NASC_ENOMEM;
        nb_contribute(net, v, t);
    }
    for (uint32_t p = m->n_prims; p-- > 0 && !net->status;) {
        net->cur_prim = (int)p;
        uint32_t r = m->prims[p].result;
        if (!net->vals[r].needs_grad) continue;
        /* ops that sum their result's gradients themselves */
        if (nb_emit_relu_bwd_sum(net, p) || nb_emit_bn_lanes_bwd_sum(net, p)) continue;
        int g = resolve_grad(net, r);
        net->vals[r].grad = g;
        if (g < 0) continue; /* nothing downstream uses it */
        nasc_status st = nb_emit_backward(net, p, g);
        if (st) return st;
    }
    net->cur_prim = -1;
    for (uint32_t v = 0; v < m->n_values && !net->status; v++) {
        if (m->values[v].kind != NASC_VAL_INPUT || !net->vals[v].needs_grad) continue;
        int g = resolve_grad(net, v);
        if (g >= 0) {
            /* the user reads it in plain layout */
            dnnl_memory_desc_t md;
            NB_PASS(nb_plain_md(net, &m->values[v].type, &md));
            if (!dnnl_memory_desc_equal(&md, &net->trefs[g].md)) g = nb_reorder(net, g, &md, -1);
            if (g >= 0) net->bufs[net->trefs[g].buf].keep = true;
        }
        net->vals[v].grad = g;
    }
    return net->status;
}

/* Order buffer ids by size, largest first (ties by id, so the plan is
 * deterministic); shell sort, since qsort has no context argument. */
static bool placed_before(const nb_buffer *bufs, int a, int b) {
    if (bufs[a].bytes != bufs[b].bytes) return bufs[a].bytes > bufs[b].bytes;
    return a < b;
}

static void sort_ids(int *ids, int n, const nb_buffer *bufs) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            int t = ids[i], j = i;
            while (j >= gap && placed_before(bufs, t, ids[j - gap])) {
                ids[j] = ids[j - gap];
                j -= gap;
            }
            ids[j] = t;
        }
}

/* Ask the kernel to back the whole 2 MB pages of [p, p + bytes) with
 * transparent huge pages (huge), or never to (small_pages). A training
 * arena is hundreds of megabytes that every pass streams through; on 4 KB
 * pages most of those streams' cache lines come with a TLB miss, and the
 * hardware prefetchers stop at every page boundary. Advice only: where THP
 * is off, or the kernel has no huge page to give, the memory stays on
 * small pages and nothing else changes. A new arena is first touched after
 * the advice (by its first pass, or by the fill of assertion builds), so
 * its pages are allocated as the advice says; memory touched before (a
 * reused allocation) is collapsed into huge pages later by the kernel's
 * khugepaged, if at all. */
static void advise_pages(void *p, size_t bytes, bool huge_pages) {
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (bytes < 2 * huge) return;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
    (void)p;
    (void)bytes;
    (void)huge_pages;
#endif
}

static nasc_status plan_memory(nasc_net *net) {
    for (int s = 0; s < net->n_steps; s++)
        for (int a = 0; a < net->steps[s].n_args; a++) {
            nb_buffer *b = &net->bufs[net->trefs[net->args[net->steps[s].first_arg + a].tref].buf];
            if (s < b->first) b->first = s;
            if (s > b->last) b->last = s;
        }
    /* prepared weights live from one preparation to the next: for good */
    for (int s = 0; s < net->n_steps; s++)
        for (int a = 0; net->steps[s].prep && a < net->steps[s].n_args; a++) {
            nb_buffer *b = &net->bufs[net->trefs[net->args[net->steps[s].first_arg + a].tref].buf];
            b->first = 0;
            b->keep = true;
        }
    int *ids = nasc_alloc(net->ctx, (size_t)(net->n_bufs + 1) * sizeof *ids);
    int *placed = nasc_alloc(net->ctx, (size_t)(net->n_bufs + 1) * sizeof *placed);
    if (!ids || !placed) {
        nasc_free(net->ctx, ids);
        nasc_free(net->ctx, placed);
        return NASC_ENOMEM;
    }
    int n = 0;
    for (int i = 0; i < net->n_bufs; i++) {
        nb_buffer *b = &net->bufs[i];
        if (b->ext) continue;
        if (b->keep) b->last = net->n_steps;
        if (b->first > b->last) continue; /* never touched */
        net->unplanned_bytes += b->bytes;
        ids[n++] = i;
    }
    sort_ids(ids, n, net->bufs);
    /* greedy: place each buffer (largest first) at the lowest offset that
     * does not overlap a placed buffer whose lifetime intersects its own.
     * The placed buffers are kept in offset order, so one pass finds the
     * first gap wide enough. */
    size_t total = 0;
    int n_placed = 0;
    for (int k = 0; k < n; k++) {
        nb_buffer *b = &net->bufs[ids[k]];
        size_t off = 0;
        for (int q = 0; q < n_placed; q++) {
            const nb_buffer *o = &net->bufs[placed[q]];
            if (o->last < b->first || b->last < o->first) continue;
            if (o->offset >= off + b->bytes) break; /* the gap before o fits */
            if (o->offset + o->bytes > off) off = o->offset + o->bytes;
        }
        b->offset = off;
        int lo = 0, hi = n_placed; /* the first placed buffer at a higher offset */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (net->bufs[placed[mid]].offset > off)
                hi = mid;
            else
                lo = mid + 1;
        }
        int at = lo;
        memmove(placed + at + 1, placed + at, (size_t)(n_placed - at) * sizeof *placed);
        placed[at] = ids[k];
        n_placed++;
        if (off + b->bytes > total) total = off + b->bytes;
    }
    nasc_free(net->ctx, ids);
    nasc_free(net->ctx, placed);
    net->arena_bytes = total;
    if (total) {
        /* 64-byte aligned by hand: the allocator promises no more than malloc */
        nasc_net_arena *shared = net->opt.arena;
        if (shared && shared->bytes < total + 63) {
            nasc_free(shared->ctx, shared->raw);
            shared->bytes = 0;
            shared->raw = nasc_alloc(shared->ctx, total + 63);
            if (shared->raw) shared->bytes = total + 63;
        }
        char *raw = shared ? shared->raw : (net->arena_raw = nasc_alloc(net->ctx, total + 63));
        if (!raw)
            return nasc_error(net->ctx, NASC_ENOMEM, NULL, NASC_NOLOC,
                              "out of memory: the net needs %zu bytes of activations", total);
        net->arena = raw + (64 - (uintptr_t)raw % 64) % 64;
        advise_pages(raw, shared ? shared->bytes : total + 63, !net->opt.small_pages);
        /* Not zeroed: every planned buffer is written by a step before a step
         * reads it, and zeroing hundreds of megabytes page by page was most
         * of a compile. Builds with assertions (Debug, the sanitizer suite)
         * fill it with NaN instead, so that a read before a write shows up in
         * the tests' results. */
#ifndef NDEBUG
        memset(net->arena, 0xff, total);
#endif
    }
    return NASC_OK;
}

/* The store tensors the preparation steps read (external buffers of size
 * 0 are the store's), each once, with room for a copy of its bytes. */
static nasc_status watch_store(nasc_net *net) {
    for (int s = 0; s < net->n_steps; s++) {
        const nb_step *st = &net->steps[s];
        for (int a = 0; st->prep && a < st->n_args; a++) {
            const nb_tref *t = &net->trefs[net->args[st->first_arg + a].tref];
            const nb_buffer *b = &net->bufs[t->buf];
            if (!b->ext || b->bytes) continue;
            size_t bytes = dnnl_memory_desc_get_size(&t->md);
            int k = 0;
            while (k < net->n_watch && net->watch[k].data != b->ext) k++;
            if (k == net->n_watch) {
                struct nb_watch *w = nasc_realloc(net->ctx, net->watch, (size_t)(k + 1) * sizeof *w);
                if (!w) return NASC_ENOMEM;
                net->watch = w;
                net->watch[net->n_watch++] = (struct nb_watch){b->ext, 0, NULL};
            }
            if (bytes > net->watch[k].bytes) net->watch[k].bytes = bytes;
        }
    }
    for (int k = 0; k < net->n_watch; k++)
        if (!(net->watch[k].seen = nasc_alloc(net->ctx, net->watch[k].bytes))) return NASC_ENOMEM;
    return NASC_OK;
}

/* Whether the preparation steps must run: never yet, or a watched store
 * tensor changed since; records the bytes they will see. */
static bool prep_stale(nasc_net *net) {
    bool stale = !net->prepared;
    for (int k = 0; k < net->n_watch; k++) {
        struct nb_watch *w = &net->watch[k];
        if (!stale && memcmp(w->seen, w->data, w->bytes) == 0) continue;
        memcpy(w->seen, w->data, w->bytes);
        stale = true;
    }
    net->prepared = true;
    return stale;
}

static nasc_status bind_memory(nasc_net *net) {
    for (int s = 0; s < net->n_steps; s++) {
        nb_step *st = &net->steps[s];
        if (!st->prim) continue;
        st->mems = nasc_alloc(net->ctx, (size_t)(st->n_args + 1) * sizeof *st->mems);
        if (!st->mems) return NASC_ENOMEM;
        memset(st->mems, 0, (size_t)(st->n_args + 1) * sizeof *st->mems); /* destroy reads it */
        st->exec = nasc_alloc(net->ctx, (size_t)(st->n_args + 1) * sizeof *st->exec);
        if (!st->exec) return NASC_ENOMEM;
        for (int a = 0; a < st->n_args; a++) {
            const nb_arg *arg = &net->args[st->first_arg + a];
            NB_CHECK(net, dnnl_memory_create(&st->mems[a], &net->trefs[arg->tref].md, net->engine,
                                             nb_ptr(net, arg->tref)));
            st->exec[a].arg = arg->kind;
            st->exec[a].memory = st->mems[a];
        }
    }
    return NASC_OK;
}

static nasc_status build(nasc_net *net);

nasc_status nasc_net_compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *params,
                             const nasc_net_options *opt, nasc_net **out) {
    return nb_compile(ctx, prim, params, opt, NULL, out);
}

nasc_status nb_compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *params, const nasc_net_options *opt,
                       const nb_lane_of *of, nasc_net **out) {
    *out = NULL;
    nasc_net *net = nasc_alloc(ctx, sizeof *net);
    if (!net) return NASC_ENOMEM;
    memset(net, 0, sizeof *net);
    net->ctx = ctx;
    net->m = prim;
    net->store = params;
    net->opt = opt ? *opt : nasc_net_options_default();
    net->cur_prim = -1;
    net->profile = net->opt.profile;
    net->lane = of != NULL;
    net->lane_index = of ? of->index : 0;
    net->sync = of ? of->sync : NULL;
    if (net->opt.bn_momentum <= 0) net->opt.bn_momentum = 0.1f;

    nasc_status st = nasc_backend_set_threads(ctx, net->opt.threads); /* first use only */
    if (!st) st = check_module(net);
    int lanes = 0;
    if (!st) st = nb_lane_count(net, &lanes);
    if (!st) st = lanes > 1 ? nb_lanes_compile(net, lanes) : build(net);
    if (st) {
        if (!ctx->diag.status) nasc_error(ctx, st, NULL, NASC_NOLOC, "out of memory while compiling the net");
        nasc_net_destroy(net);
        return st;
    }
    net->built = true;
    *out = net;
    return NASC_OK;
}

/* The primitives, memory plan and bindings of a net that runs its passes
 * itself (not in lanes). */
static nasc_status build(nasc_net *net) {
    nasc_status st = NB_TRY(net, dnnl_engine_create(&net->engine, dnnl_cpu, 0));
    if (!st) st = NB_TRY(net, dnnl_stream_create(&net->stream, net->engine, dnnl_stream_default_flags));
    if (!st && net->lane) st = NB_TRY(net, dnnl_primitive_attr_create(&net->lane_attr));
    if (!st && net->lane) st = NB_TRY(net, dnnl_primitive_attr_set_scratchpad_mode(net->lane_attr, dnnl_scratchpad_mode_user));
    if (!st) {
        choose_layout(net);
        mark_grads(net);
        st = plan_same(net);
        value_uses u = {0};
        if (!st) st = value_uses_make(net, &u);
        if (!st) st = plan_fusion(net, &u);
        if (!st) plan_subsample(net, &u);
        if (!st) st = plan_concat(net, &u);
        value_uses_free(net, &u);
    }
    /* a serial net's primitives are made for one thread: oneDNN fixes a
     * primitive's split between threads when it creates it */
    int threads = !st && net->serial ? nb_serial_begin() : 0;
    if (!st) st = bind_values(net);
    if (!st) st = emit_forward(net);
    if (!st && net->opt.mode == NASC_MODE_TRAIN) st = emit_backward(net);
    if (!st) st = net->status;
    if (threads) nb_serial_end(threads);
    if (!st) st = plan_memory(net);
    if (!st) st = bind_memory(net);
    if (!st && !net->opt.fixed_weights) st = watch_store(net);
    return st;
}

void nasc_net_destroy(nasc_net *net) {
    if (!net) return;
    nb_lanes_destroy(net);
    for (int s = 0; s < net->n_steps; s++) {
        nb_step *st = &net->steps[s];
        if (st->prim) NB_DESTROY(dnnl_primitive_destroy(st->prim));
        if (st->mems)
            for (int a = 0; a < st->n_args; a++)
                if (st->mems[a]) NB_DESTROY(dnnl_memory_destroy(st->mems[a]));
        nasc_free(net->ctx, st->exec);
        nasc_free(net->ctx, st->mems);
        if (st->fn && st->i[7] == 1) nasc_free(net->ctx, st->ptr); /* kernel data owned by the step */
    }
    /* external buffers the net allocated (inputs, seeds, gradients); store
     * tensors are external buffers of size 0 */
    for (int b = 0; b < net->n_bufs; b++)
        if (net->bufs[b].ext && net->bufs[b].bytes) nasc_free(net->ctx, net->bufs[b].ext);
    if (net->ps) {
        for (uint32_t p = 0; p < net->m->n_prims; p++)
            if (net->ps[p].pd) NB_DESTROY(dnnl_primitive_desc_destroy(net->ps[p].pd));
        nasc_free(net->ctx, net->ps);
    }
    if (net->vals)
        for (uint32_t v = 0; v < net->m->n_values; v++) nasc_free(net->ctx, net->vals[v].contrib);
    for (int k = 0; k < net->n_watch; k++) nasc_free(net->ctx, net->watch[k].seen);
    nasc_free(net->ctx, net->watch);
    nasc_free(net->ctx, net->arena_raw);
    nasc_free(net->ctx, net->vals);
    nasc_free(net->ctx, net->grads);
    nasc_free(net->ctx, net->grad_uses);
    nasc_free(net->ctx, net->bufs);
    nasc_free(net->ctx, net->trefs);
    nasc_free(net->ctx, net->args);
    nasc_free(net->ctx, net->steps);
    if (net->lane_attr) NB_DESTROY(dnnl_primitive_attr_destroy(net->lane_attr));
    if (net->stream) NB_DESTROY(dnnl_stream_destroy(net->stream));
    if (net->engine) NB_DESTROY(dnnl_engine_destroy(net->engine));
    nasc_free(net->ctx, net);
}

/* ---------------------------------------------------------------- */
/* Running                                                          */
/* ---------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nasc_status run(nasc_net *net, int from, int to) {
    nasc_status ret = NASC_OK;
    bool prep = from == 0 && prep_stale(net);
    int threads = net->serial ? nb_serial_begin() : 0;
    net->pass_failed = false;
    for (int s = from; s < to; s++) {
        nb_step *st = &net->steps[s];
        if (st->prep && !prep) continue;
        if (ret || net->pass_failed) { /* the other lanes still meet this lane at each sync step */
            if (!net->pass_failed && net->sync) nb_lanes_fail(net);
            net->pass_failed = true;
            if (st->sync) st->fn(net, st);
            continue;
        }
        double t0 = net->profile ? now() : 0;
        net->cur_prim = st->prim_index; /* names the op in a diagnostic */
        if (st->prim) {
            ret = NB_TRY_AS(net, st->what, dnnl_primitive_execute(st->prim, net->stream, st->n_args, st->exec));
            if (!ret && net->profile) ret = NB_TRY_AS(net, st->what, dnnl_stream_wait(net->stream));
        } else {
            st->fn(net, st);
        }
        if (net->profile) {
            st->seconds += now() - t0;
            st->calls++;
        }
    }
    net->cur_prim = -1;
    if (!ret) ret = NB_TRY(net, dnnl_stream_wait(net->stream));
    if (threads) nb_serial_end(threads);
    if (ret && prep) net->prepared = false; /* a failed pass prepares again */
    return ret;
}

nasc_status nasc_net_set_input(nasc_net *net, uint32_t i, const float *data) {
    if (net->n_lanes) return nb_lanes_set_input(net, i, data);
    const nasc_module *m = net->m;
    uint32_t k = 0;
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind != NASC_VAL_INPUT) continue;
        if (k++ != i) continue;
        int t = net->vals[v].fwd_plain;
        memcpy(nb_ptr(net, t), data, dnnl_memory_desc_get_size(&net->trefs[t].md));
        return NASC_OK;
    }
    return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the net has no input %u", i);
}

nasc_status nasc_net_forward(nasc_net *net) { return net->n_lanes ? nb_lanes_forward(net) : run(net, 0, net->n_fwd); }

nasc_status nasc_net_backward(nasc_net *net) {
    if (net->opt.mode != NASC_MODE_TRAIN)
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the net was compiled for inference");
    return net->n_lanes ? nb_lanes_backward(net) : run(net, net->n_fwd, net->n_steps);
}

/* Copy tensor t out in plain layout. */
static nasc_status copy_out(nasc_net *net, int t, const nasc_type *type, float *out) {
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, type, &md));
    if (dnnl_memory_desc_equal(&md, &net->trefs[t].md)) {
        memcpy(out, nb_ptr(net, t), dnnl_memory_desc_get_size(&md));
        return NASC_OK;
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t a = NULL, b = NULL;
    nasc_status s =
        NB_TRY(net, dnnl_reorder_primitive_desc_create(&pd, &net->trefs[t].md, net->engine, &md, net->engine, NULL));
    if (!s) s = NB_TRY(net, dnnl_primitive_create(&p, pd));
    if (!s) s = NB_TRY(net, dnnl_memory_create(&a, &net->trefs[t].md, net->engine, nb_ptr(net, t)));
    if (!s) s = NB_TRY(net, dnnl_memory_create(&b, &md, net->engine, out));
    if (!s) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
        s = NB_TRY(net, dnnl_primitive_execute(p, net->stream, 2, args));
    }
    if (!s) s = NB_TRY(net, dnnl_stream_wait(net->stream));
    if (a) NB_DESTROY(dnnl_memory_destroy(a));
    if (b) NB_DESTROY(dnnl_memory_destroy(b));
    if (p) NB_DESTROY(dnnl_primitive_destroy(p));
    if (pd) NB_DESTROY(dnnl_primitive_desc_destroy(pd));
    return s;
}

static bool readable(const nasc_net *net, int t, int after_step) {
    if (t < 0) return false;
    const nb_buffer *b = &net->bufs[net->trefs[t].buf];
    return b->ext || b->last >= after_step - 1;
}

nasc_status nasc_net_read(nasc_net *net, const char *value, float *out) {
    if (net->n_lanes) return nb_lanes_read(net, value, out);
    int64_t v = nasc_prim_lookup(net->m, value, strlen(value));
    if (v < 0) return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC, "no value named '%s'", value);
    if (net->vals[v].fused)
        return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC,
                          "value '%s' was fused into the primitive that computes it (compile without fuse to read it)",
                          value);
    int t = net->vals[v].fwd >= 0 ? net->vals[v].fwd : net->vals[v].fwd_plain;
    if (!readable(net, t, net->n_fwd))
        return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC,
                          "value '%s' is not kept after the forward pass (its memory is reused)", value);
    return copy_out(net, t, &net->m->values[v].type, out);
}

nasc_status nasc_net_read_grad(nasc_net *net, const char *value, float *out) {
    if (net->n_lanes) return nb_lanes_read_grad(net, value, out);
    int64_t v = nasc_prim_lookup(net->m, value, strlen(value));
    if (v < 0) return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC, "no value named '%s'", value);
    int t = net->vals[v].grad;
    if (!readable(net, t, net->n_steps))
        return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC,
                          "the gradient of '%s' is not computed or not kept after the backward pass", value);
    return copy_out(net, t, &net->m->values[v].type, out);
}

static float *seed_of(nasc_net *net, uint32_t i) {
    uint32_t v = net->m->outputs[i];
    nb_value *nv = &net->vals[v];
    if (!nv->needs_grad || nv->n_contrib == 0) return NULL;
    /* the seed is the last contribution slot filled before the backward pass */
    for (int k = 0; k < nv->got; k++) {
        const nb_buffer *b = &net->bufs[net->trefs[nv->contrib[k]].buf];
        if (b->ext && b->bytes) return b->ext;
    }
    return NULL;
}

nasc_status nasc_net_set_output_grad(nasc_net *net, uint32_t i, const float *grad) {
    if (i >= net->m->n_outputs) return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "no output %u", i);
    if (net->n_lanes) return nb_lanes_set_output_grad(net, i, grad);
    float *seed = seed_of(net, i);
    if (!seed) return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "output %u takes no gradient", i);
    dnnl_memory_desc_t md;
    NB_PASS(nb_plain_md(net, &net->m->values[net->m->outputs[i]].type, &md));
    memcpy(seed, grad, dnnl_memory_desc_get_size(&md));
    return NASC_OK;
}

double nb_xent_row(const float *z, int k, int y, int *argmax, float *grad, float scale, float smooth) {
    float mx = z[0];
    int arg = 0;
    for (int j = 1; j < k; j++)
        if (z[j] > mx) mx = z[j], arg = j;
    double s = 0, zsum = 0;
    for (int j = 0; j < k; j++) {
        double e = exp((double)(z[j] - mx));
        s += e;
        zsum += (double)(z[j] - mx);
        if (grad) grad[j] = (float)e;
    }
    /* The target puts 1 - smooth on the label and smooth / k on every class. */
    double on = 1.0 - (double)smooth, off = (double)smooth / k;
    if (grad)
        for (int j = 0; j < k; j++) grad[j] = (float)(((double)grad[j] / s - on * (j == y) - off) * scale);
    *argmax = arg;
    return log(s) - on * (double)(z[y] - mx) - off * zsum;
}

nasc_status nasc_net_loss_at(nasc_net *net, uint32_t out, const int32_t *labels, float weight, float smooth,
                             float *loss, int *correct) {
    if (net->n_lanes) return nb_lanes_loss_at(net, out, labels, weight, smooth, loss, correct);
    const nasc_module *m = net->m;
    if (out >= m->n_outputs) return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "no output %u", out);
    if (!(smooth >= 0.0f && smooth < 1.0f))
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "label smoothing must be in [0, 1), got %g",
                          (double)smooth);
    uint32_t v = m->outputs[out];
    const nasc_type *t = &m->values[v].type;
    if (t->rank < 2)
        return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                          "the loss needs logits of shape (N, classes) or (N, T, classes); output %u has rank %d", out,
                          t->rank);
    /* (N, ..., K): one row of K logits per position, rows in row-major order */
    int64_t rows = nb_dim0(net, t);
    for (int d = 1; d < t->rank - 1; d++) rows *= t->dims[d];
    int n = (int)rows, k = (int)t->dims[t->rank - 1];
    /* a net input has no forward tensor of its own, only its plain copy */
    int ft = net->vals[v].fwd >= 0 ? net->vals[v].fwd : net->vals[v].fwd_plain;
    dnnl_memory_desc_t plain;
    NB_PASS(nb_plain_md(net, t, &plain));
    if (ft < 0 || !dnnl_memory_desc_equal(&plain, &net->trefs[ft].md))
        return nasc_error(net->ctx, NASC_EINTERNAL, m->source, NASC_NOLOC,
                          "the loss reads output %u ('%s') as dense (N, classes) rows, but the net holds it %s", out,
                          nasc_str(m, m->values[v].name), ft < 0 ? "nowhere" : "in another layout");
    const float *z = nb_ptr(net, ft);
    float *seed = seed_of(net, out);
    double total = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int y = labels[i], arg;
        if (y < 0 || y >= k)
            return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "label %d of %s %d is not in [0, %d)", y,
                              t->rank == 2 ? "image" : "position", i, k);
        total += nb_xent_row(z + (size_t)i * k, k, y, &arg, seed ? seed + (size_t)i * k : NULL, weight / (float)n,
                             smooth);
        ok += arg == y;
    }
    *loss = (float)(total / n);
    if (correct) *correct = ok;
    return NASC_OK;
}

nasc_status nasc_net_loss(nasc_net *net, const int32_t *labels, float *loss, int *correct) {
    return nasc_net_loss_at(net, 0, labels, 1.0f, 0.0f, loss, correct);
}

uint32_t nasc_net_grads(const nasc_net *net, const nasc_param_grad **out) {
    if (net->n_lanes) return nasc_net_grads(net->lanes[0].net, out); /* the lanes' sum, after backward */
    *out = net->grads;
    return net->n_grads;
}

void nasc_net_get_stats(const nasc_net *net, nasc_net_stats *out) {
    if (net->n_lanes) {
        nb_lanes_stats(net, out);
        return;
    }
    out->n_lanes = 0;
    out->arena_bytes = (int64_t)net->arena_bytes;
    out->unplanned_bytes = (int64_t)net->unplanned_bytes;
    out->n_forward = net->n_fwd;
    out->n_backward = net->n_steps - net->n_fwd;
    out->n_reorders = net->n_reorders;
    out->n_created = net->n_created;
    out->n_winograd = net->n_winograd;
    out->flops_forward = out->flops_backward = 0;
    for (int s = 0; s < net->n_steps; s++) {
        if (s < net->n_fwd)
            out->flops_forward += net->steps[s].flops;
        else
            out->flops_backward += net->steps[s].flops;
    }
}

nasc_status nasc_sgemm_peak(nasc_ctx *ctx, int n, double *gflops) {
    *gflops = 0;
    if (n < 1) return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "sgemm size must be at least 1, not %d", n);
    size_t nn = (size_t)n * (size_t)n;
    /* a, b, c 64-byte aligned in one block, aligned by hand */
    size_t stride = (nn * sizeof(float) + 63) & ~(size_t)63;
    char *raw = nasc_alloc(ctx, 3 * stride + 63);
    if (!raw) return NASC_ENOMEM;
    char *base = raw + (64 - (uintptr_t)raw % 64) % 64;
    float *a = (float *)base, *b = (float *)(base + stride), *c = (float *)(base + 2 * stride);
    for (size_t i = 0; i < nn; i++) a[i] = b[i] = (float)(i % 7) * 0.1f, c[i] = 0;
    nasc_status st = NASC_OK;
    double best = 0;
    for (int r = 0; r < 4 && !st; r++) { /* the first run warms up */
        double t0 = now();
        st = NB_TRY_CTX(ctx, dnnl_sgemm('N', 'N', n, n, n, 1.0f, a, n, b, n, 0.0f, c, n));
        double dt = now() - t0;
        if (st || r == 0) continue;
        double g = 2.0 * n * (double)n * n / dt / 1e9;
        if (g > best) best = g;
    }
    nasc_free(ctx, raw);
    if (!st) *gflops = best;
    return st;
}

double nasc_sgemm_gflops(int n, int threads) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    double g;
    if (nasc_backend_set_threads(&ctx, threads) || nasc_sgemm_peak(&ctx, n, &g)) return 0;
    return g;
}

void nasc_net_profile_reset(nasc_net *net) {
    if (net->n_lanes) nb_lanes_profile_reset(net);
    for (int s = 0; s < net->n_steps; s++) net->steps[s].seconds = 0, net->steps[s].calls = 0;
}

void nasc_net_profile_print(const nasc_net *net, FILE *out) {
    if (net->n_lanes) {
        nb_lanes_profile_print(net, out);
        return;
    }
    /* group steps by kind, in first-seen order */
    enum { MAXK = 48 };
    const char *kind[MAXK];
    double sec[MAXK] = {0}, flops[MAXK] = {0};
    int count[MAXK] = {0}, nk = 0;
    double total = 0;
    int64_t calls = 0;
    for (int s = 0; s < net->n_steps; s++) {
        const nb_step *st = &net->steps[s];
        int k = 0;
        while (k < nk && strcmp(kind[k], st->what) != 0) k++;
        if (k == nk) {
            if (nk == MAXK) continue;
            kind[nk++] = st->what;
        }
        sec[k] += st->seconds;
        flops[k] += (double)st->flops * (double)st->calls;
        count[k]++;
        total += st->seconds;
        if (st->calls > calls) calls = st->calls;
    }
    if (calls == 0 || total <= 0) {
        fputs("no profile (compile with profiling on and run a step)\n", out);
        return;
    }
    fprintf(out, "%-28s %6s %10s %6s %9s\n", "step kind", "count", "ms/iter", "share", "GFLOP/s");
    for (;;) { /* largest first */
        int best = -1;
        for (int k = 0; k < nk; k++)
            if (count[k] && (best < 0 || sec[k] > sec[best])) best = k;
        if (best < 0) break;
        fprintf(out, "%-28s %6d %10.3f %5.1f%%", kind[best], count[best], 1e3 * sec[best] / (double)calls,
                100 * sec[best] / total);
        if (flops[best] > 0) fprintf(out, " %9.1f", flops[best] / sec[best] / 1e9);
        fputc('\n', out);
        count[best] = 0;
    }
    fprintf(out, "%-28s %6d %10.3f\n", "total", net->n_steps, 1e3 * total / (double)calls);
}

nasc_status nasc_backend_reserve_primitives(nasc_ctx *ctx, int n) {
    int cap = 0;
    nasc_status st = NB_TRY_CTX(ctx, dnnl_get_primitive_cache_capacity(&cap));
    if (!st && cap < n) st = NB_TRY_CTX(ctx, dnnl_set_primitive_cache_capacity(n));
    return st;
}

void nasc_net_arena_free(nasc_net_arena *a) {
    if (!a) return;
    nasc_free(a->ctx, a->raw);
    a->raw = NULL;
    a->bytes = 0;
}
