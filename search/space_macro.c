/* space_macro.c - the two layer-by-layer spaces: enas-macro and nasrl.
 *
 * Both build one macro cell that is the whole body (stem, body, head):
 * layers l0 .. l(L-1), each reading the previous layer's output (l0 reads
 * the stem, x), plus the earlier values its SKIP decision picks.
 *
 * Skip masks follow the ENAS code (general_child.py): layer k has k
 * candidates, the inputs of the layers before it. Bit j is the input of
 * layer j: the stem x for j = 0, else the output of l(j-1). The previous
 * layer l(k-1) always feeds layer k, so it is not a candidate, and every
 * mask gives a different net.
 *
 * Resolution: ENAS pools after layers L/3-1 and 2L/3-1 (integer division;
 * none when L < 3): there, every earlier output is halved by a factorized
 * reduction, which we build lazily (node <src>_r<level>, only for the
 * values a later layer reads, each at most once). nasrl puts its stride
 * decisions ({1, 2}) on the same layers, so at most two halvings
 * (28 -> 14 -> 7) whatever the vector; an earlier output read by a layer at
 * a smaller resolution goes through the same factorized reductions.
 *
 * enas-macro (search-time ENAS): a layer is one of 6 ops on its input; with
 * skips, its output is the sum of the op's output and the skip values
 * (`add`, as _enas_layer's add_n; the batch norm after that sum has no arch
 * op and is left out). All layers have the net's channel count C; the
 * factorized reductions keep it (ENAS's search doubles no filters).
 *
 * nasrl (Zoph & Le 2017): a layer is a `conv` (ReLU, conv kh x kw with f
 * filters and stride s, BN); with skips its input is the channel concat of
 * the previous layer and the skip values, previous layer first. The output
 * is the last layer: every other layer feeds the next, so the paper's
 * "concatenate the layers nothing reads" is the last layer alone.
 */
#include <stdio.h>
#include <string.h>

#include "space_internal.h"

#define MAX_LEVELS 3 /* resolution levels: 0 (input size), 1, 2 */
#define MAX_ADD 16   /* operands per node that ir/lower.c takes */

enum { MACRO_CHANNELS = 24 };

static const nasc_op enas_ops[] = {NASC_OP_CONV_3X3,     NASC_OP_CONV_5X5,
                                   NASC_OP_SEP_CONV_3X3, NASC_OP_SEP_CONV_5X5,
                                   NASC_OP_AVG_POOL_3X3, NASC_OP_MAX_POOL_3X3};
static const char *const enas_labels[] = {"conv_3x3",     "conv_5x5",     "sep_conv_3x3",
                                          "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"};
#define N_ENAS_OPS 6

static const int kernel_sizes[] = {1, 3, 5, 7};
static const char *const kernel_labels[] = {"1", "3", "5", "7"};
static const int filter_counts[] = {24, 36, 48, 64};
static const char *const filter_labels[] = {"24", "36", "48", "64"};
static const char *const stride_labels[] = {"1", "2"};

/* The layers after which the resolution halves (ENAS pool_layers), or -1. */
static void reduction_layers(int layers, int p[2]) {
    if (layers < 3) {
        p[0] = p[1] = -1;
        return;
    }
    p[0] = layers / 3 - 1;
    p[1] = 2 * (layers / 3) - 1;
}

static bool is_reduction_layer(int layers, int k) {
    int p[2];
    reduction_layers(layers, p);
    return k >= 0 && (k == p[0] || k == p[1]);
}

/* enas-macro: the resolution level layer k runs at. */
static int enas_level(int layers, int k) {
    int p[2];
    reduction_layers(layers, p);
    return (p[0] >= 0 && k > p[0]) + (p[1] >= 0 && k > p[1]);
}

static nasc_skeleton macro_skeleton(void) {
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_MACRO);
    sk.channels = MACRO_CHANNELS;
    sk.stem_multiplier = 1;
    return sk;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

static void reductions_phrase(int layers, char *buf, size_t size) {
    int p[2];
    reduction_layers(layers, p);
    if (p[0] < 0)
        snprintf(buf, size, "none (fewer than 3 layers)");
    else
        snprintf(buf, size, "after l%d and l%d", p[0], p[1]);
}

