/* opts.h - what the verbs of the `nasc` command share: option parsing, the
 * common model options, loading a model with its diagnostics, and number
 * formatting for reports. No compiler logic lives in cli/. */
#ifndef NASC_CLI_OPTS_H
#define NASC_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nasc_frontend.h"

/* Exit codes of every verb. */
enum {
    NASC_EXIT_OK = 0,
    NASC_EXIT_INPUT = 1, /* bad input: a `file:line:col: error:` diagnostic was printed */
    NASC_EXIT_USAGE = 2, /* bad command line: a message and the short usage were printed */
};

#define NASC_CLI_MAX_SET 64

/* The options every verb that takes a model accepts. */
typedef struct nasc_cli_model {
    const char *path;                   /* the MODEL argument; NULL until seen */
    nasc_override ov[NASC_CLI_MAX_SET]; /* --set key=value, in command-line order */
    size_t n_ov;
} nasc_cli_model;

/* A cursor over one verb's arguments (argv[0] is the verb). */
typedef struct nasc_cli_args {
    const char *verb;
    void (*usage)(FILE *out); /* one or two "usage:" lines */
    int argc;
    char **argv;
    int i;            /* next argument to look at */
    bool positional;  /* "--" seen: everything after is positional */
} nasc_cli_args;

void nasc_cli_args_init(nasc_cli_args *a, int argc, char **argv, void (*usage)(FILE *));

/* "nasc VERB: message", the verb's usage and a hint, to stderr. Returns
 * NASC_EXIT_USAGE so a verb can `return nasc_cli_usage_error(...)`. */
int nasc_cli_usage_error(const nasc_cli_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Matchers for the argument under the cursor. Each returns 1 and advances
 * when it matched, 0 when the argument is something else, and -1 after
 * printing a usage error (missing or malformed value). */
int nasc_cli_value_opt(nasc_cli_args *a, const char *name, const char *short_name,
                       const char **value);
int nasc_cli_flag(nasc_cli_args *a, const char *name);
int nasc_cli_model_opt(nasc_cli_args *a, nasc_cli_model *mo); /* --set key=value */
/* The argument is a positional one: returns it and advances, else NULL
 * (an option). Handles "--". */
const char *nasc_cli_positional(nasc_cli_args *a);
bool nasc_cli_is_help(const char *arg); /* -h, --help */

/* Load the model with its overrides; on failure print the diagnostic and
 * return NASC_EXIT_INPUT. */
int nasc_cli_load(nasc_ctx *ctx, const nasc_cli_model *mo, nasc_module **out);
/* Print the context's diagnostic and return NASC_EXIT_INPUT. */
int nasc_cli_fail(const nasc_ctx *ctx);

/* Help text of the common model options. */
void nasc_cli_model_help(FILE *out);
/* One help line: "  left", then text from column col, wrapped before column
 * 80 with continuation lines indented to col (text on the next line when
 * left does not fit before col). */
void nasc_cli_help_row(FILE *out, const char *left, int col, const char *text);

/* 3312640 -> "3,312,640" */
void nasc_cli_fmt_int(int64_t v, char *buf, size_t size);
/* 3312640 -> "3.31M" (K, M, G, T; 3 significant digits; small values as is) */
void nasc_cli_fmt_si(int64_t v, char *buf, size_t size);
/* A JSON string literal, quotes included. */
void nasc_cli_json_str(FILE *out, const char *s);

#endif /* NASC_CLI_OPTS_H */
