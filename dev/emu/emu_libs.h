// emu_libs.h: the call-site macros of the emulated libraries' entry points (emu_blas.cpp,
// emu_solver.cpp, emu_dnn.cpp, emu_nccl.cpp). emu.h includes it after the real library headers,
// so a library error names the program's file:line ("emu: error: cublasLtMatmul at
// llama_kernels.cuh:549: ..."). Only the program sees these macros; the libraries are compiled
// without emu.h. The cuBLAS v2 names (cublasSgemm -> cublasSgemm_v2, ...) are macros of
// cublas_v2.h already: they are replaced by ones that record the user-facing name.
// cublasLtMatmulAlgoGetHeuristic has no macro: dev/cuda/force_gemmex.cuh redefines that name
// (to route the checks through cublasGemmEx), and a second definition would warn; its messages
// name the call and the site of the library call before it (the preference set just above it in
// gemm_plan_get).
#ifndef EMU_LIBS_H
#define EMU_LIBS_H

#define EMU_LIB(name, fn, ...) (emu_site = EmuSite{name, __FILE__, __LINE__}, fn(__VA_ARGS__))

// cuBLAS
#undef cublasCreate
#undef cublasDestroy
#undef cublasSetStream
#undef cublasSetPointerMode
#undef cublasGetPointerMode
#undef cublasSgemm
#define cublasCreate(...) EMU_LIB("cublasCreate", cublasCreate_v2, __VA_ARGS__)
#define cublasDestroy(...) EMU_LIB("cublasDestroy", cublasDestroy_v2, __VA_ARGS__)
#define cublasSetStream(...) EMU_LIB("cublasSetStream", cublasSetStream_v2, __VA_ARGS__)
#define cublasSetPointerMode(...) EMU_LIB("cublasSetPointerMode", cublasSetPointerMode_v2, __VA_ARGS__)
#define cublasGetPointerMode(...) EMU_LIB("cublasGetPointerMode", cublasGetPointerMode_v2, __VA_ARGS__)
#define cublasSgemm(...) EMU_LIB("cublasSgemm", cublasSgemm_v2, __VA_ARGS__)
#define cublasSetMathMode(...) EMU_AT(cublasSetMathMode, __VA_ARGS__)
#define cublasSetAtomicsMode(...) EMU_AT(cublasSetAtomicsMode, __VA_ARGS__)
#define cublasGemmEx(...) EMU_AT(cublasGemmEx, __VA_ARGS__)
#define cublasGemmStridedBatchedEx(...) EMU_AT(cublasGemmStridedBatchedEx, __VA_ARGS__)

// cuBLASLt
#define cublasLtCreate(...) EMU_AT(cublasLtCreate, __VA_ARGS__)
#define cublasLtDestroy(...) EMU_AT(cublasLtDestroy, __VA_ARGS__)
#define cublasLtMatmulDescCreate(...) EMU_AT(cublasLtMatmulDescCreate, __VA_ARGS__)
#define cublasLtMatmulDescDestroy(...) EMU_AT(cublasLtMatmulDescDestroy, __VA_ARGS__)
#define cublasLtMatmulDescSetAttribute(...) EMU_AT(cublasLtMatmulDescSetAttribute, __VA_ARGS__)
#define cublasLtMatrixLayoutCreate(...) EMU_AT(cublasLtMatrixLayoutCreate, __VA_ARGS__)
#define cublasLtMatrixLayoutDestroy(...) EMU_AT(cublasLtMatrixLayoutDestroy, __VA_ARGS__)
#define cublasLtMatrixLayoutSetAttribute(...) EMU_AT(cublasLtMatrixLayoutSetAttribute, __VA_ARGS__)
#define cublasLtMatmulPreferenceCreate(...) EMU_AT(cublasLtMatmulPreferenceCreate, __VA_ARGS__)
#define cublasLtMatmulPreferenceDestroy(...) EMU_AT(cublasLtMatmulPreferenceDestroy, __VA_ARGS__)
#define cublasLtMatmulPreferenceSetAttribute(...) EMU_AT(cublasLtMatmulPreferenceSetAttribute, __VA_ARGS__)
#define cublasLtMatmulAlgoCapGetAttribute(...) EMU_AT(cublasLtMatmulAlgoCapGetAttribute, __VA_ARGS__)
#define cublasLtMatmul(...) EMU_AT(cublasLtMatmul, __VA_ARGS__)

