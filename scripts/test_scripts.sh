#!/bin/bash
# test_scripts.sh: every paper-run script, for a few steps on the embedded data, into a temp dir;
# finetune_galore.sh on a tiny transformers-made model (dev/ref/hf/tied).
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
    grep -q -- "--model llama_60m --train 'dev/data/c4/c4_train_\*.bin' --val 'dev/data/c4/c4_validation_\*.bin' --tokenizer dev/data/c4/tokenizer.bin --batch 128 --seq 256 --grad-accum 4 --steps 10000 --warmup 1000 .* --eval-every 1000 --eval-tokens 10000000 --save-every 1000" "$TMP/dry.out"
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
# the same kill without the race, for runs too fast to catch (the tiny fine-tune finishes in
# milliseconds): the first call runs to the end, then leaves the run as a kill right after the
# step-2 checkpoint would (the later checkpoints gone; the log's later lines and the exported model
# stay, as a kill leaves what was already written) and reports the kill
cat > "$TMP/crashy_after.sh" <<'EOF'
#!/bin/bash
calls="$CRASHY_DIR/calls"; n=$(cat "$calls" 2>/dev/null || echo 0); echo $((n + 1)) > "$calls"
[ "$n" -gt 0 ] && exec ./train_llama "$@"
./train_llama "$@"
for d in "$CRASHY_DIR"/run/ckpt_*; do [[ "${d##*/}" > ckpt_00000002 ]] && rm -rf "$d"; done
exit 137
EOF
chmod +x "$TMP/crashy_after.sh"
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

