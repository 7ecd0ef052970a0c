// utils.h: checked wrappers around libc calls. On failure each prints ONE line
// "error: <what>: <problem> (<file>:<line>); hint: <fix>" and exits, so that a bad
// input never gets as far as corrupting a checkpoint. Shared by every program.
#ifndef UTILS_H
#define UTILS_H

#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

// die: the single exit path for user-facing errors; fmt names the file or flag and the fix
__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char* fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "error: ");
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fprintf(stderr, "\n");
    exit(EXIT_FAILURE);
}

// str_distance: edit distance (insert, delete, substitute, swap two neighbours) between two short
// names, case-insensitive and with '-' = '_' (llama-60m is llama_60m), for "did you mean"
static int str_distance(const char* a, const char* b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 63 || m > 63) return 99;
    char x[64], y[64];
    for (int i = 0; i <= n; i++) x[i] = a[i] == '-' ? '_' : (a[i] >= 'A' && a[i] <= 'Z') ? (char)(a[i] - 'A' + 'a') : a[i];
    for (int j = 0; j <= m; j++) y[j] = b[j] == '-' ? '_' : (b[j] >= 'A' && b[j] <= 'Z') ? (char)(b[j] - 'A' + 'a') : b[j];
    int d[64][64];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int v = d[i - 1][j - 1] + (x[i - 1] != y[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] && d[i - 2][j - 2] + 1 < v) v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

// str_digits: the digits of s in order ("llama_60m" -> "60")
static void str_digits(const char* s, char* out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 1 < cap; s++) if (*s >= '0' && *s <= '9') out[k++] = *s;
    out[k] = '\0';
}

// str_closest: the entry of a '|'-separated list nearest to v, into best, when it is a likely typo:
// at most 2 edits, fewer than v has characters, and the same digits (llama_9b is no typo of
// llama_1b: another size); returns whether there is one
static int str_closest(const char* list, const char* v, char* best, size_t cap) {
    int bd = 99;
    char vd[64], ed[64];
    str_digits(v, vd, sizeof vd);
    for (const char* p = list; *p;) {
        const char* bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char e[64];
        if (len < sizeof e) {
            memcpy(e, p, len); e[len] = '\0';
            int d = str_distance(v, e);
            str_digits(e, ed, sizeof ed);
            if (d < bd && strcmp(vd, ed) == 0) { bd = d; snprintf(best, cap, "%s", e); }
        }
        if (!bar) break;
        p = bar + 1;
    }
    return bd <= 2 && bd < (int)strlen(v);
}

// float_str: the shortest decimal that reads back as the same float (3e-3 -> "0.003", not
// 0.0030000000260770321), for the JSONL log: what the user typed, and exact
static const char* float_str(char* buf, size_t n, float x) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtof(buf, NULL) == x) break;
    }
    return buf;
}

static FILE* fopen_check(const char* path, const char* mode, const char* file, int line) {
    FILE* f = fopen(path, mode);
    if (f == NULL) {
        die("%s: cannot open (mode %s): %s (%s:%d); hint: check the path and permissions",
            path, mode, strerror(errno), file, line);
    }
    return f;
}
#define fopenCheck(path, mode) fopen_check(path, mode, __FILE__, __LINE__)

static void fread_check(void* ptr, size_t size, size_t n, FILE* f, const char* what, const char* file, int line) {
    size_t got = fread(ptr, size, n, f);
    if (got != n) {
        die("%s: short read (%zu of %zu items of %zu bytes: %s) (%s:%d); hint: the file is truncated or not of this format",
            what, got, n, size, feof(f) ? "end of file" : strerror(errno), file, line);
    }
}
#define freadCheck(ptr, size, n, f, what) fread_check(ptr, size, n, f, what, __FILE__, __LINE__)

static void fwrite_check(const void* ptr, size_t size, size_t n, FILE* f, const char* what, const char* file, int line) {
    if (n == 0) return;
    size_t put = fwrite(ptr, size, n, f);
    if (put != n) {
        die("%s: short write (%zu of %zu items: %s) (%s:%d); hint: is the disk full?",
            what, put, n, strerror(errno), file, line);
    }
}
#define fwriteCheck(ptr, size, n, f, what) fwrite_check(ptr, size, n, f, what, __FILE__, __LINE__)

static void fseek_check(FILE* f, int64_t off, int whence, const char* what, const char* file, int line) {
    // fseeko with a 64-bit offset: llm.c's int cast limited shards to 2 GiB
    if (fseeko(f, (off_t)off, whence) != 0) {
        die("%s: seek to %lld failed: %s (%s:%d)", what, (long long)off, strerror(errno), file, line);
    }
}
#define fseekCheck(f, off, whence, what) fseek_check(f, off, whence, what, __FILE__, __LINE__)

static void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        die("out of host memory asking for %.1f MiB (%s:%d); hint: lower --batch or --seq, or pick a smaller --model",
            size / 1048576.0, file, line);
    }
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) {
        die("out of host memory asking for %.1f MiB (%s:%d); hint: lower --batch or --seq, or pick a smaller --model",
            (double)n * size / 1048576.0, file, line);
    }
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

// file_size: bytes of an open file, used to validate headers against the real length
static int64_t file_size(FILE* f, const char* what) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0) die("%s: cannot stat: %s", what, strerror(errno));
    return (int64_t)st.st_size;
}

// file_commit: flush, fsync and close a temp file, then rename it over the final path, and
// fsync the directory, so that a crash leaves either the old file or the new one, never half.
static void file_commit(FILE* f, const char* tmp_path, const char* final_path) {
    if (fflush(f) != 0) die("%s: flush failed: %s; hint: is the disk full?", tmp_path, strerror(errno));
    if (fsync(fileno(f)) != 0) die("%s: fsync failed: %s", tmp_path, strerror(errno));
    if (fclose(f) != 0) die("%s: close failed: %s", tmp_path, strerror(errno));
    if (rename(tmp_path, final_path) != 0) die("%s: rename to %s failed: %s", tmp_path, final_path, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", final_path);
    char* slash = strrchr(dir, '/');
    if (slash) { *slash = '\0'; } else { strcpy(dir, "."); }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

// ensure_dir: mkdir -p for one level plus parents
static void ensure_dir(const char* path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char* p = buf + 1; *p; p++) {
        if (*p == '/') { *p = '\0'; mkdir(buf, 0755); *p = '/'; }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("%s: cannot create directory: %s", path, strerror(errno));
}

#endif // UTILS_H
