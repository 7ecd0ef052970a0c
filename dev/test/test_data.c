// test_data.c: tests of dataloader.h and tokenizer.h.
// build (from the repo root): gcc -O2 -Wall -Wextra -I. dev/test/test_data.c -o test_data -lm
// Writes small shards to a temp dir; needs dev/data/tinytext/tokenizer.bin for the decode test.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "utils.h"
#include "dataloader.h"
#include "tokenizer.h"

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) { passed++; } else { failed++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static char tmpdir[256];

// a shard: header (magic, version, declared count, layout, row length, pad id), then `n` tokens
// of `width` bytes, then `extra` junk bytes
static void write_shard_ex(const char* name, int magic, int version, int declared, int layout,
                           int row_len, int pad_id, const uint32_t* toks, int n, int width, int extra) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE* f = fopenCheck(path, "wb");
    int32_t header[256];
    memset(header, 0, sizeof header);
    header[0] = magic; header[1] = version; header[2] = declared; header[3] = layout;
    header[4] = row_len; header[5] = pad_id;
    fwriteCheck(header, sizeof(int32_t), 256, f, path);
    for (int i = 0; i < n; i++) {
        uint8_t b[4] = {(uint8_t)toks[i], (uint8_t)(toks[i] >> 8), (uint8_t)(toks[i] >> 16), (uint8_t)(toks[i] >> 24)};
        fwriteCheck(b, 1, (size_t)width, f, path);
    }
    for (int i = 0; i < extra; i++) fputc(0, f);
    fclose(f);
}

static void write_shard(const char* name, int magic, int version, int declared, int layout,
                        const uint32_t* toks, int n, int width, int extra) {
    write_shard_ex(name, magic, version, declared, layout, 0, 0, toks, n, width, extra);
}

// a uint16 paper-layout shard of whole rows
static void write_paper(const char* name, int row_len, int pad_id, const uint32_t* toks, int n) {
    write_shard_ex(name, 20240520, 1, n, 1, row_len, pad_id, toks, n, 2, 0);
}

// stream positions as token values: token at stream offset g is g + base
static void write_range(const char* name, int width, int64_t from, int n, uint32_t base) {
    uint32_t* t = (uint32_t*)mallocCheck((size_t)n * sizeof(uint32_t) + 1);
    for (int i = 0; i < n; i++) t[i] = (uint32_t)(from + i) + base;
    if (width == 2) write_shard(name, 20240520, 1, n, 0, t, n, 2, 0);
    else write_shard(name, 20240801, 7, n, 0, t, n, 4, 0);
    free(t);
}

static void pattern_of(char* out, size_t cap, const char* glob_tail) {
    snprintf(out, cap, "%s/%s", tmpdir, glob_tail);
}

// batch consistent with sample layout: inputs[b*T+t] = s*T + t + base, targets one further;
// returns the sample ids in s[B], or -1 entries if inconsistent
static int batch_samples(const int* in, const int* tg, int B, int T, uint32_t base, int64_t* s) {
    int ok = 1;
    for (int b = 0; b < B; b++) {
        int64_t v0 = (int64_t)in[b * T] - base;
        s[b] = v0 % T == 0 ? v0 / T : -1;
        for (int t = 0; t < T; t++) {
            if (in[b * T + t] != (int64_t)s[b] * T + t + (int64_t)base) ok = 0;
            if (tg[b * T + t] != (int64_t)s[b] * T + t + 1 + (int64_t)base) ok = 0;
        }
    }
    return ok;
}

// run fn(arg) in a child with stderr to a file; expect a non-zero exit whose message holds `want`
typedef void (*ChildFn)(const void* arg);
static void expect_death(const char* what, ChildFn fn, const void* arg, const char* want) {
    char errpath[512];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", tmpdir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(errpath, "w", stderr)) _exit(99);
        fn(arg);
        _exit(0); // survived: the test fails
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int died = WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 99;
    char msg[2048] = {0};
    FILE* f = fopen(errpath, "r");
    if (f) { size_t n = fread(msg, 1, sizeof msg - 1, f); msg[n] = '\0'; fclose(f); }
    CHECK(died, "%s: expected a clean non-zero exit, got status 0x%x", what, status);
    CHECK(strstr(msg, want) != NULL, "%s: message lacks \"%s\": %s", what, want, msg);
}

typedef struct { const char* pattern; int B, T, vocab; } LoadArgs;
static void child_load(const void* p) {
    const LoadArgs* a = (const LoadArgs*)p;
    DataLoader dl;
    dataloader_init(&dl, a->pattern, a->B, a->T, 0, 0, 0, 1, a->vocab);
    int* in = (int*)mallocCheck((size_t)a->B * a->T * sizeof(int));
    int* tg = (int*)mallocCheck((size_t)a->B * a->T * sizeof(int));
    for (int64_t k = 0; k < dl.batches_per_epoch; k++) dataloader_next_batch(&dl, in, tg);
}

