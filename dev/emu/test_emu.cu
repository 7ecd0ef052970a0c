// test_emu.cu: the emulation's self-test (built only by `make emu`, run by `make test-emu`). Plain
// CUDA: on a GPU most planted defects below would crash, hang or corrupt silently; under the
// emulation each must stop with exactly ONE "emu: error:" line naming the kernel or call and the
// line of this file where it was made (each case prints "expect-line N" first), or, for the
// defects that are a matter of order (a missing __syncthreads), give a wrong result under at
// least one EMU_SEED. Correct code must pass under every seed. Each case runs as a child process:
//     ./dev/emu/test_emu            all cases, last line "N passed, N failed"
//     ./dev/emu/test_emu CASE       one case (what the parent runs)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <string>
#include <cuda_runtime.h>

static int g_child; // a planted case runs: say which line the error must name
#define EXPECT() (g_child ? printf("expect-line %d\n", __LINE__), fflush(stdout) : 0)
#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { printf("cuda error %s at line %d\n", cudaGetErrorName(e_), __LINE__); exit(2); } } while (0)

// ----------------------------------------------------------------------------
// kernels

__global__ void scale_kernel(float* out, const float* in, int n, float k) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) out[i] = k * in[i];
}
__global__ void write_at_kernel(float* p, int i) { p[i] = 1.0f; }
__global__ void read_at_kernel(float* out, const float* p, int i) { out[0] = p[i]; }

// every thread adds its value to a block sum: correct with the barriers, wrong without
template <bool SYNC> __global__ void block_sum_kernel(float* out, const float* in) {
    __shared__ float buf[256];
    int t = threadIdx.x;
    buf[t] = in[blockIdx.x * blockDim.x + t];
    if (SYNC) __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) buf[t] += buf[t + s];
        if (SYNC) __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = buf[0];
}

__global__ void warp_ops_kernel(int* out) {
    int lane = threadIdx.x % 32;
    int v = lane + 100 * (threadIdx.x / 32);
    int sum = v;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    int down = __shfl_down_sync(0xffffffffu, v, 1);
    int up = __shfl_up_sync(0xffffffffu, v, 2);
    int idx = __shfl_sync(0xffffffffu, v, 5);
    int cnt = __syncthreads_count(lane < 3);
    int any = __syncthreads_or(threadIdx.x == 40);
    int all = __syncthreads_and(lane < 40);
    int* o = out + threadIdx.x * 7;
    o[0] = sum; o[1] = down; o[2] = up; o[3] = idx; o[4] = cnt; o[5] = any; o[6] = all;
}

__global__ void atomics_kernel(int* count, float* fsum, unsigned* umax) {
    atomicAdd(count, 1);
    atomicAdd(fsum, 0.5f);
    atomicMax(umax, (unsigned)(threadIdx.x + blockIdx.x * blockDim.x));
}

__global__ void coords_kernel(int* out) { // 2-D grid of 3-D blocks: each thread writes its linear index where it lands
    int b = blockIdx.x + gridDim.x * blockIdx.y;
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int nt = blockDim.x * blockDim.y * blockDim.z;
    out[b * nt + t] = b * nt + t;
}

__global__ void shfl_exited_kernel(float* out) {
    if (threadIdx.x == 31) return;
    float v = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
    out[threadIdx.x] = v;
}
__global__ void split_barrier_kernel(float* out) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
__global__ void noop_kernel(float* p) { (void)p; }
__global__ void big_shared_kernel(float* out) { // 52 KB of static shared memory: ptxas refuses more than 48 KiB
    __shared__ float big[13000];
    big[threadIdx.x] = 1.0f;
    out[0] = big[0];
}

// ----------------------------------------------------------------------------
// positive checks: results that correct code must give under every seed

