/*
Validation and timing of attention.cuh: causal GQA attention forward/backward, both the cuDNN
fused path and the cuBLAS fallback, against a small fp32 CPU reference written here with the
semantics of train_llama.c's attention_forward/attention_backward.

Compile (from the repository root):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/attention.cu -o dev/cuda/attention -lcublas -lcublasLt -lcusolver -lcudnn -lgomp

Run:
./dev/cuda/attention

Exits non-zero on any mismatch; the last line is "N passed, N failed".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>
#include "../../attention.cuh"

static int g_pass = 0, g_fail = 0;

static void check_cuda(cudaError_t e, const char* what, int line) {
    if (e != cudaSuccess) {
        fprintf(stderr, "error: %s: %s (dev/cuda/attention.cu:%d)\n", what, cudaGetErrorString(e), line);
        exit(EXIT_FAILURE);
    }
}
#define CHECK(call) check_cuda((call), #call, __LINE__)

// ------------------------------------------------------------------------------------------------
// CPU reference (fp32), same math as train_llama.c: qkv (B,T,C+2KV), att (B,NH,T,T), y (B,T,C)

static void cpu_attention_forward(float* y, float* att, const float* qkv, int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV, ld = C + 2 * KV;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int kh = h / rep;
            for (int t = 0; t < T; t++) {
                const float* q = qkv + ((size_t)b * T + t) * ld + h * HD;
                float* row = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const float* k = qkv + ((size_t)b * T + s) * ld + C + kh * HD;
                    float dot = 0.0f;
                    for (int d = 0; d < HD; d++) dot += q[d] * k[d];
                    row[s] = dot * scale;
                    if (row[s] > maxv) maxv = row[s];
                }
                double sum = 0.0;
                for (int s = 0; s <= t; s++) { row[s] = expf(row[s] - maxv); sum += row[s]; }
                for (int s = 0; s <= t; s++) row[s] = (float)(row[s] / sum);
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
                float* yo = y + ((size_t)b * T + t) * C + h * HD;
                for (int d = 0; d < HD; d++) yo[d] = 0.0f;
                for (int s = 0; s <= t; s++) {
                    const float* v = qkv + ((size_t)b * T + s) * ld + C + KV + kh * HD;
                    for (int d = 0; d < HD; d++) yo[d] += row[s] * v[d];
                }
            }
        }
    }
}

// dqkv overwritten; per (b, kv head) so the group's heads add into dk/dv without races
static void cpu_attention_backward(float* dqkv, const float* dy, const float* att, const float* qkv,
                                   int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KV = NKV * HD, rep = NH / NKV, ld = C + 2 * KV;
    float scale = 1.0f / sqrtf((float)HD);
    memset(dqkv, 0, sizeof(float) * (size_t)B * T * ld);
    #pragma omp parallel
    {
        float* datt = (float*)malloc(sizeof(float) * (size_t)T);
        #pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++) {
            for (int kh = 0; kh < NKV; kh++) {
                for (int h = kh * rep; h < (kh + 1) * rep; h++) {
                    for (int t = 0; t < T; t++) {
                        const float* a = att + (((size_t)b * NH + h) * T + t) * T;
                        const float* g = dy + ((size_t)b * T + t) * C + h * HD;
                        const float* q = qkv + ((size_t)b * T + t) * ld + h * HD;
                        float* dq = dqkv + ((size_t)b * T + t) * ld + h * HD;
                        double dsum = 0.0;
                        for (int s = 0; s <= t; s++) {
                            const float* v = qkv + ((size_t)b * T + s) * ld + C + KV + kh * HD;
                            float* dv = dqkv + ((size_t)b * T + s) * ld + C + KV + kh * HD;
                            float dot = 0.0f;
                            for (int d = 0; d < HD; d++) { dot += g[d] * v[d]; dv[d] += a[s] * g[d]; }
                            datt[s] = dot;
                            dsum += (double)a[s] * dot;
                        }
                        for (int s = 0; s <= t; s++) {
                            float dpre = a[s] * (datt[s] - (float)dsum) * scale;
                            const float* k = qkv + ((size_t)b * T + s) * ld + C + kh * HD;
                            float* dk = dqkv + ((size_t)b * T + s) * ld + C + kh * HD;
                            for (int d = 0; d < HD; d++) { dq[d] += dpre * k[d]; dk[d] += dpre * q[d]; }
                        }
                    }
                }
            }
        }
        free(datt);
    }
}

// ------------------------------------------------------------------------------------------------

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static float rand_uniform(void) { // xorshift64*, [-1, 1)
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (float)((rng_state * 0x2545F4914F6CDD1DULL) >> 40) / 8388608.0f * 2.0f - 1.0f;
}

// random bf16 values; f gets the same values back in fp32 so both sides see identical inputs
static void fill_bf16(floatX* h, float* f, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) { h[i] = __float2bfloat16(amp * rand_uniform()); f[i] = __bfloat162float(h[i]); }
}

// |gpu - ref| <= atol + rtol |ref| with atol relative to the largest reference value
static int compare(const char* what, const floatX* gpu, const float* ref, size_t n, float rtol, float atol_rel) {
    float maxref = 0.0f;
    for (size_t i = 0; i < n; i++) maxref = fmaxf(maxref, fabsf(ref[i]));
    float atol = atol_rel * fmaxf(maxref, 1e-6f);
    double maxerr = 0.0; size_t bad = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        float g = __bfloat162float(gpu[i]);
        float e = fabsf(g - ref[i]);
        if (!(e <= atol + rtol * fabsf(ref[i]))) { if (bad == 0) worst = i; bad++; }
        if (!(e <= maxerr)) maxerr = isfinite(e) ? e : INFINITY;
    }
    printf("    %-6s max|ref| %.3e  max err %.3e  %s", what, maxref, maxerr, bad ? "MISMATCH" : "ok");
    if (bad) printf(" (%zu of %zu, first at %zu: gpu %f ref %f)", bad, n, worst, __bfloat162float(gpu[worst]), ref[worst]);
    printf("\n");
    return bad == 0;
}

static void tally(int ok) { if (ok) g_pass++; else g_fail++; }

typedef struct { int B, T, NH, NKV, HD; int check_cpu; } Shape;

// runs one path on one shape; returns the forward output and dqkv (host, bf16) for cross-checks
// mode: attention_init's (ATTN_AUTO: cuDNN, ATTN_FALLBACK, ATTN_DETERMINISTIC: what the bitwise tests run)
static int run_path(const Shape* sh, int mode, cudnnHandle_t cudnn, cublasHandle_t cublas,
                    const floatX* d_qkv, const floatX* d_dout, floatX* h_out, floatX* h_dqkv,
                    const float* ref_out, const float* ref_dqkv) {
    int B = sh->B, T = sh->T, NH = sh->NH, NKV = sh->NKV, HD = sh->HD;
    int C = NH * HD, ld = C + 2 * NKV * HD;
    size_t n_out = (size_t)B * T * C, n_qkv = (size_t)B * T * ld;
    AttnCtx ctx;
    attention_init(&ctx, cudnn, cublas, B, T, NH, NKV, HD, mode);
    const char* name = mode == ATTN_FALLBACK ? "fallback" : mode == ATTN_DETERMINISTIC ? "determ." : "cuDNN";
    printf("  %-8s path: %s\n", name, attention_path(&ctx));
    if (mode == ATTN_DETERMINISTIC) {
        // the bitwise checks (test_llamacu, test_dist_gpu.sh) rest on this: never the dQ-accumulator backward
        int ok = ctx.bwd_deterministic && !ctx.bwd_dq_accum;
        printf("    ATTN_DETERMINISTIC: backward %s\n", ok ? "deterministic" : "NOT DETERMINISTIC");
        tally(ok);
    }
    if (mode == ATTN_AUTO && !ctx.use_cudnn) {
        printf("  %-8s skipped: cuDNN could not build plans for this shape on this GPU (see line above)\n", name);
        attention_free(&ctx);
        return 0;
    }
    printf("  %-8s workspace %.1f MiB, saved per layer %.1f MiB, backward %s\n", name,
           attention_workspace_bytes(&ctx) / 1048576.0, attention_saved_bytes(&ctx) / 1048576.0,
           ctx.bwd_deterministic ? "deterministic" : "NON-deterministic");
    floatX *d_out, *d_dqkv; void* d_saved;
    CHECK(cudaMalloc(&d_out, n_out * sizeof(floatX)));
    CHECK(cudaMalloc(&d_dqkv, n_qkv * sizeof(floatX)));
    CHECK(cudaMalloc(&d_saved, attention_saved_bytes(&ctx)));
    CHECK(cudaMemset(d_out, 0xff, n_out * sizeof(floatX)));   // NaN pattern: catches unwritten outputs
    CHECK(cudaMemset(d_dqkv, 0xff, n_qkv * sizeof(floatX)));
    cudaStream_t stream;
    CHECK(cudaStreamCreate(&stream));

    attention_forward(&ctx, d_out, d_saved, d_qkv, stream);
    attention_backward(&ctx, d_dqkv, d_dout, d_out, d_qkv, d_saved, stream);
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaMemcpy(h_out, d_out, n_out * sizeof(floatX), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(h_dqkv, d_dqkv, n_qkv * sizeof(floatX), cudaMemcpyDeviceToHost));
    if (ref_out) {
        tally(compare("out", h_out, ref_out, n_out, 2e-2f, 1e-2f));
        tally(compare("dqkv", h_dqkv, ref_dqkv, n_qkv, 3e-2f, 1e-2f));
    }
    // forward without a saved buffer (inference) must give the same output
    {
        floatX* h2 = (floatX*)malloc(n_out * sizeof(floatX));
        attention_forward(&ctx, d_out, NULL, d_qkv, stream);
        CHECK(cudaStreamSynchronize(stream));
        CHECK(cudaMemcpy(h2, d_out, n_out * sizeof(floatX), cudaMemcpyDeviceToHost));
        int same = memcmp(h2, h_out, n_out * sizeof(floatX)) == 0;
        printf("    forward without saved buffer: %s\n", same ? "identical" : "DIFFERS");
        tally(same);
        free(h2);
    }
    // determinism: a second backward must be bitwise identical when ctx says so
    {
        floatX* h2 = (floatX*)malloc(n_qkv * sizeof(floatX));
        attention_forward(&ctx, d_out, d_saved, d_qkv, stream);
        attention_backward(&ctx, d_dqkv, d_dout, d_out, d_qkv, d_saved, stream);
        CHECK(cudaStreamSynchronize(stream));
        CHECK(cudaMemcpy(h2, d_dqkv, n_qkv * sizeof(floatX), cudaMemcpyDeviceToHost));
        int same = memcmp(h2, h_dqkv, n_qkv * sizeof(floatX)) == 0;
        printf("    rerun backward: %s\n", same ? "bitwise identical" : "differs");
        if (ctx.bwd_deterministic) tally(same);
        free(h2);
    }
    // timing
    {
        cudaEvent_t e0, e1;
        CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));
        int iters = 10;
        float ms_f = 0.0f, ms_b = 0.0f;
        CHECK(cudaEventRecord(e0, stream));
        for (int i = 0; i < iters; i++) attention_forward(&ctx, d_out, d_saved, d_qkv, stream);
        CHECK(cudaEventRecord(e1, stream));
        CHECK(cudaEventSynchronize(e1));
        CHECK(cudaEventElapsedTime(&ms_f, e0, e1));
        CHECK(cudaEventRecord(e0, stream));
        for (int i = 0; i < iters; i++) attention_backward(&ctx, d_dqkv, d_dout, d_out, d_qkv, d_saved, stream);
        CHECK(cudaEventRecord(e1, stream));
        CHECK(cudaEventSynchronize(e1));
        CHECK(cudaEventElapsedTime(&ms_b, e0, e1));
        ms_f /= iters; ms_b /= iters;
        // useful causal FLOPs: forward 2 GEMMs of 2*B*NH*T*T*HD over half the matrix; backward 5 GEMMs
        double fwd_flops = 2.0 * B * NH * (double)T * T * HD;
        double bwd_flops = 2.5 * fwd_flops;
        printf("    time fwd %.3f ms (%.1f TFLOP/s)  bwd %.3f ms (%.1f TFLOP/s)\n", ms_f, fwd_flops / ms_f * 1e-9,
               ms_b, bwd_flops / ms_b * 1e-9);
        CHECK(cudaEventDestroy(e0)); CHECK(cudaEventDestroy(e1));
    }
    CHECK(cudaStreamDestroy(stream));
    CHECK(cudaFree(d_out)); CHECK(cudaFree(d_dqkv)); CHECK(cudaFree(d_saved));
    attention_free(&ctx);
    return 1;
}

int main(void) {
    int dev = 0;
    CHECK(cudaSetDevice(dev));
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, dev));
    printf("device: %s (sm_%d%d), cuDNN %zu\n", prop.name, prop.major, prop.minor, cudnnGetVersion());
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    ATTN_CUDNN_CHECK(cudnnCreate(&cudnn));
    ATTN_CUBLAS_CHECK(cublasCreate(&cublas));

    const Shape shapes[] = {
        {2, 64, 4, 4, 64, 1},      // MHA
        {2, 128, 8, 2, 64, 1},     // GQA, 4 heads per kv head
        {1, 256, 8, 1, 128, 1},    // MQA, HD 128
        {2, 200, 6, 3, 64, 1},     // T not a multiple of 64 or 128
        {1, 512, 16, 4, 128, 1},   // GQA, HD 128
        {3, 37, 4, 2, 64, 1},      // tiny odd T
        {4, 1024, 32, 8, 128, 0},  // timing: cuDNN vs fallback only (llama-3-8B-like heads)
    };
    int nshapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int si = 0; si < nshapes; si++) {
        const Shape* sh = &shapes[si];
#ifdef EMU
        // the emulated build (dev/emu) checks results, it does not time: the timing-only shape
        // (cuDNN vs fallback, 4 x 1024 x 32 heads) and the largest checked one run on a GPU only
        if (!sh->check_cpu || sh->T >= 512) continue;
#endif
        int B = sh->B, T = sh->T, NH = sh->NH, NKV = sh->NKV, HD = sh->HD;
        int C = NH * HD, ld = C + 2 * NKV * HD;
        size_t n_qkv = (size_t)B * T * ld, n_out = (size_t)B * T * C;
        printf("B=%d T=%d NH=%d NKV=%d HD=%d\n", B, T, NH, NKV, HD);
        floatX* h_qkv = (floatX*)malloc(n_qkv * sizeof(floatX));
        floatX* h_dout = (floatX*)malloc(n_out * sizeof(floatX));
        float* f_qkv = (float*)malloc(n_qkv * sizeof(float));
        float* f_dout = (float*)malloc(n_out * sizeof(float));
        // amplitude 2: scaled scores of a few units, so the softmax is far from uniform
        fill_bf16(h_qkv, f_qkv, n_qkv, 2.0f);
        fill_bf16(h_dout, f_dout, n_out, 1.0f);
        float *ref_out = NULL, *ref_dqkv = NULL;
        if (sh->check_cpu) {
            ref_out = (float*)malloc(n_out * sizeof(float));
            ref_dqkv = (float*)malloc(n_qkv * sizeof(float));
            float* att = (float*)malloc(sizeof(float) * (size_t)B * NH * T * T);
            cpu_attention_forward(ref_out, att, f_qkv, B, T, NH, NKV, HD);
            cpu_attention_backward(ref_dqkv, f_dout, att, f_qkv, B, T, NH, NKV, HD);
            free(att);
        }
        floatX *d_qkv, *d_dout;
        CHECK(cudaMalloc(&d_qkv, n_qkv * sizeof(floatX)));
        CHECK(cudaMalloc(&d_dout, n_out * sizeof(floatX)));
        CHECK(cudaMemcpy(d_qkv, h_qkv, n_qkv * sizeof(floatX), cudaMemcpyHostToDevice));
        CHECK(cudaMemcpy(d_dout, h_dout, n_out * sizeof(floatX), cudaMemcpyHostToDevice));
        floatX* out_c = (floatX*)malloc(n_out * sizeof(floatX));
        floatX* dqkv_c = (floatX*)malloc(n_qkv * sizeof(floatX));
        floatX* out_f = (floatX*)malloc(n_out * sizeof(floatX));
        floatX* dqkv_f = (floatX*)malloc(n_qkv * sizeof(floatX));
        int have_c = run_path(sh, ATTN_AUTO, cudnn, cublas, d_qkv, d_dout, out_c, dqkv_c, ref_out, ref_dqkv);
        int have_f = run_path(sh, ATTN_FALLBACK, cudnn, cublas, d_qkv, d_dout, out_f, dqkv_f, ref_out, ref_dqkv);
        if (sh->check_cpu) run_path(sh, ATTN_DETERMINISTIC, cudnn, cublas, d_qkv, d_dout, out_f, dqkv_f, ref_out, ref_dqkv);
        if (!sh->check_cpu && have_c && have_f) {
            // no CPU reference at this size: the fallback is the reference for cuDNN
            float* fo = (float*)malloc(n_out * sizeof(float));
            float* fd = (float*)malloc(n_qkv * sizeof(float));
            for (size_t i = 0; i < n_out; i++) fo[i] = __bfloat162float(out_f[i]);
            for (size_t i = 0; i < n_qkv; i++) fd[i] = __bfloat162float(dqkv_f[i]);
            printf("  cuDNN vs fallback:\n");
            tally(compare("out", out_c, fo, n_out, 3e-2f, 1e-2f));
            tally(compare("dqkv", dqkv_c, fd, n_qkv, 5e-2f, 1e-2f));
            free(fo); free(fd);
        }
        CHECK(cudaFree(d_qkv)); CHECK(cudaFree(d_dout));
        free(h_qkv); free(h_dout); free(f_qkv); free(f_dout); free(ref_out); free(ref_dqkv);
        free(out_c); free(dqkv_c); free(out_f); free(dqkv_f);
    }
    ATTN_CUBLAS_CHECK(cublasDestroy(cublas));
    ATTN_CUDNN_CHECK(cudnnDestroy(cudnn));
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? EXIT_FAILURE : EXIT_SUCCESS;
}
