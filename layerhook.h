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
#include "hostdev.h"
#include "llama.h"

// where the step's gradient of a tensor lives, which the update reads
enum { SRC_GRAD = 0, SRC_ACC = 1, SRC_LOWRANK = 2 }; // its slot; its full accumulator; its low-rank accumulator R

// the step's verdict: bad (a non-finite loss, or a non-finite gradient: that tensor's update and
// every later one of the step are skipped; the groups above were already updated, per-layer mode
// cannot take them back; with data parallel, bad is decided on the summed gradients, so every rank
// decides alike), updated (some tensor was), sumsq (the squared norms of the tensors updated)
typedef struct LayerHookFlags {
    int bad, updated;
    double sumsq;
} LayerHookFlags;

// the check of one tensor, in the step's order: whether it is updated. The CPU runs it on the
// host, the GPU in its check kernel (train_llama.cu), the same code.
HOSTDEV static inline int layer_hook_check(LayerHookFlags* f, double ss) {
    if (!isfinite(ss)) f->bad = 1;
    if (f->bad) return 0;
    f->sumsq += ss;
    f->updated = 1;
    return 1;
}

// the device's flags of a step (checked there) into the step's: the host's bad (a non-finite
// loss stops backward before any check) stands beside the device's
static void layer_hook_merge(LayerHookFlags* f, const LayerHookFlags* dev) {
    f->bad |= dev->bad;
    f->updated |= dev->updated;
    f->sumsq += dev->sumsq;
}

typedef struct {
    void* ctx;
    void (*begin)(void* ctx);                                // before the group's work (GPU: the update stream waits for backward); may be NULL
    int (*lowrank)(void* ctx, int i, int64_t t);             // tensor i's gradient travels as R = P^T G at update t (galore.h)
    void (*project)(void* ctx, int i, float beta);           // R_i = P^T g_i + beta R_i
    void (*accumulate)(void* ctx, int i, int first_micro);   // full accumulator of tensor i: = g_i (first micro-batch) or += g_i
    // the k tensors idx[] with their sources src[]: summed over the ranks, in place (called only
    // with data parallel); then checked: their squared norms through layer_hook_check, in order,
    // go[j] whether tensor j is updated. The CPU checks on the host, in f. The GPU checks on the
    // device, in its own flags (the host would wait for every group's norms): it leaves f alone,
    // sets every go[j], and its update kernels read the device's verdict; it merges its flags into
    // the step's (layer_hook_merge) once, at the end of the step.
    void (*group_reduce)(void* ctx, const int* idx, const int* src, int k);
    void (*group_check)(void* ctx, const int* idx, const int* src, int k, LayerHookFlags* f, int* go);
    void (*update)(void* ctx, int i, int src, float lr, int64_t t); // the optimizer update of tensor i from its source
    void (*release)(void* ctx, int i);                       // free tensor i's refresh-step accumulator, if it holds one
    void (*zero_slots)(void* ctx, int first, int last);      // leave the group's slots zero for the next group's backward
} LayerHookOps;

// the step in progress: the trainer sets micro, grad_accum, dp, lr, t; the hook keeps f
typedef struct {
    int micro, grad_accum, dp;
    float lr;
    int64_t t;          // the update being made (1-based)
    LayerHookFlags f;
} LayerHookStep;

static void layer_hook_run(const LayerHookOps* o, LayerHookStep* st, int first, int last) {
    int final_micro = st->micro == st->grad_accum - 1;
    int idx[P_PER_LAYER], src[P_PER_LAYER], go[P_PER_LAYER], k = 0;
    if (last - first + 1 > P_PER_LAYER) die("internal: an update group of %d tensors", last - first + 1);
    if (o->begin) o->begin(o->ctx);
    if (!st->f.bad) {
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
        o->group_check(o->ctx, idx, src, k, &st->f, go);
        for (int j = 0; j < k; j++) {
            if (!go[j]) continue;
            o->update(o->ctx, idx[j], src[j], st->lr, st->t);
            if (src[j] == SRC_ACC) o->release(o->ctx, idx[j]); // after its update (the GPU's: stream-ordered)
        }
    }
    // (a device-side verdict is not seen here: the GPU's later groups go on accumulating and issue
    // their updates, which its kernels skip; what they accumulate is overwritten next step)
    o->zero_slots(o->ctx, first, last);
}

// at the end of a skipped step (the GPU: after layer_hook_merge): free every refresh-step
// accumulator still held (a micro-batch after the first was non-finite, so the step never reached
// their updates)
static void layer_hook_end_step(const LayerHookOps* o, const LayerHookStep* st, int n) {
    if (!st->f.bad) return;
    for (int i = 0; i < n; i++) o->release(o->ctx, i);
}

#endif // LAYERHOOK_H
