/*
 * ops_cpu.c - the fast CPU kernels of ops.h: OpenBLAS sgemm, OpenMP over outer loops, AVX2.
 *
 * What: linear layers over frozen weights in any float dtype (f32 goes straight to sgemm on the
 * mapped data; bf16/f16/q8_0/q4_0/q4_1 are converted one K-slab of LINEAR_KT columns or rows at a
 * time into the caller's workspace and multiplied per slab, so the whole weight is never
 * converted at once); a fused convert-and-dot path for decode-sized N; RMSNorm, RoPE, SwiGLU
 * and cross entropy with OpenMP over rows; attention with sgemm per (batch, head) and per block
 * of ATTN_BQ query rows, so the causal upper triangle (and keys outside a sliding window) are
 * neither multiplied nor exponentiated.
 * The attention forward keeps only each query row's log-sum-exp; the backward recomputes the
 * probabilities block by block (flash-attention 2), so no (T, T) matrix is stored.
 * What not: no allocation (workspaces come from the caller), no printing, no -ffast-math. The
 * contract of each function, and its scalar reference, are in ops.h / ops_ref.c.
 * Threads: OpenMP only on the outermost independent loop, schedule(static). OpenBLAS threads
 * each large sgemm itself. The Makefile links OpenBLAS's OpenMP build, which shares our thread
 * pool and runs single-threaded when called inside an OpenMP region (attention). With its
 * pthread build (NO_OMP=1, or another link line) the code still works: the W-slab conversion
 * then runs on one thread and attention holds OpenBLAS at one thread (see blas_shares_omp).
 * Builds and runs without OpenMP.
 * Reference: llm.c train_gpt2.c and dev/cuda (blocked causal attention), ggml (dequantise in
 * tiles inside the matmul), OpenBLAS cblas_sgemm.
 */
#include "ops/ops.h"

#include "core/core.h"
#include "ops/simd_avx2.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "ops/ops_omp.h"

// Slab of W converted to f32 per GEMM, along the GEMM's K dimension: LINEAR_KT columns of W
// (all rows) for the forward, LINEAR_KT rows of W (all columns) for bwd_x. Tiling along K is what
// OpenBLAS does inside anyway (K blocks of a few hundred), so each slab costs the same packing as
// the whole product would; tiling along W's rows in the forward instead made sgemm repack x for
// every tile (+20% time at 256 rows). Workspace: LINEAR_KT * max(in, out) floats.
#define LINEAR_KT 256
// At or below this many rows of x, the forward converts each W row once and dots it with every
// x row (decode: a GEMV whose cost is reading W, which a slab-then-sgemm would read twice and
// convert on one thread). Measured (bf16 576 -> 1536, 2 cores): 50 us at N=1 and +18 us per row
// against ~600 us through the slabs, so the crossover lies well above 8.
#define LINEAR_SMALL_N 8
// Elements of a W row converted at once in the fused small-N path (a multiple of 32).
#define LINEAR_CHUNK 512
// Query rows per attention block (each thread's scratch holds two (ATTN_BQ, T) blocks: P, dP).
#define ATTN_BQ 64

// ---------------------------------------------------------------------------------------------
// BLAS

static inline blasint blas_int(int64_t v) {
    LT_ASSERT(v >= 0 && v <= INT_MAX);
    return (blasint)v;
}

void lt_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A,  // (M, K), or (K, M) when trans_a
              int64_t lda,
              const float *B,  // (K, N), or (N, K) when trans_b
              int64_t ldb, float beta,
              float *C,        // (M, N)
              int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, blas_int(M), blas_int(N), blas_int(K), alpha,
                A, blas_int(lda), B, blas_int(ldb), beta, C, blas_int(ldc));
}