// open and read ONE batch: what a 1-step run reads
static void child_first_batch(const void* p) {
    const LoadArgs* a = (const LoadArgs*)p;
    DataLoader dl;
    dataloader_init(&dl, a->pattern, a->B, a->T, 0, 0, 0, 1, a->vocab);
    int* in = (int*)mallocCheck((size_t)a->B * a->T * sizeof(int));
    int* tg = (int*)mallocCheck((size_t)a->B * a->T * sizeof(int));
    dataloader_next_batch(&dl, in, tg);
    exit(0);
}

static void child_tok(const void* p) {
    Tokenizer t;
    tokenizer_init(&t, (const char*)p);
}

// ----------------------------------------------------------------------------------------------

static void test_sequential(void) {
    // uint16 stream of 147 tokens in 4 shards (one empty): 50 | 0 | 37 | 60
    write_range("a_000.bin", 2, 0, 50, 0);
    write_range("a_001.bin", 2, 50, 0, 0);
    write_range("a_002.bin", 2, 50, 37, 0);
    write_range("a_003.bin", 2, 87, 60, 0);
    char pat[512]; pattern_of(pat, sizeof pat, "a_*.bin");
    int B = 2, T = 8;
    DataLoader dl;
    dataloader_init(&dl, pat, B, T, 0, 1234, 0, 1, 1000);
    CHECK(dl.num_shards == 4, "num_shards %d", dl.num_shards);
    CHECK(dl.num_tokens == 147, "num_tokens %lld", (long long)dl.num_tokens);
    CHECK(dl.num_samples == 18, "num_samples %lld", (long long)dl.num_samples); // (147-1)/8
    CHECK(dl.batches_per_epoch == 9, "batches_per_epoch %lld", (long long)dl.batches_per_epoch);
    int in[16], tg[16];
    int all_ok = 1;
    for (int k = 0; k < 9; k++) { // batch k reads tokens [k*B*T, k*B*T + B*T + 1)
        CHECK(dl.epoch == 0 && dl.batch_in_epoch == k, "position before batch %d: %lld/%lld", k, (long long)dl.epoch, (long long)dl.batch_in_epoch);
        dataloader_next_batch(&dl, in, tg);
        for (int i = 0; i < B * T; i++) {
            if (in[i] != k * B * T + i || tg[i] != k * B * T + i + 1) all_ok = 0;
        }
    }
    CHECK(all_ok, "sequential batches read the wrong tokens (incl. across shard boundaries 50, 87)");
    CHECK(dl.epoch == 1 && dl.batch_in_epoch == 0, "after the last batch: epoch %lld batch %lld", (long long)dl.epoch, (long long)dl.batch_in_epoch);
    dataloader_next_batch(&dl, in, tg); // epoch 1, batch 0: back to token 0
    CHECK(in[0] == 0 && tg[0] == 1 && in[15] == 15 && tg[15] == 16, "wrap: in[0]=%d tg[15]=%d", in[0], tg[15]);
    int64_t e, b;
    dataloader_get_position(&dl, &e, &b);
    CHECK(e == 1 && b == 1, "get_position %lld %lld", (long long)e, (long long)b);
    dataloader_set_position(&dl, 3, 4);
    dataloader_next_batch(&dl, in, tg);
    CHECK(in[0] == 4 * B * T && tg[B * T - 1] == 5 * B * T, "set_position(3,4): in[0]=%d", in[0]);
    dataloader_reset(&dl);
    CHECK(dl.epoch == 0 && dl.batch_in_epoch == 0, "reset");
    dataloader_next_batch(&dl, in, tg);
    CHECK(in[0] == 0 && in[15] == 15, "after reset in[0]=%d", in[0]);
    dataloader_free(&dl);

    // a sample ending exactly on the last token: T=73 -> (147-1)/73 = 2 samples, the second is
    // [73, 147): it starts in shard a_002 and its last target is the stream's last token
    dataloader_init(&dl, pat, 1, 73, 0, 0, 0, 1, 1000);
    CHECK(dl.num_samples == 2 && dl.batches_per_epoch == 2, "T=73: samples %lld bpe %lld", (long long)dl.num_samples, (long long)dl.batches_per_epoch);
    int in2[73], tg2[73];
    for (int k = 0; k < 2; k++) dataloader_next_batch(&dl, in2, tg2);
    CHECK(in2[0] == 73 && in2[72] == 145 && tg2[72] == 146, "last sample: in %d..%d tg %d", in2[0], in2[72], tg2[72]);
    dataloader_free(&dl);
}

