// emu_runtime.cpp: the emulated CUDA runtime: device memory in guarded mappings, streams and
// events with deferred, seeded execution, the cross-stream race check, launches, and the runtime
// API the program calls (real signatures, from cuda_runtime_api.h). See emu.h for what is
// modelled and what is not.
//
// The race check. Every op (kernel, copy, memset, library call, allocation and free in stream
// order) carries a vector clock: what the API orders before it (stream order, events waited,
// host synchronisation, the legacy default stream). A kernel gets device pages by faulting: a
// read grants the page read-only, a write grants it read-write after a snapshot; after the kernel
// the snapshot diff gives the bytes it wrote (a write of the value already there is not seen).
// Copies and library ops declare their exact ranges. On each page: two unordered ops whose
// written bytes overlap are a race; an op that reads a page (the read is known only per page)
// unordered with an op that wrote the WHOLE page is a race. A read of a partly written page is
// not judged (the reader may have read other bytes; the program packs tensors into shared
// pages): that case is only caught when the hostile order changes the result.
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <signal.h>
#include <unistd.h>
#include <time.h>
#include <omp.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <map>
#include <vector>
#include "emu_core.h"

#undef cudaMalloc
#undef cudaMallocAsync
#undef cudaMallocHost
#undef cudaFree
#undef cudaFreeAsync
#undef cudaFreeHost
#undef cudaMemcpy
#undef cudaMemcpyAsync
#undef cudaMemset
#undef cudaMemsetAsync
#undef cudaMemGetInfo
#undef cudaStreamCreate
#undef cudaStreamCreateWithFlags
#undef cudaStreamDestroy
#undef cudaStreamSynchronize
#undef cudaStreamWaitEvent
#undef cudaStreamQuery
#undef cudaEventCreate
#undef cudaEventCreateWithFlags
#undef cudaEventDestroy
#undef cudaEventRecord
#undef cudaEventSynchronize
#undef cudaEventQuery
#undef cudaEventElapsedTime
#undef cudaDeviceSynchronize
#undef cudaGetLastError
#undef cudaPeekAtLastError
#undef cudaSetDevice
#undef cudaGetDevice
#undef cudaGetDeviceCount
#undef cudaGetDeviceProperties
#undef cudaDeviceGetAttribute
#undef cudaDeviceGetDefaultMemPool
#undef cudaMemPoolSetAttribute
#undef cudaMemPoolGetAttribute
#undef cudaFuncSetAttribute

thread_local EmuSite emu_site = {"(startup)", "?", 0};
const char* const what = NULL;
const char* emu_alloc_name(const char* w) { return w; }
EmuOp* emu_cur_op;
uint64_t emu_seed;
int emu_stack_guard_hit(const void* addr);

static const size_t PAGE = 4096;
static const unsigned char FILL = 0xFF, CANARY = 0xCA;

// ----------------------------------------------------------------------------
// messages

static void emu_vdie(const char* prefix, const char* fmt, va_list ap) __attribute__((noreturn));
static void emu_vdie(const char* prefix, const char* fmt, va_list ap) {
    fflush(stdout);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "emu: error: %s: %s\n", prefix, msg);
    fflush(stderr);
    _exit(EMU_EXIT);
}
static std::string site_str(const EmuSite& s) {
    char b[512];
    snprintf(b, sizeof b, "%s at %s:%d", s.call, s.file, s.line);
    return b;
}
// inside an op: the op names itself; outside: the API call being made
void emu_fatal(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string p = emu_cur_op ? emu_op_desc(emu_cur_op) : site_str(emu_site);
    emu_vdie(p.c_str(), fmt, ap);
}
void emu_warn(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    std::string p = emu_cur_op ? emu_op_desc(emu_cur_op) : site_str(emu_site);
    fprintf(stderr, "emu: error: %s: %s\n", p.c_str(), msg);
}

uint64_t emu_rand(void) {
    static uint64_t ctr;
    uint64_t z = emu_seed * 0x9E3779B97F4A7C15ULL + (++ctr) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// ----------------------------------------------------------------------------
// vector clocks: entry i is how many ops of stream i are ordered before

typedef std::vector<uint64_t> VC;
static uint64_t vc_at(const VC& v, int i) { return i < (int)v.size() ? v[i] : 0; }
static void vc_join(VC& a, const VC& b) {
    if (a.size() < b.size()) a.resize(b.size(), 0);
    for (size_t i = 0; i < b.size(); i++) if (b[i] > a[i]) a[i] = b[i];
}

// ----------------------------------------------------------------------------
// state

struct Alloc;
struct Stream {
    int id;
    unsigned flags;
    int destroyed;
    uint64_t enq, done;
    VC vc;
    std::deque<EmuOp*> q;
};
struct Event {
    unsigned flags;
    int destroyed, recorded, executed;
    Stream* stream;
    uint64_t seq;
    VC vc;
    double t_ms;
};
enum { OP_KERNEL, OP_FN, OP_EVENT, OP_ALLOC, OP_FREE };
struct EmuOp {
    int kind;
    Stream* s;
    uint64_t seq;
    VC vc;
    const char* name;   // kernel name or API call / library op name
    const char* file;
    int line;
    EmuGrid grid;
    std::function<void()> fn;
    std::vector<EmuRange> ranges;
    Event* ev;
    Alloc* alloc;
};
struct OpRef { int stream; uint64_t seq; const char* name; const char* file; int line; int kernel; };

struct Writer { OpRef op; int full; std::vector<uint64_t> bits; }; // bits: 512 words when !full
struct PageRec { std::vector<Writer> writers; std::vector<OpRef> readers; };
struct Alloc {
    uintptr_t base, size, start, end;   // the pointer, its bytes, its pages [start, end)
    std::string name, site;
    int freed, free_enqueued, pinned;
    int async_stream; uint64_t async_seq;   // cudaMallocAsync: live from this op on
    std::vector<uint8_t> filled;            // per page: filled with the 0xFF pattern and canary
    std::vector<int32_t> grant_at;          // per page: its index in g_grants during an op, else -1
    std::vector<uint64_t> last_use;         // per stream: the last seq of that stream that touched it
    std::vector<OpRef> last_use_op;
    std::unordered_map<size_t, PageRec> pages;
};

static char* g_va;                    // the reserved device address range
static size_t g_va_size, g_va_next;
static std::vector<Alloc*> g_allocs;  // by address (addresses are never reused)
static std::map<uintptr_t, size_t> g_pinned;
static size_t g_mem_total, g_mem_used, g_mem_peak;
static std::map<std::string, std::pair<size_t, size_t>> g_mem_by_name; // name -> (now, peak)
static std::vector<Stream*> g_streams;
static VC g_host_vc;
static int g_streams_used;            // >1: the race bookkeeping is on
static cudaError_t g_last_error = cudaSuccess;
static int g_device_ctx;              // an op is running: device memory may be granted
static size_t g_pool_threshold;

struct Grant { Alloc* a; size_t page; int mode; long snap; };
static std::vector<Grant> g_grants;
static std::vector<char> g_snaps;

static cudaError_t ret(cudaError_t e) {
    if (e != cudaSuccess) g_last_error = e;
    return e;
}

static void init(void);

// ----------------------------------------------------------------------------
// allocations

static Alloc* find_alloc(uintptr_t p) {
    // the last allocation whose pages start at or before p + PAGE (its front guard)
    size_t lo = 0, hi = g_allocs.size();
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g_allocs[mid]->start <= p + PAGE) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return NULL;
    Alloc* a = g_allocs[lo - 1];
    if (p + PAGE < a->start || p >= a->end + PAGE) return NULL;
    return a;
}
static int in_va(uintptr_t p) { return g_va && p >= (uintptr_t)g_va && p < (uintptr_t)g_va + g_va_size; }