# finetune_galore.sh on transformers' own sharded BF16 save of a tied-embedding Llama
# (dev/ref/hf/tied, vocab 64) with shards of its vocabulary: the default recipe reaches the
# trainer (--init, 8-bit GaLore per-layer), the model comes back in the user's layout (BF16 shards
# + index, still tied: no lm_head.weight), DONE, a rerun does nothing; killed mid-way it resumes
# to the losses of an uninterrupted run; bad arguments give one line
python3 - "$TMP" <<'PY'
import struct, sys
for name, n, seed in (("ft_train.bin", 4096, 0), ("ft_val.bin", 1024, 5)):
    with open(sys.argv[1] + "/" + name, "wb") as f:
        f.write(struct.pack("<256i", *([20240520, 1, n] + [0] * 253)))
        f.write(struct.pack("<%dH" % n, *((i * 37 + (i // 7) * 11 + seed) % 64 for i in range(n))))
PY
FT_ENV=(-u MODEL -u TOKENIZER STEPS=4 WARMUP=1 MICRO_BATCH=2 TOTAL_BATCH=4 SEQ=16 SAVE_EVERY=2 KEEP=0 EVAL_EVERY=2 EVAL_TOKENS=256
        RANK=4 GAP=2 "EXTRA_ARGS=--sample-len 0 --threads 1 --save-shard-size 20KB")
FT_ARGS=(dev/ref/hf/tied "$TMP/ft_train.bin" "$TMP/ft_val.bin")
# issue 24: DRY_RUN's command runs when pasted: a glob and the empty --tokenizer quoted, --grad-clip once
line=$(env "${FT_ENV[@]}" DRY_RUN=1 RUN_DIR="$TMP/ftdry" bash scripts/finetune_galore.sh dev/ref/hf/tied "$TMP/ft_tr*.bin" "$TMP/ft_val.bin" 2>&1)
check "finetune dry run: the glob and the empty --tokenizer quoted, --grad-clip once" \
    bash -c 'grep -qF -- "--train '"'"'$1'"'"' " <<<"$0" && grep -qF -- "--tokenizer '"'"''"'"' --batch" <<<"$0" && [ "$(grep -o -- --grad-clip <<<"$0" | wc -l)" = 1 ]' "$line" "$TMP/ft_tr*.bin"
check "finetune dry run: the printed command, pasted, trains its 4 steps" bash -c "$line > '$TMP/ftdry.out' 2>&1 && grep -q '^done: 4 steps' '$TMP/ftdry.out'"
env "${FT_ENV[@]}" RUN_DIR="$TMP/ft" bash scripts/finetune_galore.sh "${FT_ARGS[@]}" > "$TMP/ft.out" 2>&1
rc=$?
check "finetune_galore: exit 0" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || tail -5 "$TMP/ft.out"
check "finetune_galore: DONE, log has 4 steps and the final eval" \
    bash -c "[ -f '$TMP/ft/DONE' ] && [ \$(grep -c '\"tokens_per_s\"' '$TMP/ft/log.jsonl') -eq 4 ] && grep -q '\"step\": 4, \"val_loss\"' '$TMP/ft/log.jsonl'"
check "finetune_galore: --init the folder, its config, galore_adamw8bit rank 4 T 2 per-layer, --grad-accum 2" \
    grep -q -- "--model $PWD/dev/ref/hf/tied/config.json .*--grad-accum 2 .*--grad-clip 0 .*--init $PWD/dev/ref/hf/tied --optimizer galore_adamw8bit --lr 1e-4 --rank 4 --update-proj-gap 2 --galore-scale 0.25 --proj-type std --per-layer 1 --out" \
    "$TMP/ft/command.txt"
check "finetune_galore: the model in the user's layout: BF16 shards + index, tied (no lm_head.weight)" bash -c \
    "[ -f '$TMP/ft/model.safetensors.index.json' ] && [ ! -f '$TMP/ft/model.safetensors' ] && ! grep -q lm_head '$TMP/ft/model.safetensors.index.json' && grep -q '\"tie_word_embeddings\":[[:space:]]*true' '$TMP/ft/config.json' && grep -q '\"torch_dtype\":[[:space:]]*\"bfloat16\"' '$TMP/ft/config.json' && [ \$(ls '$TMP/ft' | grep -c '^model-.*-of-.*\.safetensors\$') -gt 1 ]"
env "${FT_ENV[@]}" RUN_DIR="$TMP/ft" bash scripts/finetune_galore.sh "${FT_ARGS[@]}" > "$TMP/ft.again" 2>&1
check "finetune_galore: a rerun after DONE does nothing" grep -q 'nothing to do' "$TMP/ft.again"
export CRASHY_DIR="$TMP/ftcrash"; mkdir -p "$CRASHY_DIR"
env "${FT_ENV[@]}" STEPS=6 RUN_DIR="$CRASHY_DIR/run" TRAINER="$TMP/crashy_after.sh" MAX_FAILS=2 \
    bash scripts/finetune_galore.sh "${FT_ARGS[@]}" > "$TMP/ftcrash.out" 2>&1
rc=$?
env "${FT_ENV[@]}" STEPS=6 RUN_DIR="$TMP/ftnocrash" bash scripts/finetune_galore.sh "${FT_ARGS[@]}" > "$TMP/ftnocrash.out" 2>&1
check "finetune_galore: killed after its step-2 checkpoint, resumed (trainer started twice) to an uninterrupted run's losses" \
    bash -c "[ $rc -eq 0 ] && [ \"\$(cat '$CRASHY_DIR/calls')\" = 2 ] && grep -q 'resumed from' '$TMP/ftcrash.out' && [ -n \"$(losses "$TMP/ftnocrash/log.jsonl")\" ] && [ \"$(losses "$TMP/ftnocrash/log.jsonl")\" = \"$(losses "$CRASHY_DIR/run/log.jsonl")\" ]"
out=$(bash scripts/finetune_galore.sh 2>&1); rc=$?
check "finetune_galore: no arguments: usage, status 2" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <<<'$out') -eq 1 ] && grep -q '^usage: ' <<<'$out'"
out=$(bash scripts/finetune_galore.sh "$TMP/nope" "$TMP/ft_train.bin" 2>&1); rc=$?
check "finetune_galore: a folder without config.json: one error line" \
    bash -c "[ $rc -eq 2 ] && [ \$(wc -l <<<'$out') -eq 1 ] && grep -q 'nope/config.json not found: pass a Hugging Face model folder' <<<'$out'"

# a flag error fails the same way each time: give up (non-zero) instead of looping, no DONE
RUN_DIR="$TMP/badflag" EXTRA_ARGS="--optimizer bogus" MAX_FAILS=2 timeout 60 bash scripts/run_llama60m_adam.sh > "$TMP/badflag.out" 2>&1
rc=$?
check "bad flag: gives up with a non-zero status" bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "bad flag: no DONE" [ ! -f "$TMP/badflag/DONE" ]
check "bad flag: says it gave up" grep -q "giving up" "$TMP/badflag.out"

# GPU benchmarks (scripts/bench_*.sh) without a GPU or torch: DRY=1 prints the commands; a missing
# trainer fails with one clear line; and the whole pipeline (runs, logs, parsing, ratio table,
# RESULTS) on a fake trainer, python and nvidia-smi that print train_llamacu's formats
B_ENV=(-u STEPS -u MODEL -u TRAIN -u VAL -u TOKENIZER -u EXTRA_ARGS -u SEQ -u TRAINER)
env "${B_ENV[@]}" DRY=1 TRAINER=./train_llama RESULTS="$TMP/bench_dry.md" bash scripts/bench_table11.sh > "$TMP/b11dry.out" 2>&1
rc=$?
check "bench_table11 dry: exit 0" [ "$rc" -eq 0 ]
check "bench_table11 dry: 6 train_llamacu runs of llama_1b at batch 1 x 256, 20 steps" \
    [ "$(grep -c -- '^+ ./train_llama --model llama_1b .*--batch 1 --seq 256 --steps 20 ' "$TMP/b11dry.out")" -eq 6 ]
check "bench_table11 dry: 6 bench_torch.py runs at batch 1 x 256" \
    [ "$(grep -c -- '^+ python3 dev/bench_torch.py --model llama_1b .*--batch 1 --seq 256 --steps 20 --warmup-steps-excluded 5 ' "$TMP/b11dry.out")" -eq 6 ]
for o in adamw adam8bit galore_adamw8bit; do
    for pl in 0 1; do
        check "bench_table11 dry: $o per-layer $pl on both engines" bash -c \
            "[ \$(grep -c -- '--optimizer $o --per-layer $pl ' '$TMP/b11dry.out') -eq 2 ]"
    done
done
check "bench_table11 dry: GaLore rank 512, T 200, alpha 0.25 on both engines" \
    [ "$(grep -c -- '--optimizer galore_adamw8bit --per-layer [01] --rank 512 --update-proj-gap 200 --galore-scale 0.25 ' "$TMP/b11dry.out")" -eq 4 ]
check "bench_table11 dry: no clipping, constant lr, no eval or checkpoint for ours" \
    [ "$(grep -c -- "--lr 1e-3 --warmup 0 --schedule constant --grad-clip 0 --eval-every 0 --sample-len 0 --out ''" "$TMP/b11dry.out")" -eq 6 ]
check "bench_table11 dry: prints the report command, appends nothing" \
    bash -c "grep -q 'dev/gpu/bench_report.py table11' '$TMP/b11dry.out' && [ ! -e '$TMP/bench_dry.md' ]"
env "${B_ENV[@]}" DRY=1 TRAINER=./train_llama RESULTS="$TMP/bench_dry.md" bash scripts/bench_7b.sh > "$TMP/b7dry.out" 2>&1
rc=$?
check "bench_7b dry: exit 0" [ "$rc" -eq 0 ]
check "bench_7b dry: the memory plan of llama_7b galore_adamw8bit r 1024 per-layer, batch 1 x 256" \
    grep -q -- '^+ ./train_llama --model llama_7b --optimizer galore_adamw8bit --rank 1024 --update-proj-gap 500 --galore-scale 0.25 --per-layer 1 --grad-clip 0 --batch 1 --seq 256 --memory-plan 1$' "$TMP/b7dry.out"
check "bench_7b dry: ours and torch at batch 1 x 256" bash -c \
    "grep -q -- '^+ ./train_llama --model llama_7b .*--batch 1 --seq 256 --train ' '$TMP/b7dry.out' && grep -q -- '^+ python3 dev/bench_torch.py --model llama_7b --optimizer galore_adamw8bit --rank 1024 --update-proj-gap 500 --galore-scale 0.25 --per-layer 1 --batch 1 --seq 256 ' '$TMP/b7dry.out'"
if ./train_llama --help 2>&1 | grep -q -- '--recompute'; then
    check "bench_7b dry: --recompute in --help, so batch 16 x 256 with recompute on both engines (and its plan)" \
        [ "$(grep -c -- '--batch 16 --seq 256 --recompute 1' "$TMP/b7dry.out")" -eq 3 ]
else
    check "bench_7b dry: no --recompute in --help, so the batch-16 setting is skipped with a note" \
        grep -q 'does not list --recompute' "$TMP/b7dry.out"
fi
for s in bench_table11 bench_7b; do
    env "${B_ENV[@]}" TRAINER="$TMP/no/such/train_llamacu" RESULTS="$TMP/bench_missing.md" bash "scripts/$s.sh" > "$TMP/$s.missing" 2>&1
    rc=$?
    check "$s: a missing trainer fails (non-zero) with one clear line" bash -c \
        "[ $rc -ne 0 ] && grep -q \"error: trainer '$TMP/no/such/train_llamacu' not found or not executable: build it with 'make train_llamacu'\" '$TMP/$s.missing' && [ \$(wc -l < '$TMP/$s.missing') -eq 1 ] && [ ! -e '$TMP/bench_missing.md' ]"
done
# the parser reads train_llamacu's console: fail here if those printf formats change
check "bench_report.py: train_llama.cu still prints the device, plan and peak lines it parses" bash -c \
    "grep -qF 'printf(\"device %d: %s | compute' train_llama.cu && grep -qF 'GPU memory plan: %.3f GiB (weights + optimizer state %.3f GiB)' train_llama.cu && grep -qF 'GPU memory: plan %.3f GiB | measured: %.3f GiB in use before allocating (the CUDA context; --gpu-mem assumes %.1f), %.3f after \"' train_llama.cu && grep -qF '\"(+%.3f), peak %.3f (+%.3f, sampled' train_llama.cu && grep -qF '\"  %-56s %10.4f GiB%s\\n\", \"total\"' memplan.h"
mkdir -p "$TMP/fakebin"
cat > "$TMP/fakebin/nvidia-smi" <<'EOF'
#!/bin/bash
case "$*" in -L) echo "GPU 0: Fake GPU 80GB (UUID: GPU-0)" ;; *query-gpu=name*) echo "Fake GPU 80GB" ;; esac
EOF
cat > "$TMP/fakebin/train_llamacu" <<'EOF'
#!/bin/bash
# train_llamacu's lines that bench_report.py reads, in its formats: step s at 10 tok/s (s = 1) or
# 1700 + 100 s tok/s (a median that depends on which steps are left out), peak +10240 MiB
log=""; plan=0; steps=0; prev=""
for a in "$@"; do
    case "$prev" in --log) log="$a" ;; --memory-plan) plan="$a" ;; --steps) steps="$a" ;; esac
    [ "$a" = --help ] && { echo "  --recompute N   1: recompute activations"; exit 0; }
    prev="$a"
