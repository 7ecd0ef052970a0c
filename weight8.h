// weight8.h: INT8 weights (--weights int8), the storage of Q-GaLore and Q-APOLLO. A quantized
// tensor keeps one 8-bit code per element and, per group of G contiguous elements of its
// row-major data (along the input dimension; the last group of a tensor may be shorter), an fp32
// scale and an 8-bit zero point. The rule is q-galore-torch 1.0's (_quantize and
// _quantize_stochastic_round in q_galore_adamw8bit.py), asymmetric over [min, max] of the group:
//   scale = max(max - min, 1e-5) / 255
//   zero  = clamp(-round(min / scale), 0, 255)
//   code  = clamp(round(w / scale) + zero, 0, 255)     (round: half to even, as torch.round)
//   w     = (code - zero) * scale
// Stochastic rounding replaces round(x) by floor(x) + 1 with probability x - floor(x) (torch:
// rand < frac takes the ceiling). The draws come from a counter-based hash of (run seed, step,
// tensor, element), not a stateful generator: the same on both engines, in any order, so the CPU
// is the GPU's oracle, per-layer equals whole-model, and a resumed run is bit-exact.
// Everything here is fp32 with IEEE round-to-nearest on both engines (GALORE_DIV / GALORE_MUL:
// nvcc's --use_fast_math would make '/' approximate).
#ifndef WEIGHT8_H
#define WEIGHT8_H

#include <stdint.h>
#include <math.h>
#include "hostdev.h"
#include "llama.h"
#include "llama_math.h"
#include "galore.h"

#define W8_LEVELS 255 // codes 0..255

// which tensors --weights int8 stores as codes: the projected matrices (GaLore's, q/k/v/o and
// gate/up/down), and with --weight-int8-embed 1 the embedding and lm_head too; norms never
static inline int weight8_applies(const ParamInfo* p, int embed) { return p->galore || (embed && p->ndim == 2); }
static inline int64_t weight8_groups(int64_t numel, int64_t G) { return (numel + G - 1) / G; }

// the scale and zero point of a group whose elements span [lo, hi]
HOSTDEV static inline void weight8_group_params(float lo, float hi, float* scale, float* zero) {
    float d = hi - lo;
    if (!(d >= 1e-5f)) d = 1e-5f; // torch's clamp(min=1e-5); a NaN range never reaches here (skipped steps)
    float s = GALORE_DIV(d, (float)W8_LEVELS);
    float z = -rintf(GALORE_DIV(lo, s));
    *scale = s;
    *zero = fminf(fmaxf(z, 0.0f), (float)W8_LEVELS);
}

// the draw of element k of a tensor: 24 uniform bits as a float in [0, 1), like torch.rand's fp32
HOSTDEV static inline float weight8_uniform(uint32_t seed, uint64_t k) { return (float)(lm_sr_bits(seed, k) >> 8) * (1.0f / 16777216.0f); }

// the seed of tensor i's requantization after update t (1-based) of a run with seed run_seed;
// kept apart from the bf16 stochastic rounding's stream by its own constant
HOSTDEV static inline uint32_t weight8_seed(uint64_t run_seed, int64_t t, int i) {
    uint32_t s = (uint32_t)run_seed ^ lm_hash32((uint32_t)(run_seed >> 32) ^ 0x51384E54U);
    return lm_hash32(s ^ lm_hash32((uint32_t)t * 0x9E3779B9U + (uint32_t)i));
}

// one element: u < 0 rounds to nearest even (the initial quantization), else stochastically with
// the draw u in [0, 1)
HOSTDEV static inline uint8_t weight8_code(float w, float scale, float zero, float u) {
    float x = GALORE_DIV(w, scale);
    float q;
    if (u < 0.0f) q = rintf(x);
    else {
        float f = floorf(x);
        q = u < x - f ? f + 1.0f : f; // x - f is exact
    }
    q += zero;
    q = fminf(fmaxf(q, 0.0f), (float)W8_LEVELS);
    return (uint8_t)q;
}
HOSTDEV static inline float weight8_value(uint8_t code, float scale, float zero) { return GALORE_MUL((float)code - zero, scale); }

// ----------------------------------------------------------------------------
// host: a whole tensor (the CPU engine, the tests, and the GPU's initial quantization)

// w (n) -> codes (n), scales and zeros (weight8_groups(n, G)). stochastic 0: nearest; else the
// draws of weight8_seed's seed
static void weight8_quantize(const float* w, int64_t n, int64_t G, int stochastic, uint32_t seed, uint8_t* codes, float* scales,
                             uint8_t* zeros) {
    int64_t ng = weight8_groups(n, G);
    for (int64_t g = 0; g < ng; g++) {
        int64_t k0 = g * G, k1 = k0 + G < n ? k0 + G : n;
        float lo = w[k0], hi = w[k0];
        for (int64_t k = k0 + 1; k < k1; k++) { lo = fminf(lo, w[k]); hi = fmaxf(hi, w[k]); }
        float s, z;
        weight8_group_params(lo, hi, &s, &z);
        scales[g] = s; zeros[g] = (uint8_t)z;
        for (int64_t k = k0; k < k1; k++) codes[k] = weight8_code(w[k], s, z, stochastic ? weight8_uniform(seed, (uint64_t)k) : -1.0f);
    }
}
static void weight8_dequantize(const uint8_t* codes, int64_t n, int64_t G, const float* scales, const uint8_t* zeros, float* w) {
    for (int64_t k = 0; k < n; k++) w[k] = weight8_value(codes[k], scales[k / G], (float)zeros[k / G]);
}

// the bytes of one quantized tensor: codes, fp32 scales, 8-bit zeros
static inline double weight8_bytes(int64_t numel, int64_t G) { return (double)numel + 5.0 * (double)weight8_groups(numel, G); }

#endif // WEIGHT8_H
