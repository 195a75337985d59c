/*
 * json_eval.c - evaluation of JSON outputs: the first JSON object in a model's text (prose and
 * code fences around it are tolerated), JSON-output classification ({"label", "confidence",
 * "reason"}) and field-level exact match for extraction tasks. See eval.h for the conventions.
 * Not here: JSON repair (a truncated or malformed object counts as unparsed), nested-field paths.
 */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRIES 1000 // '{' positions tried per text
#define SNIPPET 500    // bytes of the output kept in error previews

lt_status lt_json_first_object(const char *text, size_t n, cJSON **out, size_t *off, size_t *len,
                               lt_err *err) {
    int tries = 0;
    *out = NULL;
    for (size_t i = 0; i < n && tries < MAX_TRIES; i++) {
        if (text[i] != '{') continue;
        tries++;
        int depth = 0;
        bool in_str = false, esc = false;
        for (size_t j = i; j < n; j++) {
            char c = text[j];
            if (in_str) {
                if (esc)
                    esc = false;
                else if (c == '\\')
                    esc = true;
                else if (c == '"')
                    in_str = false;
            } else if (c == '"') {
                in_str = true;
            } else if (c == '{') {
                depth++;
            } else if (c == '}' && --depth == 0) {
                cJSON *j2 = NULL;
                lt_status st = lt_json_parse(text + i, j - i + 1, "output", &j2, err);
                if (st == LT_ERR_OOM) return st;
                if (!st && cJSON_IsObject(j2)) {
                    *out = j2;
                    if (off) *off = i;
                    if (len) *len = j - i + 1;
                    return LT_OK;
                }
                cJSON_Delete(j2);
                break;
            }
        }
    }
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// helpers

static cJSON *add_num(cJSON *o, const char *k, double v) {
    return isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k);
}

// The first SNIPPET bytes of s, cut at a UTF-8 boundary.
static cJSON *snippet(const char *s) {
    if (!s) return cJSON_CreateNull();
    size_t n = strlen(s);
    if (n <= SNIPPET) return cJSON_CreateString(s);
    size_t k = SNIPPET;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    char *t = lt_alloc(k + 4);
    if (!t) return NULL;
    memcpy(t, s, k);
    memcpy(t + k, "...", 4);
    cJSON *j = cJSON_CreateString(t);
    lt_free(t);
    return j;
}

// Report building: every cJSON call that can fail sets *oom instead of being checked one by one;
// an item that cannot be attached is freed.
static void put(bool *oom, cJSON *obj, const char *key, cJSON *item) {
    if (!obj || !item || !cJSON_AddItemToObject(obj, key, item)) *oom = true, cJSON_Delete(item);
}
static void push(bool *oom, cJSON *arr, cJSON *item) {
    if (!arr || !item || !cJSON_AddItemToArray(arr, item)) *oom = true, cJSON_Delete(item);
}
#define CHK(x)                                                                                     \
    do {                                                                                           \
        if (!(x)) oom_ = true;                                                                     \
    } while (0)

static int utf8_len(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

// A growable list of owned strings.
typedef struct strs {
    char **s;
    int n, cap;
} strs;
static void strs_free(strs *l) {
    for (int i = 0; i < l->n; i++) lt_free(l->s[i]);
    lt_free(l->s);
    memset(l, 0, sizeof *l);
}
static int strs_find(const strs *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->s[i], s)) return i;
    return -1;
}
static bool strs_push(strs *l, const char *s) { // takes a copy
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **p = lt_realloc(l->s, sizeof(char *) * (size_t)cap);
        if (!p) return false;
        l->s = p, l->cap = cap;
    }
    if (!(l->s[l->n] = lt_strdup(s))) return false;
    l->n++;
    return true;
}
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// ---------------------------------------------------------------------------------------------
// JSON-output classification

