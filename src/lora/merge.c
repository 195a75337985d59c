/*
 * merge.c - LoRA merged into the base weights (W' = W + s * B @ A, in f32, rounded once), the
 * Hugging Face model-directory writer (sharded safetensors + index, config.json, tokenizer files;
 * streamed, all files committed together) and the --verify logits check.
 * Not here: GGUF output (export_gguf.c), the model's tensor list and names (src/model/export.c).
 * References: peft/tuners/lora/layer.py (merge, get_delta_weight), transformers
 * modeling_utils.save_pretrained (shard names "model-00001-of-00002.safetensors", the index
 * {"metadata": {"total_size"}, "weight_map"}), safetensors format (io.h).
 */
#include "lora/merge.h"
#include "core/core.h"
#include "ops/ops.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// merged rows

void lt_merge_rows(const lt_model_tensor *t, int64_t r0, int64_t n, float *dst) {
    int64_t cols = t->cols;
    if (!t->w) { // an f32 vector
        LT_ASSERT(r0 == 0 && n == 1 && t->vec);
        memcpy(dst, t->vec, sizeof(float) * (size_t)cols);
        return;
    }
    for (int64_t r = 0; r < n; r++)
        lt_to_f32(t->w->dtype, lt_mat_row(t->w, r0 + r), dst + r * cols, cols);
    const lt_lora_mod *lm = t->lin ? t->lin->lora : NULL;
    if (lm) { // dst(n, in) += s * B[r0 : r0+n] (n, r) @ A (r, in)
        LT_ASSERT(lm->in == cols && r0 + n <= lm->out);
        lt_sgemm(false, false, n, cols, lm->r, lm->scale, lm->B + r0 * lm->r, lm->r, lm->A, cols,
                 1.0f, dst, cols);
    }
}

// ---------------------------------------------------------------------------------------------
// writing planned tensors

#define CHUNK_FLOATS ((int64_t)1 << 22) // 16 MB of f32 rows per block

size_t lt_out_chunk_floats(const lt_out_tensor *t) {
    int64_t cols = t->src.cols, rows = t->src.rows;
    int64_t ch = CHUNK_FLOATS / (cols > 0 ? cols : 1);
    if (t->perm_hs > 0 && rows > 1) ch = (ch / t->perm_hs + 1) * t->perm_hs;
    if (ch < 1) ch = 1;
    if (ch > rows) ch = rows;
    return (size_t)(ch * cols);
}

lt_status lt_out_tensor_write(FILE *f, const lt_out_tensor *t, lt_out_scratch *scr, lt_err *err) {
    if (t->raw) {
        if (t->nbytes && fwrite(t->raw, 1, t->nbytes, f) != t->nbytes)
            return lt_err_set(err, LT_ERR_IO, "writing tensor %s: %s", t->name, strerror(errno));
        return LT_OK;
    }
    lt_model_tensor s = t->src;
    if (t->own_mat) s.w = &t->mat;
    int64_t cols = s.cols, rows = s.rows;
    int64_t ch = (int64_t)lt_out_chunk_floats(t) / cols;
    LT_ASSERT(ch >= 1 && (size_t)(ch * cols) <= scr->floats);
    LT_ASSERT(t->perm_hs <= 0 || rows == 1 || ch % t->perm_hs == 0);
    size_t written = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += ch) {
        int64_t n = rows - r0 < ch ? rows - r0 : ch;
        int64_t cnt = n * cols;
        lt_merge_rows(&s, r0, n, scr->buf);
        const float *vals = scr->buf;
        if (t->perm_hs > 0) {
            if (rows == 1) // a bias: permute its elements
                lt_model_permute_rope_rows(scr->buf2, scr->buf, (int)(cols / t->perm_hs), t->perm_hs,
                                           sizeof(float));
            else
                lt_model_permute_rope_rows(scr->buf2, scr->buf, (int)(n / t->perm_hs), t->perm_hs,
                                           sizeof(float) * (size_t)cols);
            vals = scr->buf2;
        }
        size_t nb = lt_dtype_nbytes(t->dtype, cnt);
        if (t->dtype == LT_DTYPE_Q8_0) lt_quantize_q8_0(vals, scr->enc, cnt);
        else lt_from_f32(t->dtype, vals, scr->enc, cnt);
        if (nb && fwrite(scr->enc, 1, nb, f) != nb)
            return lt_err_set(err, LT_ERR_IO, "writing tensor %s: %s", t->name, strerror(errno));
        written += nb;
    }
    LT_ASSERT(written == t->nbytes);
    return LT_OK;
}

