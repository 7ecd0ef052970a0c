/*
Fused classifier of llama_kernels.cuh (online-softmax cross-entropy; dlogits in place over the
logits) against the CPU engine's crossentropy_forward / crossentropy_backward (train_llama.c):
  losses (N) fp32 = lse - logit[target]; 0 for ignored targets (< 0)
  write_grad 1: logits (N, V) <- (softmax - onehot) * dloss, dloss = 1 / n_valid, n_valid counted
                on the device by targets_count and divided there (__fdiv_rn: the host's fp32 1.0f /
                n_valid), as the trainer does; the count checked against the host's;
                ignored rows become zeros
  a target >= V: targets_count names its first position, the classifier treats the row as ignored
                (no read outside the row)
  write_grad 0: the logits are left bit-identical (evaluation)
V covers the tiny reference's 211 (fewer logits than the block's 512 threads: threads that see
no element must not poison the max/sum), 32000, 50257 (odd), 128256. Rows include a target at
the row's max, a wide spread (+-60) for the online rescaling, and ignored targets; one case has
every target ignored.

Compile (from the repository root; `make -C dev/cuda` does the same):
nvcc -O3 -std=c++17 --use_fast_math -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -Xcompiler -fopenmp dev/cuda/classifier.cu -o dev/cuda/classifier -lcublas -lcublasLt -lcusolver -lcudnn -lcjson -L/usr/lib/x86_64-linux-gnu/openblas-openmp -l:libblas.so.3 -l:liblapack.so.3 -lgomp
Run: ./dev/cuda/classifier     (last line "N passed, N failed"; exit status 1 on any mismatch)
*/
#include "common.cuh"

typedef struct { int N, V; int all_ignored; int time; } Shape;

