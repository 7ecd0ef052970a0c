#!/usr/bin/env bash
# test_hf.sh: Hugging Face model folders as a user brings them. dev/test/make_hf_folders.py (stdlib
# only) writes a sharded BF16 copy of dev/ref/tiny, broken copies of it and a llama3-RoPE config;
# then `./test_llama hf` checks loading (bitwise bf16 weights and logits), sharded saves and the
# llama3 tables against float64, and here the trainer: one error line for each broken folder and
# each unsupported config, --init DIR -> save keeps the user's layout (shards + index, BF16) and
# round-trips bit for bit, and a resume from a sharded F32 checkpoint continues bit for bit.
# Run from the repo root after `make train_llama test_llama`.
source "$(dirname "$0")/testlib.sh"
bin=./train_llama
hf="$tmp/hf"
python3 dev/test/make_hf_folders.py "$hf" >/dev/null || { bad "make_hf_folders.py failed"; summary; exit 1; }
if ./test_llama hf "$hf" > "$tmp/unit.txt"; then ok "test_llama hf: $(tail -1 "$tmp/unit.txt")"
else grep -v '^ok' "$tmp/unit.txt"; bad "test_llama hf"; fi

# the tiny model's data, no eval, no samples
run=(--train dev/ref/tiny/train.bin --val "" --tokenizer "" --batch 2 --seq 16 --threads 1 --sample-len 0)

# hf_error NAME PATTERN ARGS...: exit non-zero with one "error:" line, matching PATTERN
hf_error() {
    local name=$1 pat=$2; shift 2
    local out; out=$("$bin" "${run[@]}" --steps 1 --out "" "$@" 2>&1 >/dev/null); local rc=$?
    if [ $rc -ne 0 ] && [ "$(grep -c '^error: ' <<<"$out")" = 1 ] && grep -q -- "$pat" <<<"$out"; then ok "$name: ${out#error: }"
    else bad "$name (rc $rc): $out"; fi
}
hf_error "missing shard" "err_missing_shard/model-00003-of-00003.safetensors: shard missing" --init "$hf/err_missing_shard"
hf_error "tensor listed but absent" "model-0000.-of-00003.safetensors: tensor model.norm.weight is absent" --init "$hf/err_absent_tensor"
hf_error "shape vs config" "tensor model.layers.0.mlp.gate_proj.weight has shape \[84, 60\], the config wants \[80, 60\]" --init "$hf/err_shape"
hf_error "index not JSON" "err_index_json/model.safetensors.index.json: not a JSON object (invalid JSON)" --init "$hf/err_index_json"
mkdir -p "$tmp/empty"; cp "$hf/bf16_sharded/config.json" "$tmp/empty/"
hf_error "folder without weights" "a folder without model.safetensors or model.safetensors.index.json" --init "$tmp/empty"
hf_error "rope_scaling yarn refused" "RoPE scaling type \"yarn\" is not supported yet" --model "$hf/llama3/config_yarn.json"
hf_error "rope_scaling dynamic refused" "RoPE scaling type \"dynamic\" (NTK rescaled at run time past the trained length) is not supported" \
    --model "$hf/llama3/config_dynamic.json"
