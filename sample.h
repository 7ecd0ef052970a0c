// sample.h: the next token from a model's logits, as transformers' generate() chooses it:
// temperature (0: greedy), then top-k, then top-p (nucleus), then one draw. Shared by every
// engine through run.h, so the same logits give the same token on the CPU and the GPU.
#ifndef SAMPLE_H
#define SAMPLE_H

#include <stdlib.h>
#include <math.h>
#include "utils.h"
#include "rand.h"

typedef struct {
    float temperature; // 0: the argmax (no draw); else logits / temperature
    int top_k;         // 0: off; else only the k highest logits (ties with the k-th stay, as in transformers)
    float top_p;       // 1: off; else the smallest set of the most likely tokens whose mass reaches top_p
} SampleOpts;

typedef struct { double p; int id; } SampleCand;

static int sample_cmp_descending(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

// ascending by probability, by id among equals (so the order, and the draw, is the same everywhere)
static int sample_cmp_ascending(const void* a, const void* b) {
    const SampleCand* x = (const SampleCand*)a, *y = (const SampleCand*)b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->id < y->id ? 1 : -1; // the higher id goes first out of the nucleus
}

// sample_next: the next token from logits (V,). Greedy takes the first maximum (torch.argmax)
// and draws nothing. Otherwise one uniform from rng picks, in id order, from the kept tokens'
// softmax in double precision; with no top-k / top-p that is exactly the plain softmax draw.
static int sample_next(const float* logits, int V, const SampleOpts* o, Rng* rng) {
    int best = 0;
    for (int j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
    if (o->temperature <= 0.0f) return best;
    double maxv = logits[best], inv_t = 1.0 / (double)o->temperature;
    double* w = (double*)mallocCheck(sizeof(double) * (size_t)V); // (V,) unnormalized probabilities, 0 = removed
    for (int j = 0; j < V; j++) w[j] = exp(((double)logits[j] - maxv) * inv_t);
    if (o->top_k > 0 && o->top_k < V) {
        // the k-th largest logit (a sorted copy: a few ms even at V = 128K, beside a forward); ties with it stay
        float* v = (float*)mallocCheck(sizeof(float) * (size_t)V);
        memcpy(v, logits, sizeof(float) * (size_t)V);
        qsort(v, (size_t)V, sizeof(float), sample_cmp_descending);
        float kth = v[o->top_k - 1];
        free(v);
        for (int j = 0; j < V; j++) if (logits[j] < kth) w[j] = 0.0;
    }
    if (o->top_p < 1.0f) {
        // transformers' TopPLogitsWarper: sorted ascending, the tokens whose cumulative mass is at
        // most 1 - top_p go (the most likely token always stays)
        double sum = 0.0;
        int n = 0;
        for (int j = 0; j < V; j++) if (w[j] > 0.0) { sum += w[j]; n++; }
        SampleCand* c = (SampleCand*)mallocCheck(sizeof(SampleCand) * (size_t)n);
        n = 0;
        for (int j = 0; j < V; j++) if (w[j] > 0.0) { c[n].p = w[j] / sum; c[n].id = j; n++; }
        qsort(c, (size_t)n, sizeof(SampleCand), sample_cmp_ascending);
        double cum = 0.0, cut = 1.0 - (double)o->top_p;
        for (int i = 0; i < n - 1; i++) {
            cum += c[i].p;
            if (cum > cut) break;
            w[c[i].id] = 0.0;
        }
        free(c);
    }
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += w[j];
    double r = rng_uniform(rng) * sum, acc = 0.0;
    int pick = best; // rounding that leaves r past the last kept token: the most likely one
    for (int j = 0; j < V; j++) {
        if (w[j] == 0.0) continue;
        acc += w[j];
        if (acc > r) { pick = j; break; }
    }
    free(w);
    return pick;
}

#endif // SAMPLE_H
