// emu_exec.cpp: a kernel's grid on one OS thread. The threads of a block are fibers (a small
// x86-64 context switch below; ucontext's swapcontext makes a syscall per switch). Blocks run one
// after another. A thread runs until it ends or parks at a barrier or a shuffle; a round resumes
// every runnable thread (in the seed's order), then resolves what all its parties reached. An
// ended thread's stack serves the next thread, so a kernel without barriers costs one switch
// pair per thread.
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <vector>
#include "emu_core.h"

uint3 emu_threadIdx, emu_blockIdx;
dim3 emu_blockDim, emu_gridDim;
int emu_block_first;

// ----------------------------------------------------------------------------
// context switch: saves the callee-saved registers on the old stack, stores its rsp in *save,
// loads new_sp and restores the same from there. MXCSR and the x87 control word are not switched
// (fldcw alone cost more than the rest): fibers share the host's rounding and exception modes,
// which no kernel changes.
extern "C" void emu_switch(void** save, void* new_sp);
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_switch, .-emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

enum { T_NEW, T_READY, T_BAR, T_SHFL, T_DONE };
struct EmuThread {
    int state;
    int stack;          // index of its stack while it has one, else -1
    void* sp;           // saved stack pointer while parked
    uint3 tid;
    // what it parked at
    int kind, arg, width, pred;
    unsigned mask;
    uint64_t val, result;
};

static const size_t STACK_BYTES = 256 * 1024, GUARD_BYTES = 4096;
static const int MAX_THREADS = 1024;
static char* g_stacks;                 // MAX_THREADS stacks, each after a guard page
static std::vector<int> g_free_stacks;
static void* g_sched_sp;
static EmuThread* g_cur;               // the thread running now
static std::vector<EmuThread> g_threads;
static EmuGrid* g_grid;
// the round: threads to run (or resume) in this order; threads whose shuffle completes are
// appended, so a round ends only when every thread exited or waits at a barrier (or is stuck)
static std::vector<int> g_round;
static size_t g_next;
static int g_n, g_done, g_bar, g_shfl;
static std::vector<int> g_warp_shfl;   // per warp: lanes parked at a shuffle

// 1 when addr is on a fiber stack's guard page (a stack overflow)
int emu_stack_guard_hit(const void* addr) {
    if (!g_stacks) return 0;
    uintptr_t a = (uintptr_t)addr, b = (uintptr_t)g_stacks;
    if (a < b || a >= b + (size_t)MAX_THREADS * (STACK_BYTES + GUARD_BYTES)) return 0;
    return (a - b) % (STACK_BYTES + GUARD_BYTES) < GUARD_BYTES;
}

static void stacks_init(void) {
    size_t total = (size_t)MAX_THREADS * (STACK_BYTES + GUARD_BYTES);
    g_stacks = (char*)mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (g_stacks == MAP_FAILED) emu_fatal("cannot map %zu MiB for the fiber stacks", total >> 20);
    for (int i = 0; i < MAX_THREADS; i++) mprotect(g_stacks + i * (STACK_BYTES + GUARD_BYTES), GUARD_BYTES, PROT_NONE);
    for (int i = MAX_THREADS - 1; i >= 0; i--) g_free_stacks.push_back(i);
}

static void enter(EmuThread* t) {
    g_cur = t;
    emu_threadIdx = t->tid;
}

extern "C" __attribute__((noreturn, used)) void emu_fiber_main(void);

// a new fiber's first frame: what emu_switch pops (six registers), then its return into
// emu_fiber_main with the stack aligned as after a call
static void* fiber_frame(EmuThread* t) {
    if (g_free_stacks.empty()) emu_fatal("internal: no fiber stack left");
    t->stack = g_free_stacks.back();
    g_free_stacks.pop_back();
    char* top = g_stacks + (size_t)t->stack * (STACK_BYTES + GUARD_BYTES) + GUARD_BYTES + STACK_BYTES;
    uint64_t* sp = (uint64_t*)top;
    *--sp = 0;                                    // emu_fiber_main's (never used) return address
    *--sp = (uint64_t)(uintptr_t)&emu_fiber_main; // sp % 16 == 0 here, so %rsp % 16 == 8 at entry
    for (int i = 0; i < 6; i++) *--sp = 0;        // rbp rbx r12 r13 r14 r15
    return sp;
}

// the next thread of the round to run, NULL when the round is over
static EmuThread* round_next(void) {
    while (g_next < g_round.size()) {
        EmuThread* t = &g_threads[g_round[g_next++]];
        if (t->state == T_NEW || t->state == T_READY) return t;
    }
    return NULL;
}

// leave the running fiber (its state set, its sp saved in *save) for the next one of the round
static void switch_next(EmuThread* self) {
    EmuThread* u = round_next();
    if (u == self) return; // its own shuffle completed and it is next: run on
    void** save = &self->sp;
    if (!u) { emu_switch(save, g_sched_sp); return; }
    void* sp = u->state == T_NEW ? fiber_frame(u) : u->sp;
    u->state = T_READY;
    enter(u);
    emu_switch(save, sp);
}

