/*
 * gguf.c - the GGUF reader: mmap the file, walk and validate the header (format in gguf.h),
 * keep key/value pairs and tensor infos, expose tensors as views into the mapping.
 *
 * Validation follows ggml/src/gguf.cpp (gguf_init_from_reader): counts checked against the bytes
 * left before anything is allocated, strings and arrays inside the file, duplicate keys and
 * tensor names, n_dims <= 4, non-negative dims whose product fits in int64, block-size rows,
 * byte sizes that fit in size_t, general.alignment a u32 power of two. Where ggml requires the
 * tensors to be packed in order (offset == running padded size), we require only what reading
 * needs: aligned offsets, data inside the data section, and no overlaps.
 * Strings (keys, values, tensor names) are copied once into one pool with NUL terminators, so
 * callers get C strings; array data of scalars stays in the mapping and is copied on request.
 */
#include "io/gguf.h"
#include "io/io.h"
#include "io/io_impl.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// type tables

static const char *const gguf_type_names[LT_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};
static const uint8_t gguf_type_size[LT_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lt_gguf_type_name(lt_gguf_type t) {
    return (unsigned)t < LT_GGUF_TYPE_COUNT ? gguf_type_names[t] : "?";
}

// ggml type traits (ggml.c type_traits: type_name, blck_size, type_size). Ids without a name
// were removed from ggml and are rejected.
typedef struct {
    const char *name;
    uint16_t blck;
    uint16_t size;
} ggml_traits;

static const ggml_traits ggml_types[] = {
    [0] = {"f32", 1, 4},         [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},      [6] = {"q5_0", 32, 22},      [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},      [9] = {"q8_1", 32, 36},      [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},   [12] = {"q4_K", 256, 144},   [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},   [15] = {"q8_K", 256, 292},   [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},  [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110},  [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},         [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},        [27] = {"i64", 1, 8},        [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},   [30] = {"bf16", 1, 2},       [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},   [39] = {"mxfp4", 32, 17},    [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof *ggml_types)

const char *lt_ggml_type_name(uint32_t t) { return t < N_GGML_TYPES ? ggml_types[t].name : NULL; }

static const struct {
    uint32_t ggml;
    lt_dtype dtype;
} dtype_map[] = {
    {LT_GGML_TYPE_F32, LT_DTYPE_F32},   {LT_GGML_TYPE_F16, LT_DTYPE_F16},
    {LT_GGML_TYPE_BF16, LT_DTYPE_BF16}, {LT_GGML_TYPE_Q8_0, LT_DTYPE_Q8_0},
    {LT_GGML_TYPE_Q4_0, LT_DTYPE_Q4_0}, {LT_GGML_TYPE_Q4_1, LT_DTYPE_Q4_1},
    {LT_GGML_TYPE_Q5_0, LT_DTYPE_Q5_0}, {LT_GGML_TYPE_Q5_1, LT_DTYPE_Q5_1},
    {LT_GGML_TYPE_Q2_K, LT_DTYPE_Q2_K}, {LT_GGML_TYPE_Q3_K, LT_DTYPE_Q3_K},
    {LT_GGML_TYPE_Q4_K, LT_DTYPE_Q4_K}, {LT_GGML_TYPE_Q5_K, LT_DTYPE_Q5_K},
    {LT_GGML_TYPE_Q6_K, LT_DTYPE_Q6_K},
    {LT_GGML_TYPE_F64, LT_DTYPE_F64},   {LT_GGML_TYPE_I8, LT_DTYPE_I8},
    {LT_GGML_TYPE_I16, LT_DTYPE_I16},   {LT_GGML_TYPE_I32, LT_DTYPE_I32},
    {LT_GGML_TYPE_I64, LT_DTYPE_I64},
};

bool lt_ggml_to_dtype(uint32_t ggml_type, lt_dtype *out) {
    for (size_t i = 0; i < sizeof dtype_map / sizeof *dtype_map; i++)
        if (dtype_map[i].ggml == ggml_type) {
            *out = dtype_map[i].dtype;
            return true;
        }
    return false;
}

bool lt_dtype_to_ggml(lt_dtype t, uint32_t *out) {
    for (size_t i = 0; i < sizeof dtype_map / sizeof *dtype_map; i++)
        if (dtype_map[i].dtype == t) {
            *out = dtype_map[i].ggml;
            return true;
        }
    return false;
}

// ---------------------------------------------------------------------------------------------
// the parsed file

typedef struct {
    const char *s; // into the mapping while parsing, into the pool afterwards
    uint64_t len;
} gstr;

struct lt_gguf_value {
    uint32_t type;
    union {
        uint64_t bits; // scalars, little-endian decoded and zero-extended
        gstr str;
        struct {
            uint32_t elem;
            uint64_t n;
            const uint8_t *raw;  // scalar elements, in the mapping
            gstr *strs;          // (n) for STRING elements
            lt_gguf_value *vals; // (n) for ARRAY elements
        } arr;
    };
};

typedef struct {
    gstr key;
    lt_gguf_value v;
} gkv;

struct lt_gguf {
    char *path;
    lt_io_map map;
    bool owns_map;
    uint32_t version;
    size_t alignment, data_off, data_size;
    int64_t n_kv;
    gkv *kv; // (n_kv)
    int64_t n_tensors;
    lt_gguf_tensor *tensors; // (n_tensors)
    gstr *tensor_names;      // (n_tensors) while parsing
    char *pool;              // every string, NUL-terminated
    size_t pool_size, pool_used;
    lt_io_index kv_index, tensor_index;
};

typedef struct {
    lt_gguf *g;
    const uint8_t *p;
    size_t n, pos;
    lt_err *err;
} rd;

// ---------------------------------------------------------------------------------------------
// reading primitives

static size_t left(const rd *r) { return r->n - r->pos; }

static lt_status truncated(rd *r, size_t need, const char *what, const gstr *ctx) {
    if (ctx)
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: truncated: '%.*s': %s needs %zu bytes at offset %zu, %zu left",
                          r->g->path, (int)(ctx->len > 64 ? 64 : ctx->len), ctx->s, what, need,
                          r->pos, left(r));
    return lt_err_set(r->err, LT_ERR_FORMAT,
                      "%s: truncated: %s needs %zu bytes at offset %zu, %zu left", r->g->path, what,
                      need, r->pos, left(r));
}

static lt_status rd_u32(rd *r, uint32_t *v, const char *what, const gstr *ctx) {
    if (left(r) < 4) return truncated(r, 4, what, ctx);
    *v = lt_io_le32(r->p + r->pos);
    r->pos += 4;
    return LT_OK;
}

static lt_status rd_u64(rd *r, uint64_t *v, const char *what, const gstr *ctx) {
    if (left(r) < 8) return truncated(r, 8, what, ctx);
    *v = lt_io_le64(r->p + r->pos);
    r->pos += 8;
    return LT_OK;
}

static lt_status rd_str(rd *r, gstr *s, const char *what, const gstr *ctx) {
    uint64_t len = 0;
    lt_status st = rd_u64(r, &len, what, ctx);
    if (st) return st;
    if (len > left(r))
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: %s at offset %zu has length %llu, but only %zu bytes are left",
                          r->g->path, what, r->pos - 8, (unsigned long long)len, left(r));
    s->s = (const char *)r->p + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    // room in the pool for it and its NUL; cannot overflow: bounded by the file size plus one
    // byte per 8-byte length field
    r->g->pool_size += (size_t)len + 1;
    return LT_OK;
}

