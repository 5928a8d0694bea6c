/* eval.c - `nasc eval`: test accuracy of trained weights. */
#include <math.h>
#include <string.h>

#include "model.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc eval MODEL --weights CKPT [--data fashion-mnist|DIR] [--batch B] [--threads T]\n"
          "                 [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_eval_help(FILE *out) {
    fputs("nasc eval - accuracy of a model's trained weights on the test set\n\n", out);
    usage(out);
    fputs("\nLoads MODEL and the checkpoint written by `nasc train` (which must belong to\n"
          "the same architecture), runs the net in inference mode (running batch-norm\n"
          "statistics) over the test set and prints its accuracy and mean loss.\n\n"
          "Options:\n"
          "  --weights CKPT      checkpoint.nasc from nasc train (required)\n"
          "  --data SPEC         fashion-mnist (default) or a directory of IDX files\n"
          "  --batch B           batch size (default 256)\n"
          "  --threads T         threads (default: all cores)\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
}

int nasc_cli_eval(int argc, char **argv) {
    nasc_cli_args a;
    nasc_cli_model mo = {0};
    const char *data = "fashion-mnist", *weights = NULL, *batch = NULL, *threads = NULL;
    nasc_cli_args_init(&a, argc, argv, usage);
    while (a.i < argc) {
        int r;
        const char *pos;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_eval_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_model_opt(&a, &mo)) != 0 || (r = nasc_cli_value_opt(&a, "--data", NULL, &data)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--weights", "-w", &weights)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--batch", NULL, &batch)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--threads", NULL, &threads)) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
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
    if (!weights) return nasc_cli_usage_error(&a, "missing --weights CKPT");
    long b = 256, t = 0;
    if (batch && !nasc_cli_parse_int(batch, 1, 65536, &b))
        return nasc_cli_usage_error(&a, "--batch wants an integer in [1, 65536], got '%s'", batch);
    if (threads && !nasc_cli_parse_int(threads, 0, 1024, &t))
        return nasc_cli_usage_error(&a, "--threads wants an integer in [0, 1024], got '%s'", threads);

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_cli_net net;
    int rc = nasc_cli_load_prim(&ctx, &mo, &net);
    if (rc) return rc;
    nasc_param_store *store = NULL;
    if (nasc_params_load(&ctx, weights, &store) != NASC_OK) {
        nasc_cli_net_free(&net);
        return nasc_cli_fail(&ctx);
    }
    rc = nasc_cli_check_weights(&ctx, &net, store, weights);
    nasc_dataset train = {0}, test = {0};
    if (!rc) rc = nasc_cli_load_data(&ctx, data, &train, &test);
    if (!rc) {
        float acc, loss;
        if (nasc_evaluate(&ctx, net.prim, store, &test, 0, test.n, (int)b, (int)t, &acc, &loss) != NASC_OK) {
            rc = nasc_cli_fail(&ctx);
        } else {
            printf("test accuracy %.2f%% (loss %.4f, %lld images)\n", 100 * acc, loss, (long long)test.n);
        }
    }
    nasc_dataset_free(&ctx, &train);
    nasc_dataset_free(&ctx, &test);
    nasc_params_destroy(store);
    nasc_cli_net_free(&net);
    return rc;
}