static void test_uint32(void) {
    // uint32 tokens above 65535 in two shards of 40 + 33, and a uint16 shard after them
    const uint32_t base = 70000;
    write_range("c_000.bin", 4, 0, 40, base);
    write_range("c_001.bin", 4, 40, 33, base);
    char pat[512]; pattern_of(pat, sizeof pat, "c_*.bin");
    DataLoader dl;
    dataloader_init(&dl, pat, 3, 5, 0, 0, 0, 1, 200000);
    CHECK(dl.num_tokens == 73 && dl.num_samples == 14 && dl.batches_per_epoch == 4, "uint32 counts %lld %lld %lld",
          (long long)dl.num_tokens, (long long)dl.num_samples, (long long)dl.batches_per_epoch);
    int in[15], tg[15];
    int ok = 1;
    for (int k = 0; k < 4; k++) {
        dataloader_next_batch(&dl, in, tg);
        for (int i = 0; i < 15; i++) if (in[i] != (int)base + k * 15 + i || tg[i] != (int)base + k * 15 + i + 1) ok = 0;
    }
    CHECK(ok, "uint32 tokens read wrong");
    CHECK(dl.epoch == 1 && dl.batch_in_epoch == 0, "uint32 wrap");
    dataloader_free(&dl);
    // mixed widths in one stream: 1 uint16 shard then 1 uint32 shard
    write_range("m_000.bin", 2, 0, 20, 0);
    write_range("m_001.bin", 4, 20, 20, 0);
    pattern_of(pat, sizeof pat, "m_*.bin");
    dataloader_init(&dl, pat, 1, 30, 0, 0, 0, 1, 100);
    int in3[30], tg3[30];
    dataloader_next_batch(&dl, in3, tg3);
    CHECK(in3[0] == 0 && in3[29] == 29 && tg3[29] == 30, "mixed widths: %d %d %d", in3[0], in3[29], tg3[29]);
    dataloader_free(&dl);
}

// samples seen over `epochs` epochs; returns 1 if every batch was consistent
static int collect(DataLoader* dl, int epochs, int64_t* seen /* (epochs*bpe*B) */) {
    int ok = 1, B = dl->B, T = dl->T;
    int* in = (int*)mallocCheck((size_t)B * T * sizeof(int));
    int* tg = (int*)mallocCheck((size_t)B * T * sizeof(int));
    int64_t n = 0;
    for (int e = 0; e < epochs; e++) {
        for (int64_t k = 0; k < dl->batches_per_epoch; k++) {
            dataloader_next_batch(dl, in, tg);
            ok &= batch_samples(in, tg, B, T, 0, seen + n);
            n += B;
        }
    }
    free(in); free(tg);
    return ok;
}

static void test_shuffle(void) {
    char pat[512]; pattern_of(pat, sizeof pat, "a_*.bin"); // 147 tokens, T=8 -> 18 samples
    int B = 2, T = 8;
    DataLoader d1, d2, d3;
    dataloader_init(&d1, pat, B, T, 1, 42, 0, 1, 1000);
    dataloader_init(&d2, pat, B, T, 1, 42, 0, 1, 1000);
    dataloader_init(&d3, pat, B, T, 1, 43, 0, 1, 1000);
    int64_t s1[36], s2[36], s3[36];
    CHECK(collect(&d1, 2, s1), "shuffled batches are not whole samples");
    collect(&d2, 2, s2);
    collect(&d3, 2, s3);
    for (int e = 0; e < 2; e++) {
        int count[18] = {0}, bad = 0;
        for (int i = 0; i < 18; i++) { int64_t s = s1[e * 18 + i]; if (s < 0 || s >= 18) bad = 1; else count[s]++; }
        int once = !bad;
        for (int s = 0; s < 18; s++) if (count[s] != 1) once = 0;
        CHECK(once, "epoch %d: shuffle does not visit each sample exactly once", e);
    }
    CHECK(memcmp(s1, s2, sizeof s1) == 0, "same seed gives a different order");
    CHECK(memcmp(s1, s3, sizeof s1) != 0, "different seed gives the same order");
    CHECK(memcmp(s1, s1 + 18, 18 * sizeof(int64_t)) != 0, "epochs 0 and 1 have the same order");
    int identity = 1;
    for (int i = 0; i < 18; i++) if (s1[i] != i) identity = 0;
    CHECK(!identity, "shuffle=1 gave the sequential order");
    // pinned first samples: the PRNG must give the same order on every machine and build
    CHECK(s1[0] == 3 && s1[1] == 6 && s1[2] == 1 && s1[3] == 16, "seed 42 epoch 0 order changed: %lld %lld %lld %lld (expected 3 6 1 16)",
          (long long)s1[0], (long long)s1[1], (long long)s1[2], (long long)s1[3]);
    // exact resume: position after 13 batches (epoch 1, batch 4), then a fresh loader
    dataloader_reset(&d2);
    int in[16], tg[16], in_r[16], tg_r[16];
    for (int k = 0; k < 13; k++) dataloader_next_batch(&d2, in, tg);
    int64_t e, b;
    dataloader_get_position(&d2, &e, &b);
    CHECK(e == 1 && b == 4, "position after 13 batches: %lld %lld", (long long)e, (long long)b);
    DataLoader d4;
    dataloader_init(&d4, pat, B, T, 1, 42, 0, 1, 1000);
    dataloader_set_position(&d4, e, b);
    int same = 1;
    for (int k = 0; k < 7; k++) { // crosses into epoch 2
        dataloader_next_batch(&d2, in, tg);
        dataloader_next_batch(&d4, in_r, tg_r);
        if (memcmp(in, in_r, sizeof in) || memcmp(tg, tg_r, sizeof tg)) same = 0;
    }
    CHECK(same, "resume from (epoch, batch) does not reproduce the batches");
    dataloader_free(&d1); dataloader_free(&d2); dataloader_free(&d3); dataloader_free(&d4);

    // rank samples not a multiple of B: 18 samples, B=4 -> 4 batches, 16 distinct samples
    DataLoader d5;
    dataloader_init(&d5, pat, 4, T, 1, 7, 0, 1, 1000);
    CHECK(d5.batches_per_epoch == 4, "B=4 bpe %lld", (long long)d5.batches_per_epoch);
    int64_t s5[16];
    collect(&d5, 1, s5);
    int count[18] = {0}, atmost = 1;
    for (int i = 0; i < 16; i++) if (s5[i] < 0 || s5[i] >= 18 || ++count[s5[i]] > 1) atmost = 0;
    CHECK(atmost, "B=4: a sample repeats within an epoch");
    dataloader_free(&d5);
}