void lt_jcls_opts_default(lt_jcls_opts *o) {
    memset(o, 0, sizeof *o);
    o->label_key = "label", o->confidence_key = "confidence", o->reason_key = "reason";
    o->label_norm = LT_NORM_STRIP | LT_NORM_CASE | LT_NORM_SPACES;
    o->n_preview = 20;
}

typedef struct canon {
    unsigned norm;
    strs alias, target; // normalised alias -> normalised canonical label
} canon;

static lt_status canon_label(const canon *c, const char *s, char **out, lt_err *err) {
    char *t = NULL;
    lt_status st = lt_text_normalize(s, strlen(s), c->norm, &t, err);
    if (st) return st;
    int k = strs_find(&c->alias, t);
    if (k >= 0) {
        lt_free(t);
        if (!(t = lt_strdup(c->target.s[k]))) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    *out = t;
    return LT_OK;
}

static lt_status canon_add(canon *c, const char *alias, const char *target, lt_err *err) {
    char *a = NULL, *t = NULL;
    lt_status st = lt_text_normalize(alias, strlen(alias), c->norm, &a, err);
    if (!st) st = lt_text_normalize(target, strlen(target), c->norm, &t, err);
    if (!st && strcmp(a, t) && (!strs_push(&c->alias, a) || !strs_push(&c->target, t)))
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_free(a), lt_free(t);
    return st;
}

static lt_status canon_init(canon *c, const lt_jcls_opts *o, lt_err *err) {
    memset(c, 0, sizeof *c);
    c->norm = o->label_norm;
    if (!o->synonyms) return LT_OK;
    if (!cJSON_IsObject(o->synonyms))
        return lt_err_set(err, LT_ERR_ARG,
                          "synonyms must be a JSON object ({\"label\": [\"alias\", "
                          "...]} or {\"alias\": \"label\"})");
    for (const cJSON *e = o->synonyms->child; e; e = e->next) {
        lt_status st = LT_OK;
        if (cJSON_IsString(e))
            st = canon_add(c, e->string, e->valuestring, err);
        else if (cJSON_IsArray(e)) {
            for (const cJSON *a = e->child; a && !st; a = a->next) {
                if (!cJSON_IsString(a))
                    return lt_err_set(err, LT_ERR_ARG,
                                      "synonyms of \"%s\": expected strings, found %s", e->string,
                                      lt_json_type_name(a));
                st = canon_add(c, a->valuestring, e->string, err);
            }
        } else {
            return lt_err_set(err, LT_ERR_ARG,
                              "synonyms: \"%s\" maps to %s (expected a string or an "
                              "array of strings)",
                              e->string, lt_json_type_name(e));
        }
        if (st) return st;
    }
    return LT_OK;
}

enum { E_OK = 0, E_UNPARSED, E_NO_LABEL, E_UNKNOWN, E_WRONG };
static const char *err_name[] = {"", "unparsed", "no_label", "unknown_label", "wrong_label"};

lt_status lt_eval_json_class(const lt_jcls_opts *o, const char *const *pred_text,
                             const char *const *gold_label, const char *const *ids, int64_t n,
                             cJSON **report, cJSON **errors, lt_err *err) {
    lt_jcls_opts dflt;
    if (!o) lt_jcls_opts_default(&dflt), o = &dflt;
    lt_status st = LT_OK;
    bool oom_ = false;
    canon cn = {0};
    strs classes = {0};
    lt_cls_metrics m = {0};
    cJSON *rep = NULL, *errs = NULL;
    char **gl = lt_calloc((size_t)n + 1, sizeof(char *)),
         **pl = lt_calloc((size_t)n + 1, sizeof(char *));
    cJSON **obj = lt_calloc((size_t)n + 1, sizeof(cJSON *));
    int32_t *gi = lt_alloc(sizeof(int32_t) * ((size_t)n + 1)),
            *pi = lt_alloc(sizeof(int32_t) * ((size_t)n + 1));
    uint8_t *kind = lt_calloc((size_t)n + 1, 1);
    double *cx = lt_alloc(sizeof(double) * ((size_t)n + 1)),
           *cy = lt_alloc(sizeof(double) * ((size_t)n + 1));
    if (n <= 0) {
        st = lt_err_set(err, LT_ERR_ARG, "no examples to evaluate");
        goto done;
    }
    if ((st = canon_init(&cn, o, err))) goto done;
    if (!gl || !pl || !obj || !gi || !pi || !kind || !cx || !cy) goto oom;
    // labels
    for (int64_t i = 0; i < n; i++) {
        if ((st = canon_label(&cn, gold_label[i] ? gold_label[i] : "", &gl[i], err))) goto done;
        if (!gl[i][0]) {
            st = lt_err_set(err, LT_ERR_ARG, "gold record %lld%s%s: the label is empty",
                            (long long)i + 1, ids && ids[i] ? " id " : "",
                            ids && ids[i] ? ids[i] : "");
            goto done;
        }
        const char *t = pred_text[i] ? pred_text[i] : "";
        if ((st = lt_json_first_object(t, strlen(t), &obj[i], NULL, NULL, err))) goto done;
        if (!obj[i]) {
            kind[i] = E_UNPARSED;
            continue;
        }
        char *owned = NULL;
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(obj[i], o->label_key);
        const char *lab = cJSON_IsString(lv) ? lv->valuestring : NULL;
        if (!lab && lv && (cJSON_IsNumber(lv) || cJSON_IsBool(lv)))
            lab = lt_eval_field_text(obj[i], o->label_key, &owned);
        if (lab && (st = canon_label(&cn, lab, &pl[i], err))) {
            lt_free(owned);
            goto done;
        }
        lt_free(owned);
        if (!pl[i] || !pl[i][0]) kind[i] = E_NO_LABEL;
    }
    // the classes
    if (o->labels) {
        for (int k = 0; k < o->n_labels; k++) {
            char *c = NULL;
            if ((st = canon_label(&cn, o->labels[k], &c, err))) goto done;
            bool ok = strs_find(&classes, c) >= 0 || strs_push(&classes, c);
            lt_free(c);
            if (!ok) goto oom;
        }
        for (int64_t i = 0; i < n; i++)
            if (strs_find(&classes, gl[i]) < 0) {
                st = lt_err_set(err, LT_ERR_ARG,
                                "gold record %lld: label \"%s\" is not in the label "
                                "set",
                                (long long)i + 1, gl[i]);
                goto done;
            }
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (strs_find(&classes, gl[i]) < 0 && !strs_push(&classes, gl[i])) goto oom;
            if (kind[i] == E_OK && strs_find(&classes, pl[i]) < 0 && !strs_push(&classes, pl[i]))
                goto oom;
        }
        if (classes.n > 1) qsort(classes.s, (size_t)classes.n, sizeof(char *), cmp_str);
    }
    for (int64_t i = 0; i < n; i++) {
        gi[i] = strs_find(&classes, gl[i]);
        pi[i] = kind[i] == E_OK ? strs_find(&classes, pl[i]) : -1;
        if (kind[i] == E_OK && pi[i] < 0) kind[i] = E_UNKNOWN;
        if (kind[i] == E_OK && pi[i] != gi[i]) kind[i] = E_WRONG;
    }
    // the shared metrics with one extra column K for invalid outputs, which is not a class:
    // the macro averages below run over the real classes only
    const int K = classes.n;
    if ((st = lt_cls_metrics_init(&m, K + 1, err))) goto done;
    for (int64_t i = 0; i < n; i++)
        if ((st = lt_cls_metrics_add(&m, gi[i], pi[i] >= 0 ? pi[i] : K, err))) goto done;
    lt_cls_metrics_compute(&m);
    int64_t n_correct = 0;
    double macro_p = 0, macro_r = 0, macro_f = 0, weighted_f = 0;
    int n_present = 0;
    for (int c = 0; c < K; c++) {
        n_correct += m.confusion[(size_t)c * (size_t)(K + 1) + (size_t)c];
        if (!m.present[c]) continue;
        n_present++;
        macro_p += m.precision[c], macro_r += m.recall[c], macro_f += m.f1[c];
        weighted_f += m.f1[c] * (double)m.support[c];
    }
    if (n_present) macro_p /= n_present, macro_r /= n_present, macro_f /= n_present;
    if (n) weighted_f /= (double)n;

    // confidence and reason
    int64_t parsed = 0, n_conf = 0, n_conf_out = 0, n_reason = 0, n_no_label = 0, n_unknown = 0;
    double sum_conf = 0, sum_reason = 0;
    for (int64_t i = 0; i < n; i++) {
        if (kind[i] == E_UNPARSED) continue;
        parsed++;
        n_no_label += kind[i] == E_NO_LABEL;
        n_unknown += kind[i] == E_UNKNOWN;
        const cJSON *cv = cJSON_GetObjectItemCaseSensitive(obj[i], o->confidence_key);
        if (cJSON_IsNumber(cv) && isfinite(cv->valuedouble)) {
            cx[n_conf] = cv->valuedouble;
            cy[n_conf] = kind[i] == E_OK ? 1.0 : 0.0;
            sum_conf += cv->valuedouble;
            n_conf_out += cv->valuedouble < 0 || cv->valuedouble > 1;
            n_conf++;
        }
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(obj[i], o->reason_key);
        if (cJSON_IsString(rv)) sum_reason += utf8_len(rv->valuestring), n_reason++;
    }

    // the report
    if (!(rep = cJSON_CreateObject())) goto oom;
    CHK(cJSON_AddStringToObject(rep, "task", "json-class"));
    CHK(cJSON_AddNumberToObject(rep, "n", (double)n));
    CHK(cJSON_AddNumberToObject(rep, "parsed", (double)parsed));
    CHK(add_num(rep, "parse_success_rate", n ? (double)parsed / (double)n : NAN));
    CHK(cJSON_AddNumberToObject(rep, "n_no_label", (double)n_no_label));
    CHK(cJSON_AddNumberToObject(rep, "n_unknown_label", (double)n_unknown));
    CHK(add_num(rep, "accuracy", n ? (double)n_correct / (double)n : NAN));
    CHK(add_num(rep, "accuracy_on_parsed", parsed ? (double)n_correct / (double)parsed : NAN));
    CHK(add_num(rep, "macro_precision", n_present ? macro_p : NAN));
    CHK(add_num(rep, "macro_recall", n_present ? macro_r : NAN));
    CHK(add_num(rep, "macro_f1", n_present ? macro_f : NAN));
    CHK(add_num(rep, "weighted_f1", n ? weighted_f : NAN));
    cJSON *labs = cJSON_AddArrayToObject(rep, "labels");
    cJSON *pc = cJSON_AddArrayToObject(rep, "per_class");
    cJSON *und = cJSON_AddArrayToObject(rep, "undefined");
    cJSON *cmo = cJSON_AddObjectToObject(rep, "confusion_matrix");
    if (!labs || !pc || !und || !cmo) goto oom;
    CHK(cJSON_AddStringToObject(cmo, "rows", "gold"));
    CHK(cJSON_AddStringToObject(cmo, "columns", "predicted; the last column is <invalid>"));
    cJSON *cml = cJSON_AddArrayToObject(cmo, "labels"),
          *mat = cJSON_AddArrayToObject(cmo, "matrix");
    if (!cml || !mat) goto oom;
    for (int c = 0; c < K; c++) {
        push(&oom_, labs, cJSON_CreateString(classes.s[c]));
        push(&oom_, cml, cJSON_CreateString(classes.s[c]));
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        push(&oom_, pc, e);
        if (oom_) goto oom; // e is gone
        CHK(cJSON_AddStringToObject(e, "label", classes.s[c]));
        CHK(cJSON_AddNumberToObject(e, "precision", m.precision[c]));
        CHK(cJSON_AddNumberToObject(e, "recall", m.recall[c]));
        CHK(cJSON_AddNumberToObject(e, "f1", m.f1[c]));
        CHK(cJSON_AddNumberToObject(e, "support", (double)m.support[c]));
        CHK(cJSON_AddNumberToObject(e, "predicted", (double)m.n_pred[c]));
        char note[200];
        if (!m.present[c]) {
            snprintf(note, sizeof note, "\"%.100s\": neither in gold nor predicted (not averaged)",
                     classes.s[c]);
            push(&oom_, und, cJSON_CreateString(note));
        } else {
            if (!m.n_pred[c]) {
                snprintf(note, sizeof note, "precision of \"%.100s\": never predicted (set to 0)",
                         classes.s[c]);
                push(&oom_, und, cJSON_CreateString(note));
            }
            if (!m.support[c]) {
                snprintf(note, sizeof note, "recall of \"%.100s\": absent from gold (set to 0)",
                         classes.s[c]);
                push(&oom_, und, cJSON_CreateString(note));
            }
        }
        cJSON *row = cJSON_CreateArray();
        if (!row) goto oom;
        for (int k = 0; k <= K; k++)
            push(&oom_, row,
                 cJSON_CreateNumber((double)m.confusion[(size_t)c * (size_t)(K + 1) + (size_t)k]));
        push(&oom_, mat, row);
    }
    push(&oom_, cml, cJSON_CreateString("<invalid>"));
    CHK(add_num(rep, "avg_confidence", n_conf ? sum_conf / (double)n_conf : NAN));
    CHK(cJSON_AddNumberToObject(rep, "n_confidence", (double)n_conf));
    CHK(cJSON_AddNumberToObject(rep, "n_confidence_out_of_range", (double)n_conf_out));
    CHK(add_num(rep, "avg_reason_length", n_reason ? sum_reason / (double)n_reason : NAN));
    CHK(cJSON_AddStringToObject(rep, "reason_length_unit", "characters"));
    CHK(cJSON_AddNumberToObject(rep, "n_reason", (double)n_reason));
    double r = NAN;
    const char *why = NULL;
    if (lt_pearson(cx, cy, n_conf, &r, &why)) {
        CHK(cJSON_AddNumberToObject(rep, "confidence_correctness_pearson", r));
    } else {
        CHK(cJSON_AddNullToObject(rep, "confidence_correctness_pearson"));
        CHK(cJSON_AddStringToObject(rep, "confidence_correctness_pearson_note", why));
    }
    int64_t n_err = n - n_correct;
    CHK(cJSON_AddNumberToObject(rep, "n_errors", (double)n_err));
    if (errors) {
        if (!(errs = cJSON_CreateArray())) goto oom;
        for (int64_t i = 0; i < n && cJSON_GetArraySize(errs) < o->n_preview; i++) {
            if (kind[i] == E_OK) continue;
            cJSON *e = cJSON_CreateObject();
            if (!e) goto oom;
            push(&oom_, errs, e);
            if (oom_) goto oom;
            CHK(cJSON_AddNumberToObject(e, "index", (double)i));
            if (ids && ids[i]) CHK(cJSON_AddStringToObject(e, "id", ids[i]));
            CHK(cJSON_AddStringToObject(e, "gold", gl[i]));
            if (pl[i])
                CHK(cJSON_AddStringToObject(e, "pred", pl[i]));
            else
                CHK(cJSON_AddNullToObject(e, "pred"));
            CHK(cJSON_AddStringToObject(e, "error", err_name[kind[i]]));
            put(&oom_, e, "output", snippet(pred_text[i]));
        }
    }
    if (oom_ || cJSON_GetArraySize(labs) != classes.n) goto oom;
    *report = rep, rep = NULL;
    if (errors) *errors = errs, errs = NULL;
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
done:
    cJSON_Delete(rep);
    cJSON_Delete(errs);
    lt_cls_metrics_deinit(&m);
    strs_free(&classes), strs_free(&cn.alias), strs_free(&cn.target);
    for (int64_t i = 0; i < n; i++) {
        if (gl) lt_free(gl[i]);
        if (pl) lt_free(pl[i]);
        if (obj) cJSON_Delete(obj[i]);
    }
    lt_free(gl), lt_free(pl), lt_free(obj), lt_free(gi), lt_free(pi), lt_free(kind);
    lt_free(cx), lt_free(cy);
    return st;
}

