// train_llama.cu: the GPU trainer of galore.c. The same model, CLI (cli.h's table), data,
// checkpoints and logs as the CPU reference train_llama.c, on one NVIDIA GPU in bf16:
// bf16 weights, activations and gradients with fp32 math inside every kernel and fp32
// accumulation in every matmul (cuBLASLt), attention through attention.cuh (cuDNN fused SDPA, or
// a cuBLAS fallback), Adam/AdamW with bf16 moments by default as the GaLore paper's pure-bf16
// runs (--master-weights 1: fp32 master weights and fp32 moments), optional stochastic rounding.
// Every device buffer is allocated once at startup from one plan (gpu_plan_build), which
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
#include "run.h"

// ----------------------------------------------------------------------------
// the memory plan: every device buffer, by name and bytes. The allocation walks the same list.

enum {
    A_RES = 0, A_LN1, A_RSTD1, A_QKV, A_ATTY, A_ATTN_SAVED, A_RES2, A_LN2, A_RSTD2, A_GU, A_ACT, A_LNF, A_RSTDF,
    A_LOGITS, A_LOSSES, A_DRES, A_SCRATCH, A_RMS_SCRATCH, A_NORM_PARTIALS, A_INPUTS, A_TARGETS, A_BUCKET, A_NUM
};
static const char* const GPU_ACT_NAMES[A_NUM] = {
    "res (L+1, B, T, C) bf16", "ln1 (L, B, T, C) bf16", "rstd1 (L, B, T) fp32", "qkv (L, B, T, C+2KV) bf16",
    "atty (L, B, T, C) bf16", "attention saved for backward (L x stats or probs)", "res2 (L, B, T, C) bf16", "ln2 (L, B, T, C) bf16",
    "rstd2 (L, B, T) fp32", "gu (L, B, T, 2H) bf16", "act (L, B, T, H) bf16", "lnf (B, T, C) bf16", "rstdf (B, T) fp32",
    "logits (B, T, V) bf16", "losses (B, T) fp32", "dres (B, T, C) bf16", "scratch (B, T, max(3H, C+2KV)) bf16",
    "rmsnorm dw scratch fp32", "grad norm partials fp32", "inputs int32", "targets int32", "encoder buckets int32",
};

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

// bytes of each activation buffer; attn_saved: what attention keeps per layer for its backward
static void gpu_act_sizes(const LlamaConfig* c, int B, int T, size_t attn_saved, size_t bytes[A_NUM]) {
    size_t L = c->L, C = c->C, H = c->H, V = c->V, BT = (size_t)B * T, KV = (size_t)c->NKV * (C / c->NH);
    size_t scratch = 3 * H > C + 2 * KV ? 3 * H : C + 2 * KV;
    size_t X = sizeof(floatX), F = sizeof(float), I = sizeof(int);
    size_t b[A_NUM] = {
        (L + 1) * BT * C * X, L * BT * C * X, L * BT * F, L * BT * (C + 2 * KV) * X,
        L * BT * C * X, L * align256(attn_saved), L * BT * C * X, L * BT * C * X,
        L * BT * F, L * BT * 2 * H * X, L * BT * H * X, BT * C * X, BT * F,
        BT * V * X, BT * F, BT * C * X, BT * scratch * X,
        (size_t)RMS_DW_CHUNKS * C * F, (size_t)NORM_BLOCKS * F, BT * I, BT * I, (3 * BT + 1) * I,
    };
    for (int i = 0; i < A_NUM; i++) bytes[i] = align256(b[i]);
}

#define GPU_PLAN_MAX 48
typedef struct { char name[80]; double bytes; } GpuPlanItem;
typedef struct { GpuPlanItem it[GPU_PLAN_MAX]; int n; double total; double state; } GpuPlan;

static void gpu_plan_add(GpuPlan* p, const char* name, double bytes, int is_state) {
    if (p->n >= GPU_PLAN_MAX) die("internal: GPU plan has more than %d rows", GPU_PLAN_MAX);
    snprintf(p->it[p->n].name, sizeof p->it[p->n].name, "%s", name);
    p->it[p->n].bytes = bytes;
    p->n++;
    p->total += bytes;
    if (is_state) p->state += bytes;
}

static void gpu_plan_build(GpuPlan* p, const LlamaConfig* c, int B, int T, int master, size_t attn_saved, size_t attn_ws) {
    memset(p, 0, sizeof *p);
    ParamTable pt;
    param_table_build(&pt, c);
    double P = (double)pt.total;
    param_table_free(&pt);
    int half = c->C / c->NH / 2;
    gpu_plan_add(p, "weights (bf16)", P * sizeof(floatX), 1);
    gpu_plan_add(p, "gradients (bf16)", P * sizeof(floatX), 0);
    if (master) gpu_plan_add(p, "master weights (fp32)", P * 4, 1);
    gpu_plan_add(p, master ? "adam moments m, v (fp32)" : "adam moments m, v (bf16)", 2.0 * P * (master ? 4 : sizeof(floatX)), 1);
    gpu_plan_add(p, "rope cos/sin tables (fp32)", 2.0 * c->maxT * half * 4, 0);
    size_t ab[A_NUM];
    gpu_act_sizes(c, B, T, attn_saved, ab);
    for (int i = 0; i < A_NUM; i++) {
        char nm[80];
        snprintf(nm, sizeof nm, "act: %s", GPU_ACT_NAMES[i]);
        gpu_plan_add(p, nm, (double)ab[i], 0);
    }
    gpu_plan_add(p, "cuBLASLt workspace", (double)MATMUL_WORKSPACE_BYTES, 0);
    gpu_plan_add(p, "attention workspace (cuDNN/fallback)", (double)attn_ws, 0);
}

