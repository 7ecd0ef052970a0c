// test_emu_libs.cpp: the emulated libraries (emu_blas, emu_solver, emu_dnn, emu_nccl) against plain
// references, and one planted defect per rule they enforce, each expected to stop (or return the
// real library's status) with ONE "emu:" line naming the call and its line in this file.
// Every GEMM combination the program uses (transposes, leading dimensions above the rows, batch
// strides, bf16 and fp32 in and out, beta 0 over NaN, beta 1, host and device alpha/beta, in place
// C == D) is compared element by element with a double-precision reference of the same
// (bf16-rounded) inputs, and the bytes around each output (ld padding, gaps between batches) must
// stay untouched. Ends with "N passed, N failed".
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cusolverDn.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <nccl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <vector>
#include "emu_internal.h"

static int g_pass, g_fail;
static void check(int ok, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_pass++; else g_fail++;
}

// the call site, as emu.h's macros set it for the program; a planted defect also sends it to its
// parent (expect_fd), which looks for it in the one emu line
static int expect_fd = -1;
static void expect_site(const char* call, int line) {
    if (expect_fd < 0) return;
    char b[300];
    int n = snprintf(b, sizeof b, "%s at %s:%d", call, __FILE__, line);
    if (write(expect_fd, b, (size_t)n) != n) _exit(99);
}
#define CALL(name, expr) (expect_site(name, __LINE__), emu_site = EmuSite{name, __FILE__, __LINE__}, (expr))

#define CUDA_OK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("FAIL %s: CUDA error %d\n", #x, (int)e_); exit(1); } } while (0)
#define ST_OK(x) do { int s_ = (int)(x); if (s_ != 0) { printf("FAIL %s: status %d (line %d)\n", #x, s_, __LINE__); exit(1); } } while (0)

// ----------------------------------------------------------------------------------------------
// data

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static size_t tbytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

// host image of a device buffer of n elements of type t, values kept as floats (bf16-exact for bf16)
struct Buf {
    cudaDataType_t t;
    std::vector<float> v;
    void* d = NULL;
};
static Buf buf_make(cudaDataType_t t, size_t n, float fill_nan_or_rand) {
    Buf b;
    b.t = t;
    b.v.resize(n);
    for (size_t i = 0; i < n; i++) {
        float x = isnan(fill_nan_or_rand) ? NAN : frand() * fill_nan_or_rand;
        b.v[i] = t == CUDA_R_16BF ? __bfloat162float(__float2bfloat16_rn(x)) : x;
    }
    CUDA_OK(cudaMalloc(&b.d, n > 0 ? n * tbytes(t) : 1));
    std::vector<char> raw(n * tbytes(t));
    for (size_t i = 0; i < n; i++) {
        if (t == CUDA_R_32F) memcpy(&raw[i * 4], &b.v[i], 4);
        else { __nv_bfloat16 h = __float2bfloat16_rn(b.v[i]); memcpy(&raw[i * 2], &h, 2); }
    }
    CUDA_OK(cudaMemcpy(b.d, raw.data(), raw.size(), cudaMemcpyHostToDevice));
    return b;
}
static std::vector<float> buf_read(const Buf& b) {
    size_t n = b.v.size();
    std::vector<char> raw(n * tbytes(b.t));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(raw.data(), b.d, raw.size(), cudaMemcpyDeviceToHost));
    std::vector<float> out(n);
    for (size_t i = 0; i < n; i++) {
        if (b.t == CUDA_R_32F) memcpy(&out[i], &raw[i * 4], 4);
        else { __nv_bfloat16 h; memcpy(&h, &raw[i * 2], 2); out[i] = __bfloat162float(h); }
    }
    return out;
}
static void* dev_scalars(float a, float b) {
    float h[2] = {a, b};
    void* d;
    CUDA_OK(cudaMalloc(&d, sizeof h));
    CUDA_OK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
    return d;
}
// elements a column-major batch spans (the exact allocation: one less is out of bounds)
static size_t span(int rows, int cols, int ld, long long stride, int batch) { return (size_t)((batch - 1) * stride + (long long)(cols - 1) * ld + rows); }

// ----------------------------------------------------------------------------------------------
// GEMM cases

enum Api { SGEMM, GEMMEX, BATCHED, LT };
static const char* api_name[] = {"cublasSgemm", "cublasGemmEx", "cublasGemmStridedBatchedEx", "cublasLtMatmul"};
struct GemmCase {
    Api api;
    int ta, tb, m, n, k, lda, ldb, ldc;
    long long sa, sb, sc;
    int batch;
    cudaDataType_t it, ot; // inputs A/B, output C/D
    float alpha, beta;
    int dev;       // device pointer mode
    int nan_c;     // C filled with NaN (beta 0 must ignore it)
    int ldd;       // cuBLASLt out of place: D's ld (0: in place, C == D)
    const char* what;
};

