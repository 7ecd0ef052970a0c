"""
Small tokenizers of every kind tokenizer.h reads, and the ids the reference libraries give for
tricky texts: the fixtures of dev/test/test_tokenizer.c (make test needs neither library).

Writes dev/test/data/tok/:
  spm_bpe.model / .bin     sentencepiece BPE, byte_fallback, nmt_nfkc-style rules in a small
                           custom charsmap (full-width letters, ligatures, odd spaces), default
                           whitespace handling (remove_extra_whitespaces), user-defined pieces
  spm_uni.model / .bin     sentencepiece unigram (T5's kind), no byte fallback (unknown
                           characters -> unk), the same small charsmap and user-defined pieces
  spm_raw.model / .bin     sentencepiece BPE, identity normalizer, spaces kept (as tinytext's)
  spm_bpe_user.model / .bin  spm_bpe with its piece "▁th" made user-defined after training
  spm_uni_user.model / .bin  spm_uni with "▁he" user-defined and "▁her" rescored to a near tie
  hf_llama3.json           tokenizers byte-level BPE as Llama 3: Split by Llama 3's regex +
                           ByteLevel, ignore_merges, <|begin_of_text|> prefix by TemplateProcessing
  hf_gpt2.json             tokenizers byte-level BPE as GPT-2 (ByteLevel with its regex)
  hf_llama2.json           tokenizers BPE as HF Llama 2 (Prepend + Replace normalizer, byte
                           fallback, fuse_unk, <s> prefix), from spm_raw's vocabulary
  hf_llama2_metaspace.json the same with transformers' newer layout (Metaspace pre-tokenizer
                           and decoder, prepend_scheme "first", no normalizer)
  hf_smollm.json           tokenizers byte-level BPE as SmolLM / SmolLM2: Digits (individual)
                           then ByteLevel with its regex; chat markers as special tokens, and a
                           plain added token
  hf_metaspace_split.json  tokenizers BPE with a Metaspace that splits at every '▁'
                           (prepend_scheme "always")
  hf_llama3_digits.json    hf_llama3.json's vocabulary with Digits (each digit alone) after the
                           Split and before ByteLevel (merges across digits exist: the split
                           matters), and a word of two spaces: "x  1" is "x", " ", " ", "1" here
                           but "x", "  ", "1" with Digits before the Split (the regex's lookahead)
  hf_digits_prefix.json    hf_gpt2.json's vocabulary with Digits (runs) before ByteLevel with
                           add_prefix_space, which puts a ' ' before every piece that Digits makes
  hf_added_flags.json      hf_llama2.json with added tokens of every flag (lstrip, rstrip,
                           single_word, normalized: matched in the normalized text, by their
                           normalized content), special and not
  hf_added_flags_bytelevel.json  the same added tokens on hf_gpt2.json (no normalizer; single_word
                           beside letters, marks, digits of other scripts, '_', ZWJ)
  hf_unigram.json          spm_uni's model as a tokenizers Unigram, as hf_folder.h writes it
  hf_t5.json               the same as transformers' T5 conversion (WhitespaceSplit + Metaspace)
  hf_unigram_words.json    the same with WhitespaceSplit alone
  cases.json               {"texts": [...], "tokenizers": [{"file", "ids": [[...]], "decoded": [...],
                           "prefix": [...]}]}: the reference ids of every text, and the library's
                           decode of those ids (skip special tokens)
Also re-exports dev/data/tinytext/tokenizer.bin (version 2) and checks it the same way.

Usage: python dev/test/make_tokenizers.py   (needs sentencepiece, tokenizers and protobuf)
"""
import json
import os
import struct
import sys
import shutil

import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(HERE, "data", "tok")
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
from export_tokenizer import T_CONTROL, T_UNKNOWN, export, read_model  # noqa: E402