done
if [ "$plan" = 1 ]; then
    printf 'memory plan: fake\n  %-56s %10.4f GiB\n  %-56s %10.4f GiB\n  %-56s %10.4f GiB\n' \
        "weights (bf16)" 8.7890625 total 9.765625 "weights + optimizer state (paper's estimate)" 9.27734375
    exit 0
fi
echo "device 0: Fake GPU 80GB | compute 9.0 | 79.1 GiB | peak bf16 989 TFLOPS"
echo "GPU memory plan: 9.765625 GiB (weights + optimizer state 9.27734375 GiB); --memory-plan 1 prints it without a GPU"
[ -n "${FAKE_FAIL:-}" ] && { echo "error: out of memory"; exit 1; }
: > "$log"
for s in $(seq "$steps"); do
    t=$((s == 1 ? 10 : 1700 + 100 * s))
    awk -v s="$s" -v t="$t" 'BEGIN { printf "{\"step\": %d, \"loss\": 8.1, \"grad_norm\": 0, \"lr\": 0.001, \"ms\": %.3f, \"tokens_per_s\": %.3f}\n", s, 256000 / t, t }' >> "$log"
done
echo "done: $steps steps in 9.9 s"
echo "GPU memory: plan 9.765625 GiB | measured: 0.48828125 GiB in use before allocating (the CUDA context; --gpu-mem assumes 0.6), 9.86328125 after (+9.375), peak 10.48828125 (+10, sampled each step and at refreshes), now 10.3515625 GiB"
EOF
cat > "$TMP/fakebin/python" <<'EOF'
#!/bin/bash
# bench_torch.py answers 1000 tok/s and a 20480 MiB peak; the import check passes; the rest is python3
[ "${1:-}" = -c ] && exit 0
if [ "${1:-}" = dev/bench_torch.py ]; then
    out=""; prev=""
    for a in "$@"; do [ "$prev" = --json ] && out="$a"; prev="$a"; done
    echo '{"engine": "torch", "torch": "fake", "transformers": "fake", "galore_torch": "1.0", "bitsandbytes": "0.50.2", "device": "Fake GPU 80GB", "tokens_per_s": 1000.0, "first_step_ms": 30000.0, "max_memory_allocated_mib": 18432.0, "device_peak_over_baseline_mib": 20480.0}' | tee "$out"
    exit 0
