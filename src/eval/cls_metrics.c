/*
 * cls_metrics.c - accuracy, per-class and macro precision / recall / F1 and the confusion matrix
 * (rules in cls_metrics.h: scikit-learn's, with zero_division = 0). Counts are integers; figures
 * are computed from them in double, so no division by zero can reach a report.
 * Not here: what a prediction is (argmax of the model's scores, done by the caller).
 */
#include "eval/cls_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

lt_status lt_cls_metrics_init(lt_cls_metrics *m, int n_labels, lt_err *err) {
    memset(m, 0, sizeof *m);
    if (n_labels < 1 || n_labels > 1 << 16)
        return lt_err_set(err, LT_ERR_ARG, "number of classes %d is not in [1, 65536]", n_labels);
    size_t K = (size_t)n_labels;
    m->n_labels = n_labels;
    m->confusion = lt_calloc(K * K, sizeof(int64_t));
    m->support = lt_calloc(K, sizeof(int64_t));
    m->n_pred = lt_calloc(K, sizeof(int64_t));
    m->precision = lt_calloc(K, sizeof(double));
    m->recall = lt_calloc(K, sizeof(double));
    m->f1 = lt_calloc(K, sizeof(double));
    m->present = lt_calloc(K, sizeof(bool));
    if (!m->confusion || !m->support || !m->n_pred || !m->precision || !m->recall || !m->f1 ||
        !m->present) {
        lt_cls_metrics_deinit(m);
        return lt_err_set(err, LT_ERR_OOM, "out of memory for metrics of %d classes", n_labels);
    }
    lt_cls_metrics_reset(m);
    return LT_OK;
}

void lt_cls_metrics_deinit(lt_cls_metrics *m) {
    lt_free(m->confusion), lt_free(m->support), lt_free(m->n_pred);
    lt_free(m->precision), lt_free(m->recall), lt_free(m->f1), lt_free(m->present);
    memset(m, 0, sizeof *m);
}

void lt_cls_metrics_reset(lt_cls_metrics *m) {
    size_t K = (size_t)m->n_labels;
    memset(m->confusion, 0, sizeof(int64_t) * K * K);
    memset(m->support, 0, sizeof(int64_t) * K);
    memset(m->n_pred, 0, sizeof(int64_t) * K);
    memset(m->precision, 0, sizeof(double) * K);
    memset(m->recall, 0, sizeof(double) * K);
    memset(m->f1, 0, sizeof(double) * K);
    memset(m->present, 0, sizeof(bool) * K);
    m->n = 0;
    m->n_present = 0;
    m->accuracy = m->macro_precision = m->macro_recall = m->macro_f1 = m->weighted_f1 = 0;
    m->loss = NAN;
}

lt_status lt_cls_metrics_add(lt_cls_metrics *m, int gold, int pred, lt_err *err) {
    if (gold < 0 || gold >= m->n_labels || pred < 0 || pred >= m->n_labels)
        return lt_err_set(err, LT_ERR_ARG, "class pair (gold %d, predicted %d) outside [0, %d)",
                          gold, pred, m->n_labels);
    m->confusion[(size_t)gold * (size_t)m->n_labels + (size_t)pred]++;
    m->support[gold]++;
    m->n_pred[pred]++;
    m->n++;
    return LT_OK;
}

static double ratio(int64_t a, int64_t b) {
    return b > 0 ? (double)a / (double)b : 0.0;
}

void lt_cls_metrics_compute(lt_cls_metrics *m) {
    const int K = m->n_labels;
    int64_t correct = 0;
    double sp = 0, sr = 0, sf = 0, wf = 0;
    m->n_present = 0;
    for (int k = 0; k < K; k++) {
        int64_t tp = m->confusion[(size_t)k * (size_t)K + (size_t)k];
        correct += tp;
        double p = ratio(tp, m->n_pred[k]), r = ratio(tp, m->support[k]);
        m->precision[k] = p;
        m->recall[k] = r;
        m->f1[k] = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        m->present[k] = m->support[k] > 0 || m->n_pred[k] > 0;
        if (m->present[k]) {
            m->n_present++;
            sp += p, sr += r, sf += m->f1[k];
        }
        wf += m->f1[k] * (double)m->support[k];
    }
    m->accuracy = ratio(correct, m->n);
    double np = m->n_present > 0 ? (double)m->n_present : 1.0; // none present: all sums are 0
    m->macro_precision = sp / np;
    m->macro_recall = sr / np;
    m->macro_f1 = sf / np;
    m->weighted_f1 = m->n > 0 ? wf / (double)m->n : 0.0;
}

