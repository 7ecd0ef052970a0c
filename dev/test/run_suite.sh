#!/usr/bin/env bash
# run_suite.sh CMD ARGS...: one test suite as `make test` runs it: its whole output goes to
# $TEST_LOG (default test.log, appended), the console gets one line, its summary ("N passed, M
# failed") and the time, and under a failing suite its FAIL lines and last lines. Exit status: the
# suite's. V=1: the whole output on the console too.
set -u
log=${TEST_LOG:-test.log}
name=$*
[ "$#" -gt 1 ] && [ "$1" = bash ] && name=${*:2} # "bash dev/test/x.sh" -> "dev/test/x.sh"
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
if [ "${V:-0}" = 1 ]; then "$@" 2>&1 | tee "$tmp"; rc=${PIPESTATUS[0]}; else "$@" > "$tmp" 2>&1; rc=$?; fi
secs=$(( $(date +%s) - start ))
{ echo "=== $name (exit $rc, ${secs} s)"; cat "$tmp"; } >> "$log"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp" | tail -1)
if [ $rc -eq 0 ]; then
    echo "ok   $name: ${summary:-passed} (${secs} s)"
else
    echo "FAIL $name (exit $rc, ${secs} s; the whole output is in $log):"
    grep -E '^FAIL|^error|Error|Assertion|Sanitizer' "$tmp" | head -20 | sed 's/^/    /'
    tail -5 "$tmp" | sed 's/^/    | /'
fi
exit $rc
