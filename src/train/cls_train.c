/*
 * cls_train.c - sequence classification with LoRA and a trained linear head: classification
 * examples, label sets, stratified splits and balanced subsamples, class weights, evaluation
 * (loss, accuracy, macro P/R/F1, confusion matrix), and the training loop with evaluation every N
 * steps, best-checkpoint selection, report.json, curves.svg and resumable checkpoints.
 *
 * The loop reuses the pieces of loop.c (epoch order, lt_train_apply for clipping + schedule +
 * AdamW, checkpoint files through a hook that adds the classification state). The step itself is
 * lt_model_cls_step (model/forward.c, golden-tested against LlamaForSequenceClassification).
 * Not here: reading records and rendering templates (data/), metrics arithmetic (eval/), the
 * command line (cli/cmd_classify.c).
 * Several ranks (dist.h) split each step's micro-batches and each evaluation's batches as
 * lt_train does (see loop.c); rank 0 alone writes the adapters, report, plots and checkpoints.
 */
#include "dist/dist.h"
#include "eval/plot.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// examples

void lt_cls_data_init(lt_cls_data *d, int n_labels) {
    memset(d, 0, sizeof *d);
    lt_dataset_init(&d->x);
    d->n_labels = n_labels;
}

void lt_cls_data_deinit(lt_cls_data *d) {
    lt_dataset_deinit(&d->x);
    lt_free(d->y);
    memset(d, 0, sizeof *d);
}

lt_status lt_cls_data_add(lt_cls_data *d, const int32_t *ids, int len, int32_t y, lt_err *err) {
    if (y < -1 || y >= d->n_labels)
        return lt_err_set(err, LT_ERR_ARG, "class %d is not in [0, %d)", y, d->n_labels);
    if (d->x.n == d->cap_y) {
        int64_t cap = d->cap_y ? d->cap_y * 2 : 64;
        int32_t *ny = lt_realloc(d->y, sizeof(int32_t) * (size_t)cap);
        if (!ny)
            return lt_err_set(err, LT_ERR_OOM, "out of memory adding example %lld",
                              (long long)d->x.n);
        d->y = ny, d->cap_y = cap;
    }
    lt_status st = lt_dataset_add(&d->x, ids, NULL, len, len, err);
    if (st) return st;
    d->y[d->x.n - 1] = y;
    return LT_OK;
}

void lt_cls_data_counts(const lt_cls_data *d, int64_t *counts) {
    memset(counts, 0, sizeof(int64_t) * (size_t)d->n_labels);
    for (int64_t i = 0; i < d->x.n; i++)
        if (d->y[i] >= 0) counts[d->y[i]]++;
}

lt_status lt_cls_data_take(const lt_cls_data *src, const int8_t *part_of, int8_t part,
                           lt_cls_data *dst, lt_err *err) {
    if (dst->n_labels != src->n_labels)
        return lt_err_set(err, LT_ERR_ARG, "label sets differ (%d and %d classes)", src->n_labels,
                          dst->n_labels);
    for (int64_t i = 0; i < src->x.n; i++) {
        if (part_of[i] != part) continue;
        lt_status st = lt_cls_data_add(dst, src->x.ex[i].ids, src->x.ex[i].len, src->y[i], err);
        if (st) return st;
    }
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// label sets

void lt_cls_labels_deinit(lt_cls_labels *l) {
    for (int i = 0; l->names && i < l->n; i++) lt_free(l->names[i]);
    lt_free(l->names);
    memset(l, 0, sizeof *l);
}

int lt_cls_labels_find(const lt_cls_labels *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name)) return i;
    return -1;
}

static bool parse_i64(const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_num(const void *a, const void *b) {
    long long x = 0, y = 0;
    parse_i64(*(const char *const *)a, &x);
    parse_i64(*(const char *const *)b, &y);
    return x < y ? -1 : x > y;
}

static lt_status labels_set(lt_cls_labels *l, const char *const *names, int n, lt_err *err) {
    lt_cls_labels t = {0};
    t.names = lt_calloc((size_t)n, sizeof(char *));
    if (!t.names) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    t.n = n;
    for (int i = 0; i < n; i++)
        if (!(t.names[i] = lt_strdup(names[i]))) {
            lt_cls_labels_deinit(&t);
            return lt_err_set(err, LT_ERR_OOM, "out of memory");
        }
    *l = t;
    return LT_OK;
}

lt_status lt_cls_labels_from_values(lt_cls_labels *l, const char *const *labels, int64_t n,
                                    lt_err *err) {
    if (n <= 0) return lt_err_set(err, LT_ERR_ARG, "no labels to build a label set from");
    const char **v = lt_alloc(sizeof(char *) * (size_t)n);
    if (!v) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    bool numeric = true;
    for (int64_t i = 0; i < n; i++) {
        long long x;
        v[i] = labels[i];
        numeric = numeric && parse_i64(labels[i], &x);
    }
    qsort(v, (size_t)n, sizeof *v, numeric ? cmp_num : cmp_str);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || (numeric ? cmp_num(&v[k - 1], &v[i]) : strcmp(v[k - 1], v[i])) != 0)
            v[k++] = v[i];
    lt_status st = k > 65536 ? lt_err_set(err, LT_ERR_ARG,
                                          "%lld distinct labels (at most 65536): "
                                          "is the label column right?",
                                          (long long)k)
                             : labels_set(l, v, (int)k, err);
    lt_free(v);
    return st;
}

lt_status lt_cls_labels_parse(lt_cls_labels *l, const char *list, lt_err *err) {
    char *s = lt_strdup(list);
    const char *names[1024];
    int n = 0;
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = LT_OK;
    for (char *p = s, *e; p && !st; p = e) {
        e = strchr(p, ',');
        if (e) *e++ = 0;
        if (!*p)
            st = lt_err_set(err, LT_ERR_ARG, "label list \"%s\": an empty label", list);
        else if (n == 1024)
            st = lt_err_set(err, LT_ERR_ARG, "label list: more than 1024 labels");
        for (int i = 0; i < n && !st; i++)
            if (!strcmp(names[i], p))
                st = lt_err_set(err, LT_ERR_ARG, "label list: \"%s\" twice", p);
        if (!st) names[n++] = p;
    }
    if (!st) st = labels_set(l, names, n, err);
    lt_free(s);
    return st;
}

lt_status lt_cls_labels_from_json(lt_cls_labels *l, const cJSON *j, const char *what, lt_err *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "labels");
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1 || n > 65536)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: \"labels\" must be an array of 1 to 65536 strings", what);
    const char **names = lt_alloc(sizeof(char *) * (size_t)n);
    if (!names) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            lt_free(names);
            return lt_err_set(err, LT_ERR_FORMAT, "%s: labels[%d] is not a non-empty string", what,
                              i);
        }
        names[i++] = it->valuestring;
    }
    lt_status st = labels_set(l, names, n, err);
    lt_free(names);
    return st;
}

