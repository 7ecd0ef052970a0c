// fuzz_tokenizer.c: libFuzzer harness for tokenizer.h (tokenizer.bin / tokenizer.json reader,
// decoder, encoder). The input is the tokenizer file; an accepted one decodes every id (up to
// 4096), runs of byte pieces, out-of-range ids, and small output buffers (truncation paths), and,
// where it can encode, encodes texts of every character class (the ids must be in the vocabulary).
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
        static const char* texts[] = {"", " ", "Hello  world\n\n x", "\xE2\x96\x81" "a'S 123456 \t\r\n", "caf\xC3\xA9 \xF0\x9F\x98\x80 \xFF" "\xC3", "<s></s><|x|>"};
        if (tok.can_encode) {
            for (int k = 0; k < 6; k++) {
                int* enc;
                int m = tokenizer_encode(&tok, texts[k], &enc);
                for (int i = 0; i < m; i++) if (enc[i] < 0 || enc[i] >= tok.vocab_size) abort();
                free(enc);
            }
        }
        FUZZ_DONE();
        tokenizer_free(&tok);
        fuzz_check_no_leak("tokenizer_free");
    } else {
        tokenizer_free(&tok); // fields survive: tok is static
        fuzz_cleanup();
    }
    return 0;
}
