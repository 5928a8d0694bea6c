/* lanes.c - a net run as one lane per thread.
 *
 * A net shared out between threads synchronises them at the end of every
 * primitive: a cell net runs hundreds of small primitives per pass (1,500
 * per training step for NASNet-A), and each waits for the slowest thread
 * (and, when another process holds a core, for that thread's next time
 * slice). A lane net instead splits the batch: lane l is a whole net of
 * its own, compiled for batch B / T (the first B % T lanes take one image
 * more) to run on one thread, and the T lanes run their passes at the same
 * time, one per thread. Measured on 2 cores (batch 64): two one-thread
 * nets at batch 32 did 1.41x the images/s of one two-thread net at batch
 * 64 in inference (DARTS-V2).
 *
 * Inference lanes meet once per pass. Training lanes must not change what
 * a step computes, and batch norm mixes images: its statistics are the
 * whole batch's. So a training lane runs nasc's own batch norm (below):
 * each lane sums its slice per channel, the lanes meet, and each
 * normalises with the combined statistics; the backward pass meets the same
 * way for the sums of dy and dy xhat. Each lane's loss gradient is its
 * share of the whole batch's mean, and after the backward pass the lanes
 * add their parameter gradients into the first lane's arrays. The lanes
 * meet twice per batch norm and step (about 200 times for NASNet-A).
 *
 * oneDNN's default scratchpad (library mode, built without concurrent
 * execution, as Debian's is) is one buffer per thread, made for the
 * primitives that thread created: a primitive executed on another thread
 * crashes (the Winograd convolution did, on lane 2), and lanes compiled on
 * one thread would share its buffer. So a lane's primitives take their
 * scratchpad as an argument instead (dnnl_scratchpad_mode_user), a buffer
 * of the lane's own arena planned for that one step.
 *
 * The net the caller holds only hands slices of its inputs to the lanes and
 * gathers their outputs. Each lane has a context of its own (the caller's
 * allocator, its own diagnostic), so that lanes failing at the same time do
 * not write one diagnostic; the first failing lane's diagnostic is copied
 * into the caller's context.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "net_internal.h"

/* Every value other than a parameter has the batch as its first dimension,
 * so that slicing the batch slices every activation, and no op mixes
 * images but batch norm: each image's result depends on that image alone.
 * (Batch norms of inference nets use running statistics, training lanes
 * exchange theirs; the verifier refuses a concat along the batch; a softmax
 * may run along axis 0.) */
static bool batch_major(const nasc_module *m) {
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        if (val->kind != NASC_VAL_PARAM && (val->type.rank < 1 || val->type.dims[0] != NASC_BATCH)) return false;
    }
    for (uint32_t p = 0; p < m->n_prims; p++)
        if (m->prims[p].op == NASC_PRIM_SOFTMAX && m->prims[p].a.axis == 0) return false;
    return true;
}

/* The most threads AUTO splits into lanes of one thread each: lanes were
 * measured on 2 cores only, and each holds its own arena and prepared
 * weights; more threads run one net. */
enum { NB_AUTO_LANES_MAX = 8 };

nasc_status nb_lane_count(nasc_net *net, int *lanes) {
    const nasc_net_options *o = &net->opt;
    *lanes = 0;
    int threads = nasc_backend_threads();
    if (o->parallel == NASC_NET_PARALLEL_LANES) {
        const char *why = o->bn_batch_stats      ? "batch norms on batch statistics"
                          : o->arena             ? "a caller's arena"
                          : !batch_major(net->m) ? "modules whose ops mix images (a value without the "
                                                   "batch first, a softmax along it)"
                                                 : NULL;
        if (why)
            return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC,
                              "lanes (one net per thread) are not for %s", why);
    } else if (o->parallel != NASC_NET_PARALLEL_AUTO || net->serial || o->bn_batch_stats || o->arena ||
               threads > NB_AUTO_LANES_MAX || !batch_major(net->m) ||
               /* training lanes need all their threads at once: not when OpenMP may give fewer */
               (o->mode == NASC_MODE_TRAIN && (omp_in_parallel() || omp_get_dynamic()))) {
        return NASC_OK;
    }
    int n = threads < o->batch ? threads : o->batch;
    *lanes = n > 1 ? n : 0;
    return NASC_OK;
}

const_dnnl_primitive_attr_t nb_attr(const nasc_net *net) { return net->lane ? net->lane_attr : NULL; }