static void gpu_plan_print(const GpuPlan* p, const char* title) {
    printf("GPU memory plan: %s\n", title);
    for (int i = 0; i < p->n; i++) if (p->it[i].bytes > 0) printf("  %-52s %12.2f MiB\n", p->it[i].name, p->it[i].bytes / 1048576.0);
    printf("  %-52s %12.2f MiB (%.3f GB)\n", "total", p->total / 1048576.0, p->total / 1e9);
    printf("  %-52s %12.2f MiB (%.3f GB)\n", "weights + optimizer state (paper's estimate)", p->state / 1048576.0, p->state / 1e9);
}

// ----------------------------------------------------------------------------
// the model on the GPU

typedef struct {
    floatX *res, *ln1, *qkv, *atty, *res2, *ln2, *gu, *act, *lnf, *logits, *dres, *scratch;
    float *rstd1, *rstd2, *rstdf, *losses, *rms_scratch, *norm_partials;
    char* attn_saved;     // (L, attn_saved_bytes) what attention keeps for backward (cuDNN: softmax stats)
    int *inputs, *targets, *bucket;
} GpuActs;

typedef struct {
    LlamaConfig config;
    ParamTable table;
    int B, T;                 // the (only) shape the activations and the attention plan are built for
    int master;               // fp32 master weights + fp32 moments
    floatX* params;           // (P) bf16, flat in table order (the CPU's layout: Wq|Wk|Wv and Wg|Wu adjacent)
    floatX* grads;            // (P) bf16
    float* master_w;          // (P) fp32 or NULL
    void* mom_m; void* mom_v; // (P) each: floatX, or float with master
    float *rope_cos, *rope_sin; // (maxT, HD/2) fp32
    GpuActs acts;
    void* act_memory;
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
    float* h_partials;        // (NORM_BLOCKS)
    float mean_loss;          // of the last forward with targets; -1 when there were none
    int n_valid;
} GpuLlama;

static inline floatX* PX(GpuLlama* m, int i) { return m->params + m->table.info[i].offset; }
static inline floatX* GX(GpuLlama* m, int i) { return m->grads + m->table.info[i].offset; }

// HF's rope tables in fp32, computed exactly as the CPU's llama_rope_init, then uploaded
static void gpu_rope_init(GpuLlama* m) {
    const LlamaConfig* c = &m->config;
    int HD = c->C / c->NH, half = HD / 2;
    size_t n = (size_t)c->maxT * half;
    float* hc = (float*)mallocCheck(sizeof(float) * n);
    float* hs = (float*)mallocCheck(sizeof(float) * n);
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)HD);
        for (int t = 0; t < c->maxT; t++) {
            float angle = (float)t * inv_freq;
            hc[t * half + i] = cosf(angle);
            hs[t * half + i] = sinf(angle);
        }
    }
    m->rope_cos = (float*)cudaMallocCheck(sizeof(float) * n, "rope cos table");
    m->rope_sin = (float*)cudaMallocCheck(sizeof(float) * n, "rope sin table");
    cudaCheck(cudaMemcpy(m->rope_cos, hc, sizeof(float) * n, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(m->rope_sin, hs, sizeof(float) * n, cudaMemcpyHostToDevice));
    free(hc); free(hs);
}

static void print_alloc(const char* name, size_t bytes) { printf("  alloc %-52s %10.2f MiB\n", name, bytes / 1048576.0); }