// D = alpha op(A) op(B) + beta C in double; err = the bound on fp32 accumulation and epilogue
// rounding: gamma_{k+2} (|alpha| sum_p |a_ip b_pj| + |beta c_ij|), u = 2^-24 (Higham, dot products);
// a bf16 output adds its one rounding to nearest: 2^-8 of the magnitude (half an ulp, 8 bits)
static void run_gemm_case(const GemmCase& c) {
    int arows = c.ta ? c.k : c.m, acols = c.ta ? c.m : c.k, brows = c.tb ? c.n : c.k, bcols = c.tb ? c.k : c.n;
    Buf A = buf_make(c.it, span(arows, acols, c.lda, c.sa, c.batch), 1.0f);
    Buf B = buf_make(c.it, span(brows, bcols, c.ldb, c.sb, c.batch), 1.0f);
    Buf C = buf_make(c.ot, span(c.m, c.n, c.ldc, c.sc, c.batch), c.nan_c ? NAN : 1.0f);
    int ldd = c.ldd ? c.ldd : c.ldc;
    Buf D = c.ldd ? buf_make(c.ot, span(c.m, c.n, ldd, (long long)ldd * c.n, c.batch), 3.0f) : C; // 3: a pattern beside the outputs
    long long sd = c.ldd ? (long long)ldd * c.n : c.sc;
    float hs[2] = {c.alpha, c.beta};
    void* ds = c.dev ? dev_scalars(c.alpha, c.beta) : NULL;
    const float* pa = c.dev ? (const float*)ds : &hs[0];
    const float* pb = c.dev ? (const float*)ds + 1 : &hs[1];
    cublasOperation_t oa = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    int st = -1;
    if (c.api != LT) {
        cublasHandle_t h;
        ST_OK(cublasCreate(&h));
        ST_OK(cublasSetStream(h, 0));
        if (c.dev) ST_OK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE));
        if (c.api == SGEMM)
            st = CALL("cublasSgemm", cublasSgemm(h, oa, ob, c.m, c.n, c.k, pa, (const float*)A.d, c.lda, (const float*)B.d, c.ldb, pb, (float*)C.d, c.ldc));
        else if (c.api == GEMMEX)
            st = CALL("cublasGemmEx", cublasGemmEx(h, oa, ob, c.m, c.n, c.k, pa, A.d, c.it, c.lda, B.d, c.it, c.ldb, pb, C.d, c.ot, c.ldc,
                                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        else
            st = CALL("cublasGemmStridedBatchedEx",
                      cublasGemmStridedBatchedEx(h, oa, ob, c.m, c.n, c.k, pa, A.d, c.it, c.lda, c.sa, B.d, c.it, c.ldb, c.sb, pb, C.d, c.ot,
                                                 c.ldc, c.sc, c.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CUDA_OK(cudaDeviceSynchronize());
        ST_OK(cublasDestroy(h));
    } else {
        cublasLtHandle_t lt;
        ST_OK(cublasLtCreate(&lt));
        cublasLtMatmulDesc_t op;
        ST_OK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        int32_t pm = c.dev ? CUBLASLT_POINTER_MODE_DEVICE : CUBLASLT_POINTER_MODE_HOST;
        ST_OK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm));
        ST_OK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa));
        ST_OK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob));
        cublasLtMatrixLayout_t la, lb, lc, ld;
        ST_OK(cublasLtMatrixLayoutCreate(&la, c.it, arows, acols, c.lda));
        ST_OK(cublasLtMatrixLayoutCreate(&lb, c.it, brows, bcols, c.ldb));
        ST_OK(cublasLtMatrixLayoutCreate(&lc, c.ot, c.m, c.n, c.ldc));
        ST_OK(cublasLtMatrixLayoutCreate(&ld, c.ot, c.m, c.n, ldd));
        if (c.batch > 1) {
            cublasLtMatrixLayout_t ls[4] = {la, lb, lc, ld};
            long long ss[4] = {c.sa, c.sb, c.sc, sd};
            for (int q = 0; q < 4; q++) {
                int32_t bc = c.batch;
                int64_t s64 = ss[q];
                ST_OK(cublasLtMatrixLayoutSetAttribute(ls[q], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
                ST_OK(cublasLtMatrixLayoutSetAttribute(ls[q], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s64, sizeof s64));
            }
        }
        cublasLtMatmulPreference_t pref;
        ST_OK(cublasLtMatmulPreferenceCreate(&pref));
        size_t ws_bytes = 1 << 16;
        ST_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes));
        uint32_t al = (uint32_t)tbytes(c.it), alo = (uint32_t)tbytes(c.ot);
        ST_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
        ST_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
        ST_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alo, sizeof alo));
        ST_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alo, sizeof alo));
        cublasLtMatmulHeuristicResult_t heur;
        int found = 0;
        ST_OK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, ld, pref, 1, &heur, &found));
        check(found == 1 && heur.workspaceSize <= ws_bytes, "%s: heuristic found %d algorithm, workspace %zu <= preference %zu", c.what, found,
              heur.workspaceSize, ws_bytes);
        uint32_t mask = 0;
        size_t written = 0;
        ST_OK(cublasLtMatmulAlgoCapGetAttribute(&heur.algo, CUBLASLT_ALGO_CAP_POINTER_MODE_MASK, &mask, sizeof mask, &written));
        void* ws;
        CUDA_OK(cudaMalloc(&ws, ws_bytes));
        st = CALL("cublasLtMatmul", cublasLtMatmul(lt, op, pa, A.d, la, B.d, lb, pb, C.d, lc, D.d, ld, &heur.algo, ws, ws_bytes, 0));
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaFree(ws));
        ST_OK(cublasLtMatmulPreferenceDestroy(pref));
        ST_OK(cublasLtMatrixLayoutDestroy(la)); ST_OK(cublasLtMatrixLayoutDestroy(lb));
        ST_OK(cublasLtMatrixLayoutDestroy(lc)); ST_OK(cublasLtMatrixLayoutDestroy(ld));
        ST_OK(cublasLtMatmulDescDestroy(op));
        ST_OK(cublasLtDestroy(lt));
    }
    std::vector<float> got = buf_read(D);
    double worst = 0.0; // worst |error| / bound over the outputs
    long bad_pad = 0, nonfinite = 0;
    std::vector<char> is_out(D.v.size(), 0);
    const double u32 = ldexp(1.0, -24), ubf = ldexp(1.0, -8);
    double gam = (c.k + 2) * u32 / (1.0 - (c.k + 2) * u32);
    for (int b = 0; b < c.batch; b++)
        for (int j = 0; j < c.n; j++)
            for (int i = 0; i < c.m; i++) {
                double acc = 0.0, mag = 0.0;
                for (int p = 0; p < c.k; p++) {
                    double a = c.ta ? A.v[(size_t)(b * c.sa + (long long)i * c.lda + p)] : A.v[(size_t)(b * c.sa + (long long)p * c.lda + i)];
                    double bb = c.tb ? B.v[(size_t)(b * c.sb + (long long)p * c.ldb + j)] : B.v[(size_t)(b * c.sb + (long long)j * c.ldb + p)];
                    acc += a * bb;
                    mag += fabs(a * bb);
                }
                double cv = c.beta != 0.0f ? C.v[(size_t)(b * c.sc + (long long)j * c.ldc + i)] : 0.0;
                double ref = c.alpha * acc + c.beta * cv;
                double err32 = gam * (fabs(c.alpha) * mag + fabs(c.beta * cv));
                double bound = err32 + (c.ot == CUDA_R_16BF ? ubf * (fabs(ref) + err32) : 0.0) + 1e-30;
                size_t o = (size_t)(b * sd + (long long)j * ldd + i);
                is_out[o] = 1;
                if (!isfinite(got[o])) nonfinite++;
                double r = fabs(got[o] - ref) / bound;
                if (!(r <= worst)) worst = r; // NaN makes it NaN
            }
    for (size_t o = 0; o < got.size(); o++)
        if (!is_out[o] && !(got[o] == D.v[o] || (isnan(got[o]) && isnan(D.v[o])))) bad_pad++;
    check(st == 0 && worst <= 1.0 && nonfinite == 0 && bad_pad == 0,
          "%s: %s %c%c m%d n%d k%d ld %d/%d/%d batch %d: status %d, worst error %.3f of its bound, %ld non-finite, %ld bytes beside the "
          "outputs changed", c.what, api_name[c.api], c.ta ? 'T' : 'N', c.tb ? 'T' : 'N', c.m, c.n, c.k, c.lda, c.ldb, ldd, c.batch, st,
          worst, nonfinite, bad_pad);
    CUDA_OK(cudaFree(A.d)); CUDA_OK(cudaFree(B.d)); CUDA_OK(cudaFree(C.d));
    if (c.ldd) CUDA_OK(cudaFree(D.d));
    if (ds) CUDA_OK(cudaFree(ds));
}

