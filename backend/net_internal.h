/* net_internal.h - the compiled net, shared by net.c (pipeline, memory
 * planning, execution) and ops.c (one forward/backward emitter per prim op). */
#ifndef NASC_NET_INTERNAL_H
#define NASC_NET_INTERNAL_H

#include <assert.h>

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
    void *ptr;             /* kernel data; the step owns it (frees it) when i[7] is 1 */
    bool prep;             /* inference: prepares weights from the store (fold, reorder);
                            * runs only when the store tensors it reads changed */
    bool sync;             /* a lane's kernel that meets the other lanes (a barrier): it runs
                            * even after an earlier step failed, so that no lane waits for
                            * one that left the pass */
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
    int concat;         /* forward: the concat (prim index) whose result holds this value in place
                         * (written there by its add), -1 none; concat_off: its first channel there */
    int64_t concat_off;
    int sub_grad;       /* backward: a gradient contribution that subsampling convs' backward
                         * steps write into (the first zeroes the rest), -1 none */
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
        int bn_relu;              /* batch norm: the relu it computes too (fused), -1 none */
        int same_as;              /* an earlier prim op computing the same value, -1 none */
        bool shared;              /* later prim ops are the same as this one (same_as): its
                                   * result's tensor is read through their values too */
        int sum_add;              /* conv: the add it computes by summing into the add's other
                                   * operand's tensor (post-op sum), -1 none */
        int concat_buf;           /* concat: its result's tensor, made by the first operand written
                                   * into it in place, -1 none yet */
        int concat_relu;          /* concat: the relu that is its result's only use (with opt.fuse),
                                   * applied as the operands are written, -1 none */
        bool in_concat;           /* relu: its result is its concat's tensor, relu'd there */
        bool skip;                /* fused into an earlier op: emits nothing */
        int sub_src;              /* conv (1x1, stride 2, no top/left pad): the value whose pixels
                                   * (2i + sub_off[0], 2j + sub_off[1]) it reads (its input, or a
                                   * shift's input when the shift is fused into it), run as a
                                   * subsample step and a stride-1 convolution; -1 none */
        int sub_off[2];
    } *ps;                        /* one per prim op */
    nasc_param_grad *grads;
    uint32_t n_grads;
    int *grad_uses;  /* per grads entry: contributions so far */

    char *arena;     /* 64-byte aligned, inside arena_raw */
    char *arena_raw; /* from the context's allocator */
    size_t arena_bytes, unplanned_bytes;
    int n_reorders;
    int n_created;   /* primitives not found in oneDNN's cache when compiled; -1 unknown */
    int n_winograd;  /* forward convolutions running a Winograd kernel */
    bool profile;
    bool emit_prep;  /* steps added now are weight preparation (inference) */
    bool serial;     /* passes run on the calling thread alone (opt.parallel) */
    /* Lanes (lanes.c): when n_lanes > 1 this net builds nothing itself; it
     * hands slices of the batch to n_lanes nets of one thread each and runs
     * them at the same time. */
    struct nb_lane *lanes;
    int n_lanes;
    bool lane;       /* this net is a lane of another: its passes run concurrently with the
                      * other lanes', each inside the same OpenMP parallel region */
    int lane_index;  /* which lane */
    struct nb_sync *sync; /* training lanes: what their batch norms exchange (not owned) */
    bool pass_failed; /* a step of the running pass failed: sync steps only meet the others */
    dnnl_primitive_attr_t lane_attr; /* a lane's primitives: scratchpad in the net's memory */
    /* Store tensors the preparation steps read, and a copy of their bytes
     * as of the last preparation: a forward pass re-runs the preparation
     * when the store's bytes differ (an optimizer step, a loaded
     * checkpoint, any write), and skips it when they do not. */
    struct nb_watch {
        const void *data;
        size_t bytes;
        void *seen; /* the bytes when last prepared */
    } *watch;
    int n_watch;
    bool prepared;   /* the preparation steps' results match the copies */
    nasc_status status; /* first error while building */
    bool built;         /* compiled: errors no longer go to status */
    int cur_prim;       /* prim op being emitted or run, for diagnostics */
};

/* One lane of a lane net: a whole net for images [first, first + batch) of
 * the batch, with a context of its own (the caller's allocator). */
typedef struct nb_lane {
    nasc_ctx ctx;
    nasc_net *net;
    int batch, first;
    nasc_status status; /* of its last pass */
} nb_lane;

/* Training lanes normalise each batch norm over the whole batch, not over
 * their slice: each lane writes its slice's per-channel sums into its row
 * of slots, all lanes meet, and each combines the rows in lane order (so
 * every lane computes the same statistics). A batch norm's columns in a
 * row: off[p] (the prim op's index) onwards, 5 C doubles: three for the
 * forward pass, two for the backward (lanes.c). */
typedef struct nb_sync {
    int n_lanes;
    int batch;        /* the whole batch */
    size_t per_lane;  /* doubles in a lane's row */
    double *slots;    /* n_lanes rows, 64-byte aligned inside slots_raw */
    double *slots_raw;
    int64_t *off;     /* per prim op */
    int failed;       /* a lane's step failed in the running pass: the others stop at the next
                       * meeting (read and written atomically; cleared before each pass) */
} nb_sync;

