#!/bin/bash
# llama_350m on C4, full-rank Adam. Paper (arXiv 2403.03507) Table 2: validation perplexity 18.80 (full-rank).
# Full-rank baseline: the official torchrun_main.py with --optimizer adam (torch.optim.Adam, eps 1e-8,
# no weight decay), same data, batch, steps and schedule as the GaLore run. The learning rate
# 0.001: the paper tuned its baselines' lr and does not ship their scripts; 1e-3 is the common
# full-rank setting for these model sizes (ReLoRA's, whose training code GaLore's is built on).
# Override with LR=...
#   total batch 512 x 256 tokens (MICRO_BATCH x --grad-accum), 60000 steps, 6000 warmup, cosine to 10%,
#   wd 0, no gradient clipping, eval every 1000 steps on 10M C4 validation tokens.
# Data: python dev/data/c4.py (see scripts/common.sh). Resumable: run it again after a crash.
# MICRO_BATCH default 32 is sized for one 80 GB GPU; lower it on a smaller card (the optimizer
# step is the same: --grad-accum grows to keep 512 sequences per step).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL_DEFAULT=llama_350m; STEPS_DEFAULT=60000; WARMUP_DEFAULT=6000; MICRO_BATCH_DEFAULT=32
paper_run llama350m_adam --optimizer adam --lr 0.001
