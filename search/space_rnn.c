/* space_rnn.c - the two recurrent-cell spaces: enas-rnn and nasrl-rnn.
 *
 * Both decode into a recurrent net (a character language model: the cell
 * unrolled over the text, docs/language-models.md) whose cell reads x_t and
 * h_{t-1} (nasrl-rnn also the memory c_{t-1}). The size option is
 * "blocks": enas-rnn's node count N, nasrl-rnn's tree base (2, 4 or 8).
 *
 * enas-rnn (Pham et al. 2018; melodyguan/enas src/ptb/ptb_enas_child.py):
 * N nodes. Node 0 reads x_t and h_{t-1}; node i >= 1 reads one earlier
 * node. Every node is a highway unit over the value s it reads:
 *     c = sigmoid(W_c s),  g = f(W_g s),  n = c * g + (1 - c) * s
 * (node 0: W_c, W_g over [x, h], and s = h_{t-1}), f one of tanh, relu,
 * identity, sigmoid (ENAS's order). h_t is the average of the loose ends.
 * Decisions: n0.act, then n<i>.prev (0..i-1) and n<i>.act for i = 1..N-1,
 * in ENAS's arc order. Node i's values are n<i>c_in, n<i>c, n<i>g_in,
 * n<i>g (no node for identity) and n<i>, as models/enas-rnn.yaml.
 *
 * nasrl-rnn (Zoph & Le 2017, sec. 3.4 and Fig. 5; TensorFlow's NASCell):
 * a full binary tree of base B leaves. Leaf k combines its own projections
 * W_x^k x_t and W_h^k h_{t-1}, a level-j node (j >= 2) its two children,
 * by add or elementwise mul, then applies an activation (identity, tanh,
 * sigmoid, relu). The memory c_{t-1} is injected into the output of one
 * node of level >= 2 (combined by add or mul, then an activation), and
 * c_t is the value of one node of level >= 2 before its activation;
 * h_t is the root's output. Decisions, node by node in level order
 * (l1_0 .. l1_<B-1>, l2_0, ..., the root): <node>.comb, <node>.act; then
 * inject.at, inject.comb, inject.act, cell.out (the last two index the
 * nodes of level >= 2 in the same order). Node values: <node>_in (leaf
 * add: linear(x, h); leaf mul: <node>_x = linear(x), <node>_h = linear(h),
 * their product), <node> (the activation, no node for identity), and for
 * the injected node <node>_inj (with c) and <node>_c (its activation).
 * models/nasrl-ptb.yaml, NASCell, is one vector of the base-8 space.
 */
#include <stdio.h>
#include <string.h>

#include "space_internal.h"

static const nasc_op enas_acts[] = {NASC_OP_TANH, NASC_OP_RELU, NASC_OP_IDENTITY, NASC_OP_SIGMOID};
static const char *const enas_act_labels[] = {"tanh", "relu", "identity", "sigmoid"};
static const nasc_op tree_acts[] = {NASC_OP_IDENTITY, NASC_OP_TANH, NASC_OP_SIGMOID, NASC_OP_RELU};
static const char *const tree_act_labels[] = {"identity", "tanh", "sigmoid", "relu"};
static const nasc_op combs[] = {NASC_OP_ADD, NASC_OP_MUL};
static const char *const comb_labels[] = {"add", "mul"};

/* Search-time language models over bytes: 256 classes, small sizes
 * (`--set` changes them). */
static nasc_skeleton rnn_skeleton(int cell) {
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_RECURRENT);
    sk.in_c = 64;
    sk.channels = 128;
    sk.classes = 256;
    sk.normal_cell = cell;
    return sk;
}

static int op_index(const nasc_op *ops, int n, nasc_op op) {
    for (int i = 0; i < n; i++)
        if (ops[i] == op) return i;
    return -1;
}

/* Add a node; UINT32_MAX (diagnostic set) on failure. */
static uint32_t add(nasc_module *m, nasc_op op, uint32_t a, uint32_t b, uint32_t c, uint32_t n_args, const char *fmt,
                    int i, const char *suffix) {
    char name[48];
    snprintf(name, sizeof name, fmt, i, suffix);
    uint32_t args[3] = {a, b, c};
    return nasc_cell_add_node(m, op, args, n_args, NULL, name, NASC_NOLOC);
}

