// checkpoint.h: checkpoints that survive a crash. Shared by the CPU and GPU programs.
//
// A checkpoint is a folder OUT/ckpt_NNNNNNNN (the step) holding
//   model.safetensors + config.json   the weights, HF-named (F32, so resume is exact), loadable by
//                                     transformers; above --save-shard-size model-0000K-of-0000N
//                                     shards + model.safetensors.index.json instead (llama_save)
//   state.bin                         the training state (below), with the hash of the weight
//                                     files' bytes (weights_hash), so that the hash of state.bin
//                                     covers the weights too
//   DONE                              written last
// It is built in OUT/ckpt_NNNNNNNN.tmp, every file fsynced, DONE written, then the folder is
// renamed into place and OUT fsynced; old ones (--keep) are renamed to .del before they are
// deleted. A crash at any moment leaves complete checkpoints plus maybe a .tmp or .del folder,
// which is never read (and is removed by the next save). --resume takes the
// newest folder that has DONE and whose state file passes every check.
//
// state.bin is a list of named blobs, so each engine lists what it keeps (the CPU and GPU
// optimizers hold the same entries, the GPU copying them to the host):
//   header: 256 int32: [0] magic 20241129, [1] version 2, [2] number of entries
//   (version 1, before the weights' hash and the saved schedule, is refused with a message)
//   table: per entry 64 bytes of NUL-padded name, then int64 byte count
//   data: the entries' bytes in table order
//   trailer: uint64 FNV-1a hash of everything before it
// Reading checks the length, the table against the file, the hash, and that every entry the
// program expects is there with exactly the expected size: one clear line otherwise.
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <dirent.h>
#include <glob.h>
#include <sys/stat.h>
#include "utils.h"

#define STATE_MAGIC 20241129
#define STATE_VERSION 2
#define STATE_NAME_LEN 64

typedef struct {
    char name[STATE_NAME_LEN];
    void* data;
    int64_t nbytes;
} StateEntry;

static uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001B3ULL; }
    return h;
}
#define FNV_SEED 0xCBF29CE484222325ULL

// file_hash: FNV-1a of a whole file's bytes, read in 1 MiB pieces; 0 and *why set when unreadable
static int file_hash(const char* path, uint64_t* h, char* why, size_t why_cap) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { snprintf(why, why_cap, "cannot open: %s", strerror(errno)); return 0; }
    unsigned char* buf = (unsigned char*)mallocCheck(1 << 20);
    *h = FNV_SEED;
    size_t got;
    while ((got = fread(buf, 1, 1 << 20, f)) > 0) *h = fnv1a(*h, buf, got);
    int ok = !ferror(f);
    if (!ok) snprintf(why, why_cap, "read error: %s", strerror(errno));
    free(buf);
    fclose(f);
    return ok;
}

static int file_exists(const char* path) { struct stat st; return stat(path, &st) == 0; }

// weights_hash: the hash of a saved model's weight files in DIR, chained in a fixed order: the one
// model.safetensors, or the index then every model-*-of-*.safetensors shard (glob's sorted order)
// when the model was saved sharded (above --save-shard-size); 0 and *why (naming the file) otherwise
static int weights_hash(const char* dir, uint64_t* h, char* path, size_t path_cap, char* why, size_t why_cap) {
    snprintf(path, path_cap, "%.1000s/model.safetensors", dir);
    if (file_exists(path)) return file_hash(path, h, why, why_cap);
    snprintf(path, path_cap, "%.1000s/model.safetensors.index.json", dir);
    if (!file_hash(path, h, why, why_cap)) { snprintf(path, path_cap, "%.1000s/model.safetensors", dir); return 0; }
    char pat[1100];
    snprintf(pat, sizeof pat, "%.1000s/model-*-of-*.safetensors", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc == 0) { snprintf(why, why_cap, "an index but no shards"); return 0; }
    int ok = 1;
    for (size_t i = 0; ok && i < g.gl_pathc; i++) {
        uint64_t hs;
        snprintf(path, path_cap, "%s", g.gl_pathv[i]);
        ok = file_hash(path, &hs, why, why_cap);
        *h = fnv1a(*h, &hs, sizeof hs);
    }
    globfree(&g);
    return ok;
}

