/*
 * eval.h - metrics and reports: exact match (QA), JSON-output classification, field-level
 * exact match of extracted JSON objects, perplexity; reading predictions and gold JSONL, joining
 * them, before/after comparisons, and writing reports atomically.
 *
 * Files: metrics.c (normalisation, exact match, classification metrics, Pearson),
 * json_eval.c (first-JSON-object extraction, json-class and json-fields reports),
 * report.c (JSONL reading and joining, report writing and comparison, perplexity).
 *
 * Conventions (sklearn's, stated where it matters):
 *  - classification: the classes are the given label set, or else the sorted union of gold labels
 *    and parsed predicted labels. Per class (cls_metrics.h): precision = TP / predicted,
 *    recall = TP / support, F1 = 2PR / (P + R); a zero denominator gives 0 (sklearn
 *    zero_division=0) and is listed in the report's "undefined" notes. Macro averages are means
 *    over the classes present in gold or predictions (sklearn's default labels: a class absent
 *    from gold but predicted counts, with recall 0; a class of a fixed label set seen nowhere
 *    does not). Outputs with no parseable JSON object, no label, or (with a fixed label set) a
 *    label outside it are wrong and land in the "<invalid>" column of the confusion matrix;
 *    that column is not a class (it has no precision and is not averaged).
 *  - accuracy is over ALL examples (unparsed ones count as wrong); accuracy_on_parsed only over
 *    the parsed ones.
 *  - Pearson correlation of confidence with correctness (1/0) over parsed predictions with a
 *    numeric confidence; null when undefined (fewer than 2 such predictions, constant
 *    correctness, or constant confidence), with the reason in confidence_correlation_note.
 *  - numbers in reports are JSON numbers; undefined values are null, never NaN.
 * Reports are cJSON trees owned by the caller (cJSON_Delete).
 */
#ifndef LT_EVAL_H
#define LT_EVAL_H

#include "core/core.h"
#include "eval/cls_metrics.h"
#include "io/io.h"

// ---------------------------------------------------------------------------------------------
// text normalisation (metrics.c)