TEXTS = [
    "Hello world",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune",
    "  leading and trailing spaces  ",
    "multiple   spaces\tand\ttabs",
    "line one\nline two\r\nline three\n\n\nend",
    "trailing newline\n",
    "digits 1234567890 and 3.14159, 1,000,000 and 42",
    "contractions: I'm, you're, it's, we've, they'll, I'd, DON'T, She'S, 'twas",
    "unicode: na\u00efve caf\u00e9 Stra\u00dfe fa\u00e7ade \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac "
    "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u65e5\u672c\u8a9e \u4e2d\u6587 \ud55c\uad6d\uc5b4",
    "emoji: \U0001F600\U0001F44D\U0001F3FD \U0001F1EB\U0001F1F7 \u2764\ufe0f!",
    "symbols: @#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "not in the vocabulary: \u2603 \u26a1 \U0001D518\U0001D52B\U0001D526",
    "fullwidth \uff21\uff22\uff23 \uff11\uff12\uff13 \ufb01ne",
    "odd spaces:\u00a0nbsp\u3000ideographic\u2003em \u2028sep",
    "special tokens as text: <|begin_of_text|>hi</s> <s>",
    "Mixed CASE and camelCaseWords and snake_case_words ALLCAPS",
    "tab\tnewline\n\ttab after newline \n  \n",
    " ",
    "\n",
    "a",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Mr. Darcy smiled; Elizabeth did not.",
    "aaa aaaaa ooo!",
    "1234 12345 123456 1212121",
    "IT'S DON'T WE'LL THEY'RE 'TWAS 'Twas I'LLx",
    "aaa aaaaa aaaaaaa",
    "'TWAS the night",
    "unreachable by merges: zzqx",
    "<|im_start|>user\nWhat is 12+30?<|im_end|>\n<|im_start|>assistant\n42, 0.5 and 1e-3<|im_end|>",
    "digits of other scripts: \u0663\u0664\u0665 \u096a\u096b \u00b2\u00b3 \u00bd \u216b 2024-12-07",
    "   \n\t  multiple\n\n\n   blank   lines   \u00a0 ",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u4f60\u597d\uff0c\u4e16\u754c\uff01 caf\u00e9s 3\u00d74=12",
    "Der schnelle braune Fuchs springt \u00fcber den faulen Hund. \u00c7a va? \u00bfQu\u00e9 tal? \u00dcn\u00efc\u00f6d\u00e9",
    "\u6771\u4eac\u90fd\u6e0b\u8c37\u533a 2024\u5e7412\u67087\u65e5 \uff21\uff22\uff23\uff11\uff12\uff13 \uff76\uff80\uff76\uff85 \u337b \u2460 \u3231",
    "1 22 333 4444 55555 666666 7777777 0.001 -42 +3e10 1,234,567.89 \u0661\u0662\u0663",
    "  \t\n  a  \t b \u3000 c\u00a0\u00a0d \u200b e\u2009f  ",
    "total:   1234   and  56\t\t78\n 9 x  0",
    "\u1f48\u03b4\u03c5\u03c3\u03c3\u03b5\u03cd\u03c2 \ufb01\ufb02 \u01c4 \u01c5 \u01c6 \u212b \u00c5 \u212a \u210c \u00bd \u00b2 x\u0301 e\u0301",
    "\U0001F468\u200D\U0001F469\u200D\U0001F467 \u0915\u094d\u0937 \u0e01\u0e33 \uac00\u11a8 \u1100\u1161 \u03a9\u0301 \u03a9\u0301\u0301 \u03a9 \u00a9\u200d\u00a9",
    # the added tokens' flags (ADDED below)
    "flags: a <mask> b<mask>c \t<mask>\t d  <L>  x  <R>  y <L><R> <mask><mask> end<mask>  <R>\u3000\u2003z\u00a0<L>",
    "[SW] a[SW] [SW]b _[SW] [SW]_ \u00b2[SW] \u24b6[SW] [SW]\u24b6 x\u0301[SW] \u00e9[SW] -[SW]- 1[SW] \u0663[SW] [SW]\u200d [SW][SW] \u2164[SW]",
    "hello hellohello say hello, foo bar foo  bar foobar cat cats concat cat. dog dogs hotdog dog_ dog's",
    "<mask>hello<R>   foo bar<L>cat\u3000<mask>\u3000dog [SW]<mask>[SW] hello<mask>hello",
    "<sep>ab12<sep> cabbage \uff21\uff22\uff21\uff22\uff23 AB 1212 x<sep>y abab her the there",
]

