// test_llama.cu: the GPU trainer against PyTorch (dev/ref/tiny, the files test_llama.c uses) and
// against the CPU engine itself. One command on a GPU machine tells what is wrong:
//   make test_llamacu && ./test_llamacu
// Order: host-side checks of the GPU math helpers (run anywhere), then on the GPU: step-0 logits,
// loss and every gradient vs PyTorch; one forward + backward vs the CPU engine (train_llama.c,
// compiled into namespace cpu) on the llama_tiny preset (head dim 64: the cuDNN attention path
// where it builds; the reference's head dim 10 takes the cuBLAS fallback); 10 AdamW steps vs
// PyTorch in pure bf16 and with --master-weights; determinism (save, 10 steps, reload, rerun:
// bit-identical losses and weights) in each optimizer mode. Then GaLore and 8-bit Adam: the 8-bit
// kernels (parallel vs the serial adam8bit_update_block vs the CPU), the projector refresh (gesvdj
// and gesvd vs LAPACK + the sign convention; the randomized one vs the CPU's range finder), one optimizer step of each kind from the same gradient
// vs the CPU's Optimizer (projectors, moments, 8-bit states, weights) and 5 steps on each engine's
// own gradients, the fused GaLore update against the unfused one (test_galore_fused), per-layer ==
// whole-model on the GPU, and save/resume determinism with projectors. --weights int8 against the
// CPU's weight8.h functions (test_w8_vs_cpu: upload, download, requantization bit for bit; the
// update and the codes within the derived bounds). Then transformers' saves of
// each Llama family (dev/ref/hf: llama2, llama3, tied, headdim, linear): logits, gradients and
// per-layer == whole-model for the tied and head_dim ones (test_gpu_hf_families).
//
// Error metrics for a tensor (ours a, reference b):
//   normalized max error  max_k |a_k - b_k| / max_k |b_k|
//   cosine                <a, b> / (|a| |b|), which any layout or indexing bug drives far from 1
// Tolerances: bf16 keeps 8 significant bits, so each rounding of a stored value moves it by up to
// 2^-9 (0.2%) of itself. A forward stores ~10 bf16 tensors per layer; independent roundings add
// like a random walk, a few x 0.2% of the largest values per layer, i.e. ~1% of the tensor's max
// after 2-4 layers. The bounds below are ~5x that (so real bugs, which give O(1) errors, fail
// and rounding does not). Gradients go through twice as many roundings plus bf16 accumulation of
// the weight gradients: bound 0.1 normalized, with a cosine >= 0.995 catching structural errors.
#define TESTING
#include "train_llama.cu"
// the CPU engine, as an oracle: its own namespace so that its Llama, Optimizer, attention_forward,
// ... cannot clash with this program's. Its system headers must come first, outside the namespace.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#undef _GNU_SOURCE
namespace cpu {
#include "train_llama.c"
}

static int n_pass = 0, n_fail = 0;

static void check(int ok, const char* fmt, ...) {
    va_list ap; va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) n_pass++; else n_fail++;
}

static double norm_max_err(const float* a, const float* b, size_t n) {
    double maxd = 0.0, maxr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxd)) maxd = d; // NaN-safe: a NaN makes the error NaN, which fails
        if (fabs((double)b[i]) > maxr) maxr = fabs((double)b[i]);
    }
    return maxr > 0.0 ? maxd / maxr : maxd;
}

static double cosine(const float* a, const float* b, size_t n) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (size_t i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    if (aa == 0.0 && bb == 0.0) return 1.0;
    if (aa == 0.0 || bb == 0.0) return 0.0;
    return ab / sqrt(aa * bb);
}

// ----------------------------------------------------------------------------
// host-side checks: what the kernels compute per element, run on the CPU

static void test_host_math(void) {
    // lm_bf16_rne (the device's rounding helper) against safetensors.h's bf16_from_f32
    Rng rng; rng_init(&rng, 1);
    int same = 1;
    for (int k = 0; k < 100000; k++) {
        float x = (float)(rng_normal(&rng) * pow(10.0, (double)(k % 40) - 20.0));
        if (lm_bf16_rne(x) != bf16_from_f32(x)) same = 0;
    }
    float specials[6] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 3.3895314e38f};
    for (int k = 0; k < 6; k++) if (lm_bf16_rne(specials[k]) != bf16_from_f32(specials[k])) same = 0;
    check(same, "lm_bf16_rne == bf16_from_f32 on 100k values and the specials");
    // stochastic rounding: always one of the two neighbours, and unbiased on average
    float x = 1.0f + 0.3f * (1.0f / 128.0f); // 30%% of an ulp above 1.0 (bf16 ulp at 1 is 2^-7)
    double sum = 0.0;
    int neighbours = 1, n = 200000;
    for (int i = 0; i < n; i++) {
        float r = lm_bf16_to_f32(lm_bf16_stochastic(x, lm_sr_bits(12345u, (uint64_t)i)));
        if (r != 1.0f && r != 1.0f + 1.0f / 128.0f) neighbours = 0;
        sum += r;
    }
    double bias = (sum / n - x) / (1.0 / 128.0);
    check(neighbours && fabs(bias) < 0.01, "stochastic rounding: neighbours only, mean bias %.4f ulp (bound 0.01)", bias);
    float neg = -x;
    double nsum = 0.0;
    for (int i = 0; i < n; i++) nsum += lm_bf16_to_f32(lm_bf16_stochastic(neg, lm_sr_bits(777u, (uint64_t)i)));
    double nbias = (nsum / n - neg) / (1.0 / 128.0);
    check(fabs(nbias) < 0.01, "stochastic rounding of a negative value: mean bias %.4f ulp (bound 0.01)", nbias);
    // the MFU table
    check(gpu_peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0 && gpu_peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0 &&
          gpu_peak_bf16_tflops("NVIDIA GeForce RTX 4090") > 160.0 && gpu_peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0 &&
          gpu_peak_bf16_tflops("NVIDIA H200") == 989.0 && gpu_peak_bf16_tflops("NVIDIA L40S") == 362.0 &&
          gpu_peak_bf16_tflops("NVIDIA GeForce RTX 3090") == 71.0 && gpu_peak_bf16_tflops("Some Future GPU") < 0,
          "peak bf16 TFLOPS table (H100 SXM/PCIe, H200, A100, L40S, 4090, 3090; unknown -> -1)");
    char buf[32];
    format_mfu(buf, sizeof buf, 1e9, 1e3, -1.0);
    int na = strcmp(buf, "n/a") == 0;
    format_mfu(buf, sizeof buf, 1e12, 100.0, 200.0);
    check(na && strcmp(buf, "50.0%") == 0, "MFU: n/a for unknown cards, 50.0%% for 1e14 FLOP/s on a 200 TFLOPS card (got %s)", buf);
    // encoder buckets: every position once, grouped by token, increasing inside a token
    int inp[12] = {5, 3, 5, 0, 9, 3, 5, 1, 1, 9, 0, 5};
    int bucket[25], counts[11];
    int nu = encoder_backward_buckets(bucket, counts, inp, 12, 10);
    int ok = nu == 5 && bucket[12 + nu] == 12;
    int seen[12] = {0};
    for (int u = 0; u < nu && ok; u++) {
        int tokv = bucket[12 + nu + 1 + u];
        for (int j = bucket[12 + u]; j < bucket[12 + u + 1]; j++) {
            int pos = bucket[j];
            ok &= inp[pos] == tokv && !seen[pos];
            seen[pos] = 1;
            if (j > bucket[12 + u]) ok &= bucket[j - 1] < pos;
        }
    }
    for (int i = 0; i < 12; i++) ok &= seen[i];
    check(ok, "encoder backward buckets: %d distinct tokens, positions grouped and ordered", nu);
}

// ----------------------------------------------------------------------------
// the PyTorch reference (the format test_llama.c reads)

#include "dev/ref/reference.h"

static void download_logits(GpuLlama* m, float* out) {
    download_f32(out, m->acts.logits, (size_t)m->B * m->T * m->config.V, 0);
}

// per-tensor gradient checks; returns the number of failing tensors
static int check_grads(const ParamTable* pt, const float* ours, const float* ref, const char* what, double bound, double cos_bound) {
    double worst = 0.0, worst_cos = 1.0;
    const char *wn = "", *wc = "";
    int bad = 0;
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        double e = norm_max_err(ours + p->offset, ref + p->offset, (size_t)p->numel);
        double cs = cosine(ours + p->offset, ref + p->offset, (size_t)p->numel);
        if (!(e <= worst)) { worst = e; wn = p->name; }
        if (!(cs >= worst_cos)) { worst_cos = cs; wc = p->name; }
        if (!(e < bound) || !(cs >= cos_bound)) {
            check(0, "%s: gradient %s: normalized max error %.3e (bound %.0e), cosine %.6f (bound %.3f)", what, p->name, e, bound, cs, cos_bound);
            bad++;
        }
    }
    check(bad == 0, "%s: gradients of all %d tensors: worst normalized max error %.3e in %s (bound %.0e), worst cosine %.6f in %s (bound %.3f)",
          what, pt->n, worst, wn, bound, worst_cos, wc, cos_bound);
    return bad;
}

// step 0 against PyTorch: logits, loss, ignored targets, every gradient
static void test_parity(const Reference* r, const LlamaConfig* c, const float* init, int attn_fallback) {
    GpuLlama m;
    gpu_build(&m, c, r->B, r->T, 0, attn_fallback, 0);
    printf("     reference model: attention: %s\n", attention_path(&m.attn));
    gpu_upload_params(&m, init);
    size_t BT = (size_t)r->B * r->T, P = m.table.total;
    float* logits = (float*)mallocCheck(sizeof(float) * BT * r->V);
    // forward without gradients keeps the logits
    gpu_forward(&m, r->inputs, r->targets, r->B, r->T, 0.0f);
    download_logits(&m, logits);
    double e = norm_max_err(logits, r->logits, BT * r->V), cs = cosine(logits, r->logits, BT * r->V);
    check(e < 5e-2 && cs > 0.999, "logits vs PyTorch: normalized max error %.3e (bound 5e-2), cosine %.6f (bound 0.999)", e, cs);
    double le = fabs(m.mean_loss - r->loss) / fabs(r->loss);
    // the loss is a mean over 30+ rows of log-sum-exps: rounding averages out; 1e-2 is ~10x the expected
    check(le < 1e-2, "loss %.6f vs PyTorch %.6f: relative error %.2e (bound 1e-2)", m.mean_loss, r->loss, le);
    int ignored = 0;
    for (size_t i = 0; i < BT; i++) ignored += r->targets[i] < 0;
    check(ignored > 0 && m.n_valid == (int)BT - ignored, "ignored targets: %d of %zu excluded from the mean", ignored, BT);
    // forward with gradients, backward
    gpu_zero_grad(&m);
    gpu_forward(&m, r->inputs, r->targets, r->B, r->T, 1.0f);
    gpu_backward(&m, r->inputs, r->B, r->T);
    float* grads = (float*)mallocCheck(sizeof(float) * P);
    download_f32(grads, m.grads, P, 0);
    check_grads(&m.table, grads, r->grads, "vs PyTorch", 0.1, 0.995);
    // the classifier's in-place dlogits: rows sum to 0 (softmax - onehot), ignored rows are zero
    float* dl = logits;
    download_logits(&m, dl);
    double worst_row = 0.0;
    int zero_rows = 1;
    for (size_t i = 0; i < BT; i++) {
        double s = 0.0, amax = 0.0;
        for (int j = 0; j < r->V; j++) { s += dl[i * r->V + j]; amax = fmax(amax, fabs(dl[i * r->V + j])); }
        if (r->targets[i] < 0) { if (amax != 0.0) zero_rows = 0; }
        else if (fabs(s) > worst_row) worst_row = fabs(s);
    }
    double dloss = 1.0 / m.n_valid;
    check(zero_rows && worst_row < 0.05 * dloss, "dlogits: rows sum to 0 (worst |sum| %.2e of dloss %.2e), ignored rows zero", worst_row, dloss);
    free(logits); free(grads);
    gpu_free(&m);
}

// one forward + backward on the llama_tiny preset (random init) against the CPU engine given the
// same bf16-rounded weights: isolates the GPU kernels (activation rounding) from weight rounding
static void test_vs_cpu(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int B = 2, T = 64, BT = B * T;
    cpu::Llama cm;
    cpu::llama_build(&cm, &c);
    cpu::llama_set_grad_mode(&cm, 0);
    llama_init_params(&cm.table, cm.params, 1234);
    for (size_t k = 0; k < cm.table.total; k++) cm.params[k] = f32_from_bf16(bf16_from_f32(cm.params[k]));
    cpu::llama_alloc_activations(&cm, B, T, 0);
    int* in = (int*)mallocCheck(sizeof(int) * BT);
    int* tg = (int*)mallocCheck(sizeof(int) * BT);
    Rng rng; rng_init(&rng, 99);
    for (int i = 0; i < BT; i++) { in[i] = (int)rng_below(&rng, c.V); tg[i] = (i % 17 == 5) ? -1 : (int)rng_below(&rng, c.V); }
    cpu::llama_forward(&cm, in, tg, B, T);
    float* cpu_logits = (float*)mallocCheck(sizeof(float) * BT * c.V);
    memcpy(cpu_logits, cm.acts.logits, sizeof(float) * BT * c.V);
    cpu::llama_zero_grad(&cm);
    cpu::llama_backward(&cm, in, tg, B, T, 1.0f);

    GpuLlama m;
    gpu_build(&m, &c, B, T, 0, attn_fallback, 0);
    const char* path = m.attn.use_cudnn ? "cuDNN attention" : "cuBLAS attention";
    gpu_upload_params(&m, cm.params);
    gpu_forward(&m, in, tg, B, T, 0.0f);
    float* logits = (float*)mallocCheck(sizeof(float) * BT * c.V);
    download_logits(&m, logits);
    double e = norm_max_err(logits, cpu_logits, (size_t)BT * c.V), cs = cosine(logits, cpu_logits, (size_t)BT * c.V);
    check(e < 5e-2 && cs > 0.999, "llama_tiny %dx%d (%s) vs the CPU engine: logits normalized max error %.3e (bound 5e-2), cosine %.6f (bound 0.999)",
          B, T, path, e, cs);
    double le = fabs(m.mean_loss - cm.mean_loss) / fabs(cm.mean_loss);
    check(le < 1e-2, "llama_tiny (%s): loss %.6f vs CPU %.6f, relative error %.2e (bound 1e-2)", path, m.mean_loss, cm.mean_loss, le);
    gpu_zero_grad(&m);
    gpu_forward(&m, in, tg, B, T, 1.0f);
    gpu_backward(&m, in, B, T);
    float* grads = (float*)mallocCheck(sizeof(float) * m.table.total);
    download_f32(grads, m.grads, m.table.total, 0);
    char what[64];
    snprintf(what, sizeof what, "llama_tiny (%s) vs CPU", path);
    check_grads(&m.table, grads, cm.grad_mem, what, 0.1, 0.995);
    free(logits); free(grads); free(cpu_logits); free(in); free(tg);
    gpu_free(&m);
    cpu::llama_free(&cm);
}

