/*
 * model.c - loading: config.json parsing, the HF tensor names of each family, llama2.c
 * checkpoints, and the shared bookkeeping (RoPE tables, small f32 copies, parameter counts).
 * Not here: the forward/backward math (forward.c).
 * References: transformers' modeling_llama.py / modeling_qwen2.py / modeling_mistral.py
 * (names and config keys), karpathy/llama2.c run.c (checkpoint layout),
 * transformers convert_llama_weights_to_hf.py (the permute() of wq/wk rows).
 */
#include "model/model_impl.h"
#include "core/core.h"
#include "io/gguf.h"
#include "ops/ops.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *mod_names[] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                  "gate_proj", "up_proj", "down_proj", "lm_head"};

const char *lt_mod_short_name(lt_mod_kind k) {
    return (unsigned)k <= LT_MOD_LM_HEAD ? mod_names[k] : "?";
}

void lt_model_free(lt_model *m) {
    if (!m) return;
    lt_st_set_close(m->st);
    lt_gguf_close(m->gguf);
    lt_free(m->owned);
    lt_model_quant_free(m->quant);
    lt_free(m->small);
    lt_free(m->layers);
    lt_free(m->rope_cos);
    lt_free(m->rope_sin);
    lt_free(m->src_path);
    lt_free(m);
}

int64_t lt_model_n_params(const lt_model *m) {
    const lt_config *c = &m->cfg;
    bool ln = m->arch.norm == LT_NORM_LAYER; // LayerNorm has a bias beside each weight
    int64_t nv = ln ? 2 * (int64_t)c->n_embd : c->n_embd;
    int64_t n = (int64_t)c->n_vocab * c->n_embd + nv; // embedding + final norm
    n += m->pos_embd.rows * m->pos_embd.cols;
    if (!m->arch.tied_head) n += (int64_t)c->n_vocab * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        n += 2 * nv;
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            n += (int64_t)li->in * li->out + (li->b ? li->out : 0);
        }
    }
    return n;
}

