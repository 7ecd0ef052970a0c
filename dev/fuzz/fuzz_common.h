// fuzz_common.h: shared glue for the libFuzzer harnesses in dev/fuzz/.
//
// The parsers report bad input through die() (utils.h), which prints one line and calls
// exit(1). That would end the fuzzer at the first rejected input, so the harnesses turn exit()
// back into a return WITHOUT touching the project headers:
//   1. every system header the parsers use is included here first (their include guards then
//      keep them from being read again), and only then
//   2. `exit` is #defined to fuzz_exit(), which longjmp()s back into the harness while a parse
//      is armed (FUZZ_TRY). die() is the only caller of exit() in the parsers.
// A longjmp'd parse would leak what it had opened and allocated, and over millions of inputs
// that would hit the fd / map-count limits or libFuzzer's -rss_limit_mb. So malloc/calloc/free
// (and cJSON's allocator, through cJSON_InitHooks) are also wrapped to record the live blocks
// in a pointer set, and open/close/fopen/fclose to record open files; fuzz_cleanup() frees and
// closes whatever a rejected parse left behind. Shard mmaps are undone by dataloader_free().
// The one thing still leaked is glob(3)'s own list in dataloader_init (libc-internal, ~100
// bytes a rejection), which is why the harnesses run with ASAN_OPTIONS=detect_leaks=0.
// Bonus check: after an ACCEPTED input every block the parser allocated must have been freed
// by its *_free/_close function, else the harness aborts with "leak on an accepted input".
//
// die()'s message goes to a /dev/null FILE (via `stderr` redefined for the project headers
// only) so rejected inputs do not flood the log; FUZZ_VERBOSE=1 keeps them, e.g. to see why
// a saved input is rejected: FUZZ_VERBOSE=1 ./fuzz_shard crashes/shard/crash-...
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

// (1) every system header used by utils.h, dataloader.h, safetensors.h, llama.h, tokenizer.h
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <glob.h>
#include <fcntl.h>
#include <unistd.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

static jmp_buf fuzz_jmp;
static int fuzz_armed;        // 1 while a parse runs under FUZZ_TRY
static long fuzz_rejections;  // inputs the parser rejected through die()

__attribute__((noreturn)) static void fuzz_exit(int code) {
    if (fuzz_armed) { fuzz_armed = 0; fuzz_rejections++; longjmp(fuzz_jmp, 1); }
    exit(code); // outside a parse (harness setup): a real exit
}

// allocation tracking: an open-addressing set of live pointers (linear probing, deletion by
// backward shift). No header is put in front of the blocks, so ASan still sees under- and
// overflows of the real allocation.
static void** fuzz_live;
static size_t fuzz_live_cap, fuzz_live_n;

static size_t fuzz_slot(void* p, size_t cap) { return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL) & (cap - 1); }
static void fuzz_live_add(void* p) {
    if (p == NULL) return;
    if (2 * (fuzz_live_n + 1) > fuzz_live_cap) { // grow and rehash
        size_t ncap = fuzz_live_cap ? 2 * fuzz_live_cap : 1024;
        void** nt = (void**)calloc(ncap, sizeof(void*));
        if (nt == NULL) abort();
        for (size_t i = 0; i < fuzz_live_cap; i++) {
            if (fuzz_live[i] == NULL) continue;
            size_t j = fuzz_slot(fuzz_live[i], ncap);
            while (nt[j]) j = (j + 1) & (ncap - 1);
            nt[j] = fuzz_live[i];
        }
        free(fuzz_live); fuzz_live = nt; fuzz_live_cap = ncap;
    }
    size_t j = fuzz_slot(p, fuzz_live_cap);
    while (fuzz_live[j]) j = (j + 1) & (fuzz_live_cap - 1);
    fuzz_live[j] = p; fuzz_live_n++;
}
static void fuzz_live_del(void* p) {
    if (p == NULL || fuzz_live_cap == 0) return;
    size_t m = fuzz_live_cap - 1, j = fuzz_slot(p, fuzz_live_cap);
    while (fuzz_live[j] && fuzz_live[j] != p) j = (j + 1) & m;
    if (fuzz_live[j] == NULL) return; // not ours (or a double free: ASan reports it in free())
    fuzz_live[j] = NULL; fuzz_live_n--;
    for (size_t k = (j + 1) & m; fuzz_live[k]; k = (k + 1) & m) { // backward-shift the cluster
        size_t h = fuzz_slot(fuzz_live[k], fuzz_live_cap);
        if (((k - h) & m) >= ((k - j) & m)) { fuzz_live[j] = fuzz_live[k]; fuzz_live[k] = NULL; j = k; }
    }
}
static void* fuzz_malloc(size_t n) { void* p = malloc(n); fuzz_live_add(p); return p; }
static void* fuzz_calloc(size_t n, size_t s) { void* p = calloc(n, s); fuzz_live_add(p); return p; }
static void fuzz_free(void* p) { fuzz_live_del(p); free(p); }
// free every tracked block; returns how many there were
static size_t fuzz_free_all(void) {
    size_t n = fuzz_live_n;
    for (size_t i = 0; i < fuzz_live_cap; i++) if (fuzz_live[i]) { free(fuzz_live[i]); fuzz_live[i] = NULL; }
    fuzz_live_n = 0;
    return n;
}