// minimum encoded size of one element of type t (bounds counts before allocating)
static size_t min_size(uint32_t t) {
    if (t == LT_GGUF_TYPE_STRING) return 8;
    if (t == LT_GGUF_TYPE_ARRAY) return 12;
    return gguf_type_size[t];
}

static lt_status read_value(rd *r, uint32_t type, lt_gguf_value *v, int depth, const gstr *key) {
    lt_status st;
    lt_gguf *g = r->g;
    v->type = type;
    if (type == LT_GGUF_TYPE_STRING) return rd_str(r, &v->str, "a string value", key);
    if (type != LT_GGUF_TYPE_ARRAY) {
        size_t sz = gguf_type_size[type];
        if (left(r) < sz) return truncated(r, sz, gguf_type_names[type], key);
        uint64_t bits = 0;
        for (size_t i = 0; i < sz; i++) bits |= (uint64_t)r->p[r->pos + i] << (8 * i);
        if (type == LT_GGUF_TYPE_BOOL) bits = bits != 0; // as ggml: any non-zero byte is true
        v->bits = bits;
        r->pos += sz;
        return LT_OK;
    }
    if (depth >= LT_GGUF_MAX_DEPTH)
        return lt_err_set(r->err, LT_ERR_FORMAT, "%s: key '%.*s': arrays nested deeper than %d",
                          g->path, (int)(key->len > 64 ? 64 : key->len), key->s, LT_GGUF_MAX_DEPTH);
    uint32_t elem = 0;
    uint64_t n = 0;
    if ((st = rd_u32(r, &elem, "an array element type", key))) return st;
    if (elem >= LT_GGUF_TYPE_COUNT)
        return lt_err_set(
            r->err, LT_ERR_FORMAT, "%s: key '%.*s': array element type %u, expected 0..%d", g->path,
            (int)(key->len > 64 ? 64 : key->len), key->s, elem, LT_GGUF_TYPE_COUNT - 1);
    if ((st = rd_u64(r, &n, "an array length", key))) return st;
    size_t ms = min_size(elem);
    if (n > left(r) / ms)
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: key '%.*s': an array of %llu %s cannot fit in the %zu bytes left",
                          g->path, (int)(key->len > 64 ? 64 : key->len), key->s,
                          (unsigned long long)n, gguf_type_names[elem], left(r));
    v->arr.elem = elem;
    if (elem == LT_GGUF_TYPE_STRING) {
        v->arr.strs = lt_calloc((size_t)(n ? n : 1), sizeof *v->arr.strs);
        if (!v->arr.strs) goto oom;
        v->arr.n = n;
        for (uint64_t i = 0; i < n; i++)
            if ((st = rd_str(r, &v->arr.strs[i], "an array string", key))) return st;
    } else if (elem == LT_GGUF_TYPE_ARRAY) {
        v->arr.vals = lt_calloc((size_t)(n ? n : 1), sizeof *v->arr.vals);
        if (!v->arr.vals) goto oom;
        v->arr.n = n;
        for (uint64_t i = 0; i < n; i++)
            if ((st = read_value(r, LT_GGUF_TYPE_ARRAY, &v->arr.vals[i], depth + 1, key)))
                return st;
    } else {
        v->arr.raw = r->p + r->pos;
        v->arr.n = n;
        r->pos += (size_t)n * ms; // fits: checked against left(r) above
    }
    return LT_OK;
