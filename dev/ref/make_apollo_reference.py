# make_apollo_reference.py: reference data for the APOLLO optimizers, produced by the official
# apollo-torch 1.0.3 package (apollo_torch.APOLLOAdamW, proj "random") itself, on CPU, in
# float32, single-threaded. Writes dev/ref/apollo/{unit_channel.bin, unit_mini.bin,
# unit_tensor_reverse.bin}.
# Run (from anywhere, deterministic, ~2 s): python dev/ref/make_apollo_reference.py
# Needs (pinned): apollo-torch==1.0.3, torch (2.15.0 made the committed files), numpy,
# transformers (apollo_torch imports it). CI never runs this; test_llama.c reads the outputs.
#
# The projection. apollo-torch draws P = randn(shape) / sqrt(r) from torch's CPU generator seeded
# per parameter (state["seed"] = its 1-based index over the groups, then next_seed() after each
# draw). galore.c draws P from its own counter-based generator (galore.h galore_gaussian, the
# same on CPU and GPU and on every data-parallel rank) with the seed apollo_proj_seed(tensor,
# round), round = (t - 1) / T. So that everything else can be compared exactly, this script
# INJECTS OUR P into the package: GradientProjector.get_orthogonal_matrix is replaced by
# ours_projector(), a bit-exact numpy transcription of galore_gaussian (fp32 operations in
# numpy's IEEE float32; each fmaf as a float64 a*b + c, exact product, rounded once in double and
# once to float: the same as a single rounding unless the double sum falls exactly on a float
# midpoint, probability ~2^-29 per operation) times float32(1 / sqrt(r)). The stored projectors
# are what the package used; test_llama.c checks that ours are the same bits, then that the
# weights, moments and limiter states follow.
#
# All files are little-endian: a header of 256 int32 (float values as their f32 bit pattern in
# the slots named "f"), then the arrays listed, back to back, no padding.
#   header i32: [0] magic 20250105, [1] version 1, [2] NP params (4), [3] S steps (8), [4] rank,
#     [5] update_proj_gap (3), [6] proj_type (0 std, 1 reverse_std), [7] NR refreshes (3),
#     [8] NG APOLLO params (3: the first NG of the table), [9..12) side of each APOLLO param
#     (0 right: P [r,n], R = G P^T; 1 left: P [m,r], R = P^T G), [12] scale_type (0 channel,
#     1 tensor), [13] optimizer (0 apollo_adamw, 1 apollo_mini),
#     f [16] lr, [17] beta1, [18] beta2, [19] eps, [20] weight_decay, [21] scale
#   dims i32[NP*3]: per param ndim, rows, cols (cols = 1 for 1-D); params in this order:
#     A [40,24] (m > n), B [24,40] (m < n), Cq [32,32], d [24] (1-D, the plain group)
#   p0 f32[N] initial params (concatenated, flat row-major; N = 2968)
#   for step s = 1..S: grads f32[N] fed at step s, params f32[N] after step s, then
#     limiter f32[NG]: state["scaled_grad"] (the norm-growth limiter's previous norm) after step s
#   for refresh k = 1..NR (steps 1, 4, 7): the NG projectors ([r,n] right, [m,r] left), concatenated
#   final moments: for each APOLLO param exp_avg then exp_avg_sq (R's shape), concatenated
# Optimizer: APOLLOAdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-6, weight_decay 0.05,
# correct_bias True, scale_front False, disable_nl False), APOLLO group of A, B, Cq with
# proj "random", update_proj_gap 3 and the file's rank / scale_type / scale / proj_type; d in a
# plain group (HF AdamW). Gradients: N(0, 1) * 0.1 * g_s with a per-step factor
# g_s = 1, 0.5, 2, 1, 0.3, 3, 1, 1.2, so the limiter both holds (a growth above 1.01) and
# passes (a shrink) within each file.
#   unit_channel.bin: rank 7, channel, scale 2, std (apollo_adamw with scale != 1)
#   unit_mini.bin: rank 1, tensor, scale 128, std (apollo_mini exactly as the README sets it)
#   unit_tensor_reverse.bin: rank 5, tensor, scale 1, reverse_std (channel-wise scaling with a
#     side other than std's does not run in the package: its norm_dim follows the shape, not
#     the side, and the factor does not broadcast; galore.c takes the channels R keeps)
# unit8bit.bin (apollo_adamw8bit: not in the package, which keeps fp32 moments): magic 20250106,
#   [13] optimizer 2; the layout above with NP 3: A [96,80] (right, R [96,56]) and B [80,96]
#   (left, R [56,96]) at rank 56, so both low-rank states (5376 >= 4096 elements) take
#   bitsandbytes' 8-bit blockwise kernel, and d [24] (the plain path: bnb's 32-bit kernel, decay
#   inside); NG 2, S 7, gap 3, channel-wise, scale 1, eps 1e-8, wd 0.05; the final "moments" are
#   the dequantized m, v (map[q] * absmax). Made by apollo_np_step below: galore.h's APOLLO in
#   numpy float32 around the numpy model of the kernels (make_adam8bit_reference.py). That the
#   numpy APOLLO is the package's is checked here: with HF fp32 moments it reproduces
#   unit_channel.bin (the package's run) to fp32 rounding before the 8-bit file is written.
import math
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import apollo_torch  # noqa: E402
from apollo_torch import APOLLOAdamW  # noqa: E402
from apollo_torch import random_projector  # noqa: E402