// Scratch for lt_out_tensor_write over a set of tensors: the largest chunk among them.
lt_status lt_out_scratch_new(const lt_out_tensor *ts, int n, lt_out_scratch *s, lt_err *err) {
    size_t mx = 1;
    for (int i = 0; i < n; i++)
        if (!ts[i].raw) {
            size_t c = lt_out_chunk_floats(&ts[i]);
            if (c > mx) mx = c;
        }
    s->floats = mx;
    s->buf = lt_alloc(mx * sizeof(float));
    s->buf2 = lt_alloc(mx * sizeof(float));
    s->enc = lt_alloc(mx * sizeof(float));
    if (!s->buf || !s->buf2 || !s->enc) {
        lt_out_scratch_free(s);
        return lt_err_set(err, LT_ERR_OOM, "out of memory (%zu floats of scratch)", mx);
    }
    return LT_OK;
}

void lt_out_scratch_free(lt_out_scratch *s) {
    lt_free(s->buf);
    lt_free(s->buf2);
    lt_free(s->enc);
    s->buf = s->buf2 = NULL;
    s->enc = NULL;
}

// Fills t->src as a view of any float tensor (HF file tensors loratune has no model slot for);
// rows = shape[0] (1 for vectors and scalars), cols = the rest.
static bool view_st_tensor(lt_out_tensor *t, const lt_st_tensor *st) {
    int64_t rows = st->ndim >= 2 ? st->shape[0] : 1;
    int64_t cols = rows ? st->numel / rows : 0;
    if (cols <= 0 || !lt_dtype_is_float(st->dtype)) return false;
    if (!lt_mat_init(&t->mat, st->dtype, rows, cols, st->data)) return false;
    t->own_mat = true;
    t->src.rows = rows, t->src.cols = cols;
    return true;
}