static void test_ranks(void) {
    char pat[512]; pattern_of(pat, sizeof pat, "a_*.bin"); // 18 samples of T=8
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        int count[18] = {0}, owner_ok = 1;
        for (int r = 0; r < 3; r++) {
            DataLoader dl;
            dataloader_init(&dl, pat, 2, 8, shuffle, 9, r, 3, 1000);
            CHECK(dl.rank_samples == 6 && dl.batches_per_epoch == 3, "world 3 rank %d: %lld samples %lld batches", r, (long long)dl.rank_samples, (long long)dl.batches_per_epoch);
            int64_t s[6];
            CHECK(collect(&dl, 1, s), "rank %d batches inconsistent", r);
            for (int i = 0; i < 6; i++) {
                if (s[i] < 0 || s[i] >= 18 || s[i] % 3 != r) owner_ok = 0;
                else count[s[i]]++;
            }
            if (shuffle == 0) CHECK(s[0] == r && s[1] == r + 3 && s[5] == r + 15, "rank %d sequential order %lld %lld", r, (long long)s[0], (long long)s[1]);
            dataloader_free(&dl);
        }
        int part = owner_ok;
        for (int i = 0; i < 18; i++) if (count[i] != 1) part = 0;
        CHECK(part, "shuffle %d: ranks do not partition the samples", shuffle);
    }
    int expect[4] = {4, 4, 4, 4}; // 18 samples over world 4: each rank uses floor(18/4) (lockstep)
    for (int r = 0; r < 4; r++) {
        DataLoader dl;
        dataloader_init(&dl, pat, 2, 8, 0, 0, r, 4, 1000);
        CHECK(dl.rank_samples == expect[r] && dl.batches_per_epoch == expect[r] / 2, "world 4 rank %d: %lld", r, (long long)dl.rank_samples);
        dataloader_free(&dl);
    }
}