static int g_pass, g_fail;
static void check(int ok, const char* what) {
    printf("    %s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) g_pass++; else g_fail++;
}

static float* upload(const float* h, int n) {
    float* d;
    CK(cudaMalloc(&d, sizeof(float) * n));
    CK(cudaMemcpy(d, h, sizeof(float) * n, cudaMemcpyHostToDevice));
    return d;
}

// block sums of 4 blocks of 256; 1 when every sum is exact (small integers)
template <bool SYNC> static int block_sums_right(void) {
    const int nb = 4, n = nb * 256;
    float h[n], want[nb] = {0}, got[nb];
    for (int i = 0; i < n; i++) { h[i] = (float)(i % 7); want[i / 256] += h[i]; }
    float* d = upload(h, n);
    float* o;
    CK(cudaMalloc(&o, sizeof(float) * nb));
    block_sum_kernel<SYNC><<<nb, 256>>>(o, d);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, o, sizeof got, cudaMemcpyDeviceToHost));
    CK(cudaFree(d)); CK(cudaFree(o));
    for (int b = 0; b < nb; b++) if (got[b] != want[b]) return 0;
    return 1;
}

// two streams: s1 computes b = 2a, s2 computes c = 3b after waiting on s1's event
static int streams_right(int wait) {
    const int n = 1 << 14; // 64 KiB: whole pages, so the race check sees the reads
    static float h[n], got[n];
    for (int i = 0; i < n; i++) h[i] = (float)i;
    float* a = upload(h, n);
    float *b, *c;
    CK(cudaMalloc(&b, sizeof(float) * n));
    CK(cudaMalloc(&c, sizeof(float) * n));
    cudaStream_t s1, s2;
    cudaEvent_t ev;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CK(cudaDeviceSynchronize()); // the uploads, on the legacy stream, before the non-blocking streams
    scale_kernel<<<16, 256, 0, s1>>>(b, a, n, 2.0f);
    CK(cudaEventRecord(ev, s1));
    if (wait) CK(cudaStreamWaitEvent(s2, ev, 0));
    EXPECT(); scale_kernel<<<16, 256, 0, s2>>>(c, b, n, 3.0f);
    CK(cudaMemcpyAsync(got, c, sizeof(float) * n, cudaMemcpyDeviceToHost, s2));
    CK(cudaStreamSynchronize(s2));
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= got[i] == 6.0f * i;
    CK(cudaStreamDestroy(s1)); CK(cudaStreamDestroy(s2)); CK(cudaEventDestroy(ev));
    CK(cudaFree(a)); CK(cudaFree(b)); CK(cudaFree(c));
    return ok;
}

