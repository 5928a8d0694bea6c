/* bench.c - `nasc bench`: training and inference speed of a model, as
 * ratios to the machine's sgemm peak measured in the same run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "nasc_search.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc bench MODEL [--batch B] [--threads T] [--seconds S] [--profile]\n"
          "                  [--nchw] [--onednn-dw] [--parallel-b1] [--no-lanes]\n"
          "                  [--small-pages]\n"
          "                  [--space NAME [--children K]]\n"
          "                  [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_bench_help(FILE *out) {
    fputs("nasc bench - how fast a model trains and runs here\n\n", out);
    usage(out);
    fputs("\nMeasures, in one run: dnnl_sgemm on a 2048^3 product (the machine's\n"
          "practical peak), training steps at batch B (images/s and GFLOP/s of the\n"
          "convolutions and inner products, forward and backward), and inference at\n"
          "batch 1 and batch B. Every GFLOP/s figure is also given as a ratio to the\n"
          "sgemm peak: each measurement is 5 rounds, an sgemm and then steps, and\n"
          "the ratio is the median of the rounds' (a busy machine's speed drifts;\n"
          "the rounds compare like with like). Inputs are random; no data set is\n"
          "read. Compile times: the\n"
          "model's training net, then the same net again; with --space, also K\n"
          "random children of a search space (the first one, then the others,\n"
          "whose layers mostly have shapes an earlier child had).\n\n"
          "Options:\n"
          "  --batch B           training and large-batch inference size (default 64)\n"
          "  --threads T         threads (default: all cores)\n"
          "  --seconds S         time spent stepping a net in each measurement, over\n"
          "                      its rounds (default 3)\n"
          "  --profile           per-primitive profile of a training step and of\n"
          "                      inference at both batch sizes\n"
          "  --nchw              plain nchw activations instead of the blocked layout\n"
          "                      nasc picks (to compare layouts)\n"
          "  --onednn-dw         depthwise convolutions by oneDNN's primitives instead\n"
          "                      of nasc's kernels (to compare kernels)\n"
          "  --parallel-b1       batch-1 inference on all threads (by default a net whose\n"
          "                      convolutions are small runs it on one thread)\n"
          "  --no-lanes          training and batch-B inference as one net on all threads\n"
          "                      (by default one lane per thread: each thread runs a net\n"
          "                      of its own on its slice of the batch)\n"
          "  --small-pages       activations on ordinary pages (by default a large\n"
          "                      activation arena asks the kernel for huge pages)\n"
          "  --space NAME        also time compiling children of this search space\n"
          "                      (training nets at batch B; see `nasc space --list`)\n"
          "  --children K        how many children (default 10)\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
}

typedef struct timing {
    double images_per_s, gflops; /* over every round */
    int64_t steps;
    double peak;                  /* the median of the rounds' sgemm peaks */
    double ratio, ratio_lo, ratio_hi; /* GFLOP/s over the sgemm peak: median, lowest, highest round */
} timing;

/* A measurement is this many rounds, each an sgemm peak and then steps for
 * its share of the time, so that every ratio compares the net with the
 * sgemm in the same second: a shared machine's speed drifts by a third
 * over a minute, which a peak taken once and steps taken later confound
 * with the net's own speed. */
enum { ROUNDS = 5 };