// ----------------------------------------------------------------------------
// training

// steps [first, first + n) of the reference's recipe; losses (n) out
static void run_gpu_steps(GpuTrainer* tr, DataLoader* dl, const Reference* r, int first, int n, float* losses, float* norms) {
    int* inputs = (int*)mallocCheck(sizeof(int) * r->B * r->T);
    int* targets = (int*)mallocCheck(sizeof(int) * r->B * r->T);
    for (int s = first; s < first + n; s++) {
        float lr = (float)(r->lr * lr_lambda(s, r->warmup, r->N, r->min_ratio, 1));
        float norm;
        int skipped;
        int64_t nt;
        losses[s - first] = gpu_train_step(tr, dl, lr, inputs, targets, &norm, &skipped, &nt);
        if (norms) norms[s - first] = norm;
        if (skipped) printf("     note: step %d skipped (non-finite)\n", s + 1);
    }
    free(inputs); free(targets);
}

static OptimConfig ref_optim(const Reference* r, int kind) {
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.beta1 = r->beta1; oc.beta2 = r->beta2; oc.weight_decay = r->wd;
    oc.eps = kind == OPTIM_ADAMW ? r->eps_adamw : kind == OPTIM_ADAM ? r->eps_adam : OPTIM_DEFAULT_EPS[kind];
    return oc;
}

// S steps of AdamW / Adam against PyTorch's losses and final weights
static void test_training(const Reference* r, const LlamaConfig* c, const float* init, int kind, int master, int sr, int attn_fallback) {
    GpuLlama m;
    gpu_build(&m, c, r->B, r->T, master, attn_fallback, 0);
    gpu_upload_params(&m, init);
    OptimConfig oc = ref_optim(r, kind);
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, &oc, 0, 1, r->clip, sr, 42, 0);
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", r->B, r->T, 0, 0, 0, 1, r->V);
    float* losses = (float*)mallocCheck(sizeof(float) * r->S);
    run_gpu_steps(&tr, &dl, r, 0, r->S, losses, NULL);
    const float* ref_losses = kind == OPTIM_ADAMW ? r->losses_adamw : r->losses_adam;
    const float* ref_params = kind == OPTIM_ADAMW ? r->params_adamw : r->params_adam;
    double lmax = 0.0;
    for (int s = 0; s < r->S; s++) {
        double d = fabs(losses[s] - ref_losses[s]) / fabs(ref_losses[s]);
        if (!(d <= lmax)) lmax = d;
    }
    char mode[96];
    snprintf(mode, sizeof mode, "%s, %s%s", OPTIM_NAMES[kind], master ? "fp32 master weights + moments" : "bf16 weights + moments",
             sr ? ", stochastic rounding" : "");
    // losses: the step-0 loss is within ~1e-3 (above); 10 Adam steps at lr 1e-2 on bf16 weights
    // drift further (Adam normalizes tiny, noisy gradients to full-size steps): 3e-2 allows that,
    // and a broken update (wrong sign, scale, bias correction) moves the losses by far more
    check(lmax < 3e-2 && losses[r->S - 1] < losses[0], "%s: %d losses %.5f -> %.5f (PyTorch %.5f -> %.5f), max relative error %.2e (bound 3e-2)",
          mode, r->S, losses[0], losses[r->S - 1], ref_losses[0], ref_losses[r->S - 1], lmax);
    // the weight updates as a whole point the same way as PyTorch's: cosine of (final - init)
    float* fin = (float*)mallocCheck(sizeof(float) * m.table.total);
    float* d_ours = (float*)mallocCheck(sizeof(float) * m.table.total);
    float* d_ref = (float*)mallocCheck(sizeof(float) * m.table.total);
    gpu_download_params(&m, fin);
    for (size_t k = 0; k < m.table.total; k++) { d_ours[k] = fin[k] - init[k]; d_ref[k] = ref_params[k] - init[k]; }
    double cs = cosine(d_ours, d_ref, m.table.total);
    check(cs > 0.9, "%s: weight change after %d steps vs PyTorch's: cosine %.4f (bound 0.9)", mode, r->S, cs);
    free(fin); free(d_ours); free(d_ref); free(losses);
    dataloader_free(&dl);
    gpu_trainer_free(&tr);
    gpu_free(&m);
}

// determinism and exact resume: 3 steps, checkpoint, 10 steps; reload the checkpoint, the same 10
// steps again: losses and final weights must be bit-identical
// the attention mode of the bitwise comparisons: cuDNN only with a deterministic backward (else the
// cuBLAS path), so that a dQ-accumulator engine (fp32 atomics) can never make them fail, or the
// fallback when --attn-fallback 1 asked for it everywhere
static int bitwise_attn_mode(int attn_fallback) { return attn_fallback == ATTN_FALLBACK ? ATTN_FALLBACK : ATTN_DETERMINISTIC; }

static void test_determinism(const Reference* r, const LlamaConfig* c, const float* init, int master, int sr, int attn_fallback, int kind = OPTIM_ADAMW,
                             int per_layer = 0) {
    char dir[] = "/tmp/galore_cu_test_XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp failed");
    Settings s;
    cli_defaults(&s);
    snprintf(s.out, sizeof s.out, "%s", dir);
    s.batch = r->B; s.seq = r->T; s.grad_accum = 1; s.per_layer = per_layer; s.shuffle = 0; s.seed = 42; s.keep = 0;
    GpuLlama m;
    gpu_build(&m, c, r->B, r->T, master, bitwise_attn_mode(attn_fallback), 0);
    gpu_upload_params(&m, init);
    OptimConfig oc = ref_optim(r, kind);
    if (optim_has_projector(kind)) { oc.rank = 4; oc.update_proj_gap = 4; oc.scale = 0.25f; oc.proj_type = PROJ_STD; } // refreshes at 1, 5, 9, 13
    apollo_config_defaults(&oc); // APOLLO: projector redraws and the limiter's state across the resume
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, &oc, per_layer, 1, per_layer ? 0.0f : r->clip, sr, 42, 0);
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", r->B, r->T, 0, 0, 0, 1, r->V);
    Rng rng; rng_init(&rng, 7);
    float pre[3], a[10], b[10];
    GpuRun run;
    memset(&run, 0, sizeof run);
    run.tr = &tr;
    Engine e = gpu_engine(&run);
    run_gpu_steps(&tr, &dl, r, 0, 3, pre, NULL);
    Dist one;
    dist_init(&one, NULL, NULL, "");
    run_save(&e, &one, &s, c, &oc, &dl, &rng, 3, 0);
    run_gpu_steps(&tr, &dl, r, 3, 10, a, NULL);
    size_t P = m.table.total;
    float* wa = (float*)mallocCheck(sizeof(float) * P);
    float* wb = (float*)mallocCheck(sizeof(float) * P);
    gpu_download_params(&m, wa);
    // scramble the state, then resume from the checkpoint
    run_gpu_steps(&tr, &dl, r, 13, 2, pre, NULL);
    Progress pr;
    int ok = run_resume(&e, &one, &s, c, &oc, &dl, &rng, &pr);
    run_gpu_steps(&tr, &dl, r, 3, 10, b, NULL);
    gpu_download_params(&m, wb);
    char mode[96];
    snprintf(mode, sizeof mode, "%s%s, %s%s", master ? "fp32 master weights + moments" : "bf16 weights + moments", sr ? ", stochastic rounding" : "",
             OPTIM_NAMES[kind], per_layer ? " per-layer" : "");
    check(ok && pr.step == 3 && tr.t == 13, "%s: resumed from the step-3 checkpoint (%lld updates after rerun)", mode, (long long)tr.t);
    int same_l = memcmp(a, b, sizeof a) == 0, same_w = memcmp(wa, wb, sizeof(float) * P) == 0;
    int first_diff = -1;
    for (int k = 0; k < 10 && first_diff < 0; k++) if (memcmp(&a[k], &b[k], sizeof(float)) != 0) first_diff = k;
    check(same_l && same_w, "%s: determinism: save, 10 steps, reload, rerun: losses %s (%.7f ... %.7f)%s, weights %s",
          mode, same_l ? "bit-identical" : "DIFFER", a[0], a[9], first_diff >= 0 ? " first difference at rerun step" : "",
          same_w ? "bit-identical" : "DIFFER");
    if (first_diff >= 0) printf("     step %d: %.9g vs %.9g; attention: %s\n", first_diff + 4, a[first_diff], b[first_diff], attention_path(&m.attn));
    free(wa); free(wb);
    dataloader_free(&dl);
    gpu_trainer_free(&tr);
    gpu_free(&m);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

// ----------------------------------------------------------------------------
// GaLore and 8-bit Adam on the GPU (galore.cuh, adam8bit.cuh) against the CPU engine

static void upload_bytes(void* dev, const void* host, size_t n) { cudaCheck(cudaMemcpy(dev, host, n, cudaMemcpyHostToDevice)); }
static void download_bytes(void* host, const void* dev, size_t n) { cudaCheck(cudaMemcpy(host, dev, n, cudaMemcpyDeviceToHost)); }

