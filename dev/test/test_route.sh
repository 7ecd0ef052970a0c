#!/usr/bin/env bash
# test_route.sh: the README's route from a plain text file to a model one can prompt and share,
# as a user runs it: train a sentencepiece tokenizer on the text (dev/data/train_tokenizer.py),
# make shards with it (dev/data/prepare.py), pretrain a llama_60m-shape model with --vocab auto
# (2 steps), prompt it, and (where transformers is installed) open its folder with transformers:
# the same prompt ids and greedy tokens. Needs a Python with sentencepiece (HF_PYTHON, else
# python3); says it skipped otherwise (CI has only the standard library).
source "$(dirname "$0")/testlib.sh"
bin=./train_llama
PY=${HF_PYTHON:-python3}
# make deps installs Debian's python3-sentencepiece: the system Python has it where the python3 on
# the PATH (a pyenv or venv one) may not
if ! "$PY" -c "import sentencepiece" 2>/dev/null && [ -z "${HF_PYTHON:-}" ] && /usr/bin/python3 -c "import sentencepiece" 2>/dev/null; then PY=/usr/bin/python3; fi
if ! "$PY" -c "import sentencepiece" 2>/dev/null; then
    echo "note: sentencepiece not importable by $PY: the tokenizer route is skipped (HF_PYTHON=... to name a Python that has it)"
    summary; exit $?
fi
text=(README.md docs/experiment.md)
"$PY" dev/data/train_tokenizer.py --input "${text[@]}" --vocab-size 500 --out "$tmp/mine" > "$tmp/tok.txt" 2>&1 \
    && "$PY" dev/data/prepare.py --tokenizer "$tmp/mine" --input "${text[@]}" --out "$tmp/mine" > "$tmp/prep.txt" 2>&1; rc=$?
[ $rc -eq 0 ] && [ -s "$tmp/mine/tokenizer.model" ] && [ -s "$tmp/mine/tokenizer.bin" ] && ls "$tmp"/mine/data_train_*.bin > /dev/null \
    && ok "a 500-piece BPE tokenizer trained on the text, and shards made with it" || bad "tokenizer/shards (rc $rc): $(tail -2 "$tmp/tok.txt" "$tmp/prep.txt")"
