#!/bin/bash
# llama_7b on C4, 8-bit GaLore (galore_adamw8bit) with per-layer weight updates: the paper's
# "7B on one 24 GB GPU" recipe. Paper Table 3 (8-bit GaLore, rank 1024): validation perplexity
# 17.94 / 15.39 / 14.95 / 14.65 at 40K / 80K / 120K / 150K steps (8-bit Adam: 18.09 / 15.47 /
# 14.83 / 14.61).
#
# Hyperparameters (official jiaweizzhao/GaLore scripts/single_gpu/llama_7b.sh and
# llama_7b_checkpointing.sh): rank 1024, T (update-proj-gap) 500, alpha 0.25, lr 0.005,
# 150K steps, 15K warmup, cosine to 10%, wd 0, total batch 512 x 256 tokens (19.7B tokens).
#
# Choices, and why:
# - Batch: TOTAL_BATCH 512 sequences per optimizer step, as Table 3 was trained (64 GPUs x 8).
#   The official single-GPU scripts pass --batch_size 1 (22.72 GB, 0.37 s/it) or 16 with
#   activation checkpointing and --total_batch_size 512, but their per-layer mode silently drops
#   gradient accumulation (every micro-batch becomes an optimizer step; galore.md, issue #62),
#   so they would not reproduce Table 3's 150K steps x 512 sequences. Our trainer accumulates
#   in the low-rank space between projector refreshes (sum_k P^T G_k = P^T sum_k G_k), which
#   keeps per-layer gradient memory AND the paper's effective batch. MICRO_BATCH defaults to 16
#   (an 80 GB GPU; memory plan: ./train_llamacu --model llama_7b ... --memory-plan 1). Accumulating
#   costs memory of its own: the low-rank and full-rank accumulators (3.5 GiB at rank 1024), and
#   at a refresh step a full bf16 accumulator per refreshing matrix (12.1 GiB at step 1, when
#   every matrix gets its first projector), so the 24 GB-card setting of the paper's memory
#   claim is MICRO_BATCH=1 TOTAL_BATCH=1 (--grad-accum 1, batch 1 x 256: plan 19.9 GiB), one
#   optimizer step per sequence as the official per-layer code runs; a memory demonstration,
#   150K such steps do not reproduce Table 3.
# - Clipping: Table 3's multi-GPU runs clip at 1.0, but the global norm is unknown until the
#   last layer has been updated in per-layer mode, so clipping is off (as in the official
#   per-layer code, which ignores --grad_clipping). GRAD_CLIP must stay 0 here.
# - T 500 as written: the official per-layer code doubles update_proj_gap and the scheduler's
#   step count as a workaround (a bug, galore.md); we run the intended semantics.
# - Optimizer eps: 8-bit GaLore uses bitsandbytes' torch-style eps 1e-8 (the trainer's default).
# Data: python dev/data/c4.py (see scripts/common.sh). Resumable: run it again after a crash.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL_DEFAULT=llama_7b; STEPS_DEFAULT=150000; WARMUP_DEFAULT=15000; MICRO_BATCH_DEFAULT=16
paper_run llama7b_galore8bit_perlayer --optimizer galore_adamw8bit --lr 0.005 --rank 1024 \
    --update-proj-gap 500 --galore-scale 0.25 --proj-type std --per-layer 1 --grad-clip 0
