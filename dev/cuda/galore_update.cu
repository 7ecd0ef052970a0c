/*
GaLore's per-matrix weight update (galore.cuh), the two paths of gpu_optim_update, for one GaLore
matrix W (m x n, bf16) of rank r on a step without a projector refresh:
  unfused  widen P to fp32 (Pf), project R = G P^T / P^T G (fp32), [8-bit: memset Z], the Adam step on R
           (galore_adamw: galore_hf_lowrank, fp32 N; galore_adamw8bit: adam8bit_update_gpu on the zero
           "parameter" Z, or adam32_update_gpu under 4096 elements), back-project U = scale N P into an
           fp32 (m, n) scratch (cublasSgemm), galore_apply (W += -step U, then the decay): the reference,
           and what --master-weights 1 / --stochastic-rounding 1 run
  fused    project R, the Adam step writing a bf16 N (galore_hf_lowrank<., floatX>, adam8bit_lowrank_gpu,
           adam32_lowrank_gpu), one bf16 GEMM W = beta W + alpha N P in place (galore_gpu_update_fused;
           alpha, beta from galore_fused_coefs): the default for bf16 weights
Validation (small shapes: right and left side, ranks 20 and 8 and 32, low-rank states on the 8-bit
and the 32-bit path, a partial last 256-block, W at an odd element of its buffer (2-byte aligned),
each on cuBLASLt and on the cublasGemmEx fallback, forced as in matmul.cu): 3 steps; before each
step the CPU reference (the CPU optimizer's semantics, train_llama.c's optimizer_update: adam_hf_elem,
adam8bit.h's adam8bit_update / adam32_update on a zero parameter, U = scale N P in double, W += step U,
then W += -lr wd W) starts from the GPU path's own state, weights and R (R itself checked against a
double projection first), so errors never compound. An 8-bit NaN element of R at step 2 (the skip
path: the zero parameter stays 0). Then a step with the per-layer device-side skip flag set (issue 16
item 4): neither path moves W or its state, and the fused GEMM's device alpha, beta are 0 and 1.
Tolerances, per element of W:
  2^-8 |ref|                          W rounded to nearest bf16 (half an ulp)
  + |alpha| (|N| @ |P|) (c + 2 r 2^-24)  c = 1e-4: fast-math powf/divide/sqrt in N (a few ulps,
                                      bounded generously); + 2^-8 on the fused path: N stored in bf16;
                                      2 r 2^-24: the fp32 accumulation of the r products
  + 2^-21 |W0|                        the fp32 step and decay passes / the GEMM epilogue
A transpose, side, alpha or beta bug moves W by the size of the update (lr 3e-2: tens of bf16 ulps;
the decay 3% per step where on), far outside.
Timing at llama_7b's shapes, r 1024 (4096 x 4096 and 11008 x 4096 right, 4096 x 11008 left): ms of
each path's whole step (projection included), GB/s against the ideal bytes of dev/galore_bytes.py
(galore_adamw: 14mn + 12p + 24s unfused, 6mn + 4p + 20s fused; 8-bit: 28.06s / 16.06s; s = r max(m, n),
p = r min(m, n)), and of the back-projection part alone (project back + apply vs the fused GEMM).

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/galore_update.cu -o dev/cuda/galore_update -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/galore_update     (last line "N passed, N failed"; exit status 1 on any mismatch)
     ./dev/cuda/galore_update quick   (validation only, no 7B timing)
*/
#include "force_gemmex.cuh" // g_force_gemmex: the cublasGemmEx fallback
#include "common.cuh"
#include "../../galore.cuh"

typedef struct { float lr, b1, b2, eps, wd, scale; } Hyper;

// what the two paths share: the layout, G, P, handles
typedef struct {
    TensorLayout lay;
    int kind8;               // galore_adamw8bit (else galore_adamw)
    Hyper hp;
    floatX *G, *P;           // (m, n), projector ((r, n) right, (m, r) left)
    float* maps;             // 8-bit maps (512)
    GaloreGpu gl;            // only blas and stream are used (projection, back-projection)
    MatmulCtx mm;
    cudaStream_t s;
    float* d_ab;             // the fused GEMM's device alpha, beta (2)
    int* d_skip;             // a device flag: the per-layer update's device-side skip
    const int* skip;         // what the steps pass (NULL, or d_skip)
} Ctx;