EmuPtrKind emu_ptr_kind(const void* vp) {
    uintptr_t p = (uintptr_t)vp;
    if (!p) return EMU_PTR_NULL;
    if (in_va(p)) {
        Alloc* a = find_alloc(p);
        if (!a) return EMU_PTR_GUARD;
        if (a->freed || a->free_enqueued) return EMU_PTR_FREED;
        if (p < a->start || p >= a->end) return EMU_PTR_GUARD;
        return EMU_PTR_DEVICE;
    }
    auto it = g_pinned.upper_bound(p);
    if (it != g_pinned.begin()) { --it; if (p < it->first + it->second) return EMU_PTR_PINNED; }
    return EMU_PTR_HOST;
}

static const char* kind_word(EmuPtrKind k) {
    switch (k) {
        case EMU_PTR_NULL: return "NULL";
        case EMU_PTR_HOST: return "host (pageable) memory";
        case EMU_PTR_PINNED: return "pinned host memory";
        case EMU_PTR_DEVICE: return "device memory";
        case EMU_PTR_FREED: return "freed device memory";
        default: return "a guard page between device allocations";
    }
}

// "'name' (N bytes, allocated at f:l) at offset O"
static std::string alloc_at(const Alloc* a, uintptr_t p) {
    char b[600];
    snprintf(b, sizeof b, "'%s' (%zu bytes, allocated at %s) at offset %lld", a->name.c_str(), (size_t)a->size, a->site.c_str(),
             (long long)(p - a->base));
    return b;
}

int emu_is_device(const void* p, size_t bytes) {
    Alloc* a = in_va((uintptr_t)p) ? find_alloc((uintptr_t)p) : NULL;
    return a && !a->freed && (uintptr_t)p >= a->base && (uintptr_t)p + bytes <= a->base + a->size;
}

void emu_require_device(const void* vp, size_t bytes, const char* what_) {
    uintptr_t p = (uintptr_t)vp;
    Alloc* a = in_va(p) ? find_alloc(p) : NULL;
    if (!a) emu_fatal("%s (%p) is %s, not device memory", what_, vp, kind_word(emu_ptr_kind(vp)));
    if (a->freed || a->free_enqueued) emu_fatal("%s is freed device memory %s (use after free)", what_, alloc_at(a, p).c_str());
    if (p < a->base || p + bytes > a->base + a->size)
        emu_fatal("%s: %zu bytes from %s run past the allocation", what_, bytes, alloc_at(a, p).c_str());
}

static void fill_page(Alloc* a, size_t pg) {
    char* pa = (char*)(a->start + pg * PAGE);
    mprotect(pa, PAGE, PROT_READ | PROT_WRITE);
    memset(pa, FILL, PAGE);
    uintptr_t lo = (uintptr_t)pa, hi = lo + PAGE;
    // canary in the slack before the pointer and after its last byte
    for (uintptr_t x = std::max(lo, a->start); x < std::min(hi, a->base); x++) *(unsigned char*)x = CANARY;
    for (uintptr_t x = std::max(lo, a->base + a->size); x < std::min(hi, a->end); x++) *(unsigned char*)x = CANARY;
    a->filled[pg] = 1;
}

// 1 when the slack bytes on page pg still hold the canary; *bad gets the first changed byte
static int canary_ok(Alloc* a, size_t pg, uintptr_t* bad) {
    if (!a->filled[pg]) return 1;
    uintptr_t lo = a->start + pg * PAGE, hi = lo + PAGE;
    for (uintptr_t x = std::max(lo, a->start); x < std::min(hi, a->base); x++)
        if (*(unsigned char*)x != CANARY) { *bad = x; return 0; }
    for (uintptr_t x = std::max(lo, a->base + a->size); x < std::min(hi, a->end); x++)
        if (*(unsigned char*)x != CANARY) { *bad = x; return 0; }
    return 1;
}

static void mem_count(const std::string& name, long long d) {
    g_mem_used += d;
    if (g_mem_used > g_mem_peak) g_mem_peak = g_mem_used;
    auto& e = g_mem_by_name[name];
    e.first += d;
    if (e.first > e.second) e.second = e.first;
}

static Alloc* alloc_new(size_t bytes, const char* name) {
    init();
    size_t span = (bytes + 255) / 256 * 256;
    size_t pages = (span + PAGE - 1) / PAGE;
    if (g_va_next + (pages + 1) * PAGE > g_va_size) return NULL;
    Alloc* a = new Alloc();
    a->start = (uintptr_t)g_va + g_va_next;
    a->end = a->start + pages * PAGE;
    a->base = a->end - span;
    a->size = bytes;
    g_va_next += (pages + 1) * PAGE; // one guard page after, which is the next one's front guard
    char site[400];
    snprintf(site, sizeof site, "%s:%d", emu_site.file, emu_site.line);
    a->site = site;
    a->name = name ? name : std::string("allocation at ") + site;
    a->filled.assign(pages, 0);
    a->grant_at.assign(pages, -1);
    a->async_stream = -1;
    g_allocs.push_back(a);
    mem_count(a->name, (long long)bytes);
    return a;
}

