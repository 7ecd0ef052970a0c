// dataloader.h: token shards (llm.c layout) -> (inputs, targets) micro-batches of B x T.
//
// Shard file: a 1024-byte header of 256 little-endian int32, then the tokens.
//   header[0] magic, header[1] version, header[2] token count, header[3] layout,
//   header[4] row length R and header[5] pad id (layout 1 only; 0 for layout 0), the rest unused.
//   magic 20240520 version 1: uint16 tokens (llm.c GPT-2 shards)
//   magic 20240801 version 7: uint32 tokens (llm.c llama3 shards)
// The file size must be exactly 1024 + count * width.
//
// Layout 0, packed (llm.c): all shards matching a glob, sorted by name, form ONE token stream of
// num_tokens tokens. Sample s is the tokens [s*T, s*T + T + 1) of that stream (inputs = first T,
// targets = the same shifted by one), so a sample may span a shard boundary;
// num_samples = (num_tokens-1)/T.
//
// Layout 1, paper/padded (GaLore's C4 setup: one document per row, no packing): each shard is
// rows of exactly R tokens (count % R == 0, so rows never straddle shards), each row one
// document truncated or right-padded with the pad id. Sample s is row s of the concatenated
// shards; num_samples = num_tokens / R and T must equal R. inputs = the R tokens of the row;
// targets[t] = row[t+1] for t < R-1, -1 (ignored) for t = R-1 and wherever row[t+1] == pad id.
// That is HF LlamaForCausalLM's loss with labels = input_ids, labels[pad] = -100 (it shifts
// internally). The padding is on the right, so causal attention never lets a real token see a
// pad and no attention mask is needed. All shards of one glob must share layout, R and pad id.
// Rank r of world w owns the samples with s % w == r and uses the first floor(N / w) of them; an
// epoch is batches_per_epoch = floor(N / w) / B micro-batches on every rank. shuffle=0:
// micro-batch k uses owned samples k*B .. k*B+B-1 in order; shuffle=1: each epoch uses a Fisher-Yates permutation of the owned samples drawn from a
// splitmix64 stream seeded by (seed, epoch), the same on every machine. Samples that do not fill
// a last whole batch are skipped for that epoch. After the last batch of an epoch the loader
// goes on with batch 0 of the next one; (epoch, batch_in_epoch) is the whole state, so
// dataloader_set_position() resumes exactly.
//
// Either way, sharding and shuffling below work on sample indices only.
//
// Tokens are read through a read-only mmap of each shard (64-bit offsets throughout). Every token
// of every shard is checked against vocab_size once, at open, so that a shard made with another
// tokenizer dies with a clear message before the first step instead of indexing out of the
// embedding table when a batch reaches it (or never, in a short run).
#ifndef DATALOADER_H
#define DATALOADER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <glob.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "utils.h"
#include "rand.h"

#define DATA_HEADER_INTS 256
#define DATA_HEADER_BYTES 1024
#define DATA_MAGIC_U16 20240520
#define DATA_VERSION_U16 1
#define DATA_MAGIC_U32 20240801
#define DATA_VERSION_U32 7
#define DATA_LAYOUT_PACKED 0
#define DATA_LAYOUT_PAPER 1
// what a file that is not a shard (raw text, JSON lines) needs first
#define DATA_PREPARE_HINT "text or JSON lines become token shards with python dev/data/prepare.py --tokenizer MODEL_DIR --input FILE --out DIR"

typedef struct {
    char* path;
    void* map;              // whole file mapped read-only (NULL for a shard with no tokens)
    size_t map_bytes;
    const uint8_t* tokens;  // (count * width) bytes, little-endian tokens
    int width;              // bytes per token: 2 or 4
    int64_t count;          // tokens in this shard
    int64_t start;          // offset of its first token in the concatenated stream
    int layout;             // header[3]: DATA_LAYOUT_PACKED or DATA_LAYOUT_PAPER
    int row_len;            // header[4]: R for the paper layout, 0 for packed
    int pad_id;             // header[5]: pad id for the paper layout, -1 for packed
} DataShard;

