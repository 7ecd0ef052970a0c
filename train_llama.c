// train_llama.c: the CPU fp32 reference of galore.c. LLaMA exactly as Hugging Face's
// LlamaForCausalLM computes it, forward and backward, with OpenMP for the elementwise work and
// BLAS (cblas_sgemm) for the matmuls; the oracle for every GPU kernel and a real trainer on any
// machine. test_llama.c includes this file with TESTING defined to reach its internals.
//
// Dimension letters: B batch, T sequence, C hidden, H intermediate (SwiGLU), NH query heads,
// NKV key/value heads, HD head dim (C/NH unless config.json says head_dim), QD = NH*HD,
// KV = NKV*HD, L layers, V vocab.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#include <time.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "utils.h"
#include "rand.h"
#include "safetensors.h"
#include "llama.h"
#include "cli.h"
#include "dataloader.h"
#include "tokenizer.h"
#include "galore.h"
#include "weight8.h"
#include "memplan.h"
#include "checkpoint.h"
#include "dist.h"
#include "run.h"
#include "layerhook.h"

// OpenBLAS lets us set its thread count; the reference BLAS has no threads. A weak symbol keeps
// the build working with either library.
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_parallel(void) __attribute__((weak)); // 0 sequential, 1 pthreads, 2 OpenMP

static int get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ----------------------------------------------------------------------------
// activations: one allocation, then a pointer table (llm.c style). With --recompute 1 the
// per-layer buffers (L, ...) below hold one layer (1, ...): forward keeps only res, and backward
// recomputes layer l's activations into that one layer (layer_forward) right before its backward.

typedef struct {
    float* res;      // (L+1, B, T, C) residual stream entering each layer; res[L] enters the final norm
    float* ln1;      // (L, B, T, C) input_layernorm output
    float* rstd1;    // (L, B, T)
    float* qkv;      // (L, B, T, QD + 2 KV) queries, keys (both after RoPE) and values side by side:
                     // Wq, Wk, Wv are adjacent in the parameter table, so one matmul makes all three
    float* att;      // (L, B, NH, T, T) softmax probabilities (upper triangle zero)
    float* atty;     // (L, B, T, QD) attention output before o_proj
    float* res2;     // (L, B, T, C) residual after attention
    float* ln2;      // (L, B, T, C) post_attention_layernorm output
    float* rstd2;    // (L, B, T)
    float* gu;       // (L, B, T, 2H) gate_proj | up_proj outputs (adjacent weights: one matmul)
    float* act;      // (L, B, T, H) silu(gate) * up
    float* lnf;      // (B, T, max(C, QD)) final norm output (B, T, C); backward's scratch for datty too
    float* rstdf;    // (B, T)
    float* logits;   // (B, T, V); backward overwrites it with dlogits
    float* losses;   // (B, T) per-position loss (0 where the target is ignored)
    float* lse;      // (B, T) log-sum-exp of each row of logits
    float* dres;     // (B, T, C) gradient of the residual stream, walked back through the layers
    float* scratch;  // (B, T, max(3H, QD + 2KV)) backward scratch: dln, dqkv, dact + dgu
} Activations;

typedef struct {
    LlamaConfig config;
    ParamTable table;
    float* params;        // (table.total) one flat buffer in table order; with --weights int8 the
                          // quantized tensors hold the dequantized values of w8's codes (the fp32
                          // working copy the matmuls read)
    Weight8 w8;           // --weights int8: the codes, scales and zero points (weight8.h); empty otherwise
    // gradients: tensor i's gradient lives at grad_mem + goff[i]. Whole-model mode: one slot per
    // tensor (goff = the parameter offset). Per-layer mode: the slots of one update group (a layer,
    // the embedding, or the final norm + lm_head) are reused by every group, so gradient memory
    // is the largest group's; backward calls grads_ready(ctx, first, last) when a group is final.
    float* grad_mem;
    size_t grad_size;     // floats in grad_mem
    size_t* goff;         // (table.n)
    void (*grads_ready)(void* ctx, int first, int last);
    void* grads_ctx;
    int B, T;             // the activation sizes allocated for
    int recompute;        // 1: the per-layer activations hold one layer, recomputed in backward
    Activations acts;
    float* act_memory;
    size_t act_size;      // floats in act_memory (cpu_activation_sizes: the memory plan's count)
    float* rope_cos;      // (maxT, HD/2)
    float* rope_sin;
    float mean_loss;      // of the last forward with targets; -1 when there were none
    int n_valid;          // targets counted in it
    int64_t n_norm;       // backward divides the loss gradient by this count (0: n_valid); data
                          // parallel sets the targets of all ranks, so that the summed gradients
                          // are the gradient of the mean over the whole global batch
} Llama;

static inline float* P(Llama* m, int i) { return m->params + m->table.info[i].offset; }
static inline float* G(Llama* m, int i) { return m->grad_mem + m->goff[i]; }

// ----------------------------------------------------------------------------
// model setup

static void llama_rope_init(Llama* m) {
    const LlamaConfig* c = &m->config;
    size_t n = (size_t)c->maxT * (c->HD / 2);
    m->rope_cos = (float*)mallocCheck(sizeof(float) * n);
    m->rope_sin = (float*)mallocCheck(sizeof(float) * n);
    llama_rope_tables(c, m->rope_cos, m->rope_sin);
}

static void llama_build(Llama* m, const LlamaConfig* c) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    param_table_build(&m->table, c);
    m->params = (float*)mallocCheck(sizeof(float) * m->table.total);
    m->goff = (size_t*)mallocCheck(sizeof(size_t) * (size_t)m->table.n);
    llama_rope_init(m);
    m->mean_loss = -1.0f;
}

// the sizes and their order come from memplan.h, which the memory plan prints. recompute 1: the
// per-layer buffers hold one layer (see Activations)
static void llama_alloc_activations(Llama* m, int B, int T, int recompute) {
    size_t sizes[CPU_NUM_ACT];
    cpu_activation_sizes(&m->config, B, T, recompute, sizes);
    size_t total = 0;
    for (int i = 0; i < CPU_NUM_ACT; i++) total += sizes[i];
    free(m->act_memory);
    m->act_memory = (float*)callocCheck(total, sizeof(float));
    float** ptrs[CPU_NUM_ACT] = {
        &m->acts.res, &m->acts.ln1, &m->acts.rstd1, &m->acts.qkv,
        &m->acts.att, &m->acts.atty, &m->acts.res2, &m->acts.ln2, &m->acts.rstd2, &m->acts.gu,
        &m->acts.act, &m->acts.lnf, &m->acts.rstdf, &m->acts.logits, &m->acts.losses,
        &m->acts.lse, &m->acts.dres, &m->acts.scratch,
    };
    float* p = m->act_memory;
    for (int i = 0; i < CPU_NUM_ACT; i++) { *ptrs[i] = p; p += sizes[i]; }
    m->B = B; m->T = T;
    m->recompute = recompute;
    m->act_size = total;
}

// llama_set_grad_mode: lay out the gradient slots (see Llama.grad_mem) and allocate them zeroed
static void llama_set_grad_mode(Llama* m, int per_layer) {
    size_t size = grad_layout(&m->table, &m->config, per_layer, m->goff);
    free(m->grad_mem);
    m->grad_mem = (float*)callocCheck(size, sizeof(float));
    m->grad_size = size;
    m->grads_ready = NULL;
    m->grads_ctx = NULL;
}

// llama_weights_int8: --weights int8 (G > 0): the weights as loaded or drawn, quantized once to
// nearest, the params set to their dequantized values (a resume then replaces the codes with the
// checkpoint's: cpu_params_from_host); G 0 leaves the float weights alone
static void llama_weights_int8(Llama* m, int G, int embed) {
    weight8_init(&m->w8, &m->table, G, embed);
    weight8_quantize_params(&m->w8, &m->table, m->params);
}

static void llama_free(Llama* m) {
    param_table_free(&m->table);
    weight8_free(&m->w8);
    free(m->params); free(m->grad_mem); free(m->goff);
    free(m->act_memory); free(m->rope_cos); free(m->rope_sin);
}

// ----------------------------------------------------------------------------
// layers, forward and backward. Matmuls use PyTorch's layout: out = inp @ W^T, W (OC, IC).

// out (N, OC) = inp (N, IC) @ W^T
static void matmul_forward(float* out, const float* inp, const float* W, int N, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, W, IC, 0.0f, out, OC);
}

// dinp (N, IC) (+)= dout (N, OC) @ W ; dW (OC, IC) += dout^T @ inp
static void matmul_backward(float* dinp, float* dW, const float* dout, const float* inp, const float* W,
                            int N, int IC, int OC, float beta_dinp) {
    if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, W, IC, beta_dinp, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dW, IC);
}

// HF LlamaRMSNorm: y = w * (x / sqrt(mean(x^2) + eps)); the mean is summed in double
static void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* xi = x + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xi[c] * xi[c];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        rstd[i] = r;
        float* oi = out + (size_t)i * C;
        for (int c = 0; c < C; c++) oi[c] = w[c] * (xi[c] * r);
    }
}

// dx (+)= rstd * (w*dy - xhat * mean(w*dy*xhat)), dw += sum over rows of dy*xhat
static void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                             const float* rstd, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float* xi = x + (size_t)i * C;
        const float* dyi = dy + (size_t)i * C;
        float r = rstd[i];
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)(w[c] * dyi[c]) * (xi[c] * r);
        float mean = (float)(dot / C);
        float* dxi = dx + (size_t)i * C;
        for (int c = 0; c < C; c++) dxi[c] += r * (w[c] * dyi[c] - xi[c] * r * mean);
    }
    // the weight gradient sums over rows: parallel over columns keeps the order fixed
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double acc = 0.0;
        for (int i = 0; i < N; i++) acc += (double)dy[(size_t)i * C + c] * (x[(size_t)i * C + c] * rstd[i]);
        dw[c] += (float)acc;
    }
}

// rotate_half RoPE in place on nh heads of HD per (b, t) row, rows ld floats apart: pairs
// (i, i + HD/2) rotate by pos * inv_freq[i]. sign = +1 forward; -1 applies the inverse
// rotation, which is the backward pass.
static void rope_apply(float* x, const float* cosb, const float* sinb, int B, int T, int nh, int HD, int ld, float sign) {
    int half = HD / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float* cs = cosb + (size_t)t * half;
            const float* sn = sinb + (size_t)t * half;
            for (int h = 0; h < nh; h++) {
                float* xh = x + ((size_t)b * T + t) * ld + (size_t)h * HD;
                for (int i = 0; i < half; i++) {
                    float x1 = xh[i], x2 = xh[i + half];
                    float s = sign * sn[i];
                    xh[i] = x1 * cs[i] - x2 * s;
                    xh[i + half] = x2 * cs[i] + x1 * s;
                }
            }
        }
    }
}

