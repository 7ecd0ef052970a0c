// train_llama.cu: the GPU trainer of galore.c. The same model, CLI (cli.h's table), data,
// checkpoints and logs as the CPU reference train_llama.c, on one NVIDIA GPU in bf16:
// bf16 weights, activations and gradients with fp32 math inside every kernel and fp32
// accumulation in every matmul (cuBLASLt), attention through attention.cuh (cuDNN fused SDPA, or
// a cuBLAS fallback), Adam/AdamW with bf16 moments by default as the GaLore paper's pure-bf16
// runs (--master-weights 1: fp32 master weights and fp32 moments), optional stochastic rounding.
// Every optimizer of the CPU program: adamw, adam, galore_adamw (cuSOLVER SVD, cuBLAS projections:
// galore.cuh), adam8bit and galore_adamw8bit (blockwise 8-bit states: adam8bit.cuh), with the
// per-tensor state of galore.h's tensor_layout; --per-layer 1 updates each layer inside backward
// (gradient memory: the largest update group, llama.h), with --grad-accum accumulating GaLore gradients in the
// low-rank space, as the CPU does.
// Every device buffer is allocated once at startup by walking one plan (memplan.h's gpu_memplan_build), which
// --memory-plan 1 prints without touching the GPU.
// test_llama.cu includes this file with TESTING defined to reach its internals.
//
// Dimension letters as in train_llama.c: B batch, T sequence, C hidden, H intermediate, NH query
// heads, NKV key/value heads, HD head dim, KV = NKV*HD, L layers, V vocab, P parameters.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#include <time.h>
#include "utils.h"
#include "rand.h"
#include "safetensors.h"
#include "llama.h"
#include "cli.h"
#include "dataloader.h"
#include "tokenizer.h"
#include "galore.h"
#include "memplan.h"
#include "checkpoint.h"
#include "cuda_common.cuh"
#include "llama_math.h"
#include "llama_kernels.cuh"
#include "attention.cuh"
#include "adam8bit.cuh"
#include "galore.cuh"
#include "weight8.cuh"
#include "dist.h"
#include "run.h"
#include "layerhook.h"
#include <nccl.h>

// NCCL calls: checked like the others (the data-parallel code below, and gpu_forward's count)
static void nccl_check(ncclResult_t r, const char* file, int line) {
    if (r == ncclSuccess) return;
    fflush(stdout);
    fprintf(stderr, "error: NCCL: %s (%d) (%s:%d); hint: %s\n", ncclGetErrorString(r), (int)r, file, line,
            r == ncclSystemError || r == ncclRemoteError ? "a rank died or the network failed; NCCL_DEBUG=INFO shows where"
                                                         : "every rank must run the same command; NCCL_DEBUG=INFO for details");
    exit(EXIT_FAILURE);
}
#define ncclCheck(call) nccl_check((call), __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// the device memory: memplan.h's GPU plan (gpu_memplan_build), one cudaMalloc per row, walked in
// row order. A row's buffer is exactly its bytes under its name; MEM_LIBRARY rows are allocated
// inside the library wrappers (cuBLASLt workspaces, attention_init, galore_gpu_init,
// adam8bit_maps_upload) and checked against their contexts (gpu_plan_check); the queried rows are
// filled in from them. Transient rows (refresh-step accumulators) are allocated for their step.

typedef struct {
    MemPlan plan;
    void* ptr[GR_NUM];     // row i's buffer, or NULL
    size_t got[GR_NUM];    // the bytes allocated for row i
} GpuMem;

// allocate (zeroed) rows first..last that are this program's (not a library's, not transient)
static void gpu_alloc_rows(GpuMem* gm, int first, int last) {
    for (int i = first; i <= last; i++) {
        const MemItem* it = &gm->plan.items[i];
        if ((it->flags & (MEM_LIBRARY | MEM_TRANSIENT)) || it->bytes <= 0) continue;
        if (gm->ptr[i]) die("internal: memory plan row %s allocated twice", it->name);
        size_t b = (size_t)it->bytes;
        gm->ptr[i] = cudaMallocCheck(b, it->name);
        gm->got[i] = b;
        cudaCheck(cudaMemset(gm->ptr[i], 0, b));
    }
}
static void gpu_free_rows(GpuMem* gm, int first, int last) {
    for (int i = first; i <= last; i++) {
        if (gm->ptr[i]) cudaCheck(cudaFree(gm->ptr[i]));
        gm->ptr[i] = NULL;
        gm->got[i] = 0;
    }
}
// a library's buffer against its row (the library allocated `bytes`)
static void gpu_plan_expect(const GpuMem* gm, int i, double bytes) {
    if (fabs(gm->plan.items[i].bytes - bytes) > 0.5)
        die("internal: memory plan row \"%s\" is %.0f bytes, the buffer %.0f", gm->plan.items[i].name, gm->plan.items[i].bytes, bytes);
}

// ----------------------------------------------------------------------------
// the model on the GPU

typedef struct {
    floatX *res, *ln1, *qkv, *atty, *res2, *ln2, *gu, *act, *lnf, *logits, *dres, *scratch;
    float *rstd1, *rstd2, *rstdf, *losses, *rms_scratch;
    double* norm_partials;
    char* attn_saved;     // (L, attn_saved_bytes) what attention keeps for backward (cuDNN: softmax stats)
    int *inputs, *targets, *bucket;
} GpuActs;

typedef struct {
    LlamaConfig config;
    ParamTable table;
    int B, T;                 // the (only) shape the activations and the attention plan are built for
    int recompute;            // 1: the per-layer activations hold one layer, recomputed in backward
    int master;               // fp32 master weights + fp32 moments
    floatX* params;           // bf16, flat in table order (the CPU's layout: Wq|Wk|Wv and Wg|Wu adjacent): (P), or with
                              // --weights int8 only the float tensors (woff); read them through PX / gpu_weight
    int64_t* woff;            // (table.n) tensor i's offset in params, -1 for an INT8 tensor
    // --weights int8 (weight8.h, weight8.cuh; memplan.h's gpu_w8_layout): tensor i's codes (numel),
    // fp32 scales and 8-bit zeros (weight8_groups(numel, G) each) in the plan's rows, NULL for a
    // float tensor; w8_deq the bf16 scratch the GEMMs read a dequantized matrix (or fused run) from
    int w8_group, w8_embed;   // OptimConfig's: 0 bf16 weights
    uint8_t** w8_codes; float** w8_scales; uint8_t** w8_zeros; // (table.n) device
    floatX* w8_deq;
    // gradients: tensor i's at grads + goff[i]. Whole-model mode: (P), goff = the parameter offset.
    // Per-layer mode: the slots of one update group are reused by every group (the largest
    // group's size); backward calls grads_ready(ctx, first, last) when a group is final (as the CPU)
    floatX* grads;            // (grad_size) bf16
    size_t grad_size;
    int grads_per_layer;      // the layout of goff
    size_t* goff;             // (table.n)
    void (*grads_ready)(void* ctx, int first, int last);
    void* grads_ctx;
    float* master_w;          // (P) fp32 or NULL
    float *rope_cos, *rope_sin; // (maxT, HD/2) fp32
    GpuActs acts;             // the activation rows of mem
    GpuMem mem;               // the plan and its buffers (the trainer completes both)
    size_t attn_saved_bytes;  // per layer
    MatmulCtx mm;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    AttnCtx attn;
    cudaStream_t stream;
    // host scratch
    int* h_counts;            // (V + 1)
    int* h_bucket;            // (3BT + 1) encoder_backward_buckets
    float* h_losses;          // (BT)
    double* h_partials;       // (NORM_BLOCKS)
    float mean_loss;          // of the last forward with targets; -1 when there were none
    int n_valid;              // targets counted by that forward (targets_count, on the device)
    int h_tc[TC_NUM];         // its counts on the host
    ncclComm_t norm_comm;     // data parallel: the loss gradient is divided by the targets of all ranks
                              // (the CPU's Llama.n_norm), all-reduced on the device; NULL: this rank's
} GpuLlama;

// tensor i's bf16 weights (a float tensor: an INT8 one has none, gpu_weight dequantizes it)
static inline floatX* PX(GpuLlama* m, int i) {
    if (m->woff[i] < 0) die("internal: tensor %d (%s) is INT8: read it through gpu_weight", i, m->table.info[i].name);
    return m->params + m->woff[i];
}
static inline int gpu_w8(const GpuLlama* m, int i) { return m->w8_codes[i] != NULL; }

// gpu_weight: the bf16 weights of tensors first..last (adjacent: one matrix, or a fused run of an
// update group, q|k|v or gate|up) for a GEMM on the main stream. A float tensor is its own; INT8
// ones are dequantized into the scratch, which the next call overwrites: stream order makes that
// wait for the GEMM that read it (every forward and backward reader is on m->stream).
static const floatX* gpu_weight(GpuLlama* m, int first, int last) {
    if (!gpu_w8(m, first)) return PX(m, first);
    size_t k = 0;
    for (int i = first; i <= last; i++) {
        size_t n = (size_t)m->table.info[i].numel;
        weight8_dequant(m->w8_deq + k, m->w8_codes[i], m->w8_scales[i], m->w8_zeros[i], n, m->w8_group, m->stream);
        k += n;
    }
    return m->w8_deq;
}
static inline const floatX* gpu_weight(GpuLlama* m, int i) { return gpu_weight(m, i, i); }
static inline floatX* GX(GpuLlama* m, int i) { return m->grads + m->goff[i]; }

// HF's rope tables in fp32, computed exactly as the CPU's llama_rope_init, then uploaded
static void gpu_rope_init(GpuLlama* m) {
    const LlamaConfig* c = &m->config;
    size_t n = (size_t)c->maxT * (c->HD / 2);
    float* hc = (float*)mallocCheck(sizeof(float) * n);
    float* hs = (float*)mallocCheck(sizeof(float) * n);
    llama_rope_tables(c, hc, hs);
    m->rope_cos = (float*)m->mem.ptr[GR_ROPE]; // the row holds both tables
    m->rope_sin = m->rope_cos + n;
    cudaCheck(cudaMemcpy(m->rope_cos, hc, sizeof(float) * n, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(m->rope_sin, hs, sizeof(float) * n, cudaMemcpyHostToDevice));
    free(hc); free(hs);
}

// gpu_build: handles, attention plan, the model's rows of the plan (weights, gradients, master
// weights, rope tables, activations; the optimizer's follow in gpu_trainer_init). Weights are
// uploaded afterwards (gpu_upload_params).
// per_layer: lay the gradient slots out for per-layer updates right away (the largest group's size),
// so a model that only fits with --per-layer never allocates whole-model gradients.
// recompute: --recompute 1, one layer of per-layer activations (gpu_act_sizes)
// w8_group, w8_embed: --weights int8 (OptimConfig's w8_group; 0: bf16 weights), --weight-int8-embed
static void gpu_build(GpuLlama* m, const LlamaConfig* c, int B, int T, int master, int attn_fallback, int verbose, int per_layer = 0,
                      int recompute = 0, int w8_group = 0, int w8_embed = 0) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->B = B; m->T = T; m->master = master; m->recompute = recompute;
    if (w8_group > 0 && master) die("internal: INT8 weights with fp32 masters (run.h refuses the pair)");
    m->w8_group = w8_group; m->w8_embed = w8_group > 0 ? w8_embed : 0;
    m->mean_loss = -1.0f;
    param_table_build(&m->table, c);
    size_t BT = (size_t)B * T;
    int HD = c->HD;
    cudaCheck(cudaStreamCreate(&m->stream));
    matmul_ctx_init(&m->mm, m->stream);
    m->blas = m->mm.blas;
    // no usable cuDNN is not fatal: attention falls back to cuBLAS (attention_init says so)
    cudnnStatus_t ds = cudnnCreate(&m->dnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        printf("note: cudnnCreate failed (%s)\n", cudnnGetErrorString(ds));
        m->dnn = NULL;
    } else {
        cudnnCheck(cudnnSetStream(m->dnn, m->stream));
    }
    attention_init(&m->attn, m->dnn, m->blas, B, T, c->NH, c->NKV, HD, attn_fallback); // --attn-fallback: ATTN_AUTO/FALLBACK/DETERMINISTIC
    m->attn_saved_bytes = attention_saved_bytes(&m->attn);
    if (verbose) printf("attention: %s\n", attention_path(&m->attn));
    if (verbose && !m->attn.bwd_deterministic)
        printf("note: the attention backward chosen is not bitwise deterministic run to run (cuDNN engine); --attn-fallback 2 takes "
               "cuDNN only with a deterministic backward, 1 the cuBLAS path\n");
    // the model's plan: the trainer rebuilds it with the optimizer's rows (gpu_trainer_init)
    GpuPlanArgs pa;
    memset(&pa, 0, sizeof pa);
    pa.c = c; pa.B = B; pa.T = T; pa.master = master; pa.per_layer = per_layer; pa.grad_accum = 1; pa.recompute = recompute;
    pa.cudnn = m->attn.use_cudnn; pa.w8_group = m->w8_group; pa.w8_embed = m->w8_embed;
    gpu_memplan_build(&m->mem.plan, &pa);
    if (gpu_attn_saved_bytes(c, B, T, m->attn.use_cudnn) != m->attn_saved_bytes)
        die("internal: the memory plan's attention rows (%zu bytes a layer) differ from attention.cuh's (%zu)",
            gpu_attn_saved_bytes(c, B, T, m->attn.use_cudnn), m->attn_saved_bytes);
    for (int r = 0; r < GPU_ROW_RANGES; r++) gpu_alloc_rows(&m->mem, GPU_MODEL_ROWS[r][0], GPU_MODEL_ROWS[r][1]);
    m->params = (floatX*)m->mem.ptr[GR_WEIGHTS];
    m->master_w = (float*)m->mem.ptr[GR_MASTER];
    {
        // the weights' rows carved per tensor with the plan's layout
        int n = m->table.n;
        m->woff = (int64_t*)mallocCheck(sizeof(int64_t) * (size_t)n);
        int64_t* coff = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)n);
        GpuW8Sizes z = gpu_w8_layout(&m->table, c, m->w8_group, m->w8_embed, m->woff, coff, coff + n);
        size_t ptrs = sizeof(void*) * (size_t)n;
        m->w8_codes = (uint8_t**)callocCheck(1, ptrs); m->w8_scales = (float**)callocCheck(1, ptrs); m->w8_zeros = (uint8_t**)callocCheck(1, ptrs);
        float* scales = (float*)m->mem.ptr[GR_W8_GROUPS];
        uint8_t* zeros = (uint8_t*)(scales + (size_t)z.groups); // every scale, then every zero (gpu_memplan_build)
        for (int i = 0; i < n; i++) {
            if (coff[i] < 0) continue;
            m->w8_codes[i] = (uint8_t*)m->mem.ptr[GR_W8_CODES] + coff[i];
            m->w8_scales[i] = scales + coff[n + i];
            m->w8_zeros[i] = zeros + coff[n + i];
        }
        m->w8_deq = (floatX*)m->mem.ptr[GR_W8_DEQ];
        free(coff);
    }
    m->goff = (size_t*)mallocCheck(sizeof(size_t) * (size_t)m->table.n);
    m->grad_size = grad_layout(&m->table, c, per_layer, m->goff);
    m->grads_per_layer = per_layer;
    m->grads = (floatX*)m->mem.ptr[GR_GRADS];
    gpu_rope_init(m);
    void** ptrs[A_NUM] = {
        (void**)&m->acts.res, (void**)&m->acts.ln1, (void**)&m->acts.rstd1, (void**)&m->acts.qkv, (void**)&m->acts.atty,
        (void**)&m->acts.attn_saved, (void**)&m->acts.res2, (void**)&m->acts.ln2, (void**)&m->acts.rstd2, (void**)&m->acts.gu,
        (void**)&m->acts.act, (void**)&m->acts.lnf, (void**)&m->acts.rstdf, (void**)&m->acts.logits, (void**)&m->acts.losses,
        (void**)&m->acts.dres, (void**)&m->acts.scratch, (void**)&m->acts.rms_scratch, (void**)&m->acts.norm_partials,
        (void**)&m->acts.inputs, (void**)&m->acts.targets, (void**)&m->acts.bucket,
    };
    for (int i = 0; i < A_NUM; i++) *ptrs[i] = m->mem.ptr[GR_ACT0 + i];
    m->h_counts = (int*)mallocCheck(sizeof(int) * ((size_t)c->V + 1));
    m->h_bucket = (int*)mallocCheck(sizeof(int) * (3 * BT + 1));
    m->h_losses = (float*)mallocCheck(sizeof(float) * BT);
    m->h_partials = (double*)mallocCheck(sizeof(double) * NORM_BLOCKS);
}

