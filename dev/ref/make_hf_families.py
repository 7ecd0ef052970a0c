# make_hf_families.py: one tiny random LlamaForCausalLM of each Llama family, made and saved by
# transformers itself, for test_llama's `hf families` checks (logits and first-step gradients):
#   llama2   Llama 2 style: multi-head attention (NKV = NH), default RoPE (theta 10000)
#   llama3   Llama 3.1 style: llama3 RoPE scaling (factor 8, low 1, high 4, original context 512
#            of 1024, so that the 4 frequencies of its 8-wide heads fall in all three regions),
#            theta 500000, grouped-query attention 4:1
#   tied     Llama 3.2 1B / SmolLM style: tie_word_embeddings (no lm_head.weight in the files),
#            GQA 2:1
#   headdim  head_dim given explicitly and != hidden / heads (16 vs 8: q is 64 wide, C is 32)
#   linear   rope_scaling of type linear (factor 4)
# Each is saved by save_pretrained in BF16 and sharded (max_shard_size 20KB -> several
# model-0000K-of-0000N.safetensors + index). The reference runs in float64 from those same BF16
# weights: logits on fixed tokens, the mean cross-entropy on fixed targets, and the gradient of
# that loss for every parameter (the tied embedding's is the sum of both uses, as autograd adds
# them). Writes dev/ref/hf/<family>/{config.json, model.safetensors.index.json, model-*.safetensors,
# ref.safetensors}; ref.safetensors (F32): "tokens" (B, T) and "targets" (B, T) (integers, exact
# in F32), "logits" (B, T, V), "loss" (1), and "grad.<HF name>" for each parameter.
# Run: python3 dev/ref/make_hf_families.py  with torch + transformers (CPU); deterministic, no download.
import os
import shutil

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf")
B, T = 2, 16
COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, attention_bias=False, mlp_bias=False, hidden_act="silu", use_cache=False,
              initializer_range=0.08)
FAMILIES = {
    "llama2": dict(num_attention_heads=4, num_key_value_heads=4, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   tie_word_embeddings=False),
    "llama3": dict(num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=1024,
                   rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 512},
                   tie_word_embeddings=False),
    "tied": dict(num_attention_heads=4, num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                 tie_word_embeddings=True),
    "headdim": dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=False),
    "linear": dict(num_attention_heads=4, num_key_value_heads=4,
                   rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, tie_word_embeddings=False),
}

for k, (name, extra) in enumerate(FAMILIES.items()):
    out = os.path.join(ROOT, name)
    torch.manual_seed(20261203 + k)
    cfg = LlamaConfig(**dict(COMMON, **extra))
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms away from 1, so that a norm loaded into the wrong slot shows
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    model.save_pretrained(out, max_shard_size="20KB", safe_serialization=True)
    if os.path.exists(os.path.join(out, "generation_config.json")):
        os.remove(os.path.join(out, "generation_config.json"))

    # the reference: the saved BF16 weights, exactly, in float64 (HF keeps RoPE's cos/sin in float32)
    ref = LlamaForCausalLM.from_pretrained(out, dtype=torch.float64, attn_implementation="eager")
    ref.train()  # no dropout in Llama; train() only so that autograd is on
    g = torch.Generator().manual_seed(7 + k)
    tokens = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    logits = ref(input_ids=tokens).logits  # (B, T, V) float64
    loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1))
    loss.backward()
    t = {"tokens": tokens.float(), "targets": targets.float(), "logits": logits.detach().float().contiguous(),
         "loss": loss.detach().float().reshape(1)}
    for pname, p in ref.named_parameters():  # a tied lm_head is not listed apart: one tensor
        t["grad." + pname] = p.grad.float().contiguous()
    save_file(t, os.path.join(out, "ref.safetensors"))
    files = sorted(os.listdir(out))
    print(name, files, "loss %.6f" % loss.item())
print("torch", torch.__version__, "transformers", transformers.__version__)