// causal attention with grouped KV heads: query head h reads kv head h / (NH/NKV), as HF's
// repeat_kv. qkv (B,T,QD+2KV) holds q (NH,HD), k (NKV,HD), v (NKV,HD) per row; att (B,NH,T,T);
// y (B,T,NH,HD).
// One small sgemm per (b, h) inside the OpenMP loop: the OpenMP build of OpenBLAS runs those
// single-threaded, and the BLAS kernels beat hand loops even though they also compute the masked
// upper triangle.
static void attention_forward(float* y, float* att, const float* qkv, int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV, ld = C + 2 * KV;
    const float *q = qkv, *k = qkv + C, *v = qkv + C + KV;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kh = h / rep;
            const float* qh = q + (size_t)b * T * ld + h * HD;
            const float* kb = k + (size_t)b * T * ld + kh * HD;
            const float* vb = v + (size_t)b * T * ld + kh * HD;
            float* at = att + ((size_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, scale, qh, ld, kb, ld, 0.0f, at, T);
            for (int t = 0; t < T; t++) {
                float* row = at + (size_t)t * T;
                float maxv = -INFINITY;
                for (int s = 0; s <= t; s++) if (row[s] > maxv) maxv = row[s];
                double sum = 0.0;
                for (int s = 0; s <= t; s++) { float e = expf(row[s] - maxv); row[s] = e; sum += e; }
                float inv = (float)(1.0 / sum);
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, at, T, vb, ld, 0.0f,
                        y + (size_t)b * T * C + h * HD, C);
        }
    }
}

// dqkv (same layout as qkv) is overwritten. Parallel over (b, kv head) so that the heads sharing a kv head
// add into dk/dv in a fixed order (no races, deterministic). Per head:
// datt = dy v^T; dv += att^T dy; dpre = att * (datt - rowsum(att * datt)) * scale;
// dq = dpre k; dk += dpre^T q.
static void attention_backward(float* dqkv, const float* dy, const float* att, const float* qkv,
                               int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV, ld = C + 2 * KV;
    const float *q = qkv, *k = qkv + C, *v = qkv + C + KV;
    float *dq = dqkv, *dk = dqkv + C, *dv = dqkv + C + KV;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel
    {
        float* datt = (float*)mallocCheck(sizeof(float) * (size_t)T * T);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int kh = 0; kh < NKV; kh++) {
                const float* kb = k + (size_t)b * T * ld + kh * HD;
                const float* vb = v + (size_t)b * T * ld + kh * HD;
                float* dkb = dk + (size_t)b * T * ld + kh * HD;
                float* dvb = dv + (size_t)b * T * ld + kh * HD;
                for (int h = kh * rep; h < (kh + 1) * rep; h++) {
                    const float* at = att + ((size_t)b * NH + h) * T * T;
                    const float* dyh = dy + (size_t)b * T * C + h * HD;
                    const float* qh = q + (size_t)b * T * ld + h * HD;
                    float beta = h == kh * rep ? 0.0f : 1.0f; // the first head of the group overwrites
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1.0f, dyh, C, vb, ld, 0.0f, datt, T);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, at, T, dyh, C, beta, dvb, ld);
                    for (int t = 0; t < T; t++) {
                        const float* a = at + (size_t)t * T;
                        float* d = datt + (size_t)t * T;
                        double dsum = 0.0;
                        for (int s = 0; s <= t; s++) dsum += (double)a[s] * d[s];
                        float ds = (float)dsum;
                        for (int s = 0; s <= t; s++) d[s] = a[s] * (d[s] - ds) * scale;
                        for (int s = t + 1; s < T; s++) d[s] = 0.0f;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, datt, T, kb, ld, 0.0f,
                                dq + (size_t)b * T * ld + h * HD, ld);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1.0f, datt, T, qh, ld, beta, dkb, ld);
                }
            }
        }
        free(datt);
    }
}

// act (N, H) = silu(gate) * up, where gu (N, 2H) holds gate | up per row
static void swiglu_forward(float* act, const float* gu, size_t N, int H) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        const float* g = gu + i * 2 * H;
        const float* u = g + H;
        float* a = act + i * H;
        for (int j = 0; j < H; j++) a[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
}

// dgu (N, 2H) = dgate | dup from dact (N, H)
static void swiglu_backward(float* dgu, const float* dact, const float* gu, size_t N, int H) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        const float* g = gu + i * 2 * H;
        const float* u = g + H;
        const float* da = dact + i * H;
        float* dg = dgu + i * 2 * H;
        float* du = dg + H;
        for (int j = 0; j < H; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            du[j] = da[j] * g[j] * sig;
            dg[j] = da[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
        }
    }
}

// softmax cross-entropy per position; targets < 0 are ignored. Keeps each row's log-sum-exp
// for the backward pass, which then needs one exp per logit. Returns the number counted.
static int crossentropy_forward(float* losses, float* lse, const float* logits, const int* targets, int N, int V) {
    int n_valid = 0;
    #pragma omp parallel for schedule(static) reduction(+:n_valid)
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) { losses[i] = 0.0f; lse[i] = 0.0f; continue; }
        const float* li = logits + (size_t)i * V;
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++) if (li[j] > maxv) maxv = li[j];
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += expf(li[j] - maxv);
        double l = (double)maxv + log(sum);
        lse[i] = (float)l;
        losses[i] = (float)(l - (double)li[targets[i]]);
        n_valid++;
    }
    return n_valid;
}

// in place: logits -> dlogits = (softmax - onehot) * dloss, zero rows for ignored targets
static void crossentropy_backward(float* logits, const float* lse, const int* targets, int N, int V, float dloss) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float* li = logits + (size_t)i * V;
        if (targets[i] < 0) { memset(li, 0, sizeof(float) * V); continue; }
        float m = lse[i];
        for (int j = 0; j < V; j++) li[j] = expf(li[j] - m) * dloss;
        li[targets[i]] -= dloss;
    }
}

// layer l's slices of the activations. Each layer's block is laid out with the allocated B, T
// strides, and a smaller forward (sampling) uses the front of each block. With recompute every
// layer maps to the one layer of buffers; x and xout are always layer l's own residual slices.
typedef struct {
    float *x, *ln1, *rstd1, *qkv, *att, *atty, *x2, *ln2, *rstd2, *gu, *act, *xout;
} LayerActs;

static LayerActs layer_acts(Llama* m, int l) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    size_t C = c->C, H = c->H, QD = llama_qdim(c), KV = llama_kvdim(c), sBT = (size_t)m->B * m->T;
    size_t k = m->recompute ? 0 : (size_t)l; // the block of the per-layer buffers
    LayerActs la;
    la.x = a->res + l * sBT * C;
    la.ln1 = a->ln1 + k * sBT * C;
    la.rstd1 = a->rstd1 + k * sBT;
    la.qkv = a->qkv + k * sBT * (QD + 2 * KV);
    la.att = a->att + k * (size_t)m->B * c->NH * m->T * m->T;
    la.atty = a->atty + k * sBT * QD;
    la.x2 = a->res2 + k * sBT * C;
    la.ln2 = a->ln2 + k * sBT * C;
    la.rstd2 = a->rstd2 + k * sBT;
    la.gu = a->gu + k * sBT * 2 * H;
    la.act = a->act + k * sBT * H;
    la.xout = a->res + (l + 1) * sBT * C;
    return la;
}

// layer_forward: layer l of the forward pass on its input la.x, filling its activations (B, T as
// llama_forward's). write_out 0 stops after act: backward's recompute needs every activation
// but not the output, which the forward already left in res[l + 1]. The same calls in the same
// order as the forward, so a recompute reproduces the forward's values bit for bit.
static void layer_forward(Llama* m, int l, int B, int T, int write_out) {
    const LlamaConfig* c = &m->config;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = c->HD, QD = NH * HD, KV = NKV * HD;
    size_t BT = (size_t)B * T;
    LayerActs la = layer_acts(m, l);
    float *x = la.x, *ln1 = la.ln1, *rstd1 = la.rstd1, *qkv = la.qkv, *att = la.att;
    float *atty = la.atty, *x2 = la.x2, *ln2 = la.ln2, *rstd2 = la.rstd2, *gu = la.gu, *act = la.act;
    float* xout = la.xout;
    rmsnorm_forward(ln1, rstd1, x, P(m, pt_layer(l, P_LN1)), (int)BT, C, c->norm_eps);
    matmul_forward(qkv, ln1, P(m, pt_layer(l, P_WQ)), (int)BT, C, QD + 2 * KV); // Wq | Wk | Wv
    rope_apply(qkv, m->rope_cos, m->rope_sin, B, T, NH, HD, QD + 2 * KV, 1.0f);
    rope_apply(qkv + QD, m->rope_cos, m->rope_sin, B, T, NKV, HD, QD + 2 * KV, 1.0f);
    attention_forward(atty, att, qkv, B, T, NH, NKV, HD);
    matmul_forward(x2, atty, P(m, pt_layer(l, P_WO)), (int)BT, QD, C);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * C; i++) x2[i] += x[i];
    rmsnorm_forward(ln2, rstd2, x2, P(m, pt_layer(l, P_LN2)), (int)BT, C, c->norm_eps);
    matmul_forward(gu, ln2, P(m, pt_layer(l, P_WG)), (int)BT, C, 2 * H); // Wgate | Wup
    swiglu_forward(act, gu, BT, H);
    if (!write_out) return;
    matmul_forward(xout, act, P(m, pt_layer(l, P_WD)), (int)BT, H, C);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * C; i++) xout[i] += x2[i];
}