static nasc_status build_enas(nasc_space *sp) {
    nasc_status st = NASC_OK;
    for (int k = 0; k < sp->size && !st; k++) {
        st = space_add_choice(sp, N_ENAS_OPS, k, enas_labels, "l%d.op", k);
        if (!st) st = space_add_skip(sp, k, k, "l%d.skip", k);
    }
    char red[64];
    reductions_phrase(sp->size, red, sizeof red);
    snprintf(sp->summary, sizeof sp->summary,
             "ENAS macro space (Pham, Guan, Zoph, Le & Dean, ICML 2018), 6 ops.\n"
             "%d layer%s l0..l%d, all with %d channels. Layer k applies its op to the\n"
             "previous layer's output (l0: the stem x) and adds the skip values its\n"
             "mask picks. Skip mask of layer k: bit j is the input of layer j (x for\n"
             "j = 0, else l<j-1>); the previous layer always feeds layer k.\n"
             "The resolution halves %s (factorized reductions of\n"
             "the earlier values read after that).",
             sp->size, sp->size == 1 ? "" : "s", sp->size - 1, MACRO_CHANNELS, red);
    return st;
}

static nasc_status build_nasrl(nasc_space *sp) {
    nasc_status st = NASC_OK;
    for (int k = 0; k < sp->size && !st; k++) {
        st = space_add_choice(sp, 4, k, kernel_labels, "l%d.kh", k);
        if (!st) st = space_add_choice(sp, 4, k, kernel_labels, "l%d.kw", k);
        if (!st && is_reduction_layer(sp->size, k))
            st = space_add_choice(sp, 2, k, stride_labels, "l%d.stride", k);
        if (!st) st = space_add_choice(sp, 4, k, filter_labels, "l%d.filters", k);
        if (!st) st = space_add_skip(sp, k, k, "l%d.skip", k);
    }
    int p[2];
    reduction_layers(sp->size, p);
    char strides[64];
    if (p[0] < 0)
        snprintf(strides, sizeof strides, "none (fewer than 3 layers)");
    else
        snprintf(strides, sizeof strides, "l%d and l%d", p[0], p[1]);
    snprintf(sp->summary, sizeof sp->summary,
             "NAS-RL layer-by-layer CNN space (Zoph & Le, ICLR 2017).\n"
             "%d layer%s l0..l%d, each ReLU-conv(kh x kw, filters, stride)-BN. Layer k\n"
             "reads the channel concat of the previous layer (l0: the stem x, %d\n"
             "channels) and the skip values its mask picks. Skip mask of layer k: bit j\n"
             "is the input of layer j (x for j = 0, else l<j-1>).\n"
             "Stride decisions: %s; earlier outputs read at a smaller\n"
             "resolution go through factorized reductions. The output is the last layer.",
             sp->size, sp->size == 1 ? "" : "s", sp->size - 1, MACRO_CHANNELS, strides);
    return st;
}

/* ------------------------------------------------------------------ */
/* Decode                                                              */
/* ------------------------------------------------------------------ */

/* The values of the body built so far: per source (x = index 0, layer k =
 * k + 1) its level and its value at every level reached. */
typedef struct body {
    nasc_module *m;
    int *level;                    /* (L + 1,) */
    uint32_t (*at)[MAX_LEVELS];    /* (L + 1, MAX_LEVELS): value, UINT32_MAX = not built */
} body;

static const char *src_name(int s, char *buf, size_t size) {
    if (s == 0)
        snprintf(buf, size, "x");
    else
        snprintf(buf, size, "l%d", s - 1);
    return buf;
}

/* Source s at level lvl, adding the factorized reductions it needs. */
static uint32_t body_get(body *b, int s, int lvl) {
    if (b->at[s][lvl] != UINT32_MAX || lvl <= b->level[s]) return b->at[s][lvl];
    uint32_t prev = body_get(b, s, lvl - 1);
    if (prev == UINT32_MAX) return prev;
    char sn[16], name[32];
    snprintf(name, sizeof name, "%s_r%d", src_name(s, sn, sizeof sn), lvl);
    uint32_t v = nasc_cell_add_node(b->m, NASC_OP_FACTORIZED_REDUCE, &prev, 1, NULL, name, NASC_NOLOC);
    b->at[s][lvl] = v;
    return v;
}