// ---------------------------------------------------------------------------------------------
// tokenising, splits, subsamples, class weights

lt_status lt_cls_encode(const lt_tokenizer *tok, const char *text, size_t len, int max_len,
                        int tail, lt_ids *out, bool *truncated, lt_err *err) {
    if (max_len < 1) return lt_err_set(err, LT_ERR_ARG, "maximum length %d < 1", max_len);
    out->n = 0;
    lt_status st = lt_tokenizer_encode(tok, text, len, LT_TOK_ADD_SPECIAL, out, err);
    if (st) return st;
    bool cut = out->n > (size_t)max_len;
    if (cut) {
        if (tail > max_len / 2) tail = max_len / 2; // the text itself keeps at least half
        if (tail < 0) tail = 0;
        size_t head = (size_t)(max_len - tail);
        memmove(out->ids + head, out->ids + out->n - (size_t)tail, sizeof(int32_t) * (size_t)tail);
        out->n = (size_t)max_len;
    }
    if (truncated) *truncated = cut;
    return LT_OK;
}

// The indices of each class, each list in a seeded random order: idx holds them class by class,
// start[k]..start[k+1] delimiting class k.
static lt_status by_class(const int32_t *y, int64_t n, int K, uint64_t seed, int64_t **idx_out,
                          int64_t **start_out, lt_err *err) {
    int64_t *idx = lt_alloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    int64_t *start = lt_calloc((size_t)K + 1, sizeof(int64_t));
    int64_t *fill = lt_calloc((size_t)K + 1, sizeof(int64_t));
    if (!idx || !start || !fill) {
        lt_free(idx), lt_free(start), lt_free(fill);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0 && y[i] < K) start[y[i] + 1]++;
    for (int k = 0; k < K; k++) start[k + 1] += start[k];
    memcpy(fill, start, sizeof(int64_t) * (size_t)K);
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0 && y[i] < K) idx[fill[y[i]]++] = i;
    for (int k = 0; k < K; k++) { // Fisher-Yates per class, its own stream
        lt_rng r;
        lt_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + 0x5157ull * (uint64_t)(k + 1));
        int64_t *v = idx + start[k], m = start[k + 1] - start[k];
        for (int64_t i = m - 1; i > 0; i--) {
            int64_t j = (int64_t)lt_rng_below(&r, (uint64_t)i + 1), t = v[i];
            v[i] = v[j], v[j] = t;
        }
    }
    lt_free(fill);
    *idx_out = idx, *start_out = start;
    return LT_OK;
}

lt_status lt_cls_split(const int32_t *y, int64_t n, int n_labels, const double *fracs, int n_parts,
                       uint64_t seed, int8_t *part_of, lt_err *err) {
    if (n_parts < 1 || n_parts > 8)
        return lt_err_set(err, LT_ERR_ARG, "%d parts (1 to 8)", n_parts);
    double sum = 0;
    for (int p = 0; p < n_parts; p++) {
        if (!(fracs[p] >= 0) || !isfinite(fracs[p]))
            return lt_err_set(err, LT_ERR_ARG, "split fraction %d is %g (must be >= 0)", p,
                              fracs[p]);
        sum += fracs[p];
    }
    if (!(sum > 0)) return lt_err_set(err, LT_ERR_ARG, "split fractions are all 0");
    int64_t *idx, *start;
    lt_status st = by_class(y, n, n_labels, seed, &idx, &start, err);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) part_of[i] = -1;
    for (int k = 0; k < n_labels; k++) {
        int64_t m = start[k + 1] - start[k], lo = 0;
        double cum = 0;
        for (int p = 0; p < n_parts; p++) {
            cum += fracs[p] / sum;
            int64_t hi = p == n_parts - 1 ? m : (int64_t)llround(cum * (double)m);
            if (hi > m) hi = m;
            for (int64_t i = lo; i < hi; i++) part_of[idx[start[k] + i]] = (int8_t)p;
            if (hi > lo) lo = hi;
        }
    }
    lt_free(idx), lt_free(start);
    return LT_OK;
}

lt_status lt_cls_subsample(const int32_t *y, int64_t n, int n_labels, int64_t cap, uint64_t seed,
                           int8_t *keep, lt_err *err) {
    int64_t *idx, *start;
    lt_status st = by_class(y, n, n_labels, seed + 1, &idx, &start, err);
    if (st) return st;
    if (cap <= 0) {
        cap = INT64_MAX;
        for (int k = 0; k < n_labels; k++) {
            int64_t m = start[k + 1] - start[k];
            if (m > 0 && m < cap) cap = m;
        }
    }
    memset(keep, 0, (size_t)n);
    for (int k = 0; k < n_labels; k++)
        for (int64_t i = start[k]; i < start[k + 1] && i - start[k] < cap; i++) keep[idx[i]] = 1;
    lt_free(idx), lt_free(start);
    return LT_OK;
}

lt_status lt_cls_class_weights(const char *spec, const int64_t *counts, int K, float *w,
                               bool *filled, lt_err *err) {
    *filled = false;
    if (!spec || !strcmp(spec, "none")) return LT_OK;
    if (!strcmp(spec, "auto") || !strcmp(spec, "balanced")) {
        int64_t n = 0;
        for (int k = 0; k < K; k++) n += counts[k];
        for (int k = 0; k < K; k++)
            w[k] = counts[k] > 0 ? (float)((double)n / ((double)K * (double)counts[k])) : 0.0f;
        *filled = true;
        return LT_OK;
    }
    const char *p = spec;
    for (int k = 0; k < K; k++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !isfinite(v) || v < 0)
            return lt_err_set(err, LT_ERR_ARG,
                              "class weights \"%s\": weight %d is not a number >= 0 "
                              "(give auto, none or %d comma-separated weights)",
                              spec, k + 1, K);
        w[k] = (float)v;
        p = end;
        if (k < K - 1) {
            if (*p != ',')
                return lt_err_set(err, LT_ERR_ARG,
                                  "class weights \"%s\": %d weights given, %d "
                                  "classes",
                                  spec, k + 1, K);
            p++;
        }
    }
    if (*p)
        return lt_err_set(err, LT_ERR_ARG, "class weights \"%s\": more weights than the %d classes",
                          spec, K);
    *filled = true;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// evaluation

static int argmax(const float *s, int K) {
    int b = 0;
    for (int k = 1; k < K; k++)
        if (s[k] > s[b]) b = k;
    return b;
}

