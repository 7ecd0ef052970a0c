// dev/cuda/common.cuh: what every kernel check in dev/cuda needs (llm.c's dev/cuda/common.h):
// the kernels, the CPU engine as an oracle (namespace cpu), random bf16 inputs, comparisons with
// a stated tolerance, pass/fail tallies, and timing against the card's peak.
// Note: dev/cuda/Makefile's rules depend on ../../*.cuh, not on this file: after editing it,
// rebuild with `make -C dev/cuda -B`.
#ifndef DEV_CUDA_COMMON_CUH
#define DEV_CUDA_COMMON_CUH

#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <cblas.h>
#include <omp.h>
#include "../../llama_kernels.cuh"
// the shared headers outside the namespace (their system headers must not land inside it)
#include "../../utils.h"
#include "../../rand.h"
#include "../../safetensors.h"
#include "../../llama.h"
#include "../../cli.h"
#include "../../dataloader.h"
#include "../../tokenizer.h"
#include "../../galore.h"
#include "../../memplan.h"
#include "../../checkpoint.h"

// the CPU engine, compiled into its own namespace (as test_llama.cu does): cpu::rmsnorm_forward
// and friends are the fp32 references. Its system headers are already included above.
#define TESTING
#undef _GNU_SOURCE
namespace cpu {
#include "../../train_llama.c"
}

// ----------------------------------------------------------------------------
// tallies: every check counts; the last line of a program is "N passed, N failed"

static int g_pass = 0, g_fail = 0;

static int check(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("    %s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) g_pass++; else g_fail++;
    return ok;
}

static int finish(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? EXIT_FAILURE : EXIT_SUCCESS;
}

// ----------------------------------------------------------------------------
// random inputs: xorshift64*, fixed seed, so a failure reproduces

static uint64_t g_rng = 0x853c49e6748fea9bULL;
static float rand_uniform(void) { // [-1, 1)
    g_rng ^= g_rng >> 12; g_rng ^= g_rng << 25; g_rng ^= g_rng >> 27;
    return (float)((g_rng * 0x2545F4914F6CDD1DULL) >> 40) / 8388608.0f * 2.0f - 1.0f;
}
static int rand_int(int n) { return (int)((rand_uniform() * 0.5f + 0.5f) * n) % n; }

static inline float bf(floatX x) { return __bfloat162float(x); }
static inline floatX tobf(float x) { return __float2bfloat16(x); }

// h (bf16) gets amp * uniform values; f (may be NULL) the same values in fp32, so the GPU and the
// CPU see identical inputs and only the arithmetic differs
static void fill_bf16(floatX* h, float* f, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) {
        h[i] = tobf(amp * rand_uniform());
        if (f) f[i] = bf(h[i]);
    }
}
static void unpack_bf16(float* f, const floatX* h, size_t n) { for (size_t i = 0; i < n; i++) f[i] = bf(h[i]); }

template <class T> static T* host_alloc(size_t n) { return (T*)mallocCheck(sizeof(T) * (n ? n : 1)); }
template <class T> static T* dev_upload(const T* h, size_t n) {
    T* d = (T*)cudaMallocCheck(sizeof(T) * (n ? n : 1), "dev/cuda test buffer");
    cudaCheck(cudaMemcpy(d, h, sizeof(T) * n, cudaMemcpyHostToDevice));
    return d;
}
template <class T> static void dev_download(T* h, const T* d, size_t n) {
    cudaCheck(cudaMemcpy(h, d, sizeof(T) * n, cudaMemcpyDeviceToHost));
}

// ----------------------------------------------------------------------------
// comparisons. The GPU stores bf16; the reference is fp32, NOT rounded. Rounding to nearest bf16
// (8 significant bits) moves a value by at most 2^-8 of itself, so a correct kernel satisfies
//     |gpu - ref| <= BF16_RTOL * |ref| + atol
// where atol covers the fp32 arithmetic differences (summation order, FMA, fast-math exp/rsqrt),
// stated by each caller. A real bug (wrong index, missing term) gives O(1) relative errors.
#define BF16_RTOL (1.0f / 256.0f)