static void gpu_free(GpuLlama* m) {
    gpu_free_rows(&m->mem, 0, GR_NUM - 1);
    free(m->goff); free(m->woff); free(m->w8_codes); free(m->w8_scales); free(m->w8_zeros);
    attention_free(&m->attn);
    matmul_ctx_free(&m->mm); // m->blas is its handle
    if (m->dnn) cudnnCheck(cudnnDestroy(m->dnn));
    cudaCheck(cudaStreamDestroy(m->stream));
    free(m->h_counts); free(m->h_bucket); free(m->h_losses); free(m->h_partials);
    param_table_free(&m->table);
}

// gpu_set_grad_mode: lay out the gradient slots for whole-model or per-layer updates and
// reallocate their row zeroed when its size changed (per-layer: the largest update group's size
// instead of P); the plan's gradient row must already say the new size (gpu_trainer_init)
static void gpu_set_grad_mode(GpuLlama* m, int per_layer) {
    m->grad_size = grad_layout(&m->table, &m->config, per_layer, m->goff);
    m->grads_per_layer = per_layer;
    gpu_plan_expect(&m->mem, GR_GRADS, (double)(sizeof(floatX) * m->grad_size));
    if (m->mem.got[GR_GRADS] != sizeof(floatX) * m->grad_size) {
        gpu_free_rows(&m->mem, GR_GRADS, GR_GRADS);
        gpu_alloc_rows(&m->mem, GR_GRADS, GR_GRADS);
        m->grads = (floatX*)m->mem.ptr[GR_GRADS];
    }
    cudaCheck(cudaMemset(m->grads, 0, sizeof(floatX) * m->grad_size));
    m->grads_ready = NULL;
    m->grads_ctx = NULL;
}

// per-layer mode: tensors first..last now hold their final gradient for this micro-batch
static inline void gpu_grads_ready(GpuLlama* m, int first, int last) { if (m->grads_ready) m->grads_ready(m->grads_ctx, first, last); }
// before a kernel writes the shared gradient slots: wait until the last group's update (on the
// trainer's update stream) has read and zeroed them (matmul_backward does the same for its dW)
static inline void gpu_slot_wait(GpuLlama* m) { if (m->mm.has_dw_wait) cudaCheck(cudaStreamWaitEvent(m->stream, m->mm.dw_wait, 0)); }

// the INT8 state between the device and a host Weight8 (weight8_init's layout for the same table,
// group and embed: one copy per part, both sides carved in table order)
static void gpu_w8_copy(GpuLlama* m, Weight8* w, cudaMemcpyKind dir) {
    int up = dir == cudaMemcpyHostToDevice;
    int first = -1;
    for (int i = 0; i < m->table.n && first < 0; i++) if (gpu_w8(m, i)) first = i;
    if (first < 0 || w->G != m->w8_group || w->total <= 0) die("internal: the host INT8 state does not match the device's");
    void* d[3] = {m->w8_codes[first], m->w8_scales[first], m->w8_zeros[first]};
    void* h[3] = {w->cmem, w->smem, w->zmem};
    size_t b[3] = {(size_t)w->total, sizeof(float) * (size_t)w->groups, (size_t)w->groups};
    for (int k = 0; k < 3; k++) cudaCheck(cudaMemcpy(up ? d[k] : h[k], up ? h[k] : d[k], b[k], dir));
}
static void gpu_w8_upload(GpuLlama* m, Weight8* w) { gpu_w8_copy(m, w, cudaMemcpyHostToDevice); }
static void gpu_w8_download(GpuLlama* m, Weight8* w) { gpu_w8_copy(m, w, cudaMemcpyDeviceToHost); }

// host fp32 (P) -> device: bf16 weights by round-to-nearest-even (exact when the values came from
// bf16), and the fp32 masters when kept. INT8 tensors: quantized to nearest on the host
// (weight8_quantize, the CPU engine's weight8_quantize_params), unless keep_codes (a resume: the
// state restored them, and they are the weights; the checkpoint's float file is their dequantization)
static void gpu_upload_params(GpuLlama* m, const float* host, int keep_codes = 0) {
    const ParamTable* pt = &m->table;
    size_t P = pt->total;
    uint16_t* hb = (uint16_t*)mallocCheck(sizeof(uint16_t) * P);
    size_t nf = 0;
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        if (gpu_w8(m, i)) continue;
        for (int64_t k = 0; k < p->numel; k++) hb[m->woff[i] + k] = bf16_from_f32(host[p->offset + k]);
        nf += (size_t)p->numel;
    }
    cudaCheck(cudaMemcpy(m->params, hb, sizeof(uint16_t) * nf, cudaMemcpyHostToDevice));
    free(hb);
    if (m->master) cudaCheck(cudaMemcpy(m->master_w, host, sizeof(float) * P, cudaMemcpyHostToDevice));
    if (m->w8_group <= 0 || keep_codes) return;
    Weight8 w;
    weight8_init(&w, pt, m->w8_group, m->w8_embed);
    for (int i = 0; i < pt->n; i++)
        if (w.numel[i]) weight8_quantize(host + pt->info[i].offset, w.numel[i], w.G, 0, 0, w.codes[i], w.scales[i], w.zeros[i]);
    gpu_w8_upload(m, &w);
    weight8_free(&w);
}