// Whether OpenBLAS threads through OpenMP (its libopenblas0-openmp build): then it shares our
// thread pool. With its pthread build, an OpenMP region right before an sgemm leaves libgomp's
// workers spinning (OMP_WAIT_POLICY unset: ~300k pause loops) on the cores OpenBLAS's own
// threads need; measured on 2 cores, converting W's slabs in an OpenMP region made the bf16
// forward 2.1x slower than converting them on one thread.
static bool blas_shares_omp(void) {
#if defined(_OPENMP) && defined(OPENBLAS_VERSION)
    return openblas_get_parallel() == 2;
#else
    return false;
#endif
}

// Holds OpenBLAS at one thread while OpenMP threads call sgemm concurrently (the pthread build
// of OpenBLAS would otherwise start its own threads from each of ours). Returns the old count.
// (With the OpenMP build, OpenBLAS already runs single-threaded inside an OpenMP region, and its
// openblas_set_num_threads would change our own thread count, so it is left alone.)
static int blas_threads_push_one(void) {
#if defined(_OPENMP) && defined(OPENBLAS_VERSION)
    int prev = openblas_get_num_threads();
    if (omp_get_max_threads() > 1 && openblas_get_parallel() == 1) openblas_set_num_threads(1);
    return prev;
#else
    return 0;
#endif
}

static void blas_threads_pop(int prev) {
#if defined(_OPENMP) && defined(OPENBLAS_VERSION)
    if (omp_get_max_threads() > 1 && openblas_get_parallel() == 1) openblas_set_num_threads(prev);
#else
    (void)prev;
#endif
}

// ---------------------------------------------------------------------------------------------
// linear

size_t lt_linear_ws_floats(const lt_mat *W) {
    if (W->dtype == LT_DTYPE_F32) return 0;
    int64_t m = W->rows > W->cols ? W->rows : W->cols;
    return (size_t)LINEAR_KT * (size_t)m;
}

// F32 weights are used in place when their rows are contiguous floats.
static bool f32_direct(const lt_mat *W) {
    return W->dtype == LT_DTYPE_F32 && W->row_bytes % sizeof(float) == 0;
}

// ws(r1 - r0, kn) = W[r0:r1, k0:k0+kn] in f32 (k0, kn multiples of the block size, or kn reaching
// the row's end).
static void convert_slab(float *ws, const lt_mat *W, int64_t r0, int64_t r1, int64_t k0,
                         int64_t kn) {
    bool par = blas_shares_omp() && (r1 - r0) * kn >= (1 << 16);
    (void)par;
    OMP_PARALLEL_FOR(if (par))
    for (int64_t r = r0; r < r1; r++) simd_mat_row_to_f32(ws + (r - r0) * kn, W, r, k0, kn);
}

static void add_bias_rows(float *y, const float *b, int64_t N, int64_t out) {
    OMP_PARALLEL_FOR(if (N * out >= (1 << 16)))
    for (int64_t n = 0; n < N; n++) simd_add(y + n * out, b, out);
}

// Decode path: each W row is converted once in chunks and dotted with the (few) rows of x.
static void linear_fwd_small(float *y,         // (N, out)
                             const float *x,   // (N, in)
                             const lt_mat *W,  // (out, in)
                             const float *b,   // (out) or NULL
                             int64_t N, bool accumulate) {
    int64_t in = W->cols, out = W->rows;
    OMP_PARALLEL_FOR()
    for (int64_t o = 0; o < out; o++) {
        float buf[LINEAR_CHUNK], acc[LINEAR_SMALL_N] = {0};
        for (int64_t k0 = 0; k0 < in; k0 += LINEAR_CHUNK) {
            int64_t kn = in - k0 < LINEAR_CHUNK ? in - k0 : LINEAR_CHUNK;
            simd_mat_row_to_f32(buf, W, o, k0, kn);
            for (int64_t n = 0; n < N; n++) acc[n] += simd_dot(buf, x + n * in + k0, kn);
        }
        for (int64_t n = 0; n < N; n++) {
            float v = acc[n] + (b ? b[o] : 0.0f);
            y[n * out + o] = accumulate ? y[n * out + o] + v : v;
        }
    }
}

