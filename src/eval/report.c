/*
 * report.c - the file side of evaluation: JSONL predictions and gold records as cJSON objects,
 * joining them by position or by id (mismatches are errors, never silent truncations), field
 * access, atomic report writing, before/after comparison, and perplexity over a dataset (through
 * lt_eval_dataset of the training module).
 */
#include "eval/eval.h"
#include "train/train.h"

#include <math.h>
#include <string.h>

void lt_jsonl_deinit(lt_jsonl *j) {
    for (int64_t i = 0; i < j->n; i++) cJSON_Delete(j->rec[i]);
    lt_free(j->rec);
    lt_free(j->line);
    lt_free(j->path);
    memset(j, 0, sizeof *j);
}

lt_status lt_jsonl_read(const char *path, lt_jsonl *out, lt_err *err) {
    char *data = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(path, &data, &n, err);
    if (st) return st;
    lt_jsonl j = {0};
    int64_t cap = 0, line = 0;
    if (!(j.path = lt_strdup(path))) goto oom;
    size_t p = 0;
    if (n >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) p = 3; // UTF-8 BOM
    while (p < n) {
        size_t e = p;
        while (e < n && data[e] != '\n') e++;
        line++;
        size_t b = p, q = e;
        while (b < q && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r')) b++;
        while (q > b && (data[q - 1] == ' ' || data[q - 1] == '\t' || data[q - 1] == '\r')) q--;
        p = e + 1;
        if (b == q) continue;
        if (j.n == cap) {
            int64_t nc = cap ? 2 * cap : 64;
            cJSON **r = lt_realloc(j.rec, sizeof(cJSON *) * (size_t)nc);
            if (!r) goto oom;
            j.rec = r;
            int64_t *l = lt_realloc(j.line, sizeof(int64_t) * (size_t)nc);
            if (!l) goto oom;
            j.line = l;
            cap = nc;
        }
        char what[600];
        snprintf(what, sizeof what, "%s line %lld", path, (long long)line);
        cJSON *rec = NULL;
        if ((st = lt_json_parse(data + b, q - b, what, &rec, err))) goto fail;
        if (!cJSON_IsObject(rec)) {
            st =
                lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: expected a JSON object per line, found %s",
                           path, (long long)line, lt_json_type_name(rec));
            cJSON_Delete(rec);
            goto fail;
        }
        j.rec[j.n] = rec;
        j.line[j.n++] = line;
    }
    lt_free(data);
    *out = j;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory reading %s", path);
fail:
    lt_free(data);
    lt_jsonl_deinit(&j);
    return st;
}

// The id of a record as text ("7" for the number 7); false when missing or not a string/integer.
static bool id_text(const cJSON *rec, const char *key, char *buf, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    int64_t x;
    if (cJSON_IsString(v))
        snprintf(buf, n, "%s", v->valuestring);
    else if (lt_json_as_int(v, &x))
        snprintf(buf, n, "%lld", (long long)x);
    else
        return false;
    return true;
}

typedef struct id_ent {
    uint64_t h;
    int64_t idx;
} id_ent;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// Open-addressing table from id text to record index.
typedef struct id_map {
    id_ent *e;
    size_t cap;
} id_map;

static lt_status map_build(const lt_jsonl *f, const char *key, id_map *m, lt_err *err) {
    m->cap = 16;
    while (m->cap < (size_t)f->n * 2) m->cap *= 2;
    m->e = lt_alloc(sizeof(id_ent) * m->cap);
    if (!m->e) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    for (size_t i = 0; i < m->cap; i++) m->e[i].idx = -1;
    char a[512], b[512];
    for (int64_t i = 0; i < f->n; i++) {
        if (!id_text(f->rec[i], key, a, sizeof a))
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s:%lld: no \"%s\" (a string or an integer) to "
                              "join on",
                              f->path, (long long)f->line[i], key);
        uint64_t h = hash_str(a);
        size_t k = h & (m->cap - 1);
        while (m->e[k].idx >= 0) {
            if (m->e[k].h == h && id_text(f->rec[m->e[k].idx], key, b, sizeof b) && !strcmp(a, b))
                return lt_err_set(err, LT_ERR_FORMAT,
                                  "%s:%lld: %s \"%s\" also appears on line %lld", f->path,
                                  (long long)f->line[i], key, a, (long long)f->line[m->e[k].idx]);
            k = (k + 1) & (m->cap - 1);
        }
        m->e[k].h = h, m->e[k].idx = i;
    }
    return LT_OK;
}

static int64_t map_find(const id_map *m, const lt_jsonl *f, const char *key, const char *id) {
    uint64_t h = hash_str(id);
    char b[512];
    for (size_t k = h & (m->cap - 1); m->e[k].idx >= 0; k = (k + 1) & (m->cap - 1))
        if (m->e[k].h == h && id_text(f->rec[m->e[k].idx], key, b, sizeof b) && !strcmp(b, id))
            return m->e[k].idx;
    return -1;
}