static void alloc_release(Alloc* a) {
    uintptr_t bad;
    for (size_t pg = 0; pg < a->filled.size(); pg += std::max<size_t>(1, a->filled.size() - 1)) {
        if (!a->filled[pg]) continue;
        mprotect((void*)(a->start + pg * PAGE), PAGE, PROT_READ);
        int ok = canary_ok(a, pg, &bad);
        mprotect((void*)(a->start + pg * PAGE), PAGE, PROT_NONE);
        if (!ok) emu_fatal("the bytes after (or before) %s were overwritten: at offset %lld, found at free", alloc_at(a, a->base).c_str(),
                           (long long)(bad - a->base));
    }
    a->freed = 1;
    madvise((void*)a->start, a->end - a->start, MADV_DONTNEED);
    mprotect((void*)a->start, a->end - a->start, PROT_NONE);
    a->pages.clear();
    mem_count(a->name, -(long long)a->size);
}

// ----------------------------------------------------------------------------
// ops: descriptions, grants, the race check

const char* emu_op_desc(const EmuOp* op) {
    static char b[4][600];
    static int k;
    char* s = b[k++ & 3];
    if (!op) { snprintf(s, 600, "%s", site_str(emu_site).c_str()); return s; }
    if (op->kind == OP_KERNEL)
        snprintf(s, 600, "kernel %s<<<(%u,%u,%u), (%u,%u,%u)>>> launched at %s:%d", op->name, op->grid.L.grid.x, op->grid.L.grid.y,
                 op->grid.L.grid.z, op->grid.L.block.x, op->grid.L.block.y, op->grid.L.block.z, op->file, op->line);
    else snprintf(s, 600, "%s at %s:%d", op->name, op->file, op->line);
    return s;
}
static OpRef op_ref(const EmuOp* op) { return OpRef{op->s->id, op->seq, op->name, op->file, op->line, op->kind == OP_KERNEL}; }
static std::string ref_desc(const OpRef& r) {
    char b[600];
    snprintf(b, sizeof b, "%s%s at %s:%d on stream %d", r.kernel ? "kernel " : "", r.name, r.file, r.line, r.stream);
    return b;
}
static int ordered_before(const OpRef& w, const EmuOp* x) { return vc_at(x->vc, w.stream) >= w.seq; }

static void check_async_lifetime(Alloc* a, const EmuOp* op) {
    if (a->async_stream >= 0 && vc_at(op->vc, a->async_stream) < a->async_seq)
        emu_fatal("uses %s before its cudaMallocAsync (stream %d) in stream order: no event or synchronisation orders the allocation first",
                  alloc_at(a, a->base).c_str(), a->async_stream);
}

static void grant(Alloc* a, size_t pg, int mode) {
    if (!a->filled[pg]) fill_page(a, pg);
    long snap = -1;
    if (mode == 2 && g_streams_used > 1 && emu_cur_op->kind == OP_KERNEL) {
        snap = (long)g_snaps.size();
        g_snaps.resize(g_snaps.size() + PAGE);
        mprotect((void*)(a->start + pg * PAGE), PAGE, PROT_READ);
        memcpy(&g_snaps[snap], (void*)(a->start + pg * PAGE), PAGE);
    }
    mprotect((void*)(a->start + pg * PAGE), PAGE, mode == 2 ? PROT_READ | PROT_WRITE : PROT_READ);
    if (a->grant_at[pg] >= 0) { // upgrade of a read grant
        Grant& gr = g_grants[a->grant_at[pg]];
        gr.mode = mode;
        gr.snap = snap;
        return;
    }
    a->grant_at[pg] = (int32_t)g_grants.size();
    g_grants.push_back(Grant{a, pg, mode, snap});
}

static void set_bits(std::vector<uint64_t>& bits, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) bits[i >> 6] |= 1ULL << (i & 63);
}
static int bits_overlap(const Writer& a, const Writer& b) {
    if (a.full || b.full) return 1;
    for (size_t i = 0; i < a.bits.size(); i++) if (a.bits[i] & b.bits[i]) return 1;
    return 0;
}
static int bits_subset(const Writer& a, const Writer& b) { // a within b
    if (b.full) return 1;
    if (a.full) return 0;
    for (size_t i = 0; i < a.bits.size(); i++) if (a.bits[i] & ~b.bits[i]) return 0;
    return 1;
}

static void race(const char* how, const OpRef& other, Alloc* a, size_t pg) {
    emu_fatal("race on %s: %s %s, and no event or synchronisation orders the two", alloc_at(a, std::max(a->base, a->start + pg * PAGE)).c_str(),
              how, ref_desc(other).c_str());
}

// op's access to one page: written bytes (w, may be empty), read (page level)
static void page_access(Alloc* a, size_t pg, int read, Writer* w) {
    PageRec& r = a->pages[pg];
    const EmuOp* op = emu_cur_op;
    if (w) {
        for (auto& o : r.writers)
            if (!ordered_before(o.op, op) && bits_overlap(o, *w)) race("it writes bytes that are also written by", o.op, a, pg);
        if (w->full)
            for (auto& o : r.readers)
                if (!ordered_before(o, op) && !(o.stream == op->s->id && o.seq == op->seq)) race("it overwrites a page read by", o, a, pg);
    }
    if (read)
        for (auto& o : r.writers)
            if (o.full && !ordered_before(o.op, op)) race("it reads a page written by", o.op, a, pg);
    if (w) {
        std::vector<Writer> keep;
        for (auto& o : r.writers) if (!(ordered_before(o.op, op) && bits_subset(o, *w))) keep.push_back(o);
        keep.push_back(*w);
        r.writers.swap(keep);
    }
    if (read || w) {
        OpRef me = op_ref(op);
        int found = 0;
        for (auto& o : r.readers) if (o.stream == me.stream) { o = me; found = 1; }
        if (!found) r.readers.push_back(me);
    }
}

static void note_use(Alloc* a, const EmuOp* op) {
    int s = op->s->id;
    if ((int)a->last_use.size() <= s) { a->last_use.resize(s + 1, 0); a->last_use_op.resize(s + 1); }
    a->last_use[s] = op->seq;
    a->last_use_op[s] = op_ref(op);
}

