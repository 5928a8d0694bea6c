/* bench.c - `nasc bench`: training and inference speed of a model, as
 * ratios to the machine's sgemm peak measured in the same run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc bench MODEL [--batch B] [--threads T] [--seconds S] [--profile]\n"
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
          "sgemm peak. Inputs are random; no data set is read.\n\n"
          "Options:\n"
          "  --batch B           training and large-batch inference size (default 64)\n"
          "  --threads T         threads (default: all cores)\n"
          "  --seconds S         time spent on each measurement (default 3)\n"
          "  --profile           per-primitive profile of a training step\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double images_per_s, gflops;
    int64_t steps;
} timing;

/* Run steps until seconds have passed (after two warm-up steps). */
static nasc_status time_net(nasc_net *net, bool train, int batch, const float *x, const int32_t *y,
                            double seconds, timing *t) {
    nasc_net_stats s;
    nasc_net_get_stats(net, &s);
    int64_t flops = s.flops_forward + (train ? s.flops_backward : 0);
    nasc_status st = NASC_OK;
    double t0 = 0;
    int64_t n = 0;
    for (int64_t i = 0; !st; i++) {
        if (i == 2) {
            t0 = now();
            nasc_net_profile_reset(net);
        }
        st = nasc_net_set_input(net, 0, x);
        if (!st) st = nasc_net_forward(net);
        if (!st && train) {
            float loss;
            int ok;
            st = nasc_net_loss(net, y, &loss, &ok);
            if (!st) st = nasc_net_backward(net);
        }
        if (i >= 2) n++;
        if (i >= 4 && now() - t0 >= seconds) break;
    }
    double dt = now() - t0;
    t->steps = n;
    t->images_per_s = (double)n * batch / dt;
    t->gflops = (double)n * (double)flops / dt / 1e9;
    return st;
}

static nasc_status compile(nasc_ctx *ctx, const nasc_module *prim, nasc_param_store *ps, int batch, bool train,
                           int threads, bool profile, nasc_net **net) {
    nasc_net_options o = nasc_net_options_default();
    o.batch = batch;
    o.mode = train ? NASC_MODE_TRAIN : NASC_MODE_INFER;
    o.fuse = !train; /* inference: batch norm folded, relu as a post-op */
    o.threads = threads;
    o.profile = profile;
    return nasc_net_compile(ctx, prim, ps, &o, net);
}