// llama_forward: inputs (B, T) token ids; targets (B, T) or NULL (then only logits). B and T
// may be smaller than the allocated sizes (sampling runs B=1 and a growing T).
static void llama_forward(Llama* m, const int* inputs, const int* targets, int B, int T) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    int C = c->C, V = c->V, L = c->L;
    size_t BT = (size_t)B * T;
    if (B > m->B || T > m->T) die("internal: forward with B=%d T=%d beyond the allocated %d x %d", B, T, m->B, m->T);
    // activations are laid out with the allocated B, T strides per layer
    size_t sBT = (size_t)m->B * m->T;
    for (size_t i = 0; i < BT; i++) {
        int tok = inputs[i];
        if (tok < 0 || tok >= V) die("token id %d at position %zu is outside the vocabulary of %d", tok, i, V);
        memcpy(a->res + i * C, P(m, 0) + (size_t)tok * C, sizeof(float) * C);
    }
    for (int l = 0; l < L; l++) layer_forward(m, l, B, T, 1);
    rmsnorm_forward(a->lnf, a->rstdf, a->res + L * sBT * C, P(m, pt_norm(c)), (int)BT, C, c->norm_eps);
    matmul_forward(a->logits, a->lnf, P(m, pt_lm_head(c)), (int)BT, C, V);
    if (targets == NULL) { m->mean_loss = -1.0f; m->n_valid = 0; return; }
    for (size_t i = 0; i < BT; i++) {
        if (targets[i] >= V) die("target id %d at position %zu is outside the vocabulary of %d", targets[i], i, V);
    }
    m->n_valid = crossentropy_forward(a->losses, a->lse, a->logits, targets, (int)BT, V);
    double sum = 0.0;
    for (size_t i = 0; i < BT; i++) sum += a->losses[i];
    m->mean_loss = m->n_valid > 0 ? (float)(sum / m->n_valid) : 0.0f;
}

static void llama_zero_grad(Llama* m) { memset(m->grad_mem, 0, sizeof(float) * m->grad_size); }

// per-layer mode: tensors first..last now hold their final gradient for this micro-batch
static inline void grads_ready(Llama* m, int first, int last) { if (m->grads_ready) m->grads_ready(m->grads_ctx, first, last); }

// llama_backward: ADDS the gradient of (grad_scale * mean loss of the last forward) into
// the gradient slots (grad_scale = 1/grad_accum when accumulating). Needs the forward's targets.
static void llama_backward(Llama* m, const int* inputs, const int* targets, int B, int T, float grad_scale) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = c->HD, QD = NH * HD, KV = NKV * HD, V = c->V, L = c->L;
    size_t BT = (size_t)B * T, sBT = (size_t)m->B * m->T;
    // every target ignored: the loss is constant and every gradient zero (per-layer mode still
    // walks the layers so that each tensor gets its update)
    int64_t n_norm = m->n_norm > 0 ? m->n_norm : m->n_valid;
    float dloss = n_norm > 0 ? grad_scale / (float)n_norm : 0.0f;
    crossentropy_backward(a->logits, a->lse, targets, (int)BT, V, dloss);
    float* dlogits = a->logits;
    float* dres = a->dres;     // (BT, C) gradient flowing into the residual stream
    float* dln = a->scratch;   // (BT, C)
    memset(dln, 0, sizeof(float) * BT * C);
    // tied: this adds lm_head's share into the embedding's slot, which the lookup completes last
    matmul_backward(dln, G(m, pt_lm_head(c)), dlogits, a->lnf, P(m, pt_lm_head(c)), (int)BT, C, V, 0.0f);
    if (!c->tied) grads_ready(m, pt_lm_head(c), pt_lm_head(c));
    memset(dres, 0, sizeof(float) * BT * C);
    rmsnorm_backward(dres, G(m, pt_norm(c)), dln, a->res + L * sBT * C, P(m, pt_norm(c)), a->rstdf, (int)BT, C);
    grads_ready(m, pt_norm(c), pt_norm(c));
    for (int l = L - 1; l >= 0; l--) {
        // recompute: the one layer of buffers still holds layer L-1's activations from the forward
        // (backward always follows its forward); every lower layer is recomputed from its input
        if (m->recompute && l < L - 1) layer_forward(m, l, B, T, 0);
        LayerActs la = layer_acts(m, l);
        float *x = la.x, *ln1 = la.ln1, *rstd1 = la.rstd1, *qkv = la.qkv, *att = la.att;
        float *atty = la.atty, *x2 = la.x2, *ln2 = la.ln2, *rstd2 = la.rstd2, *gu = la.gu, *act = la.act;
        // MLP: dres is d(xout) = d(x2) through the skip, plus the MLP branch
        float* dact = a->scratch;                 // (BT, H)
        float* dgu = a->scratch + BT * H;         // (BT, 2H) dgate | dup
        matmul_backward(dact, G(m, pt_layer(l, P_WD)), dres, act, P(m, pt_layer(l, P_WD)), (int)BT, H, C, 0.0f);
        grads_ready(m, pt_layer(l, P_WD), pt_layer(l, P_WD));
        swiglu_backward(dgu, dact, gu, BT, H);
        float* dln2 = a->lnf; // the final norm's output is no longer needed: reuse it as (BT, C)
        // Wgate | Wup and their gradient slots are adjacent: one matmul for both
        matmul_backward(dln2, G(m, pt_layer(l, P_WG)), dgu, ln2, P(m, pt_layer(l, P_WG)), (int)BT, C, 2 * H, 0.0f);
        grads_ready(m, pt_layer(l, P_WG), pt_layer(l, P_WU)); // gate | up
        rmsnorm_backward(dres, G(m, pt_layer(l, P_LN2)), dln2, x2, P(m, pt_layer(l, P_LN2)), rstd2, (int)BT, C);
        grads_ready(m, pt_layer(l, P_LN2), pt_layer(l, P_LN2));
        // attention: dres is now d(x2)
        float* datty = a->lnf;                    // (BT, QD)
        matmul_backward(datty, G(m, pt_layer(l, P_WO)), dres, atty, P(m, pt_layer(l, P_WO)), (int)BT, QD, C, 0.0f);
        grads_ready(m, pt_layer(l, P_WO), pt_layer(l, P_WO));
        float* dqkv = a->scratch;                 // (BT, QD + 2KV)
        attention_backward(dqkv, datty, att, qkv, B, T, NH, NKV, HD);
        rope_apply(dqkv, m->rope_cos, m->rope_sin, B, T, NH, HD, QD + 2 * KV, -1.0f);
        rope_apply(dqkv + QD, m->rope_cos, m->rope_sin, B, T, NKV, HD, QD + 2 * KV, -1.0f);
        float* dln1 = a->lnf;                     // (BT, C)
        matmul_backward(dln1, G(m, pt_layer(l, P_WQ)), dqkv, ln1, P(m, pt_layer(l, P_WQ)), (int)BT, C, QD + 2 * KV, 0.0f);
        grads_ready(m, pt_layer(l, P_WQ), pt_layer(l, P_WV)); // q | k | v
        rmsnorm_backward(dres, G(m, pt_layer(l, P_LN1)), dln1, x, P(m, pt_layer(l, P_LN1)), rstd1, (int)BT, C);
        grads_ready(m, pt_layer(l, P_LN1), pt_layer(l, P_LN1));
    }
    // embedding: rows of repeated tokens add up, so keep it serial over positions
    float* dwte = G(m, 0);
    for (size_t i = 0; i < BT; i++) {
        float* row = dwte + (size_t)inputs[i] * C;
        const float* d = dres + i * C;
        for (int j = 0; j < C; j++) row[j] += d[j];
    }
    grads_ready(m, 0, 0);
}

// ----------------------------------------------------------------------------
// optimizer: one call per tensor (design.md). Whole-model mode calls optimizer_update for
// every tensor after backward; --per-layer calls it from inside backward the moment a tensor's
// gradient is final. State per tensor follows tensor_layout() in galore.h, the same layout the
// memory plan counts.

// LAPACK's SVD, the routine torch uses on the CPU, so singular-vector signs agree with the
// reference (gfortran passes the length of a character argument as a hidden last argument).
// extern "C" also when C++ compiles this file (the GPU tests include it inside a namespace)
#ifdef __cplusplus
extern "C"
#endif
void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda, float* s, float* u,
                    const int* ldu, float* vt, const int* ldvt, float* work, const int* lwork, int* iwork, int* info,
                    size_t jobz_len);
// LAPACK's QR (the randomized refresh re-orthonormalizes its sketches): sgeqrf factors A = QR in
// Householder form, sorgqr forms the orthonormal Q from it
#ifdef __cplusplus
extern "C"
#endif
void sgeqrf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work, const int* lwork, int* info);
#ifdef __cplusplus
extern "C"
#endif
void sorgqr_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau, float* work, const int* lwork,
             int* info);

typedef struct {
    OptimConfig cfg;
    int n;                    // tensors
    TensorLayout* lay;        // (n)
    float** m; float** v;     // fp32 moments (srows x scols), or NULL
    uint8_t** qm; uint8_t** qv;           // 8-bit moments, or NULL
    float** absmax_m; float** absmax_v;   // (nblocks) each
    float** proj;             // projector (m x r left, r x n right), or NULL
    int* has_proj;
    float* fmem; uint8_t* qmem;           // the allocations behind the tables
    float map_m[256], map_v[256];         // bitsandbytes' dynamic maps: signed for m, unsigned for v
    float* R;                 // (max snumel) low-rank gradient
    float* N;                 // (max snumel) low-rank direction / update
    float* U;                 // (max galore numel) projected-back update
    int64_t refreshes;        // SVDs done
    // the projector refreshes of this step, for the progress lines (refresh_progress)
    int refresh_total, refresh_done;
    double refresh_secs, refresh_printed;
    float** lim;              // Fira and APOLLO: the norm-growth limiter's previous ||S|| (layout.limiter floats), or NULL
    float* phi;               // fira: (max channels) the per-channel scale phi
    double* chan;             // (3 x max channels) channel_sumsq's results: Fira's of N and R, APOLLO's of G, R, D
} Optimizer;

