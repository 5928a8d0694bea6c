/* verbs.h - the verbs of the `nasc` command, one file each. Every verb
 * gets its own argv (argv[0] is the verb name) and returns an exit code
 * (opts.h). */
#ifndef NASC_CLI_VERBS_H
#define NASC_CLI_VERBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

int nasc_cli_dump(int argc, char **argv);
void nasc_cli_dump_help(FILE *out);

int nasc_cli_check(int argc, char **argv);
void nasc_cli_check_help(FILE *out);

int nasc_cli_train(int argc, char **argv);
void nasc_cli_train_help(FILE *out);

int nasc_cli_eval(int argc, char **argv);
void nasc_cli_eval_help(FILE *out);

int nasc_cli_generate(int argc, char **argv);
void nasc_cli_generate_help(FILE *out);

int nasc_cli_bench(int argc, char **argv);
void nasc_cli_bench_help(FILE *out);

int nasc_cli_export(int argc, char **argv);
void nasc_cli_export_help(FILE *out);

int nasc_cli_run(int argc, char **argv);
void nasc_cli_run_help(FILE *out);

int nasc_cli_search(int argc, char **argv);
void nasc_cli_search_help(FILE *out);

int nasc_cli_test_onnx(int argc, char **argv);
void nasc_cli_test_onnx_help(FILE *out);

int nasc_cli_space(int argc, char **argv);
void nasc_cli_space_help(FILE *out);

int nasc_cli_sample(int argc, char **argv);
void nasc_cli_sample_help(FILE *out);

/* --blocks B / --layers L (a positive integer) into a space's options, for
 * `space` and `sample` (cli/space.c); returns like the opts.h matchers. */
struct nasc_cli_args;
struct nasc_space_options;
int nasc_cli_space_size_opt(struct nasc_cli_args *a, struct nasc_space_options *o);

/* The space and strategy tables as the verbs print them (cli/registry.c).
 * A registry is a function giving row i's name and one-line summary, false
 * past the last row. */
typedef bool (*nasc_cli_registry)(size_t i, const char **name, const char **summary);
bool nasc_cli_spaces(size_t i, const char **name, const char **summary);
bool nasc_cli_strategies(size_t i, const char **name, const char **summary);
/* Every name, joined with sep ("a, b" or "a|b"). */
void nasc_cli_registry_names(nasc_cli_registry rows, const char *sep, char *buf, size_t size);
/* A help row per name: "  NAME" and its summary from column col. */
void nasc_cli_registry_help(nasc_cli_registry rows, FILE *out, int col);
/* true when name is in the table; else an "unknown WHAT 'name' (known:
 * ...)" diagnostic on ctx and false. */
bool nasc_cli_registry_find(nasc_cli_registry rows, struct nasc_ctx *ctx, const char *what, const char *name);
/* The help rows of --blocks B and --layers L: the spaces each sizes, with
 * their defaults and ranges. */
void nasc_cli_space_size_help(FILE *out, int col);

#endif /* NASC_CLI_VERBS_H */
