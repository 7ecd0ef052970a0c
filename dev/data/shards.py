"""
Token shards for galore.c from text: the code that dev/data/c4.py (C4, as the paper) and
dev/data/prepare.py (any JSONL or text corpus, any Hugging Face tokenizer) share. The layouts,
names and resumability are described in c4.py's docstring and dev/data/README.md.
"""
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
MAGIC_U16, VERSION_U16 = 20240520, 1
MAGIC_U32, VERSION_U32 = 20240801, 7
LAYOUT_PACKED, LAYOUT_PAPER = 0, 1
PARTS_PER_FILE = 100  # k = 100 * input file + part
ENCODE_BATCH = 1000   # documents per tokenizer call


class DataError(Exception):
    """a user-facing error; an Exception (not SystemExit) so that it crosses the worker pool"""


C4Error = DataError  # c4.py's name for it


# ----------------------------------------------------------------------------------------------
# tokenizers: encode(texts) -> list of id lists WITHOUT special tokens; eos_id, pad_id, unk_id,
# vocab_size (all ids the tokenizer can emit); bos (ids put before each document: [] or [bos]);
# c_file and write_c(path): the file tokenizer.h reads to decode samples and encode --prompt

class BytesTokenizer:
    """test-only: id = UTF-8 byte + 3; 0 pad, 1 eos, 2 unk"""
    name = "bytes"
    eos_id, pad_id, unk_id, vocab_size = 1, 0, 2, 259
    bos = []
    c_file = "tokenizer.bin"

    def encode(self, texts):
        return [[b + 3 for b in t.encode("utf-8")] for t in texts]

    def write_c(self, path):
        # tokenizer.h format version 2: control pieces for pad/eos, unknown for unk, byte pieces
        # <0xHH>; a BPE model without normal pieces and with byte fallback, no dummy prefix and
        # no space escaping, so that tokenizer.h encodes every byte to its <0xHH> piece, as here
        pieces = [(1, b"<pad>"), (1, b"</s>"), (3, b"<unk>")]
        pieces += [(2, ("<0x%02X>" % b).encode()) for b in range(256)]
        header = [0] * 256
        header[0:10] = [20241124, 2, len(pieces), -1, self.eos_id, self.pad_id, self.unk_id, 2, 8, 0]
        body = b"".join(struct.pack("<BBf", t, len(p), 0.0) + p for t, p in pieces)
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
        self.bos = []  # sp.encode adds none (T5 has none; the shards of c4.py hold no bos)
        self.c_file = "tokenizer.bin"

    def encode(self, texts):
        return self.sp.encode(list(texts))

    def write_c(self, path):
        sys.path.insert(0, HERE)
        from export_tokenizer import export
        export(self.model_path, path + ".tmp")
        os.replace(path + ".tmp", path)
        # the model itself beside it, as tokenizer.model: a run's saved folders carry it, and
        # transformers' AutoTokenizer reads it there
        copy_companions(self.model_path, os.path.dirname(os.path.abspath(path)), model=True)


class HFTokenizer:
    def __init__(self, name, pad_id=None):
        # transformers' own notices (e.g. "PyTorch was not found", which only tokenizers need
        # here) would bury this script's one-line errors; the user's setting wins
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
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
        self.bos = []  # as the official GaLore call: T5 adds none
        self.c_file = "tokenizer.bin"

    def encode(self, texts):
        # the same ids as the official tokenizer(text, ...) minus the appended eos: HF truncates
        # these ids and then adds the eos (checked by --selftest-spm when transformers is there)
        return self.tok(list(texts), add_special_tokens=False)["input_ids"]

    def write_c(self, path):
        # the SentencePiece model behind the HF tokenizer: in its folder or on the hub
        model = getattr(self.tok, "vocab_file", None)
        if not model or not os.path.exists(model):
            try:
                from huggingface_hub import hf_hub_download
                model = hf_hub_download(self.hf_name, "spiece.model")
            except Exception as e:  # no spiece.model: decoding in C is optional
                print(f"note: no SentencePiece model for {self.hf_name} ({e}); tokenizer.bin not written")
                return
        SentencePieceTokenizer(model).write_c(path)


