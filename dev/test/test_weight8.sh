#!/usr/bin/env bash
# test_weight8.sh: --weights int8 on the CPU engine (issue 25), end to end on a tiny model:
#  - a run resumed from its step-4 checkpoint equals the uninterrupted run bit for bit (final
#    weights, state.bin, the logged losses): the codes come back from state.bin and the draws of
#    the stochastic requantization depend only on (seed, update, tensor, element);
#  - --per-layer 1 ends with the whole-model run's weights bit for bit (without accumulation: with
#    it, the two modes sum micro-batches in another order, which moves codes by legitimate rounding);
#  - every checkpoint's model.safetensors is its state's codes dequantized (dev/test/check_weight8.py);
#  - 2 ranks under mpirun keep identical replicas and resume bit for bit;
#  - wrong uses get one line: --weights bf16 on the CPU, a resume with another --weight-group.
# Kinds: galore_adamw, apollo_mini, adam8bit (--weight-int8-embed 1), galore_adamw8bit (--per-layer 1 --grad-accum 2).
source "$(dirname "$0")/testlib.sh"
bin=./train_llama
cat > "$tmp/config.json" <<'JSON'
{"model_type": "llama", "hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 4,
 "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 4096, "max_position_embeddings": 64}
JSON
# --grad-clip 0: per-layer mode has no global norm, so the whole-model twin does not clip either;
# lr 1e-2 from step 2 (warmup 1) so that updates move codes (a step of G 128's scale is ~2e-4 here)
common=(--model "$tmp/config.json" --batch 4 --seq 32 --steps 8 --warmup 1 --lr 1e-2 --val "" --sample-len 0 --print-every 1000
        --threads 2 --grad-clip 0 --weights int8 --update-proj-gap 3 --save-every 4 --keep 0)
losses() { grep -o '"step": [0-9]*, "loss": [^,]*' "$1"; }

w8_case() {
    local name=$1 per_layer=$2; shift 2
    local a="$tmp/$name.a" b="$tmp/$name.b" p="$tmp/$name.p"
    "$bin" "${common[@]}" "$@" --out "$a" > "$a.stdout" 2>&1 || { bad "$name: run failed: $(tail -2 "$a.stdout")"; return; }
    grep -q "^weights: int8" "$a.stdout" || bad "$name: no 'weights: int8' startup line"
    mkdir -p "$b" && cp -r "$a/ckpt_00000004" "$b/" && cp "$a/log.jsonl" "$a/args.json" "$b/"
    "$bin" "${common[@]}" "$@" --out "$b" --resume 1 > "$b.stdout" 2>&1 || { bad "$name: resume failed: $(tail -2 "$b.stdout")"; return; }
    if grep -q '^resumed from' "$b.stdout" && cmp -s "$a/model.safetensors" "$b/model.safetensors" \
        && cmp -s "$a/ckpt_00000008/state.bin" "$b/ckpt_00000008/state.bin" && [ "$(losses "$a/log.jsonl")" = "$(losses "$b/log.jsonl")" ] \
        && [ "$(losses "$a/log.jsonl" | wc -l)" = 8 ]; then
        ok "$name: resumed at step 4 of 8: final weights, state.bin (codes, scales, zeros) and 8 losses equal the uninterrupted run's bit for bit"
    else bad "$name: the run resumed at step 4 differs from the uninterrupted one"; fi
    local r; r=$(python3 dev/test/check_weight8.py "$a/ckpt_00000008" 128 2>&1)
    [[ $r == ok* ]] && ok "$name: ckpt_00000008: ${r#ok }" || bad "$name: ckpt_00000008: ${r#bad }"
    [ "$per_layer" = 1 ] || return 0
    "$bin" "${common[@]}" "$@" --per-layer 1 --out "$p" > "$p.stdout" 2>&1 || { bad "$name: --per-layer 1 run failed: $(tail -2 "$p.stdout")"; return; }
    if cmp -s "$a/model.safetensors" "$p/model.safetensors" && [ "$(losses "$a/log.jsonl")" = "$(losses "$p/log.jsonl")" ]; then
        ok "$name: --per-layer 1 ends with the whole-model run's weights and losses bit for bit"
    else bad "$name: --per-layer 1 differs from the whole-model run"; fi
}
w8_case galore 1 --optimizer galore_adamw --rank 8
w8_case apollo_mini 1 --optimizer apollo_mini
w8_case adam8bit_embed 1 --optimizer adam8bit --weight-int8-embed 1
w8_case galore8bit_perlayer_accum 0 --optimizer galore_adamw8bit --rank 8 --per-layer 1 --grad-accum 2

# data parallel: 2 ranks requantize alike (the same draws from the same summed gradients): every
# checkpoint hashes the ranks' weights and refuses to save diverged replicas; a resume is bit-exact
if command -v mpirun >/dev/null 2>&1; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 # as test_dist.sh
    a="$tmp/dp.a" b="$tmp/dp.b"
    dp=(mpirun -np 2 --bind-to none "$bin" "${common[@]}" --optimizer galore_adamw --rank 8 --per-layer 1 --threads 1)
    if "${dp[@]}" --out "$a" > "$a.stdout" 2>&1 && mkdir -p "$b" && cp -r "$a/ckpt_00000004" "$a/log.jsonl" "$a/args.json" "$b/" \
        && "${dp[@]}" --out "$b" --resume 1 > "$b.stdout" 2>&1 && grep -q '^resumed from' "$b.stdout" \
        && cmp -s "$a/model.safetensors" "$b/model.safetensors" && [ "$(losses "$a/log.jsonl")" = "$(losses "$b/log.jsonl")" ]; then
        ok "2 ranks (mpirun), per-layer: replicas identical at steps 4 and 8; resumed at step 4, weights and losses equal bit for bit"
    else bad "2 ranks: $(tail -2 "$a.stdout") $(tail -2 "$b.stdout" 2>/dev/null)"; fi
else echo "note: no mpirun: the data-parallel case is test_dist.sh's to flag"; fi

# --init of a float model folder quantizes it once (to nearest): step 1's loss, on the weights before
# any update, moves from the float model's by the quantization alone. Each weight moves by at most
# half a code (scale / 2 = range / 510: ~2e-4 for N(0, 0.02) groups of 128, ~1% of a weight), so
# the loss (8.3 at init) moves by far less than 1e-2 relative but not by 0 (the codes are there);
# --save-dtype bf16 writes the dequantized weights as BF16 (the model file's header says so)
f="$tmp/float" q="$tmp/init_q"
float_args=(--model "$tmp/config.json" --batch 4 --seq 32 --warmup 1 --lr 1e-2 --val "" --sample-len 0 --threads 2 --grad-clip 0)
if "$bin" "${float_args[@]}" --steps 2 --out "$f" > "$f.stdout" 2>&1 \
    && "$bin" "${float_args[@]}" --steps 1 --init "$f" --out "" --log "$tmp/init_f.jsonl" > "$tmp/init_f.stdout" 2>&1 \
    && "$bin" "${float_args[@]}" --steps 1 --init "$f" --weights int8 --save-dtype bf16 --out "$q" > "$q.stdout" 2>&1; then
    lf=$(losses "$tmp/init_f.jsonl" | head -1 | sed 's/.*"loss": //'); lq=$(losses "$q/log.jsonl" | head -1 | sed 's/.*"loss": //')
    if grep -q "^weights: int8" "$q.stdout" && awk -v a="$lf" -v b="$lq" 'BEGIN { d = (a - b) / a; if (d < 0) d = -d; exit !(d > 0 && d < 1e-2) }' \
        && head -c 4096 "$q/model.safetensors" | grep -q '"model.layers.0.self_attn.q_proj.weight":{"dtype":"BF16"'; then
        ok "--init of a float folder with --weights int8: step-1 loss $lq vs the float model's $lf (quantized once, bound 1e-2 relative, not equal); --save-dtype bf16 writes BF16"
    else bad "--init + int8: losses $lf vs $lq; $(grep -m1 weights: "$q.stdout"); $(head -c 300 "$q/model.safetensors" | tr -cd '[:print:]')"; fi
else bad "--init + int8 runs failed: $(tail -2 "$q.stdout" 2>/dev/null)"; fi

msg=$("$bin" --model "$tmp/config.json" --seq 32 --steps 1 --warmup 0 --weights bf16 --out "$tmp/bf16" 2>&1 >/dev/null)
grep -q "^error: --weights bf16: the CPU engine computes in fp32" <<<"$msg" && [ "$(wc -l <<<"$msg")" = 1 ] && ok "--weights bf16 on the CPU: $msg" || bad "--weights bf16: $msg"
msg=$("$bin" "${common[@]}" --optimizer galore_adamw --rank 8 --weight-group 64 --steps 9 --out "$tmp/galore.a" --resume 1 2>&1 >/dev/null)
grep -q "this resume changes --weights int8's --weight-group (0: float weights) 128 -> 64" <<<"$msg" && ok "a resume with another --weight-group is refused: $msg" || bad "--weight-group resume: $msg"
msg=$("$bin" --model "$tmp/config.json" --seq 32 --steps 0 --val "" --prompt-ids 1 --sample-len 1 --weight-group 64 2>&1 >/dev/null)
grep -q "^warning: --weight-group 64 has no effect without --weights int8" <<<"$msg" && ok "--weight-group without --weights int8 warns: $msg" || bad "--weight-group alone: $msg"
summary
