#!/usr/bin/env bash
# Rules the backend's source keeps, checked on the text of backend/*.c and
# backend/*.h so that breaking one fails a test instead of passing review:
#
#   1. Every call of a oneDNN function that returns a dnnl_status_t goes
#      through NB_CHECK, NB_TRY, NB_TRY_AS or NB_TRY_CTX (a diagnostic that names the
#      call, oneDNN's status and our file:line) or NB_DESTROY (a destroy,
#      asserted), with the call written as the wrapper's argument on the
#      wrapper's line. The list of such functions is read from the oneDNN
#      headers the compiler finds, so a new call is covered without
#      touching this file.
#
#   2. No memory from libc (malloc, free, aligned_alloc, ...): everything
#      through the context's allocator.
#   3. The OpenMP thread count is set only by backend/threads.c (once per
#      process), never while compiling or running a net.
#   4. No environment variable changes what the backend does (getenv):
#      switches are fields of the options structs, documented there.
#
# Comment lines (starting with *, /* or //) are skipped.
# CTest sets NASC_SOURCE_DIR (the source tree).
set -u -o pipefail

: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
SRC=$NASC_SOURCE_DIR/backend
fail() {
    echo "test_rules: FAIL: $*" >&2
    exit 1
}
[ -d "$SRC" ] || fail "no backend/ under $NASC_SOURCE_DIR"

# The oneDNN headers: where the compiler finds <oneapi/dnnl/dnnl.h>.
CC=${CC:-cc}
hdr=$(printf '#include <oneapi/dnnl/dnnl.h>\n' | "$CC" -M -x c - 2>/dev/null | tr ' \\' '\n\n' | grep '/oneapi/dnnl/dnnl\.h$' | head -n1)
[ -n "$hdr" ] && [ -f "$hdr" ] || fail "cannot find oneapi/dnnl/dnnl.h with $CC"
fns=$(perl -ne 'print "$1\n" while /\bdnnl_status_t\s+DNNL_API\s+(dnnl_\w+)\s*\(/g' "$(dirname "$hdr")"/*.h | sort -u)
n_fns=$(printf '%s\n' "$fns" | grep -c .)
# a broken header scan must not pass as "nothing to check"
[ "$n_fns" -ge 100 ] || fail "found only $n_fns status-returning functions in $(dirname "$hdr")"
for f in dnnl_memory_create dnnl_primitive_execute dnnl_stream_wait dnnl_primitive_desc_destroy; do
    grep -qx "$f" <<<"$fns" || fail "$f is not among the status-returning functions read from $hdr"
done

# Rule 1.
bad=$(FNS="$fns" perl -e '
    my %fn = map { $_ => 1 } split /\n/, $ENV{FNS};
    my ($n, $bad) = (0, 0);
    for my $file (@ARGV) {
        open my $fh, "<", $file or die "$file: $!";
        while (my $line = <$fh>) {
            next if $line =~ m{^\s*(\*|/\*|//)};
            while ($line =~ /\b(dnnl_\w+)\s*\(/g) {
                my $name = $1;
                next unless $fn{$name};
                my $pre = substr($line, 0, $-[0]);
                $pre =~ s/^.*;//;  # this statement only
                $n++;
                next if $pre =~ /\bNB_(?:CHECK|TRY|TRY_CTX)\s*\(\s*[^,()]+,\s*$/
                     || $pre =~ /\bNB_TRY_AS\s*\(\s*[^,()]+,\s*[^,]+,\s*$/
                     || $pre =~ /\bNB_DESTROY\s*\(\s*$/;
                my $rel = $file =~ s{.*/backend/}{backend/}r;
                print "$rel:$.: $name without NB_CHECK/NB_TRY/NB_TRY_AS/NB_DESTROY: ", $line =~ s/^\s+//r;
                $bad++;
            }
        }
        close $fh;
    }
    print STDERR "checked $n calls of status-returning oneDNN functions\n";
    exit($n == 0 ? 2 : 0);
' "$SRC"/*.c "$SRC"/*.h)
rc=$?
[ $rc -eq 2 ] && fail "no oneDNN calls found in backend/ (is the scan broken?)"
[ $rc -eq 0 ] || fail "the oneDNN call scan failed (perl exit $rc)"
if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    fail "$(printf '%s\n' "$bad" | grep -c .) oneDNN statuses not checked (rule 1)"
fi

# Rule 2: memory comes from the context's allocator (nasc_alloc, nasc_realloc,
# nasc_free), so that a user's allocator sees it and tests can make it fail.
bad=$(perl -ne '
    next if m{^\s*(\*|/\*|//)};
    s{/\*.*?\*/}{}g; s{//.*}{};
    if (/\b(malloc|calloc|realloc|free|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|strdup|strndup)\s*\(/) {
        my $name = $1;
        my $rel = $ARGV =~ s{.*/backend/}{backend/}r;
        print "$rel:$.: $name: ", s/^\s+//r;
    }
    close ARGV if eof;
' "$SRC"/*.c "$SRC"/*.h)
if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    fail "$(printf '%s\n' "$bad" | grep -c .) allocations outside the context's allocator (rule 2)"
fi

# Rule 3: the thread count is the process's, set in one place
# (backend/threads.c, once; there too the calling thread's count for a
# serial net's compile and passes); nothing else in the backend changes it.
bad=$(grep -nE '\b(omp_set_num_threads|omp_set_dynamic|omp_set_max_active_levels|dnnl_set_num_threads|mkl_set_num_threads)\s*\(' \
    "$SRC"/*.c "$SRC"/*.h | grep -v '^[^:]*/threads\.c:' | grep -vE '^[^:]*:[0-9]+:\s*(\*|/\*|//)')
if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    fail "thread count set outside backend/threads.c (rule 3)"
fi

# Rule 4: behaviour is chosen by documented options (nasc_net_options ...),
# never by an environment variable read behind the caller's back.
bad=$(grep -nE '\b(getenv|secure_getenv)\s*\(' "$SRC"/*.c "$SRC"/*.h | grep -vE '^[^:]*:[0-9]+:\s*(\*|/\*|//)')
if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    fail "environment variables read in backend/ (rule 4): make them options"
fi

echo "test_rules: all rules hold"
