/* final.c - what a search leaves behind: the best architecture trained from
 * scratch, as YAML, text IR, weights and ONNX, and pictures of the search
 * and of the best cells. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nasc_backend.h"
#include "nasc_export.h"
#include "nasc_frontend.h"
#include "nasc_search.h"

extern char **environ;

static nasc_status write_buf(nasc_ctx *ctx, const char *dir, const char *name, nasc_buf *b) {
    if (b->oom) return NASC_ENOMEM;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return nasc_file_write_atomic(ctx, path, b->data ? b->data : "", b->len);
}

nasc_status nasc_search_plot(nasc_ctx *ctx, const nasc_journal *j, const char *path) {
    int64_t n = j->n;
    double *x = nasc_alloc(ctx, (size_t)(n ? n : 1) * 3 * sizeof *x);
    if (!x) return NASC_ENOMEM;
    double *y = x + (n ? n : 1), *best = y + (n ? n : 1);
    double run = NAN;
    for (int64_t i = 0; i < n; i++) {
        const nasc_trial *t = &j->trials[i];
        x[i] = (double)i;
        bool ok = strcmp(t->status, "failed") != 0 && isfinite(t->reward) && t->reward > 0;
        /* accuracy in %, or a language model's bits per character (lower is better) */
        y[i] = !ok ? NAN : j->recurrent ? -log2(t->reward) : 100 * t->reward;
        if (ok && !(j->recurrent ? run <= y[i] : run >= y[i])) run = y[i];
        best[i] = run;
    }
    nasc_plot_series s[2] = {
        {j->recurrent ? "validation bits per character" : "reward (validation accuracy)", x, y, (int)n, 0, true},
        {"best so far", x, best, (int)n, 0, false},
    };
    nasc_plot p = {0};
    p.title = "search";
    p.xlabel = "trial";
    p.ylabel = j->recurrent ? "bits per character" : "validation accuracy (%)";
    p.series = s;
    p.n_series = 2;
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    nasc_status st = nasc_svg_plot(&p, &b);
    if (!st) st = b.oom ? NASC_ENOMEM : nasc_file_write_atomic(ctx, path, b.data, b.len);
    nasc_buf_free(&b);
    nasc_free(ctx, x);
    return st;
}