// ---------------------------------------------------------------------------------------------
// field-level exact match

void lt_jfields_opts_default(lt_jfields_opts *o) {
    memset(o, 0, sizeof *o);
    o->str_norm = LT_NORM_STRIP;
    o->num_rel_tol = 1e-9;
    o->n_preview = 20;
}

static bool num_of(const cJSON *v, bool coerce, double *x) {
    if (cJSON_IsNumber(v)) {
        *x = v->valuedouble;
        return true;
    }
    if (coerce && cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        *x = strtod(v->valuestring, &end);
        return *end == 0 && isfinite(*x);
    }
    return false;
}

static lt_status values_equal(const lt_jfields_opts *o, const cJSON *g, const cJSON *p, bool *eq,
                              lt_err *err) {
    double a, b;
    *eq = false;
    if (!p) return LT_OK;
    if (cJSON_IsString(g) && cJSON_IsString(p)) {
        char *x = NULL, *y = NULL;
        lt_status st =
            lt_text_normalize(g->valuestring, strlen(g->valuestring), o->str_norm, &x, err);
        // an invalid UTF-8 prediction simply does not match
        lt_status sp =
            st ? st
               : lt_text_normalize(p->valuestring, strlen(p->valuestring), o->str_norm, &y, err);
        if (sp == LT_ERR_OOM)
            st = sp;
        else if (!sp)
            *eq = !strcmp(x, y);
        lt_free(x), lt_free(y);
        return st;
    }
    if ((cJSON_IsNumber(g) || cJSON_IsNumber(p)) && num_of(g, o->coerce_numbers, &b) &&
        num_of(p, o->coerce_numbers, &a)) {
        *eq = fabs(a - b) <= o->num_rel_tol * fmax(1.0, fabs(b));
        return LT_OK;
    }
    *eq = cJSON_Compare(g, p, true);
    return LT_OK;
}

