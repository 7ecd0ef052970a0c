# make_hf_folders.py OUT: Hugging Face model folders for dev/test/test_hf.sh, made with the
# Python standard library only (safetensors written by hand with struct + json), from
# dev/ref/tiny (the f32 reference model):
#   bf16_sharded/        the tiny model in BF16, 3 shards + model.safetensors.index.json (the
#                        tensors deliberately not in table order, lm_head first)
#   err_missing_shard/   the index names a shard that is not there
#   err_absent_tensor/   the index lists model.norm.weight in a shard that lacks it
#   err_shape/           the shards of bf16_sharded with a config whose intermediate_size is 80
#   err_index_json/      an index that is not JSON
#   llama3/config.json   a config with rope_scaling type llama3 (C 96, 2 heads: head dim 48,
#                        24 frequencies, every one of the three llama3 regions), and
#   llama3/rope_ref.json its inv_freq and cos/sin tables (maxT 96) in float64, from the formula
#                        of transformers' _compute_llama3_parameters (written out below)
import json, math, os, shutil, struct, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TINY = os.path.join(ROOT, "dev", "ref", "tiny")


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} in header order"""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], data[8 + n + b:8 + n + en])
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes), written in that order"""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, _, raw in tensors:
            f.write(raw)


def bf16_bytes(f32_raw):
    """f32 -> bf16, round to nearest even (the weights are finite: no NaN case needed)"""
    words = struct.unpack("<%dI" % (len(f32_raw) // 4), f32_raw)
    out = [((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF for u in words]
    return struct.pack("<%dH" % len(out), *out)


def write_folder(d, config, shards, index=True):
    """shards: list of (file name, [(name, dtype, shape, raw)])"""
    os.makedirs(d, exist_ok=True)
    json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)
    wm, total = {}, 0
    for fname, ts in shards:
        write_safetensors(os.path.join(d, fname), ts)
        for name, _, _, raw in ts:
            wm[name] = fname
            total += len(raw)
    if index:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    return wm


def llama3_inv_freq(theta, hd, factor, low, high, orig):
    """transformers' llama3 RoPE frequencies, in float64: default 1 / theta^(2i/hd), then by
    wavelength 2 pi / inv: below orig/high kept, above orig/low divided by factor, between
    them (1 - s) inv / factor + s inv with s = (orig / wavelen - low) / (high - low)"""
    out, regions = [], []
    for i in range(hd // 2):
        inv = 1.0 / theta ** (2 * i / hd)
        wavelen = 2 * math.pi / inv
        lo_w, hi_w = orig / low, orig / high
        # a wavelength this close to a region boundary could fall on either side in float32
        assert min(abs(wavelen / lo_w - 1), abs(wavelen / hi_w - 1)) > 1e-3, i
        if wavelen < hi_w:
            out.append(inv); regions.append("high")
        elif wavelen > lo_w:
            out.append(inv / factor); regions.append("low")
        else:
            s = (orig / wavelen - low) / (high - low)
            out.append((1 - s) * inv / factor + s * inv); regions.append("medium")
    return out, regions


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(TINY, "config.json")))
    tiny = read_safetensors(os.path.join(TINY, "model.safetensors"))
    names = list(tiny)
    assert all(tiny[n][0] == "F32" for n in names)
    bf = {n: (n, "BF16", tiny[n][1], bf16_bytes(tiny[n][2])) for n in names}
    # lm_head first, then the rest in three groups: the index, not the order, decides
    order = ["lm_head.weight"] + [n for n in names if n != "lm_head.weight"]
    k = len(order) // 3
    groups = [order[:k], order[k:2 * k], order[2 * k:]]
    shard_names = ["model-%05d-of-%05d.safetensors" % (i + 1, 3) for i in range(3)]
    bf_config = dict(config, torch_dtype="bfloat16")
    shards = [(shard_names[i], [bf[n] for n in g]) for i, g in enumerate(groups)]
    write_folder(os.path.join(out, "bf16_sharded"), bf_config, shards)

    # a missing shard: shard 3 listed but not written
    d = os.path.join(out, "err_missing_shard")
    write_folder(d, bf_config, shards)
    os.remove(os.path.join(d, shard_names[2]))

    # a tensor listed in the index but absent from its shard
    d = os.path.join(out, "err_absent_tensor")
    wm = write_folder(d, bf_config, shards)
    assert "model.norm.weight" in wm
    victim = wm["model.norm.weight"]
    ts = [t for fn, tl in shards if fn == victim for t in tl if t[0] != "model.norm.weight"]
    write_safetensors(os.path.join(d, victim), ts)

    # shapes that disagree with the config
    write_folder(os.path.join(out, "err_shape"), dict(bf_config, intermediate_size=80), shards)

    # an index that is not JSON
    d = os.path.join(out, "err_index_json")
    write_folder(d, bf_config, shards)
    open(os.path.join(d, "model.safetensors.index.json"), "w").write('{"metadata": {"total_size": 1}, "weight_map": {')

    # llama3 RoPE: Llama 3.1's factors, original context scaled down so that a 48-wide head at
    # theta 500000 has frequencies in all three regions
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 512}
    c3 = dict(config, hidden_size=96, num_attention_heads=2, num_key_value_heads=1, head_dim=48,
              max_position_embeddings=96, rope_parameters=dict(rs, rope_theta=500000.0))
    d = os.path.join(out, "llama3")
    os.makedirs(d, exist_ok=True)
    json.dump(c3, open(os.path.join(d, "config.json"), "w"), indent=2)
    inv, regions = llama3_inv_freq(500000.0, 48, rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                                   rs["original_max_position_embeddings"])
    assert {"high", "medium", "low"} <= set(regions), regions
    maxT = c3["max_position_embeddings"]
    ref = {"inv_freq": inv, "regions": regions,
           "cos": [math.cos(t * f) for t in range(maxT) for f in inv],
           "sin": [math.sin(t * f) for t in range(maxT) for f in inv]}
    json.dump(ref, open(os.path.join(d, "rope_ref.json"), "w"))
    # the same config in transformers 4.x spelling (rope_scaling + top-level rope_theta)
    c4 = {k: v for k, v in c3.items() if k != "rope_parameters"}
    c4.update(rope_scaling=dict(rs), rope_theta=500000.0)
    json.dump(c4, open(os.path.join(d, "config_4x.json"), "w"), indent=2)
    for t in ("dynamic", "yarn"):
        json.dump(dict(c4, rope_scaling={"rope_type": t, "factor": 2.0}), open(os.path.join(d, "config_%s.json" % t), "w"))
    print("wrote", out, "; llama3 regions:", " ".join(regions))


if __name__ == "__main__":
    main()
