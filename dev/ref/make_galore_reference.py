# make_galore_reference.py: reference data for the GaLore optimizers, produced by the official
# galore-torch package (GaLoreAdamW, GaLoreAdamW8bit) itself, on CPU, in float32.
# Writes dev/ref/galore/{unit.bin, unit_reverse.bin, unit8bit.bin, e2e_adamw.bin,
# e2e_adamw8bit.bin}.
# Run (from anywhere, deterministic, ~10 s): python dev/ref/make_galore_reference.py
# Needs galore-torch 1.0 and bitsandbytes 0.50 in the venv, plus dev/ref/tiny (make_reference.py)
# and dev/ref/make_adam8bit_reference.py (the numpy model of bitsandbytes' CUDA kernels).
#
# All files are little-endian: a header of 256 int32 (float values stored as their f32 bit
# pattern in the slots named "f"), then the arrays listed, back to back, no padding.
#
# unit.bin (GaLoreAdamW, proj_type "std") and unit_reverse.bin (proj_type "reverse_std"):
#   header i32: [0] magic 20241126, [1] version 1, [2] NP number of params (4), [3] S steps (8),
#     [4] rank (7), [5] update_proj_gap (3), [6] proj_type (0 std, 1 reverse_std),
#     [7] NR refreshes (3), [8] NG GaLore params (3: the first NG of the table),
#     [9..9+NG) side of each GaLore param's projector (0 right: P is [r,n], R = G P^T;
#     1 left: P is [m,r], R = P^T G),
#     [12] optimizer (0 GaLoreAdamW; 1 GaLoreAdamW8bit, only in unit8bit.bin; so NG <= 3),
#     f [16] lr, [17] beta1, [18] beta2, [19] eps, [20] weight_decay, [21] scale
#   dims i32[NP*3]: per param ndim, rows, cols (cols = 1 for 1-D); params in this order:
#     A [40,24] (m > n), B [24,40] (m < n), Cq [32,32], d [24] (1-D, plain group)
#   p0 f32[N] initial params (the NP params concatenated, each flat row-major; N = 2968)
#   for step s = 1..S: grads f32[N] fed at step s, then params f32[N] after step s
#   for refresh k = 1..NR (at steps 1, 4, 7): the projectors of the NG GaLore params, each flat
#     as galore-torch stored it ([r,n] right, [m,r] left), concatenated
#   GaLoreAdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-6, wd 0.05), group of A,B,Cq with rank 7,
#   gap 3, scale 0.25; d in a plain group. Gradients: G = U diag(s) V^T + 1e-3 * noise with
#   fresh random orthonormal U, V each step and s_k = 2^(-k/2) (k = 0..11), so consecutive
#   singular values differ by a factor sqrt(2) and the top-7 singular vectors are well
#   determined (unique up to sign).
#
# unit8bit.bin (GaLoreAdamW8bit, proj_type "std", through the numpy kernel model below, bnb
# args fixed): the layout of unit.bin with [0] magic 20241130 and [12] optimizer 1; NP 4, S 7,
#   rank 56, gap 3 (refreshes at 1, 4, 7), NG 2. Params: A [96,80] (right, R [96,56]),
#   B [80,96] (left, R [56,96]): both low-rank states have 5376 >= 4096 (min_8bit_size)
#   elements, so they take bitsandbytes' 8-bit blockwise kernel; E [64,80] (5120 elements, a
#   plain 2-D tensor in the plain group: ordinary 8-bit Adam, no projector); d [24] (32-bit
#   kernel). N = 2*7680 + 5120 + 24 = 20504.
#   GaLoreAdamW8bit(lr 1e-2, betas (0.9, 0.999), eps 1e-8 (its default), wd 0.05), scale 0.25.
#   Decay: galore-torch zeroes the group's weight_decay around the kernel for A, B and applies
#   p += -lr*wd*p after the project-back; E and d decay inside the kernel, p *= 1 - lr*wd.
#   Gradients as unit.bin's but with a spectrum that keeps all 56 kept vectors determined:
#   k = min(m, n) singular values s_k = 2^(-k/24) (3% apart; the smallest gap among the top 57
#   of any GaLore gradient is 5.8e-3) and 1e-5 * noise; E the same, d 0.1 * normal.
#   Matching it from float32 C: a float32 SVD from another LAPACK gives projectors that differ
#   by ~6e-6 per entry, so R differs in its last digits and a few state bytes (1-6 of 5376 per
#   step) land on the neighbouring code; weights after step 1 (no quantized state read yet)
#   and the non-GaLore E, d agree exactly or to rounding, later GaLore weights to ~1e-3. (GaLoreAdamW) and e2e_adamw8bit.bin (GaLoreAdamW8bit), the tiny LLaMA of
# dev/ref/tiny on its shard train.bin:
#   header i32: [0] magic 20241127 (adamw) / 20241128 (adamw8bit), [1] version 1, [2] B (3),
#     [3] T (13), [4] steps (12), [5] rank (8), [6] update_proj_gap (5), [7] P total param
#     floats (77460), [8] the step after which p_mid was taken (5),
#     f [16] lr, [17] scale, [18] weight_decay, [19] eps, [20] beta1, [21] beta2
#   losses f32[steps]: loss of step k (1..steps), computed before that step's update
#   p_final f32[P]: params after the last step
#   p_mid f32[P]: params after step 5 (the last step of the first projector window; the
#     2nd refresh happens at step 6)
#   Param order (PyTorch layout, flat row-major): model.embed_tokens.weight; per layer l:
#   input_layernorm, q_proj, k_proj, v_proj, o_proj, post_attention_layernorm, gate_proj,
#   up_proj, down_proj; model.norm.weight; lm_head.weight (= make_reference.param_table).
#   Batch k (0-based) = tokens [k*B*T, k*B*T + B*T + 1) of the shard: inputs the first B*T,
#   targets the same shifted by one. loss = mean cross-entropy. No scheduler, no clipping.
#   GaLore params: every nn.Linear weight whose module name contains "attn" or "mlp" (as
#   galore-torch's torchrun_main.py), rank 8, gap 5 (refreshes at steps 1, 6, 11), scale 0.25,
#   proj_type std; everything else in a plain group. AdamW: lr 1e-2, wd 0, eps 1e-6 (HF-style,
#   eps outside the bias correction). AdamW8bit: lr 1e-2, wd 0, eps 1e-8 (torch-style).
#
# 8-bit semantics: bitsandbytes' CPU path is not its CUDA kernel (see adam8bit.md), so the
# two bnb entry points GaLoreAdamW8bit reaches (Optimizer2State.update_step ->
# F.optimizer_update_32bit / F.optimizer_update_8bit_blockwise) are monkeypatched to the numpy
# kernel model ref32_step / ref8_step of make_adam8bit_reference.py. bnb's own CPU path is also
# run and its losses are printed for comparison (not stored).
# bnb 0.50 argument shift: galore-torch 1.0 calls Optimizer2State(..., min_8bit_size,
# percentile_clipping=100, block_wise=True) positionally, but bnb 0.50 dropped those two
# parameters, so they land in max_unorm = 100 and skip_zeros = True. With max_unorm > 0 and
# the zeroed low-rank stand-in (||p|| = 0) the 32-bit kernel scales every GaLore update by 0.
# This script resets opt.args to max_unorm 0, skip_zeros False (the meaning the paper's bnb
# had) for the stored run, and prints the as-installed run for comparison.
#
# Singular-vector signs: LAPACK builds differ in the signs they return (torch's CPU SVD here vs
# the OpenBLAS LAPACK galore.c links), and across a refresh the sign matters because the moments
# carry over. galore.c fixes a convention (galore.h galore_sign_fix: each kept basis vector's
# entry of largest magnitude is made positive), and this script applies the same convention to
# galore-torch's projector (a wrapper around GaLoreProjector.get_orthogonal_matrix). Within one
# projector window the update does not depend on the signs, so the first window equals
# unmodified galore-torch's.
# The stored run contains genuine 8-bit blow-ups (10 elements, e.g. embed_tokens flat 11682 -> 58):
# v rounds to byte 0 while m does not, so m/(c2*eps) is huge. That is the kernel's math.
# NOTE for this tiny model: tensors under min_8bit_size = 4096 elements keep fp32 states, and
# every GaLore low-rank gradient here is small ([60,8], [8,84], ...), so in e2e_adamw8bit only
# embed_tokens and lm_head (12660 elements each) have 8-bit blockwise states; GaLore matrices
# and norms go through the 32-bit kernel (torch-style eps).
import importlib.util
import math
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

