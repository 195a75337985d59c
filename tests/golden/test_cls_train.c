/*
 * test_cls_train.c - sequence-classification training on the tiny llama fixture
 * (tests/fixtures/llama/model, 2 layers, d = 64): a synthetic 3-class task whose class is the
 * token range a sequence is drawn from. Checks: the loss goes down; the best checkpoint is the
 * step with the best validation metric (macro-F1, or the lowest loss) and the adapter ends with
 * those parameters (re-evaluating gives the same figures; best/ reloads through PEFT with the same
 * head); report.json, best.json, metrics.jsonl and curves.svg hold what they promise; a run killed
 * after 25 steps and resumed ends exactly as the uninterrupted one; class weights normalise as
 * torch's weighted mean. Also the helpers: label sets, stratified splits, balanced subsamples,
 * class-weight specs, truncation that keeps the template's end. Runs in about a second.
 */
#include "io/io.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"
#include "test.h"

#include <unistd.h>

#define K 3

// Class c: tokens drawn from [20 + 60 c, 20 + 60 c + 50), lengths 4..12 (pad id 0 never drawn).
static void make_set(lt_cls_data *d, int n, uint64_t seed) {
    lt_rng r;
    lt_rng_seed(&r, seed);
    lt_err err = {0};
    lt_cls_data_init(d, K);
    for (int i = 0; i < n; i++) {
        int c = i % K, len = 4 + (int)lt_rng_below(&r, 9);
        int32_t ids[16];
        ids[0] = 1; // BOS
        for (int t = 1; t < len; t++) ids[t] = 20 + 60 * c + (int32_t)lt_rng_below(&r, 50);
        CHECK_OK(lt_cls_data_add(d, ids, len, c, &err), &err);
    }
}

