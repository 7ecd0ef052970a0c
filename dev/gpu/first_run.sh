#!/bin/bash
# shellcheck disable=SC2317  # the checks' functions are called through run_check
# dev/gpu/first_run.sh: dev/gpu/README.md's verification of the CUDA program as one command, for
# one call on a lent GPU machine (10 minutes, 8 files back). In the repository root, with the
# carried binaries (train_llamacu, test_llamacu, dev/cuda/*) and .gpu/lib:
#
#   bash dev/gpu/first_run.sh        # results in $OUT (the device tool's folder), else $RESULTS_DIR
#
# Runs the cheapest checks first and stops at the first failure:
#   gpu            nvidia-smi sees a GPU
#   driver         the driver runs CUDA 13 binaries (>= 580; older ones fail every launch with
#                  "CUDA driver version is insufficient")
#   binaries       every program is there, executable, and ldd finds its libraries
#   dev/cuda/NAME  each kernel check (dev/cuda/README.md), small ones first, galore_update quick
#   test_llamacu   the GPU tests of the whole program
#   dev/cuda/svd   quick: the refresh's solvers, llama_1b timings
#   test_dist_gpu  NCCL data parallel with one rank (dev/test/test_dist_gpu.sh)
# On a failure it prints (and writes to summary.txt) the check's name, the end of its output and the
# build flags, and exits 1. The results folder gets: summary.txt (one line per check with its time,
# then the failure), failed.log (the failing check's whole output), env.txt (card, driver, CUDA
# libraries found, libnvrtc for cuDNN's fused attention), build_flags.txt, logs.tgz (every
# check's output): 5 files, under the 8 the device tool returns.
#
# Environment: RESULTS_DIR (default /tmp/first_run; $OUT wins when set), CHECK_TIMEOUT (seconds per
# check, default 300), BUDGET (seconds for everything, default 540: a check that would start past it
# is reported as not run, leaving time for the transfers), KEEP_GOING=1 (run every check, report all
# failures), BUILD_FLAGS_FILE (default .gpu/lib/build_flags.txt, written at build time by
# dev/gpu/README.md's step), DEVICE_ENV (default dev/gpu/device_env.sh, sourced first; empty: not), TEST_LLAMACU / TRAIN_LLAMACU / DEV_CUDA / DIST_TEST (the programs; the
# CPU test of this script, scripts/test_scripts.sh, points them at fakes).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
RES="${OUT:-${RESULTS_DIR:-/tmp/first_run}}"
CHECK_TIMEOUT="${CHECK_TIMEOUT:-300}"
BUDGET="${BUDGET:-540}"
KEEP_GOING="${KEEP_GOING:-0}"
BUILD_FLAGS_FILE="${BUILD_FLAGS_FILE:-.gpu/lib/build_flags.txt}"
TEST_LLAMACU="${TEST_LLAMACU:-./test_llamacu}"
TRAIN_LLAMACU="${TRAIN_LLAMACU:-./train_llamacu}"
DEV_CUDA="${DEV_CUDA:-dev/cuda}"
DIST_TEST="${DIST_TEST:-dev/test/test_dist_gpu.sh}"
MIN_DRIVER=580

mkdir -p "$RES/logs" || { echo "first_run: cannot create $RES/logs" >&2; exit 2; }
SUMMARY="$RES/summary.txt"
: > "$SUMMARY"
START=$SECONDS
NFAIL=0
FAILED=()

