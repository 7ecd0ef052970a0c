// test_llama.c: the CPU trainer against PyTorch + transformers' LlamaForCausalLM.
// The reference (dev/ref/make_reference.py, float64) is a tiny GQA model with dimensions that
// are not powers of two: step-0 logits, loss and every gradient, then 10 training steps with
// AdamW and with Adam (schedule, clipping, weight decay, the shard loader), final weights too.
// Also the built-in configs' parameter counts, config.json and safetensors round trips.
// GaLore against galore-torch (dev/ref/make_galore_reference.py, float32): the optimizer on
// synthetic gradients across refreshes for every side rule, and 12 training steps of
// galore_adamw and galore_adamw8bit (bitsandbytes' kernel math) from the same init and shard;
// per-layer updates and low-rank accumulation against the whole-model step; the memory plan.
//
// Error metric for a tensor: max_k |ours_k - ref_k| / max_k |ref_k| ("normalized max error").
//
// How the bounds are set. They must hold on any x86-64 CPU with any BLAS: OpenBLAS picks other
// kernels on AVX2 and on AVX-512 machines, its OpenMP and pthreads builds split work differently,
// and the reference BLAS sums naively, so every sum may come out in another order. No bound is
// read off a run; each follows from fp32 rounding, u = 2^-24 = 6.0e-8:
// (F) fp32 vs a float64 reference. A length-K sum rounds to within K u sum|terms| in any order;
//     with independent zero-mean roundings (the model that holds for BLAS kernels in practice,
//     Higham & Mary 2019) the error is ~ sqrt(K) u of the sum's scale, and errors of D dependent
//     operations add in quadrature: E = u sqrt(D K). The reference model (dev/ref: C 60, H 84,
//     V 211, 2 layers) has K <= 211 and D ~ 18 operations forward (9 a layer), 36 with backward:
//     E = 3.7e-6 forward, 5.2e-6 for gradients. Bounds are >= 2.5 E there, so a few-sigma tail
//     over thousands of elements stays inside, while a wrong formula is off by 1e-3 .. O(1).
// (A) Adam steps. Adam is invariant to the gradient's scale, so a relative gradient error e moves
//     each update by ~e relative, and S steps move the weights by ~S e lr; an element whose
//     gradient is pure rounding noise gets a full-size step (m / sqrt(v) = +-1), but such an
//     element has ~0 first-order effect on the loss. Losses therefore track to ~S E relative.
// (Q) 8-bit states (adam8bit.md): a value within its rounding of a code boundary (the midpoint of
//     two map entries) may take the neighbouring code. The dynamic maps' boundaries are >= 1.4%
//     of |x| apart (64 linear steps over [0.1, 1] in the top decade, relatively coarser below), so
//     a relative difference e flips a code with probability <= 2 e / 1.4e-2, and a flipped code
//     moves its element of m or v by one code step. Bitwise equality is only for arithmetic that
//     is the same on both sides; a flip is a legitimate difference between two summation orders,
//     so 8-bit checks compare what must agree (the first step, before any quantized state is
//     read; tensors whose inputs are identical) strictly, and bound the rest by what flips can do.
#define TESTING
#include "train_llama.c"
#include <sys/wait.h>

static int n_pass = 0, n_fail = 0;

