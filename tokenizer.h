// tokenizer.h: decode token ids to UTF-8 text (decode only; encoding is done offline in
// Python by SentencePiece when the data shards are made).
//
// File format of tokenizer.bin (written by dev/data/export_tokenizer.py from a .model):
//   header: 256 little-endian int32 (1024 bytes)
//     [0] magic 20241124   [1] version 1   [2] vocab_size
//     [3] bos id   [4] eos id   [5] pad id (-1 if none)   [6] unk id (-1 if none)   rest 0
//   then, for each id 0 .. vocab_size-1:
//     uint8 type: 0 normal piece, 1 control, 2 byte-fallback, 3 unknown, 4 unused
//     uint8 length (0..255)
//     length bytes: the SentencePiece piece text (UTF-8, U+2581 '▁' as the space marker;
//                   byte pieces as their text, e.g. "<0x0A>")
//   and nothing after the last piece.
//
// Decoding follows sentencepiece's DecodeIds: '▁' -> ' ', the leading '▁' of the first visible
// piece is dropped (the dummy prefix), runs of byte-fallback pieces become their raw bytes,
// control pieces (bos/eos/pad) print nothing, unknown pieces print " ⁇ ", and bytes that do not
// form valid UTF-8 (a byte-fallback run cut short, a stray continuation byte) print U+FFFD, one
// per byte (sentencepiece's DecodeIds also replaces them): the output is always valid UTF-8. One difference, on purpose:
// an id outside the vocabulary prints "<ID?>" instead of failing.
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include "utils.h"

#define TOKENIZER_MAGIC 20241124
#define TOKENIZER_VERSION 1
#define TOKENIZER_HEADER_BYTES 1024
#define TOKENIZER_MAX_VOCAB (1 << 24)

enum { TOK_NORMAL = 0, TOK_CONTROL = 1, TOK_BYTE = 2, TOK_UNKNOWN = 3, TOK_UNUSED = 4 };

typedef struct {
    int vocab_size;
    int bos_id, eos_id, pad_id, unk_id;   // -1 where the model has none
    uint8_t* types;      // (vocab_size,) TOK_*
    uint8_t* lengths;    // (vocab_size,) bytes of each piece
    uint8_t* byte_value; // (vocab_size,) the byte of a TOK_BYTE piece
    const char** pieces; // (vocab_size,) pointers into blob, not NUL-terminated
    char* blob;          // the whole file
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

// returns 1 when loaded; 0 when the file does not exist (the caller skips decoding with a
// warning); dies with one line on a malformed file
static int tokenizer_init(Tokenizer* t, const char* path) {
    memset(t, 0, sizeof(*t));
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        die("--tokenizer %s: is a folder; pass the tokenizer.bin file (dev/data/export_tokenizer.py makes one from a .model)", path);
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT) return 0;
        die("%s: cannot open tokenizer: %s; hint: check the path and permissions", path, strerror(errno));
    }
    int64_t size = file_size(f, path);
    if (size < TOKENIZER_HEADER_BYTES) {
        die("%s: truncated tokenizer: %lld bytes, smaller than the %d-byte header; hint: re-run "
            "dev/data/export_tokenizer.py", path, (long long)size, TOKENIZER_HEADER_BYTES);
    }
    if (size > ((int64_t)1 << 31)) die("%s: tokenizer file of %lld bytes is implausibly large; hint: wrong file?", path, (long long)size);
    t->blob = (char*)mallocCheck((size_t)size);
    freadCheck(t->blob, 1, (size_t)size, f, path);
    fclose(f);
    const uint8_t* b = (const uint8_t*)t->blob;
    int32_t magic = tokenizer_le32(b), version = tokenizer_le32(b + 4);
    if (magic != TOKENIZER_MAGIC) {
        die("%s: wrong magic %d (expected %d); hint: this is not a tokenizer.bin, make one with "
            "dev/data/export_tokenizer.py", path, magic, TOKENIZER_MAGIC);
    }
    if (version != TOKENIZER_VERSION) {
        die("%s: unknown tokenizer version %d (expected %d); hint: re-run dev/data/export_tokenizer.py",
            path, version, TOKENIZER_VERSION);
    }
    int32_t vocab = tokenizer_le32(b + 8);
    if (vocab < 1 || vocab > TOKENIZER_MAX_VOCAB) die("%s: bad vocab_size %d in the header; hint: the file is corrupt", path, vocab);
    t->vocab_size = vocab;
    t->bos_id = tokenizer_le32(b + 12);
    t->eos_id = tokenizer_le32(b + 16);
    t->pad_id = tokenizer_le32(b + 20);
    t->unk_id = tokenizer_le32(b + 24);
    const char* names[4] = {"bos", "eos", "pad", "unk"};
    int ids[4] = {t->bos_id, t->eos_id, t->pad_id, t->unk_id};
    for (int i = 0; i < 4; i++) {
        if (ids[i] < -1 || ids[i] >= vocab) die("%s: %s id %d is outside [-1, vocab_size %d); hint: the file is corrupt", path, names[i], ids[i], vocab);
    }
    t->types = (uint8_t*)mallocCheck((size_t)vocab);
    t->lengths = (uint8_t*)mallocCheck((size_t)vocab);
    t->byte_value = (uint8_t*)callocCheck((size_t)vocab, 1);
    t->pieces = (const char**)mallocCheck((size_t)vocab * sizeof(const char*));
    int64_t off = TOKENIZER_HEADER_BYTES;
    for (int i = 0; i < vocab; i++) {
        if (off + 2 > size) die("%s: truncated at piece %d of %d (offset %lld); hint: re-run dev/data/export_tokenizer.py", path, i, vocab, (long long)off);
        uint8_t type = b[off], len = b[off + 1];
        off += 2;
        if (type > TOK_UNUSED) die("%s: piece %d has unknown type %d (offset %lld); hint: the file is corrupt", path, i, type, (long long)(off - 2));
        if (off + len > size) die("%s: truncated inside piece %d of %d (needs %d bytes at offset %lld); hint: re-run dev/data/export_tokenizer.py", path, i, vocab, len, (long long)off);
        t->types[i] = type;
        t->lengths[i] = len;
        t->pieces[i] = t->blob + off;
        if (type == TOK_BYTE) { // text must be "<0xHH>"
            const char* p = t->blob + off;
            int hi = len == 6 ? tokenizer_hexval(p[3]) : -1, lo = len == 6 ? tokenizer_hexval(p[4]) : -1;
            if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>' || hi < 0 || lo < 0) {
                die("%s: byte piece %d is \"%.*s\", not of the form <0xHH>; hint: the file is corrupt", path, i, (int)len, p);
            }
            t->byte_value[i] = (uint8_t)(hi * 16 + lo);
        }
        off += len;
    }
    if (off != size) die("%s: %lld trailing bytes after the last piece; hint: the file is corrupt or vocab_size is wrong", path, (long long)(size - off));
    t->loaded = 1;
    return 1;
}

