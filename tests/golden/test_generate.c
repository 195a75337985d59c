/*
 * test_generate.c - batched generation (src/infer/generate.c):
 *  - greedy tokens with the random PEFT adapter of each tiny family (llama, mistral with its
 *    sliding window, qwen2, gpt2 with learned positions, gpt_neox with partial rotary) equal
 *    transformers + PEFT generate() exactly: each prompt alone,
 *    all prompts in one left-padded batch, with repetition_penalty 1.3, and without the adapter
 *    (tests/fixtures/generate/<fam>.json from tools/make_generate_fixtures.py);
 *  - seeded sampling reproduces itself and does not depend on the batch size;
 *  - stories260K greedy from BOS reproduces llama2.c's 200-token story through lt_generate and
 *    the tokenizer; a stop string cuts the text before it (skipped without ../shared/data);
 *  - JSON-constrained generation parses and conforms for every prompt, greedy and sampled, with a
 *    random tiny model (it "wants garbage") over a byte-level BPE vocabulary (GPT-2, or the
 *    in-repo byte-level fixture) and SentencePiece vocabularies (tok512 with stories260K and with
 *    a random model), including budgets just above the shortest document;
 *  - prompts from .txt and JSONL records (plain prompt field, chat messages without the final
 *    answer, alpaca instruction records, a user template cut at its response, chat wrapping with
 *    a system message) give the expected text and ids; a record without a prompt is an error
 *    naming file:line.
 */
#include "core/core.h"
#include "infer/infer.h"
#include "lora/lora.h"
#include "test.h"

#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// transformers + PEFT parity

typedef struct fixture {
    cJSON *j;
    int n;
    int32_t *p[8];
    int len[8];
} fixture;

static bool load_fixture(const char *fam, fixture *f) {
    char path[256];
    lt_err err = {0};
    snprintf(path, sizeof path, "tests/fixtures/generate/%s.json", fam);
    memset(f, 0, sizeof *f);
    CHECK_OK(lt_json_parse_file(path, &f->j, &err), &err);
    if (!f->j) return false;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(f->j, "prompts");
    for (const cJSON *p = ps ? ps->child : NULL; p && f->n < 8; p = p->next) {
        int n = cJSON_GetArraySize(p), i = 0;
        f->p[f->n] = malloc(sizeof(int32_t) * (size_t)n);
        for (const cJSON *t = p->child; t; t = t->next) f->p[f->n][i++] = t->valueint;
        f->len[f->n++] = n;
    }
    return f->n > 0;
}

static void free_fixture(fixture *f) {
    for (int i = 0; i < f->n; i++) free(f->p[i]);
    cJSON_Delete(f->j);
}

// Compares outputs with the fixture's list `key` (HF keeps EOS at the end; we report it as the
// finish reason instead).
static void compare(const char *what, const fixture *f, const char *key, const lt_gen_out *out) {
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(f->j, key);
    int i = 0;
    for (const cJSON *w = want ? want->child : NULL; w && i < f->n; w = w->next, i++) {
        int n = cJSON_GetArraySize(w), k = 0;
        bool eos = n > 0 && cJSON_GetArrayItem(w, n - 1)->valueint == 2;
        int nw = eos ? n - 1 : n;
        bool same = out[i].n_ids == nw && out[i].finish == (eos ? LT_FINISH_EOS : LT_FINISH_LENGTH);
        for (const cJSON *t = w->child; t && same && k < nw; t = t->next, k++)
            same = out[i].ids[k] == t->valueint;
        CHECK_MSG(same, "%s: prompt %d: %d tokens (finish %s) differ from transformers' %d", what,
                  i, out[i].n_ids, lt_finish_name(out[i].finish), n);
    }
    CHECK(i == f->n);
}

