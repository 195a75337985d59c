/*
 * simd_avx2.h - small inline SIMD helpers for the fast CPU kernels (private to src/ops/).
 *
 * What: dtype -> f32 row conversion (bf16, f16, q8_0), dot / sum of squares / max, a vector
 * expf, and the fused "exp(x - m), sum" of softmax. Each helper has an AVX2+FMA+F16C body with a
 * scalar tail, and a plain scalar body when those ISA extensions are not enabled at compile time.
 * What not: no run-time ISA dispatch (the build picks the ISA: -mavx2 -mfma -mf16c, or NATIVE=1),
 * no -ffast-math; results may differ from the scalar references by the reassociation of sums and
 * by the vector expf's error (< 2 ulp on [-87.3, 88.7]).
 * Reference: ggml simd-mappings.h; the Cephes expf polynomial (S. Moshier), range reduction
 * x = n ln2 + r with ln2 split in two parts.
 */
#ifndef LT_OPS_SIMD_AVX2_H
#define LT_OPS_SIMD_AVX2_H

#include "tensor/tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LT_SIMD_AVX2 1
#endif

// ---------------------------------------------------------------------------------------------
// conversions

// dst(n) = bf16 src(n) as f32 (exact).
static inline void simd_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
    }
#endif
    for (; i < n; i++) dst[i] = lt_bf16_to_f32(src[i]);
}

// dst(n) = f16 src(n) as f32 (exact; F16C handles subnormals, inf and NaN like lt_f16_to_f32).
static inline void simd_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = lt_f16_to_f32(src[i]);
}

// GGUF q8_0: nb blocks of {f16 d; i8 q[32]} -> dst(32 * nb) = d * q. Same values as lt_to_f32.
static inline void simd_q8_0_to_f32(float *dst, const uint8_t *src, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 34, dst += 32) {
        uint16_t dh;
        memcpy(&dh, src, 2);
        float d = lt_f16_to_f32(dh);
        const int8_t *q = (const int8_t *)(src + 2);
#ifdef LT_SIMD_AVX2
        __m256 vd = _mm256_set1_ps(d);
        for (int j = 0; j < 32; j += 8) {
            __m256i qi = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + j)));
            _mm256_storeu_ps(dst + j, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(qi)));
        }
#else
        for (int j = 0; j < 32; j++) dst[j] = d * (float)q[j];
#endif
    }
}

// Converts elements [k0, k0 + n) of row r of W to f32 into dst(n). k0 and n must be multiples of
// the block size for block dtypes (n may end at the row's end).
static inline void simd_mat_row_to_f32(float *dst, const lt_mat *W, int64_t r, int64_t k0,
                                       int64_t n) {
    const char *row = (const char *)lt_mat_row(W, r);
    switch (W->dtype) {
    case LT_DTYPE_F32: memcpy(dst, (const float *)(const void *)row + k0, (size_t)n * 4); break;
    case LT_DTYPE_BF16: simd_bf16_to_f32(dst, (const uint16_t *)(const void *)row + k0, n); break;
    case LT_DTYPE_F16: simd_f16_to_f32(dst, (const uint16_t *)(const void *)row + k0, n); break;
    case LT_DTYPE_Q8_0:
        simd_q8_0_to_f32(dst, (const uint8_t *)row + lt_dtype_nbytes(W->dtype, k0), n / 32);
        break;
    default: lt_mat_row_to_f32(W, r, k0, n, dst); break; // q4_*, NF4/FP4 (scales in W->aux)
    }
}

// ---------------------------------------------------------------------------------------------
// reductions

#ifdef LT_SIMD_AVX2
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline double hsum256d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
#endif

// sum a(n) * b(n), f32 accumulation in 16 lanes.
static inline float simd_dot(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float s = 0;
#ifdef LT_SIMD_AVX2
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    s = hsum256(_mm256_add_ps(s0, s1));
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// sum a(n) * b(n) in double.
static inline double simd_dot_d(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    double s = 0;
#ifdef LT_SIMD_AVX2
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256d a0 = _mm256_cvtps_pd(_mm_loadu_ps(a + i));
        __m256d a1 = _mm256_cvtps_pd(_mm_loadu_ps(a + i + 4));
        __m256d b0 = _mm256_cvtps_pd(_mm_loadu_ps(b + i));
        __m256d b1 = _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4));
        s0 = _mm256_fmadd_pd(a0, b0, s0);
        s1 = _mm256_fmadd_pd(a1, b1, s1);
    }
    s = hsum256d(_mm256_add_pd(s0, s1));
