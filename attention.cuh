// attention.cuh: causal grouped-query attention forward/backward on the GPU for the fused qkv
// layout of train_llama.c. Two implementations, picked once in attention_init:
//  (1) cuDNN 9 fused flash attention through the backend graph API. cuDNN 9.19's native
//      CUDNN_BACKEND_OPERATION_SDPA_FWD/BWD descriptors cannot express a causal mask (that needs
//      the score-modifier subgraph of cuDNN >= 9.21), so we build the "composite" operation graph
//      (matmul, pointwise, reduction, reshape) that cudnn-frontend lowers sdpa()/sdpa_backward()
//      to on these versions; cuDNN's runtime fusion recognises it as flash attention and runs one
//      fused kernel. q/k/v/o and their gradients are 4-D strided views of the fused buffers:
//      no copies.
//  (2) a fallback: cuBLAS strided-batched GEMMs (bf16 in, fp32 compute) plus softmax
//      forward/backward kernels (fp32 math, causal mask, deterministic). It saves the (B,NH,T,T)
//      probabilities in bf16 for backward.
// If cuDNN cannot build both plans (no engine for this GPU/shape, head dim, old cuDNN, ...) we
// print ONE line "attention: cuDNN SDPA unavailable (<reason>): using the cuBLAS fallback".
// Backward: cuDNN's deterministic form (dQ from the dP workspace) is tried first; where no engine
// runs it, the dQ-accumulator form (fp32 atomics: NOT bitwise reproducible run to run), said in
// one line. ATTN_DETERMINISTIC (bitwise comparisons: the tests, --attn-fallback 2) takes the
// fallback instead of the accumulator form. attention_path(ctx) names what runs, for the logs.
//
// Layout (all bf16, row-major): qkv (B,T,C+2KV) holds q heads [0,C), k heads [C,C+KV), v heads
// [C+KV,C+2KV), each head's HD contiguous; C = NH*HD (the query width: hidden_size unless
// config.json's head_dim says otherwise), KV = NKV*HD. out (B,T,C); dqkv like qkv.
// Query head h reads kv head h/(NH/NKV) (HF repeat_kv). Scale 1/sqrt(HD).
//
// API (the caller keeps one "saved" buffer per layer for backward):
//   attention_init(ctx, cudnn, cublas, B, T, NH, NKV, HD, mode)
//       mode ATTN_AUTO (0), ATTN_FALLBACK (1: cuBLAS only) or ATTN_DETERMINISTIC (2: cuDNN only
//       with a deterministic backward); builds and caches the plans, allocates the workspace
//       (attention_workspace_bytes).
//   attention_path(ctx)  "cuDNN SDPA ..., backward deterministic|dQ-accumulator" or "cuBLAS fallback ..."
//       with the causal mask's value: one line for the logs and the tests' messages
//   attention_saved_bytes(ctx)  / attention_activation_bytes(B, T, NH, HD, use_cudnn)
//       bytes of one layer's saved tensor: cuDNN: softmax stats (B,NH,T) fp32 (logsumexp of the
//       scaled scores); fallback: probabilities (B,NH,T,T) bf16.
//   attention_forward(ctx, out, saved_or_NULL, qkv, stream)
//       writes out and (if saved != NULL) this layer's saved tensor. NULL: inference only.
//   attention_backward(ctx, dqkv, dout, out, qkv, saved, stream)
//       overwrites all of dqkv; saved is the buffer forward filled for the same qkv.
//   attention_free(ctx)
// Calls on one ctx must not overlap (one workspace); the stream is set on the handles per call.
#ifndef ATTENTION_CUH
#define ATTENTION_CUH

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cudnn.h>

#ifndef FLOATX_DEFINED
#define FLOATX_DEFINED
typedef __nv_bfloat16 floatX;
#endif

// ----------------------------------------------------------------------------------------------
// checks (own names so they cannot clash with cuda_common.cuh)

static void attn_cuda_check(cudaError_t e, const char* what, const char* file, int line) {
    if (e != cudaSuccess) {
        fflush(stdout);
        fprintf(stderr, "error: CUDA: %s: %s (%s:%d); hint: %s\n", what, cudaGetErrorString(e), file, line,
                e == cudaErrorMemoryAllocation ? "out of GPU memory: lower --batch or use --recompute 1"
                                               : "run compute-sanitizer on this binary to find the failing kernel");
        exit(EXIT_FAILURE);
    }
}
#define ATTN_CUDA_CHECK(call) attn_cuda_check((call), #call, __FILE__, __LINE__)

static void attn_cublas_check(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        fflush(stdout);
        fprintf(stderr, "error: cuBLAS: %s: status %d (%s) (%s:%d); hint: check the shapes passed to attention_init "
                        "and that the cuBLAS handle is valid\n", what, (int)s, cublasGetStatusString(s), file, line);
        exit(EXIT_FAILURE);
    }
}
#define ATTN_CUBLAS_CHECK(call) attn_cublas_check((call), #call, __FILE__, __LINE__)

static void attn_cudnn_check(cudnnStatus_t s, const char* what, const char* file, int line) {
    if (s != CUDNN_STATUS_SUCCESS) {
        char msg[512]; msg[0] = 0;
        cudnnGetLastErrorString(msg, sizeof(msg));
        char* nl = strchr(msg, '\n'); if (nl) *nl = 0;
        fflush(stdout);
        fprintf(stderr, "error: cuDNN: %s: %s [%s] (%s:%d); hint: --attn-fallback 1 (attention_init's ATTN_FALLBACK) "
                        "uses the cuBLAS path; CUDNN_LOGERR_DBG=1 CUDNN_LOGDEST_DBG=stderr prints cuDNN's reason\n",
                what, cudnnGetErrorString(s), msg, file, line);
        exit(EXIT_FAILURE);
    }
}
#define ATTN_CUDNN_CHECK(call) attn_cudnn_check((call), #call, __FILE__, __LINE__)

// ----------------------------------------------------------------------------------------------
// context

// attention_init's mode (--attn-fallback's values)
enum { ATTN_AUTO = 0, ATTN_FALLBACK = 1, ATTN_DETERMINISTIC = 2 };

#define ATTN_MAX_DESCS 192
#define ATTN_MAX_OPS 48

// one cuDNN operation graph + its execution plan; every descriptor is kept until attention_free
typedef struct {
    cudnnBackendDescriptor_t descs[ATTN_MAX_DESCS]; // all descriptors created, destroyed in reverse
    int ndescs;
    cudnnBackendDescriptor_t ops[ATTN_MAX_OPS];     // operations, in graph order
    int nops;
    cudnnBackendDescriptor_t plan;                  // finalized execution plan (NULL until built)
    int64_t plan_ws;                                // plan workspace bytes
    int64_t next_vuid;                              // next uid for a virtual tensor
    int deterministic;                              // chosen engine has no NONDETERMINISTIC note
    int failed;                                     // first failure recorded in why
    char why[240];
} AttnGraph;

