/*
 * tokenizer_json.c - loads a Hugging Face tokenizer.json (format of tokenizers >= 0.10) and,
 * optionally, tokenizer_config.json.
 *
 * Supported:
 *   model:          BPE (merges as "a b" strings or ["a", "b"] pairs; unk_token, fuse_unk,
 *                   byte_fallback, ignore_merges), Unigram (vocab [[piece, score]], unk_id,
 *                   byte_fallback)
 *   normalizer:     NFC NFD NFKC NFKD Lowercase Strip StripAccents Prepend Append Replace
 *                   ByteLevel Sequence Precompiled (SentencePiece charsmap)
 *   pre_tokenizer:  ByteLevel Split Metaspace Whitespace WhitespaceSplit Digits Punctuation
 *                   BertPreTokenizer CharDelimiterSplit Sequence
 *   post_processor: TemplateProcessing (single), RobertaProcessing, BertProcessing, ByteLevel,
 *                   Sequence
 *   decoder:        ByteLevel Metaspace Replace ByteFallback Fuse Strip WordPiece BPEDecoder
 *                   Sequence
 *   added_tokens:   content, id, special, normalized, single_word, lstrip, rstrip
 * Ignored on purpose: truncation, padding (src/data does both), BPE dropout must be null/0.
 * Everything else fails with LT_ERR_UNSUPPORTED naming the piece, so that a tokenizer we would
 * get wrong is never used silently. Spec: the serde forms in the serialization.rs files of tokenizers/src.
 */
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define GPT2_RE                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct ld {
    lt_tokenizer *t;
    const char *what;
    lt_err *err;
} ld;

