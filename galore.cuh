// galore.cuh: GaLore on the GPU, built on galore.h (side rule, shapes, refresh schedule, the
// sign convention and adam_hf_elem, all shared with the CPU optimizer in train_llama.c).
//
//   refresh        the projector from cuSOLVER's economy SVD of the fp32 gradient: gesvdj (Jacobi,
//                  tol FLT_EPSILON, 400 sweeps, singular values sorted descending, as PyTorch on
//                  CUDA) up to min(m, n) = GALORE_GESVDJ_MAX_DIM and gesvd above (galore_exact_gesvdj:
//                  Jacobi is slow on large matrices), gesvd also when gesvdj reports no convergence;
//                  every workspace allocated once (galore_gpu_workspace_query); the top-r vectors, galore_sign_fix's
//                  convention (each vector's entry of largest magnitude positive, the first on ties)
//                  in a small kernel, stored in bf16 like the paper's projectors. Where the layout
//                  says SVD_RANDOMIZED (galore_svd_pick, --svd): galore.h's randomized range finder
//                  instead (Omega drawn on the device by galore_gaussian, the CPU's very matrix;
//                  cuBLAS gemms; cuSOLVER geqrf + orgqr; gesvdj of the small (l x other) sketch)
//   project        R = G P^T (right) / P^T G (left): cuBLAS GemmEx, bf16 inputs, fp32 compute, fp32
//                  (optimizer) or bf16 (low-rank accumulator) output
//   project back   (unfused) U = scale * (N P) / scale * (P N) in fp32 (cublasSgemm on an fp32 copy of P)
//   elementwise    the HF AdamW step on R (adam_hf_elem), (unfused) the weight update p += -step_size * U,
//                  the decay; the 8-bit path uses adam8bit.cuh on R with a zero parameter
//   fused          (bf16 weights rounded to nearest: the default, the paper's setting) the Adam step
//                  writes N in bf16, then ONE bf16 cuBLASLt GEMM applies back-projection, scale, step
//                  and decay in place: W = beta W + alpha (N P) (galore_gpu_update_fused; alpha and
//                  beta derived in galore_fused_coefs). No fp32 copy of P, no (m, n) fp32 U. The
//                  unfused path above stays for --master-weights 1 and --stochastic-rounding 1 (the
//                  GEMM epilogue can do neither) and as the reference (GaloreGpu.unfused)
//
// Bytes moved per GaLore matrix (m x n bf16, rank r, s = r max(m, n) low-rank elements, p = r min(m, n)
// projector elements) on a step without refresh, each kernel reading its inputs and writing its
// outputs once (dev/galore_bytes.py counts them kernel by kernel, including the gradient's read):
//                        unfused                          fused                 saved
//   galore_adamw         14 mn + 12 p + 24 s              6 mn + 4 p + 20 s     8 mn + 8 p + 4 s
//   galore_adamw8bit     14 mn + 12 p + 28.06 s           6 mn + 4 p + 16.06 s  8 mn + 8 p + 12 s
// unfused: widen P (6p), project (2mn G + 2p + 4s R), [8-bit: memset Z 4s], Adam (16s), project back
// (4s + 4p + 4mn U), apply (4mn U + 2mn + 2mn W); fused: project, Adam with a bf16 N (14s HF, 10s
// 8-bit), GEMM (2s + 2p + 2mn + 2mn). Per step for all GaLore matrices:
//   llama_7b r 1024 (224 matrices)  galore_adamw 140.8 -> 75.0 GB, galore_adamw8bit 147.4 -> 68.6 GB:
//                                   44.0 -> 20.5 ms at 3.35 TB/s (H100 SXM HBM3)
//   llama_1b r 512 (168 matrices)   galore_adamw 26.3 -> 14.0 GB, galore_adamw8bit 27.5 -> 12.8 GB:
//                                   8.2 -> 3.8 ms
// The back-projection GEMM also moves from fp32 SIMT (cublasSgemm, ~67 TFLOP/s on an H100 SXM) to bf16
// tensor cores (989): 2 r m n flops, 13.3 TFLOP per step at llama_7b r 1024, ~198 -> ~13 ms at peak.
//
// Layouts as on the CPU (PyTorch row-major): G (m, n); P (r, n) right or (m, r) left; R (m, r) right
// or (r, n) left. cuBLAS is column-major: a row-major (a, b) matrix is a column-major (b, a) one.
//
// The SVD runs on X = the row-major G read as column-major (n, m), i.e. G^T, so no transpose is
// needed: X = Ux S Vx^T means G = Vx S Ux^T, so the right vectors of G (length n) are Ux's columns
// and the left ones (length m) are Vx's columns.
#ifndef GALORE_CUH
#define GALORE_CUH

#include <float.h>
#include "cuda_common.cuh"
#include "galore.h"
#include "adam8bit.cuh"
#include "llama_kernels.cuh" // MatmulCtx, gemm_bf16_scaled: the fused update's GEMM

// ----------------------------------------------------------------------------
// scratch and handles

typedef struct {
    cusolverDnHandle_t solver;
    gesvdjInfo_t jparams;
    cublasHandle_t blas;       // the trainer's update-stream handle (GpuTrainer.mm_upd), on stream
    cudaStream_t stream;
    int64_t max_full;          // largest m*n of a GaLore tensor
    int64_t max_k;             // largest min(m, n)
    int64_t max_s;             // largest low-rank numel (R's)
    int64_t max_proj;          // largest projector numel
    float* A;                  // (max_full) SVD input (fp32 G, destroyed); the unfused path's update U
                               // (the fused path needs it only at refresh steps, as the SVD input)
    float* Uf;                 // (max_full) SVD factor
    float* Vf;                 // (max_full) SVD factor (and gesvd's transposed input)
    float* S;                  // (max_k) singular values
    float* Pf;                 // (max_proj) the unfused path's fp32 projector (widened from bf16 for the
                               // back-projection): an alias of Uf, which is free outside a refresh
    float* R;                  // (max_s) low-rank gradient
    float* N;                  // (max_s) low-rank direction / update (GaLore 8-bit: the zero parameter);
                               // the fused path stores it in bf16 in the first half
    float* work; int lwork;    // cuSOLVER workspace (floats): the largest of gesvdj's, gesvd's (with its
                               // rwork) and the randomized refresh's over the shapes (galore_gpu_workspace_query)
    int* d_info;
    int64_t refreshes, gesvd_fallbacks;
    int64_t n_gesvdj, n_gesvd, n_randomized; // refreshes by each solver (gesvd: by the rule or as the fallback)
    int64_t n_galore;          // GaLore tensors: a refresh round is n_galore refreshes (galore_svd_round)
    int svd;                   // some tensor refreshes by SVD (GaloreDims.svd): the solver, U, V, S exist
    int force_gesvd;           // tests: skip gesvdj, run gesvd (exact) / gesvd of the sketch (randomized)
    int force_gesvdj;          // tests, dev/cuda/svd: gesvdj at any size (galore_exact_gesvdj's rule off; set by galore_gpu_force_gesvdj)
    int unfused;               // tests: take the unfused (reference) update path even where the fused one applies
    int projector;             // PROJECTOR_* (--proj): random draws GoLore's basis (galore_gpu_proj_gaussian_orth); set after init
    uint64_t run_seed;         // --seed, for galore_proj_seed
} GaloreGpu;

// gesvd of a rows x cols column-major matrix (rows >= cols, as cuSOLVER's gesvd requires), laid out
// in g->work as rwork (cols floats: the unconverged superdiagonal when info > 0), then gesvd's own
// workspace from a 256-byte boundary (galore_gpu_gesvd)
static size_t galore_gesvd_work_offset(int cols) { return ((size_t)cols + 63) / 64 * 64; }
static int galore_gpu_gesvd_lwork(GaloreGpu* g, int rows, int cols) {
    int lw = 0;
    cusolverCheck(cusolverDnSgesvd_bufferSize(g->solver, rows, cols, &lw));
    return (int)galore_gesvd_work_offset(cols) + lw;
}

