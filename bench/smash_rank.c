/* smash_rank.c - how well the weights SMASH's hypernetwork generates rank
 * architectures: the correlation that SMASH's whole search relies on.
 *
 *     build/smash_rank RUN [archs] [epochs] [train_subset] [threads]
 *                                              (default 20 1 10000 2)
 *
 * RUN is the run directory of a finished `nasc search --strategy smash
 * --space smash` (its oneshot.nasc, the SMASH store with H, and
 * config.txt: seed, val_size, batch, hyper_batch, layers and data are read
 * from it; runs with --set overrides are not supported).
 *
 * `archs` uniformly random architectures of the run's smash space (seed
 * 777), each
 *   - scored with the weights H generates for it (nasc_smash_evaluate, the
 *     SMASH score) on the whole validation split, in batches of the run's
 *     hyper_batch, batch norms on batch statistics as during the search;
 *   - trained from scratch as a fixed net for `epochs` on the first
 *     `train_subset` training images (SGD, the nasc train defaults without
 *     warm-up, the run's batch) and validated on the same split.
 * Prints both accuracies and the parameters of the fixed net per
 * architecture, Kendall's tau and Spearman's rho between the two columns,
 * the wall time of each phase, and writes RUN/smash-rank.svg (a scatter of
 * the two).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nasc_backend.h"
#include "nasc_export.h"
#include "nasc_frontend.h"
#include "nasc_search.h"

static nasc_ctx ctx;

#define CHECK(x)                                                                                                       \
    do {                                                                                                               \
        if ((x) != NASC_OK) {                                                                                          \
            nasc_diag_print(&ctx.diag, stderr);                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static double now(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct config {
    long seed, val, batch, hyper_batch, layers;
    char data[1024];
} config;

/* The keys of RUN/config.txt this benchmark needs. */
static void read_config(const char *run, config *c) {
    char path[4200], line[2048];
    snprintf(path, sizeof path, "%s/config.txt", run);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "smash_rank: cannot open %s\n", path);
        exit(1);
    }
    c->seed = NASC_DEFAULT_SEED;
    c->val = 5000;
    c->batch = 64;
    c->hyper_batch = 50;
    c->layers = 0;
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *eq = strstr(line, " = ");
        if (!eq) continue;
        *eq = 0;
        const char *v = eq + 3;
        if (strcmp(line, "seed") == 0) c->seed = atol(v);
        if (strcmp(line, "val_size") == 0) c->val = atol(v);
        if (strcmp(line, "batch") == 0) c->batch = atol(v);
        if (strcmp(line, "hyper_batch") == 0) c->hyper_batch = atol(v);
        if (strcmp(line, "layers") == 0) c->layers = atol(v);
        if (strcmp(line, "data") == 0) snprintf(c->data, sizeof c->data, "%s", v);
        if (strcmp(line, "strategy") == 0 && strcmp(v, "smash") != 0) {
            fprintf(stderr, "smash_rank: the run's strategy is %s, not smash\n", v);
            exit(1);
        }
        if (strcmp(line, "set") == 0 && v[0]) {
            fprintf(stderr, "smash_rank: the run used --set %s; not supported here\n", v);
            exit(1);
        }
    }
    fclose(f);
}

/* Validation accuracy of d trained from scratch as a fixed net; its
 * parameters into *params (-1 unknown). */
static double standalone(const nasc_space *sp, const uint32_t *d, const nasc_dataset *train, const config *c,
                         int epochs, long subset, int threads, int64_t *params) {
    nasc_module *arch = NULL, *prim = NULL;
    CHECK(nasc_space_decode(sp, d, &arch));
    CHECK(nasc_lower(arch, &prim));
    nasc_cost cost;
    *params = -1;
    if (nasc_cost_compute(prim, &cost) == NASC_OK) {
        *params = cost.params;
        nasc_cost_free(prim, &cost);
    }
    nasc_param_store *st = nasc_params_create(&ctx);
    CHECK(nasc_params_init(st, prim, (uint64_t)c->seed));
    nasc_train_options to = nasc_train_options_default();
    to.epochs = epochs;
    to.batch = (int)c->batch;
    to.warmup_epochs = 0;
    to.seed = (uint64_t)c->seed;
    to.threads = threads;
    to.val_size = c->val;
    to.train_subset = subset;
    nasc_train_result tr;
    CHECK(nasc_train(&ctx, prim, st, train, &to, &tr));
    nasc_params_destroy(st);
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    return tr.val_acc;
}

/* Average ranks (ties share the mean of their positions). */
static void ranks(const double *v, int n, double *r) {
    for (int i = 0; i < n; i++) {
        int less = 0, same = 0;
        for (int j = 0; j < n; j++) {
            less += v[j] < v[i];
            same += v[j] == v[i];
        }
        r[i] = less + (same + 1) / 2.0;
    }
}

/* Spearman's rho: Pearson's correlation of the average ranks. */
static double spearman(const double *a, const double *b, int n) {
    double *ra = malloc((size_t)n * sizeof *ra), *rb = malloc((size_t)n * sizeof *rb);
    ranks(a, n, ra);
    ranks(b, n, rb);
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) ma += ra[i] / n, mb += rb[i] / n;
    for (int i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    free(ra);
    free(rb);
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

/* Kendall's tau-b. */
static double kendall(const double *a, const double *b, int n) {
    double conc = 0, disc = 0, ta = 0, tb = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double x = a[i] - a[j], y = b[i] - b[j];
            if (x == 0 && y == 0) continue;
            if (x == 0) ta++;
            else if (y == 0) tb++;
            else if ((x > 0) == (y > 0)) conc++;
            else disc++;
        }
    double den = sqrt((conc + disc + ta) * (conc + disc + tb));
    return den > 0 ? (conc - disc) / den : NAN;
}

