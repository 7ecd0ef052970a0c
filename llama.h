// llama.h: the model's description, shared by the CPU and GPU programs.
// - LlamaConfig: built-in configs (the GaLore paper's, plus a small default) and HF config.json
// - the parameter table: every tensor's HF name, shape, offset into one flat buffer, and whether
//   GaLore applies to it
// - init (N(0, 0.02) for Linear and Embedding, 1 for norms) and safetensors load/save by HF name
// Tensors are stored in PyTorch layout W[out_features][in_features], row-major, exactly as the
// safetensors file holds them, so loading and saving is a copy.
#ifndef LLAMA_H
#define LLAMA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#include <cjson/cJSON.h>
#include "utils.h"
#include "rand.h"
#include "safetensors.h"

typedef struct {
    char name[64];
    int C;          // hidden_size
    int H;          // intermediate_size (SwiGLU width)
    int NH;         // num_attention_heads
    int NKV;        // num_key_value_heads (NH % NKV == 0; grouped-query attention when < NH)
    int L;          // num_hidden_layers
    int V;          // vocab_size
    int maxT;       // max_position_embeddings
    int HD;         // head_dim: C / NH unless config.json says otherwise (q is NH*HD wide, k and v NKV*HD)
    int tied;       // tie_word_embeddings: lm_head is the embedding (one tensor, no lm_head.weight)
    float norm_eps; // rms_norm_eps
    float rope_theta;
    // rope_scaling: ROPE_DEFAULT; ROPE_LINEAR (positions / factor); ROPE_LLAMA3 with its four
    // parameters (transformers' names)
    int rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_maxT; // original_max_position_embeddings
} LlamaConfig;

enum { ROPE_DEFAULT = 0, ROPE_LLAMA3 = 1, ROPE_LINEAR = 2 };

// the width of the queries (and of attention's output, o_proj's input): C unless head_dim says otherwise
static inline int llama_qdim(const LlamaConfig* c) { return c->NH * c->HD; }
static inline int llama_kvdim(const LlamaConfig* c) { return c->NKV * c->HD; }

// the built-in table. The GaLore configs are exactly the paper's (galore.md); llama_tiny is the
// default: it trains on the embedded text in a few minutes on 2 cores.
typedef struct { const char* name; int C, H, NH, NKV, L, V, maxT; } LlamaPreset;
static const LlamaPreset LLAMA_PRESETS[] = {
    {"llama_tiny", 256, 688, 4, 4, 4, 4096, 1024},
    {"llama_60m", 512, 1376, 8, 8, 8, 32000, 1024},
    {"llama_130m", 768, 2048, 12, 12, 12, 32000, 1024},
    {"llama_350m", 1024, 2736, 16, 16, 24, 32000, 1024},
    {"llama_1b", 2048, 5461, 32, 32, 24, 32000, 1024},
    {"llama_7b", 4096, 11008, 32, 32, 32, 32000, 2048},
};
#define LLAMA_NUM_PRESETS ((int)(sizeof(LLAMA_PRESETS) / sizeof(LLAMA_PRESETS[0])))

static void llama_config_validate(const LlamaConfig* c, const char* src) {
    if (c->C <= 0 || c->H <= 0 || c->NH <= 0 || c->NKV <= 0 || c->L <= 0 || c->V <= 0 || c->maxT <= 0)
        die("%s: every size must be positive (hidden %d, intermediate %d, heads %d, kv heads %d, layers %d, vocab %d, max positions %d)",
            src, c->C, c->H, c->NH, c->NKV, c->L, c->V, c->maxT);
    if (c->HD <= 0) die("%s: head_dim %d must be positive", src, c->HD);
    if (c->HD % 2 != 0) die("%s: head dim %d must be even for RoPE", src, c->HD);
    if (c->NH % c->NKV != 0) die("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src, c->NH, c->NKV);
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f)) die("%s: rms_norm_eps and rope_theta must be positive", src);
}

