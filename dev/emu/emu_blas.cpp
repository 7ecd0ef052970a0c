// emu_blas.cpp: cuBLAS and cuBLASLt on the CPU, for the emulated GPU (dev/emu, issue 21).
//
// What it models: the entry points the program calls, with their real signatures (the CUDA 13
// headers), as stream-ordered ops (emu_enqueue on the handle's stream, or the stream given to
// cublasLtMatmul) that declare the exact device bytes they read and write, so the runtime checks
// bounds, liveness and cross-stream races. The GEMM itself goes through CBLAS in fp32: bf16 inputs
// widened exactly, fp32 accumulation, D = alpha * op(A) op(B) + beta * C in fp32 and rounded to the
// output type once (bf16: round to nearest even, cuda_bf16.h's __float2bfloat16_rn). beta == 0
// never reads C (NaN there is ignored, as documented); alpha == 0 still multiplies (0 * NaN = NaN:
// the documentation promises nothing else, so a NaN operand behind alpha = 0 shows here).
// Strict where the documentation is:
//   - pointer mode: host mode with a device alpha/beta (the real library dereferences it on the
//     host: a crash) or device mode with a pageable host alpha/beta (the kernel reads a host
//     address: an illegal address) stop with one line; host scalars are copied at the call,
//     device ones read when the op runs (stream order);
//   - leading dimensions (ld >= rows), m, n, k, batch >= 0: CUBLAS_STATUS_INVALID_VALUE;
//   - type combinations: fp32 compute with fp32 scale, A = B in {bf16, fp32}, C = D in {bf16, fp32}
//     (fp32 inputs: fp32 output only); anything else CUBLAS_STATUS_NOT_SUPPORTED (the real library
//     supports more, e.g. fp16; the program uses these);
//   - cuBLASLt: C == D only with identical layouts (the documented in-place case); C != D with the
//     same type, shape and batch; the workspace given must cover the algorithm's need and be device
//     memory of the size claimed; the algorithm keeps the alignment its preference promised (the
//     heuristic's default 256 bytes), and a pointer less aligned is refused (NOT_SUPPORTED).
// What it cannot show: which algorithm a real card picks, its alignment/ld rules beyond the ones
// above, its workspace needs (the emulated algorithm needs all the preference allows: the worst a
// real heuristic may return), TF32 or other math modes (stored, ignored: fp32 stays fp32), atomics
// (deterministic here always), epilogues other than the default (NOT_SUPPORTED: the program sets
// none), the summation order of a real kernel (OpenBLAS's differs by CPU; bounds, not bits).
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cblas.h>
#include <stdint.h>
#include <string.h>
#include <vector>
#include "emu_internal.h"

struct cublasContext { uint32_t magic; cudaStream_t stream; cublasPointerMode_t pmode; cublasMath_t math; cublasAtomicsMode_t atomics; };
struct cublasLtContext { uint32_t magic; };
#define BLAS_MAGIC 0xb1a5b1a5u
#define BLAS_DEAD 0xdeadb1a5u

// ----------------------------------------------------------------------------------------------
// the GEMM (runs inside an op: device memory readable there)

struct EmuMat { const void* p; cudaDataType_t t; int64_t rows, cols, ld, stride; }; // as stored, column-major

static size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

// bytes from p that the batch of column-major matrices spans (0: none read)
static size_t mat_span(const EmuMat& a, int64_t batch) {
    if (a.rows == 0 || a.cols == 0 || batch == 0) return 0;
    return (size_t)((batch - 1) * a.stride + (a.cols - 1) * a.ld + a.rows) * type_bytes(a.t);
}

static float mat_get(const EmuMat& a, int64_t b, int64_t i, int64_t j) {
    int64_t off = b * a.stride + j * a.ld + i;
    if (a.t == CUDA_R_32F) return ((const float*)a.p)[off];
    return __bfloat162float(((const __nv_bfloat16*)a.p)[off]);
}
static void mat_put(const EmuMat& a, int64_t b, int64_t i, int64_t j, float v) {
    int64_t off = b * a.stride + j * a.ld + i;
    if (a.t == CUDA_R_32F) ((float*)a.p)[off] = v;
    else ((__nv_bfloat16*)a.p)[off] = __float2bfloat16_rn(v);
}

