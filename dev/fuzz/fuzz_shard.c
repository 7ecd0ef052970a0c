// fuzz_shard.c: libFuzzer harness for dataloader.h (token shards).
// The input is the shard file itself. The loader's settings come from the last int of the
// 1024-byte header (header[255], which the format leaves unused), so the fuzzer can also
// explore B, T, shuffle, rank/world and the vocab check: see fuzz_shard_settings().
#include "fuzz_common.h"
#include "../../dataloader.h"

static char shard_a[512], shard_b[512], pattern[512];

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_setup();
    // two scratch names matching one glob: "..._0.bin" is the input, "..._1.bin" an optional
    // copy (a two-shard stream, so samples cross a shard boundary)
    char base[400];
    fuzz_tmp_path(base, sizeof base, "shard", "");
    snprintf(shard_a, sizeof shard_a, "%s_0.bin", base);
    snprintf(shard_b, sizeof shard_b, "%s_1.bin", base);
    snprintf(pattern, sizeof pattern, "%s_*.bin", base);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // settings byte-by-byte from header[255]; defaults when the input is shorter
    uint8_t s0 = size >= 1024 ? data[1020] : 0, s1 = size >= 1024 ? data[1021] : 0;
    uint8_t s2 = size >= 1024 ? data[1022] : 0, s3 = size >= 1024 ? data[1023] : 0;
    int B = 1 + (s0 & 3);                 // 1..4
    int T = 1 + (s1 & 15);                // 1..16
    int shuffle = (s0 >> 2) & 1;
    int two_shards = (s0 >> 3) & 1;
    int world = 1 + ((s0 >> 4) & 3);      // 1..4
    int rank = ((s0 >> 6) & 3) % world;
    int vocab = 1 + s2 * 256 + s3;        // 1..65536, so out-of-vocab tokens are reachable

    fuzz_write_file(shard_a, data, size);
    if (two_shards) fuzz_write_file(shard_b, data, size); else unlink(shard_b);

    static DataLoader dl; // static: its fields must survive the longjmp
    memset(&dl, 0, sizeof dl);
    int* inputs = (int*)malloc((size_t)B * T * sizeof(int));
    int* targets = (int*)malloc((size_t)B * T * sizeof(int));
    FUZZ_TRY {
        dataloader_init(&dl, pattern, B, T, shuffle, 1234 + s1, rank, world, vocab);
        // read across the end of an epoch (bounded): every sample of the epoch plus one
        int64_t nb = dl.batches_per_epoch + 1;
        if (nb > 64) nb = 64;
        for (int64_t k = 0; k < nb; k++) {
            dataloader_next_batch(&dl, inputs, targets);
            for (int i = 0; i < B * T; i++) {
                // paper layout: -1 marks an ignored target (the last position, pads)
                if (inputs[i] < 0 || inputs[i] >= vocab || targets[i] < (dl.layout == 1 ? -1 : 0) || targets[i] >= vocab) abort();
            }
        }
        // exact resume: back to batch 0 of epoch 1 must give the same batch again
        if (dl.batches_per_epoch > 0) {
            int* again = (int*)malloc((size_t)B * T * sizeof(int));
            int* again_t = (int*)malloc((size_t)B * T * sizeof(int));
            dataloader_set_position(&dl, 1, 0);
            dataloader_next_batch(&dl, inputs, targets);
            dataloader_set_position(&dl, 1, 0);
            dataloader_next_batch(&dl, again, again_t);
            if (memcmp(inputs, again, (size_t)B * T * sizeof(int)) != 0) abort();
            free(again); free(again_t);
        }
        FUZZ_DONE();
        dataloader_free(&dl);
        free(inputs); free(targets);
        fuzz_check_no_leak("dataloader_free");
    } else {
        dataloader_free(&dl); // unmaps the shards opened so far (fields survive: dl is static)
        fuzz_cleanup();       // frees the rest, inputs/targets included
    }
    return 0;
}
