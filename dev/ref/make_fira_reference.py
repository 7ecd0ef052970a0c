# make_fira_reference.py: reference data for --optimizer fira_adamw, produced by the `fira` package
# (PyPI fira==1.0.2, FiraAdamW) itself, on CPU, in float32, with torch (2.15 here; any version with
# torch.linalg.svd). Writes dev/ref/fira/{unit.bin, unit_scale1.bin}.
# Run (from anywhere, deterministic, ~2 s): python dev/ref/make_fira_reference.py
# Needs: pip install --no-deps fira==1.0.2 (its only imports are torch and transformers' require_version).
#
# What fira 1.0.2's AdamW.step does for a matrix of the projected group (read from its source; our
# C is galore.h's "Fira" block): R = proj(G) (galore-torch's projector, SVD every update_proj_gap),
# HF AdamW on R giving N = m / (sqrt(v) + eps), phi = ||N|| / (||R|| + 1e-8) per column (R with fewer
# rows than columns) or per row, S = (G - alpha back(R)) * phi, the norm-growth limiter on ||S||
# (gamma 1.01, state "scaling_grad"), W -= step_size (alpha back(N) + S), decay after.
#
# Little-endian: a header of 256 int32 (floats as their f32 bit pattern in the slots named "f"),
# then the arrays listed, back to back.
#   header i32: [0] magic 20251203, [1] version 1, [2] NP params (4), [3] S steps (8), [4] rank (7),
#     [5] update_proj_gap (3), [6] proj_type (0 std, 1 reverse_std), [7] NR refreshes (3),
#     [8] NG projected params (3: the first NG), [9..9+NG) side of each (0 right: P [r,n]; 1 left:
#     P [m,r]), [12] limiter engagements over all steps and params (a divisor > 1),
#     f [16] lr, [17] beta1, [18] beta2, [19] eps, [20] weight_decay, [21] alpha (scale)
#   dims i32[NP*3]: ndim, rows, cols (cols 1 for 1-D): A [40,24] (right), B [24,40] (left),
#     Cq [32,32], d [24] (plain group)
#   p0 f32[N] initial params (N = 2968)
#   for step s = 1..S: grads f32[N], params f32[N] after the step, limiter state f32[NG] after the
#     step (state["scaling_grad"]: the previous residual norm the next step compares with)
#   for refresh k = 1..NR (steps 1, 4, 7): the NG projectors as stored ([r,n] / [m,r]), concatenated
# unit.bin: proj_type std, alpha 0.25 (the GaLore/Fira scripts' scale); unit_scale1.bin:
# reverse_std, alpha 1 (then S is phi times exactly the part of G outside the subspace).
# Gradients: G = c_s (U diag(sig) V^T + 1e-3 noise), fresh random orthonormal U, V each step,
# sig_k = 2^(-k/2) (k = 0..11: the top-7 vectors well determined, as galore's unit.bin), and a
# per-step scale c_s that jumps (x5, x8) and drops, so that the limiter both engages and not.
#
# Singular-vector signs: as make_galore_reference.py, the package's projector gets galore.h's
# galore_sign_fix convention (each kept vector's largest-|entry| positive) through a wrapper around
# GradientProjector.get_orthogonal_matrix; within a window the update does not depend on the signs.
#
# A package detail to know: project_back multiplies by alpha, so the residual is G - alpha P P^T G,
# which at alpha < 1 still holds (1 - alpha) of the in-subspace gradient. galore.c follows the
# package (the reference); unit_scale1.bin covers alpha = 1, where both readings agree.
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import fira  # noqa: E402
from fira.gradient_projection import GradientProjector  # noqa: E402

from refio import flat, track_refresh, unit_header, write_unit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fira")
f32 = np.float32
MAGIC = 20251203
SHAPES = [("A", (40, 24)), ("B", (24, 40)), ("Cq", (32, 32)), ("d", (24,))]
NG = 3
S, RANK, GAP = 8, 7, 3
LR, B1, B2, EPS, WD = 1e-2, 0.9, 0.999, 1e-6, 0.05
REFRESH = [1, 4, 7]
SCALES = [1.0, 1.0, 5.0, 1.0, 0.3, 4.0, 1.0, 8.0]

