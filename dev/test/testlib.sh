# shellcheck shell=bash
# testlib.sh: what the shell tests share (sourced first): the repository root as the working
# folder, ok/bad counters, a temp folder removed at exit, and the summary line `make test` reads.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
pass=0; fail=0
ok()  { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# summary: the last line, and the exit status
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
