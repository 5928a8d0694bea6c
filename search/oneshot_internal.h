/* oneshot_internal.h - the state of an ENAS search, shared by its image
 * side (oneshot.c: enas-micro, enas-macro, and the controller, the
 * checkpoint and the derive step of every space) and its language-model
 * side (oneshot_lm.c: enas-rnn). */
#ifndef NASC_ONESHOT_INTERNAL_H
#define NASC_ONESHOT_INTERNAL_H

#include "enas_ctl.h"
#include "nasc_backend.h"
#include "nasc_search.h"

typedef struct enas {
    nasc_ctx *ctx;
    nasc_oneshot_run *r;
    const nasc_enas_options *o;
    nasc_param_store *st;   /* shared weights, their optimizer state, the controller's state, meta */
    nasc_optimizer *opt;    /* SGD with momentum (images), Adam (language models) */
    nasc_enas_ctl *ctl;
    size_t P;               /* controller parameters */
    float *adam_v;          /* controller Adam second moment (beta1 0: no first moment) */
    double *grad;
    nasc_rng rng;           /* children and controller samples */
    nasc_net_arena arena;   /* one activation arena for every child's net */
    uint32_t *d, n;
    int epoch;              /* epochs done */
    int64_t ctl_updates;
    double baseline;
    double t0;
    /* this epoch's shared training: time in compiles (decode, lower, compile) and in all, primitives created */
    double compile_s, step_s;
    int64_t created;
    /* images */
    nasc_batcher *tb, *vb;
    float *x, *logits;
    int32_t *y;
    int classes;
    /* language models (enas-rnn): B = o->batch streams, T = o->bptt characters a step */
    bool lm;
    int64_t lm_hidden;            /* the state's width */
    int64_t train_stream, train_steps; /* training split: bytes per stream, steps per epoch */
    int64_t val_begin, val_stream, val_steps;
    float *state;                 /* (B, H): carried from step to step of the shared training */
    float *zero_state;            /* (B, H) zeros: each scored window starts from zero */
    float *tokens;                /* (B, T) the inputs */
    int32_t *next;                /* (B, T) the targets */
} enas;

double nasc_oneshot_now(void);
/* NASC_EINPUT "interrupted" when the run's stop flag is set. */
nasc_status nasc_oneshot_interrupted(enas *e);
void nasc_oneshot_report(enas *e, nasc_oneshot_progress *p);
/* Child prim's net on the store, in the run's arena: training, or
 * scoring (inference with batch statistics, as ENAS scores children in
 * training mode); language models fuse what they can. */
nasc_status nasc_oneshot_net(enas *e, const nasc_module *prim, bool train, nasc_net **net);
/* After compiling a child's net (started at t0): its compile time and the
 * primitives it created added to the epoch's figures. */
void nasc_oneshot_compiled(enas *e, const nasc_net *net, double t0);
/* One update of the shared weights from a forward pass whose loss is
 * `loss` (step `step` of the epoch): a diverged loss is an error; else
 * backward, the gradient norm clipped, the optimizer's step at lr. */
nasc_status nasc_oneshot_update(enas *e, nasc_net *net, float loss, int64_t step, float lr);
/* How many of the n rows of logits (n x k) have their largest entry at the label. */
int nasc_oneshot_correct(const float *logits, const int32_t *y, int n, int k);
/* The one-shot store at path: loaded and checked by load(ud) (which reads
 * *st), or new when there is no file; a file that fails is "corrupt
 * one-shot state" naming it. */
nasc_status nasc_oneshot_open_store(nasc_ctx *ctx, const char *path, nasc_param_store **st,
                                    nasc_status (*load)(void *ud), void *ud);
/* Child d scored `reward` (and loss, NAN for none) appended to the run's
 * journal as the next trial, with its hash and cost (recurrent nets
 * unrolled over seq_len steps) and the seconds since t0. */
nasc_status nasc_oneshot_journal(nasc_oneshot_run *r, uint32_t *d, double reward, double loss, int seq_len,
                                 double t0);
/* The shared training's learning rate in an epoch. */
float nasc_oneshot_lr(const nasc_enas_options *o, int epoch);

/* oneshot_lm.c */
/* Streams, buffers and the optimizer of an enas-rnn search. */
nasc_status nasc_oneshot_lm_setup(enas *e);
void nasc_oneshot_lm_free(enas *e);
/* One pass of shared training over the training split. */
nasc_status nasc_oneshot_lm_train_epoch(enas *e);
/* Child d with the shared weights on validation window k mod the windows
 * (B streams x T characters, the state starting at zero): *loss in nats
 * per character. */
nasc_status nasc_oneshot_lm_score(enas *e, const uint32_t *d, int64_t k, double *loss);

#endif /* NASC_ONESHOT_INTERNAL_H */