/* The value called name in cell c, or -1. */
static int64_t lookup(const nasc_module *m, const nasc_cell *c, const char *fmt, int i, const char *suffix) {
    char name[48];
    snprintf(name, sizeof name, fmt, i, suffix);
    return nasc_cell_lookup(m, c, name, strlen(name));
}

/* ------------------------------------------------------------------ */
/* enas-rnn                                                            */
/* ------------------------------------------------------------------ */

static nasc_status build_enas_rnn(nasc_space *sp) {
    int n = sp->size;
    nasc_status st = space_add_choice(sp, 4, 0, enas_act_labels, "n0.act");
    for (int i = 1; i < n && !st; i++) {
        st = space_add_choice(sp, i, i, NULL, "n%d.prev", i);
        if (!st) st = space_add_choice(sp, 4, i, enas_act_labels, "n%d.act", i);
    }
    snprintf(sp->summary, sizeof sp->summary,
             "ENAS recurrent cell (Pham, Guan, Zoph, Le & Dean, ICML 2018), %d node%s.\n"
             "Node 0 reads x_t and h_{t-1}; node i reads one earlier node (n<i>.prev).\n"
             "Each node is a highway unit: c = sigmoid(W_c s), n = c * f(W_g s) + (1 - c) * s\n"
             "with f one of tanh, relu, identity, sigmoid. h_t averages the loose ends.\n"
             "A character language model over bytes (--blocks N nodes, 1..24).",
             n, n == 1 ? "" : "s");
    return st;
}

static nasc_status decode_enas_rnn(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    int ci = nasc_cell_begin(m, "enas_cell", NASC_CELL_RECURRENT, 2, NASC_NOLOC);
    if (ci < 0) return space_build_status(m);
    uint32_t node[64];
    const uint32_t x = 0, h = 1;
    for (int i = 0; i < sp->size; i++) {
        nasc_op act = enas_acts[d[i == 0 ? 0 : 2 * i]];
        uint32_t s = i == 0 ? h : node[d[2 * i - 1]];
        uint32_t n_in = i == 0 ? 2 : 1, a0 = i == 0 ? x : s, a1 = h;
        uint32_t cin = add(m, NASC_OP_LINEAR, a0, a1, 0, n_in, "n%d%s", i, "c_in");
        uint32_t c = cin == UINT32_MAX ? cin : add(m, NASC_OP_SIGMOID, cin, 0, 0, 1, "n%d%s", i, "c");
        uint32_t gin = c == UINT32_MAX ? c : add(m, NASC_OP_LINEAR, a0, a1, 0, n_in, "n%d%s", i, "g_in");
        uint32_t g = gin;
        if (g != UINT32_MAX && act != NASC_OP_IDENTITY) g = add(m, act, gin, 0, 0, 1, "n%d%s", i, "g");
        node[i] = g == UINT32_MAX ? g : add(m, NASC_OP_HIGHWAY, c, g, s, 3, "n%d%s", i, "");
        if (node[i] == UINT32_MAX) return space_build_status(m);
    }
    nasc_status st = nasc_cell_set_output(m, NASC_OUT_AVG, NULL, 0);
    if (!st) st = nasc_cell_end(m);
    if (!st) {
        nasc_skeleton sk = rnn_skeleton(ci);
        nasc_net_set_skeleton(m, &sk);
    }
    return st;
}

static nasc_status encode_enas_rnn(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    if (m->skel.kind != NASC_NET_RECURRENT || m->skel.normal_cell < 0)
        return space_reject(sp, m, NULL, NULL, "not a recurrent net");
    const nasc_cell *c = &m->cells[m->skel.normal_cell];
    for (int i = 0; i < sp->size; i++) {
        int64_t hw = lookup(m, c, "n%d%s", i, ""), gin = lookup(m, c, "n%d%s", i, "g_in");
        int64_t g = lookup(m, c, "n%d%s", i, "g");
        if (hw < (int64_t)c->n_inputs || gin < (int64_t)c->n_inputs)
            return space_reject(sp, m, c, NULL, "no node n%d (and n%dg_in): %d nodes written as this space builds them",
                                i, i, sp->size);
        int act = 2; /* identity: the highway reads the projection itself */
        if (g >= (int64_t)c->n_inputs) {
            const nasc_node *gn = &m->nodes[c->first_node + (uint32_t)g - c->n_inputs];
            act = op_index(enas_acts, 4, gn->op);
            if (act < 0 || act == 2)
                return space_reject(sp, m, c, gn, "the activation is '%s', not tanh, relu or sigmoid",
                                    nasc_arch_op_info_get(gn->op)->name);
        }
        d[i == 0 ? 0 : 2 * i] = (uint32_t)act;
        if (i == 0) continue;
        /* the value the highway carries: an earlier node */
        const nasc_node *hn = &m->nodes[c->first_node + (uint32_t)hw - c->n_inputs];
        if (hn->op != NASC_OP_HIGHWAY)
            return space_reject(sp, m, c, hn, "node n%d is not a highway unit", i);
        uint32_t s = m->args[hn->first_arg + 2];
        int prev = -1;
        for (int j = 0; j < i && prev < 0; j++)
            if (lookup(m, c, "n%d%s", j, "") == (int64_t)s) prev = j;
        if (prev < 0) return space_reject(sp, m, c, hn, "node n%d does not read an earlier node n0..n%d", i, i - 1);
        d[2 * i - 1] = (uint32_t)prev;
    }
    return NASC_OK;
}

