/*
Global gradient norm partials of llama_kernels.cuh (sumsq_partials: a fixed grid of NORM_BLOCKS
blocks writes fp64 sums of squares; the host adds them in order, as train_llama.cu's
gpu_grad_sumsq) against the CPU engine's sumsq (train_llama.c, double).
Checks: the norm, every one of the NORM_BLOCKS partials written (including blocks past the end of
a short gradient, which must be 0), and bit-identical partials on a rerun; a finite element of 1e20
(its square overflowed the fp32 partials of before issue 22: the tensor counted as non-finite).

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/grad_norm.cu -o dev/cuda/grad_norm -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/grad_norm     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

// big: element n / 2 set to it (0: none)
static void run(size_t n, int time_it, cudaStream_t s, float big = 0.0f) {
    printf("n=%zu%s\n", n, big != 0.0f ? ", one element 1e20" : "");
    floatX* x = host_alloc<floatX>(n);
    float* f = host_alloc<float>(n);
    fill_bf16(x, f, n, 0.01f); // gradient-sized values
    if (big != 0.0f) { x[n / 2] = tobf(big); f[n / 2] = bf(x[n / 2]); }
    floatX* d_x = dev_upload(x, n);
    double* d_partial = (double*)cudaMallocCheck(sizeof(double) * NORM_BLOCKS, "partials");
    double *p1 = host_alloc<double>(NORM_BLOCKS), *p2 = host_alloc<double>(NORM_BLOCKS);
    for (int r = 0; r < 2; r++) {
        cudaCheck(cudaMemset(d_partial, 0xff, sizeof(double) * NORM_BLOCKS)); // NaN pattern: catches unwritten partials
        sumsq_partials(d_partial, d_x, n, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(r ? p2 : p1, d_partial, NORM_BLOCKS);
    }
    double ss = 0.0;
    int finite = 1;
    for (int k = 0; k < NORM_BLOCKS; k++) { ss += p1[k]; finite &= isfinite(p1[k]) && p1[k] >= 0.0; }
    check(finite, "all %d partials written, finite and >= 0", NORM_BLOCKS);
    size_t threads = (size_t)NORM_BLOCKS * NORM_THREADS;
    if (n < threads) {
        int empty_ok = 1;
        for (size_t k = (n + NORM_THREADS - 1) / NORM_THREADS; k < NORM_BLOCKS; k++) empty_ok &= p1[k] == 0.0;
        check(empty_ok, "blocks past the end of the data write 0");
    }
    check(memcmp(p1, p2, sizeof(double) * NORM_BLOCKS) == 0, "partials bit-identical on a rerun");
    double ref = cpu::sumsq(f, n);
    // every term is >= 0 (and exact: a bf16 squared), so fp64 sums are accurate relative to the
    // total: each thread adds ceil(n / threads) terms in sequence, then a 32-lane and a 16-warp tree
    // (9 levels; 16 allowed), the host NORM_BLOCKS partials; the CPU's reference adds the n terms in
    // another order (OpenMP's): at most n - 1 roundings of 2^-53 each (an fp32 partial is off by ~1e-7)
    double rtol = ((double)((n + threads - 1) / threads) + 16.0 + NORM_BLOCKS + (double)n) * ldexp(1.0, -53);
    double rel = fabs(ss - ref) / ref;
    check(rel <= rtol, "sum of squares %.9e vs CPU %.9e: relative error %.2e (bound %.2e); norm %.6e", ss, ref, rel, rtol, sqrt(ss));
    if (time_it) report_bw("sumsq_partials", (double)n * sizeof(floatX), time_ms([&] { sumsq_partials(d_partial, d_x, n, s); }, s));
    cudaCheck(cudaFree(d_x)); cudaCheck(cudaFree(d_partial));
    free(x); free(f); free(p1); free(p2);
}

int main(void) {
    print_device("grad_norm");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    run(1, 0, s);                                   // one element: one nonzero partial
    run(513, 0, s);                                 // two blocks
    run((size_t)NORM_BLOCKS * NORM_THREADS + 3, 0, s); // just past one full pass of the grid
    run(10000019, 0, s);                            // the tiny-ish model sizes, prime
    run(513, 0, s, 1e20f);                          // a finite gradient whose square overflows fp32
    if (DEV_CUDA_TIMING) run((size_t)1 << 28, 1, s);                    // timing: a 268M-parameter gradient
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