static void optimizer_init(Optimizer* o, const ParamTable* pt, const OptimConfig* cfg) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = pt->n;
    o->lay = (TensorLayout*)mallocCheck(sizeof(TensorLayout) * pt->n);
    size_t nf = 0, nq = 0, max_s = 0, max_full = 0, max_ch = 1;
    for (int i = 0; i < pt->n; i++) {
        TensorLayout* l = &o->lay[i];
        tensor_layout(l, &pt->info[i], cfg);
        if (l->full_grad && (size_t)l->r > max_ch) max_ch = (size_t)l->r; // APOLLO's tensor-wise row sums of a left R: r of them (r is not clipped)
        if (l->state == STATE_8BIT) { nq += 2 * (size_t)l->snumel; nf += 2 * (size_t)l->nblocks; }
        else nf += 2 * (size_t)l->snumel;
        nf += (size_t)l->proj_numel + (size_t)l->limiter;
        if (l->side != SIDE_NONE) {
            if ((size_t)l->snumel > max_s) max_s = (size_t)l->snumel;
            if ((size_t)(l->m * l->n) > max_full) max_full = (size_t)(l->m * l->n);
            if ((size_t)(l->m > l->n ? l->m : l->n) > max_ch) max_ch = (size_t)(l->m > l->n ? l->m : l->n);
        }
    }
    o->fmem = (float*)callocCheck(nf, sizeof(float));
    o->qmem = (uint8_t*)callocCheck(nq, 1);
    size_t ptrs = sizeof(void*) * (size_t)pt->n;
    o->m = (float**)callocCheck(1, ptrs); o->v = (float**)callocCheck(1, ptrs);
    o->qm = (uint8_t**)callocCheck(1, ptrs); o->qv = (uint8_t**)callocCheck(1, ptrs);
    o->absmax_m = (float**)callocCheck(1, ptrs); o->absmax_v = (float**)callocCheck(1, ptrs);
    o->proj = (float**)callocCheck(1, ptrs);
    o->lim = (float**)callocCheck(1, ptrs);
    o->has_proj = (int*)callocCheck((size_t)pt->n, sizeof(int));
    float* f = o->fmem;
    uint8_t* q = o->qmem;
    for (int i = 0; i < pt->n; i++) {
        TensorLayout* l = &o->lay[i];
        if (l->state == STATE_8BIT) {
            o->qm[i] = q; q += l->snumel;
            o->qv[i] = q; q += l->snumel;
            o->absmax_m[i] = f; f += l->nblocks;
            o->absmax_v[i] = f; f += l->nblocks;
        } else {
            o->m[i] = f; f += l->snumel;
            o->v[i] = f; f += l->snumel;
        }
        if (l->proj_numel) { o->proj[i] = f; f += l->proj_numel; }
        if (l->limiter) { o->lim[i] = f; f += l->limiter; }
    }
    if (optim_is_8bit(cfg->kind)) {
        adam8bit_create_dynamic_map(o->map_m, 1);
        adam8bit_create_dynamic_map(o->map_v, 0);
    }
    o->R = (float*)callocCheck(max_s, sizeof(float));
    o->N = (float*)callocCheck(max_s, sizeof(float));
    o->U = (float*)callocCheck(max_full, sizeof(float));
    o->phi = (float*)callocCheck(optim_is_fira(cfg->kind) ? max_ch : 1, sizeof(float)); // Fira's phi (memplan.h counts it)
    // channel_sumsq's results: Fira's of N and R, APOLLO's of G, R and D (max channels each)
    o->chan = (double*)callocCheck(optim_is_apollo(cfg->kind) || optim_is_fira(cfg->kind) ? 3 * max_ch : 1, sizeof(double));
}

static void optimizer_free(Optimizer* o) {
    free(o->lay); free(o->fmem); free(o->qmem);
    free(o->m); free(o->v); free(o->qm); free(o->qv); free(o->absmax_m); free(o->absmax_v);
    free(o->proj); free(o->has_proj); free(o->R); free(o->N); free(o->U); free(o->lim); free(o->phi); free(o->chan);
}

// the LAPACK workspace (floats) that QRs of a (rows x cols) matrix need, rows >= cols
static int galore_qr_lwork(int rows, int cols) {
    int lw = -1, info = 0, best = 1;
    float q = 0.0f, dummy = 0.0f;
    sgeqrf_(&rows, &cols, &dummy, &rows, &dummy, &q, &lw, &info);
    if ((int)q + 1 > best) best = (int)q + 1;
    sorgqr_(&rows, &cols, &cols, &dummy, &rows, &dummy, &q, &lw, &info);
    if ((int)q + 1 > best) best = (int)q + 1;
    return best;
}

// a (rows x cols, column-major, rows >= cols) := the orthonormal Q of its QR, in place
static void galore_orthonormalize(float* a, int rows, int cols, float* tau, float* work, int lwork) {
    int info = 0;
    sgeqrf_(&rows, &cols, a, &rows, tau, work, &lwork, &info);
    if (info == 0) sorgqr_(&rows, &cols, &cols, a, &rows, tau, work, &lwork, &info);
    if (info != 0) die("internal: LAPACK QR of a %d x %d sketch failed (info %d)", rows, cols, info);
}

// galore_range_finder: the projector of G (M x N row-major) at rank r for this side from a
// randomized range finder with power iterations (galore.h explains it): P (r x N) right or
// (M x r) left, the top r vectors by descending singular value, galore_sign_fix's convention.
// Omega is the stream `seed` of galore_gaussian, so the GPU (galore.cuh) draws the same one.
//
// Column-major throughout (LAPACK's layout): the row-major G is the column-major Gt (N x M),
// ld N. A, whose left singular vectors are wanted, is Gt for the right side (len = N, other = M)
// and Gt^T for the left one (len = M, other = N); opA says which.
static void galore_range_finder(const float* G, int M, int N, int r, int side, uint64_t seed, float* P) {
    int right = side == SIDE_RIGHT;
    int len = right ? N : M, other = right ? M : N, l = (int)galore_svd_width(M, N, r);
    CBLAS_TRANSPOSE opA = right ? CblasNoTrans : CblasTrans, opAt = right ? CblasTrans : CblasNoTrans;
    float* Q = (float*)mallocCheck(sizeof(float) * (size_t)len * l);   // (len, l) the sketch Y, then its Q
    float* Z = (float*)mallocCheck(sizeof(float) * (size_t)other * l); // (other, l) Omega, then A^T Q; later B (l, other)
    float* vt = (float*)mallocCheck(sizeof(float) * (size_t)other * l);// (l, other) B's right vectors (not used)
    float* ub = (float*)mallocCheck(sizeof(float) * (size_t)l * l);    // (l, l) B's left vectors
    float* sv = (float*)mallocCheck(sizeof(float) * l);                // (l) B's singular values
    float* tau = (float*)mallocCheck(sizeof(float) * l);
    int* iwork = (int*)mallocCheck(sizeof(int) * 8 * (size_t)l);
    int lwork = galore_qr_lwork(len, l), lw2 = galore_qr_lwork(other, l), info = 0, query = -1;
    if (lw2 > lwork) lwork = lw2;
    float wq = 0.0f;
    sgesdd_("S", &l, &other, Z, &l, sv, ub, &l, vt, &l, &wq, &query, iwork, &info, 1);
    if ((int)wq + 1 > lwork) lwork = (int)wq + 1;
    float* work = (float*)mallocCheck(sizeof(float) * (size_t)lwork);
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < (int64_t)other * l; k++) Z[k] = galore_gaussian(seed, (uint64_t)k);
    cblas_sgemm(CblasColMajor, opA, CblasNoTrans, len, l, other, 1.0f, G, N, Z, other, 0.0f, Q, len);     // Y = A Omega
    galore_orthonormalize(Q, len, l, tau, work, lwork);
    for (int it = 0; it < GALORE_SVD_POWER_ITERS; it++) {
        cblas_sgemm(CblasColMajor, opAt, CblasNoTrans, other, l, len, 1.0f, G, N, Q, len, 0.0f, Z, other); // Z = A^T Q
        galore_orthonormalize(Z, other, l, tau, work, lwork);
        cblas_sgemm(CblasColMajor, opA, CblasNoTrans, len, l, other, 1.0f, G, N, Z, other, 0.0f, Q, len);   // Y = A Z
        galore_orthonormalize(Q, len, l, tau, work, lwork);
    }
    float* B = Z;
    cblas_sgemm(CblasColMajor, CblasTrans, opA, l, other, len, 1.0f, Q, len, G, N, 0.0f, B, l);              // B = Q^T A (l, other)
    sgesdd_("S", &l, &other, B, &l, sv, ub, &l, vt, &l, work, &lwork, iwork, &info, 1);
    if (info != 0) die("randomized SVD of a %d x %d gradient failed: LAPACK sgesdd info %d on its %d x %d sketch; hint: a NaN gradient?",
                       M, N, info, l, other);
    // U = Q ub[:, :r] (len, r): written as P (r, N) row-major = (N, r) column-major on the right,
    // and as its transpose P (M, r) row-major = (r, M) column-major on the left
    if (right) cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, N, r, l, 1.0f, Q, N, ub, l, 0.0f, P, N);
    else cblas_sgemm(CblasColMajor, CblasTrans, CblasTrans, r, M, l, 1.0f, ub, l, Q, M, 0.0f, P, r);
    galore_sign_fix(P, side, M, N, r);
    free(Q); free(Z); free(vt); free(ub); free(sv); free(tau); free(iwork); free(work);
}

// --- golore (issue 15) ---
// galore_proj_gaussian_orth: GoLore's projector (--proj random) of an M x N matrix at rank r on this
// side, independent of the gradient: the orthonormal Q of the QR of a len x r standard Gaussian
// (len = N right, M left; column-major, element k = galore_gaussian(seed, k): the matrix the GPU
// draws too), then galore_sign_fix's convention, so that LAPACK's and cuSOLVER's Householder signs
// cannot make the engines differ (P P^T, the subspace, is unchanged by it). P is (r x N) row-major
// right, which is the column-major (N x r) Q itself, or (M x r) row-major left, Q transposed.
static void galore_proj_gaussian_orth(float* P, int side, int M, int N, int r, uint64_t seed) {
    int right = side == SIDE_RIGHT, len = right ? N : M;
    float* Q = right ? P : (float*)mallocCheck(sizeof(float) * (size_t)len * r);
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < (int64_t)len * r; k++) Q[k] = galore_gaussian(seed, (uint64_t)k);
    int lwork = galore_qr_lwork(len, r);
    float* tau = (float*)mallocCheck(sizeof(float) * (size_t)r);
    float* work = (float*)mallocCheck(sizeof(float) * (size_t)lwork);
    galore_orthonormalize(Q, len, r, tau, work, lwork);
    if (!right) {
        for (int row = 0; row < M; row++) for (int j = 0; j < r; j++) P[(size_t)row * r + j] = Q[row + (size_t)j * M];
        free(Q);
    }
    galore_sign_fix(P, side, M, N, r);
    free(tau); free(work);
}
// --- end golore ---

