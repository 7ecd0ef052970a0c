// safetensors.h: read and write the safetensors format used by HF checkpoints.
// Layout: u64 LE header length N, N bytes of JSON, then the raw tensor data. The JSON maps
// tensor name -> {"dtype","shape","data_offsets":[begin,end]} (offsets relative to the data
// start) plus an optional "__metadata__" string map. JSON goes through cJSON (-lcjson) only.
// Every size and offset in the header is validated against the real file length before use,
// so a hostile file dies with one error line instead of reading out of bounds.
// Header-only, plain C that also compiles as C++ under nvcc.
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>
#include <cjson/cJSON.h>
#include "utils.h"

enum { ST_F32 = 0, ST_BF16 = 1, ST_F16 = 2 };  // other dtypes are rejected with a clear error

typedef struct {
    char name[256];
    int dtype;          // ST_F32 / ST_BF16 / ST_F16
    int ndim;           // <= 8
    int64_t shape[8];
    int64_t numel;
    int64_t begin, end; // byte offsets relative to the data start
} SafeTensor;

typedef struct {
    char path[1024];
    int n;
    SafeTensor* tensors; // (n,) in header order
    const unsigned char* map; // the whole file, mmap'd read-only (tensors are converted from it)
    size_t map_size;
    int64_t data_start;  // 8 + header length
    int64_t data_size;   // file size - data_start
} SafeTensors;

typedef struct {
    const char* name;
    int ndim;            // 1 or 2
    int64_t shape[2];
    const float* data;   // (numel,) row-major
} SafeTensorOut;

// ----------------------------------------------------------------------------
// dtype conversions (bit-level, so no dependence on compiler half/bf16 support)

static inline uint32_t st_bits_f32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float st_f32_bits(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

// bf16_from_f32: round to nearest, ties to even; NaN stays a (quiet) NaN with its sign
static inline uint16_t bf16_from_f32(float x) {
    uint32_t u = st_bits_f32(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; // overflow past the max finite rounds to inf, as RNE should
    return (uint16_t)(u >> 16);
}

static inline float f32_from_bf16(uint16_t h) { return st_f32_bits((uint32_t)h << 16); }

// f32_from_f16: IEEE binary16 -> binary32, exact, with subnormals, inf and nan
static inline float f32_from_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);          // inf / nan (payload kept)
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13); // normal: rebias 15 -> 127
    } else if (man == 0) {
        u = sign;                                      // +-0
    } else {
        // subnormal: value = man * 2^-24, normalize the mantissa
        int e = -1;
        do { man <<= 1; e++; } while ((man & 0x400u) == 0);
        man &= 0x3ffu;
        u = sign | ((uint32_t)(112 - e) << 23) | (man << 13);
    }
    return st_f32_bits(u);
}

static inline int st_dtype_size(int dtype) { return dtype == ST_F32 ? 4 : 2; }
static inline const char* st_dtype_name(int dtype) {
    return dtype == ST_F32 ? "F32" : dtype == ST_BF16 ? "BF16" : "F16";
}

// ----------------------------------------------------------------------------
// reading

// st_json_u64: a JSON number that must be a non-negative integer exactly representable
// in a double (<= 2^53); returns -1 otherwise
static int64_t st_json_u64(const cJSON* j) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0) return -1;
    int64_t v = (int64_t)d;
    if ((double)v != d) return -1;
    return v;
}

