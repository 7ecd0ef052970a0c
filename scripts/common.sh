# shellcheck shell=bash
# scripts/common.sh: shared logic of the paper-run scripts (sourced, not run).
#
# A run script sets the paper's numbers as *_DEFAULT variables and calls
#   paper_run NAME --optimizer ... --lr ... [more trainer flags]
# which trains into RUN_DIR (default runs/NAME) and loops `--resume 1` until the trainer
# finishes cleanly, then writes RUN_DIR/DONE. Like llm.c's scripts, a crash, an OOM kill or
# a preempted machine costs at most --save-every steps: run the script again (or let the loop
# retry) and it continues bitwise from the newest complete checkpoint. A second invocation
# after DONE does nothing.
#
# Environment (all optional; the defaults are the paper's recipe):
#   TRAINER      trainer binary; default ./train_llamacu when built and nvidia-smi sees a GPU,
#                else ./train_llama
#                (built with `make train_llama` when missing)
#   RUN_DIR      run folder: checkpoints, log.jsonl, train.out (console), DONE [runs/NAME]
#   TRAIN, VAL   token shard globs [dev/data/c4/c4_train_*.bin, dev/data/c4/c4_validation_*.bin];
#                VAL="" (set, empty): no evaluation
#   TOKENIZER    tokenizer for decoded samples [dev/data/c4/tokenizer.bin]; TOKENIZER="": none
#                Make the C4 shards with `python dev/data/c4.py` (see its --help: t5-base
#                tokenizer, each document truncated/padded to 256 tokens as the paper did);
#                it writes dev/data/c4/c4_train_000000.bin ..., c4_validation_*.bin, tokenizer.bin.
#   MODEL        built-in config or config.json [the script's paper model]
#   STEPS        optimizer steps [paper]; WARMUP [paper, or STEPS/10 when STEPS is overridden]
#   TOTAL_BATCH  sequences per optimizer step [512]; MICRO_BATCH sequences per forward/backward
#                [per script, sized for one 80 GB GPU]; --grad-accum = TOTAL_BATCH / (MICRO_BATCH x NPROC)
#   NPROC        data-parallel processes, one per GPU [1, or the script's]; NPROC > 1 starts the
#                trainer under LAUNCHER
#   LAUNCHER     what starts the ranks [mpirun -np NPROC --bind-to none]; several machines:
#                "mpirun -np 64 --hostfile hosts --map-by ppr:8:node --bind-to none", or "srun"
#                inside a Slurm allocation (scripts/slurm_llama7b.sbatch)
#   RENDEZVOUS   mpi [default]: MPI tells each rank who it is and carries the NCCL id; file: ranks
#                started without MPI (srun without PMI) read RANK/WORLD_SIZE or SLURM_PROCID/
#                SLURM_NTASKS and exchange the NCCL id through RUN_DIR/nccl_id.* (a shared folder)
#   SEQ          tokens per sequence [256]
#   LR           peak learning rate [the script's]
#   EVAL_EVERY [1000], EVAL_TOKENS [10000000], SAVE_EVERY [1000], KEEP [2], SEED [42]
#   GRAD_CLIP    [0: the paper's small-model runs do not clip]
#   EXTRA_ARGS   appended last to the trainer's flags (the last occurrence of a flag wins)
#   MAX_FAILS    give up after this many failed attempts in a row that made no new
#                checkpoint (a bad flag or missing data fails the same way every time) [3]
#   RETRY_SLEEP  seconds between attempts [10]
#   DRY_RUN=1    print the trainer command and exit

set -uo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPTS_DIR/.." && pwd)"
cd "$REPO_DIR" || exit 1

# Ctrl-C / kill of the script stops the loop instead of being treated as a crash to resume
trap 'echo "interrupted: run the script again to resume"; exit 130' INT TERM

pick_trainer() {
    if [ -n "${TRAINER:-}" ]; then
        echo "$TRAINER"
    elif [ -x ./train_llamacu ] && nvidia-smi -L >/dev/null 2>&1; then
        # a GPU build on a machine without a usable GPU (make builds it wherever nvcc is) is skipped
        echo ./train_llamacu
    else
        if [ ! -x ./train_llama ]; then make train_llama >&2 || return 1; fi
        echo ./train_llama
    fi
}