static void run_shape(const Shape* sh, cudaStream_t s) {
    if (sh->time && !DEV_CUDA_TIMING) return;
    int N = sh->N, V = sh->V;
    printf("N=%d V=%d%s\n", N, V, sh->all_ignored ? " (every target ignored)" : "");
    size_t n = (size_t)N * V;
    floatX* logits = host_alloc<floatX>(n);
    float* flog = host_alloc<float>(n);
    fill_bf16(logits, NULL, n, 8.0f);
    int* targets = host_alloc<int>(N);
    for (int i = 0; i < N; i++) {
        targets[i] = sh->all_ignored || i % 7 == 3 ? -1 : rand_int(V);
        floatX* row = logits + (size_t)i * V;
        if (i % 5 == 1 && targets[i] >= 0) row[targets[i]] = tobf(20.0f);           // target is the max
        if (i % 5 == 2) for (int j = 0; j < V; j += 3) row[j] = tobf(j % 2 ? 60.0f : -60.0f); // wide spread
    }
    unpack_bf16(flog, logits, n);
    int n_valid = 0;
    for (int i = 0; i < N; i++) n_valid += targets[i] >= 0;
    float dloss = n_valid > 0 ? 1.0f / (float)n_valid : 0.0f; // what the device must compute from its count
    // the CPU reference: forward losses and lse, then dlogits in place
    float *ref_losses = host_alloc<float>(N), *lse = host_alloc<float>(N);
    int cpu_valid = cpu::crossentropy_forward(ref_losses, lse, flog, targets, N, V);
    check(cpu_valid == n_valid, "n_valid %d", n_valid);
    float* ref_d = host_alloc<float>(n);
    memcpy(ref_d, flog, sizeof(float) * n);
    cpu::crossentropy_backward(ref_d, lse, targets, N, V, dloss);

    floatX* d_logits = dev_upload(logits, n);
    int* d_targets = dev_upload(targets, N);
    int* d_counts = (int*)cudaMallocCheck(sizeof(int) * TC_NUM, "target counts");
    targets_count(d_counts, d_targets, N, V, s);
    int hc[TC_NUM];
    dev_download(hc, d_counts, TC_NUM);
    check(hc[TC_VALID] == n_valid && hc[TC_NORM] == n_valid && hc[TC_FIRST_BAD] == N,
          "targets_count: %d valid (host %d), norm %d, first out-of-vocabulary position %d (none: %d)", hc[TC_VALID], n_valid, hc[TC_NORM],
          hc[TC_FIRST_BAD], N);
    float* d_losses = (float*)cudaMallocCheck(sizeof(float) * N, "losses");
    float* losses = host_alloc<float>(N);
    floatX* got = host_alloc<floatX>(n);
    // loss tolerance: the fp32 sum of up to 128k exps (each thread ~250 terms, then a tree) and
    // fast-math exp/log (relative error ~6e-8 per unit of |x - max|, x within 120 of the max) put
    // lse within ~1e-5 of itself; a wrong max, target or sum moves the loss by far more
    for (int write_grad = 0; write_grad <= 1; write_grad++) {
        cudaCheck(cudaMemcpy(d_logits, logits, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        cudaCheck(cudaMemset(d_losses, 0xff, sizeof(float) * N)); // NaN pattern: catches unwritten losses
        fused_classifier(d_logits, d_losses, d_targets, N, V, write_grad ? 1.0f : 0.0f, d_counts + TC_NORM, write_grad, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(losses, d_losses, N);
        dev_download(got, d_logits, n);
        char name[64];
        snprintf(name, sizeof name, "losses (write_grad %d)", write_grad);
        compare_f32(name, losses, ref_losses, N, 2e-5f, 1e-4f);
        if (!write_grad) {
            check(memcmp(got, logits, sizeof(floatX) * n) == 0, "write_grad 0 leaves the logits bit-identical");
        } else {
            // dlogits = (p - onehot) dloss: one bf16 rounding; p carries lse's ~1e-5 and exp's
            // ~1e-5 relative error; at the target p - 1 cancels, so atol 3e-5 dloss (a missing
            // -1 would be off by dloss itself)
            compare_bf16("dlogits", got, ref_d, n, BF16_RTOL + 3e-5f, 3e-5f * dloss + 1e-30f);
            size_t nonzero = 0;
            for (int i = 0; i < N; i++)
                if (targets[i] < 0) for (int j = 0; j < V; j++) nonzero += bf(got[(size_t)i * V + j]) != 0.0f;
            check(nonzero == 0, "ignored rows are all zero (%zu nonzero)", nonzero);
        }
    }
    if (sh->time) {
        // forward only: one read of the logits; with the gradient: two reads and one write
        cudaCheck(cudaMemcpy(d_logits, logits, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        report_bw("fused_classifier (loss only)", 1.0 * n * sizeof(floatX),
                  time_ms([&] { fused_classifier(d_logits, d_losses, d_targets, N, V, 0.0f, d_counts + TC_NORM, 0, s); }, s));
        // in place: later iterations run on the previous dlogits, which costs the same
        report_bw("fused_classifier (loss + dlogits)", 3.0 * n * sizeof(floatX),
                  time_ms([&] { fused_classifier(d_logits, d_losses, d_targets, N, V, 1.0f, d_counts + TC_NORM, 1, s); }, s));
    }
    // a target outside the vocabulary: counted as bad at its first position, its row ignored
    if (N >= 3) {
        int* bad = host_alloc<int>(N);
        memcpy(bad, targets, sizeof(int) * N);
        bad[N - 1] = V + 5; bad[N / 2] = V; // two bad: the first position is reported
        cudaCheck(cudaMemcpy(d_targets, bad, sizeof(int) * N, cudaMemcpyHostToDevice));
        targets_count(d_counts, d_targets, N, V, s);
        cudaCheck(cudaMemcpy(d_logits, logits, sizeof(floatX) * n, cudaMemcpyHostToDevice));
        fused_classifier(d_logits, d_losses, d_targets, N, V, 1.0f, d_counts + TC_NORM, 1, s);
        cudaCheck(cudaStreamSynchronize(s));
        dev_download(hc, d_counts, TC_NUM);
        dev_download(losses, d_losses, N);
        int expect_valid = 0;
        for (int i = 0; i < N; i++) expect_valid += bad[i] >= 0 && bad[i] < V;
        check(hc[TC_FIRST_BAD] == N / 2 && hc[TC_VALID] == expect_valid && losses[N / 2] == 0.0f && losses[N - 1] == 0.0f,
              "a target >= V: first bad position %d (expected %d), %d valid (expected %d), its rows' losses 0", hc[TC_FIRST_BAD], N / 2,
              hc[TC_VALID], expect_valid);
        free(bad);
    }
    cudaCheck(cudaFree(d_logits)); cudaCheck(cudaFree(d_targets)); cudaCheck(cudaFree(d_losses)); cudaCheck(cudaFree(d_counts));
    free(logits); free(flog); free(targets); free(ref_losses); free(lse); free(ref_d); free(losses); free(got);
}

int main(void) {
    print_device("classifier");
    cudaStream_t s;
    cudaCheck(cudaStreamCreate(&s));
    const Shape shapes[] = {
        {1, 2, 0, 0},           // two classes, one row
        {128, 211, 0, 0},       // the tiny reference model: V < 512 threads per row
        {16, 211, 1, 0},        // every target ignored: dloss 0, all rows zero, losses 0
        {64, 32000, 0, 0},      // llama-2 vocabulary
        {37, 50257, 0, 0},      // odd V
        {8, 128256, 0, 0},      // llama-3 vocabulary
        {4096, 32000, 0, 1},    // timing
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) run_shape(&shapes[i], s);
    cudaCheck(cudaStreamDestroy(s));
    return finish();
}