static void softmax_to(const float *s, int K, float *p) {
    float mx = s[argmax(s, K)];
    double z = 0;
    for (int k = 0; k < K; k++) z += exp((double)(s[k] - mx));
    for (int k = 0; k < K; k++) p[k] = (float)(exp((double)(s[k] - mx)) / z);
}

// The totals of a split evaluation over all ranks: loss and weight sums, and met's confusion
// matrix (its per-class counts follow from it). local: this rank's status; see lt_train_reduce.
static lt_status gather_eval(lt_cls_metrics *met, double *sum, double *wsum, lt_status local,
                             lt_err *err) {
    const int K = met ? met->n_labels : 0;
    size_t kk = (size_t)K * (size_t)K;
    double *cm = met ? lt_alloc(sizeof(double) * kk) : NULL; // counts: exact up to 2^53
    if (!local && met && !cm) local = lt_err_set(err, LT_ERR_OOM, "out of memory");
    if (!local && kk > INT_MAX) local = lt_err_set(err, LT_ERR_ARG, "%d classes: too many", K);
    double t[2] = {*sum, *wsum};
    lt_status st = lt_train_reduce(NULL, t, 2, local, err); // every rank can go on, or none
    *sum = t[0], *wsum = t[1];
    if (st || !met) {
        lt_free(cm);
        return st;
    }
    for (size_t i = 0; i < kk; i++) cm[i] = (double)met->confusion[i];
    st = lt_dist_sum_f64(cm, (int)kk, err);
    if (!st) {
        lt_cls_metrics_reset(met);
        for (int g = 0; g < K; g++)
            for (int p = 0; p < K; p++) {
                int64_t v = (int64_t)cm[(size_t)g * (size_t)K + (size_t)p];
                met->confusion[(size_t)g * (size_t)K + (size_t)p] = v;
                met->support[g] += v, met->n_pred[p] += v, met->n += v;
            }
    }
    lt_free(cm);
    return st;
}

lt_status lt_cls_evaluate(lt_model *m, lt_ctx *c, int B, int T, const lt_cls_head *h,
                          const lt_cls_data *d, lt_cls_metrics *met, float *probs, lt_err *err) {
    const int K = h->n_labels;
    if (B <= 0 || T <= 0 || K <= 0)
        return lt_err_set(err, LT_ERR_ARG, "evaluation with batch %d, length %d, %d classes", B, T,
                          K);
    if (d->n_labels != K)
        return lt_err_set(err, LT_ERR_ARG, "data has %d classes, the head %d", d->n_labels, K);
    if (met && met->n_labels != K)
        return lt_err_set(err, LT_ERR_ARG, "metrics for %d classes, the head has %d", met->n_labels,
                          K);
    lt_status st = LT_OK;
    lt_ctx *own = NULL;
    // Several ranks split the batches (batch k is rank k % N's) and gather the sums and the
    // confusion matrix below, unless probabilities of every example are wanted here. From here
    // a failure goes through that gathering: the other ranks wait there.
    const int N = probs ? 1 : lt_dist_size(), R = probs ? 0 : lt_dist_rank();
    if (!c) {
        lt_ctx_opts co = {.B = B, .T = T};
        st = lt_ctx_new(m, &co, &own, err);
        c = own;
    }
    size_t bt = (size_t)B * (size_t)T;
    int32_t *ids = lt_alloc(bt * 4), *lab = lt_alloc(bt * 4), *km = lt_alloc(bt * 4);
    int32_t *yb = lt_alloc(sizeof(int32_t) * (size_t)B);
    int64_t *idx = lt_alloc(sizeof(int64_t) * (size_t)B);
    float *sc = lt_alloc(sizeof(float) * (size_t)B * (size_t)K);
    if (!st && (!ids || !lab || !km || !yb || !idx || !sc))
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    if (st && N == 1) goto done;
    if (met) lt_cls_metrics_reset(met);
    lt_cls_head hh = *h;
    hh.gw = NULL;
    hh.labels = yb;
    const int32_t pad_fill = h->pad_id >= 0 ? h->pad_id : 0;
    double sum = 0, wsum = 0;
    for (int64_t i = (int64_t)R * B; i < d->x.n && !st; i += (int64_t)B * N) {
        for (int b = 0; b < B; b++) {
            idx[b] = i + b < d->x.n ? i + b : -1;
            yb[b] = idx[b] >= 0 ? d->y[idx[b]] : -1;
        }
        lt_batch_fill(&d->x, idx, B, T, pad_fill, ids, lab, km);
        lt_batch bt_ = {.ids = ids, .kmask = km};
        double ls = 0;
        if ((st = lt_model_cls_step(m, c, &bt_, &hh, 1.0f, false, 0, 0, &ls, sc, err))) break;
        sum += ls;
        for (int b = 0; b < B && idx[b] >= 0; b++) {
            const float *s = sc + (size_t)b * (size_t)K;
            if (probs) softmax_to(s, K, probs + (size_t)idx[b] * (size_t)K);
            if (yb[b] < 0) continue;
            wsum += h->class_w ? h->class_w[yb[b]] : 1.0f;
            if (met && (st = lt_cls_metrics_add(met, yb[b], argmax(s, K), err))) break;
        }
    }
    if (N > 1) st = gather_eval(met, &sum, &wsum, st, err);
    if (!st && met) {
        lt_cls_metrics_compute(met);
        met->loss = wsum > 0 ? sum / wsum : NAN;
    }
done:
    lt_free(ids), lt_free(lab), lt_free(km), lt_free(yb), lt_free(idx), lt_free(sc);
    lt_ctx_free(own);
    return st;
}

// ---------------------------------------------------------------------------------------------
// the training loop

void lt_cls_train_opts_default(lt_cls_train_opts *o) {
    memset(o, 0, sizeof *o);
    lt_train_opts_default(&o->t);
    o->t.T = 128;
    o->t.B = 8;
    o->pad_id = -1;
    o->best_metric = "macro_f1";
    o->plots = true;
}

void lt_cls_train_result_deinit(lt_cls_train_result *r) {
    lt_cls_metrics_deinit(&r->val);
    lt_cls_metrics_deinit(&r->val_final);
    lt_cls_metrics_deinit(&r->test);
    lt_free(r->hist);
    memset(r, 0, sizeof *r);
}

// Everything the loop keeps besides lt_train_state (and saves in checkpoints through the hook).
typedef struct cls_run {
    const lt_cls_train_opts *o;
    lt_model *m;
    lt_adapter *a;
    int K;
    int64_t total;
    double *step_loss, *step_acc, *step_ex; // (total) per optimizer step; examples seen after it
    lt_cls_point *hist;                     // (cap_hist)
    int n_hist, cap_hist;
    float *best_params; // (n_params)
    int64_t best_step;  // -1: none yet
    double best_value;
    lt_cls_metrics best_val, last_val, scratch;
    int64_t examples;
    char best_dir[4096];
} cls_run;