// galore_refresh: the projector from the SVD of this gradient (fp32, economy, gesdd as torch),
// top-r singular vectors by descending singular value; or, where the layout says so
// (galore_svd_pick), from galore_range_finder with the Omega of (tensor, refresh round); or, with
// --proj random, GoLore's random orthonormal basis of (run seed, tensor, refresh round)
static void galore_refresh_one(Optimizer* o, int i, const float* G);
// galore_refresh: one tensor's refresh, timed; a step's refreshes that take over a second say how
// far they are (the first one of a 135M model takes minutes on 2 cores), once a second
static void galore_refresh(Optimizer* o, int i, const float* G) {
    double t0 = now_seconds();
    galore_refresh_one(o, i, G);
    o->refresh_secs += now_seconds() - t0;
    o->refresh_done++;
    if (o->refresh_secs > 1.0 && o->refresh_secs - o->refresh_printed >= 1.0 && o->refresh_done < o->refresh_total) {
        printf("  projector refresh: %d of %d matrices, %.0f s\n", o->refresh_done, o->refresh_total, o->refresh_secs);
        fflush(stdout);
        o->refresh_printed = o->refresh_secs;
    }
}

static void galore_refresh_one(Optimizer* o, int i, const float* G) {
    const TensorLayout* l = &o->lay[i];
    if (o->cfg.projector == PROJECTOR_RANDOM) {
        int64_t n_galore = galore_count_projected(o->lay, o->n);
        uint64_t seed = galore_proj_seed(o->cfg.seed, i, galore_svd_round(o->refreshes, n_galore));
        galore_proj_gaussian_orth(o->proj[i], l->side, (int)l->m, (int)l->n, (int)l->r, seed);
        o->has_proj[i] = 1;
        o->refreshes++;
        return;
    }
    if (l->svd == SVD_RANDOMIZED) {
        int64_t n_galore = galore_count_projected(o->lay, o->n);
        uint64_t seed = galore_svd_seed(i, galore_svd_round(o->refreshes, n_galore));
        galore_range_finder(G, (int)l->m, (int)l->n, (int)l->r, l->side, seed, o->proj[i]);
        o->has_proj[i] = 1;
        o->refreshes++;
        return;
    }
    int M = (int)l->m, N = (int)l->n, K = M < N ? M : N, r = (int)l->r;
    // LAPACK is column-major: copy G (M x N row-major) into A (M x N column-major), as torch does
    float* a = (float*)mallocCheck(sizeof(float) * (size_t)M * N);
    for (int row = 0; row < M; row++)
        for (int col = 0; col < N; col++) a[row + (size_t)col * M] = G[(size_t)row * N + col];
    float* s = (float*)mallocCheck(sizeof(float) * K);
    float* u = (float*)mallocCheck(sizeof(float) * (size_t)M * K);
    float* vt = (float*)mallocCheck(sizeof(float) * (size_t)K * N);
    int* iwork = (int*)mallocCheck(sizeof(int) * 8 * (size_t)K);
    int lwork = -1, info = 0;
    float wq;
    sgesdd_("S", &M, &N, a, &M, s, u, &M, vt, &K, &wq, &lwork, iwork, &info, 1);
    lwork = (int)wq + 1;
    float* work = (float*)mallocCheck(sizeof(float) * (size_t)lwork);
    // one BLAS thread inside the SVD: sgesdd is thousands of small level-2 BLAS calls, each a
    // parallel region whose barrier waits for every thread; on a machine whose cores are busy
    // that wait is a scheduler time slice per call. Measured, llama_60m's first refresh (56
    // matrices, 2 cores, load average 7): 318 s with 2 BLAS threads, 4.3 s with 1 (README)
    // The count is read before: OpenBLAS's OpenMP build sets OpenMP's own count with it, so
    // get_threads() afterwards said 1, and every later matmul and loop of the run used one core
    // (the GaLore kinds ran at half speed after their first refresh)
    int nt = get_threads();
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    sgesdd_("S", &M, &N, a, &M, s, u, &M, vt, &K, work, &lwork, iwork, &info, 1);
    if (openblas_set_num_threads) openblas_set_num_threads(nt);
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    if (info != 0) die("SVD of the gradient of tensor %d (%d x %d) failed: LAPACK sgesdd info %d; hint: a NaN gradient?", i, M, N, info);
    float* P = o->proj[i];
    if (l->side == SIDE_RIGHT) {
        for (int j = 0; j < r; j++) for (int col = 0; col < N; col++) P[(size_t)j * N + col] = vt[j + (size_t)col * K];
    } else {
        for (int row = 0; row < M; row++) for (int j = 0; j < r; j++) P[(size_t)row * r + j] = u[row + (size_t)j * M];
    }
    galore_sign_fix(P, l->side, M, N, r);
    o->has_proj[i] = 1;
    o->refreshes++;
    free(a); free(s); free(u); free(vt); free(iwork); free(work);
}

// R = P^T G (left, r x n) or G P^T (right, m x r); beta 1 adds into R (low-rank accumulation)
static void galore_project(const Optimizer* o, int i, const float* G, float* R, float beta) {
    const TensorLayout* l = &o->lay[i];
    int M = (int)l->m, N = (int)l->n, r = (int)l->r;
    if (l->side == SIDE_RIGHT) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r, N, 1.0f, G, N, o->proj[i], N, beta, R, r);
    else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, N, M, 1.0f, o->proj[i], r, G, N, beta, R, N);
}

// U = scale * (P N) (left) or scale * (N P) (right), m x n; beta 1 adds into U (Fira's residual)
static void galore_project_back(const Optimizer* o, int i, const float* Nlow, float* U, float beta) {
    const TensorLayout* l = &o->lay[i];
    int M = (int)l->m, N = (int)l->n, r = (int)l->r;
    if (l->side == SIDE_RIGHT) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, r, o->cfg.scale, Nlow, r, o->proj[i], N, beta, U, N);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, r, o->cfg.scale, o->proj[i], r, Nlow, N, beta, U, N);
}

static double sumsq(const float* x, size_t n);

// channel_sumsq: the per-channel sums of squares of X (rows x cols, row-major) in double, each
// channel's terms added in index order (so the result is the same on any thread count):
// by_row: out[a] = sum_b X[a,b]^2 (rows entries), else out[b] = sum_a X[a,b]^2 (cols entries).
// Fira's phi and APOLLO's factors both take their norms from it (the GPU's apollo_sumsq kernels
// add each channel in a fixed order too, not this one: the two differ by double roundings only).
static void channel_sumsq(double* out, const float* X, int64_t rows, int64_t cols, int by_row) {
    if (by_row) {
        #pragma omp parallel for schedule(static)
        for (int64_t a = 0; a < rows; a++) {
            double acc = 0.0;
            for (int64_t b = 0; b < cols; b++) acc += (double)X[a * cols + b] * X[a * cols + b];
            out[a] = acc;
        }
    } else {
        #pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < cols; b++) {
            double acc = 0.0;
            for (int64_t a = 0; a < rows; a++) acc += (double)X[a * cols + b] * X[a * cols + b];
            out[b] = acc;
        }
    }
}

// --- fira (issue 15) ---
// fira_residual: o->U = the limited, scaled residual S of GaLore matrix i (galore.h's Fira): from
// its full gradient G (m x n), the low-rank gradient R and Adam's direction Nl (srows x scols).
// first: the tensor's first update (the limiter stores the norm and divides by 1).
static void fira_residual(Optimizer* o, int i, const float* G, const float* R, const float* Nl, int first) {
    const TensorLayout* l = &o->lay[i];
    int64_t M = l->m, N = l->n, sr = l->srows, sc = l->scols;
    int cols = fira_channel_cols(l);
    int64_t nch = cols ? sc : sr;
    if (nch != (cols ? N : M)) die("internal: fira channel count %lld does not match the %lld x %lld gradient", (long long)nch, (long long)M, (long long)N);
    float* phi = o->phi;
    // phi_c = ||N_c|| / (||R_c|| + 1e-8): the norms in double, rounded to fp32 as torch.norm's results
    double *ssN = o->chan, *ssR = o->chan + nch;
    channel_sumsq(ssN, Nl, sr, sc, !cols);
    channel_sumsq(ssR, R, sr, sc, !cols);
    for (int64_t c = 0; c < nch; c++) phi[c] = channel_norm_ratio(ssN[c], ssR[c]);
    float* U = o->U;
    galore_project_back(o, i, R, U, 0.0f); // alpha back(R)
    #pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < M; row++)
        for (int64_t col = 0; col < N; col++) {
            int64_t k = row * N + col;
            U[k] = fira_residual_elem(G[k], U[k], phi[cols ? col : row]);
        }
    float next, lim = fira_limiter((float)sqrt(sumsq(U, (size_t)(M * N))), o->lim[i][0], first, &next);
    if (lim != 1.0f) {
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < M * N; k++) U[k] = U[k] / lim;
    }
    o->lim[i][0] = next;
}
// --- end fira ---