static double median(double *v, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n is ROUNDS */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static nasc_status one_step(nasc_net *net, bool train, const float *x, const int32_t *y) {
    nasc_status st = nasc_net_set_input(net, 0, x);
    if (!st) st = nasc_net_forward(net);
    if (!st && train) {
        float loss;
        int ok;
        st = nasc_net_loss(net, y, &loss, &ok);
        if (!st) st = nasc_net_backward(net);
    }
    return st;
}

/* Two warm-up steps, then ROUNDS rounds: the sgemm peak, then steps until
 * the round's share of seconds has passed (one step at least). */
static nasc_status time_net(nasc_net *net, bool train, int batch, const float *x, const int32_t *y,
                            double seconds, int threads, timing *t) {
    nasc_net_stats s;
    nasc_net_get_stats(net, &s);
    int64_t flops = s.flops_forward + (train ? s.flops_backward : 0);
    nasc_status st = NASC_OK;
    for (int i = 0; i < 2 && !st; i++) st = one_step(net, train, x, y);
    nasc_net_profile_reset(net);
    double peaks[ROUNDS], ratios[ROUNDS], busy = 0;
    int64_t n = 0;
    for (int r = 0; r < ROUNDS && !st; r++) {
        peaks[r] = nasc_sgemm_gflops(2048, threads);
        double t0 = nasc_cli_now(), dt;
        int64_t k = 0;
        do {
            st = one_step(net, train, x, y);
            k++;
            dt = nasc_cli_now() - t0;
        } while (!st && dt < seconds / ROUNDS);
        ratios[r] = peaks[r] > 0 ? (double)k * (double)flops / dt / 1e9 / peaks[r] : 0;
        n += k;
        busy += dt;
    }
    if (st) return st;
    t->steps = n;
    t->images_per_s = (double)n * batch / busy;
    t->gflops = (double)n * (double)flops / busy / 1e9;
    t->peak = median(peaks, ROUNDS);
    t->ratio = median(ratios, ROUNDS);
    t->ratio_lo = ratios[0];
    t->ratio_hi = ratios[ROUNDS - 1];
    return NASC_OK;
}

/* "T images/s, G GFLOP/s = P% of the sgemm peak (...)" for a timing. */
static void print_rate(const char *what, long batch, const timing *t) {
    printf("%s, batch %ld: %.1f images/s, %.1f GFLOP/s = %.1f%% of the sgemm peak\n", what, batch, t->images_per_s,
           t->gflops, 100 * t->ratio);
    printf("  the median of %d rounds, each against an sgemm peak taken just before it (%.0f GFLOP/s, the "
           "median); rounds %.1f%% to %.1f%%\n",
           ROUNDS, t->peak, 100 * t->ratio_lo, 100 * t->ratio_hi);
}

/* What the command line asks for. */
typedef struct bench_opts {
    long batch, threads;
    double seconds;
    bool profile;
    bool nchw;      /* --nchw: plain activations for every net compiled */
    bool onednn_dw; /* --onednn-dw: oneDNN's depthwise primitives */
    bool parallel_b1; /* --parallel-b1: batch-1 inference on all threads */
    bool no_lanes;    /* --no-lanes: batch-B training and inference as one net on all threads */
    bool small_pages; /* --small-pages: no huge-page advice for the activation arenas */
    const char *space; /* --space: also time compiling children of it */
    long children;
} bench_opts;

static nasc_status compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *ps,
                           const bench_opts *bo, int batch, bool train, bool profile, nasc_net **net) {
    nasc_net_options o = nasc_net_options_default();
    o.layout = bo->nchw ? NASC_NET_LAYOUT_NCHW : NASC_NET_LAYOUT_AUTO;
    o.onednn_dw = bo->onednn_dw;
    o.small_pages = bo->small_pages;
    bool all = batch == 1 && !train ? bo->parallel_b1 : bo->no_lanes;
    o.parallel = all ? NASC_NET_PARALLEL_ALL : NASC_NET_PARALLEL_AUTO;
    int threads = (int)bo->threads;
    o.batch = batch;
    o.mode = train ? NASC_MODE_TRAIN : NASC_MODE_INFER;
    o.fuse = true; /* as nasc train and eval compile their nets */
    o.fixed_weights = !train; /* as nasc eval: the store does not change between passes */
    o.threads = threads;
    o.profile = profile;
    return nasc_net_compile(ctx, prim, ps, &o, net);
}


/* Random values for the net's first input and labels below its class
 * count, for batch images (malloc'd; NULL when out of memory). A language
 * model gets token numbers below its class count, and a label for every
 * position of its (N, T, classes) logits. */
static void random_batch(const nasc_module *prim, long batch, float **x, int32_t **y) {
    int64_t per = -1;
    for (uint32_t v = 0; v < prim->n_values && per < 0; v++)
        if (prim->values[v].kind == NASC_VAL_INPUT) per = nasc_type_numel(&prim->values[v].type);
    const nasc_type *out = &prim->values[prim->outputs[0]].type;
    int64_t classes = out->dims[out->rank - 1], rows = 1;
    for (int d = 1; d < out->rank - 1; d++) rows *= out->dims[d];
    bool tokens = out->rank == 3;
    *x = malloc((size_t)(per > 0 ? per : 1) * (size_t)batch * sizeof **x);
    *y = malloc((size_t)rows * (size_t)batch * sizeof **y);
    nasc_rng rng;
    nasc_rng_seed(&rng, 7);
    uint64_t k = (uint64_t)(classes > 0 ? classes : 1);
    for (int64_t i = 0; *x && i < per * batch; i++)
        (*x)[i] = tokens ? (float)nasc_rng_below(&rng, k) : nasc_rng_normal(&rng);
    for (int64_t i = 0; *y && i < rows * batch; i++) (*y)[i] = (int32_t)nasc_rng_below(&rng, k);
}

