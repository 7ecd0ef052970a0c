/*
Adam / AdamW update of llama_kernels.cuh (adam_update<TP, TM>, torch semantics through galore.h's
adam_torch_elem, the CPU optimizer's per-element step) against that same function run on the CPU
in fp32, for three steps (t = 1, 2, 3; each CPU step starts from the GPU's state before it):
  bf16        p, m, v bf16, round to nearest            (--master-weights 0, --sr 0)
  bf16 + SR   p, m, v bf16, stochastic rounding          (--master-weights 0, --sr 1)
  master      p, m, v fp32, plus the bf16 compute copy pbf  (--master-weights 1)
each as AdamW (decoupled decay) and Adam (L2 into the gradient), with a clipping scale gscale.
Stochastic rounding: every value is one of its two bf16 neighbours, matches the CPU's replica of
the kernel's hash streams (seed, seed ^ 0x68bc21eb for m, seed ^ 0x02e5be93 for v; see
adam_kernel) except for rare fp32 boundary cases, is unbiased on average, is bit-identical on a
rerun and on a 3-block grid (the hash depends on the index, not the launch), and changes with the
seed. lr is 1e-2 with |p| <= 0.05 so that an update is many bf16 ulps of p (with a realistic 1e-4
most round-to-nearest updates would vanish and a wrong update would go unseen).

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/adam.cu -o dev/cuda/adam -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/adam     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

// the kernel's per-tensor random streams (llama_kernels.cuh, adam_kernel)
#define SR_XOR_M 0x68bc21ebU
#define SR_XOR_V 0x02e5be93U

enum { MODE_BF16, MODE_BF16_SR, MODE_MASTER };
static const char* MODE_NAMES[] = {"bf16", "bf16 + SR", "master"};

typedef struct { float lr, b1, b2, eps, wd, gscale; int adamw; } Hyper;

static void host_f32(float* f, const void* d, size_t n, int is_bf16) {
    if (is_bf16) { floatX* h = host_alloc<floatX>(n); dev_download(h, (const floatX*)d, n); unpack_bf16(f, h, n); free(h); }
    else dev_download(f, (const float*)d, n);
}
static uint16_t bits_of(floatX x) { uint16_t b; memcpy(&b, &x, 2); return b; }

// stochastic rounding checks of one bf16 result against the CPU's fp32 value
static void check_sr(const char* what, const floatX* got, const float* ref, size_t n, uint32_t seed, float atol) {
    size_t far = 0, replica = 0;
    double bias = 0.0;
    for (size_t i = 0; i < n; i++) {
        float g = bf(got[i]), c = ref[i];
        if (!(fabsf(g - c) <= 2.0f * BF16_RTOL * fabsf(c) + atol)) far++; // farther than one bf16 ulp
        replica += bits_of(got[i]) != lm_bf16_stochastic(c, lm_sr_bits(seed, (uint64_t)i));
        // rounding up probability must equal the fraction of the ulp above the lower neighbour
        uint32_t u = lm_bits_f32(c);
        float lo = lm_f32_bits(u & 0xffff0000u), hi = lm_bf16_to_f32((uint16_t)((u >> 16) + 1));
        if (hi != lo && isfinite(hi)) bias += ((g == hi ? 1.0 : 0.0) - (double)(c - lo) / (double)(hi - lo));
    }
    bias /= (double)n;
    // fp32 differences of a few ulps flip a result only when the carry into bit 16 changes: ~1e-4
    check(far == 0 && replica <= 2 + n / 1000, "%-6s SR: %zu beyond one ulp, %zu differ from the CPU replica (bound %zu)",
          what, far, replica, 2 + n / 1000);
    // the mean of (rounded up - fraction) has standard deviation <= 0.5 / sqrt(n)
    if (n >= 100000) check(fabs(bias) < 5.0 / sqrt((double)n), "%-6s SR unbiased: mean %.2e ulp (bound %.2e)", what, bias, 5.0 / sqrt((double)n));
}

static void run(size_t n, int mode, const Hyper* hp, int time_it, cudaStream_t s) {
    printf("n=%zu %s %s gscale=%g\n", n, MODE_NAMES[mode], hp->adamw ? "AdamW" : "Adam", hp->gscale);
    int master = mode == MODE_MASTER, sr = mode == MODE_BF16_SR;
    size_t es = master ? sizeof(float) : sizeof(floatX); // p, m, v element size
    floatX* g = host_alloc<floatX>(n);
    float *fp = host_alloc<float>(n), *fm = host_alloc<float>(n), *fv = host_alloc<float>(n), *fg = host_alloc<float>(n);
    fill_bf16(g, fg, n, 1.0f);
    // a state as Adam leaves it: v >= m^2 (Jensen), so |m| / sqrt(v) <= 1 and updates stay ~lr
    for (size_t i = 0; i < n; i++) {
        fp[i] = 0.05f * rand_uniform(); fm[i] = 0.1f * rand_uniform(); fv[i] = fm[i] * fm[i] + 0.01f * fabsf(rand_uniform());
    }
    if (!master) for (size_t i = 0; i < n; i++) { fp[i] = bf(tobf(fp[i])); fm[i] = bf(tobf(fm[i])); fv[i] = bf(tobf(fv[i])); }
    void *d_p = cudaMallocCheck(es * n, "p"), *d_m = cudaMallocCheck(es * n, "m"), *d_v = cudaMallocCheck(es * n, "v");
    floatX* d_g = dev_upload(g, n);
    floatX* d_pbf = master ? (floatX*)cudaMallocCheck(sizeof(floatX) * n, "pbf") : NULL;
    auto upload = [&](void* d, const float* f) {
        if (master) { cudaCheck(cudaMemcpy(d, f, sizeof(float) * n, cudaMemcpyHostToDevice)); return; }
        floatX* h = host_alloc<floatX>(n);
        for (size_t i = 0; i < n; i++) h[i] = tobf(f[i]);
        cudaCheck(cudaMemcpy(d, h, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        free(h);
    };
    upload(d_p, fp); upload(d_m, fm); upload(d_v, fv);
    float *rp = host_alloc<float>(n), *rm = host_alloc<float>(n), *rv = host_alloc<float>(n);
    floatX *hp_ = host_alloc<floatX>(n), *hm = host_alloc<floatX>(n), *hv = host_alloc<floatX>(n);
    float b1 = hp->b1, b2 = hp->b2, lr = hp->lr;
    float decay = hp->adamw ? 1.0f - lr * hp->wd : 1.0f, l2 = hp->adamw ? 0.0f : hp->wd;
    uint32_t seed = 0;
    // launch one step; the trainer's arguments, as gpu_optimizer_update computes them
    auto step = [&](int64_t t, uint32_t sd, int small_grid) {
        float step_size = (float)(lr / (1.0 - pow((double)b1, (double)t)));
        float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, (double)t)));
        if (master) {
            if (small_grid) adam_kernel<float, float><<<3, 64, 0, s>>>((float*)d_p, d_pbf, d_g, (float*)d_m, (float*)d_v, n, b1, b2, hp->eps,
                                                                    step_size, inv_bc2, decay, l2, hp->gscale, 0, sd, NULL);
            else adam_update<float, float>((float*)d_p, d_pbf, d_g, (float*)d_m, (float*)d_v, n, b1, b2, hp->eps, step_size, inv_bc2, decay,
                                           l2, hp->gscale, 0, sd, s);
        } else {
            if (small_grid) adam_kernel<floatX, floatX><<<3, 64, 0, s>>>((floatX*)d_p, NULL, d_g, (floatX*)d_m, (floatX*)d_v, n, b1, b2,
                                                                      hp->eps, step_size, inv_bc2, decay, l2, hp->gscale, sr, sd, NULL);
            else adam_update<floatX, floatX>((floatX*)d_p, NULL, d_g, (floatX*)d_m, (floatX*)d_v, n, b1, b2, hp->eps, step_size, inv_bc2,
                                             decay, l2, hp->gscale, sr, sd, s);
        }
        cudaCheckLaunch();
    };
    for (int64_t t = 1; t <= 3; t++) {
        seed = lm_hash32(0x1234u + (uint32_t)t);
        // the CPU step from the GPU's current state
        host_f32(rp, d_p, n, !master); host_f32(rm, d_m, n, !master); host_f32(rv, d_v, n, !master);
        float step_size = (float)(lr / (1.0 - pow((double)b1, (double)t)));
        float inv_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, (double)t)));
        for (size_t i = 0; i < n; i++)
            rp[i] = adam_torch_elem(rp[i], fg[i] * hp->gscale, &rm[i], &rv[i], b1, b2, hp->eps, step_size, inv_bc2, decay, l2);
        // keep the pre-step state to rerun this step (reproducibility, launch independence)
        void *sp = cudaMallocCheck(es * n, "p copy"), *sm = cudaMallocCheck(es * n, "m copy"), *sv = cudaMallocCheck(es * n, "v copy");
        cudaCheck(cudaMemcpy(sp, d_p, es * n, cudaMemcpyDeviceToDevice));
        cudaCheck(cudaMemcpy(sm, d_m, es * n, cudaMemcpyDeviceToDevice));
        cudaCheck(cudaMemcpy(sv, d_v, es * n, cudaMemcpyDeviceToDevice));
        step(t, seed, 0);
        cudaCheck(cudaStreamSynchronize(s));
        printf("  step %lld\n", (long long)t);
        // fp32 differences: fast-math sqrt/divide and FMA, a few ulps of the update (~lr) and of m
        float atol_p = 1e-5f * lr, atol_m = 1e-6f * (hp->gscale + 0.1f);
        float gmax = max_abs(fg, n) * hp->gscale, atol_v = 1e-6f * gmax * gmax;
        if (master) {
            float* got = host_alloc<float>(n);
            dev_download(got, (float*)d_p, n); compare_f32("p", got, rp, n, 1e-6f, atol_p);
            floatX* pbf = host_alloc<floatX>(n);
            dev_download(pbf, d_pbf, n);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) bad += bits_of(pbf[i]) != lm_bf16_rne(got[i]);
            check(bad == 0, "pbf is the nearest bf16 of the fp32 master weights (%zu mismatches)", bad);
            dev_download(got, (float*)d_m, n); compare_f32("m", got, rm, n, 1e-6f, atol_m);
            dev_download(got, (float*)d_v, n); compare_f32("v", got, rv, n, 1e-6f, atol_v);
            free(got); free(pbf);
        } else {
            dev_download(hp_, (floatX*)d_p, n); dev_download(hm, (floatX*)d_m, n); dev_download(hv, (floatX*)d_v, n);
            if (!sr) {
                compare_bf16("p", hp_, rp, n, BF16_RTOL, atol_p);
                compare_bf16("m", hm, rm, n, BF16_RTOL, atol_m);
                compare_bf16("v", hv, rv, n, BF16_RTOL, atol_v);
            } else {
                check_sr("p", hp_, rp, n, seed, atol_p);
                check_sr("m", hm, rm, n, seed ^ SR_XOR_M, atol_m);
                check_sr("v", hv, rv, n, seed ^ SR_XOR_V, atol_v);
            }
        }
        // rerun from the saved state: the launcher again, then a 3-block grid: same bits
        void* first = malloc(es * n);
        cudaCheck(cudaMemcpy(first, d_p, es * n, cudaMemcpyDeviceToHost));
        for (int small_grid = 0; small_grid <= 1; small_grid++) {
            cudaCheck(cudaMemcpy(d_p, sp, es * n, cudaMemcpyDeviceToDevice));
            cudaCheck(cudaMemcpy(d_m, sm, es * n, cudaMemcpyDeviceToDevice));
            cudaCheck(cudaMemcpy(d_v, sv, es * n, cudaMemcpyDeviceToDevice));
            step(t, seed, small_grid);
            void* again = malloc(es * n);
            cudaCheck(cudaMemcpy(again, d_p, es * n, cudaMemcpyDeviceToHost));
            check(memcmp(first, again, es * n) == 0, "p bit-identical on a rerun%s", small_grid ? " with a <<<3, 64>>> grid" : "");
            free(again);
        }
        if (sr && n >= 1000 && t == 1) { // another seed must give other roundings
            void* other = malloc(es * n);
            cudaCheck(cudaMemcpy(d_p, sp, es * n, cudaMemcpyDeviceToDevice));
            cudaCheck(cudaMemcpy(d_m, sm, es * n, cudaMemcpyDeviceToDevice));
            cudaCheck(cudaMemcpy(d_v, sv, es * n, cudaMemcpyDeviceToDevice));
            step(t, seed ^ 1u, 0);
            cudaCheck(cudaMemcpy(other, d_p, es * n, cudaMemcpyDeviceToHost));
            size_t diff = 0;
            for (size_t i = 0; i < n; i++) diff += ((uint16_t*)other)[i] != ((uint16_t*)first)[i];
            // a value rounds differently with probability 2 f (1 - f) (f its fraction of an ulp): ~1/3
            check(diff > n / 10, "another seed changes %.1f%% of the rounded weights (expect ~33%%, bound 10%%)", 100.0 * diff / n);
            free(other);
            cudaCheck(cudaMemcpy(d_p, sp, es * n, cudaMemcpyDeviceToDevice)); // redo the real step, to continue from it
            cudaCheck(cudaMemcpy(d_m, sm, es * n, cudaMemcpyDeviceToDevice));
            cudaCheck(cudaMemcpy(d_v, sv, es * n, cudaMemcpyDeviceToDevice));
            step(t, seed, 0);
        }
        free(first);
        cudaCheck(cudaFree(sp)); cudaCheck(cudaFree(sm)); cudaCheck(cudaFree(sv));
    }
    if (time_it) {
        // bf16: read p g m v, write p m v (14 bytes); master: read p m v fp32 and g, write p m v
        // fp32 and pbf (28 bytes)
        double bytes = (master ? 28.0 : 14.0) * n;
        report_bw(MODE_NAMES[mode], bytes, time_ms([&] { step(4, seed, 0); }, s));
    }
    cudaCheck(cudaFree(d_p)); cudaCheck(cudaFree(d_m)); cudaCheck(cudaFree(d_v)); cudaCheck(cudaFree(d_g));
    if (d_pbf) cudaCheck(cudaFree(d_pbf));
    free(g); free(fp); free(fm); free(fv); free(fg); free(rp); free(rm); free(rv); free(hp_); free(hm); free(hv);
}

int main(void) {
    print_device("adam");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    Hyper adamw = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1};
    Hyper adam_clip = {1e-2f, 0.9f, 0.95f, 1e-6f, 0.01f, 0.7f, 0};
    const size_t sizes[] = {1, 1000, (1u << 20) + 3};
    for (int mode = 0; mode < 3; mode++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            run(sizes[k], mode, &adamw, 0, s);
            run(sizes[k], mode, &adam_clip, 0, s);
        }
        if (DEV_CUDA_TIMING) run((size_t)1 << 26, mode, &adamw, 1, s); // timing (and the checks once more at 67M)
    }
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
