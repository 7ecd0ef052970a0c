#!/bin/bash
# experiment_cpu.sh: the paper's comparison (Table 2: full-rank vs GaLore) in miniature, on
# 2 CPU cores in under an hour: llama_tiny (hidden 256, 4 layers, 5.3M params) on the embedded
# Jane Austen text (dev/data/tinytext), every run on the same tokens (same seed, shuffle, steps).
#
#   scripts/experiment_cpu.sh            # sweep + main runs + plot (~30 min on 2 idle cores)
#   scripts/experiment_cpu.sh sweep      # only the short full-rank lr sweep
#   scripts/experiment_cpu.sh main       # only the main runs (APOLLO's included)
#   scripts/experiment_cpu.sh apollo     # only the APOLLO runs
#   scripts/experiment_cpu.sh plot       # only docs/experiment_cpu.png + the table
#   scripts/experiment_cpu.sh plan7b     # only the llama_7b memory plan table of every optimizer
#   scripts/experiment_cpu.sh bench      # only the tokens/s of every optimizer (interleaved, vs adamw)
#   scripts/experiment_cpu.sh int8       # only the --weights int8 runs (issue 25) and their fp32 twins
#   BENCH_SET=int8 scripts/experiment_cpu.sh bench   # tokens/s of those six, interleaved
#
# Settings carried over from the paper's 60M run (scripts/run_llama60m_*.sh), relative to width:
#   rank 128 at hidden 512 -> rank 64 at hidden 256; alpha 0.25; T (update-proj-gap) 200;
#   GaLore lr 0.01 vs full-rank lr 0.001; warmup 10% of the steps, cosine to 10%; wd 0; no clip.
# What is NOT the paper's: 16 x 128-token batches (2048 tokens/step instead of 131K), a 4096-
# token vocabulary, ~3.5 epochs over a 0.94M-token corpus instead of <1 epoch of C4, fp32.
# Runs go to OUT (default runs/experiment_cpu, outside version control); each run folder is
# resumable like the paper scripts (scripts/common.sh). Never run two trainings at once on
# 2 cores: the timings (tokens/s) would be meaningless.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="${OUT:-runs/experiment_cpu}"
X_STEPS="${X_STEPS:-600}"             # 1.2M tokens: ~4 min per run on 2 idle cores (~5000 tok/s),
                                      # ~12 min on a shared, loaded machine (~1700 tok/s)
X_SWEEP_STEPS="${X_SWEEP_STEPS:-250}" # the quick lr sweep for the full-rank baseline
# The sweep (250 steps) ranked the full-rank lr 1e-3 < 3e-3 < 1e-2 (1e-3 best), so the paper's
# 1e-3 baseline is also the tuned one. A second full-rank run at 3e-3 over the full 600 steps
# checks that ranking at the main runs' length (GaLore's effective matrix lr is 0.01 x 0.25).
# FULL_LR_TUNED=0.001 skips it.
FULL_LR_TUNED="${FULL_LR_TUNED:-0.003}"
PHASE="${1:-all}"

# OpenMP threads sleep instead of spinning while they wait: with other processes on the
# 2 cores, spinning threads cost ~40% of the throughput (measured: 1000 vs 1700 tok/s)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

# every run uses one copy of the CPU trainer, so a `make` elsewhere cannot change it mid-way
mkdir -p "$OUT" || exit 1
if [ ! -x "$OUT/train_llama" ]; then
    [ -x ./train_llama ] || make train_llama || exit 1
    cp ./train_llama "$OUT/train_llama" || exit 1
fi

# one miniature run: NAME STEPS [trainer flags]
tiny_run() {
    local name="$1" steps="$2"; shift 2
    TRAINER="$OUT/train_llama" RUN_DIR="$OUT/$name" MODEL=llama_tiny STEPS="$steps" WARMUP=$((steps / 10)) \
    TOTAL_BATCH=16 MICRO_BATCH=16 SEQ=128 \
    TRAIN="dev/data/tinytext/train_*.bin" VAL="dev/data/tinytext/val_*.bin" \
    TOKENIZER="dev/data/tinytext/tokenizer.bin" \
    EVAL_EVERY=$((steps < 500 ? steps : 100)) EVAL_TOKENS=1000000 SAVE_EVERY=100 KEEP=1 SEED=42 GRAD_CLIP=0 \
    paper_run "$name" --threads 0 --print-every 50 --sample-len 0 "$@"
}
MODEL_DEFAULT=llama_tiny; STEPS_DEFAULT=$X_STEPS; WARMUP_DEFAULT=$((X_STEPS / 10)); MICRO_BATCH_DEFAULT=16

GALORE=(--rank 64 --update-proj-gap 200 --galore-scale 0.25 --proj-type std)

