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
    // --- fira (issue 15) ---
    OPTIM_FIRA_ADAMW,        // fira 1.0.2 FiraAdamW: GaLoreAdamW plus the scaled residual G - back(R) (fira_* below)
    // --- end fira ---
    // --- APOLLO (apollo-torch 1.0.3 APOLLOAdamW, proj "random"; see the APOLLO section below) ---
    OPTIM_APOLLO_ADAMW,      // channel-wise scaling of the raw gradient from a rank-r random projection's Adam state
    OPTIM_APOLLO_MINI,       // APOLLO-Mini: rank 1, tensor-wise scaling, scale 128
    OPTIM_APOLLO_ADAMW8BIT,  // APOLLO with its low-rank moments in bitsandbytes' 8-bit blockwise kernel (not in the package)
    // --- end APOLLO ---
    // --- fira 8-bit (issue 15; last, so the checkpoint fingerprint's kind numbers of older runs stay as they were) ---
    OPTIM_FIRA_ADAMW8BIT,    // Fira with its low-rank moments kept as galore_adamw8bit keeps them (not in the package; fira_adamw8bit_* below)
    // --- end fira 8-bit ---
    OPTIM_NUM_KINDS
};
static const char* const OPTIM_NAMES[OPTIM_NUM_KINDS] = {"adamw", "adam", "galore_adamw", "adam8bit", "galore_adamw8bit", "fira_adamw",
                                                         "apollo_adamw", "apollo_mini", "apollo_adamw8bit",
                                                         "fira_adamw8bit"};
// default eps of each: torch and bitsandbytes use 1e-8, galore-torch's GaLoreAdamW (HF AdamW) 1e-6,
// fira's and apollo-torch's AdamW (copies of HF's) 1e-6; the 8-bit APOLLO and Fira run bitsandbytes' kernel: 1e-8
static const float OPTIM_DEFAULT_EPS[OPTIM_NUM_KINDS] = {1e-8f, 1e-8f, 1e-6f, 1e-8f, 1e-8f, 1e-6f, 1e-6f, 1e-6f, 1e-8f, 1e-8f};

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
    int svd;                 // SVD_*: how a refresh computes the projector (--svd)
    int projector;           // PROJECTOR_*: the SVD of the gradient, or a random orthonormal basis (--proj, GoLore)
    uint64_t seed;           // the run's --seed: the random projectors derive from it (galore_proj_seed)
    // --- APOLLO ---
    float apollo_scale;      // the package's `scale`: the update is multiplied by sqrt(scale) (--apollo-scale)
    int scale_type;          // APOLLO_SCALE_CHANNEL or APOLLO_SCALE_TENSOR (--scale-type)
    // --- end APOLLO ---
    // --- INT8 weights (weight8.h): every update of a quantized tensor ends in its stochastic requantization ---
    int w8_group;            // --weights int8: --weight-group; 0: float weights
    int w8_embed;            // --weight-int8-embed
} OptimConfig;

// the optimizers built on GaLore's projector machinery (a projector per matrix, refreshed every T)
static inline int optim_is_galore(int kind) {
    return kind == OPTIM_GALORE_ADAMW || kind == OPTIM_GALORE_ADAMW8BIT || kind == OPTIM_FIRA_ADAMW || kind == OPTIM_FIRA_ADAMW8BIT;
}
// Fira: GaLore plus the norm-scaled residual and its limiter (galore.h's Fira block), fp32 or 8-bit moments
static inline int optim_is_fira(int kind) { return kind == OPTIM_FIRA_ADAMW || kind == OPTIM_FIRA_ADAMW8BIT; }
static inline int optim_is_apollo(int kind) { return kind == OPTIM_APOLLO_ADAMW || kind == OPTIM_APOLLO_MINI || kind == OPTIM_APOLLO_ADAMW8BIT; }
static inline int optim_is_8bit(int kind) {
    return kind == OPTIM_ADAM8BIT || kind == OPTIM_GALORE_ADAMW8BIT || kind == OPTIM_APOLLO_ADAMW8BIT || kind == OPTIM_FIRA_ADAMW8BIT;
}
// the kinds with a projector, and so with --rank, --update-proj-gap and --proj-type
static inline int optim_has_projector(int kind) { return optim_is_galore(kind) || optim_is_apollo(kind); }
// the path of the tensors without a projector (1-D, embeddings, lm_head): apollo-torch's AdamW
// runs them as HF AdamW, exactly galore-torch's plain path; the 8-bit APOLLO and the 8-bit Fira as
// GaLoreAdamW8bit's (the 8-bit Fira's GaLore matrices take that case too: its Fira branch)
static inline int optim_plain_kind(int kind) {
    return kind == OPTIM_APOLLO_ADAMW || kind == OPTIM_APOLLO_MINI ? OPTIM_GALORE_ADAMW
           : kind == OPTIM_APOLLO_ADAMW8BIT || kind == OPTIM_FIRA_ADAMW8BIT ? OPTIM_GALORE_ADAMW8BIT : kind;
}

static int optim_kind_from_name(const char* s) {
    for (int k = 0; k < OPTIM_NUM_KINDS; k++) if (strcmp(s, OPTIM_NAMES[k]) == 0) return k;
    return -1;
}
static int proj_type_from_name(const char* s) {
    for (int k = 0; k < 4; k++) if (strcmp(s, PROJ_NAMES[k]) == 0) return k;
    return -1;
}

