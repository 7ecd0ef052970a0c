/*
RoPE (rotate_half) forward and backward of llama_kernels.cuh against the CPU engine's rope_apply
(train_llama.c), on the fused qkv layout (B, T, C + 2KV) the trainer uses: one launch rotates the
NH query heads and the NKV key heads (nh = NH + NKV, rows ld = C + 2KV apart); the value heads must
come back bit-identical. The cos/sin tables are built by the CPU's own llama_rope_init.
Head dims include the tiny reference's 10 (half = 5, odd) and 128.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/rope.cu -o dev/cuda/rope -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/rope     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

typedef struct { int B, T, NH, NKV, HD; float theta; int time; } Shape;

static void run_shape(const Shape* sh, cudaStream_t s) {
    if (sh->time && !DEV_CUDA_TIMING) return;
    int B = sh->B, T = sh->T, NH = sh->NH, NKV = sh->NKV, HD = sh->HD;
    int C = NH * HD, KV = NKV * HD, ld = C + 2 * KV, nh = NH + NKV, half = HD / 2;
    printf("B=%d T=%d NH=%d NKV=%d HD=%d theta=%g\n", B, T, NH, NKV, HD, sh->theta);
    // the CPU's tables, exactly as the trainers build them
    cpu::Llama m;
    memset(&m, 0, sizeof m);
    m.config.C = C; m.config.NH = NH; m.config.HD = HD; m.config.maxT = T + 5; m.config.rope_theta = sh->theta;
    cpu::llama_rope_init(&m);
    float* d_cos = dev_upload(m.rope_cos, (size_t)m.config.maxT * half);
    float* d_sin = dev_upload(m.rope_sin, (size_t)m.config.maxT * half);

    size_t n = (size_t)B * T * ld;
    floatX* x = host_alloc<floatX>(n);
    float* ref = host_alloc<float>(n);
    fill_bf16(x, ref, n, 3.0f);
    floatX* d_x = dev_upload(x, n);
    floatX* got = host_alloc<floatX>(n);
    float amax = max_abs(ref, n);
    for (int dir = 0; dir < 2; dir++) { // 0 forward, 1 backward (the inverse rotation)
        const char* name = dir ? "rope_backward" : "rope_forward";
        cudaCheck(cudaMemcpy(d_x, x, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        for (size_t k = 0; k < n; k++) ref[k] = bf(x[k]);
        cpu::rope_apply(ref, m.rope_cos, m.rope_sin, B, T, nh, HD, ld, dir ? -1.0f : 1.0f);
        if (dir) rope_backward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s);
        else rope_forward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(got, d_x, n);
        // x1 c - x2 s and x2 c + x1 s: one bf16 rounding; the fp32 products may cancel, so the GPU's
        // FMA vs the CPU's two roundings differ by ~2^-24 of the inputs' size: atol 1e-6 max|x|
        compare_bf16(name, got, ref, n, BF16_RTOL, 1e-6f * amax);
        size_t changed = 0;
        for (size_t r = 0; r < (size_t)B * T; r++)
            changed += memcmp(got + r * ld + C + KV, x + r * ld + C + KV, sizeof(floatX) * KV) != 0;
        check(changed == 0, "%s leaves the value heads bit-identical (%zu rows changed)", name, changed);
    }
    // the backward is the inverse: backward(forward(x)) = x up to two bf16 roundings of values
    // at most sqrt(2) max|x| in size
    cudaCheck(cudaMemcpy(d_x, x, sizeof(floatX) * n, cudaMemcpyHostToDevice));
    rope_forward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s);
    rope_backward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s);
    cudaCheck(cudaStreamSynchronize(s));
    dev_download(got, d_x, n);
    for (size_t k = 0; k < n; k++) ref[k] = bf(x[k]);
    compare_bf16("backward(forward(x))", got, ref, n, 0.0f, 3.0f * BF16_RTOL * 1.4143f * amax);
    if (sh->time) {
        // each rotated element is read and written once (the tables stay in cache)
        double bytes = 2.0 * B * T * nh * HD * sizeof(floatX);
        report_bw("rope_forward", bytes, time_ms([&] { rope_forward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s); }, s));
        report_bw("rope_backward", bytes, time_ms([&] { rope_backward(d_x, d_cos, d_sin, B, T, nh, HD, ld, s); }, s));
    }
    cudaCheck(cudaFree(d_cos)); cudaCheck(cudaFree(d_sin)); cudaCheck(cudaFree(d_x));
    free(m.rope_cos); free(m.rope_sin); free(x); free(ref); free(got);
}

int main(void) {
    print_device("rope");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    const Shape shapes[] = {
        {2, 16, 6, 3, 10, 5000.0f, 0},      // the tiny reference model: HD 10, half 5
        {1, 37, 4, 4, 64, 10000.0f, 0},     // MHA, odd T
        {3, 100, 8, 2, 128, 500000.0f, 0},  // GQA, llama-3 theta
        {2, 9, 3, 1, 6, 10000.0f, 0},       // MQA, half 3
        {4, 2048, 32, 8, 128, 500000.0f, 1} // timing (llama-3-8B heads)
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) run_shape(&shapes[i], s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