static void check(int ok, const char* fmt, ...) {
    va_list ap; va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
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

#include "dev/ref/reference.h"

// run S steps of the reference's recipe through the trainer's own train_step
static void train_reference(Llama* m, const Reference* r, int kind, float* losses) {
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.beta1 = r->beta1; oc.beta2 = r->beta2; oc.weight_decay = r->wd;
    oc.eps = kind == OPTIM_ADAMW ? r->eps_adamw : r->eps_adam;
    Trainer tr;
    trainer_init(&tr, m, &oc, 0, 1, r->clip, NULL);
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", r->B, r->T, 0, 0, 0, 1, r->V);
    int* inputs = (int*)mallocCheck(sizeof(int) * r->B * r->T);
    int* targets = (int*)mallocCheck(sizeof(int) * r->B * r->T);
    for (int s = 0; s < r->S; s++) {
        float lr = (float)(r->lr * lr_lambda(s, r->warmup, r->N, r->min_ratio, 1));
        float norm;
        int skipped;
        int64_t nt;
        losses[s] = train_step(&tr, &dl, lr, inputs, targets, &norm, &skipped, &nt);
    }
    free(inputs); free(targets);
    dataloader_free(&dl);
    trainer_free(&tr);
}

static void test_parity(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    check(c.C == 60 && c.H == 84 && c.NH == 6 && c.NKV == 3 && c.L == 2 && c.V == 211 && fabsf(c.norm_eps - 1e-5f) < 1e-12f &&
          c.rope_theta == 5000.0f, "config.json read: C %d H %d NH %d NKV %d L %d V %d eps %g theta %g", c.C, c.H, c.NH, c.NKV, c.L, c.V, c.norm_eps, c.rope_theta);
    Llama m;
    llama_build(&m, &c);
    llama_set_grad_mode(&m, 0);
    llama_load_params(&m.table, m.params, REF_DIR "/model.safetensors");
    float* init = (float*)mallocCheck(sizeof(float) * m.table.total);
    memcpy(init, m.params, sizeof(float) * m.table.total);
    Reference r;
    reference_load(&r, REF_DIR "/ref.bin", &m.table);
    llama_alloc_activations(&m, r.B, r.T, 0);

    // step 0: logits, loss, gradients
    llama_forward(&m, r.inputs, r.targets, r.B, r.T);
    double e = norm_max_err(m.acts.logits, r.logits, (size_t)r.B * r.T * r.V);
    // (F): forward E = 3.7e-6: bound 1e-5
    check(e < 1e-5, "logits: normalized max error %.2e (bound 1e-5)", e);
    double le = fabs(m.mean_loss - r.loss) / fabs(r.loss);
    // (F): the loss (~5.4) is a mean of log-softmax terms whose logits (|z| < 1) carry E = 3.7e-6
    // absolute at most 1e-5 (above): relative 1e-5 / 5.4 / sqrt(18 tokens averaged) = 4.4e-7: bound 1e-6
    check(le < 1e-6, "loss %.7f vs %.7f: relative error %.2e (bound 1e-6)", m.mean_loss, r.loss, le);
    int ignored = 0;
    for (int i = 0; i < r.B * r.T; i++) ignored += r.targets[i] < 0;
    check(ignored > 0 && m.n_valid == r.B * r.T - ignored, "ignored targets: %d of %d excluded from the mean", ignored, r.B * r.T);
    llama_zero_grad(&m);
    llama_backward(&m, r.inputs, r.targets, r.B, r.T, 1.0f);
    // (F): backward E = 5.2e-6: bound 2e-5
    double worst = 0.0;
    const char* worst_name = "";
    for (int i = 0; i < m.table.n; i++) {
        const ParamInfo* p = &m.table.info[i];
        double ge = norm_max_err(G(&m, i), r.grads + p->offset, (size_t)p->numel);
        if (!(ge <= worst)) { worst = ge; worst_name = p->name; }
        if (!(ge < 2e-5)) check(0, "gradient %s: normalized max error %.2e (bound 2e-5)", p->name, ge);
    }
    check(worst < 2e-5, "gradients of all %d tensors: worst normalized max error %.2e in %s (bound 2e-5)", m.table.n, worst, worst_name);

    // 10 steps of AdamW, then of Adam, from the same init
    float* losses = (float*)mallocCheck(sizeof(float) * r.S);
    const char* names[2] = {"adamw", "adam"};
    for (int kind = 0; kind < 2; kind++) {
        memcpy(m.params, init, sizeof(float) * m.table.total);
        train_reference(&m, &r, kind, losses);
        const float* ref_losses = kind == OPTIM_ADAMW ? r.losses_adamw : r.losses_adam;
        const float* ref_params = kind == OPTIM_ADAMW ? r.params_adamw : r.params_adam;
        double lmax = 0.0;
        for (int s = 0; s < r.S; s++) {
            double d = fabs(losses[s] - ref_losses[s]) / fabs(ref_losses[s]);
            if (!(d <= lmax)) lmax = d;
        }
        // (A): each loss is a forward (relative error <= 4.4e-7, the loss check above) of weights that
        // differ by the accumulated update differences: each update element by ~E = 5.2e-6 relative to
        // an lr-sized step, and the loss sees them only through g . dW, a sum of random-signed terms:
        // |dL| <~ lr E ||g|| per step = 1e-2 x 5.2e-6 x ~1 = 5e-8, x 10 steps: 5e-7. Total ~1e-6: bound 1e-5
        check(lmax < 1e-5, "%s: %d losses %.6f -> %.6f (ref %.6f -> %.6f), max relative error %.2e (bound 1e-5)", names[kind], r.S,
              losses[0], losses[r.S - 1], ref_losses[0], ref_losses[r.S - 1], lmax);
        double pw = 0.0;
        for (int i = 0; i < m.table.n; i++) {
            const ParamInfo* p = &m.table.info[i];
            double pe = norm_max_err(m.params + p->offset, ref_params + p->offset, (size_t)p->numel);
            if (!(pe <= pw)) pw = pe;
        }
        // (A): the weights move by S lr at most per element (|W| <= 0.02 init x 4 sigma + S lr ~ 0.1), and the
        // two runs' moves differ by ~S E of that: 10 x 5.2e-6 ~ 5e-5 normalized at worst: bound 1e-4. (An
        // element whose gradient is pure rounding noise would take +-lr steps on one side only, but
        // the reference's gradients are zero only structurally, e.g. embedding rows of absent tokens,
        // and those are exact zeros on both sides.)
        check(pw < 1e-4, "%s: weights after %d steps, worst normalized max error %.2e (bound 1e-4)", names[kind], r.S, pw);
        check(ref_losses[r.S - 1] < ref_losses[0], "%s: the reference loss falls (%.4f -> %.4f)", names[kind], ref_losses[0], ref_losses[r.S - 1]);
    }
    free(losses); free(init);
    llama_free(&m);
}

// the paper's parameter counts (galore.md); printed there to 4 significant digits
static void test_presets(void) {
    const char* names[] = {"llama_60m", "llama_130m", "llama_350m", "llama_1b", "llama_7b"};
    const double want[] = {58.07e6, 134.11e6, 367.97e6, 1339.1e6, 6738e6};
    for (int i = 0; i < 5; i++) {
        LlamaConfig c;
        llama_config_resolve(&c, names[i]);
        ParamTable pt;
        param_table_build(&pt, &c);
        double rel = fabs((double)pt.total - want[i]) / want[i];
        check(rel < 5e-4, "%s: %zu parameters vs the paper's %.5gM (relative %.1e)", names[i], pt.total, want[i] / 1e6, rel);
        param_table_free(&pt);
    }
}

// write config.json + safetensors from a random model, read both back, compare
static void test_save_load(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    Llama a, b;
    llama_build(&a, &c);
    llama_build(&b, &c);
    llama_init_params(&a.table, a.params, 7);
    char dir[] = "/tmp/galore_test_XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp failed");
    llama_save(&c, &a.table, a.params, dir, ST_F32, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    LlamaConfig c2;
    llama_config_from_json(&c2, path);
    check(c2.C == c.C && c2.H == c.H && c2.NH == c.NH && c2.NKV == c.NKV && c2.L == c.L && c2.V == c.V &&
          c2.maxT == c.maxT && c2.norm_eps == c.norm_eps && c2.rope_theta == c.rope_theta, "config.json round trip");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    llama_load_params(&b.table, b.params, path);
    check(memcmp(a.params, b.params, sizeof(float) * a.table.total) == 0, "safetensors F32 round trip is bit exact");
    // bf16 save: each value is the nearest bf16
    llama_save(&c, &a.table, a.params, dir, ST_BF16, 0);
    llama_load_params(&b.table, b.params, path);
    double worst = 0.0;
    for (size_t k = 0; k < a.table.total; k++) {
        double rel = a.params[k] != 0.0f ? fabs((double)b.params[k] - a.params[k]) / fabs(a.params[k]) : fabs(b.params[k]);
        if (rel > worst) worst = rel;
    }
    check(worst <= 1.0 / 256, "safetensors BF16 save: worst relative rounding %.2e (bound 2^-8)", worst);
    // init statistics: N(0, 0.02) on matrices, ones on norms
    double ss = 0.0; size_t n = 0; int norms_ok = 1;
    for (int i = 0; i < a.table.n; i++) {
        const ParamInfo* p = &a.table.info[i];
        for (int64_t k = 0; k < p->numel; k++) {
            float w = a.params[p->offset + k];
            if (p->ndim == 1) norms_ok &= (w == 1.0f); else { ss += (double)w * w; n++; }
        }
    }
    double sd = sqrt(ss / n);
    check(norms_ok && fabs(sd - 0.02) < 0.001, "init: norms are 1, matrices have std %.5f (want 0.02)", sd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    llama_free(&a); llama_free(&b);
}

// the schedule of galore.md at a few points
// sample.h: greedy takes the first maximum and draws nothing; temperature, top-k and top-p give
// the frequencies of transformers' warpers. 200,000 seeded draws: a frequency's standard error is
// at most sqrt(0.25 / 200000) = 0.0011, so 0.006 (> 5 sigma) holds for any seed; tokens outside
// the kept set must never appear.
static void sample_freqs(const float* l, int V, SampleOpts o, int n, double* f) {
    Rng r; rng_init(&r, 1234);
    for (int j = 0; j < V; j++) f[j] = 0.0;
    for (int i = 0; i < n; i++) f[sample_next(l, V, &o, &r)] += 1.0 / n;
}
static int sample_freqs_match(const float* l, int V, SampleOpts o, float temperature, const int* kept) {
    double f[8], w[8], sum = 0.0, err = 0.0;
    sample_freqs(l, V, o, 200000, f);
    for (int j = 0; j < V; j++) { w[j] = kept[j] ? exp(l[j] / temperature) : 0.0; sum += w[j]; }
    for (int j = 0; j < V; j++) {
        if (!kept[j] && f[j] != 0.0) return 0;
        if (fabs(f[j] - w[j] / sum) > err) err = fabs(f[j] - w[j] / sum);
    }
    return err < 0.006;
}
static void test_sampling(void) {
    // softmax: 0.218 0.080 0.049 0.049 0.011 0.593
    const float l[6] = {2.0f, 1.0f, 0.5f, 0.5f, -1.0f, 3.0f}, ties[4] = {1.0f, 2.0f, 2.0f, 0.0f};
    Rng r; rng_init(&r, 7);
    SampleOpts greedy = {0.0f, 0, 1.0f};
    int g = sample_next(l, 6, &greedy, &r), gt = sample_next(ties, 4, &greedy, &r);
    check(g == 5 && gt == 1 && r.state == 7, "sampling: --temperature 0 is the argmax (%d), the first of equal ones (%d), and draws nothing", g, gt);
    int all[6] = {1, 1, 1, 1, 1, 1}, k2[6] = {1, 0, 0, 0, 0, 1}, p9[6] = {1, 1, 1, 0, 0, 1}, tk[4] = {0, 1, 1, 0};
    SampleOpts plain = {1.0f, 0, 1.0f}, hot = {0.5f, 0, 1.0f}, topk = {1.0f, 2, 1.0f}, topk1 = {1.0f, 1, 1.0f};
    SampleOpts topp8 = {1.0f, 0, 0.8f}, topp9 = {1.0f, 0, 0.9f}, both = {0.5f, 2, 0.9f};
    check(sample_freqs_match(l, 6, plain, 1.0f, all), "sampling: --temperature 1 draws the softmax");
    check(sample_freqs_match(l, 6, hot, 0.5f, all), "sampling: --temperature 0.5 draws softmax(logits / 0.5)");
    check(sample_freqs_match(l, 6, topk, 1.0f, k2), "sampling: --top-k 2 draws the two most likely, renormalized");
    check(sample_freqs_match(ties, 4, topk1, 1.0f, tk), "sampling: --top-k 1 keeps the logits equal to the first (transformers' rule)");
    // top-p 0.8: ascending mass 0.011, 0.060, 0.108, 0.189 <= 0.2 go, the rest stay; 0.9: only
    // 0.011 and 0.060 are <= 0.1 (of the two equal 0.049s the higher id goes first)
    check(sample_freqs_match(l, 6, topp8, 1.0f, k2), "sampling: --top-p 0.8 keeps the two tokens that reach 0.8");
    check(sample_freqs_match(l, 6, topp9, 1.0f, p9), "sampling: --top-p 0.9 keeps four");
    // order as transformers': temperature, then top-k, then top-p on the rescaled mass
    // (softmax(l / 0.5) over {0, 5}: 0.119, 0.881 -> top-p 0.9 keeps both)
    check(sample_freqs_match(l, 6, both, 0.5f, k2), "sampling: temperature, then top-k, then top-p");
}

static void test_schedule(void) {
    int ok = lr_lambda(0, 10, 100, 0.1, 1) == 0.0 && fabs(lr_lambda(5, 10, 100, 0.1, 1) - 0.5) < 1e-12 &&
             fabs(lr_lambda(10, 10, 100, 0.1, 1) - 1.0) < 1e-12 && fabs(lr_lambda(55, 10, 100, 0.1, 1) - 0.55) < 1e-12 &&
             fabs(lr_lambda(100, 10, 100, 0.1, 1) - 0.1) < 1e-12 && fabs(lr_lambda(50, 10, 100, 0.1, 0) - 1.0) < 1e-12;
    check(ok, "lr schedule: warmup from 0, cosine to the floor, constant");
}

// a backward that only adds: two half-scaled passes over the same batch equal one full one
static void test_grad_accum(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    Llama m;
    llama_build(&m, &c);
    llama_set_grad_mode(&m, 0);
    llama_load_params(&m.table, m.params, REF_DIR "/model.safetensors");
    llama_alloc_activations(&m, 2, 9, 0);
    int in[18], tg[18];
    for (int i = 0; i < 18; i++) { in[i] = (i * 37 + 5) % c.V; tg[i] = (i * 53 + 11) % c.V; }
    llama_zero_grad(&m);
    llama_forward(&m, in, tg, 2, 9);
    llama_backward(&m, in, tg, 2, 9, 1.0f);
    float* g1 = (float*)mallocCheck(sizeof(float) * m.table.total);
    memcpy(g1, m.grad_mem, sizeof(float) * m.table.total);
    llama_zero_grad(&m);
    for (int k = 0; k < 2; k++) { llama_forward(&m, in, tg, 2, 9); llama_backward(&m, in, tg, 2, 9, 0.5f); }
    double e = norm_max_err(m.grad_mem, g1, m.table.total);
    // two passes scaled by 0.5 (exact in binary) over the same batch add x/2 + x/2 = x exactly when
    // each pass is the same arithmetic; only the final add into the gradient buffer may round once
    // more: <= u relative per element of its tensor's max: bound 1e-6 (16 u)
    check(e < 1e-6, "gradient accumulation: 2 x half = 1 x full, normalized max error %.2e (bound 1e-6)", e);
    free(g1);
    llama_free(&m);
}

// ----------------------------------------------------------------------------
// GaLore against galore-torch (dev/ref/make_galore_reference.py)

#define GALORE_DIR "dev/ref/galore"

// |<a_j, b_j>| for the basis vectors of two projectors: 1 when they span the same direction.
// Returns the worst |1 - |dot||, and counts the vectors whose sign differs.
static double projector_agreement(const float* a, const float* b, int side, int64_t m, int64_t n, int64_t r, int* sign_flips) {
    double worst = 0.0;
    *sign_flips = 0;
    for (int64_t j = 0; j < r; j++) {
        double dot = 0.0;
        if (side == SIDE_RIGHT) for (int64_t c = 0; c < n; c++) dot += (double)a[j * n + c] * b[j * n + c];
        else for (int64_t i = 0; i < m; i++) dot += (double)a[i * r + j] * b[i * r + j];
        if (dot < 0) (*sign_flips)++;
        double e = fabs(1.0 - fabs(dot));
        if (e > worst) worst = e;
    }
    return worst;
}

// a unit file opened, its size into *flen and its 256-int header into h
static FILE* unit_open(const char* path, int32_t* h, long* flen) {
    FILE* f = fopenCheck(path, "rb");
    fseek(f, 0, SEEK_END);
    *flen = ftell(f);
    fseek(f, 0, SEEK_SET);
    freadCheck(h, sizeof(int32_t), 256, f, path);
    return f;
}

// a table of np tensors of dims (ndim, rows, cols) each, contiguous, the first ng GaLore matrices
static void param_table_from_dims(ParamTable* pt, const int32_t (*dims)[3], int np, int ng) {
    pt->n = np;
    pt->info = (ParamInfo*)callocCheck((size_t)np, sizeof(ParamInfo));
    size_t total = 0;
    for (int i = 0; i < np; i++) {
        ParamInfo* p = &pt->info[i];
        snprintf(p->name, sizeof p->name, "param%d", i);
        p->ndim = dims[i][0]; p->rows = dims[i][1]; p->cols = dims[i][2]; p->numel = p->rows * p->cols;
        p->offset = total; p->galore = i < ng; p->layer = -1;
        total += (size_t)p->numel;
    }
    pt->total = total;
}

// the unit files' parameter dims (ndim, rows, cols each) into a table, the first ng GaLore matrices
static void unit_param_table(FILE* f, const char* path, int np, int ng, ParamTable* pt, const char* script) {
    int32_t (*d)[3] = (int32_t (*)[3])mallocCheck(sizeof(int32_t) * 3 * (size_t)np);
    for (int i = 0; i < np; i++) {
        freadCheck(d[i], sizeof(int32_t), 3, f, path);
        if (d[i][0] < 1 || d[i][0] > 2 || d[i][1] < 1 || d[i][1] > 4096 || d[i][2] < 1 || d[i][2] > 4096 || (d[i][0] == 1 && d[i][2] != 1) ||
            (i < ng && d[i][0] != 2))
            die("%s: param %d has dims (%d, %d, %d); hint: rerun %s", path, i, d[i][0], d[i][1], d[i][2], script);
    }
    param_table_from_dims(pt, d, np, ng);
    free(d);
}

// our projectors after a refresh, concatenated in table order (pn floats), as the files store them
static float* unit_projectors_copy(const Optimizer* o, size_t pn) {
    float* cp = (float*)mallocCheck(sizeof(float) * (pn ? pn : 1));
    size_t off = 0;
    for (int i = 0; i < o->n; i++) if (o->lay[i].proj_numel) { memcpy(cp + off, o->proj[i], sizeof(float) * o->lay[i].proj_numel); off += o->lay[i].proj_numel; }
    return cp;
}

// the file's projectors of nref refreshes against ours (freed): the worst 1 - |cos| of a basis
// vector, the sign flips into *flips
static double unit_projectors_compare(FILE* f, const char* path, const Optimizer* o, float** ours, int nref, int* flips) {
    double worst = 0.0;
    *flips = 0;
    for (int k = 0; k < nref; k++) {
        size_t off = 0;
        for (int i = 0; i < o->n; i++) {
            const TensorLayout* l = &o->lay[i];
            if (!l->proj_numel) continue;
            float* rp = (float*)mallocCheck(sizeof(float) * l->proj_numel);
            freadCheck(rp, sizeof(float), (size_t)l->proj_numel, f, path);
            int fl;
            double e = projector_agreement(ours[k] + off, rp, l->side, l->m, l->n, l->r, &fl);
            if (e > worst) worst = e;
            *flips += fl;
            off += l->proj_numel;
            free(rp);
        }
        free(ours[k]);
    }
    return worst;
}

// the hyperparameters all unit files store: rank h[4], gap h[5], then as float bits from h[16] lr
// (returned), beta1, beta2, eps, weight decay; h[21] is each optimizer's own scale, for the caller
static float unit_config(const int32_t* h, OptimConfig* oc, int kind) {
    memset(oc, 0, sizeof *oc);
    oc->kind = kind;
    oc->rank = h[4]; oc->update_proj_gap = h[5];
    oc->beta1 = hdr_float(h, 17); oc->beta2 = hdr_float(h, 18); oc->eps = hdr_float(h, 19);
    oc->weight_decay = hdr_float(h, 20);
    return hdr_float(h, 16);
}

// the step loop all unit files share: per step the file stores the gradients, the reference
// weights after the step and (nlim > 0) nlim reference limiter states, all float32
typedef struct {
    FILE* f;
    const char* path;
    Optimizer* o;
    const ParamTable* pt;
    int ng, nr_file, nlim;    // GaLore-style params, stored refreshes, limiter states a step
    size_t pn;                // projector floats of one refresh, all params
    float* params, *grads, *ref;
    float lim[3];             // this step's reference limiter states
    float* ours_proj[16];     // our projectors of each refresh, for unit_projectors_compare
    int nref;
    double err[64];           // this step's normalized max error of each param
} UnitRun;

// the file's size checked against the one its header implies (header, dims, p0, S x (grads,
// params, nlim limiter states), the projectors of nr_file refreshes, extra trailing floats),
// buffers for the run, the initial weights read
static void unit_run_begin(UnitRun* u, FILE* f, const char* path, long flen, Optimizer* o, const ParamTable* pt, int ng, int S, int nr_file,
                           int nlim, size_t extra, const char* script) {
    memset(u, 0, sizeof *u);
    u->f = f; u->path = path; u->o = o; u->pt = pt; u->ng = ng; u->nr_file = nr_file; u->nlim = nlim;
    for (int i = 0; i < pt->n; i++) u->pn += (size_t)o->lay[i].proj_numel;
    size_t want = 4 * (256 + 3 * (size_t)pt->n + pt->total * (1 + 2 * (size_t)S) + (size_t)nlim * S + u->pn * (size_t)nr_file + extra);
    if ((size_t)flen != want) die("%s: %ld bytes, the header implies %zu; hint: rerun %s", path, flen, want, script);
    u->params = (float*)mallocCheck(sizeof(float) * pt->total);
    u->grads = (float*)mallocCheck(sizeof(float) * pt->total);
    u->ref = (float*)mallocCheck(sizeof(float) * pt->total);
    freadCheck(u->params, sizeof(float), pt->total, f, path);
}

// step t: read the step's records, update every param, keep our projectors on a refresh step,
// each param's normalized max error against the reference into u->err
static void unit_run_step(UnitRun* u, int t, float lr, int gap) {
    const ParamTable* pt = u->pt;
    freadCheck(u->grads, sizeof(float), pt->total, u->f, u->path);
    freadCheck(u->ref, sizeof(float), pt->total, u->f, u->path);
    if (u->nlim) freadCheck(u->lim, sizeof(float), (size_t)u->nlim, u->f, u->path);
    for (int i = 0; i < pt->n; i++) optimizer_update(u->o, i, u->params + pt->info[i].offset, u->grads + pt->info[i].offset, 0, lr, t);
    if (galore_refresh_due(t, gap) && u->ng > 0) {
        if (u->nref == u->nr_file) die("%s: more refreshes than the %d stored", u->path, u->nr_file);
        u->ours_proj[u->nref++] = unit_projectors_copy(u->o, u->pn);
    }
    for (int i = 0; i < pt->n; i++)
        u->err[i] = norm_max_err(u->params + pt->info[i].offset, u->ref + pt->info[i].offset, (size_t)pt->info[i].numel);
}

// after the last step: the refresh count checked against the file's
static void unit_run_end(UnitRun* u) {
    if (u->nref != u->nr_file) die("%s: %d refreshes stored, the schedule gives %d", u->path, u->nr_file, u->nref);
}

static void unit_run_free(UnitRun* u) {
    free(u->params); free(u->grads); free(u->ref);
}

// unit.bin / unit_reverse.bin (GaLoreAdamW, magic 20241126) and unit8bit.bin (GaLoreAdamW8bit
// through the numpy model of bitsandbytes' kernels, magic 20241130): the optimizer on stored
// synthetic gradients, weights after every step and the projectors of every refresh. Only the
// first NG params of the file are GaLore params; the rest (1-D, and in unit8bit.bin the plain 2-D
// E) take the optimizer's plain path. The header's [12] says which optimizer produced the file.
static void test_galore_unit(const char* file, int proj_type) {
    char path[256];
    snprintf(path, sizeof path, GALORE_DIR "/%s", file);
    int32_t h[256];
    long flen;
    FILE* f = unit_open(path, h, &flen);
    if ((h[0] != 20241126 && h[0] != 20241130) || h[1] != 1) die("%s: bad magic; hint: rerun dev/ref/make_galore_reference.py", path);
    int np = h[2], S = h[3], nr_file = h[7], ng = h[8], kind_code = h[12];
    if (np < 1 || np > 64 || S < 1 || S > 1000 || h[4] < 1 || h[5] < 1 || nr_file < 0 || nr_file > 16 || ng < 0 || ng > np || ng > 3 ||
        kind_code < 0 || kind_code > 1 || h[6] != (proj_type == PROJ_REVERSE_STD))
        die("%s: implausible header (params %d, steps %d, refreshes %d, GaLore params %d, optimizer %d, proj_type %d); hint: rerun dev/ref/make_galore_reference.py",
            path, np, S, nr_file, ng, kind_code, h[6]);
    OptimConfig oc;
    float lr = unit_config(h, &oc, kind_code == 1 ? OPTIM_GALORE_ADAMW8BIT : OPTIM_GALORE_ADAMW);
    oc.scale = hdr_float(h, 21); oc.proj_type = proj_type;
    if (!(oc.eps > 0.0f)) oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; // the file stores the eps it ran with; 0 would mean "the default"
    ParamTable pt;
    unit_param_table(f, path, np, ng, &pt, "dev/ref/make_galore_reference.py");
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    UnitRun u;
    unit_run_begin(&u, f, path, flen, &o, &pt, ng, S, nr_file, 0, 0, "dev/ref/make_galore_reference.py");
    int sides_ok = 1, n8 = 0;
    for (int i = 0; i < np; i++) {
        const TensorLayout* l = &o.lay[i];
        if (i < ng) sides_ok &= l->side == (h[9 + i] == 0 ? SIDE_RIGHT : SIDE_LEFT);
        else sides_ok &= l->side == SIDE_NONE;
        n8 += l->state == STATE_8BIT;
    }
    double win1 = 0.0, later = 0.0;
    int win1_at = -1, later_at = -1; // the param of the worst error
    double step1 = 0.0, plain = 0.0; // the 8-bit file's extra checks
    for (int t = 1; t <= S; t++) {
        unit_run_step(&u, t, lr, oc.update_proj_gap);
        for (int i = 0; i < np; i++) {
            double e = u.err[i];
            if (t == 1 && !(e <= step1)) step1 = e;
            if (i >= ng && !(e <= plain)) plain = e;
            if (t < 1 + oc.update_proj_gap) { if (!(e <= win1)) { win1 = e; win1_at = i; } }
            else if (!(e <= later)) { later = e; later_at = i; }
        }
    }
    unit_run_end(&u);
    int nref = u.nref;
    // the reference's projectors, refresh by refresh
    int flips = 0;
    double pworst = unit_projectors_compare(f, path, &o, u.ours_proj, nref, &flips);
    fclose(f);
    char sides[256] = "";
    for (int i = 0; i < np; i++) {
        const TensorLayout* l = &o.lay[i];
        char one[64];
        snprintf(one, sizeof one, "%s%lldx%lld:%s%s", i ? " " : "", (long long)l->m, (long long)l->n,
                 l->side == SIDE_LEFT ? "left" : l->side == SIDE_RIGHT ? "right" : "full", l->state == STATE_8BIT ? "/8bit" : "");
        strncat(sides, one, sizeof sides - strlen(sides) - 1);
    }
    const int is8 = optim_is_8bit(oc.kind);
    char name[64];
    snprintf(name, sizeof name, "%s %s", OPTIM_NAMES[oc.kind], PROJ_NAMES[proj_type]);
    check(sides_ok, "%s: sides and plain tensors as the file says: %s", name, sides);
    // unit8bit.bin must exercise the 8-bit blockwise kernel on low-rank states: A, B (GaLore) and E
    if (is8) check(n8 == 3 && o.lay[0].state == STATE_8BIT && o.lay[1].state == STATE_8BIT, "%s: %d tensors with 8-bit blockwise states (want 3: both low-rank states and E)", name, n8);
    check(pworst < 1e-4, "%s: projectors of %d refreshes span the reference's (worst 1-|cos| %.1e, bound 1e-4), %d sign flips",
          name, nref, pworst, flips);
    // Bounds. The gradients are the file's, so both sides start from the same numbers; they differ
    // by the SVD (our LAPACK vs torch's) and matmul rounding. A singular vector k moves by about
    // u ||G|| / (sigma_k - sigma_{k+1}) (its sensitivity; LAPACK's SVD is backward stable): with the
    // files' spectra the smallest kept gap is >= 0.03 ||G|| (unit.bin: 2^(-k/2), k < 8;
    // unit8bit.bin: 2^(-k/24), gap 0.029 sigma_k, sigma_56 = 0.2), so entries move by ~u / 0.03 =
    // 2e-6 (the projector check above allows 1 - |cos| 1e-4 for the same reason with margin).
    // GaLoreAdamW (fp32): the update N P (or P N) then differs by ~2e-6 relative, the weights by
    // alpha lr S |N| 2e-6 = 0.25 x 1e-2 x 8 x ~3 x 2e-6 = 1.2e-7 absolute, normalized by |W|max ~0.08
    // (0.02 init, 4 sigma): 1.5e-6 within the first window: bound 1e-5; across refreshes the
    // moments carried over add the same again each window: bound 2e-5.
    // GaLoreAdamW8bit (unit8bit.bin), rule (Q): our kernel arithmetic mirrors the numpy kernel
    // model (-ffp-contract=off), so E (plain 8-bit: the same gradient on both sides, decay inside
    // the kernel) and d (32-bit) must agree bit for bit over every step: that pins the block size,
    // both maps, the absmax and the sign fix (a wrong one moves most of E's bytes). Step 1 reads no
    // quantized state (the moments start at 0), so A and B after step 1 are fp32 results: 1e-5 as
    // above; this pins the low-rank kernel call, alpha and the decay order (GaLore params decay
    // after the project-back; a lost decay would be 5e-4). From step 2 on, R = G P^T carries the
    // projectors' 2e-6 and a value near a code boundary takes the neighbouring code (1-6 of 5376
    // bytes a step were seen; replaying the file in numpy with OUR projectors reproduces our
    // weights digit for digit, so flips are the whole difference). What one flip can do: it moves
    // one element of m by one code step, <= 1/64 of the block's absmax (v: 1/128, halved by the
    // sqrt), so that element of N by <= 1.6% of the block's largest |N| (<= ~3 at these steps), and
    // its row (column) of W by alpha lr x 0.016 x 3 = 1.2e-4 a step, carried over <= 6 steps with
    // beta1 decay (sum <= 6): 7e-4, normalized by |W|max 0.08: 9e-3. Bound 1e-2 within the first
    // window (one flip in the worst position), 1.5e-2 across refreshes. How MANY weights flips move
    // is not a bound one can derive (each flip moves a whole row; the count depends on how many
    // values sit near a boundary for this LAPACK build's projectors), so it is not checked.
    double b_win1 = is8 ? 1e-2 : 1e-5, b_later = is8 ? 1.5e-2 : 2e-5;
    if (is8) {
        check(step1 < 1e-5, "%s: weights after step 1 (no quantized state read yet) vs galore-torch: normalized max error %.2e (bound 1e-5)",
              name, step1);
        check(plain == 0.0, "%s: plain tensors (8-bit E, 32-bit d) over %d steps: normalized max error %.2e (bit for bit: elementwise IEEE arithmetic on identical inputs)",
              name, S, plain);
    }
    check(win1 < b_win1, "%s: weights inside the first projector window vs galore-torch: normalized max error %.2e in param %d (bound %.2g)",
          name, win1, win1_at, b_win1);
    check(later < b_later, "%s: weights across %d refreshes (moments carried over): normalized max error %.2e in param %d (bound %.2g)",
          name, nref - 1, later, later_at, b_later);
    optimizer_free(&o);
    unit_run_free(&u); free(pt.info);
}

// 12 training steps of the tiny model with galore_adamw or galore_adamw8bit against PyTorch +
// galore-torch from the same safetensors and shard (refreshes at steps 1, 6, 11)
static void test_galore_e2e(const char* file, int kind) {
    char path[256];
    snprintf(path, sizeof path, GALORE_DIR "/%s", file);
    FILE* f = fopenCheck(path, "rb");
    int32_t h[256];
    freadCheck(h, sizeof(int32_t), 256, f, path);
    if ((h[0] != 20241127 && h[0] != 20241128) || h[1] != 1) die("%s: bad magic; hint: rerun dev/ref/make_galore_reference.py", path);
    int B = h[2], T = h[3], S = h[4];
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.rank = h[5]; oc.update_proj_gap = h[6];
    float lr = hdr_float(h, 16);
    oc.scale = hdr_float(h, 17); oc.weight_decay = hdr_float(h, 18); oc.eps = hdr_float(h, 19);
    oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.proj_type = PROJ_STD;
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    Llama m;
    llama_build(&m, &c);
    llama_load_params(&m.table, m.params, REF_DIR "/model.safetensors");
    llama_alloc_activations(&m, B, T, 0);
    if ((size_t)h[7] != m.table.total) die("%s: %d parameters, the table has %zu", path, h[7], m.table.total);
    float* ref_losses = (float*)mallocCheck(sizeof(float) * S);
    float* ref_final = (float*)mallocCheck(sizeof(float) * m.table.total);
    float* ref_mid = (float*)mallocCheck(sizeof(float) * m.table.total);
    freadCheck(ref_losses, sizeof(float), S, f, path);
    freadCheck(ref_final, sizeof(float), m.table.total, f, path);
    freadCheck(ref_mid, sizeof(float), m.table.total, f, path);
    fclose(f);
    Trainer tr;
    trainer_init(&tr, &m, &oc, 0, 1, 0.0f, NULL);
    DataLoader dl;
    dataloader_init(&dl, REF_DIR "/train.bin", B, T, 0, 0, 0, 1, c.V);
    int* inputs = (int*)mallocCheck(sizeof(int) * B * T);
    int* targets = (int*)mallocCheck(sizeof(int) * B * T);
    double lmax = 0.0, mid = 0.0, fin = 0.0;
    float first = 0.0f, last = 0.0f;
    for (int s = 0; s < S; s++) {
        float norm;
        int skipped;
        int64_t nt;
        float loss = train_step(&tr, &dl, lr, inputs, targets, &norm, &skipped, &nt);
        double d = fabs(loss - ref_losses[s]) / fabs(ref_losses[s]);
        if (!(d <= lmax)) lmax = d;
        if (s == 0) first = loss;
        last = loss;
        if (s + 1 == oc.update_proj_gap) mid = norm_max_err(m.params, ref_mid, m.table.total);
    }
    fin = norm_max_err(m.params, ref_final, m.table.total);
    const char* name = OPTIM_NAMES[kind];
    // Bounds. fp32 (galore_adamw): losses by (A), 1e-5. The weights by (A) move ~S E lr = 12 x 5.2e-6 x
    // 1e-2 absolute, normalized by |W|max ~0.08: 8e-6, plus the projectors' difference: each refresh
    // takes the SVD of a gradient that differs by E, whose kept span moves by E / (relative gap at
    // the cut); the update differs by that much relative, alpha lr S |N| x that / 0.08 = 4e-4 x E /
    // gap: the first window (no second SVD yet) 1e-4, and 5e-4 after 42 SVDs, i.e. gaps >= 1e-2
    // relative at every cut of this model's gradients (a worse cut would show as a failure here
    // first, on any CPU alike, as a rotation of the projector check's kind).
    // galore_adamw8bit: this model's GaLore matrices keep fp32 low-rank states (< 4096 elements),
    // embed_tokens and lm_head 8-bit ones (12660 elements), which (Q) may flip: one flip moves one
    // weight by <= lr x 1.6% x |N| <= 1e-2 x 0.016 x 3 = 5e-4 a step, <= 6 steps carried: 3e-3, i.e.
    // 4e-2 of |W|max: weights bound 5e-2 after step 5 and at the end (a wrong 8-bit kernel would
    // still fail test_galore_unit's bitwise E check and test_adam8bit's); a flipped weight moves
    // the loss by |dL/dw| x 3e-3 <= 1e-2 x 3e-3 = 3e-5 of a loss ~4: 7.5e-6 relative each: losses
    // bound 1e-4 (13 flips in the worst position).
    const int q8 = optim_is_8bit(kind);
    const double b_loss = q8 ? 1e-4 : 1e-5, b_mid = q8 ? 5e-2 : 1e-4, b_fin = q8 ? 5e-2 : 5e-4;
    check(lmax < b_loss, "%s e2e: %d losses %.6f -> %.6f (ref %.6f -> %.6f), max relative error %.2e (bound %.0e)", name, S, first, last,
          ref_losses[0], ref_losses[S - 1], lmax, b_loss);
    check(mid < b_mid, "%s e2e: weights after step %d (first window) normalized max error %.2e (bound %.0e)", name, oc.update_proj_gap, mid, b_mid);
    check(fin < b_fin, "%s e2e: weights after %d steps (%lld SVDs) normalized max error %.2e (bound %.0e)", name, S, (long long)tr.opt.refreshes, fin, b_fin);
    free(inputs); free(targets); free(ref_losses); free(ref_final); free(ref_mid);
    dataloader_free(&dl);
    trainer_free(&tr);
    llama_free(&m);
}

// per-layer updates against the whole-model step, clipping off: the gradients of layer l do not
// depend on the (already updated) weights above it, so the weights must agree bit for bit.
// With accumulation, per-layer accumulates in the low-rank space: equal up to rounding.
static void recompute_run(const LlamaConfig* c, const float* init, const OptimConfig* oc, int per_layer, int accum, float clip,
                          int recompute, int steps, float* losses, float* weights, float* logits, size_t* act_floats);
static const char* g_run_shard = REF_DIR "/train.bin"; // recompute_run's data (test_hf_families: a shard of its vocabulary)
static Weight8* g_run_w8 = NULL; // when set, recompute_run hands the model's INT8 state over to it (the caller frees it)
static void run_steps(const LlamaConfig* c, const OptimConfig* oc, int per_layer, int accum, int steps, float* out) {
    ParamTable pt;
    param_table_build(&pt, c);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    float* losses = (float*)mallocCheck(sizeof(float) * (size_t)steps);
    float* logits = (float*)mallocCheck(sizeof(float) * 7 * (size_t)c->V);
    size_t act;
    llama_load_params(&pt, init, REF_DIR "/model.safetensors");
    recompute_run(c, init, oc, per_layer, accum, 0.0f, 0, steps, losses, out, logits, &act);
    free(init); free(losses); free(logits);
    param_table_free(&pt);
}

// the optimizer settings of the short runs of the reference model (rank 8, refreshes every 3 steps)
static OptimConfig small_optim(int kind, int projector) {
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = kind; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[kind]; oc.weight_decay = 0.01f;
    oc.rank = 8; oc.update_proj_gap = 3; oc.scale = 0.25f; oc.proj_type = PROJ_STD; oc.projector = projector; oc.seed = 42;
    if (optim_is_apollo(kind)) apollo_config_defaults(&oc);
    return oc;
}

static void test_per_layer(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    ParamTable pt;
    param_table_build(&pt, &c);
    float* a = (float*)mallocCheck(sizeof(float) * pt.total);
    float* b = (float*)mallocCheck(sizeof(float) * pt.total);
    // (issue 15: fira_adamw, and GoLore's --proj random on both GaLore kinds)
    // APOLLO: full-rank accumulation (its update scales the raw gradient), limiter and projector draws
    int kinds[10] = {OPTIM_ADAMW, OPTIM_GALORE_ADAMW, OPTIM_GALORE_ADAMW8BIT, OPTIM_FIRA_ADAMW, OPTIM_GALORE_ADAMW, OPTIM_GALORE_ADAMW8BIT,
                     OPTIM_APOLLO_ADAMW, OPTIM_APOLLO_MINI, OPTIM_APOLLO_ADAMW8BIT, OPTIM_FIRA_ADAMW8BIT};
    int projs[10] = {PROJECTOR_SVD, PROJECTOR_SVD, PROJECTOR_SVD, PROJECTOR_SVD, PROJECTOR_RANDOM, PROJECTOR_RANDOM, PROJECTOR_SVD, PROJECTOR_SVD,
                     PROJECTOR_SVD, PROJECTOR_SVD};
    for (int k = 0; k < 10; k++) {
        OptimConfig oc = small_optim(kinds[k], projs[k]);
        char name[64];
        snprintf(name, sizeof name, "%s%s", OPTIM_NAMES[oc.kind], oc.projector == PROJECTOR_RANDOM ? " --proj random" : "");
        run_steps(&c, &oc, 0, 1, 7, a);
        run_steps(&c, &oc, 1, 1, 7, b);
        check(memcmp(a, b, sizeof(float) * pt.total) == 0, "%s: --per-layer weights after 7 steps equal the whole-model step's bit for bit", name);
        run_steps(&c, &oc, 0, 2, 7, a);
        run_steps(&c, &oc, 1, 2, 7, b);
        // the sums differ only in rounding order (P^T(G1 + G2) vs P^T G1 + P^T G2, and BLAS's beta = 1
        // accumulation vs a separate add): E relative to each sum's terms. By (A) the weights then
        // differ by S lr E x (cancellation: an entry's terms over its value) / |W|max =
        // 7 x 1e-2 x 5.2e-6 x X / 0.08 = 4.6e-6 X: bound 2e-4 admits entries that cancel 44-fold
        // (the reference BLAS, which sums naively, gives the largest errors: ~4e-5). A wrong
        // accumulation (a lost micro-batch, a double count) is off by O(1). 8-bit states, (Q): a
        // flip moves a weight by one code step's worth of update, <= 9e-3 normalized (as in
        // test_galore_unit): bound 1e-2. Fira accumulates full gradients in both modes (its residual
        // needs G), which differ by the same rounding order only; its residual is a larger part of
        // the step than GaLore's update (test_fira_unit) but carries the same relative error: the same bound.
        double e = norm_max_err(b, a, pt.total), bound = optim_is_8bit(oc.kind) ? 1e-2 : 2e-4;
        check(e < bound, "%s: --per-layer --grad-accum 2 (%s accumulation) vs whole-model: normalized max error %.2e after 7 steps (bound %.0e)",
              name, optim_is_fira(oc.kind) || optim_is_apollo(oc.kind) ? "full" : "low-rank", e, bound);
    }
    free(a); free(b);
    param_table_free(&pt);
}

// (run_steps' runner too: recompute 0, no clipping)
// --recompute 1 against 0 from the same init and data: forward keeps only the layer inputs and
// backward recomputes each layer with the same calls in the same order on the same values (same
// thread count), so losses, final weights and a forward-only pass (sampling's B 1, shorter T) must
// agree bit for bit; no tolerance. The model: the reference's GQA config with 3 layers (so the
// backward recomputes two layers into the one scratch layer and reuses the forward's for the last).
static void recompute_run(const LlamaConfig* c, const float* init, const OptimConfig* oc, int per_layer, int accum, float clip,
                          int recompute, int steps, float* losses, float* weights, float* logits, size_t* act_floats) {
    Llama m;
    llama_build(&m, c);
    memcpy(m.params, init, sizeof(float) * m.table.total);
    llama_weights_int8(&m, oc->w8_group, oc->w8_embed); // --weights int8 (oc's w8_group > 0): weights returns the dequantized ones
    int B = 3, T = 13;
    llama_alloc_activations(&m, B, T, recompute);
    Trainer tr;
    trainer_init(&tr, &m, oc, per_layer, accum, clip, NULL);
    DataLoader dl;
    dataloader_init(&dl, g_run_shard, B, T, 0, 0, 0, 1, c->V);
    int inputs[39], targets[39];
    for (int s = 0; s < steps; s++) {
        float norm;
        int skipped;
        int64_t nt;
        losses[s] = train_step(&tr, &dl, 1e-2f, inputs, targets, &norm, &skipped, &nt);
    }
    llama_forward(&m, inputs, NULL, 1, 7); // (1, 7) logits
    memcpy(logits, m.acts.logits, sizeof(float) * 7 * c->V);
    memcpy(weights, m.params, sizeof(float) * m.table.total);
    *act_floats = m.act_size;
    if (g_run_w8) { *g_run_w8 = m.w8; memset(&m.w8, 0, sizeof m.w8); }
    dataloader_free(&dl);
    trainer_free(&tr);
    llama_free(&m);
}

// layerhook.h's control flow, on counting ops: groups of 2 tensors, tensor 1 low-rank (between
// refreshes), the others accumulated in full (a refresh step's accumulators for the GaLore ones).
// A micro-batch after the first going non-finite leaves no accumulator held (finding 5 of issue
// 16); a NaN norm in a group updates the groups before it and the tensors before it in its group,
// and nothing after. Both ways of checking: on the host (the CPU engine) and deferred, as the GPU
// does it (issue 16 item 4): the verdict kept in "device" flags, every update issued and skipped
// where the device's flag says so, the flags merged once at the end of the step.
typedef struct {
    int held[6], updated[6], projected[6], reduced, zeroed, nan_at;
    int deferred, issued[6], skip[6];
    LayerHookFlags dev;
} HookFake;
static int fake_lowrank(void* ctx, int i, int64_t t) { (void)ctx; (void)t; return i == 1; }
static void fake_project(void* ctx, int i, float beta) { ((HookFake*)ctx)->projected[i] += beta == 0.0f ? 1 : 10; }
static void fake_accumulate(void* ctx, int i, int first) { HookFake* f = (HookFake*)ctx; if (first) f->held[i] = 1; }
static void fake_reduce(void* ctx, const int* idx, const int* src, int k) { (void)idx; (void)src; ((HookFake*)ctx)->reduced += k; }
static void fake_check(void* ctx, const int* idx, const int* src, int k, LayerHookFlags* fl, int* go) {
    HookFake* f = (HookFake*)ctx;
    for (int j = 0; j < k; j++) {
        double ss = idx[j] == f->nan_at ? NAN : 1.0 + (src[j] == SRC_LOWRANK);
        if (!f->deferred) { go[j] = layer_hook_check(fl, ss); continue; }
        f->skip[idx[j]] = !layer_hook_check(&f->dev, ss); // the GPU's check kernel
        go[j] = 1;
    }
}
static void fake_update(void* ctx, int i, int src, float lr, int64_t t) {
    (void)src; (void)lr; (void)t;
    HookFake* f = (HookFake*)ctx;
    f->issued[i]++;
    if (f->deferred && f->skip[i]) return; // the update kernels' early exit
    f->updated[i]++;
}
static void fake_release(void* ctx, int i) { ((HookFake*)ctx)->held[i] = 0; }
static void fake_zero(void* ctx, int first, int last) { ((HookFake*)ctx)->zeroed += last - first + 1; }

static void test_layer_hook(void) {
    for (int deferred = 0; deferred <= 1; deferred++) {
        const char* how = deferred ? "checked on the device (deferred)" : "checked on the host";
        HookFake f;
        LayerHookOps o = {&f, NULL, fake_lowrank, fake_project, fake_accumulate, fake_reduce, fake_check, fake_update, fake_release, fake_zero};
        LayerHookStep st;
        // step 1: micro-batch 0 runs every group (backward order), micro-batch 1's loss is non-finite
        memset(&f, 0, sizeof f); f.nan_at = -1; f.deferred = deferred;
        memset(&st, 0, sizeof st); st.grad_accum = 2; st.t = 1;
        for (int g = 2; g >= 0; g--) layer_hook_run(&o, &st, 2 * g, 2 * g + 1);
        int held0 = 0;
        for (int i = 0; i < 6; i++) held0 += f.held[i];
        st.f.bad = 1; // what train_step sets when a micro-batch's loss is non-finite; backward is not run
        if (deferred) layer_hook_merge(&st.f, &f.dev);
        layer_hook_end_step(&o, &st, 6);
        int held1 = 0, upd1 = 0;
        for (int i = 0; i < 6; i++) { held1 += f.held[i]; upd1 += f.updated[i]; }
        check(held0 == 5 && held1 == 0 && upd1 == 0 && f.projected[1] == 1 && f.zeroed == 6 && st.f.bad && !st.f.updated,
              "per-layer hook, %s: a non-finite micro-batch 1 frees the %d accumulators micro-batch 0 filled (%d left), updates nothing",
              how, held0, held1);
        // step 2: both micro-batches, data parallel; tensor 3's norm (the middle group's second) is NaN
        memset(&f, 0, sizeof f); f.nan_at = 3; f.deferred = deferred;
        memset(&st, 0, sizeof st); st.grad_accum = 2; st.dp = 1; st.t = 1;
        for (int micro = 0; micro < 2; micro++) {
            st.micro = micro;
            for (int g = 2; g >= 0; g--) layer_hook_run(&o, &st, 2 * g, 2 * g + 1);
        }
        // the host stops the step's work at the NaN; the deferred way does not see it, so it goes on
        // projecting, reducing and issuing (the work a GPU does anyway while the host is not waiting)
        int want[6] = {0, 0, 1, 0, 1, 1}, want_issued = deferred ? 6 : 3, want_reduced = deferred ? 6 : 4, want_proj = deferred ? 11 : 1;
        int same = 1, issued = 0;
        for (int i = 0; i < 6; i++) { same &= f.updated[i] == want[i]; issued += f.issued[i]; }
        // held until the step ends: the host never issued the NaN tensor's and the skipped group's
        // updates; the deferred way issued them all and released each after its (skipped) update
        int held_bad = f.held[3] + f.held[0], want_held = deferred ? 0 : 2;
        int host_bad = st.f.bad;
        if (deferred) layer_hook_merge(&st.f, &f.dev);
        layer_hook_end_step(&o, &st, 6);
        int held_end = 0;
        for (int i = 0; i < 6; i++) held_end += f.held[i];
        check(same && st.f.bad && host_bad == !deferred && st.f.updated && st.f.sumsq == 3.0 && f.reduced == want_reduced &&
              f.projected[1] == want_proj && issued == want_issued && held_bad == want_held && held_end == 0,
              "per-layer hook, %s: a NaN norm updates the groups before it and the tensors before it in its group (%d %d %d %d %d %d), "
              "%d updates issued, reduces each final group, releases every accumulator by the end of the step", how, f.updated[0],
              f.updated[1], f.updated[2], f.updated[3], f.updated[4], f.updated[5], issued);
    }
}

static void test_recompute(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    c.L = 3;
    ParamTable pt;
    param_table_build(&pt, &c);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    llama_init_params(&pt, init, 7);
    float* wa = (float*)mallocCheck(sizeof(float) * pt.total);
    float* wb = (float*)mallocCheck(sizeof(float) * pt.total);
    float *ga = (float*)mallocCheck(sizeof(float) * 7 * c.V), *gb = (float*)mallocCheck(sizeof(float) * 7 * c.V);
    enum { S = 5 };
    float la[S], lb[S];
    size_t fa = 0, fb = 0;
    // whole-model AdamW with clipping and accumulation; per-layer 8-bit GaLore (refreshes at 1, 3, 5)
    struct { int kind, per_layer, accum; float clip; } runs[3] = {
        {OPTIM_ADAMW, 0, 2, 1.0f}, {OPTIM_GALORE_ADAMW8BIT, 1, 1, 0.0f}, {OPTIM_GALORE_ADAMW, 1, 2, 0.0f},
    };
    for (int k = 0; k < 3; k++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = runs[k].kind; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; oc.weight_decay = 0.01f;
        oc.rank = 8; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
        recompute_run(&c, init, &oc, runs[k].per_layer, runs[k].accum, runs[k].clip, 0, S, la, wa, ga, &fa);
        recompute_run(&c, init, &oc, runs[k].per_layer, runs[k].accum, runs[k].clip, 1, S, lb, wb, gb, &fb);
        int same_l = memcmp(la, lb, sizeof la) == 0, same_w = memcmp(wa, wb, sizeof(float) * pt.total) == 0;
        int same_g = memcmp(ga, gb, sizeof(float) * 7 * c.V) == 0;
        check(same_l && same_w && same_g && la[S - 1] < la[0],
              "--recompute 1 vs 0, %s%s, grad-accum %d: %d losses (%.6f -> %.6f) %s, weights %s, forward-only logits (B 1, T 7) %s",
              OPTIM_NAMES[oc.kind], runs[k].per_layer ? " per-layer" : "", runs[k].accum, S, la[0], la[S - 1],
              same_l ? "bit-identical" : "DIFFER", same_w ? "bit-identical" : "DIFFER", same_g ? "bit-identical" : "DIFFER");
    }
    // the allocation shrinks by exactly what the plan says: (L - 1) layers of ln1 .. act
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_ADAMW;
    MemPlan p0, p1;
    memplan_build(&p0, &c, &oc, 0, 1, 3, 13, 0);
    memplan_build(&p1, &c, &oc, 0, 1, 3, 13, 1);
    double saved_alloc = 4.0 * ((double)fa - (double)fb), saved_plan = p0.total - p1.total;
    size_t C = c.C, H = c.H, KV = (size_t)llama_kvdim(&c), BT = 39;
    double by_hand = 4.0 * (c.L - 1) * (BT * (4 * C + 2 + C + 2 * KV + 3 * H) + 3 * c.NH * 13 * 13);
    check(saved_alloc > 0 && saved_alloc == saved_plan && saved_plan == by_hand,
          "--recompute 1 allocates %.0f bytes less activation memory, the plan %.0f, by hand (L-1 layers of ln1..act) %.0f",
          saved_alloc, saved_plan, by_hand);
    free(init); free(wa); free(wb); free(ga); free(gb);
    param_table_free(&pt);
}

// the GPU plan (memplan.h) is the table train_llama.cu allocates by walking: every row is its id,
// the rows the trainer allocates itself (GPU_MODEL_ROWS, GPU_TRAINER_ROWS) are exactly the rows
// that are neither a library's nor transient, each at most once; the sums cover the rows; the
// sub-allocations carved from a row (optimizer state per tensor, accumulators by accum_layout,
// activations) add up to it; --recompute saves what a hand count says. On the CPU: train_llamacu
// checks the library rows against the libraries at startup (gpu_trainer_init).
static void test_gpu_memplan(const LlamaConfig* c7) {
    // Fira and APOLLO: the norm-growth limiter row (GR_LIM) against the layout
    int kinds[5] = {OPTIM_ADAMW, OPTIM_GALORE_ADAMW, OPTIM_GALORE_ADAMW8BIT, OPTIM_FIRA_ADAMW, OPTIM_APOLLO_ADAMW};
    int cases = 0, ok = 1, lim_rows = 0, w8_cases = 0;
    for (int k = 0; k < 5; k++)
        for (int v = 0; v < 16; v++) {
            OptimConfig oc;
            memset(&oc, 0, sizeof oc);
            oc.kind = kinds[k]; oc.rank = 128; oc.update_proj_gap = 200; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
            LlamaConfig c;
            llama_config_resolve(&c, "llama_60m");
            GpuPlanArgs a;
            memset(&a, 0, sizeof a);
            a.c = &c; a.oc = (v & 8) ? NULL : &oc; a.B = 3; a.T = 37; a.per_layer = v & 1; a.grad_accum = (v & 2) ? 4 : 1;
            a.master = (v >> 2) & 1; a.recompute = (v >> 1) & 1; a.cudnn = ((v >> 3) ^ v) & 1; a.dp = (v >> 2) & 1;
            a.w8_group = !a.master && (v & 1) ? 100 : 0; a.w8_embed = a.w8_group && (v & 8); // --weights int8 (#25)
            w8_cases += a.w8_group > 0;
            MemPlan mp;
            gpu_memplan_build(&mp, &a);
            cases++;
            int walked[GR_NUM] = {0};
            for (int r = 0; r < GPU_ROW_RANGES; r++)
                for (int pass = 0; pass < 2; pass++) {
                    const int* rg = pass ? GPU_TRAINER_ROWS[r] : GPU_MODEL_ROWS[r];
                    for (int i = rg[0]; i <= rg[1]; i++) walked[i]++;
                }
            double total = 0.0, state = 0.0, transient = 0.0;
            ok &= mp.n == GR_NUM;
            for (int i = 0; i < GR_NUM; i++) {
                const MemItem* it = &mp.items[i];
                int own = !(it->flags & (MEM_LIBRARY | MEM_TRANSIENT));
                ok &= it->name[0] != 0 && walked[i] == own; // every row named, allocated by the walk once iff it is ours
                for (int j = 0; j < i; j++) ok &= strcmp(mp.items[j].name, it->name) != 0 || it->bytes == 0;
                if (it->flags & MEM_TRANSIENT) transient += it->bytes;
                else { total += it->bytes; if (it->flags & MEM_STATE) state += it->bytes; }
            }
            ok &= total == mp.total && state == mp.state && transient == mp.transient;
            // the optimizer state as gpu_optim_init carves it, tensor by tensor
            ParamTable pt;
            param_table_build(&pt, &c);
            OptimConfig o2 = oc;
            if (!a.oc) { memset(&o2, 0, sizeof o2); o2.kind = OPTIM_ADAMW; }
            int mom_f32 = a.master || optim_is_8bit(o2.kind);
            double mom = 0, q8 = 0, am = 0, pj = 0, lm = 0;
            TensorLayout* lay = (TensorLayout*)mallocCheck(sizeof(TensorLayout) * (size_t)pt.n);
            for (int i = 0; i < pt.n; i++) {
                tensor_layout(&lay[i], &pt.info[i], &o2);
                if (lay[i].state == STATE_8BIT) { q8 += 2.0 * lay[i].snumel; am += 2.0 * 4 * lay[i].nblocks; }
                else mom += 2.0 * (mom_f32 ? 4 : 2) * lay[i].snumel;
                pj += 2.0 * lay[i].proj_numel;
                lm += 4.0 * lay[i].limiter;
            }
            ok &= mom == mp.items[GR_MOMENTS].bytes && q8 == mp.items[GR_Q8].bytes && am == mp.items[GR_ABSMAX].bytes && pj == mp.items[GR_PROJ].bytes;
            ok &= lm == mp.items[GR_LIM].bytes;
            lim_rows += lm > 0;
            // INT8: codes and groups of the quantized tensors, the bf16 row the rest; the dequant
            // scratch the largest fused run (q|k|v, gate|up, or the embedding), the update scratch
            // the largest quantized tensor in fp32
            double codes = 0, groups = 0, C = c.C, H = c.H, QKV = C * (llama_qdim(&c) + 2 * llama_kvdim(&c)), VC = (double)c.V * C;
            for (int i = 0; i < pt.n; i++)
                if (a.w8_group && weight8_applies(&pt.info[i], a.w8_embed)) { codes += pt.info[i].numel; groups += weight8_groups(pt.info[i].numel, a.w8_group); }
            double deq = a.w8_group ? fmax(fmax(QKV, 2 * H * C), a.w8_embed ? VC : 0.0) : 0.0;
            double upd = a.w8_group && a.oc ? fmax(H * C, a.w8_embed ? VC : 0.0) : 0.0;
            ok &= mp.items[GR_W8_CODES].bytes == codes && mp.items[GR_W8_GROUPS].bytes == 5.0 * groups && mp.items[GR_W8_DEQ].bytes == 2.0 * deq &&
                  mp.items[GR_W8_UPD].bytes == 4.0 * upd;
            ok &= mp.items[GR_WEIGHTS].bytes == 2.0 * (pt.total - codes) && mp.items[GR_MASTER].bytes == (a.master ? 4.0 * pt.total : 0.0);
            // the accumulators as gpu_trainer_init carves them
            int need_full = a.per_layer && a.grad_accum > 1, need_low = need_full || a.dp;
            int64_t* off = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)pt.n);
            size_t nfull, nlow;
            accum_layout(&pt, lay, need_full, off, off + pt.n, &nfull, &nlow);
            ok &= mp.items[GR_ACC_FULL].bytes == (need_full ? 2.0 * nfull : 0.0) && mp.items[GR_ACC_LOW].bytes == (need_low ? 2.0 * nlow : 0.0);
            size_t ab[A_NUM];
            gpu_act_sizes(&c, a.B, a.T, gpu_attn_saved_bytes(&c, a.B, a.T, a.cudnn), ab, a.recompute);
            for (int i = 0; i < A_NUM; i++) ok &= mp.items[GR_ACT0 + i].bytes == (double)ab[i] && ab[i] % 256 == 0;
            ok &= mp.items[GR_SOLVER_WS].bytes > 0 ? (mp.items[GR_SOLVER_WS].flags & MEM_QUERIED) != 0 : o2.kind == OPTIM_ADAMW || optim_is_apollo(o2.kind); // APOLLO: no SVD
            free(off); free(lay);
            param_table_free(&pt);
        }
    check(ok && lim_rows > 0 && w8_cases > 0, "GPU memory plan: %d configurations, each row once in the allocator's walk or a library's/transient, "
          "sums and carved sub-allocations consistent (%d with a norm-growth limiter row, %d with INT8 weights)", cases, lim_rows, w8_cases);
    // --recompute: llama_7b 16 x 256 (every buffer a multiple of 256 bytes, so no alignment padding)
    // saves L-1 layers of ln1, atty, res2, ln2 (C), qkv (C+2KV), gu | act (3H) in bf16, rstd1/2 in
    // fp32 and cuDNN's softmax stats (B, NH, T) fp32
    GpuPlanArgs a;
    memset(&a, 0, sizeof a);
    a.c = c7; a.B = 16; a.T = 256; a.per_layer = 1; a.grad_accum = 1; a.cudnn = 1;
    MemPlan p0, p1;
    gpu_memplan_build(&p0, &a);
    a.recompute = 1;
    gpu_memplan_build(&p1, &a);
    double BT = 16.0 * 256, C = c7->C, H = c7->H, KV = (double)c7->NKV * (c7->C / c7->NH);
    double by_hand = (c7->L - 1) * (BT * (2 * (4 * C + C + 2 * KV + 3 * H) + 2 * 4) + 16.0 * c7->NH * 256 * 4);
    check(fabs((p0.total - p1.total) - by_hand) < 1.0, "GPU plan llama_7b 16 x 256: --recompute 1 saves %.2f MiB of activations (by hand %.2f MiB)",
          (p0.total - p1.total) / 1048576.0, by_hand / 1048576.0);
    // AdamW, pure bf16: 2 bytes of weights and 4 of moments per parameter
    a.recompute = 0; a.per_layer = 0;
    gpu_memplan_build(&p0, &a);
    check(fabs(p0.items[GR_WEIGHTS].bytes - 6738415616.0 * 2) < 1.0 && fabs(p0.state - 6738415616.0 * 6) < 1.0,
          "GPU plan llama_7b: bf16 weights %.0f bytes, weights + bf16 moments %.0f bytes (6 per parameter)", p0.items[GR_WEIGHTS].bytes, p0.state);
    // #25's targets: llama_7b 1 x 256, --weights int8 --per-layer 1 --recompute 1: apollo_mini at most
    // 9 GiB, galore_adamw8bit rank 1024 at most 14 GiB planned (the rows queried at startup as estimated)
    const int kinds7[2] = {OPTIM_APOLLO_MINI, OPTIM_GALORE_ADAMW8BIT};
    const double goal7[2] = {9.0, 14.0};
    for (int k = 0; k < 2; k++) {
        OptimConfig oc;
        memset(&oc, 0, sizeof oc);
        oc.kind = kinds7[k]; oc.rank = 1024; oc.update_proj_gap = 200; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
        apollo_config_defaults(&oc); // apollo_mini: rank 1
        oc.w8_group = 128;
        memset(&a, 0, sizeof a);
        a.c = c7; a.oc = &oc; a.B = 1; a.T = 256; a.per_layer = 1; a.grad_accum = 1; a.recompute = 1; a.cudnn = 1; a.w8_group = 128;
        gpu_memplan_build(&p0, &a);
        check(p0.total / GIB <= goal7[k], "GPU plan llama_7b 1 x 256 %s --weights int8 --per-layer 1 --recompute 1: %.3f GiB (goal <= %.0f GiB)",
              OPTIM_NAMES[kinds7[k]], p0.total / GIB, goal7[k]);
    }
}