static lt_status fmt_err(ld *l, const char *where, const char *msg) {
    return lt_err_set(l->err, LT_ERR_FORMAT, "%s: %s: %s", l->what, where, msg);
}
static lt_status oom(ld *l) { return lt_err_set(l->err, LT_ERR_OOM, "%s: out of memory", l->what); }
static lt_status unsup(ld *l, const char *where, const char *type) {
    return lt_err_set(l->err, LT_ERR_UNSUPPORTED, "%s: %s type \"%s\" is not supported",
                      l->what, where, type);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static bool jbool(const cJSON *o, const char *k, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}
// an integer in [lo, hi]; false when missing or out of range
static bool jint(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

static char *adup(ld *l, const char *s) {
    return tk_arena_dup(&l->t->arena, s, strlen(s));
}

// {"String": "x"} or {"Regex": "x"}: literal -> *lit, regex -> compiled *re.
static lt_status pattern(ld *l, const cJSON *p, const char *where, char **lit, size_t *lit_len,
                         pcre2_code **re) {
    const char *s = jstr(p, "String"), *r = jstr(p, "Regex");
    *lit = NULL;
    *re = NULL;
    if (s) {
        if (!(*lit = adup(l, s))) return oom(l);
        *lit_len = strlen(s);
        return LT_OK;
    }
    if (r) {
        char what[160];
        snprintf(what, sizeof what, "%s: %s", l->what, where);
        return tk_regex_compile(r, strlen(r), what, re, l->err);
    }
    return fmt_err(l, where, "pattern is neither {\"String\"} nor {\"Regex\"}");
}

// ---------------------------------------------------------------------------------------------
// normalizers

static lt_status add_norm(ld *l, tk_norm nm) {
    lt_tokenizer *t = l->t;
    tk_norm *p = lt_realloc(t->norms, sizeof *p * (size_t)(t->n_norms + 1));
    if (!p) {
        pcre2_code_free(nm.re);
        return oom(l);
    }
    t->norms = p;
    t->norms[t->n_norms++] = nm;
    return LT_OK;
}

static lt_status parse_norm(ld *l, const cJSON *n, int depth) {
    if (cJSON_IsNull(n) || !n) return LT_OK;
    if (depth > 8) return fmt_err(l, "normalizer", "nested too deeply");
    const char *type = jstr(n, "type");
    if (!type) return fmt_err(l, "normalizer", "missing \"type\"");
    tk_norm nm = {0};
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *c;
        if (!cJSON_IsArray(arr)) return fmt_err(l, "normalizer Sequence", "no normalizers list");
        cJSON_ArrayForEach(c, arr) {
            lt_status st = parse_norm(l, c, depth + 1);
            if (st) return st;
        }
        return LT_OK;
    }
    if (!strcmp(type, "NFC")) nm.kind = TK_NORM_NFC;
    else if (!strcmp(type, "NFD")) nm.kind = TK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm.kind = TK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm.kind = TK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) nm.kind = TK_NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents")) nm.kind = TK_NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "ByteLevel")) nm.kind = TK_NORM_BYTE_LEVEL;
    else if (!strcmp(type, "Strip")) {
        nm.kind = TK_NORM_STRIP;
        nm.a = jbool(n, "strip_left", true);
        nm.b = jbool(n, "strip_right", true);
    } else if (!strcmp(type, "Prepend") || !strcmp(type, "Append")) {
        bool pre = type[0] == 'P';
        const char *s = jstr(n, pre ? "prepend" : "append");
        if (!s) return fmt_err(l, type, "missing the string");
        nm.kind = pre ? TK_NORM_PREPEND : TK_NORM_APPEND;
        if (!(nm.str = adup(l, s))) return oom(l);
        nm.len = strlen(s);
    } else if (!strcmp(type, "Replace")) {
        const char *c = jstr(n, "content");
        if (!c) return fmt_err(l, "normalizer Replace", "missing \"content\"");
        nm.kind = TK_NORM_REPLACE;
        lt_status st = pattern(l, cJSON_GetObjectItemCaseSensitive(n, "pattern"),
                               "normalizer Replace", &nm.str, &nm.len, &nm.re);
        if (st) return st;
        if (!(nm.str2 = adup(l, c))) {
            pcre2_code_free(nm.re);
            return oom(l);
        }
        nm.len2 = strlen(c);
    } else if (!strcmp(type, "Precompiled")) {
        const char *cm = jstr(n, "precompiled_charsmap");
        if (!cm || !cm[0]) return LT_OK; // an empty charsmap normalizes nothing
        lt_status st = tk_precompiled_parse(&l->t->arena, cm, l->what, &nm, l->err);
        if (st) return st;
    } else return unsup(l, "normalizer", type);
    return add_norm(l, nm);
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers

static lt_status add_pre(ld *l, tk_pre p) {
    lt_tokenizer *t = l->t;
    tk_pre *np = lt_realloc(t->pres, sizeof *np * (size_t)(t->n_pres + 1));
    if (!np) {
        pcre2_code_free(p.re);
        return oom(l);
    }
    t->pres = np;
    t->pres[t->n_pres++] = p;
    return LT_OK;
}

static lt_status behavior(ld *l, const cJSON *n, tk_split_behavior dflt, tk_split_behavior *out) {
    const char *b = jstr(n, "behavior");
    *out = dflt;
    if (!b) return LT_OK;
    if (!strcmp(b, "Removed")) *out = TK_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = TK_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = TK_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = TK_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = TK_SPLIT_CONTIGUOUS;
    else return fmt_err(l, "pre_tokenizer", "unknown split behavior");
    return LT_OK;
}

// prepend scheme: 0 never, 1 first, 2 always
static int prepend_scheme(const cJSON *n) {
    const char *s = jstr(n, "prepend_scheme");
    if (s) return !strcmp(s, "first") ? 1 : !strcmp(s, "never") ? 0 : 2;
    return jbool(n, "add_prefix_space", true) ? 2 : 0;
}

static lt_status parse_pre(ld *l, const cJSON *n, int depth) {
    if (cJSON_IsNull(n) || !n) return LT_OK;
    if (depth > 8) return fmt_err(l, "pre_tokenizer", "nested too deeply");
    const char *type = jstr(n, "type");
    if (!type) return fmt_err(l, "pre_tokenizer", "missing \"type\"");
    tk_pre p = {0};
    lt_status st;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "pretokenizers"), *c;
        if (!cJSON_IsArray(arr)) return fmt_err(l, "pre_tokenizer Sequence", "no pretokenizers list");
        cJSON_ArrayForEach(c, arr) {
            st = parse_pre(l, c, depth + 1);
            if (st) return st;
        }
        return LT_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        p.kind = TK_PRE_BYTE_LEVEL;
        p.a = jbool(n, "add_prefix_space", true);
        p.b = jbool(n, "use_regex", true);
        if (p.b) {
            st = tk_regex_compile(GPT2_RE, strlen(GPT2_RE), l->what, &p.re, l->err);
            if (st) return st;
        }
    } else if (!strcmp(type, "Split")) {
        p.kind = TK_PRE_SPLIT;
        st = behavior(l, n, TK_SPLIT_ISOLATED, &p.behavior);
        if (st) return st;
        p.invert = jbool(n, "invert", false);
        st = pattern(l, cJSON_GetObjectItemCaseSensitive(n, "pattern"), "pre_tokenizer Split",
                     &p.str, &p.len, &p.re);
        if (st) return st;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        if (!r || !r[0]) return fmt_err(l, "pre_tokenizer Metaspace", "missing \"replacement\"");
        p.kind = TK_PRE_METASPACE;
        if (!(p.str = adup(l, r))) return oom(l);
        p.len = strlen(r);
        p.a = prepend_scheme(n);
        p.b = jbool(n, "split", true);
    } else if (!strcmp(type, "Whitespace")) {
        p.kind = TK_PRE_WHITESPACE;
        // \w+|[^\w\s]+ with \w spelled out as Rust/Oniguruma have it (letters, marks, digits,
        // connector punctuation): PCRE2's UCP \w leaves out the marks
        static const char ws_re[] = "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]+|[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}\\s]+";
        st = tk_regex_compile(ws_re, strlen(ws_re), l->what, &p.re, l->err);
        if (st) return st;
    } else if (!strcmp(type, "WhitespaceSplit")) p.kind = TK_PRE_WS_SPLIT;
    else if (!strcmp(type, "Digits")) {
        p.kind = TK_PRE_DIGITS;
        p.a = jbool(n, "individual_digits", false);
    } else if (!strcmp(type, "Punctuation")) {
        p.kind = TK_PRE_PUNCT;
        st = behavior(l, n, TK_SPLIT_ISOLATED, &p.behavior);
        if (st) return st;
    } else if (!strcmp(type, "BertPreTokenizer")) p.kind = TK_PRE_BERT;
    else if (!strcmp(type, "CharDelimiterSplit")) {
        const char *d = jstr(n, "delimiter");
        if (!d || !d[0]) return fmt_err(l, "pre_tokenizer CharDelimiterSplit", "no delimiter");
        p.kind = TK_PRE_CHAR_DELIM;
        if (!(p.str = adup(l, d))) return oom(l);
        p.len = strlen(d);
    } else return unsup(l, "pre_tokenizer", type);
    return add_pre(l, p);
}

