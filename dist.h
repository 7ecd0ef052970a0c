// dist.h: the processes of a data-parallel run, shared by both programs. One process per device
// (GPU) or per CPU socket; each runs the whole model on its own shard of every batch, and the
// gradients are summed across processes before the (identical) optimizer step on every rank.
//
// Who is who:
//   - launched by mpirun / srun with MPI (OpenMPI, MPICH, Slurm's PMI): MPI gives rank and world,
//     and carries every collective of the CPU program. Built with -DUSE_MPI (the Makefile does it
//     when mpicc exists).
//   - --dist-init file:PATH or tcp:HOST:PORT (GPU program, clusters without MPI): rank, world and
//     local rank come from the environment (RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them,
//     or Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID); only NCCL's 128-byte id travels
//     through the file or the socket, every collective is NCCL's.
//   - otherwise one process, and every collective below is a no-op.
// The bulk data (gradients) never goes through code of ours: MPI_Allreduce on the CPU, NCCL on
// the GPU. The GPU engine installs NCCL-backed scalar collectives when MPI is absent (dist->ops).
#ifndef DIST_H
#define DIST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
#include "utils.h"
#ifdef USE_MPI
#include <mpi.h>
#endif

typedef struct {
    int rank, world, local_rank;
    int mpi;                 // MPI is initialized and carries the collectives
    int active;              // started as a data-parallel run (MPI or --dist-init), even of one
                             // rank: the engines take their data-parallel code paths, so that
                             // `mpirun -np 1` checks them against the plain run on one device
    char method[16];         // "single", "mpi", "file", "tcp"
    // scalar collectives when MPI is absent and world > 1 (the GPU engine's NCCL ones)
    void* ops_ctx;
    void (*sum_f64)(void* ctx, double* x, int n);
    void (*barrier)(void* ctx);
} Dist;

// one process, no collectives: what a trainer uses when it is given no Dist
static Dist* dist_single(void) {
    static Dist single = {0, 1, 0, 0, 0, "single", NULL, NULL, NULL};
    return &single;
}

static int dist_env_int(const char* a, const char* b, int def) {
    const char* v = getenv(a);
    if (v == NULL && b != NULL) v = getenv(b);
    if (v == NULL || *v == '\0') return def;
    char* end = NULL;
    long x = strtol(v, &end, 10);
    if (*end != '\0' || x < 0 || x > 1000000) die("environment %s=%s: expected a non-negative integer", getenv(a) ? a : b, v);
    return (int)x;
}

// the launcher's world size in the environment, or 0 when nothing launched us as one of several
static int dist_launcher_world(void) {
    return dist_env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", 0);
}

// dist_init: who we are. init is --dist-init ("" = MPI when launched by an MPI launcher, else one
// process). Call before anything prints, with argc/argv for MPI_Init_thread.
static void dist_init(Dist* d, int* argc, char*** argv, const char* init) {
    memset(d, 0, sizeof *d);
    d->world = 1;
    snprintf(d->method, sizeof d->method, "single");
    if (init != NULL && init[0] != '\0') {
        if (strncmp(init, "file:", 5) != 0 && strncmp(init, "tcp:", 4) != 0)
            die("--dist-init %s: expected file:PATH or tcp:HOST:PORT", init);
        d->world = dist_env_int("WORLD_SIZE", "SLURM_NTASKS", 0);
        d->rank = dist_env_int("RANK", "SLURM_PROCID", -1);
        d->local_rank = dist_env_int("LOCAL_RANK", "SLURM_LOCALID", 0);
        if (d->world < 1 || d->rank < 0)
            die("--dist-init %s: needs RANK and WORLD_SIZE (or Slurm's SLURM_PROCID and SLURM_NTASKS) in the environment", init);
        if (d->rank >= d->world) die("--dist-init: RANK %d is not below WORLD_SIZE %d", d->rank, d->world);
        snprintf(d->method, sizeof d->method, "%s", init[0] == 'f' ? "file" : "tcp");
        d->active = 1;
        return;
    }
    int lw = dist_launcher_world();
#ifdef USE_MPI
    if (lw > 0) {
        int provided = 0;
        // only the main thread calls MPI; OpenMP threads work between the calls
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) die("MPI_Init_thread failed");
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->world);
        MPI_Comm local;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
        MPI_Comm_rank(local, &d->local_rank);
        MPI_Comm_free(&local);
        d->mpi = 1;
        d->active = 1;
        snprintf(d->method, sizeof d->method, "mpi");
    }
#else
    (void)argc; (void)argv;
    if (lw > 1)
        die("launched as one of %d processes (by mpirun?) but this binary was built without MPI; hint: install "
            "libopenmpi-dev (Debian) and rebuild with make, or use --dist-init (GPU program)", lw);
#endif
}

static void dist_finalize(Dist* d) {
#ifdef USE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    d->mpi = 0;
}