// the memory accounting: the allocation matches the plan, and llama_7b's plan is computed
// without allocating
static void test_memplan(void) {
    LlamaConfig c;
    llama_config_resolve(&c, "llama_7b");
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW8BIT; oc.rank = 1024; oc.update_proj_gap = 500; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    MemPlan mp;
    GpuPlanArgs ga;
    memset(&ga, 0, sizeof ga);
    ga.c = &c; ga.oc = &oc; ga.B = 1; ga.T = 256; ga.per_layer = 1; ga.grad_accum = 1; ga.cudnn = 1;
    gpu_memplan_build(&mp, &ga);
    double est = mp.state / 1e9;
    printf("     llama_7b galore_adamw8bit r 1024 per-layer, bf16: weights + optimizer state %.2f GB, with gradients %.2f GB\n", est,
           (est * 1e9 + mp.items[GR_GRADS].bytes) / 1e9);
    // by hand: bf16 weights 6738415616 x 2; 8-bit m, v of embed + lm_head (2 x 131072000 x 2 B) and of
    // each layer's low-rank states (q,k,v,o 4096x1024, gate/up 11008x1024, down 1024x11008 = 50593792
    // elements, x 2 B, x 32 layers); absmax 8 B per 256 elements of those; the 65 norms (4096
    // elements: 8-bit, 8192 + 16 x 8 B each); bf16 projectors 7 x 4096 x 1024 per layer
    double want = 6738415616.0 * 2 + 2.0 * 131072000 * 2 + 32.0 * 50593792 * 2 + 262144000.0 / 256 * 8 +
                  32.0 * 50593792 / 256 * 8 + 65.0 * (4096 * 2 + 16 * 8) + 32.0 * 7 * 4194304 * 2;
    check(fabs(est * 1e9 - want) < 1.0, "llama_7b 8-bit GaLore GPU plan: weights + state %.0f bytes, hand count %.0f", est * 1e9, want);
    // per-layer gradient buffer: the largest update group, the embedding or lm_head (32000 x 4096
    // bf16), not a whole layer (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096 elements: 386 MiB)
    check(strstr(mp.items[GR_GRADS].name, "gradients") && mp.items[GR_GRADS].bytes == 32000.0 * 4096 * 2,
          "llama_7b per-layer gradient buffer %.0f bytes (%s), hand count %.0f (lm_head)", mp.items[GR_GRADS].bytes, mp.items[GR_GRADS].name,
          32000.0 * 4096 * 2);
    test_gpu_memplan(&c);
    // the CPU optimizer allocates exactly what the plan counts for its state
    LlamaConfig t;
    llama_config_from_json(&t, REF_DIR "/config.json");
    ParamTable pt;
    param_table_build(&pt, &t);
    oc.rank = 8;
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    memplan_build(&mp, &t, &oc, 0, 1, 3, 13, 0);
    double planned = 0.0;
    for (int i = 0; i < mp.n; i++) if (strstr(mp.items[i].name, "moments") || strstr(mp.items[i].name, "absmax") || strcmp(mp.items[i].name, "projectors") == 0) planned += mp.items[i].bytes;
    double allocated = 0.0;
    for (int i = 0; i < o.n; i++) {
        const TensorLayout* l = &o.lay[i];
        allocated += l->state == STATE_8BIT ? 2.0 * l->snumel + 8.0 * l->nblocks : 8.0 * l->snumel;
        allocated += 4.0 * l->proj_numel;
    }
    check(planned == allocated, "memory plan: optimizer state %.0f bytes planned, %.0f allocated", planned, allocated);
    // and the activations (with the logits) it allocates, with and without --recompute
    for (int rc = 0; rc <= 1; rc++) {
        Llama m;
        llama_build(&m, &t);
        llama_alloc_activations(&m, 3, 13, rc);
        memplan_build(&mp, &t, &oc, 0, 1, 3, 13, rc);
        double pa = 0.0;
        for (int i = 0; i < mp.n; i++) if (strncmp(mp.items[i].name, "activations", 11) == 0 || strcmp(mp.items[i].name, "logits") == 0) pa += mp.items[i].bytes;
        check(pa == 4.0 * m.act_size, "memory plan: activations + logits %.0f bytes planned, %.0f allocated (--recompute %d)", pa, 4.0 * m.act_size, rc);
        llama_free(&m);
    }
    optimizer_free(&o);
    param_table_free(&pt);
}