# the library paths of the carried folders (and the image's cuDNN / NCCL, libnvrtc), as the README's
# calls; DEVICE_ENV= (empty) skips it (the CPU test of this script)
DEVICE_ENV="${DEVICE_ENV-dev/gpu/device_env.sh}"
if [ -n "$DEVICE_ENV" ] && [ -f "$DEVICE_ENV" ]; then
    # shellcheck source=/dev/null
    source "$DEVICE_ENV" > "$RES/logs/device_env.log" 2>&1
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    echo "host: $(uname -a)"
    echo "--- nvidia-smi"
    nvidia-smi 2>&1 | head -20
    echo "--- libraries the dynamic loader finds"
    (ldconfig -p 2>/dev/null; for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d" 2>/dev/null; done) |
        grep -o -E 'lib(cudart|cublas|cublasLt|cusolver|cudnn|nccl|nvrtc)[^ ]*\.so[^ ]*' | sort -u
    if ! (ldconfig -p 2>/dev/null; for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d" 2>/dev/null; done) | grep -q 'libnvrtc'; then
        echo "note: no libnvrtc found: cuDNN's fused attention compiles its kernels with NVRTC, so expect the cuBLAS attention fallback"
    fi
    echo "--- LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} > "$RES/env.txt" 2>&1

if [ -f "$BUILD_FLAGS_FILE" ]; then
    cp "$BUILD_FLAGS_FILE" "$RES/build_flags.txt"
else
    {
        echo "(no $BUILD_FLAGS_FILE carried: dev/gpu/README.md's build step writes it)"
        command -v cuobjdump > /dev/null && cuobjdump --list-elf "$TEST_LLAMACU" 2>&1 | head -8
    } > "$RES/build_flags.txt"
fi

# report NAME STATUS SECONDS
report() { printf '%-28s %-8s %5ss\n' "$1" "$2" "$3" | tee -a "$SUMMARY"; }

finish() {
    tar czf "$RES/logs.tgz" -C "$RES" logs 2>/dev/null && rm -rf "$RES/logs"
    if [ "$NFAIL" -eq 0 ]; then
        echo "first_run: every check passed ($((SECONDS - START)) s); results in $RES" | tee -a "$SUMMARY"
        exit 0
    fi
    echo "first_run: $NFAIL failed: ${FAILED[*]}; results in $RES" | tee -a "$SUMMARY"
    exit 1
}

# a failure: its name, the end of its output, the build flags; then stop unless KEEP_GOING
fail() { # NAME LOG WHY
    NFAIL=$((NFAIL + 1))
    FAILED+=("$1")
    {
        echo ""
        echo "FAILED: $1 ($3)"
        echo "--- the last 40 lines of its output (all of it: failed.log)"
        tail -n 40 "$2"
        echo "--- build flags ($BUILD_FLAGS_FILE)"
        cat "$RES/build_flags.txt"
    } | tee -a "$SUMMARY"
    { echo "=== $1 ($3)"; cat "$2"; } >> "$RES/failed.log"
    [ "$KEEP_GOING" = 1 ] || finish
}

# run_check NAME COMMAND...: under the per-check timeout and what is left of the budget
run_check() {
    local name="$1"; shift
    local log="$RES/logs/${name//\//_}.log"
    local left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -le 0 ]; then
        report "$name" "not-run" 0
        echo "first_run: the budget of $BUDGET s is spent: $name and the checks after it did not run" | tee -a "$SUMMARY"
        NFAIL=$((NFAIL + 1)); FAILED+=("budget")
        finish
    fi
    local lim=$((CHECK_TIMEOUT < left ? CHECK_TIMEOUT : left))
    local t0=$SECONDS rc
    if declare -F "$1" > /dev/null; then "$@" > "$log" 2>&1; else timeout --kill-after=5 "$lim" "$@" > "$log" 2>&1; fi
    rc=$?
    if [ "$rc" -eq 0 ]; then report "$name" ok $((SECONDS - t0)); return 0; fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        report "$name" TIMEOUT $((SECONDS - t0)); fail "$name" "$log" "timed out after $lim s"
    else
        report "$name" FAIL $((SECONDS - t0)); fail "$name" "$log" "exit status $rc"
    fi
    return 1
}

check_driver() {
    local v
    v="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1 | head -1)"
    echo "driver $v (CUDA 13 binaries need >= $MIN_DRIVER)"
    [[ "$v" =~ ^[0-9]+ ]] || { echo "cannot read the driver version"; return 1; }
    [ "${BASH_REMATCH[0]}" -ge "$MIN_DRIVER" ] ||
        { echo "hint: CUDA 13 builds need driver >= $MIN_DRIVER: rebuild with the toolkit this driver supports (nvidia-smi's 'CUDA Version'), or use a newer driver"; return 1; }
}

# every program, present and executable, with its libraries found
PROGRAMS=()
check_binaries() {
    local b bad=0
    for b in "${PROGRAMS[@]}"; do
        if [ ! -x "$b" ]; then echo "missing or not executable: $b (hint: build it here and carry it: dev/gpu/README.md)"; bad=1; continue; fi
        if command -v ldd > /dev/null && [ "${b##*.}" != sh ] && head -c 4 "$b" | grep -q 'ELF'; then
            local miss
            miss="$(ldd "$b" 2>&1 | awk '/not found/ { print $1 }' | tr '\n' ' ')"
            [ -z "$miss" ] || { echo "$b: libraries not found: $miss(hint: carry them in .gpu/lib: dev/gpu/pack.sh)"; bad=1; }
        fi
    done
    [ "$bad" -eq 0 ] && echo "all ${#PROGRAMS[@]} programs present, their libraries found"
    return "$bad"
}

# the dev/cuda checks: the kernels cheapest first, then the rest by name; svd and galore_update
# (minutes at full size) with quick, svd after test_llamacu
FIRST=(cast encoder rope swiglu rmsnorm grad_norm classifier adam weight8 matmul attention)
KERNELS=()
for k in "${FIRST[@]}"; do [ -f "$DEV_CUDA/$k.cu" ] && KERNELS+=("$k"); done
for f in "$DEV_CUDA"/*.cu; do
    k="$(basename "$f" .cu)"
    case " ${FIRST[*]} svd galore_update " in *" $k "*) ;; *) KERNELS+=("$k") ;; esac
done
LATE=()
[ -f "$DEV_CUDA/galore_update.cu" ] && KERNELS+=(galore_update)
[ -f "$DEV_CUDA/svd.cu" ] && LATE+=(svd)
for k in "${KERNELS[@]}" "${LATE[@]}"; do PROGRAMS+=("$DEV_CUDA/$k"); done
PROGRAMS+=("$TEST_LLAMACU" "$TRAIN_LLAMACU")

echo "first_run: results in $RES; per check at most $CHECK_TIMEOUT s, $BUDGET s in all" | tee -a "$SUMMARY"
run_check gpu nvidia-smi -L
run_check driver check_driver   # functions run without the timeout: they return at once
run_check binaries check_binaries
for k in "${KERNELS[@]}"; do
    case "$k" in galore_update|svd) run_check "dev/cuda/$k" "$DEV_CUDA/$k" quick ;; *) run_check "dev/cuda/$k" "$DEV_CUDA/$k" ;; esac
done
run_check test_llamacu "$TEST_LLAMACU"
for k in "${LATE[@]}"; do run_check "dev/cuda/$k" "$DEV_CUDA/$k" quick; done
run_check test_dist_gpu bash "$DIST_TEST"
finish
