/*
 * test_decode.c - incremental decoding with the key/value cache equals the full forward pass:
 *  - each tiny golden family (with its PEFT adapter): prefill of 10 positions (right padding in
 *    row 1 like the training batch) then one position at a time; logits at every position equal
 *    lt_model_logits' (the same math in another order: 1e-4 absolute, the golden tolerance);
 *  - a left-padded row (batched prompts of different lengths) gives the same last logits as the
 *    unpadded prompt alone;
 *  - stories260K greedy from BOS reproduces the 200-step story of karpathy/llama2.c test_all.py
 *    byte for byte (skipped without ../shared/data).
 */
#include "core/core.h"
#include "lora/lora.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

static void family(const char *fam) {
    char path[256];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    snprintf(path, sizeof path, "tests/fixtures/%s/model", fam);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    if (!m) return;
    snprintf(path, sizeof path, "tests/fixtures/%s/adapter", fam);
    CHECK_OK(lt_adapter_load_peft(m, path, &a, &err), &err);
    enum { B = 2, T = 16, P = 10 };
    int V = m->cfg.n_vocab;
    int32_t ids[B * T], km[B * T];
    lt_rng r;
    lt_rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++) ids[i] = 3 + (int32_t)lt_rng_below(&r, (uint64_t)V - 3);
    for (int i = 0; i < B * T; i++) km[i] = !(i / T == 1 && i % T >= 13);
    float *full = malloc(sizeof(float) * B * T * (size_t)V), *inc = malloc(sizeof(float) * B * T * (size_t)V);
    lt_ctx *c = NULL;
    lt_ctx_opts co = {.B = B, .T = T};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    lt_batch b = {.ids = ids, .kmask = km};
    CHECK_OK(lt_model_logits(m, c, &b, full, &err), &err);
    lt_kv *kv = NULL;
    CHECK_OK(lt_kv_new(m, B, T, &kv, &err), &err);
    if (!kv || !c) goto out;
    // prefill P positions (all logits), then one at a time
    int32_t pid[B * P], pkm[B * P];
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < P; t++) pid[bb * P + t] = ids[bb * T + t], pkm[bb * P + t] = km[bb * T + t];
    float *tmp = malloc(sizeof(float) * B * P * (size_t)V);
    CHECK_OK(lt_model_decode(m, kv, pid, P, pkm, NULL, tmp, true, &err), &err);
    for (int bb = 0; bb < B; bb++)
        memcpy(inc + ((size_t)bb * T) * (size_t)V, tmp + (size_t)bb * P * (size_t)V, sizeof(float) * P * (size_t)V);
    for (int t = P; t < T; t++) {
        int32_t one[B] = {ids[t], ids[T + t]}, okm[B] = {km[t], km[T + t]};
        float lg[B * 512];
        CHECK(V <= 512);
        CHECK_OK(lt_model_decode(m, kv, one, 1, okm, NULL, lg, false, &err), &err);
        for (int bb = 0; bb < B; bb++)
            memcpy(inc + ((size_t)bb * T + (size_t)t) * (size_t)V, lg + (size_t)bb * (size_t)V, sizeof(float) * (size_t)V);
    }
    CHECK(lt_kv_n_past(kv) == T);
    CHECK(lt_model_decode(m, kv, ids, 1, NULL, NULL, tmp, false, &err) == LT_ERR_ARG); // full
    char what[64];
    snprintf(what, sizeof what, "%s: cached decode vs full forward", fam);
    CHECK_CLOSE(what, inc, full, B * T * V, 1e-4, 1e-4);
    // left padding: row 1 = 4 pads + the first 8 tokens of row 0; positions count real tokens only
    lt_kv_reset(kv);
    int32_t lid[B * 12], lkm[B * 12], lpos[B * 12];
    for (int t = 0; t < 12; t++) {
        lid[t] = ids[t], lkm[t] = 1, lpos[t] = t;
        lid[12 + t] = t < 4 ? 0 : ids[t - 4], lkm[12 + t] = t >= 4, lpos[12 + t] = t < 4 ? 0 : t - 4;
    }
    float lg2[B * 512], ref8[512];
    CHECK_OK(lt_model_decode(m, kv, lid, 12, lkm, lpos, lg2, false, &err), &err);
    memcpy(ref8, full + 7 * (size_t)V, sizeof(float) * (size_t)V); // row 0 at position 7
    snprintf(what, sizeof what, "%s: left-padded row", fam);
    CHECK_CLOSE(what, lg2 + V, ref8, V, 1e-4, 1e-4);
    free(tmp);
out:
    free(full), free(inc);
    lt_kv_free(kv);
    lt_ctx_free(c);
    lt_adapter_free(a);
    lt_model_free(m);
}

static const char *expected_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom "
    "said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want "
    "to play with your ball, but I can't find it.\"\nLily was sad and didn't know what to do. She said, "
    "\"I'm sorry, Lily. I didn't know what to do.\"\nLily didn't want to help her mom, so she";

static void stories_greedy(void) {
    const char *sd = shared_data_dir();
    if (!sd) {
        fprintf(stderr, "SKIP stories260K greedy story: ../shared/data not found\n");
        return;
    }
    char path[512];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_kv *kv = NULL;
    snprintf(path, sizeof path, "%s/models/stories260K.bin", sd);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    snprintf(path, sizeof path, "%s/models/tok512.bin", sd);
    CHECK_OK(lt_tokenizer_load_llama2c(path, 512, &tok, &err), &err);
    if (!m || !tok) goto out;
    CHECK_OK(lt_kv_new(m, 1, 256, &kv, &err), &err);
    if (!kv) goto out;
    // run.c: 200 steps from BOS; each step prints the argmax token; stops at BOS
    int32_t seq[202];
    int n = 0;
    seq[n++] = 1;
    float logits[512];
    for (int pos = 0; pos < 200; pos++) {
        CHECK_OK(lt_model_decode(m, kv, &seq[n - 1], 1, NULL, NULL, logits, false, &err), &err);
        int best = 0;
        for (int v = 1; v < 512; v++) if (logits[v] > logits[best]) best = v;
        if (best == 1) break;
        seq[n++] = best;
    }
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(lt_tokenizer_decode(tok, seq, (size_t)n, LT_TOK_SKIP_SPECIAL, &text, &len, &err), &err);
    CHECK_MSG(text && strcmp(text, expected_story) == 0, "greedy story differs:\n%s", text ? text : "");
    lt_free(text);
out:
    lt_kv_free(kv);
    lt_tokenizer_free(tok);
    lt_model_free(m);
}

int main(void) {
    family("llama");
    family("mistral");
    family("qwen2");
    family("gpt2");
    family("gpt_neox");
    stories_greedy();
    TEST_END();
}
