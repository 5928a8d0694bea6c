/* generate.c - `nasc generate`: sample text from a trained language model. */
#include <string.h>

#include "model.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc generate MODEL --weights CKPT [--prompt TEXT] [-n N] [--temperature T]\n"
          "                     [--seed S] [--threads T] [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_generate_help(FILE *out) {
    fputs("nasc generate - sample text from a trained character language model\n\n", out);
    usage(out);
    fputs("\nLoads a recurrent MODEL and the checkpoint `nasc train` wrote for it, reads\n"
          "the prompt one byte at a time from a zero state, then draws N more bytes,\n"
          "each from the model's distribution of the next one, and prints the prompt\n"
          "and the text. The same seed, prompt and weights give the same text.\n\n"
          "Options:\n"
          "  --weights CKPT      checkpoint.nasc from nasc train (required)\n"
          "  --prompt TEXT       the text to continue (default \"The \")\n"
          "  -n N                bytes to generate (default 200)\n"
          "  --temperature T     divide the logits by T before sampling: below 1 more\n"
          "                      likely text, above 1 more varied; 0 always takes the\n"
          "                      most likely byte (default 0.8)\n"
          "  --seed S            the sampling generator's seed (default 1)\n"
          "  --threads T         threads (default: all cores)\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExample:\n"
          "  nasc train models/lstm.yaml --epochs 5 --out runs/lstm\n"
          "  nasc generate models/lstm.yaml --weights runs/lstm/checkpoint.nasc --prompt \"Life is\" -n 300\n",
          out);
}

int nasc_cli_generate(int argc, char **argv) {
    nasc_cli_model mo = {0};
    const char *weights = NULL, *prompt = "The ";
    long n = 200, seed = 1, threads = 0;
    double temp = 0.8;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--weights", "-w", NASC_CLI_STR, &weights), .missing = "missing --weights CKPT"},
        {NASC_CLI_OPT("--prompt", NULL, NASC_CLI_STR, &prompt)},
        {NASC_CLI_OPT("-n", NULL, NASC_CLI_INT, &n), .lo = 0, .hi = 1L << 30},
        {NASC_CLI_OPT("--temperature", NULL, NASC_CLI_FLOAT, &temp), .lo = 0, .hi = 100},
        {NASC_CLI_OPT("--seed", NULL, NASC_CLI_INT, &seed), .lo = 0, .hi = 0x7fffffffL},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &threads), .lo = 0, .hi = 1024},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_generate_help);
    if (rc != NASC_CLI_GO) return rc;
    for (size_t i = 0; i < mo.n_ov; i++)
        if (strcmp(mo.ov[i].key, "steps") == 0)
            return nasc_cli_usage_error(&a, "generate runs the model one step at a time; --set steps is not for it");
    if (mo.n_ov == NASC_CLI_MAX_SET) return nasc_cli_usage_error(&a, "too many --set options");
    mo.ov[mo.n_ov++] = (nasc_override){"steps", "1"};
    if (prompt[0] == 0) return nasc_cli_usage_error(&a, "--prompt is empty; give at least one character");

    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &mo, NASC_CLI_CKPT_WEIGHTS, weights);
    if (rc) return rc;
    uint8_t *out = nasc_alloc(&j.ctx, (size_t)n + 1);
    if (!out) {
        rc = nasc_cli_fail(&j.ctx);
    } else if (nasc_lm_generate(&j.ctx, j.net.prim, j.weights, (const uint8_t *)prompt, (int64_t)strlen(prompt),
                                (int64_t)n, (float)temp, (uint64_t)seed, (int)threads, out) != NASC_OK) {
        rc = nasc_cli_fail(&j.ctx);
    } else {
        fputs(prompt, stdout);
        fwrite(out, 1, (size_t)n, stdout);
        fputc('\n', stdout);
    }
    nasc_free(&j.ctx, out);
    nasc_cli_job_close(&j);
    return rc;
}
