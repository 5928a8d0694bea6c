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
          "statistics) over the test set and prints its accuracy and mean loss. A\n"
          "language model is scored in bits per character on the last 5% of its text.\n\n"
          "Options:\n"
          "  --weights CKPT      checkpoint.nasc from nasc train (required)\n"
          "  --data SPEC         fashion-mnist (default) or a directory of IDX files;\n"
          "                      language models: fortunes (default) or a file\n"
          "  --batch B           batch size (default 256; language models 64 streams)\n"
          "  --threads T         threads (default: all cores)\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
}

int nasc_cli_eval(int argc, char **argv) {
    nasc_cli_model mo = {0};
    const char *data = NULL, *weights = NULL;
    long b = -1, t = 0;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--weights", "-w", NASC_CLI_STR, &weights), .missing = "missing --weights CKPT"},
        {NASC_CLI_OPT("--data", NULL, NASC_CLI_STR, &data)},
        {NASC_CLI_OPT("--batch", NULL, NASC_CLI_INT, &b), .lo = 1, .hi = 65536},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &t), .lo = 0, .hi = 1024},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_eval_help);
    if (rc != NASC_CLI_GO) return rc;
    bool data_given = data != NULL;
    if (!data) data = "fashion-mnist";

    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &mo, NASC_CLI_CKPT_WEIGHTS, weights);
    if (rc) return rc;
    if (nasc_cli_is_lm(j.net.prim)) { /* a language model: bits per character on the text's test split */
        nasc_corpus text = {0};
        float loss, acc;
        int64_t train_end, val_end;
        if (!data_given) data = "fortunes";
        if (nasc_corpus_load(&j.ctx, data, &text) != NASC_OK) {
            rc = nasc_cli_fail(&j.ctx);
        } else {
            nasc_corpus_split(text.n, &train_end, &val_end);
            if (b < 0) b = 64; /* streams */
            if (nasc_evaluate_lm(&j.ctx, j.net.prim, j.weights, &text, val_end, text.n, (int)b, (int)t, &loss,
                                 &acc) != NASC_OK)
                rc = nasc_cli_fail(&j.ctx);
            else
                printf("test %.4f bits per character (next character %.2f%%, %lld bytes)\n", loss / 0.69314718055994530942,
                       100 * acc, (long long)(text.n - val_end));
        }
        nasc_corpus_free(&j.ctx, &text);
        nasc_cli_job_close(&j);
        return rc;
    }
    if (b < 0) b = 256;
    nasc_dataset train = {0}, test = {0};
    rc = nasc_cli_load_data(&j.ctx, data, &train, &test);
    if (!rc) {
        float acc, loss;
        if (nasc_evaluate(&j.ctx, j.net.prim, j.weights, &test, 0, test.n, (int)b, (int)t, &acc, &loss) != NASC_OK) {
            rc = nasc_cli_fail(&j.ctx);
        } else {
            printf("test accuracy %.2f%% (loss %.4f, %lld images)\n", 100 * acc, loss, (long long)test.n);
        }
    }
    nasc_dataset_free(&j.ctx, &train);
    nasc_dataset_free(&j.ctx, &test);
    nasc_cli_job_close(&j);
    return rc;
}
