// test_train.c - schedules, AdamW and clipping against their reference formulas; data batching.
#include "test.h"
#include "train/train.h"

static void test_schedules(void) {
    // get_cosine_schedule_with_warmup(warmup=2, total=10) * 5e-3, as torch printed it
    // (tools/make_golden.py, train_lr of the fixtures)
    const float want[10] = {0, 2.5e-3f, 5e-3f, 4.8097e-3f, 4.2678e-3f, 3.4567e-3f, 2.5e-3f,
                            1.5433e-3f, 7.322e-4f, 1.903e-4f};
    float got[10];
    for (int s = 0; s < 10; s++) got[s] = 5e-3f * lt_sched_factor(LT_SCHED_COSINE, s, 2, 10);
    CHECK_CLOSE("cosine warmup schedule", got, want, 10, 1e-7, 1e-4);
    // linear: lambda = (total - s) / (total - warmup) after warmup
    CHECK(fabsf(lt_sched_factor(LT_SCHED_LINEAR, 6, 2, 10) - 0.5f) < 1e-6f);
    CHECK(lt_sched_factor(LT_SCHED_LINEAR, 10, 2, 10) == 0.0f);
    CHECK(lt_sched_factor(LT_SCHED_CONSTANT, 1, 4, 10) == 0.25f);
    CHECK(lt_sched_factor(LT_SCHED_CONSTANT, 7, 4, 10) == 1.0f);
    CHECK(lt_sched_factor(LT_SCHED_COSINE, 0, 0, 10) == 1.0f);
    lt_train_opts o;
    lt_train_opts_default(&o);
    o.warmup_ratio = 0.1f;
    CHECK(lt_train_warmup_steps(&o, 95) == 10); // ceil(9.5), as transformers' get_warmup_steps
    o.B = 4, o.grad_accum = 2, o.epochs = 3;
    CHECK(lt_train_total_steps(&o, 17) == 9);
}