typedef struct {
    // config
    int B, T;
    int shuffle;
    uint64_t seed;
    int rank, world;
    int vocab_size;
    int64_t max_id;         // the largest token id in the shards (the open checks it against vocab_size)
    // layout shared by every shard of the glob
    int layout;             // DATA_LAYOUT_PACKED or DATA_LAYOUT_PAPER
    int row_len;            // paper: R (== T); packed: 0
    int pad_id;             // paper: targets equal to it are ignored (-1); packed: -1
    // shards: one concatenated stream
    int num_shards;
    DataShard* shards;      // (num_shards,) sorted by path
    int64_t num_tokens;     // whole stream
    int64_t num_samples;    // packed: (num_tokens - 1) / T; paper: num_tokens / R (rows); over all ranks
    int64_t rank_samples;   // samples owned by this rank: s % world == rank
    int64_t batches_per_epoch; // rank_samples / B
    // position: the batch that the next dataloader_next_batch() returns
    int64_t epoch;
    int64_t batch_in_epoch;
    // shuffle=1: (rank_samples,) local sample index for each slot of the current epoch
    int64_t* order;
    int64_t order_epoch;    // the epoch `order` was built for (-1: none)
    int cur_shard;          // last shard read, to skip the binary search when reading on
} DataLoader;

// epoch order: identity for shuffle=0, else Fisher-Yates seeded from (seed, epoch)
static void dataloader_build_order(DataLoader* dl, int64_t epoch) {
    if (!dl->shuffle || dl->order_epoch == epoch) return;
    int64_t n = dl->rank_samples;
    for (int64_t i = 0; i < n; i++) dl->order[i] = i;
    // rand.h's splitmix64, seeded from (seed, epoch), so the order is the same on every machine
    Rng mix; rng_init(&mix, dl->seed);
    Rng rng; rng_init(&rng, rng_u64(&mix) ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ULL));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&rng, (uint64_t)(i + 1));
        int64_t tmp = dl->order[i]; dl->order[i] = dl->order[j]; dl->order[j] = tmp;
    }
    dl->order_epoch = epoch;
}

// ----------------------------------------------------------------------------------------------
// shards

static int dataloader_cmp_str(const void* a, const void* b) {
    return strcmp(*(const char* const*)a, *(const char* const*)b);
}

static void dataloader_open_shard(DataShard* sh, const char* path) {
    memset(sh, 0, sizeof(*sh));
    size_t plen = strlen(path);
    sh->path = (char*)mallocCheck(plen + 1);
    memcpy(sh->path, path, plen + 1);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("shard %s: cannot open: %s; hint: check the path and permissions", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) die("shard %s: cannot stat: %s", path, strerror(errno));
    int64_t size = (int64_t)st.st_size;
    if (size < DATA_HEADER_BYTES) {
        die("shard %s: truncated: %lld bytes, smaller than the %d-byte header; hint: the file is "
            "cut short or is not a token shard (" DATA_PREPARE_HINT ")", path, (long long)size, DATA_HEADER_BYTES);
    }
    uint8_t raw[DATA_HEADER_BYTES];
    ssize_t got = pread(fd, raw, DATA_HEADER_BYTES, 0);
    if (got != DATA_HEADER_BYTES) die("shard %s: cannot read the header: %s", path, got < 0 ? strerror(errno) : "short read");
    int32_t header[DATA_HEADER_INTS];
    for (int i = 0; i < DATA_HEADER_INTS; i++) { // explicit little-endian decode
        header[i] = (int32_t)((uint32_t)raw[4*i] | ((uint32_t)raw[4*i+1] << 8) |
                              ((uint32_t)raw[4*i+2] << 16) | ((uint32_t)raw[4*i+3] << 24));
    }
    if (header[0] == DATA_MAGIC_U16) {
        if (header[1] != DATA_VERSION_U16) {
            die("shard %s: unknown version %d for magic %d (expected %d, uint16 tokens); hint: "
                "regenerate the shard", path, header[1], header[0], DATA_VERSION_U16);
        }
        sh->width = 2;
    } else if (header[0] == DATA_MAGIC_U32) {
        if (header[1] != DATA_VERSION_U32) {
            die("shard %s: unknown version %d for magic %d (expected %d, uint32 tokens); hint: "
                "regenerate the shard", path, header[1], header[0], DATA_VERSION_U32);
        }
        sh->width = 4;
    } else {
        die("shard %s: wrong magic %d (expected %d for uint16 or %d for uint32 tokens); hint: "
            "this is not a token shard of the llm.c layout (" DATA_PREPARE_HINT ")", path, header[0], DATA_MAGIC_U16, DATA_MAGIC_U32);
    }
    if (header[2] < 0) die("shard %s: negative token count %d in the header; hint: the file is corrupt", path, header[2]);
    if (header[3] != DATA_LAYOUT_PACKED && header[3] != DATA_LAYOUT_PAPER) {
        die("shard %s: layout flag header[3] = %d is not supported (0 = packed, 1 = paper/padded); "
            "hint: this shard was written for a newer version of galore.c", path, header[3]);
    }
    sh->count = header[2];
    sh->layout = header[3];
    sh->row_len = 0;
    sh->pad_id = -1;
    if (sh->layout == DATA_LAYOUT_PAPER) {
        if (header[4] < 2) {
            die("shard %s: paper layout with row length header[4] = %d (must be >= 2); hint: the "
                "header is corrupt, regenerate the shard", path, header[4]);
        }
        if (header[5] < 0) {
            die("shard %s: paper layout with negative pad id header[5] = %d; hint: the header is "
                "corrupt, regenerate the shard", path, header[5]);
        }
        if (sh->count % header[4] != 0) {
            die("shard %s: paper layout: token count %lld is not a multiple of the row length %d; "
                "hint: the shard is corrupt or cut short, regenerate it", path, (long long)sh->count, header[4]);
        }
        sh->row_len = header[4];
        sh->pad_id = header[5];
    }
    int64_t expect = (int64_t)DATA_HEADER_BYTES + sh->count * sh->width;
    if (size < expect) {
        die("shard %s: truncated: header says %lld tokens (%lld bytes) but the file has %lld bytes; "
            "hint: the file was cut short, regenerate it", path, (long long)sh->count,
            (long long)expect, (long long)size);
    }
    if (size > expect) {
        die("shard %s: %lld trailing bytes after the %lld tokens the header declares; hint: wrong "
            "token width or a corrupt header, regenerate it", path, (long long)(size - expect),
            (long long)sh->count);
    }
    if (sh->count > 0) {
        sh->map_bytes = (size_t)size;
        sh->map = mmap(NULL, sh->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (sh->map == MAP_FAILED) die("shard %s: mmap of %lld bytes failed: %s", path, (long long)size, strerror(errno));
        sh->tokens = (const uint8_t*)sh->map + DATA_HEADER_BYTES;
    }
    close(fd); // the mapping stays valid
}

// shard holding stream offset g (g < num_tokens); empty shards are never returned
static int dataloader_find_shard(DataLoader* dl, int64_t g) {
    DataShard* c = &dl->shards[dl->cur_shard];
    if (g >= c->start && g < c->start + c->count) return dl->cur_shard;
    int lo = 0, hi = dl->num_shards - 1; // last shard with start <= g
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (dl->shards[mid].start <= g) lo = mid; else hi = mid - 1;
    }
    while (dl->shards[lo].count == 0 || g >= dl->shards[lo].start + dl->shards[lo].count) lo++; // skip empties
    dl->cur_shard = lo;
    return lo;
}

