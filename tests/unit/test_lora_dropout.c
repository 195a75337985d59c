/*
 * test_lora_dropout.c - LoRA dropout (which cannot be compared with torch, whose RNG differs):
 *  - the gradient with dropout p = 0.3 matches central finite differences of the training loss
 *    computed with the same masks (they come from (seed, step, module, element)), for the 40
 *    largest-gradient parameters (~0.1): f32 loss noise (~5e-7 on 5.8) / (2 * 1e-3) gives
 *    ~3e-4, so 5e-4 absolute + 0.5% relative passes noise but not a missing mask or a wrong
 *    1/(1-p) scale (which change those gradients by 30% or more);
 *  - recomputation (gradient checkpointing) regenerates the same masks: identical gradients;
 *  - a different step gives different masks; evaluation uses no dropout.
 */
#include "core/core.h"
#include "lora/lora.h"
#include "test.h"

int main(void) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (!m) TEST_END();
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.3f, .targets = 0x7f, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 3, &a, &err), &err);
    if (!a) TEST_END();
    lt_rng r;
    lt_rng_seed(&r, 9);
    for (int i = 0; i < a->n_mod; i++) // nonzero B so that A's gradients flow
        for (int j = 0; j < a->mods[i].out * a->mods[i].r; j++) a->mods[i].B[j] = 0.1f * lt_rng_normal(&r);
    enum { B = 2, T = 12 };
    int32_t ids[B * T], lab[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = lab[i] = 3 + (int32_t)lt_rng_below(&r, 250);
    lt_batch b = {.ids = ids, .labels = lab};
    int64_t nt = lt_batch_n_targets(&b, B, T);
    lt_ctx *c = NULL, *ck = NULL;
    lt_ctx_opts co = {.B = B, .T = T, .train = true}, co2 = {.B = B, .T = T, .train = true, .checkpoint = true};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    CHECK_OK(lt_ctx_new(m, &co2, &ck, &err), &err);
    if (!c || !ck) goto out;
    double s0, s1;
    lt_adapter_zero_grad(a);
    CHECK_OK(lt_model_train_step(m, c, &b, 1.0f / (float)nt, 77, 5, &s0, &err), &err);
    float *g = malloc(sizeof(float) * (size_t)a->n_params);
    memcpy(g, a->grads, sizeof(float) * (size_t)a->n_params);
    lt_adapter_zero_grad(a);
    CHECK_OK(lt_model_train_step(m, ck, &b, 1.0f / (float)nt, 77, 5, &s1, &err), &err);
    CHECK(s0 == s1 && memcmp(g, a->grads, sizeof(float) * (size_t)a->n_params) == 0);
    // finite differences on the 40 largest gradients
    int idx[40];
    for (int k = 0; k < 40; k++) {
        int best = -1;
        for (int64_t i = 0; i < a->n_params; i++) {
            bool used = false;
            for (int q = 0; q < k; q++) used |= idx[q] == i;
            if (!used && (best < 0 || fabsf(g[i]) > fabsf(g[best]))) best = (int)i;
        }
        idx[k] = best;
    }
    float got[40], fd[40];
    for (int k = 0; k < 40; k++) {
        float save = a->params[idx[k]];
        double lp, lm;
        a->params[idx[k]] = save + 1e-3f;
        lt_model_train_step(m, c, &b, 0.0f, 77, 5, &lp, &err);
        a->params[idx[k]] = save - 1e-3f;
        lt_model_train_step(m, c, &b, 0.0f, 77, 5, &lm, &err);
        a->params[idx[k]] = save;
        fd[k] = (float)((lp - lm) / (double)nt / 2e-3);
        got[k] = g[idx[k]];
    }
    CHECK_CLOSE("LoRA gradients with dropout vs finite differences", got, fd, 40, 5e-4, 5e-3);
    double s2, ev;
    lt_model_train_step(m, c, &b, 0.0f, 77, 6, &s2, &err);
    CHECK_MSG(s2 != s0, "another step draws other masks");
    CHECK_OK(lt_model_eval_loss(m, c, &b, &ev, &err), &err);
    CHECK(ev != s0);
    free(g);
out:
    lt_ctx_free(c);
    lt_ctx_free(ck);
    lt_adapter_free(a);
    lt_model_free(m);
    TEST_END();
}