static void hf_parity(const char *fam) {
    char path[256];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    fixture f;
    if (!load_fixture(fam, &f)) return;
    snprintf(path, sizeof path, "tests/fixtures/%s/model", fam);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    snprintf(path, sizeof path, "tests/fixtures/%s/adapter", fam);
    if (m) CHECK_OK(lt_adapter_load_peft(m, path, &a, &err), &err);
    if (!m || !a) goto out;
    lt_gen_opts o;
    lt_gen_opts_default(&o);
    o.max_new_tokens = 20;
    o.eos_id = 2, o.pad_id = 0;
    lt_gen_out out[8];
    const int32_t *const *pp = (const int32_t *const *)f.p;
    char what[96];
    struct {
        const char *key;
        int batch;
        float rep;
    } runs[] = {
        {"single", 1, 1}, {"batched", 4, 1}, {"single", 3, 1}, {"rep", 1, 1.3f}, {"rep", 4, 1.3f}};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        o.batch = runs[r].batch;
        o.sampler.repetition_penalty = runs[r].rep;
        snprintf(what, sizeof what, "%s %s batch %d", fam, runs[r].key, runs[r].batch);
        lt_status st = lt_generate(m, NULL, pp, f.len, f.n, &o, out, &err);
        CHECK_OK(st, &err);
        if (st) continue;
        compare(what, &f, runs[r].key, out);
        lt_gen_out_deinit(out, f.n);
    }
    lt_adapter_free(a); // detaches: the base model alone
    a = NULL;
    o.batch = 4, o.sampler.repetition_penalty = 1;
    snprintf(what, sizeof what, "%s base model", fam);
    if (!lt_generate(m, NULL, pp, f.len, f.n, &o, out, &err)) {
        compare(what, &f, "base", out);
        lt_gen_out_deinit(out, f.n);
    }
    fprintf(stderr,
            "ok   %s: greedy generation equals transformers+PEFT (single, batched, rep, base)\n",
            fam);
out:
    lt_adapter_free(a);
    lt_model_free(m);
    free_fixture(&f);
}

static bool same_outs(const lt_gen_out *a, const lt_gen_out *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].n_ids != b[i].n_ids ||
            memcmp(a[i].ids, b[i].ids, sizeof(int32_t) * (size_t)a[i].n_ids))
            return false;
    return true;
}

static void seeded_sampling(void) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    fixture f;
    if (!load_fixture("llama", &f)) return;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (m) CHECK_OK(lt_adapter_load_peft(m, "tests/fixtures/llama/adapter", &a, &err), &err);
    if (!a) goto out;
    lt_gen_opts o;
    lt_gen_opts_default(&o);
    o.max_new_tokens = 24;
    o.sampler = (lt_sampler_opts){
        .temperature = 1.5f, .top_k = 40, .top_p = 0.95f, .repetition_penalty = 1.1f};
    o.seed = 9;
    lt_gen_out x[8], y[8], z[8], w[8];
    const int32_t *const *pp = (const int32_t *const *)f.p;
    o.batch = 4;
    CHECK_OK(lt_generate(m, NULL, pp, f.len, f.n, &o, x, &err), &err);
    CHECK_OK(lt_generate(m, NULL, pp, f.len, f.n, &o, y, &err), &err);
    o.batch = 1;
    CHECK_OK(lt_generate(m, NULL, pp, f.len, f.n, &o, z, &err), &err);
    o.seed = 10;
    CHECK_OK(lt_generate(m, NULL, pp, f.len, f.n, &o, w, &err), &err);
    CHECK_MSG(same_outs(x, y, f.n), "same seed, same batch: different samples");
    CHECK_MSG(same_outs(x, z, f.n), "same seed, batch 4 vs 1: different samples");
    CHECK_MSG(!same_outs(x, w, f.n), "seeds 9 and 10 gave the same samples");
    lt_gen_out_deinit(x, f.n), lt_gen_out_deinit(y, f.n), lt_gen_out_deinit(z, f.n),
        lt_gen_out_deinit(w, f.n);
    // bad settings are errors, not crashes
    lt_gen_out e[8];
    o.sampler.top_p = 0;
    CHECK(lt_generate(m, NULL, pp, f.len, f.n, &o, e, &err) == LT_ERR_ARG);
    o.sampler.top_p = 1, o.max_new_tokens = 200; // 12 + 200 > 128 positions
    CHECK(lt_generate(m, NULL, pp, f.len, f.n, &o, e, &err) == LT_ERR_ARG &&
          strstr(err.msg, "prompt 0"));
out:
    lt_adapter_free(a);
    lt_model_free(m);
    free_fixture(&f);
}

// ---------------------------------------------------------------------------------------------
// stories260K

static const char *expected_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's "
    "mom "
    "said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I "
    "want "
    "to play with your ball, but I can't find it.\"\nLily was sad and didn't know what to do. She "
    "said, "
    "\"I'm sorry, Lily. I didn't know what to do.\"\nLily didn't want to help her mom, so she";

