// train_llama.c: the CPU fp32 reference of galore.c. LLaMA exactly as Hugging Face's
// LlamaForCausalLM computes it, forward and backward, with OpenMP for the elementwise work and
// BLAS (cblas_sgemm) for the matmuls; the oracle for every GPU kernel and a real trainer on any
// machine. test_llama.c includes this file with TESTING defined to reach its internals.
//
// Dimension letters: B batch, T sequence, C hidden, H intermediate (SwiGLU), NH query heads,
// NKV key/value heads, HD head dim (C/NH), KV = NKV*HD, L layers, V vocab.
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

// OpenBLAS lets us set its thread count; the reference BLAS has no threads. A weak symbol keeps
// the build working with either library.
extern void openblas_set_num_threads(int) __attribute__((weak));

// ----------------------------------------------------------------------------
// activations: one allocation, then a pointer table (llm.c style)

#define NUM_ACT 20
typedef struct {
    float* res;      // (L+1, B, T, C) residual stream entering each layer; res[L] enters the final norm
    float* ln1;      // (L, B, T, C) input_layernorm output
    float* rstd1;    // (L, B, T)
    float* q;        // (L, B, T, C) queries after RoPE
    float* k;        // (L, B, T, KV) keys after RoPE
    float* v;        // (L, B, T, KV)
    float* att;      // (L, B, NH, T, T) softmax probabilities (upper triangle zero)
    float* atty;     // (L, B, T, C) attention output before o_proj
    float* res2;     // (L, B, T, C) residual after attention
    float* ln2;      // (L, B, T, C) post_attention_layernorm output
    float* rstd2;    // (L, B, T)
    float* gate;     // (L, B, T, H) gate_proj output (pre-activation)
    float* up;       // (L, B, T, H)
    float* act;      // (L, B, T, H) silu(gate) * up
    float* lnf;      // (B, T, C) final norm output
    float* rstdf;    // (B, T)
    float* logits;   // (B, T, V); backward overwrites it with dlogits
    float* losses;   // (B, T) per-position loss (0 where the target is ignored)
    float* dres;     // (B, T, C) gradient of the residual stream, walked back through the layers
    float* scratch;  // (B, T, max(C, 2H, 3C)) backward scratch: dln, dq/dk/dv, dgate/dup
} Activations;

typedef struct {
    LlamaConfig config;
    ParamTable table;
    float* params;        // (table.total) one flat buffer in table order
    float* grads;         // (table.total)
    float* m;             // optimizer first moments (table.total), lazily allocated
    float* v;             // second moments
    int B, T;             // the activation sizes allocated for
    Activations acts;
    float* act_memory;
    float* rope_cos;      // (maxT, HD/2)
    float* rope_sin;
    float mean_loss;      // of the last forward with targets; -1 when there were none
    int n_valid;          // targets counted in it
} Llama;

static inline float* P(Llama* m, int i) { return m->params + m->table.info[i].offset; }
static inline float* G(Llama* m, int i) { return m->grads + m->table.info[i].offset; }

// ----------------------------------------------------------------------------
// model setup

static void llama_rope_init(Llama* m) {
    // HF computes inv_freq and the angles in float32: inv_freq = 1 / theta^(2i/HD), angle =
    // pos * inv_freq rounded to float, then cos/sin in float. Do the same so the tables agree.
    const LlamaConfig* c = &m->config;
    int HD = c->C / c->NH, half = HD / 2;
    m->rope_cos = (float*)mallocCheck(sizeof(float) * (size_t)c->maxT * half);
    m->rope_sin = (float*)mallocCheck(sizeof(float) * (size_t)c->maxT * half);
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)HD);
        for (int t = 0; t < c->maxT; t++) {
            float angle = (float)t * inv_freq;
            m->rope_cos[t * half + i] = cosf(angle);
            m->rope_sin[t * half + i] = sinf(angle);
        }
    }
}

static void llama_build(Llama* m, const LlamaConfig* c) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    param_table_build(&m->table, c);
    m->params = (float*)mallocCheck(sizeof(float) * m->table.total);
    m->grads = (float*)callocCheck(m->table.total, sizeof(float));
    llama_rope_init(m);
    m->mean_loss = -1.0f;
}

