/* verbs.h - the verbs of the `nasc` command, one file each. Every verb
 * gets its own argv (argv[0] is the verb name) and returns an exit code
 * (opts.h). */
#ifndef NASC_CLI_VERBS_H
#define NASC_CLI_VERBS_H

#include <stdio.h>

int nasc_cli_dump(int argc, char **argv);
void nasc_cli_dump_help(FILE *out);

int nasc_cli_check(int argc, char **argv);
void nasc_cli_check_help(FILE *out);

int nasc_cli_train(int argc, char **argv);
void nasc_cli_train_help(FILE *out);

int nasc_cli_eval(int argc, char **argv);
void nasc_cli_eval_help(FILE *out);

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

#endif /* NASC_CLI_VERBS_H */
