/* onnx_internal.h - the ONNX importer's state, shared by onnx_import.c
 * (the model, names, constants, the graph walk), onnx_ops.c (one lowering
 * per ONNX operator, and the operator table), onnx_fold.c (operators
 * evaluated at import: shapes and other constants) and onnx_window.c (Pad,
 * Slice and Gather of computed tensors). Private to frontend/.
 *
 * Every ONNX tensor name is a symbol. A symbol is a prim value (a graph
 * input, or the result of a lowered node), a constant known at import time
 * (an initializer, a Constant node, a graph input given a feed, or the
 * result of a node whose inputs are all constants), or both (a constant
 * used where a value is needed becomes a prim parameter).
 *
 * Shapes are constants too: Shape of a value gives its dims, and the
 * symbolic batch N is an element marked in ox_const.nb. Such a marked
 * element can be moved around (Gather, Concat, Unsqueeze, Slice, ...) and
 * read by Reshape as "N here"; arithmetic on it is an error.
 */
#ifndef NASC_ONNX_INTERNAL_H
#define NASC_ONNX_INTERNAL_H

#include <stddef.h>

#include "nasc_frontend.h"
#include "nasc_onnx.h"

#define OX_MAX_RANK 8 /* constants (shape vectors, ...) may have more dims than values */

enum { OX_NONE = 0, OX_F32, OX_I64 };

/* A tensor known at import time. */
typedef struct ox_const {
    int dtype;                  /* OX_F32, OX_I64 (INT32 widened), OX_NONE: not decodable */
    const char *why;            /* OX_NONE: what is wrong with it */
    int rank;                   /* 0..OX_MAX_RANK */
    int64_t dims[OX_MAX_RANK];
    int64_t numel;
    float *f;                   /* (numel,) when OX_F32 */
    int64_t *i;                 /* (numel,) when OX_I64 */
    uint8_t *nb;                /* (numel,) OX_I64 only: 1 where the element is the batch size N; NULL: none is */
    const char *pname;          /* prim name for a parameter made from it; NULL: made up constants */
} ox_const;

typedef enum ox_origin {
    OX_UNDEFINED, /* named by a node input but defined by nothing (so far) */
    OX_INPUT,     /* a graph input (not an initializer) */
    OX_INIT,      /* an initializer */
    OX_NODE,      /* an output of node def */
} ox_origin;

typedef struct ox_sym {
    const char *name;   /* the ONNX name (lives in the unpacked model) */
    const char *pname;  /* its prim name: sanitised, unique */
    ox_origin origin;
    int def;            /* OX_NODE: the node; OX_INPUT: the graph input index */
    bool defined;       /* OX_NODE: its node has been lowered */
    int konst;          /* index into consts, -1 none */
    uint32_t value;     /* prim value, UINT32_MAX none (yet) */
    int uses;           /* node inputs that name it */
    int value_uses, const_uses; /* graph inputs: uses as a value / in a constant slot */
    bool is_output;     /* a graph output */
    struct ox_window *win; /* a Pad / Slice whose prim op is not emitted yet (onnx_window.c): the node
                            * that reads it may fold it away, else ox_value emits it */
} ox_sym;

/* A parameter made from a constant (with given dims and contents). */
typedef struct ox_made {
    int konst;
    int rank;
    int64_t dims[NASC_MAX_RANK];
    uint32_t value;
} ox_made;

typedef struct ox_imp {
    nasc_ctx *ctx;
    const char *file;
    nasc_onnx_pb pb;            /* protobuf-c allocating from ctx */
    Onnx__ModelProto *model;
    Onnx__GraphProto *g;
    int64_t opset;              /* of the default domain */
    nasc_module *m;
    nasc_param_store *w;
    nasc_onnx_arena arena;      /* what ox_alloc gives out */

    ox_sym *syms;
    uint32_t n_syms, cap_syms;
    uint32_t *index;            /* open addressing over ONNX names: sym + 1, 0 empty */
    uint32_t index_cap;
    uint32_t *pindex;           /* the same over prim names in use or reserved */
    uint32_t pindex_cap, n_pnames;
    const char **pnames;        /* (pindex entries) the reserved prim names */
    uint32_t cap_pnames;

    ox_const *consts;
    uint32_t n_consts, cap_consts;
    ox_made *params;
    uint32_t n_params, cap_params;
    Onnx__TensorProto **feeds;  /* unpacked feeds, freed at the end */
    uint32_t n_feeds;

    int cur;                    /* node being lowered, -1 none */
    const char *group;          /* the prim group of every op */
} ox_imp;

