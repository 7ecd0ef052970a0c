// emu.h: the CUDA program on the CPU. `make emu` compiles the UNCHANGED .cu/.cuh sources with g++
// against the real CUDA headers, with this file force-included (-include dev/emu/emu.h) and every
// launch `k<<<g, b, smem, stream>>>(args)` rewritten at build time by dev/emu/cu2cpp.py into
// `emu_launch(k, "k", __FILE__, __LINE__, g, b, smem, stream)(args)` on the same line. What runs:
//
// MODELLED (strict where the hardware and the documentation are strict, hostile where they leave
// freedom; emu_runtime.cpp, emu_exec.cpp):
// - Execution: the threads of a block are fibers on one OS thread; blocks run one after another.
//   A thread runs until it ends or reaches a barrier or a warp shuffle. __syncthreads (_count,
//   _or, _and) is a barrier of the block's live threads: a barrier that a thread of the block
//   never reaches (it exited, or waits at a shuffle) is an error naming the kernel. Shuffles
//   (__shfl_sync, _xor, _down, _up) exchange among the lanes their mask names, which must all
//   reach the same shuffle: a mask naming an exited or missing lane is an error. __shared__ is
//   one copy per block, filled with 0xFF (a NaN in f32, bf16 and f64) at each block's start.
//   Atomics are trivially atomic. EMU_SEED picks the order threads run in (0, the default:
//   forward; 1: reverse; other: seeded random, drawn again at each barrier), so a missing
//   __syncthreads shows as a wrong result under some seed.
// - Launch limits as an sm_90 card refuses them (more than 1024 threads a block, block z > 64,
//   grid y or z > 65535, a 0 dimension, more than 48 KiB of dynamic or static shared memory): the
//   kernel does not run and cudaGetLastError returns the error the real runtime returns. Launch
//   arguments convert to the kernel's parameter types at the launch; a pointer argument to host
//   (not pinned) memory or to freed device memory is refused naming the kernel and parameter.
// - Memory: each cudaMalloc has its own pages between two guard pages, ending as near the back
//   guard as 256-byte alignment allows, the slack a canary checked after each op that wrote
//   there and at free. Device memory is inaccessible outside device context (a kernel, copy,
//   memset or library op running): a host access stops with the allocation's name and offset.
//   Addresses are never reused (use after free caught), new memory reads as 0xFF bytes,
//   EMU_MEM_GB (default 80) is the card size and EMU_MEM_REPORT=1 prints what was allocated.
// - Streams: every device op is deferred and runs only when the host must see results, in a
//   seeded order (EMU_SEED) that honours only stream order, events, cudaStreamWaitEvent, host
//   synchronisation and the legacy default stream's implicit ordering. Vector clocks find
//   cross-stream races on device memory (see emu_runtime.cpp for the exact rule); a destroyed
//   stream or event used, a wait on an event never recorded, memory used outside its
//   cudaMallocAsync/cudaFreeAsync lifetime in stream order are errors.
// Every error is ONE line, "emu: error: <call or kernel> at <file>:<line>: <what>", and exit
// status 86 (EMU_EXIT). A launch the card refuses prints its line and returns the error instead.
// Environment: EMU_SEED (thread and stream orders), EMU_MEM_GB (card size, default 80),
// EMU_MEM_REPORT=1 (bytes allocated, peak and by buffer name, at exit), CUDA_LAUNCH_BLOCKING=1
// (each launch runs before the call returns, for debugging: it weakens the stream order test).
// A host access to device memory names the allocation but not the host line (the last CUDA
// call is given); gdb stops at the access (handle SIGSEGV nostop noprint pass to skip grants).
//
// NOT MODELLED (only a real GPU shows these): races between threads of a block other than those
// a barrier's placement orders (threads of one warp run in program order between sync points,
// never interleaved), the memory model's weaker orderings (fences, volatile), fast-math results
// (__expf, __fdividef, --use_fast_math are exact host math here), FMA contraction, cuBLASLt's
// heuristics and alignment rules, the cuDNN path (reported unsupported), gesvdj's convergence,
// NCCL with several ranks, speed, occupancy, register limits, dynamic shared memory (extern
// __shared__, unused here), pointers hidden in structs passed to kernels (not checked at launch:
// the host memory they point to is readable), floating-point modes changed inside a kernel (all
// fibers share the host's MXCSR). A race on bytes of a page that the writer did not fully write
// is seen only when both ops write (see emu_runtime.cpp); a race is judged only once a second
// stream has run work.
#ifndef EMU_H
#define EMU_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <algorithm>
#include <tuple>
#include <type_traits>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cusolverDn.h>
#include <cudnn.h>
#include <nccl.h>