typedef struct {
    int B, T, NH, NKV, HD;
    int use_cudnn;          // 1: cuDNN fused path, 0: cuBLAS fallback
    int bwd_deterministic;  // 1 if backward is bitwise reproducible run to run
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    float scale;            // 1/sqrt(HD), bound by value
    float mask_value;       // -FLT_MAX, as cudnn-frontend's causal mask before cuDNN 9.10 (-inf after:
                            // the same zeros, since exp(-FLT_MAX - rowmax) underflows to 0 in fp32 and
                            // a causal row always keeps its finite diagonal)
    int mode;               // ATTN_AUTO / ATTN_FALLBACK / ATTN_DETERMINISTIC as asked
    char why_fallback[300]; // why cuDNN is not used ("" when it is, or when the fallback was asked)
    float one;              // 1.0 for the softmax_sum chain
    // cuDNN
    AttnGraph fwd, bwd;
    int bwd_dq_accum;       // backward graph writes dQ through an fp32 accumulator in the workspace
    size_t off_stats;       // workspace offset of a (B,NH,T) fp32 stats scratch (forward without saved)
    size_t off_softmax_sum; // workspace offset of softmax_sum (B,NH,T) fp32 (backward)
    size_t off_dq_accum;    // workspace offset of dQ_accum (B,NH,T,HD) fp32 (backward)
    // fallback (per batch row b at a time)
    size_t off_scores;      // (NH,T,T) fp32: scores / dP
    size_t off_dscores;     // (NH,T,T) bf16: dS, or P when forward has no saved buffer
    size_t off_qperm;       // (B,NH,T,HD) bf16: q permuted so a kv group's rows are contiguous
    size_t off_doperm;      // (B,NH,T,HD) bf16: dout permuted likewise
    // workspace
    void* workspace;
    size_t workspace_bytes;
} AttnCtx;

static size_t attention_activation_bytes(int B, int T, int NH, int HD, int use_cudnn) {
    (void)HD;
    if (use_cudnn) return (size_t)B * NH * T * sizeof(float);
    return (size_t)B * NH * T * (size_t)T * sizeof(floatX);
}
static size_t attention_saved_bytes(const AttnCtx* ctx) {
    return attention_activation_bytes(ctx->B, ctx->T, ctx->NH, ctx->HD, ctx->use_cudnn);
}
static size_t attention_workspace_bytes(const AttnCtx* ctx) { return ctx->workspace_bytes; }

// ----------------------------------------------------------------------------------------------
// cuDNN graph building. Failures are recorded, not fatal: they send us to the fallback.

// deprecated in the 9.x headers (so a plain use warns) but still required by the backend
#define ATTN_ATTR_OPERATIONGRAPH_HANDLE ((cudnnBackendAttributeName_t)800)
#define ATTN_ATTR_EXECUTION_PLAN_HANDLE ((cudnnBackendAttributeName_t)400)

static void attn_graph_fail(AttnGraph* g, const char* step, cudnnStatus_t s) {
    if (g->failed) return;
    g->failed = 1;
    char msg[512]; msg[0] = 0;
    cudnnGetLastErrorString(msg, sizeof(msg));
    char* nl = strchr(msg, '\n'); if (nl) *nl = 0;
    if (strlen(msg) > 100) { msg[100] = 0; }
    snprintf(g->why, sizeof(g->why), "%s: %s%s%s", step, cudnnGetErrorString(s), msg[0] ? ": " : "", msg);
}

static cudnnBackendDescriptor_t attn_desc(AttnGraph* g, cudnnBackendDescriptorType_t type, const char* step) {
    if (g->failed) return NULL;
    if (g->ndescs >= ATTN_MAX_DESCS) { g->failed = 1; snprintf(g->why, sizeof(g->why), "%s: too many descriptors", step); return NULL; }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(type, &d);
    if (s != CUDNN_STATUS_SUCCESS) { attn_graph_fail(g, step, s); return NULL; }
    g->descs[g->ndescs++] = d;
    return d;
}

static void attn_set(AttnGraph* g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendAttributeType_t type, int64_t n, const void* v, const char* step) {
    if (g->failed || d == NULL) return;
    cudnnStatus_t s = cudnnBackendSetAttribute(d, name, type, n, v);
    if (s != CUDNN_STATUS_SUCCESS) attn_graph_fail(g, step, s);
}

static void attn_finalize(AttnGraph* g, cudnnBackendDescriptor_t d, const char* step) {
    if (g->failed || d == NULL) return;
    cudnnStatus_t s = cudnnBackendFinalize(d);
    if (s != CUDNN_STATUS_SUCCESS) attn_graph_fail(g, step, s);
}

// a 4-D tensor; uid < 0 makes a virtual tensor with a fresh uid
static cudnnBackendDescriptor_t attn_tensor(AttnGraph* g, int64_t uid, cudnnDataType_t dt, int64_t d0, int64_t d1,
                                            int64_t d2, int64_t d3, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                                            int by_value) {
    cudnnBackendDescriptor_t t = attn_desc(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    int64_t dims[4] = {d0, d1, d2, d3}, strides[4] = {s0, s1, s2, s3};
    bool is_virtual = uid < 0, is_by_value = by_value != 0;
    if (uid < 0) uid = g->next_vuid++;
    int64_t align = 16;
    attn_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor data type");
    attn_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dims");
    attn_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
    attn_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
    attn_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    attn_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
    if (is_by_value) attn_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &is_by_value, "tensor by value");
    attn_finalize(g, t, "tensor finalize");
    return t;
}

static void attn_add_op(AttnGraph* g, cudnnBackendDescriptor_t op) {
    if (g->failed) return;
    if (g->nops >= ATTN_MAX_OPS) { g->failed = 1; snprintf(g->why, sizeof(g->why), "too many operations"); return; }
    g->ops[g->nops++] = op;
}

// y = mode(x [, b [, t]]); axis >= 0 only for GEN_INDEX
static void attn_pointwise(AttnGraph* g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                           cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                           int64_t axis) {
    cudnnBackendDescriptor_t pw = attn_desc(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    attn_set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    attn_set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (axis >= 0) attn_set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    attn_finalize(g, pw, "pointwise finalize");
    cudnnBackendDescriptor_t op = attn_desc(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    attn_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pointwise op desc");
    attn_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pointwise x");
    if (b) attn_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "pointwise b");
    if (t) attn_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "pointwise t");
    attn_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pointwise y");
    attn_finalize(g, op, "pointwise op finalize");
    attn_add_op(g, op);
}