fi
exec python3 "$@"
EOF
chmod +x "$TMP/fakebin/nvidia-smi" "$TMP/fakebin/train_llamacu" "$TMP/fakebin/python"
FAKE_ENV=(PATH="$TMP/fakebin:$PATH" TRAINER="$TMP/fakebin/train_llamacu" PYTHON="$TMP/fakebin/python" COMMIT=test123 RESULTS="$TMP/bench_results.md")
env "${B_ENV[@]}" "${FAKE_ENV[@]}" OPTIMIZERS="adamw galore_adamw8bit" PER_LAYER=1 STEPS=8 SKIP=2 LOGDIR="$TMP/b11" \
    bash scripts/bench_table11.sh > "$TMP/b11fake.out" 2>&1
rc=$?
check "bench_table11 (fake GPU): exit 0" [ "$rc" -eq 0 ]
check "bench_table11 (fake GPU): ratios of the medians of steps 3..8 and of the peaks (2250/1000 tok/s, 10/20 GiB)" bash -c \
    "grep -qF '| adamw | yes | 2250 | 1000 | **2.25** | 10.00 | 20.00 | **0.50** | 18.00 | 9.77 | 25600 / 30000 | 1354 / 9.63 |' '$TMP/b11fake.out' && grep -qF '| galore_adamw8bit | yes | 2250 | 1000 | **2.25** |' '$TMP/b11fake.out'"