static void test_helpers(void) {
    lt_err err = {0};
    lt_cls_labels l = {0};
    const char *v1[6] = {"spam", "ham", "spam", "ham", "eggs", "ham"};
    CHECK_OK(lt_cls_labels_from_values(&l, v1, 6, &err), &err);
    CHECK(l.n == 3 && !strcmp(l.names[0], "eggs") && !strcmp(l.names[1], "ham") &&
          !strcmp(l.names[2], "spam"));
    CHECK(lt_cls_labels_find(&l, "spam") == 2 && lt_cls_labels_find(&l, "x") == -1);
    lt_cls_labels_deinit(&l);
    const char *v2[4] = {"10", "9", "0", "9"}; // integers sort as numbers
    CHECK_OK(lt_cls_labels_from_values(&l, v2, 4, &err), &err);
    CHECK(l.n == 3 && !strcmp(l.names[0], "0") && !strcmp(l.names[1], "9") &&
          !strcmp(l.names[2], "10"));
    lt_cls_labels_deinit(&l);
    CHECK_OK(lt_cls_labels_parse(&l, "neg,neu,pos", &err), &err);
    CHECK(l.n == 3 && !strcmp(l.names[1], "neu"));
    lt_cls_labels_deinit(&l);
    CHECK(lt_cls_labels_parse(&l, "a,b,a", &err) == LT_ERR_ARG && l.n == 0);
    CHECK(lt_cls_labels_parse(&l, "a,,b", &err) == LT_ERR_ARG);
    CHECK(lt_cls_labels_from_values(&l, v1, 0, &err) == LT_ERR_ARG);

    // class weights: sklearn "balanced" = n / (K * count)
    int64_t counts[3] = {6, 3, 0};
    float w[3];
    bool filled;
    CHECK_OK(lt_cls_class_weights("auto", counts, 3, w, &filled, &err), &err);
    CHECK(filled && fabsf(w[0] - 0.5f) < 1e-6f && fabsf(w[1] - 1.0f) < 1e-6f && w[2] == 0);
    CHECK_OK(lt_cls_class_weights("none", counts, 3, w, &filled, &err), &err);
    CHECK(!filled);
    CHECK_OK(lt_cls_class_weights("1,2.5,0", counts, 3, w, &filled, &err), &err);
    CHECK(filled && w[1] == 2.5f);
    CHECK(lt_cls_class_weights("1,2", counts, 3, w, &filled, &err) == LT_ERR_ARG);
    CHECK(lt_cls_class_weights("1,2,3,4", counts, 3, w, &filled, &err) == LT_ERR_ARG);
    CHECK(lt_cls_class_weights("1,-2,3", counts, 3, w, &filled, &err) == LT_ERR_ARG);

    // stratified 70/10/20 split of 100 + 30 examples (class 2 empty, one unlabelled)
    int32_t y[131];
    for (int i = 0; i < 130; i++) y[i] = i < 100 ? 0 : 1;
    y[130] = -1;
    int8_t part[131], part2[131];
    const double fr[3] = {70, 10, 20};
    CHECK_OK(lt_cls_split(y, 131, 3, fr, 3, 7, part, &err), &err);
    int cnt[2][3] = {{0}};
    for (int i = 0; i < 130; i++) cnt[y[i]][part[i]]++;
    CHECK(cnt[0][0] == 70 && cnt[0][1] == 10 && cnt[0][2] == 20);
    CHECK(cnt[1][0] == 21 && cnt[1][1] == 3 && cnt[1][2] == 6);
    CHECK(part[130] == -1);
    CHECK_OK(lt_cls_split(y, 131, 3, fr, 3, 7, part2, &err), &err);
    CHECK(!memcmp(part, part2, sizeof part)); // seeded
    CHECK_OK(lt_cls_split(y, 131, 3, fr, 3, 8, part2, &err), &err);
    CHECK(memcmp(part, part2, sizeof part) != 0);
    const double bad[3] = {0, 0, 0};
    CHECK(lt_cls_split(y, 131, 3, bad, 3, 7, part, &err) == LT_ERR_ARG);
    // balanced subsample: 30 of each; a cap of 50: 50 and 30
    CHECK_OK(lt_cls_subsample(y, 131, 3, 0, 1, part, &err), &err);
    int kept[2] = {0, 0};
    for (int i = 0; i < 130; i++) kept[y[i]] += part[i];
    CHECK(kept[0] == 30 && kept[1] == 30 && part[130] == 0);
    CHECK_OK(lt_cls_subsample(y, 131, 3, 50, 1, part, &err), &err);
    kept[0] = kept[1] = 0;
    for (int i = 0; i < 130; i++) kept[y[i]] += part[i];
    CHECK(kept[0] == 50 && kept[1] == 30);

    // truncation keeps the start and the template's end
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load_hf("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", NULL,
                                  &tok, &err),
             &err);
    if (tok) {
        const char *text =
            "one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty\nLabel:";
        lt_ids full = {0}, cut = {0};
        bool tr;
        CHECK_OK(lt_cls_encode(tok, text, strlen(text), 1000, 3, &full, &tr, &err), &err);
        CHECK(!tr && full.n > 12);
        CHECK_OK(lt_cls_encode(tok, text, strlen(text), 10, 3, &cut, &tr, &err), &err);
        CHECK(tr && cut.n == 10);
        if (tr && cut.n == 10 && full.n > 12) {
            CHECK(!memcmp(cut.ids, full.ids, 7 * sizeof(int32_t)));
            CHECK(!memcmp(cut.ids + 7, full.ids + full.n - 3, 3 * sizeof(int32_t)));
        }
        lt_ids_deinit(&full), lt_ids_deinit(&cut);
        lt_tokenizer_free(tok);
    }
}

static bool file_in(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lt_file_exists(p);
}

typedef struct run_out {
    lt_cls_train_result res;
    float *params; // a->params at return (the best)
    int64_t np;
} run_out;