/* What makes a net a lane (nb_compile): its index, and the batch norms'
 * exchange of training lanes (NULL for inference). */
typedef struct nb_lane_of {
    int index;
    nb_sync *sync;
} nb_lane_of;

/* nasc_net_compile; of: compile it as that lane (lanes.c), NULL: not a lane */
nasc_status nb_compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *params, const nasc_net_options *opt,
                       const nb_lane_of *of, nasc_net **out);
/* lanes.c: how many lanes (0: none) the options and the machine ask for;
 * an error when they ask for lanes the net cannot have. */
nasc_status nb_lane_count(nasc_net *net, int *lanes);
nasc_status nb_lanes_compile(nasc_net *net, int n);
/* The attributes for a primitive that has none of its own: NULL, or in a
 * lane, the scratchpad passed as an argument (nb_step_prim plans it). */
const_dnnl_primitive_attr_t nb_attr(const nasc_net *net);
/* The same scratchpad mode for attributes a primitive has of its own. */
nasc_status nb_attr_own(nasc_net *net, dnnl_primitive_attr_t attr);
void nb_lanes_destroy(nasc_net *net);
nasc_status nb_lanes_set_input(nasc_net *net, uint32_t i, const float *data);
nasc_status nb_lanes_forward(nasc_net *net);
nasc_status nb_lanes_backward(nasc_net *net);
nasc_status nb_lanes_read_grad(nasc_net *net, const char *value, float *out);
nasc_status nb_lanes_set_output_grad(nasc_net *net, uint32_t i, const float *grad);
nasc_status nb_lanes_read(nasc_net *net, const char *value, float *out);
nasc_status nb_lanes_loss_at(nasc_net *net, uint32_t out, const int32_t *labels, float weight, float smooth,
                             float *loss, int *correct);
void nb_lanes_stats(const nasc_net *net, nasc_net_stats *out);
/* Training lanes' batch norms (lanes.c): whether their kernels walk md's
 * layout, and the kernels (sync steps). */
bool nb_chan_walk_ok(const dnnl_memory_desc_t *md);
/* ... and md's walk has like's dims and channel blocks (a view of a larger
 * tensor in like's layout, say). */
bool nb_chan_walk_like(const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like);
enum { NB_BN_GRADS_MAX = 8 }; /* gradients a lane's batch norm backward sums itself */
/* A lane's step failed: tell the other lanes (they stop at the next
 * meeting). */
void nb_lanes_fail(nasc_net *net);
void nb_k_bn_lanes_fwd(nasc_net *net, const nb_step *s);
void nb_k_bn_lanes_bwd(nasc_net *net, const nb_step *s);
void nb_lanes_profile_print(const nasc_net *net, FILE *out);
void nb_lanes_profile_reset(nasc_net *net);

/* Building blocks used by the emitters (net.c). */
int nb_buffer_new(nasc_net *net, size_t bytes);
int nb_tref_new(nasc_net *net, int buf, const dnnl_memory_desc_t *md);
/* A new dense planned tensor with this descriptor. */
int nb_tensor_new(nasc_net *net, const dnnl_memory_desc_t *md);
/* Append a step running prim (ownership passes to the net) with n args. */
int nb_step_prim(nasc_net *net, dnnl_primitive_desc_t pd, const char *what, int64_t flops, int n,
                 const nb_arg *args);
int nb_step_kernel(nasc_net *net, nb_kernel_fn fn, const char *what, int n, const nb_arg *args);
/* Whether concat c can hold its operands in place (ops.c); its tensor's
 * descriptor in *md. */
bool nb_concat_in_place(nasc_net *net, const nasc_prim *c, dnnl_memory_desc_t *md);
/* A reorder step from tensor src into a new tensor of descriptor md (or
 * into dst when dst >= 0); returns the destination tref. */
int nb_reorder(nasc_net *net, int src, const dnnl_memory_desc_t *md, int dst);
void *nb_ptr(const nasc_net *net, int tref); /* after planning */
/* y = the sum of the n runs x[0..n) of len floats (n >= 1), clamped at 0
 * with relu (a NaN stays NaN, as in oneDNN's relu) (ops.c). */
void nb_sum_runs(float *restrict y, const float *const *x, int n, int64_t len, bool relu);
/* The image stride (floats) of md when it is a 4-D tensor of whole
 * 16-channel blocks whose (H, W, 16) planes are dense, alone or a channel
 * slice of a wider tensor, else 0 (net.c). */
int64_t nb_planes16_image(const dnnl_memory_desc_t *md);

