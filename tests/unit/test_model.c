/*
 * test_model.c - model and adapter loading against bad input: broken config.json, missing or
 * misshapen tensors, truncated llama2.c files, foreign PEFT keys; an allocation-failure sweep
 * over loading a model and an adapter; the PEFT parameter-count line.
 */
#include "core/core.h"
#include "io/io.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "test.h"

#include <unistd.h>

static char tmpdir[256];

static void sh(const char *fmt, const char *a) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, a, a);
    CHECK(system(cmd) == 0);
}

static void expect_fail(const char *path, lt_status code, const char *needle) {
    lt_model *m = NULL;
    lt_err err = {0};
    lt_status st = lt_model_load(path, &m, &err);
    CHECK_MSG(st == code && m == NULL, "%s: got %s (%s)", path, lt_status_name(st), err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message \"%s\" should mention \"%s\"", err.msg, needle);
    lt_model_free(m);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_bad_models(void) {
    char d[300], p[400];
    snprintf(d, sizeof d, "%s/m", tmpdir);
    sh("rm -rf %s && mkdir -p %s && cp tests/fixtures/llama/model/* %s/", d);
    snprintf(p, sizeof p, "%s/config.json", d);
    write_file(p, "{\"model_type\": \"llama\", \"hidden_size\": 64,");
    expect_fail(d, LT_ERR_FORMAT, "config.json");
    write_file(p, "{\"model_type\": \"bert\"}");
    expect_fail(d, LT_ERR_UNSUPPORTED, "bert");
    write_file(p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                  "\"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"intermediate_size\": 128, "
                  "\"vocab_size\": 256}");
    expect_fail(d, LT_ERR_FORMAT, "inconsistent"); // 4 heads cannot share 3 kv heads
    write_file(p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                  "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 100, "
                  "\"vocab_size\": 256, \"head_dim\": 16}");
    expect_fail(d, LT_ERR_SHAPE, "gate_proj"); // ffn 100 does not match the stored 128
    write_file(p, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 3, "
                  "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 128, "
                  "\"vocab_size\": 256, \"head_dim\": 16}");
    expect_fail(d, LT_ERR_FORMAT, "model.layers.2"); // a layer the file does not have
    expect_fail("/nonexistent/model", LT_ERR_IO, "/nonexistent/model");
    // llama2.c: truncated and absurd headers
    const char *sd = shared_data_dir();
    if (sd) {
        char src[400];
        snprintf(src, sizeof src, "%s/models/stories260K.bin", sd);
        snprintf(p, sizeof p, "%s/cut.bin", tmpdir);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "head -c 100000 %s > %s", src, p);
        CHECK(system(cmd) == 0);
        expect_fail(p, LT_ERR_FORMAT, "does not match its header");
    } else {
        fprintf(stderr, "SKIP truncated stories260K: ../shared/data not found\n");
    }
    snprintf(p, sizeof p, "%s/bad.bin", tmpdir);
    int32_t h[7] = {64, 172, 5, 8, 3, 512, 512}; // 8 heads, 3 kv heads
    FILE *f = fopen(p, "wb");
    fwrite(h, sizeof h, 1, f);
    fclose(f);
    expect_fail(p, LT_ERR_FORMAT, "bad.bin");
    int32_t h2[7] = {INT32_MAX, 172, 5, 8, 4, INT32_MIN, 512};
    f = fopen(p, "wb");
    fwrite(h2, sizeof h2, 1, f);
    fclose(f);
    expect_fail(p, LT_ERR_FORMAT, "bad.bin");
    write_file(p, "abc");
    expect_fail(p, LT_ERR_FORMAT, "too short");
}