static void print_cost(const char *path, const nasc_module *prim) {
    nasc_cost cost = {0};
    nasc_cost_compute(prim, &cost);
    char s1[32], s2[32];
    nasc_cli_fmt_int(cost.params, s1, sizeof s1);
    nasc_cli_fmt_si(cost.macs, s2, sizeof s2);
    printf("model %s: %s parameters, %s multiply-adds per image\n", path, s1, s2);
    nasc_cost_free(prim, &cost);
}

/* The lanes line under a rate, when the net runs in lanes. */
static void print_lanes(const nasc_net_stats *ns, long batch) {
    if (ns->n_lanes < 2) return;
    long per = batch / ns->n_lanes;
    printf("  in %d lanes: one net per thread, each on %ld", ns->n_lanes, per);
    if (batch % ns->n_lanes) printf(" or %ld", per + 1);
    printf(" images of the batch (--no-lanes: one net)\n");
}

/* Training steps at the batch size, then the same compile again. */
static nasc_status bench_training(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *ps, const bench_opts *o,
                                  const float *x, const int32_t *y) {
    nasc_net *tn = NULL;
    timing tt = {0};
    double c0 = nasc_cli_now();
    nasc_status st = compile(ctx, prim, ps, o, (int)o->batch, true, o->profile, &tn);
    double compile_s = nasc_cli_now() - c0;
    if (!st) st = time_net(tn, true, (int)o->batch, x, y, o->seconds, (int)o->threads, &tt);
    if (!st) {
        nasc_net_stats s;
        nasc_net_get_stats(tn, &s);
        char ab[32], ub[32];
        nasc_cli_fmt_si(s.arena_bytes, ab, sizeof ab);
        nasc_cli_fmt_si(s.unplanned_bytes, ub, sizeof ub);
        print_rate("training", o->batch, &tt);
        printf("  compile %.3f s; %d forward + %d backward steps, %d reorders; memory %sB planned (%sB unplanned, %.0f%%)\n",
               compile_s, s.n_forward, s.n_backward, s.n_reorders, ab, ub,
               s.unplanned_bytes ? 100.0 * (double)s.arena_bytes / (double)s.unplanned_bytes : 0);
        print_lanes(&s, o->batch);
        if (o->profile) nasc_net_profile_print(tn, stdout);
    }
    nasc_net_destroy(tn);
    tn = NULL;
    if (!st) {
        /* the same shapes again: oneDNN's primitive cache makes this cheap */
        c0 = nasc_cli_now();
        st = compile(ctx, prim, ps, o, (int)o->batch, true, false, &tn);
        if (!st) printf("  compile again (same shapes, primitive cache): %.3f s\n", nasc_cli_now() - c0);
        nasc_net_destroy(tn);
    }
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Compile K random children of a space (seeds 1..K) as training nets:
 * the first, then the median and the slowest of the others. Lowering and
 * parameter initialisation are not counted; the compile is. */
static nasc_status bench_children(nasc_ctx *ctx, nasc_space *sp, const bench_opts *o) {
    nasc_status st = NASC_OK;
    uint32_t n = nasc_space_count(sp);
    uint32_t *d = nasc_alloc(ctx, (n + 1) * sizeof *d);
    double *sec = nasc_alloc(ctx, (size_t)o->children * sizeof *sec);
    if (!d || !sec) st = NASC_ENOMEM;
    for (long k = 0; k < o->children && !st; k++) {
        nasc_rng r;
        nasc_rng_seed(&r, (uint64_t)k + 1);
        nasc_space_sample(sp, &r, d);
        nasc_module *arch = NULL, *prim = NULL;
        nasc_param_store *ps = NULL;
        nasc_net *net = NULL;
        st = nasc_space_decode(sp, d, &arch);
        if (!st) st = nasc_lower(arch, &prim);
        if (!st) st = (ps = nasc_params_create(ctx)) ? NASC_OK : NASC_ENOMEM;
        if (!st) st = nasc_params_init(ps, prim, NASC_DEFAULT_SEED);
        double c0 = nasc_cli_now();
        if (!st) st = compile(ctx, prim, ps, o, (int)o->batch, true, false, &net);
        sec[k] = nasc_cli_now() - c0;
        nasc_net_destroy(net);
        nasc_params_destroy(ps);
        nasc_module_destroy(prim);
        nasc_module_destroy(arch);
    }
    if (!st) {
        printf("compile of a child of space %s (batch %ld, training): first %.3f s", nasc_space_name(sp), o->batch,
               sec[0]);
        if (o->children > 1) {
            qsort(sec + 1, (size_t)o->children - 1, sizeof *sec, cmp_double);
            printf(", then median %.3f s, slowest %.3f s over %ld more", sec[1 + (o->children - 1) / 2],
                   sec[o->children - 1], o->children - 1);
        }
        putchar('\n');
    }
    nasc_free(ctx, d);
    nasc_free(ctx, sec);
    return st;
}

/* Inference at one batch size. */
static nasc_status bench_inference(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *ps, long batch,
                                   const bench_opts *o, const float *x, const int32_t *y) {
    nasc_net *net = NULL;
    timing t = {0};
    nasc_status st = compile(ctx, prim, ps, o, (int)batch, false, o->profile, &net);
    if (!st) st = time_net(net, false, (int)batch, x, y, o->seconds, (int)o->threads, &t);
    if (!st) {
        print_rate("inference", batch, &t);
        nasc_net_stats ns;
        nasc_net_get_stats(net, &ns);
        print_lanes(&ns, batch);
        if (o->profile) nasc_net_profile_print(net, stdout);
    }
    nasc_net_destroy(net);
    return st;
}

int nasc_cli_bench(int argc, char **argv) {
    nasc_cli_model mo = {0};
    bench_opts o = {64, 0, 3, false, false, false, false, false, false, NULL, 10};
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--batch", NULL, NASC_CLI_INT, &o.batch), .lo = 1, .hi = 65536},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &o.threads), .lo = 0, .hi = 1024},
        {NASC_CLI_OPT("--seconds", NULL, NASC_CLI_FLOAT, &o.seconds), .lo = 0.01, .hi = 3600},
        {NASC_CLI_OPT("--profile", NULL, NASC_CLI_FLAG, &o.profile)},
        {NASC_CLI_OPT("--nchw", NULL, NASC_CLI_FLAG, &o.nchw)},
        {NASC_CLI_OPT("--onednn-dw", NULL, NASC_CLI_FLAG, &o.onednn_dw)},
        {NASC_CLI_OPT("--parallel-b1", NULL, NASC_CLI_FLAG, &o.parallel_b1)},
        {NASC_CLI_OPT("--no-lanes", NULL, NASC_CLI_FLAG, &o.no_lanes)},
        {NASC_CLI_OPT("--small-pages", NULL, NASC_CLI_FLAG, &o.small_pages)},
        {NASC_CLI_OPT("--space", NULL, NASC_CLI_STR, &o.space)},
        {NASC_CLI_OPT("--children", NULL, NASC_CLI_INT, &o.children), .lo = 1, .hi = 100000},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_bench_help);
    if (rc != NASC_CLI_GO) return rc;

    /* the model's own weights (.onnx), else fresh ones */
    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &mo, NASC_CLI_ANY_WEIGHTS, NULL);
    if (rc) return rc;
    nasc_space *sp = NULL; /* --space: known before minutes of measuring */
    if (o.space && nasc_space_create(&j.ctx, o.space, NULL, &sp)) {
        rc = nasc_cli_fail(&j.ctx);
        nasc_cli_job_close(&j);
        return rc;
    }
    float *x;
    int32_t *y;
    random_batch(j.net.prim, o.batch, &x, &y);
    print_cost(mo.path, j.net.prim);
    double peak = nasc_sgemm_gflops(2048, (int)o.threads);
    if (o.threads)
        printf("sgemm peak (2048^3, %ld threads): %.1f GFLOP/s\n", o.threads, peak);
    else
        printf("sgemm peak (2048^3, all threads): %.1f GFLOP/s\n", peak);

    nasc_status st = x && y ? NASC_OK : nasc_error(&j.ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory");
    if (!st) st = bench_training(&j.ctx, j.net.prim, j.weights, &o, x, y);
    if (!st) st = bench_inference(&j.ctx, j.net.prim, j.weights, 1, &o, x, y);
    if (!st) st = bench_inference(&j.ctx, j.net.prim, j.weights, o.batch, &o, x, y);
    if (!st && sp) st = bench_children(&j.ctx, sp, &o);
    nasc_space_destroy(sp);
    free(x);
    free(y);
    rc = st ? nasc_cli_fail(&j.ctx) : NASC_EXIT_OK;
    nasc_cli_job_close(&j);
    return rc;
}
