#!/usr/bin/env bash
# test_emu_runs.sh (make test-emu): the GPU trainer as a program, run on the CPU under the CUDA
# emulation (dev/emu), checked against the CPU engine and against itself:
#  - a short run follows the CPU engine's losses within bf16 bounds,
#  - every optimizer kind runs (whole-model, per-layer + gradient accumulation, data parallel
#    with one rank) and follows the CPU,
#  - --per-layer 1 equals --per-layer 0 bit for bit where the math is the same (no clipping),
#  - a run killed after a checkpoint and resumed equals the uninterrupted run bit for bit,
#  - --memory-plan's rows equal the bytes the emulated allocator was asked for, row by row.
# Small shapes (llama_tiny, batch 2 x 32): the emulated kernels cost ~10-40 ns per thread.
# One OpenMP thread: the emulated runtime sets it itself (emu_runtime.cpp); the CPU runs say --threads 1.
source "$(dirname "$0")/testlib.sh"
gpu=${BIN:-./train_llamacu_emu}
cpu=${CPU_BIN:-./train_llama}
[ -x "$gpu" ] || { bad "$gpu missing: make emu"; summary; exit; }
common=(--batch 2 --seq 32 --val "" --sample-len 0 --warmup 2 --lr 3e-3 --print-every 1000 --shuffle 0)

# run NAME BIN ARGS...: one run, its log in $tmp/NAME.jsonl, its output in $tmp/NAME.txt
run() {
    local name=$1 bin=$2; shift 2
    "$bin" "${common[@]}" --log "$tmp/$name.jsonl" "$@" > "$tmp/$name.txt" 2>&1 ||
        { bad "$name: $bin failed: $(grep -m1 -E 'error|emu:' "$tmp/$name.txt" || tail -1 "$tmp/$name.txt")"; return 1; }
}

# 1. the GPU program follows the CPU engine. bf16 weights, activations and gradients: each rounding
# is 2^-9 relative; over a few steps the losses stay within 1e-2 relative (test_llamacu's bound for
# 5 steps of each engine on its own gradients)
for opt in adamw adam galore_adamw adam8bit galore_adamw8bit fira_adamw fira_adamw8bit apollo_adamw apollo_adamw8bit apollo_mini; do
    extra=(); case $opt in galore*|fira*) extra=(--rank 32 --update-proj-gap 2);; esac
    run "cpu_$opt" "$cpu" --steps 3 --out "" --optimizer "$opt" "${extra[@]}" --threads 1 &&
    run "gpu_$opt" "$gpu" --steps 3 --out "" --optimizer "$opt" "${extra[@]}" &&
    compare_losses "$opt, 3 steps: emulated GPU vs CPU" "$tmp/cpu_$opt.jsonl" "$tmp/gpu_$opt.jsonl" 1e-2
done
# GoLore (random projector) and the randomized SVD
run cpu_golore "$cpu" --steps 4 --out "" --optimizer galore_adamw --proj random --rank 32 --update-proj-gap 2 --threads 1 &&
run gpu_golore "$gpu" --steps 4 --out "" --optimizer galore_adamw --proj random --rank 32 --update-proj-gap 2 &&
compare_losses "galore_adamw --proj random, 4 steps: emulated GPU vs CPU" "$tmp/cpu_golore.jsonl" "$tmp/gpu_golore.jsonl" 1e-2

# 1b. --weights int8 (#25): the projected matrices as codes, requantized after each update with the
# stochastic rounding both engines draw alike. The emulated GPU computes in bf16 from the same
# codes: its losses follow the CPU's within the bf16 bound above (the first step's forward reads
# the same nearest-rounded codes). adamw with the embedding and lm_head in INT8 too, group 64
# (apollo_adamw: the data-parallel case; galore_adamw: the cross-engine resume below)
for case_ in "galore_adamw8bit --rank 32 --update-proj-gap 2 --grad-clip 0" "adamw --weight-int8-embed 1 --weight-group 64" "apollo_mini"; do
    read -r opt rest <<<"$case_"
    run "cpu_w8_$opt" "$cpu" --steps 3 --out "" --optimizer $opt $rest --weights int8 --threads 1 &&
    run "gpu_w8_$opt" "$gpu" --steps 3 --out "" --optimizer $opt $rest --weights int8 &&
    compare_losses "$opt --weights int8${rest:+ ($rest)}, 3 steps: emulated GPU vs CPU" "$tmp/cpu_w8_$opt.jsonl" "$tmp/gpu_w8_$opt.jsonl" 1e-2
