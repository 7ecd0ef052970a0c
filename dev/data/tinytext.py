"""
Build the small embedded default dataset dev/data/tinytext/ (the six novels of Jane Austen).

Source: Debian package r-cran-janeaustenr (1.0.0-1 in bookworm, section gnu-r, license MIT for
the package; the novels themselves are public-domain Project Gutenberg texts). The package keeps
the texts as R lazy-load data (data/Rdata.rdx + data/Rdata.rdb: zlib-compressed R serialization),
which this script reads with a tiny R-unserializer below, so R itself is not needed.

Getting the text (done by this script unless --deb is given):
    apt-get update && cd $(mktemp -d) && apt-get download r-cran-janeaustenr
    dpkg-deb -x r-cran-janeaustenr_*_all.deb x
    # -> x/usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}

Then (deterministic: same inputs give byte-identical outputs):
  1. clean: drop Gutenberg italics underscores, unwrap lines into paragraphs, split each novel
     into chapters (the front matter goes with chapter 1); a chapter is one document whose
     paragraphs are joined by "\n"
  2. split documents: every 20th (index % 20 == 10) goes to val (~5%), the rest to train
  3. train a SentencePiece BPE model on the train paragraphs (vocab 4096, byte_fallback,
     <unk>=0 <s>=1 </s>=2, no pad, identity normalization like LLaMA, num_threads 1;
     character_coverage 1.0, not 0.9995: on a 4 MB corpus 0.9995 drops the digits and the
     capitals Q U V X Z to byte fallback)
  4. save tokenizer.model, export tokenizer.bin (dev/data/export_tokenizer.py)
  5. encode each document as its ids followed by eos (2) as separator (packed layout) and write
     train_000.bin / val_000.bin: llm.c shard layout, magic 20240520, version 1, uint16 tokens

Usage: python dev/data/tinytext.py [--deb r-cran-janeaustenr_1.0.0-1_all.deb]
"""
import argparse
import glob
import gzip
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "tinytext")
PKG = "r-cran-janeaustenr"
DATA_SUBDIR = "usr/lib/R/site-library/janeaustenr/data"
VOCAB_SIZE = 4096
EOS_ID = 2


# ----------------------------------------------------------------------------------------------
# minimal R unserializer (XDR format "X\n", versions 2 and 3): enough for lists of vectors

