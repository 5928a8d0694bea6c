/* nasc_backend.h - compile a prim module into a net that trains and runs on
 * oneDNN, in process, on the CPU.
 *
 * A net is compiled for one batch size and one mode. It holds the oneDNN
 * engine and stream, the forward (and, when training, backward) primitives
 * in execution order, and one arena for activations and gradients planned by
 * liveness. Parameters are not owned by the net: it binds each parameter
 * value to the tensor of the same name in a nasc_param_store, which may be
 * shared by many nets.
 *
 * Tensors cross this interface in plain row-major layout with the batch
 * first (NCHW, or (N, K) for vectors); inside, oneDNN picks its layouts.
 *
 * Memory comes from the context's allocator (nasc_ctx_set_allocator):
 * compiling allocates everything a net needs, kernel scratch included, and
 * a step (set_input, forward, loss, backward, read) allocates nothing of
 * ours. oneDNN's handles and its own scratchpads are its business.
 *
 * Worked example (one training step):
 *
 *     nasc_param_store *ps = nasc_params_create(&ctx);
 *     nasc_params_init(ps, prim, 1);
 *     nasc_net_options o = nasc_net_options_default();
 *     o.batch = 64;
 *     nasc_net *net = NULL;
 *     if (nasc_net_compile(&ctx, prim, ps, &o, &net)) nasc_diag_print(&ctx.diag, stderr);
 *     nasc_net_set_input(net, 0, images);          // (64, C, H, W) floats
 *     nasc_net_forward(net);
 *     float loss; int correct;
 *     nasc_net_loss(net, labels, &loss, &correct);  // softmax cross-entropy
 *     nasc_net_backward(net);
 *     const nasc_param_grad *g; uint32_t n = nasc_net_grads(net, &g);
 *     nasc_optim_step(opt, g, n, lr);
 *     nasc_net_destroy(net);
 *
 * API stability: public API, with the promise nasc_ir.h states (unchanged
 * within a 0.x minor release). Numerical results are not covered: they may
 * differ in the last bits between releases, oneDNN versions, CPUs and
 * thread counts.
 */
#ifndef NASC_BACKEND_H
#define NASC_BACKEND_H

#include "nasc_ir.h"

typedef struct nasc_net nasc_net;

/* Activation memory for nets compiled and run one after another (a
 * one-shot search compiles a child per step): a net compiled with
 * opt.arena plans its activations into it, growing it when it is too
 * small, instead of allocating (and the kernel faulting in) an arena of
 * its own each time. The nets must not run at the same time, and a net's
 * values are gone once another net of the same arena ran. Zero-initialise
 * with the allocating context: nasc_net_arena a = {&ctx, NULL, 0}; free
 * with nasc_net_arena_free after the last net is destroyed. */
typedef struct nasc_net_arena {
    nasc_ctx *ctx;
    char *raw;
    size_t bytes;
} nasc_net_arena;
void nasc_net_arena_free(nasc_net_arena *a);

typedef enum nasc_net_mode {
    NASC_MODE_TRAIN, /* batch statistics, backward pass, gradients */
    NASC_MODE_INFER, /* running statistics, forward only */
} nasc_net_mode;

/* Layout of the net's 4-D activations. */
typedef enum nasc_net_layout {
    NASC_NET_LAYOUT_AUTO, /* blocks of channels at the CPU's vector width: nChw16c on AVX-512
                           * when every 4-D result has a multiple of 16 channels, else nChw8c
                           * when they all have a multiple of 8, else nchw: no reorder
                           * between primitives */
    NASC_NET_LAYOUT_NCHW, /* always plain nchw (comparisons, debugging; usually slower) */
} nasc_net_layout;