// every fiber starts here and runs threads one after another on its stack: a thread that ends
// hands its stack to the next new thread of the round without any switch
extern "C" __attribute__((noreturn, used)) void emu_fiber_main(void) {
    for (;;) {
        g_grid->thread_fn(g_grid->ctx);
        EmuThread* t = g_cur;
        t->state = T_DONE;
        g_done++;
        EmuThread* u = round_next();
        if (u && u->state == T_NEW) {
            u->stack = t->stack;
            t->stack = -1;
            u->state = T_READY;
            enter(u);
            continue;
        }
        g_free_stacks.push_back(t->stack); // nothing else runs on it before the switch below
        t->stack = -1;
        void* dead;
        if (!u) emu_switch(&dead, g_sched_sp);
        u->state = T_READY;
        enter(u);
        emu_switch(&dead, u->sp);
    }
}

static const char* kname(void) { return g_grid ? g_grid->L.name : "?"; }

static void need_kernel(const char* what) {
    if (!g_cur) emu_fatal("%s called outside a kernel", what);
}

int emu_barrier(int kind, int pred) {
    need_kernel("__syncthreads");
    EmuThread* t = g_cur;
    t->kind = kind;
    t->pred = pred;
    t->state = T_BAR;
    g_bar++;
    switch_next(t);
    enter(t);
    return (int)t->result;
}

static int resolve_group(int w, EmuThread* first, int strict);

uint64_t emu_shuffle(int kind, unsigned mask, uint64_t v, int arg, int width) {
    need_kernel("__shfl_sync");
    EmuThread* t = g_cur;
    t->kind = kind;
    t->mask = mask;
    t->val = v;
    t->arg = arg;
    t->width = width;
    t->state = T_SHFL;
    g_shfl++;
    int w = (int)((t - g_threads.data()) / 32);
    // the last lane of the mask to arrive exchanges and puts the lanes back into the round
    if (++g_warp_shfl[w] >= __builtin_popcount(mask)) resolve_group(w, t, 0);
    if (t->state == T_SHFL || g_next < g_round.size()) switch_next(t);
    enter(t);
    return t->result;
}

// ----------------------------------------------------------------------------
// static shared memory: the section's bounds from the linker; the 48 KiB limit per kernel

extern char __start_emu_shared[] __attribute__((weak));
extern char __stop_emu_shared[] __attribute__((weak));
static std::vector<const void*> g_shared_seen;
static size_t g_shared_bytes;

void emu_shared_note_slow(const void* p, size_t bytes) {
    for (const void* q : g_shared_seen) if (q == p) return;
    g_shared_seen.push_back(p);
    g_shared_bytes += bytes;
    if (g_shared_bytes > 48 * 1024)
        emu_fatal("%zu bytes of static __shared__ memory, more than the 48 KiB a kernel may declare statically (ptxas refuses it)", g_shared_bytes);
}

// ----------------------------------------------------------------------------
// one block

static void order_threads(std::vector<int>& v) {
    if (emu_seed == 1) std::reverse(v.begin(), v.end());
    else if (emu_seed > 1)
        for (int i = (int)v.size() - 1; i > 0; i--) std::swap(v[i], v[emu_rand() % (uint64_t)(i + 1)]);
}

static const char* state_name(int s) {
    switch (s) { case T_BAR: return "at __syncthreads"; case T_SHFL: return "at a shuffle"; case T_DONE: return "exited"; default: return "running"; }
}

// the lanes of warp w that `first`'s mask names, when all of them are parked at a shuffle:
// exchange, make them runnable (appended to the round) and return 1. strict: a lane that can
// never arrive is an error (the end of a round); else 0 (it may still arrive).
static int resolve_group(int w, EmuThread* first, int strict) {
    int base = w * 32, lanes = std::min(32, g_n - base);
    unsigned mask = first->mask;
    for (int j = 0; j < 32; j++) {
        if (!(mask >> j & 1)) continue;
        if (j >= lanes)
            emu_fatal("shuffle mask 0x%08x names lane %d of warp %d, which does not exist (%d threads a block)", mask, j, w, g_n);
        EmuThread* u = &g_threads[base + j];
        if (u->state == T_DONE || (strict && u->state == T_BAR))
            emu_fatal("shuffle mask 0x%08x of thread %d names lane %d (thread %d), which is %s", mask, (int)(first - g_threads.data()), j,
                      base + j, state_name(u->state));
        if (u->state != T_SHFL) return 0;
        if (u->mask != mask)
            emu_fatal("lanes %d and %d of warp %d shuffle with different masks (0x%08x, 0x%08x)", (int)(first - g_threads.data()) - base, j, w,
                      mask, u->mask);
    }
    for (int j = 0; j < 32; j++) {
        if (!(mask >> j & 1)) continue;
        EmuThread* u = &g_threads[base + j];
        int width = u->width, src = j;
        if (width <= 0 || width > 32 || (width & (width - 1))) emu_fatal("shuffle width %d is not a power of 2 up to 32", width);
        int seg = j & ~(width - 1);
        switch (u->kind) {
            case EMU_SHFL_IDX: src = seg + (u->arg & (width - 1)); break;
            case EMU_SHFL_XOR: src = j ^ u->arg; if (src >= seg + width) src = j; break;
            case EMU_SHFL_DOWN: src = j + u->arg; if (src >= seg + width) src = j; break;
            case EMU_SHFL_UP: src = j - u->arg; if (src < seg) src = j; break;
        }
        if (src < 0 || src >= 32 || !(mask >> src & 1))
            emu_fatal("lane %d of warp %d reads lane %d by a shuffle, but the mask 0x%08x leaves that lane out (undefined)", j, w, src, mask);
        if (g_threads[base + src].kind != u->kind) emu_fatal("lanes %d and %d of warp %d are at different kinds of shuffle", j, src, w);
        u->result = g_threads[base + src].val;
    }
    size_t at = g_round.size();
    for (int j = 0; j < 32; j++)
        if (mask >> j & 1) {
            g_threads[base + j].state = T_READY;
            g_round.push_back(base + j);
        }
    int k = __builtin_popcount(mask);
    g_shfl -= k;
    g_warp_shfl[w] -= k;
    if (emu_seed == 1) std::reverse(g_round.begin() + at, g_round.end());
    return 1;
}

