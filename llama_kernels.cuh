// llama_kernels.cuh: the LLaMA layers on the GPU in bf16 with fp32 math. Each kernel has a
// launcher name_forward(...)/name_backward(...) that takes a cudaStream_t and checks the launch.
// Kernels are written to be obviously right first: fp32 arithmetic on bf16 storage, one block per
// row where a row needs a reduction, grid-stride loops elsewhere, and fixed reduction orders so
// that a run is bit-reproducible (no float atomics anywhere: the encoder backward and every
// weight-gradient reduction sum in a fixed order).
//
// The per-element arithmetic comes from llama_math.h (and galore.h for Adam), shared with the CPU.
// Matmuls (cuBLASLt, cuBLAS fallback) are at the end: PyTorch layout, out = inp @ W^T, W (OC, IC).
//
// Shapes: N rows (= B*T positions), C hidden, H intermediate, V vocab, HD head dim.
#ifndef LLAMA_KERNELS_CUH
#define LLAMA_KERNELS_CUH

#include "cuda_common.cuh"
#include "llama_math.h"
#include "galore.h"

// ----------------------------------------------------------------------------
// encoder: out (N, C) = wte[inp] (a gather)

__global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte, size_t N, int C) {
    size_t total = N * (size_t)C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C, c = i % C;
        out[i] = wte[(size_t)inp[row] * C + c];
    }
}
// inp: device token ids (N), already validated against V on the host
static void encoder_forward(floatX* out, const int* inp, const floatX* wte, size_t N, int C, cudaStream_t s) {
    encoder_forward_kernel<<<grid_for(N * C, 256), 256, 0, s>>>(out, inp, wte, N, C);
    cudaCheckLaunch();
}

// encoder backward, deterministic: rows of dwte get the sum of dout over the positions holding
// that token. The host buckets positions by token (encoder_backward_buckets), so each block owns
// one distinct token and adds its positions in increasing order: no atomics, the same bits on
// every run, and the sum is done in fp32 then rounded once into the bf16 gradient.
// bucket layout (ints): positions (N) sorted by (token, position) | starts (n_unique + 1) | tokens (n_unique)
static int encoder_backward_buckets(int* bucket, int* counts, const int* inp, int N, int V) {
    // counting sort by token; counts is host scratch of V + 1 ints
    memset(counts, 0, sizeof(int) * (size_t)(V + 1));
    for (int i = 0; i < N; i++) counts[inp[i] + 1]++;
    for (int v = 0; v < V; v++) counts[v + 1] += counts[v];
    int* pos = bucket;
    // counts[v] is now the first slot of token v; fill in increasing position order
    int* fill = (int*)mallocCheck(sizeof(int) * (size_t)(V + 1));
    memcpy(fill, counts, sizeof(int) * (size_t)(V + 1));
    for (int i = 0; i < N; i++) pos[fill[inp[i]]++] = i;
    free(fill);
    int nu = 0;
    for (int v = 0; v < V; v++) if (counts[v + 1] > counts[v]) nu++;
    int* starts = bucket + N;
    int* toks = bucket + N + nu + 1;
    int k = 0;
    for (int v = 0; v < V; v++) {
        if (counts[v + 1] > counts[v]) { starts[k] = counts[v]; toks[k] = v; k++; }
    }
    starts[nu] = N;
    return nu; // the bucket holds N + 2 n_unique + 1 <= 3N + 1 ints
}