done

# the GPU keeps no fp32 weights but its masters: --weights fp32 is one line naming --master-weights 1
out=$("$gpu" "${common[@]}" --steps 1 --out "" --weights fp32 2>&1)
[ $? -ne 0 ] && [ "$(grep -c '^error: --weights fp32: .*--master-weights 1' <<<"$out")" = 1 ] && ok "--weights fp32 on the GPU: one error line, the hint --master-weights 1" ||
    bad "--weights fp32 on the GPU: $(tail -1 <<<"$out")"

# 2. per-layer == whole-model bit for bit (no clipping: per-layer mode has no global norm)
# (apollo_adamw per-layer == whole-model: test_llamacu checks per-layer against whole-model too)
for opt in adamw galore_adamw8bit fira_adamw; do
    extra=(); case $opt in galore*|fira*) extra=(--rank 32 --update-proj-gap 2);; esac
    run "whole_$opt" "$gpu" --steps 3 --out "" --grad-clip 0 --optimizer "$opt" "${extra[@]}" &&
    run "layer_$opt" "$gpu" --steps 3 --out "" --grad-clip 0 --optimizer "$opt" "${extra[@]}" --per-layer 1 &&
    compare_losses "$opt: --per-layer 1 vs 0 (bitwise)" "$tmp/whole_$opt.jsonl" "$tmp/layer_$opt.jsonl" 0
done
# INT8 weights: the requantization's draws depend on (seed, step, tensor) only, so per-layer equals
# whole-model here too (the whole-model run: 1b's)
run layer_w8 "$gpu" --steps 3 --out "" --grad-clip 0 --optimizer galore_adamw8bit --rank 32 --update-proj-gap 2 --weights int8 --per-layer 1 &&
compare_losses "galore_adamw8bit --weights int8: --per-layer 1 vs 0 (bitwise)" "$tmp/gpu_w8_galore_adamw8bit.jsonl" "$tmp/layer_w8.jsonl" 0

# 3. per-layer + gradient accumulation (low-rank accumulators), and data parallel with one rank
for opt in galore_adamw galore_adamw8bit fira_adamw apollo_adamw; do
    extra=(); case $opt in galore*|fira*) extra=(--rank 32 --update-proj-gap 2);; esac
    run "cpu_acc_$opt" "$cpu" --steps 3 --out "" --grad-accum 2 --optimizer "$opt" "${extra[@]}" --threads 1 &&
    run "gpu_acc_$opt" "$gpu" --steps 3 --out "" --grad-accum 2 --per-layer 1 --optimizer "$opt" "${extra[@]}" &&
    compare_losses "$opt, --per-layer 1 --grad-accum 2: emulated GPU vs CPU" "$tmp/cpu_acc_$opt.jsonl" "$tmp/gpu_acc_$opt.jsonl" 1e-2
    RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 run "gpu_dp_$opt" "$gpu" --steps 3 --out "" --grad-accum 2 --optimizer "$opt" "${extra[@]}" \
        --dist-init "file:$tmp/id_$opt" && grep -q "data parallel" "$tmp/gpu_dp_$opt.txt" &&
    compare_losses "$opt, data parallel (1 rank) --grad-accum 2: emulated GPU vs CPU" "$tmp/cpu_acc_$opt.jsonl" "$tmp/gpu_dp_$opt.jsonl" 1e-2
done

# data parallel (one rank) with INT8 weights and accumulation, against the CPU
run cpu_acc_w8 "$cpu" --steps 3 --out "" --grad-accum 2 --optimizer apollo_adamw --weights int8 --threads 1 &&
RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 run gpu_dp_w8 "$gpu" --steps 3 --out "" --grad-accum 2 --optimizer apollo_adamw --weights int8 \
    --dist-init "file:$tmp/id_w8" && grep -q "data parallel" "$tmp/gpu_dp_w8.txt" &&
