/*
 * st_writer.c - the safetensors writer: header JSON in insertion order (__metadata__ first),
 * padded with spaces to a multiple of 8 bytes, then the tensors' bytes back to back (the layout
 * the reference implementation requires: no gaps, offsets in order), written atomically.
 * Tensor data is borrowed; nothing is converted.
 */
#include "io/io.h"
#include "io/io_impl.h"

#include <inttypes.h>
#include <string.h>

typedef struct {
    char *name;
    lt_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data; // borrowed
    size_t nbytes;
} wt_tensor;

typedef struct {
    char *key, *value;
} wt_meta;

struct lt_st_writer {
    wt_tensor *t;
    int n, cap;
    wt_meta *meta;
    int n_meta, cap_meta;
};

lt_st_writer *lt_st_writer_new(void) { return lt_calloc(1, sizeof(lt_st_writer)); }

void lt_st_writer_free(lt_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) lt_free(w->t[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        lt_free(w->meta[i].key);
        lt_free(w->meta[i].value);
    }
    lt_free(w->t);
    lt_free(w->meta);
    lt_free(w);
}

// Grows an array of `size`-byte items to hold one more; false on OOM (the array is unchanged).
static bool grow(void **arr, int *cap, int n, size_t size) {
    if (n < *cap) return true;
    if (*cap > (1 << 29)) return false;
    int ncap = *cap ? *cap * 2 : 16;
    void *p = lt_realloc(*arr, (size_t)ncap * size);
    if (!p) return false;
    *arr = p;
    *cap = ncap;
    return true;
}

lt_status lt_st_writer_add(lt_st_writer *w, const char *name, lt_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, lt_err *err) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: invalid tensor name '%s'",
                          name ? name : "(null)");
    if (!lt_io_utf8_valid(name, strlen(name), NULL))
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: tensor name is not valid UTF-8");
    if (!lt_st_dtype_ok(dtype))
        return lt_err_set(err, LT_ERR_ARG,
                          "safetensors writer: tensor '%s': dtype %s cannot be "
                          "stored in safetensors",
                          name, lt_dtype_name(dtype));
    if (ndim < 0 || ndim > 8)
        return lt_err_set(err, LT_ERR_ARG,
                          "safetensors writer: tensor '%s': %d dimensions, "
                          "expected 0..8",
                          name, ndim);
    int64_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || (shape[k] && numel > INT64_MAX / shape[k]))
            return lt_err_set(err, LT_ERR_ARG,
                              "safetensors writer: tensor '%s': bad dimension "
                              "%d (%lld)",
                              name, k, (long long)shape[k]);
        numel *= shape[k];
    }
    size_t nbytes = lt_dtype_nbytes(dtype, numel);
    if (nbytes == 0 && numel)
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: tensor '%s': size overflows", name);
    if (!data && nbytes)
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: tensor '%s': no data", name);
    for (int i = 0; i < w->n; i++) // writers hold a few hundred tensors at most
        if (strcmp(w->t[i].name, name) == 0)
            return lt_err_set(err, LT_ERR_ARG, "safetensors writer: tensor '%s' added twice", name);
    char *copy = lt_strdup(name);
    if (!copy || !grow((void **)&w->t, &w->cap, w->n, sizeof *w->t)) {
        lt_free(copy);
        return lt_err_set(err, LT_ERR_OOM, "safetensors writer: out of memory adding '%s'", name);
    }
    wt_tensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int k = 0; k < ndim; k++) t->shape[k] = shape[k];
    t->data = data;
    t->nbytes = nbytes;
    return LT_OK;
}

lt_status lt_st_writer_meta(lt_st_writer *w, const char *key, const char *value, lt_err *err) {
    if (!key || !value)
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: NULL metadata key or value");
    if (!lt_io_utf8_valid(key, strlen(key), NULL) || !lt_io_utf8_valid(value, strlen(value), NULL))
        return lt_err_set(err, LT_ERR_ARG, "safetensors writer: metadata '%s' is not valid UTF-8",
                          key);
    char *v = lt_strdup(value);
    if (!v) return lt_err_set(err, LT_ERR_OOM, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) { // replace, keeping the position
            lt_free(w->meta[i].value);
            w->meta[i].value = v;
            return LT_OK;
        }
    char *k = lt_strdup(key);
    if (!k || !grow((void **)&w->meta, &w->cap_meta, w->n_meta, sizeof *w->meta)) {
        lt_free(k);
        lt_free(v);
        return lt_err_set(err, LT_ERR_OOM, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return LT_OK;
}

lt_status lt_st_writer_write(lt_st_writer *w, const char *path, lt_err *err) {
    lt_io_buf h = {0};
    lt_afile a = {0};
    lt_status st;
    lt_io_buf_puts(&h, "{");
    if (w->n_meta) {
        lt_io_buf_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) lt_io_buf_puts(&h, ",");
            lt_io_buf_json_str(&h, w->meta[i].key);
            lt_io_buf_puts(&h, ":");
            lt_io_buf_json_str(&h, w->meta[i].value);
        }
        lt_io_buf_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wt_tensor *t = &w->t[i];
        if (i || w->n_meta) lt_io_buf_puts(&h, ",");
        lt_io_buf_json_str(&h, t->name);
        lt_io_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", lt_dtype_name(t->dtype));
        for (int k = 0; k < t->ndim; k++)
            lt_io_buf_printf(&h, k ? ",%" PRId64 : "%" PRId64, t->shape[k]);
        lt_io_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
                         off + (uint64_t)t->nbytes);
        off += t->nbytes;
    }
    lt_io_buf_puts(&h, "}");
    while (!h.oom && h.len % 8) lt_io_buf_puts(&h, " ");
    if (h.oom) {
        st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory building the header", path);
        goto fail;
    }
    if ((st = lt_afile_open(&a, path, err))) goto fail;
    uint8_t len[8];
    lt_io_put_le64(len, (uint64_t)h.len);
    fwrite(len, 1, 8, a.f);
    fwrite(h.data, 1, h.len, a.f);
    for (int i = 0; i < w->n; i++)
        if (w->t[i].nbytes) fwrite(w->t[i].data, 1, w->t[i].nbytes, a.f);
    lt_io_buf_free(&h);
    return lt_afile_commit(&a, err); // checks every fwrite through ferror
fail:
    lt_io_buf_free(&h);
    return st;
}
