#!/usr/bin/env bash
# test_prepare.sh: dev/data/prepare.py on small local files with the small tokenizers of
# dev/test/data/tok: a Llama 3 style tokenizer.json in a model folder (tokenizers) and a
# sentencepiece tokenizer.model (sentencepiece); JSON lines (the text field, and --field), plain
# text, both layouts, 2 workers. The shards must hold exactly [bos] + the reference ids of
# dev/test/data/tok/cases.json + [eos] per document (ids made by the libraries themselves when
# the fixtures were made), under c4.py's names and header; then train_llama trains 2 steps on
# them and encodes --prompt with the tokenizer prepare.py put beside the shards. The one-line
# errors need no package; the rest skips, with a line saying so, without tokenizers and
# sentencepiece. Run from the repo root after `make train_llama`.
source "$(dirname "$0")/testlib.sh"

prep() { python3 dev/data/prepare.py --workers 2 "$@"; }

# one_line NAME PATTERN ARGS...: fails with one "error:" line matching PATTERN, no traceback
one_line() {
    local name=$1 pat=$2; shift 2
    local out; out=$(prep --out "$tmp/err" "$@" 2>&1); local rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -q -- "$pat" <<<"$out"; then ok "$name: $out"
    else bad "$name (rc $rc): $out"; fi
}
mkdir -p "$tmp/empty"
echo '{"text": "x"}' > "$tmp/one.jsonl"
one_line "an input that matches nothing" "^error: --input $tmp/none_\*.jsonl: no such file (the glob matches nothing)" --tokenizer "$tmp/empty" --input "$tmp/none_*.jsonl"
: > "$tmp/empty.txt"; printf '\n  \n' > "$tmp/blank.txt"
one_line "an empty input file (was: \"0 shards\", exit 0)" "^error: --input $tmp/empty.txt: empty (no non-blank line); pass a file that holds the text" --tokenizer "$tmp/empty" --input "$tmp/empty.txt"
one_line "a blank input file" "^error: --input $tmp/blank.txt: empty" --tokenizer "$tmp/empty" --input "$tmp/one.jsonl" "$tmp/blank.txt"
one_line "a folder without a tokenizer" "^error: --tokenizer $tmp/empty: a folder without tokenizer.json, tokenizer.model or spiece.model" --tokenizer "$tmp/empty" --input "$tmp/one.jsonl"
one_line "a missing tokenizer.json" "^error: --tokenizer $tmp/nope/tokenizer.json: no such file" --tokenizer "$tmp/nope/tokenizer.json" --input "$tmp/one.jsonl"

if ! python3 -c "import tokenizers, sentencepiece" 2>/dev/null; then
    python3 -c "import tokenizers" 2>/dev/null || one_line "tokenizer.json without the tokenizers package" \
        "^error: --tokenizer dev/test/data/tok/hf_llama3.json needs the tokenizers package; hint: pip install tokenizers" \
        --tokenizer dev/test/data/tok/hf_llama3.json --input "$tmp/one.jsonl"
    echo "skip the rest of test_prepare.sh: it needs the Python packages tokenizers and sentencepiece (pip install tokenizers sentencepiece)"
    summary; exit $?
fi

# the inputs: the texts of cases.json as JSON lines (one file gzipped under another name) in
# field "text" and, a copy, in field "content"; those without a line break as plain text lines
python3 - "$tmp" <<'PY'
import gzip, json, sys
tmp = sys.argv[1]
texts = json.load(open("dev/test/data/tok/cases.json"))["texts"]
for field, a, b in (("text", "a.jsonl", "b.data"), ("content", "a2.jsonl", "b2.data")):
    with open(f"{tmp}/{a}", "w") as f:
        for t in texts[:12]:
            f.write(json.dumps({field: t, "id": 1}) + "\n")
    with gzip.open(f"{tmp}/{b}", "wt") as f:
        for t in texts[12:20]:
            f.write(json.dumps({field: t}) + "\n")
with open(f"{tmp}/c.txt", "w") as f:
    f.write("\n".join(t for t in texts if "\n" not in t and "\r" not in t and t.strip() and t == t.strip()) + "\n")
PY
mkdir -p "$tmp/llama3" "$tmp/spm"
cp dev/test/data/tok/hf_llama3.json "$tmp/llama3/tokenizer.json"
printf '{"eos_token": "<|end_of_text|>", "bos_token": "<|begin_of_text|>"}' > "$tmp/llama3/tokenizer_config.json"
cp dev/test/data/tok/spm_bpe.model "$tmp/spm/tokenizer.model"

# check OUT NAME SPLIT FILE LAYOUT R: the shards against the reference ids, in the input order
# (a*.jsonl, b*.data, c.txt; FILE: which tokenizer of cases.json)
check() {
python3 - "$@" <<'PY'
import array, glob, json, os, struct, sys
out, name, split, file, layout, R = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
c = json.load(open("dev/test/data/tok/cases.json"))
t = [x for x in c["tokenizers"] if x["file"] == file][0]
ids = dict(zip(c["texts"], t["ids"]))
bos, eos, pad = t["prefix"], (1 if "llama3" in file else 2), 0
texts = c["texts"]
docs = [texts[:12], texts[12:20], [x for x in texts if "\n" not in x and "\r" not in x and x.strip() and x == x.strip()]]
errors = []
for i, group in enumerate(docs):
    want = []
    for d in group:
        row = bos + ids[d] + [eos]
        if layout == "paper":
            row = row[:R - 1] + [eos] if len(row) > R else row + [pad] * (R - len(row))
        want += row
    path = os.path.join(out, f"{name}_{split}_{100 * i:06d}.bin")
    if not os.path.exists(path):
        errors.append(f"no {path}: {sorted(os.listdir(out))}")
        continue
    data = open(path, "rb").read()
    h = struct.unpack_from("<256i", data)
    body = array.array("H"); body.frombytes(data[1024:])
    if list(h[:6]) != [20240520, 1, len(want), 1 if layout == "paper" else 0, R if layout == "paper" else 0, 0]:
        errors.append(f"{path}: header {h[:6]}")
    if list(body) != want:
        errors.append(f"{path}: {len(body)} tokens differ from the {len(want)} expected")
print("; ".join(errors) if errors else f"ok {sum(len(g) for g in docs)} documents")
sys.exit(1 if errors else 0)
PY
}

