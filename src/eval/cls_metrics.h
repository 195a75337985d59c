/*
 * cls_metrics.h - classification metrics: accuracy, per-class precision / recall / F1, their
 * macro and support-weighted averages, and the confusion matrix, from (gold, predicted) pairs.
 *
 * Conventions (scikit-learn's precision_recall_fscore_support with zero_division=0, so numbers
 * can be checked against sklearn.metrics.classification_report):
 *  - confusion[g * K + p] counts examples of gold class g predicted as p (rows gold, columns
 *    predicted, as sklearn.metrics.confusion_matrix).
 *  - precision_k = tp / predicted_k, recall_k = tp / support_k, f1_k = 2 p r / (p + r); a 0/0
 *    is 0, never NaN.
 *  - macro averages run over the classes that occur in the gold labels OR the predictions
 *    (sklearn's default `labels`: the union of y_true and y_pred). A class seen in neither has
 *    all-zero figures, is marked present = false and does not lower the macro average. A class
 *    that is predicted but absent from gold counts (recall 0/0 = 0, precision 0).
 *  - weighted F1 weights f1_k by support_k (0 when there is no gold example).
 *  - accuracy of an empty set is 0 (n = 0 says why). Reports never contain NaN or inf: JSON
 *    writes a non-finite loss as null.
 * Not here: scores and probabilities (the model computes them), calibration, top-k.
 *
 * Temporary home: when src/eval/eval.h gains the JSON-classification metrics of workflow 3,
 * this header merges into it (same struct, same rules).
 */
#ifndef LT_CLS_METRICS_H
#define LT_CLS_METRICS_H

#include "core/core.h"
#include <cjson/cJSON.h>

typedef struct lt_cls_metrics {
    int n_labels;       // K
    int64_t n;          // examples added
    int64_t *confusion; // (K, K) gold rows x predicted columns
    int64_t *support;   // (K) gold count per class
    int64_t *n_pred;    // (K) predicted count per class
    double *precision;  // (K)
    double *recall;     // (K)
    double *f1;         // (K)
    bool *present;      // (K) class in gold or predictions (counted in the macro averages)
    int n_present;
    double accuracy, macro_precision, macro_recall, macro_f1, weighted_f1;
    double loss; // mean loss, set by the caller (NaN when not computed)
} lt_cls_metrics;

// Allocates the arrays of a K-class set (K >= 1) and resets it. Free with lt_cls_metrics_deinit,
// which also accepts a zeroed struct.
lt_status lt_cls_metrics_init(lt_cls_metrics *m, int n_labels, lt_err *err);
void lt_cls_metrics_deinit(lt_cls_metrics *m);
// Forgets all examples (keeps K); loss becomes NaN.
void lt_cls_metrics_reset(lt_cls_metrics *m);
// Adds one example. gold and pred must be in [0, K): LT_ERR_ARG otherwise (nothing added).
lt_status lt_cls_metrics_add(lt_cls_metrics *m, int gold, int pred, lt_err *err);
// Computes the derived figures from the counts (call after the last add; may be called again).
void lt_cls_metrics_compute(lt_cls_metrics *m);
// Copies counts and figures of src into dst (same K).
void lt_cls_metrics_copy(lt_cls_metrics *dst, const lt_cls_metrics *src);
// The metric the best checkpoint is chosen by: "macro_f1", "accuracy", "macro_precision",
// "macro_recall", "weighted_f1" (higher is better) or "loss" (lower is better). Returns false for
// an unknown name.
bool lt_cls_metrics_get(const lt_cls_metrics *m, const char *name, double *value,
                        bool *higher_is_better);

// A JSON object: {"n", "loss", "accuracy", "macro_precision", "macro_recall", "macro_f1",
// "weighted_f1", "per_class": [{"label", "precision", "recall", "f1", "support", "predicted"}],
// "confusion_matrix": {"labels": [...], "rows": "gold", "columns": "predicted", "matrix": [[..]]}}.
// names (K) label names, or NULL for "0", "1", ... Returns NULL when out of memory. The caller
// owns the result (cJSON_Delete).
cJSON *lt_cls_metrics_json(const lt_cls_metrics *m, const char *const *names);
// A plain-text report (per-class table, averages, confusion matrix) into buf (always
// NUL-terminated, cut when n is too small). Returns the length it needed, as snprintf.
size_t lt_cls_metrics_format(const lt_cls_metrics *m, const char *const *names, char *buf,
                             size_t n);

#endif
