/*
 * pretok.c - normalizers (utf8proc for NFC/NFKC/...) and pre-tokenizers (PCRE2 for the regexes)
 * of Hugging Face tokenizers, without offset tracking.
 *
 * Splitting follows tokenizers/src/tokenizer/normalizer.rs `split` and pattern.rs
 * `find_matches`: a pattern cuts a word into alternating (gap, match) pieces; the behaviour says
 * what happens to the matches (Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous);
 * empty pieces are dropped. Regexes are compiled with PCRE2_UTF | PCRE2_UCP so \s, \w, \p{L}
 * are Unicode-aware as in Oniguruma / Rust regex. The Precompiled (SentencePiece charsmap)
 * normalizer is in precompiled.c. Not here: BertNormalizer's Chinese-character padding, UnicodeScripts.
 */
#include "tokenizer/tok_internal.h"

#include <string.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------------
// byte-level table (GPT-2 bytes_to_unicode)

void tk_byte_level_table(char out[256][3], uint8_t out_len[256]) {
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int32_t cp = printable ? b : 256 + extra++;
        char tmp[4];
        size_t l = tk_utf8_encode(cp, tmp);
        memcpy(out[b], tmp, l);
        out_len[b] = (uint8_t)l;
    }
}

// ---------------------------------------------------------------------------------------------
// regex

static void *pcre_malloc(PCRE2_SIZE n, void *data) {
    (void)data;
    return lt_alloc(n);
}
static void pcre_free(void *p, void *data) {
    (void)data;
    lt_free(p);
}

lt_status tk_regex_compile(const char *pat, size_t len, const char *what, pcre2_code **out,
                           lt_err *err) {
    int ec = 0;
    PCRE2_SIZE eo = 0;
    pcre2_general_context *g = pcre2_general_context_create(pcre_malloc, pcre_free, NULL);
    pcre2_compile_context *cc = g ? pcre2_compile_context_create(g) : NULL;
    if (!cc) {
        if (g) pcre2_general_context_free(g);
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory compiling a regex", what);
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(g);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        if (ec == PCRE2_ERROR_HEAP_FAILED || ec == PCRE2_ERROR_HEAPLIMIT || ec == PCRE2_ERROR_NOMEMORY)
            return lt_err_set(err, LT_ERR_OOM, "%s: out of memory compiling a regex", what);
        return lt_err_set(err, LT_ERR_FORMAT, "%s: bad regex at offset %zu (%s): %.60s", what,
                          (size_t)eo, (const char *)msg, pat);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // interpreted when JIT is unavailable
    *out = re;
    return LT_OK;
}

// Match list: alternating pieces covering s[0..n); is_match tells which are matches.
typedef struct tk_piece {
    size_t a, b;
    bool m;
} tk_piece;
typedef struct tk_pieces {
    tk_piece *p;
    size_t n, cap;
} tk_pieces;

static bool pieces_push(tk_pieces *v, size_t a, size_t b, bool m) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        tk_piece *np = lt_realloc(v->p, sizeof *np * cap);
        if (!np) return false;
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = (tk_piece){a, b, m};
    return true;
}

static lt_status regex_pieces(pcre2_code *re, const char *s, size_t n, pcre2_match_data *md,
                              tk_pieces *out, lt_err *err) {
    size_t prev = 0, off = 0;
    out->n = 0;
    while (off <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            if (rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT)
                return lt_err_set(err, LT_ERR_OOM, "encode: out of memory in regex match");
            return lt_err_set(err, LT_ERR_UNSUPPORTED, "encode: regex match failed (pcre2 %d)",
                              rc);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev && !pieces_push(out, prev, ms, false)) goto oom;
        if (!pieces_push(out, ms, me, true)) goto oom;
        prev = me;
        if (me == ms) {
            if (ms >= n) break;
            off = ms + tk_utf8_len((unsigned char)s[ms]);
        } else off = me;
    }
    if (prev < n && !pieces_push(out, prev, n, false)) goto oom;
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