import bitsandbytes  # noqa: E402
import bitsandbytes.functional as BF  # noqa: E402
import galore_torch  # noqa: E402
from galore_torch import GaLoreAdamW, GaLoreAdamW8bit  # noqa: E402

from refio import fbits, flat, track_refresh, unit_header, write_unit  # noqa: E402
from refio import read_unit as refio_read_unit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "galore")
TINY = os.path.join(HERE, "tiny")
f32 = np.float32

# ----------------------------------------------------------------------------
# hyperparameters (mirrored into the headers)
UNIT_MAGIC, E2E_MAGIC, E2E8_MAGIC = 20241126, 20241127, 20241128
UNIT8_MAGIC = 20241130
U_SHAPES = [("A", (40, 24)), ("B", (24, 40)), ("Cq", (32, 32)), ("d", (24,))]
U_NG = 3
U_S, U_RANK, U_GAP, U_SCALE = 8, 7, 3, 0.25
U_LR, U_B1, U_B2, U_EPS, U_WD = 1e-2, 0.9, 0.999, 1e-6, 0.05
U_REFRESH = [1, 4, 7]
# unit8bit.bin: rank 56 makes both GaLore states 5376 elements (8-bit); E is a plain 2-D tensor
U8_SHAPES = [("A", (96, 80)), ("B", (80, 96)), ("E", (64, 80)), ("d", (24,))]
U8_NG = 2
U8_S, U8_RANK, U8_GAP, U8_SCALE = 7, 56, 3, 0.25
U8_LR, U8_B1, U8_B2, U8_EPS, U8_WD = 1e-2, 0.9, 0.999, 1e-8, 0.05
U8_REFRESH = [1, 4, 7]

