/*
 * export.c - the model side of merging and exporting: the list of a model's tensors under their
 * Hugging Face and llama.cpp names, the RoPE row permutation llama.cpp expects for attn_q/attn_k,
 * and a config.json for models that came without one (GGUF, llama2.c).
 * Not here: the merge arithmetic and the file writers (src/lora/merge.c, export_gguf.c).
 * References: llama.cpp gguf-py/gguf/tensor_mapping.py (names), convert_hf_to_gguf.py
 * (LlamaModel.permute), transformers LlamaConfig / Qwen2Config (config keys).
 */
#include "core/core.h"
#include "lora/merge.h"
#include "model/model_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// llama.cpp's names of the module slots (tensor_mapping.py): the fused q/k/v projection of GPT-2
// and GPT-NeoX sits in the Q slot and is "attn_qkv".
static const char *gguf_mod[LT_MOD_PER_LAYER] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};

// The shortest decimal that reads back as the same float (1e-05, not 9.99999974737875e-06),
// so that config.json shows what the model was configured with.
static double short_float(float x) {
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)x);
        if ((float)strtod(b, NULL) == x) return strtod(b, NULL);
    }
    return (double)x;
}

static void put(lt_model_tensor *out, int cap, int *n, const lt_model_tensor *t) {
    if (*n < cap) out[*n] = *t;
    (*n)++;
}

lt_status lt_model_check_exportable(const lt_model *m, const char *what, lt_err *err) {
    // the tensor list below knows the names and layouts of these families
    static const char *known[] = {"llama", "mistral", "qwen2", "gpt2", "gpt_neox"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(m->arch.model_type, known[i])) return LT_OK;
    // llama2.c checkpoints and GGUF llama files leave model_type as the llama layout
    if (m->arch.norm == LT_NORM_RMS && m->arch.qkv == LT_QKV_SEPARATE && !m->pos_embd.rows)
        return LT_OK;
    return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s of %s models is not supported (llama, "
                      "mistral, qwen2, gpt2 and gpt_neox are)", what, m->arch.model_type);
}

// The Hugging Face names of one family's tensors outside the projections (whose names are the
// lt_linear's own). GPT-2 files come with or without the "transformer." prefix
// (openai-community/gpt2 has none); the names follow the file so that a merge finds them.
typedef struct {
    char embd[48], pos[48], final_norm[64], head[32];
    char layer[48]; // printf format of a block's prefix, e.g. "model.layers.%d."
    const char *ln1, *ln2;
    const char *strip; // prefix of lt_linear names absent from the file, or ""
} hf_names;

static void family_names(const lt_model *m, hf_names *h) {
    memset(h, 0, sizeof *h);
    h->strip = "";
    if (m->arch.qkv == LT_QKV_FUSED) { // GPT-2
        bool bare = m->st && !lt_st_set_find(m->st, "transformer.wte.weight") &&
                    lt_st_set_find(m->st, "wte.weight");
        const char *p = bare ? "" : "transformer.";
        h->strip = bare ? "transformer." : "";
        snprintf(h->embd, sizeof h->embd, "%swte", p);
        snprintf(h->pos, sizeof h->pos, "%swpe", p);
        snprintf(h->final_norm, sizeof h->final_norm, "%sln_f", p);
        snprintf(h->layer, sizeof h->layer, "%sh.%%d.", p);
        snprintf(h->head, sizeof h->head, "lm_head");
        h->ln1 = "ln_1", h->ln2 = "ln_2";
    } else if (m->arch.qkv == LT_QKV_FUSED_HEADS) { // GPT-NeoX
        snprintf(h->embd, sizeof h->embd, "gpt_neox.embed_in");
        snprintf(h->final_norm, sizeof h->final_norm, "gpt_neox.final_layer_norm");
        snprintf(h->layer, sizeof h->layer, "gpt_neox.layers.%%d.");
        snprintf(h->head, sizeof h->head, "embed_out");
        h->ln1 = "input_layernorm", h->ln2 = "post_attention_layernorm";
    } else {
        snprintf(h->embd, sizeof h->embd, "model.embed_tokens");
        snprintf(h->final_norm, sizeof h->final_norm, "model.norm");
        snprintf(h->layer, sizeof h->layer, "model.layers.%%d.");
        snprintf(h->head, sizeof h->head, "lm_head");
        h->ln1 = "input_layernorm", h->ln2 = "post_attention_layernorm";
    }
}

// A norm's weight and (LayerNorm) bias as two vectors.
static void put_norm(lt_model_tensor *out, int cap, int *n, int layer, const char *hf,
                     const char *gguf, int64_t C, const float *w, const float *b) {
    lt_model_tensor t;
    for (int k = 0; k < 2; k++) {
        const float *v = k ? b : w;
        if (!v) continue;
        memset(&t, 0, sizeof t);
        t.layer = layer, t.mod = -1, t.rows = 1, t.cols = C, t.vec = v;
        snprintf(t.hf_name, sizeof t.hf_name, "%s.%s", hf, k ? "bias" : "weight");
        snprintf(t.gguf_name, sizeof t.gguf_name, "%s.%s", gguf, k ? "bias" : "weight");
        put(out, cap, n, &t);
    }
}

