// emu_solver.cpp: cuSOLVER dense (the calls the program makes) on the CPU through LAPACK, fp32 as
// on the GPU, for the emulated GPU (dev/emu, issue 21).
//
// What it models: each call is a stream-ordered op on the handle's stream (emu_enqueue) declaring
// the device bytes it reads and writes: the matrix, the outputs (S, U, V / VT, tau), the
// workspace (lwork floats, which the op overwrites with NaN: its content after a call is the
// library's scratch, so data kept there shows as NaN) and devInfo, an int in DEVICE memory that
// the program must copy back (stream-ordered) to read. The input A is destroyed (NaN) where the
// documentation says it is (gesvd, gesvdj).
// Buffer sizes: *_bufferSize answers LAPACK's own workspace query (lwork = -1) for the routine
// that does the work (sgesvd for gesvd and gesvdj, the largest over the jobu/jobvt pairs for
// gesvd, whose query has no job argument; sgeqrf; sorgqr). The real cuSOLVER's sizes differ; the
// emulation holds the program to what it queried: a call with lwork below the query for the same
// arguments is refused with CUSOLVER_STATUS_INVALID_VALUE and one line naming the call, the lwork
// given and needed; a work buffer shorter than lwork floats stops at the runtime's bounds check.
// Argument rules as documented: m, n >= 0, lda >= max(1, m), ldu/ldv(t) as the job needs, gesvd
// only for m >= n (the real one supports no other), jobu/jobvt in A/S/O/N and not both O.
// What differs from the real solvers: gesvdj is not Jacobi here but LAPACK's sgesvd (so it always
// converges: info = min(m, n) + 1 never happens, the tolerance and sweep limits are stored and
// ignored, and the singular values come out descending even with sort 0); the signs of singular
// vectors are LAPACK's, which a real card need not match (the program fixes signs itself); the
// residual and sweep counts are not available (the program reads neither).
#include <cusolverDn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <vector>
#include "emu_internal.h"

extern "C" {
void sgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, float* a, const int* lda, float* s, float* u, const int* ldu,
             float* vt, const int* ldvt, float* work, const int* lwork, int* info);
void sgeqrf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work, const int* lwork, int* info);
void sorgqr_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau, float* work, const int* lwork, int* info);
}

struct cusolverDnContext { uint32_t magic; cudaStream_t stream; };
struct gesvdjInfo { uint32_t magic; double tol; int max_sweeps, sort; };
#define SOLVER_MAGIC 0x5017e400u
#define SOLVER_DEAD 0xdead5017u

static cusolverStatus_t solver_check(cusolverDnHandle_t h) {
    if (h == NULL) { emu_warn("NULL handle (CUSOLVER_STATUS_NOT_INITIALIZED)"); return CUSOLVER_STATUS_NOT_INITIALIZED; }
    if (h->magic != SOLVER_MAGIC) emu_fatal("handle %p is %s", (void*)h, h->magic == SOLVER_DEAD ? "destroyed" : "not a cuSOLVER handle");
    emu_require_stream(h->stream, "cuSOLVER stream");
    return CUSOLVER_STATUS_SUCCESS;
}
static cusolverStatus_t solver_invalid(const char* why) {
    emu_warn("%s (CUSOLVER_STATUS_INVALID_VALUE)", why);
    return CUSOLVER_STATUS_INVALID_VALUE;
}
static gesvdjInfo* jinfo(gesvdjInfo_t p) {
    if (p == NULL || p->magic != SOLVER_MAGIC) emu_fatal("gesvdjInfo %p is not live (destroyed, or never created)", (void*)p);
    return p;
}

