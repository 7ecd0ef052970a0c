// dev/ref/reference.h: the PyTorch reference of dev/ref/make_reference.py (dev/ref/tiny/ref.bin),
// read by both parity tests, test_llama.c (CPU) and test_llama.cu (GPU). Layout: a header of 256
// int32 (floats stored bitwise in slots 16..23), then inputs, targets, logits, loss, grads, and the
// losses and final weights of 10 AdamW and 10 Adam steps (see make_reference.py).
#ifndef REFERENCE_H
#define REFERENCE_H

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "../../utils.h"
#include "../../llama.h"

#define REF_DIR "dev/ref/tiny"

typedef struct {
    int B, T, V, P, S, ntensors, warmup, N;
    float lr, beta1, beta2, eps_adamw, wd, clip, min_ratio, eps_adam;
    int* inputs; int* targets;
    float* logits; float loss; float* grads;
    float* losses_adamw; float* params_adamw; float* losses_adam; float* params_adam;
} Reference;

static float hdr_float(const int32_t* h, int i) { float f; memcpy(&f, &h[i], 4); return f; }

static void reference_load(Reference* r, const char* path, const ParamTable* pt) {
    FILE* f = fopenCheck(path, "rb");
    int32_t h[256];
    freadCheck(h, sizeof(int32_t), 256, f, path);
    if (h[0] != 20241125 || h[1] != 1) die("%s: bad magic/version; hint: rerun dev/ref/make_reference.py", path);
    r->B = h[2]; r->T = h[3]; r->V = h[4]; r->P = h[5]; r->S = h[6]; r->ntensors = h[7]; r->warmup = h[8]; r->N = h[9];
    r->lr = hdr_float(h, 16); r->beta1 = hdr_float(h, 17); r->beta2 = hdr_float(h, 18); r->eps_adamw = hdr_float(h, 19);
    r->wd = hdr_float(h, 20); r->clip = hdr_float(h, 21); r->min_ratio = hdr_float(h, 22); r->eps_adam = hdr_float(h, 23);
    if ((size_t)r->P != pt->total || r->ntensors != pt->n) die("%s: %d floats in %d tensors, the table has %zu in %d", path, r->P, r->ntensors, pt->total, pt->n);
    size_t BT = (size_t)r->B * r->T;
    r->inputs = (int*)mallocCheck(sizeof(int) * BT);
    r->targets = (int*)mallocCheck(sizeof(int) * BT);
    r->logits = (float*)mallocCheck(sizeof(float) * BT * r->V);
    r->grads = (float*)mallocCheck(sizeof(float) * r->P);
    r->losses_adamw = (float*)mallocCheck(sizeof(float) * r->S);
    r->params_adamw = (float*)mallocCheck(sizeof(float) * r->P);
    r->losses_adam = (float*)mallocCheck(sizeof(float) * r->S);
    r->params_adam = (float*)mallocCheck(sizeof(float) * r->P);
    freadCheck(r->inputs, sizeof(int), BT, f, path);
    freadCheck(r->targets, sizeof(int), BT, f, path);
    freadCheck(r->logits, sizeof(float), BT * r->V, f, path);
    freadCheck(&r->loss, sizeof(float), 1, f, path);
    freadCheck(r->grads, sizeof(float), r->P, f, path);
    freadCheck(r->losses_adamw, sizeof(float), r->S, f, path);
    freadCheck(r->params_adamw, sizeof(float), r->P, f, path);
    freadCheck(r->losses_adam, sizeof(float), r->S, f, path);
    freadCheck(r->params_adam, sizeof(float), r->P, f, path);
    fclose(f);
}

static void reference_free(Reference* r) {
    free(r->inputs); free(r->targets); free(r->logits); free(r->grads);
    free(r->losses_adamw); free(r->params_adamw); free(r->losses_adam); free(r->params_adam);
}

// dev/ref/make_hf_families.py's references: DIR/ref.safetensors (F32) of one family's folder:
// tokens and targets (B, T) (integers, exact in F32), logits (B, T, V), loss, and "grad.<HF name>"
// of each tensor, gathered here into the table's layout (grads[offset of tensor i ...])
#define HF_FAMILIES 5
static const char* const HF_FAMILY_NAMES[HF_FAMILIES] = {"llama2", "llama3", "tied", "headdim", "linear"};

typedef struct {
    int B, T;
    int* inputs; int* targets;  // (B*T) each
    float* logits; float loss;  // (B*T*V)
    float* grads;               // (pt->total)
} HfRef;

static void hf_ref_load(HfRef* r, const char* dir, const LlamaConfig* c, const ParamTable* pt) {
    char path[512];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    SafeTensors rs;
    safetensors_open(&rs, path);
    const SafeTensor* tt = safetensors_find(&rs, "tokens");
    if (tt == NULL || tt->ndim != 2 || tt->shape[0] * tt->shape[1] > 4096) die("%s: no tokens (B, T); hint: rerun dev/ref/make_hf_families.py", path);
    r->B = (int)tt->shape[0]; r->T = (int)tt->shape[1];
    int BT = r->B * r->T;
    float* ft = (float*)mallocCheck(sizeof(float) * 2 * (size_t)BT);
    const SafeTensor* tg = safetensors_find(&rs, "targets");
    const SafeTensor* tl = safetensors_find(&rs, "logits");
    const SafeTensor* ts = safetensors_find(&rs, "loss");
    if (tg == NULL || tl == NULL || ts == NULL || tl->ndim != 3 || tl->shape[2] != c->V) die("%s: targets, logits (B, T, V) or loss missing", path);
    safetensors_read_f32(&rs, tt, ft);
    safetensors_read_f32(&rs, tg, ft + BT);
    r->inputs = (int*)mallocCheck(sizeof(int) * 2 * (size_t)BT);
    r->targets = r->inputs + BT;
    for (int i = 0; i < 2 * BT; i++) r->inputs[i] = (int)ft[i];
    free(ft);
    r->logits = (float*)mallocCheck(sizeof(float) * (size_t)BT * c->V);
    safetensors_read_f32(&rs, tl, r->logits);
    safetensors_read_f32(&rs, ts, &r->loss);
    r->grads = (float*)mallocCheck(sizeof(float) * pt->total);
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        const SafeTensor* gt = safetensors_find(&rs, gname);
        if (gt == NULL || gt->shape[0] * (gt->ndim > 1 ? gt->shape[1] : 1) != p->numel) die("%s: no %s of %lld elements", path, gname, (long long)p->numel);
        safetensors_read_f32(&rs, gt, r->grads + p->offset);
    }
    safetensors_close(&rs);
}

// hf_family_shard: a token shard (llm.c format, uint16) of the families' vocabulary (64): 1024
// tokens of a fixed sequence, for the tests' training runs on these models
static void hf_family_shard(const char* path) {
    FILE* f = fopenCheck(path, "wb");
    int32_t h[256] = {20240520, 1, 1024};
    fwrite(h, sizeof h, 1, f);
    for (int i = 0; i < 1024; i++) { uint16_t t = (uint16_t)((i * 37 + (i / 7) * 11) % 64); fwrite(&t, 2, 1, f); }
    fclose(f);
}

static void hf_ref_free(HfRef* r) { free(r->inputs); free(r->logits); free(r->grads); }

#endif // REFERENCE_H
