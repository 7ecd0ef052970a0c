#!/usr/bin/env bash
# test_dist_gpu.sh (make test-gpu; needs a GPU, not MPI): the NCCL data-parallel path of
# train_llamacu on the one GPU a test machine has. A data-parallel run of one rank (RANK=0
# WORLD_SIZE=1 --dist-init file:..., the rendezvous that needs no MPI): NCCL communicator,
# all-reduces per update group on the side stream (whole-model) or inside the update hook
# (per-layer), GaLore gradients reduced as bf16 R = P^T G. Its losses must match the
# plain run: bitwise for adamw (a one-rank all-reduce copies), and within bf16 rounding for GaLore
# (R is rounded to bf16 before the update, where the plain run keeps it in fp32). The bitwise pairs
# run --attn-fallback 2: cuDNN only with a deterministic backward (else the cuBLAS path), so a
# dQ-accumulator engine (fp32 atomics) cannot fail them; each pair prints the attention path.
# Several GPUs, when present: 2 ranks at batch 4 vs 1 process at batch 8 (bf16 tolerance).
source "$(dirname "$0")/testlib.sh"
bin=${BIN:-./train_llamacu}  # BIN=./train_llamacu_emu: the same pairs under the CUDA emulation (make test-emu)
# SEQ/STEPS/BATCH: smaller under the emulation, whose kernels run ~10-40 ns per thread
common=(--seq ${SEQ:-128} --steps ${STEPS:-8} --shuffle 0 --out "" --val "" --sample-len 0 --warmup 2)

run_pair() { # NAME TOL NP BATCH_ONE BATCH_RANK ARGS...
    local name=$1 tol=$2 np=$3 b1=$4 bn=$5; shift 5
    "$bin" --batch "$b1" "${common[@]}" --log "$tmp/one.jsonl" "$@" > "$tmp/one.txt" 2>&1 || { bad "$name: plain run: $(tail -2 "$tmp/one.txt")"; return; }
    # np ranks, one GPU each, meeting through a fresh id file
    local id="$tmp/nccl_id.$RANDOM$RANDOM" pids=() r rc=0
    for ((r = 0; r < np; r++)); do
        RANK=$r WORLD_SIZE=$np LOCAL_RANK=$r "$bin" --batch "$bn" "${common[@]}" --dist-init "file:$id" \
            --log "$tmp/two$r.jsonl" "$@" > "$tmp/two$r.txt" 2>&1 &
        pids+=($!)
    done
    for r in "${pids[@]}"; do wait "$r" || rc=1; done
    cp "$tmp/two0.jsonl" "$tmp/two.jsonl" 2>/dev/null; cp "$tmp/two0.txt" "$tmp/two.txt"
    [ $rc -eq 0 ] || { bad "$name: data-parallel run: $(tail -3 "$tmp/two.txt")"; return; }
    grep -q "data parallel: $np processes" "$tmp/two.txt" || { bad "$name: no data-parallel line"; return; }
    echo "note: $name: $(grep -m1 '^attention:' "$tmp/one.txt" || echo 'attention: (no line)')"
    compare_losses "$name" "$tmp/one.jsonl" "$tmp/two.jsonl" "$tol"
}

# bf16: R rounded to bf16 moves the GaLore updates by ~2^-8 relative; over 8 steps the losses stay
# within 1e-2 (the CPU-vs-GPU training check in test_llamacu uses the same order)
run_pair "1 rank, adamw, whole-model (bitwise)" 0 1 "${BATCH:-8}" "${BATCH:-8}" --optimizer adamw --attn-fallback 2
run_pair "1 rank, adamw, per-layer (bitwise)" 0 1 "${BATCH:-8}" "${BATCH:-8}" --optimizer adamw --per-layer 1 --attn-fallback 2
run_pair "1 rank, galore_adamw, low-rank all-reduce" 1e-2 1 "${BATCH:-8}" "${BATCH:-8}" --optimizer galore_adamw --rank 32 --update-proj-gap 3 --grad-clip 0 --lr 0.01
run_pair "1 rank, galore_adamw8bit per-layer" 1e-2 1 "${BATCH:-8}" "${BATCH:-8}" --optimizer galore_adamw8bit --rank 32 --update-proj-gap 3 --per-layer 1 --lr 0.01
ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$ngpu" -ge 2 ]; then
    run_pair "2 ranks vs batch 8, adamw" 1e-2 2 8 4 --optimizer adamw
    run_pair "2 ranks vs batch 8, galore_adamw" 1e-2 2 8 4 --optimizer galore_adamw --rank 32 --update-proj-gap 3 --grad-clip 0 --lr 0.01
else
    echo "note: $ngpu GPU(s): the 2-rank comparison needs 2 (NCCL takes one GPU per rank)"
fi
summary
