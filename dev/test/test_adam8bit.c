// test_adam8bit.c: tests of adam8bit.h against dev/ref/adam8bit/ref.bin, made by
// dev/ref/make_adam8bit_reference.py (bitsandbytes' maps + a numpy float32 model of the CUDA
// kernels' math; format at the top of that script).
// build (from the repo root):
//   gcc -O2 -fopenmp -Wall -Wextra -I. dev/test/test_adam8bit.c -o dev/test/test_adam8bit -lm
// run from the repo root (or pass the path of ref.bin as the only argument).
// No FMA contraction in this file (the pragma below; the Makefile's -march=native would
// otherwise fuse a*b+c): the reference rounds every product separately, and a fused one moves
// params by ulps and, near a midpoint, a state byte by one entry, which then compounds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
// utils.h has helpers this test does not use
#pragma GCC diagnostic ignored "-Wunused-function"
#include "utils.h"
#include "adam8bit.h"

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) { passed++; } else { failed++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

// ----------------------------------------------------------------------------
// ref.bin reader: every record is validated against the file length before use

enum { DT_F32 = 0, DT_U8 = 1, DT_I32 = 2 };
typedef struct {
    char name[33];
    int dtype;
    int64_t count;
    void* data;
} Record;

static Record* records = NULL;
static int nrecords = 0;
static const char* ref_path = "dev/ref/adam8bit/ref.bin";

static void ref_load(const char* path) {
    FILE* f = fopenCheck(path, "rb");
    int64_t size = file_size(f, path);
    char magic[8];
    int32_t hdr[2];
    if (size < 16) die("%s: too short for a header (%lld bytes); hint: regenerate with dev/ref/make_adam8bit_reference.py", path, (long long)size);
    freadCheck(magic, 1, 8, f, path);
    freadCheck(hdr, sizeof(int32_t), 2, f, path);
    if (memcmp(magic, "ADAM8REF", 8) != 0 || hdr[0] != 1) die("%s: bad magic or version %d; hint: regenerate with dev/ref/make_adam8bit_reference.py", path, hdr[0]);
    if (hdr[1] < 0 || hdr[1] > 10000) die("%s: bad record count %d", path, hdr[1]);
    nrecords = hdr[1];
    records = (Record*)callocCheck((size_t)nrecords, sizeof(Record));
    int64_t pos = 16;
    for (int r = 0; r < nrecords; r++) {
        char name[32];
        int32_t dt[2];
        int64_t count;
        if (pos + 48 > size) die("%s: record %d header past end of file", path, r);
        freadCheck(name, 1, 32, f, path);
        freadCheck(dt, sizeof(int32_t), 2, f, path);
        freadCheck(&count, sizeof(int64_t), 1, f, path);
        pos += 48;
        if (dt[0] < 0 || dt[0] > 2) die("%s: record %d: bad dtype %d", path, r, dt[0]);
        int64_t esize = dt[0] == DT_U8 ? 1 : 4;
        if (count < 0 || count > (size - pos) / esize) die("%s: record %d: count %lld past end of file", path, r, (long long)count);
        memcpy(records[r].name, name, 32);
        records[r].name[32] = '\0';
        records[r].dtype = dt[0];
        records[r].count = count;
        records[r].data = mallocCheck((size_t)(count * esize));
        freadCheck(records[r].data, (size_t)esize, (size_t)count, f, path);
        pos += count * esize;
    }
    fclose(f);
}

// ref_get: the record `name` of dtype `dtype`; count must equal `count` unless count < 0
static void* ref_get(const char* name, int dtype, int64_t count, int64_t* count_out) {
    for (int r = 0; r < nrecords; r++) {
        if (strcmp(records[r].name, name) != 0) continue;
        if (records[r].dtype != dtype || (count >= 0 && records[r].count != count)) {
            die("%s: record %s has dtype %d count %lld, expected dtype %d count %lld; hint: regenerate it",
                ref_path, name, records[r].dtype, (long long)records[r].count, dtype, (long long)count);
        }
        if (count_out) *count_out = records[r].count;
        return records[r].data;
    }
    die("%s: record %s missing; hint: regenerate with dev/ref/make_adam8bit_reference.py", ref_path, name);
}

static float* get_f32(const char* name, int64_t count) { return (float*)ref_get(name, DT_F32, count, NULL); }
static uint8_t* get_u8(const char* name, int64_t count) { return (uint8_t*)ref_get(name, DT_U8, count, NULL); }

static int same_bits(float a, float b) { uint32_t x, y; memcpy(&x, &a, 4); memcpy(&y, &b, 4); return x == y; }

// max relative error of a vs ref, |ref| floored at `floor` (params: 1e-4, so a parameter that
// happens to cross zero does not blow the ratio up); counts NaN disagreements separately (a NaN
// in both is agreement)
static double max_rel(const float* a, const float* ref, int64_t n, double floor, int64_t* nan_mismatch) {
    double worst = 0.0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(ref[i])) { if (!(isnan(a[i]) && isnan(ref[i]))) bad++; continue; }
        double d = fabs((double)a[i] - (double)ref[i]) / fmax(fabs((double)ref[i]), floor);
        if (a[i] == ref[i]) d = 0.0;
        if (d > worst) worst = d;
    }
    if (nan_mismatch) *nan_mismatch = bad;
    return worst;
}