cusolverStatus_t CUSOLVERAPI cusolverDnCreate(cusolverDnHandle_t* handle) {
    *handle = new cusolverDnContext{SOLVER_MAGIC, 0};
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnDestroy(cusolverDnHandle_t handle) {
    if (handle == NULL || handle->magic != SOLVER_MAGIC) emu_fatal("handle %p is destroyed or invalid", (void*)handle);
    handle->magic = SOLVER_DEAD; // kept, so a later use is named
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t streamId) {
    if (handle == NULL || handle->magic != SOLVER_MAGIC) emu_fatal("handle %p is destroyed or invalid", (void*)handle);
    emu_require_stream(streamId, "cuSOLVER stream");
    handle->stream = streamId;
    return CUSOLVER_STATUS_SUCCESS;
}
// the documented defaults: tolerance machine eps, 100 sweeps, sorted
cusolverStatus_t CUSOLVERAPI cusolverDnCreateGesvdjInfo(gesvdjInfo_t* info) {
    *info = new gesvdjInfo{SOLVER_MAGIC, 0.0, 100, 1};
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info) {
    jinfo(info)->magic = 0;
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnXgesvdjSetTolerance(gesvdjInfo_t info, double tolerance) {
    jinfo(info)->tol = tolerance;
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnXgesvdjSetMaxSweeps(gesvdjInfo_t info, int max_sweeps) {
    jinfo(info)->max_sweeps = max_sweeps;
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t CUSOLVERAPI cusolverDnXgesvdjSetSortEig(gesvdjInfo_t info, int sort_svd) {
    jinfo(info)->sort = sort_svd;
    return CUSOLVER_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------
// workspace queries (LAPACK's, in floats)

static int lapack_lwork(float w) { return (int)ceilf(w); }
static int gesvd_query(char jobu, char jobvt, int m, int n) {
    int lw = -1, info = 0, ld = m > 1 ? m : 1, ldvt = n > 1 ? n : 1;
    float w = 0.0f, dummy = 0.0f;
    sgesvd_(&jobu, &jobvt, &m, &n, &dummy, &ld, &dummy, &dummy, &ld, &dummy, &ldvt, &w, &lw, &info);
    return lapack_lwork(w);
}
static int geqrf_query(int m, int n, int lda) {
    int lw = -1, info = 0;
    float w = 0.0f, dummy = 0.0f;
    sgeqrf_(&m, &n, &dummy, &lda, &dummy, &w, &lw, &info);
    return lapack_lwork(w);
}
static int orgqr_query(int m, int n, int k, int lda) {
    int lw = -1, info = 0;
    float w = 0.0f, dummy = 0.0f;
    sorgqr_(&m, &n, &k, &dummy, &lda, &dummy, &w, &lw, &info);
    return lapack_lwork(w);
}
// gesvd's query has no job: the largest over the valid pairs, so any call fits what was queried
static int gesvd_query_any(int m, int n) {
    const char jobs[4] = {'A', 'S', 'O', 'N'};
    int best = 1;
    for (char u : jobs)
        for (char v : jobs) {
            if (u == 'O' && v == 'O') continue;
            int lw = gesvd_query(u, v, m, n);
            if (lw > best) best = lw;
        }
    return best;
}
static char gesvdj_job(cusolverEigMode_t jobz, int econ) { return jobz == CUSOLVER_EIG_MODE_NOVECTOR ? 'N' : econ ? 'S' : 'A'; }

// lwork given against the query, and the work buffer of lwork floats in device memory
static cusolverStatus_t work_check(const float* work, int lwork, int need) {
    if (lwork < need) {
        char why[160];
        snprintf(why, sizeof why, "lwork %d is smaller than the %d floats its _bufferSize query gives for these arguments", lwork, need);
        return solver_invalid(why);
    }
    if (lwork > 0) emu_require_device(work, (size_t)lwork * sizeof(float), "work");
    return CUSOLVER_STATUS_SUCCESS;
}

static size_t mat_bytes(int rows, int cols, int ld) { return rows > 0 && cols > 0 ? ((size_t)(cols - 1) * ld + rows) * sizeof(float) : 0; }
static void fill_nan(float* p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = NAN; }
static void fill_nan_mat(float* a, int rows, int cols, int ld) {
    for (int j = 0; j < cols; j++) fill_nan(a + (size_t)j * ld, (size_t)rows);
}

// queue an op with its ranges (zero-length ones dropped; each checked and named first)
struct SolverRange { const void* p; size_t bytes; int write; const char* what; };
static void solver_enqueue(cusolverDnHandle_t h, const char* name, std::vector<SolverRange> rs, std::function<void()> fn) {
    std::vector<EmuRange> r;
    for (const SolverRange& x : rs) {
        if (x.bytes == 0) continue;
        emu_require_device(x.p, x.bytes, x.what);
        r.push_back({x.p, x.bytes, x.write});
    }
    emu_enqueue(h->stream, name, r, fn);
}

// ----------------------------------------------------------------------------------------------
// gesvd

cusolverStatus_t CUSOLVERAPI cusolverDnSgesvd_bufferSize(cusolverDnHandle_t handle, int m, int n, int* lwork) {
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    if (m < 0 || n < 0) return solver_invalid("m or n negative");
    // m < n is answered (LAPACK sizes it): the documented m >= n rule is the computation's, checked
    // by cusolverDnSgesvd itself
    *lwork = gesvd_query_any(m, n);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSgesvd(cusolverDnHandle_t handle, signed char jobu, signed char jobvt, int m, int n, float* A, int lda,
                                              float* S, float* U, int ldu, float* VT, int ldvt, float* work, int lwork, float* rwork,
                                              int* info) {
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    char why[200];
    if (m < 0 || n < 0) return solver_invalid("m or n negative");
    if (m < n) {
        snprintf(why, sizeof why, "m %d < n %d: gesvd supports only m >= n; hint: factor the transpose (its U and V^T swap)", m, n);
        return solver_invalid(why);
    }
    if (!strchr("ASON", jobu) || !strchr("ASON", jobvt) || jobu == 0 || jobvt == 0 || (jobu == 'O' && jobvt == 'O'))
        return solver_invalid("jobu / jobvt must be 'A', 'S', 'O' or 'N', not both 'O'");
    int k = m < n ? m : n;
    int ucols = jobu == 'A' ? m : jobu == 'S' ? k : 0, vtrows = jobvt == 'A' ? n : jobvt == 'S' ? k : 0;
    if (lda < (m > 1 ? m : 1)) { snprintf(why, sizeof why, "lda %d < max(1, m %d)", lda, m); return solver_invalid(why); }
    if (ucols > 0 && ldu < (m > 1 ? m : 1)) { snprintf(why, sizeof why, "ldu %d < m %d with jobu '%c'", ldu, m, jobu); return solver_invalid(why); }
    if (vtrows > 0 && ldvt < (vtrows > 1 ? vtrows : 1)) {
        snprintf(why, sizeof why, "ldvt %d < %d with jobvt '%c'", ldvt, vtrows, jobvt);
        return solver_invalid(why);
    }
    if ((st = work_check(work, lwork, gesvd_query_any(m, n))) != CUSOLVER_STATUS_SUCCESS) return st;
    int ldu_l = ucols > 0 ? ldu : 1, ldvt_l = vtrows > 0 ? ldvt : 1;
    solver_enqueue(handle, "cusolverDnSgesvd",
                   {{A, mat_bytes(m, n, lda), 1, "A"}, {S, (size_t)k * sizeof(float), 1, "S"}, {U, mat_bytes(m, ucols, ldu), 1, "U"},
                    {VT, mat_bytes(vtrows, n, ldvt), 1, "VT"}, {work, (size_t)lwork * sizeof(float), 1, "work"},
                    {rwork, rwork && k > 1 ? (size_t)(k - 1) * sizeof(float) : 0, 1, "rwork"}, {info, sizeof(int), 1, "devInfo"}},
                   [=]() {
                       std::vector<float> w((size_t)lwork > 1 ? (size_t)lwork : 1);
                       int lw = (int)w.size(), inf = 0, mm = m, nn = n, la = lda, lu = ldu_l, lv = ldvt_l;
                       char ju = (char)jobu, jv = (char)jobvt;
                       sgesvd_(&ju, &jv, &mm, &nn, A, &la, S, U, &lu, VT, &lv, w.data(), &lw, &inf);
                       // LAPACK's work(2:k): the unconverged superdiagonal, as the real rwork
                       if (rwork) for (int i = 0; i + 1 < k; i++) rwork[i] = w[(size_t)i + 1];
                       if (jobu != 'O' && jobvt != 'O') fill_nan_mat(A, m, n, lda); // destroyed, as documented
                       fill_nan(work, (size_t)lwork);
                       *info = inf;
                   });
    return CUSOLVER_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------
// gesvdj (LAPACK's sgesvd underneath: see the header)

static cusolverStatus_t gesvdj_args(cusolverEigMode_t jobz, int econ, int m, int n, int lda, int ldu, int ldv) {
    char why[160];
    if (jobz != CUSOLVER_EIG_MODE_NOVECTOR && jobz != CUSOLVER_EIG_MODE_VECTOR) return solver_invalid("jobz must be NOVECTOR or VECTOR");
    if (econ != 0 && econ != 1) return solver_invalid("econ must be 0 or 1");
    if (m < 0 || n < 0) return solver_invalid("m or n negative");
    if (lda < (m > 1 ? m : 1)) { snprintf(why, sizeof why, "lda %d < max(1, m %d)", lda, m); return solver_invalid(why); }
    if (jobz == CUSOLVER_EIG_MODE_VECTOR && ldu < (m > 1 ? m : 1)) { snprintf(why, sizeof why, "ldu %d < max(1, m %d)", ldu, m); return solver_invalid(why); }
    if (jobz == CUSOLVER_EIG_MODE_VECTOR && ldv < (n > 1 ? n : 1)) { snprintf(why, sizeof why, "ldv %d < max(1, n %d)", ldv, n); return solver_invalid(why); }
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int econ, int m, int n,
                                                          const float* A, int lda, const float* S, const float* U, int ldu,
                                                          const float* V, int ldv, int* lwork, gesvdjInfo_t params) {
    (void)A; (void)S; (void)U; (void)V;
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    jinfo(params);
    if ((st = gesvdj_args(jobz, econ, m, n, lda, ldu, ldv)) != CUSOLVER_STATUS_SUCCESS) return st;
    char job = gesvdj_job(jobz, econ);
    *lwork = gesvd_query(job, job, m, n);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSgesvdj(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int econ, int m, int n, float* A, int lda,
                                               float* S, float* U, int ldu, float* V, int ldv, float* work, int lwork, int* info,
                                               gesvdjInfo_t params) {
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    jinfo(params);
    if ((st = gesvdj_args(jobz, econ, m, n, lda, ldu, ldv)) != CUSOLVER_STATUS_SUCCESS) return st;
    char job = gesvdj_job(jobz, econ);
    if ((st = work_check(work, lwork, gesvd_query(job, job, m, n))) != CUSOLVER_STATUS_SUCCESS) return st;
    int k = m < n ? m : n, vec = job != 'N';
    int ucols = !vec ? 0 : econ ? k : m, vcols = !vec ? 0 : econ ? k : n;
    solver_enqueue(handle, "cusolverDnSgesvdj",
                   {{A, mat_bytes(m, n, lda), 1, "A"}, {S, (size_t)k * sizeof(float), 1, "S"}, {U, mat_bytes(m, ucols, ldu), 1, "U"},
                    {V, mat_bytes(n, vcols, ldv), 1, "V"}, {work, (size_t)lwork * sizeof(float), 1, "work"}, {info, sizeof(int), 1, "devInfo"}},
                   [=]() {
                       std::vector<float> w((size_t)lwork > 1 ? (size_t)lwork : 1), vt((size_t)(vcols > 0 ? vcols : 1) * (n > 0 ? n : 1));
                       int lw = (int)w.size(), inf = 0, mm = m, nn = n, la = lda, lu = vec ? ldu : 1, lv = vcols > 0 ? vcols : 1;
                       char jb = job;
                       sgesvd_(&jb, &jb, &mm, &nn, A, &la, S, U, &lu, vt.data(), &lv, w.data(), &lw, &inf);
                       // V (n x vcols, ldv) = (V^T)^T
                       for (int j = 0; j < vcols; j++)
                           for (int i = 0; i < n; i++) V[(size_t)j * ldv + i] = vt[(size_t)i * vcols + j];
                       fill_nan_mat(A, m, n, lda); // destroyed, as documented
                       fill_nan(work, (size_t)lwork);
                       // LAPACK's "not converged" as gesvdj reports it
                       *info = inf > 0 ? k + 1 : inf;
                   });
    return CUSOLVER_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------
// geqrf / orgqr

static cusolverStatus_t qr_args(int m, int n, int k, int lda, int orgqr) {
    char why[160];
    if (m < 0 || n < 0 || k < 0) return solver_invalid("m, n or k negative");
    if (lda < (m > 1 ? m : 1)) { snprintf(why, sizeof why, "lda %d < max(1, m %d)", lda, m); return solver_invalid(why); }
    if (orgqr && (n > m || k > n)) { snprintf(why, sizeof why, "orgqr needs m >= n >= k, got m %d, n %d, k %d", m, n, k); return solver_invalid(why); }
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, float* A, int lda, int* lwork) {
    (void)A;
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = qr_args(m, n, 0, lda, 0)) != CUSOLVER_STATUS_SUCCESS) return st;
    *lwork = geqrf_query(m, n, lda);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSgeqrf(cusolverDnHandle_t handle, int m, int n, float* A, int lda, float* TAU, float* Workspace, int Lwork,
                                              int* devInfo) {
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = qr_args(m, n, 0, lda, 0)) != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = work_check(Workspace, Lwork, geqrf_query(m, n, lda))) != CUSOLVER_STATUS_SUCCESS) return st;
    int k = m < n ? m : n;
    solver_enqueue(handle, "cusolverDnSgeqrf",
                   {{A, mat_bytes(m, n, lda), 1, "A"}, {TAU, (size_t)k * sizeof(float), 1, "TAU"},
                    {Workspace, (size_t)Lwork * sizeof(float), 1, "Workspace"}, {devInfo, sizeof(int), 1, "devInfo"}},
                   [=]() {
                       std::vector<float> w((size_t)Lwork > 1 ? (size_t)Lwork : 1);
                       int lw = (int)w.size(), inf = 0, mm = m, nn = n, la = lda;
                       sgeqrf_(&mm, &nn, A, &la, TAU, w.data(), &lw, &inf);
                       fill_nan(Workspace, (size_t)Lwork);
                       *devInfo = inf;
                   });
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k, const float* A, int lda,
                                                         const float* tau, int* lwork) {
    (void)A; (void)tau;
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = qr_args(m, n, k, lda, 1)) != CUSOLVER_STATUS_SUCCESS) return st;
    *lwork = orgqr_query(m, n, k, lda);
    return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t CUSOLVERAPI cusolverDnSorgqr(cusolverDnHandle_t handle, int m, int n, int k, float* A, int lda, const float* tau, float* work,
                                              int lwork, int* info) {
    cusolverStatus_t st = solver_check(handle);
    if (st != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = qr_args(m, n, k, lda, 1)) != CUSOLVER_STATUS_SUCCESS) return st;
    if ((st = work_check(work, lwork, orgqr_query(m, n, k, lda))) != CUSOLVER_STATUS_SUCCESS) return st;
    solver_enqueue(handle, "cusolverDnSorgqr",
                   {{A, mat_bytes(m, n, lda), 1, "A"}, {tau, (size_t)k * sizeof(float), 0, "tau"},
                    {work, (size_t)lwork * sizeof(float), 1, "work"}, {info, sizeof(int), 1, "devInfo"}},
                   [=]() {
                       std::vector<float> w((size_t)lwork > 1 ? (size_t)lwork : 1);
                       int lw = (int)w.size(), inf = 0, mm = m, nn = n, kk = k, la = lda;
                       sorgqr_(&mm, &nn, &kk, A, &la, tau, w.data(), &lw, &inf);
                       fill_nan(work, (size_t)lwork);
                       *info = inf;
                   });
    return CUSOLVER_STATUS_SUCCESS;
}
