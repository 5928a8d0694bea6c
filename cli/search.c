/* search.c - `nasc search`: run a search into a run directory, continue a
 * killed one, and train, export and draw the best architecture. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"
#include "model.h"
#include "nasc_export.h"
#include "nasc_search.h"
#include "verbs.h"

static void usage(FILE *out) {
    char names[256];
    nasc_cli_registry_names(nasc_cli_strategies, "|", names, sizeof names);
    fprintf(out, "usage: nasc search --space S --strategy %s --budget N --out RUN\n", names);
    fputs("                   [--epochs-per-trial E] [--train-subset K] [--final-epochs F]\n"
          "                   [--seed S] [--threads T] [--resume] [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_search_help(FILE *out) {
    fputs("nasc search - search an architecture, then train and export the best one\n\n", out);
    usage(out);
    fputs("\nProposes N architectures from the search space with the strategy, trains\n"
          "each briefly on the training split and rewards it with its accuracy on the\n"
          "validation split (the last --val-size training images; the test set is\n"
          "only used for the final report). Architectures with the same canonical\n"
          "hash are trained once. Then the best one is trained from scratch for\n"
          "--final-epochs and exported. In the recurrent spaces (enas-rnn,\n"
          "nasrl-rnn) a child is a character language model (docs/language-models.md)\n"
          "rewarded with 1 / its validation perplexity per character; reports are\n"
          "in bits per character.\n\n"
          "The run directory RUN holds:\n"
          "  config.txt       the options that define the search (--resume checks them)\n"
          "  journal.jsonl    one record per trial, appended and fsynced\n"
          "  strategy.nasc    the strategy's state (replaced atomically per trial)\n"
          "  controller.log   reinforce --replicas: each gradient and its staleness\n"
          "  search.svg       reward per trial and the running best\n"
          "  best.yaml, best.nir, best.nasc, best.onnx, best-cells.svg\n"
          "A killed search continues with --resume: finished trials are not redone,\n"
          "a torn last journal record is dropped and that trial runs again. Ctrl-C\n"
          "stops after abandoning the trial in flight.\n\n"
          "Options:\n"
          "  --space S            the search space (below)\n",
          out);
    nasc_cli_space_size_help(out, 23);
    fputs("  --strategy NAME      the strategy (below)\n"
          "  --budget N           trials in all (enas: candidates, default 100; smash:\n"
          "                       random candidates, default 500)\n"
          "  --epochs-per-trial E epochs per child (default 1)\n"
          "  --train-subset K     train children on the first K images (default 10000,\n"
          "                       enas 0; 0 all of the training split); recurrent\n"
          "                       spaces: the first K bytes of the text (300000)\n"
          "  --val-size K         validation images (default 5000)\n"
          "  --time-limit SEC     a child training longer fails (default none)\n"
          "  --final-epochs F     epochs of the final training (default 10)\n"
          "  --final-recipe       train the best with DARTS's final-training recipe\n"
          "                       (nasc train --final-recipe, docs/training.md)\n"
          "  --batch B            batch size (default 64)\n"
          "  --lr LR              peak learning rate, SGD-Nesterov (default 0.05);\n"
          "                       recurrent spaces: Adam (0.002)\n"
          "  --bptt T             recurrent spaces: characters per step (default 35)\n"
          "  --seed S             strategy, initialisation, shuffling (default 1)\n"
          "  --threads T          threads (default: all cores)\n"
          "  --data SPEC          fashion-mnist (default) or a directory of IDX files;\n"
          "                       recurrent spaces: fortunes (default) or a text file\n"
          "  --out RUN            the run directory (required)\n"
          "  --resume             continue the search in RUN\n"
          "  --set KEY=VALUE      skeleton override for every child (repeatable):\n"
          "                       channels, cells_per_stage, stages, ...\n"
          "  -h, --help           this help\n"
          "\nENAS (--strategy enas --space enas-micro|enas-macro|enas-rnn; docs/oneshot.md):\n"
          "one store of shared weights is trained on a freshly sampled child per\n"
          "minibatch, the controller on children's accuracy on a validation batch\n"
          "(enas-rnn: 1 / perplexity on a validation window); then --budget\n"
          "candidates (default 100) are sampled, each scored on a validation batch\n"
          "with the shared weights, and the best is trained from scratch. Its\n"
          "state (RUN/oneshot.nasc) is saved after every epoch. Defaults are the\n"
          "ENAS code's (melodyguan/enas) unless docs/oneshot.md says otherwise:\n"
          "  --search-epochs E    shared-weight epochs (default 10; ENAS 150 on a GPU;\n"
          "                       rnn 5)\n"
          "  --lr LR --lr-min LR  cosine with restarts per epoch (0.05, 0.0005; rnn:\n"
          "                       Adam, 0.002 to 0)\n"
          "  --lr-t0 T --lr-tmul M  restart periods: T, T*M, ... epochs (10, 2; 0: one\n"
          "                       period, the rnn default)\n"
          "  --weight-decay W     (1e-4; macro 2.5e-4; rnn 0)   --grad-clip N (5)\n"
          "  --aux-weight A       auxiliary head's loss weight (0.4; macro, rnn: 0)\n"
          "  --lstm-size H        controller LSTM units (64; rnn 100)\n"
          "  --ctl-lr LR          controller Adam learning rate (0.0035; macro, rnn 0.001)\n"
          "  --tanh-constant C    (1.10; macro 1.5; rnn 2.5)\n"
          "  --op-tanh-reduce R   micro: the op heads' constant divided by R (2.5)\n"
          "  --temperature T      (0: none; rnn 5)\n"
          "  --entropy-weight W   entropy bonus in the reward (1e-4; rnn 0.001)\n"
          "  --baseline-decay D   (0.99)\n"
          "  --ctl-steps N        controller updates per epoch (30; macro 50; rnn 100)\n"
          "  --ctl-aggregate K    children per update (10; macro 20; rnn 10)\n"
          "  --skip-target P      macro: skip probability the penalty pulls toward (0.4)\n"
          "  --skip-weight W      macro: weight of that penalty (0.8)\n"
          "\nSMASH (--strategy smash --space smash; docs/smash.md): a hypernetwork H is\n"
          "trained to generate the 1x1 convolution weights of any architecture of the\n"
          "space from its encoding, on a fresh random architecture per minibatch;\n"
          "then --budget random architectures (default 500) and --perturb\n"
          "perturbations of the best are scored on the validation split with\n"
          "generated weights, and the best is trained from scratch (--lr, --batch).\n"
          "Its state (RUN/oneshot.nasc) is saved after every epoch. Defaults are the\n"
          "SMASH code's (ajbrock/SMASH) unless docs/smash.md says otherwise:\n"
          "  --search-epochs E    epochs of H's training (default 3; SMASH 100 on a GPU)\n"
          "  --hyper-lr LR        Adam (betas 0.5, 0.999, eps 1e-4), cosine to 0 (1e-3)\n"
          "  --hyper-batch B      images per random architecture (50)\n"
          "  --weight-decay W     not on H's tensors (1e-4)\n"
          "  --perturb K          perturbations of the best candidate (100)\n"
          "  --perturb-prob P     each decision redrawn with probability P (0.05)\n"
          "  --score-images K     validation images per candidate (1000; 0: all, SMASH)\n"
          "\nDistributed search (docs/distributed.md): `mpirun -np P nasc search ...` runs\n"
          "the same search on P ranks. Rank 0 keeps the strategy, the journal and the\n"
          "run directory and hands each child to one of the P-1 other ranks, which\n"
          "train them (each with the node's cores shared among its worker ranks,\n"
          "unless --threads). ENAS runs in one process. A killed rank ends the job;\n"
          "--resume, under mpirun or not, trains the children that were in flight.\n"
          "  --replicas K         reinforce: K controller replicas, as NAS-RL's\n"
          "                       distributed training (default: one controller)\n"
          "  --children-per-replica M  children a replica samples per gradient (1)\n"
          "  --grads-per-update G the controller steps once G gradients arrived (1)\n"
          "  --worker-timeout SEC a worker rank silent this long is given up and its\n"
          "                       child fails (default 2 x --time-limit + 60; never\n"
          "                       without a time limit)\n"
          "  --synthetic SEC      for benchmarks: a child sleeps SEC seconds and its\n"
          "                       reward comes from its hash; no final training\n",
          out);
    char lib[256];
    nasc_cli_mpi_library(lib, sizeof lib);
    fprintf(out, "This nasc: %s.\n", lib);
    fputs("\nSearch spaces (`nasc space S` shows one; docs/search-spaces.md):\n",
          out);
    nasc_cli_registry_help(nasc_cli_spaces, out, 15);
    fputs("\nStrategies (docs/strategies.md):\n", out);
    nasc_cli_registry_help(nasc_cli_strategies, out, 15);
    fputs("\nExamples:\n"
          "  nasc search --space enas-micro --strategy evolution --budget 20 --out runs/s1\n"
          "  nasc search --space nasrl --strategy reinforce --budget 50 --out runs/s2 --resume\n"
          "  nasc search --space enas-rnn --strategy random --budget 10 --out runs/rnn\n",
          out);
}

/* ------------------------------------------------------------------ */