static void safetensors_open(SafeTensors* st, const char* path) {
    memset(st, 0, sizeof *st);
    if (strlen(path) >= sizeof st->path) die("%s: path too long (max %zu chars)", path, sizeof st->path - 1);
    strcpy(st->path, path);
    // mmap, so that loading converts each tensor from the page cache straight into the caller's
    // buffer: no second copy of the weights in host memory (a 7B bf16 file is 13.5 GB)
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("%s: cannot open: %s; hint: check the path and permissions", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) die("%s: cannot stat: %s", path, strerror(errno));
    int64_t fsize = (int64_t)sb.st_size;
    if (fsize < 8) die("%s: file is %lld bytes, too short for a safetensors header; hint: the file is truncated or not safetensors", path, (long long)fsize);
    void* map = mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); // the mapping keeps the file
    if (map == MAP_FAILED) die("%s: cannot mmap %lld bytes: %s", path, (long long)fsize, strerror(errno));
    st->map = (const unsigned char*)map;
    st->map_size = (size_t)fsize;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->map[i];
    if (hlen == 0 || hlen > 100000000ull)
        die("%s: header length %llu is out of range (1..100000000); hint: not a safetensors file", path, (unsigned long long)hlen);
    if ((int64_t)hlen > fsize - 8)
        die("%s: header length %llu exceeds the file size %lld; hint: the file is truncated", path, (unsigned long long)hlen, (long long)fsize);
    st->data_start = 8 + (int64_t)hlen;
    st->data_size = fsize - st->data_start;

    const char* hdr = (const char*)st->map + 8;
    cJSON* root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (root == NULL) die("%s: header is not valid JSON (near byte %ld); hint: the file is corrupt", path, (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - hdr : -1));
    if (!cJSON_IsObject(root)) die("%s: header JSON is not an object; hint: the file is corrupt", path);

    int n = 0;
    for (cJSON* e = root->child; e != NULL; e = e->next) {
        if (e->string == NULL) die("%s: header entry without a name", path);
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) die("%s: __metadata__ is not an object", path);
            for (cJSON* m = e->child; m != NULL; m = m->next) {
                if (!cJSON_IsString(m)) die("%s: __metadata__ value '%s' is not a string", path, m->string ? m->string : "?");
            }
            continue;
        }
        n++;
    }
    st->n = n;
    st->tensors = (SafeTensor*)callocCheck((size_t)(n > 0 ? n : 1), sizeof(SafeTensor));

    int k = 0;
    for (cJSON* e = root->child; e != NULL; e = e->next) {
        const char* name = e->string;
        if (strcmp(name, "__metadata__") == 0) continue;
        SafeTensor* t = &st->tensors[k];
        if (strlen(name) >= sizeof t->name) die("%s: tensor name '%.64s...' is longer than %zu chars", path, name, sizeof t->name - 1);
        for (int j = 0; j < k; j++) {
            if (strcmp(st->tensors[j].name, name) == 0) die("%s: tensor '%s' appears twice in the header", path, name);
        }
        strcpy(t->name, name);
        if (!cJSON_IsObject(e)) die("%s: tensor '%s': entry is not an object", path, name);

        const cJSON* jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        if (!cJSON_IsString(jd) || jd->valuestring == NULL) die("%s: tensor '%s': missing or non-string dtype", path, name);
        if (strcmp(jd->valuestring, "F32") == 0) t->dtype = ST_F32;
        else if (strcmp(jd->valuestring, "BF16") == 0) t->dtype = ST_BF16;
        else if (strcmp(jd->valuestring, "F16") == 0) t->dtype = ST_F16;
        else die("%s: tensor '%s': unsupported dtype '%.32s'; hint: only F32, BF16 and F16 are supported", path, name, jd->valuestring);

        const cJSON* js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        if (!cJSON_IsArray(js)) die("%s: tensor '%s': missing or non-array shape", path, name);
        int ndim = cJSON_GetArraySize(js);
        if (ndim > 8) die("%s: tensor '%s': %d dims, at most 8 supported", path, name, ndim);
        t->ndim = ndim;
        // numel may not exceed the data size (in elements), which also rules out overflow
        int64_t max_numel = st->data_size / st_dtype_size(t->dtype);
        int64_t numel = 1;
        int too_big = 0, has_zero = 0, d = 0;
        for (const cJSON* s = js->child; s != NULL; s = s->next, d++) {
            int64_t v = st_json_u64(s);
            if (v < 0) die("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, d);
            t->shape[d] = v;
            if (v == 0) { has_zero = 1; continue; }
            if (numel > max_numel / v) too_big = 1; else numel *= v;
        }
        if (has_zero) numel = 0;
        else if (too_big) die("%s: tensor '%s': shape has more elements than the file holds (%lld bytes of data); hint: the file is truncated or corrupt", path, name, (long long)st->data_size);
        t->numel = numel;

        const cJSON* jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) die("%s: tensor '%s': data_offsets must be an array [begin, end]", path, name);
        int64_t b = st_json_u64(cJSON_GetArrayItem(jo, 0));
        int64_t en = st_json_u64(cJSON_GetArrayItem(jo, 1));
        if (b < 0 || en < 0) die("%s: tensor '%s': data_offsets are not non-negative integers", path, name);
        if (b > en) die("%s: tensor '%s': data_offsets begin %lld > end %lld", path, name, (long long)b, (long long)en);
        if (en > st->data_size) die("%s: tensor '%s': data_offsets end %lld is past the data size %lld; hint: the file is truncated", path, name, (long long)en, (long long)st->data_size);
        if (en - b != numel * st_dtype_size(t->dtype))
            die("%s: tensor '%s': %lld bytes in data_offsets but shape x %s needs %lld", path, name,
                (long long)(en - b), st_dtype_name(t->dtype), (long long)(numel * st_dtype_size(t->dtype)));
        t->begin = b;
        t->end = en;
        k++;
    }
    cJSON_Delete(root);
}