static bool is_space_cp(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static bool is_punct_cp(int32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
    }
}

// Rust's char::is_numeric (the Digits pre-tokenizer): general categories Nd, Nl and No, so
// "①", "½" and "٣" are digits too.
static bool is_numeric_cp(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

typedef enum { CP_SPACE, CP_PUNCT, CP_DIGIT, CP_CHAR } cp_pred;

// Each code point satisfying the predicate is its own match (pattern.rs, impl for Fn(char)).
static bool char_pieces(cp_pred pred, int32_t ch, const char *s, size_t n, tk_pieces *out) {
    size_t last = 0, i = 0;
    out->n = 0;
    while (i < n) {
        size_t l;
        int32_t c = tk_utf8_decode(s + i, n - i, &l);
        bool m = pred == CP_SPACE   ? is_space_cp(c)
                 : pred == CP_PUNCT ? is_punct_cp(c)
                 : pred == CP_DIGIT ? is_numeric_cp(c)
                                    : c == ch;
        if (m) {
            if (last < i && !pieces_push(out, last, i, false)) return false;
            if (!pieces_push(out, i, i + l, true)) return false;
            last = i + l;
        }
        i += l;
    }
    if (last < n && !pieces_push(out, last, n, false)) return false;
    return true;
}

// Applies the behaviour to the pieces of s and appends the resulting words to dst.
static bool emit_split(const char *s, const tk_pieces *pc, tk_split_behavior beh, bool invert,
                       bool origin, tk_words *dst) {
    // first pass: compute the kept ranges in order
    size_t n = pc->n;
    size_t i = 0;
    bool prev_match = false;
    // pending range for merges
    size_t ra = 0, rb = 0;
    bool have = false;
    bool first = true;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (have && rb > ra) {                                                                     \
            if (!tk_words_push(dst, s + ra, rb - ra, origin && ra == 0)) return false;            \
        }                                                                                          \
        have = false;                                                                              \
    } while (0)
    if (beh == TK_SPLIT_MERGED_NEXT) {
        // walk backwards: a match (after a non-match) is prepended to the piece that follows it
        // collect ranges into a temporary list in reverse, then emit in order
        size_t cap = n ? n : 1;
        size_t *ra_l = lt_alloc(sizeof(size_t) * 2 * cap);
        if (!ra_l) return false;
        size_t k = 0;
        prev_match = false;
        for (size_t j = n; j-- > 0;) {
            bool m = pc->p[j].m != invert;
            if (m && !prev_match && k > 0) ra_l[2 * (k - 1)] = pc->p[j].a;
            else {
                ra_l[2 * k] = pc->p[j].a;
                ra_l[2 * k + 1] = pc->p[j].b;
                k++;
            }
            prev_match = m;
        }
        bool ok = true;
        for (size_t j = k; j-- > 0 && ok;) {
            size_t a = ra_l[2 * j], b = ra_l[2 * j + 1];
            if (b > a) ok = tk_words_push(dst, s + a, b - a, origin && a == 0);
        }
        lt_free(ra_l);
        return ok;
    }
    for (i = 0; i < n; i++) {
        size_t a = pc->p[i].a, b = pc->p[i].b;
        bool m = pc->p[i].m != invert;
        switch (beh) {
        case TK_SPLIT_ISOLATED:
            have = true, ra = a, rb = b;
            FLUSH();
            break;
        case TK_SPLIT_REMOVED:
            if (!m) {
                have = true, ra = a, rb = b;
                FLUSH();
            }
            break;
        case TK_SPLIT_CONTIGUOUS:
            if (!first && m == prev_match) rb = b;
            else {
                FLUSH();
                have = true, ra = a, rb = b;
            }
            break;
        case TK_SPLIT_MERGED_PREV:
            if (m && !prev_match && !first) rb = b;
            else {
                FLUSH();
                have = true, ra = a, rb = b;
            }
            break;
        case TK_SPLIT_MERGED_NEXT: break;
        }
        prev_match = m;
        first = false;
    }
    FLUSH();
#undef FLUSH
    return true;
}