// --svd: the projector refresh's algorithm. auto (0, so a zeroed OptimConfig means auto) picks
// per matrix shape by galore_svd_pick; exact and randomized force one for every GaLore matrix.
enum { SVD_AUTO = 0, SVD_EXACT, SVD_RANDOMIZED };
static const char* const SVD_NAMES[] = {"auto", "exact", "randomized"};
static int svd_from_name(const char* s) {
    for (int k = 0; k < 3; k++) if (strcmp(s, SVD_NAMES[k]) == 0) return k;
    return -1;
}

// --- golore (issue 15) ---
// --proj: what a refresh builds the projector from. svd (0: a zeroed OptimConfig means GaLore's) is
// the top-r singular vectors of the gradient (--svd says how); random is GoLore's (He et al. 2024,
// arXiv 2410.11289): an orthonormalized standard Gaussian basis, drawn independently of the
// gradient, uniform over the r-dimensional subspaces. Why: an SVD of a small-batch gradient is
// dominated by its noise late in training and keeps projecting onto the same noisy directions,
// while a random subspace is an unbiased compression (E[P P^T] = (r/len) I) and converges.
enum { PROJECTOR_SVD = 0, PROJECTOR_RANDOM };
static const char* const PROJECTOR_NAMES[] = {"svd", "random"};
static int projector_from_name(const char* s) {
    for (int k = 0; k < 2; k++) if (strcmp(s, PROJECTOR_NAMES[k]) == 0) return k;
    return -1;
}
// --- end golore ---

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
// the randomized refresh (--svd randomized, or auto where it pays)
//
// The exact refresh takes the whole economy SVD of G (m x n), O(m n min(m, n)) work with a large
// constant, and keeps r of its vectors. A randomized range finder with power iterations (Halko,
// Martinsson and Tropp 2011, algorithms 4.4 and 5.1) gets the top r from gemms with l = r + p
// columns. With A the matrix whose LEFT singular vectors are wanted (len x other: A = G for the
// left side, len = m; A = G^T for the right side, len = n):
//   Y = A Omega (len x l), Omega (other x l) standard normal; Q = qr(Y)
//   q times: Q' = qr(A^T Q) (other x l); Q = qr(A Q')        re-orthonormalized each half step,
//            so fp32 keeps the small directions (sigma^(2q+1) would underflow their share)
//   B = Q^T A (l x other, small); B = U_B S V_B^T; the projector's vectors U = Q U_B[:, :r]
// sorted by descending singular value (of B, which approximate G's), then galore_sign_fix as the
// exact path. Work: (4q + 4) len other l flops of gemm plus QRs of len x l and other x l.
// Accuracy: the captured energy misses at most about (sigma_{l+1} / sigma_r)^(4q+2) of the tail,
// so gradients with a decaying spectrum lose ~nothing; a flat spectrum (noise) loses more, where
// any rank-r basis is about as good as another. The per-shape choice is galore_svd_pick.
#define GALORE_SVD_OVERSAMPLE 8     // p: extra sketch columns (Halko et al.: 5..10 suffice with power iterations)
#define GALORE_SVD_POWER_ITERS 2    // q: power iterations
#define GALORE_SVD_RATIO 4          // auto: randomized only where (r + p) * RATIO <= min(m, n) ...
#define GALORE_SVD_MIN_DIM 1024     // ... and min(m, n) >= MIN_DIM

// the sketch width l: r + p, at most min(m, n) (then Q spans the whole smaller space)
HOSTDEV static inline int64_t galore_svd_width(int64_t m, int64_t n, int64_t r) {
    int64_t k = m < n ? m : n, l = r + GALORE_SVD_OVERSAMPLE;
    return l < k ? l : k;
}

// galore_svd_pick: SVD_EXACT or SVD_RANDOMIZED for an m x n gradient at effective rank r under
// --svd choice. auto's rule: randomized only where the rank is small against the matrix,
// (r + p) * 4 <= min(m, n), and the matrix is large, min(m, n) >= 1024. Why: the randomized
// work grows with l = r + p and its basis is an approximation; the exact SVD's work grows with
// min(m, n) and its basis is galore-torch's. The gain is large at small ranks and modest at
// l ~ min(m, n) / 4, where auto keeps the exact SVD: the paper's settings (r = min(m, n) / 4,
// 60M r 128 .. 7B r 1024) sit just past the line and reproduce galore-torch. Below 1024 the exact
// SVD takes well under a second once per T steps, and the exact basis is the reference's (every
// current test runs such shapes). Measured on the CPU (2 threads, OpenBLAS, sigma_i = 1/(1+i)):
// 2048 x 5461 exact 3.4-3.5 s; randomized r 128 0.18 s (20x, 0.99990 of the exact top-r energy),
// r 512 0.77 s (5x, 0.99997); 1024 x 2736 exact 1.0 s, r 64 0.06 s, r 256 0.25 s; 512 x 1376
// exact 0.18 s; 256 x 688 exact 0.04 s. To be re-tuned from GPU timings (dev/cuda/svd.cu prints
// them next to this rule's choice), where gesvdj and the gemms have other costs.
HOSTDEV static inline int galore_svd_pick(int64_t m, int64_t n, int64_t r, int choice) {
    if (choice == SVD_EXACT || choice == SVD_RANDOMIZED) return choice;
    int64_t k = m < n ? m : n;
    return ((r + GALORE_SVD_OVERSAMPLE) * GALORE_SVD_RATIO <= k && k >= GALORE_SVD_MIN_DIM) ? SVD_RANDOMIZED : SVD_EXACT;
}

