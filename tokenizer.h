// tokenizer.h: token ids <-> UTF-8 text, for the two tokenizer files the program reads:
//   tokenizer.bin   SentencePiece (.model) exported by dev/data/export_tokenizer.py
//   tokenizer.json  Hugging Face tokenizers, model BPE: byte-level (GPT-2, Llama 3) or
//                   SentencePiece-style with byte fallback (Llama 2); or model Unigram (T5, and
//                   the tokenizer.json hf_folder.h writes for a unigram sentencepiece run)
// Decoding prints samples; encoding turns --prompt text into ids. The training data is encoded
// offline in Python (dev/data/c4.py, dev/data/prepare.py) by the reference libraries; this
// encoder gives the same ids (checked by dev/test/test_tokenizer.c against ids made by
// sentencepiece and tokenizers).
//
// File format of tokenizer.bin (little-endian):
//   header: 256 int32 (1024 bytes)
//     [0] magic 20241124   [1] version (1 or 2)   [2] vocab_size
//     [3] bos id   [4] eos id   [5] pad id (-1 if none)   [6] unk id (-1 if none)
//     version 2 only: [7] model type, sentencepiece's numbers (1 unigram, 2 bpe)
//     [8] flags TOKF_* (normalizer spec, byte fallback)   [9] charsmap bytes   rest 0
//   then, for each id 0 .. vocab_size-1:
//     uint8 type: 0 normal piece, 1 control, 2 byte-fallback, 3 unknown, 4 unused, 5 user-defined
//     uint8 length (0..255)
//     version 2 only: float32 score
//     length bytes: the SentencePiece piece text (UTF-8, U+2581 '▁' as the space marker;
//                   byte pieces as their text, e.g. "<0x0A>")
//   version 2 only: the normalizer's precompiled_charsmap (header[9] bytes), then nothing.
// Version 1 files (no scores) decode but cannot encode: re-export them.
//
// Decoding follows sentencepiece's DecodeIds: '▁' -> ' ', the leading '▁' of the first visible
// piece is dropped (the dummy prefix), runs of byte-fallback pieces become their raw bytes,
// control pieces (bos/eos/pad) print nothing, unknown pieces print " ⁇ ", and bytes that do not
// form valid UTF-8 (a byte-fallback run cut short, a stray continuation byte) print U+FFFD, one
// per byte: the output is always valid UTF-8. tokenizer.json decodes the same way through its
// decoder (ByteLevel: each char back to its byte; Replace/ByteFallback/Strip or Metaspace: as
// sentencepiece); special added tokens print nothing. One difference, on purpose: an id outside
// the vocabulary prints "<ID?>" instead of failing.
//
// Encoding (tokenizer_encode: text -> ids without bos/eos):
//   sentencepiece: the normalizer (precompiled charsmap, longest match, by its double-array
//   trie; remove_extra_whitespaces; add_dummy_prefix '▁'; ' ' -> '▁'), then BPE (merge the
//   adjacent pair whose joined piece has the highest score, leftmost first) or unigram (Viterbi:
//   the segmentation of highest total score, unknown characters scored min score - 10), then
//   pieces outside the vocabulary as <0xHH> bytes (byte_fallback) or unk, as EncodeAsIds does.
//   User-defined pieces: whole symbols, never normalized, never merged (BPE), scored 0 (unigram,
//   as sentencepiece 0.2). Not handled: a BPE merge into an unused piece is kept (sentencepiece
//   splits it back; no released model has unused pieces); a NUL byte ends the text (a C string:
//   a command-line prompt cannot hold one anyway).
//   tokenizer.json: added tokens as tokenizers' AddedVocabulary finds them (leftmost-longest;
//   chat markers are one id each): those not "normalized" in the raw text, then the normalizers
//   on the text between them, and the normalized ones, by their normalized content, in that;
//   single_word, lstrip and rstrip as the library applies them (its \w from unicode_class.h). The
//   normalizers of a Sequence in its order: Precompiled (a sentencepiece charsmap as tokenizers
//   applies it: grapheme by grapheme, UAX #29 from unicode_class.h, a grapheme under 6 bytes
//   replaced whole by its shortest key's replacement, a longer one character by character),
//   Replace " {2,}" by ' ' or '▁', Replace \A +| +\z by nothing, Strip, Prepend '▁', Replace
//   ' ' by '▁'. Then, on the text between added tokens, the pre-tokenizers of a Sequence in its
//   order, each splitting the pieces of those before it: WhitespaceSplit (T5), Metaspace (its
//   prepend always, first or never, with or without its split at every '▁': Llama 2, Mistral,
//   TinyLlama, T5), Digits (each digit, or each run, alone: SmolLM), Split by the Llama 3 or the
//   GPT-2 regex (matched by hand below, \p{L} \p{N} from unicode_class.h), ByteLevel (last:
//   add_prefix_space's ' ' before every piece that lacks one, the GPT-2 regex, its byte map);
//   then, per piece, BPE by merge rank (ignore_merges: a word in the vocabulary is one token) or
//   Unigram (the Viterbi above, in double, every piece a path, unknown characters fused), byte
//   fallback or unk (fused within a piece where fuse_unk). tokenizer_prefix_ids gives what the
//   post-processor puts before the text (Llama's bos); other configurations decode only and
//   encoding dies naming the part. Not handled: Oniguruma's case folding of "'S" beyond ASCII.
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "utils.h"
#include "unicode_class.h"

#define TOKENIZER_MAGIC 20241124
#define TOKENIZER_VERSION 2
#define TOKENIZER_HEADER_BYTES 1024
#define TOKENIZER_MAX_VOCAB (1 << 24)

enum { TOK_NORMAL = 0, TOK_CONTROL = 1, TOK_BYTE = 2, TOK_UNKNOWN = 3, TOK_UNUSED = 4, TOK_USER = 5 };
enum { TOKMODEL_NONE = 0, TOKMODEL_UNIGRAM = 1, TOKMODEL_BPE = 2 };         // sentencepiece's numbers
enum { TOKF_DUMMY_PREFIX = 1, TOKF_REMOVE_WS = 2, TOKF_ESCAPE_WS = 4, TOKF_BYTE_FALLBACK = 8 };
enum { TOKSRC_SPM = 0, TOKSRC_HF = 1 };                                     // which file it came from
enum { TOKA_LSTRIP = 1, TOKA_RSTRIP = 2, TOKA_SINGLE_WORD = 4, TOKA_NORMALIZED = 8 }; // an added token's flags
// tokenizer.json's pre-tokenizers, in their Sequence's order: each makes pieces of the pieces before it
enum { TOKST_DIGITS_EACH = 1, TOKST_DIGITS_RUN, TOKST_META, TOKST_META_SPLIT, TOKST_GPT2, TOKST_LLAMA3, TOKST_PREFIX_SPACE, TOKST_WS_SPLIT };
#define TOK_MAX_STAGES 8
// tokenizer.json's normalizers, in their Sequence's order: Precompiled (a sentencepiece charsmap,
// grapheme by grapheme), Replace \A +| +\z by nothing, Replace " {2,}" by ' ' or by '▁', Strip
// (whitespace at the start, the end), Prepend '▁', Replace ' ' by '▁'
enum { TOKN_PRECOMPILED = 1, TOKN_TRIM_SPACES, TOKN_COLLAPSE_SPACES, TOKN_COLLAPSE_TO_MARK, TOKN_STRIP_LEFT, TOKN_STRIP_RIGHT, TOKN_PREPEND, TOKN_REPLACE_SPACE };

// piece text -> int, open addressing; keys point into memory the tokenizer owns
typedef struct {
    const char** keys; // (cap,) NULL where empty
    int* klen;         // (cap,)
    int* vals;         // (cap,)
    uint32_t cap;      // a power of two, at least twice the entries
} TokHash;

typedef struct {
    int vocab_size;
    int bos_id, eos_id, pad_id, unk_id;   // -1 where the model has none
    int source;          // TOKSRC_*
    int version;         // tokenizer.bin version (0 for tokenizer.json)
    int model;           // TOKMODEL_*
    int flags;           // TOKF_*
    uint8_t* types;      // (vocab_size,) TOK_*
    int* lengths;        // (vocab_size,) bytes of each piece
    float* scores;       // (vocab_size,) sentencepiece scores; NULL when the file has none
    uint8_t* byte_value; // (vocab_size,) the byte of a TOK_BYTE piece
    const char** pieces; // (vocab_size,) the piece text, pointers into blob/text, not NUL-terminated
    char* blob;          // the whole file
    char* text;          // piece texts that are not in blob (tokenizer.json), merge keys
    // decoding: what each piece prints, and whether the first visible piece drops a leading ' '
    const char** surface; int* surface_len; char* surface_blob;
    int strip_first_space;
    int byte_text;       // tokenizer.json whose decoder has no ByteFallback: <0xHH> pieces print as that text
    // encoding
    int can_encode;      // 0: the reason is in encode_why
    char encode_why[160];
    TokHash vocab;       // encodable piece text -> id
    TokHash merges;      // tokenizer.json: "left\xFFright" -> merge rank
    int byte_id[256];    // the <0xHH> piece of each byte, -1 if none
    const uint8_t* charsmap; uint32_t charsmap_len;
    float min_score;     // unigram: the lowest normal score (unknown characters score it - 10)
    int* user_ids; int n_user; // sentencepiece: the user-defined pieces (whole symbols, never normalized)
    int max_piece_len;
    int stage[TOK_MAX_STAGES], n_stages; // tokenizer.json: the pre-tokenizers' splits, TOKST_* in order
    int byte_level;      // tokenizer.json: ByteLevel (pieces are GPT-2 byte-to-unicode text)
    int norm[TOK_MAX_STAGES], n_norm; // tokenizer.json: the normalizers, TOKN_* in order
    uint8_t* charsmap_owned; // tokenizer.json Precompiled: the charsmap, decoded from base64
    int meta_prepend;    // tokenizer.json Metaspace: 0 never, 1 a '▁' before every piece that lacks one, 2 the first only
    int ignore_merges, fuse_unk;
    int* added;          // (n_added,) ids of tokenizer.json's added tokens
    uint8_t* added_flags;// (n_added,) TOKA_*
    const char** added_pat; int* added_plen; // (n_added,) the text matched: normalized ones' content through the normalizer
    char* added_text;    // the normalized ones' patterns
    int n_added;
    int prefix_ids[4];   // what the post-processor puts before the text (bos)
    int n_prefix;
    int loaded;          // 1 after a successful tokenizer_init
} Tokenizer;