// ---------------------------------------------------------------------------------------------
// words

bool tk_words_push(tk_words *w, const char *s, size_t n, bool origin) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        tk_span *p = lt_realloc(w->sp, sizeof *p * cap);
        if (!p) return false;
        w->sp = p;
        w->cap = cap;
    }
    size_t off = w->buf.n;
    if (!tk_buf_put(&w->buf, s, n)) return false;
    w->sp[w->n++] = (tk_span){off, n, origin};
    return true;
}

void tk_words_free(tk_words *w) {
    tk_buf_free(&w->buf);
    lt_free(w->sp);
    memset(w, 0, sizeof *w);
}

static void words_reset(tk_words *w) {
    w->n = 0;
    w->buf.n = 0;
}

// ---------------------------------------------------------------------------------------------
// normalizers

static lt_status norm_unicode(const char *s, size_t n, utf8proc_option_t opt, tk_buf *out,
                              lt_err *err) {
    out->n = 0;
    if (n == 0) return tk_buf_reserve(out, 0) ? LT_OK : lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    if (n > (size_t)INT32_MAX / 8)
        return lt_err_set(err, LT_ERR_ARG, "encode: text too long to normalize (%zu bytes)", n);
    utf8proc_ssize_t cnt =
        utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, NULL, 0, opt);
    if (cnt < 0)
        return lt_err_set(err, LT_ERR_ARG, "encode: normalization failed: %s",
                          utf8proc_errmsg(cnt));
    utf8proc_int32_t *cp = lt_alloc(sizeof *cp * ((size_t)cnt + 1));
    if (!cp) return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    cnt = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, cp, cnt, opt);
    if (cnt >= 0) cnt = utf8proc_reencode(cp, cnt, opt);
    if (cnt < 0) {
        lt_free(cp);
        return lt_err_set(err, LT_ERR_ARG, "encode: normalization failed: %s",
                          utf8proc_errmsg(cnt));
    }
    bool ok = tk_buf_put(out, cp, (size_t)cnt);
    lt_free(cp);
    return ok ? LT_OK : lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

static bool norm_lower(const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    size_t i = 0;
    if (!tk_buf_reserve(out, n)) return false;
    while (i < n) {
        size_t l;
        int32_t c = tk_utf8_decode(s + i, n - i, &l);
        char tmp[8];
        size_t k;
        if (c == 0x130) { // Rust: 'İ'.to_lowercase() == "i\u{307}"
            memcpy(tmp, "i\xCC\x87", 3);
            k = 3;
        } else k = tk_utf8_encode(c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c), tmp);
        if (!tk_buf_put(out, tmp, k)) return false;
        i += l;
    }
    return true;
}

static lt_status norm_replace_re(pcre2_code *re, const char *rep, size_t rn, const char *s,
                                 size_t n, tk_buf *out, lt_err *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    tk_pieces pc = {0};
    if (!md) return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    lt_status st = regex_pieces(re, s, n, md, &pc, err);
    out->n = 0;
    for (size_t i = 0; st == LT_OK && i < pc.n; i++) {
        bool ok = pc.p[i].m ? tk_buf_put(out, rep, rn)
                            : tk_buf_put(out, s + pc.p[i].a, pc.p[i].b - pc.p[i].a);
        if (!ok) st = lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    }
    if (st == LT_OK && !tk_buf_reserve(out, 0)) st = lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    lt_free(pc.p);
    pcre2_match_data_free(md);
    return st;
}

