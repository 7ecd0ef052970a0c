#!/usr/bin/env bash
# test_dist.sh: data parallel on the CPU over MPI. `mpirun -np 2 ./train_llama --batch B` must take
# the steps one process takes with --batch 2B (--shuffle 0: the two ranks read exactly the samples
# of the single process's batch), to fp32 rounding: the ranks' gradients are summed in another
# order than one matmul over 2B rows sums them. Cases: adamw, galore_adamw across refreshes with
# the low-rank all-reduce (R = P^T G between refreshes), with full gradients (clipping on),
# per-layer, per-layer with accumulation, 8-bit GaLore; the validation loss; checkpoints written
# by 2 ranks resume bitwise on 2 ranks and refuse 1 rank; bad launches give one error line.
source "$(dirname "$0")/testlib.sh"
bin=./train_llama
if ! command -v mpirun >/dev/null 2>&1; then
    echo "FAIL mpirun not found: install openmpi-bin libopenmpi-dev (Debian) and rebuild (.ci/run does)"
    echo "0 passed, 1 failed"; exit 1
fi
# CI runs as root in a container; 2 ranks on 2 cores, one thread each
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { mpirun -np "$1" --bind-to none "${@:2}"; }
common=(--seq 64 --steps 8 --shuffle 0 --threads 1 --out "" --sample-len 0 --warmup 2 --eval-every 0 --eval-tokens 4096)

# case NAME TOL ARGS...: one process at batch 8 vs two ranks at batch 4
case_dp() {
    local name=$1 tol=$2; shift 2
    if ! "$bin" --batch 8 "${common[@]}" --log "$tmp/one.jsonl" "$@" > "$tmp/one.txt" 2>&1; then bad "$name: single run failed: $(tail -2 "$tmp/one.txt")"; return; fi
    if ! mpi 2 "$bin" --batch 4 "${common[@]}" --log "$tmp/two.jsonl" "$@" > "$tmp/two.txt" 2>&1; then bad "$name: 2-rank run failed: $(tail -3 "$tmp/two.txt")"; return; fi
    compare_losses "$name" "$tmp/one.jsonl" "$tmp/two.jsonl" "$tol"
}

# the first launch says which binary we have: built without MPI it refuses mpirun in one line
if ! mpi 2 "$bin" --batch 4 "${common[@]}" --steps 1 --val "" > "$tmp/probe.txt" 2>&1 || ! grep -q "data parallel: 2 processes (mpi)" "$tmp/probe.txt"; then
    bad "train_llama does not run under mpirun: $(grep -m1 error "$tmp/probe.txt")"
    echo "$pass passed, $fail failed"; exit 1
fi
ok "2 ranks over MPI"

# fp32: one process vs two differ by the order of the final sums only: each gradient entry by a few
# ulps of the sum over the batch's rows (relative ~1e-7 .. 1e-6, OpenBLAS or reference BLAS alike).
# Adam is invariant to the gradient's scale, so an update element moves by the same relative amount
# (entries whose gradient is pure rounding noise get full-size steps, but such an entry has ~0
# first-order effect on the loss); over 8 steps the losses then move by <= 8 x 1e-6 relative: 1e-5.
case_dp "adamw, clipping on" 1e-5 --optimizer adamw
case_dp "galore_adamw, refreshes at 1 4 7, low-rank all-reduce" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01
if grep -q "all-reduce .*(full gradients .*: 0% saved)" "$tmp/two.txt" && grep -q "all-reduce .*: [1-9][0-9]*% saved)" "$tmp/two.txt"; then
    ok "bytes all-reduced printed: full at refresh steps, fewer between ($(grep -o '[0-9.]* MiB (full gradients [0-9.]* MiB: [1-9][0-9]*% saved)' "$tmp/two.txt" | head -1))"
