/* onnx_window.c - Pad, Slice and Gather of computed tensors.
 *
 * nasc has no pad or slice op. All three read a window of their input: the
 * input, zero-padded, then every step-th row and column from a start, and
 * any list of channels (a channel may be padding). A window is emitted as
 *
 *   nothing new      the window is the input (an identity op)
 *   shift            the input moved by (dy, dx) with zeros coming in: the
 *                    Pad-then-Slice pattern `nasc export` writes for shift
 *   conv             a convolution with one-hot weights: depthwise when the
 *                    channels stay, a 1x1-per-channel selection otherwise;
 *                    its pads are the zero padding, its strides the steps,
 *                    its kernel as large as needed to end at the last row
 *   + add            of a constant mask when the padding value is not 0
 *
 * The one-hot conv copies its input exactly (x * 1 plus zeros), except
 * that an inf or NaN in the input also reaches the neighbours its kernel
 * covers.
 *
 * A Pad or Slice is not emitted at once when every node that reads it may
 * take it over: a Slice (it narrows the same window), a Pad of the same
 * value after plain padding (the pads add up), a Conv or an AveragePool
 * after plain zero padding (ox_value_unpadded: the padding joins its own
 * pads). A reader that does not take it over emits it through ox_value,
 * once. Ranks 2 and 3 are seen as N, C, H, W with trailing 1s.
 */
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

#define status_of ox_status

typedef struct ox_window {
    uint32_t src;        /* the prim value it reads */
    int rank;            /* src's rank, 2 to 4 */
    int64_t dims[4];     /* src's dims as N, C, H, W (trailing 1s) */
    int64_t nc;          /* output channels */
    const int64_t *chan; /* (nc,) the input channel of each output channel, -1: padding; NULL: all, in order */
    int64_t pad[2][2];   /* H, W: zero rows / columns before and after */
    int64_t start[2];    /* H, W: first row / column read, in padded coordinates */
    int64_t step[2];     /* H, W: > 0 */
    int64_t count[2];    /* H, W: rows / columns of the result */
    float value;         /* of the padded elements */
    int node;            /* the node whose output it is: names and errors */
} ox_window;

static bool window_init(ox_imp *x, uint32_t v, ox_window *w) {
    const nasc_type *t = ox_type(x, v);
    if (t->rank < 2 || t->rank > 4) {
        ox_fail(x, "a tensor of rank %d is not supported here (ranks 2 to 4 are)", t->rank);
        return false;
    }
    memset(w, 0, sizeof *w);
    w->src = v;
    w->rank = t->rank;
    for (int d = 0; d < 4; d++) w->dims[d] = d < t->rank ? t->dims[d] : 1;
    w->nc = w->dims[1];
    for (int j = 0; j < 2; j++) w->step[j] = 1, w->count[j] = w->dims[2 + j];
    w->node = x->cur;
    return true;
}

/* The dims of the window's result in the source's rank. */
static void window_out(const ox_window *w, int64_t *out) {
    int64_t all[4] = {w->dims[0], w->nc, w->count[0], w->count[1]};
    for (int d = 0; d < w->rank; d++) out[d] = all[d];
}

static bool channels_kept(const ox_window *w) {
    if (!w->chan) return true;
    if (w->nc != w->dims[1]) return false;
    for (int64_t c = 0; c < w->nc; c++)
        if (w->chan[c] != c) return false;
    return true;
}

/* First and last real row (column) read along spatial axis j; outside
 * 0..dims-1 they are padding. */
static void reads(const ox_window *w, int j, int64_t *r0, int64_t *r1) {
    *r0 = w->start[j] - w->pad[j][0];
    *r1 = *r0 + (w->count[j] - 1) * w->step[j];
}

static bool reads_padding(const ox_window *w) {
    for (int64_t c = 0; w->chan && c < w->nc; c++)
        if (w->chan[c] < 0) return true;
    for (int j = 0; j < 2; j++) {
        int64_t r0, r1;
        reads(w, j, &r0, &r1);
        if (r0 < 0 || r1 > w->dims[2 + j] - 1) return true;
    }
    return false;
}

