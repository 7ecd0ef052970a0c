/*
The GaLore projector refresh of galore.cuh (galore_gpu_refresh) by each of its methods:
  gesvdj      the exact economy SVD by cuSOLVER's Jacobi gesvdj (--svd exact up to min(m, n) =
              GALORE_GESVDJ_MAX_DIM: galore_exact_gesvdj), forced here at every size
  gesvd       the exact SVD by cuSOLVER's gesvd (--svd exact above that size, and the fallback when
              gesvdj does not converge)
  randomized  galore.h's randomized range finder (--svd randomized): Omega by galore_gaussian on
              the device, q = 2 power iterations with geqrf/orgqr, gesvdj of the small sketch
Validation (small shapes, both sides): each method's bf16 projector against the CPU engine's
(train_llama.c: galore_refresh's LAPACK sgesdd, galore_range_finder for the randomized one, the
same Omega), elementwise under the bf16 bound 4e-3 with no sign flips.
Timing: the shapes of llama_7b (4096x4096, 11008x4096, 4096x11008 at the paper's r 1024) and
llama_1b (2048x2048, 2048x5461 at r 512), and small ranks (r 128): ms per refresh of each method
and the energy each projector keeps of a synthetic gradient with sigma_i = 1/(1+i),
||proj(G)||^2 / (sum of the exact top-r sigma_i^2), next to the choice --svd auto makes
(galore_svd_pick and galore_exact_gesvdj: re-tune their rules from these numbers).
`./svd quick` (what `make -C dev/cuda run` runs) validates, then times the llama_1b shapes by the
methods the rules pick there (not gesvdj above GALORE_GESVDJ_MAX_DIM); `./svd` (`make -C dev/cuda
svd-full`) times every method at every shape, 7B included: minutes (gesvdj of a 7B shape alone may
take a minute or more), so give it its own call on a lent machine.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/svd.cu -o dev/cuda/svd -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/svd [quick]     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"
#include "../../galore.cuh"

enum { M_GESVDJ = 0, M_GESVD, M_RANDOMIZED, M_NUM };
static const char* const METHOD_NAMES[M_NUM] = {"gesvdj", "gesvd", "randomized"};

// the one-tensor layout of an m x n GaLore matrix at rank r (std side rule) for a method
static TensorLayout svd_layout(int m, int n, int r, int method) {
    ParamInfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ndim = 2; pi.rows = m; pi.cols = n; pi.numel = (size_t)m * n; pi.galore = 1;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW; oc.rank = r; oc.update_proj_gap = 200; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    oc.svd = method == M_RANDOMIZED ? SVD_RANDOMIZED : SVD_EXACT;
    TensorLayout lay;
    tensor_layout(&lay, &pi, &oc);
    return lay;
}

// ----------------------------------------------------------------------------
// validation: small shapes against the CPU engine

static void validate(int m, int n, int r, int method, cublasHandle_t blas, cudaStream_t s) {
    TensorLayout lay = svd_layout(m, n, r, method);
    size_t full = (size_t)m * n;
    // G = sum_j 0.6^j u_j v_j^T / sqrt(m n) + noise, Gaussian u, v: a spectrum whose top r are well
    // apart, so every vector is defined to far better than the bf16 bound; bf16 values on both sides
    floatX* hG = host_alloc<floatX>(full);
    float* G = host_alloc<float>(full);
    for (size_t k = 0; k < full; k++) G[k] = 1e-4f * rand_uniform();
    float* u = host_alloc<float>(m);
    float* v = host_alloc<float>(n);
    for (int j = 0; j < r + 12; j++) {
        float sv = (float)(pow(0.6, j) / sqrt((double)m * n));
        for (int a = 0; a < m; a++) u[a] = rand_uniform();
        for (int b = 0; b < n; b++) v[b] = rand_uniform();
        for (int a = 0; a < m; a++) for (int b = 0; b < n; b++) G[(size_t)a * n + b] += 3.0f * sv * u[a] * v[b];
    }
    for (size_t k = 0; k < full; k++) { hG[k] = tobf(G[k]); G[k] = bf(hG[k]); }
    // CPU
    float* cproj = host_alloc<float>(lay.proj_numel);
    if (method == M_RANDOMIZED) {
        cpu::galore_range_finder(G, m, n, r, lay.side, galore_svd_seed(0, galore_svd_round(0, 1)), cproj);
    } else {
        cpu::Optimizer co;
        memset(&co, 0, sizeof co);
        int chas = 0;
        TensorLayout le = lay;
        co.n = 1; co.lay = &le; co.proj = &cproj; co.has_proj = &chas;
        cpu::galore_refresh(&co, 0, G);
    }
    // GPU
    GaloreGpu gg;
    galore_gpu_init(&gg, &lay, 1, blas, s, 0);
    gg.force_gesvd = method == M_GESVD;
    if (method == M_GESVDJ) galore_gpu_force_gesvdj(&gg, &lay, 1);
    floatX* dG = dev_upload(hG, full);
    floatX* dP = (floatX*)cudaMallocCheck(sizeof(floatX) * lay.proj_numel, "P");
    galore_gpu_refresh(&gg, &lay, dG, 1.0f, dP, 0);
    cudaCheck(cudaStreamSynchronize(s));
    floatX* hP = host_alloc<floatX>(lay.proj_numel);
    dev_download(hP, dP, lay.proj_numel);
    int right = lay.side == SIDE_RIGHT, flips = 0;
    int64_t len = right ? n : m;
    double worst = 0.0;
    for (int64_t j = 0; j < r; j++) {
        double dot = 0.0;
        for (int64_t i = 0; i < len; i++) {
            size_t idx = right ? (size_t)(j * len + i) : (size_t)(i * r + j);
            dot += (double)bf(hP[idx]) * cproj[idx];
            worst = fmax(worst, fabs((double)bf(hP[idx]) - cproj[idx]));
        }
        if (dot < 0) flips++;
    }
    // bf16 storage of unit-vector entries (|x| < 1) moves them by up to 2^-9 = 2e-3; the two
    // engines' fp32 arithmetic agrees to ~1e-5 on well separated vectors: bound 4e-3
    check(flips == 0 && worst < 4e-3, "%-10s %dx%d (%s, r %d) vs the CPU (%s): %d sign flips, max abs difference %.2e (bound 4e-3)",
          METHOD_NAMES[method], m, n, right ? "right" : "left", r, method == M_RANDOMIZED ? "galore_range_finder" : "sgesdd", flips, worst);
    galore_gpu_free(&gg);
    cudaCheck(cudaFree(dG)); cudaCheck(cudaFree(dP));
    free(hG); free(G); free(u); free(v); free(cproj); free(hP);
}

// ----------------------------------------------------------------------------
// timing at the paper's shapes

// X (rows, k) column-major: column i *= 1 / sqrt(rows), and by sigma_i = 1 / (1 + i) with sigma 1
__global__ void scale_columns_kernel(float* X, int64_t rows, int64_t k, int sigma) {
    size_t total = (size_t)rows * k;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        int64_t i = (int64_t)(idx / rows);
        X[idx] *= 1.0f / ((sigma ? 1.0f + (float)i : 1.0f) * sqrtf((float)rows));
    }
}

// the synthetic gradient on the device: G (m x n row-major, bf16) = U diag(1/(1+i)) V^T with
// Gaussian U (m x k), V (n x k) over columns / sqrt(length): nearly orthonormal at these sizes, and
// the exact SVD's own singular values are the reference anyway
static floatX* device_gradient(int m, int n, cublasHandle_t blas, cudaStream_t s) {
    int k = m < n ? m : n;
    float* U = (float*)cudaMallocCheck(sizeof(float) * (size_t)m * k, "U");
    float* V = (float*)cudaMallocCheck(sizeof(float) * (size_t)n * k, "V");
    float* Gt = (float*)cudaMallocCheck(sizeof(float) * (size_t)m * n, "G");
    galore_gaussian_fill(U, (size_t)m * k, 11, s);
    galore_gaussian_fill(V, (size_t)n * k, 12, s);
    scale_columns_kernel<<<grid_for((size_t)n * k, 256), 256, 0, s>>>(V, n, k, 1);
    cudaCheckLaunch();
    scale_columns_kernel<<<grid_for((size_t)m * k, 256), 256, 0, s>>>(U, m, k, 0);
    cudaCheckLaunch();
    // G^T (n, m) column-major = V U^T
    const float one = 1.0f, zero = 0.0f;
    cublasCheck(cublasSetStream(blas, s));
    cublasCheck(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, n, m, k, &one, V, n, U, m, &zero, Gt, n));
    floatX* G = (floatX*)cudaMallocCheck(sizeof(floatX) * (size_t)m * n, "G bf16");
    galore_narrow(G, Gt, (size_t)m * n, s);
    cudaCheck(cudaStreamSynchronize(s));
    cudaCheck(cudaFree(U)); cudaCheck(cudaFree(V)); cudaCheck(cudaFree(Gt));
    return G;
}

// the energy a bf16 projector keeps: ||proj(G)||_F^2 in fp32 on the device, summed on the host in double
static double captured(GaloreGpu* g, const TensorLayout* l, const floatX* G, const floatX* P) {
    galore_gpu_project(g, l, G, P, g->R, 1, 1.0f, 0.0f);
    cudaCheck(cudaStreamSynchronize(g->stream));
    float* h = host_alloc<float>(l->snumel);
    dev_download(h, g->R, l->snumel);
    double e = cpu::sumsq(h, l->snumel);
    free(h);
    return e;
}

// quick: skip gesvdj where galore_exact_gesvdj sends the exact refresh to gesvd (the slow case)
static void time_shape(const char* what, int m, int n, int r, int quick, cublasHandle_t blas, cudaStream_t s) {
    int k = m < n ? m : n;
    TensorLayout l0 = svd_layout(m, n, r, M_GESVDJ);
    int jacobi = galore_exact_gesvdj(m, n);
    printf("%s: %d x %d, r %d (%s side, sketch width %lld); --svd auto picks %s, the exact refresh runs %s\n", what, m, n, r,
           l0.side == SIDE_RIGHT ? "right" : "left", (long long)galore_svd_width(m, n, r),
           galore_svd_pick(m, n, r, SVD_AUTO) == SVD_RANDOMIZED ? "randomized" : "exact", jacobi ? "gesvdj" : "gesvd");
    floatX* G = device_gradient(m, n, blas, s);
    double top = -1.0; // sum of the exact top-r sigma^2, from the first exact method's singular values
    for (int method = 0; method < M_NUM; method++) {
        if (quick && method == M_GESVDJ && !jacobi) { printf("    time %-12s    skipped (quick; the rule takes gesvd here)\n", METHOD_NAMES[method]); continue; }
        TensorLayout lay = svd_layout(m, n, r, method);
        GaloreGpu gg;
        galore_gpu_init(&gg, &lay, 1, blas, s, 0);
        gg.force_gesvd = method == M_GESVD;
        if (method == M_GESVDJ) galore_gpu_force_gesvdj(&gg, &lay, 1);
        floatX* P = (floatX*)cudaMallocCheck(sizeof(floatX) * lay.proj_numel, "P");
        // the exact methods take seconds at the 7B shapes: one warmup (first-call setup) only for the
        // smaller ones, and one timed call; the randomized one: 1 warmup + 3
        int big = (int64_t)m * n > 16LL * 1024 * 1024;
        int warm = method == M_RANDOMIZED ? 1 : (big ? 0 : 1), iters = method == M_RANDOMIZED ? 3 : 1;
        float ms = time_ms([&] { galore_gpu_refresh(&gg, &lay, G, 1.0f, P, 0); }, s, warm, iters);
        if (method != M_RANDOMIZED && top < 0) {
            float* S = host_alloc<float>(k);
            dev_download(S, gg.S, k);
            top = 0.0;
            for (int i = 0; i < r; i++) top += (double)S[i] * S[i];
            free(S);
        }
        double cap = captured(&gg, &lay, G, P);
        printf("    time %-12s %10.1f ms   captures %.6f of the exact top-r energy\n", METHOD_NAMES[method], ms, top > 0 ? cap / top : -1.0);
        galore_gpu_free(&gg);
        cudaCheck(cudaFree(P));
    }
    cudaCheck(cudaFree(G));
}

int main(int argc, char** argv) {
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    print_device("svd");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    cublasHandle_t blas;
    cublasCheck(cublasCreate(&blas));
    cpu::set_threads(0);
    for (int method = 0; method < M_NUM; method++) {
        validate(300, 200, 16, method, blas, s);  // right side
        validate(160, 400, 16, method, blas, s);  // left side
        validate(64, 64, 12, method, blas, s);    // square (right), sketch 20 of 64
    }
    if (!DEV_CUDA_TIMING) quick = 2; // the emulated build: the validations only
    // gesvdj forced above the rule's size: its workspace, queried by galore_gpu_force_gesvdj (the
    // init queries gesvd's only there)
    validate(1100, 1030, 8, M_GESVDJ, blas, s);
    if (quick < 2) time_shape("llama_350m q/k/v/o", 1024, 1024, 256, quick, blas, s);
    if (quick < 2) time_shape("llama_1b q/k/v/o", 2048, 2048, 512, quick, blas, s);
    if (quick < 2) time_shape("llama_1b up/gate", 5461, 2048, 512, quick, blas, s);
    if (quick < 2) time_shape("llama_1b down", 2048, 5461, 512, quick, blas, s);
    if (quick < 2) time_shape("llama_1b down, small rank", 2048, 5461, 128, quick, blas, s);
    if (quick == 0) {
        time_shape("llama_7b q/k/v/o", 4096, 4096, 1024, 0, blas, s);
        time_shape("llama_7b up/gate", 11008, 4096, 1024, 0, blas, s);
        time_shape("llama_7b down", 4096, 11008, 1024, 0, blas, s);
        time_shape("llama_7b down, small rank", 4096, 11008, 128, 0, blas, s);
    }
    cublasCheck(cublasDestroy(blas));
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