// one path's buffers
typedef struct {
    floatX* Wbuf; floatX* W;  // (woff + m n), W = Wbuf + woff
    void *m, *v;              // galore_adamw: bf16 (s); 32-bit path: fp32 (s)
    uint8_t *qm, *qv;         // 8-bit (s)
    float *am, *av;           // 8-bit absmax (nblocks)
    float *R, *N;             // (s) fp32 (the fused path keeps a bf16 N in N's first half)
    float *A, *Pf;            // unfused only: (m n), (p) fp32
} Path;

static size_t mn_of(const TensorLayout* l) { return (size_t)(l->m * l->n); }

static void path_init(Path* q, const Ctx* c, int woff, int unfused) {
    const TensorLayout* l = &c->lay;
    size_t sn = (size_t)l->snumel, mn = mn_of(l);
    memset(q, 0, sizeof *q);
    q->Wbuf = (floatX*)cudaMallocCheck(sizeof(floatX) * (mn + woff), "W");
    q->W = q->Wbuf + woff;
    if (l->state == STATE_8BIT) {
        q->qm = (uint8_t*)cudaMallocCheck(2 * sn, "qm qv");
        q->qv = q->qm + sn;
        q->am = (float*)cudaMallocCheck(sizeof(float) * 2 * (size_t)l->nblocks, "absmax");
        q->av = q->am + l->nblocks;
        cudaCheck(cudaMemset(q->qm, 0, 2 * sn));
        cudaCheck(cudaMemset(q->am, 0, sizeof(float) * 2 * (size_t)l->nblocks));
    } else {
        size_t es = c->kind8 ? sizeof(float) : sizeof(floatX); // 32-bit path fp32; pure bf16 trainer: bf16 moments
        q->m = cudaMallocCheck(2 * es * sn, "m v");
        q->v = (char*)q->m + es * sn;
        cudaCheck(cudaMemset(q->m, 0, 2 * es * sn));
    }
    q->R = (float*)cudaMallocCheck(sizeof(float) * sn, "R");
    q->N = (float*)cudaMallocCheck(sizeof(float) * sn, "N");
    if (unfused) {
        q->A = (float*)cudaMallocCheck(sizeof(float) * mn, "A (fp32 U)");
        q->Pf = (float*)cudaMallocCheck(sizeof(float) * (size_t)l->proj_numel, "Pf");
    }
}
static void path_free(Path* q) {
    cudaCheck(cudaFree(q->Wbuf));
    if (q->qm) { cudaCheck(cudaFree(q->qm)); cudaCheck(cudaFree(q->am)); }
    if (q->m) cudaCheck(cudaFree(q->m));
    cudaCheck(cudaFree(q->R)); cudaCheck(cudaFree(q->N));
    if (q->A) { cudaCheck(cudaFree(q->A)); cudaCheck(cudaFree(q->Pf)); }
}

static float hf_step_size(const Hyper* h, int t) {
    return (float)(h->lr * sqrt(1.0 - pow((double)h->b2, (double)t)) / (1.0 - pow((double)h->b1, (double)t)));
}

// the unfused step, as gpu_optim_update runs it for bf16 weights
static void step_unfused(Ctx* c, Path* q, int t) {
    const TensorLayout* l = &c->lay;
    const Hyper* h = &c->hp;
    size_t sn = (size_t)l->snumel, mn = mn_of(l);
    galore_widen(q->Pf, c->P, (size_t)l->proj_numel, 1.0f, c->s);
    galore_gpu_project(&c->gl, l, c->G, c->P, q->R, 1, 1.0f, 0.0f);
    if (!c->kind8) {
        float step = hf_step_size(h, t);
        galore_hf_lowrank<floatX>(q->N, q->R, (floatX*)q->m, (floatX*)q->v, sn, h->b1, h->b2, h->eps, 0, 0u, c->s, c->skip);
        galore_gpu_project_back(&c->gl, l, q->N, q->Pf, q->A, h->scale, 0.0f);
        galore_apply<floatX>(q->W, NULL, q->A, mn, -step, h->wd > 0.0f, -h->lr * h->wd, 0, 0u, c->s, c->skip);
    } else {
        cudaCheck(cudaMemsetAsync(q->N, 0, sizeof(float) * sn, c->s));
        if (l->state == STATE_8BIT)
            adam8bit_update_gpu<float, float>(q->N, NULL, q->R, q->qm, q->qv, q->am, q->av, sn, c->maps, h->b1, h->b2, h->eps, h->lr, 0.0f, t, 1.0f, 0, 0u, c->s,
                                              c->skip);
        else adam32_update_gpu<float, float>(q->N, NULL, q->R, (float*)q->m, (float*)q->v, sn, h->b1, h->b2, h->eps, h->lr, 0.0f, t, 1.0f, 0, 0u, c->s,
                                             c->skip);
        galore_gpu_project_back(&c->gl, l, q->N, q->Pf, q->A, h->scale, 0.0f);
        galore_apply<floatX>(q->W, NULL, q->A, mn, 1.0f, h->wd > 0.0f, -h->lr * h->wd, 0, 0u, c->s, c->skip);
    }
}

