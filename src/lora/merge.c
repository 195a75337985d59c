/*
 * merge.c - LoRA merged into the base weights (W' = W + s * B @ A, in f32, rounded once), the
 * Hugging Face model-directory writer (sharded safetensors + index, config.json, tokenizer files;
 * streamed, all files committed together) and the --verify check (configuration, every weight
 * against the exact merge within its dtype's rounding, logits against the unmerged model).
 * Not here: GGUF output (export_gguf.c), the model's tensor list and names (src/model/export.c).
 * References: peft/tuners/lora/layer.py (merge, get_delta_weight), transformers
 * modeling_utils.save_pretrained (shard names "model-00001-of-00002.safetensors", the index
 * {"metadata": {"total_size"}, "weight_map"}), safetensors format (io.h).
 */
#include "lora/merge.h"
#include "core/core.h"
#include "io/gguf.h"
#include "ops/ops.h"

#include <dirent.h>
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

// Rows [c0, c0 + n) of t written transposed, i.e. columns c0.. of the merged (out, in) matrix:
// dst (n, t->rows). The LoRA term's columns are A[:, c0:c0+n]^T @ B^T. tmp: n floats.
static void merge_cols(const lt_model_tensor *t, int64_t c0, int64_t n, float *dst, float *tmp) {
    int64_t rows = t->rows;
    for (int64_t r = 0; r < rows; r++) {
        lt_mat_row_to_f32(t->w, r, c0, n, tmp);
        for (int64_t i = 0; i < n; i++) dst[i * rows + r] = tmp[i];
    }
    const lt_lora_mod *lm = t->lin ? t->lin->lora : NULL;
    if (lm) {
        LT_ASSERT(lm->out == rows && c0 + n <= lm->in);
        lt_sgemm(true, true, n, rows, lm->r, lm->scale, lm->A + c0, lm->in, lm->B, lm->r, 1.0f,
                 dst, rows);
    }
}

int64_t lt_qkv_heads_src_row(int64_t r, int n_head, int64_t hs) {
    int64_t C = (int64_t)n_head * hs, j = r / C, h = (r % C) / hs, d = r % hs;
    return h * 3 * hs + j * hs + d;
}

// ---------------------------------------------------------------------------------------------
// writing planned tensors

#define CHUNK_FLOATS ((int64_t)1 << 22) // 16 MB of f32 rows per block

