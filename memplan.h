// memplan.h: the memory plan. For a (config, optimizer, flags, engine) it lists every buffer
// the program allocates and its bytes, computed without allocating anything, so that the plan
// of llama_7b can be printed on any machine. The CPU engine allocates its activations and
// optimizer state from the same functions (cpu_activation_sizes, tensor_layout), so the plan
// cannot drift from what is allocated. The GPU engine adds its own rows (issue: CUDA trainer).
#ifndef MEMPLAN_H
#define MEMPLAN_H

#include <stdio.h>
#include <string.h>
#include "llama.h"
#include "galore.h"

enum { ENGINE_CPU = 0, ENGINE_GPU = 1 };

// bytes per element of each kind of buffer. CPU: fp32 everywhere. GPU: the paper's pure bf16
// (weights, gradients, Adam moments and projectors in bf16; bitsandbytes' 32-bit path for small
// tensors stays fp32; absmax fp32).
typedef struct { int weight, grad, moment, proj, act; } EngineBytes;
static EngineBytes engine_bytes(int engine) {
    EngineBytes e;
    if (engine == ENGINE_GPU) { e.weight = 2; e.grad = 2; e.moment = 2; e.proj = 2; e.act = 2; }
    else { e.weight = 4; e.grad = 4; e.moment = 4; e.proj = 4; e.act = 4; }
    return e;
}

// ----------------------------------------------------------------------------
// CPU activations: the list train_llama.c allocates (one allocation, then a pointer table)

#define CPU_NUM_ACT 18
static const char* const CPU_ACT_NAMES[CPU_NUM_ACT] = {
    "res", "ln1", "rstd1", "qkv", "att", "atty", "res2", "ln2", "rstd2", "gu", "act",
    "lnf", "rstdf", "logits", "losses", "lse", "dres", "scratch",
};
// recompute 1 (--recompute): res keeps every layer's input, the other per-layer buffers (ln1 ..
// act) hold one layer, which backward refills layer by layer
static void cpu_activation_sizes(const LlamaConfig* c, int B, int T, int recompute, size_t sizes[CPU_NUM_ACT]) {
    size_t L = c->L, C = c->C, H = c->H, NH = c->NH, V = c->V, BT = (size_t)B * T;
    size_t KV = (size_t)c->NKV * (C / NH);
    size_t scratch = 3 * H > C + 2 * KV ? 3 * H : C + 2 * KV; // dact + dgu, or dqkv
    size_t Lk = recompute ? 1 : L; // layers of the per-layer buffers kept
    size_t s[CPU_NUM_ACT] = {
        (L + 1) * BT * C, Lk * BT * C, Lk * BT, Lk * BT * (C + 2 * KV),
        Lk * B * NH * T * T, Lk * BT * C, Lk * BT * C, Lk * BT * C, Lk * BT, Lk * BT * 2 * H,
        Lk * BT * H, BT * C, BT, BT * V, BT, BT, BT * C, BT * scratch,
    };
    memcpy(sizes, s, sizeof s);
}

// ----------------------------------------------------------------------------
// the plan

typedef struct { char name[64]; double bytes; int transient; } MemItem;
typedef struct { MemItem items[16]; int n; double total, transient; } MemPlan;

