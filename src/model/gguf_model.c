/*
 * gguf_model.c - models from llama.cpp GGUF files (general.architecture llama, qwen2, gpt2,
 * gptneox): hyper-parameters from "<arch>.*" keys, tensors by llama.cpp names, kept in their stored
 * dtype (quantised blocks included) and viewed in place from the mapping.
 * llama.cpp's convert_hf_to_gguf.py permutes attn_q/attn_k rows (for llama, not qwen2) into
 * ggml's interleaved RoPE order; those are copied back into HF order so adapters trained here
 * use the layout transformers builds from the same file.
 * Reference: ggml-org/llama.cpp convert_hf_to_gguf.py (LlamaModel.permute), gguf-py constants.
 */
#include "core/core.h"
#include "io/gguf.h"
#include "model/model_impl.h"

#include <stdio.h>
#include <string.h>

static lt_status get_int(const lt_gguf *g, const char *arch, const char *key, bool required,
                         int64_t dflt, int *out, lt_err *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int64_t v;
    if (lt_gguf_find_key(g, k) < 0) {
        if (required)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: key %s is missing", lt_gguf_path(g), k);
        *out = (int)dflt;
        return LT_OK;
    }
    lt_status st = lt_gguf_get_int(g, k, &v, err);
    if (st) return st;
    if (v < 0 || v > (1 << 24))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: %s = %lld is out of range", lt_gguf_path(g), k,
                          (long long)v);
    *out = (int)v;
    return LT_OK;
}

static lt_status get_float(const lt_gguf *g, const char *arch, const char *key, double dflt,
                           float *out, lt_err *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    double v = dflt;
    if (lt_gguf_find_key(g, k) >= 0) {
        lt_status st = lt_gguf_get_float(g, k, &v, err);
        if (st) return st;
    }
    *out = (float)v;
    return LT_OK;
}

// A 2-D matrix tensor checked against (rows, cols) in row-major terms.
static lt_status get_mat(const lt_gguf *g, const char *name, int64_t rows, int64_t cols,
                         const lt_gguf_tensor **out, lt_err *err) {
    const lt_gguf_tensor *t;
    lt_status st = lt_gguf_get_tensor(g, name, &t, err);
    if (st) return st;
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return lt_err_set(err, LT_ERR_SHAPE, "%s: tensor %s has shape [%lld, %lld], expected "
                          "[%lld, %lld]", lt_gguf_path(g), name, (long long)t->shape[0],
                          (long long)(t->n_dims > 1 ? t->shape[1] : 1), (long long)rows,
                          (long long)cols);
    if (!lt_dtype_is_float(t->dtype))
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: tensor %s has type %s, not a float type",
                          lt_gguf_path(g), name, lt_ggml_type_name(t->ggml_type));
    *out = t;
    return LT_OK;
}

