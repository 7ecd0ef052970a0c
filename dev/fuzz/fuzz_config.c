// fuzz_config.c: libFuzzer harness for llama_config_from_json (llama.h, config.json via cJSON).
// The input is the config.json; an accepted config is checked against llama_config_validate's
// promises and its parameter table is built when small enough.
#include "fuzz_common.h"
#include "../../llama.h"

static char path[512];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_setup();
    fuzz_tmp_path(path, sizeof path, "config", ".json");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_file(path, data, size);
    static LlamaConfig c;
    FUZZ_TRY {
        llama_config_from_json(&c, path);
        // head_dim may make C % NH != 0 (q is NH * head_dim wide); the head dim must be even
        if (c.C <= 0 || c.NH <= 0 || c.NKV <= 0 || c.HD <= 0 || c.HD % 2 != 0 || c.NH % c.NKV != 0) abort();
        if ((double)c.C * c.L < 1e5 && (double)c.V * c.C < 1e6 && (double)c.H * c.C < 1e6 && (double)c.NH * c.HD * c.C < 1e6) {
            ParamTable pt;
            param_table_build(&pt, &c);
            if (llama_num_params(&pt) == 0) abort();
            param_table_free(&pt);
        }
        FUZZ_DONE();
        fuzz_check_no_leak("llama_config_from_json");
    } else {
        fuzz_cleanup();
    }
    return 0;
}
