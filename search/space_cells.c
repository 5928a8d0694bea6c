/* space_cells.c - the two cell spaces: nasnet and enas-micro.
 *
 * Both search a normal and a reduction cell of B blocks; the net stacks
 * them the NASNet way (ir/lower.c). Block b of a cell reads two values out
 * of {h2, h1, b0, ..., b(b-1)} (index 0 = h2, 1 = h1, k >= 2 = block k-2,
 * the numbering of DARTS genotypes and of the ENAS code), applies one op to
 * each and combines the two. It is built as the YAML `blocks` form builds
 * it: nodes b<b>a = op_a(in_a), b<b>b = op_b(in_b), b<b> = combine. The
 * cell's output is the concat of the loose ends (the blocks no block reads).
 *
 * Decisions per block, in the order the NASNet controller emits them (and
 * ENAS's: both indices, then both ops): in_a, in_b, op_a, op_b, and for
 * nasnet the combine (add or concat). The normal cell's blocks come first.
 *
 * NASNet's concat combine makes a block 2C channels wide, and an add of a
 * 2C branch with a C branch does not type-check. The NASNet code
 * (nasnet_utils.py, _apply_conv_operation) puts a 1x1 conv after identity
 * and pooling ops whose input width is not the cell's; so does this space:
 * identity of a concat block is a `conv` node with a 1x1 kernel, and a pool
 * of one is the pool followed by such a node (b<b>a_pool, then b<b>a).
 * Every other op already outputs C channels. `conv` (not `conv_1x1`, which
 * is one of the 13 ops) keeps the decoding one-to-one.
 */
#include <stdio.h>
#include <string.h>

#include "space_internal.h"

#define MAX_BLOCKS 10

typedef struct cell_space {
    const nasc_op *ops;
    const char *const *labels;
    int n_ops;
    bool combine; /* nasnet: add or concat; enas-micro: always add */
} cell_space;

/* NASNet's 13 operations: the first 13 rows of ir/ops.def. */
static const nasc_op nasnet_ops[] = {
    NASC_OP_IDENTITY,     NASC_OP_CONV_1X7_7X1, NASC_OP_CONV_1X3_3X1, NASC_OP_CONV_1X1,
    NASC_OP_CONV_3X3,     NASC_OP_DIL_CONV_3X3, NASC_OP_SEP_CONV_3X3, NASC_OP_SEP_CONV_5X5,
    NASC_OP_SEP_CONV_7X7, NASC_OP_AVG_POOL_3X3, NASC_OP_MAX_POOL_3X3, NASC_OP_MAX_POOL_5X5,
    NASC_OP_MAX_POOL_7X7,
};
static const char *const nasnet_labels[] = {
    "identity",     "conv_1x7_7x1", "conv_1x3_3x1", "conv_1x1",     "conv_3x3",
    "dil_conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
    "max_pool_3x3", "max_pool_5x5", "max_pool_7x7",
};

/* ENAS micro: the op numbering of the official code (micro_child.py). */
static const nasc_op micro_ops[] = {NASC_OP_SEP_CONV_3X3, NASC_OP_SEP_CONV_5X5,
                                    NASC_OP_AVG_POOL_3X3, NASC_OP_MAX_POOL_3X3, NASC_OP_IDENTITY};
static const char *const micro_labels[] = {"sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3",
                                           "max_pool_3x3", "identity"};

static const char *const in_labels[2 + MAX_BLOCKS] = {"h2", "h1", "b0", "b1", "b2", "b3",
                                                      "b4", "b5", "b6", "b7", "b8", "b9"};
static const char *const combine_labels[] = {"add", "concat"};

static const cell_space nasnet_cs = {nasnet_ops, nasnet_labels, 13, true};
static const cell_space micro_cs = {micro_ops, micro_labels, 5, false};

static const char *const cell_names[2] = {"normal", "reduction"};

/* Net defaults: Fashion-MNIST sized, small enough to train on two cores. */
enum { CELLS_CHANNELS = 16, CELLS_PER_STAGE = 1, CELLS_STAGES = 3 };

static int per_block(const cell_space *cs) { return cs->combine ? 5 : 4; }