# a small charsmap: sentencepiece's rule TSV (source code points -> target code points)
# (and keys of more than one character, where tokenizers' Precompiled, grapheme by grapheme,
# differs: e + U+0301 is one grapheme of 3 bytes, composed; two Hangul jamo are one of 6 bytes,
# which it takes character by character, not "ka"; CR LF is one grapheme that starts with the key
# CR, all of it replaced by CR's replacement; Ω + U+0301 starts with the key Ω: the shortest key
# wins, "o", not "O"; Ω + two U+0301 is 6 bytes: character by character; © ZWJ © is one
# grapheme of 7 bytes, character by character, where © ZWJ alone would lose its ZWJ)
RULES = [("FF21", "41"), ("FF22", "42"), ("FF23", "43"), ("FF11", "31"), ("FF12", "32"), ("FF13", "33"),
         ("FB01", "66 69"), ("A0", "20"), ("3000", "20"), ("2003", "20"), ("9", "20"), ("2028", "20"),
         ("65 301", "E9"), ("1100 1161", "6B 61"), ("D", "20"), ("3A9", "6F"), ("3A9 301", "4F"), ("A9", "63")]


def corpus():
    """some Austen from the tinytext validation shard, and the texts"""
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "dev/data/tinytext/tokenizer.model"))
    with open(os.path.join(ROOT, "dev/data/tinytext/val_000.bin"), "rb") as f:
        data = f.read()
    n = struct.unpack_from("<256i", data)[2]
    ids = list(struct.unpack_from(f"<{n}H", data, 1024))[:20000]
    docs, cur = [], []
    for i in ids:
        if i == 2:
            docs.append(sp.decode(cur))
            cur = []
        else:
            cur.append(i)
    docs.append(sp.decode(cur))
    lines = [l for d in docs for l in d.split("\n") if l.strip()]
    # digit runs and upper-case contractions, so that merges exist across the splits that the
    # regexes make (a 3-digit limit, case-insensitive 'S) and the tests see them
    extra = ["12 34 1234 123 1212 3434"] * 20 + ["IT'S DON'T WE'LL THEY'RE 'S 'T"] * 20 + ["aa aaaa"] * 20 + ["TWAS TWAS LLx"] * 40
    return lines + TEXTS[:10] * 3 + extra


def train_spm(tmp, name, model_type, vocab, byte_fallback, rules, extra):
    # (the .model records the input's and rules' paths: fixed ones keep it the same on a rerun)
    text = os.path.join(tmp, "corpus.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus()) + "\n")
    kw = dict(input=text, model_prefix=os.path.join(OUT, name), model_type=model_type, vocab_size=vocab,
              byte_fallback=byte_fallback, character_coverage=0.995, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
              num_threads=1, minloglevel=2, **extra)
    if rules:
        tsv = os.path.join(tmp, "rules.tsv")
        with open(tsv, "w") as f:
            f.write("".join(f"{a}\t{b}\n" for a, b in rules))
        kw["normalization_rule_tsv"] = tsv
    spm.SentencePieceTrainer.train(**kw)
    os.remove(os.path.join(OUT, name + ".vocab"))
    export(os.path.join(OUT, name + ".model"), os.path.join(OUT, name + ".bin"))


def edit_user_defined(src, name, piece, rival=None):
    """a trained model with one of its pieces made user-defined afterwards (as people add symbols
    to Llama's tokenizer.model): BPE takes it whole and never merges it ("▁th" "e", not "▁the");
    unigram scores it 0 in sentencepiece 0.2 (0.1.97: -0.1), which the rival piece (the piece and
    one more character), rescored 0.05 under that character's piece, tells: "▁he" then "r" (0.1.97:
    "▁her")"""
    from sentencepiece import sentencepiece_model_pb2 as pb  # (needs protobuf)
    m = pb.ModelProto()
    with open(src, "rb") as f:
        m.ParseFromString(f.read())
    score = {p.piece: p.score for p in m.pieces}
    for p in m.pieces:
        if p.piece == piece:
            p.type = pb.ModelProto.SentencePiece.USER_DEFINED
        if p.piece == rival:
            p.score = score[rival[len(piece):]] - 0.05
    with open(os.path.join(OUT, name + ".model"), "wb") as f:
        f.write(m.SerializeToString())
    export(os.path.join(OUT, name + ".model"), os.path.join(OUT, name + ".bin"))


def spm_case(model, binfile):
    sp = spm.SentencePieceProcessor(model_file=model)
    ids = [sp.encode(t) for t in TEXTS]
    return {"file": binfile, "ids": ids, "decoded": [sp.decode(i) for i in ids], "prefix": []}


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_bytelevel(name, llama3):
    tok = Tokenizer(models.BPE(ignore_merges=llama3))
    if llama3:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             show_progress=False)
    tok.train_from_iterator(corpus(), tr)
    if llama3:
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    path = os.path.join(OUT, name)
    tok.save(path)
    if llama3:  # a word in the vocabulary that no merge reaches: ignore_merges makes it one token
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        j["model"]["vocab"]["\u0120zzqx"] = max(j["model"]["vocab"].values()) + 1
        with open(path, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=1)
    return path


