#!/usr/bin/env bash
# run_sanitizers.sh: build the CPU test programs with AddressSanitizer + UBSan and run them.
# Same sources and link libraries as the top-level Makefile's CPU_TESTS (BLAS/LAPACK picked the
# same way), but gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all, built into a
# temp dir so the normal binaries are untouched. Programs run from the repo root, as in
# `make test`. Prints "N passed, N failed" (N = programs) last; exits non-zero on any failure.
#   bash dev/test/run_sanitizers.sh              all of them
#   bash dev/test/run_sanitizers.sh test_data    a subset, by program name
# ASan's leak checker is off (detect_leaks=0): libgomp's thread pool and OpenBLAS's buffers
# are still allocated at exit and would be reported as leaks that are not ours.
set -u
cd "$(dirname "$0")/../.."
CC=${CC:-gcc}
SAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
CFLAGS="$SAN -fopenmp -ffp-contract=off -Wall -Wextra -Wno-unused-function -I."
OPENBLAS_OMP=${OPENBLAS_OMP:-/usr/lib/x86_64-linux-gnu/openblas-openmp}
if [ -z "${BLAS_LIBS:-}" ]; then
    if [ -e "$OPENBLAS_OMP/libblas.so.3" ]; then
        BLAS_LIBS="-L$OPENBLAS_OMP -l:libblas.so.3 -Wl,-rpath,$OPENBLAS_OMP"; LAPACK_LIBS=${LAPACK_LIBS:--l:liblapack.so.3}
    else
        BLAS_LIBS="-lblas"; LAPACK_LIBS=${LAPACK_LIBS:--llapack}
    fi
fi
LDLIBS="-lcjson $BLAS_LIBS ${LAPACK_LIBS:--llapack} -lm"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# name:source
ALL="test_llama:test_llama.c test_data:dev/test/test_data.c test_tokenizer:dev/test/test_tokenizer.c test_safetensors:dev/test/test_safetensors.c test_adam8bit:dev/test/test_adam8bit.c test_rendezvous:dev/test/test_rendezvous.c"
want=" $* "
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
for entry in $ALL; do
    name=${entry%%:*}; src=${entry#*:}
    if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
    t0=$(date +%s)
    if ! $CC $CFLAGS "$src" -o "$tmp/$name" $LDLIBS > "$tmp/$name.build.log" 2>&1; then
        echo "FAIL $name: build failed:"; tail -n 20 "$tmp/$name.build.log"
        fail=$((fail+1)); continue
    fi
    t1=$(date +%s)
    "$tmp/$name" > "$tmp/$name.log" 2>&1; rc=$?
    t2=$(date +%s)
    if [ $rc -eq 0 ] && ! grep -qE "runtime error|ERROR: AddressSanitizer" "$tmp/$name.log"; then
        echo "ok   $name (build $((t1-t0))s, run $((t2-t1))s): $(tail -n 1 "$tmp/$name.log")"
        pass=$((pass+1))
    else
        echo "FAIL $name (exit $rc, run $((t2-t1))s):"
        grep -nE "runtime error|ERROR: AddressSanitizer|SUMMARY|FAIL|^    #[0-9]+ " "$tmp/$name.log" | head -n 40
        tail -n 3 "$tmp/$name.log"
        fail=$((fail+1))
    fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