static lt_status get_vec(const lt_gguf *g, const char *name, int64_t n, float **cursor,
                         const float **out, lt_err *err) {
    const lt_gguf_tensor *t;
    lt_status st = lt_gguf_get_tensor(g, name, &t, err);
    if (st) return st;
    if (t->numel != n || t->n_dims != 1 || !lt_dtype_is_float(t->dtype) || lt_dtype_block(t->dtype) != 1)
        return lt_err_set(err, LT_ERR_SHAPE, "%s: tensor %s should be a float vector of %lld",
                          lt_gguf_path(g), name, (long long)n);
    lt_to_f32(t->dtype, t->data, *cursor, n);
    *out = *cursor;
    *cursor += n;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 and GPT-NeoX (llama.cpp architectures gpt2, gptneox; convert_hf_to_gguf.py GPT2Model,
// GPTNeoXModel): LayerNorm with biases, GELU MLP, fused attn_qkv, every projection biased.
// GPT-2's Conv1D weights were transposed by the converter into (out, in), our layout; the
// gpt2 record keeps conv1d so PEFT adapters (fan_in_fan_out) load as on the HF model. gptneox's
// attn_qkv rows were regrouped from HF's per-head [q k v] into [q | k | v]; they are copied back
// (in their stored dtype) so adapters use PEFT's layout. The activation is not in the file:
// GPT-2 uses gelu_new (tanh), GPT-NeoX checkpoints gelu (erf), as in their HF configs.

// HF per-head [q k v] row of the GGUF [q | k | v] row r (n_head heads of hs).
static int64_t neox_hf_row(int64_t r, int n_head, int hs) {
    int64_t C = (int64_t)n_head * hs, j = r / C, h = (r % C) / hs, d = r % hs;
    return h * 3 * hs + j * hs + d;
}

static lt_status load_gpt(lt_model *m, const char *arch, lt_err *err) {
    const lt_gguf *g = m->gguf;
    const char *path = lt_gguf_path(g);
    bool g2 = !strcmp(arch, "gpt2");
    lt_arch *a = &m->arch;
    lt_config *c = &m->cfg;
    snprintf(a->model_type, sizeof a->model_type, "%s", g2 ? "gpt2" : "gpt_neox");
    a->norm = LT_NORM_LAYER;
    a->mlp = LT_MLP_GELU;
    a->gelu_tanh = g2;
    a->pos = g2 ? LT_POS_LEARNED : LT_POS_ROPE;
    a->qkv = g2 ? LT_QKV_FUSED : LT_QKV_FUSED_HEADS;
    a->conv1d = g2;
    lt_status st;
    if ((st = get_int(g, arch, "block_count", true, 0, &c->n_layer, err)) ||
        (st = get_int(g, arch, "embedding_length", true, 0, &c->n_embd, err)) ||
        (st = get_int(g, arch, "feed_forward_length", false, 4 * (int64_t)c->n_embd, &c->n_ff, err)) ||
        (st = get_int(g, arch, "attention.head_count", true, 0, &c->n_head, err)) ||
        (st = get_int(g, arch, "context_length", false, 2048, &c->max_pos, err)) ||
        (st = get_float(g, arch, "rope.freq_base", 10000.0, &c->rope_theta, err)) ||
        (st = get_float(g, arch, "attention.layer_norm_epsilon", 1e-5, &c->norm_eps, err)))
        return st;
    if (c->n_head <= 0 || c->n_embd % c->n_head)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: embedding_length %d is not a multiple of %d "
                          "heads", path, c->n_embd, c->n_head);
    c->n_head_kv = c->n_head;
    c->head_dim = c->n_embd / c->n_head;
    c->rot_dim = 2; // GPT-2: unused (learned positions)
    if (!g2) {
        char k[96];
        snprintf(k, sizeof k, "%s.use_parallel_residual", arch);
        a->parallel_residual = true;
        if (lt_gguf_find_key(g, k) >= 0 && (st = lt_gguf_get_bool(g, k, &a->parallel_residual, err)))
            return st;
        if ((st = get_int(g, arch, "rope.dimension_count", false, c->head_dim, &c->rot_dim, err)))
            return st;
    }
    a->tied_head = lt_gguf_find_tensor(g, "output.weight") == NULL;
    if ((st = lt_model_check_config(c, path, err))) return st;
    int64_t C = c->n_embd, F = c->n_ff, L = c->n_layer;
    // norms (w, b) per layer and final, biases; + 3C scratch for regrouping a qkv bias
    size_t n_small = (size_t)(C * (4 * L + 2) + L * (3 * C + C + F + C) + 3 * C);
    if ((st = lt_model_alloc(m, n_small, err))) return st;
    lt_model_gpt_slots(m);
    float *cur = m->small;
    const lt_gguf_tensor *t;
    if ((st = get_mat(g, "token_embd.weight", c->n_vocab, C, &t, err))) return st;
    lt_mat_init(&m->tok_embd, t->dtype, c->n_vocab, C, t->data);
    if (g2) {
        if ((st = get_mat(g, "position_embd.weight", c->max_pos, C, &t, err))) return st;
        lt_mat_init(&m->pos_embd, t->dtype, c->max_pos, C, t->data);
    }
    if ((st = get_vec(g, "output_norm.weight", C, &cur, &m->final_norm, err)) ||
        (st = get_vec(g, "output_norm.bias", C, &cur, &m->final_norm_b, err)))
        return st;
    if (a->tied_head) m->lm_head.w = m->tok_embd;
    else {
        if ((st = get_mat(g, "output.weight", c->n_vocab, C, &t, err))) return st;
        lt_mat_init(&m->lm_head.w, t->dtype, c->n_vocab, C, t->data);
    }
    static const char *gg[LT_MOD_PER_LAYER] = {"attn_qkv", "", "", "attn_output", "", "ffn_up",
                                               "ffn_down"};
    char name[96];
    size_t qkv_bytes = 0; // gptneox: the regrouped attn_qkv copies
    for (int l = 0; l < L && !g2; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", l);
        if ((st = get_mat(g, name, 3 * C, C, &t, err))) return st;
        qkv_bytes += t->nbytes;
    }
    if (qkv_bytes && !(m->owned = lt_alloc(qkv_bytes)))
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    char *own = m->owned;
    for (int l = 0; l < L; l++) {
        lt_layer *Ly = &m->layers[l];
        const char *nn[2] = {"attn_norm", "ffn_norm"};
        const float **dst[4] = {&Ly->attn_norm, &Ly->attn_norm_b, &Ly->ffn_norm, &Ly->ffn_norm_b};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.%s", l, nn[i / 2], i % 2 ? "bias" : "weight");
            if ((st = get_vec(g, name, C, &cur, dst[i], err))) return st;
        }
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &Ly->lin[k];
            if (!li->out) continue;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, gg[k]);
            if ((st = get_mat(g, name, li->out, li->in, &t, err))) return st;
            const void *data = t->data;
            bool regroup = !g2 && k == LT_MOD_Q;
            if (regroup) {
                size_t rb = t->nbytes / (size_t)li->out;
                for (int64_t r = 0; r < li->out; r++)
                    memcpy(own + (size_t)neox_hf_row(r, c->n_head, c->head_dim) * rb,
                           (const char *)t->data + (size_t)r * rb, rb);
                data = own;
                own += t->nbytes;
            }
            lt_mat_init(&li->w, t->dtype, li->out, li->in, data);
            snprintf(name, sizeof name, "blk.%d.%s.bias", l, gg[k]);
            if ((st = get_vec(g, name, li->out, &cur, &li->b, err))) return st;
            if (regroup) { // the bias too: its elements, through the free tail of small
                float *b = cur - li->out, *tmp = m->small + n_small - li->out;
                LT_ASSERT(tmp >= cur);
                memcpy(tmp, b, sizeof(float) * (size_t)li->out);
                for (int64_t r = 0; r < li->out; r++)
                    b[neox_hf_row(r, c->n_head, c->head_dim)] = tmp[r];
            }
        }
    }
    LT_ASSERT(cur <= m->small + n_small);
    return LT_OK;
}