// one batch entry of a as packed fp32 (ld = rows), or a itself when already fp32 (ld kept)
static const float* mat_fp32(const EmuMat& a, int64_t b, std::vector<float>& buf, int64_t* ld) {
    if (a.t == CUDA_R_32F) { *ld = a.ld; return (const float*)a.p + b * a.stride; }
    buf.resize((size_t)(a.rows * a.cols));
    for (int64_t j = 0; j < a.cols; j++)
        for (int64_t i = 0; i < a.rows; i++) buf[(size_t)(j * a.rows + i)] = mat_get(a, b, i, j);
    *ld = a.rows;
    return buf.data();
}

struct GemmOp {
    int ta, tb;
    int64_t m, n, k, batch;
    EmuMat A, B, C, D;
    float alpha, beta;               // host mode: copied at the call
    const float *d_alpha, *d_beta;   // device mode: read when the op runs (NULL in host mode)
};

static void gemm_exec(const GemmOp& g) {
    float alpha = g.d_alpha ? *g.d_alpha : g.alpha, beta = g.d_beta ? *g.d_beta : g.beta;
    std::vector<float> abuf, bbuf, acc((size_t)(g.m * g.n));
    for (int64_t b = 0; b < g.batch; b++) {
        if (g.k > 0) {
            int64_t lda, ldb;
            const float* a = mat_fp32(g.A, b, abuf, &lda);
            const float* bb = mat_fp32(g.B, b, bbuf, &ldb);
            cblas_sgemm(CblasColMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans, (int)g.m, (int)g.n,
                        (int)g.k, 1.0f, a, (int)lda, bb, (int)ldb, 0.0f, acc.data(), (int)g.m);
        } else {
            std::fill(acc.begin(), acc.end(), 0.0f);
        }
        for (int64_t j = 0; j < g.n; j++)
            for (int64_t i = 0; i < g.m; i++) {
                float v = alpha * acc[(size_t)(j * g.m + i)];
                if (beta != 0.0f) v += beta * mat_get(g.C, b, i, j); // beta == 0: C is not read
                mat_put(g.D, b, i, j, v);
            }
    }
}

