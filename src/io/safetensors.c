/*
 * safetensors.c - the safetensors reader (mmap + full header validation) and lt_st_set, the
 * weights of a Hugging Face model directory (one file, or shards listed in
 * model.safetensors.index.json).
 *
 * Validation follows the reference implementation (huggingface/safetensors, tensor.rs): header
 * length inside the file and below 100 MB, UTF-8 JSON object, known dtype, shape of
 * non-negative integers, overflow-checked element and byte counts, offsets inside the data area
 * with e - b == nbytes, no two tensors overlapping, __metadata__ a map of strings. Unlike the
 * reference we accept unused gaps between tensors (the reader never looks at them).
 * Not done here: any conversion of the data (tensors are views into the mapping).
 * Alignment: `data` is aligned only as far as the file's offsets are; the mapping starts on a
 * page and the header length is normally a multiple of 8, but tensor offsets need not be.
 */
#include "io/io.h"
#include "io/io_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000ull // same cap as the reference implementation
#define ST_MAX_NDIM 8
#define JSON_MAX_EXACT 9007199254740992.0 // 2^53: larger JSON numbers are not exact doubles

struct lt_safetensors {
    char *path;
    lt_io_map map; // the whole file (or a borrowed buffer for _open_mem)
    bool owns_map;
    cJSON *header;       // kept alive: tensor names and metadata strings point into it
    const cJSON *meta;   // the "__metadata__" object or NULL
    const uint8_t *data; // start of the byte buffer (after the header)
    size_t data_size;
    int n;
    lt_st_tensor *tensors; // (n) in header order
    lt_io_index index;     // name -> tensor
};

// safetensors dtype names; the quantised lt dtypes (Q8_0, ...) are not safetensors dtypes.
static const struct {
    const char *name;
    lt_dtype dtype;
    bool supported;
} st_dtypes[] = {
    {"F32", LT_DTYPE_F32, true},
    {"F16", LT_DTYPE_F16, true},
    {"BF16", LT_DTYPE_BF16, true},
    {"F64", LT_DTYPE_F64, true},
    {"I64", LT_DTYPE_I64, true},
    {"I32", LT_DTYPE_I32, true},
    {"I16", LT_DTYPE_I16, true},
    {"I8", LT_DTYPE_I8, true},
    {"U8", LT_DTYPE_U8, true},
    {"BOOL", LT_DTYPE_BOOL, true},
    // valid safetensors dtypes that loratune does not handle
    {"U16", LT_DTYPE_COUNT, false},
    {"U32", LT_DTYPE_COUNT, false},
    {"U64", LT_DTYPE_COUNT, false},
    {"F8_E4M3", LT_DTYPE_COUNT, false},
    {"F8_E5M2", LT_DTYPE_COUNT, false},
    {"F8_E8M0", LT_DTYPE_COUNT, false},
    {"F4", LT_DTYPE_COUNT, false},
    {"F6_E2M3", LT_DTYPE_COUNT, false},
    {"F6_E3M2", LT_DTYPE_COUNT, false},
    {"C64", LT_DTYPE_COUNT, false},
};

bool lt_st_dtype_ok(lt_dtype t) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (st_dtypes[i].supported && st_dtypes[i].dtype == t) return true;
    return false;
}

// ---------------------------------------------------------------------------------------------
// header validation

