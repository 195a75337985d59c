/*
 * test_plan.c - the memory planner (src/train/plan.h, `loratune train --plan`).
 *   1. The activation bytes it plans are the bytes lt_ctx_new allocates, for the fixture models
 *      of each family, training with and without checkpointing and evaluating (exact).
 *   2. End to end: a random llama-shaped model of ~80 MB (f32, written here with the project's
 *      safetensors writer), `loratune train --plan --json`, then the same command training two
 *      steps in a child process; the plan must be within 15% of the child's peak RSS
 *      (wait4's ru_maxrss). Skipped under AddressSanitizer, whose shadow memory and quarantine
 *      inflate the RSS (the plan is still run and parsed).
 *   3. With too little memory available (LT_MEM_AVAILABLE_MB), the plan says it does not fit and
 *      its suggestions (checkpointing, 8-bit AdamW, 4-bit base, smaller batch) plan less.
 * What not: tokens/s (timing on a shared machine is not a test).
 */
#include "core/core.h"
#include "io/io.h"
#include "lora/lora.h"
#include "model/model.h"
#include "test.h"
#include "train/plan.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static char tmpdir[256];

// ---- 1. planned activation bytes == allocated bytes ------------------------------------------

static void test_ctx_bytes(void) {
    const char *fams[] = {"llama", "mistral", "qwen2", "gpt2", "gpt_neox"};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
        char p[256];
        snprintf(p, sizeof p, "tests/fixtures/%s/model", fams[f]);
        lt_err err = {0};
        lt_model *m = NULL;
        if (lt_model_load(p, &m, &err)) {
            fprintf(stderr, "SKIP %s: %s\n", fams[f], err.msg);
            continue;
        }
        lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1f, .layer_lo = 0, .layer_hi = -1};
        lt_adapter *a = NULL;
        CHECK_OK(lt_lora_parse_targets(m, "all", &lc.targets, &err), &err);
        CHECK_OK(lt_adapter_new(m, &lc, 1, &a, &err), &err);
        lt_ctx_opts os[] = {{.B = 2, .T = 7, .train = true},
                            {.B = 2, .T = 7, .train = true, .checkpoint = true},
                            {.B = 3, .T = 5},
                            {.B = 1, .T = 16, .train = true}};
        for (size_t i = 0; i < sizeof os / sizeof *os; i++) {
            lt_ctx *c = NULL;
            CHECK_OK(lt_ctx_new(m, &os[i], &c, &err), &err);
            if (!c) continue;
            size_t plan = lt_ctx_plan_bytes(m, &os[i], false), got = lt_ctx_bytes(c);
            CHECK_MSG(plan == got, "%s opts %zu: planned %zu bytes, allocated %zu", fams[f], i,
                      plan, got);
            lt_ctx_free(c);
        }
        lt_adapter_free(a);
        lt_model_free(m);
    }
}

// ---- 2. the plan against a measured run ------------------------------------------------------

// A llama-shaped model: hidden 512, 4 layers, 8 heads (4 kv), ffn 1408, vocab 8000, f32
// (~20 M parameters, 80 MB), normal(0, 0.02) weights, unit norms.
enum { C = 512, L = 4, NH = 8, NKV = 4, F = 1408, V = 8000 };