// fira_or_galore_apply: W += -step_size U of GaLore matrix i from its direction Nl (srows x scols):
// U = alpha back(Nl) under galore_adamw (and galore_adamw8bit, whose kernel applied lr: step -1),
// S + alpha back(Nl) under Fira (fira_adamw and fira_adamw8bit; G the full gradient, R its
// projection). The caller decays after.
static void fira_or_galore_apply(Optimizer* o, int i, float* p, const float* G, const float* R, const float* Nl, float step_size, int first) {
    int fira = optim_is_fira(o->cfg.kind);
    if (fira) fira_residual(o, i, G, R, Nl, first);
    galore_project_back(o, i, Nl, o->U, fira ? 1.0f : 0.0f);
    const float* U = o->U;
    int64_t n = o->lay[i].m * o->lay[i].n;
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; k++) p[k] = p[k] + (-step_size) * U[k];
}
// ---- APOLLO (galore.h's APOLLO section has the math) ----
// apollo_update: one step of APOLLO matrix i from its full gradient G (m x n) at 1-based step t
static void apollo_update(Optimizer* o, int i, float* p, const float* G, float lr, int64_t t) {
    const OptimConfig* c = &o->cfg;
    const TensorLayout* l = &o->lay[i];
    int first = !o->has_proj[i];
    if (first || galore_refresh_due(t, c->update_proj_gap)) {
        galore_proj_random(o->proj[i], l, apollo_proj_seed(i, apollo_round(t, c->update_proj_gap)), apollo_proj_scale(l->r));
        o->has_proj[i] = 1;
    }
    galore_project(o, i, G, o->R, 0.0f);
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float* R = o->R;
    float* D = o->N;
    int64_t sn = l->snumel, M = l->m, N = l->n, scols = l->scols;
    if (l->state == STATE_8BIT || c->kind == OPTIM_APOLLO_ADAMW8BIT) {
        memset(D, 0, sizeof(float) * (size_t)sn);
        if (l->state == STATE_8BIT)
            adam8bit_update(D, R, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], sn, o->map_m, o->map_v, b1, b2, eps, 1.0f, 0.0f, (int)t);
        else adam32_update(D, R, o->m[i], o->v[i], sn, b1, b2, eps, 1.0f, 0.0f, (int)t);
        float ds = apollo_dir_scale(t, b1, b2);
        for (int64_t k = 0; k < sn; k++) D[k] *= ds;
    } else {
        float *mm = o->m[i], *vv = o->v[i];
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < sn; k++) D[k] = adam_hf_elem(R[k], &mm[k], &vv[k], b1, b2, eps);
    }
    // per-channel sums of squares of G, R, D in double (channel_sumsq: by rows of G on the right
    // side, columns on the left; tensor-wise: the row sums, which apollo_factors adds by apollo_sum)
    int tw = c->scale_type == APOLLO_SCALE_TENSOR, by_row = tw || l->side == SIDE_RIGHT;
    int64_t nch = apollo_channels(l, c->scale_type);
    int64_t nG = by_row ? M : N, nR = by_row ? l->srows : scols; // the sums' lengths (<= max channels, optimizer_init)
    double *ssG = o->chan, *ssR = o->chan + nG, *ssD = o->chan + nG + nR;
    channel_sumsq(ssG, G, M, N, by_row);
    channel_sumsq(ssR, R, l->srows, scols, by_row);
    channel_sumsq(ssD, D, l->srows, scols, by_row);
    // the factors s_c into o->U's first nch floats, ||S||^2 = sum s_c^2 ||G_c||^2
    float* s = o->U;
    double ssS = apollo_factors(s, o->chan, nG, nR, nch, tw, 1.0);
    float lim = apollo_limiter((float)sqrt(ssS), o->lim[i], first);
    float step_size = galore_hf_step_size(lr, b1, b2, t);
    float sq = sqrtf(c->apollo_scale);
    #pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < M; a++)
        for (int64_t b = 0; b < N; b++)
            p[a * N + b] = apollo_elem(p[a * N + b], G[a * N + b], s[apollo_channel_of(l->side, tw, a, b)], lim, sq, step_size);
    if (c->weight_decay > 0.0f) {
        float dec = -lr * c->weight_decay;
        int64_t n = M * N;
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; k++) p[k] = p[k] + dec * p[k];
    }
}
// ---- end APOLLO ----

// optimizer_update: one step of tensor i. g is its full gradient (g_lowrank 0), or, for a GaLore
// tensor between refreshes, its already projected gradient R (g_lowrank 1: low-rank
// accumulation). t is the 1-based step; lr includes the schedule.
static void optimizer_update(Optimizer* o, int i, float* p, const float* g, int g_lowrank, float lr, int64_t t) {
    const OptimConfig* c = &o->cfg;
    const TensorLayout* l = &o->lay[i];
    int64_t n = l->m * l->n;
    const float* gs = g; // the gradient the moments see: R under GaLore
    if (optim_is_apollo(o->cfg.kind) && l->full_grad) {
        if (g_lowrank) die("internal: APOLLO tensor %d got a low-rank gradient", i);
        apollo_update(o, i, p, g, lr, t);
        return;
    }
    int first = !o->has_proj[i]; // the tensor's first update (every GaLore tensor refreshes at it)
    if (l->side != SIDE_NONE) {
        if (!g_lowrank) {
            if (!o->has_proj[i] || galore_refresh_due(t, c->update_proj_gap)) galore_refresh(o, i, g);
            galore_project(o, i, g, o->R, 0.0f);
            gs = o->R;
        } else if (!o->has_proj[i] || galore_refresh_due(t, c->update_proj_gap)) {
            die("internal: tensor %d got a low-rank gradient at a refresh step", i);
        }
    }
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    switch (optim_plain_kind(c->kind)) {
    case OPTIM_ADAMW:
    case OPTIM_ADAM: {
        // torch: step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) + eps
        float step_size = (float)(lr / (1.0 - pow((double)b1, (double)t)));
        float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, (double)t)));
        float decay = c->kind == OPTIM_ADAMW ? 1.0f - lr * wd : 1.0f;
        float l2 = c->kind == OPTIM_ADAM ? wd : 0.0f;
        float *mm = o->m[i], *vv = o->v[i];
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; k++) p[k] = adam_torch_elem(p[k], g[k], &mm[k], &vv[k], b1, b2, eps, step_size, inv_bc2, decay, l2);
        break;
    }
    case OPTIM_GALORE_ADAMW:
    case OPTIM_FIRA_ADAMW: {
        // HF AdamW: step_size = lr sqrt(1 - b2^t) / (1 - b1^t); eps is not bias-corrected
        float step_size = galore_hf_step_size(lr, b1, b2, t);
        float *mm = o->m[i], *vv = o->v[i];
        if (l->side == SIDE_NONE) {
            #pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < n; k++) p[k] = p[k] + (-step_size) * adam_hf_elem(g[k], &mm[k], &vv[k], b1, b2, eps);
        } else {
            float* Nl = o->N;
            #pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < l->snumel; k++) Nl[k] = adam_hf_elem(gs[k], &mm[k], &vv[k], b1, b2, eps);
            // Fira: U = S, the residual (g is the full gradient: full_grad), then U += alpha back(N)
            fira_or_galore_apply(o, i, p, g, gs, Nl, step_size, first);
        }
        if (wd > 0.0f) {
            float dec = -lr * wd;
            #pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < n; k++) p[k] = p[k] + dec * p[k];
        }
        break;
    }
    case OPTIM_ADAM8BIT:
    case OPTIM_GALORE_ADAMW8BIT: {
        if (l->side == SIDE_NONE) {
            // plain bitsandbytes Adam: decoupled decay inside the kernel
            if (l->state == STATE_8BIT)
                adam8bit_update(p, g, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], n, o->map_m, o->map_v, b1, b2, eps, lr, wd, (int)t);
            else adam32_update(p, g, o->m[i], o->v[i], n, b1, b2, eps, lr, wd, (int)t);
        } else {
            // galore-torch: the kernel runs on R with a zero "parameter" (decay off); its result
            // is the low-rank update, projected back, scaled, added; then the decay. The 8-bit
            // Fira runs it at the unit lr (galore.h: its result is the direction N) and takes
            // fira_adamw's residual and HF step size from there
            int fira = optim_is_fira(c->kind);
            float klr = fira ? fira8_unit_lr(b1, b2, t) : lr;
            float* Z = o->N;
            memset(Z, 0, sizeof(float) * (size_t)l->snumel);
            if (l->state == STATE_8BIT)
                adam8bit_update(Z, gs, o->qm[i], o->qv[i], o->absmax_m[i], o->absmax_v[i], l->snumel, o->map_m, o->map_v, b1, b2, eps, klr, 0.0f, (int)t);
            else adam32_update(Z, gs, o->m[i], o->v[i], l->snumel, b1, b2, eps, klr, 0.0f, (int)t);
            // galore_adamw8bit: the kernel applied lr, so W += back(Z), a step of -1 (p + 1 U: exact)
            fira_or_galore_apply(o, i, p, g, gs, Z, fira ? galore_hf_step_size(lr, b1, b2, t) : -1.0f, first);
            if (wd > 0.0f) {
                float dec = -lr * wd;
                #pragma omp parallel for schedule(static)
                for (int64_t k = 0; k < n; k++) p[k] = p[k] + dec * p[k];
            }
        }
        break;
    }
    default: die("internal: optimizer kind %d", c->kind);
    }
}

// model_update: tensor i's optimizer step, then, for an INT8 tensor, its stochastic
// requantization (the seed of update t and tensor i: the same draws in whole-model and per-layer
// mode, on resume, and on the GPU). Both call sites (whole-model after backward, per-layer inside
// it) come here, and only for an update that is made: a skipped step leaves the codes alone.
static void model_update(Optimizer* o, Weight8* w8, int i, float* p, const float* g, int g_lowrank, float lr, int64_t t) {
    optimizer_update(o, i, p, g, g_lowrank, lr, t);
    weight8_requantize(w8, i, p, o->cfg.seed, t);
}

// sum of squares of n floats, in double, in a fixed order
static double sumsq(const float* x, size_t n) {
    double ss = 0.0;
    #pragma omp parallel for schedule(static) reduction(+:ss)
    for (size_t k = 0; k < n; k++) ss += (double)x[k] * x[k];
    return ss;
}

// torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
static void grads_clip(Llama* m, float norm, float max_norm) {
    float coef = max_norm / (norm + 1e-6f);
    if (coef >= 1.0f) return;
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < m->grad_size; k++) m->grad_mem[k] *= coef;
}

// ----------------------------------------------------------------------------
// the trainer: one optimizer step per training step, whole-model or per-layer

typedef struct {
    Llama* model;
    Optimizer opt;
    int per_layer;
    int grad_accum;
    float grad_clip;      // whole-model mode only
    int64_t t;            // optimizer updates done (a skipped step does not count): the next update is t + 1
    Dist* dist;           // the data-parallel ranks (world 1: none)
    LayerHookStep st;     // the step in progress (micro-batch, lr, squared norm, bad, updated: layerhook.h)
    LayerHookOps hook;    // per-layer mode: this engine's arithmetic for layerhook.h
    double comm_bytes;    // data parallel: bytes all-reduced this step
    double comm_full;     // ... and what all-reducing every full gradient would have been
    // accumulators: full ones for the non-GaLore tensors (per-layer with accumulation) and for
    // GaLore tensors that refresh this step (allocated for that step only); low-rank ones for
    // GaLore tensors between refreshes (per-layer with accumulation, and data parallel, which
    // all-reduces R = P^T G instead of G), so gradient memory stays one update group's worth
    float** acc;          // (n) full accumulators or NULL
    float** racc;         // (n) low-rank accumulators or NULL
    float* acc_mem; float* racc_mem;
    int* lowrank;         // (n) whole-model data parallel: this step sums tensor i as R
} Trainer;

// whether tensor i's gradient travels as its low-rank projection at update t (galore.h)
static int trainer_lowrank(const Trainer* tr, int i, int64_t t) {
    const Optimizer* o = &tr->opt;
    return galore_lowrank_at(&o->lay[i], o->has_proj[i], t, o->cfg.update_proj_gap);
}

// sum x over the ranks; full: the elements of the full gradient it stands for (for the count of
// bytes saved by reducing low-rank gradients)
static void trainer_reduce(Trainer* tr, float* x, size_t n, size_t full) {
    if (!tr->dist->active) return;
    dist_sum_f32(tr->dist, x, n);
    tr->comm_bytes += sizeof(float) * (double)n;
    tr->comm_full += sizeof(float) * (double)full;
}

