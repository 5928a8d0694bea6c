/* train.c - `nasc train`: train a model on Fashion-MNIST (or IDX files),
 * with a checkpoint per epoch, a metrics log and a curve. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "nasc_export.h"
#include "verbs.h"

#define LN2 0.69314718055994530942 /* nats per bit */

static void usage(FILE *out) {
    fputs("usage: nasc train MODEL [--data fashion-mnist|DIR|fortunes|FILE] [--epochs E] [--batch B]\n"
          "                  [--lr LR] [--bptt T] [--seed S] [--threads T] [--out DIR] [--resume]\n"
          "                  [--set KEY=VALUE]...\n",
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
          "A recurrent MODEL trains as a character language model over bytes (docs/\n"
          "language-models.md): on the first 90% of the text, validated on the next\n"
          "5% after every epoch, tested once on the last 5%, in bits per character;\n"
          "its defaults differ where noted.\n\n"
          "Options:\n"
          "  --data SPEC         fashion-mnist (Debian's dataset-fashion-mnist, the\n"
          "                      default) or a directory of IDX files; language models:\n"
          "                      fortunes (Debian's fortunes package, the default) or\n"
          "                      any file, read as bytes\n"
          "  --bptt T            language models: characters per step, the length\n"
          "                      gradients flow back through (default 35)\n"
          "  --dropout P         language models: variational dropout of what the cell's\n"
          "                      linear maps and the decoder read (default off)\n"
          "  --epochs E          epochs (default 10)\n"
          "  --batch B           batch size (default 64; language models: streams)\n"
          "  --lr LR             peak learning rate (default 0.05 for SGD, 0.001 Adam;\n"
          "                      language models 0.002)\n"
          "  --optim sgd|adam    optimizer (default sgd: momentum 0.9, Nesterov;\n"
          "                      language models adam)\n"
          "  --weight-decay WD   L2 on weight tensors (default 3e-4 for SGD, 0 Adam)\n"
          "  --warmup E          warm-up epochs (default 1; language models 0)\n"
          "  --seed S            initialisation, shuffling, augmentation (default 1)\n"
          "  --threads T         threads (default: all cores)\n"
          "  --val-size K        validation images held out (default 10000; 0 none)\n"
          "  --train-subset K    train on the first K images only\n"
          "  --max-steps K       stop after K steps (quick checks)\n"
          "  --crop-pad P        random crops after padding by P pixels (default off)\n"
          "  --flip              random horizontal flips\n"
          "  --cutout S          cutout squares of side S (default off)\n"
          "  --label-smoothing S smooth the labels: target (1-S) onehot + S/K (default 0)\n"
          "  --grad-clip N       clip the gradients' global L2 norm to N (default off;\n"
          "                      language models 5)\n"
          "  --aux-weight W      add an auxiliary head after the last reduction cell,\n"
          "                      its loss weighted W (default off; cell nets only)\n"
          "  --drop-path P       drop each cell op's output per image with a probability\n"
          "                      rising linearly from 0 to P over the epochs (default off)\n"
          "  --ema D             keep an average of the weights (decay D per step);\n"
          "                      validate it, and keep it as the weights at the end\n"
          "  --restart-epochs T  cosine with warm restarts, first period T epochs\n"
          "  --restart-mult M    each period M times the last (default 1)\n"
          "  --final-recipe      the DARTS final-training recipe, for any flag not given:\n"
          "                      --lr 0.025 --batch 96 --warmup 0 --crop-pad 4 --flip\n"
          "                      --cutout 16 --aux-weight 0.4 --drop-path 0.2\n"
          "                      --grad-clip 5 (docs/training.md)\n"
          "  --out DIR           output directory (default runs/<model name>)\n"
          "  --resume            continue the checkpoint in --out\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExamples:\n"
          "  nasc train models/baseline-cnn.yaml --epochs 3\n"
          "  nasc train models/nasnet-a.yaml --epochs 15 --out runs/nasnet\n"
          "  nasc train models/lstm.yaml --epochs 2      # a character LM on fortunes\n",
          out);
}

/* ------------------------------------------------------------------ */

typedef struct run {
    nasc_ctx *ctx;
    const char *out;
    const char *ckpt;
    nasc_param_store *store;
    bool tty;
    bool lm; /* a language model: losses in bits per character */
    double last_log;
    /* curve */
    double *ep, *tl, *ta, *va;
    int n_ep, cap_ep;
    FILE *csv;
} run;