static const char *SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"label\": {\"enum\": [\"happy\", \"sad\", \"neutral\"]},"
    "\"confidence\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1},"
    "\"reason\": {\"type\": \"string\"},"
    "\"count\": {\"type\": \"integer\", \"minimum\": -3, \"maximum\": 250},"
    "\"ok\": {\"type\": \"boolean\"}},"
    "\"required\": [\"label\", \"confidence\", \"reason\"]}";

typedef struct stream_ud {
    char buf[4096];
    size_t n;
} stream_ud;
static void on_token(void *ud, int64_t idx, int32_t id, const char *b, size_t n) {
    stream_ud *s = ud;
    if (idx == 0 && b && s->n + n < sizeof s->buf) memcpy(s->buf + s->n, b, n), s->n += n;
}

// Every output of a constrained run parses, has the enum label and the number in range.
static int check_json_outs(const char *what, const lt_gen_out *out, int n) {
    int good = 0;
    for (int i = 0; i < n; i++) {
        cJSON *j = out[i].text ? cJSON_ParseWithLength(out[i].text, out[i].text_len) : NULL;
        const char *label = lt_json_str(j, "label", "");
        double c = lt_json_num(j, "confidence", -1);
        bool ok = j && out[i].finish == LT_FINISH_JSON && c >= 0 && c <= 1 &&
                  (!strcmp(label, "happy") || !strcmp(label, "sad") || !strcmp(label, "neutral")) &&
                  cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "reason"));
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(j, "count");
        if (cnt)
            ok = ok && cJSON_IsNumber(cnt) && cnt->valuedouble >= -3 && cnt->valuedouble <= 250 &&
                 cnt->valuedouble == floor(cnt->valuedouble);
        if (!ok)
            fprintf(stderr, "%s: output %d (%s, %d tokens) fails: %s\n", what, i,
                    lt_finish_name(out[i].finish), out[i].n_ids,
                    out[i].text ? out[i].text : "(null)");
        good += ok;
        cJSON_Delete(j);
    }
    fprintf(stderr, "%s: %d/%d outputs parse and conform\n", what, good, n);
    return good;
}

// Encodes n prompts ("<text> <i>") with the tokenizer's special tokens (BOS where it adds one).
static int make_prompts(const lt_tokenizer *tok, int n, int32_t **p, int *len) {
    static const char *texts[] = {"Once upon a time",
                                  "The cat sat",
                                  "Tim and Sue went to the park",
                                  "It was a sunny day",
                                  "Lily had a red ball",
                                  "Bob",
                                  "A big dog",
                                  "The end"};
    lt_err err = {0};
    for (int i = 0; i < n; i++) {
        char t[128];
        snprintf(t, sizeof t, "%s %d", texts[i % 8], i);
        lt_ids v = {0};
        if (lt_tokenizer_encode(tok, t, strlen(t), LT_TOK_ADD_SPECIAL, &v, &err) || v.n == 0)
            return 0;
        p[i] = v.ids, len[i] = (int)v.n; // lt_alloc'd: freed with lt_free
    }
    return n;
}

static void constrained(const char *what, lt_model *m, const lt_tokenizer *tok, int n_prompts,
                        bool also_sampled) {
    lt_err err = {0};
    cJSON *sj = cJSON_Parse(SCHEMA);
    lt_jschema *sc = NULL;
    lt_jvocab *jv = NULL;
    CHECK_OK(lt_jschema_compile(sj, "schema", &sc, &err), &err);
    if (sc) CHECK_OK(lt_jvocab_new(sc, tok, &jv, &err), &err);
    int32_t *p[16] = {0};
    int len[16];
    if (!jv || make_prompts(tok, n_prompts, p, len) != n_prompts) goto out;
    lt_gen_opts o;
    lt_gen_opts_default(&o);
    o.json = jv;
    o.batch = 8;
    lt_gen_out out[16];
    const int mb = lt_jschema_min_bytes(sc);
    struct {
        int max_new;
        float temp;
    } runs[] = {{mb + 60, 0}, {mb + 3, 0}, {mb + 60, 1.0f}, {mb, 1.0f}};
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        if (runs[r].temp > 0 && !also_sampled) continue;
        o.max_new_tokens = runs[r].max_new;
        o.sampler.temperature = runs[r].temp;
        o.sampler.top_k = runs[r].temp > 0 ? 50 : 0;
        o.seed = r;
        lt_status st =
            lt_generate(m, tok, (const int32_t *const *)p, len, n_prompts, &o, out, &err);
        CHECK_OK(st, &err);
        if (st) continue;
        char w[160];
        snprintf(w, sizeof w, "%s, max_new %d, temperature %g", what, o.max_new_tokens,
                 (double)o.sampler.temperature);
        CHECK(check_json_outs(w, out, n_prompts) == n_prompts);
        lt_gen_out_deinit(out, n_prompts);
    }
    o.max_new_tokens = mb - 1; // too small for any document
    CHECK(lt_generate(m, tok, (const int32_t *const *)p, len, n_prompts, &o, out, &err) ==
          LT_ERR_ARG);
