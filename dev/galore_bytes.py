"""Bytes moved (and flops) by one GaLore weight update on the GPU, unfused vs fused (galore.cuh).

Counts the DRAM traffic of each kernel of gpu_optim_update for one GaLore matrix W (m x n, bf16),
rank r, on a step that does not refresh the projector, assuming every kernel reads its inputs and
writes its outputs once (GEMM tiles re-read from L2 are not counted: the ideal traffic):
    s = r * max(m, n)   low-rank numel (R, N, the moments)
    p = r * min(m, n)   projector numel (P)
unfused (galore.cuh's reference path, --master-weights 0 --stochastic-rounding 1 takes it too):
    widen P -> Pf fp32            2p + 4p
    project G -> R fp32           2mn + 2p + 4s
    [8-bit] memset Z              4s
    Adam: HF (bf16 m, v)          R 4s + m, v 2*2s in, 2*2s out + N fp32 4s      = 16s
          8-bit                   R 4s + Z 4s + qm, qv 2s in/out + Z 4s out       = 16s (+absmax)
    project back N, Pf -> A fp32  4s + 4p + 4mn
    apply A, W -> W               4mn + 2mn + 2mn
fused (this file's galore_gpu_update_fused):
    project G -> R fp32           2mn + 2p + 4s
    Adam: HF, N bf16              4s + 4s + 4s + 2s                               = 14s
          8-bit, N bf16           4s + 2s + 2s + 2s                               = 10s (+absmax)
    W = beta W + alpha N P        2s + 2p + 2mn + 2mn  (one bf16 GEMM, in place)
absmax (8-bit): two fp32 per 256 elements, read and written: 16s/256.
Flops: the two GEMMs (project, project back) are 2 r m n each.

Run: python3 dev/galore_bytes.py   (stdlib only; prints the table used in README.md and galore.cuh)
"""

HBM3_BPS = 3.35e12        # H100 SXM memory bandwidth, bytes/s
BF16_TC = 989e12          # H100 SXM dense bf16 tensor-core flop/s (cuda_common.cuh's table)
FP32_SIMT = 67e12         # H100 SXM fp32 (no tensor cores) flop/s: cublasSgemm without TF32

MODELS = {
    # name: (hidden C, intermediate H, layers L, rank r); q, k, v, o are C x C (no GQA), gate and
    # up H x C, down C x H (PyTorch layout, out x in)
    "llama_1b": (2048, 5461, 24, 512),
    "llama_7b": (4096, 11008, 32, 1024),
}


def per_matrix(m, n, r):
    s, p, mn = r * max(m, n), r * min(m, n), m * n
    absmax = 16.0 * s / 256.0
    unf_hf = 14 * mn + 12 * p + 24 * s
    unf_8 = 14 * mn + 12 * p + 28 * s + absmax
    fus_hf = 6 * mn + 4 * p + 20 * s
    fus_8 = 6 * mn + 4 * p + 16 * s + absmax
    return unf_hf, fus_hf, unf_8, fus_8, 2.0 * r * mn


def model_totals(C, H, L, r):
    shapes = [(C, C)] * 4 + [(H, C)] * 2 + [(C, H)]
    tot = [0.0] * 5
    for (m, n) in shapes:
        for k, v in enumerate(per_matrix(m, n, r)):
            tot[k] += L * v
    return tot, L * len(shapes)


def main():
    print("per matrix (bytes, non-refresh step): unfused HF 14mn + 12p + 24s, fused HF 6mn + 4p + 20s;")
    print("  unfused 8-bit 14mn + 12p + 28.0625s, fused 8-bit 6mn + 4p + 16.0625s (s = r max(m,n), p = r min(m,n))")
    for C, H, r in [(4096, 11008, 1024)]:
        for (m, n) in [(C, C), (H, C), (C, H)]:
            u, f, u8, f8, fl = per_matrix(m, n, r)
            print(f"  {m:5d} x {n:5d} r {r}: galore_adamw {u / 2**20:8.1f} -> {f / 2**20:7.1f} MiB, "
                  f"galore_adamw8bit {u8 / 2**20:8.1f} -> {f8 / 2**20:7.1f} MiB, back-projection {fl / 1e9:.1f} GFLOP")
    print()
    print("| model, rank | matrices | galore_adamw unfused -> fused | galore_adamw8bit unfused -> fused | "
          "time at 3.35 TB/s (8-bit) | back-projection GEMM |")
    print("|---|---|---|---|---|---|")
    for name, (C, H, L, r) in MODELS.items():
        (u, f, u8, f8, fl), nm = model_totals(C, H, L, r)
        t_u, t_f = u8 / HBM3_BPS * 1e3, f8 / HBM3_BPS * 1e3
        t32, t16 = fl / FP32_SIMT * 1e3, fl / BF16_TC * 1e3
        print(f"| {name}, r {r} | {nm} | {u / 1e9:.2f} -> {f / 1e9:.2f} GB ({100 * (1 - f / u):.0f}% less) | "
              f"{u8 / 1e9:.2f} -> {f8 / 1e9:.2f} GB ({100 * (1 - f8 / u8):.0f}% less) | {t_u:.1f} -> {t_f:.1f} ms | "
              f"{fl / 1e12:.2f} TFLOP: fp32 {t32:.0f} ms -> bf16 {t16:.1f} ms at peak |")


if __name__ == "__main__":
    main()