/* ENAS keys node i's weights by (node, parent, activation): its w_prev
 * and w_skip are sliced by (prev_idx * num_funcs + func_idx). So does the
 * one-shot store: "cell.n<i>c_in.<rest>" and "cell.n<i>g_in.<rest>" become
 * "cell.n<i>c_in.<parent>.<act>.<rest>", the parent "xh" for node 0. */
static void share_key_enas_rnn(const nasc_space *sp, const uint32_t *d, const char *name, char *out, size_t size) {
    int i = -1, end = 0;
    char kind = 0;
    if (sscanf(name, "cell.n%d%c_in.%n", &i, &kind, &end) == 2 && end > 0 && (kind == 'c' || kind == 'g') && i >= 0 &&
        i < sp->size) {
        const char *act = enas_act_labels[d[i == 0 ? 0 : 2 * i]];
        char parent[16];
        if (i == 0)
            snprintf(parent, sizeof parent, "xh");
        else
            snprintf(parent, sizeof parent, "n%u", d[2 * i - 1]);
        snprintf(out, size, "cell.n%d%c_in.%s.%s.%s", i, kind, parent, act, name + end);
        return;
    }
    snprintf(out, size, "%s", name);
}

/* ------------------------------------------------------------------ */
/* nasrl-rnn                                                           */
/* ------------------------------------------------------------------ */

/* The tree of base b: nodes in level order, level 1 the b leaves; node k's
 * level and index within it, and its two children (internal nodes). */
typedef struct tree {
    int base, n;        /* n = 2b - 1 nodes */
    int level[16], idx[16], child[16][2];
} tree;

static void tree_init(tree *t, int base) {
    t->base = base;
    t->n = 0;
    int first = 0, width = base;
    for (int lvl = 1; width >= 1; lvl++, width /= 2) {
        for (int k = 0; k < width; k++) {
            int v = t->n++;
            t->level[v] = lvl;
            t->idx[v] = k;
            t->child[v][0] = lvl == 1 ? -1 : first - 2 * width + 2 * k;
            t->child[v][1] = lvl == 1 ? -1 : first - 2 * width + 2 * k + 1;
        }
        first += width;
        if (width == 1) break;
    }
}

static void node_name(const tree *t, int v, char *buf, size_t size) {
    snprintf(buf, size, "l%d_%d", t->level[v], t->idx[v]);
}

static nasc_status build_nasrl_rnn(nasc_space *sp) {
    if (sp->size != 2 && sp->size != 4 && sp->size != 8)
        return nasc_error(sp->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "the nasrl-rnn space's base (--blocks) is 2, 4 or 8 leaves, not %d", sp->size);
    tree t;
    tree_init(&t, sp->size);
    nasc_status st = NASC_OK;
    for (int v = 0; v < t.n && !st; v++) {
        char nm[16];
        node_name(&t, v, nm, sizeof nm);
        st = space_add_choice(sp, 2, t.level[v], comb_labels, "%s.comb", nm);
        if (!st) st = space_add_choice(sp, 4, t.level[v], tree_act_labels, "%s.act", nm);
    }
    int inner = t.n - t.base; /* nodes of level >= 2 */
    if (!st) st = space_add_choice(sp, inner, 0, NULL, "inject.at");
    if (!st) st = space_add_choice(sp, 2, 0, comb_labels, "inject.comb");
    if (!st) st = space_add_choice(sp, 4, 0, tree_act_labels, "inject.act");
    if (!st) st = space_add_choice(sp, inner, 0, NULL, "cell.out");
    snprintf(sp->summary, sizeof sp->summary,
             "NAS-RL recurrent tree cell (Zoph & Le, ICLR 2017), base %d.\n"
             "Leaf k combines W_x x_t and W_h h_{t-1} (add or mul) and applies an\n"
             "activation (identity, tanh, sigmoid, relu); a node of level 2 and up does\n"
             "the same with its two children. c_{t-1} is injected into one node's output\n"
             "(inject.at: the nodes of level >= 2 in order, add or mul, an activation);\n"
             "c_t is one such node's value before its activation (cell.out); h_t is the\n"
             "root. A character language model over bytes (--blocks: base 2, 4 or 8).",
             sp->size);
    return st;
}