torch.set_num_threads(1)


def side_of(shape, proj_type):
    m, n = shape
    if proj_type == "std":
        return "right" if m >= n else "left"
    return "left" if m >= n else "right"


def make_grad(rng, shape, c):
    if len(shape) == 1:
        return (rng.normal(size=shape) * 0.1 * c).astype(f32)
    m, n = shape
    k = 12
    U, _ = np.linalg.qr(rng.normal(size=(m, k)))
    V, _ = np.linalg.qr(rng.normal(size=(n, k)))
    sig = 2.0 ** (-np.arange(k) / 2.0)
    return (c * ((U * sig) @ V.T + 1e-3 * rng.normal(size=(m, n)))).astype(f32)


def install_sign_convention():
    orig = GradientProjector.get_orthogonal_matrix

    def fixed(self, weights, rank, type):
        out = orig(self, weights, rank, type)
        if type not in ("left", "right"):
            return out
        vecs = out if type == "right" else out.t()
        idx = vecs.abs().argmax(dim=1)
        sign = torch.sign(vecs.gather(1, idx[:, None]))
        sign[sign == 0] = 1
        vecs = vecs * sign
        return (vecs if type == "right" else vecs.t()).contiguous()

    GradientProjector.get_orthogonal_matrix = fixed


def run(proj_type, alpha, fname):
    rng = np.random.default_rng(20251203)
    params = [torch.nn.Parameter(torch.from_numpy((rng.normal(size=s) * 0.02).astype(f32))) for _, s in SHAPES]
    p0 = flat(params)
    groups = [{"params": params[NG:]},
              {"params": params[:NG], "rank": RANK, "update_proj_gap": GAP, "alpha": alpha, "proj_type": proj_type}]
    opt = fira.FiraAdamW(groups, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, no_deprecation_warning=True)
    steps, projs, refresh_steps, last = [], [], [], [None] * NG
    engaged = 0
    for s in range(1, S + 1):
        gs = [torch.from_numpy(make_grad(rng, sh, SCALES[s - 1])) for _, sh in SHAPES]
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
        lim = [float(opt.state[p]["scaling_grad"]) for p in params[:NG]]
        last = track_refresh(opt, params[:NG], last, s, refresh_steps, projs)
        steps.append((flat(gs), flat(params), np.array(lim, dtype=f32)))
    assert refresh_steps == REFRESH, refresh_steps
    # engagements, read off the states: an engaged step stores ||S|| / lim = 1.01 (prev + 1e-8), a
    # free one ||S|| <= 1.01 prev; so a state that grew by 1.01 x (to fp32) marks an engaged step
    for s in range(1, S):
        for j in range(NG):
            a, b = float(steps[s - 1][2][j]), float(steps[s][2][j])
            if abs(b / (a + 1e-8) - 1.01) < 1e-5:
                engaged += 1
    sides = [side_of(sh, proj_type) for _, sh in SHAPES[:NG]]
    header = unit_header(MAGIC, SHAPES, S, RANK, GAP, {"std": 0, "reverse_std": 1}[proj_type], len(REFRESH), NG,
                         [0 if sd == "right" else 1 for sd in sides], [LR, B1, B2, EPS, WD, alpha])
    header[12] = engaged
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, fname)
    write_unit(path, header, SHAPES, p0, steps, [flat(r) for r in projs])
    print(f"{fname}: proj_type {proj_type}, alpha {alpha}, refreshes at {refresh_steps}, sides "
          + ", ".join(f"{n}{list(sh)} {sd}" for (n, sh), sd in zip(SHAPES, sides))
          + f"; limiter engaged {engaged} of {(S - 1) * NG} times; states per step:")
    for s, (_, _, lim) in enumerate(steps):
        print(f"  step {s + 1}: " + " ".join(f"{x:.6g}" for x in lim))
    assert 0 < engaged < (S - 1) * NG, "the gradients must make the limiter both engage and not"
    return path


def main():
    install_sign_convention()
    print(f"fira {getattr(fira, '__version__', '1.0.2 (no __version__)')}, torch {torch.__version__}")
    run("std", 0.25, "unit.bin")
    run("reverse_std", 1.0, "unit_scale1.bin")


if __name__ == "__main__":
    main()