// after an op: revoke every grant, check canaries on written edge pages, record for races
static void op_end(EmuOp* op) {
    for (auto& gr : g_grants) {
        Alloc* a = gr.a;
        char* pa = (char*)(a->start + gr.page * PAGE);
        if (gr.mode == 2 && (gr.page == 0 || gr.page + 1 == a->filled.size())) {
            uintptr_t bad;
            if (!canary_ok(a, gr.page, &bad)) {
                if (bad >= a->base + a->size)
                    emu_fatal("wrote past the end of %s (into the alignment slack before the guard page)", alloc_at(a, bad).c_str());
                emu_fatal("wrote before the start of %s", alloc_at(a, bad).c_str());
            }
        }
        if (g_streams_used > 1 && op->kind == OP_KERNEL) {
            Writer w{op_ref(op), 0, {}};
            int wrote = 0;
            if (gr.snap >= 0) {
                const char* old = &g_snaps[gr.snap];
                w.bits.assign(PAGE / 64, 0);
                size_t n = 0;
                for (size_t i = 0; i < PAGE; i++) if (old[i] != pa[i]) { w.bits[i >> 6] |= 1ULL << (i & 63); n++; }
                w.full = n == PAGE;
                if (w.full) w.bits.clear();
                wrote = n > 0;
            }
            page_access(a, gr.page, 1, wrote ? &w : NULL);
        }
        note_use(a, op);
    }
    if (g_streams_used > 1 && op->kind == OP_FN)
        for (auto& rg : op->ranges) {
            if (!rg.bytes || !emu_is_device(rg.p, rg.bytes)) continue;
            Alloc* a = find_alloc((uintptr_t)rg.p);
            uintptr_t lo = (uintptr_t)rg.p, hi = lo + rg.bytes;
            for (size_t pg = (lo - a->start) / PAGE; a->start + pg * PAGE < hi; pg++) {
                uintptr_t plo = a->start + pg * PAGE, phi = plo + PAGE;
                Writer w{op_ref(op), 0, {}};
                if (rg.write) {
                    w.full = lo <= plo && hi >= phi;
                    if (!w.full) { w.bits.assign(PAGE / 64, 0); set_bits(w.bits, std::max(lo, plo) - plo, std::min(hi, phi) - plo); }
                }
                page_access(a, pg, !rg.write, rg.write ? &w : NULL);
            }
        }
    // revoke, one call per run of pages
    for (auto& gr : g_grants) gr.a->grant_at[gr.page] = -1;
    for (size_t i = 0; i < g_grants.size();) {
        size_t j = i + 1;
        while (j < g_grants.size() && g_grants[j].a == g_grants[i].a && g_grants[j].page == g_grants[j - 1].page + 1) j++;
        Alloc* a = g_grants[i].a;
        mprotect((void*)(a->start + g_grants[i].page * PAGE), (j - i) * PAGE, PROT_NONE);
        i = j;
    }
    g_grants.clear();
    g_snaps.clear();
}

// a declared range of a copy or library op: checked and opened for the op
static void grant_range(const EmuRange& r) {
    if (!r.bytes || !in_va((uintptr_t)r.p)) return; // host/pinned side of a copy
    Alloc* a = find_alloc((uintptr_t)r.p);
    if (!a || a->freed) emu_fatal("uses %s at %p: %s", r.write ? "destination" : "source", r.p, a ? "freed device memory (use after free)" : "not an allocation");
    check_async_lifetime(a, emu_cur_op);
    uintptr_t lo = (uintptr_t)r.p, hi = lo + r.bytes;
    for (size_t pg = (lo - a->start) / PAGE; a->start + pg * PAGE < hi; pg++) {
        if (a->grant_at[pg] >= 0) {
            Grant& gr = g_grants[a->grant_at[pg]];
            if (r.write && gr.mode < 2) gr.mode = 2;
            continue;
        }
        if (!a->filled[pg]) fill_page(a, pg);
        a->grant_at[pg] = (int32_t)g_grants.size();
        g_grants.push_back(Grant{a, pg, r.write ? 2 : 1, -1});
    }
    // one call for the whole range
    uintptr_t plo = a->start + (lo - a->start) / PAGE * PAGE, phi = a->start + ((hi - a->start) + PAGE - 1) / PAGE * PAGE;
    if (r.write) mprotect((void*)plo, phi - plo, PROT_READ | PROT_WRITE);
    else { // a read range must not take back a write grant
        int any_write = 0;
        for (uintptr_t x = plo; x < phi; x += PAGE) any_write |= g_grants[a->grant_at[(x - a->start) / PAGE]].mode == 2;
        if (!any_write) mprotect((void*)plo, phi - plo, PROT_READ);
        else
            for (uintptr_t x = plo; x < phi; x += PAGE)
                if (g_grants[a->grant_at[(x - a->start) / PAGE]].mode < 2) mprotect((void*)x, PAGE, PROT_READ);
    }
}

static void free_check(EmuOp* op) {
    Alloc* a = op->alloc;
    for (size_t s = 0; s < a->last_use.size(); s++)
        if (a->last_use[s] && vc_at(op->vc, (int)s) < a->last_use[s])
            emu_fatal("frees %s while %s uses it with no event or synchronisation ordering that use before the free",
                      alloc_at(a, a->base).c_str(), ref_desc(a->last_use_op[s]).c_str());
}

static void op_run(EmuOp* op) {
    emu_cur_op = op;
    g_device_ctx = 1;
    switch (op->kind) {
        case OP_KERNEL:
            emu_run_grid(&op->grid);
            op->grid.free_fn(op->grid.ctx);
            break;
        case OP_FN:
            for (auto& r : op->ranges) grant_range(r);
            op->fn();
            break;
        case OP_EVENT:
            op->ev->executed = 1;
            op->ev->t_ms = now_ms();
            break;
        case OP_ALLOC: break;
        case OP_FREE:
            free_check(op);
            break;
    }
    g_device_ctx = 0;
    op_end(op);
    if (op->kind == OP_FREE) alloc_release(op->alloc);
    emu_cur_op = NULL;
}

// ----------------------------------------------------------------------------
// streams and the scheduler

static Stream* g_legacy;