size_t lt_out_chunk_floats(const lt_out_tensor *t) {
    int64_t cols = t->transpose ? t->src.rows : t->src.cols;
    int64_t rows = t->transpose ? t->src.cols : t->src.rows;
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
    int64_t cols = t->transpose ? s.rows : s.cols, rows = t->transpose ? s.cols : s.rows;
    int64_t ch = (int64_t)lt_out_chunk_floats(t) / cols;
    LT_ASSERT(ch >= 1 && (size_t)(ch * cols) <= scr->floats);
    LT_ASSERT(t->perm_hs <= 0 || rows == 1 || ch % t->perm_hs == 0);
    size_t written = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += ch) {
        int64_t n = rows - r0 < ch ? rows - r0 : ch;
        int64_t cnt = n * cols;
        if (t->transpose)
            merge_cols(&s, r0, n, scr->buf, scr->buf2);
        else if (t->qkv_heads > 0 && rows > 1)
            for (int64_t i = 0; i < n; i++)
                lt_merge_rows(&s, lt_qkv_heads_src_row(r0 + i, t->qkv_heads, rows / (3 * t->qkv_heads)), 1,
                              scr->buf + i * cols);
        else
            lt_merge_rows(&s, r0, n, scr->buf);
        const float *vals = scr->buf;
        if (t->qkv_heads > 0 && rows == 1) { // a bias: regroup its elements
            for (int64_t i = 0; i < cols; i++)
                scr->buf2[i] = scr->buf[lt_qkv_heads_src_row(i, t->qkv_heads, cols / (3 * t->qkv_heads))];
            vals = scr->buf2;
        }
        if (t->perm_hs > 0) {
            if (rows == 1) // a bias: permute its elements
                lt_model_permute_rope_rows(scr->buf2, scr->buf, (int)(cols / t->perm_hs),
                                           t->perm_hs, sizeof(float));
            else
                lt_model_permute_rope_rows(scr->buf2, scr->buf, (int)(n / t->perm_hs), t->perm_hs,
                                           sizeof(float) * (size_t)cols);
            vals = scr->buf2;
        }
        size_t nb = lt_dtype_nbytes(t->dtype, cnt);
        if (t->dtype == LT_DTYPE_Q8_0)
            lt_quantize_q8_0(vals, scr->enc, cnt);
        else
            lt_from_f32(t->dtype, vals, scr->enc, cnt);
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
static void sb_puts(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}
static void sb_printf(sbuf *b, const char *fmt, ...) LT_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp)
        b->oom = true;
    else
        sb_put(b, tmp, (size_t)k);
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
        if (!st)
            st = lt_afile_commit(&fs->files[i], err);
        else
            lt_afile_abort(&fs->files[i]);
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
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
                  off + (uint64_t)t->nbytes);
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
    case LT_DTYPE_F32:
        return "float32";
    case LT_DTYPE_F16:
        return "float16";
    case LT_DTYPE_BF16:
        return "bfloat16";
    default:
        return "float32";
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
static void set_out(lt_out_tensor *t, const char *name, lt_dtype d, int ndim, int64_t r,
                    int64_t c) {
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
            return lt_err_set(err, LT_ERR_UNSUPPORTED,
                              "%s: tensor %s has %d dimensions (merge "
                              "writes up to 2)",
                              lt_st_set_file_of(m->st, s->name), s->name, s->ndim);
        t->nbytes = lt_dtype_nbytes(d, s->numel);
        if (src) {
            t->src = *src;
            t->transpose = src->transposed;
            int64_t er = src->transposed ? src->cols : src->rows;
            int64_t ec = src->transposed ? src->rows : src->cols;
            if (s->ndim != 2 || s->shape[0] != er || s->shape[1] != ec)
                return lt_err_set(err, LT_ERR_SHAPE,
                                  "%s: tensor %s has %d dims [%lld, ...], the model has it as "
                                  "[%lld, %lld]",
                                  lt_st_set_file_of(m->st, s->name), s->name, s->ndim,
                                  (long long)s->shape[0], (long long)er, (long long)ec);
        } else if (d == s->dtype) {
            t->raw = s->data;
            t->nbytes = s->nbytes;
        } else if (!view_st_tensor(t, s)) {
            return lt_err_set(err, LT_ERR_UNSUPPORTED,
                              "%s: tensor %s (%s) cannot be converted to %s",
                              lt_st_set_file_of(m->st, s->name), s->name, lt_dtype_name(s->dtype),
                              lt_dtype_name(d));
        }
    }
    // every adapted projection must have been found in the files under its name (else the
    // output would silently hold the unmerged weight)
    for (int k = 0; k < n_mt; k++) {
        if (!mt[k].lin || !mt[k].lin->lora || mt[k].mod == LT_MOD_LM_HEAD) continue;
        bool found = false;
        for (int i = 0; i < *n && !found; i++) found = !strcmp((*ts)[i].name, mt[k].hf_name);
        if (!found)
            return lt_err_set(err, LT_ERR_FORMAT, "merge: the adapted weight %s is not in the "
                              "base model's files", mt[k].hf_name);
    }
    // a tied head with LoRA becomes its own lm_head.weight
    for (int k = 0; k < n_mt; k++)
        if (mt[k].mod == LT_MOD_LM_HEAD && m->arch.tied_head &&
            !lt_st_set_find(m->st, "lm_head.weight")) {
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
        bool vec = mt[k].w == NULL, tr = mt[k].transposed;
        set_out(t, mt[k].hf_name, d, vec ? 1 : 2, tr ? mt[k].cols : mt[k].rows,
                tr ? mt[k].rows : mt[k].cols);
        t->src = mt[k];
        t->transpose = tr; // GPT-2 Conv1D: HF stores (in, out)
        if (!vec && !tr && mt[k].w->dtype == d && !(mt[k].lin && mt[k].lin->lora))
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
        if (d == LT_DTYPE_COUNT)
            d = x;
        else if (d != x)
            return LT_DTYPE_F32;
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

// Turns the config into a *ForSequenceClassification one (text in *text is replaced).
static lt_status config_add_cls(char **text, const lt_merge_opts *o, lt_err *err) {
    cJSON *j = NULL, *lj = NULL;
    lt_status st = lt_json_parse(*text, strlen(*text), "config.json", &j, err);
    if (st) return st;
    if (o->labels_json && lt_file_exists(o->labels_json) &&
        (st = lt_json_parse_file(o->labels_json, &lj, err)))
        goto done;
    int nl = o->cls->n_labels;
    cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures"), *it;
    cJSON_ArrayForEach(it, arch) {
        char b[160];
        const char *s = cJSON_IsString(it) ? it->valuestring : "";
        const char *suf = strstr(s, "ForCausalLM");
        if (!suf) suf = strstr(s, "LMHeadModel"); // GPT2LMHeadModel
        if (!suf) continue;
        snprintf(b, sizeof b, "%.*sForSequenceClassification", (int)(suf - s), s);
        cJSON_SetValuestring(it, b);
    }
    cJSON *i2l = cJSON_CreateObject(), *l2i = cJSON_CreateObject();
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(lj, "id2label");
    for (int k = 0; k < nl; k++) {
        char key[32], def[48];
        snprintf(key, sizeof key, "%d", k);
        snprintf(def, sizeof def, "LABEL_%d", k);
        const char *name = lt_json_str(src, key, def);
        cJSON_AddStringToObject(i2l, key, name);
        if (!cJSON_GetObjectItemCaseSensitive(l2i, name)) cJSON_AddNumberToObject(l2i, name, k);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "id2label");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "label2id");
    cJSON_AddItemToObject(j, "id2label", i2l);
    cJSON_AddItemToObject(j, "label2id", l2i);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "num_labels");
    cJSON_AddNumberToObject(j, "num_labels", nl);
    const char *pt = lt_json_str(lj, "problem_type", "single_label_classification");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "problem_type");
    cJSON_AddStringToObject(j, "problem_type", pt);
    int64_t pad;
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(lj, "pad_token_id");
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(j, "pad_token_id");
    if (lt_json_as_int(pj, &pad) && (!cp || cJSON_IsNull(cp))) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "pad_token_id");
        cJSON_AddNumberToObject(j, "pad_token_id", (double)pad);
    }
    char *t = cJSON_Print(j);
    if (!t) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory writing config.json");
        goto done;
    }
    cJSON_free(*text);
    *text = t;