void lt_linear_fwd(float *y,         // (N, out)
                   const float *x,   // (N, in)
                   const lt_mat *W,  // (out, in), any float dtype
                   const float *b,   // (out) or NULL
                   int64_t N, bool accumulate,
                   float *ws) {      // (lt_linear_ws_floats(W))
    int64_t in = W->cols, out = W->rows;
    if (N <= 0 || out <= 0) return;
    if (N > LINEAR_SMALL_N && lt_ops_matmul_precision() == LT_PREC_BF16 &&
        lt_gemm_bf16_fwd(y, x, W, N, accumulate, LT_BF16_AUTO)) {
        if (b) add_bias_rows(y, b, N, out);
        return; // (decode-sized calls stay f32: they are bound by reading W, not by FLOPs)
    }
    if (N <= LINEAR_SMALL_N && W->dtype != LT_DTYPE_F32) {
        linear_fwd_small(y, x, W, b, N, accumulate);
        return;
    }
    if (f32_direct(W) && N == 1) {
        // one row (decoding): OpenBLAS 0.3.21's sgemm does not forward M = 1 to gemv, which
        // streams W once at memory bandwidth
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blas_int(out), blas_int(in), 1.0f, W->data,
                    blas_int((int64_t)(W->row_bytes / 4)), x, 1, accumulate ? 1.0f : 0.0f, y, 1);
    } else if (f32_direct(W)) {
        lt_sgemm(false, true, N, out, in, 1.0f, x, in, W->data, (int64_t)(W->row_bytes / 4),
                 accumulate ? 1.0f : 0.0f, y, out);
    } else {
        LT_ASSERT(ws != NULL);
        for (int64_t k0 = 0; k0 < in; k0 += LINEAR_KT) {
            int64_t kn = in - k0 < LINEAR_KT ? in - k0 : LINEAR_KT;
            convert_slab(ws, W, 0, out, k0, kn);
            // y (=|+=) x[:, k0:k0+kn] @ slab^T, slab = W[:, k0:k0+kn] as ws(out, kn)
            lt_sgemm(false, true, N, out, kn, 1.0f, x + k0, in, ws, kn,
                     k0 == 0 && !accumulate ? 0.0f : 1.0f, y, out);
        }
    }
    if (b) add_bias_rows(y, b, N, out);
}

void lt_linear_bwd_x(float *dx,        // (N, in) +=
                     const float *dy,  // (N, out)
                     const lt_mat *W,  // (out, in), any float dtype
                     int64_t N,
                     float *ws) {      // (lt_linear_ws_floats(W))
    int64_t in = W->cols, out = W->rows;
    if (N <= 0 || out <= 0) return;
    if (N > LINEAR_SMALL_N && lt_ops_matmul_precision() == LT_PREC_BF16 &&
        lt_gemm_bf16_bwd_x(dx, dy, W, N, LT_BF16_AUTO))
        return;
    if (f32_direct(W)) {
        lt_sgemm(false, false, N, in, out, 1.0f, dy, out, W->data, (int64_t)(W->row_bytes / 4),
                 1.0f, dx, in);
        return;
    }
    LT_ASSERT(ws != NULL);
    for (int64_t r0 = 0; r0 < out; r0 += LINEAR_KT) {
        int64_t rn = out - r0 < LINEAR_KT ? out - r0 : LINEAR_KT;
        convert_slab(ws, W, r0, r0 + rn, 0, in);
        // dx += dy[:, r0:r0+rn] @ slab, slab = W[r0:r0+rn, :] as ws(rn, in)
        lt_sgemm(false, false, N, in, rn, 1.0f, dy + r0, out, ws, in, 1.0f, dx, in);
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: same arithmetic as lt_rmsnorm_*_ref (double sums, f32 variance), rows in parallel.

void lt_rmsnorm_fwd(float *out,      // (N, C)
                    float *rstd,     // (N)
                    const float *x,  // (N, C)
                    const float *w,  // (C)
                    int64_t N, int C, float eps) {
    OMP_PARALLEL_FOR(if (N * C >= (1 << 14)))
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *o = out + n * C;
        float var = (float)simd_sumsq_d(xr, C) / (float)C;
        float r = 1.0f / sqrtf(var + eps);
        rstd[n] = r;
        simd_mul_wxr(o, w, xr, r, C);
    }
}

void lt_rmsnorm_bwd(float *dx,          // (N, C) +=
                    float *dw,          // (C) += or NULL
                    const float *dout,  // (N, C)
                    const float *x,     // (N, C)
                    const float *w,     // (C)
                    const float *rstd,  // (N)
                    int64_t N, int C) {
    OMP_PARALLEL_FOR(if (N * C >= (1 << 14)))
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *g = dout + n * C;
        double dot = simd_dot3_d(g, w, xr, C);
        float r = rstd[n], k = (float)((double)r * r * r * dot / C);
        simd_rms_dx(dx + n * C, w, g, xr, r, k, C);
    }
    if (!dw) return;
    // dw sums over rows: parallel over column blocks so each dw[c] has one fixed summation order.
    enum { CB = 64 };
    int nblk = (C + CB - 1) / CB;
    OMP_PARALLEL_FOR(if (N * C >= (1 << 14)))
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CB, cn = C - c0 < CB ? C - c0 : CB;
        double acc[CB] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *g = dout + n * C + c0, *xr = x + n * C + c0;
            float r = rstd[n];
            for (int c = 0; c < cn; c++) acc[c] += (double)(g[c] * xr[c] * r);
        }
        for (int c = 0; c < cn; c++) dw[c0 + c] += (float)acc[c];
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE: the reference's arithmetic (bitwise: no FMA) with rows in parallel.