// the 8-bit kernels: the parallel one against the serial one (adam8bit_update_block verbatim on the
// device) and both against the CPU's adam8bit_update; and the 32-bit path against adam32_update.
// Sizes: whole blocks, a short last block, several thousand blocks. 3 steps from the zero state.
static void test_adam8bit_kernels(void) {
    size_t sizes[3] = {4096, 5000, 70017};
    float* maps = adam8bit_maps_upload();
    float hmap[512];
    adam8bit_create_dynamic_map(hmap, 1);
    adam8bit_create_dynamic_map(hmap + 256, 0);
    float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, lr = 1e-2f, wd = 1e-2f;
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si], nb = (n + ADAM8_BLOCK - 1) / ADAM8_BLOCK;
        Rng rng; rng_init(&rng, 100 + si);
        float* p = (float*)mallocCheck(sizeof(float) * n);
        float* g = (float*)mallocCheck(sizeof(float) * n);
        for (size_t k = 0; k < n; k++) p[k] = f32_from_bf16(bf16_from_f32((float)(0.02 * rng_normal(&rng))));
        // the CPU state
        float* cp = (float*)mallocCheck(sizeof(float) * n);
        memcpy(cp, p, sizeof(float) * n);
        uint8_t* cq = (uint8_t*)callocCheck(2 * n, 1);
        float* ca = (float*)callocCheck(2 * nb, sizeof(float));
        // two GPU states: serial and parallel kernels, fp32 parameters (so the CPU comparison sees
        // only the kernels' arithmetic)
        float *dp[2], *dg, *da[2];
        uint8_t* dq[2];
        dg = (float*)cudaMallocCheck(sizeof(float) * n, "test g");
        for (int k = 0; k < 2; k++) {
            dp[k] = (float*)cudaMallocCheck(sizeof(float) * n, "test p");
            dq[k] = (uint8_t*)cudaMallocCheck(2 * n, "test q");
            da[k] = (float*)cudaMallocCheck(sizeof(float) * 2 * nb, "test absmax");
            upload_bytes(dp[k], p, sizeof(float) * n);
            cudaCheck(cudaMemset(dq[k], 0, 2 * n));
            cudaCheck(cudaMemset(da[k], 0, sizeof(float) * 2 * nb));
        }
        for (int t = 1; t <= 3; t++) {
            for (size_t k = 0; k < n; k++) g[k] = (float)(1e-3 * rng_normal(&rng) * (1 + (k % 7)));
            if (t == 2) g[n / 2] = NAN; // the NaN reset path
            upload_bytes(dg, g, sizeof(float) * n);
            adam8bit_update_serial<float, float>(dp[0], NULL, dg, dq[0], dq[0] + n, da[0], da[0] + nb, n, maps, b1, b2, eps, lr, wd, t, 1.0f, 0);
            adam8bit_update_gpu<float, float>(dp[1], NULL, dg, dq[1], dq[1] + n, da[1], da[1] + nb, n, maps, b1, b2, eps, lr, wd, t, 1.0f, 0, 0u, 0);
            adam8bit_update(cp, g, cq, cq + n, ca, ca + nb, (int64_t)n, hmap, hmap + 256, b1, b2, eps, lr, wd, t);
        }
        cudaCheck(cudaDeviceSynchronize());
        float* gp[2]; uint8_t* gq[2]; float* ga[2];
        for (int k = 0; k < 2; k++) {
            gp[k] = (float*)mallocCheck(sizeof(float) * n); gq[k] = (uint8_t*)mallocCheck(2 * n); ga[k] = (float*)mallocCheck(sizeof(float) * 2 * nb);
            download_bytes(gp[k], dp[k], sizeof(float) * n); download_bytes(gq[k], dq[k], 2 * n); download_bytes(ga[k], da[k], sizeof(float) * 2 * nb);
        }
        // serial vs parallel: the same fp32 operations per element, so the same bits are expected;
        // nvcc may contract differently in the two code shapes, so allow rare neighbour bytes
        size_t qdiff = 0, qfar = 0;
        for (size_t k = 0; k < 2 * n; k++) { int d = abs((int)gq[0][k] - (int)gq[1][k]); qdiff += d != 0; qfar += d > 1; }
        double pe = norm_max_err(gp[1], gp[0], n), ae = norm_max_err(ga[1], ga[0], 2 * nb);
        check(qfar == 0 && qdiff <= 2 * n / 1000 && pe < 1e-6 && ae < 1e-6,
              "adam8bit n %zu: parallel kernel vs serial (adam8bit_update_block on the device), 3 steps: %zu of %zu state bytes differ "
              "(bound 0.1%%, neighbours only), params %.1e, absmax %.1e (bounds 1e-6)", n, qdiff, 2 * n, pe, ae);
        // GPU vs CPU: fast-math __powf/__fdividef and FMAs move values by ulps: rare neighbour flips
        qdiff = 0; qfar = 0;
        for (size_t k = 0; k < 2 * n; k++) { int d = abs((int)gq[1][k] - (int)cq[k]); qdiff += d != 0; qfar += d > 1; }
        float* dpg = (float*)mallocCheck(sizeof(float) * n);
        float* dpc = (float*)mallocCheck(sizeof(float) * n);
        for (size_t k = 0; k < n; k++) { dpg[k] = gp[1][k] - p[k]; dpc[k] = cp[k] - p[k]; }
        pe = norm_max_err(dpg, dpc, n); ae = norm_max_err(ga[1], ca, 2 * nb);
        check(qfar <= n / 1000 && qdiff <= 2 * n / 100 && pe < 1e-3 && ae < 1e-4,
              "adam8bit n %zu: GPU vs CPU adam8bit_update, 3 steps: %zu state bytes differ (bound 1%%; %zu by more than one entry, bound 0.1%%), "
              "weight change %.1e (bound 1e-3), absmax %.1e (bound 1e-4)", n, qdiff, qfar, pe, ae);
        free(dpg); free(dpc);
        for (int k = 0; k < 2; k++) { free(gp[k]); free(gq[k]); free(ga[k]); cudaCheck(cudaFree(dp[k])); cudaCheck(cudaFree(dq[k])); cudaCheck(cudaFree(da[k])); }
        cudaCheck(cudaFree(dg));
        free(p); free(g); free(cp); free(cq); free(ca);
    }
    // 32-bit path, bf16 parameters on the GPU vs fp32 on the CPU from the same bf16 start
    {
        size_t n = 3000;
        Rng rng; rng_init(&rng, 5);
        float* p = (float*)mallocCheck(sizeof(float) * n); float* g = (float*)mallocCheck(sizeof(float) * n);
        float* cm_ = (float*)callocCheck(n, sizeof(float)); float* cv = (float*)callocCheck(n, sizeof(float));
        float* cp = (float*)mallocCheck(sizeof(float) * n);
        for (size_t k = 0; k < n; k++) cp[k] = p[k] = f32_from_bf16(bf16_from_f32((float)(0.02 * rng_normal(&rng))));
        floatX* dp = (floatX*)cudaMallocCheck(sizeof(floatX) * n, "test p");
        float* dg = (float*)cudaMallocCheck(sizeof(float) * n, "test g");
        float* dm = (float*)cudaMallocCheck(sizeof(float) * 2 * n, "test mv");
        upload_f32(dp, p, n, 0);
        cudaCheck(cudaMemset(dm, 0, sizeof(float) * 2 * n));
        for (int t = 1; t <= 3; t++) {
            for (size_t k = 0; k < n; k++) g[k] = (float)(1e-3 * rng_normal(&rng));
            upload_bytes(dg, g, sizeof(float) * n);
            adam32_update_gpu<floatX, float>(dp, NULL, dg, dm, dm + n, n, 0.9f, 0.999f, 1e-8f, 1e-3f, 0.0f, t, 1.0f, 0, 0u, 0);
            adam32_update(cp, g, cm_, cv, (int64_t)n, 0.9f, 0.999f, 1e-8f, 1e-3f, 0.0f, t);
        }
        float* gp = (float*)mallocCheck(sizeof(float) * n);
        download_f32(gp, dp, n, 0);
        for (size_t k = 0; k < n; k++) { gp[k] -= p[k]; cp[k] -= p[k]; }
        // bf16 weights: each step rounds the weight (2^-9 of ~0.02 = 4e-5) against steps of ~1e-3
        double e = norm_max_err(gp, cp, n), cs = cosine(gp, cp, n);
        check(e < 0.1 && cs > 0.99, "adam32 path (small tensors), bf16 weights vs the CPU, 3 steps: weight change normalized max error %.2e "
              "(bound 0.1: bf16 weight rounding), cosine %.5f (bound 0.99)", e, cs);
        free(p); free(g); free(cm_); free(cv); free(cp); free(gp);
        cudaCheck(cudaFree(dp)); cudaCheck(cudaFree(dg)); cudaCheck(cudaFree(dm));
    }
    cudaCheck(cudaFree(maps));
}

// two projectors of one layout, vector by vector: the vectors pointing opposite ways (returned)
// and the largest elementwise difference (*worst)
static int proj_compare(const float* a, const float* b, const TensorLayout* lay, double* worst) {
    int right = lay->side == SIDE_RIGHT;
    int64_t len = right ? lay->n : lay->m, r = lay->r;
    int flips = 0;
    *worst = 0.0;
    for (int64_t j = 0; j < r; j++) {
        double dot = 0.0;
        for (int64_t i = 0; i < len; i++) {
            size_t idx = right ? (size_t)(j * len + i) : (size_t)(i * r + j);
            dot += (double)a[idx] * b[idx];
            *worst = fmax(*worst, fabs((double)a[idx] - b[idx]));
        }
        if (dot < 0) flips++;
    }
    return flips;
}

// one projector refresh on the GPU (gesvdj, or gesvd when force_gesvd) from the host gradient G
// (m x n, full = m n elements, uploaded in bf16); the projector back on the host in fp32 (free it)
static float* gpu_refresh_host(const TensorLayout* lay, const float* G, size_t full, int force_gesvd, cublasHandle_t blas) {
    GaloreGpu gg;
    galore_gpu_init(&gg, lay, 1, blas, 0, 0);
    gg.force_gesvd = force_gesvd;
    floatX* dG = (floatX*)cudaMallocCheck(sizeof(floatX) * full, "test G");
    floatX* dP = (floatX*)cudaMallocCheck(sizeof(floatX) * lay->proj_numel, "test P");
    upload_f32(dG, G, full, 0);
    galore_gpu_refresh(&gg, lay, dG, 1.0f, dP, 0);
    float* gproj = (float*)mallocCheck(sizeof(float) * lay->proj_numel);
    download_f32(gproj, dP, (size_t)lay->proj_numel, 0);
    cudaCheck(cudaFree(dG)); cudaCheck(cudaFree(dP));
    galore_gpu_free(&gg);
    return gproj;
}

// the one-tensor setup of the GPU-vs-CPU projector tests: a rows x cols GaLore matrix under
// galore_adamw rank r (gap 10, scale 0.25) with the given proj_type, SVD and projector, its layout
static void one_galore_tensor(ParamInfo* pi, OptimConfig* oc, TensorLayout* lay, int rows, int cols, int r, int proj_type, int svd, int projector) {
    memset(pi, 0, sizeof *pi);
    pi->ndim = 2; pi->rows = rows; pi->cols = cols; pi->numel = (size_t)rows * cols; pi->galore = 1;
    memset(oc, 0, sizeof *oc);
    oc->kind = OPTIM_GALORE_ADAMW; oc->rank = r; oc->update_proj_gap = 10; oc->scale = 0.25f; oc->proj_type = proj_type;
    oc->svd = svd; oc->projector = projector;
    tensor_layout(lay, pi, oc);
}

// --- golore (issue 15) ---
// --proj random on the GPU (galore_gpu_proj_gaussian_orth) against the CPU's galore_proj_gaussian_orth
// with the same seed: the same Gaussian bits (test_galore_refresh_randomized checks galore_gaussian
// itself), QR by cuSOLVER vs LAPACK (both Householder, another blocking: fp32 results agree to ~len u
// = 1e-5), the same sign convention, so the bf16 projector equals the CPU's to its storage rounding,
// 2^-9 of a unit vector's entries: bound 4e-3 as the SVD refresh's; a wrong layout, side or seed is
// off by O(1). Twice on the device: bit for bit (every rank draws the same projector).
static void test_golore_gpu(void) {
    int shapes[3][3] = {{96, 64, 12}, {48, 160, 12}, {64, 64, 64}};
    cublasHandle_t blas;
    cublasCheck(cublasCreate(&blas));
    for (int sh = 0; sh < 3; sh++) {
        ParamInfo pi;
        OptimConfig oc;
        TensorLayout lay;
        one_galore_tensor(&pi, &oc, &lay, shapes[sh][0], shapes[sh][1], shapes[sh][2], PROJ_STD, SVD_AUTO, PROJECTOR_RANDOM);
        oc.seed = 1234;
        float* cproj = (float*)mallocCheck(sizeof(float) * lay.proj_numel);
        cpu::galore_proj_gaussian_orth(cproj, lay.side, (int)lay.m, (int)lay.n, (int)lay.r, galore_proj_seed(oc.seed, 0, galore_svd_round(0, 1)));
        float* gp[2];
        for (int rep = 0; rep < 2; rep++) {
            GaloreGpu gg;
            galore_gpu_init(&gg, &lay, 1, blas, 0, 0);
            gg.projector = PROJECTOR_RANDOM; gg.run_seed = oc.seed;
            floatX* dG = (floatX*)cudaMallocCheck(sizeof(floatX) * (size_t)pi.numel, "test G"); // not read by the random refresh
            cudaCheck(cudaMemset(dG, 0, sizeof(floatX) * (size_t)pi.numel));
            floatX* dP = (floatX*)cudaMallocCheck(sizeof(floatX) * lay.proj_numel, "test P");
            galore_gpu_refresh(&gg, &lay, dG, 1.0f, dP, 0);
            gp[rep] = (float*)mallocCheck(sizeof(float) * lay.proj_numel);
            download_f32(gp[rep], dP, (size_t)lay.proj_numel, 0);
            check(gg.refreshes == 1, "GoLore GPU refresh counted (%lld)", (long long)gg.refreshes);
            cudaCheck(cudaFree(dG)); cudaCheck(cudaFree(dP));
            galore_gpu_free(&gg);
        }
        double worst;
        int flips = proj_compare(gp[0], cproj, &lay, &worst);
        int same = memcmp(gp[0], gp[1], sizeof(float) * lay.proj_numel) == 0;
        check(flips == 0 && worst < 4e-3 && same, "--proj random on the GPU %lldx%lld %s r %lld: vs the CPU's galore_proj_gaussian_orth %d sign flips, "
              "max abs difference %.2e (bound 4e-3: bf16 projector); twice on the device bit for bit: %d", (long long)lay.m, (long long)lay.n,
              lay.side == SIDE_RIGHT ? "right" : "left", (long long)lay.r, flips, worst, same);
        free(cproj); free(gp[0]); free(gp[1]);
    }
    cublasCheck(cublasDestroy(blas));
}
// --- end golore ---

// the projector refresh (gesvdj, and the gesvd fallback) against the CPU's galore_refresh (LAPACK
// sgesdd + galore_sign_fix) on the same bf16 matrix: both sides, square, ties of the side rule
static void test_galore_refresh(void) {
    int shapes[4][2] = {{96, 64}, {48, 160}, {64, 64}, {200, 40}};
    cublasHandle_t blas;
    cublasCheck(cublasCreate(&blas));
    for (int force = 0; force <= 1; force++) {
        for (int sh = 0; sh < 4; sh++) {
            ParamInfo pi;
            OptimConfig oc;
            TensorLayout lay;
            one_galore_tensor(&pi, &oc, &lay, shapes[sh][0], shapes[sh][1], 12, PROJ_STD, SVD_AUTO, PROJECTOR_SVD);
            size_t full = (size_t)pi.numel;
            // a matrix with a clear spectrum (the top 12 singular values well apart) plus noise
            Rng rng; rng_init(&rng, 31 + sh);
            float* G = (float*)callocCheck(full, sizeof(float));
            for (int j = 0; j < 16; j++) {
                double sv = 10.0 / (1.0 + j);
                float* u = (float*)mallocCheck(sizeof(float) * pi.rows); float* v = (float*)mallocCheck(sizeof(float) * pi.cols);
                for (int a = 0; a < pi.rows; a++) u[a] = (float)rng_normal(&rng);
                for (int b = 0; b < pi.cols; b++) v[b] = (float)rng_normal(&rng);
                for (int a = 0; a < pi.rows; a++) for (int b = 0; b < pi.cols; b++) G[(size_t)a * pi.cols + b] += (float)(sv * u[a] * v[b] / sqrt((double)pi.rows * pi.cols));
                free(u); free(v);
            }
            for (size_t k = 0; k < full; k++) G[k] = f32_from_bf16(bf16_from_f32(G[k] + (float)(1e-3 * rng_normal(&rng))));
            // CPU: a one-tensor Optimizer around galore_refresh
            cpu::Optimizer co;
            memset(&co, 0, sizeof co);
            co.cfg = oc; co.n = 1; co.lay = &lay;
            float* cproj = (float*)mallocCheck(sizeof(float) * lay.proj_numel);
            int chas = 0;
            co.proj = &cproj; co.has_proj = &chas;
            cpu::galore_refresh(&co, 0, G);
            float* gproj = gpu_refresh_host(&lay, G, full, force, blas);
            // elementwise (the sign convention makes the vectors comparable) and per vector
            int right = lay.side == SIDE_RIGHT;
            int64_t r = lay.r;
            double worst;
            int flips = proj_compare(gproj, cproj, &lay, &worst);
            // bf16 storage of unit-vector entries (|x| < 1): 2^-9 = 2e-3; the SVDs agree to ~1e-5
            check(flips == 0 && worst < 4e-3, "GaLore refresh %s %dx%d (%s, r %lld): projector vs the CPU (sgesdd + sign fix): %d sign flips, "
                  "max abs difference %.2e (bound 4e-3: bf16 projector)", force ? "gesvd" : "gesvdj", shapes[sh][0], shapes[sh][1],
                  right ? "right" : "left", (long long)r, flips, worst);
            free(G); free(cproj); free(gproj);
        }
    }
    cublasCheck(cublasDestroy(blas));
}

