/*
 * tensor.c - dtype table and element conversions (f32 <-> bf16/f16, block dequantisation).
 * Rounding follows PyTorch: round to nearest, ties to even; NaN is kept quiet.
 */
#include "tensor/tensor.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

typedef struct {
    const char *name;
    int block;      // elements per block
    size_t bytes;   // bytes per block
    bool is_float;
} dtype_info;

static const dtype_info infos[LT_DTYPE_COUNT] = {
    [LT_DTYPE_F32] = {"F32", 1, 4, true},   [LT_DTYPE_F16] = {"F16", 1, 2, true},
    [LT_DTYPE_BF16] = {"BF16", 1, 2, true}, [LT_DTYPE_F64] = {"F64", 1, 8, true},
    [LT_DTYPE_I64] = {"I64", 1, 8, false},  [LT_DTYPE_I32] = {"I32", 1, 4, false},
    [LT_DTYPE_I16] = {"I16", 1, 2, false},  [LT_DTYPE_I8] = {"I8", 1, 1, false},
    [LT_DTYPE_U8] = {"U8", 1, 1, false},    [LT_DTYPE_BOOL] = {"BOOL", 1, 1, false},
    [LT_DTYPE_Q8_0] = {"Q8_0", 32, 34, true}, [LT_DTYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [LT_DTYPE_Q4_1] = {"Q4_1", 32, 20, true},
    // codes only (two per byte); the scales of NF4/FP4 live in lt_mat.aux (nf4.c)
    [LT_DTYPE_NF4] = {"NF4", 64, 32, true}, [LT_DTYPE_FP4] = {"FP4", 64, 32, true},
    [LT_DTYPE_Q5_0] = {"Q5_0", 32, 22, true}, [LT_DTYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [LT_DTYPE_Q2_K] = {"Q2_K", 256, 84, true}, [LT_DTYPE_Q3_K] = {"Q3_K", 256, 110, true},
    [LT_DTYPE_Q4_K] = {"Q4_K", 256, 144, true}, [LT_DTYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [LT_DTYPE_Q6_K] = {"Q6_K", 256, 210, true},
};

const char *lt_dtype_name(lt_dtype t) {
    return (unsigned)t < LT_DTYPE_COUNT ? infos[t].name : "?";
}

bool lt_dtype_from_name(const char *name, lt_dtype *out) {
    for (int i = 0; i < LT_DTYPE_COUNT; i++)
        if (infos[i].name && strcmp(infos[i].name, name) == 0) {
            *out = (lt_dtype)i;
            return true;
        }
    return false;
}

int lt_dtype_block(lt_dtype t) { return (unsigned)t < LT_DTYPE_COUNT ? infos[t].block : 0; }
bool lt_dtype_is_float(lt_dtype t) { return (unsigned)t < LT_DTYPE_COUNT && infos[t].is_float; }

size_t lt_dtype_nbytes(lt_dtype t, int64_t n) {
    if ((unsigned)t >= LT_DTYPE_COUNT || n < 0) return 0;
    const dtype_info *d = &infos[t];
    if (n % d->block) return 0;
    size_t out;
    if (!lt_mul_ok((size_t)(n / d->block), d->bytes, &out)) return 0;
    return out;
}

uint16_t lt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float lt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { // subnormal: renormalise
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          // overflow -> inf
    if (a < 0x38800000u) {                                            // subnormal or zero in f16
        if (a < 0x33000000u) return (uint16_t)sign;                   // below half the min subnormal
        uint32_t man = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23); // brings the 24-bit mantissa to the f16 subnormal scale
        uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a - 0x38000000u; // rebias exponent 127 -> 15
    uint32_t h = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

// ---------------------------------------------------------------------------------------------
// GGUF blocks (ggml-common.h): q8_0 {f16 d; i8 q[32]}, q4_0 {f16 d; u8 qs[16]} value (q-8)*d,
// q4_1 {f16 d; f16 m; u8 qs[16]} value q*d+m. Nibble j (low) is element j, high is element j+16.

static void deq_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 34, dst += 32) {
        uint16_t dh;
        memcpy(&dh, src, 2);
        float d = lt_f16_to_f32(dh);
        const int8_t *q = (const int8_t *)(src + 2);
        for (int j = 0; j < 32; j++) dst[j] = d * (float)q[j];
    }
}

static void deq_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 18, dst += 32) {
        uint16_t dh;
        memcpy(&dh, src, 2);
        float d = lt_f16_to_f32(dh);
        const uint8_t *qs = src + 2;
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)((qs[j] & 0x0f) - 8);
            dst[j + 16] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

static void deq_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 20, dst += 32) {
        uint16_t dh, mh;
        memcpy(&dh, src, 2);
        memcpy(&mh, src + 2, 2);
        float d = lt_f16_to_f32(dh), m = lt_f16_to_f32(mh);
        const uint8_t *qs = src + 4;
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)(qs[j] & 0x0f) + m;
            dst[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

static float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lt_f16_to_f32(h);
}

// q5_0 {f16 d; u8 qh[4]; u8 qs[16]}: value (q - 16) * d; q5_1 {f16 d; f16 m; qh; qs}: q * d + m.
// Bit j of qh is the fifth bit of element j, bit j + 16 that of element j + 16.
static void deq_q5(const uint8_t *src, float *dst, int64_t nb, bool has_min) {
    size_t bs = has_min ? 24 : 22, hdr = has_min ? 4 : 2;
    for (int64_t b = 0; b < nb; b++, src += bs, dst += 32) {
        float d = half_at(src), m = has_min ? half_at(src + 2) : 0.0f;
        uint32_t qh;
        memcpy(&qh, src + hdr, 4);
        const uint8_t *qs = src + hdr + 4;
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0x0f) | (int)(((qh >> j) << 4) & 0x10);
            int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            if (has_min) dst[j] = d * (float)x0 + m, dst[j + 16] = d * (float)x1 + m;
            else dst[j] = d * (float)(x0 - 16), dst[j + 16] = d * (float)(x1 - 16);
        }
    }
}

