// fuzz_tokenizer.c: libFuzzer harness for tokenizer.h (tokenizer.bin reader + decoder).
// The input is the tokenizer.bin; an accepted one decodes every id (up to 4096), runs of byte
// pieces, out-of-range ids, and small output buffers (truncation paths).
#include "fuzz_common.h"
#include "../../tokenizer.h"

static char path[512];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_setup();
    fuzz_tmp_path(path, sizeof path, "tok", ".bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_file(path, data, size);
    static Tokenizer tok;
    FUZZ_TRY {
        if (tokenizer_init(&tok, path) != 1) abort(); // the file exists: 0 would be a bug
        int n = tok.vocab_size < 4096 ? tok.vocab_size : 4096;
        int ids[4096 + 4];
        for (int i = 0; i < n; i++) ids[i] = i;
        ids[n] = -1; ids[n + 1] = tok.vocab_size; ids[n + 2] = -2147483647 - 1; ids[n + 3] = 2147483647;
        size_t caps[4] = {0, 1, 7, 1 << 20};
        char* out = (char*)malloc(1 << 20);
        for (int c = 0; c < 4; c++) {
            size_t len = tokenizer_decode(&tok, ids, n + 4, out, caps[c]);
            if (caps[c] > 0 && (len >= caps[c] || out[len] != '\0')) abort();
        }
        // one id at a time, as the trainer's sample printing does
        for (int i = 0; i < n + 4; i++) tokenizer_decode(&tok, &ids[i], 1, out, 64);
        free(out);
        FUZZ_DONE();
        tokenizer_free(&tok);
        fuzz_check_no_leak("tokenizer_free");
    } else {
        tokenizer_free(&tok); // fields survive: tok is static
        fuzz_cleanup();
    }
    return 0;
}
