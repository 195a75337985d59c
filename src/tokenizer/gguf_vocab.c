/*
 * gguf_vocab.c - a tokenizer from the tokenizer.ggml.* keys of a GGUF file, encoding as
 * llama.cpp does (src/llama-vocab.cpp) for the two common vocabulary types:
 *
 *   tokenizer.ggml.model = "llama" (SentencePiece): tokens + scores (+ token_type). Each piece
 *     of text between special tokens gets a "▁" prefix and its spaces become "▁" (llama.cpp
 *     add_space_prefix + llama_escape_whitespace), then score-BPE over characters (bpe.c,
 *     TK_MODEL_SPM_BPE); unknown characters become <0xXX> byte tokens.
 *   tokenizer.ggml.model = "gpt2" (byte-level BPE): tokens + merges ("a b", ranked by position);
 *     tokenizer.ggml.pre picks the pre-tokenizer regex: gpt-2/mpt/olmo/jais (and a missing key,
 *     as in the gpt-neox file) -> the GPT-2 pattern; llama3/llama-bpe/smaug-bpe/dbrx -> the
 *     Llama-3 pattern (with ignore_merges); qwen2/stablelm2 -> the Qwen2 pattern; smollm/
 *     starcoder/refact/codeshell -> digits split off one by one, then the GPT-2 pattern.
 *
 * token_type: CONTROL (3) and UNKNOWN (2) tokens are special added tokens (matched in the text
 * unless LT_TOK_SPLIT_SPECIAL); USER_DEFINED (4) tokens are ordinary added tokens, always
 * matched before the model runs (llama.cpp does so even with parse_special off; that is what
 * makes gpt-neox's whitespace-run tokens 50254..50276 come out). BYTE (6) are <0xXX> pieces.
 * add_bos_token / add_eos_token (defaults: true/false for "llama", false/false for "gpt2")
 * decide what LT_TOK_ADD_SPECIAL adds. Other vocabulary types (bert, t5/ugm, rwkv) fail with
 * LT_ERR_UNSUPPORTED.
 */
#include "io/gguf.h"
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <string.h>

#define GPT2_RE                                                                                    \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                    \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                         \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

enum { GT_NORMAL = 1, GT_UNKNOWN = 2, GT_CONTROL = 3, GT_USER = 4, GT_UNUSED = 5, GT_BYTE = 6 };

static lt_status opt_id(const lt_gguf *g, const char *key, int32_t n, int32_t *dst, lt_err *err) {
    if (lt_gguf_find_key(g, key) < 0) return LT_OK;
    int64_t v;
    lt_status st = lt_gguf_get_int(g, key, &v, err);
    if (st) return st;
    // llama.cpp writes -1 (as u32 0xFFFFFFFF sometimes) for "none"
    if (v < 0 || v == 0xFFFFFFFFll) {
        *dst = -1;
        return LT_OK;
    }
    if (v >= n)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: %s = %lld is not a token id (vocab has %d)",
                          lt_gguf_path(g), key, (long long)v, (int)n);
    *dst = (int32_t)v;
    return LT_OK;
}

static lt_status opt_bool(const lt_gguf *g, const char *key, bool *dst, lt_err *err) {
    if (lt_gguf_find_key(g, key) < 0) return LT_OK;
    return lt_gguf_get_bool(g, key, dst, err);
}

static lt_status add_pre(lt_tokenizer *t, tk_pre_kind kind, const char *re, int a, int b,
                         lt_err *err) {
    tk_pre *p = lt_realloc(t->pres, sizeof *p * (size_t)(t->n_pres + 1));
    if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->pres = p;
    tk_pre *x = &t->pres[t->n_pres];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    x->a = a;
    x->b = b;
    x->behavior = TK_SPLIT_ISOLATED;
    if (re) {
        lt_status st = tk_regex_compile(re, strlen(re), t->path, &x->re, err);
        if (st) return st;
    }
    t->n_pres++;
    return LT_OK;
}

