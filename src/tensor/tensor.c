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

void lt_to_f32(lt_dtype t, const void *src, float *dst, int64_t n) {
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
