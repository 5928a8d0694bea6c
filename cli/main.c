/* main.c - the `nasc` command: find the verb and hand it its arguments. */
#include <string.h>

#include "nasc_ir.h"
#include "omp_policy.h"
#include "opts.h"
#include "verbs.h"

typedef struct verb {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *out);
} verb;

static int help_run(int argc, char **argv);
static void help_help(FILE *out);

/* The verbs: the only place a verb is registered; `nasc --help` and the
 * "unknown verb" message list this table. */
static const verb verbs[] = {
    {"check", "verify a model and report its parameters and cost", nasc_cli_check,
     nasc_cli_check_help},
    {"dump", "print a model's IR after a pass (text or graphviz)", nasc_cli_dump,
     nasc_cli_dump_help},
    {"train", "train a model on Fashion-MNIST (or IDX files; a language model on text)", nasc_cli_train,
     nasc_cli_train_help},
    {"eval", "test accuracy of a trained checkpoint", nasc_cli_eval, nasc_cli_eval_help},
    {"generate", "sample text from a trained character language model", nasc_cli_generate,
     nasc_cli_generate_help},
    {"search", "search an architecture, then train, export and draw the best", nasc_cli_search,
     nasc_cli_search_help},
    {"bench", "training and inference speed against the machine's sgemm peak", nasc_cli_bench,
     nasc_cli_bench_help},
    {"export", "write a model and its weights as an ONNX file", nasc_cli_export, nasc_cli_export_help},
    {"run", "run a model on input tensors (ONNX TensorProto .pb files)", nasc_cli_run, nasc_cli_run_help},
    {"test-onnx", "run ONNX node test cases through the importer and the backend", nasc_cli_test_onnx,
     nasc_cli_test_onnx_help},
    {"space", "list the search spaces, or one space's decisions and size", nasc_cli_space,
     nasc_cli_space_help},
    {"sample", "a random architecture of a search space, as a YAML model", nasc_cli_sample,
     nasc_cli_sample_help},
    {"help", "show the help of a verb", help_run, help_help},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static void short_usage(FILE *out) {
    fputs("usage: nasc [--version] [--help] VERB [ARGS...]\n"
          "       nasc help VERB\n",
          out);
}

static void help(FILE *out) {
    fputs("nasc - a neural architecture search compiler\n\n", out);
    short_usage(out);
    fputs("\nVerbs:\n", out);
    for (size_t i = 0; i < N_VERBS; i++) fprintf(out, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
    fputs("\nExit codes: 0 success, 1 bad input (file:line:col: error: ...),\n"
          "2 bad command line.\n"
          "\nEnvironment: unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, nasc\n"
          "sets " NASC_CLI_OMP_POLICY_VAR "=" NASC_CLI_OMP_POLICY_VALUE
          " and starts itself again, once (OpenMP\n"
          "reads them before the program runs): idle threads spin briefly, then\n"
          "sleep, so other busy processes do not stall them. A value set by the\n"
          "user is kept (OMP_WAIT_POLICY=active: spin as OpenMP does by default),\n"
          "and so is OpenMP's default when threads are bound (OMP_PROC_BIND,\n"
          "OMP_PLACES).\n"
          "\nStart with `nasc space --list`, `nasc search --help` or `nasc check MODEL`.\n",
          out);
}

static const verb *find_verb(const char *name) {
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(verbs[i].name, name) == 0) return &verbs[i];
    return NULL;
}

/* "unknown verb 'x' (known: check, dump, ...)", the names from the table */
static int unknown_verb(const char *name) {
    char known[512];
    size_t used = 0;
    known[0] = 0;
    for (size_t i = 0; i < N_VERBS && used < sizeof known; i++)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", verbs[i].name);
    fprintf(stderr, "nasc: unknown verb '%s' (known: %s)\n", name, known);
    short_usage(stderr);
    fputs("Try 'nasc --help' for the list of verbs.\n", stderr);
    return NASC_EXIT_USAGE;
}

static int usage_error(const char *fmt, const char *arg) {
    fputs("nasc: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    short_usage(stderr);
    fputs("Try 'nasc --help' for the list of verbs.\n", stderr);
    return NASC_EXIT_USAGE;
}

/* `nasc help [VERB]` (argv[0] is "help") */
static int help_run(int argc, char **argv) {
    if (argc > 2) return usage_error("help takes one verb, got '%s' too", argv[2]);
    const verb *v = argc == 2 && !nasc_cli_is_help(argv[1]) ? find_verb(argv[1]) : NULL;
    if (argc == 2 && !v && !nasc_cli_is_help(argv[1])) return unknown_verb(argv[1]);
    if (v && v->help != help_help) {
        v->help(stdout);
    } else {
        help(stdout);
    }
    return NASC_EXIT_OK;
}

static void help_help(FILE *out) { help(out); }

int main(int argc, char **argv) {
    nasc_cli_omp_policy(argv); /* first: it may execute nasc again */
    if (argc < 2) {
        fputs("nasc: missing VERB\n", stderr);
        short_usage(stderr);
        fputs("Try 'nasc --help' for the list of verbs.\n", stderr);
        return NASC_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        printf("nasc %s\n", NASC_VERSION);
        return NASC_EXIT_OK;
    }
    if (nasc_cli_is_help(first)) {
        help(stdout);
        return NASC_EXIT_OK;
    }
    if (first[0] == '-') return usage_error("unknown option '%s'", first);
    const verb *v = find_verb(first);
    if (!v) return unknown_verb(first);
    return v->run(argc - 1, argv + 1);
}