else bad "all-reduce bytes: $(grep -m2 -o 'all-reduce.*' "$tmp/two.txt")"; fi
case_dp "galore_adamw, clipping on: full all-reduce" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --lr 0.01
case_dp "galore_adamw --per-layer" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --per-layer 1 --lr 0.01
case_dp "galore_adamw --per-layer --grad-accum 2" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --per-layer 1 --grad-accum 2 --lr 0.01
case_dp "adamw --per-layer" 1e-5 --optimizer adamw --per-layer 1
case_dp "galore_adamw --svd randomized (every rank draws the same sketch)" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01 --svd randomized
case_dp "galore_adamw --per-layer --recompute 1" 1e-5 --optimizer galore_adamw --rank 16 --update-proj-gap 3 --per-layer 1 --recompute 1 --lr 0.01
# issue 15: GoLore's random projector is drawn from (--seed, tensor, round) on every rank alike, so
# the low-rank all-reduce applies as for the SVD; Fira all-reduces full gradients (its residual
# needs the summed G), whole-model and per-layer with accumulation
case_dp "galore_adamw --proj random (GoLore), low-rank all-reduce" 1e-5 --optimizer galore_adamw --proj random --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01
case_dp "fira_adamw, refreshes at 1 4 7" 1e-5 --optimizer fira_adamw --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01
grep -q "Fira's residual needs the full summed gradient" "$tmp/two.txt" && grep -q "all-reduce .*: 0% saved)" "$tmp/two.txt" &&
    ! grep -q "all-reduce .*: [1-9][0-9]*% saved)" "$tmp/two.txt" && ok "fira_adamw all-reduces full gradients at every step (0% saved)" ||
    bad "fira_adamw all-reduce: $(grep -m2 -o 'all-reduce.*' "$tmp/two.txt")"
case_dp "fira_adamw --per-layer --grad-accum 2" 1e-5 --optimizer fira_adamw --rank 16 --update-proj-gap 3 --per-layer 1 --grad-accum 2 --lr 0.01
# APOLLO: the same seeded projection on every rank, full all-reduce (the update scales the raw gradient)
case_dp "apollo_adamw, redraws at 1 4 7, full all-reduce" 1e-5 --optimizer apollo_adamw --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01
case_dp "apollo_mini --per-layer --grad-accum 2" 1e-5 --optimizer apollo_mini --update-proj-gap 3 --per-layer 1 --grad-accum 2 --lr 0.01
# 8-bit states: the same fp32 rounding, then quantized. Compared is what must agree:
# - the codes after step 1 (one update from one gradient, no quantized state read back yet): a value
#   gets another code only when it lies within its rounding (relative <= ~1e-6) of a decision
#   boundary, and the dynamic maps' boundaries are >= 1.4% of |x| apart (64 linear steps over
#   [0.1, 1] in the top decade, coarser relative to |x| nowhere), so P(flip) <= 2e-6 / 1.4e-2 =
#   1.4e-4 per code, and a flipped code is a neighbour: fraction bound 1e-3 (7x), none 2 apart.
#   A lost rank or a wrong normalization changes the gradient's direction: most codes move.
# - the losses of steps 1 and 2: step 2's weights come from update 1, which reads the unquantized
#   moments (adam8bit.md), so these are fp32 losses: 1e-5 as above.
# - later losses read the quantized states: from the first flip on, the two runs are two
#   trajectories of the same optimizer. A flip changes one element of the low-rank update by up to
#   a whole Adam step (a v code near zero), and a refresh turns a near-tie between a singular
#   vector's two largest entries into a sign flip of that direction (galore_sign_fix); the runs'
#   loss curves then separate by a fraction of what the steps move the loss (it falls ~20% over
#   these 8 steps, 2.5% a step on average): bound 1e-2. What catches a broken reduction is the two checks above.
# The same for the other 8-bit kinds: GoLore's (the seeded projector, low-rank all-reduce),
# fira_adamw8bit (galore_adamw8bit's moments plus Fira's fp32 residual, full all-reduce) and
# apollo_adamw8bit (the seeded projection, full all-reduce): the same quantization of the same
# fp32 rounding, so the same argument and bounds.
for opt8 in "galore_adamw8bit|low-rank all-reduce|" "galore_adamw8bit|--proj random, low-rank all-reduce|--proj random" \
            "fira_adamw8bit|full all-reduce|" "apollo_adamw8bit|full all-reduce|"; do
    IFS='|' read -r o8 how extra <<< "$opt8"
    # shellcheck disable=SC2086 # extra holds flags
    d8=(--batch 8 "${common[@]}" --optimizer "$o8" $extra --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01 --save-every 1 --keep 0)
    if "$bin" "${d8[@]}" --out "$tmp/o8" --log "$tmp/one.jsonl" > "$tmp/one.txt" 2>&1 &&
       mpi 2 "$bin" "${d8[@]}" --batch 4 --out "$tmp/t8" --log "$tmp/two.jsonl" > "$tmp/two.txt" 2>&1; then
        compare_codes "$o8, $how: codes after step 1" "$tmp/o8/ckpt_00000001/state.bin" "$tmp/t8/ckpt_00000001/state.bin" 1e-3
        compare_losses "$o8, $how: losses" "$tmp/one.jsonl" "$tmp/two.jsonl" 1e-2 2 1e-5
    else bad "$o8: a run failed: $(tail -2 "$tmp/one.txt" "$tmp/two.txt")"; fi
    rm -rf "$tmp/o8" "$tmp/t8"