static bool is_identity(const ox_window *w) {
    if (!channels_kept(w)) return false;
    for (int j = 0; j < 2; j++) {
        int64_t r0, r1;
        reads(w, j, &r0, &r1);
        if (r0 != 0 || w->count[j] != w->dims[2 + j] || (w->count[j] > 1 && w->step[j] != 1)) return false;
    }
    return true;
}

/* Padding of H and W and nothing else: another Pad of the same value adds
 * to it; with zeros a Conv can take it over. */
static bool pure_pad(const ox_window *w) {
    if (!channels_kept(w)) return false;
    for (int j = 0; j < 2; j++)
        if (w->start[j] != 0 || w->step[j] != 1 || w->count[j] != w->pad[j][0] + w->dims[2 + j] + w->pad[j][1])
            return false;
    return true;
}

static bool pure_zero_pad(const ox_window *w) { return w->rank == 4 && w->value == 0.0f && pure_pad(w); }

/* The whole image moved by (d[0], d[1]) with zeros coming in. */
static bool as_shift(const ox_window *w, int64_t *d) {
    if (!channels_kept(w) || w->rank != 4 || (w->value != 0.0f && reads_padding(w))) return false;
    for (int j = 0; j < 2; j++) {
        int64_t r1;
        reads(w, j, &d[j], &r1);
        if (w->count[j] != w->dims[2 + j] || (w->count[j] > 1 && w->step[j] != 1)) return false;
        if (d[j] <= -w->dims[2 + j] || d[j] >= w->dims[2 + j] || d[j] < INT32_MIN || d[j] > INT32_MAX) return false;
    }
    return true;
}

/* ---------------------------------------------------------------- */
/* Narrowing a window                                                */
/* ---------------------------------------------------------------- */

/* Keep, along each axis d of the window's result, the elements start[d] +
 * k * step[d], k < count[d] (axis 0 whole). */