static void test_gemms(void) {
    const cudaDataType_t F = CUDA_R_32F, H = CUDA_R_16BF;
    const GemmCase cases[] = {
        // galore.cuh: project back (N,N, beta 0 over NaN and beta 1), range finder (T,N / N,N with lda = the other side), svd.cu (N,T)
        {SGEMM, 0, 0, 24, 10, 6, 24, 6, 24, 0, 0, 0, 1, F, F, 0.5f, 0.0f, 0, 1, 0, "project_back beta 0 over NaN"},
        {SGEMM, 0, 0, 24, 10, 6, 24, 6, 24, 0, 0, 0, 1, F, F, 0.5f, 1.0f, 0, 0, 0, "Fira's beta 1"},
        {SGEMM, 1, 0, 9, 5, 31, 31, 31, 9, 0, 0, 0, 1, F, F, 1.0f, 0.0f, 0, 0, 0, "range finder Z = A^T Q"},
        {SGEMM, 0, 1, 13, 17, 7, 15, 19, 14, 0, 0, 0, 1, F, F, 1.0f, 0.0f, 0, 0, 0, "svd.cu U V^T, ld > rows"},
        {SGEMM, 1, 1, 8, 6, 5, 5, 6, 8, 0, 0, 0, 1, F, F, -2.0f, 0.25f, 1, 0, 0, "T,T device alpha/beta"},
        // galore_gpu_project: bf16 in, fp32 or bf16 out
        {GEMMEX, 1, 0, 4, 12, 40, 40, 40, 4, 0, 0, 0, 1, H, F, 1.0f, 0.0f, 0, 1, 0, "project right, fp32 R"},
        {GEMMEX, 0, 1, 40, 4, 12, 40, 4, 40, 0, 0, 0, 1, H, H, 1.0f, 1.0f, 0, 0, 0, "project left, bf16 accumulator"},
        // llama_kernels.cuh's cublasGemmEx fallback: bf16 everywhere, device alpha/beta, odd shapes
        {GEMMEX, 0, 0, 33, 7, 65, 35, 66, 34, 0, 0, 0, 1, H, H, 1.0f, 0.0f, 1, 1, 0, "fallback N,N device mode"},
        {GEMMEX, 1, 0, 7, 9, 64, 64, 64, 8, 0, 0, 0, 1, H, H, 1.0f, 1.0f, 0, 0, 0, "fallback T,N residual beta 1"},
        // attention.cuh's fallback: strided batches over heads inside the qkv rows
        {BATCHED, 1, 0, 16, 16, 8, 40, 40, 16, 8, 16, 512, 2, H, F, 0.35f, 0.0f, 0, 1, 0, "S = scale K^T Q"},
        {BATCHED, 0, 0, 8, 16, 16, 40, 16, 32, 8, 512, 8, 2, H, H, 1.0f, 0.0f, 0, 1, 0, "out = V P into the rows of out"},
        {BATCHED, 0, 1, 8, 16, 16, 40, 16, 40, 8, 512, 8, 3, H, H, 1.0f, 1.0f, 0, 0, 0, "backward dV += accumulate"},
        // cuBLASLt (gemm_bf16_run): all four transposes, in place (C == D), host and device scalars
        {LT, 0, 0, 32, 8, 16, 32, 16, 32, 0, 0, 0, 1, H, H, 1.0f, 0.0f, 0, 1, 0, "matmul forward in place, beta 0 over NaN"},
        {LT, 1, 0, 24, 16, 40, 40, 40, 26, 0, 0, 0, 1, H, H, 1.0f, 1.0f, 0, 0, 0, "residual fused, beta 1, ld > rows"},
        {LT, 0, 1, 24, 40, 16, 24, 40, 24, 0, 0, 0, 1, H, H, 1.0f, 1.0f, 0, 0, 0, "weight gradient accumulate"},
        {LT, 1, 1, 6, 10, 12, 12, 10, 7, 0, 0, 0, 1, H, H, -0.5f, 0.75f, 1, 0, 0, "fused GaLore update, device alpha/beta"},
        // cuBLASLt out of place and batched through layout attributes
        {LT, 0, 0, 12, 5, 9, 12, 9, 12, 0, 0, 0, 1, H, F, 2.0f, 1.0f, 0, 0, 14, "out of place, fp32 C/D with another ld"},
        {LT, 1, 0, 8, 6, 4, 4, 4, 8, 40, 30, 60, 3, H, H, 1.0f, 0.5f, 0, 0, 0, "strided batch"},
    };
    for (const GemmCase& c : cases) run_gemm_case(c);
}

