"""
Export a SentencePiece .model to the flat tokenizer.bin that tokenizer.h reads (decoding, and
encoding of --prompt text).

Layout (all little-endian), documented again at the top of tokenizer.h:
  header: 256 int32 (1024 bytes)
    [0] magic 20241124  [1] version 2  [2] vocab_size
    [3] bos id  [4] eos id  [5] pad id (-1 if none)  [6] unk id (-1 if none)
    [7] model type as sentencepiece's TrainerSpec numbers it: 1 unigram, 2 bpe, 3 word, 4 char
    [8] flags: 1 add_dummy_prefix, 2 remove_extra_whitespaces, 4 escape_whitespaces, 8 byte_fallback
    [9] bytes of the normalizer's precompiled_charsmap (0 for the identity normalizer)   rest 0
  then for each id 0..vocab_size-1:
    uint8 type (0 normal, 1 control, 2 byte-fallback, 3 unknown, 4 unused, 5 user-defined)
    uint8 length (bytes, 0..255)
    float32 score (the piece's score: the merge priority of BPE, the log probability of unigram)
    length bytes of the piece text as SentencePiece stores it (UTF-8, U+2581 as the
    space marker, byte pieces as their text such as "<0x0A>")
  then the precompiled_charsmap bytes, as the .model holds them.
Version 1 (no [7..9], no scores, no charsmap) is still read by tokenizer.h for decoding only.

The .model is a protobuf (sentencepiece_model.proto); its few fields used here are read by a
small wire-format reader below, so that neither protobuf nor sentencepiece's generated
sentencepiece_model_pb2 is needed; sentencepiece itself checks the result (the ids and pieces).

Usage: python dev/data/export_tokenizer.py path/to/tokenizer.model path/to/tokenizer.bin
"""
import argparse
import struct

MAGIC, VERSION = 20241124, 2
T_NORMAL, T_CONTROL, T_BYTE, T_UNKNOWN, T_UNUSED, T_USER = 0, 1, 2, 3, 4, 5
# sentencepiece_model.proto: SentencePiece.Type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
# BYTE 6, UNUSED 5) -> the tokenizer.bin type
PROTO_TYPE = {1: T_NORMAL, 2: T_UNKNOWN, 3: T_CONTROL, 4: T_USER, 5: T_UNUSED, 6: T_BYTE}


def _varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def proto_fields(b):
    """protobuf wire format -> list of (field number, value): ints for varints, bytes for
    length-delimited fields, bytes of 4 or 8 for fixed32/fixed64"""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise SystemExit(f"error: unsupported protobuf wire type {wt}; hint: not a SentencePiece .model")
        out.append((num, v))
    return out


def read_model(path):
    """the fields tokenizer.h needs: pieces [(text, score, type)], model type, normalizer flags"""
    with open(path, "rb") as f:
        data = f.read()
    pieces, model_type, byte_fallback = [], 1, 0  # TrainerSpec defaults: unigram, no byte fallback
    norm = {"add_dummy_prefix": 1, "remove_extra_whitespaces": 1, "escape_whitespaces": 1, "charsmap": b"", "name": ""}
    for num, v in proto_fields(data):
        if num == 1:  # repeated SentencePiece pieces: 1 piece, 2 score, 3 type
            text, score, typ = b"", 0.0, 1
            for n2, v2 in proto_fields(v):
                if n2 == 1:
                    text = v2
                elif n2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3:
                    typ = v2
            pieces.append((text, score, PROTO_TYPE.get(typ, T_NORMAL)))
        elif num == 2:  # TrainerSpec: 3 model_type, 35 byte_fallback
            for n2, v2 in proto_fields(v):
                if n2 == 3:
                    model_type = v2
                elif n2 == 35:
                    byte_fallback = v2
        elif num == 3:  # NormalizerSpec: 1 name, 2 precompiled_charsmap, 3/4/5 flags
            for n2, v2 in proto_fields(v):
                key = {1: "name", 2: "charsmap", 3: "add_dummy_prefix", 4: "remove_extra_whitespaces", 5: "escape_whitespaces"}.get(n2)
                if key:
                    norm[key] = v2
    return pieces, model_type, byte_fallback, norm


def export(model_path, out_path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_path)
    pieces, model_type, byte_fallback, norm = read_model(model_path)
    n = sp.get_piece_size()
    if len(pieces) != n:
        raise SystemExit(f"error: {model_path}: read {len(pieces)} pieces, sentencepiece has {n}; hint: not a SentencePiece .model")
    flags = (1 if norm["add_dummy_prefix"] else 0) | (2 if norm["remove_extra_whitespaces"] else 0) \
        | (4 if norm["escape_whitespaces"] else 0) | (8 if byte_fallback else 0)
    header = [0] * 256
    header[0:10] = [MAGIC, VERSION, n, sp.bos_id(), sp.eos_id(), sp.pad_id(), sp.unk_id(), model_type, flags,
                    len(norm["charsmap"])]
    body = bytearray()
    for i, (text, score, t) in enumerate(pieces):
        if text != sp.id_to_piece(i).encode("utf-8") or abs(score - sp.get_score(i)) > 1e-6 * max(1.0, abs(score)):
            raise SystemExit(f"error: {model_path}: piece {i} reads as {text!r} score {score}, sentencepiece says "
                             f"{sp.id_to_piece(i)!r} {sp.get_score(i)}; hint: a .model this reader does not understand")
        if len(text) > 255:
            raise SystemExit(f"error: {model_path}: piece {i} is {len(text)} bytes (> 255); "
                             "hint: the tokenizer.bin format stores lengths as uint8")
        body += struct.pack("<BBf", t, len(text), score) + text
    with open(out_path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(body)
        f.write(norm["charsmap"])
    kind = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}.get(model_type, str(model_type))
    print(f"wrote {out_path}: {kind}, vocab {n}, bos {sp.bos_id()}, eos {sp.eos_id()}, pad {sp.pad_id()}, "
          f"unk {sp.unk_id()}, normalizer {norm['name'].decode('utf-8', 'replace') or '?'} ({len(norm['charsmap'])}-byte charsmap), "
          f"{1024 + len(body) + len(norm['charsmap'])} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="SentencePiece .model file")
    ap.add_argument("output", help="tokenizer.bin to write")
    args = ap.parse_args()
    export(args.model, args.output)


if __name__ == "__main__":
    main()