static bool is_better(const cls_run *r, double v, bool higher) {
    if (!isfinite(v)) return false;
    if (r->best_step < 0) return true;
    return higher ? v > r->best_value : v < r->best_value;
}

static lt_status write_text(const char *dir, const char *name, const char *text, lt_err *err) {
    char path[4096];
    if (!lt_path_join(path, sizeof path, dir, name))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    return lt_write_file_atomic(path, text, strlen(text), err);
}

static lt_status write_json(const char *dir, const char *name, const cJSON *j, lt_err *err) {
    char *s = cJSON_Print(j);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory writing %s", name);
    size_t n = strlen(s);
    char *t = lt_alloc(n + 2);
    lt_status st;
    if (!t) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory writing %s", name);
    } else {
        memcpy(t, s, n);
        t[n] = '\n', t[n + 1] = 0;
        st = write_text(dir, name, t, err);
    }
    lt_free(t);
    cJSON_free(s);
    return st;
}

// Adapter files (+ labels.json) of the current parameters into dir.
static lt_status save_adapter(const cls_run *r, const char *dir, lt_err *err) {
    lt_status st = lt_adapter_save_peft(r->a, r->m, dir, err);
    if (!st && r->o->labels_json) st = write_text(dir, "labels.json", r->o->labels_json, err);
    return st;
}

static lt_status save_best(cls_run *r, int64_t step, lt_err *err) {
    lt_status st = save_adapter(r, r->best_dir, err);
    cJSON *j = cJSON_CreateObject(), *mj = lt_cls_metrics_json(&r->best_val, r->o->label_names);
    if (!st && (!j || !mj)) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    if (!st) {
        cJSON_AddNumberToObject(j, "step", (double)step);
        cJSON_AddStringToObject(j, "metric", r->o->best_metric);
        cJSON_AddNumberToObject(j, "value", r->best_value);
        cJSON_AddItemToObject(j, "validation", mj);
        mj = NULL;
        st = write_json(r->best_dir, "best.json", j, err);
    }
    cJSON_Delete(j);
    cJSON_Delete(mj);
    return st;
}

// Curves: loss and accuracy against optimizer steps and against training examples seen.
static lt_status write_plots(const cls_run *r, int64_t steps, lt_err *err) {
    int nh = r->n_hist;
    size_t nd = (size_t)(steps > 0 ? steps : 1), nhd = (size_t)(nh > 0 ? nh : 1);
    double *xs = lt_alloc(sizeof(double) * nd), *buf = lt_alloc(sizeof(double) * nhd * 7);
    if (!xs || !buf) {
        lt_free(xs), lt_free(buf);
        return lt_err_set(err, LT_ERR_OOM, "out of memory for plots");
    }
    double *hs = buf, *he = buf + nhd, *tl = buf + 2 * nhd, *ta = buf + 3 * nhd,
           *vl = buf + 4 * nhd, *va = buf + 5 * nhd, *vf = buf + 6 * nhd;
    for (int64_t i = 0; i < steps; i++) xs[i] = (double)(i + 1);
    for (int i = 0; i < nh; i++) {
        const lt_cls_point *p = &r->hist[i];
        hs[i] = (double)p->step, he[i] = (double)p->examples;
        tl[i] = p->train_loss, ta[i] = p->train_acc, vl[i] = p->val_loss, va[i] = p->val_acc,
        vf[i] = p->val_f1;
    }
    const int ns = (int)steps;
    lt_plot_series ls[2][3], as[2][3];
    for (int v = 0; v < 2; v++) { // v = 0: steps, 1: examples seen
        const double *x1 = v ? r->step_ex : xs, *xh = v ? he : hs;
        ls[v][0] = (lt_plot_series){.name = "train (each step)",
                                    .x = x1,
                                    .y = r->step_loss,
                                    .n = ns,
                                    .color = "#aec7e8",
                                    .width = 1.0f};
        ls[v][1] = (lt_plot_series){.name = "train (mean between evals)",
                                    .x = xh,
                                    .y = tl,
                                    .n = nh,
                                    .color = "#1f77b4",
                                    .markers = true};
        ls[v][2] = (lt_plot_series){
            .name = "validation", .x = xh, .y = vl, .n = nh, .color = "#ff7f0e", .markers = true};
        as[v][0] = (lt_plot_series){.name = "train accuracy (mean between evals)",
                                    .x = xh,
                                    .y = ta,
                                    .n = nh,
                                    .color = "#1f77b4",
                                    .markers = true};
        as[v][1] = (lt_plot_series){.name = "validation accuracy",
                                    .x = xh,
                                    .y = va,
                                    .n = nh,
                                    .color = "#ff7f0e",
                                    .markers = true};
        as[v][2] = (lt_plot_series){.name = "validation macro-F1",
                                    .x = xh,
                                    .y = vf,
                                    .n = nh,
                                    .color = "#2ca02c",
                                    .markers = true,
                                    .dashed = true};
    }
    double amin = 1; // accuracy panels: from a round value below the lowest point up to 1
    for (int i = 0; i < nh; i++) {
        if (isfinite(ta[i]) && ta[i] < amin) amin = ta[i];
        if (isfinite(va[i]) && va[i] < amin) amin = va[i];
        if (isfinite(vf[i]) && vf[i] < amin) amin = vf[i];
    }
    amin = floor((amin - 0.02) * 10) / 10;
    if (amin < 0) amin = 0;
    if (amin > 0.9) amin = 0.9;
    lt_plot_panel p[4] = {
        {.title = "Loss vs steps",
         .xlabel = "optimizer step",
         .ylabel = "cross-entropy loss",
         .series = ls[0],
         .n_series = 3,
         .y_zero = true},
        {.title = "Accuracy vs steps",
         .xlabel = "optimizer step",
         .ylabel = "accuracy / macro-F1",
         .series = as[0],
         .n_series = 3,
         .y_fixed = true,
         .y_min = amin,
         .y_max = 1 + (1 - amin) * 0.03},
        {.title = "Loss vs examples seen",
         .xlabel = "training examples seen",
         .ylabel = "cross-entropy loss",
         .series = ls[1],
         .n_series = 3,
         .y_zero = true},
        {.title = "Accuracy vs examples seen",
         .xlabel = "training examples seen",
         .ylabel = "accuracy / macro-F1",
         .series = as[1],
         .n_series = 3,
         .y_fixed = true,
         .y_min = amin,
         .y_max = 1 + (1 - amin) * 0.03},
    };
    char path[4096];
    lt_status st;
    if (!lt_path_join(path, sizeof path, r->o->t.out_dir, "curves.svg"))
        st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", r->o->t.out_dir);
    else
        st = lt_plot_svg_write(path, p, 4, 2, 560, 360,
                               "loratune: sequence classification training", err);
    lt_free(xs), lt_free(buf);
    return st;
}

