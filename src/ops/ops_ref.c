/*
 * ops_ref.c - the scalar reference kernels (`*_ref` of ops.h), forward and backward.
 *
 * What: one plain loop nest per op, written to be read and checked, not to be fast. Dot products
 * and reductions are accumulated in double so the references sit closer to the exact value than
 * any f32 fast path; tests compare the fast kernels against these and these against finite
 * differences. They allocate nothing (weights are dequantised a 32-element block at a time onto
 * the stack) and use no threads, BLAS or SIMD.
 * What not: no speed. The per-op math (and the HF modules it matches) is documented in ops.h.
 * Reference: llm.c (train_gpt2.c: *_forward / *_backward), HF transformers modeling_llama.py
 * (LlamaRMSNorm, rotate_half / apply_rotary_pos_emb, eager attention), PyTorch CrossEntropyLoss.
 */
#include "ops/ops.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// linear

// Elements converted at once: a multiple of every block size (32, 64, 256 for k-quants).
#define REF_CHUNK 256

// Dequantises elements [k0, k0 + REF_CHUNK) (or to the row's end) of row r of W into buf.
static int64_t w_chunk(float *buf, const lt_mat *W, int64_t r, int64_t k0) {
    int64_t n = W->cols - k0 < REF_CHUNK ? W->cols - k0 : REF_CHUNK; // cols % block == 0
    lt_mat_row_to_f32(W, r, k0, n, buf);
    return n;
}

void lt_linear_fwd_ref(float *y,         // (N, out)
                       const float *x,   // (N, in)
                       const lt_mat *W,  // (out, in)
                       const float *b,   // (out) or NULL
                       int64_t N, bool accumulate) {
    int64_t in = W->cols, out = W->rows;
    float buf[REF_CHUNK];
    for (int64_t o = 0; o < out; o++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = b ? b[o] : 0.0;
            for (int64_t k0 = 0; k0 < in; k0 += REF_CHUNK) {
                int64_t kn = w_chunk(buf, W, o, k0);
                for (int64_t k = 0; k < kn; k++) acc += (double)x[n * in + k0 + k] * buf[k];
            }
            float *yo = &y[n * out + o];
            *yo = accumulate ? (float)(*yo + acc) : (float)acc;
        }
    }
}

void lt_linear_bwd_x_ref(float *dx,        // (N, in)
                         const float *dy,  // (N, out)
                         const lt_mat *W,  // (out, in)
                         int64_t N) {
    int64_t in = W->cols, out = W->rows;
    float buf[REF_CHUNK];
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k0 = 0; k0 < in; k0 += REF_CHUNK) {
            double acc[REF_CHUNK] = {0};
            int64_t kn = 0;
            for (int64_t o = 0; o < out; o++) {
                kn = w_chunk(buf, W, o, k0);
                for (int64_t k = 0; k < kn; k++) acc[k] += (double)dy[n * out + o] * buf[k];
            }
            for (int64_t k = 0; k < kn; k++) dx[n * in + k0 + k] += (float)acc[k];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm (HF LlamaRMSNorm in f32: variance = mean(x^2) rounded to f32; x * rsqrt(var + eps);
// then weight * that). rstd = 1/sqrt(var + eps) as PyTorch's f32 rsqrt (1/sqrt) computes it.

void lt_rmsnorm_fwd_ref(float *out,       // (N, C)
                        float *rstd,      // (N)
                        const float *x,   // (N, C)
                        const float *w,   // (C)
                        int64_t N, int C, float eps) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float var = (float)ss / (float)C;
        float r = 1.0f / sqrtf(var + eps);
        rstd[n] = r;
        for (int c = 0; c < C; c++) out[n * C + c] = w[c] * (xr[c] * r);
    }
}

// y_c = w_c x_c r, r = (mean(x^2) + eps)^-1/2, dr/dx_c = -r^3 x_c / C, so
// dx_c = r w_c g_c - x_c r^3 / C * sum_j g_j w_j x_j ;  dw_c = sum_n g_c x_c r.
void lt_rmsnorm_bwd_ref(float *dx,          // (N, C) +=
                        float *dw,          // (C) += or NULL
                        const float *dout,  // (N, C)
                        const float *x,     // (N, C)
                        const float *w,     // (C)
                        const float *rstd,  // (N)
                        int64_t N, int C) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *g = dout + n * C;
        double r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++) dot += (double)g[c] * w[c] * xr[c];
        double k = r * r * r * dot / C;
        for (int c = 0; c < C; c++) dx[n * C + c] += (float)(r * w[c] * g[c] - k * xr[c]);
    }
    if (dw)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) acc += (double)dout[n * C + c] * x[n * C + c] * rstd[n];
            dw[c] += (float)acc;
        }
}

// ---------------------------------------------------------------------------------------------
// RoPE, rotate_half layout: out = x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1)
// on the first `rot` dims of each head (x1 = dims [0, rot/2), x2 = dims [rot/2, rot)).