// json_int: an integer field of a config.json, with a default when absent (def < -1 = required)
static int json_int(const cJSON* root, const char* key, int def, const char* path) {
    const cJSON* it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (it == NULL || cJSON_IsNull(it)) {
        if (def < -1) die("%s: missing required field \"%s\"; hint: pass a Hugging Face LlamaConfig config.json", path, key);
        return def;
    }
    // range first: casting a double outside int's range is undefined behaviour (found by fuzzing)
    double d = it->valuedouble;
    if (!cJSON_IsNumber(it) || !(d >= -2147483648.0 && d <= 2147483647.0) || d != (double)(int)d)
        die("%s: field \"%s\" must be an integer in int range", path, key);
    return (int)d;
}

static double json_num(const cJSON* root, const char* key, double def, const char* path) {
    const cJSON* it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (it == NULL || cJSON_IsNull(it)) return def;
    if (!cJSON_IsNumber(it)) die("%s: field \"%s\" must be a number", path, key);
    return it->valuedouble;
}

// llama_config_from_json: read a Hugging Face LlamaConfig config.json (also the GaLore repo's
// configs, which say max_sequence_length instead of max_position_embeddings)
static void llama_config_from_json(LlamaConfig* c, const char* path) {
    char* text = st_read_text(path, 1 << 24);
    cJSON* root = cJSON_Parse(text);
    free(text);
    if (root == NULL || !cJSON_IsObject(root)) die("%s: not a JSON object; hint: pass a Hugging Face config.json or a built-in name", path);
    const cJSON* mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt != NULL && cJSON_IsString(mt) && strcmp(mt->valuestring, "llama") != 0)
        die("%s: model_type is \"%s\", only \"llama\" is supported", path, mt->valuestring);
    const cJSON* act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act != NULL && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        die("%s: hidden_act must be \"silu\" (SwiGLU)", path);
    const cJSON* tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie != NULL && !cJSON_IsNull(tie) && !cJSON_IsBool(tie)) die("%s: tie_word_embeddings must be true or false", path);
    // RoPE scaling: transformers 4.x says "rope_scaling" {"rope_type" (or "type"), ...} beside a
    // top-level rope_theta; 5.x says "rope_parameters" {"rope_type", "rope_theta", ...}
    const cJSON* rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON* rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rs != NULL && !cJSON_IsNull(rs) && !cJSON_IsObject(rs)) die("%s: rope_scaling must be an object or null", path);
    if (rp != NULL && !cJSON_IsNull(rp) && !cJSON_IsObject(rp)) die("%s: rope_parameters must be an object or null", path);
    const cJSON* rsrc = cJSON_IsObject(rp) ? rp : cJSON_IsObject(rs) ? rs : NULL;
    const char* rope_type = "default";
    if (rsrc != NULL) {
        const cJSON* rt = cJSON_GetObjectItemCaseSensitive(rsrc, "rope_type");
        if (rt == NULL || cJSON_IsNull(rt)) rt = cJSON_GetObjectItemCaseSensitive(rsrc, "type");
        if (rt != NULL && !cJSON_IsNull(rt)) {
            if (!cJSON_IsString(rt)) die("%s: %s's rope_type must be a string", path, rsrc == rp ? "rope_parameters" : "rope_scaling");
            rope_type = rt->valuestring;
        }
        if (strcmp(rope_type, "dynamic") == 0)
            die("%s: RoPE scaling type \"dynamic\" (NTK rescaled at run time past the trained length) is not supported; "
                "hint: \"linear\" and \"llama3\" are, or remove rope_scaling to train with the default RoPE", path);
        if (strcmp(rope_type, "default") != 0 && strcmp(rope_type, "llama3") != 0 && strcmp(rope_type, "linear") != 0)
            die("%s: RoPE scaling type \"%.32s\" is not supported yet (\"default\", \"linear\" and \"llama3\" are); hint: a model of another family", path, rope_type);
    }
    const cJSON* ab = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
    if (ab != NULL && cJSON_IsTrue(ab)) die("%s: attention_bias=true is not supported", path);
    const cJSON* mb = cJSON_GetObjectItemCaseSensitive(root, "mlp_bias");
    if (mb != NULL && cJSON_IsTrue(mb)) die("%s: mlp_bias=true is not supported", path);
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", path);
    c->C = json_int(root, "hidden_size", -2, path);
    c->H = json_int(root, "intermediate_size", -2, path);
    c->NH = json_int(root, "num_attention_heads", -2, path);
    c->NKV = json_int(root, "num_key_value_heads", c->NH, path);
    c->L = json_int(root, "num_hidden_layers", -2, path);
    c->V = json_int(root, "vocab_size", -2, path);
    int maxT = json_int(root, "max_position_embeddings", -1, path);
    if (maxT < 0) maxT = json_int(root, "max_sequence_length", 2048, path);
    c->maxT = maxT;
    c->norm_eps = (float)json_num(root, "rms_norm_eps", 1e-6, path);
    c->rope_theta = (float)json_num(root, "rope_theta", 10000.0, path);
    if (rp != NULL && cJSON_IsObject(rp)) c->rope_theta = (float)json_num(rp, "rope_theta", c->rope_theta, path);
    if (strcmp(rope_type, "linear") == 0) {
        c->rope_type = ROPE_LINEAR;
        c->rope_factor = json_num(rsrc, "factor", -1.0, path);
        if (!(c->rope_factor > 0.0)) die("%s: linear RoPE scaling needs factor > 0 (got %g)", path, c->rope_factor);
    }
    if (strcmp(rope_type, "llama3") == 0) {
        c->rope_type = ROPE_LLAMA3;
        c->rope_factor = json_num(rsrc, "factor", -1.0, path);
        c->rope_low_freq_factor = json_num(rsrc, "low_freq_factor", -1.0, path);
        c->rope_high_freq_factor = json_num(rsrc, "high_freq_factor", -1.0, path);
        c->rope_original_maxT = json_int(rsrc, "original_max_position_embeddings", -2, path);
        if (!(c->rope_factor >= 1.0) || !(c->rope_low_freq_factor > 0.0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
            c->rope_original_maxT <= 0)
            die("%s: llama3 RoPE scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0 "
                "(got %g, %g, %g, %d)", path, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_maxT);
    }
    c->tied = tie != NULL && cJSON_IsTrue(tie);
    c->HD = json_int(root, "head_dim", -1, path);
    if (c->HD < 0 && c->NH > 0) {
        if (c->C % c->NH != 0) die("%s: hidden_size %d is not divisible by num_attention_heads %d and no head_dim is given", path, c->C, c->NH);
        c->HD = c->C / c->NH;
    }
    cJSON_Delete(root);
    llama_config_validate(c, path);
}

