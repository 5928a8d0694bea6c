/* train.c - `nasc train`: train a model on Fashion-MNIST (or IDX files),
 * with a checkpoint per epoch, a metrics log and a curve. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "nasc_export.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc train MODEL [--data fashion-mnist|DIR] [--epochs E] [--batch B] [--lr LR]\n"
          "                  [--seed S] [--threads T] [--out DIR] [--resume] [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_train_help(FILE *out) {
    fputs("nasc train - train a model in process on the CPU (oneDNN)\n\n", out);
    usage(out);
    fputs("\nTrains MODEL (YAML, text IR) with SGD-Nesterov (or Adam), a linear warm-up\n"
          "and a cosine learning-rate schedule, holding out the last --val-size\n"
          "training images for validation. Prints progress (a bar on a terminal, log\n"
          "lines otherwise), then the validation and test accuracy. Writes into --out:\n"
          "checkpoint.nasc (weights, optimizer state; replaced atomically after every\n"
          "epoch), metrics.csv (one line per epoch), curve.svg and model.nir.\n"
          "Ctrl-C stops after the current step; the last finished epoch is kept and\n"
          "--resume continues from it.\n\n"
          "Options:\n"
          "  --data SPEC         fashion-mnist (Debian's dataset-fashion-mnist, the\n"
          "                      default) or a directory of IDX files\n"
          "  --epochs E          epochs (default 10)\n"
          "  --batch B           batch size (default 64)\n"
          "  --lr LR             peak learning rate (default 0.05 for SGD, 0.001 Adam)\n"
          "  --optim sgd|adam    optimizer (default sgd: momentum 0.9, Nesterov)\n"
          "  --weight-decay WD   L2 on weight tensors (default 3e-4 for SGD)\n"
          "  --warmup E          warm-up epochs (default 1)\n"
          "  --seed S            initialisation, shuffling, augmentation (default 1)\n"
          "  --threads T         threads (default: all cores)\n"
          "  --val-size K        validation images held out (default 10000; 0 none)\n"
          "  --train-subset K    train on the first K images only\n"
          "  --max-steps K       stop after K steps (quick checks)\n"
          "  --crop-pad P        random crops after padding by P pixels (default off)\n"
          "  --flip              random horizontal flips\n"
          "  --cutout S          cutout squares of side S (default off)\n"
          "  --out DIR           output directory (default runs/<model name>)\n"
          "  --resume            continue the checkpoint in --out\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExamples:\n"
          "  nasc train models/baseline-cnn.yaml --epochs 3\n"
          "  nasc train models/nasnet-a.yaml --epochs 15 --out runs/nasnet\n",
          out);
}

/* ------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct run {
    nasc_ctx *ctx;
    const char *out;
    const char *ckpt;
    nasc_param_store *store;
    bool tty;
    double last_log;
    /* curve */
    double *ep, *tl, *ta, *va;
    int n_ep, cap_ep;
    FILE *csv;
} run;

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static nasc_status write_curve(run *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/curve.svg", r->out);
    nasc_plot_series s[3] = {
        {"train loss", r->ep, r->tl, r->n_ep, 0, false},
        {"train accuracy", r->ep, r->ta, r->n_ep, 1, false},
        {"validation accuracy", r->ep, r->va, r->n_ep, 1, false},
    };
    nasc_plot p = {0};
    p.title = "training";
    p.xlabel = "epoch";
    p.ylabel = "loss";
    p.y2label = "accuracy";
    p.series = s;
    p.n_series = 3;
    nasc_buf b;
    nasc_buf_init(&b, r->ctx);
    nasc_status st = nasc_svg_plot(&p, &b);
    if (!st) {
        FILE *f = fopen(path, "w");
        if (!f || fwrite(b.data, 1, b.len, f) != b.len) st = nasc_error(r->ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot write");
        if (f && fclose(f) != 0 && !st) st = nasc_error(r->ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot write");
    }
    nasc_buf_free(&b);
    return st;
}

static nasc_status on_progress(void *ud, const nasc_train_progress *p) {
    run *r = ud;
    char eta[32];
    fmt_time(p->eta_s, eta, sizeof eta);
    if (!p->epoch_end) {
        if (r->tty) {
            int width = 24, fill = (int)(width * p->step / (p->steps ? p->steps : 1));
            char bar[32];
            for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
            bar[width] = 0;
            fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s  ", p->epoch + 1,
                    p->epochs, bar, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, p->images_per_s,
                    eta);
        } else if (p->step == p->steps || (double)p->step / (double)p->steps - r->last_log >= 0.25) {
            r->last_log = (double)p->step / (double)p->steps;
            fprintf(stderr, "epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s\n", p->epoch + 1,
                    p->epochs, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, p->images_per_s, eta);
        }
        if (interrupted)
            return nasc_error(r->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "interrupted at step %lld of epoch %d; the checkpoint keeps the last finished epoch "
                              "(continue with --resume)",
                              (long long)p->step, p->epoch + 1);
        return NASC_OK;
    }
    r->last_log = 0;
    if (r->tty) fputc('\n', stderr);
    fprintf(stderr, "epoch %d/%d done: train loss %.4f acc %.2f%%, validation loss %.4f acc %.2f%%\n", p->epoch + 1,
            p->epochs, p->loss, 100 * p->acc, p->val_loss, 100 * p->val_acc);
    /* nothing lost on a crash: checkpoint and log after every epoch */
    nasc_status st = nasc_params_save(r->store, r->ckpt);
    if (st) return st;
    if (r->csv) {
        fprintf(r->csv, "%d,%.6f,%.6f,%.6f,%.6f,%.1f\n", p->epoch + 1, p->loss, p->acc, p->val_loss, p->val_acc,
                p->images_per_s);
        fflush(r->csv);
    }
    if (r->n_ep == r->cap_ep) {
        int nc = r->cap_ep ? 2 * r->cap_ep : 32;
        double **arrs[4] = {&r->ep, &r->tl, &r->ta, &r->va};
        for (int i = 0; i < 4; i++) {
            double *q = nasc_realloc(r->ctx, *arrs[i], (size_t)nc * sizeof **arrs[i]);
            if (!q) return NASC_ENOMEM;
            *arrs[i] = q;
        }
        r->cap_ep = nc;
    }
    r->ep[r->n_ep] = p->epoch + 1;
    r->tl[r->n_ep] = p->loss;
    r->ta[r->n_ep] = p->acc;
    r->va[r->n_ep] = p->val_acc;
    r->n_ep++;
    return write_curve(r);
}

static int parse_long(nasc_cli_args *a, const char *opt, const char *v, long lo, long hi, long *out) {
    if (!v) return 0;
    if (!nasc_cli_parse_int(v, lo, hi, out))
        return nasc_cli_usage_error(a, "%s wants an integer in [%ld, %ld], got '%s'", opt, lo, hi, v);
    return 0;
}

int nasc_cli_train(int argc, char **argv) {
    nasc_cli_args a;
    nasc_cli_model mo = {0};
    const char *data = "fashion-mnist", *epochs = NULL, *batch = NULL, *lr = NULL, *seed = NULL, *threads = NULL;
    const char *out = NULL, *optim = "sgd", *wd = NULL, *warmup = NULL, *val = NULL, *subset = NULL, *maxs = NULL;
    const char *crop = NULL, *cutout = NULL;
    bool resume = false, flip = false;
    nasc_cli_args_init(&a, argc, argv, usage);
    while (a.i < argc) {
        int r;
        const char *pos;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_train_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_model_opt(&a, &mo)) != 0 || (r = nasc_cli_value_opt(&a, "--data", NULL, &data)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--epochs", NULL, &epochs)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--batch", NULL, &batch)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--lr", NULL, &lr)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--seed", NULL, &seed)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--threads", NULL, &threads)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--out", "-o", &out)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--optim", NULL, &optim)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--weight-decay", NULL, &wd)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--warmup", NULL, &warmup)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--val-size", NULL, &val)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--train-subset", NULL, &subset)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--max-steps", NULL, &maxs)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--crop-pad", NULL, &crop)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--cutout", NULL, &cutout)) != 0 ||
            (r = nasc_cli_flag(&a, "--resume")) != 0 || (r = nasc_cli_flag(&a, "--flip")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            if (strcmp(argv[a.i - 1], "--resume") == 0) resume = true;
            if (strcmp(argv[a.i - 1], "--flip") == 0) flip = true;
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

    nasc_train_options to = nasc_train_options_default();
    long v;
    double d;
    if (strcmp(optim, "adam") == 0) {
        to.optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
        to.lr = 1e-3f;
    } else if (strcmp(optim, "sgd") != 0) {
        return nasc_cli_usage_error(&a, "--optim must be sgd or adam, got '%s'", optim);
    }
    if (parse_long(&a, "--epochs", epochs, 1, 100000, &v)) return NASC_EXIT_USAGE;
    if (epochs) to.epochs = (int)v;
    if (parse_long(&a, "--batch", batch, 1, 65536, &v)) return NASC_EXIT_USAGE;
    if (batch) to.batch = (int)v;
    if (parse_long(&a, "--seed", seed, 0, 0x7fffffffL, &v)) return NASC_EXIT_USAGE;
    if (seed) to.seed = (uint64_t)v;
    if (parse_long(&a, "--threads", threads, 0, 1024, &v)) return NASC_EXIT_USAGE;
    if (threads) to.threads = (int)v;
    if (parse_long(&a, "--warmup", warmup, 0, 100000, &v)) return NASC_EXIT_USAGE;
    if (warmup) to.warmup_epochs = (int)v;
    if (parse_long(&a, "--val-size", val, 0, 1L << 40, &v)) return NASC_EXIT_USAGE;
    if (val) to.val_size = v;
    if (parse_long(&a, "--train-subset", subset, 1, 1L << 40, &v)) return NASC_EXIT_USAGE;
    if (subset) to.train_subset = v;
    if (parse_long(&a, "--max-steps", maxs, 1, 1L << 40, &v)) return NASC_EXIT_USAGE;
    if (maxs) to.max_steps = v;
    if (parse_long(&a, "--crop-pad", crop, 0, 64, &v)) return NASC_EXIT_USAGE;
    if (crop) to.crop_pad = (int)v;
    if (parse_long(&a, "--cutout", cutout, 0, 1024, &v)) return NASC_EXIT_USAGE;
    if (cutout) to.cutout = (int)v;
    to.flip = flip;
    if (lr) {
        if (!nasc_cli_parse_float(lr, 1e-9, 100, &d)) return nasc_cli_usage_error(&a, "--lr wants a number in [1e-9, 100], got '%s'", lr);
        to.lr = (float)d;
    }
    if (wd) {
        if (!nasc_cli_parse_float(wd, 0, 1, &d)) return nasc_cli_usage_error(&a, "--weight-decay wants a number in [0, 1], got '%s'", wd);
        to.optim.weight_decay = (float)d;
    }

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_cli_net net;
    int rc = nasc_cli_load_prim(&ctx, &mo, &net);
    if (rc) return rc;

    /* the output directory */
    char outbuf[4096], ckpt[4200], path[4200];
    if (!out) {
        const char *base = strrchr(mo.path, '/');
        base = base ? base + 1 : mo.path;
        size_t n = strcspn(base, ".");
        snprintf(outbuf, sizeof outbuf, "runs/%.*s", (int)n, base);
        out = outbuf;
    }
    rc = nasc_cli_mkdirs(&ctx, out);
    if (rc) {
        nasc_cli_net_free(&net);
        return rc;
    }
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.nasc", out);

    nasc_param_store *store = NULL;
    if (access(ckpt, F_OK) == 0) {
        if (!resume) {
            nasc_error(&ctx, NASC_EINPUT, ckpt, NASC_NOLOC,
                       "a checkpoint is already there; pass --resume to continue it or choose another --out");
            nasc_cli_net_free(&net);
            return nasc_cli_fail(&ctx);
        }
        if (nasc_params_load(&ctx, ckpt, &store) != NASC_OK) {
            nasc_cli_net_free(&net);
            return nasc_cli_fail(&ctx);
        }
        rc = nasc_cli_check_weights(&ctx, &net, store, ckpt);
        if (rc) {
            nasc_params_destroy(store);
            nasc_cli_net_free(&net);
            return rc;
        }
        const char *e = nasc_params_meta(store, "train/epoch");
        fprintf(stderr, "resuming %s after epoch %s\n", ckpt, e ? e : "0");
    } else {
        if (resume) fprintf(stderr, "nasc train: no checkpoint in %s yet; starting from scratch\n", out);
        store = nasc_params_create(&ctx);
        if (!store || nasc_params_set_meta(store, "model/hash", net.hash) ||
            nasc_params_set_meta(store, "model/path", mo.path)) {
            nasc_params_destroy(store);
            nasc_cli_net_free(&net);
            return nasc_cli_fail(&ctx);
        }
    }
    /* the model as text IR, for the record */
    snprintf(path, sizeof path, "%s/model.nir", out);
    {
        nasc_buf b;
        nasc_buf_init(&b, &ctx);
        if (nasc_text_print(net.loaded, &b) == NASC_OK) {
            FILE *f = fopen(path, "w");
            if (f) {
                fwrite(b.data, 1, b.len, f);
                fclose(f);
            }
        }
        nasc_buf_free(&b);
    }

    nasc_dataset train = {0}, test = {0};
    fprintf(stderr, "loading %s ...\n", data);
    rc = nasc_cli_load_data(&ctx, data, &train, &test);
    if (rc) {
        nasc_params_destroy(store);
        nasc_cli_net_free(&net);
        return rc;
    }
    nasc_cost cost;
    if (nasc_cost_compute(net.prim, &cost) == NASC_OK) {
        char p1[32], p2[32];
        nasc_cli_fmt_int(cost.params, p1, sizeof p1);
        nasc_cli_fmt_si(cost.macs, p2, sizeof p2);
        fprintf(stderr, "%s: %s parameters, %s multiply-adds per image; %lld training images (%lld held out), %d epochs\n",
                mo.path, p1, p2, (long long)(train.n - to.val_size), (long long)to.val_size, to.epochs);
        nasc_cost_free(net.prim, &cost);
    }

    run r = {0};
    r.ctx = &ctx;
    r.out = out;
    r.ckpt = ckpt;
    r.store = store;
    r.tty = isatty(2);
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    bool fresh = access(path, F_OK) != 0;
    r.csv = fopen(path, "a");
    if (r.csv && fresh) fputs("epoch,train_loss,train_acc,val_loss,val_acc,images_per_s\n", r.csv);
    to.progress = on_progress;
    to.ud = &r;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);

    nasc_train_result res;
    nasc_status st = nasc_train(&ctx, net.prim, store, &train, &to, &res);
    sigaction(SIGINT, &old, NULL);
    if (r.tty && st) fputc('\n', stderr);
    float test_acc = NAN, test_loss = NAN;
    if (!st) st = nasc_evaluate(&ctx, net.prim, store, &test, 0, test.n, to.batch, to.threads, &test_acc, &test_loss);
    if (!st) {
        printf("model %s\n", mo.path);
        const char *done = nasc_params_meta(store, "train/epoch"); /* unset when no epoch finished */
        printf("epochs %d (%d this run), %.1f s, %.0f images/s\n", done ? (int)strtol(done, NULL, 10) : 0,
               res.epochs_run, res.seconds, res.images_per_s);
        if (res.epochs_run) printf("train loss %.4f, accuracy %.2f%%\n", res.train_loss, 100 * res.train_acc);
        if (to.val_size > 0) {
            float va = res.val_acc, vl = res.val_loss;
            if (res.epochs_run == 0)
                st = nasc_evaluate(&ctx, net.prim, store, &train, train.n - to.val_size, train.n, to.batch, to.threads,
                                   &va, &vl);
            if (!st) printf("validation accuracy %.2f%% (loss %.4f, last %lld training images)\n", 100 * va, vl,
                            (long long)to.val_size);
        }
        if (!st) printf("test accuracy %.2f%% (loss %.4f, %lld images)\n", 100 * test_acc, test_loss, (long long)test.n);
        if (!st) st = nasc_params_save(store, ckpt);
        if (!st) printf("checkpoint %s\ncurve %s/curve.svg\n", ckpt, out);
    }
    if (r.csv) fclose(r.csv);
    nasc_free(&ctx, r.ep);
    nasc_free(&ctx, r.tl);
    nasc_free(&ctx, r.ta);
    nasc_free(&ctx, r.va);
    nasc_dataset_free(&ctx, &train);
    nasc_dataset_free(&ctx, &test);
    nasc_params_destroy(store);
    nasc_cli_net_free(&net);
    if (st) return nasc_cli_fail(&ctx);
    return NASC_EXIT_OK;
}