// ---------------------------------------------------------------------------------------------
// decoders

static lt_status add_dec(ld *l, tk_dec d) {
    lt_tokenizer *t = l->t;
    tk_dec *p = lt_realloc(t->decs, sizeof *p * (size_t)(t->n_decs + 1));
    if (!p) return oom(l);
    t->decs = p;
    t->decs[t->n_decs++] = d;
    return LT_OK;
}

static lt_status parse_dec(ld *l, const cJSON *n, int depth) {
    if (cJSON_IsNull(n) || !n) return LT_OK;
    if (depth > 8) return fmt_err(l, "decoder", "nested too deeply");
    const char *type = jstr(n, "type");
    if (!type) return fmt_err(l, "decoder", "missing \"type\"");
    l->t->has_decoder = true;
    tk_dec d = {0};
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "decoders"), *c;
        if (!cJSON_IsArray(arr)) return fmt_err(l, "decoder Sequence", "no decoders list");
        cJSON_ArrayForEach(c, arr) {
            lt_status st = parse_dec(l, c, depth + 1);
            if (st) return st;
        }
        return LT_OK;
    }
    if (!strcmp(type, "ByteLevel")) d.kind = TK_DEC_BYTE_LEVEL;
    else if (!strcmp(type, "ByteFallback")) d.kind = TK_DEC_BYTE_FALLBACK;
    else if (!strcmp(type, "Fuse")) d.kind = TK_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        if (!r || !r[0]) return fmt_err(l, "decoder Metaspace", "missing \"replacement\"");
        d.kind = TK_DEC_METASPACE;
        if (!(d.str = adup(l, r))) return oom(l);
        d.len = strlen(r);
        d.a = prepend_scheme(n);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *s = jstr(pat, "String"), *c = jstr(n, "content");
        if (!s || !c)
            return lt_err_set(l->err, LT_ERR_UNSUPPORTED,
                              "%s: decoder Replace needs a String pattern and content", l->what);
        d.kind = TK_DEC_REPLACE;
        if (!(d.str = adup(l, s)) || !(d.str2 = adup(l, c))) return oom(l);
        d.len = strlen(s);
        d.len2 = strlen(c);
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(n, "content");
        int64_t a = 0, b = 0;
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(n, "start"),
                    *sb = cJSON_GetObjectItemCaseSensitive(n, "stop");
        if (!c || (sa && !jint(sa, 0, 1 << 20, &a)) || (sb && !jint(sb, 0, 1 << 20, &b)))
            return fmt_err(l, "decoder Strip", "bad content/start/stop");
        d.kind = TK_DEC_STRIP;
        if (!(d.str = adup(l, c))) return oom(l);
        d.len = strlen(c);
        d.a = (int)a;
        d.b = (int)b;
    } else if (!strcmp(type, "WordPiece")) {
        const char *p = jstr(n, "prefix");
        d.kind = TK_DEC_WORDPIECE;
        if (!(d.str = adup(l, p ? p : "##"))) return oom(l);
        d.len = strlen(d.str);
    } else if (!strcmp(type, "BPEDecoder")) {
        const char *s = jstr(n, "suffix");
        d.kind = TK_DEC_BPE_SUFFIX;
        if (!(d.str = adup(l, s ? s : "</w>"))) return oom(l);
        d.len = strlen(d.str);
    } else return unsup(l, "decoder", type);
    return add_dec(l, d);
}