static nasc_status body_init(body *b, nasc_module *m, int layers) {
    b->m = m;
    b->level = nasc_alloc(m->ctx, (size_t)(layers + 1) * sizeof *b->level);
    b->at = b->level ? nasc_alloc(m->ctx, (size_t)(layers + 1) * sizeof *b->at) : NULL;
    if (!b->at) {
        nasc_free(m->ctx, b->level);
        return NASC_ENOMEM;
    }
    for (int s = 0; s <= layers; s++) {
        b->level[s] = 0;
        for (int l = 0; l < MAX_LEVELS; l++) b->at[s][l] = UINT32_MAX;
    }
    b->at[0][0] = 0; /* x */
    return NASC_OK;
}

static void body_free(body *b) {
    nasc_free(b->m->ctx, b->at);
    nasc_free(b->m->ctx, b->level);
}

/* The operands of layer k at level lvl: the previous layer, then the skip
 * sources of mask in order. Returns the count, 0 on failure. */
static uint32_t layer_inputs(body *b, int k, uint32_t mask, int lvl, uint32_t *args) {
    uint32_t n = 0;
    args[n++] = body_get(b, k, lvl); /* source k = the output of l(k-1), or x */
    for (int j = 0; j < k; j++)
        if (mask >> j & 1u) args[n++] = body_get(b, j, lvl);
    for (uint32_t i = 0; i < n; i++)
        if (args[i] == UINT32_MAX) return 0;
    return n;
}

static nasc_status finish_body(nasc_module *m, int ci) {
    nasc_status st = nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0);
    if (!st) st = nasc_cell_end(m);
    if (!st) {
        nasc_skeleton sk = macro_skeleton();
        sk.normal_cell = ci;
        nasc_net_set_skeleton(m, &sk);
    }
    return st;
}

static nasc_status decode_enas(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    int L = sp->size;
    int ci = nasc_cell_begin(m, "body", NASC_CELL_MACRO, 1, NASC_NOLOC);
    if (ci < 0) return space_build_status(m);
    body b;
    nasc_status st = body_init(&b, m, L);
    if (st) return st;
    uint32_t args[NASC_SKIP_MAX + 2];
    for (int k = 0; k < L && !st; k++) {
        nasc_op op = enas_ops[d[2 * k]];
        uint32_t mask = d[2 * k + 1];
        int lvl = enas_level(L, k);
        uint32_t n = layer_inputs(&b, k, mask, lvl, args);
        if (!n) {
            st = space_build_status(m);
            break;
        }
        char name[24];
        /* l<k>_op whether or not skips are added to it: one name for layer k's
         * op, which a one-shot search keys its shared tensors by */
        snprintf(name, sizeof name, "l%d_op", k);
        uint32_t v = nasc_cell_add_node(m, op, &args[0], 1, NULL, name, NASC_NOLOC);
        if (v != UINT32_MAX && mask) {
            args[0] = v;
            /* The lowering takes at most MAX_ADD operands per node: a longer
             * sum starts with partial sums l<k>_sum, l<k>_sum1, ... */
            uint32_t done = 0;
            for (int part = 0; v != UINT32_MAX && n - done > MAX_ADD; part++) {
                snprintf(name, sizeof name, part ? "l%d_sum%d" : "l%d_sum", k, part);
                v = nasc_cell_add_node(m, NASC_OP_ADD, args + done, MAX_ADD, NULL, name, NASC_NOLOC);
                done += MAX_ADD - 1;
                args[done] = v;
            }
            snprintf(name, sizeof name, "l%d", k);
            if (v != UINT32_MAX)
                v = nasc_cell_add_node(m, NASC_OP_ADD, args + done, n - done, NULL, name, NASC_NOLOC);
        }
        if (v == UINT32_MAX) {
            st = space_build_status(m);
            break;
        }
        b.at[k + 1][lvl] = v;
        b.level[k + 1] = lvl;
    }
    if (!st) st = finish_body(m, ci);
    body_free(&b);
    return st;
}

/* Decisions of nasrl layer k, read from the vector at *pos. */
typedef struct rl_layer {
    int kh, kw, stride, filters;
    uint32_t mask;
} rl_layer;

static rl_layer rl_read(const nasc_space *sp, const uint32_t *d, int k, uint32_t *pos) {
    rl_layer r;
    r.kh = kernel_sizes[d[(*pos)++]];
    r.kw = kernel_sizes[d[(*pos)++]];
    r.stride = is_reduction_layer(sp->size, k) ? (int)d[(*pos)++] + 1 : 1;
    r.filters = filter_counts[d[(*pos)++]];
    r.mask = d[(*pos)++];
    return r;
}