from refio import flat, track_refresh, unit_header, write_unit  # noqa: E402
from refio import read_unit as refio_read_unit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "apollo")
f32, f64, u64 = np.float32, np.float64, np.uint64
MAGIC = 20250105
SHAPES = [("A", (40, 24)), ("B", (24, 40)), ("Cq", (32, 32)), ("d", (24,))]
NG, S, GAP = 3, 8, 3
LR, B1, B2, EPS, WD = 1e-2, 0.9, 0.999, 1e-6, 0.05
GSCALE = [1.0, 0.5, 2.0, 1.0, 0.3, 3.0, 1.0, 1.2]
REFRESH = [1, 4, 7]
torch.set_num_threads(1)

# ----------------------------------------------------------------------------
# galore.h's generator, transcribed

M64 = (1 << 64) - 1


def mix64(z):
    z = z.astype(u64)
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    return z ^ (z >> u64(31))


def apollo_proj_seed(tensor, rnd):
    return int(mix64(np.array([0x41504F4C4C4F5250 ^ (tensor << 40) ^ rnd], dtype=u64))[0])


def fma(a, b, c):
    return (f64(a) * f64(b) + f64(c)).astype(f32) if np.ndim(a) or np.ndim(b) or np.ndim(c) else f32(f64(a) * f64(b) + f64(c))


def F(x):
    """a decimal literal as C's `x f`: the nearest float (via Python's correctly rounded double,
    checked against a direct rounding of the decimal by Fraction)"""
    from fractions import Fraction
    v = f32(float(x))
    exact = Fraction(x)
    # the neighbours of v: the nearest float to the exact decimal is one of them
    cands = [np.nextafter(v, f32(-np.inf)), v, np.nextafter(v, f32(np.inf))]
    best = min(cands, key=lambda c: abs(Fraction(float(c)) - exact))
    assert best == v, x
    return v