static Stream* stream_get(cudaStream_t h, const char* what_) {
    init();
    if (h == 0 || h == cudaStreamLegacy || h == cudaStreamPerThread) return g_legacy;
    Stream* s = (Stream*)h;
    int known = 0;
    for (Stream* t : g_streams) if (t == s) known = 1;
    if (!known) emu_fatal("%s %p is not a stream this program created", what_, (void*)h);
    if (s->destroyed) emu_fatal("%s %p (stream %d) was destroyed by cudaStreamDestroy", what_, (void*)h, s->id);
    return s;
}
void emu_require_stream(cudaStream_t s, const char* what_) { stream_get(s, what_); }

static EmuOp* op_new(int kind, Stream* s, const char* name) {
    EmuOp* op = new EmuOp();
    op->kind = kind;
    op->s = s;
    op->name = name;
    op->file = emu_site.file;
    op->line = emu_site.line;
    return op;
}

// stream order, host synchronisation, the legacy default stream's implicit barriers
static void enqueue(EmuOp* op) {
    Stream* s = op->s;
    vc_join(s->vc, g_host_vc);
    if (s == g_legacy) {
        for (Stream* b : g_streams) if (!(b->flags & cudaStreamNonBlocking)) vc_join(s->vc, b->vc);
    } else if (!(s->flags & cudaStreamNonBlocking)) vc_join(s->vc, g_legacy->vc);
    s->enq++;
    if ((int)s->vc.size() <= s->id) s->vc.resize(s->id + 1, 0);
    s->vc[s->id] = s->enq;
    op->seq = s->enq;
    op->vc = s->vc;
    s->q.push_back(op);
    if (s->enq == 1 && op->kind != OP_EVENT) g_streams_used++;
}

static int op_ready(const EmuOp* op) {
    for (size_t i = 0; i < op->vc.size(); i++) {
        if ((int)i == op->s->id) continue;
        if (g_streams[i]->done < op->vc[i]) return 0;
    }
    return 1;
}

// run ops until every stream i has done target[i] ops, picking among the ready heads by the seed
static void run_until(const VC& target) {
    std::vector<Stream*> ready;
    for (;;) {
        ready.clear();
        int pending = 0;
        for (Stream* s : g_streams) {
            if (s->q.empty() || s->done >= vc_at(target, s->id)) continue;
            pending = 1;
            if (op_ready(s->q.front())) ready.push_back(s);
        }
        if (!pending) return;
        if (ready.empty()) emu_fatal("internal: no stream can progress");
        Stream* s = ready[ready.size() == 1 ? 0 : emu_rand() % ready.size()];
        EmuOp* op = s->q.front();
        s->q.pop_front();
        op_run(op);
        s->done++;
        delete op;
    }
}
static void sync_to(const VC& target) {
    run_until(target);
    vc_join(g_host_vc, target);
}
static VC all_enqueued(void) {
    VC v(g_streams.size(), 0);
    for (Stream* s : g_streams) v[s->id] = s->enq;
    return v;
}
static void device_sync(void) { init(); sync_to(all_enqueued()); }
void emu_sync_stream(cudaStream_t h) { Stream* s = stream_get(h, "stream"); sync_to(s->vc); }

void emu_enqueue(cudaStream_t h, const char* name, std::vector<EmuRange> ranges, std::function<void()> fn) {
    Stream* s = stream_get(h, "stream");
    for (auto& r : ranges) if (r.bytes && in_va((uintptr_t)r.p)) emu_require_device(r.p, r.bytes, name);
    EmuOp* op = op_new(OP_FN, s, name);
    op->ranges = std::move(ranges);
    op->fn = std::move(fn);
    enqueue(op);
}

size_t emu_mem_total(void) { init(); return g_mem_total; }
size_t emu_mem_used(void) { return g_mem_used; }

// ----------------------------------------------------------------------------
// the fault handler: grants device pages inside kernels, names every other access

static void on_segv(int sig, siginfo_t* si, void* ucv) {
    ucontext_t* uc = (ucontext_t*)ucv;
    uintptr_t p = (uintptr_t)si->si_addr;
    int write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    const char* rw = write ? "write" : "read";
    if (in_va(p)) {
        Alloc* a = find_alloc(p);
        if (g_device_ctx && emu_cur_op) {
            if (!a) emu_fatal("%s at %p: no device allocation there (a wild pointer)", rw, (void*)p);
            if (a->freed) emu_fatal("%s of freed %s (use after free)", rw, alloc_at(a, p).c_str());
            if (p < a->start) emu_fatal("%s before the start of %s (out of bounds: the guard page)", rw, alloc_at(a, p).c_str());
            if (p >= a->end) emu_fatal("%s past the end of %s (out of bounds: the guard page)", rw, alloc_at(a, p).c_str());
            if (emu_cur_op->kind != OP_KERNEL)
                emu_fatal("%s of %s outside the ranges this op declared", rw, alloc_at(a, p).c_str());
            check_async_lifetime(a, emu_cur_op);
            grant(a, (p - a->start) / PAGE, write ? 2 : 1);
            return;
        }
        std::string last = site_str(emu_site);
        fflush(stdout);
        if (a) fprintf(stderr, "emu: error: host code: %s of device memory %s%s, outside any kernel or copy (last CUDA call: %s)\n", rw,
                       alloc_at(a, p).c_str(), a->freed ? " (freed)" : "", last.c_str());
        else fprintf(stderr, "emu: error: host code: %s of device address %p, a guard page (last CUDA call: %s)\n", rw, (void*)p, last.c_str());
        _exit(EMU_EXIT);
    }
    if (emu_stack_guard_hit((void*)p)) emu_fatal("thread stack overflow (more than 256 KiB of locals)");
    signal(sig, SIG_DFL); // a plain crash: let it happen as without the emulation
}

// ----------------------------------------------------------------------------
// startup, exit