// the GPU's exact refresh: cuSOLVER's gesvdj (Jacobi) up to GALORE_GESVDJ_MAX_DIM = min(m, n), its
// gesvd (QR iteration on the bidiagonal form) above. Why: cuSOLVER's documentation says "gesvdj has
// the same functionality as gesvd. The difference is that gesvd uses QR algorithm and gesvdj uses
// Jacobi method. The parallelism of Jacobi method gives GPU better performance on small and medium
// size matrices"; Jacobi's work is a sweep of O(m n k) rotations repeated until the off-diagonal
// falls below the tolerance (FLT_EPSILON here: typically 6-15 sweeps, up to 400), against gesvd's
// fixed ~4 m n k + 8 k^3 flops of bidiagonalization, so from k ~ 2048 (llama_1b) to 4096-11008
// (llama_7b, 224 matrices in its first step) gesvdj may take tens of seconds to minutes per matrix.
// Both are exact and galore_sign_fix makes their projectors the same up to rounding. 1024 keeps
// llama_60m..350m (k <= 1024) on gesvdj and sends llama_1b and up to gesvd; dev/cuda/svd.cu times
// both at every paper shape next to this rule's pick: re-tune the constant from its figures.
#define GALORE_GESVDJ_MAX_DIM 1024
HOSTDEV static inline int galore_exact_gesvdj(int64_t m, int64_t n) { return (m < n ? m : n) <= GALORE_GESVDJ_MAX_DIM; }

// splitmix64's output function: a bijection of 64-bit words that mixes every input bit into
// every output bit
HOSTDEV static inline uint64_t galore_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// the seed of the test matrix Omega of tensor `tensor` at refresh round `round`. Every
// data-parallel rank refreshes from the same summed gradient, and so draws the same Omega.
HOSTDEV static inline uint64_t galore_svd_seed(int64_t tensor, int64_t round) {
    return galore_mix64(0x47614C6F72655356ULL ^ ((uint64_t)tensor << 40) ^ (uint64_t)round);
}

// the round of a refresh: every round refreshes every GaLore matrix once (the schedule is global),
// so refreshes done before it / number of GaLore matrices is the same in any update order
// (whole-model, per-layer, CPU, GPU) and after a resume (the count is in the checkpoint)
HOSTDEV static inline int64_t galore_svd_round(int64_t refreshes, int64_t n_galore) {
    return n_galore > 0 ? refreshes / n_galore : refreshes;
}

// --- golore (issue 15) ---
// galore_proj_seed: the stream of GoLore's random projector of tensor `tensor` at refresh round
// `round` (galore_svd_round) in a run of --seed run_seed: the same on every rank, on CPU and GPU,
// whole-model or per-layer, and after a resume (round comes from the checkpoint's refresh count,
// and the projector itself is in the checkpoint too). Another constant than galore_svd_seed's, so
// the two streams never coincide.
HOSTDEV static inline uint64_t galore_proj_seed(uint64_t run_seed, int64_t tensor, int64_t round) {
    return galore_mix64(galore_mix64(0x476F4C6F72655250ULL ^ run_seed) ^ ((uint64_t)tensor << 40) ^ (uint64_t)round);
}
// --- end golore ---

// fp32 arithmetic that both engines round identically: nvcc's --use_fast_math would make '/' and
// sqrtf approximate and fuse a*b+c, so the device spells the IEEE round-to-nearest operations out.
// In galore_gaussian every multiply-add is an explicit fmaf (one rounding everywhere) and every
// other product is exact or feeds no addition, so no compiler's contraction can change a bit:
// the CPU and the GPU draw the same Omega.
#ifdef __CUDA_ARCH__
#define GALORE_MUL(a, b) __fmul_rn((a), (b))
#define GALORE_DIV(a, b) __fdiv_rn((a), (b))
#define GALORE_SQRT(a) __fsqrt_rn(a)
#define GALORE_DMUL(a, b) __dmul_rn((a), (b)) // double: never fused into a multiply-add
#define GALORE_DADD(a, b) __dadd_rn((a), (b))
#else
#define GALORE_MUL(a, b) ((a) * (b))
#define GALORE_DIV(a, b) ((a) / (b))
#define GALORE_SQRT(a) sqrtf(a)
#define GALORE_DMUL(a, b) ((a) * (b))
#define GALORE_DADD(a, b) ((a) + (b))
#endif

