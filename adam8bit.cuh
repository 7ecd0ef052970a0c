// adam8bit.cuh: bitsandbytes-style blockwise 8-bit Adam on the GPU, built on adam8bit.h so that
// the per-element math is the code the CPU runs (adam8bit_quantize, adam8bit_dequantize,
// adam8bit_update_block, adam32_update_elem are HOSTDEV).
//
// Two kernels for the 8-bit state, one 256-element absmax block per thread block:
//   adam8bit_update_serial   thread 0 of each block calls adam8bit_update_block (the CPU's function,
//                            verbatim): obviously the CPU's semantics, slow; kept as the reference
//   adam8bit_update_gpu      256 threads, one element each, the new absmax by a block reduction
//                            (what bitsandbytes' kOptimizerStatic8bit2StateBlockwise does); the
//                            per-element steps are adam8bit.h's adam8bit_elem_* functions
// test_llama.cu checks the two against each other and against the CPU.
// And the 32-bit path (tensors under ADAM8_MIN_SIZE elements): adam32_update_gpu on fp32 m, v.
//
// Types: TP is the tensor updated (floatX: bf16 weights; float: fp32 master weights, or the zero
// "parameter" of GaLore's 8-bit path); pbf, when not NULL, receives the bf16 copy of an fp32 TP.
// TG is the gradient (floatX, or float for GaLore's low-rank R). All arithmetic is fp32. gscale
// multiplies the gradient first (global-norm clipping). sr: stochastic rounding of bf16 weights.
// LOWRANK (GaLore's fused path, adam8bit_lowrank_gpu / adam32_lowrank_gpu): the "parameter" is the
// zero tensor galore-torch hands the kernel; it is not read (taken as 0) and a skipped (non-finite)
// element writes 0, so the output holds the low-rank update without a memset beforehand.
//
// Numerics vs the CPU: nvcc's --use_fast_math makes powf __powf and the division approximate, and
// contracts a*b+c into FMAs (the CPU is built with -ffp-contract=off). That moves m, v and the
// step by about an ulp, which flips a quantized byte to its neighbour in rare elements that sit
// on a rounding midpoint, exactly as bitsandbytes' own kernel differs from a C reference.
#ifndef ADAM8BIT_CUH
#define ADAM8BIT_CUH

#include "cuda_common.cuh"
#include "adam8bit.h"