// ----------------------------------------------------------------------------------------------
// solvers: LAPACK's test criteria (its xCHKBD / xDRVBD ratios ||A - U S V^T|| / (||A|| max(m,n) eps)
// and ||I - U^T U|| / (m eps)), passing below LAPACK's own threshold of 30

static std::vector<float> dev_read_f(const float* d, size_t n) {
    std::vector<float> h(n);
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost));
    return h;
}
static float* dev_f(const std::vector<float>& h) {
    float* d;
    CUDA_OK(cudaMalloc((void**)&d, h.empty() ? 4 : h.size() * 4));
    if (!h.empty()) CUDA_OK(cudaMemcpy(d, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    return d;
}
static int dev_info(const int* d) {
    int v = 0;
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(&v, d, sizeof v, cudaMemcpyDeviceToHost));
    return v;
}
// ratio of ||a - u diag(s) v^T||_F to ||a||_F max(m,n) eps; u (m x k, ldu), v (n x k, ldv: columns)
static double svd_ratio(const std::vector<float>& a, int m, int n, const std::vector<float>& u, int ldu, const std::vector<float>& s,
                        const std::vector<float>& v, int ldv, int vt_rows) {
    int k = m < n ? m : n;
    double num = 0.0, den = 0.0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double r = 0.0;
            for (int p = 0; p < k; p++) {
                double vjp = vt_rows ? v[(size_t)j * ldv + p] : v[(size_t)p * ldv + j]; // V^T stored (k x n) or V (n x k)
                r += (double)u[(size_t)p * ldu + i] * s[p] * vjp;
            }
            double x = a[(size_t)j * m + i];
            num += (x - r) * (x - r);
            den += x * x;
        }
    return sqrt(num) / (sqrt(den) * (m > n ? m : n) * ldexp(1.0, -24));
}
// ||I - Q^T Q||_F / (rows eps) over the k columns of q (rows x k, ld)
static double orth_ratio(const std::vector<float>& q, int rows, int k, int ld) {
    double num = 0.0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double d = 0.0;
            for (int i = 0; i < rows; i++) d += (double)q[(size_t)a * ld + i] * q[(size_t)b * ld + i];
            d -= a == b;
            num += d * d;
        }
    return sqrt(num) / (rows * ldexp(1.0, -24));
}
static int descending(const std::vector<float>& s, int k) {
    for (int i = 0; i + 1 < k; i++) if (!(s[i] >= s[i + 1] && s[i + 1] >= 0.0f)) return 0;
    return 1;
}
static std::vector<float> rand_mat(int m, int n) { std::vector<float> a((size_t)m * n); for (float& x : a) x = frand(); return a; }