oom:
    return lt_err_set(r->err, LT_ERR_OOM, "%s: key '%.*s': out of memory for an array of %llu",
                      g->path, (int)(key->len > 64 ? 64 : key->len), key->s, (unsigned long long)n);
}

static void free_value(lt_gguf_value *v) {
    if (v->type != LT_GGUF_TYPE_ARRAY) return;
    if (v->arr.vals)
        for (uint64_t i = 0; i < v->arr.n; i++) free_value(&v->arr.vals[i]);
    lt_free(v->arr.vals);
    lt_free(v->arr.strs);
    v->arr.vals = NULL;
    v->arr.strs = NULL;
}

// copies a string into the pool and points s at the copy
static void relocate_str(lt_gguf *g, gstr *s) {
    LT_ASSERT(g->pool_used + s->len + 1 <= g->pool_size);
    char *d = g->pool + g->pool_used;
    if (s->len) memcpy(d, s->s, (size_t)s->len);
    d[s->len] = 0;
    g->pool_used += (size_t)s->len + 1;
    s->s = d;
}

static void relocate_value(lt_gguf *g, lt_gguf_value *v) {
    if (v->type == LT_GGUF_TYPE_STRING) relocate_str(g, &v->str);
    if (v->type != LT_GGUF_TYPE_ARRAY) return;
    if (v->arr.elem == LT_GGUF_TYPE_STRING)
        for (uint64_t i = 0; i < v->arr.n; i++) relocate_str(g, &v->arr.strs[i]);
    if (v->arr.elem == LT_GGUF_TYPE_ARRAY)
        for (uint64_t i = 0; i < v->arr.n; i++) relocate_value(g, &v->arr.vals[i]);
}

// ---------------------------------------------------------------------------------------------
// header