// G (m x n row-major) = U diag(sigma) V^T with random orthonormal U, V (QR of Gaussian matrices)
// and sigma_i = 1 / (1 + i) (harmonic: decays, but slowly enough that neighbouring vectors are
// close) or 0.7^i (geometric: well separated)
static void svd_synthetic(float* G, int m, int n, int geometric, uint64_t seed) {
    int k = m < n ? m : n, big = m > n ? m : n;
    Rng rng;
    rng_init(&rng, seed);
    float* U = (float*)mallocCheck(sizeof(float) * (size_t)m * k); // (m, k) column-major
    float* V = (float*)mallocCheck(sizeof(float) * (size_t)n * k); // (n, k) column-major, columns scaled by sigma
    for (size_t i = 0; i < (size_t)m * k; i++) U[i] = (float)rng_normal(&rng);
    for (size_t i = 0; i < (size_t)n * k; i++) V[i] = (float)rng_normal(&rng);
    int lw = galore_qr_lwork(big, k);
    float* work = (float*)mallocCheck(sizeof(float) * (size_t)lw);
    float* tau = (float*)mallocCheck(sizeof(float) * (size_t)k);
    galore_orthonormalize(U, m, k, tau, work, lw);
    galore_orthonormalize(V, n, k, tau, work, lw);
    for (int i = 0; i < k; i++) {
        float sg = (float)(geometric ? pow(0.7, i) : 1.0 / (1.0 + i));
        for (int b = 0; b < n; b++) V[b + (size_t)i * n] *= sg;
    }
    // row-major G (m, n) is column-major G^T (n, m) = V diag(sigma) U^T
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0f, V, n, U, m, 0.0f, G, n);
    free(U); free(V); free(work); free(tau);
}

// ||G P^T||_F^2 (right) or ||P^T G||_F^2 (left): the energy of G the projector keeps
static double svd_captured(const float* G, const float* P, int m, int n, int r, int side) {
    size_t nr = side == SIDE_RIGHT ? (size_t)m * r : (size_t)r * n;
    float* R = (float*)mallocCheck(sizeof(float) * nr);
    if (side == SIDE_RIGHT) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r, n, 1.0f, G, n, P, n, 0.0f, R, r);
    else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, n, m, 1.0f, P, r, G, n, 0.0f, R, n);
    double e = sumsq(R, nr);
    free(R);
    return e;
}

// the projector's vectors as the columns of a column-major (len, r) matrix (a copy)
static float* svd_vectors(const float* P, int side, int m, int n, int r) {
    int len = side == SIDE_RIGHT ? n : m;
    float* V = (float*)mallocCheck(sizeof(float) * (size_t)len * r);
    for (int j = 0; j < r; j++)
        for (int i = 0; i < len; i++) V[i + (size_t)j * len] = side == SIDE_RIGHT ? P[(size_t)j * n + i] : P[(size_t)i * r + j];
    return V;
}

// the refresh through a one-tensor Optimizer (galore_refresh and its dispatch), for this --svd
static void svd_refresh(float* P, const float* G, int m, int n, int r, int proj_type, int svd, TensorLayout* lay) {
    ParamInfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ndim = 2; pi.rows = m; pi.cols = n; pi.numel = (size_t)m * n; pi.galore = 1;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW; oc.rank = r; oc.update_proj_gap = 10; oc.scale = 0.25f; oc.proj_type = proj_type; oc.svd = svd;
    tensor_layout(lay, &pi, &oc);
    Optimizer o;
    memset(&o, 0, sizeof o);
    int has = 0;
    o.cfg = oc; o.n = 1; o.lay = lay; o.proj = &P; o.has_proj = &has;
    galore_refresh(&o, 0, G);
}

// the exact refresh runs sgesdd on one BLAS thread and must give the run its threads back: with
// OpenBLAS's OpenMP build, openblas_set_num_threads(1) also sets OpenMP's count, and the refresh
// used to restore from that count (1), leaving every later matmul and loop on one core
static void test_refresh_threads(void) {
#ifdef _OPENMP
    int before = omp_get_max_threads() < 2 ? 2 : omp_get_max_threads();
    omp_set_num_threads(before);
    if (openblas_set_num_threads) openblas_set_num_threads(before);
    int m = 40, n = 24, r = 4;
    float* G = (float*)mallocCheck(sizeof(float) * (size_t)m * n);
    float* P = (float*)mallocCheck(sizeof(float) * (size_t)n * r);
    Rng rng; rng_init(&rng, 3);
    for (int k = 0; k < m * n; k++) G[k] = (float)rng_normal(&rng);
    TensorLayout lay;
    svd_refresh(P, G, m, n, r, PROJ_RIGHT, SVD_EXACT, &lay);
    int after = omp_get_max_threads();
    check(after == before, "an exact (sgesdd) projector refresh leaves the run's %d threads as they were (after: %d; BLAS %s)", before, after,
          !openblas_get_parallel ? "without openblas_get_parallel" : openblas_get_parallel() == 2 ? "OpenBLAS, OpenMP build" :
          openblas_get_parallel() == 1 ? "OpenBLAS, pthreads build" : "OpenBLAS, sequential");
    free(G); free(P);
#endif
}