static bool write_model(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return false;
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
            "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
            "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
            "\"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, "
            "\"tie_word_embeddings\": false, \"hidden_act\": \"silu\", \"torch_dtype\": \"float32\"}\n",
            C, F, L, NH, NKV, V);
    fclose(f);
    lt_rng r;
    lt_rng_seed(&r, 5);
    const int HS = C / NH;
    struct {
        const char *fmt;
        int64_t rows, cols;
        bool norm;
    } t[] = {{"model.layers.%d.self_attn.q_proj.weight", C, C, false},
             {"model.layers.%d.self_attn.k_proj.weight", NKV * HS, C, false},
             {"model.layers.%d.self_attn.v_proj.weight", NKV * HS, C, false},
             {"model.layers.%d.self_attn.o_proj.weight", C, C, false},
             {"model.layers.%d.mlp.gate_proj.weight", F, C, false},
             {"model.layers.%d.mlp.up_proj.weight", F, C, false},
             {"model.layers.%d.mlp.down_proj.weight", C, F, false},
             {"model.layers.%d.input_layernorm.weight", 1, C, true},
             {"model.layers.%d.post_attention_layernorm.weight", 1, C, true}};
    const int nt = (int)(sizeof t / sizeof *t);
    float *bufs[L * 9 + 4] = {0};
    int nb = 0;
    lt_st_writer *w = lt_st_writer_new();
    lt_err err = {0};
    bool ok = w != NULL;
    char names[L * 9 + 4][96];
    for (int i = 0; ok && i < L * nt + 4; i++) {
        int64_t rows, cols;
        bool norm;
        if (i < L * nt) {
            snprintf(names[i], sizeof names[i], t[i % nt].fmt, i / nt);
            rows = t[i % nt].rows, cols = t[i % nt].cols, norm = t[i % nt].norm;
        } else {
            const char *nm[] = {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"};
            if (i - L * nt >= 3) break;
            snprintf(names[i], sizeof names[i], "%s", nm[i - L * nt]);
            rows = i - L * nt < 2 ? V : 1, cols = C, norm = i - L * nt == 2;
        }
        float *d = lt_alloc(sizeof(float) * (size_t)(rows * cols));
        if (!d) {
            ok = false;
            break;
        }
        bufs[nb++] = d;
        for (int64_t j = 0; j < rows * cols; j++) d[j] = norm ? 1.0f : 0.02f * lt_rng_normal(&r);
        int64_t shape[2] = {rows, cols};
        ok = lt_st_writer_add(w, names[i], LT_DTYPE_F32, norm ? 1 : 2, norm ? shape + 1 : shape, d,
                              &err) == LT_OK;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (ok) ok = lt_st_writer_write(w, p, &err) == LT_OK;
    if (!ok) fprintf(stderr, "writing the model: %s\n", err.msg);
    lt_st_writer_free(w);
    for (int i = 0; i < nb; i++) lt_free(bufs[i]);
    return ok;
}

// 6 examples of 128 random token ids.
static bool write_data(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    lt_rng r;
    lt_rng_seed(&r, 9);
    for (int e = 0; e < 6; e++) {
        fprintf(f, "{\"input_ids\": [");
        for (int t = 0; t < 128; t++)
            fprintf(f, "%s%d", t ? ", " : "", (int)lt_rng_below(&r, V));
        fprintf(f, "]}\n");
    }
    fclose(f);
    return true;
}

// Runs cmd through sh and returns its stdout (lt_free), or NULL.
static char *run_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = lt_alloc(cap);
    if (buf)
        for (size_t k; (k = fread(buf + n, 1, cap - 1 - n, p)) > 0 && n + k < cap - 1;) n += k;
    pclose(p);
    if (buf) buf[n] = 0;
    return buf;
}

static cJSON *run_plan(const char *cmd) {
    char *out = run_capture(cmd);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    if (!j) fprintf(stderr, "plan output not JSON: %s\n", out ? out : "(none)");
    lt_free(out);
    return j;
}

