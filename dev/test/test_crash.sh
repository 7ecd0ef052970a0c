#!/usr/bin/env bash
# test_crash.sh: kill the trainer with SIGKILL at random moments (saving every step, so many
# kills land inside a save), resume each time, and require that
#  - a checkpoint folder is never half-visible: every ckpt_N (without .tmp) has its DONE,
#  - every resume succeeds (the state checks would reject a corrupt file),
#  - the final weights and the logged losses equal an uninterrupted run's, bit for bit,
# for GaLore across projector refreshes, 8-bit GaLore in per-layer mode, and AdamW with
# gradient accumulation. Bounded: at most MAX_KILLS kills per case.
source "$(dirname "$0")/testlib.sh"
bin=./train_llama
MAX_KILLS=${MAX_KILLS:-15}
RANDOM=${SEED:-7}
cat > "$tmp/config.json" <<'JSON'
{"model_type": "llama", "hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 4,
 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 4096, "max_position_embeddings": 64}
JSON
common=(--model "$tmp/config.json" --batch 4 --seq 32 --steps 40 --warmup 3 --val "" --sample-len 0
        --save-every 1 --keep 2 --print-every 1000 --threads 2)

losses() { grep -o '"step": [0-9]*, "loss": [^,]*' "$1"; }

run_case() {
    local name=$1; shift
    local ref="$tmp/$name.ref" out="$tmp/$name.run"
    "$bin" "${common[@]}" "$@" --out "$ref" --log "$ref.jsonl" > "$ref.stdout" 2>&1 || { bad "$name: reference run failed: $(tail -2 "$ref.stdout")"; return; }
    local kills=0 done=0 halfseen="" resumes=0 base=5
    while [ $done = 0 ]; do
        "$bin" "${common[@]}" "$@" --out "$out" --log "$out.jsonl" --resume 1 > "$out.stdout" 2>&1 &
        local pid=$!
        # keep killing until MAX_KILLS kills and at least 3 resumes (bounded at 4 x MAX_KILLS)
        if [ $kills -lt "$MAX_KILLS" ] || { [ $resumes -lt 3 ] && [ $kills -lt $((4 * MAX_KILLS)) ]; }; then
            # base + 0 to 150 ms: from start-up to several steps in, many of them inside a save;
            # on a loaded machine start-up is slower, so the base grows while no checkpoint exists
            sleep "$(awk -v ms=$((base + RANDOM % 150)) 'BEGIN{printf "%.3f", ms / 1000}')"
            kill -9 $pid 2>/dev/null && kills=$((kills+1))
        fi
        # wait before any other command forks: bash reports a killed job it reaps on the way as
        # "line N: PID Killed ..." on stderr (54 such lines in make test's output before)
        { wait $pid; } 2>/dev/null; local rc=$?
        [ $rc -ne 137 ] || ls "$out"/ckpt_*/DONE >/dev/null 2>&1 || base=$((base + 40))
        if [ $rc -eq 0 ]; then done=1
        elif [ $rc -ne 137 ]; then bad "$name: resumed run failed (rc $rc): $(tail -2 "$out.stdout")"; return
        fi
        grep -q '^resumed from' "$out.stdout" && resumes=$((resumes+1))
        for d in "$out"/ckpt_*; do
            [ -e "$d" ] || continue
            case "$d" in *.tmp|*.del) continue;; esac
            [ -f "$d/DONE" ] || halfseen="$halfseen $d"
        done
    done
    halfseen=$(tr ' ' '\n' <<<"$halfseen" | sort -u | tr '\n' ' ')
    [ -z "${halfseen// /}" ] && ok "$name: $kills kills, $resumes resumes, no half-visible checkpoint" || bad "$name: checkpoint without DONE:$halfseen"
    if cmp -s "$ref/model.safetensors" "$out/model.safetensors" && cmp -s "$ref/ckpt_00000040/state.bin" "$out/ckpt_00000040/state.bin"; then
        ok "$name: final weights and training state equal the uninterrupted run's bit for bit"
    else bad "$name: final weights or state differ from the uninterrupted run"; fi
    if [ "$(losses "$ref.jsonl")" = "$(losses "$out.jsonl")" ] && [ "$(losses "$ref.jsonl" | wc -l)" = 40 ]; then
        ok "$name: the 40 logged losses equal the uninterrupted run's"
    else bad "$name: logged losses differ"; diff <(losses "$ref.jsonl") <(losses "$out.jsonl") | head -5; fi
}

run_case galore --optimizer galore_adamw --rank 8 --update-proj-gap 7
run_case galore8bit_perlayer --optimizer galore_adamw8bit --rank 8 --update-proj-gap 7 --per-layer 1
# APOLLO: the projection redrawn from (tensor, round) and the limiter's state (state.bin limiter.N, as Fira's)
run_case apollo_mini --optimizer apollo_mini --update-proj-gap 7
run_case apollo8bit_perlayer_accum --optimizer apollo_adamw8bit --rank 8 --update-proj-gap 7 --per-layer 1 --grad-accum 2
run_case adamw_accum --optimizer adamw --grad-accum 2
# issue 15: Fira's limiter state and GoLore's seeded projectors resume bitwise too
run_case fira_perlayer_accum --optimizer fira_adamw --rank 8 --update-proj-gap 7 --per-layer 1 --grad-accum 2
run_case golore --optimizer galore_adamw --proj random --rank 8 --update-proj-gap 7

