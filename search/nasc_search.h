/* nasc_search.h - search spaces, strategies, the evaluator and the run.
 *
 * A search space is an ordered list of decisions, each with a cardinality.
 * decode() turns a decision vector into a verified arch module; encode()
 * turns such a module back into the vector. Strategies see only decisions
 * and rewards: they never touch tensors, nets or files.
 *
 * Two kinds of decision:
 *  - CHOICE: one of card options; the value is in [0, card).
 *  - SKIP: the anchor point of macro layer `layer` (NAS-RL, ENAS macro): the
 *    set of earlier layers that feed it, as a bit mask over card candidates
 *    (bit j set: layer j feeds layer `layer`); the value is in [0, 2^card).
 *    card is the number of candidate earlier layers (0 for the first layer,
 *    whose anchor still exists so that later layers can attend to it).
 *
 *     nasc_ctx ctx; nasc_ctx_init(&ctx);
 *     nasc_space *sp = NULL;
 *     if (nasc_space_create(&ctx, "nasnet", NULL, &sp)) nasc_diag_print(&ctx.diag, stderr);
 *     uint32_t n = nasc_space_count(sp), *d = calloc(n, sizeof *d);
 *     nasc_rng r; nasc_rng_seed(&r, 7);
 *     nasc_space_sample(sp, &r, d);
 *     nasc_module *arch = NULL;
 *     nasc_space_decode(sp, d, &arch);         // verified, lowers
 *     nasc_space_encode(sp, arch, d);          // the same d back
 *
 * API stability: public API, with the promise nasc_ir.h states (unchanged
 * within a 0.x minor release). The spaces' decision lists, and so decision
 * vectors, journals and strategy state, may change in a minor release.
 */
#ifndef NASC_SEARCH_H
#define NASC_SEARCH_H

#include <signal.h>

#include "nasc_backend.h"
#include "nasc_ir.h"

/* ------------------------------------------------------------------ */
/* Decisions and search spaces (search/space.c)                        */
/* ------------------------------------------------------------------ */

typedef enum nasc_decision_kind {
    NASC_DEC_CHOICE,
    NASC_DEC_SKIP,
} nasc_decision_kind;

#define NASC_SKIP_MAX 30 /* at most this many candidate layers per anchor */

typedef struct nasc_decision {
    char name[48];             /* e.g. "normal.b0.in0", "l3.filters", "l3.skip" */
    nasc_decision_kind kind;
    int card;                  /* CHOICE: options (>= 1); SKIP: candidates (0..NASC_SKIP_MAX) */
    int layer;                 /* SKIP: the layer of this anchor; CHOICE: its layer or -1 */
    const char *const *labels; /* CHOICE: card option names (static storage) or NULL */
} nasc_decision;

/* Size options of a space; 0 means the space's default. */
typedef struct nasc_space_options {
    int blocks; /* blocks per cell, for the spaces whose size option is "blocks" */
    int layers; /* layers, for the spaces whose size option is "layers" */
} nasc_space_options;

typedef struct nasc_space nasc_space;

/* A row of the space table (search/space.c), the only place a space is
 * registered: help texts, listings and "known: ..." messages are printed
 * from it, so a new space is one row there. */
typedef struct nasc_space_entry {
    const char *name;    /* what --space takes: "nasnet" */
    const char *summary; /* one line about it, no newline */
    const char *option;  /* its size option: "blocks" or "layers" */
    int def_size;        /* the option's default */
    int max_size;        /* its largest value (the smallest is 1) */
} nasc_space_entry;

/* Row i of the space table into *out, in table order; false past the last
 * row: for (size_t i = 0; nasc_space_registered(i, &e); i++) ... */
bool nasc_space_registered(size_t i, nasc_space_entry *out);

/* The names of the space table in its order, NULL-terminated. */
extern const char *const nasc_space_names[];

/* NASC_EINPUT naming the known spaces when name is unknown, or the option
 * when it is out of range. opt may be NULL. */
nasc_status nasc_space_create(nasc_ctx *ctx, const char *name, const nasc_space_options *opt,
                              nasc_space **out);
