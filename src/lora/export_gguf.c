/*
 * export_gguf.c - GGUF output for llama.cpp: the merged model (llama / qwen2 architectures, f32,
 * f16, bf16 or q8_0), its tokenizer.ggml.* keys (copied from a GGUF base or derived from a
 * Hugging Face tokenizer.json), the adapter alone as a llama.cpp LoRA file, and reading such a
 * LoRA file back onto a model.
 *
 * The file is streamed: the key/value section is serialised here into memory (it is small next
 * to the weights), the tensor infos are computed from the plan, and each tensor's data is
 * produced a block of rows at a time (lt_out_tensor_write) straight into the temporary file,
 * which is renamed into place only when complete. (src/io's lt_gguf_writer needs every tensor in
 * memory at once, which a 7B model would not allow.)
 *
 * Not here: other tokenizer models (Unigram/T5, WordPiece), quantisations other than Q8_0,
 * architectures other than llama/mistral/qwen2, big-endian output.
 * References: ggml-org/llama.cpp convert_hf_to_gguf.py (LlamaModel / Qwen2Model:
 * set_gguf_parameters, permute, _set_vocab_gpt2, _set_vocab_sentencepiece), convert_lora_to_gguf.py
 * (lora_a / lora_b names and shapes), src/llama-adapter.cpp (scale = alpha / rank, rank =
 * lora_b ne[0]), ggml-quants.c quantize_row_q8_0_ref, gguf-py constants (key names, token types,
 * LlamaFileType).
 */
#include "core/core.h"
#include "io/gguf.h"
#include "io/io.h"
#include "lora/merge.h"
#include "model/model_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------------------------
// Q8_0

void lt_quantize_q8_0(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = lt_f32_to_f16(d);
        memcpy(y, &dh, 2);
        for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

// ---------------------------------------------------------------------------------------------
// key/value section, serialised as it is built

struct lt_gguf_kv {
    uint8_t *p;
    size_t n, cap;
    bool oom;
    uint64_t count;
    char **keys;
    int n_keys, cap_keys;
};

lt_gguf_kv *lt_gguf_kv_new(void) {
    return lt_calloc(1, sizeof(lt_gguf_kv));
}

void lt_gguf_kv_free(lt_gguf_kv *kv) {
    if (!kv) return;
    for (int i = 0; i < kv->n_keys; i++) lt_free(kv->keys[i]);
    lt_free(kv->keys);
    lt_free(kv->p);
    lt_free(kv);
}

static void kb_put(lt_gguf_kv *kv, const void *s, size_t n) {
    if (kv->oom || !n) return;
    if (kv->n + n > kv->cap) {
        size_t cap = kv->cap ? kv->cap : 1 << 16;
        while (cap < kv->n + n) cap *= 2;
        uint8_t *p = lt_realloc(kv->p, cap);
        if (!p) {
            kv->oom = true;
            return;
        }
        kv->p = p, kv->cap = cap;
    }
    memcpy(kv->p + kv->n, s, n);
    kv->n += n;
}
static void kb_u32(lt_gguf_kv *kv, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    kb_put(kv, b, 4);
}
static void kb_u64(lt_gguf_kv *kv, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    kb_put(kv, b, 8);
}
static void kb_str(lt_gguf_kv *kv, const char *s, size_t n) {
    kb_u64(kv, n);
    kb_put(kv, s, n);
}

// Starts a pair: the key (unique) and its type. False (err set) on a duplicate or OOM.
static lt_status kv_begin(lt_gguf_kv *kv, const char *key, lt_gguf_type type, lt_err *err) {
    for (int i = 0; i < kv->n_keys; i++)
        if (!strcmp(kv->keys[i], key))
            return lt_err_set(err, LT_ERR_ARG, "gguf export: key %s set twice", key);
    if (kv->n_keys == kv->cap_keys) {
        int cap = kv->cap_keys ? 2 * kv->cap_keys : 64;
        char **k = lt_realloc(kv->keys, sizeof *k * (size_t)cap);
        if (!k) return lt_err_set(err, LT_ERR_OOM, "gguf export: out of memory");
        kv->keys = k, kv->cap_keys = cap;
    }
    if (!(kv->keys[kv->n_keys] = lt_strdup(key)))
        return lt_err_set(err, LT_ERR_OOM, "gguf export: out of memory");
    kv->n_keys++;
    kv->count++;
    kb_str(kv, key, strlen(key));
    kb_u32(kv, (uint32_t)type);
    return kv->oom ? lt_err_set(err, LT_ERR_OOM, "gguf export: out of memory") : LT_OK;
}
static lt_status kv_done(lt_gguf_kv *kv, const char *key, lt_err *err) {
    return kv->oom ? lt_err_set(err, LT_ERR_OOM, "gguf export: out of memory setting %s", key)
                   : LT_OK;
}

static lt_status kv_u32(lt_gguf_kv *kv, const char *key, uint32_t v, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_UINT32, err);
    if (st) return st;
    kb_u32(kv, v);
    return kv_done(kv, key, err);
}
static lt_status kv_f32(lt_gguf_kv *kv, const char *key, float v, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_FLOAT32, err);
    if (st) return st;
    uint32_t u;
    memcpy(&u, &v, 4);
    kb_u32(kv, u);
    return kv_done(kv, key, err);
}
static lt_status kv_bool(lt_gguf_kv *kv, const char *key, bool v, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_BOOL, err);
    if (st) return st;
    uint8_t b = v ? 1 : 0;
    kb_put(kv, &b, 1);
    return kv_done(kv, key, err);
}
static lt_status kv_str(lt_gguf_kv *kv, const char *key, const char *s, size_t n, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_STRING, err);
    if (st) return st;
    kb_str(kv, s, n);
    return kv_done(kv, key, err);
}
static size_t scalar_size(lt_gguf_type t) {
    static const uint8_t sz[LT_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)t < LT_GGUF_TYPE_COUNT ? sz[t] : 0;
}
// An array of n scalars in host (little-endian) layout.
static lt_status kv_arr(lt_gguf_kv *kv, const char *key, lt_gguf_type elem, const void *data,
                        uint64_t n, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_ARRAY, err);
    if (st) return st;
    kb_u32(kv, (uint32_t)elem);
    kb_u64(kv, n);
    kb_put(kv, data, (size_t)n * scalar_size(elem));
    return kv_done(kv, key, err);
}
// An array of n strings (lens may be NULL: NUL-terminated strings).
static lt_status kv_arr_str(lt_gguf_kv *kv, const char *key, const char *const *s,
                            const size_t *lens, uint64_t n, lt_err *err) {
    lt_status st = kv_begin(kv, key, LT_GGUF_TYPE_ARRAY, err);
    if (st) return st;
    kb_u32(kv, (uint32_t)LT_GGUF_TYPE_STRING);
    kb_u64(kv, n);
    for (uint64_t i = 0; i < n; i++) kb_str(kv, s[i], lens ? lens[i] : strlen(s[i]));
    return kv_done(kv, key, err);
}

