#!/bin/bash
# llama_7b on C4, 8-bit GaLore, data parallel on 64 GPUs (8 machines x 8), as the paper's Table 3
# runs were trained (perplexity 14.65 at 150K steps): rank 1024, T 500, alpha 0.25, lr 0.005,
# 150K steps, 15K warmup, total batch 512 x 256 = MICRO_BATCH 8 x 64 ranks, gradient clipping 1.0
# as Table 3. Whole-model updates (no --per-layer): with 80 GB per GPU the 7B model, its bf16
# gradients and 8-bit low-rank states fit (./train_llamacu --model llama_7b --optimizer
# galore_adamw8bit --rank 1024 --batch 8 --memory-plan 1), and clipping needs the global norm.
# With clipping on, the ranks all-reduce full gradients (the norm of the summed full gradient is
# what is clipped); GRAD_CLIP=0 would send R = P^T G between refreshes instead.
#
# Launch: set HOSTFILE (one line per machine: "host slots=8") for mpirun, or run under Slurm with
# scripts/slurm_llama7b.sbatch. Data: python dev/data/c4.py on a filesystem every machine sees.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
MODEL_DEFAULT=llama_7b; STEPS_DEFAULT=150000; WARMUP_DEFAULT=15000; MICRO_BATCH_DEFAULT=8; NPROC_DEFAULT=64
if [ -z "${LAUNCHER:-}" ] && [ "${NPROC:-64}" -gt 8 ]; then
    if [ -z "${HOSTFILE:-}" ]; then echo "set HOSTFILE (mpirun hostfile, 8 slots per machine) or LAUNCHER; see the header"; exit 1; fi
    LAUNCHER="mpirun -np ${NPROC:-64} --hostfile $HOSTFILE --map-by ppr:8:node --bind-to none"
fi
GRAD_CLIP="${GRAD_CLIP:-1.0}"
paper_run llama7b_galore8bit_dp --optimizer galore_adamw8bit --lr 0.005 --rank 1024 \
    --update-proj-gap 500 --galore-scale 0.25 --proj-type std
