#!/bin/bash
# test_scripts.sh: every paper-run script, for a few steps on the embedded data, into a temp dir.
#
#   scripts/test_scripts.sh          (about a minute on 2 cores; builds ./train_llama if missing)
#
# The paper models have vocab 32000 and the embedded tokenizer 4096, and would be slow anyway,
# so each script runs llama_tiny through the environment overrides of scripts/common.sh. Checks:
# exit 0, the JSONL log (one line per step, a final eval), the command's grad-accum, DONE; a
# second invocation after DONE does nothing; a run killed mid-way resumes from its checkpoint
# and ends with the same losses as an uninterrupted one; a flag error gives up instead of
# looping forever. Prints "N passed, N failed" last; exits non-zero on a failure.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
[ -x ./train_llama ] || make train_llama >/dev/null || { echo "make train_llama failed"; echo "0 passed, 1 failed"; exit 1; }
TMP="$(mktemp -d /tmp/test_scripts.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
PASS=0; FAIL=0
ok()  { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# the tiny setting every script runs with (TRAINER pinned: train_llamacu needs a GPU)
export TRAINER=./train_llama MODEL=llama_tiny \
    TRAIN="dev/data/tinytext/train_*.bin" VAL="dev/data/tinytext/val_*.bin" \
    TOKENIZER="dev/data/tinytext/tokenizer.bin" \
    STEPS=3 MICRO_BATCH=2 TOTAL_BATCH=4 SEQ=64 EVAL_TOKENS=2048 \
    EXTRA_ARGS="--sample-len 0 --threads 1" RETRY_SLEEP=0 MAX_FAILS=1

steps_in_log() { grep -c '"tokens_per_s"' "$1" 2>/dev/null || echo 0; }
has_final_eval() { grep -q "\"step\": $2, \"val_loss\"" "$1" 2>/dev/null; }

for script in scripts/run_*.sh; do
    name="$(basename "$script" .sh)"
    dir="$TMP/$name"
    RUN_DIR="$dir" bash "$script" > "$TMP/$name.out" 2>&1
    rc=$?
    check "$name: exit 0" [ "$rc" -eq 0 ]
    check "$name: DONE written" [ -f "$dir/DONE" ]
    check "$name: log has 3 steps" [ "$(steps_in_log "$dir/log.jsonl")" -eq 3 ]
    check "$name: log has the final eval" has_final_eval "$dir/log.jsonl" 3
    check "$name: --grad-accum 2 from TOTAL_BATCH/MICRO_BATCH" grep -q -- "--grad-accum 2 " "$dir/command.txt"
    check "$name: model exported" [ -f "$dir/model.safetensors" ]
    [ "$rc" -eq 0 ] || tail -5 "$TMP/$name.out"
    sum1="$(md5sum "$dir/log.jsonl" 2>/dev/null)"
    RUN_DIR="$dir" bash "$script" > "$TMP/$name.again" 2>&1
    rc=$?
    check "$name: second run after DONE exits 0 and does nothing" \
        bash -c "[ $rc -eq 0 ] && grep -q 'nothing to do' '$TMP/$name.again' && ! grep -q 'step ' '$TMP/$name.again'"
    check "$name: log untouched by the second run" [ "$sum1" = "$(md5sum "$dir/log.jsonl" 2>/dev/null)" ]
done

# per-script paper settings reach the trainer (the tiny overrides replace only model/data/size)
check "60m galore: lr 0.01 rank 128 T 200 alpha 0.25" \
    grep -q -- "--optimizer galore_adamw --lr 0.01 --rank 128 --update-proj-gap 200 --galore-scale 0.25" "$TMP/run_llama60m_galore/command.txt"
check "60m adam: torch Adam, lr 0.001" grep -q -- "--optimizer adam --lr 0.001" "$TMP/run_llama60m_adam/command.txt"
check "7b: galore_adamw8bit per-layer, rank 1024, T 500, lr 0.005, no clip" \
    grep -q -- "--optimizer galore_adamw8bit --lr 0.005 --rank 1024 --update-proj-gap 500 --galore-scale 0.25 --proj-type std --per-layer 1 --grad-clip 0" \
    "$TMP/run_llama7b_galore8bit_perlayer/command.txt"
# without overrides the scripts pass the paper's numbers (DRY_RUN=1 prints the command only)
env -u STEPS -u MICRO_BATCH -u TOTAL_BATCH -u SEQ -u EVAL_TOKENS -u MODEL -u TRAIN -u VAL -u TOKENIZER -u EXTRA_ARGS \
    DRY_RUN=1 RUN_DIR="$TMP/dry" bash scripts/run_llama60m_galore.sh > "$TMP/dry.out" 2>&1
check "60m galore dry run: llama_60m, C4 shards, 128 x 4 x 256, 10K steps, 1K warmup, 10M eval tokens" \
    grep -q -- '--model llama_60m --train dev/data/c4/c4_train_\*.bin --val dev/data/c4/c4_validation_\*.bin --tokenizer dev/data/c4/tokenizer.bin --batch 128 --seq 256 --grad-accum 4 --steps 10000 --warmup 1000 .* --eval-every 1000 --eval-tokens 10000000 --save-every 1000' "$TMP/dry.out"
check "dry run trains nothing" [ ! -e "$TMP/dry/log.jsonl" ]

# crash + resume: kill -9 the trainer once its step-2 checkpoint is complete, let the loop resume
cat > "$TMP/crashy.sh" <<'EOF'
#!/bin/bash
# first call: run, wait for a checkpoint, then SIGKILL (an OOM kill or a preemption); later calls: normal
calls="$CRASHY_DIR/calls"; n=$(cat "$calls" 2>/dev/null || echo 0); echo $((n + 1)) > "$calls"
[ "$n" -gt 0 ] && exec ./train_llama "$@"
./train_llama "$@" & pid=$!
for _ in $(seq 1200); do   # step 3 logged: the step-2 checkpoint is complete
    [ "$(grep -c tokens_per_s "$CRASHY_DIR/run/log.jsonl" 2>/dev/null)" -ge 3 ] && break
    sleep 0.05
done
kill -9 $pid; wait $pid; exit 137
EOF
chmod +x "$TMP/crashy.sh"
export CRASHY_DIR="$TMP/crash"; mkdir -p "$CRASHY_DIR"
RESUME_ENV=(STEPS=8 WARMUP=2 MICRO_BATCH=16 TOTAL_BATCH=16 SEQ=128 SAVE_EVERY=2 KEEP=0 EVAL_EVERY=4)
env "${RESUME_ENV[@]}" RUN_DIR="$CRASHY_DIR/run" TRAINER="$TMP/crashy.sh" MAX_FAILS=2 \
    bash scripts/run_llama60m_galore.sh > "$TMP/crash.out" 2>&1
rc=$?
check "crash: the script resumes and exits 0" [ "$rc" -eq 0 ]
check "crash: the trainer was started twice" [ "$(cat "$CRASHY_DIR/calls" 2>/dev/null)" = 2 ]
check "crash: the second attempt resumed from a checkpoint" grep -q "resumed from" "$TMP/crash.out"
check "crash: DONE after the resumed finish" [ -f "$CRASHY_DIR/run/DONE" ]
check "crash: log has each of the 8 steps once" \
    bash -c "[ \$(grep -c '\"tokens_per_s\"' '$CRASHY_DIR/run/log.jsonl') -eq 8 ] && [ \$(grep '\"tokens_per_s\"' '$CRASHY_DIR/run/log.jsonl' | cut -d, -f1 | sort -u | wc -l) -eq 8 ]"
env "${RESUME_ENV[@]}" RUN_DIR="$TMP/nocrash" bash scripts/run_llama60m_galore.sh > "$TMP/nocrash.out" 2>&1
losses() { grep -o '"loss": [^,]*' "$1" | tr '\n' ' '; }
check "crash: losses after resume equal an uninterrupted run's" \
    bash -c "[ -n \"$(losses "$TMP/nocrash/log.jsonl")\" ] && [ \"$(losses "$TMP/nocrash/log.jsonl")\" = \"$(losses "$CRASHY_DIR/run/log.jsonl")\" ]"

# a flag error fails the same way each time: give up (non-zero) instead of looping, no DONE
RUN_DIR="$TMP/badflag" EXTRA_ARGS="--optimizer bogus" MAX_FAILS=2 timeout 60 bash scripts/run_llama60m_adam.sh > "$TMP/badflag.out" 2>&1
rc=$?
check "bad flag: gives up with a non-zero status" bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "bad flag: no DONE" [ ! -f "$TMP/badflag/DONE" ]
check "bad flag: says it gave up" grep -q "giving up" "$TMP/badflag.out"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
