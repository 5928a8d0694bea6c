/* threads.c - the process's OpenMP thread count, set once.
 *
 * oneDNN (built on OpenMP) and nasc's own kernels run as many threads as
 * OpenMP allows the calling thread. That is one setting for the whole
 * process, so it is made once, before nets run, and never again by the
 * backend: not per compile, not per step. The count the backend set is
 * remembered so that a later request for another count is an error the
 * caller sees instead of a silent change under nets already compiled
 * (their kernel scratch is planned for the count).
 */
#include <omp.h>
#include <stdatomic.h>

#include "nasc_backend.h"

/* 0: not set by the backend (OpenMP's default: OMP_NUM_THREADS, else all cores) */
static atomic_int process_threads;

nasc_status nasc_backend_set_threads(nasc_ctx *ctx, int threads) {
    if (threads < 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "the thread count must be 0 (all) or more, not %d",
                          threads);
    if (threads == 0) return NASC_OK;
    int was = 0;
    if (atomic_compare_exchange_strong(&process_threads, &was, threads)) {
        omp_set_num_threads(threads);
        return NASC_OK;
    }
    if (was == threads) return NASC_OK;
    return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                      "the process already runs %d threads; the thread count is set once per process, before "
                      "the first net, and cannot become %d",
                      was, threads);
}

int nasc_backend_threads(void) { return omp_get_max_threads(); }

bool nasc_backend_threads_bound(void) { return omp_get_proc_bind() != omp_proc_bind_false; }

/* A serial net: the calling thread's count is 1 while the net compiles (oneDNN
 * fixes a primitive's split between threads when it creates it) and while
 * it runs a pass, and what it was after; the process's count, and other
 * threads', are untouched. */
int nb_serial_begin(void) {
    int was = omp_get_max_threads();
    if (was > 1) omp_set_num_threads(1);
    return was;
}

void nb_serial_end(int was) {
    if (omp_get_max_threads() != was) omp_set_num_threads(was);
}
