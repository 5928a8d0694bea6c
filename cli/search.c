/* search.c - `nasc search`: run a search into a run directory, continue a
 * killed one, and train, export and draw the best architecture. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
          "--final-epochs and exported.\n\n"
          "The run directory RUN holds:\n"
          "  config.txt       the options that define the search (--resume checks them)\n"
          "  journal.jsonl    one record per trial, appended and fsynced\n"
          "  strategy.nasc    the strategy's state (replaced atomically per trial)\n"
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
          "  --budget N           trials in all\n"
          "  --epochs-per-trial E epochs per child (default 1)\n"
          "  --train-subset K     train children on the first K images (default 10000;\n"
          "                       0 all of the training split)\n"
          "  --val-size K         validation images (default 5000)\n"
          "  --time-limit SEC     a child training longer fails (default none)\n"
          "  --final-epochs F     epochs of the final training (default 10)\n"
          "  --batch B            batch size (default 64)\n"
          "  --lr LR              peak learning rate, SGD-Nesterov (default 0.05)\n"
          "  --seed S             strategy, initialisation, shuffling (default 1)\n"
          "  --threads T          threads (default: all cores)\n"
          "  --data SPEC          fashion-mnist (default) or a directory of IDX files\n"
          "  --out RUN            the run directory (required)\n"
          "  --resume             continue the search in RUN\n"
          "  --set KEY=VALUE      skeleton override for every child (repeatable):\n"
          "                       channels, cells_per_stage, stages, ...\n"
          "  -h, --help           this help\n"
          "\nSearch spaces (`nasc space S` shows one; docs/search-spaces.md):\n",
          out);
    nasc_cli_registry_help(nasc_cli_spaces, out, 15);
    fputs("\nStrategies (docs/strategies.md):\n", out);
    nasc_cli_registry_help(nasc_cli_strategies, out, 15);
    fputs("\nExamples:\n"
          "  nasc search --space enas-micro --strategy evolution --budget 20 --out runs/s1\n"
          "  nasc search --space nasrl --strategy reinforce --budget 50 --out runs/s2 --resume\n",
          out);
}

/* ------------------------------------------------------------------ */

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig) {
    (void)sig;
    stop_flag = 1;
}

typedef struct progress_state {
    nasc_ctx *ctx;
    double t0;
    int64_t first; /* trials in the journal when this process started */
    bool tty;
    double last_log;
} progress_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_trial(void *ud, const nasc_search_progress *p) {
    progress_state *ps = ud;
    const nasc_trial *t = p->trial;
    int64_t done = t->index + 1 - ps->first;
    double dt = now_s() - ps->t0;
    char eta[32], pr[32], mc[32];
    fmt_time(done > 0 ? dt / (double)done * (double)(p->budget - t->index - 1) : 0, eta, sizeof eta);
    nasc_cli_fmt_si(t->params, pr, sizeof pr);
    nasc_cli_fmt_si(t->macs, mc, sizeof mc);
    char rw[32], best[48];
    if (isfinite(t->reward))
        snprintf(rw, sizeof rw, "%.2f%%", 100 * t->reward);
    else
        snprintf(rw, sizeof rw, "-");
    if (p->best_index >= 0)
        snprintf(best, sizeof best, "%.2f%% (#%lld)", 100 * p->best_reward, (long long)p->best_index);
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
        fprintf(stderr, "final training: epoch %d/%d: train loss %.4f acc %.2f%%, validation acc %.2f%%\n", p->epoch + 1,
                p->epochs, p->loss, 100 * p->acc, 100 * p->val_acc);
        ps->last_log = 0;
    } else {
        char eta[32];
        fmt_time(p->eta_s, eta, sizeof eta);
        double done = (double)p->step / (double)(p->steps ? p->steps : 1);
        if (ps->tty)
            fprintf(stderr, "\rfinal training: epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% ETA %s  ", p->epoch + 1,
                    p->epochs, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, eta);
        else if (done - ps->last_log >= 0.25) { /* a log line per quarter epoch when not on a terminal */
            ps->last_log = done;
            fprintf(stderr, "final training: epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% ETA %s\n", p->epoch + 1,
                    p->epochs, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, eta);
        }
    }
    if (stop_flag)
        return nasc_error(ps->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "interrupted");
    return NASC_OK;
}

