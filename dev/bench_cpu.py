# bench_cpu.py: training throughput of ./train_llama against PyTorch eager on the CPU.
# Both train the same LLaMA config (HF LlamaForCausalLM semantics, fp32, untied, AdamW lr 1e-3,
# grad clip 1.0) on the same token shard, read in order, micro-batches of B x T; both use N threads.
# PyTorch runs with sdpa attention (its fastest eager path). The first --skip steps of each are
# warmup and not counted; the table shows the median tokens/s of the rest.
# Run (from anywhere, after `make train_llama`), with nothing else loading the cores:
#   python dev/bench_cpu.py                                   # llama_tiny, B 16, T 128
#   python dev/bench_cpu.py --model llama_60m --batch 4 --seq 256 --steps 8
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the configs and the shard reader are bench_torch.py's (the GPU benchmark's reference trainer)
from bench_torch import make_config, read_shard  # noqa: E402


def bench_torch(cfg, tokens, B, T, steps, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = LlamaForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    nb = (len(tokens) - 1) // (B * T)
    times, losses = [], []
    for step in range(steps):
        k = step % nb  # micro-batch k reads tokens [k*B*T, k*B*T + B*T + 1), as train_llama --shuffle 0
        chunk = torch.from_numpy(tokens[k * B * T: k * B * T + B * T + 1])
        x, y = chunk[:-1].view(B, T), chunk[1:].view(B, T)
        t0 = time.perf_counter()
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    del model, opt
    return [B * T / t for t in times], losses


def bench_c(model, train, B, T, steps, threads):
    cmd = ["./train_llama", "--model", model, "--train", train, "--batch", str(B), "--seq", str(T),
           "--shuffle", "0", "--lr", "1e-3", "--warmup", "0", "--schedule", "constant", "--grad-clip", "1.0", "--threads", str(threads),
           "--steps", str(steps), "--print-every", "1", "--eval-every", "0", "--val", "",
           "--sample-len", "0", "--out", ""]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"train_llama failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    toks, losses = [], []
    for m in re.finditer(r"^step\s+(\d+)/\d+ \| loss ([-+0-9.eEnaif]+) \|.*?\| ([0-9.]+) tok/s", p.stdout, re.M):
        losses.append(float(m.group(2)))
        toks.append(float(m.group(3)))
    if len(toks) != steps:
        sys.exit(f"parsed {len(toks)} step lines from train_llama, expected {steps}:\n{p.stdout}")
    return toks, losses, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser(description="train_llama vs PyTorch eager CPU training throughput")
    ap.add_argument("--model", default="llama_tiny", help="built-in name or a HF config.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--skip", type=int, default=3, help="warmup steps left out of the median")
    ap.add_argument("--train", default="dev/data/tinytext/train_000.bin")
    args = ap.parse_args()
    threads = args.threads if args.threads > 0 else os.cpu_count()
    if args.steps <= args.skip:
        sys.exit(f"--steps {args.steps} must exceed --skip {args.skip}")
    B, T = args.batch, args.seq
    cfg = make_config(args.model)
    tokens = read_shard(os.path.join(ROOT, args.train))
    if len(tokens) < B * T + 1:
        sys.exit(f"{args.train}: {len(tokens)} tokens, fewer than one {B} x {T} micro-batch")

    # train_llama first, while this process has started no torch threads that could spin on the cores
    load0 = os.getloadavg()[0]
    c_tok, c_loss, cmd = bench_c(args.model, args.train, B, T, args.steps, threads)
    load1 = os.getloadavg()[0]
    t_tok, t_loss = bench_torch(cfg, tokens, B, T, args.steps, threads)
    load2 = os.getloadavg()[0]

    c_med = statistics.median(c_tok[args.skip:])
    t_med = statistics.median(t_tok[args.skip:])
    print(f"train_llama: {cmd}")
    print(f"torch {torch.__version__} | sdpa | {torch.get_num_threads()} threads | "
          f"1-min load before/between/after: {load0:.2f} {load1:.2f} {load2:.2f}")
    print(f"loss step 1 / step {args.steps}: train_llama {c_loss[0]:.4f} / {c_loss[-1]:.4f} | "
          f"PyTorch {t_loss[0]:.4f} / {t_loss[-1]:.4f}")
    print(f"median of steps {args.skip + 1}..{args.steps} (min-max train_llama {min(c_tok[args.skip:]):.0f}-"
          f"{max(c_tok[args.skip:]):.0f}, PyTorch {min(t_tok[args.skip:]):.0f}-{max(t_tok[args.skip:]):.0f} tok/s)")
    print(f"{'config':<12}{'B':>4}{'T':>6}{'threads':>9}{'PyTorch tok/s':>15}{'train_llama tok/s':>19}{'ratio':>8}")
    print(f"{os.path.basename(args.model):<12}{B:>4}{T:>6}{threads:>9}{t_med:>15.0f}{c_med:>19.0f}{c_med / t_med:>8.2f}")


if __name__ == "__main__":
    main()
