"""
A tokenizer trained on your own text, for pretraining a model from scratch on it: the sentencepiece
package's trainer, BPE (Llama 2's kind) or unigram (T5's kind), vocabulary size of your choice.

  python dev/data/train_tokenizer.py --input 'corpus/*.txt' --vocab-size 8000 --out data/mine
  python dev/data/prepare.py --tokenizer data/mine --input 'corpus/*.txt' --out data/mine
  ./train_llama --model llama_60m --vocab auto --vocab-multiple 64 --train 'data/mine/data_train_*.bin' ...

Writes into --out: tokenizer.model (the sentencepiece model), tokenizer.bin (the same, for
train_llama: export_tokenizer.py), and for BPE a tokenizer_config.json (transformers'
LlamaTokenizer, no bos added: the shards hold none) so that the model folders train_llama saves
open with AutoTokenizer. Ids: unk 0, bos 1, eos 2 (Llama's), byte fallback on (BPE): every text
encodes, no unk.

--input: plain-text or JSON-lines files or globs, gzipped or not, read as dev/data/prepare.py reads
them (--field for JSON lines); --max-chars caps what the trainer sees (sentencepiece holds it in
memory): a sample of a few hundred MB is as good as the whole corpus for a vocabulary.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shards import C4Error, expand_inputs, open_text  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", action="append", nargs="+", required=True, metavar="FILE_OR_GLOB")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--vocab-size", type=int, required=True, help="pieces, including unk/bos/eos and (BPE) the 256 byte pieces")
    ap.add_argument("--model-type", choices=["bpe", "unigram"], default="bpe")
    ap.add_argument("--field", default="text", help="JSON lines: the field that holds the document")
    ap.add_argument("--max-chars", type=int, default=200_000_000, help="characters of text the trainer reads, at most")
    ap.add_argument("--character-coverage", type=float, default=0.9995)
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    return ap.parse_args(argv)


def documents(paths, field):
    for p in paths:
        with open_text(p) as f:
            first = True
            for line in f:
                if first and line.lstrip().startswith("{"):
                    field_mode = True
                elif first:
                    field_mode = False
                first = False
                if field_mode:
                    line = json.loads(line).get(field, "") if line.strip() else ""
                if line.strip():
                    yield line.rstrip("\n")


def main(argv=None):
    a = parse_args(argv)
    try:
        import sentencepiece as spm
    except ImportError:
        raise C4Error("train_tokenizer.py needs the sentencepiece package; hint: pip install sentencepiece")
    paths = expand_inputs([p for group in a.input for p in group])
    if a.vocab_size < 300 and a.model_type == "bpe":
        raise C4Error(f"--vocab-size {a.vocab_size}: BPE with byte fallback needs at least 259 pieces (256 bytes + unk/bos/eos) and some merges; pass 300 or more")
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text, n = os.path.join(tmp, "corpus.txt"), 0
        with open(text, "w", encoding="utf-8") as f:
            for doc in documents(paths, a.field):
                f.write(doc.replace("\n", " ") + "\n")
                n += len(doc)
                if n >= a.max_chars:
                    break
        if n == 0:
            raise C4Error(f"--input: no text in {len(paths)} file(s)")
        spm.SentencePieceTrainer.train(
            input=text, model_prefix=os.path.join(tmp, "tokenizer"), model_type=a.model_type, vocab_size=a.vocab_size,
            character_coverage=a.character_coverage, byte_fallback=a.model_type == "bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
            num_threads=a.threads, minloglevel=2)
        model = os.path.join(a.out, "tokenizer.model")
        os.replace(os.path.join(tmp, "tokenizer.model"), model)
    from export_tokenizer import export
    export(model, os.path.join(a.out, "tokenizer.bin"))
    if a.model_type == "bpe":
        cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "add_bos_token": False, "add_eos_token": False, "legacy": False, "clean_up_tokenization_spaces": False}
        with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
    sp = spm.SentencePieceProcessor(model_file=model)
    print(f"wrote {a.out}/tokenizer.model and tokenizer.bin: {a.model_type}, {sp.get_piece_size()} pieces, trained on {n:,} characters "
          f"of {len(paths)} file(s); next: python dev/data/prepare.py --tokenizer {a.out} --input ... --out {a.out}")


if __name__ == "__main__":
    try:
        main()
    except C4Error as e:
        sys.exit(f"error: {e}")
