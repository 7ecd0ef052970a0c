// emu_core.h: what the runtime (emu_runtime.cpp: memory, streams, the scheduler, the API) and
// the block executor (emu_exec.cpp: fibers, barriers, shuffles) share. Not seen by the program
// nor by the libraries (they use emu_internal.h).
#ifndef EMU_CORE_H
#define EMU_CORE_H

#include "emu.h"
#include "emu_internal.h"

// the op running now (NULL: host context). Its name and site head every error raised inside it.
struct EmuOp;
extern EmuOp* emu_cur_op;
// "kernel k<<<...>>> launched at file:line" or "cudaMemcpy at file:line" for messages
const char* emu_op_desc(const EmuOp* op);

// the seed (EMU_SEED) and its generator: splitmix64 over a counter
extern uint64_t emu_seed;
uint64_t emu_rand(void);

// runs one launch's grid on the host thread (device context already entered by the caller)
struct EmuGrid {
    EmuLaunch L;
    void (*thread_fn)(void*);
    void* ctx;
    void (*free_fn)(void*);
};
void emu_run_grid(EmuGrid* g);

#endif