// ---------------------------------------------------------------------------------------------
// post-processor

static lt_status push_id(ld *l, int32_t **arr, int *n, int32_t id) {
    if (id < 0 || id >= l->t->n_vocab)
        return fmt_err(l, "post_processor", "special token id outside the vocabulary");
    int32_t *p = lt_realloc(*arr, sizeof *p * (size_t)(*n + 1));
    if (!p) return oom(l);
    *arr = p;
    p[(*n)++] = id;
    return LT_OK;
}

// ["<s>", 1] form of Roberta/Bert cls and sep
static lt_status pair_id(ld *l, const cJSON *v, int32_t *id) {
    int64_t x;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !jint(cJSON_GetArrayItem(v, 1), 0, INT32_MAX, &x))
        return fmt_err(l, "post_processor", "cls/sep must be [string, id]");
    *id = (int32_t)x;
    return LT_OK;
}

static lt_status parse_post(ld *l, const cJSON *n, int depth) {
    if (cJSON_IsNull(n) || !n) return LT_OK;
    if (depth > 8) return fmt_err(l, "post_processor", "nested too deeply");
    lt_tokenizer *t = l->t;
    const char *type = jstr(n, "type");
    lt_status st;
    if (!type) return fmt_err(l, "post_processor", "missing \"type\"");
    if (!strcmp(type, "ByteLevel")) return LT_OK; // only trims offsets
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "processors"), *c;
        if (!cJSON_IsArray(arr)) return fmt_err(l, "post_processor Sequence", "no processors");
        cJSON_ArrayForEach(c, arr) {
            st = parse_post(l, c, depth + 1);
            if (st) return st;
        }
        return LT_OK;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int32_t cls, sep;
        st = pair_id(l, cJSON_GetObjectItemCaseSensitive(n, "cls"), &cls);
        if (!st) st = pair_id(l, cJSON_GetObjectItemCaseSensitive(n, "sep"), &sep);
        if (!st) st = push_id(l, &t->prefix, &t->n_prefix, cls);
        if (!st) st = push_id(l, &t->suffix, &t->n_suffix, sep);
        return st;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return unsup(l, "post_processor", type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single"), *it;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(n, "special_tokens");
    if (!cJSON_IsArray(single)) return fmt_err(l, "post_processor", "TemplateProcessing without single");
    bool seen_seq = false;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_seq = true;
            continue;
        }
        const char *name = jstr(sp, "id");
        if (!name) return fmt_err(l, "post_processor", "template item is neither Sequence nor SpecialToken");
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids"), *x;
        if (!cJSON_IsArray(ids)) return fmt_err(l, "post_processor", "special token without ids");
        cJSON_ArrayForEach(x, ids) {
            int64_t id;
            if (!jint(x, 0, INT32_MAX, &id)) return fmt_err(l, "post_processor", "bad special token id");
            st = seen_seq ? push_id(l, &t->suffix, &t->n_suffix, (int32_t)id)
                          : push_id(l, &t->prefix, &t->n_prefix, (int32_t)id);
            if (st) return st;
        }
    }
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// model

