#!/bin/bash
# llama_350m on C4, GaLore AdamW. Paper (arXiv 2403.03507) Table 2: validation perplexity 18.95 (GaLore).
# Official recipe: jiaweizzhao/GaLore scripts/benchmark_c4/llama_350m.sh (GaLore AdamW, lr 0.01, alpha 0.25, T 200, rank 256).
#   total batch 512 x 256 tokens (MICRO_BATCH x --grad-accum), 60000 steps, 6000 warmup, cosine to 10%,
#   wd 0, no gradient clipping, eval every 1000 steps on 10M C4 validation tokens.
# Data: python dev/data/c4.py (see scripts/common.sh). Resumable: run it again after a crash.
# MICRO_BATCH default 32 is sized for one 80 GB GPU; lower it on a smaller card (the optimizer
# step is the same: --grad-accum grows to keep 512 sequences per step).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL_DEFAULT=llama_350m; STEPS_DEFAULT=60000; WARMUP_DEFAULT=6000; MICRO_BATCH_DEFAULT=32
paper_run llama350m_galore --optimizer galore_adamw --lr 0.01 --rank 256 --update-proj-gap 200 --galore-scale 0.25 --proj-type std