static lt_status read_kvs(rd *r, uint64_t n_kv) {
    lt_gguf *g = r->g;
    lt_status st;
    g->kv = lt_calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    if (!g->kv)
        return lt_err_set(r->err, LT_ERR_OOM, "%s: out of memory for %llu key/value pairs", g->path,
                          (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        gkv *kv = &g->kv[i];
        if ((st = rd_str(r, &kv->key, "a key", NULL))) return st;
        g->n_kv = (int64_t)i + 1; // from here on kv[i] is released by close
        if (kv->key.len == 0)
            return lt_err_set(r->err, LT_ERR_FORMAT, "%s: key %llu is empty", g->path,
                              (unsigned long long)i);
        if (memchr(kv->key.s, 0, (size_t)kv->key.len))
            return lt_err_set(r->err, LT_ERR_FORMAT, "%s: key %llu ('%s...') contains a NUL byte",
                              g->path, (unsigned long long)i, kv->key.s);
        uint32_t type = 0;
        if ((st = rd_u32(r, &type, "a value type", &kv->key))) return st;
        if (type >= LT_GGUF_TYPE_COUNT)
            return lt_err_set(r->err, LT_ERR_FORMAT,
                              "%s: key '%.*s' has value type %u, expected 0..%d", g->path,
                              (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.s, type,
                              LT_GGUF_TYPE_COUNT - 1);
        if ((st = read_value(r, type, &kv->v, 0, &kv->key))) return st;
    }
    return LT_OK;
}

static const gkv *find_raw_key(const lt_gguf *g, const char *key) {
    size_t n = strlen(key);
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key.len == n && memcmp(g->kv[i].key.s, key, n) == 0) return &g->kv[i];
    return NULL;
}

static lt_status read_tensor_info(rd *r, int64_t i) {
    lt_gguf *g = r->g;
    lt_gguf_tensor *t = &g->tensors[i];
    gstr *name = &g->tensor_names[i];
    lt_status st;
    if ((st = rd_str(r, name, "a tensor name", NULL))) return st;
    const char *p = g->path;
    int nl = (int)(name->len > 64 ? 64 : name->len);
    if (name->len == 0)
        return lt_err_set(r->err, LT_ERR_FORMAT, "%s: tensor %lld has an empty name", p,
                          (long long)i);
    if (name->len >= LT_GGUF_MAX_NAME)
        return lt_err_set(
            r->err, LT_ERR_FORMAT, "%s: tensor %lld name '%.*s...' is %llu bytes, expected < %d", p,
            (long long)i, 32, name->s, (unsigned long long)name->len, LT_GGUF_MAX_NAME);
    if (memchr(name->s, 0, (size_t)name->len))
        return lt_err_set(r->err, LT_ERR_FORMAT, "%s: tensor %lld name contains a NUL byte", p,
                          (long long)i);
    uint32_t n_dims = 0;
    if ((st = rd_u32(r, &n_dims, "n_dims", name))) return st;
    if (n_dims > LT_GGUF_MAX_DIMS)
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: tensor '%.*s' has %u dimensions, expected at most %d", p, nl,
                          name->s, n_dims, LT_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    int64_t numel = 1;
    for (int j = 0; j < LT_GGUF_MAX_DIMS; j++) {
        t->ne[j] = 1;
        if (j >= (int)n_dims) continue;
        uint64_t d = 0;
        if ((st = rd_u64(r, &d, "a dimension", name))) return st;
        if (d > (uint64_t)INT64_MAX)
            return lt_err_set(r->err, LT_ERR_FORMAT,
                              "%s: tensor '%.*s' dimension %d is %lld, expected >= 0", p, nl,
                              name->s, j, (long long)d);
        t->ne[j] = (int64_t)d;
        if (d && numel > INT64_MAX / (int64_t)d)
            return lt_err_set(r->err, LT_ERR_FORMAT,
                              "%s: tensor '%.*s': element count overflows int64 at dimension %d", p,
                              nl, name->s, j);
        numel *= (int64_t)d;
    }
    for (int j = 0; j < (int)n_dims; j++) t->shape[j] = t->ne[n_dims - 1 - (unsigned)j];
    for (int j = (int)n_dims; j < LT_GGUF_MAX_DIMS; j++) t->shape[j] = 1;
    t->numel = numel;
    uint32_t type = 0;
    if ((st = rd_u32(r, &type, "a tensor type", name))) return st;
    if (type >= N_GGML_TYPES || !ggml_types[type].name)
        return lt_err_set(r->err, LT_ERR_FORMAT, "%s: tensor '%.*s' has unknown ggml type %u", p,
                          nl, name->s, type);
    const ggml_traits *tt = &ggml_types[type];
    if (t->ne[0] % tt->blck)
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: tensor '%.*s' of type %s has %lld elements per row, expected a "
                          "multiple of the block size %u",
                          p, nl, name->s, tt->name, (long long)t->ne[0], tt->blck);
    size_t nbytes;
    if (!lt_mul_ok((size_t)(numel / tt->blck), tt->size, &nbytes))
        return lt_err_set(r->err, LT_ERR_FORMAT, "%s: tensor '%.*s': byte size overflows", p, nl,
                          name->s);
    t->ggml_type = type;
    if (!lt_ggml_to_dtype(type, &t->dtype)) t->dtype = LT_DTYPE_COUNT;
    t->nbytes = nbytes;
    if ((st = rd_u64(r, &t->offset, "a tensor offset", name))) return st;
    if (t->offset % g->alignment)
        return lt_err_set(r->err, LT_ERR_FORMAT,
                          "%s: tensor '%.*s' offset %llu is not a multiple of the alignment %zu", p,
                          nl, name->s, (unsigned long long)t->offset, g->alignment);
    return LT_OK;
}