// Copies key from a GGUF file with its type (scalars, strings, arrays of scalars or strings).
static lt_status kv_copy(lt_gguf_kv *kv, const lt_gguf *g, const char *key, lt_err *err) {
    int64_t i = lt_gguf_find_key(g, key);
    if (i < 0) return lt_err_set(err, LT_ERR_FORMAT, "%s: key %s not found", lt_gguf_path(g), key);
    lt_gguf_type t = lt_gguf_kv_type(g, i);
    lt_status st;
    if (t == LT_GGUF_TYPE_STRING) {
        const char *s;
        size_t n;
        if ((st = lt_gguf_get_str(g, key, &s, &n, err))) return st;
        return kv_str(kv, key, s, n, err);
    }
    if (t == LT_GGUF_TYPE_ARRAY) {
        lt_gguf_type et;
        uint64_t n;
        if ((st = lt_gguf_get_arr_info(g, key, &et, &n, err))) return st;
        if (et == LT_GGUF_TYPE_STRING) {
            if ((st = kv_begin(kv, key, LT_GGUF_TYPE_ARRAY, err))) return st;
            kb_u32(kv, (uint32_t)LT_GGUF_TYPE_STRING);
            kb_u64(kv, n);
            for (uint64_t k = 0; k < n; k++) {
                const char *s;
                size_t len;
                if ((st = lt_gguf_get_arr_str(g, key, k, &s, &len, err))) return st;
                kb_str(kv, s, len);
            }
            return kv_done(kv, key, err);
        }
        size_t es = scalar_size(et), bytes;
        if (!es) {
            lt_warn("%s: %s is a nested array; not copied", lt_gguf_path(g), key);
            return LT_OK;
        }
        if (n > SIZE_MAX || !lt_mul_ok((size_t)n, es, &bytes))
            return lt_err_set(err, LT_ERR_FORMAT, "%s: %s is too long", lt_gguf_path(g), key);
        void *buf = lt_alloc(bytes ? bytes : 1);
        if (!buf) return lt_err_set(err, LT_ERR_OOM, "out of memory copying %s", key);
        st = lt_gguf_get_arr_data(g, key, et, buf, n, err);
        if (!st) st = kv_arr(kv, key, et, buf, n, err);
        lt_free(buf);
        return st;
    }
    size_t es = scalar_size(t);
    uint8_t b[8] = {0};
    if (t == LT_GGUF_TYPE_FLOAT32 || t == LT_GGUF_TYPE_FLOAT64) {
        double v;
        if ((st = lt_gguf_get_float(g, key, &v, err))) return st;
        if (t == LT_GGUF_TYPE_FLOAT32) {
            float f = (float)v;
            memcpy(b, &f, 4);
        } else {
            memcpy(b, &v, 8);
        }
    } else if (t == LT_GGUF_TYPE_BOOL) {
        bool v;
        if ((st = lt_gguf_get_bool(g, key, &v, err))) return st;
        b[0] = v;
    } else {
        int64_t v; // (a u64 above INT64_MAX fails here; no tokenizer key holds one)
        if ((st = lt_gguf_get_int(g, key, &v, err))) return st;
        memcpy(b, &v, es); // little-endian host: the low bytes are the narrow value
    }
    if ((st = kv_begin(kv, key, t, err))) return st;
    kb_put(kv, b, es);
    return kv_done(kv, key, err);
}

// ---------------------------------------------------------------------------------------------
// the GGUF file: header, kv section, tensor infos, aligned data (streamed)

#define ALIGN 32

static uint64_t pad_to(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}

static void fpad(FILE *f, uint64_t *pos) {
    static const uint8_t zeros[ALIGN];
    size_t k = (size_t)(pad_to(*pos, ALIGN) - *pos);
    if (k) fwrite(zeros, 1, k, f);
    *pos += k;
}

static lt_status gguf_write(const char *path, const lt_gguf_kv *kv, const lt_out_tensor *ts, int n,
                            lt_err *err) {
    if (kv->oom) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory building the header", path);
    lt_out_scratch scr = {0};
    lt_status st = lt_out_scratch_new(ts, n, &scr, err);
    if (st) return st;
    lt_afile a;
    if ((st = lt_afile_open(&a, path, err))) {
        lt_out_scratch_free(&scr);
        return st;
    }
    lt_gguf_kv hdr = {0}; // header + tensor infos, built with the same helpers
    kb_u32(&hdr, LT_GGUF_MAGIC);
    kb_u32(&hdr, 3);
    kb_u64(&hdr, (uint64_t)n);
    kb_u64(&hdr, kv->count);
    kb_put(&hdr, kv->p, kv->n);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const lt_out_tensor *t = &ts[i];
        uint32_t gt = 0;
        bool ok = lt_dtype_to_ggml(t->dtype, &gt);
        LT_ASSERT(ok && t->ndim >= 1 && t->ndim <= 2 && strlen(t->name) < LT_GGUF_MAX_NAME);
        kb_str(&hdr, t->name, strlen(t->name));
        kb_u32(&hdr, (uint32_t)t->ndim);
        for (int k = t->ndim - 1; k >= 0; k--)
            kb_u64(&hdr, (uint64_t)t->shape[k]); // ne[0] innermost
        kb_u32(&hdr, gt);
        kb_u64(&hdr, off);
        off += pad_to(t->nbytes, ALIGN);
    }
    if (hdr.oom) {
        st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory building the header", path);
        goto fail;
    }
    uint64_t pos = hdr.n;
    fwrite(hdr.p, 1, hdr.n, a.f);
    if (n) fpad(a.f, &pos);
    for (int i = 0; i < n; i++) {
        if ((st = lt_out_tensor_write(a.f, &ts[i], &scr, err))) {
            lt_err_wrap(err, "%s", path);
            goto fail;
        }
        pos += ts[i].nbytes;
        fpad(a.f, &pos);
    }
    lt_free(hdr.p);
    lt_out_scratch_free(&scr);
    return lt_afile_commit(&a, err);
fail:
    lt_free(hdr.p);
    lt_out_scratch_free(&scr);
    lt_afile_abort(&a);
    return st;
}

lt_status lt_gguf_kv_write_file(const lt_gguf_kv *kv, const char *path, lt_err *err) {
    return gguf_write(path, kv, NULL, 0, err);
}

// ---------------------------------------------------------------------------------------------
// tokenizer keys from a Hugging Face tokenizer.json

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_BYTE = 6 };

// string -> id, open addressing (keys borrowed from the cJSON tree)
typedef struct {
    const char **k;
    int32_t *v;
    size_t mask;
} smap;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}
static bool smap_init(smap *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    m->k = lt_calloc(cap, sizeof *m->k);
    m->v = lt_calloc(cap, sizeof *m->v);
    m->mask = cap - 1;
    return m->k && m->v;
}
static void smap_free(smap *m) {
    lt_free((void *)m->k);
    lt_free(m->v);
}
static void smap_put(smap *m, const char *k, int32_t v) {
    size_t n = strlen(k);
    for (size_t i = (size_t)fnv(k, n) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->k[i]) {
            m->k[i] = k, m->v[i] = v;
            return;
        }
        if (!strcmp(m->k[i], k)) return; // first wins
    }
}
static int32_t smap_get(const smap *m, const char *k, size_t n) {
    for (size_t i = (size_t)fnv(k, n) & m->mask; m->k[i]; i = (i + 1) & m->mask)
        if (strlen(m->k[i]) == n && !memcmp(m->k[i], k, n)) return m->v[i];
    return -1;
}

static bool has_type(const cJSON *node, const char *type, const char *list_key,
                     const cJSON **found) {
    if (!cJSON_IsObject(node)) return false;
    const char *t = lt_json_str(node, "type", "");
    if (!strcmp(t, type)) {
        if (found) *found = node;
        return true;
    }
    if (!strcmp(t, "Sequence")) {
        const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(node, list_key);
        cJSON_ArrayForEach(it, arr) if (has_type(it, type, list_key, found)) return true;
    }
    return false;
}

// The llama.cpp pre-tokenizer name (tokenizer.ggml.pre) for a byte-level BPE pre_tokenizer.
static const char *detect_pre(const cJSON *pre) {
    static const char *llama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char *qwen2 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
        "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const char *t = lt_json_str(pre, "type", "");
    if (!strcmp(t, "ByteLevel") && lt_json_bool(pre, "use_regex", true)) return "gpt-2";
    if (strcmp(t, "Sequence")) return NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (cJSON_GetArraySize(arr) != 2) return NULL;
    const cJSON *a = cJSON_GetArrayItem(arr, 0), *b = cJSON_GetArrayItem(arr, 1);
    if (strcmp(lt_json_str(b, "type", ""), "ByteLevel")) return NULL;
    const char *ta = lt_json_str(a, "type", "");
    if (!strcmp(ta, "Digits") && lt_json_bool(a, "individual_digits", false) &&
        lt_json_bool(b, "use_regex", true))
        return "smollm";
    if (!strcmp(ta, "Split") && !lt_json_bool(b, "use_regex", true)) {
        const char *re = lt_json_str(cJSON_GetObjectItemCaseSensitive(a, "pattern"), "Regex", "");
        if (!strcmp(re, llama3)) return "llama-bpe";
        if (!strcmp(re, qwen2)) return "qwen2";
    }
    return NULL;
}

