/* export.c - `nasc export`: a model and its weights as an ONNX file. */
#include <string.h>

#include "model.h"
#include "nasc_export.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc export MODEL [--weights CKPT] -o OUT.onnx [--opset N] [--fold-bn]\n"
          "                   [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_export_help(FILE *out) {
    fputs("nasc export - write a model and its weights as an ONNX file\n\n", out);
    usage(out);
    fputs("\nLowers MODEL to prim ops and writes them as one ONNX model (docs/onnx.md):\n"
          "a node per op named after its result, an initializer per parameter named\n"
          "after it, a symbolic batch dimension \"N\", batch-norm running statistics from\n"
          "the checkpoint (mean 0, variance 1 when it has none). Without --weights the\n"
          "parameters are the fresh initialisation (seed 1) that `nasc train` starts\n"
          "from. The file is written atomically (temporary file, fsync, rename).\n"
          "The metadata holds nasc.arch (the arch text IR), nasc.hash and, for trained\n"
          "weights, nasc.data_mean / nasc.data_std: the net expects images scaled to\n"
          "[0, 1] and normalised as (x - mean) / std.\n\n"
          "Options:\n"
          "  --weights CKPT      checkpoint.nasc from nasc train (default: fresh weights)\n"
          "  -o, --output FILE   the ONNX file to write (required)\n"
          "  --opset N           ONNX opset, 13..17 (default 13)\n"
          "  --fold-bn           fold each batch norm into the conv before it\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExamples:\n"
          "  nasc export models/darts-v2.yaml -o darts.onnx\n"
          "  nasc export models/nasnet-a.yaml --weights runs/nasnet/checkpoint.nasc \\\n"
          "      --fold-bn --opset 17 -o nasnet.onnx\n"
          "  python3 -c 'import onnx; onnx.checker.check_model(\"darts.onnx\", full_check=True)'\n",
          out);
}

int nasc_cli_export(int argc, char **argv) {
    nasc_cli_model mo = {0};
    const char *weights = NULL, *output = NULL;
    long op = 13;
    bool fold = false;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--weights", "-w", NASC_CLI_STR, &weights)},
        {NASC_CLI_OPT("--output", "-o", NASC_CLI_STR, &output), .missing = "missing -o OUT.onnx", .file = true},
        {NASC_CLI_OPT("--opset", NULL, NASC_CLI_INT, &op), .lo = 13, .hi = 17},
        {NASC_CLI_OPT("--fold-bn", NULL, NASC_CLI_FLAG, &fold)},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_export_help);
    if (rc != NASC_CLI_GO) return rc;

    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &mo, NASC_CLI_ANY_WEIGHTS, weights);
    if (rc) return rc;
    nasc_ctx *ctx = &j.ctx;
    const nasc_cli_net *net = &j.net;
    nasc_buf arch, onnx;
    nasc_buf_init(&arch, ctx);
    nasc_buf_init(&onnx, ctx);
    nasc_onnx_meta meta[4];
    size_t n_meta = 0;
    nasc_status st = NASC_OK;
    if (net->loaded->dialect == NASC_DIALECT_ARCH) {
        st = nasc_text_print(net->loaded, &arch);
        if (!st && arch.oom) st = NASC_ENOMEM;
        meta[n_meta++] = (nasc_onnx_meta){"nasc.arch", arch.data ? arch.data : ""};
    }
    meta[n_meta++] = (nasc_onnx_meta){"nasc.hash", net->hash};
    const char *mean = nasc_params_meta(j.weights, "data/mean"), *sd = nasc_params_meta(j.weights, "data/std");
    if (mean) meta[n_meta++] = (nasc_onnx_meta){"nasc.data_mean", mean};
    if (sd) meta[n_meta++] = (nasc_onnx_meta){"nasc.data_std", sd};

    nasc_onnx_options oo = nasc_onnx_options_default();
    oo.opset = (int)op;
    oo.fold_bn = fold;
    oo.meta = meta;
    oo.n_meta = n_meta;
    if (!st) st = nasc_onnx_export(net->prim, j.weights, &oo, &onnx);
    if (!st) st = nasc_file_write_atomic(ctx, output, onnx.data, onnx.len);
    if (st) {
        rc = nasc_cli_fail(ctx);
    } else {
        char size[32];
        nasc_cli_fmt_int((int64_t)onnx.len, size, sizeof size);
        printf("wrote %s (ONNX opset %ld%s, %s bytes, %s weights)\n", output, op, fold ? ", batch norm folded" : "",
               size, net->weights ? "the model's" : weights ? "trained" : "fresh");
    }
    nasc_buf_free(&onnx);
    nasc_buf_free(&arch);
    nasc_cli_job_close(&j);
    return rc;
}