static int32_t tokenizer_le32(const uint8_t* p) {
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

static int tokenizer_hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// tokenizer_utf8_len: the length of the valid UTF-8 sequence starting at p (n bytes left), 0 if
// none starts there (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF); the
// code point in *cp when cp is not NULL
static int tokenizer_utf8_cp(const uint8_t* p, size_t n, uint32_t* cpo) {
    uint8_t c = p[0];
    if (c < 0x80) { if (cpo) *cpo = c; return 1; }
    int len; uint32_t lo;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; lo = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; lo = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; lo = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < lo || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cpo) *cpo = cp;
    return len;
}
static int tokenizer_utf8_len(const uint8_t* p, size_t n) { return tokenizer_utf8_cp(p, n, NULL); }

static const char TOK_REPLACEMENT[] = "\xEF\xBF\xBD"; // U+FFFD, what bytes that are not UTF-8 print

static int tok_utf8_put(char* out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// a growing list of ids
typedef struct { int* ids; int n, cap; } TokIds;
static void tok_push(TokIds* v, int id) {
    if (v->n == v->cap) { // malloc + copy, not realloc: the fuzzer's allocation tracking sees malloc/free only
        v->cap = v->cap ? 2 * v->cap : 64;
        int* ids = (int*)mallocCheck(sizeof(int) * (size_t)v->cap);
        if (v->n) memcpy(ids, v->ids, sizeof(int) * (size_t)v->n);
        free(v->ids);
        v->ids = ids;
    }
    v->ids[v->n++] = id;
}
// a growing byte string
typedef struct { char* s; size_t n, cap; } TokStr;
static void tok_append(TokStr* v, const char* s, size_t n) {
    if (v->n + n + 1 > v->cap) {
        while (v->n + n + 1 > v->cap) v->cap = v->cap ? 2 * v->cap : 256;
        char* b = (char*)mallocCheck(v->cap);
        if (v->n) memcpy(b, v->s, v->n);
        free(v->s);
        v->s = b;
    }
    memcpy(v->s + v->n, s, n);
    v->n += n;
    v->s[v->n] = '\0';
}

// ----------------------------------------------------------------------------------------------
// the hash of piece texts

static uint32_t tok_hash_bytes(const char* s, int n) {
    uint32_t h = 2166136261u; // FNV-1a
    for (int i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void tok_hash_init(TokHash* h, int n) {
    h->cap = 16;
    while (h->cap < 2u * (uint32_t)n) h->cap <<= 1;
    h->keys = (const char**)callocCheck(h->cap, sizeof(const char*));
    h->klen = (int*)callocCheck(h->cap, sizeof(int));
    h->vals = (int*)callocCheck(h->cap, sizeof(int));
}

static int tok_hash_get(const TokHash* h, const char* k, int n) {
    if (h->cap == 0) return -1;
    for (uint32_t i = tok_hash_bytes(k, n) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->keys[i] == NULL) return -1;
        if (h->klen[i] == n && memcmp(h->keys[i], k, (size_t)n) == 0) return h->vals[i];
    }
}

// the first value put for a key stays (a lower merge rank, the first of duplicate pieces)
static void tok_hash_put(TokHash* h, const char* k, int n, int v) {
    for (uint32_t i = tok_hash_bytes(k, n) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->keys[i] == NULL) { h->keys[i] = k; h->klen[i] = n; h->vals[i] = v; return; }
        if (h->klen[i] == n && memcmp(h->keys[i], k, (size_t)n) == 0) return;
    }
}

static void tok_hash_free(TokHash* h) { free(h->keys); free(h->klen); free(h->vals); memset(h, 0, sizeof *h); }

// ----------------------------------------------------------------------------------------------
// loading

static void tok_alloc(Tokenizer* t, int vocab) {
    t->vocab_size = vocab;
    t->types = (uint8_t*)callocCheck((size_t)vocab, 1);
    t->lengths = (int*)callocCheck((size_t)vocab, sizeof(int));
    t->byte_value = (uint8_t*)callocCheck((size_t)vocab, 1);
    t->pieces = (const char**)callocCheck((size_t)vocab, sizeof(const char*));
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
}

// a "<0xHH>" piece -> its byte, -1 if the text is not of that form
static int tok_byte_piece(const char* p, int len) {
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int hi = tokenizer_hexval(p[3]), lo = tokenizer_hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// GPT-2's byte-to-unicode map (ByteLevel): printable Latin-1 bytes stand for themselves, the
// other 68 bytes for U+0100.. in byte order, so that every piece is printable text
static uint32_t tok_byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++) n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
    return 256u + (uint32_t)n;
}
// what each piece prints (see the header comment); built once so decoding is a copy
static void tok_build_surface(Tokenizer* t) {
    int V = t->vocab_size;
    size_t total = 0;
    for (int i = 0; i < V; i++) total += (size_t)t->lengths[i] + 8;
    t->surface = (const char**)mallocCheck((size_t)V * sizeof(const char*));
    t->surface_len = (int*)callocCheck((size_t)V, sizeof(int));
    t->surface_blob = (char*)mallocCheck(total + 1);
    static const char UNK_TEXT[] = " \xE2\x81\x87 "; // " ⁇ "
    char* o = t->surface_blob;
    int cp_byte[0x144] = {0}; // ByteLevel's inverse map: U+0000..U+0143 -> byte + 1
    for (int b = 0; b < 256; b++) cp_byte[tok_byte_to_cp(b)] = b + 1;
    for (int i = 0; i < V; i++) {
        t->surface[i] = o;
        const char* p = t->pieces[i];
        int len = t->lengths[i], type = t->types[i];
        if (type == TOK_CONTROL) { t->surface_len[i] = 0; continue; }
        if (type == TOK_UNKNOWN && t->source == TOKSRC_SPM) { memcpy(o, UNK_TEXT, sizeof UNK_TEXT - 1); o += sizeof UNK_TEXT - 1; }
        else if (type == TOK_BYTE && !t->byte_text) *o++ = (char)t->byte_value[i];
        else if (t->byte_level && type != TOK_USER) {
            for (int k = 0; k < len; ) {
                uint32_t cp;
                int m = tokenizer_utf8_cp((const uint8_t*)p + k, (size_t)(len - k), &cp);
                if (m && cp < 0x144 && cp_byte[cp]) { *o++ = (char)(cp_byte[cp] - 1); k += m; }
                else if (m) { memcpy(o, p + k, (size_t)m); o += m; k += m; }
                else *o++ = p[k++];
            }
        } else {
            for (int k = 0; k < len; ) {
                if (k + 3 <= len && memcmp(p + k, "\xE2\x96\x81", 3) == 0) { *o++ = ' '; k += 3; }
                else *o++ = p[k++];
            }
        }
        t->surface_len[i] = (int)(o - t->surface[i]);
    }
}

static void tok_build_vocab(Tokenizer* t) {
    tok_hash_init(&t->vocab, t->vocab_size);
    t->user_ids = (int*)mallocCheck(sizeof(int) * (size_t)t->vocab_size);
    for (int i = 0; i < t->vocab_size; i++) if (t->types[i] == TOK_USER && t->lengths[i] > 0) t->user_ids[t->n_user++] = i;
    t->min_score = 0.0f;
    int have_min = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        int type = t->types[i];
        if (type == TOK_BYTE) { t->byte_id[t->byte_value[i]] = i; continue; }
        if (type != TOK_NORMAL && type != TOK_USER && type != TOK_UNUSED) continue;
        if (t->pieces[i] == NULL) continue;
        tok_hash_put(&t->vocab, t->pieces[i], t->lengths[i], i);
        if (t->lengths[i] > t->max_piece_len) t->max_piece_len = t->lengths[i];
        if (type == TOK_NORMAL && t->scores && (!have_min || t->scores[i] < t->min_score)) { t->min_score = t->scores[i]; have_min = 1; }
    }
}

static void tok_check_special_ids(const Tokenizer* t, const char* path) {
    const char* names[4] = {"bos", "eos", "pad", "unk"};
    int ids[4] = {t->bos_id, t->eos_id, t->pad_id, t->unk_id};
    for (int i = 0; i < 4; i++) {
        if (ids[i] < -1 || ids[i] >= t->vocab_size) die("%s: %s id %d is outside [-1, vocab_size %d); hint: the file is corrupt", path, names[i], ids[i], t->vocab_size);
    }
}