done

# one rank under mpirun takes the data-parallel code path (low-rank R all-reduced as a separate
# buffer, the update from R) with an all-reduce that is the identity: the same arithmetic as the
# plain run, so the losses are bit-identical (the printed norm is of R between refreshes)
for pl in 0 1; do
    one=(--batch 4 "${common[@]}" --val "" --optimizer galore_adamw --rank 16 --update-proj-gap 3 --grad-clip 0 --lr 0.01 --per-layer $pl)
    "$bin" "${one[@]}" --log "$tmp/p1.jsonl" > /dev/null 2>&1
    mpi 1 "$bin" "${one[@]}" --log "$tmp/p2.jsonl" > "$tmp/p2.txt" 2>&1
    if grep -q "data parallel: 1 processes" "$tmp/p2.txt" && [ -s "$tmp/p1.jsonl" ] &&
       diff <(sed 's/, "grad_norm".*//' "$tmp/p1.jsonl") <(sed 's/, "grad_norm".*//' "$tmp/p2.jsonl") >/dev/null; then
        ok "mpirun -np 1 (per-layer $pl): the data-parallel path gives bit-identical losses"
    else bad "mpirun -np 1 (per-layer $pl): $(diff <(sed 's/, "grad_norm".*//' "$tmp/p1.jsonl") <(sed 's/, "grad_norm".*//' "$tmp/p2.jsonl") | head -2)"; fi
done

# the data-parallel run scripts (scripts/common.sh's NPROC / LAUNCHER) at a tiny setting
if TRAINER=./train_llama MODEL=llama_tiny TRAIN="dev/data/tinytext/train_*.bin" VAL="dev/data/tinytext/val_*.bin" \
   TOKENIZER="dev/data/tinytext/tokenizer.bin" STEPS=3 MICRO_BATCH=2 TOTAL_BATCH=8 SEQ=64 EVAL_TOKENS=2048 NPROC=2 \
   EXTRA_ARGS="--sample-len 0 --threads 1" RETRY_SLEEP=0 MAX_FAILS=1 RUN_DIR="$tmp/dp1b" \
   bash scripts/dp_llama1b_galore.sh > "$tmp/dp1b.txt" 2>&1 && [ -f "$tmp/dp1b/DONE" ] &&
   grep -q -- "mpirun -np 2 --bind-to none ./train_llama .*--grad-accum 2 " "$tmp/dp1b/command.txt" &&
   grep -q "data parallel: 2 processes" "$tmp/dp1b/train.out" && [ "$(grep -c tokens_per_s "$tmp/dp1b/log.jsonl")" = 3 ]; then
    ok "scripts/dp_llama1b_galore.sh: 2 ranks x 2 sequences x --grad-accum 2 = TOTAL_BATCH 8, 3 steps, DONE"
else bad "scripts/dp_llama1b_galore.sh: $(tail -3 "$tmp/dp1b.txt")"; fi
cmd=$(DRY_RUN=1 RUN_DIR="$tmp/x" HOSTFILE=hosts TRAINER=./train_llamacu bash scripts/dp_llama7b_galore8bit.sh)
if grep -q -- "^mpirun -np 64 --hostfile hosts --map-by ppr:8:node --bind-to none ./train_llamacu .*--batch 8 .*--grad-accum 1 .*--grad-clip 1.0" <<<"$cmd"; then
    ok "scripts/dp_llama7b_galore8bit.sh: 64 ranks x 8 = 512 sequences, clip 1.0"
else bad "dp 7b dry run: $cmd"; fi

# checkpoints: 2 ranks, 3 steps + resume to 6 == 6 steps straight, bitwise (constant lr, so the
# schedule does not depend on --steps)
ck=(--batch 4 --seq 64 --shuffle 0 --threads 1 --sample-len 0 --val "" --schedule constant --warmup 0 --optimizer galore_adamw
    --rank 16 --update-proj-gap 2 --grad-clip 0 --lr 0.01)