static void state_write(const char* path, const StateEntry* e, int n) {
    char tmp[1100];
    if (strlen(path) > 1000) die("%s: path too long", path);
    snprintf(tmp, sizeof tmp, "%.1000s.tmp", path);
    FILE* f = fopenCheck(tmp, "wb");
    int32_t h[256];
    memset(h, 0, sizeof h);
    h[0] = STATE_MAGIC; h[1] = STATE_VERSION; h[2] = n;
    uint64_t hash = fnv1a(FNV_SEED, h, sizeof h);
    fwriteCheck(h, sizeof h, 1, f, tmp);
    for (int i = 0; i < n; i++) {
        char name[STATE_NAME_LEN];
        memset(name, 0, sizeof name);
        snprintf(name, sizeof name, "%s", e[i].name);
        int64_t nb = e[i].nbytes;
        hash = fnv1a(hash, name, sizeof name);
        hash = fnv1a(hash, &nb, sizeof nb);
        fwriteCheck(name, sizeof name, 1, f, tmp);
        fwriteCheck(&nb, sizeof nb, 1, f, tmp);
    }
    for (int i = 0; i < n; i++) {
        hash = fnv1a(hash, e[i].data, (size_t)e[i].nbytes);
        fwriteCheck(e[i].data, 1, (size_t)e[i].nbytes, f, tmp);
    }
    fwriteCheck(&hash, sizeof hash, 1, f, tmp);
    file_commit(f, tmp, path);
}

// state_read: fills every expected entry; returns 0 and sets *why (for the caller's message)
// when the file is not a usable state of this run, 1 on success. Never reads out of bounds.
static int state_read(const char* path, StateEntry* e, int n, char* why, size_t why_cap) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { snprintf(why, why_cap, "cannot open: %s", strerror(errno)); return 0; }
    int64_t size = file_size(f, path);
    int ok = 0;
    unsigned char* buf = NULL;
    if (size < (int64_t)(1024 + 8)) { snprintf(why, why_cap, "%lld bytes is too short for a training state", (long long)size); goto done; }
    buf = (unsigned char*)mallocCheck((size_t)size);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) { snprintf(why, why_cap, "short read"); goto done; }
    {
        int32_t h[256];
        memcpy(h, buf, sizeof h);
        if (h[0] != STATE_MAGIC) { snprintf(why, why_cap, "bad magic %d (not a galore.c training state)", h[0]); goto done; }
        if (h[1] != STATE_VERSION) {
            snprintf(why, why_cap, "version %d, this program reads %d%s", h[1], STATE_VERSION,
                     h[1] < STATE_VERSION ? " (a checkpoint of an older galore.c, whose state does not cover the weights: finish it with that version, or start a new --out)" : "");
            goto done;
        }
        int64_t count = h[2];
        int64_t table = 1024, entry = STATE_NAME_LEN + 8;
        if (count < 0 || count > 1000000 || table + count * entry + 8 > size) { snprintf(why, why_cap, "entry count %lld does not fit the file", (long long)count); goto done; }
        uint64_t stored;
        memcpy(&stored, buf + size - 8, 8);
        if (fnv1a(FNV_SEED, buf, (size_t)(size - 8)) != stored) { snprintf(why, why_cap, "hash mismatch: the file is corrupt"); goto done; }
        int64_t data_off = table + count * entry, total = 0;
        for (int64_t k = 0; k < count; k++) {
            int64_t nb;
            memcpy(&nb, buf + table + k * entry + STATE_NAME_LEN, 8);
            if (nb < 0 || nb > size) { snprintf(why, why_cap, "entry %lld has a bad size", (long long)k); goto done; }
            total += nb;
        }
        if (data_off + total + 8 != size) { snprintf(why, why_cap, "entries add up to %lld bytes, the file holds %lld", (long long)total, (long long)(size - data_off - 8)); goto done; }
        for (int i = 0; i < n; i++) {
            int found = 0;
            int64_t off = data_off;
            for (int64_t k = 0; k < count; k++) {
                const char* name = (const char*)(buf + table + k * entry);
                int64_t nb;
                memcpy(&nb, buf + table + k * entry + STATE_NAME_LEN, 8);
                if (strncmp(name, e[i].name, STATE_NAME_LEN) == 0) {
                    if (nb != e[i].nbytes) {
                        snprintf(why, why_cap, "entry %s has %lld bytes, this run expects %lld (different model or optimizer settings?)",
                                 e[i].name, (long long)nb, (long long)e[i].nbytes);
                        goto done;
                    }
                    memcpy(e[i].data, buf + off, (size_t)nb);
                    found = 1;
                    break;
                }
                off += nb;
            }
            if (!found) { snprintf(why, why_cap, "entry %s is missing (a state of another optimizer?)", e[i].name); goto done; }
        }
    }
    ok = 1;
done:
    free(buf);
    fclose(f);
    return ok;
}