void nasc_space_destroy(nasc_space *sp);
const char *nasc_space_name(const nasc_space *sp);
/* A few lines about the space for people (`nasc space`): the paper, the size
 * option, how reductions and skip masks are built. */
const char *nasc_space_summary(const nasc_space *sp);
uint32_t nasc_space_count(const nasc_space *sp);
/* Its architectures are recurrent nets: character language models. */
bool nasc_space_recurrent(const nasc_space *sp);
/* The name a one-shot store gives parameter `name` of child d of a
 * recurrent space (a nasc_lower_options.param_key): in enas-rnn, node i's
 * linears are keyed by the node, its parent and its activation, as ENAS
 * slices them ("cell.n3c_in.w" of a node reading n1 through tanh is
 * "cell.n3c_in.n1.tanh.w"; node 0's parent is "xh"); other names and
 * spaces without such keys keep the name. */
void nasc_space_share_key(const nasc_space *sp, const uint32_t *d, const char *name, char *out, size_t size);

/* SMASH (search/space_smash.c, docs/smash.md): child d of a smash space as
 * its hypernetwork sees it. `hyper` is what nasc_lower_options.hyper takes
 * (it points into this struct): the 1x1 convolution of every op gets
 * generated weights; the main convolutions of a block are cut from one
 * shared tensor "smash.b<b>.w" (N_b, 2 N_b, 7, 7), centred. enc is the
 * encoding (hyper.enc_channels x hyper.columns floats, each +1 or -1),
 * the input "hyper.enc". */
typedef struct nasc_smash_child {
    nasc_ctx *ctx;
    nasc_hyper hyper;
    float *enc;             /* owned */
    nasc_hyper_conv *convs; /* owned */
    char (*names)[32];      /* owned: the node names convs point at */
} nasc_smash_child;

/* The defaults of H: width 32, growth 16, depth 6. */
nasc_status nasc_smash_child_make(const nasc_space *sp, const uint32_t *d, nasc_smash_child *out);
void nasc_smash_child_free(nasc_smash_child *c);
/* The space's size option ("blocks" or "layers") and its value, default
 * resolved. */
const char *nasc_space_option(const nasc_space *sp, int *value);
const nasc_decision *nasc_space_decisions(const nasc_space *sp);
/* log10 of the number of distinct decision vectors. */
double nasc_space_log10_size(const nasc_space *sp);
/* Every value within its cardinality; NASC_EINPUT naming the decision. */
nasc_status nasc_space_check(const nasc_space *sp, const uint32_t *d);
/* A uniformly random decision vector. */
void nasc_space_sample(const nasc_space *sp, nasc_rng *r, uint32_t *d);
/* A verified arch module on sp's context (skeleton defaults: Fashion-MNIST
 * sized; callers may change it with nasc_skeleton_set before lowering). */
nasc_status nasc_space_decode(const nasc_space *sp, const uint32_t *d, nasc_module **out);
/* The decision vector of an arch module of this space; NASC_EINPUT naming
 * the cell and node that does not fit the space. */
nasc_status nasc_space_encode(const nasc_space *sp, const nasc_module *arch, uint32_t *d);

/* ------------------------------------------------------------------ */
/* Strategies (search/strategies.c, reinforce.c, evolve.c)            */
/* ------------------------------------------------------------------ */

typedef struct nasc_strategy_options {
    uint64_t seed;
    /* reinforce (NAS-RL controller) */
    int lstm_size;        /* hidden units (default 64) */
    int batch;            /* architectures per controller update (default 5) */
    float lr;             /* Adam learning rate (default 0.006) */
    float entropy;        /* entropy bonus weight, on the summed entropy of all steps (default 7e-3) */
    float baseline_decay; /* moving-average baseline decay (default 0.9) */
    /* reinforce with controller replicas (NAS-RL's distributed training;
     * replicas 0: one controller, an update per `batch` rewards). Each of
     * the `replicas` replicas samples `children_per_replica` children from
     * its copy of the controller, and when all have their reward sends the
     * REINFORCE gradient computed on that copy; the controller takes an
     * Adam step once `grads_per_update` gradients have arrived (NAS-RL's
     * PTB run: 10). A gradient computed on a copy older than the
     * controller is applied all the same; the log says how many updates
     * old it is (its staleness). */
    int replicas;
    int children_per_replica; /* default 1 */
    int grads_per_update;     /* default 1 */
    /* evolution (regularized evolution) */
    int population;       /* default 20 */
    int sample_size;      /* tournament size (default 5) */
} nasc_strategy_options;

