// weight8.cuh: the GPU kernels of --weights int8 (weight8.h has the format and the per-element
// math, shared with the CPU engine, which is their oracle bit for bit):
//   weight8_dequant   codes -> bf16 (the forward's and backward's GEMM input, one matrix or a fused
//                     run at a time into a scratch) or fp32 (the optimizer's update scratch)
//   weight8_requant   fp32 -> codes, scales, zeros with weight8.h's stochastic rounding: per group
//                     [min, max], weight8_group_params, weight8_code with the counter-based draws
//                     weight8_uniform(seed, element), so the result equals weight8_quantize's on
//                     the host for the same fp32 input and seed, in any thread order.
// The group of element k of a tensor is k / G (groups restart at each tensor: a fused run is
// dequantized one tensor per launch).
#ifndef WEIGHT8_CUH
#define WEIGHT8_CUH

#include "cuda_common.cuh"
#include "weight8.h"

// out (n) = weight8_value(codes, its group's scale and zero); T floatX (rounded to nearest) or float (exact)
template <class T>
__global__ void weight8_dequant_kernel(T* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, size_t n, int64_t G) {
    // every tensor has < 2^31 elements (weight8_dequant checks): 32-bit indices, whose division is
    // a few instructions where a 64-bit one is a long software routine, once per element
    uint32_t n32 = (uint32_t)n, G32 = (uint32_t)G;
    for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < n32; k += gridDim.x * blockDim.x) {
        uint32_t g = k / G32;
        store_f32(&out[k], weight8_value(codes[k], scales[g], (float)zeros[g]));
    }
}
template <class T>
static void weight8_dequant(T* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, size_t n, int64_t G, cudaStream_t s) {
    if (n == 0) return;
    if (n >= (1ull << 31) || G < 1 || G >= (1ll << 31)) die("internal: INT8 tensor of %zu elements (group %lld): beyond 32-bit indices", n, (long long)G);
    weight8_dequant_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(out, codes, scales, zeros, n, G);
    cudaCheckLaunch();
}

// one warp per group: the group's [min, max] by shuffles (min and max are exact, so the order of
// the reduction cannot change them: the host's sequential loop gets the same bits), then each lane
// codes its elements. fminf/fmaxf may pick either zero of -0/+0, which changes neither the scale
// nor the codes (the zero point is an integer clamped at 0).
#define W8_WARPS 8
__global__ void __launch_bounds__(32 * W8_WARPS) weight8_requant_kernel(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, size_t n,
                                                                        int64_t G, uint32_t seed, const int* skip) {
    if (update_skipped(skip)) return; // a skipped update leaves the codes alone
    int lane = threadIdx.x % 32;
    size_t g = blockIdx.x * (size_t)W8_WARPS + threadIdx.x / 32;
    size_t ng = (n + (size_t)G - 1) / (size_t)G;
    if (g >= ng) return; // the whole warp: no shuffle is split
    size_t k0 = g * (size_t)G, k1 = k0 + (size_t)G < n ? k0 + (size_t)G : n;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t k = k0 + lane; k < k1; k += 32) { lo = fminf(lo, w[k]); hi = fmaxf(hi, w[k]); }
    for (int o = 16; o > 0; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
    float sc, z;
    weight8_group_params(lo, hi, &sc, &z);
    if (lane == 0) { scales[g] = sc; zeros[g] = (uint8_t)z; }
    for (size_t k = k0 + lane; k < k1; k += 32) codes[k] = weight8_code(w[k], sc, z, weight8_uniform(seed, (uint64_t)k));
}
// w (n) fp32 -> codes (n), scales and zeros (weight8_groups(n, G)); skip: the per-layer verdict (NULL: none)
static void weight8_requant(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, size_t n, int64_t G, uint32_t seed, cudaStream_t s,
                            const int* skip = NULL) {
    if (n == 0) return;
    size_t ng = (size_t)weight8_groups((int64_t)n, G);
    weight8_requant_kernel<<<(unsigned)((ng + W8_WARPS - 1) / W8_WARPS), 32 * W8_WARPS, 0, s>>>(codes, scales, zeros, w, n, G, seed, skip);
    cudaCheckLaunch();
}

#endif // WEIGHT8_CUH