done:
    cJSON_Delete(lj);
    cJSON_Delete(j);
    return st;
}

static const char *tokenizer_files[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "tokenizer.model",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
};

// Weight files an earlier run left in out_dir that do not belong to what was just written: a
// model.safetensors would win over a new index (transformers and lt_st_set_open_dir load it
// first), an index beside a new single file, shards of another count. Best effort.
static void remove_stale(const char *out_dir, int n_shards) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        int a, b;
        char tail[8] = "";
        bool stale = false;
        if (n_shards > 1 && !strcmp(e->d_name, "model.safetensors")) stale = true;
        if (n_shards <= 1 && !strcmp(e->d_name, "model.safetensors.index.json")) stale = true;
        if (sscanf(e->d_name, "model-%5d-of-%5d.safetenso%7s", &a, &b, tail) == 3 &&
            !strcmp(tail, "rs") && (n_shards <= 1 || b != n_shards))
            stale = true;
        if (stale && path_join(path, sizeof path, out_dir, e->d_name)) {
            lt_info("removing the stale %s", path);
            unlink(path);
        }
    }
    closedir(d);
}

lt_status lt_merge_save_hf(lt_model *m, const char *base_path, const char *out_dir,
                           const lt_merge_opts *o, lt_err *err) {
    lt_status st = lt_model_check_exportable(m, "merge", err);
    if (st) return st;
    lt_merge_opts opts = *o;
    if (!opts.shard_bytes) opts.shard_bytes = 2000000000ull;
    if (opts.dtype != LT_DTYPE_KEEP && opts.dtype != LT_DTYPE_F32 && opts.dtype != LT_DTYPE_F16 &&
        opts.dtype != LT_DTYPE_BF16)
        return lt_err_set(err, LT_ERR_ARG, "merge: dtype %s is not one of keep, f32, f16, bf16",
                          lt_dtype_name(opts.dtype));
    bool hf = m->st != NULL;
    if (hf && lt_file_exists(out_dir) && same_dir(out_dir, base_path))
        return lt_err_set(err, LT_ERR_ARG,
                          "merge: the output directory %s is the base model's "
                          "directory; choose another --out",
                          out_dir);
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
    if (opts.cls && opts.cls->n_labels > 0 && opts.cls->score) {
        lt_out_tensor *t;
        if ((st = plan_add(&ts, &n, &cap, &t, err))) goto fail;
        lt_dtype d = cfg_dtype != LT_DTYPE_KEEP ? cfg_dtype : m->tok_embd.dtype;
        if (d != LT_DTYPE_F32 && d != LT_DTYPE_F16 && d != LT_DTYPE_BF16) d = LT_DTYPE_F32;
        set_out(t, "score.weight", d, 2, opts.cls->n_labels, m->cfg.n_embd);
        t->own_mat = true;
        t->src.rows = opts.cls->n_labels, t->src.cols = m->cfg.n_embd;
        lt_mat_init(&t->mat, LT_DTYPE_F32, opts.cls->n_labels, m->cfg.n_embd, opts.cls->score);
        if ((st = config_add_cls(&cfg_text, &opts, err))) goto fail;
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
        st = lt_err_set(err, LT_ERR_ARG,
                        "merge: %d shards of at most %" PRIu64 " bytes are too "
                        "many; raise --shard-size",
                        n_shards, opts.shard_bytes);
        goto fail;
    }
    if ((st = lt_mkdir_p(out_dir, err))) goto fail;
    if ((st = lt_out_scratch_new(ts, n, &scr, err))) goto fail;
    char path[4096], fname[64];
    for (int s = 0, i0 = 0; s < n_shards; s++) {
        int i1 = i0;
        while (i1 < n && shard_of[i1] == s) i1++;
        if (n_shards == 1)
            snprintf(fname, sizeof fname, "model.safetensors");
        else
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        if (!path_join(path, sizeof path, out_dir, fname)) {
            st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", out_dir);
            goto fail;
        }
        lt_info("writing %s (%d tensors)", path, i1 - i0);
        if ((st = write_st_file(&fs, path, ts + i0, i1 - i0, &scr, err))) goto fail;
        i0 = i1;
    }
    if (n_shards > 1) {
        sb_printf(&idx,
                  "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64
                  "\n  },\n  \"weight_map\": {",
                  total);
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
    if (m->gguf && lt_gguf_find_key(m->gguf, "tokenizer.ggml.model") >= 0) {
        char *tj = NULL, *tc = NULL;
        lt_err terr = {0};
        lt_status ts2 = lt_gguf_tokenizer_to_hf(m->gguf, m->cfg.max_pos, &tj, &tc, &terr);
        if (ts2 == LT_ERR_UNSUPPORTED) {
            lt_warn("merge: no tokenizer files written: %s", terr.msg);
        } else if (ts2) {
            if (err) *err = terr;
            st = ts2;
            goto fail;
        } else {
            st = write_text(&fs, out_dir, "tokenizer.json", tj, err);
            if (!st) st = write_text(&fs, out_dir, "tokenizer_config.json", tc, err);
            cJSON_free(tj);
            cJSON_free(tc);
            if (st) goto fail;
        }
    }
    if ((st = afiles_commit(&fs, err))) goto fail;
    remove_stale(out_dir, n_shards);
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
    case LT_DTYPE_F32:
        return 1e-3;
    case LT_DTYPE_F16:
        return 1e-1;
    default:
        return 5e-1; // BF16, Q8_0
    }
}