static void run_round(void) {
    g_next = 0;
    EmuThread* t = round_next();
    if (!t) return;
    void* sp = t->state == T_NEW ? fiber_frame(t) : t->sp;
    t->state = T_READY;
    enter(t);
    emu_switch(&g_sched_sp, sp);
    g_cur = NULL;
}

static void run_block(int n) {
    g_round.resize(n);
    for (int i = 0; i < n; i++) g_round[i] = i;
    order_threads(g_round);
    g_done = g_bar = g_shfl = 0;
    std::fill(g_warp_shfl.begin(), g_warp_shfl.end(), 0);
    for (;;) {
        run_round();
        if (g_done == n) return;
        g_round.clear();
        if (g_shfl) // shuffles left: some named lane exited, waits at a barrier, or a mask disagrees
            for (int i = 0; i < n; i++)
                if (g_threads[i].state == T_SHFL) resolve_group(i / 32, &g_threads[i], 1);
        if (g_round.empty() && g_shfl == 0 && g_bar == n - g_done) {
            if (g_done)
                emu_fatal("block (%u,%u,%u): %d threads wait at __syncthreads that %d exited threads never reach", emu_blockIdx.x, emu_blockIdx.y,
                          emu_blockIdx.z, g_bar, g_done);
            int kind = g_threads[0].kind, count = 0, any = 0, all = 1;
            for (int i = 0; i < n; i++) {
                if (g_threads[i].kind != kind)
                    emu_fatal("threads 0 and %d of a block are at different barriers (__syncthreads and its _count/_or/_and forms)", i);
                int p = g_threads[i].pred != 0;
                count += p; any |= p; all &= p;
            }
            int r = kind == EMU_BAR_COUNT ? count : kind == EMU_BAR_OR ? any : kind == EMU_BAR_AND ? all : 0;
            for (int i = 0; i < n; i++) { g_threads[i].result = (uint64_t)r; g_threads[i].state = T_READY; g_round.push_back(i); }
            g_bar = 0;
            order_threads(g_round);
        }
        if (g_round.empty())
            emu_fatal("block (%u,%u,%u): %d threads wait at barriers or shuffles that the others never reach (%d exited)", emu_blockIdx.x,
                      emu_blockIdx.y, emu_blockIdx.z, g_bar + g_shfl, g_done);
    }
}

void emu_run_grid(EmuGrid* g) {
    if (!g_stacks) stacks_init();
    g_grid = g;
    dim3 gd = g->L.grid, bd = g->L.block;
    emu_gridDim = gd;
    emu_blockDim = bd;
    int n = (int)(bd.x * bd.y * bd.z);
    g_threads.assign(n, EmuThread{});
    g_n = n;
    g_warp_shfl.assign((n + 31) / 32, 0);
    size_t shared_bytes = __stop_emu_shared - __start_emu_shared;
    g_shared_seen.clear();
    g_shared_bytes = 0;
    emu_block_first = 1;
    for (unsigned bz = 0; bz < gd.z; bz++)
        for (unsigned by = 0; by < gd.y; by++)
            for (unsigned bx = 0; bx < gd.x; bx++) {
                emu_blockIdx = uint3{bx, by, bz};
                if (shared_bytes) memset(__start_emu_shared, 0xFF, shared_bytes);
                int i = 0;
                for (unsigned z = 0; z < bd.z; z++)
                    for (unsigned y = 0; y < bd.y; y++)
                        for (unsigned x = 0; x < bd.x; x++, i++) {
                            EmuThread* t = &g_threads[i];
                            t->state = T_NEW;
                            t->stack = -1;
                            t->tid = uint3{x, y, z};
                        }
                run_block(n);
                emu_block_first = 0;
            }
    g_grid = NULL;
    g_cur = NULL;
    (void)kname;
}