nasc_strategy_options nasc_strategy_options_default(void);

typedef struct nasc_strategy nasc_strategy;

/* A row of the strategy table (search/strategies.c), the only place a
 * strategy is registered; like the space table, what help texts, listings
 * and "known: ..." messages print. */
typedef struct nasc_strategy_entry {
    const char *name;    /* what --strategy takes: "reinforce" */
    const char *summary; /* one line about it, no newline */
    bool oneshot;        /* trains shared weights in its own loop (enas), not trial by trial */
} nasc_strategy_entry;

/* Whether the strategy of that name is one-shot (false for unknown names):
 * it runs through nasc_oneshot_search. */
bool nasc_strategy_is_oneshot(const char *name);

/* Row i of the strategy table into *out; false past the last row. */
bool nasc_strategy_registered(size_t i, nasc_strategy_entry *out);

/* The names of the strategy table in its order, NULL-terminated. */
extern const char *const nasc_strategy_names[];

/* The strategy works on decs[0..n) (copied). NASC_EINPUT naming the known
 * strategies when name is unknown, and for a one-shot strategy (run with
 * its own loop: nasc_oneshot_search). */
nasc_status nasc_strategy_create(nasc_ctx *ctx, const char *name, const nasc_decision *decs,
                                 uint32_t n, const nasc_strategy_options *opt,
                                 nasc_strategy **out);
void nasc_strategy_destroy(nasc_strategy *s);
const char *nasc_strategy_name(const nasc_strategy *s);
/* The next architecture to evaluate (n values); proposals are numbered
 * from 0 in the order they are made. Deterministic given the seed and the
 * rewards reported (and their order) before it. NASC_EINPUT when the
 * strategy is not ready (nasc_strategy_ready). */
nasc_status nasc_strategy_propose(nasc_strategy *s, uint32_t *d);
/* Whether propose can give an architecture now. Only reinforce with
 * replicas waits: when every replica has handed out all its children, the
 * next proposal needs a reward first. */
bool nasc_strategy_ready(const nasc_strategy *s);
/* The reward of the oldest proposal not reported yet; NaN marks a failed
 * trial. d must be its decisions. */
nasc_status nasc_strategy_report(nasc_strategy *s, const uint32_t *d, double reward);
/* The reward of proposal number `proposal`, in any order (children that
 * run in parallel finish in any order). NASC_EINPUT when it is not an
 * outstanding proposal or d is not its decisions. */
nasc_status nasc_strategy_report_proposal(nasc_strategy *s, int64_t proposal, const uint32_t *d, double reward);
/* Numbers of proposals made and rewards reported so far. */
int64_t nasc_strategy_proposed(const nasc_strategy *s);
int64_t nasc_strategy_reported(const nasc_strategy *s);
/* The i-th proposal without a reward (oldest first, i < proposed -
 * reported): its number, and its decisions into d; -1 past the last. The
 * saved state keeps them, so a search that continues after a crash can
 * evaluate them again. */
int64_t nasc_strategy_outstanding(const nasc_strategy *s, int64_t i, uint32_t *d);
/* Lines about what the strategy does that a person may want to read
 * (reinforce with replicas: each gradient, its replica and staleness). */
void nasc_strategy_set_log(nasc_strategy *s, void (*log)(void *ud, const char *line), void *ud);
/* All state (random stream, counters, outstanding proposals, controller
 * weights and Adam moments, pending batch, replicas, population) into /
 * out of a parameter store, so that it
 * can be checkpointed with nasc_params_save. load checks that the state is
 * of this strategy and these decisions and names the field that is not. */
nasc_status nasc_strategy_save(const nasc_strategy *s, nasc_param_store *st);
nasc_status nasc_strategy_load(nasc_strategy *s, const nasc_param_store *st);

/* ------------------------------------------------------------------ */
/* The journal (search/journal.c)                                      */
/* ------------------------------------------------------------------ */