// --svd: the randomized refresh (galore_range_finder) against the exact one (sgesdd) on synthetic
// gradients, galore_gaussian against libm's Box-Muller, and galore_svd_pick's rule
static void test_galore_svd(void) {
    // galore_gaussian: the polynomial ln and cos against libm in double from the same two
    // uniforms, and the first two moments of 2^20 draws
    {
        int nd = 1 << 20;
        uint64_t seed = galore_svd_seed(3, 1);
        double worst = 0.0, sum = 0.0, sum2 = 0.0;
        int same_other_seed = 0;
        for (int t = 0; t < nd; t++) {
            float z = galore_gaussian(seed, (uint64_t)t);
            uint64_t h = galore_mix64(seed + ((uint64_t)t + 1) * 0x9E3779B97F4A7C15ULL);
            double u1 = (double)((h >> 40) + 1) / 16777216.0, u2 = (double)((h >> 16) & 0xFFFFFF) / 16777216.0;
            double zr = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
            worst = fmax(worst, fabs((double)z - zr));
            sum += z; sum2 += (double)z * z;
            same_other_seed += galore_gaussian(galore_svd_seed(3, 2), (uint64_t)t) == z;
        }
        double mean = sum / nd, var = sum2 / nd - mean * mean;
        // fp32: ~25 roundings of values up to 5.8, a few 1e-7 each: 4e-6 leaves room; the moments of
        // 2^20 draws scatter by ~1/sqrt(2^20) = 1e-3 (mean) and ~1.4e-3 (variance): 5e-3 bounds
        check(worst < 4e-6 && fabs(mean) < 5e-3 && fabs(var - 1.0) < 5e-3 && same_other_seed < 100,
              "galore_gaussian: max |z - libm Box-Muller| %.2e (bound 4e-6), 2^20 draws mean %.2e var %.5f (bounds 5e-3), "
              "%d equal draws with the next round's seed", worst, mean, var, same_other_seed);
    }
    // the projectors, both shapes x both sides, r 16 (sketch width 24)
    int shapes[2][2] = {{200, 120}, {120, 300}};
    int sides[2] = {PROJ_LEFT, PROJ_RIGHT};
    for (int sh = 0; sh < 2; sh++) {
        for (int sd = 0; sd < 2; sd++) {
            for (int geo = 0; geo <= 1; geo++) {
                int m = shapes[sh][0], n = shapes[sh][1], r = 16;
                float* G = (float*)mallocCheck(sizeof(float) * (size_t)m * n);
                svd_synthetic(G, m, n, geo, 100 + 10 * sh + sd);
                TensorLayout le, lr;
                float* pe = (float*)mallocCheck(sizeof(float) * (size_t)(m > n ? m : n) * r);
                float* pr = (float*)mallocCheck(sizeof(float) * (size_t)(m > n ? m : n) * r);
                float* pr2 = (float*)mallocCheck(sizeof(float) * (size_t)(m > n ? m : n) * r);
                svd_refresh(pe, G, m, n, r, sides[sd], SVD_EXACT, &le);
                svd_refresh(pr, G, m, n, r, sides[sd], SVD_RANDOMIZED, &lr);
                int side = lr.side, len = side == SIDE_RIGHT ? n : m;
                galore_range_finder(G, m, n, r, side, galore_svd_seed(0, 0), pr2);
                int same = memcmp(pr, pr2, sizeof(float) * (size_t)lr.proj_numel) == 0;
                // orthonormal: P P^T (right) / P^T P (left) = I
                float* Vr = svd_vectors(pr, side, m, n, r);
                float* Ve = svd_vectors(pe, side, m, n, r);
                float* gram = (float*)mallocCheck(sizeof(float) * r * r);
                cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, r, r, len, 1.0f, Vr, len, Vr, len, 0.0f, gram, r);
                double orth = 0.0;
                for (int a = 0; a < r; a++) for (int b = 0; b < r; b++) orth = fmax(orth, fabs(gram[a + b * r] - (a == b ? 1.0 : 0.0)));
                // the span: with C = Ve^T Vr (r x r), 1 - sum_b C[j][b]^2 is the squared sine between exact
                // vector j and the randomized span; their mean is the mean sin^2 of the principal angles
                cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, r, r, len, 1.0f, Ve, len, Vr, len, 0.0f, gram, r);
                double span_mean = 0.0, res_half = 0.0;
                for (int j = 0; j < r; j++) {
                    double q = 0.0;
                    for (int b = 0; b < r; b++) q += (double)gram[j + b * r] * gram[j + b * r];
                    span_mean += (1.0 - q) / r;
                    if (j < r / 2) res_half = fmax(res_half, 1.0 - q);
                }
                double cap = svd_captured(G, pr, m, n, r, side) / svd_captured(G, pe, m, n, r, side);
                int flips = 0;
                double vec = projector_agreement(pr, pe, side, m, n, r, &flips);
                const char* what = geo ? "0.7^i" : "1/(1+i)";
                if (!geo) {
                    // sigma_i = 1/(1+i): exact vector j leaks out of the sketch's span by about
                    // (sigma_{l+1} / sigma_j)^(4q+2) (q = 2 power iterations, l = 24): (8/25)^10 = 1.1e-5 at
                    // j = 7, the worst of the half j < 8, times the Gaussian sketch's constant (Halko et al.
                    // bound it by ~(1 + 9 sqrt(l min(m,n)))^(1/(2q+1)) ~ 3 here; the draws are fixed, the
                    // same on every machine): bound 3e-4. The vectors near the cut (sigma 1/16 vs 1/17..1/24)
                    // mix with the tail, as any perturbation of G would mix them: what counts is the energy
                    // kept. Its loss is about sum_j sigma_j^2 (sigma_25 / sigma_j)^10 over the kept j <= 16, i.e.
                    // sum j^8 / 25^10 ~ 16^9 / 9 / 25^10 = 8e-5, over the top-16 energy sum 1/j^2 = 1.58:
                    // 5e-5: bound 0.999 (20x). The mean sin^2 of the principal angles is the same leak per
                    // vector, (j/25)^10 averaged over j <= 16: ~(16/25)^10 / 11 = 1e-3: bound 1e-2.
                    // Orthonormality: Householder QR in fp32 is backward stable, |Q^T Q - I| <= c n u with
                    // c n ~ 24 (r + 8 columns): 1.4e-6: bound 1e-5, on any LAPACK
                    check(same && orth < 1e-5 && cap >= 0.999 && res_half < 3e-4 && span_mean < 1e-2,
                          "randomized refresh %dx%d %s r %d, sigma %s: orthonormal to %.1e (bound 1e-5), captures %.6f of the exact "
                          "top-r energy (bound 0.999), top r/2 exact vectors outside its span %.1e (bound 3e-4), mean sin^2 of the principal "
                          "angles %.1e (bound 1e-2), %s", m, n, side == SIDE_RIGHT ? "right" : "left", r, what, orth, cap, res_half, span_mean,
                          same ? "bit-identical rerun" : "RERUN DIFFERS");
                } else {
                    // sigma_i = 0.7^i: every vector well separated (relative gap 0.3), so each equals the
                    // exact one, with its sign (galore_sign_fix), up to both SVDs' rounding: an angle of
                    // ~u / 0.3 (1 - |cos| ~ angle^2 / 2, negligible) plus the sketch's leak (0.7^(l-j))^(4q+2)
                    // <= 0.7^(8 x 10) = 4e-13: bound 1e-4 (the span check's scale)
                    check(same && orth < 1e-5 && cap >= 0.9999 && vec < 1e-4 && flips == 0,
                          "randomized refresh %dx%d %s r %d, sigma %s: orthonormal to %.1e, captures %.7f (bound 0.9999), each vector "
                          "vs the exact one: worst 1 - |cos| %.1e (bound 1e-4), %d sign flips, %s", m, n, side == SIDE_RIGHT ? "right" : "left",
                          r, what, orth, cap, vec, flips, same ? "bit-identical rerun" : "RERUN DIFFERS");
                }
                free(G); free(pe); free(pr); free(pr2); free(Vr); free(Ve); free(gram);
            }
        }
    }
    // the rule auto uses: the paper's configs at the paper's ranks keep the exact SVD on every
    // GaLore matrix; small ranks of large matrices take the randomized one; --svd forces
    {
        const char* names[5] = {"llama_60m", "llama_130m", "llama_350m", "llama_1b", "llama_7b"};
        int ranks[5] = {128, 256, 256, 512, 1024};
        int n_rand = 0, n_mat = 0, n_jacobi_wrong = 0;
        for (int k = 0; k < 5; k++) {
            LlamaConfig c;
            llama_config_resolve(&c, names[k]);
            ParamTable pt;
            param_table_build(&pt, &c);
            OptimConfig oc;
            memset(&oc, 0, sizeof oc);
            oc.kind = OPTIM_GALORE_ADAMW; oc.rank = ranks[k]; oc.update_proj_gap = 200; oc.proj_type = PROJ_STD; oc.svd = SVD_AUTO;
            for (int i = 0; i < pt.n; i++) {
                TensorLayout l;
                tensor_layout(&l, &pt.info[i], &oc);
                if (l.side == SIDE_NONE) continue;
                n_mat++;
                n_rand += l.svd != SVD_EXACT;
                // the GPU's exact solver: gesvdj on llama_60m..350m (k <= 1024), gesvd on llama_1b and 7b
                n_jacobi_wrong += galore_exact_gesvdj(l.m, l.n) != (k < 3);
            }
            param_table_free(&pt);
        }
        int ok = galore_svd_pick(2048, 5461, 128, SVD_AUTO) == SVD_RANDOMIZED && galore_svd_pick(11008, 4096, 128, SVD_AUTO) == SVD_RANDOMIZED &&
                 galore_svd_pick(4096, 4096, 1016, SVD_AUTO) == SVD_RANDOMIZED && galore_svd_pick(4096, 4096, 1017, SVD_AUTO) == SVD_EXACT &&
                 galore_svd_pick(256, 688, 16, SVD_AUTO) == SVD_EXACT && galore_svd_pick(200, 120, 16, SVD_EXACT) == SVD_EXACT &&
                 galore_svd_pick(200, 120, 16, SVD_RANDOMIZED) == SVD_RANDOMIZED && galore_svd_width(200, 120, 16) == 24 &&
                 galore_svd_width(40, 30, 28) == 30;
        int okj = galore_exact_gesvdj(1024, 2736) && !galore_exact_gesvdj(1025, 4096) && !galore_exact_gesvdj(4096, 1025) &&
                  galore_exact_gesvdj(5461, 1024) && n_jacobi_wrong == 0;
        check(okj, "the GPU's exact refresh: gesvdj where min(m, n) <= %d (llama_60m..350m), gesvd above (llama_1b, 7b): %d matrices differ",
              GALORE_GESVDJ_MAX_DIM, n_jacobi_wrong);
        check(n_mat > 0 && n_rand == 0 && ok, "--svd auto: the exact SVD on all %d GaLore matrices of llama_60m..7b at the paper's ranks (%d randomized); "
              "randomized at 2048x5461 r 128, 11008x4096 r 128, 4096^2 up to r 1016; exact below min dim 1024; exact/randomized force%s",
              n_mat, n_rand, ok ? "" : ": RULE DIFFERS");
    }
}


// ----------------------------------------------------------------------------
// Hugging Face folders (dev/test/test_hf.sh makes them with dev/test/make_hf_folders.py and runs
// `./test_llama hf DIR`): a sharded BF16 copy of dev/ref/tiny, llama3 RoPE, sharded save

static int file_in(const char* dir, const char* name) {
    char p[1300]; snprintf(p, sizeof p, "%s/%s", dir, name);
    return st_is_file(p);
}


// transformers' own sharded BF16 saves of one tiny model per family (dev/ref/make_hf_families.py:
// Llama 2 MHA; Llama 3 llama3 RoPE + GQA 4:1; tied embeddings; explicit head_dim 16 != C/NH = 8;
// linear RoPE scaling), each loaded through its folder: logits, loss and the first step's gradient
// of every tensor against transformers' float64 autograd on the same BF16 weights.
// Bounds, rule (F): the weights are exact (BF16 -> f32) and HF keeps cos/sin in float32 as we do.
// Sizes: V 64, C 32, H 48, QD <= 64, B T = 32, so K <= 64 for every sum; D ~ 18 forward, 36
// with backward: E = u sqrt(18 x 64) = 2.0e-6 for logits and the loss, u sqrt(36 x 64) = 2.9e-6
// for gradients (normalized per tensor by its own max). Bounds 1e-5 (logits, loss) and 2e-5
// (gradients: 7 E, the smallest tensors' maxima are a few times below their typical entries'
// scale). A tied gradient missing either use is off by O(1) (lm_head's share is ~ half of it);
// a head_dim taken as C/NH does not even load (shape check); a RoPE scaling ignored misses the
// logits by > 1e-4 (checked for llama3 and linear below).
// Then per-layer == whole-model bit for bit with galore_adamw8bit for the tied and head_dim models
// (the tied embedding's update must wait for the lookup's share, which backward adds last).
static void test_hf_families(void) {
    const char* shard = "/tmp/test_llama_hf_families.bin";
    hf_family_shard(shard);
    for (int fi = 0; fi < HF_FAMILIES; fi++) {
        const char* fam = HF_FAMILY_NAMES[fi];
        char dir[128], path[256];
        snprintf(dir, sizeof dir, "dev/ref/hf/%s", fam);
        snprintf(path, sizeof path, "%s/config.json", dir);
        LlamaConfig c;
        llama_config_from_json(&c, path);
        int want = fi == 0 ? (c.NKV == c.NH && c.rope_type == ROPE_DEFAULT && !c.tied)
                 : fi == 1 ? (c.rope_type == ROPE_LLAMA3 && c.NKV * 4 == c.NH)
                 : fi == 2 ? (c.tied && c.NKV * 2 == c.NH)
                 : fi == 3 ? (c.HD == 16 && llama_qdim(&c) == 2 * c.C)
                 : (c.rope_type == ROPE_LINEAR && c.rope_factor == 4.0);
        ParamTable pt;
        param_table_build(&pt, &c);
        check(want && llama_weights_dtype(&c, dir) == ST_BF16 && pt.n == (c.tied ? 2 : 3) + c.L * P_PER_LAYER,
              "hf %s: config (NH %d NKV %d HD %d tied %d rope %d), BF16 weights, %d tensors", fam, c.NH, c.NKV, c.HD, c.tied,
              c.rope_type, pt.n);
        if (c.tied) {
            // the memory plan counts the tied tensor once: weights P = untied P - V C; per-layer
            // gradients: the largest shared group (gate|up, 2 H C = 3072) plus the embedding's own
            // slot (V C = 2048), by hand from the config's sizes
            LlamaConfig cu = c;
            cu.tied = 0;
            ParamTable pu;
            param_table_build(&pu, &cu);
            GpuPlanArgs pa;
            memset(&pa, 0, sizeof pa);
            pa.c = &c; pa.B = 2; pa.T = 16; pa.per_layer = 1; pa.grad_accum = 1; pa.cudnn = 1;
            MemPlan mp;
            gpu_memplan_build(&mp, &pa);
            size_t VC = (size_t)c.V * c.C, want_g = 2 * (size_t)c.H * c.C + VC;
            check(pt.total == pu.total - VC && mp.items[GR_WEIGHTS].bytes == (double)GPU_X * pt.total &&
                  mp.items[GR_GRADS].bytes == (double)GPU_X * want_g && 2 * (size_t)c.H * c.C > VC,
                  "hf tied: the plan counts the tied tensor once (%zu parameters = %zu - V C), per-layer gradients %.0f bytes = "
                  "(2 H C + V C) x %d", pt.total, pu.total, mp.items[GR_GRADS].bytes, (int)GPU_X);
            param_table_free(&pu);
        }
        HfRef r;
        hf_ref_load(&r, dir, &c, &pt);
        int B = r.B, T = r.T;
        size_t nl = (size_t)B * T * c.V;
        double err[2] = {0, 0}, gerr = 0.0, lerr = 0.0;
        const char* worst = "";
        for (int k = 0; k < 2; k++) {
            LlamaConfig ck = c;
            if (k == 1) { if (c.rope_type == ROPE_DEFAULT) break; ck.rope_type = ROPE_DEFAULT; }
            Llama m;
            llama_build(&m, &ck);
            llama_set_grad_mode(&m, 0);
            llama_load_params(&m.table, m.params, dir);
            llama_alloc_activations(&m, B, T, 0);
            llama_zero_grad(&m);
            llama_forward(&m, r.inputs, r.targets, B, T);
            err[k] = norm_max_err(m.acts.logits, r.logits, nl);
            if (k == 0) {
                lerr = fabs((double)m.mean_loss - r.loss) / fabs((double)r.loss);
                llama_backward(&m, r.inputs, r.targets, B, T, 1.0f);
                for (int i = 0; i < m.table.n; i++) {
                    const ParamInfo* p = &m.table.info[i];
                    double e = norm_max_err(G(&m, i), r.grads + p->offset, (size_t)p->numel);
                    if (!(e <= gerr)) { gerr = e; worst = pt.info[i].name; }
                }
            }
            llama_free(&m);
        }
        check(err[0] < 1e-5 && lerr < 1e-5, "hf %s: logits normalized max error %.2e, loss relative error %.1e (bounds 1e-5)", fam, err[0], lerr);
        check(gerr < 2e-5, "hf %s: first-step gradients of all tensors, worst normalized max error %.2e (%s) (bound 2e-5)", fam, gerr, worst);
        if (c.rope_type != ROPE_DEFAULT)
            check(err[1] > 1e-4, "hf %s: the same weights with the default RoPE miss by %.2e (> 1e-4 = 10 x the bound: the check sees the scaling)",
                  fam, err[1]);
        if (c.tied || c.HD != c.C / c.NH) {
            float* init = (float*)mallocCheck(sizeof(float) * pt.total);
            float* a = (float*)mallocCheck(sizeof(float) * pt.total);
            float* b = (float*)mallocCheck(sizeof(float) * pt.total);
            float* lo = (float*)mallocCheck(sizeof(float) * (5 + 7 * (size_t)c.V));
            size_t act;
            llama_load_params(&pt, init, dir);
            OptimConfig oc;
            memset(&oc, 0, sizeof oc);
            oc.kind = OPTIM_GALORE_ADAMW8BIT; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = OPTIM_DEFAULT_EPS[oc.kind]; oc.weight_decay = 0.01f;
            oc.rank = 4; oc.update_proj_gap = 3; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
            g_run_shard = shard;
            recompute_run(&c, init, &oc, 0, 1, 0.0f, 0, 5, lo, a, lo + 5, &act);
            recompute_run(&c, init, &oc, 1, 1, 0.0f, 0, 5, lo, b, lo + 5, &act);
            g_run_shard = REF_DIR "/train.bin";
            double moved = norm_max_err(a, init, pt.total);
            check(memcmp(a, b, sizeof(float) * pt.total) == 0 && moved > 1e-3,
                  "hf %s: galore_adamw8bit --per-layer weights after 5 steps equal the whole-model step's bit for bit (moved %.2e)", fam, moved);
            free(init); free(a); free(b); free(lo);
        }
        hf_ref_free(&r);
        param_table_free(&pt);
    }
    remove(shard);
}

// tiny_pair: a = dev/ref/tiny's model as loaded from its f32 file, b = the same shape, unset
static void tiny_pair(LlamaConfig* c, Llama* a, Llama* b) {
    llama_config_from_json(c, REF_DIR "/config.json");
    llama_build(a, c);
    llama_build(b, c);
    llama_load_params(&a->table, a->params, REF_DIR "/model.safetensors");
}

static void test_hf_sharded_bf16(const char* dir) {
    LlamaConfig c;
    Llama a, b;
    tiny_pair(&c, &a, &b);
    char path[1300];
    snprintf(path, sizeof path, "%s/bf16_sharded", dir);
    llama_load_params(&b.table, b.params, path);
    check(llama_weights_dtype(&c, path) == ST_BF16 && llama_weights_dtype(&c, REF_DIR) == ST_F32, "weights dtype: the shards BF16, dev/ref/tiny F32");
    // the generator rounded each f32 weight to the nearest bf16 (RNE) and bf16 -> f32 is exact, so
    // the load must give exactly bf16(f32 weights): bound 0, and then the same logits bitwise
    size_t n = a.table.total, diff = 0;
    float* ar = (float*)mallocCheck(sizeof(float) * n);
    for (size_t k = 0; k < n; k++) {
        ar[k] = f32_from_bf16(bf16_from_f32(a.params[k]));
        diff += memcmp(&ar[k], &b.params[k], 4) != 0;
    }
    check(diff == 0, "3 BF16 shards through model.safetensors.index.json (not in table order) load to bf16(f32 weights) bitwise: %zu of %zu differ", diff, n);
    int B = 2, T = 16, in[32];
    for (int i = 0; i < B * T; i++) in[i] = (i * 37 + 5) % c.V;
    size_t nl = (size_t)B * T * c.V;
    float* l32 = (float*)mallocCheck(sizeof(float) * nl);
    float* lbf = (float*)mallocCheck(sizeof(float) * nl);
    llama_alloc_activations(&a, B, T, 0);
    llama_alloc_activations(&b, B, T, 0);
    llama_forward(&a, in, NULL, B, T);
    memcpy(l32, a.acts.logits, sizeof(float) * nl);
    llama_forward(&b, in, NULL, B, T);
    memcpy(lbf, b.acts.logits, sizeof(float) * nl);
    memcpy(a.params, ar, sizeof(float) * n); // the f32 file's model, rounded in memory
    llama_forward(&a, in, NULL, B, T);
    check(memcmp(a.acts.logits, lbf, sizeof(float) * nl) == 0, "sharded BF16 logits == logits of the f32 file rounded to bf16, bitwise");
    // against the unrounded f32 model: each weight moved by a relative <= 2^-9 (RNE to 8 bits),
    // rms 2^-9 / sqrt(3) for independent roundings; a sum of K products then moves by ~that rms
    // relative to its own scale, whatever K, and D ~ 18 dependent operations add in quadrature
    // (rule F): E = 2^-9 / sqrt(3) * sqrt(18) = 4.8e-3 normalized max error; bound 2e-2 (~4 E).
    // A misplaced or transposed tensor is off by O(1).
    double e = norm_max_err(lbf, l32, nl);
    check(e < 2e-2, "sharded BF16 logits vs the f32 file's: normalized max error %.2e (bound 2e-2, from bf16 rounding of the weights)", e);
    free(l32); free(lbf); free(ar);
    llama_free(&a); llama_free(&b);
}