// The id of a special token given as a string or {"content": ...} in tokenizer_config.json.
static int32_t special_id(const cJSON *cfg, const char *key, const smap *ids, bool *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *present = v != NULL;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return smap_get(ids, v->valuestring, strlen(v->valuestring));
}

static bool is_byte_piece(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
           strchr("0123456789ABCDEF", s[3]) && strchr("0123456789ABCDEF", s[4]) && s[3] && s[4];
}

lt_status lt_gguf_kv_tokenizer_hf(lt_gguf_kv *kv, const char *tokenizer_json, int n_vocab,
                                  const lt_config *config, lt_err *err) {
    char path[4096], dir[4096];
    struct stat sb;
    if (stat(tokenizer_json, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", tokenizer_json);
        if (!lt_path_join(path, sizeof path, dir, "tokenizer.json"))
            return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    } else {
        snprintf(path, sizeof path, "%s", tokenizer_json);
        snprintf(dir, sizeof dir, "%s", tokenizer_json);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
    }
    cJSON *j = NULL, *cfg = NULL;
    smap ids = {0};
    const char **tok = NULL;
    size_t *tlen = NULL;
    char **owned = NULL; // "[PAD<i>]" and joined merges
    int32_t *types = NULL;
    float *scores = NULL;
    const char **merges = NULL;
    size_t n_owned = 0;
    char *tmpl_file = NULL;
    lt_status st = lt_json_parse_file(path, &j, err);
    if (st) return st;
    char cpath[4096];
    if (lt_path_join(cpath, sizeof cpath, dir, "tokenizer_config.json") && lt_file_exists(cpath) &&
        (st = lt_json_parse_file(cpath, &cfg, err)))
        goto done;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
    const char *mtype = lt_json_str(model, "type", "");
    if (strcmp(mtype, "BPE") || !cJSON_IsObject(vocab)) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                        "%s: tokenizer model \"%s\" has no GGUF form in "
                        "loratune (supported: BPE, byte-level or SentencePiece-style)",
                        path, mtype);
        goto done;
    }
    bool byte_level = has_type(pre, "ByteLevel", "pretokenizers", NULL) ||
                      has_type(dec, "ByteLevel", "decoders", NULL);
    const cJSON *meta = NULL;
    bool metaspace = has_type(pre, "Metaspace", "pretokenizers", &meta);
    bool prepend = has_type(norm, "Prepend", "normalizers", NULL);
    bool spm = !byte_level && (lt_json_bool(model, "byte_fallback", false) || metaspace || prepend);
    if (!byte_level && !spm) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                        "%s: a BPE tokenizer that is neither byte-level "
                        "nor SentencePiece-style has no llama.cpp vocabulary type",
                        path);
        goto done;
    }
    // ids
    int nv = cJSON_GetArraySize(vocab), na = cJSON_GetArraySize(added);
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id;
        if (!lt_json_as_int(it, &id) || id < 0 || id >= 1 << 24) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: vocab entry \"%.40s\" has no valid id", path,
                            it->string);
            goto done;
        }
        if (id > max_id) max_id = (int32_t)id;
    }
    cJSON_ArrayForEach(it, added) {
        int64_t id = lt_json_int(it, "id", -1);
        if (id < 0 || id >= 1 << 24 ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "content"))) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: an added token has no valid id or content",
                            path);
            goto done;
        }
        if (id > max_id) max_id = (int32_t)id;
    }
    if (max_id >= n_vocab) {
        st = lt_err_set(err, LT_ERR_FORMAT,
                        "%s: token id %d does not fit the model's vocabulary "
                        "of %d rows",
                        path, max_id, n_vocab);
        goto done;
    }
    size_t N = (size_t)n_vocab;
    tok = lt_calloc(N, sizeof *tok);
    tlen = lt_calloc(N, sizeof *tlen);
    types = lt_calloc(N, sizeof *types);
    owned = lt_calloc(
        N + (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(model, "merges")) + 1,
        sizeof *owned);
    if (!tok || !tlen || !types || !owned || !smap_init(&ids, (size_t)(nv + na))) goto oom;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id;
        lt_json_as_int(it, &id);
        tok[id] = it->string;
        types[id] = TT_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int64_t id = lt_json_int(it, "id", -1);
        tok[id] = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        types[id] = lt_json_bool(it, "special", false) ? TT_CONTROL : TT_USER;
        if (lt_json_bool(it, "lstrip", false) || lt_json_bool(it, "rstrip", false) ||
            lt_json_bool(it, "single_word", false))
            lt_warn("%s: added token \"%.40s\" strips neighbouring spaces or matches whole words "
                    "only; GGUF vocabularies cannot say so, llama.cpp matches it anywhere",
                    path, tok[id]);
    }
    for (size_t i = 0; i < N; i++) {
        if (!tok[i]) { // a hole, as convert_hf_to_gguf.py fills it
            char b[32];
            snprintf(b, sizeof b, "[PAD%zu]", i);
            if (!(owned[n_owned] = lt_strdup(b))) goto oom;
            tok[i] = owned[n_owned++];
            types[i] = TT_USER;
        } else if (spm && types[i] == TT_NORMAL && is_byte_piece(tok[i])) {
            types[i] = TT_BYTE;
        }
        tlen[i] = strlen(tok[i]);
    }
    cJSON_ArrayForEach(it, added)
        smap_put(&ids, cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring,
                 (int32_t)lt_json_int(it, "id", -1));
    cJSON_ArrayForEach(it, vocab) {
        int64_t id;
        lt_json_as_int(it, &id);
        smap_put(&ids, it->string, (int32_t)id);
    }
    const char *unk = lt_json_str(model, "unk_token", NULL);
    int32_t unk_id = unk ? smap_get(&ids, unk, strlen(unk)) : -1;
    if (spm && unk_id >= 0 && types[unk_id] != TT_CONTROL) types[unk_id] = TT_UNKNOWN;
    // merges, "a b" strings (tokenizer.json has them as strings or as [a, b] pairs)
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n_merges = cJSON_GetArraySize(mj);
    merges = lt_calloc((size_t)n_merges + 1, sizeof *merges);
    if (!merges) goto oom;
    int k = 0;
    cJSON_ArrayForEach(it, mj) {
        if (cJSON_IsString(it)) {
            merges[k++] = it->valuestring;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring,
                       *b = cJSON_GetArrayItem(it, 1)->valuestring;
            size_t la = strlen(a), lb = strlen(b);
            char *s = lt_alloc(la + lb + 2);
            if (!s) goto oom;
            memcpy(s, a, la);
            s[la] = ' ';
            memcpy(s + la + 1, b, lb + 1);
            owned[n_owned++] = s;
            merges[k++] = s;
        } else {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", path,
                            k);
            goto done;
        }
    }
    if ((st = kv_str(kv, "tokenizer.ggml.model", spm ? "llama" : "gpt2", spm ? 5 : 4, err)))
        goto done;
    if (byte_level) {
        const char *p = detect_pre(pre);
        if (!p) {
            lt_warn("%s: pre-tokenizer not recognised as one of llama.cpp's; writing "
                    "tokenizer.ggml.pre = \"default\" (GPT-2 splitting)",
                    path);
            p = "default";
        }
        if ((st = kv_str(kv, "tokenizer.ggml.pre", p, strlen(p), err))) goto done;
    }
    if ((st = kv_arr_str(kv, "tokenizer.ggml.tokens", tok, tlen, N, err))) goto done;
    if (spm) {
        // llama.cpp's SentencePiece BPE merges the adjacent pair whose joined piece scores
        // highest; HF merges the pair of lowest rank. Scoring each piece -rank of the merge
        // that makes it gives the same order. Pieces no merge makes score below every merge.
        scores = lt_alloc(sizeof *scores * N);
        if (!scores) goto oom;
        for (size_t i = 0; i < N; i++) scores[i] = -1e9f;
        char buf[1024];
        for (int r = n_merges - 1; r >= 0; r--) {
            const char *sp = strchr(merges[r], ' ');
            if (!sp) continue;
            size_t la = (size_t)(sp - merges[r]), lb = strlen(sp + 1);
            if (la + lb >= sizeof buf) continue;
            memcpy(buf, merges[r], la);
            memcpy(buf + la, sp + 1, lb);
            int32_t id = smap_get(&ids, buf, la + lb);
            if (id >= 0) scores[id] = -(float)r;
        }
        if ((st = kv_arr(kv, "tokenizer.ggml.scores", LT_GGUF_TYPE_FLOAT32, scores, N, err)))
            goto done;
    }
    if ((st = kv_arr(kv, "tokenizer.ggml.token_type", LT_GGUF_TYPE_INT32, types, N, err)))
        goto done;
    if (!spm &&
        (st = kv_arr_str(kv, "tokenizer.ggml.merges", merges, NULL, (uint64_t)n_merges, err)))
        goto done;
    if (spm) {
        bool space = prepend;
        if (meta)
            space = strcmp(lt_json_str(meta, "prepend_scheme", "always"), "never") != 0 &&
                    lt_json_bool(meta, "add_prefix_space", true);
        if ((st = kv_bool(kv, "tokenizer.ggml.add_space_prefix", space, err))) goto done;
    }
    // add_bos / add_eos: the config's flags, else what the post-processor template adds
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    const cJSON *tp = NULL;
    bool add_bos = false, add_eos = false;
    int32_t tmpl_bos = -1, tmpl_eos = -1;
    if (has_type(post, "TemplateProcessing", "processors", &tp)) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(tp, "single");
        int ns = cJSON_GetArraySize(single);
        const cJSON *first =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
        const cJSON *last =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, ns - 1), "SpecialToken");
        const char *fid = lt_json_str(first, "id", NULL), *lid = lt_json_str(last, "id", NULL);
        add_bos = ns > 0 && first;
        add_eos = ns > 1 && last;
        if (add_bos && fid) tmpl_bos = smap_get(&ids, fid, strlen(fid));
        if (add_eos && lid) tmpl_eos = smap_get(&ids, lid, strlen(lid));
    }
    // special ids: tokenizer_config.json (an explicit null means none), else the model's
    // config.json, else the post-processor's tokens, else the usual names (the guesses
    // lt_tokenizer_load_hf makes, so both loaders agree on files without a config)
    static const char *const guess[4][5] = {
        {"<s>", "<|begin_of_text|>", "<bos>", NULL},
        {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", NULL},
        {"<pad>", "<|pad|>", "[PAD]", NULL},
        {NULL},
    };
    const char *skeys[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const char *gkeys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                           "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"};
    int fallback[4] = {config ? config->bos_id : -1, config ? config->eos_id : -1,
                       config ? config->pad_id : -1, unk_id};
    int from_tmpl[4] = {tmpl_bos, tmpl_eos, -1, -1};
    for (int s = 0; s < 4; s++) {
        bool present = false;
        int32_t id = cfg ? special_id(cfg, skeys[s], &ids, &present) : -1;
        if (!present && fallback[s] >= 0 && fallback[s] < n_vocab)
            id = fallback[s];
        else if (!present && from_tmpl[s] >= 0)
            id = from_tmpl[s];
        for (int g = 0; !present && id < 0 && guess[s][g]; g++)
            id = smap_get(&ids, guess[s][g], strlen(guess[s][g]));
        if (id >= 0 && (st = kv_u32(kv, gkeys[s], (uint32_t)id, err))) goto done;
    }
    add_bos = lt_json_bool(cfg, "add_bos_token", add_bos);
    add_eos = lt_json_bool(cfg, "add_eos_token", add_eos);
    if ((st = kv_bool(kv, "tokenizer.ggml.add_bos_token", add_bos, err)) ||
        (st = kv_bool(kv, "tokenizer.ggml.add_eos_token", add_eos, err)))
        goto done;
    // chat template: tokenizer_config.json's (a string, or the "default" of a list), else a
    // chat_template.jinja file beside tokenizer.json (newer transformers)
    const char *tmpl = NULL;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct))
        tmpl = ct->valuestring;
    else if (cJSON_IsArray(ct)) {
        cJSON_ArrayForEach(it, ct) {
            const char *nm = lt_json_str(it, "name", ""), *tt = lt_json_str(it, "template", NULL);
            if (tt && (!tmpl || !strcmp(nm, "default"))) tmpl = tt;
        }
    }
    char tpath[4096];
    if (!tmpl && lt_path_join(tpath, sizeof tpath, dir, "chat_template.jinja") &&
        lt_file_exists(tpath)) {
        size_t tn;
        if ((st = lt_read_file(tpath, &tmpl_file, &tn, err))) goto done;
        tmpl = tmpl_file;
    }
    if (tmpl && (st = kv_str(kv, "tokenizer.chat_template", tmpl, strlen(tmpl), err))) goto done;
    st = LT_OK;
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory building the GGUF vocabulary", path);
done:
    for (size_t i = 0; owned && i < n_owned; i++) lt_free(owned[i]);
    lt_free(owned);
    lt_free(tok);
    lt_free(tlen);
    lt_free(types);
    lt_free(scores);
    lt_free((void *)merges);
    lt_free(tmpl_file);
    smap_free(&ids);
    cJSON_Delete(cfg);
    cJSON_Delete(j);
    return st;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json from a GGUF "gpt2" vocabulary (for HF directories merged from a GGUF base)

