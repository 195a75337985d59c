// dataset.c - examples in memory, splits, seeded epoch order and padded batches.
#include "data/data.h"
#include "io/io.h"

#include <string.h>

void lt_dataset_init(lt_dataset *d) { memset(d, 0, sizeof *d); }

void lt_dataset_deinit(lt_dataset *d) {
    for (int64_t i = 0; i < d->n; i++) {
        lt_free(d->ex[i].ids);
        lt_free(d->ex[i].labels);
    }
    lt_free(d->ex);
    memset(d, 0, sizeof *d);
}

lt_status lt_dataset_add(lt_dataset *d, const int32_t *ids, const int32_t *labels, int len,
                         int max_len, lt_err *err) {
    if (len <= 0) return lt_err_set(err, LT_ERR_ARG, "empty example");
    if (len > max_len) {
        len = max_len;
        d->n_truncated++;
    }
    if (d->n == d->cap) {
        int64_t cap = d->cap ? d->cap * 2 : 64;
        lt_example *e = lt_realloc(d->ex, sizeof *e * (size_t)cap);
        if (!e) return lt_err_set(err, LT_ERR_OOM, "out of memory adding example %lld", (long long)d->n);
        d->ex = e, d->cap = cap;
    }
    lt_example *e = &d->ex[d->n];
    e->ids = lt_alloc(sizeof(int32_t) * (size_t)len);
    e->labels = lt_alloc(sizeof(int32_t) * (size_t)len);
    if (!e->ids || !e->labels) {
        lt_free(e->ids), lt_free(e->labels);
        return lt_err_set(err, LT_ERR_OOM, "out of memory adding example %lld", (long long)d->n);
    }
    memcpy(e->ids, ids, sizeof(int32_t) * (size_t)len);
    memcpy(e->labels, labels ? labels : ids, sizeof(int32_t) * (size_t)len);
    e->len = len;
    d->n++;
    return LT_OK;
}

lt_status lt_dataset_add_stream(lt_dataset *d, const int32_t *ids, int64_t n, int max_len,
                                lt_err *err) {
    for (int64_t i = 0; i < n; i += max_len) {
        int64_t len = n - i < max_len ? n - i : max_len;
        if (len < 2) break;
        lt_status st = lt_dataset_add(d, ids + i, NULL, (int)len, max_len, err);
        if (st) return st;
    }
    return LT_OK;
}

void lt_dataset_order(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
    lt_rng r;
    lt_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)lt_rng_below(&r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

lt_status lt_dataset_split(lt_dataset *d, lt_dataset *val, int64_t n_val, uint64_t seed, lt_err *err) {
    if (n_val <= 0) return LT_OK;
    if (n_val >= d->n)
        return lt_err_set(err, LT_ERR_ARG, "validation split of %lld leaves no training examples "
                          "(dataset has %lld)", (long long)n_val, (long long)d->n);
    int64_t *perm = lt_alloc(sizeof(int64_t) * (size_t)d->n);
    lt_example *tmp = lt_alloc(sizeof(lt_example) * (size_t)d->n);
    if (!perm || !tmp) {
        lt_free(perm), lt_free(tmp);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    lt_dataset_order(perm, d->n, seed, -1);
    for (int64_t i = 0; i < d->n; i++) tmp[i] = d->ex[perm[i]];
    memcpy(d->ex, tmp, sizeof(lt_example) * (size_t)d->n);
    lt_free(tmp);
    lt_free(perm);
    lt_status st = LT_OK;
    for (int64_t i = d->n - n_val; i < d->n && !st; i++) {
        st = lt_dataset_add(val, d->ex[i].ids, d->ex[i].labels, d->ex[i].len, d->ex[i].len, err);
        lt_free(d->ex[i].ids), lt_free(d->ex[i].labels);
    }
    d->n -= n_val;
    return st;
}

void lt_batch_fill(const lt_dataset *d, const int64_t *idx, int B, int T, int32_t pad_id,
                   int32_t *ids, int32_t *labels, int32_t *kmask) {
    for (int b = 0; b < B; b++) {
        int32_t *bi = ids + (size_t)b * (size_t)T, *bl = labels + (size_t)b * (size_t)T,
                *bm = kmask + (size_t)b * (size_t)T;
        int len = 0;
        if (idx[b] >= 0) {
            const lt_example *e = &d->ex[idx[b]];
            len = e->len < T ? e->len : T;
            memcpy(bi, e->ids, sizeof(int32_t) * (size_t)len);
            memcpy(bl, e->labels, sizeof(int32_t) * (size_t)len);
        }
        for (int t = 0; t < T; t++) bm[t] = t < len;
        for (int t = len; t < T; t++) bi[t] = pad_id, bl[t] = -100;
    }
}

lt_status lt_dataset_read_ids_jsonl(lt_dataset *d, const char *path, int max_len, int n_vocab,
                                    lt_err *err) {
    char *text = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(path, &text, &n, err);
    if (st) return st;
    int32_t *ids = NULL, *labels = NULL;
    size_t cap = 0;
    long line = 0;
    char *p = text;
    while (p < text + n && !st) {
        char *e = memchr(p, '\n', (size_t)(text + n - p));
        if (!e) e = text + n;
        line++;
        size_t len = (size_t)(e - p);
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e) {
            cJSON *j = cJSON_ParseWithLength(p, len);
            const cJSON *ji = j ? cJSON_GetObjectItemCaseSensitive(j, "input_ids") : NULL;
            const cJSON *jl = j ? cJSON_GetObjectItemCaseSensitive(j, "labels") : NULL;
            int ni = cJSON_IsArray(ji) ? cJSON_GetArraySize(ji) : -1;
            if (!j || ni <= 0 || (jl && (!cJSON_IsArray(jl) || cJSON_GetArraySize(jl) != ni))) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s:%ld: expected {\"input_ids\": [ids...], "
                                "\"labels\": [same length, optional]}", path, line);
            } else {
                if ((size_t)ni > cap) {
                    cap = (size_t)ni;
                    lt_free(ids), lt_free(labels);
                    ids = lt_alloc(cap * sizeof *ids), labels = lt_alloc(cap * sizeof *labels);
                    if (!ids || !labels) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
                }
                for (int i = 0; i < ni && !st; i++) {
                    const cJSON *x = cJSON_GetArrayItem(ji, i);
                    const cJSON *y = jl ? cJSON_GetArrayItem(jl, i) : x;
                    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= n_vocab ||
                        !cJSON_IsNumber(y) || y->valuedouble >= n_vocab || y->valuedouble < -100)
                        st = lt_err_set(err, LT_ERR_FORMAT, "%s:%ld: token %d is not an id in "
                                        "0..%d (labels may also be -100)", path, line, i, n_vocab - 1);
                    else ids[i] = (int32_t)x->valuedouble, labels[i] = (int32_t)y->valuedouble;
                }
                if (!st) st = lt_dataset_add(d, ids, labels, ni, max_len, err);
            }
            cJSON_Delete(j);
        }
        p = e + 1;
    }
    lt_free(ids), lt_free(labels), lt_free(text);
    return st;
}
