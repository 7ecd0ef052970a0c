# check_hf.py: does a checkpoint written by ./train_llama mean the same model to transformers?
# Trains a few steps with ./train_llama (f32 and bf16 saves), loads each run folder with
# transformers.LlamaForCausalLM.from_pretrained (float32), and compares the val loss PyTorch
# computes with the one `./train_llama --steps 0 --init DIR/model.safetensors` prints on the
# same val micro-batches. Exits non-zero when any relative difference exceeds --tol.
# Run from anywhere (needs `make train_llama` first):
#   python dev/check_hf.py [--steps 20 --batch 8 --seq 128 --eval-batches 8]
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD_MAGIC = 20240520


def read_shard(path):
    # llm.c token shard: 256 int32 header [magic, version, count], then count uint16 tokens
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 1024:
        sys.exit(f"{path}: shorter than the 1024-byte header")
    header = np.frombuffer(data[:1024], dtype=np.int32)
    if header[0] != SHARD_MAGIC or header[1] != 1:
        sys.exit(f"{path}: bad magic/version {header[0]} {header[1]}")
    n = int(header[2])
    if 1024 + 2 * n > len(data):
        sys.exit(f"{path}: header says {n} tokens but the file is shorter")
    return np.frombuffer(data[1024:1024 + 2 * n], dtype=np.uint16).astype(np.int64)


def run(cmd):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def c_val_loss(init, val, B, T, n, threads):
    out = run(["./train_llama", "--steps", "0", "--init", init, "--val", val, "--eval-tokens", str(n * B * T),
               "--batch", str(B), "--seq", str(T), "--threads", str(threads), "--out", "", "--sample-len", "0"])
    m = re.search(r"^val loss ([-+0-9.eE]+) \| ppl [^|]+\| (\d+) batches", out, re.M)
    if not m:
        sys.exit(f"no 'val loss' line in train_llama output:\n{out}")
    return float(m.group(1)), int(m.group(2))


@torch.no_grad()
def hf_val_loss(run_dir, tokens, B, T, n, attn):
    # micro-batch k reads tokens [k*B*T, k*B*T + B*T + 1): inputs the first B*T, targets shifted by one
    model = LlamaForCausalLM.from_pretrained(run_dir, dtype=torch.float32, attn_implementation=attn)
    model.eval()
    total, count = 0.0, 0
    for k in range(n):
        chunk = torch.from_numpy(tokens[k * B * T: k * B * T + B * T + 1])
        x = chunk[:-1].view(B, T)
        y = chunk[1:].view(B, T)
        logits = model(input_ids=x).logits  # (B, T, V) float32
        # the sum in float64 so the reference adds no rounding of its own on top of the f32 logits
        total += F.cross_entropy(logits.double().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return total / count, model


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="llama_tiny")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--val", default="dev/data/tinytext/val_000.bin")
    ap.add_argument("--tol", type=float, default=1e-5, help="max relative difference for f32 and bf16 checkpoints")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    B, T, N = args.batch, args.seq, args.eval_batches
    files = sorted(glob.glob(os.path.join(ROOT, args.val)))
    if len(files) != 1:
        sys.exit(f"--val {args.val}: expected exactly one shard, found {len(files)}")
    tokens = read_shard(files[0])
    N = min(N, (len(tokens) - 1) // (B * T))  # train_llama clamps to the batches the shard holds the same way

    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="check_hf_") as tmp:
        for dtype in ["f32", "bf16"]:
            out_dir = os.path.join(tmp, dtype)
            # --warmup 5: with the default 30 the 20 steps would hardly move the weights
            run(["./train_llama", "--model", args.model, "--steps", str(args.steps), "--warmup", "5",
                 "--batch", str(B), "--seq", str(T), "--shuffle", "0", "--threads", str(args.threads),
                 "--eval-every", "0", "--val", "", "--sample-len", "0", "--print-every", "100000",
                 "--save-dtype", dtype, "--out", out_dir])
            c_loss, c_n = c_val_loss(os.path.join(out_dir, "model.safetensors"), args.val, B, T, N, args.threads)
            if c_n != N:
                sys.exit(f"train_llama evaluated {c_n} batches, expected {N}")
            hf_loss, model = hf_val_loss(out_dir, tokens, B, T, N, args.attn)
            if dtype == "bf16":
                # sanity: every weight really is a bf16 value (the f32 load is exact)
                for name, p in model.named_parameters():
                    if not torch.equal(p.data, p.data.to(torch.bfloat16).float()):
                        print(f"bf16 checkpoint: {name} holds values that are not bf16")
                        ok = False
            rel = abs(c_loss - hf_loss) / abs(hf_loss)
            passed = rel <= args.tol
            ok = ok and passed
            rows.append((dtype, c_loss, hf_loss, rel, passed))

    print(f"model {args.model} | {args.steps} steps | val {args.val} | {N} batches of {B} x {T} "
          f"({N * B * T} targets) | HF attn {args.attn} | tol {args.tol:g}")
    print(f"{'save':<6}{'train_llama val loss':>22}{'HF val loss':>22}{'rel diff':>12}  result")
    for dtype, c_loss, hf_loss, rel, passed in rows:
        print(f"{dtype:<6}{c_loss:>22.7f}{hf_loss:>22.9f}{rel:>12.2e}  {'ok' if passed else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