static lt_status run_logits(lt_model *m, int B, int T, const int32_t *ids, float *out,
                            lt_err *err) {
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
            if (detach)
                saved[k] = li->lora, li->lora = NULL;
            else
                li->lora = saved[k];
        }
    if (detach)
        saved[k] = m->lm_head.lora, m->lm_head.lora = NULL;
    else
        m->lm_head.lora = saved[k];
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

static void make_prompts(const lt_model *m, int B, int T, int32_t *ids) {
    int V = m->cfg.n_vocab;
    lt_rng rng;
    lt_rng_seed(&rng, 0x5eed); // BOS (or 1) then pseudo-random ids, the same on every run
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            ids[b * T + t] = t == 0
                                 ? (m->cfg.bos_id >= 0 && m->cfg.bos_id < V ? m->cfg.bos_id : 1 % V)
                                 : (int32_t)lt_rng_below(&rng, (uint64_t)V);
}

static bool config_same(const lt_model *ref, const lt_model *got, char *msg, size_t n) {
    const lt_config *a = &ref->cfg, *b = &got->cfg;
#define SAME_INT(f)                                                                                \
    if (a->f != b->f) {                                                                            \
        snprintf(msg, n, #f " is %d in the result, %d in the base", b->f, a->f);                   \
        return false;                                                                              \
    }
    SAME_INT(n_layer)
    SAME_INT(n_embd) SAME_INT(n_head) SAME_INT(n_head_kv) SAME_INT(head_dim) SAME_INT(n_ff)
        SAME_INT(n_vocab) SAME_INT(rot_dim) SAME_INT(max_pos)
#undef SAME_INT
            if (fabsf(a->rope_theta - b->rope_theta) > 1e-6f * a->rope_theta ||
                fabsf(a->norm_eps - b->norm_eps) > 1e-6f * a->norm_eps) {
        snprintf(msg, n, "rope theta / norm eps are %g / %g in the result, %g / %g in the base",
                 (double)b->rope_theta, (double)b->norm_eps, (double)a->rope_theta,
                 (double)a->norm_eps);
        return false;
    }
    if (ref->arch.qkv_bias != got->arch.qkv_bias ||
        got->arch.tied_head != (ref->arch.tied_head && !ref->lm_head.lora)) {
        snprintf(msg, n, "q/k/v bias %d / tied head %d in the result, %d / %d expected",
                 got->arch.qkv_bias, got->arch.tied_head, ref->arch.qkv_bias,
                 ref->arch.tied_head && !ref->lm_head.lora);
        return false;
    }
    msg[0] = 0;
    return true;
}

// Half a unit in the last place of x (an f32) in a float format with `mant` mantissa bits whose
// smallest normal exponent is min_exp (f16: 10, -14; bf16: 7, -126), from x's exponent bits.
static double half_ulp(float x, int mant, int min_exp) {
    uint32_t u;
    memcpy(&u, &x, 4);
    int e = (int)((u >> 23) & 0xff) - 127; // subnormal f32 (e = -127) is below both minimums
    if (e < min_exp) e = min_exp;
    return ldexp(0.5, e - mant);
}

// Compares a row of `cols` values written in dtype d (read back as f32) with the exact ones.
static void cmp_row(const float *got, const float *ex, int64_t cols, lt_dtype d, const char *name,
                    lt_verify_result *r) {
    double rowmax = 0;
    for (int64_t i = 0; i < cols; i++) rowmax = fmax(rowmax, fabs((double)ex[i]));
    double slack = rowmax * 9.5367431640625e-07 + 1e-30; // 2^-20 of the row: f32 arithmetic
    bool blocks = d == LT_DTYPE_Q8_0 || d == LT_DTYPE_Q4_0 || d == LT_DTYPE_Q4_1;
    double qstep = d == LT_DTYPE_Q8_0 ? 0.6 / 127 : 0.6 / 7, bblock = 0;
    for (int64_t i = 0; i < cols; i++) {
        double bnd = slack;
        if (d == LT_DTYPE_F16)
            bnd += half_ulp(ex[i], 10, -14);
        else if (d == LT_DTYPE_BF16)
            bnd += half_ulp(ex[i], 7, -126);
        else if (blocks) {
            if (i % 32 == 0) { // half a step of the block (+ the f16 rounding of its scale)
                double amax = 0;
                for (int64_t j = i; j < i + 32 && j < cols; j++)
                    amax = fmax(amax, fabs((double)ex[j]));
                bblock = qstep * amax;
            }
            bnd += bblock;
        }
        double q = fabs((double)got[i] - (double)ex[i]) / bnd;
        if (!(q <= 1.0)) r->n_bad++;
        if (!(q <= r->worst)) {
            r->worst = isnan(q) ? INFINITY : q;
            snprintf(r->worst_name, sizeof r->worst_name, "%s", name);
        }
    }
    r->n_weights += cols;
}

static lt_status verify_weights(lt_model *ref, lt_model *got, lt_dtype vec_dtype,
                                lt_verify_result *r, lt_err *err) {
    int n1 = lt_model_tensors(ref, NULL, 0), n2 = lt_model_tensors(got, NULL, 0);
    lt_model_tensor *t1 = lt_calloc((size_t)n1, sizeof *t1),
                    *t2 = lt_calloc((size_t)n2, sizeof *t2);
    float *ex = NULL, *gv = NULL;
    lt_status st = LT_OK;
    size_t cap = (size_t)1 << 20;
    if (!t1 || !t2 || !(ex = lt_alloc(cap * sizeof(float))) ||
        !(gv = lt_alloc(cap * sizeof(float)))) {
        st = lt_err_set(err, LT_ERR_OOM, "verify: out of memory");
        goto done;
    }
    lt_model_tensors(ref, t1, n1);
    lt_model_tensors(got, t2, n2);
    for (int i = 0; i < n1; i++) {
        const lt_model_tensor *a = &t1[i], *b = NULL;
        for (int j = 0; j < n2 && !b; j++)
            if (!strcmp(t2[j].hf_name, a->hf_name)) b = &t2[j];
        if (!b || b->rows != a->rows || b->cols != a->cols || (b->lin && b->lin->lora)) {
            r->n_bad++;
            r->worst = INFINITY;
            snprintf(r->worst_name, sizeof r->worst_name, "%s (%s)", a->hf_name,
                     b ? "shape differs" : "missing");
            continue;
        }
        lt_dtype d = b->w ? b->w->dtype : vec_dtype;
        int64_t ch = (int64_t)cap / a->cols;
        if (ch < 1) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "verify: rows of %s are too long", a->hf_name);
            goto done;
        }
        for (int64_t r0 = 0; r0 < a->rows; r0 += ch) {
            int64_t n = a->rows - r0 < ch ? a->rows - r0 : ch;
            lt_merge_rows(a, r0, n, ex);
            lt_merge_rows(b, r0, n, gv);
            for (int64_t k = 0; k < n; k++)
                cmp_row(gv + k * a->cols, ex + k * a->cols, a->cols, d, a->hf_name, r);
        }
    }
