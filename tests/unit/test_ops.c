/*
 * test_ops.c - tests of the kernels in src/ops/: every backward against central finite
 * differences of the reference forward, every fast kernel against its scalar reference on odd
 * shapes (and every weight dtype for the linear layers), RoPE's backward as the exact inverse
 * and transpose of its forward, and a few hand-computed values (HF semantics of RMSNorm, RoPE
 * table, GQA head mapping, sliding window, padding mask, ignored targets).
 * What not: comparisons against PyTorch itself (tests/golden does that for whole models).
 * Reference: ggml test-backend-ops ("grad" mode), llm.c dev/cuda check_tensor.
 */
#include "core/core.h"
#include "ops/ops.h"
#include "test.h"
#include "test_quant.h"

#include <float.h>

static lt_rng rng;
static const double U = FLT_EPSILON / 2; // unit roundoff of f32 (2^-24)

static float *falloc(int64_t n) {
    float *p = lt_calloc((size_t)(n ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static void fill_normal(float *x, int64_t n, float sd) {
    for (int64_t i = 0; i < n; i++) x[i] = sd * lt_rng_normal(&rng);
}
static double maxabs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
static double dotd(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static double sumabs_prod(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    return s;
}
static double norm_prod(const float *a, const float *b, int64_t n) { // ||a * b||_2
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] * b[i]) * ((double)a[i] * b[i]);
    return sqrt(s);
}

// ---------------------------------------------------------------------------------------------
// finite differences
//
// Each check perturbs one f32 input at a time by +-h (h = 1e-2; the step actually taken after f32
// rounding is the denominator), evaluates the projected loss L = sum(out * R) of the REFERENCE
// forward in f32 (its internal sums are double, its outputs are rounded to f32) and compares
// (L+ - L-) / (x+ - x-) with the analytic gradient of the reference backward. Error budget:
//   rounding: each output carries an independent relative error of at most ~2U (U = 2^-24: the
//     final rounding, plus f32 products such as w * (x * r)), so L is off by about
//     2U ||out * R||_2 (random-walk sum; ~6 sigma margin below) and the quotient by that / h;
//   truncation: h^2/6 |f'''| ~ 2e-5 |f'''|, and f''' of these smooth ops is within a few times
//     the gradient's scale -> 2e-4 max|grad|.
// atol = 6 * 2U ||out R||_2 / h + 2e-4 max|grad|, rtol = 1e-3. The measured worst errors are
// 20-50x below atol; an indexing or formula error moves a gradient by O(max|grad|).

typedef double (*loss_fn)(void *ctx);

// p(n) is the input being perturbed (in place); grad(n) the analytic gradient of f wrt p.
static void fd_check(const char *what, float *p, int64_t n, const float *grad, loss_fn f,
                     void *ctx, double norm_out_r) {
    float *fd = falloc(n);
    const float h = 1e-2f;
    for (int64_t i = 0; i < n; i++) {
        float x0 = p[i];
        float xp = x0 + h, xm = x0 - h;
        p[i] = xp;
        double lp = f(ctx);
        p[i] = xm;
        double lm = f(ctx);
        p[i] = x0;
        fd[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
    double atol = 6 * 2 * U * norm_out_r / h + 2e-4 * maxabs(grad, n);
    CHECK_CLOSE(what, grad, fd, n, atol, 1e-3);
    lt_free(fd);
}

// ---- linear

typedef struct {
    const lt_mat *W;
    const float *b, *R;
    float *x, *y;
    int64_t N;
} lin_ctx;

static double lin_loss(void *c) {
    lin_ctx *k = c;
    lt_linear_fwd_ref(k->y, k->x, k->W, k->b, k->N, false);
    return dotd(k->y, k->R, k->N * k->W->rows);
}

// ---- weights in every dtype (quantisers: tests/test_quant.h, ggml's reference quantize_row_*)

// Stores w(rows, cols) f32 as dtype t into a new buffer (lt_free) and fills the view.
static void *make_weight(lt_mat *W, lt_dtype t, const float *w, int64_t rows, int64_t cols) {
    size_t nb = lt_dtype_nbytes(t, rows * cols);
    void *buf = lt_alloc(nb);
    if (!buf) exit(2);
    switch (t) {
    case LT_DTYPE_Q8_0: quantize_q8_0(buf, w, rows * cols); break;
    case LT_DTYPE_Q4_0: quantize_q4_0(buf, w, rows * cols); break;
    case LT_DTYPE_Q4_1: quantize_q4_1(buf, w, rows * cols); break;
    default: lt_from_f32(t, w, buf, rows * cols); break;
    }
    CHECK(lt_mat_init(W, t, rows, cols, buf));
    return buf;
}

static void test_linear_grad(lt_dtype t) {
    int64_t N = 5, in = 32, out = 7;
    float *w = falloc(out * in), *x = falloc(N * in), *b = falloc(out), *R = falloc(N * out);
    float *y = falloc(N * out), *dx = falloc(N * in);
    fill_normal(w, out * in, 0.3f);
    fill_normal(x, N * in, 1);
    fill_normal(b, out, 1);
    fill_normal(R, N * out, 1);
    lt_mat W;
    void *wb = make_weight(&W, t, w, out, in);
    lt_linear_bwd_x_ref(dx, R, &W, N);
    lin_ctx c = {&W, b, R, x, y, N};
    lin_loss(&c);
    char what[64];
    snprintf(what, sizeof what, "fd linear bwd_x %s", lt_dtype_name(t));
    fd_check(what, x, N * in, dx, lin_loss, &c, norm_prod(y, R, N * out));
    lt_free(wb);
    lt_free(w), lt_free(x), lt_free(b), lt_free(R), lt_free(y), lt_free(dx);
}

// ---- rmsnorm

typedef struct {
    float *x, *w, *out, *rstd;
    const float *R;
    int64_t N;
    int C;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *k = p;
    lt_rmsnorm_fwd_ref(k->out, k->rstd, k->x, k->w, k->N, k->C, 1e-5f);
    return dotd(k->out, k->R, k->N * k->C);
}

static void test_rmsnorm_grad(void) {
    int64_t N = 6;
    int C = 24;
    float *x = falloc(N * C), *w = falloc(C), *out = falloc(N * C), *rstd = falloc(N);
    float *R = falloc(N * C), *dx = falloc(N * C), *dw = falloc(C);
    fill_normal(x, N * C, 1);
    for (int c = 0; c < C; c++) w[c] = 1 + 0.5f * lt_rng_normal(&rng);
    fill_normal(R, N * C, 1);
    rms_ctx k = {x, w, out, rstd, R, N, C};
    rms_loss(&k);
    lt_rmsnorm_bwd_ref(dx, dw, R, x, w, rstd, N, C);
    double s = norm_prod(out, R, N * C);
    fd_check("fd rmsnorm dx", x, N * C, dx, rms_loss, &k, s);
    fd_check("fd rmsnorm dw", w, C, dw, rms_loss, &k, s);
    lt_free(x), lt_free(w), lt_free(out), lt_free(rstd), lt_free(R), lt_free(dx), lt_free(dw);
}

// ---- rope

typedef struct {
    const float *x, *R, *cos_t, *sin_t;
    const int32_t *pos;
    float *tmp;
    int64_t N;
    int nh, HS, rot;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *k = p;
    int64_t n = k->N * k->nh * k->HS;
    memcpy(k->tmp, k->x, (size_t)n * sizeof(float));
    lt_rope_fwd_ref(k->tmp, k->pos, k->cos_t, k->sin_t, k->N, k->nh, k->HS, k->rot);
    return dotd(k->tmp, k->R, n);
}

// ---- attention

typedef struct {
    lt_attn_shape s;
    float *q, *k, *v, *out, *lse;
    const float *R;
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *c = p;
    lt_attn_fwd_ref(c->out, c->lse, c->q, c->k, c->v, &c->s);
    return dotd(c->out, c->R, (int64_t)c->s.B * c->s.T * c->s.NH * c->s.HS);
}

static void test_attn_grad(int window, bool masked) {
    lt_attn_shape s = {.B = 2, .T = 9, .NH = 4, .NKV = 2, .HS = 8, .window = window};
    // batch 0: a padding key in the middle; batch 1: two left-padding keys, so queries 0 and 1
    // see no key at all (their output and gradient must be 0).
    int32_t kmask[18] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1};
    s.kmask = masked ? kmask : NULL;
    int64_t nq = (int64_t)s.B * s.T * s.NH * s.HS, nk = (int64_t)s.B * s.T * s.NKV * s.HS;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *R = falloc(nq), *out = falloc(nq);
    float *lse = falloc((int64_t)s.B * s.NH * s.T);
    float *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    fill_normal(q, nq, 1), fill_normal(k, nk, 1), fill_normal(v, nk, 1), fill_normal(R, nq, 1);
    attn_ctx c = {s, q, k, v, out, lse, R};
    attn_loss(&c);
    lt_attn_bwd_ref(dq, dk, dv, R, lse, q, k, v, &s);
    double sa = norm_prod(out, R, nq);
    char what[96];
    const char *cfg = masked ? (window ? "window+mask" : "mask") : (window ? "window" : "causal");
    snprintf(what, sizeof what, "fd attn dq (%s)", cfg);
    fd_check(what, q, nq, dq, attn_loss, &c, sa);
    snprintf(what, sizeof what, "fd attn dk (%s)", cfg);
    fd_check(what, k, nk, dk, attn_loss, &c, sa);
    snprintf(what, sizeof what, "fd attn dv (%s)", cfg);
    fd_check(what, v, nk, dv, attn_loss, &c, sa);
    lt_free(q), lt_free(k), lt_free(v), lt_free(R), lt_free(out), lt_free(lse);
    lt_free(dq), lt_free(dk), lt_free(dv);
}

// ---- swiglu

typedef struct {
    float *g, *u, *h;
    const float *R;
    int64_t n;
} swi_ctx;

static double swi_loss(void *p) {
    swi_ctx *c = p;
    lt_swiglu_fwd_ref(c->h, c->g, c->u, c->n);
    return dotd(c->h, c->R, c->n);
}

// ---- cross entropy

typedef struct {
    float *z;
    const int32_t *t;
    int64_t N;
    int V;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    return lt_ce_fwd_bwd_ref(NULL, c->z, c->t, c->N, c->V, 1.0f);
}

static void test_small_grads(void) {
    // rope: linear in x, so only rounding noise; partial rotary (rot 8 of HS 16)
    {
        int64_t N = 5;
        int nh = 2, HS = 16, rot = 8, npos = 40;
        int32_t pos[5] = {0, 3, 7, 31, 39};
        int64_t n = N * nh * HS;
        float *ct = falloc(npos * rot / 2), *st = falloc(npos * rot / 2);
        lt_rope_table(ct, st, npos, rot, 10000.0f);
        float *x = falloc(n), *R = falloc(n), *tmp = falloc(n), *g = falloc(n);
        fill_normal(x, n, 1), fill_normal(R, n, 1);
        memcpy(g, R, (size_t)n * sizeof *g);
        lt_rope_bwd_ref(g, pos, ct, st, N, nh, HS, rot);
        rope_ctx c = {x, R, ct, st, pos, tmp, N, nh, HS, rot};
        rope_loss(&c);
        fd_check("fd rope bwd", x, n, g, rope_loss, &c, norm_prod(tmp, R, n));
        lt_free(ct), lt_free(st), lt_free(x), lt_free(R), lt_free(tmp), lt_free(g);
    }
    // swiglu over a range of g that covers both tails of the sigmoid
    {
        int64_t n = 64;
        float *g = falloc(n), *u = falloc(n), *h = falloc(n), *R = falloc(n);
        float *dg = falloc(n), *du = falloc(n);
        fill_normal(g, n, 3), fill_normal(u, n, 1), fill_normal(R, n, 1);
        lt_swiglu_bwd_ref(dg, du, R, g, u, n);
        swi_ctx c = {g, u, h, R, n};
        swi_loss(&c);
        double s = norm_prod(h, R, n);
        fd_check("fd swiglu dg", g, n, dg, swi_loss, &c, s);
        fd_check("fd swiglu du", u, n, du, swi_loss, &c, s);
        lt_free(g), lt_free(u), lt_free(h), lt_free(R), lt_free(dg), lt_free(du);
    }
    // cross entropy: the loss is computed in double from f32 logits, so the rounding noise is
    // ~1e-16 |L| (passed as the "norm" it is well above that); rows 1 and 4 are ignored
    // (gradient exactly 0)
    {
        int64_t N = 6;
        int V = 11;
        int32_t t[6] = {3, -100, 0, 10, -1, 5};
        float *z = falloc(N * V), *dz = falloc(N * V);
        fill_normal(z, N * V, 2);
        lt_ce_fwd_bwd_ref(dz, z, t, N, V, 1.0f);
        ce_ctx c = {z, t, N, V};
        fd_check("fd cross entropy", z, N * V, dz, ce_loss, &c, 1e-6 * ce_loss(&c));
        double zero = maxabs(dz + 1 * V, V) + maxabs(dz + 4 * V, V);
        CHECK_MSG(zero == 0, "ignored rows have gradient %g", zero);
        lt_free(z), lt_free(dz);
    }
}

// ---------------------------------------------------------------------------------------------
// fast vs reference
//
// Linear: the fast path is an f32 sgemm (f32 products and sums in a blocked order) on the same
// f32 values of W as the reference (both dequantise with the same code), while the reference
// sums in double. For a length-K f32 dot product the probabilistic bound of Higham & Mary (2019)
// is |err| <= lambda sqrt(K) U sum_k |x_k w_k| with overwhelming probability for lambda ~ 4
// (the deterministic K U sum|x w| is 10-20x looser than what is ever seen). atol uses
// 4 sqrt(K) U max_rows sum|x w| plus the final rounding 2U max|y|.

// max over (n, o) of sum_k |a[n,k]| |b[o,k]| (a: (N, K), b: (M, K) row-major); or with b_t,
// b is (K, M) and the sum runs over its rows.
static double max_abs_dot(const float *a, const float *b, int64_t N, int64_t M, int64_t K,
                          bool b_t) {
    double m = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < M; o++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += fabs(a[n * K + k] * (b_t ? b[k * M + o] : b[o * K + k]));
            m = s > m ? s : m;
        }
    return m;
}

static void test_linear_fast(lt_dtype t, int64_t N, bool bias, bool accumulate) {
    int64_t in = 288, out = 300; // both cross the 256-wide slab boundary (fwd: in, bwd: out)
    float *w = falloc(out * in), *x = falloc(N * in), *b = falloc(out);
    float *y0 = falloc(N * out), *y1 = falloc(N * out), *dy = falloc(N * out);
    float *dx0 = falloc(N * in), *dx1 = falloc(N * in);
    fill_normal(w, out * in, 0.3f), fill_normal(x, N * in, 1), fill_normal(b, out, 1);
    fill_normal(y0, N * out, 1), fill_normal(dy, N * out, 1), fill_normal(dx0, N * in, 1);
    memcpy(y1, y0, (size_t)(N * out) * sizeof *y1);
    memcpy(dx1, dx0, (size_t)(N * in) * sizeof *dx1);
    lt_mat W;
    void *wb = make_weight(&W, t, w, out, in);
    size_t wsn = lt_linear_ws_floats(&W);
    float *ws = wsn ? falloc((int64_t)wsn) : NULL;
    float *wq = falloc(out * in); // the stored (rounded / dequantised) weight in f32
    for (int64_t r = 0; r < out; r++) lt_to_f32(t, lt_mat_row(&W, r), wq + r * in, in);
    lt_linear_fwd_ref(y0, x, &W, bias ? b : NULL, N, accumulate);
    lt_linear_fwd(y1, x, &W, bias ? b : NULL, N, accumulate, ws);
    double atol_f = 4 * sqrt((double)in) * U * max_abs_dot(x, wq, N, out, in, false) +
                    2 * U * maxabs(y0, N * out);
    char what[96];
    snprintf(what, sizeof what, "linear fwd %s N=%lld%s%s", lt_dtype_name(t), (long long)N,
             bias ? " bias" : "", accumulate ? " acc" : "");
    CHECK_CLOSE(what, y1, y0, N * out, atol_f, 0);
    lt_linear_bwd_x_ref(dx0, dy, &W, N);
    lt_linear_bwd_x(dx1, dy, &W, N, ws);
    double atol_b = 4 * sqrt((double)out) * U * max_abs_dot(dy, wq, N, in, out, true) +
                    2 * U * maxabs(dx0, N * in);
    snprintf(what, sizeof what, "linear bwd_x %s N=%lld", lt_dtype_name(t), (long long)N);
    CHECK_CLOSE(what, dx1, dx0, N * in, atol_b, 0);
    lt_free(ws), lt_free(wb), lt_free(w), lt_free(x), lt_free(b), lt_free(y0), lt_free(y1);
    lt_free(dy), lt_free(dx0), lt_free(dx1), lt_free(wq);
}

// The quantised weights themselves against lt_to_f32 (the SIMD q8_0 / bf16 / f16 converters in
// the fast path must give identical values): a 1-row x picks out rows of W exactly when x is a
// one-hot vector, since the products are exact and every other term is +0.
static void test_linear_onehot(lt_dtype t) {
    int64_t in = 96, out = 40, NMAX = 12; // N = 1: fused path, N = 12 > LINEAR_SMALL_N: slabs
    float *w = falloc(out * in), *x = falloc(NMAX * in), *y = falloc(NMAX * out);
    float *ref = falloc(out * in);
    fill_normal(w, out * in, 0.5f);
    lt_mat W;
    void *wb = make_weight(&W, t, w, out, in);
    for (int64_t r = 0; r < out; r++) lt_to_f32(t, lt_mat_row(&W, r), ref + r * in, in);
    float *ws = falloc((int64_t)lt_linear_ws_floats(&W) + 1);
    int bad = 0;
    for (int64_t N = 1; N <= NMAX; N += NMAX - 1)
        for (int64_t k0 = 0; k0 < in; k0 += N) { // in % N == 0
            memset(x, 0, (size_t)(N * in) * sizeof *x);
            for (int64_t n = 0; n < N; n++) x[n * in + k0 + n] = 1;
            lt_linear_fwd(y, x, &W, NULL, N, false, ws);
            for (int64_t n = 0; n < N; n++)
                for (int64_t o = 0; o < out; o++) bad += y[n * out + o] != ref[o * in + k0 + n];
        }
    CHECK_MSG(bad == 0, "%s: %d dequantised weights differ from lt_to_f32", lt_dtype_name(t), bad);
    lt_free(wb), lt_free(w), lt_free(x), lt_free(y), lt_free(ref), lt_free(ws);
}

static void test_rmsnorm_fast(void) {
    // Same arithmetic (double sum of squares, f32 variance, f32 w * (x * r)); only the order of
    // the double sums differs, far below f32 resolution: a few ulp at most.
    int64_t N = 37;
    int C = 48;
    float *x = falloc(N * C), *w = falloc(C), *o0 = falloc(N * C), *o1 = falloc(N * C);
    float *r0 = falloc(N), *r1 = falloc(N), *g = falloc(N * C);
    float *dx0 = falloc(N * C), *dx1 = falloc(N * C), *dw0 = falloc(C), *dw1 = falloc(C);
    fill_normal(x, N * C, 2), fill_normal(w, C, 1), fill_normal(g, N * C, 1);
    fill_normal(dx0, N * C, 1), fill_normal(dw0, C, 1);
    memcpy(dx1, dx0, (size_t)(N * C) * 4), memcpy(dw1, dw0, (size_t)C * 4);
    lt_rmsnorm_fwd_ref(o0, r0, x, w, N, C, 1e-6f);
    lt_rmsnorm_fwd(o1, r1, x, w, N, C, 1e-6f);
    CHECK_CLOSE("rmsnorm fwd out", o1, o0, N * C, 0, 4 * U);
    CHECK_CLOSE("rmsnorm fwd rstd", r1, r0, N, 0, 4 * U);
    lt_rmsnorm_bwd_ref(dx0, dw0, g, x, w, r0, N, C);
    lt_rmsnorm_bwd(dx1, dw1, g, x, w, r1, N, C);
    // dx = r w g - k x: f32 products and one cancelling subtraction; atol from the size of the
    // terms (|r w g| + |k x| <= ~10 here) times a few U
    CHECK_CLOSE("rmsnorm bwd dx", dx1, dx0, N * C, 16 * U * 10, 8 * U);
    CHECK_CLOSE("rmsnorm bwd dw", dw1, dw0, C, 16 * U * N, 8 * U);
    // HF value: x = (1, 2, 3, 4), w = 1: var = 7.5
    float hx[4] = {1, 2, 3, 4}, hw[4] = {1, 1, 1, 1}, ho[4], hr;
    lt_rmsnorm_fwd(ho, &hr, hx, hw, 1, 4, 1e-6f);
    CHECK(hr == 1.0f / sqrtf(7.5f + 1e-6f) && ho[3] == 4 * hr);
    lt_free(x), lt_free(w), lt_free(o0), lt_free(o1), lt_free(r0), lt_free(r1), lt_free(g);
    lt_free(dx0), lt_free(dx1), lt_free(dw0), lt_free(dw1);
}

static void test_rope(void) {
    int64_t N = 37;
    int nh = 4, HS = 16, npos = 64;
    for (int rot = 8; rot <= HS; rot += 8) { // partial (NeoX) and full rotary
        int half = rot / 2;
        float *ct = falloc(npos * half), *st = falloc(npos * half);
        lt_rope_table(ct, st, npos, rot, 10000.0f);
        // the table: pos 0 is the identity; inv_freq as transformers computes it in f32
        CHECK(ct[0] == 1 && st[0] == 0);
        float inv1 = 1.0f / (float)pow(10000.0, (double)(2.0f / (float)rot));
        CHECK(ct[5 * half + 1] == (float)cos((double)(5.0f * inv1)));
        int32_t pos[37];
        for (int i = 0; i < N; i++) pos[i] = (int32_t)lt_rng_below(&rng, (uint64_t)npos);
        int64_t n = N * nh * HS;
        float *x = falloc(n), *a = falloc(n), *b = falloc(n), *y = falloc(n);
        fill_normal(x, n, 1), fill_normal(y, n, 1);
        memcpy(a, x, (size_t)n * 4), memcpy(b, x, (size_t)n * 4);
        lt_rope_fwd_ref(a, pos, ct, st, N, nh, HS, rot);
        lt_rope_fwd(b, pos, ct, st, N, nh, HS, rot);
        // identical expressions: at most an FMA contraction apart (a few ulp of |x|)
        CHECK_CLOSE("rope fwd fast vs ref", b, a, n, 4 * U * maxabs(x, n), 0);
        // dims >= rot untouched
        int untouched = 1;
        for (int64_t r = 0; r < N * nh; r++)
            for (int d = rot; d < HS; d++) untouched &= b[r * HS + d] == x[r * HS + d];
        CHECK(untouched);
        // bwd(fwd(x)) = x: the rotation's transpose is its inverse; cos^2 + sin^2 = 1 within
        // 2 ulp of the f32 table values, plus the rounding of each product: ~4 U |x|
        lt_rope_bwd(b, pos, ct, st, N, nh, HS, rot);
        CHECK_CLOSE("rope bwd(fwd(x)) == x", b, x, n, 8 * U * maxabs(x, n), 0);
        memcpy(b, a, (size_t)n * 4);
        lt_rope_bwd_ref(b, pos, ct, st, N, nh, HS, rot);
        CHECK_CLOSE("rope bwd_ref(fwd_ref(x)) == x", b, x, n, 8 * U * maxabs(x, n), 0);
        // transpose: <R x, y> == <x, R^T y> (double sums of f32 values; relative 1e-6)
        memcpy(b, y, (size_t)n * 4);
        lt_rope_bwd(b, pos, ct, st, N, nh, HS, rot);
        double l = dotd(a, y, n), r = dotd(x, b, n);
        CHECK_MSG(fabs(l - r) <= 1e-6 * (sumabs_prod(a, y, n) + 1), "<Rx,y> %g <x,R'y> %g", l, r);
        lt_free(ct), lt_free(st), lt_free(x), lt_free(a), lt_free(b), lt_free(y);
    }
}

// Attention: scores are f32 sgemm dot products of length HS (|err| <= HS U sum|q k| scale,
// ~1e-6 here), the vector expf is within 2 ulp, and P V sums <= T terms of |P v| <= |v|: the
// log-sum-exps agree to ~1e-6 and the outputs to ~(HS + T) U max|v| ~ 1e-5 absolute.
// Backward: P is recomputed as exp(S - lse) from the f32 lse (relative error ~|lse| U), and
// dS = P (dP - rowsum) cancels, so its error is absolute, ~T U max|dP|; propagated through sums
// of T terms: atol = 1e-4 * max|grad| covers it with margin (measured ~1e-6).
// The fast kernels run with 1 and with 3 threads' scratch: the results must be bit-identical.
static void test_attn_fast(int B, int T, int NH, int NKV, int HS, int window, bool masked) {
    lt_attn_shape s = {.B = B, .T = T, .NH = NH, .NKV = NKV, .HS = HS, .window = window};
    int32_t *km = NULL;
    if (masked) {
        km = lt_alloc((size_t)B * T * sizeof *km);
        for (int i = 0; i < B * T; i++) km[i] = lt_rng_uniform(&rng) < 0.8f;
        km[(B - 1) * T] = 0, km[(B - 1) * T + 1] = 0; // left padding on the last batch
        s.kmask = km;
    }
    int64_t nq = (int64_t)B * T * NH * HS, nk = (int64_t)B * T * NKV * HS;
    int64_t nl = (int64_t)B * NH * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *dout = falloc(nq);
    float *o0 = falloc(nq), *o1 = falloc(nq), *l0 = falloc(nl), *l1 = falloc(nl);
    float *dq0 = falloc(nq), *dq1 = falloc(nq), *dk0 = falloc(nk), *dk1 = falloc(nk);
    float *dv0 = falloc(nk), *dv1 = falloc(nk), *ws = falloc((int64_t)lt_attn_ws_floats(&s, 3));
    float *o2 = falloc(nq), *l2 = falloc(nl), *dq2 = falloc(nq), *dk2 = falloc(nk);
    float *dv2 = falloc(nk);
    fill_normal(q, nq, 1), fill_normal(k, nk, 1), fill_normal(v, nk, 1), fill_normal(dout, nq, 1);
    fill_normal(dq0, nq, 1), fill_normal(dk0, nk, 1), fill_normal(dv0, nk, 1); // += semantics
    memcpy(dq1, dq0, (size_t)nq * 4), memcpy(dk1, dk0, (size_t)nk * 4);
    memcpy(dv1, dv0, (size_t)nk * 4);
    memcpy(dq2, dq0, (size_t)nq * 4), memcpy(dk2, dk0, (size_t)nk * 4);
    memcpy(dv2, dv0, (size_t)nk * 4);
    for (int64_t i = 0; i < nq; i++) o1[i] = NAN; // every entry must be written
    for (int64_t i = 0; i < nl; i++) l1[i] = NAN;
    lt_attn_fwd_ref(o0, l0, q, k, v, &s);
    lt_attn_fwd(o1, l1, q, k, v, &s, ws, 3);
    lt_attn_fwd(o2, l2, q, k, v, &s, ws, 1);
    char what[128], cfg[64];
    snprintf(cfg, sizeof cfg, "B%d T%d NH%d NKV%d HS%d W%d%s", B, T, NH, NKV, HS, window,
             masked ? " mask" : "");
    // lse is -inf exactly for the rows that see no key (then compared as 0)
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                int64_t r = ((int64_t)b * NH + h) * T + i;
                bool any = false;
                for (int j = 0; j <= i; j++)
                    any |= (window == 0 || j > i - window) && (!km || km[b * T + j]);
                bad += any ? !isfinite(l1[r]) || !isfinite(l0[r])
                           : !(l1[r] == -INFINITY && l0[r] == -INFINITY);
            }
    CHECK_MSG(bad == 0, "attn lse structure (%s): %d bad rows", cfg, bad);
    float *l0z = falloc(nl), *l1z = falloc(nl);
    for (int64_t i = 0; i < nl; i++) {
        l0z[i] = isfinite(l0[i]) ? l0[i] : 0.0f;
        l1z[i] = isfinite(l1[i]) ? l1[i] : 0.0f;
    }
    snprintf(what, sizeof what, "attn fwd lse (%s)", cfg);
    CHECK_CLOSE(what, l1z, l0z, nl, 1e-5, 1e-5);
    snprintf(what, sizeof what, "attn fwd out (%s)", cfg);
    CHECK_CLOSE(what, o1, o0, nq, (HS + T) * U * maxabs(v, nk) * 4, 1e-5);
    lt_attn_bwd_ref(dq0, dk0, dv0, dout, l0, q, k, v, &s);
    lt_attn_bwd(dq1, dk1, dv1, dout, l1, q, k, v, &s, ws, 3);
    lt_attn_bwd(dq2, dk2, dv2, dout, l1, q, k, v, &s, ws, 1);
    snprintf(what, sizeof what, "attn bwd dq (%s)", cfg);
    CHECK_CLOSE(what, dq1, dq0, nq, 1e-4 * maxabs(dq0, nq), 1e-5);
    snprintf(what, sizeof what, "attn bwd dk (%s)", cfg);
    CHECK_CLOSE(what, dk1, dk0, nk, 1e-4 * maxabs(dk0, nk), 1e-5);
    snprintf(what, sizeof what, "attn bwd dv (%s)", cfg);
    CHECK_CLOSE(what, dv1, dv0, nk, 1e-4 * maxabs(dv0, nk), 1e-5);
    CHECK_MSG(!memcmp(o1, o2, (size_t)nq * 4) && !memcmp(l1, l2, (size_t)nl * 4) &&
                  !memcmp(dq1, dq2, (size_t)nq * 4) && !memcmp(dk1, dk2, (size_t)nk * 4) &&
                  !memcmp(dv1, dv2, (size_t)nk * 4),
              "attn (%s): results depend on the thread count", cfg);
    if (masked) { // queries 0 and 1 of the last batch see only padding keys: output exactly 0
        const float *z0 = o0 + (int64_t)(B - 1) * T * NH * HS, *z1 = o1 + (z0 - o0);
        CHECK(maxabs(z0, 2 * NH * HS) == 0 && maxabs(z1, 2 * NH * HS) == 0);
    }
    lt_free(km), lt_free(q), lt_free(k), lt_free(v), lt_free(dout), lt_free(o0), lt_free(o1);
    lt_free(l0), lt_free(l1), lt_free(dq0), lt_free(dq1), lt_free(dk0), lt_free(dk1);
    lt_free(dv0), lt_free(dv1), lt_free(ws), lt_free(o2), lt_free(l2), lt_free(dq2);
    lt_free(dk2), lt_free(dv2), lt_free(l0z), lt_free(l1z);
}

// GQA mapping: with NH = 4, NKV = 2, query heads 0,1 read kv head 0 and heads 2,3 kv head 1.
static void test_attn_gqa_mapping(void) {
    lt_attn_shape s = {.B = 1, .T = 5, .NH = 4, .NKV = 2, .HS = 4};
    int64_t nq = 5 * 4 * 4, nk = 5 * 2 * 4;
    float q[80], k[40], v[40], out[80], lse[4 * 5], ws[2 * 5 * 5];
    fill_normal(q, nq, 1), fill_normal(k, nk, 1);
    for (int64_t i = 0; i < nk; i++) v[i] = (float)(1 + (i / 4) % 2); // kv head 0: 1, head 1: 2
    lt_attn_fwd(out, lse, q, k, v, &s, ws, 1);
    int bad = 0;
    for (int64_t i = 0; i < nq; i++) bad += fabsf(out[i] - (float)(1 + (i / 4) % 4 / 2)) > 1e-5f;
    CHECK_MSG(bad == 0, "GQA head mapping: %d wrong outputs", bad);
}

static void test_swiglu_fast(void) {
    // vector expf (<= 2 ulp) and f32 division vs double: a few ulp relative to |h|, |dg|, |du|
    int64_t n = 10007; // odd: SIMD body and scalar tail, several OpenMP chunks
    float *g = falloc(n), *u = falloc(n), *h0 = falloc(n), *h1 = falloc(n), *dh = falloc(n);
    float *dg0 = falloc(n), *dg1 = falloc(n), *du0 = falloc(n), *du1 = falloc(n);
    fill_normal(g, n, 4), fill_normal(u, n, 1), fill_normal(dh, n, 1);
    g[0] = 100, g[1] = -100, g[2] = 0, g[3] = -90; // saturated sigmoid both ways
    lt_swiglu_fwd_ref(h0, g, u, n);
    lt_swiglu_fwd(h1, g, u, n);
    CHECK_CLOSE("swiglu fwd", h1, h0, n, 1e-30, 8 * U);
    lt_swiglu_bwd_ref(dg0, du0, dh, g, u, n);
    lt_swiglu_bwd(dg1, du1, dh, g, u, n);
    // dg = dh u (sig + silu (1 - sig)): the sum can cancel near g ~ -1.28, so an absolute term
    CHECK_CLOSE("swiglu bwd dg", dg1, dg0, n, 8 * U * maxabs(dg0, n), 16 * U);
    CHECK_CLOSE("swiglu bwd du", du1, du0, n, 1e-30, 8 * U);
    lt_free(g), lt_free(u), lt_free(h0), lt_free(h1), lt_free(dh), lt_free(dg0), lt_free(dg1);
    lt_free(du0), lt_free(du1);
}

static void test_ce_fast(void) {
    int64_t N = 37;
    int V = 1001;
    int32_t t[37];
    for (int i = 0; i < N; i++) t[i] = i % 5 == 2 ? -100 : (int32_t)lt_rng_below(&rng, (uint64_t)V);
    float *z = falloc(N * V), *d0 = falloc(N * V), *d1 = falloc(N * V);
    fill_normal(z, N * V, 3);
    float scale = 1.0f / 30;
    double l0 = lt_ce_fwd_bwd_ref(d0, z, t, N, V, scale);
    double l1 = lt_ce_fwd_bwd(d1, z, t, N, V, scale);
    double l2 = lt_ce_fwd_bwd(NULL, z, t, N, V, scale);
    // softmax probabilities via the vector expf: relative ~2 ulp, sums in double:
    // loss relative 1e-6, dlogits atol 4 U scale (|p - onehot| <= 1)
    CHECK_MSG(fabs(l1 - l0) <= 1e-6 * fabs(l0) && l2 == l1, "ce loss %.9g vs ref %.9g (null %.9g)",
              l1, l0, l2);
    CHECK_CLOSE("ce dlogits", d1, d0, N * V, 4 * U * scale, 8 * U);
    // in place: dlogits aliasing logits
    memcpy(d1, z, (size_t)(N * V) * 4);
    double l3 = lt_ce_fwd_bwd(d1, d1, t, N, V, scale);
    CHECK_CLOSE("ce dlogits in place", d1, d0, N * V, 4 * U * scale, 8 * U);
    CHECK(l3 == l1);
    memcpy(d1, z, (size_t)(N * V) * 4);
    double l4 = lt_ce_fwd_bwd_ref(d1, d1, t, N, V, scale);
    CHECK_CLOSE("ce ref in place", d1, d0, N * V, 0, 0);
    CHECK(l4 == l0);
    // known value: uniform logits -> log V per kept row
    float zz[8] = {0};
    int32_t tt[2] = {1, -1};
    double l5 = lt_ce_fwd_bwd(NULL, zz, tt, 2, 4, 1);
    CHECK_MSG(fabs(l5 - log(4.0)) < 1e-6, "uniform ce %g", l5);
    lt_free(z), lt_free(d0), lt_free(d1);
}

static void test_elementwise(void) {
    float y[5] = {1, 2, 3, 4, 5}, x[5] = {1, 1, 1, 1, 2}, want[5] = {4, 6, 8, 10, 16};
    lt_add_inplace(y, x, 5);      // 2 3 4 5 7
    lt_scale_inplace(y, 2, 5);    // 4 6 8 10 14
    lt_axpy(y, 1, x + 4, 1);      // first: 6
    lt_axpy(y + 1, 0, x, 4);      // unchanged
    want[0] = 6, want[4] = 14;
    CHECK_CLOSE("elementwise", y, want, 5, 0, 0);
}

int main(void) {
    lt_rng_seed(&rng, 1234);
    // (a) finite differences of every backward
    test_linear_grad(LT_DTYPE_F32);
    test_linear_grad(LT_DTYPE_Q4_1);
    test_rmsnorm_grad();
    test_small_grads();
    test_attn_grad(0, false);
    test_attn_grad(4, true);
    // (b) fast vs reference
    lt_dtype dts[6] = {LT_DTYPE_F32,  LT_DTYPE_BF16, LT_DTYPE_F16,
                       LT_DTYPE_Q8_0, LT_DTYPE_Q4_0, LT_DTYPE_Q4_1};
    for (int i = 0; i < 6; i++) {
        test_linear_fast(dts[i], 37, true, false);
        test_linear_fast(dts[i], 8, true, true);  // fused small-N path (its largest N)
        test_linear_fast(dts[i], 1, false, false);
        test_linear_fast(dts[i], 37, false, true);
        if (dts[i] != LT_DTYPE_F32) test_linear_onehot(dts[i]);
    }
    test_rmsnorm_fast();
    test_attn_fast(2, 13, 4, 2, 16, 0, false);
    test_attn_fast(2, 13, 4, 2, 16, 5, true);
    test_attn_fast(2, 150, 4, 1, 16, 40, true); // three query blocks, window across blocks
    test_attn_fast(1, 130, 2, 2, 8, 0, true);
    test_attn_gqa_mapping();
    test_swiglu_fast();
    test_ce_fast();
    test_elementwise();
    // (c) RoPE: fast vs ref, bwd is the inverse and the transpose of fwd
    test_rope();
    TEST_END();
}