// G (m x n row-major, rounded to bf16 values) = U diag(sigma) V^T, U and V orthonormal (QR of
// Gaussian matrices), sigma_i = 0.7^i (geometric: every vector well separated) or 1/(1+i)
static void svd_test_matrix(float* G, int m, int n, int geometric, uint64_t seed) {
    int k = m < n ? m : n, big = m > n ? m : n;
    Rng rng;
    rng_init(&rng, seed);
    float* U = (float*)mallocCheck(sizeof(float) * (size_t)m * k); // (m, k) column-major
    float* V = (float*)mallocCheck(sizeof(float) * (size_t)n * k); // (n, k) column-major, then scaled by sigma
    for (size_t i = 0; i < (size_t)m * k; i++) U[i] = (float)rng_normal(&rng);
    for (size_t i = 0; i < (size_t)n * k; i++) V[i] = (float)rng_normal(&rng);
    int lw = cpu::galore_qr_lwork(big, k);
    float* work = (float*)mallocCheck(sizeof(float) * (size_t)lw);
    float* tau = (float*)mallocCheck(sizeof(float) * (size_t)k);
    cpu::galore_orthonormalize(U, m, k, tau, work, lw);
    cpu::galore_orthonormalize(V, n, k, tau, work, lw);
    for (int i = 0; i < k; i++) {
        float sg = (float)(geometric ? pow(0.7, i) : 1.0 / (1.0 + i));
        for (int b = 0; b < n; b++) V[b + (size_t)i * n] *= sg;
    }
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0f, V, n, U, m, 0.0f, G, n); // G^T (n, m) column-major
    for (size_t i = 0; i < (size_t)m * n; i++) G[i] = f32_from_bf16(bf16_from_f32(G[i]));
    free(U); free(V); free(work); free(tau);
}

// ||G P^T||_F^2 (right) or ||P^T G||_F^2 (left): the energy of G a projector keeps
static double svd_test_captured(const float* G, const float* P, int m, int n, int r, int side) {
    size_t nr = side == SIDE_RIGHT ? (size_t)m * r : (size_t)r * n;
    float* R = (float*)mallocCheck(sizeof(float) * nr);
    if (side == SIDE_RIGHT) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r, n, 1.0f, G, n, P, n, 0.0f, R, r);
    else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, n, m, 1.0f, P, r, G, n, 0.0f, R, n);
    double e = cpu::sumsq(R, nr);
    free(R);
    return e;
}

// the randomized refresh (--svd randomized) on the GPU against the CPU's galore_range_finder on the
// same bf16 matrix: Omega first (the device's galore_gaussian bit for bit the host's), then both
// sides, gesvdj and the gesvd fallback for the small SVD; and the energy it captures against the
// CPU's exact SVD
static void test_galore_refresh_randomized(void) {
    {
        size_t n = (size_t)1 << 20;
        uint64_t seed = galore_svd_seed(5, 3);
        float* d = (float*)cudaMallocCheck(sizeof(float) * n, "test Omega");
        galore_gaussian_fill(d, n, seed, 0);
        float* h = (float*)mallocCheck(sizeof(float) * n);
        download_bytes(h, d, sizeof(float) * n);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) {
            float hv = galore_gaussian(seed, (uint64_t)i);
            diff += memcmp(&h[i], &hv, sizeof(float)) != 0;
        }
        check(diff == 0, "galore_gaussian on the device == on the host, bit for bit, over 2^20 draws (%zu differ): the GPU's Omega is the CPU's", diff);
        free(h);
        cudaCheck(cudaFree(d));
    }
    int shapes[2][2] = {{300, 200}, {160, 400}};
    int sides[2] = {PROJ_LEFT, PROJ_RIGHT};
    cublasHandle_t blas;
    cublasCheck(cublasCreate(&blas));
    for (int force = 0; force <= 1; force++) {
        for (int sh = 0; sh < 2; sh++) {
            for (int sd = 0; sd < 2; sd++) {
                for (int geo = 0; geo <= 1; geo++) {
                    int m = shapes[sh][0], n = shapes[sh][1], r = 12;
                    ParamInfo pi;
                    OptimConfig oc;
                    TensorLayout lay;
                    one_galore_tensor(&pi, &oc, &lay, m, n, r, sides[sd], SVD_RANDOMIZED, PROJECTOR_SVD);
                    size_t full = (size_t)m * n;
                    float* G = (float*)mallocCheck(sizeof(float) * full);
                    svd_test_matrix(G, m, n, geo, 200 + 10 * sh + sd);
                    // CPU: the range finder with the seed the GPU's first refresh of tensor 0 uses, and the exact SVD
                    float* cproj = (float*)mallocCheck(sizeof(float) * lay.proj_numel);
                    float* eproj = (float*)mallocCheck(sizeof(float) * lay.proj_numel);
                    cpu::galore_range_finder(G, m, n, r, lay.side, galore_svd_seed(0, galore_svd_round(0, 1)), cproj);
                    {
                        TensorLayout le = lay;
                        le.svd = SVD_EXACT;
                        cpu::Optimizer co;
                        memset(&co, 0, sizeof co);
                        int chas = 0;
                        co.cfg = oc; co.n = 1; co.lay = &le; co.proj = &eproj; co.has_proj = &chas;
                        cpu::galore_refresh(&co, 0, G);
                    }
                    float* gproj = gpu_refresh_host(&lay, G, full, force, blas);
                    int right = lay.side == SIDE_RIGHT;
                    double cap = svd_test_captured(G, gproj, m, n, r, lay.side) / svd_test_captured(G, eproj, m, n, r, lay.side);
                    const char* name = force ? "gesvd" : "gesvdj";
                    if (geo) {
                        // sigma 0.7^i: the vectors are well separated, so the GPU's equal the CPU's range
                        // finder's elementwise: bf16 storage of unit-vector entries 2^-9 = 2e-3; the fp32
                        // arithmetic of the two agrees to ~1e-5: bound 4e-3 as the exact refresh's
                        double worst;
                        int flips = proj_compare(gproj, cproj, &lay, &worst);
                        check(flips == 0 && worst < 4e-3 && cap > 0.999,
                              "GaLore randomized refresh (%s for the sketch) %dx%d %s r %d, sigma 0.7^i: vs the CPU's galore_range_finder: "
                              "%d sign flips, max abs difference %.2e (bound 4e-3: bf16 projector); captures %.6f of the exact top-r energy "
                              "(bound 0.999)", name, m, n, right ? "right" : "left", r, flips, worst, cap);
                    } else {
                        // sigma 1/(1+i): the vectors near the cut mix (the CPU test explains), so the check is
                        // the energy the bf16 projector keeps against the CPU's exact top-r: measured on
                        // the CPU 0.99992..0.99996 in fp32, bf16 rounding of P moves it by ~1e-4: bound 0.999
                        check(cap > 0.999, "GaLore randomized refresh (%s for the sketch) %dx%d %s r %d, sigma 1/(1+i): captures %.6f of "
                              "the exact top-r energy (bound 0.999)", name, m, n, right ? "right" : "left", r, cap);
                    }
                    free(G); free(cproj); free(eproj); free(gproj);
                }
            }
        }
    }
    cublasCheck(cublasDestroy(blas));
}

// one optimizer step on llama_tiny from the SAME gradient (the GPU's, given to the CPU in fp32):
// projectors, low-rank moments, 8-bit states and the weight change of every tensor vs the CPU's
// Optimizer; then steps 2..5 with each engine's own gradients (refreshes at 1, 3, 5): losses and
// the weight change. kind: galore_adamw, adam8bit, galore_adamw8bit.
// steps 2..S on both engines, each on its own gradients (the CPU's model_update: its INT8
// requantization when cm->w8 has any); the worst relative difference of their losses
static double both_engines_steps(cpu::Llama* cm, cpu::Optimizer* co, GpuLlama* m, GpuTrainer* tr, DataLoader* dl, int* in, int* tg, float lr,
                                 int S) {
    double lmax = 0.0;
    for (int st = 2; st <= S; st++) {
        dataloader_next_batch(dl, in, tg);
        gpu_zero_grad(m);
        gpu_forward(m, in, tg, m->B, m->T, 1.0f);
        float gl = m->mean_loss;
        gpu_backward(m, in, m->B, m->T);
        for (int i = 0; i < cm->table.n; i++) gpu_optim_update(tr, i, GX(m, i), 0, lr, st, 1.0f);
        // the updates (update stream) read the gradients and write the weights that the next
        // step's zero_grad and forward (main stream) touch: nothing else orders the two streams
        cudaCheck(cudaStreamSynchronize(tr->us));
        cpu::llama_zero_grad(cm);
        cpu::llama_forward(cm, in, tg, m->B, m->T);
        lmax = fmax(lmax, fabs(gl - cm->mean_loss) / fabs(cm->mean_loss));
        cpu::llama_backward(cm, in, tg, m->B, m->T, 1.0f);
        for (int i = 0; i < cm->table.n; i++) cpu::model_update(co, &cm->w8, i, cpu::P(cm, i), cpu::G(cm, i), 0, lr, st);
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
    return lmax;
}

static void test_optimizer_vs_cpu(int kind, int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int B = 2, T = 32, BT = B * T, S = 5;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[kind]; oc.weight_decay = 0.01f;
    oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    apollo_config_defaults(&oc); // APOLLO kinds: the package's settings (mini: rank 1)
    float lr = 1e-3f;
    cpu::Llama cm;
    cpu::llama_build(&cm, &c);
    cpu::llama_set_grad_mode(&cm, 0);
    llama_init_params(&cm.table, cm.params, 77);
    size_t P = cm.table.total;
    // The 1-D weights (the norms) start at 1.0, where bf16's spacing (2^-8 below 1, 2^-7 above) is
    // 4-8x the first Adam step (about lr = 1e-3): 1 - 1e-3 rounds back to 1.0, so the GPU's bf16
    // weight cannot move while the CPU's fp32 one does, and no check of the update can pass. Here
    // they start in [0.0625, 0.125), where the spacing is 2^-11 = 4.9e-4 and a step is ~2 of them.
    for (int i = 0; i < cm.table.n; i++) {
        const ParamInfo* pi = &cm.table.info[i];
        if (pi->ndim == 1)
            for (int64_t k = 0; k < pi->numel; k++) cm.params[pi->offset + k] = 0.0625f + 0.0625f * (float)(k % 61) / 61.0f;
    }
    for (size_t k = 0; k < P; k++) cm.params[k] = f32_from_bf16(bf16_from_f32(cm.params[k]));
    float* init = (float*)mallocCheck(sizeof(float) * P);
    memcpy(init, cm.params, sizeof(float) * P);
    cpu::llama_alloc_activations(&cm, B, T, 0);
    cpu::Optimizer co;
    cpu::optimizer_init(&co, &cm.table, &oc);
    GpuLlama m;
    gpu_build(&m, &c, B, T, 0, attn_fallback, 0);
    gpu_upload_params(&m, init);
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, &oc, 0, 1, 0.0f, 0, 42, 0);
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", B, T, 0, 0, 0, 1, c.V);
    int* in = (int*)mallocCheck(sizeof(int) * BT);
    int* tg = (int*)mallocCheck(sizeof(int) * BT);
    const char* kn = OPTIM_NAMES[kind];
    // step 1 from the GPU's gradient
    dataloader_next_batch(&dl, in, tg);
    gpu_zero_grad(&m);
    gpu_forward(&m, in, tg, B, T, 1.0f);
    gpu_backward(&m, in, B, T);
    download_f32(cm.grad_mem, m.grads, P, 0);
    for (int i = 0; i < cm.table.n; i++) {
        cpu::optimizer_update(&co, i, cpu::P(&cm, i), cpu::G(&cm, i), 0, lr, 1);
        gpu_optim_update(&tr, i, GX(&m, i), 0, lr, 1, 1.0f);
    }
    cudaCheck(cudaStreamSynchronize(m.stream));
    cudaCheck(cudaStreamSynchronize(tr.us)); // the updates run on the trainer's update stream
    tr.t = 1;
    GpuOptim* o = &tr.opt;
    double wp = 0.0, wm = 0.0, wq = 0.0, worst_cos = 1.0, wlim = 0.0;
    int nproj = 0, nlow = 0, n8 = 0, nlim = 0;
    for (int i = 0; i < cm.table.n; i++) {
        const TensorLayout* l = &o->lay[i];
        if (l->limiter) { // Fira, APOLLO: the limiter's state (the device's, from its kernels) after the first update = ||S||
            float gl;
            download_bytes(&gl, o->lim[i], sizeof(float));
            wlim = fmax(wlim, fabs((double)gl - co.lim[i][0]) / fabs((double)co.lim[i][0]));
            nlim++;
        }
        if (l->proj_numel) {
            float* gpj = (float*)mallocCheck(sizeof(float) * l->proj_numel);
            download_f32(gpj, o->proj[i], (size_t)l->proj_numel, 0);
            // the same gradient in: the projectors agree up to bf16 storage, unless two singular
            // values nearly tie (then the vectors rotate: the span check below still holds)
            double e = 0.0;
            for (int64_t k = 0; k < l->proj_numel; k++) e = fmax(e, fabs((double)gpj[k] - co.proj[i][k]));
            wp = fmax(wp, e);
            nproj++;
            free(gpj);
        }
        if (l->state == STATE_FP32 && l->side != SIDE_NONE) {
            float* gm = (float*)mallocCheck(sizeof(float) * l->snumel);
            download_f32(gm, o->m[i], (size_t)l->snumel, o->mom_f32);
            double e = norm_max_err(gm, co.m[i], (size_t)l->snumel), cs = cosine(gm, co.m[i], (size_t)l->snumel);
            wm = fmax(wm, e); worst_cos = fmin(worst_cos, cs);
            nlow++;
            free(gm);
        }
        if (l->state == STATE_8BIT) {
            // dequantized first moments: R differs by bf16 rounding (G, P in bf16), so bytes may
            // move to a neighbouring map entry; compare the values
            uint8_t* q = (uint8_t*)mallocCheck((size_t)l->snumel);
            float* am = (float*)mallocCheck(sizeof(float) * l->nblocks);
            download_bytes(q, o->qm[i], (size_t)l->snumel);
            download_bytes(am, o->absmax_m[i], sizeof(float) * l->nblocks);
            float* a = (float*)mallocCheck(sizeof(float) * l->snumel);
            float* b = (float*)mallocCheck(sizeof(float) * l->snumel);
            for (int64_t k = 0; k < l->snumel; k++) {
                a[k] = co.map_m[q[k]] * am[k / ADAM8_BLOCK];
                b[k] = co.map_m[co.qm[i][k]] * co.absmax_m[i][k / ADAM8_BLOCK];
            }
            double e = norm_max_err(a, b, (size_t)l->snumel), cs = cosine(a, b, (size_t)l->snumel);
            wq = fmax(wq, e); worst_cos = fmin(worst_cos, cs);
            n8++;
            free(q); free(am); free(a); free(b);
        }
    }
    if (nproj) check(wp < 2e-2, "%s step 1, same gradient: %d projectors vs the CPU, max abs difference %.2e (bound 2e-2: bf16 projector and bf16 R)", kn, nproj, wp);
    if (nlow) check(wm < 5e-2, "%s step 1: %d low-rank/fp32 moment tensors vs the CPU, worst normalized max error %.2e (bound 5e-2: bf16 moments, bf16 G P)", kn, nlow, wm);
    if (n8) check(wq < 5e-2, "%s step 1: %d 8-bit states, dequantized m vs the CPU, worst normalized max error %.2e (bound 5e-2: about one map step)", kn, n8, wq);
    check(worst_cos > 0.999, "%s step 1: worst cosine of the moments vs the CPU %.6f (bound 0.999)", kn, worst_cos);
    if (optim_is_apollo(kind) || optim_is_fira(kind))
        check(nlim > 0 && wlim < 5e-2, "%s step 1: %d norm-growth limiter states (device) vs the CPU, worst relative error %.2e (bound 5e-2: "
              "||S|| from bf16 G, projector and moments, as the moments' bound)", kn, nlim, wlim);
    float* gw = (float*)mallocCheck(sizeof(float) * P);
    float* d1 = (float*)mallocCheck(sizeof(float) * P);
    float* d2 = (float*)mallocCheck(sizeof(float) * P);
    gpu_download_params(&m, gw);
    double wcs = 1.0;
    const char* wname = "";
    for (int i = 0; i < cm.table.n; i++) {
        const ParamInfo* pi = &cm.table.info[i];
        // the CPU's fp32 weight rounded as the GPU stores it: bf16_rn(w + d_gpu) vs bf16_rn(w + d_cpu)
        // differ only where w + d lies within |d_gpu - d_cpu| of a rounding midpoint
        for (int64_t k = 0; k < pi->numel; k++) {
            d1[pi->offset + k] = gw[pi->offset + k] - init[pi->offset + k];
            d2[pi->offset + k] = f32_from_bf16(bf16_from_f32(cm.params[pi->offset + k])) - init[pi->offset + k];
        }
        double cs = cosine(d1 + pi->offset, d2 + pi->offset, (size_t)pi->numel);
        if (cs < wcs) { wcs = cs; wname = pi->name; }
    }
    // bf16 weights of ~0.02 round by ~4e-5 against an update of ~lr = 1e-3: a few % per element
    check(wcs > 0.98, "%s step 1, same gradient: weight change of every tensor vs the CPU, worst cosine %.5f in %s (bound 0.98: bf16 weights)", kn, wcs, wname);
    // steps 2..S, each engine on its own gradients
    double lmax = both_engines_steps(&cm, &co, &m, &tr, &dl, in, tg, lr, S);
    gpu_download_params(&m, gw);
    for (size_t k = 0; k < P; k++) { d1[k] = gw[k] - init[k]; d2[k] = cm.params[k] - init[k]; }
    double cs = cosine(d1, d2, P);
    check(lmax < 1e-2 && cs > 0.95, "%s: %d steps with refreshes at 1, 3, 5, each engine on its own gradients: losses max relative error %.2e "
          "(bound 1e-2), weight change cosine %.4f (bound 0.95)", kn, S, lmax, cs);
    free(gw); free(d1); free(d2); free(in); free(tg); free(init);
    dataloader_free(&dl);
    cpu::optimizer_free(&co);
    gpu_trainer_free(&tr);
    gpu_free(&m);
    cpu::llama_free(&cm);
}