// ----------------------------------------------------------------------------

static float map_m[256], map_v[256];

static void test_maps(void) {
    adam8bit_create_dynamic_map(map_m, 1);
    adam8bit_create_dynamic_map(map_v, 0);
    const float* bm = get_f32("map_signed", 256);
    const float* bv = get_f32("map_unsigned", 256);
    int dm = 0, dv = 0;
    for (int i = 0; i < 256; i++) { dm += !same_bits(map_m[i], bm[i]); dv += !same_bits(map_v[i], bv[i]); }
    CHECK(dm == 0, "signed map: %d entries differ from bitsandbytes' create_dynamic_map(True)", dm);
    CHECK(dv == 0, "unsigned map: %d entries differ from bitsandbytes' create_dynamic_map(False)", dv);
    // spot values from adam8bit.md
    CHECK(map_m[127] == 0.0f && !signbit(map_m[127]), "signed[127] = %g, want +0", map_m[127]);
    CHECK(map_m[255] == 1.0f, "signed[255] = %g, want 1", map_m[255]);
    CHECK(fabsf(map_m[0] - -0.99297f) < 1e-5f, "signed[0] = %.6f, want -0.99297", map_m[0]);
    CHECK(fabsf(map_m[128] - 5.5e-7f) < 1e-12f && fabsf(map_m[126] + 5.5e-7f) < 1e-12f,
          "smallest signed magnitudes %g %g, want +-5.5e-7", map_m[126], map_m[128]);
    int has_minus_one = 0, sorted_m = 1, sorted_v = 1;
    for (int i = 0; i < 256; i++) has_minus_one |= (map_m[i] == -1.0f);
    for (int i = 1; i < 256; i++) { sorted_m &= map_m[i - 1] < map_m[i]; sorted_v &= map_v[i - 1] < map_v[i]; }
    CHECK(!has_minus_one, "signed map has a -1.0 entry");
    CHECK(sorted_m && sorted_v, "maps not strictly ascending");
    CHECK(map_v[0] == 0.0f && map_v[255] == 1.0f, "unsigned ends %g %g, want 0 and 1", map_v[0], map_v[255]);
    CHECK(fabsf(map_v[1] - 3.25e-7f) < 1e-12f, "unsigned[1] = %g, want 3.25e-7", map_v[1]);
    CHECK(fabsf(map_v[254] - 0.99648f) < 1e-5f, "unsigned[254] = %.6f, want 0.99648", map_v[254]);
    // the initial state (bytes 0, absmax 0) dequantizes to 0
    CHECK(adam8bit_dequantize(map_m, 0, 0.0f) == 0.0f && adam8bit_dequantize(map_v, 0, 0.0f) == 0.0f,
          "zero state does not dequantize to 0");
}