static void at_exit(void) {
    device_sync();
    for (Alloc* a : g_allocs) {
        if (a->freed || a->pinned) continue;
        uintptr_t bad;
        for (size_t pg = 0; pg < a->filled.size(); pg += std::max<size_t>(1, a->filled.size() - 1)) {
            if (!a->filled[pg]) continue;
            mprotect((void*)(a->start + pg * PAGE), PAGE, PROT_READ);
            if (!canary_ok(a, pg, &bad))
                emu_fatal("at exit: the bytes after (or before) %s were overwritten (offset %lld)", alloc_at(a, a->base).c_str(),
                          (long long)(bad - a->base));
            mprotect((void*)(a->start + pg * PAGE), PAGE, PROT_NONE);
        }
    }
    const char* rep = getenv("EMU_MEM_REPORT");
    if (rep && atoi(rep)) {
        fprintf(stderr, "emu: memory: peak %.3f MiB of %.0f MiB; by name (peak bytes, bytes now: exact, for the plan check):\n", g_mem_peak / 1048576.0, g_mem_total / 1048576.0);
        for (auto& e : g_mem_by_name) fprintf(stderr, "emu: memory: %zu %zu %s\n", e.second.second, e.second.first, e.first.c_str());
    }
}

static void init(void) {
    static int done;
    if (done) return;
    done = 1;
    const char* s = getenv("EMU_SEED");
    emu_seed = s ? strtoull(s, NULL, 10) : 0;
    const char* gb = getenv("EMU_MEM_GB");
    double g = gb ? atof(gb) : 80.0;
    if (!(g > 0)) { fprintf(stderr, "emu: error: EMU_MEM_GB=%s: give the card size in GB, e.g. EMU_MEM_GB=24\n", gb); _exit(EMU_EXIT); }
    g_mem_total = (size_t)(g * 1e9);
    // never reused: room for many times the card, in address space only
    for (g_va_size = (size_t)1 << 43; g_va_size >= ((size_t)1 << 36); g_va_size >>= 1) {
        void* v = mmap(NULL, g_va_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (v != MAP_FAILED) { g_va = (char*)v; break; }
    }
    if (!g_va) { fprintf(stderr, "emu: error: cannot reserve address space for the emulated device memory\n"); _exit(EMU_EXIT); }
    g_va_next = PAGE; // the first allocation's front guard
    static char altstack[1 << 16];
    stack_t ss = {};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, NULL);
    struct sigaction sa = {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    g_legacy = new Stream();
    g_legacy->id = 0;
    g_streams.push_back(g_legacy);
    atexit(at_exit);
}

// ----------------------------------------------------------------------------
// launches

int emu_launch_check(const EmuLaunch* L) {
    init();
    emu_site = EmuSite{L->name, L->file, L->line};
    stream_get(L->stream, "the launch's stream");
    dim3 g = L->grid, b = L->block;
    const char* why = NULL;
    cudaError_t e = cudaErrorInvalidConfiguration;
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (!g.x || !g.y || !g.z) why = "a grid dimension is 0";
    else if (!b.x || !b.y || !b.z) why = "a block dimension is 0";
    else if (threads > 1024) why = "more than 1024 threads a block";
    else if (b.x > 1024 || b.y > 1024 || b.z > 64) why = "a block dimension over its limit (1024, 1024, 64)";
    else if (g.x > 2147483647u || g.y > 65535 || g.z > 65535) why = "a grid dimension over its limit (2^31-1, 65535, 65535)";
    else if (L->smem > 48 * 1024) { why = "more than 48 KiB of dynamic shared memory (cudaFuncSetAttribute not modelled)"; e = cudaErrorInvalidValue; }
    if (!why) return 1;
    char msg[300];
    snprintf(msg, sizeof msg, "kernel %s<<<(%u,%u,%u), (%u,%u,%u), %zu>>> launched at %s:%d", L->name, g.x, g.y, g.z, b.x, b.y, b.z, L->smem, L->file, L->line);
    fflush(stdout);
    fprintf(stderr, "emu: error: %s: refused (%s): %s, as a real GPU refuses it\n", msg, why, cudaGetErrorName(e));
    g_last_error = e;
    return 0;
}

void emu_launch_check_ptr(const EmuLaunch* L, int index, const void* p) {
    EmuPtrKind k = emu_ptr_kind(p);
    if (k == EMU_PTR_HOST || k == EMU_PTR_FREED)
        emu_fatal("kernel argument %d (%p) is %s%s", index, p, kind_word(k),
                  k == EMU_PTR_HOST ? ", which a kernel cannot read (copy it to the device, or use cudaMallocHost)" : " (use after free)");
    (void)L;
}

void emu_launch_enqueue(const EmuLaunch* L, void (*thread_fn)(void*), void* ctx, void (*free_fn)(void*)) {
    EmuOp* op = op_new(OP_KERNEL, stream_get(L->stream, "stream"), L->name);
    op->file = L->file;
    op->line = L->line;
    op->grid = EmuGrid{*L, thread_fn, ctx, free_fn};
    enqueue(op);
    const char* lb = getenv("CUDA_LAUNCH_BLOCKING");
    if (lb && atoi(lb)) device_sync();
}

// ----------------------------------------------------------------------------
// the runtime API: memory

cudaError_t emu_cudaMalloc_named(void** p, size_t bytes, const char* name) {
    init();
    if (!p) return ret(cudaErrorInvalidValue);
    *p = NULL;
    if (bytes == 0) return cudaSuccess;
    if (bytes > g_mem_total - std::min(g_mem_total, g_mem_used)) return ret(cudaErrorMemoryAllocation);
    Alloc* a = alloc_new(bytes, name);
    if (!a) return ret(cudaErrorMemoryAllocation);
    *p = (void*)a->base;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) { return emu_cudaMalloc_named(p, bytes, NULL); }

cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t h) {
    Stream* s = stream_get(h, "stream");
    cudaError_t e = emu_cudaMalloc_named(p, bytes, NULL);
    if (e != cudaSuccess || !*p) return e;
    Alloc* a = find_alloc((uintptr_t)*p);
    EmuOp* op = op_new(OP_ALLOC, s, "cudaMallocAsync");
    op->alloc = a;
    enqueue(op);
    a->async_stream = s->id;
    a->async_seq = op->seq;
    return cudaSuccess;
}

static Alloc* alloc_for_free(void* p, const char* call) {
    uintptr_t u = (uintptr_t)p;
    Alloc* a = in_va(u) ? find_alloc(u) : NULL;
    if (!a || u != a->base) {
        if (a) emu_fatal("%s of %s: not the pointer cudaMalloc returned", call, alloc_at(a, u).c_str());
        emu_fatal("%s(%p): %s, not a device allocation", call, p, kind_word(emu_ptr_kind(p)));
    }
    if (a->freed || a->free_enqueued) emu_fatal("%s of %s, which is already freed (double free)", call, alloc_at(a, u).c_str());
    return a;
}

