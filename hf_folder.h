// hf_folder.h: what a saved model folder holds beside its weights, so that it is complete for
// Hugging Face (AutoTokenizer / AutoModelForCausalLM.from_pretrained(dir).generate()) and for this
// program (--init DIR brings its tokenizer): every save (the exported model, each checkpoint's
// model) gets
//   config.json             llama_config_write's fields, plus every field of the --init model's
//                           config.json that the program does not own (bos/eos/pad token ids,
//                           transformers_version, use_cache, ...); missing token ids from the tokenizer
//   generation_config.json  --init's own when it has one, else bos/eos/pad from config.json, so that
//                           generate() stops on the model's eos
//   the tokenizer           the file the run used (tokenizer.json, or tokenizer.bin), the Hugging Face
//                           files beside it (tokenizer.model, tokenizer_config.json,
//                           special_tokens_map.json), and a tokenizer_config.json naming the special
//                           tokens where it had none (transformers' conversion of a sentencepiece
//                           model gives sentencepiece's ids for BPE, except for leading spaces; not
//                           for every text of a unigram model: this program's --prompt is exact)
#ifndef HF_FOLDER_H
#define HF_FOLDER_H

#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "utils.h"
#include "safetensors.h"
#include "cli.h"
#include "tokenizer.h"

// hf_copy_file: src to dst, atomic (dst.tmp renamed over dst); dies naming the file
static void hf_copy_file(const char* src, const char* dst) {
    FILE* in = fopenCheck(src, "rb");
    int64_t n = file_size(in, src);
    char* buf = (char*)mallocCheck((size_t)n + 1);
    freadCheck(buf, 1, (size_t)n, in, src);
    fclose(in);
    char tmp[PATHLEN + 64];
    snprintf(tmp, sizeof tmp, "%.*s.tmp", PATHLEN, dst);
    FILE* out = fopenCheck(tmp, "wb");
    if (n && fwrite(buf, 1, (size_t)n, out) != (size_t)n) die("%s: cannot write: %s", tmp, strerror(errno));
    file_commit(out, tmp, dst);
    free(buf);
}

static cJSON* hf_read_json(const char* path) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) return NULL;
    int64_t n = file_size(f, path);
    char* text = (char*)mallocCheck((size_t)n + 1);
    freadCheck(text, 1, (size_t)n, f, path);
    fclose(f);
    text[n] = '\0';
    cJSON* root = cJSON_Parse(text);
    free(text);
    if (root && !cJSON_IsObject(root)) { cJSON_Delete(root); root = NULL; }
    return root;
}

// the piece text of a special token, as tokenizer_config.json names it ("" when none)
static void hf_piece(const Tokenizer* t, int id, char* out, size_t cap) {
    out[0] = '\0';
    if (t == NULL || id < 0 || id >= t->vocab_size || t->pieces[id] == NULL) return;
    snprintf(out, cap, "%.*s", t->lengths[id], t->pieces[id]);
}

// the config's token ids: --init's where it had them, else the tokenizer's (bos, eos, pad)
static void hf_token_ids(cJSON* cfg, const Tokenizer* t) {
    static const char* const KEYS[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    int ids[3] = {t ? t->bos_id : -1, t ? t->eos_id : -1, t ? t->pad_id : -1};
    for (int k = 0; k < 3; k++)
        if (!cJSON_HasObjectItem(cfg, KEYS[k]) && ids[k] >= 0) cJSON_AddNumberToObject(cfg, KEYS[k], ids[k]);
}

// hf_eos_ids: the eos ids a model folder's generate() stops on: generation_config.json's
// eos_token_id (a number or a list: Llama 3 Instruct's end_of_text and eot_id), else
// config.json's; config is the folder's config.json ("": none). Returns how many went into ids.
static int hf_eos_ids(const char* config, int* ids, int cap) {
    if (!config[0]) return 0;
    char path[PATHLEN + 64];
    snprintf(path, sizeof path, "%.*s", PATHLEN, config);
    char* slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, 32, "generation_config.json");
    cJSON* root = hf_read_json(path);
    const cJSON* v = root ? cJSON_GetObjectItemCaseSensitive(root, "eos_token_id") : NULL;
    if (v == NULL || cJSON_IsNull(v)) { cJSON_Delete(root); root = hf_read_json(config); v = root ? cJSON_GetObjectItemCaseSensitive(root, "eos_token_id") : NULL; }
    int n = 0;
    if (cJSON_IsNumber(v) && cap > 0) ids[n++] = v->valueint;
    const cJSON* it;
    if (cJSON_IsArray(v)) cJSON_ArrayForEach(it, v) if (cJSON_IsNumber(it) && n < cap) ids[n++] = it->valueint;
    cJSON_Delete(root);
    return n;
}