static void test_adapter_errors(void) {
    lt_model *m = NULL;
    lt_err err = {0};
    CHECK_OK(lt_model_load("tests/fixtures/mistral/model", &m, &err), &err);
    if (!m) return;
    char d[300], p[400];
    snprintf(d, sizeof d, "%s/a", tmpdir);
    sh("rm -rf %s && mkdir -p %s && cp tests/fixtures/llama/adapter/* %s/", d);
    lt_adapter *a = NULL;
    // llama's adapter targets lm_head with another head: refused, naming the tensor
    CHECK(lt_adapter_load_peft(m, d, &a, &err) != LT_OK && a == NULL);
    CHECK_MSG(strstr(err.msg, "lm_head") != NULL, "%s", err.msg);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    write_file(p, "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}");
    CHECK(lt_adapter_load_peft(m, d, &a, &err) == LT_ERR_UNSUPPORTED);
    write_file(p, "{\"peft_type\": \"PREFIX_TUNING\"}");
    CHECK(lt_adapter_load_peft(m, d, &a, &err) == LT_ERR_UNSUPPORTED);
    // a wrong-rank adapter: shapes named in the message
    sh("rm -rf %s && mkdir -p %s && cp tests/fixtures/mistral/adapter/* %s/", d);
    write_file(p, "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 8}");
    CHECK(lt_adapter_load_peft(m, d, &a, &err) == LT_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "lora_A") != NULL, "%s", err.msg);
    lt_lora_config lc = {.r = 4, .alpha = 8, .layer_hi = -1};
    CHECK(lt_lora_parse_targets(m, "q_proj, v_proj", &lc.targets, &err) == LT_OK);
    CHECK(lc.targets == ((1u << LT_MOD_Q) | (1u << LT_MOD_V)));
    CHECK(lt_lora_parse_targets(m, "q_proj,qkv", &lc.targets, &err) == LT_ERR_ARG);
    CHECK(strstr(err.msg, "qkv") != NULL);
    CHECK(lt_lora_parse_targets(m, "all", &lc.targets, &err) == LT_OK && lc.targets == 0x7f);
    CHECK_OK(lt_adapter_new(m, &lc, 1, &a, &err), &err);
    if (a) {
        // 2 layers * 7 modules * r(in+out): q,o 4*(64+64); k,v 4*(64+32); gate,up,down 4*(64+128)
        CHECK(a->n_params == 2 * (2 * 512 + 2 * 384 + 3 * 768));
        char desc[160];
        lt_adapter_describe(a, m, desc, sizeof desc);
        CHECK_MSG(!strncmp(desc, "trainable params: 8,192 || all params: ", 39), "%s", desc);
        CHECK(strstr(desc, "|| trainable%: ") != NULL);
        lt_adapter *b = NULL;
        CHECK(lt_adapter_new(m, &lc, 1, &b, &err) == LT_ERR_ARG); // already attached
        // PEFT init: B = 0, A within 1/sqrt(in)
        int ok = 1;
        for (int i = 0; i < a->n_mod; i++) {
            lt_lora_mod *mod = &a->mods[i];
            for (int j = 0; j < mod->out * mod->r; j++) ok &= mod->B[j] == 0;
            for (int j = 0; j < mod->in * mod->r; j++) ok &= fabsf(mod->A[j]) <= 1 / sqrtf((float)mod->in);
        }
        CHECK(ok);
        lt_adapter_free(a);
    }
    lt_model_free(m);
}

// Every allocation failure while loading a model and its adapter gives LT_ERR_OOM (or another
// clean error) and no crash; ASan reports any leak.
static void test_alloc_failures(void) {
    int i;
    for (i = 0; i < 10000; i++) {
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(i);
        lt_model *m = NULL;
        lt_adapter *a = NULL;
        lt_err err = {0};
        lt_status st = lt_model_load("tests/fixtures/qwen2/model", &m, &err);
        if (!st) st = lt_adapter_load_peft(m, "tests/fixtures/qwen2/adapter", &a, &err);
        lt_ctx *c = NULL;
        lt_ctx_opts co = {.B = 2, .T = 8, .train = true};
        if (!st) st = lt_ctx_new(m, &co, &c, &err);
        lt_alloc_fail_after(-1);
        lt_ctx_free(c);
        lt_adapter_free(a);
        lt_model_free(m);
        if (lt_alloc_injected_failures() == before) {
            CHECK(st == LT_OK);
            break;
        }
        if (st == LT_OK) continue; // the failed allocation was optional
    }
    CHECK_MSG(i > 10, "sweep covered %d allocation points", i);
}

// merge/export describe GPT-2 / GPT-NeoX too (tests/unit/test_merge_gpt.c proves the output)
static void test_export_refusal(void) {
    const char *fams[] = {"gpt2", "gpt_neox", "qwen2"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        lt_err err = {0};
        lt_model *m = NULL;
        snprintf(path, sizeof path, "tests/fixtures/%s/model", fams[i]);
        CHECK_OK(lt_model_load(path, &m, &err), &err);
        if (!m) continue;
        lt_status st = lt_model_check_exportable(m, "merge", &err);
        CHECK_MSG(st == LT_OK, "%s: %s", fams[i], err.msg);
        lt_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lt_test_model_%d", (int)getpid());
    sh("mkdir -p %s", tmpdir);
    test_bad_models();
    test_adapter_errors();
    test_alloc_failures();
    test_export_refusal();
    sh("rm -rf %s", tmpdir);
    TEST_END();
}