static void positive(void) {
    check(block_sums_right<true>(), "block reduction with __syncthreads: exact sums");
    {
        int* d;
        const int nt = 64;
        CK(cudaMalloc(&d, sizeof(int) * nt * 7));
        warp_ops_kernel<<<1, nt>>>(d);
        int h[nt * 7];
        CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
        CK(cudaFree(d));
        int ok = 1;
        for (int t = 0; t < nt; t++) {
            int lane = t % 32, w = t / 32, v = lane + 100 * w;
            int sum = 496 + 3200 * w;
            int down = lane + 1 < 32 ? v + 1 : v, up = lane >= 2 ? v - 2 : v, idx = 5 + 100 * w;
            const int* o = h + t * 7;
            ok &= o[0] == sum && o[1] == down && o[2] == up && o[3] == idx && o[4] == 6 && o[5] == 1 && o[6] == 1;
        }
        check(ok, "shuffles (xor, down, up, idx) per warp of 32; __syncthreads_count/_or/_and");
    }
    {
        int* cnt; float* fs; unsigned* um;
        CK(cudaMalloc(&cnt, 4)); CK(cudaMalloc(&fs, 4)); CK(cudaMalloc(&um, 4));
        CK(cudaMemset(cnt, 0, 4)); CK(cudaMemset(fs, 0, 4)); CK(cudaMemset(um, 0, 4));
        atomics_kernel<<<5, 96>>>(cnt, fs, um);
        int c; float f; unsigned u;
        CK(cudaMemcpy(&c, cnt, 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(&f, fs, 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(&u, um, 4, cudaMemcpyDeviceToHost));
        CK(cudaFree(cnt)); CK(cudaFree(fs)); CK(cudaFree(um));
        check(c == 480 && f == 240.0f && u == 479, "atomicAdd (int, float), atomicMax over 480 threads");
    }
    {
        const int n = 2 * 3 * 4 * 2 * 8;
        int* d;
        CK(cudaMalloc(&d, sizeof(int) * n));
        coords_kernel<<<dim3(2, 3), dim3(4, 2, 8)>>>(d);
        int h[n], ok = 1;
        CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
        CK(cudaFree(d));
        for (int i = 0; i < n; i++) ok &= h[i] == i;
        check(ok, "blockIdx/threadIdx/blockDim/gridDim of a 2-D grid of 3-D blocks");
    }
    {
        float* d;
        float h[3];
        CK(cudaMalloc(&d, sizeof h));
        CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
        CK(cudaFree(d));
        check(h[0] != h[0] && h[2] != h[2], "new device memory reads as NaN");
    }
    check(streams_right(1), "two streams ordered by an event: right result, no race reported");
    {
        cudaStream_t s;
        CK(cudaStreamCreate(&s));
        float* d;
        CK(cudaMallocAsync((void**)&d, 4096, s));
        CK(cudaMemsetAsync(d, 0, 4096, s));
        scale_kernel<<<2, 64, 0, s>>>(d, d, 1024, 2.0f);
        CK(cudaFreeAsync(d, s));
        CK(cudaStreamSynchronize(s));
        CK(cudaStreamDestroy(s));
        check(1, "cudaMallocAsync / kernel / cudaFreeAsync in one stream's order");
    }
    {
        cudaError_t e = cudaMalloc((void**)&g_pass /* any */, (size_t)1 << 62);
        check(e == cudaErrorMemoryAllocation && cudaGetLastError() == cudaErrorMemoryAllocation, "cudaMalloc beyond the card: cudaErrorMemoryAllocation");
    }
}

// ----------------------------------------------------------------------------
// planted defects, one a case

static void case_oob(void) { // a write just past a 4096-byte allocation: the guard page
    float* p;
    CK(cudaMalloc(&p, 4096));
    EXPECT(); write_at_kernel<<<1, 1>>>(p, 1024);
    CK(cudaDeviceSynchronize());
}
static void case_slack(void) { // one float past a 1000-byte allocation: the canary before the guard page
    float* p;
    CK(cudaMalloc(&p, 1000));
    EXPECT(); write_at_kernel<<<1, 1>>>(p, 250);
    CK(cudaDeviceSynchronize());
}
static void case_host_read(void) {
    float* p;
    EXPECT(); CK(cudaMalloc(&p, 64));
    printf("%f\n", p[3]);
}
static void case_memcpy_kind(void) {
    float* p;
    float h[4];
    CK(cudaMalloc(&p, sizeof h));
    EXPECT(); CK(cudaMemcpy(h, p, sizeof h, cudaMemcpyHostToDevice));
}
static void case_memcpy_size(void) {
    float* p;
    float h[8] = {0};
    CK(cudaMalloc(&p, 16));
    EXPECT(); CK(cudaMemcpy(p, h, sizeof h, cudaMemcpyHostToDevice));
}
static void case_host_ptr(void) {
    static float h[4];
    EXPECT(); noop_kernel<<<1, 1>>>(h);
}
static void case_stream_wait(void) { streams_right(0); }
static void case_destroyed_stream(void) {
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    CK(cudaStreamDestroy(s));
    EXPECT(); noop_kernel<<<1, 1, 0, s>>>(NULL);
}
static void case_zero_grid(void) {
    EXPECT(); noop_kernel<<<0, 32>>>(NULL);
    if (cudaGetLastError() != cudaErrorInvalidConfiguration) { printf("no launch error\n"); exit(3); }
    exit(1); // what the program's cudaCheckLaunch does
}
static void case_too_many_threads(void) {
    EXPECT(); noop_kernel<<<1, 1025>>>(NULL);
    if (cudaGetLastError() != cudaErrorInvalidConfiguration) { printf("no launch error\n"); exit(3); }
    exit(1);
}
static void case_use_after_free(void) {
    float* p;
    CK(cudaMalloc(&p, 64));
    CK(cudaFree(p));
    EXPECT(); write_at_kernel<<<1, 1>>>(p, 0);
}
static void case_use_after_free_async(void) { // freed in stream order while another stream still reads it
    float *p, *o;
    cudaStream_t s1, s2;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaMalloc(&p, 64));
    CK(cudaMalloc(&o, 64));
    CK(cudaMemset(p, 0, 64));
    CK(cudaDeviceSynchronize());
    read_at_kernel<<<1, 1, 0, s2>>>(o, p, 0);
    EXPECT(); CK(cudaFreeAsync(p, s1));
    CK(cudaDeviceSynchronize());
}
static void case_malloc_async_order(void) { // allocated in s1's order, used on s2 with nothing ordering the two
    float* p;
    cudaStream_t s1, s2;
    CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaMallocAsync((void**)&p, 64, s1));
    EXPECT(); write_at_kernel<<<1, 1, 0, s2>>>(p, 0);
    CK(cudaDeviceSynchronize());
}
static void case_static_shared(void) {
    float* p;
    CK(cudaMalloc(&p, 64));
    EXPECT(); big_shared_kernel<<<1, 32>>>(p);
    CK(cudaDeviceSynchronize());
}
static void case_shfl_exited(void) {
    float* p;
    CK(cudaMalloc(&p, 128));
    EXPECT(); shfl_exited_kernel<<<1, 32>>>(p);
    CK(cudaDeviceSynchronize());
}
static void case_split_barrier(void) {
    float* p;
    CK(cudaMalloc(&p, 128));
    EXPECT(); split_barrier_kernel<<<1, 32>>>(p);
    CK(cudaDeviceSynchronize());
}
static void case_event_never_recorded(void) {
    cudaStream_t s;
    cudaEvent_t e;
    CK(cudaStreamCreate(&s));
    CK(cudaEventCreate(&e));
    EXPECT(); CK(cudaStreamWaitEvent(s, e, 0));
}
static void case_double_free(void) {
    float* p;
    CK(cudaMalloc(&p, 64));
    CK(cudaFree(p));
    EXPECT(); CK(cudaFree(p));
}
static void case_nosync(void) { exit(block_sums_right<false>() ? 0 : 1); }
static void case_positive(void) { positive(); exit(g_fail ? 1 : 0); }

