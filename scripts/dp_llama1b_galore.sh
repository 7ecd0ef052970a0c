#!/bin/bash
# llama_1b on C4, GaLore AdamW, data parallel on 8 GPUs of one machine (as the paper trained 1B):
# the recipe of run_llama1b_galore.sh (Table 2: perplexity 15.64), total batch 512 x 256 tokens =
# MICRO_BATCH 16 x 8 ranks x --grad-accum 4. One process per GPU, started by mpirun; each rank
# reads its own share of every batch, and between projector refreshes the ranks all-reduce the
# low-rank gradients R = P^T G (no clipping in this recipe) instead of full ones.
#   NPROC=8 (default) | NPROC=4 MICRO_BATCH=16 -> --grad-accum 8, the same optimizer steps
# Several machines: LAUNCHER="mpirun -np 16 --hostfile hosts --map-by ppr:8:node --bind-to none" NPROC=16.
# Data: python dev/data/c4.py (see scripts/common.sh). Resumable: run it again after a crash.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL_DEFAULT=llama_1b; STEPS_DEFAULT=100000; WARMUP_DEFAULT=10000; MICRO_BATCH_DEFAULT=16; NPROC_DEFAULT=8
paper_run llama1b_galore_dp --optimizer galore_adamw --lr 0.01 --rank "${RANK:-512}" --update-proj-gap 200 --galore-scale 0.25 --proj-type std
