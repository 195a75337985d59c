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

#endif
