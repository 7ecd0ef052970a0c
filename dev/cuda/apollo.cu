/*
The per-channel norms and the norm-growth limiter of Fira and APOLLO on the device (galore.cuh):
  channel_sumsq_gpu   per-row (one block a row, fixed tree) or per-column (a block 32 columns x 16 strands
                      of rows, fixed tree over the strands) sums of squares in fp64, of fp32 or bf16 (times a scale) matrices
  apollo_scale        factors a thread per channel, the sums and the limiter one block (galore.h's apollo_sum order): APOLLO's
                      factors s_c = channel_norm_ratio(ssD_c ds2, ssR_c) and the limiter (apollo_limiter) on
                      ||S||^2 = sum_c s_c^2 ssG_c, channel-wise and tensor-wise
  fira_limit_kernel   one thread: Fira's limiter (fira_limiter) on NORM_BLOCKS partials of ||S||^2
Both limiter kernels keep the state in device memory and write the divisor to device memory; with
the per-layer skip flag set they change neither (the CPU engine never runs a skipped update).
References: the CPU engine's own code. channel_sumsq: train_llama.c's channel_sumsq (double, each
channel in index order); the kernels add in another fixed order, so the sums agree to fp64
rounding: relative error <= len 2^-53 for sums of len nonnegative terms (bound 1e-12 for len <= 4096,
4096 2^-53 = 4.5e-13). Factors and limiter: galore.h's HOSTDEV functions on the host from the very
sums the kernel read (downloaded), in the kernel's order (apollo_sum, the CPU engine's own): the same bits (GALORE_DIV keeps the
divisions IEEE under --use_fast_math, __dmul_rn/__dadd_rn keep ||S||^2 free of FMA), checked equal.
Four limiter steps per case: the first (stores ||S||, divisor 1), a second with S grown 3x (Fira)
or 10x (APOLLO: the limiter engages, divisor 3 / 1.01 or 10 / 1.01), a skipped third (state and
divisor unchanged), then a fourth on the second's input.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/apollo.cu -o dev/cuda/apollo -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/apollo     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"
#include "../../galore.cuh"

// the CPU's channel_sumsq (train_llama.c), here on the values the GPU reads (bf16 widened, times scale)
static void cpu_channel_sumsq(double* out, const float* X, int64_t rows, int64_t cols, int by_row) {
    for (int64_t c = 0; c < (by_row ? rows : cols); c++) {
        double acc = 0.0;
        for (int64_t k = 0; k < (by_row ? cols : rows); k++) {
            float v = by_row ? X[c * cols + k] : X[k * cols + c];
            acc += (double)v * v;
        }
        out[c] = acc;
    }
}

static double rel_err_max(const double* a, const double* b, int64_t n) {
    double e = 0.0;
    for (int64_t k = 0; k < n; k++) e = fmax(e, fabs(a[k] - b[k]) / fmax(fabs(b[k]), 1e-300));
    return e;
}

// channel sums of a rows x cols matrix, fp32 and bf16 (scale 0.5: the clipping coefficient)
static void test_sumsq(int64_t rows, int64_t cols, cudaStream_t s) {
    size_t n = (size_t)(rows * cols);
    float* hf = host_alloc<float>(n);
    floatX* hb = host_alloc<floatX>(n);
    float* wide = host_alloc<float>(n);
    fill_bf16(hb, wide, n, 1.0f);
    for (size_t k = 0; k < n; k++) hf[k] = rand_uniform();
    float* df = dev_upload(hf, n);
    floatX* db = dev_upload(hb, n);
    int64_t mx = rows > cols ? rows : cols;
    double* dout = (double*)cudaMallocCheck(sizeof(double) * mx, "sums");
    double* gout = host_alloc<double>(mx);
    double* ref = host_alloc<double>(mx);
    float* scaled = host_alloc<float>(n);
    for (size_t k = 0; k < n; k++) scaled[k] = wide[k] * 0.5f;
    for (int by_row = 0; by_row < 2; by_row++) {
        int64_t nch = by_row ? rows : cols;
        channel_sumsq_gpu<float>(df, rows, cols, by_row, 1.0f, dout, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(gout, dout, nch);
        cpu_channel_sumsq(ref, hf, rows, cols, by_row);
        double e = rel_err_max(gout, ref, nch);
        check(e <= 1e-12, "channel_sumsq_gpu fp32 %lldx%lld by %s: max relative error %.2e (bound 1e-12: fp64 sums in another order)",
              (long long)rows, (long long)cols, by_row ? "row" : "column", e);
        channel_sumsq_gpu<floatX>(db, rows, cols, by_row, 0.5f, dout, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(gout, dout, nch);
        cpu_channel_sumsq(ref, scaled, rows, cols, by_row);
        e = rel_err_max(gout, ref, nch);
        check(e <= 1e-12, "channel_sumsq_gpu bf16 x 0.5 %lldx%lld by %s: max relative error %.2e (bound 1e-12)", (long long)rows, (long long)cols,
              by_row ? "row" : "column", e);
    }
    cudaCheck(cudaFree(df)); cudaCheck(cudaFree(db)); cudaCheck(cudaFree(dout));
    free(hf); free(hb); free(wide); free(gout); free(ref); free(scaled);
}

// galore.h's apollo_sum on the device (apollo_block_sum, the limiter kernel's sums) against the host's, bit
// for bit, on n random doubles; the serial sum in index order (the kernel's order before issue 22)
// shown beside it: it differs in the last bits, so the check sees the order, which the float outputs above hide
__global__ void apollo_sum_kernel(const double* x, int64_t n, double* out) {
    __shared__ double part[APOLLO_SUM_STRANDS];
    double r = apollo_block_sum(x, n, part);
    if (threadIdx.x == 0) *out = r;
}
static void test_apollo_sum(int64_t n, cudaStream_t s) {
    double* h = host_alloc<double>(n);
    for (int64_t k = 0; k < n; k++) h[k] = (double)rand_uniform() + 1e-3 * rand_uniform();
    double* d = dev_upload(h, (size_t)n);
    double* dout = (double*)cudaMallocCheck(sizeof(double), "sum");
    apollo_sum_kernel<<<1, APOLLO_SUM_STRANDS, 0, s>>>(d, n, dout);
    cudaCheckLaunch();
    cudaCheck(cudaStreamSynchronize(s));
    double got, ref = apollo_sum(h, n), serial = 0.0;
    dev_download(&got, dout, 1);
    for (int64_t k = 0; k < n; k++) serial += h[k];
    check(memcmp(&got, &ref, sizeof got) == 0, "apollo_block_sum n %lld: %.17g, the host's apollo_sum %.17g: bit-equal (the serial order gives %.17g)",
          (long long)n, got, ref, serial);
    cudaCheck(cudaFree(d)); cudaCheck(cudaFree(dout));
    free(h);
}

// the column and row sums of a 7B-sized bf16 gradient, timed: they read rows x cols x 2 bytes and
// write 8 bytes a channel
static void time_sumsq(int64_t rows, int64_t cols, cudaStream_t s) {
    size_t n = (size_t)(rows * cols);
    floatX* hb = host_alloc<floatX>(n);
    float* wide = host_alloc<float>(n);
    fill_bf16(hb, wide, n, 1.0f);
    floatX* db = dev_upload(hb, n);
    double* dout = (double*)cudaMallocCheck(sizeof(double) * (size_t)(rows > cols ? rows : cols), "sums");
    for (int by_row = 0; by_row < 2; by_row++) {
        float ms = time_ms([&] { channel_sumsq_gpu<floatX>(db, rows, cols, by_row, 1.0f, dout, s); }, s);
        char what[64];
        snprintf(what, sizeof what, "channel_sumsq %lldx%lld by %s", (long long)rows, (long long)cols, by_row ? "row" : "column");
        report_bw(what, 2.0 * n + 8.0 * (by_row ? rows : cols), ms);
    }
    cudaCheck(cudaFree(db)); cudaCheck(cudaFree(dout));
    free(hb); free(wide);
}

// the host's apollo_update tail (galore.h's apollo_factors, apollo_limiter, as train_llama.c calls
// them) on a copy of the sums dsum (nG, nR, nR; tensor-wise they are collapsed in place): factors
// into sc, the divisor returned
static float cpu_apollo_scale(float* sc, const double* dsum, int64_t nG, int64_t nR, int64_t nch, int tw, double ds2, float* state, int first) {
    double* sums = host_alloc<double>(nG + 2 * nR);
    memcpy(sums, dsum, sizeof(double) * (size_t)(nG + 2 * nR));
    double ssS = apollo_factors(sc, sums, nG, nR, nch, tw, ds2);
    free(sums);
    return apollo_limiter((float)sqrt(ssS), state, first);
}

// four steps of APOLLO's factor + limiter kernel on random positive sums (step 2: G's sums x 100,
// ||S|| x 10: the limiter engages, divisor 10 / 1.01; step 3 skipped; step 4 the same sums again)
static void test_apollo_scale(int64_t nG, int64_t nR, int tw, double ds2, cudaStream_t s) {
    int64_t nch = tw ? 1 : nG;
    int64_t ns = nG + 2 * nR;
    double* hs = host_alloc<double>(ns);
    float* sc_ref = host_alloc<float>(nch);
    float* sc_gpu = host_alloc<float>(nch);
    double* dsum = (double*)cudaMallocCheck(sizeof(double) * ns, "sums");
    float* dsc = (float*)cudaMallocCheck(sizeof(float) * nch, "factors");
    float* dstate = (float*)cudaMallocCheck(sizeof(float) * 2, "limiter state, divisor"); // [0] state, [1] divisor
    int* dskip = (int*)cudaMallocCheck(sizeof(int), "skip flag");
    float hstate = 0.0f, zero2[2] = {0.0f, -1.0f};
    cudaCheck(cudaMemcpy(dstate, zero2, sizeof zero2, cudaMemcpyHostToDevice));
    float lim_prev = -1.0f;
    for (int step = 1; step <= 4; step++) {
        if (step == 1) for (int64_t k = 0; k < ns; k++) hs[k] = (double)(rand_uniform() * 0.5f + 1.0f);
        if (step == 2) for (int64_t k = 0; k < nG; k++) hs[k] *= 100.0; // ||S|| x 10, the factors unchanged
        cudaCheck(cudaMemcpy(dsum, hs, sizeof(double) * ns, cudaMemcpyHostToDevice));
        int skipped = step == 3;
        cudaCheck(cudaMemcpy(dskip, &skipped, sizeof(int), cudaMemcpyHostToDevice));
        apollo_scale(dsc, dsum, nG, nR, nch, tw, ds2, dstate, step == 1, dstate + 1, dskip, s); // overwrites D's sums
        cudaCheck(cudaStreamSynchronize(s));
        float got[2];
        dev_download(got, dstate, 2);
        if (skipped) {
            check(got[0] == hstate && got[1] == lim_prev, "apollo_scale %s nG %lld nR %lld, skipped step: state %.9g (was %.9g), divisor %.9g (was %.9g) unchanged",
                  tw ? "tensor-wise" : "channel-wise", (long long)nG, (long long)nR, got[0], hstate, got[1], lim_prev);
            continue;
        }
        float lim = cpu_apollo_scale(sc_ref, hs, nG, nR, nch, tw, ds2, &hstate, step == 1);
        dev_download(sc_gpu, dsc, nch);
        int same = 1;
        for (int64_t c = 0; c < nch; c++) same &= sc_gpu[c] == sc_ref[c];
        check(same && got[0] == hstate && got[1] == lim && (step != 2 || lim > 2.0f),
              "apollo_scale %s nG %lld nR %lld ds2 %g step %d: factors, state %.9g (CPU %.9g), divisor %.9g (CPU %.9g) bit-equal%s",
              tw ? "tensor-wise" : "channel-wise", (long long)nG, (long long)nR, ds2, step, got[0], hstate, got[1], lim,
              step == 2 ? " (limiter engaged: > 2)" : "");
        lim_prev = lim;
    }
    cudaCheck(cudaFree(dsum)); cudaCheck(cudaFree(dsc)); cudaCheck(cudaFree(dstate)); cudaCheck(cudaFree(dskip));
    free(hs); free(sc_ref); free(sc_gpu);
}

// Fira's limiter kernel on NORM_BLOCKS partials of ||S||^2 (sumsq_partials of a random matrix; x 3 from step 2:
// the divisor 3 / 1.01 at step 2; step 3 skipped; step 4 the same S: ratio 3 / 1.01 again)
static void test_fira_limit(size_t n, cudaStream_t s) {
    float* hx = host_alloc<float>(n);
    float* dx = (float*)cudaMallocCheck(sizeof(float) * n, "S");
    double* dpart = (double*)cudaMallocCheck(sizeof(double) * NORM_BLOCKS, "partials");
    double* hpart = host_alloc<double>(NORM_BLOCKS);
    float* dstate = (float*)cudaMallocCheck(sizeof(float) * 2, "limiter state, divisor");
    int* dskip = (int*)cudaMallocCheck(sizeof(int), "skip flag");
    float hstate = 0.0f, init[2] = {0.0f, -1.0f}, lim_prev = -1.0f;
    cudaCheck(cudaMemcpy(dstate, init, sizeof init, cudaMemcpyHostToDevice));
    for (int step = 1; step <= 4; step++) {
        if (step == 1) for (size_t k = 0; k < n; k++) hx[k] = rand_uniform();
        if (step == 2) for (size_t k = 0; k < n; k++) hx[k] *= 3.0f; // ||S|| x 3
        cudaCheck(cudaMemcpy(dx, hx, sizeof(float) * n, cudaMemcpyHostToDevice));
        int skipped = step == 3;
        cudaCheck(cudaMemcpy(dskip, &skipped, sizeof(int), cudaMemcpyHostToDevice));
        sumsq_partials(dpart, dx, n, s);
        fira_limit_kernel<<<1, 1, 0, s>>>(dpart, dstate, step == 1, dstate + 1, dskip);
        cudaCheckLaunch();
        cudaCheck(cudaStreamSynchronize(s));
        float got[2];
        dev_download(got, dstate, 2);
        if (skipped) {
            check(got[0] == hstate && got[1] == lim_prev, "fira_limit_kernel n %zu, skipped step: state %.9g (was %.9g), divisor %.9g (was %.9g) unchanged",
                  n, got[0], hstate, got[1], lim_prev);
            continue;
        }
        dev_download(hpart, dpart, NORM_BLOCKS);
        double ss = 0.0;
        for (int b = 0; b < NORM_BLOCKS; b++) ss += hpart[b];
        double exact = 0.0;
        for (size_t k = 0; k < n; k++) exact += (double)hx[k] * hx[k];
        float next, lim = fira_limiter((float)sqrt(ss), hstate, step == 1, &next);
        hstate = next;
        // the partials are fp64 sums: ||S||^2 within (n + NORM_BLOCKS) 2^-53 relative of the exact one (bound 1e-3 here guards
        // only the partials' wiring; the bits are checked against the host's sum)
        check(got[0] == hstate && got[1] == lim && (step != 2 || lim > 2.0f) && fabs(ss - exact) <= 1e-3 * exact,
              "fira_limit_kernel n %zu step %d: state %.9g (CPU %.9g), divisor %.9g (CPU %.9g) bit-equal; ||S||^2 %.6e vs exact %.6e%s", n, step,
              got[0], hstate, got[1], lim, ss, exact, step == 2 ? " (limiter engaged: > 2)" : "");
        lim_prev = lim;
    }
    cudaCheck(cudaFree(dx)); cudaCheck(cudaFree(dpart)); cudaCheck(cudaFree(dstate)); cudaCheck(cudaFree(dskip));
    free(hx); free(hpart);
}

int main(void) {
    print_device("apollo");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    test_sumsq(1, 1, s);
    test_sumsq(37, 300, s);    // rows shorter than a block, a partial column grid
    test_sumsq(513, 64, s);
    test_sumsq(8, 4096, s);    // long rows: every thread of the row block strides
    test_sumsq(100, 70, s);    // columns: strands of 7 and 6 rows, a partial last tile of 6 columns
    if (DEV_CUDA_TIMING) time_sumsq(4096, 11008, s); // a 7B down_proj's G (APOLLO channel-wise, left side: by column)
    test_apollo_sum(1, s);
    test_apollo_sum(300, s);
    test_apollo_sum(11008, s);
    test_apollo_scale(300, 300, 0, 1.0, s);   // channel-wise, right side (nR = nG = m)
    test_apollo_scale(300, 300, 0, 2.7, s);   // the 8-bit kind's ds^2
    test_apollo_scale(11008, 11008, 0, 1.0, s); // a 7B MLP matrix's channels: the factors over many blocks, 43 terms a strand
    test_apollo_scale(11008, 4096, 1, 1.0, s); // tensor-wise, a 7B gate_proj's row sums
    test_apollo_scale(300, 1, 1, 1.0, s);     // tensor-wise (APOLLO-Mini: rank 1 left, R's rows = 1)
    test_apollo_scale(128, 1000, 1, 1.0, s);  // tensor-wise with r > m (rank not clipped)
    test_fira_limit(1, s);
    test_fira_limit(300 * 64, s);
    test_fira_limit(1000003, s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