cudaError_t cudaFree(void* p) {
    init();
    if (!p) return cudaSuccess;
    Alloc* a = alloc_for_free(p, "cudaFree");
    device_sync(); // cudaFree synchronises the device
    alloc_release(a);
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* p, cudaStream_t h) {
    Stream* s = stream_get(h, "stream");
    if (!p) return cudaSuccess;
    Alloc* a = alloc_for_free(p, "cudaFreeAsync");
    a->free_enqueued = 1;
    EmuOp* op = op_new(OP_FREE, s, "cudaFreeAsync");
    op->alloc = a;
    enqueue(op);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
    init();
    size_t n = (bytes + PAGE - 1) / PAGE * PAGE;
    if (!n) n = PAGE;
    void* m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return ret(cudaErrorMemoryAllocation);
    memset(m, FILL, n);
    g_pinned[(uintptr_t)m] = n;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
    if (!p) return cudaSuccess;
    auto it = g_pinned.find((uintptr_t)p);
    if (it == g_pinned.end()) emu_fatal("cudaFreeHost(%p): not a pointer cudaMallocHost returned", p);
    device_sync(); // as cudaFree: the device may still copy from it
    munmap(p, it->second);
    g_pinned.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
    init();
    *total_b = g_mem_total;
    *free_b = g_mem_total - std::min(g_mem_total, g_mem_used);
    return cudaSuccess;
}

static const char* kind_name(cudaMemcpyKind k) {
    switch (k) {
        case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
        case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
        case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
        case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
        default: return "cudaMemcpyDefault";
    }
}

// checks one side of a copy: device memory in bounds, or host memory. Returns 1 for device.
static int copy_side(const void* p, size_t n, const char* side, int want_dev, cudaMemcpyKind kind) {
    EmuPtrKind k = emu_ptr_kind(p);
    if (k == EMU_PTR_NULL) emu_fatal("the %s is NULL", side);
    if (k == EMU_PTR_FREED || k == EMU_PTR_GUARD) emu_require_device(p, n, side);
    int dev = k == EMU_PTR_DEVICE;
    if (want_dev >= 0 && dev != want_dev)
        emu_fatal("%s, but the %s (%p) is %s", kind_name(kind), side, p, dev ? (std::string("device memory ") + alloc_at(find_alloc((uintptr_t)p), (uintptr_t)p)).c_str() : kind_word(k));
    if (dev) emu_require_device(p, n, side);
    return dev;
}

// the copy as an op on stream s; host sources are staged now where the API promises the host
// buffer may be reused when the call returns (pageable, or any with the synchronous cudaMemcpy),
// else (cudaMemcpyAsync from pinned memory) read when the op runs
static void copy_enqueue(void* dst, const void* src, size_t n, Stream* s, const char* name, int dd, int sd, int sync) {
    std::vector<EmuRange> r;
    if (dd) r.push_back(EmuRange{dst, n, 1});
    if (sd) r.push_back(EmuRange{src, n, 0});
    std::function<void()> fn;
    if (!sd && (sync || emu_ptr_kind(src) == EMU_PTR_HOST)) {
        auto staged = std::make_shared<std::vector<char>>((const char*)src, (const char*)src + n);
        fn = [dst, staged, n]() { memcpy(dst, staged->data(), n); };
    } else fn = [dst, src, n]() { memmove(dst, src, n); };
    EmuOp* op = op_new(OP_FN, s, name);
    op->ranges = std::move(r);
    op->fn = std::move(fn);
    enqueue(op);
}

static cudaError_t memcpy_common(void* dst, const void* src, size_t n, cudaMemcpyKind kind, Stream* s, int sync, const char* name) {
    if (n == 0) return cudaSuccess;
    int want_d = -1, want_s = -1;
    switch (kind) {
        case cudaMemcpyHostToHost: want_d = 0; want_s = 0; break;
        case cudaMemcpyHostToDevice: want_d = 1; want_s = 0; break;
        case cudaMemcpyDeviceToHost: want_d = 0; want_s = 1; break;
        case cudaMemcpyDeviceToDevice: want_d = 1; want_s = 1; break;
        case cudaMemcpyDefault: break;
        default: return ret(cudaErrorInvalidMemcpyDirection);
    }
    int dd = copy_side(dst, n, "destination", want_d, kind);
    int sd = copy_side(src, n, "source", want_s, kind);
    if (!dd && !sd) { // host to host: in order with the legacy stream's work, synchronously
        if (sync) sync_to(s->vc);
        memmove(dst, src, n);
        return cudaSuccess;
    }
    // API synchronization behavior, cudaMemcpy: "for transfers from pageable host memory to device
    // memory, a stream sync is performed before the copy is initiated"; from pinned memory it is
    // "synchronous with respect to the host": either way the stream's earlier work is done
    if (sync && dd && !sd) sync_to(s->vc);
    copy_enqueue(dst, src, n, s, name, dd, sd, sync);
    // the host sees the result at return: synchronous copies to the host, and async ones to
    // pageable host memory (the API returns after the copy)
    if (!dd && (sync || emu_ptr_kind(dst) == EMU_PTR_HOST)) sync_to(s->vc);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    init();
    return memcpy_common(dst, src, n, kind, g_legacy, 1, "cudaMemcpy");
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t h) {
    Stream* s = stream_get(h, "stream");
    return memcpy_common(dst, src, n, kind, s, 0, "cudaMemcpyAsync");
}

static cudaError_t memset_common(void* p, int v, size_t n, Stream* s, const char* name) {
    if (n == 0) return cudaSuccess;
    emu_require_device(p, n, "the destination");
    EmuOp* op = op_new(OP_FN, s, name);
    op->ranges.push_back(EmuRange{p, n, 1});
    op->fn = [p, v, n]() { memset(p, v, n); };
    enqueue(op);
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) { init(); return memset_common(p, v, n, g_legacy, "cudaMemset"); }
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t h) { return memset_common(p, v, n, stream_get(h, "stream"), "cudaMemsetAsync"); }