// device (P) bf16 or fp32 -> host fp32
static void download_f32(float* host, const void* dev, size_t n, int is_f32) {
    if (is_f32) { cudaCheck(cudaMemcpy(host, dev, sizeof(float) * n, cudaMemcpyDeviceToHost)); return; }
    uint16_t* hb = (uint16_t*)mallocCheck(sizeof(uint16_t) * n);
    cudaCheck(cudaMemcpy(hb, dev, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    for (size_t k = 0; k < n; k++) host[k] = f32_from_bf16(hb[k]);
    free(hb);
}
static void upload_f32(void* dev, const float* host, size_t n, int is_f32) {
    if (is_f32) { cudaCheck(cudaMemcpy(dev, host, sizeof(float) * n, cudaMemcpyHostToDevice)); return; }
    uint16_t* hb = (uint16_t*)mallocCheck(sizeof(uint16_t) * n);
    for (size_t k = 0; k < n; k++) hb[k] = bf16_from_f32(host[k]);
    cudaCheck(cudaMemcpy(dev, hb, sizeof(uint16_t) * n, cudaMemcpyHostToDevice));
    free(hb);
}

// the weights as fp32 on the host: the masters when kept, else the bf16 weights (exactly), and the
// INT8 tensors dequantized exactly as the CPU's weight8_dequantize (the CPU engine then holds the
// same fp32 weights: the export's and the checkpoint's float file)
static void gpu_download_params(GpuLlama* m, float* host) {
    const ParamTable* pt = &m->table;
    if (m->master) { download_f32(host, m->master_w, pt->total, 1); return; }
    if (m->w8_group <= 0) { download_f32(host, m->params, pt->total, 0); return; }
    float* hf = (float*)mallocCheck(sizeof(float) * pt->total);
    size_t nf = 0;
    for (int i = 0; i < pt->n; i++) if (!gpu_w8(m, i)) nf += (size_t)pt->info[i].numel;
    download_f32(hf, m->params, nf, 0);
    Weight8 w;
    weight8_init(&w, pt, m->w8_group, m->w8_embed);
    gpu_w8_download(m, &w);
    for (int i = 0; i < pt->n; i++)
        if (!w.numel[i]) memcpy(host + pt->info[i].offset, hf + m->woff[i], sizeof(float) * (size_t)pt->info[i].numel);
    weight8_dequantize_params(&w, pt, host); // the INT8 tensors: the CPU engine's own function
    weight8_free(&w);
    free(hf);
}

// layer l's slices, laid out with the allocated B*T strides. With recompute every layer maps to
// the one layer of buffers; x and xout are always layer l's own residual slices.
typedef struct {
    floatX *x, *ln1, *qkv, *atty, *x2, *ln2, *gu, *act, *xout;
    float *rstd1, *rstd2;
    void* attn_saved;     // this layer's attention_saved_bytes
} GpuLayerActs;

static GpuLayerActs gpu_layer_acts(GpuLlama* m, int l) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    size_t C = c->C, H = c->H, QD = llama_qdim(c), KV = llama_kvdim(c), BT = (size_t)m->B * m->T;
    size_t k = m->recompute ? 0 : (size_t)l; // the block of the per-layer buffers
    GpuLayerActs la;
    la.x = a->res + l * BT * C;
    la.ln1 = a->ln1 + k * BT * C;
    la.rstd1 = a->rstd1 + k * BT;
    la.qkv = a->qkv + k * BT * (QD + 2 * KV);
    la.atty = a->atty + k * BT * QD;
    // each layer's slice starts 256-byte aligned (cuDNN wants aligned tensors)
    la.attn_saved = m->attn_saved_bytes ? (void*)(a->attn_saved + k * align256(m->attn_saved_bytes)) : NULL;
    la.x2 = a->res2 + k * BT * C;
    la.ln2 = a->ln2 + k * BT * C;
    la.rstd2 = a->rstd2 + k * BT;
    la.gu = a->gu + k * BT * 2 * H;
    la.act = a->act + k * BT * H;
    la.xout = a->res + (l + 1) * BT * C;
    return la;
}

// gpu_layer_forward: layer l of the forward on its input la.x, filling its activations and
// attention's saved tensor. write_out 0 stops after act: backward's recompute needs every
// activation but not the output, which the forward already left in res[l + 1]. The same kernels
// on the same inputs as the forward (deterministic), so a recompute reproduces its values exactly.
static void gpu_layer_forward(GpuLlama* m, int l, int write_out) {
    const LlamaConfig* c = &m->config;
    cudaStream_t s = m->stream;
    int B = m->B, T = m->T, C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = c->HD, QD = NH * HD, KV = NKV * HD, BT = B * T;
    GpuLayerActs la = gpu_layer_acts(m, l);
    rmsnorm_forward(la.ln1, la.rstd1, la.x, PX(m, pt_layer(l, P_LN1)), BT, C, c->norm_eps, s);
    matmul_forward(&m->mm, la.qkv, la.ln1, gpu_weight(m, pt_layer(l, P_WQ), pt_layer(l, P_WV)), NULL, BT, C, QD + 2 * KV, s); // Wq | Wk | Wv
    rope_forward(la.qkv, m->rope_cos, m->rope_sin, B, T, NH + NKV, HD, QD + 2 * KV, s);           // q and k heads are adjacent
    attention_forward(&m->attn, la.atty, la.attn_saved, la.qkv, s);
    matmul_forward(&m->mm, la.x2, la.atty, gpu_weight(m, pt_layer(l, P_WO)), la.x, BT, QD, C, s);          // + residual
    rmsnorm_forward(la.ln2, la.rstd2, la.x2, PX(m, pt_layer(l, P_LN2)), BT, C, c->norm_eps, s);
    matmul_forward(&m->mm, la.gu, la.ln2, gpu_weight(m, pt_layer(l, P_WG), pt_layer(l, P_WU)), NULL, BT, C, 2 * H, s);        // Wgate | Wup
    swiglu_forward(la.act, la.gu, BT, H, s);
    if (write_out) matmul_forward(&m->mm, la.xout, la.act, gpu_weight(m, pt_layer(l, P_WD)), la.x2, BT, H, C, s); // + residual
}

// gpu_forward: inputs (B, T) host token ids at exactly the built shape; targets (B, T) host or
// NULL (then only logits). grad_scale > 0: the classifier also writes dlogits = d(grad_scale *
// mean loss)/dlogits in place of the logits, ready for gpu_backward. Sets mean_loss / n_valid.
static void gpu_forward(GpuLlama* m, const int* inputs, const int* targets, int B, int T, float grad_scale) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    cudaStream_t s = m->stream;
    int C = c->C, V = c->V, L = c->L;
    // attention's plan is built for one (B, T): callers pad smaller batches (sampling does)
    if (B != m->B || T != m->T) die("internal: GPU forward with B=%d T=%d, built for %d x %d", B, T, m->B, m->T);
    int BT = B * T;
    for (int i = 0; i < BT; i++)
        if (inputs[i] < 0 || inputs[i] >= V) die("token id %d at position %d is outside the vocabulary of %d", inputs[i], i, V);
    cudaCheck(cudaMemcpyAsync(a->inputs, inputs, sizeof(int) * BT, cudaMemcpyHostToDevice, s));
    encoder_forward(a->res, a->inputs, gpu_weight(m, 0), BT, C, s);
    for (int l = 0; l < L; l++) gpu_layer_forward(m, l, 1);
    rmsnorm_forward(a->lnf, a->rstdf, a->res + (size_t)L * BT * C, PX(m, pt_norm(c)), BT, C, c->norm_eps, s);
    matmul_forward(&m->mm, a->logits, a->lnf, gpu_weight(m, pt_lm_head(c)), NULL, BT, C, V, s);
    if (targets == NULL) {
        cudaCheck(cudaStreamSynchronize(s));
        m->mean_loss = -1.0f; m->n_valid = 0;
        return;
    }
    // the targets are counted once, on the device (targets_count): the classifier divides by the count
    // there (data parallel: by the sum over the ranks, all-reduced into TC_NORM in training steps,
    // which every rank runs alike), and the host reads it with the losses
    cudaCheck(cudaMemcpyAsync(a->targets, targets, sizeof(int) * BT, cudaMemcpyHostToDevice, s));
    int* counts = a->targets + BT; // TC_NUM ints after the targets (gpu_act_sizes)
    targets_count(counts, a->targets, BT, V, s);
    if (m->norm_comm != NULL && grad_scale > 0.0f)
        ncclCheck(ncclAllReduce(counts + TC_VALID, counts + TC_NORM, 1, ncclInt32, ncclSum, m->norm_comm, s));
    fused_classifier(a->logits, a->losses, a->targets, BT, V, grad_scale, counts + TC_NORM, grad_scale > 0.0f, s);
    cudaCheck(cudaMemcpyAsync(m->h_losses, a->losses, sizeof(float) * BT, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaMemcpyAsync(m->h_tc, counts, sizeof(m->h_tc), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    int bad = m->h_tc[TC_FIRST_BAD]; // the classifier skipped it (no out-of-row read); nothing was updated
    if (bad < BT) die("target id %d at position %d is outside the vocabulary of %d", targets[bad], bad, V);
    int n_valid = m->h_tc[TC_VALID];
    double sum = 0.0; // in a fixed order on the host: deterministic
    for (int i = 0; i < BT; i++) sum += m->h_losses[i];
    m->n_valid = n_valid;
    m->mean_loss = n_valid > 0 ? (float)(sum / n_valid) : 0.0f;
}

static void gpu_zero_grad(GpuLlama* m) {
    cudaCheck(cudaMemsetAsync(m->grads, 0, sizeof(floatX) * m->grad_size, m->stream));
}

// gpu_backward: ADDS the gradient of (grad_scale * mean loss) into the gradients; the forward
// must have run with that grad_scale (its classifier left dlogits in the logits buffer).
// The buffer reuse follows the CPU's llama_backward line by line.
static void gpu_backward(GpuLlama* m, const int* inputs, int B, int T) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    cudaStream_t s = m->stream;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = c->HD, QD = NH * HD, KV = NKV * HD, V = c->V, L = c->L;
    int BT = B * T;
    floatX* dlogits = a->logits;
    floatX* dres = a->dres;        // (BT, C) gradient of the residual stream
    floatX* dln = a->scratch;      // (BT, C)
    // tied: lm_head's share goes into the embedding's slot (its own in per-layer mode: grad_layout),
    // which the lookup completes last; its update waits for that
    matmul_backward(&m->mm, dln, GX(m, pt_lm_head(c)), dlogits, a->lnf, gpu_weight(m, pt_lm_head(c)), BT, C, V, s);
    if (!c->tied) gpu_grads_ready(m, pt_lm_head(c), pt_lm_head(c));
    gpu_slot_wait(m);
    rmsnorm_backward(dres, GX(m, pt_norm(c)), a->rms_scratch, dln, a->res + (size_t)L * BT * C, PX(m, pt_norm(c)), a->rstdf,
                     BT, C, 0, s);
    gpu_grads_ready(m, pt_norm(c), pt_norm(c));
    for (int l = L - 1; l >= 0; l--) {
        // recompute: the one layer of buffers still holds layer L-1's activations from the forward
        // (backward always follows its forward); every lower layer is recomputed from its input
        if (m->recompute && l < L - 1) gpu_layer_forward(m, l, 0);
        GpuLayerActs la = gpu_layer_acts(m, l);
        floatX* dact = a->scratch;                      // (BT, H)
        floatX* dgu = a->scratch + (size_t)BT * H;      // (BT, 2H)
        matmul_backward(&m->mm, dact, GX(m, pt_layer(l, P_WD)), dres, la.act, gpu_weight(m, pt_layer(l, P_WD)), BT, H, C, s);
        gpu_grads_ready(m, pt_layer(l, P_WD), pt_layer(l, P_WD));
        swiglu_backward(dgu, dact, la.gu, BT, H, s);
        floatX* dln2 = a->lnf;                          // the final norm's output is no longer needed
        matmul_backward(&m->mm, dln2, GX(m, pt_layer(l, P_WG)), dgu, la.ln2, gpu_weight(m, pt_layer(l, P_WG), pt_layer(l, P_WU)), BT, C, 2 * H, s);
        gpu_grads_ready(m, pt_layer(l, P_WG), pt_layer(l, P_WU)); // gate | up
        gpu_slot_wait(m);
        rmsnorm_backward(dres, GX(m, pt_layer(l, P_LN2)), a->rms_scratch, dln2, la.x2, PX(m, pt_layer(l, P_LN2)), la.rstd2, BT, C, 1, s);
        gpu_grads_ready(m, pt_layer(l, P_LN2), pt_layer(l, P_LN2));
        floatX* datty = a->lnf;                         // (BT, QD): lnf holds max(C, QD) columns
        matmul_backward(&m->mm, datty, GX(m, pt_layer(l, P_WO)), dres, la.atty, gpu_weight(m, pt_layer(l, P_WO)), BT, QD, C, s);
        gpu_grads_ready(m, pt_layer(l, P_WO), pt_layer(l, P_WO));
        floatX* dqkv = a->scratch;                      // (BT, QD + 2KV)
        attention_backward(&m->attn, dqkv, datty, la.atty, la.qkv, la.attn_saved, s);
        rope_backward(dqkv, m->rope_cos, m->rope_sin, B, T, NH + NKV, HD, QD + 2 * KV, s);
        floatX* dln1 = a->lnf;                          // (BT, C)
        matmul_backward(&m->mm, dln1, GX(m, pt_layer(l, P_WQ)), dqkv, la.ln1, gpu_weight(m, pt_layer(l, P_WQ), pt_layer(l, P_WV)), BT, C, QD + 2 * KV, s);
        gpu_grads_ready(m, pt_layer(l, P_WQ), pt_layer(l, P_WV)); // q | k | v
        gpu_slot_wait(m);
        rmsnorm_backward(dres, GX(m, pt_layer(l, P_LN1)), a->rms_scratch, dln1, la.x, PX(m, pt_layer(l, P_LN1)), la.rstd1, BT, C, 1, s);
        gpu_grads_ready(m, pt_layer(l, P_LN1), pt_layer(l, P_LN1));
    }
    // embedding: positions bucketed by token on the host, summed in order on the device
    int nu = encoder_backward_buckets(m->h_bucket, m->h_counts, inputs, BT, V);
    cudaCheck(cudaMemcpyAsync(a->bucket, m->h_bucket, sizeof(int) * (size_t)(BT + 2 * nu + 1), cudaMemcpyHostToDevice, s));
    gpu_slot_wait(m);
    encoder_backward(GX(m, 0), dres, a->bucket, BT, nu, C, s);
    gpu_grads_ready(m, 0, 0);
    // the host bucket is reused by the next backward: wait for the copy (and the step) to finish
    cudaCheck(cudaStreamSynchronize(s));
}

// squared L2 norm of the whole gradient: fixed-grid partials on the device, added in double on the host
static double gpu_grad_sumsq(GpuLlama* m) {
    sumsq_partials(m->acts.norm_partials, m->grads, m->grad_size, m->stream);
    cudaCheck(cudaMemcpyAsync(m->h_partials, m->acts.norm_partials, sizeof(double) * NORM_BLOCKS, cudaMemcpyDeviceToHost, m->stream));
    cudaCheck(cudaStreamSynchronize(m->stream));
    double ss = 0.0;
    for (int k = 0; k < NORM_BLOCKS; k++) ss += m->h_partials[k];
    return ss;
}

// ----------------------------------------------------------------------------
// optimizer and trainer: the CPU's shape. One update per tensor (gpu_optim_update) with the state
// of galore.h's tensor_layout, the same layout as the CPU's Optimizer, so the memory plan, the
// allocation and the checkpoints agree across engines. Whole-model mode: backward fills every
// gradient, then the global norm, clipping, and the updates. Per-layer mode: the updates run inside
// backward (gpu_trainer_grads_ready), GaLore gradients accumulate in the low-rank space.

// the measured high-water mark of device memory: sampled (cudaMemGetInfo) where it peaks, at the
// end of each step and while the transient refresh buffers are alive. Libraries (cuBLAS, cuDNN,
// cuSOLVER) allocate on their own, so this is what the device reports, not a sum of our buffers.
static double g_mem_high_mib = 0.0;
static void gpu_mem_sample(void) {
    double u = gpu_mem_used_mib();
    if (u > g_mem_high_mib) g_mem_high_mib = u;
}

typedef struct {
    OptimConfig cfg;
    int n;                      // tensors
    TensorLayout* lay;          // (n) galore.h's layout: the CPU's
    int mom_f32;                // fp32 moments (master weights, or the 8-bit kinds' 32-bit path); else bf16
    void** m; void** v;         // (n) moments (srows, scols), or NULL (8-bit state)
    uint8_t** qm; uint8_t** qv; // (n) 8-bit moments (snumel), or NULL
    float** absmax_m; float** absmax_v; // (n) (nblocks) each, or NULL
    floatX** proj;              // (n) bf16 projector ((r, n) right, (m, r) left), or NULL
    int* has_proj;              // (n) host
    float** lim;                // (n) device: Fira's and APOLLO's norm-growth limiter state (layout.limiter floats), or NULL
    char* mom_mem; uint8_t* q_mem; float* absmax_mem; floatX* proj_mem; float* lim_mem; // the plan rows behind the tables
    float* maps;                // (512) device: the signed and unsigned dynamic maps (8-bit kinds)
    GaloreGpu gl;               // SVD, projection scratch and handles (GaLore kinds)
} GpuOptim;

// ublas, us: the update stream's cuBLAS handle and the stream (GpuTrainer), which the GaLore work uses
static void gpu_optim_init(GpuOptim* o, GpuLlama* m, const OptimConfig* cfg, cublasHandle_t ublas, cudaStream_t us, int verbose) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = m->table.n;
    o->lay = (TensorLayout*)mallocCheck(sizeof(TensorLayout) * o->n);
    // the state rows of the plan (gpu_trainer_init allocated them zeroed: bitsandbytes' zeros init),
    // carved per tensor with the sizes gpu_optim_bytes summed into the rows
    GpuOptimBytes ob = gpu_optim_bytes(&m->table, cfg, m->master);
    o->mom_f32 = ob.mom_f32;
    size_t mb = o->mom_f32 ? sizeof(float) : sizeof(floatX);
    o->mom_mem = (char*)m->mem.ptr[GR_MOMENTS];
    o->q_mem = (uint8_t*)m->mem.ptr[GR_Q8];
    o->absmax_mem = (float*)m->mem.ptr[GR_ABSMAX];
    o->proj_mem = (floatX*)m->mem.ptr[GR_PROJ];
    o->lim_mem = (float*)m->mem.ptr[GR_LIM];
    size_t ptrs = sizeof(void*) * (size_t)o->n;
    o->m = (void**)callocCheck(1, ptrs); o->v = (void**)callocCheck(1, ptrs);
    o->qm = (uint8_t**)callocCheck(1, ptrs); o->qv = (uint8_t**)callocCheck(1, ptrs);
    o->absmax_m = (float**)callocCheck(1, ptrs); o->absmax_v = (float**)callocCheck(1, ptrs);
    o->proj = (floatX**)callocCheck(1, ptrs);
    o->has_proj = (int*)callocCheck((size_t)o->n, sizeof(int));
    o->lim = (float**)callocCheck(1, ptrs);
    char* mp = o->mom_mem;
    uint8_t* q = o->q_mem;
    float* am = o->absmax_mem;
    floatX* pp = o->proj_mem;
    float* lp = o->lim_mem;
    for (int i = 0; i < o->n; i++) {
        TensorLayout* l = &o->lay[i];
        tensor_layout(l, &m->table.info[i], cfg);
        if (l->state == STATE_8BIT) {
            o->qm[i] = q; q += l->snumel;
            o->qv[i] = q; q += l->snumel;
            o->absmax_m[i] = am; am += l->nblocks;
            o->absmax_v[i] = am; am += l->nblocks;
        } else {
            o->m[i] = mp; mp += mb * l->snumel;
            o->v[i] = mp; mp += mb * l->snumel;
        }
        if (l->proj_numel) { o->proj[i] = pp; pp += l->proj_numel; }
        if (l->limiter) { o->lim[i] = lp; lp += l->limiter; }
    }
    if (optim_is_8bit(cfg->kind)) o->maps = adam8bit_maps_upload();
    if (mp - o->mom_mem != (ptrdiff_t)ob.moments || (double)(q - o->q_mem) != ob.q8 || (double)(am - o->absmax_mem) * 4 != ob.absmax ||
        (double)(pp - o->proj_mem) * sizeof(floatX) != ob.proj || (double)(lp - o->lim_mem) * 4 != ob.lim)
        die("internal: the optimizer state carved per tensor differs from its memory plan rows");
    galore_gpu_init(&o->gl, o->lay, o->n, ublas, us, verbose);
    o->gl.projector = cfg->projector; o->gl.run_seed = cfg->seed; // --proj random (GoLore)
    for (int i = 0; i < o->n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (optim_is_fira(cfg->kind) && l->side != SIDE_NONE && !fira_gpu_scratch_fits(&o->gl, l))
            die("internal: Fira tensor %d (%lld x %lld) too small for its channel sums in the scratch", i, (long long)l->m, (long long)l->n);
        if (!l->full_grad || !optim_is_apollo(cfg->kind)) continue; // APOLLO's matrices
        // the sums' lengths (rows or columns of G and of R, D; tensor-wise: rows, summed on the host)
        // are at most max(m, n, r) each
        int64_t nch = l->m > l->n ? l->m : l->n;
        if (l->r > nch) nch = l->r;
        // the sums live in the SVD input scratch gl.A (APOLLO runs no SVD): 3 nch doubles <= m n floats
        if (6 * nch > o->gl.max_full) die("internal: APOLLO tensor %d (%lld x %lld, rank %lld) too small for its channel sums in the scratch", i,
                                          (long long)l->m, (long long)l->n, (long long)l->r);
    }
}

// the state rows are the model's (GpuMem), freed with it
static void gpu_optim_free(GpuOptim* o) {
    if (o->maps) cudaCheck(cudaFree(o->maps));
    galore_gpu_free(&o->gl);
    free(o->lay); free(o->m); free(o->v); free(o->qm); free(o->qv); free(o->absmax_m); free(o->absmax_v); free(o->proj); free(o->has_proj);
    free(o->lim);
}

// per-layer: what the host counted when it issued tensor i's update (a refresh: has_proj set, the
// solver counts up), undone at the end of the step if the device skipped that update, so the
// counts (the randomized sketch's seed round, a checkpoint's) stay the CPU engine's
typedef struct {
    int issued, had_proj;
    int64_t refreshes, n_gesvdj, n_gesvd, n_randomized;
} GpuUpdateUndo;

typedef struct {
    GpuLlama* model;
    OptimConfig cfg;
    GpuOptim opt;
    int grad_accum;
    float grad_clip;
    int sr;                // stochastic rounding
    uint32_t sr_seed;
    int64_t t;             // optimizer updates done
    int per_layer;
    LayerHookStep st;      // the step in progress (layerhook.h)
    LayerHookOps hook;     // per-layer mode: this engine's arithmetic for layerhook.h
    // per-layer with accumulation (the CPU's Trainer.acc / racc): bf16 full accumulators for the
    // full-rank tensors, bf16 low-rank ones for GaLore tensors, full ones for a GaLore tensor only
    // during a step that refreshes it
    floatX** acc; floatX** racc; floatX* acc_mem; floatX* racc_mem;
    double* d_part; double* h_part; // (P_PER_LAYER, NORM_BLOCKS) per-tensor norm partials of one group
    // the step flags (memplan.h's GR_STEP_FLAGS row): per-layer mode checks each group's norms on
    // the device (gpu_hook_check) into d_flags and d_skip[i], which the update kernels read, so the
    // host never waits for a group; it reads the row once per step into the pinned h_flags.
    // d_ab: the fused update's alpha, beta (galore_gpu_update_fused, both modes); d_lim: the
    // norm-growth limiter's divisor (Fira's and APOLLO's kernels, read by pointer).
    LayerHookFlags* d_flags; int* d_skip; float* d_ab; float* d_lim;
    unsigned char* h_flags; size_t flags_bytes;
    GpuUpdateUndo* undo;   // (n) per-layer: the host's counts of each update issued this step
    // the optimizer's own stream: every update (and the GaLore work, galore.cuh's stream) runs on
    // us, with its own cuBLAS/cuBLASLt handles and workspace (mm_upd). Per-layer mode enqueues a
    // group's update there and returns to backward, which goes on with the groups below on the
    // main stream (overlapped) until it must write the shared gradient slots again: ev_slot
    // (recorded after the update has read and zeroed them) is what it waits for then.
    cudaStream_t us;
    MatmulCtx mm_upd;
    float* w8_upd;         // --weights int8: the fp32 update scratch (plan row: the largest INT8 tensor), on us
    cudaEvent_t ev_grad, ev_slot, ev_upd;
    // data parallel (dist.h; NCCL carries the gradients): whole-model mode all-reduces each layer's
    // gradients on comm_stream as soon as backward has finished the layer, overlapping the rest of
    // backward; GaLore tensors between refreshes travel as their bf16 projection R (racc) when
    // clipping is off. Per-layer mode all-reduces inside the update hook on the update stream us.
    Dist* dist;
    ncclComm_t comm;
    cudaStream_t comm_stream;
    cudaEvent_t ev_layer, ev_comm;
    int* lowrank;          // (n) whole-model: this step reduces tensor i as R
    double* d_scalars;     // (16) NCCL scalar collectives when MPI is absent
    double comm_bytes, comm_full; // this step: bytes all-reduced, and what full gradients would be
} GpuTrainer;

// ----------------------------------------------------------------------------
// data parallel on NCCL


// whether tensor i's gradient travels as its low-rank projection at update t (galore.h)
static int gpu_trainer_lowrank(const GpuTrainer* tr, int i, int64_t t) {
    const GpuOptim* o = &tr->opt;
    return galore_lowrank_at(&o->lay[i], o->has_proj[i], t, o->cfg.update_proj_gap);
}

// sum n bf16 values over the ranks, in place on stream s; full: the full gradient's elements it stands for
static void gpu_reduce(GpuTrainer* tr, floatX* x, size_t n, size_t full, cudaStream_t s) {
    if (!tr->dist->active) return;
    ncclCheck(ncclAllReduce(x, x, n, ncclBfloat16, ncclSum, tr->comm, s));
    tr->comm_bytes += sizeof(floatX) * (double)n;
    tr->comm_full += sizeof(floatX) * (double)full;
}

// scalar collectives over NCCL for runs without MPI (--dist-init): dist.h calls them
static void gpu_nccl_sum_f64(void* ctx, double* x, int n) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    cudaStream_t s = tr->model->stream;
    if (n > 16) die("internal: %d scalars in one collective", n);
    cudaCheck(cudaMemcpyAsync(tr->d_scalars, x, sizeof(double) * n, cudaMemcpyHostToDevice, s));
    ncclCheck(ncclAllReduce(tr->d_scalars, tr->d_scalars, (size_t)n, ncclDouble, ncclSum, tr->comm, s));
    cudaCheck(cudaMemcpyAsync(x, tr->d_scalars, sizeof(double) * n, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
}
static void gpu_nccl_barrier(void* ctx) { double x = 0.0; gpu_nccl_sum_f64(ctx, &x, 1); }

// the whole-model data-parallel hook: backward has finished tensors first..last; on the last
// micro-batch, project the GaLore ones that travel low-rank (on the update stream, GaLore's, once
// the gradients are there), then all-reduce the group on comm_stream while backward goes on with
// the layers below (in whole-model mode every tensor has its own slot: nothing waits for these)
static void gpu_dp_grads_ready(void* ctx, int first, int last) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    GpuLlama* m = tr->model;
    GpuOptim* o = &tr->opt;
    if (tr->st.micro != tr->grad_accum - 1) return;
    int64_t t = tr->t + 1;
    cudaCheck(cudaEventRecord(tr->ev_grad, m->stream));
    cudaCheck(cudaStreamWaitEvent(tr->us, tr->ev_grad, 0));
    for (int i = first; i <= last; i++) {
        tr->lowrank[i] = tr->grad_clip <= 0.0f && gpu_trainer_lowrank(tr, i, t);
        if (tr->lowrank[i]) {
            galore_gpu_project(&o->gl, &o->lay[i], GX(m, i), o->proj[i], tr->racc[i], 0, 1.0f, 0.0f);
            // the full slot no longer counts: zero it so the whole-gradient norm below skips it
            cudaCheck(cudaMemsetAsync(GX(m, i), 0, sizeof(floatX) * (size_t)m->table.info[i].numel, tr->us));
        }
    }
    cudaCheck(cudaEventRecord(tr->ev_layer, tr->us));
    cudaCheck(cudaStreamWaitEvent(tr->comm_stream, tr->ev_layer, 0));
    ncclCheck(ncclGroupStart());
    for (int i = first; i <= last; i++) {
        size_t n = (size_t)m->table.info[i].numel;
        if (tr->lowrank[i]) gpu_reduce(tr, tr->racc[i], (size_t)o->lay[i].snumel, n, tr->comm_stream);
        else gpu_reduce(tr, GX(m, i), n, n, tr->comm_stream);
    }
    ncclCheck(ncclGroupEnd());
}

// gpu_dist_init: the NCCL communicator (rank 0's id reaches the others through MPI, or the file
// or socket of --dist-init), the side stream, and NCCL scalar collectives where MPI is absent
static void gpu_dist_init(GpuTrainer* tr, Dist* d, const char* init) {
    tr->dist = d;
    if (!d->active) return;
    GpuLlama* m = tr->model;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (d->rank == 0) ncclCheck(ncclGetUniqueId(&id));
    dist_share(d, init, &id, sizeof id);
    ncclCheck(ncclCommInitRank(&tr->comm, d->world, id, d->rank));
    cudaCheck(cudaStreamCreateWithFlags(&tr->comm_stream, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&tr->ev_layer, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&tr->ev_comm, cudaEventDisableTiming));
    tr->lowrank = (int*)callocCheck((size_t)m->table.n, sizeof(int));
    tr->d_scalars = (double*)m->mem.ptr[GR_DP_SCALARS]; // a plan row (gpu_trainer_init)
    if (tr->d_scalars == NULL) die("internal: gpu_dist_init on a trainer built without this Dist (its plan has no NCCL scalars row)");
    if (!d->mpi) { d->ops_ctx = tr; d->sum_f64 = gpu_nccl_sum_f64; d->barrier = gpu_nccl_barrier; }
    if (!tr->per_layer) { m->grads_ready = gpu_dp_grads_ready; m->grads_ctx = tr; }
    m->norm_comm = tr->comm;
}

// the squared norms of k tensors (bf16), one sync: fixed-grid partials, added in order in double
static void gpu_sumsq_many(GpuTrainer* tr, const floatX* const* x, const size_t* n, int k, double* out, cudaStream_t s) {
    if (k > P_PER_LAYER) die("internal: %d tensors in one norm batch", k);
    for (int j = 0; j < k; j++) sumsq_partials(tr->d_part + (size_t)j * NORM_BLOCKS, x[j], n[j], s);
    cudaCheck(cudaMemcpyAsync(tr->h_part, tr->d_part, sizeof(double) * NORM_BLOCKS * k, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    for (int j = 0; j < k; j++) {
        double ss = 0.0;
        for (int b = 0; b < NORM_BLOCKS; b++) ss += tr->h_part[(size_t)j * NORM_BLOCKS + b];
        out[j] = ss;
    }
}

// the tensor an update of tensor i writes, on the update stream s: the fp32 masters (with the bf16
// copy *pb), for an INT8 tensor its fp32 update scratch, dequantized from the codes now (no bf16
// copy: *pb NULL; gpu_update_done requantizes it), else NULL: the bf16 weights *pb themselves. The
// update kernels take the fp32 path for a non-NULL target, whatever the moments' type.
static float* gpu_update_begin(GpuTrainer* tr, int i, floatX** pb, cudaStream_t s) {
    GpuLlama* m = tr->model;
    if (gpu_w8(m, i)) {
        *pb = NULL;
        weight8_dequant(tr->w8_upd, m->w8_codes[i], m->w8_scales[i], m->w8_zeros[i], (size_t)m->table.info[i].numel, m->w8_group, s);
        return tr->w8_upd;
    }
    *pb = PX(m, i);
    return m->master ? m->master_w + m->table.info[i].offset : NULL;
}
// after update t of tensor i: an INT8 tensor's scratch requantized with the stochastic rounding of
// (run seed, t, i) (the CPU's weight8_requantize); skip: the per-layer verdict leaves the codes alone
static void gpu_update_done(GpuTrainer* tr, int i, int64_t t, const int* skip, cudaStream_t s) {
    GpuLlama* m = tr->model;
    if (!gpu_w8(m, i)) return;
    weight8_requant(m->w8_codes[i], m->w8_scales[i], m->w8_zeros[i], tr->w8_upd, (size_t)m->table.info[i].numel, m->w8_group,
                    weight8_seed(tr->opt.cfg.seed, t, i), s, skip);
}

// ---- APOLLO ----
// gpu_apollo_update: one step of APOLLO matrix i from its full bf16 gradient g (times gscale): the
// CPU's apollo_update (galore.h has the math) on the update stream, with no host round trip: the
// factors and the limiter on the device (apollo_scale, the CPU's galore.h functions)
// skip: the per-layer device-side verdict (NULL: none), read by every kernel (a skipped update
// leaves the weights, the moments and the limiter's state alone)
static void gpu_apollo_update(GpuTrainer* tr, int i, const floatX* g, float lr, int64_t t, float gscale, uint32_t seed, int sr,
                              const int* skip = NULL) {
    GpuOptim* o = &tr->opt;
    const OptimConfig* c = &o->cfg;
    const TensorLayout* l = &o->lay[i];
    GaloreGpu* gl = &o->gl;
    cudaStream_t s = tr->us;
    size_t sn = (size_t)l->snumel;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    int first = !o->has_proj[i];
    if (first || galore_refresh_due(t, c->update_proj_gap)) {
        apollo_proj_fill(o->proj[i], (size_t)l->proj_numel, apollo_proj_seed(i, apollo_round(t, c->update_proj_gap)), apollo_proj_scale(l->r), s, skip);
        o->has_proj[i] = 1;
    }
    galore_gpu_project(gl, l, g, o->proj[i], gl->R, 1, gscale, 0.0f);
    double ds2 = 1.0; // D = ds Z for the 8-bit kind's kernel result Z: its norms scale by |ds|
    if (c->kind == OPTIM_APOLLO_ADAMW8BIT) {
        cudaCheck(cudaMemsetAsync(gl->N, 0, sizeof(float) * sn, s));
        if (l->state == STATE_8BIT)
            adam8bit_update_gpu<float, float>(gl->N, NULL, gl->R, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], sn, o->maps, b1, b2, eps, 1.0f, 0.0f, (int)t, 1.0f, 0, 0u, s, skip);
        else adam32_update_gpu<float, float>(gl->N, NULL, gl->R, (float*)o->m[i], (float*)o->v[i], sn, b1, b2, eps, 1.0f, 0.0f, (int)t, 1.0f, 0, 0u, s, skip);
        double ds = apollo_dir_scale(t, b1, b2);
        ds2 = ds * ds;
    } else if (o->mom_f32) {
        galore_hf_lowrank<float, float>(gl->N, gl->R, (float*)o->m[i], (float*)o->v[i], sn, b1, b2, eps, 0, seed, s, skip);
    } else {
        galore_hf_lowrank<floatX, float>(gl->N, gl->R, (floatX*)o->m[i], (floatX*)o->v[i], sn, b1, b2, eps, sr, seed, s, skip);
    }
    int tw = c->scale_type == APOLLO_SCALE_TENSOR, by_row = tw || l->side == SIDE_RIGHT;
    int64_t nG = by_row ? l->m : l->n, nR = by_row ? l->srows : l->scols;
    double* dsum = (double*)gl->A; // (nG + 2 nR) doubles, checked at init to fit
    channel_sumsq_gpu<floatX>(g, l->m, l->n, by_row, gscale, dsum, s);
    channel_sumsq_gpu<float>(gl->R, l->srows, l->scols, by_row, 1.0f, dsum + nG, s);
    channel_sumsq_gpu<float>(gl->N, l->srows, l->scols, by_row, 1.0f, dsum + nG + nR, s);
    int64_t nch = apollo_channels(l, c->scale_type);
    float* dsc = gl->N; // D is consumed (its sums are in dsum): the factors (nch <= snumel floats) take its place
    apollo_scale(dsc, dsum, nG, nR, nch, tw, ds2, o->lim[i], first, tr->d_lim, skip, s);
    float step_size = galore_hf_step_size(lr, b1, b2, t);
    float sq = sqrtf(c->apollo_scale), dec = -lr * c->weight_decay;
    int decay_on = c->weight_decay > 0.0f;
    floatX* pb;
    float* pm = gpu_update_begin(tr, i, &pb, s);
    if (pm) apollo_apply<float>(pm, pb, g, dsc, l, tw, tr->d_lim, sq, step_size, decay_on, dec, gscale, 0, seed, s, skip);
    else apollo_apply<floatX>(pb, NULL, g, dsc, l, tw, tr->d_lim, sq, step_size, decay_on, dec, gscale, sr, seed, s, skip);
    gpu_update_done(tr, i, t, skip, s);
}
// ---- end APOLLO ----

// gpu_optim_update: one step of tensor i (the CPU's optimizer_update). g (bf16) is its full gradient
// (g_lowrank 0), or for a GaLore tensor between refreshes its low-rank accumulator R (g_lowrank 1).
// t is the 1-based step; lr includes the schedule; gscale the clipping coefficient (whole-model).
// skip: the per-layer device-side verdict on this tensor (every kernel below reads it), NULL in
// whole-model mode, where the host decided before issuing the update.
static void gpu_optim_update(GpuTrainer* tr, int i, const floatX* g, int g_lowrank, float lr, int64_t t, float gscale,
                             const int* skip = NULL) {
    GpuLlama* m = tr->model;
    GpuOptim* o = &tr->opt;
    const OptimConfig* c = &o->cfg;
    const TensorLayout* l = &o->lay[i];
    const ParamInfo* p = &m->table.info[i];
    cudaStream_t s = tr->us; // the update stream (see GpuTrainer)
    size_t n = (size_t)p->numel;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    // the random stream of this (step, tensor): reproducible, so resume and the determinism test hold
    uint32_t seed = lm_hash32(tr->sr_seed ^ lm_hash32((uint32_t)t * 0x9E3779B9U + (uint32_t)i));
    int sr = m->master ? 0 : tr->sr;
    GaloreGpu* gl = &o->gl;
    if (optim_is_apollo(c->kind) && l->full_grad) {
        if (g_lowrank) die("internal: APOLLO tensor %d got a low-rank gradient", i);
        gpu_apollo_update(tr, i, g, lr, t, gscale, seed, sr, skip);
        return;
    }
    floatX* pb;
    float* pm = gpu_update_begin(tr, i, &pb, s); // the tensor updated: fp32 (masters, with the bf16 copy pb; INT8's scratch), or bf16 pb
    // GaLore tensors: the fused update (galore.cuh: Adam writes a bf16 N, one GEMM W = beta W +
    // alpha N P) wherever the weights are bf16 rounded to nearest; fp32 masters and stochastic
    // rounding take the unfused path (fp32 U, galore_apply), as does a test setting gl->unfused
    // (Fira's residual needs the fp32 U and the projector Pf: always unfused)
    int fused = l->side != SIDE_NONE && !pm && !sr && !gl->unfused && !optim_is_fira(c->kind);
    int first = !o->has_proj[i]; // the tensor's first update (Fira's limiter stores its first norm)
    floatX* Nb = (floatX*)gl->N; // the fused path's bf16 N (snumel), in gl->N's first half
    if (l->side != SIDE_NONE) {
        int due = !o->has_proj[i] || galore_refresh_due(t, c->update_proj_gap);
        if (!g_lowrank) {
            if (due) {
                galore_gpu_refresh(gl, l, g, gscale, o->proj[i], i, skip); // leaves the fp32 projector in gl->Pf
                o->has_proj[i] = 1;
                gpu_mem_sample();
            } else if (!fused) {
                galore_widen(gl->Pf, o->proj[i], (size_t)l->proj_numel, 1.0f, s);
            }
            galore_gpu_project(gl, l, g, o->proj[i], gl->R, 1, gscale, 0.0f);
        } else {
            if (due) die("internal: tensor %d got a low-rank gradient at a refresh step", i);
            if (!fused) galore_widen(gl->Pf, o->proj[i], (size_t)l->proj_numel, 1.0f, s);
            galore_widen(gl->R, g, (size_t)l->snumel, 1.0f, s);
        }
    }
    switch (optim_plain_kind(c->kind)) {
    case OPTIM_ADAMW:
    case OPTIM_ADAM: {
        // torch: step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) + eps (as the CPU)
        float step_size = (float)(lr / (1.0 - pow((double)b1, (double)t)));
        float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, (double)t)));
        float decay = c->kind == OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
        float l2 = c->kind == OPTIM_ADAM ? wd : 0.0f;
        if (pm && o->mom_f32)
            adam_update<float, float>(pm, pb, g, (float*)o->m[i], (float*)o->v[i], n, b1, b2, eps, step_size, inv_bc2, decay, l2, gscale, 0, seed, s,
                                      skip);
        else if (pm) // INT8: bf16 moments
            adam_update<float, floatX>(pm, pb, g, (floatX*)o->m[i], (floatX*)o->v[i], n, b1, b2, eps, step_size, inv_bc2, decay, l2, gscale, sr, seed,
                                       s, skip);
        else
            adam_update<floatX, floatX>(pb, NULL, g, (floatX*)o->m[i], (floatX*)o->v[i], n, b1, b2, eps, step_size, inv_bc2, decay, l2, gscale,
                                        sr, seed, s, skip);
        break;
    }
    case OPTIM_GALORE_ADAMW:
    case OPTIM_FIRA_ADAMW: {
        // HF AdamW: step_size = lr sqrt(1 - b2^t) / (1 - b1^t); eps is not bias-corrected; decay after
        float step_size = galore_hf_step_size(lr, b1, b2, t);
        int decay_on = wd > 0.0f;
        float dec = -lr * wd;
        if (l->side == SIDE_NONE) {
            if (pm && o->mom_f32) galore_hf_full<float, float>(pm, pb, g, (float*)o->m[i], (float*)o->v[i], n, b1, b2, eps, -step_size, decay_on, dec, gscale, 0, seed, s, skip);
            else if (pm) galore_hf_full<float, floatX>(pm, pb, g, (floatX*)o->m[i], (floatX*)o->v[i], n, b1, b2, eps, -step_size, decay_on, dec, gscale, sr, seed, s, skip);
            else galore_hf_full<floatX, floatX>(pb, NULL, g, (floatX*)o->m[i], (floatX*)o->v[i], n, b1, b2, eps, -step_size, decay_on, dec, gscale, sr, seed, s, skip);
        } else if (fused) {
            float alpha, beta;
            galore_fused_coefs(0, step_size, c->scale, lr, wd, &alpha, &beta);
            if (o->mom_f32) galore_hf_lowrank<float>(Nb, gl->R, (float*)o->m[i], (float*)o->v[i], (size_t)l->snumel, b1, b2, eps, 0, seed, s, skip);
            else galore_hf_lowrank<floatX>(Nb, gl->R, (floatX*)o->m[i], (floatX*)o->v[i], (size_t)l->snumel, b1, b2, eps, 0, seed, s, skip);
            galore_gpu_update_fused(&tr->mm_upd, l, pb, Nb, o->proj[i], alpha, beta, skip, tr->d_ab, s);
        } else {
            if (o->mom_f32) galore_hf_lowrank<float>(gl->N, gl->R, (float*)o->m[i], (float*)o->v[i], (size_t)l->snumel, b1, b2, eps, 0, seed, s, skip);
            else galore_hf_lowrank<floatX>(gl->N, gl->R, (floatX*)o->m[i], (floatX*)o->v[i], (size_t)l->snumel, b1, b2, eps, sr, seed, s, skip);
            // Fira: A = S, the residual (g is the full gradient: full_grad), then A += alpha back(N)
            int fira = optim_is_fira(c->kind);
            if (fira) fira_gpu_residual(gl, l, g, gscale, c->scale, o->lim[i], first, tr->d_part, tr->d_lim, skip);
            galore_gpu_project_back(gl, l, gl->N, gl->Pf, gl->A, c->scale, fira ? 1.0f : 0.0f);
            if (pm) galore_apply<float>(pm, pb, gl->A, n, -step_size, decay_on, dec, 0, seed, s, skip);
            else galore_apply<floatX>(pb, NULL, gl->A, n, -step_size, decay_on, dec, sr, seed, s, skip);
        }
        break;
    }
    case OPTIM_ADAM8BIT:
    case OPTIM_GALORE_ADAMW8BIT: {
        if (l->side == SIDE_NONE) {
            // plain bitsandbytes Adam: decoupled decay inside the kernel
            if (l->state == STATE_8BIT) {
                if (pm) adam8bit_update_gpu<float, floatX>(pm, pb, g, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], n, o->maps, b1, b2, eps, lr, wd, (int)t, gscale, 0, seed, s, skip);
                else adam8bit_update_gpu<floatX, floatX>(pb, NULL, g, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], n, o->maps, b1, b2, eps, lr, wd, (int)t, gscale, sr, seed, s, skip);
            } else {
                if (pm) adam32_update_gpu<float, floatX>(pm, pb, g, (float*)o->m[i], (float*)o->v[i], n, b1, b2, eps, lr, wd, (int)t, gscale, 0, seed, s, skip);
                else adam32_update_gpu<floatX, floatX>(pb, NULL, g, (float*)o->m[i], (float*)o->v[i], n, b1, b2, eps, lr, wd, (int)t, gscale, sr, seed, s, skip);
            }
        } else if (fused) {
            // the kernel's result on the zero parameter, written to Nb directly (no memset)
            size_t sn = (size_t)l->snumel;
            float alpha, beta;
            galore_fused_coefs(1, 0.0f, c->scale, lr, wd, &alpha, &beta);
            if (l->state == STATE_8BIT)
                adam8bit_lowrank_gpu<floatX>(Nb, gl->R, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], sn, o->maps, b1, b2, eps, lr, (int)t, s, skip);
            else adam32_lowrank_gpu<floatX>(Nb, gl->R, (float*)o->m[i], (float*)o->v[i], sn, b1, b2, eps, lr, (int)t, s, skip);
            galore_gpu_update_fused(&tr->mm_upd, l, pb, Nb, o->proj[i], alpha, beta, skip, tr->d_ab, s);
        } else {
            // galore-torch: the kernel runs on R with a zero "parameter" (decay off); its result is
            // the low-rank update, projected back, scaled, added; then the decay. The 8-bit Fira
            // runs it at the unit lr (galore.h: its result is the direction N, in gl->N as
            // fira_gpu_residual reads it), then fira_adamw's residual and HF step size (the CPU's)
            int fira = optim_is_fira(c->kind);
            float klr = fira ? fira8_unit_lr(b1, b2, t) : lr;
            float* Z = gl->N;
            size_t sn = (size_t)l->snumel;
            cudaCheck(cudaMemsetAsync(Z, 0, sizeof(float) * sn, s));
            if (l->state == STATE_8BIT)
                adam8bit_update_gpu<float, float>(Z, NULL, gl->R, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], sn, o->maps, b1, b2, eps, klr, 0.0f, (int)t, 1.0f, 0, 0u, s, skip);
            else adam32_update_gpu<float, float>(Z, NULL, gl->R, (float*)o->m[i], (float*)o->v[i], sn, b1, b2, eps, klr, 0.0f, (int)t, 1.0f, 0, 0u, s, skip);
            if (fira) fira_gpu_residual(gl, l, g, gscale, c->scale, o->lim[i], first, tr->d_part, tr->d_lim, skip);
            galore_gpu_project_back(gl, l, Z, gl->Pf, gl->A, c->scale, fira ? 1.0f : 0.0f);
            float neg_step = fira ? -galore_hf_step_size(lr, b1, b2, t) : 1.0f;
            if (pm) galore_apply<float>(pm, pb, gl->A, n, neg_step, wd > 0.0f, -lr * wd, 0, seed, s, skip);
            else galore_apply<floatX>(pb, NULL, gl->A, n, neg_step, wd > 0.0f, -lr * wd, sr, seed, s, skip);
        }
        break;
    }
    default: die("internal: optimizer kind %d", c->kind);
    }
    gpu_update_done(tr, i, t, skip, s);
}

