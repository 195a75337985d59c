// text.c - plain-text and JSONL {"text"} corpora to examples (causal LM on all tokens).
#include "data/data.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

// Encodes one document (BOS added when the tokenizer's post-processor adds it) and cuts it into
// examples of at most max_len tokens.
static lt_status add_doc(lt_dataset *d, const lt_tokenizer *tok, const char *s, size_t n,
                         int max_len, lt_ids *ids, lt_err *err) {
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    if (!n) return LT_OK;
    ids->n = 0;
    lt_status st = lt_tokenizer_encode(tok, s, n, LT_TOK_ADD_SPECIAL, ids, err);
    if (st) return st;
    return lt_dataset_add_stream(d, ids->ids, (int64_t)ids->n, max_len, err);
}

lt_status lt_dataset_read_text(lt_dataset *d, const lt_tokenizer *tok, const char *path,
                               const char *sep, int max_len, lt_err *err) {
    char *text = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(path, &text, &n, err);
    if (st) return st;
    lt_ids ids = {0};
    size_t sl = sep ? strlen(sep) : 0;
    const char *p = text, *end = text + n;
    while (p < end && !st) {
        const char *e = sl ? memmem(p, (size_t)(end - p), sep, sl) : NULL;
        if (!e) e = end;
        st = add_doc(d, tok, p, (size_t)(e - p), max_len, &ids, err);
        p = e + sl;
    }
    if (st) lt_err_wrap(err, "%s", path);
    lt_ids_deinit(&ids);
    lt_free(text);
    return st;
}

lt_status lt_dataset_read_text_jsonl(lt_dataset *d, const lt_tokenizer *tok, const char *path,
                                     const char *field, int max_len, lt_err *err) {
    char *text = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(path, &text, &n, err);
    if (st) return st;
    lt_ids ids = {0};
    long line = 0;
    char *p = text;
    while (p < text + n && !st) {
        char *e = memchr(p, '\n', (size_t)(text + n - p));
        if (!e) e = text + n;
        line++;
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e) {
            cJSON *j = cJSON_ParseWithLength(p, (size_t)(e - p));
            const cJSON *f = j ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
            if (!cJSON_IsString(f))
                st = lt_err_set(err, LT_ERR_FORMAT, "%s:%ld: expected a JSON object with a string "
                                "field \"%s\"", path, line, field);
            else if ((st = add_doc(d, tok, f->valuestring, strlen(f->valuestring), max_len, &ids, err)))
                lt_err_wrap(err, "%s:%ld", path, line);
            cJSON_Delete(j);
        }
        p = e + 1;
    }
    lt_ids_deinit(&ids);
    lt_free(text);
    return st;
}
