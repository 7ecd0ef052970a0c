#!/usr/bin/env bash
# test_c4.sh: dev/data/c4.py on the tiny C4-format fixtures in dev/test/data/c4/ with the
# stdlib-only `bytes` tokenizer (id = UTF-8 byte + 3, pad 0, eos 1, vocab 259), both layouts,
# 2 workers; exact shard headers and contents, resume, and 2 training steps of ./train_llama on
# the paper layout. Run from the repo root after `make train_llama`. Needs only python3 (stdlib).
set -u
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
tmp=$(mktemp -d /tmp/test_c4_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fix=dev/test/data/c4
R=16

c4() { python3 dev/data/c4.py --input-dir "$fix" --tokenizer bytes --workers 2 "$@"; }

# checker: shards in $1 (glob) against an independent re-implementation of the expected stream
# usage: check DIR SPLIT LAYOUT R SHARD_TOKENS
check() {
python3 - "$@" <<'EOF'
import array, glob, gzip, json, os, struct, sys
out, split, layout, R, cap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
files = sorted(glob.glob(f"dev/test/data/c4/c4-{split}.*.json.gz"))
errors = []
want_names, want_tokens = [], []
for i, f in enumerate(files):
    toks = []
    for line in gzip.open(f, "rt", encoding="utf-8"):
        ids = [b + 3 for b in json.loads(line)["text"].encode("utf-8")] + [1]  # eos 1
        if layout == "paper":
            ids = ids[:R - 1] + [1] if len(ids) > R else ids + [0] * (R - len(ids))
            assert len(ids) == R
        toks += ids
    per = cap // R * R if layout == "paper" else cap
    parts = [toks[k:k + per] for k in range(0, len(toks), per)]
    want_names += [f"c4_{split}_{100 * i + j:06d}.bin" for j in range(len(parts))]
    want_tokens += parts
names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, f"c4_{split}_*.bin")))
if names != want_names:
    errors.append(f"shard names {names} != {want_names}")
for name, want in zip(names, want_tokens):
    data = open(os.path.join(out, name), "rb").read()
    h = struct.unpack_from("<256i", data)
    want_h = [20240520, 1, len(want), 1 if layout == "paper" else 0,
              R if layout == "paper" else 0, 0] + [0] * 250
    if list(h) != want_h:
        errors.append(f"{name}: header {h[:8]} != {want_h[:8]}")
    body = array.array("H"); body.frombytes(data[1024:])
    if sys.byteorder == "big": body.byteswap()
    if list(body) != want:
        errors.append(f"{name}: tokens differ: {list(body)[:20]} vs {want[:20]}")
    if layout == "paper" and len(body) % R:
        errors.append(f"{name}: {len(body)} tokens, not whole rows")
if os.listdir(out) and any(n.endswith(".tmp") for n in os.listdir(out)):
    errors.append(f"leftover .tmp files: {os.listdir(out)}")
for e in errors: print("  " + e)
print(f"  {len(names)} shards, {sum(map(len, want_tokens))} tokens checked")
sys.exit(1 if errors else 0)
EOF
}

# --- paper layout: 3 input files, at most 4 rows (64 tokens) per shard -> 000000 000001 000100 000200
c4 --layout paper --seq $R --out "$tmp/paper" --shard-tokens 64 > "$tmp/paper.log" 2>&1 \
    && ok "c4.py paper layout runs" || { bad "c4.py paper layout: $(tail -5 "$tmp/paper.log")"; }
check "$tmp/paper" train paper $R 64 && ok "paper shards: headers, names, rows exact" || bad "paper shards differ"
[ -f "$tmp/paper/tokenizer.bin" ] && [ -f "$tmp/paper/c4_train_00002.done" ] && ok "tokenizer.bin and .done markers written" \
    || bad "missing tokenizer.bin or .done: $(ls "$tmp/paper")"