// --weights int8 (#25) against the CPU engine's INT8 functions (weight8.h), llama_tiny:
//   - the upload quantizes as the CPU's weight8_quantize_params: the same codes, scales and zeros,
//     and gpu_download_params gives the CPU's fp32 weights, bit for bit
//   - step 1 from the GPU's gradient on both engines (the CPU's model_update: optimizer_update, then
//     weight8_requantize, here in two calls to see the fp32 result between them):
//     the device's codes equal weight8_quantize of the device's own fp32 result (the update scratch)
//     with weight8_seed(run seed, 1, i), bit for bit (the requantization, its seed, its step index);
//     the fp32 update of every tensor against the CPU's: cosine > 0.98 (test_optimizer_vs_cpu's bound);
//     the codes against the CPU's: with the same draw u, the engines' codes can differ only where u
//     falls between their two fractions, x = w / scale + zero apart by |x_gpu - x_cpu| (each engine's
//     own group parameters), so the expected number of differing codes is E = sum min(1, |x_gpu - x_cpu|):
//     at most E + 5 sqrt(E) + 5 differ (a Poisson tail); other draws (a wrong seed or step) make
//     about a third of them differ
//   - 3 more steps, each engine on its own gradients: losses within 1e-2 relative, as the float path
static void test_w8_vs_cpu(int kind, int G, int embed, int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int B = 2, T = 32, BT = B * T, S = 4;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[kind]; oc.weight_decay = 0.01f;
    oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD; oc.seed = 0x5eed5eedULL;
    oc.w8_group = G; oc.w8_embed = embed;
    apollo_config_defaults(&oc);
    float lr = 1e-3f;
    char kn[96];
    snprintf(kn, sizeof kn, "%s --weights int8 (group %d%s)", OPTIM_NAMES[kind], G, embed ? ", embeddings too" : "");
    cpu::Llama cm;
    cpu::llama_build(&cm, &c);
    cpu::llama_set_grad_mode(&cm, 0);
    llama_init_params(&cm.table, cm.params, 78);
    size_t P = cm.table.total;
    // float tensors as the GPU stores them (bf16), so that only the INT8 ones differ from a bf16 run
    for (size_t k = 0; k < P; k++) cm.params[k] = f32_from_bf16(bf16_from_f32(cm.params[k]));
    float* init = (float*)mallocCheck(sizeof(float) * P);
    memcpy(init, cm.params, sizeof(float) * P);
    weight8_init(&cm.w8, &cm.table, G, embed);
    weight8_quantize_params(&cm.w8, &cm.table, cm.params); // the CPU's initial quantization: params = dequantized codes
    cpu::llama_alloc_activations(&cm, B, T, 0);
    cpu::Optimizer co;
    cpu::optimizer_init(&co, &cm.table, &oc);
    GpuLlama m;
    gpu_build(&m, &c, B, T, 0, attn_fallback, 0, 0, 0, G, embed);
    gpu_upload_params(&m, init);
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, &oc, 0, 1, 0.0f, 0, oc.seed, 0);
    // the upload's codes and the download's weights
    Weight8 gw8;
    weight8_init(&gw8, &m.table, G, embed);
    gpu_w8_download(&m, &gw8);
    float* gw = (float*)mallocCheck(sizeof(float) * P);
    gpu_download_params(&m, gw);
    int same = memcmp(gw8.cmem, cm.w8.cmem, (size_t)gw8.total) == 0 && memcmp(gw8.smem, cm.w8.smem, sizeof(float) * gw8.groups) == 0 &&
               memcmp(gw8.zmem, cm.w8.zmem, (size_t)gw8.groups) == 0 && memcmp(gw, cm.params, sizeof(float) * P) == 0;
    check(same && gw8.tensors > 0, "%s: %d tensors uploaded as the CPU quantizes them (codes, scales, zeros) and downloaded as its fp32 weights, "
          "bit for bit", kn, gw8.tensors);
    float* w0 = (float*)mallocCheck(sizeof(float) * P);
    memcpy(w0, cm.params, sizeof(float) * P); // the weights both engines start from
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", B, T, 0, 0, 0, 1, c.V);
    int* in = (int*)mallocCheck(sizeof(int) * BT);
    int* tg = (int*)mallocCheck(sizeof(int) * BT);
    dataloader_next_batch(&dl, in, tg);
    gpu_zero_grad(&m);
    gpu_forward(&m, in, tg, B, T, 1.0f);
    gpu_backward(&m, in, B, T);
    download_f32(cm.grad_mem, m.grads, P, 0);
    float* scratch = (float*)mallocCheck(sizeof(float) * P);
    uint8_t* hc = (uint8_t*)mallocCheck(P);
    float* hs = (float*)mallocCheck(sizeof(float) * P);
    uint8_t* hz = (uint8_t*)mallocCheck(P);
    float* cw = (float*)mallocCheck(sizeof(float) * P);
    int64_t code_bad = 0, checked = 0, ndiff = 0, nall = 0;
    double expect = 0.0, ucs = 1.0;
    for (int i = 0; i < cm.table.n; i++) {
        cpu::optimizer_update(&co, i, cpu::P(&cm, i), cpu::G(&cm, i), 0, lr, 1);
        int64_t n = m.table.info[i].numel, ng = weight8_groups(n, G);
        memcpy(cw, cpu::P(&cm, i), sizeof(float) * n);
        weight8_requantize(&cm.w8, i, cpu::P(&cm, i), oc.seed, 1);
        gpu_optim_update(&tr, i, GX(&m, i), 0, lr, 1, 1.0f);
        if (!gpu_w8(&m, i)) continue;
        cudaCheck(cudaStreamSynchronize(tr.us));
        download_f32(scratch, tr.w8_upd, (size_t)n, 1);
        weight8_quantize(scratch, n, G, 1, weight8_seed(oc.seed, 1, i), hc, hs, hz);
        download_bytes(gw8.codes[i], m.w8_codes[i], (size_t)n);
        download_bytes(gw8.scales[i], m.w8_scales[i], sizeof(float) * ng);
        download_bytes(gw8.zeros[i], m.w8_zeros[i], (size_t)ng);
        code_bad += memcmp(hc, gw8.codes[i], (size_t)n) != 0 || memcmp(hs, gw8.scales[i], sizeof(float) * ng) != 0 ||
                    memcmp(hz, gw8.zeros[i], (size_t)ng) != 0;
        checked++;
        const float* w0i = w0 + m.table.info[i].offset;
        for (int64_t k = 0; k < n; k++) {
            int64_t g = k / G;
            double xg = (double)scratch[k] / gw8.scales[i][g] + gw8.zeros[i][g], xc = (double)cw[k] / cm.w8.scales[i][g] + cm.w8.zeros[i][g];
            expect += fmin(1.0, fabs(xg - xc));
            ndiff += gw8.codes[i][k] != cm.w8.codes[i][k];
            scratch[k] -= w0i[k]; cw[k] -= w0i[k]; // the fp32 updates
        }
        nall += n;
        ucs = fmin(ucs, cosine(scratch, cw, (size_t)n));
    }
    check(checked == gw8.tensors && code_bad == 0, "%s step 1: %lld INT8 tensors requantized on the device as weight8_quantize of their fp32 "
          "update with weight8_seed(seed, 1, i), bit for bit (%lld differ)", kn, (long long)checked, (long long)code_bad);
    check(ucs > 0.98, "%s step 1, same gradient: the fp32 update of every INT8 tensor vs the CPU's, worst cosine %.5f (bound 0.98)", kn, ucs);
    check(ndiff <= expect + 5.0 * sqrt(expect) + 5.0, "%s step 1: %lld of %lld codes differ from the CPU's, %.1f expected from the engines' fp32 "
          "differences (bound E + 5 sqrt(E) + 5)", kn, (long long)ndiff, (long long)nall, expect);
    cudaCheck(cudaStreamSynchronize(tr.us)); // the last float tensors' updates read the gradients the next step zeroes
    double lmax = both_engines_steps(&cm, &co, &m, &tr, &dl, in, tg, lr, S);
    check(lmax < 1e-2, "%s: %d more steps, each engine on its own gradients: losses max relative error %.2e (bound 1e-2)", kn, S - 1, lmax);
    free(gw); free(w0); free(init); free(in); free(tg); free(scratch); free(cw); free(hc); free(hs); free(hz);
    weight8_free(&gw8);
    dataloader_free(&dl);
    cpu::optimizer_free(&co);
    gpu_trainer_free(&tr);
    gpu_free(&m);
    cpu::llama_free(&cm);
}