/* One trial of a search. status: "ok" (reward = validation accuracy),
 * "failed" (reward NaN, reason says why), "cached" (an architecture with
 * the same canonical hash was evaluated before: its reward, not retrained). */
typedef struct nasc_trial {
    int64_t index;     /* 0-based */
    uint32_t *d;       /* the decisions (owned by the journal) */
    uint64_t hash;     /* canonical arch hash */
    char status[8];
    double reward;
    double val_loss;
    double seconds;    /* wall time of the evaluation */
    int64_t params, macs;
    char reason[256];
    /* The strategy's proposal number of these decisions: equal to index
     * when trials are evaluated one at a time; a distributed search
     * journals results in the order they arrive. Written when it differs
     * from index; a record without it has proposal = index. */
    int64_t proposal;
    int rank; /* the MPI rank that evaluated it (written when > 0); 0: this process */
} nasc_trial;

/* The append-only journal of a run: one JSON object per line, each with a
 * checksum of its text, appended with write + fsync. Line 1 names the
 * search the journal belongs to (space, its size option, strategy, and the
 * kind and cardinality of every decision); trial i is on line i + 2.
 *
 * Opening reads every record. A journal of another search (another space,
 * size, strategy, or a space whose decisions changed) is NASC_EINPUT at
 * line 1 saying what differs; a record whose decisions are not values of
 * sp (nasc_space_check) is NASC_EINPUT at its line. A torn last record (no
 * newline, or a checksum that does not match on the last line) is dropped
 * with a warning in *warning; damage anywhere else is NASC_EINPUT naming
 * the file and line. Opening creates a missing file but never changes an
 * existing one: torn bytes are cut off by the next append. */
typedef struct nasc_journal {
    nasc_ctx *ctx;
    char *path;
    int fd;
    uint32_t n_decisions;
    nasc_trial *trials;        /* (n,) the records in order */
    int64_t n, cap;
    char *header;              /* this search's line 1, with its newline */
    size_t header_len;
    int64_t size;              /* bytes of whole lines in the file */
    bool torn;                 /* the file holds more than size bytes (to cut off) */
    bool recurrent;            /* the space's children are language models: rewards are 1 / perplexity */
} nasc_journal;

/* sp lives on ctx; strategy is the strategy's name. */
nasc_status nasc_journal_open(nasc_ctx *ctx, const char *path, const nasc_space *sp, const char *strategy,
                              nasc_journal **out, char *warning, size_t warning_size);
nasc_status nasc_journal_append(nasc_journal *j, const nasc_trial *t);
void nasc_journal_close(nasc_journal *j);

/* ------------------------------------------------------------------ */
/* The run directory's configuration (search/rundir.c)                 */
/* ------------------------------------------------------------------ */

/* The options that define a search, as "key = value" lines in the run
 * directory's config.txt: written when the run starts with the atomic
 * writer (nasc_file_write_atomic: a crash leaves no config.txt or a whole
 * one), and compared key by key when it continues. The list grows with
 * every add. An add that fails (out of memory; a key that is empty, starts
 * with '#', holds " = " or a newline, or is there already; a value with a
 * newline) returns the error, and write and check return it again, so a
 * caller may add every key and look at one status.
 *
 *     nasc_run_config c;
 *     nasc_run_config_init(&c, &ctx);
 *     nasc_run_config_add(&c, "space", "%s", "nasrl");
 *     nasc_run_config_add(&c, "seed", "%ld", seed);
 *     st = resume ? nasc_run_config_check(&c, "run/config.txt")
 *                 : nasc_run_config_write(&c, "run/config.txt");
 *     nasc_run_config_free(&c);
 */
typedef struct nasc_run_config {
    nasc_ctx *ctx;
    char **keys, **vals;  /* (n,) NUL-terminated, owned */
    int n, cap;
    nasc_status error;    /* the first failed add; NASC_OK when none */
} nasc_run_config;

