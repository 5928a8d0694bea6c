/* train_export.c - load a model, train it briefly, export it to ONNX, using
 * nothing but libnasc's public API.
 *
 *     train_export MODEL.yaml OUT.onnx [DATA]
 *
 * MODEL is any model nasc reads (models/baseline-cnn.yaml is a small one).
 * DATA is "fashion-mnist" (Debian's dataset-fashion-mnist, the default) or a
 * directory of IDX files. The program trains one short epoch on the first
 * 512 training images, reports the accuracy on the first 1,000 test images
 * and writes OUT.onnx with the trained weights and the input normalisation
 * in its metadata.
 *
 * Build it against an installed nasc:
 *
 *     cc train_export.c $(pkg-config --cflags --libs nasc) -o train_export
 *
 * Every nasc call that can fail returns a nasc_status; on failure the
 * context's diagnostic says what and where ("file:line:col: error: ..."),
 * and the program prints it and exits with 1 after freeing what it holds.
 */
#include <stdio.h>
#include <stdlib.h>

#include "nasc_backend.h"
#include "nasc_export.h"
#include "nasc_frontend.h"
#include "nasc_ir.h"

enum {
    TRAIN_IMAGES = 512, /* a few steps: this shows the calls, it does not reach a good accuracy */
    TEST_IMAGES = 1000,
    BATCH = 64,
};

/* Print the context's diagnostic, prefixed with what we were doing. */
static int fail(const nasc_ctx *ctx, const char *doing) {
    fprintf(stderr, "train_export: %s failed:\n  ", doing);
    nasc_diag_print(&ctx->diag, stderr);
    return 1;
}

/* Called by nasc_train after every step; a non-zero return would stop it. */
static nasc_status on_progress(void *ud, const nasc_train_progress *p) {
    (void)ud;
    if (!p->epoch_end)
        fprintf(stderr, "  step %lld/%lld  loss %.4f  accuracy %.1f%%\n", (long long)p->step, (long long)p->steps,
                p->loss, 100 * p->acc);
    return NASC_OK;
}

/* The trained net as ONNX, with the normalisation the net expects. */
static nasc_status export_onnx(nasc_ctx *ctx, const nasc_module *prim, const nasc_param_store *store,
                               const char *path, size_t *bytes) {
    nasc_onnx_meta meta[2];
    size_t n_meta = 0;
    const char *mean = nasc_params_meta(store, "data/mean"), *sd = nasc_params_meta(store, "data/std");
    if (mean) meta[n_meta++] = (nasc_onnx_meta){"nasc.data_mean", mean};
    if (sd) meta[n_meta++] = (nasc_onnx_meta){"nasc.data_std", sd};
    nasc_onnx_options o = nasc_onnx_options_default();
    o.meta = meta;
    o.n_meta = n_meta;

    nasc_buf b;
    nasc_buf_init(&b, ctx);
    nasc_status st = nasc_onnx_export(prim, store, &o, &b);
    if (!st) st = nasc_file_write_atomic(ctx, path, b.data, b.len);
    *bytes = b.len;
    nasc_buf_free(&b);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.yaml OUT.onnx [fashion-mnist|IDX-DIR]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *onnx_path = argv[2], *data = argc > 3 ? argv[3] : "fashion-mnist";
    printf("nasc %s\n", NASC_VERSION);

    nasc_ctx ctx;
    nasc_ctx_init(&ctx); /* malloc-backed; nasc_ctx_set_allocator takes another */
    nasc_module *arch = NULL, *prim = NULL;
    nasc_param_store *store = NULL;
    nasc_dataset train = {0}, test = {0};
    int rc = 1;

    /* 1. The model: YAML is parsed and verified into an arch module, which
     * is lowered to prim ops (what the backend and the ONNX writer take). */
    if (nasc_model_load(&ctx, model_path, NULL, 0, &arch) != NASC_OK) {
        rc = fail(&ctx, "loading the model");
        goto out;
    }
    if (nasc_lower(arch, &prim) != NASC_OK || nasc_prim_verify(prim) != NASC_OK) {
        rc = fail(&ctx, "lowering the model");
        goto out;
    }
    nasc_cost cost;
    if (nasc_cost_compute(prim, &cost) != NASC_OK) {
        rc = fail(&ctx, "counting parameters");
        goto out;
    }
    printf("%s: %lld parameters, %lld multiply-adds per image\n", model_path, (long long)cost.params,
           (long long)cost.macs);
    nasc_cost_free(prim, &cost);

    /* 2. The data: both splits, as float images and labels. */
    if (nasc_data_load(&ctx, data, &train, &test) != NASC_OK) {
        rc = fail(&ctx, "loading the data set");
        goto out;
    }
    printf("data %s: %lld training and %lld test images of %dx%dx%d\n", data, (long long)train.n,
           (long long)test.n, train.c, train.h, train.w);

    /* 3. Train. The parameter store holds the weights, the optimizer state
     * and the normalisation measured on the training images; nasc_train
     * initialises whatever the store does not have yet. */
    store = nasc_params_create(&ctx);
    if (!store) {
        rc = fail(&ctx, "creating the parameter store");
        goto out;
    }
    nasc_train_options to = nasc_train_options_default();
    to.epochs = 1;
    to.warmup_epochs = 0;
    to.batch = BATCH;
    to.train_subset = TRAIN_IMAGES;
    to.val_size = 0; /* no held-out split: we measure on the test images below */
    to.progress = on_progress;
    nasc_train_result res;
    if (nasc_train(&ctx, prim, store, &train, &to, &res) != NASC_OK) {
        rc = fail(&ctx, "training");
        goto out;
    }
    printf("trained on the first %d images (%d epoch) in %.1f s: loss %.4f, accuracy %.1f%%\n", TRAIN_IMAGES,
           res.epochs_run, res.seconds, res.train_loss, 100 * res.train_acc);

    float acc, loss;
    int64_t n_test = test.n < TEST_IMAGES ? test.n : TEST_IMAGES;
    if (nasc_evaluate(&ctx, prim, store, &test, 0, n_test, BATCH, to.threads, &acc, &loss) != NASC_OK) {
        rc = fail(&ctx, "evaluating");
        goto out;
    }
    printf("test accuracy %.1f%% (loss %.4f) on %lld images\n", 100 * acc, loss, (long long)n_test);

    /* 4. Export: one ONNX file with the trained weights. */
    size_t bytes = 0;
    if (export_onnx(&ctx, prim, store, onnx_path, &bytes) != NASC_OK) {
        rc = fail(&ctx, "exporting ONNX");
        goto out;
    }
    printf("wrote %s (%zu bytes)\n", onnx_path, bytes);
    rc = 0;

out:
    nasc_dataset_free(&ctx, &train);
    nasc_dataset_free(&ctx, &test);
    nasc_params_destroy(store);
    nasc_module_destroy(prim);
    nasc_module_destroy(arch);
    return rc;
}
