// adam8bit.h: bitsandbytes-style 8-bit blockwise Adam(W) and its 32-bit fallback, header-only.
// Semantics: /work/shared/spec/adam8bit.md, i.e. the CUDA kernels of bitsandbytes 0.44..0.50
// (kOptimizerStatic8bit2StateBlockwise with block 256, kOptimizer32bit2State), NOT the
// bitsandbytes 0.50 CPU path (that one decays before the step, has no sign fix and no NaN reset).
//
// State of a tensor of n elements (n >= ADAM8_MIN_SIZE):
//   qm, qv    (n,) uint8: indices into the signed map (m) and the unsigned map (v)
//   absmax_m, absmax_v  (ceil(n/256),) float: per-block scale; state value = map[q] * absmax
// Initial state: all bytes 0 and absmax 0 (bitsandbytes' zeros init); it dequantizes to 0.
// Tensors with n < ADAM8_MIN_SIZE keep fp32 m, v (n,) and use adam32_update.
//
// Numerics: everything is fp32 in the order of the kernel source. Known differences from a real
// GPU run, all at the level of 1 ulp: the kernel uses __powf and __fdividef (approximate), and
// nvcc contracts a*b+c into FMAs. Build the C reference without FMA contraction (no -march=native,
// or add -ffp-contract=off) when comparing bytes against dev/ref data.
//
// Compiled by gcc as C and by nvcc (math functions are __host__ __device__).
#ifndef ADAM8BIT_H
#define ADAM8BIT_H

#include "hostdev.h"

#include <stdint.h>
#include <stddef.h>
#include <math.h>

#define ADAM8_BLOCK 256       // elements per absmax block (bitsandbytes >= 0.44; it was 2048 before)
#define ADAM8_MIN_SIZE 4096   // bitsandbytes' min_8bit_size: smaller tensors keep fp32 states

// ----------------------------------------------------------------------------
// quantization maps