static void test_bad_shards(void) {
    uint32_t t[64];
    for (int i = 0; i < 64; i++) t[i] = (uint32_t)i;
    char pat[512];
    LoadArgs a;
    a.B = 2; a.T = 4; a.vocab = 1000; a.pattern = pat;

    write_shard("bad_trunc.bin", 20240520, 1, 64, 0, t, 60, 2, 0);
    pattern_of(pat, sizeof pat, "bad_trunc.bin");
    expect_death("truncated", child_load, &a, "truncated");

    write_shard("bad_trail.bin", 20240520, 1, 60, 0, t, 60, 2, 3);
    pattern_of(pat, sizeof pat, "bad_trail.bin");
    expect_death("trailing bytes", child_load, &a, "trailing bytes");

    write_shard("bad_magic.bin", 20240521, 1, 64, 0, t, 64, 2, 0);
    pattern_of(pat, sizeof pat, "bad_magic.bin");
    expect_death("wrong magic", child_load, &a, "wrong magic");

    write_shard("bad_version.bin", 20240801, 1, 64, 0, t, 64, 4, 0);
    pattern_of(pat, sizeof pat, "bad_version.bin");
    expect_death("unknown version", child_load, &a, "unknown version");

    write_shard("bad_layout.bin", 20240520, 1, 64, 2, t, 64, 2, 0);
    pattern_of(pat, sizeof pat, "bad_layout.bin");
    expect_death("layout flag", child_load, &a, "layout flag");

    pattern_of(pat, sizeof pat, "bad_hdr.bin");
    FILE* f = fopenCheck(pat, "wb");
    fwriteCheck(t, 1, 100, f, pat); // 100 bytes: shorter than the header
    fclose(f);
    expect_death("short header", child_load, &a, "truncated");

    write_shard("bad_short.bin", 20240520, 1, 10, 0, t, 10, 2, 0);
    pattern_of(pat, sizeof pat, "bad_short.bin");
    LoadArgs a2 = a; a2.T = 8; // 10 tokens < B*T+1 = 17
    expect_death("too few tokens", child_load, &a2, "fewer than one batch");

    t[37] = 1000; // == vocab
    write_shard("bad_vocab.bin", 20240520, 1, 64, 0, t, 64, 2, 0);
    pattern_of(pat, sizeof pat, "bad_vocab.bin");
    expect_death("token >= vocab", child_load, &a, "token id 1000 at token offset 37 >= vocab_size 1000");
    // a bad id far past the first batch (tokens 0..8) dies at open, before any step: a short
    // run used to pass and a long one to die when a batch reached it
    t[37] = 5; t[62] = 4000;
    write_shard("bad_vocab_late.bin", 20240520, 1, 64, 0, t, 64, 2, 0);
    pattern_of(pat, sizeof pat, "bad_vocab_late.bin");
    expect_death("token >= vocab past the first batch", child_first_batch, &a, "token id 4000 at token offset 62 >= vocab_size 1000");

    pattern_of(pat, sizeof pat, "nothing_here_*.bin");
    expect_death("glob matches nothing", child_load, &a, "no shard matches");
}

// ----------------------------------------------------------------------------------------------
// layout 1 (paper/padded rows)