HOSTDEV static inline float galore_f32_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// galore_gaussian: element `index` of the standard normal stream `seed`, counter-based (no state,
// so any thread draws any element): a 64-bit hash gives two 24-bit uniforms u1 in (0, 1] and u2 in
// [0, 1), and Box-Muller z = sqrt(-2 ln u1) cos(2 pi u2) with ln and cos as short polynomials in
// fmaf (max error ~1e-6 against libm's, from the fp32 rounding; |z| <= 5.8)
HOSTDEV static inline float galore_gaussian(uint64_t seed, uint64_t index) {
    uint64_t h = galore_mix64(seed + (index + 1) * 0x9E3779B97F4A7C15ULL);
    uint32_t k = (uint32_t)(h >> 40) + 1u;          // u1 = k 2^-24, k in [1, 2^24]
    uint32_t j = (uint32_t)(h >> 16) & 0xFFFFFFu;   // u2 = j 2^-24, j in [0, 2^24)
    // ln u1 = ln f + (e - 24) ln 2 with k = f 2^e, f in [sqrt(1/2), sqrt(2))
#ifdef __CUDA_ARCH__
    int e = 31 - __clz((int)k);
#else
    int e = 31 - __builtin_clz(k);
#endif
    uint32_t mant = e <= 23 ? (k << (23 - e)) : (k >> (e - 23));
    float f = galore_f32_from_bits((127u << 23) | (mant & 0x7FFFFFu));
    if (f > 1.41421356f) { f = GALORE_MUL(f, 0.5f); e++; }
    // ln f = 2 atanh(s), s = (f - 1) / (f + 1), |s| <= 0.172: odd series to s^13 (error < 1e-12)
    float s = GALORE_DIV(f - 1.0f, f + 1.0f);
    float z = GALORE_MUL(s, s);
    float p = 0.0769230769f;                         // 1/13, 1/11, ..., 1/3, 1 (decimal literals: no constant folding of '/')
    p = fmaf(p, z, 0.0909090909f); p = fmaf(p, z, 0.111111111f); p = fmaf(p, z, 0.142857143f);
    p = fmaf(p, z, 0.2f); p = fmaf(p, z, 0.333333333f); p = fmaf(p, z, 1.0f);
    float lnu1 = fmaf((float)(e - 24), 0.693147181f, GALORE_MUL(2.0f * s, p));
    float radius = GALORE_SQRT(-2.0f * lnu1);
    // cos(2 pi u2): quadrant q = the top 2 bits of j, x = the rest in [0, 1), angle (pi/2) x;
    // x > 1/2 folds to the co-function of 1 - x, so the Taylor series run on [0, pi/4]
    uint32_t quad = j >> 22;
    float x = GALORE_MUL((float)(j & 0x3FFFFFu), 2.384185791015625e-07f); // times 2^-22, exact
    int fold = x > 0.5f;
    if (fold) x = 1.0f - x;
    float x2 = GALORE_MUL(x, x);
    float c = -2.520204237e-05f;                     // cos((pi/2) x) = sum (-1)^i (pi/2)^2i x^2i / (2i)!
    c = fmaf(c, x2, 9.192602748e-04f); c = fmaf(c, x2, -2.086348076e-02f); c = fmaf(c, x2, 2.536695079e-01f);
    c = fmaf(c, x2, -1.233700550e+00f); c = fmaf(c, x2, 1.0f);
    float sn = -3.598843235e-06f;                    // sin((pi/2) x) / x
    sn = fmaf(sn, x2, 1.604411848e-04f); sn = fmaf(sn, x2, -4.681754135e-03f); sn = fmaf(sn, x2, 7.969262625e-02f);
    sn = fmaf(sn, x2, -6.459640975e-01f); sn = fmaf(sn, x2, 1.570796327e+00f);
    sn = GALORE_MUL(sn, x);
    float cw = fold ? sn : c, sw = fold ? c : sn;    // cos and sin of (pi/2) times the unfolded x
    float v = quad == 0 ? cw : quad == 1 ? -sw : quad == 2 ? -cw : sw;
    return GALORE_MUL(radius, v);
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
    int svd;             // SVD_EXACT or SVD_RANDOMIZED: the refresh's algorithm (galore_svd_pick); 0 without a projector
    int full_grad;       // the update reads the full gradient every step (Fira's residual, APOLLO's scaled raw G): accumulated and all-reduced in full
    int limiter;         // floats of norm-growth limiter state (Fira and APOLLO: 1 per projected matrix, the previous ||S||; checkpoint limiter.N)
} TensorLayout;

// whether tensor l accumulates and all-reduces its gradient as R = P^T G between refreshes: a
// projector whose update needs only R (GaLore), not one that reads the full G (APOLLO)
static inline int layout_lowrank_accum(const TensorLayout* l) { return l->side != SIDE_NONE && !l->full_grad; }
// galore_count_projected: the matrices with a projector (GaLore, Fira, GoLore, APOLLO), i.e. the
// refreshes of one round (galore_svd_round). One count for both engines: the GPU once skipped
// full_grad matrices here, which is every Fira matrix, and its seeds then left the CPU's
static inline int64_t galore_count_projected(const TensorLayout* lay, int n) {
    int64_t c = 0;
    for (int j = 0; j < n; j++) c += lay[j].side != SIDE_NONE;
    return c;
}

static void tensor_layout(TensorLayout* lay, const ParamInfo* p, const OptimConfig* o) {
    memset(lay, 0, sizeof *lay);
    lay->m = p->rows; lay->n = p->cols;
    lay->srows = p->rows; lay->scols = p->cols;
    if (optim_is_galore(o->kind) && p->galore && p->ndim == 2) {
        lay->side = galore_side(lay->m, lay->n, o->proj_type);
        lay->r = galore_rank(lay->m, lay->n, o->rank);
        lay->svd = galore_svd_pick(lay->m, lay->n, lay->r, o->svd);
        if (lay->side == SIDE_RIGHT) { lay->scols = lay->r; lay->proj_numel = lay->r * lay->n; }
        else { lay->srows = lay->r; lay->proj_numel = lay->m * lay->r; }
    } else if (optim_is_apollo(o->kind) && p->galore && p->ndim == 2) {
        // APOLLO: galore-torch's side rule on the same matrices; the rank is NOT clipped to
        // min(m, n) (apollo-torch's random projector draws r x n or m x r as asked); no SVD
        lay->side = galore_side(lay->m, lay->n, o->proj_type);
        lay->r = o->rank;
        lay->full_grad = 1;
        lay->limiter = 1; // the norm-growth limiter's previous ||S||
        if (lay->side == SIDE_RIGHT) { lay->scols = lay->r; lay->proj_numel = lay->r * lay->n; }
        else { lay->srows = lay->r; lay->proj_numel = lay->m * lay->r; }
    }
    // --- fira (issue 15) ---
    if (optim_is_fira(o->kind) && lay->side != SIDE_NONE) { lay->full_grad = 1; lay->limiter = 1; }
    // --- end fira ---
    lay->snumel = lay->srows * lay->scols;
    lay->state = (optim_is_8bit(o->kind) && lay->snumel >= ADAM8_MIN_SIZE) ? STATE_8BIT : STATE_FP32;
    lay->nblocks = lay->state == STATE_8BIT ? (lay->snumel + ADAM8_BLOCK - 1) / ADAM8_BLOCK : 0;
}

