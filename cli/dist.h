/* dist.h - `nasc search` under mpirun (cli/dist.c, docs/distributed.md).
 *
 * Rank 0 is the server: it owns the strategy, the journal and the run
 * directory (the only writer), proposes children and hands each to an idle
 * worker rank; the other ranks train the children they are given and send
 * back the result. A nasc built without Open MPI runs every search in one
 * process and refuses to run as one of several mpirun ranks. */
#ifndef NASC_CLI_DIST_H
#define NASC_CLI_DIST_H

#include <stdbool.h>

#include "nasc_search.h"

typedef struct nasc_cli_mpi {
    bool active;     /* MPI was initialised (started by mpirun with more than one rank) */
    int rank, size;
    int local_size;  /* ranks on this node */
    bool server_here; /* rank 0 runs on this node */
    int cores;       /* cores this process may run on */
} nasc_cli_mpi;

/* Started by a launcher (mpirun sets OMPI_COMM_WORLD_SIZE, PMIx and
 * Slurm's PMI their own) with more than one rank. */
bool nasc_cli_mpi_launched(void);
/* Whether this nasc was built with Open MPI, and in words: "built with
 * Open MPI v4.1.4, ..." or "built without MPI: searches run in one
 * process". */
bool nasc_cli_mpi_built(void);
void nasc_cli_mpi_library(char *buf, size_t size);
/* MPI_Init when launched with more than one rank (m->active), else a
 * one-process description. NASC_EINPUT when launched with several ranks
 * but built without MPI. */
nasc_status nasc_cli_mpi_init(nasc_ctx *ctx, nasc_cli_mpi *m);
/* Threads per worker rank when --threads is not given: the node's cores
 * shared by the worker ranks on it (rank 0 mostly waits). */
int nasc_cli_mpi_worker_threads(const nasc_cli_mpi *m);
/* The workers stop (rank 0) and MPI ends. When a worker rank was given up
 * as hung, MPI_Abort ends the job instead (exit status `rc`), as
 * MPI_Finalize would wait for it. */
void nasc_cli_mpi_finish(nasc_cli_mpi *m, int rc);

/* What rank 0 measured. */
typedef struct nasc_cli_mpi_stats {
    int64_t trials;          /* recorded by this run (excluding resumed ones) */
    int64_t tasks, results;  /* messages sent to and received from workers */
    int64_t task_bytes, result_bytes; /* bytes of one such message */
    double busy_s;           /* rank 0's time proposing, preparing, recording and saving */
    double record_s;         /* of it, appending to the journal and saving the strategy state */
    double wall_s;           /* the loop's wall time */
    int workers, lost;       /* worker ranks, and those given up (hung, or failed to start) */
} nasc_cli_mpi_stats;

/* Rank 0: the search loop of nasc_search_loop with the children trained
 * by the worker ranks, as many at a time as there are workers. A worker
 * that has not answered after hang_s seconds (0: never) is given up: its
 * child is a failed trial saying so, and the search goes on with the
 * others (an error when none is left). */
nasc_status nasc_cli_mpi_serve(nasc_ctx *ctx, nasc_cli_mpi *m, nasc_search_run *r, double hang_s,
                               nasc_cli_mpi_stats *stats);
/* A worker rank: tell rank 0 whether it could start (error: the text
 * rank 0 prints), then train every child it is sent with eval until told
 * to stop. */
nasc_status nasc_cli_mpi_work(nasc_ctx *ctx, nasc_cli_mpi *m, const nasc_space *sp, nasc_evaluator eval,
                              const char *const *set_keys, const char *const *set_vals, int n_set,
                              const char *error);

#endif /* NASC_CLI_DIST_H */