typedef struct progress_state {
    nasc_ctx *ctx;
    double t0;
    int64_t first; /* trials in the journal when this process started */
    bool tty;
    double last_log;
    bool lm; /* language models: rewards are 1 / perplexity, shown as bits per character */
    bool smash; /* candidates are scored with generated weights */
} progress_state;

/* A reward as people read it: accuracy in %, or a language model's bits
 * per character (reward = 1 / perplexity = 2^-bpc). */
static void fmt_reward(const progress_state *ps, double r, char *buf, size_t size) {
    if (!isfinite(r))
        snprintf(buf, size, "-");
    else if (ps->lm)
        snprintf(buf, size, "%.3f bpc", -log2(r));
    else
        snprintf(buf, size, "%.2f%%", 100 * r);
}

static void on_trial(void *ud, const nasc_search_progress *p) {
    progress_state *ps = ud;
    const nasc_trial *t = p->trial;
    int64_t done = t->index + 1 - ps->first;
    double dt = nasc_cli_now() - ps->t0;
    char eta[32], pr[32], mc[32];
    nasc_cli_fmt_duration(done > 0 ? dt / (double)done * (double)(p->budget - t->index - 1) : 0, eta, sizeof eta);
    nasc_cli_fmt_si(t->params, pr, sizeof pr);
    nasc_cli_fmt_si(t->macs, mc, sizeof mc);
    if (t->params < 0) snprintf(pr, sizeof pr, "-"); /* unknown: failed before lowering, or --synthetic */
    if (t->macs < 0) snprintf(mc, sizeof mc, "-");
    char rw[32], best[80], br[32];
    fmt_reward(ps, t->reward, rw, sizeof rw);
    fmt_reward(ps, p->best_reward, br, sizeof br);
    if (p->best_index >= 0)
        snprintf(best, sizeof best, "%s (#%lld)", br, (long long)p->best_index);
    else
        snprintf(best, sizeof best, "-");
    printf("trial %lld/%lld  %-6s  reward %-7s  best %-16s  %5.1f s  %s params  %s MACs  ETA %s\n",
           (long long)t->index + 1, (long long)p->budget, t->status, rw, best, t->seconds, pr, mc, eta);
    if (strcmp(t->status, "failed") == 0) printf("    %s\n", t->reason);
    fflush(stdout);
}