static void test_quantize(void) {
    const char* names[2] = {"signed", "unsigned"};
    const float* maps[2] = {map_m, map_v};
    for (int s = 0; s < 2; s++) {
        char nx[64], nq[64];
        snprintf(nx, sizeof nx, "qx_%s", names[s]);
        snprintf(nq, sizeof nq, "qq_%s", names[s]);
        int64_t k;
        const float* x = (const float*)ref_get(nx, DT_F32, -1, &k);
        const uint8_t* q = get_u8(nq, k);
        int bad = 0;
        for (int64_t i = 0; i < k; i++) {
            int got = adam8bit_quantize(maps[s], x[i]);
            if (got != q[i]) { if (bad < 5) printf("  quantize %s(%.9g) = %d, reference %d\n", names[s], x[i], got, q[i]); bad++; }
        }
        CHECK(bad == 0, "%s quantizer: %d of %lld points differ from the reference", names[s], bad, (long long)k);
        // ties (exact float midpoints) go to the even index of the two neighbours
        int odd = 0, far = 0;
        for (int j = 0; j < 255; j++) {
            float mid = (maps[s][j] + maps[s][j + 1]) * 0.5f;
            int got = adam8bit_quantize(maps[s], mid);
            odd += got & 1;
            far += (got != j && got != j + 1);
        }
        CHECK(odd == 0 && far == 0, "%s midpoints: %d odd, %d not a neighbour", names[s], odd, far);
        CHECK(adam8bit_quantize(maps[s], 0.0f) == (s == 0 ? 127 : 0), "%s: 0 does not quantize to the zero entry", names[s]);
        CHECK(adam8bit_quantize(maps[s], 2.0f) == 255 && adam8bit_quantize(maps[s], NAN) == 0, "%s: clamp/NaN", names[s]);
    }
}

