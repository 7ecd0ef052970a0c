"""
Export a SentencePiece .model to the flat tokenizer.bin that tokenizer.h reads (decode only).

Layout (all little-endian), documented again at the top of tokenizer.h:
  header: 256 int32 (1024 bytes)
    [0] magic 20241124  [1] version 1  [2] vocab_size
    [3] bos id  [4] eos id  [5] pad id (-1 if none)  [6] unk id (-1 if none)  rest 0
  then for each id 0..vocab_size-1:
    uint8 type (0 normal, 1 control, 2 byte-fallback, 3 unknown, 4 unused)
    uint8 length (bytes, 0..255)
    length bytes of the piece text as SentencePiece stores it (UTF-8, U+2581 as the
    space marker, byte pieces as their text such as "<0x0A>")

Usage: python dev/data/export_tokenizer.py path/to/tokenizer.model path/to/tokenizer.bin
"""
import argparse
import struct

import sentencepiece as spm

MAGIC, VERSION = 20241124, 1
T_NORMAL, T_CONTROL, T_BYTE, T_UNKNOWN, T_UNUSED = 0, 1, 2, 3, 4


def export(model_path, out_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    header = [0] * 256
    header[0:7] = [MAGIC, VERSION, n, sp.bos_id(), sp.eos_id(), sp.pad_id(), sp.unk_id()]
    body = bytearray()
    for i in range(n):
        if sp.is_control(i):
            t = T_CONTROL
        elif sp.is_byte(i):
            t = T_BYTE
        elif sp.is_unknown(i):
            t = T_UNKNOWN
        elif sp.is_unused(i):
            t = T_UNUSED
        else:
            t = T_NORMAL  # normal and user-defined pieces decode the same way
        piece = sp.id_to_piece(i).encode("utf-8")
        if len(piece) > 255:
            raise SystemExit(f"error: {model_path}: piece {i} is {len(piece)} bytes (> 255); "
                             "hint: the tokenizer.bin format stores lengths as uint8")
        body += struct.pack("<BB", t, len(piece)) + piece
    with open(out_path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(body)
    print(f"wrote {out_path}: vocab {n}, bos {sp.bos_id()}, eos {sp.eos_id()}, "
          f"pad {sp.pad_id()}, unk {sp.unk_id()}, {1024 + len(body)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="SentencePiece .model file")
    ap.add_argument("output", help="tokenizer.bin to write")
    args = ap.parse_args()
    export(args.model, args.output)


if __name__ == "__main__":
    main()