if [ "$PHASE" = all ] || [ "$PHASE" = sweep ]; then
    for lr in 0.001 0.003 0.01; do
        tiny_run "sweep_adamw_lr$lr" "$X_SWEEP_STEPS" --optimizer adamw --lr "$lr" || exit 1
    done
fi
# the runs of the tables, NAME|trainer flags (the bench phase times the same settings)
MAIN_RUNS=("tiny_adamw_lr0.001|--optimizer adamw --lr 0.001"
           "tiny_galore_adamw|--optimizer galore_adamw --lr 0.01 ${GALORE[*]}"
           "tiny_galore_adamw8bit|--optimizer galore_adamw8bit --lr 0.01 ${GALORE[*]}"
           # issue 15: Fira and GoLore on the same tokens, GaLore's settings
           "tiny_fira_adamw|--optimizer fira_adamw --lr 0.01 ${GALORE[*]}"
           "tiny_golore_adamw|--optimizer galore_adamw --proj random --lr 0.01 ${GALORE[*]}"
           "tiny_fira_adamw8bit|--optimizer fira_adamw8bit --lr 0.01 ${GALORE[*]}")
# APOLLO (apollo-torch's settings: APOLLO rank 1/4 of the width as GaLore, channel-wise, scale 1;
# APOLLO-Mini rank 1, tensor-wise, scale 128), the paper's lr 0.01, T 200, on the same tokens
APOLLO="--update-proj-gap 200 --proj-type std"
APOLLO_RUNS=("tiny_apollo_adamw|--optimizer apollo_adamw --lr 0.01 --rank 64 $APOLLO"
             "tiny_apollo_mini|--optimizer apollo_mini --lr 0.01 $APOLLO"
             "tiny_apollo_adamw8bit|--optimizer apollo_adamw8bit --lr 0.01 --rank 64 $APOLLO")
# issue 25: INT8 weights (Q-GaLore / Q-APOLLO's storage, --weight-group 128) beside their fp32
# twins of the tables above, on the same tokens
INT8_TWINS=("${MAIN_RUNS[0]}" "${MAIN_RUNS[2]}" "${APOLLO_RUNS[1]}")
INT8_RUNS=()
for spec in "${INT8_TWINS[@]}"; do INT8_RUNS+=("${spec%%|*}_int8|${spec#*|} --weights int8"); done
# tiny_runs SPEC...: each NAME|flags for X_STEPS
tiny_runs() {
    local spec name flags
    for spec in "$@"; do
        IFS='|' read -r name flags <<< "$spec"
        # shellcheck disable=SC2086 # flags holds flags
        tiny_run "$name" "$X_STEPS" $flags || exit 1
    done
}
if [ "$PHASE" = all ] || [ "$PHASE" = main ]; then
    tiny_runs "${MAIN_RUNS[@]}"
    if [ "$FULL_LR_TUNED" != 0.001 ]; then
        tiny_run "tiny_adamw_lr$FULL_LR_TUNED" "$X_STEPS" --optimizer adamw --lr "$FULL_LR_TUNED" || exit 1
    fi
fi
if [ "$PHASE" = all ] || [ "$PHASE" = main ] || [ "$PHASE" = apollo ]; then
    tiny_runs "${APOLLO_RUNS[@]}"
fi
if [ "$PHASE" = int8 ]; then
    tiny_runs "${INT8_TWINS[@]}" "${INT8_RUNS[@]}"
    "${PYTHON:-python3}" dev/plot_runs.py --no-plot "$OUT"/tiny_adamw_lr0.001* "$OUT"/tiny_galore_adamw8bit* "$OUT"/tiny_apollo_mini*
fi
# the llama_7b memory plan of every optimizer at 1 x 256 with per-layer updates (no training:
# --memory-plan json of the CPU binary prints both engines' plans), as one markdown table
PLAN7B=("adamw|-|" "adam8bit|-|" "galore_adamw|1024|" "galore_adamw8bit|1024|"
        "galore_adamw|1024|--proj random" "galore_adamw8bit|1024|--proj random" "fira_adamw|1024|" "fira_adamw8bit|1024|"
        "apollo_adamw|256|" "apollo_adamw8bit|256|" "apollo_mini|1|")
if [ "$PHASE" = plan7b ]; then
    echo "| optimizer | rank | CPU (fp32) weights + state | CPU total | GPU (bf16) weights + state | GPU total |"
    echo "|---|---|---|---|---|---|"
    for spec in "${PLAN7B[@]}"; do
        IFS='|' read -r opt rank extra <<< "$spec"
        # shellcheck disable=SC2086 # extra holds flags
        "$OUT/train_llama" --model llama_7b --optimizer "$opt" $([ "$rank" = - ] || echo --rank "$rank" --update-proj-gap 500) $extra \
            --batch 1 --seq 256 --per-layer 1 --memory-plan json |
        "${PYTHON:-python3}" -c '