static void test_adamw(void) {
    // two steps on 3 parameters, computed by hand from torch.optim.AdamW's update rule
    float p[3] = {0.5f, -1.0f, 2.0f}, m[3] = {0}, v[3] = {0};
    const float g1[3] = {0.1f, -0.2f, 0.0f}, g2[3] = {0.3f, 0.1f, -0.5f};
    double P[3] = {0.5, -1.0, 2.0}, M[3] = {0}, Vv[3] = {0};
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    for (int t = 1; t <= 2; t++) {
        const float *g = t == 1 ? g1 : g2;
        lt_adamw_update(p, g, m, v, 3, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t);
        for (int i = 0; i < 3; i++) {
            P[i] *= 1 - lr * wd;
            M[i] = b1 * M[i] + (1 - b1) * g[i];
            Vv[i] = b2 * Vv[i] + (1 - b2) * g[i] * g[i];
            double mh = M[i] / (1 - pow(b1, t)), vh = Vv[i] / (1 - pow(b2, t));
            P[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    float want[3] = {(float)P[0], (float)P[1], (float)P[2]};
    CHECK_CLOSE("adamw 2 steps", p, want, 3, 1e-6, 1e-6);
}

static void test_clip(void) {
    float g[4] = {3, 4, 0, 0};
    double n = lt_clip_grad_norm(g, 4, 1.0f);
    CHECK(fabs(n - 5.0) < 1e-9);
    CHECK(fabsf(g[0] - 3.0f / (5.0f + 1e-6f)) < 1e-6f && fabsf(g[1] - 0.8f) < 1e-5f);
    float h[2] = {0.3f, 0.4f};
    lt_clip_grad_norm(h, 2, 1.0f); // below the limit: unchanged
    CHECK(h[0] == 0.3f && h[1] == 0.4f);
    float z[2] = {0.3f, 0.4f};
    lt_clip_grad_norm(z, 2, 0.0f); // 0 = no clipping
    CHECK(z[0] == 0.3f);
}

static void test_batching(void) {
    lt_dataset d;
    lt_err err;
    lt_dataset_init(&d);
    int32_t a[5] = {5, 6, 7, 8, 9}, la[5] = {-100, -100, 7, 8, 9};
    CHECK_OK(lt_dataset_add(&d, a, la, 5, 4, &err), &err); // cut to 4
    CHECK_OK(lt_dataset_add(&d, a, NULL, 2, 4, &err), &err);
    CHECK(d.n == 2 && d.n_truncated == 1 && d.ex[0].len == 4);
    CHECK(lt_dataset_add(&d, a, NULL, 0, 4, &err) == LT_ERR_ARG);
    int64_t idx[3] = {1, 0, -1};
    int32_t ids[12], lab[12], km[12];
    lt_batch_fill(&d, idx, 3, 4, 0, ids, lab, km);
    const int32_t want_ids[12] = {5, 6, 0, 0, 5, 6, 7, 8, 0, 0, 0, 0};
    const int32_t want_lab[12] = {5, 6, -100, -100, -100, -100, 7, 8, -100, -100, -100, -100};
    const int32_t want_km[12] = {1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    CHECK(!memcmp(ids, want_ids, sizeof ids) && !memcmp(lab, want_lab, sizeof lab) &&
          !memcmp(km, want_km, sizeof km));
    lt_batch b = {.ids = ids, .labels = lab};
    CHECK(lt_batch_n_targets(&b, 3, 4) == 3); // shifted: 6 | 8 ... row0: labels[1]=6; row1: 7, 8
    // epoch orders are permutations, reproducible, and differ between epochs
    int64_t p1[50], p2[50], p3[50];
    lt_dataset_order(p1, 50, 7, 0);
    lt_dataset_order(p2, 50, 7, 0);
    lt_dataset_order(p3, 50, 7, 1);
    CHECK(!memcmp(p1, p2, sizeof p1) && memcmp(p1, p3, sizeof p1));
    int seen[50] = {0}, ok = 1;
    for (int i = 0; i < 50; i++) seen[p1[i]]++;
    for (int i = 0; i < 50; i++) ok &= seen[i] == 1;
    CHECK(ok);
    lt_dataset val;
    lt_dataset_init(&val);
    CHECK(lt_dataset_split(&d, &val, 2, 1, &err) == LT_ERR_ARG);
    CHECK_OK(lt_dataset_split(&d, &val, 1, 1, &err), &err);
    CHECK(d.n == 1 && val.n == 1);
    lt_dataset_deinit(&d);
    lt_dataset_deinit(&val);
}

static void test_bad_ids_jsonl(void) {
    const char *path = "/tmp/lt_test_ids.jsonl";
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [1, 2], \"labels\": [-100, 2]}\n"
               "{\"input_ids\": [1, 999]}\n");
    fclose(f);
    lt_dataset d;
    lt_err err = {0};
    lt_dataset_init(&d);
    CHECK(lt_dataset_read_ids_jsonl(&d, path, 16, 256, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "lt_test_ids.jsonl:4") != NULL, "message names file:line: %s", err.msg);
    lt_dataset_deinit(&d);
    f = fopen(path, "w");
    fprintf(f, "{\"input_ids\": [1, 2, 3], \"labels\": [1]}\n");
    fclose(f);
    lt_dataset_init(&d);
    CHECK(lt_dataset_read_ids_jsonl(&d, path, 16, 256, &err) == LT_ERR_FORMAT);
    lt_dataset_deinit(&d);
    remove(path);
}

static void test_synth(void) {
    lt_rng r1, r2;
    lt_rng_seed(&r1, 3);
    lt_rng_seed(&r2, 3);
    char m1[512], j1[512], m2[512], j2[512];
    lt_synth_order(&r1, m1, sizeof m1, j1, sizeof j1);
    lt_synth_order(&r2, m2, sizeof m2, j2, sizeof j2);
    CHECK(!strcmp(m1, m2) && !strcmp(j1, j2));
    CHECK(strstr(j1, "\"order_id\"") && strstr(j1, "\"unit_price\""));
}

int main(void) {
    test_schedules();
    test_adamw();
    test_clip();
    test_batching();
    test_bad_ids_jsonl();
    test_synth();
    TEST_END();
}