/* How many of the process's threads run a net's passes. */
typedef enum nasc_net_parallel {
    NASC_NET_PARALLEL_AUTO, /* inference: one thread for nets whose convolutions and inner
                             * products do under a million multiply-adds each on average at
                             * the net's batch size (cell nets at batch 1): too small for the
                             * cost of sharing them out; else lanes when the process has 2 to
                             * 8 threads and the net can have them (see LANES); else the
                             * process's threads. Training: lanes under the same conditions
                             * and when OpenMP will give every lane its thread (not compiled
                             * inside a parallel region, dynamic thread counts off), else the
                             * process's threads */
    NASC_NET_PARALLEL_ALL,  /* always the process's threads, one net (comparisons) */
    NASC_NET_PARALLEL_ONE,  /* the calling thread alone */
    NASC_NET_PARALLEL_LANES, /* one lane per thread (at most one per image). The batch is
                             * split between min(threads, batch) nets of one thread each,
                             * compiled for their slice, whose passes run at the same time,
                             * meeting once per pass instead of after every primitive;
                             * results equal the one-net results up to rounding. Training
                             * lanes also meet at each batch norm, which normalises over the
                             * whole batch as one net does (nasc's own kernels), and add up
                             * their parameter gradients after the backward pass; they need
                             * all their threads at once (not inside another OpenMP parallel
                             * region). Not for bn_batch_stats, a caller's arena, or modules
                             * whose ops mix images: a value whose first dimension is not
                             * the batch, a softmax along it (an error) */
} nasc_net_parallel;

/* Compile options; nasc_net_options_default() gives every default below.
 * Nothing else (no environment variable) changes how a net is built. */
typedef struct nasc_net_options {
    int batch;           /* the symbolic batch dimension N */
    nasc_net_mode mode;
    bool input_grad;     /* also compute d/d(net input) (tests); off: the first layer skips it */
    bool fuse;           /* inference: fold batch norm into conv, relu as a post-op; both
                          * modes: a relu after a batch norm runs inside it, and a concat
                          * whose only uses are relus writes their result. Values
                          * in between (the concat's) are then not readable (nasc_net_read) */
    float bn_momentum;   /* running = (1 - m) * running + m * batch (unbiased batch variance,
                          * as PyTorch); stored as "<bn result>.mean" / ".var"; default 0.1 */
    int threads;         /* > 0: the process's thread count, set on the first compile that asks
                          * (nasc_backend_set_threads: once per process; another count later
                          * is an error); 0: leave it as it is */
    bool profile;        /* time every step (nasc_net_profile_print); default off */
    nasc_net_layout layout; /* 4-D activations; default NASC_NET_LAYOUT_AUTO */
    nasc_net_parallel parallel; /* default NASC_NET_PARALLEL_AUTO; one thread means the calling
                          * thread runs each pass alone (its OpenMP count is 1 during the
                          * pass and restored after; the process's count is unchanged) */
    nasc_net_arena *arena; /* activations in this caller-owned memory; NULL: the net's own */
    bool bn_batch_stats; /* inference: batch norms normalise with the batch's own mean and
                          * variance (not folded into convolutions; the running statistics
                          * are neither read nor written), as ENAS scores its shared-weight
                          * children; default off */
    bool fixed_weights;  /* inference: the store tensors the net reads keep their values while the
                          * net lives (nasc eval, bench, run), so weights are folded and
                          * reordered on the first pass only; default off: every pass first
                          * compares them with the bytes it last prepared from (a pass after a
                          * change of the store sees the change) */
    bool onednn_dw;      /* depthwise convolutions always by oneDNN's primitives, never nasc's own
                          * kernels (backward-weights, which replaces oneDNN's slow fallbacks for
                          * kernels other than 3x3 and plain layouts; forward and backward-data
                          * on AVX-512, nChw16c); for comparisons and benchmarks; default off */
    bool small_pages;    /* default off: an activation arena of 4 MB or more is advised to use
                          * transparent huge pages (Linux madvise MADV_HUGEPAGE; the kernel may
                          * decline), which spares the passes' streaming loops most of their
                          * TLB misses; on: advised not to (MADV_NOHUGEPAGE), ordinary pages
                          * even where THP is always on */
} nasc_net_options;

nasc_net_options nasc_net_options_default(void);

/* Verify prim, bind every parameter to the tensor of that name in params
 * (which must exist with matching dims: see nasc_params_init), create the
 * primitives and plan memory. */
nasc_status nasc_net_compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *params,
                             const nasc_net_options *opt, nasc_net **out);
void nasc_net_destroy(nasc_net *net);

/* Copy net input i (in the module's input order) in. data holds batch *
 * numel floats. */
nasc_status nasc_net_set_input(nasc_net *net, uint32_t i, const float *data);
nasc_status nasc_net_forward(nasc_net *net);
/* Copy any value out after forward (results of ops, inputs): batch * numel
 * floats. Values that the planner let share memory with a later one are
 * only readable when the net was compiled with every value kept alive;
 * NASC_EINPUT tells when it is not readable. */