python3 - "$hf" <<'PY'
import json, sys
c = json.load(open(sys.argv[1] + "/bf16_sharded/config.json"))
for name, extra in [("attn_bias", {"attention_bias": True}), ("mlp_bias", {"mlp_bias": True}), ("head_dim_odd", {"head_dim": 7}),
                    ("tie_str", {"tie_word_embeddings": "yes"}), ("linear_nofactor", {"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4}}),
                    ("head_dim_20", {"head_dim": 20})]:
    json.dump(dict(c, **extra), open(sys.argv[1] + "/%s.json" % name, "w"))
PY
hf_error "attention_bias refused" "attention_bias=true is not supported" --model "$hf/attn_bias.json"
hf_error "mlp_bias refused" "mlp_bias=true is not supported" --model "$hf/mlp_bias.json"
hf_error "odd head_dim refused" "head dim 7 must be even for RoPE" --model "$hf/head_dim_odd.json"
hf_error "tie_word_embeddings not a bool" "tie_word_embeddings must be true or false" --model "$hf/tie_str.json"
hf_error "linear RoPE without factor" "linear RoPE scaling needs factor > 0" --model "$hf/linear_nofactor.json"
# a head_dim the weights do not have: q_proj is [60, 60] in the files, the config says 6 x 20
hf_error "head_dim vs the weights" "tensor model.layers.0.self_attn.q_proj.weight has shape \[60, 60\], the config wants \[120, 60\]" \
    --model "$hf/head_dim_20.json" --init "$hf/bf16_sharded"
hf_error "bad shard size" "--save-shard-size 5XB: expected a size" --save-shard-size 5XB
python3 -c "import json; c = json.load(open('$hf/llama3/config.json')); c['rope_parameters']['high_freq_factor'] = 0.5
json.dump(c, open('$hf/llama3_bad.json', 'w'))"
hf_error "bad llama3 factors" "llama3 RoPE scaling needs" --model "$hf/llama3_bad.json"

# same_tensors A B [widen|round]: every tensor of folder B equals folder A's, byte for byte (widen:
# B is F32, A BF16, and each B value is A's widened exactly; round: A is F32, B BF16, each B value
# A's rounded to nearest even); prints the dtype and shard count of B
same_tensors() {
    python3 - "$@" <<'PY'
import json, os, struct, sys
def load(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    out = {}
    for fn in files:
        data = open(os.path.join(d, fn), "rb").read()
        (n,) = struct.unpack("<Q", data[:8]); h = json.loads(data[8:8 + n])
        for k, e in h.items():
            if k != "__metadata__":
                b, en = e["data_offsets"]; out[k] = (e["dtype"], e["shape"], data[8 + n + b:8 + n + en])
    return out, len(files)
a, _ = load(sys.argv[1]); b, nb = load(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else ""
def rne(f32):  # F32 bytes -> BF16 bytes, round to nearest even (finite values)
    u = struct.unpack("<%dI" % (len(f32) // 4), f32)
    return struct.pack("<%dH" % len(u), *(((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF for x in u))
want = {"widen": lambda x: b"".join(b"\0\0" + x[i:i + 2] for i in range(0, len(x), 2)), "round": rne, "": lambda x: x}[mode]
bad = [k for k in a if k not in b or a[k][1] != b[k][1] or b[k][2] != want(a[k][2])]
dt = sorted(set(v[0] for v in b.values()))
print(("ok" if not bad and len(a) == len(b) else "bad %s" % bad[:3]) + " %d tensors, %s, %d file(s)" % (len(b), "/".join(dt), nb))
PY
} 2>&1

ev=(--steps 1 --lr 0) # one update of lr 0: AdamW's w - 0 * (...) leaves every weight as loaded
# --init DIR, saved again: the model is the one loaded, in its layout: BF16 (auto), shards + index
"$bin" "${run[@]}" "${ev[@]}" --init "$hf/bf16_sharded" --out "$tmp/rt" --save-shard-size 60KB > "$tmp/rt.txt" 2>&1
r=$(same_tensors "$hf/bf16_sharded" "$tmp/rt")
if [[ $r == "ok 21 tensors, BF16, 3 file(s)" ]] && [ -f "$tmp/rt/model.safetensors.index.json" ] && [ ! -f "$tmp/rt/model.safetensors" ] \
   && grep -q '"torch_dtype":[[:space:]]*"bfloat16"' "$tmp/rt/config.json"; then ok "sharded BF16 in -> sharded BF16 out, bit for bit: $r"
else bad "sharded round trip: $r; $(tail -2 "$tmp/rt.txt")"; fi
# and that output loads again to the same (a second generation is identical)
"$bin" "${run[@]}" "${ev[@]}" --init "$tmp/rt" --out "$tmp/rt2" --save-shard-size 60KB > /dev/null 2>&1
r=$(same_tensors "$tmp/rt" "$tmp/rt2")
[[ $r == "ok 21 tensors, BF16, 3 file(s)" ]] && ok "our sharded save loads back: $r" || bad "reload of our sharded save: $r"
# --save-dtype f32 widens exactly, and under the default 5GB threshold it is one file
"$bin" "${run[@]}" "${ev[@]}" --init "$hf/bf16_sharded" --out "$tmp/f32" --save-dtype f32 > /dev/null 2>&1
r=$(same_tensors "$hf/bf16_sharded" "$tmp/f32" widen)
[[ $r == "ok 21 tensors, F32, 1 file(s)" ]] && ok "--save-dtype f32: one F32 file under 5GB, each value the BF16 input widened: $r" || bad "--save-dtype f32: $r"

# checkpoints: F32 (exact resume) in shards above --save-shard-size; a resume from them continues
# the run bit for bit
ck=(--init "$hf/bf16_sharded" --steps 4 --save-every 2 --keep 0 --save-shard-size 60KB --lr 0.01 --warmup 0 --out "$tmp/ck")
"$bin" "${run[@]}" "${ck[@]}" --log "$tmp/ck_a.jsonl" > /dev/null 2>&1
r=$(same_tensors "$tmp/ck/ckpt_00000004" "$tmp/ck/ckpt_00000004")
nsh=$(ls "$tmp/ck/ckpt_00000002" | grep -c '^model-.*-of-.*\.safetensors$')
rm -rf "$tmp/ck/ckpt_00000004"
"$bin" "${run[@]}" "${ck[@]}" --resume 1 --log "$tmp/ck_b.jsonl" > "$tmp/ck_b.txt" 2>&1
la=$(grep -o '"loss": [^,]*' "$tmp/ck_a.jsonl" | tail -2); lb=$(grep -o '"loss": [^,]*' "$tmp/ck_b.jsonl")
if [[ $r == *"F32"* ]] && [ "$nsh" -gt 1 ] && [ -f "$tmp/ck/ckpt_00000002/model.safetensors.index.json" ] && [ -n "$la" ] && [ "$la" = "$lb" ]; then
    ok "checkpoints: F32 in $nsh shards + index; resume from step 2 == uninterrupted steps 3-4, bit for bit"
else bad "sharded checkpoint resume: [$r] shards $nsh, losses [$la] vs [$lb]; $(tail -2 "$tmp/ck_b.txt")"; fi

# a GaLore fine-tune of transformers' own sharded BF16 saves (dev/ref/hf: the tied model, whose
# files have no lm_head.weight, and the head_dim 16 != C/NH one): galore_adamw8bit --per-layer 1,
# saved in the user's layout (BF16 shards + index; tied: still no lm_head, config says tied); the
# saved BF16 weights are the final F32 checkpoint's rounded to nearest even, bit for bit; and the
# saved folder reloads to the same model: a second generation (--init OUT, lr 0, saved again) has
# the same bytes and gives the same --dump-logits bit for bit. (dev/check_hf_finetune.py opens
# such saves in transformers: logits within 4.3e-7 of ours, dev/ref/hf/finetune.txt.)
python3 - "$tmp" <<'PY'
import struct, sys
for name, n, seed in (("ft_train.bin", 4096, 0), ("ft_val.bin", 1024, 5)):
    with open(sys.argv[1] + "/" + name, "wb") as f:
        f.write(struct.pack("<256i", *([20240520, 1, n] + [0] * 253)))
        f.write(struct.pack("<%dH" % n, *((i * 37 + (i // 7) * 11 + seed) % 64 for i in range(n))))
PY
ft=(--train "$tmp/ft_train.bin" --val "$tmp/ft_val.bin" --tokenizer "" --batch 2 --seq 16 --threads 1 --sample-len 0 --save-shard-size 20KB)
for fam in tied headdim; do
    o="$tmp/ft_$fam"
    "$bin" "${ft[@]}" --init "dev/ref/hf/$fam" --optimizer galore_adamw8bit --per-layer 1 --rank 4 --update-proj-gap 2 --lr 1e-2 \
        --warmup 0 --steps 4 --out "$o" > "$o.txt" 2>&1
    n=$(grep -c '"model\.\|"lm_head' "dev/ref/hf/$fam/model.safetensors.index.json")
    r=$(same_tensors "$o/ckpt_00000004" "$o" round)
    "$bin" "${ft[@]}" --init "$o" --steps 1 --lr 0 --out "$o/gen2" > /dev/null 2>&1
    r2=$(same_tensors "$o" "$o/gen2")
    "$bin" "${ft[@]}" --init "$o" --steps 0 --dump-logits "$o/a.safetensors" --out "" > /dev/null 2>&1
    "$bin" "${ft[@]}" --init "$o/gen2" --steps 0 --dump-logits "$o/b.safetensors" --out "" > /dev/null 2>&1
    tied_ok=1
    if [ $fam = tied ]; then
        grep -q lm_head "$o/model.safetensors.index.json" && tied_ok=0
        grep -q '"tie_word_embeddings":[[:space:]]*true' "$o/config.json" || tied_ok=0
    fi
    nsh=$(ls "$o" | grep -c '^model-.*-of-.*\.safetensors$')
    if [[ $r == "ok $n tensors, BF16, $nsh file(s)" ]] && [ "$nsh" -gt 1 ] && [[ $r2 == "ok $n tensors, BF16, $nsh file(s)" ]] && [ $tied_ok = 1 ] \
       && [ -s "$o/a.safetensors" ] && cmp -s "$o/a.safetensors" "$o/b.safetensors" && ! grep -qi nan "$o.txt"; then
        ok "fine-tune of transformers' $fam save (galore_adamw8bit --per-layer 1, 4 steps): $r = the F32 checkpoint rounded; reloaded and saved again: same bytes, same logits"
    else bad "fine-tune $fam: [$r] [$r2] n $n shards $nsh tied_ok $tied_ok; $(tail -3 "$o.txt")"; fi
done
# a fine-tune's folder is complete for Hugging Face: config.json keeps --init's fields that the
# program does not own (bos/eos/pad ids, use_cache, ...), generation_config.json is --init's (or
# made from the config's ids), and the tokenizer files come along (a stdlib check of the files;
# dev/check_hf_folder.py runs transformers on them where it is installed)
l3="$tmp/l3tok"; cp -r dev/ref/hf/llama3 "$l3"; cp dev/test/data/tok/hf_llama3.json "$l3/tokenizer.json"
printf '{"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end_of_text|>"}' > "$l3/tokenizer_config.json"
printf '{"bos_token_id": 1, "eos_token_id": [2, 5], "do_sample": true, "temperature": 0.6}' > "$l3/generation_config.json"
"$bin" "${ft[@]}" --tokenizer "$l3/tokenizer.json" --init "$l3" --steps 2 --lr 1e-3 --warmup 0 --out "$tmp/ft_l3tok" > "$tmp/ft_l3tok.txt" 2>&1
"$bin" "${ft[@]}" --init dev/ref/hf/llama3 --steps 2 --lr 1e-3 --warmup 0 --out "$tmp/ft_l3" > "$tmp/ft_l3.txt" 2>&1
r=$(python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
def load(p): return json.load(open(p))
src = load("dev/ref/hf/llama3/config.json")
bad = []
for d in ("ft_l3", "ft_l3tok", "ft_l3tok/ckpt_00000002"):
    c = load(f"{t}/{d}/config.json")
    for k in ("bos_token_id", "eos_token_id", "pad_token_id", "use_cache", "pretraining_tp", "attention_dropout", "transformers_version"):
        if k not in c or c[k] != src[k]: bad.append(f"{d}: config {k} {c.get(k, 'missing')!r}, --init had {src[k]!r}")
g = load(f"{t}/ft_l3/generation_config.json")
if g.get("eos_token_id") != 2 or g.get("bos_token_id") != 1: bad.append(f"ft_l3: generation_config {g}")
for d in ("ft_l3tok", "ft_l3tok/ckpt_00000002"):
    for f in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if open(f"{t}/{d}/{f}", "rb").read() != open(f"{t}/l3tok/{f}", "rb").read(): bad.append(f"{d}/{f} is not --init's")
print("; ".join(bad) if bad else "ok")
PY
)
[ "$r" = ok ] && ok "a fine-tuned Llama 3 folder keeps bos/eos/pad and --init's other config fields, its generation_config.json and tokenizer files" \
    || bad "complete HF folders: $r $(tail -2 "$tmp/ft_l3tok.txt")"
# where torch and transformers are installed (not in CI): a trained folder opened by
# AutoTokenizer / AutoModelForCausalLM gives --prompt's ids and generate() gives --temperature 0's tokens
PY=${HF_PYTHON:-python3}
if "$PY" -c "import torch, transformers" 2>/dev/null; then
    "$bin" --train "dev/data/tinytext/train_*.bin" --steps 2 --batch 2 --seq 32 --val "" --sample-len 0 --out "$tmp/hfrun" > /dev/null 2>&1
    r=$("$PY" dev/check_hf_folder.py "$tmp/hfrun" --bin "$bin" 2>/dev/null); rc=$?
    [ $rc -eq 0 ] && ok "transformers opens a run folder with its tokenizer; ids and greedy tokens agree: $(grep -c '^ok' <<<"$r") prompts" || bad "check_hf_folder.py: $r"
else
    echo "note: torch/transformers not importable by $PY: dev/check_hf_folder.py skipped (HF_PYTHON=... to name a Python that has them)"
fi
summary
