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
    // bitsandbytes 4-bit (NF4 / FP4): 64-element blocks whose scales live in a side table that
    // lt_mat.aux points to (see "NF4 / FP4" below); only an lt_mat can be converted
    LT_DTYPE_NF4,
    LT_DTYPE_FP4,
    // more GGUF blocks (llama.cpp's Q*_K "k-quants" and the 5-bit legacy types), as stored in
    // Q4_K_M / Q5_K_M / Q3_K / Q2_K files; converted to f32 a tile at a time like the others
    LT_DTYPE_Q5_0,
    LT_DTYPE_Q5_1,
    LT_DTYPE_Q2_K,
    LT_DTYPE_Q3_K,
    LT_DTYPE_Q4_K,
    LT_DTYPE_Q5_K,
    LT_DTYPE_Q6_K,
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
// `aux` is NULL except for NF4/FP4, where it points to the lt_q4_state holding the per-block
// scales (data then holds only the packed 4-bit codes, row_bytes = cols / 2). Convert rows of such
// a matrix with lt_mat_row_to_f32, which works for every dtype.
typedef struct lt_mat {
    lt_dtype dtype;
    int64_t rows, cols;
    size_t row_bytes; // bytes of one row
    const void *data;
    const void *aux;  // NF4/FP4: const lt_q4_state *; NULL otherwise
} lt_mat;

static inline const void *lt_mat_row(const lt_mat *m, int64_t r) {
    return (const char *)m->data + (size_t)r * m->row_bytes;
}
// Fills a view (aux = NULL); returns false if cols is not a multiple of the dtype's block size,
// and for NF4/FP4, which need their scales (lt_mat_init_q4).
bool lt_mat_init(lt_mat *m, lt_dtype t, int64_t rows, int64_t cols, const void *data);

// ---------------------------------------------------------------------------------------------
// NF4 / FP4: bitsandbytes' blockwise 4-bit quantisation, with optional double quantisation of
// the block scales, and the 8-bit blockwise "dynamic" code those scales (and the 8-bit optimizer
// states) use. Implemented in nf4.c; semantics of bitsandbytes 0.50 (functional.py quantize_4bit,
// quantize_blockwise, create_dynamic_map; the pure-PyTorch kernels of backends/default/ops.py).
//
// Quantising n values x (flattened row-major, blocks of 64 consecutive values; the last block may
// be short):
//   absmax_b = max |x| over block b (f32)
//   s = clamp(x * (1 / max(absmax_b, 1e-38)), -1, 1)          (f32 ops in this order)
//   (a short last block, as bnb does it: absmax_b = max(max |x|, 1e-38), s = clamp(x / absmax_b);
//   a block whose values are all below 1e-38 is thus coded against 1e-38, coarsely, as bnb does)
//   code = the index of the nearest value of the 16-entry code book; a value exactly halfway
//          between two neighbours takes the lower one (torch.bucketize over the f32 midpoints
//          (c[i] + c[i+1]) / 2 of the sorted code book; FP4's sorted order is remapped to its
//          code indices as bnb does).
//   dequantised value = codebook[code] * absmax_b             (f32 product)
// Double quantisation of the nb block scales (bnb compress_statistics=True):
//   offset = mean(absmax) (f32; accumulated in double here, torch sums in f32: may differ by an
//            ulp), then absmax - offset is quantised with the signed dynamic 8-bit code in blocks
//            of 256 (lt_dyn8_quantize), giving qabsmax (u8, nb) and absmax2 (f32, ceil(nb/256)).
//   absmax_b = dyn8[qabsmax[b]] * absmax2[b / 256] + offset   (f32 product, then f32 sum)
// Bits per parameter at blocksize 64: 4 + 32/64 = 4.5 without, 4 + 8/64 + 32/(64*256) = 4.127
// with double quantisation (plus one f32 offset per tensor).
//
// Storage of an NF4/FP4 matrix (rows, cols), cols a multiple of 64, viewed by an lt_mat with
// data = the codes, row_bytes = cols / 2, aux = its lt_q4_state:
//   codes: rows * cols / 2 bytes. Byte j of the flattened tensor holds element 2j in its high
//          nibble (bits 7..4) and element 2j+1 in its low nibble (bits 3..0), as bnb packs them;
//          row r starts at byte r * cols / 2 and its block k/64 is flattened block r*cols/64 + k/64.
//   scales: the lt_q4_state arrays below (f32 absmax per block, or u8 qabsmax per block plus
//          f32 absmax2 per 256 blocks and one f32 offset).