/* dot -Tsvg in.dot -o out.svg; false when graphviz is not there or fails. */
static bool run_dot(const char *in, const char *out) {
    char *argv[] = {"dot", "-Tsvg", (char *)in, "-o", (char *)out, NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, "dot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static nasc_status set_meta_num(nasc_param_store *s, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return nasc_params_set_meta(s, key, buf);
}

nasc_status nasc_search_finish(nasc_ctx *ctx, const nasc_space *sp, const nasc_journal *j,
                               const nasc_search_final_options *o, nasc_search_final_result *out) {
    memset(out, 0, sizeof *out);
    out->val_acc = out->test_acc = out->test_loss = out->val_loss = NAN;
    char path[4200];
    snprintf(path, sizeof path, "%s/search.svg", o->dir);
    nasc_status st = nasc_search_plot(ctx, j, path);
    if (st) return st;
    out->best_index = nasc_journal_best(j);
    if (out->best_index < 0)
        return nasc_error(ctx, NASC_EINPUT, j->path, NASC_NOLOC,
                          "no trial of the search succeeded (see the reasons in the journal)");
    const nasc_trial *best = &j->trials[out->best_index];
    out->best_reward = best->reward;

    nasc_module *arch = NULL, *prim = NULL, *train_prim = NULL; /* train_prim: with the recipe's extras */
    nasc_param_store *store = NULL;
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    st = nasc_space_decode(sp, best->d, &arch);
    if (!st) st = nasc_arch_apply_overrides(arch, o->set_keys, o->set_vals, o->n_set);
    uint64_t arch_hash = 0;
    if (!st) st = nasc_arch_hash(arch, &arch_hash);
    if (!st && arch_hash != best->hash)
        st = nasc_error(ctx, NASC_EINPUT, j->path, NASC_NOLOC,
                        "trial %lld: its decisions decode to another architecture than the journal's hash says",
                        (long long)best->index);
    char hash[40];
    snprintf(hash, sizeof hash, "arch:%016llx", (unsigned long long)best->hash);
    /* best.yaml and best.nir */
    if (!st) {
        if (arch->skel.kind == NASC_NET_RECURRENT)
            nasc_buf_printf(&b, "# best architecture of a nasc search: trial %lld, validation %.4f bits per character\n",
                            (long long)best->index, -log2(best->reward));
        else
            nasc_buf_printf(&b, "# best architecture of a nasc search: trial %lld, validation accuracy %.4f\n",
                            (long long)best->index, best->reward);
        nasc_buf_printf(&b, "# space %s, canonical hash %016llx, decisions", nasc_space_name(sp),
                        (unsigned long long)best->hash);
        for (uint32_t i = 0; i < nasc_space_count(sp); i++) nasc_buf_printf(&b, " %u", best->d[i]);
        nasc_buf_printf(&b, "\n");
        st = nasc_yaml_write(arch, &b);
        if (!st) st = write_buf(ctx, o->dir, "best.yaml", &b);
    }
    if (!st) {
        b.len = 0;
        st = nasc_text_print(arch, &b);
        if (!st) st = write_buf(ctx, o->dir, "best.nir", &b);
    }
    /* the cells, drawn */
    if (!st) {
        b.len = 0;
        st = nasc_dot_arch(arch, &b);
        if (!st) st = write_buf(ctx, o->dir, "best-cells.dot", &b);
        char dot[4200], svg[4200];
        snprintf(dot, sizeof dot, "%s/best-cells.dot", o->dir);
        snprintf(svg, sizeof svg, "%s/best-cells.svg", o->dir);
        if (!st && run_dot(dot, svg)) {
            unlink(dot);
            snprintf(out->cells_picture, sizeof out->cells_picture, "best-cells.svg");
        } else if (!st) {
            snprintf(out->cells_picture, sizeof out->cells_picture, "best-cells.dot");
            snprintf(out->note, sizeof out->note, "graphviz `dot` did not run: the cells are in best-cells.dot");
        }
    }
    bool lm = !st && arch->skel.kind == NASC_NET_RECURRENT;
    if (lm && !o->text)
        st = nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the best architecture is a language model: it needs a text");
    nasc_lower_options plo = nasc_lower_options_default();
    plo.seq_len = o->steps;
    if (!st) st = nasc_lower_with(arch, &plo, &prim);
    if (!st) {
        nasc_cost c;
        if (nasc_cost_compute(prim, &c) == NASC_OK) {
            out->params = c.params;
            out->macs = c.macs;
            nasc_cost_free(prim, &c);
        }
    }
    /* train from scratch, resuming best.nasc when an earlier run got that far */
    snprintf(path, sizeof path, "%s/best.nasc", o->dir);
    if (!st) {
        if (access(path, F_OK) == 0) {
            st = nasc_params_load(ctx, path, &store);
            const char *h = st ? NULL : nasc_params_meta(store, "model/hash");
            if (!st && (!h || strcmp(h, hash) != 0))
                st = nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                                "these weights are not of the best architecture (%s); remove the file to retrain",
                                hash);
        } else {
            store = nasc_params_create(ctx);
            if (!store) st = NASC_ENOMEM;
            if (!st) st = nasc_params_set_meta(store, "model/hash", hash);
            if (!st) {
                char yaml[4200];
                snprintf(yaml, sizeof yaml, "%s/best.yaml", o->dir);
                st = nasc_params_set_meta(store, "model/path", yaml);
            }
        }
    }
    if (!st && lm) {
        /* a language model: trained as the evaluator trains them, for longer */
        nasc_train_options to = nasc_train_options_default();
        to.batch = o->batch;
        to.lr = o->lr;
        to.warmup_epochs = 0;
        to.optim = nasc_optim_options_default(NASC_OPTIM_ADAM);
        to.optim.weight_decay = 0;
        to.grad_clip = 5;
        to.epochs = o->epochs;
        to.seed = o->seed;
        to.threads = o->threads;
        to.progress = o->progress;
        to.ud = o->ud;
        nasc_train_result tr;
        int64_t train_end, val_end;
        nasc_corpus_split(o->text->n, &train_end, &val_end);
        st = nasc_train_lm(ctx, prim, store, o->text, &to, &tr);
        if (!st) st = nasc_params_save(store, path);
        if (!st)
            st = nasc_evaluate_lm(ctx, prim, store, o->text, train_end, val_end, o->batch, o->threads, &out->val_loss,
                                  &out->val_acc);
        if (!st)
            st = nasc_evaluate_lm(ctx, prim, store, o->text, val_end, o->text->n, o->batch, o->threads,
                                  &out->test_loss, &out->test_acc);
        if (!st) st = set_meta_num(store, "final/test_bpc", out->test_loss / log(2.0));
        if (!st) st = nasc_params_save(store, path);
        /* the export is the one-step model: tokens and state in, logits and state out */
        nasc_module *step = NULL;
        plo.seq_len = 1;
        if (!st) st = nasc_lower_with(arch, &plo, &step);
        if (!st) {
            nasc_module_destroy(prim);
            prim = step;
        }
    } else if (!st) {
        nasc_train_options to = nasc_train_options_default();
        to.batch = o->batch;
        to.lr = o->lr;
        to.warmup_epochs = o->epochs > 1 ? 1 : 0;
        if (o->final_recipe) {
            nasc_train_final_recipe(&to);
            int side = o->train->h < o->train->w ? o->train->h : o->train->w;
            if (to.cutout > side) to.cutout = side;
            if (to.crop_pad > side) to.crop_pad = side;
            nasc_lower_options lo = nasc_lower_options_default();
            lo.drop_path = to.drop_path > 0;
            lo.aux_head = to.aux_weight > 0 && arch->skel.kind == NASC_NET_CELLS && arch->skel.stages > 1;
            if (!lo.aux_head) to.aux_weight = 0; /* a macro net has no reduction cell to attach it to */
            st = nasc_lower_with(arch, &lo, &train_prim);
            to.eval_prim = prim;
        }
        to.epochs = o->epochs;
        to.seed = o->seed;
        to.threads = o->threads;
        to.val_size = o->val_size;
        to.progress = o->progress;
        to.ud = o->ud;
        nasc_train_result tr;
        if (!st) st = nasc_train(ctx, train_prim ? train_prim : prim, store, o->train, &to, &tr);
        if (!st) st = nasc_params_save(store, path);
        if (!st && o->val_size > 0)
            st = nasc_evaluate(ctx, prim, store, o->train, o->train->n - o->val_size, o->train->n, o->batch, o->threads,
                               &out->val_acc, &out->test_loss);
        if (!st)
            st = nasc_evaluate(ctx, prim, store, o->test, 0, o->test->n, o->batch, o->threads, &out->test_acc,
                               &out->test_loss);
        if (!st) st = set_meta_num(store, "final/test_acc", out->test_acc);
        if (!st) st = nasc_params_save(store, path);
    }
    /* ONNX */
    if (!st) {
        b.len = 0;
        nasc_buf arch_text;
        nasc_buf_init(&arch_text, ctx);
        st = nasc_text_print(arch, &arch_text);
        nasc_onnx_options oo = nasc_onnx_options_default();
        char hex[24];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)best->hash);
        const char *mean = nasc_params_meta(store, "data/mean"), *sd = nasc_params_meta(store, "data/std");
        nasc_onnx_meta meta[4] = {{"nasc.arch", arch_text.data ? arch_text.data : ""},
                                  {"nasc.hash", hex},
                                  {"nasc.data_mean", mean ? mean : "0"},
                                  {"nasc.data_std", sd ? sd : "1"}};
        oo.meta = meta;
        oo.n_meta = 4;
        if (!st) st = nasc_onnx_export(prim, store, &oo, &b);
        if (!st) st = write_buf(ctx, o->dir, "best.onnx", &b);
        nasc_buf_free(&arch_text);
    }
    nasc_buf_free(&b);
    nasc_params_destroy(store);
    nasc_module_destroy(train_prim);
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    return st;
}