// ----------------------------------------------------------------------------
// streams and events

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* h, unsigned flags) {
    init();
    Stream* s = new Stream();
    s->id = (int)g_streams.size();
    s->flags = flags;
    g_streams.push_back(s);
    *h = (cudaStream_t)s;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* h) { return cudaStreamCreateWithFlags(h, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t h) {
    if (h == 0) return ret(cudaErrorInvalidResourceHandle);
    Stream* s = stream_get(h, "stream");
    s->destroyed = 1; // its queued work still runs, as the API promises
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t h) {
    Stream* s = stream_get(h, "stream");
    sync_to(s->vc);
    return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t h) { return cudaStreamSynchronize(h); }

static std::vector<Event*> g_events;
static Event* event_get(cudaEvent_t h) {
    Event* e = (Event*)h;
    int known = 0;
    for (Event* x : g_events) if (x == e) known = 1;
    if (!known) emu_fatal("event %p is not an event this program created", (void*)h);
    if (e->destroyed) emu_fatal("event %p was destroyed by cudaEventDestroy", (void*)h);
    return e;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* h, unsigned flags) {
    init();
    Event* e = new Event();
    e->flags = flags;
    g_events.push_back(e);
    *h = (cudaEvent_t)e;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* h) { return cudaEventCreateWithFlags(h, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t h) { event_get(h)->destroyed = 1; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t h, cudaStream_t sh) {
    Event* e = event_get(h);
    Stream* s = stream_get(sh, "stream");
    EmuOp* op = op_new(OP_EVENT, s, "cudaEventRecord");
    op->ev = e;
    enqueue(op);
    e->recorded = 1;
    e->executed = 0;
    e->stream = s;
    e->seq = op->seq;
    e->vc = op->vc;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t sh, cudaEvent_t h, unsigned flags) {
    Stream* s = stream_get(sh, "stream");
    Event* e = event_get(h);
    if (!e->recorded)
        emu_fatal("waits on an event never recorded (CUDA treats it as complete, so the wait orders nothing: a missing cudaEventRecord?)");
    vc_join(s->vc, e->vc);
    (void)flags;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t h) {
    Event* e = event_get(h);
    if (e->recorded) sync_to(e->vc);
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t h) { return cudaEventSynchronize(h); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    Event* x = event_get(a);
    Event* y = event_get(b);
    if ((x->flags | y->flags) & cudaEventDisableTiming) return ret(cudaErrorInvalidResourceHandle);
    if (!x->recorded || !y->recorded) return ret(cudaErrorInvalidResourceHandle);
    if (!x->executed || !y->executed) return ret(cudaErrorNotReady);
    *ms = (float)(y->t_ms - x->t_ms);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { device_sync(); return cudaSuccess; }

// ----------------------------------------------------------------------------
// errors, the device

cudaError_t cudaGetLastError(void) { cudaError_t e = g_last_error; g_last_error = cudaSuccess; return e; }
cudaError_t cudaPeekAtLastError(void) { return g_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        default: return "cudaErrorUnknown";
    }
}
const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        default: return "unknown error";
    }
}

cudaError_t cudaSetDevice(int d) { init(); return d == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
    init();
    if (d != 0) return ret(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "galore.c CPU emulation of an sm_90 GPU (EMU_SEED=%llu)", (unsigned long long)emu_seed);
    p->totalGlobalMem = g_mem_total;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerBlock = 65536;
    p->regsPerMultiprocessor = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024; p->maxThreadsDim[1] = 1024; p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647; p->maxGridSize[1] = 65535; p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxBlocksPerMultiProcessor = 32;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->memoryPoolsSupported = 1;
    p->canMapHostMemory = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
    init();
    if (d != 0) return ret(cudaErrorInvalidDevice);
    switch (a) {
        case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
        case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
        case cudaDevAttrMultiProcessorCount: *v = 132; break;
        case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
        case cudaDevAttrWarpSize: *v = 32; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *v = 48 * 1024; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 227 * 1024; break;
        case cudaDevAttrMemoryPoolsSupported: *v = 1; break;
        case cudaDevAttrMemoryClockRate: *v = 2619000; break;   // H100 SXM's HBM3, kHz
        case cudaDevAttrGlobalMemoryBusWidth: *v = 5120; break;
        case cudaDevAttrL2CacheSize: *v = 50 * 1024 * 1024; break;
        default: return ret(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

// the default memory pool: one, its attributes stored and reported
static int g_pool_token;
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d) {
    init();
    if (d != 0) return ret(cudaErrorInvalidDevice);
    *pool = (cudaMemPool_t)&g_pool_token;
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v) {
    if (pool != (cudaMemPool_t)&g_pool_token) emu_fatal("not the pool cudaDeviceGetDefaultMemPool returned");
    if (a == cudaMemPoolAttrReleaseThreshold) { g_pool_threshold = (size_t)*(uint64_t*)v; return cudaSuccess; }
    if (a == cudaMemPoolReuseFollowEventDependencies || a == cudaMemPoolReuseAllowOpportunistic || a == cudaMemPoolReuseAllowInternalDependencies)
        return cudaSuccess;
    return ret(cudaErrorInvalidValue);
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr a, void* v) {
    if (pool != (cudaMemPool_t)&g_pool_token) emu_fatal("not the pool cudaDeviceGetDefaultMemPool returned");
    switch (a) {
        case cudaMemPoolAttrReleaseThreshold: *(uint64_t*)v = g_pool_threshold; break;
        case cudaMemPoolAttrReservedMemCurrent: case cudaMemPoolAttrUsedMemCurrent: *(uint64_t*)v = g_mem_used; break;
        case cudaMemPoolAttrReservedMemHigh: case cudaMemPoolAttrUsedMemHigh: *(uint64_t*)v = g_mem_peak; break;
        case cudaMemPoolReuseFollowEventDependencies: case cudaMemPoolReuseAllowOpportunistic: case cudaMemPoolReuseAllowInternalDependencies:
            *(int*)v = 1; break;
        default: return ret(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* f, cudaFuncAttribute a, int v) { (void)f; (void)a; (void)v; return cudaSuccess; }

// The emulated device is one thread. Idle OpenMP threads (the OpenMP OpenBLAS build the GEMMs and
// solvers call, the CPU engine in test_llamacu) spin beside it after every parallel region and
// took the second core from it: one GaLore step of llama_tiny took 128 s, 19 s with one OpenMP
// thread (2-core machine, busy). So one thread unless the user sets OMP_NUM_THREADS.
__attribute__((constructor)) static void emu_omp_one_thread(void) {
    if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);
}
