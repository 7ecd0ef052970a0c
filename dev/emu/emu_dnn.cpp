// emu_dnn.cpp: cuDNN for the emulated GPU (dev/emu, issue 21): a library that runs no graph.
//
// What it models: the handle (create, destroy, stream), the version of the headers it was built
// with, the status strings, and the backend API as a descriptor store: descriptors are created,
// take attributes (kept as given: type, count, bytes), finalize and are destroyed, and a get
// returns what was set. Finalizing an OPERATION GRAPH (or anything built on one: heuristics, an
// engine, an engine config, an execution plan) answers CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN
// with a last-error string saying why, so attention_init (attention.cuh) records the reason and
// takes its cuBLAS fallback with its own line ("attention: cuDNN SDPA unavailable (...): using the
// cuBLAS fallback"), and everything after runs that path. cudnnBackendExecute of a plan that never
// finalized answers CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, as the real library does.
// What it cannot show: anything of the cuDNN path itself (the SDPA graphs, their heuristics, engine
// notes, workspace sizes, the probe run, the results): that path stays for a real GPU
// (dev/gpu/first_run.sh); misuse of a descriptor beyond using one that is not live (which stops
// with one line) is not checked.
#include <cudnn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <map>
#include <vector>
#include "emu_internal.h"

struct cudnnContext { uint32_t magic; cudaStream_t stream; };
#define DNN_MAGIC 0xd00dd00du
#define DNN_DEAD 0xdeadd00du

struct DnnAttr { cudnnBackendAttributeType_t type; int64_t count; std::vector<char> bytes; };
struct DnnDesc { uint32_t magic; cudnnBackendDescriptorType_t type; int finalized; std::map<int, DnnAttr> attrs; };

static thread_local char dnn_last_error[256];

static const char* DNN_NO_GRAPH = "the emulated cuDNN runs no graph on the CPU (the cuDNN path needs a real GPU)";

static size_t dnn_elem_bytes(cudnnBackendAttributeType_t t) {
    switch (t) {
    case CUDNN_TYPE_HANDLE: case CUDNN_TYPE_INT64: case CUDNN_TYPE_DOUBLE: case CUDNN_TYPE_VOID_PTR: case CUDNN_TYPE_BACKEND_DESCRIPTOR:
        return 8;
    case CUDNN_TYPE_BOOLEAN: case CUDNN_TYPE_CHAR: return 1;
    case CUDNN_TYPE_FRACTION: return 16;
    default: return 4; // float, int32 and the enums
    }
}

static DnnDesc* dnn_desc(cudnnBackendDescriptor_t d) {
    DnnDesc* p = (DnnDesc*)d;
    if (p == NULL || p->magic != DNN_MAGIC) emu_fatal("backend descriptor %p is not live (destroyed, or never created)", d);
    return p;
}
static cudnnStatus_t dnn_fail(cudnnStatus_t s, const char* why) {
    snprintf(dnn_last_error, sizeof dnn_last_error, "%s", why);
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnCreate(cudnnHandle_t* handle) {
    if (handle == NULL) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    *handle = new cudnnContext{DNN_MAGIC, 0};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnDestroy(cudnnHandle_t handle) {
    if (handle == NULL || handle->magic != DNN_MAGIC) emu_fatal("cuDNN handle %p is destroyed or invalid", (void*)handle);
    handle->magic = DNN_DEAD; // kept, so a later use is named
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (handle == NULL || handle->magic != DNN_MAGIC) emu_fatal("cuDNN handle %p is destroyed or invalid", (void*)handle);
    emu_require_stream(streamId, "cuDNN stream");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}
size_t CUDNNWINAPI cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
    case CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE: return "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN: return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN (emulated cuDNN)";
    }
}
void CUDNNWINAPI cudnnGetLastErrorString(char* message, size_t max_size) {
    if (message == NULL || max_size == 0) return;
    snprintf(message, max_size, "%s", dnn_last_error);
    dnn_last_error[0] = 0;
}

cudnnStatus_t CUDNNWINAPI cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t descriptorType, cudnnBackendDescriptor_t* descriptor) {
    if (descriptor == NULL) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    *descriptor = new DnnDesc{DNN_MAGIC, descriptorType, 0, {}};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t descriptor) {
    DnnDesc* d = dnn_desc(descriptor);
    d->magic = DNN_DEAD;
    d->attrs.clear();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnBackendSetAttribute(cudnnBackendDescriptor_t descriptor, cudnnBackendAttributeName_t attributeName,
                                                   cudnnBackendAttributeType_t attributeType, int64_t elementCount, const void* arrayOfElements) {
    DnnDesc* d = dnn_desc(descriptor);
    if (d->finalized) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "attribute set on a finalized descriptor");
    if (elementCount < 0 || (elementCount > 0 && arrayOfElements == NULL)) return dnn_fail(CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "no elements");
    DnnAttr a{attributeType, elementCount, std::vector<char>((size_t)elementCount * dnn_elem_bytes(attributeType))};
    if (!a.bytes.empty()) memcpy(a.bytes.data(), arrayOfElements, a.bytes.size());
    d->attrs[(int)attributeName] = a;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnBackendGetAttribute(cudnnBackendDescriptor_t const descriptor, cudnnBackendAttributeName_t attributeName,
                                                   cudnnBackendAttributeType_t attributeType, int64_t requestedElementCount,
                                                   int64_t* elementCount, void* arrayOfElements) {
    DnnDesc* d = dnn_desc(descriptor);
    if (!d->finalized) return dnn_fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "attribute read from a descriptor that is not finalized");
    auto it = d->attrs.find((int)attributeName);
    if (it == d->attrs.end()) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "attribute not set (the emulated cuDNN derives none)");
    if (it->second.type != attributeType) return dnn_fail(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE, "attribute read with another type");
    if (elementCount) *elementCount = it->second.count;
    int64_t n = requestedElementCount < it->second.count ? requestedElementCount : it->second.count;
    if (n > 0 && arrayOfElements) memcpy(arrayOfElements, it->second.bytes.data(), (size_t)n * dnn_elem_bytes(attributeType));
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t CUDNNWINAPI cudnnBackendFinalize(cudnnBackendDescriptor_t descriptor) {
    DnnDesc* d = dnn_desc(descriptor);
    switch (d->type) {
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: case CUDNN_BACKEND_ENGINE_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN, DNN_NO_GRAPH);
    default:
        d->finalized = 1;
        return CUDNN_STATUS_SUCCESS;
    }
}
cudnnStatus_t CUDNNWINAPI cudnnBackendExecute(cudnnHandle_t handle, cudnnBackendDescriptor_t executionPlan, cudnnBackendDescriptor_t variantPack) {
    if (handle == NULL || handle->magic != DNN_MAGIC) emu_fatal("cuDNN handle %p is destroyed or invalid", (void*)handle);
    dnn_desc(executionPlan);
    dnn_desc(variantPack);
    return dnn_fail(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, DNN_NO_GRAPH); // no plan ever finalizes here
}