/* A kernel that reads and writes memory at the machine's vector width: gcc
 * and clang compile a copy for AVX-512, AVX2 and the baseline, and the
 * loader picks one. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define NB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NB_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NB_MUST_USE __attribute__((warn_unused_result))
#else
#define NB_MUST_USE
#endif

/* oneDNN statuses. Every call of a oneDNN function that returns a status
 * goes through one of these macros, the call written as the macro's
 * argument on the macro's line (tests/backend/test_rules.sh checks it):
 *
 *   NB_TRY(net, call)           the call's status as a nasc_status: NASC_OK,
 *                               or NASC_EINTERNAL with a diagnostic that
 *                               names the call, oneDNN's status, our
 *                               file:line and the prim op being compiled or
 *                               run, and suggests ONEDNN_VERBOSE=check;
 *                               while compiling, also net->status
 *   NB_TRY_AS(net, what, call)  the same, saying what the call was for
 *   NB_TRY_CTX(ctx, call)       the same without a net (diagnostic in ctx)
 *   NB_CHECK(net, call)         NB_TRY, returning a failure from the
 *                               enclosing function
 *   NB_DESTROY(call)            a destroy of a handle we created: oneDNN 2.x
 *                               fails one only when it is not a handle, a
 *                               bug of ours, so it is an assertion (cleanup
 *                               paths have nothing else to do with it)
 */
nasc_status nb_fail_at(nasc_net *net, dnnl_status_t st, const char *call, const char *what, const char *file, int line);
nasc_status nb_fail_ctx(nasc_ctx *ctx, dnnl_status_t st, const char *call, const char *file, int line);
NB_MUST_USE static inline nasc_status nb_check(nasc_net *net, dnnl_status_t st, const char *call, const char *what,
                                               const char *file, int line) {
    return st == dnnl_success ? NASC_OK : nb_fail_at(net, st, call, what, file, line);
}
NB_MUST_USE static inline nasc_status nb_check_ctx(nasc_ctx *ctx, dnnl_status_t st, const char *call, const char *file,
                                                   int line) {
    return st == dnnl_success ? NASC_OK : nb_fail_ctx(ctx, st, call, file, line);
}
#define NB_TRY(net, call) nb_check((net), (call), #call, NULL, __FILE__, __LINE__)
#define NB_TRY_AS(net, what, call) nb_check((net), (call), #call, (what), __FILE__, __LINE__)
#define NB_TRY_CTX(ctx, call) nb_check_ctx((ctx), (call), #call, __FILE__, __LINE__)
#define NB_CHECK(net, call)                                \
    do {                                                   \
        nasc_status nb_st_ = NB_TRY((net), call);          \
        if (nb_st_) return nb_st_;                         \
    } while (0)
#define NB_DESTROY(call)                                   \
    do {                                                   \
        dnnl_status_t nb_ds_ = (call);                     \
        assert(nb_ds_ == dnnl_success && #call);           \
        (void)nb_ds_;                                      \
    } while (0)
/* Return a failed nasc_status from the enclosing function. */
#define NB_PASS(expr)                                      \
    do {                                                   \
        nasc_status nb_st_ = (expr);                       \
        if (nb_st_) return nb_st_;                         \
    } while (0)

/* Plain descriptor of a module value for the batch (NCHW or NC). */
NB_MUST_USE nasc_status nb_plain_md(nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md);
/* dims[0] of t in this net: the batch size when it is the symbolic N, else
 * the fixed number (ONNX models may have static first dims). */
int64_t nb_dim0(const nasc_net *net, const nasc_type *t);
/* Descriptor of an activation of type t in the net's layout. */
NB_MUST_USE nasc_status nb_act_md(nasc_net *net, const nasc_type *t, dnnl_memory_desc_t *md);
/* Record a gradient contribution to value v (tref g). */
void nb_contribute(nasc_net *net, uint32_t v, int g);
/* Record a parameter gradient: tref g (any layout) holds d/d param of value
 * v; plain is the store layout seen with g's rank (NULL: the value's own). */
void nb_param_grad(nasc_net *net, uint32_t v, int g, const dnnl_memory_desc_t *plain);

/* Softmax cross-entropy of one row of logits z (k classes) against the
 * label y smoothed by `smooth` (target t = (1 - smooth) onehot(y) + smooth / k):
 * returns -sum_j t_j log softmax(z)_j, sets *argmax, and when grad is not
 * NULL writes (softmax(z) - t) * scale into it. */
double nb_xent_row(const float *z, int k, int y, int *argmax, float *grad, float scale, float smooth);

/* g in descriptor md: itself when it already is, else a reorder copy. */
int nb_match(nasc_net *net, int g, const dnnl_memory_desc_t *md);

/* Serial nets (threads.c): the calling thread's OpenMP count is 1 from
 * begin to end; begin returns what end restores. */
int nb_serial_begin(void);
void nb_serial_end(int was);

/* Emitters (ops.c). */
/* A relu's backward that also sums the gradients of its result (instead of
 * a separate sum step) when they are all in its input's layout: returns
 * whether it emitted it. */
bool nb_emit_relu_bwd_sum(nasc_net *net, uint32_t prim_index);
/* The same for a training lane's batch norm. */
bool nb_emit_bn_lanes_bwd_sum(nasc_net *net, uint32_t prim_index);
nasc_status nb_emit_forward(nasc_net *net, uint32_t prim_index);
nasc_status nb_emit_backward(nasc_net *net, uint32_t prim_index, int grad_tref);

#endif /* NASC_NET_INTERNAL_H */
