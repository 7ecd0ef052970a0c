# make_weight8_reference.py: the INT8 weight rule of --weights int8 (weight8.h), as q-galore-torch
# 1.0 computes it: its own AdamW8bit._quantize (q_galore_adamw8bit.py), called on fp32 tensors, one
# group at a time. The package reshapes a tensor to (-1, q_group_size) and asserts that the group
# size divides it; weight8.h's last group of a tensor may be shorter, so each group goes in as one
# row of its own length (q_group_size -1: the row is the group), which is the package's arithmetic
# on that group. The package's module imports bitsandbytes (for its optimizer base class) at the
# top; _quantize uses only torch, so a stand-in module is put in its place here and no CUDA
# library is needed.
#
# Writes dev/ref/weight8/ref.safetensors (F32): "groups" (NCASES) the group size of each case, and
# per case K: "w.K" the fp32 input (row-major), "codes.K" (integers 0..255, exact in F32),
# "scales.K" and "zeros.K" (one per group), "deq.K" the package's dequantization
# (codes - zeros) * scales in fp32 (as q_galore_adamw8bit_simulate.py writes it back).
# Cases: a (5, 37) matrix at G 64 (last group 57), a real-sized (64, 48) matrix at the default
# G 128, constant groups (positive, negative, zero) at G 16, groups with min > 0 (the zero point
# clamps to 0 and codes clamp at 255: the package's rule assumes min <= 0 <= max) and one with
# max < 0, and a group whose values sit exactly halfway between two steps (torch.round: half to
# even) with scale exactly 2^-8.
# Run: python3 dev/ref/make_weight8_reference.py  with torch (CPU use) and q-galore-torch 1.0
# (pip install --no-deps q-galore-torch==1.0); deterministic. Made with torch 2.15.0,
# q-galore-torch 1.0, safetensors 0.8.0.
import os
import sys
import types

import torch
from safetensors.torch import save_file

# bitsandbytes stand-in: the class the package's AdamW8bit derives from, and the functional module
bnb = types.ModuleType("bitsandbytes")
bnb_optim = types.ModuleType("bitsandbytes.optim")
bnb_opt = types.ModuleType("bitsandbytes.optim.optimizer")
bnb_opt.Optimizer2State = type("Optimizer2State", (), {})
bnb_f = types.ModuleType("bitsandbytes.functional")
bnb.optim, bnb.functional, bnb_optim.optimizer = bnb_optim, bnb_f, bnb_opt
sys.modules.update({"bitsandbytes": bnb, "bitsandbytes.optim": bnb_optim, "bitsandbytes.optim.optimizer": bnb_opt,
                    "bitsandbytes.functional": bnb_f})
from q_galore_torch.q_galore_adamw8bit import AdamW8bit  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weight8")


def quantize(w, G):
    """the package's _quantize on each group of G contiguous elements of w (the last may be shorter)"""
    flat = w.reshape(-1)
    codes, scales, zeros = [], [], []
    for k0 in range(0, flat.numel(), G):
        c, s, z = AdamW8bit._quantize(None, flat[k0:k0 + G].reshape(1, -1).clone(), q_group_size=-1)
        codes.append(c.reshape(-1)); scales.append(s.reshape(-1)); zeros.append(z.reshape(-1))
    codes, scales, zeros = torch.cat(codes), torch.cat(scales), torch.cat(zeros)
    gid = torch.arange(flat.numel()) // G
    deq = (codes.float() - zeros[gid]) * scales[gid] # fp32, as the package dequantizes
    return codes, scales, zeros, deq


def main():
    gen = torch.Generator().manual_seed(25)
    cases = []
    cases.append((torch.randn(5, 37, generator=gen) * 0.02, 64))
    cases.append((torch.randn(64, 48, generator=gen) * 0.02, 128))
    const = torch.cat([torch.full((16,), 0.25), torch.full((16,), -0.3), torch.zeros(16)])
    cases.append((const, 16))
    pos = torch.rand(3, 32, generator=gen) * 0.5 + 0.5        # min > 0: zero clamps to 0
    pos[1] = torch.rand(32, generator=gen) * 0.02 + 0.001      # small and positive: codes clamp at 255
    pos[2] = -(torch.rand(32, generator=gen) * 0.5 + 0.1)      # max < 0
    cases.append((pos.reshape(-1), 32))
    # exact halves: min -127.5 s, max 127.5 s with s = 2^-8, so scale = 255 s / 255 = s exactly and
    # zero = -round(-127.5) = 128; the values (k + 0.5) s divide exactly to k + 0.5
    s = 2.0 ** -8
    k = torch.tensor([-127.5, 127.5, -0.5, 0.5, 1.5, 2.5, -1.5, -2.5, 100.5, -100.5, 3.0, -3.25])
    cases.append((k * s, 12))
    t = {"groups": torch.tensor([float(G) for _, G in cases])}
    for i, (w, G) in enumerate(cases):
        w = w.float().contiguous()
        codes, scales, zeros, deq = quantize(w, G)
        t[f"w.{i}"] = w.reshape(-1)
        t[f"codes.{i}"] = codes.float()
        t[f"scales.{i}"] = scales.float()
        t[f"zeros.{i}"] = zeros.float()
        t[f"deq.{i}"] = deq
    # the exact halves: round half to even, checked here so that a torch that rounded otherwise is caught
    assert t["codes.4"][4:8].tolist() == [130.0, 130.0, 126.0, 126.0], t["codes.4"]
    os.makedirs(OUT, exist_ok=True)
    save_file(t, os.path.join(OUT, "ref.safetensors"))
    print(f"wrote {OUT}/ref.safetensors: {len(cases)} cases, {sum(w.numel() for w, _ in cases)} elements")


if __name__ == "__main__":
    main()
