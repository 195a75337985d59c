/*
 * test_cls_metrics.c - classification metrics against cases computed by hand (the numbers are
 * what sklearn.metrics.precision_recall_fscore_support(..., zero_division=0) and
 * confusion_matrix give for the same lists): a class never predicted, a class absent from gold,
 * a class absent from both, single-class sets, an empty set; no NaN or inf in any report.
 */
#include "eval/cls_metrics.h"
#include "test.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static void add_all(lt_cls_metrics *m, const int *gold, const int *pred, int n) {
    lt_err err = {0};
    for (int i = 0; i < n; i++) CHECK_OK(lt_cls_metrics_add(m, gold[i], pred[i], &err), &err);
    lt_cls_metrics_compute(m);
}

// The JSON and text reports exist and hold no NaN / inf.
static void check_reports(const lt_cls_metrics *m, const char *const *names) {
    cJSON *j = lt_cls_metrics_json(m, names);
    CHECK(j != NULL);
    if (!j) return;
    char *s = cJSON_PrintUnformatted(j);
    CHECK(s && !strstr(s, "nan") && !strstr(s, "inf") && !strstr(s, "NaN"));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_class")) == m->n_labels);
    const cJSON *cm = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "confusion_matrix"), "matrix");
    CHECK(cJSON_GetArraySize(cm) == m->n_labels);
    int64_t tot = 0;
    const cJSON *row, *v;
    cJSON_ArrayForEach(row, cm) cJSON_ArrayForEach(v, row) tot += (int64_t)v->valuedouble;
    CHECK(tot == m->n);
    cJSON_free(s);
    cJSON_Delete(j);
    char buf[4096];
    size_t need = lt_cls_metrics_format(m, names, buf, sizeof buf);
    CHECK(need < sizeof buf && strstr(buf, "confusion matrix") && !strstr(buf, "nan"));
    char tiny[16]; // cut output stays terminated and reports the full length
    size_t need2 = lt_cls_metrics_format(m, names, tiny, sizeof tiny);
    CHECK(need2 == need && strlen(tiny) == sizeof tiny - 1);
}

// Three classes; class 2 is in gold once and never predicted.
static void test_never_predicted(void) {
    lt_cls_metrics m;
    lt_err err = {0};
    CHECK_OK(lt_cls_metrics_init(&m, 3, &err), &err);
    const int gold[6] = {0, 0, 0, 1, 1, 2}, pred[6] = {0, 0, 1, 1, 0, 0};
    add_all(&m, gold, pred, 6);
    // confusion (rows gold): [2 1 0; 1 1 0; 1 0 0]
    const int64_t cm[9] = {2, 1, 0, 1, 1, 0, 1, 0, 0};
    CHECK(!memcmp(m.confusion, cm, sizeof cm));
    CHECK(m.n == 6 && NEAR(m.accuracy, 0.5));
    CHECK(NEAR(m.precision[0], 0.5) && NEAR(m.recall[0], 2.0 / 3) && NEAR(m.f1[0], 4.0 / 7));
    CHECK(NEAR(m.precision[1], 0.5) && NEAR(m.recall[1], 0.5) && NEAR(m.f1[1], 0.5));
    CHECK(m.precision[2] == 0 && m.recall[2] == 0 && m.f1[2] == 0 && m.present[2]); // 0/0 -> 0
    CHECK(m.n_present == 3);
    CHECK(NEAR(m.macro_precision, 1.0 / 3) && NEAR(m.macro_recall, 7.0 / 18) &&
          NEAR(m.macro_f1, 5.0 / 14));
    CHECK(NEAR(m.weighted_f1, 19.0 / 42));
    CHECK(m.support[0] == 3 && m.n_pred[0] == 4 && m.n_pred[2] == 0);
    const char *names[3] = {"neg", "pos", "neutral"};
    check_reports(&m, names);
    double v;
    bool hi;
    CHECK(lt_cls_metrics_get(&m, "macro_f1", &v, &hi) && NEAR(v, 5.0 / 14) && hi);
    CHECK(lt_cls_metrics_get(&m, "loss", &v, &hi) && !hi);
    CHECK(!lt_cls_metrics_get(&m, "f2", &v, &hi));
    // out-of-range classes are refused and change nothing
    CHECK(lt_cls_metrics_add(&m, 3, 0, &err) == LT_ERR_ARG && strstr(err.msg, "outside"));
    CHECK(lt_cls_metrics_add(&m, 0, -1, &err) == LT_ERR_ARG);
    CHECK(m.n == 6);
    // reset forgets the examples
    lt_cls_metrics_reset(&m);
    lt_cls_metrics_compute(&m);
    CHECK(m.n == 0 && m.accuracy == 0 && m.macro_f1 == 0 && isnan(m.loss));
    check_reports(&m, NULL);
    lt_cls_metrics_deinit(&m);
}