#define GPT2_RE_HF                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE_HF                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE_HF                                                                                \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static cJSON *byte_level(bool use_regex, bool prefix, bool trim) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", prefix);
    cJSON_AddBoolToObject(b, "trim_offsets", trim);
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

static cJSON *split_re(const char *re) {
    cJSON *s = cJSON_CreateObject(), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "Split");
    cJSON_AddStringToObject(p, "Regex", re);
    cJSON_AddItemToObject(s, "pattern", p);
    cJSON_AddStringToObject(s, "behavior", "Isolated");
    cJSON_AddBoolToObject(s, "invert", false);
    return s;
}

// The pre_tokenizer for a tokenizer.ggml.pre name (the mapping of gguf_vocab.c, backwards);
// NULL for names without one. *ignore_merges as llama.cpp sets it for the Llama-3 family.
static cJSON *pre_for(const char *pre, bool *ignore_merges) {
    static const char *gpt2[] = {"gpt-2", "default", "mpt", "olmo", "jais", NULL};
    static const char *digits[] = {"smollm", "starcoder", "refact", "codeshell", NULL};
    static const char *llama3[] = {"llama3", "llama-bpe", "smaug-bpe", "dbrx", NULL};
    static const char *qwen2[] = {"qwen2", "stablelm2", NULL};
    *ignore_merges = false;
    for (int i = 0; gpt2[i]; i++)
        if (!strcmp(pre, gpt2[i])) return byte_level(true, false, true);
    cJSON *seq = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToObject(seq, "pretokenizers", arr);
    for (int i = 0; digits[i]; i++)
        if (!strcmp(pre, digits[i])) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "type", "Digits");
            cJSON_AddBoolToObject(d, "individual_digits", true);
            cJSON_AddItemToArray(arr, d);
            cJSON_AddItemToArray(arr, byte_level(true, false, true));
            return seq;
        }
    for (int i = 0; llama3[i]; i++)
        if (!strcmp(pre, llama3[i])) {
            *ignore_merges = true;
            cJSON_AddItemToArray(arr, split_re(LLAMA3_RE_HF));
            cJSON_AddItemToArray(arr, byte_level(false, false, true));
            return seq;
        }
    for (int i = 0; qwen2[i]; i++)
        if (!strcmp(pre, qwen2[i])) {
            cJSON_AddItemToArray(arr, split_re(QWEN2_RE_HF));
            cJSON_AddItemToArray(arr, byte_level(false, false, true));
            return seq;
        }
    cJSON_Delete(seq);
    return NULL;
}