// the checks every GEMM entry point shares. Returns a status after emu_warn's line, or SUCCESS.
static cublasStatus_t gemm_check(const GemmOp& g, cublasComputeType_t compute) {
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) {
        emu_warn("m %lld, n %lld, k %lld, batch %lld: none may be negative (CUBLAS_STATUS_INVALID_VALUE)", (long long)g.m,
                 (long long)g.n, (long long)g.k, (long long)g.batch);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const EmuMat* ms[4] = {&g.A, &g.B, &g.C, &g.D};
    const char* names = "ABCD";
    for (int q = 0; q < 4; q++) {
        const EmuMat& a = *ms[q];
        if (a.ld < (a.rows > 1 ? a.rows : 1)) {
            emu_warn("ld%c %lld < max(1, rows %lld) of %c (CUBLAS_STATUS_INVALID_VALUE)", names[q] + 32, (long long)a.ld,
                     (long long)a.rows, names[q]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
        if (a.stride < 0) {
            emu_warn("batch stride of %c is %lld: the emulation takes strides >= 0 (CUBLAS_STATUS_NOT_SUPPORTED)", names[q],
                     (long long)a.stride);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    }
    int in_ok = g.A.t == g.B.t && (g.A.t == CUDA_R_16BF || g.A.t == CUDA_R_32F);
    int out_ok = g.C.t == g.D.t && (g.D.t == CUDA_R_32F || (g.D.t == CUDA_R_16BF && g.A.t == CUDA_R_16BF));
    if (compute != CUBLAS_COMPUTE_32F || !in_ok || !out_ok) {
        emu_warn("types A %d, B %d, C %d, compute %d: the emulation implements fp32 compute with bf16 or fp32 inputs "
                 "(bf16 or fp32 output) (CUBLAS_STATUS_NOT_SUPPORTED)", (int)g.A.t, (int)g.B.t, (int)g.D.t, (int)compute);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// alpha and beta as the pointer mode says: host (copied now) or device (checked now, read when the
// op runs). A pinned host pointer is device-readable (UVA), so device mode accepts it too.
static void gemm_scalars(GemmOp* g, int device_mode, const void* alpha, const void* beta) {
    const void* ps[2] = {alpha, beta};
    const char* nm[2] = {"alpha", "beta"};
    for (int q = 0; q < 2; q++) {
        EmuPtrKind kind = emu_ptr_kind(ps[q]);
        if (kind == EMU_PTR_NULL) emu_fatal("%s is NULL", nm[q]);
        if (device_mode && kind != EMU_PTR_DEVICE && kind != EMU_PTR_PINNED)
            emu_fatal("%s is a host pointer but the pointer mode is DEVICE (the kernel would read a host address); hint: "
                      "pass a device float or set the pointer mode to HOST", nm[q]);
        if (!device_mode && kind != EMU_PTR_HOST && kind != EMU_PTR_PINNED)
            emu_fatal("%s is %s pointer but the pointer mode is HOST (the library would dereference it on the host); hint: "
                      "pass a host float or set the pointer mode to DEVICE", nm[q], kind == EMU_PTR_DEVICE ? "a device" : "a freed/invalid");
        if (kind == EMU_PTR_DEVICE) emu_require_device(ps[q], sizeof(float), nm[q]);
    }
    if (device_mode) {
        g->d_alpha = (const float*)alpha; g->d_beta = (const float*)beta;
    } else {
        g->alpha = *(const float*)alpha; g->beta = *(const float*)beta; g->d_alpha = g->d_beta = NULL;
    }
}

// queue the GEMM on stream s with its exact ranges (A, B read; C read unless a host beta is 0; D
// written; device scalars read; extra: e.g. the cuBLASLt workspace)
static void gemm_enqueue(const GemmOp& g, cudaStream_t s, const char* name, std::vector<EmuRange> extra) {
    size_t sa = g.k > 0 ? mat_span(g.A, g.batch) : 0, sb = g.k > 0 ? mat_span(g.B, g.batch) : 0;
    size_t sc = mat_span(g.C, g.batch), sd = mat_span(g.D, g.batch);
    int reads_c = g.d_beta != NULL || g.beta != 0.0f;
    if (sa) emu_require_device(g.A.p, sa, "A");
    if (sb) emu_require_device(g.B.p, sb, "B");
    if (reads_c && sc) emu_require_device(g.C.p, sc, "C");
    if (sd) emu_require_device(g.D.p, sd, g.C.p == g.D.p ? "C" : "D");
    std::vector<EmuRange> r = {{g.A.p, sa, 0}, {g.B.p, sb, 0}, {g.D.p, sd, 1}};
    if (reads_c) r.push_back({g.C.p, sc, 0});
    if (g.d_alpha && emu_ptr_kind(g.d_alpha) == EMU_PTR_DEVICE) r.push_back({g.d_alpha, sizeof(float), 0});
    if (g.d_beta && emu_ptr_kind(g.d_beta) == EMU_PTR_DEVICE) r.push_back({g.d_beta, sizeof(float), 0});
    for (const EmuRange& e : extra) r.push_back(e);
    std::vector<EmuRange> nz;
    for (const EmuRange& e : r) if (e.bytes) nz.push_back(e);
    GemmOp op = g;
    emu_enqueue(s, name, nz, [op]() { gemm_exec(op); });
}

// ----------------------------------------------------------------------------------------------
// cuBLAS

static cublasStatus_t blas_handle_check(cublasHandle_t h) {
    if (h == NULL) { emu_warn("NULL handle (CUBLAS_STATUS_NOT_INITIALIZED)"); return CUBLAS_STATUS_NOT_INITIALIZED; }
    if (h->magic != BLAS_MAGIC) emu_fatal("handle %p is %s", (void*)h, h->magic == BLAS_DEAD ? "destroyed" : "not a cuBLAS handle");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
    if (handle == NULL) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext{BLAS_MAGIC, 0, CUBLAS_POINTER_MODE_HOST, CUBLAS_DEFAULT_MATH, CUBLAS_ATOMICS_NOT_ALLOWED};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    handle->magic = BLAS_DEAD; // kept (not freed) so a later use is named, not undefined
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    emu_require_stream(streamId, "cuBLAS stream");
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
    handle->pmode = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t* mode) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    *mode = handle->pmode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    handle->math = mode; // stored, not modelled: fp32 products stay fp32 (see the header)
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t mode) {
    cublasStatus_t st = blas_handle_check(handle);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    handle->atomics = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown error";
}

// the legacy API's GEMM: C (m x n, ldc) in place, A/B as stored (ta: A is k x m)
static cublasStatus_t blas_gemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                                const void* alpha, const void* A, cudaDataType_t at, int lda, long long sa, const void* B,
                                cudaDataType_t bt, int ldb, long long sb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                                long long sc, int batch, cublasComputeType_t compute, const char* name) {
    cublasStatus_t st = blas_handle_check(h);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    for (cublasOperation_t op : {transa, transb})
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) {
            emu_warn("operation %d: the emulation implements CUBLAS_OP_N and CUBLAS_OP_T (CUBLAS_STATUS_NOT_SUPPORTED)", (int)op);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    GemmOp g;
    g.ta = transa == CUBLAS_OP_T; g.tb = transb == CUBLAS_OP_T;
    g.m = m; g.n = n; g.k = k; g.batch = batch;
    g.A = {A, at, g.ta ? k : m, g.ta ? m : k, lda, sa};
    g.B = {B, bt, g.tb ? n : k, g.tb ? k : n, ldb, sb};
    g.C = {C, ct, m, n, ldc, sc};
    g.D = g.C;
    st = gemm_check(g, compute);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    emu_require_stream(h->stream, "cuBLAS stream");
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS; // quick return, scalars unread
    gemm_scalars(&g, h->pmode == CUBLAS_POINTER_MODE_DEVICE, alpha, beta);
    gemm_enqueue(g, h->stream, name, {});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                                           const float* beta, float* C, int ldc) {
    return blas_gemm(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1,
                     CUBLAS_COMPUTE_32F, "cublasSgemm");
}
cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                                         const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                                         cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo; // every algorithm computes the same product here
    return blas_gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1, computeType,
                     "cublasGemmEx");
}
cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                                       int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                                                       long long int strideA, const void* B, cudaDataType Btype, int ldb,
                                                       long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                                       long long int strideC, int batchCount, cublasComputeType_t computeType,
                                                       cublasGemmAlgo_t algo) {
    (void)algo;
    return blas_gemm(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC,
                     batchCount, computeType, "cublasGemmStridedBatchedEx");
}

