/*
 * fuzz_safetensors.c - fuzz target for the safetensors reader (lt_safetensors_open_mem). The
 * input is copied into a buffer of exactly its size so that ASan catches any read past the end;
 * every accepted tensor is read whole, and lookups are cross-checked.
 */
#include "core/core.h"
#include "io/io.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/safetensors";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    lt_safetensors *st = NULL;
    lt_err err;
    if (lt_safetensors_open_mem(buf, size, "fuzz.safetensors", &st, &err) == LT_OK) {
        unsigned sum = 0;
        for (int i = 0; i < lt_safetensors_count(st); i++) {
            const lt_st_tensor *t = lt_safetensors_at(st, i);
            LT_ASSERT(t && lt_safetensors_find(st, t->name) == t);
            LT_ASSERT((const uint8_t *)t->data >= buf &&
                      (const uint8_t *)t->data + t->nbytes <= buf + size);
            for (size_t k = 0; k < t->nbytes; k++) sum += ((const uint8_t *)t->data)[k];
        }
        for (int i = 0; i < lt_safetensors_meta_count(st); i++) {
            const char *v = NULL, *k = lt_safetensors_meta_at(st, i, &v);
            LT_ASSERT(k && v && lt_safetensors_meta(st, k));
        }
        lt_safetensors_close(st);
        (void)sum;
    }
    free(buf);
    return 0;
}