done:
    lt_free(t1);
    lt_free(t2);
    lt_free(ex);
    lt_free(gv);
    return st;
}

static void finish(lt_verify_result *r, double tol_rel) {
    r->tol = tol_rel * (r->max_ref > 1 ? r->max_ref : 1);
    r->logits_ok = r->max_diff <= r->tol;
    r->weights_ok = r->n_bad == 0 && r->n_weights > 0;
    r->ok = r->config_ok && r->weights_ok && r->logits_ok;
}

lt_status lt_verify_models(lt_model *ref, lt_model *got, lt_dtype vec_dtype, double tol_rel,
                           lt_verify_result *res, lt_err *err) {
    lt_verify_result r;
    memset(&r, 0, sizeof r);
    r.config_ok = config_same(ref, got, r.config_msg, sizeof r.config_msg);
    if (!r.config_ok) { // nothing else can be compared
        finish(&r, tol_rel);
        *res = r;
        return LT_OK;
    }
    lt_status st = verify_weights(ref, got, vec_dtype, &r, err);
    if (st) return st;
    const int B = 3;
    int T = verify_len(ref, got), V = ref->cfg.n_vocab;
    size_t nl = (size_t)B * (size_t)T * (size_t)V;
    int32_t *ids = lt_alloc(sizeof(int32_t) * (size_t)(B * T));
    float *lr = lt_alloc(sizeof(float) * nl), *lg = lt_alloc(sizeof(float) * nl);
    lt_lora_mod **saved = lt_calloc((size_t)ref->cfg.n_layer * LT_MOD_PER_LAYER + 1, sizeof *saved);
    if (!ids || !lr || !lg || !saved) {
        st = lt_err_set(err, LT_ERR_OOM, "verify: out of memory for %zu logits", nl);
        goto done;
    }
    make_prompts(ref, B, T, ids);
    if ((st = run_logits(ref, B, T, ids, lr, err))) goto done;
    if ((st = run_logits(got, B, T, ids, lg, err))) goto done;
    r.max_diff = max_abs_diff(lr, lg, nl);
    for (size_t i = 0; i < nl; i++) r.max_ref = fmax(r.max_ref, fabs((double)lr[i]));
    swap_lora(ref, saved, true);
    st = run_logits(ref, B, T, ids, lg, err);
    swap_lora(ref, saved, false);
    if (st) goto done;
    r.lora_effect = max_abs_diff(lr, lg, nl);
    r.B = B, r.T = T;
    finish(&r, tol_rel);
    *res = r;
done:
    lt_free(ids);
    lt_free(lr);
    lt_free(lg);
    lt_free(saved);
    return st;
}