// the per-layer hook (layerhook.h, the CPU's too) on the GPU: all of its work runs on the update
// stream us, after the gradients (ev_grad, begin); the NaN check runs there too (gpu_hook_check),
// so the host enqueues a group and returns to backward at once, never waiting for the device
// within a step; backward waits for ev_slot before it writes the shared slots again
// (matmul_backward's dw_wait, gpu_slot_wait).
static floatX* gpu_hook_src(GpuTrainer* tr, int i, int src, size_t* len) {
    *len = src == SRC_LOWRANK ? (size_t)tr->opt.lay[i].snumel : (size_t)tr->model->table.info[i].numel;
    return src == SRC_LOWRANK ? tr->racc[i] : src == SRC_ACC ? tr->acc[i] : GX(tr->model, i);
}
static void gpu_hook_begin(void* ctx) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    cudaCheck(cudaEventRecord(tr->ev_grad, tr->model->stream));
    cudaCheck(cudaStreamWaitEvent(tr->us, tr->ev_grad, 0));
}
static int gpu_hook_lowrank(void* ctx, int i, int64_t t) { return gpu_trainer_lowrank((GpuTrainer*)ctx, i, t); }
static void gpu_hook_project(void* ctx, int i, float beta) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    GpuOptim* o = &tr->opt;
    galore_gpu_project(&o->gl, &o->lay[i], GX(tr->model, i), o->proj[i], tr->racc[i], 0, 1.0f, beta);
}
static void gpu_hook_accumulate(void* ctx, int i, int first_micro) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    size_t n = (size_t)tr->model->table.info[i].numel;
    const floatX* g = GX(tr->model, i);
    // a refresh step of a GaLore tensor: its full accumulator for this step only (the plan's
    // transient row), stream-ordered on us, the only stream that touches it, so neither this nor
    // its release waits on the host
    if (tr->acc[i] == NULL) cudaCheck(cudaMallocAsync((void**)&tr->acc[i], sizeof(floatX) * n, tr->us));
    if (first_micro) cudaCheck(cudaMemcpyAsync(tr->acc[i], g, sizeof(floatX) * n, cudaMemcpyDeviceToDevice, tr->us));
    else galore_accumulate(tr->acc[i], g, n, tr->us);
}
static void gpu_hook_reduce(void* ctx, const int* idx, const int* src, int k) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    ncclCheck(ncclGroupStart());
    for (int j = 0; j < k; j++) {
        size_t len;
        floatX* x = gpu_hook_src(tr, idx[j], src[j], &len);
        gpu_reduce(tr, x, len, (size_t)tr->model->table.info[idx[j]].numel, tr->us);
    }
    ncclCheck(ncclGroupEnd());
}
// the group's check on the device: each tensor's squared norm from its fixed-grid partials, added in
// order in double as gpu_sumsq_many does on the host, through layer_hook_check (the CPU's code) into
// the step's device flags; skip[idx[j]] the verdict the update kernels read. One thread: k <= 9
// tensors of NORM_BLOCKS partials each.
typedef struct { int idx[P_PER_LAYER]; int k; } HookGroup;
__global__ void hook_check_kernel(LayerHookFlags* f, int* skip, const double* part, HookGroup g) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int j = 0; j < g.k; j++) {
        double ss = 0.0;
        for (int b = 0; b < NORM_BLOCKS; b++) ss += part[(size_t)j * NORM_BLOCKS + b];
        skip[g.idx[j]] = !layer_hook_check(f, ss);
    }
}
static void gpu_hook_check(void* ctx, const int* idx, const int* src, int k, LayerHookFlags* f, int* go) {
    (void)f; // the device keeps the step's flags (merged at the end of the step, gpu_hook_end_step)
    GpuTrainer* tr = (GpuTrainer*)ctx;
    if (k > P_PER_LAYER) die("internal: %d tensors in one norm batch", k);
    HookGroup g;
    memset(&g, 0, sizeof g);
    g.k = k;
    for (int j = 0; j < k; j++) {
        size_t n;
        const floatX* x = gpu_hook_src(tr, idx[j], src[j], &n);
        sumsq_partials(tr->d_part + (size_t)j * NORM_BLOCKS, x, n, tr->us);
        g.idx[j] = idx[j];
        go[j] = 1; // issued; the kernels read d_skip[idx[j]]
    }
    hook_check_kernel<<<1, 32, 0, tr->us>>>(tr->d_flags, tr->d_skip, tr->d_part, g);
    cudaCheckLaunch();
}
static void gpu_hook_update(void* ctx, int i, int src, float lr, int64_t t) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    GpuOptim* o = &tr->opt;
    GaloreGpu* gl = &o->gl;
    size_t len;
    const floatX* g = gpu_hook_src(tr, i, src, &len);
    GpuUpdateUndo* u = &tr->undo[i];
    u->issued = 1; u->had_proj = o->has_proj[i];
    int64_t r0 = gl->refreshes, j0 = gl->n_gesvdj, s0 = gl->n_gesvd, z0 = gl->n_randomized;
    gpu_optim_update(tr, i, g, src == SRC_LOWRANK, lr, t, 1.0f, tr->d_skip + i);
    u->refreshes = gl->refreshes - r0; u->n_gesvdj = gl->n_gesvdj - j0; u->n_gesvd = gl->n_gesvd - s0; u->n_randomized = gl->n_randomized - z0;
}
// the end of a per-layer step, after the host has synchronized with the update stream: the device's
// flags (read into h_flags after the step's last update) merged into the step's, and what the host
// counted for the updates the device skipped undone
static void gpu_hook_end_step(GpuTrainer* tr) {
    GpuOptim* o = &tr->opt;
    GaloreGpu* gl = &o->gl;
    LayerHookFlags dev;
    memcpy(&dev, tr->h_flags, sizeof dev);
    const int* skip = (const int*)(tr->h_flags + GPU_FLAGS_SKIP);
    layer_hook_merge(&tr->st.f, &dev);
    for (int i = 0; i < tr->model->table.n; i++) {
        const GpuUpdateUndo* u = &tr->undo[i];
        if (!u->issued || !skip[i]) continue;
        o->has_proj[i] = u->had_proj;
        gl->refreshes -= u->refreshes; gl->n_gesvdj -= u->n_gesvdj; gl->n_gesvd -= u->n_gesvd; gl->n_randomized -= u->n_randomized;
    }
}
static void gpu_hook_release(void* ctx, int i) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    if (!tr->acc || !tr->acc[i] || !layout_lowrank_accum(&tr->opt.lay[i])) return;
    gpu_mem_sample();
    cudaCheck(cudaFreeAsync(tr->acc[i], tr->us)); // after the update enqueued before it on us
    tr->acc[i] = NULL;
}
static void gpu_hook_zero_slots(void* ctx, int first, int last) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    GpuLlama* m = tr->model;
    size_t start = m->goff[first], end = m->goff[last] + (size_t)m->table.info[last].numel;
    cudaCheck(cudaMemsetAsync(m->grads + start, 0, sizeof(floatX) * (end - start), tr->us));
    cudaCheck(cudaEventRecord(tr->ev_slot, tr->us));
}
static void gpu_trainer_grads_ready(void* ctx, int first, int last) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    layer_hook_run(&tr->hook, &tr->st, first, last);
}