struct Case { const char* name; void (*fn)(void); const char* must; };
// must: a phrase the one error line must hold (besides the kernel/call and the line); NULL: the
// case is judged by its exit status alone (wrong-result cases)
static const Case CASES[] = {
    {"oob", case_oob, "write_at_kernel"},
    {"slack", case_slack, "past the end"},
    {"host_read", case_host_read, "host code: read of device memory"},
    {"memcpy_kind", case_memcpy_kind, "cudaMemcpyHostToDevice, but the destination"},
    {"memcpy_size", case_memcpy_size, "run past the allocation"},
    {"host_ptr", case_host_ptr, "host (pageable) memory"},
    {"stream_wait", case_stream_wait, "race on"},
    {"destroyed_stream", case_destroyed_stream, "destroyed"},
    {"zero_grid", case_zero_grid, "a grid dimension is 0"},
    {"too_many_threads", case_too_many_threads, "more than 1024 threads"},
    {"use_after_free", case_use_after_free, "freed device memory"},
    {"use_after_free_async", case_use_after_free_async, "read_at_kernel"},
    {"malloc_async_order", case_malloc_async_order, "before its cudaMallocAsync"},
    {"static_shared", case_static_shared, "more than the 48 KiB"},
    {"shfl_exited", case_shfl_exited, "exited"},
    {"split_barrier", case_split_barrier, "never reach"},
    {"event_never_recorded", case_event_never_recorded, "never recorded"},
    {"double_free", case_double_free, "double free"},
};