// Compares the modules of a loaded GGUF LoRA (b) with the original ones in saved[].
static void verify_lora_weights(const lt_model *m, const lt_adapter *b, lt_lora_mod **saved,
                                lt_dtype d, lt_verify_result *r) {
    int n_orig = 0;
    for (int k = 0; k < m->cfg.n_layer * LT_MOD_PER_LAYER + 1; k++) n_orig += saved[k] != NULL;
    if (n_orig != b->n_mod) {
        r->n_bad++;
        r->worst = INFINITY;
        snprintf(r->worst_name, sizeof r->worst_name, "%d modules read back, %d written", b->n_mod,
                 n_orig);
    }
    for (int i = 0; i < b->n_mod; i++) {
        const lt_lora_mod *x = &b->mods[i], *o = NULL;
        int k = 0;
        for (int l = 0; l < m->cfg.n_layer && !o; l++)
            for (int j = 0; j < LT_MOD_PER_LAYER && !o; j++, k++)
                if (x->lin == &m->layers[l].lin[j]) o = saved[k];
        if (x->lin == &m->lm_head) o = saved[m->cfg.n_layer * LT_MOD_PER_LAYER];
        if (!o || o->r != x->r || fabsf(o->scale - x->scale) > 1e-6f * fabsf(o->scale)) {
            r->n_bad++;
            r->worst = INFINITY;
            snprintf(r->worst_name, sizeof r->worst_name, "%s (%s)", x->lin->name,
                     o ? "rank or scale differs" : "not in the original adapter");
            continue;
        }
        for (int rr = 0; rr < x->r; rr++)
            cmp_row(x->A + (size_t)rr * (size_t)x->in, o->A + (size_t)rr * (size_t)x->in, x->in, d,
                    x->lin->name, r);
        for (int rr = 0; rr < x->out; rr++)
            cmp_row(x->B + (size_t)rr * (size_t)x->r, o->B + (size_t)rr * (size_t)x->r, x->r, d,
                    x->lin->name, r);
    }
}