void lt_cls_metrics_copy(lt_cls_metrics *dst, const lt_cls_metrics *src) {
    LT_ASSERT(dst->n_labels == src->n_labels);
    size_t K = (size_t)src->n_labels;
    memcpy(dst->confusion, src->confusion, sizeof(int64_t) * K * K);
    memcpy(dst->support, src->support, sizeof(int64_t) * K);
    memcpy(dst->n_pred, src->n_pred, sizeof(int64_t) * K);
    memcpy(dst->precision, src->precision, sizeof(double) * K);
    memcpy(dst->recall, src->recall, sizeof(double) * K);
    memcpy(dst->f1, src->f1, sizeof(double) * K);
    memcpy(dst->present, src->present, sizeof(bool) * K);
    dst->n = src->n;
    dst->n_present = src->n_present;
    dst->accuracy = src->accuracy;
    dst->macro_precision = src->macro_precision;
    dst->macro_recall = src->macro_recall;
    dst->macro_f1 = src->macro_f1;
    dst->weighted_f1 = src->weighted_f1;
    dst->loss = src->loss;
}

bool lt_cls_metrics_get(const lt_cls_metrics *m, const char *name, double *value,
                        bool *higher_is_better) {
    struct {
        const char *name;
        double v;
    } t[] = {{"macro_f1", m->macro_f1},
             {"accuracy", m->accuracy},
             {"macro_precision", m->macro_precision},
             {"macro_recall", m->macro_recall},
             {"weighted_f1", m->weighted_f1},
             {"loss", m->loss}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(name, t[i].name)) {
            *value = t[i].v;
            *higher_is_better = strcmp(name, "loss") != 0;
            return true;
        }
    return false;
}

// ---------------------------------------------------------------------------------------------
// reports

// Rounds to 6 significant digits for readable JSON (the counts are exact; the figures are
// ratios of them).
static double r6(double x) {
    if (!isfinite(x) || x == 0) return x;
    double s = pow(10.0, 6 - (int)ceil(log10(fabs(x))));
    return round(x * s) / s;
}

static cJSON *num(double x) {
    return isfinite(x) ? cJSON_CreateNumber(r6(x)) : cJSON_CreateNull();
}

static const char *label_name(const char *const *names, int k, char *buf, size_t n) {
    if (names && names[k]) return names[k];
    snprintf(buf, n, "%d", k);
    return buf;
}