// galore_lowrank_at: whether tensor l's gradient at update t is accumulated and all-reduced as its
// projection R: a GaLore tensor with a projector that t does not refresh (the projection of the
// sum is the sum of the projections), unless its update reads the full gradient (Fira's residual
// G - back(R) is what the projection drops, so R cannot stand in for G). Both trainers decide with it.
static inline int galore_lowrank_at(const TensorLayout* l, int has_proj, int64_t t, int64_t T) {
    return layout_lowrank_accum(l) && has_proj && !galore_refresh_due(t, T);
}

// accum_layout: the gradient accumulators of a trainer, as element offsets into two buffers: a
// full one for each tensor without low-rank accumulation (full_off, when need_full; per-layer
// accumulation: non-GaLore and APOLLO tensors), a low-rank one (snumel) for each GaLore tensor
// (low_off, layout_lowrank_accum); -1 where a tensor has none. *nfull and
// *nlow get the buffers' sizes. Both engines lay them out with it (the CPU in fp32, the GPU in bf16).
static void accum_layout(const ParamTable* pt, const TensorLayout* lay, int need_full, int64_t* full_off, int64_t* low_off,
                         size_t* nfull, size_t* nlow) {
    *nfull = 0; *nlow = 0;
    for (int i = 0; i < pt->n; i++) {
        full_off[i] = low_off[i] = -1;
        if (layout_lowrank_accum(&lay[i])) { low_off[i] = (int64_t)*nlow; *nlow += (size_t)lay[i].snumel; }
        else if (need_full) { full_off[i] = (int64_t)*nfull; *nfull += (size_t)pt->info[i].numel; }
    }
}

// ----------------------------------------------------------------------------
// the GPU optimizer's GaLore scratch (galore.cuh allocates it; memplan.h plans it from the same dims)

// the scratch the GPU optimizer needs for these tensors (also what the memory plan prints).
// svd_ws: the estimated cuSOLVER workspace (floats), the largest over the tensors of what its
// refresh needs (galore_svd_workspace_estimate)
// svd: the tensors that refresh by an SVD (GaLore's; APOLLO draws its projector, so max_k and
// svd_ws count only these, and an APOLLO-only run keeps no SVD factors or solver)
typedef struct { int64_t max_full, max_k, max_s, max_proj; double svd_ws; int svd; } GaloreDims;

// the randomized refresh's shapes: A (len x other) is G (left) or G^T (right), l the sketch width
static void galore_rand_dims(const TensorLayout* l, int* len, int* other, int* w) {
    int right = l->side == SIDE_RIGHT;
    *len = (int)(right ? l->n : l->m);
    *other = (int)(right ? l->m : l->n);
    *w = (int)galore_svd_width(l->m, l->n, l->r);
}

// the randomized refresh's slices of the cuSOLVER workspace g->work (floats): tau (l) at 0, U_B
// (l x l) at *ub, cuSOLVER's own workspace at *ws; each starts on a 256-byte boundary
static void galore_rand_offsets(int w, size_t* ub, size_t* ws) {
    *ub = ((size_t)w + 63) / 64 * 64;
    *ws = (*ub + (size_t)w * w + 63) / 64 * 64;
}

static GaloreDims galore_dims(const TensorLayout* lay, int n) {
    GaloreDims d;
    memset(&d, 0, sizeof d);
    for (int i = 0; i < n; i++) {
        const TensorLayout* l = &lay[i];
        if (l->side == SIDE_NONE) continue;
        int64_t full = l->m * l->n, k = l->m < l->n ? l->m : l->n;
        if (full > d.max_full) d.max_full = full;
        if (l->snumel > d.max_s) d.max_s = l->snumel;
        if (l->proj_numel > d.max_proj) d.max_proj = l->proj_numel;
        if (l->svd == 0) continue; // no SVD (APOLLO: a random projector; svd is 0 without galore_svd_pick)
        d.svd++;
        if (k > d.max_k) d.max_k = k;
        // exact: gesvdj's workspace, estimated as one more fp32 copy of the matrix; randomized:
        // tau (l) + U_B (l x l) + the QR / small-SVD workspace, estimated as one more tall sketch
        // (max(len, other) + l) x l
        double ws = (double)full;
        if (l->svd == SVD_RANDOMIZED) {
            int len, other, w;
            galore_rand_dims(l, &len, &other, &w);
            size_t ub, wso;
            galore_rand_offsets(w, &ub, &wso);
            ws = (double)wso + ((double)(len > other ? len : other) + w) * w;
        }
        if (ws > d.svd_ws) d.svd_ws = ws;
    }
    return d;
}

// gesvdj's workspace without a GPU is unknown (cusolverDnSgesvdj_bufferSize needs a handle, which
// needs a device): the plan prints this estimate, one more fp32 copy of the largest matrix (of the
// exact path; galore_dims says what the randomized one adds); the real size is queried in
// galore_gpu_init and printed there
static double galore_svd_workspace_estimate(const GaloreDims* d) { return d->svd_ws * 4.0; }

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

