# shellcheck shell=bash
# testlib.sh: what the shell tests share (sourced first): the repository root as the working
# folder, ok/bad counters, a temp folder removed at exit, and the summary line `make test` reads.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
pass=0; fail=0
ok()  { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# compare_losses NAME A.jsonl B.jsonl TOL [FIRST FIRST_TOL]: two training logs agree line for line,
# every "loss" and "val_loss" within relative TOL (0: bitwise), and the first FIRST lines' within
# FIRST_TOL; one ok/bad line with the worst differences
compare_losses() {
    local r; r=$(python3 - "$2" "$3" "$4" "${5:-0}" "${6:-0}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol, first, first_tol = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
worst, worst_first, n = 0.0, 0.0, 0
for i, (x, y) in enumerate(zip(a, b)):
    for k in ("loss", "val_loss"):
        if k in x:
            n += 1
            d = abs(x[k] - y.get(k, float("nan"))) / abs(x[k]) if k in y else float("inf")
            worst = max(worst, d)
            if i < first: worst_first = max(worst_first, d)
good = len(a) == len(b) and n > 0 and worst <= tol and worst_first <= first_tol
head = f", the first {first} within {worst_first:.2e} (bound {first_tol:g})" if first else ""
print(("ok " if good else "bad ") + f"{len(a)} vs {len(b)} lines, max rel. difference {worst:.2e} (bound {tol:g}){head}")
PY
)
    if [[ $r == ok* ]]; then ok "$1: ${r#ok }"; else bad "$1: ${r#bad }"; fi
}

# compare_codes NAME A/state.bin B/state.bin MAX_FRACTION: the 8-bit codes of two checkpoints agree
# but for MAX_FRACTION of them, each disagreement one code apart (dev/test/compare_state.py)
compare_codes() {
    local r; r=$(python3 dev/test/compare_state.py "$2" "$3" "$4" 2>&1)
    if [[ $r == ok* ]]; then ok "$1: ${r#ok }"; else bad "$1: ${r#bad }"; fi
}

# summary: the last line, and the exit status
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
