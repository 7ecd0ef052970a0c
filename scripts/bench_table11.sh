#!/bin/bash
# bench_table11.sh: the paper's Table 11 throughput setting, ours against the official stack on
# the same card in the same run.
#
#   scripts/bench_table11.sh                 # on a GPU machine, after `make train_llamacu`
#   DRY=1 scripts/bench_table11.sh           # print the commands only
#
# Paper (arXiv 2403.03507, Table 11; galore.md): llama_1b at a 256-token batch (batch 1 x 256
# tokens), tokens/s and memory of AdamW, 8-bit Adam and 8-bit GaLore, each with and without
# per-layer weight updates. Here: for each optimizer in OPTIMIZERS and each PER_LAYER setting,
# ./train_llamacu (bf16) and dev/bench_torch.py (PyTorch + HF LlamaForCausalLM + galore-torch +
# bitsandbytes, bf16 weights and states as the official scripts) train STEPS steps on the same
# shard; the table gives the median tokens/s over the steps after SKIP and the peak device
# memory of each, and the ratios ours/torch (dev/gpu/bench_report.py says how each figure is
# measured). GaLore: rank 512 (Table 2's rank for 1B), T 200, alpha 0.25; constant lr 1e-3, no
# clipping, wd 0 for every run. The paper's own numbers (an A100) are shown beside, for scale.
#
# Environment: scripts/bench_common.sh (TRAINER, PYTHON, DATA, ENGINES, LOGDIR, RESULTS,
# RUN_TIMEOUT, COMMIT, EXTRA_OURS, EXTRA_TORCH, DRY, REPORT_ONLY), and
#   MODEL [llama_1b], BATCH [1], SEQ [256], RANK [512], GAP [200], STEPS [20], SKIP [5]
#   OPTIMIZERS ["adamw adam8bit galore_adamw8bit"], PER_LAYER ["0 1"]
# About 12 runs of 30-90 s each on an H100 (step 1 of a GaLore run computes every projector).
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"

MODEL="${MODEL:-llama_1b}"
BATCH="${BATCH:-1}"
SEQ="${SEQ:-256}"
RANK="${RANK:-512}"
GAP="${GAP:-200}"
STEPS="${STEPS:-20}"
SKIP="${SKIP:-5}"
OPTIMIZERS="${OPTIMIZERS:-adamw adam8bit galore_adamw8bit}"
PER_LAYER="${PER_LAYER:-0 1}"
[ "$STEPS" -gt "$SKIP" ] || bench_die "STEPS=$STEPS must exceed SKIP=$SKIP (the steps left out of the median)"

bench_setup table11

rows=""
for opt in $OPTIMIZERS; do
    for pl in $PER_LAYER; do
        tag="${opt}_pl${pl}"
        rows="$rows $opt:$pl"
        galore=()
        case "$opt" in galore*) galore=(--rank "$RANK" --update-proj-gap "$GAP" --galore-scale 0.25) ;; esac
        ours=("$TRAINER" --model "$MODEL" --train "$DATA" --val "" --shuffle 0 --batch "$BATCH" --seq "$SEQ"
            --steps "$STEPS" --optimizer "$opt" --per-layer "$pl" ${galore[@]+"${galore[@]}"}
            --lr 1e-3 --warmup 0 --schedule constant --grad-clip 0 --eval-every 0 --sample-len 0 --out ""
            --print-every 1 --log "$LOGDIR/ours_$tag.jsonl")
        # shellcheck disable=SC2206 # EXTRA_* are split on spaces on purpose
        ours+=($EXTRA_OURS)
        torch=("$PYTHON" dev/bench_torch.py --model "$MODEL" --optimizer "$opt" --per-layer "$pl"
            ${galore[@]+"${galore[@]}"} --batch "$BATCH" --seq "$SEQ" --steps "$STEPS"
            --warmup-steps-excluded "$SKIP" --data "$DATA" --lr 1e-3 --json "$LOGDIR/torch_$tag.json")
        # shellcheck disable=SC2206
        torch+=($EXTRA_TORCH)
        bench_engine ours "$LOGDIR/ours_$tag.out" "${ours[@]}"
        bench_engine torch "$LOGDIR/torch_$tag.out" "${torch[@]}"
    done
done

bench_report table11 "${rows# }" "model=$MODEL" "batch=$BATCH" "seq=$SEQ" "rank=$RANK" "gap=$GAP" "steps=$STEPS"
[ "$BENCH_FAILED" = 0 ]
