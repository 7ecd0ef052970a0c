// test_rendezvous.c: dist.h's rendezvous without MPI (--dist-init file:PATH and tcp:HOST:PORT),
// the way train_llamacu's ranks exchange NCCL's id: W processes (fork) with RANK / WORLD_SIZE in
// their environment; rank 0 shares 128 random bytes and every other rank must receive exactly
// them. Also: a stale id file is never read (rank 0 renames a complete file into place, the others
// wait for it), and missing RANK / WORLD_SIZE, a bad method or a rank >= world give one error line.
// Prints "N passed, N failed" last.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "utils.h"
#include "rand.h"
#include "dist.h"

static int passed = 0, failed = 0;
static void check(int ok, const char* what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) passed++; else failed++;
}

// the bytes rank 0 shares in round `round`
static void id_bytes(unsigned char* id, int round) {
    Rng rng;
    rng_init(&rng, 1234 + (uint64_t)round);
    for (int i = 0; i < 128; i++) id[i] = (unsigned char)(rng_u64(&rng) >> 56);
}

// run W ranks of one rendezvous; returns the number of ranks that got rank 0's bytes (rank 0
// counts when it shared without error). delay_rank0_ms: rank 0 starts late (the others wait).
static int rendezvous(const char* init, int W, int round, int delay_rank0_ms) {
    pid_t pids[16];
    fflush(stdout); // the children must not print the parent's buffered lines again
    for (int r = 0; r < W; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            char rs[16], ws[16];
            snprintf(rs, sizeof rs, "%d", r);
            snprintf(ws, sizeof ws, "%d", W);
            setenv("RANK", rs, 1);
            setenv("WORLD_SIZE", ws, 1);
            if (r == 0 && delay_rank0_ms > 0) usleep((useconds_t)delay_rank0_ms * 1000);
            Dist d;
            dist_init(&d, NULL, NULL, init);
            unsigned char want[128], got[128];
            id_bytes(want, round);
            if (d.rank == 0) memcpy(got, want, sizeof got);
            else memset(got, 0, sizeof got);
            dist_share(&d, init, got, sizeof got);
            _exit(d.active && d.rank == r && d.world == W && memcmp(got, want, sizeof got) == 0 ? 0 : 3);
        }
    }
    int good = 0;
    for (int r = 0; r < W; r++) {
        int st = 0;
        waitpid(pids[r], &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) good++;
    }
    return good;
}

// one process with this environment and --dist-init value: exits non-zero with an "error:" line
static int refused(const char* rank, const char* world, const char* init, const char* want) {
    int fd[2];
    if (pipe(fd) != 0) return 0;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        if (rank) setenv("RANK", rank, 1); else unsetenv("RANK");
        if (world) setenv("WORLD_SIZE", world, 1); else unsetenv("WORLD_SIZE");
        unsetenv("SLURM_PROCID"); unsetenv("SLURM_NTASKS");
        Dist d;
        dist_init(&d, NULL, NULL, init);
        _exit(0);
    }
    close(fd[1]);
    // stderr is unbuffered: the line may come in several writes, so read to the end
    char buf[1024] = {0};
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)k;
    close(fd[0]);
    int st = 0;
    waitpid(p, &st, 0);
    return n > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0 && strncmp(buf, "error: ", 7) == 0 && strstr(buf, want) != NULL;
}

int main(void) {
    char dir[] = "/tmp/rdvXXXXXX";
    if (mkdtemp(dir) == NULL) { printf("FAIL mkdtemp\n0 passed, 1 failed\n"); return 1; }
    char init[256], what[256];
    // a stale file of an earlier run must not be read: each run gets its own name, and rank 0 starts
    // late so the others really wait for the rename
    for (int round = 0; round < 2; round++) {
        snprintf(init, sizeof init, "file:%s/nccl_id.%d", dir, round);
        int good = rendezvous(init, 4, round, round == 1 ? 300 : 0);
        snprintf(what, sizeof what, "file rendezvous, 4 ranks%s: %d of 4 have rank 0's 128 bytes", round ? " (rank 0 late)" : "", good);
        check(good == 4, what);
    }
    // tcp: a port from the pid, so parallel test runs do not collide
    int port = 20000 + (int)(getpid() % 20000);
    snprintf(init, sizeof init, "tcp:127.0.0.1:%d", port);
    int good = rendezvous(init, 3, 7, 300);
    snprintf(what, sizeof what, "tcp rendezvous on 127.0.0.1:%d, 3 ranks (rank 0 late): %d of 3 have rank 0's 128 bytes", port, good);
    check(good == 3, what);
    check(refused(NULL, "2", "file:/tmp/x", "needs RANK and WORLD_SIZE"), "no RANK: one error line");
    check(refused("2", "2", "file:/tmp/x", "RANK 2 is not below WORLD_SIZE 2"), "RANK >= WORLD_SIZE: one error line");
    check(refused("0", "2", "nfs:/tmp/x", "expected file:PATH or tcp:HOST:PORT"), "unknown method: one error line");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