// safetensors_find: the tensor called name, or NULL
static const SafeTensor* safetensors_find(const SafeTensors* st, const char* name) {
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    }
    return NULL;
}

// safetensors_read_f32: the tensor's data into dst (numel floats), converting to f32 from the
// mapping; its pages are dropped after, so a whole-model load holds one tensor of file pages
static void safetensors_read_f32(const SafeTensors* st, const SafeTensor* t, float* dst) {
    const unsigned char* src = st->map + st->data_start + t->begin;
    // little-endian host assumed (x86/arm64), as in llm.c; memcpy: the data may be unaligned
    if (t->dtype == ST_F32) {
        memcpy(dst, src, (size_t)t->numel * sizeof(float));
    } else {
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == ST_BF16 ? f32_from_bf16(h) : f32_from_f16(h);
        }
    }
    // MADV_DONTNEED on a read-only file mapping only unmaps the pages (the file is untouched)
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t b = (size_t)(st->data_start + t->begin) / page * page, e = (size_t)(st->data_start + t->end);
    if (e > b) madvise((void*)(st->map + b), e - b, MADV_DONTNEED);
}

static void safetensors_close(SafeTensors* st) {
    if (st->map) munmap((void*)st->map, st->map_size);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

// ----------------------------------------------------------------------------
// writing

// safetensors_write: all tensors in the given order, contiguous, as dtype (ST_F32 or
// ST_BF16), with __metadata__ {"format":"pt"} (transformers refuses files without it).
// Atomic: writes PATH.tmp then file_commit() renames it over PATH.
static void safetensors_write(const char* path, const SafeTensorOut* ts, int n, int dtype) {
    if (dtype != ST_F32 && dtype != ST_BF16) die("%s: safetensors_write supports only F32 and BF16", path);
    int dsize = st_dtype_size(dtype);
    cJSON* root = cJSON_CreateObject();
    cJSON* meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const SafeTensorOut* t = &ts[i];
        if (t->ndim < 1 || t->ndim > 2) die("%s: tensor '%s': ndim %d unsupported by the writer", path, t->name, t->ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        cJSON* e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dtype));
        cJSON* sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON* of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + numel * dsize)));
        off += numel * dsize;
    }
    char* json = cJSON_PrintUnformatted(root);
    if (json == NULL) die("%s: cannot serialize the safetensors header (out of memory?)", path);
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) / 8 * 8; // pad with spaces so the data starts 8-aligned

    char tmp[1100];
    if (strlen(path) > 1000) die("%s: path too long for a checkpoint (over 1000 characters)", path);
    snprintf(tmp, sizeof tmp, "%.1000s.tmp", path);
    FILE* f = fopenCheck(tmp, "wb");
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xff);
    fwriteCheck(lenb, 1, 8, f, tmp);
    fwriteCheck(json, 1, jlen, f, tmp);
    for (size_t i = jlen; i < hlen; i++) fputc(' ', f);
    const int64_t CHUNK = 65536;
    uint16_t* buf = (uint16_t*)mallocCheck(CHUNK * sizeof(uint16_t));
    for (int i = 0; i < n; i++) {
        const SafeTensorOut* t = &ts[i];
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        if (dtype == ST_F32) {
            fwriteCheck(t->data, sizeof(float), (size_t)numel, f, tmp);
        } else {
            for (int64_t j = 0; j < numel; j += CHUNK) {
                int64_t m = numel - j < CHUNK ? numel - j : CHUNK;
                for (int64_t q = 0; q < m; q++) buf[q] = bf16_from_f32(t->data[j + q]);
                fwriteCheck(buf, sizeof(uint16_t), (size_t)m, f, tmp);
            }
        }
    }
    free(buf);
    cJSON_free(json);
    cJSON_Delete(root);
    file_commit(f, tmp, path);
}