static void memplan_add(MemPlan* mp, const char* name, double bytes, int transient) {
    if (bytes <= 0.0 || mp->n >= 16) return;
    MemItem* it = &mp->items[mp->n++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->bytes = bytes;
    it->transient = transient;
    if (transient) mp->transient += bytes; else mp->total += bytes;
}

// memplan_build: per_layer and grad_accum as the trainer runs them; recompute as --recompute
// (the CPU's activations; the GPU engine's are train_llamacu's plan)
static void memplan_build(MemPlan* mp, const LlamaConfig* c, const OptimConfig* oc, int per_layer, int grad_accum,
                          int B, int T, int engine, int recompute) {
    memset(mp, 0, sizeof *mp);
    EngineBytes eb = engine_bytes(engine);
    ParamTable pt;
    param_table_build(&pt, c);
    double P = (double)pt.total;
    // gradients: whole model, or the largest update group (llama.h's param_group)
    double grads = (double)grad_layout(&pt, c, per_layer, NULL);
    // optimizer state from the per-tensor layout
    double moments = 0.0, q8 = 0.0, absmax = 0.0, proj = 0.0, max_s = 0.0, max_full = 0.0;
    double acc_full = 0.0, acc_low = 0.0, galore_full = 0.0;
    for (int i = 0; i < pt.n; i++) {
        TensorLayout l;
        tensor_layout(&l, &pt.info[i], oc);
        if (l.state == STATE_8BIT) { q8 += 2.0 * l.snumel; absmax += 2.0 * 4 * l.nblocks; }
        else moments += 2.0 * l.snumel * (optim_is_8bit(oc->kind) ? 4 : eb.moment); // bnb's 32-bit path is fp32
        proj += (double)l.proj_numel * eb.proj;
        if (l.side != SIDE_NONE) {
            if (l.snumel > max_s) max_s = (double)l.snumel;
            if ((double)(l.m * l.n) > max_full) max_full = (double)(l.m * l.n);
            acc_low += (double)l.snumel;
            galore_full += (double)(l.m * l.n);
        } else acc_full += (double)pt.info[i].numel;
    }
    memplan_add(mp, "weights", P * eb.weight, 0);
    memplan_add(mp, per_layer ? "gradients (largest update group)" : "gradients", grads * eb.grad, 0);
    if (per_layer && grad_accum > 1) {
        memplan_add(mp, "gradient accumulators (full-rank tensors)", acc_full * eb.grad, 0);
        memplan_add(mp, "gradient accumulators (low-rank)", acc_low * eb.grad, 0);
        memplan_add(mp, "refresh-step accumulators (GaLore, transient)", galore_full * eb.grad, 1);
    }
    memplan_add(mp, "adam moments (m, v)", moments, 0);
    memplan_add(mp, "8-bit moments (m, v)", q8, 0);
    memplan_add(mp, "8-bit absmax", absmax, 0);
    memplan_add(mp, "projectors", proj, 0);
    if (engine == ENGINE_CPU) {
        memplan_add(mp, "optimizer scratch (R, N, U)", (2.0 * max_s + max_full) * 4, 0);
        memplan_add(mp, "svd workspace (at refresh, transient)", max_full * 4 * 3, 1);
        size_t sizes[CPU_NUM_ACT];
        cpu_activation_sizes(c, B, T, recompute, sizes);
        double acts = 0.0, logits = 0.0;
        for (int i = 0; i < CPU_NUM_ACT; i++) {
            if (strcmp(CPU_ACT_NAMES[i], "logits") == 0) logits = (double)sizes[i] * eb.act;
            else acts += (double)sizes[i] * eb.act;
        }
        memplan_add(mp, recompute ? "activations (--recompute 1: inputs + 1 layer)" : "activations", acts, 0);
        memplan_add(mp, "logits", logits, 0);
    }
    param_table_free(&pt);
}

// the paper's Table 2 "memory estimate": weights plus optimizer state, in bf16
static double memplan_paper_estimate(const MemPlan* mp) {
    double b = 0.0;
    for (int i = 0; i < mp->n; i++) {
        const char* n = mp->items[i].name;
        if (strcmp(n, "weights") == 0 || strstr(n, "moments") || strstr(n, "absmax") || strcmp(n, "projectors") == 0) b += mp->items[i].bytes;
    }
    return b;
}

static void memplan_print(const MemPlan* mp, const char* title) {
    printf("memory plan: %s\n", title);
    for (int i = 0; i < mp->n; i++)
        printf("  %-46s %12.2f MiB%s\n", mp->items[i].name, mp->items[i].bytes / 1048576.0, mp->items[i].transient ? " (not in total)" : "");
    printf("  %-46s %12.2f MiB (%.3f GB)\n", "total", mp->total / 1048576.0, mp->total / 1e9);
    printf("  %-46s %12.2f MiB (%.3f GB)\n", "weights + optimizer state (paper's estimate)", memplan_paper_estimate(mp) / 1048576.0,
           memplan_paper_estimate(mp) / 1e9);
}

// --memory-plan json: the plans as one JSON document {"plans": [{"title", "engine", "buffers":
// [{"name", "bytes", "transient"}], "total_bytes", "state_bytes"}]} (transient buffers are listed
// but not in the total; state_bytes is the paper's "weights + optimizer state"). Both plan kinds,
// this file's and train_llama.cu's, are written through these, with cJSON.
static cJSON* plan_json_begin(cJSON* plans, const char* title, const char* engine) {
    cJSON* p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", title);
    cJSON_AddStringToObject(p, "engine", engine);
    cJSON_AddItemToObject(p, "buffers", cJSON_CreateArray());
    cJSON_AddItemToArray(plans, p);
    return p;
}

static void plan_json_item(cJSON* plan, const char* name, double bytes, int transient) {
    cJSON* b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddNumberToObject(b, "bytes", bytes);
    cJSON_AddBoolToObject(b, "transient", transient);
    cJSON_AddItemToArray(cJSON_GetObjectItem(plan, "buffers"), b);
}

static void plan_json_end(cJSON* plan, double total, double state) {
    cJSON_AddNumberToObject(plan, "total_bytes", total);
    cJSON_AddNumberToObject(plan, "state_bytes", state);
}

// print {"plans": plans} on stdout and free it
static void plan_json_print(cJSON* plans) {
    cJSON* root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "plans", plans);
    char* text = cJSON_Print(root);
    if (text == NULL) die("out of memory printing the memory plan as JSON");
    printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

static void memplan_json(cJSON* plans, const MemPlan* mp, const char* title, const char* engine) {
    cJSON* p = plan_json_begin(plans, title, engine);
    for (int i = 0; i < mp->n; i++) plan_json_item(p, mp->items[i].name, mp->items[i].bytes, mp->items[i].transient);
    plan_json_end(p, mp->total, memplan_paper_estimate(mp));
}

#endif // MEMPLAN_H
