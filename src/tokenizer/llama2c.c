/*
 * llama2c.c - loads a llama2.c tokenizer.bin (karpathy/llama2.c tokenizer.py `export`):
 *   int32 max_token_length
 *   vocab_size times: float32 score, int32 len, len bytes (not NUL-terminated)
 * all little-endian. The file does not store vocab_size; the checkpoint header does.
 * The pieces have SentencePiece's "▁" replaced by " ", BOS/EOS stored as "\n<s>\n"/"\n</s>\n",
 * and byte pieces as "<0xXX>" at ids 3..258.
 *
 * The encoder is the SentencePiece-BPE engine of bpe.c in its run.c mode (see tokenizer.h for
 * the exact rules and the two places we differ from run.c).
 */
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <string.h>

static bool rd(const char *d, size_t n, size_t *off, void *out, size_t k) {
    if (n - *off < k) return false;
    memcpy(out, d + *off, k);
    *off += k;
    return true;
}

lt_status lt_tokenizer_load_llama2c(const char *path, int32_t vocab_size, lt_tokenizer **out,
                                    lt_err *err) {
    if (!path || !out) return lt_err_set(err, LT_ERR_ARG, "load_llama2c: NULL argument");
    if (vocab_size <= 0 || vocab_size > (1 << 24))
        return lt_err_set(err, LT_ERR_ARG, "%s: vocab_size %d is not in [1, 2^24]", path,
                          (int)vocab_size);
    char *d = NULL;
    size_t n = 0, off = 0;
    lt_status st = tk_read_file(path, &d, &n, err);
    if (st) return st;
    lt_tokenizer *t = tk_new(path);
    if (!t) {
        lt_free(d);
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
    }
    int32_t max_len;
    if (!rd(d, n, &off, &max_len, 4)) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: file too short for the header (%zu bytes)", path, n);
        goto fail;
    }
    if (max_len <= 0 || max_len > (1 << 20)) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: max_token_length %d out of range", path,
                        (int)max_len);
        goto fail;
    }
    st = tk_alloc_vocab(t, vocab_size, true, err);
    if (st) goto fail;
    for (int32_t i = 0; i < vocab_size; i++) {
        float score;
        int32_t len;
        size_t at = off;
        if (!rd(d, n, &off, &score, 4) || !rd(d, n, &off, &len, 4)) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: token %d: file ends at byte %zu, expected %d tokens", path,
                            (int)i, at, (int)vocab_size);
            goto fail;
        }
        if (len < 0 || len > max_len || (size_t)len > n - off) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: token %d at byte %zu: length %d outside [0, %d] or past the end",
                            path, (int)i, at, (int)len, (int)max_len);
            goto fail;
        }
        if (!isfinite(score)) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: token %d: score is not finite", path, (int)i);
            goto fail;
        }
        st = tk_set_piece(t, i, d + off, (size_t)len, err);
        if (st) goto fail;
        off += (size_t)len;
        t->score[i] = score;
        t->attr[i] = TK_ATTR_MODEL;
    }
    t->model = TK_MODEL_SPM_BPE;
    t->llama2c = true;
    for (int b = 0; b < 256; b++) t->byte_id[b] = b + 3 < vocab_size ? b + 3 : -1;
    t->unk = 0;
    t->bos = vocab_size > 1 ? 1 : -1;
    t->eos = vocab_size > 2 ? 2 : -1;
    for (int32_t i = 0; i < 3 && i < vocab_size; i++) t->attr[i] |= TK_ATTR_SPECIAL;
    // the dummy prefix: run.c looks up " " and puts it first when the text is not empty
    t->norms = lt_calloc(1, sizeof *t->norms);
    if (!t->norms) goto oom;
    t->n_norms = 1;
    t->norms[0].kind = TK_NORM_PREPEND;
    t->norms[0].str = tk_arena_dup(&t->arena, " ", 1);
    t->norms[0].len = 1;
    if (!t->norms[0].str) goto oom;
    if (t->bos >= 0) {
        t->prefix = lt_alloc(sizeof *t->prefix);
        if (!t->prefix) goto oom;
        t->prefix[0] = t->bos;
        t->n_prefix = 1;
    }
    st = tk_finish(t, err);
    if (st) goto fail;
    lt_free(d);
    *out = t;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
fail:
    lt_tokenizer_free(t);
    lt_free(d);
    return st;
}