static void llama_alloc_activations(Llama* m, int B, int T) {
    const LlamaConfig* c = &m->config;
    size_t L = c->L, C = c->C, H = c->H, NH = c->NH, V = c->V, BT = (size_t)B * T;
    size_t KV = (size_t)c->NKV * (C / NH);
    size_t scratch = C > 2 * H ? C : 2 * H;
    if (3 * C > scratch) scratch = 3 * C;
    size_t sizes[NUM_ACT] = {
        (L + 1) * BT * C, L * BT * C, L * BT, L * BT * C, L * BT * KV, L * BT * KV,
        L * B * NH * T * T, L * BT * C, L * BT * C, L * BT * C, L * BT, L * BT * H, L * BT * H,
        L * BT * H, BT * C, BT, BT * V, BT, BT * C, BT * scratch,
    };
    size_t total = 0;
    for (int i = 0; i < NUM_ACT; i++) total += sizes[i];
    free(m->act_memory);
    m->act_memory = (float*)callocCheck(total, sizeof(float));
    float** ptrs[NUM_ACT] = {
        &m->acts.res, &m->acts.ln1, &m->acts.rstd1, &m->acts.q, &m->acts.k, &m->acts.v,
        &m->acts.att, &m->acts.atty, &m->acts.res2, &m->acts.ln2, &m->acts.rstd2, &m->acts.gate,
        &m->acts.up, &m->acts.act, &m->acts.lnf, &m->acts.rstdf, &m->acts.logits, &m->acts.losses,
        &m->acts.dres, &m->acts.scratch,
    };
    float* p = m->act_memory;
    for (int i = 0; i < NUM_ACT; i++) { *ptrs[i] = p; p += sizes[i]; }
    m->B = B; m->T = T;
}

static void llama_free(Llama* m) {
    param_table_free(&m->table);
    free(m->params); free(m->grads); free(m->m); free(m->v);
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

// rotate_half RoPE in place on (B, T, nh, HD): pairs (i, i + HD/2) rotate by pos * inv_freq[i].
// sign = +1 forward; -1 applies the inverse rotation, which is the backward pass.
static void rope_apply(float* x, const float* cosb, const float* sinb, int B, int T, int nh, int HD, float sign) {
    int half = HD / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float* cs = cosb + (size_t)t * half;
            const float* sn = sinb + (size_t)t * half;
            for (int h = 0; h < nh; h++) {
                float* xh = x + (((size_t)b * T + t) * nh + h) * HD;
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
// repeat_kv. q (B,T,NH,HD), k/v (B,T,NKV,HD), att (B,NH,T,T), y (B,T,NH,HD)
static void attention_forward(float* y, float* att, const float* q, const float* k, const float* v,
                              int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kh = h / rep;
            for (int t = 0; t < T; t++) {
                const float* qt = q + ((size_t)b * T + t) * C + h * HD;
                float* at = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const float* ks = k + ((size_t)b * T + s) * KV + kh * HD;
                    float dot = 0.0f;
                    #pragma omp simd reduction(+:dot)
                    for (int d = 0; d < HD; d++) dot += qt[d] * ks[d];
                    dot *= scale;
                    at[s] = dot;
                    if (dot > maxv) maxv = dot;
                }
                double sum = 0.0;
                for (int s = 0; s <= t; s++) { float e = expf(at[s] - maxv); at[s] = e; sum += e; }
                float inv = (float)(1.0 / sum);
                for (int s = 0; s <= t; s++) at[s] *= inv;
                for (int s = t + 1; s < T; s++) at[s] = 0.0f;
                float* yt = y + ((size_t)b * T + t) * C + h * HD;
                for (int d = 0; d < HD; d++) yt[d] = 0.0f;
                for (int s = 0; s <= t; s++) {
                    const float* vs = v + ((size_t)b * T + s) * KV + kh * HD;
                    float a = at[s];
                    #pragma omp simd
                    for (int d = 0; d < HD; d++) yt[d] += a * vs[d];
                }
            }
        }
    }
}

// dq, dk, dv are overwritten. Parallel over (b, kv head) so the heads sharing a kv head add
// into dk/dv in a fixed order (no races, deterministic). dpre is (B*NH*T) scratch per thread.
static void attention_backward(float* dq, float* dk, float* dv, const float* dy, const float* att,
                               const float* q, const float* k, const float* v,
                               int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel
    {
        float* datt = (float*)mallocCheck(sizeof(float) * (size_t)T);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int kh = 0; kh < NKV; kh++) {
                for (int s = 0; s < T; s++) {
                    memset(dk + ((size_t)b * T + s) * KV + kh * HD, 0, sizeof(float) * HD);
                    memset(dv + ((size_t)b * T + s) * KV + kh * HD, 0, sizeof(float) * HD);
                }
                for (int h = kh * rep; h < (kh + 1) * rep; h++) {
                    for (int t = 0; t < T; t++) {
                        const float* at = att + (((size_t)b * NH + h) * T + t) * T;
                        const float* dyt = dy + ((size_t)b * T + t) * C + h * HD;
                        const float* qt = q + ((size_t)b * T + t) * C + h * HD;
                        float* dqt = dq + ((size_t)b * T + t) * C + h * HD;
                        // datt[s] = dy_t . v_s ; dv_s += att[t][s] dy_t
                        double dsum = 0.0;
                        for (int s = 0; s <= t; s++) {
                            const float* vs = v + ((size_t)b * T + s) * KV + kh * HD;
                            float* dvs = dv + ((size_t)b * T + s) * KV + kh * HD;
                            float dot = 0.0f;
                            float a = at[s];
                            #pragma omp simd reduction(+:dot)
                            for (int d = 0; d < HD; d++) { dot += dyt[d] * vs[d]; dvs[d] += a * dyt[d]; }
                            datt[s] = dot;
                            dsum += (double)a * dot;
                        }
                        // softmax backward: dpre = att * (datt - sum(att * datt)), times the scale
                        float ds = (float)dsum;
                        for (int d = 0; d < HD; d++) dqt[d] = 0.0f;
                        for (int s = 0; s <= t; s++) {
                            float dpre = at[s] * (datt[s] - ds) * scale;
                            const float* ks = k + ((size_t)b * T + s) * KV + kh * HD;
                            float* dks = dk + ((size_t)b * T + s) * KV + kh * HD;
                            #pragma omp simd
                            for (int d = 0; d < HD; d++) { dqt[d] += dpre * ks[d]; dks[d] += dpre * qt[d]; }
                        }
                    }
                }
            }
        }
        free(datt);
    }
}