static nasc_status on_final_step(void *ud, const nasc_train_progress *p) {
    progress_state *ps = ud;
    if (p->epoch_end) {
        if (ps->tty) fputc('\n', stderr);
        if (ps->lm)
            fprintf(stderr, "final training: epoch %d/%d: train %.4f bits/char, validation %.4f bits/char\n",
                    p->epoch + 1, p->epochs, p->loss / log(2.0), p->val_loss / log(2.0));
        else
            fprintf(stderr, "final training: epoch %d/%d: train loss %.4f acc %.2f%%, validation acc %.2f%%\n",
                    p->epoch + 1, p->epochs, p->loss, 100 * p->acc, 100 * p->val_acc);
        ps->last_log = 0;
    } else {
        char eta[32];
        nasc_cli_fmt_duration(p->eta_s, eta, sizeof eta);
        double done = (double)p->step / (double)(p->steps ? p->steps : 1);
        char now[48];
        if (ps->lm)
            snprintf(now, sizeof now, "%.3f bits/char", p->loss / log(2.0));
        else
            snprintf(now, sizeof now, "loss %.4f acc %.2f%%", p->loss, 100 * p->acc);
        if (ps->tty)
            fprintf(stderr, "\rfinal training: epoch %d/%d step %lld/%lld %s ETA %s  ", p->epoch + 1, p->epochs,
                    (long long)p->step, (long long)p->steps, now, eta);
        else if (done - ps->last_log >= 0.25) { /* a log line per quarter epoch when not on a terminal */
            ps->last_log = done;
            fprintf(stderr, "final training: epoch %d/%d step %lld/%lld %s ETA %s\n", p->epoch + 1, p->epochs,
                    (long long)p->step, (long long)p->steps, now, eta);
        }
    }
    if (nasc_cli_interrupted)
        return nasc_error(ps->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    return NASC_OK;
}

/* ------------------------------------------------------------------ */

typedef struct search_opts {
    const char *space, *strategy, *out, *data;
    long budget, epochs, subset, val, final_epochs, batch, seed, threads, blocks, layers, bptt;
    double lr, time_limit;
    long replicas, children_per_replica, grads_per_update; /* reinforce */
    double synthetic;     /* > 0: children "train" this long, rewards from their hash (benchmarks) */
    double worker_timeout; /* MPI: a worker silent this long is given up; < 0: from --time-limit */
    bool lm; /* the space's children are language models (recurrent spaces) */
    bool resume, final_recipe;
    bool oneshot; /* --strategy is one-shot (enas, smash) */
    bool smash;   /* --strategy smash */
    /* smash: -1 until given */
    long hyper_batch, perturb, score_images;
    double hyper_lr, perturb_prob;
    /* enas */
    long search_epochs, lr_t0, lr_tmul, lstm_size, ctl_steps, ctl_aggregate;
    double lr_min, weight_decay, grad_clip, aux_weight, ctl_lr, tanh_constant, op_tanh_reduce, temperature,
        entropy_weight, baseline_decay, skip_target, skip_weight;
    nasc_cli_model mo; /* only the --set overrides */
} search_opts;

/* The enas settings not given on the command line: the space's defaults. */
static void enas_defaults(search_opts *o) {
    nasc_enas_options d = nasc_enas_options_for(o->space);
#define DEF(field, value)                                                                                             \
    if (o->field < 0) o->field = (value)
    DEF(search_epochs, d.epochs);
    DEF(lr_min, d.lr_min);
    DEF(lr_t0, d.lr_t0);
    DEF(lr_tmul, d.lr_tmul);
    DEF(weight_decay, d.weight_decay);
    DEF(grad_clip, d.grad_clip);
    DEF(aux_weight, d.aux_weight);
    DEF(lstm_size, d.lstm_size);
    DEF(ctl_lr, d.ctl_lr);
    DEF(tanh_constant, d.tanh_constant);
    DEF(op_tanh_reduce, d.op_tanh_reduce);
    DEF(temperature, d.temperature);
    DEF(entropy_weight, d.entropy_weight);
    DEF(baseline_decay, d.baseline_decay);
    DEF(ctl_steps, d.ctl_steps);
    DEF(ctl_aggregate, d.ctl_aggregate);
    DEF(skip_target, d.skip_target);
    DEF(skip_weight, d.skip_weight);
#undef DEF
}

static int parse(int argc, char **argv, search_opts *o) {
    memset(o, 0, sizeof *o);
    o->data = NULL; /* fashion-mnist, or fortunes for the recurrent spaces */
    o->epochs = 1;
    o->subset = -1; /* per-child: 10000; enas: all */
    o->val = 5000;
    o->final_epochs = 10;
    o->batch = 64;
    o->seed = NASC_DEFAULT_SEED;
    o->lr = -1; /* 0.05, or 0.002 (Adam) for the recurrent spaces */
    o->children_per_replica = o->grads_per_update = -1; /* 1 with --replicas */
    o->worker_timeout = -1;
    o->hyper_batch = o->perturb = o->score_images = -1;
    o->hyper_lr = o->perturb_prob = -1;
    /* the enas settings: -1 until given, then the space's defaults (enas_defaults) */
    o->search_epochs = o->lr_t0 = o->lr_tmul = o->lstm_size = o->ctl_steps = o->ctl_aggregate = -1;
    o->lr_min = o->weight_decay = o->grad_clip = o->aux_weight = o->ctl_lr = o->tanh_constant = o->op_tanh_reduce =
        o->temperature = o->entropy_weight = o->baseline_decay = o->skip_target = o->skip_weight = -1;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--space", NULL, NASC_CLI_STR, &o->space), .missing = "missing --space"},
        {NASC_CLI_OPT("--strategy", NULL, NASC_CLI_STR, &o->strategy), .missing = "missing --strategy"},
        {NASC_CLI_OPT("--budget", NULL, NASC_CLI_INT, &o->budget), .lo = 1, .hi = 1000000},
        {NASC_CLI_OPT("--out", "-o", NASC_CLI_STR, &o->out), .missing = "missing --out RUN (the run directory)"},
        {NASC_CLI_OPT("--epochs-per-trial", NULL, NASC_CLI_INT, &o->epochs), .lo = 1, .hi = 10000},
        {NASC_CLI_OPT("--train-subset", NULL, NASC_CLI_INT, &o->subset), .lo = 0, .hi = 1L << 40},
        {NASC_CLI_OPT("--val-size", NULL, NASC_CLI_INT, &o->val), .lo = 1, .hi = 1L << 40},
        {NASC_CLI_OPT("--final-epochs", NULL, NASC_CLI_INT, &o->final_epochs), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--batch", NULL, NASC_CLI_INT, &o->batch), .lo = 1, .hi = 65536},
        {NASC_CLI_OPT("--seed", NULL, NASC_CLI_INT, &o->seed), .lo = 0, .hi = 0x7fffffffL},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &o->threads), .lo = 0, .hi = 1024},
        {NASC_CLI_OPT("--blocks", NULL, NASC_CLI_INT, &o->blocks), .lo = 1, .hi = 100},
        {NASC_CLI_OPT("--layers", NULL, NASC_CLI_INT, &o->layers), .lo = 1, .hi = 100},
        {NASC_CLI_OPT("--lr", NULL, NASC_CLI_FLOAT, &o->lr), .lo = 1e-9, .hi = 100, .want = "a number in [1e-9, 100]"},
        {NASC_CLI_OPT("--time-limit", NULL, NASC_CLI_FLOAT, &o->time_limit), .lo = 0, .hi = 1e9,
         .want = "seconds (a number >= 0)"},
        {NASC_CLI_OPT("--data", NULL, NASC_CLI_STR, &o->data)},
        {NASC_CLI_OPT("--bptt", NULL, NASC_CLI_INT, &o->bptt), .lo = 1, .hi = NASC_MAX_SEQ_LEN},
        {NASC_CLI_OPT("--resume", NULL, NASC_CLI_FLAG, &o->resume)},
        {NASC_CLI_OPT("--final-recipe", NULL, NASC_CLI_FLAG, &o->final_recipe)},
        {NASC_CLI_OPT("--search-epochs", NULL, NASC_CLI_INT, &o->search_epochs), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--lr-min", NULL, NASC_CLI_FLOAT, &o->lr_min), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--lr-t0", NULL, NASC_CLI_INT, &o->lr_t0), .lo = 0, .hi = 100000},
        {NASC_CLI_OPT("--lr-tmul", NULL, NASC_CLI_INT, &o->lr_tmul), .lo = 1, .hi = 100},
        {NASC_CLI_OPT("--weight-decay", NULL, NASC_CLI_FLOAT, &o->weight_decay), .lo = 0, .hi = 1},
        {NASC_CLI_OPT("--grad-clip", NULL, NASC_CLI_FLOAT, &o->grad_clip), .lo = 0, .hi = 1e9},
        {NASC_CLI_OPT("--aux-weight", NULL, NASC_CLI_FLOAT, &o->aux_weight), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--lstm-size", NULL, NASC_CLI_INT, &o->lstm_size), .lo = 1, .hi = 4096},
        {NASC_CLI_OPT("--ctl-lr", NULL, NASC_CLI_FLOAT, &o->ctl_lr), .lo = 1e-9, .hi = 10},
        {NASC_CLI_OPT("--tanh-constant", NULL, NASC_CLI_FLOAT, &o->tanh_constant), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--op-tanh-reduce", NULL, NASC_CLI_FLOAT, &o->op_tanh_reduce), .lo = 1e-6, .hi = 100},
        {NASC_CLI_OPT("--temperature", NULL, NASC_CLI_FLOAT, &o->temperature), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--entropy-weight", NULL, NASC_CLI_FLOAT, &o->entropy_weight), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--baseline-decay", NULL, NASC_CLI_FLOAT, &o->baseline_decay), .lo = 0, .hi = 0.999999},
        {NASC_CLI_OPT("--ctl-steps", NULL, NASC_CLI_INT, &o->ctl_steps), .lo = 0, .hi = 100000},
        {NASC_CLI_OPT("--ctl-aggregate", NULL, NASC_CLI_INT, &o->ctl_aggregate), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--skip-target", NULL, NASC_CLI_FLOAT, &o->skip_target), .lo = 1e-6, .hi = 0.999999},
        {NASC_CLI_OPT("--skip-weight", NULL, NASC_CLI_FLOAT, &o->skip_weight), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--replicas", NULL, NASC_CLI_INT, &o->replicas), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--children-per-replica", NULL, NASC_CLI_INT, &o->children_per_replica), .lo = 1, .hi = 10000},
        {NASC_CLI_OPT("--grads-per-update", NULL, NASC_CLI_INT, &o->grads_per_update), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--synthetic", NULL, NASC_CLI_FLOAT, &o->synthetic), .lo = 1e-6, .hi = 1e6,
         .want = "seconds per child (a number > 0)"},
        {NASC_CLI_OPT("--worker-timeout", NULL, NASC_CLI_FLOAT, &o->worker_timeout), .lo = 0, .hi = 1e9,
         .want = "seconds (a number >= 0; 0: never)"},
        {NASC_CLI_OPT("--hyper-lr", NULL, NASC_CLI_FLOAT, &o->hyper_lr), .lo = 1e-9, .hi = 10},
        {NASC_CLI_OPT("--hyper-batch", NULL, NASC_CLI_INT, &o->hyper_batch), .lo = 1, .hi = 65536},
        {NASC_CLI_OPT("--perturb", NULL, NASC_CLI_INT, &o->perturb), .lo = 0, .hi = 1000000},
        {NASC_CLI_OPT("--perturb-prob", NULL, NASC_CLI_FLOAT, &o->perturb_prob), .lo = 1e-6, .hi = 1},
        {NASC_CLI_OPT("--score-images", NULL, NASC_CLI_INT, &o->score_images), .lo = 0, .hi = 1L << 40},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &o->mo, NASC_CLI_NO_MODEL, nasc_cli_search_help);
    if (rc != NASC_CLI_GO) return rc;
    o->oneshot = nasc_strategy_is_oneshot(o->strategy);
    o->smash = o->oneshot && strcmp(o->strategy, "smash") == 0;
    if (!o->smash && (o->hyper_lr >= 0 || o->hyper_batch >= 0 || o->perturb >= 0 || o->perturb_prob >= 0 ||
                      o->score_images >= 0))
        return nasc_cli_usage_error(&a, "--hyper-lr, --hyper-batch, --perturb, --perturb-prob and --score-images are "
                                        "options of --strategy smash");
    if (o->smash) {
        /* ENAS's own options mean nothing here */
        if (o->lr_min >= 0 || o->lr_t0 >= 0 || o->lr_tmul >= 0 || o->grad_clip >= 0 || o->aux_weight >= 0 ||
            o->lstm_size >= 0 || o->ctl_lr >= 0 || o->tanh_constant >= 0 || o->op_tanh_reduce >= 0 ||
            o->temperature >= 0 || o->entropy_weight >= 0 || o->baseline_decay >= 0 || o->ctl_steps >= 0 ||
            o->ctl_aggregate >= 0 || o->skip_target >= 0 || o->skip_weight >= 0)
            return nasc_cli_usage_error(&a, "that option is ENAS's; --strategy smash takes --search-epochs, "
                                            "--hyper-lr, --hyper-batch, --weight-decay, --perturb, --perturb-prob, "
                                            "--score-images");
        nasc_smash_options d = nasc_smash_options_default();
        if (o->search_epochs < 0) o->search_epochs = d.epochs;
        if (o->weight_decay < 0) o->weight_decay = d.weight_decay;
        if (o->hyper_lr < 0) o->hyper_lr = d.lr;
        if (o->hyper_batch < 0) o->hyper_batch = d.batch;
        if (o->perturb < 0) o->perturb = d.perturb;
        if (o->perturb_prob < 0) o->perturb_prob = d.perturb_prob;
        if (o->score_images < 0) o->score_images = d.score_images;
        if (!o->budget) o->budget = d.candidates;
    } else if (o->oneshot) {
        enas_defaults(o);
    }
    if (o->oneshot && !o->budget) o->budget = nasc_enas_options_for(o->space).candidates;
    if (!o->budget) return nasc_cli_usage_error(&a, "missing --budget");
    if ((o->children_per_replica > 0 || o->grads_per_update > 0) && !o->replicas)
        return nasc_cli_usage_error(&a, "--children-per-replica and --grads-per-update go with --replicas");
    if (o->replicas && strcmp(o->strategy, "reinforce") != 0)
        return nasc_cli_usage_error(&a, "--replicas is for --strategy reinforce (controller replicas)");
    if (o->replicas) {
        if (o->children_per_replica < 0) o->children_per_replica = 1;
        if (o->grads_per_update < 0) o->grads_per_update = 1;
    }
    if (o->synthetic > 0 && o->oneshot)
        return nasc_cli_usage_error(&a, "--synthetic replaces the training of per-child strategies, not a one-shot "
                                        "strategy's");
    return NASC_CLI_GO;
}

