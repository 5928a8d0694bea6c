/* oneshot_rank.c - how well ENAS's shared weights rank architectures, and
 * what its trained controller adds over uniform sampling.
 *
 *     build/oneshot_rank RUN [archs] [epochs] [train_subset] [threads]
 *                                              (default 20 1 10000 2)
 *
 * RUN is the run directory of a finished `nasc search --strategy enas`
 * (its oneshot.nasc, journal.jsonl and config.txt: seed, val_size, batch
 * and data are read from it; runs with --set overrides are not supported).
 *
 * 1. Rank correlation: `archs` uniformly random enas-micro architectures
 *    (seed 777), each scored with the shared weights on the whole
 *    validation split, and each trained from scratch as a fixed net for
 *    `epochs` on the first `train_subset` training images (SGD, the nasc
 *    train defaults without warm-up) and validated on the same split.
 *    Prints both accuracies per architecture, Kendall's tau and Spearman's
 *    rho, and writes RUN/rank.svg (a scatter of the two).
 * 2. Ablation: the run's candidates (sampled by the trained controller) and
 *    as many uniformly random architectures, all scored with the shared
 *    weights on the first 1,000 validation images; prints each group's mean
 *    and best, then trains the best of each group from scratch as above.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct config {
    long seed, val, batch;
    char data[1024];
} config;

/* The keys of RUN/config.txt this benchmark needs. */
static void read_config(const char *run, config *c) {
    char path[4200], line[2048];
    snprintf(path, sizeof path, "%s/config.txt", run);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "oneshot_rank: cannot open %s\n", path);
        exit(1);
    }
    c->seed = NASC_DEFAULT_SEED;
    c->val = 5000;
    c->batch = 64;
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
        if (strcmp(line, "data") == 0) snprintf(c->data, sizeof c->data, "%s", v);
        if (strcmp(line, "set") == 0 && v[0]) {
            fprintf(stderr, "oneshot_rank: the run used --set %s; not supported here\n", v);
            exit(1);
        }
    }
    fclose(f);
}