nasc_status nb_attr_own(nasc_net *net, dnnl_primitive_attr_t attr) {
    if (!net->lane || !attr) return NASC_OK;
    return NB_TRY(net, dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
}

/* Copy lane l's diagnostic up (when it has one) and return st. */
static nasc_status lane_failed(nasc_net *net, const nb_lane *ln, nasc_status st) {
    if (ln->ctx.diag.status) net->ctx->diag = ln->ctx.diag;
    return st;
}

/* Training: the batch norms' slots (nb_sync), owned by the net that holds
 * the lanes. */
static nasc_status sync_new(nasc_net *net, int n) {
    const nasc_module *m = net->m;
    nb_sync *sy = nasc_alloc(net->ctx, sizeof *sy);
    if (!sy) return NASC_ENOMEM;
    memset(sy, 0, sizeof *sy);
    net->sync = sy;
    sy->n_lanes = n;
    sy->batch = net->opt.batch;
    sy->off = nasc_alloc(net->ctx, (m->n_prims + 1) * sizeof *sy->off);
    if (!sy->off) return NASC_ENOMEM;
    size_t per = 0;
    for (uint32_t p = 0; p < m->n_prims; p++) {
        sy->off[p] = (int64_t)per;
        if (m->prims[p].op == NASC_PRIM_BATCH_NORM) per += 5 * (size_t)m->values[m->args[m->prims[p].first_arg]].type.dims[1];
    }
    if (per > (size_t)1 << 30)
        return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                          "lanes: the batch norms have %zu channels in all, too many", per / 5);
    sy->per_lane = (per + 8) / 8 * 8; /* rows on 64-byte lines of their own */
    sy->slots_raw = nasc_alloc(net->ctx, ((size_t)n * sy->per_lane + 8) * sizeof *sy->slots);
    if (!sy->slots_raw) return NASC_ENOMEM;
    memset(sy->slots_raw, 0, ((size_t)n * sy->per_lane + 8) * sizeof *sy->slots);
    sy->slots = sy->slots_raw + (64 - (uintptr_t)sy->slots_raw % 64) % 64 / sizeof *sy->slots;
    return NASC_OK;
}

nasc_status nb_lanes_compile(nasc_net *net, int n) {
    net->lanes = nasc_alloc(net->ctx, (size_t)n * sizeof *net->lanes);
    if (!net->lanes) return NASC_ENOMEM;
    memset(net->lanes, 0, (size_t)n * sizeof *net->lanes); /* destroy reads it */
    net->n_lanes = n;
    if (net->opt.mode == NASC_MODE_TRAIN) NB_PASS(sync_new(net, n));
    int first = 0;
    for (int l = 0; l < n; l++) {
        nb_lane *ln = &net->lanes[l];
        ln->ctx = *net->ctx;
        memset(&ln->ctx.diag, 0, sizeof ln->ctx.diag);
        ln->batch = net->opt.batch / n + (l < net->opt.batch % n);
        ln->first = first;
        first += ln->batch;
        nasc_net_options o = net->opt;
        o.batch = ln->batch;
        o.parallel = NASC_NET_PARALLEL_ONE;
        o.threads = 0; /* set already */
        nb_lane_of of = {l, net->sync};
        nasc_status st = nb_compile(&ln->ctx, net->m, net->store, &o, &of, &ln->net);
        if (st) return lane_failed(net, ln, st);
    }
    return NASC_OK;
}

void nb_lanes_destroy(nasc_net *net) {
    for (int l = 0; l < net->n_lanes; l++) nasc_net_destroy(net->lanes[l].net);
    nasc_free(net->ctx, net->lanes);
    net->lanes = NULL;
    net->n_lanes = 0;
    if (net->sync && !net->lane) { /* a lane's is its holder's */
        nasc_free(net->ctx, net->sync->slots_raw);
        nasc_free(net->ctx, net->sync->off);
        nasc_free(net->ctx, net->sync);
    }
    net->sync = NULL;
}

/* Floats per image of a value whose first dimension is the batch. */
static int64_t per_image(const nasc_type *t) {
    int64_t n = 1;
    for (int d = 1; d < t->rank; d++) n *= t->dims[d];
    return n;
}

nasc_status nb_lanes_set_input(nasc_net *net, uint32_t i, const float *data) {
    const nasc_module *m = net->m;
    uint32_t k = 0;
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind != NASC_VAL_INPUT || k++ != i) continue;
        int64_t per = per_image(&m->values[v].type);
        for (int l = 0; l < net->n_lanes; l++) {
            nb_lane *ln = &net->lanes[l];
            nasc_status st = nasc_net_set_input(ln->net, i, data + (size_t)ln->first * (size_t)per);
            if (st) return lane_failed(net, ln, st);
        }
        return NASC_OK;
    }
    return nasc_error(net->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the net has no input %u", i);
}

/* Lane part of parts adds its share of the other lanes' parameter
 * gradients into the first lane's (whose arrays nasc_net_grads shows). */