/* The defaults that depend on the space: a recurrent space's children are
 * language models (a text, bytes of it per child, Adam); the others train
 * on images. */
static nasc_status space_defaults(nasc_ctx *ctx, search_opts *o) {
    if (!o->lm && o->bptt)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "--bptt is for the recurrent spaces (enas-rnn, nasrl-rnn)");
    if (o->lm && o->final_recipe)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "--final-recipe is the image recipe; the recurrent spaces train language models");
    if (!o->data) o->data = o->lm ? "fortunes" : "fashion-mnist";
    if (o->lr < 0) o->lr = o->lm ? 0.002 : 0.05;
    if (o->subset < 0) o->subset = o->oneshot ? 0 : o->lm ? 300000 : 10000;
    if (o->lm && !o->bptt) o->bptt = NASC_DEFAULT_SEQ_LEN;
    return NASC_OK;
}

/* The SMASH options of the command line. */
static nasc_smash_options smash_options(const search_opts *o) {
    nasc_smash_options e = nasc_smash_options_default();
    e.epochs = (int)o->search_epochs;
    e.batch = (int)o->hyper_batch;
    e.lr = (float)o->hyper_lr;
    e.weight_decay = (float)o->weight_decay;
    e.val_size = o->val;
    e.train_subset = o->subset;
    e.candidates = (int)o->budget;
    e.perturb = (int)o->perturb;
    e.perturb_prob = (float)o->perturb_prob;
    e.score_images = o->score_images;
    e.seed = (uint64_t)o->seed;
    e.threads = (int)o->threads;
    return e;
}

/* The ENAS options of the command line. */
static nasc_enas_options enas_options(const search_opts *o) {
    nasc_enas_options e = nasc_enas_options_for(o->space);
    e.epochs = (int)o->search_epochs;
    e.batch = (int)o->batch;
    e.lr_max = (float)o->lr;
    e.lr_min = (float)o->lr_min;
    e.lr_t0 = (int)o->lr_t0;
    e.lr_tmul = (int)o->lr_tmul;
    e.weight_decay = (float)o->weight_decay;
    e.grad_clip = (float)o->grad_clip;
    e.aux_weight = (float)o->aux_weight;
    e.val_size = o->val;
    e.train_subset = o->subset;
    e.lstm_size = (int)o->lstm_size;
    e.ctl_lr = (float)o->ctl_lr;
    e.tanh_constant = (float)o->tanh_constant;
    e.op_tanh_reduce = (float)o->op_tanh_reduce;
    e.temperature = (float)o->temperature;
    e.entropy_weight = (float)o->entropy_weight;
    e.baseline_decay = (float)o->baseline_decay;
    e.ctl_steps = (int)o->ctl_steps;
    e.ctl_aggregate = (int)o->ctl_aggregate;
    e.skip_target = (float)o->skip_target;
    e.skip_weight = (float)o->skip_weight;
    e.bptt = (int)o->bptt;
    e.candidates = (int)o->budget;
    e.seed = (uint64_t)o->seed;
    e.threads = (int)o->threads;
    return e;
}

/* Everything the run needs, released in one place. */
typedef struct session {
    nasc_ctx ctx;
    nasc_space *space;
    nasc_strategy *strategy;
    nasc_journal *journal;
    nasc_run_config cfg; /* config.txt: the options that define the search */
    nasc_dataset train, test;
    nasc_corpus text; /* the recurrent spaces' children train on it */
    const char *keys[NASC_CLI_MAX_SET], *vals[NASC_CLI_MAX_SET];
    char cfg_path[4200], journal_path[4200], state_path[4200];
    int64_t ok, cached, failed; /* trials by status, once the search is done */
} session;

static void session_free(session *s) {
    nasc_run_config_free(&s->cfg);
    nasc_journal_close(s->journal);
    nasc_strategy_destroy(s->strategy);
    nasc_space_destroy(s->space);
    nasc_dataset_free(&s->ctx, &s->train);
    nasc_dataset_free(&s->ctx, &s->test);
    nasc_corpus_free(&s->ctx, &s->text);
}