static nasc_status decode_nasrl(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    int L = sp->size;
    int ci = nasc_cell_begin(m, "body", NASC_CELL_MACRO, 1, NASC_NOLOC);
    if (ci < 0) return space_build_status(m);
    body b;
    nasc_status st = body_init(&b, m, L);
    if (st) return st;
    uint32_t args[NASC_SKIP_MAX + 2], pos = 0;
    for (int k = 0; k < L && !st; k++) {
        rl_layer r = rl_read(sp, d, k, &pos);
        int lvl = b.level[k]; /* the level of the previous layer's output */
        uint32_t n = layer_inputs(&b, k, r.mask, lvl, args);
        char name[24];
        uint32_t in = n ? args[0] : UINT32_MAX;
        if (n > 1) {
            snprintf(name, sizeof name, "l%d_in", k);
            in = nasc_cell_add_node(m, NASC_OP_CONCAT, args, n, NULL, name, NASC_NOLOC);
        }
        uint32_t v = UINT32_MAX;
        if (in != UINT32_MAX) {
            nasc_node_attrs a = {r.kh, r.kw, r.filters, r.stride == 2 ? 2 : 0, 0, 0, 0};
            snprintf(name, sizeof name, "l%d", k);
            v = nasc_cell_add_node(m, NASC_OP_CONV, &in, 1, &a, name, NASC_NOLOC);
        }
        if (v == UINT32_MAX) {
            st = space_build_status(m);
            break;
        }
        int out_lvl = lvl + (r.stride == 2);
        b.at[k + 1][out_lvl] = v;
        b.level[k + 1] = out_lvl;
    }
    if (!st) st = finish_body(m, ci);
    body_free(&b);
    return st;
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */
/* ------------------------------------------------------------------ */

enum {
    MV_OTHER,  /* not (yet) classified */
    MV_SRC,    /* x, a layer's output, or a factorized reduction of one */
    MV_OP,     /* enas-macro: a layer's op whose output an add sums with skips */
    MV_CAT,    /* nasrl: the concat a layer reads */
    MV_PART,   /* enas-macro: a partial sum of a layer's op and skips */
};

typedef struct mval {
    uint8_t kind;
    int src;      /* MV_SRC: source index (0 = x, k + 1 = layer k); MV_OP: the layer */
    int level;    /* MV_SRC: resolution level */
    uint32_t readers;
    uint32_t reader; /* the last node value reading it */
    uint32_t mask;   /* MV_PART: the skips summed so far */
    bool has_op;     /* MV_PART: the layer's op is in the sum */
} mval;

typedef struct parse {
    const nasc_space *sp;
    const nasc_module *m;
    const nasc_cell *c;
    mval *v;           /* (n_inputs + n_nodes,) */
    int layers;        /* layers seen */
    int *out_level;    /* (L + 1,): level of each source's output; [0] = x */
    uint32_t last;     /* the last layer's output value */
} parse;

static const nasc_node *node_of(const parse *p, uint32_t v) {
    return &p->m->nodes[p->c->first_node + (v - p->c->n_inputs)];
}

static const char *vname(const parse *p, uint32_t v) { return nasc_cell_value_name(p->m, p->c, v); }

static nasc_status parse_init(parse *p, const nasc_space *sp, const nasc_module *m) {
    memset(p, 0, sizeof *p);
    p->sp = sp;
    p->m = m;
    const nasc_skeleton *sk = &m->skel;
    if (!m->has_skeleton || sk->kind != NASC_NET_MACRO)
        return space_reject(sp, m, NULL, NULL, "it is a %s net; this space builds macro nets",
                            m->has_skeleton ? nasc_net_kind_name(sk->kind) : "skeleton-less");
    p->c = &m->cells[sk->normal_cell];
    const nasc_cell *c = p->c;
    uint32_t nv = c->n_inputs + c->n_nodes;
    p->v = nasc_alloc(m->ctx, (nv + 1) * sizeof *p->v);
    p->out_level = p->v ? nasc_alloc(m->ctx, (size_t)(sp->size + 2) * sizeof *p->out_level) : NULL;
    if (!p->out_level) {
        nasc_free(m->ctx, p->v);
        p->v = NULL;
        return NASC_ENOMEM;
    }
    memset(p->v, 0, (nv + 1) * sizeof *p->v);
    memset(p->out_level, 0, (size_t)(sp->size + 2) * sizeof *p->out_level);
    p->v[0] = (mval){MV_SRC, 0, 0, 0, 0, 0, false};
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        for (uint32_t a = 0; a < nd->n_args; a++) {
            mval *t = &p->v[m->args[nd->first_arg + a]];
            t->readers++;
            t->reader = c->n_inputs + j;
        }
    }
    return NASC_OK;
}

