/*
 * sample.c - logits processors and sampling with transformers' semantics
 * (generation/logits_process.py: RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
 * TopKLogitsWarper, TopPLogitsWarper) and greedy / multinomial choice.
 * Probabilities are accumulated in double; torch uses float, so a token sitting exactly on a
 * top-p boundary may be kept by one and removed by the other.
 */
#include "infer/infer.h"

#include <math.h>
#include <string.h>

void lt_logits_repetition_penalty(float *logits, int V, const int32_t *ids, int n, float penalty,
                                  uint8_t *seen) {
    if (penalty == 1.0f || n <= 0) return;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= V || seen[id]) continue;
        seen[id] = 1;
        float l = logits[id];
        logits[id] = l < 0 ? l * penalty : l / penalty;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < V) seen[ids[i]] = 0;
}

void lt_logits_temperature(float *logits, int V, float t) {
    if (t == 1.0f) return;
    for (int i = 0; i < V; i++) logits[i] /= t;
}

// k-th largest (1-based) of a[0..n) by quickselect; a is reordered.
static float kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++, j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want];
    }
    return a[want];
}

void lt_logits_top_k(float *logits, int V, int k, float *scratch) {
    if (k <= 0 || k >= V) return;
    int n = 0;
    for (int i = 0; i < V; i++) scratch[n++] = isnan(logits[i]) ? -INFINITY : logits[i];
    float thr = kth_largest(scratch, n, k);
    for (int i = 0; i < V; i++)
        if (!(logits[i] >= thr)) logits[i] = -INFINITY;
}

// Heap sort of idx[0..n) by logits ascending (ties: larger index first, so that among equal
// logits the smaller index counts as "more likely", as argmax's first maximum does).
static bool less_by(const float *l, int32_t a, int32_t b) {
    float x = l[a], y = l[b];
    return x < y || (x == y && a > b);
}
static void sift(const float *l, int32_t *idx, int start, int n) {
    int r = start;
    for (;;) {
        int c = 2 * r + 1;
        if (c >= n) return;
        if (c + 1 < n && less_by(l, idx[c], idx[c + 1])) c++;
        if (!less_by(l, idx[r], idx[c])) return;
        int32_t t = idx[r];
        idx[r] = idx[c], idx[c] = t;
        r = c;
    }
}
static void sort_asc(const float *l, int32_t *idx, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) sift(l, idx, i, n);
    for (int e = n - 1; e > 0; e--) {
        int32_t t = idx[0];
        idx[0] = idx[e], idx[e] = t;
        sift(l, idx, 0, e);
    }
}

void lt_logits_top_p(float *logits, int V, float p, int32_t *idx) {
    if (p >= 1.0f) return;
    // tokens at -inf have probability 0: their cumulative sum is 0 <= 1 - p, so they stay removed
    int n = 0;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (isfinite(logits[i])) {
            idx[n++] = i;
            if (logits[i] > mx) mx = logits[i];
        } else {
            logits[i] = -INFINITY;
        }
    if (n == 0) return;
    sort_asc(logits, idx, n);
    double z = 0;
    for (int i = 0; i < n; i++) z += exp((double)logits[idx[i]] - (double)mx);
    double cum = 0, thr = 1.0 - (double)p;
    for (int i = 0; i < n - 1; i++) { // the most likely (last) is always kept
        cum += exp((double)logits[idx[i]] - (double)mx) / z;
        if (cum <= thr)
            logits[idx[i]] = -INFINITY;
        else
            break;
    }
}

int32_t lt_sample_argmax(const float *logits, int V) {
    int32_t best = -1;
    for (int i = 0; i < V; i++)
        if (logits[i] > -INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
    return best;
}

int32_t lt_sample_softmax(const float *logits, int V, lt_rng *r) {
    int32_t am = lt_sample_argmax(logits, V);
    if (am < 0) return -1;
    double mx = logits[am], z = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] > -INFINITY) z += exp((double)logits[i] - mx);
    double u = (double)lt_rng_uniform(r) * z, cum = 0;
    int32_t last = am;
    for (int i = 0; i < V; i++) {
        if (!(logits[i] > -INFINITY)) continue;
        cum += exp((double)logits[i] - mx);
        last = i;
        if (u < cum) return i;
    }
    return last; // rounding: u landed past the sum
}

int lt_logits_top_m(const float *logits, int V, int m, int32_t *idx) {
    int n = 0;
    for (int i = 0; i < V; i++) {
        float l = logits[i];
        if (!(l > -INFINITY)) continue;
        if (n == m && !(l > logits[idx[n - 1]])) continue;
        int j = n < m ? n++ : n - 1; // insertion point moves up from the end
        while (j > 0 && l > logits[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return n;
}
