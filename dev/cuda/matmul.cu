/*
Matmuls of llama_kernels.cuh (PyTorch layout, W (OC, IC), bf16 in/out, fp32 accumulation) against
the CPU engine's matmul_forward / matmul_backward (train_llama.c, cblas_sgemm in fp32):
  matmul_forward:  out (N, OC) = inp (N, IC) @ W^T  (+ residual, fused as beta = 1)
  matmul_backward: dinp (N, IC) = dout @ W (overwritten); dW (OC, IC) += dout^T @ inp
on both paths of gemm_bf16: cuBLASLt (the heuristic's algorithm) and the cublasGemmEx fallback,
which this file forces by making cublasLtMatmulAlgoGetHeuristic report no algorithm (a macro
around the library call, below; the kernels themselves are untouched). Shapes include the tiny
reference's odd leading dims (C = 60, H = 84, qkv 120, V = 211), and weights that start at an
odd element of a flat buffer (2-byte aligned, as slices of the parameter buffer can be).

Tolerance, per element: both sides sum K exact products (bf16 x bf16 fits fp32) in fp32 in
different orders; each sum is within K 2^-24 sum_k |a_k b_k| of the exact one, and the GPU then
rounds to bf16 (2^-8 relative). So |gpu - cpu| <= 2^-8 |cpu| + 2 K 2^-24 (|A| @ |B|), with |A| @ |B|
computed on the CPU. A layout or transpose bug gives errors of the size of the values.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/matmul.cu -o dev/cuda/matmul -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/matmul     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "force_gemmex.cuh" // g_force_gemmex: the cublasGemmEx fallback
#include "common.cuh"

typedef struct { int N, IC, OC; int woff; int time; const char* what; } Shape;

// |gpu - ref| <= BF16_RTOL |ref| + gamma * absb (absb = |A| @ |B| (+ |C|) from the CPU)
static int compare_bound(const char* what, const floatX* gpu, const float* ref, const float* absb, size_t n, double gamma) {
    size_t bad = 0, first = 0;
    double worst = 0.0, maxerr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)bf(gpu[i]) - ref[i]);
        double tol = BF16_RTOL * fabs((double)ref[i]) + gamma * absb[i] + 1e-30;
        if (!(e <= tol)) { if (!bad) first = i; bad++; }
        if (!(e <= maxerr)) maxerr = e;
        if (e / tol > worst) worst = e / tol;
    }
    if (!bad) return check(1, "%-16s max err %.3e (%.2f of tolerance)", what, maxerr, worst);
    return check(0, "%-16s %zu of %zu beyond tolerance, first at %zu: gpu %.6g ref %.6g bound %.3g", what, bad, n, first,
                 bf(gpu[first]), ref[first], BF16_RTOL * fabs(ref[first]) + gamma * absb[first]);
}

static void fabs_copy(float* dst, const float* src, size_t n) { for (size_t i = 0; i < n; i++) dst[i] = fabsf(src[i]); }

static void run_shape(const Shape* sh, MatmulCtx* ctx, cudaStream_t s) {
    if (sh->time && !DEV_CUDA_TIMING) return;
    int N = sh->N, IC = sh->IC, OC = sh->OC;
    printf("N=%d IC=%d OC=%d %s%s\n", N, IC, OC, sh->what, sh->woff ? " (W at an odd element: 2-byte aligned)" : "");
    size_t ni = (size_t)N * IC, no = (size_t)N * OC, nw = (size_t)OC * IC;
    floatX *inp = host_alloc<floatX>(ni), *W = host_alloc<floatX>(nw), *res = host_alloc<floatX>(no);
    floatX *dout = host_alloc<floatX>(no), *dW0 = host_alloc<floatX>(nw);
    float *finp = host_alloc<float>(ni), *fW = host_alloc<float>(nw), *fres = host_alloc<float>(no);
    float *fdout = host_alloc<float>(no), *fdW0 = host_alloc<float>(nw);
    fill_bf16(inp, finp, ni, 1.0f); fill_bf16(W, fW, nw, 1.0f); fill_bf16(res, fres, no, 1.0f);
    fill_bf16(dout, fdout, no, 1.0f); fill_bf16(dW0, fdW0, nw, 1.0f);

    // the CPU references and their |A| @ |B| bounds
    float *ref_out = host_alloc<float>(no), *ref_dinp = host_alloc<float>(ni), *ref_dW = host_alloc<float>(nw);
    float *abs_out = host_alloc<float>(no), *abs_dinp = host_alloc<float>(ni), *abs_dW = host_alloc<float>(nw);
    cpu::matmul_forward(ref_out, finp, fW, N, IC, OC);
    memcpy(ref_dW, fdW0, sizeof(float) * nw);
    cpu::matmul_backward(ref_dinp, ref_dW, fdout, finp, fW, N, IC, OC, 0.0f);
    {
        float *ai = host_alloc<float>(ni), *aw = host_alloc<float>(nw), *ad = host_alloc<float>(no);
        fabs_copy(ai, finp, ni); fabs_copy(aw, fW, nw); fabs_copy(ad, fdout, no);
        cpu::matmul_forward(abs_out, ai, aw, N, IC, OC);
        fabs_copy(abs_dW, fdW0, nw);
        cpu::matmul_backward(abs_dinp, abs_dW, ad, ai, aw, N, IC, OC, 0.0f);
        free(ai); free(aw); free(ad);
    }
    float* ref_outres = host_alloc<float>(no);
    float* abs_outres = host_alloc<float>(no);
    for (size_t k = 0; k < no; k++) { ref_outres[k] = ref_out[k] + fres[k]; abs_outres[k] = abs_out[k] + fabsf(fres[k]); }

    floatX* d_inp = dev_upload(inp, ni);
    floatX* d_Wbuf = (floatX*)cudaMallocCheck(sizeof(floatX) * (nw + 8), "W");
    floatX* d_W = d_Wbuf + sh->woff;
    cudaCheck(cudaMemcpy(d_W, W, sizeof(floatX) * nw, cudaMemcpyHostToDevice));
    floatX *d_res = dev_upload(res, no), *d_dout = dev_upload(dout, no);
    floatX* d_out = (floatX*)cudaMallocCheck(sizeof(floatX) * no, "out");
    floatX* d_dinp = (floatX*)cudaMallocCheck(sizeof(floatX) * ni, "dinp");
    floatX* d_dWbuf = (floatX*)cudaMallocCheck(sizeof(floatX) * (nw + 8), "dW");
    floatX* d_dW = d_dWbuf + sh->woff;
    floatX *out = host_alloc<floatX>(no), *dinp = host_alloc<floatX>(ni), *dW = host_alloc<floatX>(nw), *again = host_alloc<floatX>(nw);

    for (int path = 0; path < 2; path++) {
        g_force_gemmex = path;
        int fb0 = ctx->fallbacks;
        cudaCheck(cudaMemset(d_out, 0xff, sizeof(floatX) * no)); // NaN pattern: catches unwritten outputs
        cudaCheck(cudaMemset(d_dinp, 0xff, sizeof(floatX) * ni));
        matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, OC, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(out, d_out, no);
        int fell_back = ctx->fallbacks > fb0;
        printf("  %s\n", path ? "cublasGemmEx (forced)" : fell_back ? "cuBLASLt had no algorithm: cublasGemmEx ran" : "cuBLASLt");
        if (path) check(fell_back, "the forced fallback ran");
        compare_bound("out", out, ref_out, abs_out, no, 2.0 * IC * ldexp(1.0, -24));
        matmul_forward(ctx, d_out, d_inp, d_W, d_res, N, IC, OC, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(out, d_out, no);
        compare_bound("out + residual", out, ref_outres, abs_outres, no, 2.0 * IC * ldexp(1.0, -24) + ldexp(1.0, -24));
        for (int r = 0; r < 2; r++) { // twice: the same bits (the trainer's determinism test needs it)
            cudaCheck(cudaMemcpy(d_dW, dW0, sizeof(floatX) * nw, cudaMemcpyHostToDevice));
            matmul_backward(ctx, d_dinp, d_dW, d_dout, d_inp, d_W, N, IC, OC, s);
            cudaCheck(cudaStreamSynchronize(s));
            dev_download(r ? again : dW, d_dW, nw);
        }
        dev_download(dinp, d_dinp, ni);
        compare_bound("dinp", dinp, ref_dinp, abs_dinp, ni, 2.0 * OC * ldexp(1.0, -24));
        compare_bound("dW (+=)", dW, ref_dW, abs_dW, nw, 2.0 * N * ldexp(1.0, -24));
        check(memcmp(dW, again, sizeof(floatX) * nw) == 0, "dW bit-identical on a rerun");
        if (sh->time) {
            report_flops("matmul_forward", 2.0 * N * IC * OC, time_ms([&] { matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, OC, s); }, s));
            report_flops("matmul_backward (dinp + dW)", 4.0 * N * IC * OC,
                         time_ms([&] { matmul_backward(ctx, d_dinp, d_dW, d_dout, d_inp, d_W, N, IC, OC, s); }, s));
        }
    }
    g_force_gemmex = 0;
    cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_Wbuf)); cudaCheck(cudaFree(d_res)); cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_dinp)); cudaCheck(cudaFree(d_dWbuf));
    free(inp); free(W); free(res); free(dout); free(dW0); free(finp); free(fW); free(fres); free(fdout); free(fdW0);
    free(ref_out); free(ref_dinp); free(ref_dW); free(abs_out); free(abs_dinp); free(abs_dW); free(ref_outres); free(abs_outres);
    free(out); free(dinp); free(dW); free(again);
}

// gemm_bf16_scaled's plan cache: a repeated GEMM hits it; more distinct shapes than it holds
// evict the oldest, and an evicted shape rebuilt later gives the same bits as its first run
static void test_plan_cache(MatmulCtx* ctx, cudaStream_t s) {
    int N = 16, IC = 24, OCmax = GEMM_CACHE_SIZE + 8;
    floatX *inp = host_alloc<floatX>((size_t)N * IC), *W = host_alloc<floatX>((size_t)OCmax * IC);
    float *finp = host_alloc<float>((size_t)N * IC), *fW = host_alloc<float>((size_t)OCmax * IC);
    fill_bf16(inp, finp, (size_t)N * IC, 1.0f); fill_bf16(W, fW, (size_t)OCmax * IC, 1.0f);
    floatX *d_inp = dev_upload(inp, (size_t)N * IC), *d_W = dev_upload(W, (size_t)OCmax * IC);
    floatX* d_out = (floatX*)cudaMallocCheck(sizeof(floatX) * (size_t)N * OCmax, "out");
    floatX *first = host_alloc<floatX>((size_t)N * OCmax), *later = host_alloc<floatX>((size_t)N * OCmax);
    GemmCache* c = ctx->cache;
    matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, 1, s);
    int64_t h0 = c->hits, m0 = c->misses;
    matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, 1, s);
    check(c->hits == h0 + 1 && c->misses == m0, "plan cache: a repeated GEMM is a hit (hits +%lld, misses +%lld)", (long long)(c->hits - h0),
          (long long)(c->misses - m0));
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(first, d_out, (size_t)N);
    for (int oc = 2; oc <= OCmax; oc++) matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, oc, s); // evicts OC = 1
    int64_t m1 = c->misses;
    matmul_forward(ctx, d_out, d_inp, d_W, NULL, N, IC, 1, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(later, d_out, (size_t)N);
    check(c->n == GEMM_CACHE_SIZE && c->misses == m1 + 1 && memcmp(first, later, sizeof(floatX) * N) == 0,
          "plan cache: %d entries after %d shapes (bound %d), the evicted shape rebuilt (a miss) gives the same bits", c->n, OCmax,
          GEMM_CACHE_SIZE);
    // device pointer mode (gemm_bf16_scaled_dev, the fused GaLore update's): a plan of its own (the
    // same shape in host mode is another entry), and alpha 0, beta 1 read from the device leave D as
    // it was bit for bit (A, B finite): a device pointer read as a host one would not
    float ab[2] = {0.0f, 1.0f};
    float* d_ab = (float*)cudaMallocCheck(sizeof ab, "alpha, beta");
    cudaCheck(cudaMemcpy(d_ab, ab, sizeof ab, cudaMemcpyHostToDevice));
    gemm_bf16_scaled(ctx, 1, 0, 8, N, IC, 1.0f, d_W, IC, d_inp, IC, d_out, 8, 0.0f, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(first, d_out, (size_t)8 * N);
    int64_t m2 = c->misses, h2 = c->hits;
    gemm_bf16_scaled_dev(ctx, 1, 0, 8, N, IC, d_ab, d_W, IC, d_inp, IC, d_out, 8, s);
    int64_t m3 = c->misses;
    gemm_bf16_scaled_dev(ctx, 1, 0, 8, N, IC, d_ab, d_W, IC, d_inp, IC, d_out, 8, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(later, d_out, (size_t)8 * N);
    check(m3 == m2 + 1 && c->misses == m3 && c->hits == h2 + 1 && memcmp(first, later, sizeof(floatX) * 8 * N) == 0,
          "plan cache: device alpha/beta is its own plan (a miss, then a hit); alpha 0 beta 1 from the device leaves D bit for bit");
    cudaCheck(cudaFree(d_ab));
    cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_W)); cudaCheck(cudaFree(d_out));
    free(inp); free(W); free(finp); free(fW); free(first); free(later);
}

int main(void) {
    print_device("matmul");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    // the handles as train_llama.cu sets them up
    MatmulCtx ctx;
    matmul_ctx_init(&ctx, s);
    const Shape shapes[] = {
        {128, 60, 120, 0, 0, "tiny qkv (C=60, C+2KV=120)"},
        {128, 60, 211, 0, 0, "tiny lm_head (V=211)"},
        {128, 60, 168, 1, 0, "tiny gate|up (2H=168)"},
        {128, 84, 60, 1, 0, "tiny down (H=84)"},
        {1, 8, 8, 0, 0, "one row"},
        {37, 100, 173, 0, 0, "odd everything"},
        {512, 1024, 3072, 1, 0, "medium, W 2-byte aligned"},
        {8192, 4096, 4096, 0, 1, "timing (llama-7B attention projection)"},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) run_shape(&shapes[i], &ctx, s);
    printf("calls that fell back to cublasGemmEx (forced ones included): %d\n", ctx.fallbacks);
    test_plan_cache(&ctx, s);
    matmul_ctx_free(&ctx);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