static bool window_slice(ox_imp *x, ox_window *w, const int64_t *start, const int64_t *step, const int64_t *count) {
    int64_t out[4] = {0};
    window_out(w, out);
    if (out[0] != NASC_BATCH && (start[0] != 0 || step[0] != 1 || count[0] != out[0])) {
        ox_fail(x, "slicing axis 0 is not supported");
        return false;
    }
    if (w->rank > 1 && (start[1] != 0 || step[1] != 1 || count[1] != out[1])) {
        int64_t *chan = ox_alloc(x, (size_t)count[1] * sizeof *chan);
        if (!chan) return false;
        for (int64_t k = 0; k < count[1]; k++) {
            int64_t c = start[1] + k * step[1];
            chan[k] = w->chan ? w->chan[c] : c;
        }
        w->chan = chan;
        w->nc = count[1];
    }
    for (int j = 0; j < 2 && 2 + j < w->rank; j++) {
        int64_t d = 2 + j;
        if (count[d] == out[d] && start[d] == 0 && (step[d] == 1 || count[d] == 1)) continue;
        if (step[d] < 0) {
            ox_fail(x, "a negative step along axis %lld (reversing) is not supported", (long long)d);
            return false;
        }
        w->start[j] += start[d] * w->step[j];
        w->step[j] = count[d] > 1 ? w->step[j] * step[d] : 1;
        w->count[j] = count[d];
        if (w->step[j] > 64) {
            ox_fail(x, "a step of %lld along axis %lld is not supported (at most 64)", (long long)w->step[j],
                    (long long)d);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- */
/* Emitting a window                                                 */
/* ---------------------------------------------------------------- */

#define MAX_SELECT_WEIGHTS ((int64_t)1 << 26)

static nasc_prim_attrs reshape_to(int rank, const int64_t *dims) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.shape_rank = rank;
    for (int d = 0; d < rank; d++) a.shape[d] = dims[d];
    return a;
}

/* An op of the window's node: its output when last (and named), else a
 * helper "<output>.<suffix>". */
static uint32_t op(ox_imp *x, nasc_prim_op o, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a,
                   const char *suffix, bool last) {
    return last ? ox_op(x, o, args, n, a, 0) : ox_op_tmp(x, o, args, n, a, 0, suffix);
}

/* The one-hot convolution of w over v (rank 4). */
static uint32_t select_conv(ox_imp *x, const ox_window *w, uint32_t v, bool last) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    int64_t k[2], off[2], pt[2], pb[2];
    for (int j = 0; j < 2; j++) {
        int64_t r0, r1, n = w->count[j], s = w->step[j];
        reads(w, j, &r0, &r1);
        pt[j] = r0 < 0 ? -r0 : 0;
        pb[j] = r1 > w->dims[2 + j] - 1 ? r1 - (w->dims[2 + j] - 1) : 0;
        int64_t len = w->dims[2 + j] + pt[j] + pb[j];
        off[j] = r0 + pt[j];
        /* the output count floor((len - k) / s) + 1 must be n, and the kernel must reach off */
        k[j] = len - (n - 1) * s - (s - 1);
        if (k[j] < off[j] + 1) k[j] = off[j] + 1;
        if (pt[j] > 64 || pb[j] > 64) {
            ox_fail(x, "padding of %lld along axis %d is not supported (at most 64)",
                    (long long)(pt[j] > pb[j] ? pt[j] : pb[j]), 2 + j);
            return UINT32_MAX;
        }
    }
    bool depthwise = channels_kept(w);
    int64_t cin = depthwise ? 1 : w->dims[1];
    if (w->nc * cin * k[0] * k[1] > MAX_SELECT_WEIGHTS) {
        ox_fail(x, "this window needs a %lldx%lld selection kernel over %lld channels, which is too large",
                (long long)k[0], (long long)k[1], (long long)cin);
        return UINT32_MAX;
    }
    int64_t wd[4] = {w->nc, cin, k[0], k[1]};
    int kc = ox_const_new(x, 4, wd);
    if (kc < 0) return UINT32_MAX;
    float *wf = x->consts[kc].f;
    for (int64_t c = 0; c < w->nc; c++) {
        int64_t ic = depthwise ? 0 : w->chan[c];
        if (ic >= 0) wf[((c * cin + ic) * k[0] + off[0]) * k[1] + off[1]] = 1.0f;
    }
    a.kh = (int)k[0], a.kw = (int)k[1];
    a.sh = (int)w->step[0], a.sw = (int)w->step[1];
    a.pt = (int)pt[0], a.pl = (int)pt[1], a.pb = (int)pb[0], a.pr = (int)pb[1];
    a.groups = depthwise ? (int)w->dims[1] : 1;
    uint32_t args[2] = {v, ox_param(x, kc, 4, wd, "onehot", 0)};
    return op(x, NASC_PRIM_CONV, args, 2, &a, "window", last);
}

/* value where the window reads padding, 0 elsewhere: (1, nc, count H, count W). */
static uint32_t pad_mask(ox_imp *x, const ox_window *w) {
    int64_t md[4] = {1, w->nc, w->count[0], w->count[1]};
    int km = ox_const_new(x, 4, md);
    if (km < 0) return UINT32_MAX;
    float *m = x->consts[km].f;
    for (int64_t c = 0; c < w->nc; c++)
        for (int64_t i = 0; i < w->count[0]; i++)
            for (int64_t j = 0; j < w->count[1]; j++) {
                int64_t r = w->start[0] + i * w->step[0] - w->pad[0][0];
                int64_t q = w->start[1] + j * w->step[1] - w->pad[1][0];
                bool padded = (w->chan && w->chan[c] < 0) || r < 0 || r >= w->dims[2] || q < 0 || q >= w->dims[3];
                m[(c * w->count[0] + i) * w->count[1] + j] = padded ? w->value : 0.0f;
            }
    return ox_param(x, km, 4, md, "pad_value", 0);
}

/* Emit w in the current node; named: its last op is the node's output 0. */
static uint32_t window_emit(ox_imp *x, const ox_window *w, bool named) {
    int64_t d[2];
    bool ident = is_identity(w), shift = !ident && as_shift(w, d);
    bool mask = !ident && w->value != 0.0f && reads_padding(w);
    bool reshape = w->rank != 4 && !ident;
    uint32_t v = w->src;
    if (ident) return op(x, NASC_PRIM_IDENTITY, &v, 1, NULL, "window", named);
    if (reshape) {
        nasc_prim_attrs a = reshape_to(4, w->dims);
        v = ox_op_tmp(x, NASC_PRIM_RESHAPE, &v, 1, &a, 0, "4d");
    }
    bool last = named && !mask && !reshape;
    if (shift) {
        nasc_prim_attrs a = nasc_prim_attrs_default();
        a.dy = (int)d[0];
        a.dx = (int)d[1];
        v = op(x, NASC_PRIM_SHIFT, &v, 1, &a, "shift", last);
    } else {
        v = v == UINT32_MAX ? v : select_conv(x, w, v, last);
    }
    if (v == UINT32_MAX) return v;
    if (mask) {
        uint32_t args[2] = {v, pad_mask(x, w)};
        v = op(x, NASC_PRIM_ADD, args, 2, NULL, "padded", named && !reshape);
    }
    if (reshape) {
        int64_t out[4];
        window_out(w, out);
        nasc_prim_attrs a = reshape_to(w->rank, out);
        v = op(x, NASC_PRIM_RESHAPE, &v, 1, &a, "window_nd", named);
    }
    return v;
}

uint32_t ox_window_emit(ox_imp *x, ox_sym *s) {
    int cur = x->cur;
    x->cur = s->win->node;
    uint32_t v = window_emit(x, s->win, true);
    x->cur = cur;
    if (v != UINT32_MAX) {
        s->value = v;
        s->win = NULL;
    }
    return v;
}

/* Every node that reads s (at least one) reads it as input 0 and may take
 * the window over: a Slice narrows it, a Pad of the same value widens plain
 * padding, a Conv or AveragePool takes plain zero padding into its own. */
static bool readers_fold(ox_imp *x, const ox_sym *s, const ox_window *w) {
    if (s->is_output || s->uses < 1) return false;
    int seen = 0;
    for (size_t ni = (size_t)x->cur + 1; ni < x->g->n_node; ni++) {
        const Onnx__NodeProto *n = x->g->node[ni];
        for (size_t i = 0; i < n->n_input; i++) {
            if (!n->input[i] || strcmp(n->input[i], s->name) != 0) continue;
            const char *t = n->op_type ? n->op_type : "";
            const char *dom = n->domain ? n->domain : "";
            bool ok = i == 0 && (!dom[0] || strcmp(dom, "ai.onnx") == 0) &&
                      (strcmp(t, "Slice") == 0 || (pure_pad(w) && strcmp(t, "Pad") == 0) ||
                       (pure_zero_pad(w) && (strcmp(t, "Conv") == 0 || strcmp(t, "AveragePool") == 0)));
            if (!ok) return false;
            seen++;
        }
    }
    return seen == s->uses;
}

/* The node's output 0 is w: pending when every reader may fold it, else
 * emitted now. */
static nasc_status finish(ox_imp *x, const ox_window *w) {
    ox_sym *s = ox_out_sym(x, 0);
    if (!s) return NASC_OK; /* nobody can read it */
    ox_window *keep = ox_alloc(x, sizeof *keep);
    if (!keep) return status_of(x);
    *keep = *w;
    s->win = keep;
    s->defined = true;
    if (readers_fold(x, s, w)) return NASC_OK;
    return ox_window_emit(x, s) == UINT32_MAX ? status_of(x) : NASC_OK;
}

/* The window input i reads: a copy of its pending window, else a new one
 * over its value. */
static bool window_of_input(ox_imp *x, uint32_t i, ox_window *w) {
    ox_sym *s = ox_in_sym(x, i);
    if (s && s->value == UINT32_MAX && s->win) {
        *w = *s->win;
        w->node = x->cur;
        return true;
    }
    uint32_t v = ox_value(x, i);
    return v != UINT32_MAX && window_init(x, v, w);
}

uint32_t ox_value_unpadded(ox_imp *x, uint32_t i, int64_t pad[4]) {
    ox_sym *s = ox_in_sym(x, i);
    memset(pad, 0, 4 * sizeof *pad);
    if (s && s->value == UINT32_MAX && s->win && pure_zero_pad(s->win)) {
        pad[0] = s->win->pad[0][0], pad[1] = s->win->pad[1][0];
        pad[2] = s->win->pad[0][1], pad[3] = s->win->pad[1][1];
        return s->win->src;
    }
    return ox_value(x, i);
}

/* ---------------------------------------------------------------- */
/* The operators                                                     */
/* ---------------------------------------------------------------- */

nasc_status ox_lower_slice(ox_imp *x) {
    if (ox_all_const(x)) return ox_fold_slice(x);
    if (!ox_node(x)->n_input) return ox_fail(x, "input 1 is missing");
    ox_window w;
    if (!window_of_input(x, 0, &w)) return status_of(x);
    int64_t dims[4], start[4], step[4], count[4];
    window_out(&w, dims);
    if (!ox_slice_ranges(x, w.rank, dims, start, step, count) || !window_slice(x, &w, start, step, count))
        return status_of(x);
    return finish(x, &w);
}

/* Pad: constant mode; pads and value as attributes before operator set 11,
 * as inputs (and axes, from operator set 18) since. Negative pads crop. */
nasc_status ox_lower_pad(ox_imp *x) {
    static const char *const known[] = {"mode", "pads", "paddings", "value", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    char mode[32];
    if (!ox_attr_string(x, "mode", "constant", mode, sizeof mode)) return status_of(x);
    if (strcmp(mode, "constant") != 0)
        return ox_fail(x, "mode '%s' is not supported (only 'constant': nasc pads with a value)", mode);
    int64_t pads[2 * OX_MAX_RANK], axes[OX_MAX_RANK];
    int n, na = 0;
    float value = 0.0f;
    if (x->opset < 11) {
        if (!ox_attr_ints(x, ox_attr(x, "paddings") ? "paddings" : "pads", pads, 2 * OX_MAX_RANK, &n) ||
            !ox_attr_float(x, "value", 0.0f, &value))
            return status_of(x);
    } else {
        if (!ox_ints_of(x, 1, "pads", 11, "pads", pads, 2 * OX_MAX_RANK, &n) ||
            !ox_ints_of(x, 3, "axes", 18, "axes", axes, OX_MAX_RANK, &na))
            return status_of(x);
        if (ox_in(x, 2)) {
            const ox_const *c = ox_const_in(x, 2, "constant_value");
            if (!c) return status_of(x);
            if (c->numel != 1) return ox_fail(x, "input 3 (constant_value) must hold one value");
            value = c->dtype == OX_F32 ? c->f[0] : (float)c->i[0];
        }
    }
    /* a Pad of a Pad of the same value is one Pad */
    ox_window w, prev = {0};
    ox_sym *in = ox_in_sym(x, 0);
    bool stack = in && in->value == UINT32_MAX && in->win && pure_pad(in->win) && in->win->value == value;
    if (stack) {
        prev = *in->win;
        if (!window_init(x, prev.src, &w)) return status_of(x);
    } else {
        uint32_t v = ox_value(x, 0);
        if (v == UINT32_MAX || !window_init(x, v, &w)) return status_of(x);
    }
    int r = w.rank;
    int64_t full[2 * 4] = {0};
    if (na) {
        if (n != 2 * na) return ox_fail(x, "%d pads for %d axes (2 per axis are needed)", n, na);
        for (int i = 0; i < na; i++) {
            int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
            if (a < 0 || a >= r) return ox_fail(x, "axis %lld is out of range for rank %d", (long long)axes[i], r);
            full[a] = pads[i], full[r + a] = pads[na + i];
        }
    } else {
        if (n != 2 * r) return ox_fail(x, "%d pads for a tensor of rank %d (2 per axis are needed)", n, r);
        for (int i = 0; i < 2 * r; i++) full[i] = pads[i];
    }
    if (full[0] || full[r])
        return ox_fail(x, "padding axis 0 (%s) is not supported", w.dims[0] == NASC_BATCH ? "the batch" : "images");
    for (int i = 0; i < 2 * r; i++)
        if (full[i] < -(1 << 24) || full[i] > (1 << 24))
            return ox_fail(x, "a pad of %lld is not supported (at most 2^24 either way)", (long long)full[i]);
    int64_t before[4], after[4];
    for (int d = 0; d < 4; d++) before[d] = d < r ? full[d] : 0, after[d] = d < r ? full[r + d] : 0;
    if (stack && (before[2] < 0 || after[2] < 0 || before[3] < 0 || after[3] < 0)) {
        /* cropping what the first Pad added: emit that one on its own */
        stack = false;
        uint32_t v = ox_value(x, 0);
        if (v == UINT32_MAX || !window_init(x, v, &w)) return status_of(x);
    }
    for (int j = 0; stack && j < 2; j++) before[2 + j] += prev.pad[j][0], after[2 + j] += prev.pad[j][1];
    for (int d = 1; d < 4; d++)
        if (w.dims[d] + before[d] + after[d] < 1)
            return ox_fail(x, "the pads leave axis %d empty (an empty tensor is not supported)", d);
    if (before[1] || after[1]) {
        int64_t nc = w.dims[1] + before[1] + after[1];
        int64_t *chan = ox_alloc(x, (size_t)nc * sizeof *chan);
        if (!chan) return status_of(x);
        for (int64_t c = 0; c < nc; c++) {
            int64_t ic = c - before[1];
            chan[c] = ic >= 0 && ic < w.dims[1] ? ic : -1;
        }
        w.chan = chan;
        w.nc = nc;
    }
    for (int j = 0; j < 2; j++) {
        int64_t b = before[2 + j], e = after[2 + j];
        w.pad[j][0] = b > 0 ? b : 0;
        w.pad[j][1] = e > 0 ? e : 0;
        w.start[j] = b < 0 ? -b : 0;
        w.count[j] = w.dims[2 + j] + b + e;
    }
    w.value = value;
    return finish(x, &w);
}

/* Gather along axis 1 (any channels) or a spatial axis (evenly spaced,
 * increasing indices); scalar indices drop the axis. */
nasc_status ox_lower_gather(ox_imp *x) {
    static const char *const known[] = {"axis", NULL};
    if (!ox_attrs_known(x, known)) return status_of(x);
    if (ox_all_const(x)) return ox_fold_gather(x);
    int64_t axis;
    if (!ox_attr_int(x, "axis", 0, &axis)) return status_of(x);
    const ox_const *ic = ox_const_in(x, 1, "indices");
    if (!ic) return status_of(x);
    if (ic->dtype != OX_I64 || ic->rank > 1 || ic->numel < 1)
        return ox_fail(x, "input 2 (indices) must be an integer scalar or a non-empty 1-D tensor");
    int ik = (int)(ic - x->consts);
    ox_window w;
    uint32_t v = ox_value(x, 0);
    if (v == UINT32_MAX || !window_init(x, v, &w)) return status_of(x);
    int r = w.rank;
    if (axis < -r || axis >= r) return ox_fail(x, "axis %lld is out of range for rank %d", (long long)axis, r);
    if (axis < 0) axis += r;
    if (axis == 0) return ox_fail(x, "gathering along axis 0 (the batch) is not supported");
    int64_t n = x->consts[ik].numel, dim = w.dims[axis];
    if (n > (1 << 24)) return ox_fail(x, "%lld indices are not supported (at most 2^24)", (long long)n);
    int64_t *idx = ox_alloc(x, (size_t)n * sizeof *idx);
    if (!idx) return status_of(x);
    for (int64_t k = 0; k < n; k++) {
        int64_t i = x->consts[ik].i[k];
        if (i < 0) i += dim;
        if (i < 0 || i >= dim)
            return ox_fail(x, "index %lld is out of range for a dim of %lld", (long long)x->consts[ik].i[k],
                           (long long)dim);
        idx[k] = i;
    }
    int64_t start[4] = {0}, step[4] = {1, 1, 1, 1}, count[4];
    window_out(&w, count);
    if (axis == 1) {
        w.chan = idx;
        w.nc = n;
    } else {
        int64_t s = n > 1 ? idx[1] - idx[0] : 1;
        for (int64_t k = 1; k < n; k++)
            if (s < 1 || idx[k] - idx[k - 1] != s)
                return ox_fail(x, "indices along axis %lld must be evenly spaced and increasing", (long long)axis);
        start[axis] = idx[0], step[axis] = s, count[axis] = n;
        if (!window_slice(x, &w, start, step, count)) return status_of(x);
    }
    if (x->consts[ik].rank == 1) return finish(x, &w);
    /* a scalar index: the axis goes */
    int64_t out[4], od[4];
    window_out(&w, out);
    int orank = 0;
    for (int d = 0; d < r; d++)
        if (d != axis) od[orank++] = out[d];
    if (orank < 1) return ox_fail(x, "the result would be a scalar");
    uint32_t y = window_emit(x, &w, false);
    if (y == UINT32_MAX) return status_of(x);
    nasc_prim_attrs a = reshape_to(orank, od);
    return ox_define(x, 0, ox_op(x, NASC_PRIM_RESHAPE, &y, 1, &a, 0));
}
