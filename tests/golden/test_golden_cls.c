/*
 * test_golden_cls.c - sequence classification against LlamaForSequenceClassification,
 * GPT2ForSequenceClassification and GPTNeoXForSequenceClassification + PEFT (fixtures:
 * tools/make_golden_cls.py; GPT-2's adapter has fan_in_fan_out, NeoX's base is bf16, computed in
 * f32 from the same bf16 values on both sides): the PEFT adapter with its "score" head loads; pooled
 * scores at the rightmost non-pad token (including a row with a pad id inside the text), the
 * class-weighted cross-entropy and every LoRA and head gradient match; save -> load keeps the
 * head. Tolerances as in test_golden_llama.c (float32 on both sides, summation order only).
 */
#include "io/io.h"
#include "lora/lora.h"
#include "test.h"

#include <unistd.h>

// fam: the base's fixture folder; fix: the classification fixture folder
static void run(const char *fam, const char *fix) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_safetensors *g = NULL;
    lt_ctx *c = NULL;
    char path[256];
    fprintf(stderr, "-- %s (%s)\n", fam, fix);
    snprintf(path, sizeof path, "tests/fixtures/%s/model", fam);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    snprintf(path, sizeof path, "%s/golden.safetensors", fix);
    CHECK_OK(lt_safetensors_open(path, &g, &err), &err);
    if (!m || !g) goto out;
    snprintf(path, sizeof path, "%s/adapter", fix);
    CHECK_OK(lt_adapter_load_peft(m, path, &a, &err), &err);
    if (!a) goto out;
    CHECK(a->n_labels == 3);
    const lt_st_tensor *ti = lt_safetensors_find(g, "input_ids"), *tm = lt_safetensors_find(g, "attention_mask"),
                       *tl = lt_safetensors_find(g, "labels"), *tw = lt_safetensors_find(g, "class_weight"),
                       *ts = lt_safetensors_find(g, "scores"), *tloss = lt_safetensors_find(g, "loss");
    CHECK(ti && tm && tl && tw && ts && tloss);
    if (!ti || !tm || !tl || !tw || !ts || !tloss) goto out;
    int B = (int)ti->shape[0], T = (int)ti->shape[1];
    lt_ctx_opts co = {.B = B, .T = T, .train = true};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    if (!c) goto out;
    const int32_t *labels = tl->data;
    const float *cw = tw->data;
    float wsum = 0;
    for (int i = 0; i < B; i++) wsum += cw[labels[i]];
    lt_cls_head h = {.n_labels = 3, .pad_id = 0, .w = a->score, .gw = a->gscore, .labels = labels, .class_w = cw};
    lt_batch b = {.ids = ti->data, .kmask = tm->data};
    float scores[64];
    double sum = 0;
    lt_adapter_zero_grad(a);
    CHECK_OK(lt_model_cls_step(m, c, &b, &h, 1.0f / wsum, true, 0, 0, &sum, scores, &err), &err);
    CHECK_CLOSE("pooled scores", scores, ts->data, B * 3, 1e-5, 1e-4);
    float loss = (float)(sum / wsum);
    CHECK_CLOSE("weighted CE loss", &loss, tloss->data, 1, 1e-6, 1e-5);
    char key[300], name[320];
    int bad = 0;
    for (int i = 0; i < a->n_mod; i++)
        for (int bb = 0; bb < 2; bb++) {
            lt_lora_mod *mod = &a->mods[i];
            lt_lora_key(mod, bb, key, sizeof key);
            snprintf(name, sizeof name, "grad.%s", key);
            const lt_st_tensor *t = lt_safetensors_find(g, name);
            int64_t n = (int64_t)mod->r * (bb ? mod->out : mod->in);
            CHECK_MSG(t && t->numel == n, "%s", name);
            if (!t || t->numel != n) continue;
            float mx = 0;
            for (int64_t j = 0; j < n; j++) mx = fmaxf(mx, fabsf(((const float *)t->data)[j]));
            int before = t_fail;
            CHECK_CLOSE(name, bb ? mod->gB : mod->gA, t->data, n, fmax(1e-4 * mx, 1e-8), 1e-3);
            bad += t_fail > before;
        }
    CHECK(bad == 0);
    const lt_st_tensor *tg = lt_safetensors_find(g, "grad.base_model.model.score.weight");
    CHECK(tg && tg->numel == 3 * m->cfg.n_embd);
    if (tg) CHECK_CLOSE("score head gradient", a->gscore, tg->data, tg->numel, 1e-6, 1e-3);
    // pooling rule on its own
    int32_t r1[5] = {4, 0, 7, 0, 0}, k1[5] = {1, 1, 1, 0, 0};
    CHECK(lt_cls_pool_position(r1, k1, 5, 0) == 2);
    CHECK(lt_cls_pool_position(r1, k1, 5, -1) == 2);
    int32_t r2[3] = {0, 0, 0};
    CHECK(lt_cls_pool_position(r2, NULL, 3, 0) == 0); // all padding: position 0, as argmax of zeros
    // save -> load keeps the head and PEFT's SEQ_CLS layout
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/lt_cls_%s_%d", fam, (int)getpid());
    CHECK_OK(lt_adapter_save_peft(a, m, dir, &err), &err);
    float head0 = a->score[5];
    lt_adapter_free(a);
    a = NULL;
    CHECK_OK(lt_adapter_load_peft(m, dir, &a, &err), &err);
    CHECK(a && a->n_labels == 3 && a->score[5] == head0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
out:
    lt_ctx_free(c);
    lt_adapter_free(a);
    lt_safetensors_close(g);
    lt_model_free(m);
}

int main(void) {
    run("llama", "tests/fixtures/cls");
    run("gpt2", "tests/fixtures/cls/gpt2");
    run("gpt_neox", "tests/fixtures/cls/gpt_neox");
    TEST_END();
}
