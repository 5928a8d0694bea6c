#!/bin/bash
# Source rules that keep two classes of defect from coming back:
#  1. A flag written by a signal handler is `volatile sig_atomic_t` (or a C11
#     atomic): a plain `volatile int`/`bool` shared with a handler is a data
#     race the compiler may break.
#  2. Library code and the CLI do not change behaviour through environment
#     variables: every switch is a documented option or flag (getenv only in
#     tests/ and bench/). One exception: cli/omp_policy.c reads
#     OMP_WAIT_POLICY and GOMP_SPINCOUNT. The OpenMP runtime takes its wait
#     policy from the environment when it is loaded, before main, so setting
#     one of them and executing nasc again is the only way the command can
#     choose it, and it must see whether the user chose already. Two:
#     cli/dist.c reads the size of the MPI job that mpirun (or PMIx, or
#     Slurm's PMI) gives each process it starts (OMPI_COMM_WORLD_SIZE,
#     PMIX_SIZE, PMI_SIZE): not a switch of the user's, but how a process
#     learns it is one of several ranks, so that a search started by mpirun
#     initialises MPI and one started alone does not (and a build without
#     MPI can refuse to run as one of several ranks).
set -u
ROOT=${NASC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT" || exit 1
failed=0 passed=0
dirs="ir frontend export onnx backend search cli examples"

# Rule 1: no volatile object of another type than sig_atomic_t.
hits=$(grep -nE '\bvolatile\b' $(find $dirs -name '*.[ch]' 2>/dev/null) |
       grep -vE 'volatile[[:space:]]+sig_atomic_t|^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)')
n=$(find $dirs -name '*.[ch]' 2>/dev/null | wc -l)
if [ "$n" -lt 50 ]; then
    echo "FAIL: found only $n C files under $dirs: the scan looked in the wrong place" >&2
    failed=$((failed + 1))
elif [ -n "$hits" ]; then
    echo "FAIL: volatile objects that are not sig_atomic_t (a signal flag must be volatile sig_atomic_t):" >&2
    echo "$hits" | sed 's/^/    /' >&2
    failed=$((failed + 1))
else
    passed=$((passed + 1))
fi

# Rule 2: no getenv outside tests and benchmarks, but for the two OpenMP
# variables in cli/omp_policy.c and the launcher's job size in cli/dist.c
# (the exceptions above; any other getenv there fails too, and so does a
# launcher variable list that names anything else).
omp_exception='^cli/omp_policy\.c:[0-9]+:[[:space:]]*if \(getenv\("OMP_WAIT_POLICY"\) \|\| getenv\("GOMP_SPINCOUNT"\)\) return;[[:space:]]*(/\*.*)?$'
mpi_exception='^cli/dist\.c:[0-9]+:[[:space:]]*const char \*v = getenv\(launcher_size\[i\]\);$'
mpi_list='static const char \*const launcher_size\[\] = \{"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", NULL\};'
if ! grep -qE "$mpi_list" cli/dist.c; then
    echo "FAIL: cli/dist.c's launcher_size[] is not the list of the three job-size variables" >&2
    failed=$((failed + 1))
fi
hits=$(grep -nE '\b(secure_)?getenv[[:space:]]*\(' $(find $dirs -name '*.[ch]' 2>/dev/null) |
       grep -vE "$omp_exception" | grep -vE "$mpi_exception")
if [ -n "$hits" ]; then
    echo "FAIL: environment variables read by library or CLI code (make them options or flags):" >&2
    echo "$hits" | sed 's/^/    /' >&2
    failed=$((failed + 1))
else
    passed=$((passed + 1))
fi

echo "test_rules: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