check "bench_table11 (fake GPU): card, commit and date in the table appended to RESULTS" bash -c \
    "grep -q '^card: Fake GPU 80GB (train_llamacu saw: Fake GPU 80GB; torch saw: Fake GPU 80GB)' '$TMP/bench_results.md' && grep -q \"^date $(date -u +%Y-%m-%d) | commit test123 |\" '$TMP/bench_results.md'"
env "${B_ENV[@]}" "${FAKE_ENV[@]}" FAKE_FAIL=1 OPTIMIZERS=adamw PER_LAYER=0 STEPS=8 SKIP=2 LOGDIR="$TMP/b11fail" \
    bash scripts/bench_table11.sh > "$TMP/b11fail.out" 2>&1
rc=$?
check "bench_table11 (fake GPU): a failed run is reported, still tabled (n/a) and appended, exit non-zero" bash -c \
    "[ $rc -ne 0 ] && grep -q 'FAILED with exit status 1' '$TMP/b11fail.out' && grep -qF '| adamw | no | n/a | 1000 | **n/a** |' '$TMP/b11fail.out' && [ \$(grep -c '^### Table 11' '$TMP/bench_results.md') -eq 2 ]"
env "${B_ENV[@]}" "${FAKE_ENV[@]}" REPORT_ONLY=1 OPTIMIZERS="adamw galore_adamw8bit" PER_LAYER=1 STEPS=8 SKIP=2 LOGDIR="$TMP/b11" \
    bash scripts/bench_table11.sh > "$TMP/b11again.out" 2>&1