// ---------------------------------------------------------------------------------------------
// a small growable text buffer (headers, index)

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = lt_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) LT_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp) b->oom = true;
    else sb_put(b, tmp, (size_t)k);
}
static void sb_json_str(sbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

// ---------------------------------------------------------------------------------------------
// HF directory

static bool path_join(char *buf, size_t n, const char *dir, const char *name) {
    return lt_path_join(buf, n, dir, name);
}

// The output files, all open as temporaries until everything is written.
typedef struct {
    lt_afile *files;
    int n, cap;
} afiles;

static lt_status afiles_open(afiles *fs, const char *path, lt_afile **out, lt_err *err) {
    if (fs->n == fs->cap) {
        int cap = fs->cap ? 2 * fs->cap : 16;
        lt_afile *p = lt_realloc(fs->files, sizeof *p * (size_t)cap);
        if (!p) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        fs->files = p, fs->cap = cap;
    }
    lt_status st = lt_afile_open(&fs->files[fs->n], path, err);
    if (st) return st;
    *out = &fs->files[fs->n++];
    return LT_OK;
}

static void afiles_abort(afiles *fs) {
    for (int i = 0; i < fs->n; i++) lt_afile_abort(&fs->files[i]);
    lt_free(fs->files);
    memset(fs, 0, sizeof *fs);
}

// Commits every file; after a failure the rest are aborted (already renamed ones stay: a rename
// failing halfway through is not something a temp-file scheme can undo).
static lt_status afiles_commit(afiles *fs, lt_err *err) {
    lt_status st = LT_OK;
    for (int i = 0; i < fs->n; i++) {
        if (!st) st = lt_afile_commit(&fs->files[i], err);
        else lt_afile_abort(&fs->files[i]);
    }
    lt_free(fs->files);
    memset(fs, 0, sizeof *fs);
    return st;
}

static lt_status write_text(afiles *fs, const char *dir, const char *name, const char *text,
                            lt_err *err) {
    char path[4096];
    if (!path_join(path, sizeof path, dir, name))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    lt_afile *a;
    lt_status st = afiles_open(fs, path, &a, err);
    if (st) return st;
    fputs(text, a->f); // checked at commit
    return LT_OK;
}

static lt_status copy_file(afiles *fs, const char *src_dir, const char *dir, const char *name,
                           lt_err *err) {
    char src[4096];
    if (!path_join(src, sizeof src, src_dir, name))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", src_dir);
    if (!lt_file_exists(src)) return LT_OK;
    char *data = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(src, &data, &n, err);
    if (st) return st;
    char path[4096];
    lt_afile *a;
    if (!path_join(path, sizeof path, dir, name))
        st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    else if (!(st = afiles_open(fs, path, &a, err)) && n)
        fwrite(data, 1, n, a->f);
    lt_free(data);
    return st;
}

// One safetensors file with tensors ts[0..n), streamed.
static lt_status write_st_file(afiles *fs, const char *path, const lt_out_tensor *ts, int n,
                               lt_out_scratch *scr, lt_err *err) {
    sbuf h = {0};
    sb_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const lt_out_tensor *t = &ts[i];
        sb_puts(&h, ",");
        sb_json_str(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", lt_dtype_name(t->dtype));
        for (int k = 0; k < t->ndim; k++) sb_printf(&h, k ? ",%" PRId64 : "%" PRId64, t->shape[k]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + (uint64_t)t->nbytes);
        off += t->nbytes;
    }
    sb_puts(&h, "}");
    while (!h.oom && h.n % 8) sb_puts(&h, " ");
    if (h.oom) {
        lt_free(h.p);
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory building the header", path);
    }
    lt_afile *a;
    lt_status st = afiles_open(fs, path, &a, err);
    if (st) {
        lt_free(h.p);
        return st;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    fwrite(len, 1, 8, a->f);
    fwrite(h.p, 1, h.n, a->f);
    lt_free(h.p);
    for (int i = 0; i < n && !st; i++) {
        st = lt_out_tensor_write(a->f, &ts[i], scr, err);
        if (st) lt_err_wrap(err, "%s", path);
    }
    return st;
}

static const char *torch_dtype_name(lt_dtype d) {
    switch (d) {
    case LT_DTYPE_F32: return "float32";
    case LT_DTYPE_F16: return "float16";
    case LT_DTYPE_BF16: return "bfloat16";
    default: return "float32";
    }
}

static lt_status plan_add(lt_out_tensor **ts, int *n, int *cap, lt_out_tensor **out, lt_err *err) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 256;
        lt_out_tensor *p = lt_realloc(*ts, sizeof *p * (size_t)c);
        if (!p) return lt_err_set(err, LT_ERR_OOM, "out of memory planning the output");
        *ts = p, *cap = c;
    }
    *out = &(*ts)[(*n)++];
    memset(*out, 0, sizeof **out);
    return LT_OK;
}

// Fills name/dtype/shape/nbytes of a tensor produced from its model source.
static void set_out(lt_out_tensor *t, const char *name, lt_dtype d, int ndim, int64_t r, int64_t c) {
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = d;
    t->ndim = ndim;
    t->shape[0] = ndim == 1 ? c : r;
    t->shape[1] = c;
    t->nbytes = lt_dtype_nbytes(d, r * c);
}

static bool same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return false;
    return !strcmp(ra, rb);
}