B, T, STEPS = 3, 13, 12
E_RANK, E_GAP, E_SCALE, E_LR, E_WD = 8, 5, 0.25, 1e-2, 0.0
E_MID = 5
E_REFRESH = [1, 6, 11]
SHARD_MAGIC = 20240520

# one thread: float32 reductions in BLAS can depend on the thread split
torch.set_num_threads(1)
# GaLoreAdamW8bit.step calls torch.cuda.synchronize() unconditionally; there is no GPU here
torch.cuda.synchronize = lambda *a, **k: None


def load_adam8bit_ref():
    path = os.path.join(HERE, "make_adam8bit_reference.py")
    spec = importlib.util.spec_from_file_location("make_adam8bit_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def proj_side(proj):
    """0 right ([r,n], R = G P^T), 1 left ([m,r], R = P^T G), from the rule galore-torch uses"""
    return {"right": 0, "left": 1}[proj]


def expected_side(shape, proj_type):
    m, n = shape
    if proj_type == "std":
        return "right" if m >= n else "left"
    if proj_type == "reverse_std":
        return "left" if m >= n else "right"
    return proj_type


# ----------------------------------------------------------------------------
# A. unit: GaLoreAdamW on synthetic gradients


def make_grad(rng, shape):
    if len(shape) == 1:
        return (rng.normal(size=shape) * 0.1).astype(f32)
    m, n = shape
    k = 12
    U, _ = np.linalg.qr(rng.normal(size=(m, k)))
    V, _ = np.linalg.qr(rng.normal(size=(n, k)))
    s = 2.0 ** (-np.arange(k) / 2.0)
    return ((U * s) @ V.T + 1e-3 * rng.normal(size=(m, n))).astype(f32)


def run_unit(proj_type, fname):
    rng = np.random.default_rng(20241126)
    params = [torch.nn.Parameter(torch.from_numpy((rng.normal(size=s) * 0.02).astype(f32)))
              for _, s in U_SHAPES]
    p0 = flat(params)
    groups = [{"params": params[:U_NG], "rank": U_RANK, "update_proj_gap": U_GAP,
               "scale": U_SCALE, "proj_type": proj_type},
              {"params": params[U_NG:]}]
    opt = GaLoreAdamW(groups, lr=U_LR, betas=(U_B1, U_B2), eps=U_EPS, weight_decay=U_WD,
                      no_deprecation_warning=True)
    grads_steps, params_steps = [], []
    projs = []          # per refresh: list of NG projector tensors
    refresh_steps = []
    last = [None] * U_NG
    for s in range(1, U_S + 1):
        gs = [torch.from_numpy(make_grad(rng, sh)) for _, sh in U_SHAPES]
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
        grads_steps.append(flat(gs))
        params_steps.append(flat(params))
        last = track_refresh(opt, params[:U_NG], last, s, refresh_steps, projs)
    assert refresh_steps == U_REFRESH, f"refreshes at {refresh_steps}, expected {U_REFRESH}"
    sides = []
    for (name, sh), P in zip(U_SHAPES[:U_NG], projs[0]):
        side = expected_side(sh, proj_type)
        want = (U_RANK, sh[1]) if side == "right" else (sh[0], U_RANK)
        assert tuple(P.shape) == want and P.dtype == torch.float32, (name, P.shape, P.dtype)
        sides.append(side)
    for p in params[:U_NG]:
        assert opt.state[p]["step"] == U_S and opt.state[p]["exp_avg"].numel() < p.numel()

    header = unit_header(UNIT_MAGIC, U_SHAPES, U_S, U_RANK, U_GAP, {"std": 0, "reverse_std": 1}[proj_type],
                         len(U_REFRESH), U_NG, [proj_side(sd) for sd in sides],
                         [U_LR, U_B1, U_B2, U_EPS, U_WD, U_SCALE])
    path = os.path.join(OUT, fname)
    write_unit(path, header, U_SHAPES, p0, zip(grads_steps, params_steps), [flat(r) for r in projs])
    print(f"unit {proj_type}: refreshes at steps {refresh_steps}; sides: "
          + ", ".join(f"{n}{list(sh)} {sd}" for (n, sh), sd in zip(U_SHAPES, sides)) + f", d{list(U_SHAPES[3][1])} plain")
    err = replay_unit(path)
    print(f"unit {proj_type}: independent float64 replay from the file (stored projectors): "
          f"max |dp| {err:.3e} over all steps")
    assert err < 1e-5
    return path


def read_unit(path, dtype):
    """Parse a unit*.bin file (refio's layout; no trailing arrays) into its header fields, the
    initial params p, per-step gradients gs and params ps, and the projectors of each refresh,
    as arrays of dtype."""
    h, hf, dims, side, p, steps, projs, rest = refio_read_unit(path, dtype)
    assert rest.size == 0, "trailing bytes"
    npar, S, r, gap, nr, ng = [int(x) for x in (h[2], h[3], h[4], h[5], h[7], h[8])]
    gs, ps = [st[0] for st in steps], [st[1] for st in steps]
    return h, hf, npar, S, r, gap, nr, ng, side, dims, p, gs, ps, projs


def replay_unit(path):
    """Re-read the file and redo the algorithm of galore.md in float64 with the stored
    projectors: checks both the layout and that galore-torch does what the spec says."""
    h, hf, npar, S, r, gap, nr, ng, side, dims, p, gs, ps, projs = read_unit(path, np.float64)
    lr, b1, b2, eps, wd, scale = [float(x) for x in hf[16:22]]
    M = [None] * npar
    V = [None] * npar
    err = 0.0
    for s in range(1, S + 1):
        k = (s - 1) // gap  # projector window index
        for i in range(npar):
            g = gs[s - 1][i]
            if i < ng:
                P = projs[k][i]
                g = g @ P.T if side[i] == 0 else P.T @ g
            if M[i] is None:
                M[i], V[i] = np.zeros_like(g), np.zeros_like(g)
            M[i] = b1 * M[i] + (1 - b1) * g
            V[i] = b2 * V[i] + (1 - b2) * g * g
            step = lr * math.sqrt(1 - b2 ** s) / (1 - b1 ** s)
            Nn = M[i] / (np.sqrt(V[i]) + eps)
            if i < ng:
                Nn = (Nn @ P if side[i] == 0 else P @ Nn) * scale
            p[i] = p[i] - step * Nn
            p[i] = p[i] - lr * wd * p[i]
            err = max(err, float(np.abs(p[i] - ps[s - 1][i]).max()))
    return err


# ----------------------------------------------------------------------------
# A'. unit8bit: GaLoreAdamW8bit on synthetic gradients, low-rank states big enough for 8 bits


def make_grad8(rng, shape):
    """unit.bin's generator with a slower spectrum: rank 56 needs 57 well separated singular
    values (2^(-k/2) would put the 56th at 1e-8, below float32 resolution)"""
    if len(shape) == 1:
        return (rng.normal(size=shape) * 0.1).astype(f32)
    m, n = shape
    k = min(m, n)
    U, _ = np.linalg.qr(rng.normal(size=(m, k)))
    V, _ = np.linalg.qr(rng.normal(size=(n, k)))
    s = 2.0 ** (-np.arange(k) / 24.0)
    return ((U * s) @ V.T + 1e-5 * rng.normal(size=(m, n))).astype(f32)


def run_unit8bit(ref, fname):
    rng = np.random.default_rng(20241130)
    params = [torch.nn.Parameter(torch.from_numpy((rng.normal(size=s) * 0.02).astype(f32)))
              for _, s in U8_SHAPES]
    p0 = flat(params)
    groups = [{"params": params[:U8_NG], "rank": U8_RANK, "update_proj_gap": U8_GAP,
               "scale": U8_SCALE, "proj_type": "std"},
              {"params": params[U8_NG:]}]
    opt = GaLoreAdamW8bit(groups, lr=U8_LR, betas=(U8_B1, U8_B2), eps=U8_EPS, weight_decay=U8_WD)
    # the bnb 0.50 argument shift (see the top of this file and run_e2e)
    assert opt.args.max_unorm == 100 and opt.args.skip_zeros is True, "bnb args changed"
    opt.args.max_unorm = 0.0
    opt.args.skip_zeros = False
    saved, calls = install_kernel_model(ref)
    grads_steps, params_steps, projs, refresh_steps = [], [], [], []
    last = [None] * U8_NG
    min_gap = np.inf  # smallest gap among the top r+1 singular values of a GaLore gradient
    try:
        for s in range(1, U8_S + 1):
            gs = [torch.from_numpy(make_grad8(rng, sh)) for _, sh in U8_SHAPES]
            for g in gs[:U8_NG]:
                sv = np.linalg.svd(g.numpy().astype(np.float64), compute_uv=False)[:U8_RANK + 1]
                min_gap = min(min_gap, float(np.min(sv[:-1] - sv[1:])))
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()
            grads_steps.append(flat(gs))
            params_steps.append(flat(params))
            last = track_refresh(opt, params[:U8_NG], last, s, refresh_steps, projs)
    finally:
        restore(saved)
    assert refresh_steps == U8_REFRESH, f"refreshes at {refresh_steps}, expected {U8_REFRESH}"
    # every step: A, B (low-rank) and E through the 8-bit kernel, d through the 32-bit one
    assert calls == {"8bit": 3 * U8_S, "32bit": U8_S}, calls
    states = []
    for (name, sh), p in zip(U8_SHAPES, params):
        st = opt.state[p]
        assert st["step"] == U8_S
        states.append(f"{name}{list(sh)} state {list(st['state1'].shape)} {st['state1'].dtype}")
        want8 = len(sh) == 2
        assert (st["state1"].dtype == torch.uint8) == want8, (name, st["state1"].dtype)
    sides = []
    for (name, sh), P in zip(U8_SHAPES[:U8_NG], projs[0]):
        side = expected_side(sh, "std")
        want = (U8_RANK, sh[1]) if side == "right" else (sh[0], U8_RANK)
        assert tuple(P.shape) == want and P.dtype == torch.float32, (name, P.shape, P.dtype)
        sides.append(side)
    assert sides == ["right", "left"]

    header = unit_header(UNIT8_MAGIC, U8_SHAPES, U8_S, U8_RANK, U8_GAP, 0, len(U8_REFRESH), U8_NG,
                         [proj_side(sd) for sd in sides], [U8_LR, U8_B1, U8_B2, U8_EPS, U8_WD, U8_SCALE])
    header[12] = 1  # optimizer: GaLoreAdamW8bit
    path = os.path.join(OUT, fname)
    write_unit(path, header, U8_SHAPES, p0, zip(grads_steps, params_steps), [flat(r) for r in projs])
    print(f"\nunit8bit (GaLoreAdamW8bit via the kernel model): refreshes at steps {refresh_steps}; "
          f"{calls['8bit']} 8-bit and {calls['32bit']} 32-bit kernel calls; smallest gap among the "
          f"top {U8_RANK + 1} singular values of a GaLore gradient {min_gap:.2e}")
    print("  " + "; ".join(states) + f"; sides A {sides[0]}, B {sides[1]}")
    err, worst = replay_unit8bit(ref, path)
    print(f"unit8bit: float32 numpy replay from the file (stored projectors, kernel model): "
          f"max |dp| {err:.3e} over all steps (worst in {worst})")
    assert err < 1e-5
    return path


def replay_unit8bit(ref, path):
    """Re-read unit8bit.bin and redo GaLoreAdamW8bit from it in float32 numpy: project with
    the stored projectors, the kernel model on R with a zero parameter and no decay, project
    back times scale, add, then p += -lr*wd*p; E and d straight through the kernel model with
    the decay inside. Checks the layout and the decay order. Not bit exact (numpy's matmul is
    not torch's), so a quantization byte can in principle flip: reports the worst |dp|."""
    h, hf, npar, S, r, gap, nr, ng, side, dims, p, gs, ps, projs = read_unit(path, f32)
    assert h[0] == UNIT8_MAGIC and h[12] == 1
    lr, b1, b2, eps, wd, scale = [f32(x) for x in hf[16:22]]
    map_m = BF.create_dynamic_map(signed=True).numpy().astype(f32)
    map_v = BF.create_dynamic_map(signed=False).numpy().astype(f32)
    st = [None] * npar
    err, worst = 0.0, ""
    for s in range(1, S + 1):
        k = (s - 1) // gap
        for i in range(npar):
            g = gs[s - 1][i]
            if i < ng:
                P = projs[k][i]
                g = (g @ P.T if side[i] == 0 else P.T @ g).astype(f32)
            x = np.zeros_like(g) if i < ng else p[i]
            dec = f32(0) if i < ng else wd
            n = g.size
            if st[i] is None:
                if n >= 4096:
                    nb = (n + 255) // 256
                    st[i] = [np.zeros(n, np.uint8), np.zeros(n, np.uint8), np.zeros(nb, f32), np.zeros(nb, f32)]
                else:
                    st[i] = [np.zeros(n, f32), np.zeros(n, f32)]
            if n >= 4096:
                xn, *st[i] = ref.ref8_step(x.reshape(-1), g.reshape(-1), *st[i], map_m, map_v,
                                           b1, b2, eps, lr, dec, s)
            else:
                xn, *st[i] = ref.ref32_step(x.reshape(-1), g.reshape(-1), *st[i], b1, b2, eps, lr, dec, s)
            xn = xn.reshape(g.shape)
            if i < ng:
                P = projs[k][i]
                u = ((xn @ P if side[i] == 0 else P @ xn) * scale).astype(f32)
                p[i] = (p[i] + u).astype(f32)
                p[i] = (p[i] + (-lr * wd) * p[i]).astype(f32)
            else:
                p[i] = xn
            e = float(np.abs(p[i] - ps[s - 1][i]).max())
            if e > err:
                err, worst = e, f"param {i} step {s}"
    return err, worst


# ----------------------------------------------------------------------------
# B, C. end to end on the tiny model


def param_table(cfg):
    names = ["model.embed_tokens.weight"]
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                  p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                  p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight",
                  p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight"]
    names += ["model.norm.weight", "lm_head.weight"]
    return names


def load_tokens():
    raw = open(os.path.join(TINY, "train.bin"), "rb").read()
    h = np.frombuffer(raw, "<i4", 256)
    assert h[0] == SHARD_MAGIC and h[1] == 1
    return np.frombuffer(raw, "<u2", int(h[2]), 1024).astype(np.int64)


def run_e2e(kind, toks, fix_bnb_args=True):
    model = LlamaForCausalLM.from_pretrained(TINY, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    V = cfg.vocab_size
    names = param_table(cfg)
    named = dict(model.named_parameters())
    assert set(names) == set(named) and all(p.dtype == torch.float32 for p in named.values())
    # param groups exactly as torchrun_main.py builds them
    galore_params, galore_names = [], []
    for mname, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if not any(k in mname for k in ["attn", "mlp"]):
            continue
        galore_params.append(module.weight)
        galore_names.append(mname + ".weight")
    ids = [id(p) for p in galore_params]
    regular = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": regular},
              {"params": galore_params, "rank": E_RANK, "update_proj_gap": E_GAP,
               "scale": E_SCALE, "proj_type": "std"}]
    if kind == "adamw":
        opt = GaLoreAdamW(groups, lr=E_LR, weight_decay=E_WD, no_deprecation_warning=True)
    else:
        opt = GaLoreAdamW8bit(groups, lr=E_LR, weight_decay=E_WD)
        # galore-torch 1.0 passes (..., min_8bit_size, percentile_clipping=100, block_wise=True)
        # positionally to Optimizer2State, whose bnb 0.50 signature is (..., min_8bit_size,
        # max_unorm, skip_zeros): so max_unorm = 100 and skip_zeros = True. With max_unorm > 0
        # the 32-bit kernel scales the update by max_unorm*||p||/||u|| when ||u|| is larger,
        # and ||p|| is 0 for GaLore's zeroed low-rank stand-in: every GaLore matrix with
        # fp32 states (low-rank numel < 4096) gets an update of exactly 0. The bnb versions
        # the paper used had those two slots as percentile_clipping/block_wise (no-ops here),
        # so restore their meaning: no update-norm cap, no zero skipping.
        assert opt.args.max_unorm == 100 and opt.args.skip_zeros is True, "bnb args changed"
        if fix_bnb_args:
            opt.args.max_unorm = 0.0
            opt.args.skip_zeros = False
    eps = opt.defaults["eps"]
    b1, b2 = opt.defaults["betas"]
    tok = torch.from_numpy(toks)
    p_init = flat([named[n] for n in names])
    losses, p_mid = [], None
    refresh = {n: [] for n in galore_names}
    last = {n: None for n in galore_names}
    for k in range(STEPS):
        buf = tok[k * B * T: k * B * T + B * T + 1]
        x = buf[:-1].view(B, T)
        y = buf[1:].view(B, T)
        # set_to_none matters for the 8-bit optimizer: it leaves p.grad = the LOW-RANK gradient,
        # so zeroing in place would make the next backward accumulate into a wrongly shaped grad
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        losses.append(loss.item())
        loss.backward()
        opt.step()
        for n, p in zip(galore_names, galore_params):
            om = opt.state[p]["projector"].ortho_matrix
            if om is not last[n]:
                refresh[n].append(k + 1)
            last[n] = om
        if k + 1 == E_MID:
            p_mid = flat([named[n] for n in names])
    p_final = flat([named[n] for n in names])
    for n in galore_names:
        assert refresh[n] == E_REFRESH, f"{n}: refreshes at {refresh[n]}"
    sides = []
    for n, p in zip(galore_names, galore_params):
        st = opt.state[p]
        om = st["projector"].ortho_matrix
        side = expected_side(tuple(p.shape), "std")
        want = (E_RANK, p.shape[1]) if side == "right" else (p.shape[0], E_RANK)
        assert tuple(om.shape) == want, (n, om.shape)
        lowrank = st["exp_avg"] if kind == "adamw" else st["state1"]
        sides.append((n, tuple(p.shape), side, tuple(lowrank.shape), str(lowrank.dtype)))
    plain = []
    for n in names:
        if n in galore_names:
            continue
        st = opt.state[named[n]]
        s1 = st["exp_avg"] if kind == "adamw" else st["state1"]
        plain.append((n, tuple(named[n].shape), str(s1.dtype)))
    # largest change of any GaLore matrix over the run
    off, gl_change = 0, 0.0
    for n in names:
        sz = named[n].numel()
        if n in galore_names:
            gl_change = max(gl_change, float(np.abs(p_final[off:off + sz] - p_init[off:off + sz]).max()))
        off += sz
    return dict(losses=np.array(losses, dtype=f32), p_final=p_final, p_mid=p_mid, sides=sides,
                gl_change=gl_change,
                plain=plain, eps=eps, b1=b1, b2=b2, P=len(p_final))


def write_e2e(res, magic, fname):
    header = np.zeros(256, dtype="<i4")
    header[0:9] = [magic, 1, B, T, STEPS, E_RANK, E_GAP, res["P"], E_MID]
    for i, v in enumerate([E_LR, E_SCALE, E_WD, res["eps"], res["b1"], res["b2"]]):
        header[16 + i] = fbits(v)
    path = os.path.join(OUT, fname)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(res["losses"].astype("<f4").tobytes())
        f.write(res["p_final"].astype("<f4").tobytes())
        f.write(res["p_mid"].astype("<f4").tobytes())
    return path


# ----------------------------------------------------------------------------
# the bnb -> numpy CUDA-kernel model patch


def install_kernel_model(ref):
    calls = {"8bit": 0, "32bit": 0}

    def upd32(optimizer_name, g, p, state1, beta1, eps, step, lr, state2=None, beta2=0.0,
              beta3=0.0, alpha=0.0, weight_decay=0.0, gnorm_scale=1.0, unorm_vec=None,
              max_unorm=0.0, skip_zeros=False):
        assert optimizer_name == "adam" and beta3 == 0.0 and alpha == 0.0
        assert gnorm_scale == 1.0 and unorm_vec is None and max_unorm == 0.0 and not skip_zeros
        for t in (g, p, state1, state2):
            assert t.dtype == torch.float32 and t.is_contiguous()
        pn, m, v = ref.ref32_step(p.numpy().reshape(-1), g.numpy().reshape(-1),
                                  state1.numpy().reshape(-1), state2.numpy().reshape(-1),
                                  beta1, beta2, eps, lr, weight_decay, step)
        p.copy_(torch.from_numpy(pn).view_as(p))
        state1.copy_(torch.from_numpy(m).view_as(state1))
        state2.copy_(torch.from_numpy(v).view_as(state2))
        calls["32bit"] += 1

    def upd8(optimizer_name, g, p, state1, state2, beta1, beta2, beta3, alpha, eps, step, lr,
             qmap1, qmap2, absmax1, absmax2, weight_decay=0.0, gnorm_scale=1.0, skip_zeros=False):
        assert optimizer_name == "adam" and beta3 == 0.0 and alpha == 0.0
        assert gnorm_scale == 1.0 and not skip_zeros
        assert g.dtype == torch.float32 and p.dtype == torch.float32
        pn, qm, qv, am, av = ref.ref8_step(
            p.numpy().reshape(-1), g.numpy().reshape(-1), state1.numpy().reshape(-1),
            state2.numpy().reshape(-1), absmax1.numpy().copy(), absmax2.numpy().copy(),
            qmap1.numpy().astype(f32), qmap2.numpy().astype(f32),
            beta1, beta2, eps, lr, weight_decay, step)
        p.copy_(torch.from_numpy(pn).view_as(p))
        state1.copy_(torch.from_numpy(qm).view_as(state1))
        state2.copy_(torch.from_numpy(qv).view_as(state2))
        absmax1.copy_(torch.from_numpy(am))
        absmax2.copy_(torch.from_numpy(av))
        calls["8bit"] += 1

    saved = (BF.optimizer_update_32bit, BF.optimizer_update_8bit_blockwise)
    BF.optimizer_update_32bit = upd32
    BF.optimizer_update_8bit_blockwise = upd8
    return saved, calls


def restore(saved):
    BF.optimizer_update_32bit, BF.optimizer_update_8bit_blockwise = saved


# ----------------------------------------------------------------------------


def install_sign_convention():
    from galore_torch.galore_projector import GaLoreProjector
    orig = GaLoreProjector.get_orthogonal_matrix

    def fixed(self, weights, rank, type):
        out = orig(self, weights, rank, type)
        if type not in ("left", "right"):
            return out
        vecs = out if type == "right" else out.t()          # one basis vector per row
        idx = vecs.abs().argmax(dim=1)                        # first index of the largest |entry|
        sign = torch.sign(vecs.gather(1, idx[:, None]))
        sign[sign == 0] = 1
        vecs = vecs * sign
        return (vecs if type == "right" else vecs.t()).contiguous()

    GaLoreProjector.get_orthogonal_matrix = fixed


def main():
    install_sign_convention()
    os.makedirs(OUT, exist_ok=True)
    files = [run_unit("std", "unit.bin"), run_unit("reverse_std", "unit_reverse.bin")]

    toks = load_tokens()
    assert len(toks) >= STEPS * B * T + 1
    res = run_e2e("adamw", toks)
    files.append(write_e2e(res, E2E_MAGIC, "e2e_adamw.bin"))
    print(f"\ne2e GaLoreAdamW (eps {res['eps']}, betas ({res['b1']}, {res['b2']})): P = {res['P']}, "
          f"refreshes at steps {E_REFRESH} for every GaLore matrix")
    for n, sh, side, lsh, dt in res["sides"]:
        print(f"  {n:38s} {str(list(sh)):9s} {side:5s}  low-rank state {list(lsh)} {dt}")
    print("  plain: " + ", ".join(n for n, _, _ in res["plain"]))
    for k, l in enumerate(res["losses"]):
        print(f"  step {k + 1:2d}  loss {l:.7f}")
    assert res["losses"][-1] < res["losses"][0]

    ref = load_adam8bit_ref()
    saved, calls = install_kernel_model(ref)
    try:
        res8 = run_e2e("adamw8bit", toks)
    finally:
        restore(saved)
    files.append(write_e2e(res8, E2E8_MAGIC, "e2e_adamw8bit.bin"))
    print(f"\ne2e GaLoreAdamW8bit, bnb kernels replaced by make_adam8bit_reference's numpy model "
          f"(eps {res8['eps']}; {calls['8bit']} blockwise 8-bit and {calls['32bit']} 32-bit kernel calls)")
    for n, sh, side, lsh, dt in res8["sides"]:
        print(f"  {n:38s} {str(list(sh)):9s} {side:5s}  low-rank state {list(lsh)} {dt}")
    print("  plain: " + ", ".join(f"{n} ({dt})" for n, _, dt in res8["plain"]))
    # bitsandbytes' own CPU path, for comparison only: with the args fixed, and as installed
    resc = run_e2e("adamw8bit", toks)
    resb = run_e2e("adamw8bit", toks, fix_bnb_args=False)
    print("  step  loss (stored)   bnb CPU path   bnb CPU path, args as installed")
    for k in range(STEPS):
        print(f"  {k + 1:4d}  {res8['losses'][k]:.7f}      {resc['losses'][k]:.7f}      {resb['losses'][k]:.7f}")
    print(f"  bnb CPU path vs kernel model: max |dp| after step {E_MID} "
          f"{np.abs(resc['p_mid'] - res8['p_mid']).max():.3e}, after step {STEPS} "
          f"{np.abs(resc['p_final'] - res8['p_final']).max():.3e}")
    print(f"  largest change of a GaLore weight over {STEPS} steps: stored {res8['gl_change']:.3e}, "
          f"as installed (max_unorm 100, skip_zeros) {resb['gl_change']:.3e}")
    assert res8["gl_change"] > 1e-3 and resb["gl_change"] == 0.0
    # 8-bit v underflow: an element with a tiny gradient in a block with a large one gets
    # v/absmax below half the smallest unsigned map entry -> v byte 0, while m survives, so
    # m/(0 + c2*eps) with eps 1e-8 throws the weight far away (seen in embed_tokens here)
    big = lambda r: int(np.sum(np.abs(r["p_final"] - res["p_final"]) > 1.0))
    print(f"  params that moved > 1.0 away from the GaLoreAdamW run (8-bit v-underflow blow-ups): "
          f"stored {big(res8)}, bnb CPU path {big(resc)}; max |p| stored {np.abs(res8['p_final']).max():.3f}")
    assert res8["losses"][-1] < res8["losses"][0]

    files.append(run_unit8bit(ref, "unit8bit.bin"))

    total = 0
    for fn in files:
        sz = os.path.getsize(fn)
        total += sz
        print(f"wrote {fn} ({sz} bytes)")
    print(f"total {total} bytes; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"bitsandbytes {bitsandbytes.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
