#!/usr/bin/env bash
# test_deps.sh: a machine that lacks a library gets one line naming the package and `make deps`
# from `make`, not a compiler error; `make deps` itself is idempotent on a complete machine.
source "$(dirname "$0")/testlib.sh"
# a compiler that cannot find cJSON: a wrapper that fails whatever includes it, else is gcc
cat > "$tmp/nocjson" <<'SH'
#!/usr/bin/env bash
src=$(cat /dev/stdin 2>/dev/null); for a in "$@"; do case $a in *.c) src=$(cat "$a");; esac; done
if grep -q 'cjson/cJSON.h' <<<"$src"; then echo "fatal error: cjson/cJSON.h: No such file or directory" >&2; exit 1; fi
printf '%s' "$src" | exec gcc "$@"
SH
chmod +x "$tmp/nocjson"
out=$(CC="$tmp/nocjson" bash dev/deps.sh check build 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "^error: missing cJSON.*make deps.*libcjson-dev" <<<"$out"; then
    ok "dev/deps.sh check: a missing cJSON is one line: $out"
else bad "deps check without cJSON (rc $rc): $out"; fi
out=$(make -s -B train_llama CC="$tmp/nocjson" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "^error: missing cJSON.*make deps" <<<"$out" && ! grep -q "fatal error" <<<"$out"; then
    ok "make without cJSON: stops at the one line, before the compiler"
else bad "make without cJSON (rc $rc): $(head -3 <<<"$out")"; fi
out=$(CC=/nonexistent/cc bash dev/deps.sh check build 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "^error: missing the C compiler '/nonexistent/cc'.*make deps" <<<"$out"; then ok "no compiler: one line"
else bad "no compiler (rc $rc): $out"; fi
# everything present here (CI installed it through make deps): the checks pass, deps says so
if bash dev/deps.sh check test >/dev/null 2>&1 && make -s deps 2>&1 | grep -q "every package is installed"; then
    ok "make deps on a complete machine: nothing to install; every build and test dependency found"
else bad "deps on this machine: $(bash dev/deps.sh check test 2>&1 | head -3)"; fi
summary
