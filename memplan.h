// memplan.h: the memory plans. For a (config, optimizer, flags) each lists every buffer its
// engine allocates and its bytes, computed without allocating anything, so that the plan of
// llama_7b can be printed on any machine. The CPU engine allocates its activations and optimizer
// state from the same functions (cpu_activation_sizes, tensor_layout); the GPU engine allocates
// by walking gpu_memplan_build's rows (train_llama.cu), so neither plan can drift from what is
// allocated. Both binaries print both plans (--memory-plan); the GPU rows only a device can size
// (library workspaces) say so, and train_llamacu fills them in at startup.
#ifndef MEMPLAN_H
#define MEMPLAN_H

#include <stdio.h>
#include <string.h>
#include "llama.h"
#include "galore.h"
#include "weight8.h"
#include "cli.h"

// ----------------------------------------------------------------------------
// CPU activations: the list train_llama.c allocates (one allocation, then a pointer table)

#define CPU_NUM_ACT 18
static const char* const CPU_ACT_NAMES[CPU_NUM_ACT] = {
    "res", "ln1", "rstd1", "qkv", "att", "atty", "res2", "ln2", "rstd2", "gu", "act",
    "lnf", "rstdf", "logits", "losses", "lse", "dres", "scratch",
};
// recompute 1 (--recompute): res keeps every layer's input, the other per-layer buffers (ln1 ..
// act) hold one layer, which backward refills layer by layer
static void cpu_activation_sizes(const LlamaConfig* c, int B, int T, int recompute, size_t sizes[CPU_NUM_ACT]) {
    size_t L = c->L, C = c->C, H = c->H, NH = c->NH, V = c->V, BT = (size_t)B * T;
    size_t QD = llama_qdim(c), KV = llama_kvdim(c);
    size_t scratch = 3 * H > QD + 2 * KV ? 3 * H : QD + 2 * KV; // dact + dgu, or dqkv
    size_t lnf = QD > C ? QD : C;                               // lnf, or backward's datty
    size_t Lk = recompute ? 1 : L; // layers of the per-layer buffers kept
    size_t s[CPU_NUM_ACT] = {
        (L + 1) * BT * C, Lk * BT * C, Lk * BT, Lk * BT * (QD + 2 * KV),
        Lk * B * NH * T * T, Lk * BT * QD, Lk * BT * C, Lk * BT * C, Lk * BT, Lk * BT * 2 * H,
        Lk * BT * H, BT * lnf, BT, BT * V, BT, BT, BT * C, BT * scratch,
    };
    memcpy(sizes, s, sizeof s);
}

// ----------------------------------------------------------------------------
// the plan: named rows of bytes. flags: MEM_STATE counts in the paper's "weights + optimizer
// state"; MEM_TRANSIENT is allocated only for a while (shown, not in the total); MEM_QUERIED is a
// library workspace only a device can size: its bytes are an estimate until the device fills
// them in at startup (queried 1); MEM_LIBRARY is allocated inside a library wrapper (cuBLASLt
// handles, attention_init, galore_gpu_init), which the trainer checks against the row at startup.

enum { MEM_STATE = 1, MEM_TRANSIENT = 2, MEM_QUERIED = 4, MEM_LIBRARY = 8 };
#define MEMPLAN_MAX 64
typedef struct { char name[80]; double bytes; double estimate; int flags; int queried; } MemItem;
typedef struct { MemItem items[MEMPLAN_MAX]; int n; double total, transient, state; } MemPlan;

// memplan_sum: total, transient and state from the rows (after any row changed)
static void memplan_sum(MemPlan* mp) {
    mp->total = mp->transient = mp->state = 0.0;
    for (int i = 0; i < mp->n; i++) {
        const MemItem* it = &mp->items[i];
        if (it->flags & MEM_TRANSIENT) { mp->transient += it->bytes; continue; }
        mp->total += it->bytes;
        if (it->flags & MEM_STATE) mp->state += it->bytes;
    }
}

// memplan_set: row i (its index is its id: the GPU plan's rows are GR_*), and the sums
static void memplan_set(MemPlan* mp, int i, const char* name, double bytes, int flags) {
    if (i >= MEMPLAN_MAX) die("internal: memory plan row %d of %d", i, MEMPLAN_MAX);
    if (i >= mp->n) mp->n = i + 1;
    MemItem* it = &mp->items[i];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->bytes = bytes > 0.0 ? bytes : 0.0;
    it->estimate = it->bytes;
    it->flags = flags;
    it->queried = 0;
    memplan_sum(mp);
}
static void memplan_add(MemPlan* mp, const char* name, double bytes, int flags) {
    if (bytes > 0.0) memplan_set(mp, mp->n, name, bytes, flags);
}

// memplan_fill: the device's size of a queried row (train_llamacu at startup)
static void memplan_fill(MemPlan* mp, int i, double bytes) {
    if (!(mp->items[i].flags & MEM_QUERIED)) die("internal: memory plan row %s is not a queried row", mp->items[i].name);
    mp->items[i].bytes = bytes;
    mp->items[i].queried = 1;
    memplan_sum(mp);
}