__global__ void encoder_backward_kernel(floatX* dwte, const floatX* dout, const int* bucket, int N, int nu, int C) {
    const int* pos = bucket;
    const int* starts = bucket + N;
    const int* toks = bucket + N + nu + 1;
    int u = blockIdx.x;
    size_t row = (size_t)toks[u] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = bf2f(dwte[row + c]);
        for (int j = starts[u]; j < starts[u + 1]; j++) acc += bf2f(dout[(size_t)pos[j] * C + c]);
        dwte[row + c] = f2bf(acc);
    }
}
// d_bucket: the device copy of the host bucket (N + 2 nu + 1 ints)
static void encoder_backward(floatX* dwte, const floatX* dout, const int* d_bucket, int N, int nu, int C, cudaStream_t s) {
    if (nu == 0) return;
    encoder_backward_kernel<<<nu, 256, 0, s>>>(dwte, dout, d_bucket, N, nu, C);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// rmsnorm (HF LlamaRMSNorm): out = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps)

#define RMS_BLOCK 256
__global__ void rmsnorm_forward_kernel(floatX* out, float* rstd, const floatX* x, const floatX* w, int N, int C, float eps) {
    int row = blockIdx.x;
    if (row >= N) return;
    const floatX* xr = x + (size_t)row * C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) { float v = bf2f(xr[c]); ss += v * v; }
    ss = block_reduce_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (threadIdx.x == 0 && rstd != NULL) rstd[row] = r;
    floatX* orow = out + (size_t)row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) orow[c] = f2bf(rmsnorm_elem(bf2f(xr[c]), bf2f(w[c]), r));
}
static void rmsnorm_forward(floatX* out, float* rstd, const floatX* x, const floatX* w, int N, int C, float eps, cudaStream_t s) {
    rmsnorm_forward_kernel<<<N, RMS_BLOCK, 0, s>>>(out, rstd, x, w, N, C, eps);
    cudaCheckLaunch();
}

// backward, dx part: one block per row. dx = dx_in + rstd*(w*dy - xhat*mean(w*dy*xhat)); the
// residual stream's gradient is carried in dx (accumulate = 1 adds into it, as the CPU does)
__global__ void rmsnorm_backward_dx_kernel(floatX* dx, const floatX* dy, const floatX* x, const floatX* w, const float* rstd,
                                           int N, int C, int accumulate) {
    int row = blockIdx.x;
    if (row >= N) return;
    const floatX* xr = x + (size_t)row * C;
    const floatX* dyr = dy + (size_t)row * C;
    float r = rstd[row];
    float dot = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (bf2f(w[c]) * bf2f(dyr[c])) * (bf2f(xr[c]) * r);
    dot = block_reduce_sum(dot);
    float mean = dot / (float)C;
    floatX* dxr = dx + (size_t)row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = rmsnorm_backward_elem(bf2f(xr[c]), bf2f(w[c]), bf2f(dyr[c]), r, mean);
        if (accumulate) v += bf2f(dxr[c]);
        dxr[c] = f2bf(v);
    }
}

