#!/bin/bash
# finetune_galore.sh: fine-tune (or continue pretraining) a Hugging Face Llama with GaLore.
#
#   scripts/finetune_galore.sh HF_DIR 'TRAIN_SHARDS' ['VAL_SHARDS']
#
# HF_DIR: a downloaded model folder (config.json + model.safetensors, or the shards and
# model.safetensors.index.json of a large model: Llama 2 7B, Llama 3.x 1B/3B/8B, TinyLlama,
# SmolLM ...). TRAIN_SHARDS / VAL_SHARDS: token shards of that model's tokenizer (a glob, quoted),
# e.g. from `python dev/data/c4.py`. The result, RUN_DIR (runs/finetune_<folder name>), holds the
# model in the layout it came in (BF16 shards + index above 5GB, tied embeddings kept tied) with
# its config.json, which transformers opens:
#   transformers.LlamaForCausalLM.from_pretrained("runs/finetune_<name>")
#
# Default recipe: 8-bit GaLore (galore_adamw8bit) with per-layer weight updates, the paper's
# memory-saving setting (a 7B model trains on one 24 GB GPU at MICRO_BATCH=1 TOTAL_BATCH=1 SEQ=256;
# check a setting's memory first with DRY_RUN=1 and the printed command plus --memory-plan 1),
# rank 128, projector refresh every 200 steps, scale 0.25, lr 1e-4 (GaLore matrices step at
# lr x scale), cosine to 10% after 10% warmup, no weight decay, no clipping (per-layer updates
# cannot clip the global norm), 1000 steps of 16 x 512 tokens. These are starting points, not a
# tuned recipe: every one is an environment variable of scripts/common.sh (STEPS, LR,
# TOTAL_BATCH, MICRO_BATCH, SEQ, EVAL_EVERY, SAVE_EVERY, EXTRA_ARGS ...) or here:
#   RANK [128]  GAP (--update-proj-gap) [200]  SCALE (--galore-scale) [0.25]
#   OPTIMIZER [galore_adamw8bit]  PER_LAYER [1]  TOKENIZER [none: no decoded samples]
#
# Resumable like the paper scripts: checkpoints every SAVE_EVERY steps; a crash, an OOM kill or
# a preemption costs at most that many steps: run the same command again and it continues from
# the newest checkpoint bit for bit; after RUN_DIR/DONE a rerun does nothing.
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 HF_DIR 'TRAIN_SHARDS' ['VAL_SHARDS']  (see the header of $0)" >&2
    exit 2
fi
HF_DIR="${1%/}"
TRAIN="$2"
VAL="${3:-}"
if [ ! -f "$HF_DIR/config.json" ]; then
    echo "error: $HF_DIR/config.json not found: pass a Hugging Face model folder (config.json with model.safetensors or its shards)" >&2
    exit 2
fi
HF_DIR="$(cd "$HF_DIR" && pwd)" # the script runs from the repository root
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export TRAIN VAL
export TOKENIZER="${TOKENIZER:-}"
export RUN_DIR="${RUN_DIR:-runs/finetune_$(basename "$HF_DIR")}"
export TOTAL_BATCH="${TOTAL_BATCH:-16}" SEQ="${SEQ:-512}" EVAL_EVERY="${EVAL_EVERY:-200}"
export EVAL_TOKENS="${EVAL_TOKENS:-1000000}" SAVE_EVERY="${SAVE_EVERY:-200}"
MODEL_DEFAULT="$HF_DIR/config.json"; STEPS_DEFAULT=1000; WARMUP_DEFAULT=100; MICRO_BATCH_DEFAULT=4
paper_run "finetune_$(basename "$HF_DIR")" --init "$HF_DIR" --optimizer "${OPTIMIZER:-galore_adamw8bit}" --lr 1e-4 \
    --rank "${RANK:-128}" --update-proj-gap "${GAP:-200}" --galore-scale "${SCALE:-0.25}" --proj-type std \
    --per-layer "${PER_LAYER:-1}" # (no --grad-clip: common.sh passes GRAD_CLIP, default 0, as per-layer needs)