static void attn_reduction(AttnGraph* g, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = attn_desc(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
    attn_set(g, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction operator");
    attn_set(g, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction precision");
    attn_finalize(g, rd, "reduction finalize");
    cudnnBackendDescriptor_t op = attn_desc(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    attn_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, "reduction op desc");
    attn_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction x");
    attn_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction y");
    attn_finalize(g, op, "reduction op finalize");
    attn_add_op(g, op);
}

// c = a @ b over the last two dims, batched over the first two (fp32 accumulation)
static void attn_matmul(AttnGraph* g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t md = attn_desc(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
    attn_set(g, md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul precision");
    attn_finalize(g, md, "matmul finalize");
    cudnnBackendDescriptor_t op = attn_desc(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    attn_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul a");
    attn_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul b");
    attn_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul c");
    attn_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md, "matmul op desc");
    attn_finalize(g, op, "matmul op finalize");
    attn_add_op(g, op);
}

// y = x viewed with other dims/strides (used as a transpose)
static void attn_reshape(AttnGraph* g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = attn_desc(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape op");
    attn_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape x");
    attn_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape y");
    attn_finalize(g, op, "reshape op finalize");
    attn_add_op(g, op);
}

// does the engine of this engine config carry the NONDETERMINISTIC numerical note?
static int attn_cfg_nondeterministic(cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng = NULL;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return 1;
    int64_t n = 0;
    int nondet = 1; // unknown counts as non-deterministic
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) == CUDNN_STATUS_SUCCESS) {
        cudnnBackendNumericalNote_t notes[32];
        n = 0;
        if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, 32, &n, notes) == CUDNN_STATUS_SUCCESS) {
            nondet = 0;
            for (int64_t i = 0; i < n && i < 32; i++) if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) nondet = 1;
        }
    }
    cudnnBackendDestroyDescriptor(eng);
    return nondet;
}

// operation graph -> heuristics (mode A) -> the first engine config whose plan finalizes.
// need_deterministic: skip configs noted NONDETERMINISTIC.
static void attn_graph_plan(AttnGraph* g, cudnnHandle_t handle, int need_deterministic) {
    if (g->failed) return;
    cudnnBackendDescriptor_t og = attn_desc(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    attn_set(g, og, ATTN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "operation graph handle");
    attn_set(g, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops, "operation graph ops");
    attn_finalize(g, og, "operation graph finalize");
    cudnnBackendDescriptor_t heur = attn_desc(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    attn_set(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og, "heuristics graph");
    attn_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
    attn_finalize(g, heur, "heuristics finalize");
    if (g->failed) return;
    int64_t count = 0;
    cudnnStatus_t s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL);
    if (s != CUDNN_STATUS_SUCCESS) { attn_graph_fail(g, "heuristics results", s); return; }
    if (count <= 0) { g->failed = 1; snprintf(g->why, sizeof(g->why), "heuristics returned no engine config"); return; }
    if (count > 16) count = 16;
    cudnnBackendDescriptor_t cfgs[16];
    for (int64_t i = 0; i < count; i++) cfgs[i] = attn_desc(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    if (g->failed) return;
    int64_t got = 0;
    s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs);
    if (s != CUDNN_STATUS_SUCCESS) { attn_graph_fail(g, "heuristics results", s); return; }
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    int skipped_nondet = 0;
    for (int64_t i = 0; i < got && i < count; i++) {
        int nondet = attn_cfg_nondeterministic(cfgs[i]);
        if (need_deterministic && nondet) { skipped_nondet++; continue; }
        cudnnBackendDescriptor_t plan = NULL;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS) continue;
        cudnnStatus_t s1 = cudnnBackendSetAttribute(plan, ATTN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
        cudnnStatus_t s2 = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]);
        cudnnStatus_t s3 = (s1 == CUDNN_STATUS_SUCCESS && s2 == CUDNN_STATUS_SUCCESS) ? cudnnBackendFinalize(plan) : CUDNN_STATUS_BAD_PARAM;
        if (s3 != CUDNN_STATUS_SUCCESS) { last = s3; cudnnBackendDestroyDescriptor(plan); continue; }
        int64_t ws = 0, n = 0;
        if (cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) != CUDNN_STATUS_SUCCESS) {
            cudnnBackendDestroyDescriptor(plan);
            continue;
        }
        g->plan = plan;
        g->plan_ws = ws;
        g->deterministic = !nondet;
        return;
    }
    if (skipped_nondet > 0 && skipped_nondet == got) {
        g->failed = 1;
        snprintf(g->why, sizeof(g->why), "only non-deterministic engines (%d)", skipped_nondet);
        return;
    }
    attn_graph_fail(g, "no engine config finalized", last);
}

static void attn_graph_destroy(AttnGraph* g) {
    if (g->plan) cudnnBackendDestroyDescriptor(g->plan);
    for (int i = g->ndescs - 1; i >= 0; i--) if (g->descs[i]) cudnnBackendDestroyDescriptor(g->descs[i]);
    memset(g, 0, sizeof(*g));
}

// tensor uids of the cuDNN graphs (bound in the variant packs)
enum {
    ATTN_UID_Q = 1, ATTN_UID_K = 2, ATTN_UID_V = 3, ATTN_UID_O = 4, ATTN_UID_STATS = 5, ATTN_UID_SCALE = 6,
    ATTN_UID_MASKVAL = 7, ATTN_UID_DO = 8, ATTN_UID_DQ = 9, ATTN_UID_DK = 10, ATTN_UID_DV = 11, ATTN_UID_ONE = 12,
    ATTN_UID_SOFTMAX_SUM = 13, ATTN_UID_DQ_ACCUM = 14, ATTN_UID_VIRTUAL0 = 100
};

// adds the causal mask to scores s (B,NH,T,T) fp32 and returns the masked scores:
// keep where row >= col, else mask_value (cudnn-frontend's top-left causal lowering)
static cudnnBackendDescriptor_t attn_causal_mask(AttnGraph* g, cudnnBackendDescriptor_t s, cudnnBackendDescriptor_t maskval,
                                                 int64_t B, int64_t NH, int64_t T) {
    int64_t s0 = NH * T * T, s1 = T * T;
    cudnnBackendDescriptor_t row = attn_tensor(g, -1, CUDNN_DATA_INT32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t col = attn_tensor(g, -1, CUDNN_DATA_INT32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t keep = attn_tensor(g, -1, CUDNN_DATA_BOOLEAN, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t out = attn_tensor(g, -1, CUDNN_DATA_FLOAT, B, NH, T, T, s0, s1, T, 1, 0);
    attn_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, NULL, NULL, row, 2);
    attn_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, NULL, NULL, col, 3);
    attn_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep, -1);
    attn_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, maskval, keep, out, -1);
    return out;
}

