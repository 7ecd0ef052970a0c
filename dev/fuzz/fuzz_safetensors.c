// fuzz_safetensors.c: libFuzzer harness for safetensors.h's reader.
// The input is the .safetensors file; the harness opens it, looks every tensor up by name and
// reads every tensor as f32 (which converts BF16/F16).
#include "fuzz_common.h"
#include "../../safetensors.h"

static char path[512];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_setup();
    fuzz_tmp_path(path, sizeof path, "st", ".safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_file(path, data, size);
    static SafeTensors st; // static: its fields must survive the longjmp
    FUZZ_TRY {
        safetensors_open(&st, path);
        for (int i = 0; i < st.n; i++) {
            const SafeTensor* t = &st.tensors[i];
            if (t->begin < 0 || t->end > st.data_size || t->numel * st_dtype_size(t->dtype) != t->end - t->begin) abort();
            if (safetensors_find(&st, t->name) == NULL) abort();
            float* buf = (float*)malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof(float));
            safetensors_read_f32(&st, t, buf);
            free(buf);
        }
        FUZZ_DONE();
        safetensors_close(&st);
        fuzz_check_no_leak("safetensors_close");
    } else {
        safetensors_close(&st); // unmaps the file and frees the table (fields survive: st is static)
        fuzz_cleanup();         // frees the rest (header text, cJSON tree, read buffer)
    }
    return 0;
}