// the per-layer hook (layerhook.h) on the host: its arithmetic, tensor i's source the slot, the
// full accumulator or the low-rank one (SRC_*)
static float* trainer_src(Trainer* tr, int i, int src, size_t* len) {
    *len = src == SRC_LOWRANK ? (size_t)tr->opt.lay[i].snumel : (size_t)tr->model->table.info[i].numel;
    return src == SRC_LOWRANK ? tr->racc[i] : src == SRC_ACC ? tr->acc[i] : G(tr->model, i);
}
static int cpu_hook_lowrank(void* ctx, int i, int64_t t) { return trainer_lowrank((Trainer*)ctx, i, t); }
static void cpu_hook_project(void* ctx, int i, float beta) {
    Trainer* tr = (Trainer*)ctx;
    galore_project(&tr->opt, i, G(tr->model, i), tr->racc[i], beta);
}
static void cpu_hook_accumulate(void* ctx, int i, int first_micro) {
    Trainer* tr = (Trainer*)ctx;
    int64_t n = tr->model->table.info[i].numel;
    const float* g = G(tr->model, i);
    if (tr->acc[i] == NULL) tr->acc[i] = (float*)callocCheck((size_t)n, sizeof(float)); // a refresh step of a GaLore tensor
    float* a = tr->acc[i];
    if (first_micro) memcpy(a, g, sizeof(float) * (size_t)n);
    else for (int64_t k = 0; k < n; k++) a[k] += g[k];
}
static void cpu_hook_reduce(void* ctx, const int* idx, const int* src, int k) {
    Trainer* tr = (Trainer*)ctx;
    for (int j = 0; j < k; j++) {
        size_t len;
        float* x = trainer_src(tr, idx[j], src[j], &len);
        trainer_reduce(tr, x, len, (size_t)tr->model->table.info[idx[j]].numel);
    }
}
static void cpu_hook_check(void* ctx, const int* idx, const int* src, int k, LayerHookFlags* f, int* go) {
    for (int j = 0; j < k; j++) {
        size_t len;
        const float* x = trainer_src((Trainer*)ctx, idx[j], src[j], &len);
        go[j] = layer_hook_check(f, sumsq(x, len));
    }
}
static void cpu_hook_update(void* ctx, int i, int src, float lr, int64_t t) {
    Trainer* tr = (Trainer*)ctx;
    size_t len;
    const float* g = trainer_src(tr, i, src, &len);
    model_update(&tr->opt, &tr->model->w8, i, P(tr->model, i), g, src == SRC_LOWRANK, lr, t);
}
static void cpu_hook_release(void* ctx, int i) {
    Trainer* tr = (Trainer*)ctx;
    if (tr->acc && tr->acc[i] && layout_lowrank_accum(&tr->opt.lay[i])) { free(tr->acc[i]); tr->acc[i] = NULL; }
}
static void cpu_hook_zero_slots(void* ctx, int first, int last) {
    Llama* m = ((Trainer*)ctx)->model;
    size_t start = m->goff[first], end = m->goff[last] + (size_t)m->table.info[last].numel;
    memset(m->grad_mem + start, 0, sizeof(float) * (end - start));
}
static void trainer_grads_ready(void* ctx, int first, int last) {
    Trainer* tr = (Trainer*)ctx;
    layer_hook_run(&tr->hook, &tr->st, first, last);
}

static void trainer_init(Trainer* tr, Llama* m, const OptimConfig* oc, int per_layer, int grad_accum, float grad_clip, Dist* dist) {
    memset(tr, 0, sizeof *tr);
    tr->model = m;
    tr->per_layer = per_layer;
    tr->grad_accum = grad_accum;
    tr->grad_clip = grad_clip;
    tr->dist = dist ? dist : dist_single();
    optimizer_init(&tr->opt, &m->table, oc);
    llama_set_grad_mode(m, per_layer);
    int dp = tr->dist->active;
    int need_full = per_layer && grad_accum > 1, need_low = need_full || dp;
    if (per_layer) {
        m->grads_ready = trainer_grads_ready;
        m->grads_ctx = tr;
        LayerHookOps h = {tr, NULL, cpu_hook_lowrank, cpu_hook_project, cpu_hook_accumulate, cpu_hook_reduce, cpu_hook_check,
                          cpu_hook_update, cpu_hook_release, cpu_hook_zero_slots};
        tr->hook = h;
    }
    if (need_full || need_low) {
        int n = m->table.n;
        int64_t* off = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)n);
        size_t nfull, nlow;
        accum_layout(&m->table, tr->opt.lay, need_full, off, off + n, &nfull, &nlow);
        tr->acc = (float**)callocCheck((size_t)n, sizeof(float*));
        tr->racc = (float**)callocCheck((size_t)n, sizeof(float*));
        tr->acc_mem = (float*)callocCheck(nfull > 0 ? nfull : 1, sizeof(float));
        tr->racc_mem = (float*)callocCheck(nlow > 0 ? nlow : 1, sizeof(float));
        for (int i = 0; i < n; i++) {
            if (off[i] >= 0) tr->acc[i] = tr->acc_mem + off[i];
            if (off[n + i] >= 0) tr->racc[i] = tr->racc_mem + off[n + i];
        }
        free(off);
    }
    tr->lowrank = (int*)callocCheck((size_t)m->table.n, sizeof(int));
}

static void trainer_free(Trainer* tr) {
    optimizer_free(&tr->opt);
    free(tr->acc); free(tr->racc); free(tr->acc_mem); free(tr->racc_mem); free(tr->lowrank);
}

// trainer_reduce_all (whole-model data parallel): sum the gradients over the ranks, as the
// low-rank R = P^T G of each GaLore tensor between refreshes (into racc) when clipping is off,
// else as full gradients (clipping needs the norm of the full summed gradient, which the
// projections do not give). Sets lowrank[i].
static void trainer_reduce_all(Trainer* tr, int* lowrank) {
    Llama* m = tr->model;
    for (int i = 0; i < m->table.n; i++) {
        size_t n = (size_t)m->table.info[i].numel;
        lowrank[i] = tr->grad_clip <= 0.0f && trainer_lowrank(tr, i, tr->t + 1);
        if (lowrank[i]) {
            galore_project(&tr->opt, i, G(m, i), tr->racc[i], 0.0f);
            trainer_reduce(tr, tr->racc[i], (size_t)tr->opt.lay[i].snumel, n);
        } else {
            trainer_reduce(tr, G(m, i), n, n);
        }
    }
}

// train_step: one optimizer step over grad_accum micro-batches (each gradient scaled by
// 1/grad_accum). Whole-model mode: backward fills every gradient, then the global norm,
// clipping, and one update per tensor. Per-layer mode: the updates run inside backward.
// Data parallel: each rank runs its own micro-batches; the loss gradient is normalized by the
// targets of all ranks and the gradients are summed, so the step is the one a single process
// takes on the concatenated batch (to rounding).
// A non-finite loss or gradient skips the update (*skipped = 1) and does not count as an
// optimizer step. *norm gets the gradient norm before clipping (of the low-rank R for tensors
// reduced or accumulated as R), *n_targets the targets counted on all ranks.
// Returns the mean loss of the micro-batches, computed before the update.
static float train_step(Trainer* tr, DataLoader* dl, float lr, int* inputs, int* targets, float* norm,
                        int* skipped, int64_t* n_targets) {
    Llama* m = tr->model;
    LayerHookStep* st = &tr->st;
    memset(st, 0, sizeof *st);
    st->grad_accum = tr->grad_accum; st->dp = tr->dist->active; st->lr = lr; st->t = tr->t + 1;
    tr->comm_bytes = 0.0; tr->comm_full = 0.0;
    Optimizer* o = &tr->opt;
    o->refresh_total = o->refresh_done = 0;
    o->refresh_secs = o->refresh_printed = 0.0;
    if (optim_is_galore(o->cfg.kind)) // the GaLore matrices that refresh this step (galore_refresh counts them done)
        for (int i = 0; i < o->n; i++)
            o->refresh_total += o->lay[i].side != SIDE_NONE && (!o->has_proj[i] || galore_refresh_due(st->t, o->cfg.update_proj_gap));
    if (!tr->per_layer) llama_zero_grad(m);
    double loss_sum = 0.0;
    *n_targets = 0;
    for (int micro = 0; micro < tr->grad_accum; micro++) {
        st->micro = micro;
        dataloader_next_batch(dl, inputs, targets);
        llama_forward(m, inputs, targets, dl->B, dl->T);
        // the micro-batch's loss over all ranks: sum of losses and of targets (one small all-reduce)
        int64_t n_all;
        double mean = dist_mean_loss(tr->dist, m->mean_loss, m->n_valid, &n_all);
        m->n_norm = n_all;
        loss_sum += mean;
        *n_targets += n_all;
        if (!isfinite(mean)) st->f.bad = 1;
        // per-layer mode updates inside backward: a bad loss must stop it before it starts
        if (st->f.bad && tr->per_layer) continue;
        llama_backward(m, inputs, targets, dl->B, dl->T, 1.0f / tr->grad_accum);
    }
    if (!tr->per_layer) {
        int* lowrank = tr->lowrank;
        memset(lowrank, 0, sizeof(int) * (size_t)m->table.n);
        double ss = 0.0;
        if (tr->dist->active) {
            trainer_reduce_all(tr, lowrank);
            for (int i = 0; i < m->table.n; i++)
                ss += lowrank[i] ? sumsq(tr->racc[i], (size_t)tr->opt.lay[i].snumel) : sumsq(G(m, i), (size_t)m->table.info[i].numel);
        } else {
            ss = sumsq(m->grad_mem, m->grad_size);
        }
        *norm = (float)sqrt(ss);
        if (!isfinite(*norm)) st->f.bad = 1;
        if (!st->f.bad) {
            if (tr->grad_clip > 0.0f) grads_clip(m, *norm, tr->grad_clip);
            for (int i = 0; i < m->table.n; i++)
                model_update(&tr->opt, &m->w8, i, P(m, i), lowrank[i] ? tr->racc[i] : G(m, i), lowrank[i], lr, tr->t + 1);
            st->f.updated = 1;
        }
    } else {
        *norm = st->f.bad ? NAN : (float)sqrt(st->f.sumsq);
        llama_zero_grad(m); // a skipped step can leave a group's gradient in the slots
        layer_hook_end_step(&tr->hook, st, m->table.n);
    }
    m->n_norm = 0;
    if (o->refresh_secs > 1.0)
        printf("  projector refresh: %d matrices in %.1f s (%s, in this step's time)\n", o->refresh_done, o->refresh_secs,
               o->refresh_done == o->refresh_total ? "done" : "some skipped");
    if (st->f.updated) tr->t++;
    *skipped = st->f.bad;
    return (float)(loss_sum / tr->grad_accum);
}