// llama_config_resolve: a built-in name, or a path to a config.json
static void llama_config_resolve(LlamaConfig* c, const char* spec) {
    for (int i = 0; i < LLAMA_NUM_PRESETS; i++) {
        const LlamaPreset* p = &LLAMA_PRESETS[i];
        if (strcmp(spec, p->name) == 0) {
            memset(c, 0, sizeof *c);
            snprintf(c->name, sizeof c->name, "%s", p->name);
            c->C = p->C; c->H = p->H; c->NH = p->NH; c->NKV = p->NKV; c->L = p->L; c->V = p->V; c->maxT = p->maxT;
            c->norm_eps = 1e-6f; c->rope_theta = 10000.0f;
            c->HD = p->C / p->NH;
            return;
        }
    }
    if (st_is_dir(spec)) { // a Hugging Face model folder: its config.json
        char path[1100];
        if (strlen(spec) > 1000) die("--model %s: path too long (over 1000 characters)", spec);
        snprintf(path, sizeof path, "%s/config.json", spec);
        if (access(path, F_OK) != 0) die("--model %s: a folder without config.json; pass a Hugging Face model folder, a config.json or a built-in name", spec);
        llama_config_from_json(c, path);
        return;
    }
    if (strstr(spec, ".json") == NULL) {
        char names[512] = "", best[64];
        for (int i = 0; i < LLAMA_NUM_PRESETS; i++) { strcat(names, i ? "|" : ""); strcat(names, LLAMA_PRESETS[i].name); }
        if (str_closest(names, spec, best, sizeof best)) die("--model %s: did you mean %s? (built-in configs: %s)", spec, best, names);
        die("--model %s: not a built-in config (%s), a model folder nor a path to a config.json", spec, names);
    }
    llama_config_from_json(c, spec);
}

