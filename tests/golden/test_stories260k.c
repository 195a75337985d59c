/*
 * test_stories260k.c - the real pretrained stories260K llama2.c checkpoint
 * (../shared/data/models/stories260K.bin): logits of 32 tokens equal the PyTorch reference
 * (tools/make_golden.py, a plain torch port of llama2.c's forward cross-checked against
 * transformers' LlamaForCausalLM after the HF permutation), and a short LoRA run on
 * tinystories_sample.txt lowers the training loss. Skips when ../shared/data is absent.
 * Tolerance: f32 on both sides, 5 blocks of dim 64: 1e-4 absolute on logits of magnitude ~10.
 */
#include "io/io.h"
#include "lora/lora.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <unistd.h>

int main(void) {
    const char *sd = shared_data_dir();
    if (!sd) {
        fprintf(stderr, "SKIP stories260K: ../shared/data not found (set LT_SHARED_DATA)\n");
        TEST_END();
    }
    char path[512];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_safetensors *g = NULL;
    snprintf(path, sizeof path, "%s/models/stories260K.bin", sd);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    CHECK_OK(lt_safetensors_open("tests/fixtures/stories260k/ref.safetensors", &g, &err), &err);
    if (!m || !g) goto out;
    CHECK(m->cfg.n_layer == 5 && m->cfg.n_embd == 64 && m->cfg.n_head_kv == 4 && m->cfg.n_vocab == 512);
    const lt_st_tensor *tk = lt_safetensors_find(g, "tokens"), *lg = lt_safetensors_find(g, "logits");
    CHECK(tk && lg && tk->dtype == LT_DTYPE_I32 && lg->numel == tk->numel * 512);
    if (!tk || !lg) goto out;
    int T = (int)tk->numel;
    lt_ctx *c = NULL;
    lt_ctx_opts co = {.B = 1, .T = T};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    float *logits = malloc(sizeof(float) * (size_t)T * 512);
    lt_batch b = {.ids = tk->data};
    CHECK_OK(lt_model_logits(m, c, &b, logits, &err), &err);
    CHECK_CLOSE("stories260K logits", logits, lg->data, (int64_t)T * 512, 1e-4, 1e-4);
    free(logits);
    lt_ctx_free(c);

    // LoRA on real text lowers the loss
    lt_tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/models/tok512.bin", sd);
    CHECK_OK(lt_tokenizer_load_llama2c(path, 512, &tok, &err), &err);
    lt_dataset d;
    lt_dataset_init(&d);
    snprintf(path, sizeof path, "%s/datasets/tinystories_sample.txt", sd);
    if (tok) CHECK_OK(lt_dataset_read_text(&d, tok, path, "<|endoftext|>", 128, &err), &err);
    CHECK(d.n >= 4);
    lt_lora_config lc = {.r = 8, .alpha = 16, .targets = (1u << LT_MOD_PER_LAYER) - 1, .layer_hi = -1};
    lt_adapter *a = NULL;
    CHECK_OK(lt_adapter_new(m, &lc, 1, &a, &err), &err);
    if (a && d.n) {
        lt_train_opts o;
        lt_train_opts_default(&o);
        o.lr = 1e-2f, o.B = 4, o.T = 128, o.max_steps = 30, o.quiet = true, o.warmup_steps = 2;
        lt_train_result res;
        CHECK_OK(lt_train(m, a, &d, NULL, &o, &res, &err), &err);
        fprintf(stderr, "stories260K LoRA: loss %.4f -> %.4f in %lld steps\n", res.first_loss,
                res.last_loss, (long long)res.steps);
        CHECK(res.last_loss < res.first_loss - 0.1);
    }
    lt_adapter_free(a);
    lt_dataset_deinit(&d);
    lt_tokenizer_free(tok);
out:
    lt_safetensors_close(g);
    lt_model_free(m);
    TEST_END();
}
