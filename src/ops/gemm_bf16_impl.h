/*
 * gemm_bf16_impl.h - private interface between gemm_bf16.c (portable: dispatch, detection,
 * emulation, workspace) and gemm_bf16_amx.c (the AMX kernel, the only file of the tree built with
 * -mamx-tile -mamx-bf16 -mavx512f -mavx512bf16; nothing in it may run unless
 * lt_bf16_amx_available() said yes).
 */
#ifndef LT_OPS_GEMM_BF16_IMPL_H
#define LT_OPS_GEMM_BF16_IMPL_H

#include "tensor/tensor.h"

#include <stdbool.h>
#include <stdint.h>

// Blocking of the AMX GEMM C(M, NO) (+)= A(M, R) @ B(R, NO), B taken from W:
// the reduction R is cut into chunks of BF16_KC (the A chunk is packed once, by all threads
// together, for all M rows); the output columns into panels of at most BF16_NC, which the
// threads take round-robin: each packs its panel of B into its own buffer (<= BF16_NC x BF16_KC
// bf16 = 512 KB, so it stays in the core's 2 MB L2) and multiplies every 32-row block of A by it.
// So a chunk costs one barrier, and no weight tile is converted twice.
#define BF16_KC 1024 // multiple of 32 and of 256, the largest block of a quantised dtype (k-quants)
#define BF16_NC 256  // multiple of 32 and of 256 (bwd_x panels are whole blocks of W's rows)

static inline int64_t bf16_round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Bytes of workspace lt_gemm_bf16_amx needs for M rows of A, a reduction length R and nthr
// threads: the packed A chunk (M rounded up to 32, min(R, KC) rounded up to 32) and one packed
// B panel per thread.
static inline size_t bf16_amx_ws_bytes(int64_t M, int64_t R, int nthr) {
    int64_t kc = bf16_round_up(R < BF16_KC ? R : BF16_KC, 32);
    return (size_t)(bf16_round_up(M, 32) * kc + (int64_t)nthr * BF16_NC * kc) * 2;
}

// C(M, NO) (=|+=) bf16(A)(M, R) @ bf16(B)(R, NO) with f32 accumulation, where
//   w_rows_are_out (forward):  B = W^T, W (NO, R): y = x @ W^T
//   otherwise      (bwd_x):    B = W,   W (R, NO): dx += dy @ W
// A row-major with leading dimension lda; C with ldc. ws: bf16_amx_ws_bytes(M, R, nthr) bytes,
// 64-byte aligned. Threads: one OpenMP region of at most nthr threads; call from outside any
// parallel region.
void lt_gemm_bf16_amx(float *C, int64_t ldc, const float *A, int64_t lda, int64_t M,
                      const lt_mat *W, bool w_rows_are_out, bool accumulate, void *ws, int nthr);

#endif
