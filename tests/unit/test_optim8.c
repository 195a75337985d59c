/*
 * test_optim8.c - 8-bit AdamW (train/optim8.c) against tests/fixtures/nf4/optim8.safetensors
 * (tools/make_nf4_fixtures.py): three tensors of 4200 (8-bit, a short last block), 600 (f32
 * state: under bnb's min_8bit_size) and 4096 (8-bit) elements, 4 steps, lr 1e-2, wd 0.01.
 *  - every step's parameters equal the reference transcription of bitsandbytes' kernel within
 *    1e-6 (f32 rounding of the same formulas; a near-tie may requantise one code differently),
 *    and the final 8-bit codes agree but for a handful;
 *  - the parameters track f32 torch AdamW within 5e-3 max (parameters move up to 0.04 in 4 steps:
 *    the 8-bit states' relative error is ~1% for elements near their block's largest and coarser
 *    for small ones) and 3e-4 on average;
 *  - state bytes: 2 per 8-bit parameter + 8 per block of 256, 8 per f32-state parameter;
 *  - segments of a real adapter tile its flat array; bad sizes and allocation failures;
 *  - the training loop with --optim adamw_8bit: the loss falls, the state size is reported, and a
 *    run stopped after a checkpoint resumes to bit-identical parameters.
 */
#include "core/core.h"
#include "io/io.h"
#include "train/train.h"
#include "test.h"

#include <unistd.h>

static float *f32_of(const lt_safetensors *f, const char *name, int64_t want) {
    const lt_st_tensor *t = lt_safetensors_find(f, name);
    CHECK_MSG(t && t->numel == want, "fixture tensor %s missing or not %lld elements", name,
              (long long)want);
    if (!t || t->numel != want) return NULL;
    float *x = malloc(sizeof(float) * (size_t)want);
    lt_to_f32(t->dtype, t->data, x, want);
    return x;
}

static double meta(const lt_safetensors *f, const char *k) {
    const char *v = lt_safetensors_meta(f, k);
    CHECK_MSG(v != NULL, "metadata %s missing", k);
    return v ? atof(v) : 0;
}

