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
// context switch: saves the callee-saved registers, MXCSR and the x87 control word on the old
// stack, stores its rsp in *save, loads new_sp and restores the same from there.
extern "C" void emu_switch(void** save, void* new_sp);
extern "C" void emu_fiber_entry(void);
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
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
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
static uint32_t g_mxcsr_fpucw[2];

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
    uint32_t m;
    uint16_t cw;
    asm volatile("stmxcsr %0" : "=m"(m));
    asm volatile("fnstcw %0" : "=m"(cw));
    g_mxcsr_fpucw[0] = m;
    g_mxcsr_fpucw[1] = cw;
}

// the fiber's first frame: what emu_switch pops (mxcsr/cw, six registers) then returns into
// emu_fiber_main with the stack aligned as after a call
extern "C" __attribute__((noreturn, used)) void emu_fiber_main(void) {
    g_grid->thread_fn(g_grid->ctx);
    g_cur->state = T_DONE;
    g_free_stacks.push_back(g_cur->stack);
    g_cur->stack = -1;
    void* dead;
    emu_switch(&dead, g_sched_sp);
    __builtin_unreachable();
}

static void* fiber_frame(int stack) {
    char* top = g_stacks + (size_t)stack * (STACK_BYTES + GUARD_BYTES) + GUARD_BYTES + STACK_BYTES;
    uint64_t* sp = (uint64_t*)top;
    *--sp = 0;                                 // emu_fiber_main's (never used) return address
    *--sp = (uint64_t)(uintptr_t)&emu_fiber_main; // emu_switch's ret; sp % 16 == 0 here, so %rsp % 16 == 8 at entry
    for (int i = 0; i < 6; i++) *--sp = 0;     // rbp rbx r12 r13 r14 r15
    *--sp = (uint64_t)g_mxcsr_fpucw[0] | ((uint64_t)g_mxcsr_fpucw[1] << 32);
    return sp;
}

static void resume(EmuThread* t) {
    if (t->state == T_NEW) {
        if (g_free_stacks.empty()) emu_fatal("internal: no fiber stack left");
        t->stack = g_free_stacks.back();
        g_free_stacks.pop_back();
        t->sp = fiber_frame(t->stack);
    }
    t->state = T_READY;
    g_cur = t;
    emu_threadIdx = t->tid;
    emu_switch(&g_sched_sp, t->sp);
}

// the running fiber parks; the executor resumes it later
static void park(int state) {
    EmuThread* t = g_cur;
    t->state = state;
    emu_switch(&t->sp, g_sched_sp);
    g_cur = t;
    emu_threadIdx = t->tid;
}

static const char* kname(void) { return g_grid ? g_grid->L.name : "?"; }

static void need_kernel(const char* what) {
    if (!g_cur) emu_fatal("%s called outside a kernel", what);
}

int emu_barrier(int kind, int pred) {
    need_kernel("__syncthreads");
    g_cur->kind = kind;
    g_cur->pred = pred;
    park(T_BAR);
    return (int)g_cur->result;
}