// ----------------------------------------------------------------------------------------------
// cuBLASLt: descriptors are our structs behind the opaque pointer types

#define LT_DESC_MAGIC 0x17de5c00u
#define LT_LAYOUT_MAGIC 0x171a7000u
#define LT_PREF_MAGIC 0x17f4ef00u
#define LT_ALGO_MAGIC 0x17a160u
struct LtDesc { uint32_t magic; int32_t compute, scale, pmode, ta, tb; uint32_t epilogue; };
struct LtLayout { uint32_t magic; int32_t type, order, batch; uint64_t rows, cols; int64_t ld, stride; };
struct LtPref { uint32_t magic; uint64_t max_ws; uint32_t align[4]; };
// cublasLtMatmulAlgo_t.data: [0] magic, [1] workspace bytes needed, [2..5] alignment of A, B, C, D

template <typename T> static T* lt_obj(void* p, uint32_t magic, const char* what) {
    T* o = (T*)p;
    if (o == NULL || o->magic != magic) emu_fatal("%s %p is not a live cuBLASLt %s (destroyed, or never created)", what, p, what);
    return o;
}

// destroying marks the object dead (kept, not freed): a later use is named, not undefined
template <typename T> static cublasStatus_t lt_destroy(void* p, uint32_t magic, const char* what) {
    if (p != NULL) lt_obj<T>(p, magic, what)->magic = 0;
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t lt_size(size_t got, size_t want, int attr) {
    if (got == want) return CUBLAS_STATUS_SUCCESS;
    emu_warn("attribute %d takes %zu bytes, given %zu (CUBLAS_STATUS_INVALID_VALUE)", attr, want, got);
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t* lightHandle) {
    if (lightHandle == NULL) return CUBLAS_STATUS_INVALID_VALUE;
    *lightHandle = new cublasLtContext{BLAS_MAGIC};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (lightHandle == NULL) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (lightHandle->magic != BLAS_MAGIC) emu_fatal("cuBLASLt handle %p is destroyed or invalid", (void*)lightHandle);
    lightHandle->magic = BLAS_DEAD;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType) {
    LtDesc* d = new LtDesc{LT_DESC_MAGIC, (int32_t)computeType, (int32_t)scaleType, CUBLASLT_POINTER_MODE_HOST, CUBLAS_OP_N, CUBLAS_OP_N,
                           CUBLASLT_EPILOGUE_DEFAULT};
    *matmulDesc = (cublasLtMatmulDesc_t)d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    return lt_destroy<LtDesc>(matmulDesc, LT_DESC_MAGIC, "matmul descriptor");
}
cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                                           const void* buf, size_t sizeInBytes) {
    LtDesc* d = lt_obj<LtDesc>(matmulDesc, LT_DESC_MAGIC, "matmul descriptor");
    cublasStatus_t st = lt_size(sizeInBytes, 4, attr);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    int32_t v;
    memcpy(&v, buf, 4);
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: d->compute = v; break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: d->scale = v; break;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: d->pmode = v; break;
    case CUBLASLT_MATMUL_DESC_TRANSA: d->ta = v; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: d->tb = v; break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: d->epilogue = (uint32_t)v; break;
    default:
        emu_warn("matmul descriptor attribute %d is not emulated (the program sets compute/scale type, pointer mode, "
                 "transposes, epilogue) (CUBLAS_STATUS_NOT_SUPPORTED)", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows, uint64_t cols,
                                                       int64_t ld) {
    LtLayout* l = new LtLayout{LT_LAYOUT_MAGIC, (int32_t)type, CUBLASLT_ORDER_COL, 1, rows, cols, ld, 0};
    *matLayout = (cublasLtMatrixLayout_t)l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    return lt_destroy<LtLayout>(matLayout, LT_LAYOUT_MAGIC, "matrix layout");
}
cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout, cublasLtMatrixLayoutAttribute_t attr,
                                                             const void* buf, size_t sizeInBytes) {
    LtLayout* l = lt_obj<LtLayout>(matLayout, LT_LAYOUT_MAGIC, "matrix layout");
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: if ((st = lt_size(sizeInBytes, 4, attr)) == 0) memcpy(&l->type, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_ORDER: if ((st = lt_size(sizeInBytes, 4, attr)) == 0) memcpy(&l->order, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: if ((st = lt_size(sizeInBytes, 4, attr)) == 0) memcpy(&l->batch, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_ROWS: if ((st = lt_size(sizeInBytes, 8, attr)) == 0) memcpy(&l->rows, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_COLS: if ((st = lt_size(sizeInBytes, 8, attr)) == 0) memcpy(&l->cols, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_LD: if ((st = lt_size(sizeInBytes, 8, attr)) == 0) memcpy(&l->ld, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: if ((st = lt_size(sizeInBytes, 8, attr)) == 0) memcpy(&l->stride, buf, 8); break;
    default:
        emu_warn("matrix layout attribute %d is not emulated (CUBLAS_STATUS_NOT_SUPPORTED)", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return st;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    // the documented defaults: no workspace, 256-byte aligned pointers
    *pref = (cublasLtMatmulPreference_t) new LtPref{LT_PREF_MAGIC, 0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    return lt_destroy<LtPref>(pref, LT_PREF_MAGIC, "matmul preference");
}
cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                                                                 const void* buf, size_t sizeInBytes) {
    LtPref* p = lt_obj<LtPref>(pref, LT_PREF_MAGIC, "matmul preference");
    cublasStatus_t st;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        if ((st = lt_size(sizeInBytes, 8, attr)) == 0) memcpy(&p->max_ws, buf, 8);
        return st;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        if ((st = lt_size(sizeInBytes, 4, attr)) == 0) memcpy(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
        return st;
    default:
        emu_warn("matmul preference attribute %d is not emulated (CUBLAS_STATUS_NOT_SUPPORTED)", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

// the problem the descriptors describe, checked as cublasLtMatmul / the heuristic check it
static cublasStatus_t lt_problem(const LtDesc* d, const LtLayout* la, const LtLayout* lb, const LtLayout* lc, const LtLayout* ld, GemmOp* g) {
    const LtLayout* ls[4] = {la, lb, lc, ld};
    for (int q = 0; q < 4; q++) {
        if (ls[q]->order != CUBLASLT_ORDER_COL) {
            emu_warn("layout %c has order %d: the emulation implements column-major only (CUBLAS_STATUS_NOT_SUPPORTED)", "ABCD"[q],
                     (int)ls[q]->order);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    }
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT || d->scale != CUDA_R_32F || (d->ta != CUBLAS_OP_N && d->ta != CUBLAS_OP_T) ||
        (d->tb != CUBLAS_OP_N && d->tb != CUBLAS_OP_T)) {
        emu_warn("epilogue %u, scale type %d, transa %d, transb %d: the emulation implements the default epilogue, fp32 scale, "
                 "N/T (CUBLAS_STATUS_NOT_SUPPORTED)", d->epilogue, (int)d->scale, (int)d->ta, (int)d->tb);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (d->pmode != CUBLASLT_POINTER_MODE_HOST && d->pmode != CUBLASLT_POINTER_MODE_DEVICE) {
        emu_warn("pointer mode %d: the emulation implements HOST and DEVICE (CUBLAS_STATUS_NOT_SUPPORTED)", (int)d->pmode);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    g->ta = d->ta == CUBLAS_OP_T; g->tb = d->tb == CUBLAS_OP_T;
    g->m = (int64_t)ld->rows; g->n = (int64_t)ld->cols; g->k = (int64_t)(g->ta ? la->rows : la->cols);
    int64_t am = (int64_t)(g->ta ? la->cols : la->rows), bk = (int64_t)(g->tb ? lb->cols : lb->rows),
            bn = (int64_t)(g->tb ? lb->rows : lb->cols);
    if (am != g->m || bk != g->k || bn != g->n || lc->rows != ld->rows || lc->cols != ld->cols) {
        emu_warn("shapes do not chain: op(A) %lld x %lld, op(B) %lld x %lld, C %llu x %llu, D %llu x %llu (CUBLAS_STATUS_INVALID_VALUE)",
                 (long long)am, (long long)g->k, (long long)bk, (long long)bn, (unsigned long long)lc->rows, (unsigned long long)lc->cols,
                 (unsigned long long)ld->rows, (unsigned long long)ld->cols);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (la->batch != ld->batch || lb->batch != ld->batch || lc->batch != ld->batch) {
        emu_warn("batch counts A %d, B %d, C %d, D %d differ (CUBLAS_STATUS_INVALID_VALUE)", la->batch, lb->batch, lc->batch, ld->batch);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    g->batch = ld->batch;
    EmuMat* ms[4] = {&g->A, &g->B, &g->C, &g->D};
    for (int q = 0; q < 4; q++) *ms[q] = {NULL, (cudaDataType_t)ls[q]->type, (int64_t)ls[q]->rows, (int64_t)ls[q]->cols, ls[q]->ld, ls[q]->stride};
    return gemm_check(*g, (cublasComputeType_t)d->compute);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                                           cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                           cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                           cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                                           cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount) {
    if (lightHandle == NULL || lightHandle->magic != BLAS_MAGIC) emu_fatal("cuBLASLt handle %p is not live", (void*)lightHandle);
    LtPref* p = lt_obj<LtPref>(preference, LT_PREF_MAGIC, "matmul preference");
    if (requestedAlgoCount < 1 || returnAlgoCount == NULL) return CUBLAS_STATUS_INVALID_VALUE;
    *returnAlgoCount = 0;
    GemmOp g;
    cublasStatus_t st = lt_problem(lt_obj<LtDesc>(operationDesc, LT_DESC_MAGIC, "matmul descriptor"),
                                   lt_obj<LtLayout>(Adesc, LT_LAYOUT_MAGIC, "matrix layout"), lt_obj<LtLayout>(Bdesc, LT_LAYOUT_MAGIC, "matrix layout"),
                                   lt_obj<LtLayout>(Cdesc, LT_LAYOUT_MAGIC, "matrix layout"), lt_obj<LtLayout>(Ddesc, LT_LAYOUT_MAGIC, "matrix layout"), &g);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    // an alignment below one element has no algorithm (as on a card); any other gets one that
    // requires exactly the promised alignment
    const EmuMat* ms[4] = {&g.A, &g.B, &g.C, &g.D};
    for (int q = 0; q < 4; q++)
        if (p->align[q] == 0 || p->align[q] % type_bytes(ms[q]->t) != 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    cublasLtMatmulHeuristicResult_t* r = &heuristicResultsArray[0];
    memset(r, 0, sizeof *r);
    r->algo.data[0] = LT_ALGO_MAGIC;
    r->algo.data[1] = p->max_ws; // the worst case a real heuristic may pick: all the preference allows
    for (int q = 0; q < 4; q++) r->algo.data[2 + q] = p->align[q];
    r->workspaceSize = p->max_ws;
    r->state = CUBLAS_STATUS_SUCCESS;
    r->wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoCapGetAttribute(const cublasLtMatmulAlgo_t* algo, cublasLtMatmulAlgoCapAttributes_t attr,
                                                              void* buf, size_t sizeInBytes, size_t* sizeWritten) {
    if (algo == NULL || algo->data[0] != LT_ALGO_MAGIC) emu_fatal("algo %p was not returned by cublasLtMatmulAlgoGetHeuristic", (const void*)algo);
    if (attr != CUBLASLT_ALGO_CAP_POINTER_MODE_MASK) {
        emu_warn("algorithm capability %d is not emulated (CUBLAS_STATUS_NOT_SUPPORTED)", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    uint32_t mask = CUBLASLT_POINTER_MODE_MASK_HOST | CUBLASLT_POINTER_MODE_MASK_DEVICE;
    if (sizeWritten) *sizeWritten = sizeof mask;
    if (sizeInBytes == 0 && sizeWritten) return CUBLAS_STATUS_SUCCESS; // a size query
    if (buf == NULL || sizeInBytes < sizeof mask) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(buf, &mask, sizeof mask);
    return CUBLAS_STATUS_SUCCESS;
}

static uint32_t ptr_align(const void* p) {
    uint32_t al = 256;
    while (al > 1 && (uintptr_t)p % al) al >>= 1;
    return al;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha, const void* A,
                                           cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                                           const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                                           const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes,
                                           cudaStream_t stream) {
    if (lightHandle == NULL || lightHandle->magic != BLAS_MAGIC) emu_fatal("cuBLASLt handle %p is not live", (void*)lightHandle);
    const LtDesc* d = lt_obj<LtDesc>(computeDesc, LT_DESC_MAGIC, "matmul descriptor");
    const LtLayout *la = lt_obj<LtLayout>(Adesc, LT_LAYOUT_MAGIC, "matrix layout"), *lb = lt_obj<LtLayout>(Bdesc, LT_LAYOUT_MAGIC, "matrix layout"),
                   *lc = lt_obj<LtLayout>(Cdesc, LT_LAYOUT_MAGIC, "matrix layout"), *ld = lt_obj<LtLayout>(Ddesc, LT_LAYOUT_MAGIC, "matrix layout");
    GemmOp g;
    cublasStatus_t st = lt_problem(d, la, lb, lc, ld, &g);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (C == D && memcmp(lc, ld, sizeof *lc) != 0)
        emu_fatal("C == D (in place) with different C and D layouts (C %llu x %llu ld %lld, D %llu x %llu ld %lld): cuBLASLt runs in "
                  "place only when Cdesc == Ddesc; hint: pass the same layout for both", (unsigned long long)lc->rows,
                  (unsigned long long)lc->cols, (long long)lc->ld, (unsigned long long)ld->rows, (unsigned long long)ld->cols, (long long)ld->ld);
    // no algorithm: the documented implicit heuristic with default preferences (no workspace)
    size_t need = 0;
    uint32_t align[4] = {256, 256, 256, 256};
    if (algo != NULL) {
        if (algo->data[0] != LT_ALGO_MAGIC) emu_fatal("algo %p was not returned by cublasLtMatmulAlgoGetHeuristic", (const void*)algo);
        need = (size_t)algo->data[1];
        for (int q = 0; q < 4; q++) align[q] = (uint32_t)algo->data[2 + q];
    }
    if (workspaceSizeInBytes < need) {
        emu_warn("workspace of %zu bytes given, the algorithm needs %zu (its preference's maximum) (CUBLAS_STATUS_INVALID_VALUE)",
                 workspaceSizeInBytes, need);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const void* ps[4] = {A, B, C, D};
    for (int q = 0; q < 4; q++)
        if (ptr_align(ps[q]) < align[q]) {
            emu_warn("%c at %p is %u-byte aligned; the algorithm was chosen for %u (the preference's MIN_ALIGNMENT_%c_BYTES) "
                     "(CUBLAS_STATUS_NOT_SUPPORTED)", "ABCD"[q], ps[q], ptr_align(ps[q]), align[q], "ABCD"[q]);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    emu_require_stream(stream, "cublasLtMatmul stream");
    g.A.p = A; g.B.p = B; g.C.p = C; g.D.p = D;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
    gemm_scalars(&g, d->pmode == CUBLASLT_POINTER_MODE_DEVICE, alpha, beta);
    std::vector<EmuRange> extra;
    if (workspaceSizeInBytes > 0) {
        emu_require_device(workspace, workspaceSizeInBytes, "workspace");
        extra.push_back({workspace, workspaceSizeInBytes, 1});
    }
    gemm_enqueue(g, stream, "cublasLtMatmul", extra);
    return CUBLAS_STATUS_SUCCESS;
}