// Tensors of a HF base: every tensor of its files, in file order, adapted ones merged.
static lt_status plan_hf(lt_model *m, const lt_merge_opts *o, const lt_model_tensor *mt, int n_mt,
                         lt_out_tensor **ts, int *n, int *cap, bool *untied, lt_err *err) {
    lt_status st;
    for (int i = 0; i < lt_st_set_count(m->st); i++) {
        const lt_st_tensor *s = lt_st_set_at(m->st, i);
        lt_dtype d = s->dtype;
        if (o->dtype != LT_DTYPE_KEEP && lt_dtype_is_float(s->dtype)) d = o->dtype;
        const lt_model_tensor *src = NULL;
        for (int k = 0; k < n_mt && !src; k++)
            if (mt[k].lin && mt[k].lin->lora && !strcmp(mt[k].hf_name, s->name)) src = &mt[k];
        lt_out_tensor *t;
        if ((st = plan_add(ts, n, cap, &t, err))) return st;
        if (strlen(s->name) >= sizeof t->name)
            return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: tensor name %.60s... is too long",
                              lt_st_set_file_of(m->st, s->name), s->name);
        snprintf(t->name, sizeof t->name, "%s", s->name);
        t->dtype = d;
        t->ndim = s->ndim;
        for (int k = 0; k < s->ndim && k < 2; k++) t->shape[k] = s->shape[k];
        if (s->ndim > 2)
            return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: tensor %s has %d dimensions (merge "
                              "writes up to 2)", lt_st_set_file_of(m->st, s->name), s->name, s->ndim);
        t->nbytes = lt_dtype_nbytes(d, s->numel);
        if (src) {
            t->src = *src;
        } else if (d == s->dtype) {
            t->raw = s->data;
            t->nbytes = s->nbytes;
        } else if (!view_st_tensor(t, s)) {
            return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: tensor %s (%s) cannot be converted to %s",
                              lt_st_set_file_of(m->st, s->name), s->name, lt_dtype_name(s->dtype),
                              lt_dtype_name(d));
        }
    }
    // a tied head with LoRA becomes its own lm_head.weight
    for (int k = 0; k < n_mt; k++)
        if (mt[k].mod == LT_MOD_LM_HEAD && m->arch.tied_head && !lt_st_set_find(m->st, "lm_head.weight")) {
            lt_out_tensor *t;
            if ((st = plan_add(ts, n, cap, &t, err))) return st;
            lt_dtype d = o->dtype != LT_DTYPE_KEEP ? o->dtype : mt[k].w->dtype;
            set_out(t, mt[k].hf_name, d, 2, mt[k].rows, mt[k].cols);
            t->src = mt[k];
            *untied = true;
        }
    return LT_OK;
}

// Tensors of a GGUF / llama2.c base, all in one dtype.
static lt_status plan_model(lt_model *m, lt_dtype d, const lt_model_tensor *mt, int n_mt,
                            lt_out_tensor **ts, int *n, int *cap, lt_err *err) {
    for (int k = 0; k < n_mt; k++) {
        lt_out_tensor *t;
        lt_status st = plan_add(ts, n, cap, &t, err);
        if (st) return st;
        bool vec = mt[k].w == NULL;
        set_out(t, mt[k].hf_name, d, vec ? 1 : 2, mt[k].rows, mt[k].cols);
        t->src = mt[k];
        if (!vec && mt[k].w->dtype == d && !(mt[k].lin && mt[k].lin->lora))
            t->raw = mt[k].w->data; // unchanged and already in the output dtype
    }
    (void)m;
    return LT_OK;
}

// KEEP for a model without a HF directory: the matrices' common 16-bit dtype, else f32.
static lt_dtype keep_dtype(const lt_model_tensor *mt, int n_mt) {
    lt_dtype d = LT_DTYPE_COUNT;
    for (int k = 0; k < n_mt; k++) {
        if (!mt[k].w) continue;
        lt_dtype x = mt[k].w->dtype;
        if (x != LT_DTYPE_F16 && x != LT_DTYPE_BF16) return LT_DTYPE_F32;
        if (d == LT_DTYPE_COUNT) d = x;
        else if (d != x) return LT_DTYPE_F32;
    }
    return d == LT_DTYPE_COUNT ? LT_DTYPE_F32 : d;
}

