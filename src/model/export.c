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
    // the tensor list below uses the llama family's names and layout (RMSNorm, separate q/k/v)
    if (m->arch.norm != LT_NORM_RMS || m->arch.qkv != LT_QKV_SEPARATE || m->pos_embd.rows)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s of %s models is not supported yet (llama, "
                          "mistral and qwen2 are)", what, m->arch.model_type);
    return LT_OK;
}

int lt_model_tensors(const lt_model *m, lt_model_tensor *out, int cap) {
    const lt_config *c = &m->cfg;
    int n = 0;
    lt_model_tensor t;
    memset(&t, 0, sizeof t);
    t.layer = -1, t.mod = -1;
    snprintf(t.hf_name, sizeof t.hf_name, "model.embed_tokens.weight");
    snprintf(t.gguf_name, sizeof t.gguf_name, "token_embd.weight");
    t.rows = c->n_vocab, t.cols = c->n_embd, t.w = &m->tok_embd;
    put(out, cap, &n, &t);
    for (int l = 0; l < c->n_layer; l++) {
        const lt_layer *L = &m->layers[l];
        for (int k = -2; k < LT_MOD_PER_LAYER; k++) {
            memset(&t, 0, sizeof t);
            t.layer = l, t.mod = -1;
            if (k < 0) { // the two norms, in HF file order
                bool attn = k == -2;
                snprintf(t.hf_name, sizeof t.hf_name, "model.layers.%d.%s.weight", l,
                         attn ? "input_layernorm" : "post_attention_layernorm");
                snprintf(t.gguf_name, sizeof t.gguf_name, "blk.%d.%s.weight", l,
                         attn ? "attn_norm" : "ffn_norm");
                t.rows = 1, t.cols = c->n_embd, t.vec = attn ? L->attn_norm : L->ffn_norm;
                put(out, cap, &n, &t);
                continue;
            }
            const lt_linear *li = &L->lin[k];
            t.mod = k, t.lin = li, t.w = &li->w, t.rows = li->out, t.cols = li->in;
            snprintf(t.hf_name, sizeof t.hf_name, "%s.weight", li->name);
            snprintf(t.gguf_name, sizeof t.gguf_name, "blk.%d.%s.weight", l, gguf_mod[k]);
            put(out, cap, &n, &t);
            if (li->b) {
                t.lin = NULL, t.w = NULL, t.is_bias = true;
                t.rows = 1, t.cols = li->out, t.vec = li->b;
                snprintf(t.hf_name, sizeof t.hf_name, "%s.bias", li->name);
                snprintf(t.gguf_name, sizeof t.gguf_name, "blk.%d.%s.bias", l, gguf_mod[k]);
                put(out, cap, &n, &t);
            }
        }
    }
    memset(&t, 0, sizeof t);
    t.layer = -1, t.mod = -1;
    snprintf(t.hf_name, sizeof t.hf_name, "model.norm.weight");
    snprintf(t.gguf_name, sizeof t.gguf_name, "output_norm.weight");
    t.rows = 1, t.cols = c->n_embd, t.vec = m->final_norm;
    put(out, cap, &n, &t);
    if (!m->arch.tied_head || m->lm_head.lora) {
        memset(&t, 0, sizeof t);
        t.layer = -1, t.mod = LT_MOD_LM_HEAD;
        snprintf(t.hf_name, sizeof t.hf_name, "lm_head.weight");
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

lt_status lt_model_hf_config(const lt_model *m, const char *torch_dtype, cJSON **out, lt_err *err) {
    const lt_config *c = &m->cfg;
    bool qwen2 = !strcmp(m->arch.model_type, "qwen2");
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
    // the head is untied in the output when it carries LoRA (lt_model_tensors writes lm_head)
    cJSON_AddBoolToObject(j, "tie_word_embeddings", m->arch.tied_head && !m->lm_head.lora);
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    cJSON_AddBoolToObject(j, "use_cache", true);
    cJSON_AddNumberToObject(j, "vocab_size", c->n_vocab);
    // cJSON reports allocation failures only through NULL items; check the last one landed
    if (!cJSON_GetObjectItemCaseSensitive(j, "vocab_size")) goto oom;
    *out = j;
    return LT_OK;
oom:
    cJSON_Delete(j);
    if (!j) cJSON_Delete(arch);
    return lt_err_set(err, LT_ERR_OOM, "out of memory building config.json");
}
