/*
 * tensor.h - dtypes, element conversion and the borrowed 2-D matrix view used for frozen weights.
 *
 * Frozen base weights stay in the dtype they are stored in (f32, bf16, f16; quantised blocks in
 * later issues) and are converted to f32 a row or tile at a time inside the kernels. Activations,
 * gradients and LoRA weights are always f32.
 * Conversions follow IEEE-754 / PyTorch: f32 -> bf16 and f32 -> f16 round to nearest even.
 */
#ifndef LT_TENSOR_H
#define LT_TENSOR_H

#include "lt/lt.h"
#include <stdbool.h>

typedef enum {
    LT_DTYPE_F32 = 0,
    LT_DTYPE_F16,
    LT_DTYPE_BF16,
    LT_DTYPE_F64,
    LT_DTYPE_I64,
    LT_DTYPE_I32,
    LT_DTYPE_I16,
    LT_DTYPE_I8,
    LT_DTYPE_U8,
    LT_DTYPE_BOOL,
    // block-quantised dtypes (GGUF / bitsandbytes); rows must be a multiple of the block size
    LT_DTYPE_Q8_0,
    LT_DTYPE_Q4_0,
    LT_DTYPE_Q4_1,
    LT_DTYPE_COUNT
} lt_dtype;

const char *lt_dtype_name(lt_dtype t); // "F32", "BF16", ... (safetensors spelling)
bool lt_dtype_from_name(const char *name, lt_dtype *out);
// Bytes for n elements; 0 if n is not a multiple of the block size or on overflow.
size_t lt_dtype_nbytes(lt_dtype t, int64_t n);
int lt_dtype_block(lt_dtype t); // elements per block (1 for plain dtypes)
bool lt_dtype_is_float(lt_dtype t); // F32/F16/BF16/F64 or a quantised float type

static inline float lt_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
uint16_t lt_f32_to_bf16(float f); // round to nearest even, NaN stays NaN
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_f16(float f);  // round to nearest even

// Converts n elements of a float dtype at src to f32. n must be a multiple of the block size.
void lt_to_f32(lt_dtype t, const void *src, float *dst, int64_t n);
// Converts n f32 values to a plain float dtype (F32/F16/BF16).
void lt_from_f32(lt_dtype t, const float *src, void *dst, int64_t n);

// A borrowed row-major matrix (rows, cols) in any float dtype. `data` is owned elsewhere (an
// mmapped file or the model) and must outlive the view.
typedef struct lt_mat {
    lt_dtype dtype;
    int64_t rows, cols;
    size_t row_bytes; // bytes of one row
    const void *data;
} lt_mat;

static inline const void *lt_mat_row(const lt_mat *m, int64_t r) {
    return (const char *)m->data + (size_t)r * m->row_bytes;
}
// Fills a view; returns false if cols is not a multiple of the dtype's block size.
bool lt_mat_init(lt_mat *m, lt_dtype t, int64_t rows, int64_t cols, const void *data);

#endif
