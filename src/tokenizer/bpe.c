/*
 * bpe.c - byte-pair encoding of one pre-tokenized word, and the Unigram Viterbi.
 *
 * BPE (HF models/bpe/word.rs merge_all): the word starts as one symbol per character (per byte
 * for byte-level vocabularies); a heap holds the mergeable adjacent pairs ordered by (priority,
 * position) and the best one is merged until none is left. Two priorities:
 *   - rank of the pair in the merges list (HF BPE, GGUF "gpt2"): lower first;
 *   - score of the merged piece (SentencePiece BPE as in llama2.c run.c and llama.cpp
 *     llm_tokenizer_spm): higher first. The merged piece is found by looking the concatenated
 *     text up in the vocabulary, so no merges list is needed.
 * Ties go to the leftmost pair in both, as in the references. Stale heap entries (a side already
 * merged elsewhere) are recognised by the symbol lengths and skipped.
 *
 * Unknown characters: byte_fallback -> one <0xXX> token per byte; otherwise the unk token
 * (consecutive ones fused when fuse_unk); with neither, HF drops the character, and so do we.
 *
 * Unigram (HF models/unigram/model.rs encode_optimized): best path over the lattice of vocabulary
 * pieces by summed log-probability; a character no piece starts with gets the unk score
 * (min score - 10); consecutive unknowns are fused; then unknown pieces -> byte fallback or unk.
 */
#include "tokenizer/tok_internal.h"

#include <string.h>

typedef struct sym {
    int32_t id;      // token id, or -1 for text not (yet) in the vocabulary
    uint32_t start;  // byte range in the word
    uint32_t len;    // 0 once merged into its left neighbour
    int32_t prev, next;
    bool nomerge;    // byte-fallback pieces and unk never merge
} sym;

typedef struct cand {
    double key; // lower is better: rank, or -score
    int32_t pos, right, id;
    uint32_t llen, rlen;
} cand;

struct tk_scratch {
    sym *s;
    size_t ns, caps;
    cand *h;
    size_t nh, caph;
    tk_buf tmp;
    double *best;
    int32_t *from, *bid;
    size_t capb;
};

tk_scratch *tk_scratch_new(void) { return lt_calloc(1, sizeof(tk_scratch)); }

void tk_scratch_free(tk_scratch *s) {
    if (!s) return;
    lt_free(s->s);
    lt_free(s->h);
    tk_buf_free(&s->tmp);
    lt_free(s->best);
    lt_free(s->from);
    lt_free(s->bid);
    lt_free(s);
}

static bool sym_push(tk_scratch *s, int32_t id, size_t start, size_t len, bool nomerge) {
    if (s->ns == s->caps) {
        size_t cap = s->caps ? s->caps * 2 : 64;
        sym *p = lt_realloc(s->s, sizeof *p * cap);
        if (!p) return false;
        s->s = p;
        s->caps = cap;
    }
    int32_t i = (int32_t)s->ns;
    s->s[s->ns++] = (sym){id, (uint32_t)start, (uint32_t)len, i - 1, -1, nomerge};
    if (i > 0) s->s[i - 1].next = i;
    return true;
}

static inline bool cand_less(const cand *a, const cand *b) {
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static bool heap_push(tk_scratch *s, cand c) {
    if (s->nh == s->caph) {
        size_t cap = s->caph ? s->caph * 2 : 64;
        cand *p = lt_realloc(s->h, sizeof *p * cap);
        if (!p) return false;
        s->h = p;
        s->caph = cap;
    }
    size_t i = s->nh++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!cand_less(&c, &s->h[up])) break;
        s->h[i] = s->h[up];
        i = up;
    }
    s->h[i] = c;
    return true;
}

static cand heap_pop(tk_scratch *s) {
    cand top = s->h[0], last = s->h[--s->nh];
    size_t i = 0, n = s->nh;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&s->h[l], best)) m = l, best = &s->h[l];
        if (r < n && cand_less(&s->h[r], best)) m = r;
        if (m == i) break;
        s->h[i] = s->h[m];
        i = m;
    }
    if (n) s->h[i] = last;
    return top;
}

// Pushes the candidate merge of symbols a and b (adjacent), if there is one.
static bool try_pair(const lt_tokenizer *t, const char *w, tk_scratch *s, int32_t a, int32_t b) {
    const sym *x = &s->s[a], *y = &s->s[b];
    if (x->nomerge || y->nomerge) return true;
    cand c = {0, a, b, -1, x->len, y->len};
    if (t->model == TK_MODEL_BPE) {
        int32_t rank, id;
        if (x->id < 0 || y->id < 0) return true;
        if (!tk_pairmap_get(&t->merges, x->id, y->id, &rank, &id)) return true;
        c.key = rank;
        c.id = id;
    } else {
        int32_t id = tk_strmap_get(&t->vocab, w + x->start, (size_t)x->len + y->len);
        if (id < 0) return true;
        c.key = -t->score[id];
        c.id = id;
    }
    return heap_push(s, c);
}