// ---- k-quants: super-blocks of 256 (ggml-quants.c dequantize_row_q*_K) ----

// q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: 16 groups of 16, 2-bit codes; scale and min
// of each group in the low and high nibble of scales[g].
static void deq_q2_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 84) {
        const uint8_t *sc = src, *q = src + 16;
        float d = half_at(src + 80), dmin = half_at(src + 82);
        int is = 0;
        for (int n = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    uint8_t s = sc[is++];
                    float dl = d * (float)(s & 0xf), ml = dmin * (float)(s >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
                }
    }
}

// q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 16 groups of 16 with 6-bit signed
// scales (packed 4 + 2 bits), 2-bit codes plus a high bit in hmask (clear: subtract 4).
static void deq_q3_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 110) {
        const uint8_t *hm = src, *q = src + 32, *ps = src + 96;
        float d = half_at(src + 108);
        int8_t sc[16];
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? ps[j] & 0xf : ps[j - 8] >> 4;
            int hi = (ps[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (int8_t)((lo | hi << 4) - 32);
        }
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < 256; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
                for (int half = 0; half < 2; half++) {
                    float dl = d * (float)sc[is++];
                    for (int l = 0; l < 16; l++) {
                        int k = l + 16 * half;
                        *y++ = dl * (float)(((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                }
    }
}

// The 6-bit scale and min of group j (0..7) packed in 12 bytes (get_scale_min_k4).
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) *sc = q[j] & 63, *mn = q[j + 4] & 63;
    else *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
}

// q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} and q5_K (+ u8 qh[32] before qs): 8 groups
// of 32, value d * sc * q - dmin * mn; q5_K's fifth bits: bit 2i / 2i+1 of qh[l] for the i-th
// pair of groups.
static void deq_q45_k(const uint8_t *src, float *y, int64_t nb, bool five) {
    size_t bs = five ? 176 : 144;
    for (int64_t b = 0; b < nb; b++, src += bs) {
        float d = half_at(src), dmin = half_at(src + 2);
        const uint8_t *scales = src + 4, *qh = src + 16, *ql = src + (five ? 48 : 16);
        for (int g = 0; g < 4; g++, ql += 32) {
            int sc, mn;
            scale_min_k4(2 * g, scales, &sc, &mn);
            float d1 = d * (float)sc, m1 = dmin * (float)mn;
            scale_min_k4(2 * g + 1, scales, &sc, &mn);
            float d2 = d * (float)sc, m2 = dmin * (float)mn;
            uint8_t u1 = (uint8_t)(1u << (2 * g)), u2 = (uint8_t)(2u << (2 * g));
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0xf) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

// q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 16 groups of 16, 6-bit codes - 32.
static void deq_q6_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += 210) {
        const uint8_t *ql = src, *qh = src + 128;
        const int8_t *sc = (const int8_t *)(src + 192);
        float d = half_at(src + 208);
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
    }
}

void lt_to_f32(lt_dtype t, const void *src, float *dst, int64_t n) {
    LT_ASSERT((unsigned)t < LT_DTYPE_COUNT && n % infos[t].block == 0);
    switch (t) {
    case LT_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LT_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lt_bf16_to_f32(s[i]);
        break;
    }
    case LT_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lt_f16_to_f32(s[i]);
        break;
    }
    case LT_DTYPE_F64: {
        const double *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case LT_DTYPE_Q8_0: deq_q8_0(src, dst, n / 32); break;
    case LT_DTYPE_Q4_0: deq_q4_0(src, dst, n / 32); break;
    case LT_DTYPE_Q4_1: deq_q4_1(src, dst, n / 32); break;
    case LT_DTYPE_Q5_0: deq_q5(src, dst, n / 32, false); break;
    case LT_DTYPE_Q5_1: deq_q5(src, dst, n / 32, true); break;
    case LT_DTYPE_Q2_K: deq_q2_k(src, dst, n / 256); break;
    case LT_DTYPE_Q3_K: deq_q3_k(src, dst, n / 256); break;
    case LT_DTYPE_Q4_K: deq_q45_k(src, dst, n / 256, false); break;
    case LT_DTYPE_Q5_K: deq_q45_k(src, dst, n / 256, true); break;
    case LT_DTYPE_Q6_K: deq_q6_k(src, dst, n / 256); break;
    case LT_DTYPE_NF4:
    case LT_DTYPE_FP4: LT_ASSERT(!"lt_to_f32: NF4/FP4 codes need their scales: use lt_mat_row_to_f32");
    default: LT_ASSERT(!"lt_to_f32: not a float dtype");
    }
}

void lt_from_f32(lt_dtype t, const float *src, void *dst, int64_t n) {
    switch (t) {
    case LT_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LT_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lt_f32_to_bf16(src[i]);
        break;
    }
    case LT_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = lt_f32_to_f16(src[i]);
        break;
    }
    default: LT_ASSERT(!"lt_from_f32: unsupported target dtype");
    }
}

bool lt_mat_init(lt_mat *m, lt_dtype t, int64_t rows, int64_t cols, const void *data) {
    size_t rb = lt_dtype_nbytes(t, cols);
    if (rows < 0 || cols <= 0 || rb == 0 || t == LT_DTYPE_NF4 || t == LT_DTYPE_FP4) return false;
    m->dtype = t;
    m->rows = rows;
    m->cols = cols;
    m->row_bytes = rb;
    m->data = data;
    m->aux = NULL;
    return true;
}