out:
    for (int i = 0; i < 16; i++) lt_free(p[i]);
    lt_jvocab_free(jv);
    lt_jschema_free(sc);
    cJSON_Delete(sj);
}

static void stories(void) {
    const char *sd = shared_data_dir();
    if (!sd) {
        fprintf(stderr, "SKIP stories260K generation: ../shared/data not found\n");
        return;
    }
    char path[512];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/models/stories260K.bin", sd);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    snprintf(path, sizeof path, "%s/models/tok512.bin", sd);
    CHECK_OK(lt_tokenizer_load_llama2c(path, 512, &tok, &err), &err);
    if (!m || !tok) goto out;
    lt_gen_opts o;
    lt_gen_opts_default(&o);
    o.max_new_tokens = 200;
    o.eos_id = 1; // run.c stops when BOS comes back
    stream_ud su = {.n = 0};
    o.on_token = on_token, o.ud = &su;
    int32_t bos = 1;
    const int32_t *pp[1] = {&bos};
    int len[1] = {1};
    lt_gen_out out[1];
    CHECK_OK(lt_generate(m, tok, pp, len, 1, &o, out, &err), &err);
    if (out[0].text) {
        const char *t = out[0].text + (out[0].text[0] == ' '); // run.c strips the space after BOS
        CHECK_MSG(!strcmp(t, expected_story), "story differs:\n%s", t);
        CHECK(out[0].n_ids == 200 && out[0].finish == LT_FINISH_LENGTH);
        CHECK(su.n == out[0].text_len && !memcmp(su.buf, out[0].text, su.n)); // streamed bytes
    }
    lt_gen_out_deinit(out, 1);
    const char *stops[] = {"ball", "\n"};
    o.stop = stops, o.n_stop = 2, o.on_token = NULL;
    CHECK_OK(lt_generate(m, tok, pp, len, 1, &o, out, &err), &err);
    CHECK_MSG(out[0].text && out[0].finish == LT_FINISH_STOP &&
                  !strcmp(out[0].text,
                          " Once upon a time, there was a little girl named Lily. She "
                          "loved to play outside in the park. One day, she saw a big, red "),
              "stop string: %s", out[0].text ? out[0].text : "");
    lt_gen_out_deinit(out, 1);
    constrained("stories260K + tok512 (SentencePiece)", m, tok, 16, true);
out:
    lt_tokenizer_free(tok);
    lt_model_free(m);
}

// ---------------------------------------------------------------------------------------------
// a random tiny llama for any vocabulary size

static bool write_random_model(const char *dir, int V, uint64_t seed) {
    enum { C = 32, L = 1, NH = 2, NKV = 1, HS = 16, F = 64 };
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f,
            "{\"model_type\": \"llama\", \"hidden_size\": %d, \"num_hidden_layers\": %d, "
            "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, "
            "\"intermediate_size\": %d, \"vocab_size\": %d, \"max_position_embeddings\": 256, "
            "\"tie_word_embeddings\": true, \"rms_norm_eps\": 1e-5}\n",
            C, L, NH, NKV, HS, F, V);
    fclose(f);
    lt_rng r;
    lt_rng_seed(&r, seed);
    lt_st_writer *w = lt_st_writer_new();
    lt_err err = {0};
    struct {
        const char *name;
        int64_t rows, cols;
    } t[] = {{"model.embed_tokens.weight", V, C},
             {"model.norm.weight", C, 0},
             {"model.layers.0.input_layernorm.weight", C, 0},
             {"model.layers.0.post_attention_layernorm.weight", C, 0},
             {"model.layers.0.self_attn.q_proj.weight", NH * HS, C},
             {"model.layers.0.self_attn.k_proj.weight", NKV * HS, C},
             {"model.layers.0.self_attn.v_proj.weight", NKV * HS, C},
             {"model.layers.0.self_attn.o_proj.weight", C, NH * HS},
             {"model.layers.0.mlp.gate_proj.weight", F, C},
             {"model.layers.0.mlp.up_proj.weight", F, C},
             {"model.layers.0.mlp.down_proj.weight", C, F}};
    float *data[16] = {0};
    bool ok = w != NULL;
    for (size_t i = 0; i < sizeof t / sizeof *t && ok; i++) {
        int64_t n = t[i].rows * (t[i].cols ? t[i].cols : 1);
        data[i] = malloc(sizeof(float) * (size_t)n);
        float sd = t[i].cols ? (i == 0 ? 1.0f : 1.0f / sqrtf((float)t[i].cols)) : 0;
        for (int64_t k = 0; k < n; k++) data[i][k] = t[i].cols ? sd * lt_rng_normal(&r) : 1.0f;
        int64_t shape[2] = {t[i].rows, t[i].cols};
        ok = !lt_st_writer_add(w, t[i].name, LT_DTYPE_F32, t[i].cols ? 2 : 1, shape, data[i], &err);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ok = ok && !lt_st_writer_write(w, path, &err);
    lt_st_writer_free(w);
    for (int i = 0; i < 16; i++) free(data[i]);
    return ok;
}