static void rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                       int64_t N, int nh, int HS, int rot, float dir) {
    LT_ASSERT(rot % 2 == 0 && rot <= HS);
    int half = rot / 2;
    OMP_PARALLEL_FOR(if (N * nh * rot >= (1 << 14)))
    for (int64_t n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *x1 = x + (n * nh + h) * HS;
            simd_rope_pairs(x1, x1 + half, c, s, dir, half);
        }
    }
}

void lt_rope_fwd(float *x,            // (N, nh, HS) in place
                 const int32_t *pos,  // (N)
                 const float *cos_t,  // (n_pos, rot/2)
                 const float *sin_t,  // (n_pos, rot/2)
                 int64_t N, int nh, int HS, int rot) {
    rope_apply(x, pos, cos_t, sin_t, N, nh, HS, rot, 1.0f);
}

void lt_rope_bwd(float *dx,           // (N, nh, HS) in place
                 const int32_t *pos,  // (N)
                 const float *cos_t,  // (n_pos, rot/2)
                 const float *sin_t,  // (n_pos, rot/2)
                 int64_t N, int nh, int HS, int rot) {
    rope_apply(dx, pos, cos_t, sin_t, N, nh, HS, rot, -1.0f);
}

// ---------------------------------------------------------------------------------------------
// attention. For query block [i0, i1) the keys any of its rows can see lie in [j0, i1) with
// j0 = max(0, i0 - W + 1) under a window W (0 otherwise); only that (nq, nk) block is computed.
// The block's scores live in a per-thread scratch (ld nk); the forward keeps only each row's
// log-sum-exp and the backward recomputes the probabilities from it (flash-attention 2).

typedef struct attn_dims {
    int T, NH, NKV, HS;
    int64_t ldq, ldk; // row strides of q/out/dout (NH*HS) and k/v (NKV*HS)
} attn_dims;

static inline int attn_lo(int window, int i) {
    return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
}