static int fail(session *s) {
    nasc_cli_fail(&s->ctx);
    session_free(s);
    return NASC_EXIT_INPUT;
}

/* The space, the --set overrides (checked on a sampled child before any
 * time is spent) and the strategy. */
static nasc_status open_space_and_strategy(session *s, search_opts *o) {
    nasc_ctx *ctx = &s->ctx;
    if (!nasc_cli_registry_find(nasc_cli_spaces, ctx, "search space", o->space) ||
        !nasc_cli_registry_find(nasc_cli_strategies, ctx, "strategy", o->strategy))
        return ctx->diag.status;
    nasc_space_options so = {(int)o->blocks, (int)o->layers};
    nasc_status st = nasc_space_create(ctx, o->space, &so, &s->space);
    if (st) return st;
    for (size_t i = 0; i < o->mo.n_ov; i++) {
        s->keys[i] = o->mo.ov[i].key;
        s->vals[i] = o->mo.ov[i].value;
    }
    uint32_t n = nasc_space_count(s->space);
    uint32_t *d = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *d);
    if (!d) return NASC_ENOMEM;
    nasc_module *m = NULL;
    nasc_rng r;
    nasc_rng_seed(&r, 0);
    nasc_space_sample(s->space, &r, d);
    st = nasc_space_decode(s->space, d, &m);
    if (!st) st = nasc_arch_apply_overrides(m, s->keys, s->vals, (int)o->mo.n_ov);
    if (!st) o->lm = m->skel.kind == NASC_NET_RECURRENT;
    nasc_module_destroy(m);
    nasc_free(ctx, d);
    if (!st) st = space_defaults(ctx, o);
    if (st) return st;
    if (o->oneshot) return nasc_oneshot_check(ctx, o->strategy, o->space); /* its own loop, no strategy object */
    nasc_strategy_options sto = nasc_strategy_options_default();
    sto.seed = (uint64_t)o->seed;
    sto.replicas = (int)o->replicas;
    if (o->replicas) {
        sto.children_per_replica = (int)o->children_per_replica;
        sto.grads_per_update = (int)o->grads_per_update;
    }
    return nasc_strategy_create(ctx, o->strategy, nasc_space_decisions(s->space), nasc_space_count(s->space), &sto,
                                &s->strategy);
}

/* config.txt: the options that define the search, written for a new run
 * and compared with the file on --resume. */
static nasc_status check_config(session *s, const search_opts *o) {
    nasc_ctx *ctx = &s->ctx;
    /* an add that fails is returned again by the check or the write below */
    nasc_run_config *c = &s->cfg;
    nasc_run_config_init(c, ctx);
    nasc_run_config_add(c, "space", "%s", o->space);
    nasc_run_config_add(c, "blocks", "%ld", o->blocks);
    nasc_run_config_add(c, "layers", "%ld", o->layers);
    nasc_run_config_add(c, "strategy", "%s", o->strategy);
    nasc_run_config_add(c, "seed", "%ld", o->seed);
    nasc_run_config_add(c, "epochs_per_trial", "%ld", o->epochs);
    nasc_run_config_add(c, "train_subset", "%ld", o->subset);
    nasc_run_config_add(c, "val_size", "%ld", o->val);
    nasc_run_config_add(c, "batch", "%ld", o->batch);
    nasc_run_config_add(c, "lr", "%.9g", o->lr);
    nasc_run_config_add(c, "time_limit", "%.9g", o->time_limit);
    nasc_run_config_add(c, "data", "%s", o->data);
    if (o->lm) nasc_run_config_add(c, "bptt", "%ld", o->bptt);
    if (o->smash) {
        nasc_smash_options e = smash_options(o);
        nasc_run_config_add(c, "search_epochs", "%d", e.epochs);
        nasc_run_config_add(c, "hyper_lr", "%.9g", (double)e.lr);
        nasc_run_config_add(c, "hyper_batch", "%d", e.batch);
        nasc_run_config_add(c, "weight_decay", "%.9g", (double)e.weight_decay);
        nasc_run_config_add(c, "candidates", "%d", e.candidates);
        nasc_run_config_add(c, "perturb", "%d", e.perturb);
        nasc_run_config_add(c, "perturb_prob", "%.9g", (double)e.perturb_prob);
        nasc_run_config_add(c, "score_images", "%lld", (long long)e.score_images);
    } else if (o->oneshot) {
        nasc_enas_options e = enas_options(o);
        nasc_run_config_add(c, "search_epochs", "%d", e.epochs);
        nasc_run_config_add(c, "lr_min", "%.9g", (double)e.lr_min);
        nasc_run_config_add(c, "lr_t0", "%d", e.lr_t0);
        nasc_run_config_add(c, "lr_tmul", "%d", e.lr_tmul);
        nasc_run_config_add(c, "weight_decay", "%.9g", (double)e.weight_decay);
        nasc_run_config_add(c, "grad_clip", "%.9g", (double)e.grad_clip);
        nasc_run_config_add(c, "aux_weight", "%.9g", (double)e.aux_weight);
        nasc_run_config_add(c, "lstm_size", "%d", e.lstm_size);
        nasc_run_config_add(c, "ctl_lr", "%.9g", (double)e.ctl_lr);
        nasc_run_config_add(c, "tanh_constant", "%.9g", (double)e.tanh_constant);
        nasc_run_config_add(c, "op_tanh_reduce", "%.9g", (double)e.op_tanh_reduce);
        nasc_run_config_add(c, "temperature", "%.9g", (double)e.temperature);
        nasc_run_config_add(c, "entropy_weight", "%.9g", (double)e.entropy_weight);
        nasc_run_config_add(c, "baseline_decay", "%.9g", (double)e.baseline_decay);
        nasc_run_config_add(c, "ctl_steps", "%d", e.ctl_steps);
        nasc_run_config_add(c, "ctl_aggregate", "%d", e.ctl_aggregate);
        nasc_run_config_add(c, "skip_target", "%.9g", (double)e.skip_target);
        nasc_run_config_add(c, "skip_weight", "%.9g", (double)e.skip_weight);
        nasc_run_config_add(c, "candidates", "%d", e.candidates);
    }
    if (o->replicas) { /* only then: the config of an earlier run without replicas stays valid */
        nasc_run_config_add(c, "replicas", "%ld", o->replicas);
        nasc_run_config_add(c, "children_per_replica", "%ld", o->children_per_replica);
        nasc_run_config_add(c, "grads_per_update", "%ld", o->grads_per_update);
    }
    if (o->synthetic > 0) nasc_run_config_add(c, "synthetic", "%.9g", o->synthetic);
    nasc_buf sets;
    nasc_buf_init(&sets, ctx);
    for (size_t i = 0; i < o->mo.n_ov; i++)
        nasc_buf_printf(&sets, "%s%s=%s", i ? " " : "", o->mo.ov[i].key, o->mo.ov[i].value);
    if (!sets.oom) nasc_run_config_add(c, "set", "%s", sets.data ? sets.data : "");
    bool oom = sets.oom;
    nasc_buf_free(&sets);
    if (oom) return ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;

    bool exists = access(s->cfg_path, F_OK) == 0;
    if (exists && !o->resume)
        return nasc_error(ctx, NASC_EINPUT, o->out, NASC_NOLOC,
                          "a search is already there; pass --resume to continue it or choose another --out");
    if (exists) return nasc_run_config_check(c, s->cfg_path);
    if (o->resume) fprintf(stderr, "nasc search: no search in %s yet; starting a new one\n", o->out);
    if (access(s->journal_path, F_OK) == 0 || access(s->state_path, F_OK) == 0)
        return nasc_error(ctx, NASC_EINPUT, s->cfg_path, NASC_NOLOC,
                          "missing, but the directory holds a journal or strategy state: not a run "
                          "directory nasc can continue");
    return nasc_run_config_write(c, s->cfg_path);
}