static void random_model(const char *what, lt_tokenizer *tok, int n_prompts, bool sampled) {
    char dir[] = "/tmp/lt_gen_XXXXXX", path[600];
    lt_err err = {0};
    lt_model *m = NULL;
    if (!tok || !mkdtemp(dir)) return;
    CHECK(write_random_model(dir, lt_tokenizer_n_vocab(tok), 77));
    CHECK_OK(lt_model_load(dir, &m, &err), &err);
    if (m) constrained(what, m, tok, n_prompts, sampled);
    lt_model_free(m);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

static void random_models(void) {
    const char *sd = shared_data_dir();
    char path[512];
    lt_err err = {0};
    lt_tokenizer *tok = NULL;
    if (sd) {
        snprintf(path, sizeof path, "%s/tokenizers/gpt2-hf-tokenizer.json", sd);
        CHECK_OK(lt_tokenizer_load_hf(path, NULL, &tok, &err), &err);
        random_model("random model + GPT-2 byte-level BPE", tok, 8, true);
        lt_tokenizer_free(tok), tok = NULL;
        snprintf(path, sizeof path, "%s/models/tok512.bin", sd);
        CHECK_OK(lt_tokenizer_load_llama2c(path, 512, &tok, &err), &err);
        random_model("random model + tok512 SentencePiece", tok, 8, true);
        lt_tokenizer_free(tok), tok = NULL;
    } else {
        fprintf(stderr, "SKIP GPT-2 and tok512 vocabularies: ../shared/data not found (in-repo "
                        "fixtures below)\n");
    }
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    random_model("random model + fixture byte-level BPE", tok, 8, true);
    lt_tokenizer_free(tok), tok = NULL;
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/unigram_bytefallback.tokenizer.json",
                                  NULL, &tok, &err),
             &err);
    random_model("random model + fixture Unigram (byte fallback)", tok, 8, true);
    lt_tokenizer_free(tok);
}

// ---------------------------------------------------------------------------------------------
// prompts from files and records

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) fputs(s, f), fclose(f);
}

static void check_prompt(const lt_prompts *ps, const lt_tokenizer *tok, int64_t i, const char *want,
                         const char *want_id, bool chat) {
    lt_err err = {0};
    if (i >= ps->n) {
        CHECK_MSG(0, "prompt %lld missing", (long long)i);
        return;
    }
    CHECK_MSG(!strcmp(ps->text[i], want), "prompt %lld: \"%s\", want \"%s\"", (long long)i,
              ps->text[i], want);
    CHECK_MSG(want_id ? ps->id[i] && !strcmp(ps->id[i], want_id) : !ps->id[i], "prompt %lld id %s",
              (long long)i, ps->id[i] ? ps->id[i] : "(none)");
    lt_ids v = {0};
    CHECK_OK(lt_tokenizer_encode(tok, want, strlen(want), chat ? 0 : LT_TOK_ADD_SPECIAL, &v, &err),
             &err);
    CHECK(v.n == (size_t)ps->len[i] && !memcmp(v.ids, ps->ids[i], sizeof(int32_t) * v.n));
    lt_ids_deinit(&v);
}