import json, sys
name, rank = sys.argv[1], sys.argv[2]
plans = {p["engine"]: p for p in json.load(sys.stdin)["plans"]}
gib = lambda b: "%.2f GiB" % (b / 2.0**30)
cpu, gpu = plans["cpu"], plans["gpu"]
print("| `%s` | %s | %s | %s | %s | %s |" % (name, rank, gib(cpu["state_bytes"]), gib(cpu["total_bytes"]), gib(gpu["state_bytes"]), gib(gpu["total_bytes"])))
' "$opt${extra:+ $extra}" "$rank" || exit 1
    done
fi
# throughput of every optimizer of the tables, measured apart from the runs (which may share the
# machine): BENCH_STEPS steps each on the same tokens, BENCH_ROUNDS rounds with the optimizers
# interleaved, the median step of each (the first 5 left out: SVD, warmup), and its ratio to adamw
# in the same round, so a busy machine slows both sides of a ratio alike
BENCH=("${MAIN_RUNS[@]}" "${APOLLO_RUNS[@]}")
[ "${BENCH_SET:-}" = int8 ] && BENCH=("${INT8_TWINS[@]}" "${INT8_RUNS[@]}") # adamw first: the ratios' reference
if [ "$PHASE" = bench ]; then
    BENCH_STEPS="${BENCH_STEPS:-30}"; BENCH_ROUNDS="${BENCH_ROUNDS:-2}"
    mkdir -p "$OUT/bench" || exit 1
    for round in $(seq "$BENCH_ROUNDS"); do
        for k in "${!BENCH[@]}"; do
            IFS='|' read -r name flags <<< "${BENCH[$k]}"
            # shellcheck disable=SC2086 # flags holds flags
            "$OUT/train_llama" --model llama_tiny $flags --steps "$BENCH_STEPS" --warmup 3 --batch 16 --seq 128 \
                --seed 42 --grad-clip 0 --threads 0 --val "" --out "" --sample-len 0 --print-every 1000 \
                --log "$OUT/bench/r${round}_$k.jsonl" > "$OUT/bench/r${round}_$k.out" 2>&1 || { tail -2 "$OUT/bench/r${round}_$k.out"; exit 1; }
        done
    done
    "${PYTHON:-python3}" - "$OUT/bench" "$BENCH_ROUNDS" "${BENCH[@]}" <<'PY'
import json, statistics, sys
d, rounds, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def median_tps(path):
    steps = [json.loads(l) for l in open(path) if '"tokens_per_s"' in l]
    return statistics.median(s["tokens_per_s"] for s in steps[5:])
tps = [[median_tps("%s/r%d_%d.jsonl" % (d, r, k)) for k in range(len(specs))] for r in range(1, rounds + 1)]
print("| run | tokens/s (median of rounds) | vs adamw (same round; min - max) |")
print("|---|---|---|")
for k, spec in enumerate(specs):
    name = spec.split("|", 1)[0]
    ratios = [tps[r][k] / tps[r][0] for r in range(rounds)]
    print("| `%s` | %.0f | %.2f (%.2f - %.2f) |" % (name, statistics.median(t[k] for t in tps), statistics.median(ratios), min(ratios), max(ratios)))
PY
fi
if [ "$PHASE" = all ] || [ "$PHASE" = plot ]; then
    mkdir -p docs
    runs=("$OUT"/tiny_adamw_lr* "$OUT"/tiny_galore_adamw "$OUT"/tiny_galore_adamw8bit)
    "${PYTHON:-python3}" dev/plot_runs.py --x tokens --out docs/experiment_cpu.png \
        --title "llama_tiny on tinytext, 2 CPU cores: full-rank AdamW vs GaLore (rank 64, T 200, alpha 0.25)" "${runs[@]}"
    # issue 15: GaLore's successors beside full rank and GaLore
    runs=("$OUT"/tiny_adamw_lr0.001 "$OUT"/tiny_galore_adamw "$OUT"/tiny_fira_adamw* "$OUT"/tiny_golore_adamw "$OUT"/tiny_apollo_*)
    "${PYTHON:-python3}" dev/plot_runs.py --x tokens --out docs/experiment_cpu_issue15.png \
        --title "llama_tiny on tinytext, 2 CPU cores: GaLore's successors (Fira, GoLore, APOLLO, APOLLO-Mini; 8-bit forms)" "${runs[@]}"
    echo "sweep:"
    "${PYTHON:-python3}" dev/plot_runs.py --no-plot "$OUT"/sweep_*
fi