static lt_status add_dec(lt_tokenizer *t, tk_dec_kind kind, const char *s, const char *s2, int a,
                         int b, lt_err *err) {
    tk_dec *p = lt_realloc(t->decs, sizeof *p * (size_t)(t->n_decs + 1));
    if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->decs = p;
    tk_dec *d = &t->decs[t->n_decs];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->a = a;
    d->b = b;
    if (s) {
        d->str = tk_arena_dup(&t->arena, s, strlen(s));
        d->len = strlen(s);
    }
    if (s2) {
        d->str2 = tk_arena_dup(&t->arena, s2, strlen(s2));
        d->len2 = strlen(s2);
    }
    if ((s && !d->str) || (s2 && !d->str2))
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->n_decs++;
    t->has_decoder = true;
    return LT_OK;
}

static lt_status add_norm(lt_tokenizer *t, tk_norm_kind kind, const char *s, const char *s2,
                          lt_err *err) {
    tk_norm *p = lt_realloc(t->norms, sizeof *p * (size_t)(t->n_norms + 1));
    if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->norms = p;
    tk_norm *n = &t->norms[t->n_norms];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->str = tk_arena_dup(&t->arena, s, strlen(s));
    n->len = strlen(s);
    if (s2) {
        n->str2 = tk_arena_dup(&t->arena, s2, strlen(s2));
        n->len2 = strlen(s2);
    }
    if (!n->str || (s2 && !n->str2)) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    t->n_norms++;
    return LT_OK;
}

static lt_status load_merges(lt_tokenizer *t, const lt_gguf *g, lt_err *err) {
    const char *key = "tokenizer.ggml.merges";
    lt_gguf_type et;
    uint64_t n;
    lt_status st = lt_gguf_get_arr_info(g, key, &et, &n, err);
    if (st) return st;
    if (et != LT_GGUF_TYPE_STRING || n > (uint64_t)INT32_MAX)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: %s is not an array of strings", t->path, key);
    if (!tk_pairmap_init(&t->merges, (size_t)n))
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
    tk_buf cat = {0};
    for (uint64_t i = 0; i < n; i++) {
        const char *m;
        size_t ml;
        st = lt_gguf_get_arr_str(g, key, i, &m, &ml, err);
        if (st) break;
        // llama.cpp splits at the first space after the first byte
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL;
        if (!sp) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: merge %llu \"%.40s\" has no space", t->path,
                            (unsigned long long)i, m);
            break;
        }
        size_t an = (size_t)(sp - m), bn = ml - an - 1;
        int32_t a = tk_strmap_get(&t->vocab, m, an), b = tk_strmap_get(&t->vocab, sp + 1, bn);
        cat.n = 0;
        if (!tk_buf_put(&cat, m, an) || !tk_buf_put(&cat, sp + 1, bn)) {
            st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
            break;
        }
        int32_t c = tk_strmap_get(&t->vocab, cat.p, cat.n);
        // a merge whose parts or result are not tokens can never apply; llama.cpp keeps it
        // but it never yields a token, so it is skipped here
        if (a < 0 || b < 0 || c < 0) continue;
        if (!tk_pairmap_put(&t->merges, a, b, (int32_t)i, c)) {
            st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", t->path);
            break;
        }
    }
    tk_buf_free(&cat);
    return st;
}