// gpu_build: handles, attention plan, every buffer of the plan (printed as allocated). Weights
// are uploaded afterwards (gpu_upload_params).
static void gpu_build(GpuLlama* m, const LlamaConfig* c, int B, int T, int master, int attn_fallback, int verbose) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->B = B; m->T = T; m->master = master;
    m->mean_loss = -1.0f;
    param_table_build(&m->table, c);
    size_t P = m->table.total, BT = (size_t)B * T;
    int HD = c->C / c->NH;
    cudaCheck(cudaStreamCreate(&m->stream));
    cublasCheck(cublasCreate(&m->blas));
    cublasCheck(cublasSetStream(m->blas, m->stream));
    // no TF32 anywhere (bf16 inputs make it moot; fp32 products stay fp32), and pedantic atomics off
    cublasCheck(cublasSetMathMode(m->blas, CUBLAS_DEFAULT_MATH));
    cublasCheck(cublasSetAtomicsMode(m->blas, CUBLAS_ATOMICS_NOT_ALLOWED)); // deterministic cuBLAS kernels
    cublasCheck(cublasLtCreate(&m->mm.lt));
    m->mm.blas = m->blas;
    // no usable cuDNN is not fatal: attention falls back to cuBLAS (attention_init says so)
    cudnnStatus_t ds = cudnnCreate(&m->dnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        printf("note: cudnnCreate failed (%s)\n", cudnnGetErrorString(ds));
        m->dnn = NULL;
    } else {
        cudnnCheck(cudnnSetStream(m->dnn, m->stream));
    }
    attention_init(&m->attn, m->dnn, m->blas, B, T, c->NH, c->NKV, HD, attn_fallback);
    m->attn_saved_bytes = attention_saved_bytes(&m->attn);
    if (verbose && !m->attn.bwd_deterministic)
        printf("note: the attention backward chosen is not bitwise deterministic run to run (cuDNN engine); --attn-fallback 1 is deterministic\n");
    GpuPlan plan;
    gpu_plan_build(&plan, c, B, T, master, m->attn_saved_bytes, attention_workspace_bytes(&m->attn));
    if (verbose) printf("allocating %.1f MiB on the GPU:\n", plan.total / 1048576.0);
    m->params = (floatX*)cudaMallocCheck(sizeof(floatX) * P, "weights (bf16)");
    m->grads = (floatX*)cudaMallocCheck(sizeof(floatX) * P, "gradients (bf16)");
    if (verbose) { print_alloc("weights (bf16)", sizeof(floatX) * P); print_alloc("gradients (bf16)", sizeof(floatX) * P); }
    size_t mb = master ? sizeof(float) : sizeof(floatX);
    if (master) {
        m->master_w = (float*)cudaMallocCheck(sizeof(float) * P, "master weights (fp32)");
        if (verbose) print_alloc("master weights (fp32)", sizeof(float) * P);
    }
    // one allocation for both moments
    char* mom = (char*)cudaMallocCheck(2 * mb * P, master ? "adam moments m, v (fp32)" : "adam moments m, v (bf16)");
    m->mom_m = mom; m->mom_v = mom + mb * P;
    if (verbose) print_alloc(master ? "adam moments m, v (fp32)" : "adam moments m, v (bf16)", 2 * mb * P);
    cudaCheck(cudaMemset(m->grads, 0, sizeof(floatX) * P));
    cudaCheck(cudaMemset(mom, 0, 2 * mb * P));
    gpu_rope_init(m);
    // activations: one allocation, then a pointer table
    size_t ab[A_NUM], total = 0;
    gpu_act_sizes(c, B, T, m->attn_saved_bytes, ab);
    for (int i = 0; i < A_NUM; i++) total += ab[i];
    m->act_memory = cudaMallocCheck(total, "activations");
    cudaCheck(cudaMemset(m->act_memory, 0, total));
    void** ptrs[A_NUM] = {
        (void**)&m->acts.res, (void**)&m->acts.ln1, (void**)&m->acts.rstd1, (void**)&m->acts.qkv, (void**)&m->acts.atty,
        (void**)&m->acts.attn_saved, (void**)&m->acts.res2, (void**)&m->acts.ln2, (void**)&m->acts.rstd2, (void**)&m->acts.gu,
        (void**)&m->acts.act, (void**)&m->acts.lnf, (void**)&m->acts.rstdf, (void**)&m->acts.logits, (void**)&m->acts.losses,
        (void**)&m->acts.dres, (void**)&m->acts.scratch, (void**)&m->acts.rms_scratch, (void**)&m->acts.norm_partials,
        (void**)&m->acts.inputs, (void**)&m->acts.targets, (void**)&m->acts.bucket,
    };
    char* p = (char*)m->act_memory;
    for (int i = 0; i < A_NUM; i++) {
        *ptrs[i] = (void*)p;
        p += ab[i];
        if (verbose) { char nm[80]; snprintf(nm, sizeof nm, "act: %s", GPU_ACT_NAMES[i]); print_alloc(nm, ab[i]); }
    }
    m->mm.workspace_bytes = MATMUL_WORKSPACE_BYTES;
    m->mm.workspace = cudaMallocCheck(MATMUL_WORKSPACE_BYTES, "cuBLASLt workspace");
    if (verbose) print_alloc("cuBLASLt workspace", MATMUL_WORKSPACE_BYTES);
    m->h_counts = (int*)mallocCheck(sizeof(int) * ((size_t)c->V + 1));
    m->h_bucket = (int*)mallocCheck(sizeof(int) * (3 * BT + 1));
    m->h_losses = (float*)mallocCheck(sizeof(float) * BT);
    m->h_partials = (float*)mallocCheck(sizeof(float) * NORM_BLOCKS);
}

static void gpu_free(GpuLlama* m) {
    cudaCheck(cudaFree(m->params)); cudaCheck(cudaFree(m->grads));
    if (m->master_w) cudaCheck(cudaFree(m->master_w));
    cudaCheck(cudaFree(m->mom_m));
    cudaCheck(cudaFree(m->rope_cos)); cudaCheck(cudaFree(m->rope_sin));
    cudaCheck(cudaFree(m->act_memory)); cudaCheck(cudaFree(m->mm.workspace));
    attention_free(&m->attn);
    cublasCheck(cublasLtDestroy(m->mm.lt));
    cublasCheck(cublasDestroy(m->blas));
    if (m->dnn) cudnnCheck(cudnnDestroy(m->dnn));
    cudaCheck(cudaStreamDestroy(m->stream));
    free(m->h_counts); free(m->h_bucket); free(m->h_losses); free(m->h_partials);
    param_table_free(&m->table);
}