static nasc_status decode_nasrl_rnn(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    tree t;
    tree_init(&t, sp->size);
    int ci = nasc_cell_begin(m, "tree_cell", NASC_CELL_RECURRENT, 3, NASC_NOLOC);
    if (ci < 0) return space_build_status(m);
    const uint32_t x = 0, h = 1, cprev = 2;
    uint32_t pre[16], out[16];
    int inject = t.base + (int)d[2 * t.n], cout = t.base + (int)d[2 * t.n + 3];
    for (int v = 0; v < t.n; v++) {
        char nm[16];
        node_name(&t, v, nm, sizeof nm);
        nasc_op comb = combs[d[2 * v]], act = tree_acts[d[2 * v + 1]];
        uint32_t p;
        char full[32];
        if (t.level[v] == 1) {
            if (comb == NASC_OP_ADD) {
                snprintf(full, sizeof full, "%s_in", nm);
                uint32_t args[2] = {x, h};
                p = nasc_cell_add_node(m, NASC_OP_LINEAR, args, 2, NULL, full, NASC_NOLOC);
            } else {
                snprintf(full, sizeof full, "%s_x", nm);
                uint32_t px = nasc_cell_add_node(m, NASC_OP_LINEAR, &x, 1, NULL, full, NASC_NOLOC);
                snprintf(full, sizeof full, "%s_h", nm);
                uint32_t ph = px == UINT32_MAX ? px : nasc_cell_add_node(m, NASC_OP_LINEAR, &h, 1, NULL, full, NASC_NOLOC);
                snprintf(full, sizeof full, "%s_in", nm);
                uint32_t args[2] = {px, ph};
                p = ph == UINT32_MAX ? ph : nasc_cell_add_node(m, NASC_OP_MUL, args, 2, NULL, full, NASC_NOLOC);
            }
        } else {
            snprintf(full, sizeof full, "%s_in", nm);
            uint32_t args[2] = {out[t.child[v][0]], out[t.child[v][1]]};
            p = nasc_cell_add_node(m, comb, args, 2, NULL, full, NASC_NOLOC);
        }
        if (p == UINT32_MAX) return space_build_status(m);
        pre[v] = out[v] = p;
        if (act != NASC_OP_IDENTITY) {
            out[v] = nasc_cell_add_node(m, act, &p, 1, NULL, nm, NASC_NOLOC);
            if (out[v] == UINT32_MAX) return space_build_status(m);
        }
        if (v == inject) {
            snprintf(full, sizeof full, "%s_inj", nm);
            uint32_t args[2] = {out[v], cprev};
            uint32_t j = nasc_cell_add_node(m, combs[d[2 * t.n + 1]], args, 2, NULL, full, NASC_NOLOC);
            nasc_op iact = tree_acts[d[2 * t.n + 2]];
            if (j != UINT32_MAX && iact != NASC_OP_IDENTITY) {
                snprintf(full, sizeof full, "%s_c", nm);
                j = nasc_cell_add_node(m, iact, &j, 1, NULL, full, NASC_NOLOC);
            }
            if (j == UINT32_MAX) return space_build_status(m);
            out[v] = j;
        }
    }
    uint32_t outs[2] = {out[t.n - 1], pre[cout]};
    nasc_status st = nasc_cell_set_output(m, NASC_OUT_STATE, outs, 2);
    if (!st) st = nasc_cell_end(m);
    if (!st) {
        nasc_skeleton sk = rnn_skeleton(ci);
        nasc_net_set_skeleton(m, &sk);
    }
    return st;
}