// llama_config_write: config.json beside the weights, so transformers' from_pretrained opens them
static void llama_config_write(const LlamaConfig* c, const char* path, const char* torch_dtype) {
    cJSON* root = cJSON_CreateObject();
    cJSON* arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", "llama");
    cJSON_AddNumberToObject(root, "hidden_size", c->C);
    cJSON_AddNumberToObject(root, "intermediate_size", c->H);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->NH);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->NKV);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->L);
    cJSON_AddNumberToObject(root, "vocab_size", c->V);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->maxT);
    cJSON_AddNumberToObject(root, "head_dim", c->HD);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta); // transformers 4.x reads this
    cJSON* rp = cJSON_AddObjectToObject(root, "rope_parameters"); // and 5.x this
    cJSON_AddNumberToObject(rp, "rope_theta", c->rope_theta);
    static const char* const rope_names[] = {"default", "llama3", "linear"};
    cJSON_AddStringToObject(rp, "rope_type", rope_names[c->rope_type]);
    if (c->rope_type == ROPE_LINEAR) {
        cJSON* rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "linear");
        cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
        cJSON_AddNumberToObject(rp, "factor", c->rope_factor);
    }
    if (c->rope_type == ROPE_LLAMA3) {
        cJSON* rs = cJSON_AddObjectToObject(root, "rope_scaling"); // 4.x's place for the same
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        for (int k = 0; k < 2; k++) {
            cJSON* o = k ? rs : rp;
            cJSON_AddNumberToObject(o, "factor", c->rope_factor);
            cJSON_AddNumberToObject(o, "low_freq_factor", c->rope_low_freq_factor);
            cJSON_AddNumberToObject(o, "high_freq_factor", c->rope_high_freq_factor);
            cJSON_AddNumberToObject(o, "original_max_position_embeddings", c->rope_original_maxT);
        }
    }
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied);
    cJSON_AddBoolToObject(root, "attention_bias", 0);
    cJSON_AddBoolToObject(root, "mlp_bias", 0);
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype);
    st_write_json(path, root);
    cJSON_Delete(root);
}

// ----------------------------------------------------------------------------
// the parameter table

// per-layer tensor slots, in HF order
enum { P_LN1 = 0, P_WQ, P_WK, P_WV, P_WO, P_LN2, P_WG, P_WU, P_WD, P_PER_LAYER };
static const char* const LLAMA_LAYER_NAMES[P_PER_LAYER] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
};

typedef struct {
    char name[96];     // HF name
    int ndim;          // 1 or 2
    int64_t rows;      // out_features (or the length of a 1-D tensor)
    int64_t cols;      // in_features (1 for 1-D)
    int64_t numel;
    size_t offset;     // in floats, into the flat parameter buffer
    int layer;         // -1 for embed, final norm, lm_head
    int galore;        // 1 for the q/k/v/o and gate/up/down weights (names with "attn" or "mlp")
} ParamInfo;

typedef struct {
    int n;             // number of tensors: 1 + 9 L + 2 (1 + 9 L + 1 tied: no lm_head)
    ParamInfo* info;   // (n)
    size_t total;      // floats in the flat buffer
} ParamTable;

// tensor index helpers: embed is 0, layer l slot j is 1 + 9 l + j, then norm, lm_head. Tied
// embeddings have no lm_head tensor: pt_lm_head is the embedding (0), whose gradient gets both
// uses (backward's lm_head matmul adds into it, the lookup's rows add after)
static inline int pt_layer(int l, int slot) { return 1 + l * P_PER_LAYER + slot; }
static inline int pt_norm(const LlamaConfig* c) { return 1 + c->L * P_PER_LAYER; }
static inline int pt_lm_head(const LlamaConfig* c) { return c->tied ? 0 : 2 + c->L * P_PER_LAYER; }