/* ------------------------------------------------------------------ */

static int parse_long(nasc_cli_args *a, const char *opt, const char *v, long lo, long hi, long *out) {
    if (!v) return 0;
    if (!nasc_cli_parse_int(v, lo, hi, out))
        return nasc_cli_usage_error(a, "%s wants an integer in [%ld, %ld], got '%s'", opt, lo, hi, v);
    return 0;
}

typedef struct opts {
    const char *space, *strategy, *out, *data;
    long budget, epochs, subset, val, final_epochs, batch, seed, threads, blocks, layers;
    double lr, time_limit;
    bool resume;
    nasc_cli_model mo; /* only the --set overrides */
} opts;

static int parse(int argc, char **argv, opts *o) {
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    const char *budget = NULL, *epochs = NULL, *subset = NULL, *val = NULL, *fin = NULL, *batch = NULL, *seed = NULL;
    const char *threads = NULL, *blocks = NULL, *layers = NULL, *lr = NULL, *tl = NULL;
    memset(o, 0, sizeof *o);
    o->data = "fashion-mnist";
    while (a.i < argc) {
        int r;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_search_help(stdout);
            return -1;
        }
        if ((r = nasc_cli_model_opt(&a, &o->mo)) != 0 || (r = nasc_cli_value_opt(&a, "--space", NULL, &o->space)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--strategy", NULL, &o->strategy)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--budget", NULL, &budget)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--epochs-per-trial", NULL, &epochs)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--train-subset", NULL, &subset)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--val-size", NULL, &val)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--final-epochs", NULL, &fin)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--batch", NULL, &batch)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--lr", NULL, &lr)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--seed", NULL, &seed)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--threads", NULL, &threads)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--blocks", NULL, &blocks)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--layers", NULL, &layers)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--time-limit", NULL, &tl)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--data", NULL, &o->data)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--out", "-o", &o->out)) != 0 || (r = nasc_cli_flag(&a, "--resume")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            if (strcmp(argv[a.i - 1], "--resume") == 0) o->resume = true;
            continue;
        }
        const char *pos = nasc_cli_positional(&a);
        if (pos) return nasc_cli_usage_error(&a, "unexpected argument '%s'", pos);
        if (a.i >= argc) break;
        return nasc_cli_usage_error(&a, "unknown option '%s'", argv[a.i]);
    }
    if (!o->space) return nasc_cli_usage_error(&a, "missing --space");
    if (!o->strategy) return nasc_cli_usage_error(&a, "missing --strategy");
    if (!budget) return nasc_cli_usage_error(&a, "missing --budget");
    if (!o->out) return nasc_cli_usage_error(&a, "missing --out RUN (the run directory)");
    o->epochs = 1;
    o->subset = 10000;
    o->val = 5000;
    o->final_epochs = 10;
    o->batch = 64;
    o->seed = NASC_DEFAULT_SEED;
    o->lr = 0.05;
    if (parse_long(&a, "--budget", budget, 1, 1000000, &o->budget) ||
        parse_long(&a, "--epochs-per-trial", epochs, 1, 10000, &o->epochs) ||
        parse_long(&a, "--train-subset", subset, 0, 1L << 40, &o->subset) ||
        parse_long(&a, "--val-size", val, 1, 1L << 40, &o->val) ||
        parse_long(&a, "--final-epochs", fin, 1, 100000, &o->final_epochs) ||
        parse_long(&a, "--batch", batch, 1, 65536, &o->batch) ||
        parse_long(&a, "--seed", seed, 0, 0x7fffffffL, &o->seed) ||
        parse_long(&a, "--threads", threads, 0, 1024, &o->threads) ||
        parse_long(&a, "--blocks", blocks, 1, 100, &o->blocks) ||
        parse_long(&a, "--layers", layers, 1, 100, &o->layers))
        return NASC_EXIT_USAGE;
    if (lr && !nasc_cli_parse_float(lr, 1e-9, 100, &o->lr))
        return nasc_cli_usage_error(&a, "--lr wants a number in [1e-9, 100], got '%s'", lr);
    if (tl && !nasc_cli_parse_float(tl, 0, 1e9, &o->time_limit))
        return nasc_cli_usage_error(&a, "--time-limit wants seconds (a number >= 0), got '%s'", tl);
    return 0;
}