static void tok_load_bin(Tokenizer* t, const char* path, int64_t size) {
    const uint8_t* b = (const uint8_t*)t->blob;
    if (size < TOKENIZER_HEADER_BYTES) {
        die("%s: truncated tokenizer: %lld bytes, smaller than the %d-byte header; hint: re-run "
            "dev/data/export_tokenizer.py", path, (long long)size, TOKENIZER_HEADER_BYTES);
    }
    int32_t magic = tokenizer_le32(b), version = tokenizer_le32(b + 4);
    if (magic != TOKENIZER_MAGIC) {
        die("%s: wrong magic %d (expected %d); hint: this is not a tokenizer.bin or tokenizer.json, make one with "
            "dev/data/export_tokenizer.py", path, magic, TOKENIZER_MAGIC);
    }
    if (version != 1 && version != 2) {
        die("%s: unknown tokenizer version %d (expected 1 or 2); hint: re-run dev/data/export_tokenizer.py", path, version);
    }
    int32_t vocab = tokenizer_le32(b + 8);
    if (vocab < 1 || vocab > TOKENIZER_MAX_VOCAB) die("%s: bad vocab_size %d in the header; hint: the file is corrupt", path, vocab);
    tok_alloc(t, vocab);
    t->source = TOKSRC_SPM;
    t->version = version;
    t->bos_id = tokenizer_le32(b + 12);
    t->eos_id = tokenizer_le32(b + 16);
    t->pad_id = tokenizer_le32(b + 20);
    t->unk_id = tokenizer_le32(b + 24);
    tok_check_special_ids(t, path);
    int64_t charsmap = 0;
    t->flags = TOKF_DUMMY_PREFIX; // version 1: decoding as sentencepiece's default
    if (version == 2) {
        t->model = tokenizer_le32(b + 28);
        t->flags = tokenizer_le32(b + 32);
        charsmap = tokenizer_le32(b + 36);
        if (charsmap < 0 || charsmap > size) die("%s: charsmap of %lld bytes in the header; hint: the file is corrupt", path, (long long)charsmap);
        t->scores = (float*)mallocCheck((size_t)vocab * sizeof(float));
    }
    int per = version == 2 ? 6 : 2; // type, length (, score)
    int64_t off = TOKENIZER_HEADER_BYTES;
    for (int i = 0; i < vocab; i++) {
        if (off + per > size) die("%s: truncated at piece %d of %d (offset %lld); hint: re-run dev/data/export_tokenizer.py", path, i, vocab, (long long)off);
        uint8_t type = b[off], len = b[off + 1];
        if (version == 2) { uint32_t u = (uint32_t)tokenizer_le32(b + off + 2); memcpy(&t->scores[i], &u, 4); }
        off += per;
        if (type > TOK_USER || (version == 1 && type > TOK_UNUSED))
            die("%s: piece %d has unknown type %d (offset %lld); hint: the file is corrupt", path, i, type, (long long)(off - per));
        if (off + len > size) die("%s: truncated inside piece %d of %d (needs %d bytes at offset %lld); hint: re-run dev/data/export_tokenizer.py", path, i, vocab, len, (long long)off);
        t->types[i] = type;
        t->lengths[i] = len;
        t->pieces[i] = t->blob + off;
        if (type == TOK_BYTE) { // text must be "<0xHH>"
            int v = tok_byte_piece(t->blob + off, len);
            if (v < 0) die("%s: byte piece %d is \"%.*s\", not of the form <0xHH>; hint: the file is corrupt", path, i, (int)len, t->blob + off);
            t->byte_value[i] = (uint8_t)v;
        }
        off += len;
    }
    if (off + charsmap != size) die("%s: %lld trailing bytes after the last piece; hint: the file is corrupt or vocab_size is wrong", path, (long long)(size - off - charsmap));
    t->charsmap = b + off;
    t->charsmap_len = (uint32_t)charsmap;
    if (charsmap != 0 && (charsmap < 4 || (uint32_t)tokenizer_le32(b + off) > (uint32_t)charsmap - 4 || tokenizer_le32(b + off) % 4))
        die("%s: malformed normalizer charsmap; hint: re-run dev/data/export_tokenizer.py", path);
    t->strip_first_space = (t->flags & TOKF_DUMMY_PREFIX) != 0;
    if (version == 1) {
        snprintf(t->encode_why, sizeof t->encode_why, "is a version-1 tokenizer.bin (no piece scores); re-export it with dev/data/export_tokenizer.py (version 2)");
    } else if (t->model != TOKMODEL_BPE && t->model != TOKMODEL_UNIGRAM) {
        snprintf(t->encode_why, sizeof t->encode_why, "has sentencepiece model type %d; only bpe (2) and unigram (1) encode", t->model);
    } else {
        t->can_encode = 1;
        tok_build_vocab(t);
    }
}

// --- tokenizer.json

static const char* TOK_GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char* TOK_LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char* tok_json_str(const cJSON* o, const char* key) {
    const cJSON* it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}
static int tok_json_type_is(const cJSON* o, const char* type) {
    const char* s = o ? tok_json_str(o, "type") : NULL;
    return s && strcmp(s, type) == 0;
}
static int tok_json_bool(const cJSON* o, const char* key, int def) {
    const cJSON* it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : def;
}

static void tok_unsupported(Tokenizer* t, const char* what, const char* type) {
    if (t->encode_why[0]) return;
    snprintf(t->encode_why, sizeof t->encode_why, "has a %s of type %s, which this encoder does not implement (decoding works)", what, type ? type : "?");
}

static void tok_stage_add(Tokenizer* t, int stage) {
    if (t->n_stages == TOK_MAX_STAGES) { tok_unsupported(t, "pre_tokenizer", "Sequence of more than 8 splits"); return; }
    t->stage[t->n_stages++] = stage;
}

// one pre-tokenizer (or a member of a Sequence): its stage after those before it. ByteLevel maps
// bytes to characters, so nothing that looks at characters may follow it.
static void tok_json_pretok(Tokenizer* t, const cJSON* p) {
    const char* type = tok_json_str(p, "type");
    if (t->byte_level && !tok_json_type_is(p, "Sequence")) { tok_unsupported(t, "pre_tokenizer", "Sequence with a pre-tokenizer after ByteLevel"); return; }
    if (tok_json_type_is(p, "ByteLevel")) {
        t->byte_level = 1;
        if (tok_json_bool(p, "add_prefix_space", 0)) tok_stage_add(t, TOKST_PREFIX_SPACE);
        if (tok_json_bool(p, "use_regex", 1)) tok_stage_add(t, TOKST_GPT2);
    } else if (tok_json_type_is(p, "Split")) {
        const cJSON* pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char* re = pat ? tok_json_str(pat, "Regex") : NULL;
        const char* beh = tok_json_str(p, "behavior");
        int isolated = beh && strcmp(beh, "Isolated") == 0 && !tok_json_bool(p, "invert", 0);
        if (re && strcmp(re, TOK_LLAMA3_REGEX) == 0 && isolated) tok_stage_add(t, TOKST_LLAMA3);
        else if (re && strcmp(re, TOK_GPT2_REGEX) == 0 && isolated) tok_stage_add(t, TOKST_GPT2);
        else tok_unsupported(t, "pre_tokenizer", "Split with another regex");
    } else if (tok_json_type_is(p, "Metaspace")) {
        const char* rep = tok_json_str(p, "replacement");
        const char* scheme = tok_json_str(p, "prepend_scheme");
        if (!rep || strcmp(rep, "\xE2\x96\x81") != 0) { tok_unsupported(t, "pre_tokenizer", "Metaspace with another replacement than U+2581"); return; }
        tok_stage_add(t, TOKST_META);
        if (tok_json_bool(p, "split", 1)) tok_stage_add(t, TOKST_META_SPLIT);
        if (!scheme && !tok_json_bool(p, "add_prefix_space", 1)) scheme = "never"; // (the older spelling)
        t->meta_prepend = scheme && strcmp(scheme, "never") == 0 ? 0 : scheme && strcmp(scheme, "first") == 0 ? 2 : 1;
    } else if (tok_json_type_is(p, "WhitespaceSplit")) {
        tok_stage_add(t, TOKST_WS_SPLIT);
    } else if (tok_json_type_is(p, "Digits")) {
        tok_stage_add(t, tok_json_bool(p, "individual_digits", 0) ? TOKST_DIGITS_EACH : TOKST_DIGITS_RUN);
    } else if (tok_json_type_is(p, "Sequence")) {
        const cJSON* list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        const cJSON* it;
        cJSON_ArrayForEach(it, list) tok_json_pretok(t, it);
    } else {
        tok_unsupported(t, "pre_tokenizer", type);
    }
}

static void tok_norm_add(Tokenizer* t, int step) {
    if (t->n_norm == TOK_MAX_STAGES) { tok_unsupported(t, "normalizer", "Sequence of more than 8"); return; }
    t->norm[t->n_norm++] = step;
}

// base64 (RFC 4648) -> bytes in *out (malloc'd); returns the count, -1 where it is not base64
static long tok_base64_decode(const char* s, uint8_t** out) {
    size_t n = strlen(s);
    uint8_t* o = (uint8_t*)mallocCheck(n / 4 * 3 + 3);
    long k = 0;
    uint32_t acc = 0;
    int bits = 0;
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char* q = strchr(A, s[i]); // (s[i] is not NUL: i < n)
        if (q == NULL) { free(o); return -1; }
        acc = (acc << 6) | (uint32_t)(q - A);
        bits += 6;
        if (bits >= 8) { bits -= 8; o[k++] = (uint8_t)(acc >> bits); }
    }
    *out = o;
    return k;
}

static void tok_json_normalizer(Tokenizer* t, const cJSON* n, const char* path) {
    static const char SPACE_MARK[] = "\xE2\x96\x81";
    if (n == NULL || cJSON_IsNull(n)) return;
    const cJSON* pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
    const char* re = pat ? tok_json_str(pat, "Regex") : NULL, *from = pat ? tok_json_str(pat, "String") : NULL, *to = tok_json_str(n, "content");
    if (tok_json_type_is(n, "Sequence")) {
        const cJSON* it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) tok_json_normalizer(t, it, path);
    } else if (tok_json_type_is(n, "Prepend") && tok_json_str(n, "prepend") && strcmp(tok_json_str(n, "prepend"), SPACE_MARK) == 0) {
        tok_norm_add(t, TOKN_PREPEND);
    } else if (tok_json_type_is(n, "Replace") && from && to && strcmp(from, " ") == 0 && strcmp(to, SPACE_MARK) == 0) {
        tok_norm_add(t, TOKN_REPLACE_SPACE);
    } else if (tok_json_type_is(n, "Replace") && re && to && strcmp(re, " {2,}") == 0 && (strcmp(to, " ") == 0 || strcmp(to, SPACE_MARK) == 0)) {
        tok_norm_add(t, to[0] == ' ' ? TOKN_COLLAPSE_SPACES : TOKN_COLLAPSE_TO_MARK);
    } else if (tok_json_type_is(n, "Replace") && re && to && strcmp(re, "\\A +| +\\z") == 0 && to[0] == '\0') {
        tok_norm_add(t, TOKN_TRIM_SPACES);
    } else if (tok_json_type_is(n, "Strip")) {
        if (tok_json_bool(n, "strip_left", 1)) tok_norm_add(t, TOKN_STRIP_LEFT);
        if (tok_json_bool(n, "strip_right", 1)) tok_norm_add(t, TOKN_STRIP_RIGHT);
    } else if (tok_json_type_is(n, "Precompiled") && tok_json_str(n, "precompiled_charsmap") && !t->charsmap_owned) {
        long len = tok_base64_decode(tok_json_str(n, "precompiled_charsmap"), &t->charsmap_owned);
        if (len < 4 || (uint32_t)tokenizer_le32(t->charsmap_owned) > (uint32_t)len - 4 || tokenizer_le32(t->charsmap_owned) % 4)
            die("%s: a Precompiled normalizer whose charsmap is not a sentencepiece charsmap; hint: the file is corrupt", path);
        t->charsmap = t->charsmap_owned;
        t->charsmap_len = (uint32_t)len;
        tok_norm_add(t, TOKN_PRECOMPILED);
    } else {
        tok_unsupported(t, "normalizer", tok_json_type_is(n, "Replace") ? "Replace (of another pattern)" : tok_json_str(n, "type"));
    }
}

// the decoder: does it drop the first space (Strip of one leading ' ', Metaspace)?
static void tok_json_decoder(Tokenizer* t, const cJSON* d) {
    if (d == NULL || cJSON_IsNull(d)) return;
    if (tok_json_type_is(d, "Sequence")) {
        const cJSON* it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(d, "decoders")) tok_json_decoder(t, it);
    } else if (tok_json_type_is(d, "ByteFallback")) {
        t->byte_text = 0;
    } else if (tok_json_type_is(d, "Strip")) {
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(d, "start");
        if (cJSON_IsNumber(st) && st->valueint >= 1) t->strip_first_space = 1;
    } else if (tok_json_type_is(d, "Metaspace")) {
        const char* scheme = tok_json_str(d, "prepend_scheme");
        t->strip_first_space = !(scheme && strcmp(scheme, "never") == 0) && tok_json_bool(d, "add_prefix_space", 1);
    }
}

