/*
 * gguf_writer.c - the GGUF v3 writer (layout in gguf.h), the counterpart of ggml's
 * gguf_write_to_file / gguf-py's GGUFWriter: kv pairs, tensor infos with offsets packed in order
 * and padded to the alignment, zero padding before the data section and after every tensor.
 * Values are copied when set; tensor data is borrowed until write returns. Output is atomic.
 * Not done here: nested arrays (the reader accepts them; nothing we export needs them).
 */
#include "io/gguf.h"
#include "io/io.h"
#include "io/io_impl.h"

#include <string.h>

typedef struct {
    char *key;
    uint32_t type;
    uint64_t bits; // scalars (little-endian bytes of the value, zero-extended)
    char *str;     // STRING
    uint32_t elem; // ARRAY element type
    uint64_t n;    // ARRAY length
    uint8_t *raw;  // ARRAY of scalars: n * size bytes, little-endian
    char **strs;   // ARRAY of strings: (n)
} wkv;

typedef struct {
    char *name;
    uint32_t ggml_type;
    int n_dims;
    int64_t ne[LT_GGUF_MAX_DIMS]; // GGUF order
    const void *data;             // borrowed
    size_t nbytes;
} wtensor;

struct lt_gguf_writer {
    wkv *kv;
    int n_kv, cap_kv;
    wtensor *t;
    int n_t, cap_t;
};

static const uint8_t type_size[LT_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

lt_gguf_writer *lt_gguf_writer_new(void) { return lt_calloc(1, sizeof(lt_gguf_writer)); }

static void kv_clear(wkv *kv) {
    lt_free(kv->str);
    lt_free(kv->raw);
    if (kv->strs)
        for (uint64_t i = 0; i < kv->n; i++) lt_free(kv->strs[i]);
    lt_free(kv->strs);
    kv->str = NULL;
    kv->raw = NULL;
    kv->strs = NULL;
    kv->n = 0;
}

void lt_gguf_writer_free(lt_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        kv_clear(&w->kv[i]);
        lt_free(w->kv[i].key);
    }
    for (int i = 0; i < w->n_t; i++) lt_free(w->t[i].name);
    lt_free(w->kv);
    lt_free(w->t);
    lt_free(w);
}

static bool grow(void **arr, int *cap, int n, size_t size) {
    if (n < *cap) return true;
    if (*cap > (1 << 28)) return false;
    int ncap = *cap ? *cap * 2 : 16;
    void *p = lt_realloc(*arr, (size_t)ncap * size);
    if (!p) return false;
    *arr = p;
    *cap = ncap;
    return true;
}

// Takes ownership of the value fields in `v` (also on failure, where they are freed) and
// stores them under key, replacing an earlier value in place.
static lt_status put_kv(lt_gguf_writer *w, const char *key, wkv *v, lt_err *err) {
    if (!key || !*key) {
        kv_clear(v);
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: empty key");
    }
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            kv_clear(&w->kv[i]);
            v->key = w->kv[i].key;
            w->kv[i] = *v;
            return LT_OK;
        }
    char *k = lt_strdup(key);
    if (!k || !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        lt_free(k);
        kv_clear(v);
        return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory setting '%s'", key);
    }
    v->key = k;
    w->kv[w->n_kv++] = *v;
    return LT_OK;
}

static lt_status set_scalar(lt_gguf_writer *w, const char *key, lt_gguf_type t, const void *p,
                            lt_err *err) {
    wkv v = {0};
    v.type = t;
    size_t sz = type_size[t];
    uint8_t b[8] = {0};
    memcpy(b, p, sz); // host order -> bits in host order, encoded little-endian at write
    if (sz == 1)
        v.bits = b[0];
    else if (sz == 2) {
        uint16_t x;
        memcpy(&x, b, 2);
        v.bits = x;
    } else if (sz == 4) {
        uint32_t x;
        memcpy(&x, b, 4);
        v.bits = x;
    } else
        memcpy(&v.bits, b, 8);
    return put_kv(w, key, &v, err);
}

#define SETTER(fn, ctype, gtype)                                                                   \
    lt_status fn(lt_gguf_writer *w, const char *key, ctype v, lt_err *err) {                       \
        return set_scalar(w, key, gtype, &v, err);                                                 \
    }
