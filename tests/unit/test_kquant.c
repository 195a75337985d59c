/*
 * test_kquant.c - GGUF Q5_0 / Q5_1 and k-quant (Q2_K..Q6_K) blocks: values equal to gguf-py's
 * dequantisation (tests/fixtures/kquants, tools/make_kquant_fixtures.py), row slices, the GGUF
 * type mapping, and the linear kernels over such weights against the reference.
 *
 * Tolerance: the conversions are the same float operations as ggml's in the same order (f16
 * scale * code, then - min), but numpy may evaluate d * sc * q with the product grouped
 * differently or in float64 before rounding: 2 ulp (rtol 3e-7) plus 1e-9 absolute (values are
 * ~1e-2).
 */
#include "io/gguf.h"
#include "io/io.h"
#include "ops/ops.h"
#include "tensor/tensor.h"
#include "test.h"

#define FIX "tests/fixtures/kquants/kquants.safetensors"

static const struct {
    const char *name;
    lt_dtype dt;
    uint32_t ggml;
} types[] = {
    {"Q5_0", LT_DTYPE_Q5_0, 6},  {"Q5_1", LT_DTYPE_Q5_1, 7},  {"Q2_K", LT_DTYPE_Q2_K, 10},
    {"Q3_K", LT_DTYPE_Q3_K, 11}, {"Q4_K", LT_DTYPE_Q4_K, 12}, {"Q5_K", LT_DTYPE_Q5_K, 13},
    {"Q6_K", LT_DTYPE_Q6_K, 14},
};

static void check_type(const lt_safetensors *st, int ti) {
    char rn[32], fn[32];
    snprintf(rn, sizeof rn, "%s.raw", types[ti].name);
    snprintf(fn, sizeof fn, "%s.f32", types[ti].name);
    const lt_st_tensor *raw = lt_safetensors_find(st, rn), *want = lt_safetensors_find(st, fn);
    CHECK_MSG(raw && want, "%s missing from the fixture", types[ti].name);
    if (!raw || !want) return;
    lt_dtype dt = types[ti].dt, back;
    int64_t n = want->numel, blk = lt_dtype_block(dt);
    CHECK(lt_dtype_nbytes(dt, n) == raw->nbytes);
    CHECK(lt_ggml_to_dtype(types[ti].ggml, &back) && back == dt);
    CHECK(strcmp(lt_dtype_name(dt), types[ti].name) == 0);
    float *w = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    memcpy(w, want->data, (size_t)n * sizeof(float));
    lt_to_f32(dt, raw->data, got, n);
    char what[64];
    snprintf(what, sizeof what, "%s vs gguf-py dequantize", types[ti].name);
    CHECK_CLOSE(what, got, w, n, 1e-9, 3e-7);

    // as a matrix: rows of 8 blocks (Q5_*) or 1 block (k-quants); slices of whole blocks
    int64_t cols = 256, rows = n / cols;
    lt_mat W;
    CHECK(lt_mat_init(&W, dt, rows, cols, raw->data));
    float row[256];
    bool ok = true;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k0 = 0; k0 < cols; k0 += blk) {
            lt_mat_row_to_f32(&W, r, k0, blk, row);
            for (int64_t j = 0; j < blk; j++) ok &= row[j] == got[r * cols + k0 + j];
        }
    CHECK_MSG(ok, "%s: row slices differ from the whole conversion", types[ti].name);

    // the linear kernels (tiled conversion inside) against the reference
    int64_t N = 12;
    float *x = malloc((size_t)(N * cols) * sizeof(float)), *y = malloc((size_t)(N * rows) * sizeof(float));
    float *yr = malloc((size_t)(N * rows) * sizeof(float)), *dy = malloc((size_t)(N * rows) * sizeof(float));
    float *dx = calloc((size_t)(N * cols), sizeof(float)), *dxr = calloc((size_t)(N * cols), sizeof(float));
    for (int64_t i = 0; i < N * cols; i++) x[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int64_t i = 0; i < N * rows; i++) dy[i] = (float)((i * 53 % 97) - 48) / 48.0f;
    float *ws = malloc((lt_linear_ws_floats(&W) + 1) * sizeof(float));
    lt_linear_fwd(y, x, &W, NULL, N, false, ws);
    lt_linear_fwd_ref(yr, x, &W, NULL, N, false);
    snprintf(what, sizeof what, "%s linear forward vs reference", types[ti].name);
    // sums of 256 products of ~1e-2 values: f32 summation order, rtol 1e-5 of the magnitude
    CHECK_CLOSE(what, y, yr, N * rows, 1e-5, 1e-5);
    lt_linear_bwd_x(dx, dy, &W, N, ws);
    lt_linear_bwd_x_ref(dxr, dy, &W, N);
    snprintf(what, sizeof what, "%s linear input gradient vs reference", types[ti].name);
    CHECK_CLOSE(what, dx, dxr, N * cols, 1e-5, 1e-5);

    // bf16 compute (AMX or its emulation) over the same blocks: each product carries at most
    // two bf16 roundings (x and w, 2^-9 relative each), so |y - y_f32| <= 2^-7 sum|x||w|
    lt_ops_set_matmul_precision(LT_PREC_BF16);
    lt_linear_fwd(y, x, &W, NULL, N, false, ws);
    lt_ops_set_matmul_precision(LT_PREC_F32);
    bool in_bound = true;
    for (int64_t i = 0; i < N; i++)
        for (int64_t o = 0; o < rows; o++) {
            double bound = 0;
            for (int64_t k = 0; k < cols; k++) bound += fabs((double)x[i * cols + k] * got[o * cols + k]);
            in_bound &= fabs((double)y[i * rows + o] - yr[i * rows + o]) <= bound / 128 + 1e-6;
        }
    CHECK_MSG(in_bound, "%s: bf16 compute outside 2^-7 sum|x||w| of f32", types[ti].name);
    // and the input gradient (panels of W's columns are whole blocks)
    memset(dx, 0, (size_t)(N * cols) * sizeof(float));
    lt_ops_set_matmul_precision(LT_PREC_BF16);
    lt_linear_bwd_x(dx, dy, &W, N, ws);
    lt_ops_set_matmul_precision(LT_PREC_F32);
    in_bound = true;
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < cols; k++) {
            double bound = 0;
            for (int64_t o = 0; o < rows; o++) bound += fabs((double)dy[i * rows + o] * got[o * cols + k]);
            in_bound &= fabs((double)dx[i * cols + k] - dxr[i * cols + k]) <= bound / 128 + 1e-6;
        }
    CHECK_MSG(in_bound, "%s: bf16 input gradient outside 2^-7 sum|dy||w| of f32", types[ti].name);
    free(ws), free(x), free(y), free(yr), free(dy), free(dx), free(dxr);
    free(w), free(got);
}

int main(void) {
    lt_safetensors *st = NULL;
    lt_err err = {0};
    CHECK_OK(lt_safetensors_open(FIX, &st, &err), &err);
    if (!st) TEST_END();
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) check_type(st, (int)i);
    // a k-quant row must be whole super-blocks
    CHECK(lt_dtype_nbytes(LT_DTYPE_Q4_K, 576) == 0);
    lt_mat W;
    CHECK(!lt_mat_init(&W, LT_DTYPE_Q6_K, 2, 576, "x"));
    lt_safetensors_close(st);
    TEST_END();
}