static void sum_grads(nasc_net *net, int part, int parts) {
    const nasc_param_grad *g0;
    uint32_t ng = nasc_net_grads(net->lanes[0].net, &g0);
    int64_t total = 0;
    for (uint32_t i = 0; i < ng; i++) total += g0[i].param->numel;
    int64_t lo = total * part / parts, hi = total * (part + 1) / parts, at = 0;
    for (uint32_t i = 0; i < ng && at < hi; i++) {
        int64_t n = g0[i].param->numel, a = lo > at ? lo - at : 0, b = hi - at < n ? hi - at : n;
        for (int l = 1; l < net->n_lanes && a < b; l++) {
            const nasc_param_grad *gl;
            nasc_net_grads(net->lanes[l].net, &gl);
            float *sum = (float *)(uintptr_t)g0[i].grad; /* the lane's own array, const to callers */
            for (int64_t e = a; e < b; e++) sum[e] += gl[i].grad[e];
        }
        at += n;
    }
}

/* Run every lane's forward or backward pass, one lane per thread. Training
 * lanes meet inside their passes (each batch norm), so they need all
 * their threads at once; after a backward pass they add up their
 * parameter gradients. */
static nasc_status lanes_pass(nasc_net *net, bool backward) {
    int n = net->n_lanes, team = n;
    if (!net->sync) {
#pragma omp parallel for num_threads(n) schedule(static, 1)
        for (int l = 0; l < n; l++) net->lanes[l].status = nasc_net_forward(net->lanes[l].net);
    } else {
        net->sync->failed = 0;
#pragma omp parallel num_threads(n)
        {
            int l = omp_get_thread_num();
            if (omp_get_num_threads() != n) {
                if (l == 0) team = omp_get_num_threads();
            } else {
                nasc_net *ln = net->lanes[l].net;
                net->lanes[l].status = backward ? nasc_net_backward(ln) : nasc_net_forward(ln);
                if (backward) {
#pragma omp barrier
                    bool ok = true;
                    for (int k = 0; k < n; k++) ok = ok && !net->lanes[k].status;
                    if (ok) sum_grads(net, l, n);
                }
            }
        }
    }
    if (team != n)
        return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "a training net in %d lanes needs %d threads at once, and OpenMP gave %d (is it run inside "
                          "another parallel region?); compile it with parallel ALL",
                          n, n, team);
    for (int l = 0; l < n; l++)
        if (net->lanes[l].status) return lane_failed(net, &net->lanes[l], net->lanes[l].status);
    return NASC_OK;
}

nasc_status nb_lanes_forward(nasc_net *net) { return lanes_pass(net, false); }

nasc_status nb_lanes_backward(nasc_net *net) { return lanes_pass(net, true); }

/* Read a value (grad: its gradient) from the lanes: a parameter (or its
 * gradient, summed into the first lane's) from the first lane, anything
 * else slice by slice. */
static nasc_status lanes_read(nasc_net *net, const char *value, float *out, bool grad) {
    int64_t v = nasc_prim_lookup(net->m, value, strlen(value));
    if (v < 0) return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC, "no value named '%s'", value);
    const nasc_type *t = &net->m->values[v].type;
    for (int l = 0; l < net->n_lanes; l++) {
        nb_lane *ln = &net->lanes[l];
        size_t at = t->dims[0] == NASC_BATCH ? (size_t)ln->first * (size_t)per_image(t) : 0;
        nasc_status st = grad ? nasc_net_read_grad(ln->net, value, out + at) : nasc_net_read(ln->net, value, out + at);
        if (st) return lane_failed(net, ln, st);
        if (t->dims[0] != NASC_BATCH) break; /* a parameter: every lane holds all of it */
    }
    return NASC_OK;
}

nasc_status nb_lanes_read(nasc_net *net, const char *value, float *out) { return lanes_read(net, value, out, false); }

nasc_status nb_lanes_read_grad(nasc_net *net, const char *value, float *out) {
    return lanes_read(net, value, out, true);
}

nasc_status nb_lanes_set_output_grad(nasc_net *net, uint32_t i, const float *grad) {
    int64_t per = per_image(&net->m->values[net->m->outputs[i]].type);
    for (int l = 0; l < net->n_lanes; l++) {
        nb_lane *ln = &net->lanes[l];
        nasc_status st = nasc_net_set_output_grad(ln->net, i, grad + (size_t)ln->first * (size_t)per);
        if (st) return lane_failed(net, ln, st);
    }
    return NASC_OK;
}