#define EMU 1

#ifndef EMU_SITE_DECLARED // also in emu.h / emu_internal.h
#define EMU_SITE_DECLARED
struct EmuSite { const char* call; const char* file; int line; };
extern thread_local EmuSite emu_site;
#endif

// ----------------------------------------------------------------------------
// the thread's coordinates: globals the block executor sets before it resumes a fiber

extern uint3 emu_threadIdx, emu_blockIdx;
extern dim3 emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim
constexpr int warpSize = 32; // not a macro: cudaDeviceProp has a field of that name

// __shared__: the real headers make it an empty annotation under g++ (per-thread memory, no
// warning). One static copy in a section of its own, which the executor fills with 0xFF at each
// block's start; cu2cpp.py adds emu_shared_note after each declaration for the 48 KiB check.
#undef __shared__
#ifndef __launch_bounds__ // the headers define it only for nvcc
#define __launch_bounds__(...)
#endif
#define __shared__ static __attribute__((section("emu_shared")))
extern int emu_block_first;
void emu_shared_note_slow(const void* p, size_t bytes);
static inline void emu_shared_note(const void* p, size_t bytes) { if (emu_block_first) emu_shared_note_slow(p, bytes); }

// ----------------------------------------------------------------------------
// barriers and shuffles: the fiber parks, the block executor resumes it when the block (or the
// lanes of the mask) arrived. The asm memory clobbers keep the compiler from caching shared
// memory in registers across them (other fibers wrote it meanwhile).
enum { EMU_BAR_SYNC, EMU_BAR_COUNT, EMU_BAR_OR, EMU_BAR_AND };
int emu_barrier(int kind, int pred);
enum { EMU_SHFL_IDX, EMU_SHFL_XOR, EMU_SHFL_DOWN, EMU_SHFL_UP };
uint64_t emu_shuffle(int kind, unsigned mask, uint64_t v, int arg, int width);

#define EMU_FENCE() asm volatile("" ::: "memory")
static inline void __syncthreads(void) { EMU_FENCE(); emu_barrier(EMU_BAR_SYNC, 0); EMU_FENCE(); }
static inline int __syncthreads_count(int p) { EMU_FENCE(); int r = emu_barrier(EMU_BAR_COUNT, p); EMU_FENCE(); return r; }
static inline int __syncthreads_or(int p) { EMU_FENCE(); int r = emu_barrier(EMU_BAR_OR, p); EMU_FENCE(); return r; }
static inline int __syncthreads_and(int p) { EMU_FENCE(); int r = emu_barrier(EMU_BAR_AND, p); EMU_FENCE(); return r; }
static inline void __threadfence(void) { EMU_FENCE(); }
static inline void __threadfence_block(void) { EMU_FENCE(); }

template <class T> static inline T emu_shfl(int kind, unsigned mask, T v, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "emu: shuffle of a type wider than 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof(T));
    EMU_FENCE();
    b = emu_shuffle(kind, mask, b, arg, width);
    EMU_FENCE();
    T r;
    memcpy(&r, &b, sizeof(T));
    return r;
}
template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) { return emu_shfl(EMU_SHFL_IDX, m, v, src, w); }
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int x, int w = 32) { return emu_shfl(EMU_SHFL_XOR, m, v, x, w); }
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_shfl(EMU_SHFL_DOWN, m, v, (int)d, w); }
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_shfl(EMU_SHFL_UP, m, v, (int)d, w); }

