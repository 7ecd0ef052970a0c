// fuzz_state.c: libFuzzer harness for state_read (checkpoint.h), the training state of a
// checkpoint. The input is a state.bin; the harness asks for three entries as a resume does.
// state_read reports a bad file through its return value and never dies, so every input must
// return cleanly; an accepted one must have filled the entries from inside the file.
#include "fuzz_common.h"
#include "../../checkpoint.h"

static char path[512];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_setup();
    fuzz_tmp_path(path, sizeof path, "state", ".bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_file(path, data, size);
    int64_t progress[8], fp[16];
    float m0[10];
    StateEntry e[3];
    snprintf(e[0].name, STATE_NAME_LEN, "progress"); e[0].data = progress; e[0].nbytes = sizeof progress;
    snprintf(e[1].name, STATE_NAME_LEN, "fingerprint"); e[1].data = fp; e[1].nbytes = sizeof fp;
    snprintf(e[2].name, STATE_NAME_LEN, "m.0"); e[2].data = m0; e[2].nbytes = sizeof m0;
    char why[512];
    FUZZ_TRY {
        int ok = state_read(path, e, 3, why, sizeof why);
        if (ok && size < 1024 + 3 * (STATE_NAME_LEN + 8) + sizeof progress + sizeof fp + sizeof m0 + 8) abort();
        FUZZ_DONE();
        fuzz_check_no_leak("state_read");
    } else {
        fuzz_cleanup();
    }
    return 0;
}
