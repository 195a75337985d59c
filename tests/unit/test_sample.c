/*
 * test_sample.c - logits processors and sampling (src/infer/sample.c) against values computed by
 * hand with transformers' definitions: repetition penalty (divide positive, multiply negative,
 * once per distinct id), temperature, top-k (ties with the k-th kept), top-p (ascending cumulative
 * mass <= 1 - p removed, the best always kept), greedy first maximum, softmax frequencies and
 * seeded reproducibility.
 */
#include "infer/infer.h"
#include "test.h"

static void repetition(void) {
    float l[5] = {2, -2, 0.5f, -0.5f, 1};
    uint8_t seen[5] = {0};
    int32_t ids[] = {0, 1, 0, 3, 3, 7, -1}; // duplicates count once; out-of-range ids ignored
    lt_logits_repetition_penalty(l, 5, ids, 7, 2.0f, seen);
    float want[5] = {1, -4, 0.5f, -1, 1};
    CHECK_CLOSE("repetition penalty", l, want, 5, 0, 0);
    int z = 0;
    for (int i = 0; i < 5; i++) z += seen[i];
    CHECK(z == 0);
    float l2[2] = {3, -3};
    int32_t id2[] = {0, 1};
    lt_logits_repetition_penalty(l2, 2, id2, 2, 0.5f, seen); // < 1 encourages
    CHECK(l2[0] == 6 && l2[1] == -1.5f);
}

static void temperature_topk(void) {
    float l[5] = {1, 5, 3, 5, 2}, s[5];
    lt_logits_temperature(l, 5, 2.0f);
    float want[5] = {0.5f, 2.5f, 1.5f, 2.5f, 1};
    CHECK_CLOSE("temperature", l, want, 5, 0, 0);
    float a[5] = {1, 5, 3, 5, 2};
    lt_logits_top_k(a, 5, 2, s); // the two 5s
    CHECK(isinf(a[0]) && a[1] == 5 && isinf(a[2]) && a[3] == 5 && isinf(a[4]));
    float b[5] = {1, 5, 3, 5, 2};
    lt_logits_top_k(b, 5, 3, s); // k-th largest is 3: keeps 5, 3, 5
    CHECK(isinf(b[0]) && b[1] == 5 && b[2] == 3 && b[3] == 5 && isinf(b[4]));
    float c[5] = {1, 3, 3, 0, 2};
    lt_logits_top_k(c, 5, 1, s); // ties with the k-th survive (HF: scores < kth value removed)
    CHECK(isinf(c[0]) && c[1] == 3 && c[2] == 3 && isinf(c[3]) && isinf(c[4]));
    float d[3] = {1, 2, 3};
    lt_logits_top_k(d, 3, 0, s); // off
    lt_logits_top_k(d, 3, 3, s); // k >= V: off
    CHECK(d[0] == 1 && d[1] == 2 && d[2] == 3);
}

static void top_p(void) {
    const float pr[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    int32_t idx[4];
    struct {
        float p;
        int kept[4];
    } cases[] = {
        {0.75f, {1, 1, 0, 0}}, // ascending cumsum .05 .20 .50 1: removes <= .25
        {0.90f, {1, 1, 1, 0}}, // removes <= .10
        {0.40f, {1, 0, 0, 0}}, // removes <= .60: only the best remains
        {0.01f, {1, 0, 0, 0}}, // the best is always kept
        {1.00f, {1, 1, 1, 1}}, // off
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        float l[4];
        for (int i = 0; i < 4; i++) l[i] = logf(pr[i]) + 3.0f; // a shift changes nothing
        lt_logits_top_p(l, 4, cases[k].p, idx);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(isfinite(l[i]) == cases[k].kept[i], "top_p %g token %d", (double)cases[k].p,
                      i);
    }
    // -inf entries (masked earlier) stay out and do not disturb the mass
    float m[5] = {logf(0.5f), -INFINITY, logf(0.3f), logf(0.15f), logf(0.05f)};
    int32_t idx5[5];
    lt_logits_top_p(m, 5, 0.75f, idx5);
    CHECK(isfinite(m[0]) && isinf(m[1]) && isfinite(m[2]) && isinf(m[3]) && isinf(m[4]));
}

static void choose(void) {
    float l[6] = {1, 4, -INFINITY, 4, 2, NAN};
    CHECK(lt_sample_argmax(l, 6) == 1); // first maximum, as torch.argmax
    float none[2] = {-INFINITY, -INFINITY};
    CHECK(lt_sample_argmax(none, 2) == -1);
    lt_rng r;
    lt_rng_seed(&r, 1);
    CHECK(lt_sample_softmax(none, 2, &r) == -1);
    int32_t idx[4];
    float t[6] = {0.5f, 3, 3, -INFINITY, 7, 1};
    int n = lt_logits_top_m(t, 6, 4, idx);
    CHECK(n == 4 && idx[0] == 4 && idx[1] == 1 && idx[2] == 2 && idx[3] == 5);
    CHECK(lt_logits_top_m(none, 2, 4, idx) == 0);

    // frequencies of softmax draws, never a masked token, seeded reproducibility
    float p[4] = {logf(0.1f), logf(0.2f), -INFINITY, logf(0.7f)};
    int cnt[4] = {0};
    const int N = 40000;
    lt_rng_seed(&r, 42);
    int32_t first[32];
    for (int i = 0; i < N; i++) {
        int32_t s = lt_sample_softmax(p, 4, &r);
        if (i < 32) first[i] = s;
        cnt[s]++;
    }
    CHECK(cnt[2] == 0);
    CHECK_MSG(fabs(cnt[0] / (double)N - 0.1) < 0.01 && fabs(cnt[1] / (double)N - 0.2) < 0.01 &&
                  fabs(cnt[3] / (double)N - 0.7) < 0.01,
              "frequencies %d %d %d", cnt[0], cnt[1], cnt[3]);
    lt_rng_seed(&r, 42);
    int same = 1;
    for (int i = 0; i < 32; i++) same &= lt_sample_softmax(p, 4, &r) == first[i];
    CHECK(same);
    // a low temperature concentrates the draws on the best token
    float q[3] = {1.0f, 2.0f, 1.5f};
    lt_logits_temperature(q, 3, 0.01f);
    int best = 0;
    for (int i = 0; i < 1000; i++) best += lt_sample_softmax(q, 3, &r) == 1;
    CHECK(best == 1000);
}

int main(void) {
    repetition();
    temperature_topk();
    top_p();
    choose();
    TEST_END();
}
