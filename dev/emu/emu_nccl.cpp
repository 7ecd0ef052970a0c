// emu_nccl.cpp: NCCL with one rank, for the emulated GPU (dev/emu, issue 21).
//
// What it models: ncclGetUniqueId / ncclCommInitRank / ncclCommDestroy, ncclAllReduce as a
// stream-ordered op (emu_enqueue) that reads count elements of sendbuff and writes count of
// recvbuff (in place allowed, as documented), and ncclGroupStart/End: collectives called inside
// a group are queued on their streams at the outermost ncclGroupEnd, as NCCL launches them then
// (so stream work issued between the call and the group's end runs first, as on a GPU).
// With one rank the reduction of every op and type is the value itself: the all-reduce is an
// exact copy, so no summation order arises (bf16 included).
// What it cannot do: more than one rank. Several ranks would need each process's emulated stream
// to progress while its host thread waits elsewhere (a blocking MPI call inside an op, run on the
// host thread at a synchronisation, can deadlock against the host's own MPI collectives, which a
// GPU's asynchronous NCCL kernels never do): ncclCommInitRank with nranks > 1 stops with one line.
// Multi-rank NCCL (test_dist_gpu's pairs, the summation order of bf16 across ranks) needs real GPUs.
#include <nccl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <vector>
#include "emu_internal.h"

struct ncclComm { uint32_t magic; int nranks, rank; };
#define NCCL_MAGIC 0x0cc1c0deu
#define NCCL_DEAD 0xdead0cc1u
static const char NCCL_ID_TAG[] = "galore.c emulated NCCL id";

struct NcclPending { cudaStream_t s; const void* send; void* recv; size_t bytes; EmuSite site; };
static thread_local int nccl_group_depth;
static thread_local std::vector<NcclPending> nccl_group_ops;

static ncclComm* nccl_comm(ncclComm_t c) {
    if (c == NULL) emu_fatal("NULL communicator");
    if (c->magic != NCCL_MAGIC) emu_fatal("communicator %p is %s", (void*)c, c->magic == NCCL_DEAD ? "destroyed" : "not an NCCL communicator");
    return c;
}
static size_t nccl_type_bytes(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
    }
}

static void nccl_launch(const NcclPending& p) {
    EmuSite saved = emu_site;
    emu_site = p.site; // a group's op names the ncclAllReduce call, not ncclGroupEnd
    emu_require_device(p.send, p.bytes, "sendbuff");
    emu_require_device(p.recv, p.bytes, "recvbuff");
    std::vector<EmuRange> r = {{p.send, p.bytes, 0}};
    if (p.recv != p.send) r.push_back({p.recv, p.bytes, 1});
    else r[0].write = 1;
    const void* send = p.send;
    void* recv = p.recv;
    size_t bytes = p.bytes;
    emu_enqueue(p.s, "ncclAllReduce", r, [send, recv, bytes]() { if (recv != send) memmove(recv, send, bytes); });
    emu_site = saved;
}

const char* ncclGetErrorString(ncclResult_t result) {
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId) {
    if (uniqueId == NULL) return ncclInvalidArgument;
    memset(uniqueId, 0, sizeof *uniqueId);
    memcpy(uniqueId->internal, NCCL_ID_TAG, sizeof NCCL_ID_TAG);
    int pid = (int)getpid();
    memcpy(uniqueId->internal + sizeof NCCL_ID_TAG, &pid, sizeof pid);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
    if (comm == NULL) return ncclInvalidArgument;
    if (memcmp(commId.internal, NCCL_ID_TAG, sizeof NCCL_ID_TAG) != 0) {
        emu_warn("the unique id was not made by ncclGetUniqueId (not broadcast from rank 0?) (ncclInvalidArgument)");
        return ncclInvalidArgument;
    }
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        emu_warn("rank %d of %d (ncclInvalidArgument)", rank, nranks);
        return ncclInvalidArgument;
    }
    if (nranks > 1)
        emu_fatal("%d ranks: the emulated NCCL runs one rank (a multi-rank all-reduce needs real GPUs); hint: run the "
                  "data-parallel emulated checks with one rank", nranks);
    *comm = new ncclComm{NCCL_MAGIC, nranks, rank};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    nccl_comm(comm)->magic = NCCL_DEAD; // kept, so a later use is named
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    nccl_comm(comm);
    size_t tb = nccl_type_bytes(datatype);
    if (tb == 0) { emu_warn("data type %d (ncclInvalidArgument)", (int)datatype); return ncclInvalidArgument; }
    if ((int)op < 0 || (int)op >= (int)ncclNumOps) { emu_warn("reduction op %d (ncclInvalidArgument)", (int)op); return ncclInvalidArgument; }
    emu_require_stream(stream, "NCCL stream");
    if (count == 0) return ncclSuccess;
    NcclPending p{stream, sendbuff, recvbuff, count * tb, emu_site};
    if (nccl_group_depth > 0) {
        // checked now as NCCL checks its arguments at the call; launched at the group's end
        emu_require_device(sendbuff, p.bytes, "sendbuff");
        emu_require_device(recvbuff, p.bytes, "recvbuff");
        nccl_group_ops.push_back(p);
    } else {
        nccl_launch(p);
    }
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void) {
    nccl_group_depth++;
    return ncclSuccess;
}
ncclResult_t ncclGroupEnd(void) {
    if (nccl_group_depth == 0) { emu_warn("ncclGroupEnd without ncclGroupStart (ncclInvalidUsage)"); return ncclInvalidUsage; }
    if (--nccl_group_depth > 0) return ncclSuccess;
    std::vector<NcclPending> ops;
    ops.swap(nccl_group_ops);
    for (const NcclPending& p : ops) nccl_launch(p);
    return ncclSuccess;
}