lt_status lt_tokenizer_load_gguf(const lt_gguf *g, lt_tokenizer **out, lt_err *err) {
    if (!g || !out) return lt_err_set(err, LT_ERR_ARG, "load_gguf: NULL argument");
    const char *path = lt_gguf_path(g);
    const char *model = NULL, *pre = NULL;
    lt_status st = lt_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, err);
    if (st) return st;
    bool spm = !strcmp(model, "llama"), bpe = !strcmp(model, "gpt2");
    if (!spm && !bpe)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: tokenizer.ggml.model \"%.40s\" is not supported (llama, gpt2 are)",
                          path, model);
    if (lt_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        st = lt_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err);
        if (st) return st;
    }
    lt_gguf_type et;
    uint64_t n;
    st = lt_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n, err);
    if (st) return st;
    if (et != LT_GGUF_TYPE_STRING || n == 0 || n > (1u << 24))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tokenizer.ggml.tokens must be 1..2^24 strings (found %llu of %s)",
                          path, (unsigned long long)n, lt_gguf_type_name(et));
    lt_tokenizer *t = tk_new(path);
    int32_t *types = NULL;
    float *scores = NULL;
    if (!t) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
    int32_t nv = (int32_t)n;
    st = tk_alloc_vocab(t, nv, spm, err);
    if (st) goto fail;
    types = lt_alloc(sizeof *types * n);
    if (!types) goto oom;
    for (uint64_t i = 0; i < n; i++) types[i] = GT_NORMAL;
    if (lt_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        uint64_t tn;
        st = lt_gguf_get_arr_info(g, "tokenizer.ggml.token_type", &et, &tn, err);
        if (!st && (et != LT_GGUF_TYPE_INT32 || tn != n))
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tokenizer.ggml.token_type must be %llu i32 (found %llu of %s)",
                            path, (unsigned long long)n, (unsigned long long)tn,
                            lt_gguf_type_name(et));
        if (!st) st = lt_gguf_get_arr_data(g, "tokenizer.ggml.token_type", LT_GGUF_TYPE_INT32, types, n, err);
        if (st) goto fail;
    }
    if (spm) {
        uint64_t sn;
        scores = lt_alloc(sizeof *scores * n);
        if (!scores) goto oom;
        st = lt_gguf_get_arr_info(g, "tokenizer.ggml.scores", &et, &sn, err);
        if (!st && (et != LT_GGUF_TYPE_FLOAT32 || sn != n))
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tokenizer.ggml.scores must be %llu f32 (found %llu of %s)", path,
                            (unsigned long long)n, (unsigned long long)sn, lt_gguf_type_name(et));
        if (!st) st = lt_gguf_get_arr_data(g, "tokenizer.ggml.scores", LT_GGUF_TYPE_FLOAT32, scores, n, err);
        if (st) goto fail;
    }
    for (int32_t i = 0; i < nv; i++) {
        const char *s;
        size_t sl;
        st = lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)i, &s, &sl, err);
        if (st) goto fail;
        if (tk_utf8_check(s, sl) != sl) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: token %d is not valid UTF-8", path, (int)i);
            goto fail;
        }
        st = tk_set_piece(t, i, s, sl, err);
        if (st) goto fail;
        t->attr[i] |= TK_ATTR_MODEL;
        if (spm) {
            if (!isfinite(scores[i])) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s: score of token %d is not finite", path, (int)i);
                goto fail;
            }
            t->score[i] = scores[i];
        }
        int ty = types[i];
        if ((ty == GT_CONTROL || ty == GT_UNKNOWN || ty == GT_USER) && sl > 0) {
            tk_added a = {0};
            a.id = i;
            a.content = (char *)s;
            a.len = sl;
            a.special = ty != GT_USER;
            a.normalized = false;
            st = tk_add_added(t, &a, err);
            if (st) goto fail;
        }
        if (ty == GT_UNUSED) t->attr[i] |= TK_ATTR_UNUSED;
        if (ty == GT_CONTROL) t->attr[i] |= TK_ATTR_CONTROL;
    }

    bool add_bos = spm, add_eos = false;
    int32_t bos = -1, eos = -1, unk = -1, pad = -1;
    if ((st = opt_id(g, "tokenizer.ggml.bos_token_id", nv, &bos, err)) ||
        (st = opt_id(g, "tokenizer.ggml.eos_token_id", nv, &eos, err)) ||
        (st = opt_id(g, "tokenizer.ggml.unknown_token_id", nv, &unk, err)) ||
        (st = opt_id(g, "tokenizer.ggml.padding_token_id", nv, &pad, err)) ||
        (st = opt_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err)) ||
        (st = opt_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, err)))
        goto fail;
    t->bos = bos;
    t->eos = eos;
    t->pad = pad;
    if (add_bos && bos >= 0) {
        if (!(t->prefix = lt_alloc(sizeof *t->prefix))) goto oom;
        t->prefix[t->n_prefix++] = bos;
    }
    if (add_eos && eos >= 0) {
        if (!(t->suffix = lt_alloc(sizeof *t->suffix))) goto oom;
        t->suffix[t->n_suffix++] = eos;
    }

    if (spm) {
        t->model = TK_MODEL_SPM_BPE;
        t->unk = unk;
        t->byte_fallback = true;
        bool space_prefix = true;
        if ((st = opt_bool(g, "tokenizer.ggml.add_space_prefix", &space_prefix, err))) goto fail;
        if (space_prefix && (st = add_norm(t, TK_NORM_PREPEND, "\xE2\x96\x81", NULL, err))) goto fail;
        if ((st = add_norm(t, TK_NORM_REPLACE, " ", "\xE2\x96\x81", err))) goto fail;
        if ((st = add_dec(t, TK_DEC_REPLACE, "\xE2\x96\x81", " ", 0, 0, err)) ||
            (st = add_dec(t, TK_DEC_BYTE_FALLBACK, NULL, NULL, 0, 0, err)) ||
            (st = add_dec(t, TK_DEC_FUSE, NULL, NULL, 0, 0, err)))
            goto fail;
        if (space_prefix && (st = add_dec(t, TK_DEC_STRIP, " ", NULL, 1, 0, err))) goto fail;
    } else {
        t->model = TK_MODEL_BPE;
        const char *p = pre ? pre : "gpt-2";
        if (!strcmp(p, "gpt-2") || !strcmp(p, "mpt") || !strcmp(p, "olmo") || !strcmp(p, "jais") ||
            !strcmp(p, "default")) {
            st = add_pre(t, TK_PRE_BYTE_LEVEL, GPT2_RE, 0, 1, err);
        } else if (!strcmp(p, "llama3") || !strcmp(p, "llama-bpe") || !strcmp(p, "smaug-bpe") ||
                   !strcmp(p, "dbrx")) {
            t->ignore_merges = true;
            st = add_pre(t, TK_PRE_SPLIT, LLAMA3_RE, 0, 0, err);
            if (!st) st = add_pre(t, TK_PRE_BYTE_LEVEL, NULL, 0, 0, err);
        } else if (!strcmp(p, "qwen2") || !strcmp(p, "stablelm2")) {
            st = add_pre(t, TK_PRE_SPLIT, QWEN2_RE, 0, 0, err);
            if (!st) st = add_pre(t, TK_PRE_BYTE_LEVEL, NULL, 0, 0, err);
        } else if (!strcmp(p, "smollm") || !strcmp(p, "starcoder") || !strcmp(p, "refact") ||
                   !strcmp(p, "codeshell")) {
            st = add_pre(t, TK_PRE_SPLIT, "\\p{N}", 0, 0, err);
            if (!st) st = add_pre(t, TK_PRE_BYTE_LEVEL, GPT2_RE, 0, 1, err);
        } else {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.pre \"%.40s\" is not supported", path, p);
        }
        if (st) goto fail;
        t->byte_level = true;
        if ((st = add_dec(t, TK_DEC_BYTE_LEVEL, NULL, NULL, 0, 0, err))) goto fail;
    }
    st = tk_finish(t, err);
    if (st) goto fail;
    if (bpe && (st = load_merges(t, g, err))) goto fail;
    if (lt_gguf_find_key(g, "tokenizer.chat_template") >= 0) { // kept for chat_template.h
        const char *ct;
        if ((st = lt_gguf_get_str(g, "tokenizer.chat_template", &ct, NULL, err))) goto fail;
        if (!(t->chat_template = lt_strdup(ct))) goto oom;
    }
    lt_free(types);
    lt_free(scores);
    *out = t;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
fail:
    lt_free(types);
    lt_free(scores);
    lt_tokenizer_free(t);
    return st;
}

lt_status lt_tokenizer_load_gguf_file(const char *path, lt_tokenizer **out, lt_err *err) {
    lt_gguf *g = NULL;
    lt_status st = lt_gguf_open(path, &g, err);
    if (st) return st;
    st = lt_tokenizer_load_gguf(g, out, err);
    lt_gguf_close(g);
    return st;
}