static void test_gesvdj(cusolverDnHandle_t h, gesvdjInfo_t p, int m, int n) {
    int k = m < n ? m : n, lw = 0;
    std::vector<float> a = rand_mat(m, n);
    float *dA = dev_f(a), *dS = dev_f(std::vector<float>(k)), *dU = dev_f(std::vector<float>((size_t)m * k)), *dV = dev_f(std::vector<float>((size_t)n * k));
    int* dinfo;
    CUDA_OK(cudaMalloc((void**)&dinfo, sizeof(int)));
    int sentinel = -77;
    CUDA_OK(cudaMemcpy(dinfo, &sentinel, sizeof sentinel, cudaMemcpyHostToDevice));
    ST_OK(cusolverDnSgesvdj_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, 1, m, n, dA, m, dS, dU, m, dV, n, &lw, p));
    float* work = dev_f(std::vector<float>((size_t)lw));
    int st = CALL("cusolverDnSgesvdj", cusolverDnSgesvdj(h, CUSOLVER_EIG_MODE_VECTOR, 1, m, n, dA, m, dS, dU, m, dV, n, work, lw, dinfo, p));
    int info = dev_info(dinfo);
    std::vector<float> s = dev_read_f(dS, k), u = dev_read_f(dU, (size_t)m * k), v = dev_read_f(dV, (size_t)n * k), ad = dev_read_f(dA, a.size());
    double r = svd_ratio(a, m, n, u, m, s, v, n, 0), ou = orth_ratio(u, m, k, m), ov = orth_ratio(v, n, k, n);
    check(st == 0 && info == 0 && r < 30 && ou < 30 && ov < 30 && descending(s, k) && isnan(ad[0]),
          "gesvdj econ %d x %d: status %d, devInfo %d (device, was %d), ||A - U S V^T|| ratio %.2f, U %.2f, V %.2f orthogonality "
          "ratios (< 30), S descending %d, A destroyed (NaN) %d, lwork %d", m, n, st, info, sentinel, r, ou, ov, descending(s, k),
          (int)isnan(ad[0]), lw);
    CUDA_OK(cudaFree(dA)); CUDA_OK(cudaFree(dS)); CUDA_OK(cudaFree(dU)); CUDA_OK(cudaFree(dV)); CUDA_OK(cudaFree(work)); CUDA_OK(cudaFree(dinfo));
}

// galore.cuh's two gesvd calls: 'S','S' (U m x k, V^T k x n) and 'N','A' (V^T n x n only) with rwork
static void test_gesvd(cusolverDnHandle_t h, int m, int n, char ju, char jv) {
    int k = m < n ? m : n, lw = 0;
    std::vector<float> a = rand_mat(m, n);
    int ucols = ju == 'N' ? 0 : k, vtr = jv == 'A' ? n : k;
    float *dA = dev_f(a), *dS = dev_f(std::vector<float>(k)), *dU = dev_f(std::vector<float>((size_t)m * (ucols ? ucols : 1))),
          *dVT = dev_f(std::vector<float>((size_t)vtr * n)), *rwork = dev_f(std::vector<float>(k));
    int* dinfo;
    CUDA_OK(cudaMalloc((void**)&dinfo, sizeof(int)));
    ST_OK(cusolverDnSgesvd_bufferSize(h, m, n, &lw));
    float* work = dev_f(std::vector<float>((size_t)lw, 5.0f));
    int st = CALL("cusolverDnSgesvd", cusolverDnSgesvd(h, ju, jv, m, n, dA, m, dS, dU, m, dVT, vtr, work, lw, rwork, dinfo));
    int info = dev_info(dinfo);
    std::vector<float> s = dev_read_f(dS, k), vt = dev_read_f(dVT, (size_t)vtr * n), w = dev_read_f(work, (size_t)lw);
    double r = 0.0, ou = 0.0;
    if (ucols) {
        std::vector<float> u = dev_read_f(dU, (size_t)m * k);
        r = svd_ratio(a, m, n, u, m, s, vt, vtr, 1);
        ou = orth_ratio(u, m, k, m);
    }
    // V^T's rows orthonormal: its transpose's columns
    std::vector<float> v((size_t)n * vtr);
    for (int i = 0; i < vtr; i++) for (int j = 0; j < n; j++) v[(size_t)i * n + j] = vt[(size_t)j * vtr + i];
    double ov = orth_ratio(v, n, vtr, n);
    check(st == 0 && info == 0 && r < 30 && ou < 30 && ov < 30 && descending(s, k) && isnan(w[0]),
          "gesvd '%c','%c' %d x %d: status %d, devInfo %d, reconstruction ratio %.2f, U %.2f, V^T %.2f orthogonality (< 30), S "
          "descending, workspace scribbled (NaN) %d", ju, jv, m, n, st, info, r, ou, ov, (int)isnan(w[0]));
    CUDA_OK(cudaFree(dA)); CUDA_OK(cudaFree(dS)); CUDA_OK(cudaFree(dU)); CUDA_OK(cudaFree(dVT)); CUDA_OK(cudaFree(rwork));
    CUDA_OK(cudaFree(work)); CUDA_OK(cudaFree(dinfo));
}

// galore_gpu_orthonormalize: geqrf + orgqr: Q orthonormal and Q R = A (R = Q^T A, upper triangular)
static void test_qr(cusolverDnHandle_t h, int m, int n) {
    std::vector<float> a = rand_mat(m, n);
    float *dA = dev_f(a), *tau = dev_f(std::vector<float>(n));
    int *dinfo, lq = 0, lo = 0;
    CUDA_OK(cudaMalloc((void**)&dinfo, sizeof(int)));
    ST_OK(cusolverDnSgeqrf_bufferSize(h, m, n, dA, m, &lq));
    ST_OK(cusolverDnSorgqr_bufferSize(h, m, n, n, dA, m, tau, &lo));
    int lw = lq > lo ? lq : lo;
    float* work = dev_f(std::vector<float>((size_t)lw));
    int s1 = CALL("cusolverDnSgeqrf", cusolverDnSgeqrf(h, m, n, dA, m, tau, work, lw, dinfo));
    int i1 = dev_info(dinfo);
    int s2 = CALL("cusolverDnSorgqr", cusolverDnSorgqr(h, m, n, n, dA, m, tau, work, lw, dinfo));
    int i2 = dev_info(dinfo);
    std::vector<float> q = dev_read_f(dA, a.size());
    // ||A - Q (Q^T A)|| / (||A|| m eps): Q spans A's columns
    double num = 0.0, den = 0.0;
    for (int j = 0; j < n; j++) {
        std::vector<double> r(n, 0.0);
        for (int p = 0; p < n; p++) for (int i = 0; i < m; i++) r[p] += (double)q[(size_t)p * m + i] * a[(size_t)j * m + i];
        for (int i = 0; i < m; i++) {
            double x = 0.0;
            for (int p = 0; p < n; p++) x += q[(size_t)p * m + i] * r[p];
            num += (x - a[(size_t)j * m + i]) * (x - a[(size_t)j * m + i]);
            den += (double)a[(size_t)j * m + i] * a[(size_t)j * m + i];
        }
    }
    double rr = sqrt(num) / (sqrt(den) * m * ldexp(1.0, -24)), oq = orth_ratio(q, m, n, m);
    check(s1 == 0 && s2 == 0 && i1 == 0 && i2 == 0 && rr < 30 && oq < 30,
          "geqrf + orgqr %d x %d: statuses %d %d, devInfo %d %d, ||A - Q Q^T A|| ratio %.2f, orthogonality %.2f (< 30)", m, n, s1, s2, i1, i2,
          rr, oq);
    CUDA_OK(cudaFree(dA)); CUDA_OK(cudaFree(tau)); CUDA_OK(cudaFree(work)); CUDA_OK(cudaFree(dinfo));
}

