// test_safetensors.c: safetensors.h round trips (F32, BF16), dtype conversion bit patterns,
// reading a file made by the Python `safetensors` package, and hostile files that must make
// safetensors_open exit non-zero with an error line (run in forked children).
// Build (from the repository root):
//   gcc -O2 -Wall -Wextra -I. dev/test/test_safetensors.c -o test_safetensors -lcjson -lm
#include <math.h>
#include <sys/wait.h>
#include "safetensors.h"

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) { passed++; } else { failed++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char* tmpdir(void) {
    static char d[512];
    if (d[0] == '\0') {
        snprintf(d, sizeof d, "/tmp/test_safetensors.%d", (int)getpid());
        ensure_dir(d);
    }
    return d;
}

// ----------------------------------------------------------------------------
// conversions

static void test_bf16_bits(void) {
    struct { uint32_t in; uint16_t out; const char* what; } cases[] = {
        {0x3F800000u, 0x3F80, "1.0"},
        {0xBFC00000u, 0xBFC0, "-1.5"},
        {0x40490FDBu, 0x4049, "pi rounds down"},
        {0x3F808000u, 0x3F80, "tie, even lsb: stays"},
        {0x3F818000u, 0x3F82, "tie, odd lsb: rounds up to even"},
        {0x3F808001u, 0x3F81, "just above tie: rounds up"},
        {0x3F807FFFu, 0x3F80, "just below tie: rounds down"},
        {0x7F800000u, 0x7F80, "+inf"},
        {0xFF800000u, 0xFF80, "-inf"},
        {0x7F7FFFFFu, 0x7F80, "max float rounds to inf"},
        {0x80000000u, 0x8000, "-0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = bf16_from_f32(st_f32_bits(cases[i].in));
        CHECK(got == cases[i].out, "bf16(0x%08x) %s: got 0x%04x want 0x%04x", cases[i].in, cases[i].what, got, cases[i].out);
    }
    // NaNs must stay NaN, including a signalling NaN whose payload is all in the low bits
    uint32_t nans[] = {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu};
    for (size_t i = 0; i < 4; i++) {
        uint16_t h = bf16_from_f32(st_f32_bits(nans[i]));
        CHECK(isnan(f32_from_bf16(h)), "bf16(NaN 0x%08x) = 0x%04x is not NaN", nans[i], h);
        CHECK((h & 0x8000) == ((nans[i] >> 16) & 0x8000), "bf16(NaN 0x%08x) lost its sign", nans[i]);
    }
    CHECK(f32_from_bf16(0x3F80) == 1.0f, "f32_from_bf16(0x3F80) != 1");
    CHECK(f32_from_bf16(0xC049) == -3.140625f, "f32_from_bf16(0xC049) != -3.140625");
}

static void test_f16_bits(void) {
    struct { uint16_t in; float out; } cases[] = {
        {0x3C00, 1.0f}, {0xC000, -2.0f}, {0x3555, 0.333251953125f}, {0x7BFF, 65504.0f},
        {0x0400, 6.103515625e-05f},          // smallest normal 2^-14
        {0x0001, 5.9604644775390625e-08f},   // smallest subnormal 2^-24
        {0x03FF, 6.097555160522461e-05f},    // largest subnormal 1023*2^-24
        {0x8200, -3.0517578125e-05f},        // negative subnormal 512*2^-24
        {0x0000, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float got = f32_from_f16(cases[i].in);
        CHECK(got == cases[i].out, "f16(0x%04x): got %.10g want %.10g", cases[i].in, got, cases[i].out);
    }
    CHECK(isinf(f32_from_f16(0x7C00)) && f32_from_f16(0x7C00) > 0, "f16 +inf");
    CHECK(isinf(f32_from_f16(0xFC00)) && f32_from_f16(0xFC00) < 0, "f16 -inf");
    CHECK(isnan(f32_from_f16(0x7E00)) && isnan(f32_from_f16(0x7C01)), "f16 nan");
    CHECK(f32_from_f16(0x8000) == 0.0f && signbit(f32_from_f16(0x8000)), "f16 -0");
}

// ----------------------------------------------------------------------------
// round trips

static void fill(float* x, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 20); // in [-8, 8), full mantissa
    }
}

static void test_roundtrip(int dtype) {
    char path[600];
    snprintf(path, sizeof path, "%s/rt_%d.safetensors", tmpdir(), dtype);
    float a[7 * 5], b[11], c[1] = {3.0f};
    fill(a, 35, 1 + dtype); fill(b, 11, 99 + dtype);
    b[3] = 1.00390625f; // an exact bf16 tie (0x3F808000) -> 0x3F80
    SafeTensorOut outs[3];
    memset(outs, 0, sizeof outs);
    outs[0].name = "model.layers.0.w"; outs[0].ndim = 2; outs[0].shape[0] = 7; outs[0].shape[1] = 5; outs[0].data = a;
    outs[1].name = "b"; outs[1].ndim = 1; outs[1].shape[0] = 11; outs[1].data = b;
    outs[2].name = "c"; outs[2].ndim = 1; outs[2].shape[0] = 1; outs[2].data = c;
    safetensors_write(path, outs, 3, dtype);

    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "%s left behind after the atomic write", tmp);

    // raw header: length multiple of 8, __metadata__ format pt, tensors in order
    FILE* f = fopenCheck(path, "rb");
    unsigned char lb[8]; freadCheck(lb, 1, 8, f, path);
    uint64_t hlen = 0; for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lb[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    char* hdr = (char*)mallocCheck(hlen + 1); freadCheck(hdr, 1, hlen, f, path); hdr[hlen] = 0;
    fclose(f);
    cJSON* root = cJSON_Parse(hdr);
    CHECK(root != NULL, "written header does not parse");
    cJSON* meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    cJSON* fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    CHECK(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "pt") == 0, "__metadata__.format != pt");
    cJSON_Delete(root); free(hdr);

    SafeTensors st;
    safetensors_open(&st, path);
    CHECK(st.n == 3, "n = %d, want 3", st.n);
    CHECK(st.data_start % 8 == 0, "data start %lld not 8-aligned", (long long)st.data_start);
    CHECK(strcmp(st.tensors[0].name, "model.layers.0.w") == 0 && strcmp(st.tensors[2].name, "c") == 0, "order not kept");
    const SafeTensor* ta = safetensors_find(&st, "model.layers.0.w");
    const SafeTensor* tb = safetensors_find(&st, "b");
    CHECK(safetensors_find(&st, "nope") == NULL, "find of a missing name should be NULL");
    CHECK(ta && ta->ndim == 2 && ta->shape[0] == 7 && ta->shape[1] == 5 && ta->numel == 35 && ta->dtype == dtype, "a metadata");
    CHECK(tb && tb->ndim == 1 && tb->shape[0] == 11 && tb->dtype == dtype, "b metadata");
    if (ta && tb) {
        float ra[35], rb[11];
        safetensors_read_f32(&st, ta, ra);
        safetensors_read_f32(&st, tb, rb);
        int bad = 0;
        for (int i = 0; i < 35; i++) {
            float want = dtype == ST_F32 ? a[i] : f32_from_bf16(bf16_from_f32(a[i]));
            if (memcmp(&ra[i], &want, 4) != 0) bad++;
        }
        for (int i = 0; i < 11; i++) {
            float want = dtype == ST_F32 ? b[i] : f32_from_bf16(bf16_from_f32(b[i]));
            if (memcmp(&rb[i], &want, 4) != 0) bad++;
        }
        CHECK(bad == 0, "%s round trip: %d values differ", st_dtype_name(dtype), bad);
        if (dtype == ST_BF16) {
            CHECK(rb[3] == 1.0f, "bf16 tie 1.00390625 read back as %.9g, want 1 (round to even)", rb[3]);
            // bf16 really is lossy here: at least one value changed
            int changed = 0; for (int i = 0; i < 35; i++) changed += (ra[i] != a[i]);
            CHECK(changed > 0, "bf16 round trip changed nothing; not actually bf16?");
            CHECK(ta->end - ta->begin == 70, "bf16 tensor bytes %lld want 70", (long long)(ta->end - ta->begin));
        }
    }
    safetensors_close(&st);
}