#endif
    for (; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// sum x(n)^2 in double.
static inline double simd_sumsq_d(const float *x, int64_t n) { return simd_dot_d(x, x, n); }

// max of x(n), n >= 1 (-inf entries allowed).
static inline float simd_max(const float *x, int64_t n) {
    int64_t i = 0;
    float m = -INFINITY;
#ifdef LT_SIMD_AVX2
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    m = _mm_cvtss_f32(h);
#endif
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// ---------------------------------------------------------------------------------------------
// exp

#ifdef LT_SIMD_AVX2
// expf on 8 lanes: Cephes polynomial after x = n ln2 + r, |r| <= ln2/2; 2^n applied in two halves
// so that n in [-126, 128] never overflows the exponent field. Below ln(FLT_MIN) = -87.34 the
// result is flushed to 0 (avoids subnormal slow paths; irrelevant to softmax and sigmoid), above
// ln(FLT_MAX) it is +inf; NaN stays NaN.
static inline __m256 v_expf(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.72283935546875f), lo = _mm256_set1_ps(-87.33654475f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_cvtps_epi32(fx);
    __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, p1), p2);
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
#endif

// dst(n) = exp(src(n) - m); returns the sum of dst in double. dst may alias src.
static inline double simd_exp_sub_sum(float *dst, const float *src, int64_t n, float m) {
    int64_t i = 0;
    double s = 0;
#ifdef LT_SIMD_AVX2
    __m256 vm = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 e = v_expf(_mm256_sub_ps(_mm256_loadu_ps(src + i), vm));
        _mm256_storeu_ps(dst + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    s = hsum256d(_mm256_add_pd(s0, s1));
#endif
    for (; i < n; i++) {
        float e = expf(src[i] - m);
        dst[i] = e;
        s += e;
    }
    return s;
}

// x(n) *= a
static inline void simd_scale(float *x, float a, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), va));
#endif
    for (; i < n; i++) x[i] *= a;
}

// y(n) += a * x(n)
static inline void simd_axpy(float *y, float a, const float *x, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8) {
        __m256 yi = _mm256_loadu_ps(y + i);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), yi));
    }
#endif
    for (; i < n; i++) y[i] += a * x[i];
}

// y(n) += x(n)
static inline void simd_add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] += x[i];
}

// out(n) = w(n) * (x(n) * r), rounded like the scalar expression (no FMA).
static inline void simd_mul_wxr(float *out, const float *w, const float *x, float r, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    __m256 vr = _mm256_set1_ps(r);
    for (; i + 8 <= n; i += 8) {
        __m256 xr = _mm256_mul_ps(_mm256_loadu_ps(x + i), vr);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), xr));
    }
#endif
    for (; i < n; i++) out[i] = w[i] * (x[i] * r);
}

// sum (a(n) * b(n)) * c(n), the product a*b in f32, the rest in double.
static inline double simd_dot3_d(const float *a, const float *b, const float *c, int64_t n) {
    int64_t i = 0;
    double s = 0;
#ifdef LT_SIMD_AVX2
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 ab = _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 vc = _mm256_loadu_ps(c + i);
        s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(ab)),
                             _mm256_cvtps_pd(_mm256_castps256_ps128(vc)), s0);
        s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(ab, 1)),
                             _mm256_cvtps_pd(_mm256_extractf128_ps(vc, 1)), s1);
    }
    s = hsum256d(_mm256_add_pd(s0, s1));
#endif
    for (; i < n; i++) s += (double)(a[i] * b[i]) * c[i];
    return s;
}

// d(n) += (r * w(n)) * g(n) - k * x(n)   (RMSNorm's dx; no FMA, like the scalar tail)
static inline void simd_rms_dx(float *d, const float *w, const float *g, const float *x, float r,
                               float k, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    __m256 vr = _mm256_set1_ps(r), vk = _mm256_set1_ps(k);
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_mul_ps(_mm256_mul_ps(vr, _mm256_loadu_ps(w + i)), _mm256_loadu_ps(g + i));
        __m256 b = _mm256_mul_ps(vk, _mm256_loadu_ps(x + i));
        _mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_sub_ps(a, b)));
    }
#endif
    for (; i < n; i++) d[i] += r * w[i] * g[i] - k * x[i];
}

// The rotate_half rotation of n pairs (x1[i], x2[i]) by (c[i], sgn * s[i]):
// x1 = x1 c - x2 s', x2 = x2 c + x1 s'. Products and sums rounded separately (no FMA), so the
// result is bitwise that of the scalar reference.
static inline void simd_rope_pairs(float *x1, float *x2, const float *c, const float *s,
                                   float sgn, int64_t n) {
    int64_t i = 0;
#ifdef LT_SIMD_AVX2
    __m256 vsg = _mm256_set1_ps(sgn);
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(x1 + i), b = _mm256_loadu_ps(x2 + i);
        __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_mul_ps(vsg, _mm256_loadu_ps(s + i));
        _mm256_storeu_ps(x1 + i, _mm256_sub_ps(_mm256_mul_ps(a, vc), _mm256_mul_ps(b, vs)));
        _mm256_storeu_ps(x2 + i, _mm256_add_ps(_mm256_mul_ps(b, vc), _mm256_mul_ps(a, vs)));
    }
#endif
    for (; i < n; i++) {
        float a = x1[i], b = x2[i], si = sgn * s[i];
        x1[i] = a * c[i] - b * si;
        x2[i] = b * c[i] + a * si;
    }
}

#endif