/* The journal and the strategy's saved state of the run directory. */
static nasc_status open_journal(session *s, const search_opts *o) {
    nasc_ctx *ctx = &s->ctx;
    char warning[512];
    nasc_status st =
        nasc_journal_open(ctx, s->journal_path, s->space, o->strategy, &s->journal, warning, sizeof warning);
    if (st) return st;
    if (warning[0]) fprintf(stderr, "warning: %s\n", warning);
    if (o->oneshot) {
        if (access(s->state_path, F_OK) == 0) fprintf(stderr, "resuming %s from %s\n", o->out, s->state_path);
        return NASC_OK;
    }
    if (access(s->state_path, F_OK) == 0) {
        nasc_param_store *ps = NULL;
        st = nasc_params_load(ctx, s->state_path, &ps);
        if (st) return st;
        st = nasc_strategy_load(s->strategy, ps);
        nasc_params_destroy(ps);
        if (st) {
            char msg[600];
            nasc_diag_format(&ctx->diag, msg, sizeof msg);
            return nasc_error(ctx, NASC_EINPUT, s->state_path, NASC_NOLOC, "corrupt strategy state: %s", msg);
        }
    } else if (s->journal->n > 0) {
        fprintf(stderr, "nasc search: %s is missing; the strategy replays the %lld journal records\n", s->state_path,
                (long long)s->journal->n);
    }
    if (s->journal->n > 0)
        fprintf(stderr, "resuming %s: %lld of %ld trials done\n", o->out, (long long)s->journal->n, o->budget);
    return NASC_OK;
}

static nasc_status load_data(session *s, const search_opts *o) {
    fprintf(stderr, "loading %s ...\n", o->data);
    if (o->lm) return nasc_corpus_load(&s->ctx, o->data, &s->text);
    nasc_status st = nasc_data_load(&s->ctx, o->data, &s->train, &s->test);
    if (st) return st;
    if (o->val >= s->train.n)
        return nasc_error(&s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "--val-size %ld leaves no training images (%lld in all)",
                          o->val, (long long)s->train.n);
    return NASC_OK;
}

static void on_enas(void *ud, const nasc_oneshot_progress *p) {
    progress_state *ps = ud;
    char t[32];
    nasc_cli_fmt_duration(p->seconds, t, sizeof t);
    bool train = strcmp(p->phase, "train") == 0, ctl = strcmp(p->phase, "controller") == 0;
    /* language models: nats per character shown in bits, rewards as bits per character */
    char loss[32], reward[32];
    if (ps->lm)
        snprintf(loss, sizeof loss, "%.4f bpc", p->loss / log(2.0));
    else
        snprintf(loss, sizeof loss, "%.4f", p->loss);
    fmt_reward(ps, p->reward, reward, sizeof reward);
    const char *what = ps->smash ? "hypernetwork" : "shared"; /* what the train phase trains */
    if (!p->phase_end) {
        if (!ps->tty) {
            /* a log line per quarter of the shared training when not on a terminal */
            double done = (double)p->step / (double)(p->steps ? p->steps : 1);
            if (train && done - ps->last_log >= 0.25) {
                ps->last_log = done;
                fprintf(stderr, "epoch %d/%d %s training step %lld/%lld loss %s acc %.2f%%  [%s]\n",
                        p->epoch + 1, p->epochs, what, (long long)p->step, (long long)p->steps, loss, 100 * p->acc, t);
            }
            return;
        }
        if (train)
            fprintf(stderr, "\repoch %d/%d %s training step %lld/%lld loss %s acc %.2f%%  ", p->epoch + 1,
                    p->epochs, what, (long long)p->step, (long long)p->steps, loss, 100 * p->acc);
        else if (ctl)
            fprintf(stderr, "\repoch %d/%d controller child %lld/%lld reward %s  ", p->epoch + 1, p->epochs,
                    (long long)p->step, (long long)p->steps, reward);
        else
            fprintf(stderr, "\rcandidate %lld/%lld  ", (long long)p->step, (long long)p->steps);
        return;
    }
    if (ps->tty) fputc('\n', stderr);
    ps->last_log = 0;
    if (train)
        printf("epoch %d/%d  %s training: loss %s, accuracy %.2f%% (%lld children; %.0f ms a step, %.1f ms "
               "of it compiling; %lld primitives created)  [%s]\n",
               p->epoch + 1, p->epochs, what, loss, 100 * p->acc, (long long)p->steps, 1e3 * p->step_s,
               1e3 * p->compile_s, (long long)p->created, t);
    else if (ctl)
        printf("epoch %d/%d  controller: mean reward %s over %lld children, baseline %.4f, entropy %.2f  [%s]\n",
               p->epoch + 1, p->epochs, reward, (long long)p->steps, p->baseline, p->entropy, t);
    else
        printf("derive: %lld candidates scored with the %s weights  [%s]\n", (long long)p->steps,
               ps->smash ? "generated" : "shared", t);
    fflush(stdout);
}

/* ENAS: the shared-weight training, the controller, the candidates into
 * the journal, then search.svg. */
static nasc_status run_enas(session *s, const search_opts *o, progress_state *ps) {
    nasc_oneshot_run r = {0};
    r.space = s->space;
    r.journal = s->journal;
    r.state_path = s->state_path;
    r.train = &s->train;
    r.text = o->lm ? &s->text : NULL;
    r.enas = enas_options(o);
    r.set_keys = s->keys;
    r.set_vals = s->vals;
    r.n_set = (int)o->mo.n_ov;
    r.progress = on_enas;
    r.ud = ps;
    r.stop = &nasc_cli_interrupted;
    fprintf(stderr, "search: space %s (%u decisions, 10^%.1f architectures), strategy enas: %d epochs of shared "
                    "training, then %d candidates\n",
            o->space, nasc_space_count(s->space), nasc_space_log10_size(s->space), r.enas.epochs, r.enas.candidates);
    nasc_status st = nasc_oneshot_search(&s->ctx, o->strategy, &r);
    if (st) return st;
    char mb[32];
    nasc_cli_fmt_si(r.store_bytes, mb, sizeof mb);
    printf("shared store: %lld tensors, %sB (weights, optimizer state and the controller)\n", (long long)r.store_tensors, mb);
    fflush(stdout);
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/search.svg", o->out);
    return nasc_search_plot(&s->ctx, s->journal, svg);
}

/* SMASH: H trained, the candidates into the journal, then search.svg. */
static nasc_status run_smash(session *s, const search_opts *o, progress_state *ps) {
    nasc_oneshot_run r = {0};
    r.space = s->space;
    r.journal = s->journal;
    r.state_path = s->state_path;
    r.train = &s->train;
    r.smash = smash_options(o);
    r.set_keys = s->keys;
    r.set_vals = s->vals;
    r.n_set = (int)o->mo.n_ov;
    r.progress = on_enas;
    r.ud = ps;
    r.stop = &nasc_cli_interrupted;
    ps->smash = true;
    fprintf(stderr, "search: space %s (%u decisions, 10^%.1f architectures), strategy smash: %d epochs of "
                    "hypernetwork training, then %d candidates and %d perturbations of the best\n",
            o->space, nasc_space_count(s->space), nasc_space_log10_size(s->space), r.smash.epochs, r.smash.candidates,
            r.smash.perturb);
    nasc_status st = nasc_oneshot_search(&s->ctx, o->strategy, &r);
    if (st) return st;
    char mb[32];
    nasc_cli_fmt_si(r.store_bytes, mb, sizeof mb);
    printf("SMASH store: %lld tensors, %sB (hypernetwork, shared tensors, optimizer state)\n",
           (long long)r.store_tensors, mb);
    fflush(stdout);
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/search.svg", o->out);
    return nasc_search_plot(&s->ctx, s->journal, svg);
}