// ----------------------------------------------------------------------------
// atomics: fibers never interleave inside one, so plain read-modify-write is atomic
#define EMU_ATOMIC_RMW(fn, T, expr) static inline T fn(T* a, T v) { T o = *a; *a = (expr); return o; }
EMU_ATOMIC_RMW(atomicAdd, int, o + v)
EMU_ATOMIC_RMW(atomicAdd, unsigned int, o + v)
EMU_ATOMIC_RMW(atomicAdd, unsigned long long, o + v)
EMU_ATOMIC_RMW(atomicAdd, float, o + v)
EMU_ATOMIC_RMW(atomicAdd, double, o + v)
EMU_ATOMIC_RMW(atomicMin, int, v < o ? v : o)
EMU_ATOMIC_RMW(atomicMin, unsigned int, v < o ? v : o)
EMU_ATOMIC_RMW(atomicMin, unsigned long long, v < o ? v : o)
EMU_ATOMIC_RMW(atomicMax, int, v > o ? v : o)
EMU_ATOMIC_RMW(atomicMax, unsigned int, v > o ? v : o)
EMU_ATOMIC_RMW(atomicMax, unsigned long long, v > o ? v : o)
EMU_ATOMIC_RMW(atomicExch, int, v)
EMU_ATOMIC_RMW(atomicExch, unsigned int, v)
EMU_ATOMIC_RMW(atomicExch, unsigned long long, v)
EMU_ATOMIC_RMW(atomicExch, float, v)
EMU_ATOMIC_RMW(atomicOr, int, o | v)
EMU_ATOMIC_RMW(atomicOr, unsigned int, o | v)
EMU_ATOMIC_RMW(atomicAnd, int, o & v)
EMU_ATOMIC_RMW(atomicAnd, unsigned int, o & v)
#undef EMU_ATOMIC_RMW
template <class T> static inline T atomicCAS(T* a, T cmp, T v) { T o = *a; if (o == cmp) *a = v; return o; }