// memplan_build: the CPU engine's buffers. per_layer and grad_accum as the trainer runs them;
// recompute as --recompute. The GPU engine's plan is gpu_memplan_build below.
static void memplan_build(MemPlan* mp, const LlamaConfig* c, const OptimConfig* oc, int per_layer, int grad_accum,
                          int B, int T, int recompute) {
    memset(mp, 0, sizeof *mp);
    const double F = 4.0; // fp32 everywhere
    ParamTable pt;
    param_table_build(&pt, c);
    double P = (double)pt.total;
    // gradients: whole model, or the largest update group (llama.h's param_group)
    double grads = (double)grad_layout(&pt, c, per_layer, NULL);
    // optimizer state from the per-tensor layout
    double moments = 0.0, q8 = 0.0, absmax = 0.0, proj = 0.0, max_s = 0.0, max_full = 0.0;
    double acc_full = 0.0, acc_low = 0.0, galore_full = 0.0, lim = 0.0, max_ch = 0.0;
    double max_proj = 0.0, max_r = 0.0;
    for (int i = 0; i < pt.n; i++) {
        TensorLayout l;
        tensor_layout(&l, &pt.info[i], oc);
        if (l.state == STATE_8BIT) { q8 += 2.0 * l.snumel; absmax += 2.0 * 4 * l.nblocks; }
        else moments += 2.0 * l.snumel * F;
        proj += (double)l.proj_numel * F;
        lim += (double)l.limiter * F;
        if (l.side != SIDE_NONE) {
            if (l.snumel > max_s) max_s = (double)l.snumel;
            if ((double)(l.m * l.n) > max_full) max_full = (double)(l.m * l.n);
            if ((double)(l.m > l.n ? l.m : l.n) > max_ch) max_ch = (double)(l.m > l.n ? l.m : l.n);
            if (l.full_grad && (double)l.r > max_ch) max_ch = (double)l.r;
            if ((double)l.proj_numel > max_proj) max_proj = (double)l.proj_numel;
            if ((double)l.r > max_r) max_r = (double)l.r;
        }
        if (layout_lowrank_accum(&l)) { // Fira's and APOLLO's tensors (full_grad) accumulate in full (galore.h)
            acc_low += (double)l.snumel;
            galore_full += (double)(l.m * l.n);
        } else acc_full += (double)pt.info[i].numel;
    }
    memplan_add(mp, oc->w8_group ? "weights (fp32: the int8 ones' dequantized working copy)" : "weights", P * F, MEM_STATE);
    if (oc->w8_group) { // --weights int8 (weight8.h): the codes are the weights; the fp32 copy is what the matmuls read
        double codes = 0.0, groups = 0.0;
        for (int i = 0; i < pt.n; i++)
            if (weight8_applies(&pt.info[i], oc->w8_embed)) { codes += (double)pt.info[i].numel; groups += (double)weight8_groups(pt.info[i].numel, oc->w8_group); }
        memplan_add(mp, "int8 weight codes", codes, MEM_STATE);
        memplan_add(mp, "int8 weight scales (fp32) + zero points (8-bit)", 5.0 * groups, MEM_STATE);
    }
    memplan_add(mp, per_layer ? "gradients (largest update group)" : "gradients", grads * F, 0);
    if (per_layer && grad_accum > 1) {
        memplan_add(mp, optim_is_fira(oc->kind) ? "gradient accumulators (full: Fira's residual needs G)" : "gradient accumulators (full-rank tensors)",
                    acc_full * F, 0);
        memplan_add(mp, "gradient accumulators (low-rank)", acc_low * F, 0);
        memplan_add(mp, "refresh-step accumulators (GaLore, transient)", galore_full * F, MEM_TRANSIENT);
    }
    memplan_add(mp, "adam moments (m, v)", moments, MEM_STATE);
    memplan_add(mp, "8-bit moments (m, v)", q8, MEM_STATE);
    memplan_add(mp, "8-bit absmax", absmax, MEM_STATE);
    memplan_add(mp, "projectors", proj, MEM_STATE);
    if (lim > 0.0) memplan_add(mp, "norm-growth limiter state (1 float per matrix)", lim, MEM_STATE);
    memplan_add(mp, "optimizer scratch (R, N, U)", (2.0 * max_s + max_full) * F, 0);
    // the per-channel sums of squares in double (train_llama.c's channel_sumsq: Fira's of N and R,
    // APOLLO's of G, R, D; channels <= max(m, n, r)), plus Fira's fp32 phi
    if (optim_is_fira(oc->kind) || optim_is_apollo(oc->kind))
        memplan_add(mp, "per-channel sums (largest dimension)", (max_ch > 1.0 ? max_ch : 1.0) * (3.0 * 8 + (optim_is_fira(oc->kind) ? F : 0.0)), 0);
    if (oc->projector == PROJECTOR_RANDOM) // GoLore: no SVD; the QR of a len x r Gaussian (its copy, tau, ~64 r of LAPACK workspace)
        memplan_add(mp, "QR workspace (--proj random, at refresh, transient)", (max_proj + 65.0 * max_r) * F, MEM_TRANSIENT);
    else memplan_add(mp, "svd workspace (at refresh, transient)", optim_is_galore(oc->kind) ? max_full * F * 3 : 0.0, MEM_TRANSIENT);
    size_t sizes[CPU_NUM_ACT];
    cpu_activation_sizes(c, B, T, recompute, sizes);
    double acts = 0.0, logits = 0.0;
    for (int i = 0; i < CPU_NUM_ACT; i++) {
        if (strcmp(CPU_ACT_NAMES[i], "logits") == 0) logits = (double)sizes[i] * F;
        else acts += (double)sizes[i] * F;
    }
    memplan_add(mp, recompute ? "activations (--recompute 1: inputs + 1 layer)" : "activations", acts, 0);
    memplan_add(mp, "logits", logits, 0);
    param_table_free(&pt);
}

// ----------------------------------------------------------------------------
// the GPU engine's plan: every device buffer train_llamacu allocates, one row each, row index =
// id. train_llama.cu allocates by walking these rows (gpu_alloc_rows: cudaMalloc of exactly the
// row's bytes, named by the row), and checks the MEM_LIBRARY rows against the libraries' own
// contexts, so the plan printed (here, by either binary, without a GPU) is what is allocated.

#define GPU_X 2 // bytes of a bf16 element (floatX)

// activations: one row each
enum {
    A_RES = 0, A_LN1, A_RSTD1, A_QKV, A_ATTY, A_ATTN_SAVED, A_RES2, A_LN2, A_RSTD2, A_GU, A_ACT, A_LNF, A_RSTDF,
    A_LOGITS, A_LOSSES, A_DRES, A_SCRATCH, A_RMS_SCRATCH, A_NORM_PARTIALS, A_INPUTS, A_TARGETS, A_BUCKET, A_NUM
};
static const char* const GPU_ACT_NAMES[A_NUM] = {
    "res (L+1, B, T, C) bf16", "ln1 (L, B, T, C) bf16", "rstd1 (L, B, T) fp32", "qkv (L, B, T, QD+2KV) bf16",
    "atty (L, B, T, QD) bf16", "attention saved for backward (L x stats or probs)", "res2 (L, B, T, C) bf16", "ln2 (L, B, T, C) bf16",
    "rstd2 (L, B, T) fp32", "gu (L, B, T, 2H) bf16", "act (L, B, T, H) bf16", "lnf (B, T, max(C, QD)) bf16", "rstdf (B, T) fp32",
    "logits (B, T, V) bf16", "losses (B, T) fp32", "dres (B, T, C) bf16", "scratch (B, T, max(3H, QD+2KV)) bf16",
    "rmsnorm dw scratch fp32", "grad norm partials fp64", "inputs int32", "targets int32 (+ their counts)", "encoder buckets int32",
};
// --recompute 1: forward keeps res (every layer's input); the per-layer buffers ln1 .. act hold
// one layer, which backward recomputes layer by layer (gpu_layer_forward)
static const char* const GPU_ACT_NAMES_RECOMPUTE[A_ACT + 1] = {
    "res (L+1, B, T, C) bf16: every layer's input", "ln1 (B, T, C) bf16: 1 layer, recomputed", "rstd1 (B, T) fp32: 1 layer, recomputed",
    "qkv (B, T, QD+2KV) bf16: 1 layer, recomputed", "atty (B, T, QD) bf16: 1 layer, recomputed",
    "attention saved: 1 layer, recomputed", "res2 (B, T, C) bf16: 1 layer, recomputed",
    "ln2 (B, T, C) bf16: 1 layer, recomputed", "rstd2 (B, T) fp32: 1 layer, recomputed", "gu (B, T, 2H) bf16: 1 layer, recomputed",
    "act (B, T, H) bf16: 1 layer, recomputed",
};
static const char* gpu_act_name(int i, int recompute) { return recompute && i <= A_ACT ? GPU_ACT_NAMES_RECOMPUTE[i] : GPU_ACT_NAMES[i]; }

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