// Reads a JSON number that must be an integer in [0, 2^53].
static bool json_uint(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return false;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= JSON_MAX_EXACT) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static lt_status parse_entry(lt_safetensors *st, const cJSON *e, lt_st_tensor *t, uint64_t *b,
                             lt_err *err) {
    const char *path = st->path, *name = e->string;
    if (!cJSON_IsObject(e))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s': entry is %s, expected an object",
                          path, name, lt_json_type_name(e));
    // dtype
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(jd))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is %s, expected a string",
                          path, name, lt_json_type_name(jd));
    size_t di = 0, nd = sizeof st_dtypes / sizeof *st_dtypes;
    while (di < nd && strcmp(st_dtypes[di].name, jd->valuestring) != 0) di++;
    if (di == nd)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': unknown dtype \"%.32s\", expected F32, F16, BF16, ...",
                          path, name, jd->valuestring);
    if (!st_dtypes[di].supported)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported",
                          path, name, st_dtypes[di].name);
    t->dtype = st_dtypes[di].dtype;
    // shape
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(js))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s': \"shape\" is %s, expected an array",
                          path, name, lt_json_type_name(js));
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_NDIM)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s': %d dimensions, expected at most %d",
                          path, name, ndim, ST_MAX_NDIM);
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v)) {
            if (cJSON_IsNumber(d))
                return lt_err_set(err, LT_ERR_FORMAT,
                                  "%s: tensor '%s': dimension %d is %g, expected an integer in "
                                  "[0, 2^53]",
                                  path, name, k, d->valuedouble);
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: tensor '%s': dimension %d is %s, expected an integer", path,
                              name, k, lt_json_type_name(d));
        }
        t->shape[k] = (int64_t)v;
        if (v && numel > (uint64_t)INT64_MAX / v)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: tensor '%s': element count overflows at dimension %d", path,
                              name, k);
        numel *= v;
    }
    t->ndim = ndim;
    t->numel = (int64_t)numel;
    size_t nbytes = lt_dtype_nbytes(t->dtype, t->numel);
    if (nbytes == 0 && numel != 0)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': byte size of %llu %s elements overflows", path, name,
                          (unsigned long long)numel, lt_dtype_name(t->dtype));
    t->nbytes = nbytes;
    // data_offsets
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t ob, oe;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &ob) ||
        !json_uint(jo->child->next, &oe))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': \"data_offsets\" must be two non-negative integers "
                          "[begin, end]",
                          path, name);
    if (ob > oe)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] begin after they end", path,
                          name, (unsigned long long)ob, (unsigned long long)oe);
    if (oe > st->data_size)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] outside the data area of "
                          "%zu bytes",
                          path, name, (unsigned long long)ob, (unsigned long long)oe,
                          st->data_size);
    if (oe - ob != nbytes) {
        char sh[96];
        shape_str(t->shape, t->ndim, sh, sizeof sh);
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets span %llu bytes, expected %zu for %s %s",
                          path, name, (unsigned long long)(oe - ob), nbytes,
                          lt_dtype_name(t->dtype), sh);
    }
    t->name = name;
    t->data = st->data + ob;
    *b = ob;
    return LT_OK;
}

typedef struct {
    uint64_t b;
    int i;
} span;

static int span_cmp(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->i - b->i;
}

static lt_status check_meta(lt_safetensors *st, const cJSON *m, lt_err *err) {
    if (cJSON_IsNull(m)) return LT_OK;
    if (!cJSON_IsObject(m))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"__metadata__\" is %s, expected an object",
                          st->path, lt_json_type_name(m));
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: \"__metadata__\" value of '%s' is %s, expected a string",
                              st->path, c->string, lt_json_type_name(c));
    st->meta = m;
    return LT_OK;
}

