/* net_internal.h - the compiled net, shared by net.c (pipeline, memory
 * planning, execution) and ops.c (one forward/backward emitter per prim op). */
#ifndef NASC_NET_INTERNAL_H
#define NASC_NET_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>

#include "nasc_backend.h"

/* A block of memory. Planned buffers get an offset in the arena from the
 * lifetime of the steps that touch them; external ones point at memory the
 * net does not plan (the parameter store, parameter gradients, staging). */
typedef struct nb_buffer {
    size_t bytes;
    int first, last; /* step indices that touch it; first > last: unused */
    size_t offset;   /* in the arena, once planned */
    void *ext;       /* not NULL: external memory */
    bool keep;       /* must survive to the end of the step (outputs, input grads) */
} nb_buffer;

/* A tensor: a buffer seen through a memory descriptor (possibly a view). */
typedef struct nb_tref {
    int buf;
    dnnl_memory_desc_t md;
} nb_tref;

struct nb_step;
typedef void (*nb_kernel_fn)(nasc_net *net, const struct nb_step *s);

typedef struct nb_step {
    dnnl_primitive_t prim; /* NULL: fn runs instead */
    nb_kernel_fn fn;
    int first_arg, n_args; /* net->args[...] */
    dnnl_exec_arg_t *exec; /* built once memory is planned */
    dnnl_memory_t *mems;   /* owned, one per arg */
    int prim_index;        /* the prim op it belongs to, -1 none */
    const char *what;      /* "conv fwd", "conv bwd-w", ... (static string) */
    int64_t flops;         /* for the profile */
    float f[2];            /* small kernel parameters */
    int i[8];
    void *ptr;             /* kernel data (not owned) */
    double seconds;        /* accumulated time when profiling */
    int64_t calls;
} nb_step;

typedef struct nb_arg {
    int kind; /* DNNL_ARG_* (for kernels: an index) */
    int tref;
} nb_arg;

typedef struct nb_value {
    int fwd;            /* tref of the forward value, -1 none */
    int fwd_plain;      /* net inputs: the user's plain layout */
    int grad;           /* tref of the resolved gradient, -1 none */
    bool needs_grad;
    int n_contrib;      /* gradient contributions expected */
    int *contrib;       /* trefs written so far (n_contrib slots) */
    int got;
    nasc_tensor *param; /* parameters: the store tensor */
    bool fused;         /* inference: computed inside another primitive, not readable */
    int param_index;    /* parameters: index into net->grads */
} nb_value;

struct nasc_net {
    nasc_ctx *ctx;
    const nasc_module *m;
    nasc_param_store *store;
    nasc_net_options opt;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_format_tag_t act_tag; /* layout of every 4-D activation */

    nb_buffer *bufs;
    int n_bufs, cap_bufs;
    nb_tref *trefs;
    int n_trefs, cap_trefs;
    nb_arg *args;
    int n_args, cap_args;
    nb_step *steps;
    int n_steps, cap_steps;
    int n_fwd; /* steps [0, n_fwd) are the forward pass */

    nb_value *vals; /* one per module value */
    struct nb_prim_state {
        dnnl_primitive_desc_t pd; /* forward pd: the hint of the backward pds */
        int t[6];                 /* emitter-specific trefs (weights, mean, var, workspace) */
        int fold_bn;              /* conv: the batch norm folded into it, -1 none */
        int post_relu;            /* conv: the relu run as its post-op, -1 none */
        bool skip;                /* fused into an earlier op: emits nothing */
    } *ps;                        /* one per prim op */
    nasc_param_grad *grads;
    uint32_t n_grads;
    int *grad_uses;  /* per grads entry: contributions so far */

    char *arena;
    size_t arena_bytes, unplanned_bytes;
    int n_reorders;
    bool profile;
    nasc_status status; /* first error while building */
    int cur_prim;       /* prim op being emitted, for diagnostics */
};

/* Building blocks used by the emitters (net.c). */
int nb_buffer_new(nasc_net *net, size_t bytes);
int nb_tref_new(nasc_net *net, int buf, const dnnl_memory_desc_t *md);
/* A new dense planned tensor with this descriptor. */
int nb_tensor_new(nasc_net *net, const dnnl_memory_desc_t *md);
/* Append a step running prim (ownership passes to the net) with n args. */
int nb_step_prim(nasc_net *net, dnnl_primitive_desc_t pd, const char *what, int64_t flops, int n,
                 const nb_arg *args);
int nb_step_kernel(nasc_net *net, nb_kernel_fn fn, const char *what, int n, const nb_arg *args);
/* A reorder step from tensor src into a new tensor of descriptor md (or
 * into dst when dst >= 0); returns the destination tref. */
int nb_reorder(nasc_net *net, int src, const dnnl_memory_desc_t *md, int dst);
void *nb_ptr(const nasc_net *net, int tref); /* after planning */
nasc_status nb_fail(nasc_net *net, dnnl_status_t st, const char *call);
/* Plain descriptor of a module value for the batch (NCHW or NC). */
void nb_plain_md(const nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md);
/* dims[0] of t in this net: the batch size when it is the symbolic N, else
 * the fixed number (ONNX models may have static first dims). */
int64_t nb_dim0(const nasc_net *net, const nasc_type *t);
/* Descriptor of an activation of type t in the net's layout. */
void nb_act_md(const nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md);
/* Record a gradient contribution to value v (tref g). */
void nb_contribute(nasc_net *net, uint32_t v, int g);
/* Record a parameter gradient: tref g (any layout) holds d/d param of value
 * v; plain is the store layout seen with g's rank (NULL: the value's own). */
void nb_param_grad(nasc_net *net, uint32_t v, int g, const dnnl_memory_desc_t *plain);

#define NB_CHECK(net, call)                                                 \
    do {                                                                    \
        dnnl_status_t st_ = (call);                                         \
        if (st_ != dnnl_success) return nb_fail((net), st_, #call);         \
    } while (0)

/* Softmax cross-entropy of one row of logits z (k classes) against label
 * y: returns -log softmax(z)[y], sets *argmax, and when grad is not NULL
 * writes (softmax(z) - onehot(y)) * scale into it. */
double nb_xent_row(const float *z, int k, int y, int *argmax, float *grad, float scale);

/* g in descriptor md: itself when it already is, else a reorder copy. */
int nb_match(nasc_net *net, int g, const dnnl_memory_desc_t *md);

/* Emitters (ops.c). */
nasc_status nb_emit_forward(nasc_net *net, uint32_t prim_index);
nasc_status nb_emit_backward(nasc_net *net, uint32_t prim_index, int grad_tref);

#endif /* NASC_NET_INTERNAL_H */