// append n bytes to out (capacity cap, len used), silently truncating at cap-1
static void tokenizer_put(char* out, size_t cap, size_t* len, const char* s, size_t n) {
    if (cap == 0) return;
    size_t room = cap - 1 - *len;
    if (n > room) n = room;
    memcpy(out + *len, s, n);
    *len += n;
}

// tokenizer_utf8_len: the length of the valid UTF-8 sequence starting at p (n bytes left), 0 if
// none starts there (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF)
static int tokenizer_utf8_len(const uint8_t* p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
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
    return len;
}

// ids (n,) -> UTF-8 in out; writes at most cap-1 bytes plus a NUL (never half a character);
// returns the bytes written
static size_t tokenizer_decode(const Tokenizer* t, const int* ids, int n, char* out, size_t cap) {
    static const char SPACE_MARK[3] = {(char)0xE2, (char)0x96, (char)0x81}; // U+2581
    static const char UNK_TEXT[] = " \xE2\x81\x87 ";                        // " ⁇ "
    static const char REPLACEMENT[] = "\xEF\xBF\xBD";                      // U+FFFD
    // the raw bytes first (a piece is at most 255 bytes, an id's text at most 31), then the
    // UTF-8 check into out
    size_t rcap = (size_t)(n > 0 ? n : 0) * 256 + 1, len = 0;
    char* raw = (char*)mallocCheck(rcap);
    int at_start = 1; // no visible text yet: the dummy-prefix space is still to be dropped
    for (int k = 0; k < n; k++) {
        int id = ids[k];
        if (id < 0 || id >= t->vocab_size) {
            char tmp[32];
            int m = snprintf(tmp, sizeof tmp, "<%d?>", id);
            tokenizer_put(raw, rcap, &len, tmp, (size_t)m);
            at_start = 0;
            continue;
        }
        int type = t->types[id];
        if (type == TOK_CONTROL) continue;
        if (type == TOK_UNKNOWN) {
            tokenizer_put(raw, rcap, &len, UNK_TEXT, sizeof(UNK_TEXT) - 1);
            at_start = 0;
            continue;
        }
        if (type == TOK_BYTE) {
            char c = (char)t->byte_value[id];
            tokenizer_put(raw, rcap, &len, &c, 1);
            at_start = 0;
            continue;
        }
        // normal (and unused, which sentencepiece also prints as text)
        const char* p = t->pieces[id];
        size_t plen = t->lengths[id];
        if (at_start && plen >= 3 && memcmp(p, SPACE_MARK, 3) == 0) { p += 3; plen -= 3; at_start = 0; }
        for (size_t i = 0; i < plen; ) {
            if (i + 3 <= plen && memcmp(p + i, SPACE_MARK, 3) == 0) {
                tokenizer_put(raw, rcap, &len, " ", 1);
                i += 3;
            } else {
                tokenizer_put(raw, rcap, &len, p + i, 1);
                i++;
            }
        }
        if (plen > 0) at_start = 0;
    }
    size_t olen = 0;
    for (size_t i = 0; i < len; ) {
        int m = tokenizer_utf8_len((const uint8_t*)raw + i, len - i);
        const char* src = m ? raw + i : REPLACEMENT;
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

static void tokenizer_free(Tokenizer* t) {
    free(t->types);
    free(t->lengths);
    free(t->byte_value);
    free(t->pieces);
    free(t->blob);
    memset(t, 0, sizeof(*t));
}

#endif // TOKENIZER_H
