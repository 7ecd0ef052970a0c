# make_hf_llama3.py: a Llama 3 style folder as transformers itself saves one, for test_llama's
# `hf` checks: a tiny random LlamaForCausalLM with llama3 RoPE scaling (Llama 3.1's factor 8,
# low 1, high 4; original context 512 so that the 4 frequencies of its 8-wide heads fall in all
# three regions), rope_theta 500000 and grouped-query attention 4:1, saved by save_pretrained
# in BF16 and sharded (max_shard_size 60KB -> several model-0000K-of-0000N.safetensors + index),
# and its logits on fixed tokens, run in float64 from those same BF16 weights.
# Writes dev/ref/hf_llama3/{config.json, model.safetensors.index.json, model-*.safetensors,
# logits.bin}. logits.bin (little-endian): int32 [magic 20261203, B, T, V], int32 tokens[B*T],
# f32 logits[B*T*V] (float64 results rounded once).
# Run: PYTHON dev/ref/make_hf_llama3.py  with torch + transformers (CPU); deterministic, no download.
import os
import struct

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_llama3")
B, T = 2, 40

torch.manual_seed(20261203)
rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 512}
cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024,
                  rms_norm_eps=1e-5, rope_parameters=rope, tie_word_embeddings=False,
                  attention_bias=False, mlp_bias=False, hidden_act="silu", use_cache=False)
cfg._attn_implementation = "eager"
model = LlamaForCausalLM(cfg).eval()
# norms away from 1, so that a norm loaded into the wrong slot shows
with torch.no_grad():
    for name, p in model.named_parameters():
        if p.dim() == 1:
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
model = model.to(torch.bfloat16)
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))
model.save_pretrained(OUT, max_shard_size="60KB", safe_serialization=True)

# the reference: the saved BF16 weights, exactly, in float64 (HF keeps RoPE's cos/sin in float32)
ref = LlamaForCausalLM.from_pretrained(OUT, torch_dtype=torch.float64, attn_implementation="eager").eval()
g = torch.Generator().manual_seed(7)
tokens = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
with torch.no_grad():
    logits = ref(input_ids=tokens).logits  # (B, T, V) float64
with open(os.path.join(OUT, "logits.bin"), "wb") as f:
    f.write(struct.pack("<4i", 20261203, B, T, cfg.vocab_size))
    f.write(struct.pack("<%di" % (B * T), *tokens.flatten().tolist()))
    f.write(struct.pack("<%df" % (B * T * cfg.vocab_size), *logits.flatten().float().tolist()))
files = sorted(os.listdir(OUT))
print(OUT, files, "torch", torch.__version__, "transformers", transformers.__version__)