// the fused GaLore update (galore.cuh: the Adam step writes a bf16 N, one GEMM W = beta W + alpha N P
// in place) against the unfused reference path (fp32 N, fp32 U = scale N P, galore_apply), which
// gl.unfused forces. Two llama_tiny trainers from the same weights take the same synthetic gradients
// (a fixed direction plus noise, so Adam's steps add up), galore_adamw and galore_adamw8bit, rank 20
// (not a multiple of 8: gemm_bf16_scaled takes cublasGemmEx if cuBLASLt has no algorithm) with decay
// and rank 8 without (the 8-bit kind's q/k/v/o then take the 32-bit path: 2048 < 4096 elements);
// q/k/v/o and gate/up project on the right, down on the left; 4 steps, refreshes at 1 and 3. Before
// each step the fused model gets the unfused one's weights, so every step is compared from the same
// start. Checks, per GaLore tensor and step:
//   - projectors and optimizer state bit-identical (the paths share the refresh, the projection and
//     the Adam arithmetic; only N's storage differs), every other tensor's weights bit-identical
//   - N (bf16) = the unfused fp32 N rounded to nearest (the same kernel arithmetic; nvcc may contract
//     the two template instances differently, so rare one-ulp neighbours are allowed, 0.1%)
//   - W against beta W0 + alpha (N P) in double from the downloaded N, P, W0: |W - ref| <= 2^-8 |ref|
//     (W rounded to nearest bf16: half an ulp, at most 2^-8 relative) + 2 r 2^-24 |alpha| (|N| |P|)
//     + 2^-23 |W0| (fp32 accumulation and epilogue; these fp32 terms twice, as the bf16 rounding is of
//     the fp32 result, not of ref), per element: any layout, alpha or beta error
//     is of the size of the update (many ulps: lr 3e-2, |W| ~ 0.02, decay 3% per step when on)
//   - W fused vs unfused: each rounds to bf16 once (2^-8 |W| each) and N's bf16 rounding moves the
//     update by at most 2^-8 |alpha| (|N| |P|); plus the fp32 terms above
static void test_galore_fused(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int B = 2, T = 32;
    int kinds[2] = {OPTIM_GALORE_ADAMW, OPTIM_GALORE_ADAMW8BIT};
    int ranks[2] = {20, 8};
    float wds[2] = {1.0f, 0.0f};
    for (int kk = 0; kk < 2; kk++) {
        for (int ri = 0; ri < 2; ri++) {
            int kind = kinds[kk];
            OptimConfig oc;
            memset(&oc, 0, sizeof oc);
            oc.kind = kind; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[kind]; oc.weight_decay = wds[ri];
            oc.rank = ranks[ri]; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
            float lr = 3e-2f;
            GpuLlama mf, mu;
            gpu_build(&mf, &c, B, T, 0, attn_fallback, 0);
            gpu_build(&mu, &c, B, T, 0, attn_fallback, 0);
            size_t P = mf.table.total;
            float* init = (float*)mallocCheck(sizeof(float) * P);
            llama_init_params(&mf.table, init, 123);
            gpu_upload_params(&mu, init);
            GpuTrainer tf, tu;
            gpu_trainer_init(&tf, &mf, &oc, 0, 1, 0.0f, 0, 42, 0);
            gpu_trainer_init(&tu, &mu, &oc, 0, 1, 0.0f, 0, 42, 0);
            tu.opt.gl.unfused = 1;
            GpuOptimBytes ob = gpu_optim_bytes(&mf.table, &oc, 0);
            float* g = (float*)mallocCheck(sizeof(float) * P);
            float* dir = (float*)mallocCheck(sizeof(float) * P);
            float* w0 = (float*)mallocCheck(sizeof(float) * P);
            float* wf = (float*)mallocCheck(sizeof(float) * P);
            float* wu = (float*)mallocCheck(sizeof(float) * P);
            Rng rng; rng_init(&rng, 7 + kk * 2 + ri);
            for (size_t k = 0; k < P; k++) dir[k] = (float)(1e-3 * rng_normal(&rng));
            size_t state_diff = 0, proj_diff = 0, other_diff = 0, n_far = 0, n_near = 0, n_total = 0, w_bad = 0, wu_bad = 0, w_same = 0, w_n = 0;
            double worst_ref = 0.0, worst_pair = 0.0, dot = 0.0, ff = 0.0, uu = 0.0;
            int fallbacks0 = tf.mm_upd.fallbacks; // the fused GEMM runs on the update stream's context
            for (int t = 1; t <= 4; t++) {
                for (size_t k = 0; k < P; k++) g[k] = dir[k] + (float)(5e-4 * rng_normal(&rng));
                upload_f32(mf.grads, g, P, 0);
                upload_f32(mu.grads, g, P, 0);
                cudaCheck(cudaMemcpy(mf.params, mu.params, sizeof(floatX) * P, cudaMemcpyDeviceToDevice));
                download_f32(w0, mu.params, P, 0);
                float step_size = (float)(lr * sqrt(1.0 - pow((double)oc.beta2, (double)t)) / (1.0 - pow((double)oc.beta1, (double)t))); // gpu_optim_update's
                float alpha, beta;
                galore_fused_coefs(kind == OPTIM_GALORE_ADAMW8BIT, step_size, oc.scale, lr, oc.weight_decay, &alpha, &beta);
                for (int i = 0; i < mf.table.n; i++) {
                    gpu_optim_update(&tf, i, GX(&mf, i), 0, lr, t, 1.0f);
                    gpu_optim_update(&tu, i, GX(&mu, i), 0, lr, t, 1.0f);
                    const TensorLayout* l = &tf.opt.lay[i];
                    if (l->side == SIDE_NONE) continue;
                    cudaCheck(cudaStreamSynchronize(mf.stream));
                    cudaCheck(cudaStreamSynchronize(tf.us));
                    cudaCheck(cudaStreamSynchronize(mu.stream));
                    cudaCheck(cudaStreamSynchronize(tu.us));
                    size_t sn = (size_t)l->snumel, pn = (size_t)l->proj_numel, off = mf.table.info[i].offset;
                    int64_t M = l->m, Nn = l->n, r = l->r;
                    float* nf = (float*)mallocCheck(sizeof(float) * sn);
                    float* nu = (float*)mallocCheck(sizeof(float) * sn);
                    float* pf = (float*)mallocCheck(sizeof(float) * pn);
                    float* pu = (float*)mallocCheck(sizeof(float) * pn);
                    download_f32(nf, tf.opt.gl.N, sn, 0); // the fused path's bf16 N
                    download_f32(nu, tu.opt.gl.N, sn, 1);
                    download_f32(pf, tf.opt.proj[i], pn, 0);
                    download_f32(pu, tu.opt.proj[i], pn, 0);
                    for (size_t k = 0; k < pn; k++) proj_diff += memcmp(&pf[k], &pu[k], sizeof(float)) != 0;
                    for (size_t k = 0; k < sn; k++) {
                        float want = f32_from_bf16(bf16_from_f32(nu[k]));
                        if (nf[k] == want) continue;
                        float ulp = fabsf(want) * (1.0f / 128.0f);
                        if (fabsf(nf[k] - want) <= ulp) n_near++; else n_far++;
                    }
                    n_total += sn;
                    download_f32(wf + off, mf.params + off, (size_t)(M * Nn), 0);
                    download_f32(wu + off, mu.params + off, (size_t)(M * Nn), 0);
                    for (int64_t a = 0; a < M; a++) {
                        for (int64_t b = 0; b < Nn; b++) {
                            double acc = 0.0, abs_acc = 0.0, abs_u = 0.0;
                            for (int64_t k = 0; k < r; k++) {
                                double x = l->side == SIDE_RIGHT ? (double)nf[a * r + k] * pf[k * Nn + b] : (double)pf[a * r + k] * nf[k * Nn + b];
                                double xu = l->side == SIDE_RIGHT ? (double)nu[a * r + k] * pf[k * Nn + b] : (double)pf[a * r + k] * nu[k * Nn + b];
                                acc += x; abs_acc += fabs(x); abs_u += fabs(xu);
                            }
                            size_t e = off + (size_t)(a * Nn + b);
                            double ref = (double)beta * w0[e] + (double)alpha * acc;
                            double fp32 = 2.0 * r * ldexp(1.0, -24) * fabs((double)alpha) * abs_acc + ldexp(1.0, -23) * fabs((double)w0[e]);
                            double tol = ldexp(1.0, -8) * fabs(ref) + 2.0 * fp32; // the rounding is of the fp32 result, not of ref
                            double err = fabs((double)wf[e] - ref);
                            if (!(err <= tol)) w_bad++;
                            worst_ref = fmax(worst_ref, err / (tol > 0.0 ? tol : 1e-30));
                            // + the unfused path's own fp32 roundings (U, the step, the decay pass): a few 2^-24 |W0|
                            double tol2 = ldexp(1.0, -8) * (fabs((double)wf[e]) + fabs((double)wu[e]) + fabs((double)alpha) * abs_u) + 2.0 * fp32 +
                                          2.0 * r * ldexp(1.0, -24) * fabs((double)alpha) * abs_u + ldexp(1.0, -21) * fabs((double)w0[e]);
                            double err2 = fabs((double)wf[e] - wu[e]);
                            if (!(err2 <= tol2)) wu_bad++;
                            worst_pair = fmax(worst_pair, err2 / (tol2 > 0.0 ? tol2 : 1e-30));
                            w_same += wf[e] == wu[e];
                            w_n++;
                            double df = (double)wf[e] - w0[e], du = (double)wu[e] - w0[e];
                            dot += df * du; ff += df * df; uu += du * du;
                        }
                    }
                    free(nf); free(nu); free(pf); free(pu);
                }
                cudaCheck(cudaDeviceSynchronize());
                // every other tensor, and the whole optimizer state, bit for bit
                download_f32(wf, mf.params, P, 0);
                download_f32(wu, mu.params, P, 0);
                for (int i = 0; i < mf.table.n; i++) {
                    if (tf.opt.lay[i].side != SIDE_NONE) continue;
                    const ParamInfo* pi = &mf.table.info[i];
                    other_diff += memcmp(wf + pi->offset, wu + pi->offset, sizeof(float) * (size_t)pi->numel) != 0;
                }
                size_t sizes[3] = {(size_t)ob.moments, (size_t)ob.q8, (size_t)ob.absmax};
                const void* fs[3] = {tf.opt.mom_mem, tf.opt.q_mem, tf.opt.absmax_mem};
                const void* us[3] = {tu.opt.mom_mem, tu.opt.q_mem, tu.opt.absmax_mem};
                for (int k = 0; k < 3; k++) {
                    if (sizes[k] == 0) continue;
                    unsigned char* a = (unsigned char*)mallocCheck(sizes[k]);
                    unsigned char* b = (unsigned char*)mallocCheck(sizes[k]);
                    download_bytes(a, fs[k], sizes[k]);
                    download_bytes(b, us[k], sizes[k]);
                    for (size_t q = 0; q < sizes[k]; q++) state_diff += a[q] != b[q];
                    free(a); free(b);
                }
            }
            const char* kn = OPTIM_NAMES[kind];
            int r = ranks[ri];
            check(proj_diff == 0 && state_diff == 0 && other_diff == 0,
                  "%s r %d fused vs unfused, 4 steps: projectors (%zu elements differ), optimizer state (%zu bytes differ) and "
                  "non-GaLore tensors (%zu differ) bit-identical", kn, r, proj_diff, state_diff, other_diff);
            check(n_far == 0 && n_near <= n_total / 1000,
                  "%s r %d: fused N (bf16) = the unfused fp32 N rounded to nearest: %zu of %zu one ulp off (bound 0.1%%), %zu further (bound 0)",
                  kn, r, n_near, n_total, n_far);
            check(w_bad == 0, "%s r %d wd %g: fused W vs beta W0 + alpha N P in double, %zu elements: %zu beyond the bound "
                  "(2^-8 |ref| + fp32 terms), worst at %.2f of it; %d GEMM shapes fell back to cublasGemmEx",
                  kn, r, (double)oc.weight_decay, w_n, w_bad, worst_ref, tf.mm_upd.fallbacks - fallbacks0);
            double cs = (ff > 0.0 && uu > 0.0) ? dot / sqrt(ff * uu) : 0.0;
            // the updates are ~10 bf16 ulps of W per step and each path rounds to nearest: cosine ~0.9995
            check(wu_bad == 0 && cs > 0.995, "%s r %d: fused vs unfused weights: %zu beyond the bound (two roundings + bf16 N), worst at "
                  "%.2f of it, %.1f%% bit-identical; weight change cosine %.6f (bound 0.995)", kn, r, wu_bad, worst_pair,
                  100.0 * w_same / (w_n ? w_n : 1), cs);
            free(g); free(dir); free(w0); free(wf); free(wu); free(init);
            gpu_trainer_free(&tf); gpu_trainer_free(&tu);
            gpu_free(&mf); gpu_free(&mu);
        }
    }
}

// per-layer updates against whole-model on the GPU, clipping off: layer l's gradients do not depend
// on the (already updated) weights above it, and every kernel is deterministic, so the weights
// must agree bit for bit. With accumulation, per-layer accumulates GaLore gradients in the
// low-rank space (P^T sum G = sum P^T G up to rounding): close, not equal.
static void gpu_recompute_run(const LlamaConfig* c, const float* init, const OptimConfig* oc, int per_layer, int accum, int recompute,
                              int steps, float* losses, float* out, int attn_fallback, int* deterministic);
// attn_fallback: attention_init's mode (bitwise comparisons pass bitwise_attn_mode's)
static const char* g_gpu_run_shard = REF_DIR "/train.bin"; // gpu_recompute_run's data (test_gpu_hf_families: its own)
static void gpu_run_steps(const LlamaConfig* c, const OptimConfig* oc, int per_layer, int accum, int steps, float* out, int attn_fallback) {
    ParamTable pt;
    param_table_build(&pt, c);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    llama_init_params(&pt, init, 99);
    float* losses = (float*)mallocCheck(sizeof(float) * (size_t)steps);
    int det;
    gpu_recompute_run(c, init, oc, per_layer, accum, 0, steps, losses, out, attn_fallback, &det);
    free(losses); free(init);
    param_table_free(&pt);
}

