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
//                           files beside it (tokenizer.model, tokenizer.json, tokenizer_config.json,
//                           special_tokens_map.json), and a tokenizer_config.json naming the special
//                           tokens where it had none (transformers' conversion of a sentencepiece
//                           BPE model gives sentencepiece's ids, except for leading spaces); for a
//                           unigram model also a tokenizer.json that gives sentencepiece's ids in
//                           tokenizers (hf_write_unigram_json), which transformers' own conversion
//                           does not (this program reads the tokenizer.bin: its --prompt is exact)
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

// base64 (RFC 4648, padded) of b[0..n) into a malloc'd NUL-terminated string
static char* hf_base64(const uint8_t* b, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char* out = (char*)mallocCheck(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        *o++ = A[v >> 18]; *o++ = A[(v >> 12) & 63];
        *o++ = i + 1 < n ? A[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? A[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static cJSON* hf_json_typed(const char* type) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}
// a Replace normalizer or decoder: pattern {kind: from} -> to
static cJSON* hf_json_replace(const char* kind, const char* from, const char* to) {
    cJSON* o = hf_json_typed("Replace"), *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(pat, kind, from);
    cJSON_AddItemToObject(o, "pattern", pat);
    cJSON_AddStringToObject(o, "content", to);
    return o;
}

// hf_write_unigram_json: a tokenizer.json in which Hugging Face tokenizers encodes as
// sentencepiece does with the unigram model t (transformers' own conversion of the .model, as
// T5Tokenizer, splits at every whitespace and drops newlines and tabs: 11 of the 32 texts of
// dev/test/make_tokenizers.py got sentencepiece's ids). The model: the pieces and scores, unk,
// byte fallback, over the whole normalized text (no pre-tokenizer: sentencepiece's Viterbi sees
// the whole text); the normalizer: the charsmap (Precompiled), then sentencepiece's whitespace
// rules on ' ' only (remove_extra_whitespaces: none at the ends, one for a run; the dummy
// prefix; ' ' -> '▁'); control and unknown pieces as special added tokens, as transformers
// makes them (user-defined pieces stay pieces of the model, at their score 0: as added tokens
// the Prepend would put a '▁' after each; one that the charsmap changes, as full-width letters,
// is normalized there, not in sentencepiece). No post-processor: no bos or eos around the text, as the shards of dev/data hold
// documents. Where tokenizers still differs: the text of a special piece ("</s>") is that token,
// and its Precompiled normalizes graphemes of 6 bytes or more character by character (two Hangul
// jamo stay apart where sentencepiece composes them).
static void hf_write_unigram_json(const char* path, const Tokenizer* t) {
    static const char SPACE_MARK[] = "\xE2\x96\x81";
    cJSON* root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON* added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON* vocab = cJSON_CreateArray();
    char* piece = (char*)mallocCheck(256 + 1);
    for (int i = 0; i < t->vocab_size; i++) {
        snprintf(piece, 257, "%.*s", t->lengths[i], t->pieces[i]);
        cJSON* pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(piece));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(t->scores[i]));
        cJSON_AddItemToArray(vocab, pair);
        if (t->types[i] != TOK_CONTROL && t->types[i] != TOK_UNKNOWN) continue;
        cJSON* a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", piece);
        static const char* const OFF[4] = {"single_word", "lstrip", "rstrip", "normalized"};
        for (int k = 0; k < 4; k++) cJSON_AddBoolToObject(a, OFF[k], 0);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    free(piece);
    cJSON* norm = hf_json_typed("Sequence"), *list = cJSON_AddArrayToObject(norm, "normalizers");
    if (t->charsmap_len) {
        cJSON* pc = hf_json_typed("Precompiled");
        char* b64 = hf_base64(t->charsmap, t->charsmap_len);
        cJSON_AddStringToObject(pc, "precompiled_charsmap", b64);
        free(b64);
        cJSON_AddItemToArray(list, pc);
    }
    if (t->flags & TOKF_REMOVE_WS) {
        cJSON_AddItemToArray(list, hf_json_replace("Regex", "\\A +| +\\z", ""));
        cJSON_AddItemToArray(list, hf_json_replace("Regex", " {2,}", " "));
    }
    if (t->flags & TOKF_DUMMY_PREFIX) {
        cJSON* pre = hf_json_typed("Prepend");
        cJSON_AddStringToObject(pre, "prepend", SPACE_MARK);
        cJSON_AddItemToArray(list, pre);
    }
    if (t->flags & TOKF_ESCAPE_WS) cJSON_AddItemToArray(list, hf_json_replace("String", " ", SPACE_MARK));
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON_AddNullToObject(root, "pre_tokenizer");
    cJSON_AddNullToObject(root, "post_processor");
    cJSON* dec = hf_json_typed("Sequence"), *dl = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(dl, hf_json_replace("String", SPACE_MARK, " "));
    cJSON_AddItemToArray(dl, hf_json_typed("ByteFallback"));
    cJSON_AddItemToArray(dl, hf_json_typed("Fuse"));
    if (t->flags & TOKF_DUMMY_PREFIX) {
        cJSON* st = hf_json_typed("Strip");
        cJSON_AddStringToObject(st, "content", " ");
        cJSON_AddNumberToObject(st, "start", 1);
        cJSON_AddNumberToObject(st, "stop", 0);
        cJSON_AddItemToArray(dl, st);
    }
    cJSON_AddItemToObject(root, "decoder", dec);
    cJSON* model = hf_json_typed("Unigram");
    if (t->unk_id >= 0) cJSON_AddNumberToObject(model, "unk_id", t->unk_id);
    else cJSON_AddNullToObject(model, "unk_id");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddBoolToObject(model, "byte_fallback", (t->flags & TOKF_BYTE_FALLBACK) != 0);
    cJSON_AddItemToObject(root, "model", model);
    st_write_json(path, root);
    cJSON_Delete(root);
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
    // (a tokenizer.json beside a tokenizer.bin: the one written below for a unigram model)
    static const char* const COMPANIONS[4] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    int has_config = 0;
    for (int k = 0; k < 4; k++) {
        // tokenizer.model only beside a tokenizer.bin (the sentencepiece model it was exported from)
        if (k < 2 && tok->source != TOKSRC_SPM) continue;
        snprintf(src, sizeof src, "%.*s/%s", PATHLEN, srcdir, COMPANIONS[k]);
        snprintf(path, sizeof path, "%.*s/%s", PATHLEN, dir, COMPANIONS[k]);
        if (!file_exists(src)) continue;
        hf_copy_file(src, path);
        has_config |= k == 2;
    }
    snprintf(path, sizeof path, "%.*s/tokenizer.model", PATHLEN, dir);
    if (has_config || (tok->source == TOKSRC_SPM && !file_exists(path))) return; // a tokenizer.bin alone: this program's own
    // tokenizer_config.json: the class, the special tokens by their text, and (sentencepiece) no
    // bos before the text, as the shards of dev/data hold documents without one
    cJSON* tc = cJSON_CreateObject();
    char piece[512];
    // sentencepiece: BPE is Llama's kind (transformers' LlamaTokenizer); unigram is T5's, whose
    // tokenizer.json this program writes (hf_write_unigram_json)
    int unigram = tok->source == TOKSRC_SPM && tok->model == TOKMODEL_UNIGRAM;
    if (unigram) {
        snprintf(path, sizeof path, "%.*s/tokenizer.json", PATHLEN, dir);
        hf_write_unigram_json(path, tok);
    }
    cJSON_AddStringToObject(tc, "tokenizer_class", tok->source == TOKSRC_HF || unigram ? "PreTrainedTokenizerFast" : "LlamaTokenizer");
    static const char* const NAMES[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int ids[4] = {tok->bos_id, tok->eos_id, tok->unk_id, tok->pad_id};
    for (int k = 0; k < 4; k++) {
        hf_piece(tok, ids[k], piece, sizeof piece);
        if (piece[0]) cJSON_AddStringToObject(tc, NAMES[k], piece);
    }
    if (tok->source == TOKSRC_SPM && !unigram) {
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