static lt_status parse_header(lt_safetensors *st, lt_err *err) {
    const char *path = st->path;
    const uint8_t *base = st->map.data;
    size_t size = st->map.size;
    span *spans = NULL;
    lt_status s;
    if (size < 8)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: file is %zu bytes, expected at least 8 (the header length)", path,
                          size);
    uint64_t hn = lt_io_le64(base);
    if (hn > size - 8)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: header length %llu exceeds the %zu bytes after the length field "
                          "(truncated file?)",
                          path, (unsigned long long)hn, size - 8);
    if (hn > ST_MAX_HEADER)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu",
                          path, (unsigned long long)hn, ST_MAX_HEADER);
    const char *text = (const char *)base + 8;
    size_t bad;
    if (!lt_io_utf8_valid(text, (size_t)hn, &bad))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: header is not valid UTF-8 (byte %zu of the header)", path, bad);
    st->data = base + 8 + hn;
    st->data_size = size - 8 - (size_t)hn;
    char what[300];
    snprintf(what, sizeof what, "%s: header", path);
    s = lt_json_parse(text, (size_t)hn, what, &st->header, err);
    if (s) return s;
    const cJSON *root = st->header;
    if (!cJSON_IsObject(root))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: header is a JSON %s, expected an object", path,
                          lt_json_type_name(root));
    // count tensors
    size_t n = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__") != 0) n++;
    if (n > INT_MAX)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: %zu tensors, expected at most %d", path, n,
                          INT_MAX);
    st->tensors = lt_calloc(n ? n : 1, sizeof *st->tensors);
    spans = lt_calloc(n ? n : 1, sizeof *spans);
    if (!st->tensors || !spans) {
        s = lt_err_set(err, LT_ERR_OOM, "%s: out of memory for %zu tensor records", path, n);
        goto fail;
    }
    if ((s = lt_io_index_init(&st->index, n, err))) {
        lt_err_wrap(err, "%s", path);
        goto fail;
    }
    int i = 0, seen_meta = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (seen_meta++) {
                s = lt_err_set(err, LT_ERR_FORMAT, "%s: \"__metadata__\" appears twice", path);
                goto fail;
            }
            if ((s = check_meta(st, c, err))) goto fail;
            continue;
        }
        lt_st_tensor *t = &st->tensors[i];
        if ((s = parse_entry(st, c, t, &spans[i].b, err))) goto fail;
        spans[i].i = i;
        long prev = lt_io_index_add(&st->index, t->name);
        if (prev >= 0) {
            s = lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                           t->name);
            goto fail;
        }
        i++;
    }
    st->n = i;
    // overlap: sort by begin offset; every non-empty tensor must start at or after the end of
    // the previous non-empty one.
    qsort(spans, (size_t)st->n, sizeof *spans, span_cmp);
    const lt_st_tensor *last = NULL;
    uint64_t last_end = 0;
    for (int k = 0; k < st->n; k++) {
        const lt_st_tensor *t = &st->tensors[spans[k].i];
        if (t->nbytes == 0) continue;
        if (last && spans[k].b < last_end) {
            s = lt_err_set(err, LT_ERR_FORMAT,
                           "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", path,
                           last->name, (unsigned long long)(last_end - last->nbytes),
                           (unsigned long long)last_end, t->name, (unsigned long long)spans[k].b,
                           (unsigned long long)(spans[k].b + t->nbytes));
            goto fail;
        }
        last = t;
        last_end = spans[k].b + t->nbytes;
    }
    lt_free(spans);
    return LT_OK;
fail:
    lt_free(spans);
    return s; // the caller's close releases the rest
}

// ---------------------------------------------------------------------------------------------
// open / close

static lt_status st_open(const char *path, const void *mem, size_t n, lt_safetensors **out,
                         lt_err *err) {
    lt_status s;
    lt_safetensors *st = lt_calloc(1, sizeof *st);
    if (!st) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
    st->path = lt_strdup(path);
    if (!st->path) {
        s = lt_err_set(err, LT_ERR_OOM, "%s: out of memory", path);
        goto fail;
    }
    if (mem) {
        st->map.data = mem;
        st->map.size = n;
    } else {
        if ((s = lt_io_map_file(path, &st->map, err))) goto fail;
        st->owns_map = true;
    }
    if ((s = parse_header(st, err))) goto fail;
    *out = st;
    return LT_OK;
fail:
    lt_safetensors_close(st);
    return s;
}

lt_status lt_safetensors_open(const char *path, lt_safetensors **out, lt_err *err) {
    return st_open(path, NULL, 0, out, err);
}

lt_status lt_safetensors_open_mem(const void *data, size_t n, const char *name,
                                  lt_safetensors **out, lt_err *err) {
    static const uint8_t empty[1];
    return st_open(name ? name : "<memory>", data ? data : empty, data ? n : 0, out, err);
}

void lt_safetensors_close(lt_safetensors *st) {
    if (!st) return;
    lt_io_index_deinit(&st->index);
    lt_free(st->tensors);
    cJSON_Delete(st->header);
    if (st->owns_map) lt_io_unmap(&st->map);
    lt_free(st->path);
    lt_free(st);
}

int lt_safetensors_count(const lt_safetensors *st) { return st->n; }

const lt_st_tensor *lt_safetensors_at(const lt_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->tensors[i] : NULL;
}

const lt_st_tensor *lt_safetensors_find(const lt_safetensors *st, const char *name) {
    long i = lt_io_index_find(&st->index, name);
    return i >= 0 ? &st->tensors[i] : NULL;
}