// gesvdj (economy, vectors) of the column-major rows x cols X = G^T, as galore_gpu_refresh runs it
static int galore_gpu_gesvdj_lwork(GaloreGpu* g, int rows, int cols) {
    int lw = 0;
    cusolverCheck(cusolverDnSgesvdj_bufferSize(g->solver, CUSOLVER_EIG_MODE_VECTOR, 1, rows, cols, g->A, rows, g->S, g->Uf, rows, g->Vf, cols,
                                               &lw, g->jparams));
    return lw;
}

// the randomized refresh's workspace (floats) for one tensor, laid out in g->work as tau (l),
// U_B (l x l), then the largest of geqrf / orgqr on both sketches and gesvdj of (other x l)
// (galore_rand_offsets)
static int galore_gpu_rand_lwork(GaloreGpu* g, const TensorLayout* l) {
    int len, other, w, lw = 0, best = 0;
    galore_rand_dims(l, &len, &other, &w);
    int rows[2] = {len, other};
    for (int k = 0; k < 2; k++) {
        cusolverCheck(cusolverDnSgeqrf_bufferSize(g->solver, rows[k], w, g->Uf, rows[k], &lw));
        if (lw > best) best = lw;
        cusolverCheck(cusolverDnSorgqr_bufferSize(g->solver, rows[k], w, w, g->Uf, rows[k], g->S, &lw));
        if (lw > best) best = lw;
    }
    cusolverCheck(cusolverDnSgesvdj_bufferSize(g->solver, CUSOLVER_EIG_MODE_VECTOR, 1, other, w, g->Vf, other, g->S, g->A, other, g->Uf, w,
                                               &lw, g->jparams));
    if (lw > best) best = lw;
    lw = galore_gpu_gesvd_lwork(g, other, w); // the sketch's gesvd fallback (other >= w)
    if (lw > best) best = lw;
    size_t ub, ws;
    galore_rand_offsets(w, &ub, &ws);
    return (int)ws + best;
}

// galore_gpu_workspace_query: the largest refresh workspace (floats) over the GaLore shapes: for
// the exact refresh gesvd's (always: the rule's solver above GALORE_GESVDJ_MAX_DIM, the fallback
// below) and gesvdj's where it may run; galore_gpu_rand_lwork for the randomized one
static int galore_gpu_workspace_query(GaloreGpu* g, const TensorLayout* lay, int n) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        const TensorLayout* l = &lay[i];
        // no SVD (APOLLO's random projector): nothing to query. Not full_grad: Fira reads the full
        // gradient AND refreshes by SVD, and skipping it left Fira with a 0-float workspace
        if (l->side == SIDE_NONE || l->svd == 0) continue;
        int rows = (int)l->n, cols = (int)l->m, lw = 0;
        if (l->svd == SVD_RANDOMIZED) {
            lw = galore_gpu_rand_lwork(g, l);
        } else {
            lw = galore_gpu_gesvd_lwork(g, rows > cols ? rows : cols, rows > cols ? cols : rows);
            if (lw > best) best = lw;
            // gesvdj's only where the rule takes it (galore_exact_gesvdj) or a test forced it
            // (galore_gpu_force_gesvdj): its workspace at a gesvd shape is never used (issue 22)
            if (g->force_gesvdj || galore_exact_gesvdj(l->m, l->n)) lw = galore_gpu_gesvdj_lwork(g, rows, cols);
        }
        if (lw > best) best = lw;
        // --- golore (issue 15) --- --proj random's QR of the len x r Gaussian: tau (r) then geqrf /
        // orgqr's workspace (queried for every GaLore shape, so the allocation does not depend on --proj)
        int glen = (int)(l->side == SIDE_RIGHT ? l->n : l->m), gr = (int)l->r, lq = 0, lo = 0;
        cusolverCheck(cusolverDnSgeqrf_bufferSize(g->solver, glen, gr, g->Uf, glen, &lq));
        cusolverCheck(cusolverDnSorgqr_bufferSize(g->solver, glen, gr, gr, g->Uf, glen, g->S, &lo));
        lw = (int)galore_gesvd_work_offset(gr) + (lq > lo ? lq : lo);
        if (lw > best) best = lw;
        // --- end golore ---
    }
    return best;
}

static void galore_gpu_init(GaloreGpu* g, const TensorLayout* lay, int n, cublasHandle_t blas, cudaStream_t stream, int verbose) {
    memset(g, 0, sizeof *g);
    GaloreDims d = galore_dims(lay, n);
    g->max_full = d.max_full; g->max_k = d.max_k; g->max_s = d.max_s; g->max_proj = d.max_proj;
    g->blas = blas;
    g->stream = stream;
    g->n_galore = galore_count_projected(lay, n);
    if (d.max_full == 0) return; // no GaLore tensor
    g->svd = d.svd > 0;
    g->A = (float*)cudaMallocCheck(sizeof(float) * d.max_full, "GaLore full scratch (SVD input, update U; APOLLO's channel sums)");
    g->R = (float*)cudaMallocCheck(sizeof(float) * d.max_s, "GaLore low-rank gradient R");
    g->N = (float*)cudaMallocCheck(sizeof(float) * d.max_s, "GaLore low-rank update N");
    if (!g->svd) return; // APOLLO only: projections drawn, no SVD
    cusolverCheck(cusolverDnCreate(&g->solver));
    cusolverCheck(cusolverDnSetStream(g->solver, stream));
    cusolverCheck(cusolverDnCreateGesvdjInfo(&g->jparams));
    cusolverCheck(cusolverDnXgesvdjSetTolerance(g->jparams, (double)FLT_EPSILON));
    cusolverCheck(cusolverDnXgesvdjSetMaxSweeps(g->jparams, 400));
    cusolverCheck(cusolverDnXgesvdjSetSortEig(g->jparams, 1));
    g->Uf = (float*)cudaMallocCheck(sizeof(float) * d.max_full, "GaLore SVD factor U");
    g->Vf = (float*)cudaMallocCheck(sizeof(float) * d.max_full, "GaLore SVD factor V");
    g->S = (float*)cudaMallocCheck(sizeof(float) * d.max_k, "GaLore singular values");
    g->Pf = g->Uf; // max_proj = max r min(m, n) <= max_full
    g->d_info = (int*)cudaMallocCheck(sizeof(int), "cuSOLVER info");
    g->lwork = galore_gpu_workspace_query(g, lay, n);
    g->work = (float*)cudaMallocCheck(sizeof(float) * (size_t)(g->lwork > 0 ? g->lwork : 1), "cuSOLVER workspace");
    if (verbose) {
        printf("  alloc %-52s %10.2f MiB (queried; the plan's estimate was %.2f MiB)\n", "cuSOLVER workspace",
               g->lwork * 4.0 / 1048576.0, galore_svd_workspace_estimate(&d) / 1048576.0);
        int nj = 0, nd = 0, nr = 0;
        for (int i = 0; i < n; i++) {
            if (lay[i].side == SIDE_NONE) continue;
            if (lay[i].svd == SVD_RANDOMIZED) nr++; else if (galore_exact_gesvdj(lay[i].m, lay[i].n)) nj++; else nd++;
        }
        printf("GaLore refresh: cuSOLVER gesvdj for %d matrices (min dim <= %d), gesvd for %d, randomized for %d\n", nj, GALORE_GESVDJ_MAX_DIM,
               nd, nr);
    }
}

// tests, dev/cuda/svd: gesvdj at every size (force_gesvdj), its workspace queried at every shape
static void galore_gpu_force_gesvdj(GaloreGpu* g, const TensorLayout* lay, int n) {
    g->force_gesvdj = 1;
    if (!g->svd) return;
    cudaCheck(cudaFree(g->work));
    g->lwork = galore_gpu_workspace_query(g, lay, n);
    g->work = (float*)cudaMallocCheck(sizeof(float) * (size_t)(g->lwork > 0 ? g->lwork : 1), "cuSOLVER workspace");
}