// the fused step (gpu_optim_update's default for bf16 weights); back_only: skip projection and Adam
static void step_fused(Ctx* c, Path* q, int t, int back_only = 0) {
    const TensorLayout* l = &c->lay;
    const Hyper* h = &c->hp;
    size_t sn = (size_t)l->snumel;
    floatX* Nb = (floatX*)q->N;
    float step = hf_step_size(h, t), alpha, beta;
    galore_fused_coefs(c->kind8, step, h->scale, h->lr, h->wd, &alpha, &beta);
    if (!back_only) {
        galore_gpu_project(&c->gl, l, c->G, c->P, q->R, 1, 1.0f, 0.0f);
        if (!c->kind8) galore_hf_lowrank<floatX>(Nb, q->R, (floatX*)q->m, (floatX*)q->v, sn, h->b1, h->b2, h->eps, 0, 0u, c->s, c->skip);
        else if (l->state == STATE_8BIT)
            adam8bit_lowrank_gpu<floatX>(Nb, q->R, q->qm, q->qv, q->am, q->av, sn, c->maps, h->b1, h->b2, h->eps, h->lr, t, c->s, c->skip);
        else adam32_lowrank_gpu<floatX>(Nb, q->R, (float*)q->m, (float*)q->v, sn, h->b1, h->b2, h->eps, h->lr, t, c->s, c->skip);
    }
    galore_gpu_update_fused(&c->mm, l, q->W, Nb, c->P, alpha, beta, c->skip, c->d_ab, c->s);
}

// the unfused back-projection part alone (timing): project back + apply
static void back_unfused(Ctx* c, Path* q, int t) {
    const TensorLayout* l = &c->lay;
    const Hyper* h = &c->hp;
    galore_gpu_project_back(&c->gl, l, q->N, q->Pf, q->A, h->scale, 0.0f);
    galore_apply<floatX>(q->W, NULL, q->A, mn_of(l), c->kind8 ? 1.0f : -hf_step_size(h, t), h->wd > 0.0f, -h->lr * h->wd, 0, 0u, c->s);
}

// ----------------------------------------------------------------------------
// the CPU reference

typedef struct { float *m, *v, *am, *av; uint8_t *qm, *qv; } HostState;

static void state_download(HostState* st, const Ctx* c, const Path* q) {
    const TensorLayout* l = &c->lay;
    size_t sn = (size_t)l->snumel;
    memset(st, 0, sizeof *st);
    if (l->state == STATE_8BIT) {
        st->qm = host_alloc<uint8_t>(2 * sn); st->qv = st->qm + sn;
        st->am = host_alloc<float>(2 * (size_t)l->nblocks); st->av = st->am + l->nblocks;
        dev_download(st->qm, q->qm, 2 * sn);
        dev_download(st->am, q->am, 2 * (size_t)l->nblocks);
    } else {
        st->m = host_alloc<float>(2 * sn); st->v = st->m + sn;
        if (c->kind8) dev_download(st->m, (const float*)q->m, 2 * sn);
        else { floatX* h = host_alloc<floatX>(2 * sn); dev_download(h, (const floatX*)q->m, 2 * sn); unpack_bf16(st->m, h, 2 * sn); free(h); }
    }
}
static void state_free(HostState* st) { free(st->qm); free(st->am); free(st->m); }