const char *lt_model_mod_name(const lt_model *m, int kind) {
    const char *name;
    if (kind == LT_MOD_LM_HEAD) name = m->lm_head.name;
    else if (kind < 0 || kind > LT_MOD_LM_HEAD || m->cfg.n_layer < 1 || m->layers[0].lin[kind].out == 0)
        return NULL;
    else name = m->layers[0].lin[kind].name;
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

// ---------------------------------------------------------------------------------------------
// shared setup

// Shapes of the seven projections of one block: (out, in).
static void mod_shape(const lt_config *c, int k, int *out, int *in) {
    int q = c->n_head * c->head_dim, kv = c->n_head_kv * c->head_dim;
    switch (k) {
    case LT_MOD_Q: *out = q, *in = c->n_embd; break;
    case LT_MOD_K:
    case LT_MOD_V: *out = kv, *in = c->n_embd; break;
    case LT_MOD_O: *out = c->n_embd, *in = q; break;
    case LT_MOD_GATE:
    case LT_MOD_UP: *out = c->n_ff, *in = c->n_embd; break;
    default: *out = c->n_embd, *in = c->n_ff; break;
    }
}

lt_status lt_model_check_config(const lt_config *c, const char *where, lt_err *err) {
    if (c->n_layer <= 0 || c->n_layer > 4096 || c->n_embd <= 0 || c->n_embd > 1 << 20 ||
        c->n_head <= 0 || c->n_head_kv <= 0 || c->n_head % c->n_head_kv != 0 ||
        c->head_dim <= 0 || c->head_dim % 2 != 0 || c->n_ff <= 0 || c->n_ff > 1 << 22 ||
        c->n_vocab <= 0 || c->n_vocab > 1 << 24 || c->max_pos <= 0 || c->max_pos > 1 << 22 ||
        c->rot_dim <= 0 || c->rot_dim > c->head_dim || c->rot_dim % 2 != 0 ||
        !(c->norm_eps > 0) || !(c->rope_theta > 0))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: inconsistent model config (layers %d, hidden %d, heads %d/%d kv, "
                          "head_dim %d, ffn %d, vocab %d, max_pos %d)",
                          where, c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim,
                          c->n_ff, c->n_vocab, c->max_pos);
    return LT_OK;
}

// Allocates layers, rope tables and the small-vector storage (n_small floats).
lt_status lt_model_alloc(lt_model *m, size_t n_small, lt_err *err) {
    const lt_config *c = &m->cfg;
    size_t half = (size_t)c->rot_dim / 2;
    m->layers = lt_calloc((size_t)c->n_layer, sizeof *m->layers);
    m->rope_cos = lt_calloc((size_t)c->max_pos * half, sizeof(float));
    m->rope_sin = lt_calloc((size_t)c->max_pos * half, sizeof(float));
    m->small = lt_calloc(n_small, sizeof(float));
    if (!m->layers || !m->rope_cos || !m->rope_sin || !m->small)
        return lt_err_set(err, LT_ERR_OOM, "out of memory allocating the model");
    lt_rope_table(m->rope_cos, m->rope_sin, c->max_pos, c->rot_dim, c->rope_theta);
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &m->layers[l].lin[k];
            mod_shape(c, k, &li->out, &li->in);
            snprintf(li->name, sizeof li->name, "model.layers.%d.%s.%s", l,
                     k <= LT_MOD_O ? "self_attn" : "mlp", mod_names[k]);
        }
    m->lm_head.in = c->n_embd;
    m->lm_head.out = c->n_vocab;
    snprintf(m->lm_head.name, sizeof m->lm_head.name, "lm_head");
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// Hugging Face directories

// Fills m->cfg and m->arch from config.json (parsed as j; path names it in messages).
static lt_status parse_hf_config(const char *path, const cJSON *j, lt_model *m, lt_err *err) {
    lt_status st = LT_OK;
    lt_config *c = &m->cfg;
    lt_arch *a = &m->arch;
    const char *mt = lt_json_str(j, "model_type", "");
    snprintf(a->model_type, sizeof a->model_type, "%s", mt);
    if (strcmp(mt, "llama") && strcmp(mt, "mistral") && strcmp(mt, "qwen2")) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                        "%s: model_type \"%s\" is not supported (supported: llama, mistral, qwen2, gpt2, gpt_neox)",
                        path, mt);
        goto done;
    }
    int64_t v;
#define REQ(key, field)                                                                            \
    if ((st = lt_json_int_req(j, key, path, &v, err))) goto done;                                 \
    if (v <= 0 || v > (1 << 24)) {                                                                 \
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" = %lld is out of range", path, key,       \
                        (long long)v);                                                             \
        goto done;                                                                                 \
    }                                                                                              \
    field = (int)v;
    REQ("num_hidden_layers", c->n_layer);
    REQ("hidden_size", c->n_embd);
    REQ("num_attention_heads", c->n_head);
    REQ("intermediate_size", c->n_ff);
    REQ("vocab_size", c->n_vocab);