// HF AdamW's step size lr sqrt(1 - b2^t) / (1 - b1^t), in double as the packages' Python floats
// (galore_adamw; Fira's low-rank and residual parts, fp32 or 8-bit moments)
static inline float galore_hf_step_size(float lr, float b1, float b2, int64_t t) {
    return (float)(lr * sqrt(1.0 - pow((double)b2, (double)t)) / (1.0 - pow((double)b1, (double)t)));
}

// --- fira (issue 15) ---
// Fira (Chen et al. 2024, arXiv 2410.01623) as fira 1.0.2's AdamW.step runs it, per GaLore matrix
// (the plain tensors take GaLoreAdamW's HF AdamW):
//   R = proj(G); N = m / (sqrt(v) + eps) from the moments of R (adam_hf_elem); step size as
//     GaLoreAdamW, lr sqrt(1 - b2^t) / (1 - b1^t)
//   phi_c = ||N_c|| / (||R_c|| + 1e-8) per channel c (fira_channel_cols): the columns of the
//     low-rank matrix when it has fewer rows than columns, else its rows; with the std/reverse_std
//     sides that channel is a column (left: R is r x n) or a row (right: R is m x r) of G as well
//   S = phi (x) (G - alpha back(R))   the residual, scaled per channel. alpha is inside back(), as
//     the package's project_back applies it: at --galore-scale 1 S is phi times the part of G the
//     subspace drops; at alpha < 1 (1 - alpha) of the in-subspace part stays in it too. We follow
//     the package (the reference) and flag it: the "G - back(R)" reads the same.
//   limiter (gamma = 1.01): the first update stores s = ||S||; each later one takes
//     lim = max(||S|| / (s + 1e-8), gamma) / gamma, S = S / lim, s = ||S|| / lim (||S|| before the
//     division), so the residual's norm grows at most 1% a step. The state s (one float per
//     matrix) carries across refreshes; it is in the checkpoint ("limiter.N").
//   W = W - step_size (alpha back(N) + S); then W = W - lr wd W (decay after, as GaLoreAdamW).
// The residual needs the full G at every step: Fira takes full gradient accumulation and full
// all-reduces (TensorLayout.full_grad), never the low-rank ones.
#define FIRA_GAMMA 1.01f
#define FIRA_NORM_EPS 1e-8f

// ||A_c|| / (||B_c|| + 1e-8) from the channel's sums of squares (double, any order), the norms
// rounded to fp32 as torch.norm's: Fira's phi_c (A = N, B = R) and APOLLO's s_c (A = D, B = R),
// the same formula and eps in both packages. IEEE division on both engines (GALORE_DIV).
HOSTDEV static inline float channel_norm_ratio(double ssA, double ssB) {
    return GALORE_DIV((float)sqrt(ssA), (float)sqrt(ssB) + FIRA_NORM_EPS);
}

// whether the channels of the low-rank matrix (srows x scols) are its columns (package:
// norm_dim = 0 when shape[0] < shape[1]) rather than its rows
HOSTDEV static inline int fira_channel_cols(const TensorLayout* l) { return l->srows < l->scols; }

// the limiter's divisor from the residual's norm sn and the stored previous norm prev (first: the
// tensor's first update, no state yet); *next gets the new state. fp32 as the package's 0-d tensors.
HOSTDEV static inline float fira_limiter(float sn, float prev, int first, float* next) {
    if (first) { *next = sn; return 1.0f; }
    // GALORE_DIV: IEEE division on the device too (--use_fast_math would approximate '/'), so the
    // GPU's limiter kernels give the CPU's bits from the same norms
    float ratio = GALORE_DIV(sn, prev + FIRA_NORM_EPS);
    float lim = ratio > FIRA_GAMMA ? GALORE_DIV(ratio, FIRA_GAMMA) : 1.0f; // max(ratio, gamma) / gamma; gamma / gamma is 1
    *next = GALORE_DIV(sn, lim);
    return lim;
}

// one element of the scaled residual: phi (G - U), U = alpha back(R) (the channel's phi)
HOSTDEV static inline float fira_residual_elem(float g, float u, float phi) { return (g - u) * phi; }
// --- end fira ---

