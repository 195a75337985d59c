/*
 * test_smollm2.c - the real SmolLM2-135M-Instruct GGUF (Q4_1 projections, Q8_0 tied embedding)
 * loaded from its blocks, against transformers' logits for the same file
 * (tools/make_smollm2_ref.py; transformers dequantises the GGUF to f32 and undoes llama.cpp's
 * q/k row permutation). Skips when the model is not in the cache (scripts/fetch_smollm2.sh).
 * Tolerance: the dequantised weights are bit-identical on both sides (d*q + m from the same f16
 * scales), so only summation order differs, across 30 blocks: 2e-3 absolute on logits ranging
 * to ~30 (float noise there is ~1e-4), and the same argmax at every position. The same holds
 * with a PEFT-written adapter (tools/make_smollm2_adapter.py) applied: interop PEFT -> loratune
 * on the real model. The GGUF tokenizer and chat template match transformers (26 hard strings,
 * tools/make_smollm2_tok.py).
 */
#include "core/core.h"
#include "io/io.h"
#include "lora/lora.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

static const char *model_path(char *buf, size_t n) {
    const char *c = getenv("LORATUNE_CACHE");
    const char *home = getenv("HOME");
    if (c) snprintf(buf, n, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", c);
    else snprintf(buf, n, "%s/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    return lt_file_exists(buf) ? buf : NULL;
}

// Logits of the fixture's tokens at its vocabulary subset, and the argmax at every position.
static void compare(lt_model *m, lt_safetensors *g, const char *what) {
    lt_err err = {0};
    const lt_st_tensor *tk = lt_safetensors_find(g, "tokens"), *vo = lt_safetensors_find(g, "vocab"),
                       *lg = lt_safetensors_find(g, "logits"), *am = lt_safetensors_find(g, "argmax");
    CHECK(tk && vo && lg && am);
    if (!tk || !vo || !lg || !am) return;
    int T = (int)tk->numel, K = (int)vo->numel, V = m->cfg.n_vocab;
    lt_ctx *c = NULL;
    lt_ctx_opts co = {.B = 1, .T = T};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    if (!c) return;
    float *logits = malloc(sizeof(float) * (size_t)T * (size_t)V), *sub = malloc(sizeof(float) * (size_t)(T * K));
    lt_batch b = {.ids = tk->data};
    CHECK_OK(lt_model_logits(m, c, &b, logits, &err), &err);
    const int32_t *vid = vo->data, *amx = am->data;
    int argmax_ok = 0;
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < K; k++) sub[t * K + k] = logits[(size_t)t * V + vid[k]];
        int best = 0;
        for (int v = 1; v < V; v++) if (logits[(size_t)t * V + v] > logits[(size_t)t * V + best]) best = v;
        argmax_ok += best == amx[t];
    }
    CHECK_CLOSE(what, sub, lg->data, T * K, 2e-3, 1e-4);
    CHECK_MSG(argmax_ok == T, "%s: argmax equal at %d of %d positions", what, argmax_ok, T);
    free(logits), free(sub);
    lt_ctx_free(c);
}