// forward: O = softmax(mask(scale * Q K^T)) V, Stats = rowmax + log(rowsum(exp(. - rowmax)))
static void attn_build_forward(AttnCtx* ctx, AttnGraph* g) {
    int64_t B = ctx->B, T = ctx->T, NH = ctx->NH, NKV = ctx->NKV, HD = ctx->HD;
    int64_t C = NH * HD, KVd = NKV * HD, ld = C + 2 * KVd;
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    g->next_vuid = ATTN_UID_VIRTUAL0;
    // q (B,NH,T,HD) and k^T (B,NKV,HD,T), v (B,NKV,T,HD): views of qkv rows of ld elements
    cudnnBackendDescriptor_t q = attn_tensor(g, ATTN_UID_Q, bf, B, NH, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t kt = attn_tensor(g, ATTN_UID_K, bf, B, NKV, HD, T, T * ld, HD, 1, ld, 0);
    cudnnBackendDescriptor_t v = attn_tensor(g, ATTN_UID_V, bf, B, NKV, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t o = attn_tensor(g, ATTN_UID_O, bf, B, NH, T, HD, T * C, HD, C, 1, 0);
    cudnnBackendDescriptor_t stats = attn_tensor(g, ATTN_UID_STATS, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t scale = attn_tensor(g, ATTN_UID_SCALE, f32, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    cudnnBackendDescriptor_t maskval = attn_tensor(g, ATTN_UID_MASKVAL, f32, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    int64_t s0 = NH * T * T, s1 = T * T;
    cudnnBackendDescriptor_t s = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t ss = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    attn_matmul(g, q, kt, s);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, s, scale, NULL, ss, -1);
    cudnnBackendDescriptor_t sm = attn_causal_mask(g, ss, maskval, B, NH, T);
    // softmax with stats, as cudnn-frontend's composite softmax
    cudnnBackendDescriptor_t mx = attn_tensor(g, -1, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t sub = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t ex = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t sum = attn_tensor(g, -1, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t lg = attn_tensor(g, -1, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t p = attn_tensor(g, -1, bf, B, NH, T, T, s0, s1, T, 1, 0); // bmm2's A is bf16
    attn_reduction(g, CUDNN_REDUCE_TENSOR_MAX, sm, mx);
    attn_pointwise(g, CUDNN_POINTWISE_SUB, f32, sm, mx, NULL, sub, -1);
    attn_pointwise(g, CUDNN_POINTWISE_EXP, f32, sub, NULL, NULL, ex, -1);
    attn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, ex, sum);
    attn_pointwise(g, CUDNN_POINTWISE_LOG, f32, sum, NULL, NULL, lg, -1);
    attn_pointwise(g, CUDNN_POINTWISE_ADD, f32, mx, lg, NULL, stats, -1);
    attn_pointwise(g, CUDNN_POINTWISE_DIV, f32, ex, sum, NULL, p, -1);
    attn_matmul(g, p, v, o);
    attn_graph_plan(g, ctx->cudnn, 0);
}

// backward, as cudnn-frontend's composite sdpa_backward (no dropout/bias):
// softmax_sum = rowsum(dO*O); P = exp(mask(scale*QK^T) - stats); dV = P^T dO;
// dS = P * (dO V^T - softmax_sum) * scale; dK = dS^T Q; dQ = dS K.
// GQA: dK/dV are formed per query head and reduced over each group of NH/NKV heads.
// dq_accum: dQ goes through an fp32 accumulator (atomics: non-deterministic); without it the
// engine uses its dP-workspace variant (what the frontend uses for deterministic mode).
static void attn_build_backward(AttnCtx* ctx, AttnGraph* g, int dq_accum) {
    int64_t B = ctx->B, T = ctx->T, NH = ctx->NH, NKV = ctx->NKV, HD = ctx->HD;
    int64_t C = NH * HD, KVd = NKV * HD, ld = C + 2 * KVd;
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    g->next_vuid = ATTN_UID_VIRTUAL0;
    int64_t s0 = NH * T * T, s1 = T * T;
    cudnnBackendDescriptor_t q = attn_tensor(g, ATTN_UID_Q, bf, B, NH, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t kt = attn_tensor(g, ATTN_UID_K, bf, B, NKV, HD, T, T * ld, HD, 1, ld, 0);
    cudnnBackendDescriptor_t vt = attn_tensor(g, ATTN_UID_V, bf, B, NKV, HD, T, T * ld, HD, 1, ld, 0);
    cudnnBackendDescriptor_t o = attn_tensor(g, ATTN_UID_O, bf, B, NH, T, HD, T * C, HD, C, 1, 0);
    cudnnBackendDescriptor_t dO = attn_tensor(g, ATTN_UID_DO, bf, B, NH, T, HD, T * C, HD, C, 1, 0);
    cudnnBackendDescriptor_t stats = attn_tensor(g, ATTN_UID_STATS, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t dq = attn_tensor(g, ATTN_UID_DQ, bf, B, NH, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t dk = attn_tensor(g, ATTN_UID_DK, bf, B, NKV, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t dv = attn_tensor(g, ATTN_UID_DV, bf, B, NKV, T, HD, T * ld, HD, ld, 1, 0);
    cudnnBackendDescriptor_t scale = attn_tensor(g, ATTN_UID_SCALE, f32, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    cudnnBackendDescriptor_t maskval = attn_tensor(g, ATTN_UID_MASKVAL, f32, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    cudnnBackendDescriptor_t one = attn_tensor(g, ATTN_UID_ONE, f32, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    // softmax_sum chain (strides of the dO*O product as cudnn-frontend sets them)
    cudnnBackendDescriptor_t dOO = attn_tensor(g, -1, f32, B, NH, T, HD, NH * T * HD, T * HD, NH * HD, 1, 0);
    cudnnBackendDescriptor_t rs = attn_tensor(g, -1, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    cudnnBackendDescriptor_t ssum = attn_tensor(g, ATTN_UID_SOFTMAX_SUM, f32, B, NH, T, 1, NH * T, T, 1, 1, 0);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, dO, o, NULL, dOO, -1);
    attn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, dOO, rs);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, rs, one, NULL, ssum, -1);
    // recompute P
    cudnnBackendDescriptor_t s = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t ss = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t sl = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    attn_matmul(g, q, kt, s);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, s, scale, NULL, ss, -1);
    attn_pointwise(g, CUDNN_POINTWISE_SUB, f32, ss, stats, NULL, sl, -1);
    cudnnBackendDescriptor_t sm = attn_causal_mask(g, sl, maskval, B, NH, T);
    cudnnBackendDescriptor_t p = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    attn_pointwise(g, CUDNN_POINTWISE_EXP, f32, sm, NULL, NULL, p, -1);
    // dV = P^T dO (per query head, then summed over the group)
    cudnnBackendDescriptor_t pt = attn_tensor(g, -1, bf, B, NH, T, T, s0, s1, 1, T, 0);
    attn_reshape(g, p, pt);
    if (NH == NKV) {
        attn_matmul(g, pt, dO, dv);
    } else {
        cudnnBackendDescriptor_t dvf = attn_tensor(g, -1, bf, B, NH, T, HD, NH * T * HD, T * HD, HD, 1, 0);
        attn_matmul(g, pt, dO, dvf);
        attn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, dvf, dv);
    }
    // dS = P * (dO V^T - softmax_sum) * scale
    cudnnBackendDescriptor_t dp = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t dps = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t dpp = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    cudnnBackendDescriptor_t ds = attn_tensor(g, -1, f32, B, NH, T, T, s0, s1, T, 1, 0);
    attn_matmul(g, dO, vt, dp);
    attn_pointwise(g, CUDNN_POINTWISE_SUB, f32, dp, ssum, NULL, dps, -1);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, dps, p, NULL, dpp, -1);
    attn_pointwise(g, CUDNN_POINTWISE_MUL, f32, dpp, scale, NULL, ds, -1);
    // dK = dS^T Q
    cudnnBackendDescriptor_t dst = attn_tensor(g, -1, bf, B, NH, T, T, s0, s1, 1, T, 0);
    attn_reshape(g, ds, dst);
    if (NH == NKV) {
        attn_matmul(g, dst, q, dk);
    } else {
        cudnnBackendDescriptor_t dkf = attn_tensor(g, -1, bf, B, NH, T, HD, NH * T * HD, T * HD, HD, 1, 0);
        attn_matmul(g, dst, q, dkf);
        attn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, dkf, dk);
    }
    // dQ = dS K, K as a reshape of K^T back to (B,NKV,T,HD)
    cudnnBackendDescriptor_t kk = attn_tensor(g, -1, bf, B, NKV, T, HD, T * ld, HD, ld, 1, 0);
    attn_reshape(g, kt, kk);
    if (dq_accum) {
        cudnnBackendDescriptor_t acc = attn_tensor(g, ATTN_UID_DQ_ACCUM, f32, B, NH, T, HD, NH * T * HD, T * HD, HD, 1, 0);
        attn_matmul(g, ds, kk, acc);
        attn_pointwise(g, CUDNN_POINTWISE_IDENTITY, f32, acc, NULL, NULL, dq, -1);
    } else {
        attn_matmul(g, ds, kk, dq);
    }
    attn_graph_plan(g, ctx->cudnn, !dq_accum);
}

static size_t attn_align256(size_t x) { return (x + 255) & ~(size_t)255; }

// returns 1 and fills the plans if cuDNN can run this shape, else 0 with a reason in why
static int attn_try_cudnn(AttnCtx* ctx, char* why, size_t whylen) {
    size_t ver = cudnnGetVersion();
    if (ver < 90000) { snprintf(why, whylen, "cuDNN %zu < 9.0", ver); return 0; }
    if (ctx->HD % 8 != 0 || ctx->HD > 256) { snprintf(why, whylen, "head dim %d: cuDNN needs a multiple of 8 <= 256", ctx->HD); return 0; }
    if (ver < 91600 && ctx->T % 128 != 0) {
        // cudnn-frontend adds a padding-mask workaround for these versions; we do not
        snprintf(why, whylen, "cuDNN %zu < 9.16 needs T %% 128 == 0, T = %d", ver, ctx->T);
        return 0;
    }
    int dev = 0, major = 0;
    ATTN_CUDA_CHECK(cudaGetDevice(&dev));
    ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    if (major < 8) { snprintf(why, whylen, "compute capability %d.x < 8.0", major); return 0; }
    attn_build_forward(ctx, &ctx->fwd);
    if (ctx->fwd.failed) { snprintf(why, whylen, "forward: %s", ctx->fwd.why); return 0; }
    // backward: prefer the deterministic form (trainer reruns must be bit-identical), else accept
    // the dQ-accumulator form and say so
    attn_build_backward(ctx, &ctx->bwd, 0);
    ctx->bwd_dq_accum = 0;
    if (ctx->bwd.failed && ctx->mode == ATTN_DETERMINISTIC) {
        snprintf(why, whylen, "no deterministic cuDNN backward: %s", ctx->bwd.why);
        return 0;
    }
    if (ctx->bwd.failed) {
        char first[240];
        snprintf(first, sizeof(first), "%s", ctx->bwd.why);
        attn_graph_destroy(&ctx->bwd);
        attn_build_backward(ctx, &ctx->bwd, 1);
        ctx->bwd_dq_accum = 1;
        if (ctx->bwd.failed) { snprintf(why, whylen, "backward: %s", ctx->bwd.why); return 0; }
        printf("attention: cuDNN deterministic backward unavailable (%s): using the dQ-accumulator backward, "
               "gradients are not bitwise reproducible\n", first);
    }
    ctx->bwd_deterministic = ctx->bwd.deterministic;
    return 1;
}

// ----------------------------------------------------------------------------------------------
// fallback kernels

#define ATTN_SOFTMAX_THREADS 256

// deterministic block reductions (fixed shuffle tree, fixed warp order)
__device__ static float attn_block_max(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int w = 0; w < nwarps; w++) r = fmaxf(r, shared[w]);
    return r;
}
__device__ static float attn_block_sum(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < nwarps; w++) r += shared[w];
    return r;
}

// one block per row (h, t) of one batch row: P[h][t][s] = softmax_{s<=t}(S[h][t][s]), 0 for s > t.
// S (NH,T,T) fp32 already scaled; P (NH,T,T) bf16
__global__ static void attn_softmax_forward_kernel(floatX* P, const float* S, int T) {
    __shared__ float shared[32];
    int t = blockIdx.x, h = blockIdx.y;
    size_t row = ((size_t)h * T + t) * T;
    const float* s = S + row;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i <= t; i += blockDim.x) mx = fmaxf(mx, s[i]);
    mx = attn_block_max(mx, shared);
    float sum = 0.0f;
    for (int i = threadIdx.x; i <= t; i += blockDim.x) sum += expf(s[i] - mx);
    sum = attn_block_sum(sum, shared);
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < T; i += blockDim.x) {
        float p = i <= t ? expf(s[i] - mx) * inv : 0.0f;
        P[row + i] = __float2bfloat16(p);
    }
}

// dS[h][t][s] = P * (dP - sum_{s'<=t} P dP) * scale for s <= t, 0 above the diagonal
__global__ static void attn_softmax_backward_kernel(floatX* dS, const floatX* P, const float* dP, int T, float scale) {
    __shared__ float shared[32];
    int t = blockIdx.x, h = blockIdx.y;
    size_t row = ((size_t)h * T + t) * T;
    float dot = 0.0f;
    for (int i = threadIdx.x; i <= t; i += blockDim.x) dot += __bfloat162float(P[row + i]) * dP[row + i];
    dot = attn_block_sum(dot, shared);
    for (int i = threadIdx.x; i < T; i += blockDim.x) {
        float v = 0.0f;
        if (i <= t) v = __bfloat162float(P[row + i]) * (dP[row + i] - dot) * scale;
        dS[row + i] = __float2bfloat16(v);
    }
}

// dst (B,NH,T,HD) from rows of src (B,T,ld) whose heads start at column 0: one head-contiguous
// copy so a kv group's query heads form one (rep*T, HD) matrix
__global__ static void attn_permute_kernel(floatX* dst, const floatX* src, int B, int T, int NH, int HD, int ld) {
    size_t n = (size_t)B * NH * T * HD;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(i % HD);
        size_t r = i / HD;
        int t = (int)(r % T); r /= T;
        int h = (int)(r % NH);
        int b = (int)(r / NH);
        dst[i] = src[((size_t)b * T + t) * ld + (size_t)h * HD + d];
    }
}

// C = op(A) op(B), bf16 inputs, fp32 compute, column-major (cuBLAS) view
static void attn_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                      const floatX* A, int lda, long long sa, const floatX* Bm, int ldb, long long sb, float beta,
                      void* Cm, cudaDataType_t ctype, int ldc, long long sc, int batch) {
    ATTN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &alpha, A, CUDA_R_16BF, lda, sa, Bm, CUDA_R_16BF, ldb, sb,
                                                 &beta, Cm, ctype, ldc, sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void attn_fallback_forward(AttnCtx* ctx, floatX* out, floatX* saved, const floatX* qkv, cudaStream_t stream) {
    int B = ctx->B, T = ctx->T, NH = ctx->NH, NKV = ctx->NKV, HD = ctx->HD, rep = NH / NKV;
    int C = NH * HD, KVd = NKV * HD, ld = C + 2 * KVd;
    size_t TT = (size_t)T * T;
    float* S = (float*)((char*)ctx->workspace + ctx->off_scores);
    floatX* scratchP = (floatX*)((char*)ctx->workspace + ctx->off_dscores);
    ATTN_CUBLAS_CHECK(cublasSetStream(ctx->cublas, stream));
    for (int b = 0; b < B; b++) {
        const floatX* qb = qkv + (size_t)b * T * ld;
        const floatX* kb = qb + C;
        const floatX* vb = qb + C + KVd;
        floatX* P = saved ? saved + (size_t)b * NH * TT : scratchP;
        // S[h] = scale * q_h k_kh^T, batched over kv heads for each member r of the group
        for (int r = 0; r < rep; r++) {
            attn_gemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HD, ctx->scale, kb, ld, HD, qb + (size_t)r * HD, ld,
                      (long long)rep * HD, 0.0f, S + r * TT, CUDA_R_32F, T, (long long)rep * TT, NKV);
        }
        attn_softmax_forward_kernel<<<dim3(T, NH), ATTN_SOFTMAX_THREADS, 0, stream>>>(P, S, T);
        ATTN_CUDA_CHECK(cudaGetLastError());
        // out_h = P_h v_kh
        for (int r = 0; r < rep; r++) {
            attn_gemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, HD, T, T, 1.0f, vb, ld, HD, P + r * TT, T, (long long)rep * TT,
                      0.0f, out + (size_t)b * T * C + (size_t)r * HD, CUDA_R_16BF, C, (long long)rep * HD, NKV);
        }
    }
}