// what attention keeps per layer for its backward (attention.cuh's attention_activation_bytes,
// which train_llama.cu checks against this at startup): cuDNN's softmax stats (B, NH, T) fp32, or
// the cuBLAS fallback's probabilities (B, NH, T, T) bf16
static size_t gpu_attn_saved_bytes(const LlamaConfig* c, int B, int T, int cudnn) {
    return cudnn ? (size_t)B * c->NH * T * 4 : (size_t)B * c->NH * T * (size_t)T * GPU_X;
}

// bytes of each activation buffer, each 256-byte aligned; attn_saved: per layer; recompute: the
// per-layer buffers (all but res) hold one layer
static void gpu_act_sizes(const LlamaConfig* c, int B, int T, size_t attn_saved, size_t bytes[A_NUM], int recompute) {
    size_t L = c->L, C = c->C, H = c->H, V = c->V, BT = (size_t)B * T, QD = llama_qdim(c), KV = llama_kvdim(c);
    size_t scratch = 3 * H > QD + 2 * KV ? 3 * H : QD + 2 * KV;
    size_t lnf = QD > C ? QD : C; // lnf, or backward's datty
    // bytes per element: bf16, fp32, int (not X/F/I: complex.h, which OpenBLAS's cblas.h pulls in, defines I)
    size_t xb = GPU_X, fb = 4, ib = 4;
    size_t Lk = recompute ? 1 : L; // layers of the per-layer buffers kept
    size_t b[A_NUM] = {
        (L + 1) * BT * C * xb, Lk * BT * C * xb, Lk * BT * fb, Lk * BT * (QD + 2 * KV) * xb,
        Lk * BT * QD * xb, Lk * align256(attn_saved), Lk * BT * C * xb, Lk * BT * C * xb,
        Lk * BT * fb, Lk * BT * 2 * H * xb, Lk * BT * H * xb, BT * lnf * xb, BT * fb,
        BT * V * xb, BT * fb, BT * C * xb, BT * scratch * xb,
        (size_t)RMS_DW_CHUNKS * C * fb, (size_t)NORM_BLOCKS * 8, BT * ib, (BT + GPU_TARGET_COUNTS) * ib, (3 * BT + 1) * ib,
    };
    for (int i = 0; i < A_NUM; i++) bytes[i] = align256(b[i]);
}

// the GPU rows, in allocation order
enum {
    GR_WEIGHTS = 0, GR_GRADS, GR_MASTER, GR_W8_CODES, GR_W8_GROUPS, GR_W8_DEQ, GR_MOMENTS, GR_Q8, GR_ABSMAX, GR_PROJ, GR_LIM, GR_W8_UPD, GR_QMAPS,
    GR_ACC_FULL, GR_ACC_LOW, GR_ACC_REFRESH, GR_ROPE, GR_PART, GR_STEP_FLAGS, GR_DP_SCALARS,
    GR_ACT0, // + A_NUM activation rows
    GR_GL_A = GR_ACT0 + A_NUM, GR_GL_UV, GR_GL_S, GR_GL_RN, GR_GL_INFO, GR_SOLVER_WS,
    GR_LT_WS, GR_LT_WS_UPD, GR_ATTN_WS, GR_NUM
};

// the rows train_llama.cu allocates itself (cudaMalloc of the row's bytes), as ranges [first,
// last]: the model's (gpu_build) and the trainer's (gpu_trainer_init, freed by gpu_trainer_free).
// Every other row is MEM_LIBRARY or MEM_TRANSIENT (test_llama.c checks both ways).
#define GPU_ROW_RANGES 3
static const int GPU_MODEL_ROWS[GPU_ROW_RANGES][2] = {{GR_WEIGHTS, GR_W8_DEQ}, {GR_ROPE, GR_ROPE}, {GR_ACT0, GR_ACT0 + A_NUM - 1}};
static const int GPU_TRAINER_ROWS[GPU_ROW_RANGES][2] = {{GR_MOMENTS, GR_W8_UPD}, {GR_ACC_FULL, GR_ACC_LOW}, {GR_PART, GR_DP_SCALARS}};

// the trainer's step flags (GR_STEP_FLAGS), one small buffer: the per-layer check's LayerHookFlags
// at 0, the fused GaLore update's device alpha, beta at GPU_FLAGS_AB, the norm-growth limiter's
// divisor of the matrix being updated (Fira, APOLLO: written and read on the update stream) at
// GPU_FLAGS_LIM, then one int per tensor at GPU_FLAGS_SKIP (its update skipped this step: the
// update kernels read it)
#define GPU_FLAGS_AB 32
#define GPU_FLAGS_LIM 40
#define GPU_FLAGS_SKIP 64
static double gpu_step_flags_bytes(int n_tensors) { return (double)GPU_FLAGS_SKIP + 4.0 * n_tensors; }

typedef struct {
    const LlamaConfig* c;
    const OptimConfig* oc;   // NULL: AdamW (the model's rows only matter)
    int B, T, master, per_layer, grad_accum, recompute;
    int cudnn;               // attention: 1 cuDNN (softmax stats saved), 0 the cuBLAS fallback (probabilities)
    int dp;                  // data parallel (NCCL scalars)
    int w8_group, w8_embed;  // OptimConfig's (--weights int8: --weight-group; 0: bf16 weights), also for a plan without oc
} GpuPlanArgs;

