# check_hf_finetune.py: a GaLore fine-tune of a Hugging Face folder, opened again by transformers.
# For each of dev/ref/hf's transformers-made folders (sharded BF16): ./train_llama --init FOLDER
# fine-tunes a few steps with galore_adamw8bit --per-layer 1 and saves (the same layout: shards
# + index, BF16; a tied model without lm_head.weight); ./train_llama --init OUT --steps 0
# --dump-logits writes our logits of the saved model; transformers.LlamaForCausalLM.from_pretrained
# (OUT) computes its own on the same input ids (float32, and float64 from the same BF16 weights),
# and the normalized max differences are printed (and written to --figures). Exits non-zero above
# --tol. Needs `make train_llama`, torch, transformers, safetensors. Run from the repo root:
#   python3 dev/check_hf_finetune.py [--families llama3,tied,headdim] [--figures dev/ref/hf/finetune.txt]
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shard(path, n, seed, vocab):
    # llm.c token shard: 256 int32 header [magic, version, count], then count uint16 tokens
    toks = [(i * 37 + (i // 7) * 11 + seed) % vocab for i in range(n)]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *([20240520, 1, n] + [0] * 253)))
        f.write(struct.pack("<%dH" % n, *toks))


def run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="llama3,tied,headdim")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--figures", default="")
    a = ap.parse_args()
    lines = ["torch %s, transformers %s" % (torch.__version__, transformers.__version__)]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for fam in a.families.split(","):
            src = os.path.join(ROOT, "dev/ref/hf", fam)
            vocab = json.load(open(os.path.join(src, "config.json")))["vocab_size"]
            train, val = os.path.join(tmp, fam + "_train.bin"), os.path.join(tmp, fam + "_val.bin")
            shard(train, 4096, 0, vocab)
            shard(val, 1024, 5, vocab)
            out = os.path.join(tmp, fam)
            common = ["--train", train, "--val", val, "--tokenizer", "", "--batch", "2", "--seq", "16", "--sample-len", "0"]
            run(["./train_llama", *common, "--init", src, "--optimizer", "galore_adamw8bit", "--per-layer", "1", "--rank", "4",
                 "--update-proj-gap", "2", "--lr", "1e-2", "--warmup", "0", "--steps", str(a.steps), "--save-shard-size", "20KB",
                 "--out", out])
            idx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
            shards = sorted(set(idx["weight_map"].values()))
            cfg = json.load(open(os.path.join(out, "config.json")))
            dump = os.path.join(tmp, fam + "_logits.safetensors")
            run(["./train_llama", *common, "--init", out, "--steps", "0", "--dump-logits", dump, "--out", ""])
            d = load_file(dump)
            ids = d["input_ids"].long()
            ours = d["logits"].double()
            errs = []
            for dt in (torch.float32, torch.float64):
                m = LlamaForCausalLM.from_pretrained(out, dtype=dt, attn_implementation="eager").eval()
                with torch.no_grad():
                    theirs = m(input_ids=ids).logits.reshape(ours.shape).double()
                errs.append(((ours - theirs).abs().max() / theirs.abs().max()).item())
            src_idx = json.load(open(os.path.join(src, "model.safetensors.index.json")))
            moved = max((load_file(os.path.join(out, f))[k].float() - load_file(os.path.join(src, src_idx["weight_map"][k]))[k].float())
                        .abs().max().item() for f in shards for k in load_file(os.path.join(out, f)))
            line = ("%s: %d steps galore_adamw8bit --per-layer 1 -> %d BF16 shards + index (%d tensors, lm_head.weight %s, "
                    "tie_word_embeddings %s, weights moved up to %.3g); transformers' logits of the saved folder vs our "
                    "--dump-logits: float32 %.2e, float64 %.2e (normalized max)" %
                    (fam, a.steps, len(shards), len(idx["weight_map"]), "present" if "lm_head.weight" in idx["weight_map"] else "absent",
                     cfg["tie_word_embeddings"], moved, errs[0], errs[1]))
            print(line)
            lines.append(line)
            worst = max(worst, *errs)
    if a.figures:
        with open(a.figures, "w") as f:
            f.write("\n".join(lines) + "\n")
    if worst > a.tol:
        sys.exit("worst difference %.2e above --tol %.0e" % (worst, a.tol))


if __name__ == "__main__":
    main()