static void param_table_build(ParamTable* pt, const LlamaConfig* c) {
    int QD = llama_qdim(c), KV = llama_kvdim(c);
    pt->n = (c->tied ? 2 : 3) + c->L * P_PER_LAYER;
    pt->info = (ParamInfo*)callocCheck((size_t)pt->n, sizeof(ParamInfo));
    size_t off = 0;
    for (int i = 0; i < pt->n; i++) {
        ParamInfo* p = &pt->info[i];
        int64_t rows, cols;
        p->layer = -1;
        if (i == 0) {
            snprintf(p->name, sizeof p->name, "model.embed_tokens.weight"); rows = c->V; cols = c->C;
        } else if (i == pt_norm(c)) {
            snprintf(p->name, sizeof p->name, "model.norm.weight"); rows = c->C; cols = 1;
        } else if (i == pt_norm(c) + 1) {
            snprintf(p->name, sizeof p->name, "lm_head.weight"); rows = c->V; cols = c->C;
        } else {
            int l = (i - 1) / P_PER_LAYER, j = (i - 1) % P_PER_LAYER;
            p->layer = l;
            snprintf(p->name, sizeof p->name, "model.layers.%d.%s", l, LLAMA_LAYER_NAMES[j]);
            switch (j) {
                case P_LN1: case P_LN2: rows = c->C; cols = 1; break;
                case P_WQ: rows = QD; cols = c->C; break;
                case P_WK: case P_WV: rows = KV; cols = c->C; break;
                case P_WO: rows = c->C; cols = QD; break;
                case P_WG: case P_WU: rows = c->H; cols = c->C; break;
                default: rows = c->C; cols = c->H; break; // P_WD
            }
            p->galore = (j != P_LN1 && j != P_LN2);
        }
        p->ndim = cols == 1 ? 1 : 2;
        p->rows = rows; p->cols = cols; p->numel = rows * cols;
        p->offset = off;
        off += (size_t)p->numel;
    }
    pt->total = off;
}

static void param_table_free(ParamTable* pt) { free(pt->info); pt->info = NULL; }

// llama_init_params: HF's init for LLaMA: Linear and Embedding weights N(0, 0.02), norms 1.
// One stream from --seed, tensors in table order, so a run is reproducible.
static void llama_init_params(const ParamTable* pt, float* params, uint64_t seed) {
    Rng rng; rng_init(&rng, seed);
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        float* w = params + p->offset;
        if (p->ndim == 1) { for (int64_t k = 0; k < p->numel; k++) w[k] = 1.0f; }
        else { for (int64_t k = 0; k < p->numel; k++) w[k] = (float)(0.02 * rng_normal(&rng)); }
    }
}

// llama_load_params: every table tensor must be present with the right shape, from path: a
// Hugging Face model folder (model.safetensors, or shards through model.safetensors.index.json),
// or one of its files; F32/BF16/F16 converted to f32 tensor by tensor from the mapped files into
// params. Extra tensors (e.g. rotary inv_freq buffers some exporters add) are ignored with a note.
static void llama_load_params(const ParamTable* pt, float* params, const char* path) {
    SafeFolder sf;
    safefolder_open(&sf, path);
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        const SafeTensors* st = NULL;
        const SafeTensor* t = safefolder_find(&sf, p->name, &st);
        if (t == NULL) die("%s: tensor %s is missing; hint: the weights do not match the config (--model)", safefolder_where(&sf), p->name);
        int ok = (p->ndim == 1) ? (t->ndim == 1 && t->shape[0] == p->rows)
                                : (t->ndim == 2 && t->shape[0] == p->rows && t->shape[1] == p->cols);
        if (!ok) {
            die("%s: tensor %s has shape [%lld%s%lld], the config wants [%lld%s%lld]; hint: pass the matching --model",
                st->path, p->name, (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                (long long)p->rows, p->ndim > 1 ? ", " : "", p->ndim > 1 ? (long long)p->cols : 0LL);
        }
        safetensors_read_f32(st, t, params + p->offset);
    }
    int held = 0;
    for (int k = 0; k < sf.nfiles; k++) held += sf.files[k].n;
    if (held != pt->n) printf("note: %s holds %d tensors, %d of them used\n", path, held, pt->n);
    safefolder_close(&sf);
}