// a non-finite gradient on the GPU (the update stream path): a wrapper around the gradient hook
// writes a NaN into one update group's gradient as backward finishes it. Whole-model: the step is
// skipped and no weight moves. Per-layer: the groups backward finished before (lm_head, the final
// norm, the layers above) were updated, the poisoned group and every later one keep their weights
// bit for bit; either way the step says skipped, and the next step is finite again (the shared
// gradient slots were left zero).
static void (*g_nan_next)(void*, int, int);
static int g_nan_group = -1;
static float g_nan_value = NAN; // what nan_hook writes (test_gpu_huge_grad: a finite 1e20)
static void nan_hook(void* ctx, int first, int last) {
    GpuTrainer* tr = (GpuTrainer*)ctx;
    GpuLlama* m = tr->model;
    if (first == g_nan_group) {
        cudaCheck(cudaStreamSynchronize(m->stream)); // the group's gradient is complete
        floatX nan = __float2bfloat16(g_nan_value);
        cudaCheck(cudaMemcpy(GX(m, first), &nan, sizeof nan, cudaMemcpyHostToDevice));
    }
    if (g_nan_next) g_nan_next(ctx, first, last);
}

// a llama_tiny GPU trainer (B 2, T 32, seed-7 weights) under oc, its data, and two host copies
// of the weights: the test_gpu_nonfinite family's setup
typedef struct { GpuLlama m; GpuTrainer tr; DataLoader dl; int *in, *tg; float *w0, *w1; int B, T; } TinyRun;
static void tiny_run_init(TinyRun* r, const LlamaConfig* c, const OptimConfig* oc, int per_layer, int attn_fallback) {
    r->B = 2; r->T = 32;
    gpu_build(&r->m, c, r->B, r->T, 0, attn_fallback, 0, per_layer);
    r->w0 = (float*)mallocCheck(sizeof(float) * r->m.table.total);
    r->w1 = (float*)mallocCheck(sizeof(float) * r->m.table.total);
    llama_init_params(&r->m.table, r->w0, 7);
    gpu_upload_params(&r->m, r->w0);
    gpu_trainer_init(&r->tr, &r->m, oc, per_layer, 1, 0.0f, 0, 42, 0);
    dataloader_init(&r->dl, REF_DIR "/train.bin", r->B, r->T, 0, 0, 0, 1, c->V);
    r->in = (int*)mallocCheck(sizeof(int) * r->B * r->T);
    r->tg = (int*)mallocCheck(sizeof(int) * r->B * r->T);
}
static float tiny_run_step(TinyRun* r, float* norm, int* skipped) {
    int64_t nt;
    return gpu_train_step(&r->tr, &r->dl, 1e-3f, r->in, r->tg, norm, skipped, &nt);
}
// one step with nan_hook writing value into the first element of group `target`'s gradient
static void tiny_run_poisoned_step(TinyRun* r, int target, float value, float* norm, int* skipped) {
    g_nan_next = r->m.grads_ready; g_nan_group = target; g_nan_value = value;
    r->m.grads_ready = nan_hook; r->m.grads_ctx = &r->tr;
    tiny_run_step(r, norm, skipped);
    r->m.grads_ready = g_nan_next; g_nan_group = -1; g_nan_value = NAN; g_nan_next = NULL;
}
static void tiny_run_free(TinyRun* r) {
    free(r->in); free(r->tg); free(r->w0); free(r->w1);
    dataloader_free(&r->dl);
    gpu_trainer_free(&r->tr);
    gpu_free(&r->m);
}

static void test_gpu_nonfinite(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int L = c.L;
    for (int per_layer = 0; per_layer <= 1; per_layer++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = OPTIM_GALORE_ADAMW8BIT; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind];
        oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
        TinyRun r;
        tiny_run_init(&r, &c, &oc, per_layer, attn_fallback);
        GpuLlama* m = &r.m;
        float norm;
        int skipped;
        tiny_run_step(&r, &norm, &skipped); // a normal step first (projectors exist)
        gpu_download_params(m, r.w0);
        // poison layer L/2's gate|up group (the hook is called with its first tensor)
        int target = pt_layer(L / 2, P_WG);
        tiny_run_poisoned_step(&r, target, NAN, &norm, &skipped);
        gpu_download_params(m, r.w1);
        int moved_before = 0, kept_after = 1, kept_all = 1;
        for (int i = 0; i < m->table.n; i++) {
            size_t off = m->table.info[i].offset, n = (size_t)m->table.info[i].numel;
            int same = memcmp(r.w0 + off, r.w1 + off, sizeof(float) * n) == 0;
            if (!same) kept_all = 0;
            // backward order: lm_head, the final norm, then the layers top down, the embedding last
            int before = i > target + 1 && i != 0; // the groups above gate|up of layer L/2 (down of the same layer included)
            if (before && !same) moved_before = 1;
            if (!before && !same) kept_after = 0;
        }
        if (per_layer)
            check(skipped && moved_before && kept_after, "GPU per-layer, NaN in layer %d's gate|up gradient: step skipped (%d), the groups "
                  "before it updated (%d), it and every later group unchanged bit for bit (%d)", L / 2, skipped, moved_before, kept_after);
        else
            check(skipped && kept_all, "GPU whole-model, NaN in one gradient: step skipped (%d), no weight moved (%d)", skipped, kept_all);
        float loss = tiny_run_step(&r, &norm, &skipped);
        check(!skipped && isfinite(loss) && isfinite(norm), "GPU %s: the step after the skipped one is finite (loss %.4f, norm %.4f)",
              per_layer ? "per-layer" : "whole-model", loss, norm);
        tiny_run_free(&r);
    }
}

// a finite gradient element of 1e20 (issue 22): its square (1e40) overflows fp32 but not the
// double the CPU engine sums in, so the step is finite on both engines. Whole-model: the norm is
// finite (~1e20), the step not skipped; per-layer: the device's check passes the poisoned group,
// which is updated. Both failed while the norm partials were fp32 (the square was inf: "skipped").
// AdamW with bf16 moments: v = (1 - b2) 1e40 = 1e37 stays finite.
static void test_gpu_huge_grad(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    for (int per_layer = 0; per_layer <= 1; per_layer++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = OPTIM_ADAMW; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind];
        TinyRun r;
        tiny_run_init(&r, &c, &oc, per_layer, attn_fallback);
        gpu_download_params(&r.m, r.w0); // as stored (bf16)
        int target = pt_layer(c.L / 2, P_WG);
        float norm;
        int skipped;
        tiny_run_poisoned_step(&r, target, 1e20f, &norm, &skipped);
        gpu_download_params(&r.m, r.w1);
        size_t off = r.m.table.info[target].offset, n = (size_t)r.m.table.info[target].numel;
        int moved = memcmp(r.w0 + off, r.w1 + off, sizeof(float) * n) != 0;
        check(!skipped && moved && isfinite(norm) && norm > 1e19f, "GPU %s, a finite 1e20 in layer %d's gate|up gradient: not skipped (skipped %d), "
              "its weights updated (%d), the norm finite (%.4g; per-layer: the norm of what was updated)", per_layer ? "per-layer" : "whole-model",
              c.L / 2, skipped, moved, norm);
        tiny_run_free(&r);
    }
}

// per-layer + accumulation (the refresh-step accumulators: cudaMallocAsync on the update stream):
// the default pool's release threshold is the plan's refresh-step row, so the pool keeps that
// memory between refresh steps (issue 22: the default 0 returned it to the OS at each of the
// refresh step's synchronisations, and every refresh step mapped it again)
static void test_gpu_pool_threshold(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind];
    oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    GpuLlama m;
    gpu_build(&m, &c, 2, 32, 0, attn_fallback, 0, 1);
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, &oc, 1, 2, 0.0f, 0, 42, 0);
    cudaMemPool_t pool;
    uint64_t got = 0;
    cudaCheck(cudaDeviceGetDefaultMemPool(&pool, 0));
    cudaCheck(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &got));
    double want = m.mem.plan.items[GR_ACC_REFRESH].bytes;
    check(want > 0 && (double)got == want, "GPU per-layer --grad-accum 2: the memory pool's release threshold %llu bytes, the plan's "
          "refresh-step accumulators %.0f", (unsigned long long)got, want);
    gpu_trainer_free(&tr);
    gpu_free(&m);
}

// a NaN at a refresh step, per-layer (issue 16 item 4: the check on the device): the first step
// (no projector yet, every GaLore matrix refreshes) with layer L/2's gate|up gradient poisoned. The
// device skips that group's refreshes and updates and every later one's, and the host undoes what
// it counted for them (has_proj, the refresh count) at the end of the step: after the same step,
// the CPU engine (whose host check never issues them) has the same has_proj, the same refresh
// count, and both say skipped; the next step refreshes the rest and is finite on both.
static void cpu_nan_hook(void* ctx, int first, int last) {
    cpu::Trainer* tr = (cpu::Trainer*)ctx;
    if (first == g_nan_group) cpu::G(tr->model, first)[0] = NAN;
    if (g_nan_next) g_nan_next(ctx, first, last);
}
static void test_gpu_nonfinite_refresh(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    int B = 2, T = 32, L = c.L;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW8BIT; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind];
    oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    int target = pt_layer(L / 2, P_WG);
    GpuLlama gm;
    gpu_build(&gm, &c, B, T, 0, attn_fallback, 0, 1);
    float* w0 = (float*)mallocCheck(sizeof(float) * gm.table.total);
    llama_init_params(&gm.table, w0, 7);
    gpu_upload_params(&gm, w0);
    GpuTrainer gt;
    gpu_trainer_init(&gt, &gm, &oc, 1, 1, 0.0f, 0, 42, 0);
    cpu::Llama cm;
    cpu::llama_build(&cm, &c);
    memcpy(cm.params, w0, sizeof(float) * cm.table.total);
    cpu::llama_alloc_activations(&cm, B, T, 0);
    cpu::Trainer ct;
    cpu::trainer_init(&ct, &cm, &oc, 1, 1, 0.0f, NULL);
    DataLoader dg, dc;
    dataloader_init(&dg, REF_DIR "/train.bin", B, T, 0, 0, 0, 1, c.V);
    dataloader_init(&dc, REF_DIR "/train.bin", B, T, 0, 0, 0, 1, c.V);
    int* in = (int*)mallocCheck(sizeof(int) * B * T);
    int* tg = (int*)mallocCheck(sizeof(int) * B * T);
    float norm;
    int sk_g, sk_c;
    int64_t nt;
    g_nan_group = target;
    g_nan_next = gm.grads_ready; gm.grads_ready = nan_hook; gm.grads_ctx = &gt;
    gpu_train_step(&gt, &dg, 1e-3f, in, tg, &norm, &sk_g, &nt);
    gm.grads_ready = g_nan_next;
    g_nan_next = cm.grads_ready; cm.grads_ready = cpu_nan_hook; cm.grads_ctx = &ct;
    cpu::train_step(&ct, &dc, 1e-3f, in, tg, &norm, &sk_c, &nt);
    cm.grads_ready = g_nan_next; g_nan_group = -1; g_nan_next = NULL;
    int same = 1, with = 0, without = 0;
    for (int i = 0; i < gm.table.n; i++) {
        same &= gt.opt.has_proj[i] == ct.opt.has_proj[i];
        if (gt.opt.lay[i].side != SIDE_NONE) { with += gt.opt.has_proj[i]; without += !gt.opt.has_proj[i]; }
    }
    check(sk_g && sk_c && same && with > 0 && without > 0 && gt.opt.gl.refreshes == ct.opt.refreshes && gt.t == ct.t,
          "GPU per-layer, NaN at a refresh step: skipped (GPU %d, CPU %d); projectors of %d matrices made, %d left for the next step, "
          "as the CPU engine (%s); refreshes counted %lld (CPU %lld), updates %lld (CPU %lld)", sk_g, sk_c, with, without,
          same ? "the same" : "DIFFERENT", (long long)gt.opt.gl.refreshes, (long long)ct.opt.refreshes, (long long)gt.t, (long long)ct.t);
    float lg = gpu_train_step(&gt, &dg, 1e-3f, in, tg, &norm, &sk_g, &nt);
    float lc = cpu::train_step(&ct, &dc, 1e-3f, in, tg, &norm, &sk_c, &nt);
    int all = 1;
    for (int i = 0; i < gm.table.n; i++) all &= gt.opt.lay[i].side == SIDE_NONE || gt.opt.has_proj[i];
    check(!sk_g && !sk_c && isfinite(lg) && all && gt.opt.gl.refreshes == ct.opt.refreshes,
          "GPU per-layer: the step after is finite (loss %.4f, CPU %.4f), every projector made, refreshes %lld (CPU %lld)", lg, lc,
          (long long)gt.opt.gl.refreshes, (long long)ct.opt.refreshes);
    free(in); free(tg); free(w0);
    dataloader_free(&dg); dataloader_free(&dc);
    cpu::trainer_free(&ct); cpu::llama_free(&cm);
    gpu_trainer_free(&gt); gpu_free(&gm);
}

static void test_gpu_per_layer(int attn_fallback) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    ParamTable pt;
    param_table_build(&pt, &c);
    float* a = (float*)mallocCheck(sizeof(float) * pt.total);
    float* b = (float*)mallocCheck(sizeof(float) * pt.total);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    llama_init_params(&pt, init, 99);
    for (size_t k = 0; k < pt.total; k++) init[k] = f32_from_bf16(bf16_from_f32(init[k]));
    int kinds[6] = {OPTIM_ADAMW, OPTIM_GALORE_ADAMW, OPTIM_ADAM8BIT, OPTIM_GALORE_ADAMW8BIT, OPTIM_APOLLO_ADAMW, OPTIM_APOLLO_MINI};
    for (int kk = 0; kk < 6; kk++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = kinds[kk]; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; oc.weight_decay = 0.0f;
        oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
        apollo_config_defaults(&oc);
        gpu_run_steps(&c, &oc, 0, 1, 3, a, bitwise_attn_mode(attn_fallback));
        gpu_run_steps(&c, &oc, 1, 1, 3, b, bitwise_attn_mode(attn_fallback));
        int same = memcmp(a, b, sizeof(float) * pt.total) == 0;
        check(same, "%s on the GPU: per-layer updates == whole-model after 3 steps (refreshes at 1, 3): %s (normalized max error %.2e)",
              OPTIM_NAMES[oc.kind], same ? "bit-identical" : "DIFFER", norm_max_err(b, a, pt.total));
        if (optim_has_projector(oc.kind)) { // APOLLO: full-rank bf16 accumulation instead
            gpu_run_steps(&c, &oc, 0, 2, 3, a, attn_fallback);
            gpu_run_steps(&c, &oc, 1, 2, 3, b, attn_fallback);
            for (size_t k = 0; k < pt.total; k++) { a[k] -= init[k]; b[k] -= init[k]; }
            double cs = cosine(a, b, pt.total), e = norm_max_err(b, a, pt.total);
            // step 2 accumulates in the low-rank space, in bf16, against bf16 full gradients summed:
            // rounding-level differences, which Adam's normalization can enlarge for tiny elements
            check(cs > 0.99, "%s on the GPU, --grad-accum 2: per-layer (%s accumulation at step 2) vs whole-model: weight change "
                  "cosine %.5f (bound 0.99), normalized max error %.2e", OPTIM_NAMES[oc.kind], optim_is_galore(oc.kind) ? "low-rank" : "full-rank", cs, e);
        }
    }
    free(a); free(b); free(init);
    param_table_free(&pt);
}