static int compare_generic(const char* what, const float* gpu, const float* ref, size_t n, float rtol, float atol) {
    double maxerr = 0.0, maxref = 0.0, worst_ratio = 0.0;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)gpu[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        if (!(e <= tol)) { if (bad == 0) first = i; bad++; }   // NaN fails
        if (!(e <= maxerr)) maxerr = e;
        if (fabs((double)ref[i]) > maxref) maxref = fabs((double)ref[i]);
        if (tol > 0 && e / tol > worst_ratio) worst_ratio = e / tol;
    }
    if (bad == 0)
        return check(1, "%-22s n=%-9zu max|ref| %.3e max err %.3e (%.2f of tolerance)", what, n, maxref, maxerr, worst_ratio);
    return check(0, "%-22s n=%-9zu max|ref| %.3e max err %.3e: %zu mismatches, first at %zu: gpu %.8g ref %.8g (rtol %.2e atol %.2e)",
                 what, n, maxref, maxerr, bad, first, gpu[first], ref[first], rtol, atol);
}
static int compare_bf16(const char* what, const floatX* gpu, const float* ref, size_t n, float rtol, float atol) {
    float* g = host_alloc<float>(n);
    unpack_bf16(g, gpu, n);
    int ok = compare_generic(what, g, ref, n, rtol, atol);
    free(g);
    return ok;
}
static int compare_f32(const char* what, const float* gpu, const float* ref, size_t n, float rtol, float atol) {
    return compare_generic(what, gpu, ref, n, rtol, atol);
}
static float max_abs(const float* x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

// ----------------------------------------------------------------------------
// the device and timing

// the emulated build (dev/emu, `make emu`) checks results and does not time: it skips the timing
// shapes (tens of millions of elements, minutes on a CPU). On a GPU every shape runs.
#ifdef EMU
#define DEV_CUDA_TIMING 0
#else
#define DEV_CUDA_TIMING 1
#endif

static double g_peak_tflops = -1.0, g_peak_gbs = -1.0;

static void print_device(const char* program) {
    int dev = 0;
    cudaCheck(cudaSetDevice(dev));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    g_peak_tflops = gpu_peak_bf16_tflops(prop.name);
    int khz = 0, bits = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, dev) == cudaSuccess && khz > 0 && bits > 0)
        g_peak_gbs = 2.0 * khz * 1e3 * (bits / 8) / 1e9; // double data rate
    cudaGetLastError();
    printf("%s on %s (sm_%d%d, %d SMs): peak bf16 ", program, prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    if (g_peak_tflops > 0) printf("%.0f TFLOP/s", g_peak_tflops); else printf("n/a");
    if (g_peak_gbs > 0) printf(", memory %.0f GB/s\n", g_peak_gbs); else printf(", memory n/a\n");
}

// mean milliseconds of f() over iters launches on stream s, after warmup launches
template <class F> static float time_ms(F f, cudaStream_t s, int warmup = 3, int iters = 20) {
    for (int i = 0; i < warmup; i++) f();
    cudaEvent_t e0, e1;
    cudaCheck(cudaEventCreate(&e0));
    cudaCheck(cudaEventCreate(&e1));
    cudaCheck(cudaEventRecord(e0, s));
    for (int i = 0; i < iters; i++) f();
    cudaCheck(cudaEventRecord(e1, s));
    cudaCheck(cudaEventSynchronize(e1));
    float ms = 0.0f;
    cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
    cudaCheck(cudaEventDestroy(e0));
    cudaCheck(cudaEventDestroy(e1));
    return ms / iters;
}

// memory-bound kernels: bytes is the traffic the kernel must do at least (stated by the caller)
static void report_bw(const char* what, double bytes, float ms) {
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("    time %-30s %8.4f ms  %8.1f GB/s", what, ms, gbs);
    if (g_peak_gbs > 0) printf("  (%.0f%% of %.0f GB/s)\n", 100.0 * gbs / g_peak_gbs, g_peak_gbs);
    else printf("  (peak n/a)\n");
}
static void report_flops(const char* what, double flops, float ms) {
    double tf = flops / (ms * 1e-3) / 1e12;
    printf("    time %-30s %8.4f ms  %8.1f TFLOP/s", what, ms, tf);
    if (g_peak_tflops > 0) printf("  (%.0f%% of %.0f)\n", 100.0 * tf / g_peak_tflops, g_peak_tflops);
    else printf("  (peak n/a)\n");
}

#endif // DEV_CUDA_COMMON_CUH