typedef struct {
    uint64_t off;
    int64_t i;
} span;

static int span_cmp(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->off != b->off) return a->off < b->off ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static lt_status check_tensor_data(lt_gguf *g, lt_err *err) {
    span *sp = lt_calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *sp);
    if (!sp) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", g->path);
    lt_status st = LT_OK;
    int64_t m = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lt_gguf_tensor *t = &g->tensors[i];
        if (t->offset > g->data_size || t->nbytes > g->data_size - t->offset) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tensor '%s' data [%llu, +%zu) lies outside the data section of "
                            "%zu bytes (truncated file?)",
                            g->path, t->name, (unsigned long long)t->offset, t->nbytes,
                            g->data_size);
            goto done;
        }
        t->data = g->map.data + g->data_off + t->offset;
        if (t->nbytes) sp[m++] = (span){t->offset, i};
    }
    qsort(sp, (size_t)m, sizeof *sp, span_cmp);
    for (int64_t k = 1; k < m; k++) {
        const lt_gguf_tensor *a = &g->tensors[sp[k - 1].i], *b = &g->tensors[sp[k].i];
        if (b->offset < a->offset + a->nbytes) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tensors '%s' and '%s' overlap in the data section", g->path,
                            a->name, b->name);
            goto done;
        }
    }
done:
    lt_free(sp);
    return st;
}

static lt_status parse(lt_gguf *g, lt_err *err) {
    rd r = {g, g->map.data, g->map.size, 0, err};
    lt_status st;
    const char *p = g->path;
    if (r.n < 4)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: file is %zu bytes, too short for a GGUF header",
                          p, r.n);
    uint32_t magic = lt_io_le32(r.p);
    if (magic != LT_GGUF_MAGIC) {
        char m[5];
        for (int i = 0; i < 4; i++) m[i] = (r.p[i] >= 0x20 && r.p[i] < 0x7f) ? (char)r.p[i] : '?';
        m[4] = 0;
        return lt_err_set(err, LT_ERR_FORMAT, "%s: magic is '%s' (0x%08x), expected 'GGUF'", p, m,
                          magic);
    }
    r.pos = 4;
    if ((st = rd_u32(&r, &g->version, "the version", NULL))) return st;
    if (g->version == 0)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: GGUF version 0, expected 2 or 3", p);
    if ((g->version & 0xffff) == 0)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: GGUF version 0x%08x looks byte-swapped: big-endian files are not "
                          "supported",
                          p, g->version);
    if (g->version == 1 || g->version > 3)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: GGUF version %u, expected 2 or 3", p,
                          g->version);
    uint64_t n_tensors = 0, n_kv = 0;
    if ((st = rd_u64(&r, &n_tensors, "the tensor count", NULL))) return st;
    if ((st = rd_u64(&r, &n_kv, "the key/value count", NULL))) return st;
    // smallest key/value: 8 (length) + 1 (key) + 4 (type) + 1 (u8); tensor info: 8 + 1 + 4 + 4 + 8
    if (n_kv > left(&r) / 14)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: %llu key/value pairs cannot fit in the %zu bytes left", p,
                          (unsigned long long)n_kv, left(&r));
    if (n_tensors > left(&r) / 25)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: %llu tensors cannot fit in the %zu bytes left",
                          p, (unsigned long long)n_tensors, left(&r));
    if ((st = read_kvs(&r, n_kv))) return st;

    g->alignment = LT_GGUF_DEFAULT_ALIGNMENT;
    const gkv *al = find_raw_key(g, "general.alignment");
    if (al) {
        if (al->v.type != LT_GGUF_TYPE_UINT32)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: key 'general.alignment' is %s, expected u32",
                              p, gguf_type_names[al->v.type]);
        uint64_t a = al->v.bits;
        if (a == 0 || (a & (a - 1)))
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: general.alignment is %llu, expected a power of two", p,
                              (unsigned long long)a);
        g->alignment = (size_t)a;
    }

    g->tensors = lt_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    g->tensor_names = lt_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensor_names);
    if (!g->tensors || !g->tensor_names)
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory for %llu tensors", p,
                          (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((st = read_tensor_info(&r, (int64_t)i))) return st;
        g->n_tensors = (int64_t)i + 1;
    }

    // data section: after the infos, padded to the alignment. A file without tensors may end
    // before the padding (ggml writes none in that case).
    size_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    if (pad > left(&r)) {
        if (n_tensors)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: data section would start at %zu, past the end of the file "
                              "(%zu bytes)",
                              p, r.pos + pad, r.n);
        pad = left(&r);
    }
    g->data_off = r.pos + pad;
    g->data_size = r.n - g->data_off;

    // strings into the pool, then the name indexes (which need NUL-terminated names)
    g->pool = lt_alloc(g->pool_size ? g->pool_size : 1);
    if (!g->pool)
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory for %zu bytes of strings", p,
                          g->pool_size);
    for (int64_t i = 0; i < g->n_kv; i++) {
        relocate_str(g, &g->kv[i].key);
        relocate_value(g, &g->kv[i].v);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        relocate_str(g, &g->tensor_names[i]);
        g->tensors[i].name = g->tensor_names[i].s;
    }
    if ((st = lt_io_index_init(&g->kv_index, (size_t)g->n_kv, err)) ||
        (st = lt_io_index_init(&g->tensor_index, (size_t)g->n_tensors, err))) {
        lt_err_wrap(err, "%s", p);
        return st;
    }
    for (int64_t i = 0; i < g->n_kv; i++)
        if (lt_io_index_add(&g->kv_index, g->kv[i].key.s) >= 0)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' appears twice", p, g->kv[i].key.s);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (lt_io_index_add(&g->tensor_index, g->tensors[i].name) >= 0)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s' appears twice", p,
                              g->tensors[i].name);
    return check_tensor_data(g, err);
}