static bool is_pool(nasc_op op) {
    return op == NASC_OP_AVG_POOL_3X3 || op == NASC_OP_MAX_POOL_3X3 || op == NASC_OP_MAX_POOL_5X5 ||
           op == NASC_OP_MAX_POOL_7X7;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */
/* ------------------------------------------------------------------ */

static nasc_status build_cells(nasc_space *sp, const cell_space *cs, const char *intro) {
    nasc_status st = NASC_OK;
    for (int c = 0; c < 2 && !st; c++) {
        for (int b = 0; b < sp->size && !st; b++) {
            const char *cn = cell_names[c];
            st = space_add_choice(sp, 2 + b, -1, in_labels, "%s.b%d.in_a", cn, b);
            if (!st) st = space_add_choice(sp, 2 + b, -1, in_labels, "%s.b%d.in_b", cn, b);
            if (!st) st = space_add_choice(sp, cs->n_ops, -1, cs->labels, "%s.b%d.op_a", cn, b);
            if (!st) st = space_add_choice(sp, cs->n_ops, -1, cs->labels, "%s.b%d.op_b", cn, b);
            if (!st && cs->combine)
                st = space_add_choice(sp, 2, -1, combine_labels, "%s.b%d.combine", cn, b);
        }
    }
    snprintf(sp->summary, sizeof sp->summary,
             "%s\n"
             "A normal and a reduction cell of %d block%s each. Block b applies op_a to\n"
             "in_a and op_b to in_b (inputs: h2, h1 or an earlier block) and %s.\n"
             "A cell outputs the concat of the blocks no other block reads.\n"
             "In the reduction cell, ops on h2 and h1 have stride 2 (identity: a\n"
             "factorized reduction).%s\n"
             "Net: stem, %d stages of %d normal cell%s with a reduction cell between\n"
             "stages, %d channels in the first stage (--set changes the skeleton).",
             intro, sp->size, sp->size == 1 ? "" : "s",
             cs->combine ? "adds or\nconcatenates the two" : "adds the two",
             cs->combine ? " Identity or pooling of a concat block (2C\n"
                           "channels) is followed by a 1x1 conv back to C, as in the NASNet code."
                         : "",
             CELLS_STAGES, CELLS_PER_STAGE, CELLS_PER_STAGE == 1 ? "" : "s", CELLS_CHANNELS);
    return st;
}

static nasc_status build_nasnet(nasc_space *sp) {
    return build_cells(sp, &nasnet_cs,
                       "NASNet cell space (Zoph, Vasudevan, Shlens & Le, CVPR 2018), 13 ops.");
}

static nasc_status build_micro(nasc_space *sp) {
    return build_cells(sp, &micro_cs,
                       "ENAS micro space (Pham, Guan, Zoph, Le & Dean, ICML 2018), 5 ops.");
}

/* ------------------------------------------------------------------ */
/* Decode                                                              */
/* ------------------------------------------------------------------ */

static nasc_status decode_cell(const nasc_space *sp, const cell_space *cs, const uint32_t *d,
                               nasc_module *m, int which, int *ci) {
    nasc_cell_kind kind = which ? NASC_CELL_REDUCTION : NASC_CELL_NORMAL;
    *ci = nasc_cell_begin(m, cell_names[which], kind, 2, NASC_NOLOC);
    if (*ci < 0) return space_build_status(m);
    uint32_t out[MAX_BLOCKS];
    bool wide[MAX_BLOCKS];
    int per = per_block(cs);
    for (int b = 0; b < sp->size; b++) {
        const uint32_t *bd = d + (size_t)(which * sp->size + b) * (size_t)per;
        uint32_t br[2];
        for (int half = 0; half < 2; half++) {
            uint32_t in = bd[half];
            uint32_t src = in < 2 ? in : out[in - 2];
            bool w = in >= 2 && wide[in - 2];
            nasc_op op = cs->ops[bd[2 + half]];
            char name[24];
            snprintf(name, sizeof name, "b%d%c", b, half ? 'b' : 'a');
            if (w && (op == NASC_OP_IDENTITY || is_pool(op))) {
                if (op != NASC_OP_IDENTITY) {
                    char pname[32];
                    snprintf(pname, sizeof pname, "b%d%c_pool", b, half ? 'b' : 'a');
                    src = nasc_cell_add_node(m, op, &src, 1, NULL, pname, NASC_NOLOC);
                    if (src == UINT32_MAX) return space_build_status(m);
                }
                nasc_node_attrs proj = {1, 1, 0, 0, 0, 0, 0};
                br[half] = nasc_cell_add_node(m, NASC_OP_CONV, &src, 1, &proj, name, NASC_NOLOC);
            } else {
                br[half] = nasc_cell_add_node(m, op, &src, 1, NULL, name, NASC_NOLOC);
            }
            if (br[half] == UINT32_MAX) return space_build_status(m);
        }
        bool concat = cs->combine && bd[4] == 1;
        char name[16];
        snprintf(name, sizeof name, "b%d", b);
        out[b] = nasc_cell_add_node(m, concat ? NASC_OP_CONCAT : NASC_OP_ADD, br, 2, NULL, name,
                                    NASC_NOLOC);
        if (out[b] == UINT32_MAX) return space_build_status(m);
        wide[b] = concat;
    }
    nasc_status st = nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0);
    if (!st) st = nasc_cell_end(m);
    return st;
}