nasc_status nasc_net_read(nasc_net *net, const char *value, float *out);

/* Softmax cross-entropy of output 0 (logits (N, K)) against labels; seeds
 * the backward pass with its gradient (mean over the batch). Logits of
 * rank 3 or more, (N, T, K), are N * T rows of K with N * T labels in
 * row-major order, the mean taken over all rows (a language model's
 * per-position loss). */
nasc_status nasc_net_loss(nasc_net *net, const int32_t *labels, float *loss, int *correct);
/* The same for output `out`, its gradient scaled by weight (an auxiliary
 * head's loss weight) and the labels smoothed: the target is
 * (1 - smooth) onehot(y) + smooth / K, smooth in [0, 1). *loss is the
 * unweighted mean over the batch. */
nasc_status nasc_net_loss_at(nasc_net *net, uint32_t out, const int32_t *labels, float weight, float smooth,
                             float *loss, int *correct);
/* Seed the backward pass with a given gradient of output i instead. */
nasc_status nasc_net_set_output_grad(nasc_net *net, uint32_t i, const float *grad);
nasc_status nasc_net_backward(nasc_net *net);
/* Gradient of a value after backward: a parameter (param numel floats) or
 * an activation / the input (batch * numel floats). */
nasc_status nasc_net_read_grad(nasc_net *net, const char *value, float *out);

/* The net's parameter gradients after backward, plain layout. */
typedef struct nasc_param_grad {
    nasc_tensor *param; /* in the store */
    const float *grad;  /* param->numel floats, owned by the net */
} nasc_param_grad;
uint32_t nasc_net_grads(const nasc_net *net, const nasc_param_grad **out);

/* Figures of a compiled net. */
typedef struct nasc_net_stats {
    int64_t arena_bytes;     /* planned activations and gradients */
    int64_t unplanned_bytes; /* the same buffers each in its own allocation */
    int n_forward, n_backward; /* primitives executed per step */
    int n_reorders;          /* layout conversions per training step */
    int n_created;           /* primitives the compile created, not taken from oneDNN's cache
                              * (-1: this oneDNN cannot tell) */
    int n_winograd;          /* forward convolutions on a Winograd kernel (inference: oneDNN
                              * picks it where it expects it to be faster than direct) */
    int n_lanes;             /* lanes (NASC_NET_PARALLEL_LANES) the passes run in, 0 none; the
                              * step, reorder and Winograd counts are then the first lane's
                              * (lanes of another batch size may differ), the bytes, FLOPs
                              * and created primitives all lanes' together */
    int64_t flops_forward;   /* convolution and inner-product FLOPs of one forward pass */
    int64_t flops_backward;  /* the same for the backward pass (data and weights) */
} nasc_net_stats;
void nasc_net_get_stats(const nasc_net *net, nasc_net_stats *out);

/* Per-primitive profile: compile with opt.profile, run some steps, then
 * print the time per step kind (conv fwd, conv bwd-weights, reorder, ...)
 * with GFLOP/s. */