int lt_model_tensors(const lt_model *m, lt_model_tensor *out, int cap) {
    const lt_config *c = &m->cfg;
    bool fused = m->arch.qkv != LT_QKV_SEPARATE;
    hf_names h;
    family_names(m, &h);
    size_t strip = strlen(h.strip);
    int n = 0;
    char hf[96], pre[64];
    lt_model_tensor t;
    memset(&t, 0, sizeof t);
    t.layer = -1, t.mod = -1;
    snprintf(t.hf_name, sizeof t.hf_name, "%s.weight", h.embd);
    snprintf(t.gguf_name, sizeof t.gguf_name, "token_embd.weight");
    t.rows = c->n_vocab, t.cols = c->n_embd, t.w = &m->tok_embd;
    put(out, cap, &n, &t);
    if (m->pos_embd.rows) {
        snprintf(t.hf_name, sizeof t.hf_name, "%s.weight", h.pos);
        snprintf(t.gguf_name, sizeof t.gguf_name, "position_embd.weight");
        t.rows = m->pos_embd.rows, t.cols = c->n_embd, t.w = &m->pos_embd;
        put(out, cap, &n, &t);
    }
    for (int l = 0; l < c->n_layer; l++) {
        const lt_layer *L = &m->layers[l];
        snprintf(pre, sizeof pre, h.layer, l);
        char gn[32];
        snprintf(hf, sizeof hf, "%s%s", pre, h.ln1);
        snprintf(gn, sizeof gn, "blk.%d.attn_norm", l);
        put_norm(out, cap, &n, l, hf, gn, c->n_embd, L->attn_norm, L->attn_norm_b);
        snprintf(hf, sizeof hf, "%s%s", pre, h.ln2);
        snprintf(gn, sizeof gn, "blk.%d.ffn_norm", l);
        put_norm(out, cap, &n, l, hf, gn, c->n_embd, L->ffn_norm, L->ffn_norm_b);
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &L->lin[k];
            if (!li->out) continue; // a slot the family does not have
            const char *lname = li->name;
            if (strip && !strncmp(lname, h.strip, strip)) lname += strip;
            const char *gm = fused && k == LT_MOD_Q ? "attn_qkv" : gguf_mod[k];
            memset(&t, 0, sizeof t);
            t.layer = l, t.mod = k, t.lin = li, t.w = &li->w, t.rows = li->out, t.cols = li->in;
            t.transposed = m->arch.conv1d;
            snprintf(t.hf_name, sizeof t.hf_name, "%s.weight", lname);
            snprintf(t.gguf_name, sizeof t.gguf_name, "blk.%d.%s.weight", l, gm);
            put(out, cap, &n, &t);
            if (li->b) {
                t.lin = NULL, t.w = NULL, t.is_bias = true, t.transposed = false;
                t.rows = 1, t.cols = li->out, t.vec = li->b;
                snprintf(t.hf_name, sizeof t.hf_name, "%s.bias", lname);
                snprintf(t.gguf_name, sizeof t.gguf_name, "blk.%d.%s.bias", l, gm);
                put(out, cap, &n, &t);
            }
        }
    }
    put_norm(out, cap, &n, -1, h.final_norm, "output_norm", c->n_embd, m->final_norm,
             m->final_norm_b);
    if (!m->arch.tied_head || m->lm_head.lora) {
        memset(&t, 0, sizeof t);
        t.layer = -1, t.mod = LT_MOD_LM_HEAD;
        snprintf(t.hf_name, sizeof t.hf_name, "%s.weight", h.head);
        snprintf(t.gguf_name, sizeof t.gguf_name, "output.weight");
        t.rows = c->n_vocab, t.cols = c->n_embd, t.w = &m->lm_head.w, t.lin = &m->lm_head;
        put(out, cap, &n, &t);
    }
    return n;
}

void lt_model_permute_rope_rows(void *dst, const void *src, int n_heads, int hs, size_t row_bytes) {
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hs / 2; j++)
            for (int s = 0; s < 2; s++)
                memcpy((char *)dst +
                           ((size_t)h * (size_t)hs + 2 * (size_t)j + (size_t)s) * row_bytes,
                       (const char *)src +
                           ((size_t)h * (size_t)hs + (size_t)s * (size_t)hs / 2 + (size_t)j) *
                               row_bytes,
                       row_bytes);
}

// The keys every family's config.json ends with; then *out = j, or j is freed on OOM.
static lt_status config_finish(const lt_model *m, cJSON *j, const char *torch_dtype, cJSON **out,
                               lt_err *err) {
    // the head is untied in the output when it carries LoRA (lt_model_tensors writes lm_head)
    cJSON_AddBoolToObject(j, "tie_word_embeddings", m->arch.tied_head && !m->lm_head.lora);
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    cJSON_AddBoolToObject(j, "use_cache", true);
    cJSON_AddNumberToObject(j, "vocab_size", m->cfg.n_vocab);
    // cJSON reports allocation failures only through NULL items; check the last one landed
    if (!cJSON_GetObjectItemCaseSensitive(j, "vocab_size")) {
        cJSON_Delete(j);
        return lt_err_set(err, LT_ERR_OOM, "out of memory building config.json");
    }
    *out = j;
    return LT_OK;
}

