// galore.h: what GaLore is, independent of the engine. Shared by the CPU program and the CUDA
// one (galore.cuh builds its kernels on it): the optimizer kinds, the projector side rule and
// refresh schedule, the per-tensor state layout (which the memory plan and the allocation both
// read, so they cannot drift apart), and the per-element Adam math as __host__ __device__
// functions under nvcc.
//
// Matrices are in PyTorch layout W[out][in]; a gradient G is m x n = [out, in], exactly as
// galore-torch sees it, so the side rule needs no flipping.
#ifndef GALORE_H
#define GALORE_H

#include <stdint.h>
#include <string.h>
#include <math.h>
#include "llama.h"
#include "adam8bit.h"

#include "hostdev.h"

// ----------------------------------------------------------------------------
// optimizer kinds and their settings

enum {
    OPTIM_ADAMW = 0,         // torch.optim.AdamW: decoupled decay before the step, eps after bias correction
    OPTIM_ADAM,              // torch.optim.Adam: L2 decay added to the gradient (the GaLore scripts' baseline)
    OPTIM_GALORE_ADAMW,      // galore-torch GaLoreAdamW: HF-style AdamW (eps not bias-corrected, decay after)
    OPTIM_ADAM8BIT,          // bitsandbytes' blockwise 8-bit Adam (CUDA kernel semantics)
    OPTIM_GALORE_ADAMW8BIT,  // galore-torch GaLoreAdamW8bit: the 8-bit kernel on the low-rank gradient
    OPTIM_NUM_KINDS
};
static const char* const OPTIM_NAMES[OPTIM_NUM_KINDS] = {"adamw", "adam", "galore_adamw", "adam8bit", "galore_adamw8bit"};
// default eps of each: torch and bitsandbytes use 1e-8, galore-torch's GaLoreAdamW (HF AdamW) 1e-6
static const float OPTIM_DEFAULT_EPS[OPTIM_NUM_KINDS] = {1e-8f, 1e-8f, 1e-6f, 1e-8f, 1e-8f};

enum { PROJ_STD = 0, PROJ_REVERSE_STD, PROJ_LEFT, PROJ_RIGHT };
static const char* const PROJ_NAMES[] = {"std", "reverse_std", "left", "right"};

enum { SIDE_NONE = 0, SIDE_LEFT, SIDE_RIGHT };

typedef struct {
    int kind;                // OPTIM_*
    float beta1, beta2, eps, weight_decay;
    int rank;                // r
    int update_proj_gap;     // T: refresh at optimizer steps 1, T+1, 2T+1, ...
    float scale;             // alpha, applied to GaLore tensors only
    int proj_type;           // PROJ_*
} OptimConfig;

static inline int optim_is_galore(int kind) { return kind == OPTIM_GALORE_ADAMW || kind == OPTIM_GALORE_ADAMW8BIT; }
static inline int optim_is_8bit(int kind) { return kind == OPTIM_ADAM8BIT || kind == OPTIM_GALORE_ADAMW8BIT; }

static int optim_kind_from_name(const char* s) {
    for (int k = 0; k < OPTIM_NUM_KINDS; k++) if (strcmp(s, OPTIM_NAMES[k]) == 0) return k;
    return -1;
}
static int proj_type_from_name(const char* s) {
    for (int k = 0; k < 4; k++) if (strcmp(s, PROJ_NAMES[k]) == 0) return k;
    return -1;
}

// ----------------------------------------------------------------------------
// the projector

// galore_side: galore-torch's rule. std: m >= n (ties included, so every square matrix) takes
// the RIGHT basis P = Vh[:r] (r x n), R = G P^T (m x r); m < n takes the LEFT basis P = U[:, :r]
// (m x r), R = P^T G (r x n). reverse_std swaps the rule; left/right force a side.
HOSTDEV static inline int galore_side(int64_t m, int64_t n, int proj_type) {
    switch (proj_type) {
        case PROJ_LEFT: return SIDE_LEFT;
        case PROJ_RIGHT: return SIDE_RIGHT;
        case PROJ_REVERSE_STD: return m >= n ? SIDE_LEFT : SIDE_RIGHT;
        default: return m >= n ? SIDE_RIGHT : SIDE_LEFT;
    }
}

// a rank above min(m, n) keeps every singular vector, as slicing U[:, :r] does in torch
HOSTDEV static inline int64_t galore_rank(int64_t m, int64_t n, int64_t r) {
    int64_t k = m < n ? m : n;
    return r < k ? r : k;
}

