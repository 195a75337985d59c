/*
 * test_quant.h - ggml's reference quantisers (quantize_row_q8_0 / q4_0 / q4_1 in ggml-quants.c),
 * written independently of the library's, for the tests that build weights in those dtypes.
 */
#ifndef LT_TEST_QUANT_H
#define LT_TEST_QUANT_H

#include "tensor/tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline void quantize_q8_0(uint8_t *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, dst += 34, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127, id = d ? 1 / d : 0;
        uint16_t dh = lt_f32_to_f16(d);
        memcpy(dst, &dh, 2);
        for (int j = 0; j < 32; j++) dst[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}
static inline void quantize_q4_0(uint8_t *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, dst += 18, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        float d = max / -8, id = d ? 1 / d : 0;
        uint16_t dh = lt_f32_to_f16(d);
        memcpy(dst, &dh, 2);
        for (int j = 0; j < 16; j++) {
            int a = (int)(x[j] * id + 8.5f), c = (int)(x[j + 16] * id + 8.5f);
            a = a > 15 ? 15 : a;
            c = c > 15 ? 15 : c;
            dst[2 + j] = (uint8_t)(a | (c << 4));
        }
    }
}
static inline void quantize_q4_1(uint8_t *dst, const float *x, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, dst += 20, x += 32) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) mn = x[j] < mn ? x[j] : mn, mx = x[j] > mx ? x[j] : mx;
        float d = (mx - mn) / 15, id = d ? 1 / d : 0;
        uint16_t dh = lt_f32_to_f16(d), mh = lt_f32_to_f16(mn);
        memcpy(dst, &dh, 2);
        memcpy(dst + 2, &mh, 2);
        for (int j = 0; j < 16; j++) {
            int a = (int)((x[j] - mn) * id + 0.5f), c = (int)((x[j + 16] - mn) * id + 0.5f);
            a = a > 15 ? 15 : a;
            c = c > 15 ? 15 : c;
            dst[4 + j] = (uint8_t)(a | (c << 4));
        }
    }
}

#endif