/* --synthetic: a child "trains" for o->synthetic seconds (asleep) and its
 * reward is drawn from its architecture's hash, so that the search
 * machinery (strategy, journal, MPI) can be measured without training. */
static nasc_status synthetic_eval(void *ud, const nasc_module *arch, nasc_eval_result *out) {
    const search_opts *o = ud;
    memset(out, 0, sizeof *out);
    uint64_t h = 0;
    nasc_status st = nasc_arch_hash(arch, &h);
    if (st) return st;
    double t0 = nasc_cli_now(), left;
    while ((left = o->synthetic - (nasc_cli_now() - t0)) > 0 && !nasc_cli_interrupted) {
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (nasc_cli_interrupted) return nasc_error(arch->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    out->ok = true;
    out->reward = 0.5 + 0.5 * (double)(h >> 11) / 9007199254740992.0;
    out->val_loss = -log(out->reward);
    out->params = out->macs = -1;
    return NASC_OK;
}

/* The evaluator of the children: train each on the data (or --synthetic). */
static nasc_evaluator child_evaluator(session *s, search_opts *o, nasc_train_eval_options *eo) {
    memset(eo, 0, sizeof *eo);
    eo->train = &s->train;
    eo->epochs = (int)o->epochs;
    eo->train_subset = o->subset;
    eo->val_size = o->val;
    eo->batch = (int)o->batch;
    eo->lr = (float)o->lr;
    eo->seed = (uint64_t)o->seed;
    eo->threads = (int)o->threads;
    eo->time_limit_s = o->time_limit;
    eo->stop = &nasc_cli_interrupted;
    eo->text = o->lm ? &s->text : NULL;
    eo->steps = (int)o->bptt;
    if (o->synthetic > 0) return (nasc_evaluator){synthetic_eval, o};
    return nasc_train_evaluator(eo);
}

/* The strategy's log lines (reinforce's replicas: each gradient and its
 * staleness): printed, and appended to RUN/controller.log. */
typedef struct strategy_log {
    char path[4200];
    FILE *f;
    bool failed;
} strategy_log;

static void on_strategy_log(void *ud, const char *line) {
    strategy_log *lg = ud;
    printf("    controller: %s\n", line);
    fflush(stdout);
    if (!lg->f && !lg->failed) {
        lg->f = fopen(lg->path, "a");
        if (!lg->f) {
            lg->failed = true;
            fprintf(stderr, "warning: cannot append to %s; the controller's log is only printed\n", lg->path);
        }
    }
    if (lg->f) {
        fprintf(lg->f, "%s\n", line);
        fflush(lg->f);
    }
}

/* What rank 0 of a distributed search measured. */
static void print_dist_stats(const nasc_cli_mpi *mp, const nasc_cli_mpi_stats *ds, long threads) {
    double per = ds->trials ? 1e3 * ds->busy_s / (double)ds->trials : 0;
    double rec = ds->trials ? 1e3 * ds->record_s / (double)ds->trials : 0;
    printf("distributed: %d ranks, %d workers x %ld thread%s (%d given up); %lld trials in %.1f s = %.2f trials/s; "
           "rank 0 busy %.2f ms per trial (%.2f ms of it journal and strategy state); messages: task %lld bytes, "
           "result %lld bytes (%lld and %lld sent)\n",
           mp->size, ds->workers, threads, threads == 1 ? "" : "s", ds->lost, (long long)ds->trials, ds->wall_s,
           ds->wall_s > 0 ? (double)ds->trials / ds->wall_s : 0, per, rec, (long long)ds->task_bytes,
           (long long)ds->result_bytes, (long long)ds->tasks, (long long)ds->results);
    fflush(stdout);
}

/* The trials up to the budget (those in the journal are not redone), then
 * search.svg. Under mpirun (mp active) the worker ranks train them. */
static nasc_status run_trials(session *s, search_opts *o, progress_state *ps, nasc_cli_mpi *mp) {
    if (o->smash) return run_smash(s, o, ps);
    if (o->oneshot) return run_enas(s, o, ps);
    fprintf(stderr, "search: space %s (%u decisions, 10^%.1f architectures), strategy %s, budget %ld\n", o->space,
            nasc_space_count(s->space), nasc_space_log10_size(s->space), o->strategy, o->budget);
    nasc_train_eval_options eo;
    nasc_evaluator ev = child_evaluator(s, o, &eo);
    nasc_search_run run = {0};
    run.space = s->space;
    run.strategy = s->strategy;
    run.journal = s->journal;
    run.state_path = s->state_path;
    run.budget = o->budget;
    run.eval = ev;
    run.set_keys = s->keys;
    run.set_vals = s->vals;
    run.n_set = (int)o->mo.n_ov;
    run.progress = on_trial;
    run.ud = ps;
    run.stop = &nasc_cli_interrupted;
    strategy_log lg = {.f = NULL, .failed = false};
    snprintf(lg.path, sizeof lg.path, "%s/controller.log", o->out);
    nasc_strategy_set_log(s->strategy, on_strategy_log, &lg);
    nasc_status st;
    if (mp->active) {
        /* a worker silent this long is given up: by default twice the
         * child time limit and a minute, none without a limit */
        double hang = o->worker_timeout >= 0 ? o->worker_timeout : o->time_limit > 0 ? 2 * o->time_limit + 60 : 0;
        nasc_cli_mpi_stats ds;
        st = nasc_cli_mpi_serve(&s->ctx, mp, &run, hang, &ds);
        if (!st) print_dist_stats(mp, &ds, o->threads ? o->threads : nasc_cli_mpi_worker_threads(mp));
    } else {
        st = nasc_search_loop(&s->ctx, &run);
    }
    nasc_strategy_set_log(s->strategy, NULL, NULL);
    if (lg.f) fclose(lg.f);
    if (st) return st;
    char svg[4200];
    snprintf(svg, sizeof svg, "%s/search.svg", o->out);
    return nasc_search_plot(&s->ctx, s->journal, svg);
}

/* The search is done: train the best from scratch, export and draw it. */
static nasc_status final_training(session *s, const search_opts *o, progress_state *ps,
                                  nasc_search_final_result *fr) {
    for (int64_t i = 0; i < s->journal->n; i++) {
        const char *t = s->journal->trials[i].status;
        s->ok += strcmp(t, "ok") == 0;
        s->failed += strcmp(t, "failed") == 0;
        s->cached += strcmp(t, "cached") == 0;
    }
    fprintf(stderr, "search done: %lld trials (%lld trained, %lld cached, %lld failed); final training of the best for %ld epoch%s\n",
            (long long)s->journal->n, (long long)s->ok, (long long)s->cached, (long long)s->failed, o->final_epochs,
            o->final_epochs == 1 ? "" : "s");
    nasc_search_final_options fo = {0};
    fo.dir = o->out;
    fo.train = &s->train;
    fo.test = &s->test;
    fo.epochs = (int)o->final_epochs;
    fo.val_size = o->val;
    fo.batch = (int)o->batch;
    fo.lr = (float)o->lr;
    fo.seed = (uint64_t)o->seed;
    fo.threads = (int)o->threads;
    fo.set_keys = s->keys;
    fo.set_vals = s->vals;
    fo.n_set = (int)o->mo.n_ov;
    fo.final_recipe = o->final_recipe;
    fo.text = o->lm ? &s->text : NULL;
    fo.steps = (int)o->bptt;
    fo.progress = on_final_step;
    fo.ud = ps;
    return nasc_search_finish(&s->ctx, s->space, s->journal, &fo, fr);
}

static void print_summary(const session *s, const search_opts *o, const nasc_search_final_result *fr) {
    char pr[32], mc[32];
    nasc_cli_fmt_int(fr->params, pr, sizeof pr);
    nasc_cli_fmt_si(fr->macs, mc, sizeof mc);
    printf("\nsearch %s: space %s, strategy %s, %lld trials (%lld trained, %lld cached, %lld failed)\n", o->out,
           o->space, o->strategy, (long long)s->journal->n, (long long)s->ok, (long long)s->cached,
           (long long)s->failed);
    if (o->lm) {
        if (o->oneshot)
            printf("best candidate #%lld: %.4f bits per character on a validation window with the shared weights\n",
                   (long long)fr->best_index, -log2(fr->best_reward));
        else
            printf("best trial #%lld: validation %.4f bits per character during the search (%ld epoch%s on %ld "
                   "bytes)\n",
                   (long long)fr->best_index, -log2(fr->best_reward), o->epochs, o->epochs == 1 ? "" : "s", o->subset);
        printf("final training (%ld epoch%s): validation %.4f, test %.4f bits per character\n", o->final_epochs,
               o->final_epochs == 1 ? "" : "s", fr->val_loss / log(2.0), fr->test_loss / log(2.0));
        printf("best model: %s parameters, %s multiply-adds per %ld characters; best.onnx is its one-step model\n", pr,
               mc, o->bptt);
    } else {
        if (o->smash)
            printf("best candidate #%lld: %.2f%% on the validation split with generated weights\n",
                   (long long)fr->best_index, 100 * fr->best_reward);
        else if (o->oneshot)
            printf("best candidate #%lld: %.2f%% on a validation batch with the shared weights\n",
                   (long long)fr->best_index, 100 * fr->best_reward);
        else
            printf("best trial #%lld: validation accuracy %.2f%% during the search (%ld epoch%s on %ld images)\n",
                   (long long)fr->best_index, 100 * fr->best_reward, o->epochs, o->epochs == 1 ? "" : "s", o->subset);
        printf("final training (%ld epoch%s): validation accuracy %.2f%%, test accuracy %.2f%%\n", o->final_epochs,
               o->final_epochs == 1 ? "" : "s", 100 * fr->val_acc, 100 * fr->test_acc);
        printf("best model: %s parameters, %s multiply-adds per image\n", pr, mc);
    }
    printf("  %s/best.onnx\n  %s/best.yaml\n  %s/best.nir\n  %s/best.nasc\n  %s/search.svg\n  %s/%s\n", o->out,
           o->out, o->out, o->out, o->out, o->out, fr->cells_picture);
    if (fr->note[0]) printf("note: %s\n", fr->note);
}

/* Rank 0 of a distributed search, or the whole search in one process. */
static int search_main(search_opts *po, nasc_cli_mpi *mp) {
    search_opts o = *po;
    session s = {0};
    nasc_ctx_init(&s.ctx);
    if (open_space_and_strategy(&s, &o)) return fail(&s);
    if (nasc_cli_mkdirs(&s.ctx, o.out)) { /* it printed the diagnostic */
        session_free(&s);
        return NASC_EXIT_INPUT;
    }
    snprintf(s.cfg_path, sizeof s.cfg_path, "%s/config.txt", o.out);
    snprintf(s.journal_path, sizeof s.journal_path, "%s/journal.jsonl", o.out);
    snprintf(s.state_path, sizeof s.state_path, "%s/%s", o.out, o.oneshot ? "oneshot.nasc" : "strategy.nasc");
    if (check_config(&s, &o) || open_journal(&s, &o) || load_data(&s, &o)) return fail(&s);

    /* Ctrl-C: the trial in flight (or the final training) is abandoned */
    struct sigaction old;
    nasc_cli_sigint_catch(&old);
    progress_state ps = {&s.ctx, nasc_cli_now(), s.journal->n, isatty(2) != 0, 0, o.lm, o.smash};
    nasc_search_final_result fr;
    bool final = false;
    nasc_status st = run_trials(&s, &o, &ps, mp);
    if (!st && o.synthetic > 0) {
        /* the rewards were not accuracies: nothing to train */
        nasc_cli_sigint_restore(&old);
        printf("search %s: %lld trials with the synthetic evaluator (%g s each); no final training\n", o.out,
               (long long)s.journal->n, o.synthetic);
        session_free(&s);
        return NASC_EXIT_OK;
    }
    if (!st) {
        final = true;
        st = final_training(&s, &o, &ps, &fr);
    }
    nasc_cli_sigint_restore(&old);
    if (st && nasc_cli_interrupted) {
        if (final)
            fprintf(stderr, "nasc search: interrupted during the final training; best.nasc keeps the last finished "
                            "epoch (continue with --resume)\n");
        else
            fprintf(stderr, "nasc search: interrupted after %lld of %ld trials; continue with --resume\n",
                    (long long)s.journal->n, o.budget);
        session_free(&s);
        return NASC_EXIT_INPUT;
    }
    if (st) return fail(&s);
    print_summary(&s, &o, &fr);
    session_free(&s);
    return NASC_EXIT_OK;
}

/* A worker rank of a distributed search: the space and the data as rank 0
 * has them, then the children rank 0 sends until it says stop. */
static int work(search_opts *o, nasc_cli_mpi *mp) {
    session s = {0};
    nasc_ctx_init(&s.ctx);
    if (!o->threads) o->threads = nasc_cli_mpi_worker_threads(mp);
    char error[512] = "";
    nasc_status st = open_space_and_strategy(&s, o);
    if (!st) st = load_data(&s, o);
    if (st) nasc_diag_format(&s.ctx.diag, error, sizeof error);
    nasc_train_eval_options eo;
    nasc_evaluator ev = child_evaluator(&s, o, &eo);
    struct sigaction old;
    nasc_cli_sigint_catch(&old);
    st = nasc_cli_mpi_work(&s.ctx, mp, s.space, ev, s.keys, s.vals, (int)o->mo.n_ov, error[0] ? error : NULL);
    nasc_cli_sigint_restore(&old);
    /* a worker that could not start: rank 0 printed why and went on without it */
    int rc = NASC_EXIT_OK;
    if (st) {
        if (!nasc_cli_interrupted) nasc_cli_fail(&s.ctx);
        rc = NASC_EXIT_INPUT;
    }
    session_free(&s);
    return rc;
}

int nasc_cli_search(int argc, char **argv) {
    search_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != NASC_CLI_GO) return rc;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_cli_mpi mp;
    if (nasc_cli_mpi_init(&ctx, &mp)) {
        nasc_cli_fail(&ctx);
        return NASC_EXIT_INPUT;
    }
    if (mp.active && o.oneshot) {
        if (mp.rank == 0)
            fprintf(stderr, "nasc search: --strategy %s trains its shared weights in one process; run it without "
                            "mpirun (or with -np 1)\n",
                    o.strategy);
        rc = NASC_EXIT_INPUT;
    } else {
        rc = mp.rank > 0 ? work(&o, &mp) : search_main(&o, &mp);
    }
    nasc_cli_mpi_finish(&mp, rc);
    return rc;
}
