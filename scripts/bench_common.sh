# shellcheck shell=bash
# scripts/bench_common.sh: the shared part of the GPU benchmarks scripts/bench_table11.sh and
# scripts/bench_7b.sh (sourced, not run). Each runs train_llamacu and the reference trainer
# dev/bench_torch.py (PyTorch + HF transformers + galore-torch + bitsandbytes) on the same card,
# one configuration after the other, and prints a markdown table whose figures are ratios
# ours/torch from this one run (dev/gpu/bench_report.py), appended to RESULTS with date,
# commit and card. dev/gpu/README.md says how to run them on a lent GPU machine.
#
# Environment (all optional):
#   TRAINER      the GPU trainer [./train_llamacu]
#   PYTHON       a python with torch (CUDA), transformers, galore-torch, bitsandbytes [python3]
#   DATA         the token shard both engines read in order [dev/data/tinytext/train_000.bin]
#                (ids < 4096, valid for the 32000-token paper models; the values do not change
#                the cost of a step)
#   ENGINES      which engines run: "ours torch", "ours" or "torch" [ours torch]
#   LOGDIR       each run's console, JSONL log and JSON result [a new /tmp/bench_NAME.XXXXXX]
#   RESULTS      the markdown file the table is appended to [dev/gpu/RESULTS.md]
#   RUN_TIMEOUT  seconds before one run is killed and reported as failed [1200]
#   COMMIT       the commit named in the table [git rev-parse --short HEAD, "-dirty" when edited]
#   EXTRA_OURS, EXTRA_TORCH  flags appended to every train_llamacu / bench_torch.py command
#   DRY=1        print the commands and exit: runs nothing, needs no trainer, GPU or torch
#   REPORT_ONLY=1  run nothing: make the table from the logs already in LOGDIR (and append it)
# A run that fails (exit status, timeout, out of memory) does not stop the others: its cells
# read n/a, and the script exits 1 after printing and appending the table.

set -euo pipefail

BENCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$BENCH_REPO"

PYTHON="${PYTHON:-python3}"
TRAINER="${TRAINER:-./train_llamacu}"
DATA="${DATA:-dev/data/tinytext/train_000.bin}"
ENGINES="${ENGINES:-ours torch}"
RESULTS="${RESULTS:-dev/gpu/RESULTS.md}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1200}"
DRY="${DRY:-0}"
REPORT_ONLY="${REPORT_ONLY:-0}"
EXTRA_OURS="${EXTRA_OURS:-}"
EXTRA_TORCH="${EXTRA_TORCH:-}"
# shellcheck disable=SC2034 # read by the scripts that source this file
BENCH_FAILED=0

bench_die() { echo "error: $*" >&2; exit 1; }

bench_wants() { case " $ENGINES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# bench_setup NAME: LOGDIR, and the checks that make a missing piece one clear line
bench_setup() {
    local name="$1" e
    for e in $ENGINES; do
        [ "$e" = ours ] || [ "$e" = torch ] || bench_die "ENGINES='$ENGINES': each must be 'ours' or 'torch'"
    done
    if [ "$DRY" = 1 ]; then
        LOGDIR="${LOGDIR:-/tmp/bench_$name.DRY}"
        echo "DRY=1: the commands, in order (nothing is run, nothing is appended to $RESULTS)"
        return 0
    fi
    if [ "$REPORT_ONLY" = 1 ]; then
        if [ -z "${LOGDIR:-}" ] || [ ! -d "$LOGDIR" ]; then
            bench_die "REPORT_ONLY=1 needs LOGDIR=the folder of an earlier run's logs"
        fi
        return 0
    fi
    if bench_wants ours && [ ! -x "$TRAINER" ]; then
        bench_die "trainer '$TRAINER' not found or not executable: build it with 'make train_llamacu' (needs nvcc and a CUDA 12+ toolkit; dev/gpu/README.md) or set TRAINER=path"
    fi
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        bench_die "no NVIDIA GPU here ('nvidia-smi -L' failed): these benchmarks need a CUDA GPU (DRY=1 prints the commands)"
    fi
    if bench_wants torch; then
        "$PYTHON" -c 'import sys, torch, transformers, galore_torch, bitsandbytes; sys.exit(0 if torch.cuda.is_available() else 3)' >/dev/null 2>&1 ||
            bench_die "$PYTHON cannot import torch (with CUDA), transformers, galore_torch and bitsandbytes: set PYTHON=..., or install the wheels (dev/gpu/README.md); ENGINES=ours runs only train_llamacu"
    fi
    LOGDIR="${LOGDIR:-$(mktemp -d "/tmp/bench_$name.XXXXXX")}"
    mkdir -p "$LOGDIR"
    echo "logs: $LOGDIR"
}

# bench_engine ENGINE LOGFILE CMD...: print (DRY) or run one command, its output to LOGFILE
bench_engine() {
    local engine="$1" logf="$2" rc=0
    shift 2
    bench_wants "$engine" || return 0
    if [ "$DRY" = 1 ]; then printf '+'; printf ' %q' "$@"; printf '\n'; return 0; fi
    [ "$REPORT_ONLY" = 1 ] && return 0
    printf '== %s %s:' "$(date -u +%H:%M:%S)" "$engine"; printf ' %q' "$@"; printf ' > %s\n' "$logf"
    timeout "$RUN_TIMEOUT" "$@" > "$logf" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "   FAILED with exit status $rc$([ "$rc" -eq 124 ] && echo ": killed after RUN_TIMEOUT=$RUN_TIMEOUT s"); the last lines of $logf:"
        tail -n 5 "$logf" | sed 's/^/   | /'
        BENCH_FAILED=1
    fi
    return 0
}

bench_commit() {
    if [ -n "${COMMIT:-}" ]; then echo "$COMMIT"; return 0; fi
    local c
    c="$(git rev-parse --short HEAD 2>/dev/null)" || { echo unknown; return 0; }
    git diff --quiet HEAD -- 2>/dev/null || c="$c-dirty"
    echo "$c"
}

bench_card() {
    local n
    n="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sed -n 1p)" || true
    echo "${n:-unknown}"
}

# bench_report KIND ROWS META...: the table (dev/gpu/bench_report.py), printed and appended to RESULTS
bench_report() {
    local kind="$1" rows="$2" rc=0 m
    shift 2
    local args=(dev/gpu/bench_report.py "$kind" --dir "$LOGDIR" --rows "$rows" --skip "$SKIP" --engines "$ENGINES"
        --meta "date=$(date -u +%Y-%m-%d)" --meta "commit=$(bench_commit)" --meta "logdir=$LOGDIR")
    for m in "$@"; do args+=(--meta "$m"); done
    if [ "$DRY" = 1 ]; then
        printf '+ %q' "$PYTHON"; printf ' %q' "${args[@]}" --meta "card=..."; printf '\n'
        return 0
    fi
    args+=(--meta "card=$(bench_card)")
    "$PYTHON" "${args[@]}" > "$LOGDIR/table.md" || rc=$?
    echo
    cat "$LOGDIR/table.md"
    if [ ! -f "$RESULTS" ]; then
        mkdir -p "$(dirname "$RESULTS")"
        printf '# GPU benchmark results\n\nAppended by scripts/bench_table11.sh and scripts/bench_7b.sh (dev/gpu/README.md).\n' > "$RESULTS"
    fi
    { echo; cat "$LOGDIR/table.md"; } >> "$RESULTS"
    echo
    echo "appended to $RESULTS; logs in $LOGDIR"
    # shellcheck disable=SC2034
    [ "$rc" -eq 0 ] || BENCH_FAILED=1
    return 0
}