// ----------------------------------------------------------------------------
// Hugging Face model folders: one model.safetensors, or shards listed by
// model.safetensors.index.json: {"metadata": {"total_size": bytes}, "weight_map": {tensor: file}}
// with the files named model-0000K-of-0000N.safetensors beside it. Like transformers, a folder's
// model.safetensors is preferred when both are there (our writer never leaves both).

#define ST_SINGLE_NAME "model.safetensors"
#define ST_INDEX_NAME "model.safetensors.index.json"

typedef struct {
    char name[256];
    int file;            // into SafeFolder.files
} SafeIndexEntry;

typedef struct {
    char index[1100];    // the index's path, "" for a single file
    int nfiles;
    SafeTensors* files;  // (nfiles) every shard, opened (mmap'd) and validated
    int nentries;
    SafeIndexEntry* entries; // (nentries) the weight_map; empty for a single file
} SafeFolder;

static int st_is_dir(const char* path) { struct stat sb; return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode); }
static int st_is_file(const char* path) { struct stat sb; return stat(path, &sb) == 0 && S_ISREG(sb.st_mode); }

// st_read_text: a whole small file (config, index) as a NUL-terminated string
static char* st_read_text(const char* path, int64_t max_bytes) {
    FILE* f = fopenCheck(path, "rb");
    int64_t n = file_size(f, path);
    if (n <= 0 || n > max_bytes) die("%s: %lld bytes is empty or too large (max %lld)", path, (long long)n, (long long)max_bytes);
    char* text = (char*)mallocCheck((size_t)n + 1);
    freadCheck(text, 1, (size_t)n, f, path);
    text[n] = '\0';
    fclose(f);
    return text;
}

// st_write_json: root, indented, as the text file path (atomic: path.tmp renamed over it)
static void st_write_json(const char* path, const cJSON* root) {
    char* text = cJSON_Print(root);
    if (text == NULL) die("%s: cannot serialize the JSON (out of memory?)", path);
    char tmp[1100];
    if (strlen(path) > 1000) die("%s: path too long (over 1000 characters)", path);
    snprintf(tmp, sizeof tmp, "%.1000s.tmp", path);
    FILE* f = fopenCheck(tmp, "wb");
    fwriteCheck(text, 1, strlen(text), f, tmp);
    fwriteCheck("\n", 1, 1, f, tmp);
    cJSON_free(text);
    file_commit(f, tmp, path);
}