// dist: the data-parallel ranks (NULL: one process); gpu_dist_init then makes the communicator
static void gpu_trainer_init(GpuTrainer* tr, GpuLlama* m, const OptimConfig* oc, int per_layer, int grad_accum, float grad_clip, int sr,
                             uint64_t seed, int verbose, Dist* dist = NULL) {
    memset(tr, 0, sizeof *tr);
    tr->model = m;
    tr->cfg = *oc;
    tr->grad_accum = grad_accum;
    tr->grad_clip = per_layer ? 0.0f : grad_clip; // per-layer: no global norm before the updates
    tr->per_layer = per_layer;
    tr->sr = sr;
    tr->sr_seed = lm_hash32((uint32_t)seed ^ lm_hash32((uint32_t)(seed >> 32) ^ 0x5bd1e995U));
    tr->dist = dist ? dist : dist_single();
    // the whole plan: the model's rows (allocated by gpu_build; only the gradient row may change
    // size, with the update mode) and the trainer's, which are allocated here
    GpuMem* gm = &m->mem;
    GpuPlanArgs pa;
    memset(&pa, 0, sizeof pa);
    pa.c = &m->config; pa.oc = oc; pa.B = m->B; pa.T = m->T; pa.master = m->master; pa.per_layer = per_layer;
    pa.grad_accum = grad_accum; pa.recompute = m->recompute; pa.cudnn = m->attn.use_cudnn; pa.dp = tr->dist->active;
    pa.w8_group = m->w8_group; pa.w8_embed = m->w8_embed;
    if (oc->w8_group != m->w8_group || (oc->w8_group > 0 && oc->w8_embed != m->w8_embed))
        die("internal: the optimizer's INT8 settings (group %d, embed %d) differ from the model's (%d, %d)", oc->w8_group, oc->w8_embed, m->w8_group, m->w8_embed);
    gpu_memplan_build(&gm->plan, &pa);
    for (int i = 0; i < GR_NUM; i++)
        if (i != GR_GRADS && gm->got[i] && gm->got[i] != (size_t)gm->plan.items[i].bytes)
            die("internal: memory plan row \"%s\": %.0f bytes planned, %zu allocated", gm->plan.items[i].name, gm->plan.items[i].bytes, gm->got[i]);
    gpu_set_grad_mode(m, per_layer);
    for (int r = 0; r < GPU_ROW_RANGES; r++) gpu_alloc_rows(gm, GPU_TRAINER_ROWS[r][0], GPU_TRAINER_ROWS[r][1]);
    cudaCheck(cudaStreamCreate(&tr->us));
    matmul_ctx_init(&tr->mm_upd, tr->us);
    cudaCheck(cudaEventCreateWithFlags(&tr->ev_grad, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&tr->ev_slot, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&tr->ev_upd, cudaEventDisableTiming));
    // recorded once now, so the first backward's wait on it (gpu_slot_wait, matmul_backward's
    // dw_wait), before any update recorded it, orders against something: CUDA makes a wait on an
    // event never recorded a silent no-op, the shape of a missing record (the emulation stops there)
    cudaCheck(cudaEventRecord(tr->ev_slot, tr->us));
    // per-layer: backward waits for the last group's update before it writes the slots again
    m->mm.dw_wait = tr->ev_slot;
    m->mm.has_dw_wait = per_layer;
    gpu_optim_init(&tr->opt, m, oc, tr->mm_upd.blas, tr->us, 0);
    tr->w8_upd = (float*)gm->ptr[GR_W8_UPD];
    tr->d_part = (double*)gm->ptr[GR_PART];
    tr->h_part = (double*)mallocCheck(sizeof(double) * NORM_BLOCKS * P_PER_LAYER);
    static_assert(sizeof(LayerHookFlags) <= GPU_FLAGS_AB && GPU_FLAGS_AB + 2 * sizeof(float) <= GPU_FLAGS_LIM &&
                  GPU_FLAGS_LIM + sizeof(float) <= GPU_FLAGS_SKIP, "memplan.h's step-flags layout");
    tr->flags_bytes = (size_t)gpu_step_flags_bytes(m->table.n);
    tr->d_flags = (LayerHookFlags*)gm->ptr[GR_STEP_FLAGS];
    tr->d_ab = (float*)((char*)gm->ptr[GR_STEP_FLAGS] + GPU_FLAGS_AB);
    tr->d_lim = (float*)((char*)gm->ptr[GR_STEP_FLAGS] + GPU_FLAGS_LIM);
    tr->d_skip = (int*)((char*)gm->ptr[GR_STEP_FLAGS] + GPU_FLAGS_SKIP);
    cudaCheck(cudaMallocHost((void**)&tr->h_flags, tr->flags_bytes)); // pinned: the once-a-step copy is asynchronous
    tr->undo = (GpuUpdateUndo*)callocCheck((size_t)m->table.n, sizeof(GpuUpdateUndo));
    if (per_layer) {
        m->grads_ready = gpu_trainer_grads_ready;
        m->grads_ctx = tr;
        LayerHookOps h = {tr, gpu_hook_begin, gpu_hook_lowrank, gpu_hook_project, gpu_hook_accumulate, gpu_hook_reduce, gpu_hook_check,
                          gpu_hook_update, gpu_hook_release, gpu_hook_zero_slots};
        tr->hook = h;
    }
    // accumulators (the plan's rows, carved by the same accum_layout): full ones for per-layer
    // accumulation, low-rank ones for it and for data parallel
    int need_full = per_layer && grad_accum > 1, need_low = need_full || tr->dist->active;
    if (need_full) {
        // the refresh-step accumulators are stream-ordered allocations (cudaMallocAsync on us)
        int dev = 0, pools = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev));
        if (!pools) die("--per-layer 1 --grad-accum %d: this device/driver has no stream-ordered memory pools (cudaMallocAsync); use --grad-accum 1", grad_accum);
        // the pool keeps what they take (the plan's refresh-step row: every GaLore matrix at step 1)
        // between refresh steps: with the default release threshold 0 it returns freed memory to
        // the OS at every synchronisation, and a refresh step synchronises the update stream at
        // each SVD (galore_gpu_info), so every refresh step mapped it all again (issue 22)
        cudaMemPool_t pool;
        uint64_t keep = (uint64_t)gm->plan.items[GR_ACC_REFRESH].bytes;
        cudaCheck(cudaDeviceGetDefaultMemPool(&pool, dev));
        cudaCheck(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
        if (verbose) printf("memory pool: release threshold %.4f GiB (the refresh-step accumulators stay reserved from the first step on)\n", keep / GIB);
    }
    if (need_full || need_low) {
        int n = m->table.n;
        int64_t* off = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)n);
        size_t nfull, nlow;
        accum_layout(&m->table, tr->opt.lay, need_full, off, off + n, &nfull, &nlow);
        gpu_plan_expect(gm, GR_ACC_FULL, need_full ? (double)(sizeof(floatX) * nfull) : 0.0);
        gpu_plan_expect(gm, GR_ACC_LOW, (double)(sizeof(floatX) * nlow));
        tr->acc = (floatX**)callocCheck((size_t)n, sizeof(floatX*));
        tr->racc = (floatX**)callocCheck((size_t)n, sizeof(floatX*));
        tr->acc_mem = (floatX*)gm->ptr[GR_ACC_FULL];
        tr->racc_mem = (floatX*)gm->ptr[GR_ACC_LOW];
        for (int i = 0; i < n; i++) {
            if (off[i] >= 0) tr->acc[i] = tr->acc_mem + off[i];
            if (off[n + i] >= 0) tr->racc[i] = tr->racc_mem + off[n + i];
        }
        free(off);
    }
    // the libraries' rows: what they allocated, against the plan; the queried rows filled in
    const GaloreGpu* gl = &tr->opt.gl;
    gpu_plan_expect(gm, GR_QMAPS, tr->opt.maps ? 512.0 * sizeof(float) : 0.0);
    gpu_plan_expect(gm, GR_GL_A, 4.0 * gl->max_full);
    gpu_plan_expect(gm, GR_GL_UV, gl->svd ? 8.0 * gl->max_full : 0.0);
    gpu_plan_expect(gm, GR_GL_S, gl->svd ? 4.0 * gl->max_k : 0.0);
    gpu_plan_expect(gm, GR_GL_RN, 8.0 * gl->max_s);
    gpu_plan_expect(gm, GR_GL_INFO, gl->svd ? 4.0 : 0.0);
    gpu_plan_expect(gm, GR_LT_WS, (double)m->mm.workspace_bytes);
    gpu_plan_expect(gm, GR_LT_WS_UPD, (double)tr->mm_upd.workspace_bytes);
    if (gl->svd) memplan_fill(&gm->plan, GR_SOLVER_WS, 4.0 * (gl->lwork > 0 ? gl->lwork : 1));
    memplan_fill(&gm->plan, GR_ATTN_WS, (double)attention_workspace_bytes(&m->attn));
    for (int i = 0; i < GR_NUM; i++) {
        const MemItem* it = &gm->plan.items[i];
        if (!(it->flags & (MEM_LIBRARY | MEM_TRANSIENT)) && it->bytes > 0 && gm->got[i] != (size_t)it->bytes)
            die("internal: memory plan row \"%s\": %.0f bytes planned, %zu allocated", it->name, it->bytes, gm->got[i]);
    }
    if (verbose) memplan_print(&gm->plan, "the buffers allocated (queried rows: the device's sizes)", 0.0);
}