// act = silu(gate) * up
static void swiglu_forward(float* act, const float* gate, const float* up, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        act[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void swiglu_backward(float* dgate, float* dup, const float* dact, const float* gate, const float* up, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        // read everything first: dup may alias dact (the caller reuses the buffer)
        float g = gate[i], u = up[i], da = dact[i];
        float sig = 1.0f / (1.0f + expf(-g));
        dup[i] = da * g * sig;
        dgate[i] = da * u * sig * (1.0f + g * (1.0f - sig));
    }
}

// softmax cross-entropy per position; targets < 0 are ignored. Returns the number counted.
static int crossentropy_forward(float* losses, const float* logits, const int* targets, int N, int V) {
    int n_valid = 0;
    #pragma omp parallel for schedule(static) reduction(+:n_valid)
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) { losses[i] = 0.0f; continue; }
        const float* li = logits + (size_t)i * V;
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++) if (li[j] > maxv) maxv = li[j];
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += expf(li[j] - maxv);
        losses[i] = (float)(log(sum) - (double)(li[targets[i]] - maxv));
        n_valid++;
    }
    return n_valid;
}

// in place: logits -> dlogits = (softmax - onehot) * dloss, zero rows for ignored targets
static void crossentropy_backward(float* logits, const int* targets, int N, int V, float dloss) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float* li = logits + (size_t)i * V;
        if (targets[i] < 0) { memset(li, 0, sizeof(float) * V); continue; }
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++) if (li[j] > maxv) maxv = li[j];
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += expf(li[j] - maxv);
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) li[j] = expf(li[j] - maxv) * inv * dloss;
        li[targets[i]] -= dloss;
    }
}

// layer l's slices of the activations. Each layer's block is laid out with the allocated B, T
// strides, and a smaller forward (sampling) uses the front of each block.
typedef struct {
    float *x, *ln1, *rstd1, *q, *k, *v, *att, *atty, *x2, *ln2, *rstd2, *gate, *up, *act, *xout;
} LayerActs;

static LayerActs layer_acts(Llama* m, int l) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    size_t C = c->C, H = c->H, KV = (size_t)c->NKV * (c->C / c->NH), sBT = (size_t)m->B * m->T;
    LayerActs la;
    la.x = a->res + l * sBT * C;
    la.ln1 = a->ln1 + l * sBT * C;
    la.rstd1 = a->rstd1 + l * sBT;
    la.q = a->q + l * sBT * C;
    la.k = a->k + l * sBT * KV;
    la.v = a->v + l * sBT * KV;
    la.att = a->att + l * (size_t)m->B * c->NH * m->T * m->T;
    la.atty = a->atty + l * sBT * C;
    la.x2 = a->res2 + l * sBT * C;
    la.ln2 = a->ln2 + l * sBT * C;
    la.rstd2 = a->rstd2 + l * sBT;
    la.gate = a->gate + l * sBT * H;
    la.up = a->up + l * sBT * H;
    la.act = a->act + l * sBT * H;
    la.xout = a->res + (l + 1) * sBT * C;
    return la;
}