mpi 2 "$bin" "${ck[@]}" --steps 6 --out "$tmp/a" --log "$tmp/a.jsonl" > "$tmp/a.txt" 2>&1 || bad "straight run: $(tail -2 "$tmp/a.txt")"
mpi 2 "$bin" "${ck[@]}" --steps 3 --out "$tmp/b" --log "$tmp/b.jsonl" > "$tmp/b.txt" 2>&1 || bad "first half: $(tail -2 "$tmp/b.txt")"
mpi 2 "$bin" "${ck[@]}" --steps 6 --out "$tmp/b" --log "$tmp/b.jsonl" --resume 1 > "$tmp/b2.txt" 2>&1 || bad "resumed half: $(tail -2 "$tmp/b2.txt")"
if grep -q "resumed from" "$tmp/b2.txt" && [ -s "$tmp/a.jsonl" ] && diff <(sed 's/"ms".*//' "$tmp/a.jsonl") <(sed 's/"ms".*//' "$tmp/b.jsonl") >/dev/null; then
    ok "2 ranks: resumed at step 3, the 6 logged losses are bit-identical"
else bad "2-rank resume: $(diff <(sed 's/"ms".*//' "$tmp/a.jsonl") <(sed 's/"ms".*//' "$tmp/b.jsonl") | head -3)"; fi
if cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors"; then ok "2 ranks: final weights identical after resume"; else bad "2-rank resume: final weights differ"; fi
out=$("$bin" "${ck[@]}" --batch 4 --steps 8 --out "$tmp/b" --resume 1 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && [ "$(grep -c '^error: ' <<<"$out")" = 1 ] && grep -q "this resume changes the number of processes (data-parallel ranks) 2 -> 1" <<<"$out"; then
    ok "resume on another world size: one error line"
else bad "resume with 1 rank (rc $rc): $out"; fi

# an interrupt that reaches ONE rank: every rank stops after the same step (they agree by an
# all-reduce after each step), rank 0 writes one consistent checkpoint, both exit 143, and the
# resumed 2-rank run ends with the uninterrupted run's weights and losses, bit for bit
ck2=("${ck[@]}" --steps 100 --print-every 1000)
mpi 2 "$bin" "${ck2[@]}" --out "$tmp/s_ref" > "$tmp/s_ref.txt" 2>&1 || bad "signal reference run: $(tail -2 "$tmp/s_ref.txt")"
mpi 2 "$bin" "${ck2[@]}" --out "$tmp/s" > "$tmp/s.txt" 2> "$tmp/s.err" &
mpid=$!
for _ in $(seq 600); do grep -q '"step": 3,' "$tmp/s/log.jsonl" 2>/dev/null && break; sleep 0.05; done
ranks=$(pgrep -f -- "--out $tmp/s$" | tr "\n" " ")  # mpirun and its two ranks (this test's own command line)
rank1=$(for p in $ranks; do tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' && echo $p; done)
[ -n "$rank1" ] && kill -TERM $rank1
{ wait $mpid; } 2>/dev/null; rc=$?
steps=$(sed -n 's/^interrupted at step \([0-9]*\);.*/\1/p' "$tmp/s.err" | sort -u)
if [ -n "$rank1" ] && [ $rc -ne 0 ] && [ "$(grep -c '^interrupted at step' "$tmp/s.err")" = 2 ] && [ "$(wc -w <<<"$steps")" = 1 ] \
   && [ -f "$tmp/s/$(printf 'ckpt_%08d' "$steps")/DONE" ]; then
    ok "SIGTERM to rank 1 only: both ranks stopped after step $steps, one checkpoint"
else bad "2-rank interrupt (rank1 '$rank1', rc $rc): $(cat "$tmp/s.err" | head -5) $(ls "$tmp/s")"; fi
mpi 2 "$bin" "${ck2[@]}" --out "$tmp/s" --resume 1 > "$tmp/s2.txt" 2>&1 || bad "2-rank resume after the interrupt: $(tail -2 "$tmp/s2.txt")"
if cmp -s "$tmp/s_ref/model.safetensors" "$tmp/s/model.safetensors" \
   && diff <(sed 's/"ms".*//' "$tmp/s_ref/log.jsonl") <(sed 's/"ms".*//' "$tmp/s/log.jsonl") >/dev/null; then
    ok "2 ranks: resumed after the interrupt, weights and 100 logged losses equal the uninterrupted run's"
else bad "2-rank resume after the interrupt differs"; fi

# bad launches
out=$(RANK=0 WORLD_SIZE=1 "$bin" --dist-init "file:$tmp/id" --steps 1 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && grep -q "^error: .*mpirun" <<<"$out"; then ok "--dist-init on the CPU program: one error line"; else bad "--dist-init (rc $rc): $out"; fi
out=$(RANK=0 "$bin" --dist-init tcp:host:1 --steps 1 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && grep -q "^error: .*WORLD_SIZE" <<<"$out"; then ok "--dist-init without WORLD_SIZE: one error line"; else bad "--dist-init no WORLD_SIZE (rc $rc): $out"; fi

summary
