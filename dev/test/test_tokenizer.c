// test_tokenizer.c: tokenizer.h's encoder and decoder against the reference libraries.
//
// dev/test/data/tok/cases.json (made by dev/test/make_tokenizers.py with sentencepiece and
// tokenizers) holds tricky texts and, for each tokenizer file (sentencepiece BPE and unigram
// with a custom charsmap, BPE with spaces kept, tinytext's tokenizer.bin, tokenizers' Llama 3,
// GPT-2 and Llama 2 layouts), the ids the library encodes each text to, the library's decode of
// those ids, and the post-processor's prefix. Exact: ids are integers, the texts bytes.
// Run from the repo root.
#include "../../tokenizer.h"

static int failures = 0, checks = 0;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static char* read_all(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) { printf("FAIL cannot open %s (run from the repo root)\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char* s = (char*)malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) { printf("FAIL short read %s\n", path); exit(1); }
    s[n] = '\0';
    fclose(f);
    return s;
}

static void print_ids(const char* what, const int* ids, int n) {
    printf("    %s:", what);
    for (int i = 0; i < n && i < 60; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 60 ? " ..." : "");
}

static void test_file(const cJSON* texts, const cJSON* tc) {
    const char* file = cJSON_GetObjectItemCaseSensitive(tc, "file")->valuestring;
    Tokenizer t;
    CHECK(tokenizer_init(&t, file) == 1, "%s: not found", file);
    if (!t.loaded) return;
    CHECK(t.can_encode, "%s: cannot encode: %s", file, t.encode_why);
    if (!t.can_encode) { tokenizer_free(&t); return; }
    const cJSON* ids_all = cJSON_GetObjectItemCaseSensitive(tc, "ids");
    const cJSON* dec_all = cJSON_GetObjectItemCaseSensitive(tc, "decoded");
    int n_texts = cJSON_GetArraySize(texts), same = 0, dec_same = 0;
    for (int k = 0; k < n_texts; k++) {
        const char* text = cJSON_GetArrayItem(texts, k)->valuestring;
        const cJSON* want = cJSON_GetArrayItem(ids_all, k);
        int nw = cJSON_GetArraySize(want);
        int* w = (int*)malloc(sizeof(int) * (size_t)(nw + 1));
        for (int i = 0; i < nw; i++) w[i] = cJSON_GetArrayItem(want, i)->valueint;
        int* got;
        int ng = tokenizer_encode(&t, text, &got);
        int eq = ng == nw && (nw == 0 || memcmp(got, w, sizeof(int) * (size_t)nw) == 0);
        same += eq;
        CHECK(eq, "%s: encode of text %d \"%.60s\" differs from the library", file, k, text);
        if (!eq) { print_ids("got ", got, ng); print_ids("want", w, nw); }
        // the decoder on the library's ids gives the library's text
        const char* wd = cJSON_GetArrayItem(dec_all, k)->valuestring;
        size_t cap = strlen(wd) * 4 + 64 * (size_t)nw + 16;
        char* out = (char*)malloc(cap);
        tokenizer_decode(&t, w, nw, out, cap);
        int deq = strcmp(out, wd) == 0;
        dec_same += deq;
        CHECK(deq, "%s: decode of text %d's ids:\n    got  [%s]\n    want [%s]", file, k, out, wd);
        free(out); free(got); free(w);
    }
    const cJSON* pre = cJSON_GetObjectItemCaseSensitive(tc, "prefix");
    const int* p;
    int np = tokenizer_prefix_ids(&t, &p);
    int peq = np == cJSON_GetArraySize(pre);
    for (int i = 0; peq && i < np; i++) peq = p[i] == cJSON_GetArrayItem(pre, i)->valueint;
    CHECK(peq, "%s: the post-processor's prefix differs (%d ids)", file, np);
    printf("ok   %s: encode same as the library on %d/%d texts, decode on %d/%d, prefix of %d ids\n", file, same, n_texts,
           dec_same, n_texts, np);
    tokenizer_free(&t);
}

// tokenizer_stream_*: the text printed token by token equals tokenizer_decode of all the ids (on
// every case's ids and on random ids, whose byte pieces break UTF-8), and a character whose bytes
// come in separate tokens is held back until it completes, never printed as U+FFFD
static void stream_text(const Tokenizer* t, const int* ids, int n, char** buf, size_t* len, size_t* after_first) {
    FILE* f = open_memstream(buf, len);
    TokStream st;
    tokenizer_stream_start(&st, f);
    for (int i = 0; i < n; i++) {
        tokenizer_stream_token(t, &st, ids[i]);
        if (i == 0 && after_first) { fflush(f); *after_first = *len; }
    }
    tokenizer_stream_end(&st);
    fclose(f);
}
static void test_stream(const cJSON* tc) {
    const char* file = cJSON_GetObjectItemCaseSensitive(tc, "file")->valuestring;
    Tokenizer t;
    if (!tokenizer_init(&t, file)) return;
    int same = 0, total = 0;
    uint64_t x = 88172645463325252ULL; // xorshift64: ids in [0, V + 2), a few outside the vocabulary
    for (int k = 0; k < 300; k++) {
        int ids[40], n = 0;
        const cJSON* want = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tc, "ids"), k);
        if (want) { const cJSON* it; cJSON_ArrayForEach(it, want) if (n < 40) ids[n++] = it->valueint; }
        else for (n = 0; n < 40; n++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            // half of them byte pieces where the tokenizer has them (broken and split UTF-8)
            int b = t.byte_id[(x >> 8) & 255];
            ids[n] = (x & 1) && b >= 0 ? b : (int)((x >> 20) % (uint64_t)(t.vocab_size + 2));
        }
        char dec[4096];
        size_t dl = tokenizer_decode(&t, ids, n, dec, sizeof dec); // (a <0x00> piece puts a NUL inside)
        char* buf = NULL; size_t len = 0;
        stream_text(&t, ids, n, &buf, &len, NULL);
        int eq = len == dl && memcmp(buf, dec, len) == 0;
        if (!eq && same == total) printf("     first difference, %d ids:\n     stream [%.*s]\n     decode [%s]\n", n, (int)len, buf, dec);
        same += eq;
        total++;
        free(buf);
    }
    CHECK(same == total, "%s: the streamed text differs from tokenizer_decode on %d of %d id lists", file, total - same, total);
    int fails = failures;
    if (!t.byte_text && t.byte_id[0xE2] >= 0 && t.byte_id[0x82] >= 0 && t.byte_id[0xAC] >= 0) {
        int euro[3] = {t.byte_id[0xE2], t.byte_id[0x82], t.byte_id[0xAC]}; // U+20AC in three byte tokens
        char* buf = NULL; size_t len = 0, first = 99;
        stream_text(&t, euro, 3, &buf, &len, &first);
        CHECK(first == 0 && len == 3 && memcmp(buf, "\xE2\x82\xAC", 3) == 0, "%s: a character in three byte tokens: %zu bytes after the first, %zu in all", file, first, len);
        free(buf);
        if (failures == fails) printf("ok   %s: streamed text = decoded text on %d id lists; a character split over byte tokens waits for its last byte\n", file, total);
    } else if (failures == fails) {
        printf("ok   %s: streamed text = decoded text on %d id lists\n", file, total);
    }
    tokenizer_free(&t);
}

int main(void) {
    char* text = read_all("dev/test/data/tok/cases.json");
    cJSON* root = cJSON_Parse(text);
    if (!root) { printf("FAIL cases.json does not parse\n"); return 1; }
    const cJSON* texts = cJSON_GetObjectItemCaseSensitive(root, "texts");
    const cJSON* tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(root, "tokenizers")) test_file(texts, tc);
    // the empty text is no ids, for every kind
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(root, "tokenizers")) {
        Tokenizer t;
        if (!tokenizer_init(&t, cJSON_GetObjectItemCaseSensitive(tc, "file")->valuestring)) continue;
        int* ids;
        int n = tokenizer_encode(&t, "", &ids);
        CHECK(n == 0, "%s: the empty text gave %d ids", t.source == TOKSRC_HF ? "tokenizer.json" : "tokenizer.bin", n);
        free(ids);
        tokenizer_free(&t);
    }
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(root, "tokenizers")) test_stream(tc);
    cJSON_Delete(root);
    free(text);
    printf("%s: %d checks, %d failures\n", failures ? "FAILED" : "passed", checks, failures);
    return failures != 0;
}