/* Everything the run needs, released in one place. */
typedef struct session {
    nasc_ctx ctx;
    nasc_space *space;
    nasc_strategy *strategy;
    nasc_journal *journal;
    nasc_run_config cfg; /* config.txt: the options that define the search */
    nasc_dataset train, test;
    const char *keys[NASC_CLI_MAX_SET], *vals[NASC_CLI_MAX_SET];
} session;

static void session_free(session *s) {
    nasc_run_config_free(&s->cfg);
    nasc_journal_close(s->journal);
    nasc_strategy_destroy(s->strategy);
    nasc_space_destroy(s->space);
    nasc_dataset_free(&s->ctx, &s->train);
    nasc_dataset_free(&s->ctx, &s->test);
}

static int fail(session *s) {
    nasc_cli_fail(&s->ctx);
    session_free(s);
    return NASC_EXIT_INPUT;
}

int nasc_cli_search(int argc, char **argv) {
    opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? NASC_EXIT_OK : rc;

    session s = {0};
    nasc_ctx_init(&s.ctx);
    nasc_ctx *ctx = &s.ctx;
    if (!nasc_cli_registry_find(nasc_cli_spaces, ctx, "search space", o.space) ||
        !nasc_cli_registry_find(nasc_cli_strategies, ctx, "strategy", o.strategy))
        return fail(&s);
    nasc_space_options so = {(int)o.blocks, (int)o.layers};
    if (nasc_space_create(ctx, o.space, &so, &s.space)) return fail(&s);
    for (size_t i = 0; i < o.mo.n_ov; i++) {
        s.keys[i] = o.mo.ov[i].key;
        s.vals[i] = o.mo.ov[i].value;
    }
    /* the overrides must fit a sampled child before any time is spent */
    {
        uint32_t n = nasc_space_count(s.space);
        uint32_t *d = nasc_alloc(ctx, (size_t)(n ? n : 1) * sizeof *d);
        nasc_module *m = NULL;
        nasc_rng r;
        nasc_rng_seed(&r, 0);
        if (!d) return fail(&s);
        nasc_space_sample(s.space, &r, d);
        nasc_status st = nasc_space_decode(s.space, d, &m);
        if (!st) st = nasc_arch_apply_overrides(m, s.keys, s.vals, (int)o.mo.n_ov);
        nasc_module_destroy(m);
        nasc_free(ctx, d);
        if (st) return fail(&s);
    }
    nasc_strategy_options sto = nasc_strategy_options_default();
    sto.seed = (uint64_t)o.seed;
    if (nasc_strategy_create(ctx, o.strategy, nasc_space_decisions(s.space), nasc_space_count(s.space), &sto,
                             &s.strategy))
        return fail(&s);

    /* the run directory */
    if (nasc_cli_mkdirs(ctx, o.out)) {
        session_free(&s);
        return NASC_EXIT_INPUT;
    }
    /* an add that fails is returned again by the check or the write below */
    nasc_run_config *c = &s.cfg;
    nasc_run_config_init(c, ctx);
    nasc_run_config_add(c, "space", "%s", o.space);
    nasc_run_config_add(c, "blocks", "%ld", o.blocks);
    nasc_run_config_add(c, "layers", "%ld", o.layers);
    nasc_run_config_add(c, "strategy", "%s", o.strategy);
    nasc_run_config_add(c, "seed", "%ld", o.seed);
    nasc_run_config_add(c, "epochs_per_trial", "%ld", o.epochs);
    nasc_run_config_add(c, "train_subset", "%ld", o.subset);
    nasc_run_config_add(c, "val_size", "%ld", o.val);
    nasc_run_config_add(c, "batch", "%ld", o.batch);
    nasc_run_config_add(c, "lr", "%.9g", o.lr);
    nasc_run_config_add(c, "time_limit", "%.9g", o.time_limit);
    nasc_run_config_add(c, "data", "%s", o.data);
    {
        nasc_buf sets;
        nasc_buf_init(&sets, ctx);
        for (size_t i = 0; i < o.mo.n_ov; i++)
            nasc_buf_printf(&sets, "%s%s=%s", i ? " " : "", o.mo.ov[i].key, o.mo.ov[i].value);
        if (!sets.oom) nasc_run_config_add(c, "set", "%s", sets.data ? sets.data : "");
        bool oom = sets.oom;
        nasc_buf_free(&sets);
        if (oom) return fail(&s);
    }
    char cfg_path[4200], journal_path[4200], state_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.txt", o.out);
    snprintf(journal_path, sizeof journal_path, "%s/journal.jsonl", o.out);
    snprintf(state_path, sizeof state_path, "%s/strategy.nasc", o.out);
    bool exists = access(cfg_path, F_OK) == 0;
    if (exists && !o.resume) {
        nasc_error(ctx, NASC_EINPUT, o.out, NASC_NOLOC,
                   "a search is already there; pass --resume to continue it or choose another --out");
        return fail(&s);
    }
    if (exists) {
        if (nasc_run_config_check(c, cfg_path)) return fail(&s);
    } else {
        if (o.resume) fprintf(stderr, "nasc search: no search in %s yet; starting a new one\n", o.out);
        if (access(journal_path, F_OK) == 0 || access(state_path, F_OK) == 0) {
            nasc_error(ctx, NASC_EINPUT, cfg_path,
                       NASC_NOLOC, "missing, but the directory holds a journal or strategy state: not a run "
                                   "directory nasc can continue");
            return fail(&s);
        }
        if (nasc_run_config_write(c, cfg_path)) return fail(&s);
    }
    char warning[512];
    if (nasc_journal_open(ctx, journal_path, s.space, o.strategy, &s.journal, warning, sizeof warning))
        return fail(&s);
    if (warning[0]) fprintf(stderr, "warning: %s\n", warning);
    if (access(state_path, F_OK) == 0) {
        nasc_param_store *st = NULL;
        if (nasc_params_load(ctx, state_path, &st)) return fail(&s);
        nasc_status e = nasc_strategy_load(s.strategy, st);
        nasc_params_destroy(st);
        if (e) {
            char msg[600];
            nasc_diag_format(&ctx->diag, msg, sizeof msg);
            nasc_error(ctx, NASC_EINPUT, state_path, NASC_NOLOC, "corrupt strategy state: %s", msg);
            return fail(&s);
        }
    } else if (s.journal->n > 0) {
        fprintf(stderr, "nasc search: %s is missing; the strategy replays the %lld journal records\n", state_path,
                (long long)s.journal->n);
    }
    if (s.journal->n > 0)
        fprintf(stderr, "resuming %s: %lld of %ld trials done\n", o.out, (long long)s.journal->n, o.budget);

    fprintf(stderr, "loading %s ...\n", o.data);
    if (nasc_data_load(ctx, o.data, &s.train, &s.test)) return fail(&s);
    if (o.val >= s.train.n) {
        nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "--val-size %ld leaves no training images (%lld in all)",
                   o.val, (long long)s.train.n);
        return fail(&s);
    }
    fprintf(stderr, "search: space %s (%u decisions, 10^%.1f architectures), strategy %s, budget %ld\n", o.space,
            nasc_space_count(s.space), nasc_space_log10_size(s.space), o.strategy, o.budget);

    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    stop_flag = 0;

    nasc_train_eval_options eo = {0};
    eo.train = &s.train;
    eo.epochs = (int)o.epochs;
    eo.train_subset = o.subset;
    eo.val_size = o.val;
    eo.batch = (int)o.batch;
    eo.lr = (float)o.lr;
    eo.seed = (uint64_t)o.seed;
    eo.threads = (int)o.threads;
    eo.time_limit_s = o.time_limit;
    eo.stop = &stop_flag;
    progress_state ps = {ctx, now_s(), s.journal->n, isatty(2) != 0, 0};
    nasc_search_run run = {0};
    run.space = s.space;
    run.strategy = s.strategy;
    run.journal = s.journal;
    run.state_path = state_path;
    run.budget = o.budget;
    run.eval = nasc_train_evaluator(&eo);
    run.set_keys = s.keys;
    run.set_vals = s.vals;
    run.n_set = (int)o.mo.n_ov;
    run.progress = on_trial;
    run.ud = &ps;
    run.stop = &stop_flag;
    nasc_status st = nasc_search_loop(ctx, &run);
    if (!st) {
        char svg[4200];
        snprintf(svg, sizeof svg, "%s/search.svg", o.out);
        st = nasc_search_plot(ctx, s.journal, svg);
    }
    if (st && stop_flag) {
        sigaction(SIGINT, &old, NULL);
        fprintf(stderr, "nasc search: interrupted after %lld of %ld trials; continue with --resume\n",
                (long long)s.journal->n, o.budget);
        session_free(&s);
        return NASC_EXIT_INPUT;
    }
    if (st) {
        sigaction(SIGINT, &old, NULL);
        return fail(&s);
    }

    /* the search is done: train, export and draw the best */
    int64_t ok = 0, failed = 0, cached = 0;
    for (int64_t i = 0; i < s.journal->n; i++) {
        const char *t = s.journal->trials[i].status;
        ok += strcmp(t, "ok") == 0;
        failed += strcmp(t, "failed") == 0;
        cached += strcmp(t, "cached") == 0;
    }
    fprintf(stderr, "search done: %lld trials (%lld trained, %lld cached, %lld failed); final training of the best for %ld epoch%s\n",
            (long long)s.journal->n, (long long)ok, (long long)cached, (long long)failed, o.final_epochs, o.final_epochs == 1 ? "" : "s");
    nasc_search_final_options fo = {0};
    fo.dir = o.out;
    fo.train = &s.train;
    fo.test = &s.test;
    fo.epochs = (int)o.final_epochs;
    fo.val_size = o.val;
    fo.batch = (int)o.batch;
    fo.lr = (float)o.lr;
    fo.seed = (uint64_t)o.seed;
    fo.threads = (int)o.threads;
    fo.set_keys = s.keys;
    fo.set_vals = s.vals;
    fo.n_set = (int)o.mo.n_ov;
    fo.progress = on_final_step;
    fo.ud = &ps;
    nasc_search_final_result fr;
    st = nasc_search_finish(ctx, s.space, s.journal, &fo, &fr);
    sigaction(SIGINT, &old, NULL);
    if (st && stop_flag) {
        fprintf(stderr, "nasc search: interrupted during the final training; best.nasc keeps the last finished "
                        "epoch (continue with --resume)\n");
        session_free(&s);
        return NASC_EXIT_INPUT;
    }
    if (st) return fail(&s);
    char pr[32], mc[32];
    nasc_cli_fmt_int(fr.params, pr, sizeof pr);
    nasc_cli_fmt_si(fr.macs, mc, sizeof mc);
    printf("\nsearch %s: space %s, strategy %s, %lld trials (%lld trained, %lld cached, %lld failed)\n", o.out, o.space,
           o.strategy, (long long)s.journal->n, (long long)ok, (long long)cached, (long long)failed);
    printf("best trial #%lld: validation accuracy %.2f%% during the search (%ld epoch%s on %ld images)\n",
           (long long)fr.best_index, 100 * fr.best_reward, o.epochs, o.epochs == 1 ? "" : "s", o.subset);
    printf("final training (%ld epoch%s): validation accuracy %.2f%%, test accuracy %.2f%%\n", o.final_epochs,
           o.final_epochs == 1 ? "" : "s", 100 * fr.val_acc, 100 * fr.test_acc);
    printf("best model: %s parameters, %s multiply-adds per image\n", pr, mc);
    printf("  %s/best.onnx\n  %s/best.yaml\n  %s/best.nir\n  %s/best.nasc\n  %s/search.svg\n  %s/%s\n", o.out, o.out,
           o.out, o.out, o.out, o.out, fr.cells_picture);
    if (fr.note[0]) printf("note: %s\n", fr.note);
    session_free(&s);
    return NASC_EXIT_OK;
}