// llama_forward: inputs (B, T) token ids; targets (B, T) or NULL (then only logits). B and T
// may be smaller than the allocated sizes (sampling runs B=1 and a growing T).
static void llama_forward(Llama* m, const int* inputs, const int* targets, int B, int T) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = C / NH, KV = NKV * HD, V = c->V, L = c->L;
    size_t BT = (size_t)B * T;
    if (B > m->B || T > m->T) die("internal: forward with B=%d T=%d beyond the allocated %d x %d", B, T, m->B, m->T);
    // activations are laid out with the allocated B, T strides per layer
    size_t sBT = (size_t)m->B * m->T;
    for (size_t i = 0; i < BT; i++) {
        int tok = inputs[i];
        if (tok < 0 || tok >= V) die("token id %d at position %zu is outside the vocabulary of %d", tok, i, V);
        memcpy(a->res + i * C, P(m, 0) + (size_t)tok * C, sizeof(float) * C);
    }
    for (int l = 0; l < L; l++) {
        LayerActs la = layer_acts(m, l);
        float *x = la.x, *ln1 = la.ln1, *rstd1 = la.rstd1, *q = la.q, *k = la.k, *v = la.v, *att = la.att;
        float *atty = la.atty, *x2 = la.x2, *ln2 = la.ln2, *rstd2 = la.rstd2, *gate = la.gate, *up = la.up, *act = la.act;
        float* xout = la.xout;
        rmsnorm_forward(ln1, rstd1, x, P(m, pt_layer(l, P_LN1)), (int)BT, C, c->norm_eps);
        matmul_forward(q, ln1, P(m, pt_layer(l, P_WQ)), (int)BT, C, C);
        matmul_forward(k, ln1, P(m, pt_layer(l, P_WK)), (int)BT, C, KV);
        matmul_forward(v, ln1, P(m, pt_layer(l, P_WV)), (int)BT, C, KV);
        rope_apply(q, m->rope_cos, m->rope_sin, B, T, NH, HD, 1.0f);
        rope_apply(k, m->rope_cos, m->rope_sin, B, T, NKV, HD, 1.0f);
        attention_forward(atty, att, q, k, v, B, T, NH, NKV, HD);
        matmul_forward(x2, atty, P(m, pt_layer(l, P_WO)), (int)BT, C, C);
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BT * C; i++) x2[i] += x[i];
        rmsnorm_forward(ln2, rstd2, x2, P(m, pt_layer(l, P_LN2)), (int)BT, C, c->norm_eps);
        matmul_forward(gate, ln2, P(m, pt_layer(l, P_WG)), (int)BT, C, H);
        matmul_forward(up, ln2, P(m, pt_layer(l, P_WU)), (int)BT, C, H);
        swiglu_forward(act, gate, up, BT * H);
        matmul_forward(xout, act, P(m, pt_layer(l, P_WD)), (int)BT, H, C);
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BT * C; i++) xout[i] += x2[i];
    }
    rmsnorm_forward(a->lnf, a->rstdf, a->res + L * sBT * C, P(m, pt_norm(c)), (int)BT, C, c->norm_eps);
    matmul_forward(a->logits, a->lnf, P(m, pt_lm_head(c)), (int)BT, C, V);
    if (targets == NULL) { m->mean_loss = -1.0f; m->n_valid = 0; return; }
    for (size_t i = 0; i < BT; i++) {
        if (targets[i] >= V) die("target id %d at position %zu is outside the vocabulary of %d", targets[i], i, V);
    }
    m->n_valid = crossentropy_forward(a->losses, a->logits, targets, (int)BT, V);
    double sum = 0.0;
    for (size_t i = 0; i < BT; i++) sum += a->losses[i];
    m->mean_loss = m->n_valid > 0 ? (float)(sum / m->n_valid) : 0.0f;
}

static void llama_zero_grad(Llama* m) { memset(m->grads, 0, sizeof(float) * m->table.total); }

