/* nasc_ir.h - the nasc intermediate representation.
 *
 * One module structure holds either dialect:
 *
 *  - arch: what search spaces emit and YAML describes. A net is a skeleton
 *    (input, stem, stages of cells, reductions, head, classes) plus named
 *    cells. A cell is a DAG of search-space ops (sep_conv_3x3, add, ...)
 *    over its inputs (h2 = h_{i-2} and h1 = h_{i-1} for normal/reduction
 *    cells, x for a macro body, x/h[/c] for recurrent cells).
 *  - prim: a flat SSA list of tensor ops with static shapes (the batch
 *    dimension is symbolic), each mapping to one oneDNN primitive and one
 *    ONNX node or a short fixed pattern.
 *
 * Everything is integer ids into arrays owned by the module; nothing is a
 * pointer graph and there is no global state. Fallible calls return a
 * nasc_status and leave a diagnostic in the context.
 *
 * Worked example (build a one-cell macro net, verify, lower, count):
 *
 *     nasc_ctx ctx; nasc_ctx_init(&ctx);
 *     nasc_module *m = nasc_module_create(&ctx, NASC_DIALECT_ARCH, "demo");
 *     nasc_skeleton sk = nasc_skeleton_default(NASC_NET_MACRO);
 *     int body = nasc_cell_begin(m, "body", NASC_CELL_MACRO, 1, NASC_NOLOC);
 *     uint32_t x = 0;                                  // the cell's input
 *     uint32_t a = nasc_cell_add_node(m, NASC_OP_CONV_3X3, &x, 1, NULL, "l0", NASC_NOLOC);
 *     nasc_cell_set_output(m, NASC_OUT_CONCAT, NULL, 0);  // loose ends
 *     nasc_cell_end(m);
 *     sk.normal_cell = body; nasc_net_set_skeleton(m, &sk);
 *     nasc_module *p = NULL;
 *     if (nasc_arch_verify(m) || nasc_lower(m, &p)) nasc_diag_print(&ctx.diag, stderr);
 *     nasc_cost c; nasc_cost_compute(p, &c);   // c.params, c.macs, ...
 *     nasc_cost_free(p, &c); nasc_module_destroy(p); nasc_module_destroy(m);
 *
 * API stability. This header, nasc_frontend.h, nasc_export.h,
 * nasc_backend.h and nasc_search.h (installed in <includedir>/nasc/ with
 * ops.def) are libnasc's public API; every other header in the source tree
 * is private and may change at any time. While NASC_VERSION is 0.x, a
 * patch release (0.1.0 -> 0.1.1) keeps the API and the ABI, and a minor
 * release (0.1 -> 0.2) may change both: the shared library's soname
 * (libnasc.so.0.1) names the minor release. The numbers of the enums that
 * ops.def generates (nasc_op, nasc_prim_op and their _COUNT) may change in
 * a minor release as ops are added: store op names, not numbers. The text
 * of diagnostics is for people: test nasc_status values, not messages.
 */
#ifndef NASC_IR_H
#define NASC_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NASC_VERSION "0.1.0"

typedef struct nasc_module nasc_module;

/* ------------------------------------------------------------------ */
/* Context: allocator and diagnostics                                  */
/* ------------------------------------------------------------------ */

typedef enum nasc_status {
    NASC_OK = 0,
    NASC_EINPUT = 1,    /* bad input: the diagnostic says where and why */
    NASC_ENOMEM = 2,    /* the allocator failed */
    NASC_EINTERNAL = 3, /* a nasc bug or an unsupported feature */
} nasc_status;

/* realloc-like: ptr NULL allocates, size 0 frees (and returns NULL). */
typedef void *(*nasc_realloc_fn)(void *ud, void *ptr, size_t size);

typedef struct nasc_loc {
    int line; /* 1-based; 0 = no location */
    int col;  /* 1-based */
} nasc_loc;

#define NASC_NOLOC ((nasc_loc){0, 0})

typedef struct nasc_diag {
    nasc_status status;
    char file[256]; /* "" when the error has no file */
    int line, col;  /* 0 when unknown */
    char msg[512];
} nasc_diag;

typedef struct nasc_ctx {
    nasc_realloc_fn realloc_fn; /* never NULL after nasc_ctx_init */
    void *ud;
    nasc_diag diag; /* the last error */
} nasc_ctx;

void nasc_ctx_init(nasc_ctx *ctx);
void nasc_ctx_set_allocator(nasc_ctx *ctx, nasc_realloc_fn fn, void *ud);
void *nasc_alloc(nasc_ctx *ctx, size_t size);            /* NULL + diag on failure */
void *nasc_realloc(nasc_ctx *ctx, void *ptr, size_t size); /* NULL + diag on failure */
void nasc_free(nasc_ctx *ctx, void *ptr);
char *nasc_strdup(nasc_ctx *ctx, const char *s);