const char *lt_safetensors_meta(const lt_safetensors *st, const char *key) {
    if (!st->meta) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int lt_safetensors_meta_count(const lt_safetensors *st) {
    return st->meta ? cJSON_GetArraySize(st->meta) : 0;
}

const char *lt_safetensors_meta_at(const lt_safetensors *st, int i, const char **value) {
    if (!st->meta || i < 0) return NULL;
    const cJSON *c = st->meta->child;
    for (; c && i > 0; i--) c = c->next;
    if (!c) return NULL;
    if (value) *value = c->valuestring;
    return c->string;
}

const char *lt_safetensors_path(const lt_safetensors *st) { return st->path; }

// ---------------------------------------------------------------------------------------------
// sets of files (HF model directories)

struct lt_st_set {
    char *where; // directory or file, for messages
    int n_files;
    lt_safetensors **files; // (n_files)
    int n;
    const lt_st_tensor **tensors; // (n) views into files
    int *file_of;                 // (n) index into files
    lt_io_index index;
};

void lt_st_set_close(lt_st_set *s) {
    if (!s) return;
    lt_io_index_deinit(&s->index);
    for (int i = 0; i < s->n_files; i++) lt_safetensors_close(s->files[i]);
    lt_free(s->files);
    lt_free(s->tensors);
    lt_free(s->file_of);
    lt_free(s->where);
    lt_free(s);
}

static lt_status set_new(const char *where, int n_files, int n, lt_st_set **out, lt_err *err) {
    lt_st_set *s = lt_calloc(1, sizeof *s);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", where);
    s->where = lt_strdup(where);
    s->files = lt_calloc((size_t)(n_files ? n_files : 1), sizeof *s->files);
    s->tensors = lt_calloc((size_t)(n ? n : 1), sizeof *s->tensors);
    s->file_of = lt_calloc((size_t)(n ? n : 1), sizeof *s->file_of);
    if (!s->where || !s->files || !s->tensors || !s->file_of) {
        lt_st_set_close(s);
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", where);
    }
    lt_status st = lt_io_index_init(&s->index, (size_t)n, err);
    if (st) {
        lt_st_set_close(s);
        return st;
    }
    *out = s;
    return LT_OK;
}

lt_status lt_st_set_open_file(const char *path, lt_st_set **out, lt_err *err) {
    lt_safetensors *f;
    lt_st_set *s = NULL;
    lt_status st = lt_safetensors_open(path, &f, err);
    if (st) return st;
    if ((st = set_new(path, 1, f->n, &s, err))) {
        lt_safetensors_close(f);
        return st;
    }
    s->files[s->n_files++] = f;
    for (int i = 0; i < f->n; i++) {
        s->tensors[i] = &f->tensors[i];
        s->file_of[i] = 0;
        lt_io_index_add(&s->index, f->tensors[i].name); // unique: checked by the reader
    }
    s->n = f->n;
    *out = s;
    return LT_OK;
}

// A shard name from weight_map must be a plain file name inside the directory.
static bool shard_name_ok(const char *f) {
    return *f && strcmp(f, ".") != 0 && strcmp(f, "..") != 0 && !strchr(f, '/') && !strchr(f, '\\');
}

static lt_status open_index(const char *dir, const char *index_path, lt_st_set **out, lt_err *err) {
    cJSON *root = NULL;
    lt_st_set *s = NULL;
    lt_io_index shards = {0}; // shard file name -> index into s->files
    lt_status st = lt_json_parse_file(index_path, &root, err);
    if (st) return st;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: \"weight_map\" is %s, expected an object",
                        index_path, lt_json_type_name(cJSON_IsObject(root) ? wm : NULL));
        goto fail;
    }
    int n = cJSON_GetArraySize(wm);
    // distinct shards are at most n; files[] is sized for that and filled as shards appear
    if ((st = set_new(dir, n, n, &s, err))) goto fail;
    if ((st = lt_io_index_init(&shards, (size_t)n, err))) goto fail;
    int i = 0;
    for (const cJSON *c = wm->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !shard_name_ok(c->valuestring)) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: weight_map entry '%s' is %s, expected a shard file name",
                            index_path, c->string,
                            cJSON_IsString(c) ? "not a plain file name" : lt_json_type_name(c));
            goto fail;
        }
        long fi = lt_io_index_find(&shards, c->valuestring);
        if (fi < 0) {
            char p[4096];
            if (!lt_path_join(p, sizeof p, dir, c->valuestring)) {
                st = lt_err_set(err, LT_ERR_ARG, "%s: path of shard '%s' too long", dir,
                                c->valuestring);
                goto fail;
            }
            lt_safetensors *f;
            if ((st = lt_safetensors_open(p, &f, err))) goto fail;
            fi = s->n_files;
            s->files[s->n_files++] = f;
            lt_io_index_add(&shards, c->valuestring); // borrowed from root, alive until the end
        }
        const lt_st_tensor *t = lt_safetensors_find(s->files[fi], c->string);
        if (!t) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tensor '%s' is listed in %s but missing from %s", dir, c->string,
                            index_path, s->files[fi]->path);
            goto fail;
        }
        if (lt_io_index_add(&s->index, t->name) >= 0) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s' appears twice in weight_map",
                            index_path, c->string);
            goto fail;
        }
        s->tensors[i] = t;
        s->file_of[i] = (int)fi;
        s->n = i + 1;
    }
    lt_io_index_deinit(&shards);
    cJSON_Delete(root);
    *out = s;
    return LT_OK;
