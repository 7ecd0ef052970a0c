// cuda_common.cuh: what every CUDA file of galore.c needs: checked calls (file:line, the error
// string and a hint, then exit), checked device allocation with an out-of-memory message that
// says what to lower, the floatX type (bf16), ceil_div, warp/block reductions, stochastic
// rounding to bf16, and the card's peak bf16 TFLOPS for MFU.
#ifndef CUDA_COMMON_CUH
#define CUDA_COMMON_CUH

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cusolverDn.h>
#include <cudnn.h>
#include "utils.h"
#include "llama_math.h"

// bf16 everywhere on the GPU: weights, activations, gradients (and moments by default)
#ifndef FLOATX_DEFINED
#define FLOATX_DEFINED
typedef __nv_bfloat16 floatX;
#endif

// ----------------------------------------------------------------------------
// checked calls: one line, then exit(1). The hint is the first thing to try.

static void cuda_check(cudaError_t e, const char* file, int line) {
    if (e == cudaSuccess) return;
    fflush(stdout);
    const char* hint = "check the launch arguments and that the GPU works (nvidia-smi)";
    if (e == cudaErrorMemoryAllocation) hint = "lower --batch / use --recompute 1 / --per-layer 1";
    else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) hint = "no usable NVIDIA GPU or driver; use the CPU trainer ./train_llama";
    else if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction)
        hint = "this binary lacks code for this GPU: rebuild with make GPU_COMPUTE_CAPABILITY=XY (e.g. 86, 89, 90)";
    fprintf(stderr, "error: CUDA: %s (%s) (%s:%d); hint: %s\n", cudaGetErrorString(e), cudaGetErrorName(e), file, line, hint);
    exit(EXIT_FAILURE);
}
#define cudaCheck(call) cuda_check((call), __FILE__, __LINE__)
// after a kernel launch: catches bad launch configurations at the line that launched
#define cudaCheckLaunch() cuda_check(cudaGetLastError(), __FILE__, __LINE__)

static const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_(unknown)";
    }
}
static void cublas_check(cublasStatus_t s, const char* file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "error: cuBLAS: %s (%d) (%s:%d); hint: %s\n", cublas_status_name(s), (int)s, file, line,
            s == CUBLAS_STATUS_ALLOC_FAILED ? "out of GPU memory: lower --batch / use --recompute 1 / --per-layer 1"
                                            : "a shape/alignment the library rejects, or a failing GPU; rerun with CUDA_LAUNCH_BLOCKING=1");
    exit(EXIT_FAILURE);
}
#define cublasCheck(call) cublas_check((call), __FILE__, __LINE__)

static void cusolver_check(cusolverStatus_t s, const char* file, int line) {
    if (s == CUSOLVER_STATUS_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "error: cuSOLVER: status %d (%s:%d); hint: a NaN input or an unsupported size; rerun with CUDA_LAUNCH_BLOCKING=1\n",
            (int)s, file, line);
    exit(EXIT_FAILURE);
}
#define cusolverCheck(call) cusolver_check((call), __FILE__, __LINE__)

static void cudnn_check(cudnnStatus_t s, const char* file, int line) {
    if (s == CUDNN_STATUS_SUCCESS) return;
    fflush(stdout);
    fprintf(stderr, "error: cuDNN: %s (%d) (%s:%d); hint: a cuDNN older than 9 or an unsupported shape; the attention fallback avoids cuDNN\n",
            cudnnGetErrorString(s), (int)s, file, line);
    exit(EXIT_FAILURE);
}
#define cudnnCheck(call) cudnn_check((call), __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// device memory

// cuda_malloc_check: every device buffer goes through here, so an out-of-memory names the
// buffer, the size asked, and what is free
static void* cuda_malloc_check(size_t bytes, const char* what, const char* file, int line) {
    void* p = NULL;
    if (bytes == 0) bytes = 1;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); // clear the sticky-free error state of this failed call
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fflush(stdout);
        fprintf(stderr, "error: out of GPU memory: asked %.1f MiB for %s, %.1f MiB free of %.1f (%s:%d); hint: lower --batch / use --recompute 1 / --per-layer 1\n",
                bytes / 1048576.0, what, free_b / 1048576.0, total_b / 1048576.0, file, line);
        exit(EXIT_FAILURE);
    }
    cuda_check(e, file, line);
    return p;
}
#define cudaMallocCheck(bytes, what) cuda_malloc_check((bytes), (what), __FILE__, __LINE__)

static inline double gpu_mem_used_mib(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return -1.0;
    return (double)(total_b - free_b) / 1048576.0;
}