// --weights int8 on the GPU (weight8.h's format): the bf16 weights row keeps only the float
// tensors (norms; embedding and lm_head unless --weight-int8-embed 1); the quantized ones are codes
// (one row) and per group an fp32 scale and an 8-bit zero (one row: every scale, then every zero),
// in table order. The forward and backward dequantize one matrix, or one fused run of a group
// (q|k|v, gate|up: param_group), at a time into a bf16 scratch the GEMMs read; the update
// dequantizes one tensor into an fp32 scratch, updates it there and requantizes it.
// gpu_w8_layout fills, per tensor, its offset in the bf16 row or in the codes and groups (-1 where
// it has none; any pointer may be NULL) and returns the sizes; G 0: every tensor in the bf16 row
// at its table offset (the layout without INT8).
typedef struct { double fl, codes, groups, deq, upd; } GpuW8Sizes; // elements
static GpuW8Sizes gpu_w8_layout(const ParamTable* pt, const LlamaConfig* c, int64_t G, int embed, int64_t* woff, int64_t* coff,
                                int64_t* goff) {
    GpuW8Sizes z;
    memset(&z, 0, sizeof z);
    double run = 0.0;
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        int q = G > 0 && weight8_applies(p, embed);
        if (woff) woff[i] = q ? -1 : (int64_t)z.fl;
        if (coff) coff[i] = q ? (int64_t)z.codes : -1;
        if (goff) goff[i] = q ? (int64_t)z.groups : -1;
        if (!q) { z.fl += (double)p->numel; run = 0.0; continue; }
        z.codes += (double)p->numel;
        z.groups += (double)weight8_groups(p->numel, G);
        run = i > 0 && param_group(c, i - 1) == param_group(c, i) ? run + (double)p->numel : (double)p->numel;
        if (run > z.deq) z.deq = run;
        if ((double)p->numel > z.upd) z.upd = (double)p->numel;
    }
    return z;
}

// the GPU plan of a command line (one process: a data-parallel run adds its NCCL scalars at startup)
static GpuPlanArgs gpu_plan_args(const Settings* s, const LlamaConfig* c, const OptimConfig* oc) {
    GpuPlanArgs a;
    memset(&a, 0, sizeof a);
    a.c = c; a.oc = oc; a.B = s->batch; a.T = s->seq; a.master = s->master_weights; a.per_layer = s->per_layer;
    a.grad_accum = s->grad_accum; a.recompute = s->recompute;
    a.cudnn = s->attn_fallback != 1; // --attn-fallback 1 (ATTN_FALLBACK) only: 2 (deterministic) plans as cuDNN, which it uses where it can
    a.w8_group = oc->w8_group; a.w8_embed = oc->w8_embed;
    return a;
}

// the optimizer state of galore.h's per-tensor layout on the GPU, in bytes: moments in bf16 (fp32
// with master weights, and always fp32 on the 8-bit kinds' 32-bit path for small tensors, as
// bitsandbytes), 8-bit states and their absmax, bf16 projectors, the norm-growth limiter's fp32
// state (Fira, APOLLO). gpu_optim_init carves its rows with the same per-tensor sizes.
typedef struct { double moments, q8, absmax, proj, lim; int mom_f32; } GpuOptimBytes;
static GpuOptimBytes gpu_optim_bytes(const ParamTable* pt, const OptimConfig* oc, int master) {
    GpuOptimBytes b;
    memset(&b, 0, sizeof b);
    b.mom_f32 = master || optim_is_8bit(oc->kind);
    for (int i = 0; i < pt->n; i++) {
        TensorLayout l;
        tensor_layout(&l, &pt->info[i], oc);
        if (l.state == STATE_8BIT) { b.q8 += 2.0 * l.snumel; b.absmax += 2.0 * 4 * l.nblocks; }
        else b.moments += 2.0 * l.snumel * (b.mom_f32 ? 4 : GPU_X);
        b.proj += (double)l.proj_numel * GPU_X;
        b.lim += 4.0 * l.limiter;
    }
    return b;
}