// the basis is recomputed when there is none yet or when the step count BEFORE this update
// (0-based) is a multiple of T: at 1-based steps 1, T+1, 2T+1, ...
HOSTDEV static inline int galore_refresh_due(int64_t t, int64_t T) { return T <= 0 ? (t == 1) : ((t - 1) % T == 0); }

// galore_sign_fix: singular vectors are unique only up to sign, and LAPACK builds (MKL,
// OpenBLAS, cuSOLVER's gesvdj) choose differently. Across a refresh the sign matters (the moments
// carry over into the new basis), so every engine flips each kept basis vector to make its entry
// of largest magnitude positive (the first one on ties): the same projector on CPU and GPU, and a
// convention a reference can adopt. Vector j is P[j*n ..] (right) or column j of P (left).
static void galore_sign_fix(float* P, int side, int64_t m, int64_t n, int64_t r) {
    int64_t len = side == SIDE_RIGHT ? n : m, stride = side == SIDE_RIGHT ? 1 : r;
    for (int64_t j = 0; j < r; j++) {
        float* v = side == SIDE_RIGHT ? P + j * n : P + j;
        int64_t best = 0;
        for (int64_t i = 1; i < len; i++) if (fabsf(v[i * stride]) > fabsf(v[best * stride])) best = i;
        if (v[best * stride] < 0.0f) for (int64_t i = 0; i < len; i++) v[i * stride] = -v[i * stride];
    }
}

// ----------------------------------------------------------------------------
// per-tensor state layout: the one place that decides what each tensor keeps

enum { STATE_FP32 = 0, STATE_8BIT };

typedef struct {
    int side;            // SIDE_NONE: full-rank update
    int64_t m, n;        // the gradient's shape (rows, cols); 1-D tensors have n = 1
    int64_t r;           // effective rank (0 without a projector)
    int64_t srows, scols;// shape of the moments: R's shape under GaLore, else the tensor's
    int64_t snumel;      // srows * scols
    int64_t proj_numel;  // m*r (left) or r*n (right), 0 without a projector
    int state;           // STATE_FP32 or STATE_8BIT (8-bit needs >= ADAM8_MIN_SIZE elements)
    int64_t nblocks;     // 256-element absmax blocks of the 8-bit state
} TensorLayout;

static void tensor_layout(TensorLayout* lay, const ParamInfo* p, const OptimConfig* o) {
    memset(lay, 0, sizeof *lay);
    lay->m = p->rows; lay->n = p->cols;
    lay->srows = p->rows; lay->scols = p->cols;
    if (optim_is_galore(o->kind) && p->galore && p->ndim == 2) {
        lay->side = galore_side(lay->m, lay->n, o->proj_type);
        lay->r = galore_rank(lay->m, lay->n, o->rank);
        if (lay->side == SIDE_RIGHT) { lay->scols = lay->r; lay->proj_numel = lay->r * lay->n; }
        else { lay->srows = lay->r; lay->proj_numel = lay->m * lay->r; }
    }
    lay->snumel = lay->srows * lay->scols;
    lay->state = (optim_is_8bit(o->kind) && lay->snumel >= ADAM8_MIN_SIZE) ? STATE_8BIT : STATE_FP32;
    lay->nblocks = lay->state == STATE_8BIT ? (lay->snumel + ADAM8_BLOCK - 1) / ADAM8_BLOCK : 0;
}

// ----------------------------------------------------------------------------
// per-element Adam math, one function per convention. Each updates the moments in place.

// torch.optim.AdamW / Adam (single-tensor path): returns the new parameter value.
// decay: 1 - lr*wd for AdamW (applied before the step), 1 for Adam; l2: wd for Adam, 0 for AdamW.
HOSTDEV static inline float adam_torch_elem(float p, float g, float* m, float* v, float b1, float b2, float eps,
                                            float step_size, float inv_bc2_sqrt, float decay, float l2) {
    g = g + l2 * p;
    float mk = *m + (1.0f - b1) * (g - *m); // torch uses lerp for the first moment
    float vk = b2 * *v + (1.0f - b2) * g * g;
    *m = mk; *v = vk;
    return p * decay - step_size * mk / (sqrtf(vk) * inv_bc2_sqrt + eps);
}

// HF-style AdamW as galore-torch runs it: returns the normalized direction m / (sqrt(v) + eps);
// the caller projects it back (GaLore), scales by step_size = lr sqrt(1-b2^t)/(1-b1^t) and decays
HOSTDEV static inline float adam_hf_elem(float g, float* m, float* v, float b1, float b2, float eps) {
    float mk = *m * b1 + (1.0f - b1) * g;
    float vk = *v * b2 + (1.0f - b2) * g * g;
    *m = mk; *v = vk;
    return mk / (sqrtf(vk) + eps);
}

#endif // GALORE_H
