/*
 * ops_gpt.c - the ops GPT-2 and GPT-NeoX add to the llama family: LayerNorm (frozen affine) and
 * GELU (tanh approximation and exact erf), forward and backward. Plain loops over rows with
 * OpenMP on the outer loop; each is its own reference (tests compare against finite differences).
 * Formulas as torch.nn.functional.layer_norm / gelu(approximate="tanh"|"none").
 */
#include "ops/ops.h"

#include <math.h>

void lt_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, int64_t N, int C, float eps) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        double s = 0, ss = 0;
        for (int i = 0; i < C; i++) s += xr[i];
        double mu = s / C;
        for (int i = 0; i < C; i++) ss += ((double)xr[i] - mu) * ((double)xr[i] - mu);
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        float *o = out + n * C;
        for (int i = 0; i < C; i++) o[i] = ((xr[i] - (float)mu) * r) * w[i] + (b ? b[i] : 0.0f);
        mean[n] = (float)mu;
        rstd[n] = r;
    }
}

void lt_layernorm_bwd(float *dx, const float *dout, const float *x, const float *w,
                      const float *mean, const float *rstd, int64_t N, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *d = dout + n * C;
        float mu = mean[n], r = rstd[n];
        // dxhat = dout * w; dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        double m1 = 0, m2 = 0;
        for (int i = 0; i < C; i++) {
            double dxh = (double)d[i] * w[i], xh = (double)(xr[i] - mu) * r;
            m1 += dxh;
            m2 += dxh * xh;
        }
        m1 /= C, m2 /= C;
        float *o = dx + n * C;
        for (int i = 0; i < C; i++) {
            double dxh = (double)d[i] * w[i], xh = (double)(xr[i] - mu) * r;
            o[i] += (float)(r * (dxh - m1 - xh * m2));
        }
    }
}

#define GELU_K 0.7978845608028654f // sqrt(2/pi)

void lt_gelu_fwd(float *h, const float *u, int64_t n, bool approx) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; i++) {
        float x = u[i];
        h[i] = approx ? 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)))
                      : 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

void lt_gelu_bwd(float *du, const float *dh, const float *u, int64_t n, bool approx) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; i++) {
        float x = u[i], g;
        if (approx) {
            float inner = GELU_K * (x + 0.044715f * x * x * x), t = tanhf(inner);
            g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        } else {
            g = 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
                x * 0.39894228040143268f * expf(-0.5f * x * x);
        }
        du[i] += dh[i] * g;
    }
}