static void attn_fallback_backward(AttnCtx* ctx, floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* saved,
                                   cudaStream_t stream) {
    int B = ctx->B, T = ctx->T, NH = ctx->NH, NKV = ctx->NKV, HD = ctx->HD, rep = NH / NKV;
    int C = NH * HD, KVd = NKV * HD, ld = C + 2 * KVd;
    size_t TT = (size_t)T * T;
    float* dP = (float*)((char*)ctx->workspace + ctx->off_scores);
    floatX* dS = (floatX*)((char*)ctx->workspace + ctx->off_dscores);
    floatX* qperm = (floatX*)((char*)ctx->workspace + ctx->off_qperm);
    floatX* doperm = (floatX*)((char*)ctx->workspace + ctx->off_doperm);
    ATTN_CUBLAS_CHECK(cublasSetStream(ctx->cublas, stream));
    size_t n = (size_t)B * NH * T * HD;
    int grid = (int)((n + 255) / 256 < 65535 ? (n + 255) / 256 : 65535);
    attn_permute_kernel<<<grid, 256, 0, stream>>>(qperm, qkv, B, T, NH, HD, ld);
    ATTN_CUDA_CHECK(cudaGetLastError());
    attn_permute_kernel<<<grid, 256, 0, stream>>>(doperm, dout, B, T, NH, HD, C);
    ATTN_CUDA_CHECK(cudaGetLastError());
    for (int b = 0; b < B; b++) {
        const floatX* qb = qkv + (size_t)b * T * ld;
        const floatX* kb = qb + C;
        const floatX* vb = qb + C + KVd;
        const floatX* dob = dout + (size_t)b * T * C;
        const floatX* P = saved + (size_t)b * NH * TT;
        floatX* dqb = dqkv + (size_t)b * T * ld;
        floatX* dkb = dqb + C;
        floatX* dvb = dqb + C + KVd;
        const floatX* qp = qperm + (size_t)b * NH * T * HD;
        const floatX* dop = doperm + (size_t)b * NH * T * HD;
        // dP_h = dout_h v_kh^T
        for (int r = 0; r < rep; r++) {
            attn_gemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, HD, 1.0f, vb, ld, HD, dob + (size_t)r * HD, C,
                      (long long)rep * HD, 0.0f, dP + r * TT, CUDA_R_32F, T, (long long)rep * TT, NKV);
        }
        // dv_kh = sum over the group of P_h^T dout_h: one GEMM with k = rep*T, fp32 accumulation
        attn_gemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, HD, T, rep * T, 1.0f, dop, HD, (long long)rep * T * HD, P, T,
                  (long long)rep * TT, 0.0f, dvb, CUDA_R_16BF, ld, HD, NKV);
        attn_softmax_backward_kernel<<<dim3(T, NH), ATTN_SOFTMAX_THREADS, 0, stream>>>(dS, P, dP, T, ctx->scale);
        ATTN_CUDA_CHECK(cudaGetLastError());
        // dk_kh = sum over the group of dS_h^T q_h
        attn_gemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, HD, T, rep * T, 1.0f, qp, HD, (long long)rep * T * HD, dS, T,
                  (long long)rep * TT, 0.0f, dkb, CUDA_R_16BF, ld, HD, NKV);
        // dq_h = dS_h k_kh
        for (int r = 0; r < rep; r++) {
            attn_gemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, HD, T, T, 1.0f, kb, ld, HD, dS + r * TT, T, (long long)rep * TT,
                      0.0f, dqb + (size_t)r * HD, CUDA_R_16BF, ld, (long long)rep * HD, NKV);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// public API