// The GGUF's tokenizer and chat template against transformers' (tools/make_smollm2_tok.py).
static void tokenizer_checks(const char *path) {
    lt_err err = {0};
    lt_tokenizer *tok = NULL;
    char *text = NULL;
    size_t n = 0;
    cJSON *j = NULL;
    CHECK_OK(lt_tokenizer_load_gguf_file(path, &tok, &err), &err);
    CHECK_OK(lt_read_file("tests/fixtures/smollm2/tokenizer.json", &text, &n, &err), &err);
    if (text) CHECK_OK(lt_json_parse(text, n, "tokenizer.json", &j, &err), &err);
    if (!tok || !j) goto out;
    const cJSON *c, *cases = cJSON_GetObjectItemCaseSensitive(j, "cases");
    int ok = 0, total = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *t = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
        lt_ids got = {0};
        total++;
        if (lt_tokenizer_encode(tok, t, strlen(t), 0, &got, &err)) {
            fprintf(stderr, "encode \"%s\": %s\n", t, err.msg);
            continue;
        }
        bool same = (int)got.n == cJSON_GetArraySize(ids);
        for (size_t i = 0; same && i < got.n; i++) same = got.ids[i] == cJSON_GetArrayItem(ids, (int)i)->valueint;
        if (!same) fprintf(stderr, "SmolLM2 tokenizer differs on \"%s\"\n", t);
        ok += same;
        lt_ids_deinit(&got);
    }
    CHECK_MSG(ok == total && total > 20, "SmolLM2 tokenizer: %d of %d strings as transformers", ok, total);
    // chat template from the GGUF, rendered as transformers' apply_chat_template
    const char *src = lt_tokenizer_chat_template(tok);
    CHECK(src != NULL);
    lt_chat_template *ct = NULL;
    if (src) CHECK_OK(lt_chat_template_parse(src, strlen(src), &ct, &err), &err);
    if (ct) {
        const cJSON *chat = cJSON_GetObjectItemCaseSensitive(j, "chat");
        lt_chat_msg msgs[2];
        for (int i = 0; i < 2; i++) {
            const cJSON *mm = cJSON_GetArrayItem(chat, i);
            msgs[i].role = cJSON_GetObjectItemCaseSensitive(mm, "role")->valuestring;
            msgs[i].content = cJSON_GetObjectItemCaseSensitive(mm, "content")->valuestring;
        }
        for (int gen = 0; gen < 2; gen++) {
            lt_chat_vars v = {.add_generation_prompt = gen == 1};
            char *out = NULL;
            size_t len = 0;
            CHECK_OK(lt_chat_template_render(ct, msgs, gen ? 1 : 2, &v, &out, &len, &err), &err);
            const char *want = cJSON_GetObjectItemCaseSensitive(j, gen ? "rendered_gen" : "rendered")->valuestring;
            CHECK_MSG(out && !strcmp(out, want), "chat template rendering (generation prompt %d):\n%s", gen,
                      out ? out : "");
            lt_free(out);
        }
        lt_chat_template_free(ct);
    }
out:
    cJSON_Delete(j);
    lt_free(text);
    lt_tokenizer_free(tok);
}

int main(void) {
    char buf[1024];
    const char *path = model_path(buf, sizeof buf);
    if (!path) {
        fprintf(stderr, "SKIP SmolLM2: model not in the cache (run scripts/fetch_smollm2.sh)\n");
        TEST_END();
    }
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_safetensors *g = NULL;
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    CHECK_OK(lt_safetensors_open("tests/fixtures/smollm2/ref.safetensors", &g, &err), &err);
    if (!m || !g) goto out;
    CHECK(m->cfg.n_layer == 30 && m->cfg.n_embd == 576 && m->cfg.n_head == 9 &&
          m->cfg.n_head_kv == 3 && m->cfg.n_vocab == 49152 && m->arch.tied_head);
    CHECK(m->layers[0].lin[LT_MOD_Q].w.dtype == LT_DTYPE_Q4_1 && m->tok_embd.dtype == LT_DTYPE_Q8_0);
    compare(m, g, "SmolLM2 logits (Q4_1/Q8_0 blocks)");
    tokenizer_checks(path);
    // interop PEFT -> loratune on the real quantised model: PEFT's adapter, transformers' logits
    lt_safetensors *gl = NULL;
    CHECK_OK(lt_safetensors_open("tests/fixtures/smollm2/ref_lora.safetensors", &gl, &err), &err);
    CHECK_OK(lt_adapter_load_peft(m, "tests/fixtures/smollm2/adapter", &a, &err), &err);
    if (gl && a) compare(m, gl, "SmolLM2 + PEFT adapter logits");
    lt_safetensors_close(gl);
out:
    lt_safetensors_close(g);
    lt_adapter_free(a);
    lt_model_free(m);
    TEST_END();
}