static int32_t opt_u32(const lt_gguf *g, const char *key) {
    int64_t v;
    if (lt_gguf_find_key(g, key) < 0 || lt_gguf_get_int(g, key, &v, NULL) || v < 0 || v > INT32_MAX)
        return -1;
    return (int32_t)v;
}

lt_status lt_gguf_tokenizer_to_hf(const lt_gguf *g, int max_len, char **tokenizer_json,
                                  char **tokenizer_config, lt_err *err) {
    const char *path = lt_gguf_path(g), *model, *pre = "default";
    lt_status st;
    if ((st = lt_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, err))) return st;
    if (strcmp(model, "gpt2"))
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: tokenizer.ggml.model \"%s\": loratune writes "
                          "tokenizer.json only for byte-level BPE (\"gpt2\") vocabularies",
                          path, model);
    if (lt_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
        (st = lt_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err)))
        return st;
    bool ignore_merges;
    cJSON *pt = pre_for(pre, &ignore_merges);
    if (!pt)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: tokenizer.ggml.pre \"%s\" has no tokenizer.json "
                          "pre-tokenizer in loratune",
                          path, pre);
    lt_gguf_type et;
    uint64_t n = 0, nm = 0;
    int32_t *types = NULL;
    smap seen = {0};
    cJSON *j = cJSON_CreateObject(), *cfg = cJSON_CreateObject(), *added = cJSON_CreateArray(),
          *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray(), *mdl = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON_AddItemToObject(j, "added_tokens", added);
    cJSON_AddNullToObject(j, "normalizer");
    cJSON_AddItemToObject(j, "pre_tokenizer", pt);
    if ((st = lt_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n, err))) goto done;
    if (et != LT_GGUF_TYPE_STRING || n == 0 || n > (1u << 24)) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not a list of strings",
                        path);
        goto done;
    }
    types = lt_calloc((size_t)n, sizeof *types);
    if (!types || !smap_init(&seen, (size_t)n)) goto oom;
    for (uint64_t i = 0; i < n; i++) types[i] = TT_NORMAL;
    if (lt_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        uint64_t tn;
        if ((st = lt_gguf_get_arr_info(g, "tokenizer.ggml.token_type", &et, &tn, err))) goto done;
        if (tn != n || (et != LT_GGUF_TYPE_INT32 && et != LT_GGUF_TYPE_UINT32)) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tokenizer.ggml.token_type does not match the tokens", path);
            goto done;
        }
        if ((st = lt_gguf_get_arr_data(g, "tokenizer.ggml.token_type", et, types, n, err)))
            goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        const char *t;
        size_t len;
        if ((st = lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &t, &len, err))) goto done;
        if (strlen(t) != len) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: token %llu holds a NUL byte", path,
                            (unsigned long long)i);
            goto done;
        }
        if (smap_get(&seen, t, len) < 0) { // a string listed twice keeps its first id
            smap_put(&seen, t, (int32_t)i);
            cJSON_AddNumberToObject(vocab, t, (double)i);
        }
        if (types[i] == TT_CONTROL || types[i] == TT_USER || types[i] == TT_UNKNOWN) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", t);
            cJSON_AddBoolToObject(a, "single_word", false);
            cJSON_AddBoolToObject(a, "lstrip", false);
            cJSON_AddBoolToObject(a, "rstrip", false);
            cJSON_AddBoolToObject(a, "normalized", false);
            cJSON_AddBoolToObject(a, "special", types[i] != TT_USER);
            cJSON_AddItemToArray(added, a);
        }
    }
    if (lt_gguf_find_key(g, "tokenizer.ggml.merges") >= 0) {
        if ((st = lt_gguf_get_arr_info(g, "tokenizer.ggml.merges", &et, &nm, err))) goto done;
        for (uint64_t i = 0; i < nm && et == LT_GGUF_TYPE_STRING; i++) {
            const char *t;
            if ((st = lt_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &t, NULL, err))) goto done;
            cJSON_AddItemToArray(merges, cJSON_CreateString(t));
        }
    }
    // special tokens and what the post-processor adds
    int32_t ids[4] = {opt_u32(g, "tokenizer.ggml.bos_token_id"),
                      opt_u32(g, "tokenizer.ggml.eos_token_id"),
                      opt_u32(g, "tokenizer.ggml.padding_token_id"),
                      opt_u32(g, "tokenizer.ggml.unknown_token_id")};
    bool add_bos = false, add_eos = false;
    if (lt_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0)
        lt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, NULL);
    if (lt_gguf_find_key(g, "tokenizer.ggml.add_eos_token") >= 0)
        lt_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, NULL);
    const char *names[4] = {NULL, NULL, NULL, NULL};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0 && (uint64_t)ids[k] < n)
            lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)ids[k], &names[k], NULL,
                                NULL);
    if ((add_bos && names[0]) || (add_eos && names[1])) {
        cJSON *tp = cJSON_CreateObject(), *single = cJSON_CreateArray(),
              *pair = cJSON_CreateArray(), *sp = cJSON_CreateObject();
        cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
        for (int side = 0; side < 2; side++) { // single, then pair
            cJSON *arr = side ? pair : single;
            for (int part = 0; part < (side ? 2 : 1); part++) {
                char seq[2] = {(char)('A' + part), 0};
                if (add_bos && names[0]) {
                    cJSON *o = cJSON_CreateObject(), *x = cJSON_CreateObject();
                    cJSON_AddStringToObject(x, "id", names[0]);
                    cJSON_AddNumberToObject(x, "type_id", part);
                    cJSON_AddItemToObject(o, "SpecialToken", x);
                    cJSON_AddItemToArray(arr, o);
                }
                cJSON *o = cJSON_CreateObject(), *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "id", seq);
                cJSON_AddNumberToObject(x, "type_id", part);
                cJSON_AddItemToObject(o, "Sequence", x);
                cJSON_AddItemToArray(arr, o);
                if (add_eos && names[1]) {
                    cJSON *e = cJSON_CreateObject(), *y = cJSON_CreateObject();
                    cJSON_AddStringToObject(y, "id", names[1]);
                    cJSON_AddNumberToObject(y, "type_id", part);
                    cJSON_AddItemToObject(e, "SpecialToken", y);
                    cJSON_AddItemToArray(arr, e);
                }
            }
        }
        for (int k = 0; k < 2; k++) {
            if (!(k ? add_eos : add_bos) || !names[k] ||
                cJSON_GetObjectItemCaseSensitive(sp, names[k]))
                continue;
            cJSON *o = cJSON_CreateObject(), *idsj = cJSON_CreateArray(),
                  *toks = cJSON_CreateArray();
            cJSON_AddStringToObject(o, "id", names[k]);
            cJSON_AddItemToArray(idsj, cJSON_CreateNumber(ids[k]));
            cJSON_AddItemToArray(toks, cJSON_CreateString(names[k]));
            cJSON_AddItemToObject(o, "ids", idsj);
            cJSON_AddItemToObject(o, "tokens", toks);
            cJSON_AddItemToObject(sp, names[k], o);
        }
        cJSON_AddItemToObject(tp, "single", single);
        cJSON_AddItemToObject(tp, "pair", pair);
        cJSON_AddItemToObject(tp, "special_tokens", sp);
        cJSON_AddItemToObject(j, "post_processor", tp);
    } else {
        cJSON_AddItemToObject(j, "post_processor", byte_level(true, true, false));
    }
    cJSON_AddItemToObject(j, "decoder", byte_level(true, true, true));
    cJSON_AddStringToObject(mdl, "type", "BPE");
    cJSON_AddNullToObject(mdl, "dropout");
    cJSON_AddNullToObject(mdl, "unk_token");
    cJSON_AddNullToObject(mdl, "continuing_subword_prefix");
    cJSON_AddNullToObject(mdl, "end_of_word_suffix");
    cJSON_AddBoolToObject(mdl, "fuse_unk", false);
    cJSON_AddBoolToObject(mdl, "byte_fallback", false);
    cJSON_AddBoolToObject(mdl, "ignore_merges", ignore_merges);
    cJSON_AddItemToObject(mdl, "vocab", vocab);
    cJSON_AddItemToObject(mdl, "merges", merges);
    vocab = merges = NULL;
    cJSON_AddItemToObject(j, "model", mdl);
    mdl = NULL;
    // tokenizer_config.json
    cJSON_AddBoolToObject(cfg, "add_bos_token", add_bos);
    cJSON_AddBoolToObject(cfg, "add_eos_token", add_eos);
    const char *ck[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    for (int k = 0; k < 4; k++) {
        if (names[k])
            cJSON_AddStringToObject(cfg, ck[k], names[k]);
        else
            cJSON_AddNullToObject(cfg, ck[k]);
    }
    const char *tmpl;
    if (lt_gguf_find_key(g, "tokenizer.chat_template") >= 0 &&
        !lt_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL, NULL))
        cJSON_AddStringToObject(cfg, "chat_template", tmpl);
    cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", false);
    if (max_len > 0) cJSON_AddNumberToObject(cfg, "model_max_length", max_len);
    cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
    char *a = cJSON_PrintUnformatted(j), *b = cJSON_Print(cfg);
    if (!a || !b) {
        if (a) cJSON_free(a);
        if (b) cJSON_free(b);
        goto oom;
    }
    *tokenizer_json = a;
    *tokenizer_config = b;
    st = LT_OK;
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "%s: out of memory writing tokenizer.json", path);
done:
    lt_free(types);
    smap_free(&seen);
    cJSON_Delete(vocab);
    cJSON_Delete(merges);
    cJSON_Delete(mdl);
    cJSON_Delete(cfg);
    cJSON_Delete(j);
    return st;
}