typedef struct lt_q4_state {
    lt_dtype dtype;         // LT_DTYPE_NF4 or LT_DTYPE_FP4
    int64_t n_blocks;       // ceil(n / 64) for the n values quantised
    const float *absmax;    // (n_blocks) without double quantisation, else NULL
    const uint8_t *qabsmax; // (n_blocks) with double quantisation, else NULL
    const float *absmax2;   // (ceil(n_blocks / 256)) with double quantisation, else NULL
    float offset;           // with double quantisation: the mean subtracted before it
} lt_q4_state;

#define LT_Q4_BLOCK 64    // values per 4-bit block
#define LT_DYN8_DQ_BLOCK 256 // block scales per block of the nested 8-bit quantisation

// The 16 code values of NF4 (the QLoRA paper's NormalFloat, bnb's table) or FP4 (bnb's
// sign/2-bit exponent/1-bit mantissa code normalised to [-1, 1]), by code index.
const float *lt_q4_codebook(lt_dtype t);
// bitsandbytes' create_dynamic_map(signed) (256 sorted values in [-1, 1] or [0, 1]).
const float *lt_dyn8_map(bool is_signed);

// 4-bit codes of x(n) (n even) into codes(n/2) and absmax(ceil(n/64)). t is NF4 or FP4.
void lt_q4_quantize(lt_dtype t, const float *x, int64_t n, uint8_t *codes, float *absmax);
// Double quantisation of absmax(nb): qabsmax(nb), absmax2(ceil(nb/256)), *offset.
void lt_q4_double_quant(const float *absmax, int64_t nb, uint8_t *qabsmax, float *absmax2,
                        float *offset);
// The scale of block b (either form of the state).
float lt_q4_block_scale(const lt_q4_state *s, int64_t b);
// Dequantises flattened elements [e0, e0 + n) of codes into dst(n).
void lt_q4_dequantize(const lt_q4_state *s, const uint8_t *codes, int64_t e0, int64_t n,
                      float *dst);
// Blockwise 8-bit quantisation with a sorted 256-entry code (bnb quantize_blockwise, default
// backend): absmax per block of `blocksize`, q = nearest code value of
// clamp(x * (1 / max(absmax, 1e-38))) (ties to the lower one; an all-zero block gets absmax 0 and
// the code nearest 0; a short last block as in lt_q4_quantize). dequantize:
// x = code[q] * absmax.
void lt_dyn8_quantize(const float *code, const float *x, int64_t n, int blocksize, uint8_t *q,
                      float *absmax);
void lt_dyn8_dequantize(const float *code, const uint8_t *q, const float *absmax, int64_t n,
                        int blocksize, float *dst);

// Views 4-bit codes (rows, cols) with their state; false unless cols % 64 == 0 and rows >= 0.
// Both pointers are borrowed and must outlive the view.
bool lt_mat_init_q4(lt_mat *m, int64_t rows, int64_t cols, const uint8_t *codes,
                    const lt_q4_state *s);
// Converts elements [k0, k0 + n) of row r of W to f32 into dst(n), for every float dtype
// (NF4/FP4 through their state; others as lt_to_f32 of the row's bytes). For block dtypes other
// than NF4/FP4, k0 and n must be multiples of the block size (n may end at the row's end);
// NF4/FP4 accept any k0 and n.
void lt_mat_row_to_f32(const lt_mat *W, int64_t r, int64_t k0, int64_t n, float *dst);

#endif