def copy_companions(src, out, model):
    """the Hugging Face files beside tokenizer file SRC (tokenizer_config.json,
    special_tokens_map.json) into folder OUT, and with model=True SRC itself as tokenizer.model:
    train_llama copies them into every model folder it saves, so that transformers opens it"""
    import shutil
    folder = os.path.dirname(os.path.abspath(src))
    names = [(os.path.basename(src), "tokenizer.model")] if model else []
    names += [(n, n) for n in ("tokenizer_config.json", "special_tokens_map.json")]
    for a, b in names:
        s, d = os.path.join(folder, a), os.path.join(out, b)
        if os.path.isfile(s) and os.path.abspath(s) != os.path.abspath(d):
            shutil.copyfile(s, d + ".tmp")
            os.replace(d + ".tmp", d)


def _hf_special(folder, key):
    """the token text of tokenizer_config.json's / special_tokens_map.json's KEY ("eos_token"...)"""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            try:
                with open(p, encoding="utf-8") as f:
                    v = json.load(f).get(key)
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                return v
    return None


class TokenizersTokenizer:
    """a Hugging Face tokenizer.json, read by the `tokenizers` package (no transformers): the
    fast tokenizer transformers itself runs. eos/pad/unk from the folder's tokenizer_config.json
    or special_tokens_map.json, else the usual names; bos: what the post-processor puts before
    a text (Llama's <s> / <|begin_of_text|>), as tokenizer(text) does"""

    def __init__(self, path, pad_id=None):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise C4Error(f"--tokenizer {path} needs the tokenizers package; hint: pip install tokenizers")
        self.path = path
        self.name = "tokenizers:" + os.path.basename(os.path.dirname(os.path.abspath(path))) + "/" + os.path.basename(path)
        try:
            self.tok = Tokenizer.from_file(path)
        except Exception as e:  # tokenizers raises its own Exception type
            raise C4Error(f"--tokenizer {path}: not a Hugging Face tokenizer.json ({_first_line(e)})")
        folder = os.path.dirname(os.path.abspath(path))

        def find(key, names):
            text = _hf_special(folder, key)
            for t in ([text] if text else []) + names:
                i = self.tok.token_to_id(t)
                if i is not None:
                    return i
            return None
        self.eos_id = find("eos_token", ["</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"])
        self.unk_id = find("unk_token", ["<unk>"])
        self.pad_id = find("pad_token", []) if pad_id is None else pad_id
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        if self.eos_id is None:
            raise C4Error(f"--tokenizer {path}: no eos token (none named in tokenizer_config.json, and no </s>, "
                          "<|end_of_text|> or <|endoftext|>); hint: pass a folder with its tokenizer_config.json")
        self.bos = self.tok.encode("", add_special_tokens=True).ids
        self.c_file = "tokenizer.json"

    def encode(self, texts):
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def write_c(self, path):
        import shutil
        shutil.copyfile(self.path, path + ".tmp")
        os.replace(path + ".tmp", path)
        copy_companions(self.path, os.path.dirname(os.path.abspath(path)), model=False)