// llama_weights_dtype: ST_BF16 or ST_F16 when every table tensor at path has that dtype, else
// ST_F32 (the dtype a save that keeps the user's layout writes back; F16 is written as F32,
// which holds every F16 value exactly). Reads only the headers.
static int llama_weights_dtype(const LlamaConfig* c, const char* path) {
    ParamTable pt;
    param_table_build(&pt, c);
    SafeFolder sf;
    safefolder_open(&sf, path);
    int dtype = -1;
    for (int i = 0; i < pt.n; i++) {
        const SafeTensors* st = NULL;
        const SafeTensor* t = safefolder_find(&sf, pt.info[i].name, &st);
        if (t == NULL) continue; // the load says so
        if (dtype < 0) dtype = t->dtype; else if (dtype != t->dtype) dtype = ST_F32;
    }
    safefolder_close(&sf);
    param_table_free(&pt);
    return dtype == ST_BF16 ? ST_BF16 : ST_F32;
}

// llama_init_config_path: the config.json that goes with --init's weights: inside the folder,
// or beside the file
static void llama_init_config_path(const char* init, char* buf, size_t cap) {
    if (strlen(init) > 900) die("--init %s: path too long (over 900 characters)", init);
    if (st_is_dir(init)) { snprintf(buf, cap, "%s/config.json", init); return; }
    snprintf(buf, cap, "%s", init);
    char* slash = strrchr(buf, '/');
    if (slash) strcpy(slash + 1, "config.json"); else snprintf(buf, cap, "config.json");
}

// llama_save: DIR/config.json and the weights as safetensors_save_folder writes them (one file,
// or shards of at most shard_bytes with an index; 0: always one file), each file atomic
static void llama_save(const LlamaConfig* c, const ParamTable* pt, const float* params, const char* dir, int dtype, int64_t shard_bytes) {
    if (strlen(dir) > 900) die("--out %s: path too long (over 900 characters)", dir);
    ensure_dir(dir);
    SafeTensorOut* outs = (SafeTensorOut*)mallocCheck(sizeof(SafeTensorOut) * (size_t)pt->n);
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* p = &pt->info[i];
        outs[i].name = p->name;
        outs[i].ndim = p->ndim;
        outs[i].shape[0] = p->rows;
        outs[i].shape[1] = p->cols;
        outs[i].data = params + p->offset;
    }
    safetensors_save_folder(dir, outs, pt->n, dtype, shard_bytes);
    free(outs);
    char path[1000];
    snprintf(path, sizeof path, "%.900s/config.json", dir);
    llama_config_write(c, path, dtype == ST_BF16 ? "bfloat16" : "float32");
}

// update groups for --per-layer: the tensors whose gradients backward finishes together, and
// that are updated together the moment it has: the embedding; in each layer, each matmul's
// weights (q|k|v and gate|up are one fused matmul each) and each norm; the final norm; lm_head.
// Per-layer mode's gradient buffer is the largest group's: for llama_7b the embedding or lm_head
// (250 MiB in bf16) instead of a whole layer (386 MiB). Groups are contiguous in the table, and
// backward meets them in reverse table order (sub: a layer's slots -> its group within the layer).
// Tied embeddings: lm_head's gradient (backward's first) and the lookup's (its last) both go into
// the embedding's group, which is updated once, after the lookup.
#define GROUPS_PER_LAYER 6
static int param_group(const LlamaConfig* c, int i) {
    static const int sub[P_PER_LAYER] = {0, 1, 1, 1, 2, 3, 4, 4, 5}; // ln1, q|k|v, o, ln2, gate|up, down
    if (i == 0) return 0;
    if (i < pt_norm(c)) return 1 + ((i - 1) / P_PER_LAYER) * GROUPS_PER_LAYER + sub[(i - 1) % P_PER_LAYER];
    return 1 + c->L * GROUPS_PER_LAYER + (i - pt_norm(c));
}