// host fp32 (P) -> device: bf16 weights by round-to-nearest-even (exact when the values came from
// bf16), and the fp32 masters when kept
static void gpu_upload_params(GpuLlama* m, const float* host) {
    size_t P = m->table.total;
    uint16_t* hb = (uint16_t*)mallocCheck(sizeof(uint16_t) * P);
    for (size_t k = 0; k < P; k++) hb[k] = bf16_from_f32(host[k]);
    cudaCheck(cudaMemcpy(m->params, hb, sizeof(uint16_t) * P, cudaMemcpyHostToDevice));
    free(hb);
    if (m->master) cudaCheck(cudaMemcpy(m->master_w, host, sizeof(float) * P, cudaMemcpyHostToDevice));
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

// the weights as fp32 on the host: the masters when kept, else the bf16 weights (exactly)
static void gpu_download_params(GpuLlama* m, float* host) {
    if (m->master) download_f32(host, m->master_w, m->table.total, 1);
    else download_f32(host, m->params, m->table.total, 0);
}

// layer l's slices, laid out with the allocated B*T strides
typedef struct {
    floatX *x, *ln1, *qkv, *atty, *x2, *ln2, *gu, *act, *xout;
    float *rstd1, *rstd2;
    void* attn_saved;     // this layer's attention_saved_bytes
} GpuLayerActs;

static GpuLayerActs gpu_layer_acts(GpuLlama* m, int l) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    size_t C = c->C, H = c->H, KV = (size_t)c->NKV * (c->C / c->NH), BT = (size_t)m->B * m->T;
    GpuLayerActs la;
    la.x = a->res + l * BT * C;
    la.ln1 = a->ln1 + l * BT * C;
    la.rstd1 = a->rstd1 + l * BT;
    la.qkv = a->qkv + l * BT * (C + 2 * KV);
    la.atty = a->atty + l * BT * C;
    // each layer's slice starts 256-byte aligned (cuDNN wants aligned tensors)
    la.attn_saved = m->attn_saved_bytes ? (void*)(a->attn_saved + l * align256(m->attn_saved_bytes)) : NULL;
    la.x2 = a->res2 + l * BT * C;
    la.ln2 = a->ln2 + l * BT * C;
    la.rstd2 = a->rstd2 + l * BT;
    la.gu = a->gu + l * BT * 2 * H;
    la.act = a->act + l * BT * H;
    la.xout = a->res + (l + 1) * BT * C;
    return la;
}