// Largest id used by the model vocabulary and the added tokens (the vocabulary size - 1).
static lt_status scan_ids(ld *l, const cJSON *model, const cJSON *added, bool unigram,
                          int64_t *max_id) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *v;
    int64_t mx = -1, count = 0;
    if (unigram) {
        if (!cJSON_IsArray(vocab)) return fmt_err(l, "model", "Unigram vocab is not a list");
        mx = cJSON_GetArraySize(vocab) - 1;
        count = mx + 1;
    } else {
        if (!cJSON_IsObject(vocab)) return fmt_err(l, "model", "BPE vocab is not an object");
        cJSON_ArrayForEach(v, vocab) {
            int64_t id;
            if (!jint(v, 0, INT32_MAX - 1, &id))
                return lt_err_set(l->err, LT_ERR_FORMAT, "%s: model vocab: token \"%.40s\" has a bad id",
                                  l->what, v->string ? v->string : "");
            if (id > mx) mx = id;
            count++;
        }
    }
    cJSON_ArrayForEach(v, added) {
        int64_t id;
        if (!jint(cJSON_GetObjectItemCaseSensitive(v, "id"), 0, INT32_MAX - 1, &id))
            return fmt_err(l, "added_tokens", "entry without a valid id");
        if (id > mx) mx = id;
        count++;
    }
    if (mx < 0) return fmt_err(l, "model", "empty vocabulary");
    // ids may have holes, but not so many that a tiny file makes us allocate gigabytes
    if (mx > 4 * count + 4096)
        return lt_err_set(l->err, LT_ERR_FORMAT,
                          "%s: largest token id %lld is far beyond the %lld tokens defined",
                          l->what, (long long)mx, (long long)count);
    *max_id = mx;
    return LT_OK;
}

static lt_status load_bpe(ld *l, const cJSON *model) {
    lt_tokenizer *t = l->t;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *v;
    lt_status st;
    cJSON_ArrayForEach(v, vocab) {
        int32_t id = (int32_t)v->valuedouble;
        const char *k = v->string ? v->string : "";
        if (t->piece[id]) continue; // duplicate id: the first piece names it
        st = tk_set_piece(t, id, k, strlen(k), l->err);
        if (st) return st;
        t->attr[id] |= TK_ATTR_MODEL;
    }
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dr) && dr->valuedouble > 0)
        return lt_err_set(l->err, LT_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", l->what);
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && csp[0]) || (eow && eow[0]))
        return lt_err_set(l->err, LT_ERR_UNSUPPORTED,
                          "%s: BPE continuing_subword_prefix/end_of_word_suffix are not supported",
                          l->what);
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    // the merges map is built after tk_finish made the vocabulary map (see load_merges)
    return LT_OK;
}