// Class 2 is predicted once but never in gold: it counts in the macro average with zeros.
static void test_absent_from_gold(void) {
    lt_cls_metrics m;
    lt_err err = {0};
    CHECK_OK(lt_cls_metrics_init(&m, 3, &err), &err);
    const int gold[3] = {0, 0, 1}, pred[3] = {0, 2, 1};
    add_all(&m, gold, pred, 3);
    CHECK(NEAR(m.precision[0], 1) && NEAR(m.recall[0], 0.5) && NEAR(m.f1[0], 2.0 / 3));
    CHECK(NEAR(m.f1[1], 1));
    CHECK(m.present[2] && m.support[2] == 0 && m.precision[2] == 0 && m.recall[2] == 0 &&
          m.f1[2] == 0);
    CHECK(NEAR(m.macro_precision, 2.0 / 3) && NEAR(m.macro_recall, 0.5) &&
          NEAR(m.macro_f1, 5.0 / 9));
    CHECK(NEAR(m.accuracy, 2.0 / 3));
    m.loss = 0.25;
    check_reports(&m, NULL);
    lt_cls_metrics_deinit(&m);
}

// Classes 2 and 3 never occur: not present, not in the macro average (sklearn's default labels).
static void test_absent_from_both(void) {
    lt_cls_metrics m;
    lt_err err = {0};
    CHECK_OK(lt_cls_metrics_init(&m, 4, &err), &err);
    const int gold[2] = {0, 1}, pred[2] = {0, 1};
    add_all(&m, gold, pred, 2);
    CHECK(m.n_present == 2 && !m.present[2] && !m.present[3]);
    CHECK(NEAR(m.macro_f1, 1) && NEAR(m.macro_precision, 1) && NEAR(m.macro_recall, 1));
    CHECK(NEAR(m.weighted_f1, 1) && NEAR(m.accuracy, 1));
    check_reports(&m, NULL);
    lt_cls_metrics_deinit(&m);
}

// Single-class sets: all right, all wrong, and a one-class label set.
static void test_single_class(void) {
    lt_cls_metrics m, c;
    lt_err err = {0};
    CHECK_OK(lt_cls_metrics_init(&m, 2, &err), &err);
    const int g1[3] = {1, 1, 1}, p1[3] = {1, 1, 1};
    add_all(&m, g1, p1, 3);
    CHECK(NEAR(m.accuracy, 1) && NEAR(m.macro_f1, 1) && m.n_present == 1 && !m.present[0]);
    check_reports(&m, NULL);
    CHECK_OK(lt_cls_metrics_init(&c, 2, &err), &err);
    lt_cls_metrics_copy(&c, &m);
    CHECK(c.n == 3 && c.macro_f1 == m.macro_f1 && c.confusion[3] == 3);
    lt_cls_metrics_deinit(&c);
    lt_cls_metrics_reset(&m);
    const int g2[2] = {1, 1}, p2[2] = {0, 0}; // gold only 1, predictions only 0
    add_all(&m, g2, p2, 2);
    CHECK(m.accuracy == 0 && m.macro_f1 == 0 && m.macro_precision == 0 && m.macro_recall == 0);
    CHECK(m.n_present == 2 && m.f1[0] == 0 && m.f1[1] == 0);
    check_reports(&m, NULL);
    lt_cls_metrics_deinit(&m);
    CHECK_OK(lt_cls_metrics_init(&m, 1, &err), &err); // K = 1
    const int g3[2] = {0, 0};
    add_all(&m, g3, g3, 2);
    CHECK(NEAR(m.accuracy, 1) && NEAR(m.macro_f1, 1));
    check_reports(&m, NULL);
    lt_cls_metrics_deinit(&m);
    CHECK(lt_cls_metrics_init(&m, 0, &err) == LT_ERR_ARG);
    lt_cls_metrics_deinit(&m); // a zeroed struct is fine
}

// Allocation failures at every point of init and of the JSON report: errors, never crashes.
static void test_alloc_failures(void) {
    int failed = 0;
    for (long k = 0; k < 200; k++) {
        lt_cls_metrics m;
        lt_err err = {0};
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(k);
        lt_status st = lt_cls_metrics_init(&m, 3, &err);
        if (!st) {
            const int g[2] = {0, 2}, p[2] = {0, 1};
            for (int i = 0; i < 2; i++) lt_cls_metrics_add(&m, g[i], p[i], &err);
            lt_cls_metrics_compute(&m);
            cJSON *j = lt_cls_metrics_json(&m, NULL);
            cJSON_Delete(j);
            lt_cls_metrics_deinit(&m);
        } else {
            failed += st == LT_ERR_OOM;
        }
        long inj = lt_alloc_injected_failures();
        lt_alloc_fail_after(-1);
        if (inj == before) break; // every allocation succeeded: nothing left to fail
    }
    CHECK(failed > 0);
}

int main(void) {
    test_never_predicted();
    test_absent_from_gold();
    test_absent_from_both();
    test_single_class();
    test_alloc_failures();
    TEST_END();
}