void nasc_net_profile_print(const nasc_net *net, FILE *out);
void nasc_net_profile_reset(nasc_net *net);

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* The OpenMP threads every net of the process runs (oneDNN's primitives and
 * nasc's kernels), set once: at startup, from the thread that runs the nets,
 * before the first compile, never per compile or per step. threads 0 keeps
 * OpenMP's default (OMP_NUM_THREADS, else all cores). Asking again for the
 * count already set does nothing; another count is NASC_EINPUT (compiled
 * nets plan their kernels' scratch for the count). A compile with
 * opt.threads > 0, nasc_train, nasc_evaluate and nasc_sgemm_gflops call it
 * on first use for callers that have not. */
nasc_status nasc_backend_set_threads(nasc_ctx *ctx, int threads);
/* The threads nets run now (OpenMP's count for the calling thread). */
int nasc_backend_threads(void);
/* Whether OpenMP binds its threads to places (OMP_PROC_BIND, OMP_PLACES,
 * GOMP_CPU_AFFINITY): then the runtime bound the process's first thread to
 * the first place before main. */
bool nasc_backend_threads_bound(void);

/* Keep at least n compiled primitives in oneDNN's process-wide cache (its
 * default holds 1024), so that nets of a one-shot supernet, whose children
 * together use more shapes than one net, compile from the cache once their
 * shapes were seen. Never lowers the capacity. */
nasc_status nasc_backend_reserve_primitives(nasc_ctx *ctx, int n);

/* ------------------------------------------------------------------ */
/* Optimizers                                                          */
/* ------------------------------------------------------------------ */

typedef enum nasc_optim_kind { NASC_OPTIM_SGD, NASC_OPTIM_ADAM } nasc_optim_kind;

typedef struct nasc_optim_options {
    nasc_optim_kind kind;
    float momentum;     /* SGD */
    bool nesterov;      /* SGD */
    float weight_decay; /* L2, added to the gradient; not applied to batch-norm or bias vectors */
    float beta1, beta2, eps; /* Adam */
    /* Adam: each tensor's bias correction counts its own steps (kept in
     * the one-element tensor "opt/n/P"), not the store's "opt/step": for a
     * one-shot store, whose tensors are stepped only when a sampled child
     * uses them (torch.optim.Adam keeps a step per parameter too). */
    bool per_tensor_steps;
    /* NULL, or a name prefix: tensors whose names start with it get no
     * weight decay (SMASH's hypernetwork, "hyper.") */
    const char *no_decay_prefix;
} nasc_optim_options;

nasc_optim_options nasc_optim_options_default(nasc_optim_kind kind);

typedef struct nasc_optimizer nasc_optimizer;
/* State (momentum, Adam moments, step count) lives in store under "opt/". */
nasc_optimizer *nasc_optim_create(nasc_ctx *ctx, const nasc_optim_options *o, nasc_param_store *store);
void nasc_optim_destroy(nasc_optimizer *o);
nasc_status nasc_optim_step(nasc_optimizer *o, const nasc_param_grad *g, uint32_t n, float lr);
/* The same with every gradient multiplied by gscale first (before weight
 * decay is added, as torch.nn.utils.clip_grad_norm_ then torch.optim do). */
nasc_status nasc_optim_step_scaled(nasc_optimizer *o, const nasc_param_grad *g, uint32_t n, float lr, float gscale);
/* The L2 norm of all n gradients taken together. */
double nasc_grad_norm(const nasc_param_grad *g, uint32_t n);
/* The factor that clips gradients of that norm to max_norm (PyTorch's
 * clip_grad_norm_: max_norm / (norm + 1e-6) when below 1); 1 when max_norm <= 0. */
float nasc_clip_scale(double norm, float max_norm);

/* The machine's practical peak: GFLOP/s of dnnl_sgemm on an n x n x n
 * product with the process's threads, best of a few runs; memory from ctx. */
nasc_status nasc_sgemm_peak(nasc_ctx *ctx, int n, double *gflops);
/* The same with the default allocator after nasc_backend_set_threads(threads);
 * 0 on any failure. */
double nasc_sgemm_gflops(int n, int threads);

/* Cosine learning rate with linear warm-up: lr * step/warmup for the first
 * warmup steps, then lr * (1 + cos(pi * t)) / 2 over the rest. */
float nasc_lr_cosine(float lr, int64_t step, int64_t total, int64_t warmup);
/* Cosine with warm restarts (SGDR, Loshchilov & Hutter 2017): after the
 * warm-up, cycles of period, period * mult, period * mult^2, ... steps,
 * each from lr down to 0 (the last one cut off at the end of training).
 * period <= 0 is nasc_lr_cosine. */
float nasc_lr_restarts(float lr, int64_t step, int64_t warmup, int64_t total, int64_t period, double mult);

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

/* Turns a byte data set (or a range of it: the validation split is the
 * last images of the training set) into float batches: scaled to [0, 1],
 * normalised with (x - mean) / std, optionally shuffled and augmented, all
 * from one seed so that a run can be repeated exactly. */
typedef struct nasc_batcher_options {
    int batch;
    uint64_t seed;
    bool shuffle;    /* a new permutation each epoch, from (seed, epoch) */
    bool drop_last;  /* training: only full batches */
    int crop_pad;    /* random crop after zero padding by this many pixels; 0 off */
    bool flip;       /* random horizontal flip */
    int cutout;      /* zero a random square of this side; 0 off */
    float mean, std; /* normalisation, applied to every channel */
} nasc_batcher_options;

nasc_batcher_options nasc_batcher_options_default(void);

typedef struct nasc_batcher nasc_batcher;
/* Batches over images [begin, end) of d (d must outlive the batcher). */
nasc_status nasc_batcher_create(nasc_ctx *ctx, const nasc_dataset *d, int64_t begin, int64_t end,
                                const nasc_batcher_options *o, nasc_batcher **out);
void nasc_batcher_destroy(nasc_batcher *b);
/* Start epoch e (reshuffles when shuffling). */
void nasc_batcher_start(nasc_batcher *b, int64_t epoch);
/* The next batch: x gets (batch, c, h, w) floats, y batch labels; returns the
 * number of images filled (the last batch may be short unless drop_last;
 * the rest of x and y is zeroed), 0 at the end of the epoch. */
int nasc_batcher_next(nasc_batcher *b, float *x, int32_t *y);
/* Batches per epoch. */
int64_t nasc_batcher_count(const nasc_batcher *b);
/* Mean and standard deviation of the pixels of images [begin, end), in [0, 1] units. */
void nasc_dataset_stats(const nasc_dataset *d, int64_t begin, int64_t end, float *mean, float *std);

/* ------------------------------------------------------------------ */
/* Training and evaluation                                             */
/* ------------------------------------------------------------------ */

typedef struct nasc_train_progress {
    int epoch, epochs;          /* 0-based epoch being run, of epochs */
    int64_t step, steps;        /* step within the epoch, steps per epoch */
    int64_t global_step;
    float loss, acc;            /* running means over the epoch so far */
    double images_per_s;        /* since the start of this run */
    double eta_s;               /* seconds left for the whole run */
    bool epoch_end;             /* the epoch is done: val_* are set */
    float val_loss, val_acc;    /* NaN when there is no validation split */
    float lr;
} nasc_train_progress;

/* Called after every step and at the end of every epoch; a non-zero
 * return stops training with that status (the callback sets the diagnostic). */
typedef nasc_status (*nasc_train_cb)(void *ud, const nasc_train_progress *p);

typedef struct nasc_train_options {
    int epochs;
    int batch;
    float lr;                 /* peak learning rate */
    int warmup_epochs;        /* linear warm-up, then cosine to 0 */
    uint64_t seed;            /* initialisation, shuffling, augmentation */
    int threads;              /* as nasc_net_options.threads */
    nasc_optim_options optim;
    int crop_pad, cutout;     /* augmentation, 0 off */
    bool flip;
    int64_t val_size;         /* the last val_size training images are held out */
    int64_t train_subset;     /* train on the first K images only; 0 all */
    int64_t max_steps;        /* stop after this many steps in all (a partial epoch is not recorded as done); 0 no limit */
    /* The final-training recipe (all off by default). */
    float label_smoothing;    /* target (1 - s) onehot + s / K, in [0, 1) */
    float grad_clip;          /* clip the gradients' global L2 norm to this; 0 off */
    float aux_weight;         /* weight of the loss of output 1 (the auxiliary head), when the net has one */
    float drop_path;          /* drop-path probability reached in the last epoch, linear from 0 in the first
                                 (DARTS: p * epoch / epochs); needs a net lowered with drop_path */
    float ema_decay;          /* exponential moving average of the weights: validated each epoch, and
                                 it replaces the weights after the last epoch; 0 off */
    int restart_epochs;       /* cosine with warm restarts: first period in epochs; 0 one cosine */
    float restart_mult;       /* each period this many times the last (>= 1) */
    float rnn_dropout;        /* language models: the probability of each dropout mask's zeros (a net
                                 lowered with nasc_lower_options.rnn_dropout); 0 off */
    /* The net validated after each epoch (the same parameters without the
     * training-only parts: no drop-path, no auxiliary head); NULL: prim. */
    const nasc_module *eval_prim;
    nasc_train_cb progress;   /* may be NULL */
    void *ud;
} nasc_train_options;

nasc_train_options nasc_train_options_default(void);
/* Set o's optimizer, schedule, augmentation and regularisation to the
 * final-training recipe of DARTS (docs/training.md); epochs and the rest stay. */
void nasc_train_final_recipe(nasc_train_options *o);
/* n drop-path mask values for a training step: each 0 with probability p,
 * else 1 / (1 - p) (so the expected value is 1); all 1 when p is 0. They
 * depend only on (seed, step). nasc_train fills a net's masks (inputs 1...)
 * with them, image by image: a mask input of shape (N, 1, 1, 1) drops or
 * rescales a whole path of one image. */
void nasc_drop_path_masks(float *out, int64_t n, float p, uint64_t seed, int64_t step);

typedef struct nasc_train_result {
    int epochs_run;
    float train_loss, train_acc; /* last epoch */
    float val_loss, val_acc;     /* NaN without a validation split */
    double seconds, images_per_s;
} nasc_train_result;

/* Train the net of prim on train (minus the validation split) with SGD or
 * Adam, a cosine schedule and the options' augmentation. Parameters,
 * optimizer state and progress live in store: meta "train/epoch" says how
 * many epochs are done, so calling again with the same store resumes after
 * the last finished epoch (shuffles and augmentation depend only on seed and
 * epoch, so a resumed run repeats an uninterrupted one). Normalisation
 * (meta "data/mean", "data/std") is measured on the training split once.
 * A NaN or infinite loss stops with NASC_EINPUT naming the step. */
nasc_status nasc_train(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store,
                       const nasc_dataset *train, const nasc_train_options *o, nasc_train_result *out);

/* Accuracy and mean loss of the net in inference mode on images [begin,
 * end) of d, normalised as the store's meta says; threads as
 * nasc_net_options.threads. */
nasc_status nasc_evaluate(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store,
                          const nasc_dataset *d, int64_t begin, int64_t end, int batch, int threads,
                          float *acc, float *loss);

/* ------------------------------------------------------------------ */
/* Character language models                                           */
/* ------------------------------------------------------------------ */

/* Train a lowered recurrent net (nasc_lower of a recurrent arch: token
 * numbers (N, T) and the state in; logits (N, T, V) and the state out) as a
 * character language model on the training split of text
 * (nasc_corpus_split), by truncated backpropagation through time: the
 * split cut into o->batch streams read T characters per step, the state
 * carried from step to step and zeroed at the start of each epoch (see
 * backend/lm.c). Every byte must be one of the model's classes. Uses
 * o->epochs, batch, lr, warmup_epochs (then cosine, or warm restarts),
 * seed, threads, optim, grad_clip, max_steps, progress, train_subset (the
 * first K bytes of the training split only; 0 all of it), rnn_dropout (the
 * net's dropout masks drawn afresh every step, the same for its T
 * positions), eval_prim (validated; NULL prim); the image recipe
 * (augmentation, label smoothing, auxiliary head, drop-path, EMA) is an
 * error. Progress and result: loss in nats per character, acc the share of
 * next characters guessed right, images_per_s characters per second; the
 * validation split is scored after each epoch. Resumes after the last
 * finished epoch (meta "train/epoch"), as nasc_train. */
nasc_status nasc_train_lm(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_corpus *text,
                          const nasc_train_options *o, nasc_train_result *out);
/* Mean loss (nats per character; bits = nats / ln 2) and next-character
 * accuracy over bytes [begin, end) of text, read as batch streams from a
 * zero state (the last (end - begin) mod batch bytes, and each stream's
 * tail short of a whole step, are left out). */
nasc_status nasc_evaluate_lm(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const nasc_corpus *text,
                             int64_t begin, int64_t end, int batch, int threads, float *loss, float *acc);

/* The pieces of nasc_train_lm that a one-shot search of recurrent cells
 * shares: every byte of [begin, end) must be one of vocab classes
 * (NASC_EINPUT naming the first that is not); and window k of batch
 * streams of `stream` bytes from begin, T characters each, into x (the
 * characters as token numbers, (batch, T)) and y (the characters after
 * them). */
nasc_status nasc_lm_check_vocab(nasc_ctx *ctx, const nasc_corpus *text, int64_t begin, int64_t end, int64_t vocab);
void nasc_lm_window(const nasc_corpus *text, int64_t begin, int64_t stream, int batch, int64_t T, int64_t k, float *x,
                    int32_t *y);

/* Sample n characters into out from a language model lowered with one
 * step (nasc_lower_options.seq_len 1): read the prompt from a zero state,
 * then draw each next character from softmax(logits / temperature) (the
 * most likely one at temperature 0) with a generator seeded by seed, and
 * feed it back. The same seed, prompt and weights give the same text. */
nasc_status nasc_lm_generate(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *store, const uint8_t *prompt,
                             int64_t n_prompt, int64_t n, float temperature, uint64_t seed, int threads,
                             uint8_t *out);

#endif /* NASC_BACKEND_H */