SETTER(lt_gguf_writer_set_u8, uint8_t, LT_GGUF_TYPE_UINT8)
SETTER(lt_gguf_writer_set_i8, int8_t, LT_GGUF_TYPE_INT8)
SETTER(lt_gguf_writer_set_u16, uint16_t, LT_GGUF_TYPE_UINT16)
SETTER(lt_gguf_writer_set_i16, int16_t, LT_GGUF_TYPE_INT16)
SETTER(lt_gguf_writer_set_u32, uint32_t, LT_GGUF_TYPE_UINT32)
SETTER(lt_gguf_writer_set_i32, int32_t, LT_GGUF_TYPE_INT32)
SETTER(lt_gguf_writer_set_f32, float, LT_GGUF_TYPE_FLOAT32)
SETTER(lt_gguf_writer_set_u64, uint64_t, LT_GGUF_TYPE_UINT64)
SETTER(lt_gguf_writer_set_i64, int64_t, LT_GGUF_TYPE_INT64)
SETTER(lt_gguf_writer_set_f64, double, LT_GGUF_TYPE_FLOAT64)

lt_status lt_gguf_writer_set_bool(lt_gguf_writer *w, const char *key, bool v, lt_err *err) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, LT_GGUF_TYPE_BOOL, &b, err);
}

lt_status lt_gguf_writer_set_str(lt_gguf_writer *w, const char *key, const char *s, lt_err *err) {
    wkv v = {0};
    v.type = LT_GGUF_TYPE_STRING;
    v.str = lt_strdup(s ? s : "");
    if (!v.str) return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory setting '%s'", key);
    return put_kv(w, key, &v, err);
}

lt_status lt_gguf_writer_set_arr(lt_gguf_writer *w, const char *key, lt_gguf_type elem_type,
                                 const void *data, uint64_t n, lt_err *err) {
    if ((unsigned)elem_type >= LT_GGUF_TYPE_COUNT || elem_type == LT_GGUF_TYPE_STRING ||
        elem_type == LT_GGUF_TYPE_ARRAY)
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: '%s': element type %s is not a scalar",
                          key, lt_gguf_type_name(elem_type));
    size_t sz = type_size[elem_type], bytes;
    if (n > SIZE_MAX || !lt_mul_ok((size_t)n, sz, &bytes))
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: '%s': array too long", key);
    if (n && !data) return lt_err_set(err, LT_ERR_ARG, "gguf writer: '%s': no data", key);
    wkv v = {0};
    v.type = LT_GGUF_TYPE_ARRAY;
    v.elem = elem_type;
    v.raw = lt_alloc(bytes);
    if (!v.raw) return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory setting '%s'", key);
    const uint8_t *s = data;
    for (uint64_t i = 0; i < n; i++, s += sz) { // host order -> little-endian
        uint8_t *d = v.raw + i * sz;
        if (sz == 1)
            *d = elem_type == LT_GGUF_TYPE_BOOL ? (*s != 0) : *s;
        else if (sz == 2) {
            uint16_t x;
            memcpy(&x, s, 2);
            d[0] = (uint8_t)x;
            d[1] = (uint8_t)(x >> 8);
        } else if (sz == 4) {
            uint32_t x;
            memcpy(&x, s, 4);
            lt_io_put_le32(d, x);
        } else {
            uint64_t x;
            memcpy(&x, s, 8);
            lt_io_put_le64(d, x);
        }
    }
    v.n = n;
    return put_kv(w, key, &v, err);
}

lt_status lt_gguf_writer_set_arr_str(lt_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n, lt_err *err) {
    if (n > SIZE_MAX / sizeof(char *))
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: '%s': array too long", key);
    wkv v = {0};
    v.type = LT_GGUF_TYPE_ARRAY;
    v.elem = LT_GGUF_TYPE_STRING;
    v.strs = lt_calloc((size_t)(n ? n : 1), sizeof *v.strs);
    if (!v.strs) return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory setting '%s'", key);
    v.n = n;
    for (uint64_t i = 0; i < n; i++) {
        v.strs[i] = lt_strdup(strs[i] ? strs[i] : "");
        if (!v.strs[i]) {
            kv_clear(&v);
            return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory setting '%s'", key);
        }
    }
    return put_kv(w, key, &v, err);
}