// safefolder_open: path is a model folder, a .safetensors file, or an index .json
static void safefolder_open(SafeFolder* sf, const char* path) {
    memset(sf, 0, sizeof *sf);
    if (strlen(path) > 900) die("%s: path too long (over 900 characters)", path);
    char single[1000], index[1000];
    const char* idx = NULL;
    if (st_is_dir(path)) {
        snprintf(single, sizeof single, "%s/%s", path, ST_SINGLE_NAME);
        snprintf(index, sizeof index, "%s/%s", path, ST_INDEX_NAME);
        if (st_is_file(single)) path = single;
        else if (st_is_file(index)) idx = index;
        else die("%s: a folder without %s or %s; hint: pass a Hugging Face model folder (or one of its files)", path, ST_SINGLE_NAME, ST_INDEX_NAME);
    } else {
        size_t n = strlen(path);
        if (n >= 5 && strcmp(path + n - 5, ".json") == 0) idx = path;
    }
    if (idx == NULL) {
        sf->nfiles = 1;
        sf->files = (SafeTensors*)callocCheck(1, sizeof(SafeTensors));
        safetensors_open(&sf->files[0], path);
        return;
    }
    snprintf(sf->index, sizeof sf->index, "%s", idx);
    char* text = st_read_text(idx, (int64_t)1 << 26);
    cJSON* root = cJSON_Parse(text);
    if (root == NULL || !cJSON_IsObject(root))
        die("%s: not a JSON object (%s); hint: the index is corrupt or truncated, download it again", idx,
            root == NULL ? "invalid JSON" : "another JSON value");
    free(text);
    const cJSON* wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) die("%s: no \"weight_map\" object; hint: not a safetensors index", idx);
    int n = cJSON_GetArraySize(wm);
    sf->entries = (SafeIndexEntry*)callocCheck((size_t)(n > 0 ? n : 1), sizeof(SafeIndexEntry));
    sf->files = (SafeTensors*)callocCheck((size_t)(n > 0 ? n : 1), sizeof(SafeTensors));
    char dir[1000];
    snprintf(dir, sizeof dir, "%s", idx);
    char* slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else strcpy(dir, ".");
    // the distinct shard names, in order of first appearance
    const char** shard_names = (const char**)callocCheck((size_t)(n > 0 ? n : 1), sizeof(char*));
    for (const cJSON* e = wm->child; e != NULL; e = e->next) {
        SafeIndexEntry* en = &sf->entries[sf->nentries];
        if (e->string == NULL || strlen(e->string) >= sizeof en->name) die("%s: a weight_map name is missing or too long", idx);
        if (!cJSON_IsString(e) || e->valuestring == NULL || e->valuestring[0] == '\0' || strchr(e->valuestring, '/') ||
            strcmp(e->valuestring, "..") == 0 || strlen(e->valuestring) > 200)
            die("%s: weight_map[\"%s\"] must be a file name in the same folder", idx, e->string);
        int k = 0;
        while (k < sf->nfiles && strcmp(shard_names[k], e->valuestring) != 0) k++;
        if (k == sf->nfiles) {
            char sp[1300];
            snprintf(sp, sizeof sp, "%s/%s", dir, e->valuestring);
            if (!st_is_file(sp))
                die("%s: shard missing (%s lists it for %s); hint: the download is incomplete, fetch every file the index names", sp, idx, e->string);
            shard_names[sf->nfiles] = e->valuestring;
            safetensors_open(&sf->files[sf->nfiles++], sp);
        }
        snprintf(en->name, sizeof en->name, "%s", e->string);
        en->file = k;
        if (safetensors_find(&sf->files[k], en->name) == NULL)
            die("%s: tensor %s is absent, though %s lists it in this shard; hint: the index and the shards are from different downloads",
                sf->files[k].path, en->name, idx);
        sf->nentries++;
    }
    free(shard_names);
    cJSON_Delete(root);
}

// safefolder_find: the tensor called name and the file holding it, or NULL
static const SafeTensor* safefolder_find(const SafeFolder* sf, const char* name, const SafeTensors** file) {
    if (sf->index[0] == '\0') { *file = &sf->files[0]; return safetensors_find(&sf->files[0], name); }
    for (int i = 0; i < sf->nentries; i++) {
        if (strcmp(sf->entries[i].name, name) == 0) { *file = &sf->files[sf->entries[i].file]; return safetensors_find(*file, name); }
    }
    return NULL;
}