static nasc_status write_curve(run *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/curve.svg", r->out);
    nasc_plot_series s[3] = {
        {r->lm ? "train bits per character" : "train loss", r->ep, r->tl, r->n_ep, 0, false},
        {r->lm ? "train next-character accuracy" : "train accuracy", r->ep, r->ta, r->n_ep, 1, false},
        {r->lm ? "validation next-character accuracy" : "validation accuracy", r->ep, r->va, r->n_ep, 1, false},
    };
    nasc_plot p = {0};
    p.title = "training";
    p.xlabel = "epoch";
    p.ylabel = r->lm ? "bits per character" : "loss";
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

/* "#####..." for the share of the epoch done: 24 characters and a NUL. */
static void progress_bar(const nasc_train_progress *p, char bar[32]) {
    int width = 24, fill = (int)(width * p->step / (p->steps ? p->steps : 1));
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
}

/* Language models: the progress in bits per character. */
static nasc_status on_progress_lm(run *r, const nasc_train_progress *p, const char *eta) {
    double bpc = p->loss / LN2;
    if (!p->epoch_end) {
        if (r->tty) {
            char bar[32];
            progress_bar(p, bar);
            fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld %.3f bits/char %.0f chars/s ETA %s  ", p->epoch + 1,
                    p->epochs, bar, (long long)p->step, (long long)p->steps, bpc, p->images_per_s, eta);
        } else if (p->step == p->steps || (double)p->step / (double)p->steps - r->last_log >= 0.25) {
            r->last_log = (double)p->step / (double)p->steps;
            fprintf(stderr, "epoch %d/%d step %lld/%lld %.3f bits/char %.0f chars/s ETA %s\n", p->epoch + 1,
                    p->epochs, (long long)p->step, (long long)p->steps, bpc, p->images_per_s, eta);
        }
        return NASC_OK;
    }
    if (r->tty) fputc('\n', stderr);
    fprintf(stderr, "epoch %d/%d done: train %.4f bits/char, validation %.4f bits/char (next character %.2f%%)\n",
            p->epoch + 1, p->epochs, bpc, p->val_loss / LN2, 100 * p->val_acc);
    return NASC_OK;
}

static nasc_status on_progress(void *ud, const nasc_train_progress *p) {
    run *r = ud;
    char eta[32];
    nasc_cli_fmt_duration(p->eta_s, eta, sizeof eta);
    if (r->lm) {
        nasc_status st = on_progress_lm(r, p, eta);
        if (st || !p->epoch_end) {
            if (!st && nasc_cli_interrupted)
                st = nasc_error(r->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                "interrupted at step %lld of epoch %d; the checkpoint keeps the last finished epoch "
                                "(continue with --resume)",
                                (long long)p->step, p->epoch + 1);
            return st;
        }
        r->last_log = 0;
    }
    if (!p->epoch_end) {
        if (r->tty) {
            char bar[32];
            progress_bar(p, bar);
            fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s  ", p->epoch + 1,
                    p->epochs, bar, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, p->images_per_s,
                    eta);
        } else if (p->step == p->steps || (double)p->step / (double)p->steps - r->last_log >= 0.25) {
            r->last_log = (double)p->step / (double)p->steps;
            fprintf(stderr, "epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s\n", p->epoch + 1,
                    p->epochs, (long long)p->step, (long long)p->steps, p->loss, 100 * p->acc, p->images_per_s, eta);
        }
        if (nasc_cli_interrupted)
            return nasc_error(r->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "interrupted at step %lld of epoch %d; the checkpoint keeps the last finished epoch "
                              "(continue with --resume)",
                              (long long)p->step, p->epoch + 1);
        return NASC_OK;
    }
    if (!r->lm) {
        r->last_log = 0;
        if (r->tty) fputc('\n', stderr);
        if (isnan(p->val_acc)) /* --val-size 0: no validation split */
            fprintf(stderr, "epoch %d/%d done: train loss %.4f acc %.2f%% (no validation split)\n", p->epoch + 1,
                    p->epochs, p->loss, 100 * p->acc);
        else
            fprintf(stderr, "epoch %d/%d done: train loss %.4f acc %.2f%%, validation loss %.4f acc %.2f%%\n",
                    p->epoch + 1, p->epochs, p->loss, 100 * p->acc, p->val_loss, 100 * p->val_acc);
    }
    /* language models log and plot bits per character */
    double unit = r->lm ? LN2 : 1;
    /* nothing lost on a crash: checkpoint and log after every epoch */
    nasc_status st = nasc_params_save(r->store, r->ckpt);
    if (st) return st;
    if (r->csv) {
        fprintf(r->csv, "%d,%.6f,%.6f,%.6f,%.6f,%.1f\n", p->epoch + 1, p->loss / unit, p->acc, p->val_loss / unit,
                p->val_acc, p->images_per_s);
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
    r->tl[r->n_ep] = p->loss / unit;
    r->ta[r->n_ep] = p->acc;
    r->va[r->n_ep] = p->val_acc;
    r->n_ep++;
    return write_curve(r);
}

