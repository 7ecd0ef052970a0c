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
#include "utils.h"
#include "checkpoint.h"

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
    // groups are independent and every draw is a function of its element's index: any split of
    // the loop gives the same codes (llama_60m's matrices serially: ~0.5 s a step on the CPU)
    #pragma omp parallel for schedule(static)
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
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; k++) w[k] = weight8_value(codes[k], scales[k / G], (float)zeros[k / G]);
}

// the bytes of one quantized tensor: codes, fp32 scales, 8-bit zeros
static inline double weight8_bytes(int64_t numel, int64_t G) { return (double)numel + 5.0 * (double)weight8_groups(numel, G); }

// ----------------------------------------------------------------------------
// the INT8 state of a model on the host: the CPU engine's own, the GPU's staging copy for
// checkpoints (and its initial quantization). One allocation each for the codes and the group
// parameters, then pointer tables (NULL where a tensor keeps float weights).

typedef struct {
    int G;              // --weight-group; 0: --weights is not int8 (nothing below is allocated)
    int embed;          // --weight-int8-embed
    int n;              // tensors of the parameter table
    int64_t* numel;     // (n) elements of tensor i if it is quantized, else 0
    uint8_t** codes;    // (n) tensor i: (numel) codes, or NULL
    float** scales;     // (n) tensor i: (groups) fp32 scales, or NULL
    uint8_t** zeros;    // (n) tensor i: (groups) zero points, or NULL
    int64_t total;      // codes in all
    int64_t groups;     // scales (and zero points) in all
    int tensors;        // tensors quantized
    uint8_t* cmem; float* smem; uint8_t* zmem; // the allocations behind the tables
} Weight8;

// weight8_init: G 0 leaves w empty (float weights); else the tables of every tensor
// weight8_applies selects, allocated zeroed
static void weight8_init(Weight8* w, const ParamTable* pt, int G, int embed) {
    memset(w, 0, sizeof *w);
    w->G = G; w->embed = embed; w->n = pt->n;
    if (G <= 0) return;
    w->numel = (int64_t*)callocCheck((size_t)pt->n, sizeof(int64_t));
    for (int i = 0; i < pt->n; i++)
        if (weight8_applies(&pt->info[i], embed)) {
            w->numel[i] = pt->info[i].numel;
            w->total += w->numel[i]; w->groups += weight8_groups(w->numel[i], G); w->tensors++;
        }
    size_t ptrs = sizeof(void*) * (size_t)pt->n;
    w->codes = (uint8_t**)callocCheck(1, ptrs); w->scales = (float**)callocCheck(1, ptrs); w->zeros = (uint8_t**)callocCheck(1, ptrs);
    w->cmem = (uint8_t*)callocCheck((size_t)w->total + 1, 1);
    w->smem = (float*)callocCheck((size_t)w->groups + 1, sizeof(float));
    w->zmem = (uint8_t*)callocCheck((size_t)w->groups + 1, 1);
    int64_t k = 0, g = 0;
    for (int i = 0; i < pt->n; i++) {
        if (w->numel[i] == 0) continue;
        w->codes[i] = w->cmem + k; w->scales[i] = w->smem + g; w->zeros[i] = w->zmem + g;
        k += w->numel[i]; g += weight8_groups(w->numel[i], G);
    }
}

static void weight8_free(Weight8* w) {
    free(w->numel); free(w->codes); free(w->scales); free(w->zeros); free(w->cmem); free(w->smem); free(w->zmem);
    memset(w, 0, sizeof *w);
}

// weight8_state_entries: the checkpoint entries of the INT8 state, the same names on every engine
// (w8.<tensor>.codes, .scales, .zeros) so that either resumes the other's; none for float weights.
// The tables are host memory (the GPU passes its staging copy).
static int weight8_state_entries(StateEntry* e, int cap, const Weight8* w) {
    int n = 0;
    for (int i = 0; i < w->n && w->G > 0; i++) {
        if (w->numel[i] == 0) continue;
        if (n + 3 > cap) die("internal: too many state entries");
        int64_t ng = weight8_groups(w->numel[i], w->G);
        const char* part[3] = {"codes", "scales", "zeros"};
        void* data[3] = {w->codes[i], w->scales[i], w->zeros[i]};
        int64_t bytes[3] = {w->numel[i], (int64_t)sizeof(float) * ng, ng};
        for (int k = 0; k < 3; k++) {
            snprintf(e[n].name, STATE_NAME_LEN, "w8.%d.%s", i, part[k]);
            e[n].data = data[k]; e[n].nbytes = bytes[k]; n++;
        }
    }
    return n;
}

// weight8_quantize_params: the quantized tensors of the flat fp32 params (table order) to codes,
// rounded to nearest (the initial quantization of random or --init weights), and the params set to
// their dequantized values, which are the weights from then on
static void weight8_quantize_params(Weight8* w, const ParamTable* pt, float* params) {
    for (int i = 0; i < w->n && w->G > 0; i++) {
        if (w->numel[i] == 0) continue;
        float* p = params + pt->info[i].offset;
        weight8_quantize(p, w->numel[i], w->G, 0, 0, w->codes[i], w->scales[i], w->zeros[i]);
        weight8_dequantize(w->codes[i], w->numel[i], w->G, w->scales[i], w->zeros[i], p);
    }
}

// weight8_dequantize_params: the quantized tensors of params rebuilt from the codes (a resume: the
// codes are the weights; a checkpoint's float file is not trusted for them)
static void weight8_dequantize_params(const Weight8* w, const ParamTable* pt, float* params) {
    for (int i = 0; i < w->n && w->G > 0; i++)
        if (w->numel[i]) weight8_dequantize(w->codes[i], w->numel[i], w->G, w->scales[i], w->zeros[i], params + pt->info[i].offset);
}

// weight8_requantize: tensor i (p, its fp32 values after update t) to codes with stochastic
// rounding (weight8_seed's draws), and p set to the dequantized values. A no-op for float tensors.
static void weight8_requantize(Weight8* w, int i, float* p, uint64_t run_seed, int64_t t) {
    if (w->G <= 0 || w->numel[i] == 0) return;
    weight8_quantize(p, w->numel[i], w->G, 1, weight8_seed(run_seed, t, i), w->codes[i], w->scales[i], w->zeros[i]);
    weight8_dequantize(w->codes[i], w->numel[i], w->G, w->scales[i], w->zeros[i], p);
}

// weight8_describe: the startup line's words for the INT8 state ("" for float weights)
static void weight8_describe(const Weight8* w, char* buf, size_t cap) {
    if (w->G <= 0) { snprintf(buf, cap, "%s", ""); return; }
    snprintf(buf, cap, "int8 (q-galore's per-group rule, stochastic requantization) | group %d | %d tensors: the projected matrices%s | "
             "%.3f MiB (codes %.3f, fp32 scales + 8-bit zero points %.3f)", w->G, w->tensors, w->embed ? ", embedding and lm_head" : "",
             ((double)w->total + 5.0 * (double)w->groups) / 1048576.0, (double)w->total / 1048576.0, 5.0 * (double)w->groups / 1048576.0);
}

#endif // WEIGHT8_H