lt_status tk_normalize(const lt_tokenizer *t, const char *s, size_t n, tk_buf *out, lt_err *err) {
    lt_status st = LT_OK;
    tk_buf tmp = {0};
    out->n = 0;
    if (!tk_buf_put(out, s, n)) goto oom;
    for (int k = 0; k < t->n_norms; k++) {
        const tk_norm *nm = &t->norms[k];
        const char *src = out->p;
        size_t sn = out->n;
        tmp.n = 0;
        switch (nm->kind) {
        case TK_NORM_NFC:
            st = norm_unicode(src, sn, UTF8PROC_STABLE | UTF8PROC_COMPOSE, &tmp, err);
            break;
        case TK_NORM_NFD:
            st = norm_unicode(src, sn, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, &tmp, err);
            break;
        case TK_NORM_NFKC:
            st = norm_unicode(src, sn, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, &tmp,
                              err);
            break;
        case TK_NORM_NFKD:
            st = norm_unicode(src, sn, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
                              &tmp, err);
            break;
        case TK_NORM_LOWERCASE:
            if (!norm_lower(src, sn, &tmp)) goto oom;
            break;
        case TK_NORM_STRIP: {
            size_t a = 0, b = sn;
            while (nm->a && a < b) {
                size_t l;
                if (!is_space_cp(tk_utf8_decode(src + a, b - a, &l))) break;
                a += l;
            }
            while (nm->b && b > a) {
                size_t q = b - 1;
                while (q > a && ((unsigned char)src[q] & 0xC0) == 0x80) q--;
                size_t l;
                if (!is_space_cp(tk_utf8_decode(src + q, b - q, &l))) break;
                b = q;
            }
            if (!tk_buf_put(&tmp, src + a, b - a)) goto oom;
            break;
        }
        case TK_NORM_STRIP_ACCENTS: {
            size_t i = 0;
            if (!tk_buf_reserve(&tmp, sn)) goto oom;
            while (i < sn) {
                size_t l;
                int32_t c = tk_utf8_decode(src + i, sn - i, &l);
                utf8proc_category_t cat = c < 0x300 ? UTF8PROC_CATEGORY_LL : utf8proc_category(c);
                // HF drops every combining mark (Mn, Mc, Me), not only the non-spacing ones
                if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC &&
                    cat != UTF8PROC_CATEGORY_ME)
                    if (!tk_buf_put(&tmp, src + i, l)) goto oom;
                i += l;
            }
            break;
        }
        case TK_NORM_PREPEND:
            if (sn && !tk_buf_put(&tmp, nm->str, nm->len)) goto oom;
            if (!tk_buf_put(&tmp, src, sn)) goto oom;
            break;
        case TK_NORM_APPEND:
            if (!tk_buf_put(&tmp, src, sn)) goto oom;
            if (sn && !tk_buf_put(&tmp, nm->str, nm->len)) goto oom;
            break;
        case TK_NORM_REPLACE:
            if (nm->re) st = norm_replace_re(nm->re, nm->str2, nm->len2, src, sn, &tmp, err);
            else {
                size_t i = 0;
                if (!tk_buf_reserve(&tmp, sn)) goto oom;
                while (i < sn) {
                    if (nm->len && sn - i >= nm->len && memcmp(src + i, nm->str, nm->len) == 0) {
                        if (!tk_buf_put(&tmp, nm->str2, nm->len2)) goto oom;
                        i += nm->len;
                    } else {
                        if (!tk_buf_putc(&tmp, src[i])) goto oom;
                        i++;
                    }
                }
            }
            break;
        case TK_NORM_PRECOMPILED:
            if (!tk_precompiled_apply(nm, src, sn, &tmp)) goto oom;
            break;
        case TK_NORM_BYTE_LEVEL:
            for (size_t i = 0; i < sn; i++) {
                unsigned char c = (unsigned char)src[i];
                if (!tk_buf_put(&tmp, t->bl_char[c], t->bl_char_len[c])) goto oom;
            }
            break;
        }
        if (st) goto done;
        if (!tk_buf_reserve(&tmp, 0)) goto oom;
        tk_buf x = *out;
        *out = tmp;
        tmp = x;
    }
    if (!tk_buf_reserve(out, 0)) goto oom;
done:
    tk_buf_free(&tmp);
    return st;