// backward, dw part, in two deterministic passes: RMS_DW_CHUNKS row chunks each sum their rows
// per column into fp32 scratch (RMS_DW_CHUNKS, C); then one thread per column adds the chunks in
// order into dw. The chunk count is a constant, so the summation order never depends on the GPU.
// RMS_DW_CHUNKS: llama.h (the memory plan sizes the scratch)
__global__ void rmsnorm_backward_dw_partial_kernel(float* scratch, const floatX* dy, const floatX* x, const float* rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (c >= C) return;
    int per = (N + RMS_DW_CHUNKS - 1) / RMS_DW_CHUNKS;
    int r0 = chunk * per, r1 = r0 + per < N ? r0 + per : N;
    float acc = 0.0f;
    for (int i = r0; i < r1; i++) acc += bf2f(dy[(size_t)i * C + c]) * (bf2f(x[(size_t)i * C + c]) * rstd[i]);
    scratch[(size_t)chunk * C + c] = acc;
}
__global__ void rmsnorm_backward_dw_final_kernel(floatX* dw, const float* scratch, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int k = 0; k < RMS_DW_CHUNKS; k++) acc += scratch[(size_t)k * C + c];
    dw[c] = f2bf(bf2f(dw[c]) + acc);
}
// scratch: fp32 (RMS_DW_CHUNKS, C). dw accumulates (+=) like every weight gradient.
static void rmsnorm_backward(floatX* dx, floatX* dw, float* scratch, const floatX* dy, const floatX* x, const floatX* w,
                             const float* rstd, int N, int C, int accumulate_dx, cudaStream_t s) {
    rmsnorm_backward_dx_kernel<<<N, RMS_BLOCK, 0, s>>>(dx, dy, x, w, rstd, N, C, accumulate_dx);
    cudaCheckLaunch();
    dim3 grid(ceil_div(C, 128), RMS_DW_CHUNKS);
    rmsnorm_backward_dw_partial_kernel<<<grid, 128, 0, s>>>(scratch, dy, x, rstd, N, C);
    cudaCheckLaunch();
    rmsnorm_backward_dw_final_kernel<<<ceil_div(C, 128), 128, 0, s>>>(dw, scratch, C);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// RoPE (rotate_half), in place on nh heads of HD per row, rows ld elements apart. In the fused
// qkv layout the NH query heads and the NKV key heads are adjacent, so one launch with
// nh = NH + NKV rotates both. cos/sin: fp32 (maxT, HD/2) tables built on the host exactly as the
// CPU's llama_rope_init. sign +1 forward, -1 backward (the inverse rotation).

__global__ void rope_kernel(floatX* x, const float* cosb, const float* sinb, int B, int T, int nh, int HD, int ld, float sign) {
    int half = HD / 2;
    size_t total = (size_t)B * T * nh * half;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        int h = (int)((idx / half) % nh);
        size_t bt = idx / ((size_t)half * nh);
        int t = (int)(bt % T);
        floatX* xh = x + bt * ld + (size_t)h * HD;
        float x1 = bf2f(xh[i]), x2 = bf2f(xh[i + half]);
        rope_pair(&x1, &x2, cosb[(size_t)t * half + i], sinb[(size_t)t * half + i], sign);
        xh[i] = f2bf(x1);
        xh[i + half] = f2bf(x2);
    }
}
static void rope_forward(floatX* x, const float* cosb, const float* sinb, int B, int T, int nh, int HD, int ld, cudaStream_t s) {
    rope_kernel<<<grid_for((size_t)B * T * nh * (HD / 2), 256), 256, 0, s>>>(x, cosb, sinb, B, T, nh, HD, ld, 1.0f);
    cudaCheckLaunch();
}
static void rope_backward(floatX* dx, const float* cosb, const float* sinb, int B, int T, int nh, int HD, int ld, cudaStream_t s) {
    rope_kernel<<<grid_for((size_t)B * T * nh * (HD / 2), 256), 256, 0, s>>>(dx, cosb, sinb, B, T, nh, HD, ld, -1.0f);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// SwiGLU on the fused gate | up layout: gu (N, 2H), act (N, H) = silu(gate) * up

__global__ void swiglu_forward_kernel(floatX* act, const floatX* gu, size_t N, int H) {
    size_t total = N * (size_t)H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / H, j = i % H;
        const floatX* g = gu + row * 2 * H;
        act[i] = f2bf(swiglu_elem(bf2f(g[j]), bf2f(g[j + H])));
    }
}
static void swiglu_forward(floatX* act, const floatX* gu, size_t N, int H, cudaStream_t s) {
    swiglu_forward_kernel<<<grid_for(N * H, 256), 256, 0, s>>>(act, gu, N, H);
    cudaCheckLaunch();
}