// one execution of a plan; the status of the first call that failed (the probe at init acts on it)
static cudnnStatus_t attn_execute_status(AttnCtx* ctx, AttnGraph* g, int n, const int64_t* uids, void** ptrs, cudaStream_t stream) {
    cudnnStatus_t s = cudnnSetStream(ctx->cudnn, stream);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    cudnnBackendDescriptor_t vp = NULL;
    void* ws = ctx->workspace;
    s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(vp);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendExecute(ctx->cudnn, g->plan, vp);
    cudnnStatus_t d = cudnnBackendDestroyDescriptor(vp);
    return s != CUDNN_STATUS_SUCCESS ? s : d;
}


// the workspace of the chosen implementation: its layout (the off_* offsets) and one allocation
static void attn_workspace_alloc(AttnCtx* ctx) {
    int B = ctx->B, T = ctx->T, NH = ctx->NH, HD = ctx->HD;
    size_t off = 0;
    if (ctx->use_cudnn) {
        int64_t pws = ctx->fwd.plan_ws > ctx->bwd.plan_ws ? ctx->fwd.plan_ws : ctx->bwd.plan_ws;
        off = attn_align256((size_t)pws);
        ctx->off_stats = off;       off += attn_align256((size_t)B * NH * T * sizeof(float));
        ctx->off_softmax_sum = off; off += attn_align256((size_t)B * NH * T * sizeof(float));
        ctx->off_dq_accum = off;
        if (ctx->bwd_dq_accum) off += attn_align256((size_t)B * NH * T * HD * sizeof(float));
    } else {
        if (ctx->cublas == NULL) {
            fflush(stdout);
            fprintf(stderr, "error: attention_init: the cuBLAS fallback needs a cuBLAS handle (%s:%d); hint: pass the "
                            "trainer's cublasHandle_t\n", __FILE__, __LINE__);
            exit(EXIT_FAILURE);
        }
        size_t TT = (size_t)T * T;
        ctx->off_scores = off;  off += attn_align256((size_t)NH * TT * sizeof(float));
        ctx->off_dscores = off; off += attn_align256((size_t)NH * TT * sizeof(floatX));
        ctx->off_qperm = off;   off += attn_align256((size_t)B * NH * T * HD * sizeof(floatX));
        ctx->off_doperm = off;  off += attn_align256((size_t)B * NH * T * HD * sizeof(floatX));
        ctx->bwd_deterministic = 1;
    }
    ctx->workspace_bytes = off;
    if (off > 0) {
        cudaError_t e = cudaMalloc(&ctx->workspace, off);
        if (e != cudaSuccess) {
            size_t fr = 0, tot = 0;
            cudaGetLastError();
            cudaMemGetInfo(&fr, &tot);
            fflush(stdout);
            fprintf(stderr, "error: out of GPU memory: asked %.1f MiB for the attention workspace, %.1f MiB free of %.1f "
                            "(%s:%d); hint: lower --batch / use --recompute 1 / --per-layer 1\n",
                    off / 1048576.0, fr / 1048576.0, tot / 1048576.0, __FILE__, __LINE__);
            exit(EXIT_FAILURE);
        }
    }
}