// ---------------------------------------------------------------------------------------------
// open / close

void lt_gguf_close(lt_gguf *g) {
    if (!g) return;
    lt_io_index_deinit(&g->kv_index);
    lt_io_index_deinit(&g->tensor_index);
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) free_value(&g->kv[i].v);
    lt_free(g->kv);
    lt_free(g->tensors);
    lt_free(g->tensor_names);
    lt_free(g->pool);
    if (g->owns_map) lt_io_unmap(&g->map);
    lt_free(g->path);
    lt_free(g);
}

static lt_status gguf_open(const char *path, const void *mem, size_t n, lt_gguf **out,
                           lt_err *err) {
    lt_status st;
    lt_gguf *g = lt_calloc(1, sizeof *g);
    if (!g) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
    g->path = lt_strdup(path);
    if (!g->path) {
        st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
        goto fail;
    }
    if (mem) {
        g->map.data = mem;
        g->map.size = n;
    } else {
        if ((st = lt_io_map_file(path, &g->map, err))) goto fail;
        g->owns_map = true;
    }
    if ((st = parse(g, err))) goto fail;
    lt_free(g->tensor_names); // names now live in the pool
    g->tensor_names = NULL;
    *out = g;
    return LT_OK;
fail:
    lt_gguf_close(g);
    return st;
}

lt_status lt_gguf_open(const char *path, lt_gguf **out, lt_err *err) {
    return gguf_open(path, NULL, 0, out, err);
}

lt_status lt_gguf_open_mem(const void *data, size_t n, const char *name, lt_gguf **out,
                           lt_err *err) {
    static const uint8_t empty[1];
    return gguf_open(name ? name : "<memory>", data ? data : empty, data ? n : 0, out, err);
}

const char *lt_gguf_path(const lt_gguf *g) { return g->path; }
uint32_t lt_gguf_version(const lt_gguf *g) { return g->version; }
size_t lt_gguf_alignment(const lt_gguf *g) { return g->alignment; }
size_t lt_gguf_data_offset(const lt_gguf *g) { return g->data_off; }

// ---------------------------------------------------------------------------------------------
// key/value access

int64_t lt_gguf_kv_count(const lt_gguf *g) { return g->n_kv; }

const char *lt_gguf_kv_key(const lt_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].key.s : NULL;
}

lt_gguf_type lt_gguf_kv_type(const lt_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? (lt_gguf_type)g->kv[i].v.type : LT_GGUF_TYPE_COUNT;
}

int64_t lt_gguf_find_key(const lt_gguf *g, const char *key) {
    return lt_io_index_find(&g->kv_index, key);
}

const lt_gguf_value *lt_gguf_get_value(const lt_gguf *g, const char *key) {
    long i = lt_io_index_find(&g->kv_index, key);
    return i >= 0 ? &g->kv[i].v : NULL;
}

static void type_str(const lt_gguf_value *v, char *buf, size_t n) {
    if (v->type == LT_GGUF_TYPE_ARRAY)
        snprintf(buf, n, "arr[%s, %llu]", gguf_type_names[v->arr.elem],
                 (unsigned long long)v->arr.n);
    else
        snprintf(buf, n, "%s", gguf_type_names[v->type]);
}