// llama_backward: ADDS the gradient of (grad_scale * mean loss of the last forward) into
// m->grads (grad_scale = 1/grad_accum when accumulating). Needs the forward's targets.
static void llama_backward(Llama* m, const int* inputs, const int* targets, int B, int T, float grad_scale) {
    const LlamaConfig* c = &m->config;
    Activations* a = &m->acts;
    int C = c->C, H = c->H, NH = c->NH, NKV = c->NKV, HD = C / NH, KV = NKV * HD, V = c->V, L = c->L;
    size_t BT = (size_t)B * T, sBT = (size_t)m->B * m->T;
    if (m->n_valid == 0) return; // every target ignored: the loss is constant
    float dloss = grad_scale / (float)m->n_valid;
    crossentropy_backward(a->logits, targets, (int)BT, V, dloss);
    float* dlogits = a->logits;
    float* dres = a->dres;     // (BT, C) gradient flowing into the residual stream
    float* dln = a->scratch;   // (BT, C)
    memset(dln, 0, sizeof(float) * BT * C);
    matmul_backward(dln, G(m, pt_lm_head(c)), dlogits, a->lnf, P(m, pt_lm_head(c)), (int)BT, C, V, 0.0f);
    memset(dres, 0, sizeof(float) * BT * C);
    rmsnorm_backward(dres, G(m, pt_norm(c)), dln, a->res + L * sBT * C, P(m, pt_norm(c)), a->rstdf, (int)BT, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs la = layer_acts(m, l);
        float *x = la.x, *ln1 = la.ln1, *rstd1 = la.rstd1, *q = la.q, *k = la.k, *v = la.v, *att = la.att;
        float *atty = la.atty, *x2 = la.x2, *ln2 = la.ln2, *rstd2 = la.rstd2, *gate = la.gate, *up = la.up, *act = la.act;
        // MLP: dres is d(xout) = d(x2) through the skip, plus the MLP branch
        float* dact = a->scratch;                 // (BT, H)
        float* dgate = a->scratch + BT * H;       // (BT, H)
        matmul_backward(dact, G(m, pt_layer(l, P_WD)), dres, act, P(m, pt_layer(l, P_WD)), (int)BT, H, C, 0.0f);
        float* dup = dact; // dup overwrites dact element by element after it is read
        swiglu_backward(dgate, dup, dact, gate, up, BT * H);
        float* dln2 = a->lnf; // the final norm's output is no longer needed: reuse it as (BT, C)
        matmul_backward(dln2, G(m, pt_layer(l, P_WG)), dgate, ln2, P(m, pt_layer(l, P_WG)), (int)BT, C, H, 0.0f);
        matmul_backward(dln2, G(m, pt_layer(l, P_WU)), dup, ln2, P(m, pt_layer(l, P_WU)), (int)BT, C, H, 1.0f);
        rmsnorm_backward(dres, G(m, pt_layer(l, P_LN2)), dln2, x2, P(m, pt_layer(l, P_LN2)), rstd2, (int)BT, C);
        // attention: dres is now d(x2)
        float* datty = a->lnf;                    // (BT, C)
        matmul_backward(datty, G(m, pt_layer(l, P_WO)), dres, atty, P(m, pt_layer(l, P_WO)), (int)BT, C, C, 0.0f);
        float* dq = a->scratch;                   // (BT, C)
        float* dk = a->scratch + BT * C;          // (BT, KV)
        float* dv = a->scratch + 2 * BT * C;      // (BT, KV)
        attention_backward(dq, dk, dv, datty, att, q, k, v, B, T, NH, NKV, HD);
        rope_apply(dq, m->rope_cos, m->rope_sin, B, T, NH, HD, -1.0f);
        rope_apply(dk, m->rope_cos, m->rope_sin, B, T, NKV, HD, -1.0f);
        float* dln1 = a->lnf;                     // (BT, C)
        matmul_backward(dln1, G(m, pt_layer(l, P_WQ)), dq, ln1, P(m, pt_layer(l, P_WQ)), (int)BT, C, C, 0.0f);
        matmul_backward(dln1, G(m, pt_layer(l, P_WK)), dk, ln1, P(m, pt_layer(l, P_WK)), (int)BT, C, KV, 1.0f);
        matmul_backward(dln1, G(m, pt_layer(l, P_WV)), dv, ln1, P(m, pt_layer(l, P_WV)), (int)BT, C, KV, 1.0f);
        rmsnorm_backward(dres, G(m, pt_layer(l, P_LN1)), dln1, x, P(m, pt_layer(l, P_LN1)), rstd1, (int)BT, C);
    }
    // embedding: rows of repeated tokens add up, so keep it serial over positions
    float* dwte = G(m, 0);
    for (size_t i = 0; i < BT; i++) {
        float* row = dwte + (size_t)inputs[i] * C;
        const float* d = dres + i * C;
        for (int j = 0; j < C; j++) row[j] += d[j];
    }
}

// ----------------------------------------------------------------------------
// optimizer: one call per tensor (design.md), so that per-layer updates can call it from
// inside backward. t is the 1-based step of this update; lr already includes the schedule.

typedef struct {
    int kind;            // OPTIM_ADAMW or OPTIM_ADAM
    float beta1, beta2, eps, weight_decay;
} OptimConfig;
enum { OPTIM_ADAMW = 0, OPTIM_ADAM = 1 };

static void optimizer_alloc(Llama* m) {
    if (m->m == NULL) {
        m->m = (float*)callocCheck(m->table.total, sizeof(float));
        m->v = (float*)callocCheck(m->table.total, sizeof(float));
    }
}