check "bench_table11 REPORT_ONLY=1: the same table again from the logs" bash -c \
    "grep -qF '| adamw | yes | 2250 | 1000 | **2.25** | 10.00 | 20.00 | **0.50** |' '$TMP/b11again.out' && ! grep -q '^== ' '$TMP/b11again.out'"
env "${B_ENV[@]}" "${FAKE_ENV[@]}" STEPS=6 LOGDIR="$TMP/b7" bash scripts/bench_7b.sh > "$TMP/b7fake.out" 2>&1
rc=$?
check "bench_7b (fake GPU): exit 0, both settings" bash -c \
    "[ $rc -eq 0 ] && grep -qF '| batch 1 x 256 | 9.77 (9.28) | 10.00 | +2.4% (within 3%) | 20.00 | **0.50** | 2200 | 1000 | **2.20** |' '$TMP/b7fake.out' && grep -qF '| batch 16 x 256, --recompute 1 |' '$TMP/b7fake.out'"
check "bench_7b (fake GPU): goals 20 and 24 GiB: PASS at 10 GiB" bash -c \
    "grep -q -- '- batch 1 x 256: goal 20 GiB: \*\*PASS\*\*' '$TMP/b7fake.out' && grep -q -- '- batch 16 x 256, --recompute 1: goal 24 GiB: \*\*PASS\*\*' '$TMP/b7fake.out'"