// dgu (N, 2H) = dgate | dup from dact (N, H)
__global__ void swiglu_backward_kernel(floatX* dgu, const floatX* dact, const floatX* gu, size_t N, int H) {
    size_t total = N * (size_t)H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / H, j = i % H;
        const floatX* g = gu + row * 2 * H;
        floatX* dg = dgu + row * 2 * H;
        float dgate, dup;
        swiglu_backward_elem(bf2f(g[j]), bf2f(g[j + H]), bf2f(dact[i]), &dgate, &dup);
        dg[j] = f2bf(dgate);
        dg[j + H] = f2bf(dup);
    }
}
static void swiglu_backward(floatX* dgu, const floatX* dact, const floatX* gu, size_t N, int H, cudaStream_t s) {
    swiglu_backward_kernel<<<grid_for(N * H, 256), 256, 0, s>>>(dgu, dact, gu, N, H);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// the targets, counted once on the device (the loss's mean and its gradient's scale need the count,
// the host reads it with the losses): counts[TC_VALID] targets in [0, V), counts[TC_FIRST_BAD] the
// first position of a target >= V (N if none: the host stops with it), counts[TC_NORM] what the loss
// gradient is divided by: counts[TC_VALID] here, which data parallel replaces by the sum over the
// ranks (an all-reduce into it before the classifier). One block, __syncthreads_count per chunk of
// positions: an exact integer count, deterministic.
enum { TC_VALID = 0, TC_FIRST_BAD, TC_NORM, TC_NUM };
static_assert(TC_NUM == GPU_TARGET_COUNTS, "memplan.h sizes the targets row with GPU_TARGET_COUNTS");
#define TC_BLOCK 1024
__global__ void targets_count_kernel(int* counts, const int* targets, int N, int V) {
    int valid = 0, first_bad = N;
    for (int base = 0; base < N; base += blockDim.x) {
        int i = base + threadIdx.x;
        int t = i < N ? targets[i] : -1;
        valid += __syncthreads_count(t >= 0 && t < V);
        if (t >= V && i < first_bad) first_bad = i;
    }
    __shared__ int sbad;
    if (threadIdx.x == 0) sbad = N;
    __syncthreads();
    if (first_bad < N) atomicMin(&sbad, first_bad); // an integer minimum: the same value in any order
    __syncthreads();
    if (threadIdx.x == 0) { counts[TC_VALID] = valid; counts[TC_FIRST_BAD] = sbad; counts[TC_NORM] = valid; }
}
// counts: device (TC_NUM ints)
static void targets_count(int* counts, const int* targets, int N, int V, cudaStream_t s) {
    targets_count_kernel<<<1, TC_BLOCK, 0, s>>>(counts, targets, N, V);
    cudaCheckLaunch();
}

// fused classifier: per row of logits (V), an online softmax (running max and rescaled sum per
// thread, combined across the block), the loss lse - logit[target] in fp32, and, when write_grad is
// set, dlogits = (softmax - onehot) * dloss written IN PLACE over the logits. Probabilities are
// never stored. Targets < 0 are ignored: loss 0 and a zero gradient row; so is a target >= V (the
// host stops on it: targets_count's TC_FIRST_BAD), never read out of the row.
// dloss = grad_scale / *norm (the mean over counted targets; 0 when none), read on the device from
// targets_count's TC_NORM, rounded as the host's fp32 division would (__fdiv_rn: --use_fast_math
// makes a plain '/' approximate).

#define CLS_BLOCK 512
__global__ void fused_classifier_kernel(floatX* logits, float* losses, const int* targets, int N, int V, float grad_scale, const int* norm,
                                        int write_grad) {
    int row = blockIdx.x;
    if (row >= N) return;
    floatX* lr = logits + (size_t)row * V;
    int tgt = targets[row];
    int nn = *norm;
    float dloss = grad_scale > 0.0f && nn > 0 ? __fdiv_rn(grad_scale, (float)nn) : 0.0f;
    if (tgt < 0 || tgt >= V) {
        if (threadIdx.x == 0) losses[row] = 0.0f;
        if (write_grad) for (int j = threadIdx.x; j < V; j += blockDim.x) lr[j] = f2bf(0.0f);
        return;
    }
    float m = -INFINITY, sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float x = bf2f(lr[j]);
        if (x > m) { sum = sum * expf(m - x) + 1.0f; m = x; }
        else sum += expf(x - m);
    }
    float bm = block_reduce_max(m);
    float scaled = m == -INFINITY ? 0.0f : sum * expf(m - bm); // threads that saw no element add 0
    float bsum = block_reduce_sum(scaled);
    float lse = bm + logf(bsum);
    float xt = bf2f(lr[tgt]);
    __syncthreads(); // every thread has read lr[tgt] before any thread overwrites it
    if (threadIdx.x == 0) losses[row] = lse - xt;
    if (write_grad) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float p = expf(bf2f(lr[j]) - lse);
            float d = p * dloss - (j == tgt ? dloss : 0.0f);
            lr[j] = f2bf(d);
        }
    }
}
// targets: device (N); losses: device fp32 (N); norm: device, targets_count's counts + TC_NORM
static void fused_classifier(floatX* logits, float* losses, const int* targets, int N, int V, float grad_scale, const int* norm, int write_grad,
                             cudaStream_t s) {
    fused_classifier_kernel<<<N, CLS_BLOCK, 0, s>>>(logits, losses, targets, N, V, grad_scale, norm, write_grad);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// Adam / AdamW (torch semantics: galore.h's adam_torch_elem, the CPU optimizer's per-element
// math). TP: the tensor the update is applied to (floatX: pure bf16 weights; float: fp32 master
// weights, whose bf16 copy pbf is refreshed). TM: the moments' type (floatX by default as the
// paper, float with --master-weights 1). gscale multiplies the gradient (global norm clipping).
// sr: stochastic rounding of the bf16 results (weights, and bf16 moments) with the hash of
// (seed, index), so a step is reproducible.

__device__ static inline void adam_store(floatX* p, float v, int sr, uint32_t seed, size_t i) {
    *p = sr ? f2bf_stochastic(v, seed, i) : f2bf(v);
}
__device__ static inline void adam_store(float* p, float v, int sr, uint32_t seed, size_t i) { (void)sr; (void)seed; (void)i; *p = v; }

template <class TP, class TM>
__global__ void adam_kernel(TP* p, floatX* pbf, const floatX* g, TM* m, TM* v, size_t n, float b1, float b2, float eps,
                            float step_size, float inv_bc2, float decay, float l2, float gscale, int sr, uint32_t seed, const int* skip) {
    if (update_skipped(skip)) return; // the per-layer device-side verdict (cuda_common.cuh)
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gf = bf2f(g[i]) * gscale;
        float mf = to_f32(m[i]), vf = to_f32(v[i]);
        float pf = adam_torch_elem(to_f32(p[i]), gf, &mf, &vf, b1, b2, eps, step_size, inv_bc2, decay, l2);
        // three independent random streams: weights, m, v
        adam_store(&m[i], mf, sr, seed ^ 0x68bc21ebU, i);
        adam_store(&v[i], vf, sr, seed ^ 0x02e5be93U, i);
        adam_store(&p[i], pf, sr, seed, i);
        if (pbf != NULL) pbf[i] = f2bf(pf); // master weights: the compute copy, nearest
    }
}
template <class TP, class TM>
static void adam_update(TP* p, floatX* pbf, const floatX* g, TM* m, TM* v, size_t n, float b1, float b2, float eps,
                        float step_size, float inv_bc2, float decay, float l2, float gscale, int sr, uint32_t seed, cudaStream_t s,
                        const int* skip = NULL) {
    adam_kernel<TP, TM><<<grid_for(n, 256), 256, 0, s>>>(p, pbf, g, m, v, n, b1, b2, eps, step_size, inv_bc2, decay, l2, gscale, sr, seed, skip);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// global gradient norm, deterministic: a fixed grid of NORM_BLOCKS blocks each writes the sum of
// squares of its grid-stride share to partial[block]; the host adds the partials in order. Same n,
// same bits, on every run and every GPU. In double, as the CPU engine's sumsq: any finite bf16 or
// fp32 squared is finite there (fp32 overflowed from |x| > 1.8e19, and the per-layer check then
// skipped a finite gradient as non-finite, where the CPU engine updates it: issue 22).

// NORM_BLOCKS: llama.h (the memory plan sizes the partials)
#define NORM_THREADS 512
// T: floatX (gradients) or float (Fira's fp32 residual)
template <class T>
__global__ void sumsq_partial_kernel(double* partial, const T* x, size_t n) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double v = (double)to_f32(x[i]);
        acc += v * v;
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}
// partial: device fp64 (NORM_BLOCKS)
template <class T>
static void sumsq_partials(double* partial, const T* x, size_t n, cudaStream_t s) {
    sumsq_partial_kernel<T><<<NORM_BLOCKS, NORM_THREADS, 0, s>>>(partial, x, n);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// casts

__global__ void cast_f32_to_bf16_kernel(floatX* dst, const float* src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) dst[i] = f2bf(src[i]);
}
__global__ void cast_bf16_to_f32_kernel(float* dst, const floatX* src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) dst[i] = bf2f(src[i]);
}
static void cast_f32_to_bf16(floatX* dst, const float* src, size_t n, cudaStream_t s) {
    cast_f32_to_bf16_kernel<<<grid_for(n, 256), 256, 0, s>>>(dst, src, n);
    cudaCheckLaunch();
}
static void cast_bf16_to_f32(float* dst, const floatX* src, size_t n, cudaStream_t s) {
    cast_bf16_to_f32_kernel<<<grid_for(n, 256), 256, 0, s>>>(dst, src, n);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// matmuls. PyTorch layout: W (OC, IC) row-major, out (N, OC) = inp (N, IC) @ W^T.
// cuBLAS is column-major; a row-major (r, c) matrix is a column-major (c, r) one, so
//   forward  out^T (OC x N)  = op_T(W as IC x OC) * inp^T (IC x N)          m=OC n=N  k=IC
//   dinp     dinp^T (IC x N) = W^T (IC x OC)      * dout^T (OC x N)         m=IC n=N  k=OC
//   dW       dW^T (IC x OC) += inp^T (IC x N)     * op_T(dout^T as OC x N)  m=IC n=OC k=N
// All bf16 in and out with fp32 accumulation (CUBLAS_COMPUTE_32F). cuBLASLt with a workspace is
// tried first; when its heuristic finds no algorithm (odd leading dimensions, 2-byte aligned
// slices of the flat weight buffer), cublasGemmEx runs the same product.

// gemm_bf16_scaled's cache: the cuBLASLt descriptors and the heuristic's algorithm of each (shape,
// leading dimensions, transposes, pointer alignments) seen, so a training step's few dozen distinct
// GEMMs query the heuristic once each instead of on every call (10-20 us each). Bounded: when full,
// entries are replaced in turn (their descriptors destroyed). A heuristic that found nothing is
// cached too (has_algo 0: cublasGemmEx). GEMM_CACHE_SALT is part of the key (dev/cuda's
// force_gemmex.cuh sets it to its switch, so a forced run never reuses a real algorithm).
#define GEMM_CACHE_SIZE 64
#ifndef GEMM_CACHE_SALT
#define GEMM_CACHE_SALT 0
#endif
typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldd, salt;
    int pmode; // alpha, beta: 0 host floats, 1 device floats (CUBLASLT_POINTER_MODE_DEVICE)
    uint32_t alA, alB, alD;
    int has_algo;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} GemmPlan;
