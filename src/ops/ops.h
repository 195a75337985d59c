/*
 * ops.h - forward and backward kernels of the transformer, on f32 activations.
 *
 * Each op has a scalar reference `*_ref` (plainly correct, always built) and a fast version
 * (BLAS, OpenMP over the outer loop, SIMD) with the same contract; tests check fast against ref
 * and every backward against finite differences. Shapes use B (batch), T (time), C (channels),
 * NH (query heads), NKV (key/value heads), HS (head size), V (vocab), N = rows (usually B*T).
 * Backward functions ACCUMULATE (+=) into input gradients unless said otherwise, so a residual
 * stream's gradient can be summed from two branches without a temporary.
 * None of these allocate except where a workspace is named; none fail.
 */
#ifndef LT_OPS_H
#define LT_OPS_H

#include "tensor/tensor.h"

// ---------------------------------------------------------------------------------------------
// linear layers over frozen weights W (out, in) in any float dtype (converted in tiles)

// Floats of workspace the linear kernels need for W: one slab of W converted to f32, 256 columns
// (forward) or 256 rows (bwd_x) of it, so 256 * max(in, out); 0 for F32, whose mapped data goes
// straight to sgemm (ws may then be NULL). The whole weight is never converted at once.
// Threads: lt_linear_* call a threaded BLAS; do not call them from inside an OpenMP region.
size_t lt_linear_ws_floats(const lt_mat *W);
// y(N, out) = x(N, in) @ W^T + b. b: (out) f32 or NULL. ws: lt_linear_ws_floats(W) floats.
// If accumulate is true, y += x @ W^T (+ b) instead of overwrite.
void lt_linear_fwd(float *y, const float *x, const lt_mat *W, const float *b, int64_t N,
                   bool accumulate, float *ws);
void lt_linear_fwd_ref(float *y, const float *x, const lt_mat *W, const float *b, int64_t N,
                       bool accumulate);
// dx(N, in) += dy(N, out) @ W.  (No gradient for the frozen W and b.)
void lt_linear_bwd_x(float *dx, const float *dy, const lt_mat *W, int64_t N, float *ws);
void lt_linear_bwd_x_ref(float *dx, const float *dy, const lt_mat *W, int64_t N);

// Plain f32 GEMM helpers (row-major): C(M,N) = alpha * op(A) @ op(B) + beta * C
void lt_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

// ---------------------------------------------------------------------------------------------
// bf16 mixed precision for the frozen-weight linears (gemm_bf16.c, gemm_bf16_amx.c)

// Process-wide precision of lt_linear_fwd / lt_linear_bwd_x (like torch's autocast or
// set_float32_matmul_precision). LT_PREC_F32 (default): exact f32 as above. LT_PREC_BF16: for
// more than 8 rows, x (or dy) and W are rounded to bf16 (nearest even), products summed in f32,
// output f32 (bias added in f32); on AMX when the CPU has it, else emulated with sgemm on rounded
// copies (slower than f32). Decode-sized calls (<= 8 rows) stay f32. Set it before threads run.
typedef enum { LT_PREC_F32 = 0, LT_PREC_BF16 = 1 } lt_matmul_prec;
void lt_ops_set_matmul_precision(lt_matmul_prec p);
lt_matmul_prec lt_ops_matmul_precision(void);

// Whether the AMX-BF16 kernel can run here: CPUID (AMX-TILE, AMX-BF16, AVX512F, AVX512_BF16),
// XCR0 tile state enabled by the OS, and arch_prctl(ARCH_REQ_XCOMP_PERM) granted (requested
// once per process, thread-safe). Environment LT_NO_AMX=1 makes it false.
bool lt_bf16_amx_available(void);

typedef enum {
    LT_BF16_AUTO = 0, // AMX if available, else emulation
    LT_BF16_AMX,      // the AMX kernel (falls back to emulation when unavailable)
    LT_BF16_EMUL,     // bf16-rounded copies multiplied by sgemm (same products, f32 sums)
} lt_bf16_impl;
// y(M, out) (=|+=) bf16(x)(M, in) @ bf16(W)(out, in)^T, f32 sums. W: any float dtype.
// dx(M, in) += bf16(dy)(M, out) @ bf16(W)(out, in).
// Workspace: a buffer owned by gemm_bf16.c, grown to the largest call so far and then reused
// (calls serialise on a mutex); lt_gemm_bf16_release frees it. Return false, having done
// nothing, only when that buffer cannot be allocated (the caller then takes the f32 path).
// Threads: OpenMP inside; call from outside any parallel region.
bool lt_gemm_bf16_fwd(float *y, const float *x, const lt_mat *W, int64_t M, bool accumulate,
                      lt_bf16_impl impl);
bool lt_gemm_bf16_bwd_x(float *dx, const float *dy, const lt_mat *W, int64_t M,
                        lt_bf16_impl impl);
void lt_gemm_bf16_release(void);

// ---------------------------------------------------------------------------------------------
// normalisation

// out(N,C) = x / sqrt(mean(x^2) + eps) * w ; rstd(N) saved for backward. (HF LlamaRMSNorm in f32)
void lt_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int64_t N, int C,
                    float eps);
void lt_rmsnorm_fwd_ref(float *out, float *rstd, const float *x, const float *w, int64_t N, int C,
                        float eps);
// dx(N,C) += d/dx ; dw(C) += d/dw when dw != NULL.
void lt_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    const float *rstd, int64_t N, int C);
void lt_rmsnorm_bwd_ref(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int64_t N, int C);