// Finds key; checks its type is `type` (any when type == LT_GGUF_TYPE_COUNT).
static lt_status get_kv(const lt_gguf *g, const char *key, lt_gguf_type type,
                        const lt_gguf_value **out, lt_err *err) {
    const lt_gguf_value *v = lt_gguf_get_value(g, key);
    if (!v) return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' not found", g->path, key);
    if (type != LT_GGUF_TYPE_COUNT && v->type != (uint32_t)type) {
        char found[48];
        type_str(v, found, sizeof found);
        return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' is %s, expected %s", g->path, key,
                          found, gguf_type_names[type]);
    }
    *out = v;
    return LT_OK;
}

lt_status lt_gguf_get_u32(const lt_gguf *g, const char *key, uint32_t *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_UINT32, &v, err);
    if (!st) *out = (uint32_t)v->bits;
    return st;
}

lt_status lt_gguf_get_i32(const lt_gguf *g, const char *key, int32_t *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_INT32, &v, err);
    if (!st) {
        uint32_t u = (uint32_t)v->bits;
        int32_t i;
        memcpy(&i, &u, 4);
        *out = i;
    }
    return st;
}

lt_status lt_gguf_get_f32(const lt_gguf *g, const char *key, float *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_FLOAT32, &v, err);
    if (!st) {
        uint32_t u = (uint32_t)v->bits;
        float f;
        memcpy(&f, &u, 4);
        *out = f;
    }
    return st;
}

lt_status lt_gguf_get_bool(const lt_gguf *g, const char *key, bool *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_BOOL, &v, err);
    if (!st) *out = v->bits != 0;
    return st;
}

lt_status lt_gguf_get_str(const lt_gguf *g, const char *key, const char **out, size_t *len,
                          lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_STRING, &v, err);
    if (!st) {
        *out = v->str.s;
        if (len) *len = (size_t)v->str.len;
    }
    return st;
}

// sign-extends the low `bytes` bytes of bits
static int64_t sext(uint64_t bits, int bytes) {
    int sh = 64 - 8 * bytes;
    uint64_t u = bits << sh;
    int64_t i;
    memcpy(&i, &u, 8);
    return i >> sh; // arithmetic shift on every compiler loratune supports (gcc, clang)
}

lt_status lt_gguf_get_int(const lt_gguf *g, const char *key, int64_t *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_COUNT, &v, err);
    if (st) return st;
    switch (v->type) {
    case LT_GGUF_TYPE_UINT8:
    case LT_GGUF_TYPE_UINT16:
    case LT_GGUF_TYPE_UINT32: *out = (int64_t)v->bits; return LT_OK;
    case LT_GGUF_TYPE_UINT64:
        if (v->bits > (uint64_t)INT64_MAX) break;
        *out = (int64_t)v->bits;
        return LT_OK;
    case LT_GGUF_TYPE_INT8: *out = sext(v->bits, 1); return LT_OK;
    case LT_GGUF_TYPE_INT16: *out = sext(v->bits, 2); return LT_OK;
    case LT_GGUF_TYPE_INT32: *out = sext(v->bits, 4); return LT_OK;
    case LT_GGUF_TYPE_INT64: *out = sext(v->bits, 8); return LT_OK;
    default: break;
    }
    char found[48];
    type_str(v, found, sizeof found);
    if (v->type == LT_GGUF_TYPE_UINT64)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' is %llu, expected at most INT64_MAX",
                          g->path, key, (unsigned long long)v->bits);
    return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' is %s, expected an integer", g->path, key,
                      found);
}

lt_status lt_gguf_get_float(const lt_gguf *g, const char *key, double *out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_COUNT, &v, err);
    if (st) return st;
    if (v->type == LT_GGUF_TYPE_FLOAT32) {
        uint32_t u = (uint32_t)v->bits;
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return LT_OK;
    }
    if (v->type == LT_GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, &v->bits, 8);
        *out = d;
        return LT_OK;
    }
    char found[48];
    type_str(v, found, sizeof found);
    return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' is %s, expected f32 or f64", g->path, key,
                      found);
}

lt_status lt_gguf_get_arr_info(const lt_gguf *g, const char *key, lt_gguf_type *elem_type,
                               uint64_t *n, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_ARRAY, &v, err);
    if (st) return st;
    if (elem_type) *elem_type = (lt_gguf_type)v->arr.elem;
    if (n) *n = v->arr.n;
    return LT_OK;
}

static lt_status get_arr(const lt_gguf *g, const char *key, lt_gguf_type elem,
                         const lt_gguf_value **out, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_kv(g, key, LT_GGUF_TYPE_ARRAY, &v, err);
    if (st) return st;
    if (v->arr.elem != (uint32_t)elem)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s",
                          g->path, key, gguf_type_names[v->arr.elem], gguf_type_names[elem]);
    *out = v;
    return LT_OK;
}