static void galore_gpu_free(GaloreGpu* g) {
    if (g->max_full == 0) return;
    cudaCheck(cudaFree(g->A)); cudaCheck(cudaFree(g->R)); cudaCheck(cudaFree(g->N));
    if (!g->svd) return;
    cudaCheck(cudaFree(g->Uf)); cudaCheck(cudaFree(g->Vf)); cudaCheck(cudaFree(g->S)); cudaCheck(cudaFree(g->d_info));
    cudaCheck(cudaFree(g->work));
    cusolverCheck(cusolverDnDestroyGesvdjInfo(g->jparams));
    cusolverCheck(cusolverDnDestroy(g->solver));
}

// ----------------------------------------------------------------------------
// small kernels

// dst (n) fp32 = scale * src (bf16); a skipped update's (update_skipped): zeros, so the refresh of a
// non-finite gradient runs on a zero matrix (the solvers converge at once, info 0) and is discarded
__global__ void galore_widen_kernel(float* dst, const floatX* src, size_t n, float scale, const int* skip) {
    int zero = update_skipped(skip);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = zero ? 0.0f : scale * bf2f(src[i]);
}
static void galore_widen(float* dst, const floatX* src, size_t n, float scale, cudaStream_t s, const int* skip = NULL) {
    galore_widen_kernel<<<grid_for(n, 256), 256, 0, s>>>(dst, src, n, scale, skip);
    cudaCheckLaunch();
}

// dst (n) bf16 = src (fp32), round to nearest even; a skipped update's: dst untouched (the old projector stays)
__global__ void galore_narrow_kernel(floatX* dst, const float* src, size_t n, const int* skip) {
    if (update_skipped(skip)) return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) dst[i] = f2bf(src[i]);
}
static void galore_narrow(floatX* dst, const float* src, size_t n, cudaStream_t s, const int* skip = NULL) {
    galore_narrow_kernel<<<grid_for(n, 256), 256, 0, s>>>(dst, src, n, skip);
    cudaCheckLaunch();
}

// a (n) bf16 += b (n) bf16, in fp32, rounded once (gradient accumulators)
__global__ void galore_accumulate_kernel(floatX* a, const floatX* b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) a[i] = f2bf(bf2f(a[i]) + bf2f(b[i]));
}
static void galore_accumulate(floatX* a, const floatX* b, size_t n, cudaStream_t s) {
    galore_accumulate_kernel<<<grid_for(n, 256), 256, 0, s>>>(a, b, n);
    cudaCheckLaunch();
}

// gather the top-r basis vectors into P: vector j's element i is base[i*si + j*sj]; right: P (r, len)
// row j; left: P (len, r) column j
__global__ void galore_gather_kernel(float* P, const float* base, int64_t si, int64_t sj, int64_t len, int64_t r, int right) {
    size_t total = (size_t)len * r;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        int64_t j = (int64_t)(idx / len), i = (int64_t)(idx % len);
        float x = base[i * si + j * sj];
        if (right) P[j * len + i] = x; else P[i * r + j] = x;
    }
}

// galore_sign_fix on the device, one block per vector: the entry of largest magnitude (the first
// on ties, as the CPU's strict '>' scan) decides; a negative one flips the vector
#define SIGNFIX_THREADS 256
__global__ void galore_sign_fix_kernel(float* P, int right, int64_t len, int64_t r) {
    __shared__ float sabs[SIGNFIX_THREADS];
    __shared__ int64_t sidx[SIGNFIX_THREADS];
    int64_t j = blockIdx.x;
    int64_t stride = right ? 1 : r;
    float* v = right ? P + j * len : P + j;
    float best = -1.0f;
    int64_t bi = 0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        float a = fabsf(v[i * stride]);
        if (a > best) { best = a; bi = i; } // increasing i per thread: the first of equals stays
    }
    sabs[threadIdx.x] = best; sidx[threadIdx.x] = bi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) {
            float a2 = sabs[threadIdx.x + o];
            int64_t i2 = sidx[threadIdx.x + o];
            if (a2 > sabs[threadIdx.x] || (a2 == sabs[threadIdx.x] && i2 < sidx[threadIdx.x])) { sabs[threadIdx.x] = a2; sidx[threadIdx.x] = i2; }
        }
        __syncthreads();
    }
    __shared__ int flip;
    if (threadIdx.x == 0) flip = v[sidx[0] * stride] < 0.0f; // read once, before any thread negates it
    __syncthreads();
    if (flip) for (int64_t i = threadIdx.x; i < len; i += blockDim.x) v[i * stride] = -v[i * stride];
}

// col-major (rows, cols) src -> col-major (cols, rows) dst
__global__ void galore_transpose_kernel(float* dst, const float* src, int64_t rows, int64_t cols) {
    size_t total = (size_t)rows * cols;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        int64_t rr = (int64_t)(idx % rows), cc = (int64_t)(idx / rows);
        dst[cc + rr * cols] = src[idx];
    }
}