// ----------------------------------------------------------------------------
// file from the Python safetensors package (dev/test/make_small_safetensors.py)

static void test_python_file(void) {
    const char* path = "dev/test/data/small.safetensors";
    SafeTensors st;
    safetensors_open(&st, path);
    CHECK(st.n == 4, "small: n = %d want 4", st.n);
    const SafeTensor* a = safetensors_find(&st, "a.f32");
    const SafeTensor* b = safetensors_find(&st, "b.bf16");
    const SafeTensor* c = safetensors_find(&st, "c.f16");
    const SafeTensor* d = safetensors_find(&st, "d.scalar");
    CHECK(a && b && c && d, "small: a tensor is missing");
    if (!(a && b && c && d)) { safetensors_close(&st); return; }
    CHECK(a->dtype == ST_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3, "small a meta");
    CHECK(b->dtype == ST_BF16 && b->ndim == 1 && b->shape[0] == 4, "small b meta");
    CHECK(c->dtype == ST_F16 && c->ndim == 2 && c->shape[0] == 2 && c->shape[1] == 2, "small c meta");
    CHECK(d->dtype == ST_F32 && d->ndim == 0 && d->numel == 1, "small d meta (0-dim)");
    float va[6], vb[4], vc[4], vd[1];
    safetensors_read_f32(&st, a, va);
    safetensors_read_f32(&st, b, vb);
    safetensors_read_f32(&st, c, vc);
    safetensors_read_f32(&st, d, vd);
    float wa[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    float wb[4] = {1.0f, -2.5f, 3.140625f, 0.00099945068359375f};
    float wc[4] = {0.25f, -65504.0f, 5.9604644775390625e-08f, -0.0f};
    for (int i = 0; i < 6; i++) CHECK(va[i] == wa[i], "small a[%d] = %g want %g", i, va[i], wa[i]);
    for (int i = 0; i < 4; i++) CHECK(vb[i] == wb[i], "small b[%d] = %.10g want %.10g", i, vb[i], wb[i]);
    for (int i = 0; i < 4; i++) CHECK(vc[i] == wc[i], "small c[%d] = %.10g want %.10g", i, vc[i], wc[i]);
    CHECK(signbit(vc[3]), "small c[3] should be -0");
    CHECK(vd[0] == 7.0f, "small d = %g want 7", vd[0]);
    safetensors_close(&st);
}

// ----------------------------------------------------------------------------
// hostile files

// write_raw: 8-byte length (hlen, or strlen(json) if hlen < 0), json, then ndata bytes
static void write_raw(const char* path, int64_t hlen, const char* json, int ndata) {
    FILE* f = fopenCheck(path, "wb");
    uint64_t L = hlen < 0 ? (uint64_t)strlen(json) : (uint64_t)hlen;
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((L >> (8 * i)) & 0xff);
    fwriteCheck(lb, 1, 8, f, path);
    fwriteCheck(json, 1, strlen(json), f, path);
    for (int i = 0; i < ndata; i++) fputc(i & 0xff, f);
    fclose(f);
}

// expect_die: safetensors_open (+ reading every tensor) in a child must exit non-zero
// (not crash on a signal), with an error line that names the file and, if given, the tensor
static void expect_die(const char* label, int64_t hlen, const char* json, int ndata, const char* tensor) {
    char path[600], errp[600];
    snprintf(path, sizeof path, "%s/bad_%s.safetensors", tmpdir(), label);
    snprintf(errp, sizeof errp, "%s/bad_%s.err", tmpdir(), label);
    if (json) write_raw(path, hlen, json, ndata);
    else { FILE* f = fopenCheck(path, "wb"); fwriteCheck("abc", 1, 3, f, path); fclose(f); } // < 8 bytes
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(errp, "w", stderr) == NULL) _exit(99);
        SafeTensors st;
        safetensors_open(&st, path);
        float* buf = (float*)mallocCheck(1 << 20);
        for (int i = 0; i < st.n; i++) {
            if (st.tensors[i].numel <= (1 << 18)) safetensors_read_f32(&st, &st.tensors[i], buf);
        }
        _exit(0); // accepted: the parent counts this as a failure
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int clean = WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 99;
    CHECK(clean, "hostile '%s': child %s %d", label, WIFSIGNALED(status) ? "died of signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    char msg[1024] = {0};
    FILE* f = fopen(errp, "r");
    if (f) { if (fgets(msg, sizeof msg, f) == NULL) msg[0] = 0; fclose(f); }
    msg[strcspn(msg, "\n")] = 0;
    CHECK(strncmp(msg, "error: ", 7) == 0 && strstr(msg, path) != NULL, "hostile '%s': error line does not name the file: '%s'", label, msg);
    if (tensor) CHECK(strstr(msg, tensor) != NULL, "hostile '%s': error line does not name tensor '%s': '%s'", label, tensor, msg);
    printf("  ok %-14s %s\n", label, msg + (strstr(msg, path) ? (strstr(msg, path) - msg) + strlen(path) + 2 : 0));
}

static void test_hostile(void) {
    const char* ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    expect_die("short_file", 0, NULL, 0, NULL);
    expect_die("truncated", -1, ok, 10, "w");
    expect_die("hlen_gt_file", 4096, ok, 24, NULL);
    expect_die("hlen_huge", (int64_t)1 << 62, ok, 24, NULL);
    expect_die("hlen_zero", 0, ok, 24, NULL);
    expect_die("bad_json", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],", 24, NULL);
    expect_die("not_object", -1, "[1,2,3]", 24, NULL);
    expect_die("end_past_data", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}}", 24, "w");
    expect_die("begin_gt_end", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[20,4]}}", 24, "w");
    expect_die("neg_offset", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 24, "w");
    expect_die("huge_offset", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e300,1e300]}}", 24, "w");
    expect_die("shape_mismatch", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("dtype_mismatch", -1, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("unknown_dtype", -1, "{\"w\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("numel_overflow", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 24, "w");
    expect_die("neg_dim", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,-3],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("frac_dim", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5,4],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("ndim_9", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("no_offsets", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[6]}}", 24, "w");
    expect_die("shape_string", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":\"6\",\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("entry_not_obj", -1, "{\"w\":42}", 24, "w");
    expect_die("duplicate", -1, "{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 24, "w");
    expect_die("bad_metadata", -1, "{\"__metadata__\":{\"format\":5},\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 24, NULL);
    // control: the same writer with a good header must be accepted (so the cases above fail for their own reason)
    char path[600];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir());
    write_raw(path, -1, ok, 24);
    SafeTensors st; safetensors_open(&st, path);
    float v[6]; safetensors_read_f32(&st, &st.tensors[0], v);
    CHECK(st.n == 1 && st.tensors[0].numel == 6, "control file not read");
    safetensors_close(&st);
}

int main(void) {
    test_bf16_bits();
    test_f16_bits();
    test_roundtrip(ST_F32);
    test_roundtrip(ST_BF16);
    test_python_file();
    test_hostile();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir());
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir());
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