static void test_8bit(void) {
    const int32_t* dims = (const int32_t*)ref_get("a8_dims", DT_I32, 2, NULL);
    const float* hy = get_f32("a8_hyper", 5);
    int n = dims[0], T = dims[1];
    if (n <= 0 || n > 1 << 20 || T <= 0 || T > 100) die("%s: bad a8_dims %d %d", ref_path, n, T);
    float b1 = hy[0], b2 = hy[1], eps = hy[2], lr = hy[3], wd = hy[4];
    int nb = (n + ADAM8_BLOCK - 1) / ADAM8_BLOCK;
    float* p = (float*)mallocCheck((size_t)n * sizeof(float));
    float* prev = (float*)mallocCheck((size_t)n * sizeof(float));
    uint8_t* qm = (uint8_t*)callocCheck((size_t)n, 1);
    uint8_t* qv = (uint8_t*)callocCheck((size_t)n, 1);
    float* am = (float*)callocCheck((size_t)nb, sizeof(float));
    float* av = (float*)callocCheck((size_t)nb, sizeof(float));
    float prev_am3 = 0.0f;
    memcpy(p, get_f32("a8_p0", n), (size_t)n * sizeof(float));
    for (int t = 1; t <= T; t++) {
        char nm[32];
        #define GET(fmt, fn, cnt) (snprintf(nm, sizeof nm, fmt, t), fn(nm, cnt))
        const float* g = GET("a8_g%d", get_f32, n);
        const float* rp = GET("a8_p%d", get_f32, n);
        const uint8_t* rqm = GET("a8_qm%d", get_u8, n);
        const uint8_t* rqv = GET("a8_qv%d", get_u8, n);
        const float* ram = GET("a8_am%d", get_f32, nb);
        const float* rav = GET("a8_av%d", get_f32, nb);
        int64_t nties;
        snprintf(nm, sizeof nm, "a8_ties%d", t);
        const int32_t* ties = (const int32_t*)ref_get(nm, DT_I32, -1, &nties);
        #undef GET
        memcpy(prev, p, (size_t)n * sizeof(float));
        prev_am3 = am[3];
        adam8bit_update(p, g, qm, qv, am, av, n, map_m, map_v, b1, b2, eps, lr, wd, t);

        // state bytes: exact equality expected (same algorithm, same fp32 operation order). A
        // byte can only legitimately differ by one entry, and only when a value lands within
        // an ulp of a midpoint (e.g. a libm powf differing in the last bit). Allow at most 4.
        int dm = 0, dv = 0, far = 0, tie_bad = 0;
        for (int i = 0; i < n; i++) {
            if (qm[i] != rqm[i]) { dm++; far += abs((int)qm[i] - (int)rqm[i]) > 1; }
            if (qv[i] != rqv[i]) { dv++; far += abs((int)qv[i] - (int)rqv[i]) > 1; }
        }
        for (int64_t k = 0; k < nties; k++) {
            int i = ties[k];
            if (i < 0 || i >= n) die("%s: tie index %d out of range", ref_path, i);
            tie_bad += (qm[i] != rqm[i]) || (qv[i] != rqv[i]);
        }
        double e_am = max_rel(am, ram, nb, 1e-30, NULL), e_av = max_rel(av, rav, nb, 1e-30, NULL);
        int64_t pnan;
        double e_p = max_rel(p, rp, n, 1e-4, &pnan);
        printf("8-bit step %d: qm mismatches %d, qv mismatches %d (%lld exact ties, %d differ), "
               "absmax rel err %.2e/%.2e, param rel err %.2e\n", t, dm, dv, (long long)nties, tie_bad, e_am, e_av, e_p);
        CHECK(dm + dv <= 4 && far == 0, "step %d: %d qm + %d qv bytes differ (%d by more than one entry)", t, dm, dv, far);
        CHECK(e_am <= 1e-6 && e_av <= 1e-6, "step %d: absmax rel err %.3e %.3e", t, e_am, e_av);
        CHECK(e_p <= 1e-6 && pnan == 0, "step %d: param rel err %.3e, %lld NaN mismatches", t, e_p, (long long)pnan);
        if (t == 1 || t == 3) CHECK(nties >= 4, "step %d: only %lld exact ties in the reference", t, (long long)nties);

        // the all-zero block 1 (elements 256..511): states stay zero, p only decays, no NaN
        int zero_ok = am[1] == 0.0f && av[1] == 0.0f, decay_ok = 1;
        for (int i = 256; i < 512 && i < n; i++) {
            zero_ok &= qm[i] == 127 && qv[i] == 0;
            decay_ok &= !isnan(p[i]) && same_bits(p[i], prev[i] * (1.0f - lr * wd));
        }
        CHECK(zero_ok, "step %d: the all-zero block has non-zero state", t);
        CHECK(decay_ok, "step %d: the all-zero block's params are not just decayed", t);
        if (t == 1) CHECK(qm[10] == 126, "-0 gradient on zero state: qm = %d, want 126 (sign fix)", qm[10]);
        // non-finite gradient elements: p unchanged, m and v zero
        int bad_idx[3] = {5, 700, 990}, bad_step[3] = {2, 3, 4};
        for (int k = 0; k < 3; k++) {
            int i = bad_idx[k];
            if (t != bad_step[k] || i >= n) continue;
            CHECK(isnan(g[i]) || isinf(g[i]), "reference step %d element %d: gradient is finite", t, i);
            CHECK(same_bits(p[i], prev[i]), "non-finite gradient at %d changed p (%g -> %g)", i, prev[i], p[i]);
            CHECK(adam8bit_dequantize(map_m, qm[i], am[i / 256]) == 0.0f && adam8bit_dequantize(map_v, qv[i], av[i / 256]) == 0.0f,
                  "non-finite gradient at %d: states not zero (bytes %d %d)", i, qm[i], qv[i]);
        }
        if (t == 5 && n > 768) {
            // the short block is all NaN: v absmax 0, m absmax = the idle-lane floor
            float floor_m = map_m[128] * prev_am3 * b1;
            CHECK(av[3] == 0.0f && am[3] == floor_m && am[3] > 0.0f, "all-NaN short block: absmax %g %g, want %g and 0", am[3], av[3], floor_m);
            int unchanged = 1;
            for (int i = 768; i < n; i++) unchanged &= same_bits(p[i], prev[i]);
            CHECK(unchanged, "all-NaN short block changed p");
        }
        int anynan = 0;
        for (int i = 0; i < n; i++) anynan |= isnan(p[i]);
        CHECK(!anynan, "step %d: NaN in params", t);
    }
    free(p); free(prev); free(qm); free(qv); free(am); free(av);
}