#undef REQ
    c->n_head_kv = (int)lt_json_int(j, "num_key_value_heads", c->n_head);
    c->head_dim = (int)lt_json_int(j, "head_dim", c->n_head ? c->n_embd / c->n_head : 0);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(j, "head_dim");
    if (hd && cJSON_IsNull(hd)) c->head_dim = c->n_embd / c->n_head;
    c->rot_dim = c->head_dim;
    c->max_pos = (int)lt_json_int(j, "max_position_embeddings", 2048);
    c->rope_theta = (float)lt_json_num(j, "rope_theta", 10000.0);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        c->rope_theta = (float)lt_json_num(rp, "rope_theta", c->rope_theta);
        const char *rt = lt_json_str(rp, "rope_type", "default");
        if (strcmp(rt, "default")) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: rope_type \"%s\" is not supported yet",
                            path, rt);
            goto done;
        }
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        const char *rt = lt_json_str(rs, "rope_type", lt_json_str(rs, "type", "default"));
        if (strcmp(rt, "default")) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: rope_scaling \"%s\" is not supported yet",
                            path, rt);
            goto done;
        }
    }
    c->norm_eps = (float)lt_json_num(j, "rms_norm_eps", 1e-6);
    a->tied_head = lt_json_bool(j, "tie_word_embeddings", false);
    a->qkv_bias = strcmp(mt, "qwen2") == 0 || lt_json_bool(j, "attention_bias", false);
    c->sliding_window = 0;
    if (!strcmp(mt, "mistral")) c->sliding_window = (int)lt_json_int(j, "sliding_window", 0);
    if (!strcmp(mt, "qwen2") && lt_json_bool(j, "use_sliding_window", false)) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                        "%s: qwen2 with use_sliding_window=true is not supported yet", path);
        goto done;
    }
    if (c->sliding_window < 0) c->sliding_window = 0;
    c->bos_id = (int)lt_json_int(j, "bos_token_id", -1);
    c->eos_id = (int)lt_json_int(j, "eos_token_id", -1);
    c->pad_id = (int)lt_json_int(j, "pad_token_id", -1);
    a->norm = LT_NORM_RMS;
    a->pos = LT_POS_ROPE;
    a->mlp = LT_MLP_SWIGLU;
    if (lt_json_bool(j, "mlp_bias", false)) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: mlp_bias=true is not supported", path);
        goto done;
    }
    st = lt_model_check_config(c, path, err);
done:
    return st;
}

// Copies a 1-D float tensor of length n into f32 storage at *dst_cursor.
static lt_status load_vec(lt_model *m, const char *name, int64_t n, float **cursor,
                          const float **out, lt_err *err) {
    const lt_st_tensor *t;
    lt_status st = lt_st_set_get(m->st, name, 1, &n, &t, err);
    if (st) return st;
    lt_to_f32(t->dtype, t->data, *cursor, n);
    *out = *cursor;
    *cursor += n;
    return LT_OK;
}

static lt_status load_mat(lt_model *m, const char *name, int64_t rows, int64_t cols, lt_mat *out,
                          lt_err *err) {
    const lt_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    lt_status st = lt_st_set_get(m->st, name, 2, shape, &t, err);
    if (st) return st;
    if (!lt_mat_init(out, t->dtype, rows, cols, t->data))
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: dtype %s cannot be used as a matrix", name,
                          lt_dtype_name(t->dtype));
    return LT_OK;
}

lt_status lt_model_load_hf(const char *dir, lt_model **out, lt_err *err) {
    char path[4096];
    cJSON *j = NULL;
    if (!lt_path_join(path, sizeof path, dir, "config.json"))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    lt_status st = lt_json_parse_file(path, &j, err);
    if (st) return st;
    const char *mt = lt_json_str(j, "model_type", "");
    if (!strcmp(mt, "gpt2") || !strcmp(mt, "gpt_neox")) { // own names and config keys (gpt.c)
        st = lt_model_load_hf_gpt(dir, path, j, out, err);
        cJSON_Delete(j);
        return st;
    }
    lt_model *m = lt_calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(j);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    st = parse_hf_config(path, j, m, err);
    cJSON_Delete(j);
    if (st) goto fail;
    const lt_config *c = &m->cfg;
    if ((st = lt_st_set_open_dir(dir, &m->st, err))) goto fail;
    int qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    size_t n_small = (size_t)c->n_embd * (2 * (size_t)c->n_layer + 1);
    if (m->arch.qkv_bias) n_small += (size_t)c->n_layer * (size_t)(qd + 2 * kvd);
    if ((st = lt_model_alloc(m, n_small, err))) goto fail;
    m->src_path = lt_strdup(dir);
    if (!m->src_path) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    float *cur = m->small;
    char name[160];
    if ((st = load_mat(m, "model.embed_tokens.weight", c->n_vocab, c->n_embd, &m->tok_embd, err)))
        goto fail;
    if ((st = load_vec(m, "model.norm.weight", c->n_embd, &cur, &m->final_norm, err))) goto fail;
    if (m->arch.tied_head) {
        m->lm_head.w = m->tok_embd;
    } else if ((st = load_mat(m, "lm_head.weight", c->n_vocab, c->n_embd, &m->lm_head.w, err))) {
        goto fail;
    }
    for (int l = 0; l < c->n_layer; l++) {
        lt_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if ((st = load_vec(m, name, c->n_embd, &cur, &L->attn_norm, err))) goto fail;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if ((st = load_vec(m, name, c->n_embd, &cur, &L->ffn_norm, err))) goto fail;
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &L->lin[k];
            snprintf(name, sizeof name, "%s.weight", li->name);
            if ((st = load_mat(m, name, li->out, li->in, &li->w, err))) goto fail;
            if (m->arch.qkv_bias && k <= LT_MOD_V) {
                snprintf(name, sizeof name, "%s.bias", li->name);
                if ((st = load_vec(m, name, li->out, &cur, &li->b, err))) goto fail;
            }
        }
    }
    *out = m;
    return LT_OK;