static void test_hf_save_sharded(const char* dir) {
    LlamaConfig c;
    Llama a, b;
    tiny_pair(&c, &a, &b);
    char out[1300];
    snprintf(out, sizeof out, "%s/save_sharded", dir);
    // f32: 312 KB of tensors in shards of at most 64 KB (one tensor alone when larger)
    llama_save(&c, &a.table, a.params, out, ST_F32, 64000);
    int nshards = 0;
    SafeFolder sf;
    safefolder_open(&sf, out);
    nshards = sf.nfiles;
    int all_f32 = 1, sizes_ok = 1;
    for (int k = 0; k < sf.nfiles; k++) {
        int64_t bytes = 0;
        for (int j = 0; j < sf.files[k].n; j++) { all_f32 &= sf.files[k].tensors[j].dtype == ST_F32; bytes += sf.files[k].tensors[j].end - sf.files[k].tensors[j].begin; }
        sizes_ok &= bytes <= 64000 || sf.files[k].n == 1;
    }
    check(sf.index[0] && sf.nentries == a.table.n && nshards > 2 && all_f32 && sizes_ok && !file_in(out, ST_SINGLE_NAME),
          "sharded F32 save: %d shards of <= 64000 bytes (or one tensor) + index listing all %d tensors, no model.safetensors", nshards, sf.nentries);
    char name[64]; snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", nshards, nshards);
    check(file_in(out, name), "shards named as transformers names them (%s)", name);
    safefolder_close(&sf);
    llama_load_params(&b.table, b.params, out);
    check(memcmp(a.params, b.params, sizeof(float) * a.table.total) == 0, "sharded F32 save -> load is bit exact");
    // bf16 sharded: the load gives back exactly bf16(weights), and saving that again is the same
    llama_save(&c, &a.table, a.params, out, ST_BF16, 30000);
    llama_load_params(&b.table, b.params, out);
    size_t diff = 0;
    for (size_t k = 0; k < a.table.total; k++) {
        float w = f32_from_bf16(bf16_from_f32(a.params[k]));
        diff += memcmp(&w, &b.params[k], 4) != 0;
    }
    check(diff == 0 && llama_weights_dtype(&c, out) == ST_BF16, "sharded BF16 save -> load gives bf16(weights) bitwise (%zu differ)", diff);
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", nshards, nshards);
    check(!file_in(out, name), "a save with another shard count removes the earlier save's shards");
    // one file again in the same folder: the index and shards go
    llama_save(&c, &a.table, a.params, out, ST_F32, 0);
    check(file_in(out, ST_SINGLE_NAME) && !file_in(out, ST_INDEX_NAME) && !file_in(out, "model-00001-of-00002.safetensors") &&
          !file_in(out, "model-00001-of-00003.safetensors"), "a single-file save into a sharded folder removes the index and shards");
    llama_free(&a); llama_free(&b);
}

// llama3 RoPE tables against the float64 formula (make_hf_folders.py). Per entry, with u = 2^-24:
// our inv_freq is float32: (2i/HD) rounds (u), which theta^x turns into ln(theta) u = 13.1 u, powf
// <= 1 ulp (2 u), 1/x u: <= 16.1 u default (high and low regions; /8 is exact). The medium
// region's s = (orig / wavelen - lo) / (hi - lo) takes that plus 3 u (2 pi, /, /) times
// orig/wavelen <= hi, over hi - lo: |ds| <= (4/3)(19.1 u) + 2 u = 27.5 u; the blend
// inv (1/f + s (1 - 1/f)) >= inv / f then moves by (f - 1) |ds| = 192 u relative, + 5 u for its
// operations: 214 u. So inv_freq is within R = 256 u relative, the angle t inv within t inv (R + 1) u,
// and cos/sin (<= 1 ulp, u absolute below 1) within t inv (R + 1) u + 2 u. A wrong region or
// blend moves inv by >= 1% (t inv up to 3.8 rad there): 1e-2 rad against a bound of ~1e-4.
static void test_hf_llama3_rope(const char* dir) {
    char path[1300];
    snprintf(path, sizeof path, "%s/llama3/config.json", dir);
    LlamaConfig c;
    llama_config_from_json(&c, path);
    check(c.rope_type == ROPE_LLAMA3 && c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0 &&
          c.rope_original_maxT == 512 && c.rope_theta == 500000.0f, "llama3 rope_parameters read (factor 8, 1, 4, original 512, theta 5e5)");
    snprintf(path, sizeof path, "%s/llama3/rope_ref.json", dir);
    char* text = st_read_text(path, 1 << 26);
    cJSON* ref = cJSON_Parse(text);
    free(text);
    if (ref == NULL) die("%s: not JSON", path);
    int half = c.C / c.NH / 2;
    const cJSON* jinv = cJSON_GetObjectItemCaseSensitive(ref, "inv_freq");
    const cJSON* jcos = cJSON_GetObjectItemCaseSensitive(ref, "cos");
    const cJSON* jsin = cJSON_GetObjectItemCaseSensitive(ref, "sin");
    if (cJSON_GetArraySize(jinv) != half || cJSON_GetArraySize(jcos) != c.maxT * half) die("%s: sizes do not match the config", path);
    const double u = 1.0 / 16777216.0, R = 256.0;
    double* inv = (double*)mallocCheck(sizeof(double) * half);
    double worst_inv = 0.0;
    int k = 0;
    for (const cJSON* x = jinv->child; x; x = x->next, k++) {
        inv[k] = x->valuedouble;
        double r = fabs((double)llama_rope_inv_freq(&c, k) - inv[k]) / inv[k];
        if (!(r <= worst_inv)) worst_inv = r;
    }
    check(worst_inv <= R * u, "llama3 inv_freq vs float64 transformers formula: worst relative %.2e (bound 256 u = %.2e)", worst_inv, R * u);
    size_t nt = (size_t)c.maxT * half;
    float* cosb = (float*)mallocCheck(sizeof(float) * nt);
    float* sinb = (float*)mallocCheck(sizeof(float) * nt);
    llama_rope_tables(&c, cosb, sinb);
    double worst = 0.0; // error / bound
    const cJSON* xc = jcos->child; const cJSON* xs = jsin->child;
    for (size_t e = 0; e < nt; e++, xc = xc->next, xs = xs->next) {
        int t = (int)(e / half), i = (int)(e % half);
        double bound = t * inv[i] * (R + 1) * u + 2 * u;
        double r = fmax(fabs(cosb[e] - xc->valuedouble), fabs(sinb[e] - xs->valuedouble)) / bound;
        if (!(r <= worst)) worst = r;
    }
    check(worst <= 1.0, "llama3 cos/sin tables (96 x 24, all three regions) vs float64: worst error %.2f of its bound", worst);
    // the transformers 4.x spelling (rope_scaling + rope_theta on top) gives the same tables
    snprintf(path, sizeof path, "%s/llama3/config_4x.json", dir);
    LlamaConfig c4;
    llama_config_from_json(&c4, path);
    float* cos4 = (float*)mallocCheck(sizeof(float) * nt);
    float* sin4 = (float*)mallocCheck(sizeof(float) * nt);
    llama_rope_tables(&c4, cos4, sin4);
    check(memcmp(cos4, cosb, sizeof(float) * nt) == 0 && memcmp(sin4, sinb, sizeof(float) * nt) == 0, "llama3 from rope_scaling (4.x) == from rope_parameters (5.x)");
    // config.json written back and read again: the same scaling
    snprintf(path, sizeof path, "%s/llama3_written.json", dir);
    llama_config_write(&c, path, "bfloat16");
    LlamaConfig c2;
    llama_config_from_json(&c2, path);
    check(c2.rope_type == c.rope_type && c2.rope_factor == c.rope_factor && c2.rope_low_freq_factor == c.rope_low_freq_factor &&
          c2.rope_high_freq_factor == c.rope_high_freq_factor && c2.rope_original_maxT == c.rope_original_maxT && c2.rope_theta == c.rope_theta,
          "llama3 config.json round trip");
    // and the default RoPE is untouched by it: dev/ref/tiny's tables are 1 / theta^(2i/HD) ones
    LlamaConfig ct;
    llama_config_from_json(&ct, REF_DIR "/config.json");
    check(ct.rope_type == ROPE_DEFAULT && llama_rope_inv_freq(&ct, 1) == 1.0f / powf(ct.rope_theta, 2.0f / 10.0f), "default RoPE unchanged");
    cJSON_Delete(ref);
    free(inv); free(cosb); free(sinb); free(cos4); free(sin4);
}

// ----------------------------------------------------------------------------
// --- fira and golore (issue 15) ---

#define FIRA_DIR "dev/ref/fira"

// unit.bin / unit_scale1.bin (dev/ref/make_fira_reference.py, magic 20251203): fira 1.0.2's
// FiraAdamW on stored synthetic gradients: weights and the limiter's state after every step, the
// projectors of every refresh. The first NG params are the projected group, the rest plain.
static void test_fira_unit(const char* file, int proj_type) {
    char path[256];
    snprintf(path, sizeof path, FIRA_DIR "/%s", file);
    int32_t h[256];
    long flen;
    FILE* f = unit_open(path, h, &flen);
    if (h[0] != 20251203 || h[1] != 1) die("%s: bad magic; hint: rerun dev/ref/make_fira_reference.py", path);
    int np = h[2], S = h[3], nr_file = h[7], ng = h[8], engaged = h[12];
    if (np < 1 || np > 64 || S < 1 || S > 1000 || h[4] < 1 || h[5] < 1 || nr_file < 0 || nr_file > 16 || ng < 1 || ng > np || ng > 3 ||
        h[6] != (proj_type == PROJ_REVERSE_STD))
        die("%s: implausible header; hint: rerun dev/ref/make_fira_reference.py", path);
    OptimConfig oc;
    float lr = unit_config(h, &oc, OPTIM_FIRA_ADAMW);
    oc.scale = hdr_float(h, 21); oc.proj_type = proj_type; oc.svd = SVD_EXACT;
    ParamTable pt;
    unit_param_table(f, path, np, ng, &pt, "dev/ref/make_fira_reference.py");
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    UnitRun u;
    unit_run_begin(&u, f, path, flen, &o, &pt, ng, S, nr_file, ng, 0, "dev/ref/make_fira_reference.py");
    int sides_ok = 1;
    for (int i = 0; i < np; i++) {
        const TensorLayout* l = &o.lay[i];
        if (i < ng) sides_ok &= l->side == (h[9 + i] == 0 ? SIDE_RIGHT : SIDE_LEFT) && l->full_grad && l->limiter == 1;
        else sides_ok &= l->side == SIDE_NONE && !l->limiter;
    }
    double win1 = 0.0, later = 0.0, limerr = 0.0, plain = 0.0;
    int our_engaged = 0;
    float prev[3] = {0};
    for (int t = 1; t <= S; t++) {
        unit_run_step(&u, t, lr, oc.update_proj_gap);
        for (int i = 0; i < np; i++) {
            double e = u.err[i];
            if (i >= ng && !(e <= plain)) plain = e;
            if (t < 1 + oc.update_proj_gap) { if (!(e <= win1)) win1 = e; }
            else if (!(e <= later)) later = e;
        }
        for (int j = 0; j < ng; j++) {
            double e = fabs((double)o.lim[j][0] - u.lim[j]) / fabs((double)u.lim[j]);
            if (!(e <= limerr)) limerr = e;
            // an engaged step stores 1.01 (prev + 1e-8) (galore.h's fira_limiter), a free one less
            if (t > 1 && fabs(o.lim[j][0] / (prev[j] + 1e-8) - 1.01) < 1e-5) our_engaged++;
            prev[j] = o.lim[j][0];
        }
    }
    unit_run_end(&u);
    int nref = u.nref;
    int flips = 0;
    double pworst = unit_projectors_compare(f, path, &o, u.ours_proj, nref, &flips);
    fclose(f);
    char name[64];
    snprintf(name, sizeof name, "fira_adamw %s alpha %g", PROJ_NAMES[proj_type], oc.scale);
    check(sides_ok, "%s: sides, full-gradient and limiter layout as the file says", name);
    check(pworst < 1e-4 && flips == 0, "%s: projectors of %d refreshes span fira's (worst 1-|cos| %.1e, bound 1e-4), %d sign flips", name, nref, pworst, flips);
    // Bounds, as test_galore_unit's (same gradients' spectrum, so the projectors agree to ~2e-6 per
    // entry, u / the smallest kept gap 0.03) plus what Fira adds: S = phi (G - alpha back(R)) and the
    // limiter. phi is a ratio of two column/row norms of fp32 data (R, N) that carry the projector's
    // 2e-6, the residual G - alpha back(R) the same relative to |G|, and the limiter a ratio of two
    // norms of S, so S and the divisor carry ~3 x 2e-6 = 6e-6 relative (the errors of the factors
    // add). S is the larger part of the step here (||S|| ~ 30-40 over ~1000 entries, max entry ~4,
    // against alpha |N| <= 0.25 x 3), so a step moves a weight by up to lr x 4 = 0.04 and its error
    // by 0.04 x 6e-6 = 2.4e-7, normalized by |W|max >= 0.08 (the 0.02 init's 4 sigma; the steps only
    // grow it) 3e-6 a step: 9e-6 over the first window's 3 steps, bound 5e-5 (margin for entries
    // where G - alpha back(R) cancels); 2.4e-5 over all 8, bound 1e-4 across the refreshes (the
    // carried moments and limiter state add the earlier windows' error). The
    // limiter state is ||S|| / lim: 6e-6 relative per step, compounding through prev over 8 steps
    // (a divisor's error passes 1:1 into the next state): 5e-5, bound 1e-4. A wrong formula (the
    // channel axis, alpha in the residual, the limiter's first step, the decay order) is off by 1e-2
    // or more. The plain tensor d (HF AdamW on identical inputs, elementwise) must agree to rounding
    // of torch's fused vs our separate operations: 1e-6.
    check(win1 < 5e-5, "%s: weights inside the first projector window vs fira: normalized max error %.2e (bound 5e-5)", name, win1);
    check(later < 1e-4, "%s: weights across %d refreshes (moments and limiter carried over) vs fira: normalized max error %.2e (bound 1e-4)",
          name, nref - 1, later);
    check(limerr < 1e-4, "%s: the limiter's state after every step vs fira's scaling_grad: max relative error %.2e (bound 1e-4)", name, limerr);
    check(our_engaged == engaged && engaged > 0 && engaged < (S - 1) * ng,
          "%s: the limiter engaged %d of %d times (fira: %d): the file covers both branches", name, our_engaged, (S - 1) * ng, engaged);
    check(plain < 1e-6, "%s: the plain tensor (HF AdamW) vs fira: normalized max error %.2e (bound 1e-6)", name, plain);
    optimizer_free(&o);
    unit_run_free(&u); free(pt.info);
}

// GoLore's projector (--proj random): orthonormal, from the seed alone, the same bits for the same
// (run seed, tensor, round), different otherwise; and through galore_refresh
static void test_golore(void) {
    // orthonormality: P P^T (right, r x n) or P^T P (left) against I. Householder QR in fp32 is
    // backward stable: ||Q^T Q - I|| <= c len r u with a small c (Higham, Thm 19.4: c ~ 1); entry
    // by entry the error is a length-len dot product of rounded columns, ~ sqrt(len) u: bound
    // 2 len u, 4.8e-6 at len 40 (3e-6 at 24), far below a wrong layout (O(1)).
    int shapes[5][4] = {{40, 24, 7, PROJ_STD}, {24, 40, 7, PROJ_STD}, {32, 32, 32, PROJ_STD}, {60, 84, 8, PROJ_REVERSE_STD}, {84, 60, 60, PROJ_STD}};
    int all_ok = 1;
    double worst_ratio = 0.0;
    for (int k = 0; k < 5; k++) {
        int M = shapes[k][0], N = shapes[k][1];
        int side = galore_side(M, N, shapes[k][3]);
        int r = (int)galore_rank(M, N, shapes[k][2]), len = side == SIDE_RIGHT ? N : M;
        size_t pn = (size_t)r * len;
        float* P = (float*)mallocCheck(sizeof(float) * pn);
        float* P2 = (float*)mallocCheck(sizeof(float) * pn);
        float* P3 = (float*)mallocCheck(sizeof(float) * pn);
        galore_proj_gaussian_orth(P, side, M, N, r, galore_proj_seed(42, k, 3));
        galore_proj_gaussian_orth(P2, side, M, N, r, galore_proj_seed(42, k, 3));
        galore_proj_gaussian_orth(P3, side, M, N, r, galore_proj_seed(42, k, 4));
        double orth = 0.0;
        for (int a = 0; a < r; a++)
            for (int b = 0; b < r; b++) {
                double dot = 0.0;
                for (int x = 0; x < len; x++)
                    dot += side == SIDE_RIGHT ? (double)P[(size_t)a * N + x] * P[(size_t)b * N + x] : (double)P[(size_t)x * r + a] * P[(size_t)x * r + b];
                double e = fabs(dot - (a == b));
                if (e > orth) orth = e;
            }
        double bound = 2.0 * len * 5.96e-8;
        if (orth / bound > worst_ratio) worst_ratio = orth / bound;
        int same = memcmp(P, P2, sizeof(float) * pn) == 0, differ = memcmp(P, P3, sizeof(float) * pn) != 0;
        all_ok &= orth < bound && same && differ;
        if (!(orth < bound && same && differ)) printf("     %dx%d r %d: orth %.2e (bound %.2e) same %d differ %d\n", M, N, r, orth, bound, same, differ);
        free(P); free(P2); free(P3);
    }
    check(all_ok, "--proj random: galore_proj_gaussian_orth is orthonormal (worst |P P^T - I| %.2f of its bound 2 len u), bitwise the same for the "
          "same seed and different for the next round, on 5 shapes (right, left, square full rank, reverse_std, tall full rank)", worst_ratio);
    // the seed: the run seed, the tensor and the round all change it
    uint64_t s0 = galore_proj_seed(42, 1, 0);
    check(s0 != galore_proj_seed(43, 1, 0) && s0 != galore_proj_seed(42, 2, 0) && s0 != galore_proj_seed(42, 1, 1) && s0 != galore_svd_seed(1, 0),
          "galore_proj_seed: the run seed, the tensor and the refresh round each give another stream (and not --svd randomized's)");
    // through the optimizer: the projector does not depend on the gradient, and the 2nd round's
    // matrix is the one galore_proj_seed(seed, tensor, 1) gives
    ParamTable pt;
    pt.n = 2;
    pt.info = (ParamInfo*)callocCheck(2, sizeof(ParamInfo));
    for (int i = 0; i < 2; i++) {
        ParamInfo* p = &pt.info[i];
        p->ndim = 2; p->rows = i ? 24 : 40; p->cols = i ? 40 : 24; p->numel = p->rows * p->cols; p->galore = 1; p->layer = -1;
        p->offset = i ? 960 : 0;
    }
    pt.total = 1920;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_GALORE_ADAMW; oc.rank = 5; oc.update_proj_gap = 2; oc.scale = 0.25f; oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = 1e-6f;
    oc.projector = PROJECTOR_RANDOM; oc.seed = 7;
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    float* w = (float*)callocCheck(1920, sizeof(float));
    float* g = (float*)mallocCheck(sizeof(float) * 1920);
    float want[200];
    int ok = 1;
    for (int t = 1; t <= 3; t++) {
        for (int k = 0; k < 1920; k++) g[k] = (float)sin(0.37 * k * t);
        for (int i = 0; i < 2; i++) optimizer_update(&o, i, w + pt.info[i].offset, g + pt.info[i].offset, 0, 1e-3f, t);
        int64_t round = t < 3 ? 0 : 1; // refreshes at steps 1 and 3
        for (int i = 0; i < 2; i++) {
            const TensorLayout* l = &o.lay[i];
            galore_proj_gaussian_orth(want, l->side, (int)l->m, (int)l->n, (int)l->r, galore_proj_seed(7, i, round));
            ok &= memcmp(want, o.proj[i], sizeof(float) * (size_t)l->proj_numel) == 0;
        }
    }
    check(ok && o.refreshes == 4, "--proj random through galore_refresh: at steps 1 and 3 (gap 2) each projector is round 0's / 1's seeded matrix, "
          "bit for bit, whatever the gradient (%lld refreshes)", (long long)o.refreshes);
    optimizer_free(&o);
    free(w); free(g); free(pt.info);
}