static void test_solvers(void) {
    cusolverDnHandle_t h;
    gesvdjInfo_t p;
    ST_OK(cusolverDnCreate(&h));
    ST_OK(cusolverDnSetStream(h, 0));
    ST_OK(cusolverDnCreateGesvdjInfo(&p));
    ST_OK(cusolverDnXgesvdjSetTolerance(p, 1.1920929e-07));
    ST_OK(cusolverDnXgesvdjSetMaxSweeps(p, 400));
    ST_OK(cusolverDnXgesvdjSetSortEig(p, 1));
    test_gesvdj(h, p, 20, 7);
    test_gesvdj(h, p, 6, 15);
    test_gesvd(h, 18, 9, 'S', 'S');
    test_gesvd(h, 12, 5, 'N', 'A');
    test_qr(h, 30, 6);
    ST_OK(cusolverDnDestroyGesvdjInfo(p));
    ST_OK(cusolverDnDestroy(h));
}

// ----------------------------------------------------------------------------------------------
// cuDNN: descriptors store, graphs are not supported (attention.cuh then takes its fallback)

static void test_dnn(void) {
    cudnnHandle_t h;
    ST_OK(cudnnCreate(&h));
    ST_OK(cudnnSetStream(h, 0));
    cudnnBackendDescriptor_t t, og;
    ST_OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    int64_t dims[4] = {2, 4, 16, 8}, got[4] = {0, 0, 0, 0}, cnt = 0;
    ST_OK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    ST_OK(cudnnBackendFinalize(t));
    cudnnStatus_t gs = cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, &cnt, got);
    check(gs == CUDNN_STATUS_SUCCESS && cnt == 4 && memcmp(dims, got, sizeof dims) == 0, "cuDNN tensor descriptor keeps its dimensions (%lld)",
          (long long)cnt);
    ST_OK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &og));
    ST_OK(cudnnBackendSetAttribute(og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t));
    cudnnStatus_t fs = cudnnBackendFinalize(og);
    char msg[256];
    cudnnGetLastErrorString(msg, sizeof msg);
    check(fs == CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN && msg[0] != 0 && cudnnGetVersion() >= 90000,
          "cuDNN operation graph finalize: %s (%s), version %zu", cudnnGetErrorString(fs), msg, cudnnGetVersion());
    ST_OK(cudnnBackendDestroyDescriptor(og));
    ST_OK(cudnnBackendDestroyDescriptor(t));
    ST_OK(cudnnDestroy(h));
}

// ----------------------------------------------------------------------------------------------
// NCCL, one rank: an exact copy for each type the program reduces; group launches at the end

static void test_nccl(void) {
    ncclUniqueId id;
    ncclComm_t comm;
    ST_OK(ncclGetUniqueId(&id));
    ST_OK(ncclCommInitRank(&comm, 1, id, 0));
    ncclDataType_t types[4] = {ncclBfloat16, ncclFloat, ncclDouble, ncclInt32};
    size_t sizes[4] = {2, 4, 8, 4};
    for (int q = 0; q < 4; q++) {
        size_t n = 37, bytes = n * sizes[q];
        std::vector<unsigned char> h(bytes), back(bytes), back2(bytes);
        for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)(i * 29 + q);
        void *src, *dst;
        CUDA_OK(cudaMalloc(&src, bytes)); CUDA_OK(cudaMalloc(&dst, bytes));
        CUDA_OK(cudaMemcpy(src, h.data(), bytes, cudaMemcpyHostToDevice));
        ST_OK(ncclGroupStart());
        ST_OK(CALL("ncclAllReduce", ncclAllReduce(src, dst, n, types[q], ncclSum, comm, 0)));
        ST_OK(CALL("ncclAllReduce", ncclAllReduce(src, src, n, types[q], ncclSum, comm, 0)));
        ST_OK(ncclGroupEnd());
        CUDA_OK(cudaDeviceSynchronize());
        CUDA_OK(cudaMemcpy(back.data(), dst, bytes, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(back2.data(), src, bytes, cudaMemcpyDeviceToHost));
        check(back == h && back2 == h, "ncclAllReduce one rank, type %d, out of place and in place: the values themselves", (int)types[q]);
        CUDA_OK(cudaFree(src)); CUDA_OK(cudaFree(dst));
    }
    ST_OK(ncclCommDestroy(comm));
}