static lt_status config_for_hf(const char *base_dir, const lt_merge_opts *o, lt_dtype keep_d,
                               bool untied, char **text, lt_err *err) {
    char path[4096];
    if (!path_join(path, sizeof path, base_dir, "config.json"))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", base_dir);
    cJSON *j;
    lt_status st = lt_json_parse_file(path, &j, err);
    if (st) return st;
    if (o->dtype != LT_DTYPE_KEEP) {
        const char *dn = torch_dtype_name(keep_d);
        bool any = false;
        const char *keys[] = {"torch_dtype", "dtype"};
        for (int i = 0; i < 2; i++)
            if (cJSON_GetObjectItemCaseSensitive(j, keys[i])) {
                cJSON_ReplaceItemInObjectCaseSensitive(j, keys[i], cJSON_CreateString(dn));
                any = true;
            }
        if (!any) cJSON_AddStringToObject(j, "torch_dtype", dn);
    }
    if (untied) {
        if (cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings"))
            cJSON_ReplaceItemInObjectCaseSensitive(j, "tie_word_embeddings", cJSON_CreateBool(0));
        else
            cJSON_AddBoolToObject(j, "tie_word_embeddings", false);
    }
    *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!*text) return lt_err_set(err, LT_ERR_OOM, "out of memory writing config.json");
    return LT_OK;
}

static const char *tokenizer_files[] = {
    "tokenizer.json",    "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "tokenizer.model", "chat_template.jinja",
    "vocab.json",        "merges.txt",            "added_tokens.json",
};