// gpu_forward: inputs (B, T) host token ids at exactly the built shape; targets (B, T) host or
// NULL (then only logits). grad_scale > 0: the classifier also writes dlogits = d(grad_scale *
// mean loss)/dlogits in place of the logits, ready for gpu_backward. Sets mean_loss / n_valid.
static void gpu_forward(GpuLlama* m, const int* inputs, const int* targets, int B, int T, float grad_scale) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    cudaStream_t s = m->stream;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = C / NH, KV = NKV * HD, V = c->V, L = c->L;
    // attention's plan is built for one (B, T): callers pad smaller batches (sampling does)
    if (B != m->B || T != m->T) die("internal: GPU forward with B=%d T=%d, built for %d x %d", B, T, m->B, m->T);
    int BT = B * T;
    for (int i = 0; i < BT; i++)
        if (inputs[i] < 0 || inputs[i] >= V) die("token id %d at position %d is outside the vocabulary of %d", inputs[i], i, V);
    cudaCheck(cudaMemcpyAsync(a->inputs, inputs, sizeof(int) * BT, cudaMemcpyHostToDevice, s));
    encoder_forward(a->res, a->inputs, PX(m, 0), BT, C, s);
    for (int l = 0; l < L; l++) {
        GpuLayerActs la = gpu_layer_acts(m, l);
        rmsnorm_forward(la.ln1, la.rstd1, la.x, PX(m, pt_layer(l, P_LN1)), BT, C, c->norm_eps, s);
        matmul_forward(&m->mm, la.qkv, la.ln1, PX(m, pt_layer(l, P_WQ)), NULL, BT, C, C + 2 * KV, s); // Wq | Wk | Wv
        rope_forward(la.qkv, m->rope_cos, m->rope_sin, B, T, NH + NKV, HD, C + 2 * KV, s);           // q and k heads are adjacent
        attention_forward(&m->attn, la.atty, la.attn_saved, la.qkv, s);
        matmul_forward(&m->mm, la.x2, la.atty, PX(m, pt_layer(l, P_WO)), la.x, BT, C, C, s);          // + residual
        rmsnorm_forward(la.ln2, la.rstd2, la.x2, PX(m, pt_layer(l, P_LN2)), BT, C, c->norm_eps, s);
        matmul_forward(&m->mm, la.gu, la.ln2, PX(m, pt_layer(l, P_WG)), NULL, BT, C, 2 * H, s);        // Wgate | Wup
        swiglu_forward(la.act, la.gu, BT, H, s);
        matmul_forward(&m->mm, la.xout, la.act, PX(m, pt_layer(l, P_WD)), la.x2, BT, H, C, s);        // + residual
    }
    rmsnorm_forward(a->lnf, a->rstdf, a->res + (size_t)L * BT * C, PX(m, pt_norm(c)), BT, C, c->norm_eps, s);
    matmul_forward(&m->mm, a->logits, a->lnf, PX(m, pt_lm_head(c)), NULL, BT, C, V, s);
    if (targets == NULL) {
        cudaCheck(cudaStreamSynchronize(s));
        m->mean_loss = -1.0f; m->n_valid = 0;
        return;
    }
    int n_valid = 0;
    for (int i = 0; i < BT; i++) {
        if (targets[i] >= V) die("target id %d at position %d is outside the vocabulary of %d", targets[i], i, V);
        n_valid += targets[i] >= 0;
    }
    cudaCheck(cudaMemcpyAsync(a->targets, targets, sizeof(int) * BT, cudaMemcpyHostToDevice, s));
    float dloss = (grad_scale > 0.0f && n_valid > 0) ? grad_scale / (float)n_valid : 0.0f;
    fused_classifier(a->logits, a->losses, a->targets, BT, V, dloss, grad_scale > 0.0f, s);
    cudaCheck(cudaMemcpyAsync(m->h_losses, a->losses, sizeof(float) * BT, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    double sum = 0.0; // in a fixed order on the host: deterministic
    for (int i = 0; i < BT; i++) sum += m->h_losses[i];
    m->n_valid = n_valid;
    m->mean_loss = n_valid > 0 ? (float)(sum / n_valid) : 0.0f;
}

static void gpu_zero_grad(GpuLlama* m) {
    cudaCheck(cudaMemsetAsync(m->grads, 0, sizeof(floatX) * m->table.total, m->stream));
}

// gpu_backward: ADDS the gradient of (grad_scale * mean loss) into the gradients; the forward
// must have run with that grad_scale (its classifier left dlogits in the logits buffer).
// The buffer reuse follows the CPU's llama_backward line by line.
static void gpu_backward(GpuLlama* m, const int* inputs, int B, int T) {
    const LlamaConfig* c = &m->config;
    GpuActs* a = &m->acts;
    cudaStream_t s = m->stream;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = C / NH, KV = NKV * HD, V = c->V, L = c->L;
    int BT = B * T;
    floatX* dlogits = a->logits;
    floatX* dres = a->dres;        // (BT, C) gradient of the residual stream
    floatX* dln = a->scratch;      // (BT, C)
    matmul_backward(&m->mm, dln, GX(m, pt_lm_head(c)), dlogits, a->lnf, PX(m, pt_lm_head(c)), BT, C, V, s);
    rmsnorm_backward(dres, GX(m, pt_norm(c)), a->rms_scratch, dln, a->res + (size_t)L * BT * C, PX(m, pt_norm(c)), a->rstdf,
                     BT, C, 0, s);
    for (int l = L - 1; l >= 0; l--) {
        GpuLayerActs la = gpu_layer_acts(m, l);
        floatX* dact = a->scratch;                      // (BT, H)
        floatX* dgu = a->scratch + (size_t)BT * H;      // (BT, 2H)
        matmul_backward(&m->mm, dact, GX(m, pt_layer(l, P_WD)), dres, la.act, PX(m, pt_layer(l, P_WD)), BT, H, C, s);
        swiglu_backward(dgu, dact, la.gu, BT, H, s);
        floatX* dln2 = a->lnf;                          // the final norm's output is no longer needed
        matmul_backward(&m->mm, dln2, GX(m, pt_layer(l, P_WG)), dgu, la.ln2, PX(m, pt_layer(l, P_WG)), BT, C, 2 * H, s);
        rmsnorm_backward(dres, GX(m, pt_layer(l, P_LN2)), a->rms_scratch, dln2, la.x2, PX(m, pt_layer(l, P_LN2)), la.rstd2, BT, C, 1, s);
        floatX* datty = a->lnf;                         // (BT, C)
        matmul_backward(&m->mm, datty, GX(m, pt_layer(l, P_WO)), dres, la.atty, PX(m, pt_layer(l, P_WO)), BT, C, C, s);
        floatX* dqkv = a->scratch;                      // (BT, C + 2KV)
        attention_backward(&m->attn, dqkv, datty, la.atty, la.qkv, la.attn_saved, s);
        rope_backward(dqkv, m->rope_cos, m->rope_sin, B, T, NH + NKV, HD, C + 2 * KV, s);
        floatX* dln1 = a->lnf;                          // (BT, C)
        matmul_backward(&m->mm, dln1, GX(m, pt_layer(l, P_WQ)), dqkv, la.ln1, PX(m, pt_layer(l, P_WQ)), BT, C, C + 2 * KV, s);
        rmsnorm_backward(dres, GX(m, pt_layer(l, P_LN1)), a->rms_scratch, dln1, la.x, PX(m, pt_layer(l, P_LN1)), la.rstd1, BT, C, 1, s);
    }
    // embedding: positions bucketed by token on the host, summed in order on the device
    int nu = encoder_backward_buckets(m->h_bucket, m->h_counts, inputs, BT, V);
    cudaCheck(cudaMemcpyAsync(a->bucket, m->h_bucket, sizeof(int) * (size_t)(BT + 2 * nu + 1), cudaMemcpyHostToDevice, s));
    encoder_backward(GX(m, 0), dres, a->bucket, BT, nu, C, s);
    // the host bucket is reused by the next backward: wait for the copy (and the step) to finish
    cudaCheck(cudaStreamSynchronize(s));
}

// squared L2 norm of the whole gradient: fixed-grid partials on the device, added in double on the host
static double gpu_grad_sumsq(GpuLlama* m) {
    sumsq_partials(m->acts.norm_partials, m->grads, m->table.total, m->stream);
    cudaCheck(cudaMemcpyAsync(m->h_partials, m->acts.norm_partials, sizeof(float) * NORM_BLOCKS, cudaMemcpyDeviceToHost, m->stream));
    cudaCheck(cudaStreamSynchronize(m->stream));
    double ss = 0.0;
    for (int k = 0; k < NORM_BLOCKS; k++) ss += (double)m->h_partials[k];
    return ss;
}

// ----------------------------------------------------------------------------
// optimizer and trainer: the CPU's shape (one update per tensor, whole-model gradients, global
// norm clipping, non-finite steps skipped)

typedef struct {
    GpuLlama* model;
    OptimConfig cfg;
    int grad_accum;
    float grad_clip;
    int sr;                // stochastic rounding
    uint32_t sr_seed;
    int64_t t;             // optimizer updates done
} GpuTrainer;

static void gpu_trainer_init(GpuTrainer* tr, GpuLlama* m, const OptimConfig* oc, int grad_accum, float grad_clip, int sr, uint64_t seed) {
    memset(tr, 0, sizeof *tr);
    if (oc->kind != OPTIM_ADAMW && oc->kind != OPTIM_ADAM)
        die("--optimizer %s: galore_* and adam8bit on the GPU: not yet; use the CPU trainer", OPTIM_NAMES[oc->kind]);
    tr->model = m;
    tr->cfg = *oc;
    tr->grad_accum = grad_accum;
    tr->grad_clip = grad_clip;
    tr->sr = sr;
    tr->sr_seed = lm_hash32((uint32_t)seed ^ lm_hash32((uint32_t)(seed >> 32) ^ 0x5bd1e995U));
}

// one Adam/AdamW update of tensor i at 1-based step t; gscale is the clipping coefficient
static void gpu_optimizer_update(GpuTrainer* tr, int i, float lr, int64_t t, float gscale) {
    GpuLlama* m = tr->model;
    const OptimConfig* c = &tr->cfg;
    const ParamInfo* p = &m->table.info[i];
    size_t off = p->offset, n = (size_t)p->numel;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    // torch: step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) + eps (as the CPU)
    float step_size = (float)(lr / (1.0 - pow((double)b1, (double)t)));
    float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, (double)t)));
    float decay = c->kind == OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
    float l2 = c->kind == OPTIM_ADAM ? wd : 0.0f;
    // the random stream of this (step, tensor): reproducible, so resume and the determinism test hold
    uint32_t seed = lm_hash32(tr->sr_seed ^ lm_hash32((uint32_t)t * 0x9E3779B9U + (uint32_t)i));
    if (m->master) {
        adam_update<float, float>(m->master_w + off, m->params + off, m->grads + off, (float*)m->mom_m + off, (float*)m->mom_v + off, n,
                                  b1, b2, eps, step_size, inv_bc2, decay, l2, gscale, 0, seed, m->stream);
    } else {
        adam_update<floatX, floatX>(m->params + off, NULL, m->grads + off, (floatX*)m->mom_m + off, (floatX*)m->mom_v + off, n,
                                    b1, b2, eps, step_size, inv_bc2, decay, l2, gscale, tr->sr, seed, m->stream);
    }
}