// file tracking: what the parse opened and has not closed yet
#define FUZZ_MAX_OPEN 64
static int fuzz_fds[FUZZ_MAX_OPEN];
static FILE* fuzz_files[FUZZ_MAX_OPEN];

static int fuzz_open(const char* path, int flags) {
    int fd = open(path, flags);
    if (fd >= 0) for (int i = 0; i < FUZZ_MAX_OPEN; i++) if (fuzz_fds[i] <= 0) { fuzz_fds[i] = fd + 1; break; }
    return fd;
}
static int fuzz_close(int fd) {
    for (int i = 0; i < FUZZ_MAX_OPEN; i++) if (fuzz_fds[i] == fd + 1) fuzz_fds[i] = 0;
    return close(fd);
}
static FILE* fuzz_fopen(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f) for (int i = 0; i < FUZZ_MAX_OPEN; i++) if (fuzz_files[i] == NULL) { fuzz_files[i] = f; break; }
    return f;
}
static int fuzz_fclose(FILE* f) {
    for (int i = 0; i < FUZZ_MAX_OPEN; i++) if (fuzz_files[i] == f) fuzz_files[i] = NULL;
    return fclose(f);
}
// after a rejected parse: close and free what it left behind
static void fuzz_cleanup(void) {
    fuzz_free_all();
    for (int i = 0; i < FUZZ_MAX_OPEN; i++) {
        if (fuzz_fds[i] > 0) { close(fuzz_fds[i] - 1); fuzz_fds[i] = 0; }
        if (fuzz_files[i]) { fclose(fuzz_files[i]); fuzz_files[i] = NULL; }
    }
}

static FILE* fuzz_err;  // where die() writes: /dev/null unless FUZZ_VERBOSE=1
static void fuzz_setup(void) {
    const char* v = getenv("FUZZ_VERBOSE");
    fuzz_err = (v && v[0] == '1') ? stderr : fopen("/dev/null", "w");
    if (fuzz_err == NULL) fuzz_err = stderr;
    cJSON_Hooks hooks = {fuzz_malloc, fuzz_free};
    cJSON_InitHooks(&hooks);
}

// after an accepted input, once the harness called the parser's own free/close
static void fuzz_check_no_leak(const char* what) {
    size_t n = fuzz_free_all();
    if (n != 0) { fprintf(stderr, "fuzz: leak on an accepted input: %zu blocks still allocated after %s\n", n, what); abort(); }
}

// FUZZ_TRY { parse } else { rejected: cleanup }  -- setjmp must be called in the harness frame
#define FUZZ_TRY if (fuzz_armed = 1, setjmp(fuzz_jmp) == 0)
#define FUZZ_DONE() (fuzz_armed = 0)

// fuzz_write_file: the input bytes as a file the parser can open
static void fuzz_write_file(const char* path, const uint8_t* data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror(path); abort(); }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) { perror(path); abort(); }
        done += (size_t)w;
    }
    close(fd);
}

// fuzz_tmp_path: a per-process scratch file name (tmpfs when there is one: faster)
static void fuzz_tmp_path(char* out, size_t cap, const char* tag, const char* suffix) {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const char* env = getenv("TMPDIR");
    if (env && env[0]) dir = env;
    snprintf(out, cap, "%s/galore_fuzz_%s_%d%s", dir, tag, (int)getpid(), suffix);
}

// (2) from here on, the project headers see the rewritten calls
#define exit(code) fuzz_exit(code)
#define malloc(n) fuzz_malloc(n)
#define calloc(n, s) fuzz_calloc(n, s)
#define free(p) fuzz_free(p)
#define open(path, flags) fuzz_open(path, flags)
#define close(fd) fuzz_close(fd)
#define fopen(path, mode) fuzz_fopen(path, mode)
#define fclose(f) fuzz_fclose(f)
#undef stderr
#define stderr fuzz_err

#endif // FUZZ_COMMON_H