lt_status lt_verify_gguf_lora(lt_model *m, const char *path, lt_dtype file_dtype, double tol_rel,
                              lt_verify_result *res, lt_err *err) {
    lt_verify_result r;
    memset(&r, 0, sizeof r);
    r.config_ok = true;
    const int B = 3;
    int T = verify_len(m, m), V = m->cfg.n_vocab;
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
    make_prompts(m, B, T, ids);
    if ((st = run_logits(m, B, T, ids, lr, err))) goto done;
    swap_lora(m, saved, true);
    detached = true;
    if ((st = run_logits(m, B, T, ids, lg, err))) goto done;
    r.lora_effect = max_abs_diff(lr, lg, nl);
    if ((st = lt_adapter_load_gguf_lora(m, path, &b, err))) goto done;
    verify_lora_weights(m, b, saved, file_dtype, &r);
    if ((st = run_logits(m, B, T, ids, lg, err))) goto done;
    for (size_t i = 0; i < nl; i++) r.max_ref = fmax(r.max_ref, fabs((double)lr[i]));
    r.B = B, r.T = T;
    r.max_diff = max_abs_diff(lr, lg, nl);
    finish(&r, tol_rel);
    *res = r;
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
            if (mt[i].w && mt[i].w->dtype == LT_DTYPE_BF16)
                d = LT_DTYPE_BF16;
            else if (mt[i].w && mt[i].w->dtype == LT_DTYPE_F16 && d != LT_DTYPE_BF16)
                d = LT_DTYPE_F16;
    } else {
        d = keep_dtype(mt, n);
    }
    lt_free(mt);
    return d;
}