nasc_status nb_lanes_loss_at(nasc_net *net, uint32_t out, const int32_t *labels, float weight, float smooth,
                             float *loss, int *correct) {
    const nasc_module *m = net->m;
    if (out >= m->n_outputs) return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "no output %u", out);
    const nasc_type *t = &m->values[m->outputs[out]].type;
    if (t->rank < 2 || !(smooth >= 0.0f && smooth < 1.0f)) /* the first lane's message says which */
        return lane_failed(net, &net->lanes[0],
                           nasc_net_loss_at(net->lanes[0].net, out, labels, weight, smooth, loss, correct));
    /* rows of logits per image: (N, K) has 1, (N, T, K) has T */
    int64_t rows = t->rank >= 2 ? per_image(t) / t->dims[t->rank - 1] : 1;
    int64_t k = t->dims[t->rank - 1];
    /* checked here, so that the message counts images in the whole batch, not in a lane */
    for (int64_t r = 0; r < (int64_t)net->opt.batch * rows; r++)
        if (labels[r] < 0 || labels[r] >= k)
            return nasc_error(net->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "label %d of %s %lld is not in [0, %lld)",
                              labels[r], t->rank == 2 ? "image" : "position", (long long)r, (long long)k);
    double total = 0;
    int ok = 0;
    for (int l = 0; l < net->n_lanes; l++) {
        nb_lane *ln = &net->lanes[l];
        float lane_loss;
        int lane_ok;
        /* a lane's gradient seed is its rows' share of the whole batch's mean */
        float w = weight * (float)ln->batch / (float)net->opt.batch;
        nasc_status st =
            nasc_net_loss_at(ln->net, out, labels + (size_t)ln->first * (size_t)rows, w, smooth, &lane_loss, &lane_ok);
        if (st) return lane_failed(net, ln, st);
        total += (double)lane_loss * (double)ln->batch;
        ok += lane_ok;
    }
    *loss = (float)(total / (double)net->opt.batch);
    if (correct) *correct = ok;
    return NASC_OK;
}

void nb_lanes_stats(const nasc_net *net, nasc_net_stats *out) {
    nasc_net_get_stats(net->lanes[0].net, out); /* the step counts: the first lane's */
    out->arena_bytes = out->unplanned_bytes = out->flops_forward = out->flops_backward = 0;
    int created = 0;
    for (int l = 0; l < net->n_lanes; l++) {
        nasc_net_stats s;
        nasc_net_get_stats(net->lanes[l].net, &s);
        out->arena_bytes += s.arena_bytes;
        out->unplanned_bytes += s.unplanned_bytes;
        out->flops_forward += s.flops_forward;
        out->flops_backward += s.flops_backward;
        created = created < 0 || s.n_created < 0 ? -1 : created + s.n_created;
    }
    out->n_created = created;
    out->n_lanes = net->n_lanes;
}

void nb_lanes_profile_print(const nasc_net *net, FILE *out) {
    fprintf(out, "lane 1 of %d (batch %d; the other lanes run the same steps on their own threads at the same time)\n",
            net->n_lanes, net->lanes[0].batch);
    nasc_net_profile_print(net->lanes[0].net, out);
}

void nb_lanes_profile_reset(nasc_net *net) {
    for (int l = 0; l < net->n_lanes; l++) nasc_net_profile_reset(net->lanes[l].net);
}

/* ---------------------------------------------------------------- */
/* Batch norm over the whole batch (training lanes)                 */
/* ---------------------------------------------------------------- */

/* An activation of rank 2 to 4, (N, C[, H[, W]]), walked channel block by
 * channel block: plain layouts have blocks of one channel, nChw8c/16c of 8
 * or 16 contiguous channels. */
typedef struct chan_walk {
    int64_t n, cb, h, w, c; /* images, channel blocks, rows, columns, channels */
    int64_t sn, scb, sh, sw, off0;
    int blk;
} chan_walk;

bool nb_chan_walk_ok(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    return md->format_kind == dnnl_blocked && md->ndims >= 2 && md->ndims <= 4 && b->inner_nblks <= 1 &&
           (b->inner_nblks == 0 || (b->inner_idxs[0] == 1 && (b->inner_blks[0] == 8 || b->inner_blks[0] == 16)));
}

bool nb_chan_walk_like(const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like) {
    if (!nb_chan_walk_ok(md) || !nb_chan_walk_ok(like) || md->ndims != like->ndims) return false;
    for (int d = 0; d < md->ndims; d++)
        if (md->dims[d] != like->dims[d]) return false;
    const dnnl_blocking_desc_t *a = &md->format_desc.blocking, *b = &like->format_desc.blocking;
    return a->inner_nblks == b->inner_nblks && (a->inner_nblks == 0 || a->inner_blks[0] == b->inner_blks[0]);
}

static chan_walk walk_of(const dnnl_memory_desc_t *md) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    chan_walk w;
    w.blk = b->inner_nblks ? (int)b->inner_blks[0] : 1;
    w.n = md->dims[0];
    w.c = md->dims[1];
    w.cb = (w.c + w.blk - 1) / w.blk;
    w.h = md->ndims > 2 ? md->dims[2] : 1;
    w.w = md->ndims > 3 ? md->dims[3] : 1;
    w.sn = b->strides[0];
    w.scb = b->strides[1];
    w.sh = md->ndims > 2 ? b->strides[2] : 0;
    w.sw = md->ndims > 3 ? b->strides[3] : 0;
    w.off0 = md->offset0;
    return w;
}

void nb_lanes_fail(nasc_net *net) {
#pragma omp atomic write
    net->sync->failed = 1;
}

/* After a meeting: whether a lane failed (this one or another); if so,
 * this lane's pass stops too. */