static nasc_status decode_cells(const nasc_space *sp, const cell_space *cs, const uint32_t *d,
                                nasc_module *m) {
    nasc_skeleton sk = nasc_skeleton_default(NASC_NET_CELLS);
    sk.channels = CELLS_CHANNELS;
    sk.cells_per_stage = CELLS_PER_STAGE;
    sk.stages = CELLS_STAGES;
    nasc_status st = decode_cell(sp, cs, d, m, 0, &sk.normal_cell);
    if (!st) st = decode_cell(sp, cs, d, m, 1, &sk.reduction_cell);
    if (!st) nasc_net_set_skeleton(m, &sk);
    return st;
}

static nasc_status decode_nasnet(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    return decode_cells(sp, &nasnet_cs, d, m);
}

static nasc_status decode_micro(const nasc_space *sp, const uint32_t *d, nasc_module *m) {
    return decode_cells(sp, &micro_cs, d, m);
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */
/* ------------------------------------------------------------------ */

enum {
    R_INPUT,         /* h2 or h1 */
    R_BLOCK,         /* a combine node: a block's output */
    R_BRANCH,        /* op_x(in_x), waiting for its combine */
    R_POOL,          /* a pool of a concat block, waiting for its 1x1 projection */
    R_USED,          /* a branch or pool that has been consumed */
};

typedef struct vinfo {
    uint8_t role;
    bool wide;    /* a concat block (2C channels) */
    uint32_t idx; /* R_INPUT/R_BLOCK: the block input index (0 h2, 1 h1, 2+k block k); */
                  /* R_BRANCH/R_POOL: the index its op reads */
    uint32_t op;  /* R_BRANCH/R_POOL: the op's position in the space's op list */
} vinfo;

static int op_index(const cell_space *cs, nasc_op op) {
    for (int i = 0; i < cs->n_ops; i++)
        if (cs->ops[i] == op) return i;
    return -1;
}

static bool attrs_zero(const nasc_node_attrs *a) {
    return !a->kh && !a->kw && !a->filters && !a->stride;
}

static nasc_status check_output(const nasc_space *sp, const nasc_module *m, const nasc_cell *c) {
    if (c->out_rule != NASC_OUT_CONCAT)
        return space_reject(sp, m, c, NULL,
                            "its output rule is '%s'; cells of this space concatenate their "
                            "loose ends",
                            nasc_out_rule_name(c->out_rule));
    if (c->n_outs == 0) return NASC_OK;
    /* An explicit list is accepted when it names exactly the loose ends. */
    for (uint32_t i = 0; i < c->n_outs; i++) {
        uint32_t v = m->args[c->first_out + i];
        bool loose = v >= c->n_inputs;
        for (uint32_t k = loose ? v - c->n_inputs + 1 : 0; loose && k < c->n_nodes; k++) {
            const nasc_node *nd = &m->nodes[c->first_node + k];
            for (uint32_t a = 0; a < nd->n_args; a++) loose &= m->args[nd->first_arg + a] != v;
        }
        if (!loose)
            return space_reject(sp, m, c, NULL,
                                "its output lists '%s'; in this space a cell's output is the "
                                "concat of the blocks no other block reads",
                                nasc_cell_value_name(m, c, v));
        for (uint32_t k = 0; k < i; k++)
            if (m->args[c->first_out + k] == v)
                return space_reject(sp, m, c, NULL, "its output lists '%s' twice",
                                    nasc_cell_value_name(m, c, v));
    }
    /* Every listed value is a distinct loose end; are they all there? */
    uint32_t n_loose = nasc_cell_out_values(m, &(nasc_cell){.n_inputs = c->n_inputs,
                                                            .first_node = c->first_node,
                                                            .n_nodes = c->n_nodes},
                                            NULL, 0);
    if (n_loose != c->n_outs)
        return space_reject(sp, m, c, NULL,
                            "its output lists %u of its %u loose ends; cells of this space "
                            "concatenate all of them",
                            c->n_outs, n_loose);
    return NASC_OK;
}

static nasc_status encode_cell(const nasc_space *sp, const cell_space *cs, const nasc_module *m,
                               int ci, int which, uint32_t *d) {
    const nasc_cell *c = &m->cells[ci];
    if (c->n_inputs != 2) return space_reject(sp, m, c, NULL, "it has %u inputs, not 2", c->n_inputs);
    uint32_t nv = c->n_inputs + c->n_nodes;
    vinfo *vi = nasc_alloc(m->ctx, (nv + 1) * sizeof *vi);
    if (!vi) return NASC_ENOMEM;
    memset(vi, 0, (nv + 1) * sizeof *vi);
    vi[0] = (vinfo){R_INPUT, false, 0, 0};
    vi[1] = (vinfo){R_INPUT, false, 1, 0};
    int per = per_block(cs), nb = 0, id_op = op_index(cs, NASC_OP_IDENTITY);
    nasc_status st = NASC_OK;
    for (uint32_t j = 0; j < c->n_nodes && !st; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        const uint32_t *args = &m->args[nd->first_arg];
        uint32_t v = c->n_inputs + j;
        const char *opname = nasc_arch_op_info_get(nd->op)->name;
        if (nd->op == NASC_OP_ADD || nd->op == NASC_OP_CONCAT) {
            if (nd->op == NASC_OP_CONCAT && !cs->combine) {
                st = space_reject(sp, m, c, nd, "its blocks add their two branches; 'concat' is "
                                                "not part of this space");
                break;
            }
            if (nd->n_args != 2) {
                st = space_reject(sp, m, c, nd, "a block combines two branches; this '%s' has %u "
                                                "inputs",
                                  opname, nd->n_args);
                break;
            }
            for (int k = 0; k < 2 && !st; k++)
                if (vi[args[k]].role != R_BRANCH)
                    st = space_reject(sp, m, c, nd,
                                      "it combines '%s', which is not a block branch (one op "
                                      "applied to h2, h1 or an earlier block)",
                                      nasc_cell_value_name(m, c, args[k]));
            if (st) break;
            if (args[0] == args[1]) {
                st = space_reject(sp, m, c, nd, "it combines '%s' with itself",
                                  nasc_cell_value_name(m, c, args[0]));
                break;
            }
            if (nb >= sp->size) {
                st = space_reject(sp, m, c, nd, "the cell has more than %d blocks (the space's "
                                                "blocks option)",
                                  sp->size);
                break;
            }
            uint32_t *bd = d + (size_t)(which * sp->size + nb) * (size_t)per;
            bd[0] = vi[args[0]].idx;
            bd[1] = vi[args[1]].idx;
            bd[2] = vi[args[0]].op;
            bd[3] = vi[args[1]].op;
            if (cs->combine) bd[4] = nd->op == NASC_OP_CONCAT;
            vi[args[0]].role = vi[args[1]].role = R_USED;
            vi[v] = (vinfo){R_BLOCK, nd->op == NASC_OP_CONCAT, 2 + (uint32_t)nb, 0};
            nb++;
            continue;
        }
        if (nd->n_args != 1) {
            st = space_reject(sp, m, c, nd, "op '%s' is not one of the ops of this space", opname);
            break;
        }
        uint32_t a = args[0];
        bool proj = cs->combine && nd->op == NASC_OP_CONV && nd->attrs.kh == 1 &&
                    nd->attrs.kw == 1 && !nd->attrs.filters && !nd->attrs.stride && nd->attrs.dh <= 1 &&
                    nd->attrs.dw <= 1 && nd->attrs.groups <= 1;
        if (proj) {
            uint32_t base = a, op = (uint32_t)id_op;
            if (vi[a].role == R_POOL) {
                vi[v] = (vinfo){R_BRANCH, false, vi[a].idx, vi[a].op};
                vi[a].role = R_USED;
                continue;
            }
            if (vi[base].role != R_BLOCK || !vi[base].wide) {
                st = space_reject(sp, m, c, nd,
                                  "a 1x1 'conv' appears in this space only after identity or "
                                  "pooling of a concat block, but it reads '%s'",
                                  nasc_cell_value_name(m, c, base));
                break;
            }
            vi[v] = (vinfo){R_BRANCH, false, vi[base].idx, op};
            continue;
        }
        int oi = op_index(cs, nd->op);
        if (oi < 0) {
            char list[256];
            size_t used = 0;
            for (int k = 0; k < cs->n_ops && used < sizeof list; k++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                         cs->labels[k]);
            st = space_reject(sp, m, c, nd, "op '%s' is not one of the %d ops of this space (%s)",
                              opname, cs->n_ops, list);
            break;
        }
        if (!attrs_zero(&nd->attrs)) {
            st = space_reject(sp, m, c, nd, "this space sets no kernel, filters or stride "
                                            "attributes");
            break;
        }
        if (vi[a].role != R_INPUT && vi[a].role != R_BLOCK) {
            st = space_reject(sp, m, c, nd, "it reads '%s', which is neither h2, h1 nor a block's "
                                            "output",
                              nasc_cell_value_name(m, c, a));
            break;
        }
        if (vi[a].wide && nd->op == NASC_OP_IDENTITY) {
            st = space_reject(sp, m, c, nd,
                              "identity of the concat block '%s' (2C channels) is a 1x1 'conv' "
                              "back to C in this space",
                              nasc_cell_value_name(m, c, a));
            break;
        }
        uint8_t role = vi[a].wide && is_pool(nd->op) ? R_POOL : R_BRANCH;
        vi[v] = (vinfo){role, false, vi[a].idx, (uint32_t)oi};
    }
    for (uint32_t j = 0; j < c->n_nodes && !st; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        uint8_t role = vi[c->n_inputs + j].role;
        if (role == R_BRANCH)
            st = space_reject(sp, m, c, nd, "no block combines it with a second branch");
        else if (role == R_POOL)
            st = space_reject(sp, m, c, nd,
                              "pooling of a concat block (2C channels) is followed by a 1x1 "
                              "'conv' back to C in this space");
    }
    if (!st && nb != sp->size)
        st = space_reject(sp, m, c, NULL, "it has %d block%s; this space has %d (the blocks "
                                          "option)",
                          nb, nb == 1 ? "" : "s", sp->size);
    if (!st) st = check_output(sp, m, c);
    nasc_free(m->ctx, vi);
    return st;
}

static nasc_status encode_cells(const nasc_space *sp, const cell_space *cs, const nasc_module *m,
                                uint32_t *d) {
    const nasc_skeleton *sk = &m->skel;
    if (!m->has_skeleton || sk->kind != NASC_NET_CELLS)
        return space_reject(sp, m, NULL, NULL, "it is a %s net; this space searches the cells "
                                               "of a cells net",
                            m->has_skeleton ? nasc_net_kind_name(sk->kind) : "skeleton-less");
    if (sk->reduction_cell < 0)
        return space_reject(sp, m, NULL, NULL, "the net has no reduction cell; this space "
                                               "searches a normal and a reduction cell");
    nasc_status st = encode_cell(sp, cs, m, sk->normal_cell, 0, d);
    if (!st) st = encode_cell(sp, cs, m, sk->reduction_cell, 1, d);
    return st;
}

static nasc_status encode_nasnet(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    return encode_cells(sp, &nasnet_cs, m, d);
}

static nasc_status encode_micro(const nasc_space *sp, const nasc_module *m, uint32_t *d) {
    return encode_cells(sp, &micro_cs, m, d);
}

const space_def nasc_space_nasnet_def = {"nasnet", "blocks", 5, MAX_BLOCKS, build_nasnet,
                                         decode_nasnet, encode_nasnet, false, NULL};
const space_def nasc_space_enas_micro_def = {"enas-micro", "blocks", 5, MAX_BLOCKS, build_micro,
                                             decode_micro, encode_micro, false, NULL};