cJSON *lt_cls_metrics_json(const lt_cls_metrics *m, const char *const *names) {
    const int K = m->n_labels;
    char b[32];
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    bool ok = cJSON_AddNumberToObject(j, "n", (double)m->n) != NULL;
    ok &= cJSON_AddItemToObject(j, "loss", num(m->loss));
    ok &= cJSON_AddItemToObject(j, "accuracy", num(m->accuracy));
    ok &= cJSON_AddItemToObject(j, "macro_precision", num(m->macro_precision));
    ok &= cJSON_AddItemToObject(j, "macro_recall", num(m->macro_recall));
    ok &= cJSON_AddItemToObject(j, "macro_f1", num(m->macro_f1));
    ok &= cJSON_AddItemToObject(j, "weighted_f1", num(m->weighted_f1));
    cJSON *pc = cJSON_AddArrayToObject(j, "per_class");
    ok &= pc != NULL;
    for (int k = 0; k < K && ok; k++) {
        cJSON *c = cJSON_CreateObject();
        ok &= c && cJSON_AddItemToArray(pc, c);
        if (!ok) {
            cJSON_Delete(c);
            break;
        }
        ok &= cJSON_AddStringToObject(c, "label", label_name(names, k, b, sizeof b)) != NULL;
        ok &= cJSON_AddItemToObject(c, "precision", num(m->precision[k]));
        ok &= cJSON_AddItemToObject(c, "recall", num(m->recall[k]));
        ok &= cJSON_AddItemToObject(c, "f1", num(m->f1[k]));
        ok &= cJSON_AddNumberToObject(c, "support", (double)m->support[k]) != NULL;
        ok &= cJSON_AddNumberToObject(c, "predicted", (double)m->n_pred[k]) != NULL;
    }
    cJSON *cm = ok ? cJSON_AddObjectToObject(j, "confusion_matrix") : NULL;
    cJSON *lab = cm ? cJSON_AddArrayToObject(cm, "labels") : NULL;
    ok &= lab != NULL;
    for (int k = 0; k < K && ok; k++)
        ok &= cJSON_AddItemToArray(lab, cJSON_CreateString(label_name(names, k, b, sizeof b)));
    ok = ok && cJSON_AddStringToObject(cm, "rows", "gold") &&
         cJSON_AddStringToObject(cm, "columns", "predicted");
    cJSON *mat = ok ? cJSON_AddArrayToObject(cm, "matrix") : NULL;
    ok &= mat != NULL;
    for (int g = 0; g < K && ok; g++) {
        cJSON *row = cJSON_CreateArray();
        ok &= row && cJSON_AddItemToArray(mat, row);
        if (!ok) {
            cJSON_Delete(row);
            break;
        }
        for (int p = 0; p < K && ok; p++)
            ok &= cJSON_AddItemToArray(
                row, cJSON_CreateNumber((double)m->confusion[(size_t)g * (size_t)K + (size_t)p]));
    }
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

typedef struct sbuf {
    char *p;
    size_t n, len;
} sbuf;

LT_PRINTF(2, 3) static void sb_add(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->n ? s->n - s->len : 0;
    int w = vsnprintf(room ? s->p + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (w > 0) s->len += (size_t)w;
}

size_t lt_cls_metrics_format(const lt_cls_metrics *m, const char *const *names, char *buf,
                             size_t n) {
    sbuf s = {buf, n, 0};
    if (n) buf[0] = 0;
    const int K = m->n_labels;
    char b[32];
    int w = 8; // label column width
    for (int k = 0; k < K; k++) {
        int l = (int)strlen(label_name(names, k, b, sizeof b));
        if (l > w) w = l < 24 ? l : 24;
    }
    sb_add(&s, "%-*s %9s %9s %9s %8s %9s\n", w, "class", "precision", "recall", "f1", "support",
           "predicted");
    for (int k = 0; k < K; k++)
        sb_add(&s, "%-*.*s %9.4f %9.4f %9.4f %8lld %9lld%s\n", w, w,
               label_name(names, k, b, sizeof b), m->precision[k], m->recall[k], m->f1[k],
               (long long)m->support[k], (long long)m->n_pred[k],
               m->present[k] ? "" : "  (absent: not in macro)");
    sb_add(&s, "%-*s %9.4f %9.4f %9.4f %8lld\n", w, "macro", m->macro_precision, m->macro_recall,
           m->macro_f1, (long long)m->n);
    sb_add(&s, "accuracy %.4f (%lld examples), weighted F1 %.4f", m->accuracy, (long long)m->n,
           m->weighted_f1);
    if (isfinite(m->loss)) sb_add(&s, ", loss %.4f", m->loss);
    sb_add(&s, "\nconfusion matrix (rows gold, columns predicted):\n%-*s", w, "");
    for (int p = 0; p < K; p++) sb_add(&s, " %8.8s", label_name(names, p, b, sizeof b));
    sb_add(&s, "\n");
    for (int g = 0; g < K; g++) {
        sb_add(&s, "%-*.*s", w, w, label_name(names, g, b, sizeof b));
        for (int p = 0; p < K; p++)
            sb_add(&s, " %8lld", (long long)m->confusion[(size_t)g * (size_t)K + (size_t)p]);
        sb_add(&s, "\n");
    }
    return s.len;
}