def make_llama2(spm_model):
    """HF Llama 2's tokenizer.json layout (legacy): the vocabulary and scores of a sentencepiece
    BPE model, merges in score order, as transformers' converter makes them"""
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    # a merge for every piece that two pieces join into, ranked by the joined piece's score
    merges = []
    for piece, pid in vocab.items():
        if sp.is_control(pid) or sp.is_byte(pid) or sp.is_unknown(pid):
            continue
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab:
                merges.append((-sp.get_score(pid), pid, vocab[a], vocab[b], a, b))
    merges.sort()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(m[4], m[5]) for m in merges], unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    path = os.path.join(OUT, "hf_llama2.json")
    tok.save(path)
    # the newer layout (transformers' legacy=False conversion): no normalizer, a Metaspace
    # pre-tokenizer that puts '▁' before the first segment only; here with a Metaspace decoder
    # (no ByteFallback: <0xHH> pieces decode as their text)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.save(os.path.join(OUT, "hf_llama2_metaspace.json"))
    return path


def train_bpe(pre, dec, specials, **model):
    tok = Tokenizer(models.BPE(**model))
    tok.pre_tokenizer, tok.decoder = pre, dec
    alphabet = pre_tokenizers.ByteLevel.alphabet() if isinstance(dec, decoders.ByteLevel) else []
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=alphabet, show_progress=False))
    return tok


def train_smollm(name):
    """SmolLM / SmolLM2's layout: Digits (each digit alone) then ByteLevel with the GPT-2 regex, no
    bos; the chat markers as special added tokens, one plain added token (matched in text as
    well). Trained without Digits, so that merges across digits exist and the split matters."""
    tok = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), decoders.ByteLevel(),
                    ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.add_tokens(["assistant"])  # not special: its text is printed
    path = os.path.join(OUT, name)
    tok.save(path)
    return path


def make_metaspace_split(name):
    """a Metaspace pre-tokenizer that splits at every '▁' (prepend_scheme always), unk for the rest.
    Trained without the split, so that merges across '▁' exist and the split matters."""
    meta = dict(replacement="\u2581", prepend_scheme="always")
    tok = train_bpe(pre_tokenizers.Metaspace(split=False, **meta), decoders.Metaspace(split=False, **meta), ["<unk>", "<s>", "</s>"], unk_token="<unk>")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(split=True, **meta)
    tok.decoder = decoders.Metaspace(split=True, **meta)
    path = os.path.join(OUT, name)
    tok.save(path)
    return path


# added tokens with each flag: (content, special, lstrip, rstrip, single_word, normalized)
ADDED = [("<mask>", True, True, True, False, False), ("<L>", True, True, False, False, False), ("<R>", True, False, True, False, False),
         ("[SW]", False, False, False, True, False), ("hello", False, False, False, False, True), ("foo bar", False, False, False, False, True),
         ("cat", False, False, False, True, True), ("dog", False, False, False, True, False),
         ("og", False, False, False, False, False)]  # inside a dropped single-word "dog": not searched


def add_flagged(src, name):
    """another tokenizer with ADDED: a normalizer (Prepend '▁', Replace ' ') makes the normalized
    ones match '▁hello', '▁foo▁bar', '▁cat' in the normalized text"""
    tok = Tokenizer.from_file(src)
    for content, special, lstrip, rstrip, single_word, normalized in ADDED:
        t = AddedToken(content, single_word=single_word, lstrip=lstrip, rstrip=rstrip, normalized=normalized, special=special)
        (tok.add_special_tokens if special else tok.add_tokens)([t])
    path = os.path.join(OUT, name)
    tok.save(path)
    return path


def repretokenize(src, name, pre, words=()):
    """a tokenizer of another's vocabulary and merges with pre-tokenizers that it was not trained
    with, and extra words in its vocabulary (one token each under ignore_merges)"""
    tok = Tokenizer.from_file(src)
    tok.pre_tokenizer = pre
    path = os.path.join(OUT, name)
    tok.save(path)
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    for w in words:
        j["model"]["vocab"][w] = max(j["model"]["vocab"].values()) + 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
    return path