// GPT2LMHeadModel / GPTNeoXForCausalLM keys (transformers GPT2Config, GPTNeoXConfig; the
// legacy rotary_pct / rotary_emb_base keys, which transformers 5 still reads).
static lt_status gpt_config(const lt_model *m, const char *torch_dtype, cJSON **out, lt_err *err) {
    const lt_config *c = &m->cfg;
    bool g2 = m->arch.qkv == LT_QKV_FUSED;
    cJSON *j = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    if (!j || !arch) goto oom;
    cJSON_AddItemToArray(arch, cJSON_CreateString(g2 ? "GPT2LMHeadModel" : "GPTNeoXForCausalLM"));
    cJSON_AddItemToObject(j, "architectures", arch);
    cJSON_AddStringToObject(j, "model_type", g2 ? "gpt2" : "gpt_neox");
    if (c->bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_id);
    if (c->pad_id >= 0) cJSON_AddNumberToObject(j, "pad_token_id", c->pad_id);
    const char *act = m->arch.gelu_tanh ? "gelu_new" : "gelu";
    if (g2) {
        cJSON_AddStringToObject(j, "activation_function", act);
        cJSON_AddNumberToObject(j, "layer_norm_epsilon", short_float(c->norm_eps));
        cJSON_AddNumberToObject(j, "n_ctx", c->max_pos);
        cJSON_AddNumberToObject(j, "n_embd", c->n_embd);
        cJSON_AddNumberToObject(j, "n_head", c->n_head);
        cJSON_AddNumberToObject(j, "n_inner", c->n_ff);
        cJSON_AddNumberToObject(j, "n_layer", c->n_layer);
        cJSON_AddNumberToObject(j, "n_positions", c->max_pos);
    } else {
        cJSON_AddBoolToObject(j, "attention_bias", true);
        cJSON_AddStringToObject(j, "hidden_act", act);
        cJSON_AddNumberToObject(j, "hidden_size", c->n_embd);
        cJSON_AddNumberToObject(j, "intermediate_size", c->n_ff);
        cJSON_AddNumberToObject(j, "layer_norm_eps", short_float(c->norm_eps));
        cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
        cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
        cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
        cJSON_AddNumberToObject(j, "rotary_emb_base", short_float(c->rope_theta));
        cJSON_AddNumberToObject(j, "rotary_pct", (double)c->rot_dim / c->head_dim);
        cJSON_AddBoolToObject(j, "use_parallel_residual", m->arch.parallel_residual);
    }
    return config_finish(m, j, torch_dtype, out, err);
oom:
    cJSON_Delete(j);
    if (!j) cJSON_Delete(arch);
    return lt_err_set(err, LT_ERR_OOM, "out of memory building config.json");
}

lt_status lt_model_hf_config(const lt_model *m, const char *torch_dtype, cJSON **out, lt_err *err) {
    const lt_config *c = &m->cfg;
    bool qwen2 = !strcmp(m->arch.model_type, "qwen2");
    if (m->arch.norm == LT_NORM_LAYER) return gpt_config(m, torch_dtype, out, err);
    if (c->rot_dim != c->head_dim)
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: rotary dimension %d differs from the head size %d (partial rotary "
                          "cannot be written as a %s config.json)",
                          m->src_path ? m->src_path : "model", c->rot_dim, c->head_dim,
                          m->arch.model_type);
    cJSON *j = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    if (!j || !arch) goto oom;
    cJSON_AddItemToArray(arch, cJSON_CreateString(qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddItemToObject(j, "architectures", arch);
    cJSON_AddBoolToObject(j, "attention_bias", m->arch.qkv_bias);
    cJSON_AddNumberToObject(j, "attention_dropout", 0.0);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_id);
    if (c->pad_id >= 0) cJSON_AddNumberToObject(j, "pad_token_id", c->pad_id);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "hidden_size", c->n_embd);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", c->n_ff);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
    if (!qwen2) cJSON_AddBoolToObject(j, "mlp_bias", false);
    cJSON_AddStringToObject(j, "model_type", qwen2 ? "qwen2" : "llama");
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_head_kv);
    cJSON_AddNumberToObject(j, "rms_norm_eps", short_float(c->norm_eps));
    cJSON_AddNullToObject(j, "rope_scaling");
    cJSON_AddNumberToObject(j, "rope_theta", short_float(c->rope_theta));
    if (qwen2) {
        cJSON_AddBoolToObject(j, "use_sliding_window", false);
        cJSON_AddNullToObject(j, "sliding_window");
    }
    return config_finish(m, j, torch_dtype, out, err);
oom:
    cJSON_Delete(j);
    if (!j) cJSON_Delete(arch);
    return lt_err_set(err, LT_ERR_OOM, "out of memory building config.json");
}