// the CPU optimizer's GaLore step from state st (advanced in place), R and P (fp32): W (fp32, in/out);
// N (s) gets the low-rank update, absNP (m n) |N| @ |P| per element of W
static void cpu_step(const Ctx* c, HostState* st, const float* R, const float* P, float* W, float* N, float* absNP, int t,
                     const float* map_m, const float* map_v) {
    const TensorLayout* l = &c->lay;
    const Hyper* h = &c->hp;
    int64_t M = l->m, Nn = l->n, r = l->r, sn = l->snumel;
    float coef; // the factor of (N P) in the step: -step_size (galore_adamw) or 1 (8-bit, the kernel's step inside)
    if (!c->kind8) {
        for (int64_t k = 0; k < sn; k++) N[k] = adam_hf_elem(R[k], &st->m[k], &st->v[k], h->b1, h->b2, h->eps);
        coef = -hf_step_size(h, t);
    } else {
        for (int64_t k = 0; k < sn; k++) N[k] = 0.0f;
        if (l->state == STATE_8BIT)
            adam8bit_update(N, R, st->qm, st->qv, st->am, st->av, sn, map_m, map_v, h->b1, h->b2, h->eps, h->lr, 0.0f, t);
        else adam32_update(N, R, st->m, st->v, sn, h->b1, h->b2, h->eps, h->lr, 0.0f, t);
        coef = 1.0f;
    }
    #pragma omp parallel for collapse(2)
    for (int64_t a = 0; a < M; a++) {
        for (int64_t b = 0; b < Nn; b++) {
            double acc = 0.0, ab = 0.0;
            for (int64_t k = 0; k < r; k++) {
                double x = l->side == SIDE_RIGHT ? (double)N[a * r + k] * P[k * Nn + b] : (double)P[a * r + k] * N[k * Nn + b];
                acc += x; ab += fabs(x);
            }
            size_t e = (size_t)(a * Nn + b);
            float U = (float)(h->scale * acc);
            float p = W[e] + coef * U;
            if (h->wd > 0.0f) p = p + (-h->lr * h->wd) * p;
            W[e] = p;
            absNP[e] = (float)ab;
        }
    }
}

// R (s) = G P^T (right) / P^T G (left) in double
static void cpu_project(const TensorLayout* l, const float* G, const float* P, float* R, float* absR) {
    int64_t M = l->m, Nn = l->n, r = l->r;
    if (l->side == SIDE_RIGHT) {
        #pragma omp parallel for collapse(2)
        for (int64_t a = 0; a < M; a++)
            for (int64_t k = 0; k < r; k++) {
                double acc = 0.0, ab = 0.0;
                for (int64_t b = 0; b < Nn; b++) { double x = (double)G[a * Nn + b] * P[k * Nn + b]; acc += x; ab += fabs(x); }
                R[a * r + k] = (float)acc; absR[a * r + k] = (float)ab;
            }
    } else {
        #pragma omp parallel for collapse(2)
        for (int64_t k = 0; k < r; k++)
            for (int64_t b = 0; b < Nn; b++) {
                double acc = 0.0, ab = 0.0;
                for (int64_t a = 0; a < M; a++) { double x = (double)P[a * r + k] * G[a * Nn + b]; acc += x; ab += fabs(x); }
                R[k * Nn + b] = (float)acc; absR[k * Nn + b] = (float)ab;
            }
    }
}

static void layout_for(TensorLayout* l, int64_t m, int64_t n, int r, int kind8) {
    ParamInfo p;
    memset(&p, 0, sizeof p);
    p.ndim = 2; p.rows = m; p.cols = n; p.numel = m * n; p.galore = 1;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind8 ? OPTIM_GALORE_ADAMW8BIT : OPTIM_GALORE_ADAMW;
    oc.rank = r; oc.proj_type = PROJ_STD; oc.svd = SVD_EXACT;
    tensor_layout(l, &p, &oc);
}