// the post-processor's special tokens before the text ("single" of TemplateProcessing)
static void tok_json_post(Tokenizer* t, const cJSON* p) {
    if (p == NULL || cJSON_IsNull(p)) return;
    if (tok_json_type_is(p, "Sequence")) {
        const cJSON* it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "processors")) tok_json_post(t, it);
        return;
    }
    if (!tok_json_type_is(p, "TemplateProcessing")) return;
    const cJSON* specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    const cJSON* it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "single")) {
        const cJSON* sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (sp == NULL) break; // the text ("Sequence"): what follows it is not a prefix
        const char* name = tok_json_str(sp, "id");
        const cJSON* ent = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON* id, *list = ent ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
        cJSON_ArrayForEach(id, list) {
            if (cJSON_IsNumber(id) && t->n_prefix < 4 && id->valueint >= 0 && id->valueint < t->vocab_size) t->prefix_ids[t->n_prefix++] = id->valueint;
        }
    }
}

static void tok_hf_normalize(const Tokenizer* t, const char* s, size_t n, TokStr* out); // (with the encoder)

static void tok_load_json(Tokenizer* t, const char* path) {
    cJSON* root = cJSON_Parse(t->blob);
    if (root == NULL || !cJSON_IsObject(root)) die("%s: not valid JSON; hint: pass a Hugging Face tokenizer.json (or a tokenizer.bin)", path);
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON* vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    const char* mtype = model ? tok_json_str(model, "type") : NULL;
    // the vocabulary: BPE's {"piece": id, ...}; Unigram's [["piece", score], ...], the id its index
    int unigram = mtype && strcmp(mtype, "Unigram") == 0;
    if (!model || (mtype && strcmp(mtype, "BPE") != 0 && !unigram) || !(unigram ? cJSON_IsArray(vocab) : cJSON_IsObject(vocab)))
        die("%s: model type %s; only BPE and Unigram tokenizer.json files are read; hint: for a sentencepiece model pass its .model "
            "exported by dev/data/export_tokenizer.py", path, mtype ? mtype : "(none)");
    const cJSON* added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int V = 0;
    const cJSON* it;
    cJSON_ArrayForEach(it, vocab) {
        if (unigram) {
            if (cJSON_GetArraySize(it) != 2 || !cJSON_IsString(cJSON_GetArrayItem(it, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(it, 1)) || V >= TOKENIZER_MAX_VOCAB)
                die("%s: Unigram vocab entry %d is not [\"piece\", score]; hint: the file is corrupt", path, V);
            V++;
            continue;
        }
        if (!cJSON_IsNumber(it) || it->valueint < 0 || it->valueint >= TOKENIZER_MAX_VOCAB) die("%s: vocab entry \"%.40s\" has no valid id; hint: the file is corrupt", path, it->string);
        if (it->valueint + 1 > V) V = it->valueint + 1;
    }
#define TOK_VOCAB_PIECE(it) (unigram ? cJSON_GetArrayItem(it, 0)->valuestring : (it)->string)
    cJSON_ArrayForEach(it, added) {
        const cJSON* id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= TOKENIZER_MAX_VOCAB || !tok_json_str(it, "content"))
            die("%s: an added_tokens entry without a valid id and content; hint: the file is corrupt", path);
        if (id->valueint + 1 > V) V = id->valueint + 1;
    }
    if (V < 1) die("%s: empty vocab; hint: the file is corrupt", path);
    tok_alloc(t, V);
    t->source = TOKSRC_HF;
    t->model = unigram ? TOKMODEL_UNIGRAM : TOKMODEL_BPE;
    t->bos_id = t->eos_id = t->pad_id = t->unk_id = -1;
    if (unigram) t->scores = (float*)mallocCheck(sizeof(float) * (size_t)V);
    // piece texts are copied out of the cJSON tree (freed at the end): size them first
    size_t need = 0;
    cJSON_ArrayForEach(it, vocab) need += strlen(TOK_VOCAB_PIECE(it));
    cJSON_ArrayForEach(it, added) need += strlen(tok_json_str(it, "content"));
    const cJSON* merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n_merges = cJSON_GetArraySize(merges);
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) need += strlen(it->valuestring) + 1;
        else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1)))
            need += strlen(cJSON_GetArrayItem(it, 0)->valuestring) + strlen(cJSON_GetArrayItem(it, 1)->valuestring) + 1;
        else die("%s: a merges entry is neither \"a b\" nor [\"a\", \"b\"]; hint: the file is corrupt", path);
    }
    t->text = (char*)mallocCheck(need + 1);
    char* o = t->text;
    int byte_fallback = tok_json_bool(model, "byte_fallback", 0);
    int k = 0;
    cJSON_ArrayForEach(it, vocab) {
        int id = unigram ? k++ : it->valueint, n = (int)strlen(TOK_VOCAB_PIECE(it));
        memcpy(o, TOK_VOCAB_PIECE(it), (size_t)n);
        // (sentencepiece's scores are float32: exact as float; tokenizers sums them in double, as tok_unigram does)
        if (unigram) t->scores[id] = (float)cJSON_GetArrayItem(it, 1)->valuedouble;
        t->pieces[id] = o; t->lengths[id] = n; o += n;
        int bv = byte_fallback ? tok_byte_piece(t->pieces[id], n) : -1;
        if (bv >= 0) { t->types[id] = TOK_BYTE; t->byte_value[id] = (uint8_t)bv; }
    }
    int n_added_max = cJSON_GetArraySize(added) + 1;
    t->added = (int*)mallocCheck(sizeof(int) * (size_t)n_added_max);
    t->added_flags = (uint8_t*)mallocCheck((size_t)n_added_max);
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char* c = tok_json_str(it, "content");
        int n = (int)strlen(c);
        memcpy(o, c, (size_t)n);
        t->pieces[id] = o; t->lengths[id] = n; o += n;
        t->types[id] = tok_json_bool(it, "special", 0) ? TOK_CONTROL : TOK_USER; // USER: its text as it is
        if (n == 0) continue;
        t->added_flags[t->n_added] = (uint8_t)((tok_json_bool(it, "lstrip", 0) ? TOKA_LSTRIP : 0) | (tok_json_bool(it, "rstrip", 0) ? TOKA_RSTRIP : 0) |
            (tok_json_bool(it, "single_word", 0) ? TOKA_SINGLE_WORD : 0) | (tok_json_bool(it, "normalized", !tok_json_bool(it, "special", 0)) ? TOKA_NORMALIZED : 0));
        t->added[t->n_added++] = id;
    }
    for (int i = 0; i < V; i++) if (t->pieces[i] == NULL) t->types[i] = TOK_UNUSED; // ids the file skips: print nothing
    const char* unk = tok_json_str(model, "unk_token");
    const cJSON* unk_id = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    tok_hash_init(&t->vocab, V);
    k = 0;
    cJSON_ArrayForEach(it, vocab) {
        int id = unigram ? k++ : it->valueint;
        tok_hash_put(&t->vocab, t->pieces[id], t->lengths[id], id);
        // Unigram: every piece is a path (tokenizers' trie holds them all); an unknown character
        // scores the lowest score - 10
        if (unigram && (id == 0 || t->scores[id] < t->min_score)) t->min_score = t->scores[id];
    }
#undef TOK_VOCAB_PIECE
    if (unk) t->unk_id = tok_hash_get(&t->vocab, unk, (int)strlen(unk));
    if (unigram && cJSON_IsNumber(unk_id) && unk_id->valueint >= 0 && unk_id->valueint < V) t->unk_id = unk_id->valueint;
    if (t->unk_id >= 0 && t->types[t->unk_id] != TOK_CONTROL) t->types[t->unk_id] = TOK_UNKNOWN; // a special unk prints nothing, as any special token
    for (int i = 0; i < V; i++) if (t->types[i] == TOK_BYTE) t->byte_id[t->byte_value[i]] = i;
    if (byte_fallback) t->flags |= TOKF_BYTE_FALLBACK;
    t->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    t->fuse_unk = unigram || tok_json_bool(model, "fuse_unk", 0); // (tokenizers' Unigram always fuses)
    // merges: "left\xFFright" -> rank (0xFF never occurs in UTF-8)
    tok_hash_init(&t->merges, n_merges);
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char* a, *b; size_t na, nb;
        if (cJSON_IsString(it)) {
            a = it->valuestring;
            const char* sp = strchr(a + (a[0] == ' '), ' '); // the separator (a piece is never empty)
            if (sp == NULL) die("%s: merge %d \"%.40s\" has no space between its two pieces; hint: the file is corrupt", path, rank, a);
            na = (size_t)(sp - a); b = sp + 1; nb = strlen(b);
        } else {
            a = cJSON_GetArrayItem(it, 0)->valuestring; b = cJSON_GetArrayItem(it, 1)->valuestring;
            na = strlen(a); nb = strlen(b);
        }
        char* key = o;
        memcpy(o, a, na); o += na; *o++ = (char)0xFF; memcpy(o, b, nb); o += nb;
        tok_hash_put(&t->merges, key, (int)(o - key), rank++);
    }
    for (int i = 0; i < V; i++) if (t->lengths[i] > t->max_piece_len) t->max_piece_len = t->lengths[i];
    tok_json_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path);
    // the text each added token matches: a normalized one's content through the normalizer, as
    // it is matched in the normalized text; the others' content as it is
    TokStr pats = {0};
    size_t* pat_at = (size_t*)mallocCheck(sizeof(size_t) * (size_t)(t->n_added + 1)); // (offsets until pats stops growing)
    t->added_pat = (const char**)mallocCheck(sizeof(const char*) * (size_t)(t->n_added + 1));
    t->added_plen = (int*)mallocCheck(sizeof(int) * (size_t)(t->n_added + 1));
    for (int k = 0; k < t->n_added; k++) {
        int id = t->added[k];
        pat_at[k] = pats.n;
        if (t->added_flags[k] & TOKA_NORMALIZED) tok_hf_normalize(t, t->pieces[id], (size_t)t->lengths[id], &pats);
        t->added_plen[k] = t->added_flags[k] & TOKA_NORMALIZED ? (int)(pats.n - pat_at[k]) : t->lengths[id];
    }
    t->added_text = pats.s;
    for (int k = 0; k < t->n_added; k++) {
        int id = t->added[k];
        if (!(t->added_flags[k] & TOKA_NORMALIZED)) { t->added_pat[k] = t->pieces[id]; continue; }
        t->added_pat[k] = pats.s + pat_at[k];
        // and tokenizers decodes it from that text ("▁hello" prints " hello"); a special one prints nothing
        if (t->types[id] == TOK_USER) { t->pieces[id] = t->added_pat[k]; t->lengths[id] = t->added_plen[k]; }
    }
    free(pat_at);
    const cJSON* pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) tok_json_pretok(t, pre);
    const cJSON* dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char* dtype = dec ? tok_json_str(dec, "type") : NULL;
    if (dtype && strcmp(dtype, "ByteLevel") == 0) t->byte_level = 1;
    t->byte_text = 1; // until the decoder says ByteFallback
    tok_json_decoder(t, dec);
    tok_json_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (tok_json_str(model, "continuing_subword_prefix") || tok_json_str(model, "end_of_word_suffix"))
        tok_unsupported(t, "model", "BPE with a subword prefix or suffix");
    t->can_encode = t->encode_why[0] == '\0';
    // bos/eos by the usual names, for the sample's default prompt
    static const char* BOS[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>"}, *EOS[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
    for (int i = 0; i < V; i++) {
        if (t->types[i] != TOK_CONTROL) continue;
        for (int k = 0; k < 3; k++) {
            if (t->bos_id < 0 && t->lengths[i] == (int)strlen(BOS[k]) && memcmp(t->pieces[i], BOS[k], strlen(BOS[k])) == 0) t->bos_id = i;
            if (t->eos_id < 0 && t->lengths[i] == (int)strlen(EOS[k]) && memcmp(t->pieces[i], EOS[k], strlen(EOS[k])) == 0) t->eos_id = i;
        }
    }
    cJSON_Delete(root);
}