lt_status lt_eval_join(const lt_jsonl *pred, const lt_jsonl *gold, const char *id_key,
                       int64_t *pred_of_gold, lt_err *err) {
    if (!id_key) {
        if (pred->n != gold->n)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s has %lld predictions but %s has %lld gold "
                              "records: joined by position they must be equal (use --join-key to "
                              "join by id)",
                              pred->path, (long long)pred->n, gold->path, (long long)gold->n);
        for (int64_t i = 0; i < gold->n; i++) pred_of_gold[i] = i;
        return LT_OK;
    }
    id_map pm = {0}, gm = {0};
    lt_status st = map_build(pred, id_key, &pm, err);
    if (!st) st = map_build(gold, id_key, &gm, err);
    char id[512];
    for (int64_t i = 0; i < gold->n && !st; i++) {
        id_text(gold->rec[i], id_key, id, sizeof id);
        pred_of_gold[i] = map_find(&pm, pred, id_key, id);
        if (pred_of_gold[i] < 0)
            st = lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: %s \"%s\" has no prediction in %s",
                            gold->path, (long long)gold->line[i], id_key, id, pred->path);
    }
    for (int64_t i = 0; i < pred->n && !st; i++) {
        id_text(pred->rec[i], id_key, id, sizeof id);
        if (map_find(&gm, gold, id_key, id) < 0)
            st = lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: %s \"%s\" is not in the gold file %s",
                            pred->path, (long long)pred->line[i], id_key, id, gold->path);
    }
    lt_free(pm.e);
    lt_free(gm.e);
    return st;
}

const char *lt_eval_field_text(const cJSON *rec, const char *key, char **owned) {
    *owned = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    int64_t x;
    char buf[64];
    if (cJSON_IsBool(v))
        snprintf(buf, sizeof buf, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v) && lt_json_as_int(v, &x))
        snprintf(buf, sizeof buf, "%lld", (long long)x);
    else if (cJSON_IsNumber(v))
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
    else {
        char *t = cJSON_PrintUnformatted(v);
        if (!t) return NULL;
        *owned = lt_strdup(t);
        cJSON_free(t);
        return *owned;
    }
    *owned = lt_strdup(buf);
    return *owned;
}

const char *lt_eval_pick_key(const cJSON *rec, const char *const *keys, int n) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, keys[i]);
        if (v && !cJSON_IsNull(v)) return keys[i];
    }
    return NULL;
}

lt_status lt_report_write(const char *path, const cJSON *report, lt_err *err) {
    char *t = cJSON_Print(report);
    if (!t) return lt_err_set(err, LT_ERR_OOM, "out of memory printing the report");
    size_t n = strlen(t);
    lt_status st;
    lt_afile f;
    if ((st = lt_afile_open(&f, path, err))) {
        cJSON_free(t);
        return st;
    }
    fwrite(t, 1, n, f.f);
    fputc('\n', f.f);
    cJSON_free(t);
    return lt_afile_commit(&f, err);
}

lt_status lt_jsonl_write(const char *path, const cJSON *array, lt_err *err) {
    lt_afile f;
    lt_status st = lt_afile_open(&f, path, err);
    if (st) return st;
    for (const cJSON *e = array ? array->child : NULL; e; e = e->next) {
        char *t = cJSON_PrintUnformatted(e);
        if (!t) {
            lt_afile_abort(&f);
            return lt_err_set(err, LT_ERR_OOM, "out of memory writing %s", path);
        }
        fprintf(f.f, "%s\n", t);
        cJSON_free(t);
    }
    return lt_afile_commit(&f, err);
}

cJSON *lt_report_compare(const cJSON *before, const cJSON *after) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    bool ok = true;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(after, "task");
    if (cJSON_IsString(task)) ok = cJSON_AddStringToObject(r, "task", task->valuestring) != NULL;
    cJSON *b = cJSON_Duplicate(before, true);
    if (!b || !cJSON_AddItemToObject(r, "before", b)) ok = false, cJSON_Delete(b);
    cJSON *a = cJSON_Duplicate(after, true);
    if (!a || !cJSON_AddItemToObject(r, "after", a)) ok = false, cJSON_Delete(a);
    cJSON *d = cJSON_AddObjectToObject(r, "delta");
    ok = ok && d;
    for (const cJSON *x = after ? after->child : NULL; x && ok; x = x->next) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(before, x->string);
        if (cJSON_IsNumber(x) && cJSON_IsNumber(y))
            ok = cJSON_AddNumberToObject(d, x->string, x->valuedouble - y->valuedouble) != NULL;
    }
    if (!ok) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

lt_status lt_eval_perplexity(struct lt_model *m, const struct lt_dataset *d, int B, int T,
                             int32_t pad_id, lt_ppl_result *res, lt_err *err) {
    if (B < 1 || T < 2)
        return lt_err_set(err, LT_ERR_ARG, "batch %d and sequence %d (>= 2) must be positive", B,
                          T);
    lt_ppl_result r = {.n_examples = d->n};
    for (int64_t i = 0; i < d->n; i++) {
        const lt_example *e = &d->ex[i];
        int len = e->len < T ? e->len : T; // lt_batch_fill cuts at T
        for (int t = 1; t < len; t++) r.n_tokens += !e->labels || e->labels[t] >= 0;
    }
    if (r.n_tokens == 0) return lt_err_set(err, LT_ERR_ARG, "the dataset has no token to predict");
    double mean = NAN;
    lt_status st = lt_eval_dataset(m, d, B, T, pad_id, &mean, err);
    if (st) return st;
    r.mean_loss = mean;
    r.perplexity = exp(mean);
    *res = r;
    return LT_OK;
}

cJSON *lt_ppl_report(const lt_ppl_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "task", "perplexity");
    cJSON_AddNumberToObject(o, "n_examples", (double)r->n_examples);
    cJSON_AddNumberToObject(o, "n_tokens", (double)r->n_tokens);
    if (isfinite(r->mean_loss))
        cJSON_AddNumberToObject(o, "mean_loss", r->mean_loss);
    else
        cJSON_AddNullToObject(o, "mean_loss");
    if (isfinite(r->perplexity))
        cJSON_AddNumberToObject(o, "perplexity", r->perplexity);
    else
        cJSON_AddNullToObject(o, "perplexity");
    if (cJSON_GetArraySize(o) != 5) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