static void gpu_memplan_build(MemPlan* mp, const GpuPlanArgs* a) {
    memset(mp, 0, sizeof *mp);
    const LlamaConfig* c = a->c;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    if (a->oc) oc = *a->oc; else oc.kind = OPTIM_ADAMW;
    ParamTable pt;
    param_table_build(&pt, c);
    double P = (double)pt.total;
    GpuW8Sizes w8 = gpu_w8_layout(&pt, c, a->w8_group, a->w8_embed, NULL, NULL, NULL);
    memplan_set(mp, GR_WEIGHTS, !a->w8_group ? "weights (bf16)" : a->w8_embed ? "weights kept in bf16 (the norms)" : "weights kept in bf16 (norms, embedding, lm_head)",
                w8.fl * GPU_X, MEM_STATE);
    double gsize = (double)grad_layout(&pt, c, a->per_layer, NULL);
    memplan_set(mp, GR_GRADS, a->per_layer ? "gradients (largest update group, bf16)" : "gradients (bf16)", gsize * GPU_X, 0);
    memplan_set(mp, GR_MASTER, "master weights (fp32)", a->master ? P * 4 : 0.0, MEM_STATE);
    memplan_set(mp, GR_W8_CODES, "weights int8 codes (uint8)", w8.codes, MEM_STATE);
    memplan_set(mp, GR_W8_GROUPS, "int8 scales + zeros (fp32 + uint8 per group)", 5.0 * w8.groups, MEM_STATE);
    memplan_set(mp, GR_W8_DEQ, "int8 dequant scratch (bf16, largest fused matrix)", w8.deq * GPU_X, 0);
    GpuOptimBytes ob = gpu_optim_bytes(&pt, &oc, a->master);
    memplan_set(mp, GR_MOMENTS, ob.mom_f32 ? "adam moments m, v (fp32)" : "adam moments m, v (bf16)", ob.moments, MEM_STATE);
    memplan_set(mp, GR_Q8, "8-bit moments qm, qv (uint8)", ob.q8, MEM_STATE);
    memplan_set(mp, GR_ABSMAX, "8-bit absmax (fp32, per 256 elements)", ob.absmax, MEM_STATE);
    memplan_set(mp, GR_PROJ, "GaLore projectors (bf16)", ob.proj, MEM_STATE);
    memplan_set(mp, GR_LIM, "norm-growth limiter state (fp32, 1 per matrix)", ob.lim, MEM_STATE);
    memplan_set(mp, GR_W8_UPD, "int8 update scratch (fp32, largest tensor)", a->oc ? w8.upd * 4 : 0.0, 0);
    memplan_set(mp, GR_QMAPS, "8-bit quantization maps (adam8bit_maps_upload)", optim_is_8bit(oc.kind) ? 512.0 * 4 : 0.0, MEM_LIBRARY);
    // per-layer accumulation (galore.h's accum_layout, as the trainer carves them): full
    // accumulators for the full-rank tensors, low-rank ones for the GaLore tensors (also for data
    // parallel, which all-reduces R), and full ones for the GaLore tensors of a refresh step
    // (allocated for that step only: transient)
    TensorLayout* lay = (TensorLayout*)mallocCheck(sizeof(TensorLayout) * (size_t)pt.n);
    for (int i = 0; i < pt.n; i++) tensor_layout(&lay[i], &pt.info[i], &oc);
    int need_full = a->per_layer && a->grad_accum > 1, need_low = need_full || a->dp;
    int64_t* off = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)pt.n);
    size_t nfull = 0, nlow = 0;
    accum_layout(&pt, lay, need_full, off, off + pt.n, &nfull, &nlow);
    double galore_full = 0.0;
    for (int i = 0; i < pt.n; i++) if (layout_lowrank_accum(&lay[i])) galore_full += (double)(lay[i].m * lay[i].n);
    memplan_set(mp, GR_ACC_FULL, "gradient accumulators (full-rank tensors, bf16)", need_full ? (double)nfull * GPU_X : 0.0, 0);
    memplan_set(mp, GR_ACC_LOW, "gradient accumulators (GaLore low-rank, bf16)", need_low ? (double)nlow * GPU_X : 0.0, 0);
    memplan_set(mp, GR_ACC_REFRESH, "refresh-step accumulators (GaLore, bf16)", need_full ? galore_full * GPU_X : 0.0, MEM_TRANSIENT);
    free(off);
    memplan_set(mp, GR_ROPE, "rope cos/sin tables (fp32)", 2.0 * c->maxT * (c->HD / 2) * 4, 0);
    memplan_set(mp, GR_PART, "per-tensor norm partials (fp64)", (double)NORM_BLOCKS * P_PER_LAYER * 8, 0);
    memplan_set(mp, GR_STEP_FLAGS, "step flags (per-layer NaN check, per-tensor skips, fused-update alpha/beta)", gpu_step_flags_bytes(pt.n), 0);
    memplan_set(mp, GR_DP_SCALARS, "data-parallel scalars (fp64)", a->dp ? 16.0 * 8 : 0.0, 0);
    size_t ab[A_NUM];
    gpu_act_sizes(c, a->B, a->T, gpu_attn_saved_bytes(c, a->B, a->T, a->cudnn), ab, a->recompute);
    for (int i = 0; i < A_NUM; i++) {
        char nm[80];
        snprintf(nm, sizeof nm, "act: %s", gpu_act_name(i, a->recompute));
        memplan_set(mp, GR_ACT0 + i, nm, (double)ab[i], 0);
    }
    // GaLore's scratch (galore_gpu_init allocates it from the same galore_dims) and cuSOLVER's
    // workspace: the largest over every refresh shape, queried at startup (gesvdj, or geqrf /
    // orgqr / gesvdj of the sketches for --svd randomized); without a device, galore_dims' estimate
    GaloreDims gd = galore_dims(lay, pt.n);
    free(lay);
    int gl = gd.max_full > 0, sv = gl && gd.svd > 0; // sv: some tensor refreshes by SVD (not APOLLO's)
    memplan_set(mp, GR_GL_A, "GaLore full scratch: SVD input, U; APOLLO sums (fp32)", gl ? (double)gd.max_full * 4 : 0.0, MEM_LIBRARY);
    memplan_set(mp, GR_GL_UV, "GaLore SVD factors U, V (fp32, largest matrix)", sv ? 2.0 * gd.max_full * 4 : 0.0, MEM_LIBRARY);
    memplan_set(mp, GR_GL_S, "GaLore singular values (fp32)", sv ? (double)gd.max_k * 4 : 0.0, MEM_LIBRARY);
    memplan_set(mp, GR_GL_RN, "GaLore low-rank R, N (fp32)", gl ? 2.0 * gd.max_s * 4 : 0.0, MEM_LIBRARY);
    memplan_set(mp, GR_GL_INFO, "cuSOLVER devInfo (int32)", sv ? 4.0 : 0.0, MEM_LIBRARY);
    memplan_set(mp, GR_SOLVER_WS, "cuSOLVER workspace: SVD, QR (every refresh shape)", sv ? galore_svd_workspace_estimate(&gd) : 0.0,
                sv ? MEM_LIBRARY | MEM_QUERIED : MEM_LIBRARY);
    memplan_set(mp, GR_LT_WS, "cuBLASLt workspace (matmul_ctx_init)", (double)MATMUL_WORKSPACE_BYTES, MEM_LIBRARY);
    memplan_set(mp, GR_LT_WS_UPD, "cuBLASLt workspace of the update stream", a->oc ? (double)MATMUL_WORKSPACE_BYTES : 0.0, MEM_LIBRARY);
    // the cuDNN graphs' workspace (or the fallback's scores) is known once attention_init built
    // the plans; without a device it is not estimated
    memplan_set(mp, GR_ATTN_WS, "attention workspace (cuDNN graphs or fallback scores)", 0.0, MEM_LIBRARY | MEM_QUERIED);
    param_table_free(&pt);
}

// the paper's Table 2 "memory estimate": weights plus optimizer state (the MEM_STATE rows)
static double memplan_paper_estimate(const MemPlan* mp) { return mp->state; }

#define GIB 1073741824.0
// what the CUDA context and the library handles (cuBLAS, cuBLASLt, cuDNN, cuSOLVER, NCCL) take
// besides the plan's buffers: an estimate (typically 0.3-0.6 GiB, more with NCCL); train_llamacu
// prints the measured figure ("in use before allocating") at startup and at the end
#define GPU_CONTEXT_GIB 0.6

// a row's note: transient, or a queried row's state
static void memplan_row_note(const MemItem* it, char* buf, size_t n) {
    buf[0] = 0;
    if (it->flags & MEM_TRANSIENT) snprintf(buf, n, " (transient, not in total)");
    else if ((it->flags & MEM_QUERIED) && it->queried) snprintf(buf, n, " (queried; plan estimate %.4f GiB)", it->estimate / GIB);
    else if ((it->flags & MEM_QUERIED) && it->bytes > 0) snprintf(buf, n, " (estimate: queried at startup)");
    else if (it->flags & MEM_QUERIED) snprintf(buf, n, " (queried at startup; not in this total)");
}