// out (n) = galore_gaussian(seed, 0 .. n-1): the randomized refresh's Omega, bit for bit the CPU's
__global__ void galore_gaussian_kernel(float* out, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = galore_gaussian(seed, (uint64_t)i);
}
static void galore_gaussian_fill(float* out, size_t n, uint64_t seed, cudaStream_t s) {
    galore_gaussian_kernel<<<grid_for(n, 256), 256, 0, s>>>(out, n, seed);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// refresh

// cuSOLVER's devInfo of the last call: anything but 0 stops with the routine and the shape
static int galore_gpu_info(GaloreGpu* g) {
    int info = 0;
    cudaCheck(cudaMemcpyAsync(&info, g->d_info, sizeof(int), cudaMemcpyDeviceToHost, g->stream));
    cudaCheck(cudaStreamSynchronize(g->stream));
    return info;
}

// gesvd (jobu, jobvt as LAPACK's) of the column-major rows x cols `in` (rows >= cols; destroyed),
// its workspace and rwork from g->work (galore_gpu_gesvd_lwork, counted in g->lwork): devInfo
static int galore_gpu_gesvd(GaloreGpu* g, signed char jobu, signed char jobvt, int rows, int cols, float* in, float* u, int ldu, float* vt,
                            int ldvt) {
    size_t off = galore_gesvd_work_offset(cols);
    int lw = 0;
    cusolverCheck(cusolverDnSgesvd_bufferSize(g->solver, rows, cols, &lw));
    if ((int64_t)off + lw > g->lwork) die("internal: gesvd of %d x %d needs %lld floats of workspace, %d queried", rows, cols, (long long)off + lw, g->lwork);
    cusolverCheck(cusolverDnSgesvd(g->solver, jobu, jobvt, rows, cols, in, rows, g->S, u, ldu, vt, ldvt, g->work + off, lw, g->work, g->d_info));
    return galore_gpu_info(g);
}

// a (rows x cols, column-major, rows >= cols) := the orthonormal Q of its QR (geqrf + orgqr)
static void galore_gpu_orthonormalize(GaloreGpu* g, float* a, int rows, int cols, float* tau, float* work, int lwork, int tensor) {
    cusolverCheck(cusolverDnSgeqrf(g->solver, rows, cols, a, rows, tau, work, lwork, g->d_info));
    int info = galore_gpu_info(g);
    if (info == 0) {
        cusolverCheck(cusolverDnSorgqr(g->solver, rows, cols, cols, a, rows, tau, work, lwork, g->d_info));
        info = galore_gpu_info(g);
    }
    if (info != 0) die("internal: cuSOLVER QR (geqrf/orgqr) of a %d x %d sketch of tensor %d failed (info %d)", rows, cols, tensor, info);
}

// --- golore (issue 15) ---
// galore_gpu_proj_gaussian_orth: --proj random's projector (train_llama.c's galore_proj_gaussian_orth,
// the CPU's): the len x r column-major standard Gaussian of galore_proj_seed (galore_gaussian: the
// CPU's very bits) in Uf, cuSOLVER geqrf + orgqr (tau at work[0], the routines' workspace after it,
// both in the queried g->lwork; devInfo checked), the r columns gathered into P's layout in A, the
// sign convention, then the bf16 projector P and its fp32 copy Pf (which aliases Uf: written last).
// The QR's rounding differs from LAPACK's (another blocking), so P matches the CPU's to ~len u, not
// bitwise; every GPU rank runs the same kernels on the same bits and so agrees with the others.
static void galore_gpu_proj_gaussian_orth(GaloreGpu* g, const TensorLayout* l, floatX* P, int tensor, const int* skip = NULL) {
    cudaStream_t s = g->stream;
    int right = l->side == SIDE_RIGHT;
    int len = (int)(right ? l->n : l->m), r = (int)l->r;
    uint64_t seed = galore_proj_seed(g->run_seed, tensor, galore_svd_round(g->refreshes, g->n_galore));
    float* Q = g->Uf; // (len, r) <= max_full
    galore_gaussian_fill(Q, (size_t)len * r, seed, s);
    size_t off = galore_gesvd_work_offset(r);
    if ((int64_t)off >= g->lwork) die("internal: the cuSOLVER workspace (%d floats) cannot hold the QR of tensor %d", g->lwork, tensor);
    galore_gpu_orthonormalize(g, Q, len, r, g->work, g->work + off, g->lwork - (int)off, tensor);
    float* pg = g->A;
    galore_gather_kernel<<<grid_for((size_t)len * r, 256), 256, 0, s>>>(pg, Q, 1, len, len, r, right);
    cudaCheckLaunch();
    galore_sign_fix_kernel<<<(unsigned)r, SIGNFIX_THREADS, 0, s>>>(pg, right, len, r);
    cudaCheckLaunch();
    galore_narrow(P, pg, (size_t)l->proj_numel, s, skip); // a skipped update keeps its old P (galore_gpu_refresh)
    galore_widen(g->Pf, P, (size_t)l->proj_numel, 1.0f, s); // as the SVD path: later steps use the bf16 one
    g->refreshes++;
}
// --- end golore ---

// galore_gpu_range_finder: the randomized refresh (galore.h; train_llama.c's galore_range_finder
// is the CPU's, with the same Omega) from the fp32 G^T in g->A (column-major (Nn, M), which it
// overwrites). Returns U = Q U_B[:, :r], the top-r vectors as the columns of a column-major
// (len, r) matrix in g->Vf. A (len x other) is G^T read as stored (right: len = Nn) or its
// transpose (left: len = M). Scratch, all inside the exact path's buffers (l <= min(m, n)):
//   Uf  (len, l)    the sketch Y, then its Q
//   Vf  (other, l)  Omega, then A^T Q and its Q, then B^T = A^T Q; at the end U (len, r)
//   A   (other, l)  gesvdj's left factor of B^T (G is no longer needed by then)
//   work            tau (l), U_B (l, l), then the cuSOLVER workspace (galore_gpu_rand_lwork)
// B^T = Ux S Vx^T (gesvdj, tall and thin) gives B = Q^T A = Vx S Ux^T: U_B = Vx. If gesvdj does not
// converge (or force_gesvd), gesvd of B^T from a re-widened G (jobu 'N', V^T into U_B's place).
static const float* galore_gpu_range_finder(GaloreGpu* g, const TensorLayout* l, const floatX* G, float gscale, int tensor, const int* skip) {
    cudaStream_t s = g->stream;
    int M = (int)l->m, Nn = (int)l->n, r = (int)l->r, len, other, w;
    galore_rand_dims(l, &len, &other, &w);
    cublasOperation_t opA = l->side == SIDE_RIGHT ? CUBLAS_OP_N : CUBLAS_OP_T, opAt = l->side == SIDE_RIGHT ? CUBLAS_OP_T : CUBLAS_OP_N;
    size_t ub, ws;
    galore_rand_offsets(w, &ub, &ws);
    float* tau = g->work;       // (l)
    float* Ub = g->work + ub;   // (l, l)
    float* work = g->work + ws; // the rest: at least galore_gpu_rand_lwork's
    int lwork = g->lwork - (int)ws;
    float *Q = g->Uf, *Z = g->Vf;
    const float one = 1.0f, zero = 0.0f;
    cublasCheck(cublasSetStream(g->blas, s));
    galore_gaussian_fill(Z, (size_t)other * w, galore_svd_seed(tensor, galore_svd_round(g->refreshes, g->n_galore)), s); // Omega (other, l)
    cublasCheck(cublasSgemm(g->blas, opA, CUBLAS_OP_N, len, w, other, &one, g->A, Nn, Z, other, &zero, Q, len));   // Y = A Omega
    galore_gpu_orthonormalize(g, Q, len, w, tau, work, lwork, tensor);
    for (int it = 0; it < GALORE_SVD_POWER_ITERS; it++) {
        cublasCheck(cublasSgemm(g->blas, opAt, CUBLAS_OP_N, other, w, len, &one, g->A, Nn, Q, len, &zero, Z, other)); // Z = A^T Q
        galore_gpu_orthonormalize(g, Z, other, w, tau, work, lwork, tensor);
        cublasCheck(cublasSgemm(g->blas, opA, CUBLAS_OP_N, len, w, other, &one, g->A, Nn, Z, other, &zero, Q, len));  // Y = A Z
        galore_gpu_orthonormalize(g, Q, len, w, tau, work, lwork, tensor);
    }
    cublasCheck(cublasSgemm(g->blas, opAt, CUBLAS_OP_N, other, w, len, &one, g->A, Nn, Q, len, &zero, Z, other));     // B^T = A^T Q
    int info = 0;
    if (!g->force_gesvd) {
        cusolverCheck(cusolverDnSgesvdj(g->solver, CUSOLVER_EIG_MODE_VECTOR, 1, other, w, Z, other, g->S, g->A, other, Ub, w, work, lwork,
                                        g->d_info, g->jparams));
        info = galore_gpu_info(g);
    }
    cublasOperation_t opU = CUBLAS_OP_N; // U_B = Vx as stored (gesvdj), or (V^T)^T (gesvd)
    if (g->force_gesvd || info != 0) {
        if (g->gesvd_fallbacks++ == 0 && !g->force_gesvd)
            printf("note: cuSOLVER gesvdj returned info %d on the %d x %d sketch of tensor %d; using gesvd for such refreshes\n", info, other, w,
                   tensor);
        galore_widen(g->A, G, (size_t)M * Nn, gscale, s, skip); // gesvdj overwrote A, and B^T with it
        cublasCheck(cublasSgemm(g->blas, opAt, CUBLAS_OP_N, other, w, len, &one, g->A, Nn, Q, len, &zero, Z, other));
        // U_B lives in g->work, which gesvd's rwork and workspace would overwrite: V^T goes to A
        // (other x l >= l x l floats, free: gesvd's U is not computed) and is copied back
        info = galore_gpu_gesvd(g, 'N', 'A', other, w, Z, g->A, other, g->A, w);
        if (info == 0) cudaCheck(cudaMemcpyAsync(Ub, g->A, sizeof(float) * (size_t)w * w, cudaMemcpyDeviceToDevice, s));
        if (info != 0) die("randomized SVD of the gradient of tensor %d (%d x %d) failed: cuSOLVER gesvdj and gesvd info %d on its %d x %d sketch; "
                           "hint: a NaN gradient?", tensor, M, Nn, info, other, w);
        opU = CUBLAS_OP_T;
    }
    // U (len, r) = Q (len, l) U_B[:, :r]; with gesvd's V^T (l, l), U_B[:, :r] = (its first r rows)^T
    cublasCheck(cublasSgemm(g->blas, CUBLAS_OP_N, opU, len, r, w, &one, Q, len, Ub, w, &zero, g->Vf, len));
    return g->Vf;
}

// galore_gpu_refresh: P (bf16, the stored projector: (r, n) right, (m, r) left) from the SVD of
// gscale * G (bf16 (m, n)). Leaves the fp32 projector (the bf16 one widened) in g->Pf (= Uf). The
// top-r vectors are gathered into whichever of A / Vf the SVD no longer needs (not the one holding them).
// skip (the per-layer device-side verdict, NULL: none): when set as it runs, the SVD runs on zeros
// and P keeps its old value (the caller undoes its host-side counts at the end of the step).
static void galore_gpu_refresh(GaloreGpu* g, const TensorLayout* l, const floatX* G, float gscale, floatX* P, int tensor,
                               const int* skip = NULL) {
    if (g->projector == PROJECTOR_RANDOM) { galore_gpu_proj_gaussian_orth(g, l, P, tensor, skip); return; } // GoLore: no SVD, G unused
    cudaStream_t s = g->stream;
    int64_t M = l->m, Nn = l->n, K = M < Nn ? M : Nn, r = l->r;
    int right = l->side == SIDE_RIGHT;
    size_t full = (size_t)(M * Nn);
    galore_widen(g->A, G, full, gscale, s, skip);
    // X = G^T as column-major (Nn, M), lda Nn
    int rows = (int)Nn, cols = (int)M;
    int info = 0;
    int randomized = l->svd == SVD_RANDOMIZED; // galore_svd_pick's choice for this shape and --svd
    // the exact solver: gesvdj up to GALORE_GESVDJ_MAX_DIM (galore_exact_gesvdj), gesvd above
    int jacobi = !randomized && !g->force_gesvd && (g->force_gesvdj || galore_exact_gesvdj(M, Nn));
    if (jacobi) {
        int need = galore_gpu_gesvdj_lwork(g, rows, cols);
        if (need > g->lwork) die("internal: gesvdj of %d x %d needs %d floats of workspace, %d queried (force_gesvdj without galore_gpu_force_gesvdj?)", rows, cols,
                                 need, g->lwork);
        cusolverCheck(cusolverDnSgesvdj(g->solver, CUSOLVER_EIG_MODE_VECTOR, 1, rows, cols, g->A, rows, g->S, g->Uf, rows, g->Vf, cols,
                                        g->work, g->lwork, g->d_info, g->jparams));
        info = galore_gpu_info(g);
    }
    const float* base;
    int64_t si, sj;
    if (randomized) {
        // U's columns (length len = Nn right, M left), ld len
        base = galore_gpu_range_finder(g, l, G, gscale, tensor, skip); si = 1; sj = right ? Nn : M;
        g->n_randomized++;
    } else if (jacobi && info == 0) {
        // right vectors of G = Ux columns (Nn, K); left ones = Vx columns (M, K)
        if (right) { base = g->Uf; si = 1; sj = Nn; } else { base = g->Vf; si = 1; sj = M; }
        g->n_gesvdj++;
    } else {
        // the rule's gesvd, or gesvdj did not converge (info > 0) / rejected the input: LAPACK-style
        // gesvd, which wants rows >= cols (cuSOLVER's gesvd supports only m >= n)
        if (jacobi) {
            if (g->gesvd_fallbacks++ == 0)
                printf("note: cuSOLVER gesvdj returned info %d on tensor %d (%lld x %lld); using gesvd for such refreshes\n", info, tensor,
                       (long long)M, (long long)Nn);
            galore_widen(g->A, G, full, gscale, s, skip); // gesvdj overwrote A
        }
        g->n_gesvd++;
        int gr, gc;
        float *in, *u, *vt;
        if (Nn >= M) { gr = (int)Nn; gc = (int)M; in = g->A; u = g->Uf; vt = g->Vf; }      // X = G^T (Nn, M)
        else {                                                                              // Y = G (M, Nn) col-major
            galore_transpose_kernel<<<grid_for(full, 256), 256, 0, s>>>(g->Vf, g->A, Nn, M);
            cudaCheckLaunch();
            gr = (int)M; gc = (int)Nn; in = g->Vf; u = g->Uf; vt = g->A;
        }
        // jobu = jobvt = 'S': the first K columns of U (gr x K, ld gr) and rows of V^T (K x gc, ld K)
        info = galore_gpu_gesvd(g, 'S', 'S', gr, gc, in, u, gr, vt, (int)K);
        if (info != 0) die("SVD of the gradient of tensor %d (%lld x %lld) failed: cuSOLVER %s info %d; hint: a NaN gradient?",
                           tensor, (long long)M, (long long)Nn, jacobi ? "gesvdj and gesvd" : "gesvd", info);
        // U: (gr, K) ld gr, the vectors of length gr; VT: (K, gc) ld K, the vectors of length gc (row j)
        int u_is_right = Nn >= M; // gr == Nn: U holds G's right vectors
        if (right == u_is_right) { base = u; si = 1; sj = gr; }
        else { base = vt; si = K; sj = 1; }
    }
    int64_t len = right ? Nn : M;
    // base lies in Uf or Vf (gesvdj, randomized, gesvd with Nn >= M: A was the destroyed input) or in
    // Uf or A (gesvd with Nn < M: Vf was the destroyed transposed input)
    float* pg = base == g->A ? g->Vf : g->A;
    galore_gather_kernel<<<grid_for((size_t)(len * r), 256), 256, 0, s>>>(pg, base, si, sj, len, r, right);
    cudaCheckLaunch();
    galore_sign_fix_kernel<<<(unsigned)r, SIGNFIX_THREADS, 0, s>>>(pg, right, len, r);
    cudaCheckLaunch();
    galore_narrow(P, pg, (size_t)l->proj_numel, s, skip);
    galore_widen(g->Pf, P, (size_t)l->proj_numel, 1.0f, s); // later steps back-project with the stored bf16 projector
    g->refreshes++;
}

// ----------------------------------------------------------------------------
// projection

// R = alpha * (G P^T) right (m, r) / alpha * (P^T G) left (r, n), + beta * R. G, P bf16; R fp32
// (r_f32 1) or bf16 (low-rank accumulator)
static void galore_gpu_project(GaloreGpu* g, const TensorLayout* l, const floatX* G, const floatX* P, void* R, int r_f32, float alpha,
                               float beta) {
    int M = (int)l->m, Nn = (int)l->n, r = (int)l->r;
    cudaDataType_t rt = r_f32 ? CUDA_R_32F : CUDA_R_16BF;
    cublasCheck(cublasSetStream(g->blas, g->stream));
    if (l->side == SIDE_RIGHT) {
        // R^T (r, m) = P (col-major (n, r), transposed) * G^T (col-major (n, m))
        cublasCheck(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, r, M, Nn, &alpha, P, CUDA_R_16BF, Nn, G, CUDA_R_16BF, Nn, &beta, R, rt, r,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        // R^T (n, r) = G^T (col-major (n, m)) * P (col-major (r, m), transposed)
        cublasCheck(cublasGemmEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, Nn, r, M, &alpha, G, CUDA_R_16BF, Nn, P, CUDA_R_16BF, r, &beta, R, rt, Nn,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

// U (m, n) fp32 = scale * (Nl P) right / scale * (P Nl) left, with Pf the fp32 projector; beta 1
// adds into U (Fira: the residual already there)
static void galore_gpu_project_back(GaloreGpu* g, const TensorLayout* l, const float* Nl, const float* Pf, float* U, float scale, float beta) {
    int M = (int)l->m, Nn = (int)l->n, r = (int)l->r;
    cublasCheck(cublasSetStream(g->blas, g->stream));
    if (l->side == SIDE_RIGHT) {
        // U^T (n, m) = P^T (col-major (n, r)) * N^T (col-major (r, m))
        cublasCheck(cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, Nn, M, r, &scale, Pf, Nn, Nl, r, &beta, U, Nn));
    } else {
        // U^T (n, m) = N^T (col-major (n, r)) * P^T (col-major (r, m))
        cublasCheck(cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, Nn, M, r, &scale, Nl, Nn, Pf, r, &beta, U, Nn));
    }
}

// ----------------------------------------------------------------------------
// elementwise steps (fp32 math; TP the updated tensor: bf16 weights or fp32 masters with pbf their
// bf16 copy; TM the moments: bf16 or fp32; TG the gradient)

__device__ static inline void gl_store(floatX* p, float v, int sr, uint32_t seed, size_t i) { *p = sr ? f2bf_stochastic(v, seed, i) : f2bf(v); }
__device__ static inline void gl_store(float* p, float v, int sr, uint32_t seed, size_t i) { (void)sr; (void)seed; (void)i; *p = v; }

// the low-rank HF AdamW direction: Nl = m / (sqrt(v) + eps) after the moment updates (adam_hf_elem);
// TN float (unfused) or floatX (fused: rounded to nearest, the GEMM's input)
// A skipped update (update_skipped) writes Nl = 0, which the fused GEMM multiplies by its alpha 0
// (0 * a stale or NaN N would not be 0), and leaves m, v alone.
template <class TM, class TN>
__global__ void galore_hf_lowrank_kernel(TN* Nl, const float* R, TM* m, TM* v, size_t n, float b1, float b2, float eps, int sr, uint32_t seed,
                                         const int* skip) {
    int skipped = update_skipped(skip);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (skipped) { gl_store(&Nl[i], 0.0f, 0, 0u, i); continue; }
        float mf = to_f32(m[i]), vf = to_f32(v[i]);
        gl_store(&Nl[i], adam_hf_elem(R[i], &mf, &vf, b1, b2, eps), 0, 0u, i);
        gl_store(&m[i], mf, sr, seed ^ 0x68bc21ebU, i);
        gl_store(&v[i], vf, sr, seed ^ 0x02e5be93U, i);
    }
}
template <class TM, class TN>
static void galore_hf_lowrank(TN* Nl, const float* R, TM* m, TM* v, size_t n, float b1, float b2, float eps, int sr, uint32_t seed, cudaStream_t s,
                              const int* skip = NULL) {
    galore_hf_lowrank_kernel<TM, TN><<<grid_for(n, 256), 256, 0, s>>>(Nl, R, m, v, n, b1, b2, eps, sr, seed, skip);
    cudaCheckLaunch();
}

// p = p + neg_step * U, then (wd on) p = p + dec * p: the CPU's two passes, rounded once
template <class TP>
__global__ void galore_apply_kernel(TP* p, floatX* pbf, const float* U, size_t n, float neg_step, int decay_on, float dec, int sr, uint32_t seed,
                                    const int* skip) {
    if (update_skipped(skip)) return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float pf = to_f32(p[i]);
        pf = pf + neg_step * U[i];
        if (decay_on) pf = pf + dec * pf;
        gl_store(&p[i], pf, sr, seed, i);
        if (pbf != NULL) pbf[i] = f2bf(pf);
    }
}
template <class TP>
static void galore_apply(TP* p, floatX* pbf, const float* U, size_t n, float neg_step, int decay_on, float dec, int sr, uint32_t seed, cudaStream_t s,
                         const int* skip = NULL) {
    galore_apply_kernel<TP><<<grid_for(n, 256), 256, 0, s>>>(p, pbf, U, n, neg_step, decay_on, dec, sr, seed, skip);
    cudaCheckLaunch();
}

// a full-rank tensor under galore_adamw: p = p + (-step_size) * adam_hf_elem(g), then the decay
template <class TP, class TM>
__global__ void galore_hf_full_kernel(TP* p, floatX* pbf, const floatX* g, TM* m, TM* v, size_t n, float b1, float b2, float eps,
                                      float neg_step, int decay_on, float dec, float gscale, int sr, uint32_t seed, const int* skip) {
    if (update_skipped(skip)) return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float mf = to_f32(m[i]), vf = to_f32(v[i]);
        float pf = to_f32(p[i]);
        pf = pf + neg_step * adam_hf_elem(bf2f(g[i]) * gscale, &mf, &vf, b1, b2, eps);
        if (decay_on) pf = pf + dec * pf;
        gl_store(&m[i], mf, sr, seed ^ 0x68bc21ebU, i);
        gl_store(&v[i], vf, sr, seed ^ 0x02e5be93U, i);
        gl_store(&p[i], pf, sr, seed, i);
        if (pbf != NULL) pbf[i] = f2bf(pf);
    }
}
template <class TP, class TM>
static void galore_hf_full(TP* p, floatX* pbf, const floatX* g, TM* m, TM* v, size_t n, float b1, float b2, float eps, float neg_step,
                           int decay_on, float dec, float gscale, int sr, uint32_t seed, cudaStream_t s, const int* skip = NULL) {
    galore_hf_full_kernel<TP, TM><<<grid_for(n, 256), 256, 0, s>>>(p, pbf, g, m, v, n, b1, b2, eps, neg_step, decay_on, dec, gscale, sr, seed, skip);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// the fused update

// galore_fused_coefs: alpha, beta of W = beta W + alpha (N P), derived from what the unfused path
// computes per element (galore_apply, the CPU's optimizer_update), with U = scale (N P) and
// dec = -lr wd, the decay pass running only when wd > 0:
//   galore_adamw (kind8 0): N = m / (sqrt(v) + eps) (adam_hf_elem), step_size = lr sqrt(1 - b2^t) / (1 - b1^t)
//     p1 = p + (-step_size) U;  p2 = p1 + dec p1 = (1 + dec) p1
//     => p2 = (1 + dec) p + (1 + dec) (-step_size) scale (N P):  beta = 1 + dec, alpha = -(1 + dec) step_size scale
//   galore_adamw8bit (kind8 1): N = the kernel's result on a zero parameter, step8 m / (sqrt(v) + c2 eps) with
//     its own step8 = -lr c2 / c1 inside (bitsandbytes' bias correction; no decay in the kernel)
//     p1 = p + 1 U;  p2 = (1 + dec) p1  =>  beta = 1 + dec, alpha = (1 + dec) scale
// Without decay beta = 1 exactly. What differs from the unfused path is rounding only: N is rounded
// to bf16 (2^-9 of each element, where the unfused path keeps fp32), the products accumulate in
// another order, and (1 + dec) multiplies once in the epilogue instead of as p1 + dec p1; the weight
// is rounded to bf16 once in both.
static void galore_fused_coefs(int kind8, float step_size, float scale, float lr, float wd, float* alpha, float* beta) {
    float b = wd > 0.0f ? 1.0f + (-lr * wd) : 1.0f;
    *beta = b;
    *alpha = kind8 ? b * scale : b * (-step_size) * scale;
}

// the fused GEMM's alpha, beta into device memory: a skipped update's are 0 and 1, so with its Nb
// zeroed (the Adam kernels) W = 1 W + 0 exactly (but for the sign of a zero weight: -0 + 0 = +0)
__global__ void galore_fused_scalars_kernel(float* ab, const int* skip, float alpha, float beta) {
    int skipped = update_skipped(skip);
    ab[0] = skipped ? 0.0f : alpha;
    ab[1] = skipped ? 1.0f : beta;
}

// W (m, n) bf16 = beta W + alpha (Nb P) right / alpha (P Nb) left, Nb bf16 ((m, r) right, (r, n)
// left), P the stored bf16 projector: one GEMM with fp32 accumulation and epilogue, in place (C = D,
// same layout, which cuBLASLt supports), W rounded to nearest once. gemm_bf16_scaled takes
// cublasGemmEx where cuBLASLt's heuristic has no algorithm (odd ranks or leading dimensions,
// 2-byte aligned slices of the weight buffer), so any r works. alpha and beta go through d_ab
// (device, 2 floats) with the device pointer mode, always (skip NULL too), so the per-layer and
// whole-model updates run the same cuBLASLt algorithm and agree bit for bit.
static void galore_gpu_update_fused(MatmulCtx* mm, const TensorLayout* l, floatX* W, const floatX* Nb, const floatX* P, float alpha,
                                    float beta, const int* skip, float* d_ab, cudaStream_t s) {
    int M = (int)l->m, Nn = (int)l->n, r = (int)l->r;
    galore_fused_scalars_kernel<<<1, 1, 0, s>>>(d_ab, skip, alpha, beta);
    cudaCheckLaunch();
    if (l->side == SIDE_RIGHT) {
        // W^T (n, m) = P^T (col-major (n, r)) * N^T (col-major (r, m)), as galore_gpu_project_back
        gemm_bf16_scaled_dev(mm, 0, 0, Nn, M, r, d_ab, P, Nn, Nb, r, W, Nn, s);
    } else {
        // W^T (n, m) = N^T (col-major (n, r)) * P^T (col-major (r, m))
        gemm_bf16_scaled_dev(mm, 0, 0, Nn, M, r, d_ab, Nb, Nn, P, r, W, Nn, s);
    }
}

// ----------------------------------------------------------------------------
// per-channel sums of squares (Fira's phi, APOLLO's factors: the CPU's channel_sumsq), fp64 in a
// fixed order (deterministic). Then the limiter of both on the device (one thread: its state is
// device memory in the plan's limiter row, the divisor goes to device memory read by pointer).
// out[row] = sum_j (scale x[row, j])^2 in double, x (rows, cols) row-major: one block per row,
// per-thread strided sums then a fixed tree (the same order every run)
#define CHANNEL_SUMSQ_THREADS 256
template <class T>
__global__ void channel_sumsq_rows_kernel(const T* x, int64_t cols, float scale, double* out) {
    __shared__ double sh[CHANNEL_SUMSQ_THREADS];
    const T* row = x + (int64_t)blockIdx.x * cols;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = to_f32(row[j]) * scale;
        acc += (double)v * v;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = sh[0];
}
// out[col] = sum_i (scale x[i, col])^2 in double, tiled: a block takes CHANNEL_SUMSQ_COLS
// neighbouring columns (a warp reads 32 neighbouring elements of a row: coalesced) and
// CHANNEL_SUMSQ_STRANDS strands of rows, strand y adding rows y, y + STRANDS, ... in order, then a
// fixed tree over the strands (the same order every run). Why not a thread per column (the rows
// in order, as before): at a 7B down_proj (4096 x 11008, APOLLO channel-wise, left side) that is
// 11008 threads on 43 of 132 SMs, each with ~4 loads in flight: ~90-180 KB in flight at ~0.6 us
// latency, ~0.15-0.3 TB/s, ~0.6 ms per 90 MB matrix; 16 strands give 176k threads (~1.4 MB in
// flight), near the memory's speed (~30-55 us) (issue 22)
#define CHANNEL_SUMSQ_COLS 32
#define CHANNEL_SUMSQ_STRANDS 16
template <class T>
__global__ void channel_sumsq_cols_kernel(const T* x, int64_t rows, int64_t cols, float scale, double* out) {
    __shared__ double sh[CHANNEL_SUMSQ_STRANDS][CHANNEL_SUMSQ_COLS];
    int64_t c = (int64_t)blockIdx.x * CHANNEL_SUMSQ_COLS + threadIdx.x;
    double acc = 0.0;
    if (c < cols)
        for (int64_t i = threadIdx.y; i < rows; i += CHANNEL_SUMSQ_STRANDS) {
            float v = to_f32(x[i * cols + c]) * scale;
            acc += (double)v * v;
        }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    for (int o = CHANNEL_SUMSQ_STRANDS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.y < o) sh[threadIdx.y][threadIdx.x] += sh[threadIdx.y + o][threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.y == 0 && c < cols) out[c] = sh[0][threadIdx.x];
}
// by_row: rows sums into out (rows), else column sums (cols)
template <class T>
static void channel_sumsq_gpu(const T* x, int64_t rows, int64_t cols, int by_row, float scale, double* out, cudaStream_t s) {
    if (by_row) channel_sumsq_rows_kernel<T><<<(unsigned)rows, CHANNEL_SUMSQ_THREADS, 0, s>>>(x, cols, scale, out);
    else {
        dim3 block(CHANNEL_SUMSQ_COLS, CHANNEL_SUMSQ_STRANDS);
        channel_sumsq_cols_kernel<T><<<(unsigned)((cols + CHANNEL_SUMSQ_COLS - 1) / CHANNEL_SUMSQ_COLS), block, 0, s>>>(x, rows, cols, scale, out);
    }
    cudaCheckLaunch();
}

// fira_limit_kernel (one thread): the norm-growth limiter of one matrix (galore.h's fira_limiter)
// from ||S||^2 as NORM_BLOCKS fixed-grid partials (sumsq_partials), added in order in double;
// *lim_state is the matrix's state (device, the plan's limiter row), *d_lim gets the divisor.
// A skipped update (update_skipped) leaves both alone, as the CPU engine, which never runs it.
__global__ void fira_limit_kernel(const double* part, float* lim_state, int first, float* d_lim, const int* skip) {
    if (update_skipped(skip)) return;
    double ss = 0.0;
    for (int b = 0; b < NORM_BLOCKS; b++) ss += part[b];
    float next;
    *d_lim = fira_limiter((float)sqrt(ss), *lim_state, first, &next);
    *lim_state = next;
}
// apollo_scale: the factors sc (nch floats) and the limiter of one APOLLO matrix from its channel
// sums dsum (galore.h's apollo_factors: G's nG, R's and D's nR each; ds2 scales D's sums, the
// 8-bit kind's apollo_dir_scale squared) and the limiter (apollo_limiter): the CPU's apollo_update.
// *lim_state: the matrix's limiter state (device); *d_lim gets the divisor. A skipped update
// changes nothing. Channel-wise, a thread per channel runs apollo_channel (its factor, and its term
// of ||S||^2 into D's slot, consumed), then the limiter kernel adds the terms; tensor-wise it adds
// the three sums and runs apollo_channel once. Every sum is galore.h's apollo_sum, as the CPU's
// apollo_factors adds them: one block of APOLLO_SUM_STRANDS threads, a thread a strand, then the
// pairs (a 7B matrix has up to 11008 channels: one thread adding them waited ~0.4 ms).
__global__ void apollo_factors_kernel(float* sc, double* dsum, int64_t nch, double ds2, const int* skip) {
    if (update_skipped(skip)) return;
    const double *hG = dsum, *hR = dsum + nch;
    double* hD = dsum + 2 * nch;
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < nch; c += (int64_t)gridDim.x * blockDim.x)
        sc[c] = apollo_channel(hG[c], hR[c], hD[c], ds2, &hD[c]); // hD[c] is read (by value) before the term replaces it
}
// apollo_sum of x (n) by the block (APOLLO_SUM_STRANDS threads): every thread gets it
__device__ static double apollo_block_sum(const double* x, int64_t n, double* part) {
    int s = threadIdx.x;
    part[s] = apollo_strand_sum(x, n, s);
    __syncthreads();
    for (int o = APOLLO_SUM_STRANDS / 2; o > 0; o >>= 1) {
        if (s < o) part[s] = GALORE_DADD(part[s], part[s + o]);
        __syncthreads();
    }
    double r = part[0];
    __syncthreads(); // part is reused by the next call
    return r;
}
__global__ void __launch_bounds__(APOLLO_SUM_STRANDS) apollo_limit_kernel(float* sc, double* dsum, int64_t nG, int64_t nR, int64_t nch, int tw,
                                                                            double ds2, float* lim_state, int first, float* d_lim, const int* skip) {
    __shared__ double part[APOLLO_SUM_STRANDS];
    if (update_skipped(skip)) return; // the whole block alike
    double ssS;
    if (tw) {
        double sg = apollo_block_sum(dsum, nG, part), sr = apollo_block_sum(dsum + nG, nR, part), sd = apollo_block_sum(dsum + nG + nR, nR, part);
        float f = apollo_channel(sg, sr, sd, ds2, &ssS); // the CPU's apollo_sum of this one term: (0 + term) + 0 ... = term (>= +0)
        if (threadIdx.x == 0) sc[0] = f;
    } else {
        ssS = apollo_block_sum(dsum + 2 * nch, nch, part); // apollo_factors_kernel's terms
    }
    if (threadIdx.x == 0) *d_lim = apollo_limiter((float)sqrt(ssS), lim_state, first);
}
static void apollo_scale(float* sc, double* dsum, int64_t nG, int64_t nR, int64_t nch, int tw, double ds2, float* lim_state, int first,
                         float* d_lim, const int* skip, cudaStream_t s) {
    if (!tw) {
        // channel-wise, G's and R's (and D's) channels are the same rows or columns
        if (nG != nch || nR != nch) die("internal: APOLLO channel-wise with %lld channels but %lld and %lld sums", (long long)nch, (long long)nG, (long long)nR);
        apollo_factors_kernel<<<grid_for((size_t)nch, 256), 256, 0, s>>>(sc, dsum, nch, ds2, skip);
        cudaCheckLaunch();
    }
    apollo_limit_kernel<<<1, APOLLO_SUM_STRANDS, 0, s>>>(sc, dsum, nG, nR, nch, tw, ds2, lim_state, first, d_lim, skip);
    cudaCheckLaunch();
}