static void prompts(void) {
    lt_err err = {0};
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    char dir[] = "/tmp/lt_prompts_XXXXXX", jp[128], tp[128], bp[128];
    if (!tok || !mkdtemp(dir)) return;
    snprintf(jp, sizeof jp, "%s/p.jsonl", dir);
    snprintf(tp, sizeof tp, "%s/p.txt", dir);
    snprintf(bp, sizeof bp, "%s/bad.jsonl", dir);
    write_file(jp, "{\"id\": \"a\", \"prompt\": \"hello\"}\n"
                   "{\"id\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                   "{\"role\": \"assistant\", \"content\": \"ans\"}]}\n"
                   "{\"instruction\": \"Do X\", \"input\": \"\", \"output\": \"Y\"}\n"
                   "{\"instruction\": \"Do Z\", \"input\": \"in\"}\n");
    write_file(tp, "a\n\nb\r\n");
    write_file(bp, "{\"prompt\": \"ok\"}\n{\"question\": \"no prompt here\"}\n");
    const char *chat_tmpl = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                            "{% if add_generation_prompt %}<|assistant|>{% endif %}";
    lt_prompt_opts po = {.chat_template = chat_tmpl};
    lt_prompter *pm = NULL;
    lt_prompts ps = {0};
    CHECK_OK(lt_prompter_new(tok, &po, &pm, &err), &err);
    if (!pm) goto out;
    CHECK_OK(lt_prompts_load(&ps, pm, jp, &err), &err);
    CHECK(ps.n == 4);
    const char *alpaca =
        "Below is an instruction that describes a task. Write a response that "
        "appropriately completes the request.\n\n### Instruction:\nDo X\n\n### Response:\n";
    check_prompt(&ps, tok, 0, "hello", "a", false);
    check_prompt(&ps, tok, 1, "<|user|>hi\n<|assistant|>", "7", true);
    check_prompt(&ps, tok, 2, alpaca, NULL, false);
    check_prompt(&ps, tok, 3,
                 "Below is an instruction that describes a task, paired with an input "
                 "that provides further context. Write a response that appropriately "
                 "completes the request.\n\n### Instruction:\nDo Z\n\n### Input:\nin\n\n"
                 "### Response:\n",
                 NULL, false);
    CHECK_OK(lt_prompts_load(&ps, pm, tp, &err), &err);
    CHECK(ps.n == 6);
    check_prompt(&ps, tok, 4, "a", NULL, false);
    check_prompt(&ps, tok, 5, "b", NULL, false);
    CHECK(lt_prompts_load(&ps, pm, bp, &err) == LT_ERR_FORMAT && strstr(err.msg, "bad.jsonl:2"));
    lt_prompts_deinit(&ps);
    lt_prompter_free(pm), pm = NULL;
    // chat-wrapped plain prompts with a system message; a user template cut at its response
    po.chat = true, po.system = "S";
    CHECK_OK(lt_prompter_new(tok, &po, &pm, &err), &err);
    if (pm) {
        CHECK_OK(lt_prompts_add_text(&ps, pm, "hello", "x", &err), &err);
        check_prompt(&ps, tok, 0, "<|system|>S\n<|user|>hello\n<|assistant|>", "x", true);
        lt_prompts_deinit(&ps);
        lt_prompter_free(pm), pm = NULL;
    }
    lt_prompt_opts po2 = {.template_src = "Q: {question}\nA: {answer}"};
    write_file(jp, "{\"question\": \"2+2\"}\n{\"question\": \"3+3\", \"answer\": \"6\"}\n");
    CHECK_OK(lt_prompter_new(tok, &po2, &pm, &err), &err);
    if (pm) {
        CHECK_OK(lt_prompts_load(&ps, pm, jp, &err), &err);
        check_prompt(&ps, tok, 0, "Q: 2+2\nA: ", NULL, false);
        check_prompt(&ps, tok, 1, "Q: 3+3\nA: ", NULL, false);
    }
    // no chat template at all: --chat is refused up front
    lt_prompter *p3 = NULL;
    lt_prompt_opts po3 = {.chat = true};
    CHECK(lt_prompter_new(tok, &po3, &p3, &err) == LT_ERR_ARG && !p3);
out:
    lt_prompts_deinit(&ps);
    lt_prompter_free(pm);
    lt_tokenizer_free(tok);
    unlink(jp), unlink(tp), unlink(bp);
    rmdir(dir);
}

int main(void) {
    prompts();
    hf_parity("llama");
    hf_parity("mistral");
    hf_parity("qwen2");
    hf_parity("gpt2");
    hf_parity("gpt_neox");
    seeded_sampling();
    stories();
    random_models();
    TEST_END();
}