def galore_gaussian(seed, index):
    index = np.asarray(index, dtype=u64)
    with np.errstate(over="ignore"):
        h = mix64(u64(seed) + (index + u64(1)) * u64(0x9E3779B97F4A7C15))
    k = ((h >> u64(40)).astype(np.int64) + 1)
    j = ((h >> u64(16)) & u64(0xFFFFFF)).astype(np.int64)
    e = np.frexp(k.astype(f64))[1].astype(np.int64) - 1  # floor(log2 k), exact for k <= 2^24
    mant = np.where(e <= 23, k << np.maximum(23 - e, 0), k >> np.maximum(e - 23, 0))
    bits = ((127 << 23) | (mant & 0x7FFFFF)).astype(np.uint32)
    fv = bits.view(f32).copy()
    big = fv > F("1.41421356")
    fv = np.where(big, fv * f32(0.5), fv).astype(f32)
    e = e + big
    s = ((fv - f32(1)) / (fv + f32(1))).astype(f32)
    z = (s * s).astype(f32)
    p = np.full_like(z, F("0.0769230769"))
    for c in ["0.0909090909", "0.111111111", "0.142857143", "0.2", "0.333333333", "1.0"]:
        p = fma(p, z, F(c))
    lnu1 = fma((e - 24).astype(f32), F("0.693147181"), ((f32(2) * s).astype(f32) * p).astype(f32))
    radius = np.sqrt((f32(-2) * lnu1).astype(f32)).astype(f32)
    quad = j >> 22
    x = ((j & 0x3FFFFF).astype(f32) * F("2.384185791015625e-07")).astype(f32)
    fold = x > f32(0.5)
    x = np.where(fold, f32(1) - x, x).astype(f32)
    x2 = (x * x).astype(f32)
    c = np.full_like(x2, F("-2.520204237e-05"))
    for t in ["9.192602748e-04", "-2.086348076e-02", "2.536695079e-01", "-1.233700550e+00", "1.0"]:
        c = fma(c, x2, F(t))
    sn = np.full_like(x2, F("-3.598843235e-06"))
    for t in ["1.604411848e-04", "-4.681754135e-03", "7.969262625e-02", "-6.459640975e-01", "1.570796327e+00"]:
        sn = fma(sn, x2, F(t))
    sn = (sn * x).astype(f32)
    cw = np.where(fold, sn, c)
    sw = np.where(fold, c, sn)
    v = np.select([quad == 0, quad == 1, quad == 2], [cw, -sw, -cw], sw).astype(f32)
    return (radius * v).astype(f32)


def ours_projector(tensor, rnd, shape, r):
    seed = apollo_proj_seed(tensor, rnd)
    n = shape[0] * shape[1]
    z = galore_gaussian(seed, np.arange(n, dtype=u64))
    scale = f32(1.0 / math.sqrt(r))  # galore.h apollo_proj_scale: (float)(1 / sqrt((double)r))
    return (z * scale).astype(f32).reshape(shape)


# the injection: the package's projector calls get_orthogonal_matrix(grad, rank, type, seed) at
# each refresh (state step % gap == 0); ours knows the tensor (its initial seed - 1: the params
# are numbered over the groups from 1, the APOLLO group first) and the round (the step / gap)
_orig_project = random_projector.GradientProjector.project


def _project(self, full_rank_grad, it):
    if not hasattr(self, "_tensor"):
        self._tensor = self.seed - 1
    self._iter = it
    return _orig_project(self, full_rank_grad, it)


def _get_orthogonal_matrix(self, weights, rank, type, seed):
    m, n = weights.shape
    shape = (m, rank) if type == "left" else (rank, n)
    P = ours_projector(self._tensor, self._iter // self.update_proj_gap, shape, rank)
    return torch.from_numpy(P.copy())


random_projector.GradientProjector.project = _project
random_projector.GradientProjector.get_orthogonal_matrix = _get_orthogonal_matrix


def expected_side(shape, proj_type):
    m, n = shape
    if proj_type == "std":
        return "right" if m >= n else "left"
    return "left" if m >= n else "right"


def run_unit(fname, rank, scale_type, scale, proj_type, kind):
    rng = np.random.default_rng(20250105)
    params = [torch.nn.Parameter(torch.from_numpy((rng.normal(size=s) * 0.02).astype(f32))) for _, s in SHAPES]
    p0 = flat(params)
    groups = [{"params": params[:NG], "rank": rank, "proj": "random", "scale_type": scale_type, "scale": scale,
               "update_proj_gap": GAP, "proj_type": proj_type},
              {"params": params[NG:]}]
    opt = APOLLOAdamW(groups, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD)
    assert [opt.state[p]["seed"] for p in params] == [1, 2, 3, 4]
    grads_steps, params_steps, lim_steps, projs, refresh_steps = [], [], [], [], []
    last = [None] * NG
    for s in range(1, S + 1):
        gs = [torch.from_numpy((rng.normal(size=sh) * 0.1 * GSCALE[s - 1]).astype(f32)) for _, sh in SHAPES]
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
        grads_steps.append(flat(gs))
        params_steps.append(flat(params))
        lim_steps.append(np.array([float(opt.state[p]["scaled_grad"]) for p in params[:NG]], dtype=f32))
        last = track_refresh(opt, params[:NG], last, s, refresh_steps, projs)
    assert refresh_steps == REFRESH, refresh_steps
    sides = [expected_side(sh, proj_type) for _, sh in SHAPES[:NG]]
    for (name, sh), P, sd in zip(SHAPES[:NG], projs[0], sides):
        want = (rank, sh[1]) if sd == "right" else (sh[0], rank)
        assert tuple(P.shape) == want, (name, P.shape)
    moments = []
    for p in params[:NG]:
        st = opt.state[p]
        assert st["step"] == S and st["exp_avg"].numel() < p.numel()
        moments += [st["exp_avg"], st["exp_avg_sq"]]
    # the limiter must both hold and pass in this file: ratios of consecutive ||S||
    header = unit_header(MAGIC, SHAPES, S, rank, GAP, {"std": 0, "reverse_std": 1}[proj_type], len(REFRESH), NG,
                         [0 if sd == "right" else 1 for sd in sides], [LR, B1, B2, EPS, WD, scale])
    header[12] = {"channel": 0, "tensor": 1}[scale_type]
    header[13] = kind
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, fname)
    write_unit(path, header, SHAPES, p0, zip(grads_steps, params_steps, lim_steps), [flat(r) for r in projs],
               [flat(moments)])
    err, held = replay(path)
    print(f"{fname}: rank {rank} {scale_type} scale {scale} {proj_type}; sides "
          + ", ".join(f"{n}{list(sh)} {sd}" for (n, sh), sd in zip(SHAPES, sides))
          + f"; limiter held on {held} of {NG * (S - 1)} (tensor, step) pairs; float64 replay max |dp| {err:.2e}; "
          f"{os.path.getsize(path)} bytes")
    assert err < 1e-5 and 0 < held < NG * (S - 1)


