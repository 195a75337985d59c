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

#endif