lt_status lt_merge_save_hf(lt_model *m, const char *base_path, const char *out_dir,
                           const lt_merge_opts *o, lt_err *err) {
    lt_status st;
    lt_merge_opts opts = *o;
    if (!opts.shard_bytes) opts.shard_bytes = 2000000000ull;
    if (opts.dtype != LT_DTYPE_KEEP && opts.dtype != LT_DTYPE_F32 && opts.dtype != LT_DTYPE_F16 &&
        opts.dtype != LT_DTYPE_BF16)
        return lt_err_set(err, LT_ERR_ARG, "merge: dtype %s is not one of keep, f32, f16, bf16",
                          lt_dtype_name(opts.dtype));
    bool hf = m->st != NULL;
    if (hf && lt_file_exists(out_dir) && same_dir(out_dir, base_path))
        return lt_err_set(err, LT_ERR_ARG, "merge: the output directory %s is the base model's "
                          "directory; choose another --out", out_dir);
    int n_mt = lt_model_tensors(m, NULL, 0);
    lt_model_tensor *mt = lt_calloc((size_t)n_mt, sizeof *mt);
    lt_out_tensor *ts = NULL;
    int n = 0, cap = 0;
    afiles fs = {0};
    lt_out_scratch scr = {0};
    char *cfg_text = NULL;
    sbuf idx = {0};
    int *shard_of = NULL;
    if (!mt) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_model_tensors(m, mt, n_mt);
    bool untied = false;
    lt_dtype cfg_dtype = opts.dtype;
    if (hf) {
        if ((st = plan_hf(m, &opts, mt, n_mt, &ts, &n, &cap, &untied, err))) goto fail;
        if ((st = config_for_hf(base_path, &opts, cfg_dtype, untied, &cfg_text, err))) goto fail;
    } else {
        if (cfg_dtype == LT_DTYPE_KEEP) cfg_dtype = keep_dtype(mt, n_mt);
        if ((st = plan_model(m, cfg_dtype, mt, n_mt, &ts, &n, &cap, err))) goto fail;
        cJSON *j;
        if ((st = lt_model_hf_config(m, torch_dtype_name(cfg_dtype), &j, err))) goto fail;
        cfg_text = cJSON_Print(j);
        cJSON_Delete(j);
        if (!cfg_text) {
            st = lt_err_set(err, LT_ERR_OOM, "out of memory writing config.json");
            goto fail;
        }
    }
    for (int i = 0; i < n; i++)
        if (ts[i].nbytes == 0 && ts[i].src.rows * ts[i].src.cols > 0 && !ts[i].raw) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "tensor %s: size overflows", ts[i].name);
            goto fail;
        }
    // shards: greedy in file order, a new one when the next tensor would pass the limit
    shard_of = lt_alloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!shard_of) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    int n_shards = n ? 1 : 0;
    uint64_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (cur && cur + ts[i].nbytes > opts.shard_bytes) n_shards++, cur = 0;
        shard_of[i] = n_shards - 1;
        cur += ts[i].nbytes;
        total += ts[i].nbytes;
    }
    if (n_shards > 99999) {
        st = lt_err_set(err, LT_ERR_ARG, "merge: %d shards of at most %" PRIu64 " bytes are too "
                        "many; raise --shard-size", n_shards, opts.shard_bytes);
        goto fail;
    }
    if ((st = lt_mkdir_p(out_dir, err))) goto fail;
    if ((st = lt_out_scratch_new(ts, n, &scr, err))) goto fail;
    char path[4096], fname[64];
    for (int s = 0, i0 = 0; s < n_shards; s++) {
        int i1 = i0;
        while (i1 < n && shard_of[i1] == s) i1++;
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        if (!path_join(path, sizeof path, out_dir, fname)) {
            st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", out_dir);
            goto fail;
        }
        lt_info("writing %s (%d tensors)", path, i1 - i0);
        if ((st = write_st_file(&fs, path, ts + i0, i1 - i0, &scr, err))) goto fail;
        i0 = i1;
    }
    if (n_shards > 1) {
        sb_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n  \"weight_map\": {", total);
        for (int i = 0; i < n; i++) {
            sb_puts(&idx, i ? ",\n    " : "\n    ");
            sb_json_str(&idx, ts[i].name);
            sb_printf(&idx, ": \"model-%05d-of-%05d.safetensors\"", shard_of[i] + 1, n_shards);
        }
        sb_puts(&idx, "\n  }\n}\n");
        if (idx.oom) {
            st = lt_err_set(err, LT_ERR_OOM, "out of memory building the index");
            goto fail;
        }
        if ((st = write_text(&fs, out_dir, "model.safetensors.index.json", idx.p, err))) goto fail;
    }
    if ((st = write_text(&fs, out_dir, "config.json", cfg_text, err))) goto fail;
    if (hf)
        for (size_t i = 0; i < sizeof tokenizer_files / sizeof *tokenizer_files; i++)
            if ((st = copy_file(&fs, base_path, out_dir, tokenizer_files[i], err))) goto fail;
    if ((st = afiles_commit(&fs, err))) goto fail;
    // a stale weight file of the other layout would win over (or confuse) what was just written
    const char *stale = n_shards > 1 ? "model.safetensors" : "model.safetensors.index.json";
    if (path_join(path, sizeof path, out_dir, stale) && lt_file_exists(path)) {
        lt_info("removing the stale %s", path);
        unlink(path);
    }
    st = LT_OK;
fail:
    afiles_abort(&fs);
    lt_out_scratch_free(&scr);
    lt_free(idx.p);
    lt_free(shard_of);
    if (cfg_text) cJSON_free(cfg_text);
    lt_free(ts);
    lt_free(mt);
    return st;
}

// ---------------------------------------------------------------------------------------------
// --verify

double lt_verify_rel_tol(lt_dtype written) {
    switch (written) {
    case LT_DTYPE_F32: return 1e-4;
    case LT_DTYPE_F16: return 1e-2;
    case LT_DTYPE_BF16: return 5e-2;
    default: return 1e-1; // Q8_0
    }
}