// Appends the ids for an unknown piece of text: bytes, unk, or nothing.
static lt_status unknown_piece(const lt_tokenizer *t, const char *p, size_t n, lt_ids *out,
                               lt_err *err) {
    if (t->byte_fallback) {
        bool all = true;
        for (size_t i = 0; i < n; i++)
            if (t->byte_id[(unsigned char)p[i]] < 0) all = false;
        if (all) {
            for (size_t i = 0; i < n; i++)
                if (!tk_ids_push(out, t->byte_id[(unsigned char)p[i]])) goto oom;
            return LT_OK;
        }
    }
    if (t->unk >= 0 && !tk_ids_push(out, t->unk)) goto oom;
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

lt_status tk_bpe_word(const lt_tokenizer *t, const char *w, size_t n, bool raw_bytes,
                      tk_scratch *s, lt_ids *out, lt_err *err) {
    if (n > UINT32_MAX / 2) return lt_err_set(err, LT_ERR_ARG, "encode: word too long");
    s->ns = 0;
    s->nh = 0;
    const char *text = w; // the text the symbols index (mapped for byte-level ignore_merges)

    if (t->ignore_merges) {
        int32_t id;
        if (raw_bytes) {
            s->tmp.n = 0;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)w[i];
                if (!tk_buf_put(&s->tmp, t->bl_char[c], t->bl_char_len[c])) goto oom;
            }
            id = tk_strmap_get(&t->vocab, s->tmp.p, s->tmp.n);
        } else id = tk_strmap_get(&t->vocab, w, n);
        if (id >= 0) return tk_ids_push(out, id) ? LT_OK : lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
    }

    // initial symbols
    size_t i = 0;
    while (i < n) {
        size_t l;
        int32_t id;
        if (raw_bytes) {
            l = 1;
            id = t->byte_char_id[(unsigned char)w[i]];
        } else if (t->llama2c) {
            // run.c: a lead byte (or stray continuation) plus up to 3 continuation bytes
            l = 1;
            while (i + l < n && ((unsigned char)w[i + l] & 0xC0) == 0x80 && l < 4) l++;
            id = tk_strmap_get(&t->vocab, w + i, l);
            if (id < 0) {
                for (size_t k = 0; k < l; k++) {
                    int32_t b = t->byte_id[(unsigned char)w[i + k]];
                    if (b >= 0 && !sym_push(s, b, i + k, 1, true)) goto oom;
                }
                i += l;
                continue;
            }
        } else {
            l = tk_utf8_len((unsigned char)w[i]);
            if (l > n - i) l = n - i;
            id = tk_strmap_get(&t->vocab, w + i, l);
        }
        if (id >= 0) {
            if (!sym_push(s, id, i, l, false)) goto oom;
        } else if (t->model == TK_MODEL_SPM_BPE) {
            // llama.cpp: unknown characters stay text; resolved to bytes after merging
            if (!sym_push(s, -1, i, l, false)) goto oom;
        } else {
            const char *cp = raw_bytes ? t->bl_char[(unsigned char)w[i]] : w + i;
            size_t cl = raw_bytes ? t->bl_char_len[(unsigned char)w[i]] : l;
            bool fell_back = false;
            if (t->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < cl; k++)
                    if (t->byte_id[(unsigned char)cp[k]] < 0) all = false;
                if (all) {
                    // lengths only serve the staleness checks of rank merges
                    for (size_t k = 0; k < cl; k++)
                        if (!sym_push(s, t->byte_id[(unsigned char)cp[k]], i, 1, false)) goto oom;
                    fell_back = true;
                }
            }
            if (!fell_back && t->unk >= 0) {
                if (t->fuse_unk && s->ns && s->s[s->ns - 1].id == t->unk &&
                    s->s[s->ns - 1].nomerge)
                    s->s[s->ns - 1].len += (uint32_t)l;
                else if (!sym_push(s, t->unk, i, l, true)) goto oom;
            }
        }
        i += l;
    }
    if (s->ns == 0) return LT_OK;

    if (t->model == TK_MODEL_BPE || t->model == TK_MODEL_SPM_BPE) {
        for (int32_t k = 0; k + 1 < (int32_t)s->ns; k++)
            if (!try_pair(t, text, s, k, k + 1)) goto oom;
        while (s->nh) {
            cand c = heap_pop(s);
            sym *x = &s->s[c.pos];
            if (x->len != c.llen || x->next != c.right) continue;
            sym *y = &s->s[c.right];
            if (y->len != c.rlen) continue;
            x->id = c.id;
            x->len += y->len;
            x->next = y->next;
            if (y->next >= 0) s->s[y->next].prev = c.pos;
            y->len = 0;
            if (x->prev >= 0 && !try_pair(t, text, s, x->prev, c.pos)) goto oom;
            if (x->next >= 0 && !try_pair(t, text, s, c.pos, x->next)) goto oom;
        }
    }
    for (int32_t k = 0; k >= 0; k = s->s[k].next) {
        const sym *x = &s->s[k];
        if (x->id >= 0) {
            if (!tk_ids_push(out, x->id)) goto oom;
        } else if (t->model == TK_MODEL_SPM_BPE) {
            lt_status st = unknown_piece(t, text + x->start, x->len, out, err);
            if (st) return st;
        }
    }
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}

