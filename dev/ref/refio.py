"""Shared writer and reader for the unit reference files (dev/ref/{galore,apollo,fira}/unit*.bin) that
make_galore_reference.py, make_apollo_reference.py and make_fira_reference.py produce, so the
layout the C readers (test_llama.c unit_* helpers) parse is written in one place:

    int32 header[256]: [magic, version 1, n tensors, steps, rank, gap, proj_type, n refreshes,
                        n GaLore-style tensors, sides[..] at 9.., generator-specific at 12..15,
                        float32 bits of the hyperparameters at 16..]
    int32 dims[3 * n]: (ndim, rows, cols) per tensor, cols 1 for a vector
    float32 p0, then per step the float32 arrays of that step (g, p[, limiter states]),
    then per refresh the projectors, then any trailing float32 arrays (moments)
all little-endian."""
import struct

import numpy as np


def fbits(v):
    """the int32 bit pattern of v as float32 (how the header stores a hyperparameter)"""
    return struct.unpack("<i", struct.pack("<f", v))[0]


def flat(tensors):
    """concatenate torch tensors (or numpy arrays) into one float32 numpy vector"""
    parts = [t.detach().reshape(-1).to("cpu").float().numpy() if hasattr(t, "detach")
             else np.asarray(t, dtype=np.float32).reshape(-1) for t in tensors]
    return np.concatenate(parts).astype(np.float32)


def unit_header(magic, shapes, steps, rank, gap, proj_type, n_refresh, ng, sides, floats):
    """the 256-int32 header; sides are 0 (right) / 1 (left) per GaLore-style tensor, floats the
    hyperparameters stored as float32 bits from word 16; words 12..15 are left for the caller"""
    header = np.zeros(256, dtype="<i4")
    header[0:9] = [magic, 1, len(shapes), steps, rank, gap, proj_type, n_refresh, ng]
    header[9:9 + ng] = sides
    for i, v in enumerate(floats):
        header[16 + i] = fbits(v)
    return header


def write_unit(path, header, shapes, p0, steps, projs, tail=()):
    """shapes: [(name, shape)]; steps: per step a tuple of float32 arrays written in order;
    projs: per refresh one array (the concatenated projectors); tail: arrays written last"""
    dims = []
    for _, sh in shapes:
        dims += [len(sh), sh[0], sh[1] if len(sh) == 2 else 1]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(dims, dtype="<i4").tobytes())
        f.write(np.asarray(p0).astype("<f4").tobytes())
        for arrs in steps:
            for a in arrs:
                f.write(np.asarray(a).astype("<f4").tobytes())
        for r in projs:
            f.write(np.asarray(r).astype("<f4").tobytes())
        for a in tail:
            f.write(np.asarray(a).astype("<f4").tobytes())


def track_refresh(opt, gparams, last, s, refresh_steps, projs):
    """after optimizer step s: a refresh replaces every projected param's projector (the
    package's state["projector"].ortho_matrix) by a new tensor, so a changed object marks a
    refresh; its step into refresh_steps and copies of the projectors into projs. Returns the
    current projectors, the next call's last (start with [None] * len(gparams))"""
    cur = [opt.state[p]["projector"].ortho_matrix for p in gparams]
    changed = [c is not l for c, l in zip(cur, last)]
    assert all(changed) or not any(changed), "projected params refreshed at different steps"
    if all(changed):
        refresh_steps.append(s)
        projs.append([c.detach().clone() for c in cur])
    return cur


def read_unit(path, dtype, step_limiters=False):
    """parse a unit*.bin file (the layout above) into (h, hf, dims, side, p0, steps, projs, rest):
    h / hf the header as int32 / float32 words, dims (n, 3), side the ng sides, p0 and each
    step's arrays split per tensor into (rows, cols) arrays of dtype (a step: (grads, params), or
    with step_limiters (grads, params, the ng limiter states)), projs per refresh the ng
    projectors ((r, n) right, (m, r) left), rest the trailing float32 values as dtype (their
    layout is the generator's)"""
    raw = open(path, "rb").read()
    h = np.frombuffer(raw, "<i4", 256)
    hf = np.frombuffer(raw, "<f4", 256)
    npar, steps_n, r, nr, ng = [int(x) for x in (h[2], h[3], h[4], h[7], h[8])]
    side = h[9:9 + ng]
    off = 1024
    dims = np.frombuffer(raw, "<i4", npar * 3, off).reshape(npar, 3)
    off += npar * 12
    sizes = [int(d[1] * d[2]) for d in dims]

    def take(k):
        nonlocal off
        a = np.frombuffer(raw, "<f4", k, off).astype(dtype)
        off += 4 * k
        return a

    def split(a):
        out, o = [], 0
        for d, sz in zip(dims, sizes):
            out.append(a[o:o + sz].reshape(d[1], d[2]))
            o += sz
        return out

    N = sum(sizes)
    p0 = split(take(N))
    steps = [(split(take(N)), split(take(N))) + ((take(ng),) if step_limiters else ()) for _ in range(steps_n)]
    projs = []
    for _ in range(nr):
        lst = []
        for i in range(ng):
            m, n = dims[i][1], dims[i][2]
            shape = (r, n) if side[i] == 0 else (m, r)
            lst.append(take(shape[0] * shape[1]).reshape(shape))
        projs.append(lst)
    assert (len(raw) - off) % 4 == 0, "a partial float at the end"
    rest = take((len(raw) - off) // 4)
    return h, hf, dims, side, p0, steps, projs, rest