# a model folder with tokenizer.json (bos <|begin_of_text|> = 0 from its post-processor, eos 1)
if prep --tokenizer "$tmp/llama3" --input "$tmp/a.jsonl" "$tmp/b.data" --input "$tmp/c.txt" --out "$tmp/o1" > "$tmp/o1.log" 2>&1; then
    r=$(check "$tmp/o1" data train dev/test/data/tok/hf_llama3.json packed 0)
    [[ $r == ok* ]] && ok "tokenizer.json folder, JSON lines (one gzipped) + text: packed shards exact: $r" || bad "packed tokenizer.json: $r"
    grep -q "3 input files (2 JSON lines, 1 text)" "$tmp/o1.log" && ok "JSON lines and text told apart by content" || bad "sniff: $(head -1 "$tmp/o1.log")"
    cmp -s "$tmp/o1/tokenizer.json" dev/test/data/tok/hf_llama3.json && ok "the tokenizer.json is copied beside the shards" || bad "no tokenizer.json in OUT: $(ls "$tmp/o1")"
else bad "prepare.py tokenizer.json: $(tail -3 "$tmp/o1.log")"; fi
one_line "JSON lines without the --field" "^error: $tmp/a.jsonl: its first line is not a JSON object with a string \"content\"; hint: pass --field NAME" --tokenizer "$tmp/llama3" --input "$tmp/a.jsonl" --field content
# a rerun does nothing; the same settings resume
prep --tokenizer "$tmp/llama3" --input "$tmp/a.jsonl" "$tmp/b.data" --input "$tmp/c.txt" --out "$tmp/o1" > "$tmp/o1b.log" 2>&1
[ "$(grep -c 'already done' "$tmp/o1b.log")" = 3 ] && ok "a rerun skips finished files" || bad "rerun: $(cat "$tmp/o1b.log")"

# sentencepiece tokenizer.model, paper layout, --field, other names
if prep --tokenizer "$tmp/spm/tokenizer.model" --input "$tmp/a2.jsonl" "$tmp/b2.data" "$tmp/c.txt" --field content --layout paper --seq 16 \
    --pad-id 0 --name mine --split val --out "$tmp/o2" > "$tmp/o2.log" 2>&1; then
    r=$(check "$tmp/o2" mine val dev/test/data/tok/spm_bpe.bin paper 16)
    [[ $r == ok* ]] && ok "tokenizer.model, paper layout, --name/--split: shards exact: $r" || bad "paper sentencepiece: $r"
    [ -f "$tmp/o2/tokenizer.bin" ] && cmp -s "$tmp/o2/tokenizer.bin" dev/test/data/tok/spm_bpe.bin && ok "tokenizer.bin exported beside the shards" \
        || bad "tokenizer.bin: $(ls "$tmp/o2")"
else bad "prepare.py sentencepiece: $(tail -3 "$tmp/o2.log")"; fi
one_line "paper layout without a pad id" "^error: tokenizer .* has no pad id; hint: pass --pad-id" --tokenizer "$tmp/llama3" --input "$tmp/c.txt" --layout paper

# train_llama on the tokenizer.json shards: 2 steps, then --prompt through OUT's tokenizer.json
printf '{"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128, "num_hidden_layers": 1, "vocab_size": 601, "max_position_embeddings": 64}' > "$tmp/v601.json"
out=$(./train_llama --model "$tmp/v601.json" --train "$tmp/o1/data_train_*.bin" --val "" --tokenizer "$tmp/o1" --batch 2 --seq 16 --steps 2 \
      --threads 1 --sample-len 0 --out "$tmp/run" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^step *2" <<<"$out" && ok "train_llama trains on prepare.py's shards" || bad "train on prepared (rc $rc): $(tail -3 <<<"$out")"
out=$(./train_llama --init "$tmp/run" --steps 0 --val "" --tokenizer "$tmp/o1" --prompt "Hello world" --sample-len 3 --seq 16 --threads 1 2>&1); rc=$?
want=$(python3 -c "import json; c = json.load(open('dev/test/data/tok/cases.json')); t = [x for x in c['tokenizers'] if x['file'].endswith('hf_llama3.json')][0]; print(' '.join(map(str, t['prefix'] + t['ids'][0])))")
[ $rc -eq 0 ] && grep -q "^prompt: 6 tokens: $want$" <<<"$out" && grep -q "^sample: Hello world" <<<"$out" \
    && ok "--prompt with OUT's tokenizer.json: $(grep '^prompt' <<<"$out")" || bad "--prompt on OUT (rc $rc): $out"

summary