static void test_fixture(void) {
    lt_err err = {0};
    lt_safetensors *f = NULL;
    CHECK_OK(lt_safetensors_open("tests/fixtures/nf4/optim8.safetensors", &f, &err), &err);
    if (!f) return;
    const lt_st_tensor *ts = lt_safetensors_find(f, "sizes");
    CHECK(ts && ts->numel == 3 && ts->dtype == LT_DTYPE_I32);
    if (!ts) goto out;
    int32_t sz32[3];
    memcpy(sz32, ts->data, sizeof sz32);
    int64_t sizes[3] = {sz32[0], sz32[1], sz32[2]}, n = sizes[0] + sizes[1] + sizes[2];
    int steps = (int)meta(f, "steps");
    float lr = (float)meta(f, "lr"), b1 = (float)meta(f, "beta1"), b2 = (float)meta(f, "beta2"),
          eps = (float)meta(f, "eps"), wd = (float)meta(f, "weight_decay");
    float *p = f32_of(f, "p0", n), *g = f32_of(f, "grads", steps * n),
          *ref = f32_of(f, "p_ref8", steps * n), *pf = f32_of(f, "p_f32_final", n),
          *pb = f32_of(f, "p_bnb8_final", n), *p0 = f32_of(f, "p0", n);
    lt_adamw8 o;
    CHECK_OK(lt_adamw8_init(&o, sizes, 3, LT_ADAMW8_MIN_SIZE, &err), &err);
    if (!p || !g || !ref || !pf || !pb || !o.seg) goto done;
    CHECK(o.n == n && o.n8 == sizes[0] + sizes[2] && o.n32 == sizes[1]);
    CHECK(o.seg[0].q8 && !o.seg[1].q8 && o.seg[2].q8);
    CHECK(o.n_blocks == (sizes[0] + 255) / 256 + (sizes[2] + 255) / 256);
    size_t bytes = lt_adamw8_state_bytes(&o);
    CHECK(bytes == 2 * (size_t)o.n8 + 8 * (size_t)o.n_blocks + 8 * (size_t)o.n32);
    fprintf(stderr, "     state: %zu bytes for %lld parameters (f32 AdamW: %lld)\n", bytes,
            (long long)n, (long long)(8 * n));
    for (int s = 0; s < steps; s++) {
        lt_adamw8_update(&o, p, g + (int64_t)s * n, lr, b1, b2, eps, wd, s + 1);
        char what[64];
        snprintf(what, sizeof what, "step %d vs bnb kernel (reference)", s + 1);
        CHECK_CLOSE(what, p, ref + (int64_t)s * n, n, 1e-6, 0);
    }
    const lt_st_tensor *tm = lt_safetensors_find(f, "m8_final"),
                       *tv = lt_safetensors_find(f, "v8_final");
    CHECK(tm && tv && tm->numel == o.n8 && tv->numel == o.n8);
    if (tm && tv && tm->numel == o.n8 && tv->numel == o.n8) {
        int dm = 0, dv = 0;
        for (int64_t i = 0; i < o.n8; i++) {
            dm += o.qm[i] != ((const uint8_t *)tm->data)[i];
            dv += o.qv[i] != ((const uint8_t *)tv->data)[i];
        }
        CHECK_MSG(dm <= 4 && dv <= 4, "final codes differ: m %d, v %d of %lld", dm, dv,
                  (long long)o.n8);
    }
    CHECK_CLOSE("8-bit vs f32 AdamW after 4 steps", p, pf, n, 5e-3, 0);
    double mean = 0, mean_b = 0, moved = 0;
    for (int64_t i = 0; i < n; i++) {
        mean += fabs((double)p[i] - pf[i]);
        mean_b += fabs((double)pb[i] - pf[i]);
        moved += fabs((double)pf[i] - p0[i]);
    }
    mean /= (double)n, mean_b /= (double)n, moved /= (double)n;
    CHECK_MSG(mean <= 3e-4, "mean |8-bit - f32| = %g", mean);
    fprintf(stderr,
            "     mean |p - p_f32|: here %.3g, bitsandbytes' native CPU kernel %.3g "
            "(mean move %.3g)\n",
            mean, mean_b, moved);
    // the moments read back as f32
    float *m = malloc(sizeof(float) * (size_t)n), *v = malloc(sizeof(float) * (size_t)n);
    lt_adamw8_moments(&o, m, v);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok &= v[i] >= 0 && isfinite(m[i]);
    CHECK(ok);
    free(m), free(v);
done:
    lt_adamw8_deinit(&o);
    lt_adamw8_deinit(&o); // twice is fine
    free(p), free(g), free(ref), free(pf), free(pb), free(p0);
out:
    lt_safetensors_close(f);
}

static void test_errors(void) {
    lt_err err = {0};
    lt_adamw8 o;
    int64_t bad[2] = {300, 0}, ok[2] = {5000, 70};
    CHECK(lt_adamw8_init(&o, bad, 2, 4096, &err) == LT_ERR_ARG && o.seg == NULL);
    CHECK(lt_adamw8_init(&o, ok, 0, 4096, &err) == LT_ERR_ARG);
    for (long k = 0;; k++) {
        lt_alloc_fail_after(k);
        lt_status st = lt_adamw8_init(&o, ok, 2, 4096, &err);
        lt_alloc_fail_after(-1);
        if (st == LT_OK) break;
        CHECK(st == LT_ERR_OOM && o.seg == NULL);
    }
    // zero gradients from zero state: parameters change only by weight decay
    float p[5070], g[5070] = {0};
    for (int i = 0; i < 5070; i++) p[i] = 1.0f;
    lt_adamw8_update(&o, p, g, 0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 1);
    bool same = true;
    for (int i = 0; i < 5070; i++) same &= p[i] == 0.95f;
    CHECK(same);
    lt_adamw8_deinit(&o);
}