static void ctx_init(Ctx* c, int64_t m, int64_t n, int r, int kind8, const Hyper* hp, MatmulCtx* mm, cublasHandle_t blas, float* maps,
                     cudaStream_t s, floatX* hG, float* fG, floatX* hP, float* fP) {
    memset(c, 0, sizeof *c);
    layout_for(&c->lay, m, n, r, kind8);
    c->kind8 = kind8; c->hp = *hp; c->mm = *mm; c->maps = maps; c->s = s;
    c->gl.blas = blas; c->gl.stream = s;
    size_t mn = (size_t)(m * n), pn = (size_t)c->lay.proj_numel;
    // G: a gradient ~1e-2 (its scale does not matter to Adam's direction); P: orthonormal-ish
    // random rows/columns of norm ~1 (entries ~ 1/sqrt(len)), in bf16
    fill_bf16(hG, fG, mn, 1e-2f);
    int64_t len = c->lay.side == SIDE_RIGHT ? n : m;
    fill_bf16(hP, fP, pn, (float)(1.7 / sqrt((double)len)));
    c->G = dev_upload(hG, mn);
    c->P = dev_upload(hP, pn);
    c->d_ab = (float*)cudaMallocCheck(2 * sizeof(float), "alpha, beta");
    c->d_skip = (int*)cudaMallocCheck(sizeof(int), "skip flag");
    cudaCheck(cudaMemset(c->d_skip, 0, sizeof(int)));
}
static void ctx_free(Ctx* c) { cudaCheck(cudaFree(c->G)); cudaCheck(cudaFree(c->P)); cudaCheck(cudaFree(c->d_ab)); cudaCheck(cudaFree(c->d_skip)); }

// the state's bytes as state_download holds them, equal
static int state_same(const Ctx* c, const HostState* a, const HostState* b) {
    const TensorLayout* l = &c->lay;
    size_t sn = (size_t)l->snumel;
    if (l->state == STATE_8BIT)
        return memcmp(a->qm, b->qm, 2 * sn) == 0 && memcmp(a->am, b->am, sizeof(float) * 2 * (size_t)l->nblocks) == 0;
    return memcmp(a->m, b->m, sizeof(float) * 2 * sn) == 0;
}

typedef struct { int64_t m, n; int r; int woff; } Shape;