// adam8bit_create_dynamic_map: bitsandbytes' create_dynamic_map(signed, max_exponent_bits=7,
// total_bits=8), reproduced bit for bit in float32 (torch builds it in float32):
// for i = 0..6: b = linspace(0.1, 1, k+1) (torch's float32 linspace: the first half
// fmaf(step, j, start), the second half fmaf(-step, k-j, end)), the k midpoints (b[j]+b[j+1])/2, times
// (float)10^(i-6); signed k = 2^i with the negatives mirrored, unsigned k = 2^(i+1); then 0 and
// 1.0, sorted ascending.
// map: (256,) out. signed: map[127] == 0, map[255] == 1; unsigned: map[0] == 0, map[255] == 1.
static void adam8bit_create_dynamic_map(float map[256], int is_signed) {
    // the scales as Python computes 10**(i-6) (a double), then cast to float32 by torch's mul
    static const double scales[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    int count = 0;
    for (int i = 0; i < 7; i++) {
        int k = is_signed ? (1 << i) : (1 << (i + 1));
        int steps = k + 1;                        // linspace points
        float start = 0.1f, end = 1.0f;
        float step = (end - start) / (float)(steps - 1);
        int halfway = steps / 2;
        float scale = (float)scales[i];
        float prev = 0.0f;
        for (int j = 0; j < steps; j++) {
            // torch's CPU linspace (vectorized, AVX2) computes start + step*j with a fused
            // multiply-add, so fmaf reproduces its bits (a separately rounded product differs
            // in about 1 entry of 8)
            float b;
            if (j < halfway) b = fmaf(step, (float)j, start);
            else b = fmaf(-step, (float)(steps - 1 - j), end);
            if (j > 0) {
                float mean = (prev + b) / 2.0f;
                volatile float val = scale * mean;   // volatile: a plain float product
                map[count++] = val;
                if (is_signed) map[count++] = -val;
            }
            prev = b;
        }
    }
    map[count++] = 0.0f;
    map[count++] = 1.0f;
    // count == 256 here for both maps (127*2+2 and 254+2)
    // insertion sort ascending (all values distinct)
    for (int i = 1; i < 256; i++) {
        float x = map[i];
        int j = i - 1;
        while (j >= 0 && map[j] > x) { map[j + 1] = map[j]; j--; }
        map[j + 1] = x;
    }
}

// adam8bit_quantize: index of the map entry nearest to x, exactly as the kernel's quantize_2D:
// a fixed 7-step binary search from index 127 (go up iff x > map[pivot]), which always ends on
// an EVEN pivot p with map[p-1] < x <= map[p+1], then a comparison against the float midpoint
// (map[p] + neighbour) * 0.5f. An x exactly on a midpoint stays with p, so exact ties go to the
// EVEN index of the two neighbours (round-half-to-even on indices). x beyond the ends clamps to
// 0 or 255; NaN gives 0 (every comparison is false), as on the GPU.
// map: (256,) sorted ascending.
HOSTDEV static inline int adam8bit_quantize(const float* map, float x) {
    int pivot = 127, lo = 0, hi = 255;
    float val = map[127];
    for (int step = 64; step > 0; step >>= 1) {
        if (x > val) { lo = pivot; pivot += step; }
        else { hi = pivot; pivot -= step; }
        val = map[pivot];
    }
    // here hi == pivot + 1 and lo == pivot - 1 (lo == 0 when pivot == 0). The kernel starts its
    // bounds at -1.0/0.0 and 1.0 instead of map[0] and map[255]; the result is the same index.
    if (x > val) {
        float mid = (map[hi] + val) * 0.5f;
        return x > mid ? hi : pivot;
    } else {
        float mid = (map[lo] + val) * 0.5f;
        return x < mid ? lo : pivot;
    }
}

HOSTDEV static inline float adam8bit_dequantize(const float* map, uint8_t q, float absmax) {
    return map[q] * absmax;
}

// ----------------------------------------------------------------------------
// 8-bit blockwise update

// adam8bit_update_block: one block of ADAM8_BLOCK elements (the last block of a tensor may be
// shorter), t counted from 1, all in fp32 in the kernel's order of operations:
//   v = deq(v)*b2 + ((1-b2)*g)*g ; m = deq(m)*b1 + (1-b1)*g      (g finite)
//   m = v = 0, p unchanged                                       (g NaN or +-Inf)
//   absmax = max |.| over the block's UPDATED m (resp. v)
//   p += step_size * (m / (sqrt(v) + c2*eps)), step_size = -lr*c2/c1, c1 = 1-b1^t, c2 = sqrt(1-b2^t)
//   p *= 1 - lr*wd  (decoupled, after the step, only when wd > 0 and g is finite)
//   qm = nearest(map_m, m/absmax_m), then if the sign bit of map_m[qm] differs from m's, one
//   step towards m's sign; qv = nearest(map_v, v/absmax_v).
// An all-zero block (absmax 0) requantizes to the maps' zero entries (qm 127, qv 0) instead of
// 0/0; the GPU computes NaN there and stores qm 255, qv 0, which dequantize to the same 0.
// A short last block: the kernel's idle lanes load g = 0, m byte 128 and v byte 0, and take
// part in the absmax reduction, so |map_m[128] * old absmax_m * b1| is a floor of the new
// absmax_m (about 5e-7 of the old one; it only shows when the block's real m all vanish).
// p, g: (n,)   qm, qv: (n,) in/out   absmax_m, absmax_v: (1,) in/out   map_m, map_v: (256,)
// The three per-element steps of the kernel, shared by the CPU's block loop below and the GPU's
// one-thread-per-element kernel (adam8bit.cuh), so both run the same arithmetic.

// step 1: the new m and v from the dequantized old state; a NaN/Inf gradient resets both to 0
HOSTDEV static inline void adam8bit_elem_moments(float g, uint8_t qm, uint8_t qv, float old_am, float old_av,
                                                 const float* map_m, const float* map_v, float b1, float b2,
                                                 float* m, float* v) {
    if (!isnan(g) && !isinf(g)) {
        *v = adam8bit_dequantize(map_v, qv, old_av) * b2 + ((1.0f - b2) * g) * g;
        *m = adam8bit_dequantize(map_m, qm, old_am) * b1 + (1.0f - b1) * g;
    } else {
        *m = 0.0f;
        *v = 0.0f;
    }
}

// step 2: the parameter from the unquantized new m, v (the caller skips it for a non-finite
// gradient), then decoupled decay. step_size = -lr * c2 / c1, c2 = sqrt(1 - b2^t)
HOSTDEV static inline float adam8bit_elem_param(float p, float m, float v, float step_size, float c2, float eps,
                                                float lr, float wd) {
    float pi = p + step_size * (m / (sqrtf(v) + c2 * eps));
    if (wd > 0.0f) pi = pi * (1.0f - lr * wd);
    return pi;
}

// step 3: requantize against the block's new absmax (am, av); an all-zero block stores the zero
// entries. Keep m's sign: the kernel compares sign bits, so a tiny negative (or -0) m that rounds
// to the +0 entry moves one entry down, to the smallest negative value.
HOSTDEV static inline void adam8bit_elem_quantize(float m, float v, float am, float av, const float* map_m,
                                                  const float* map_v, uint8_t* qm, uint8_t* qv) {
    int q1;
    if (am > 0.0f) {
        q1 = adam8bit_quantize(map_m, m / am);
        if ((signbit(map_m[q1]) != 0) != (signbit(m) != 0)) q1 += (m > 0.0f) ? 1 : -1;
        q1 &= 255;   // the kernel stores an unsigned char
    } else {
        q1 = adam8bit_quantize(map_m, 0.0f);
    }
    *qm = (uint8_t)q1;
    *qv = (uint8_t)(av > 0.0f ? adam8bit_quantize(map_v, v / av) : adam8bit_quantize(map_v, 0.0f));
}

HOSTDEV static void adam8bit_update_block(float* p, const float* g, uint8_t* qm, uint8_t* qv,
                                          float* absmax_m, float* absmax_v, int n,
                                          const float* map_m, const float* map_v,
                                          float b1, float b2, float eps, float lr, float wd, int t) {
    const float c1 = 1.0f - powf(b1, (float)t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    const float step_size = (-lr * c2) / c1;
    const float old_am = *absmax_m, old_av = *absmax_v;
    float m[ADAM8_BLOCK], v[ADAM8_BLOCK];
    float am = 0.0f, av = 0.0f;    // |x| >= 0, so starting at 0 equals the kernel's -FLT_MAX
    for (int i = 0; i < n; i++) {
        adam8bit_elem_moments(g[i], qm[i], qv[i], old_am, old_av, map_m, map_v, b1, b2, &m[i], &v[i]);
        am = fmaxf(am, fabsf(m[i]));
        av = fmaxf(av, fabsf(v[i]));
    }
    if (n < ADAM8_BLOCK) {
        // idle lanes of the kernel: g = 0, m byte 128, v byte 0 (see above)
        float pad_m, pad_v;
        adam8bit_elem_moments(0.0f, 128, 0, old_am, old_av, map_m, map_v, b1, b2, &pad_m, &pad_v);
        am = fmaxf(am, fabsf(pad_m));
        av = fmaxf(av, fabsf(pad_v));
    }
    *absmax_m = am;
    *absmax_v = av;
    for (int i = 0; i < n; i++) {
        if (!isnan(g[i]) && !isinf(g[i])) p[i] = adam8bit_elem_param(p[i], m[i], v[i], step_size, c2, eps, lr, wd);
        adam8bit_elem_quantize(m[i], v[i], am, av, map_m, map_v, &qm[i], &qv[i]);
    }
}

// adam8bit_update: one step over a whole tensor, block by block (blocks are independent).
// p, g: (n,)   qm, qv: (n,)   absmax_m, absmax_v: (ceil(n/256),)
static void adam8bit_update(float* p, const float* g, uint8_t* qm, uint8_t* qv,
                            float* absmax_m, float* absmax_v, int64_t n,
                            const float* map_m, const float* map_v,
                            float b1, float b2, float eps, float lr, float wd, int t) {
    int64_t nblocks = (n + ADAM8_BLOCK - 1) / ADAM8_BLOCK;
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t off = b * ADAM8_BLOCK;
        int len = (int)(n - off < ADAM8_BLOCK ? n - off : ADAM8_BLOCK);
        adam8bit_update_block(p + off, g + off, qm + off, qv + off, absmax_m + b, absmax_v + b, len,
                              map_m, map_v, b1, b2, eps, lr, wd, t);
    }
}

// ----------------------------------------------------------------------------
// 32-bit path (kOptimizer32bit2State, used for tensors under ADAM8_MIN_SIZE elements)

// adam32_update_elem: one element. Unlike the 8-bit kernel there is NO NaN/Inf guard: a
// non-finite gradient propagates into m, v and p, as in bitsandbytes. Note v's product order
// differs from the 8-bit kernel: (1-b2)*(g*g) here. Decoupled decay after the step.
// step_size = -lr*c2/c1 and c2 = sqrt(1-b2^t) come from adam32_update.
HOSTDEV static inline void adam32_update_elem(float* p, float* m, float* v, float g,
                                              float b1, float b2, float eps, float lr, float wd,
                                              float c2, float step_size) {
    float mi = *m * b1 + (1.0f - b1) * g;
    float vi = *v * b2 + (1.0f - b2) * (g * g);
    float pi = *p + step_size * (mi / (sqrtf(vi) + eps * c2));
    if (wd > 0.0f) pi = pi * (1.0f - lr * wd);
    *m = mi;
    *v = vi;
    *p = pi;
}

// adam32_update: p, g, m, v: (n,); m, v start at 0; t counted from 1
static void adam32_update(float* p, const float* g, float* m, float* v, int64_t n,
                          float b1, float b2, float eps, float lr, float wd, int t) {
    const float c1 = 1.0f - powf(b1, (float)t);
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    const float step_size = (-lr * c2) / c1;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        adam32_update_elem(p + i, m + i, v + i, g[i], b1, b2, eps, lr, wd, c2, step_size);
    }
}

// adam8bit_state_bytes: optimizer state of an n-element tensor: 2 bytes per element plus two
// float absmax per 256-element block, or two fp32 moments under ADAM8_MIN_SIZE elements
static size_t adam8bit_state_bytes(int64_t n) {
    if (n < ADAM8_MIN_SIZE) return (size_t)n * 8;
    int64_t nblocks = (n + ADAM8_BLOCK - 1) / ADAM8_BLOCK;
    return (size_t)n * 2 + (size_t)nblocks * 2 * sizeof(float);
}

#endif // ADAM8BIT_H