static void run_free(run *r) {
    if (r->csv) fclose(r->csv);
    nasc_free(r->ctx, r->ep);
    nasc_free(r->ctx, r->tl);
    nasc_free(r->ctx, r->ta);
    nasc_free(r->ctx, r->va);
}

/* ------------------------------------------------------------------ */

/* The command line. */
typedef struct train_args {
    nasc_cli_model mo;
    const char *data; /* NULL: the model's default (fashion-mnist, or fortunes for a language model) */
    const char *out;  /* NULL: runs/<model name> */
    bool resume;
    nasc_train_options to;
    long bptt;        /* language models; 0 not given */
    /* given on the command line (language models have other defaults) */
    bool optim_given, lr_given, wd_given, warmup_given, clip_given, batch_given, val_given, subset_given,
        image_recipe;
} train_args;

static int parse_args(int argc, char **argv, train_args *ta) {
    nasc_train_options *to = &ta->to;
    memset(ta, 0, sizeof *ta);
    ta->data = NULL;
    *to = nasc_train_options_default();
    const char *optim = NULL;
    /* -1: not given, so that --final-recipe may set it */
    long epochs = to->epochs, batch = -1, seed = (long)to->seed, threads = to->threads;
    long warmup = -1, val = (long)to->val_size, subset = (long)to->train_subset;
    long maxs = (long)to->max_steps, crop = -1, cutout = -1, restart = 0;
    val = -1, subset = -1;
    bool final = false, flip = false;
    double lr = -1, wd = -1, smooth = 0, clip = -1, aux = -1, drop = -1, ema = 0, mult = 1, dropout = 0;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--data", NULL, NASC_CLI_STR, &ta->data)},
        {NASC_CLI_OPT("--out", "-o", NASC_CLI_STR, &ta->out)},
        {NASC_CLI_OPT("--optim", NULL, NASC_CLI_STR, &optim)},
        {NASC_CLI_OPT("--epochs", NULL, NASC_CLI_INT, &epochs), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--batch", NULL, NASC_CLI_INT, &batch), .lo = 1, .hi = 65536},
        {NASC_CLI_OPT("--seed", NULL, NASC_CLI_INT, &seed), .lo = 0, .hi = 0x7fffffffL},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &threads), .lo = 0, .hi = 1024},
        {NASC_CLI_OPT("--warmup", NULL, NASC_CLI_INT, &warmup), .lo = 0, .hi = 100000},
        {NASC_CLI_OPT("--val-size", NULL, NASC_CLI_INT, &val), .lo = 0, .hi = 1L << 40},
        {NASC_CLI_OPT("--train-subset", NULL, NASC_CLI_INT, &subset), .lo = 1, .hi = 1L << 40},
        {NASC_CLI_OPT("--max-steps", NULL, NASC_CLI_INT, &maxs), .lo = 1, .hi = 1L << 40},
        {NASC_CLI_OPT("--crop-pad", NULL, NASC_CLI_INT, &crop), .lo = 0, .hi = 64},
        {NASC_CLI_OPT("--cutout", NULL, NASC_CLI_INT, &cutout), .lo = 0, .hi = 1024},
        {NASC_CLI_OPT("--lr", NULL, NASC_CLI_FLOAT, &lr), .lo = 1e-9, .hi = 100, .want = "a number in [1e-9, 100]"},
        {NASC_CLI_OPT("--weight-decay", NULL, NASC_CLI_FLOAT, &wd), .lo = 0, .hi = 1},
        {NASC_CLI_OPT("--resume", NULL, NASC_CLI_FLAG, &ta->resume)},
        {NASC_CLI_OPT("--flip", NULL, NASC_CLI_FLAG, &flip)},
        {NASC_CLI_OPT("--label-smoothing", NULL, NASC_CLI_FLOAT, &smooth), .lo = 0, .hi = 0.99},
        {NASC_CLI_OPT("--grad-clip", NULL, NASC_CLI_FLOAT, &clip), .lo = 0, .hi = 1e9},
        {NASC_CLI_OPT("--aux-weight", NULL, NASC_CLI_FLOAT, &aux), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--drop-path", NULL, NASC_CLI_FLOAT, &drop), .lo = 0, .hi = 0.99},
        {NASC_CLI_OPT("--ema", NULL, NASC_CLI_FLOAT, &ema), .lo = 0, .hi = 0.999999},
        {NASC_CLI_OPT("--restart-epochs", NULL, NASC_CLI_INT, &restart), .lo = 1, .hi = 100000},
        {NASC_CLI_OPT("--restart-mult", NULL, NASC_CLI_FLOAT, &mult), .lo = 1, .hi = 100},
        {NASC_CLI_OPT("--final-recipe", NULL, NASC_CLI_FLAG, &final)},
        {NASC_CLI_OPT("--bptt", NULL, NASC_CLI_INT, &ta->bptt), .lo = 1, .hi = NASC_MAX_SEQ_LEN},
        {NASC_CLI_OPT("--dropout", NULL, NASC_CLI_FLOAT, &dropout), .lo = 0, .hi = 0.99},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &ta->mo, NASC_CLI_ONE_MODEL, nasc_cli_train_help);
    if (rc != NASC_CLI_GO) return rc;
    ta->optim_given = optim != NULL, ta->lr_given = lr >= 0, ta->wd_given = wd >= 0, ta->warmup_given = warmup >= 0;
    ta->clip_given = clip >= 0, ta->batch_given = batch >= 0, ta->val_given = val >= 0, ta->subset_given = subset >= 0;
    ta->image_recipe = final || crop >= 0 || cutout >= 0 || flip || smooth > 0 || aux >= 0 || drop >= 0 || ema > 0;
    if (val < 0) val = (long)to->val_size;
    if (subset < 0) subset = 0;
    if (final) nasc_train_final_recipe(to); /* then the flags given override it */
    if (optim && strcmp(optim, "adam") == 0) {
        to->optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
        to->lr = 1e-3f;
    } else if (optim && strcmp(optim, "sgd") != 0) {
        return nasc_cli_usage_error(&a, "--optim must be sgd or adam, got '%s'", optim);
    }
    if (batch >= 0) to->batch = (int)batch;
    if (warmup >= 0) to->warmup_epochs = (int)warmup;
    if (crop >= 0) to->crop_pad = (int)crop;
    if (cutout >= 0) to->cutout = (int)cutout;
    if (aux >= 0) to->aux_weight = (float)aux;
    if (drop >= 0) to->drop_path = (float)drop;
    if (clip >= 0) to->grad_clip = (float)clip;
    if (lr >= 0) to->lr = (float)lr;
    if (flip) to->flip = true;
    to->label_smoothing = (float)smooth;
    to->ema_decay = (float)ema;
    to->restart_epochs = (int)restart;
    to->restart_mult = (float)mult;
    to->rnn_dropout = (float)dropout;
    to->epochs = (int)epochs;
    to->seed = (uint64_t)seed;
    to->threads = (int)threads;
    to->val_size = val;
    to->train_subset = subset;
    to->max_steps = maxs;
    if (wd >= 0) to->optim.weight_decay = (float)wd;
    return NASC_CLI_GO;
}