// cuDNN forward / backward on the plans, returning the first failing status (attention_forward /
// attention_backward check it; attn_probe acts on it)
static cudnnStatus_t attn_cudnn_forward(AttnCtx* ctx, floatX* out, void* saved, const floatX* qkv, cudaStream_t stream) {
    int C = ctx->NH * ctx->HD, KVd = ctx->NKV * ctx->HD;
    void* stats = saved ? saved : (void*)((char*)ctx->workspace + ctx->off_stats);
    int64_t uids[7] = {ATTN_UID_Q, ATTN_UID_K, ATTN_UID_V, ATTN_UID_O, ATTN_UID_STATS, ATTN_UID_SCALE, ATTN_UID_MASKVAL};
    void* ptrs[7] = {(void*)qkv, (void*)(qkv + C), (void*)(qkv + C + KVd), (void*)out, stats, (void*)&ctx->scale, (void*)&ctx->mask_value};
    return attn_execute_status(ctx, &ctx->fwd, 7, uids, ptrs, stream);
}
static cudnnStatus_t attn_cudnn_backward(AttnCtx* ctx, floatX* dqkv, const floatX* dout, const floatX* out, const floatX* qkv,
                                         const void* saved, cudaStream_t stream) {
    int C = ctx->NH * ctx->HD, KVd = ctx->NKV * ctx->HD;
    void* ssum = (char*)ctx->workspace + ctx->off_softmax_sum;
    void* acc = (char*)ctx->workspace + ctx->off_dq_accum;
    int n = 13;
    int64_t uids[14] = {ATTN_UID_Q, ATTN_UID_K, ATTN_UID_V, ATTN_UID_O, ATTN_UID_DO, ATTN_UID_STATS, ATTN_UID_DQ,
                        ATTN_UID_DK, ATTN_UID_DV, ATTN_UID_SCALE, ATTN_UID_MASKVAL, ATTN_UID_ONE, ATTN_UID_SOFTMAX_SUM,
                        ATTN_UID_DQ_ACCUM};
    void* ptrs[14] = {(void*)qkv, (void*)(qkv + C), (void*)(qkv + C + KVd), (void*)out, (void*)dout, (void*)saved,
                      (void*)dqkv, (void*)(dqkv + C), (void*)(dqkv + C + KVd), (void*)&ctx->scale,
                      (void*)&ctx->mask_value, (void*)&ctx->one, ssum, acc};
    if (ctx->bwd_dq_accum) {
        // cudnn-frontend zeroes it before cuDNN 9.6; harmless after
        ATTN_CUDA_CHECK(cudaMemsetAsync(acc, 0, (size_t)ctx->B * ctx->NH * ctx->T * ctx->HD * sizeof(float), stream));
        n = 14;
    }
    return attn_execute_status(ctx, &ctx->bwd, n, uids, ptrs, stream);
}

// attn_probe: forward + backward once on zeroed scratch of the real shape (on the default stream,
// synchronized). 1: both ran; 0 with the reason. Scratch that does not fit skips the probe (1):
// the first real step then fails with cuDNN's own message instead.
static int attn_probe(AttnCtx* ctx, char* why, size_t whylen) {
    size_t BT = (size_t)ctx->B * ctx->T, C = (size_t)ctx->NH * ctx->HD, ld = C + 2 * (size_t)ctx->NKV * ctx->HD;
    size_t b_qkv = attn_align256(BT * ld * sizeof(floatX)), b_o = attn_align256(BT * C * sizeof(floatX));
    size_t b_st = attn_align256((size_t)ctx->B * ctx->NH * ctx->T * sizeof(float));
    size_t total = 2 * b_qkv + 2 * b_o + b_st;
    char* mem = NULL;
    if (cudaMalloc((void**)&mem, total) != cudaSuccess) { cudaGetLastError(); return 1; }
    floatX *qkv = (floatX*)mem, *dqkv = (floatX*)(mem + b_qkv), *out = (floatX*)(mem + 2 * b_qkv), *dout = (floatX*)(mem + 2 * b_qkv + b_o);
    void* stats = mem + 2 * b_qkv + 2 * b_o;
    ATTN_CUDA_CHECK(cudaMemset(mem, 0, total));
    cudnnStatus_t s = attn_cudnn_forward(ctx, out, stats, qkv, 0);
    const char* step = "forward";
    if (s == CUDNN_STATUS_SUCCESS) { s = attn_cudnn_backward(ctx, dqkv, dout, out, qkv, stats, 0); step = "backward"; }
    // an error in a kernel itself is sticky (the context is lost): nothing to fall back to
    ATTN_CUDA_CHECK(cudaDeviceSynchronize());
    ATTN_CUDA_CHECK(cudaFree(mem));
    if (s == CUDNN_STATUS_SUCCESS) return 1;
    char msg[512]; msg[0] = 0;
    cudnnGetLastErrorString(msg, sizeof(msg));
    char* nl = strchr(msg, '\n'); if (nl) *nl = 0;
    if (strlen(msg) > 100) msg[100] = 0;
    snprintf(why, whylen, "%s plan failed its first run: %s%s%s", step, cudnnGetErrorString(s), msg[0] ? ": " : "", msg);
    return 0;
}

