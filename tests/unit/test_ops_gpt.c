/*
 * test_ops_gpt.c - finite-difference checks of the LayerNorm and GELU backward passes (the ops
 * GPT-2 / GPT-NeoX add). LayerNorm: loss L = sum(out * R) for a fixed random R, differentiated
 * by central differences (eps 1e-4) of a double-precision forward, so the only errors are the
 * f32 backward's rounding (~1e-6) and the O(eps^2) truncation (~1e-8): 2e-4 absolute + 2e-3
 * relative has wide margin yet catches a missing term (which is O(0.1)). GELU: per element, the
 * same with a double forward; 1e-5 absolute + 1e-4 relative.
 */
#include "core/core.h"
#include "ops/ops.h"
#include "test.h"

static void fill(float *x, int n, lt_rng *r, float scale) {
    for (int i = 0; i < n; i++) x[i] = scale * lt_rng_normal(r);
}

// The loss through LayerNorm computed in double from the formula, so the finite differences
// carry no f32 rounding noise.
static double ln_loss(const double *x, const float *w, const float *b, const float *R, int N, int C) {
    double L = 0;
    for (int n = 0; n < N; n++) {
        double mu = 0, var = 0;
        for (int i = 0; i < C; i++) mu += x[n * C + i];
        mu /= C;
        for (int i = 0; i < C; i++) var += (x[n * C + i] - mu) * (x[n * C + i] - mu);
        var /= C;
        for (int i = 0; i < C; i++) L += ((x[n * C + i] - mu) / sqrt(var + 1e-5) * w[i] + b[i]) * R[n * C + i];
    }
    return L;
}

static void test_layernorm(void) {
    enum { N = 5, C = 48 };
    lt_rng r;
    lt_rng_seed(&r, 1);
    float x[N * C], w[C], b[C], R[N * C], out[N * C], mean[N], rstd[N], dx[N * C] = {0}, fd[N * C];
    fill(x, N * C, &r, 1.5f), fill(w, C, &r, 1.0f), fill(b, C, &r, 0.5f), fill(R, N * C, &r, 1.0f);
    for (int i = 0; i < N * C; i++) x[i] += 0.3f; // nonzero mean
    lt_layernorm_fwd(out, mean, rstd, x, w, b, N, C, 1e-5f);
    // forward against the formula in double
    double worst = 0;
    for (int n = 0; n < N; n++) {
        double mu = 0, var = 0;
        for (int i = 0; i < C; i++) mu += x[n * C + i];
        mu /= C;
        for (int i = 0; i < C; i++) var += (x[n * C + i] - mu) * (x[n * C + i] - mu);
        var /= C;
        for (int i = 0; i < C; i++) {
            double y = (x[n * C + i] - mu) / sqrt(var + 1e-5) * w[i] + b[i];
            worst = fmax(worst, fabs(y - out[n * C + i]));
        }
    }
    CHECK_MSG(worst < 1e-5, "layernorm forward off by %g", worst);
    lt_layernorm_bwd(dx, R, x, w, mean, rstd, N, C); // dL/dout = R
    double xd[N * C];
    for (int i = 0; i < N * C; i++) xd[i] = x[i];
    for (int i = 0; i < N * C; i++) {
        double s = xd[i];
        xd[i] = s + 1e-4;
        double lp = ln_loss(xd, w, b, R, N, C);
        xd[i] = s - 1e-4;
        double lm = ln_loss(xd, w, b, R, N, C);
        xd[i] = s;
        fd[i] = (float)((lp - lm) / 2e-4);
    }
    CHECK_CLOSE("layernorm dx vs finite differences", dx, fd, N * C, 2e-4, 2e-3);
}

static double gelu_d(double x, bool approx) {
    return approx ? 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)))
                  : 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

static void test_gelu(bool approx) {
    enum { n = 200 };
    lt_rng r;
    lt_rng_seed(&r, 2);
    float u[n], h[n], du[n] = {0}, fd[n], dh[n];
    fill(u, n, &r, 2.0f), fill(dh, n, &r, 1.0f);
    lt_gelu_fwd(h, u, n, approx);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(gelu_d(u[i], approx) - h[i]));
    CHECK_MSG(worst < 1e-5, "gelu forward off by %g", worst);
    lt_gelu_bwd(du, dh, u, n, approx);
    for (int i = 0; i < n; i++) fd[i] = (float)((gelu_d(u[i] + 1e-4, approx) - gelu_d(u[i] - 1e-4, approx)) / 2e-4) * dh[i];
    CHECK_CLOSE(approx ? "gelu (tanh) du vs finite differences" : "gelu (erf) du vs finite differences",
                du, fd, n, 1e-5, 1e-4);
}

int main(void) {
    test_layernorm();
    test_gelu(true);
    test_gelu(false);
    TEST_END();
}