/* --out, or runs/<the model file's name up to its first '.'>, created. */
static int make_out_dir(nasc_ctx *ctx, train_args *ta, char *buf, size_t size) {
    if (!ta->out) {
        const char *base = strrchr(ta->mo.path, '/');
        base = base ? base + 1 : ta->mo.path;
        size_t n = strcspn(base, ".");
        snprintf(buf, size, "runs/%.*s", (int)n, base);
        ta->out = buf;
    }
    return nasc_cli_mkdirs(ctx, ta->out);
}

/* The checkpoint at ckpt to continue (--resume only), or a new store that
 * names this model. */
static int open_store(nasc_ctx *ctx, const nasc_cli_net *net, const train_args *ta, const char *ckpt,
                      nasc_param_store **out) {
    *out = NULL;
    if (access(ckpt, F_OK) != 0) {
        if (ta->resume) fprintf(stderr, "nasc train: no checkpoint in %s yet; starting from scratch\n", ta->out);
        nasc_param_store *s = nasc_params_create(ctx);
        if (!s || nasc_params_set_meta(s, "model/hash", net->hash) ||
            nasc_params_set_meta(s, "model/path", ta->mo.path)) {
            nasc_params_destroy(s);
            return nasc_cli_fail(ctx);
        }
        *out = s;
        return NASC_EXIT_OK;
    }
    if (!ta->resume) {
        nasc_error(ctx, NASC_EINPUT, ckpt, NASC_NOLOC,
                   "a checkpoint is already there; pass --resume to continue it or choose another --out");
        return nasc_cli_fail(ctx);
    }
    nasc_param_store *s = NULL;
    if (nasc_params_load(ctx, ckpt, &s) != NASC_OK) return nasc_cli_fail(ctx);
    int rc = nasc_cli_check_weights(ctx, net, s, ckpt);
    if (rc) {
        nasc_params_destroy(s);
        return rc;
    }
    const char *e = nasc_params_meta(s, "train/epoch");
    fprintf(stderr, "resuming %s after epoch %s\n", ckpt, e ? e : "0");
    *out = s;
    return NASC_EXIT_OK;
}