static void gpu_trainer_free(GpuTrainer* tr) {
    // the low-rank accumulators were allocated in the update stream's order: they go back in it,
    // BEFORE that stream is destroyed (freeing them after it was an invalid-handle error at the end
    // of every data-parallel and per-layer + accumulation run, and read tr->opt.lay after
    // gpu_optim_free had freed it)
    if (tr->acc) {
        for (int i = 0; i < tr->model->table.n; i++)
            if (tr->acc[i] && layout_lowrank_accum(&tr->opt.lay[i])) cudaCheck(cudaFreeAsync(tr->acc[i], tr->us));
        free(tr->acc); free(tr->racc);
    }
    cudaCheck(cudaStreamSynchronize(tr->us));
    gpu_optim_free(&tr->opt);
    tr->model->mm.has_dw_wait = 0;
    cudaCheck(cudaEventDestroy(tr->ev_grad)); cudaCheck(cudaEventDestroy(tr->ev_slot)); cudaCheck(cudaEventDestroy(tr->ev_upd));
    matmul_ctx_free(&tr->mm_upd);
    cudaCheck(cudaStreamDestroy(tr->us));
    free(tr->h_part);
    cudaCheck(cudaFreeHost(tr->h_flags));
    free(tr->undo);
    if (tr->dist->active) {
        tr->model->norm_comm = NULL;
        ncclCheck(ncclCommDestroy(tr->comm));
        cudaCheck(cudaStreamDestroy(tr->comm_stream));
        cudaCheck(cudaEventDestroy(tr->ev_layer)); cudaCheck(cudaEventDestroy(tr->ev_comm));
        free(tr->lowrank);
    }
    // the trainer's rows of the plan (gpu_trainer_init); the model's go with gpu_free
    GpuMem* gm = &tr->model->mem;
    for (int r = 0; r < GPU_ROW_RANGES; r++) gpu_free_rows(gm, GPU_TRAINER_ROWS[r][0], GPU_TRAINER_ROWS[r][1]);
    tr->model->grads_ready = NULL;
}