static void add_num(cJSON *j, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(j, k, v);
    else
        cJSON_AddNullToObject(j, k);
}

static lt_status write_report(const cls_run *r, const lt_cls_train_result *res, lt_err *err) {
    const lt_cls_train_opts *o = r->o;
    cJSON *j = cJSON_CreateObject();
    if (!j) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    cJSON_AddStringToObject(j, "task", "classify");
    cJSON *lab = cJSON_AddArrayToObject(j, "labels");
    char b[32];
    for (int k = 0; k < r->K && lab; k++) {
        snprintf(b, sizeof b, "%d", k);
        cJSON_AddItemToArray(lab, cJSON_CreateString(o->label_names ? o->label_names[k] : b));
    }
    if (o->report_config)
        cJSON_AddItemToObject(j, "config", cJSON_Duplicate(o->report_config, true));
    cJSON_AddNumberToObject(j, "steps", (double)res->steps);
    cJSON_AddNumberToObject(j, "examples_seen", (double)res->examples_seen);
    add_num(j, "train_seconds", res->seconds);
    add_num(j, "examples_per_s", res->examples_per_s);
    add_num(j, "peak_rss_mb", (double)res->peak_rss_kb / 1024.0);
    cJSON *tr = cJSON_AddObjectToObject(j, "train");
    if (tr) {
        add_num(tr, "first_loss", res->first_loss);
        add_num(tr, "last_loss", res->last_loss);
    }
    cJSON *best = cJSON_AddObjectToObject(j, "best");
    if (best) {
        cJSON_AddStringToObject(best, "metric", o->best_metric);
        if (res->best_step >= 0) {
            cJSON_AddNumberToObject(best, "step", (double)res->best_step);
            add_num(best, "value", res->best_value);
            cJSON_AddStringToObject(best, "adapter", r->best_dir);
        } else {
            cJSON_AddNullToObject(best, "step");
            cJSON_AddStringToObject(best, "note", "no validation set: the final adapter is used");
        }
    }
    if (res->val.n > 0)
        cJSON_AddItemToObject(j, "validation", lt_cls_metrics_json(&res->val, o->label_names));
    if (res->val_final.n > 0)
        cJSON_AddItemToObject(j, "validation_final",
                              lt_cls_metrics_json(&res->val_final, o->label_names));
    if (res->test.n > 0)
        cJSON_AddItemToObject(j, "test", lt_cls_metrics_json(&res->test, o->label_names));
    else
        cJSON_AddNullToObject(j, "test");
    cJSON *h = cJSON_AddArrayToObject(j, "history");
    for (int i = 0; i < res->n_hist && h; i++) {
        const lt_cls_point *p = &res->hist[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddItemToArray(h, e);
        cJSON_AddNumberToObject(e, "step", (double)p->step);
        cJSON_AddNumberToObject(e, "examples", (double)p->examples);
        add_num(e, "train_loss", p->train_loss);
        add_num(e, "train_accuracy", p->train_acc);
        add_num(e, "val_loss", p->val_loss);
        add_num(e, "val_accuracy", p->val_acc);
        add_num(e, "val_macro_f1", p->val_f1);
    }
    lt_status st = write_json(o->t.out_dir, "report.json", j, err);
    cJSON_Delete(j);
    return st;
}

// ---- checkpoint hook: best parameters and their validation confusion matrix, per-step curves,
// evaluation history (as F64 rows of 7: step, examples, train loss/acc, val loss/acc/F1)

typedef struct cls_ckpt {
    cls_run *r;
    int64_t steps; // optimizer steps done when saving
    double *hist7; // (cap_hist * 7) staging for the history rows
} cls_ckpt;

static lt_status ckpt_save(lt_st_writer *w, void *ud, lt_err *err) {
    cls_ckpt *c = ud;
    cls_run *r = c->r;
    char buf[64];
    lt_status st = LT_OK;
    int64_t np[1] = {r->a->n_params}, kk[1] = {(int64_t)r->K * r->K},
            hn[1] = {(int64_t)r->n_hist * 7}, sn[1] = {c->steps};
    if (r->best_step >= 0) {
        st = lt_st_writer_add(w, "cls.best_params", LT_DTYPE_F32, 1, np, r->best_params, err);
        if (!st)
            st = lt_st_writer_add(w, "cls.best_confusion", LT_DTYPE_I64, 1, kk,
                                  r->best_val.confusion, err);
        snprintf(buf, sizeof buf, "%.17g", r->best_val.loss);
        if (!st) st = lt_st_writer_meta(w, "cls.best_loss", buf, err);
    }
    snprintf(buf, sizeof buf, "%lld", (long long)r->best_step);
    if (!st) st = lt_st_writer_meta(w, "cls.best_step", buf, err);
    snprintf(buf, sizeof buf, "%.17g", r->best_value);
    if (!st) st = lt_st_writer_meta(w, "cls.best_value", buf, err);
    snprintf(buf, sizeof buf, "%lld", (long long)r->examples);
    if (!st) st = lt_st_writer_meta(w, "cls.examples", buf, err);
    for (int i = 0; i < r->n_hist; i++) {
        const lt_cls_point *p = &r->hist[i];
        double row[7] = {(double)p->step, (double)p->examples, p->train_loss, p->train_acc,
                         p->val_loss,     p->val_acc,          p->val_f1};
        memcpy(c->hist7 + (size_t)i * 7, row, sizeof row);
    }
    if (!st && r->n_hist > 0)
        st = lt_st_writer_add(w, "cls.hist", LT_DTYPE_F64, 1, hn, c->hist7, err);
    if (!st && c->steps > 0)
        st = lt_st_writer_add(w, "cls.step_loss", LT_DTYPE_F64, 1, sn, r->step_loss, err);
    if (!st && c->steps > 0)
        st = lt_st_writer_add(w, "cls.step_acc", LT_DTYPE_F64, 1, sn, r->step_acc, err);
    if (!st && c->steps > 0)
        st = lt_st_writer_add(w, "cls.step_ex", LT_DTYPE_F64, 1, sn, r->step_ex, err);
    return st;
}

static bool meta_num(const lt_safetensors *f, const char *k, double *v) {
    const char *s = lt_safetensors_meta(f, k);
    char *end;
    if (!s) return false;
    *v = strtod(s, &end);
    return end != s && !*end;
}

static lt_status ckpt_load(const lt_safetensors *f, void *ud, lt_err *err) {
    cls_ckpt *c = ud;
    cls_run *r = c->r;
    const char *path = lt_safetensors_path(f);
    double step, best_step, best_value, ex;
    if (!meta_num(f, "step", &step) || !meta_num(f, "cls.best_step", &best_step) ||
        !meta_num(f, "cls.best_value", &best_value) || !meta_num(f, "cls.examples", &ex) ||
        step < 0 || step > (double)r->total)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: not a classification checkpoint of this run "
                          "(cls.* metadata missing or step outside [0, %lld])",
                          path, (long long)r->total);
    int64_t steps = (int64_t)step;
    r->best_step = (int64_t)best_step;
    r->best_value = best_value;
    r->examples = (int64_t)ex;
    if (r->best_step >= 0) {
        const lt_st_tensor *bp = lt_safetensors_find(f, "cls.best_params"),
                           *bc = lt_safetensors_find(f, "cls.best_confusion");
        double bl = NAN;
        if (!bp || bp->dtype != LT_DTYPE_F32 || bp->numel != r->a->n_params || !bc ||
            bc->dtype != LT_DTYPE_I64 || bc->numel != (int64_t)r->K * r->K)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: cls.best_params / cls.best_confusion missing "
                              "or of the wrong size",
                              path);
        memcpy(r->best_params, bp->data, sizeof(float) * (size_t)r->a->n_params);
        lt_cls_metrics_reset(&r->best_val);
        const int64_t *cm = bc->data; // copied through memcpy: the mapping may be unaligned
        for (int g = 0; g < r->K; g++)
            for (int p = 0; p < r->K; p++) {
                int64_t v;
                memcpy(&v,
                       (const char *)cm + sizeof(int64_t) * ((size_t)g * (size_t)r->K + (size_t)p),
                       sizeof v);
                for (int64_t i = 0; i < v; i++) lt_cls_metrics_add(&r->best_val, g, p, NULL);
            }
        lt_cls_metrics_compute(&r->best_val);
        meta_num(f, "cls.best_loss", &bl);
        r->best_val.loss = bl;
    }
    const lt_st_tensor *h = lt_safetensors_find(f, "cls.hist");
    r->n_hist = 0;
    if (h) {
        if (h->dtype != LT_DTYPE_F64 || h->numel % 7 || h->numel / 7 > r->cap_hist)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: cls.hist has the wrong size", path);
        memcpy(c->hist7, h->data, h->nbytes);
        for (int64_t i = 0; i < h->numel / 7; i++) {
            const double *row = c->hist7 + i * 7;
            r->hist[i] = (lt_cls_point){.step = (int64_t)row[0],
                                        .examples = (int64_t)row[1],
                                        .train_loss = row[2],
                                        .train_acc = row[3],
                                        .val_loss = row[4],
                                        .val_acc = row[5],
                                        .val_f1 = row[6]};
        }
        r->n_hist = (int)(h->numel / 7);
    }
    const char *names[3] = {"cls.step_loss", "cls.step_acc", "cls.step_ex"};
    double *dst[3] = {r->step_loss, r->step_acc, r->step_ex};
    for (int i = 0; i < 3 && steps > 0; i++) {
        const lt_st_tensor *t = lt_safetensors_find(f, names[i]);
        if (!t || t->dtype != LT_DTYPE_F64 || t->numel != steps)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: %s missing or not F64[%lld]", path, names[i],
                              (long long)steps);
        memcpy(dst[i], t->data, t->nbytes);
    }
    return LT_OK;
}

