// model_impl.h - private helpers shared by the loaders of src/model/ (not an interface).
#ifndef LT_MODEL_IMPL_H
#define LT_MODEL_IMPL_H

#include "model/model.h"

// Validates dimensions of a config read from `where`.
lt_status lt_model_check_config(const lt_config *c, const char *where, lt_err *err);
// Allocates layers (with HF module names and shapes), RoPE tables and n_small floats of small
// f32 storage (norms, biases). cfg must be filled and checked first.
lt_status lt_model_alloc(lt_model *m, size_t n_small, lt_err *err);
// Undoes the interleaving permutation of q/k rows (llama2.c and llama.cpp layouts -> HF).
void lt_model_unpermute_rope_rows(void *dst, const void *src, int n_heads, int hs, size_t row_bytes);

// y (N,out) (+)= x W^T + b (+ s * (x A^T) B^T when a LoRA module is attached, no dropout).
// hl: (N, r) scratch; ws: lt_linear_ws_floats(&li->w) floats.
void lt_lin_fwd_infer(const lt_linear *li, const float *x, float *y, int64_t N, bool accumulate,
                      float *hl, float *ws);

// The block input norm of the model's kind (RMSNorm or LayerNorm; mean unused for RMSNorm).
void lt_norm_fwd(const lt_model *m, const float *w, const float *b, float *out, float *mean,
                 float *rstd, const float *x, int64_t N);
// dx (N,C) += through the norm (weights frozen).
void lt_norm_bwd(const lt_model *m, const float *w, float *dx, const float *dout, const float *x,
                 const float *mean, const float *rstd, int64_t N);
// Splits a fused q/k/v projection output (N, QD + 2 KVD) into q, k, v by the model's layout.
void lt_qkv_split(const lt_model *m, const float *qkv, float *q, float *k, float *v, int64_t N);
// Token (and learned position) embeddings of N ids at positions pos into x (N, C).
void lt_embed(const lt_model *m, const int32_t *ids, const int32_t *pos, float *x, int64_t N);

// GPT-2 and GPT-NeoX Hugging Face directories (gpt.c); config is dir's parsed config.json
// (borrowed), config_path its name for messages.
lt_status lt_model_load_hf_gpt(const char *dir, const char *config_path, const cJSON *config,
                               lt_model **out, lt_err *err);
// Names and shapes of a GPT-2 / GPT-NeoX model's module slots and LM head (HF module paths),
// after lt_model_alloc; arch.qkv says which family (gpt.c; also used by gguf_model.c).
void lt_model_gpt_slots(lt_model *m);

#endif