/* model.nir in the output directory, for the record (best effort). */
static void write_model_text(nasc_ctx *ctx, const nasc_module *m, const char *out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.nir", out);
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    if (nasc_text_print(m, &b) == NASC_OK) {
        FILE *f = fopen(path, "w");
        if (f) {
            fwrite(b.data, 1, b.len, f);
            fclose(f);
        }
    }
    nasc_buf_free(&b);
}

static void print_plan(const char *model, const nasc_module *prim, const nasc_dataset *train,
                       const nasc_train_options *to) {
    nasc_cost cost;
    if (nasc_cost_compute(prim, &cost) != NASC_OK) return;
    char p1[32], p2[32];
    nasc_cli_fmt_int(cost.params, p1, sizeof p1);
    nasc_cli_fmt_si(cost.macs, p2, sizeof p2);
    fprintf(stderr, "%s: %s parameters, %s multiply-adds per image; %lld training images (%lld held out), %d epochs\n",
            model, p1, p2, (long long)(train->n - to->val_size), (long long)to->val_size, to->epochs);
    nasc_cost_free(prim, &cost);
}

/* The net to train when the recipe adds drop-path or an auxiliary head
 * (*out NULL otherwise): the model lowered again with them. */
static nasc_status training_net(nasc_ctx *ctx, const nasc_cli_net *net, const nasc_train_options *to,
                                nasc_module **out) {
    *out = NULL;
    nasc_lower_options lo = nasc_lower_options_default();
    lo.drop_path = to->drop_path > 0;
    lo.aux_head = to->aux_weight > 0;
    if (!lo.drop_path && !lo.aux_head) return NASC_OK;
    if (net->loaded->dialect != NASC_DIALECT_ARCH)
        return nasc_error(ctx, NASC_EINPUT, net->loaded->source, NASC_NOLOC,
                          "--drop-path and --aux-weight need a cell model (YAML or arch text IR); this one is %s",
                          "a prim module (no cells to drop, no reduction cell to attach a head to)");
    nasc_status st = nasc_lower_with(net->loaded, &lo, out);
    if (!st) st = nasc_prim_verify(*out);
    if (st) {
        nasc_module_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* nasc_train with progress, and a checkpoint, a metrics.csv line and the
 * curve after every epoch; Ctrl-C stops after the current step. */
static nasc_status train_loop(run *r, const nasc_module *prim, const nasc_dataset *train, nasc_train_options *to,
                              nasc_train_result *res) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", r->out);
    bool fresh = access(path, F_OK) != 0;
    r->csv = fopen(path, "a");
    if (r->csv && fresh) fputs("epoch,train_loss,train_acc,val_loss,val_acc,images_per_s\n", r->csv);
    to->progress = on_progress;
    to->ud = r;
    struct sigaction old;
    nasc_cli_sigint_catch(&old);
    nasc_status st = nasc_train(r->ctx, prim, r->store, train, to, res);
    nasc_cli_sigint_restore(&old);
    if (r->tty && st) fputc('\n', stderr);
    return st;
}

/* The summary on stdout: epochs, train, validation (measured here when no
 * epoch ran) and test accuracy; then the checkpoint once more. */
static nasc_status report(run *r, const char *model, const nasc_module *prim, const nasc_dataset *train,
                          const nasc_dataset *test, const nasc_train_options *to, const nasc_train_result *res) {
    float test_acc = NAN, test_loss = NAN;
    nasc_status st =
        nasc_evaluate(r->ctx, prim, r->store, test, 0, test->n, to->batch, to->threads, &test_acc, &test_loss);
    if (st) return st;
    printf("model %s\n", model);
    const char *done = nasc_params_meta(r->store, "train/epoch"); /* unset when no epoch finished */
    printf("epochs %d (%d this run), %.1f s, %.0f images/s\n", done ? (int)strtol(done, NULL, 10) : 0,
           res->epochs_run, res->seconds, res->images_per_s);
    if (res->epochs_run) printf("train loss %.4f, accuracy %.2f%%\n", res->train_loss, 100 * res->train_acc);
    if (to->val_size > 0) {
        float va = res->val_acc, vl = res->val_loss;
        if (res->epochs_run == 0)
            st = nasc_evaluate(r->ctx, prim, r->store, train, train->n - to->val_size, train->n, to->batch,
                               to->threads, &va, &vl);
        if (!st)
            printf("validation accuracy %.2f%% (loss %.4f, last %lld training images)\n", 100 * va, vl,
                   (long long)to->val_size);
    }
    if (!st) printf("test accuracy %.2f%% (loss %.4f, %lld images)\n", 100 * test_acc, test_loss, (long long)test->n);
    if (!st) st = nasc_params_save(r->store, r->ckpt);
    if (!st) printf("checkpoint %s\ncurve %s/curve.svg\n", r->ckpt, r->out);
    return st;
}

/* ------------------------------------------------------------------ */
/* Language models                                                     */
/* ------------------------------------------------------------------ */

/* The command line's options for a language model: its defaults where a
 * flag was not given, errors for the image-only ones. */
static nasc_status lm_options(nasc_ctx *ctx, train_args *ta) {
    nasc_train_options *to = &ta->to;
    if (ta->image_recipe)
        return nasc_error(ctx, NASC_EINPUT, ta->mo.path, NASC_NOLOC,
                          "a language model trains without the image recipe (--final-recipe, --crop-pad, --cutout, "
                          "--flip, --label-smoothing, --aux-weight, --drop-path, --ema)");
    if (ta->val_given || ta->subset_given)
        return nasc_error(ctx, NASC_EINPUT, ta->mo.path, NASC_NOLOC,
                          "a language model's text is split 90/5/5 into training, validation and test (--val-size "
                          "and --train-subset are for images)");
    if (!ta->optim_given) {
        to->optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
        if (!ta->lr_given) to->lr = 0.002f;
    }
    if (!ta->wd_given && to->optim.kind == NASC_OPTIM_ADAM) to->optim.weight_decay = 0;
    if (!ta->warmup_given) to->warmup_epochs = 0;
    if (!ta->clip_given) to->grad_clip = 5;
    return NASC_OK;
}

/* The model unrolled over --bptt steps (*out NULL when that is the
 * default lowering's length); with dropout > 0, *train the same with
 * dropout masks (else NULL). */
static nasc_status lm_net(nasc_ctx *ctx, const nasc_cli_net *net, long bptt, double dropout, nasc_module **out,
                          nasc_module **train) {
    *out = *train = NULL;
    if (dropout > 0) {
        if (net->loaded->dialect != NASC_DIALECT_ARCH)
            return nasc_error(ctx, NASC_EINPUT, net->loaded->source, NASC_NOLOC,
                              "--dropout needs a recurrent arch model (YAML or arch text IR), not a prim module");
        nasc_lower_options lo = nasc_lower_options_default();
        lo.seq_len = bptt ? (int)bptt : (int)net->prim->values[0].type.dims[1];
        lo.rnn_dropout = true;
        nasc_status st = nasc_lower_with(net->loaded, &lo, train);
        if (st) return st;
    }
    if (!bptt || bptt == net->prim->values[0].type.dims[1]) return NASC_OK;
    if (net->loaded->dialect != NASC_DIALECT_ARCH)
        return nasc_error(ctx, NASC_EINPUT, net->loaded->source, NASC_NOLOC,
                          "--bptt needs a recurrent arch model (YAML or arch text IR); a prim module is already "
                          "unrolled over %lld steps",
                          (long long)net->prim->values[0].type.dims[1]);
    nasc_lower_options lo = nasc_lower_options_default();
    lo.seq_len = (int)bptt;
    return nasc_lower_with(net->loaded, &lo, out);
}

static void print_plan_lm(const char *model, const nasc_module *prim, const nasc_corpus *text, const char *data,
                          const nasc_train_options *to) {
    nasc_cost cost;
    if (nasc_cost_compute(prim, &cost) != NASC_OK) return;
    char p1[32], n1[32], n2[32], n3[32], n4[32];
    int64_t train_end, val_end;
    nasc_corpus_split(text->n, &train_end, &val_end);
    nasc_cli_fmt_int(cost.params, p1, sizeof p1);
    nasc_cli_fmt_int(text->n, n1, sizeof n1);
    nasc_cli_fmt_int(train_end, n2, sizeof n2);
    nasc_cli_fmt_int(val_end - train_end, n3, sizeof n3);
    nasc_cli_fmt_int(text->n - val_end, n4, sizeof n4);
    fprintf(stderr,
            "%s: %s parameters, unrolled over %lld characters; %s: %s bytes (training %s, validation %s, test %s); "
            "%d epoch%s of %d streams\n",
            model, p1, (long long)prim->values[0].type.dims[1], data, n1, n2, n3, n4, to->epochs,
            to->epochs == 1 ? "" : "s", to->batch);
    nasc_cost_free(prim, &cost);
}

static int train_lm_main(nasc_cli_job *j, train_args *ta) {
    nasc_ctx *ctx = &j->ctx;
    nasc_module *unrolled = NULL, *dropped = NULL;
    if (lm_options(ctx, ta) || lm_net(ctx, &j->net, ta->bptt, ta->to.rnn_dropout, &unrolled, &dropped)) {
        nasc_module_destroy(dropped);
        nasc_module_destroy(unrolled);
        return nasc_cli_fail(ctx);
    }
    const nasc_module *prim = unrolled ? unrolled : j->net.prim;
    char outbuf[4096], ckpt[4200];
    int rc = make_out_dir(ctx, ta, outbuf, sizeof outbuf);
    if (!rc) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.nasc", ta->out);
        rc = open_store(ctx, &j->net, ta, ckpt, &j->weights);
        j->owned = true;
    }
    nasc_corpus text = {0};
    const char *data = ta->data ? ta->data : "fortunes";
    if (!rc) {
        write_model_text(ctx, j->net.loaded, ta->out);
        fprintf(stderr, "loading %s ...\n", data);
        if (nasc_corpus_load(ctx, data, &text)) rc = nasc_cli_fail(ctx);
    }
    if (!rc) {
        print_plan_lm(ta->mo.path, prim, &text, data, &ta->to);
        run r = {0};
        r.ctx = ctx;
        r.out = ta->out;
        r.ckpt = ckpt;
        r.store = j->weights;
        r.tty = isatty(2);
        r.lm = true;
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.csv", r.out);
        bool fresh = access(path, F_OK) != 0;
        r.csv = fopen(path, "a");
        if (r.csv && fresh) fputs("epoch,train_bpc,train_acc,val_bpc,val_acc,chars_per_s\n", r.csv);
        ta->to.progress = on_progress;
        ta->to.ud = &r;
        nasc_train_result res;
        struct sigaction old;
        nasc_cli_sigint_catch(&old);
        ta->to.eval_prim = prim; /* validation without the dropout masks */
        nasc_status st = nasc_train_lm(ctx, dropped ? dropped : prim, r.store, &text, &ta->to, &res);
        nasc_cli_sigint_restore(&old);
        if (r.tty && st) fputc('\n', stderr);
        int64_t train_end, val_end;
        nasc_corpus_split(text.n, &train_end, &val_end);
        float vl = res.val_loss, va = res.val_acc, tl = NAN, tacc = NAN;
        if (!st && res.epochs_run == 0)
            st = nasc_evaluate_lm(ctx, prim, r.store, &text, train_end, val_end, ta->to.batch, ta->to.threads, &vl, &va);
        if (!st)
            st = nasc_evaluate_lm(ctx, prim, r.store, &text, val_end, text.n, ta->to.batch, ta->to.threads, &tl, &tacc);
        if (!st) {
            const char *done = nasc_params_meta(r.store, "train/epoch");
            printf("model %s\n", ta->mo.path);
            printf("epochs %d (%d this run), %.1f s, %.0f characters/s\n", done ? (int)strtol(done, NULL, 10) : 0,
                   res.epochs_run, res.seconds, res.images_per_s);
            if (res.epochs_run) printf("train %.4f bits per character\n", res.train_loss / LN2);
            printf("validation %.4f bits per character (next character %.2f%%, %lld bytes)\n", vl / LN2, 100 * va,
                   (long long)(val_end - train_end));
            printf("test %.4f bits per character (next character %.2f%%, %lld bytes)\n", tl / LN2, 100 * tacc,
                   (long long)(text.n - val_end));
            st = nasc_params_save(r.store, r.ckpt);
        }
        if (!st) printf("checkpoint %s\ncurve %s/curve.svg\n", r.ckpt, r.out);
        run_free(&r);
        if (st) rc = nasc_cli_fail(ctx);
    }
    nasc_corpus_free(ctx, &text);
    nasc_module_destroy(dropped);
    nasc_module_destroy(unrolled);
    return rc;
}