// the CPU memory plan of fira_adamw: its state rows (moments, projectors, limiter) are what the
// optimizer allocates; with --per-layer --grad-accum 2 the GaLore matrices get full accumulators
// (what the trainer carves, accum_layout) and no low-rank or refresh-step ones
static void test_fira_memplan(void) {
    LlamaConfig t;
    llama_config_from_json(&t, REF_DIR "/config.json");
    ParamTable pt;
    param_table_build(&pt, &t);
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = OPTIM_FIRA_ADAMW; oc.rank = 8; oc.update_proj_gap = 5; oc.scale = 0.25f; oc.proj_type = PROJ_STD;
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    MemPlan mp;
    memplan_build(&mp, &t, &oc, 1, 2, 3, 13, 0);
    double planned = 0.0, acc_full = -1.0, acc_low = -1.0, refresh = -1.0;
    for (int i = 0; i < mp.n; i++) {
        const char* nm = mp.items[i].name;
        if (strstr(nm, "moments") || strstr(nm, "absmax") || strcmp(nm, "projectors") == 0 || strstr(nm, "limiter")) planned += mp.items[i].bytes;
        if (strstr(nm, "gradient accumulators (full")) acc_full = mp.items[i].bytes;
        if (strstr(nm, "gradient accumulators (low-rank)")) acc_low = mp.items[i].bytes;
        if (strstr(nm, "refresh-step")) refresh = mp.items[i].bytes;
    }
    double allocated = 0.0;
    int nlim = 0;
    for (int i = 0; i < o.n; i++) {
        const TensorLayout* l = &o.lay[i];
        allocated += 8.0 * l->snumel + 4.0 * l->proj_numel + 4.0 * l->limiter;
        nlim += l->limiter;
    }
    int64_t* off = (int64_t*)mallocCheck(sizeof(int64_t) * 2 * (size_t)pt.n);
    size_t nfull, nlow;
    accum_layout(&pt, o.lay, 1, off, off + pt.n, &nfull, &nlow);
    check(planned == allocated && nlim == 14 && acc_full == 4.0 * (double)pt.total && nfull == pt.total && acc_low <= 0.0 && nlow == 0 && refresh <= 0.0,
          "fira_adamw memory plan: state %.0f bytes planned, %.0f allocated (%d limiter floats); --per-layer --grad-accum 2: full accumulators "
          "%.0f bytes for every tensor (%zu floats carved), low-rank %.0f, refresh-step %.0f (-1: no row)", planned, allocated, nlim, acc_full, nfull, acc_low, refresh);
    free(off);
    optimizer_free(&o);
    param_table_free(&pt);
}
// --- end fira and golore ---

// --- fira 8-bit (issue 15) ---
// test_fira8bit: fira_adamw8bit (galore.h's fira 8-bit block) on synthetic gradients against
// fira_adamw and galore_adamw8bit on the same ones. No package runs Fira with 8-bit moments, so
// the references are our two checked optimizers: fira_adamw (against fira 1.0.2, test_fira_unit)
// and galore_adamw8bit (against galore-torch + the kernel model, test_galore_unit). Tensors: A
// [96, 80] right and B [40, 48] left at rank 56 (A's R 96 x 56 = 5376 >= 4096 elements: the 8-bit
// blockwise kernel; B's 40 x 48 at rank 40 keeps 40 x 48 = 1920: the 32-bit kernel), plain E
// [64, 80] (5120: 8-bit Adam) and d [24] (32-bit). 7 steps, gap 3 (refreshes at 1, 4, 7).
// The gradients do not depend on the weights, so all three see the same G, the same SVDs (bit for
// bit: the same LAPACK call on the same G) and the same R = P^T G.
// fira_adamw runs with eps_t = c2(t) eps at step t (c2 = sqrtf(1 - powf(b2, t)), the kernel's), so
// its direction m / (sqrt(v) + eps_t) is the kernel's m / (sqrt(v) + c2 eps) in exact arithmetic.
static void test_fira8bit(void) {
    enum { NP = 4, S = 7 };
    const int32_t dims[NP][3] = {{2, 96, 80}, {2, 40, 48}, {2, 64, 80}, {1, 24, 1}}; // A, B (GaLore), E, d
    ParamTable pt;
    param_table_from_dims(&pt, dims, NP, 2);
    size_t total = pt.total;
    OptimConfig oc;
    memset(&oc, 0, sizeof oc);
    oc.beta1 = 0.9f; oc.beta2 = 0.999f; oc.eps = 1e-8f; oc.weight_decay = 0.05f;
    oc.rank = 56; oc.update_proj_gap = 3; oc.scale = 0.25f; oc.proj_type = PROJ_STD; oc.svd = SVD_EXACT;
    const float lr = 1e-2f, eps8 = oc.eps;
    Optimizer o8, of, og;
    oc.kind = OPTIM_FIRA_ADAMW8BIT; optimizer_init(&o8, &pt, &oc);
    oc.kind = OPTIM_FIRA_ADAMW; optimizer_init(&of, &pt, &oc);
    oc.kind = OPTIM_GALORE_ADAMW8BIT; optimizer_init(&og, &pt, &oc);
    int lay_ok = 1;
    for (int i = 0; i < NP; i++) {
        const TensorLayout *a = &o8.lay[i], *b = &of.lay[i], *g = &og.lay[i];
        lay_ok &= a->side == b->side && a->r == b->r && a->full_grad == b->full_grad && a->limiter == b->limiter; // Fira's
        lay_ok &= a->state == g->state && a->nblocks == g->nblocks && a->snumel == g->snumel;                    // galore_adamw8bit's
    }
    lay_ok &= o8.lay[0].state == STATE_8BIT && o8.lay[1].state == STATE_FP32 && o8.lay[2].state == STATE_8BIT && o8.lay[0].limiter == 1 &&
              o8.lay[1].limiter == 1 && o8.lay[0].full_grad && !o8.lay[2].limiter;
    float* w8 = (float*)mallocCheck(sizeof(float) * total);
    float* wf = (float*)mallocCheck(sizeof(float) * total);
    float* wg = (float*)mallocCheck(sizeof(float) * total);
    float* w1 = (float*)mallocCheck(sizeof(float) * 2 * total); // fira8's and fira's weights after step 1
    float* G = (float*)mallocCheck(sizeof(float) * total);
    for (size_t k = 0; k < total; k++) w8[k] = 0.02f * galore_gaussian(0xF1A8ULL, k);
    memcpy(wf, w8, sizeof(float) * total); memcpy(wg, w8, sizeof(float) * total);
    double step1 = 0.0, fp32_all = 0.0, q8_later = 0.0, limerr = 0.0;
    size_t state_diff = 0, proj_diff = 0;
    for (int t = 1; t <= S; t++) {
        // a gradient with a decaying spectrum plus noise (so the SVD's top r are well separated)
        for (size_t k = 0; k < total; k++) G[k] = galore_gaussian(0x6AD0ULL + (uint64_t)t, k) * (1.0f + 0.5f * (float)((k * 2654435761u) % 7));
        of.cfg.eps = sqrtf(1.0f - powf(oc.beta2, (float)t)) * eps8;
        for (int i = 0; i < NP; i++) {
            size_t off = pt.info[i].offset;
            optimizer_update(&o8, i, w8 + off, G + off, 0, lr, t);
            optimizer_update(&of, i, wf + off, G + off, 0, lr, t);
            optimizer_update(&og, i, wg + off, G + off, 0, lr, t);
        }
        for (int i = 0; i < NP; i++) {
            const TensorLayout* l = &o8.lay[i];
            size_t off = pt.info[i].offset, n = (size_t)pt.info[i].numel;
            double e = norm_max_err(w8 + off, wf + off, n);
            if (t == 1 && !(e <= step1)) step1 = e;
            if (l->state == STATE_FP32 && !(e <= fp32_all)) fp32_all = e;
            if (l->proj_numel) proj_diff += memcmp(o8.proj[i], og.proj[i], sizeof(float) * l->proj_numel) != 0;
            if (l->state == STATE_8BIT) {
                state_diff += memcmp(o8.qm[i], og.qm[i], (size_t)l->snumel) != 0 || memcmp(o8.qv[i], og.qv[i], (size_t)l->snumel) != 0 ||
                              memcmp(o8.absmax_m[i], og.absmax_m[i], sizeof(float) * l->nblocks) != 0 ||
                              memcmp(o8.absmax_v[i], og.absmax_v[i], sizeof(float) * l->nblocks) != 0;
            } else {
                state_diff += memcmp(o8.m[i], og.m[i], sizeof(float) * l->snumel) != 0 || memcmp(o8.v[i], og.v[i], sizeof(float) * l->snumel) != 0;
            }
            if (l->limiter && l->state == STATE_FP32) {
                double le = fabs((double)o8.lim[i][0] - of.lim[i][0]) / fabs((double)of.lim[i][0]);
                if (!(le <= limerr)) limerr = le;
            }
        }
        if (t == 1) { memcpy(w1, w8, sizeof(float) * total); memcpy(w1 + total, wf, sizeof(float) * total); }
    }
    // the 8-bit tensors' weight change over steps 2..S, fira8 against fira: normalized max error
    double cosw = 1.0;
    for (int i = 0; i < NP; i++) {
        if (o8.lay[i].state != STATE_8BIT) continue;
        size_t off = pt.info[i].offset, n = (size_t)pt.info[i].numel;
        double dot = 0.0, a2 = 0.0, b2 = 0.0, maxd = 0.0, maxr = 0.0;
        for (size_t k = off; k < off + n; k++) {
            double a = (double)w8[k] - w1[k], b = (double)wf[k] - w1[total + k];
            dot += a * b; a2 += a * a; b2 += b * b;
            if (!(fabs(a - b) <= maxd)) maxd = fabs(a - b);
            if (fabs(b) > maxr) maxr = fabs(b);
        }
        double c = dot / sqrt(a2 * b2), e = maxd / maxr;
        if (!(c >= cosw)) cosw = c;
        if (!(e <= q8_later)) q8_later = e;
    }
    check(lay_ok, "fira_adamw8bit: layout as fira_adamw's (sides, ranks, full gradient, limiter) with galore_adamw8bit's states (A and E 8-bit, B and d 32-bit)");
    // the state: the moments never see lr or the residual, and R is the same bits (same G, same
    // SVD), so the kernel's state after each step must equal galore_adamw8bit's bit for bit
    check(state_diff == 0 && proj_diff == 0, "fira_adamw8bit: low-rank states (8-bit qm, qv, absmax; 32-bit m, v) and projectors equal galore_adamw8bit's "
          "bit for bit after each of %d steps on the same gradients (%zu state, %zu projector mismatches)", S, state_diff, proj_diff);
    // Step 1 reads no quantized state (the zero state dequantizes to exact zeros), so m and v are
    // fira_adamw's operations in fira_adamw's order (the 8-bit kernel's ((1 - b2) g) g is HF's
    // left-to-right product), and the direction differs by the kernel's step size ((c1 / c2) c2) / c1
    // = 1 to 2 roundings; B's and d's 32-bit kernel orders v's product as (1 - b2) (g g): 1 rounding.
    // Everything after N is the same code (phi, residual, limiter, back-projection), the plain
    // tensors' step size -lr c2 / c1 in float against HF's in double (2 roundings) and the decay
    // p (1 - lr wd) against p + (-lr wd) p (2). So a weight moves by a few u of its update plus a few
    // u of itself: <= 8 u = 4.8e-7 normalized; bound 2e-6 (a wrong scale of N, e.g. the kernel at lr,
    // moves phi and the low-rank part by O(1); a wrong eps convention by eps / sqrt(v) ~ 1e-7 / 3e-2).
    check(step1 < 2e-6, "fira_adamw8bit vs fira_adamw (eps_t = c2 eps), step 1 (no quantized state read): normalized max error %.2e (bound 2e-6)", step1);
    // B and d keep 32-bit states in both, so every step is the step-1 comparison again: the per-step
    // differences (<= 8 u each, in the moments and so in N, phi, the limiter) add over S = 7 steps:
    // 7 x 4.8e-7 = 3.4e-6, bound 1e-5 (fp32's); the limiter state, a ratio of norms of S, the same.
    check(fp32_all < 1e-5, "fira_adamw8bit vs fira_adamw, 32-bit-state tensors B and d over %d steps and 2 refreshes: normalized max error %.2e (bound 1e-5)",
          S, fp32_all);
    check(limerr < 1e-5, "fira_adamw8bit vs fira_adamw: B's limiter state over %d steps: max relative error %.2e (bound 1e-5)", S, limerr);
    // A and E from step 2 read quantized state, where fira_adamw reads exact m, v: rule (Q)'s code
    // step is the difference, not a rare flip. Each read moves an element of m by <= half the
    // coarsest code step (the top decade's 0.9 / 64 of the block's absmax: 0.7%) and of v by <= 0.35%;
    // m's error decays by b1 a step: <= 0.7% x (1 + .9 + ... + .9^5) = 3.3% of absmax_m after 6
    // reads, v's (b2 ~ 1) <= 2.1% of absmax_v. N = m / sqrt(v) on an element near its block's
    // absmax moves by <= 3.3% + 2.1% / 2 = 4.4%; on an element with v far below absmax_v its relative
    // error is larger, but its N is bounded (|m| <= sqrt(v) / sqrt(1 - b2) scale-free by Cauchy-Schwarz
    // over the window: |N| <= sqrt(t (1 - b1)^2 / (1 - b2)) <= 8.4 at t 7), the same bound for both, so
    // per element the update's error is <= 2 x its size. Summed: the change of a weight over steps
    // 2..7 differs by <= 4.4% where the block's largest elements dominate; and the worst element can
    // differ by its own full change. Bounds: normalized max error of the change <= 0.5 (a wrong
    // dequantization, a lost refresh or an exploding v-underflow gives >= 1), cosine of the change >= 0.99
    // (the 4.4% on the dominant elements: cos >= 1 - 0.044^2 / 2 ~ 0.999; margin 10x in 1 - cos).
    check(q8_later < 0.5 && cosw > 0.99, "fira_adamw8bit vs fira_adamw, 8-bit tensors A and E: weight change over steps 2..%d: normalized max error "
          "%.2e (bound 0.5), worst cosine %.5f (bound 0.99)", S, q8_later, cosw);
    optimizer_free(&o8); optimizer_free(&of); optimizer_free(&og);
    free(w8); free(wf); free(wg); free(w1); free(G); free(pt.info);
}
// --- end fira 8-bit ---

// ---- APOLLO against apollo-torch 1.0.3 (dev/ref/make_apollo_reference.py) ----
#define APOLLO_DIR "dev/ref/apollo"