static inline uint32_t dataloader_token(const DataShard* sh, int64_t i) {
    const uint8_t* p = sh->tokens + i * sh->width;
    uint32_t tok = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    if (sh->width == 4) tok |= ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return tok;
}

// dataloader_scan_shard: every token id < vocab_size (the largest one found in parallel, then the
// first bad one for the message)
static uint32_t dataloader_scan_shard(const DataShard* sh, int vocab_size) {
    uint32_t maxv = 0;
    if (sh->count >= ((int64_t)1 << 24)) { // a big shard: in parallel (a thread team costs more than it saves on small ones)
        #pragma omp parallel for reduction(max : maxv)
        for (int64_t i = 0; i < sh->count; i++) {
            uint32_t t = dataloader_token(sh, i);
            if (t > maxv) maxv = t;
        }
    } else {
        for (int64_t i = 0; i < sh->count; i++) {
            uint32_t t = dataloader_token(sh, i);
            if (t > maxv) maxv = t;
        }
    }
    if ((int64_t)maxv < (int64_t)vocab_size) return maxv;
    for (int64_t i = 0; i < sh->count; i++) {
        uint32_t tok = dataloader_token(sh, i);
        if ((int64_t)tok >= (int64_t)vocab_size)
            die("shard %s: token id %u at token offset %lld >= vocab_size %d; hint: the shard was made with a different tokenizer "
                "than the model's (check --model / the tokenizer used by the data script)", sh->path, tok, (long long)i, vocab_size);
    }
    return maxv;
}

// out[0..n) = stream tokens [start, start+n) (checked against vocab_size at open)
static void dataloader_read_tokens(DataLoader* dl, int64_t start, int64_t n, int* out) {
    int64_t g = start, done = 0;
    while (done < n) {
        int si = dataloader_find_shard(dl, g);
        const DataShard* sh = &dl->shards[si];
        int64_t off = g - sh->start;
        int64_t take = sh->count - off;
        if (take > n - done) take = n - done;
        for (int64_t i = 0; i < take; i++) out[done + i] = (int)dataloader_token(sh, off + i);
        done += take;
        g += take;
    }
}

