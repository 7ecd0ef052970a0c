"""
C4 `en` (allenai/c4) -> galore.c token shards, as the GaLore paper trained on it.

Input: the json.gz files of the HF dataset repo allenai/c4 (one JSON object per line with
"text", "timestamp", "url"):
    https://huggingface.co/datasets/allenai/c4/resolve/main/en/c4-{split}.{i:05d}-of-{n:05d}.json.gz
    n = 1024 for train, 8 for validation (each train file: ~356k documents, ~90M tokens padded)
or, with --input-dir, the files c4-{split}.*.json.gz already in a local folder, or, with --input,
any files or globs of JSON lines (each line an object with "text"), gzipped or plain (.jsonl,
.json.gz, ...: told apart by their first bytes, not their names). No network is touched then (the
tests do this). Input file number i is its position in the sorted list.

Output (--out), llm.c shard layout read by dataloader.h (1024-byte header of 256 int32, tokens):
    header[0] magic  20240520 (uint16 tokens) if the vocab fits 16 bits, else 20240801 (uint32)
    header[1] version 1 (uint16) or 7 (uint32)      header[2] token count
    header[3] layout: 1 = paper, 0 = packed
    header[4] row length R (paper) / 0              header[5] pad id (paper) / 0
  --layout paper (default; the paper's setup): each document is a row of exactly R (--seq, 256)
    tokens, no packing: ids + [eos], truncated to R keeping the eos last, right-padded with the
    pad id. This is exactly what the official GaLore code gets from
        tokenizer(text, max_length=256, truncation=True, padding="max_length")
    with the t5-base tokenizer: T5 adds no BOS and appends EOS (id 1) as its only special token,
    and HF truncates the text ids BEFORE appending the special token, so a long document becomes
    ids[:255] + [1]; a short one ids + [1] + [0] * (255 - len(ids)); pad id 0.
  --layout packed: every document's ids followed by eos, concatenated (llm.c style).
  Shards are c4_{split}_{k:06d}.bin with k = 100 * i + part: each input file i gives one or more
  shards of at most --shard-tokens tokens (default 100M; paper shards hold whole rows), so a
  shard's name depends only on its input file and a rerun can tell what is done.
  Also written: tokenizer.bin (decoding and --prompt, format of dev/data/export_tokenizer.py;
  tokenizer.json for a tokenizer.json) and, per
  finished input file, c4_{split}_{i:05d}.done (JSON: its shards, counts and the settings).

Resumable: each shard is written to NAME.tmp and renamed when complete; an input file whose
.done lists only existing shards is skipped; otherwise it is tokenized again and only its
missing shards are written (same input, same tokenizer -> same bytes). Downloads go to
FILE.part and resume from it with an HTTP Range request. A leftover .tmp is overwritten.
The raw json.gz is deleted once its shards are done unless --keep-raw.

Tokenizer (--tokenizer):
  t5-base (default)    transformers' AutoTokenizer.from_pretrained("t5-base") (downloads from
                       the HF hub or uses its cache): the official tokenizer, bit for bit. Any HF
                       hub name works the same way.
  DIR, tokenizer.json  a local folder's tokenizer.json (the `tokenizers` package) or
                       tokenizer.model / spiece.model (sentencepiece), as dev/data/prepare.py.
  PATH.model           a local SentencePiece model (t5-base's is `spiece.model` in the HF repo
                       t5-base), loaded with the `sentencepiece` package: sp.encode(text) + [eos].
                       Same ids as the HF tokenizer except for text that literally contains a
                       special-token string ("</s>", "<pad>", "<unk>", "<extra_id_N>"): HF maps
                       those to the special ids, sentencepiece encodes them as plain text.
  bytes                test-only, stdlib: id = UTF-8 byte + 3, pad 0, eos 1, unk 2, vocab 259.
Ids >= --model-vocab (default 32000: t5's 100 sentinel ids 32000..32099 lie beyond the paper
models' 32000 embeddings, and HF emits them for literal "<extra_id_N>" text) become the unk id,
and are counted, so that training never dies on them later.

Usage:
  python dev/data/c4.py --split train --shards 40 --out data/c4          # ~40*356k docs
  python dev/data/c4.py --split validation --out data/c4                 # all 8 files
  python dev/data/c4.py --split train --input-dir dev/test/data/c4 --tokenizer bytes --seq 16 --out /tmp/x
  python dev/data/c4.py --input 'my_corpus/*.jsonl' --tokenizer spiece.model --out data/mine   # any JSON lines
The code shared with dev/data/prepare.py is in dev/data/shards.py.
Dev-only check against sentencepiece (and HF's official call, if transformers is installed):
  python dev/data/c4.py --selftest-spm dev/data/tinytext/tokenizer.model
"""
import argparse
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shards import (HERE, BytesTokenizer, C4Error, DataError, SentencePieceTokenizer, check_common,  # noqa: E402,F401
                    expand_inputs, load_tokenizer, paper_row, read_docs, read_shard, run_jobs)