// ----------------------------------------------------------------------------
// device intrinsics as exact host math (fast-math differences are not modelled). glibc already
// declares __expf, __powf, __logf, __sinf, __cosf (its own exact versions).
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double rsqrt(double a) { return 1.0 / sqrt(a); }
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
static inline float __float_as_float_dummy(float a) { return a; }
static inline unsigned __float_as_uint(float a) { unsigned u; memcpy(&u, &a, 4); return u; }
static inline int __float_as_int(float a) { int u; memcpy(&u, &a, 4); return u; }
static inline float __uint_as_float(unsigned u) { float a; memcpy(&a, &u, 4); return a; }
static inline float __int_as_float(int u) { float a; memcpy(&a, &u, 4); return a; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
template <class T> static inline T __ldg(const T* p) { return *p; }
using std::min;
using std::max;

// ----------------------------------------------------------------------------
// launches. emu_launch(kernel, ...) returns an object whose operator() has exactly the kernel's
// parameter types, so the arguments convert as in a call (NULL, 0 and literals included).

struct EmuLaunch {
    const char* name; const char* file; int line;
    dim3 grid, block; size_t smem; cudaStream_t stream;
};
// checks the configuration (1: run it; 0: refused, the error is recorded for cudaGetLastError)
int emu_launch_check(const EmuLaunch* L);
// a pointer argument must be NULL, device memory or pinned host memory
void emu_launch_check_ptr(const EmuLaunch* L, int index, const void* p);
// queues the grid: thread_fn(ctx) runs each thread; free_fn(ctx) releases ctx after the op
void emu_launch_enqueue(const EmuLaunch* L, void (*thread_fn)(void*), void* ctx, void (*free_fn)(void*));

template <class T> static inline void emu_arg_check(const EmuLaunch* L, int i, const T& v) {
    if constexpr (std::is_pointer<T>::value) emu_launch_check_ptr(L, i, (const void*)v);
    (void)L; (void)i; (void)v;
}

template <class... P> struct EmuLauncher {
    void (*kernel)(P...);
    EmuLaunch L;
    struct Ctx { void (*kernel)(P...); std::tuple<P...> args; };
    static void run_thread(void* c) { Ctx* x = (Ctx*)c; std::apply(x->kernel, x->args); }
    static void free_ctx(void* c) { delete (Ctx*)c; }
    void operator()(P... a) {
        if (!emu_launch_check(&L)) return;
        Ctx* c = new Ctx{kernel, std::tuple<P...>(a...)};
        int i = 0;
        std::apply([&](const auto&... x) { (emu_arg_check(&L, i++, x), ...); }, c->args);
        emu_launch_enqueue(&L, &run_thread, c, &free_ctx);
    }
};
template <class... P>
static inline EmuLauncher<P...> emu_launch(void (*k)(P...), const char* name, const char* file, int line,
                                           dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = 0) {
    return EmuLauncher<P...>{k, EmuLaunch{name, file, line, grid, block, smem, stream}};
}

// ----------------------------------------------------------------------------
// every runtime entry point records its call site first, so errors name the program's line.
// cudaMalloc also picks up the buffer's name when called inside cuda_malloc_check (whose
// parameter `what` shadows the global below).
extern const char* const what;
const char* emu_alloc_name(const char* w);
template <class T> static inline const char* emu_alloc_name(const T&) { return NULL; }
cudaError_t emu_cudaMalloc_named(void** p, size_t bytes, const char* name);

#define EMU_AT(fn, ...) (emu_site = EmuSite{#fn, __FILE__, __LINE__}, fn(__VA_ARGS__))
#define cudaMalloc(p, b) (emu_site = EmuSite{"cudaMalloc", __FILE__, __LINE__}, emu_cudaMalloc_named((void**)(p), (b), emu_alloc_name(what)))
#define cudaMallocAsync(...) EMU_AT(cudaMallocAsync, __VA_ARGS__)
#define cudaMallocHost(...) EMU_AT(cudaMallocHost, __VA_ARGS__)
#define cudaFree(...) EMU_AT(cudaFree, __VA_ARGS__)
#define cudaFreeAsync(...) EMU_AT(cudaFreeAsync, __VA_ARGS__)
#define cudaFreeHost(...) EMU_AT(cudaFreeHost, __VA_ARGS__)
#define cudaMemcpy(...) EMU_AT(cudaMemcpy, __VA_ARGS__)
#define cudaMemcpyAsync(...) EMU_AT(cudaMemcpyAsync, __VA_ARGS__)
#define cudaMemset(...) EMU_AT(cudaMemset, __VA_ARGS__)
#define cudaMemsetAsync(...) EMU_AT(cudaMemsetAsync, __VA_ARGS__)
#define cudaMemGetInfo(...) EMU_AT(cudaMemGetInfo, __VA_ARGS__)
#define cudaStreamCreate(...) EMU_AT(cudaStreamCreate, __VA_ARGS__)
#define cudaStreamCreateWithFlags(...) EMU_AT(cudaStreamCreateWithFlags, __VA_ARGS__)
#define cudaStreamDestroy(...) EMU_AT(cudaStreamDestroy, __VA_ARGS__)
#define cudaStreamSynchronize(...) EMU_AT(cudaStreamSynchronize, __VA_ARGS__)
#define cudaStreamWaitEvent(...) EMU_AT(cudaStreamWaitEvent, __VA_ARGS__)
#define cudaStreamQuery(...) EMU_AT(cudaStreamQuery, __VA_ARGS__)
#define cudaEventCreate(...) EMU_AT(cudaEventCreate, __VA_ARGS__)
#define cudaEventCreateWithFlags(...) EMU_AT(cudaEventCreateWithFlags, __VA_ARGS__)
#define cudaEventDestroy(...) EMU_AT(cudaEventDestroy, __VA_ARGS__)
#define cudaEventRecord(...) EMU_AT(cudaEventRecord, __VA_ARGS__)
#define cudaEventSynchronize(...) EMU_AT(cudaEventSynchronize, __VA_ARGS__)
#define cudaEventQuery(...) EMU_AT(cudaEventQuery, __VA_ARGS__)
#define cudaEventElapsedTime(...) EMU_AT(cudaEventElapsedTime, __VA_ARGS__)
#define cudaDeviceSynchronize(...) EMU_AT(cudaDeviceSynchronize, __VA_ARGS__)
#define cudaGetLastError(...) EMU_AT(cudaGetLastError, __VA_ARGS__)
#define cudaPeekAtLastError(...) EMU_AT(cudaPeekAtLastError, __VA_ARGS__)
#define cudaSetDevice(...) EMU_AT(cudaSetDevice, __VA_ARGS__)
#define cudaGetDevice(...) EMU_AT(cudaGetDevice, __VA_ARGS__)
#define cudaGetDeviceCount(...) EMU_AT(cudaGetDeviceCount, __VA_ARGS__)
#define cudaGetDeviceProperties(...) EMU_AT(cudaGetDeviceProperties, __VA_ARGS__)
#define cudaDeviceGetAttribute(...) EMU_AT(cudaDeviceGetAttribute, __VA_ARGS__)
#define cudaDeviceGetDefaultMemPool(...) EMU_AT(cudaDeviceGetDefaultMemPool, __VA_ARGS__)
#define cudaMemPoolSetAttribute(...) EMU_AT(cudaMemPoolSetAttribute, __VA_ARGS__)
#define cudaMemPoolGetAttribute(...) EMU_AT(cudaMemPoolGetAttribute, __VA_ARGS__)
#define cudaFuncSetAttribute(...) EMU_AT(cudaFuncSetAttribute, __VA_ARGS__)

// the libraries' entry points get their call-site macros from emu_libs.h (emu_blas.cpp and
// friends' half of the emulation), when it exists
#if __has_include("emu_libs.h")
#include "emu_libs.h"
#endif

#endif // EMU_H