static lt_status load_merges(ld *l, const cJSON *model) {
    lt_tokenizer *t = l->t;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!merges || cJSON_IsNull(merges)) return LT_OK;
    if (!cJSON_IsArray(merges)) return fmt_err(l, "model", "merges is not a list");
    int n = cJSON_GetArraySize(merges);
    if (!tk_pairmap_init(&t->merges, (size_t)n)) return oom(l);
    tk_buf cat = {0};
    // HF collects the merges into a map, so a repeated pair keeps its last rank (the pair map
    // overwrites).
    int rank = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        rank++;
        const char *a = NULL, *b = NULL;
        size_t an = 0, bn = 0;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                tk_buf_free(&cat);
                return lt_err_set(l->err, LT_ERR_FORMAT,
                                  "%s: merge %d \"%.40s\" is not two tokens separated by a space",
                                  l->what, rank, s);
            }
            a = s, an = (size_t)(sp - s), b = sp + 1, bn = strlen(sp + 1);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, an = strlen(a);
            b = m->child->next->valuestring, bn = strlen(b);
        } else {
            tk_buf_free(&cat);
            return lt_err_set(l->err, LT_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]",
                              l->what, rank);
        }
        int32_t ia = tk_strmap_get(&t->vocab, a, an), ib = tk_strmap_get(&t->vocab, b, bn);
        cat.n = 0;
        if (!tk_buf_put(&cat, a, an) || !tk_buf_put(&cat, b, bn)) {
            tk_buf_free(&cat);
            return oom(l);
        }
        int32_t ic = tk_strmap_get(&t->vocab, cat.p, cat.n);
        if (ia < 0 || ib < 0 || ic < 0) {
            tk_buf_free(&cat);
            return lt_err_set(l->err, LT_ERR_FORMAT,
                              "%s: merge %d (\"%.30s\" + \"%.30s\") uses a token not in the vocab",
                              l->what, rank, a, b);
        }
        if (!tk_pairmap_put(&t->merges, ia, ib, rank, ic)) {
            tk_buf_free(&cat);
            return oom(l);
        }
    }
    tk_buf_free(&cat);
    return LT_OK;
}