// gpu_train_step: one optimizer step over grad_accum micro-batches, as the CPU's train_step in
// whole-model mode. Returns the mean loss; *norm the gradient norm before clipping.
static float gpu_train_step(GpuTrainer* tr, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped,
                            int64_t* n_targets) {
    GpuLlama* m = tr->model;
    int bad = 0;
    gpu_zero_grad(m);
    double loss_sum = 0.0;
    *n_targets = 0;
    for (int micro = 0; micro < tr->grad_accum; micro++) {
        dataloader_next_batch(dl, inputs, targets);
        gpu_forward(m, inputs, targets, dl->B, dl->T, 1.0f / tr->grad_accum);
        loss_sum += m->mean_loss;
        *n_targets += m->n_valid;
        if (!isfinite(m->mean_loss)) bad = 1;
        gpu_backward(m, inputs, dl->B, dl->T);
    }
    *norm = (float)sqrt(gpu_grad_sumsq(m));
    if (!isfinite(*norm)) bad = 1;
    if (!bad) {
        // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1
        float gscale = 1.0f;
        if (tr->grad_clip > 0.0f) {
            float coef = tr->grad_clip / (*norm + 1e-6f);
            if (coef < 1.0f) gscale = coef;
        }
        for (int i = 0; i < m->table.n; i++) gpu_optimizer_update(tr, i, lr, tr->t + 1, gscale);
        cudaCheck(cudaStreamSynchronize(m->stream));
        tr->t++;
    }
    *skipped = bad;
    return (float)(loss_sum / tr->grad_accum);
}

// ----------------------------------------------------------------------------
// evaluation and sampling

static float gpu_evaluate(GpuLlama* m, DataLoader* dl, int n, int* inputs, int* targets) {
    dataloader_reset(dl);
    double sum = 0.0;
    int64_t count = 0;
    for (int b = 0; b < n; b++) {
        dataloader_next_batch(dl, inputs, targets);
        gpu_forward(m, inputs, targets, dl->B, dl->T, 0.0f);
        sum += (double)m->mean_loss * m->n_valid;
        count += m->n_valid;
    }
    return count > 0 ? (float)(sum / count) : 0.0f;
}

// sampling as the CPU's sample_tokens (same RNG use, so the same logits give the same tokens).
// The attention plan has one shape, so each step runs the full (B, T) forward with the prefix in
// row 0 and zeros after it: causal attention keeps position n-1 independent of the padding.
static int gpu_sample_tokens(GpuLlama* m, int* tokens, int n_prompt, int n_new, Rng* rng) {
    int n = n_prompt, V = m->config.V, BT = m->B * m->T;
    int* in = (int*)callocCheck((size_t)BT, sizeof(int));
    uint16_t* row = (uint16_t*)mallocCheck(sizeof(uint16_t) * (size_t)V);
    float* li = (float*)mallocCheck(sizeof(float) * (size_t)V);
    for (int i = 0; i < n_new && n < m->T; i++) {
        memcpy(in, tokens, sizeof(int) * (size_t)n);
        gpu_forward(m, in, NULL, m->B, m->T, 0.0f);
        cudaCheck(cudaMemcpy(row, m->acts.logits + (size_t)(n - 1) * V, sizeof(uint16_t) * (size_t)V, cudaMemcpyDeviceToHost));
        for (int j = 0; j < V; j++) li[j] = f32_from_bf16(row[j]);
        tokens[n++] = sample_from_logits(li, V, rng);
    }
    free(in); free(row); free(li);
    return n;
}

// ----------------------------------------------------------------------------
// the GPU engine for run.h. Checkpoints use the CPU program's format and entries, so either
// engine can resume the other's: F32 weights (the masters, or the bf16 weights exactly), fp32
// moments m.%d / v.%d (bf16 moments widen exactly and narrow back exactly), has_proj all zero
// (no GaLore on the GPU yet). The optimizer state is staged through host buffers.