// torch.optim.AdamW / Adam, single-tensor path: AdamW decays the weight first (decoupled);
// Adam adds wd * p to the gradient (L2). eps is added after dividing sqrt(v) by sqrt(1-b2^t).
static void optimizer_update(Llama* m, int i, const OptimConfig* o, float lr, int t) {
    const ParamInfo* pi = &m->table.info[i];
    float* p = m->params + pi->offset;
    const float* g = m->grads + pi->offset;
    float* mm = m->m + pi->offset;
    float* vv = m->v + pi->offset;
    double bc1 = 1.0 - pow((double)o->beta1, t);
    double bc2_sqrt = sqrt(1.0 - pow((double)o->beta2, t));
    float step_size = (float)(lr / bc1);
    float inv_bc2 = (float)(1.0 / bc2_sqrt);
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float decay = (o->kind == OPTIM_ADAMW) ? 1.0f - lr * o->weight_decay : 1.0f;
    float l2 = (o->kind == OPTIM_ADAM) ? o->weight_decay : 0.0f;
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < pi->numel; k++) {
        float gk = g[k] + l2 * p[k];
        float mk = mm[k] + (1.0f - b1) * (gk - mm[k]);
        float vk = b2 * vv[k] + (1.0f - b2) * gk * gk;
        mm[k] = mk; vv[k] = vk;
        float denom = sqrtf(vk) * inv_bc2 + eps;
        p[k] = p[k] * decay - step_size * mk / denom;
    }
}

// global L2 norm of all gradients, summed in double in a fixed order
static float grads_norm(const Llama* m) {
    double ss = 0.0;
    #pragma omp parallel for schedule(static) reduction(+:ss)
    for (size_t k = 0; k < m->table.total; k++) ss += (double)m->grads[k] * m->grads[k];
    return (float)sqrt(ss);
}

// torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
static void grads_clip(Llama* m, float norm, float max_norm) {
    float coef = max_norm / (norm + 1e-6f);
    if (coef >= 1.0f) return;
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < m->table.total; k++) m->grads[k] *= coef;
}

// train_step: one optimizer step: grad_accum micro-batches summed (each scaled by
// 1/grad_accum), the global norm (returned in *norm, before clipping), clipping, and the
// update of every tensor at the given lr. t is the 1-based step. Returns the mean loss of the
// step's micro-batches, computed before the update.
static float train_step(Llama* m, DataLoader* dl, const OptimConfig* oc, float lr, int t, int grad_accum,
                        float grad_clip, int* inputs, int* targets, float* norm) {
    llama_zero_grad(m);
    double loss_sum = 0.0;
    for (int micro = 0; micro < grad_accum; micro++) {
        dataloader_next_batch(dl, inputs, targets);
        llama_forward(m, inputs, targets, dl->B, dl->T);
        llama_backward(m, inputs, targets, dl->B, dl->T, 1.0f / grad_accum);
        loss_sum += m->mean_loss;
    }
    *norm = grads_norm(m);
    if (grad_clip > 0.0f) grads_clip(m, *norm, grad_clip);
    for (int i = 0; i < m->table.n; i++) optimizer_update(m, i, oc, lr, t);
    return (float)(loss_sum / grad_accum);
}

// ----------------------------------------------------------------------------
// evaluation and sampling

// mean loss over the first n batches of the loader (reset first, so every eval sees the same
// tokens), weighted by the counted targets
static float evaluate(Llama* m, DataLoader* dl, int n, int* inputs, int* targets) {
    dataloader_reset(dl);
    double sum = 0.0;
    int64_t count = 0;
    for (int b = 0; b < n; b++) {
        dataloader_next_batch(dl, inputs, targets);
        llama_forward(m, inputs, targets, dl->B, dl->T);
        sum += (double)m->mean_loss * m->n_valid;
        count += m->n_valid;
    }
    return count > 0 ? (float)(sum / count) : 0.0f;
}

// draw n tokens after the prompt by sampling the softmax (temperature 1) with a seeded RNG,
// recomputing the whole prefix each time: slow but simple, and only a few dozen tokens
static int sample_tokens(Llama* m, int* tokens, int n_prompt, int n_new, Rng* rng) {
    int n = n_prompt;
    int V = m->config.V;
    for (int i = 0; i < n_new && n < m->T; i++) {
        llama_forward(m, tokens, NULL, 1, n);
        const float* li = m->acts.logits + (size_t)(n - 1) * V;
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++) if (li[j] > maxv) maxv = li[j];
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += exp((double)(li[j] - maxv));
        double r = rng_uniform(rng) * sum, acc = 0.0;
        int next = V - 1;
        for (int j = 0; j < V; j++) { acc += exp((double)(li[j] - maxv)); if (acc > r) { next = j; break; } }
        tokens[n++] = next;
    }
    return n;
}

// ----------------------------------------------------------------------------
// run helpers

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rss_mib(void) {
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f) return 0.0;
    long pages = 0, rss = 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void format_duration(char* buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

static void set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
    n = omp_get_max_threads();
#endif
    if (openblas_set_num_threads && n > 0) openblas_set_num_threads(n);
}