// ---------------------------------------------------------------------------------------------
// Unigram

lt_status tk_unigram_word(const lt_tokenizer *t, const char *w, size_t n, tk_scratch *s,
                          lt_ids *out, lt_err *err) {
    if (n >= (size_t)INT32_MAX) return lt_err_set(err, LT_ERR_ARG, "encode: word too long");
    if (n + 1 > s->capb) {
        size_t cap = n + 1;
        double *b = lt_realloc(s->best, sizeof *b * cap);
        if (!b) goto oom;
        s->best = b;
        int32_t *f = lt_realloc(s->from, sizeof *f * cap);
        if (!f) goto oom;
        s->from = f;
        int32_t *d = lt_realloc(s->bid, sizeof *d * cap);
        if (!d) goto oom;
        s->bid = d;
        s->capb = cap;
    }
    double unk_score = t->unigram_min_score - 10.0;
    for (size_t i = 0; i <= n; i++) {
        s->from[i] = -1;
        s->best[i] = 0;
        s->bid[i] = -1;
    }
    size_t i = 0;
    while (i < n) {
        double here = s->best[i];
        size_t mb = tk_utf8_len((unsigned char)w[i]);
        if (mb > n - i) mb = n - i;
        bool single = false;
        size_t maxl = n - i < t->max_piece_len ? n - i : t->max_piece_len;
        for (size_t l = 1; l <= maxl; l++) {
            if (i + l < n && ((unsigned char)w[i + l] & 0xC0) == 0x80) continue;
            int32_t id = tk_strmap_get(&t->vocab, w + i, l);
            if (id < 0) continue;
            double sc = here + t->score[id];
            if (s->from[i + l] < 0 || sc > s->best[i + l]) {
                s->best[i + l] = sc;
                s->from[i + l] = (int32_t)i;
                s->bid[i + l] = id;
            }
            if (l == mb) single = true;
        }
        if (!single) {
            if (t->unk < 0)
                return lt_err_set(err, LT_ERR_UNSUPPORTED,
                                  "encode: text has a character (byte %zu of a word) that %s "
                                  "cannot encode and the tokenizer has no unk token",
                                  i, t->path);
            double sc = here + unk_score;
            if (s->from[i + mb] < 0 || sc > s->best[i + mb]) {
                s->best[i + mb] = sc;
                s->from[i + mb] = (int32_t)i;
                s->bid[i + mb] = t->unk;
            }
        }
        i += mb;
    }
    // backtrack into spans (reusing sym as a list of (start, len, id)), fusing unknowns
    s->ns = 0;
    size_t end = n;
    while (end > 0) {
        int32_t st = s->from[end];
        if (st < 0) return lt_err_set(err, LT_ERR_FORMAT, "encode: unigram lattice broken");
        int32_t id = s->bid[end];
        if (id == t->unk && s->ns && s->s[s->ns - 1].id == t->unk) {
            sym *last = &s->s[s->ns - 1];
            last->len += (uint32_t)(end - (size_t)st);
            last->start = (uint32_t)st;
        } else if (!sym_push(s, id, (size_t)st, end - (size_t)st, false)) goto oom;
        end = (size_t)st;
    }
    for (size_t k = s->ns; k-- > 0;) {
        const sym *x = &s->s[k];
        int32_t id = x->id;
        if (id == t->unk) {
            // the fused text may itself be a piece; otherwise bytes or unk
            int32_t v = tk_strmap_get(&t->vocab, w + x->start, x->len);
            if (v >= 0 && v != t->unk) id = v;
            else {
                lt_status st = unknown_piece(t, w + x->start, x->len, out, err);
                if (st) return st;
                continue;
            }
        }
        if (!tk_ids_push(out, id)) goto oom;
    }
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "encode: out of memory");
}