static lt_status load_unigram(ld *l, const cJSON *model) {
    lt_tokenizer *t = l->t;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *v;
    int32_t id = 0;
    double mn = INFINITY;
    cJSON_ArrayForEach(v, vocab) {
        const cJSON *p = cJSON_GetArrayItem(v, 0), *s = cJSON_GetArrayItem(v, 1);
        if (!cJSON_IsArray(v) || !cJSON_IsString(p) || !cJSON_IsNumber(s) || !isfinite(s->valuedouble))
            return lt_err_set(l->err, LT_ERR_FORMAT, "%s: Unigram vocab entry %d is not [piece, score]",
                              l->what, (int)id);
        lt_status st = tk_set_piece(t, id, p->valuestring, strlen(p->valuestring), l->err);
        if (st) return st;
        t->score[id] = s->valuedouble;
        if (s->valuedouble < mn) mn = s->valuedouble;
        t->attr[id] |= TK_ATTR_MODEL;
        id++;
    }
    t->unigram_min_score = id ? mn : 0;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    int64_t uk;
    if (u && !cJSON_IsNull(u)) {
        if (!jint(u, 0, (double)id - 1, &uk)) return fmt_err(l, "model", "unk_id outside the vocab");
        t->unk = (int32_t)uk;
    }
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->fuse_unk = true;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json

static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static lt_status apply_config(ld *l, const cJSON *cfg) {
    lt_tokenizer *t = l->t;
    if (!cJSON_IsObject(cfg)) return fmt_err(l, "tokenizer_config", "not a JSON object");
    struct {
        const char *key;
        int32_t *dst;
    } sp[] = {{"bos_token", &t->bos}, {"eos_token", &t->eos}, {"pad_token", &t->pad}};
    for (size_t i = 0; i < sizeof sp / sizeof *sp; i++) {
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(cfg, sp[i].key);
        if (!raw) continue;
        const char *name = config_token(cfg, sp[i].key);
        if (!name) { // explicit null: the tokenizer has none
            *sp[i].dst = -1;
            continue;
        }
        int32_t id = lt_tokenizer_token_to_id(t, name, strlen(name));
        if (id < 0)
            return lt_err_set(l->err, LT_ERR_FORMAT, "%s: tokenizer_config %s \"%.40s\" is not a token",
                              l->what, sp[i].key, name);
        *sp[i].dst = id;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *tmpl = NULL;
    if (cJSON_IsString(ct)) tmpl = ct->valuestring;
    else if (cJSON_IsArray(ct)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const char *name = jstr(e, "name"), *tt = jstr(e, "template");
            if (tt && (!tmpl || (name && !strcmp(name, "default")))) tmpl = tt;
        }
    }
    if (tmpl && !(t->chat_template = lt_strdup(tmpl))) return oom(l);
    // transformers' Llama/Gemma fast tokenizers rebuild the post-processor from these flags
    const char *cls = jstr(cfg, "tokenizer_class");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"),
                *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cls && (strstr(cls, "Llama") || strstr(cls, "Gemma")) && (cJSON_IsBool(ab) || cJSON_IsBool(ae))) {
        bool add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : true;
        bool add_eos = cJSON_IsBool(ae) ? cJSON_IsTrue(ae) : false;
        t->n_prefix = t->n_suffix = 0;
        lt_status st = LT_OK;
        if (add_bos && t->bos >= 0) st = push_id(l, &t->prefix, &t->n_prefix, t->bos);
        if (!st && add_eos && t->eos >= 0) st = push_id(l, &t->suffix, &t->n_suffix, t->eos);
        if (st) return st;
    }
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------

static lt_status parse_json(const char *s, size_t n, const char *what, cJSON **out, lt_err *err) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, false);
    if (!j) {
        if (!end) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory parsing JSON", what);
        size_t at = (size_t)(end - s), line = 1;
        for (size_t i = 0; i < at && i < n; i++) line += s[i] == '\n';
        return lt_err_set(err, LT_ERR_FORMAT, "%s: JSON syntax error at byte %zu (line %zu)", what,
                          at, line);
    }
    *out = j;
    return LT_OK;
}