// ----------------------------------------------------------------------------
// checkpoint folders

static void checkpoint_path(char* buf, size_t cap, const char* out, int64_t step, const char* suffix) {
    snprintf(buf, cap, "%.900s/ckpt_%08lld%s", out, (long long)step, suffix);
}

static int checkpoint_parse_step(const char* name, int64_t* step) {
    // ckpt_ + 8 or more digits, nothing after
    if (strncmp(name, "ckpt_", 5) != 0) return 0;
    const char* d = name + 5;
    if (*d == '\0') return 0;
    int64_t v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return 0;
        v = v * 10 + (*d - '0');
        if (v > 1000000000000LL) return 0;
    }
    *step = v;
    return 1;
}


// the complete checkpoints in OUT, newest first (steps[0..n)); returns n
static int checkpoint_list(const char* out, int64_t* steps, int cap) {
    DIR* d = opendir(out);
    if (d == NULL) return 0;
    int n = 0;
    struct dirent* de;
    while ((de = readdir(d)) != NULL) {
        int64_t step;
        if (!checkpoint_parse_step(de->d_name, &step)) continue;
        char done[1100];
        checkpoint_path(done, sizeof done, out, step, "/DONE");
        if (!file_exists(done)) continue;
        if (n < cap) steps[n++] = step;
    }
    closedir(d);
    for (int i = 1; i < n; i++) { // insertion sort, newest first
        int64_t v = steps[i];
        int j = i - 1;
        while (j >= 0 && steps[j] < v) { steps[j + 1] = steps[j]; j--; }
        steps[j + 1] = v;
    }
    return n;
}

static void remove_tree(const char* path) {
    DIR* d = opendir(path);
    if (d == NULL) { unlink(path); return; }
    struct dirent* de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char p[2200];
        snprintf(p, sizeof p, "%.1000s/%.1000s", path, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static void fsync_dir(const char* path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

// checkpoint_retire: move a checkpoint folder out of sight in one rename (ckpt_N -> ckpt_N.del),
// then delete it: a crash in between leaves a .del folder, never a ckpt_N without its files
static void checkpoint_retire(const char* out, const char* dir) {
    char del[1100];
    snprintf(del, sizeof del, "%.1000s.del", dir);
    remove_tree(del);
    if (rename(dir, del) != 0) die("%s: cannot rename to %s: %s", dir, del, strerror(errno));
    fsync_dir(out);
    remove_tree(del);
}

// checkpoint_begin: a fresh OUT/ckpt_N.tmp folder; leftovers of a crash (.tmp, .del) go first
static void checkpoint_begin(char* tmpdir, size_t cap, const char* out, int64_t step) {
    ensure_dir(out);
    DIR* d = opendir(out);
    if (d != NULL) {
        struct dirent* de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (strncmp(de->d_name, "ckpt_", 5) == 0 && len > 4 &&
                (strcmp(de->d_name + len - 4, ".tmp") == 0 || strcmp(de->d_name + len - 4, ".del") == 0)) {
                char p[1100];
                snprintf(p, sizeof p, "%.900s/%.150s", out, de->d_name);
                remove_tree(p);
            }
        }
        closedir(d);
    }
    checkpoint_path(tmpdir, cap, out, step, ".tmp");
    ensure_dir(tmpdir);
}

// checkpoint_commit: DONE last, then the folder moves into place; older ones beyond keep go
static void checkpoint_commit(const char* tmpdir, const char* out, int64_t step, int keep) {
    char done[1100], final[1100];
    snprintf(done, sizeof done, "%.1000s/DONE", tmpdir);
    char dtmp[1100];
    snprintf(dtmp, sizeof dtmp, "%.1000s/DONE.tmp", tmpdir);
    FILE* f = fopenCheck(dtmp, "wb");
    fprintf(f, "%lld\n", (long long)step);
    file_commit(f, dtmp, done);
    fsync_dir(tmpdir);
    checkpoint_path(final, sizeof final, out, step, "");
    if (file_exists(final)) checkpoint_retire(out, final); // the same step saved again
    if (rename(tmpdir, final) != 0) die("%s: cannot rename to %s: %s", tmpdir, final, strerror(errno));
    fsync_dir(out);
    if (keep > 0) {
        int64_t steps[4096];
        int n = checkpoint_list(out, steps, 4096);
        for (int i = keep; i < n; i++) {
            char old[1100];
            checkpoint_path(old, sizeof old, out, steps[i], "");
            checkpoint_retire(out, old);
        }
    }
}

#endif // CHECKPOINT_H