// --- fira 8-bit (issue 15) ---
// fira_adamw8bit (ours: fira 1.0.2 keeps fp32 moments only): Fira with the low-rank moments of R
// kept exactly as galore_adamw8bit keeps them: bitsandbytes' blockwise 8-bit kernel (adam8bit.h)
// where R has >= ADAM8_MIN_SIZE elements, its 32-bit kernel below that, the same maps, blocks and
// NaN guard, the same checkpoint entries. The kernel's other arguments are galore_adamw8bit's too:
// no update-norm cap and no zero skipping. (galore-torch passes percentile_clipping=100,
// block_wise=True positionally, which bitsandbytes 0.50 reads as max_unorm and skip_zeros and which
// would zero every small-state update; galore_adamw8bit runs the older meaning, max_unorm 0 and
// skip_zeros False, dev/ref/README.md, and so does this.) Per GaLore matrix:
//   N = the kernel's output on a zero parameter, no decay, at lr fira8_unit_lr(t): its step size
//     -lr c2 / c1 is then 1 (to rounding), so N = m / (sqrt(v) + c2 eps), c2 = sqrt(1 - b2^t):
//     bitsandbytes' direction (eps times c2), where fira_adamw's HF AdamW has m / (sqrt(v) + eps)
//   then fira_adamw's rest unchanged: phi from N and R, S = phi (G - alpha back(R)), the limiter,
//     W = W - lr sqrt(1 - b2^t) / (1 - b1^t) (alpha back(N) + S), W = W - lr wd W.
// Why the unit lr rather than galore_adamw8bit's lr: Fira needs N itself (phi is a ratio of N's and
// R's norms, and S joins alpha back(N) at HF's step size); at lr the kernel returns -lr c2 / c1 N,
// which would take a rescaling pass. The moments never see lr, so the state is galore_adamw8bit's
// bit for bit on the same R (test_fira8bit checks it). Plain tensors: galore_adamw8bit's plain path
// (optim_plain_kind: bitsandbytes' Adam with the decay inside the kernel). Default eps 1e-8 (the kernel's).
static inline float fira8_unit_lr(float b1, float b2, int64_t t) {
    const float c1 = 1.0f - powf(b1, (float)t); // as the kernel computes them
    const float c2 = sqrtf(1.0f - powf(b2, (float)t));
    return -(c1 / c2);
}
// --- end fira 8-bit ---
// ----------------------------------------------------------------------------
// APOLLO (arXiv 2412.05270), as apollo-torch 1.0.3's APOLLOAdamW runs it with proj "random".
// Per projected matrix G (m x n), at 1-based step t:
//   refresh (galore_refresh_due: steps 1, T+1, ...): P = N(0, 1) / sqrt(r), r x n (right side)
//     or m x r (left), galore-torch's side rule (the package's `proj_type`); the package draws it
//     from torch's generator seeded per tensor, we from galore_gaussian with apollo_proj_seed
//     (tensor, round): the same P on every data-parallel rank, on CPU and GPU, and after a
//     resume (a function of the step; no RNG state to save). The reference generator injects
//     OUR P into the package (dev/ref/make_apollo_reference.py), so the rest is compared exactly.
//   R = G P^T (m x r) or P^T G (r x n); HF-AdamW moments on R: m, v; D = m / (sqrt(v) + eps)
//   scaling, channel-wise: per channel c (a row of G on the right side, a column on the left:
//     the dimension R keeps, the package's norm_dim for proj_type std) s_c = ||D_c|| / (||R_c|| + 1e-8);
//     tensor-wise: one s = ||D|| / (||R|| + 1e-8)
//   S = G * s (the RAW gradient scaled: so the full G is needed every step, and gradient
//     accumulation and all-reduce stay full-rank for APOLLO matrices: layout_lowrank_accum)
//   norm-growth limiter (Fira's, gamma 1.01): first step: prev = ||S||; then
//     lim = max(||S|| / (prev + 1e-8), 1.01) / 1.01, S /= lim, prev = ||S_before|| / lim
//   W -= lr sqrt(1 - b2^t) / (1 - b1^t) * sqrt(scale) * S; then W -= lr wd W (decay after, as HF)
// (scale_front false and the limiter on: the package's defaults.) ||S||^2 = sum_c s_c^2 ||G_c||^2,
// so neither engine materializes S: per-channel sums of squares of G, R and D, then one
// elementwise pass W -= step * coef_c * G with coef_c = s_c sqrt(scale) / lim.
// The 8-bit variant (ours: the package keeps fp32 moments) takes D from bitsandbytes' blockwise
// kernel run on R with a zero parameter and lr 1 (adam8bit.h: D = m / (sqrt(v) + eps sqrt(1 - b2^t)),
// returned times -sqrt(1 - b2^t) / (1 - b1^t), which apollo_dir_scale undoes).

enum { APOLLO_SCALE_CHANNEL = 0, APOLLO_SCALE_TENSOR };
static const char* const APOLLO_SCALE_NAMES[] = {"channel", "tensor"};
// the norm-growth limiter: Fira's (FIRA_GAMMA 1.01, fira_limiter)
#define APOLLO_MINI_SCALE 128.0f  // the package README's scale for APOLLO-Mini (rank 1, tensor-wise)

// the package's settings of each APOLLO kind (what run_setup picks without --apollo-scale and
// --scale-type): APOLLO-Mini rank 1, tensor-wise, scale 128; APOLLO channel-wise, scale 1 (tests)
static void apollo_config_defaults(OptimConfig* oc) {
    int mini = oc->kind == OPTIM_APOLLO_MINI;
    if (mini) oc->rank = 1;
    oc->apollo_scale = mini ? APOLLO_MINI_SCALE : 1.0f;
    oc->scale_type = mini ? APOLLO_SCALE_TENSOR : APOLLO_SCALE_CHANNEL;
}

// the seed of tensor `tensor`'s projector drawn at refresh `round` ((t - 1) / T)
HOSTDEV static inline uint64_t apollo_proj_seed(int64_t tensor, int64_t round) {
    return galore_mix64(0x41504F4C4C4F5250ULL ^ ((uint64_t)tensor << 40) ^ (uint64_t)round);
}
HOSTDEV static inline int64_t apollo_round(int64_t t, int64_t T) { return T > 0 ? (t - 1) / T : 0; }

// galore_proj_random_elem: element k (row-major in P's own layout) of a seeded Gaussian projector
// scaled by `scale` (APOLLO: 1/sqrt(r), float32 as apollo_proj_scale gives it); shared by both engines
HOSTDEV static inline float galore_proj_random_elem(uint64_t seed, uint64_t k, float scale) {
    return GALORE_MUL(galore_gaussian(seed, k), scale);
}
static inline float apollo_proj_scale(int64_t r) { return (float)(1.0 / sqrt((double)r)); }