// ---------------------------------------------------------------------------------------------
// the model

static const char *gguf_arch(const lt_model *m) {
    if (m->arch.qkv == LT_QKV_FUSED) return "gpt2";
    if (m->arch.qkv == LT_QKV_FUSED_HEADS) return "gptneox";
    return !strcmp(m->arch.model_type, "qwen2") ? "qwen2" : "llama";
}

static lt_status arch_u32(lt_gguf_kv *kv, const char *arch, const char *key, uint32_t v,
                          lt_err *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return kv_u32(kv, k, v, err);
}
static lt_status arch_f32(lt_gguf_kv *kv, const char *arch, const char *key, float v, lt_err *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return kv_f32(kv, k, v, err);
}

static uint32_t file_type(lt_dtype d) {
    switch (d) { // gguf-py LlamaFileType
    case LT_DTYPE_F32:
        return 0;
    case LT_DTYPE_F16:
        return 1;
    case LT_DTYPE_Q8_0:
        return 7;
    case LT_DTYPE_BF16:
        return 32;
    default:
        return 0;
    }
}

static void base_name(const char *path, char *out, size_t n) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/') tmp[--len] = 0;
    const char *s = strrchr(tmp, '/');
    s = s ? s + 1 : tmp;
    snprintf(out, n, "%s", s);
    char *dot = strrchr(out, '.');
    if (dot && (!strcmp(dot, ".gguf") || !strcmp(dot, ".bin"))) *dot = 0;
}

lt_status lt_export_gguf(lt_model *m, const char *base_path, const char *out_path,
                         const lt_export_opts *o, lt_err *err) {
    if (lt_model_check_exportable(m, "GGUF export", err)) return err ? err->code : LT_ERR_UNSUPPORTED;
    lt_dtype D = o->dtype == LT_DTYPE_KEEP ? LT_DTYPE_F16 : o->dtype;
    if (D != LT_DTYPE_F32 && D != LT_DTYPE_F16 && D != LT_DTYPE_BF16 && D != LT_DTYPE_Q8_0)
        return lt_err_set(err, LT_ERR_ARG, "export: dtype %s is not one of f32, f16, bf16, q8_0",
                          lt_dtype_name(D));
    const lt_config *c = &m->cfg;
    const char *arch = gguf_arch(m);
    bool llama = !strcmp(arch, "llama"), gpt = m->arch.norm == LT_NORM_LAYER;
    bool neox = !strcmp(arch, "gptneox");
    if (!gpt && c->rot_dim != c->head_dim)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "export: partial rotary (%d of %d dims) is not "
                          "supported for %s",
                          c->rot_dim, c->head_dim, arch);
    if (c->sliding_window > 0)
        lt_warn(
            "export: %s uses a sliding window of %d tokens; llama.cpp's %s graph attends to the "
            "whole context (as convert_hf_to_gguf.py writes mistral), so outputs differ past "
            "%d tokens",
            m->arch.model_type, c->sliding_window, arch, c->sliding_window);
    lt_gguf_kv *kv = lt_gguf_kv_new();
    int n_mt = lt_model_tensors(m, NULL, 0);
    lt_model_tensor *mt = lt_calloc((size_t)n_mt, sizeof *mt);
    lt_out_tensor *ts = lt_calloc((size_t)n_mt, sizeof *ts);
    lt_status st;
    if (!kv || !mt || !ts) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    lt_model_tensors(m, mt, n_mt);
    int n_fallback = 0;
    for (int i = 0; i < n_mt; i++) {
        lt_out_tensor *t = &ts[i];
        const lt_model_tensor *s = &mt[i];
        bool vec = s->w == NULL;
        lt_dtype d = vec ? LT_DTYPE_F32 : D;
        if (d == LT_DTYPE_Q8_0 && s->cols % 32) d = LT_DTYPE_F16, n_fallback++;
        snprintf(t->name, sizeof t->name, "%s", s->gguf_name);
        t->dtype = d;
        t->ndim = vec ? 1 : 2;
        t->shape[0] = vec ? s->cols : s->rows;
        t->shape[1] = s->cols;
        t->nbytes = lt_dtype_nbytes(d, s->rows * s->cols);
        t->src = *s;
        if (llama && (s->mod == LT_MOD_Q || s->mod == LT_MOD_K))
            t->perm_hs = c->head_dim;
        else if (neox && s->mod == LT_MOD_Q)
            t->qkv_heads = c->n_head;
        else if (!vec && s->w->dtype == d && !(s->lin && s->lin->lora))
            t->raw = s->w->data; // unchanged, already in the output dtype
    }
    if (n_fallback)
        lt_info("export: %d tensors with rows not a multiple of 32 written as F16", n_fallback);
    // general
    char name[256];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        base_name(base_path, name, sizeof name);
    if ((st = kv_str(kv, "general.architecture", arch, strlen(arch), err)) ||
        (st = kv_str(kv, "general.type", "model", 5, err)) ||
        (st = kv_str(kv, "general.name", name, strlen(name), err)) ||
        (st = kv_u32(kv, "general.file_type", file_type(D), err)))
        goto done;
    if (D == LT_DTYPE_Q8_0 && (st = kv_u32(kv, "general.quantization_version", 2, err))) goto done;
    // hyper-parameters (LlamaModel / Qwen2Model / GPT2Model / GPTNeoXModel set_gguf_parameters)
    if (gpt) {
        if ((st = arch_u32(kv, arch, "context_length", (uint32_t)c->max_pos, err)) ||
            (st = arch_u32(kv, arch, "embedding_length", (uint32_t)c->n_embd, err)) ||
            (st = arch_u32(kv, arch, "block_count", (uint32_t)c->n_layer, err)) ||
            (st = arch_u32(kv, arch, "feed_forward_length", (uint32_t)c->n_ff, err)) ||
            (st = arch_u32(kv, arch, "attention.head_count", (uint32_t)c->n_head, err)) ||
            (st = arch_f32(kv, arch, "attention.layer_norm_epsilon", c->norm_eps, err)))
            goto done;
        if (neox) {
            char k[96];
            snprintf(k, sizeof k, "%s.use_parallel_residual", arch);
            if ((st = arch_u32(kv, arch, "rope.dimension_count", (uint32_t)c->rot_dim, err)) ||
                (st = arch_f32(kv, arch, "rope.freq_base", c->rope_theta, err)) ||
                (st = kv_bool(kv, k, m->arch.parallel_residual, err)))
                goto done;
        }
    } else if ((st = arch_u32(kv, arch, "vocab_size", (uint32_t)c->n_vocab, err)) ||
        (st = arch_u32(kv, arch, "context_length", (uint32_t)c->max_pos, err)) ||
        (st = arch_u32(kv, arch, "embedding_length", (uint32_t)c->n_embd, err)) ||
        (st = arch_u32(kv, arch, "block_count", (uint32_t)c->n_layer, err)) ||
        (st = arch_u32(kv, arch, "feed_forward_length", (uint32_t)c->n_ff, err)) ||
        (st = arch_u32(kv, arch, "attention.head_count", (uint32_t)c->n_head, err)) ||
        (st = arch_u32(kv, arch, "attention.head_count_kv", (uint32_t)c->n_head_kv, err)) ||
        (st = arch_u32(kv, arch, "rope.dimension_count", (uint32_t)c->rot_dim, err)) ||
        (st = arch_f32(kv, arch, "rope.freq_base", c->rope_theta, err)) ||
        (st = arch_f32(kv, arch, "attention.layer_norm_rms_epsilon", c->norm_eps, err)))
        goto done;
    if (!gpt && c->head_dim * c->n_head != c->n_embd &&
        ((st = arch_u32(kv, arch, "attention.key_length", (uint32_t)c->head_dim, err)) ||
         (st = arch_u32(kv, arch, "attention.value_length", (uint32_t)c->head_dim, err))))
        goto done;
    // tokenizer
    struct stat sb;
    const char *tok = o->tokenizer_path;
    if (!tok && m->gguf) {
        for (int64_t i = 0; i < lt_gguf_kv_count(m->gguf); i++) {
            const char *key = lt_gguf_kv_key(m->gguf, i);
            if (!strncmp(key, "tokenizer.", 10) && (st = kv_copy(kv, m->gguf, key, err))) goto done;
        }
    } else {
        char tp[4096];
        if (!tok && stat(base_path, &sb) == 0 && S_ISDIR(sb.st_mode) &&
            lt_path_join(tp, sizeof tp, base_path, "tokenizer.json") && lt_file_exists(tp))
            tok = base_path;
        if (tok) {
            lt_err terr = {0};
            lt_status ts2 = lt_gguf_kv_tokenizer_hf(kv, tok, c->n_vocab, c, &terr);
            if (ts2 == LT_ERR_UNSUPPORTED)
                lt_warn("export: no tokenizer keys written: %s", terr.msg);
            else if (ts2) {
                st = ts2;
                if (err) *err = terr;
                goto done;
            }
        } else {
            lt_warn(
                "export: %s has no tokenizer.json; the GGUF has no vocabulary (give --tokenizer)",
                base_path);
        }
    }
    lt_info("writing %s (%d tensors, %s)", out_path, n_mt, lt_dtype_name(D));
    st = gguf_write(out_path, kv, ts, n_mt, err);