lt_status lt_gguf_get_arr_str(const lt_gguf *g, const char *key, uint64_t i, const char **out,
                              size_t *len, lt_err *err) {
    const lt_gguf_value *v = NULL;
    lt_status st = get_arr(g, key, LT_GGUF_TYPE_STRING, &v, err);
    if (st) return st;
    if (i >= v->arr.n)
        return lt_err_set(err, LT_ERR_ARG, "%s: key '%s': index %llu, array has %llu strings",
                          g->path, key, (unsigned long long)i, (unsigned long long)v->arr.n);
    *out = v->arr.strs[i].s;
    if (len) *len = (size_t)v->arr.strs[i].len;
    return LT_OK;
}

lt_status lt_gguf_get_arr_data(const lt_gguf *g, const char *key, lt_gguf_type elem_type, void *dst,
                               uint64_t n, lt_err *err) {
    if ((unsigned)elem_type >= LT_GGUF_TYPE_COUNT || elem_type == LT_GGUF_TYPE_STRING ||
        elem_type == LT_GGUF_TYPE_ARRAY)
        return lt_err_set(err, LT_ERR_ARG, "%s: key '%s': %s is not a scalar element type", g->path,
                          key, lt_gguf_type_name(elem_type));
    const lt_gguf_value *v = NULL;
    lt_status st = get_arr(g, key, elem_type, &v, err);
    if (st) return st;
    if (n > v->arr.n)
        return lt_err_set(err, LT_ERR_ARG, "%s: key '%s': %llu elements requested, array has %llu",
                          g->path, key, (unsigned long long)n, (unsigned long long)v->arr.n);
    size_t sz = gguf_type_size[elem_type];
    uint8_t *d = dst;
    const uint8_t *s = v->arr.raw;
    // the file is little-endian; decode each element so that big-endian hosts get host order
    for (uint64_t i = 0; i < n; i++, s += sz, d += sz) {
        if (sz == 1)
            *d = elem_type == LT_GGUF_TYPE_BOOL ? (*s != 0) : *s;
        else if (sz == 2) {
            uint16_t x = (uint16_t)(s[0] | s[1] << 8);
            memcpy(d, &x, 2);
        } else if (sz == 4) {
            uint32_t x = lt_io_le32(s);
            memcpy(d, &x, 4);
        } else {
            uint64_t x = lt_io_le64(s);
            memcpy(d, &x, 8);
        }
    }
    return LT_OK;
}

lt_gguf_type lt_gguf_value_type(const lt_gguf_value *v) {
    return v ? (lt_gguf_type)v->type : LT_GGUF_TYPE_COUNT;
}

lt_gguf_type lt_gguf_arr_type(const lt_gguf_value *v) {
    return v && v->type == LT_GGUF_TYPE_ARRAY ? (lt_gguf_type)v->arr.elem : LT_GGUF_TYPE_COUNT;
}

uint64_t lt_gguf_arr_len(const lt_gguf_value *v) {
    return v && v->type == LT_GGUF_TYPE_ARRAY ? v->arr.n : 0;
}

const lt_gguf_value *lt_gguf_arr_at(const lt_gguf_value *v, uint64_t i) {
    if (!v || v->type != LT_GGUF_TYPE_ARRAY || v->arr.elem != LT_GGUF_TYPE_ARRAY || i >= v->arr.n)
        return NULL;
    return &v->arr.vals[i];
}

// ---------------------------------------------------------------------------------------------
// tensors

int64_t lt_gguf_tensor_count(const lt_gguf *g) { return g->n_tensors; }

const lt_gguf_tensor *lt_gguf_tensor_at(const lt_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const lt_gguf_tensor *lt_gguf_find_tensor(const lt_gguf *g, const char *name) {
    long i = lt_io_index_find(&g->tensor_index, name);
    return i >= 0 ? &g->tensors[i] : NULL;
}

lt_status lt_gguf_get_tensor(const lt_gguf *g, const char *name, const lt_gguf_tensor **out,
                             lt_err *err) {
    const lt_gguf_tensor *t = lt_gguf_find_tensor(g, name);
    if (!t) return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s' not found", g->path, name);
    if (t->dtype == LT_DTYPE_COUNT)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has ggml type %s (%u); supported: f32, f16, bf16, "
                          "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K",
                          g->path, name, ggml_types[t->ggml_type].name, t->ggml_type);
    *out = t;
    return LT_OK;
}
