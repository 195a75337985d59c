/*
 * fuzz_gguf.c - fuzz target for the GGUF reader (lt_gguf_open_mem). The input sits in a buffer of
 * exactly its size; every accessor is exercised on accepted files and every tensor is read whole.
 */
#include "core/core.h"
#include "io/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/gguf";

static void walk_value(const lt_gguf_value *v, int depth) {
    LT_ASSERT(depth <= LT_GGUF_MAX_DEPTH + 1);
    uint64_t n = lt_gguf_arr_len(v);
    if (lt_gguf_arr_type(v) == LT_GGUF_TYPE_ARRAY)
        for (uint64_t i = 0; i < n; i++) walk_value(lt_gguf_arr_at(v, i), depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    lt_gguf *g = NULL;
    lt_err e;
    if (lt_gguf_open_mem(buf, size, "fuzz.gguf", &g, &e) == LT_OK) {
        for (int64_t i = 0; i < lt_gguf_kv_count(g); i++) {
            const char *k = lt_gguf_kv_key(g, i);
            LT_ASSERT(k && lt_gguf_find_key(g, k) == i);
            uint32_t u;
            int32_t s;
            float f;
            bool b;
            int64_t iv;
            double dv;
            const char *str;
            size_t len;
            (void)lt_gguf_get_u32(g, k, &u, &e);
            (void)lt_gguf_get_i32(g, k, &s, &e);
            (void)lt_gguf_get_f32(g, k, &f, &e);
            (void)lt_gguf_get_bool(g, k, &b, &e);
            (void)lt_gguf_get_int(g, k, &iv, &e);
            (void)lt_gguf_get_float(g, k, &dv, &e);
            if (lt_gguf_get_str(g, k, &str, &len, &e) == LT_OK) LT_ASSERT(str[len] == 0);
            lt_gguf_type et;
            uint64_t n;
            if (lt_gguf_get_arr_info(g, k, &et, &n, &e) == LT_OK) {
                if (et == LT_GGUF_TYPE_STRING) {
                    for (uint64_t j = 0; j < n; j++) {
                        LT_ASSERT(lt_gguf_get_arr_str(g, k, j, &str, &len, &e) == LT_OK);
                        LT_ASSERT(str[len] == 0);
                    }
                } else if (et != LT_GGUF_TYPE_ARRAY && n <= 4096) {
                    uint64_t tmp[4096];
                    LT_ASSERT(lt_gguf_get_arr_data(g, k, et, tmp, n, &e) == LT_OK);
                }
                walk_value(lt_gguf_get_value(g, k), 0);
            }
        }
        unsigned sum = 0;
        for (int64_t i = 0; i < lt_gguf_tensor_count(g); i++) {
            const lt_gguf_tensor *t = lt_gguf_tensor_at(g, i), *t2;
            LT_ASSERT(t && lt_gguf_find_tensor(g, t->name) == t);
            LT_ASSERT((const uint8_t *)t->data >= buf &&
                      (const uint8_t *)t->data + t->nbytes <= buf + size);
            for (size_t k = 0; k < t->nbytes; k++) sum += ((const uint8_t *)t->data)[k];
            if (lt_gguf_get_tensor(g, t->name, &t2, &e) == LT_OK)
                LT_ASSERT(t2 == t && t->dtype != LT_DTYPE_COUNT);
        }
        (void)sum;
        lt_gguf_close(g);
    }
    free(buf);
    return 0;
}