def make_unigram_json(spm_model):
    """tokenizer.json Unigram files of a sentencepiece unigram model: hf_unigram.json as hf_folder.h
    writes it for a saved folder (sentencepiece's ids where tokenizers can give them), hf_t5.json as
    transformers' T5 conversion makes it (WhitespaceSplit + Metaspace)"""
    pieces, _, byte_fallback, norm = read_model(spm_model)
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    paths = []
    for name in ("hf_unigram.json", "hf_t5.json", "hf_unigram_words.json"):
        tok = Tokenizer(models.Unigram([(p[0].decode(), p[1]) for p in pieces], sp.unk_id(), bool(byte_fallback)))
        tok.add_special_tokens([AddedToken(p[0].decode(), special=True, normalized=False) for p in pieces if p[2] in (T_CONTROL, T_UNKNOWN)])
        pre = [normalizers.Precompiled(norm["charsmap"])]
        if name == "hf_unigram_words.json":  # unknown characters fuse within a word only
            tok.normalizer = normalizers.Sequence(pre)
            tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
        elif name == "hf_unigram.json":
            tok.normalizer = normalizers.Sequence(pre + [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " "),
                                                         normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
            tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        else:
            tok.normalizer = normalizers.Sequence(pre + [normalizers.Replace(Regex(" {2,}"), " ")])
            tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                         pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)])
            tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        paths.append(os.path.join(OUT, name))
        tok.save(paths[-1])
    return paths


def hf_case(path):
    tok = Tokenizer.from_file(path)
    ids = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    prefix = tok.encode("", add_special_tokens=True).ids
    return {"file": os.path.relpath(path, ROOT), "ids": ids, "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids],
            "prefix": prefix}


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    tmp = os.path.join(OUT, "tmp")
    os.makedirs(tmp, exist_ok=True)
    # user-defined pieces: whole symbols, never normalized (the full-width one) nor merged
    user = {"user_defined_symbols": ["<sep>", "ab", "12", "\uff21\uff22"]}
    train_spm(tmp, "spm_bpe", "bpe", 500, True, RULES, user)
    train_spm(tmp, "spm_uni", "unigram", 500, False, RULES, user)
    train_spm(tmp, "spm_raw", "bpe", 500, True, None,
              {"normalization_rule_name": "identity", "remove_extra_whitespaces": False})
    shutil.rmtree(tmp)
    edit_user_defined(os.path.join(OUT, "spm_bpe.model"), "spm_bpe_user", "\u2581th")
    edit_user_defined(os.path.join(OUT, "spm_uni.model"), "spm_uni_user", "\u2581he", "\u2581her")
    for name in ("spm_bpe", "spm_uni", "spm_raw", "spm_bpe_user", "spm_uni_user"):
        cases.append(spm_case(os.path.join(OUT, name + ".model"), f"dev/test/data/tok/{name}.bin"))
    tiny = os.path.join(ROOT, "dev/data/tinytext")
    export(os.path.join(tiny, "tokenizer.model"), os.path.join(tiny, "tokenizer.bin"))
    cases.append(spm_case(os.path.join(tiny, "tokenizer.model"), "dev/data/tinytext/tokenizer.bin"))
    cases.append(hf_case(train_bytelevel("hf_llama3.json", True)))
    cases.append(hf_case(train_bytelevel("hf_gpt2.json", False)))
    cases.append(hf_case(make_llama2(os.path.join(OUT, "spm_raw.model"))))
    cases.append(hf_case(os.path.join(OUT, "hf_llama2_metaspace.json")))
    cases.append(hf_case(train_smollm("hf_smollm.json")))
    cases.append(hf_case(make_metaspace_split("hf_metaspace_split.json")))
    cases.append(hf_case(repretokenize(os.path.join(OUT, "hf_llama3.json"), "hf_llama3_digits.json", pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), ["\u0120\u0120"])))
    cases.append(hf_case(repretokenize(os.path.join(OUT, "hf_gpt2.json"), "hf_digits_prefix.json", pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=False), pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]))))
    cases.append(hf_case(add_flagged(os.path.join(OUT, "hf_llama2.json"), "hf_added_flags.json")))
    cases += [hf_case(p) for p in make_unigram_json(os.path.join(OUT, "spm_uni.model"))]
    cases.append(hf_case(add_flagged(os.path.join(OUT, "hf_gpt2.json"), "hf_added_flags_bytelevel.json")))
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": TEXTS, "tokenizers": cases}, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    for c in cases:
        print(f"{c['file']}: {sum(len(i) for i in c['ids'])} ids over {len(TEXTS)} texts, prefix {c['prefix']}")


if __name__ == "__main__":
    main()