enum {
    LT_NORM_STRIP = 1u << 0,    // trim leading/trailing Unicode whitespace
    LT_NORM_NFKC = 1u << 1,     // Unicode NFKC (utf8proc)
    LT_NORM_CASE = 1u << 2,     // Unicode case folding (utf8proc)
    LT_NORM_SPACES = 1u << 3,   // collapse whitespace runs to one space
    LT_NORM_PUNCT = 1u << 4,    // drop punctuation (Unicode P* categories)
    LT_NORM_ARTICLES = 1u << 5, // drop the words a, an, the (SQuAD's normalize_answer)
};
// Parses a comma list of strip, nfkc, case, spaces, punct, articles; "none"; "default"
// (strip,nfkc,case,spaces); "squad" (case,punct,articles,spaces,strip). LT_ERR_ARG otherwise.
lt_status lt_norm_parse(const char *list, unsigned *flags, lt_err *err);
// Normalises s[0..n) (valid UTF-8; LT_ERR_ARG otherwise). *out is NUL-terminated, lt_alloc'd.
lt_status lt_text_normalize(const char *s, size_t n, unsigned flags, char **out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// metrics (metrics.c)

// Exact match: example i is correct when its normalised prediction equals one of its
// n_gold[i] normalised gold answers gold[i][0..n_gold[i]). correct (may be NULL) gets 1/0 per
// example. An empty set (n == 0) gives accuracy 0.
typedef struct lt_em_result {
    int64_t n, correct;
    double accuracy;
} lt_em_result;
lt_status lt_exact_match(const char *const *pred, const char *const *const *gold, const int *n_gold,
                         int64_t n, unsigned flags, uint8_t *correct, lt_em_result *res,
                         lt_err *err);

// Classification counts and figures: lt_cls_metrics of eval/cls_metrics.h (shared with the
// sequence-classification trainer; same sklearn rules).

// Pearson correlation of x and y (n pairs), in double. Returns false (and sets *why to a static
// reason) when it is undefined: n < 2, or x or y constant.
bool lt_pearson(const double *x, const double *y, int64_t n, double *r, const char **why);

// ---------------------------------------------------------------------------------------------
// JSON outputs (json_eval.c)

// The first JSON object in text[0..n) that parses, tolerating text around it (prose, code
// fences). *out is the parsed object (cJSON_Delete), or NULL when there is none; *off/*len its
// byte range (either may be NULL). Errors: LT_ERR_OOM only (no object is not an error).
lt_status lt_json_first_object(const char *text, size_t n, cJSON **out, size_t *off, size_t *len,
                               lt_err *err);

typedef struct lt_jcls_opts {
    const char *label_key, *confidence_key, *reason_key; // "label", "confidence", "reason"
    unsigned label_norm;       // applied to gold and predicted labels (default strip,case,spaces)
    const cJSON *synonyms;     // {"canonical": ["alias", ...]} or {"alias": "canonical"}; NULL
    const char *const *labels; // fixed label set (normalised like the rest), or NULL
    int n_labels;
    int n_preview; // errors listed in *errors (default 20)
} lt_jcls_opts;
void lt_jcls_opts_default(lt_jcls_opts *o);

// JSON-output classification over n examples: pred_text[i] is the raw model output (the first
// JSON object in it is used), gold_label[i] the gold label, ids[i] an id for the error list
// (ids may be NULL: the position is used). *report gets the report (see the top of this file and
// json_eval.c for its keys); *errors (may be NULL) a JSON array of the first n_preview errors
// {"index", "id", "gold", "pred", "error", "output"}. Errors: LT_ERR_ARG (a gold label that is
// empty after normalisation, or outside a fixed label set; bad synonyms), LT_ERR_OOM.
lt_status lt_eval_json_class(const lt_jcls_opts *o, const char *const *pred_text,
                             const char *const *gold_label, const char *const *ids, int64_t n,
                             cJSON **report, cJSON **errors, lt_err *err);

typedef struct lt_jfields_opts {
    unsigned str_norm;   // applied to string values before comparing (default strip)
    double num_rel_tol;  // numbers equal when |a - b| <= tol * max(1, |b|) (default 1e-9)
    bool coerce_numbers; // "3" equals 3 (default false: types must agree)
    int n_preview;       // default 20
} lt_jfields_opts;
void lt_jfields_opts_default(lt_jfields_opts *o);

// Field-level exact match of extraction outputs: gold[i] is the gold object; the first JSON
// object of pred_text[i] is compared with it field by field (the fields are the gold objects'
// keys, in order of first appearance; a field counts for the examples whose gold has it).
// Report keys: n, parsed, parse_success_rate, all_fields_exact_match (every gold field of the
// example matches; extra predicted keys are ignored), exact_match_on_parsed, fields {name:
// {exact_match, correct, support, present}}, macro_field_exact_match, n_errors. Values
// compare as: strings after str_norm, numbers with the tolerance, anything else with
// cJSON_Compare. Errors: LT_ERR_ARG (a gold that is not an object), LT_ERR_OOM.
lt_status lt_eval_json_fields(const lt_jfields_opts *o, const char *const *pred_text,
                              const cJSON *const *gold, const char *const *ids, int64_t n,
                              cJSON **report, cJSON **errors, lt_err *err);

// ---------------------------------------------------------------------------------------------
// files, joining, reports (report.c)

// A JSONL file as cJSON objects: blank lines skipped, every other line must be one JSON object
// (LT_ERR_FORMAT naming file:line otherwise).
typedef struct lt_jsonl {
    cJSON **rec;   // (n)
    int64_t *line; // (n) 1-based line numbers
    int64_t n;
    char *path;
} lt_jsonl;
lt_status lt_jsonl_read(const char *path, lt_jsonl *out, lt_err *err);
void lt_jsonl_deinit(lt_jsonl *j);

// Pairs predictions with gold records: by position when id_key is NULL (the counts must be
// equal: LT_ERR_FORMAT naming both files and counts otherwise, never a silent truncation), or by
// the value of id_key (string or integer; every record must have one, ids unique in each file,
// the same set in both: errors name the file, line and id). pred_of_gold[i] (gold->n entries,
// caller-owned) gets the prediction index of gold record i.
lt_status lt_eval_join(const lt_jsonl *pred, const lt_jsonl *gold, const char *id_key,
                       int64_t *pred_of_gold, lt_err *err);

// The text of a record's field: a string as is; an object or array printed as compact JSON;
// a number or boolean printed. NULL when missing or null. *owned (set to NULL or to an lt_alloc'd
// copy the caller frees) holds printed forms.
const char *lt_eval_field_text(const cJSON *rec, const char *key, char **owned);
// The first of keys[0..n) that rec has (not null), or NULL.
const char *lt_eval_pick_key(const cJSON *rec, const char *const *keys, int n);

// Writes report as indented JSON to path, atomically.
lt_status lt_report_write(const char *path, const cJSON *report, lt_err *err);
// Writes the records of a JSON array as JSONL (one compact object per line), atomically.
lt_status lt_jsonl_write(const char *path, const cJSON *array, lt_err *err);
// {"task": before.task, "before": before, "after": after, "delta": {key: after - before for each
// numeric top-level key present in both}} (the inputs are duplicated). NULL on OOM.
cJSON *lt_report_compare(const cJSON *before, const cJSON *after);

// Perplexity: mean token loss of m (with whatever adapter is attached) over d, in batches of
// (B, T). n_tokens counts the predicted tokens (labels >= 0 after the shift).
struct lt_model;
struct lt_dataset;
typedef struct lt_ppl_result {
    double mean_loss, perplexity;
    int64_t n_examples, n_tokens;
} lt_ppl_result;
lt_status lt_eval_perplexity(struct lt_model *m, const struct lt_dataset *d, int B, int T,
                             int32_t pad_id, lt_ppl_result *res, lt_err *err);
// {"task": "perplexity", "n_examples", "n_tokens", "mean_loss", "perplexity"}; NULL on OOM.
cJSON *lt_ppl_report(const lt_ppl_result *r);

#endif