// ----------------------------------------------------------------------------------------------
// public API

// back to epoch 0, batch 0
static void dataloader_reset(DataLoader* dl) {
    dl->epoch = 0;
    dl->batch_in_epoch = 0;
    dl->cur_shard = 0;
}

// dataloader_open: flag names the option that gave the pattern in messages ("--train", "--val")
static void dataloader_open(DataLoader* dl, const char* flag, const char* pattern, int B, int T, int shuffle,
                            uint64_t seed, int rank, int world, int vocab_size) {
    memset(dl, 0, sizeof(*dl));
    if (B < 1 || T < 1) die("dataloader: batch %d and sequence length %d must be >= 1; hint: check --batch / --seq", B, T);
    if (world < 1 || rank < 0 || rank >= world) die("dataloader: rank %d is not in [0, world %d)", rank, world);
    if (vocab_size < 1) die("dataloader: vocab_size %d must be >= 1", vocab_size);
    dl->B = B; dl->T = T; dl->shuffle = shuffle ? 1 : 0; dl->seed = seed;
    dl->rank = rank; dl->world = world; dl->vocab_size = vocab_size;

    glob_t g;
    memset(&g, 0, sizeof(g));
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        // the default data has its own script; anything else is the user's glob or their own data
        if (strstr(pattern, "dev/data/tinytext/"))
            die("%s %s: no shard matches; hint: run python dev/data/tinytext.py for the default data, or pass %s with a glob of existing shards",
                flag, pattern, flag);
        die("%s %s: no shard matches; hint: pass %s a quoted glob of existing shards; " DATA_PREPARE_HINT, flag, pattern, flag);
    }
    if (rc != 0) die("%s %s: glob failed (code %d); hint: check the pattern", flag, pattern, rc);
    // sort with strcmp ourselves: glob(3) sorts by the locale's collation, which could differ
    // between machines and so change the stream order
    qsort(g.gl_pathv, g.gl_pathc, sizeof(char*), dataloader_cmp_str);
    dl->num_shards = (int)g.gl_pathc;
    dl->shards = (DataShard*)callocCheck((size_t)dl->num_shards, sizeof(DataShard));
    int64_t total = 0;
    for (int i = 0; i < dl->num_shards; i++) {
        dataloader_open_shard(&dl->shards[i], g.gl_pathv[i]);
        dl->shards[i].start = total;
        total += dl->shards[i].count;
    }
    globfree(&g);
    dl->num_tokens = total;
    // one layout for the whole glob: a mixed stream has no single meaning of "sample"
    const DataShard* first = &dl->shards[0];
    for (int i = 1; i < dl->num_shards; i++) {
        const DataShard* sh = &dl->shards[i];
        if (sh->layout != first->layout || sh->row_len != first->row_len || sh->pad_id != first->pad_id) {
            die("dataloader: shards of %s mix layouts: %s has layout %d (row length %d, pad %d) but %s has "
                "layout %d (row length %d, pad %d); hint: point the glob at shards made by one run of the "
                "data script", pattern, first->path, first->layout, first->row_len, first->pad_id,
                sh->path, sh->layout, sh->row_len, sh->pad_id);
        }
    }
    dl->layout = first->layout;
    dl->row_len = first->row_len;
    dl->pad_id = first->pad_id;
    if (dl->layout == DATA_LAYOUT_PAPER) {
        if (T != dl->row_len) {
            die("dataloader: --seq must equal the row length R of paper-layout shard %s: --seq is %d, "
                "R is %d; hint: pass --seq %d", first->path, T, dl->row_len, dl->row_len);
        }
        if (dl->pad_id >= vocab_size) {
            die("dataloader: paper-layout shard %s has pad id %d >= vocab_size %d; hint: the shard was "
                "made with a different tokenizer than the model's", first->path, dl->pad_id, vocab_size);
        }
        dl->num_samples = total / T;
        if (dl->num_samples < B) {
            die("dataloader: %s holds %lld rows of %d tokens, fewer than one batch of %d; hint: lower "
                "--batch or use more data", pattern, (long long)dl->num_samples, T, B);
        }
    } else {
        int64_t need = (int64_t)B * T + 1;
        if (total < need) {
            die("dataloader: %s holds %lld tokens, fewer than one batch needs (B*T+1 = %lld); hint: "
                "lower --batch / --seq or use more data", pattern, (long long)total, (long long)need);
        }
        dl->num_samples = (total - 1) / T;
    }
    // every rank uses the same number of its samples (floor(N / world)), so all ranks have the
    // same batches per epoch and stay in lockstep; world ranks with batch B then read the same
    // samples per step as one process with batch world*B (--shuffle 0)
    dl->rank_samples = dl->num_samples / world;
    dl->batches_per_epoch = dl->rank_samples / B;
    if (dl->batches_per_epoch < 1) {
        die("dataloader: rank %d of %d gets %lld samples of %s, fewer than one batch of %d; hint: "
            "lower --batch / --seq or use more data", rank, world, (long long)dl->rank_samples,
            pattern, B);
    }
    for (int i = 0; i < dl->num_shards; i++) {
        int64_t m = dataloader_scan_shard(&dl->shards[i], vocab_size);
        if (m > dl->max_id) dl->max_id = m;
    }
    dl->order_epoch = -1;
    if (dl->shuffle) dl->order = (int64_t*)mallocCheck((size_t)dl->rank_samples * sizeof(int64_t));
    dataloader_reset(dl);
}

