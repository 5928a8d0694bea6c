/* onnx_internal.h - the ONNX importer's state, shared by onnx_import.c
 * (the model, names, constants, the graph walk) and onnx_ops.c (one
 * lowering per ONNX operator). Private to frontend/.
 *
 * Every ONNX tensor name is a symbol. A symbol is a prim value (a graph
 * input, or the result of a lowered node), a constant known at import time
 * (an initializer, a Constant node, a graph input given a feed), or both
 * (a constant used where a value is needed becomes a prim parameter).
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
    int user;           /* the last node that uses it */
    int value_uses, const_uses; /* graph inputs: uses as a value / in a constant slot */
    bool is_output;     /* a graph output */
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

    bool *skip;                 /* (n_node,) nodes consumed by a pattern */
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
/* Its prim value (a parameter when it is a float constant); UINT32_MAX + diagnostic. */
uint32_t ox_value(ox_imp *x, uint32_t i);
/* Its constant, NULL + diagnostic when it is not one (what names the input's role). */
const ox_const *ox_const_in(ox_imp *x, uint32_t i, const char *what);
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

/* Results. out is the node's output index. */
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
/* Constants. ox_const_new: a new float constant of these dims (data zeroed). */
int ox_const_new(ox_imp *x, int rank, const int64_t *dims);
/* A parameter holding constant k seen with other dims of the same numel
 * (NULL: its own); name NULL: the constant's own prim name, else a fresh
 * "<output out>.<name>". Reused when asked again. */
uint32_t ox_param(ox_imp *x, int k, int rank, const int64_t *dims, const char *name, uint32_t out);
/* A store tensor (not a module value) holding constant k: batch-norm statistics. */
nasc_status ox_store(ox_imp *x, const char *name, int k);
/* A fresh unique prim name "<base>.<suffix>" (reserved). */
const char *ox_fresh(ox_imp *x, const char *base, const char *suffix);
const char *ox_out_pname(ox_imp *x, uint32_t out);

/* Patterns over two nodes: the node that is the only user of the current
 * node's output out, reading it as its input 0, when its op type is
 * op_type (else -1, or when out is a graph output). */
int ox_sole_user(ox_imp *x, uint32_t out, const char *op_type);
/* Give output out of node `node` a value (UINT32_MAX: defined, but only
 * consumed inside a pattern) and skip that node later. */
void ox_define_node(ox_imp *x, int node, uint32_t out, uint32_t value, bool skip);

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