// the two dynamic maps on the device: (512) fp32, the signed map (m) then the unsigned map (v)
static float* adam8bit_maps_upload(void) {
    float h[512];
    adam8bit_create_dynamic_map(h, 1);
    adam8bit_create_dynamic_map(h + 256, 0);
    float* d = (float*)cudaMallocCheck(sizeof h, "8-bit Adam quantization maps");
    cudaCheck(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
    return d;
}

__device__ static inline float a8_load(float x) { return x; }
__device__ static inline float a8_load(floatX x) { return __bfloat162float(x); }
__device__ static inline void a8_store(float* p, float v, int sr, uint32_t seed, size_t i) { (void)sr; (void)seed; (void)i; *p = v; }
__device__ static inline void a8_store(floatX* p, float v, int sr, uint32_t seed, size_t i) {
    *p = sr ? f2bf_stochastic(v, seed, i) : __float2bfloat16_rn(v);
}

// ----------------------------------------------------------------------------
// reference kernel: adam8bit_update_block per block from one thread

template <class TP, class TG>
__global__ void adam8bit_serial_kernel(TP* p, floatX* pbf, const TG* g, uint8_t* qm, uint8_t* qv, float* absmax_m, float* absmax_v,
                                       size_t n, const float* maps, float b1, float b2, float eps, float lr, float wd, int t,
                                       float gscale) {
    if (threadIdx.x != 0) return;
    size_t blk = blockIdx.x, off = blk * ADAM8_BLOCK;
    int len = (int)(n - off < (size_t)ADAM8_BLOCK ? n - off : (size_t)ADAM8_BLOCK);
    float pf[ADAM8_BLOCK], gf[ADAM8_BLOCK];
    for (int k = 0; k < len; k++) { pf[k] = a8_load(p[off + k]); gf[k] = a8_load(g[off + k]) * gscale; }
    adam8bit_update_block(pf, gf, qm + off, qv + off, absmax_m + blk, absmax_v + blk, len, maps, maps + 256, b1, b2, eps, lr, wd, t);
    for (int k = 0; k < len; k++) {
        a8_store(&p[off + k], pf[k], 0, 0u, off + k);
        if (pbf != NULL) pbf[off + k] = __float2bfloat16_rn(pf[k]);
    }
}

// p, g: (n)   qm, qv: (n) uint8   absmax_m, absmax_v: (ceil(n/256))   maps: device (512)
template <class TP, class TG>
static void adam8bit_update_serial(TP* p, floatX* pbf, const TG* g, uint8_t* qm, uint8_t* qv, float* absmax_m, float* absmax_v, size_t n,
                                   const float* maps, float b1, float b2, float eps, float lr, float wd, int t, float gscale, cudaStream_t s) {
    if (n == 0) return;
    unsigned nblocks = (unsigned)((n + ADAM8_BLOCK - 1) / ADAM8_BLOCK);
    adam8bit_serial_kernel<TP, TG><<<nblocks, 32, 0, s>>>(p, pbf, g, qm, qv, absmax_m, absmax_v, n, maps, b1, b2, eps, lr, wd, t, gscale);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// parallel kernel: thread k of block b owns element b*256 + k. The steps are adam8bit_update_block's,
// in its order: new m, v from the dequantized state; the block's new absmax; the parameter step;
// requantization with the sign fix. Idle lanes of a short last block load g = 0, m byte 128, v byte
// 0 and take part in the absmax, as in bitsandbytes (adam8bit_update_block models the same).

template <class TP, class TG, bool LOWRANK = false>
__global__ void __launch_bounds__(ADAM8_BLOCK) adam8bit_kernel(TP* p, floatX* pbf, const TG* g, uint8_t* qm, uint8_t* qv, float* absmax_m,
                                                               float* absmax_v, size_t n, const float* maps, float b1, float b2, float eps,
                                                               float lr, float wd, int t, float gscale, int sr, uint32_t seed,
                                                               const int* skip) {
    // a skipped update (update_skipped, the same for every thread, so no barrier below is split):
    // the state, its absmax and the parameter untouched; LOWRANK's output U zero (the fused GEMM's
    // input, multiplied by alpha 0)
    if (update_skipped(skip)) {
        size_t i0 = blockIdx.x * (size_t)ADAM8_BLOCK + threadIdx.x;
        if (LOWRANK && i0 < n) a8_store(&p[i0], 0.0f, 0, 0u, i0);
        return;
    }
    __shared__ float smap_m[256], smap_v[256];
    smap_m[threadIdx.x] = maps[threadIdx.x];
    smap_v[threadIdx.x] = maps[256 + threadIdx.x];
    __syncthreads();
    const float c1 = 1.0f - powf(b1, (float)t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    const float step_size = (-lr * c2) / c1;
    size_t blk = blockIdx.x, i = blk * ADAM8_BLOCK + threadIdx.x;
    int live = i < n;
    const float old_am = absmax_m[blk], old_av = absmax_v[blk];
    float gi = live ? a8_load(g[i]) * gscale : 0.0f;
    uint8_t qmi = live ? qm[i] : (uint8_t)128, qvi = live ? qv[i] : (uint8_t)0;
    int finite = !isnan(gi) && !isinf(gi);
    float mi, vi;
    adam8bit_elem_moments(gi, qmi, qvi, old_am, old_av, smap_m, smap_v, b1, b2, &mi, &vi);
    float am = block_reduce_max(fabsf(mi));
    float av = block_reduce_max(fabsf(vi));
    am = fmaxf(am, 0.0f); av = fmaxf(av, 0.0f); // the CPU's reduction starts at 0
    if (threadIdx.x == 0) { absmax_m[blk] = am; absmax_v[blk] = av; } // every thread read the old ones above
    if (!live) return;
    if (finite) {
        float pi = adam8bit_elem_param(LOWRANK ? 0.0f : a8_load(p[i]), mi, vi, step_size, c2, eps, lr, wd);
        a8_store(&p[i], pi, sr, seed, i);
        if (pbf != NULL) pbf[i] = __float2bfloat16_rn(pi);
    } else if (LOWRANK) {
        a8_store(&p[i], 0.0f, 0, 0u, i); // the zero parameter, untouched
    }
    adam8bit_elem_quantize(mi, vi, am, av, smap_m, smap_v, &qm[i], &qv[i]);
}

template <class TP, class TG>
static void adam8bit_update_gpu(TP* p, floatX* pbf, const TG* g, uint8_t* qm, uint8_t* qv, float* absmax_m, float* absmax_v, size_t n,
                                const float* maps, float b1, float b2, float eps, float lr, float wd, int t, float gscale, int sr,
                                uint32_t seed, cudaStream_t s, const int* skip = NULL) {
    if (n == 0) return;
    unsigned nblocks = (unsigned)((n + ADAM8_BLOCK - 1) / ADAM8_BLOCK);
    adam8bit_kernel<TP, TG><<<nblocks, ADAM8_BLOCK, 0, s>>>(p, pbf, g, qm, qv, absmax_m, absmax_v, n, maps, b1, b2, eps, lr, wd, t, gscale, sr, seed,
                                                           skip);
    cudaCheckLaunch();
}

// GaLore's low-rank step (galore-torch runs the kernel on R with a zero parameter, no decay): U (n)
// = what that parameter becomes, step_size * m / (sqrt(v) + c2 eps), 0 where R is not finite;
// rounded to nearest when TU is bf16. R: (n) fp32; the state as adam8bit_update_gpu's
template <class TU>
static void adam8bit_lowrank_gpu(TU* U, const float* R, uint8_t* qm, uint8_t* qv, float* absmax_m, float* absmax_v, size_t n,
                                 const float* maps, float b1, float b2, float eps, float lr, int t, cudaStream_t s, const int* skip = NULL) {
    if (n == 0) return;
    unsigned nblocks = (unsigned)((n + ADAM8_BLOCK - 1) / ADAM8_BLOCK);
    adam8bit_kernel<TU, float, true><<<nblocks, ADAM8_BLOCK, 0, s>>>(U, NULL, R, qm, qv, absmax_m, absmax_v, n, maps, b1, b2, eps, lr, 0.0f, t,
                                                                    1.0f, 0, 0u, skip);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// 32-bit path: adam32_update_elem per element; c2 and step_size from the host exactly as the CPU's
// adam32_update computes them (powf on the host)

template <class TP, class TG, bool LOWRANK = false>
__global__ void adam32_kernel(TP* p, floatX* pbf, const TG* g, float* m, float* v, size_t n, float b1, float b2, float eps, float lr,
                              float wd, float c2, float step_size, float gscale, int sr, uint32_t seed, const int* skip) {
    int skipped = update_skipped(skip); // as adam8bit_kernel's
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (skipped) { if (LOWRANK) a8_store(&p[i], 0.0f, 0, 0u, i); continue; }
        float pf = LOWRANK ? 0.0f : a8_load(p[i]);
        adam32_update_elem(&pf, &m[i], &v[i], a8_load(g[i]) * gscale, b1, b2, eps, lr, wd, c2, step_size);
        a8_store(&p[i], pf, sr, seed, i);
        if (pbf != NULL) pbf[i] = __float2bfloat16_rn(pf);
    }
}

template <class TP, class TG>
static void adam32_update_gpu(TP* p, floatX* pbf, const TG* g, float* m, float* v, size_t n, float b1, float b2, float eps, float lr,
                              float wd, int t, float gscale, int sr, uint32_t seed, cudaStream_t s, const int* skip = NULL) {
    if (n == 0) return;
    const float c1 = 1.0f - powf(b1, (float)t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    const float step_size = (-lr * c2) / c1;
    adam32_kernel<TP, TG><<<grid_for(n, 256), 256, 0, s>>>(p, pbf, g, m, v, n, b1, b2, eps, lr, wd, c2, step_size, gscale, sr, seed, skip);
    cudaCheckLaunch();
}

// the 32-bit path's GaLore low-rank step (small R): as adam8bit_lowrank_gpu, on fp32 m, v (no
// NaN guard, as adam32_update_elem)
template <class TU>
static void adam32_lowrank_gpu(TU* U, const float* R, float* m, float* v, size_t n, float b1, float b2, float eps, float lr, int t,
                               cudaStream_t s, const int* skip = NULL) {
    if (n == 0) return;
    const float c1 = 1.0f - powf(b1, (float)t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    const float step_size = (-lr * c2) / c1;
    adam32_kernel<TU, float, true><<<grid_for(n, 256), 256, 0, s>>>(U, NULL, R, m, v, n, b1, b2, eps, lr, 0.0f, c2, step_size, 1.0f, 0, 0u, skip);
    cudaCheckLaunch();
}

#endif // ADAM8BIT_CUH