fail:
    lt_io_index_deinit(&shards);
    lt_st_set_close(s);
    cJSON_Delete(root);
    return st;
}

lt_status lt_st_set_open_dir(const char *dir, lt_st_set **out, lt_err *err) {
    char p[4096];
    if (!lt_path_join(p, sizeof p, dir, "model.safetensors"))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    if (lt_file_exists(p)) {
        lt_st_set *s;
        lt_status st = lt_st_set_open_file(p, &s, err);
        if (st) return st;
        // name the directory in later messages; the file is named by the tensors' file
        char *w = lt_strdup(dir);
        if (!w) {
            lt_st_set_close(s);
            return lt_err_set(err, LT_ERR_OOM, "%s: out of memory", dir);
        }
        lt_free(s->where);
        s->where = w;
        *out = s;
        return LT_OK;
    }
    if (!lt_path_join(p, sizeof p, dir, "model.safetensors.index.json"))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    if (lt_file_exists(p)) return open_index(dir, p, out, err);
    return lt_err_set(err, LT_ERR_IO,
                      "%s: neither model.safetensors nor model.safetensors.index.json found", dir);
}

const lt_st_tensor *lt_st_set_find(const lt_st_set *s, const char *name) {
    long i = lt_io_index_find(&s->index, name);
    return i >= 0 ? s->tensors[i] : NULL;
}

int lt_st_set_count(const lt_st_set *s) { return s->n; }

const lt_st_tensor *lt_st_set_at(const lt_st_set *s, int i) {
    return i >= 0 && i < s->n ? s->tensors[i] : NULL;
}

const char *lt_st_set_file_of(const lt_st_set *s, const char *name) {
    long i = lt_io_index_find(&s->index, name);
    return i >= 0 ? s->files[s->file_of[i]]->path : NULL;
}

lt_status lt_st_set_get(const lt_st_set *s, const char *name, int ndim, const int64_t *shape,
                        const lt_st_tensor **out, lt_err *err) {
    long i = lt_io_index_find(&s->index, name);
    if (i < 0) return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor '%s' not found", s->where, name);
    const lt_st_tensor *t = s->tensors[i];
    const char *file = s->files[s->file_of[i]]->path;
    if (!lt_dtype_is_float(t->dtype))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: tensor '%s' has dtype %s, expected a float dtype", file, name,
                          lt_dtype_name(t->dtype));
    bool same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char want[96], got[96];
        shape_str(shape, ndim < 0 ? 0 : (ndim > 8 ? 8 : ndim), want, sizeof want);
        shape_str(t->shape, t->ndim, got, sizeof got);
        return lt_err_set(err, LT_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", file,
                          name, got, want);
    }
    *out = t;
    return LT_OK;
}