oom:
    tk_buf_free(&tmp);
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers

static bool starts_with(const char *s, size_t n, const char *p, size_t pn) {
    return n >= pn && memcmp(s, p, pn) == 0;
}

// One pre-tokenizer over one word (s, n, origin): appends the resulting words to dst.
static lt_status pre_one(const lt_tokenizer *t, const tk_pre *p, bool last, const char *s,
                         size_t n, bool origin, pcre2_match_data *md, tk_pieces *pc,
                         tk_buf *tmp, tk_words *dst, lt_err *err) {
    lt_status st = LT_OK;
    switch (p->kind) {
    case TK_PRE_BYTE_LEVEL: {
        tmp->n = 0;
        if (p->a && !(n && s[0] == ' ')) {
            if (!tk_buf_putc(tmp, ' ')) goto oom;
        }
        if (!tk_buf_put(tmp, s, n)) goto oom;
        const char *w = tmp->p;
        size_t wn = tmp->n;
        // the prepended space is not part of the original text: the word is still at the origin
        tk_words part = {0};
        if (p->b) {
            st = regex_pieces(p->re, w, wn, md, pc, err);
            if (st) return st;
            if (!emit_split(w, pc, TK_SPLIT_ISOLATED, false, origin, &part)) goto oom_part;
        } else if (!tk_words_push(&part, w, wn, origin)) goto oom_part;
        for (size_t i = 0; i < part.n; i++) {
            const char *x = part.buf.p + part.sp[i].off;
            size_t xn = part.sp[i].len;
            if (last) { // the model maps bytes itself (t->byte_level)
                if (!tk_words_push(dst, x, xn, part.sp[i].origin)) goto oom_part;
                continue;
            }
            tk_buf m = {0};
            for (size_t k = 0; k < xn; k++) {
                unsigned char c = (unsigned char)x[k];
                if (!tk_buf_put(&m, t->bl_char[c], t->bl_char_len[c])) {
                    tk_buf_free(&m);
                    goto oom_part;
                }
            }
            bool ok = tk_words_push(dst, m.p ? m.p : "", m.n, part.sp[i].origin);
            tk_buf_free(&m);
            if (!ok) goto oom_part;
        }
        tk_words_free(&part);
        return LT_OK;
    oom_part:
        tk_words_free(&part);
        goto oom;
    }
    case TK_PRE_SPLIT:
        if (p->re) {
            st = regex_pieces(p->re, s, n, md, pc, err);
            if (st) return st;
        } else {
            // literal pattern: every occurrence is a match
            pc->n = 0;
            size_t prev = 0, i = 0;
            while (p->len && i + p->len <= n) {
                if (memcmp(s + i, p->str, p->len) == 0) {
                    if (i > prev && !pieces_push(pc, prev, i, false)) goto oom;
                    if (!pieces_push(pc, i, i + p->len, true)) goto oom;
                    i += p->len;
                    prev = i;
                } else i++;
            }
            if (prev < n && !pieces_push(pc, prev, n, false)) goto oom;
        }
        if (!emit_split(s, pc, p->behavior, p->invert, origin, dst)) goto oom;
        return LT_OK;
    case TK_PRE_METASPACE: {
        tmp->n = 0;
        // HF looks at the text after the spaces became the replacement
        bool prepend = (p->a == 2 || (p->a == 1 && origin)) && !(n && s[0] == ' ') &&
                       !starts_with(s, n, p->str, p->len);
        if (prepend && !tk_buf_put(tmp, p->str, p->len)) goto oom;
        for (size_t i = 0; i < n; i++) {
            bool ok = s[i] == ' ' ? tk_buf_put(tmp, p->str, p->len) : tk_buf_putc(tmp, s[i]);
            if (!ok) goto oom;
        }
        if (!p->b) {
            if (!tk_words_push(dst, tmp->p ? tmp->p : "", tmp->n, origin)) goto oom;
            return LT_OK;
        }
        pc->n = 0;
        size_t prev = 0, i = 0;
        while (i + p->len <= tmp->n) {
            if (memcmp(tmp->p + i, p->str, p->len) == 0) {
                if (i > prev && !pieces_push(pc, prev, i, false)) goto oom;
                if (!pieces_push(pc, i, i + p->len, true)) goto oom;
                i += p->len;
                prev = i;
            } else i++;
        }
        if (prev < tmp->n && !pieces_push(pc, prev, tmp->n, false)) goto oom;
        if (!emit_split(tmp->p ? tmp->p : "", pc, TK_SPLIT_MERGED_NEXT, false, origin, dst))
            goto oom;
        return LT_OK;
    }
    case TK_PRE_WHITESPACE:
        st = regex_pieces(p->re, s, n, md, pc, err);
        if (st) return st;
        if (!emit_split(s, pc, TK_SPLIT_REMOVED, true, origin, dst)) goto oom;
        return LT_OK;
    case TK_PRE_WS_SPLIT:
        if (!char_pieces(CP_SPACE, 0, s, n, pc)) goto oom;
        if (!emit_split(s, pc, TK_SPLIT_REMOVED, false, origin, dst)) goto oom;
        return LT_OK;
    case TK_PRE_DIGITS:
        if (!char_pieces(CP_DIGIT, 0, s, n, pc)) goto oom;
        if (!emit_split(s, pc, p->a ? TK_SPLIT_ISOLATED : TK_SPLIT_CONTIGUOUS, false, origin, dst))
            goto oom;
        return LT_OK;
    case TK_PRE_PUNCT:
        if (!char_pieces(CP_PUNCT, 0, s, n, pc)) goto oom;
        if (!emit_split(s, pc, p->behavior, false, origin, dst)) goto oom;
        return LT_OK;
    case TK_PRE_CHAR_DELIM: {
        size_t l;
        int32_t ch = p->len ? tk_utf8_decode(p->str, p->len, &l) : -1;
        if (!char_pieces(CP_CHAR, ch, s, n, pc)) goto oom;
        if (!emit_split(s, pc, TK_SPLIT_REMOVED, false, origin, dst)) goto oom;
        return LT_OK;
    }
    case TK_PRE_BERT: {
        tk_words part = {0};
        bool ok = char_pieces(CP_SPACE, 0, s, n, pc) &&
                  emit_split(s, pc, TK_SPLIT_REMOVED, false, origin, &part);
        for (size_t i = 0; ok && i < part.n; i++) {
            const char *x = part.buf.p + part.sp[i].off;
            ok = char_pieces(CP_PUNCT, 0, x, part.sp[i].len, pc) &&
                 emit_split(x, pc, TK_SPLIT_ISOLATED, false, part.sp[i].origin, dst);
        }
        tk_words_free(&part);
        if (!ok) goto oom;
        return LT_OK;
    }
    }
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

lt_status tk_pretokenize(const lt_tokenizer *t, const char *s, size_t n, bool origin,
                         pcre2_match_data *md, tk_words *out, tk_words *scratch, lt_err *err) {
    lt_status st = LT_OK;
    tk_pieces pc = {0};
    tk_buf tmp = {0};
    words_reset(out);
    if (n == 0) return LT_OK;
    if (!tk_words_push(out, s, n, origin)) goto oom;
    for (int k = 0; k < t->n_pres; k++) {
        words_reset(scratch);
        bool last = k == t->n_pres - 1 && t->byte_level;
        for (size_t i = 0; i < out->n; i++) {
            const tk_span sp = out->sp[i];
            st = pre_one(t, &t->pres[k], last, out->buf.p + sp.off, sp.len, sp.origin, md, &pc,
                         &tmp, scratch, err);
            if (st) goto done;
        }
        tk_words x = *out;
        *out = *scratch;
        *scratch = x;
    }
done:
    lt_free(pc.p);
    tk_buf_free(&tmp);
    return st;
oom:
    lt_free(pc.p);
    tk_buf_free(&tmp);
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}
