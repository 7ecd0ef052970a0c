/*
Casts of llama_kernels.cuh: cast_f32_to_bf16 must round to nearest even bit-exactly as the host's
lm_bf16_rne (= safetensors.h's bf16_from_f32, what checkpoints and the CPU side use), over values
spanning every exponent, ties, the largest finite values, infinities (NaN: stays NaN, payload
free); cast_bf16_to_f32 must be exact. Both are grid-stride loops: also run on a 3-block grid.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/cast.cu -o dev/cuda/cast -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/cast     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

static void run(size_t n, int time_it, cudaStream_t s) {
    printf("n=%zu\n", n);
    float* f = host_alloc<float>(n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = lm_hash32((uint32_t)i * 2654435761u + 7u); // every bit pattern is fair game
        if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u;          // exact ties
        if (i % 4 == 2) u = (u & 0x807fffffu) | ((uint32_t)(127 + (int)(i % 40) - 20) << 23); // ordinary magnitudes
        f[i] = lm_f32_bits(u);
    }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 3.3895314e38f, 3.4028235e38f, 1e-40f, -1e-45f};
    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]) && k < n; k++) f[k] = specials[k];
    float* d_f = dev_upload(f, n);
    floatX* d_b = (floatX*)cudaMallocCheck(sizeof(floatX) * n, "bf16");
    float* d_back = (float*)cudaMallocCheck(sizeof(float) * n, "f32");
    uint16_t* b = host_alloc<uint16_t>(n);
    float* back = host_alloc<float>(n);
    for (int small_grid = 0; small_grid <= 1; small_grid++) {
        cudaCheck(cudaMemset(d_b, 0, sizeof(floatX) * n));
        if (small_grid) {
            cast_f32_to_bf16_kernel<<<3, 64, 0, s>>>(d_b, d_f, n);
            cast_bf16_to_f32_kernel<<<3, 64, 0, s>>>(d_back, d_b, n);
            cudaCheckLaunch();
        } else {
            cast_f32_to_bf16(d_b, d_f, n, s);
            cast_bf16_to_f32(d_back, d_b, n, s);
        }
        cudaCheck(cudaStreamSynchronize(s));
        cudaCheck(cudaMemcpy(b, d_b, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
        dev_download(back, d_back, n);
        size_t bad = 0, bad_back = 0, first = 0, flushed = 0;
        for (size_t i = 0; i < n; i++) {
            uint16_t want = lm_bf16_rne(f[i]);
            int ok = isnan(f[i]) ? isnan(lm_bf16_to_f32(b[i])) : b[i] == want;
            // fp32 subnormals (< 1.2e-38) flushed to a signed zero (--use_fast_math's -ftz): noted, allowed
            uint32_t u = lm_bits_f32(f[i]);
            if (!ok && (u & 0x7f800000u) == 0 && b[i] == (uint16_t)((u >> 16) & 0x8000u)) { ok = 1; flushed++; }
            if (!ok) { if (!bad) first = i; bad++; }
            float wb = lm_bf16_to_f32(b[i]);
            bad_back += isnan(wb) ? !isnan(back[i]) : memcmp(&wb, &back[i], 4) != 0;
        }
        const char* how = small_grid ? " on <<<3, 64>>>" : "";
        check(bad == 0, "f32 -> bf16 round to nearest even, bit-exact%s (%zu mismatches%s)", how, bad,
              bad ? ", see the first below" : "");
        if (bad) printf("      first at %zu: x %.9g (0x%08x) gpu 0x%04x want 0x%04x\n", first, f[first], lm_bits_f32(f[first]), b[first],
                        lm_bf16_rne(f[first]));
        if (flushed) printf("      note: %zu fp32 subnormal inputs became signed zeros (flush-to-zero)\n", flushed);
        check(bad_back == 0, "bf16 -> f32 exact%s (%zu mismatches)", how, bad_back);
    }
    if (time_it) {
        report_bw("cast_f32_to_bf16", 6.0 * n, time_ms([&] { cast_f32_to_bf16(d_b, d_f, n, s); }, s));
        report_bw("cast_bf16_to_f32", 6.0 * n, time_ms([&] { cast_bf16_to_f32(d_back, d_b, n, s); }, s));
    }
    cudaCheck(cudaFree(d_f)); cudaCheck(cudaFree(d_b)); cudaCheck(cudaFree(d_back));
    free(f); free(b); free(back);
}

int main(void) {
    print_device("cast");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    run(9, 0, s);
    run(1000003, 0, s);
    if (DEV_CUDA_TIMING) run((size_t)1 << 27, 1, s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