static void parse_free(parse *p) {
    if (!p->m) return;
    nasc_free(p->m->ctx, p->v);
    nasc_free(p->m->ctx, p->out_level);
}

/* A factorized reduction of a source: one more level. */
static nasc_status parse_reduce(parse *p, const nasc_node *nd, uint32_t v) {
    uint32_t a = p->m->args[nd->first_arg];
    if (p->v[a].kind != MV_SRC)
        return space_reject(p->sp, p->m, p->c, nd, "it reduces '%s', which is not the stem or a "
                                                   "layer's output",
                            vname(p, a));
    if (nd->attrs.filters)
        return space_reject(p->sp, p->m, p->c, nd, "the reductions of this space keep the "
                                                   "channel count (no 'filters')");
    if (p->v[a].level + 1 >= MAX_LEVELS)
        return space_reject(p->sp, p->m, p->c, nd, "the space halves the resolution at most %d "
                                                   "times",
                            MAX_LEVELS - 1);
    p->v[v] = (mval){MV_SRC, p->v[a].src, p->v[a].level + 1, p->v[v].readers, p->v[v].reader, 0, false};
    return NASC_OK;
}

/* Value a must be source `src` at level lvl; what names what went wrong. */
static nasc_status expect_src(parse *p, const nasc_node *nd, uint32_t a, int src, int lvl,
                              const char *what) {
    char sn[16];
    if (p->v[a].kind != MV_SRC || p->v[a].src != src)
        return space_reject(p->sp, p->m, p->c, nd, "%s is '%s'; in this space it is %s", what,
                            vname(p, a), src_name(src, sn, sizeof sn));
    if (p->v[a].level != lvl)
        return space_reject(p->sp, p->m, p->c, nd,
                            "%s '%s' is at resolution level %d, but layer %d runs at level %d "
                            "(levels count the halvings)",
                            what, vname(p, a), p->v[a].level, p->layers, lvl);
    return NASC_OK;
}

/* The skip sources args[from..n) of layer k at level lvl into a mask:
 * distinct, in increasing order, each the input of an earlier layer. */
static nasc_status parse_skips(parse *p, const nasc_node *nd, const uint32_t *args, uint32_t from,
                               uint32_t n, int k, int lvl, uint32_t *mask) {
    *mask = 0;
    int last = -1;
    for (uint32_t i = from; i < n; i++) {
        uint32_t a = args[i];
        if (p->v[a].kind != MV_SRC || p->v[a].src >= k) {
            char cands[32] = "x";
            if (k >= 2) snprintf(cands, sizeof cands, "x, l0 .. l%d", k - 2);
            return space_reject(p->sp, p->m, p->c, nd,
                                "it reads '%s'; layer %d's skip inputs are the inputs of the "
                                "layers before it (%s)",
                                vname(p, a), k, cands);
        }
        if (p->v[a].src <= last)
            return space_reject(p->sp, p->m, p->c, nd, "its skip inputs are not in layer order "
                                                       "(or repeat one)");
        last = p->v[a].src;
        nasc_status st = expect_src(p, nd, a, last, lvl, "a skip input");
        if (st) return st;
        *mask |= 1u << last;
    }
    return NASC_OK;
}

/* After the nodes: the layer count, and the output is the last layer. */
static nasc_status parse_finish(parse *p) {
    const nasc_cell *c = p->c;
    if (p->layers != p->sp->size)
        return space_reject(p->sp, p->m, c, NULL, "it has %d layer%s; this space has %d (the "
                                                  "layers option)",
                            p->layers, p->layers == 1 ? "" : "s", p->sp->size);
    if (c->out_rule != NASC_OUT_CONCAT)
        return space_reject(p->sp, p->m, c, NULL, "its output rule is '%s'; this space's body "
                                                  "outputs its last layer (concat of the loose "
                                                  "ends)",
                            nasc_out_rule_name(c->out_rule));
    if (c->n_outs > 1 || (c->n_outs == 1 && p->m->args[c->first_out] != p->last))
        return space_reject(p->sp, p->m, c, NULL, "its output is not the last layer alone");
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        uint32_t v = c->n_inputs + j;
        if (p->v[v].readers == 0 && v != p->last)
            return space_reject(p->sp, p->m, c, node_of(p, v),
                                "nothing reads it; in this space every layer feeds the next and "
                                "the last layer is the output");
    }
    return NASC_OK;
}