static lt_status run_logits(lt_model *m, int B, int T, const int32_t *ids, float *out, lt_err *err) {
    lt_ctx_opts co = {.B = B, .T = T};
    lt_ctx *c;
    lt_status st = lt_ctx_new(m, &co, &c, err);
    if (st) return st;
    lt_batch b = {.ids = ids};
    st = lt_model_logits(m, c, &b, out, err);
    lt_ctx_free(c);
    return st;
}

// Detaches (or restores) every LoRA module of m; saved holds the (L*7 + 1) pointers.
static void swap_lora(lt_model *m, lt_lora_mod **saved, bool detach) {
    int k = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int j = 0; j < LT_MOD_PER_LAYER; j++, k++) {
            lt_linear *li = &m->layers[l].lin[j];
            if (detach) saved[k] = li->lora, li->lora = NULL;
            else li->lora = saved[k];
        }
    if (detach) saved[k] = m->lm_head.lora, m->lm_head.lora = NULL;
    else m->lm_head.lora = saved[k];
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; // NaN propagates as the maximum
    }
    return mx;
}

// Prompt length: 32 tokens, within both models' positions; when only one of them applies a
// sliding window (e.g. a mistral written as llama GGUF, which llama.cpp runs without one), no
// longer than that window, where the two are the same function.
static int verify_len(const lt_model *a, const lt_model *b) {
    int T = 32;
    if (a->cfg.max_pos < T) T = a->cfg.max_pos;
    if (b->cfg.max_pos < T) T = b->cfg.max_pos;
    if (a->cfg.sliding_window != b->cfg.sliding_window) {
        int w = a->cfg.sliding_window, v = b->cfg.sliding_window;
        if (w > 0 && w < T) T = w;
        if (v > 0 && v < T) T = v;
    }
    return T;
}

lt_status lt_verify_models(lt_model *ref, lt_model *got, double tol_rel, lt_verify_result *res,
                           lt_err *err) {
    const int B = 3;
    int T = verify_len(ref, got);
    int V = ref->cfg.n_vocab;
    if (got->cfg.n_vocab != V || got->cfg.n_embd != ref->cfg.n_embd ||
        got->cfg.n_layer != ref->cfg.n_layer)
        return lt_err_set(err, LT_ERR_SHAPE, "verify: the written model (%d layers, hidden %d, "
                          "vocab %d) does not match the base (%d, %d, %d)", got->cfg.n_layer,
                          got->cfg.n_embd, got->cfg.n_vocab, ref->cfg.n_layer, ref->cfg.n_embd, V);
    size_t nl = (size_t)B * (size_t)T * (size_t)V;
    int32_t *ids = lt_alloc(sizeof(int32_t) * (size_t)(B * T));
    float *lr = lt_alloc(sizeof(float) * nl), *lg = lt_alloc(sizeof(float) * nl);
    lt_lora_mod **saved = lt_calloc((size_t)ref->cfg.n_layer * LT_MOD_PER_LAYER + 1, sizeof *saved);
    lt_status st = LT_OK;
    if (!ids || !lr || !lg || !saved) {
        st = lt_err_set(err, LT_ERR_OOM, "verify: out of memory for %zu logits", nl);
        goto done;
    }
    // fixed prompts: BOS (or 1) then pseudo-random ids, the same on every run
    lt_rng rng;
    lt_rng_seed(&rng, 0x5eed);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            ids[b * T + t] = t == 0 ? (ref->cfg.bos_id >= 0 && ref->cfg.bos_id < V ? ref->cfg.bos_id : 1 % V)
                                    : (int32_t)lt_rng_below(&rng, (uint64_t)V);
    if ((st = run_logits(ref, B, T, ids, lr, err))) goto done;
    if ((st = run_logits(got, B, T, ids, lg, err))) goto done;
    double md = max_abs_diff(lr, lg, nl), mr = 0;
    for (size_t i = 0; i < nl; i++) mr = fabs((double)lr[i]) > mr ? fabs((double)lr[i]) : mr;
    swap_lora(ref, saved, true);
    st = run_logits(ref, B, T, ids, lg, err);
    swap_lora(ref, saved, false);
    if (st) goto done;
    res->B = B, res->T = T;
    res->max_diff = md;
    res->max_ref = mr;
    res->lora_effect = max_abs_diff(lr, lg, nl);
    res->tol = tol_rel * (mr > 1 ? mr : 1);
    res->ok = md <= res->tol;
done:
    lt_free(ids);
    lt_free(lr);
    lt_free(lg);
    lt_free(saved);
    return st;
}