int nasc_cli_bench(int argc, char **argv) {
    nasc_cli_args a;
    nasc_cli_model mo = {0};
    const char *batch = NULL, *threads = NULL, *secs = NULL;
    bool profile = false;
    nasc_cli_args_init(&a, argc, argv, usage);
    while (a.i < argc) {
        int r;
        const char *pos;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_bench_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_model_opt(&a, &mo)) != 0 || (r = nasc_cli_value_opt(&a, "--batch", NULL, &batch)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--threads", NULL, &threads)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--seconds", NULL, &secs)) != 0 || (r = nasc_cli_flag(&a, "--profile")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            if (strcmp(argv[a.i - 1], "--profile") == 0) profile = true;
            continue;
        }
        if ((pos = nasc_cli_positional(&a)) != NULL) {
            if (mo.path) return nasc_cli_usage_error(&a, "one model at a time (got '%s' and '%s')", mo.path, pos);
            mo.path = pos;
            continue;
        }
        if (a.i >= argc) break;
        return nasc_cli_usage_error(&a, "unknown option '%s'", argv[a.i]);
    }
    if (!mo.path) return nasc_cli_usage_error(&a, "missing MODEL");
    long b = 64, t = 0;
    double seconds = 3;
    if (batch && !nasc_cli_parse_int(batch, 1, 65536, &b))
        return nasc_cli_usage_error(&a, "--batch wants an integer in [1, 65536], got '%s'", batch);
    if (threads && !nasc_cli_parse_int(threads, 0, 1024, &t))
        return nasc_cli_usage_error(&a, "--threads wants an integer in [0, 1024], got '%s'", threads);
    if (secs && !nasc_cli_parse_float(secs, 0.01, 3600, &seconds))
        return nasc_cli_usage_error(&a, "--seconds wants a number in [0.01, 3600], got '%s'", secs);

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_cli_net net;
    int rc = nasc_cli_load_prim(&ctx, &mo, &net);
    if (rc) return rc;
    /* the model's own weights (.onnx), else fresh ones */
    nasc_param_store *ps = NULL;
    bool ps_owned = false;
    rc = nasc_cli_net_weights(&ctx, &net, NULL, &ps, &ps_owned);
    if (rc) {
        nasc_cli_net_free(&net);
        return rc;
    }
    /* random inputs of the net's input shape */
    int64_t per = -1;
    for (uint32_t v = 0; v < net.prim->n_values; v++)
        if (net.prim->values[v].kind == NASC_VAL_INPUT) per = nasc_type_numel(&net.prim->values[v].type);
    int64_t classes = net.prim->values[net.prim->outputs[0]].type.dims[1];
    float *x = malloc((size_t)(per > 0 ? per : 1) * (size_t)b * sizeof *x);
    int32_t *y = malloc((size_t)b * sizeof *y);
    nasc_rng rng;
    nasc_rng_seed(&rng, 7);
    for (int64_t i = 0; x && i < per * b; i++) x[i] = nasc_rng_normal(&rng);
    for (long i = 0; y && i < b; i++) y[i] = (int32_t)nasc_rng_below(&rng, (uint64_t)(classes > 0 ? classes : 1));

    nasc_cost cost = {0};
    nasc_cost_compute(net.prim, &cost);
    char s1[32], s2[32];
    nasc_cli_fmt_int(cost.params, s1, sizeof s1);
    nasc_cli_fmt_si(cost.macs, s2, sizeof s2);
    printf("model %s: %s parameters, %s multiply-adds per image\n", mo.path, s1, s2);
    nasc_cost_free(net.prim, &cost);

    double peak = nasc_sgemm_gflops(2048, (int)t);
    printf("sgemm peak (2048^3, %s threads): %.1f GFLOP/s\n", t ? threads : "all", peak);

    nasc_net *tn = NULL, *i1 = NULL, *ib = NULL;
    timing tt = {0}, t1 = {0}, tb = {0};
    nasc_status st = x && y ? NASC_OK : nasc_error(&ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory");
    double c0 = now();
    if (!st) st = compile(&ctx, net.prim, ps, (int)b, true, (int)t, profile, &tn);
    double compile_s = now() - c0;
    if (!st) st = time_net(tn, true, (int)b, x, y, seconds, &tt);
    if (!st) {
        nasc_net_stats s;
        nasc_net_get_stats(tn, &s);
        char ab[32], ub[32];
        nasc_cli_fmt_si(s.arena_bytes, ab, sizeof ab);
        nasc_cli_fmt_si(s.unplanned_bytes, ub, sizeof ub);
        printf("training, batch %ld: %.1f images/s, %.1f GFLOP/s = %.1f%% of the sgemm peak\n", b, tt.images_per_s,
               tt.gflops, 100 * tt.gflops / peak);
        printf("  compile %.2f s; %d forward + %d backward steps, %d reorders; memory %sB planned (%sB unplanned, %.0f%%)\n",
               compile_s, s.n_forward, s.n_backward, s.n_reorders, ab, ub,
               s.unplanned_bytes ? 100.0 * (double)s.arena_bytes / (double)s.unplanned_bytes : 0);
        if (profile) nasc_net_profile_print(tn, stdout);
    }
    nasc_net_destroy(tn);
    tn = NULL;
    if (!st) {
        /* the same shapes again: oneDNN's primitive cache makes this cheap */
        c0 = now();
        st = compile(&ctx, net.prim, ps, (int)b, true, (int)t, false, &tn);
        if (!st) printf("  compile again (same shapes, primitive cache): %.2f s\n", now() - c0);
        nasc_net_destroy(tn);
    }
    if (!st) st = compile(&ctx, net.prim, ps, 1, false, (int)t, false, &i1);
    if (!st) st = time_net(i1, false, 1, x, y, seconds, &t1);
    if (!st)
        printf("inference, batch 1: %.1f images/s, %.1f GFLOP/s = %.1f%% of the sgemm peak\n", t1.images_per_s, t1.gflops,
               100 * t1.gflops / peak);
    nasc_net_destroy(i1);
    if (!st) st = compile(&ctx, net.prim, ps, (int)b, false, (int)t, false, &ib);
    if (!st) st = time_net(ib, false, (int)b, x, y, seconds, &tb);
    if (!st)
        printf("inference, batch %ld: %.1f images/s, %.1f GFLOP/s = %.1f%% of the sgemm peak\n", b, tb.images_per_s,
               tb.gflops, 100 * tb.gflops / peak);
    nasc_net_destroy(ib);
    free(x);
    free(y);
    if (ps_owned) nasc_params_destroy(ps);
    nasc_cli_net_free(&net);
    if (st) return nasc_cli_fail(&ctx);
    return NASC_EXIT_OK;
}
