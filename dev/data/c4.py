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
  Also written: tokenizer.bin (decoding, format of dev/data/export_tokenizer.py) and, per
  finished input file, c4_{split}_{i:05d}.done (JSON: its shards, counts and the settings).

Resumable: each shard is written to NAME.tmp and renamed when complete; an input file whose
.done lists only existing shards is skipped; otherwise it is tokenized again and only its
missing shards are written (same input, same tokenizer -> same bytes). Downloads go to
FILE.part and resume from it with an HTTP Range request. A leftover .tmp is overwritten.
The raw json.gz is deleted once its shards are done unless --keep-raw.

Tokenizer (--tokenizer):
  t5-base (default)    transformers' AutoTokenizer.from_pretrained("t5-base") (downloads from
                       the HF hub or uses its cache): the official tokenizer, bit for bit. Any HF
                       name or local HF folder works the same way.
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
Dev-only check against sentencepiece (and HF's official call, if transformers is installed):
  python dev/data/c4.py --selftest-spm dev/data/tinytext/tokenizer.model
"""
import argparse
import array
import glob
import gzip
import json
import multiprocessing as mp
import os
import struct
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
URL = "https://huggingface.co/datasets/allenai/c4/resolve/main/en/c4-{split}.{i:05d}-of-{n:05d}.json.gz"
NUM_FILES = {"train": 1024, "validation": 8}
MAGIC_U16, VERSION_U16 = 20240520, 1
MAGIC_U32, VERSION_U32 = 20240801, 7
LAYOUT_PACKED, LAYOUT_PAPER = 0, 1
PARTS_PER_FILE = 100  # k = 100 * input file + part
ENCODE_BATCH = 1000   # documents per tokenizer call


class C4Error(Exception):
    """a user-facing error; an Exception (not SystemExit) so that it crosses the worker pool"""


# ----------------------------------------------------------------------------------------------
# tokenizers: encode(texts) -> list of id lists WITHOUT special tokens; eos_id, pad_id, unk_id,
# vocab_size (all ids the tokenizer can emit); write_bin(path) for decoding in C

class BytesTokenizer:
    """test-only: id = UTF-8 byte + 3; 0 pad, 1 eos, 2 unk"""
    name = "bytes"
    eos_id, pad_id, unk_id, vocab_size = 1, 0, 2, 259

    def encode(self, texts):
        return [[b + 3 for b in t.encode("utf-8")] for t in texts]

    def write_bin(self, path):
        # tokenizer.h format: control pieces for pad/eos, unknown for unk, byte pieces <0xHH>
        pieces = [(1, b"<pad>"), (1, b"</s>"), (3, b"<unk>")]
        pieces += [(2, ("<0x%02X>" % b).encode()) for b in range(256)]
        header = [0] * 256
        header[0:7] = [20241124, 1, len(pieces), -1, self.eos_id, self.pad_id, self.unk_id]
        body = b"".join(struct.pack("<BB", t, len(p)) + p for t, p in pieces)
        _write_atomic(path, struct.pack("<256i", *header) + body)


class SentencePieceTokenizer:
    def __init__(self, model_path, pad_id=None):
        try:
            import sentencepiece as spm
        except ImportError:
            raise C4Error(f"--tokenizer {model_path} needs the sentencepiece package; hint: pip install sentencepiece")
        self.model_path = model_path
        self.name = "sentencepiece:" + os.path.basename(model_path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=model_path)
        except (OSError, RuntimeError) as e:
            raise C4Error(f"--tokenizer {model_path}: not a SentencePiece model ({_first_line(e)})")
        self.eos_id, self.unk_id = self.sp.eos_id(), self.sp.unk_id()
        self.pad_id = self.sp.pad_id() if pad_id is None else pad_id
        self.vocab_size = self.sp.get_piece_size()
        if self.eos_id < 0:
            raise C4Error(f"{model_path}: the model has no eos id; hint: use a model with </s>")

    def encode(self, texts):
        return self.sp.encode(list(texts))

    def write_bin(self, path):
        sys.path.insert(0, HERE)
        from export_tokenizer import export
        export(self.model_path, path + ".tmp")
        os.replace(path + ".tmp", path)


class HFTokenizer:
    def __init__(self, name, pad_id=None):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise C4Error(f"--tokenizer {name} needs the transformers package; hint: pip install "
                             "transformers sentencepiece, or pass a local spiece.model (t5-base's SentencePiece "
                             "model) as --tokenizer PATH.model")
        self.hf_name = name
        self.name = "hf:" + name
        try:
            self.tok = AutoTokenizer.from_pretrained(name)
        except Exception as e:  # offline, unknown name, no sentencepiece/tokenizers backend: many types
            raise C4Error(f"--tokenizer {name}: cannot load it from the HF hub or its cache ({_first_line(e)}); hint: check the "
                          "network (or HF_HUB_OFFLINE=1 with a filled cache), or pass a local spiece.model as --tokenizer PATH.model")
        self.eos_id, self.unk_id = self.tok.eos_token_id, self.tok.unk_token_id
        self.pad_id = self.tok.pad_token_id if pad_id is None else pad_id
        self.vocab_size = len(self.tok)
        if self.eos_id is None:
            raise C4Error(f"tokenizer {name} has no eos token")

    def encode(self, texts):
        # the same ids as the official tokenizer(text, ...) minus the appended eos: HF truncates
        # these ids and then adds the eos (checked by --selftest-spm when transformers is there)
        return self.tok(list(texts), add_special_tokens=False)["input_ids"]

    def write_bin(self, path):
        # the SentencePiece model behind the HF tokenizer: in its folder or on the hub
        model = getattr(self.tok, "vocab_file", None)
        if not model or not os.path.exists(model):
            try:
                from huggingface_hub import hf_hub_download
                model = hf_hub_download(self.hf_name, "spiece.model")
            except Exception as e:  # no spiece.model: decoding in C is optional
                print(f"note: no SentencePiece model for {self.hf_name} ({e}); tokenizer.bin not written")
                return
        SentencePieceTokenizer(model).write_bin(path)


def _first_line(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def load_tokenizer(spec, pad_id=None):
    if spec == "bytes":
        t = BytesTokenizer()
        if pad_id is not None:
            t.pad_id = pad_id
        return t
    if spec.endswith(".model"):
        if not os.path.isfile(spec):
            raise C4Error(f"--tokenizer {spec}: no such file (a SentencePiece .model is read from disk, not from the hub)")
        return SentencePieceTokenizer(spec, pad_id)
    if (os.sep in spec or spec.startswith(".")) and not os.path.exists(spec) and spec.count("/") != 1:
        raise C4Error(f"--tokenizer {spec}: no such file or folder")
    return HFTokenizer(spec, pad_id)


# ----------------------------------------------------------------------------------------------
# rows and shards

def paper_row(ids, R, eos, pad):
    """one document -> exactly R ids: ids + [eos] truncated to R keeping eos last, right-padded"""
    if len(ids) >= R:
        return list(ids[:R - 1]) + [eos]
    return list(ids) + [eos] + [pad] * (R - 1 - len(ids))


def _write_atomic(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def write_shard(path, tokens, width, layout, R, pad):
    """tokens: array of token ids -> NAME.tmp, fsync, rename to NAME"""
    header = [0] * 256
    header[0:2] = [MAGIC_U16, VERSION_U16] if width == 2 else [MAGIC_U32, VERSION_U32]
    header[2], header[3] = len(tokens), layout
    if layout == LAYOUT_PAPER:
        header[4], header[5] = R, pad
    body = array.array("H" if width == 2 else "I", tokens)
    if body.itemsize != width:
        raise C4Error(f"array typecode gives {body.itemsize}-byte items, not {width}")
    if sys.byteorder == "big":
        body.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:  # "wb" truncates a .tmp left by a crashed run
        f.write(struct.pack("<256i", *header))
        body.tofile(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def open_text(path):
    """a JSON-lines file, gzipped or not (told by the gzip magic bytes, whatever its name)"""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, "rt", encoding="utf-8")


def read_docs(path):
    """texts of one JSON-lines file (C4's json.gz, or any .jsonl with "text"), in order"""
    with open_text(path) as f:
        for n, line in enumerate(f):
            if line.strip():
                try:
                    yield json.loads(line)["text"]
                except (ValueError, KeyError) as e:
                    raise C4Error(f"{path}: line {n + 1} is not a JSON object with \"text\" ({e}); "
                                     "hint: the file is corrupt or not JSON lines")


def download(url, dest):
    """url -> dest, resuming from dest.part; the final name appears only when complete"""
    if os.path.exists(dest):
        return
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                mode = "ab" if have and r.status == 206 else "wb"  # 200: server ignored the range
                with open(part, mode) as f:
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        f.write(chunk)
            os.replace(part, dest)
            return
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range past the end: the .part is already whole
                os.replace(part, dest)
                return
            err = e
        except (urllib.error.URLError, OSError) as e:
            err = e
        time.sleep(2 ** attempt)
        have = os.path.getsize(part) if os.path.exists(part) else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    raise C4Error(f"download of {url} failed: {err}; hint: check the network and rerun (it resumes)")


# ----------------------------------------------------------------------------------------------
# one input file -> its shards (runs in a worker process)

_TOK = None


def _worker_init(spec, pad_id):
    global _TOK
    _TOK = load_tokenizer(spec, pad_id)


def settings_of(args, tok):
    return {"split": args.split, "layout": args.layout, "seq": args.seq if args.layout == "paper" else 0,
            "tokenizer": tok.name, "eos": tok.eos_id, "pad": tok.pad_id, "model_vocab": args.model_vocab,
            "shard_tokens": args.shard_tokens}


def shard_name(split, i, part):
    return f"c4_{split}_{PARTS_PER_FILE * i + part:06d}.bin"


def process_file(job):
    i, src, url, args = job
    tok = _TOK
    t0 = time.time()
    settings = settings_of(args, tok)
    done_path = os.path.join(args.out, f"c4_{args.split}_{i:05d}.done")
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        if done.get("settings") != settings:
            raise C4Error(f"{done_path} was made with other settings {done.get('settings')} "
                             f"(now {settings}); hint: use another --out or delete that folder")
        if all(os.path.exists(os.path.join(args.out, s)) for s in done["shards"]):
            return dict(done, skipped=True, seconds=0.0)
        os.remove(done_path)
    if url is not None:
        download(url, src)
    paper = args.layout == "paper"
    R, eos, pad, unk = args.seq, tok.eos_id, tok.pad_id, tok.unk_id
    width = 2 if tok.vocab_size <= 65536 else 4
    cap = (args.shard_tokens // R) * R if paper else args.shard_tokens
    if cap < 1:
        raise C4Error(f"--shard-tokens {args.shard_tokens} is smaller than one row of {R}")
    shards, written, buf = [], [], array.array("I")
    stats = {"docs": 0, "tokens": 0, "real_tokens": 0, "truncated": 0, "remapped": 0}

    def flush(final):
        nonlocal buf
        while len(buf) >= cap or (final and len(buf)):
            part = len(shards)
            if part >= PARTS_PER_FILE:
                raise C4Error(f"{src} needs more than {PARTS_PER_FILE} shards of {cap} tokens; "
                                 "hint: raise --shard-tokens")
            name = shard_name(args.split, i, part)
            path = os.path.join(args.out, name)
            if not os.path.exists(path):  # finished shards of a half-done file are kept as they are
                write_shard(path, buf[:cap], width, LAYOUT_PAPER if paper else LAYOUT_PACKED, R, pad)
                written.append(name)
            shards.append(name)
            buf = buf[cap:]

    def add(texts):
        for ids in tok.encode(texts):
            if any(t >= args.model_vocab for t in ids):
                stats["remapped"] += sum(t >= args.model_vocab for t in ids)
                ids = [unk if t >= args.model_vocab else t for t in ids]
            stats["docs"] += 1
            if paper:
                stats["truncated"] += len(ids) >= R
                row = paper_row(ids, R, eos, pad)
                stats["real_tokens"] += min(len(ids) + 1, R)
            else:
                row = list(ids) + [eos]
                stats["real_tokens"] += len(row)
            buf.extend(row)
            stats["tokens"] += len(row)
        flush(False)

    batch = []
    try:
        for text in read_docs(src):
            batch.append(text)
            if len(batch) == ENCODE_BATCH:
                add(batch)
                batch = []
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise C4Error(f"{src}: cannot read: {e}; hint: the file is corrupt or cut short, delete it and rerun")
    if batch:
        add(batch)
    flush(True)
    result = {"input": os.path.basename(src), "shards": shards, "written": written, "settings": settings,
              **stats}
    _write_atomic(done_path, json.dumps({k: v for k, v in result.items() if k != "written"}, indent=1).encode())
    if url is not None and not args.keep_raw:
        os.remove(src)
    result["skipped"] = False
    result["seconds"] = time.time() - t0
    return result


# ----------------------------------------------------------------------------------------------

def count(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else str(n)


def progress(results, total):
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    bar = tqdm(total=total, unit="file") if tqdm else None
    for n, r in enumerate(results, 1):
        what = "already done" if r["skipped"] else (
            f"{r['docs']} docs, {count(r['tokens'])} tokens ({count(r['real_tokens'])} not pad), "
            f"wrote {len(r['written'])}/{len(r['shards'])} shards, {r['seconds']:.1f}s")
        if bar:
            bar.set_postfix_str(f"{r['input']}: {what}", refresh=False)
            bar.update(1)
        else:
            print(f"[{n}/{total}] {r['input']}: {what}", flush=True)
        yield r
    if bar:
        bar.close()


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
    if args.seq < 2:
        raise C4Error(f"--seq {args.seq} must be >= 2")
    tok = load_tokenizer(args.tokenizer, args.pad_id)  # fail early, in the main process
    if args.layout == "paper" and (tok.pad_id is None or tok.pad_id < 0):
        raise C4Error(f"tokenizer {tok.name} has no pad id; hint: pass --pad-id")
    if tok.pad_id is not None and tok.pad_id >= args.model_vocab:
        raise C4Error(f"pad id {tok.pad_id} >= --model-vocab {args.model_vocab}")
    os.makedirs(args.out, exist_ok=True)
    if args.input and args.input_dir:
        raise C4Error("pass --input or --input-dir, not both")
    if args.input:
        files = []
        for pat in args.input:
            got = sorted(glob.glob(pat)) if glob.has_magic(pat) else ([pat] if os.path.isfile(pat) else [])
            if not got:
                raise C4Error(f"--input {pat}: no such file" + (" (the glob matches nothing)" if glob.has_magic(pat) else ""))
            files += [f for f in got if f not in files]
        files.sort()
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
        raw = args.download_dir or os.path.join(args.out, "raw")
        os.makedirs(raw, exist_ok=True)
        jobs = []
        for i in range(n):
            name = f"c4-{args.split}.{i:05d}-of-{total:05d}.json.gz"
            jobs.append((i, os.path.join(raw, name), URL.format(split=args.split, i=i, n=total), args))
    bin_path = os.path.join(args.out, "tokenizer.bin")
    if not os.path.exists(bin_path):
        tok.write_bin(bin_path)
    print(f"c4 {args.split}: {n} input files -> {args.out} | layout {args.layout}"
          + (f" R {args.seq}" if args.layout == "paper" else "")
          + f" | tokenizer {tok.name} (vocab {tok.vocab_size}, eos {tok.eos_id}, pad {tok.pad_id})"
          + f" | {args.workers} workers", flush=True)
    workers = max(1, min(args.workers, n))
    if workers == 1:
        _worker_init(args.tokenizer, args.pad_id)
        results = list(progress(map(process_file, jobs), n))
    else:
        with mp.get_context("spawn").Pool(workers, _worker_init, (args.tokenizer, args.pad_id)) as pool:
            results = list(progress(pool.imap_unordered(process_file, jobs), n))
    docs = sum(r["docs"] for r in results)
    toks = sum(r["tokens"] for r in results)
    real = sum(r["real_tokens"] for r in results)
    shards = sum(len(r["shards"]) for r in results)
    remapped = sum(r.get("remapped", 0) for r in results)
    print(f"done: {docs} documents, {toks} tokens ({real} not pad), {shards} shards"
          + (f", {sum(r.get('truncated', 0) for r in results)} documents truncated to {args.seq}"
             if args.layout == "paper" else "")
          + (f", {remapped} ids >= {args.model_vocab} mapped to unk" if remapped else ""))
    return results


# ----------------------------------------------------------------------------------------------
# dev-only: the pipeline against sentencepiece directly, and HF's official call

def read_shard(path):
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack_from("<256i", data)
    width = 2 if header[0] == MAGIC_U16 else 4
    body = array.array("H" if width == 2 else "I")
    body.frombytes(data[1024:])
    if sys.byteorder == "big":
        body.byteswap()
    assert len(body) == header[2], path
    return header, list(body)


def selftest_spm(model):
    import tempfile
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