typedef struct {
    GpuTrainer* tr;
    float* hm; float* hv; int* has_proj; // host staging for state.bin, only while saving or resuming
    double peak_tflops;
    double flops_tok;
} GpuRun;

static void gpu_stage_alloc(GpuRun* g) {
    GpuLlama* m = g->tr->model;
    if (g->hm) return;
    g->hm = (float*)mallocCheck(sizeof(float) * m->table.total);
    g->hv = (float*)mallocCheck(sizeof(float) * m->table.total);
    g->has_proj = (int*)callocCheck((size_t)m->table.n, sizeof(int));
}

static int gpu_state_entries(void* ctx, StateEntry* e, int cap) {
    GpuRun* g = (GpuRun*)ctx;
    GpuLlama* m = g->tr->model;
    gpu_stage_alloc(g);
    int n = 0;
    #define ADD(nm, ptr, bytes) do { if (n >= cap) die("internal: too many state entries"); \
        snprintf(e[n].name, STATE_NAME_LEN, "%s", nm); e[n].data = (void*)(ptr); e[n].nbytes = (int64_t)(bytes); n++; } while (0)
    ADD("has_proj", g->has_proj, sizeof(int) * m->table.n);
    for (int i = 0; i < m->table.n; i++) {
        const ParamInfo* p = &m->table.info[i];
        char nm[STATE_NAME_LEN];
        snprintf(nm, sizeof nm, "m.%d", i); ADD(nm, g->hm + p->offset, sizeof(float) * p->numel);
        snprintf(nm, sizeof nm, "v.%d", i); ADD(nm, g->hv + p->offset, sizeof(float) * p->numel);
    }
    #undef ADD
    return n;
}

static void gpu_state_before_save(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    GpuLlama* m = g->tr->model;
    gpu_stage_alloc(g);
    download_f32(g->hm, m->mom_m, m->table.total, m->master);
    download_f32(g->hv, m->mom_v, m->table.total, m->master);
}

static void gpu_state_after_load(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    GpuLlama* m = g->tr->model;
    for (int i = 0; i < m->table.n; i++)
        if (g->has_proj[i]) die("the checkpoint holds GaLore projectors (a galore_* run); resume it with the CPU trainer");
    upload_f32(m->mom_m, g->hm, m->table.total, m->master);
    upload_f32(m->mom_v, g->hv, m->table.total, m->master);
}

static void gpu_state_done(void* ctx) {
    GpuRun* g = (GpuRun*)ctx;
    free(g->hm); free(g->hv); free(g->has_proj);
    g->hm = g->hv = NULL; g->has_proj = NULL;
}

static float gpu_run_train_step(void* ctx, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped, int64_t* n_targets) {
    return gpu_train_step(((GpuRun*)ctx)->tr, dl, lr, inputs, targets, norm, skipped, n_targets);
}
static float gpu_run_evaluate(void* ctx, DataLoader* dl, int n, int* inputs, int* targets) { return gpu_evaluate(((GpuRun*)ctx)->tr->model, dl, n, inputs, targets); }
static int gpu_run_sample(void* ctx, int* tokens, int n_prompt, int n_new, Rng* rng) { return gpu_sample_tokens(((GpuRun*)ctx)->tr->model, tokens, n_prompt, n_new, rng); }
static float* gpu_params_to_host(void* ctx) {
    GpuLlama* m = ((GpuRun*)ctx)->tr->model;
    float* hp = (float*)mallocCheck(sizeof(float) * m->table.total);
    gpu_download_params(m, hp);
    return hp;
}
static void gpu_params_release(void* ctx, float* host) { (void)ctx; free(host); }
static void gpu_params_from_host(void* ctx, const float* host) { gpu_upload_params(((GpuRun*)ctx)->tr->model, host); }
static void gpu_get_progress(void* ctx, Progress* pr) { pr->updates = ((GpuRun*)ctx)->tr->t; pr->refreshes = 0; }
static void gpu_set_progress(void* ctx, const Progress* pr) { ((GpuRun*)ctx)->tr->t = pr->updates; }
static void gpu_step_extra(void* ctx, double tok_s, char* buf, size_t n) {
    GpuRun* g = (GpuRun*)ctx;
    char mfub[32];
    format_mfu(mfub, sizeof mfub, g->flops_tok, tok_s, g->peak_tflops);
    snprintf(buf, n, "MFU %s | GPU mem %.0f MiB", mfub, gpu_mem_used_mib());
}
static void gpu_done_report(void* ctx) { (void)ctx; printf("GPU memory in use %.0f MiB\n", gpu_mem_used_mib()); }

static Engine gpu_engine(GpuRun* g) {
    Engine e;
    memset(&e, 0, sizeof e);
    e.ctx = g;
    e.train_step = gpu_run_train_step; e.evaluate = gpu_run_evaluate; e.sample = gpu_run_sample; e.max_seq = g->tr->model->T;
    e.params_to_host = gpu_params_to_host; e.params_release = gpu_params_release; e.params_from_host = gpu_params_from_host;
    e.state_entries = gpu_state_entries; e.state_before_save = gpu_state_before_save; e.state_after_load = gpu_state_after_load;
    e.state_done = gpu_state_done; e.get_progress = gpu_get_progress; e.set_progress = gpu_set_progress;
    e.step_extra = gpu_step_extra; e.done_report = gpu_done_report;
    e.skip_hint = "lower --lr, raise --warmup, set --grad-clip, or try --master-weights 1";
    return e;
}