// --- fira (issue 15) ---
// Fira's residual on the GPU (galore.h's Fira block; train_llama.c's fira_residual is the CPU's):
// the per-channel scale phi from channel_sumsq_gpu's sums of N and R, U = alpha back(R) by
// cublasSgemm, U = phi (G - U) elementwise, ||U|| from fixed-grid partials, the limiter on the
// device (fira_limit_kernel), U /= lim read by pointer: no host round trip.
__global__ void fira_phi_kernel(float* phi, const double* ssN, const double* ssR, int64_t nch) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < nch; c += (int64_t)gridDim.x * blockDim.x)
        phi[c] = channel_norm_ratio(ssN[c], ssR[c]);
}
// U (m, n) = phi (x) (gscale G - U); G bf16 row-major, the channel a column (cols) or a row
__global__ void fira_residual_kernel(float* U, const floatX* G, const float* phi, int64_t M, int64_t N, int cols, float gscale) {
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int64_t row = (int64_t)(i / N), col = (int64_t)(i % N);
        U[i] = fira_residual_elem(GALORE_MUL(bf2f(G[i]), gscale), U[i], phi[cols ? col : row]);
    }
}
// U /= *lim (device: fira_limit_kernel's divisor; dividing by 1 is exact, as the CPU's skip of it)
__global__ void fira_divide_kernel(float* U, size_t n, const float* lim, const int* skip) {
    if (update_skipped(skip)) return;
    float d = *lim;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) U[i] = GALORE_DIV(U[i], d);
}

