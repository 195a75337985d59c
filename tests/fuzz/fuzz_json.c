/*
 * fuzz_json.c - fuzz target for lt_json_parse (cJSON underneath) and the typed getters. The
 * input is not NUL-terminated and sits in a buffer of exactly its size, so reads past the length
 * show under ASan.
 */
#include "core/core.h"
#include "io/io.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/json";

static void walk(const cJSON *it, int depth) {
    for (const cJSON *c = it ? it->child : NULL; c; c = c->next) {
        if (c->string) {
            (void)lt_json_int(it, c->string, 0);
            (void)lt_json_num(it, c->string, 0);
            (void)lt_json_bool(it, c->string, false);
            (void)lt_json_str(it, c->string, NULL);
            int64_t v;
            lt_err e;
            (void)lt_json_int_req(it, c->string, "fuzz", &v, &e);
        }
        int64_t v;
        (void)lt_json_as_int(c, &v);
        (void)lt_json_type_name(c);
        if (depth < 64) walk(c, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    cJSON *j = NULL;
    lt_err err;
    if (lt_json_parse(buf, size, "fuzz.json", &j, &err) == LT_OK) {
        walk(j, 0);
        cJSON_Delete(j);
    }
    free(buf);
    return 0;
}