typedef struct { GemmPlan e[GEMM_CACHE_SIZE]; int n, next; int64_t hits, misses; } GemmCache;

typedef struct {
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    void* workspace;
    size_t workspace_bytes;
    GemmCache* cache;    // (host) heap, so a struct copy of the context shares it; freed by matmul_ctx_free
    cudaStream_t stream; // the one stream its workspace serves (gemm_bf16_scaled stops on another)
    int fallbacks;       // how many calls went to cublasGemmEx (the first one says so)
    // per-layer updates run on their own stream while backward goes on, and the gradient slots
    // are shared by the update groups: matmul_backward waits for this event (the last group's
    // update has read and zeroed the slots) between its input-gradient and its weight-gradient
    // GEMMs, so the first overlaps the update and only the second waits. has_dw_wait 0: no wait
    cudaEvent_t dw_wait;
    int has_dw_wait;
} MatmulCtx;

// MATMUL_WORKSPACE_BYTES: llama.h (a memory plan row)
// A MatmulCtx (its handles, workspace and cache) serves one stream (ctx->stream, checked per call): the trainer keeps one
// for the main stream (GpuLlama.mm) and one for the update stream (GpuTrainer.mm_upd), so no
// workspace is ever used by two streams at once; the descriptors in the cache hold no stream.

