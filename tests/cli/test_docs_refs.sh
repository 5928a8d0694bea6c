#!/usr/bin/env bash
# Every file the tree names is in the tree, so a comment or a doc cannot
# point at a file that was renamed, split or never added:
#   - in every text file (sources, headers, docs, scripts, build files), a
#     path DIR/.../NAME.c|.h|.md|.def whose first directory is one of the
#     repository's (cli/, ir/, search/, tests/, docs/, ...) must exist, and
#     a glob (tests/*/test_*.c) must match a file;
#   - in the comments of C sources and headers, a bare NAME.c or NAME.h
#     must be a file of the tree (or a system header);
#   - anywhere, a bare file name ending in .md must be a file of the tree:
#     the repository refers to no document it does not carry.
# Files the build writes (the ONNX bindings protoc-c generates) are listed
# in GENERATED. CTest sets NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
cd "$NASC_SOURCE_DIR" || { echo "test_docs_refs: FAIL: cannot cd to $NASC_SOURCE_DIR" >&2; exit 1; }
GENERATED="onnx/onnx.pb-c.c onnx/onnx.pb-c.h"
failed=0
checked=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# The files of the tree: git's list in a checkout (untracked files that are
# not ignored included), else every file but build directories.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files -co --exclude-standard | grep -v '^node_modules/')
else
    mapfile -t files < <(find . -type f -not -path './.git/*' -not -path './node_modules/*' -not -path './build*' |
        sed 's|^\./||')
fi
present=()
for f in "${files[@]}"; do [ -f "$f" ] && present+=("$f"); done
files=("${present[@]}")
[ "${#files[@]}" -gt 50 ] || bad "only ${#files[@]} files found in $NASC_SOURCE_DIR"
# basename -> 1, for the bare names
declare -A base
for f in "${files[@]}"; do base[${f##*/}]=1; done
# the repository's top-level directories, as an alternation
dirs=$(for f in "${files[@]}"; do [[ "$f" == */* ]] && echo "${f%%/*}"; done | sort -u | paste -sd '|')
sources=()
for f in "${files[@]}"; do [[ "$f" =~ \.(c|h|def)$ ]] && sources+=("$f"); done

# 1. DIR/.../NAME.ext paths
while IFS= read -r hit; do
    where=${hit%:*}
    path=${hit##*:}
    checked=$((checked + 1))
    case " $GENERATED " in *" $path "*) continue ;; esac
    if [[ "$path" == *"*"* ]]; then
        compgen -G "$path" >/dev/null || bad "$where: '$path' matches no file"
    else
        [ -e "$path" ] || bad "$where: '$path' does not exist"
    fi
done < <(grep -n -o -I -E "\b($dirs)/[A-Za-z0-9_.*-]+(/[A-Za-z0-9_.*-]+)*\.(c|h|md|def)\b" -- "${files[@]}" 2>/dev/null)

# 2. bare NAME.c / NAME.h in C comments
while IFS= read -r hit; do
    where=${hit%:*}
    name=${hit##*:}
    name=${name##*[^A-Za-z0-9_.-]}
    checked=$((checked + 1))
    [ -n "${base[$name]:-}" ] && continue
    [[ "$name" == *.h ]] && [ -n "$(find /usr/include -name "$name" -print -quit 2>/dev/null)" ] && continue
    bad "$where: '$name' is not a file of the tree"
done < <(grep -n -I -E '^[[:space:]]*(/\*|\*|//)' -- "${sources[@]}" |
    grep -o -E '^[^:]+:[0-9]+:|(^|[^A-Za-z0-9_/.-])[A-Za-z0-9_-]+\.(c|h)\b' |
    awk '/^[^:]+:[0-9]+:$/ { at = substr($0, 1, length($0) - 1); next } { print at ":" $0 }')

# 3. bare document names (*.md) anywhere
while IFS= read -r hit; do
    where=${hit%:*}
    name=${hit##*:}
    name=${name##*[^A-Za-z0-9_.-]}
    checked=$((checked + 1))
    [ -n "${base[$name]:-}" ] || bad "$where: '$name' is not a document of the tree"
done < <(grep -n -o -I -E '(^|[^A-Za-z0-9_/.-])[A-Za-z0-9_-]+\.md\b' -- "${files[@]}" 2>/dev/null)

# 4. an opening comment "NAME.c - what it is" names its own file
for f in "${files[@]}"; do
    [[ "$f" =~ \.(c|h|def|sh|py|js)$ ]] || continue
    name=$(head -n 3 -- "$f" | grep -m1 -o -E '^(/\*|#|//) ?[A-Za-z0-9_.-]+\.(c|h|def|sh|py|js) - ' |
        sed -E 's@^(/\*|#|//) ?@@; s@ - $@@')
    [ -n "$name" ] || continue
    checked=$((checked + 1))
    [ "$name" = "${f##*/}" ] || bad "$f: its opening comment calls it '$name'"
done

echo "test_docs_refs: $checked references in ${#files[@]} files, $failed missing"
[ "$checked" -gt 100 ] || { echo "FAIL: only $checked references found; the scan is broken" >&2; exit 1; }
[ "$failed" -eq 0 ]