// gpu_train_step: one optimizer step over grad_accum micro-batches, as the CPU's train_step (data
// parallel included). Returns the mean loss; *norm the gradient norm before clipping.
static float gpu_train_step(GpuTrainer* tr, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped,
                            int64_t* n_targets) {
    GpuLlama* m = tr->model;
    int dp = tr->dist->active;
    LayerHookStep* st = &tr->st;
    memset(st, 0, sizeof *st);
    st->grad_accum = tr->grad_accum; st->dp = dp; st->lr = lr; st->t = tr->t + 1;
    tr->comm_bytes = 0.0; tr->comm_full = 0.0;
    if (!tr->per_layer) gpu_zero_grad(m);
    else {
        // the device's flags start the step clear, after the last step's updates (us is in order)
        cudaCheck(cudaMemsetAsync(tr->d_flags, 0, tr->flags_bytes, tr->us));
        memset(tr->undo, 0, sizeof(GpuUpdateUndo) * (size_t)m->table.n);
    }
    double loss_sum = 0.0;
    *n_targets = 0;
    for (int micro = 0; micro < tr->grad_accum; micro++) {
        st->micro = micro;
        dataloader_next_batch(dl, inputs, targets);
        // data parallel: gpu_forward divides the loss gradient by the targets of every rank (norm_comm)
        gpu_forward(m, inputs, targets, dl->B, dl->T, 1.0f / tr->grad_accum);
        int64_t n_all;
        double mean = dist_mean_loss(tr->dist, m->mean_loss, m->n_valid, &n_all);
        loss_sum += mean;
        *n_targets += n_all;
        if (!isfinite(mean)) st->f.bad = 1;
        // per-layer mode updates inside backward: a bad loss must stop it before it starts. Data
        // parallel whole-model: the backward's hooks all-reduce, so every rank runs it.
        if (st->f.bad && tr->per_layer) continue;
        gpu_backward(m, inputs, dl->B, dl->T);
    }
    if (!tr->per_layer) {
        double ss_low = 0.0;
        if (dp) {
            // the last layer's all-reduce is queued on comm_stream: the updates wait for it
            cudaCheck(cudaEventRecord(tr->ev_comm, tr->comm_stream));
            cudaCheck(cudaStreamWaitEvent(m->stream, tr->ev_comm, 0));
            for (int i0 = 0; i0 < m->table.n; i0 += P_PER_LAYER) {
                const floatX* xs[P_PER_LAYER];
                size_t ns[P_PER_LAYER];
                double q[P_PER_LAYER];
                int k = 0;
                for (int i = i0; i < m->table.n && i < i0 + P_PER_LAYER; i++)
                    if (tr->lowrank[i]) { xs[k] = tr->racc[i]; ns[k] = (size_t)tr->opt.lay[i].snumel; k++; }
                if (k == 0) continue;
                gpu_sumsq_many(tr, xs, ns, k, q, m->stream);
                for (int j = 0; j < k; j++) ss_low += q[j];
            }
        }
        *norm = (float)sqrt(gpu_grad_sumsq(m) + ss_low); // low-rank tensors' full slots were zeroed
        if (!isfinite(*norm)) st->f.bad = 1;
        if (!st->f.bad) {
            // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1
            float gscale = 1.0f;
            if (tr->grad_clip > 0.0f) {
                float coef = tr->grad_clip / (*norm + 1e-6f);
                if (coef < 1.0f) gscale = coef;
            }
            // the updates run on the update stream, after everything backward and the norm did
            cudaCheck(cudaEventRecord(tr->ev_grad, m->stream));
            cudaCheck(cudaStreamWaitEvent(tr->us, tr->ev_grad, 0));
            for (int i = 0; i < m->table.n; i++) {
                int lr_i = dp && tr->lowrank[i];
                gpu_optim_update(tr, i, lr_i ? tr->racc[i] : GX(m, i), lr_i, lr, tr->t + 1, gscale);
            }
            st->f.updated = 1;
        }
    }
    // per-layer: the device's verdict of the step, after its last update: the host's one look
    if (tr->per_layer) cudaCheck(cudaMemcpyAsync(tr->h_flags, tr->d_flags, tr->flags_bytes, cudaMemcpyDeviceToHost, tr->us));
    // the next forward reads the updated weights: the main stream waits for the update stream
    cudaCheck(cudaEventRecord(tr->ev_upd, tr->us));
    cudaCheck(cudaStreamWaitEvent(m->stream, tr->ev_upd, 0));
    cudaCheck(cudaStreamSynchronize(m->stream));
    if (tr->per_layer) {
        gpu_hook_end_step(tr);
        *norm = st->f.bad ? NAN : (float)sqrt(st->f.sumsq);
        gpu_zero_grad(m); // a skipped step can leave a group's gradient in the slots (the next step's work is after it on this stream)
        layer_hook_end_step(&tr->hook, st, m->table.n); // the refresh-step accumulators of a skipped step
    }
    gpu_mem_sample();
    if (st->f.updated) tr->t++;
    *skipped = st->f.bad;
    return (float)(loss_sum / tr->grad_accum);
}

// ----------------------------------------------------------------------------
// evaluation and sampling

static float gpu_forward_loss(GpuLlama* m, const int* inputs, const int* targets, int B, int T, int* n_valid) {
    gpu_forward(m, inputs, targets, B, T, 0.0f);
    *n_valid = m->n_valid;
    return m->mean_loss;
}

// the logits of the token after tokens[0..n), as the CPU's next_logits (run.h samples from them).
// The attention plan has one shape, so this runs the full (B, T) forward with the prefix in row 0
// and zeros after it: causal attention keeps position n-1 independent of the padding.
static void gpu_next_logits(GpuLlama* m, const int* tokens, int n, float* logits) {
    int V = m->config.V, BT = m->B * m->T;
    int* in = (int*)callocCheck((size_t)BT, sizeof(int));
    uint16_t* row = (uint16_t*)mallocCheck(sizeof(uint16_t) * (size_t)V);
    memcpy(in, tokens, sizeof(int) * (size_t)n);
    gpu_forward(m, in, NULL, m->B, m->T, 0.0f);
    cudaCheck(cudaMemcpy(row, m->acts.logits + (size_t)(n - 1) * V, sizeof(uint16_t) * (size_t)V, cudaMemcpyDeviceToHost));
    for (int j = 0; j < V; j++) logits[j] = f32_from_bf16(row[j]);
    free(in); free(row);
}

// ----------------------------------------------------------------------------
// the GPU engine for run.h. Checkpoints use the CPU program's format and entries, so either
// engine can resume the other's: F32 weights (the masters, or the bf16 weights exactly), and the
// optimizer state of tensor_layout under the CPU's names: has_proj, then per tensor m.%d / v.%d
// (fp32; bf16 moments widen exactly and narrow back exactly) or qm.%d / qv.%d / absmax_m.%d /
// absmax_v.%d, and proj.%d (fp32; the bf16 projectors widen exactly). Staged through the host.

typedef struct {
    GpuTrainer* tr;
    // host staging for state.bin, only while saving or resuming: per tensor, as the CPU's Optimizer
    float* hf; uint8_t* hq;            // the allocations
    float** hm; float** hv; float** ham; float** hav; float** hp; float** hlim; uint8_t** hqm; uint8_t** hqv; // (n) each
    int* has_proj;
    Weight8 w8;                        // --weights int8: the codes, scales, zeros (weight8_state_entries, the CPU's names)
    double peak_tflops;
    double flops_tok;
    double plan_total;                 // bytes: the plan of this run (memplan.h, the queried rows filled in)
    double mem_start_mib;              // used before our first allocation (the CUDA context, other processes)
    double mem_alloc_mib;              // used after every buffer was allocated
} GpuRun;

static void gpu_stage_alloc(GpuRun* g) {
    if (g->hf) return;
    GpuOptim* o = &g->tr->opt;
    GpuLlama* m = g->tr->model;
    weight8_init(&g->w8, &m->table, m->w8_group, m->w8_embed);
    size_t nf = 0, nq = 0;
    for (int i = 0; i < o->n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (l->state == STATE_8BIT) { nq += 2 * (size_t)l->snumel; nf += 2 * (size_t)l->nblocks; }
        else nf += 2 * (size_t)l->snumel;
        nf += (size_t)l->proj_numel + (size_t)l->limiter;
    }
    g->hf = (float*)mallocCheck(sizeof(float) * (nf > 0 ? nf : 1));
    g->hq = (uint8_t*)mallocCheck(nq > 0 ? nq : 1);
    size_t ptrs = sizeof(void*) * (size_t)o->n;
    g->hm = (float**)callocCheck(1, ptrs); g->hv = (float**)callocCheck(1, ptrs);
    g->ham = (float**)callocCheck(1, ptrs); g->hav = (float**)callocCheck(1, ptrs);
    g->hp = (float**)callocCheck(1, ptrs); g->hlim = (float**)callocCheck(1, ptrs);
    g->hqm = (uint8_t**)callocCheck(1, ptrs); g->hqv = (uint8_t**)callocCheck(1, ptrs);
    g->has_proj = (int*)callocCheck((size_t)o->n, sizeof(int));
    float* f = g->hf;
    uint8_t* q = g->hq;
    for (int i = 0; i < o->n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (l->state == STATE_8BIT) {
            g->hqm[i] = q; q += l->snumel; g->hqv[i] = q; q += l->snumel;
            g->ham[i] = f; f += l->nblocks; g->hav[i] = f; f += l->nblocks;
        } else {
            g->hm[i] = f; f += l->snumel; g->hv[i] = f; f += l->snumel;
        }
        if (l->proj_numel) { g->hp[i] = f; f += l->proj_numel; }
        if (l->limiter) { g->hlim[i] = f; f += l->limiter; }
    }
}

static int gpu_state_entries(void* ctx, StateEntry* e, int cap) {
    GpuRun* g = (GpuRun*)ctx;
    GpuOptim* o = &g->tr->opt;
    gpu_stage_alloc(g);
    int n = optimizer_state_entries(e, cap, o->n, o->lay, g->has_proj, g->hm, g->hv, g->hqm, g->hqv, g->ham, g->hav, g->hp, g->hlim);
    return n + weight8_state_entries(e + n, cap - n, &g->w8);
}

