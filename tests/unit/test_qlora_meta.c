// test_qlora_meta.c - an adapter trained over a 4-bit base records how the base was quantised
// (loratune.* keys in adapter_model.safetensors' metadata); a full-precision one records nothing.
#include "io/io.h"
#include "lora/lora.h"
#include "test.h"

#include <unistd.h>

static void check(bool quantize) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (!m) return;
    if (quantize) CHECK_OK(lt_model_quantize(m, LT_DTYPE_NF4, true, &err), &err);
    lt_lora_config lc = {.r = 2, .alpha = 4, .targets = 1u << LT_MOD_Q, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 1, &a, &err), &err);
    char dir[128], path[200];
    snprintf(dir, sizeof dir, "/tmp/lt_qmeta_%d_%d", (int)getpid(), quantize);
    if (a) CHECK_OK(lt_adapter_save_peft(a, m, dir, &err), &err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lt_safetensors *st = NULL;
    CHECK_OK(lt_safetensors_open(path, &st, &err), &err);
    if (st) {
        const char *q = lt_safetensors_meta(st, "loratune.bnb_4bit_quant_type");
        const char *dq = lt_safetensors_meta(st, "loratune.bnb_4bit_use_double_quant");
        if (quantize) CHECK(q && !strcmp(q, "nf4") && dq && !strcmp(dq, "true"));
        else CHECK(q == NULL && dq == NULL);
        CHECK(!strcmp(lt_safetensors_meta(st, "format"), "pt"));
        lt_safetensors_close(st);
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    lt_adapter_free(a);
    lt_model_free(m);
}

int main(void) {
    check(false);
    check(true);
    TEST_END();
}