done:
    lt_free(ts);
    lt_free(mt);
    lt_gguf_kv_free(kv);
    return st;
}

// ---------------------------------------------------------------------------------------------
// LoRA adapters

static const char *gguf_mod_name(const lt_model *m, int k) {
    static const char *n[LT_MOD_PER_LAYER] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                              "ffn_gate", "ffn_up", "ffn_down"};
    if (k == LT_MOD_Q && m->arch.qkv != LT_QKV_SEPARATE) return "attn_qkv"; // GPT-2, NeoX
    return n[k];
}

// The llama.cpp weight name of the module an adapter module adapts, and its (layer, kind).
static bool mod_location(const lt_model *m, const lt_lora_mod *mod, int *layer, int *kind) {
    if (mod->lin == &m->lm_head) {
        *layer = -1, *kind = LT_MOD_LM_HEAD;
        return true;
    }
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++)
            if (mod->lin == &m->layers[l].lin[k]) {
                *layer = l, *kind = k;
                return true;
            }
    return false;
}

lt_status lt_export_gguf_lora(const lt_model *m, const lt_adapter *a, const char *out_path,
                              lt_dtype dtype, lt_err *err) {
    if (lt_model_check_exportable(m, "GGUF LoRA export", err)) return err ? err->code : LT_ERR_UNSUPPORTED;
    lt_dtype D = dtype == LT_DTYPE_KEEP ? LT_DTYPE_F32 : dtype;
    if (D != LT_DTYPE_F32 && D != LT_DTYPE_F16 && D != LT_DTYPE_BF16)
        return lt_err_set(err, LT_ERR_ARG,
                          "export gguf-lora: dtype %s is not one of f32, f16, bf16",
                          lt_dtype_name(D));
    if (a->n_labels > 0)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "export gguf-lora: the adapter has a "
                          "classification head (%d labels), which llama.cpp LoRA files cannot hold",
                          a->n_labels);
    const char *arch = gguf_arch(m);
    bool llama = !strcmp(arch, "llama"), neox = !strcmp(arch, "gptneox");
    lt_gguf_kv *kv = lt_gguf_kv_new();
    lt_out_tensor *ts = lt_calloc((size_t)(2 * a->n_mod + 1), sizeof *ts);
    lt_status st;
    if (!kv || !ts) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < a->n_mod; i++) {
        const lt_lora_mod *mod = &a->mods[i];
        int l, k;
        if (!mod_location(m, mod, &l, &k)) {
            st = lt_err_set(err, LT_ERR_ARG,
                            "export gguf-lora: module %d is not attached to this "
                            "model",
                            i);
            goto done;
        }
        if (k == LT_MOD_LM_HEAD && m->arch.tied_head) {
            st =
                lt_err_set(err, LT_ERR_UNSUPPORTED,
                           "export gguf-lora: the adapter targets lm_head, "
                           "which this model ties to the embedding; llama.cpp has no output.weight "
                           "to apply it to (merge it instead: loratune export --format gguf)");
            goto done;
        }
        char base[64];
        if (k == LT_MOD_LM_HEAD)
            snprintf(base, sizeof base, "output.weight");
        else
            snprintf(base, sizeof base, "blk.%d.%s.weight", l, gguf_mod_name(m, k));
        for (int b = 0; b < 2; b++) {
            lt_out_tensor *t = &ts[2 * i + b];
            int64_t rows = b ? mod->out : mod->r, cols = b ? mod->r : mod->in;
            snprintf(t->name, sizeof t->name, "%s.lora_%c", base, b ? 'b' : 'a');
            t->dtype = D;
            t->ndim = 2;
            t->shape[0] = rows, t->shape[1] = cols;
            t->nbytes = lt_dtype_nbytes(D, rows * cols);
            t->src.rows = rows, t->src.cols = cols;
            t->own_mat = true;
            lt_mat_init(&t->mat, LT_DTYPE_F32, rows, cols, b ? mod->B : mod->A);
            if (b && llama && (k == LT_MOD_Q || k == LT_MOD_K))
                t->perm_hs = m->cfg.head_dim;
            else if (b && neox && k == LT_MOD_Q) // lora_b rows follow attn_qkv's [q | k | v]
                t->qkv_heads = m->cfg.n_head;
            else if (D == LT_DTYPE_F32)
                t->raw = b ? (const void *)mod->B : (const void *)mod->A;
        }
    }
    // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is alpha * sqrt(r) / r
    float alpha = a->cfg.rslora ? a->cfg.alpha * sqrtf((float)a->cfg.r) : a->cfg.alpha;
    char name[256];
    base_name(m->src_path ? m->src_path : "model", name, sizeof name);
    if ((st = kv_str(kv, "general.architecture", arch, strlen(arch), err)) ||
        (st = kv_str(kv, "general.type", "adapter", 7, err)) ||
        (st = kv_str(kv, "general.name", name, strlen(name), err)) ||
        (st = kv_u32(kv, "general.file_type", file_type(D), err)) ||
        (st = kv_str(kv, "adapter.type", "lora", 4, err)) ||
        (st = kv_f32(kv, "adapter.lora.alpha", alpha, err)))
        goto done;
    lt_info("writing %s (%d LoRA modules, rank %d, alpha %g%s)", out_path, a->n_mod, a->cfg.r,
            (double)alpha, a->cfg.rslora ? " = rsLoRA alpha * sqrt(r)" : "");
    st = gguf_write(out_path, kv, ts, 2 * a->n_mod, err);
