// rand.h: a small deterministic PRNG (splitmix64) shared by init, shuffling and sampling.
// The same seed gives the same stream on every machine and in both engines; the state is one
// uint64, so checkpoints can store it exactly.
#ifndef RAND_H
#define RAND_H

#include <stdint.h>
#include <math.h>

typedef struct { uint64_t state; } Rng;

static inline void rng_init(Rng* r, uint64_t seed) { r->state = seed; }

static inline uint64_t rng_u64(Rng* r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// uniform in [0, 1) with 53 random bits
static inline double rng_uniform(Rng* r) { return (rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

// uniform integer in [0, n) without modulo bias (rejection sampling)
static inline uint64_t rng_below(Rng* r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do { x = rng_u64(r); } while (x >= limit);
    return x % n;
}

// standard normal by Box-Muller in double, so the stream does not depend on libm float paths
static inline double rng_normal(Rng* r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif // RAND_H