// safefolder_where: the file to name in an error about a tensor that is not there
static const char* safefolder_where(const SafeFolder* sf) { return sf->index[0] ? sf->index : sf->files[0].path; }

static void safefolder_close(SafeFolder* sf) {
    for (int i = 0; i < sf->nfiles; i++) safetensors_close(&sf->files[i]);
    free(sf->files); free(sf->entries);
    memset(sf, 0, sizeof *sf);
}

// st_remove_stale: delete what an earlier save left in dir that this one replaces: the single
// file (keep_single 0), the index, and every model-K-of-N.safetensors not of this save's N
static void st_remove_stale(const char* dir, int keep_single, int nshards) {
    char p[1300];
    if (!keep_single) { snprintf(p, sizeof p, "%s/%s", dir, ST_SINGLE_NAME); unlink(p); }
    if (nshards == 0) { snprintf(p, sizeof p, "%s/%s", dir, ST_INDEX_NAME); unlink(p); }
    DIR* d = opendir(dir);
    if (d == NULL) return;
    struct dirent* de;
    while ((de = readdir(d)) != NULL) {
        int k, n, len = 0;
        if (sscanf(de->d_name, "model-%5d-of-%5d.safetensors%n", &k, &n, &len) == 2 && len == (int)strlen(de->d_name) && n != nshards) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

// safetensors_save_folder: dir/model.safetensors, or, when the tensors take more than
// shard_bytes (> 0) in dtype, shards as transformers' save_pretrained writes them (tensors in
// order, a new shard when the next would pass shard_bytes; one larger than that alone) plus
// the index, written last. Each file is atomic; leftovers of an earlier save's layout go after.
static void safetensors_save_folder(const char* dir, const SafeTensorOut* ts, int n, int dtype, int64_t shard_bytes) {
    if (strlen(dir) > 900) die("%s: path too long (over 900 characters)", dir);
    int dsize = st_dtype_size(dtype);
    int64_t* bytes = (int64_t*)mallocCheck(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    int* shard = (int*)mallocCheck(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int64_t total = 0, cur = 0;
    int nshards = n > 0 ? 1 : 0;
    for (int i = 0; i < n; i++) {
        bytes[i] = ts[i].shape[0] * (ts[i].ndim > 1 ? ts[i].shape[1] : 1) * dsize;
        if (shard_bytes > 0 && cur > 0 && cur + bytes[i] > shard_bytes) { nshards++; cur = 0; }
        shard[i] = nshards - 1;
        cur += bytes[i]; total += bytes[i];
    }
    char path[1300];
    if (nshards <= 1) {
        snprintf(path, sizeof path, "%s/%s", dir, ST_SINGLE_NAME);
        safetensors_write(path, ts, n, dtype);
        st_remove_stale(dir, 1, 0);
    } else {
        if (nshards > 99999) die("%s: %d shards is more than the 5-digit names allow; hint: raise --save-shard-size", dir, nshards);
        cJSON* root = cJSON_CreateObject();
        cJSON* meta = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON* wm = cJSON_AddObjectToObject(root, "weight_map");
        for (int i = 0, k = 0; k < nshards; k++) {
            int first = i;
            while (i < n && shard[i] == k) i++;
            char name[64];
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, nshards);
            for (int j = first; j < i; j++) cJSON_AddStringToObject(wm, ts[j].name, name);
            snprintf(path, sizeof path, "%s/%s", dir, name);
            safetensors_write(path, ts + first, i - first, dtype);
        }
        snprintf(path, sizeof path, "%s/%s", dir, ST_INDEX_NAME);
        st_write_json(path, root);
        cJSON_Delete(root);
        st_remove_stale(dir, 0, nshards);
    }
    free(bytes); free(shard);
}

#endif // SAFETENSORS_H
