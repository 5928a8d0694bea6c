/* lanes.c - an inference net run as one lane per thread.
 *
 * A net shared out between threads synchronises them at the end of every
 * primitive: a cell net runs hundreds of small primitives per pass, and
 * each waits for the slowest thread (and, when another process holds a
 * core, for that thread's next time slice). A lane net instead splits the
 * batch: lane l is a whole net of its own, compiled for batch B / T (the
 * first B % T lanes take one image more) to run on one thread, and the T
 * lanes run their passes at the same time, one per thread, meeting once
 * per pass. Measured on 2 cores (DARTS-V2, batch 64): two one-thread nets
 * at batch 32 did 1.41x the images/s of one two-thread net at batch 64.
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
#include <string.h>

#include "net_internal.h"

/* Every value other than a parameter has the batch as its first dimension,
 * so that slicing the batch slices every activation, and no op mixes
 * images: each image's result depends on that image alone. (Batch norms
 * of inference nets use running statistics; the verifier refuses a concat
 * along the batch; a softmax may run along axis 0.) */
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
        const char *why = o->mode != NASC_MODE_INFER ? "training nets"
                          : o->bn_batch_stats        ? "batch norms on batch statistics"
                          : o->arena                 ? "a caller's arena"
                          : !batch_major(net->m)     ? "modules whose ops mix images (a value without the "
                                                       "batch first, a softmax along it)"
                                                     : NULL;
        if (why)
            return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC,
                              "lanes (one net per thread) are for inference nets; not for %s", why);
    } else if (o->parallel != NASC_NET_PARALLEL_AUTO || o->mode != NASC_MODE_INFER || net->serial ||
               o->bn_batch_stats || o->arena || threads > NB_AUTO_LANES_MAX || !batch_major(net->m)) {
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

nasc_status nb_lanes_compile(nasc_net *net, int n) {
    net->lanes = nasc_alloc(net->ctx, (size_t)n * sizeof *net->lanes);
    if (!net->lanes) return NASC_ENOMEM;
    memset(net->lanes, 0, (size_t)n * sizeof *net->lanes); /* destroy reads it */
    net->n_lanes = n;
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
        nasc_status st = nb_compile(&ln->ctx, net->m, net->store, &o, true, &ln->net);
        if (st) return lane_failed(net, ln, st);
    }
    return NASC_OK;
}

void nb_lanes_destroy(nasc_net *net) {
    for (int l = 0; l < net->n_lanes; l++) nasc_net_destroy(net->lanes[l].net);
    nasc_free(net->ctx, net->lanes);
    net->lanes = NULL;
    net->n_lanes = 0;
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

nasc_status nb_lanes_forward(nasc_net *net) {
    int n = net->n_lanes;
#pragma omp parallel for num_threads(n) schedule(static, 1)
    for (int l = 0; l < n; l++) net->lanes[l].status = nasc_net_forward(net->lanes[l].net);
    for (int l = 0; l < n; l++)
        if (net->lanes[l].status) return lane_failed(net, &net->lanes[l], net->lanes[l].status);
    return NASC_OK;
}

nasc_status nb_lanes_read(nasc_net *net, const char *value, float *out) {
    int64_t v = nasc_prim_lookup(net->m, value, strlen(value));
    if (v < 0) return nasc_error(net->ctx, NASC_EINPUT, net->m->source, NASC_NOLOC, "no value named '%s'", value);
    const nasc_type *t = &net->m->values[v].type;
    if (t->dims[0] != NASC_BATCH) { /* a parameter: every lane holds all of it */
        nasc_status st = nasc_net_read(net->lanes[0].net, value, out);
        return st ? lane_failed(net, &net->lanes[0], st) : NASC_OK;
    }
    int64_t per = per_image(t);
    for (int l = 0; l < net->n_lanes; l++) {
        nb_lane *ln = &net->lanes[l];
        nasc_status st = nasc_net_read(ln->net, value, out + (size_t)ln->first * (size_t)per);
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
        nasc_status st = nasc_net_loss_at(ln->net, out, labels + (size_t)ln->first * (size_t)rows, weight, smooth,
                                          &lane_loss, &lane_ok);
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