// tokenizer_find: --tokenizer names a file, or a folder holding tokenizer.bin or tokenizer.json
// (a data folder of dev/data/c4.py, a Hugging Face model folder; both in a folder this program
// saved from a sentencepiece unigram run, whose tokenizer.json is for transformers: the .bin is
// sentencepiece's own normalizer); the file in out (cap bytes); returns 0 when nothing is there
static int tokenizer_find(const char* path, char* out, size_t cap) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) { snprintf(out, cap, "%s", path); return 1; }
    static const char* NAMES[2] = {"tokenizer.bin", "tokenizer.json"};
    for (int k = 0; k < 2; k++) {
        snprintf(out, cap, "%s/%s", path, NAMES[k]);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    }
    return 0;
}

// returns 1 when loaded; 0 when the file does not exist (the caller prints ids instead of text);
// dies with one line on a malformed file or a folder without a tokenizer
static int tokenizer_init(Tokenizer* t, const char* path_in) {
    memset(t, 0, sizeof(*t));
    char path[4096];
    struct stat st;
    if (!tokenizer_find(path_in, path, sizeof path)) {
        if (stat(path_in, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(path, sizeof path, "%s/tokenizer.model", path_in);
            int has_model = stat(path, &st) == 0;
            die("--tokenizer %s: a folder without tokenizer.json or tokenizer.bin; pass one of them%s", path_in,
                has_model ? " (its tokenizer.model becomes a tokenizer.bin with dev/data/export_tokenizer.py)" : " (dev/data/export_tokenizer.py makes a tokenizer.bin from a .model)");
        }
        return 0;
    }
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT) return 0;
        die("%s: cannot open tokenizer: %s; hint: check the path and permissions", path, strerror(errno));
    }
    int64_t size = file_size(f, path);
    if (size > ((int64_t)1 << 31)) die("%s: tokenizer file of %lld bytes is implausibly large; hint: wrong file?", path, (long long)size);
    t->blob = (char*)mallocCheck((size_t)size + 1);
    freadCheck(t->blob, 1, (size_t)size, f, path);
    t->blob[size] = '\0';
    fclose(f);
    size_t lead = 0;
    while (lead < (size_t)size && (t->blob[lead] == ' ' || t->blob[lead] == '\n' || t->blob[lead] == '\r' || t->blob[lead] == '\t')) lead++;
    if (lead < (size_t)size && t->blob[lead] == '{') tok_load_json(t, path);
    else tok_load_bin(t, path, size);
    tok_build_surface(t);
    t->loaded = 1;
    return 1;
}

// ----------------------------------------------------------------------------------------------
// decoding

// append n bytes to out (capacity cap, len used), silently truncating at cap-1
static void tokenizer_put(char* out, size_t cap, size_t* len, const char* s, size_t n) {
    if (cap == 0) return;
    size_t room = cap - 1 - *len;
    if (n > room) n = room;
    memcpy(out + *len, s, n);
    *len += n;
}

// tokenizer_piece: the bytes token id adds to the text (before the UTF-8 check), their count in
// *len; *at_start: no visible text yet, so the dummy-prefix space is still to be dropped.
// tmp (32 bytes) holds the text of an id outside the vocabulary.
static const char* tokenizer_piece(const Tokenizer* t, int id, int* at_start, char* tmp, size_t* len) {
    if (id < 0 || id >= t->vocab_size) {
        *len = (size_t)snprintf(tmp, 32, "<%d?>", id);
        *at_start = 0;
        return tmp;
    }
    const char* p = t->surface[id];
    size_t plen = (size_t)t->surface_len[id];
    if (plen == 0) { *len = 0; return p; }
    // sentencepiece drops the dummy prefix of the first normal piece only (a byte piece or " ⁇ "
    // keeps its space)
    int normal = t->types[id] == TOK_NORMAL || t->types[id] == TOK_UNUSED || t->types[id] == TOK_USER;
    if (*at_start && t->strip_first_space && normal && p[0] == ' ') { p++; plen--; }
    *at_start = 0;
    *len = plen;
    return p;
}

// ids (n,) -> UTF-8 in out; writes at most cap-1 bytes plus a NUL (never half a character);
// returns the bytes written
static size_t tokenizer_decode(const Tokenizer* t, const int* ids, int n, char* out, size_t cap) {
    // the raw bytes first, then the UTF-8 check into out
    size_t rcap = 1, len = 0;
    for (int k = 0; k < n; k++) rcap += (ids[k] >= 0 && ids[k] < t->vocab_size) ? (size_t)t->surface_len[ids[k]] : 32;
    char* raw = (char*)mallocCheck(rcap);
    int at_start = 1;
    for (int k = 0; k < n; k++) {
        char tmp[32];
        size_t plen;
        const char* p = tokenizer_piece(t, ids[k], &at_start, tmp, &plen);
        tokenizer_put(raw, rcap, &len, p, plen);
    }
    size_t olen = 0;
    for (size_t i = 0; i < len; ) {
        int m = tokenizer_utf8_len((const uint8_t*)raw + i, len - i);
        const char* src = m ? raw + i : TOK_REPLACEMENT;
        size_t sl = m ? (size_t)m : 3;
        if (cap == 0 || olen + sl > cap - 1) break;
        memcpy(out + olen, src, sl);
        olen += sl;
        i += m ? (size_t)m : 1;
    }
    if (cap > 0) out[olen] = '\0';
    free(raw);
    return olen;
}

// tokenizer_utf8_incomplete: whether p[0..n) is the start of a valid UTF-8 sequence that more
// bytes could complete (a lead byte and the continuation bytes seen so far, all allowed)
static int tokenizer_utf8_incomplete(const uint8_t* p, size_t n) {
    uint8_t c = p[0];
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || n >= need) return 0;
    // complete it with the smallest continuations that the lead byte allows (E0 needs A0.., F0 90..)
    static const uint8_t SECOND[3] = {0x80, 0x90, 0xA0};
    for (int k = 0; k < 3; k++) {
        uint8_t q[4];
        memcpy(q, p, n);
        for (size_t i = n; i < need; i++) q[i] = i == 1 ? SECOND[k] : 0x80;
        if (tokenizer_utf8_len(q, need) == (int)need) return 1;
    }
    return 0;
}

// TokStream: decoded text written as tokens arrive, never cutting a character: a multi-byte
// character split across tokens is held back until it completes, and bytes that cannot form
// UTF-8 print U+FFFD, one per byte, as tokenizer_decode does (the two print the same text)
typedef struct { FILE* f; uint8_t held[4]; size_t n_held; int at_start; } TokStream;

static void tokenizer_stream_start(TokStream* st, FILE* f) { memset(st, 0, sizeof *st); st->f = f; st->at_start = 1; }

static void tokenizer_stream_bytes(TokStream* st, const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        st->held[st->n_held++] = (uint8_t)s[i];
        // the held bytes: a complete character, the start of one, or invalid at the front
        for (;;) {
            int m = tokenizer_utf8_len(st->held, st->n_held);
            if (m) { fwrite(st->held, 1, (size_t)m, st->f); }
            else if (tokenizer_utf8_incomplete(st->held, st->n_held)) break;
            else { fwrite(TOK_REPLACEMENT, 1, 3, st->f); m = 1; }
            memmove(st->held, st->held + m, st->n_held - (size_t)m);
            st->n_held -= (size_t)m;
            if (st->n_held == 0) break;
        }
    }
}

static void tokenizer_stream_token(const Tokenizer* t, TokStream* st, int id) {
    char tmp[32];
    size_t len;
    const char* p = tokenizer_piece(t, id, &st->at_start, tmp, &len);
    tokenizer_stream_bytes(st, p, len);
    fflush(st->f);
}

// the end of the text: what is still held can no longer complete
static void tokenizer_stream_end(TokStream* st) {
    for (size_t i = 0; i < st->n_held; i++) fwrite(TOK_REPLACEMENT, 1, 3, st->f);
    st->n_held = 0;
}

// ----------------------------------------------------------------------------------------------
// encoding

