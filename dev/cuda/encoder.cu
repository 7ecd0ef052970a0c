/*
Encoder (token embedding) forward and deterministic backward of llama_kernels.cuh:
  encoder_forward:  out (N, C) = wte[inp]                     (a gather: must be bit-exact)
  encoder_backward: dwte[v] += sum of dout over positions holding token v, in increasing position
                    order in fp32, rounded once to bf16 (host buckets from encoder_backward_buckets)
The CPU reference does the same additions in the same order, so the backward must be bit-exact
too: any difference is a bucketing or indexing bug, not rounding.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/encoder.cu -o dev/cuda/encoder -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/encoder     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

typedef struct { int N, C, V; int time; } Shape;

static void run_shape(const Shape* sh, cudaStream_t s) {
    if (sh->time && !DEV_CUDA_TIMING) return;
    int N = sh->N, C = sh->C, V = sh->V;
    printf("N=%d C=%d V=%d\n", N, C, V);
    size_t nw = (size_t)V * C, no = (size_t)N * C;
    int* inp = host_alloc<int>(N);
    for (int i = 0; i < N; i++) inp[i] = rand_int(V);
    if (N > 2) { inp[N - 1] = V - 1; inp[0] = 0; } // the first and the last row of wte
    floatX* wte = host_alloc<floatX>(nw);
    floatX* dout = host_alloc<floatX>(no);
    floatX* dwte0 = host_alloc<floatX>(nw);
    fill_bf16(wte, NULL, nw, 1.0f);
    fill_bf16(dout, NULL, no, 1.0f);
    fill_bf16(dwte0, NULL, nw, 0.1f); // the gradient accumulates (+=) into what is there
    int* d_inp = dev_upload(inp, N);
    floatX* d_wte = dev_upload(wte, nw);
    floatX* d_dout = dev_upload(dout, no);
    floatX* d_dwte = dev_upload(dwte0, nw);
    floatX* d_out = (floatX*)cudaMallocCheck(sizeof(floatX) * no, "out");
    cudaCheck(cudaMemset(d_out, 0xff, sizeof(floatX) * no)); // NaN pattern: catches unwritten outputs

    // forward: a gather, bit-exact
    encoder_forward(d_out, d_inp, d_wte, N, C, s);
    cudaCheck(cudaStreamSynchronize(s));
    floatX* out = host_alloc<floatX>(no);
    dev_download(out, d_out, no);
    size_t bad = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            if (memcmp(&out[(size_t)i * C + c], &wte[(size_t)inp[i] * C + c], sizeof(floatX)) != 0) bad++;
    check(bad == 0, "forward gather bit-exact (%zu mismatches)", bad);

    // backward: host buckets as the trainer builds them, then the same fp32 sums on the CPU
    int* bucket = host_alloc<int>(3 * (size_t)N + 1);
    int* counts = host_alloc<int>((size_t)V + 1);
    int nu = encoder_backward_buckets(bucket, counts, inp, N, V);
    int* d_bucket = dev_upload(bucket, (size_t)N + 2 * nu + 1);
    encoder_backward(d_dwte, d_dout, d_bucket, N, nu, C, s);
    cudaCheck(cudaStreamSynchronize(s));
    floatX* dwte = host_alloc<floatX>(nw);
    dev_download(dwte, d_dwte, nw);
    float* acc = host_alloc<float>(nw);
    for (size_t k = 0; k < nw; k++) acc[k] = bf(dwte0[k]);
    for (int i = 0; i < N; i++) // increasing position: the kernel's order within a token
        for (int c = 0; c < C; c++) acc[(size_t)inp[i] * C + c] += bf(dout[(size_t)i * C + c]);
    bad = 0;
    for (size_t k = 0; k < nw; k++) {
        uint16_t g; memcpy(&g, &dwte[k], 2);
        if (g != lm_bf16_rne(acc[k])) bad++;
    }
    check(bad == 0, "backward bit-exact vs the same-order fp32 sums (%d distinct tokens, %zu mismatches)", nu, bad);
    // and a plain tolerance view of the same numbers, for the size of any difference
    compare_bf16("dwte", dwte, acc, nw, BF16_RTOL, 0.0f);

    if (sh->time) {
        // forward reads N rows of wte and writes N rows; backward reads dout and reads+writes nu rows
        report_bw("encoder_forward", 2.0 * no * sizeof(floatX) + N * sizeof(int),
                  time_ms([&] { encoder_forward(d_out, d_inp, d_wte, N, C, s); }, s));
        report_bw("encoder_backward (device part)", (no + 2.0 * nu * C) * sizeof(floatX),
                  time_ms([&] { encoder_backward(d_dwte, d_dout, d_bucket, N, nu, C, s); }, s));
        clock_t t0 = clock();
        for (int r = 0; r < 10; r++) encoder_backward_buckets(bucket, counts, inp, N, V);
        printf("    host bucketing %.3f ms per call\n", (double)(clock() - t0) / CLOCKS_PER_SEC * 100.0);
    }
    cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_wte)); cudaCheck(cudaFree(d_dout));
    cudaCheck(cudaFree(d_dwte)); cudaCheck(cudaFree(d_out)); cudaCheck(cudaFree(d_bucket));
    free(inp); free(wte); free(dout); free(dwte0); free(out); free(bucket); free(counts); free(dwte); free(acc);
}

int main(void) {
    print_device("encoder");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    const Shape shapes[] = {
        {1, 60, 211, 0},          // one position
        {128, 60, 211, 0},        // the tiny reference model (C=60, V=211)
        {1000, 100, 7, 0},        // many repeats per token: long in-order sums
        {777, 257, 50257, 0},     // C not a multiple of 8 or of the block size 256
        {8192, 2048, 32000, 1},   // timing
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) run_shape(&shapes[i], s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