// LayerNorm (GPT-2, GPT-NeoX): out = (x - mean) * rstd * w + b, biased variance as torch.
// mean, rstd (N) saved for backward. dx (N,C) += ; weights are frozen (no dw, db).
void lt_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, int64_t N, int C, float eps);
void lt_layernorm_bwd(float *dx, const float *dout, const float *x, const float *w,
                      const float *mean, const float *rstd, int64_t N, int C);

// ---------------------------------------------------------------------------------------------
// rotary position embedding, HF "rotate_half" layout: within each head the first rot/2 dims pair
// with the next rot/2 (dims >= rot are left alone: partial rotary of GPT-NeoX).

// cos/sin tables (n_pos, rot/2) as transformers computes them: inv_freq[i] = 1/theta^(2i/rot)
// in f32, angle = pos * inv_freq[i] in f32, cos/sin of that f32 angle (evaluated in double and
// rounded to f32). rot is even and <= HS (asserted by the kernels).
void lt_rope_table(float *cos_t, float *sin_t, int n_pos, int rot, float theta);
// In place on x (N, nh, HS); pos(N) are the positions of the rows (all < n_pos of the table).
void lt_rope_fwd(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int64_t N,
                 int nh, int HS, int rot);
// In place on dx: the inverse rotation (the transpose of the forward's linear map).
void lt_rope_bwd(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int64_t N,
                 int nh, int HS, int rot);
void lt_rope_fwd_ref(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                     int64_t N, int nh, int HS, int rot);
void lt_rope_bwd_ref(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t,
                     int64_t N, int nh, int HS, int rot);

// ---------------------------------------------------------------------------------------------
// causal self-attention with grouped-query heads

typedef struct lt_attn_shape {
    int B, T, NH, NKV, HS; // NH a multiple of NKV (asserted); query head h reads kv head h/(NH/NKV)
    int window;           // sliding window W > 0: query i sees keys j with i - W < j <= i; 0: none
    const int32_t *kmask; // (B, T) 1 = real token, 0 = padding key to ignore; NULL: all real
} lt_attn_shape;

// q (B,T,NH,HS), k,v (B,T,NKV,HS) -> out (B,T,NH,HS) and lse (B,NH,T): for each query row the
// log-sum-exp of its scaled scores over the keys it sees, saved for the backward, which
// recomputes the probabilities P = exp(S - lse) from q and k (flash-attention 2), so no
// (T, T) matrix is stored. Scale 1/sqrt(HS). A query row with no visible key gets out = 0 and
// lse = -INFINITY.
// ws: lt_attn_ws_floats(s, nthr) floats of scratch, two (min(64,T), T) blocks per thread; the
// fast kernels run on at most nthr (>= 1) OpenMP threads, so size ws for the thread count the
// caller will run with (e.g. omp_get_max_threads() when it allocates).
// Threads: the fast versions run OpenMP over (B, heads) and call sgemm inside. With OpenBLAS's
// OpenMP build (what the Makefile links) those calls run single-threaded by themselves; with its
// pthread build OpenBLAS is held at one thread for the call (openblas_set_num_threads, restored
// after), so do not call BLAS from another thread meanwhile.
size_t lt_attn_ws_floats(const lt_attn_shape *s, int nthr);
void lt_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                 const lt_attn_shape *s, float *ws, int nthr);
void lt_attn_fwd_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                     const lt_attn_shape *s);
// dq, dk, dv += gradients, given the forward's lse. The backward runs one task per (batch, kv
// head) in a fixed order, so its sums do not depend on the thread count.
void lt_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *lse,
                 const float *q, const float *k, const float *v, const lt_attn_shape *s, float *ws,
                 int nthr);
void lt_attn_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *lse,
                     const float *q, const float *k, const float *v, const lt_attn_shape *s);

// ---------------------------------------------------------------------------------------------
// MLP activations

// h(n) = silu(g) * u, silu(g) = g / (1 + exp(-g)). h may alias g or u.
void lt_swiglu_fwd(float *h, const float *g, const float *u, int64_t n);
void lt_swiglu_fwd_ref(float *h, const float *g, const float *u, int64_t n);
// dg, du += from dh
void lt_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                   int64_t n);
void lt_swiglu_bwd_ref(float *dg, float *du, const float *dh, const float *g, const float *u,
                       int64_t n);

// GELU: approx = true is the tanh form (GPT-2 "gelu_new", "gelu_pytorch_tanh"), false the exact
// erf form (torch's default, GPT-NeoX "gelu"). h(n) = gelu(u); du += dh * gelu'(u).
void lt_gelu_fwd(float *h, const float *u, int64_t n, bool approx);
void lt_gelu_bwd(float *du, const float *dh, const float *u, int64_t n, bool approx);

// ---------------------------------------------------------------------------------------------
// loss

// Cross-entropy over rows of logits (N, V) with integer targets (N); rows with target < 0 are
// ignored. Returns the SUM of losses of the kept rows (the caller divides). If dlogits != NULL
// (may alias logits) it receives scale * (softmax - onehot) for kept rows and 0 for ignored rows.
// Targets must be < V (asserted: the data module validates labels). Computed in double
// accumulation for the log-sum-exp. The sum over rows has a fixed order (64
// fixed row chunks), so the result does not depend on the thread count.
double lt_ce_fwd_bwd(float *dlogits, const float *logits, const int32_t *targets, int64_t N, int V,
                     float scale);
double lt_ce_fwd_bwd_ref(float *dlogits, const float *logits, const int32_t *targets, int64_t N,
                         int V, float scale);

// ---------------------------------------------------------------------------------------------
// elementwise helpers (plain loops: they are their own reference)
void lt_add_inplace(float *y, const float *x, int64_t n);        // y += x
void lt_scale_inplace(float *y, float a, int64_t n);             // y *= a
void lt_axpy(float *y, float a, const float *x, int64_t n);      // y += a*x

#endif