URL = "https://huggingface.co/datasets/allenai/c4/resolve/main/en/c4-{split}.{i:05d}-of-{n:05d}.json.gz"
NUM_FILES = {"train": 1024, "validation": 8}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["train", "validation"], default="train")
    ap.add_argument("--shards", type=int, default=None, help="how many input files (default: all of the split)")
    ap.add_argument("--layout", choices=["paper", "packed"], default="paper")
    ap.add_argument("--seq", type=int, default=256, help="paper layout: row length R (train with --seq R)")
    ap.add_argument("--out", default="data/c4", help="output folder")
    ap.add_argument("--tokenizer", default="t5-base", help="t5-base | HF name or folder | PATH.model | bytes")
    ap.add_argument("--pad-id", type=int, default=None, help="override the tokenizer's pad id (paper layout)")
    ap.add_argument("--model-vocab", type=int, default=32000, help="ids >= this become the unk id")
    ap.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    ap.add_argument("--input-dir", default=None, help="use local c4-SPLIT.*.json.gz files, no download")
    ap.add_argument("--input", nargs="+", default=None, metavar="FILE_OR_GLOB",
                    help="use these local JSON-lines files (any names, gzipped or plain .jsonl), no download")
    ap.add_argument("--download-dir", default=None, help="where json.gz files are downloaded (default OUT/raw)")
    ap.add_argument("--keep-raw", action="store_true", help="keep downloaded json.gz files")
    ap.add_argument("--shard-tokens", type=int, default=100_000_000, help="max tokens per output shard")
    ap.add_argument("--selftest-spm", metavar="MODEL", default=None,
                    help="dev-only: check the pipeline against sentencepiece (and HF) on dev/test/data/c4")
    return ap.parse_args(argv)



def run(args):
    args.prefix = "c4"
    tok = load_tokenizer(args.tokenizer, args.pad_id)  # fail early, in the main process
    if args.input and args.input_dir:
        raise C4Error("pass --input or --input-dir, not both")
    if args.input:
        files = expand_inputs(args.input)
        n = len(files) if args.shards is None else min(args.shards, len(files))
        jobs = [(i, files[i], None, args) for i in range(n)]
    elif args.input_dir:
        files = sorted(glob.glob(os.path.join(args.input_dir, f"c4-{args.split}.*.json.gz")))
        if not files:
            raise C4Error(f"--input-dir {args.input_dir}: no c4-{args.split}.*.json.gz in it; hint: pass other files with --input FILE_OR_GLOB")
        n = len(files) if args.shards is None else min(args.shards, len(files))
        jobs = [(i, files[i], None, args) for i in range(n)]
    else:
        total = NUM_FILES[args.split]
        n = total if args.shards is None else min(args.shards, total)
        jobs = []
    check_common(args, tok)
    if not args.input and not args.input_dir:
        raw = args.download_dir or os.path.join(args.out, "raw")
        os.makedirs(raw, exist_ok=True)
        for i in range(n):
            name = f"c4-{args.split}.{i:05d}-of-{total:05d}.json.gz"
            jobs.append((i, os.path.join(raw, name), URL.format(split=args.split, i=i, n=total), args))
    print(f"c4 {args.split}: {n} input files -> {args.out} | layout {args.layout}"
          + (f" R {args.seq}" if args.layout == "paper" else "")
          + f" | tokenizer {tok.name} (vocab {tok.vocab_size}, eos {tok.eos_id}, pad {tok.pad_id})"
          + f" | {args.workers} workers", flush=True)
    return run_jobs(args, tok, jobs)