void lt_rope_table(float *cos_t,  // (n_pos, rot/2)
                   float *sin_t,  // (n_pos, rot/2)
                   int n_pos, int rot, float theta) {
    int half = rot / 2;
    for (int i = 0; i < half; i++) {
        // transformers: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), all in f32
        float e = (float)(2 * i) / (float)rot;
        float inv_freq = 1.0f / (float)pow((double)theta, (double)e);
        for (int p = 0; p < n_pos; p++) {
            float ang = (float)p * inv_freq; // f32 product, as the K=1 matmul in transformers
            cos_t[(size_t)p * half + i] = (float)cos((double)ang);
            sin_t[(size_t)p * half + i] = (float)sin((double)ang);
        }
    }
}

// dir = +1: forward rotation; dir = -1: its transpose (the inverse).
static void rope_apply_ref(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                           int64_t N, int nh, int HS, int rot, int dir) {
    LT_ASSERT(rot % 2 == 0 && rot <= HS);
    int half = rot / 2;
    for (int64_t n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *xh = x + (n * nh + h) * HS;
            for (int i = 0; i < half; i++) {
                float x1 = xh[i], x2 = xh[i + half], si = dir > 0 ? s[i] : -s[i];
                xh[i] = x1 * c[i] - x2 * si;
                xh[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void lt_rope_fwd_ref(float *x,            // (N, nh, HS) in place
                     const int32_t *pos,  // (N)
                     const float *cos_t,  // (n_pos, rot/2)
                     const float *sin_t,  // (n_pos, rot/2)
                     int64_t N, int nh, int HS, int rot) {
    rope_apply_ref(x, pos, cos_t, sin_t, N, nh, HS, rot, +1);
}

void lt_rope_bwd_ref(float *dx,           // (N, nh, HS) in place
                     const int32_t *pos,  // (N)
                     const float *cos_t,  // (n_pos, rot/2)
                     const float *sin_t,  // (n_pos, rot/2)
                     int64_t N, int nh, int HS, int rot) {
    rope_apply_ref(dx, pos, cos_t, sin_t, N, nh, HS, rot, -1);
}

// ---------------------------------------------------------------------------------------------
// attention

// Whether query i of batch b sees key j: causal, inside the window, and not a padding key.
static inline bool attn_visible(const lt_attn_shape *s, int b, int i, int j) {
    if (j > i) return false;
    if (s->window > 0 && j <= i - s->window) return false;
    if (s->kmask && !s->kmask[(size_t)b * s->T + j]) return false;
    return true;
}

// Scaled score of query i (head h) against key j (kv head kh), in double.
static double attn_score(const lt_attn_shape *s, const float *q, const float *k, int b, int h,
                         int kh, int i, int j) {
    const float *qi = q + (((size_t)b * s->T + i) * s->NH + h) * s->HS;
    const float *kj = k + (((size_t)b * s->T + j) * s->NKV + kh) * s->HS;
    double d = 0;
    for (int e = 0; e < s->HS; e++) d += (double)qi[e] * kj[e];
    return d / sqrt((double)s->HS);
}

// Scores are recomputed where needed (max, sum, output) rather than kept in a row buffer, so the
// reference needs no workspace.
void lt_attn_fwd_ref(float *out,             // (B, T, NH, HS)
                     float *lse,             // (B, NH, T)
                     const float *q,         // (B, T, NH, HS)
                     const float *k,         // (B, T, NKV, HS)
                     const float *v,         // (B, T, NKV, HS)
                     const lt_attn_shape *s) {
    LT_ASSERT(s->NKV > 0 && s->NH % s->NKV == 0);
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HS = s->HS, grp = NH / NKV;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / grp;
            for (int i = 0; i < T; i++) {
                double m = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++)
                    if (attn_visible(s, b, i, j)) m = fmax(m, attn_score(s, q, k, b, h, kh, i, j));
                for (int j = 0; j < T; j++)
                    if (attn_visible(s, b, i, j)) sum += exp(attn_score(s, q, k, b, h, kh, i, j) - m);
                double l = m == -INFINITY ? -INFINITY : m + log(sum);
                lse[((size_t)b * NH + h) * T + i] = (float)l;
                // out_i = sum_j P_ij v_j in double, 64 dims at a time (0 with no visible key)
                float *oi = out + (((size_t)b * T + i) * NH + h) * HS;
                for (int e0 = 0; e0 < HS; e0 += 64) {
                    int ne = HS - e0 < 64 ? HS - e0 : 64;
                    double acc[64] = {0};
                    for (int j = 0; j < T; j++) {
                        if (!attn_visible(s, b, i, j)) continue;
                        double p = exp(attn_score(s, q, k, b, h, kh, i, j) - l);
                        const float *vj = v + (((size_t)b * T + j) * NKV + kh) * HS + e0;
                        for (int e = 0; e < ne; e++) acc[e] += p * vj[e];
                    }
                    for (int e = 0; e < ne; e++) oi[e0 + e] = (float)acc[e];
                }
            }
        }
}

// With P = softmax(S) = exp(S - lse), S = scale q k^T:  dP_ij = dout_i . v_j,
// dS_ij = P_ij (dP_ij - sum_l P_il dP_il),  dq_i += scale sum_j dS_ij k_j,
// dk_j += scale sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i.
// P and dP are recomputed where needed rather than stored, so the reference needs no workspace.
void lt_attn_bwd_ref(float *dq,              // (B, T, NH, HS) +=
                     float *dk,              // (B, T, NKV, HS) +=
                     float *dv,              // (B, T, NKV, HS) +=
                     const float *dout,      // (B, T, NH, HS)
                     const float *lse,       // (B, NH, T)
                     const float *q,         // (B, T, NH, HS)
                     const float *k,         // (B, T, NKV, HS)
                     const float *v,         // (B, T, NKV, HS)
                     const lt_attn_shape *s) {
    LT_ASSERT(s->NKV > 0 && s->NH % s->NKV == 0);
    int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HS = s->HS, grp = NH / NKV;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / grp;
            for (int i = 0; i < T; i++) {
                double l = lse[((size_t)b * NH + h) * T + i];
                if (l == -INFINITY) continue; // no visible key: P = 0, no gradient
                const float *doi = dout + (((size_t)b * T + i) * NH + h) * HS;
                const float *qi = q + (((size_t)b * T + i) * NH + h) * HS;
                float *dqi = dq + (((size_t)b * T + i) * NH + h) * HS;
                double rowdot = 0;
                for (int j = 0; j < T; j++) {
                    if (!attn_visible(s, b, i, j)) continue;
                    const float *vj = v + (((size_t)b * T + j) * NKV + kh) * HS;
                    double dp = 0;
                    for (int e = 0; e < HS; e++) dp += (double)doi[e] * vj[e];
                    rowdot += exp(attn_score(s, q, k, b, h, kh, i, j) - l) * dp;
                }
                for (int j = 0; j < T; j++) {
                    if (!attn_visible(s, b, i, j)) continue; // invisible keys: no gradient
                    size_t kvo = (((size_t)b * T + j) * NKV + kh) * HS;
                    double p = exp(attn_score(s, q, k, b, h, kh, i, j) - l), dp = 0;
                    for (int e = 0; e < HS; e++) dp += (double)doi[e] * v[kvo + e];
                    double ds = p * (dp - rowdot) * scale;
                    for (int e = 0; e < HS; e++) {
                        dqi[e] += (float)(ds * k[kvo + e]);
                        dk[kvo + e] += (float)(ds * qi[e]);
                        dv[kvo + e] += (float)(p * doi[e]);
                    }
                }
            }
        }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: h = silu(g) u, silu(g) = g sigmoid(g);  silu'(g) = sig (1 + g (1 - sig)).

void lt_swiglu_fwd_ref(float *h,        // (n)
                       const float *g,  // (n)
                       const float *u,  // (n)
                       int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float silu = (float)((double)g[i] / (1.0 + exp(-(double)g[i])));
        h[i] = silu * u[i];
    }
}

void lt_swiglu_bwd_ref(float *dg,        // (n) +=
                       float *du,        // (n) +=
                       const float *dh,  // (n)
                       const float *g,   // (n)
                       const float *u,   // (n)
                       int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double sig = 1.0 / (1.0 + exp(-(double)g[i]));
        dg[i] += (float)((double)dh[i] * u[i] * sig * (1.0 + g[i] * (1.0 - sig)));
        du[i] += (float)((double)dh[i] * g[i] * sig);
    }
}

// ---------------------------------------------------------------------------------------------
// cross entropy: loss_n = logsumexp(z_n) - z_n[t_n];  dz = scale (softmax(z) - onehot(t)).

double lt_ce_fwd_bwd_ref(float *dlogits,          // (N, V) or NULL; may alias logits
                         const float *logits,     // (N, V)
                         const int32_t *targets,  // (N), < 0: ignored row
                         int64_t N, int V, float scale) {
    double total = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *z = logits + n * V;
        float *dz = dlogits ? dlogits + n * V : NULL;
        int32_t t = targets[n];
        if (t < 0) {
            if (dz) memset(dz, 0, (size_t)V * sizeof *dz);
            continue;
        }
        LT_ASSERT(t < V);
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) m = z[j] > m ? z[j] : m;
        for (int j = 0; j < V; j++) sum += exp(z[j] - m);
        double lse = m + log(sum), zt = z[t];
        total += lse - zt;
        if (dz) // every z[j] is read before dz[j] is written, so dz may alias z
            for (int j = 0; j < V; j++)
                dz[j] = (float)(scale * (exp(z[j] - lse) - (j == t ? 1.0 : 0.0)));
    }
    return total;
}