def read_unit(path, dtype):
    """parse a unit*.bin file (refio's layout): the header fields, the initial params p, per step
    (grads, params, limiter), the projectors of each refresh, as dtype; the trailing final
    moments (R's shape, m x r right or r x n left, twice per tensor) are checked for size only"""
    h, hf, dims, side, p, steps, projs, rest = refio_read_unit(path, dtype, step_limiters=True)
    npar, s_, r, gap, ng, tw = [int(x) for x in (h[2], h[3], h[4], h[5], h[8], h[12])]
    moments = sum(2 * (int(dims[i][1]) * r if side[i] == 0 else r * int(dims[i][2])) for i in range(ng))
    assert rest.size == moments, "trailing bytes"
    hp = [float(x) for x in hf[16:22]]
    return npar, s_, r, gap, ng, tw, side, hp, p, steps, projs


def replay(path):
    """Re-read the file and redo APOLLO (galore.h's description) in float64 with the stored
    projectors: checks the layout and that the package does what galore.h says"""
    npar, s_, r, gap, ng, tw, side, (lr, b1, b2, eps, wd, scale), p, steps, projs = read_unit(path, f64)
    M, V, prev = [None] * npar, [None] * npar, [None] * ng
    err, held = 0.0, 0
    for s in range(1, s_ + 1):
        gs, ps, lim = steps[s - 1]
        k = (s - 1) // gap
        step = lr * math.sqrt(1 - b2 ** s) / (1 - b1 ** s)
        for i in range(npar):
            G = gs[i]
            g = G
            if i < ng:
                P = projs[k][i]
                g = G @ P.T if side[i] == 0 else P.T @ G
            if M[i] is None:
                M[i], V[i] = np.zeros_like(g), np.zeros_like(g)
            M[i] = b1 * M[i] + (1 - b1) * g
            V[i] = b2 * V[i] + (1 - b2) * g * g
            D = M[i] / (np.sqrt(V[i]) + eps)
            if i < ng:
                if tw:
                    f = np.linalg.norm(D) / (np.linalg.norm(g) + 1e-8)
                elif side[i] == 0:
                    f = (np.linalg.norm(D, axis=1) / (np.linalg.norm(g, axis=1) + 1e-8))[:, None]
                else:
                    f = (np.linalg.norm(D, axis=0) / (np.linalg.norm(g, axis=0) + 1e-8))[None, :]
                Sg = G * f
                nrm = np.linalg.norm(Sg)
                if prev[i] is None:
                    prev[i] = nrm
                else:
                    lm = max(nrm / (prev[i] + 1e-8), 1.01) / 1.01
                    held += lm > 1.0
                    Sg = Sg / lm
                    prev[i] = nrm / lm
                assert abs(prev[i] - lim[i]) <= 1e-5 * prev[i], (s, i, prev[i], lim[i])
                D = Sg * math.sqrt(scale)
            p[i] = p[i] - step * D
            p[i] = p[i] - lr * wd * p[i]
            err = max(err, float(np.abs(p[i] - ps[i]).max()))
    return err, held