// matmul_ctx_init: the cuBLAS and cuBLASLt handles on stream s, as every program here sets them up:
// no TF32 anywhere (bf16 inputs make it moot; fp32 products stay fp32), atomics off (deterministic
// cuBLAS kernels), and the cuBLASLt workspace
static void matmul_ctx_init(MatmulCtx* ctx, cudaStream_t s) {
    memset(ctx, 0, sizeof *ctx);
    ctx->stream = s;
    cublasCheck(cublasCreate(&ctx->blas));
    cublasCheck(cublasSetStream(ctx->blas, s));
    cublasCheck(cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH));
    cublasCheck(cublasSetAtomicsMode(ctx->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
    cublasCheck(cublasLtCreate(&ctx->lt));
    ctx->workspace_bytes = MATMUL_WORKSPACE_BYTES;
    ctx->workspace = cudaMallocCheck(MATMUL_WORKSPACE_BYTES, "cuBLASLt workspace");
    ctx->cache = (GemmCache*)callocCheck(1, sizeof(GemmCache));
}

static void gemm_plan_destroy(GemmPlan* p) {
    cublasCheck(cublasLtMatrixLayoutDestroy(p->la));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->ld));
    cublasCheck(cublasLtMatmulDescDestroy(p->op));
}

// matmul_ctx_free: the cache's descriptors, the workspace, both handles
static void matmul_ctx_free(MatmulCtx* ctx) {
    if (ctx->cache) {
        for (int i = 0; i < ctx->cache->n; i++) gemm_plan_destroy(&ctx->cache->e[i]);
        free(ctx->cache);
        ctx->cache = NULL;
    }
    cudaCheck(cudaFree(ctx->workspace));
    ctx->workspace = NULL;
    cublasCheck(cublasLtDestroy(ctx->lt));
    cublasCheck(cublasDestroy(ctx->blas));
}