fail:
    lt_model_free(m);
    return st;
}

// ---------------------------------------------------------------------------------------------
// llama2.c checkpoints: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; vocab_size < 0 means a separate classifier), then f32 arrays in this order:
// token_embedding (V,dim), rms_att (L,dim), wq (L,dim,dim), wk (L,kvd,dim), wv (L,kvd,dim),
// wo (L,dim,dim), rms_ffn (L,dim), w1 (L,hid,dim), w2 (L,dim,hid), w3 (L,hid,dim), rms_final (dim),
// freq_cis_real, freq_cis_imag (seq_len*head_size/2 each; unused), [wcls (V,dim)].

// llama2.c rotates interleaved pairs (2i, 2i+1); HF rotates (i, i+hs/2). HF's converter
// permutes rows within each head: new row j (j < hs/2) = old row 2j, new row hs/2+j = old 2j+1.
// llama.cpp's GGUF converter applies the same permutation, so GGUF q/k rows are undone here too.
// Rows are opaque blocks of row_bytes (f32 or quantised).
void lt_model_unpermute_rope_rows(void *dst, const void *src, int n_heads, int hs, size_t row_bytes) {
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hs / 2; j++)
            for (int s = 0; s < 2; s++)
                memcpy((char *)dst + ((size_t)h * hs + (size_t)s * hs / 2 + j) * row_bytes,
                       (const char *)src + ((size_t)h * hs + 2 * (size_t)j + s) * row_bytes, row_bytes);
}