// what attention keeps per layer, for the plan printed without a GPU: cuDNN's softmax stats
// (B, NH, T) fp32; the cuBLAS fallback keeps (B, NH, T, T) probabilities instead
static size_t attn_saved_estimate(const LlamaConfig* c, int B, int T, int fallback) {
    return attention_activation_bytes(B, T, c->NH, c->C / c->NH, !fallback);
}

#ifndef TESTING
int main(int argc, char** argv) {
    Settings s;
    LlamaConfig config;
    OptimConfig oc;
    if (!run_setup(argc, argv, "galore.c GPU trainer: pretrains HF-compatible LLaMA models on one NVIDIA GPU in bf16.\n"
                               "Writes DIR/model.safetensors + DIR/config.json that transformers' from_pretrained opens.",
                   &s, &config, &oc)) return 0;
    if (s.master_weights && s.stochastic_rounding)
        printf("note: --stochastic-rounding has no effect with --master-weights 1 (the fp32 masters are updated; the bf16 copy rounds to nearest)\n");
    if (oc.kind != OPTIM_ADAMW && oc.kind != OPTIM_ADAM)
        die("--optimizer %s: galore_* and adam8bit on the GPU: not yet; use the CPU trainer", s.optimizer);
    if (s.per_layer) die("--per-layer 1 on the GPU: not yet; use the CPU trainer");
    int B = s.batch, T = s.seq;
    if (s.memory_plan) {
        GpuPlan plan;
        char title[256];
        size_t as = attn_saved_estimate(&config, B, T, s.attn_fallback);
        gpu_plan_build(&plan, &config, B, T, s.master_weights, as, 0);
        snprintf(title, sizeof title, "%s, %s, batch %d x %d, %s, attention %s", config.name, s.optimizer, B, T,
                 s.master_weights ? "fp32 master weights + fp32 moments" : "pure bf16 weights + bf16 moments",
                 s.attn_fallback ? "cuBLAS fallback" : "cuDNN");
        gpu_plan_print(&plan, title);
        if (!s.attn_fallback)
            printf("  note: where cuDNN cannot build an attention plan (e.g. head dim not a multiple of 8), the cuBLAS fallback keeps (B, NH, T, T) "
                   "probabilities per layer instead: +%.2f MiB; the attention workspace is known only on the GPU\n",
                   (double)config.L * (attn_saved_estimate(&config, B, T, 1) - as) / 1048576.0);
        return 0;
    }
    int ndev = 0;
    cudaError_t de = cudaGetDeviceCount(&ndev);
    if (de != cudaSuccess || ndev == 0) die("no CUDA device (%s); hint: use the CPU trainer ./train_llama", de != cudaSuccess ? cudaGetErrorString(de) : "count 0");
    if (s.device >= ndev) die("--device %d: this machine has %d CUDA device(s)", s.device, ndev);
    cudaCheck(cudaSetDevice(s.device));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, s.device));
    double peak = gpu_peak_bf16_tflops(prop.name);
    if (prop.major < 8) die("%s has compute capability %d.%d; bf16 needs 8.0 (Ampere) or newer", prop.name, prop.major, prop.minor);
    char peakb[32];
    if (peak > 0) snprintf(peakb, sizeof peakb, "%.0f", peak); else snprintf(peakb, sizeof peakb, "n/a");
    printf("device %d: %s | compute %d.%d | %.1f GiB | peak bf16 %s TFLOPS\n", s.device, prop.name, prop.major, prop.minor,
           prop.totalGlobalMem / 1073741824.0, peakb);

    GpuLlama model;
    gpu_build(&model, &config, B, T, s.master_weights, s.attn_fallback, 1);
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
        gpu_act_sizes(&config, 1, T, attention_activation_bytes(1, T, config.NH, config.C / config.NH, model.attn.use_cudnn), a1);
        for (int i = 0; i < A_NUM; i++) per_seq += a1[i];
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        printf("GPU memory: %.0f MiB in use, %.0f MiB free; activations take ~%.1f MiB per sequence of %d: --batch up to ~%d would fit\n",
               (total_b - free_b) / 1048576.0, free_b / 1048576.0, per_seq / 1048576.0, T, B + (int)(0.9 * free_b / (double)per_seq));
    }
    size_t np = llama_num_params(&model.table);
    printf("galore.c GPU | model %s | C %d H %d heads %d kv %d layers %d vocab %d | %.2fM params\n", config.name, config.C, config.H,
           config.NH, config.NKV, config.L, config.V, np / 1e6);
    printf("init %s | optimizer %s (eps %g, betas %g %g, wd %g) | lr %g %s warmup %d min ratio %g | clip %g | %s%s\n",
           s.init[0] ? s.init : "random", s.optimizer, oc.eps, oc.beta1, oc.beta2, oc.weight_decay, s.lr, s.schedule, s.warmup,
           s.min_lr_ratio, s.grad_clip, s.master_weights ? "fp32 master weights + moments" : "bf16 weights + moments",
           s.stochastic_rounding && !s.master_weights ? " | stochastic rounding" : "");

    GpuTrainer trainer;
    gpu_trainer_init(&trainer, &model, &oc, s.grad_accum, s.grad_clip, s.stochastic_rounding, (uint64_t)s.seed);
    GpuRun run;
    memset(&run, 0, sizeof run);
    run.tr = &trainer;
    run.peak_tflops = peak;
    run.flops_tok = llama_flops_per_token(&config, &model.table, T);
    Engine engine = gpu_engine(&run);
    run_main(&engine, &s, &config, &oc);
    gpu_free(&model);
    return 0;
}
#endif