static void metrics_line(FILE *f, const char *split, int64_t step, int64_t ex,
                         const lt_cls_metrics *v, bool best) {
    if (!f) return;
    fprintf(f, "{\"step\": %lld, \"examples\": %lld, \"split\": \"%s\", ", (long long)step,
            (long long)ex, split);
    if (isfinite(v->loss))
        fprintf(f, "\"loss\": %.6f, ", v->loss);
    else
        fprintf(f, "\"loss\": null, ");
    fprintf(f,
            "\"accuracy\": %.6f, \"macro_precision\": %.6f, \"macro_recall\": %.6f, "
            "\"macro_f1\": %.6f, \"n\": %lld, \"best\": %s}\n",
            v->accuracy, v->macro_precision, v->macro_recall, v->macro_f1, (long long)v->n,
            best ? "true" : "false");
    fflush(f);
}

lt_status lt_cls_train(lt_model *m, lt_adapter *a, const lt_cls_data *train, const lt_cls_data *val,
                       const lt_cls_data *test, const lt_cls_train_opts *o,
                       lt_cls_train_result *res, lt_err *err) {
    const lt_train_opts *to = &o->t;
    memset(res, 0, sizeof *res);
    res->best_step = -1;
    res->first_loss = res->last_loss = res->best_value = NAN;
    if (!a->n_labels || !a->score)
        return lt_err_set(err, LT_ERR_ARG, "the adapter has no classification head (n_labels = 0)");
    const int K = a->n_labels;
    if (train->n_labels != K || (val && val->n_labels != K) || (test && test->n_labels != K))
        return lt_err_set(err, LT_ERR_ARG,
                          "data sets and head disagree on the number of classes "
                          "(head %d, training data %d)",
                          K, train->n_labels);
    if (to->B <= 0 || to->T < 1 || to->grad_accum <= 0)
        return lt_err_set(err, LT_ERR_ARG,
                          "batch %d, sequence %d, accumulation %d: all must be "
                          "positive",
                          to->B, to->T, to->grad_accum);
    if (!(to->lr >= 0) || !(to->beta1 >= 0 && to->beta1 < 1) ||
        !(to->beta2 >= 0 && to->beta2 < 1) || !(to->eps > 0) || !(to->weight_decay >= 0))
        return lt_err_set(err, LT_ERR_ARG,
                          "bad optimizer settings (lr %g, betas %g %g, eps %g, "
                          "weight decay %g)",
                          (double)to->lr, (double)to->beta1, (double)to->beta2, (double)to->eps,
                          (double)to->weight_decay);
    if (to->max_steps <= 0 && to->epochs <= 0)
        return lt_err_set(err, LT_ERR_ARG, "give a number of epochs or max steps");
    if (train->x.n == 0) return lt_err_set(err, LT_ERR_ARG, "the training set is empty");
    for (int64_t i = 0; i < train->x.n; i++)
        if (train->y[i] < 0)
            return lt_err_set(err, LT_ERR_ARG, "training example %lld has no class", (long long)i);
    const char *bm = o->best_metric ? o->best_metric : "macro_f1";
    double tmpv;
    bool higher;
    lt_cls_train_opts oo = *o;
    oo.best_metric = bm;
    {
        lt_cls_metrics probe = {.n_labels = 1};
        if (!lt_cls_metrics_get(&probe, bm, &tmpv, &higher))
            return lt_err_set(err, LT_ERR_ARG,
                              "unknown best-checkpoint metric \"%s\" (macro_f1, "
                              "accuracy, macro_precision, macro_recall, weighted_f1 or loss)",
                              bm);
    }
    const int B = to->B, T = to->T, A = to->grad_accum;
    const int R = lt_dist_rank(), N = lt_dist_size();
    const bool lead = R == 0, talk = lead && !to->quiet; // rank 0 alone writes and prints
    const int64_t n = train->x.n, total = lt_train_total_steps(to, n),
                  warmup = lt_train_warmup_steps(to, total);
    const bool has_val = val && val->x.n > 0;
    size_t bt = (size_t)B * (size_t)T;
    cls_run r = {
        .o = &oo, .m = m, .a = a, .K = K, .total = total, .best_step = -1, .best_value = NAN};
    cls_ckpt ck = {.r = &r};
    lt_ckpt_hook hook = {.save = ckpt_save, .load = ckpt_load, .ud = &ck};
    lt_train_state s = {0};
    lt_ctx *c = NULL;
    FILE *mf = NULL;
    char ckpt_path[4096] = "";
    lt_status st = LT_OK;
    int32_t *ids = lt_alloc(bt * 4), *lab = lt_alloc(bt * 4), *km = lt_alloc(bt * 4);
    int32_t *yb = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)A);
    int64_t *perm = lt_alloc(sizeof(int64_t) * (size_t)n);
    int64_t *idx = lt_alloc(sizeof(int64_t) * (size_t)B * (size_t)A);
    float *sc = lt_alloc(sizeof(float) * (size_t)B * (size_t)K);
    r.step_loss = lt_alloc(sizeof(double) * (size_t)total);
    r.step_acc = lt_alloc(sizeof(double) * (size_t)total);
    r.step_ex = lt_alloc(sizeof(double) * (size_t)total);
    r.cap_hist = (int)((to->eval_every > 0 ? total / to->eval_every : 0) + 2);
    r.hist = lt_calloc((size_t)r.cap_hist, sizeof(lt_cls_point));
    r.best_params = lt_alloc(sizeof(float) * (size_t)a->n_params);
    ck.hist7 = lt_alloc(sizeof(double) * 7 * (size_t)r.cap_hist);
    // Setup: a failure may be one rank's own (memory, files), so every rank reaches the
    // agreement after it, which stops all of them together.
    if (!ck.hist7 || !ids || !lab || !km || !yb || !perm || !idx || !sc || !r.step_loss ||
        !r.step_acc || !r.step_ex || !r.hist || !r.best_params) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto setup_done;
    }
    if ((st = lt_cls_metrics_init(&r.best_val, K, err)) ||
        (st = lt_cls_metrics_init(&r.last_val, K, err)) ||
        (st = lt_cls_metrics_init(&r.scratch, K, err)) ||
        (st = lt_train_state_init(&s, a->n_params, err)) ||
        (st = lt_dist_reserve(a->n_params > (int64_t)K * K ? a->n_params : (int64_t)K * K, err)))
        goto setup_done; // (the reserve: gradient and confusion-matrix sums)
    if (to->optim == LT_OPTIM_ADAMW_8BIT && (st = lt_train_state_use_8bit(&s, a, err)))
        goto setup_done;
    lt_ctx_opts co = {.B = B, .T = T, .train = true, .checkpoint = to->checkpoint_activations};
    if ((st = lt_ctx_new(m, &co, &c, err))) goto setup_done;
    if (to->out_dir) {
        if (!lt_path_join(ckpt_path, sizeof ckpt_path, to->out_dir, "checkpoint.safetensors") ||
            !lt_path_join(r.best_dir, sizeof r.best_dir, to->out_dir, "best")) {
            st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", to->out_dir);
            goto setup_done;
        }
        if (lead && (st = lt_mkdir_p(to->out_dir, err))) goto setup_done;
        // rank 0 reads the checkpoint; the others get its state below
        if (lead && to->resume && lt_file_exists(ckpt_path)) {
            if ((st = lt_train_checkpoint_load(ckpt_path, a, &s, to, &hook, err))) goto setup_done;
            if (talk) lt_info("resuming from %s at step %lld", ckpt_path, (long long)s.step);
        }
    }
    if (lead && to->metrics_path && !(mf = fopen(to->metrics_path, s.step > 0 ? "a" : "w")))
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot open metrics file for writing",
                        to->metrics_path);