// grad_layout: the gradient slots of both engines (and the memory plan). Whole-model: each tensor
// at its parameter offset. Per-layer: each group's tensors from offset 0, since the groups take
// turns in one buffer, so it is the largest group's size. Fills goff (n) when not NULL; returns
// the buffer's size in elements.
// Tied embeddings in per-layer mode: the embedding's slot holds lm_head's gradient through the
// whole backward, so it has its own place after the shared slots (they take turns under it).
static size_t grad_layout(const ParamTable* pt, const LlamaConfig* c, int per_layer, size_t* goff) {
    size_t size = 0;
    int own = per_layer && c->tied; // the embedding (tensor 0) in its own slot
    for (int i = own ? 1 : 0; i < pt->n; i++) {
        int first = per_layer ? i : 0; // the group's first tensor; whole-model: one group of all
        if (per_layer) while (first > 0 && param_group(c, first - 1) == param_group(c, i)) first--;
        size_t o = pt->info[i].offset - pt->info[first].offset;
        if (goff) goff[i] = o;
        size_t end = o + (size_t)pt->info[i].numel;
        if (end > size) size = end;
    }
    if (own) {
        if (goff) goff[0] = size;
        size += (size_t)pt->info[0].numel;
    }
    return size;
}

// llama_rope_inv_freq: the rotation frequency of pair i, as transformers computes it in float32:
// default 1 / theta^(2i/HD); llama3 (_compute_llama3_parameters) keeps the short wavelengths
// (< original_max / high_freq_factor), divides the long ones (> original_max / low_freq_factor)
// by factor, and in between blends the two: (1 - s) inv / factor + s inv with
// s = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
// linear (_compute_linear_scaling_rope_parameters): inv / factor, i.e. positions / factor
static float llama_rope_inv_freq(const LlamaConfig* c, int i) {
    int HD = c->HD;
    float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)HD);
    if (c->rope_type == ROPE_LINEAR) return inv / (float)c->rope_factor;
    if (c->rope_type != ROPE_LLAMA3) return inv;
    float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor, hi = (float)c->rope_high_freq_factor;
    float orig = (float)c->rope_original_maxT;
    float low_wavelen = orig / lo, high_wavelen = orig / hi;
    float wavelen = 2.0f * (float)M_PI / inv;
    if (wavelen < high_wavelen) return inv;
    if (wavelen > low_wavelen) return inv / factor;
    float s = (orig / wavelen - lo) / (hi - lo);
    return (1.0f - s) * inv / factor + s * inv;
}

// llama_rope_tables: cos/sin (maxT, HD/2) as HF computes them, in float32: angle = pos * inv_freq
// rounded to float, then cos/sin in float. Built once here for both engines.
static void llama_rope_tables(const LlamaConfig* c, float* cosb, float* sinb) {
    int half = c->HD / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = llama_rope_inv_freq(c, i);
        for (int t = 0; t < c->maxT; t++) {
            float angle = (float)t * inv_freq;
            cosb[t * half + i] = cosf(angle);
            sinb[t * half + i] = sinf(angle);
        }
    }
}

// parameter counts for the startup line and the memory plan
static size_t llama_num_params(const ParamTable* pt) { return pt->total; }
static size_t llama_num_galore_params(const ParamTable* pt) {
    size_t n = 0;
    for (int i = 0; i < pt->n; i++) if (pt->info[i].galore) n += (size_t)pt->info[i].numel;
    return n;
}

// llama_flops_per_token: forward + backward FLOPs of one token at sequence length T
// (6 per weight for the matmuls, plus attention's QK^T and PV, causal so half of T^2)
static double llama_flops_per_token(const LlamaConfig* c, const ParamTable* pt, int T) {
    // the embedding lookup is not a matmul; a tied lm_head is one (counted once in total)
    double matmul = 6.0 * (double)(pt->total - (c->tied ? 0 : (size_t)c->V * c->C));
    double attn = 6.0 * 2.0 * c->L * (double)llama_qdim(c) * T * 0.5;
    return matmul + attn;
}

// ----------------------------------------------------------------------------
// fixed sizes of GPU buffers, here so that memplan.h plans them on any machine: the rmsnorm
// backward's row chunks (llama_kernels.cuh: deterministic dw in two passes), the fixed grid of the
// gradient-norm partials, and the cuBLASLt workspace (Hopper's recommended size)
#define RMS_DW_CHUNKS 64
#define NORM_BLOCKS 512
// the device's target counts kept after the targets (llama_kernels.cuh's TC_NUM: valid, first bad,
// the count the classifier divides by; a static_assert there keeps them equal)
#define GPU_TARGET_COUNTS 3
#define MATMUL_WORKSPACE_BYTES ((size_t)32 << 20)

#endif // LLAMA_H