// ----------------------------------------------------------------------------------------------
// planted defects: each runs in a child; it must end with the expected exit status (86: emu_fatal;
// otherwise the library status the call returned, which the child exits with) and ONE line on
// stderr, "emu: ..." naming the call at its line here

static void defect(const char* name, int (*fn)(void), int want_exit, const char* want_text) {
    int err[2], exp[2];
    if (pipe(err) != 0 || pipe(exp) != 0) { perror("pipe"); exit(1); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(err[0]); close(exp[0]);
        dup2(err[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1); // the child's own prints stay out of the log
        expect_fd = exp[1];
        int rc = fn();
        cudaDeviceSynchronize();
        _exit(rc);
    }
    close(err[1]); close(exp[1]);
    std::string out, site;
    char b[4096];
    ssize_t k;
    while ((k = read(err[0], b, sizeof b)) > 0) out.append(b, (size_t)k);
    while ((k = read(exp[0], b, sizeof b)) > 0) site.append(b, (size_t)k);
    close(err[0]); close(exp[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int lines = 0;
    for (char ch : out) lines += ch == '\n';
    int ok = code == want_exit && lines == 1 && out.rfind("emu: ", 0) == 0 && !site.empty() && out.find(site) != std::string::npos &&
             out.find(want_text) != std::string::npos;
    if (!out.empty() && out.back() == '\n') out.pop_back();
    check(ok, "planted defect, %s: exit %d (want %d), %d line(s): %s", name, code, want_exit, lines, out.c_str());
}

static int d_lwork_small(void) {
    cusolverDnHandle_t h;
    cusolverDnCreate(&h);
    int m = 16, n = 4, lw = 0, *info;
    float *a, *tau, *work;
    cudaMalloc((void**)&a, m * n * 4); cudaMalloc((void**)&tau, n * 4); cudaMalloc((void**)&info, 4);
    cusolverDnSgeqrf_bufferSize(h, m, n, a, m, &lw);
    cudaMalloc((void**)&work, (size_t)lw * 4);
    return CALL("cusolverDnSgeqrf", cusolverDnSgeqrf(h, m, n, a, m, tau, work, lw - 1, info));
}
static int d_work_short(void) {
    cusolverDnHandle_t h;
    gesvdjInfo_t p;
    cusolverDnCreate(&h);
    cusolverDnCreateGesvdjInfo(&p);
    int m = 10, n = 6, lw = 0, *info;
    float *a, *s, *u, *v, *work;
    cudaMalloc((void**)&a, m * n * 4); cudaMalloc((void**)&s, n * 4); cudaMalloc((void**)&u, m * n * 4); cudaMalloc((void**)&v, n * n * 4);
    cudaMalloc((void**)&info, 4);
    cusolverDnSgesvdj_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, 1, m, n, a, m, s, u, m, v, n, &lw, p);
    cudaMalloc((void**)&work, (size_t)(lw - 1) * 4); // one float short of the lwork passed
    return CALL("cusolverDnSgesvdj", cusolverDnSgesvdj(h, CUSOLVER_EIG_MODE_VECTOR, 1, m, n, a, m, s, u, m, v, n, work, lw, info, p));
}
static int d_gesvd_wide(void) {
    cusolverDnHandle_t h;
    cusolverDnCreate(&h);
    int m = 4, n = 9, *info;
    float *a, *s, *u, *vt, *work;
    cudaMalloc((void**)&a, m * n * 4); cudaMalloc((void**)&s, m * 4); cudaMalloc((void**)&u, m * m * 4); cudaMalloc((void**)&vt, m * n * 4);
    cudaMalloc((void**)&info, 4); cudaMalloc((void**)&work, 4096 * 4);
    return CALL("cusolverDnSgesvd", cusolverDnSgesvd(h, 'S', 'S', m, n, a, m, s, u, m, vt, m, work, 4096, NULL, info));
}
static cublasHandle_t d_blas(float** A, float** B, float** C, size_t na) {
    cublasHandle_t h;
    cublasCreate(&h);
    cudaMalloc((void**)A, na * 4); cudaMalloc((void**)B, 64 * 4); cudaMalloc((void**)C, 64 * 4);
    return h;
}
static int d_device_mode_host_alpha(void) {
    float *A, *B, *C, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = d_blas(&A, &B, &C, 64);
    cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE);
    return CALL("cublasSgemm", cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 4, B, 4, &zero, C, 4));
}
static int d_host_mode_device_alpha(void) {
    float *A, *B, *C;
    cublasHandle_t h = d_blas(&A, &B, &C, 64);
    void* ab = dev_scalars(1.0f, 0.0f);
    return CALL("cublasGemmEx", cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, ab, A, CUDA_R_32F, 4, B, CUDA_R_32F, 4, (float*)ab + 1, C,
                                             CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
// A (m x k = 5 x 3, lda 7) spans (3-1)*7 + 5 = 19 floats: 18 allocated reads one past the end
static int d_gemm_past_end(void) {
    float *A, *B, *C, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = d_blas(&A, &B, &C, 18);
    return CALL("cublasSgemm", cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 5, 4, 3, &one, A, 7, B, 3, &zero, C, 5));
}
static int d_gemm_exact_end(void) { // the same with 19: no error (the range is exact, not padded)
    float *A, *B, *C, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = d_blas(&A, &B, &C, 19);
    cudaMemset(A, 0, 19 * 4); cudaMemset(B, 0, 64 * 4);
    return CALL("cublasSgemm", cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 5, 4, 3, &one, A, 7, B, 3, &zero, C, 5));
}
// the last batch of C (3 batches, stride 20, 4 x 4 ld 4): spans 2*20 + 16 = 56 floats; 55 allocated
static int d_batched_past_end(void) {
    float *A, *B, *C, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = d_blas(&A, &B, &C, 64);
    cudaFree(C);
    cudaMalloc((void**)&C, 55 * 4);
    return CALL("cublasGemmStridedBatchedEx", cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_32F, 4, 0, B,
                                                                         CUDA_R_32F, 4, 0, &zero, C, CUDA_R_32F, 4, 20, 3, CUBLAS_COMPUTE_32F,
                                                                         CUBLAS_GEMM_DEFAULT));
}
static int d_destroyed_handle(void) {
    float *A, *B, *C, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = d_blas(&A, &B, &C, 64);
    cublasDestroy(h);
    return CALL("cublasSgemm", cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, 4, B, 4, &zero, C, 4));
}