// dataloader_init: dataloader_open for callers without a flag to name (tests, tools)
static void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int shuffle, uint64_t seed, int rank, int world,
                            int vocab_size) {
    dataloader_open(dl, "shards", pattern, B, T, shuffle, seed, rank, world, vocab_size);
}

// stream offset of the first token of the i-th sample (0 <= i < B) of a given batch
static int64_t dataloader_sample_start(DataLoader* dl, int64_t epoch, int64_t batch, int i) {
    int64_t slot = batch * dl->B + i;
    int64_t local = slot;
    if (dl->shuffle) { dataloader_build_order(dl, epoch); local = dl->order[slot]; }
    int64_t s = local * dl->world + dl->rank;
    return s * dl->T;
}

// inputs, targets: (B, T) int32; a target of -1 means "ignored" (paper layout: the last
// position of a row and every position whose next token is the pad)
static void dataloader_next_batch(DataLoader* dl, int* inputs, int* targets) {
    int T = dl->T;
    int* buf = (int*)mallocCheck(((size_t)T + 1) * sizeof(int));
    for (int b = 0; b < dl->B; b++) {
        int64_t start = dataloader_sample_start(dl, dl->epoch, dl->batch_in_epoch, b);
        int* in = inputs + (size_t)b * T;
        int* tg = targets + (size_t)b * T;
        if (dl->layout == DATA_LAYOUT_PAPER) {
            // one row: T == R tokens, all inside one shard
            dataloader_read_tokens(dl, start, (int64_t)T, buf);
            memcpy(in, buf, (size_t)T * sizeof(int));
            for (int t = 0; t < T - 1; t++) tg[t] = buf[t + 1] == dl->pad_id ? -1 : buf[t + 1];
            tg[T - 1] = -1;
        } else {
            dataloader_read_tokens(dl, start, (int64_t)T + 1, buf);
            memcpy(in, buf, (size_t)T * sizeof(int));
            memcpy(tg, buf + 1, (size_t)T * sizeof(int));
        }
    }
    free(buf);
    dl->batch_in_epoch++;
    if (dl->batch_in_epoch >= dl->batches_per_epoch) {
        dl->batch_in_epoch = 0;
        dl->epoch++;
    }
}

// position = the batch the next call returns; for checkpoints and exact resume
static void dataloader_get_position(const DataLoader* dl, int64_t* epoch, int64_t* batch_in_epoch) {
    *epoch = dl->epoch;
    *batch_in_epoch = dl->batch_in_epoch;
}

static void dataloader_set_position(DataLoader* dl, int64_t epoch, int64_t batch_in_epoch) {
    if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= dl->batches_per_epoch) {
        die("dataloader: position (epoch %lld, batch %lld) is out of range (batches per epoch %lld); "
            "hint: the checkpoint was made with other data or other --batch / --seq",
            (long long)epoch, (long long)batch_in_epoch, (long long)dl->batches_per_epoch);
    }
    dl->epoch = epoch;
    dl->batch_in_epoch = batch_in_epoch;
}

static void dataloader_free(DataLoader* dl) {
    for (int i = 0; i < dl->num_shards; i++) {
        if (dl->shards[i].map) munmap(dl->shards[i].map, dl->shards[i].map_bytes);
        free(dl->shards[i].path);
    }
    free(dl->shards);
    free(dl->order);
    memset(dl, 0, sizeof(*dl));
}

#endif // DATALOADER_H