grep -q "done: 13 documents, 208 tokens (174 not pad), 4 shards, 8 documents truncated to 16" "$tmp/paper.log" \
    && ok "paper summary line" || bad "paper summary: $(tail -1 "$tmp/paper.log")"

# --- packed layout, 7 tokens per shard cap of 100 -> docs span shards inside one input file
c4 --layout packed --out "$tmp/packed" --shard-tokens 100 > "$tmp/packed.log" 2>&1 \
    && ok "c4.py packed layout runs" || bad "c4.py packed layout: $(tail -5 "$tmp/packed.log")"
check "$tmp/packed" train packed 0 100 && ok "packed shards: headers, names, tokens exact" || bad "packed shards differ"

# --- validation split
c4 --split validation --seq $R --out "$tmp/paper" > "$tmp/val.log" 2>&1 && check "$tmp/paper" validation paper $R 100000000 \
    && ok "validation split" || bad "validation split: $(tail -3 "$tmp/val.log")"

# --- resume: a rerun skips everything; delete one shard and leave a junk .tmp in its place:
# only that shard is rebuilt, byte-identical, and the .tmp is gone
c4 --layout paper --seq $R --out "$tmp/paper" --shard-tokens 64 > "$tmp/rerun.log" 2>&1
[ "$(grep -c 'already done' "$tmp/rerun.log")" = 3 ] && ok "rerun skips finished files" || bad "rerun: $(cat "$tmp/rerun.log")"
cp "$tmp/paper/c4_train_000001.bin" "$tmp/saved.bin"
stamp() { for f in "$tmp"/paper/c4_train_*.bin; do echo "$(basename "$f") $(stat -c '%i %Y.%y' "$f")"; done; }
stamp | grep -v 000001 > "$tmp/before.txt"
rm "$tmp/paper/c4_train_000001.bin"
head -c 300 /dev/urandom > "$tmp/paper/c4_train_000001.bin.tmp"
sleep 1
c4 --layout paper --seq $R --out "$tmp/paper" --shard-tokens 64 > "$tmp/resume.log" 2>&1 || bad "resume run failed: $(tail -3 "$tmp/resume.log")"
grep -q "c4-train.00000-of-00003.json.gz: 6 docs, .*wrote 1/2 shards" "$tmp/resume.log" && [ "$(grep -c 'already done' "$tmp/resume.log")" = 2 ] \
    && ok "resume re-tokenizes only the broken input file and writes only the missing shard" || bad "resume log: $(cat "$tmp/resume.log")"
cmp -s "$tmp/saved.bin" "$tmp/paper/c4_train_000001.bin" && ok "rebuilt shard is byte-identical" || bad "rebuilt shard differs"
stamp | grep -v 000001 > "$tmp/after.txt"
cmp -s "$tmp/before.txt" "$tmp/after.txt" && ok "other shards untouched" || bad "other shards changed: $(diff "$tmp/before.txt" "$tmp/after.txt")"
check "$tmp/paper" train paper $R 64 > /dev/null && ok "after resume: all shards exact, no .tmp left" || bad "after resume: $(check "$tmp/paper" train paper $R 64)"

# --- other settings into the same folder die instead of mixing
c4 --layout packed --out "$tmp/paper" --shard-tokens 64 > "$tmp/mix.log" 2>&1
[ $? -ne 0 ] && grep -q "other settings" "$tmp/mix.log" && ok "other settings in the same --out die" || bad "settings mismatch: $(tail -2 "$tmp/mix.log")"

# --- any names, globs and plain .jsonl: the same shards as the C4-named json.gz files give
mkdir -p "$tmp/loose"
i=0; for f in "$fix"/c4-train.*.json.gz; do gzip -dc "$f" > "$tmp/loose/part_$i.jsonl"; i=$((i + 1)); done
gzip -c "$tmp/loose/part_2.jsonl" > "$tmp/loose/part_2.data"   # gzipped under any name: told by its bytes
rm "$tmp/loose/part_2.jsonl"
python3 dev/data/c4.py --input "$tmp/loose/part_*.jsonl" "$tmp/loose/part_2.data" --tokenizer bytes --workers 2 --layout paper --seq $R \
    --out "$tmp/loose_out" --shard-tokens 64 > "$tmp/loose.log" 2>&1 || bad "c4.py --input: $(tail -3 "$tmp/loose.log")"