// the precompiled charsmap: [uint32 trie bytes][darts-clone double array of uint32 units]
// [NUL-terminated replacement strings]; the longest prefix of s that the trie holds (the
// shortest: tokenizers' Precompiled) -> its replacement (*out), its length returned; 0 when no
// prefix matches
static int tok_charsmap_match(const Tokenizer* t, const char* s, size_t n, int shortest, const char** out) {
    if (t->charsmap_len == 0) return 0;
    uint32_t trie_bytes = (uint32_t)tokenizer_le32(t->charsmap);
    const uint8_t* units = t->charsmap + 4;
    uint32_t n_units = trie_bytes / 4;
    const char* repl = (const char*)t->charsmap + 4 + trie_bytes;
    uint32_t repl_len = t->charsmap_len - 4 - trie_bytes;
#define TOK_UNIT(i) ((uint32_t)tokenizer_le32(units + 4 * (size_t)(i)))
#define TOK_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    uint32_t pos = 0, u = TOK_UNIT(0);
    pos ^= TOK_OFFSET(u);
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == 0) break;
        pos ^= c;
        if (pos >= n_units) break;
        u = TOK_UNIT(pos);
        if ((u & ((1u << 31) | 0xFF)) != c) break; // the unit's label
        pos ^= TOK_OFFSET(u);
        if (pos >= n_units) break;
        if ((u >> 8) & 1) { // has a leaf: its value is the replacement's offset
            uint32_t v = TOK_UNIT(pos) & ((1u << 31) - 1);
            if (v < repl_len) { best = (int)(i + 1); *out = repl + v; if (shortest) break; }
        }
    }
#undef TOK_UNIT
#undef TOK_OFFSET
    return best;
}

// sentencepiece's user-defined pieces: the bytes of the longest one that starts s[0..n), 0 if none
static int tok_user_match(const Tokenizer* t, const char* s, size_t n) {
    int best = 0;
    for (int k = 0; k < t->n_user; k++) {
        int l = t->lengths[t->user_ids[k]];
        if (l > best && (size_t)l <= n && memcmp(s, t->pieces[t->user_ids[k]], (size_t)l) == 0) best = l;
    }
    return best;
}

// sentencepiece's normalizer: text -> the string the model segments ('▁' for spaces); a
// user-defined piece passes as it is
static void tok_spm_normalize(const Tokenizer* t, const char* s, size_t n, TokStr* out) {
    static const char SPACE_MARK[] = "\xE2\x96\x81", REPL[] = "\xEF\xBF\xBD";
    int remove_ws = (t->flags & TOKF_REMOVE_WS) != 0, escape = (t->flags & TOKF_ESCAPE_WS) != 0;
    // one normalized prefix: (p, pl) for the input's next `consumed` bytes
    #define TOK_NORM_PREFIX(at) do { \
        const char* r_; int m_ = tok_charsmap_match(t, s + (at), n - (at), 0, &r_), w_ = tok_user_match(t, s + (at), n - (at)); \
        if (w_) { p = s + (at); pl = (size_t)w_; consumed = (size_t)w_; } \
        else if (m_) { p = r_; pl = strlen(r_); consumed = (size_t)m_; } \
        else { int u_ = tokenizer_utf8_len((const uint8_t*)s + (at), n - (at)); \
               if (u_) { p = s + (at); pl = (size_t)u_; consumed = (size_t)u_; } else { p = REPL; pl = 3; consumed = 1; } } \
    } while (0)
    size_t i = 0, consumed, pl;
    const char* p;
    if (remove_ws) {
        while (i < n) { TOK_NORM_PREFIX(i); if (!(pl == 1 && p[0] == ' ')) break; i += consumed; }
    }
    if (i >= n) return;
    if (t->flags & TOKF_DUMMY_PREFIX) tok_append(out, escape ? SPACE_MARK : " ", escape ? 3 : 1);
    int prev_space = remove_ws;
    while (i < n) {
        TOK_NORM_PREFIX(i);
        if (prev_space) while (pl > 0 && p[0] == ' ') { p++; pl--; }
        if (pl > 0) {
            for (size_t k = 0; k < pl; k++) {
                if (escape && p[k] == ' ') tok_append(out, SPACE_MARK, 3);
                else tok_append(out, p + k, 1);
            }
            prev_space = p[pl - 1] == ' ';
        }
        i += consumed;
        if (!remove_ws) prev_space = 0;
    }
    #undef TOK_NORM_PREFIX
    if (remove_ws) {
        size_t ml = escape ? 3 : 1;
        while (out->n >= ml && memcmp(out->s + out->n - ml, escape ? SPACE_MARK : " ", ml) == 0) out->n -= ml;
        if (out->s) out->s[out->n] = '\0';
    }
}

// a symbol of a BPE word: bytes [start, start+len) of the word
typedef struct { int start, len, frozen; } TokSym;

// one piece of text that is not in the vocabulary: its bytes (byte fallback) or unk
static void tok_emit_unknown(const Tokenizer* t, const char* s, int n, TokIds* ids, int* last_unk) {
    int all_bytes = (t->flags & TOKF_BYTE_FALLBACK) != 0;
    for (int k = 0; all_bytes && k < n; k++) all_bytes = t->byte_id[(uint8_t)s[k]] >= 0;
    if (all_bytes) {
        for (int k = 0; k < n; k++) tok_push(ids, t->byte_id[(uint8_t)s[k]]);
        *last_unk = 0;
        return;
    }
    if (t->unk_id < 0) die("--prompt: \"%.*s\" is not in the tokenizer's vocabulary, and it has neither byte fallback nor an unk piece", n, s);
    // runs of unknown pieces become one unk: sentencepiece merges them, tokenizers with fuse_unk
    if (*last_unk && (t->source == TOKSRC_SPM || t->fuse_unk)) return;
    tok_push(ids, t->unk_id);
    *last_unk = 1;
}

// BPE over the word s[0..n): start from its UTF-8 characters and merge the best adjacent pair
// until none merges: sentencepiece's best is the highest score of the joined piece, tokenizers'
// the lowest merge rank; ties go to the leftmost pair (both libraries' priority queues)
static void tok_bpe_word(const Tokenizer* t, const char* s, int n, TokIds* ids, int* last_unk) {
    if (n <= 0) return;
    if (t->source == TOKSRC_HF && t->ignore_merges) {
        int id = tok_hash_get(&t->vocab, s, n);
        if (id >= 0) { tok_push(ids, id); *last_unk = 0; return; }
    }
    // (sentencepiece: a user-defined piece is one symbol from the start, never merged)
    TokSym* sym = (TokSym*)mallocCheck(sizeof(TokSym) * (size_t)n);
    int ns = 0;
    for (int i = 0; i < n; ) {
        int m = tokenizer_utf8_len((const uint8_t*)s + i, (size_t)(n - i)), u = tok_user_match(t, s + i, (size_t)(n - i));
        if (m == 0) m = 1;
        sym[ns].start = i; sym[ns].len = u ? u : m; sym[ns].frozen = u > 0; ns++;
        i += u ? u : m;
    }
    char* key = (char*)mallocCheck((size_t)n + 2);
    for (;;) {
        int best = -1; double best_pri = 0.0;
        for (int k = 0; k + 1 < ns; k++) {
            double pri;
            if (sym[k].frozen || sym[k + 1].frozen) continue;
            if (t->source == TOKSRC_SPM) {
                int id = tok_hash_get(&t->vocab, s + sym[k].start, sym[k].len + sym[k + 1].len);
                if (id < 0) continue;
                pri = -(double)t->scores[id]; // lower is better
            } else {
                memcpy(key, s + sym[k].start, (size_t)sym[k].len);
                key[sym[k].len] = (char)0xFF;
                memcpy(key + sym[k].len + 1, s + sym[k + 1].start, (size_t)sym[k + 1].len);
                int r = tok_hash_get(&t->merges, key, sym[k].len + 1 + sym[k + 1].len);
                if (r < 0 || tok_hash_get(&t->vocab, s + sym[k].start, sym[k].len + sym[k + 1].len) < 0) continue;
                pri = (double)r;
            }
            if (best < 0 || pri < best_pri) { best = k; best_pri = pri; }
        }
        if (best < 0) break;
        sym[best].len += sym[best + 1].len;
        memmove(sym + best + 1, sym + best + 2, sizeof(TokSym) * (size_t)(ns - best - 2));
        ns--;
    }
    for (int k = 0; k < ns; k++) {
        int id = tok_hash_get(&t->vocab, s + sym[k].start, sym[k].len);
        if (id >= 0) { tok_push(ids, id); *last_unk = 0; }
        else tok_emit_unknown(t, s + sym[k].start, sym[k].len, ids, last_unk);
    }
    free(key);
    free(sym);
}

// unigram (sentencepiece's Viterbi, tokenizers' too): the segmentation of s[0..n) with the
// highest total score; at each character start, every vocabulary piece that begins there
// (shortest first) offers a path, and an unknown character scores the lowest piece score - 10
// where no single-character piece exists; a strictly better score replaces a path (the first
// found wins ties). Sums in float as sentencepiece, in double as tokenizers (tokenizer.json),
// whose every piece is a path at its own score (sentencepiece: normal pieces, and user-defined
// ones at 0; the lowest among normal pieces)
static void tok_unigram(const Tokenizer* t, const char* s, int n, TokIds* ids, int* last_unk) {
    if (n <= 0) return;
    int hf = t->source == TOKSRC_HF;
    double* best = (double*)mallocCheck(sizeof(double) * (size_t)(n + 1));
    int* from = (int*)mallocCheck(sizeof(int) * (size_t)(n + 1));
    int* piece = (int*)mallocCheck(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i <= n; i++) { from[i] = -1; best[i] = 0.0; piece[i] = -1; }
    const double unk_score = hf ? (double)t->min_score - 10.0 : (double)(t->min_score - 10.0f);
    for (int at = 0; at < n; ) {
        int m = tokenizer_utf8_len((const uint8_t*)s + at, (size_t)(n - at));
        if (m == 0) m = 1;
        double here = best[at];
        int single = 0;
        for (int end = at + 1; end <= n && end - at <= t->max_piece_len; end++) {
            int id = tok_hash_get(&t->vocab, s + at, end - at);
            if (id < 0 || (!hf && t->types[id] == TOK_UNUSED)) continue;
            // (sentencepiece 0.2: a user-defined piece scores 0, "▁he" "r" of spm_uni_user in
            // make_tokenizers.py; 0.1.97 scored it -0.1: "▁her")
            double cand = hf ? (double)t->scores[id] + here : (double)((t->types[id] == TOK_USER ? 0.0f : t->scores[id]) + (float)here);
            if (from[end] == -1 || cand > best[end]) { best[end] = hf ? cand : (double)(float)cand; from[end] = at; piece[end] = id; }
            if (end - at == m) single = 1;
        }
        if (!single) {
            double cand = hf ? unk_score + here : (double)((float)unk_score + (float)here);
            if (from[at + m] == -1 || cand > best[at + m]) { best[at + m] = cand; from[at + m] = at; piece[at + m] = -1; }
        }
        at += m;
    }
    // back from the end, then in order
    int cnt = 0;
    for (int e = n; e > 0; e = from[e]) cnt++;
    int* ends = (int*)mallocCheck(sizeof(int) * (size_t)cnt);
    int k = cnt;
    for (int e = n; e > 0; e = from[e]) ends[--k] = e;
    for (k = 0; k < cnt; k++) {
        int e = ends[k], b = from[e];
        if (piece[e] >= 0) { tok_push(ids, piece[e]); *last_unk = 0; }
        else tok_emit_unknown(t, s + b, e - b, ids, last_unk);
    }
    free(ends); free(best); free(from); free(piece);
}