# dev/gpu/first_run.sh (the first GPU call's one command) on fakes: every check in order when all
# pass; a failure stops it with the check's name, its output and the build flags, and nothing after
# it runs; an old driver stops it before any program; a hung check is cut by its timeout
FR="$TMP/fr"; mkdir -p "$FR/bin" "$FR/cuda"
cat > "$FR/bin/nvidia-smi" <<'EOF'
#!/bin/bash
case "$*" in -L) echo "GPU 0: Fake GPU (UUID: GPU-0)" ;; *driver_version*) echo "${FAKE_DRIVER:-580.65.06}" ;; *) echo "Fake GPU" ;; esac
EOF
# a program that logs its name and arguments to $FR_RAN, fails when FAKE_FAIL names it, hangs when FAKE_HANG does
cat > "$FR/fake_prog" <<'EOF'
#!/bin/bash
n="$(basename "$0")"; echo "$n $*" >> "$FR_RAN"
[ "${FAKE_HANG:-}" = "$n" ] && sleep 30
[ "${FAKE_FAIL:-}" = "$n" ] && { echo "FAIL $n: max err 1.0e+00 (the fake's mismatch)"; echo "1 passed, 1 failed"; exit 1; }
echo "ok $n"; echo "1 passed, 0 failed"
EOF
for k in svd matmul cast attention galore_update rope zeta; do : > "$FR/cuda/$k.cu"; cp "$FR/fake_prog" "$FR/cuda/$k"; done
for k in test_llamacu train_llamacu test_dist_gpu.sh; do cp "$FR/fake_prog" "$FR/bin/$k"; done
chmod +x "$FR"/bin/* "$FR"/cuda/*
echo "nvcc -O3 -gencode arch=compute_90,code=sm_90 (the fake build flags)" > "$FR/build_flags.txt"
FR_ENV=(PATH="$FR/bin:$PATH" FR_RAN="$FR/ran" TEST_LLAMACU="$FR/bin/test_llamacu" TRAIN_LLAMACU="$FR/bin/train_llamacu" DEV_CUDA="$FR/cuda"
        DIST_TEST="$FR/bin/test_dist_gpu.sh" BUILD_FLAGS_FILE="$FR/build_flags.txt" COMMIT=test123 DEVICE_ENV=)
fr_order() { awk '{ print $1 }' "$1" | grep -v -e '^first_run' | tr '\n' ' '; }
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/ok" bash dev/gpu/first_run.sh > "$FR/ok.out" 2>&1
rc=$?
check "first_run (fake GPU): every check passes, exit 0, four result files (no failed.log)" bash -c \
    "[ $rc -eq 0 ] && grep -q 'every check passed' '$FR/ok/summary.txt' && [ \$(ls '$FR/ok' | wc -l) -eq 4 ] && [ -f '$FR/ok/logs.tgz' ] && [ ! -e '$FR/ok/failed.log' ]"
check "first_run (fake GPU): cheapest first: gpu, driver, binaries, the kernels (listed ones, the rest, galore_update), test_llamacu, svd, NCCL" \
    [ "$(fr_order "$FR/ok/summary.txt")" = "gpu driver binaries dev/cuda/cast dev/cuda/rope dev/cuda/matmul dev/cuda/attention dev/cuda/zeta dev/cuda/galore_update test_llamacu dev/cuda/svd test_dist_gpu " ]
check "first_run (fake GPU): svd and galore_update run with quick" bash -c "grep -q '^galore_update quick' '$FR/ran' && grep -q '^svd quick' '$FR/ran'"
: > "$FR/ran"
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/fail" FAKE_FAIL=matmul bash dev/gpu/first_run.sh > "$FR/fail.out" 2>&1
rc=$?
check "first_run (fake GPU): a failing kernel stops it (exit 1) with its name, its output and the build flags" bash -c \
    "[ $rc -eq 1 ] && grep -q '^FAILED: dev/cuda/matmul (exit status 1)' '$FR/fail/summary.txt' && grep -q 'FAIL matmul: max err' '$FR/fail/summary.txt' && grep -q 'the fake build flags' '$FR/fail/summary.txt' && grep -q 'FAIL matmul' '$FR/fail/failed.log'"
check "first_run (fake GPU): nothing after the failure ran" bash -c "! grep -q -E '^(attention|test_llamacu|svd|test_dist_gpu)' '$FR/ran' && grep -q '^matmul' '$FR/ran'"
: > "$FR/ran"
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/keep" FAKE_FAIL=matmul KEEP_GOING=1 bash dev/gpu/first_run.sh > "$FR/keep.out" 2>&1
rc=$?
check "first_run (fake GPU): KEEP_GOING=1 runs the rest and still fails" bash -c \
    "[ $rc -eq 1 ] && grep -q '^test_dist_gpu' '$FR/ran' && grep -q '1 failed: dev/cuda/matmul' '$FR/keep/summary.txt'"
: > "$FR/ran"
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/drv" FAKE_DRIVER=570.124.06 bash dev/gpu/first_run.sh > "$FR/drv.out" 2>&1
rc=$?
check "first_run (fake GPU): a driver older than 580 stops it at 'driver', before any program" bash -c \
    "[ $rc -eq 1 ] && grep -q '^FAILED: driver' '$FR/drv/summary.txt' && grep -q 'need driver >= 580' '$FR/drv/summary.txt' && [ ! -s '$FR/ran' ]"
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/hang" FAKE_HANG=cast CHECK_TIMEOUT=2 bash dev/gpu/first_run.sh > "$FR/hang.out" 2>&1
rc=$?
check "first_run (fake GPU): a hung check is cut by CHECK_TIMEOUT and named" bash -c \
    "[ $rc -eq 1 ] && grep -q '^FAILED: dev/cuda/cast (timed out after 2 s)' '$FR/hang/summary.txt'"
env -u OUT "${FR_ENV[@]}" RESULTS_DIR="$FR/budget" BUDGET=0 bash dev/gpu/first_run.sh > "$FR/budget.out" 2>&1
rc=$?
check "first_run (fake GPU): a spent BUDGET reports what did not run, exit 1" bash -c \
    "[ $rc -eq 1 ] && grep -q 'the budget of 0 s is spent: gpu and the checks after it did not run' '$FR/budget/summary.txt'"
rm "$FR/cuda/rope"
env -u OUT "${FR_ENV[@]}" OUT="$FR/out" bash dev/gpu/first_run.sh > "$FR/miss.out" 2>&1
rc=$?
check "first_run (fake GPU): a program not carried fails 'binaries' with a hint; results go to \$OUT" bash -c \
    "[ $rc -eq 1 ] && grep -q '^FAILED: binaries' '$FR/out/summary.txt' && grep -qF 'missing or not executable: $FR/cuda/rope (hint: build it here and carry it' '$FR/out/summary.txt'"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
