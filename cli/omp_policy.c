/* omp_policy.c - the `nasc` command's default OpenMP wait policy.
 *
 * oneDNN runs on GNU OpenMP (libgomp). Between parallel regions libgomp's
 * idle threads spin, GOMP_SPINCOUNT times (300000 when OMP_WAIT_POLICY is
 * unset) before they sleep. On a quiet machine that saves a wake-up per
 * region; when another process keeps the cores busy, nasc's threads spin
 * against it and against each other, and inference at batch 64 kept 1.4%
 * to 10% of its quiet throughput (ONNX Runtime 42%): 300000 spins take about
 * 5.6 ms on a 2-core EPYC (18.6 ns a spin), longer than the time slice the
 * thread being waited for lost to the other process. No spin at all
 * (OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=0) costs 70% of the quiet speed
 * at batch 1 (every region waits for a wake-up). GOMP_SPINCOUNT=10000
 * (0.19 ms) kept the quiet speed (DARTS-V2 inference, batch 64: 1514 images/s
 * against 1490 with the default, medians) and a third of it with `stress -c 2`
 * beside (504 against 150); 1000 to 100000 all did about as well loaded.
 * Training and batch 1 under load stay far lower with any setting (about a
 * fifth): every small step waits for both threads to be scheduled.
 *
 * libgomp reads these variables in its constructor, before main, and has
 * no call to change them afterwards; a pre-initialization function (which
 * runs before libgomp's) cannot set them either, since libc's own
 * initialization resets the environment to the one the kernel passed. So
 * the command sets the variable and executes itself again. This is the one
 * place library or CLI code reads the environment (the exception in
 * tests/search/test_rules.sh); the user's own setting of either variable
 * always wins. Nor does it start again when OpenMP binds threads to places
 * (OMP_PROC_BIND, OMP_PLACES): the runtime binds the first thread before
 * main, and the new process would inherit that binding as its whole CPU
 * set and run one thread. */
#include "omp_policy.h"

#include "nasc_backend.h"

#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

/* /proc/self/exe is the file the kernel was asked to run (AT_EXECFN), i.e.
 * nasc started directly. Not so when nasc runs under a program that loads
 * it itself (the dynamic loader named on the command line, valgrind): then
 * /proc/self/exe is that program, and executing it with nasc's argv would
 * run something else (or leave valgrind behind). Nor when the file at that
 * path was replaced since nasc started. */
static int started_directly(void) {
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    struct stat self, asked;
    if (!execfn || stat("/proc/self/exe", &self) != 0 || stat(execfn, &asked) != 0) return 0;
    return self.st_dev == asked.st_dev && self.st_ino == asked.st_ino;
}

void nasc_cli_omp_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return; /* the user's choice, or set already */
    /* Threads bound to places: the runtime has bound this thread to the
     * first place already, and a new process would take that one place for
     * all the CPUs it may use (one thread). */
    if (nasc_backend_threads_bound()) return;
    if (!started_directly()) return;
    /* The new process finds the variable set and returns above: one exec at
     * most, and none if setenv fails. */
    if (setenv(NASC_CLI_OMP_POLICY_VAR, NASC_CLI_OMP_POLICY_VALUE, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* The exec failed (no /proc, a sandbox): run on with the runtime's
     * default, as nasc did before, without a message on every command. The
     * variable goes, so that the environment does not claim a policy this
     * process does not have. */
    unsetenv(NASC_CLI_OMP_POLICY_VAR);
}