check "$tmp/loose_out" train paper $R 64 > /dev/null && ok "--input with globs, plain .jsonl and a gzip of another name: the same shards" \
    || bad "--input shards differ: $(check "$tmp/loose_out" train paper $R 64)"
out=$(python3 dev/data/c4.py --input "$tmp/loose/none_*.jsonl" --tokenizer bytes --out "$tmp/x" 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q "^error: --input $tmp/loose/none_\*.jsonl: no such file (the glob matches nothing)" <<<"$out" \
    && ok "--input matching nothing: one line" || bad "--input nothing (rc $rc): $out"

# --- tokenizer-load failures are one line each, never a traceback
one_line() {  # NAME PATTERN ARGS...
    local name=$1 pat=$2; shift 2
    local out; out=$(python3 dev/data/c4.py --input-dir "$fix" --out "$tmp/tokerr" "$@" 2>&1); local rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "$pat" <<<"$out" && ! grep -q Traceback <<<"$out"; then ok "$name: $out"
    else bad "$name (rc $rc): $(head -5 <<<"$out")"; fi
}
one_line "a missing .model path (not taken for a hub name)" "^error: --tokenizer $tmp/nope/spiece.model: no such file" --tokenizer "$tmp/nope/spiece.model"
one_line "a missing local folder" "^error: --tokenizer ./no_such_dir/t5: no such file or folder" --tokenizer ./no_such_dir/t5
printf 'not a model' > "$tmp/bad.model"
if python3 -c "import sentencepiece" 2>/dev/null; then
    one_line "a corrupt .model" "^error: --tokenizer $tmp/bad.model: not a SentencePiece model" --tokenizer "$tmp/bad.model"
else
    one_line "a .model without sentencepiece installed" "^error: --tokenizer $tmp/bad.model needs the sentencepiece package; hint: pip install" --tokenizer "$tmp/bad.model"
fi
# a hub name offline (here: no network) or without transformers
HF_HUB_OFFLINE=1 one_line "a hub name that cannot load" "^error: --tokenizer no-such-org/no-such-tokenizer" --tokenizer no-such-org/no-such-tokenizer

# --- the C side reads the paper layout: 2 training steps and an eval
cat > "$tmp/config.json" <<'EOF'
{"model_type": "llama", "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64,
 "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 259, "max_position_embeddings": 64,
 "rms_norm_eps": 1e-6, "tie_word_embeddings": false}
EOF
if [ -x ./train_llama ]; then
    ./train_llama --model "$tmp/config.json" --train "$tmp/paper/c4_train_*.bin" --val "$tmp/paper/c4_validation_*.bin" \
        --tokenizer "$tmp/paper/tokenizer.bin" --eval-tokens 32 --sample-len 0 --seq $R --batch 2 --steps 2 --out '' \
        --threads 1 > "$tmp/train.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] && grep -q "13 tokens\|208 tokens" "$tmp/train.log" && ok "train_llama: 2 steps on the paper layout" \
        || bad "train_llama rc $rc: $(tail -5 "$tmp/train.log")"
    ./train_llama --model "$tmp/config.json" --train "$tmp/paper/c4_train_*.bin" --val '' --seq 8 --batch 2 --steps 1 \
        --out '' > "$tmp/train_t.log" 2>&1
    [ $? -ne 0 ] && grep -q -- "--seq must equal the row length R of paper-layout shard $tmp/paper/c4_train_000000.bin" "$tmp/train_t.log" \
        && ok "train_llama --seq != R dies naming the shard" || bad "--seq != R: $(tail -2 "$tmp/train_t.log")"
else
    bad "./train_llama not built (make train_llama)"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