static void test_paper(void) {
    // R = 6, pad 0: two shards of two rows each and an empty shard; rows never straddle shards
    static const uint32_t rows_a[] = {5, 6, 7, 8, 9, 10,   // full row: no pad
                                      11, 12, 1, 0, 0, 0}; // doc, eos 1, padding
    static const uint32_t rows_b[] = {1, 0, 0, 0, 0, 0,    // empty document: eos then pads
                                      20, 21, 22, 23, 1, 0};
    write_paper("p_000.bin", 6, 0, rows_a, 12);
    write_paper("p_001.bin", 6, 0, rows_b, 12);
    write_paper("p_002.bin", 6, 0, rows_b, 0);
    static const int want_tg[4][6] = {{6, 7, 8, 9, 10, -1}, {12, 1, -1, -1, -1, -1},
                                      {-1, -1, -1, -1, -1, -1}, {21, 22, 23, 1, -1, -1}};
    const uint32_t* want_in[4] = {rows_a, rows_a + 6, rows_b, rows_b + 6};
    char pat[512]; pattern_of(pat, sizeof pat, "p_*.bin");
    DataLoader dl;
    dataloader_init(&dl, pat, 2, 6, 0, 0, 0, 1, 50);
    CHECK(dl.layout == 1 && dl.row_len == 6 && dl.pad_id == 0, "paper fields: layout %d R %d pad %d", dl.layout, dl.row_len, dl.pad_id);
    CHECK(dl.num_tokens == 24 && dl.num_samples == 4 && dl.batches_per_epoch == 2, "paper counts: tokens %lld rows %lld bpe %lld",
          (long long)dl.num_tokens, (long long)dl.num_samples, (long long)dl.batches_per_epoch);
    int in[12], tg[12];
    for (int k = 0; k < 2; k++) {
        dataloader_next_batch(&dl, in, tg);
        for (int b = 0; b < 2; b++) {
            int r = k * 2 + b, ok = 1;
            for (int t = 0; t < 6; t++) if (in[b * 6 + t] != (int)want_in[r][t] || tg[b * 6 + t] != want_tg[r][t]) ok = 0;
            CHECK(ok, "paper row %d: inputs %d %d %d %d %d %d targets %d %d %d %d %d %d", r, in[b * 6], in[b * 6 + 1],
                  in[b * 6 + 2], in[b * 6 + 3], in[b * 6 + 4], in[b * 6 + 5], tg[b * 6], tg[b * 6 + 1], tg[b * 6 + 2],
                  tg[b * 6 + 3], tg[b * 6 + 4], tg[b * 6 + 5]);
        }
    }
    CHECK(dl.epoch == 1 && dl.batch_in_epoch == 0, "paper wrap: %lld %lld", (long long)dl.epoch, (long long)dl.batch_in_epoch);
    dataloader_free(&dl);
    { // the packed layout is unchanged
        DataLoader d0;
        char pa[512]; pattern_of(pa, sizeof pa, "a_*.bin");
        dataloader_init(&d0, pa, 2, 8, 0, 0, 0, 1, 1000);
        CHECK(d0.layout == 0 && d0.row_len == 0 && d0.pad_id == -1, "packed fields: layout %d R %d pad %d", d0.layout, d0.row_len, d0.pad_id);
        int i0[16], t0[16];
        dataloader_next_batch(&d0, i0, t0);
        CHECK(i0[0] == 0 && t0[0] == 1 && t0[15] == 16, "packed batch changed: %d %d %d", i0[0], t0[0], t0[15]);
        dataloader_free(&d0);
    }

    // the pad is header[5], not 0: a real token 0 keeps its target, pad 49 is ignored
    static const uint32_t rows_c[] = {4, 0, 7, 1, 49, 49,  3, 0, 0, 2, 5, 1};
    write_paper("q_000.bin", 6, 49, rows_c, 12);
    pattern_of(pat, sizeof pat, "q_000.bin");
    dataloader_init(&dl, pat, 2, 6, 0, 0, 0, 1, 50);
    dataloader_next_batch(&dl, in, tg);
    static const int want_c[12] = {0, 7, 1, -1, -1, -1,  0, 0, 2, 5, 1, -1};
    CHECK(memcmp(tg, want_c, sizeof want_c) == 0, "pad 49 targets: %d %d %d %d %d %d | %d %d %d %d %d %d",
          tg[0], tg[1], tg[2], tg[3], tg[4], tg[5], tg[6], tg[7], tg[8], tg[9], tg[10], tg[11]);
    dataloader_free(&dl);

    // ranks and shuffling work on rows: world 2 rank 1 owns rows 1 and 3
    pattern_of(pat, sizeof pat, "p_*.bin");
    dataloader_init(&dl, pat, 1, 6, 0, 0, 1, 2, 50);
    CHECK(dl.rank_samples == 2 && dl.batches_per_epoch == 2, "paper rank 1 of 2: %lld rows", (long long)dl.rank_samples);
    dataloader_next_batch(&dl, in, tg);
    CHECK(in[0] == 11 && tg[1] == 1, "rank 1 batch 0 is not row 1: in[0] %d", in[0]);
    dataloader_next_batch(&dl, in, tg);
    CHECK(in[0] == 20 && tg[3] == 1, "rank 1 batch 1 is not row 3: in[0] %d", in[0]);
    dataloader_free(&dl);
    dataloader_init(&dl, pat, 1, 6, 1, 5, 0, 1, 50);
    int seen_ok = 1, identity = 1;
    for (int e = 0; e < 3; e++) {
        int count[4] = {0};
        for (int k = 0; k < 4; k++) {
            dataloader_next_batch(&dl, in, tg);
            int r = -1;
            for (int j = 0; j < 4; j++) if (in[0] == (int)want_in[j][0] && in[1] == (int)want_in[j][1]) r = j;
            if (r < 0 || memcmp(tg, want_tg[r], sizeof want_tg[r]) != 0) seen_ok = 0; else count[r]++;
            if (r != k) identity = 0;
        }
        for (int j = 0; j < 4; j++) if (count[j] != 1) seen_ok = 0;
    }
    CHECK(seen_ok, "paper shuffle: each epoch must visit each row once, with its own targets");
    CHECK(!identity, "paper shuffle gave the sequential order three epochs in a row");
    dataloader_free(&dl);

    // errors
    LoadArgs a;
    a.B = 2; a.T = 6; a.vocab = 50; a.pattern = pat;
    LoadArgs aT = a; aT.T = 8;
    pattern_of(pat, sizeof pat, "p_*.bin");
    char want[600];
    snprintf(want, sizeof want, "--seq must equal the row length R of paper-layout shard %s/p_000.bin", tmpdir);
    expect_death("paper T != R", child_load, &aT, want);
    LoadArgs aV = a; aV.vocab = 13; // shard p_001 row 3 holds ids 20..23
    expect_death("paper token >= vocab", child_load, &aV, "p_001.bin: token id 20 at token offset 6 >= vocab_size 13");
    LoadArgs aB = a; aB.B = 5; // 4 rows
    expect_death("paper fewer rows than a batch", child_load, &aB, "4 rows of 6 tokens, fewer than one batch of 5");

    write_range("mix_000.bin", 2, 0, 60, 0); // packed, then paper: mixed layouts
    write_paper("mix_001.bin", 6, 0, rows_a, 12);
    pattern_of(pat, sizeof pat, "mix_*.bin");
    expect_death("mixed layouts", child_load, &a, "mix layouts");
    write_paper("mr_000.bin", 6, 0, rows_a, 12); // same layout, other R
    write_paper("mr_001.bin", 4, 0, rows_a, 12);
    pattern_of(pat, sizeof pat, "mr_*.bin");
    expect_death("mixed row lengths", child_load, &a, "mix layouts");
    write_paper("mp_000.bin", 6, 0, rows_a, 12); // same R, other pad
    write_paper("mp_001.bin", 6, 3, rows_a, 12);
    pattern_of(pat, sizeof pat, "mp_*.bin");
    expect_death("mixed pad ids", child_load, &a, "mix layouts");

    write_paper("pv_000.bin", 6, 50, rows_a, 12);
    pattern_of(pat, sizeof pat, "pv_000.bin");
    expect_death("pad id >= vocab", child_load, &a, "pad id 50 >= vocab_size 50");
    write_paper("pneg_000.bin", 6, -1, rows_a, 12);
    pattern_of(pat, sizeof pat, "pneg_000.bin");
    expect_death("negative pad id", child_load, &a, "negative pad id");
    write_paper("prow_000.bin", 5, 0, rows_a, 12); // 12 tokens are not rows of 5
    pattern_of(pat, sizeof pat, "prow_000.bin");
    expect_death("count not a multiple of R", child_load, &a, "not a multiple of the row length 5");
    write_paper("pr1_000.bin", 1, 0, rows_a, 12);
    pattern_of(pat, sizeof pat, "pr1_000.bin");
    expect_death("row length < 2", child_load, &a, "row length header[4] = 1");
}