static uint32_t ptr_alignment(const void* p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

// gemm_plan_get: the cached plan of this GEMM, built (descriptors + heuristic) on a miss
static GemmPlan* gemm_plan_get(MatmulCtx* ctx, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldd, uint32_t alA, uint32_t alB,
                               uint32_t alD, int pmode) {
    GemmCache* c = ctx->cache;
    if (c == NULL) die("internal: gemm_bf16_scaled on a MatmulCtx without matmul_ctx_init");
    int salt = (int)(GEMM_CACHE_SALT);
    for (int i = 0; i < c->n; i++) {
        GemmPlan* p = &c->e[i];
        if (p->ta == ta && p->tb == tb && p->m == m && p->n == n && p->k == k && p->lda == lda && p->ldb == ldb && p->ldd == ldd &&
            p->alA == alA && p->alB == alB && p->alD == alD && p->salt == salt && p->pmode == pmode) { c->hits++; return p; }
    }
    c->misses++;
    GemmPlan* p;
    if (c->n < GEMM_CACHE_SIZE) p = &c->e[c->n++];
    else { p = &c->e[c->next]; c->next = (c->next + 1) % GEMM_CACHE_SIZE; gemm_plan_destroy(p); }
    memset(p, 0, sizeof *p);
    p->ta = ta; p->tb = tb; p->m = m; p->n = n; p->k = k; p->lda = lda; p->ldb = ldb; p->ldd = ldd;
    p->alA = alA; p->alB = alB; p->alD = alD; p->salt = salt; p->pmode = pmode;
    cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    // fp32 compute and fp32 scale type (alpha, beta fp32, on the host or the device): the bf16 GEMM
    // with fp32 accumulation
    cublasCheck(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    if (pmode) {
        // alpha and beta read from device memory when the GEMM runs (stream-ordered), so a kernel
        // before it on the stream can set them (the per-layer update's device-side skip)
        int32_t pm = CUBLASLT_POINTER_MODE_DEVICE;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm));
    }
    cublasCheck(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    // stored shapes: A is m x k (k x m when transposed), B is k x n (n x k when transposed)
    cublasCheck(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_16BF, m, n, ldd));
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx->workspace_bytes,
                                                     sizeof ctx->workspace_bytes));
    // the default assumes 256-byte aligned buffers; slices of the flat buffers may be less aligned
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alD, sizeof alD));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alD, sizeof alD));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->op, p->la, p->lb, p->ld, p->ld, pref, 1, &heur, &found);
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    p->has_algo = hs == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->has_algo) p->algo = heur.algo;
    if (p->has_algo && pmode) {
        // the heuristic answers for the descriptor, device pointer mode included; an algorithm whose
        // capabilities say otherwise is not trusted (cublasGemmEx with device pointers instead)
        uint32_t mask = 0;
        size_t written = 0;
        if (cublasLtMatmulAlgoCapGetAttribute(&p->algo, CUBLASLT_ALGO_CAP_POINTER_MODE_MASK, &mask, sizeof mask, &written) ==
                CUBLAS_STATUS_SUCCESS && written == sizeof mask && mask != 0 && !(mask & CUBLASLT_POINTER_MODE_MASK_DEVICE))
            p->has_algo = 0;
    }
    return p;
}

