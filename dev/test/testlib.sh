# shellcheck shell=bash
# testlib.sh: what the shell tests share (sourced first): the repository root as the working
# folder, ok/bad counters, a temp folder removed at exit, and the summary line `make test` reads.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
pass=0; fail=0
ok()  { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# compare_losses NAME A.jsonl B.jsonl TOL: two training logs agree line for line, every "loss" and
# "val_loss" within relative TOL (0: bitwise); one ok/bad line with the worst difference
compare_losses() {
    local r; r=$(python3 - "$2" "$3" "$4" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
worst, n = 0.0, 0
for x, y in zip(a, b):
    for k in ("loss", "val_loss"):
        if k in x:
            n += 1
            worst = max(worst, abs(x[k] - y.get(k, float("nan"))) / abs(x[k]) if k in y else float("inf"))
good = len(a) == len(b) and n > 0 and worst <= tol
print(("ok " if good else "bad ") + f"{len(a)} vs {len(b)} lines, max rel. difference {worst:.2e} (bound {tol:g})")
PY
)
    if [[ $r == ok* ]]; then ok "$1: ${r#ok }"; else bad "$1: ${r#bad }"; fi
}

# summary: the last line, and the exit status
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
