// emu_internal.h: the contract between the emulated CUDA runtime (emu_runtime.cpp: memory,
// streams, events, launches) and the emulated libraries (emu_blas.cpp: cuBLAS + cuBLASLt,
// emu_solver.cpp: cuSOLVER, emu_dnn.cpp: cuDNN, emu_nccl.cpp: NCCL). The program never includes
// this file; it sees only the real CUDA headers and dev/emu/emu.h (force-included).
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H

#include <stddef.h>
#include <functional>
#include <vector>
#include <cuda_runtime.h>

// The call site of the API call being made. emu.h wraps every library and runtime entry point in
// a macro that sets this before the call, so an error names the program's file:line, not ours.
#ifndef EMU_SITE_DECLARED // also in emu.h / emu_internal.h
#define EMU_SITE_DECLARED
struct EmuSite { const char* call; const char* file; int line; };
extern thread_local EmuSite emu_site;
#endif

// One line on stderr, "emu: error: <call> at <file>:<line>: <message>", then the process ends
// with exit status 86 (EMU_EXIT). Used for misuse a real GPU would turn into a crash, a hang or
// silent corruption. Misuse that a real library reports with a status code returns that status
// instead, after emu_warn's line, so the program's own check reports it as it would on a GPU.
#define EMU_EXIT 86
[[noreturn]] void emu_fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void emu_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Where a pointer lives.
enum EmuPtrKind { EMU_PTR_NULL, EMU_PTR_HOST, EMU_PTR_PINNED, EMU_PTR_DEVICE, EMU_PTR_FREED, EMU_PTR_GUARD };
EmuPtrKind emu_ptr_kind(const void* p);
// [p, p + bytes) lies inside one live device allocation, else emu_fatal naming `what` (e.g. "C",
// "workspace", "devInfo"), the allocation's name and the offset. bytes == 0 checks p only.
void emu_require_device(const void* p, size_t bytes, const char* what);
// 1 when [p, p+bytes) is inside one live device allocation (no message)
int emu_is_device(const void* p, size_t bytes);

// A stream handle that was created and not destroyed (0 = the legacy default stream), else
// emu_fatal. Libraries call it for the stream set on their handle, at each call.
void emu_require_stream(cudaStream_t s, const char* what);

// Stream-ordered work. `fn` runs later, on the host thread, in "device context" (device memory
// readable and writable there, and only there), in an order the scheduler picks that honours only
// stream order, events, cudaStreamWaitEvent and host synchronisation. `ranges` are the device
// bytes the op reads or writes: they are checked now (live, in bounds), made accessible for the
// op, and recorded for the cross-stream race check. Library ops declare exact ranges; host
// pointers in an op (a host alpha, a host result) must be copied into the closure at enqueue
// time unless the API promises to read them later.
struct EmuRange { const void* p; size_t bytes; int write; };
void emu_enqueue(cudaStream_t s, const char* name, std::vector<EmuRange> ranges, std::function<void()> fn);

// Block the host until every op of stream s (and what it depends on) has run. Libraries whose
// API is synchronous for the host (none of ours yet) call it.
void emu_sync_stream(cudaStream_t s);

// Bytes of device memory the emulated card has and how many are allocated now.
size_t emu_mem_total(void);
size_t emu_mem_used(void);

#endif
