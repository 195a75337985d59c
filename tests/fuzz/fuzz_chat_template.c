/*
 * fuzz_chat_template.c - fuzz target for the chat template parser and renderer. The input is
 * the template text (in a buffer of exactly its size, not NUL-terminated, so reads past the end
 * show under ASan); when it parses, it is rendered for a fixed conversation (system, user,
 * assistant, user with Japanese, emoji and whitespace, one None content) with and without the
 * generation prompt. Beyond "no crash, no leak, no hang": a successful render must be
 * NUL-terminated valid UTF-8 of the length it reports, and every failure must carry a status
 * and a message. Seeds: tests/fuzz/corpus/chat_template (written by tools/make_chat_fixtures.py).
 */
#include "core/core.h"
#include "tokenizer/chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/chat_template";

static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (!len || n - i < len) return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    static const lt_chat_msg msgs[] = {
        {"system", "You are helpful."},
        {"user", "  こんにちは、世界！ 😶‍🌫️\n"},
        {"assistant", "\u3000はい。{{ not a tag }} <s>"},
        {"user", NULL},
        {"user", "last"},
    };
    static const char *const keys[] = {"date_string", "tools_in_user_message"};
    static const char *const vals[] = {"26 Jul 2024", NULL};
    lt_chat_template *t = NULL;
    lt_err err = {0};
    if (lt_chat_template_parse(buf, size, &t, &err) == LT_OK) {
        for (int agp = 0; agp < 2; agp++) {
            lt_chat_vars v = {.bos_token = "<s>",
                              .eos_token = "</s>",
                              .add_generation_prompt = agp != 0,
                              .extra_keys = keys,
                              .extra_vals = vals,
                              .n_extra = 2};
            char *out = NULL;
            size_t n = 0;
            lt_status st = lt_chat_template_render(t, msgs, agp ? 5 : 3, &v, &out, &n, &err);
            if (st == LT_OK) {
                if (!out || out[n] != 0 || strlen(out) > n ||
                    !valid_utf8((const unsigned char *)out, n))
                    abort();
                lt_free(out);
            } else if (err.code != st || !err.msg[0]) {
                abort();
            }
        }
        lt_chat_template_free(t);
    } else if (!err.msg[0]) {
        abort();
    }
    free(buf);
    return 0;
}