lt_status lt_model_load_llama2c(const char *path, lt_model **out, lt_err *err) {
    char *buf = NULL;
    size_t n = 0;
    lt_model *m = NULL;
    lt_status st = lt_read_file(path, &buf, &n, err);
    if (st) return st;
    int32_t h[7];
    if (n < sizeof h) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: %zu bytes is too short for a llama2.c header", path, n);
        goto fail;
    }
    memcpy(h, buf, sizeof h);
    m = lt_calloc(1, sizeof *m);
    if (!m) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    lt_config *c = &m->cfg;
    bool shared = h[5] > 0;
    c->n_embd = h[0], c->n_ff = h[1], c->n_layer = h[2], c->n_head = h[3], c->n_head_kv = h[4];
    c->n_vocab = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c->max_pos = h[6];
    c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    c->rot_dim = c->head_dim;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->bos_id = 1, c->eos_id = 2, c->pad_id = -1;
    snprintf(m->arch.model_type, sizeof m->arch.model_type, "llama");
    m->arch.tied_head = shared;
    if ((st = lt_model_check_config(c, path, err))) goto fail;
    if (c->n_head * c->head_dim != c->n_embd) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", path,
                        c->n_embd, c->n_head);
        goto fail;
    }
    // expected size, overflow-safe in 64-bit (dimensions are bounded by check_config)
    int64_t C = c->n_embd, F = c->n_ff, L = c->n_layer, V = c->n_vocab,
            KV = (int64_t)c->n_head_kv * c->head_dim, HS = c->head_dim;
    int64_t n_f = V * C + L * C + L * C * C + 2 * L * KV * C + L * C * C + L * C + 3 * L * F * C + C +
                  (int64_t)c->max_pos * HS + (shared ? 0 : V * C);
    if ((uint64_t)n_f > (UINT64_MAX - 28) / 4 || n != 28 + (size_t)n_f * 4) {
        st = lt_err_set(err, LT_ERR_FORMAT,
                        "%s: size %zu bytes does not match its header (expected %lld for dim %d, "
                        "layers %d, vocab %d)",
                        path, n, (long long)(28 + n_f * 4), c->n_embd, c->n_layer, c->n_vocab);
        goto fail;
    }
    // The model keeps one f32 copy of the file's weights (llama2.c files are small f32 models;
    // wq/wk must be permuted anyway).
    m->owned = lt_alloc((size_t)n_f * 4);
    if (!m->owned) { st = lt_err_set(err, LT_ERR_OOM, "out of memory loading %s", path); goto fail; }
    memcpy(m->owned, buf + 28, (size_t)n_f * 4);
    lt_free(buf);
    buf = NULL;
    if ((st = lt_model_alloc(m, (size_t)C, err))) goto fail; // small: unused, norms are in `owned`
    m->src_path = lt_strdup(path);
    if (!m->src_path) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    float *p = m->owned;
    float *emb = p; p += V * C;
    float *rms_att = p; p += L * C;
    float *wq = p; p += L * C * C;
    float *wk = p; p += L * KV * C;
    float *wv = p; p += L * KV * C;
    float *wo = p; p += L * C * C;
    float *rms_ffn = p; p += L * C;
    float *w1 = p; p += L * F * C;
    float *w2 = p; p += L * C * F;
    float *w3 = p; p += L * F * C;
    float *rms_f = p; p += C;
    p += c->max_pos * HS; // freq_cis_real + imag: (seq_len, HS/2) each
    float *wcls = shared ? emb : p;
    lt_mat_init(&m->tok_embd, LT_DTYPE_F32, V, C, emb);
    lt_mat_init(&m->lm_head.w, LT_DTYPE_F32, V, C, wcls);
    m->final_norm = rms_f;
    float *tmp = lt_alloc((size_t)(C * C) * 4);
    if (!tmp) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    for (int64_t l = 0; l < L; l++) {
        lt_layer *Ly = &m->layers[l];
        Ly->attn_norm = rms_att + l * C;
        Ly->ffn_norm = rms_ffn + l * C;
        float *q = wq + l * C * C, *k = wk + l * KV * C;
        memcpy(tmp, q, (size_t)(C * C) * 4);
        lt_model_unpermute_rope_rows(q, tmp, c->n_head, c->head_dim, sizeof(float) * (size_t)C);
        memcpy(tmp, k, (size_t)(KV * C) * 4);
        lt_model_unpermute_rope_rows(k, tmp, c->n_head_kv, c->head_dim, sizeof(float) * (size_t)C);
        float *ws[LT_MOD_PER_LAYER] = {q, k, wv + l * KV * C, wo + l * C * C,
                                       w1 + l * F * C, w3 + l * F * C, w2 + l * C * F};
        for (int kk = 0; kk < LT_MOD_PER_LAYER; kk++) {
            lt_linear *li = &Ly->lin[kk];
            lt_mat_init(&li->w, LT_DTYPE_F32, li->out, li->in, ws[kk]);
        }
    }
    lt_free(tmp);
    *out = m;
    return LT_OK;
fail:
    lt_free(buf);
    lt_model_free(m);
    return st;
}

lt_status lt_model_load(const char *path, lt_model **out, lt_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return lt_err_set(err, LT_ERR_IO, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) return lt_model_load_hf(path, out, err);
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".bin") == 0) return lt_model_load_llama2c(path, out, err);
    if (n > 5 && strcmp(path + n - 5, ".gguf") == 0) return lt_model_load_gguf(path, out, err);
    return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: not a model directory (config.json + "
                      "safetensors), a .gguf file or a llama2.c .bin checkpoint", path);
}