// --recompute 1 against 0 on the GPU: backward recomputes each layer (attention's saved stats
// included) with the same kernels on the same inputs, and every kernel is deterministic, so the
// losses and weights must agree bit for bit (unless the cuDNN attention backward chosen is not
// deterministic, which the check then names). Also the plan's saving by hand.
// (also gpu_run_steps': accum micro-batches per step)
static void gpu_recompute_run(const LlamaConfig* c, const float* init, const OptimConfig* oc, int per_layer, int accum, int recompute,
                              int steps, float* losses, float* out, int attn_fallback, int* deterministic) {
    int B = 2, T = 32;
    GpuLlama m;
    gpu_build(&m, c, B, T, 0, attn_fallback, 0, per_layer, recompute);
    gpu_upload_params(&m, init);
    if (attn_fallback == ATTN_DETERMINISTIC) {
        // the bitwise checks' premise, checked where they run: a deterministic backward, and which one
        static int said = 0;
        if (!said++) check(m.attn.bwd_deterministic && !m.attn.bwd_dq_accum, "bitwise GPU checks run a deterministic attention backward: %s",
                           attention_path(&m.attn));
    }
    GpuTrainer tr;
    gpu_trainer_init(&tr, &m, oc, per_layer, accum, 0.0f, 0, 42, 0);
    DataLoader dl;
    dataloader_init(&dl, g_gpu_run_shard, B, T, 0, 0, 0, 1, c->V);
    int* in = (int*)mallocCheck(sizeof(int) * B * T);
    int* tg = (int*)mallocCheck(sizeof(int) * B * T);
    for (int s = 0; s < steps; s++) {
        float norm;
        int skipped;
        int64_t nt;
        losses[s] = gpu_train_step(&tr, &dl, 1e-3f, in, tg, &norm, &skipped, &nt);
    }
    gpu_download_params(&m, out);
    *deterministic = m.attn.bwd_deterministic;
    free(in); free(tg);
    dataloader_free(&dl);
    gpu_trainer_free(&tr);
    gpu_free(&m);
}

static void test_gpu_recompute(int attn_fallback) {
    // the plan's saving is test_llama.c's (memplan.h, on the CPU)
    LlamaConfig c;
    llama_config_resolve(&c, "llama_tiny");
    ParamTable pt;
    param_table_build(&pt, &c);
    float* a = (float*)mallocCheck(sizeof(float) * pt.total);
    float* b = (float*)mallocCheck(sizeof(float) * pt.total);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    llama_init_params(&pt, init, 99);
    int kinds[2] = {OPTIM_ADAMW, OPTIM_GALORE_ADAMW8BIT};
    for (int kk = 0; kk < 2; kk++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = kinds[kk]; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; oc.weight_decay = 0.0f;
        oc.rank = 32; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
        int per_layer = kk == 1, det = 1;
        float la[4], lb[4];
        gpu_recompute_run(&c, init, &oc, per_layer, 1, 0, 4, la, a, bitwise_attn_mode(attn_fallback), &det);
        gpu_recompute_run(&c, init, &oc, per_layer, 1, 1, 4, lb, b, bitwise_attn_mode(attn_fallback), &det);
        int same_l = memcmp(la, lb, sizeof la) == 0, same_w = memcmp(a, b, sizeof(float) * pt.total) == 0;
        check(same_l && same_w, "%s%s on the GPU: --recompute 1 vs 0 over 4 steps: losses %s (%.6f -> %.6f vs %.6f -> %.6f), weights %s "
              "(normalized max error %.2e)%s", OPTIM_NAMES[oc.kind], per_layer ? " per-layer" : "", same_l ? "bit-identical" : "DIFFER",
              la[0], la[3], lb[0], lb[3], same_w ? "bit-identical" : "DIFFER", norm_max_err(b, a, pt.total),
              det ? "" : " (the attention backward is not deterministic: cuDNN engine; try --attn-fallback 1)");
    }
    free(a); free(b); free(init);
    param_table_free(&pt);
}

// transformers' sharded BF16 saves of each family (dev/ref/make_hf_families.py: Llama 2 MHA,
// llama3 RoPE + GQA 4:1, tied embeddings, head_dim 16 != C/NH, linear RoPE), loaded through their
// folders: logits and the first step's gradients against transformers' float64 ones, with
// test_parity's bf16 bounds (the header: 5e-2 / cosine 0.999 logits, 0.1 / 0.995 gradients);
// the weights are exact in bf16. Then for the tied and head_dim models: galore_adamw8bit
// per-layer == whole-model bit for bit (the tied embedding's update waits for both uses).
static void test_gpu_hf_families(int attn_fallback) {
    const char* shard = "/tmp/test_llamacu_hf_families.bin";
    hf_family_shard(shard);
    for (int fi = 0; fi < HF_FAMILIES; fi++) {
        char dir[128], path[256], what[96];
        snprintf(dir, sizeof dir, "dev/ref/hf/%s", HF_FAMILY_NAMES[fi]);
        snprintf(path, sizeof path, "%s/config.json", dir);
        LlamaConfig c;
        llama_config_from_json(&c, path);
        ParamTable pt;
        param_table_build(&pt, &c);
        HfRef r;
        hf_ref_load(&r, dir, &c, &pt);
        float* init = (float*)mallocCheck(sizeof(float) * pt.total);
        llama_load_params(&pt, init, dir);
        size_t BT = (size_t)r.B * r.T;
        GpuLlama m;
        gpu_build(&m, &c, r.B, r.T, 0, attn_fallback, 0);
        gpu_upload_params(&m, init);
        float* logits = (float*)mallocCheck(sizeof(float) * BT * c.V);
        gpu_forward(&m, r.inputs, r.targets, r.B, r.T, 0.0f);
        download_logits(&m, logits);
        double e = norm_max_err(logits, r.logits, BT * c.V), cs = cosine(logits, r.logits, BT * c.V);
        check(e < 5e-2 && cs > 0.999, "hf %s (%s) vs transformers: logits normalized max error %.3e (bound 5e-2), cosine %.6f (bound 0.999)",
              HF_FAMILY_NAMES[fi], attention_path(&m.attn), e, cs);
        gpu_zero_grad(&m);
        gpu_forward(&m, r.inputs, r.targets, r.B, r.T, 1.0f);
        gpu_backward(&m, r.inputs, r.B, r.T);
        float* grads = (float*)mallocCheck(sizeof(float) * pt.total);
        download_f32(grads, m.grads, pt.total, 0);
        snprintf(what, sizeof what, "hf %s vs transformers", HF_FAMILY_NAMES[fi]);
        check_grads(&pt, grads, r.grads, what, 0.1, 0.995);
        gpu_free(&m);
        if (c.tied || c.HD != c.C / c.NH) {
            float* a = (float*)mallocCheck(sizeof(float) * pt.total);
            float* b = (float*)mallocCheck(sizeof(float) * pt.total);
            for (size_t k = 0; k < pt.total; k++) init[k] = f32_from_bf16(bf16_from_f32(init[k]));
            OptimConfig oc;
            memset(&oc, 0, sizeof oc);
            oc.kind = OPTIM_GALORE_ADAMW8BIT; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; oc.weight_decay = 0.0f;
            oc.rank = 4; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
            float la[3];
            int det = 1;
            g_gpu_run_shard = shard;
            gpu_recompute_run(&c, init, &oc, 0, 1, 0, 3, la, a, bitwise_attn_mode(attn_fallback), &det);
            gpu_recompute_run(&c, init, &oc, 1, 1, 0, 3, la, b, bitwise_attn_mode(attn_fallback), &det);
            g_gpu_run_shard = REF_DIR "/train.bin";
            int same = memcmp(a, b, sizeof(float) * pt.total) == 0;
            check(same, "hf %s on the GPU: galore_adamw8bit per-layer == whole-model after 3 steps: %s (normalized max error %.2e)",
                  HF_FAMILY_NAMES[fi], same ? "bit-identical" : "DIFFER", norm_max_err(b, a, pt.total));
            free(a); free(b);
        }
        free(logits); free(grads); free(init);
        hf_ref_free(&r);
        param_table_free(&pt);
    }
    remove(shard);
}

int main(int argc, char** argv) {
    // the program's own flags: --attn-fallback 1 runs every GPU check on the cuBLAS attention
    // path, --device N picks the GPU
    Settings gf;
    int help = 0;
    cli_parse(&gf, argc, argv, &help);
    test_host_math();
    int ndev = 0;
    cudaError_t de = cudaGetDeviceCount(&ndev);
    if (de != cudaSuccess || ndev == 0) {
        check(0, "a CUDA device to run the GPU checks on (%s); the host-side checks above ran", de != cudaSuccess ? cudaGetErrorString(de) : "none found");
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }
    cudaCheck(cudaSetDevice(gf.device));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, gf.device));
    printf("     device %d: %s (compute %d.%d)\n", gf.device, prop.name, prop.major, prop.minor);
    cpu::set_threads(0);

    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    ParamTable pt;
    param_table_build(&pt, &c);
    Reference r;
    reference_load(&r, REF_DIR "/ref.bin", &pt);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    llama_load_params(&pt, init, REF_DIR "/model.safetensors");
    // the GPU holds bf16 weights: compare training against the reference from the same rounded start
    for (size_t k = 0; k < pt.total; k++) init[k] = f32_from_bf16(bf16_from_f32(init[k]));

    test_parity(&r, &c, init, gf.attn_fallback);
    test_vs_cpu(gf.attn_fallback);
    test_training(&r, &c, init, OPTIM_ADAMW, 0, 0, gf.attn_fallback);
    test_training(&r, &c, init, OPTIM_ADAMW, 1, 0, gf.attn_fallback);
    test_training(&r, &c, init, OPTIM_ADAM, 1, 0, gf.attn_fallback);
    test_training(&r, &c, init, OPTIM_ADAMW, 0, 1, gf.attn_fallback);
    test_determinism(&r, &c, init, 0, 0, gf.attn_fallback);
    test_determinism(&r, &c, init, 0, 1, gf.attn_fallback);
    test_determinism(&r, &c, init, 1, 0, gf.attn_fallback);
    // GaLore and 8-bit Adam on the GPU
    test_adam8bit_kernels();
    test_galore_refresh();
    test_galore_refresh_randomized();
    test_golore_gpu();
    test_optimizer_vs_cpu(OPTIM_GALORE_ADAMW, gf.attn_fallback);
    test_optimizer_vs_cpu(OPTIM_ADAM8BIT, gf.attn_fallback);
    test_optimizer_vs_cpu(OPTIM_GALORE_ADAMW8BIT, gf.attn_fallback);
    test_optimizer_vs_cpu(OPTIM_FIRA_ADAMW, gf.attn_fallback); // issue 15: Fira's residual and limiter on the unfused path
    test_optimizer_vs_cpu(OPTIM_FIRA_ADAMW8BIT, gf.attn_fallback); // Fira on galore_adamw8bit's moments: the unit-lr kernel, then the residual
    test_optimizer_vs_cpu(OPTIM_APOLLO_ADAMW, gf.attn_fallback);     // APOLLO
    test_optimizer_vs_cpu(OPTIM_APOLLO_MINI, gf.attn_fallback);
    test_optimizer_vs_cpu(OPTIM_APOLLO_ADAMW8BIT, gf.attn_fallback);
    test_w8_vs_cpu(OPTIM_GALORE_ADAMW, 100, 1, gf.attn_fallback); // INT8 weights (#25): groups across rows, the embedding dequantized too
    test_w8_vs_cpu(OPTIM_APOLLO_MINI, 128, 0, gf.attn_fallback);
    test_galore_fused(gf.attn_fallback);
    test_gpu_per_layer(gf.attn_fallback);
    test_gpu_nonfinite(gf.attn_fallback);
    test_gpu_nonfinite_refresh(gf.attn_fallback);
    test_gpu_huge_grad(gf.attn_fallback);
    test_gpu_pool_threshold(gf.attn_fallback);
    test_gpu_recompute(gf.attn_fallback);
    test_gpu_hf_families(gf.attn_fallback);
    test_determinism(&r, &c, init, 0, 0, gf.attn_fallback, OPTIM_GALORE_ADAMW8BIT, 0);
    test_determinism(&r, &c, init, 0, 0, gf.attn_fallback, OPTIM_GALORE_ADAMW, 1);
    test_determinism(&r, &c, init, 0, 1, gf.attn_fallback, OPTIM_ADAM8BIT, 1);
    test_determinism(&r, &c, init, 0, 0, gf.attn_fallback, OPTIM_APOLLO_ADAMW, 0); // APOLLO
    test_determinism(&r, &c, init, 0, 0, gf.attn_fallback, OPTIM_APOLLO_MINI, 1);

    free(init);
    reference_free(&r);
    param_table_free(&pt);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