static lt_status run(lt_model *m, const lt_cls_data *tr, const lt_cls_data *va,
                     const lt_cls_data *te, const char *dir, const char *metric, int64_t stop_after,
                     bool resume, int save_every, run_out *out, lt_err *err) {
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1f, .layer_hi = -1, .n_labels = K};
    lt_status st = lt_lora_parse_targets(m, "all", &lc.targets, err);
    lt_adapter *a = NULL;
    if (!st) st = lt_adapter_new(m, &lc, 11, &a, err);
    if (st) return st;
    lt_cls_train_opts o;
    lt_cls_train_opts_default(&o);
    o.t.lr = 1e-2f, o.t.B = 4, o.t.T = 16, o.t.max_steps = 40, o.t.eval_every = 10;
    o.t.warmup_steps = 4, o.t.seed = 5, o.t.quiet = true, o.t.out_dir = dir;
    o.t.stop_after = stop_after, o.t.resume = resume, o.t.save_every = save_every;
    char mp[512];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", dir);
    o.t.metrics_path = mp;
    o.pad_id = 0;
    o.best_metric = metric;
    static const char *names[K] = {"low", "mid", "high"};
    o.label_names = names;
    o.labels_json = "{\"labels\": [\"low\", \"mid\", \"high\"]}\n";
    memset(out, 0, sizeof *out);
    st = lt_cls_train(m, a, tr, va, te, &o, &out->res, err);
    if (!st) {
        out->np = a->n_params;
        out->params = lt_alloc(sizeof(float) * (size_t)a->n_params);
        if (out->params) memcpy(out->params, a->params, sizeof(float) * (size_t)a->n_params);
        // a ends with the best parameters: validating again gives the best figures
        if (out->res.best_step >= 0 && out->res.steps == 40) {
            lt_cls_metrics met;
            CHECK_OK(lt_cls_metrics_init(&met, K, err), err);
            lt_cls_head h = {.n_labels = K, .pad_id = 0, .w = a->score};
            CHECK_OK(lt_cls_evaluate(m, NULL, 4, 16, &h, va, &met, NULL, err), err);
            CHECK_MSG(met.macro_f1 == out->res.val.macro_f1 &&
                          fabs(met.loss - out->res.val.loss) < 1e-9,
                      "re-evaluated F1 %.6f loss %.6f, best %.6f %.6f", met.macro_f1, met.loss,
                      out->res.val.macro_f1, out->res.val.loss);
            lt_cls_metrics_deinit(&met);
        }
    }
    lt_adapter_free(a);
    return st;
}

static void free_out(run_out *o) {
    lt_cls_train_result_deinit(&o->res);
    lt_free(o->params);
}