// D (m x n, ldd) = alpha * op(A) op(B) + beta * D, column-major, all bf16; ta/tb: transpose flags.
// D is C (in place: cuBLASLt allows C == D when their layouts are the same, here one descriptor),
// rounded to bf16 once. The descriptors and algorithm come from the context's cache. alpha, beta:
// host floats (pmode 0) or device floats read when the GEMM runs (pmode 1).
static void gemm_bf16_run(MatmulCtx* ctx, int ta, int tb, int m, int n, int k, const float* alpha, const floatX* A, int lda, const floatX* B,
                          int ldb, floatX* D, int ldd, const float* beta, int pmode, cudaStream_t stream) {
    // one workspace: two streams using it at once would race
    if (stream != ctx->stream) die("internal: gemm_bf16_scaled on a stream other than its MatmulCtx's (its workspace serves one)");
    uint32_t alA = ptr_alignment(A), alB = ptr_alignment(B), alD = ptr_alignment(D);
    GemmPlan* p = gemm_plan_get(ctx, ta, tb, m, n, k, lda, ldb, ldd, alA, alB, alD, pmode);
    if (p->has_algo) {
        cublasCheck(cublasLtMatmul(ctx->lt, p->op, alpha, A, p->la, B, p->lb, beta, D, p->ld, D, p->ld, &p->algo, ctx->workspace,
                                   ctx->workspace_bytes, stream));
    } else {
        if (ctx->fallbacks++ == 0)
            printf("note: cuBLASLt has no algorithm for a %d x %d x %d bf16 matmul (alignment %u/%u/%u bytes%s); using cublasGemmEx for such shapes\n",
                   m, n, k, alA, alB, alD, pmode ? ", device alpha/beta" : "");
        cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasCheck(cublasSetStream(ctx->blas, stream));
        // the handle's pointer mode is host state read at the call: set for this call only
        if (pmode) cublasCheck(cublasSetPointerMode(ctx->blas, CUBLAS_POINTER_MODE_DEVICE));
        cublasCheck(cublasGemmEx(ctx->blas, opA, opB, m, n, k, alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, beta, D,
                                 CUDA_R_16BF, ldd, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (pmode) cublasCheck(cublasSetPointerMode(ctx->blas, CUBLAS_POINTER_MODE_HOST));
    }
}
static void gemm_bf16_scaled(MatmulCtx* ctx, int ta, int tb, int m, int n, int k, float alpha, const floatX* A, int lda, const floatX* B,
                             int ldb, floatX* D, int ldd, float beta, cudaStream_t stream) {
    gemm_bf16_run(ctx, ta, tb, m, n, k, &alpha, A, lda, B, ldb, D, ldd, &beta, 0, stream);
}
// d_ab: device (2) = {alpha, beta}
static void gemm_bf16_scaled_dev(MatmulCtx* ctx, int ta, int tb, int m, int n, int k, const float* d_ab, const floatX* A, int lda,
                                 const floatX* B, int ldb, floatX* D, int ldd, cudaStream_t stream) {
    gemm_bf16_run(ctx, ta, tb, m, n, k, d_ab, A, lda, B, ldb, D, ldd, d_ab + 1, 1, stream);
}
// alpha = 1: the model's matmuls
static void gemm_bf16(MatmulCtx* ctx, int ta, int tb, int m, int n, int k, const floatX* A, int lda, const floatX* B, int ldb,
                      floatX* D, int ldd, float beta, cudaStream_t stream) {
    gemm_bf16_scaled(ctx, ta, tb, m, n, k, 1.0f, A, lda, B, ldb, D, ldd, beta, stream);
}

// out (N, OC) = inp (N, IC) @ W^T (+ residual (N, OC) when not NULL: the residual add fused into
// the GEMM's beta = 1, so the sum is rounded to bf16 once). out must not alias inp or W.
static void matmul_forward(MatmulCtx* ctx, floatX* out, const floatX* inp, const floatX* W, const floatX* residual, int N, int IC, int OC,
                           cudaStream_t s) {
    float beta = 0.0f;
    if (residual != NULL) {
        if (residual != out) cudaCheck(cudaMemcpyAsync(out, residual, sizeof(floatX) * (size_t)N * OC, cudaMemcpyDeviceToDevice, s));
        beta = 1.0f;
    }
    gemm_bf16(ctx, 1, 0, OC, N, IC, W, IC, inp, IC, out, OC, beta, s);
}

// dinp (N, IC) = dout (N, OC) @ W (overwritten; skipped when NULL); dW (OC, IC) += dout^T @ inp
static void matmul_backward(MatmulCtx* ctx, floatX* dinp, floatX* dW, const floatX* dout, const floatX* inp, const floatX* W,
                            int N, int IC, int OC, cudaStream_t s) {
    if (dinp != NULL) gemm_bf16(ctx, 0, 0, IC, N, OC, W, IC, dout, OC, dinp, IC, 0.0f, s);
    if (ctx->has_dw_wait) cudaCheck(cudaStreamWaitEvent(s, ctx->dw_wait, 0));
    gemm_bf16(ctx, 0, 1, IC, OC, N, inp, IC, dout, OC, dW, IC, 1.0f, s);
}

#endif // LLAMA_KERNELS_CUH