static void validate(const Shape* sh, int kind8, int force_gemmex, MatmulCtx* mm, cublasHandle_t blas, float* maps, cudaStream_t s) {
    Hyper hp = {3e-2f, 0.9f, 0.999f, kind8 ? 1e-8f : 1e-6f, sh->r == 8 ? 0.0f : 1.0f, 0.25f};
    size_t mn = (size_t)(sh->m * sh->n);
    floatX* hG = host_alloc<floatX>(mn);
    float* fG = host_alloc<float>(mn);
    size_t pmax = (size_t)sh->r * (size_t)(sh->m > sh->n ? sh->m : sh->n);
    floatX* hP = host_alloc<floatX>(pmax);
    float* fP = host_alloc<float>(pmax);
    Ctx c;
    ctx_init(&c, sh->m, sh->n, sh->r, kind8, &hp, mm, blas, maps, s, hG, fG, hP, fP);
    const TensorLayout* l = &c.lay;
    size_t sn = (size_t)l->snumel;
    g_force_gemmex = force_gemmex;
    printf("%s %lld x %lld r %d (%s, %s state%s) wd %g, %s\n", kind8 ? "galore_adamw8bit" : "galore_adamw", (long long)sh->m, (long long)sh->n,
           sh->r, l->side == SIDE_RIGHT ? "right" : "left", l->state == STATE_8BIT ? "8-bit" : (kind8 ? "32-bit" : "bf16"),
           sh->woff ? ", W 2-byte aligned" : "", (double)hp.wd, force_gemmex ? "cublasGemmEx forced" : "cuBLASLt");
    Path pu, pf;
    path_init(&pu, &c, sh->woff, 1);
    path_init(&pf, &c, sh->woff, 0);
    floatX* hW = host_alloc<floatX>(mn);
    fill_bf16(hW, NULL, mn, 0.02f);
    cudaCheck(cudaMemcpy(pu.W, hW, sizeof(floatX) * mn, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(pf.W, hW, sizeof(floatX) * mn, cudaMemcpyHostToDevice));
    float hmap[512];
    adam8bit_create_dynamic_map(hmap, 1);
    adam8bit_create_dynamic_map(hmap + 256, 0);
    float *W = host_alloc<float>(mn), *W0 = host_alloc<float>(mn), *absNP = host_alloc<float>(mn), *got = host_alloc<float>(mn);
    float *R = host_alloc<float>(sn), *Rref = host_alloc<float>(sn), *absR = host_alloc<float>(sn), *N = host_alloc<float>(sn);
    floatX* hw = host_alloc<floatX>(mn);
    cpu_project(l, fG, fP, Rref, absR);
    int fb0 = c.mm.fallbacks;
    for (int t = 1; t <= 3; t++) {
        if (kind8 && l->state == STATE_8BIT && t == 2) {
            // a NaN in G's first row reaches R's first elements: the 8-bit kernel skips them (Z stays 0)
            floatX nanv = tobf(NAN);
            cudaCheck(cudaMemcpy(c.G, &nanv, sizeof(floatX), cudaMemcpyHostToDevice));
        }
        if (kind8 && l->state == STATE_8BIT && t == 3) cudaCheck(cudaMemcpy(c.G, hG, sizeof(floatX), cudaMemcpyHostToDevice));
        for (int pi = 0; pi < 2; pi++) {
            Path* q = pi == 0 ? &pu : &pf;
            HostState st;
            state_download(&st, &c, q);
            dev_download(hw, q->W, mn);
            unpack_bf16(W0, hw, mn);
            memcpy(W, W0, sizeof(float) * mn);
            if (pi == 0) step_unfused(&c, q, t); else step_fused(&c, q, t);
            cudaCheck(cudaStreamSynchronize(s));
            dev_download(R, q->R, sn);
            if (t == 1) {
                // the projection: fp32 sums of K exact bf16 products in another order
                float K = (float)(l->side == SIDE_RIGHT ? sh->n : sh->m);
                size_t bad = 0;
                for (size_t k = 0; k < sn; k++) bad += !(fabsf(R[k] - Rref[k]) <= 2.0f * K * ldexpf(1.0f, -24) * absR[k] + 1e-30f);
                check(bad == 0, "%s step 1: R = projection vs double (bound 2 K 2^-24 |G| |P|): %zu of %zu beyond", pi ? "fused  " : "unfused", bad, sn);
            }
            cpu_step(&c, &st, R, fP, W, N, absNP, t, hmap, hmap + 256);
            dev_download(hw, q->W, mn);
            unpack_bf16(got, hw, mn);
            float step = hf_step_size(&hp, t), alpha, beta;
            galore_fused_coefs(kind8, step, hp.scale, hp.lr, hp.wd, &alpha, &beta);
            double nfac = 1e-4 + (pi == 1 ? ldexp(1.0, -8) : 0.0) + 2.0 * sh->r * ldexp(1.0, -24);
            size_t bad = 0, first = 0;
            double worst = 0.0, maxchange = 0.0;
            for (size_t e = 0; e < mn; e++) {
                double tol = ldexp(1.0, -8) * fabs((double)W[e]) + fabs((double)alpha) * absNP[e] * nfac + ldexp(1.0, -21) * fabs((double)W0[e]);
                double err = fabs((double)got[e] - W[e]);
                if (!(err <= tol)) { if (!bad) first = e; bad++; }
                if (tol > 0.0 && err / tol > worst) worst = err / tol;
                maxchange = fmax(maxchange, fabs((double)W[e] - W0[e]));
            }
            if (!bad) check(1, "%s step %d: W vs the CPU step, %zu elements, max change %.2e, worst %.2f of tolerance", pi ? "fused  " : "unfused", t,
                            mn, maxchange, worst);
            else check(0, "%s step %d: W vs the CPU step: %zu of %zu beyond tolerance, first at %zu: gpu %.6g ref %.6g (from %.6g)", pi ? "fused  " : "unfused",
                       t, bad, mn, first, got[first], W[first], W0[first]);
            // the state the step left vs the CPU's (moments in bf16 for galore_adamw: 2^-8; 8-bit:
            // neighbouring codes where fast-math moves a value across a rounding midpoint)
            HostState gs;
            state_download(&gs, &c, q);
            if (l->state == STATE_8BIT) {
                size_t diff = 0, far = 0;
                for (size_t k = 0; k < 2 * sn; k++) { int d = abs((int)gs.qm[k] - (int)st.qm[k]); diff += d != 0; far += d > 1; }
                check(far == 0 && diff <= 2 * sn / 100, "%s step %d: 8-bit state vs the CPU: %zu of %zu bytes differ (bound 1%%, neighbours only)",
                      pi ? "fused  " : "unfused", t, diff, 2 * sn);
            } else {
                // (bf16: half an ulp, plus an fp32 ulp or two from contraction)
                compare_f32(pi ? "fused   m, v" : "unfused m, v", gs.m, st.m, 2 * sn, kind8 ? 1e-5f : BF16_RTOL * 1.01f, 1e-12f);
            }
            state_free(&gs);
            state_free(&st);
        }
    }
    // the per-layer device-side skip (issue 16 item 4; train_llama.cu's check kernel sets the flag of
    // a tensor whose step is not finite): with the flag set, neither path moves W (as values: the
    // fused GEMM's 1 W + 0 may turn a -0 into +0) nor its state (bytes), and the fused one's device
    // alpha, beta are 0 and 1
    {
        int one = 1;
        cudaCheck(cudaMemcpy(c.d_skip, &one, sizeof one, cudaMemcpyHostToDevice));
        c.skip = c.d_skip;
        for (int pi = 0; pi < 2; pi++) {
            Path* q = pi == 0 ? &pu : &pf;
            HostState st0, st1;
            state_download(&st0, &c, q);
            dev_download(hw, q->W, mn);
            unpack_bf16(W0, hw, mn);
            if (pi == 0) step_unfused(&c, q, 4); else step_fused(&c, q, 4);
            cudaCheck(cudaStreamSynchronize(s));
            state_download(&st1, &c, q);
            dev_download(hw, q->W, mn);
            unpack_bf16(got, hw, mn);
            size_t moved = 0;
            for (size_t e = 0; e < mn; e++) moved += !(got[e] == W0[e]);
            float ab[2] = {-1.0f, -1.0f};
            if (pi == 1) dev_download(ab, c.d_ab, 2);
            check(moved == 0 && state_same(&c, &st0, &st1) && (pi == 0 || (ab[0] == 0.0f && ab[1] == 1.0f)),
                  "%s step with the skip flag set: %zu of %zu weights moved, state %s%s", pi ? "fused  " : "unfused", moved, mn,
                  state_same(&c, &st0, &st1) ? "unchanged" : "CHANGED", pi ? (ab[0] == 0.0f && ab[1] == 1.0f ? ", alpha 0 beta 1" : ", alpha/beta WRONG") : "");
            state_free(&st0); state_free(&st1);
        }
        c.skip = NULL;
    }
    printf("  GEMMs that fell back to cublasGemmEx: %d\n", c.mm.fallbacks - fb0);
    g_force_gemmex = 0;
    path_free(&pu); path_free(&pf);
    ctx_free(&c);
    free(hG); free(fG); free(hP); free(fP); free(W); free(W0); free(absNP); free(got); free(R); free(Rref); free(absR); free(N); free(hw); free(hW);
}

// ----------------------------------------------------------------------------
// timing at llama_7b's shapes

static void timing(int64_t m, int64_t n, int r, int kind8, MatmulCtx* mm, cublasHandle_t blas, float* maps, cudaStream_t s) {
    Hyper hp = {1e-2f, 0.9f, 0.999f, kind8 ? 1e-8f : 1e-6f, 0.1f, 0.25f};
    size_t mn = (size_t)(m * n);
    size_t pmax = (size_t)r * (size_t)(m > n ? m : n);
    floatX* hG = host_alloc<floatX>(mn);
    floatX* hP = host_alloc<floatX>(pmax);
    float* fP = host_alloc<float>(pmax);
    Ctx c;
    ctx_init(&c, m, n, r, kind8, &hp, mm, blas, maps, s, hG, NULL, hP, fP);
    const TensorLayout* l = &c.lay;
    printf("%s %lld x %lld r %d (%s)\n", kind8 ? "galore_adamw8bit" : "galore_adamw", (long long)m, (long long)n, r, l->side == SIDE_RIGHT ? "right" : "left");
    Path pu, pf;
    path_init(&pu, &c, 0, 1);
    path_init(&pf, &c, 0, 0);
    floatX* hW = hG; // reuse: W ~ 0.02
    fill_bf16(hW, NULL, mn, 0.02f);
    cudaCheck(cudaMemcpy(pu.W, hW, sizeof(floatX) * mn, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(pf.W, hW, sizeof(floatX) * mn, cudaMemcpyHostToDevice));
    // one step each from the same state and weights: the weight changes must agree (bf16 rounding)
    step_unfused(&c, &pu, 1);
    step_fused(&c, &pf, 1);
    cudaCheck(cudaStreamSynchronize(s));
    floatX *a = host_alloc<floatX>(mn), *b = host_alloc<floatX>(mn);
    dev_download(a, pu.W, mn);
    dev_download(b, pf.W, mn);
    double dot = 0.0, aa = 0.0, bb = 0.0;
    for (size_t e = 0; e < mn; e++) {
        double w0 = bf(hW[e]), da = bf(a[e]) - w0, db = bf(b[e]) - w0;
        dot += da * db; aa += da * da; bb += db * db;
    }
    double cs = aa > 0.0 && bb > 0.0 ? dot / sqrt(aa * bb) : 0.0;
    // updates of a few bf16 ulps here (lr 1e-2): rounding noise of each path ~half an ulp
    check(cs > 0.99, "one step, fused vs unfused weight change cosine %.5f (bound 0.99)", cs);
    free(a); free(b);
    size_t sn = (size_t)l->snumel, pn = (size_t)l->proj_numel;
    double absm = kind8 ? 16.0 * sn / 256.0 : 0.0;
    double bytes_u = 14.0 * mn + 12.0 * pn + (kind8 ? 28.0 : 24.0) * sn + absm;
    double bytes_f = 6.0 * mn + 4.0 * pn + (kind8 ? 16.0 : 20.0) * sn + absm;
    double flops = 4.0 * r * (double)mn; // projection + back-projection
    float ms_u = time_ms([&] { step_unfused(&c, &pu, 2); }, s);
    float ms_f = time_ms([&] { step_fused(&c, &pf, 2); }, s);
    report_bw("unfused step", bytes_u, ms_u);
    report_bw("fused step", bytes_f, ms_f);
    printf("    step: %.2fx faster fused; %.1f vs %.1f TFLOP/s in the two GEMMs (%.1f GFLOP)\n", ms_u / ms_f, flops / (ms_u * 1e-3) / 1e12,
           flops / (ms_f * 1e-3) / 1e12, flops / 1e9);
    float bu = time_ms([&] { back_unfused(&c, &pu, 2); }, s);
    float bf_ = time_ms([&] { step_fused(&c, &pf, 2, 1); }, s);
    report_bw("unfused back-projection+apply", 4.0 * sn + 4.0 * pn + 12.0 * mn, bu);
    report_bw("fused GEMM", 2.0 * sn + 2.0 * pn + 4.0 * mn, bf_);
    report_flops("unfused back-projection (Sgemm)", 2.0 * r * (double)mn, bu);
    report_flops("fused GEMM", 2.0 * r * (double)mn, bf_);
    path_free(&pu); path_free(&pf);
    ctx_free(&c);
    free(hG); free(hP); free(fP);
}

int main(int argc, char** argv) {
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    print_device("galore_update");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    // the handles as train_llama.cu sets them up
    MatmulCtx mm;
    matmul_ctx_init(&mm, s);
    float* maps = adam8bit_maps_upload();
    const Shape shapes[] = {
        {260, 96, 20, 0},   // right, 8-bit state (5200: a partial last block), rank not a multiple of 8
        {80, 300, 20, 0},   // left, 8-bit state (6000)
        {96, 64, 20, 0},    // right, 32-bit path (1920 < 4096)
        {48, 160, 20, 0},   // left, 32-bit path (3200)
        {64, 64, 8, 0},     // square (right), no decay
        {300, 128, 32, 1},  // right, W at an odd element (2-byte aligned)
        {128, 300, 32, 1},  // left, W at an odd element
    };
    for (int kind8 = 0; kind8 <= 1; kind8++)
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            for (int force = 0; force <= 1; force++) validate(&shapes[i], kind8, force, &mm, mm.blas, maps, s);
    if (!quick && DEV_CUDA_TIMING) {
        const int64_t sh7[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
        for (int kind8 = 0; kind8 <= 1; kind8++)
            for (int i = 0; i < 3; i++) timing(sh7[i][0], sh7[i][1], 1024, kind8, &mm, mm.blas, maps, s);
    }
    cudaCheck(cudaFree(maps));
    matmul_ctx_free(&mm);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