// The scratch slot of the calling thread (the kernels run on at most nthr threads).
static inline int attn_slot(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Row r of a block holds keys j0 .. j0+nk-1; query i sees [lo, i] minus padding keys.
// Marks padding keys in the span as -inf and zeroes the row outside the span; returns the span.
static float *attn_row_span(float *row, const int32_t *km, int j0, int lo, int i, int nk, int *n) {
    memset(row, 0, (size_t)(lo - j0) * sizeof *row);
    memset(row + (i - j0) + 1, 0, (size_t)(nk - (i - j0) - 1) * sizeof *row);
    float *r = row + (lo - j0);
    *n = i - lo + 1;
    if (km)
        for (int j = 0; j < *n; j++)
            if (!km[lo + j]) r[j] = -INFINITY;
    return r;
}

// Softmax in place over the visible span of a block row; returns the row's log-sum-exp
// (-inf, with the row all 0, when no key is visible).
static float attn_softmax_row(float *row, const int32_t *km, int j0, int lo, int i, int nk) {
    int n;
    float *r = attn_row_span(row, km, j0, lo, i, nk, &n);
    float m = simd_max(r, n);
    if (m == -INFINITY) {
        memset(r, 0, (size_t)n * sizeof *r);
        return -INFINITY;
    }
    double sum = simd_exp_sub_sum(r, r, n, m); // exp(-inf - m) = 0 for padding keys
    simd_scale(r, (float)(1.0 / sum), n);
    return (float)((double)m + log(sum));
}

// The probabilities of a block row again, from its scores and the saved log-sum-exp.
static void attn_prob_row(float *row, const int32_t *km, int j0, int lo, int i, int nk,
                          float lse) {
    int n;
    float *r = attn_row_span(row, km, j0, lo, i, nk, &n);
    if (lse == -INFINITY) memset(r, 0, (size_t)n * sizeof *r);
    else simd_exp_sub_sum(r, r, n, lse);
}

static void attn_fwd_head(float *out, float *lse_bh, const float *q, const float *k,
                          const float *v, const int32_t *km, int window, const attn_dims *d,
                          float *S) {
    int T = d->T;
    float scale = (float)(1.0 / sqrt((double)d->HS));
    for (int i0 = 0; i0 < T; i0 += ATTN_BQ) {
        int i1 = T - i0 < ATTN_BQ ? T : i0 + ATTN_BQ, nq = i1 - i0;
        int j0 = attn_lo(window, i0), nk = i1 - j0;
        // S(nq, nk) = scale q[i0:i1] k[j0:i1]^T, then softmax per row, then out = P v
        lt_sgemm(false, true, nq, nk, d->HS, scale, q + i0 * d->ldq, d->ldq, k + j0 * d->ldk,
                 d->ldk, 0.0f, S, nk);
        for (int i = i0; i < i1; i++)
            lse_bh[i] = attn_softmax_row(S + (int64_t)(i - i0) * nk, km, j0, attn_lo(window, i),
                                         i, nk);
        lt_sgemm(false, false, nq, d->HS, nk, 1.0f, S, nk, v + j0 * d->ldk, d->ldk, 0.0f,
                 out + i0 * d->ldq, d->ldq);
    }
}

size_t lt_attn_ws_floats(const lt_attn_shape *s, int nthr) {
    size_t bq = s->T < ATTN_BQ ? (size_t)s->T : ATTN_BQ;
    return (size_t)(nthr > 1 ? nthr : 1) * 2 * bq * (size_t)s->T;
}

// Threads for n tasks: at most nthr (the scratch slots the caller sized ws for).
static inline int attn_threads(int nthr, int n) {
    int t = nthr < n ? nthr : n;
    return t > 1 ? t : 1;
}

void lt_attn_fwd(float *out,             // (B, T, NH, HS)
                 float *lse,             // (B, NH, T)
                 const float *q,         // (B, T, NH, HS)
                 const float *k,         // (B, T, NKV, HS)
                 const float *v,         // (B, T, NKV, HS)
                 const lt_attn_shape *s,
                 float *ws,              // (lt_attn_ws_floats(s, nthr))
                 int nthr) {
    LT_ASSERT(s->NKV > 0 && s->NH % s->NKV == 0);
    attn_dims d = {s->T, s->NH, s->NKV, s->HS, (int64_t)s->NH * s->HS, (int64_t)s->NKV * s->HS};
    int grp = s->NH / s->NKV, nbh = s->B * s->NH, nt = attn_threads(nthr, nbh);
    int64_t T = s->T, slot = (int64_t)(T < ATTN_BQ ? T : ATTN_BQ) * T * 2;
    int prev = blas_threads_push_one();
    (void)nt; // used only by the OpenMP clause
    OMP_PARALLEL_FOR(num_threads(nt))
    for (int bh = 0; bh < nbh; bh++) {
        int b = bh / s->NH, h = bh % s->NH, kh = h / grp;
        attn_fwd_head(out + (b * T * s->NH + h) * s->HS, lse + (int64_t)bh * T,
                      q + (b * T * s->NH + h) * s->HS, k + (b * T * s->NKV + kh) * s->HS,
                      v + (b * T * s->NKV + kh) * s->HS, s->kmask ? s->kmask + b * T : NULL,
                      s->window, &d, ws + attn_slot() * slot);
    }
    blas_threads_pop(prev);
}

// One query head's contribution to dq (its own rows) and to dk, dv (its kv head's rows).
// P and dP: (ATTN_BQ, T) scratch each.
static void attn_bwd_head(float *dq, float *dk, float *dv, const float *dout, const float *lse_bh,
                          const float *q, const float *k, const float *v, const int32_t *km,
                          int window, const attn_dims *d, float *P, float *dP) {
    int T = d->T;
    float scale = (float)(1.0 / sqrt((double)d->HS));
    for (int i0 = 0; i0 < T; i0 += ATTN_BQ) {
        int i1 = T - i0 < ATTN_BQ ? T : i0 + ATTN_BQ, nq = i1 - i0;
        int j0 = attn_lo(window, i0), nk = i1 - j0;
        // P(nq, nk) = exp(scale q k^T - lse), the forward's probabilities up to rounding
        lt_sgemm(false, true, nq, nk, d->HS, scale, q + i0 * d->ldq, d->ldq, k + j0 * d->ldk,
                 d->ldk, 0.0f, P, nk);
        for (int i = i0; i < i1; i++)
            attn_prob_row(P + (int64_t)(i - i0) * nk, km, j0, attn_lo(window, i), i, nk,
                          lse_bh[i]);
        // dP(nq, nk) = dout[i0:i1] @ v[j0:i1]^T
        lt_sgemm(false, true, nq, nk, d->HS, 1.0f, dout + i0 * d->ldq, d->ldq, v + j0 * d->ldk,
                 d->ldk, 0.0f, dP, nk);
        // dS = scale * P * (dP - rowsum(P * dP)), in place in dP
        for (int r = 0; r < nq; r++) {
            const float *p = P + (int64_t)r * nk;
            float *g = dP + (int64_t)r * nk;
            float dot = (float)simd_dot_d(p, g, nk);
            for (int j = 0; j < nk; j++) g[j] = scale * p[j] * (g[j] - dot);
        }
        // dq[i0:i1] += dS @ k[j0:i1];  dk[j0:i1] += dS^T @ q[i0:i1];  dv[j0:i1] += P^T @ dout
        lt_sgemm(false, false, nq, d->HS, nk, 1.0f, dP, nk, k + j0 * d->ldk, d->ldk, 1.0f,
                 dq + i0 * d->ldq, d->ldq);
        lt_sgemm(true, false, nk, d->HS, nq, 1.0f, dP, nk, q + i0 * d->ldq, d->ldq, 1.0f,
                 dk + j0 * d->ldk, d->ldk);
        lt_sgemm(true, false, nk, d->HS, nq, 1.0f, P, nk, dout + i0 * d->ldq, d->ldq, 1.0f,
                 dv + j0 * d->ldk, d->ldk);
    }
}

void lt_attn_bwd(float *dq,              // (B, T, NH, HS) +=
                 float *dk,              // (B, T, NKV, HS) +=
                 float *dv,              // (B, T, NKV, HS) +=
                 const float *dout,      // (B, T, NH, HS)
                 const float *lse,       // (B, NH, T)
                 const float *q,         // (B, T, NH, HS)
                 const float *k,         // (B, T, NKV, HS)
                 const float *v,         // (B, T, NKV, HS)
                 const lt_attn_shape *s,
                 float *ws,              // (lt_attn_ws_floats(s, nthr))
                 int nthr) {
    LT_ASSERT(s->NKV > 0 && s->NH % s->NKV == 0);
    attn_dims d = {s->T, s->NH, s->NKV, s->HS, (int64_t)s->NH * s->HS, (int64_t)s->NKV * s->HS};
    int grp = s->NH / s->NKV, nbk = s->B * s->NKV, nt = attn_threads(nthr, nbk);
    int64_t T = s->T, bq = T < ATTN_BQ ? T : ATTN_BQ;
    int prev = blas_threads_push_one();
    (void)nt;
    // One task per (batch, kv head): the query heads sharing a kv head run in one thread, in a
    // fixed order, so dk/dv need no atomics and their sums are deterministic.
    OMP_PARALLEL_FOR(num_threads(nt))
    for (int bk = 0; bk < nbk; bk++) {
        int b = bk / s->NKV, kh = bk % s->NKV;
        int64_t kvo = (b * T * s->NKV + kh) * s->HS;
        float *P = ws + attn_slot() * 2 * bq * T, *dP = P + bq * T;
        for (int h = kh * grp; h < (kh + 1) * grp; h++) {
            int64_t qo = (b * T * s->NH + h) * s->HS;
            attn_bwd_head(dq + qo, dk + kvo, dv + kvo, dout + qo,
                          lse + ((int64_t)b * s->NH + h) * T, q + qo, k + kvo, v + kvo,
                          s->kmask ? s->kmask + b * T : NULL, s->window, &d, P, dP);
        }
    }
    blas_threads_pop(prev);
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

#define EW_CHUNK 4096 // elements per OpenMP task of the elementwise kernels

void lt_swiglu_fwd(float *h,        // (n)
                   const float *g,  // (n)
                   const float *u,  // (n)
                   int64_t n) {
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
    OMP_PARALLEL_FOR(if (n >= (1 << 15)))
    for (int64_t ch = 0; ch < nchunk; ch++) {
        int64_t i = ch * EW_CHUNK, e = n - i < EW_CHUNK ? n : i + EW_CHUNK;
#ifdef LT_SIMD_AVX2
        const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
        for (; i + 8 <= e; i += 8) {
            __m256 vg = _mm256_loadu_ps(g + i);
            __m256 ex = v_expf(_mm256_xor_ps(vg, sign));
            __m256 silu = _mm256_div_ps(vg, _mm256_add_ps(one, ex));
            _mm256_storeu_ps(h + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
        }
#endif
        for (; i < e; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void lt_swiglu_bwd(float *dg,        // (n) +=
                   float *du,        // (n) +=
                   const float *dh,  // (n)
                   const float *g,   // (n)
                   const float *u,   // (n)
                   int64_t n) {
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
    OMP_PARALLEL_FOR(if (n >= (1 << 15)))
    for (int64_t ch = 0; ch < nchunk; ch++) {
        int64_t i = ch * EW_CHUNK, e = n - i < EW_CHUNK ? n : i + EW_CHUNK;
#ifdef LT_SIMD_AVX2
        const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
        for (; i + 8 <= e; i += 8) {
            __m256 vg = _mm256_loadu_ps(g + i), vdh = _mm256_loadu_ps(dh + i);
            __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, v_expf(_mm256_xor_ps(vg, sign))));
            __m256 silu = _mm256_mul_ps(vg, sig);
            // silu' = sig (1 + g (1 - sig)) = sig + silu (1 - sig)
            __m256 dsilu = _mm256_fmadd_ps(silu, _mm256_sub_ps(one, sig), sig);
            __m256 vu = _mm256_loadu_ps(u + i);
            _mm256_storeu_ps(dg + i, _mm256_fmadd_ps(_mm256_mul_ps(vdh, vu), dsilu,
                                                     _mm256_loadu_ps(dg + i)));
            _mm256_storeu_ps(du + i, _mm256_fmadd_ps(vdh, silu, _mm256_loadu_ps(du + i)));
        }
#endif
        for (; i < e; i++) {
            float sig = 1.0f / (1.0f + expf(-g[i])), silu = g[i] * sig;
            dg[i] += dh[i] * u[i] * (sig + silu * (1.0f - sig));
            du[i] += dh[i] * silu;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cross entropy

#define CE_PARTS 64 // fixed row chunks: the loss sum has one order whatever the thread count

// Loss of one row (target t >= 0); writes scale * (softmax - onehot) to dz when not NULL.
static double ce_row(float *dz, const float *z, int32_t t, int V, float scale) {
    LT_ASSERT(t < V);
    float zt = z[t]; // read before dz (which may alias z) is written
    float m = simd_max(z, V);
    double sum;
    if (dz) {
        sum = simd_exp_sub_sum(dz, z, V, m);
        simd_scale(dz, (float)(scale / sum), V);
        dz[t] -= scale;
    } else {
        float tmp[256]; // exp values are not kept without dz
        sum = 0;
        for (int j = 0; j < V; j += 256)
            sum += simd_exp_sub_sum(tmp, z + j, V - j < 256 ? V - j : 256, m);
    }
    return (double)m + log(sum) - (double)zt;
}

double lt_ce_fwd_bwd(float *dlogits,          // (N, V) or NULL; may alias logits
                     const float *logits,     // (N, V)
                     const int32_t *targets,  // (N), < 0: ignored row
                     int64_t N, int V, float scale) {
    double part[CE_PARTS] = {0};
    int64_t per = (N + CE_PARTS - 1) / CE_PARTS;
    OMP_PARALLEL_FOR(if (N * V >= (1 << 16)))
    for (int p = 0; p < CE_PARTS; p++) {
        int64_t n1 = (p + 1) * per < N ? (p + 1) * per : N;
        for (int64_t n = p * per; n < n1; n++) {
            float *dz = dlogits ? dlogits + n * V : NULL;
            if (targets[n] < 0) {
                if (dz) memset(dz, 0, (size_t)V * sizeof *dz);
                continue;
            }
            part[p] += ce_row(dz, logits + n * V, targets[n], V, scale);
        }
    }
    double total = 0;
    for (int p = 0; p < CE_PARTS; p++) total += part[p];
    return total;
}

// ---------------------------------------------------------------------------------------------
// elementwise helpers

// Chunks of EW_CHUNK elements in parallel; within a chunk the AVX2 helper (GCC's -O2 cost model
// leaves loops of unknown length scalar).

void lt_add_inplace(float *y, const float *x, int64_t n) { // y(n) += x(n)
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
    OMP_PARALLEL_FOR(if (n >= (1 << 16)))
    for (int64_t ch = 0; ch < nchunk; ch++) {
        int64_t i = ch * EW_CHUNK;
        simd_add(y + i, x + i, n - i < EW_CHUNK ? n - i : EW_CHUNK);
    }
}

void lt_scale_inplace(float *y, float a, int64_t n) { // y(n) *= a
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
    OMP_PARALLEL_FOR(if (n >= (1 << 16)))
    for (int64_t ch = 0; ch < nchunk; ch++) {
        int64_t i = ch * EW_CHUNK;
        simd_scale(y + i, a, n - i < EW_CHUNK ? n - i : EW_CHUNK);
    }
}

void lt_axpy(float *y, float a, const float *x, int64_t n) { // y(n) += a * x(n)
    int64_t nchunk = (n + EW_CHUNK - 1) / EW_CHUNK;
    OMP_PARALLEL_FOR(if (n >= (1 << 16)))
    for (int64_t ch = 0; ch < nchunk; ch++) {
        int64_t i = ch * EW_CHUNK;
        simd_axpy(y + i, a, x + i, n - i < EW_CHUNK ? n - i : EW_CHUNK);
    }
}
