/* omp_policy.h - how the `nasc` command's OpenMP threads wait: the default
 * that keeps a loaded machine usable (omp_policy.c). */
#ifndef NASC_CLI_OMP_POLICY_H
#define NASC_CLI_OMP_POLICY_H

/* The setting nasc runs with when the user set neither OMP_WAIT_POLICY nor
 * GOMP_SPINCOUNT (the figures behind the choice: omp_policy.c). */
#define NASC_CLI_OMP_POLICY_VAR "GOMP_SPINCOUNT"
#define NASC_CLI_OMP_POLICY_VALUE "10000"

/* Call first in main. When the environment has neither OMP_WAIT_POLICY nor
 * GOMP_SPINCOUNT, sets NASC_CLI_OMP_POLICY_VAR and executes the same binary
 * again with the same argv (the OpenMP runtime read its environment when it
 * was loaded, before main, so this process cannot change its policy). The
 * new process finds the variable set and returns here at once: one exec at
 * most. Returns when nothing is to be done or the exec failed (then nasc
 * runs with the runtime's default, silently). */
void nasc_cli_omp_policy(char **argv);

#endif