// cuBLASLt: a 16 x 16 x 16 bf16 GEMM; variants plant one defect each
enum LtDefect { LT_DEVICE_MODE_HOST_ALPHA, LT_INPLACE_LAYOUTS, LT_WS_SMALL, LT_WS_SHORT_ALLOC, LT_MISALIGNED };
static int lt_defect(LtDefect which) {
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (which == LT_DEVICE_MODE_HOST_ALPHA) {
        int32_t pm = CUBLASLT_POINTER_MODE_DEVICE;
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm);
    }
    cublasLtMatrixLayout_t l, l2;
    cublasLtMatrixLayoutCreate(&l, CUDA_R_16BF, 16, 16, 16);
    cublasLtMatrixLayoutCreate(&l2, CUDA_R_16BF, 16, 16, 18);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    size_t ws_bytes = 4096;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, l, l, l, l, pref, 1, &heur, &found);
    char *A, *B, *D, *ws;
    cudaMalloc((void**)&A, 16 * 16 * 2 + 2); cudaMalloc((void**)&B, 16 * 16 * 2); cudaMalloc((void**)&D, 16 * 18 * 2);
    cudaMalloc((void**)&ws, which == LT_WS_SHORT_ALLOC ? ws_bytes - 256 : ws_bytes);
    float one = 1.0f, zero = 0.0f;
    if (which == LT_MISALIGNED) A += 2; // promised 256 (the default preference), given 2
    return CALL("cublasLtMatmul", cublasLtMatmul(lt, op, &one, A, l, B, l, &zero, D, which == LT_INPLACE_LAYOUTS ? l2 : l, D, l, &heur.algo, ws,
                                                 which == LT_WS_SMALL ? ws_bytes / 2 : ws_bytes, 0));
}
static int d_lt_device_host(void) { return lt_defect(LT_DEVICE_MODE_HOST_ALPHA); }
static int d_lt_inplace(void) { return lt_defect(LT_INPLACE_LAYOUTS); }
static int d_lt_ws_small(void) { return lt_defect(LT_WS_SMALL); }
static int d_lt_ws_alloc(void) { return lt_defect(LT_WS_SHORT_ALLOC); }
static int d_lt_misaligned(void) { return lt_defect(LT_MISALIGNED); }
static int d_nccl_two_ranks(void) {
    ncclUniqueId id;
    ncclComm_t c;
    ncclGetUniqueId(&id);
    return CALL("ncclCommInitRank", ncclCommInitRank(&c, 2, id, 0));
}

static void test_defects(void) {
    const int FATAL = EMU_EXIT;
    defect("cuSOLVER lwork below its query", d_lwork_small, CUSOLVER_STATUS_INVALID_VALUE, "lwork");
    defect("cuSOLVER work buffer shorter than lwork floats", d_work_short, FATAL, "work");
    defect("gesvd with m < n", d_gesvd_wide, CUSOLVER_STATUS_INVALID_VALUE, "m >= n");
    defect("pointer mode DEVICE, host alpha", d_device_mode_host_alpha, FATAL, "alpha");
    defect("pointer mode HOST, device alpha", d_host_mode_device_alpha, FATAL, "alpha");
    defect("GEMM reading one float past A's allocation", d_gemm_past_end, FATAL, "A");
    defect("strided batch writing past C's allocation", d_batched_past_end, FATAL, "C");
    defect("destroyed cuBLAS handle", d_destroyed_handle, FATAL, "destroyed");
    defect("cuBLASLt DEVICE mode, host alpha", d_lt_device_host, FATAL, "alpha");
    defect("cuBLASLt in place C == D with different layouts", d_lt_inplace, FATAL, "C == D");
    defect("cuBLASLt workspace size below the algorithm's need", d_lt_ws_small, CUBLAS_STATUS_INVALID_VALUE, "workspace");
    defect("cuBLASLt workspace allocation shorter than its size", d_lt_ws_alloc, FATAL, "workspace");
    defect("cuBLASLt pointer less aligned than the algorithm's", d_lt_misaligned, CUBLAS_STATUS_NOT_SUPPORTED, "aligned");
    defect("NCCL with 2 ranks", d_nccl_two_ranks, FATAL, "ranks");
    // the bounds above are exact: the same GEMM with A's full span passes without a line
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { int r = d_gemm_exact_end(); cudaDeviceSynchronize(); _exit(r); }
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the same GEMM with A allocated to its exact span (19 floats) runs (exit %d)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void) {
    test_gemms();
    test_solvers();
    test_dnn();
    test_nccl();
    test_defects();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