lt_status lt_verify_gguf_lora(lt_model *m, const char *path, double tol_rel, lt_verify_result *res,
                              lt_err *err) {
    const int B = 3;
    int T = verify_len(m, m);
    int V = m->cfg.n_vocab;
    size_t nl = (size_t)B * (size_t)T * (size_t)V;
    int32_t *ids = lt_alloc(sizeof(int32_t) * (size_t)(B * T));
    float *lr = lt_alloc(sizeof(float) * nl), *lg = lt_alloc(sizeof(float) * nl);
    lt_lora_mod **saved = lt_calloc((size_t)m->cfg.n_layer * LT_MOD_PER_LAYER + 1, sizeof *saved);
    lt_adapter *b = NULL;
    lt_status st = LT_OK;
    bool detached = false;
    if (!ids || !lr || !lg || !saved) {
        st = lt_err_set(err, LT_ERR_OOM, "verify: out of memory for %zu logits", nl);
        goto done;
    }
    lt_rng rng;
    lt_rng_seed(&rng, 0x5eed);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++)
            ids[r * T + t] = t == 0 ? (m->cfg.bos_id >= 0 && m->cfg.bos_id < V ? m->cfg.bos_id : 1 % V)
                                    : (int32_t)lt_rng_below(&rng, (uint64_t)V);
    if ((st = run_logits(m, B, T, ids, lr, err))) goto done;
    swap_lora(m, saved, true);
    detached = true;
    if ((st = run_logits(m, B, T, ids, lg, err))) goto done;
    res->lora_effect = max_abs_diff(lr, lg, nl);
    if ((st = lt_adapter_load_gguf_lora(m, path, &b, err))) goto done;
    if ((st = run_logits(m, B, T, ids, lg, err))) goto done;
    double mr = 0;
    for (size_t i = 0; i < nl; i++) mr = fabs((double)lr[i]) > mr ? fabs((double)lr[i]) : mr;
    res->B = B, res->T = T;
    res->max_diff = max_abs_diff(lr, lg, nl);
    res->max_ref = mr;
    res->tol = tol_rel * (mr > 1 ? mr : 1);
    res->ok = res->max_diff <= res->tol;
done:
    lt_adapter_free(b); // detaches the loaded modules
    if (detached) swap_lora(m, saved, false);
    lt_free(ids);
    lt_free(lr);
    lt_free(lg);
    lt_free(saved);
    return st;
}

lt_dtype lt_merge_written_dtype(const lt_model *m, lt_dtype requested) {
    if (requested != LT_DTYPE_KEEP) return requested;
    int n = lt_model_tensors(m, NULL, 0);
    lt_model_tensor *mt = lt_calloc((size_t)n, sizeof *mt);
    if (!mt) return LT_DTYPE_F32;
    lt_model_tensors(m, mt, n);
    lt_dtype d = LT_DTYPE_F32;
    if (m->st) { // HF: each tensor keeps its dtype; the coarsest one sets the tolerance
        for (int i = 0; i < n; i++)
            if (mt[i].w && mt[i].w->dtype == LT_DTYPE_BF16) d = LT_DTYPE_BF16;
            else if (mt[i].w && mt[i].w->dtype == LT_DTYPE_F16 && d != LT_DTYPE_BF16) d = LT_DTYPE_F16;
    } else {
        d = keep_dtype(mt, n);
    }
    lt_free(mt);
    return d;
}