# APOLLO, Fira and GoLore, deterministically (on a loaded machine the kills above may all land before the first
# checkpoint): resume from the step-10 checkpoint of a 16-step run (refreshes at 1, 4, 7, 10, 13,
# 16: the redraws after the resume come from (tensor, round), the limiter's state from state.bin)
resume_case() {
    local name=$1; shift
    local a="$tmp/$name.a" b="$tmp/$name.b"
    local flags=(--model "$tmp/config.json" --batch 4 --seq 32 --steps 16 --warmup 3 --val "" --sample-len 0 --save-every 5 --keep 0
                 --print-every 1000 --threads 2 --update-proj-gap 3 "$@")
    "$bin" "${flags[@]}" --out "$a" --log "$a.jsonl" > "$a.stdout" 2>&1 || { bad "$name: run failed: $(tail -2 "$a.stdout")"; return; }
    mkdir -p "$b" && cp -r "$a/ckpt_00000010" "$b/" && cp "$a.jsonl" "$b.jsonl"
    "$bin" "${flags[@]}" --out "$b" --log "$b.jsonl" --resume 1 > "$b.stdout" 2>&1 || { bad "$name: resume failed: $(tail -2 "$b.stdout")"; return; }
    if grep -q '^resumed from' "$b.stdout" && cmp -s "$a/model.safetensors" "$b/model.safetensors" && cmp -s "$a/ckpt_00000016/state.bin" "$b/ckpt_00000016/state.bin" \
        && [ "$(losses "$a.jsonl")" = "$(losses "$b.jsonl")" ]; then
        ok "$name: resumed at step 10 of 16 (refreshes at 13, 16 after it): final weights, state.bin and losses equal the uninterrupted run's bit for bit"
    else bad "$name: the run resumed at step 10 differs from the uninterrupted one"; fi
}
resume_case apollo_adamw_resume --optimizer apollo_adamw --rank 8
resume_case apollo8bit_perlayer_accum_resume --optimizer apollo_adamw8bit --rank 8 --per-layer 1 --grad-accum 2
# Fira (the limiter's per-tensor state, limiter.N) and GoLore (the projectors from (seed, tensor, round))
resume_case fira_perlayer_accum_resume --optimizer fira_adamw --rank 8 --per-layer 1 --grad-accum 2
resume_case golore8bit_perlayer_resume --optimizer galore_adamw8bit --proj random --rank 8 --per-layer 1
# Fira with 8-bit low-rank moments: the 8-bit states (qm, qv, absmax) and the limiter together; rank 48 keeps
# the 48 x 48 attention matrices' R at 2304 < 4096 elements (the 32-bit kernel) and puts the MLP's 96 x 48 = 4608 on the 8-bit one
resume_case fira8bit_perlayer_accum_resume --optimizer fira_adamw8bit --rank 48 --per-layer 1 --grad-accum 2
resume_case fira8bit_accum_resume --optimizer fira_adamw8bit --rank 48 --grad-accum 2

# a corrupt state file is refused with one line naming it, and so are changed settings (--steps 41:
# a resume at --steps has nothing to do and reads nothing)
d="$tmp/galore.ref"
last=$(ls -d "$d"/ckpt_* | tail -1)
printf 'X' | dd of="$last/state.bin" bs=1 seek=2000 conv=notrunc 2>/dev/null
msg=$("$bin" "${common[@]}" --optimizer galore_adamw --rank 8 --update-proj-gap 7 --steps 41 --allow-changes 1 --out "$d" --resume 1 2>&1 >/dev/null)
grep -q "state.bin: hash mismatch" <<<"$msg" && ok "a corrupt state.bin is refused: $msg" || bad "corrupt state: $msg"
msg=$("$bin" "${common[@]}" --optimizer galore_adamw --rank 16 --update-proj-gap 7 --steps 41 --out "$tmp/adamw_accum.ref" --resume 1 2>&1 >/dev/null)
grep -q "this resume changes --optimizer adamw -> galore_adamw, --rank 0 -> 16" <<<"$msg" && ok "resuming with other settings is refused, every change listed: $msg" || bad "settings mismatch: $msg"

# interrupts: SIGINT (Ctrl-C) and SIGTERM (Slurm's preemption) finish the step, write a checkpoint
# (here with --save-every 0, the default: seen, Ctrl-C exited 130 and the whole run was lost), say
# so and exit 128 + the signal; the resumed run ends with an uninterrupted run's weights and losses
intr=(--model "$tmp/config.json" --batch 4 --seq 32 --steps 120 --warmup 3 --val "" --sample-len 0 --print-every 1000 --threads 2
      --optimizer galore_adamw --rank 8 --update-proj-gap 7)