// memplan_unqueried: the queried rows not yet filled in (their bytes are estimates or 0)
static int memplan_unqueried(const MemPlan* mp) {
    int k = 0;
    for (int i = 0; i < mp->n; i++) k += (mp->items[i].flags & MEM_QUERIED) && !mp->items[i].queried;
    return k;
}

// gpu_mem_gib > 0 (--gpu-mem): does the plan plus the CUDA context fit a card of that many GiB?
static void memplan_print(const MemPlan* mp, const char* title, double gpu_mem_gib) {
    printf("memory plan: %s\n", title);
    for (int i = 0; i < mp->n; i++) {
        const MemItem* it = &mp->items[i];
        if (it->bytes <= 0 && !(it->flags & MEM_QUERIED)) continue;
        char note[96];
        memplan_row_note(it, note, sizeof note);
        printf("  %-56s %10.4f GiB%s\n", it->name, it->bytes / GIB, note);
    }
    int uq = memplan_unqueried(mp);
    printf("  %-56s %10.4f GiB%s\n", "total", mp->total / GIB, uq ? " (the rows queried at startup: estimates or none)" : "");
    printf("  %-56s %10.4f GiB\n", "weights + optimizer state (paper's estimate)", mp->state / GIB);
    if (gpu_mem_gib > 0) {
        double need = mp->total / GIB + GPU_CONTEXT_GIB, room = gpu_mem_gib - need;
        printf("  --gpu-mem %g: total + CUDA context and libraries (~%.1f GiB, an estimate) = %.2f GiB: %s, headroom %.2f GiB%s\n", gpu_mem_gib,
               GPU_CONTEXT_GIB, need, room >= 0 ? "fits" : "does not fit", room,
               uq ? " (before the rows only a device can size)" : "");
    }
}

// --memory-plan json: the plans as one JSON document {"plans": [{"title", "engine", "buffers":
// [{"name", "bytes", "transient", "queried"}], "total_bytes", "state_bytes"}]} (transient buffers
// are listed but not in the total; state_bytes is the paper's "weights + optimizer state";
// queried: "startup" for a row only a device sizes and not yet sized, "device" once it was, absent
// otherwise). Written with cJSON.
static cJSON* plan_json_begin(cJSON* plans, const char* title, const char* engine) {
    cJSON* p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", title);
    cJSON_AddStringToObject(p, "engine", engine);
    cJSON_AddItemToObject(p, "buffers", cJSON_CreateArray());
    cJSON_AddItemToArray(plans, p);
    return p;
}

// print {"plans": plans} on stdout and free it
static void plan_json_print(cJSON* plans) {
    cJSON* root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "plans", plans);
    char* text = cJSON_Print(root);
    if (text == NULL) die("out of memory printing the memory plan as JSON");
    printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

static void memplan_json(cJSON* plans, const MemPlan* mp, const char* title, const char* engine) {
    cJSON* p = plan_json_begin(plans, title, engine);
    for (int i = 0; i < mp->n; i++) {
        const MemItem* it = &mp->items[i];
        if (it->bytes <= 0 && !(it->flags & MEM_QUERIED)) continue;
        if (it->name[0] == 0) continue;
        cJSON* b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", it->name);
        cJSON_AddNumberToObject(b, "bytes", it->bytes);
        cJSON_AddBoolToObject(b, "transient", (it->flags & MEM_TRANSIENT) != 0);
        if (it->flags & MEM_QUERIED) cJSON_AddStringToObject(b, "queried", it->queried ? "device" : "startup");
        cJSON_AddItemToArray(cJSON_GetObjectItem(p, "buffers"), b);
    }
    cJSON_AddNumberToObject(p, "total_bytes", mp->total);
    cJSON_AddNumberToObject(p, "state_bytes", mp->state);
}

// gpu_memplan_title: the GPU plan's title, the same in both binaries; a rank the user left out says
// it is the default (a 7B plan at rank 128 is not the paper's 1024)
static void gpu_memplan_title(char* buf, size_t n, const Settings* s, const LlamaConfig* c, const OptimConfig* oc, const GpuPlanArgs* a) {
    char rk[48] = "";
    if (optim_has_projector(oc->kind))
        snprintf(rk, sizeof rk, " rank %d%s", oc->rank, cli_given(s, "rank") || oc->kind == OPTIM_APOLLO_MINI ? "" : " (default)");
    snprintf(buf, n, "GPU engine (train_llamacu): %s, %s%s%s, batch %d x %d%s, %s, attention %s", c->name, s->optimizer, rk,
             a->per_layer ? ", per-layer updates" : "", a->B, a->T, a->grad_accum > 1 ? " (grad-accum)" : "",
             a->master ? "fp32 master weights + fp32 moments" : a->w8_group ? "INT8 weights" : "pure bf16 weights + bf16 moments", a->cudnn ? "cuDNN" : "cuBLAS fallback");
    size_t k = strlen(buf);
    if (a->w8_group) snprintf(buf + k, n - k, " | INT8: group %d%s", a->w8_group, a->w8_embed ? ", embedding and lm_head too" : "");
}

// gpu_memplan_notes: what the table cannot say in a row (--recompute's saving, the refresh-step
// accumulators, the fallback's attention memory)
static void gpu_memplan_notes(const MemPlan* mp, const GpuPlanArgs* a) {
    if (a->recompute) {
        MemPlan keep; // the same run keeping every layer's activations
        GpuPlanArgs k = *a;
        k.recompute = 0;
        gpu_memplan_build(&keep, &k);
        printf("  note: --recompute 1 keeps each layer's input and one layer of the rest, recomputed in backward (one more forward "
               "of the layers): %.4f GiB less than --recompute 0 (%.4f GiB)\n", (keep.total - mp->total) / GIB, keep.total / GIB);
    }
    if (mp->transient > 0)
        printf("  note: at a refresh step with --grad-accum > 1, each GaLore matrix refreshing holds a full bf16 accumulator for that step "
               "(all of them at step 1): up to +%.4f GiB, which the memory pool keeps reserved from then on (its release threshold)\n",
               mp->transient / GIB);
    if (a->cudnn) {
        MemPlan fb; // the same run on the cuBLAS fallback
        GpuPlanArgs f = *a;
        f.cudnn = 0;
        gpu_memplan_build(&fb, &f);
        printf("  note: where cuDNN cannot build an attention plan (e.g. head dim not a multiple of 8), the cuBLAS fallback keeps (B, NH, T, T) "
               "probabilities per layer instead: +%.4f GiB\n", (fb.total - mp->total) / GIB);
    }
}