static void test_adapter(void) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (!m) return;
    lt_lora_config lc = {.r = 64, .alpha = 16, .targets = 0x7f, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 1, &a, &err), &err);
    if (a) {
        lt_adamw8 o;
        CHECK_OK(lt_adamw8_init_adapter(&o, a, &err), &err);
        CHECK(o.n == a->n_params && o.n_seg == 2 * a->n_mod);
        int64_t at = 0;
        int n8 = 0;
        for (int i = 0; i < o.n_seg; i++) {
            CHECK(o.seg[i].off == at);
            at += o.seg[i].n;
            n8 += o.seg[i].q8;
        }
        // r 64: A of q (64 x 64) and of down (64 x 128) reach 4096 elements, as do several Bs
        CHECK(n8 > 0 && n8 < o.n_seg);
        lt_adamw8_deinit(&o);
    }
    lt_adapter_free(a);
    lt_model_free(m);
}

// lt_train with optim = adamw_8bit: the loss falls, the state is reported, and a run killed after
// a checkpoint resumes to the same parameters as an uninterrupted one (the codes are saved).
static float *run_train(lt_model *m, const lt_dataset *d, const char *dir, int64_t stop_after,
                        bool resume, lt_train_result *res) {
    lt_err err = {0};
    lt_adapter *a = NULL;
    lt_lora_config lc = {.r = 64, .alpha = 16, .targets = 0x7f, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 5, &a, &err), &err);
    if (!a) return NULL;
    lt_train_opts o;
    lt_train_opts_default(&o);
    o.optim = LT_OPTIM_ADAMW_8BIT;
    o.lr = 2e-3f, o.weight_decay = 0.01f, o.B = 2, o.T = 16, o.max_steps = 6, o.save_every = 2;
    o.out_dir = dir, o.quiet = true, o.stop_after = stop_after, o.resume = resume;
    CHECK_OK(lt_train(m, a, d, NULL, &o, res, &err), &err);
    float *p = malloc(sizeof(float) * (size_t)a->n_params);
    memcpy(p, a->params, sizeof(float) * (size_t)a->n_params);
    lt_adapter_free(a);
    return p;
}

static void test_loop(void) {
    lt_err err = {0};
    lt_model *m = NULL;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    if (!m) return;
    lt_dataset d;
    lt_dataset_init(&d);
    lt_rng r;
    lt_rng_seed(&r, 3);
    for (int i = 0; i < 12; i++) { // short repeating patterns: learnable in a few steps
        int32_t ids[16];
        for (int t = 0; t < 16; t++) ids[t] = 3 + (int32_t)((i % 3) * 17 + t % 4);
        CHECK_OK(lt_dataset_add(&d, ids, NULL, 16, 16, &err), &err);
    }
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/lt_optim8_%d", (int)getpid());
    lt_train_result r1, r2, r3;
    float *p1 = run_train(m, &d, dir, 0, false, &r1);
    CHECK_MSG(r1.last_loss < r1.first_loss, "loss %g -> %g", r1.first_loss, r1.last_loss);
    CHECK(r1.optim_state_bytes > 0 && r1.optim_state_bytes < 8 * (size_t)1e6);
    fprintf(stderr, "     lt_train adamw_8bit: loss %.4f -> %.4f, optimizer state %zu bytes\n",
            r1.first_loss, r1.last_loss, r1.optim_state_bytes);
    float *p2 = run_train(m, &d, dir, 3, false, &r2); // "killed" after step 3 (checkpoint at 2)
    float *p3 = run_train(m, &d, dir, 0, true, &r3);  // resumes from step 2
    lt_adapter *a = NULL;
    lt_lora_config lc = {.r = 64, .alpha = 16, .targets = 0x7f, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 5, &a, &err), &err);
    if (p1 && p3 && a)
        CHECK_MSG(memcmp(p1, p3, sizeof(float) * (size_t)a->n_params) == 0,
                  "resumed 8-bit run differs from the uninterrupted one");
    CHECK(r3.steps == 6);
    lt_adapter_free(a);
    free(p1), free(p2), free(p3);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    lt_dataset_deinit(&d);
    lt_model_free(m);
}

int main(void) {
    test_fixture();
    test_loop();
    test_errors();
    test_adapter();
    TEST_END();
}