out=$("$bin" --model llama_60m --vocab auto --vocab-multiple 64 --train "$tmp/mine/data_train_*.bin" --val "" --steps 2 --batch 2 --seq 64 \
      --warmup 0 --sample-len 8 --out "$tmp/run" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^tokenizer: $tmp/mine/tokenizer.bin (beside the --train shards)$" <<<"$out" && grep -q "vocab 512 " <<<"$out" \
    && grep -q '"vocab_size":[[:space:]]*512' "$tmp/run/config.json" && [ -s "$tmp/run/tokenizer.model" ] && [ -s "$tmp/run/tokenizer_config.json" ] \
    && ok "llama_60m with --vocab auto --vocab-multiple 64: vocab 512 for 500 pieces; the folder holds the tokenizer" || bad "pretraining (rc $rc): $out"
want=$("$PY" -c "import sentencepiece as s; print(' '.join(map(str, s.SentencePieceProcessor(model_file='$tmp/mine/tokenizer.model').encode('The optimizer state'))))")
out=$("$bin" --init "$tmp/run" --steps 0 --prompt "The optimizer state" --sample-len 8 --temperature 0 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "^prompt: [0-9]* tokens: $want$" <<<"$out" && grep -q "^sample: The optimizer state" <<<"$out" \
    && ok "--init RUN --prompt: sentencepiece's ids ($want), greedy sample" || bad "--prompt (rc $rc, want $want): $out"
# a unigram tokenizer (T5's kind): the saved folder's tokenizer.json (hf_folder.h) encodes as
# sentencepiece in tokenizers and transformers (whose own conversion of the .model, T5Tokenizer,
# gave sentencepiece's ids on 11 of dev/test/make_tokenizers.py's first 32 texts); the texts that
# hold a special piece's text ("</s>") are left out: in Hugging Face that text is the token
"$PY" dev/data/train_tokenizer.py --input "${text[@]}" --vocab-size 500 --model-type unigram --out "$tmp/uni" > "$tmp/tok.txt" 2>&1 \
    && "$PY" dev/data/prepare.py --tokenizer "$tmp/uni" --input "${text[@]}" --out "$tmp/uni" > "$tmp/prep.txt" 2>&1 \
    && out=$("$bin" --model llama_tiny --vocab auto --train "$tmp/uni/data_train_*.bin" --val "" --steps 1 --batch 2 --seq 32 --sample-len 0 --out "$tmp/urun" 2>&1); rc=$?
want=$("$PY" -c "import sentencepiece as s; print(' '.join(map(str, s.SentencePieceProcessor(model_file='$tmp/uni/tokenizer.model').encode('galore.c trains 1234  tokens\tfast'))))")
got=$("$bin" --init "$tmp/urun" --steps 0 --prompt $'galore.c trains 1234  tokens\tfast' --sample-len 1 --temperature 0 2>&1)
[ $rc -eq 0 ] && [ -s "$tmp/urun/tokenizer.json" ] && grep -q '"PreTrainedTokenizerFast"' "$tmp/urun/tokenizer_config.json" && grep -q "^tokenizer: $tmp/urun/tokenizer.bin" <<<"$got" \
    && grep -q "^prompt: [0-9]* tokens: $want$" <<<"$got" \
    && ok "a unigram tokenizer's run folder: tokenizer.json and tokenizer_config.json for transformers; --init reads its tokenizer.bin: sentencepiece's ids ($want)" \
    || bad "unigram run folder (rc $rc, want $want): $out $got"
got=$("$bin" --init "$tmp/urun" --tokenizer "$tmp/urun/tokenizer.json" --steps 0 --prompt $'galore.c trains 1234  tokens\tfast' --sample-len 1 --temperature 0 2>&1)
grep -q "^prompt: [0-9]* tokens: $want$" <<<"$got" && ok "its tokenizer.json read by this program: the same ids" || bad "--tokenizer RUN/tokenizer.json (want $want): $got"
for lib in tokenizers transformers; do
    if ! "$PY" -c "import $lib" 2>/dev/null; then echo "note: $lib not importable by $PY: the unigram tokenizer.json's ids are not checked with it"; continue; fi
    r=$("$PY" - "$tmp/urun" "$lib" 2>"$tmp/lib.txt" <<'PY'
import sys
sys.path.insert(0, "dev/test")
from make_tokenizers import TEXTS
import sentencepiece as spm
run, lib = sys.argv[1], sys.argv[2]
sp = spm.SentencePieceProcessor(model_file=run + "/tokenizer.model")
if lib == "tokenizers":
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(run + "/tokenizer.json")
    enc = lambda t: tok.encode(t, add_special_tokens=False).ids
else:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(run)
    enc = lambda t: tok(t)["input_ids"]
texts = [t for t in TEXTS if not any(sp.id_to_piece(i) in t for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i))]
bad = [t for t in texts if enc(t) != sp.encode(t)]
print(f"{len(texts) - len(bad)} of {len(texts)}", *[repr(t[:40]) for t in bad[:3]])
PY
)
    [[ $r =~ ^([0-9]+)\ of\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[2]}" -ge 40 ] \
        && ok "the unigram run folder in $lib: sentencepiece's ids on $r texts" || bad "the unigram run folder in $lib: $r $(tail -3 "$tmp/lib.txt")"
done
if "$PY" -c "import torch, transformers" 2>/dev/null; then
    r=$("$PY" dev/check_hf_folder.py "$tmp/run" --bin "$bin" --prompt "The optimizer state" "galore.c trains 1234 tokens" 2>/dev/null); rc=$?
    [ $rc -eq 0 ] && ok "transformers opens the run folder: $(grep -c '^ok' <<<"$r") prompts with train_llama's ids and greedy tokens" || bad "check_hf_folder.py: $r"
else
    echo "note: torch/transformers not importable by $PY: dev/check_hf_folder.py skipped"
fi
summary
