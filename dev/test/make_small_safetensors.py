# make_small_safetensors.py: writes dev/test/data/small.safetensors with the Python
# `safetensors` package, so test_safetensors.c checks our reader against the real writer.
# Values are exact in every dtype used, so the C test can compare with ==.
# Run: python dev/test/make_small_safetensors.py   (from the repository root)
import os
import torch
from safetensors.torch import save_file

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "small.safetensors")
os.makedirs(os.path.dirname(out), exist_ok=True)
tensors = {
    # a.f32 (2,3): 0.5*i - 1
    "a.f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1.0).reshape(2, 3),
    # b.bf16 (4,): exact in bf16
    "b.bf16": torch.tensor([1.0, -2.5, 3.140625, 1e-3], dtype=torch.float32).to(torch.bfloat16),
    # c.f16 (2,2): includes an f16 subnormal (2^-24) and -0
    "c.f16": torch.tensor([[0.25, -65504.0], [2.0**-24, -0.0]], dtype=torch.float16),
    # d.scalar (): 0-dim tensor, numel 1
    "d.scalar": torch.tensor(7.0, dtype=torch.float32),
}
save_file(tensors, out, metadata={"format": "pt"})
print(out, os.path.getsize(out), "bytes")
for k, v in tensors.items():
    print(k, v.dtype, tuple(v.shape), v.float().flatten().tolist())