/* Validation accuracy of d trained from scratch as a fixed net. */
static double standalone(const nasc_space *sp, const uint32_t *d, const nasc_dataset *train, const config *c,
                         int epochs, long subset, int threads) {
    nasc_module *arch = NULL, *prim = NULL;
    CHECK(nasc_space_decode(sp, d, &arch));
    CHECK(nasc_lower(arch, &prim));
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

static void scatter(const char *path, const double *x, const double *y, int n, double tau, double rho) {
    double x0 = 1, x1 = 0, y0 = 1, y1 = 0;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]);
        y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
    }
    double px = (x1 - x0) * 0.05 + 1e-3, py = (y1 - y0) * 0.05 + 1e-3;
    x0 -= px, x1 += px, y0 -= py, y1 += py;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "oneshot_rank: cannot write %s\n", path);
        return;
    }
    const double W = 480, H = 400, L = 60, T = 30, PW = 400, PH = 320;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n", W, H);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", L, T, PW, PH);
    fprintf(f, "<text x=\"%g\" y=\"18\">shared-weight vs stand-alone validation accuracy (%d architectures): "
               "tau %.2f, rho %.2f</text>\n", L - 40, n, tau, rho);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">shared weights: %.1f%% .. %.1f%%</text>\n", L + PW / 2,
            T + PH + 35, 100 * x0, 100 * x1);
    fprintf(f, "<text x=\"15\" y=\"%g\" transform=\"rotate(-90 15 %g)\" text-anchor=\"middle\">from scratch: %.1f%% .. "
               "%.1f%%</text>\n", T + PH / 2, T + PH / 2, 100 * y0, 100 * y1);
    for (int i = 0; i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/>\n", L + PW * (x[i] - x0) / (x1 - x0),
                T + PH * (1 - (y[i] - y0) / (y1 - y0)));
    fputs("</svg>\n", f);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: oneshot_rank RUN [archs] [epochs] [train_subset] [threads]\n", stderr);
        return 2;
    }
    const char *run = argv[1];
    int archs = argc > 2 ? atoi(argv[2]) : 20, epochs = argc > 3 ? atoi(argv[3]) : 1;
    long subset = argc > 4 ? atol(argv[4]) : 10000;
    int threads = argc > 5 ? atoi(argv[5]) : 2;
    nasc_ctx_init(&ctx);
    config c;
    read_config(run, &c);
    char path[4200];
    snprintf(path, sizeof path, "%s/oneshot.nasc", run);
    nasc_param_store *store = NULL;
    CHECK(nasc_params_load(&ctx, path, &store));
    const char *space = nasc_params_meta(store, "search/space");
    nasc_space *sp = NULL;
    CHECK(nasc_space_create(&ctx, space ? space : "enas-micro", NULL, &sp));
    nasc_dataset train, test;
    CHECK(nasc_data_load(&ctx, c.data, &train, &test));
    int64_t vb = train.n - c.val;
    uint32_t n = nasc_space_count(sp);
    nasc_rng r;
    nasc_rng_seed(&r, 777);

    /* 1. rank correlation */
    double *sh = calloc((size_t)archs, sizeof *sh), *sa = calloc((size_t)archs, sizeof *sa);
    uint32_t *d = calloc(n, sizeof *d);
    printf("arch  shared-weight val acc  stand-alone val acc (%d epoch%s on %ld images)\n", epochs,
           epochs == 1 ? "" : "s", subset);
    for (int i = 0; i < archs; i++) {
        nasc_space_sample(sp, &r, d);
        CHECK(nasc_enas_evaluate(&ctx, sp, store, (uint64_t)c.seed, d, &train, vb, train.n, (int)c.batch, threads,
                                 &sh[i]));
        sa[i] = standalone(sp, d, &train, &c, epochs, subset, threads);
        printf("%4d  %20.2f%%  %19.2f%%\n", i, 100 * sh[i], 100 * sa[i]);
        fflush(stdout);
    }
    double tau = kendall(sh, sa, archs), rho = spearman(sh, sa, archs);
    snprintf(path, sizeof path, "%s/rank.svg", run);
    scatter(path, sh, sa, archs, tau, rho);
    printf("rank correlation over %d random architectures: Kendall tau %.3f, Spearman rho %.3f (%s)\n", archs, tau, rho,
           path);

    /* 2. ablation: the trained controller's candidates against uniform samples */
    nasc_journal *j = NULL;
    char warning[256];
    snprintf(path, sizeof path, "%s/journal.jsonl", run);
    CHECK(nasc_journal_open(&ctx, path, sp, "enas", &j, warning, sizeof warning));
    int m = (int)j->n;
    int64_t ve = vb + 1000 < train.n ? vb + 1000 : train.n;
    double best[2] = {-1, -1}, mean[2] = {0, 0};
    uint32_t *bd[2] = {calloc(n, sizeof *d), calloc(n, sizeof *d)};
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < m; i++) {
            if (g == 0)
                memcpy(d, j->trials[i].d, n * sizeof *d);
            else
                nasc_space_sample(sp, &r, d);
            double a;
            CHECK(nasc_enas_evaluate(&ctx, sp, store, (uint64_t)c.seed, d, &train, vb, ve, (int)c.batch, threads, &a));
            mean[g] += a / m;
            if (a > best[g]) {
                best[g] = a;
                memcpy(bd[g], d, n * sizeof *d);
            }
        }
    const char *name[2] = {"controller", "uniform"};
    for (int g = 0; g < 2 && m > 0; g++) {
        double s = standalone(sp, bd[g], &train, &c, epochs, subset, threads);
        printf("%-10s: %d architectures, shared-weight accuracy on %lld validation images: mean %.2f%%, best %.2f%%; "
               "the best trained from scratch: %.2f%% validation accuracy\n",
               name[g], m, (long long)(ve - vb), 100 * mean[g], 100 * best[g], 100 * s);
    }
    nasc_journal_close(j);
    free(bd[0]);
    free(bd[1]);
    free(sh);
    free(sa);
    free(d);
    nasc_dataset_free(&ctx, &train);
    nasc_dataset_free(&ctx, &test);
    nasc_space_destroy(sp);
    nasc_params_destroy(store);
    return 0;
}