// ----------------------------------------------------------------------------
// the parent: each case in a child, its output judged

static int run_child(const char* name, const char* seed, std::string* out, std::string* err) {
    char fo[] = "/tmp/test_emu_outXXXXXX", fe[] = "/tmp/test_emu_errXXXXXX";
    int o = mkstemp(fo), e = mkstemp(fe);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(o, 1); dup2(e, 2);
        setenv("EMU_SEED", seed, 1);
        execl("/proc/self/exe", "test_emu", name, (char*)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    for (int k = 0; k < 2; k++) {
        std::string* s = k ? err : out;
        FILE* f = fopen(k ? fe : fo, "r");
        char buf[4096];
        size_t n;
        s->clear();
        while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) s->append(buf, n);
        if (f) fclose(f);
    }
    close(o); close(e); unlink(fo); unlink(fe);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_of(const std::string& s, const char* what) {
    int n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
    return n;
}

int main(int argc, char** argv) {
    if (argc > 1) {
        g_child = 1;
        if (!strcmp(argv[1], "nosync")) case_nosync();
        if (!strcmp(argv[1], "positive")) case_positive();
        for (const Case& c : CASES)
            if (!strcmp(argv[1], c.name)) { c.fn(); return 0; }
        fprintf(stderr, "test_emu: unknown case %s\n", argv[1]);
        return 2;
    }
    std::string out, err;
    printf("correct code, EMU_SEED 0 (this process):\n");
    positive();
    for (const char* seed : {"1", "2", "3", "12345"}) {
        int rc = run_child("positive", seed, &out, &err);
        char what[200];
        snprintf(what, sizeof what, "correct code under EMU_SEED=%s: every check passes, no emu error", seed);
        check(rc == 0 && count_of(err, "emu: error") == 0, what);
        if (rc) printf("%s%s", out.c_str(), err.c_str());
    }
    printf("a missing __syncthreads (block reduction without barriers):\n");
    int wrong = 0;
    std::string seeds;
    for (const char* seed : {"0", "1", "2", "3"}) {
        int rc = run_child("nosync", seed, &out, &err);
        if (rc == 1) { wrong++; seeds += seed; seeds += " "; }
    }
    char what[300];
    snprintf(what, sizeof what, "wrong sums under %d of 4 seeds (%s)", wrong, seeds.c_str());
    check(wrong > 0, what);
    printf("planted defects: each stops with one emu error line naming it and its line:\n");
    for (const Case& c : CASES) {
        int rc = run_child(c.name, "0", &out, &err);
        int line = -1;
        size_t p = out.find("expect-line ");
        if (p != std::string::npos) line = atoi(out.c_str() + p + 12);
        char at[64];
        snprintf(at, sizeof at, "test_emu.cu:%d", line);
        size_t q = err.find("emu: error:");
        std::string first = q == std::string::npos ? "" : err.substr(q, err.find('\n', q) - q);
        int ok = rc != 0 && count_of(err, "emu: error:") == 1 && first.find(at) != std::string::npos &&
                 first.find(c.must) != std::string::npos;
        snprintf(what, sizeof what, "%-22s %s", c.name, first.empty() ? "(no emu error line)" : first.c_str());
        check(ok, what);
        if (!ok) printf("      exit %d, want one line with \"%s\" and \"%s\"; stderr:\n%s\n", rc, at, c.must, err.c_str());
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
