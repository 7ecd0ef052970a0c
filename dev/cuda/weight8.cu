/*
INT8 weights (--weights int8) of weight8.cuh against weight8.h's host functions, bit for bit:
weight8_requant (per-group min/max by warp shuffles, stochastic rounding from the counter-based
draws) must give weight8_quantize's codes, scales and zeros for the same fp32 input and seed;
weight8_dequant to fp32 must equal weight8_dequantize exactly, to bf16 its round to nearest even;
a skipped update (the per-layer verdict) must leave codes, scales and zeros untouched. Shapes: a
short last group, groups of 1, groups wider than a warp's stride, constant groups (the 1e-5 floor of
the range), one-signed groups, large magnitudes.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/weight8.cu -o dev/cuda/weight8 -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/weight8     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"
#include "../../weight8.cuh"

static size_t count_diff(const void* a, const void* b, size_t n, size_t elem) {
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) bad += memcmp((const char*)a + k * elem, (const char*)b + k * elem, elem) != 0;
    return bad;
}

static void run(size_t n, int64_t G, float amp, int time_it, cudaStream_t s) {
    printf("n=%zu G=%lld amp %g\n", n, (long long)G, amp);
    size_t ng = (size_t)weight8_groups((int64_t)n, G);
    float* w = host_alloc<float>(n);
    for (size_t k = 0; k < n; k++) w[k] = amp * rand_uniform();
    // a few special groups: constant (range below the 1e-5 floor), all positive, all negative
    if (ng > 3) {
        for (size_t k = 0; k < (size_t)G && k < n; k++) w[k] = 0.25f;
        for (size_t k = (size_t)G; k < 2 * (size_t)G && k < n; k++) w[k] = amp * (1.5f + rand_uniform());
        for (size_t k = 2 * (size_t)G; k < 3 * (size_t)G && k < n; k++) w[k] = -amp * (1.5f + rand_uniform());
    }
    uint32_t seed = weight8_seed(1234567ULL, 3, 17);
    uint8_t* hc = host_alloc<uint8_t>(n), *hz = host_alloc<uint8_t>(ng), *gc = host_alloc<uint8_t>(n), *gz = host_alloc<uint8_t>(ng);
    float* hs = host_alloc<float>(ng), *gs = host_alloc<float>(ng);
    weight8_quantize(w, (int64_t)n, G, 1, seed, hc, hs, hz);
    float* d_w = dev_upload(w, n);
    uint8_t* d_c = (uint8_t*)cudaMallocCheck(n, "codes");
    float* d_s = (float*)cudaMallocCheck(sizeof(float) * ng, "scales");
    uint8_t* d_z = (uint8_t*)cudaMallocCheck(ng, "zeros");
    int one = 1;
    int* d_skip = dev_upload(&one, 1);
    weight8_requant(d_c, d_s, d_z, d_w, n, G, seed, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(gc, d_c, n); dev_download(gs, d_s, ng); dev_download(gz, d_z, ng);
    size_t bc = count_diff(gc, hc, n, 1), bs = count_diff(gs, hs, ng, 4), bz = count_diff(gz, hz, ng, 1);
    check(bc == 0 && bs == 0 && bz == 0, "requant == weight8_quantize (stochastic): %zu codes, %zu scales, %zu zeros differ", bc, bs, bz);
    // the draws matter: rounding to nearest gives other codes (else the check above could not tell)
    uint8_t* nc = host_alloc<uint8_t>(n);
    weight8_quantize(w, (int64_t)n, G, 0, seed, nc, hs, hz);
    size_t nd = count_diff(nc, hc, n, 1);
    if (G > 1) check(nd > n / 8, "stochastic codes differ from nearest ones in %zu of %zu", nd, n); // G 1: every code clamps
    // a skipped update: the codes stay (the buffers hold the requantized ones; new seed, skip set)
    weight8_requant(d_c, d_s, d_z, d_w, n, G, seed + 1, s, d_skip);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(nc, d_c, n);
    check(count_diff(nc, gc, n, 1) == 0, "requant with skip set leaves the codes alone");
    // dequantize what the host quantized (stochastic)
    weight8_quantize(w, (int64_t)n, G, 1, seed, hc, hs, hz);
    float* hw = host_alloc<float>(n), *gw = host_alloc<float>(n);
    weight8_dequantize(hc, (int64_t)n, G, hs, hz, hw);
    float* d_f = (float*)cudaMallocCheck(sizeof(float) * n, "fp32 out");
    floatX* d_b = (floatX*)cudaMallocCheck(sizeof(floatX) * n, "bf16 out");
    weight8_dequant(d_f, d_c, d_s, d_z, n, G, s);
    weight8_dequant(d_b, d_c, d_s, d_z, n, G, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(gw, d_f, n);
    check(count_diff(gw, hw, n, 4) == 0, "dequant fp32 == weight8_dequantize, bit-exact");
    uint16_t* gb = host_alloc<uint16_t>(n);
    cudaCheck(cudaMemcpy(gb, d_b, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
    size_t bb = 0;
    for (size_t k = 0; k < n; k++) bb += gb[k] != lm_bf16_rne(hw[k]);
    check(bb == 0, "dequant bf16 == round to nearest of weight8_dequantize (%zu differ)", bb);
    if (time_it) {
        report_bw("weight8_dequant bf16", 3.0 * n, time_ms([&] { weight8_dequant(d_b, d_c, d_s, d_z, n, G, s); }, s));
        report_bw("weight8_requant", 5.0 * n, time_ms([&] { weight8_requant(d_c, d_s, d_z, d_w, n, G, seed, s); }, s));
    }
    cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_c)); cudaCheck(cudaFree(d_s)); cudaCheck(cudaFree(d_z)); cudaCheck(cudaFree(d_skip));
    cudaCheck(cudaFree(d_f)); cudaCheck(cudaFree(d_b));
    free(w); free(hc); free(hz); free(gc); free(gz); free(hs); free(gs); free(nc); free(hw); free(gw); free(gb);
}

int main(void) {
    print_device("weight8");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    run(1000, 128, 0.05f, 0, s);     // a short last group (1000 = 7 x 128 + 104)
    run(300, 1, 1.0f, 0, s);         // one element a group: range 0, the floor
    run(20011, 200, 3.0f, 0, s);     // wider than a warp's stride, a short last group
    run(65536, 128, 1e3f, 0, s);     // large magnitudes
    run(4099, 33, 1e-6f, 0, s);      // ranges below the 1e-5 floor in every group
    if (DEV_CUDA_TIMING) run((size_t)11008 * 4096, 128, 0.02f, 1, s); // llama_7b's gate
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
