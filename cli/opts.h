/* opts.h - what the verbs of the `nasc` command share: option parsing, the
 * common model options, loading a model with its diagnostics, and number
 * formatting for reports. No compiler logic lives in cli/. */
#ifndef NASC_CLI_OPTS_H
#define NASC_CLI_OPTS_H

#include <signal.h>
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

/* A whole string as a number within [lo, hi]. */
bool nasc_cli_parse_int(const char *s, long lo, long hi, long *out);
bool nasc_cli_parse_float(const char *s, double lo, double hi, double *out);

/* A verb's options as a table, one row per option; nasc_cli_parse reads
 * argv against it. An option that is absent leaves *out as the verb set it
 * (its default). */
typedef enum nasc_cli_opt_kind {
    NASC_CLI_STR,   /* out: const char **, the value as given */
    NASC_CLI_FLAG,  /* out: bool *, true when the option is there; takes no value */
    NASC_CLI_INT,   /* out: long *, an integer in [lo, hi] */
    NASC_CLI_FLOAT, /* out: double *, a number in [lo, hi] */
    NASC_CLI_LIST,  /* out: const char *[cap], every value in order (repeatable); *count of them */
} nasc_cli_opt_kind;

typedef struct nasc_cli_opt {
    const char *name;       /* "--batch" */
    const char *short_name; /* "-o", or NULL */
    nasc_cli_opt_kind kind;
    void *out;
    double lo, hi;          /* INT, FLOAT: the accepted range */
    const char *want;       /* INT, FLOAT: what the value must be, in the usage error; NULL
                               gives "an integer in [lo, hi]" / "a number in [lo, hi]" */
    const char *missing;    /* the usage error when the option is absent; NULL: optional */
    bool file;              /* STR, LIST: an empty value is a usage error */
    int *count;             /* LIST: how many values out holds */
    int cap;                /* LIST: room in out */
} nasc_cli_opt;

/* The four fields every row has, for designated initializers:
 * {NASC_CLI_OPT("--batch", NULL, NASC_CLI_INT, &batch), .lo = 1, .hi = 65536} */
#define NASC_CLI_OPT(name_, short_, kind_, out_) .name = (name_), .short_name = (short_), .kind = (kind_), .out = (out_)
/* An option table and its length, for nasc_cli_parse. */
#define NASC_CLI_TABLE(opts) (opts), (sizeof(opts) / sizeof((opts)[0]))

#define NASC_CLI_MAX_OPTS 48 /* rows of one table at most */
/* nasc_cli_parse: go on with the verb (any other value is its exit code) */
enum { NASC_CLI_GO = -1 };

/* Whether a verb takes a positional MODEL. */
typedef enum nasc_cli_model_arg {
    NASC_CLI_NO_MODEL,    /* no positional argument at all */
    NASC_CLI_ONE_MODEL,   /* exactly one, required */
    NASC_CLI_MAYBE_MODEL, /* at most one; the verb checks mo->path itself */
} nasc_cli_model_arg;

/* Read the verb's arguments: -h/--help; the options of opts[0..n);
 * --set KEY=VALUE into mo when mo is not NULL; and the positional MODEL into
 * mo->path as model says. Then, in table order, each option's missing,
 * empty and range checks and its value into *out. Returns NASC_CLI_GO, or
 * the verb's exit code when it is done: NASC_EXIT_OK after printing the
 * help, NASC_EXIT_USAGE after printing a usage error. */
int nasc_cli_parse(nasc_cli_args *a, const nasc_cli_opt *opts, size_t n, nasc_cli_model *mo,
                   nasc_cli_model_arg model, void (*help)(FILE *out));

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

/* Ctrl-C during a long run (train, search): between catch and restore,
 * SIGINT only sets nasc_cli_interrupted, which the run's callbacks and the
 * search loop check. catch clears the flag and keeps the old action. */
extern volatile sig_atomic_t nasc_cli_interrupted;
void nasc_cli_sigint_catch(struct sigaction *old);
void nasc_cli_sigint_restore(const struct sigaction *old);

/* Seconds on the monotonic clock, for durations. */
double nasc_cli_now(void);
/* 125 -> "2:05", 3725 -> "1:02:05" (negative, NaN or absurd: "0:00"), for ETAs. */
void nasc_cli_fmt_duration(double seconds, char *buf, size_t size);
/* 3312640 -> "3,312,640" */
void nasc_cli_fmt_int(int64_t v, char *buf, size_t size);
/* 3312640 -> "3.31M" (K, M, G, T; 3 significant digits; small values as is) */
void nasc_cli_fmt_si(int64_t v, char *buf, size_t size);
/* A JSON string literal, quotes included. */
void nasc_cli_json_str(FILE *out, const char *s);

#endif /* NASC_CLI_OPTS_H */