# ----------------------------------------------------------------------------------------------
# dev-only: the pipeline against sentencepiece directly, and HF's official call

def selftest_spm(model):
    import sentencepiece as spm
    fixtures = os.path.join(HERE, "..", "test", "data", "c4")
    sp = spm.SentencePieceProcessor(model_file=model)
    pad = sp.pad_id() if sp.pad_id() >= 0 else 0  # tinytext has no pad: borrow id 0 for the check
    eos = sp.eos_id()
    files = sorted(glob.glob(os.path.join(fixtures, "c4-train.*.json.gz")))
    docs = [t for f in files for t in read_docs(f)]
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        for layout, R in (("paper", 12), ("packed", 12)):
            out = os.path.join(tmp, layout)
            a = parse_args(["--input-dir", fixtures, "--tokenizer", model, "--pad-id", str(pad), "--layout",
                            layout, "--seq", str(R), "--out", out, "--workers", "2", "--shard-tokens", "300"])
            run(a)
            toks = []
            for p in sorted(glob.glob(os.path.join(out, "c4_train_*.bin"))):
                toks += read_shard(p)[1]
            want = []
            for t in docs:
                ids = sp.encode(t) + [eos]
                if layout == "paper":
                    ids = ids[:R - 1] + [eos] if len(ids) > R else ids + [pad] * (R - len(ids))
                want += ids
            ok = toks == want
            fails += not ok
            print(f"selftest {layout}: {len(docs)} docs, {len(toks)} tokens: "
                  f"{'same as sentencepiece encode + eos' if ok else 'DIFFERENT from sentencepiece'}")
    try:
        from transformers import T5TokenizerFast
    except ImportError:
        print("selftest hf: transformers not installed, skipped")
        return fails
    # HF's official call vs our rows, with a T5 tokenizer built on the same model
    hf = T5TokenizerFast(vocab_file=model, extra_ids=0)
    # (transformers 5 rebuilds the vocab around T5's pad/eos/unk = 0/1/2, so its ids need not
    # equal sentencepiece's for this non-T5 model: what is checked is truncation, eos and padding)
    bad, cut = 0, 0
    enc = hf(docs, add_special_tokens=False)["input_ids"]
    for R in (8, 12, 64):
        for t, ids in zip(docs, enc):
            official = hf(t, max_length=R, truncation=True, padding="max_length")["input_ids"]
            cut += len(ids) >= R
            if official != paper_row(ids, R, hf.eos_token_id, hf.pad_token_id):
                bad += 1
    print(f"selftest hf: official tokenizer(text, max_length=R, truncation=True, padding='max_length') "
          f"{'equals' if not bad else 'DIFFERS from'} paper_row(ids, R, eos, pad) for R 8, 12, 64 on "
          f"{3 * len(docs) - bad}/{3 * len(docs)} (doc, R) pairs, {cut} of them truncated "
          f"(eos {hf.eos_token_id}, pad {hf.pad_token_id}, {type(hf).__name__})")
    return fails + (bad > 0)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.selftest_spm:
            sys.exit(1 if selftest_spm(args.selftest_spm) else 0)
        run(args)
    except C4Error as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