lt_status lt_tokenizer_load_hf_mem(const char *json, size_t json_len, const char *config,
                                   size_t config_len, const char *what, lt_tokenizer **out,
                                   lt_err *err) {
    if (!json || !out) return lt_err_set(err, LT_ERR_ARG, "load_hf: NULL argument");
    if (!what) what = "tokenizer.json";
    cJSON *root = NULL, *cfg = NULL;
    lt_status st = parse_json(json, json_len, what, &root, err);
    if (st) return st;
    if (config) {
        st = parse_json(config, config_len, what, &cfg, err);
        if (st) {
            cJSON_Delete(root);
            return lt_err_wrap(err, "tokenizer_config");
        }
    }
    lt_tokenizer *t = tk_new(what);
    ld l = {t, what, err};
    if (!t) {
        st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", what);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        st = fmt_err(&l, "top level", "not a JSON object");
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(model)) {
        st = fmt_err(&l, "model", "missing");
        goto fail;
    }
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        st = fmt_err(&l, "added_tokens", "not a list");
        goto fail;
    }
    const char *mtype = jstr(model, "type");
    bool unigram;
    if (!mtype) mtype = cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE" : "?";
    if (!strcmp(mtype, "BPE")) unigram = false;
    else if (!strcmp(mtype, "Unigram")) unigram = true;
    else {
        st = unsup(&l, "model", mtype);
        goto fail;
    }
    int64_t max_id = 0;
    st = scan_ids(&l, model, cJSON_IsArray(added) ? added : NULL, unigram, &max_id);
    if (st) goto fail;
    st = tk_alloc_vocab(t, (int32_t)(max_id + 1), unigram, err);
    if (st) goto fail;
    t->model = unigram ? TK_MODEL_UNIGRAM : TK_MODEL_BPE;
    st = unigram ? load_unigram(&l, model) : load_bpe(&l, model);
    if (st) goto fail;

    const cJSON *a;
    const cJSON *added_list = cJSON_IsArray(added) ? added : NULL;
    cJSON_ArrayForEach(a, added_list) {
        const char *c = jstr(a, "content");
        if (!c || !c[0]) {
            st = fmt_err(&l, "added_tokens", "entry without content");
            goto fail;
        }
        tk_added ad = {0};
        ad.id = (int32_t)cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble;
        ad.content = (char *)c;
        ad.len = strlen(c);
        ad.special = jbool(a, "special", false);
        ad.normalized = jbool(a, "normalized", !ad.special);
        ad.single_word = jbool(a, "single_word", false);
        ad.lstrip = jbool(a, "lstrip", false);
        ad.rstrip = jbool(a, "rstrip", false);
        st = tk_add_added(t, &ad, err);
        if (st) goto fail;
    }

    st = parse_norm(&l, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0);
    if (!st) st = parse_pre(&l, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0);
    if (!st) st = parse_dec(&l, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0);
    if (!st) st = parse_post(&l, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0);
    if (st) goto fail;
    // a trailing ByteLevel pre-tokenizer leaves words as raw bytes; the model maps them
    t->byte_level = t->n_pres > 0 && t->pres[t->n_pres - 1].kind == TK_PRE_BYTE_LEVEL;

    if (!unigram) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        if (cJSON_IsString(u)) {
            bool found = false;
            for (int32_t i = 0; i < t->n_vocab && !found; i++)
                if (t->piece[i] && (t->attr[i] & TK_ATTR_MODEL) &&
                    !strcmp(t->piece[i], u->valuestring))
                    t->unk = i, found = true;
            if (!found) {
                st = fmt_err(&l, "model", "unk_token is not in the vocab");
                goto fail;
            }
        }
    }
    st = tk_finish(t, err);
    if (st) goto fail;
    if (!unigram) {
        st = load_merges(&l, model);
        if (st) goto fail;
    }

    // special ids: the template's, else well-known names; tokenizer_config overrides
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>",
                                            NULL};
    static const char *const pad_names[] = {"<pad>", "<|pad|>", "[PAD]", NULL};
    t->bos = t->n_prefix ? t->prefix[0] : tk_find_special(t, bos_names);
    t->eos = t->n_suffix ? t->suffix[t->n_suffix - 1] : tk_find_special(t, eos_names);
    t->pad = tk_find_special(t, pad_names);
    if (cfg) {
        st = apply_config(&l, cfg);
        if (st) goto fail;
    }
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    *out = t;
    return LT_OK;
fail:
    lt_tokenizer_free(t);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}

lt_status lt_tokenizer_load_hf(const char *json_path, const char *config_path, lt_tokenizer **out,
                               lt_err *err) {
    if (!json_path || !out) return lt_err_set(err, LT_ERR_ARG, "load_hf: NULL argument");
    char *j = NULL, *c = NULL;
    size_t jn = 0, cn = 0;
    lt_status st = tk_read_file(json_path, &j, &jn, err);
    if (st) return st;
    if (config_path) {
        st = tk_read_file(config_path, &c, &cn, err);
        if (st) {
            lt_free(j);
            return st;
        }
    }
    st = lt_tokenizer_load_hf_mem(j, jn, c, cn, json_path, out, err);
    lt_free(j);
    lt_free(c);
    return st;
}

lt_status lt_tokenizer_load_hf_dir(const char *dir, lt_tokenizer **out, lt_err *err) {
    if (!dir || !out) return lt_err_set(err, LT_ERR_ARG, "load_hf_dir: NULL argument");
    char jp[4096], cp[4096];
    int a = snprintf(jp, sizeof jp, "%s/tokenizer.json", dir);
    int b = snprintf(cp, sizeof cp, "%s/tokenizer_config.json", dir);
    if (a < 0 || b < 0 || (size_t)a >= sizeof jp || (size_t)b >= sizeof cp)
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    FILE *f = fopen(cp, "rb");
    bool have_cfg = f != NULL;
    if (f) fclose(f);
    return lt_tokenizer_load_hf(jp, have_cfg ? cp : NULL, out, err);
}