// galore_proj_random: the whole projector of tensor layout l (m x r left, r x n right)
static void galore_proj_random(float* P, const TensorLayout* l, uint64_t seed, float scale) {
    for (int64_t k = 0; k < l->proj_numel; k++) P[k] = galore_proj_random_elem(seed, (uint64_t)k, scale);
}

// the channels of the scaling: rows of G (right side), columns (left), or one (tensor-wise)
static inline int64_t apollo_channels(const TensorLayout* l, int scale_type) {
    return scale_type == APOLLO_SCALE_TENSOR ? 1 : l->side == SIDE_RIGHT ? l->m : l->n;
}
// channel of element (row a, col b) of G or R: R is m x r (right) or r x n (left)
HOSTDEV static inline int64_t apollo_channel_of(int side, int tensorwise, int64_t a, int64_t b) {
    return tensorwise ? 0 : side == SIDE_RIGHT ? a : b;
}
// one channel of the scaling from its sums of squares of G, R and D (D's times ds2: 1 on the CPU,
// which scales D before summing; the GPU's 8-bit kind sums the kernel's raw result and passes
// apollo_dir_scale squared): s_c = channel_norm_ratio(ssD, ssR), and *term its share
// s_c^2 ||G_c||^2 of ||S||^2 (GALORE_DMUL: the same roundings on both engines)
HOSTDEV static inline float apollo_channel(double ssG, double ssR, double ssD, double ds2, double* term) {
    float f = channel_norm_ratio(GALORE_DMUL(ssD, ds2), ssR);
    *term = GALORE_DMUL(GALORE_DMUL((double)f, (double)f), ssG);
    return f;
}
// the one order in which both engines add n doubles (||S||^2's channel terms, tensor-wise the
// channel sums): APOLLO_SUM_STRANDS strands, strand s adding elements s, s + STRANDS, ... in index
// order from 0, then the strands pairwise, part[s] += part[s + o] for o = STRANDS / 2 .. 1. The
// GPU's limiter kernel is one block of STRANDS threads doing exactly these additions (a thread a
// strand, the pairs as a shared-memory tree): a serial sum of 11008 doubles in one thread waits
// ~11008 / 4 L2 round trips (~0.4 ms on an H100) where this waits ~11 (issue 22).
#define APOLLO_SUM_STRANDS 256
HOSTDEV static inline double apollo_strand_sum(const double* x, int64_t n, int s) {
    double a = 0.0;
    for (int64_t k = s; k < n; k += APOLLO_SUM_STRANDS) a = GALORE_DADD(a, x[k]);
    return a;
}
static inline double apollo_sum(const double* x, int64_t n) {
    double part[APOLLO_SUM_STRANDS];
    for (int s = 0; s < APOLLO_SUM_STRANDS; s++) part[s] = apollo_strand_sum(x, n, s);
    for (int o = APOLLO_SUM_STRANDS / 2; o > 0; o >>= 1)
        for (int s = 0; s < o; s++) part[s] = part[s] + part[s + o];
    return part[0];
}
// apollo_factors (the CPU's): the factors sc (nch) of one matrix and ||S||^2 from its channel sums
// dsum (G's nG, then R's and D's nR each: channel_sumsq's by rows on the right side, by columns on
// the left; tensor-wise (nch 1) the row sums, added here by apollo_sum, in place). Each channel's
// factor and term (apollo_channel), the term replacing D's sum, then the terms added by
// apollo_sum. The GPU computes the same (apollo_scale): the factors a thread per channel, the sums
// in its one-block limiter kernel.
static inline double apollo_factors(float* sc, double* dsum, int64_t nG, int64_t nR, int64_t nch, int tw, double ds2) {
    double *ssG = dsum, *ssR = dsum + nG, *ssD = dsum + nG + nR;
    if (tw) {
        double sg = apollo_sum(ssG, nG), sr = apollo_sum(ssR, nR), sd = apollo_sum(ssD, nR);
        ssG[0] = sg; ssR[0] = sr; ssD[0] = sd;
    }
    for (int64_t ch = 0; ch < nch; ch++) sc[ch] = apollo_channel(ssG[ch], ssR[ch], ssD[ch], ds2, &ssD[ch]); // ssD[ch] read (by value) first
    return apollo_sum(ssD, nch);
}
// the limiter: nrm = ||S|| before it; *prev the state (set on the first step, first = 1).
// Returns 1 / lim's divisor as the package divides: S / lim, i.e. the value lim itself.
// The same rule as Fira's (fira_limiter: gamma 1.01, eps 1e-8), written once there.
HOSTDEV static inline float apollo_limiter(float nrm, float* prev, int first) {
    float next, lim = fira_limiter(nrm, *prev, first, &next);
    *prev = next;
    return lim;
}
// the 8-bit kernel's result Z = -(c2 / c1) D (lr 1): D = Z * apollo_dir_scale
static inline float apollo_dir_scale(int64_t t, float b1, float b2) {
    return (float)(-(1.0 - pow((double)b1, (double)t)) / sqrt(1.0 - pow((double)b2, (double)t)));
}
// the elementwise update of one weight: HF's p + (-step_size) * (g s / lim * sqrt(scale)),
// spelled in the package's order of roundings
HOSTDEV static inline float apollo_elem(float p, float g, float s, float lim, float sqrt_scale, float step_size) {
    float x = g * s;
    x = x / lim;
    x = x * sqrt_scale;
    return p + (-step_size) * x;
}

#endif // GALORE_H