static void gpu_state_before_save(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    GpuOptim* o = &g->tr->opt;
    gpu_stage_alloc(g);
    cudaCheck(cudaStreamSynchronize(g->tr->model->stream));
    memcpy(g->has_proj, o->has_proj, sizeof(int) * o->n);
    if (g->w8.G > 0) gpu_w8_download(g->tr->model, &g->w8);
    for (int i = 0; i < o->n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (l->state == STATE_8BIT) {
            cudaCheck(cudaMemcpy(g->hqm[i], o->qm[i], (size_t)l->snumel, cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(g->hqv[i], o->qv[i], (size_t)l->snumel, cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(g->ham[i], o->absmax_m[i], sizeof(float) * l->nblocks, cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(g->hav[i], o->absmax_v[i], sizeof(float) * l->nblocks, cudaMemcpyDeviceToHost));
        } else {
            download_f32(g->hm[i], o->m[i], (size_t)l->snumel, o->mom_f32);
            download_f32(g->hv[i], o->v[i], (size_t)l->snumel, o->mom_f32);
        }
        if (l->proj_numel) download_f32(g->hp[i], o->proj[i], (size_t)l->proj_numel, 0);
        if (l->limiter) cudaCheck(cudaMemcpy(g->hlim[i], o->lim[i], sizeof(float) * l->limiter, cudaMemcpyDeviceToHost));
    }
}

static void gpu_state_after_load(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    GpuOptim* o = &g->tr->opt;
    if (g->w8.G > 0) gpu_w8_upload(g->tr->model, &g->w8); // the weights themselves (gpu_params_from_host keeps them)
    for (int i = 0; i < o->n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (g->has_proj[i] != 0 && g->has_proj[i] != 1) die("checkpoint: has_proj[%d] = %d; hint: a damaged state.bin", i, g->has_proj[i]);
        if (g->has_proj[i] && l->side == SIDE_NONE) die("checkpoint: tensor %d has a projector, which this optimizer does not keep; resume with the saved --optimizer", i);
        o->has_proj[i] = g->has_proj[i];
        if (l->state == STATE_8BIT) {
            cudaCheck(cudaMemcpy(o->qm[i], g->hqm[i], (size_t)l->snumel, cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(o->qv[i], g->hqv[i], (size_t)l->snumel, cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(o->absmax_m[i], g->ham[i], sizeof(float) * l->nblocks, cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(o->absmax_v[i], g->hav[i], sizeof(float) * l->nblocks, cudaMemcpyHostToDevice));
        } else {
            upload_f32(o->m[i], g->hm[i], (size_t)l->snumel, o->mom_f32);
            upload_f32(o->v[i], g->hv[i], (size_t)l->snumel, o->mom_f32);
        }
        if (l->proj_numel) upload_f32(o->proj[i], g->hp[i], (size_t)l->proj_numel, 0);
        if (l->limiter) cudaCheck(cudaMemcpy(o->lim[i], g->hlim[i], sizeof(float) * l->limiter, cudaMemcpyHostToDevice));
    }
}

static void gpu_state_done(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    free(g->hf); free(g->hq); free(g->hm); free(g->hv); free(g->ham); free(g->hav); free(g->hp); free(g->hlim); free(g->hqm); free(g->hqv);
    free(g->has_proj);
    weight8_free(&g->w8);
    g->hf = NULL; g->hq = NULL; g->hm = g->hv = g->ham = g->hav = g->hp = g->hlim = NULL; g->hqm = g->hqv = NULL; g->has_proj = NULL;
}

static float gpu_run_train_step(void* ctx, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped, int64_t* n_targets) {
    return gpu_train_step(((GpuRun*)ctx)->tr, dl, lr, inputs, targets, norm, skipped, n_targets);
}
static float gpu_run_forward_loss(void* ctx, const int* inputs, const int* targets, int B, int T, int* n_valid) {
    return gpu_forward_loss(((GpuRun*)ctx)->tr->model, inputs, targets, B, T, n_valid);
}
// the logits as the forward leaves them (bf16), widened to fp32
static void gpu_run_forward_logits(void* ctx, const int* inputs, int B, int T, float* logits) {
    GpuLlama* m = ((GpuRun*)ctx)->tr->model;
    size_t n = (size_t)B * T * m->config.V;
    gpu_forward(m, inputs, NULL, B, T, 0.0f); // synchronizes its stream before returning
    uint16_t* h = (uint16_t*)mallocCheck(sizeof(uint16_t) * n);
    cudaCheck(cudaMemcpy(h, m->acts.logits, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) logits[i] = f32_from_bf16(h[i]);
    free(h);
}
static void gpu_run_next_logits(void* ctx, const int* tokens, int n, float* logits) { gpu_next_logits(((GpuRun*)ctx)->tr->model, tokens, n, logits); }
static float* gpu_params_to_host(void* ctx) {
    GpuLlama* m = ((GpuRun*)ctx)->tr->model;
    float* hp = (float*)mallocCheck(sizeof(float) * m->table.total);
    gpu_download_params(m, hp);
    return hp;
}
static void gpu_params_release(void* ctx, float* host) { (void)ctx; free(host); }
// a resume (run.h reads the state first): the INT8 tensors are the codes the state restored, the
// checkpoint's float file is not taken for them (the CPU engine does the same)
static void gpu_params_from_host(void* ctx, const float* host) { gpu_upload_params(((GpuRun*)ctx)->tr->model, host, 1); }
static void gpu_get_progress(void* ctx, Progress* pr) { GpuTrainer* tr = ((GpuRun*)ctx)->tr; pr->updates = tr->t; pr->refreshes = tr->opt.gl.refreshes; }
static void gpu_set_progress(void* ctx, const Progress* pr) { GpuTrainer* tr = ((GpuRun*)ctx)->tr; tr->t = pr->updates; tr->opt.gl.refreshes = pr->refreshes; }
static void gpu_step_extra(void* ctx, double tok_s, char* buf, size_t n) {
    GpuRun* g = (GpuRun*)ctx;
    char mfub[32];
    GpuTrainer* tr = g->tr;
    int world = tr->dist->world;
    int dp = tr->dist->active;
    // tok_s counts every rank's tokens: MFU per GPU
    format_mfu(mfub, sizeof mfub, g->flops_tok, tok_s / world, g->peak_tflops);
    snprintf(buf, n, "MFU %s | GPU mem %.2f GiB", mfub, gpu_mem_used_mib() / 1024.0);
    if (dp) run_append_comm(buf, n, tr->comm_bytes, tr->comm_full);
}
// the measured memory beside the plan: what the device reports (cudaMemGetInfo) before our first
// allocation, after all of them, the sampled high-water mark, and now. The difference to the plan
// is the libraries' own memory (cuBLAS/cuDNN/cuSOLVER handles and their internal workspaces).
static void gpu_done_report(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    gpu_mem_sample();
    double plan = g->plan_total / GIB, k = 1.0 / 1024; // MiB -> GiB
    printf("GPU memory: plan %.3f GiB | measured: %.3f GiB in use before allocating (the CUDA context; --gpu-mem assumes %.1f), %.3f after "
           "(+%.3f), peak %.3f (+%.3f, sampled each step and at refreshes), now %.3f GiB\n",
           plan, k * g->mem_start_mib, GPU_CONTEXT_GIB, k * g->mem_alloc_mib, k * (g->mem_alloc_mib - g->mem_start_mib), k * g_mem_high_mib,
           k * (g_mem_high_mib - g->mem_start_mib), k * gpu_mem_used_mib());
    if (g->tr->opt.gl.refreshes > 0)
        printf("GaLore: %lld projector refreshes (by cuSOLVER gesvdj %lld, gesvd %lld, randomized %lld; gesvdj fell back to gesvd %lld times)\n",
               (long long)g->tr->opt.gl.refreshes, (long long)g->tr->opt.gl.n_gesvdj, (long long)g->tr->opt.gl.n_gesvd,
               (long long)g->tr->opt.gl.n_randomized, (long long)g->tr->opt.gl.gesvd_fallbacks);
}

static Engine gpu_engine(GpuRun* g) {
    Engine e;
    memset(&e, 0, sizeof e);
    e.ctx = g;
    e.train_step = gpu_run_train_step; e.forward_loss = gpu_run_forward_loss; e.forward_logits = gpu_run_forward_logits; e.next_logits = gpu_run_next_logits; e.max_seq = g->tr->model->T;
    e.params_to_host = gpu_params_to_host; e.params_release = gpu_params_release; e.params_from_host = gpu_params_from_host;
    e.state_entries = gpu_state_entries; e.state_before_save = gpu_state_before_save; e.state_after_load = gpu_state_after_load;
    e.state_done = gpu_state_done; e.get_progress = gpu_get_progress; e.set_progress = gpu_set_progress;
    e.step_extra = gpu_step_extra; e.done_report = gpu_done_report;
    e.skip_hint = "lower --lr, raise --warmup, set --grad-clip, or try --master-weights 1";
    return e;
}

#ifndef TESTING
int main(int argc, char** argv) {
    Settings s;
    LlamaConfig config;
    OptimConfig oc;
    if (!run_setup(argc, argv, "galore.c GPU trainer: pretrains HF-compatible LLaMA models on one NVIDIA GPU in bf16.\n"
                               "Writes DIR/model.safetensors + DIR/config.json that transformers' from_pretrained opens.",
                   &s, &config, &oc)) return 0;
    if (strcmp(s.weights, "fp32") == 0)
        die("--weights fp32: the GPU engine keeps bf16 weights (or int8); for fp32 weights pass --master-weights 1 (fp32 masters, bf16 compute copy)");
    if (s.master_weights && s.stochastic_rounding)
        printf("note: --stochastic-rounding has no effect with --master-weights 1 (the fp32 masters are updated; the bf16 copy rounds to nearest)\n");
    Dist dist;
    dist_init(&dist, &argc, &argv, s.dist_init);
    if (dist.rank != 0 && freopen("/dev/null", "w", stdout) == NULL) die("rank %d: cannot silence stdout", dist.rank);
    int B = s.batch, T = s.seq;
    if (strcmp(s.memory_plan, "0") != 0) {
        // memplan.h's GPU plan, the rows gpu_build and gpu_trainer_init allocate (the CPU binary
        // prints the same after its own); the rows only a device can size say so
        cJSON* plans = strcmp(s.memory_plan, "json") == 0 ? cJSON_CreateArray() : NULL;
        GpuPlanArgs ga = gpu_plan_args(&s, &config, &oc);
        gpu_memplan_report(&s, &config, &oc, &ga, plans);
        if (plans) plan_json_print(plans);
        return 0;
    }
    int ndev = 0;
    cudaError_t de = cudaGetDeviceCount(&ndev);
    if (de != cudaSuccess || ndev == 0) die("no CUDA device (%s); hint: use the CPU trainer ./train_llama", de != cudaSuccess ? cudaGetErrorString(de) : "count 0");
    if (s.device >= ndev) die("--device %d: this machine has %d CUDA device(s)", s.device, ndev);
    if (dist.world > 1) {
        // one GPU per process: the local rank picks it (--device offsets it)
        if (dist.local_rank + s.device >= ndev)
            die("rank %d (local rank %d): this machine has %d CUDA device(s); hint: start at most %d processes per machine", dist.rank,
                dist.local_rank, ndev, ndev - s.device);
        s.device += dist.local_rank;
    }
    cudaCheck(cudaSetDevice(s.device));
    cudaCheck(cudaFree(0)); // create the context now, so the baseline below includes it
    double mem_start = gpu_mem_used_mib();
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, s.device));
    double peak = gpu_peak_bf16_tflops(prop.name);
    if (prop.major < 8) die("%s has compute capability %d.%d; bf16 needs 8.0 (Ampere) or newer", prop.name, prop.major, prop.minor);
    char peakb[32];
    if (peak > 0) snprintf(peakb, sizeof peakb, "%.0f", peak); else snprintf(peakb, sizeof peakb, "n/a");
    printf("device %d: %s | compute %d.%d | %.1f GiB | peak bf16 %s TFLOPS\n", s.device, prop.name, prop.major, prop.minor,
           prop.totalGlobalMem / 1073741824.0, peakb);

    GpuLlama model;
    gpu_build(&model, &config, B, T, s.master_weights, s.attn_fallback, 1, s.per_layer, s.recompute, oc.w8_group, oc.w8_embed);
    GpuTrainer trainer;
    gpu_trainer_init(&trainer, &model, &oc, s.per_layer, s.grad_accum, s.grad_clip, s.stochastic_rounding, (uint64_t)s.seed, 1, &dist);
    gpu_dist_init(&trainer, &dist, s.dist_init);
    run_print_dist(&dist, &s, &oc, s.per_layer ? "NCCL all-reduce inside each update group (update stream)"
                                                : "NCCL all-reduce per update group on a side stream, overlapping backward");
    double mem_alloc = gpu_mem_used_mib();
    g_mem_high_mib = mem_alloc;
    const MemPlan* plan = &model.mem.plan; // with the device's sizes of the queried rows (gpu_trainer_init printed it)
    printf("GPU memory plan: %.3f GiB (weights + optimizer state %.3f GiB); --memory-plan 1 prints it without a GPU\n", plan->total / GIB,
           plan->state / GIB);
    {
        float* hp = (float*)mallocCheck(sizeof(float) * model.table.total);
        if (s.init[0]) llama_load_params(&model.table, hp, s.init);
        else llama_init_params(&model.table, hp, (uint64_t)s.seed); // the CPU's init: the same weights from the same seed
        gpu_upload_params(&model, hp);
        free(hp);
    }
    {
        // llm.c's hint: how large a batch the memory left would hold (activations grow with B)
        size_t a1[A_NUM], per_seq = 0, free_b = 0, total_b = 0;
        gpu_act_sizes(&config, 1, T, attention_activation_bytes(1, T, config.NH, config.HD, model.attn.use_cudnn), a1, model.recompute);
        for (int i = 0; i < A_NUM; i++) per_seq += a1[i];
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        printf("GPU memory: %.3f GiB in use, %.3f GiB free; activations take ~%.4f GiB per sequence of %d: --batch up to ~%d would fit\n",
               (total_b - free_b) / GIB, free_b / GIB, per_seq / GIB, T, B + (int)(0.9 * free_b / (double)per_seq));
    }
    size_t np = llama_num_params(&model.table);
    printf("galore.c GPU | model %s | C %d H %d heads %d kv %d layers %d vocab %d | %.2fM params\n", config.name, config.C, config.H,
           config.NH, config.NKV, config.L, config.V, np / 1e6);
    printf("init %s | optimizer %s (eps %g, betas %g %g, wd %g) | lr %g %s warmup %d min ratio %g | clip %g | %s%s\n",
           s.init[0] ? s.init : "random", s.optimizer, oc.eps, oc.beta1, oc.beta2, oc.weight_decay, s.lr, s.schedule, s.warmup,
           s.min_lr_ratio, s.grad_clip, s.master_weights ? "fp32 master weights + moments" : oc.w8_group > 0 ? "INT8 weights + bf16 moments" : "bf16 weights + moments",
           s.stochastic_rounding && !s.master_weights ? " | stochastic rounding" : "");
    if (oc.w8_group > 0) {
        Weight8 w;
        char w8[320];
        weight8_init(&w, &model.table, oc.w8_group, oc.w8_embed);
        weight8_describe(&w, w8, sizeof w8);
        weight8_free(&w);
        printf("weights: %s; each GEMM reads its matrix dequantized into a bf16 scratch\n", w8);
    }

    char exact_name[96];
    snprintf(exact_name, sizeof exact_name, "exact SVD (cuSOLVER gesvdj up to min dim %d, gesvd above)", GALORE_GESVDJ_MAX_DIM);
    run_print_galore(&config, &oc, &s, exact_name);
    GpuRun run;
    memset(&run, 0, sizeof run);
    run.tr = &trainer;
    run.plan_total = plan->total;
    run.mem_start_mib = mem_start;
    run.mem_alloc_mib = mem_alloc;
    run.peak_tflops = peak;
    run.flops_tok = llama_flops_per_token(&config, &model.table, T);
    Engine engine = gpu_engine(&run);
    run_main(&engine, &dist, &s, &config, &oc);
    gpu_trainer_free(&trainer);
    gpu_free(&model);
    dist_finalize(&dist);
    return 0;
}
#endif