// cuSOLVER
#define cusolverDnCreate(...) EMU_AT(cusolverDnCreate, __VA_ARGS__)
#define cusolverDnDestroy(...) EMU_AT(cusolverDnDestroy, __VA_ARGS__)
#define cusolverDnSetStream(...) EMU_AT(cusolverDnSetStream, __VA_ARGS__)
#define cusolverDnCreateGesvdjInfo(...) EMU_AT(cusolverDnCreateGesvdjInfo, __VA_ARGS__)
#define cusolverDnDestroyGesvdjInfo(...) EMU_AT(cusolverDnDestroyGesvdjInfo, __VA_ARGS__)
#define cusolverDnXgesvdjSetTolerance(...) EMU_AT(cusolverDnXgesvdjSetTolerance, __VA_ARGS__)
#define cusolverDnXgesvdjSetMaxSweeps(...) EMU_AT(cusolverDnXgesvdjSetMaxSweeps, __VA_ARGS__)
#define cusolverDnXgesvdjSetSortEig(...) EMU_AT(cusolverDnXgesvdjSetSortEig, __VA_ARGS__)
#define cusolverDnSgesvdj_bufferSize(...) EMU_AT(cusolverDnSgesvdj_bufferSize, __VA_ARGS__)
#define cusolverDnSgesvdj(...) EMU_AT(cusolverDnSgesvdj, __VA_ARGS__)
#define cusolverDnSgesvd_bufferSize(...) EMU_AT(cusolverDnSgesvd_bufferSize, __VA_ARGS__)
#define cusolverDnSgesvd(...) EMU_AT(cusolverDnSgesvd, __VA_ARGS__)
#define cusolverDnSgeqrf_bufferSize(...) EMU_AT(cusolverDnSgeqrf_bufferSize, __VA_ARGS__)
#define cusolverDnSgeqrf(...) EMU_AT(cusolverDnSgeqrf, __VA_ARGS__)
#define cusolverDnSorgqr_bufferSize(...) EMU_AT(cusolverDnSorgqr_bufferSize, __VA_ARGS__)
#define cusolverDnSorgqr(...) EMU_AT(cusolverDnSorgqr, __VA_ARGS__)

// cuDNN
#define cudnnCreate(...) EMU_AT(cudnnCreate, __VA_ARGS__)
#define cudnnDestroy(...) EMU_AT(cudnnDestroy, __VA_ARGS__)
#define cudnnSetStream(...) EMU_AT(cudnnSetStream, __VA_ARGS__)
#define cudnnBackendCreateDescriptor(...) EMU_AT(cudnnBackendCreateDescriptor, __VA_ARGS__)
#define cudnnBackendDestroyDescriptor(...) EMU_AT(cudnnBackendDestroyDescriptor, __VA_ARGS__)
#define cudnnBackendSetAttribute(...) EMU_AT(cudnnBackendSetAttribute, __VA_ARGS__)
#define cudnnBackendGetAttribute(...) EMU_AT(cudnnBackendGetAttribute, __VA_ARGS__)
#define cudnnBackendFinalize(...) EMU_AT(cudnnBackendFinalize, __VA_ARGS__)
#define cudnnBackendExecute(...) EMU_AT(cudnnBackendExecute, __VA_ARGS__)

// NCCL
#define ncclGetUniqueId(...) EMU_AT(ncclGetUniqueId, __VA_ARGS__)
#define ncclCommInitRank(...) EMU_AT(ncclCommInitRank, __VA_ARGS__)
#define ncclCommDestroy(...) EMU_AT(ncclCommDestroy, __VA_ARGS__)
#define ncclAllReduce(...) EMU_AT(ncclAllReduce, __VA_ARGS__)
#define ncclGroupStart(...) EMU_AT(ncclGroupStart, __VA_ARGS__)
#define ncclGroupEnd(...) EMU_AT(ncclGroupEnd, __VA_ARGS__)

#endif