static nasc_status encode_nasrl_rnn(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    if (m->skel.kind != NASC_NET_RECURRENT || m->skel.normal_cell < 0)
        return space_reject(sp, m, NULL, NULL, "not a recurrent net");
    const nasc_cell *c = &m->cells[m->skel.normal_cell];
    if (c->n_inputs != 3 || c->out_rule != NASC_OUT_STATE || c->n_outs != 2)
        return space_reject(sp, m, c, NULL, "the cell must read x, h, c and output 'state' with h_t and c_t");
    tree t;
    tree_init(&t, sp->size);
    int inject = -1;
    uint32_t c_t = m->args[c->first_out + 1];
    d[2 * t.n + 3] = UINT32_MAX;
    for (int v = 0; v < t.n; v++) {
        char nm[16];
        node_name(&t, v, nm, sizeof nm);
        char full[32];
        snprintf(full, sizeof full, "%s_in", nm);
        int64_t p = nasc_cell_lookup(m, c, full, strlen(full));
        int64_t a = nasc_cell_lookup(m, c, nm, strlen(nm));
        if (p < (int64_t)c->n_inputs)
            return space_reject(sp, m, c, NULL, "no node %s_in: a tree of base %d written as this space builds it", nm,
                                sp->size);
        const nasc_node *pn = &m->nodes[c->first_node + (uint32_t)p - c->n_inputs];
        int comb = pn->op == NASC_OP_LINEAR ? 0 : op_index(combs, 2, pn->op);
        if (comb < 0) return space_reject(sp, m, c, pn, "combines by '%s', not add or mul", nasc_arch_op_info_get(pn->op)->name);
        d[2 * v] = (uint32_t)comb;
        int act = 0;
        if (a >= (int64_t)c->n_inputs) {
            const nasc_node *an = &m->nodes[c->first_node + (uint32_t)a - c->n_inputs];
            act = op_index(tree_acts, 4, an->op);
            if (act <= 0) return space_reject(sp, m, c, an, "the activation is '%s'", nasc_arch_op_info_get(an->op)->name);
        }
        d[2 * v + 1] = (uint32_t)act;
        snprintf(full, sizeof full, "%s_inj", nm);
        int64_t j = nasc_cell_lookup(m, c, full, strlen(full));
        if (j >= (int64_t)c->n_inputs) {
            if (t.level[v] < 2 || inject >= 0)
                return space_reject(sp, m, c, NULL, "c_{t-1} is injected at %s: one node of level 2 or up only", nm);
            const nasc_node *jn = &m->nodes[c->first_node + (uint32_t)j - c->n_inputs];
            int jc = op_index(combs, 2, jn->op);
            if (jc < 0) return space_reject(sp, m, c, jn, "injects by '%s', not add or mul", nasc_arch_op_info_get(jn->op)->name);
            inject = v;
            d[2 * t.n] = (uint32_t)(v - t.base);
            d[2 * t.n + 1] = (uint32_t)jc;
            snprintf(full, sizeof full, "%s_c", nm);
            int64_t ja = nasc_cell_lookup(m, c, full, strlen(full)), iact = 0;
            if (ja >= (int64_t)c->n_inputs) {
                const nasc_node *an = &m->nodes[c->first_node + (uint32_t)ja - c->n_inputs];
                iact = op_index(tree_acts, 4, an->op);
                if (iact <= 0) return space_reject(sp, m, c, an, "the activation is '%s'", nasc_arch_op_info_get(an->op)->name);
            }
            d[2 * t.n + 2] = (uint32_t)iact;
        }
        if (t.level[v] >= 2 && (int64_t)c_t == p) d[2 * t.n + 3] = (uint32_t)(v - t.base);
    }
    if (inject < 0) return space_reject(sp, m, c, NULL, "no node <name>_inj injects c_{t-1}");
    if (d[2 * t.n + 3] == UINT32_MAX)
        return space_reject(sp, m, c, NULL, "c_t is not the value <node>_in of a node of level 2 or up");
    return NASC_OK;
}

const space_def nasc_space_enas_rnn_def = {"enas-rnn", "blocks", 12, 24, build_enas_rnn, decode_enas_rnn,
                                           encode_enas_rnn, true, share_key_enas_rnn};
const space_def nasc_space_nasrl_rnn_def = {"nasrl-rnn", "blocks", 8, 8, build_nasrl_rnn, decode_nasrl_rnn,
                                            encode_nasrl_rnn, true, NULL};