lt_status lt_eval_json_fields(const lt_jfields_opts *o, const char *const *pred_text,
                              const cJSON *const *gold, const char *const *ids, int64_t n,
                              cJSON **report, cJSON **errors, lt_err *err) {
    lt_jfields_opts dflt;
    if (!o) lt_jfields_opts_default(&dflt), o = &dflt;
    lt_status st = LT_OK;
    bool oom_ = false;
    strs fields = {0};
    cJSON *rep = NULL, *errs = NULL, *obj = NULL;
    int64_t *correct = NULL, *support = NULL, *present = NULL;
    for (int64_t i = 0; i < n; i++) {
        if (!cJSON_IsObject(gold[i])) {
            st = lt_err_set(err, LT_ERR_ARG,
                            "gold record %lld%s%s: expected a JSON object, found %s",
                            (long long)i + 1, ids && ids[i] ? " id " : "",
                            ids && ids[i] ? ids[i] : "", lt_json_type_name(gold[i]));
            goto done;
        }
        for (const cJSON *k = gold[i]->child; k; k = k->next)
            if (strs_find(&fields, k->string) < 0 && !strs_push(&fields, k->string)) goto oom;
    }
    size_t F = (size_t)(fields.n ? fields.n : 1);
    correct = lt_calloc(F, sizeof(int64_t)), support = lt_calloc(F, sizeof(int64_t));
    present = lt_calloc(F, sizeof(int64_t));
    if (!correct || !support || !present) goto oom;
    if (errors && !(errs = cJSON_CreateArray())) goto oom;
    int64_t parsed = 0, all_ok = 0, n_err = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *t = pred_text[i] ? pred_text[i] : "";
        if ((st = lt_json_first_object(t, strlen(t), &obj, NULL, NULL, err))) goto done;
        bool ok = obj != NULL;
        parsed += ok;
        bool all = ok;
        cJSON *wrong = errs ? cJSON_CreateArray() : NULL;
        for (const cJSON *g = gold[i]->child; g; g = g->next) {
            int f = strs_find(&fields, g->string);
            support[f]++;
            const cJSON *p = ok ? cJSON_GetObjectItemCaseSensitive(obj, g->string) : NULL;
            present[f] += p != NULL;
            bool eq = false;
            if ((st = values_equal(o, g, p, &eq, err))) {
                cJSON_Delete(wrong);
                goto done;
            }
            correct[f] += eq;
            if (!eq) all = false;
            if (!eq && wrong) push(&oom_, wrong, cJSON_CreateString(g->string));
        }
        all_ok += all;
        if (!all) n_err++;
        if (!all && errs && cJSON_GetArraySize(errs) < o->n_preview) {
            cJSON *e = cJSON_CreateObject();
            if (!e) {
                cJSON_Delete(wrong);
                goto oom;
            }
            push(&oom_, errs, e);
            if (oom_) {
                cJSON_Delete(wrong);
                goto oom;
            }
            CHK(cJSON_AddNumberToObject(e, "index", (double)i));
            if (ids && ids[i]) CHK(cJSON_AddStringToObject(e, "id", ids[i]));
            CHK(cJSON_AddStringToObject(e, "error", ok ? "fields" : "unparsed"));
            put(&oom_, e, "wrong_fields", wrong), wrong = NULL;
            put(&oom_, e, "gold", cJSON_Duplicate(gold[i], true));
            if (ok)
                put(&oom_, e, "pred", obj), obj = NULL;
            else
                CHK(cJSON_AddNullToObject(e, "pred"));
            put(&oom_, e, "output", snippet(pred_text[i]));
        }
        cJSON_Delete(wrong);
        cJSON_Delete(obj), obj = NULL;
    }
    if (!(rep = cJSON_CreateObject())) goto oom;
    CHK(cJSON_AddStringToObject(rep, "task", "json-fields"));
    CHK(cJSON_AddNumberToObject(rep, "n", (double)n));
    CHK(cJSON_AddNumberToObject(rep, "parsed", (double)parsed));
    CHK(add_num(rep, "parse_success_rate", n ? (double)parsed / (double)n : NAN));
    CHK(add_num(rep, "all_fields_exact_match", n ? (double)all_ok / (double)n : NAN));
    CHK(add_num(rep, "exact_match_on_parsed", parsed ? (double)all_ok / (double)parsed : NAN));
    double macro = 0;
    int nf = 0;
    cJSON *fo = cJSON_AddObjectToObject(rep, "fields");
    if (!fo) goto oom;
    for (int f = 0; f < fields.n; f++) {
        cJSON *e = cJSON_AddObjectToObject(fo, fields.s[f]);
        if (!e) goto oom;
        double em = support[f] ? (double)correct[f] / (double)support[f] : NAN;
        CHK(add_num(e, "exact_match", em));
        CHK(cJSON_AddNumberToObject(e, "correct", (double)correct[f]));
        CHK(cJSON_AddNumberToObject(e, "support", (double)support[f]));
        CHK(cJSON_AddNumberToObject(e, "present", (double)present[f]));
        if (support[f]) macro += em, nf++;
    }
    CHK(add_num(rep, "macro_field_exact_match", nf ? macro / nf : NAN));
    CHK(cJSON_AddNumberToObject(rep, "n_errors", (double)n_err));
    if (oom_ || cJSON_GetArraySize(fo) != fields.n) goto oom;
    *report = rep, rep = NULL;
    if (errors) *errors = errs, errs = NULL;
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
done:
    cJSON_Delete(obj);
    cJSON_Delete(rep);
    cJSON_Delete(errs);
    strs_free(&fields);
    lt_free(correct), lt_free(support), lt_free(present);
    return st;
}
