"""
Your own corpus -> galore.c token shards, with the tokenizer of the model you fine-tune.

  python dev/data/prepare.py --tokenizer DIR --input data.jsonl [--input more.txt ...] --out data/mine

--tokenizer: a Hugging Face model folder (its tokenizer.json, read by the `tokenizers` package;
  else its tokenizer.model / spiece.model, read by `sentencepiece`), or such a file itself.
--input: files or globs, gzipped or not (told by their first bytes), each either JSON lines
  (one object per line; the document is its --field, default "text") or plain text (--text-docs:
  each non-blank line a document (default), blank-line separated paragraphs, or the whole file).
  Which of the two is told by the file's first non-blank character ('{': JSON lines) unless
  --format says. Input file number i is its position in the sorted list of all inputs.

Writes the shards of dev/data/c4.py (same format, layout options and resumability; see there
and dev/data/README.md), named {--name}_{--split}_{k:06d}.bin with k = 100 * i + part, and
{--name}_{--split}_{i:05d}.done per input file, plus the tokenizer for train_llama in --out:
tokenizer.json (a copy) or tokenizer.bin (exported by export_tokenizer.py), so that
`--tokenizer OUT` decodes samples and encodes --prompt with the same tokenizer.

Documents: [bos] + ids + [eos], ids encoded without special tokens; bos is what the tokenizer
itself puts before a text (--bos auto: a tokenizer.json's post-processor, as transformers'
tokenizer(text) does: Llama's <s> / <|begin_of_text|>; sentencepiece: none, as c4.py), or
--bos yes / no. eos: the tokenizer_config.json's eos_token beside tokenizer.json (else </s>,
<|end_of_text|>, <|endoftext|>). --layout packed (default here) concatenates documents;
--layout paper makes rows of --seq tokens padded with --pad-id (the tokenizer's pad by default).
Ids >= --model-vocab (default: the tokenizer's vocabulary) become the unk id, counted.

  python dev/data/prepare.py --tokenizer ~/models/Llama-3.2-1B --input 'corpus/*.jsonl' --out data/mine
  python dev/data/prepare.py --tokenizer ~/models/Llama-3.2-1B --input val.jsonl --split val --out data/mine
  ./train_llama --init ~/models/Llama-3.2-1B --train 'data/mine/data_train_*.bin' --val 'data/mine/data_val_*.bin' ...
"""
import argparse
import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shards import C4Error, check_common, expand_inputs, load_tokenizer, open_text, run_jobs  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="HF model folder (tokenizer.json or tokenizer.model), or the file")
    ap.add_argument("--input", action="append", nargs="+", required=True, metavar="FILE_OR_GLOB",
                    help="JSON-lines or text files (gzipped or not); repeatable")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--split", default="train", help="the middle part of the shard names (train, val, ...)")
    ap.add_argument("--name", default="data", help="the first part of the shard names")
    ap.add_argument("--field", default="text", help="JSON lines: the field that holds the document")
    ap.add_argument("--format", choices=["auto", "jsonl", "text"], default="auto")
    ap.add_argument("--text-docs", choices=["line", "paragraph", "file"], default="line",
                    help="plain text: what one document is")
    ap.add_argument("--bos", choices=["auto", "yes", "no"], default="auto", help="put the bos id before each document")
    ap.add_argument("--layout", choices=["packed", "paper"], default="packed")
    ap.add_argument("--seq", type=int, default=256, help="paper layout: row length R (train with --seq R)")
    ap.add_argument("--pad-id", type=int, default=None, help="paper layout: the pad id (default: the tokenizer's)")
    ap.add_argument("--model-vocab", type=int, default=None, help="ids >= this become the unk id (default: the tokenizer's vocabulary)")
    ap.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    ap.add_argument("--shard-tokens", type=int, default=100_000_000, help="max tokens per output shard")
    args = ap.parse_args(argv)
    args.input = [p for group in args.input for p in group]
    return args


def sniff(path, fmt, field):
    """'jsonl' when the first non-blank character is '{' (or --format jsonl), else 'text'; a
    JSON-lines file's first object must hold the --field as a string (checked before any work)"""
    try:
        with open_text(path) as f:
            first = ""
            for line in f:
                if line.strip():
                    first = line
                    break
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise C4Error(f"{path}: cannot read: {e}; hint: is it UTF-8 text or JSON lines (gzipped or not)?")
    kind = fmt if fmt != "auto" else ("jsonl" if first.lstrip().startswith("{") else "text")
    if kind == "jsonl" and first:
        try:
            ok = isinstance(json.loads(first).get(field), str)
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise C4Error(f"{path}: its first line is not a JSON object with a string \"{field}\"; hint: pass --field NAME "
                          "(the field that holds the text), or --format text")
    return kind


def has_text(path):
    try:
        with open_text(path) as f:
            return any(line.strip() for line in f)
    except (OSError, UnicodeDecodeError, EOFError):
        return True  # sniff() says what is wrong with it


def bos_ids(tok, mode):
    if mode == "auto":
        return list(tok.bos)
    if mode == "no":
        return []
    bos = list(tok.bos) or ([tok.sp.bos_id()] if hasattr(tok, "sp") and tok.sp.bos_id() >= 0 else [])
    if not bos:
        raise C4Error(f"--bos yes: tokenizer {tok.name} has no bos token")
    return bos


def run(args):
    if "/" in args.name or "/" in args.split:
        raise C4Error("--name and --split are parts of file names: no '/'")
    # the worker processes load the tokenizer again from args.tokenizer; bos and the vocabulary
    # are settled here, once
    files = expand_inputs(args.input)
    for path in files:  # an empty input would make "0 shards" and exit 0: a run then finds no data
        if not has_text(path):
            raise C4Error(f"--input {path}: empty (no non-blank line); pass a file that holds the text")
    tok = load_tokenizer(args.tokenizer, args.pad_id)
    args.prefix = args.name
    if args.model_vocab is None:
        args.model_vocab = tok.vocab_size
    args.bos_ids = bos_ids(tok, args.bos)
    tok.bos = args.bos_ids
    jobs = []
    kinds = {"jsonl": 0, "text": 0}
    for i, path in enumerate(files):
        a = copy.copy(args)
        kind = sniff(path, args.format, args.field)
        kinds[kind] += 1
        a.text_docs = None if kind == "jsonl" else args.text_docs
        jobs.append((i, path, None, a))
    check_common(args, tok)
    print(f"prepare {args.split}: {len(files)} input files ({kinds['jsonl']} JSON lines, {kinds['text']} text) -> {args.out} | "
          f"layout {args.layout}" + (f" R {args.seq}" if args.layout == "paper" else "")
          + f" | tokenizer {tok.name} (vocab {tok.vocab_size}, bos {tok.bos}, eos {tok.eos_id}, pad {tok.pad_id})"
          + f" | {args.workers} workers", flush=True)
    return run_jobs(args, tok, jobs)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except C4Error as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