// ----------------------------------------------------------------------------------------------

static void test_tokenizer_real(void) {
    const char* path = "dev/data/tinytext/tokenizer.bin";
    Tokenizer t;
    int ok = tokenizer_init(&t, path);
    CHECK(ok, "%s not found (run from the repo root after python dev/data/tinytext.py)", path);
    if (!ok) return;
    CHECK(t.vocab_size == 4096 && t.bos_id == 1 && t.eos_id == 2 && t.pad_id == -1 && t.unk_id == 0,
          "header: vocab %d bos %d eos %d pad %d unk %d", t.vocab_size, t.bos_id, t.eos_id, t.pad_id, t.unk_id);
    // made with sentencepiece 0.2.3 on dev/data/tinytext/tokenizer.model:
    //   ids = [1] + sp.encode("It is a truth universally acknowledged, that a single man\nin
    //         possession of 1,250 pounds: naïve café €5.") + [2] + sp.encode("Mr. Darcy smiled.") + [0]
    //   expected = sp.decode(ids)
    // covers: bos/eos skipped, leading-space drop, newline and accented letters and € as
    // byte-fallback runs, digits, a lone '▁' piece, and <unk> as " ⁇ "
    static const int ids[] = {1, 590, 368, 261, 1900, 469, 4023, 1166, 554, 2704, 4036, 336, 261,
        3146, 539, 13, 262, 3783, 284, 4017, 4079, 4036, 4080, 4086, 4081, 2463, 4071, 287, 4020,
        198, 178, 311, 280, 3746, 198, 172, 4017, 229, 133, 175, 4086, 4040, 2, 361, 4040, 1052,
        2969, 4040, 0};
    static const char* expected = "It is a truth universally acknowledged, that a single man\n"
        "in possession of 1,250 pounds: na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac" "5. Mr. Darcy smiled. \xe2\x81\x87 ";
    char out[512];
    int n = (int)(sizeof ids / sizeof ids[0]);
    size_t len = tokenizer_decode(&t, ids, n, out, sizeof out);
    CHECK(strcmp(out, expected) == 0 && len == strlen(expected), "decode:\n got  [%s]\n want [%s]", out, expected);
    char small[11];
    len = tokenizer_decode(&t, ids, n, small, sizeof small);
    CHECK(len == 10 && strncmp(small, expected, 10) == 0 && small[10] == '\0', "truncated decode [%s] len %zu", small, len);
    tokenizer_free(&t);
    Tokenizer missing;
    CHECK(tokenizer_init(&missing, "dev/data/tinytext/no_such_tokenizer.bin") == 0, "missing file should return 0");
}

// hand-made tokenizer.bin: header fields plus (type, text) for each id
static void write_tokenizer(const char* name, int magic, int vocab, int npieces, const int* types,
                            const char** texts, int extra) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE* f = fopenCheck(path, "wb");
    int32_t h[256];
    memset(h, 0, sizeof h);
    h[0] = magic; h[1] = 1; h[2] = vocab; h[3] = 1; h[4] = 2; h[5] = -1; h[6] = 0;
    fwriteCheck(h, sizeof(int32_t), 256, f, path);
    for (int i = 0; i < npieces; i++) {
        uint8_t tl[2] = {(uint8_t)types[i], (uint8_t)strlen(texts[i])};
        fwriteCheck(tl, 1, 2, f, path);
        fwriteCheck(texts[i], 1, strlen(texts[i]), f, path);
    }
    for (int i = 0; i < extra; i++) fputc('x', f);
    fclose(f);
}

