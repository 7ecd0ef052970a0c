"""check_weight8.py DIR/ckpt_N G: a checkpoint of a --weights int8 run holds the INT8 state exactly
(state.bin's w8.<tensor>.codes / .scales / .zeros, weight8.h) and its model.safetensors (F32) is
those codes dequantized, (code - zero) * scale in fp32, bit for bit, for every quantized tensor.
The product of an integer in [-255, 255] and an fp32 scale is exact in a double (8 + 24 bits), so
rounding it once to fp32 is the fp32 multiplication. Tensor i is the parameter table's (llama.h):
the embedding, 9 per layer, the final norm, lm_head. Prints one line, "ok ..." or "bad ...".
Standard library only."""
import json, os, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_state import read_state  # noqa: E402

LAYER = ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
         "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
         "mlp.down_proj.weight"]


def table_name(i, L):
    if i == 0:
        return "model.embed_tokens.weight"
    if i == 1 + 9 * L:
        return "model.norm.weight"
    if i == 2 + 9 * L:
        return "lm_head.weight"
    return f"model.layers.{(i - 1) // 9}.{LAYER[(i - 1) % 9]}"


def main():
    d, G = sys.argv[1], int(sys.argv[2])
    L = json.load(open(os.path.join(d, "config.json")))["num_hidden_layers"]
    st = read_state(os.path.join(d, "state.bin"))
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    tensors = sorted({int(k.split(".")[1]) for k in st if k.startswith("w8.")})
    elems = bad = 0
    for i in tensors:
        codes, scales, zeros = st[f"w8.{i}.codes"], st[f"w8.{i}.scales"], st[f"w8.{i}.zeros"]
        meta = header[table_name(i, L)]
        if meta["dtype"] != "F32":
            print(f"bad {table_name(i, L)} is {meta['dtype']}, a checkpoint's weights are F32")
            return
        a, b = meta["data_offsets"]
        w = struct.unpack(f"<{(b - a) // 4}f", raw[8 + hlen + a:8 + hlen + b])
        sc = struct.unpack(f"<{len(scales) // 4}f", scales)
        if len(w) != len(codes) or len(sc) != len(zeros) or len(sc) != (len(w) + G - 1) // G:
            print(f"bad tensor {i}: {len(w)} weights, {len(codes)} codes, {len(sc)} scales, {len(zeros)} zeros (group {G})")
            return
        for k, c in enumerate(codes):
            deq = struct.unpack("<f", struct.pack("<f", (c - zeros[k // G]) * sc[k // G]))[0]
            bad += deq != w[k]
        elems += len(w)
    print(("ok " if bad == 0 and tensors else "bad ") +
          f"{len(tensors)} quantized tensors, {elems} weights in model.safetensors, {bad} differ from their codes dequantized")


if __name__ == "__main__":
    main()