setup_done:
    if ((st = lt_dist_agree(st, err))) goto done;
    if (N > 1) { // identical start: parameters, moments, position, and the best so far
        double best[3] = {(double)r.best_step, r.best_value, (double)r.examples};
        if ((st = lt_train_sync_state(a, &s, err)) ||
            (st = lt_dist_bcast(best, sizeof best, 0, err)) ||
            (st = lt_dist_bcast(r.best_params, sizeof(float) * (size_t)a->n_params, 0, err)))
            goto done;
        r.best_step = (int64_t)best[0], r.best_value = best[1], r.examples = (int64_t)best[2];
    }
    lt_dataset_order(perm, n, to->seed, s.epoch);
    lt_cls_head h = {
        .n_labels = K, .pad_id = o->pad_id, .w = a->score, .gw = a->gscore, .class_w = o->class_w};
    const int32_t pad_fill = o->pad_id >= 0 ? o->pad_id : 0;
    lt_progress pb;
    lt_progress_init(&pb, "train", (long)total, "step");
    double t0 = lt_time_sec(), train_time = 0;
    int64_t start_step = s.step, ex_run = 0;
    while (s.step < total) {
        double ts = lt_time_sec();
        lt_train_take(&s, perm, n, idx, B * A);
        double wsum = 0;
        int nreal = 0;
        for (int i = 0; i < B * A; i++) {
            yb[i] = idx[i] >= 0 ? train->y[idx[i]] : -1;
            if (yb[i] >= 0) wsum += o->class_w ? o->class_w[yb[i]] : 1.0f, nreal++;
        }
        float scale = wsum > 0 ? (float)(1.0 / wsum) : 0.0f;
        lt_adapter_zero_grad(a);
        double loss_sum = 0;
        int correct = 0;
        lt_status step_st = LT_OK;
        for (int mb = R; mb < A && !step_st; mb += N) { // this rank's micro-batches
            lt_batch_fill(&train->x, idx + mb * B, B, T, pad_fill, ids, lab, km);
            lt_batch b = {.ids = ids, .kmask = km};
            h.labels = yb + mb * B;
            double ls = 0;
            if ((step_st = lt_model_cls_step(m, c, &b, &h, scale, true, to->seed, s.step, &ls, sc,
                                             err)))
                break;
            loss_sum += ls;
            for (int i = 0; i < B; i++)
                if (h.labels[i] >= 0)
                    correct += argmax(sc + (size_t)i * (size_t)K, K) == h.labels[i];
        }
        double sums[2] = {loss_sum, (double)correct}; // and the gradients, over ranks
        if ((st = lt_train_reduce(a, sums, 2, step_st, err))) goto done;
        loss_sum = sums[0], correct = (int)sums[1];
        double loss = wsum > 0 ? loss_sum / wsum : NAN, acc = nreal ? (double)correct / nreal : NAN;
        float lr;
        double gnorm = lt_train_apply(a, &s, to, total, warmup, perm, n, &lr);
        r.examples += nreal;
        ex_run += nreal;
        train_time += lt_time_sec() - ts;
        r.step_loss[s.step - 1] = loss, r.step_acc[s.step - 1] = acc;
        r.step_ex[s.step - 1] = (double)r.examples;
        if (s.step == start_step + 1) res->first_loss = loss;
        res->last_loss = loss;
        if (mf) {
            fprintf(mf,
                    "{\"step\": %lld, \"epoch\": %lld, \"examples\": %lld, \"loss\": %.6f, "
                    "\"accuracy\": %.4f, \"lr\": %.6g, \"grad_norm\": %.6f, \"elapsed_s\": %.3f}\n",
                    (long long)s.step, (long long)s.epoch, (long long)r.examples, loss, acc,
                    (double)lr, gnorm, lt_time_sec() - t0);
            fflush(mf);
        }
        bool last = s.step == total;
        if ((to->eval_every > 0 && s.step % to->eval_every == 0) || last) {
            lt_cls_point p = {.step = s.step,
                              .examples = r.examples,
                              .val_loss = NAN,
                              .val_acc = NAN,
                              .val_f1 = NAN};
            int64_t from = r.n_hist > 0 ? r.hist[r.n_hist - 1].step : 0, cnt = 0;
            double sl = 0, sa = 0;
            for (int64_t i = from; i < s.step; i++)
                if (isfinite(r.step_loss[i])) sl += r.step_loss[i], sa += r.step_acc[i], cnt++;
            p.train_loss = cnt ? sl / (double)cnt : NAN;
            p.train_acc = cnt ? sa / (double)cnt : NAN;
            bool improved = false;
            if (has_val) {
                if ((st = lt_cls_evaluate(m, c, B, T, &h, val, &r.last_val, NULL, err))) goto done;
                p.val_loss = r.last_val.loss, p.val_acc = r.last_val.accuracy,
                p.val_f1 = r.last_val.macro_f1;
                double v;
                lt_cls_metrics_get(&r.last_val, bm, &v, &higher);
                if ((improved = is_better(&r, v, higher))) {
                    r.best_step = s.step, r.best_value = v;
                    memcpy(r.best_params, a->params, sizeof(float) * (size_t)a->n_params);
                    lt_cls_metrics_copy(&r.best_val, &r.last_val);
                    if (lead && to->out_dir) st = save_best(&r, s.step, err);
                    if ((st = lt_dist_agree(st, err))) goto done;
                }
                metrics_line(mf, "validation", s.step, r.examples, &r.last_val, improved);
                if (talk)
                    lt_info("step %lld: validation loss %.4f, accuracy %.4f, macro-F1 %.4f%s",
                            (long long)s.step, r.last_val.loss, r.last_val.accuracy,
                            r.last_val.macro_f1, improved ? " (best so far)" : "");
            }
            if (r.n_hist < r.cap_hist) r.hist[r.n_hist++] = p;
            if (lead && to->out_dir && o->plots) st = write_plots(&r, s.step, err);
            if ((st = lt_dist_agree(st, err))) goto done;
        }
        if (talk) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f acc %.2f lr %.2e", loss, acc, (double)lr);
            lt_progress_update(&pb, (long)s.step, extra);
        }
        if (ckpt_path[0] && to->save_every > 0 && s.step % to->save_every == 0 && !last) {
            ck.steps = s.step;
            if (lead) st = lt_train_checkpoint_save(ckpt_path, a, &s, to, &hook, err);
            if ((st = lt_dist_agree(st, err))) goto done; // a failed write stops every rank
        }
        if (to->stop_after > 0 && s.step >= to->stop_after && !last) goto done; // simulated kill
    }
    if (talk) lt_progress_finish(&pb);
    res->seconds = lt_time_sec() - t0;
    res->examples_per_s = train_time > 0 ? (double)ex_run / train_time : 0;
    // from here to the end, a failure of one rank reaches the others through lt_dist_agree
    if (!(st = lt_cls_metrics_init(&res->val, K, err)) &&
        !(st = lt_cls_metrics_init(&res->val_final, K, err)) &&
        !(st = lt_cls_metrics_init(&res->test, K, err)) && has_val)
        lt_cls_metrics_copy(&res->val_final, &r.last_val);
    if (!st && lead && to->out_dir) st = save_adapter(&r, to->out_dir, err); // the final adapter
    if ((st = lt_dist_agree(st, err))) goto done;
    if (r.best_step >= 0) { // continue with the best parameters
        memcpy(a->params, r.best_params, sizeof(float) * (size_t)a->n_params);
        lt_cls_metrics_copy(&res->val, &r.best_val);
    }
    if (test && test->x.n > 0 &&
        (st = lt_cls_evaluate(m, c, B, T, &h, test, &res->test, NULL, err)))
        goto done;
    res->best_step = r.best_step;
    res->best_value = r.best_value;
    res->steps = s.step;
    res->examples_seen = r.examples;
    res->peak_rss_kb = lt_peak_rss_kb();
    res->hist = lt_alloc(sizeof(lt_cls_point) * (size_t)(r.n_hist > 0 ? r.n_hist : 1));
    if (!res->hist) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    } else {
        memcpy(res->hist, r.hist, sizeof(lt_cls_point) * (size_t)r.n_hist);
        res->n_hist = r.n_hist;
    }
    if (!st && lead && to->out_dir && !(st = write_report(&r, res, err)) &&
        lt_file_exists(ckpt_path))
        remove(ckpt_path); // the run is complete
    if ((st = lt_dist_agree(st, err))) goto done;
done:
    if (st || s.step < total) { // failed or stopped early: the result holds the position only
        res->steps = s.step;
        res->examples_seen = r.examples;
    }
    if (mf) fclose(mf);
    lt_ctx_free(c);
    lt_train_state_deinit(&s);
    lt_cls_metrics_deinit(&r.best_val), lt_cls_metrics_deinit(&r.last_val);
    lt_cls_metrics_deinit(&r.scratch);
    lt_free(ids), lt_free(lab), lt_free(km), lt_free(yb), lt_free(perm), lt_free(idx), lt_free(sc);
    lt_free(r.step_loss), lt_free(r.step_acc), lt_free(r.step_ex), lt_free(r.hist);
    lt_free(r.best_params), lt_free(ck.hist7);
    return st;
}