// ----------------------------------------------------------------------------
// evaluation and sampling

// the logits of the token after tokens[0..n) (run.h samples from them), recomputing the whole
// prefix each time: slow but simple, and only a few dozen tokens
static void next_logits(Llama* m, const int* tokens, int n, float* logits) {
    llama_forward(m, tokens, NULL, 1, n);
    memcpy(logits, m->acts.logits + (size_t)(n - 1) * m->config.V, sizeof(float) * (size_t)m->config.V);
}

// ----------------------------------------------------------------------------
// run helpers

static double rss_mib(void) {
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f) return 0.0;
    long pages = 0, rss = 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
    n = get_threads();
    if (openblas_set_num_threads && n > 0) openblas_set_num_threads(n);
}

// the pthreads build of OpenBLAS and our OpenMP threads spin against each other for the cores
static void blas_advice(void) {
    if (openblas_get_parallel && openblas_get_parallel() == 1 && get_threads() > 1)
        printf("note: OpenBLAS is its pthreads build, which competes with OpenMP for the cores; "
               "apt-get install libopenblas0-openmp and rebuild for about 2x\n");
}

// ----------------------------------------------------------------------------
// the CPU engine for run.h: the Trainer is the context

// the optimizer's checkpoint entries and the INT8 weights' (run.h): the CPU keeps them on the host already
static int cpu_state_entries(void* ctx, StateEntry* e, int cap) {
    Trainer* tr = (Trainer*)ctx;
    Optimizer* o = &tr->opt;
    int n = optimizer_state_entries(e, cap, o->n, o->lay, o->has_proj, o->m, o->v, o->qm, o->qv, o->absmax_m, o->absmax_v, o->proj, o->lim);
    return n + weight8_state_entries(e + n, cap - n, &tr->model->w8);
}

static float cpu_train_step(void* ctx, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped, int64_t* n_targets) {
    return train_step((Trainer*)ctx, dl, lr, inputs, targets, norm, skipped, n_targets);
}
static float cpu_forward_loss(void* ctx, const int* inputs, const int* targets, int B, int T, int* n_valid) {
    Llama* m = ((Trainer*)ctx)->model;
    llama_forward(m, inputs, targets, B, T);
    *n_valid = m->n_valid;
    return m->mean_loss;
}
static void cpu_forward_logits(void* ctx, const int* inputs, int B, int T, float* logits) {
    Llama* m = ((Trainer*)ctx)->model;
    llama_forward(m, inputs, NULL, B, T);
    memcpy(logits, m->acts.logits, sizeof(float) * (size_t)B * T * m->config.V);
}
static void cpu_next_logits(void* ctx, const int* tokens, int n, float* logits) { next_logits(((Trainer*)ctx)->model, tokens, n, logits); }
static float* cpu_params_to_host(void* ctx) { return ((Trainer*)ctx)->model->params; } // already on the host
static void cpu_params_release(void* ctx, float* host) { (void)ctx; (void)host; }
// loaded in place; INT8 tensors are rebuilt from the codes the state restored (run_resume reads
// the state first), not taken from the checkpoint's float file
static void cpu_params_from_host(void* ctx, const float* host) {
    Llama* m = ((Trainer*)ctx)->model;
    (void)host;
    weight8_dequantize_params(&m->w8, &m->table, m->params);
}
static void cpu_state_noop(void* ctx) { (void)ctx; }
static void cpu_get_progress(void* ctx, Progress* pr) { Trainer* tr = (Trainer*)ctx; pr->updates = tr->t; pr->refreshes = tr->opt.refreshes; }
static void cpu_set_progress(void* ctx, const Progress* pr) { Trainer* tr = (Trainer*)ctx; tr->t = pr->updates; tr->opt.refreshes = pr->refreshes; }
static void cpu_step_extra(void* ctx, double tok_s, char* buf, size_t n) {
    Trainer* tr = (Trainer*)ctx;
    Llama* m = tr->model;
    // tok_s counts every rank's tokens: FLOP/s per rank
    snprintf(buf, n, "%.2f GFLOP/s | mem %.0f MiB", tok_s / tr->dist->world * llama_flops_per_token(&m->config, &m->table, m->T) / 1e9, rss_mib());
    if (tr->dist->active) run_append_comm(buf, n, tr->comm_bytes, tr->comm_full);
}
static void cpu_done_report(void* ctx) { (void)ctx; printf("peak RSS %.0f MiB\n", rss_mib()); }

static Engine cpu_engine(Trainer* tr) {
    Engine e;
    memset(&e, 0, sizeof e);
    e.ctx = tr;
    e.train_step = cpu_train_step; e.forward_loss = cpu_forward_loss; e.forward_logits = cpu_forward_logits; e.next_logits = cpu_next_logits; e.max_seq = tr->model->T;
    e.params_to_host = cpu_params_to_host; e.params_release = cpu_params_release; e.params_from_host = cpu_params_from_host;
    e.state_entries = cpu_state_entries; e.state_before_save = cpu_state_noop; e.state_after_load = cpu_state_noop;
    e.state_done = cpu_state_noop; e.get_progress = cpu_get_progress; e.set_progress = cpu_set_progress;
    e.step_extra = cpu_step_extra; e.done_report = cpu_done_report;
    e.skip_hint = "lower --lr, raise --warmup, or set --grad-clip";
    return e;
}

#ifndef TESTING
int main(int argc, char** argv) {
    Settings s;
    LlamaConfig config;
    OptimConfig oc;
    if (!run_setup(argc, argv, "galore.c CPU trainer: pretrains HF-compatible LLaMA models in fp32 on the CPU.\n"
                               "Writes DIR/model.safetensors + DIR/config.json that transformers' from_pretrained opens.",
                   &s, &config, &oc)) return 0;
    Dist dist;
    dist_init(&dist, &argc, &argv, s.dist_init);
    if (strcmp(dist.method, "file") == 0 || strcmp(dist.method, "tcp") == 0)
        die("--dist-init %s: the CPU program sums gradients over MPI; launch it with mpirun -np N (--dist-init is train_llamacu's NCCL rendezvous)", s.dist_init);
    if (dist.rank != 0 && freopen("/dev/null", "w", stdout) == NULL) die("rank %d: cannot silence stdout", dist.rank);
    set_threads(s.threads);
    int B = s.batch, T = s.seq;
    if (strcmp(s.memory_plan, "0") != 0) {
        // both engines' plans: this one's, and the GPU engine's (the very rows train_llamacu
        // allocates; its library workspaces are sized by the device at startup)
        int json = strcmp(s.memory_plan, "json") == 0;
        cJSON* plans = json ? cJSON_CreateArray() : NULL;
        MemPlan mp;
        char title[256];
        memplan_build(&mp, &config, &oc, s.per_layer, s.grad_accum, B, T, s.recompute);
        char w8[64] = "";
        if (oc.w8_group) snprintf(w8, sizeof w8, " + int8 weights (group %d%s)", oc.w8_group, oc.w8_embed ? ", embeddings too" : "");
        snprintf(title, sizeof title, "CPU engine (train_llama, fp32%s): %s, %s%s, batch %d x %d", w8, config.name, s.optimizer, s.per_layer ? " per-layer" : "", B, T);
        if (json) memplan_json(plans, &mp, title, "cpu"); else memplan_print(&mp, title, 0.0);
        GpuPlanArgs ga = gpu_plan_args(&s, &config, &oc);
        gpu_memplan_report(&s, &config, &oc, &ga, plans);
        if (json) plan_json_print(plans);
        return 0;
    }
    if (strcmp(s.weights, "bf16") == 0)
        die("--weights bf16: the CPU engine computes in fp32; pass --weights fp32 (its default) or int8 (bf16 weights are train_llamacu's)");
    Llama model;
    llama_build(&model, &config);
    if (s.init[0]) llama_load_params(&model.table, model.params, s.init);
    else llama_init_params(&model.table, model.params, (uint64_t)s.seed);
    llama_weights_int8(&model, oc.w8_group, oc.w8_embed);
    llama_alloc_activations(&model, B, T, s.recompute);
    size_t np = llama_num_params(&model.table);
    printf("galore.c CPU | model %s | C %d H %d heads %d kv %d layers %d vocab %d | %.2fM params (%.1f%% in GaLore-able matrices)\n",
           config.name, config.C, config.H, config.NH, config.NKV, config.L, config.V, np / 1e6,
           100.0 * llama_num_galore_params(&model.table) / np);
    printf("init %s | optimizer %s (eps %g, betas %g %g, wd %g) | lr %g %s warmup %d min ratio %g | clip %g | threads %d\n",
           s.init[0] ? s.init : "random", s.optimizer, oc.eps, oc.beta1, oc.beta2, oc.weight_decay, s.lr, s.schedule,
           s.warmup, s.min_lr_ratio, s.grad_clip, get_threads());
    blas_advice();
    if (model.w8.G > 0) {
        char w8[320];
        weight8_describe(&model.w8, w8, sizeof w8);
        printf("weights: %s; the fp32 working copy holds their dequantized values\n", w8);
    }
    run_print_dist(&dist, &s, &oc, "gradients summed over MPI");
    run_print_galore(&config, &oc, &s, "exact SVD (LAPACK sgesdd)");
    Trainer trainer;
    if (s.steps > 0) {
        trainer_init(&trainer, &model, &oc, s.per_layer, s.grad_accum, s.grad_clip, &dist);
        MemPlan mp;
        memplan_build(&mp, &config, &oc, s.per_layer, s.grad_accum, B, T, s.recompute);
        double wb = mp.items[0].bytes + (double)model.w8.total + 5.0 * (double)model.w8.groups; // int8: + codes, scales, zeros
        printf("memory plan: %.3f GiB (weights %.3f, optimizer state %.3f); --memory-plan 1 for the table\n", mp.total / GIB,
               wb / GIB, (mp.state - wb) / GIB);
    } else {
        memset(&trainer, 0, sizeof trainer); // evaluation only: no optimizer state
        trainer.model = &model;
        trainer.dist = &dist;
    }
    Engine engine = cpu_engine(&trainer);
    run_main(&engine, &dist, &s, &config, &oc);
    if (s.steps > 0) trainer_free(&trainer);
    llama_free(&model);
    dist_finalize(&dist);
    return 0;
}
#endif