int nasc_cli_train(int argc, char **argv) {
    train_args ta;
    int rc = parse_args(argc, argv, &ta);
    if (rc != NASC_CLI_GO) return rc;
    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &ta.mo, NASC_CLI_NO_WEIGHTS, NULL);
    if (rc) return rc;
    if (nasc_cli_is_lm(j.net.prim)) {
        rc = train_lm_main(&j, &ta);
        nasc_cli_job_close(&j);
        return rc;
    }
    if (ta.bptt || ta.to.rnn_dropout > 0) {
        nasc_error(&j.ctx, NASC_EINPUT, ta.mo.path, NASC_NOLOC, "%s is for recurrent models (language models)",
                   ta.bptt ? "--bptt" : "--dropout (CNN cells have --drop-path)");
        rc = nasc_cli_fail(&j.ctx);
        nasc_cli_job_close(&j);
        return rc;
    }
    if (!ta.data) ta.data = "fashion-mnist";
    /* the training net: the model plus drop-path masks and an auxiliary
     * head when asked (checked before anything is written or loaded) */
    nasc_module *train_prim = NULL;
    if (training_net(&j.ctx, &j.net, &ta.to, &train_prim) != NASC_OK) {
        rc = nasc_cli_fail(&j.ctx);
        nasc_cli_job_close(&j);
        return rc;
    }

    char outbuf[4096], ckpt[4200];
    rc = make_out_dir(&j.ctx, &ta, outbuf, sizeof outbuf);
    if (!rc) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint.nasc", ta.out);
        rc = open_store(&j.ctx, &j.net, &ta, ckpt, &j.weights);
        j.owned = true; /* the job destroys the store */
    }
    nasc_dataset train = {0}, test = {0};
    if (!rc) {
        write_model_text(&j.ctx, j.net.loaded, ta.out);
        fprintf(stderr, "loading %s ...\n", ta.data);
        rc = nasc_cli_load_data(&j.ctx, ta.data, &train, &test);
    }
    if (!rc) {
        print_plan(ta.mo.path, j.net.prim, &train, &ta.to);
        run r = {0};
        r.ctx = &j.ctx;
        r.out = ta.out;
        r.ckpt = ckpt;
        r.store = j.weights;
        r.tty = isatty(2);
        nasc_train_result res;
        ta.to.eval_prim = j.net.prim;
        nasc_status st = train_loop(&r, train_prim ? train_prim : j.net.prim, &train, &ta.to, &res);
        if (!st) st = report(&r, ta.mo.path, j.net.prim, &train, &test, &ta.to, &res);
        run_free(&r);
        if (st) rc = nasc_cli_fail(&j.ctx);
    }
    nasc_module_destroy(train_prim);
    nasc_dataset_free(&j.ctx, &train);
    nasc_dataset_free(&j.ctx, &test);
    nasc_cli_job_close(&j);
    return rc;
}