lt_status lt_gguf_writer_add_tensor(lt_gguf_writer *w, const char *name, lt_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data, lt_err *err) {
    if (!name || !*name || strlen(name) >= LT_GGUF_MAX_NAME)
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor name '%s' must be 1..%d bytes",
                          name ? name : "(null)", LT_GGUF_MAX_NAME - 1);
    uint32_t gt;
    if (!lt_dtype_to_ggml(dtype, &gt))
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor '%s': dtype %s has no ggml type",
                          name, lt_dtype_name(dtype));
    if (ndim < 1 || ndim > LT_GGUF_MAX_DIMS)
        return lt_err_set(err, LT_ERR_ARG,
                          "gguf writer: tensor '%s': %d dimensions, expected 1..%d", name, ndim,
                          LT_GGUF_MAX_DIMS);
    int64_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || (shape[k] && numel > INT64_MAX / shape[k]))
            return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor '%s': bad dimension %d (%lld)",
                              name, k, (long long)shape[k]);
        numel *= shape[k];
    }
    int blck = lt_dtype_block(dtype);
    if (shape[ndim - 1] % blck)
        return lt_err_set(err, LT_ERR_ARG,
                          "gguf writer: tensor '%s': %s rows of %lld elements, expected a "
                          "multiple of %d",
                          name, lt_dtype_name(dtype), (long long)shape[ndim - 1], blck);
    size_t nbytes = lt_dtype_nbytes(dtype, numel);
    if (nbytes == 0 && numel)
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
    if (nbytes && !data)
        return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor '%s': no data", name);
    for (int i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return lt_err_set(err, LT_ERR_ARG, "gguf writer: tensor '%s' added twice", name);
    char *copy = lt_strdup(name);
    if (!copy || !grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        lt_free(copy);
        return lt_err_set(err, LT_ERR_OOM, "gguf writer: out of memory adding '%s'", name);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->ggml_type = gt;
    t->n_dims = ndim;
    for (int k = 0; k < LT_GGUF_MAX_DIMS; k++) t->ne[k] = k < ndim ? shape[ndim - 1 - k] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// output

typedef struct {
    FILE *f;
    uint64_t pos; // bytes written so far
} out;

static void put(out *o, const void *p, size_t n) {
    if (n) fwrite(p, 1, n, o->f); // errors surface through ferror at commit
    o->pos += n;
}
static void put32(out *o, uint32_t v) {
    uint8_t b[4];
    lt_io_put_le32(b, v);
    put(o, b, 4);
}
static void put64(out *o, uint64_t v) {
    uint8_t b[8];
    lt_io_put_le64(b, v);
    put(o, b, 8);
}
static void put_str(out *o, const char *s) {
    size_t n = strlen(s);
    put64(o, n);
    put(o, s, n);
}
static void put_pad(out *o, size_t align) {
    static const uint8_t zeros[256];
    size_t pad = (size_t)((align - o->pos % align) % align);
    while (pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        put(o, zeros, k);
        pad -= k;
    }
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

lt_status lt_gguf_writer_write(lt_gguf_writer *w, const char *path, lt_err *err) {
    size_t align = LT_GGUF_DEFAULT_ALIGNMENT;
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            uint64_t a = w->kv[i].bits;
            if (w->kv[i].type != LT_GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)))
                return lt_err_set(err, LT_ERR_ARG,
                                  "%s: general.alignment must be a u32 power of two", path);
            align = (size_t)a;
        }
    lt_afile a;
    lt_status st = lt_afile_open(&a, path, err);
    if (st) return st;
    out o = {a.f, 0};
    put32(&o, LT_GGUF_MAGIC);
    put32(&o, 3);
    put64(&o, (uint64_t)w->n_t);
    put64(&o, (uint64_t)w->n_kv);
    for (int i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        put_str(&o, kv->key);
        put32(&o, kv->type);
        if (kv->type == LT_GGUF_TYPE_STRING)
            put_str(&o, kv->str);
        else if (kv->type == LT_GGUF_TYPE_ARRAY) {
            put32(&o, kv->elem);
            put64(&o, kv->n);
            if (kv->elem == LT_GGUF_TYPE_STRING)
                for (uint64_t j = 0; j < kv->n; j++) put_str(&o, kv->strs[j]);
            else
                put(&o, kv->raw, (size_t)kv->n * type_size[kv->elem]);
        } else {
            uint8_t b[8];
            lt_io_put_le64(b, kv->bits);
            put(&o, b, type_size[kv->type]);
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&o, t->name);
        put32(&o, (uint32_t)t->n_dims);
        for (int k = 0; k < t->n_dims; k++) put64(&o, (uint64_t)t->ne[k]);
        put32(&o, t->ggml_type);
        put64(&o, off);
        off += pad_to(t->nbytes, align);
    }
    if (w->n_t) put_pad(&o, align); // ggml writes no padding when there is no data section
    for (int i = 0; i < w->n_t; i++) {
        put(&o, w->t[i].data, w->t[i].nbytes);
        put_pad(&o, align);
    }
    return lt_afile_commit(&a, err);
}