class RReader:
    def __init__(self, buf):
        self.b, self.p, self.refs = buf, 0, []

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) | lo
        return n

    def top(self):
        if self.b[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.p = 2
        version = self.int()
        self.int(); self.int()  # writer R version, minimal reader version
        if version == 3:
            n = self.int()  # native encoding name
            self.p += n
        return self.item()

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t == 254:  # NILVALUE
            return None
        if t in (253, 252, 251, 250, 242, 241):  # environments/markers we do not need
            return ("special", t)
        if t == 255:  # REFSXP
            k = flags >> 8
            if k == 0:
                k = self.int()
            return self.refs[k - 1]
        if t == 1:  # SYMSXP
            v = ("sym", self.item())
            self.refs.append(v)
            return v
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            v = self.b[self.p:self.p + n].decode("utf-8")
            self.p += n
            return v
        if t in (2, 6, 239, 240):  # pairlists: returned as [(tag, value), ...]
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            return [(tag, car)] + (cdr if isinstance(cdr, list) else [])
        if t in (10, 13):
            n = self.length()
            v = list(struct.unpack_from(">%di" % n, self.b, self.p))
            self.p += 4 * n
        elif t == 14:
            n = self.length()
            v = list(struct.unpack_from(">%dd" % n, self.b, self.p))
            self.p += 8 * n
        elif t in (16, 19, 20):
            n = self.length()
            v = [self.item() for _ in range(n)]
        else:
            raise ValueError("unsupported R SEXP type %d" % t)
        if has_attr:
            attrs = self.item()
            names = [val for tag, val in attrs if tag == ("sym", "names")]
            if names:
                return dict(zip(names[0], v))
        return v


def read_lazyload(data_dir):
    """Rdata.rdx (gzip'd index: variables -> (offset, length) into Rdata.rdb) -> {name: value}"""
    with open(os.path.join(data_dir, "Rdata.rdx"), "rb") as f:
        index = RReader(gzip.decompress(f.read())).top()
    with open(os.path.join(data_dir, "Rdata.rdb"), "rb") as f:
        rdb = f.read()
    out = {}
    for name, (off, n) in index["variables"].items():
        blob = rdb[off:off + n]
        ulen = struct.unpack(">I", blob[:4])[0]
        raw = zlib.decompress(blob[4:])
        assert len(raw) == ulen, name
        out[name] = RReader(raw).top()
    return out


# ----------------------------------------------------------------------------------------------

def fetch_deb(tmp):
    print(f"apt-get download {PKG} (run 'apt-get update' first if this fails)")
    subprocess.run(["apt-get", "download", PKG], cwd=tmp, check=True)
    debs = sorted(glob.glob(os.path.join(tmp, f"{PKG}_*.deb")))
    if not debs:
        sys.exit(f"error: apt-get download {PKG} left no .deb in {tmp}")
    return debs[-1]


CHAPTER_RE = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\b", re.IGNORECASE)


def book_to_documents(lines):
    """lines of one novel -> list of chapter texts (paragraphs joined by newline)"""
    chapters, paras, cur = [], [], []

    def end_para():
        if cur:
            p = re.sub(r"\s+", " ", " ".join(cur)).strip()
            if p:
                paras.append(p)
            cur.clear()

    for line in lines:
        line = (line or "").replace("_", "").rstrip()
        if CHAPTER_RE.match(line) and paras and any(CHAPTER_RE.match(p) for p in paras):
            end_para()
            chapters.append(paras[:])
            paras.clear()
        if line.strip() == "":
            end_para()
        else:
            cur.append(line.strip())
    end_para()
    if paras:
        chapters.append(paras[:])
    return ["\n".join(c) for c in chapters]


def write_shard(path, tokens):
    tokens = np.asarray(tokens, dtype=np.int64)
    assert tokens.max() < 65536 and tokens.min() >= 0
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = 20240520, 1, len(tokens)  # header[3]=0: packed layout
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deb", help=f"a downloaded {PKG}_*.deb (default: apt-get download it)")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        deb = os.path.abspath(args.deb) if args.deb else fetch_deb(tmp)
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        books = read_lazyload(os.path.join(tmp, "x", DATA_SUBDIR))
    print(f"{PKG} {version}: books {sorted(books)}")

    docs = []
    for name in sorted(books):  # sorted: deterministic regardless of index order
        chapters = book_to_documents(books[name])
        docs += chapters
        print(f"  {name}: {len(chapters)} documents, {sum(len(c) for c in chapters)} chars")
    train_docs = [d for i, d in enumerate(docs) if i % 20 != 10]
    val_docs = [d for i, d in enumerate(docs) if i % 20 == 10]
    print(f"documents: {len(train_docs)} train, {len(val_docs)} val")

    # sentencepiece training reads one sentence per line: feed it the train paragraphs from an
    # iterator and take the model from memory, so no temp path gets recorded in the model's
    # trainer_spec (that made tokenizer.model differ between runs)
    model_path = os.path.join(OUT_DIR, "tokenizer.model")
    paragraphs = [p for d in train_docs for p in d.split("\n")]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(paragraphs), model_writer=model, model_type="bpe",
        vocab_size=VOCAB_SIZE, byte_fallback=True, unk_id=0, bos_id=1, eos_id=EOS_ID, pad_id=-1,
        character_coverage=1.0, num_threads=1, input_sentence_size=0,
        shuffle_input_sentence=False, max_sentence_length=1 << 16,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True,
        minloglevel=2)
    with open(model_path, "wb") as f:
        f.write(model.getvalue())

    sys.path.insert(0, HERE)
    from export_tokenizer import export
    export(model_path, os.path.join(OUT_DIR, "tokenizer.bin"))

    sp = spm.SentencePieceProcessor(model_file=model_path)
    for split, split_docs in (("train", train_docs), ("val", val_docs)):
        tokens = []
        for d in split_docs:
            ids = sp.encode(d)
            assert sp.decode(ids) == d, "round trip failed"  # identity normalization: lossless
            tokens += ids + [EOS_ID]
        path = os.path.join(OUT_DIR, f"{split}_000.bin")
        write_shard(path, tokens)
        chars = sum(len(d) for d in split_docs)
        print(f"{path}: {len(tokens)} tokens ({chars / len(tokens):.2f} chars/token)")


if __name__ == "__main__":
    main()
