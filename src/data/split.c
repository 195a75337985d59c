/*
 * split.c - train/validation splits of records (random or stratified by a label field), seeded
 * shuffling of examples, and packing of examples into sequences (best-fit decreasing).
 *
 * Deliberately not here: k-fold splits, group splits, per-example attention masks for packing.
 * References: scikit-learn train_test_split(stratify=...) for the per-class proportions (here
 * exact largest-remainder quotas rather than sklearn's randomised rounding); TRL pack_dataset
 * strategy "bfd" (trl/data_utils.py _pack_bfd).
 */
#include "data/data_impl.h"

#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// record splits

typedef struct {
    const char *s;
    size_t n;
    int64_t idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool same_key(const keyed *a, const keyed *b) {
    return a->n == b->n && !memcmp(a->s, b->s, a->n);
}

typedef struct {
    int64_t start, n; // members: keys[start .. start+n), in record order
    int64_t first;    // first record of the class
    int64_t quota, rem;
} klass;

static int cmp_rem(const void *a, const void *b) {
    const klass *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static void shuffle_i64(int64_t *v, int64_t n, lt_rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)lt_rng_below(r, (uint64_t)i + 1);
        int64_t t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

lt_status lt_records_split(const lt_records *recs, int64_t n_val, uint64_t seed,
                           const char *stratify, int64_t **train_idx, int64_t *n_train,
                           int64_t **val_idx, int64_t *n_val_out, lt_err *err) {
    int64_t n = recs->n;
    if (n_val < 0 || (n_val > 0 && n_val >= n))
        return lt_err_set(err, LT_ERR_ARG, "a validation split of %lld leaves no training "
                          "records (%lld records)", (long long)n_val, (long long)n);
    lt_status st = LT_OK;
    size_t sn = (size_t)(n ? n : 1);
    bool *is_val = lt_calloc(sn, sizeof *is_val);
    int64_t *tr = lt_alloc(sizeof *tr * sn), *va = lt_alloc(sizeof *va * sn), *ord = NULL;
    keyed *keys = NULL;
    klass *cls = NULL;
    if (!is_val || !tr || !va) goto oom;
    lt_rng r;
    lt_rng_seed(&r, seed ^ 0x73706c6974ull); // "split"
    if (n_val > 0 && !stratify) {
        if (!(ord = lt_alloc(sizeof *ord * sn))) goto oom;
        for (int64_t i = 0; i < n; i++) ord[i] = i;
        shuffle_i64(ord, n, &r);
        for (int64_t i = 0; i < n_val; i++) is_val[ord[i]] = true;
    } else if (n_val > 0) {
        if (!(keys = lt_alloc(sizeof *keys * sn))) goto oom;
        for (int64_t i = 0; i < n; i++) {
            const lt_field *f = lt_record_get(&recs->rec[i], stratify);
            if (!f || (f->type != LT_FIELD_STR && f->type != LT_FIELD_NUM && f->type != LT_FIELD_BOOL)) {
                char where[160];
                lt_record_where(recs, &recs->rec[i], where, sizeof where);
                st = lt_err_set(err, LT_ERR_FORMAT, "%s: stratified split by \"%s\": the field "
                                "is %s", where, stratify, f ? "not a string" : "missing");
                goto out;
            }
            keys[i] = (keyed){f->str, f->len, i};
        }
        qsort(keys, (size_t)n, sizeof *keys, cmp_keyed);
        int64_t nc = 0;
        for (int64_t i = 0; i < n; i++) nc += i == 0 || !same_key(&keys[i], &keys[i - 1]);
        if (!(cls = lt_calloc((size_t)nc, sizeof *cls))) goto oom;
        int64_t c = -1;
        for (int64_t i = 0; i < n; i++) {
            if (i == 0 || !same_key(&keys[i], &keys[i - 1])) {
                c++;
                cls[c].start = i;
                cls[c].first = keys[i].idx; // members are sorted by record index within a class
            }
            cls[c].n++;
        }
        int64_t given = 0;
        for (int64_t k = 0; k < nc; k++) {
            // n_c * n_val fits: both are below 2^31 for any dataset held in memory here
            cls[k].quota = cls[k].n * n_val / n;
            cls[k].rem = cls[k].n * n_val % n;
            given += cls[k].quota;
        }
        qsort(cls, (size_t)nc, sizeof *cls, cmp_rem);
        for (int64_t k = 0; given < n_val && k < nc; k++)
            if (cls[k].quota < cls[k].n) cls[k].quota++, given++;
        if (!(ord = lt_alloc(sizeof *ord * sn))) goto oom;
        // draw within each class, classes taken in order of first appearance
        for (int64_t a = 1; a < nc; a++) { // insertion sort by first (nc is small)
            klass t = cls[a];
            int64_t b = a - 1;
            while (b >= 0 && cls[b].first > t.first) cls[b + 1] = cls[b], b--;
            cls[b + 1] = t;
        }
        for (int64_t k = 0; k < nc; k++) {
            int64_t m = cls[k].n;
            for (int64_t j = 0; j < m; j++) ord[j] = keys[cls[k].start + j].idx;
            shuffle_i64(ord, m, &r);
            for (int64_t j = 0; j < cls[k].quota; j++) is_val[ord[j]] = true;
        }
    }
    int64_t nt = 0, nv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (is_val[i]) va[nv++] = i;
        else tr[nt++] = i;
    }
    *train_idx = tr, *n_train = nt, *val_idx = va, *n_val_out = nv;
    tr = va = NULL;
    goto out;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory splitting %lld records", (long long)n);
out:
    lt_free(is_val);
    lt_free(tr);
    lt_free(va);
    lt_free(ord);
    lt_free(keys);
    lt_free(cls);
    return st;
}

// ---------------------------------------------------------------------------------------------
// shuffling

void lt_dataset_shuffle(lt_dataset *d, uint64_t seed) {
    lt_rng r;
    lt_rng_seed(&r, seed ^ 0x73687566666c65ull); // "shuffle"
    for (int64_t i = d->n - 1; i > 0; i--) {
        int64_t j = (int64_t)lt_rng_below(&r, (uint64_t)i + 1);
        lt_example t = d->ex[i];
        d->ex[i] = d->ex[j], d->ex[j] = t;
    }
}

// ---------------------------------------------------------------------------------------------
// packing: best-fit decreasing with a segment tree over remaining capacities 0..T

typedef struct {
    int64_t *cnt; // (4 * (T + 1)) bins per capacity range
    int64_t **stack; // (T + 1) per capacity: bins with exactly that much room, in the order they
                     // got it (FIFO from shead, as TRL's deque per space)
    int64_t *sn, *scap, *shead;
    int T;
} cap_index;

static void ci_update(cap_index *ci, int node, int lo, int hi, int c, int64_t d) {
    ci->cnt[node] += d;
    if (lo == hi) return;
    int mid = (lo + hi) / 2;
    if (c <= mid) ci_update(ci, 2 * node, lo, mid, c, d);
    else ci_update(ci, 2 * node + 1, mid + 1, hi, c, d);
}

// Smallest capacity >= s that has a bin, or -1.
static int ci_find(const cap_index *ci, int node, int lo, int hi, int s) {
    if (hi < s || ci->cnt[node] == 0) return -1;
    if (lo == hi) return lo;
    int mid = (lo + hi) / 2;
    int r = ci_find(ci, 2 * node, lo, mid, s);
    return r >= 0 ? r : ci_find(ci, 2 * node + 1, mid + 1, hi, s);
}

static bool ci_push(cap_index *ci, int c, int64_t bin) {
    if (ci->shead[c] == ci->sn[c]) ci->shead[c] = ci->sn[c] = 0; // empty: reuse the storage
    if (ci->sn[c] == ci->scap[c]) {
        int64_t cap = ci->scap[c] ? ci->scap[c] * 2 : 4;
        int64_t *p = lt_realloc(ci->stack[c], sizeof *p * (size_t)cap);
        if (!p) return false;
        ci->stack[c] = p, ci->scap[c] = cap;
    }
    ci->stack[c][ci->sn[c]++] = bin;
    ci_update(ci, 1, 0, ci->T, c, 1);
    return true;
}

static int64_t ci_pop(cap_index *ci, int c) {
    ci_update(ci, 1, 0, ci->T, c, -1);
    return ci->stack[c][ci->shead[c]++];
}

typedef struct {
    int64_t idx;
    int size, len;
    bool sep;
} pitem;

static int cmp_pitem(const void *a, const void *b) {
    const pitem *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

lt_status lt_dataset_pack(const lt_dataset *src, int T, int32_t sep_id, lt_dataset *dst,
                          lt_err *err) {
    if (T < 2) return lt_err_set(err, LT_ERR_ARG, "packing needs sequences of at least 2 tokens");
    int64_t n = src->n;
    if (n == 0) return LT_OK;
    lt_status st = LT_OK;
    size_t sn = (size_t)n;
    pitem *it = lt_alloc(sizeof *it * sn);
    int64_t *bin_of = lt_alloc(sizeof *bin_of * sn), *bin_used = lt_calloc(sn, sizeof *bin_used);
    int64_t *next = lt_alloc(sizeof *next * sn), *head = lt_alloc(sizeof *head * sn),
            *tail = lt_alloc(sizeof *tail * sn);
    int32_t *ids = lt_alloc(sizeof *ids * (size_t)T), *lab = lt_alloc(sizeof *lab * (size_t)T);
    cap_index ci = {.T = T};
    ci.cnt = lt_calloc(4 * ((size_t)T + 1), sizeof *ci.cnt);
    ci.stack = lt_calloc((size_t)T + 1, sizeof *ci.stack);
    ci.sn = lt_calloc((size_t)T + 1, sizeof *ci.sn);
    ci.scap = lt_calloc((size_t)T + 1, sizeof *ci.scap);
    ci.shead = lt_calloc((size_t)T + 1, sizeof *ci.shead);
    if (!it || !bin_of || !bin_used || !next || !head || !tail || !ids || !lab || !ci.cnt ||
        !ci.stack || !ci.sn || !ci.scap || !ci.shead)
        goto oom;
    for (int64_t i = 0; i < n; i++) {
        const lt_example *e = &src->ex[i];
        int len = e->len < T ? e->len : T;
        if (e->len > T) dst->n_truncated++;
        bool sep = sep_id >= 0 && len > 0 && e->ids[len - 1] != sep_id && len < T;
        it[i] = (pitem){i, len + (sep ? 1 : 0), len, sep};
    }
    qsort(it, sn, sizeof *it, cmp_pitem);
    int64_t nb = 0;
    for (int64_t k = 0; k < n; k++) {
        int c = ci_find(&ci, 1, 0, T, it[k].size);
        int64_t b;
        if (c >= 0) {
            b = ci_pop(&ci, c);
        } else {
            b = nb++;
            head[b] = -1;
            c = T;
        }
        bin_of[k] = b;
        bin_used[b] += it[k].size;
        next[k] = -1;
        if (head[b] < 0) head[b] = k;
        else next[tail[b]] = k;
        tail[b] = k;
        int left = c - it[k].size;
        if (left > 0 && !ci_push(&ci, left, b)) goto oom;
    }
    for (int64_t b = 0; b < nb && !st; b++) {
        int o = 0;
        for (int64_t k = head[b]; k >= 0; k = next[k]) {
            const lt_example *e = &src->ex[it[k].idx];
            memcpy(ids + o, e->ids, sizeof *ids * (size_t)it[k].len);
            memcpy(lab + o, e->labels, sizeof *lab * (size_t)it[k].len);
            o += it[k].len;
            if (it[k].sep) ids[o] = sep_id, lab[o] = -100, o++;
        }
        LT_ASSERT(o == bin_used[b] && o <= T);
        st = lt_dataset_add(dst, ids, lab, o, T, err);
    }
    goto out;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory packing %lld examples", (long long)n);
out:
    if (ci.stack)
        for (int c = 0; c <= T; c++) lt_free(ci.stack[c]);
    lt_free(ci.stack), lt_free(ci.cnt), lt_free(ci.sn), lt_free(ci.scap), lt_free(ci.shead);
    lt_free(it), lt_free(bin_of), lt_free(bin_used), lt_free(next), lt_free(head), lt_free(tail);
    lt_free(ids), lt_free(lab);
    return st;
}