"$bin" "${intr[@]}" --out "$tmp/intr.ref" > /dev/null 2>&1 || bad "interrupt reference run failed"
# start_run NAME: the run in the background, $pid set, once its log has 3 steps
start_run() {
    "$bin" "${intr[@]}" --out "$tmp/$1" > "$tmp/$1.stdout" 2> "$tmp/$1.stderr" &
    pid=$!
    for _ in $(seq 600); do grep -q '"step": 3,' "$tmp/$1/log.jsonl" 2>/dev/null && return; sleep 0.05; done
}
interrupt_case() {
    local sig=$1 code=$2 name=intr_$1
    start_run "$name"
    kill -"$sig" $pid; { wait $pid; } 2>/dev/null; local rc=$?
    local msg; msg=$(cat "$tmp/$name.stderr")
    local n; n=$(sed -n 's/^interrupted at step \([0-9]*\); rerun with --resume 1.*/\1/p' <<<"$msg")
    if [ $rc -eq "$code" ] && [ -n "$n" ] && [ "$n" -lt 120 ] && [ -f "$tmp/$name/$(printf 'ckpt_%08d' "$n")/DONE" ] && [ ! -e "$tmp/$name/model.safetensors" ]; then
        ok "SIG$sig: exit $rc, checkpoint of step $n, one line: $msg"
    else bad "SIG$sig (rc $rc, step '$n'): $msg $(ls "$tmp/$name")"; return; fi
    "$bin" "${intr[@]}" --out "$tmp/$name" --resume 1 > "$tmp/$name.resumed" 2>&1 || { bad "SIG$sig: resume failed: $(tail -2 "$tmp/$name.resumed")"; return; }
    if cmp -s "$tmp/intr.ref/model.safetensors" "$tmp/$name/model.safetensors" && [ "$(losses "$tmp/intr.ref/log.jsonl")" = "$(losses "$tmp/$name/log.jsonl")" ]; then
        ok "SIG$sig: resumed from step $n, the final weights and 120 logged losses equal the uninterrupted run's bit for bit"
    else bad "SIG$sig: the resumed run differs from the uninterrupted one"; fi
}
interrupt_case INT 130
interrupt_case TERM 143
# a second signal exits at once: no checkpoint is started after it (status 128 + the second one: both
# are pending together here, and the kernel picks their order)
start_run intr_twice
kill -INT $pid; kill -TERM $pid; { wait $pid; } 2>/dev/null; rc=$?
msg=$(cat "$tmp/intr_twice.stderr")
if { [ $rc -eq 130 ] || [ $rc -eq 143 ]; } && grep -q "^second signal: exiting at once" <<<"$msg" && ! ls "$tmp"/intr_twice/ckpt_*/DONE >/dev/null 2>&1; then
    ok "a second signal exits at once (rc $rc): $(grep second <<<"$msg")"
else bad "second signal (rc $rc): $msg $(ls "$tmp/intr_twice")"; fi

# checkpoint integrity: state.bin holds the hash of model.safetensors (seen: a bit flip there resumed
# silently), and a resume that changes the schedule says what changed
ck="$tmp/intr_INT"
last=$(ls -d "$ck"/ckpt_* | tail -1)
cp "$last/model.safetensors" "$tmp/model.keep"
printf '\x01' | dd of="$last/model.safetensors" bs=1 seek=5000 conv=notrunc 2>/dev/null
msg=$("$bin" "${intr[@]}" --steps 160 --allow-changes 1 --out "$ck" --resume 1 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && grep -q "^error: $last/model.safetensors: hash mismatch with the one in state.bin" <<<"$msg" && ok "a bit flip in a checkpoint's model.safetensors is refused: $(cut -c1-110 <<<"$msg")..." || bad "model bit flip (rc $rc): $msg"
cp "$tmp/model.keep" "$last/model.safetensors"
msg=$("$bin" "${intr[@]}" --steps 160 --lr 1e-3 --out "$ck" --resume 1 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && grep -q "^error: $last: this resume changes --lr 0.003 -> 0.001, --steps 120 -> 160; pass --allow-changes 1" <<<"$msg" \
    && ok "a resume with another --lr and --steps is refused, naming both: $(cut -c1-100 <<<"$msg")..." || bad "changed lr (rc $rc): $msg"
out=$("$bin" "${intr[@]}" --steps 160 --lr 1e-3 --allow-changes 1 --out "$ck" --resume 1 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^note: resuming with changed settings: --lr 0.003 -> 0.001, --steps 120 -> 160" <<<"$out" && grep -q "^done: 40 steps" <<<"$out" \
    && ok "--allow-changes 1: resumes with a note" || bad "--allow-changes 1 (rc $rc): $(tail -3 <<<"$out")"
# a checkpoint of an older galore.c (state version 1, no weights hash) gets a message saying so
last=$(ls -d "$ck"/ckpt_* | tail -1)
printf '\x01' | dd of="$last/state.bin" bs=1 seek=4 conv=notrunc 2>/dev/null
msg=$("$bin" "${intr[@]}" --steps 200 --allow-changes 1 --out "$ck" --resume 1 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && grep -q "state.bin: version 1, this program reads 2 (a checkpoint of an older galore.c" <<<"$msg" && ok "a version-1 state is refused with a clear line" || bad "old version (rc $rc): $msg"

summary