// hf_folder_complete: dir holds config.json and the weights (llama_save); init_config is the
// config.json the model came from ("" for a built-in or --model config), tokenizer the file the
// run used ("" or a missing file: none), tok it loaded (NULL: none)
static void hf_folder_complete(const char* dir, const char* init_config, const char* tokenizer, const Tokenizer* tok) {
    char path[PATHLEN + 64], src[PATHLEN + 64], srcdir[PATHLEN];
    // config.json: ours, then --init's fields that we do not write
    snprintf(path, sizeof path, "%.*s/config.json", PATHLEN, dir);
    cJSON* cfg = hf_read_json(path);
    if (cfg == NULL) die("%s: cannot read back the config.json just written", path);
    cJSON* init = init_config[0] ? hf_read_json(init_config) : NULL;
    // keys the program reads itself (llama_config_from_json) stay as it wrote them, even where
    // --init spelled them another way (rope_scaling of a default rope is written as none)
    static const char* const OWNED[] = {"rope_scaling", "dtype", "torch_dtype", "num_key_value_heads", "head_dim"};
    const cJSON* it;
    cJSON_ArrayForEach(it, init) {
        int owned = cJSON_HasObjectItem(cfg, it->string);
        for (size_t k = 0; k < sizeof OWNED / sizeof OWNED[0]; k++) owned |= strcmp(it->string, OWNED[k]) == 0;
        if (!owned) cJSON_AddItemToObject(cfg, it->string, cJSON_Duplicate(it, 1));
    }
    hf_token_ids(cfg, tok);
    st_write_json(path, cfg);
    // generation_config.json: --init's, else the config's token ids
    char init_dir[PATHLEN];
    snprintf(init_dir, sizeof init_dir, "%.*s", PATHLEN - 1, init_config);
    char* slash = strrchr(init_dir, '/');
    if (slash) *slash = '\0'; else snprintf(init_dir, sizeof init_dir, ".");
    snprintf(src, sizeof src, "%.*s/generation_config.json", PATHLEN, init_dir);
    snprintf(path, sizeof path, "%.*s/generation_config.json", PATHLEN, dir);
    if (init_config[0] && file_exists(src)) {
        hf_copy_file(src, path);
    } else {
        cJSON* gen = cJSON_CreateObject();
        cJSON_AddBoolToObject(gen, "_from_model_config", 1);
        static const char* const KEYS[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
        for (int k = 0; k < 3; k++) {
            const cJSON* v = cJSON_GetObjectItemCaseSensitive(cfg, KEYS[k]);
            if (v && !cJSON_IsNull(v)) cJSON_AddItemToObject(gen, KEYS[k], cJSON_Duplicate(v, 1));
        }
        st_write_json(path, gen);
        cJSON_Delete(gen);
    }
    cJSON_Delete(init);
    cJSON_Delete(cfg);
    // the tokenizer: the file, then its Hugging Face companions
    if (tok == NULL || !tokenizer[0] || !file_exists(tokenizer)) return;
    snprintf(srcdir, sizeof srcdir, "%.*s", PATHLEN - 1, tokenizer);
    slash = strrchr(srcdir, '/');
    if (slash) *slash = '\0'; else snprintf(srcdir, sizeof srcdir, ".");
    snprintf(path, sizeof path, "%.*s/%s", PATHLEN, dir, tok->source == TOKSRC_HF ? "tokenizer.json" : "tokenizer.bin");
    hf_copy_file(tokenizer, path);
    static const char* const COMPANIONS[3] = {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"};
    int has_config = 0;
    for (int k = 0; k < 3; k++) {
        // tokenizer.model only beside a tokenizer.bin (the sentencepiece model it was exported from)
        if (k == 0 && tok->source != TOKSRC_SPM) continue;
        snprintf(src, sizeof src, "%.*s/%s", PATHLEN, srcdir, COMPANIONS[k]);
        snprintf(path, sizeof path, "%.*s/%s", PATHLEN, dir, COMPANIONS[k]);
        if (!file_exists(src)) continue;
        hf_copy_file(src, path);
        has_config |= k == 1;
    }
    snprintf(path, sizeof path, "%.*s/tokenizer.model", PATHLEN, dir);
    if (has_config || (tok->source == TOKSRC_SPM && !file_exists(path))) return; // a tokenizer.bin alone: this program's own
    // tokenizer_config.json: the class, the special tokens by their text, and (sentencepiece) no
    // bos before the text, as the shards of dev/data hold documents without one
    cJSON* tc = cJSON_CreateObject();
    char piece[512];
    // sentencepiece: BPE is Llama's kind; unigram is T5's (transformers' T5Tokenizer, which appends
    // eos as t5-base does; without the 100 sentinel ids that dev/data/c4.py maps to unk anyway)
    int t5 = tok->source == TOKSRC_SPM && tok->model == TOKMODEL_UNIGRAM;
    cJSON_AddStringToObject(tc, "tokenizer_class", tok->source == TOKSRC_HF ? "PreTrainedTokenizerFast" : t5 ? "T5Tokenizer" : "LlamaTokenizer");
    if (t5) cJSON_AddNumberToObject(tc, "extra_ids", 0);
    static const char* const NAMES[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int ids[4] = {tok->bos_id, tok->eos_id, tok->unk_id, tok->pad_id};
    for (int k = 0; k < 4; k++) {
        hf_piece(tok, ids[k], piece, sizeof piece);
        if (piece[0]) cJSON_AddStringToObject(tc, NAMES[k], piece);
    }
    if (tok->source == TOKSRC_SPM && !t5) {
        cJSON_AddBoolToObject(tc, "add_bos_token", 0);
        cJSON_AddBoolToObject(tc, "add_eos_token", 0);
        cJSON_AddBoolToObject(tc, "legacy", 0);
    }
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", 0);
    snprintf(path, sizeof path, "%.*s/tokenizer_config.json", PATHLEN, dir);
    st_write_json(path, tc);
    cJSON_Delete(tc);
}

#endif // HF_FOLDER_H