static void attention_init(AttnCtx* ctx, cudnnHandle_t cudnn, cublasHandle_t cublas, int B, int T, int NH, int NKV, int HD,
                           int mode) {
    memset(ctx, 0, sizeof(*ctx));
    if (mode < ATTN_AUTO || mode > ATTN_DETERMINISTIC) {
        fflush(stdout);
        fprintf(stderr, "error: attention_init: mode %d (%s:%d); hint: 0 auto, 1 the cuBLAS fallback, 2 cuDNN only with a "
                        "deterministic backward\n", mode, __FILE__, __LINE__);
        exit(EXIT_FAILURE);
    }
    int force_fallback = mode == ATTN_FALLBACK;
    ctx->mode = mode;
    if (B <= 0 || T <= 0 || NH <= 0 || NKV <= 0 || HD <= 0 || NH % NKV != 0) {
        fflush(stdout);
        fprintf(stderr, "error: attention_init: bad shape B=%d T=%d NH=%d NKV=%d HD=%d (%s:%d); hint: all must be "
                        "positive and num_attention_heads a multiple of num_key_value_heads\n", B, T, NH, NKV, HD, __FILE__, __LINE__);
        exit(EXIT_FAILURE);
    }
    ctx->B = B; ctx->T = T; ctx->NH = NH; ctx->NKV = NKV; ctx->HD = HD;
    ctx->cudnn = cudnn;
    ctx->cublas = cublas;
    ctx->scale = 1.0f / sqrtf((float)HD);
    ctx->mask_value = -FLT_MAX;
    ctx->one = 1.0f;
    char why[300]; why[0] = 0;
    if (force_fallback) {
        ctx->use_cudnn = 0;
    } else if (cudnn == NULL) {
        ctx->use_cudnn = 0;
        snprintf(ctx->why_fallback, sizeof(ctx->why_fallback), "no cuDNN handle");
        printf("attention: cuDNN SDPA unavailable (no cuDNN handle): using the cuBLAS fallback\n");
    } else {
        ctx->use_cudnn = attn_try_cudnn(ctx, why, sizeof(why));
        if (!ctx->use_cudnn) {
            attn_graph_destroy(&ctx->fwd);
            attn_graph_destroy(&ctx->bwd);
            snprintf(ctx->why_fallback, sizeof(ctx->why_fallback), "%s", why);
            printf("attention: cuDNN SDPA unavailable (%s): using the cuBLAS fallback\n", why);
        }
    }
    attn_workspace_alloc(ctx);
    // a plan that finalized can still be refused when it runs (cudnnBackendExecute checks the
    // variant pack, and a runtime-compiled kernel is first launched there): run both once on
    // zeroed scratch now, and take the fallback on any failure, while the saved-tensor size can change
    if (ctx->use_cudnn && !attn_probe(ctx, why, sizeof(why))) {
        attn_graph_destroy(&ctx->fwd);
        attn_graph_destroy(&ctx->bwd);
        if (ctx->workspace) ATTN_CUDA_CHECK(cudaFree(ctx->workspace));
        ctx->workspace = NULL;
        ctx->use_cudnn = 0;
        ctx->bwd_dq_accum = 0;
        snprintf(ctx->why_fallback, sizeof(ctx->why_fallback), "%s", why);
        printf("attention: cuDNN SDPA unavailable (%s): using the cuBLAS fallback\n", why);
        attn_workspace_alloc(ctx);
    }
}

// which implementation runs, for the logs: one line without a newline, in one static buffer (print it
// before the next call)
static const char* attention_path(const AttnCtx* ctx) {
    static char buf[480];
    if (ctx->use_cudnn)
        snprintf(buf, sizeof(buf), "cuDNN %zu fused SDPA (composite graph, causal mask %g), backward %s", cudnnGetVersion(),
                 (double)ctx->mask_value, ctx->bwd_dq_accum ? "dQ-accumulator (NOT bitwise reproducible)"
                                                           : ctx->bwd_deterministic ? "deterministic" : "NOT bitwise reproducible");
    else
        snprintf(buf, sizeof(buf), "cuBLAS fallback (causal mask in the softmax kernels, deterministic)%s%s%s",
                 ctx->why_fallback[0] ? ": cuDNN " : "", ctx->why_fallback, ctx->mode == ATTN_FALLBACK ? ": asked for" : "");
    return buf;
}

static void attention_free(AttnCtx* ctx) {
    attn_graph_destroy(&ctx->fwd);
    attn_graph_destroy(&ctx->bwd);
    if (ctx->workspace) ATTN_CUDA_CHECK(cudaFree(ctx->workspace));
    ctx->workspace = NULL;
    ctx->workspace_bytes = 0;
}

// out (B,T,C); saved: this layer's stats (cuDNN, float) or probabilities (fallback, bf16), or NULL
static void attention_forward(AttnCtx* ctx, floatX* out, void* saved, const floatX* qkv, cudaStream_t stream) {
    if (ctx->use_cudnn) {
        ATTN_CUDNN_CHECK(attn_cudnn_forward(ctx, out, saved, qkv, stream));
    } else {
        attn_fallback_forward(ctx, out, (floatX*)saved, qkv, stream);
    }
}

// dqkv (B,T,C+2KV) overwritten; dout, out (B,T,C); saved as filled by attention_forward
static void attention_backward(AttnCtx* ctx, floatX* dqkv, const floatX* dout, const floatX* out, const floatX* qkv,
                               const void* saved, cudaStream_t stream) {
    if (saved == NULL) {
        fflush(stdout);
        fprintf(stderr, "error: attention_backward: no saved tensor (%s:%d); hint: pass the buffer attention_forward "
                        "filled for this layer\n", __FILE__, __LINE__);
        exit(EXIT_FAILURE);
    }
    if (ctx->use_cudnn) {
        ATTN_CUDNN_CHECK(attn_cudnn_backward(ctx, dqkv, dout, out, qkv, saved, stream));
    } else {
        (void)out;
        attn_fallback_backward(ctx, dqkv, dout, qkv, (const floatX*)saved, stream);
    }
}

#endif // ATTENTION_CUH
