// llama_math.h: the per-element math of the GPU kernels as small HOSTDEV inline functions, plain
// C, so that the CPU (test_llama.cu, dev/cuda/*.cu) can run exactly the arithmetic a kernel runs.
// The kernels in llama_kernels.cuh call these; nothing here knows about threads or layouts.
// Adam's per-element step is galore.h's adam_torch_elem (torch semantics), shared with the CPU.
#ifndef LLAMA_MATH_H
#define LLAMA_MATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#include "hostdev.h"

// silu(g) * u, as the CPU's swiglu_forward: g / (1 + exp(-g)) * u
HOSTDEV static inline float swiglu_elem(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// d/dgate and d/dup of silu(g) * u given da, as the CPU's swiglu_backward
HOSTDEV static inline void swiglu_backward_elem(float g, float u, float da, float* dg, float* du) {
    float sig = 1.0f / (1.0f + expf(-g));
    *du = da * g * sig;
    *dg = da * u * sig * (1.0f + g * (1.0f - sig));
}

// rotate_half RoPE of one pair (x1 = x[i], x2 = x[i + HD/2]) by an angle with cos c and sin s;
// sign +1 forward, -1 the inverse rotation (= the backward pass)
HOSTDEV static inline void rope_pair(float* x1, float* x2, float c, float s, float sign) {
    float a = *x1, b = *x2, sn = sign * s;
    *x1 = a * c - b * sn;
    *x2 = b * c + a * sn;
}

// rmsnorm of one element given the row's rstd: w * (x * rstd), the CPU's order of operations
HOSTDEV static inline float rmsnorm_elem(float x, float w, float rstd) { return w * (x * rstd); }

// rmsnorm backward of one element: rstd * (w*dy - xhat * mean(w*dy*xhat)), xhat = x*rstd
HOSTDEV static inline float rmsnorm_backward_elem(float x, float w, float dy, float rstd, float mean) {
    return rstd * (w * dy - x * rstd * mean);
}

// ----------------------------------------------------------------------------
// bf16 bits, for code that must not depend on cuda_bf16.h (the CPU side of the tests)

HOSTDEV static inline uint32_t lm_bits_f32(float x) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    uint32_t u; memcpy(&u, &x, 4); return u;
#endif
}
HOSTDEV static inline float lm_f32_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x; memcpy(&x, &u, 4); return x;
#endif
}

// round to nearest even, NaN kept quiet (the same as safetensors.h's bf16_from_f32)
HOSTDEV static inline uint16_t lm_bf16_rne(float x) {
    uint32_t u = lm_bits_f32(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
HOSTDEV static inline float lm_bf16_to_f32(uint16_t h) { return lm_f32_bits((uint32_t)h << 16); }

// ----------------------------------------------------------------------------
// stochastic rounding float -> bf16. The random bits come from a hash of (seed, element index),
// not from a stateful generator, so a step is reproducible (determinism test, exact resume: the
// seed is derived from the step number) and independent of the launch configuration.

// a 32-bit integer hash (lowbias32 by Chris Wellons); good avalanche, cheap on a GPU
HOSTDEV static inline uint32_t lm_hash32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}
HOSTDEV static inline uint32_t lm_sr_bits(uint32_t seed, uint64_t idx) {
    return lm_hash32((uint32_t)idx ^ lm_hash32(seed ^ lm_hash32((uint32_t)(idx >> 32) + 0x9E3779B9U)));
}

// x rounds up (away from zero in magnitude) with probability equal to the fraction of the bf16
// ulp it lies past the lower neighbour: adding 16 random bits below the kept 16 and truncating.
// inf and NaN pass through; a finite value never rounds to inf unless it is above the max bf16.
HOSTDEV static inline uint16_t lm_bf16_stochastic(float x, uint32_t rnd) {
    uint32_t u = lm_bits_f32(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return lm_bf16_rne(x); // inf / nan
    u += (rnd & 0xffffu);
    return (uint16_t)(u >> 16);
}

// ----------------------------------------------------------------------------
// MFU: achieved FLOP/s over the card's peak (peak <= 0: unknown, the caller prints "n/a")
static inline double mfu_fraction(double flops_per_token, double tokens_per_s, double peak_tflops) {
    if (!(peak_tflops > 0.0)) return -1.0;
    return flops_per_token * tokens_per_s / (peak_tflops * 1e12);
}

#endif // LLAMA_MATH_H