done:
    lt_free(ts);
    lt_gguf_kv_free(kv);
    return st;
}

// "blk.N.<mod>.weight" or "output.weight" -> (layer, kind); false for anything else.
static bool parse_lora_base(const lt_model *m, const char *name, size_t n, int *layer, int *kind) {
    if (n == 13 && !strncmp(name, "output.weight", 13)) {
        *layer = -1, *kind = LT_MOD_LM_HEAD;
        return true;
    }
    if (n < 5 || strncmp(name, "blk.", 4)) return false;
    const char *p = name + 4;
    int l = 0, digits = 0;
    while (p < name + n && *p >= '0' && *p <= '9' && digits < 7)
        l = l * 10 + (*p++ - '0'), digits++;
    if (!digits || p >= name + n || *p != '.' || l >= m->cfg.n_layer) return false;
    p++;
    for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
        const char *g = gguf_mod_name(m, k);
        size_t gl = strlen(g);
        if ((size_t)(name + n - p) == gl + 7 && !strncmp(p, g, gl) &&
            !strncmp(p + gl, ".weight", 7)) {
            *layer = l, *kind = k;
            return true;
        }
    }
    return false;
}

lt_status lt_adapter_load_gguf_lora(lt_model *m, const char *path, lt_adapter **out, lt_err *err) {
    lt_gguf *g = NULL;
    lt_adapter *a = NULL;
    float *tmp = NULL;
    lt_status st = lt_gguf_open(path, &g, err);
    if (st) return st;
    const char *s;
    if (lt_gguf_find_key(g, "general.type") >= 0) {
        if ((st = lt_gguf_get_str(g, "general.type", &s, NULL, err))) goto fail;
        if (strcmp(s, "adapter")) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: general.type is \"%s\", not \"adapter\"", path,
                            s);
            goto fail;
        }
    }
    if ((st = lt_gguf_get_str(g, "adapter.type", &s, NULL, err))) goto fail;
    if (strcmp(s, "lora")) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: adapter.type \"%s\" is not lora", path, s);
        goto fail;
    }
    if ((st = lt_gguf_get_str(g, "general.architecture", &s, NULL, err))) goto fail;
    if (strcmp(s, gguf_arch(m))) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: adapter for architecture \"%s\", the model is %s",
                        path, s, gguf_arch(m));
        goto fail;
    }
    double alpha = 0;
    if (lt_gguf_find_key(g, "adapter.lora.alpha") >= 0 &&
        (st = lt_gguf_get_float(g, "adapter.lora.alpha", &alpha, err)))
        goto fail;
    lt_lora_config cfg = {.layer_lo = 0, .layer_hi = -1};
    int lo = m->cfg.n_layer, hi = -1, r = -1;
    int64_t nt = lt_gguf_tensor_count(g);
    for (int64_t i = 0; i < nt; i++) {
        const lt_gguf_tensor *t = lt_gguf_tensor_at(g, i);
        size_t n = strlen(t->name);
        int l, k;
        bool is_b = n > 7 && !strcmp(t->name + n - 7, ".lora_b");
        if (!(n > 7 && (is_b || !strcmp(t->name + n - 7, ".lora_a"))) ||
            !parse_lora_base(m, t->name, n - 7, &l, &k)) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: tensor %s is not a LoRA tensor of a projection "
                            "loratune adapts (blk.N.attn_q.weight.lora_a, ...)",
                            path, t->name);
            goto fail;
        }
        if (t->n_dims != 2 ||
            !(t->dtype == LT_DTYPE_F32 || t->dtype == LT_DTYPE_F16 || t->dtype == LT_DTYPE_BF16)) {
            st =
                lt_err_set(err, LT_ERR_UNSUPPORTED,
                           "%s: tensor %s must be a 2-D f32/f16/bf16 "
                           "matrix (found %d dims, %s)",
                           path, t->name, t->n_dims,
                           lt_ggml_type_name(t->ggml_type) ? lt_ggml_type_name(t->ggml_type) : "?");
            goto fail;
        }
        int tr = (int)(is_b ? t->shape[1] : t->shape[0]);
        if (r < 0) r = tr;
        if (tr != r || r <= 0) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                            "%s: tensor %s has rank %d, others %d (one rank "
                            "per adapter is supported)",
                            path, t->name, tr, r);
            goto fail;
        }
        cfg.targets |= 1u << k;
        if (k != LT_MOD_LM_HEAD) {
            if (l < lo) lo = l;
            if (l > hi) hi = l;
        }
    }
    if (!cfg.targets) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: no LoRA tensors", path);
        goto fail;
    }
    if (hi >= 0) cfg.layer_lo = lo, cfg.layer_hi = hi + 1;
    cfg.r = r;
    cfg.alpha = alpha > 0 ? (float)alpha : (float)r; // alpha 0: llama.cpp applies scale 1
    if ((st = lt_adapter_new(m, &cfg, 0, &a, err))) goto fail;
    if (nt != 2 * a->n_mod) {
        st = lt_err_set(err, LT_ERR_FORMAT,
                        "%s: %lld tensors, but the modules they name need %d "
                        "(lora_a and lora_b of each targeted projection in every adapted layer)",
                        path, (long long)nt, 2 * a->n_mod);
        goto fail;
    }
    bool llama = !strcmp(gguf_arch(m), "llama"), neox = !strcmp(gguf_arch(m), "gptneox");
    for (int i = 0; i < a->n_mod; i++) {
        lt_lora_mod *mod = &a->mods[i];
        int l = 0, k = 0;
        mod_location(m, mod, &l, &k);
        for (int b = 0; b < 2; b++) {
            char name[96];
            if (k == LT_MOD_LM_HEAD)
                snprintf(name, sizeof name, "output.weight.lora_%c", b ? 'b' : 'a');
            else
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, gguf_mod_name(m, k),
                         b ? 'b' : 'a');
            const lt_gguf_tensor *t = lt_gguf_find_tensor(g, name);
            int64_t rows = b ? mod->out : mod->r, cols = b ? mod->r : mod->in;
            if (!t) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s: tensor %s is missing", path, name);
                goto fail;
            }
            if (t->shape[0] != rows || t->shape[1] != cols) {
                st = lt_err_set(err, LT_ERR_SHAPE,
                                "%s: tensor %s has shape [%lld, %lld], expected "
                                "[%lld, %lld]",
                                path, name, (long long)t->shape[0], (long long)t->shape[1],
                                (long long)rows, (long long)cols);
                goto fail;
            }
            float *dst = b ? mod->B : mod->A;
            bool qkv = b && neox && k == LT_MOD_Q;
            if ((b && llama && (k == LT_MOD_Q || k == LT_MOD_K)) || qkv) {
                if (!(tmp = lt_alloc(sizeof(float) * (size_t)(rows * cols)))) {
                    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
                    goto fail;
                }
                lt_to_f32(t->dtype, t->data, tmp, rows * cols);
                if (qkv) // [q | k | v] rows back into HF's per-head [q k v]
                    for (int64_t q = 0; q < rows; q++)
                        memcpy(dst + lt_qkv_heads_src_row(q, m->cfg.n_head, m->cfg.head_dim) * cols,
                               tmp + q * cols, sizeof(float) * (size_t)cols);
                else
                    lt_model_unpermute_rope_rows(dst, tmp, (int)(rows / m->cfg.head_dim),
                                                 m->cfg.head_dim, sizeof(float) * (size_t)cols);
                lt_free(tmp);
                tmp = NULL;
            } else {
                lt_to_f32(t->dtype, t->data, dst, rows * cols);
            }
        }
    }
    lt_gguf_close(g);
    *out = a;
    return LT_OK;
fail:
    lt_free(tmp);
    lt_adapter_free(a);
    lt_gguf_close(g);
    return st;
}