// ----------------------------------------------------------------------------
// small helpers

template <class T> __host__ __device__ static inline T ceil_div(T a, T b) { return (a + b - 1) / b; }

// the per-layer update's device-side verdict on one tensor (train_llama.cu's check kernel sets it
// when the tensor's gradient norm, or an earlier one of the step, is not finite): the update
// kernels read it and leave the tensor and its state alone. NULL: never skipped (the host decided).
__device__ static inline int update_skipped(const int* skip) { return skip != NULL && *skip != 0; }

static inline int grid_for(size_t n, int block) {
    // grid-stride kernels: enough blocks to fill a big GPU, never more than the work
    size_t g = (n + (size_t)block - 1) / (size_t)block;
    if (g > 65535u * 8u) g = 65535u * 8u;
    if (g < 1) g = 1;
    return (int)g;
}

__device__ static inline float bf2f(floatX x) { return __bfloat162float(x); }
__device__ static inline floatX f2bf(float x) { return __float2bfloat16_rn(x); }
__device__ static inline float to_f32(float x) { return x; }
__device__ static inline float to_f32(floatX x) { return __bfloat162float(x); }

// store an fp32 value into a float or bf16 slot (round to nearest even for bf16)
__device__ static inline void store_f32(float* p, float v) { *p = v; }
__device__ static inline void store_f32(floatX* p, float v) { *p = __float2bfloat16_rn(v); }

// stochastic rounding to bf16 with the hash of (seed, index) from llama_math.h
__device__ static inline floatX f2bf_stochastic(float x, uint32_t seed, uint64_t idx) {
    uint16_t b = lm_bf16_stochastic(x, lm_sr_bits(seed, idx));
    return __ushort_as_bfloat16(b);
}

// ----------------------------------------------------------------------------
// reductions. Fixed shapes and fixed orders: the same inputs give the same bits every run.

template <class T> __device__ static inline T warp_reduce_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ static inline float warp_reduce_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// block_reduce_sum: every thread gets the block's sum (float, or double: the norm partials).
// blockDim.x must be a multiple of 32 and at most 1024. Uses 32 T of shared memory; safe to call
// repeatedly (syncs before reuse).
template <class T> __device__ static inline T block_reduce_sum(T v) {
    __shared__ T shared[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_reduce_sum(v);
    __syncthreads(); // an earlier call may still be reading shared
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    T r = lane < nwarps ? shared[lane] : (T)0;
    r = warp_reduce_sum(r);
    return r;
}
__device__ static inline float block_reduce_max(float v) {
    __shared__ float shared_max[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_reduce_max(v);
    __syncthreads();
    if (lane == 0) shared_max[warp] = v;
    __syncthreads();
    float r = lane < nwarps ? shared_max[lane] : -INFINITY;
    r = warp_reduce_max(r);
    return r;
}

// ----------------------------------------------------------------------------
// peak dense bf16 tensor-core TFLOPS (no sparsity), for MFU. Unknown cards: -1, printed "n/a".
// Matched by substring of cudaDeviceProp.name, most specific first.
typedef struct { const char* pattern; double tflops; } GpuPeak;
static const GpuPeak GPU_PEAKS[] = {
    {"H200", 989.0},           // SXM; same tensor cores as H100 SXM
    {"H100 PCIe", 756.0},
    {"H100 NVL", 835.0},
    {"H100", 989.0},           // SXM / HBM3
    {"A100-PCIE", 312.0}, {"A100 PCIe", 312.0},
    {"A100", 312.0},           // SXM 40GB / 80GB
    {"L40S", 362.0},
    {"RTX 4090", 165.2},       // with fp32 accumulation: 165 dense (330 is fp16-accumulate)
    {"RTX 3090 Ti", 80.0},
    {"RTX 3090", 71.0},
};
static double gpu_peak_bf16_tflops(const char* device_name) {
    for (size_t i = 0; i < sizeof(GPU_PEAKS) / sizeof(GPU_PEAKS[0]); i++)
        if (strstr(device_name, GPU_PEAKS[i].pattern)) return GPU_PEAKS[i].tflops;
    return -1.0;
}

// "42.1%" or "n/a"
static void format_mfu(char* buf, size_t cap, double flops_per_token, double tokens_per_s, double peak_tflops) {
    double f = mfu_fraction(flops_per_token, tokens_per_s, peak_tflops);
    if (f < 0.0) snprintf(buf, cap, "n/a");
    else snprintf(buf, cap, "%.1f%%", 100.0 * f);
}

#endif // CUDA_COMMON_CUH
