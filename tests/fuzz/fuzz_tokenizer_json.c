/*
 * fuzz_tokenizer_json.c - tokenizer.json from untrusted bytes: load it, and when it loads,
 * encode and decode a few strings (including the input itself when it is valid UTF-8).
 * Any status is fine; a crash, a sanitizer report or an id outside [0, n_vocab) is a bug.
 * Seeds: tests/fuzz/corpus/tokenizer_json (small hand-written tokenizers of each model type).
 */
#include "core/core.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/tokenizer_json";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const lt_tokenizer *t, const char *s, size_t n, unsigned flags) {
    lt_ids ids = {0};
    lt_err err = {0};
    if (lt_tokenizer_encode(t, s, n, flags, &ids, &err) == LT_OK) {
        int32_t nv = lt_tokenizer_n_vocab(t);
        for (size_t i = 0; i < ids.n; i++)
            LT_ASSERT(ids.ids[i] >= 0 && ids.ids[i] < nv);
        char *out = NULL;
        size_t on = 0;
        if (lt_tokenizer_decode(t, ids.ids, ids.n, 0, &out, &on, &err) == LT_OK) lt_free(out);
        for (size_t i = 0; i < ids.n; i++) {
            size_t bl;
            (void)lt_tokenizer_token_bytes(t, ids.ids[i], &bl);
            (void)lt_tokenizer_id_to_token(t, ids.ids[i]);
        }
    }
    lt_ids_deinit(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lt_tokenizer *t = NULL;
    lt_err err = {0};
    if (lt_tokenizer_load_hf_mem((const char *)data, size, NULL, 0, "fuzz.json", &t, &err) != LT_OK)
        return 0;
    static const char *texts[] = {
        "", " ", "Hello world", "  leading\tand\n\ntrailing  ", "<s>hi</s><|endoftext|>",
        "日本語のテキスト ｶﾀｶﾅ ①", "🚀😶‍🌫️ x", "don't 123 4567 a-b_c", "\xC3\xA9\x65\xCC\x81",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        roundtrip(t, texts[i], strlen(texts[i]), 0);
        roundtrip(t, texts[i], strlen(texts[i]), LT_TOK_ADD_SPECIAL | LT_TOK_SPLIT_SPECIAL);
    }
    roundtrip(t, (const char *)data, size < 4096 ? size : 4096, LT_TOK_ADD_SPECIAL);
    int32_t nv = lt_tokenizer_n_vocab(t);
    for (int32_t id = -1; id <= nv && id < 64; id++) {
        size_t bl;
        (void)lt_tokenizer_token_bytes(t, id, &bl);
    }
    lt_tokenizer_free(t);
    return 0;
}