// dist_sum_f32: in-place sum of a float array over the ranks (the CPU engine's gradients)
static void dist_sum_f32(Dist* d, float* x, size_t n) {
    if (d->world == 1) return;
#ifdef USE_MPI
    if (d->mpi) {
        // MPI counts are int: large tensors go in slices
        for (size_t off = 0; off < n; off += (size_t)1 << 30) {
            size_t k = n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30);
            if (MPI_Allreduce(MPI_IN_PLACE, x + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
                die("MPI_Allreduce of %zu floats failed", k);
        }
        return;
    }
#endif
    (void)x; (void)n;
    die("internal: float all-reduce over %d ranks without MPI", d->world);
}

// dist_sum_f64: in-place sum of a few doubles (losses, target counts, eval sums)
static void dist_sum_f64(Dist* d, double* x, int n) {
    if (d->world == 1) return;
#ifdef USE_MPI
    if (d->mpi) {
        if (MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) die("MPI_Allreduce of %d doubles failed", n);
        return;
    }
#endif
    if (d->sum_f64 == NULL) die("internal: no scalar collective for %d ranks", d->world);
    d->sum_f64(d->ops_ctx, x, n);
}

// dist_mean_loss: a micro-batch's mean loss over every rank's targets (one all-reduce of the
// summed losses and the counts); *n_all gets the targets of all ranks. A run that is not data
// parallel gets its own mean back unchanged. Non-finite on every rank when it is on any.
static double dist_mean_loss(Dist* d, float mean_loss, int n_valid, int64_t* n_all) {
    if (!d->active) { *n_all = n_valid; return (double)mean_loss; }
    double lt[2] = {(double)mean_loss * n_valid, (double)n_valid};
    dist_sum_f64(d, lt, 2);
    *n_all = (int64_t)lt[1];
    return lt[1] > 0 ? lt[0] / lt[1] : 0.0;
}

static void dist_barrier(Dist* d) {
    if (d->world == 1) return;
#ifdef USE_MPI
    if (d->mpi) { MPI_Barrier(MPI_COMM_WORLD); return; }
#endif
    if (d->barrier) d->barrier(d->ops_ctx);
}

// dist_same_u64: whether every rank holds the same value (e.g. a hash of the weights). Each 32-bit
// half is exact in a double, and so is their mean when all agree: the summed squared deviations
// from the mean are 0 exactly when every rank has the same value.
static int dist_same_u64(Dist* d, uint64_t v) {
    if (d->world == 1) return 1;
    double x[2] = {(double)(v >> 32), (double)(v & 0xffffffffu)};
    double lo[2] = {x[0], x[1]}, sq[2];
    dist_sum_f64(d, x, 2); // mean of each half
    sq[0] = (lo[0] - x[0] / d->world) * (lo[0] - x[0] / d->world);
    sq[1] = (lo[1] - x[1] / d->world) * (lo[1] - x[1] / d->world);
    dist_sum_f64(d, sq, 2);
    return sq[0] == 0.0 && sq[1] == 0.0;
}

// ----------------------------------------------------------------------------
// rendezvous without MPI: rank 0's bytes (the NCCL id) reach every rank

static void dist_share_file(const Dist* d, const char* path, void* buf, size_t n) {
    char tmp[1100];
    if (d->rank == 0) {
        snprintf(tmp, sizeof tmp, "%.1000s.tmp%d", path, (int)getpid());
        FILE* f = fopen(tmp, "wb");
        if (f == NULL) die("--dist-init file:%s: cannot write %s: %s; hint: a folder every rank can see", path, tmp, strerror(errno));
        if (fwrite(buf, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0) die("--dist-init file:%s: write failed", path);
        fclose(f);
        if (rename(tmp, path) != 0) die("--dist-init file:%s: rename failed: %s", path, strerror(errno));
        return;
    }
    // the other ranks wait for the complete file (renamed into place, so never half-written)
    for (int tries = 0; tries < 3000; tries++) {
        FILE* f = fopen(path, "rb");
        if (f != NULL) {
            size_t got = fread(buf, 1, n, f);
            fclose(f);
            if (got == n) return;
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    die("--dist-init file:%s: rank %d waited 5 minutes for rank 0 to write it; hint: remove a stale file from an earlier run, and check rank 0 started", path, d->rank);
}

static void dist_share_tcp(const Dist* d, const char* hostport, void* buf, size_t n) {
    char host[256];
    snprintf(host, sizeof host, "%s", hostport);
    char* colon = strrchr(host, ':');
    if (colon == NULL) die("--dist-init tcp:%s: expected tcp:HOST:PORT", hostport);
    *colon = '\0';
    const char* port = colon + 1;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (d->rank == 0) hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(d->rank == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) die("--dist-init tcp:%s: %s", hostport, gai_strerror(rc));
    if (d->rank == 0) {
        int s = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (s < 0 || bind(s, res->ai_addr, res->ai_addrlen) != 0 || listen(s, d->world) != 0)
            die("--dist-init tcp:%s: rank 0 cannot listen on port %s: %s; hint: pick a free port", hostport, port, strerror(errno));
        for (int k = 1; k < d->world; k++) {
            int c = accept(s, NULL, NULL);
            if (c < 0) die("--dist-init tcp:%s: accept failed: %s", hostport, strerror(errno));
            if (write(c, buf, n) != (ssize_t)n) die("--dist-init tcp:%s: send failed", hostport);
            close(c);
        }
        close(s);
    } else {
        size_t got = 0;
        for (int tries = 0; tries < 3000 && got < n; tries++) {
            int c = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
            if (c >= 0 && connect(c, res->ai_addr, res->ai_addrlen) == 0) {
                got = 0;
                while (got < n) {
                    ssize_t r = read(c, (char*)buf + got, n - got);
                    if (r <= 0) break;
                    got += (size_t)r;
                }
            }
            if (c >= 0) close(c);
            if (got < n) { struct timespec ts = {0, 100000000}; nanosleep(&ts, NULL); }
        }
        if (got < n) die("--dist-init tcp:%s: rank %d could not reach rank 0 for 5 minutes; hint: HOST must be rank 0's address", hostport, d->rank);
    }
    freeaddrinfo(res);
}

// dist_share: rank 0's n bytes into buf on every rank
static void dist_share(Dist* d, const char* init, void* buf, size_t n) {
    if (d->world == 1) return;
#ifdef USE_MPI
    if (d->mpi) { MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD); return; }
#endif
    if (strncmp(init, "file:", 5) == 0) dist_share_file(d, init + 5, buf, n);
    else dist_share_tcp(d, init + 4, buf, n);
}

#endif // DIST_H
