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

#endif /* NASC_CLI_VERBS_H */
