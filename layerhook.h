// layerhook.h: the per-layer update hook, written once for both engines. Backward calls it when
// update group first..last (a layer, the embedding, or the final norm + lm_head) holds this
// micro-batch's gradient in its slots: each tensor's gradient is accumulated over the micro-batches
// (low-rank between refreshes), summed over the ranks on the last micro-batch, checked, and the
// tensor is updated. The engines supply only the arithmetic (LayerHookOps): train_llama.c on the
// host, train_llama.cu on its update stream with NCCL.
#ifndef LAYERHOOK_H
#define LAYERHOOK_H

#include <stdint.h>
#include <math.h>
#include "llama.h"

// where the step's gradient of a tensor lives, which the update reads
enum { SRC_GRAD = 0, SRC_ACC = 1, SRC_LOWRANK = 2 }; // its slot; its full accumulator; its low-rank accumulator R

typedef struct {
    void* ctx;
    void (*begin)(void* ctx);                                // before the group's work (GPU: the update stream waits for backward); may be NULL
    int (*lowrank)(void* ctx, int i, int64_t t);             // tensor i's gradient travels as R = P^T G at update t (galore.h)
    void (*project)(void* ctx, int i, float beta);           // R_i = P^T g_i + beta R_i
    void (*accumulate)(void* ctx, int i, int first_micro);   // full accumulator of tensor i: = g_i (first micro-batch) or += g_i
    // the k tensors idx[] with their sources src[]: summed over the ranks, in place (called only
    // with data parallel); their squared norms into ss[]
    void (*group_reduce)(void* ctx, const int* idx, const int* src, int k);
    void (*group_sumsq)(void* ctx, const int* idx, const int* src, int k, double* ss);
    void (*update)(void* ctx, int i, int src, float lr, int64_t t); // the optimizer update of tensor i from its source
    void (*release)(void* ctx, int i);                       // free tensor i's refresh-step accumulator, if it holds one
    void (*zero_slots)(void* ctx, int first, int last);      // leave the group's slots zero for the next group's backward
} LayerHookOps;

// the step in progress: the trainer sets micro, grad_accum, dp, lr, t; the hook accumulates sumsq,
// bad (a non-finite gradient: this tensor's update and every later one of the step are skipped;
// the groups above were already updated, per-layer mode cannot take them back; with data
// parallel, bad is decided on the summed gradients, so every rank decides alike) and updated
typedef struct {
    int micro, grad_accum, dp;
    float lr;
    int64_t t;          // the update being made (1-based)
    double sumsq;
    int bad, updated;
} LayerHookStep;

static void layer_hook_run(const LayerHookOps* o, LayerHookStep* st, int first, int last) {
    int final_micro = st->micro == st->grad_accum - 1;
    int idx[P_PER_LAYER], src[P_PER_LAYER], k = 0;
    double ss[P_PER_LAYER];
    if (last - first + 1 > P_PER_LAYER) die("internal: an update group of %d tensors", last - first + 1);
    if (o->begin) o->begin(o->ctx);
    if (!st->bad) {
        for (int i = first; i <= last; i++) {
            int s = SRC_GRAD;
            if (o->lowrank(o->ctx, i, st->t) && (st->grad_accum > 1 || st->dp)) {
                o->project(o->ctx, i, st->micro == 0 ? 0.0f : 1.0f);
                s = SRC_LOWRANK;
            } else if (st->grad_accum > 1) {
                o->accumulate(o->ctx, i, st->micro == 0);
                s = SRC_ACC;
            }
            if (final_micro) { idx[k] = i; src[k] = s; k++; }
        }
    }
    if (k > 0) {
        if (st->dp) o->group_reduce(o->ctx, idx, src, k);
        o->group_sumsq(o->ctx, idx, src, k, ss);
        for (int j = 0; j < k; j++) {
            if (!isfinite(ss[j])) st->bad = 1;
            if (st->bad) continue;
            st->sumsq += ss[j];
            o->update(o->ctx, idx[j], src[j], st->lr, st->t);
            st->updated = 1;
            if (src[j] == SRC_ACC) o->release(o->ctx, idx[j]);
        }
    }
    o->zero_slots(o->ctx, first, last);
}

// at the end of a skipped step: free every refresh-step accumulator still held (a micro-batch
// after the first was non-finite, so the step never reached their updates)
static void layer_hook_end_step(const LayerHookOps* o, const LayerHookStep* st, int n) {
    if (!st->bad) return;
    for (int i = 0; i < n; i++) o->release(o->ctx, i);
}

#endif // LAYERHOOK_H