static bool met_failure(nasc_net *net) {
    int failed;
#pragma omp atomic read
    failed = net->sync->failed;
    if (failed) net->pass_failed = true;
    return net->pass_failed;
}

/* This lane's row of slots for a batch norm's columns from off. */
static double *slot_row(const nasc_net *net, int lane, int64_t off) {
    return net->sync->slots + (size_t)lane * net->sync->per_lane + (size_t)off;
}

/* The same place of the next image's plane, fetched into the cache while
 * this one is walked (blocked layouts: a line or half a line a pixel): a
 * channel block's planes are apart in memory, and the hardware's stream
 * prefetchers start over at each. Measured in NASNet-A's training lanes
 * (`nasc bench models/nasnet-a.yaml --profile`, runs alternating with and
 * without): its batch norms took 23.4-24.9 ms a lane step against
 * 26.9-30.3, waits included. */
#define NB_PREFETCH(blk, p)                                                                                    \
    do {                                                                                                       \
        if ((blk) > 1) __builtin_prefetch((p), 0, 3);                                                          \
    } while (0)
/* Loops over one channel block cb of w, BLK channels (a constant, so that
 * the compiler vectorises over them); x, y and dx share w's layout, a
 * gradient of the result is walked by its own (wd, wg: a view's strides).
 * Channel k of the block has the forward's coefficients a[k], b[k], m[k]
 * (y = a (x - m) + b) and the backward's ga[k], gb[k], gc[k]; channels past
 * C (padding) have 0 and stay 0. Sums are float within an image's plane and
 * double across planes. */