static int get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void print_sample(Llama* m, const Tokenizer* tok, int have_tok, int eos, int len, Rng* rng) {
    if (len <= 0) return;
    int total = len + 1 < m->T ? len + 1 : m->T;
    int* tokens = (int*)mallocCheck(sizeof(int) * (size_t)m->T);
    tokens[0] = eos; // documents follow an end-of-text token in the packed layout
    int n = sample_tokens(m, tokens, 1, total - 1, rng);
    if (have_tok) {
        size_t cap = (size_t)n * 64 + 16;
        char* text = (char*)mallocCheck(cap);
        tokenizer_decode(tok, tokens + 1, n - 1, text, cap);
        printf("sample: %s\n", text);
        free(text);
    } else {
        printf("sample ids:");
        for (int i = 1; i < n; i++) printf(" %d", tokens[i]);
        printf("\n");
    }
    free(tokens);
}

#ifndef TESTING
int main(int argc, char** argv) {
    Settings s;
    int help = 0;
    cli_parse(&s, argc, argv, &help);
    if (help) {
        cli_help(argv[0], "galore.c CPU trainer: pretrains HF-compatible LLaMA models in fp32 on the CPU.\n"
                          "Writes DIR/model.safetensors + DIR/config.json that transformers' from_pretrained opens.");
        return 0;
    }
    set_threads(s.threads);
    // config: --model, else the config.json beside --init, else the default
    LlamaConfig config;
    if (s.init[0] && !cli_was_given(argc, argv, "model")) {
        char path[PATHLEN + 32];
        snprintf(path, sizeof path, "%s", s.init);
        char* slash = strrchr(path, '/');
        if (slash) strcpy(slash + 1, "config.json"); else strcpy(path, "config.json");
        llama_config_from_json(&config, path);
    } else {
        llama_config_resolve(&config, s.model);
    }
    if (s.batch < 1) die("--batch %d: must be at least 1", s.batch);
    if (s.seq < 1 || s.seq > config.maxT) die("--seq %d: must be between 1 and max_position_embeddings %d", s.seq, config.maxT);
    if (s.grad_accum < 1) die("--grad-accum %d: must be at least 1", s.grad_accum);
    if (s.shuffle > 1) die("--shuffle %d: must be 0 or 1", s.shuffle);
    if (!(s.lr >= 0.0f)) die("--lr %g: must be non-negative", s.lr);
    if (s.min_lr_ratio < 0.0f || s.min_lr_ratio > 1.0f) die("--min-lr-ratio %g: must be in [0, 1]", s.min_lr_ratio);
    if (s.beta1 < 0.0f || s.beta1 >= 1.0f || s.beta2 < 0.0f || s.beta2 >= 1.0f) die("--beta1/--beta2: must be in [0, 1)");
    OptimConfig oc;
    oc.kind = strcmp(s.optimizer, "adam") == 0 ? OPTIM_ADAM : OPTIM_ADAMW;
    oc.beta1 = s.beta1; oc.beta2 = s.beta2; oc.weight_decay = s.weight_decay;
    oc.eps = s.eps >= 0.0f ? s.eps : 1e-8f; // torch's AdamW and Adam default
    int B = s.batch, T = s.seq;

    Llama model;
    llama_build(&model, &config);
    if (s.init[0]) llama_load_params(&model.table, model.params, s.init);
    else llama_init_params(&model.table, model.params, (uint64_t)s.seed);
    llama_alloc_activations(&model, B, T);
    size_t np = llama_num_params(&model.table);
    printf("galore.c CPU | model %s | C %d H %d heads %d kv %d layers %d vocab %d | %.2fM params (%.1f%% in GaLore-able matrices)\n",
           config.name, config.C, config.H, config.NH, config.NKV, config.L, config.V, np / 1e6,
           100.0 * llama_num_galore_params(&model.table) / np);
    printf("init %s | optimizer %s (eps %g, betas %g %g, wd %g) | lr %g %s warmup %d min ratio %g | clip %g | threads %d\n",
           s.init[0] ? s.init : "random", s.optimizer, oc.eps, oc.beta1, oc.beta2, oc.weight_decay, s.lr, s.schedule,
           s.warmup, s.min_lr_ratio, s.grad_clip, get_threads());

    DataLoader train, val;
    int have_val = s.val[0] != '\0';
    int* inputs = (int*)mallocCheck(sizeof(int) * (size_t)B * T);
    int* targets = (int*)mallocCheck(sizeof(int) * (size_t)B * T);
    if (s.steps > 0) {
        dataloader_init(&train, s.train, B, T, s.shuffle, (uint64_t)s.seed, 0, 1, config.V);
        printf("train: %s | %d shards | %lld tokens | %lld batches of %d x %d per epoch\n", s.train, train.num_shards,
               (long long)train.num_tokens, (long long)train.batches_per_epoch, B, T);
    }
    int eval_batches = 0;
    if (have_val) {
        dataloader_init(&val, s.val, B, T, 0, 0, 0, 1, config.V);
        eval_batches = s.eval_batches < val.batches_per_epoch ? s.eval_batches : (int)val.batches_per_epoch;
        printf("val: %s | %lld tokens | %d batches per eval\n", s.val, (long long)val.num_tokens, eval_batches);
    }
    Tokenizer tok;
    int have_tok = s.tokenizer[0] ? tokenizer_init(&tok, s.tokenizer) : 0;
    if (!have_tok && s.sample_len > 0) printf("note: no tokenizer at '%s': samples are printed as ids\n", s.tokenizer);
    int eos = have_tok && tok.eos_id >= 0 ? tok.eos_id : 0;
    FILE* logf = NULL;
    if (s.log[0]) logf = fopenCheck(s.log, "w");
    Rng sample_rng; rng_init(&sample_rng, (uint64_t)s.seed ^ 0x5A5A5A5AULL);

    if (s.steps == 0) {
        if (!have_val) die("--steps 0 evaluates only, and needs --val");
        float vl = evaluate(&model, &val, eval_batches, inputs, targets);
        printf("val loss %.7f | ppl %.4f | %d batches\n", vl, exp(vl), eval_batches);
        if (logf) { fprintf(logf, "{\"step\": 0, \"val_loss\": %.9g, \"val_ppl\": %.9g}\n", vl, exp(vl)); fclose(logf); }
        return 0;
    }

    optimizer_alloc(&model);
    double flops_tok = llama_flops_per_token(&config, &model.table, T);
    double t_start = now_seconds(), t_train = 0.0;
    int tokens_per_step = B * T * s.grad_accum;
    for (int step = 0; step < s.steps; step++) {
        double t0 = now_seconds();
        float norm = 0.0f;
        float lr = (float)(s.lr * lr_lambda(step, s.warmup, s.steps, s.min_lr_ratio, strcmp(s.schedule, "cosine") == 0));
        float loss = train_step(&model, &train, &oc, lr, step + 1, s.grad_accum, s.grad_clip, inputs, targets, &norm);
        if (!isfinite(loss)) die("step %d: loss is %f; hint: lower --lr or raise --warmup", step + 1, loss);
        double dt = now_seconds() - t0;
        if (step > 0 || s.steps == 1) t_train += dt; // the first step warms caches: keep it out of the ETA
        double tok_s = tokens_per_step / dt;
        int timed = step > 0 ? step : 1;
        double eta = (s.steps - step - 1) * (t_train / timed);
        if ((step + 1) % s.print_every == 0 || step == 0 || step + 1 == s.steps) {
            char etab[32];
            format_duration(etab, sizeof etab, eta);
            printf("step %5d/%d | loss %.6f | norm %.4f | lr %.3e | %.1f ms | %.0f tok/s | %.2f GFLOP/s | mem %.0f MiB | ETA %s\n",
                   step + 1, s.steps, loss, norm, lr, dt * 1e3, tok_s, tok_s * flops_tok / 1e9, rss_mib(), etab);
            fflush(stdout);
        }
        if (logf) {
            fprintf(logf, "{\"step\": %d, \"loss\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g, \"ms\": %.3f, \"tokens_per_s\": %.3f}\n",
                    step + 1, loss, norm, lr, dt * 1e3, tok_s);
            fflush(logf);
        }
        int last = step + 1 == s.steps;
        if (have_val && ((s.eval_every > 0 && (step + 1) % s.eval_every == 0) || last)) {
            float vl = evaluate(&model, &val, eval_batches, inputs, targets);
            printf("eval step %d | val loss %.6f | ppl %.3f\n", step + 1, vl, exp(vl));
            if (logf) { fprintf(logf, "{\"step\": %d, \"val_loss\": %.9g, \"val_ppl\": %.9g}\n", step + 1, vl, exp(vl)); fflush(logf); }
        }
        if (s.sample_every > 0 && (step + 1) % s.sample_every == 0 && !last)
            print_sample(&model, &tok, have_tok, eos, s.sample_len, &sample_rng);
        if (s.out[0] && ((s.save_every > 0 && (step + 1) % s.save_every == 0) || last)) {
            llama_save(&config, &model.table, model.params, s.out, strcmp(s.save_dtype, "bf16") == 0 ? ST_BF16 : ST_F32);
            printf("saved %s/model.safetensors and config.json (step %d)\n", s.out, step + 1);
        }
    }
    print_sample(&model, &tok, have_tok, eos, s.sample_len, &sample_rng);
    printf("done: %d steps in %.1f s, peak RSS %.0f MiB\n", s.steps, now_seconds() - t_start, rss_mib());
    if (logf) fclose(logf);
    if (have_tok) tokenizer_free(&tok);
    dataloader_free(&train);
    if (have_val) dataloader_free(&val);
    free(inputs); free(targets);
    llama_free(&model);
    return 0;
}
#endif