# ----------------------------------------------------------------------------
# apollo_adamw8bit: galore.h's APOLLO in numpy float32, moments through the kernel model

U8_SHAPES = [("A", (96, 80)), ("B", (80, 96)), ("d", (24,))]
U8_NG, U8_S, U8_RANK, U8_EPS = 2, 7, 56, 1e-8


def load_kernel_model():
    import importlib.util
    path = os.path.join(HERE, "make_adam8bit_reference.py")
    spec = importlib.util.spec_from_file_location("make_adam8bit_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def apollo_np_step(W, G, P, side, st, t, hp, k8=None):
    """one APOLLO step of matrix W (m, n) with gradient G and projector P, float32 as galore.h;
    st: the tensor's state dict; hp: (lr, b1, b2, eps, wd, scale, tensorwise); k8: (kernel model,
    map_m, map_v) for the 8-bit kind, else HF fp32 moments"""
    lr, b1, b2, eps, wd, scale, tw = hp
    b1f, b2f = f32(b1), f32(b2)
    R = (G @ P.T if side == 0 else P.T @ G).astype(f32)
    if k8 is None:
        if "m" not in st:
            st["m"], st["v"] = np.zeros_like(R), np.zeros_like(R)
        st["m"] = (st["m"] * b1f + (f32(1) - b1f) * R).astype(f32)
        st["v"] = (st["v"] * b2f + (f32(1) - b2f) * R * R).astype(f32)
        D = (st["m"] / (np.sqrt(st["v"]) + f32(eps))).astype(f32)
    else:
        mod, map_m, map_v = k8
        n = R.size
        Z = np.zeros(n, dtype=f32)
        if "qm" not in st:
            nb = (n + 255) // 256
            st["qm"], st["qv"] = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
            st["am"], st["av"] = np.zeros(nb, f32), np.zeros(nb, f32)
        Z, st["qm"], st["qv"], st["am"], st["av"] = mod.ref8_step(Z, R.reshape(-1), st["qm"], st["qv"], st["am"], st["av"],
                                                                  map_m, map_v, b1, b2, eps, 1.0, 0.0, t)
        ds = f32(-(1.0 - float(b1f) ** t) / math.sqrt(1.0 - float(b2f) ** t))  # galore.h apollo_dir_scale
        D = (Z * ds).astype(f32).reshape(R.shape)
    R64, D64, G64 = R.astype(f64), D.astype(f64), G.astype(f64)
    if tw:
        ssR, ssD, ssG = np.array([np.sum(R64 ** 2)]), np.array([np.sum(D64 ** 2)]), np.array([np.sum(G64 ** 2)])
    else:
        ax = 1 if side == 0 else 0
        ssR, ssD, ssG = np.sum(R64 ** 2, axis=ax), np.sum(D64 ** 2, axis=ax), np.sum(G64 ** 2, axis=ax)
    sc = (np.sqrt(ssD).astype(f32) / (np.sqrt(ssR).astype(f32) + f32(1e-8))).astype(f32)
    nrm = f32(math.sqrt(float(np.sum(sc.astype(f64) ** 2 * ssG))))
    if "prev" not in st:
        st["prev"], lim = nrm, f32(1)
    else:
        ratio = f32(nrm / (st["prev"] + f32(1e-8)))
        lim = f32(ratio / f32(1.01)) if ratio > f32(1.01) else f32(1)
        st["prev"] = f32(nrm / lim)
    scf = sc[0] if tw else (sc[:, None] if side == 0 else sc[None, :])
    step = f32(float(f32(lr)) * math.sqrt(1.0 - float(b2f) ** t) / (1.0 - float(b1f) ** t))
    x = ((G * scf).astype(f32) / lim).astype(f32) * f32(math.sqrt(scale))
    W = (W + (-step) * x.astype(f32)).astype(f32)
    if wd > 0:
        W = (W + f32(-f32(lr) * f32(wd)) * W).astype(f32)
    return W


def check_np_against_package(path):
    """the numpy APOLLO (fp32 HF moments) on unit_channel.bin's gradients and projectors: the
    package's weights to fp32 rounding"""
    npar, s_, r, gap, ng, tw, side, (lr, b1, b2, eps, wd, scale), p0, steps, projs = read_unit(path, f32)
    Ws = [x.copy() for x in p0[:ng]]
    sts = [{} for _ in range(ng)]
    worst = 0.0
    for t in range(1, s_ + 1):
        g, pref, _ = steps[t - 1]
        for i in range(ng):
            Ws[i] = apollo_np_step(Ws[i], g[i], projs[(t - 1) // gap][i], side[i], sts[i], t, (lr, b1, b2, eps, wd, scale, tw))
            worst = max(worst, float(np.abs(Ws[i] - pref[i]).max() / np.abs(pref[i]).max()))
    return worst


def run_unit8bit(fname):
    import bitsandbytes.functional as BF
    mod = load_kernel_model()
    map_m = BF.create_dynamic_map(signed=True).numpy().astype(f32)
    map_v = BF.create_dynamic_map(signed=False).numpy().astype(f32)
    rng = np.random.default_rng(20250106)
    params = [(rng.normal(size=s) * 0.02).astype(f32) for _, s in U8_SHAPES]
    p0 = np.concatenate([p.reshape(-1) for p in params])
    sides = [0 if sh[0] >= sh[1] else 1 for _, sh in U8_SHAPES[:U8_NG]]
    hp = (LR, B1, B2, U8_EPS, WD, 1.0, 0)
    sts = [{} for _ in range(U8_NG)]
    dm, dv = np.zeros(24, f32), np.zeros(24, f32)
    steps, projs = [], []
    for t in range(1, U8_S + 1):
        if (t - 1) % GAP == 0:
            rnd = (t - 1) // GAP
            projs.append([ours_projector(i, rnd, (U8_RANK, sh[1]) if sd == 0 else (sh[0], U8_RANK), U8_RANK)
                          for i, ((_, sh), sd) in enumerate(zip(U8_SHAPES[:U8_NG], sides))])
        gs = [(rng.normal(size=sh) * 0.1 * GSCALE[t - 1]).astype(f32) for _, sh in U8_SHAPES]
        for i in range(U8_NG):
            params[i] = apollo_np_step(params[i], gs[i], projs[-1][i], sides[i], sts[i], t, hp, (mod, map_m, map_v))
        params[2], dm, dv = mod.ref32_step(params[2], gs[2], dm, dv, B1, B2, U8_EPS, LR, WD, t)
        steps.append((np.concatenate([g.reshape(-1) for g in gs]), np.concatenate([p.reshape(-1) for p in params]),
                      np.array([sts[i]["prev"] for i in range(U8_NG)], dtype=f32)))
    assert all(sts[i]["qm"].size >= 4096 for i in range(U8_NG))
    header = unit_header(MAGIC + 1, U8_SHAPES, U8_S, U8_RANK, GAP, 0, len(projs), U8_NG, sides,
                         [LR, B1, B2, U8_EPS, WD, 1.0])
    header[12], header[13] = 0, 2
    path = os.path.join(OUT, fname)
    moments = []
    for st in sts:
        blk = np.arange(st["qm"].size) // 256
        moments += [map_m[st["qm"]] * st["am"][blk], map_v[st["qv"]] * st["av"][blk]]
    write_unit(path, header, U8_SHAPES, p0, steps, [flat(r) for r in projs], moments)
    print(f"{fname}: apollo_adamw8bit rank {U8_RANK} channel, A[96, 80] right, B[80, 96] left (8-bit states), d plain; "
          f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    print(f"apollo-torch {getattr(apollo_torch, '__version__', '?')} (pip 1.0.3 expected), torch {torch.__version__}, numpy {np.__version__}")
    run_unit("unit_channel.bin", 7, "channel", 2.0, "std", 0)
    run_unit("unit_mini.bin", 1, "tensor", 128.0, "std", 1)
    run_unit("unit_tensor_reverse.bin", 5, "tensor", 1.0, "reverse_std", 0)
    e = check_np_against_package(os.path.join(OUT, "unit_channel.bin"))
    print(f"numpy APOLLO (fp32 moments) vs the package on unit_channel.bin: normalized max error {e:.2e}")
    assert e < 1e-5
    run_unit8bit("unit8bit.bin")