static void test_32bit(void) {
    const int32_t* dims = (const int32_t*)ref_get("a32_dims", DT_I32, 2, NULL);
    const float* hy = get_f32("a32_hyper", 5);
    int n = dims[0], T = dims[1];
    if (n <= 0 || n > 1 << 20 || T <= 0 || T > 100) die("%s: bad a32_dims %d %d", ref_path, n, T);
    float* p = (float*)mallocCheck((size_t)n * sizeof(float));
    float* m = (float*)callocCheck((size_t)n, sizeof(float));
    float* v = (float*)callocCheck((size_t)n, sizeof(float));
    memcpy(p, get_f32("a32_p0", n), (size_t)n * sizeof(float));
    for (int t = 1; t <= T; t++) {
        char nm[32];
        snprintf(nm, sizeof nm, "a32_g%d", t); const float* g = get_f32(nm, n);
        snprintf(nm, sizeof nm, "a32_p%d", t); const float* rp = get_f32(nm, n);
        snprintf(nm, sizeof nm, "a32_m%d", t); const float* rm = get_f32(nm, n);
        snprintf(nm, sizeof nm, "a32_v%d", t); const float* rv = get_f32(nm, n);
        adam32_update(p, g, m, v, n, hy[0], hy[1], hy[2], hy[3], hy[4], t);
        int64_t n1, n2, n3;
        double ep = max_rel(p, rp, n, 1e-4, &n1), em = max_rel(m, rm, n, 1e-30, &n2), ev = max_rel(v, rv, n, 1e-30, &n3);
        printf("32-bit step %d: rel err p %.2e m %.2e v %.2e\n", t, ep, em, ev);
        CHECK(ep <= 1e-6 && em <= 1e-6 && ev <= 1e-6 && n1 + n2 + n3 == 0,
              "32-bit step %d: rel err p %.3e m %.3e v %.3e, NaN mismatches %lld", t, ep, em, ev, (long long)(n1 + n2 + n3));
    }
    // bitsandbytes' 32-bit kernel has no NaN guard: the NaN at step 3, element 7, propagates
    CHECK(n > 7 && isnan(p[7]) && isnan(m[7]) && isnan(v[7]), "32-bit: NaN gradient did not propagate");
    free(p); free(m); free(v);
}

static void test_misc(void) {
    CHECK(adam8bit_state_bytes(1000) == 8000, "state bytes(1000) = %zu", adam8bit_state_bytes(1000));
    CHECK(adam8bit_state_bytes(4096) == 4096 * 2 + 16 * 8, "state bytes(4096) = %zu", adam8bit_state_bytes(4096));
    CHECK(adam8bit_state_bytes(4097) == 4097 * 2 + 17 * 8, "state bytes(4097) = %zu", adam8bit_state_bytes(4097));
    // a single 8-bit step by hand on a full block: g = 1 everywhere, zero state, t = 1
    float p[ADAM8_BLOCK], g[ADAM8_BLOCK], am = 0.0f, av = 0.0f;
    uint8_t qm[ADAM8_BLOCK] = {0}, qv[ADAM8_BLOCK] = {0};
    for (int i = 0; i < ADAM8_BLOCK; i++) { p[i] = 1.0f; g[i] = (i % 2) ? 1.0f : -0.5f; }
    adam8bit_update_block(p, g, qm, qv, &am, &av, ADAM8_BLOCK, map_m, map_v, 0.9f, 0.999f, 1e-8f, 0.1f, 0.0f, 1);
    // m_hat = g, v_hat = g^2, so the step is -lr*sign(g) (up to eps)
    CHECK(fabsf(p[1] - 0.9f) < 1e-6f && fabsf(p[0] - 1.1f) < 1e-6f, "hand step: p = %g %g, want 0.9 1.1", p[1], p[0]);
    CHECK(qm[1] == 255 && qv[1] == 255 && qm[0] != 127 && map_m[qm[0]] < 0.0f, "hand step: bytes %d %d %d", qm[1], qv[1], qm[0]);
}

int main(int argc, char** argv) {
    if (argc > 1) ref_path = argv[1];
    ref_load(ref_path);
    test_maps();
    test_quantize();
    test_8bit();
    test_32bit();
    test_misc();
    for (int r = 0; r < nrecords; r++) free(records[r].data);
    free(records);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