uint64_t emu_shuffle(int kind, unsigned mask, uint64_t v, int arg, int width) {
    need_kernel("__shfl_sync");
    EmuThread* t = g_cur;
    t->kind = kind;
    t->mask = mask;
    t->val = v;
    t->arg = arg;
    t->width = width;
    park(T_SHFL);
    return g_cur->result;
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

static std::vector<int> g_order;

static void order_threads(int n) {
    g_order.resize(n);
    for (int i = 0; i < n; i++) g_order[i] = i;
    if (emu_seed == 1) std::reverse(g_order.begin(), g_order.end());
    else if (emu_seed > 1)
        for (int i = n - 1; i > 0; i--) std::swap(g_order[i], g_order[emu_rand() % (uint64_t)(i + 1)]);
}

static const char* state_name(int s) {
    switch (s) { case T_BAR: return "at __syncthreads"; case T_SHFL: return "at a shuffle"; case T_DONE: return "exited"; default: return "running"; }
}

// the lanes of warp w parked at a shuffle whose mask every named lane reached: exchange. Returns
// 1 when some group was resolved.
static int resolve_warp(int w, int n) {
    int base = w * 32, lanes = std::min(32, n - base);
    int progressed = 0;
    for (int l = 0; l < lanes; l++) {
        EmuThread* t = &g_threads[base + l];
        if (t->state != T_SHFL) continue;
        unsigned mask = t->mask;
        int complete = 1;
        for (int j = 0; j < 32; j++) {
            if (!(mask >> j & 1)) continue;
            if (j >= lanes)
                emu_fatal("shuffle mask 0x%08x names lane %d of warp %d, which does not exist (%d threads a block)", mask, j, w, n);
            EmuThread* u = &g_threads[base + j];
            if (u->state == T_DONE || u->state == T_BAR)
                emu_fatal("shuffle mask 0x%08x of thread %d names lane %d (thread %d), which is %s", mask, base + l, j, base + j, state_name(u->state));
            if (u->state != T_SHFL) { complete = 0; break; }
            if (u->mask != mask)
                emu_fatal("lanes %d and %d of warp %d shuffle with different masks (0x%08x, 0x%08x)", l, j, w, mask, u->mask);
        }
        if (!complete) continue;
        for (int j = 0; j < 32; j++) {
            if (!(mask >> j & 1)) continue;
            EmuThread* u = &g_threads[base + j];
            int width = u->width, src = j;
            if (width <= 0 || width > 32 || (width & (width - 1)))
                emu_fatal("shuffle width %d is not a power of 2 up to 32", width);
            int seg = j & ~(width - 1);
            switch (u->kind) {
                case EMU_SHFL_IDX: src = seg + (u->arg & (width - 1)); break;
                case EMU_SHFL_XOR: src = j ^ u->arg; if (src >= seg + width) src = j; break;
                case EMU_SHFL_DOWN: src = j + u->arg; if (src >= seg + width) src = j; break;
                case EMU_SHFL_UP: src = j - u->arg; if (src < seg) src = j; break;
            }
            if (src < 0 || src >= 32 || !(mask >> src & 1))
                emu_fatal("lane %d of warp %d reads lane %d by a shuffle, but the mask 0x%08x leaves that lane out (undefined)", j, w, src, mask);
            if (g_threads[base + src].kind != u->kind)
                emu_fatal("lanes %d and %d of warp %d are at different kinds of shuffle", j, src, w);
            u->result = g_threads[base + src].val;
        }
        for (int j = 0; j < 32; j++) if (mask >> j & 1) g_threads[base + j].state = T_READY;
        progressed = 1;
    }
    return progressed;
}

static void run_block(int n) {
    order_threads(n);
    for (;;) {
        for (int i = 0; i < n; i++) {
            EmuThread* t = &g_threads[g_order[i]];
            if (t->state == T_NEW || t->state == T_READY) resume(t);
        }
        g_cur = NULL;
        int done = 0, bar = 0, shfl = 0;
        for (int i = 0; i < n; i++) {
            int s = g_threads[i].state;
            done += s == T_DONE; bar += s == T_BAR; shfl += s == T_SHFL;
        }
        if (done == n) return;
        int progressed = 0;
        if (shfl)
            for (int w = 0; w * 32 < n; w++) progressed |= resolve_warp(w, n);
        if (!progressed && shfl == 0 && bar == n - done) {
            if (done)
                emu_fatal("block (%u,%u,%u): %d threads wait at __syncthreads that %d exited threads never reach", emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, bar, done);
            int kind = g_threads[0].kind, count = 0, any = 0, all = 1;
            for (int i = 0; i < n; i++) {
                if (g_threads[i].kind != kind)
                    emu_fatal("threads 0 and %d of a block are at different barriers (__syncthreads and its _count/_or/_and forms)", i);
                int p = g_threads[i].pred != 0;
                count += p; any |= p; all &= p;
            }
            int r = kind == EMU_BAR_COUNT ? count : kind == EMU_BAR_OR ? any : kind == EMU_BAR_AND ? all : 0;
            for (int i = 0; i < n; i++) { g_threads[i].result = (uint64_t)r; g_threads[i].state = T_READY; }
            progressed = 1;
        }
        if (!progressed) {
            int i = 0;
            while (i < n && g_threads[i].state != T_BAR) i++;
            int j = 0;
            while (j < n && g_threads[j].state != T_SHFL) j++;
            if (i < n && j < n)
                emu_fatal("block (%u,%u,%u): thread %d waits at __syncthreads while thread %d waits at a shuffle whose lanes never all arrive", emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, i, j);
            emu_fatal("block (%u,%u,%u): %d threads wait at barriers or shuffles that the others never reach (%d exited)", emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z, bar + shfl, done);
        }
        if (emu_seed > 1) order_threads(n);
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