static void test_tokenizer_handmade(void) {
    static const int types[] = {3, 1, 1, 2, 2, 2, 0, 0, 0, 0, 2, 4};
    static const char* texts[] = {"<unk>", "<s>", "</s>", "<0xE2>", "<0x82>", "<0xAC>",
        "\xe2\x96\x81Hello", "\xe2\x96\x81world", "\xe2\x96\x81", "!\xe2\x96\x81\xe2\x96\x81x", "<0x0A>", "zz"};
    int nv = 12;
    write_tokenizer("tok.bin", 20241124, nv, nv, types, texts, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/tok.bin", tmpdir);
    Tokenizer t;
    CHECK(tokenizer_init(&t, path) == 1, "hand-made tokenizer failed to load");
    struct { int ids[8]; int n; const char* want; } cases[] = {
        {{1, 6, 7, 3, 4, 5, 9, 2}, 8, "Hello world\xe2\x82\xac!  x"},       // bytes -> €, controls skipped
        {{8, 6}, 2, " Hello"},                                              // lone '▁' eats the prefix
        {{3, 6}, 2, "\xef\xbf\xbd Hello"},                                  // a cut-short byte run: U+FFFD
        {{4, 5, 3, 4}, 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},       // stray continuations: one each
        {{0, 6}, 2, " \xe2\x81\x87  Hello"},                                // <unk>
        {{6, 10, 7}, 3, "Hello\n world"},                                   // newline byte
        {{6, 99, -5}, 3, "Hello<99?><-5?>"},                                // out of range ids
        {{1, 2}, 2, ""},                                                    // only controls
        {{11, 7}, 2, "zz world"},                                           // unused printed as text
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char out[128];
        tokenizer_decode(&t, cases[c].ids, cases[c].n, out, sizeof out);
        CHECK(strcmp(out, cases[c].want) == 0, "hand-made case %zu: got [%s] want [%s]", c, out, cases[c].want);
    }
    // a buffer too small for the last character ends before it, never inside it
    int euro[3] = {3, 4, 5};
    char tiny[4];
    size_t tl = tokenizer_decode(&t, euro, 3, tiny, 3);
    CHECK(tl == 0 && tiny[0] == '\0', "a 3-byte character in a 3-byte buffer (2 bytes + NUL): got %zu bytes", tl);
    tl = tokenizer_decode(&t, euro, 3, tiny, 4);
    CHECK(tl == 3 && strcmp(tiny, "\xe2\x82\xac") == 0, "the euro sign in a 4-byte buffer: got %zu bytes", tl);
    tokenizer_free(&t);

    static char p_magic[512], p_trunc[512], p_trail[512], p_byte[512], p_type[512];
    write_tokenizer("tok_magic.bin", 20241125, nv, nv, types, texts, 0);
    snprintf(p_magic, sizeof p_magic, "%s/tok_magic.bin", tmpdir);
    expect_death("tokenizer wrong magic", child_tok, p_magic, "wrong magic");
    write_tokenizer("tok_trunc.bin", 20241124, nv + 1, nv, types, texts, 0); // declares one more
    snprintf(p_trunc, sizeof p_trunc, "%s/tok_trunc.bin", tmpdir);
    expect_death("tokenizer truncated", child_tok, p_trunc, "truncated");
    write_tokenizer("tok_trail.bin", 20241124, nv, nv, types, texts, 5);
    snprintf(p_trail, sizeof p_trail, "%s/tok_trail.bin", tmpdir);
    expect_death("tokenizer trailing bytes", child_tok, p_trail, "trailing bytes");
    static const int types_b[] = {3, 1, 1, 2};
    static const char* texts_b[] = {"<unk>", "<s>", "</s>", "<0xZZ>"};
    write_tokenizer("tok_byte.bin", 20241124, 4, 4, types_b, texts_b, 0);
    snprintf(p_byte, sizeof p_byte, "%s/tok_byte.bin", tmpdir);
    expect_death("tokenizer bad byte piece", child_tok, p_byte, "<0xHH>");
    static const int types_t[] = {3, 1, 1, 9};
    static const char* texts_t[] = {"<unk>", "<s>", "</s>", "a"};
    write_tokenizer("tok_type.bin", 20241124, 4, 4, types_t, texts_t, 0);
    snprintf(p_type, sizeof p_type, "%s/tok_type.bin", tmpdir);
    expect_death("tokenizer bad type", child_tok, p_type, "unknown type");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) die("mkdtemp failed: %s", strerror(errno));
    test_sequential();
    test_uint32();
    test_shuffle();
    test_ranks();
    test_bad_shards();
    test_paper();
    test_tokenizer_real();
    test_tokenizer_handmade();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