// ----------------------------------------------------------------------------
// "what fits my card?" (--gpu-mem): when the plan does not fit, the settings the user did not pin
// are searched, and the plans that fit are listed cheapest first, each as the flags to add. A
// candidate is a set of moves, each with a cost in the units of "one more step time" (speed) or
// "a different run" (fidelity), all rough, so only their order matters:
//   --recompute 1         one more forward of the layers: ~1/3 of a step more, the same results
//   micro-batch / 2       the same total batch by --grad-accum: the same gradients (summed), smaller
//                         matmuls: a little slower per halving, much slower below 2048 tokens
//   --per-layer 1         no global gradient clipping (the GaLore paper's 7B runs make this trade)
//   8-bit states          the optimizer's 8-bit variant: moments quantized blockwise
//   GaLore                an unpinned full-rank optimizer becomes galore_adamw, at the paper's rank
//                         C/4 (1024 for 7B) unless --rank was given
//   --rank / 2            fewer directions per GaLore matrix: a different run, per halving
//   --optimizer apollo_mini  rank 1, tensor-wise scaling: the last resort
// A plan that fits with a subset of another's moves makes that other one redundant: not listed.
enum { FIT_RECOMPUTE = 0, FIT_MICRO, FIT_PER_LAYER, FIT_8BIT, FIT_GALORE, FIT_RANK, FIT_MINI, FIT_INT8, FIT_NUM };
static const double FIT_COST[FIT_NUM] = {0.33, 0.05, 0.2, 0.25, 0.6, 0.5, 2.0, 0.9};
static const char* const FIT_WHY[FIT_NUM] = {"~1/3 more compute, same results", "same total batch, smaller matmuls",
                                             "no global grad clipping", "8-bit optimizer states", "GaLore low-rank states", "lower rank", "APOLLO-Mini (rank 1, a different optimizer)",
                                             "INT8 weights as Q-GaLore (stochastic rounding; a dequantization before each matmul)"};

// optim_8bit_variant: the kind with 8-bit moments of an fp32-state kind (-1: none, or already 8-bit)
static int optim_8bit_variant(int kind) {
    switch (kind) {
        case OPTIM_ADAMW: case OPTIM_ADAM: return OPTIM_ADAM8BIT;
        case OPTIM_GALORE_ADAMW: return OPTIM_GALORE_ADAMW8BIT;
        case OPTIM_FIRA_ADAMW: return OPTIM_FIRA_ADAMW8BIT;
        case OPTIM_APOLLO_ADAMW: return OPTIM_APOLLO_ADAMW8BIT;
        default: return -1;
    }
}

typedef struct { int lv[FIT_NUM]; double need, cost; } FitCandidate;