void nasc_run_config_init(nasc_run_config *c, nasc_ctx *ctx);
/* Frees the keys and values; a zero-initialised config is fine. */
void nasc_run_config_free(nasc_run_config *c);
nasc_status nasc_run_config_add(nasc_run_config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
nasc_status nasc_run_config_write(const nasc_run_config *c, const char *path);
/* NASC_EINPUT naming path (and the line) at the first key whose value
 * differs, that is missing, unknown or repeated, or a line that is not
 * "key = value". */
nasc_status nasc_run_config_check(const nasc_run_config *c, const char *path);

/* ------------------------------------------------------------------ */
/* Evaluation and the search run (search/evaluate.c, search/run.c)     */
/* ------------------------------------------------------------------ */

typedef struct nasc_eval_result {
    bool ok;            /* false: a failed trial, reason says why */
    double reward;      /* validation accuracy */
    double val_loss;
    int64_t params, macs;
    char reason[256];
} nasc_eval_result;

/* Evaluates one architecture. A child that fails (diverges, runs out of
 * memory, exceeds its time limit) is out->ok = false with NASC_OK; a
 * non-OK status stops the search (interrupted, or a bug). */
typedef struct nasc_evaluator {
    nasc_status (*evaluate)(void *ud, const nasc_module *arch, nasc_eval_result *out);
    void *ud;
} nasc_evaluator;

/* The in-process evaluator: lower the arch, train it on the training split
 * for `epochs`, reward = validation accuracy. */
typedef struct nasc_train_eval_options {
    const nasc_dataset *train;   /* the full training set; the validation split is its tail */
    /* Recurrent archs (language models): the text, the first train_subset
     * bytes of its training split trained on (0 all), unrolled over steps
     * characters (0: NASC_DEFAULT_SEQ_LEN), Adam at lr with the gradient
     * norm clipped to 5; reward exp(-validation loss) = 1 / the validation
     * perplexity per character (ENAS's c / perplexity with c = 1), val_loss
     * in nats per character. */
    const nasc_corpus *text;
    int steps;
    int epochs;
    int64_t train_subset;        /* 0: all of the training split */
    int64_t val_size;
    int batch;
    float lr;
    uint64_t seed;
    int threads;
    double time_limit_s;         /* per trial; 0: none */
    volatile sig_atomic_t *stop; /* set by a signal handler (SIGINT): the trial is abandoned */
} nasc_train_eval_options;

nasc_evaluator nasc_train_evaluator(nasc_train_eval_options *o);

/* Apply "key=value" skeleton overrides to an arch module. */
nasc_status nasc_arch_apply_overrides(nasc_module *arch, const char *const *keys,
                                      const char *const *vals, int n);

typedef struct nasc_search_progress {
    const nasc_trial *trial;   /* the trial just recorded */
    int64_t budget;
    double best_reward;        /* NaN until a trial succeeded */
    int64_t best_index;
} nasc_search_progress;

/* Run (or continue) a search until the journal holds budget trials: propose,
 * decode, look the hash up among earlier trials, evaluate, append to the
 * journal, report, save the strategy state atomically to state_path. On
 * entry, trials in the journal that the saved state has not seen are fed to
 * the strategy again without re-evaluating: each must be what the strategy
 * proposes, or the journal is of another search (seed or strategy options)
 * and the loop stops with NASC_EINPUT at that record's line, naming the
 * first decision that differs, before anything is written. */
typedef struct nasc_search_run {
    nasc_space *space;
    nasc_strategy *strategy;
    nasc_journal *journal;
    const char *state_path;
    int64_t budget;
    nasc_evaluator eval;
    const char *const *set_keys; /* skeleton overrides applied to every decoded arch */
    const char *const *set_vals;
    int n_set;
    void (*progress)(void *ud, const nasc_search_progress *p);
    void *ud;
    volatile sig_atomic_t *stop; /* set by a signal handler; checked between trials */
} nasc_search_run;

nasc_status nasc_search_loop(nasc_ctx *ctx, nasc_search_run *r);

/* The steps of nasc_search_loop, for a loop that trains its children
 * elsewhere (the nasc command's MPI search hands them to other ranks).
 *
 * nasc_search_resume feeds the strategy the journal's trials that its
 * saved state has not seen, as nasc_search_loop does on entry: a trial
 * that was outstanding when the state was saved is reported, one proposed
 * after it is proposed again and must match. */
nasc_status nasc_search_resume(nasc_ctx *ctx, nasc_search_run *r);
/* Decisions d of proposal `proposal` into t (t->d = d): decoded, the
 * overrides applied, hashed against the journal. Undecodable: a failed
 * trial; seen before: a cached (or failed) one. When the child must be
 * trained, *arch is its architecture (the caller destroys it) and
 * t->status is "". */
nasc_status nasc_run_prepare(nasc_ctx *ctx, const nasc_search_run *r, uint32_t *d, int64_t proposal, nasc_trial *t,
                             nasc_module **arch);
/* t takes the outcome of an earlier trial of the same architecture
 * ("cached", or "failed" when that one failed). */
void nasc_run_copy_result(nasc_trial *t, const nasc_trial *seen);
/* t takes an evaluator's result. */
void nasc_run_set_result(nasc_trial *t, const nasc_eval_result *er);
/* t as the journal's next trial: appended, reported to the strategy, the
 * strategy state saved, progress called. */
nasc_status nasc_run_record(nasc_ctx *ctx, nasc_search_run *r, nasc_trial *t);

/* The best successful trial of a journal (highest reward; on ties the
 * earliest proposal, which is the earliest trial unless the search was
 * distributed), or -1. */
int64_t nasc_journal_best(const nasc_journal *j);

/* ------------------------------------------------------------------ */
/* One-shot search: ENAS (search/oneshot.c, docs/oneshot.md)          */
/* ------------------------------------------------------------------ */

/* Every default is the ENAS reference's (melodyguan/enas,
 * scripts/cifar10_micro_search.sh and src/cifar10) unless its comment says
 * otherwise; docs/oneshot.md lists what differs and why. */
typedef struct nasc_enas_options {
    /* shared-weight training */
    int epochs;            /* passes over the training split (reference 150 on CIFAR-10 on a GPU;
                              nasc 10, an hour on two cores) */
    int batch;             /* minibatch (reference 160; nasc 64) */
    float lr_max, lr_min;  /* cosine with warm restarts per epoch: 0.05 to 0.0005 */
    int lr_t0;             /* first period in epochs: 10 (0: one period over the run) */
    int lr_tmul;           /* each period this many times the last: 2 */
    float weight_decay;    /* 1e-4 */
    float grad_clip;       /* global gradient norm clipped to this: 5 */
    float aux_weight;      /* auxiliary head's loss weight: 0.4 (0: no head) */
    int64_t val_size;      /* the last images of the training split: 5000 */
    int64_t train_subset;  /* train on the first K images (enas-rnn: bytes) only; 0 all before the validation split */
    int bptt;              /* enas-rnn: characters per step (35) */
    /* the controller */
    int lstm_size;         /* 64 */
    float ctl_lr;          /* Adam (beta1 0, beta2 0.999, eps 1e-3): 0.0035 */
    float tanh_constant;   /* 1.10 */
    float op_tanh_reduce;  /* 2.5 */
    float temperature;     /* 0: none */
    float entropy_weight;  /* entropy bonus in the reward: 1e-4 */
    float baseline_decay;  /* 0.99 */
    int ctl_steps;         /* controller updates per epoch: 30 */
    int ctl_aggregate;     /* sampled children per update: 10 */
    float skip_target;     /* enas-macro: the skip probability the penalty pulls toward: 0.4 */
    float skip_weight;     /* enas-macro: weight of that penalty in the controller's loss: 0.8 */
    /* after the search */
    int candidates;        /* children sampled and scored on a validation batch: 100 */
    uint64_t seed;
    int threads;
} nasc_enas_options;

nasc_enas_options nasc_enas_options_default(void);
/* The defaults of a space: enas-micro's are the ones above; enas-macro's
 * are those of scripts/cifar10_macro_search.sh where it differs (weight
 * decay 2.5e-4, controller lr 0.001, tanh constant 1.5, 50 updates of 20
 * children), and no auxiliary head (nasc's macro nets have none).
 * enas-rnn's controller is scripts/ptb_search.sh's (100 units, lr 0.001,
 * tanh constant 2.5, temperature 5, entropy weight 0.001, 100 updates of
 * 10 children); its shared training is nasc's character-model recipe:
 * Adam at 0.002 down to 0 by a cosine over the 5 epochs, clip 5, no
 * weight decay, 35 characters a step. */
nasc_enas_options nasc_enas_options_for(const char *space);

/* The spaces ENAS shares weights over, NULL-terminated. */
extern const char *const nasc_enas_spaces[];

/* ------------------------------------------------------------------ */
/* One-shot search: SMASH (search/smash.c, docs/smash.md)             */
/* ------------------------------------------------------------------ */

/* Every default is the SMASH reference's (ajbrock/SMASH, train.py,
 * evaluate.py, utils.py) unless its comment says otherwise. */
typedef struct nasc_smash_options {
    int epochs;           /* passes over the training split while H trains (reference 100 on a
                             GPU; nasc 3, see docs/smash.md) */
    int batch;            /* minibatch, one random architecture each: 50 */
    float lr;             /* Adam, cosine to 0 over every step of the run: 1e-3 */
    float beta1, beta2, eps; /* 0.5, 0.999, 1e-4 */
    float weight_decay;   /* 1e-4, not on H's tensors */
    int64_t val_size;     /* the last images of the training split: 5000 */
    int64_t train_subset; /* train on the first K images only; 0 all before the validation split */
    int candidates;       /* random architectures scored with generated weights: 500 */
    int perturb;          /* then perturbations of the best of them: 100 */
    float perturb_prob;   /* each decision of a perturbation redrawn with this probability: 0.05 */
    int64_t score_images; /* validation images a candidate is scored on (reference: all of the
                             split; nasc 1,000, 20 batches, to score 600 in minutes); 0 all */
    uint64_t seed;
    int threads;
} nasc_smash_options;

nasc_smash_options nasc_smash_options_default(void);
/* The spaces SMASH searches, NULL-terminated ("smash"). */
extern const char *const nasc_smash_spaces[];

/* ------------------------------------------------------------------ */
/* One-shot strategies: one interface, rows of the strategy table      */
/* ------------------------------------------------------------------ */

/* What a one-shot strategy reports while it runs. */
typedef struct nasc_oneshot_progress {
    const char *phase;     /* enas: "train", "controller", "derive" */
    int epoch, epochs;     /* 0-based epoch */
    int64_t step, steps;   /* within the phase */
    float loss, acc;       /* train: running means over the epoch */
    float reward, baseline, entropy; /* controller: running mean reward, the baseline, mean entropy */
    double seconds;        /* since this process started the search */
    bool phase_end;
    /* train: per step so far this epoch, the mean time in all and in compiling the child (decode,
     * lower, compile), and the primitives created (not found in oneDNN's cache; -1 unknown) */
    double step_s, compile_s;
    int64_t created;
} nasc_oneshot_progress;

/* A one-shot search in a run directory. The strategy owns its long-lived
 * state (shared weights, optimizer moments, controller or hypernetwork,
 * random stream, epoch) in one store that it saves atomically to
 * state_path at least once per epoch and resumes from; it appends the
 * architectures it scored to the journal as trials (the reward: accuracy,
 * or 1 / perplexity for language models), so nasc_search_finish trains the
 * best of them from scratch, as after a per-child search; a journal that
 * already holds some is continued. */
typedef struct nasc_oneshot_run {
    nasc_space *space;
    nasc_journal *journal;
    const char *state_path;
    const nasc_dataset *train;
    /* enas-rnn: the text (its training split trains, its validation split
     * scores: reward = 1 / perplexity per character) */
    const nasc_corpus *text;
    /* each strategy's own options; it reads its own (enas: nasc_enas_options_for) */
    nasc_enas_options enas;
    nasc_smash_options smash;
    const char *const *set_keys; /* skeleton overrides applied to every child */
    const char *const *set_vals;
    int n_set;
    void (*progress)(void *ud, const nasc_oneshot_progress *p);
    void *ud;
    volatile sig_atomic_t *stop; /* checked between steps */
    /* out: figures of the run */
    int64_t store_bytes;         /* the shared store's tensors at the end (weights, optimizer state, controller) */
    int64_t store_tensors;
} nasc_oneshot_run;

/* The one-shot strategy `strategy` of the strategy table on r: NASC_EINPUT
 * naming the spaces it supports when r->space is not one of them, and for
 * a strategy that is not one-shot. */
nasc_status nasc_oneshot_search(nasc_ctx *ctx, const char *strategy, nasc_oneshot_run *r);
/* NASC_OK when the one-shot strategy supports the space (by name), else
 * NASC_EINPUT naming the spaces it supports. */
nasc_status nasc_oneshot_check(nasc_ctx *ctx, const char *strategy, const char *space);

/* ENAS (the enas row of the table). */
nasc_status nasc_enas_search(nasc_ctx *ctx, nasc_oneshot_run *r);
/* SMASH (the smash row): H trained on a random architecture per minibatch,
 * then candidates and perturbations of the best scored with generated
 * weights on the validation split. */
nasc_status nasc_smash_search(nasc_ctx *ctx, nasc_oneshot_run *r);
/* Validation accuracy of child d of the smash space with the weights that
 * H of a SMASH store (RUN/oneshot.nasc, loaded) generates, on images
 * [begin, end) of ds in order, in full batches, batch norms on batch
 * statistics (as the search scores its candidates). Tensors of d that the
 * store lacks (a batch norm of a width never sampled) are added,
 * initialised from the search's seed. */
nasc_status nasc_smash_evaluate(nasc_ctx *ctx, const nasc_space *sp, nasc_param_store *store, const uint32_t *d,
                                const nasc_dataset *ds, int64_t begin, int64_t end, int batch, int threads,
                                double *acc);

/* Accuracy of child d of sp with the shared weights of a one-shot store
 * (RUN/oneshot.nasc, loaded) on images [begin, end) of ds, in full
 * batches, batch norms on batch statistics as during the search. Tensors
 * of the child that the store lacks (never sampled) are added, initialised
 * from seed as the search would have. */
nasc_status nasc_enas_evaluate(nasc_ctx *ctx, const nasc_space *sp, nasc_param_store *store, uint64_t seed,
                               const uint32_t *d, const nasc_dataset *ds, int64_t begin, int64_t end, int batch,
                               int threads, double *acc);

/* ------------------------------------------------------------------ */
/* After the budget (search/final.c)                                   */
/* ------------------------------------------------------------------ */

/* The best trial's architecture trained from scratch and written out into
 * dir: best.yaml, best.nir (text IR), best.nasc (weights; the training
 * resumes from it when it is there), best.onnx, best-cells.svg (graphviz;
 * best-cells.dot when `dot` is missing) and search.svg (reward per trial
 * and the running best). */
typedef struct nasc_search_final_options {
    const char *dir;
    const nasc_dataset *train, *test;
    /* A recurrent best architecture (a language model): trained on this
     * text as the evaluator does (steps, Adam at lr, clip 5), scored in
     * bits per character on its validation and test splits; best.onnx is
     * its one-step model (tokens and state in, logits and state out). */
    const nasc_corpus *text;
    int steps;
    int epochs;
    int64_t val_size;
    int batch;
    float lr;
    uint64_t seed;
    int threads;
    const char *const *set_keys;
    const char *const *set_vals;
    int n_set;
    /* Train with nasc_train_final_recipe (DARTS's final training: its batch,
     * learning rate, augmentation, auxiliary head, drop-path, clipping)
     * instead of batch and lr; cutout at most the image side. */
    bool final_recipe;
    nasc_train_cb progress; /* per step and epoch of the final training; may be NULL */
    void *ud;
} nasc_search_final_options;

typedef struct nasc_search_final_result {
    int64_t best_index;
    double best_reward;          /* validation accuracy during the search */
    float val_acc, test_acc, test_loss; /* after the final training */
    float val_loss;              /* language models: nats per character (val_acc, test_acc: next character) */
    int64_t params, macs;
    char cells_picture[32];      /* "best-cells.svg" or "best-cells.dot" */
    char note[256];              /* a warning for the summary ("" when none) */
} nasc_search_final_result;

nasc_status nasc_search_finish(nasc_ctx *ctx, const nasc_space *sp, const nasc_journal *j,
                               const nasc_search_final_options *o, nasc_search_final_result *out);

/* search.svg alone (also written while the search runs). */
nasc_status nasc_search_plot(nasc_ctx *ctx, const nasc_journal *j, const char *path);

#endif /* NASC_SEARCH_H */
