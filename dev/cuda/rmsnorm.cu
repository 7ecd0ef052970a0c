/*
RMSNorm forward and backward of llama_kernels.cuh against the CPU engine's rmsnorm_forward /
rmsnorm_backward (train_llama.c, fp32 with double row sums):
  rmsnorm_forward:  out (N, C) bf16, rstd (N) fp32
  rmsnorm_backward: dx (N, C) overwritten (accumulate 0) or added to (accumulate 1, the residual
                    stream as the trainer uses it); dw (C) += sum over rows, deterministic two-pass
Inputs are built so that every term matters: w near 1 as in real models, and dy correlated with
x so that the mean(w*dy*xhat) term of dx is O(1) (with independent random dy it is ~1/sqrt(C) and
a kernel that dropped it would hide inside the bf16 tolerance).

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/rmsnorm.cu -o dev/cuda/rmsnorm -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/rmsnorm     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

typedef struct { int N, C; int time; } Shape;

static void run_shape(const Shape* sh, cudaStream_t s) {
    if (sh->time && !DEV_CUDA_TIMING) return;
    int N = sh->N, C = sh->C;
    float eps = 1e-5f;
    printf("N=%d C=%d\n", N, C);
    size_t n = (size_t)N * C;
    floatX *x = host_alloc<floatX>(n), *dy = host_alloc<floatX>(n), *dx0 = host_alloc<floatX>(n);
    floatX *w = host_alloc<floatX>(C), *dw0 = host_alloc<floatX>(C);
    float *fx = host_alloc<float>(n), *fdy = host_alloc<float>(n), *fw = host_alloc<float>(C);
    fill_bf16(x, fx, n, 2.0f);
    for (int c = 0; c < C; c++) { w[c] = tobf(1.0f + 0.2f * rand_uniform()); fw[c] = bf(w[c]); }
    for (size_t k = 0; k < n; k++) { dy[k] = tobf(0.5f * fx[k] + rand_uniform()); fdy[k] = bf(dy[k]); }
    fill_bf16(dx0, NULL, n, 1.0f);
    fill_bf16(dw0, NULL, C, 1.0f);
    floatX *d_x = dev_upload(x, n), *d_w = dev_upload(w, C), *d_dy = dev_upload(dy, n);
    floatX* d_out = (floatX*)cudaMallocCheck(sizeof(floatX) * n, "out");
    floatX* d_dx = (floatX*)cudaMallocCheck(sizeof(floatX) * n, "dx");
    floatX* d_dw = (floatX*)cudaMallocCheck(sizeof(floatX) * C, "dw");
    float* d_rstd = (float*)cudaMallocCheck(sizeof(float) * N, "rstd");
    float* d_scratch = (float*)cudaMallocCheck(sizeof(float) * RMS_DW_CHUNKS * C, "scratch");
    cudaCheck(cudaMemset(d_out, 0xff, sizeof(floatX) * n)); // NaN pattern: catches unwritten outputs
    cudaCheck(cudaMemset(d_rstd, 0xff, sizeof(float) * N));

    // forward
    float *ref_out = host_alloc<float>(n), *ref_rstd = host_alloc<float>(N);
    cpu::rmsnorm_forward(ref_out, ref_rstd, fx, fw, N, C, eps);
    rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, eps, s);
    cudaCheck(cudaStreamSynchronize(s));
    floatX* out = host_alloc<floatX>(n);
    float* rstd = host_alloc<float>(N);
    dev_download(out, d_out, n);
    dev_download(rstd, d_rstd, N);
    // rstd: fp32 tree sum vs double sum (~1e-6 relative for C <= 8k) and fast-math 1/sqrt (2 ulp)
    compare_f32("rstd", rstd, ref_rstd, N, 1e-5f, 0.0f);
    // out = w * x * rstd: one bf16 rounding plus rstd's 1e-5 relative difference
    compare_bf16("out", out, ref_out, n, BF16_RTOL + 2e-5f, 0.0f);

    // backward, both modes. Each side uses its own forward's rstd (they agree to 1e-5).
    for (int acc = 0; acc <= 1; acc++) {
        float *ref_dx = host_alloc<float>(n), *ref_dw = host_alloc<float>(C);
        for (size_t k = 0; k < n; k++) ref_dx[k] = acc ? bf(dx0[k]) : 0.0f;
        for (int c = 0; c < C; c++) ref_dw[c] = bf(dw0[c]);
        cpu::rmsnorm_backward(ref_dx, ref_dw, fdy, fx, fw, ref_rstd, N, C);
        cudaCheck(cudaMemcpy(d_dx, dx0, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_dw, dw0, sizeof(floatX) * C, cudaMemcpyHostToDevice));
        rmsnorm_backward(d_dx, d_dw, d_scratch, d_dy, d_x, d_w, d_rstd, N, C, acc, s);
        cudaCheck(cudaStreamSynchronize(s));
        floatX *dx = host_alloc<floatX>(n), *dw = host_alloc<floatX>(C);
        dev_download(dx, d_dx, n);
        dev_download(dw, d_dw, C);
        // dx = rstd*(w*dy - xhat*mean): the two terms are O(1) and may cancel; fp32 differences
        // (rstd 1e-5 relative, enters squared in the second term; the row mean ~1e-6) stay below
        // 1e-4 of the largest value, 40x under a bf16 half-ulp of it
        char name[64];
        snprintf(name, sizeof name, "dx (accumulate %d)", acc);
        compare_bf16(name, dx, ref_dx, n, BF16_RTOL, 1e-4f * max_abs(ref_dx, n));
        // dw: fp32 sums of ceil(N/64) rows then 64 chunk sums (GPU) vs a double sum (CPU): the
        // error is at most (rows per chunk + 64) * 2^-24 * sum_rows |dy * xhat| (the worst column)
        int per = (N + RMS_DW_CHUNKS - 1) / RMS_DW_CHUNKS;
        double smax = 0.0;
        for (int c = 0; c < C; c++) {
            double sabs = fabs(bf(dw0[c]));
            for (int i = 0; i < N; i++) sabs += fabs((double)fdy[(size_t)i * C + c] * fx[(size_t)i * C + c] * ref_rstd[i]);
            smax = fmax(smax, sabs);
        }
        float atol = (float)((per + RMS_DW_CHUNKS + 2) * ldexp(1.0, -24) * smax * 2.0); // x2 for rstd's own difference
        snprintf(name, sizeof name, "dw (accumulate %d)", acc);
        compare_bf16(name, dw, ref_dw, C, BF16_RTOL, atol);
        free(ref_dx); free(ref_dw); free(dx); free(dw);
    }
    // determinism: the same backward twice gives the same bits
    {
        floatX *a = host_alloc<floatX>(C), *b = host_alloc<floatX>(C);
        for (int r = 0; r < 2; r++) {
            cudaCheck(cudaMemcpy(d_dw, dw0, sizeof(floatX) * C, cudaMemcpyHostToDevice));
            rmsnorm_backward(d_dx, d_dw, d_scratch, d_dy, d_x, d_w, d_rstd, N, C, 0, s);
            cudaCheck(cudaStreamSynchronize(s));
            dev_download(r ? b : a, d_dw, C);
        }
        check(memcmp(a, b, sizeof(floatX) * C) == 0, "dw bit-identical over two runs");
        free(a); free(b);
    }
    if (sh->time) {
        // forward: read x, write out (bf16), write rstd. backward: the dx pass reads x, dy, dx and
        // writes dx; the dw pass reads x and dy again
        report_bw("rmsnorm_forward", 2.0 * n * sizeof(floatX) + N * 4.0,
                  time_ms([&] { rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, eps, s); }, s));
        report_bw("rmsnorm_backward (accumulate 1)", 6.0 * n * sizeof(floatX),
                  time_ms([&] { rmsnorm_backward(d_dx, d_dw, d_scratch, d_dy, d_x, d_w, d_rstd, N, C, 1, s); }, s));
    }
    cudaCheck(cudaFree(d_x)); cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_dy)); cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_dx)); cudaCheck(cudaFree(d_dw)); cudaCheck(cudaFree(d_rstd)); cudaCheck(cudaFree(d_scratch));
    free(x); free(dy); free(dx0); free(w); free(dw0); free(fx); free(fdy); free(fw);
    free(ref_out); free(ref_rstd); free(out); free(rstd);
}

int main(void) {
    print_device("rmsnorm");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    const Shape shapes[] = {
        {1, 60, 0},        // one row: 63 of the 64 dw chunks are empty
        {128, 60, 0},      // the tiny reference model: C < the block of 256
        {33, 257, 0},      // N < 64 chunks, C not a multiple of 8 or 128
        {1000, 1001, 0},   // rows per chunk 16 (1000 = 62 full chunks + a short one)
        {64, 5000, 0},     // C > 16 * 256 threads
        {8192, 4096, 1},   // timing (llama-7B width)
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) run_shape(&shapes[i], s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