// fira_gpu_residual: g->A = the limited, scaled residual S of a GaLore matrix from its gradient G
// (bf16, times gscale), R and N (fp32, g->R / g->N) and the fp32 projector g->Pf; in g->Vf (free
// outside a refresh; fira_gpu_scratch_fits checks the size): the channel sums of N and R (nch
// doubles each), then phi (nch floats). d_part: NORM_BLOCKS doubles of device scratch. lim_state:
// the matrix's limiter state (device), first its first update; d_lim: one device float, the
// divisor. skip: the per-layer device-side verdict (NULL: none): a skipped update leaves the
// limiter's state alone, as the CPU engine, which never runs it.
static int fira_gpu_scratch_fits(const GaloreGpu* g, const TensorLayout* l) {
    int64_t nch = fira_channel_cols(l) ? l->scols : l->srows;
    return 5 * nch <= g->max_full;
}
static void fira_gpu_residual(GaloreGpu* g, const TensorLayout* l, const floatX* G, float gscale, float scale, float* lim_state, int first,
                              double* d_part, float* d_lim, const int* skip = NULL) {
    cudaStream_t s = g->stream;
    int cols = fira_channel_cols(l);
    int64_t nch = cols ? l->scols : l->srows;
    if (nch != (cols ? l->n : l->m)) die("internal: fira channel count %lld does not match the %lld x %lld gradient", (long long)nch, (long long)l->m, (long long)l->n);
    if (!fira_gpu_scratch_fits(g, l)) die("internal: fira matrix %lld x %lld too small for its channel sums in the scratch", (long long)l->m, (long long)l->n);
    double* ssN = (double*)g->Vf; // cudaMalloc'd: aligned for doubles
    double* ssR = ssN + nch;
    float* phi = (float*)(ssR + nch);
    channel_sumsq_gpu<float>(g->N, l->srows, l->scols, !cols, 1.0f, ssN, s);
    channel_sumsq_gpu<float>(g->R, l->srows, l->scols, !cols, 1.0f, ssR, s);
    fira_phi_kernel<<<grid_for((size_t)nch, 256), 256, 0, s>>>(phi, ssN, ssR, nch);
    cudaCheckLaunch();
    galore_gpu_project_back(g, l, g->R, g->Pf, g->A, scale, 0.0f); // alpha back(R)
    size_t full = (size_t)(l->m * l->n);
    fira_residual_kernel<<<grid_for(full, 256), 256, 0, s>>>(g->A, G, phi, l->m, l->n, cols, gscale);
    cudaCheckLaunch();
    sumsq_partials(d_part, g->A, full, s);
    fira_limit_kernel<<<1, 1, 0, s>>>(d_part, lim_state, first, d_lim, skip);
    cudaCheckLaunch();
    fira_divide_kernel<<<grid_for(full, 256), 256, 0, s>>>(g->A, full, d_lim, skip);
    cudaCheckLaunch();
}
// --- end fira ---
// ----------------------------------------------------------------------------
// APOLLO (galore.h's APOLLO section; train_llama.cu's gpu_apollo_update drives these). The
// projector is the CPU's (galore_proj_random_elem, the same bits in fp32) stored in bf16 like
// GaLore's; R = G P^T by galore_gpu_project; the moments by galore_hf_lowrank (D = m / (sqrt(v) +
// eps) into g->N) or the 8-bit kernels on a zero parameter; then the per-channel sums of squares
// of G, R and D (channel_sumsq_gpu, fp64, fixed order: deterministic), the factors and the limiter
// on the device (apollo_scale: galore.h's apollo_factors and apollo_limiter, the CPU's
// code), and one elementwise pass (apollo_apply, galore.h's apollo_elem) reading the factors and
// the divisor from device memory: no host round trip.