compare_losses "apollo_adamw --weights int8, data parallel (1 rank) --grad-accum 2: emulated GPU vs CPU" "$tmp/cpu_acc_w8.jsonl" "$tmp/gpu_dp_w8.jsonl" 1e-2

# 4. kill after a checkpoint, resume: bit for bit the uninterrupted run
for case_ in "galore_adamw --rank 32 --update-proj-gap 3" "galore_adamw8bit --rank 32 --update-proj-gap 3 --per-layer 1" \
             "galore_adamw --rank 32 --update-proj-gap 3 --weights int8"; do
    read -r opt rest <<<"$case_"
    name="resume_$opt"; [[ $rest == *int8* ]] && name="resume_w8_$opt"
    run "${name}_ref" "$gpu" --steps 6 --save-every 3 --out "$tmp/${name}_ref" --optimizer $opt $rest || continue
    # the interrupted twin: stopped (SIGKILL) as soon as its step-3 checkpoint is complete
    "$gpu" "${common[@]}" --steps 6 --save-every 3 --out "$tmp/${name}_run" --log "$tmp/${name}_run.jsonl" --optimizer $opt $rest \
        > "$tmp/${name}_run.txt" 2>&1 &
    pid=$!
    for _ in $(seq 600); do [ -f "$tmp/${name}_run/ckpt_00000003/DONE" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    kill -9 $pid 2>/dev/null; { wait $pid; } 2>/dev/null
    run "${name}_res" "$gpu" --steps 6 --save-every 3 --out "$tmp/${name}_run" --resume 1 --optimizer $opt $rest || continue
    grep -q '^resumed from' "$tmp/${name}_res.txt" || { bad "$name: the resumed run did not resume"; continue; }
    if cmp -s "$tmp/${name}_ref/model.safetensors" "$tmp/${name}_run/model.safetensors" &&
       cmp -s "$tmp/${name}_ref/ckpt_00000006/state.bin" "$tmp/${name}_run/ckpt_00000006/state.bin"; then
        ok "$name: killed after step 3, resumed: final weights and state equal the uninterrupted run's bit for bit"
    else bad "$name: final weights or state differ from the uninterrupted run"; fi
done
# either engine resumes the other's INT8 checkpoint (the codes under the same state entries): the
# CPU engine resumed from the emulated GPU's step-3 checkpoint follows the GPU's steps 4..6
x="$tmp/w8_cpu_resume"
if mkdir -p "$x" && cp -r "$tmp/resume_w8_galore_adamw_ref/ckpt_00000003" "$x/" 2>/dev/null &&
   run w8_cpu_res "$cpu" --steps 6 --save-every 3 --out "$x" --resume 1 --optimizer galore_adamw --rank 32 --update-proj-gap 3 --weights int8 --threads 1; then
    grep -q '^resumed from' "$tmp/w8_cpu_res.txt" || bad "the CPU engine did not resume the GPU's INT8 checkpoint"
    grep '"loss"' "$tmp/resume_w8_galore_adamw_ref.jsonl" | tail -n 3 > "$tmp/w8_gpu_tail.jsonl"
    grep '"loss"' "$tmp/w8_cpu_res.jsonl" > "$tmp/w8_cpu_tail.jsonl"
    compare_losses "--weights int8: the CPU engine resumes the emulated GPU's step-3 checkpoint, steps 4..6 vs the GPU's" \
        "$tmp/w8_gpu_tail.jsonl" "$tmp/w8_cpu_tail.jsonl" 1e-2
fi

# 4b. generation on the GPU engine (run.h's sampler, gpu_next_logits): from the resumed run's
# folder, the prompt's ids equal the CPU's (one tokenizer, shared code), greedy decoding gives the
# same text whatever the seed, and the CPU engine's greedy text from the same weights agrees on the
# first token (bf16 logits: later tokens may part where two logits nearly tie)
dir="$tmp/resume_galore_adamw_ref"
if [ -f "$dir/model.safetensors" ]; then
    g1=$("$gpu" --init "$dir" --steps 0 --prompt "It is a" --sample-len 6 --temperature 0 --seed 1 --seq 32 2>&1); rc1=$?
    g2=$("$gpu" --init "$dir" --steps 0 --prompt "It is a" --sample-len 6 --temperature 0 --seed 2 --seq 32 2>&1); rc2=$?
    c1=$("$cpu" --init "$dir" --steps 0 --prompt "It is a" --sample-len 6 --temperature 0 --seq 32 --threads 1 2>&1)
    gp=$(grep -m1 '^prompt:' <<<"$g1"); cp_=$(grep -m1 '^prompt:' <<<"$c1")
    gs=$(grep -m1 '^sample' <<<"$g1"); gs2=$(grep -m1 '^sample' <<<"$g2"); cs=$(grep -m1 '^sample' <<<"$c1")
    if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ -n "$gp" ] && [ "$gp" = "$cp_" ] && [ -n "$gs" ] && [ "$gs" = "$gs2" ] &&
       [ "$(cut -c1-12 <<<"${gs#*: }")" = "$(cut -c1-12 <<<"${cs#*: }")" ]; then
        ok "generation on the emulated GPU: $gp; greedy '$gs' (CPU: '$cs')"
    else bad "generation on the emulated GPU (rc $rc1/$rc2): GPU '$gp' '$gs' / '$gs2', CPU '$cp_' '$cs': $(grep -m1 -E 'error|emu:' <<<"$g1")"; fi
else bad "generation: no model folder from the resume case"; fi

# 5. the memory plan is what is allocated: every row the program allocates under its own name
# (gpu_alloc_rows walks the plan) equals, in bytes, the peak the emulated allocator saw under that
# name (EMU_MEM_REPORT=1); the library rows (cuBLASLt, cuSOLVER, attention workspaces) are sized by
# the libraries' queries and printed by the run beside the plan's estimate. --attn-fallback 1 in
# both: the emulated cuDNN refuses its graphs, so the run takes the cuBLAS attention, whose saved
# probabilities (L x B x NH x T x T) the plan counts only when told (a default plan assumes cuDNN)
# (--weights int8: its rows, codes, scales + zeros and both scratches, must each be among the exact ones)
for case_ in "galore_adamw8bit --rank 16" "apollo_adamw --per-layer 1 --grad-accum 2" "fira_adamw --rank 16 --recompute 1" \
             "apollo_mini --weights int8 --weight-int8-embed 1 --per-layer 1 --recompute 1"; do
    read -r opt rest <<<"$case_"
    "$gpu" --batch 2 --seq 32 --attn-fallback 1 --optimizer $opt $rest --memory-plan json > "$tmp/plan.json" 2>&1 || { bad "plan $case_: --memory-plan json failed"; continue; }
    EMU_MEM_REPORT=1 "$gpu" "${common[@]}" --attn-fallback 1 --steps 1 --out "" --optimizer $opt $rest > "$tmp/mem.txt" 2>&1 || { bad "plan $case_: the run failed: $(grep -m1 -E 'error' "$tmp/mem.txt")"; continue; }
    r=$(python3 - "$tmp/plan.json" "$tmp/mem.txt" <<'PY'
import json, sys
plan = [p for p in json.load(open(sys.argv[1]))["plans"] if p["engine"] == "gpu"][0]
seen = {}
for line in open(sys.argv[2]):
    f = line.split(None, 4)
    if len(f) == 5 and f[0] == "emu:" and f[1] == "memory:" and f[2].isdigit(): seen[f[4].strip()] = int(f[2])
rows = [(b["name"], int(b["bytes"])) for b in plan["buffers"] if not b["transient"] and int(b["bytes"]) > 0]
match = [n for n, b in rows if seen.get(n) == b]
wrong = [f"{n}: plan {b}, allocated {seen[n]}" for n, b in rows if n in seen and seen[n] != b]
wrong += [f"{n}: not allocated" for n, b in rows if "int8" in n and n not in seen]
print(("ok " if not wrong and len(match) >= 15 else "bad ") + f"{len(match)} rows allocated exactly as planned" +
      (", " + "; ".join(wrong) if wrong else "") + f" ({len(rows) - len(match) - len(wrong)} rows sized by a library or not allocated)")
PY
)
    if [[ $r == ok* ]]; then ok "plan vs allocator, $case_: ${r#ok }"; else bad "plan vs allocator, $case_: ${r#bad }"; fi
done
summary
