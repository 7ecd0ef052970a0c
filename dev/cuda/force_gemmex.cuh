// force_gemmex.cuh: included before common.cuh by the checks of code that calls cuBLASLt through
// llama_kernels.cuh (matmul.cu, galore_update.cu): setting g_force_gemmex makes cuBLASLt's
// heuristic find no algorithm, so the same calls take their cublasGemmEx fallback and both paths
// get validated.
#ifndef DEV_CUDA_FORCE_GEMMEX_CUH
#define DEV_CUDA_FORCE_GEMMEX_CUH
#include <cublasLt.h>

static int g_force_gemmex = 0;
static cublasStatus_t heuristic_or_none(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                        cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref, int req,
                                        cublasLtMatmulHeuristicResult_t* res, int* found) {
    if (g_force_gemmex) { *found = 0; return CUBLAS_STATUS_NOT_SUPPORTED; }
    return cublasLtMatmulAlgoGetHeuristic(h, op, a, b, c, d, pref, req, res, found);
}
#define cublasLtMatmulAlgoGetHeuristic heuristic_or_none
// gemm_bf16_scaled's plan cache keys on the switch: a forced call never reuses a real algorithm
#define GEMM_CACHE_SALT g_force_gemmex
#endif