static double jnum(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

// Peak RSS (bytes) of `bin args...` run in a child, or 0 on failure.
static size_t child_peak_rss(const char *bin, char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

static void test_plan_vs_measured(const char *bin) {
    char mdir[300], data[300], out[300], cmd[2048];
    snprintf(mdir, sizeof mdir, "%s/model", tmpdir);
    snprintf(data, sizeof data, "%s/data.ids.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/out", tmpdir);
    mkdir(mdir, 0755);
    if (!write_model(mdir) || !write_data(data)) {
        CHECK_MSG(false, "could not write the test model or data in %s", tmpdir);
        return;
    }
    const char *flags = "--batch 2 --seq 128 --r 8 --dropout 0 --quiet";
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s %s --plan --json", bin, mdir, data,
             flags);
    cJSON *j = run_plan(cmd);
    CHECK(j != NULL);
    if (!j) return;
    double plan = jnum(j, "total_bytes"), weights = jnum(j, "weights_bytes");
    // weights: 4 x 2.95 M projection params + the 8000-row LM head in f32, plus some embedding
    // rows: between 63 and 80 MB
    CHECK_MSG(weights > 63e6 && weights < 80e6, "planned weights %.1f MB", weights / 1e6);
    CHECK_MSG(jnum(j, "acts_bytes") > 1e6, "planned activations %.0f bytes", jnum(j, "acts_bytes"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "fits")));
    cJSON_Delete(j);
    if (UNDER_ASAN) {
        fprintf(stderr, "SKIP plan vs measured RSS: AddressSanitizer inflates the RSS\n");
        return;
    }
    char *argv[] = {(char *)bin, "train", "--model", mdir, "--data", data, "--batch", "2",
                    "--seq", "128", "--r", "8", "--dropout", "0", "--quiet", "--max-steps", "2",
                    "--out", out, NULL};
    size_t got = child_peak_rss(bin, argv);
    CHECK_MSG(got > 0, "%s train failed", bin);
    if (!got) return;
    double rel = (plan - (double)got) / (double)got;
    printf("plan %.1f MB, measured peak %.1f MB (%+.1f%%)\n", plan / 1e6, (double)got / 1e6,
           100 * rel);
    CHECK_MSG(fabs(rel) <= 0.15, "planned %.1f MB vs measured %.1f MB: %+.1f%%", plan / 1e6,
              (double)got / 1e6, 100 * rel);
}

// ---- 3. suggestions when memory is short -------------------------------------------------------

static void test_suggestions(const char *bin) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LT_MEM_AVAILABLE_MB=1 %s train --model %s/model --data %s/data.ids.jsonl --batch 4 "
             "--seq 128 --r 8 --plan --json",
             bin, tmpdir, tmpdir);
    cJSON *j = run_plan(cmd);
    CHECK(j != NULL);
    if (!j) return;
    double total = jnum(j, "total_bytes"), budget = jnum(j, "budget_bytes");
    CHECK_MSG(budget > 0 && total > budget, "total %.0f, budget %.0f", total, budget);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "fits")));
    const cJSON *s, *arr = cJSON_GetObjectItemCaseSensitive(j, "suggestions");
    int n = 0, seen_ckpt = 0, seen_4bit = 0, seen_batch = 0;
    cJSON_ArrayForEach(s, arr) {
        const char *fl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "flags"));
        double t = jnum(s, "total_bytes");
        n++;
        CHECK_MSG(fl && t > 0 && t < total, "suggestion %s plans %.0f >= %.0f", fl ? fl : "?", t,
                  total);
        bool fits = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "fits"));
        CHECK(fits == (t <= budget));
        if (fl && !strcmp(fl, "--grad-checkpoint")) seen_ckpt = 1;
        if (fl && !strcmp(fl, "--load-in-4bit")) seen_4bit = 1;
        if (fl && strstr(fl, "--batch 1 --accum 4")) seen_batch = 1;
    }
    CHECK_MSG(n >= 5 && seen_ckpt && seen_4bit && seen_batch, "%d suggestions", n);
    cJSON_Delete(j);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lt_test_plan_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    lt_log_set_level(LT_LOG_WARN);
    test_ctx_bytes();
    const char *b = getenv("BUILD");
    char bin[300];
    snprintf(bin, sizeof bin, "%s/loratune", b && *b ? b : "build");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "SKIP CLI: %s not built\n", bin);
    } else {
        test_plan_vs_measured(bin);
        test_suggestions(bin);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    TEST_END();
}