void lt_verify_cls_head(const lt_adapter *cls, const lt_model *got, lt_verify_result *r) {
    const lt_st_tensor *t = got->st ? lt_st_set_find(got->st, "score.weight") : NULL;
    int64_t C = got->cfg.n_embd;
    if (!t || t->ndim != 2 || t->shape[0] != cls->n_labels || t->shape[1] != C ||
        !lt_dtype_is_float(t->dtype) || lt_dtype_block(t->dtype) != 1) {
        r->n_bad++;
        r->worst = INFINITY;
        snprintf(r->worst_name, sizeof r->worst_name, "score.weight (missing or misshapen)");
    } else {
        float *row = lt_alloc(sizeof(float) * (size_t)C);
        if (!row) { // counted as a failed check rather than an error: the report says so
            r->n_bad++;
            snprintf(r->worst_name, sizeof r->worst_name, "score.weight (out of memory)");
        }
        size_t rb = lt_dtype_nbytes(t->dtype, C);
        for (int k = 0; row && k < cls->n_labels; k++) {
            lt_to_f32(t->dtype, (const char *)t->data + (size_t)k * rb, row, C);
            cmp_row(row, cls->score + (size_t)k * (size_t)C, C, t->dtype, "score.weight", r);
        }
        lt_free(row);
    }
    r->weights_ok = r->n_bad == 0 && r->n_weights > 0;
    r->ok = r->config_ok && r->weights_ok && r->logits_ok;
}