// unit_*.bin (magic 20250105): APOLLOAdamW on stored synthetic gradients with OUR projectors
// injected into the package (the script explains why and how): weights and the limiter's state
// after every step, the projectors of every refresh, the final moments. The first NG params are
// APOLLO params; the rest take HF AdamW's plain path.
static void test_apollo_unit(const char* file) {
    char path[256];
    int32_t h[256];
    long flen;
    snprintf(path, sizeof path, APOLLO_DIR "/%s", file);
    FILE* f = unit_open(path, h, &flen);
    if ((h[0] != 20250105 && h[0] != 20250106) || h[1] != 1) die("%s: bad magic; hint: rerun dev/ref/make_apollo_reference.py", path);
    int np = h[2], S = h[3], nr_file = h[7], ng = h[8];
    if (np < 1 || np > 64 || S < 2 || S > 1000 || h[4] < 1 || h[5] < 1 || nr_file < 1 || nr_file > 16 || ng < 1 || ng > np || ng > 3 ||
        h[6] < 0 || h[6] > 1 || h[12] < 0 || h[12] > 1 || h[13] < 0 || h[13] > 2 || (h[13] == 2) != (h[0] == 20250106))
        die("%s: implausible header; hint: rerun dev/ref/make_apollo_reference.py", path);
    OptimConfig oc;
    float lr = unit_config(h, &oc, h[13] == 2 ? OPTIM_APOLLO_ADAMW8BIT : h[13] == 1 ? OPTIM_APOLLO_MINI : OPTIM_APOLLO_ADAMW);
    const int is8 = oc.kind == OPTIM_APOLLO_ADAMW8BIT; // unit8bit.bin: the numpy APOLLO around the kernel model
    oc.proj_type = h[6] ? PROJ_REVERSE_STD : PROJ_STD;
    oc.scale_type = h[12] ? APOLLO_SCALE_TENSOR : APOLLO_SCALE_CHANNEL;
    oc.apollo_scale = hdr_float(h, 21);
    ParamTable pt;
    unit_param_table(f, path, np, ng, &pt, "dev/ref/make_apollo_reference.py");
    Optimizer o;
    optimizer_init(&o, &pt, &oc);
    size_t pn = 0, sn = 0;
    int sides_ok = 1;
    for (int i = 0; i < np; i++) {
        const TensorLayout* l = &o.lay[i];
        pn += (size_t)l->proj_numel;
        if (i < ng) { sn += 2 * (size_t)l->snumel; sides_ok &= l->full_grad && l->side == (h[9 + i] == 0 ? SIDE_RIGHT : SIDE_LEFT); }
        else sides_ok &= l->side == SIDE_NONE;
    }
    UnitRun u;
    unit_run_begin(&u, f, path, flen, &o, &pt, ng, S, nr_file, ng, sn, "dev/ref/make_apollo_reference.py");
    // beta2's one known difference: the package's v update adds (1 - beta2) * g^2 with 1 - 0.999
    // computed from Python's double and rounded to float (0.001f), ours from the float beta2:
    // 1 - 0.999f = 9.99987e-4, 1.29e-5 smaller. v is linear in that coefficient (v_0 = 0), so ours
    // is exactly rho = 0.001f / (1 - 0.999f) times smaller, and D = m / sqrt(v), the scaling factors
    // and the limiter's state (||S||, linear in D) sqrt(rho) larger; the step size's bias correction
    // sqrt(1 - beta2^t) carries the same factor from the same float beta2, so the weights do not
    // (the galore_adamw path shares this). The checks below divide rho out and then compare.
    char b2s[32];
    snprintf(b2s, sizeof b2s, "%.7g", oc.beta2); // the decimal the package was given
    double rho = (double)(float)(1.0 - atof(b2s)) / (double)(1.0f - oc.beta2);
    if (is8) rho = 1.0; // the kernel model computes 1 - beta2 in float32, as adam8bit.h
    double step1 = 0.0;
    double werr = 0.0, lerr = 0.0, plain = 0.0;
    int werr_at = -1, werr_step = 0;
    for (int t = 1; t <= S; t++) {
        unit_run_step(&u, t, lr, oc.update_proj_gap);
        for (int i = 0; i < np; i++) {
            double e = u.err[i];
            if (i >= ng && !(e <= plain)) plain = e;
            if (t == 1 && !(e <= step1)) step1 = e;
            if (!(e <= werr)) { werr = e; werr_at = i; werr_step = t; }
        }
        for (int i = 0; i < ng; i++) {
            double e = fabs((double)o.lim[i][0] / sqrt(rho) - u.lim[i]) / fabs((double)u.lim[i]);
            if (!(e <= lerr)) lerr = e;
        }
    }
    unit_run_end(&u);
    int nref = u.nref;
    float** ours_proj = u.ours_proj;
    size_t pdiff = 0;
    float* rp = (float*)mallocCheck(sizeof(float) * pn);
    for (int k = 0; k < nref; k++) {
        freadCheck(rp, sizeof(float), pn, f, path);
        for (size_t j = 0; j < pn; j++) pdiff += memcmp(&rp[j], &ours_proj[k][j], sizeof(float)) != 0;
        free(ours_proj[k]);
    }
    free(rp);
    double merr = 0.0;
    for (int i = 0; i < ng; i++) {
        const TensorLayout* l = &o.lay[i];
        float* mr = (float*)mallocCheck(sizeof(float) * 2 * (size_t)l->snumel);
        freadCheck(mr, sizeof(float), 2 * (size_t)l->snumel, f, path);
        float* om = (float*)mallocCheck(sizeof(float) * 2 * (size_t)l->snumel);
        for (int64_t k = 0; k < l->snumel; k++) {
            if (l->state == STATE_8BIT) { // dequantized, as the file stores them
                om[k] = o.map_m[o.qm[i][k]] * o.absmax_m[i][k / ADAM8_BLOCK];
                om[l->snumel + k] = o.map_v[o.qv[i][k]] * o.absmax_v[i][k / ADAM8_BLOCK];
            } else { om[k] = o.m[i][k]; om[l->snumel + k] = o.v[i][k] * (float)rho; }
        }
        double em = norm_max_err(om, mr, (size_t)l->snumel), ev = norm_max_err(om + l->snumel, mr + l->snumel, (size_t)l->snumel);
        free(om);
        if (em > merr) merr = em;
        if (ev > merr) merr = ev;
        free(mr);
    }
    fclose(f);
    char name[96];
    snprintf(name, sizeof name, "%s %s-wise rank %d scale %g %s", OPTIM_NAMES[oc.kind], APOLLO_SCALE_NAMES[oc.scale_type], oc.rank,
             oc.apollo_scale, PROJ_NAMES[oc.proj_type]);
    check(sides_ok, "%s: sides, full-gradient updates and plain tensors as the file says", name);
    // the projectors: galore_gaussian and its numpy transcription in the generator are the same
    // IEEE float32 operations on the same integers, so the bits must agree (a transcription's fmaf
    // could differ by double rounding with probability ~2^-29 per operation: none here)
    check(pdiff == 0, "%s: projectors of %d refreshes (galore_gaussian, seeds apollo_proj_seed(tensor, round)) bit for bit as injected into the package: %zu of %zu differ",
          name, nref, pdiff, pn * (size_t)nref);
    // Bounds, rule (F) on the same inputs (the file's gradients, the same projector bits, rho
    // divided out): the engines differ only in summation order. R = G P^T or P^T G: sums of K <= 40
    // terms, relative error ~ sqrt(K) u = 3.8e-7; the moments and D are elementwise in R (Adam is
    // scale-invariant, so D moves by about R's relative error); the norms: ours in double, the
    // package's in fp32 over <= 1280 elements (tensor-wise: sqrt(1280) u = 2.1e-6). So s_c and
    // ||S|| carry e <= 2 x 3.8e-7 + 2 x 2.1e-6 = 5e-6 a step (channel-wise ~1e-6). The limiter's
    // state prev = ||S|| / lim: on a held step prev_t = 1.01 prev_(t-1), so its error persists, on
    // a passing step it is fresh; independent errors over <= 7 held steps add in quadrature:
    // sqrt(7) x 5e-6 = 1.3e-5, bound 3e-5. The weights: each step moves W by lr c sqrt(scale) S with
    // relative error <= 5e-6 + 1.3e-5, over S = 8 steps in quadrature 5e-5 of max|dW|, and here
    // the updates dominate W (max|dW| / max|W| <= 1): bound 1e-4 (a wrong formula is off by
    // >= 1e-3: a missing sqrt(scale) by 41%..1000%, the limiter by 1-200%, the wrong channel side
    // O(1)). The moments: HF's recurrences on R average its 3.8e-7 (v, a square: 7.6e-7): bound 3e-6.
    // The plain tensor d: HF AdamW elementwise on identical inputs, galore_adamw's plain path: 1e-6.
    // unit8bit.bin, rule (Q) as test_galore_unit's 8-bit file: the plain d runs the 32-bit kernel on
    // identical inputs in both (-ffp-contract=off): bit for bit. Step 1 reads no quantized state:
    // the fp32 bounds above. From step 2 on R differs by its 3.8e-7 and a value near a code boundary
    // may take the neighbouring code (probability <= 2 e / 1.4e-2 per element: a few of 5376): one
    // flip moves one element of m by <= 1/64 of its block's absmax, so one element of D by <= 1.6% of
    // the block's largest |D|; s_c = ||D_c|| / ||R_c|| over r = 56 elements moves by <= 1.6% (the
    // flipped element alone carrying the channel's norm: the worst case), and so does that channel's
    // row (column) of the update and ||S||. Carried through the limiter (<= 6 steps) and summed over
    // the <= 6 later steps with updates dominating W (as above): 6 x 1.6% = 0.1 of one step's
    // update relative to max|W|; with max|dW_t| / max|W| <= 1/S here (W is the sum of S similar
    // steps and the decay): <= 1.4e-2. Bounds 2e-2 for the weights and the limiter state; the
    // dequantized moments: one code step is <= 1/64 of the block's absmax (v 1/128): 2e-2.
    double b_w = is8 ? 2e-2 : 1e-4, b_l = is8 ? 2e-2 : 3e-5, b_m = is8 ? 2e-2 : 3e-6;
    if (is8) {
        check(plain == 0.0, "%s: plain tensor (bitsandbytes' 32-bit kernel) over %d steps: normalized max error %.2e (bit for bit)", name, S, plain);
        check(step1 < 1e-5, "%s: weights after step 1 (no quantized state read yet): normalized max error %.2e (bound 1e-5)", name, step1);
    } else {
        check(plain < 1e-6, "%s: plain tensor (HF AdamW) over %d steps: normalized max error %.2e (bound 1e-6)", name, S, plain);
    }
    check(lerr < b_l, "%s: norm-growth limiter state over %d steps: max relative error %.2e (bound %.0e)", name, S, lerr, b_l);
    check(werr < b_w, "%s: weights over %d steps and %d refreshes vs %s: normalized max error %.2e (param %d, step %d; bound %.0e)",
          name, S, nref - 1, is8 ? "the numpy APOLLO + kernel model" : "apollo-torch", werr, werr_at, werr_step, b_w);
    check(merr < b_m, "%s: final low-rank moments m, v (%s) vs the reference: normalized max error %.2e (bound %.0e)", name,
          is8 ? "dequantized" : "v times rho", merr, b_m);
    optimizer_free(&o);
    unit_run_free(&u); free(pt.info);
}
// ---- end APOLLO ----



// ----------------------------------------------------------------------------
// INT8 weights (--weights int8, weight8.h; issue 25)

// the rule against q-galore-torch 1.0's own _quantize (dev/ref/make_weight8_reference.py): codes,
// scales and zero points bit for bit, and the dequantized values. Both sides do the same fp32
// operations in the same order (max - min, clamp, / 255, / scale, round half to even, + zero,
// clamp; (code - zero) * scale), each correctly rounded, so there is no tolerance. The cases
// cover a short last group, constant groups, zero points that clamp, and exact halves.
static void test_weight8_reference(void) {
    SafeTensors st;
    safetensors_open(&st, "dev/ref/weight8/ref.safetensors");
    const SafeTensor* gt = safetensors_find(&st, "groups");
    if (gt == NULL) die("dev/ref/weight8/ref.safetensors: no \"groups\"; regenerate with dev/ref/make_weight8_reference.py");
    int nc = (int)gt->numel;
    float groups[16];
    if (nc > 16) die("dev/ref/weight8/ref.safetensors: %d cases, at most 16 expected", nc);
    safetensors_read_f32(&st, gt, groups);
    for (int c = 0; c < nc; c++) {
        char name[32];
        const char* parts[5] = {"w", "codes", "scales", "zeros", "deq"};
        float* ref[5];
        int64_t len[5];
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof name, "%s.%d", parts[k], c);
            const SafeTensor* t = safetensors_find(&st, name);
            if (t == NULL) die("dev/ref/weight8/ref.safetensors: no %s; regenerate with dev/ref/make_weight8_reference.py", name);
            len[k] = t->numel;
            ref[k] = (float*)mallocCheck(sizeof(float) * (size_t)t->numel);
            safetensors_read_f32(&st, t, ref[k]);
        }
        int64_t n = len[0], G = (int64_t)groups[c], ng = weight8_groups(n, G);
        uint8_t* codes = (uint8_t*)mallocCheck((size_t)n);
        uint8_t* zeros = (uint8_t*)mallocCheck((size_t)ng);
        float* scales = (float*)mallocCheck(sizeof(float) * (size_t)ng);
        float* deq = (float*)mallocCheck(sizeof(float) * (size_t)n);
        weight8_quantize(ref[0], n, G, 0, 0, codes, scales, zeros);
        weight8_dequantize(codes, n, G, scales, zeros, deq);
        int64_t bad_c = 0, bad_s = 0, bad_z = 0, bad_d = 0;
        for (int64_t k = 0; k < n; k++) { bad_c += (float)codes[k] != ref[1][k]; bad_d += deq[k] != ref[4][k]; }
        for (int64_t g = 0; g < ng; g++) { bad_s += scales[g] != ref[2][g]; bad_z += (float)zeros[g] != ref[3][g]; }
        check(len[1] == n && len[2] == ng && len[3] == ng && bad_c + bad_s + bad_z + bad_d == 0,
              "weight8 vs q-galore-torch _quantize, case %d (%lld elements, group %lld, %lld groups): codes %lld, scales %lld, zeros %lld, "
              "dequantized %lld differ (bit for bit)", c, (long long)n, (long long)G, (long long)ng, (long long)bad_c, (long long)bad_s,
              (long long)bad_z, (long long)bad_d);
        for (int k = 0; k < 5; k++) free(ref[k]);
        free(codes); free(zeros); free(scales); free(deq);
    }
    safetensors_close(&st);
}

// stochastic rounding is unbiased: over N requantizations of one group (the seeds of updates
// 1..N of one tensor), element k's code is floor(x) + Bernoulli(p), x = w / scale + zero, p its
// fraction, so the mean code of N draws has expectation x and standard deviation
// sqrt(p (1 - p) / N) steps. Bound: 6 of those (a false failure ~2e-9 per element, 256 elements;
// the draws are a fixed hash, so the outcome is the same on every machine). p = 0 elements must be
// exact. Nearest rounding would be off by min(p, 1 - p) (up to 0.5 steps, >= 80 sigma here), a
// draw that ignored the update would repeat one code (off by p or 1 - p). Elements whose ceiling
// clamps at 255 (or floor at 0) are left out: clamping biases them by design.
static void test_weight8_stochastic(void) {
    enum { NG = 256, NDRAW = 4000 };
    float w[NG];
    Rng rng;
    rng_init(&rng, 25);
    for (int k = 0; k < NG; k++) w[k] = (float)(0.05 * (2.0 * rng_uniform(&rng) - 1.0));
    w[0] = -0.05f; w[1] = 0.045f; // the range (zero point 134 after rounding: not symmetric)
    uint8_t codes[NG], zero;
    float scale;
    static int64_t sum[NG];
    memset(sum, 0, sizeof sum);
    for (int t = 1; t <= NDRAW; t++) {
        weight8_quantize(w, NG, NG, 1, weight8_seed(42, t, 3), codes, &scale, &zero);
        for (int k = 0; k < NG; k++) sum[k] += codes[k];
    }
    double worst = 0.0; // in sigmas
    int bad = 0, used = 0, exact_bad = 0;
    for (int k = 0; k < NG; k++) {
        float x = GALORE_DIV(w[k], scale), f = floorf(x);
        double p = (double)(x - f), fz = (double)f + zero;
        if (fz < 0.0 || fz + 1.0 > W8_LEVELS) continue;
        used++;
        double err = fabs((double)sum[k] / NDRAW - (fz + p));
        if (p == 0.0) { exact_bad += err != 0.0; continue; }
        double sigma = sqrt(p * (1.0 - p) / NDRAW);
        if (err / sigma > worst) worst = err / sigma;
        bad += err > 6.0 * sigma;
    }
    check(used > NG - 4 && bad == 0 && exact_bad == 0,
          "weight8 stochastic rounding unbiased over %d draws: %d elements, worst mean-code error %.2f sigma (bound 6, sigma = sqrt(p(1-p)/N) steps)",
          NDRAW, used, worst);
}

// every optimizer kind trains with --weights int8 (2 steps of the reference model, G 128 over its
// 60- and 84-wide rows): finite losses; every quantized tensor's weights are exactly its codes
// dequantized (the requantization wrote them back), and the updates moved codes. Then per-layer
// against whole-model, bit for bit (the draws depend on (seed, update, tensor, element) only), for
// three kinds; --grad-accum 2 and --weight-int8-embed 1 once each.
static void test_weight8_runs(void) {
    LlamaConfig c;
    llama_config_from_json(&c, REF_DIR "/config.json");
    ParamTable pt;
    param_table_build(&pt, &c);
    float* init = (float*)mallocCheck(sizeof(float) * pt.total);
    float* a = (float*)mallocCheck(sizeof(float) * pt.total);
    float* b = (float*)mallocCheck(sizeof(float) * pt.total);
    float* deq = (float*)mallocCheck(sizeof(float) * pt.total);
    float losses[8], logits[7 * 256];
    if (c.V > 256) die("internal: test_weight8_runs' logits buffer");
    size_t act;
    llama_load_params(&pt, init, REF_DIR "/model.safetensors");
    Weight8 w0; // the initial nearest quantization, to see that updates move codes
    memcpy(a, init, sizeof(float) * pt.total);
    weight8_init(&w0, &pt, 128, 1);
    weight8_quantize_params(&w0, &pt, a);
    struct { int kind, proj, per_layer, accum, embed; } runs[] = {
        {OPTIM_ADAMW, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_ADAM, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_ADAM8BIT, PROJECTOR_SVD, 0, 1, 0},
        {OPTIM_GALORE_ADAMW, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_GALORE_ADAMW8BIT, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_FIRA_ADAMW, PROJECTOR_SVD, 0, 1, 0},
        {OPTIM_FIRA_ADAMW8BIT, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_APOLLO_ADAMW, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_APOLLO_ADAMW8BIT, PROJECTOR_SVD, 0, 1, 0},
        {OPTIM_APOLLO_MINI, PROJECTOR_SVD, 0, 1, 0}, {OPTIM_GALORE_ADAMW, PROJECTOR_RANDOM, 0, 1, 0}, {OPTIM_GALORE_ADAMW, PROJECTOR_SVD, 1, 2, 0},
        {OPTIM_ADAMW, PROJECTOR_SVD, 0, 1, 1},
    };
    int nruns = (int)(sizeof runs / sizeof runs[0]);
    for (int k = 0; k < nruns; k++) {
        OptimConfig oc = small_optim(runs[k].kind, runs[k].proj);
        oc.w8_group = 128; oc.w8_embed = runs[k].embed;
        Weight8 w8;
        g_run_w8 = &w8;
        recompute_run(&c, init, &oc, runs[k].per_layer, runs[k].accum, 0.0f, 0, 2, losses, a, logits, &act);
        g_run_w8 = NULL;
        memcpy(deq, a, sizeof(float) * pt.total);
        weight8_dequantize_params(&w8, &pt, deq);
        int64_t moved = 0, quantized = 0;
        for (int i = 0; i < pt.n; i++) {
            if (w8.numel[i] == 0) continue;
            quantized += w8.numel[i];
            for (int64_t e = 0; e < w8.numel[i]; e++) moved += w8.codes[i][e] != w0.codes[i][e];
        }
        int embed_ok = !runs[k].embed || (w8.numel[0] == pt.info[0].numel && w8.numel[pt.n - 1] == pt.info[pt.n - 1].numel);
        check(isfinite(losses[0]) && isfinite(losses[1]) && memcmp(deq, a, sizeof(float) * pt.total) == 0 && moved > 0 && embed_ok,
              "%s%s%s%s --weights int8: 2 steps, losses %.5f %.5f; the %d quantized tensors (%lld elements%s) are their codes dequantized, "
              "%lld codes moved", OPTIM_NAMES[oc.kind], oc.projector == PROJECTOR_RANDOM ? " --proj random" : "", runs[k].per_layer ? " --per-layer 1" : "",
              runs[k].accum > 1 ? " --grad-accum 2" : runs[k].embed ? " --weight-int8-embed 1" : "", losses[0], losses[1], w8.tensors,
              (long long)quantized, runs[k].embed ? ", embedding and lm_head too" : "", (long long)moved);
        weight8_free(&w8);
    }
    int pk[3] = {OPTIM_GALORE_ADAMW, OPTIM_APOLLO_MINI, OPTIM_ADAM8BIT};
    for (int k = 0; k < 3; k++) {
        OptimConfig oc = small_optim(pk[k], PROJECTOR_SVD);
        oc.w8_group = 128;
        run_steps(&c, &oc, 0, 1, 5, a);
        run_steps(&c, &oc, 1, 1, 5, b);
        check(memcmp(a, b, sizeof(float) * pt.total) == 0, "%s --weights int8: --per-layer weights after 5 steps equal the whole-model step's bit for bit",
              OPTIM_NAMES[oc.kind]);
    }
    // the CPU memory plan's int8 rows are what weight8_init allocates (codes; fp32 scales + 8-bit zeros)
    OptimConfig oc = small_optim(OPTIM_GALORE_ADAMW, PROJECTOR_SVD);
    oc.w8_group = 128; oc.w8_embed = 1;
    MemPlan mp;
    memplan_build(&mp, &c, &oc, 0, 1, 3, 13, 0);
    double planned = 0.0;
    for (int i = 0; i < mp.n; i++) if (strncmp(mp.items[i].name, "int8 weight", 11) == 0) planned += mp.items[i].bytes;
    double allocated = (double)w0.total + (sizeof(float) + 1.0) * (double)w0.groups;
    check(planned == allocated, "memory plan --weights int8 --weight-int8-embed 1: codes, scales and zeros %.0f bytes planned, %.0f allocated", planned, allocated);
    weight8_free(&w0);
    free(init); free(a); free(b); free(deq);
    param_table_free(&pt);
}

int main(int argc, char** argv) {
    set_threads(0);
    if (argc == 3 && strcmp(argv[1], "hf") == 0) { // dev/test/test_hf.sh
        test_hf_sharded_bf16(argv[2]);
        test_hf_save_sharded(argv[2]);
        test_hf_llama3_rope(argv[2]);
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return n_fail == 0 ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "fira") == 0) { // only issue 15's Fira / GoLore checks
        test_fira_unit("unit.bin", PROJ_STD);
        test_fira_unit("unit_scale1.bin", PROJ_REVERSE_STD);
        test_golore();
        test_per_layer();
        test_fira_memplan();
        test_fira8bit();
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return n_fail == 0 ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "weight8") == 0) { // only issue 25's INT8 weight checks
        test_weight8_reference();
        test_weight8_stochastic();
        test_weight8_runs();
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return n_fail == 0 ? 0 : 1;
    }
    if (argc == 2 && strcmp(argv[1], "sample") == 0) { test_sampling(); printf("%d passed, %d failed\n", n_pass, n_fail); return n_fail == 0 ? 0 : 1; }
    if (argc != 1) die("usage: %s [hf DIR | fira | weight8 | sample]  (fira: only the Fira / GoLore checks; weight8: only the INT8 weight checks; sample: only the sampling checks; hf: the checks of dev/test/test_hf.sh on the folders of dev/test/make_hf_folders.py)", argv[0]);
    test_parity();
    test_presets();
    test_save_load();
    test_hf_families();
    test_schedule();
    test_sampling();
    test_grad_accum();
    test_per_layer();
    test_recompute();
    test_memplan();
    test_layer_hook();
    test_galore_unit("unit.bin", PROJ_STD);
    test_galore_unit("unit_reverse.bin", PROJ_REVERSE_STD);
    test_galore_unit("unit8bit.bin", PROJ_STD);
    test_galore_svd();
    test_refresh_threads();
    test_galore_e2e("e2e_adamw.bin", OPTIM_GALORE_ADAMW);
    test_galore_e2e("e2e_adamw8bit.bin", OPTIM_GALORE_ADAMW8BIT);
    test_fira_unit("unit.bin", PROJ_STD);
    test_fira_unit("unit_scale1.bin", PROJ_REVERSE_STD);
    test_golore();
    test_fira_memplan();
    test_fira8bit();
    test_apollo_unit("unit_channel.bin");        // APOLLO
    test_apollo_unit("unit_mini.bin");
    test_apollo_unit("unit_tensor_reverse.bin");
    test_apollo_unit("unit8bit.bin");
    test_weight8_reference();                     // INT8 weights (issue 25)
    test_weight8_stochastic();
    test_weight8_runs();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