/* x: SMASH score, y: stand-alone accuracy, both in [0, 1]. */
static void scatter(const char *path, const double *x, const double *y, int n, int epochs, double tau, double rho) {
    double x0 = 1, x1 = 0, y0 = 1, y1 = 0;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]);
        y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
    }
    double px = (x1 - x0) * 0.05 + 1e-3, py = (y1 - y0) * 0.05 + 1e-3;
    x0 -= px, x1 += px, y0 -= py, y1 += py;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "smash_rank: cannot write %s\n", path);
        return;
    }
    const double W = 560, H = 400, L = 60, T = 30, PW = 470, PH = 320;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n", W, H);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", L, T, PW, PH);
    fprintf(f, "<text x=\"%g\" y=\"18\">SMASH score vs stand-alone validation accuracy (%d architectures): "
               "tau %.2f, rho %.2f</text>\n", L - 40, n, tau, rho);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">SMASH score (generated weights): %.1f%% .. "
               "%.1f%%</text>\n", L + PW / 2, T + PH + 35, 100 * x0, 100 * x1);
    fprintf(f, "<text x=\"15\" y=\"%g\" transform=\"rotate(-90 15 %g)\" text-anchor=\"middle\">from scratch (%d "
               "epoch%s): %.1f%% .. %.1f%%</text>\n", T + PH / 2, T + PH / 2, epochs, epochs == 1 ? "" : "s",
            100 * y0, 100 * y1);
    for (int i = 0; i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/>\n", L + PW * (x[i] - x0) / (x1 - x0),
                T + PH * (1 - (y[i] - y0) / (y1 - y0)));
    fputs("</svg>\n", f);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: smash_rank RUN [archs] [epochs] [train_subset] [threads]\n", stderr);
        return 2;
    }
    const char *run = argv[1];
    int archs = argc > 2 ? atoi(argv[2]) : 20, epochs = argc > 3 ? atoi(argv[3]) : 1;
    long subset = argc > 4 ? atol(argv[4]) : 10000;
    int threads = argc > 5 ? atoi(argv[5]) : 2;
    if (archs < 1 || epochs < 1 || subset < 0 || threads < 1) {
        fputs("smash_rank: archs, epochs and threads must be >= 1, train_subset >= 0\n", stderr);
        return 2;
    }
    double t_start = now();
    nasc_ctx_init(&ctx);
    config c;
    read_config(run, &c);
    char path[4200];
    snprintf(path, sizeof path, "%s/oneshot.nasc", run);
    nasc_param_store *store = NULL;
    CHECK(nasc_params_load(&ctx, path, &store));
    const char *strategy = nasc_params_meta(store, "strategy/name"), *space = nasc_params_meta(store, "search/space");
    if (!strategy || strcmp(strategy, "smash") != 0 || !space || strcmp(space, "smash") != 0) {
        fprintf(stderr, "smash_rank: %s is not a SMASH store of the smash space (strategy %s, space %s)\n", path,
                strategy ? strategy : "missing", space ? space : "missing");
        return 1;
    }
    nasc_space_options so = {0};
    so.layers = (int)c.layers;
    nasc_space *sp = NULL;
    CHECK(nasc_space_create(&ctx, "smash", &so, &sp));
    int layers = 0;
    nasc_space_option(sp, &layers);
    nasc_dataset train, test;
    CHECK(nasc_data_load(&ctx, c.data, &train, &test));
    int64_t vb = train.n - c.val;
    uint32_t n = nasc_space_count(sp);
    nasc_rng r;
    nasc_rng_seed(&r, 777);
    double t_load = now() - t_start;

    double *sh = calloc((size_t)archs, sizeof *sh), *sa = calloc((size_t)archs, sizeof *sa);
    uint32_t *d = calloc(n, sizeof *d);
    double t_smash = 0, t_alone = 0;
    printf("smash space, %d layers; SMASH scores on %ld validation images in batches of %ld; stand-alone: %d epoch%s "
           "on %ld images\n",
           layers, c.val, c.hyper_batch, epochs, epochs == 1 ? "" : "s", subset);
    printf("arch  SMASH score  stand-alone val acc      params\n");
    for (int i = 0; i < archs; i++) {
        nasc_space_sample(sp, &r, d);
        double t0 = now();
        CHECK(nasc_smash_evaluate(&ctx, sp, store, d, &train, vb, train.n, (int)c.hyper_batch, threads, &sh[i]));
        double t1 = now();
        int64_t params;
        sa[i] = standalone(sp, d, &train, &c, epochs, subset, threads, &params);
        double t2 = now();
        t_smash += t1 - t0;
        t_alone += t2 - t1;
        printf("%4d  %10.2f%%  %18.2f%%  %10lld\n", i, 100 * sh[i], 100 * sa[i], (long long)params);
        fflush(stdout);
    }
    double tau = kendall(sh, sa, archs), rho = spearman(sh, sa, archs);
    snprintf(path, sizeof path, "%s/smash-rank.svg", run);
    scatter(path, sh, sa, archs, epochs, tau, rho);
    printf("rank correlation over %d random architectures: Kendall tau %.3f, Spearman rho %.3f (%s)\n", archs, tau, rho,
           path);
    printf("wall time: load %.1f s, SMASH scores %.1f s (%.2f s an architecture), stand-alone training %.1f s (%.1f s "
           "an architecture), total %.1f s\n",
           t_load, t_smash, t_smash / archs, t_alone, t_alone / archs, now() - t_start);
    free(sh);
    free(sa);
    free(d);
    nasc_dataset_free(&ctx, &train);
    nasc_dataset_free(&ctx, &test);
    nasc_space_destroy(sp);
    nasc_params_destroy(store);
    return 0;
}