lt_status lt_model_load_gguf(const char *path, lt_model **out, lt_err *err) {
    lt_model *m = lt_calloc(1, sizeof *m);
    if (!m) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st;
    if ((st = lt_gguf_open(path, &m->gguf, err))) goto fail;
    const lt_gguf *g = m->gguf;
    const char *arch;
    if ((st = lt_gguf_get_str(g, "general.architecture", &arch, NULL, err))) goto fail;
    bool gpt = !strcmp(arch, "gpt2") || !strcmp(arch, "gptneox");
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && !gpt) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: GGUF architecture \"%s\" is not supported "
                        "(supported: llama, qwen2, gpt2, gptneox)", path, arch);
        goto fail;
    }
    lt_config *c = &m->cfg;
    const lt_gguf_tensor *emb;
    if ((st = lt_gguf_get_tensor(g, "token_embd.weight", &emb, err))) goto fail;
    if (emb->n_dims != 2) {
        st = lt_err_set(err, LT_ERR_SHAPE, "%s: token_embd.weight is not a matrix", path);
        goto fail;
    }
    c->n_vocab = (int)emb->shape[0];
    c->bos_id = c->eos_id = c->pad_id = -1;
    int64_t v;
    if (!lt_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v, NULL)) c->bos_id = (int)v;
    if (!lt_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v, NULL)) c->eos_id = (int)v;
    if (!lt_gguf_get_int(g, "tokenizer.ggml.padding_token_id", &v, NULL)) c->pad_id = (int)v;
    if (gpt) {
        if ((st = load_gpt(m, arch, err))) goto fail;
        if (!(m->src_path = lt_strdup(path))) {
            st = lt_err_set(err, LT_ERR_OOM, "out of memory");
            goto fail;
        }
        *out = m;
        return LT_OK;
    }
    bool is_llama = !strcmp(arch, "llama");
    snprintf(m->arch.model_type, sizeof m->arch.model_type, "%s", arch);
    m->arch.qkv_bias = !is_llama;
    if ((st = get_int(g, arch, "block_count", true, 0, &c->n_layer, err)) ||
        (st = get_int(g, arch, "embedding_length", true, 0, &c->n_embd, err)) ||
        (st = get_int(g, arch, "feed_forward_length", true, 0, &c->n_ff, err)) ||
        (st = get_int(g, arch, "attention.head_count", true, 0, &c->n_head, err)) ||
        (st = get_int(g, arch, "attention.head_count_kv", false, c->n_head, &c->n_head_kv, err)) ||
        (st = get_int(g, arch, "context_length", false, 2048, &c->max_pos, err)) ||
        (st = get_float(g, arch, "rope.freq_base", 10000.0, &c->rope_theta, err)) ||
        (st = get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-6, &c->norm_eps, err)))
        goto fail;
    if (c->n_head <= 0) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: %s.attention.head_count is 0", path, arch);
        goto fail;
    }
    if ((st = get_int(g, arch, "attention.key_length", false, c->n_embd / c->n_head, &c->head_dim, err)) ||
        (st = get_int(g, arch, "rope.dimension_count", false, c->head_dim, &c->rot_dim, err)))
        goto fail;
    if (lt_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        const char *rs;
        if (!lt_gguf_get_str(g, "llama.rope.scaling.type", &rs, NULL, err) && strcmp(rs, "none")) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: rope scaling \"%s\" is not supported yet", path, rs);
            goto fail;
        }
    }
    m->arch.tied_head = lt_gguf_find_tensor(g, "output.weight") == NULL;
    if ((st = lt_model_check_config(c, path, err))) goto fail;
    int QD = c->n_head * c->head_dim, KVD = c->n_head_kv * c->head_dim;
    size_t n_small = (size_t)c->n_embd * (2 * (size_t)c->n_layer + 1);
    if (m->arch.qkv_bias) n_small += (size_t)c->n_layer * (size_t)(QD + 2 * KVD);
    if ((st = lt_model_alloc(m, n_small, err))) goto fail;
    m->src_path = lt_strdup(path);
    if (!m->src_path) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    float *cur = m->small;
    const lt_gguf_tensor *t;
    if ((st = get_mat(g, "token_embd.weight", c->n_vocab, c->n_embd, &t, err))) goto fail;
    lt_mat_init(&m->tok_embd, t->dtype, c->n_vocab, c->n_embd, t->data);
    if ((st = get_vec(g, "output_norm.weight", c->n_embd, &cur, &m->final_norm, err))) goto fail;
    if (m->arch.tied_head) m->lm_head.w = m->tok_embd;
    else {
        if ((st = get_mat(g, "output.weight", c->n_vocab, c->n_embd, &t, err))) goto fail;
        lt_mat_init(&m->lm_head.w, t->dtype, c->n_vocab, c->n_embd, t->data);
    }
    // the permuted q/k copies, in their stored dtype
    size_t qk_bytes = 0;
    static const char *gg[LT_MOD_PER_LAYER] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                               "ffn_gate", "ffn_up", "ffn_down"};
    char name[96];
    for (int l = 0; l < c->n_layer && is_llama; l++)
        for (int k = 0; k <= LT_MOD_K; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, gg[k]);
            const lt_linear *li = &m->layers[l].lin[k];
            if ((st = get_mat(g, name, li->out, li->in, &t, err))) goto fail;
            qk_bytes += t->nbytes;
        }
    if (qk_bytes && !(m->owned = lt_alloc(qk_bytes))) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    char *own = m->owned;
    for (int l = 0; l < c->n_layer; l++) {
        lt_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if ((st = get_vec(g, name, c->n_embd, &cur, &L->attn_norm, err))) goto fail;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if ((st = get_vec(g, name, c->n_embd, &cur, &L->ffn_norm, err))) goto fail;
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &L->lin[k];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, gg[k]);
            if ((st = get_mat(g, name, li->out, li->in, &t, err))) goto fail;
            const void *data = t->data;
            if (is_llama && k <= LT_MOD_K) {
                lt_model_unpermute_rope_rows(own, t->data, k == LT_MOD_Q ? c->n_head : c->n_head_kv,
                                             c->head_dim, t->nbytes / (size_t)li->out);
                data = own;
                own += t->nbytes;
            }
            lt_mat_init(&li->w, t->dtype, li->out, li->in, data);
            if (m->arch.qkv_bias && k <= LT_MOD_V) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, gg[k]);
                if ((st = get_vec(g, name, li->out, &cur, &li->b, err))) goto fail;
            }
        }
    }
    *out = m;
    return LT_OK;
fail:
    lt_model_free(m);
    return st;
}