#define AT(p, w, n, h, q) ((p) + (w)->off0 + (n) * (w)->sn + cb * (w)->scb + (h) * (w)->sh + (q) * (w)->sw)
#define DEF_BLOCK_KERNELS(BLK)                                                                                 \
    /* sum (x - r), sum (x - r)^2 for a reference r near the values */                                          \
    NB_CLONES static void stats##BLK(const chan_walk *w, int64_t cb, const float *restrict x,                     \
                                     const float *restrict r, double *restrict sx, double *restrict sxx) {      \
        for (int64_t n = 0; n < w->n; n++) {                                                                    \
            float s[BLK] = {0}, q2[BLK] = {0};                                                                  \
            bool pf = n + 1 < w->n;                                                                             \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *p = AT(x, w, n, h, q);                                                         \
                    if (pf) NB_PREFETCH(BLK, p + w->sn);                                                             \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) {                                         \
                        float v = p[k] - r[k];                                                                  \
                        s[k] += v;                                                                              \
                        q2[k] += v * v;                                                                         \
                    }                                                                                           \
                }                                                                                               \
            for (int k = 0; k < BLK; k++) sx[k] += s[k], sxx[k] += q2[k];                                       \
        }                                                                                                       \
    }                                                                                                           \
    /* y = a (x - m) + b, or relu of it */                                                                         \
    NB_CLONES static void norm##BLK(const chan_walk *w, int64_t cb, const float *restrict x, float *restrict y,  \
                                    const float *restrict a, const float *restrict b, const float *restrict m,  \
                                    bool relu) {                                                                \
        for (int64_t n = 0; n < w->n; n++)                                                                      \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *px = AT(x, w, n, h, q);                                                        \
                    float *py = AT(y, w, n, h, q);                                                              \
                    if (n + 1 < w->n) { NB_PREFETCH(BLK, px + w->sn); }                                            \
                    if (relu) {                                                                                 \
                        _Pragma("omp simd") for (int k = 0; k < BLK; k++) {                                     \
                            float v = a[k] * (px[k] - m[k]) + b[k];                                                      \
                            py[k] = v > 0.0f ? v : 0.0f;                                                        \
                        }                                                                                       \
                    } else {                                                                                    \
                        _Pragma("omp simd") for (int k = 0; k < BLK; k++) py[k] = a[k] * (px[k] - m[k]) + b[k];         \
                    }                                                                                           \
                }                                                                                               \
    }                                                                                                           \
    /* d = dy, zeroed where a (x - m) + b <= 0 with relu; sum d, sum d (x - m) */                                         \
    NB_CLONES static void dsums##BLK(const chan_walk *w, int64_t cb, const float *restrict x,                    \
                                     const float *restrict dy, const chan_walk *wd, const float *restrict a,    \
                                     const float *restrict b,                                                   \
                                     const float *restrict m, bool relu, double *restrict sd,                   \
                                     double *restrict sdx) {                                                    \
        for (int64_t n = 0; n < w->n; n++) {                                                                    \
            float s[BLK] = {0}, t[BLK] = {0};                                                                   \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *px = AT(x, w, n, h, q), *pd = AT(dy, wd, n, h, q);                             \
                    if (n + 1 < w->n) { NB_PREFETCH(BLK, px + w->sn); NB_PREFETCH(BLK, pd + wd->sn); }             \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) {                                         \
                        float d = !relu || a[k] * (px[k] - m[k]) + b[k] > 0.0f ? pd[k] : 0.0f;                           \
                        s[k] += d;                                                                              \
                        t[k] += d * (px[k] - m[k]);                                                             \
                    }                                                                                           \
                }                                                                                               \
            for (int k = 0; k < BLK; k++) sd[k] += s[k], sdx[k] += t[k];                                        \
        }                                                                                                       \
    }                                                                                                           \
    /* dx = ga d + gb (x - m) + gc, d as above */                                                                     \
    NB_CLONES static void dx##BLK(const chan_walk *w, int64_t cb, const float *restrict x, const float *restrict dy, \
                                  const chan_walk *wd, float *restrict dx, const float *restrict a,                  \
                                  const float *restrict b, const float *restrict m, bool relu,                       \
                                  const float *restrict ga,                                                          \
                                  const float *restrict gb, const float *restrict gc) {                              \
        for (int64_t n = 0; n < w->n; n++)                                                                      \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *px = AT(x, w, n, h, q), *pd = AT(dy, wd, n, h, q);                             \
                    if (n + 1 < w->n) { NB_PREFETCH(BLK, px + w->sn); NB_PREFETCH(BLK, pd + wd->sn); }             \
                    float *po = AT(dx, w, n, h, q);                                                             \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) {                                         \
                        float d = !relu || a[k] * (px[k] - m[k]) + b[k] > 0.0f ? pd[k] : 0.0f;                           \
                        po[k] = ga[k] * d + gb[k] * (px[k] - m[k]) + gc[k];                                     \
                    }                                                                                           \
                }                                                                                               \
    }                                                                                                           \
    /* ng >= 2 gradients g (layouts wg, views of larger tensors possibly): d = their sum (zero where the   \
     * relu cut), written to dx; sum d, sum d (x - m) */                                                        \
    NB_CLONES static void dsumsn##BLK(const chan_walk *w, int64_t cb, const float *restrict x,                   \
                                      const float *const *g, const chan_walk *wg, int ng, float *restrict dx,   \
                                      const float *restrict a,                                                  \
                                      const float *restrict b, const float *restrict m, bool relu,              \
                                      double *restrict sd, double *restrict sdx) {                              \
        for (int64_t n = 0; n < w->n; n++) {                                                                    \
            float s[BLK] = {0}, t[BLK] = {0};                                                                   \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *px = AT(x, w, n, h, q);                                                        \
                    const float *restrict p0 = AT(g[0], &wg[0], n, h, q), *restrict p1 = AT(g[1], &wg[1], n, h, q); \
                    if (n + 1 < w->n) {                                                                         \
                        NB_PREFETCH(BLK, px + w->sn);                                                           \
                        NB_PREFETCH(BLK, p0 + wg[0].sn);                                                        \
                        NB_PREFETCH(BLK, p1 + wg[1].sn);                                                        \
                    }                                                                                           \
                    float *po = AT(dx, w, n, h, q), d[BLK];                                                     \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) d[k] = p0[k] + p1[k];                    \
                    for (int j = 2; j < ng; j++) {                                                              \
                        const float *restrict pj = AT(g[j], &wg[j], n, h, q);                                   \
                        _Pragma("omp simd") for (int k = 0; k < BLK; k++) d[k] += pj[k];                       \
                    }                                                                                           \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) {                                         \
                        float v = !relu || a[k] * (px[k] - m[k]) + b[k] > 0.0f ? d[k] : 0.0f;                            \
                        po[k] = v;                                                                              \
                        s[k] += v;                                                                              \
                        t[k] += v * (px[k] - m[k]);                                                             \
                    }                                                                                           \
                }                                                                                               \
            for (int k = 0; k < BLK; k++) sd[k] += s[k], sdx[k] += t[k];                                        \
        }                                                                                                       \
    }                                                                                                           \
    /* dx = ga dx + gb (x - m) + gc, dx holding d */                                                            \
    NB_CLONES static void dxin##BLK(const chan_walk *w, int64_t cb, const float *restrict x, float *restrict dx,  \
                                    const float *restrict m, const float *restrict ga,                          \
                                    const float *restrict gb, const float *restrict gc) {                       \
        for (int64_t n = 0; n < w->n; n++)                                                                      \
            for (int64_t h = 0; h < w->h; h++)                                                                  \
                for (int64_t q = 0; q < w->w; q++) {                                                            \
                    const float *px = AT(x, w, n, h, q);                                                        \
                    float *po = AT(dx, w, n, h, q);                                                             \
                    if (n + 1 < w->n) { NB_PREFETCH(BLK, px + w->sn); NB_PREFETCH(BLK, po + w->sn); }              \
                    _Pragma("omp simd") for (int k = 0; k < BLK; k++) po[k] = ga[k] * po[k] + gb[k] * (px[k] - m[k]) + gc[k]; \
                }                                                                                               \
    }