# newest complete checkpoint's step (0 when none): the progress marker between attempts
latest_ckpt() {
    local d last=0 n
    for d in "$1"/ckpt_*; do
        [ -d "$d" ] || continue
        n=$((10#${d##*/ckpt_}))
        [ "$n" -gt "$last" ] && last=$n
    done
    echo "$last"
}

# paper_run NAME FLAGS...: the resume loop described above. Returns the trainer's status.
# shell_words WORD...: the words on one line that a shell reads back as the same words: '' for an
# empty one, single quotes around one with a space, a glob or another special character (DRY_RUN's
# command is pasted; unquoted, a glob expanded and an empty --tokenizer took --batch as its value)
shell_words() {
    local out="" w
    for w in "$@"; do
        if [ -z "$w" ] || [[ $w =~ [^A-Za-z0-9_./:=,+@%-] ]]; then w="'${w//\'/\'\\\'\'}'"; fi
        out="$out${out:+ }$w"
    done
    printf '%s\n' "$out"
}

paper_run() {
    local name="$1"; shift
    local run_dir="${RUN_DIR:-runs/$name}"
    if [ -f "$run_dir/DONE" ]; then
        echo "$name: $run_dir/DONE exists, nothing to do (delete it, or the folder, to train again)"
        return 0
    fi
    [ -n "${DRY_RUN:-}" ] || mkdir -p "$run_dir" || return 1
    local trainer; trainer="$(pick_trainer)" || { echo "$name: no trainer (make train_llama failed)"; return 1; }

    local model="${MODEL:-$MODEL_DEFAULT}"
    local steps="${STEPS:-$STEPS_DEFAULT}"
    local warmup
    if [ -n "${WARMUP:-}" ]; then warmup="$WARMUP"
    elif [ -n "${STEPS:-}" ]; then warmup=$((steps / 10))   # keep the paper's 10% when STEPS is changed
    else warmup="$WARMUP_DEFAULT"; fi
    local total="${TOTAL_BATCH:-512}"
    local micro="${MICRO_BATCH:-$MICRO_BATCH_DEFAULT}"
    if [ "$micro" -gt "$total" ]; then micro="$total"; fi
    if [ $((total % micro)) -ne 0 ]; then
        echo "$name: TOTAL_BATCH $total is not a multiple of MICRO_BATCH $micro"; return 1
    fi
    local nproc="${NPROC:-${NPROC_DEFAULT:-1}}"
    if [ $((total % (micro * nproc))) -ne 0 ]; then
        echo "$name: TOTAL_BATCH $total is not a multiple of MICRO_BATCH $micro x NPROC $nproc"; return 1
    fi
    local accum=$((total / (micro * nproc)))
    local launch=()
    if [ "$nproc" -gt 1 ] || [ -n "${LAUNCHER:-}" ]; then
        # shellcheck disable=SC2206 # LAUNCHER is split on spaces on purpose
        launch=(${LAUNCHER:-mpirun -np $nproc --bind-to none})
    fi

    local args=(
        --model "$model"
        --train "${TRAIN:-dev/data/c4/c4_train_*.bin}"
        --val "${VAL-dev/data/c4/c4_validation_*.bin}"
        --tokenizer "${TOKENIZER-dev/data/c4/tokenizer.bin}"
        --batch "$micro" --seq "${SEQ:-256}" --grad-accum "$accum"
        --steps "$steps" --warmup "$warmup" --schedule cosine --min-lr-ratio 0.1
        --weight-decay 0 --grad-clip "${GRAD_CLIP:-0}" --seed "${SEED:-42}"
        --eval-every "${EVAL_EVERY:-1000}" --eval-tokens "${EVAL_TOKENS:-10000000}"
        --save-every "${SAVE_EVERY:-1000}" --keep "${KEEP:-2}"
        "$@"
    )
    [ -n "${LR:-}" ] && args+=(--lr "$LR")
    args+=(--out "$run_dir" --log "$run_dir/log.jsonl" --resume 1)
    # shellcheck disable=SC2206 # EXTRA_ARGS is split on spaces on purpose
    [ -n "${EXTRA_ARGS:-}" ] && args+=($EXTRA_ARGS)

    if [ -n "${DRY_RUN:-}" ]; then shell_words "${launch[@]}" "$trainer" "${args[@]}"; return 0; fi
    shell_words "${launch[@]}" "$trainer" "${args[@]}" > "$run_dir/command.txt"
    local fails=0 before after rc
    while true; do
        before=$(latest_ckpt "$run_dir")
        echo "== $name: $trainer (attempt from checkpoint step $before) =="
        local rdv=()
        # a fresh id file per attempt: a stale one from a crashed attempt must never be read
        [ "${RENDEZVOUS:-mpi}" = file ] && rdv=(--dist-init "file:$run_dir/nccl_id.$(date +%s%N)")
        "${launch[@]}" "$trainer" "${args[@]}" "${rdv[@]}" 2>&1 | tee -a "$run_dir/train.out"
        rc=${PIPESTATUS[0]}
        if [ "$rc" -eq 0 ]; then
            date -u +%Y-%m-%dT%H:%M:%SZ > "$run_dir/DONE"
            echo "== $name: done ($run_dir/DONE)"
            return 0
        fi
        after=$(latest_ckpt "$run_dir")
        if [ "$after" -gt "$before" ]; then fails=0; else fails=$((fails + 1)); fi
        if [ "$fails" -ge "${MAX_FAILS:-3}" ]; then
            echo "== $name: trainer exited $rc, $fails attempts in a row without a new checkpoint; giving up (see $run_dir/train.out)"
            return "$rc"
        fi
        echo "== $name: trainer exited $rc; resuming in ${RETRY_SLEEP:-10} s"
        sleep "${RETRY_SLEEP:-10}"
    done
}