def _first_line(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def load_tokenizer(spec, pad_id=None):
    """bytes | PATH.model | PATH.json | a folder with tokenizer.json or tokenizer.model (or
    spiece.model) | an HF hub name (transformers)"""
    if os.path.isdir(spec):
        for name, cls in (("tokenizer.json", TokenizersTokenizer), ("tokenizer.model", SentencePieceTokenizer),
                          ("spiece.model", SentencePieceTokenizer)):
            if os.path.isfile(os.path.join(spec, name)):
                return cls(os.path.join(spec, name), pad_id)
        raise C4Error(f"--tokenizer {spec}: a folder without tokenizer.json, tokenizer.model or spiece.model")
    if spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise C4Error(f"--tokenizer {spec}: no such file")
        return TokenizersTokenizer(spec, pad_id)
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


def read_docs(path, field="text", text_docs=None):
    """documents of one file, in order: JSON lines (C4's json.gz, any .jsonl: the FIELD of each
    object), or, with text_docs set, plain text: "line" (each non-blank line a document),
    "paragraph" (blank lines separate documents) or "file" (the whole file)"""
    with open_text(path) as f:
        if text_docs is None:
            for n, line in enumerate(f):
                if line.strip():
                    try:
                        yield json.loads(line)[field]
                    except (ValueError, KeyError, TypeError, IndexError) as e:
                        raise C4Error(f"{path}: line {n + 1} is not a JSON object with \"{field}\" ({type(e).__name__}: {e}); "
                                      "hint: the file is corrupt or not JSON lines" + ("" if field != "text" else ", or pass --field NAME"))
        elif text_docs == "line":
            for line in f:
                if line.strip():
                    yield line.rstrip("\r\n")
        elif text_docs == "paragraph":
            cur = []
            for line in f:
                if line.strip():
                    cur.append(line.rstrip("\r\n"))
                elif cur:
                    yield "\n".join(cur)
                    cur = []
            if cur:
                yield "\n".join(cur)
        else:
            text = f.read()
            if text.strip():
                yield text


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
    # (the shard prefix is in the file names, not here: .done files of older runs stay valid)
    return {"split": args.split, "layout": args.layout, "seq": args.seq if args.layout == "paper" else 0,
            "tokenizer": tok.name, "eos": tok.eos_id, "pad": tok.pad_id, "model_vocab": args.model_vocab,
            "shard_tokens": args.shard_tokens}


def shard_name(prefix, split, i, part):
    return f"{prefix}_{split}_{PARTS_PER_FILE * i + part:06d}.bin"


def process_file(job):
    i, src, url, args = job
    tok = _TOK
    t0 = time.time()
    settings = settings_of(args, tok)
    done_path = os.path.join(args.out, f"{args.prefix}_{args.split}_{i:05d}.done")
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
            name = shard_name(args.prefix, args.split, i, part)
            path = os.path.join(args.out, name)
            if not os.path.exists(path):  # finished shards of a half-done file are kept as they are
                write_shard(path, buf[:cap], width, LAYOUT_PAPER if paper else LAYOUT_PACKED, R, pad)
                written.append(name)
            shards.append(name)
            buf = buf[cap:]

    def add(texts):
        bos = getattr(args, "bos_ids", tok.bos)  # prepare.py --bos decides; else the tokenizer's
        for ids in tok.encode(texts):
            if bos:
                ids = list(bos) + list(ids)
            if any(t >= args.model_vocab for t in ids):
                if unk is None or unk < 0:
                    raise C4Error(f"{src}: ids >= --model-vocab {args.model_vocab} and the tokenizer has no unk id to map them to; "
                                  "hint: pass the model's vocabulary size as --model-vocab")
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
        for text in read_docs(src, getattr(args, "field", "text"), getattr(args, "text_docs", None)):
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
    try:  # a bar on a terminal; one line per file in a log (and in the tests, tqdm or not)
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if not sys.stderr.isatty():
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


def run_jobs(args, tok, jobs):
    """process the jobs (one per input file) on --workers processes, print the summary"""
    n = len(jobs)
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


def check_common(args, tok):
    """the checks of c4.py and prepare.py before any work; then OUT and the tokenizer file for C"""
    if args.seq < 2:
        raise C4Error(f"--seq {args.seq} must be >= 2")
    if args.layout == "paper" and (tok.pad_id is None or tok.pad_id < 0):
        raise C4Error(f"tokenizer {tok.name} has no pad id; hint: pass --pad-id (or --layout packed)")
    if tok.pad_id is not None and tok.pad_id >= args.model_vocab:
        raise C4Error(f"pad id {tok.pad_id} >= --model-vocab {args.model_vocab}")
    os.makedirs(args.out, exist_ok=True)
    c_path = os.path.join(args.out, tok.c_file)
    if not os.path.exists(c_path):
        tok.write_c(c_path)


def expand_inputs(patterns):
    """--input names and globs -> sorted unique files; one line for a name that matches nothing"""
    files = []
    for pat in patterns:
        got = sorted(glob.glob(pat)) if glob.has_magic(pat) else ([pat] if os.path.isfile(pat) else [])
        if not got:
            raise C4Error(f"--input {pat}: no such file" + (" (the glob matches nothing)" if glob.has_magic(pat) else ""))
        files += [f for f in got if f not in files]
    return sorted(files)


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

