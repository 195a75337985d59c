/*
 * precompiled.c - the "Precompiled" normalizer of Hugging Face tokenizers: SentencePiece's
 * compiled normalization rules (nmt_nfkc and friends), as T5's and rinna's tokenizer.json carry
 * them in "precompiled_charsmap" (base64).
 *
 * The charsmap is a little-endian u32 trie size in bytes, that many bytes of a darts-clone
 * double-array trie (u32 units) mapping UTF-8 keys to offsets, then a blob of NUL-terminated
 * replacement strings. Normalizing follows tokenizers' normalizers/precompiled.rs with the
 * spm_precompiled crate: the text is cut into extended grapheme clusters; a cluster shorter than
 * 6 bytes whose bytes start with a key is replaced whole by that key's string (the SHORTEST
 * matching prefix, results[0] of the common-prefix search, even when the key is only a prefix of
 * the cluster: that is what tokenizers does); otherwise each character is looked up on its own
 * and replaced or kept. Every trie step is bounds-checked: a malicious charsmap gives no match,
 * never a read outside the blob.
 */
#include "tokenizer/tok_internal.h"

#include <string.h>
#include <utf8proc.h>

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Standard base64 with '=' padding; false on any other character or a dangling sextet.
static bool b64_decode(const char *s, size_t n, unsigned char *out, size_t *out_n) {
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0, i = 0;
    for (; i < n && s[i] != '='; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    for (; i < n; i++)
        if (s[i] != '=') return false;
    if (bits >= 6) return false;
    *out_n = k;
    return true;
}

static uint32_t rd32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

lt_status tk_precompiled_parse(tk_arena *arena, const char *b64, const char *what, tk_norm *nm,
                               lt_err *err) {
    size_t n = strlen(b64), len = 0;
    unsigned char *bin = lt_alloc(n / 4 * 3 + 3);
    if (!bin) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", what);
    if (!b64_decode(b64, n, bin, &len)) {
        lt_free(bin);
        return lt_err_set(err, LT_ERR_FORMAT, "%s: normalizer Precompiled: precompiled_charsmap "
                          "is not valid base64", what);
    }
    uint32_t trie = len >= 4 ? rd32((const char *)bin) : 0;
    if (len < 4 || trie % 4 || trie < 4 || trie > len - 4) {
        lt_free(bin);
        return lt_err_set(err, LT_ERR_FORMAT, "%s: normalizer Precompiled: charsmap of %zu bytes "
                          "declares a trie of %u bytes", what, len, trie);
    }
    // tokenizers rejects a charsmap whose strings are not UTF-8 (String::from_utf8); so do we,
    // which also keeps invalid UTF-8 out of the normalized text
    for (size_t i = 4 + trie; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate(bin + i, (utf8proc_ssize_t)(len - i), &c);
        if (l <= 0) {
            lt_free(bin);
            return lt_err_set(err, LT_ERR_FORMAT, "%s: normalizer Precompiled: the replacement "
                              "strings are not valid UTF-8 (byte %zu)", what, i);
        }
        i += (size_t)l;
    }
    nm->kind = TK_NORM_PRECOMPILED;
    nm->str = tk_arena_dup(arena, (const char *)bin, len);
    nm->len = len;
    nm->a = (int)(trie / 4);
    lt_free(bin);
    return nm->str ? LT_OK : lt_err_set(err, LT_ERR_OOM, "%s: out of memory", what);
}

// The replacement of the shortest key that is a prefix of s[0..n), or NULL.
static const char *lookup(const tk_norm *nm, const char *s, size_t n, size_t *out_len) {
    const char *units = nm->str + 4;
    size_t nu = (size_t)nm->a;
    const char *blob = units + nu * 4;
    size_t blob_n = nm->len - 4 - nu * 4;
#define UNIT(i) rd32(units + (size_t)(i) * 4)
#define OFFSET(u) ((size_t)((u) >> 10) << (((u) & (1u << 9)) >> 6))
    size_t pos = OFFSET(UNIT(0));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        pos ^= c;
        if (pos >= nu) return NULL;
        uint32_t u = UNIT(pos);
        if ((u & ((1u << 31) | 0xFFu)) != c) return NULL; // label
        pos ^= OFFSET(u);
        if ((u >> 8) & 1) { // has a leaf: its value is the offset of the replacement
            if (pos >= nu) return NULL;
            size_t off = UNIT(pos) & ((1u << 31) - 1);
            if (off >= blob_n) return NULL;
            const char *e = memchr(blob + off, 0, blob_n - off);
            *out_len = e ? (size_t)(e - (blob + off)) : blob_n - off;
            return blob + off;
        }
    }
#undef UNIT
#undef OFFSET
    return NULL;
}

bool tk_precompiled_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    if (!tk_buf_reserve(out, n)) return false;
    size_t g0 = 0, i = 0;
    utf8proc_int32_t state = 0, prev = -1;
    while (g0 < n) {
        // the grapheme cluster [g0, i)
        i = g0;
        prev = -1, state = 0;
        while (i < n) {
            size_t l;
            int32_t c = tk_utf8_decode(s + i, n - i, &l);
            if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, c, &state)) break;
            prev = c;
            i += l;
        }
        size_t rl, gl = i - g0;
        const char *r = gl < 6 ? lookup(nm, s + g0, gl, &rl) : NULL;
        if (r) {
            if (!tk_buf_put(out, r, rl)) return false;
        } else {
            for (size_t j = g0; j < i;) {
                size_t l;
                tk_utf8_decode(s + j, i - j, &l);
                const char *p = lookup(nm, s + j, l, &rl);
                if (!(p ? tk_buf_put(out, p, rl) : tk_buf_put(out, s + j, l))) return false;
                j += l;
            }
        }
        g0 = i;
    }
    return tk_buf_reserve(out, 0);
}