// gpu_memplan_fit: the fitting alternatives of a plan that does not fit gpu_mem_gib (printed)
static void gpu_memplan_fit(const Settings* s, const OptimConfig* oc, const GpuPlanArgs* a, double gpu_mem_gib) {
    // how far each move may go: 0 where the user pinned the flag it changes, or it does nothing
    int max_lv[FIT_NUM] = {0};
    max_lv[FIT_RECOMPUTE] = !a->recompute && !cli_given(s, "recompute");
    int micro = 0;
    if (!(cli_given(s, "batch") && cli_given(s, "grad-accum"))) for (int b = a->B; b % 2 == 0 && micro < 6; b /= 2) micro++;
    max_lv[FIT_MICRO] = micro;
    max_lv[FIT_PER_LAYER] = !a->per_layer && !cli_given(s, "per-layer") && !(cli_given(s, "grad-clip") && s->grad_clip > 0.0f);
    max_lv[FIT_8BIT] = !cli_given(s, "optimizer") && optim_8bit_variant(oc->kind) >= 0;
    int full = oc->kind == OPTIM_ADAMW || oc->kind == OPTIM_ADAM || oc->kind == OPTIM_ADAM8BIT;
    max_lv[FIT_GALORE] = full && !cli_given(s, "optimizer");
    int galore_rank = cli_given(s, "rank") ? oc->rank : a->c->C / 4; // the paper's ratio
    int galore = (optim_has_projector(oc->kind) && oc->kind != OPTIM_APOLLO_MINI) || max_lv[FIT_GALORE];
    int r0 = optim_has_projector(oc->kind) ? oc->rank : galore_rank;
    max_lv[FIT_RANK] = galore && !cli_given(s, "rank") ? (r0 >= 128 ? 3 : r0 >= 8 ? 1 : 0) : 0;
    max_lv[FIT_MINI] = oc->kind != OPTIM_APOLLO_MINI;
    max_lv[FIT_INT8] = !a->w8_group && !a->master && !cli_given(s, "weights");
    int w8_group = s->weight_group > 0 ? s->weight_group : 128;
    static FitCandidate cand[4096];
    int nc = 0;
    int lv[FIT_NUM] = {0};
    for (;;) { // every combination of levels (an odometer over max_lv)
        int mini = lv[FIT_MINI];
        // APOLLO-Mini replaces the optimizer; a lower rank needs a projector
        int valid = !(mini && (lv[FIT_8BIT] || lv[FIT_RANK] || lv[FIT_GALORE])) &&
                    !(lv[FIT_RANK] && !optim_has_projector(oc->kind) && !lv[FIT_GALORE]);
        int any = 0;
        for (int k = 0; k < FIT_NUM; k++) any |= lv[k];
        if (valid && any && nc < 4096) {
            OptimConfig o = *oc;
            if (lv[FIT_GALORE]) { o.kind = OPTIM_GALORE_ADAMW; o.rank = galore_rank; }
            if (lv[FIT_8BIT]) o.kind = optim_8bit_variant(o.kind);
            if (lv[FIT_RANK]) o.rank = r0 >> lv[FIT_RANK];
            if (mini) { o.kind = OPTIM_APOLLO_MINI; apollo_config_defaults(&o); }
            GpuPlanArgs b = *a;
            b.oc = &o;
            b.recompute = a->recompute || lv[FIT_RECOMPUTE];
            b.per_layer = a->per_layer || lv[FIT_PER_LAYER];
            b.B = a->B >> lv[FIT_MICRO];
            b.grad_accum = a->grad_accum << lv[FIT_MICRO];
            if (lv[FIT_INT8]) { b.w8_group = w8_group; b.w8_embed = 0; }
            MemPlan mp;
            gpu_memplan_build(&mp, &b);
            double need = mp.total / GIB + GPU_CONTEXT_GIB;
            if (need <= gpu_mem_gib) {
                FitCandidate* fc = &cand[nc++];
                memcpy(fc->lv, lv, sizeof lv);
                fc->need = need;
                fc->cost = 0.0;
                for (int k = 0; k < FIT_NUM; k++) if (k != FIT_MICRO) fc->cost += FIT_COST[k] * lv[k];
                // a halving costs little while the micro-batch keeps >= 2048 tokens, much below
                // (a GPU's matmuls of fewer rows run far from peak)
                for (int h = 1; h <= lv[FIT_MICRO]; h++) fc->cost += (size_t)(a->B >> h) * a->T >= 2048 ? FIT_COST[FIT_MICRO] : 0.3;
            }
        }
        int k = 0;
        while (k < FIT_NUM && lv[k] == max_lv[k]) lv[k++] = 0;
        if (k == FIT_NUM) break;
        lv[k]++;
    }
    // drop the candidates whose moves include another fitting candidate's (no smaller change fits)
    int nk = 0;
    for (int i = 0; i < nc; i++) {
        int redundant = 0;
        for (int j = 0; j < nc && !redundant; j++) {
            if (j == i) continue;
            int le = 1, ne = 0;
            for (int k = 0; k < FIT_NUM; k++) { le &= cand[j].lv[k] <= cand[i].lv[k]; ne |= cand[j].lv[k] != cand[i].lv[k]; }
            redundant = le && ne;
        }
        if (!redundant) cand[nk++] = cand[i];
    }
    for (int i = 1; i < nk; i++) // cheapest first, then the most headroom
        for (int j = i; j > 0 && (cand[j].cost < cand[j - 1].cost || (cand[j].cost == cand[j - 1].cost && cand[j].need < cand[j - 1].need)); j--) {
            FitCandidate t = cand[j]; cand[j] = cand[j - 1]; cand[j - 1] = t;
        }
    MemPlan base;
    GpuPlanArgs wa = *a; // the smallest weights a move can give: INT8 where the user left it open
    if (max_lv[FIT_INT8]) { wa.w8_group = w8_group; wa.w8_embed = 0; }
    gpu_memplan_build(&base, &wa);
    double wb = base.items[GR_WEIGHTS].bytes + base.items[GR_W8_CODES].bytes + base.items[GR_W8_GROUPS].bytes; // bf16 (+ INT8)
    if (wb / GIB + GPU_CONTEXT_GIB > gpu_mem_gib) {
        int w8 = base.items[GR_W8_CODES].bytes > 0;
        printf("  the %s weights alone (%.2f GiB) and the CUDA context do not fit %g GiB with any setting: pass a smaller --model%s, or a larger card\n",
               w8 ? "INT8 + bf16" : "bf16", wb / GIB, gpu_mem_gib, w8 || a->w8_group ? "" : " or --weights int8 (not with --master-weights 1)");
        return;
    }
    if (nk == 0) {
        printf("  no setting you left open makes it fit %g GiB (searched: recompute, micro-batch, per-layer, 8-bit states, GaLore, "
               "rank, apollo_mini, INT8 weights; the flags you gave are kept); pass a smaller --seq or --batch, or a larger card\n", gpu_mem_gib);
        return;
    }
    printf("  fits %g GiB with (the flags you gave are kept; cheapest first):\n", gpu_mem_gib);
    for (int i = 0; i < nk && i < 6; i++) {
        const FitCandidate* fc = &cand[i];
        char flags[256] = "", why[256] = "";
        size_t f = 0, w = 0;
        #define FIT_ADD(...) f += snprintf(flags + f, sizeof flags - f, __VA_ARGS__)
        if (fc->lv[FIT_RECOMPUTE]) FIT_ADD(" --recompute 1");
        if (fc->lv[FIT_PER_LAYER]) FIT_ADD(" --per-layer 1");
        if (fc->lv[FIT_MICRO]) FIT_ADD(" --batch %d --grad-accum %d", a->B >> fc->lv[FIT_MICRO], a->grad_accum << fc->lv[FIT_MICRO]);
        if (fc->lv[FIT_MINI]) FIT_ADD(" --optimizer apollo_mini");
        int kind = fc->lv[FIT_GALORE] ? OPTIM_GALORE_ADAMW : oc->kind;
        if (fc->lv[FIT_8BIT]) kind = optim_8bit_variant(kind);
        if (fc->lv[FIT_8BIT] || fc->lv[FIT_GALORE]) FIT_ADD(" --optimizer %s", OPTIM_NAMES[kind]);
        if (fc->lv[FIT_RANK] || (fc->lv[FIT_GALORE] && !cli_given(s, "rank"))) FIT_ADD(" --rank %d", r0 >> fc->lv[FIT_RANK]);
        if (fc->lv[FIT_INT8]) FIT_ADD(" --weights int8");
        #undef FIT_ADD
        for (int k = 0; k < FIT_NUM; k++)
            if (fc->lv[k]) w += snprintf(why + w, sizeof why - w, "%s%s", w ? "; " : "", FIT_WHY[k]);
        printf("    %s   (%.2f GiB, headroom %.2f GiB: %s)\n", flags + 1, fc->need, gpu_mem_gib - fc->need, why);
    }
}

// --memory-plan for the GPU engine, printed by either binary without a device (the rows only a
// device can size say so); with --gpu-mem, whether it fits, and if not, what would
static void gpu_memplan_report(const Settings* s, const LlamaConfig* c, const OptimConfig* oc, const GpuPlanArgs* a, cJSON* json) {
    MemPlan mp;
    char title[256];
    gpu_memplan_build(&mp, a);
    gpu_memplan_title(title, sizeof title, s, c, oc, a);
    if (json) { memplan_json(json, &mp, title, "gpu"); return; }
    memplan_print(&mp, title, s->gpu_mem);
    gpu_memplan_notes(&mp, a);
    if (s->gpu_mem > 0 && mp.total / GIB + GPU_CONTEXT_GIB > s->gpu_mem) gpu_memplan_fit(s, oc, a, s->gpu_mem);
}

#endif // MEMPLAN_H
