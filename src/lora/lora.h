/*
 * lora.h - LoRA adapters on named linear modules, PEFT-compatible files, merge.
 *
 * A LoRA module adds  y += s * B(A(dropout(x)))  to a frozen linear y = W x + b, with A (r, in),
 * B (out, r) and s = alpha / r (or alpha / sqrt(r) with rsLoRA). PEFT's default initialisation:
 * A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
 * All parameters of an adapter live in one flat f32 buffer (and its gradient in another), so the
 * optimizer, clipping, checkpointing and an allreduce each touch one array.
 *
 * Files (PEFT, https://github.com/huggingface/peft): adapter_config.json and
 * adapter_model.safetensors with keys "base_model.model.<module path>.lora_A.weight" (r, in) and
 * ".lora_B.weight" (out, r), f32. The module path is the HF one, e.g. model.layers.0.mlp.up_proj.
 */
#ifndef LT_LORA_H
#define LT_LORA_H

#include "model/model.h"

typedef struct lt_lora_config {
    int r;
    float alpha;
    float dropout;
    bool rslora;
    uint32_t targets;      // bit (1 << lt_mod_kind) per module kind, LT_MOD_LM_HEAD included
    int layer_lo, layer_hi; // layers [lo, hi) get adapters; hi = -1: all
    int n_labels;           // > 0: a sequence-classification head "score" (n_labels, C), trained
                            // in full (PEFT modules_to_save), as *ForSequenceClassification has
} lt_lora_config;

// Parses the model's PEFT module names ("q_proj,v_proj", "c_attn,c_proj", "query_key_value",
// "lm_head", ...) or "all" (every projection of the blocks, not the head) into a target mask.
// A name shared by two slots (GPT-2's attn.c_proj and mlp.c_proj) selects both, as PEFT does.
lt_status lt_lora_parse_targets(const lt_model *m, const char *list, uint32_t *out, lt_err *err);

typedef struct lt_lora_mod {
    lt_linear *lin;  // the module it adapts (borrowed from the model)
    int in, out, r;
    float scale;     // alpha/r or alpha/sqrt(r)
    float dropout;
    int id;          // index in the adapter (for dropout masks)
    float *A, *B;    // (r, in), (out, r) inside the adapter's params
    float *gA, *gB;  // same shapes inside the adapter's grads
} lt_lora_mod;

typedef struct lt_adapter {
    lt_lora_config cfg;
    int n_mod;
    lt_lora_mod *mods;
    int64_t n_params;
    float *params; // (n_params)
    float *grads;  // (n_params)
    int min_layer; // lowest layer holding a module (backward need not go below it)
    int n_labels;  // classification head rows, 0 when none
    float *score, *gscore; // (n_labels, C) inside params / grads, or NULL
} lt_adapter;

// Creates an adapter for model m with PEFT's initialisation from `seed` and attaches it. With
// cfg->n_labels > 0 it also holds the classification head, initialised as transformers does
// (normal, std 0.02); the head is counted in n_params and saved as PEFT's "score" module.
lt_status lt_adapter_new(lt_model *m, const lt_lora_config *cfg, uint64_t seed, lt_adapter **out,
                         lt_err *err);
// Detaches from the model (if attached) and frees.
void lt_adapter_free(lt_adapter *a);
void lt_adapter_zero_grad(lt_adapter *a);
// "trainable params: N || all params: M || trainable%: P" as PEFT prints it, into buf.
void lt_adapter_describe(const lt_adapter *a, const lt_model *m, char *buf, size_t n);

// PEFT files. save writes adapter_config.json and adapter_model.safetensors into dir (created
// if missing), each atomically. load reads a PEFT adapter directory, checks every key maps to a
// module of m with the right shapes (errors name the key, expected and found shapes) and attaches.
lt_status lt_adapter_save_peft(const lt_adapter *a, const lt_model *m, const char *dir,
                               lt_err *err);
lt_status lt_adapter_load_peft(lt_model *m, const char *dir, lt_adapter **out, lt_err *err);
// PEFT key of a module's A or B ("base_model.model.<name>.lora_A.weight").
void lt_lora_key(const lt_lora_mod *mod, bool is_b, char *buf, size_t n);

#endif
