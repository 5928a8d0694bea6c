/* model.h - helpers shared by the verbs that run nets (train, eval, bench). */
#ifndef NASC_CLI_MODEL_H
#define NASC_CLI_MODEL_H

#include <stdlib.h>

#include "nasc_backend.h"
#include "opts.h"

/* A model file as a runnable prim module. */
typedef struct nasc_cli_net {
    nasc_module *loaded;  /* what the file holds (arch or prim) */
    nasc_module *lowered; /* owned when the file held an arch module */
    const nasc_module *prim;
    char hash[40];        /* "arch:<canonical hash>" or "prim:<hash of the text>" */
    nasc_param_store *weights; /* owned: an .onnx file's initializers, else NULL */
} nasc_cli_net;

/* The lowering the model options ask for: --set steps=T (recurrent arch
 * models only) unrolls over T steps. */
nasc_status nasc_cli_lower_options(nasc_ctx *ctx, const nasc_cli_model *mo, const nasc_module *loaded,
                                   nasc_lower_options *lo);
/* A lowered recurrent net (a language model): token numbers (N, T) in,
 * logits (N, T, V) out. */
bool nasc_cli_is_lm(const nasc_module *prim);
/* Load, lower and verify; on failure print the diagnostic and return NASC_EXIT_INPUT. */
int nasc_cli_load_prim(nasc_ctx *ctx, const nasc_cli_model *mo, nasc_cli_net *out);
void nasc_cli_net_free(nasc_cli_net *n);
/* The checkpoint's meta "model/hash" must name this model. */
int nasc_cli_check_weights(nasc_ctx *ctx, const nasc_cli_net *n, const nasc_param_store *s, const char *path);
/* "fashion-mnist" or a directory of IDX files. */
int nasc_cli_load_data(nasc_ctx *ctx, const char *spec, nasc_dataset *train, nasc_dataset *test);
/* mkdir -p */
int nasc_cli_mkdirs(nasc_ctx *ctx, const char *path);

/* The weights to run or export a loaded net with: the model file's own
 * (n->weights, an .onnx file's initializers), else the checkpoint at ckpt
 * (checked with nasc_cli_check_weights), else a new store initialised with
 * NASC_DEFAULT_SEED. *out is n->weights (borrowed, *owned false) or a new
 * store the caller destroys (*owned true). A ckpt given for a model that
 * carries weights is an error. On failure prints the diagnostic and returns
 * NASC_EXIT_INPUT. */
int nasc_cli_net_weights(nasc_ctx *ctx, const nasc_cli_net *n, const char *ckpt, nasc_param_store **out,
                         bool *owned);

/* How a verb that runs a model gets its weights. */
typedef enum nasc_cli_weights {
    NASC_CLI_NO_WEIGHTS,   /* none: the verb makes its own (train) */
    NASC_CLI_ANY_WEIGHTS,  /* nasc_cli_net_weights: the model's own, the checkpoint's or fresh */
    NASC_CLI_CKPT_WEIGHTS, /* the checkpoint's (required), which must name this model (eval) */
} nasc_cli_weights;

/* What every verb that runs a model starts from: a context, the model as a
 * prim module and the weights to run it with. The net lives on ctx, so a
 * job stays where it was opened (do not copy it). */
typedef struct nasc_cli_job {
    nasc_ctx ctx;
    nasc_cli_net net;
    nasc_param_store *weights; /* NULL with NASC_CLI_NO_WEIGHTS */
    bool owned;                /* weights is ours to destroy (not net.weights) */
} nasc_cli_job;

/* Context, model and weights (ckpt: the --weights file or NULL). On failure
 * prints the diagnostic, releases what it made and returns NASC_EXIT_INPUT. */
int nasc_cli_job_open(nasc_cli_job *j, const nasc_cli_model *mo, nasc_cli_weights how, const char *ckpt);
void nasc_cli_job_close(nasc_cli_job *j);

#endif /* NASC_CLI_MODEL_H */