DEF_BLOCK_KERNELS(16)
DEF_BLOCK_KERNELS(8)
DEF_BLOCK_KERNELS(1)
#undef DEF_BLOCK_KERNELS
#undef AT
#undef NB_PREFETCH

/* Call fn16, fn8 or fn1, the kernel for the walk's channel blocks. */
#define BY_BLOCK(blk, fn, ...)                                                                                 \
    ((blk) == 16 ? fn##16(__VA_ARGS__) : (blk) == 8 ? fn##8(__VA_ARGS__) : fn##1(__VA_ARGS__))

/* Sums of the channels of block cb (0 first) about r, the block's first
 * values in this slice: near the channel's values, so that the squares do
 * not lose the spread to a large mean. */
static void block_stats(const chan_walk *w, int64_t cb, const float *x, float *r, double *sx, double *sxx) {
    memset(sx, 0, 16 * sizeof *sx);
    memset(sxx, 0, 16 * sizeof *sxx);
    memset(r, 0, 16 * sizeof *r);
    memcpy(r, x + w->off0 + cb * w->scb, (size_t)w->blk * sizeof *r);
    BY_BLOCK(w->blk, stats, w, cb, x, r, sx, sxx);
}

/* The forward pass's coefficients for block cb: y = a (x - m) + b with
 * a = gamma / sigma, b = beta, m = mean (0 past C). The mean is taken off
 * x before the scale, as oneDNN does, so that a mean large against the
 * spread costs no precision. */
static void block_ab(const chan_walk *w, int64_t cb, int64_t c, const float *mean, const float *var,
                     const float *gamma, const float *beta, float eps, float *a, float *b, float *m) {
    for (int k = 0; k < 16; k++) {
        int64_t ch = cb * w->blk + k;
        a[k] = b[k] = m[k] = 0;
        if (k >= w->blk || ch >= c) continue;
        a[k] = gamma[ch] / sqrtf(var[ch] + eps);
        b[k] = beta[ch];
        m[k] = mean[ch];
    }
}

/* Forward: args x, y, mean, var, gamma, beta; f[0] eps; i[0] C, i[1] the
 * batch norm's first column, i[2] a relu after it. Each lane sums its
 * slice about a reference r (columns: sum (x - r), sum (x - r)^2, r), the
 * lanes meet, and each combines the lanes' means and squared deviations
 * (Chan, Golub and LeVeque's pairwise update, in lane order) into the whole
 * batch's mean and (biased) variance, writes them to mean, var and
 * normalises its slice with them. */
void nb_k_bn_lanes_fwd(nasc_net *net, const nb_step *s) {
    const nb_arg *arg = &net->args[s->first_arg];
    chan_walk w = walk_of(&net->trefs[arg[0].tref].md);
    int64_t c = s->i[0];
    double *row = slot_row(net, net->lane_index, s->i[1]);
    const float *x = nb_ptr(net, arg[0].tref);
    if (!net->pass_failed)
        for (int64_t cb = 0; cb < w.cb; cb++) {
            double sx[16], sxx[16];
            float r[16];
            block_stats(&w, cb, x, r, sx, sxx);
            for (int k = 0; k < w.blk && cb * w.blk + k < c; k++) {
                row[cb * w.blk + k] = sx[k];
                row[c + cb * w.blk + k] = sxx[k];
                row[2 * c + cb * w.blk + k] = r[k];
            }
        }
#pragma omp barrier
    if (met_failure(net)) return;
    float *mean = nb_ptr(net, arg[2].tref), *var = nb_ptr(net, arg[3].tref);
    const nb_sync *sy = net->sync;
    double plane = (double)w.h * (double)w.w;
    for (int64_t k = 0; k < c; k++) {
        double n = 0, m = 0, m2 = 0; /* so far: count, mean, sum of squared deviations */
        for (int l = 0; l < sy->n_lanes; l++) { /* in lane order: every lane gets the same */
            const double *r = slot_row(net, l, s->i[1]);
            double nl = (double)(sy->batch / sy->n_lanes + (l < sy->batch % sy->n_lanes)) * plane;
            double ml = r[2 * c + k] + r[k] / nl, m2l = r[c + k] - r[k] * r[k] / nl;
            double delta = ml - m, total = n + nl;
            m += delta * nl / total;
            m2 += m2l + delta * delta * n * nl / total;
            n = total;
        }
        double v = m2 / n;
        mean[k] = (float)m;
        var[k] = (float)(v > 0 ? v : 0);
    }
    float *y = nb_ptr(net, arg[1].tref);
    const float *gamma = nb_ptr(net, arg[4].tref), *beta = nb_ptr(net, arg[5].tref);
    bool relu = s->i[2];
    for (int64_t cb = 0; cb < w.cb; cb++) {
        float a[16], b[16], m[16];
        block_ab(&w, cb, c, mean, var, gamma, beta, s->f[0], a, b, m);
        BY_BLOCK(w.blk, norm, &w, cb, x, y, a, b, m, relu);
    }
}

/* Backward: args x, dy, dx, mean, var, gamma, beta, dgamma, dbeta, then
 * more gradients of the result; f[0] eps; i[0] C, i[1] the batch norm's
 * backward columns, i[2] a relu after it, i[3] how many gradients (dy and
 * the ones after dbeta), each in x's layout or a view of a larger tensor
 * in it (a concat's gradient): with more than one, their sum d is written
 * to dx on the first pass and the second pass finishes dx in place. With
 * d = dy (zero where the relu cut, by the forward's own test),
 * sigma = sqrt(var + eps),
 * xhat = (x - mean) / sigma and sums over the whole batch (count values a
 * channel):
 *   dbeta = sum d,  dgamma = sum d xhat = sum d (x - mean) / sigma,
 *   dx = gamma / sigma (d - dbeta / count - xhat dgamma / count).
 * dgamma and dbeta get this lane's share only: the lanes' parameter
 * gradients are summed after the pass. */
void nb_k_bn_lanes_bwd(nasc_net *net, const nb_step *s) {
    const nb_arg *arg = &net->args[s->first_arg];
    chan_walk w = walk_of(&net->trefs[arg[0].tref].md);
    int64_t c = s->i[0];
    double *row = slot_row(net, net->lane_index, s->i[1]);
    const float *x = nb_ptr(net, arg[0].tref), *dy = nb_ptr(net, arg[1].tref);
    const float *mean = nb_ptr(net, arg[3].tref), *var = nb_ptr(net, arg[4].tref);
    const float *gamma = nb_ptr(net, arg[5].tref), *beta = nb_ptr(net, arg[6].tref);
    float *dgamma = nb_ptr(net, arg[7].tref), *dbeta = nb_ptr(net, arg[8].tref);
    float *dx = nb_ptr(net, arg[2].tref);
    bool relu = s->i[2];
    int ng = s->i[3];
    const float *g[NB_BN_GRADS_MAX] = {dy};
    chan_walk wg[NB_BN_GRADS_MAX];
    wg[0] = walk_of(&net->trefs[arg[1].tref].md);
    for (int j = 1; j < ng; j++) {
        g[j] = nb_ptr(net, arg[8 + j].tref);
        wg[j] = walk_of(&net->trefs[arg[8 + j].tref].md);
    }
    if (!net->pass_failed)
        for (int64_t cb = 0; cb < w.cb; cb++) {
            float a[16], b[16], m[16];
            double sd[16] = {0}, sdx[16] = {0};
            block_ab(&w, cb, c, mean, var, gamma, beta, s->f[0], a, b, m);
            if (ng > 1)
                BY_BLOCK(w.blk, dsumsn, &w, cb, x, g, wg, ng, dx, a, b, m, relu, sd, sdx);
            else
                BY_BLOCK(w.blk, dsums, &w, cb, x, dy, &wg[0], a, b, m, relu, sd, sdx);
            for (int k = 0; k < w.blk && cb * w.blk + k < c; k++) {
                int64_t ch = cb * w.blk + k;
                row[ch] = sd[k];
                row[c + ch] = sdx[k];
                double inv = 1.0 / sqrt((double)var[ch] + (double)s->f[0]);
                dbeta[ch] = (float)sd[k];
                dgamma[ch] = (float)(sdx[k] * inv);
            }
        }
#pragma omp barrier
    if (met_failure(net)) return;
    double count = (double)net->sync->batch * (double)w.h * (double)w.w;
    for (int64_t cb = 0; cb < w.cb; cb++) {
        float a[16], b[16], m[16], ga[16] = {0}, gb[16] = {0}, gc[16] = {0};
        block_ab(&w, cb, c, mean, var, gamma, beta, s->f[0], a, b, m);
        for (int k = 0; k < w.blk && cb * w.blk + k < c; k++) {
            int64_t ch = cb * w.blk + k;
            double sd = 0, sdx = 0;
            for (int l = 0; l < net->sync->n_lanes; l++) {
                const double *r = slot_row(net, l, s->i[1]);
                sd += r[ch];
                sdx += r[c + ch];
            }
            double inv = 1.0 / sqrt((double)var[ch] + (double)s->f[0]), gi = (double)gamma[ch] * inv;
            double dg = sdx * inv; /* the whole batch's dgamma */
            /* dx = gi d - gi inv (x - mean) dg / count - gi sd / count */
            ga[k] = (float)gi;
            gb[k] = (float)(-gi * inv * dg / count);
            gc[k] = (float)(-gi * sd / count);
        }
        if (ng > 1)
            BY_BLOCK(w.blk, dxin, &w, cb, x, dx, m, ga, gb, gc);
        else
            BY_BLOCK(w.blk, dx, &w, cb, x, dy, &wg[0], dx, a, b, m, relu, ga, gb, gc);
    }
}