static void test_training(lt_model *m) {
    lt_err err = {0};
    lt_cls_data tr, va, te;
    make_set(&tr, 60, 1);
    make_set(&va, 24, 2);
    make_set(&te, 24, 3);
    char dir[128], dir2[128], dir3[128], cmd[512];
    snprintf(dir, sizeof dir, "/tmp/lt_clst_%d_a", (int)getpid());
    snprintf(dir2, sizeof dir2, "/tmp/lt_clst_%d_b", (int)getpid());
    snprintf(dir3, sizeof dir3, "/tmp/lt_clst_%d_c", (int)getpid());
    run_out A = {0}, Bk = {0}, Br = {0}, L = {0};

    // 1. uninterrupted run, best by macro-F1
    CHECK_OK(run(m, &tr, &va, &te, dir, "macro_f1", 0, false, 10, &A, &err), &err);
    const lt_cls_train_result *r = &A.res;
    CHECK(r->steps == 40 && r->examples_seen == 160 && r->n_hist == 4);
    double first = r->n_hist ? r->hist[0].train_loss : NAN,
           last = r->n_hist ? r->hist[r->n_hist - 1].train_loss : NAN;
    CHECK_MSG(last < 0.5 * first, "training loss %.4f -> %.4f", first, last);
    CHECK_MSG(r->val_final.accuracy > 0.8, "validation accuracy %.3f", r->val_final.accuracy);
    // the best step is the first with the highest validation macro-F1
    int bi = 0;
    for (int i = 1; i < r->n_hist; i++)
        if (r->hist[i].val_f1 > r->hist[bi].val_f1) bi = i;
    CHECK(r->n_hist > 0 && r->best_step == r->hist[bi].step && r->best_value == r->hist[bi].val_f1);
    CHECK(r->val.macro_f1 == r->best_value && r->val.n == 24 && r->test.n == 24);
    CHECK_MSG(!isnan(r->test.macro_f1) && r->test.accuracy > 0.8, "test accuracy %.3f",
              r->test.accuracy);
    // files
    CHECK(file_in(dir, "adapter_config.json") && file_in(dir, "adapter_model.safetensors") &&
          file_in(dir, "labels.json") && file_in(dir, "report.json") &&
          file_in(dir, "curves.svg") && file_in(dir, "best/adapter_model.safetensors") &&
          file_in(dir, "best/labels.json") && file_in(dir, "best/best.json") &&
          !file_in(dir, "checkpoint.safetensors"));
    char p[512];
    snprintf(p, sizeof p, "%s/report.json", dir);
    cJSON *j = NULL;
    CHECK_OK(lt_json_parse_file(p, &j, &err), &err);
    if (j) {
        CHECK(!strcmp(lt_json_str(j, "task", ""), "classify"));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "labels")) == K);
        const cJSON *best = cJSON_GetObjectItem(j, "best"), *test = cJSON_GetObjectItem(j, "test");
        CHECK(lt_json_int(best, "step", -1) == r->best_step &&
              !strcmp(lt_json_str(best, "metric", ""), "macro_f1"));
        CHECK(lt_json_int(test, "n", 0) == 24 &&
              fabs(lt_json_num(test, "accuracy", -1) - r->test.accuracy) < 1e-5);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(test, "confusion_matrix"),
                                                     "matrix")) == K);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(test, "per_class")) == K);
        CHECK(cJSON_GetObjectItem(j, "validation") && cJSON_GetObjectItem(j, "validation_final"));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "history")) == 4);
        char *s = cJSON_PrintUnformatted(j);
        CHECK(s && !strstr(s, "nan") && !strstr(s, "inf"));
        cJSON_free(s);
        cJSON_Delete(j);
    }
    // metrics.jsonl: 40 step lines, 4 validation lines
    char *mt = NULL;
    size_t mn = 0;
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    CHECK_OK(lt_read_file(p, &mt, &mn, &err), &err);
    int steps = 0, evals = 0;
    for (char *q = mt; q && (q = strstr(q, "{\"step\"")); q++) {
        char *e = strchr(q, '\n');
        if (!e) break;
        if (memmem(q, (size_t)(e - q), "\"split\": \"validation\"",
                   strlen("\"split\": \"validation\"")))
            evals++;
        else
            steps++;
    }
    CHECK_MSG(steps == 40 && evals == 4, "%d step lines, %d validation lines", steps, evals);
    lt_free(mt);
    // best/ reloads through PEFT with the head the run ended with
    lt_adapter *b = NULL;
    snprintf(p, sizeof p, "%s/best", dir);
    CHECK_OK(lt_adapter_load_peft(m, p, &b, &err), &err);
    if (b && A.params) {
        CHECK(b->n_labels == K && b->n_params == A.np);
        CHECK(!memcmp(b->score, A.params + (b->score - b->params),
                      sizeof(float) * K * (size_t)m->cfg.n_embd));
    }
    lt_adapter_free(b);

    // 2. killed after 25 steps (checkpoints every 10), resumed: the same end as run 1
    CHECK_OK(run(m, &tr, &va, &te, dir2, "macro_f1", 25, false, 10, &Bk, &err), &err);
    CHECK(Bk.res.steps == 25 && file_in(dir2, "checkpoint.safetensors"));
    CHECK_OK(run(m, &tr, &va, &te, dir2, "macro_f1", 0, true, 10, &Br, &err), &err);
    CHECK(Br.res.steps == 40 && Br.res.n_hist == 4);
    CHECK(Br.res.best_step == A.res.best_step && Br.res.best_value == A.res.best_value);
    CHECK(Br.res.test.macro_f1 == A.res.test.macro_f1 && Br.res.test.loss == A.res.test.loss);
    CHECK_MSG(A.params && Br.params && A.np == Br.np &&
                  !memcmp(A.params, Br.params, sizeof(float) * (size_t)A.np),
              "resumed run ends with other parameters");
    for (int i = 0; i < 4 && i < Br.res.n_hist; i++)
        CHECK(Br.res.hist[i].val_f1 == A.res.hist[i].val_f1 &&
              Br.res.hist[i].train_loss == A.res.hist[i].train_loss);

    // 3. best by validation loss: the step with the lowest loss
    CHECK_OK(run(m, &tr, &va, &te, dir3, "loss", 0, false, 0, &L, &err), &err);
    int li = 0;
    for (int i = 1; i < L.res.n_hist; i++)
        if (L.res.hist[i].val_loss < L.res.hist[li].val_loss) li = i;
    CHECK(L.res.n_hist > 0 && L.res.best_step == L.res.hist[li].step &&
          L.res.val.loss == L.res.hist[li].val_loss);

    // 4. class weights: uniform weights leave the (normalised) loss unchanged; others change it
    {
        lt_lora_config lc = {.r = 4, .alpha = 8, .layer_hi = -1, .n_labels = K};
        lt_adapter *a = NULL;
        CHECK_OK(lt_lora_parse_targets(m, "all", &lc.targets, &err), &err);
        CHECK_OK(lt_adapter_new(m, &lc, 3, &a, &err), &err);
        lt_cls_metrics m0, m1, m2;
        lt_cls_metrics_init(&m0, K, &err), lt_cls_metrics_init(&m1, K, &err),
            lt_cls_metrics_init(&m2, K, &err);
        const float w2[K] = {2, 2, 2}, w3[K] = {1, 5, 1};
        lt_cls_head h = {.n_labels = K, .pad_id = 0, .w = a ? a->score : NULL};
        if (a) {
            CHECK_OK(lt_cls_evaluate(m, NULL, 5, 16, &h, &va, &m0, NULL, &err), &err);
            h.class_w = w2;
            CHECK_OK(lt_cls_evaluate(m, NULL, 5, 16, &h, &va, &m1, NULL, &err), &err);
            h.class_w = w3;
            CHECK_OK(lt_cls_evaluate(m, NULL, 5, 16, &h, &va, &m2, NULL, &err), &err);
            CHECK(fabs(m0.loss - m1.loss) < 1e-6 && fabs(m0.loss - m2.loss) > 1e-6);
            CHECK(m0.n == 24 && m0.accuracy == m2.accuracy); // weights change the loss only
            // errors: no head, unknown metric
            lt_cls_train_opts o;
            lt_cls_train_opts_default(&o);
            o.t.quiet = true;
            o.best_metric = "f2";
            o.t.max_steps = 1;
            lt_cls_train_result res;
            CHECK(lt_cls_train(m, a, &tr, &va, NULL, &o, &res, &err) == LT_ERR_ARG &&
                  strstr(err.msg, "f2"));
            lt_cls_train_result_deinit(&res);
        }
        lt_cls_metrics_deinit(&m0), lt_cls_metrics_deinit(&m1), lt_cls_metrics_deinit(&m2);
        lt_adapter_free(a);
    }

    free_out(&A), free_out(&Bk), free_out(&Br), free_out(&L);
    lt_cls_data_deinit(&tr), lt_cls_data_deinit(&va), lt_cls_data_deinit(&te);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", dir, dir2, dir3);
    CHECK(system(cmd) == 0);
}

int main(void) {
    double t0 = lt_time_sec();
    test_helpers();
    lt_err err = {0};
    lt_model *m = NULL;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (m) test_training(m);
    lt_model_free(m);
    fprintf(stderr, "test_cls_train: %.2f s\n", lt_time_sec() - t0);
    TEST_END();
}