/* Arena: zeroed memory that lives until the import ends. NULL + diagnostic. */
void *ox_alloc(ox_imp *x, size_t size);
char *ox_strdup(ox_imp *x, const char *s);

/* An error about the node being lowered (or the model when none): names
 * the node (name or index) and its op type. Returns NASC_EINPUT. */
nasc_status ox_fail(ox_imp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Node inputs. */
const Onnx__NodeProto *ox_node(ox_imp *x);
/* Input i of the current node: NULL when absent or empty (optional). */
const char *ox_in(ox_imp *x, uint32_t i);
/* Its symbol, NULL when absent. */
ox_sym *ox_in_sym(ox_imp *x, uint32_t i);
/* Its prim value (a parameter when it is a float constant); UINT32_MAX + diagnostic. */
uint32_t ox_value(ox_imp *x, uint32_t i);
/* Its constant, NULL + diagnostic when it is not one (what names the input's
 * role) or when it holds the batch size N (ox_shape_in accepts that). */
const ox_const *ox_const_in(ox_imp *x, uint32_t i, const char *what);
const ox_const *ox_shape_in(ox_imp *x, uint32_t i, const char *what);
/* Every input the node has is a constant and none is a prim value: the
 * node can be evaluated at import. */
bool ox_all_const(ox_imp *x);
/* Input i as a value for a node that pads with zeros itself (Conv, an
 * AveragePool that counts its padding): when input i is the zero padding of
 * a Pad that nothing else reads, pad (top, left, bottom, right) gets that
 * padding and the result is the Pad's input; else pad is all 0 and the
 * result is ox_value. */
uint32_t ox_value_unpadded(ox_imp *x, uint32_t i, int64_t pad[4]);
/* Input i is a constant (initializer, Constant node or fed graph input). */
bool ox_is_const(ox_imp *x, uint32_t i);
/* Input i already is a prim value (a graph input or an op result). */
bool ox_has_value(ox_imp *x, uint32_t i);
const nasc_type *ox_type(ox_imp *x, uint32_t value);

/* Attributes of the current node (NULL when absent). Each getter fails
 * (returns false with a diagnostic) when the attribute has another type. */
const Onnx__AttributeProto *ox_attr(ox_imp *x, const char *name);
bool ox_attr_int(ox_imp *x, const char *name, int64_t dflt, int64_t *out);
bool ox_attr_float(ox_imp *x, const char *name, float dflt, float *out);
/* ints: *n = count (0 when absent); at most cap values. */
bool ox_attr_ints(ox_imp *x, const char *name, int64_t *out, int cap, int *n);
/* string: NUL-terminated copy into buf; dflt when absent. */
bool ox_attr_string(ox_imp *x, const char *name, const char *dflt, char *buf, size_t size);
/* Every attribute of the node is in the NULL-terminated list; else an error naming the first other one. */
bool ox_attrs_known(ox_imp *x, const char *const *known);

/* Results. out is the node's output index. ox_out_sym: its symbol, NULL
 * when the node has no such output (or it is unnamed). */
ox_sym *ox_out_sym(ox_imp *x, uint32_t out);
nasc_status ox_define(ox_imp *x, uint32_t out, uint32_t value);
nasc_status ox_define_const(ox_imp *x, uint32_t out, int konst);
/* A prim op whose result is the node's output out (its prim name). */
uint32_t ox_op(ox_imp *x, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a, uint32_t out);
/* A helper op with a fresh name "<output out>.<suffix>". */
uint32_t ox_op_tmp(ox_imp *x, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a,
                   uint32_t out, const char *suffix);

/* Decode a TensorProto. One nasc cannot read is not an error yet: c->why
 * says why, and it becomes one when something uses it. Only out of memory fails. */
nasc_status ox_decode(ox_imp *x, const Onnx__TensorProto *t, ox_const *c);
/* Constants. ox_const_new: a new float constant of these dims (data zeroed);
 * ox_const_make: of dtype OX_F32 or OX_I64. -1 when out of memory (or too
 * large: a diagnostic then). Indices, not pointers: x->consts moves. */
int ox_const_new(ox_imp *x, int rank, const int64_t *dims);
int ox_const_make(ox_imp *x, int dtype, int rank, const int64_t *dims);
/* A parameter holding constant k seen with other dims of the same numel
 * (NULL: its own); name NULL: the constant's own prim name, else a fresh
 * "<output out>.<name>". Reused when asked again. */
uint32_t ox_param(ox_imp *x, int k, int rank, const int64_t *dims, const char *name, uint32_t out);
/* A store tensor (not a module value) holding constant k: batch-norm statistics. */
nasc_status ox_store(ox_imp *x, const char *name, int k);
/* A fresh unique prim name "<base>.<suffix>" (reserved). */
const char *ox_fresh(ox_imp *x, const char *base, const char *suffix);
const char *ox_out_pname(ox_imp *x, uint32_t out);

/* Integers of constant input i (an attribute attr before operator set
 * since); *n = count (0: absent); at most cap. */
bool ox_ints_of(ox_imp *x, uint32_t i, const char *attr, int64_t since, const char *what, int64_t *out, int cap,
                int *n);
/* A constant [1] holding f, as a parameter named "<output 0>.<name>". */
uint32_t ox_scalar_param(ox_imp *x, float f, const char *name);
nasc_status ox_status(ox_imp *x);

/* Slice's starts, ends, axes and steps (inputs; attributes before operator
 * set 10) for a tensor of these dims, with ONNX's clamping: axis d keeps
 * the elements start[d] + k * step[d], k < count[d]. A dim NASC_BATCH can
 * only be kept whole (count NASC_BATCH). false + diagnostic. */
bool ox_slice_ranges(ox_imp *x, int rank, const int64_t *dims, int64_t *start, int64_t *step, int64_t *count);
/* Emit the pending Pad / Slice of symbol s (onnx_window.c). */
uint32_t ox_window_emit(ox_imp *x, ox_sym *s);

/* Lowerings outside onnx_ops.c. */
nasc_status ox_lower_shape(ox_imp *x);
nasc_status ox_lower_gather(ox_imp *x);
nasc_status ox_lower_unsqueeze(ox_imp *x);
nasc_status ox_lower_squeeze(ox_imp *x);
nasc_status ox_lower_cast(ox_imp *x);
nasc_status ox_lower_constant_of_shape(ox_imp *x);
nasc_status ox_lower_transpose(ox_imp *x);
nasc_status ox_lower_pad(ox_imp *x);
nasc_status ox_lower_slice(ox_imp *x);
/* Evaluated at import when every input is a constant (ox_all_const). */
nasc_status ox_fold_concat(ox_imp *x);
nasc_status ox_fold_reshape(ox_imp *x);
nasc_status ox_fold_slice(ox_imp *x);
nasc_status ox_fold_gather(ox_imp *x);
/* Add, Sub, Mul, Div with numpy broadcasting ('+', '-', '*', '/'). */
nasc_status ox_fold_arith(ox_imp *x, char op);

/* The operator table (onnx_ops.c). */
typedef nasc_status (*ox_lower_fn)(ox_imp *x);
typedef struct ox_op_info {
    const char *name;
    ox_lower_fn lower;
    unsigned const_slots; /* bit i: input i must be a constant (weights, shapes, ...) */
    unsigned prefer_slots; /* bit i: input i is taken as a constant when it is one (Gemm's B, C) */
} ox_op_info;
const ox_op_info *ox_op_find(const char *op_type);

#endif /* NASC_ONNX_INTERNAL_H */