// P (n) bf16 = galore_proj_random_elem(seed, k, scale), k = 0 .. n-1 (P's row-major layout); a
// skipped update (update_skipped) keeps the old P, as the CPU engine, which never draws it
__global__ void apollo_proj_kernel(floatX* P, size_t n, uint64_t seed, float scale, const int* skip) {
    if (update_skipped(skip)) return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        P[i] = f2bf(galore_proj_random_elem(seed, (uint64_t)i, scale));
}
static void apollo_proj_fill(floatX* P, size_t n, uint64_t seed, float scale, cudaStream_t s, const int* skip = NULL) {
    apollo_proj_kernel<<<grid_for(n, 256), 256, 0, s>>>(P, n, seed, scale, skip);
    cudaCheckLaunch();
}

// W (m, n) = apollo_elem(W, gscale G, sc[channel], *d_lim, sqrt(scale), step_size), then the decay
// (wd on): the CPU's apollo_update per element; TP bf16 weights or fp32 masters with pbf their copy
template <class TP>
__global__ void apollo_apply_kernel(TP* p, floatX* pbf, const floatX* g, const float* sc, int64_t M, int64_t N, int side, int tw, const float* d_lim,
                                    float sq, float step_size, int decay_on, float dec, float gscale, int sr, uint32_t seed, const int* skip) {
    if (update_skipped(skip)) return;
    float lim = *d_lim;
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int64_t a = (int64_t)(i / N), b = (int64_t)(i % N);
        float pf = apollo_elem(to_f32(p[i]), bf2f(g[i]) * gscale, sc[apollo_channel_of(side, tw, a, b)], lim, sq, step_size);
        if (decay_on) pf = pf + dec * pf;
        gl_store(&p[i], pf, sr, seed, i);
        if (pbf != NULL) pbf[i] = f2bf(pf);
    }
}
template <class TP>
static void apollo_apply(TP* p, floatX* pbf, const floatX* g, const float* sc, const TensorLayout* l, int tw, const float* d_lim, float sq,
                         float step_size, int decay_on, float dec, float gscale, int sr, uint32_t seed, cudaStream_t s, const int* skip = NULL) {
    size_t n = (size_t)(l->m * l->n);
    apollo_apply_kernel<TP><<<grid_for(n, 256), 256, 0, s>>>(p, pbf, g, sc, l->m, l->n, l->side, tw, d_lim, sq, step_size, decay_on, dec, gscale, sr, seed,
                                                         skip);
    cudaCheckLaunch();
}
// ---- end APOLLO ----

#endif // GALORE_CUH