// --- the pre-tokenizer regexes of GPT-2 and Llama 3, by hand

// the class of cp in one of unicode_class.h's tables of (first, last | class << 24), 0 where none
static int tok_range_class(const uint32_t (*table)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < table[mid][0]) hi = mid - 1;
        else if (cp > (table[mid][1] & 0xFFFFFF)) lo = mid + 1;
        else return (int)(table[mid][1] >> 24);
    }
    return 0;
}
static int tok_uni_class(uint32_t cp) { // 1 \p{L}, 2 Nd/Nl, 3 No, 4 the rest of \w, 0 other
    return tok_range_class(UNICODE_CLASS, UNICODE_CLASS_RANGES, cp);
}
static int tok_is_space(uint32_t c) { // \s: Unicode White_Space
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static int tok_is_l(uint32_t c) { return tok_uni_class(c) == 1; }
static int tok_is_n(uint32_t c) { int k = tok_uni_class(c); return k == 2 || k == 3; }
static int tok_is_other(uint32_t c) { int k = tok_uni_class(c); return !tok_is_space(c) && (k == 0 || k == 4); } // [^\s\p{L}\p{N}]
static int tok_is_word(uint32_t c) { int k = tok_uni_class(c); return k == 1 || k == 2 || k == 4; } // \w of Rust's regex crate

// the length in code points of the regex match at cp[i..n) (leftmost alternative that matches,
// each greedy with the backtracking the regex engine would do); never 0
static int tok_pretok_match(const uint32_t* cp, int i, int n, int llama3) {
    int j;
    // contractions: Llama 3 case-insensitive, GPT-2 lower case only
    if (cp[i] == '\'' && i + 1 < n) {
        uint32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
        if (llama3) { if (a < 128) a |= 0x20; if (b < 128) b |= 0x20; }
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    if (llama3) {
        // [^\r\n\p{L}\p{N}]?\p{L}+
        j = i;
        if (!tok_is_l(cp[j]) && cp[j] != '\r' && cp[j] != '\n' && !tok_is_n(cp[j]) && j + 1 < n && tok_is_l(cp[j + 1])) j++;
        if (tok_is_l(cp[j])) { while (j < n && tok_is_l(cp[j])) j++; return j - i; }
        // \p{N}{1,3}
        if (tok_is_n(cp[i])) { j = i; while (j < n && j - i < 3 && tok_is_n(cp[j])) j++; return j - i; }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        j = i + (cp[i] == ' ' && i + 1 < n && tok_is_other(cp[i + 1]));
        if (tok_is_other(cp[j])) {
            while (j < n && tok_is_other(cp[j])) j++;
            while (j < n && (cp[j] == '\r' || cp[j] == '\n')) j++;
            return j - i;
        }
        // \s*[\r\n]+ : up to the last \r or \n of the whitespace run
        int last = -1;
        for (j = i; j < n && tok_is_space(cp[j]); j++) if (cp[j] == '\r' || cp[j] == '\n') last = j;
        if (last >= 0) return last + 1 - i;
    } else {
        // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
        j = i + (cp[i] == ' ' && i + 1 < n);
        int (*cls[3])(uint32_t) = {tok_is_l, tok_is_n, tok_is_other};
        for (int c = 0; c < 3; c++) {
            if (cls[c](cp[j])) { int e = j; while (e < n && cls[c](cp[e])) e++; return e - i; }
        }
    }
    // \s+(?!\S) then \s+: a whitespace run, less its last character when a non-space follows
    for (j = i; j < n && tok_is_space(cp[j]); j++) {}
    if (j > i) return (j < n && j - 1 > i) ? j - 1 - i : j - i;
    return 1; // not reached: every character matches one alternative
}

// the code point that starts at s[0..n) / ends s[0..at): 0xFFFD where the bytes are not UTF-8
static uint32_t tok_cp_at(const char* s, size_t n, int* len) {
    uint32_t c;
    int m = tokenizer_utf8_cp((const uint8_t*)s, n, &c);
    *len = m ? m : 1;
    return m ? c : 0xFFFD;
}
static uint32_t tok_cp_before(const char* s, size_t at, int* len) {
    for (int m = 1; m <= 4 && (size_t)m <= at; m++) {
        uint32_t c;
        if (tokenizer_utf8_cp((const uint8_t*)s + at - m, (size_t)m, &c) == m) { *len = m; return c; }
    }
    *len = 1;
    return 0xFFFD;
}

// --- tokenizers' Precompiled normalizer: sentencepiece's charsmap applied grapheme by grapheme

enum { TOKG_CR = 1, TOKG_LF, TOKG_CONTROL, TOKG_EXTEND, TOKG_ZWJ, TOKG_PREPEND, TOKG_SPACINGMARK, TOKG_PICT };
static int tok_grapheme_class(uint32_t c) { return tok_range_class(UNICODE_GRAPHEME, UNICODE_GRAPHEME_RANGES, c); }

// the bytes of the extended grapheme cluster that starts s[0..n): UAX #29's rules but those that
// join only into 6 bytes or more, which Precompiled takes character by character as it would
// the parts: Hangul syllables (GB6-GB8), regional indicator pairs (GB12, GB13), Indic conjuncts
// (GB9c)
static size_t tok_grapheme_len(const char* s, size_t n) {
    int m;
    int prev = tok_grapheme_class(tok_cp_at(s, n, &m));
    int pict = prev == TOKG_PICT, pict_zwj = 0; // ExtPict Extend* so far; ExtPict Extend* ZWJ
    size_t i = (size_t)m;
    while (i < n) {
        int cur = tok_grapheme_class(tok_cp_at(s + i, n - i, &m)), join;
        if (prev == TOKG_CR && cur == TOKG_LF) join = 1;
        else if (prev == TOKG_CR || prev == TOKG_LF || prev == TOKG_CONTROL || cur == TOKG_CR || cur == TOKG_LF || cur == TOKG_CONTROL) join = 0;
        else if (cur == TOKG_EXTEND || cur == TOKG_ZWJ || cur == TOKG_SPACINGMARK || prev == TOKG_PREPEND) join = 1;
        else if (prev == TOKG_ZWJ && cur == TOKG_PICT) join = pict_zwj;
        else join = 0;
        if (!join) break;
        pict_zwj = cur == TOKG_ZWJ && pict;
        pict = cur == TOKG_PICT || (pict && cur == TOKG_EXTEND);
        prev = cur;
        i += (size_t)m;
    }
    return i;
}

// Precompiled: a grapheme of fewer than 6 bytes that starts with a key of the charsmap becomes
// the replacement of its shortest such key (the rest of it dropped); any other grapheme goes
// character by character, each replaced where it is a key
static void tok_precompiled(const Tokenizer* t, const char* s, size_t n, TokStr* out) {
    const char* r;
    for (size_t i = 0, g; i < n; i += g) {
        g = tok_grapheme_len(s + i, n - i);
        if (g < 6 && tok_charsmap_match(t, s + i, g, 1, &r)) { tok_append(out, r, strlen(r)); continue; }
        for (size_t j = i; j < i + g; ) {
            int m;
            tok_cp_at(s + j, i + g - j, &m);
            if (tok_charsmap_match(t, s + j, (size_t)m, 1, &r)) tok_append(out, r, strlen(r));
            else tok_append(out, s + j, (size_t)m);
            j += (size_t)m;
        }
    }
}

// the tokenizer.json normalizers (TOKN_*) on s[0..n), in order, appended to out
static void tok_hf_normalize(const Tokenizer* t, const char* s, size_t n, TokStr* out) {
    static const char SPACE_MARK[] = "\xE2\x96\x81";
    TokStr a = {0}, b = {0};
    tok_append(&a, s, n);
    for (int k = 0; k < t->n_norm; k++) {
        int step = t->norm[k], m;
        size_t i0 = 0, i1 = a.n;
        b.n = 0;
        tok_append(&b, "", 0);
        if (step == TOKN_PRECOMPILED) {
            tok_precompiled(t, a.s, a.n, &b);
        } else if (step == TOKN_TRIM_SPACES || step == TOKN_STRIP_LEFT || step == TOKN_STRIP_RIGHT) {
            // \A +| +\z: spaces at both ends; Strip: whitespace at one end
            int any_ws = step != TOKN_TRIM_SPACES;
            if (step != TOKN_STRIP_RIGHT) while (i0 < i1 && (any_ws ? tok_is_space(tok_cp_at(a.s + i0, i1 - i0, &m)) : (m = 1, a.s[i0] == ' '))) i0 += (size_t)m;
            if (step != TOKN_STRIP_LEFT) while (i1 > i0 && (any_ws ? tok_is_space(tok_cp_before(a.s, i1, &m)) : (m = 1, a.s[i1 - 1] == ' '))) i1 -= (size_t)m;
            tok_append(&b, a.s + i0, i1 - i0);
        } else if (step == TOKN_COLLAPSE_SPACES || step == TOKN_COLLAPSE_TO_MARK) {
            for (size_t i = 0, j; i < a.n; i = j) {
                for (j = i; j < a.n && a.s[j] == ' '; j++) {}
                if (j - i >= 2) tok_append(&b, step == TOKN_COLLAPSE_SPACES ? " " : SPACE_MARK, step == TOKN_COLLAPSE_SPACES ? 1 : 3);
                else if (j > i) tok_append(&b, " ", 1);
                else tok_append(&b, a.s + j++, 1);
            }
        } else if (step == TOKN_PREPEND) {
            if (a.n) tok_append(&b, SPACE_MARK, 3); // (not before empty text)
            tok_append(&b, a.s, a.n);
        } else { // TOKN_REPLACE_SPACE
            for (size_t i = 0; i < a.n; i++) tok_append(&b, a.s[i] == ' ' ? SPACE_MARK : a.s + i, a.s[i] == ' ' ? 3 : 1);
        }
        TokStr tmp = a; a = b; b = tmp;
    }
    tok_append(out, a.s, a.n);
    free(a.s); free(b.s);
}

// pieces of text: piece k is bytes [end[k-1], end[k]) of s (end[-1] = 0)
typedef struct { TokStr s; TokIds end; } TokPieces;
static void tok_piece_add(TokPieces* p, const char* s, size_t n) {
    if (n == 0) return; // (the libraries drop empty pieces)
    tok_append(&p->s, s, n);
    tok_push(&p->end, (int)p->s.n);
}

// one pre-tokenizer stage on the piece q[0..n), the first of the text or not: its pieces into
// out. cp/at: room for n + 1 code points (invalid bytes, which a C string may hold, as U+FFFD,
// for the splits only)
static void tok_stage_piece(const Tokenizer* t, int stage, const char* q, int n, int first, uint32_t* cp, int* at, TokPieces* out) {
    static const char SPACE_MARK[] = "\xE2\x96\x81";
    if (stage == TOKST_PREFIX_SPACE) { // ByteLevel's add_prefix_space: before every piece that lacks one
        if (q[0] != ' ') tok_append(&out->s, " ", 1);
        tok_piece_add(out, q, (size_t)n);
        return;
    }
    if (stage == TOKST_META) { // Metaspace: ' ' -> '▁', and a '▁' before a piece without one (always, or the text's first)
        if ((t->meta_prepend == 1 || (t->meta_prepend == 2 && first)) && q[0] != ' ' && !(n >= 3 && memcmp(q, SPACE_MARK, 3) == 0))
            tok_append(&out->s, SPACE_MARK, 3);
        for (int i = 0; i < n; i++) tok_append(&out->s, q[i] == ' ' ? SPACE_MARK : q + i, q[i] == ' ' ? 3 : 1);
        tok_push(&out->end, (int)out->s.n);
        return;
    }
    int nc = 0;
    for (int i = 0; i < n; ) {
        int m = tokenizer_utf8_cp((const uint8_t*)q + i, (size_t)(n - i), &cp[nc]);
        if (m == 0) { cp[nc] = 0xFFFD; m = 1; }
        at[nc++] = i;
        i += m;
    }
    at[nc] = n;
    for (int i = 0; i < nc; ) {
        int j = i + 1;
        if (stage == TOKST_DIGITS_EACH || stage == TOKST_DIGITS_RUN) { // each digit, or each run of digits, alone; the rest between
            int d = tok_is_n(cp[i]);
            while ((!d || stage == TOKST_DIGITS_RUN) && j < nc && tok_is_n(cp[j]) == d) j++;
        } else if (stage == TOKST_META_SPLIT) { // a piece starts at every U+2581 (MergedWithNext)
            while (j < nc && cp[j] != 0x2581) j++;
        } else if (stage == TOKST_WS_SPLIT) { // WhitespaceSplit: the runs of non-whitespace, the whitespace dropped
            int ws = tok_is_space(cp[i]);
            while (j < nc && tok_is_space(cp[j]) == ws) j++;
            if (ws) { i = j; continue; }
        } else {
            j = i + tok_pretok_match(cp, i, nc, stage == TOKST_LLAMA3);
        }
        tok_piece_add(out, q + at[i], (size_t)(at[j] - at[i]));
        i = j;
    }
}

// one segment of normalized text (between added tokens), the first of the text or not, through
// the rest of the tokenizer.json pipeline: the pre-tokenizers' stages in order, ByteLevel's byte
// map of each piece, then the model on each piece (its unknown pieces fuse within a piece only)
static void tok_hf_segment(const Tokenizer* t, const char* s, size_t n, int first, TokIds* ids, int* last_unk) {
    if (n == 0) return;
    TokPieces cur = {0}, next = {0};
    tok_piece_add(&cur, s, n);
    // code points of a piece: a piece is at most the text, which the stages may lengthen
    size_t room = 0;
    uint32_t* cp = NULL;
    int* at = NULL;
    for (int k = 0; k < t->n_stages; k++) {
        if (cur.s.n + 2 > room) {
            free(cp); free(at);
            room = cur.s.n + 2;
            cp = (uint32_t*)mallocCheck(sizeof(uint32_t) * room);
            at = (int*)mallocCheck(sizeof(int) * room);
        }
        next.s.n = 0; next.end.n = 0;
        for (int p = 0, b = 0; p < cur.end.n; b = cur.end.ids[p++]) tok_stage_piece(t, t->stage[k], cur.s.s + b, cur.end.ids[p] - b, first && p == 0, cp, at, &next);
        TokPieces tmp = cur; cur = next; next = tmp;
    }
    TokStr word = {0};
    for (int p = 0, b = 0; p < cur.end.n; b = cur.end.ids[p++]) {
        word.n = 0;
        for (int i = b; i < cur.end.ids[p]; i++) {
            char u[4];
            int m = t->byte_level ? tok_utf8_put(u, tok_byte_to_cp((uint8_t)cur.s.s[i])) : (u[0] = cur.s.s[i], 1);
            tok_append(&word, u, (size_t)m);
        }
        *last_unk = 0;
        if (t->model == TOKMODEL_UNIGRAM) tok_unigram(t, word.s, (int)word.n, ids, last_unk);
        else tok_bpe_word(t, word.s, (int)word.n, ids, last_unk);
    }
    free(word.s); free(cp); free(at);
    free(cur.s.s); free(cur.end.ids); free(next.s.s); free(next.end.ids);
}

// a piece of text: an added token (id) or the text between them (id -1), bytes [start, stop)
typedef struct { int start, stop, id; } TokSplit;

// the added tokens of one kind (normalized or not) in s[0..n) as tokenizers' AddedVocabulary
// finds them: the leftmost-longest matches, not overlapping; a single_word match with a word
// character (\w) just before or after it is dropped (and the search goes on after it, not
// inside it); lstrip widens a match over the whitespace on its left, rstrip over the whitespace
// on its right. The splits, in order, into *out (malloc'd); their count returned.
static int tok_added_splits(const Tokenizer* t, const char* s, size_t n, int normalized, TokSplit** out) {
    TokSplit* sp = (TokSplit*)mallocCheck(sizeof(TokSplit) * (2 * n + 2)); // at most a match per byte, a split before each, one after
    int ns = 0, m;
    size_t from = 0; // the end of the last split
    for (size_t i = 0; i < n; ) {
        int hit = -1, hl = 0;
        for (int k = 0; k < t->n_added; k++) {
            int l = t->added_plen[k];
            if (((t->added_flags[k] & TOKA_NORMALIZED) != 0) == normalized && l > hl && (size_t)l <= n - i && memcmp(s + i, t->added_pat[k], (size_t)l) == 0) { hit = k; hl = l; }
        }
        if (hit < 0) { i++; continue; }
        size_t start = i, stop = i + (size_t)hl;
        i = stop;
        int f = t->added_flags[hit];
        if ((f & TOKA_SINGLE_WORD) && ((start > 0 && tok_is_word(tok_cp_before(s, start, &m))) || (stop < n && tok_is_word(tok_cp_at(s + stop, n - stop, &m))))) continue;
        if (f & TOKA_LSTRIP) {
            // (tokenizers stops at the previous match: its spaces would be in both, the same ids)
            while (start > 0 && tok_is_space(tok_cp_before(s, start, &m))) start -= (size_t)m;
        }
        if (f & TOKA_RSTRIP) while (stop < n && tok_is_space(tok_cp_at(s + stop, n - stop, &m))) stop += (size_t)m;
        if (from < start) sp[ns++] = (TokSplit){(int)from, (int)start, -1};
        sp[ns++] = (TokSplit){(int)start, (int)stop, t->added[hit]};
        from = stop;
    }
    if (from < n) sp[ns++] = (TokSplit){(int)from, (int)n, -1};
    *out = sp;
    return ns;
}

// tokenizer_encode: UTF-8 text -> ids (no bos/eos: see tokenizer_prefix_ids) into *out
// (malloc'd), their count returned; dies with one line where this tokenizer cannot encode
static int tokenizer_encode(const Tokenizer* t, const char* text, int** out) {
    if (!t->can_encode) die("--prompt: the tokenizer %s", t->encode_why);
    TokIds ids = {0};
    int last_unk = 0;
    size_t n = strlen(text);
    if (t->source == TOKSRC_SPM) {
        TokStr norm = {0};
        tok_spm_normalize(t, text, n, &norm);
        if (t->model == TOKMODEL_BPE) tok_bpe_word(t, norm.s, (int)norm.n, &ids, &last_unk);
        else tok_unigram(t, norm.s, (int)norm.n, &ids, &last_unk);
        free(norm.s);
    } else {
        // tokenizers' AddedVocabulary::extract_and_normalize: the added tokens matched in the raw text
        // split it; each piece between them goes through the normalizer, and the added tokens
        // matched in the normalized text split that; the rest goes through the pre-tokenizers
        TokSplit* raw;
        int nr = tok_added_splits(t, text, n, 0, &raw);
        TokStr norm = {0};
        for (int r = 0; r < nr; r++) {
            if (raw[r].id >= 0) { tok_push(&ids, raw[r].id); continue; }
            norm.n = 0;
            tok_hf_normalize(t, text + raw[r].start, (size_t)(raw[r].stop - raw[r].start), &norm);
            TokSplit* sub;
            int ns = tok_added_splits(t, norm.s, norm.n, 1, &sub);
            for (int q = 0; q < ns; q++) {
                if (sub[q].id >= 0) tok_push(&ids, sub[q].id);
                else tok_hf_segment(t, norm.s + sub[q].start, (size_t)(sub[q].stop - sub[q].start), raw[r].start == 0 && sub[q].start == 0, &ids, &last_unk);
            }
            free(sub);
        }
        free(norm.s);
        free(raw);
    }
    *out = ids.ids;
    return ids.n;
}

// the ids a model is fed before an encoded prompt: tokenizer.json's post-processor prefix
// (Llama's bos, as transformers' tokenizer(text) gives); none for sentencepiece, whose shards
// (dev/data) hold documents' ids without bos
static int tokenizer_prefix_ids(const Tokenizer* t, const int** ids) {
    *ids = t->prefix_ids;
    return t->n_prefix;
}

static void tokenizer_free(Tokenizer* t) {
    free(t->types);
    free(t->lengths);
    free(t->scores);
    free(t->byte_value);
    free(t->pieces);
    free(t->blob);
    free(t->text);
    free(t->surface);
    free(t->surface_len);
    free(t->surface_blob);
    free(t->added);
    free(t->user_ids);
    free(t->added_flags);
    free((void*)t->added_pat);
    free(t->added_plen);
    free(t->added_text);
    free(t->charsmap_owned);
    tok_hash_free(&t->vocab);
    tok_hash_free(&t->merges);
    memset(t, 0, sizeof(*t));
}

#endif // TOKENIZER_H