static int enas_op_index(nasc_op op) {
    for (int i = 0; i < N_ENAS_OPS; i++)
        if (enas_ops[i] == op) return i;
    return -1;
}

static nasc_status encode_enas(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    parse p;
    nasc_status st = parse_init(&p, sp, m);
    if (st) {
        parse_free(&p);
        return st;
    }
    const nasc_cell *c = p.c;
    int L = sp->size;
    for (uint32_t j = 0; j < c->n_nodes && !st; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        const uint32_t *args = &m->args[nd->first_arg];
        uint32_t v = c->n_inputs + j;
        int oi = enas_op_index(nd->op);
        if (nd->op == NASC_OP_FACTORIZED_REDUCE) {
            st = parse_reduce(&p, nd, v);
        } else if (oi >= 0) {
            int k = p.layers;
            if (k >= L) {
                st = space_reject(sp, m, c, nd, "the body has more than %d layers (the layers "
                                                "option)",
                                  L);
                break;
            }
            if (nd->attrs.kh || nd->attrs.filters || nd->attrs.stride) {
                st = space_reject(sp, m, c, nd, "this space sets no kernel, filters or stride "
                                                "attributes");
                break;
            }
            int lvl = enas_level(L, k);
            st = expect_src(&p, nd, args[0], k, lvl, "its input");
            if (st) break;
            d[2 * k] = (uint32_t)oi;
            d[2 * k + 1] = 0;
            p.layers++;
            const mval *r = &p.v[v];
            if (r->readers == 1 && node_of(&p, r->reader)->op == NASC_OP_ADD) {
                p.v[v] = (mval){MV_OP, k, lvl, r->readers, r->reader, 0, false};
            } else {
                p.v[v] = (mval){MV_SRC, k + 1, lvl, r->readers, r->reader, 0, false};
                p.last = v;
            }
        } else if (nd->op == NASC_OP_ADD) {
            /* op(l) + skips, possibly through partial sums (MAX_ADD) */
            int k = p.layers - 1, lvl = enas_level(L, k < 0 ? 0 : k);
            bool has_op = false;
            uint32_t mask = 0;
            for (uint32_t i = 0; i < nd->n_args && !st; i++) {
                const mval *a = &p.v[args[i]];
                uint32_t bits = 0;
                if ((a->kind == MV_OP || a->kind == MV_PART) && a->src == k) {
                    if (has_op && (a->kind == MV_OP || a->has_op)) {
                        st = space_reject(sp, m, c, nd, "it sums layer %d's op twice", k);
                        break;
                    }
                    has_op |= a->kind == MV_OP || a->has_op;
                    bits = a->kind == MV_PART ? a->mask : 0;
                } else {
                    st = parse_skips(&p, nd, &args[i], 0, 1, k, lvl, &bits);
                }
                if (!st && (mask & bits))
                    st = space_reject(sp, m, c, nd, "it sums a skip input twice");
                mask |= bits;
            }
            if (st) break;
            const mval *r = &p.v[v];
            if (k >= 0 && r->readers == 1 && node_of(&p, r->reader)->op == NASC_OP_ADD) {
                p.v[v] = (mval){MV_PART, k, lvl, r->readers, r->reader, mask, has_op};
                continue;
            }
            if (k < 0 || !has_op || mask == 0) {
                st = space_reject(sp, m, c, nd,
                                  "an add in this space sums a layer's op with that layer's skip "
                                  "inputs (at least one)");
                break;
            }
            d[2 * k + 1] = mask;
            p.v[v] = (mval){MV_SRC, k + 1, lvl, r->readers, r->reader, 0, false};
            p.last = v;
        } else {
            char list[160];
            size_t used = 0;
            for (int k = 0; k < N_ENAS_OPS; k++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s, ", enas_labels[k]);
            st = space_reject(sp, m, c, nd,
                              "op '%s' is not part of this space (layer ops: %sand add, "
                              "factorized_reduce)",
                              nasc_arch_op_info_get(nd->op)->name, list);
        }
    }
    if (!st) st = parse_finish(&p);
    parse_free(&p);
    return st;
}

static int find_int(const int *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return i;
    return -1;
}

static nasc_status encode_nasrl(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    parse p;
    nasc_status st = parse_init(&p, sp, m);
    if (st) {
        parse_free(&p);
        return st;
    }
    const nasc_cell *c = p.c;
    int L = sp->size;
    uint32_t pos = 0;
    for (uint32_t j = 0; j < c->n_nodes && !st; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        uint32_t v = c->n_inputs + j;
        if (nd->op == NASC_OP_FACTORIZED_REDUCE) {
            st = parse_reduce(&p, nd, v);
        } else if (nd->op == NASC_OP_CONCAT) {
            if (p.v[v].readers != 1 || node_of(&p, p.v[v].reader)->op != NASC_OP_CONV) {
                st = space_reject(sp, m, c, nd, "a concat in this space is the input of one conv "
                                                "layer");
                break;
            }
            p.v[v].kind = MV_CAT;
        } else if (nd->op == NASC_OP_CONV) {
            int k = p.layers;
            if (k >= L) {
                st = space_reject(sp, m, c, nd, "the body has more than %d layers (the layers "
                                                "option)",
                                  L);
                break;
            }
            int lvl = p.out_level[k];
            int kh = find_int(kernel_sizes, 4, nd->attrs.kh);
            int kw = find_int(kernel_sizes, 4, nd->attrs.kw);
            int fi = find_int(filter_counts, 4, nd->attrs.filters);
            int stride = nd->attrs.stride ? nd->attrs.stride : 1;
            bool has_stride = is_reduction_layer(L, k);
            if (kh < 0 || kw < 0) {
                st = space_reject(sp, m, c, nd, "kernel %dx%d: this space has kernel sizes 1, 3, "
                                                "5 and 7",
                                  nd->attrs.kh, nd->attrs.kw);
                break;
            }
            if (nd->attrs.dh > 1 || nd->attrs.dw > 1 || nd->attrs.groups > 1) {
                st = space_reject(sp, m, c, nd, "this space has no dilated or grouped convolutions");
                break;
            }
            if (fi < 0) {
                st = space_reject(sp, m, c, nd, "%d filters: this space has 24, 36, 48 or 64",
                                  nd->attrs.filters);
                break;
            }
            if (stride > (has_stride ? 2 : 1)) {
                st = space_reject(sp, m, c, nd, "stride %d: layer %d of this space has stride %s",
                                  stride, k, has_stride ? "1 or 2" : "1");
                break;
            }
            uint32_t a = m->args[nd->first_arg], mask = 0;
            if (p.v[a].kind == MV_CAT) {
                const nasc_node *cat = node_of(&p, a);
                const uint32_t *cargs = &m->args[cat->first_arg];
                st = expect_src(&p, cat, cargs[0], k, lvl, "the first input of the concat");
                if (!st) st = parse_skips(&p, cat, cargs, 1, cat->n_args, k, lvl, &mask);
                if (!st && mask == 0)
                    st = space_reject(sp, m, c, cat, "a concat of one value is not part of this "
                                                     "space");
            } else {
                st = expect_src(&p, nd, a, k, lvl, "its input");
            }
            if (st) break;
            d[pos++] = (uint32_t)kh;
            d[pos++] = (uint32_t)kw;
            if (has_stride) d[pos++] = (uint32_t)stride - 1;
            d[pos++] = (uint32_t)fi;
            d[pos++] = mask;
            const mval *r = &p.v[v];
            p.v[v] = (mval){MV_SRC, k + 1, lvl + (stride == 2), r->readers, r->reader, 0, false};
            p.out_level[k + 1] = lvl + (stride == 2);
            p.last = v;
            p.layers++;
        } else {
            st = space_reject(sp, m, c, nd,
                              "op '%s' is not part of this space (conv, concat and "
                              "factorized_reduce)",
                              nasc_arch_op_info_get(nd->op)->name);
        }
    }
    if (!st) st = parse_finish(&p);
    parse_free(&p);
    return st;
}

const space_def nasc_space_enas_macro_def = {"enas-macro", "layers", 12, NASC_SKIP_MAX,
                                             build_enas, decode_enas, encode_enas, false, NULL};
const space_def nasc_space_nasrl_def = {"nasrl", "layers", 6, 15, build_nasrl, decode_nasrl,
                                        encode_nasrl, false, NULL};
