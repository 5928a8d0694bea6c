#!/usr/bin/env bash
# Every registered search space and strategy is documented: the names come
# from the binary (`nasc space --list` and the Strategies section of
# `nasc search --help`, both printed from the tables in search/), and each
# must appear in its docs page and in README.md. A new table row without
# its documentation fails here.
#   space S:    a table row `S` in docs/search-spaces.md, S in README.md
#   strategy S: a heading "## S" in docs/strategies.md, S in README.md
# CTest sets NASC_BIN (the nasc executable) and NASC_SOURCE_DIR (the repo).
set -u -o pipefail

: "${NASC_BIN:?NASC_BIN must point at the nasc executable}"
: "${NASC_SOURCE_DIR:?NASC_SOURCE_DIR must point at the source tree}"
SRC=$NASC_SOURCE_DIR
failed=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# The first word of the rows of `nasc space --list` (after its header, up to
# the first blank line).
spaces=$("$NASC_BIN" space --list | awk 'NR == 1 { next } /^$/ { exit } { print $1 }') ||
    bad "nasc space --list failed"
# The rows of the "Strategies" section of `nasc search --help`: "  NAME  summary";
# wrapped summary lines start with more spaces.
strategies=$("$NASC_BIN" search --help | awk '/^Strategies/ { on = 1; next } on && /^$/ { exit } on && /^  [^ ]/ { print $1 }') ||
    bad "nasc search --help failed"

[ -n "$spaces" ] || bad "no space in \`nasc space --list\`"
[ -n "$strategies" ] || bad "no strategy in the Strategies section of \`nasc search --help\`"

for s in $spaces; do
    grep -qF -- "| \`$s\` |" "$SRC/docs/search-spaces.md" ||
        bad "space '$s' has no row (| \`$s\` | ...) in docs/search-spaces.md"
    grep -qw -- "$s" "$SRC/README.md" || bad "space '$s' is not in README.md"
done
for s in $strategies; do
    grep -qE -- "^## $s( |$)" "$SRC/docs/strategies.md" ||
        bad "strategy '$s' has no section (## $s) in docs/strategies.md"
    grep -qw -- "$s" "$SRC/README.md" || bad "strategy '$s' is not in README.md"
done

# The error of an unknown name lists the same tables.
want_spaces=$(echo $spaces | sed 's/ /, /g')
want_strategies=$(echo $strategies | sed 's/ /, /g')
err=$("$NASC_BIN" search --space nope --strategy nope --budget 1 --out /nonexistent 2>&1 >/dev/null)
[[ "$err" == *"unknown search space 'nope' (known: $want_spaces)"* ]] ||
    bad "unknown --space: expected the known list '$want_spaces', got: $err"
first_space=${spaces%%$'\n'*}
err=$("$NASC_BIN" search --space "$first_space" --strategy nope --budget 1 --out /nonexistent 2>&1 >/dev/null)
[[ "$err" == *"unknown strategy 'nope' (known: $want_strategies)"* ]] ||
    bad "unknown --strategy: expected the known list '$want_strategies', got: $err"
err=$("$NASC_BIN" space nope 2>&1 >/dev/null)
[[ "$err" == *"$want_spaces"* ]] || bad "nasc space nope: expected the known list '$want_spaces', got: $err"

echo "test_registry_docs: spaces:" $spaces "; strategies:" $strategies "; $failed failed"
[ "$failed" -eq 0 ]
