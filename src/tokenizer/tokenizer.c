/*
 * tokenizer.c - the tokenizer object, its lookup tables, the encode pipeline (added tokens ->
 * normalizers -> pre-tokenizers -> model -> post-processor) and the decode chain.
 *
 * The pipeline order and the added-token rules (leftmost-longest match, single_word, lstrip,
 * rstrip, normalized) follow Hugging Face tokenizers (tokenizer/mod.rs, added_vocabulary.rs).
 * The decoders follow tokenizers/src/decoders/ (one file per decoder). Deliberately not here: offsets, truncation,
 * padding, pair sequences.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// containers

struct tk_arena_block {
    tk_arena_block *next;
    size_t used, cap;
    char data[];
};

char *tk_arena_dup(tk_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    size_t need = n + 1;
    tk_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > (size_t)60000 ? need : (size_t)60000;
        size_t total;
        if (!lt_add_ok(sizeof *b, cap, &total)) return NULL;
        tk_arena_block *nb = lt_alloc(total);
        if (!nb) return NULL;
        nb->used = 0;
        nb->cap = cap;
        // a big string gets its own block behind the current one so the current keeps filling
        if (b && need > (size_t)60000) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    char *p = b->data + b->used;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    b->used += need;
    return p;
}

void tk_arena_free(tk_arena *a) {
    tk_arena_block *b = a->head;
    while (b) {
        tk_arena_block *n = b->next;
        lt_free(b);
        b = n;
    }
    a->head = NULL;
}

bool tk_buf_reserve(tk_buf *b, size_t extra) {
    size_t need;
    if (!lt_add_ok(b->n, extra, &need)) return false;
    if (!lt_add_ok(need, 1, &need)) return false; // room for a NUL
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *p = lt_realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (!tk_buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

void tk_buf_free(tk_buf *b) {
    lt_free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

uint64_t tk_hash(const char *s, size_t n) {
    // FNV-1a, 64 bit, then a final mix so the low bits used by the table are well spread
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h;
}

struct tk_strmap_slot {
    const char *key;
    uint32_t len;
    int32_t val;
    uint32_t hash32;
};

static size_t table_size(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 16 && cap < ((size_t)1 << 40)) cap *= 2;
    return cap;
}

bool tk_strmap_init(tk_strmap *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = lt_calloc(cap, sizeof *m->slots);
    if (!m->slots) return false;
    m->mask = cap - 1;
    m->count = 0;
    return true;
}

void tk_strmap_free(tk_strmap *m) {
    lt_free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

static bool strmap_grow(tk_strmap *m) {
    size_t cap = (m->mask + 1) * 2;
    struct tk_strmap_slot *ns = lt_calloc(cap, sizeof *ns);
    if (!ns) return false;
    for (size_t i = 0; i <= m->mask; i++) {
        struct tk_strmap_slot *s = &m->slots[i];
        if (!s->key) continue;
        size_t j = s->hash32 & (cap - 1);
        while (ns[j].key) j = (j + 1) & (cap - 1);
        ns[j] = *s;
    }
    lt_free(m->slots);
    m->slots = ns;
    m->mask = cap - 1;
    return true;
}

bool tk_strmap_put(tk_strmap *m, const char *key, size_t len, int32_t val) {
    if (len > UINT32_MAX) return false;
    if ((m->count + 1) * 2 > m->mask + 1 && !strmap_grow(m)) return false;
    uint32_t h = (uint32_t)tk_hash(key, len);
    size_t j = h & m->mask;
    while (m->slots[j].key) {
        struct tk_strmap_slot *s = &m->slots[j];
        if (s->hash32 == h && s->len == len && memcmp(s->key, key, len) == 0) return true;
        j = (j + 1) & m->mask;
    }
    // an empty key needs a non-NULL pointer to mark the slot used
    m->slots[j].key = key ? key : "";
    m->slots[j].len = (uint32_t)len;
    m->slots[j].val = val;
    m->slots[j].hash32 = h;
    m->count++;
    return true;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *key, size_t len) {
    if (!m->slots || len > UINT32_MAX) return -1;
    uint32_t h = (uint32_t)tk_hash(key, len);
    size_t j = h & m->mask;
    while (m->slots[j].key) {
        const struct tk_strmap_slot *s = &m->slots[j];
        if (s->hash32 == h && s->len == len && memcmp(s->key, key, len) == 0) return s->val;
        j = (j + 1) & m->mask;
    }
    return -1;
}

struct tk_pair_slot {
    uint64_t key; // (a << 32 | b) + 1; 0 = empty
    int32_t rank, id;
};

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}
static inline size_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

bool tk_pairmap_init(tk_pairmap *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = lt_calloc(cap, sizeof *m->slots);
    if (!m->slots) return false;
    m->mask = cap - 1;
    m->count = 0;
    return true;
}

void tk_pairmap_free(tk_pairmap *m) {
    lt_free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

bool tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = (m->mask + 1) * 2;
        struct tk_pair_slot *ns = lt_calloc(cap, sizeof *ns);
        if (!ns) return false;
        for (size_t i = 0; i <= m->mask; i++) {
            if (!m->slots[i].key) continue;
            size_t j = pair_hash(m->slots[i].key) & (cap - 1);
            while (ns[j].key) j = (j + 1) & (cap - 1);
            ns[j] = m->slots[i];
        }
        lt_free(m->slots);
        m->slots = ns;
        m->mask = cap - 1;
    }
    uint64_t k = pair_key(a, b);
    size_t j = pair_hash(k) & m->mask;
    while (m->slots[j].key) {
        if (m->slots[j].key == k) {
            m->slots[j].rank = rank;
            m->slots[j].id = id;
            return true;
        }
        j = (j + 1) & m->mask;
    }
    m->slots[j].key = k;
    m->slots[j].rank = rank;
    m->slots[j].id = id;
    m->count++;
    return true;
}

bool tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->slots) return false;
    uint64_t k = pair_key(a, b);
    size_t j = pair_hash(k) & m->mask;
    while (m->slots[j].key) {
        if (m->slots[j].key == k) {
            *rank = m->slots[j].rank;
            *id = m->slots[j].id;
            return true;
        }
        j = (j + 1) & m->mask;
    }
    return false;
}

bool tk_ids_push(lt_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        size_t bytes;
        if (!lt_mul_ok(cap, sizeof *v->ids, &bytes)) return false;
        int32_t *p = lt_realloc(v->ids, bytes);
        if (!p) return false;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return true;
}

void lt_ids_deinit(lt_ids *v) {
    if (!v) return;
    lt_free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

// ---------------------------------------------------------------------------------------------
// UTF-8

size_t tk_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

int32_t tk_utf8_decode(const char *str, size_t n, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t l = tk_utf8_len(s[0]);
    if (l > n) l = 1;
    *len = l;
    switch (l) {
    case 2: return (int32_t)(((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu));
    case 3: return (int32_t)(((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu));
    case 4:
        return (int32_t)(((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                         (s[3] & 0x3Fu));
    default: return s[0];
    }
}

size_t tk_utf8_encode(int32_t cp, char out[4]) {
    uint32_t c = (uint32_t)cp;
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Appends s with each ill-formed subsequence replaced by U+FFFD (as Rust from_utf8_lossy).
static bool put_lossy(tk_buf *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t ok = tk_utf8_check(str + i, n - i);
        if (!tk_buf_put(b, str + i, ok)) return false;
        i += ok;
        if (i >= n) break;
        // maximal subpart: the lead byte plus the continuation bytes that fit its ranges
        unsigned char c = s[i];
        size_t len = 1, want = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) want = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            want = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            want = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        if (want && i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
            len = 2;
            while (len < want && i + len < n && (s[i + len] & 0xC0) == 0x80) len++;
        }
        if (!tk_buf_put(b, "\xEF\xBF\xBD", 3)) return false;
        i += len;
    }
    return true;
}

// Unicode White_Space (what Rust's char::is_whitespace and regex \s accept).
static bool is_space_cp(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

#include <utf8proc.h>
// Rust regex \w: alphabetic, marks, decimal digits, connector punctuation (and join controls).
static bool is_word_cp(int32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    utf8proc_category_t cat = utf8proc_category(c);
    switch (cat) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC: return true;
    default: return c == 0x200C || c == 0x200D;
    }
}

// last code point of s[0..n) (valid UTF-8, n > 0)
static int32_t last_cp(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    size_t l;
    return tk_utf8_decode(s + i, n - i, &l);
}

// ---------------------------------------------------------------------------------------------
// construction helpers for the loaders

lt_tokenizer *tk_new(const char *path) {
    lt_tokenizer *t = lt_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->path = lt_strdup(path ? path : "(memory)");
    if (!t->path) {
        lt_free(t);
        return NULL;
    }
    t->unk = t->bos = t->eos = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = t->byte_char_id[i] = -1;
    return t;
}

lt_status tk_alloc_vocab(lt_tokenizer *t, int32_t n, bool with_scores, lt_err *err) {
    if (n <= 0) return lt_err_set(err, LT_ERR_FORMAT, "%s: empty vocabulary", t->path);
    size_t un = (size_t)n;
    t->piece = lt_calloc(un, sizeof *t->piece);
    t->piece_len = lt_calloc(un, sizeof *t->piece_len);
    t->bytes = lt_calloc(un, sizeof *t->bytes);
    t->bytes_len = lt_calloc(un, sizeof *t->bytes_len);
    t->attr = lt_calloc(un, sizeof *t->attr);
    if (with_scores) t->score = lt_calloc(un, sizeof *t->score);
    if (!t->piece || !t->piece_len || !t->bytes || !t->bytes_len || !t->attr ||
        (with_scores && !t->score))
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory for %d tokens", t->path, (int)n);
    t->n_vocab = n;
    return LT_OK;
}

lt_status tk_set_piece(lt_tokenizer *t, int32_t id, const char *s, size_t n, lt_err *err) {
    if (id < 0 || id >= t->n_vocab)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: token id %d outside [0, %d)", t->path,
                          (int)id, (int)t->n_vocab);
    if (n > UINT32_MAX / 2)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: token %d is too long", t->path, (int)id);
    char *p = tk_arena_dup(&t->arena, s, n);
    if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->piece[id] = p;
    t->piece_len[id] = (uint32_t)n;
    return LT_OK;
}

lt_status tk_add_added(lt_tokenizer *t, const tk_added *a, lt_err *err) {
    if (a->len == 0)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: added token %d has empty content", t->path,
                          (int)a->id);
    if (a->id < 0 || a->id >= t->n_vocab)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: added token id %d outside [0, %d)", t->path,
                          (int)a->id, (int)t->n_vocab);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == a->id) {
            // a later definition of the same id replaces the earlier one (HF keeps the last)
            char *c = tk_arena_dup(&t->arena, a->content, a->len);
            if (!c) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
            t->added[i] = *a;
            t->added[i].content = c;
            goto set_piece;
        }
    {
        tk_added *na = lt_realloc(t->added, sizeof *na * (size_t)(t->n_added + 1));
        if (!na) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
        t->added = na;
        char *c = tk_arena_dup(&t->arena, a->content, a->len);
        if (!c) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
        t->added[t->n_added] = *a;
        t->added[t->n_added].content = c;
        t->n_added++;
    }
set_piece:
    t->attr[a->id] |= TK_ATTR_ADDED;
    if (a->special) t->attr[a->id] |= TK_ATTR_SPECIAL;
    else t->attr[a->id] &= (uint8_t)~TK_ATTR_SPECIAL;
    if (!t->piece[a->id]) return tk_set_piece(t, a->id, a->content, a->len, err);
    return LT_OK;
}

// decode table of the byte-level characters: code point -> byte (or -1)
static int bl_inverse(int32_t cp) {
    if (cp >= 0x21 && cp <= 0x7E) return cp;
    if (cp >= 0xA1 && cp <= 0xAC) return cp;
    if (cp >= 0xAE && cp <= 0xFF) return cp;
    if (cp >= 0x100 && cp < 0x100 + 68) {
        // the bytes not printable above, in increasing order, map to 256, 257, ...:
        // 0x00-0x20 (33 of them), 0x7F-0xA0 (34), 0xAD
        int k = cp - 0x100;
        if (k <= 32) return k;
        if (k <= 66) return 0x7F + (k - 33);
        return 0xAD;
    }
    return -1;
}

static bool has_dec(const lt_tokenizer *t, tk_dec_kind k) {
    for (int i = 0; i < t->n_decs; i++)
        if (t->decs[i].kind == k) return true;
    return false;
}

static int parse_byte_piece(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : c >= 'a' && c <= 'f'   ? c - 'a' + 10
                                                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// Literal replacement of every occurrence of pat by rep in s (pat non-empty).
static bool replace_all(tk_buf *out, const char *s, size_t n, const char *pat, size_t pn,
                        const char *rep, size_t rn) {
    size_t i = 0;
    while (i < n) {
        if (pn && n - i >= pn && memcmp(s + i, pat, pn) == 0) {
            if (!tk_buf_put(out, rep, rn)) return false;
            i += pn;
        } else {
            if (!tk_buf_putc(out, s[i])) return false;
            i++;
        }
    }
    return true;
}

// The bytes a token stands for (see lt_tokenizer_token_bytes).
static lt_status token_bytes_of(lt_tokenizer *t, int32_t id, tk_buf *tmp, lt_err *err) {
    const char *p = t->piece[id];
    size_t n = t->piece_len[id];
    tmp->n = 0;
    if (t->attr[id] & TK_ATTR_ADDED) {
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].id == id) {
                p = t->added[i].content;
                n = t->added[i].len;
            }
        if (!tk_buf_put(tmp, p, n)) goto oom;
        return LT_OK;
    }
    if (t->llama2c) {
        int b = parse_byte_piece(p, n);
        if (b >= 0 && !tk_buf_putc(tmp, (char)b)) goto oom;
        if (b < 0 && !tk_buf_put(tmp, p, n)) goto oom;
        return LT_OK;
    }
    if (has_dec(t, TK_DEC_BYTE_LEVEL)) {
        size_t i = 0;
        while (i < n) {
            size_t l;
            int32_t cp = tk_utf8_decode(p + i, n - i, &l);
            int b = bl_inverse(cp);
            if (b < 0) { // not a byte-level string: the token stands for itself
                tmp->n = 0;
                if (!tk_buf_put(tmp, p, n)) goto oom;
                return LT_OK;
            }
            if (!tk_buf_putc(tmp, (char)b)) goto oom;
            i += l;
        }
        return LT_OK;
    }
    int b = parse_byte_piece(p, n);
    if (b >= 0 && (t->byte_fallback || has_dec(t, TK_DEC_BYTE_FALLBACK))) {
        if (!tk_buf_putc(tmp, (char)b)) goto oom;
        return LT_OK;
    }
    if (!tk_buf_put(tmp, p, n)) goto oom;
    // per-token text replacements of the decoder chain (Metaspace, Replace)
    for (int k = 0; k < t->n_decs; k++) {
        const tk_dec *d = &t->decs[k];
        const char *pat = NULL, *rep = NULL;
        size_t pn = 0, rn = 0;
        if (d->kind == TK_DEC_METASPACE) pat = d->str, pn = d->len, rep = " ", rn = 1;
        else if (d->kind == TK_DEC_REPLACE) pat = d->str, pn = d->len, rep = d->str2, rn = d->len2;
        else if (d->kind == TK_DEC_WORDPIECE && tmp->n >= d->len &&
                 memcmp(tmp->p, d->str, d->len) == 0) {
            memmove(tmp->p, tmp->p + d->len, tmp->n - d->len);
            tmp->n -= d->len;
            continue;
        } else continue;
        if (!pn) continue;
        tk_buf nb = {0};
        if (!replace_all(&nb, tmp->p, tmp->n, pat, pn, rep, rn)) {
            tk_buf_free(&nb);
            goto oom;
        }
        tk_buf_free(tmp);
        *tmp = nb;
    }
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
}

static int cmp_added_first(const void *a, const void *b, void *ctx);

// qsort has no context argument in C11; sort indices with a small insertion/merge sort instead.
static void sort_added(lt_tokenizer *t, int32_t *idx, int n) {
    // stable merge sort by (first byte, length descending)
    if (n < 2) return;
    int32_t *tmp = idx + n; // caller allocated 2n
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp_added_first(&idx[j], &idx[i], t) < 0 ? idx[j++] : idx[i++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, sizeof *idx * (size_t)n);
    }
}

static int cmp_added_first(const void *a, const void *b, void *ctx) {
    const lt_tokenizer *t = ctx;
    const tk_added *x = &t->added[*(const int32_t *)a], *y = &t->added[*(const int32_t *)b];
    unsigned char cx = (unsigned char)x->content[0], cy = (unsigned char)y->content[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return 0;
}

lt_status tk_finish(lt_tokenizer *t, lt_err *err) {
    lt_status st = LT_OK;
    tk_buf tmp = {0};
    if (!tk_strmap_init(&t->vocab, (size_t)t->n_vocab))
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!t->piece[i]) continue;
        if (t->piece_len[i] > t->max_piece_len) t->max_piece_len = t->piece_len[i];
        if (!(t->attr[i] & TK_ATTR_MODEL)) continue;
        if (!tk_strmap_put(&t->vocab, t->piece[i], t->piece_len[i], i))
            return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    }
    if (!t->llama2c) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_id[b] = tk_strmap_get(&t->vocab, name, 6);
        }
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] >= 0) t->attr[t->byte_id[b]] |= TK_ATTR_BYTE;
    tk_byte_level_table(t->bl_char, t->bl_char_len);
    for (int b = 0; b < 256; b++)
        t->byte_char_id[b] = tk_strmap_get(&t->vocab, t->bl_char[b], t->bl_char_len[b]);

    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!t->piece[i]) continue;
        st = token_bytes_of(t, i, &tmp, err);
        if (st) goto done;
        if (tmp.n == t->piece_len[i] && memcmp(tmp.p ? tmp.p : "", t->piece[i], tmp.n) == 0) {
            t->bytes[i] = t->piece[i];
        } else {
            t->bytes[i] = tk_arena_dup(&t->arena, tmp.p ? tmp.p : "", tmp.n);
            if (!t->bytes[i]) {
                st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
                goto done;
            }
        }
        t->bytes_len[i] = (uint32_t)tmp.n;
    }

    // added tokens indexed by first byte, longest first
    for (int c = 0; c < 256; c++) t->added_first[c] = -1;
    if (t->n_added) {
        t->by_first = lt_alloc(sizeof *t->by_first * 2 * (size_t)t->n_added);
        if (!t->by_first) {
            st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
            goto done;
        }
        for (int i = 0; i < t->n_added; i++) t->by_first[i] = i;
        sort_added(t, t->by_first, t->n_added);
        for (int i = t->n_added - 1; i >= 0; i--)
            t->added_first[(unsigned char)t->added[t->by_first[i]].content[0]] = i;
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].normalized) t->any_normalized_added = true;
    }
done:
    tk_buf_free(&tmp);
    return st;
}

int32_t tk_find_special(const lt_tokenizer *t, const char *const *names) {
    for (int k = 0; names[k]; k++) {
        size_t n = strlen(names[k]);
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].len == n && memcmp(t->added[i].content, names[k], n) == 0)
                return t->added[i].id;
        int32_t id = tk_strmap_get(&t->vocab, names[k], n);
        if (id >= 0) return id;
    }
    return -1;
}

void lt_tokenizer_free(lt_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_norms; i++) pcre2_code_free(t->norms[i].re);
    for (int i = 0; i < t->n_pres; i++) pcre2_code_free(t->pres[i].re);
    lt_free(t->norms);
    lt_free(t->pres);
    lt_free(t->decs);
    lt_free(t->added);
    lt_free(t->by_first);
    lt_free(t->prefix);
    lt_free(t->suffix);
    lt_free(t->piece);
    lt_free(t->piece_len);
    lt_free(t->bytes);
    lt_free(t->bytes_len);
    lt_free(t->score);
    lt_free(t->attr);
    tk_strmap_free(&t->vocab);
    tk_pairmap_free(&t->merges);
    tk_arena_free(&t->arena);
    lt_free(t->chat_template);
    lt_free(t->path);
    lt_free(t);
}

// ---------------------------------------------------------------------------------------------
// added tokens

typedef struct tk_seg {
    size_t a, b;   // byte range in the text
    int32_t added; // added token id, or -1 for text
} tk_seg;

typedef struct tk_segs {
    tk_seg *s;
    size_t n, cap;
} tk_segs;

static bool segs_push(tk_segs *v, size_t a, size_t b, int32_t added) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        tk_seg *p = lt_realloc(v->s, sizeof *p * cap);
        if (!p) return false;
        v->s = p;
        v->cap = cap;
    }
    v->s[v->n++] = (tk_seg){a, b, added};
    return true;
}

// Splits s into text and added-token segments (HF AddedVocabulary::find_matches): leftmost-longest
// matches of the tokens whose `normalized` flag equals `normalized`; single_word matches that
// touch a word character are dropped; lstrip/rstrip take the neighbouring whitespace.
static bool split_added(const lt_tokenizer *t, const char *s, size_t n, bool normalized,
                        bool split_special, tk_segs *out) {
    out->n = 0;
    if (n == 0) return segs_push(out, 0, 0, -1);
    size_t start_offset = 0, p = 0;
    while (p < n) {
        int32_t k0 = t->added_first[(unsigned char)s[p]];
        const tk_added *hit = NULL;
        if (k0 >= 0) {
            for (int k = k0; k < t->n_added; k++) {
                const tk_added *a = &t->added[t->by_first[k]];
                if (a->content[0] != s[p]) break;
                if (a->normalized != normalized || (split_special && a->special)) continue;
                if (a->len <= n - p && memcmp(a->content, s + p, a->len) == 0) {
                    hit = a;
                    break;
                }
            }
        }
        if (!hit) {
            p++;
            continue;
        }
        size_t start = p, stop = p + hit->len;
        p = stop;
        if (hit->single_word) {
            bool start_space = start == 0 || !is_word_cp(last_cp(s, start));
            size_t l;
            bool stop_space = stop == n || !is_word_cp(tk_utf8_decode(s + stop, n - stop, &l));
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t q = ns - 1;
                while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                size_t l;
                if (!is_space_cp(tk_utf8_decode(s + q, n - q, &l))) break;
                ns = q;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            while (stop < n) {
                size_t l;
                if (!is_space_cp(tk_utf8_decode(s + stop, n - stop, &l))) break;
                stop += l;
            }
            p = stop;
        }
        if (start > start_offset && !segs_push(out, start_offset, start, -1)) return false;
        if (!segs_push(out, start, stop, hit->id)) return false;
        start_offset = stop;
    }
    if (start_offset != n && !segs_push(out, start_offset, n, -1)) return false;
    return true;
}

// ---------------------------------------------------------------------------------------------
// encode

typedef struct tk_ctx {
    tk_buf norm;
    tk_words words, scratch;
    tk_segs segs, segs2;
    pcre2_match_data *md;
    tk_scratch *model;
} tk_ctx;

static void ctx_free(tk_ctx *c) {
    tk_buf_free(&c->norm);
    tk_words_free(&c->words);
    tk_words_free(&c->scratch);
    lt_free(c->segs.s);
    lt_free(c->segs2.s);
    if (c->md) pcre2_match_data_free(c->md);
    tk_scratch_free(c->model);
}

static lt_status encode_words(const lt_tokenizer *t, tk_ctx *c, const char *s, size_t n,
                              bool origin, lt_ids *out, lt_err *err) {
    lt_status st = tk_pretokenize(t, s, n, origin, c->md, &c->words, &c->scratch, err);
    if (st) return st;
    for (size_t i = 0; i < c->words.n; i++) {
        const char *w = c->words.buf.p + c->words.sp[i].off;
        size_t wn = c->words.sp[i].len;
        if (wn == 0) continue;
        if (t->model == TK_MODEL_UNIGRAM) st = tk_unigram_word(t, w, wn, c->model, out, err);
        else st = tk_bpe_word(t, w, wn, t->byte_level, c->model, out, err);
        if (st) return st;
    }
    return LT_OK;
}

static lt_status encode_impl(const lt_tokenizer *t, const char *text, size_t len, unsigned flags,
                             lt_ids *out, lt_err *err) {
    lt_status st = LT_OK;
    tk_ctx c = {0};
    bool split_special = (flags & LT_TOK_SPLIT_SPECIAL) != 0;
    if (len && !text) return lt_err_set(err, LT_ERR_ARG, "encode: text is NULL");
    if (!text) text = "";
    if (!t->llama2c) {
        size_t bad = tk_utf8_check(text, len);
        if (bad != len)
            return lt_err_set(err, LT_ERR_ARG, "encode: text is not valid UTF-8 at byte %zu", bad);
    }
    c.model = tk_scratch_new();
    c.md = pcre2_match_data_create(8, NULL);
    if (!c.model || !c.md) goto oom;
    if (flags & LT_TOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_prefix; i++)
            if (!tk_ids_push(out, t->prefix[i])) goto oom;
    if (!split_added(t, text, len, false, split_special, &c.segs)) goto oom;
    for (size_t si = 0; si < c.segs.n; si++) {
        tk_seg sg = c.segs.s[si];
        if (sg.added >= 0) {
            if (!tk_ids_push(out, sg.added)) goto oom;
            continue;
        }
        st = tk_normalize(t, text + sg.a, sg.b - sg.a, &c.norm, err);
        if (st) goto done;
        bool origin = sg.a == 0;
        if (!t->any_normalized_added) {
            st = encode_words(t, &c, c.norm.p ? c.norm.p : "", c.norm.n, origin, out, err);
            if (st) goto done;
            continue;
        }
        if (!split_added(t, c.norm.p ? c.norm.p : "", c.norm.n, true, split_special, &c.segs2))
            goto oom;
        for (size_t sj = 0; sj < c.segs2.n; sj++) {
            tk_seg s2 = c.segs2.s[sj];
            if (s2.added >= 0) {
                if (!tk_ids_push(out, s2.added)) goto oom;
                continue;
            }
            st = encode_words(t, &c, c.norm.p + s2.a, s2.b - s2.a, origin && s2.a == 0, out, err);
            if (st) goto done;
        }
    }
    if (flags & LT_TOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_suffix; i++)
            if (!tk_ids_push(out, t->suffix[i])) goto oom;
done:
    ctx_free(&c);
    return st;
oom:
    ctx_free(&c);
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

lt_status lt_tokenizer_encode(const lt_tokenizer *t, const char *text, size_t len,
                              unsigned flags, lt_ids *out, lt_err *err) {
    if (!t || !out) return lt_err_set(err, LT_ERR_ARG, "encode: NULL tokenizer or output");
    size_t n0 = out->n;
    lt_status st = encode_impl(t, text, len, flags, out, err);
    if (st) out->n = n0;
    return st;
}

lt_status lt_tokenizer_encode_to(const lt_tokenizer *t, const char *text, size_t len,
                                 unsigned flags, int32_t *ids, size_t cap, size_t *n_needed,
                                 lt_err *err) {
    if (!n_needed || (cap && !ids))
        return lt_err_set(err, LT_ERR_ARG, "encode: NULL output array or count");
    lt_ids v = {0};
    lt_status st = lt_tokenizer_encode(t, text, len, flags, &v, err);
    if (st == LT_OK) {
        size_t k = v.n < cap ? v.n : cap;
        if (k) memcpy(ids, v.ids, k * sizeof *ids);
        *n_needed = v.n;
    }
    lt_ids_deinit(&v);
    return st;
}

// ---------------------------------------------------------------------------------------------
// decode

// A list of token strings: spans into one buffer.
typedef struct tk_toks {
    tk_buf buf;
    size_t *off, *len;
    size_t n, cap;
} tk_toks;

static bool toks_push(tk_toks *v, const char *s, size_t n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        size_t *o = lt_realloc(v->off, sizeof *o * cap);
        if (!o) return false;
        v->off = o;
        size_t *l = lt_realloc(v->len, sizeof *l * cap);
        if (!l) return false;
        v->len = l;
        v->cap = cap;
    }
    v->off[v->n] = v->buf.n;
    v->len[v->n] = n;
    if (!tk_buf_put(&v->buf, s, n)) return false;
    v->n++;
    return true;
}

static void toks_free(tk_toks *v) {
    tk_buf_free(&v->buf);
    lt_free(v->off);
    lt_free(v->len);
    memset(v, 0, sizeof *v);
}

#define TOK(v, i) ((v)->buf.p + (v)->off[i])

// One decoder step: in -> out (out is empty on entry).
static bool decode_step(const lt_tokenizer *t, const tk_dec *d, tk_toks *in, tk_toks *out) {
    tk_buf tmp = {0};
    bool ok = true;
    switch (d->kind) {
    case TK_DEC_BYTE_LEVEL: {
        for (size_t i = 0; i < in->n && ok; i++) {
            const char *p = TOK(in, i);
            size_t n = in->len[i], j = 0, mark = tmp.n;
            while (j < n) {
                size_t l;
                int b = bl_inverse(tk_utf8_decode(p + j, n - j, &l));
                if (b < 0) break;
                if (!tk_buf_putc(&tmp, (char)b)) ok = false;
                j += l;
            }
            if (j < n) { // some character is not byte-level: the whole token as it is
                tmp.n = mark;
                if (!tk_buf_put(&tmp, p, n)) ok = false;
            }
        }
        tk_buf fixed = {0};
        if (ok) ok = put_lossy(&fixed, tmp.p ? tmp.p : "", tmp.n);
        if (ok) ok = toks_push(out, fixed.p ? fixed.p : "", fixed.n);
        tk_buf_free(&fixed);
        break;
    }
    case TK_DEC_METASPACE:
        for (size_t i = 0; i < in->n && ok; i++) {
            tmp.n = 0;
            const char *p = TOK(in, i);
            size_t n = in->len[i], j = 0;
            while (j < n && ok) {
                if (d->len && n - j >= d->len && memcmp(p + j, d->str, d->len) == 0) {
                    if (!(i == 0 && d->a != 0)) ok = tk_buf_putc(&tmp, ' ');
                    j += d->len;
                } else ok = tk_buf_putc(&tmp, p[j++]);
            }
            if (ok) ok = toks_push(out, tmp.p ? tmp.p : "", tmp.n);
        }
        break;
    case TK_DEC_REPLACE:
        for (size_t i = 0; i < in->n && ok; i++) {
            tmp.n = 0;
            ok = replace_all(&tmp, TOK(in, i), in->len[i], d->str, d->len, d->str2, d->len2);
            if (ok) ok = toks_push(out, tmp.p ? tmp.p : "", tmp.n);
        }
        break;
    case TK_DEC_BYTE_FALLBACK: {
        tk_buf bytes = {0};
        for (size_t i = 0; i <= in->n && ok; i++) {
            int b = i < in->n ? parse_byte_piece(TOK(in, i), in->len[i]) : -1;
            // HF accepts only the exact form "<0xXX>" with hex digits of either case
            if (b >= 0) {
                ok = tk_buf_putc(&bytes, (char)b);
                continue;
            }
            if (bytes.n) {
                if (tk_utf8_check(bytes.p, bytes.n) == bytes.n) ok = toks_push(out, bytes.p, bytes.n);
                else
                    for (size_t k = 0; k < bytes.n && ok; k++)
                        ok = toks_push(out, "\xEF\xBF\xBD", 3);
                bytes.n = 0;
            }
            if (i < in->n && ok) ok = toks_push(out, TOK(in, i), in->len[i]);
        }
        tk_buf_free(&bytes);
        break;
    }
    case TK_DEC_FUSE:
        for (size_t i = 0; i < in->n && ok; i++) ok = tk_buf_put(&tmp, TOK(in, i), in->len[i]);
        if (ok) ok = toks_push(out, tmp.p ? tmp.p : "", tmp.n);
        break;
    case TK_DEC_STRIP:
        for (size_t i = 0; i < in->n && ok; i++) {
            const char *p = TOK(in, i);
            size_t a = 0, b = in->len[i];
            for (int k = 0; k < d->a && b - a >= d->len && d->len; k++) {
                if (memcmp(p + a, d->str, d->len) != 0) break;
                a += d->len;
            }
            for (int k = 0; k < d->b && b - a >= d->len && d->len; k++) {
                if (memcmp(p + b - d->len, d->str, d->len) != 0) break;
                b -= d->len;
            }
            ok = toks_push(out, p + a, b - a);
        }
        break;
    case TK_DEC_WORDPIECE:
        for (size_t i = 0; i < in->n && ok; i++) {
            const char *p = TOK(in, i);
            size_t n = in->len[i];
            tmp.n = 0;
            if (i != 0) {
                if (n >= d->len && memcmp(p, d->str, d->len) == 0) p += d->len, n -= d->len;
                else ok = tk_buf_putc(&tmp, ' ');
            }
            if (ok) ok = tk_buf_put(&tmp, p, n);
            if (ok) ok = toks_push(out, tmp.p ? tmp.p : "", tmp.n);
        }
        break;
    case TK_DEC_BPE_SUFFIX:
        for (size_t i = 0; i < in->n && ok; i++) {
            tmp.n = 0;
            ok = replace_all(&tmp, TOK(in, i), in->len[i], d->str, d->len,
                             i + 1 < in->n ? " " : "", i + 1 < in->n ? 1 : 0);
            if (ok) ok = toks_push(out, tmp.p ? tmp.p : "", tmp.n);
        }
        break;
    }
    (void)t;
    tk_buf_free(&tmp);
    return ok;
}

lt_status lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, size_t n,
                              unsigned flags, char **out, size_t *out_len, lt_err *err) {
    if (!t || !out || (n && !ids)) return lt_err_set(err, LT_ERR_ARG, "decode: NULL argument");
    bool skip = (flags & LT_TOK_SKIP_SPECIAL) != 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->piece[ids[i]])
            return lt_err_set(err, LT_ERR_ARG, "decode: id %d at position %zu is not a token of %s",
                              (int)ids[i], i, t->path);
    tk_buf res = {0};
    tk_toks a = {0}, b = {0};
    if (t->llama2c) {
        // run.c decode: raw bytes of each piece; a piece after BOS loses its leading space
        int32_t prev = -1;
        for (size_t i = 0; i < n; i++) {
            int32_t id = ids[i];
            if (skip && (t->attr[id] & TK_ATTR_SPECIAL)) {
                prev = id;
                continue;
            }
            const char *p = t->bytes[id];
            size_t pn = t->bytes_len[id];
            if (prev == t->bos && t->bos >= 0 && pn && p[0] == ' ' &&
                !(t->attr[id] & TK_ATTR_BYTE))
                p++, pn--;
            if (!tk_buf_put(&res, p, pn)) goto oom;
            prev = id;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int32_t id = ids[i];
            if (skip && (t->attr[id] & TK_ATTR_SPECIAL)) continue;
            const char *p = t->piece[id];
            size_t pn = t->piece_len[id];
            if (t->attr[id] & TK_ATTR_ADDED) p = t->bytes[id], pn = t->bytes_len[id];
            if (!toks_push(&a, p, pn)) goto oom;
        }
        for (int k = 0; k < t->n_decs; k++) {
            b.n = 0;
            b.buf.n = 0;
            if (!decode_step(t, &t->decs[k], &a, &b)) goto oom;
            tk_toks x = a;
            a = b;
            b = x;
        }
        for (size_t i = 0; i < a.n; i++) {
            if (!t->has_decoder && i > 0 && !tk_buf_putc(&res, ' ')) goto oom;
            if (!tk_buf_put(&res, TOK(&a, i), a.len[i])) goto oom;
        }
    }
    if (!tk_buf_reserve(&res, 0)) goto oom;
    res.p[res.n] = 0;
    toks_free(&a);
    toks_free(&b);
    *out = res.p;
    if (out_len) *out_len = res.n;
    return LT_OK;
oom:
    toks_free(&a);
    toks_free(&b);
    tk_buf_free(&res);
    return lt_err_set(err, LT_ERR_OOM, "decode: out of memory");
}

// ---------------------------------------------------------------------------------------------
// accessors

const char *lt_tokenizer_token_bytes(const lt_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || !t->piece[id]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->bytes_len[id];
    return t->bytes[id];
}

int32_t lt_tokenizer_n_vocab(const lt_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *lt_tokenizer_id_to_token(const lt_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (t->attr[id] & TK_ATTR_ADDED)
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].id == id) return t->added[i].content;
    return t->piece[id];
}

int32_t lt_tokenizer_token_to_id(const lt_tokenizer *t, const char *tok, size_t len) {
    if (!t || (!tok && len)) return -1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, tok, len) == 0)
            return t->added[i].id;
    return tk_strmap_get(&t->vocab, tok ? tok : "", len);
}

bool lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] & TK_ATTR_SPECIAL);
}

int32_t lt_tokenizer_bos(const lt_tokenizer *t) { return t ? t->bos : -1; }
int32_t lt_tokenizer_eos(const lt_tokenizer *t) { return t ? t->eos : -1; }
int32_t lt_tokenizer_pad(const lt_tokenizer *t) { return t ? t->pad : -1; }
int32_t lt_tokenizer_unk(const lt_tokenizer *t) { return t ? t->unk : -1; }
const char *lt_tokenizer_chat_template(const lt_tokenizer *t) {
    return t ? t->chat_template : NULL;
}

// ---------------------------------------------------------------------------------------------
// files

#include <errno.h>

lt_status tk_read_file(const char *path, char **data, size_t *n, lt_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lt_err_set(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tk_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!tk_buf_put(&b, chunk, got)) {
            fclose(f);
            tk_buf_free(&b);
            return lt_err_set(err, LT_ERR_OOM, "%s: out of memory reading the file", path);
        }
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || !tk_buf_reserve(&b, 0)) {
        tk_buf_free(&b);
        return lt_err_set(err, bad ? LT_ERR_IO : LT_ERR_OOM, "%s: cannot read the file", path);
    }
    b.p[b.n] = 0;
    *data = b.p;
    *n = b.n;
    return LT_OK;
}