/* Record an error; returns status so callers can `return nasc_error(...)`. */
nasc_status nasc_error(nasc_ctx *ctx, nasc_status status, const char *file, nasc_loc loc,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
nasc_status nasc_verror(nasc_ctx *ctx, nasc_status status, const char *file, nasc_loc loc,
                        const char *fmt, va_list ap);
/* "file:line:col: error: msg" (parts without a value are left out). */
void nasc_diag_print(const nasc_diag *d, FILE *out);
int nasc_diag_format(const nasc_diag *d, char *buf, size_t size);

/* Growable byte buffer (printers write into one). */
typedef struct nasc_buf {
    nasc_ctx *ctx;
    char *data; /* NUL-terminated */
    size_t len, cap;
    bool oom; /* set once an append failed; further appends are no-ops */
} nasc_buf;

void nasc_buf_init(nasc_buf *b, nasc_ctx *ctx);
void nasc_buf_free(nasc_buf *b);
void nasc_buf_printf(nasc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nasc_buf_append(nasc_buf *b, const char *s, size_t n);

/* ------------------------------------------------------------------ */
/* Op tables                                                           */
/* ------------------------------------------------------------------ */

enum {
    NASC_DOM_CNN = 1,
    NASC_DOM_RNN = 2,
    NASC_DOM_ANY = 3,
};

/* Arch node attributes an op may accept. */
enum {
    NASC_ATTR_KERNEL = 1 << 0,  /* kh x kw */
    NASC_ATTR_FILTERS = 1 << 1, /* output channels; 0 = the cell's channels */
    NASC_ATTR_STRIDE = 1 << 2,  /* 0 = the default for the position */
    NASC_ATTR_DILATION = 1 << 3, /* dh x dw */
    NASC_ATTR_GROUPS = 1 << 4,   /* channel groups */
};

/* Prim op attributes. */
enum {
    NASC_PATTR_KERNEL = 1 << 0,
    NASC_PATTR_STRIDE = 1 << 1,
    NASC_PATTR_PAD = 1 << 2,
    NASC_PATTR_DILATION = 1 << 3,
    NASC_PATTR_GROUPS = 1 << 4,
    NASC_PATTR_AXIS = 1 << 5,
    NASC_PATTR_COUNT_PAD = 1 << 6,
    NASC_PATTR_EPS = 1 << 7,
    NASC_PATTR_OFFSET = 1 << 8,
    NASC_PATTR_TRANS = 1 << 9,  /* matmul: trans_a, trans_b */
    NASC_PATTR_SHAPE = 1 << 10, /* reshape: shape_rank, shape */
    NASC_PATTR_INDEX = 1 << 11, /* embedding: the column of the ids it reads */
    NASC_PATTR_ALPHA = 1 << 12, /* scale: the factor */
    NASC_PATTR_BEGIN = 1 << 13, /* slice: the first index per dim */
};
/* An attribute an op may carry but that the text form shows only when it is
 * not at its neutral value (max_pool dilation, matmul transposes): ops.def
 * lists it as NASC_PATTR_OPT(NASC_PATTR_X). */
#define NASC_PATTR_OPT(bit) ((unsigned)(bit) << 16)

typedef enum nasc_op {
#define NASC_ARCH_OP(ID, name, arity, dom, attrs) NASC_OP_##ID,
#include "ops.def"
#undef NASC_ARCH_OP
    NASC_OP_COUNT
} nasc_op;

typedef enum nasc_prim_op {
#define NASC_PRIM_OP(ID, name, arity, attrs) NASC_PRIM_##ID,
#include "ops.def"
#undef NASC_PRIM_OP
    NASC_PRIM_COUNT
} nasc_prim_op;

typedef struct nasc_arch_op_info {
    const char *name;
    int arity;   /* -1: one or more */
    int domain;  /* NASC_DOM_* */
    unsigned attrs; /* NASC_ATTR_* */
} nasc_arch_op_info;

typedef struct nasc_prim_op_info {
    const char *name;
    int arity;
    unsigned attrs; /* NASC_PATTR_* */
} nasc_prim_op_info;

const nasc_arch_op_info *nasc_arch_op_info_get(nasc_op op);
const nasc_prim_op_info *nasc_prim_op_info_get(nasc_prim_op op);
/* -1 when the name is unknown. */
int nasc_arch_op_from_name(const char *name, size_t len);
int nasc_prim_op_from_name(const char *name, size_t len);
/* add (and the cell-output sum/avg/concat) do not depend on operand order. */
bool nasc_arch_op_commutative(nasc_op op);

/* ------------------------------------------------------------------ */
/* Arch dialect                                                        */
/* ------------------------------------------------------------------ */

typedef enum nasc_net_kind {
    NASC_NET_CELLS,     /* stem, stages of normal cells, reduction cells, head */
    NASC_NET_MACRO,     /* stem, one body cell, head */
    NASC_NET_RECURRENT, /* embedding, one recurrent cell per step, decoder */
} nasc_net_kind;

typedef enum nasc_cell_kind {
    NASC_CELL_NORMAL,    /* inputs h2, h1; keeps the spatial size */
    NASC_CELL_REDUCTION, /* inputs h2, h1; ops on the inputs use stride 2 */
    NASC_CELL_MACRO,     /* input x; the whole body of a macro net */
    NASC_CELL_RECURRENT, /* inputs x, h[, c]; vectors of the hidden size */
} nasc_cell_kind;

typedef enum nasc_out_rule {
    NASC_OUT_CONCAT, /* concatenate along channels */
    NASC_OUT_SUM,
    NASC_OUT_AVG,
    NASC_OUT_STATE, /* recurrent: the outputs are (h_t) or (h_t, c_t) */
} nasc_out_rule;

typedef struct nasc_skeleton {
    nasc_net_kind kind;
    int in_c, in_h, in_w;   /* input image (C,H,W); recurrent: in_c = input vector size, in_h = in_w = 1 */
    int classes;            /* head outputs (recurrent: vocabulary size) */
    int channels;           /* F: filters of the first stage's cells; recurrent: hidden size */
    int cells_per_stage;    /* N normal cells per stage (cells nets) */
    int stages;             /* stages separated by stages-1 reduction cells (cells nets) */
    int stem_multiplier;    /* stem conv filters = stem_multiplier * channels (CNN) */
    int normal_cell;        /* cell index: normal cell, macro body or recurrent cell; -1 none */
    int reduction_cell;     /* cell index or -1 */
    nasc_loc loc;
} nasc_skeleton;

/* Set one skeleton value by key, as `--set key=value` does: input (CxHxW, or
 * N for recurrent nets), classes, channels, cells_per_stage, stages,
 * stem_multiplier. Returns NASC_EINPUT and a message in msg when the key is
 * unknown or the value is not valid for it. */
nasc_status nasc_skeleton_set(nasc_skeleton *sk, const char *key, const char *value, char *msg,
                              size_t msg_size);

/* Defaults: 1x28x28 input, 10 classes, 16 channels, 2 cells per stage,
 * 3 stages, stem multiplier 3 (1 for macro nets), no cells. */
nasc_skeleton nasc_skeleton_default(nasc_net_kind kind);

typedef struct nasc_node_attrs {
    int kh, kw;  /* kernel (conv), 0 = unset */
    int filters; /* 0 = the cell's channel count */
    int stride;  /* 0 = default (2 on the inputs of a reduction cell, else 1) */
    int dh, dw;  /* dilation (conv), 0 = 1 */
    int groups;  /* channel groups (conv): each group of in/groups inputs makes
                    filters/groups outputs; 0 = 1 */
} nasc_node_attrs;

typedef struct nasc_node {
    nasc_op op;
    uint32_t name;      /* string id; unique within the cell */
    uint32_t first_arg; /* operands: m->args[first_arg .. first_arg+n_args) */
    uint32_t n_args;    /* each a cell-local value: < n_inputs is an input, else node (v - n_inputs) */
    nasc_node_attrs attrs;
    nasc_loc loc;
} nasc_node;

#define NASC_MAX_CELL_INPUTS 3

typedef struct nasc_cell {
    uint32_t name; /* string id */
    nasc_cell_kind kind;
    uint32_t n_inputs;                          /* 2 (h2, h1), 1 (x), 2 or 3 (x, h[, c]) */
    uint32_t first_node, n_nodes;               /* m->nodes[first_node ..] */
    nasc_out_rule out_rule;
    uint32_t first_out, n_outs;                 /* m->args[...]; n_outs == 0: the loose ends */
    nasc_loc loc;
    nasc_loc out_loc;
} nasc_cell;

/* Cell-local value v of a cell: the name of an input or node. */
const char *nasc_cell_value_name(const nasc_module *m, const nasc_cell *c, uint32_t v);
/* The cell's output values (cell-local): the explicit list, or else the loose
 * ends (nodes no other node uses), in node order. Writes at most cap values to
 * out and returns how many there are. */
uint32_t nasc_cell_out_values(const nasc_module *m, const nasc_cell *c, uint32_t *out, uint32_t cap);
/* The fixed input names of a kind: {"h2","h1"}, {"x"}, {"x","h","c"}. */
const char *nasc_cell_input_name(nasc_cell_kind kind, uint32_t i);
const char *nasc_cell_kind_name(nasc_cell_kind kind);
const char *nasc_net_kind_name(nasc_net_kind kind);
const char *nasc_out_rule_name(nasc_out_rule rule);

/* ------------------------------------------------------------------ */
/* Prim dialect                                                        */
/* ------------------------------------------------------------------ */

typedef enum nasc_dtype { NASC_F32 = 0 } nasc_dtype;

#define NASC_MAX_RANK 4
#define NASC_BATCH (-1) /* the symbolic batch dimension N */

typedef struct nasc_type {
    nasc_dtype dtype;
    int rank;
    int64_t dims[NASC_MAX_RANK]; /* dims[0] may be NASC_BATCH */
} nasc_type;

typedef enum nasc_value_kind {
    NASC_VAL_INPUT, /* a net input */
    NASC_VAL_PARAM, /* a named parameter (weights live in a parameter store) */
    NASC_VAL_OP,    /* the result of prims[def] */
} nasc_value_kind;

typedef struct nasc_value {
    uint32_t name; /* string id, unique in the module */
    nasc_type type;
    nasc_value_kind kind;
    uint32_t def; /* prim index for NASC_VAL_OP */
} nasc_value;

typedef struct nasc_prim_attrs {
    int kh, kw;              /* kernel */
    int sh, sw;              /* strides */
    int pt, pl, pb, pr;      /* pads: top, left, bottom, right */
    int dh, dw;              /* dilation factor, 1 = dense (ONNX convention) */
    int groups;              /* conv groups; C_in for depthwise */
    int axis;                /* concat / softmax */
    int count_include_pad;   /* avg_pool: 1 counts the padding in the divisor */
    float eps;               /* batch_norm */
    int dy, dx;              /* shift offset */
    int trans_a, trans_b;    /* matmul: 1 = that operand's last two dims are swapped */
    int shape_rank;          /* reshape: rank of the result */
    int64_t shape[NASC_MAX_RANK]; /* reshape: the result dims; shape[0] may be NASC_BATCH */
    int index;               /* embedding: the column of the ids (the time step) */
    float alpha;             /* scale: the factor */
    int64_t begin[NASC_MAX_RANK]; /* slice: the first index per dim (its result dims: shape) */
} nasc_prim_attrs;

/* Attributes with every field at its neutral value (strides/dilations 1, groups 1, eps 1e-5, axis 1,
 * no transposes, no shape, index 0, alpha 1). */
nasc_prim_attrs nasc_prim_attrs_default(void);

typedef struct nasc_prim {
    nasc_prim_op op;
    uint32_t result;              /* value id */
    uint32_t first_arg, n_args;   /* m->args[...]: value ids */
    nasc_prim_attrs a;
    uint32_t group;               /* string id: the cost-report group ("stem", "cell3", "head") */
    nasc_loc loc;
} nasc_prim;

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

typedef enum nasc_dialect { NASC_DIALECT_ARCH, NASC_DIALECT_PRIM } nasc_dialect;

struct nasc_module {
    nasc_ctx *ctx;
    nasc_dialect dialect;
    char *source; /* file name used in diagnostics; owned */

    /* string pool: id is an offset into strs; id 0 is "" */
    char *strs;
    uint32_t strs_len, strs_cap;
    uint32_t *str_index;   /* open-addressing hash of the pool: id + 1, 0 = empty */
    uint32_t str_index_cap, n_strs; /* a power of two, or 0; strings in the pool */

    uint32_t *args; /* operand lists of nodes, cell outputs and prims */
    uint32_t n_args, cap_args;

    /* arch */
    bool has_skeleton;
    nasc_skeleton skel;
    nasc_cell *cells;
    uint32_t n_cells, cap_cells;
    nasc_node *nodes;
    uint32_t n_nodes, cap_nodes;
    int open_cell; /* cell being built, -1 none */

    /* prim */
    nasc_value *values;
    uint32_t n_values, cap_values;
    nasc_prim *prims;
    uint32_t n_prims, cap_prims;
    uint32_t *outputs; /* value ids of the net outputs */
    uint32_t n_outputs, cap_outputs;
    uint32_t *value_index; /* open-addressing hash of value names: value id + 1, 0 = empty */
    uint32_t value_index_cap; /* a power of two, or 0 */
};

/* NULL (with a diagnostic) when out of memory. */
nasc_module *nasc_module_create(nasc_ctx *ctx, nasc_dialect dialect, const char *source);
void nasc_module_destroy(nasc_module *m);

/* Intern a string (len bytes); returns its id, or UINT32_MAX when out of memory. */
uint32_t nasc_str_intern(nasc_module *m, const char *s, size_t len);
const char *nasc_str(const nasc_module *m, uint32_t id);

/* Arch builder. Cells are built one at a time: begin, add nodes, set the
 * output rule, end. Operands must name inputs or earlier nodes of the same
 * cell (cell-local values). Each returns a negative number / UINT32_MAX and
 * leaves a diagnostic when it fails. */
void nasc_net_set_skeleton(nasc_module *m, const nasc_skeleton *sk);
int nasc_cell_begin(nasc_module *m, const char *name, nasc_cell_kind kind, uint32_t n_inputs,
                    nasc_loc loc);
uint32_t nasc_cell_add_node(nasc_module *m, nasc_op op, const uint32_t *args, uint32_t n_args,
                            const nasc_node_attrs *attrs, const char *name, nasc_loc loc);
nasc_status nasc_cell_set_output(nasc_module *m, nasc_out_rule rule, const uint32_t *outs,
                                 uint32_t n_outs);
nasc_status nasc_cell_end(nasc_module *m);
int nasc_cell_find(const nasc_module *m, const char *name);
/* Cell-local value of a name in cell c (input or node), -1 when none. */
int64_t nasc_cell_lookup(const nasc_module *m, const nasc_cell *c, const char *name, size_t len);

/* Prim builder. nasc_prim_add_op infers the result type from the operands
 * and attributes and fails (diagnostic at loc) when they do not fit. */
uint32_t nasc_prim_add_input(nasc_module *m, const char *name, const nasc_type *t);
uint32_t nasc_prim_add_param(nasc_module *m, const char *name, const nasc_type *t);
uint32_t nasc_prim_add_op(nasc_module *m, nasc_prim_op op, const uint32_t *args, uint32_t n_args,
                          const nasc_prim_attrs *a, const char *name, const char *group,
                          nasc_loc loc);
nasc_status nasc_prim_add_output(nasc_module *m, uint32_t value);
int64_t nasc_prim_lookup(const nasc_module *m, const char *name, size_t len);

/* Shape rule of a prim op: the result type, or NASC_EINPUT with a message in
 * msg (no location). Used by the builder, the parser and the verifier. */
nasc_status nasc_prim_infer(nasc_prim_op op, const nasc_prim_attrs *a, const nasc_type *args,
                            uint32_t n_args, nasc_type *out, char *msg, size_t msg_size);
int64_t nasc_type_numel(const nasc_type *t); /* per image when dims[0] is NASC_BATCH */
/* "f32[N,3,32,32]" */
void nasc_type_format(const nasc_type *t, char *buf, size_t size);

/* ------------------------------------------------------------------ */
/* Passes                                                              */
/* ------------------------------------------------------------------ */

/* Structure of an arch module: skeleton fields, cell kinds, op domains,
 * arities and attributes, operand order (a DAG), outputs, unused nodes. */
nasc_status nasc_arch_verify(const nasc_module *m);
/* Types of a prim module: every op's operands and result against its shape rule. */
nasc_status nasc_prim_verify(const nasc_module *m);
nasc_status nasc_module_verify(const nasc_module *m);

/* arch -> prim. Shape errors are reported at the arch node that causes them.
 *
 * A recurrent net (a language model) is unrolled over seq_len time steps
 * (nasc_lower_options; NASC_DEFAULT_SEQ_LEN by default), every step with
 * the same parameters:
 *   inputs   x (N, T): token numbers; h0 (N, H), and c0 (N, H) when the
 *            cell reads c: the state before the first step
 *   step t   x_t = embedding(x, "embed.w" (V, E), index t); the cell's
 *            nodes on (x_t, h_{t-1}[, c_{t-1}]): linear is an affine map of
 *            its concatenated operands to H ("cell.<node>.w", ".b"),
 *            highway(c, x, h) = h + c * (x - h); h_t is the state rule's
 *            first value, else the sum or average of the loose ends
 *   outputs  logits (N, T, V) = h_t of every step times "decoder.w" (H, V)
 *            plus "decoder.b"; then the state after the last step, in the
 *            order of the inputs (h, then c)
 * (V = classes, E = the input size, H = channels.) */
nasc_status nasc_lower(const nasc_module *arch, nasc_module **out_prim);

/* How a one-shot child's parameters are keyed (nasc_lower_options.shared). */
typedef enum nasc_share {
    NASC_SHARE_NONE,
    NASC_SHARE_BY_INPUT, /* cell position, node, op and the values it reads */
    NASC_SHARE_BY_OP,    /* cell position, node and op */
} nasc_share;

/* A SMASH child (nasc_lower_options.hyper): some 1x1 convolutions of a
 * macro body get weights computed by a hypernetwork H inside the same net,
 * and other body parameters are cut from larger shared tensors.
 *
 * H reads the net input "hyper.enc" (1, enc_channels, 1, columns), the
 * architecture's encoding, and is a 1-D DenseNet along the columns: a 1x3
 * convolution to `width` channels, then `depth` layers that each append
 * `growth` channels (ReLU, 1x3 convolution of everything so far), then
 * ReLU and a 1x1 convolution to out_channels. Every weight of H is
 * divided by its Frobenius norm (normalize), as SMASH's WNC2D; H's
 * parameters are "hyper.in.w", "hyper.l<i>.w", "hyper.out.w". Its output
 * is (1, out_channels, 1, columns): column c, row o is the weight from
 * input channel c - col to output channel o of the conv that starts at
 * column col. A listed conv of cin inputs and cout outputs (cout <=
 * out_channels) takes the box of rows 0..cout and columns col..col+cin,
 * reshaped to (cout, cin, 1, 1) and Frobenius-normalised: its weights
 * are not parameters, and its gradient flows into H. A batch norm of the
 * body is named with its width ("<node>.bn.c<C>"), so its tensors and
 * running statistics are keyed by it. */
typedef struct nasc_hyper_conv {
    const char *node; /* a conv node of the body with a 1x1 kernel and one group */
    int64_t col;      /* its first column */
} nasc_hyper_conv;

typedef enum nasc_hyper_cut {
    NASC_CUT_PLAIN, /* the parameter as the plain lowering names it */
    NASC_CUT_BOX,   /* a box (slice) of a larger shared tensor, always a slice op */
    NASC_CUT_KEY,   /* a parameter of its dims under another store key */
} nasc_hyper_cut;

typedef struct nasc_hyper {
    int enc_channels;
    int64_t columns;
    int out_channels;
    int width, growth, depth;
    const nasc_hyper_conv *convs;
    uint32_t n_convs;
    /* NULL, or called for each parameter of a body node (name as the plain
     * lowering gives it, its rank and dims); returns what the parameter
     * is (nasc_hyper_cut). For NASC_CUT_BOX it fills the store key of the
     * shared tensor, that tensor's dims (rank the same) and begin; for
     * NASC_CUT_KEY the key alone. */
    int (*cut)(void *ud, const char *name, int rank, const int64_t *dims, char *key, size_t size, int64_t *big,
               int64_t *begin);
    void *ud;
} nasc_hyper;

/* What training adds to a cell net (cells skeletons only); both off is
 * nasc_lower's net, and the parameters both nets share have the same
 * names, so one store serves the training net and the exported one. */
typedef struct nasc_lower_options {
    /* After every op of a cell that is not the identity (or a combine), a
     * multiply by a net input "<cell>.<node>.drop" of shape (N, 1, 1, 1):
     * the per-image drop-path mask the trainer fills. */
    bool drop_path;
    /* A second output "aux_logits": the auxiliary classifier of NASNet and
     * DARTS on the output of the last reduction cell (params "aux.*"). */
    bool aux_head;
    /* The child of a one-shot supernet (ENAS), whose parameters live in one
     * store shared by every child of the space (NASC_SHARE_NONE: nasc_lower's
     * names and cell outputs):
     *  - a cell node's values are named "<cell>.<node>.<op>..." so that each
     *    (cell position, node, op) has tensors of its own and two ops never
     *    share a tensor because their shapes happen to agree; with
     *    NASC_SHARE_BY_INPUT the name goes on with the cell values the node
     *    reads ("<cell>.<node>.<op>.<input>..."), so each input has tensors
     *    of its own too, as ENAS's micro cells; NASC_SHARE_BY_OP keys by the
     *    op alone, as ENAS's macro layers;
     *  - a normal or reduction cell ends as ENAS's shared cells do: each
     *    output (a loose end) goes through ReLU and a 1x1 convolution of its
     *    own ("<cell>.out.<node>.conv.w"), the results are summed and
     *    batch-normalised ("<cell>.out.bn"): the 1x1 convolution of the
     *    concatenated loose ends, sliced by the node it reads. Every cell
     *    then outputs its channel count whatever the child, so the tensors
     *    after it keep one shape. (A macro body outputs its layers' width
     *    anyway.) */
    nasc_share shared;
    /* Recurrent nets: the time steps they are unrolled over (the BPTT
     * length); 0 is NASC_DEFAULT_SEQ_LEN. */
    int seq_len;
    /* Recurrent nets: variational dropout masks as net inputs, each
     * (N, size) and the same for every step: "drop.x" (N, E) multiplies
     * x_t and "drop.s" (N, H) any other value where a linear reads it (as
     * ENAS's x_mask and s_mask), "drop.o" (N, H) each h_t the decoder
     * reads. The trainer fills them (nasc_train_options.rnn_dropout). */
    bool rnn_dropout;
    /* Recurrent nets: when set, the store name of each cell parameter (a
     * linear's "cell.<node>.w" and ".b"): the callback writes it into out
     * (size bytes, NUL-terminated; an empty string is an error). A one-shot
     * search keys a shared cell's weights by what the space knows (ENAS's
     * recurrent cell: by node, parent and activation); the embedding and
     * the decoder keep their names. */
    void (*param_key)(void *ud, const char *name, char *out, size_t size);
    void *param_key_ud;
    /* Macro nets: weights computed by a hypernetwork (SMASH), see nasc_hyper. */
    const nasc_hyper *hyper;
} nasc_lower_options;
#define NASC_DEFAULT_SEQ_LEN 35
#define NASC_MAX_SEQ_LEN 1024
#define NASC_DROP_PATH_SUFFIX "drop"

nasc_lower_options nasc_lower_options_default(void);
nasc_status nasc_lower_with(const nasc_module *arch, const nasc_lower_options *o, nasc_module **out_prim);

/* Canonical hash into *out: block order and the operand order of
 * commutative ops do not change it. A cell past 256 values needs scratch
 * memory (NASC_ENOMEM when the allocator fails); a cell index that is not in
 * the module is NASC_EINPUT. *out is only written on success. */
nasc_status nasc_cell_hash(const nasc_module *m, uint32_t cell, uint64_t *out);
nasc_status nasc_arch_hash(const nasc_module *m, uint64_t *out);

/* Cost model of a prim module, in total and per group (stem, cells, head). */
typedef struct nasc_cost_group {
    uint32_t name;          /* string id in the module */
    int64_t params;         /* parameter elements */
    int64_t macs;           /* multiply-adds per image */
    int64_t act_bytes;      /* bytes of op results per image */
} nasc_cost_group;

typedef struct nasc_cost {
    int64_t params, macs, act_bytes;
    nasc_cost_group *groups; /* in first-use order; owned, free with nasc_cost_free */
    uint32_t n_groups;
} nasc_cost;

nasc_status nasc_cost_compute(const nasc_module *prim, nasc_cost *out);
void nasc_cost_free(const nasc_module *prim, nasc_cost *c);

/* Recurrent nets: cost of the arch directly (per time step). */
typedef struct nasc_rnn_cost {
    int64_t cell_params, embed_params, decoder_params;
    int64_t macs_per_step; /* cell plus decoder, per sequence element */
} nasc_rnn_cost;
nasc_status nasc_rnn_cost_compute(const nasc_module *arch, nasc_rnn_cost *out);

/* ------------------------------------------------------------------ */
/* Text form                                                           */
/* ------------------------------------------------------------------ */

/* Print either dialect; print(parse(text)) == text for printed text. */
nasc_status nasc_text_print(const nasc_module *m, nasc_buf *out);
/* Parse text (either dialect, told apart by its first keyword), then verify.
 * Errors name file:line:col. *out is NULL on failure. */
nasc_status nasc_text_parse(nasc_ctx *ctx, const char *text, size_t len, const char *file,
                            nasc_module **out);

/* ------------------------------------------------------------------ */
/* Random numbers                                                      */
/* ------------------------------------------------------------------ */

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every machine. Everything random in nasc (initialisation,
 * shuffling, augmentation, sampling) draws from one of these. */
typedef struct nasc_rng {
    uint64_t s[4];
} nasc_rng;

void nasc_rng_seed(nasc_rng *r, uint64_t seed);
uint64_t nasc_rng_next(nasc_rng *r);
/* Uniform in [0, n), without modulo bias; n > 0. */
uint64_t nasc_rng_below(nasc_rng *r, uint64_t n);
/* Uniform in [0, 1) with 24 random bits. */
float nasc_rng_uniform(nasc_rng *r);
/* Standard normal (Box-Muller). */
float nasc_rng_normal(nasc_rng *r);
/* 64-bit FNV-1a of a string, for per-name seeds. */
uint64_t nasc_hash_str(const char *s);

/* ------------------------------------------------------------------ */
/* Parameter store                                                     */
/* ------------------------------------------------------------------ */

/* Weights are data: named float tensors that may outlive any net. A net
 * binds its parameters to a store by name (ENAS children share one store,
 * SMASH writes generated weights into one), optimizers keep their state in
 * one (names under "opt/"), and a checkpoint is a store on disk. Tensors are
 * plain row-major, without a batch dimension: conv weights (C_out,
 * C_in/groups, kh, kw), inner-product weights (O, I), vectors (C). */
typedef struct nasc_tensor {
    char *name;                  /* owned, unique in the store */
    int rank;                    /* 1..NASC_MAX_RANK */
    int64_t dims[NASC_MAX_RANK];
    int64_t numel;
    float *data;                 /* owned, numel floats, 64-byte aligned */
} nasc_tensor;

typedef struct nasc_param_store {
    nasc_ctx *ctx;
    nasc_tensor **tensors;       /* in insertion order; each owned */
    uint32_t n, cap;
    uint32_t *index;             /* open-addressing hash of names: slot = tensor index + 1 */
    uint32_t index_cap;          /* a power of two, or 0 */
    char **meta_keys, **meta_vals; /* string metadata (arch hash, epoch, ...), owned */
    uint32_t n_meta, cap_meta;
} nasc_param_store;

nasc_param_store *nasc_params_create(nasc_ctx *ctx); /* NULL + diag when out of memory */
void nasc_params_destroy(nasc_param_store *s);
nasc_tensor *nasc_params_find(const nasc_param_store *s, const char *name);
/* The tensor of that name, created zero-filled when missing. Fails
 * (NASC_EINPUT, NULL) when it exists with other dims. */
nasc_tensor *nasc_params_get(nasc_param_store *s, const char *name, int rank, const int64_t *dims);
nasc_status nasc_params_set_meta(nasc_param_store *s, const char *key, const char *value);
const char *nasc_params_meta(const nasc_param_store *s, const char *key); /* NULL when unset */

/* Create and initialise every parameter of a prim module that the store
 * does not hold yet as PyTorch does by default: conv, inner-product and
 * matmul weights U(-b, b) with b = 1/sqrt(fan_in), inner-product biases
 * the same with their weight's fan_in, batch-norm scales 1 and shifts 0. Each tensor draws from its own stream seeded by
 * seed ^ nasc_hash_str(name), so the values do not depend on the order in
 * which parameters are created. Existing tensors must have matching dims. */
nasc_status nasc_params_init(nasc_param_store *s, const nasc_module *prim, uint64_t seed);

/* The seed of a model given without weights: `nasc train`, `run`, `export`
 * and `bench` all initialise from it unless told otherwise, so a fresh
 * model is the same net everywhere. */
#define NASC_DEFAULT_SEED 1

/* Serialised form (the checkpoint format, docs/checkpoint.md): magic
 * "NASCPRM1", a format version, the metadata, the tensors, and a CRC-32 of
 * everything before it. Deserialising checks all of it and names what is
 * wrong (file and byte offset). */
nasc_status nasc_params_serialize(const nasc_param_store *s, nasc_buf *out);
nasc_status nasc_params_deserialize(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                                    nasc_param_store **out);

/* ------------------------------------------------------------------ */
/* Data sets                                                           */
/* ------------------------------------------------------------------ */

/* An image classification set held in memory as bytes (frontend/ reads it,
 * backend/ batches it). */
typedef struct nasc_dataset {
    int64_t n;          /* number of images */
    int c, h, w;        /* image shape */
    int classes;        /* labels are in [0, classes) */
    uint8_t *images;    /* (n, c, h, w), owned */
    uint8_t *labels;    /* (n), owned */
} nasc_dataset;

void nasc_dataset_free(nasc_ctx *ctx, nasc_dataset *d);

/* A text for character language models, as bytes (any encoding: UTF-8
 * text is its bytes, so 256 classes cover every corpus). */
typedef struct nasc_corpus {
    int64_t n;
    uint8_t *bytes; /* owned */
} nasc_corpus;

void nasc_corpus_free(nasc_ctx *ctx, nasc_corpus *c);
/* The contiguous split of a corpus of n bytes: [0, *train_end) trains,
 * [*train_end, *val_end) validates, [*val_end, n) tests: 90%, 5%, 5%. */
void nasc_corpus_split(int64_t n, int64_t *train_end, int64_t *val_end);

#endif /* NASC_IR_H */
