/*
 * test_gemm_bf16.c - the bf16 mixed-precision GEMM (src/ops/gemm_bf16*.c) and its dispatch.
 *
 *  - emulated path (bf16-rounded copies + sgemm) against a double-precision sum of the same
 *    bf16-rounded inputs, forward and backward form, accumulate on/off, weights in F32, BF16, F16,
 *    Q8_0, Q4_0 and NF4, odd shapes (1, not multiples of 16/32, reductions past the 1024 chunk, outputs
 *    past the 256 panel);
 *  - the AMX kernel against the same reference and against the emulation (skipped with a SKIP
 *    line where AMX is not detected);
 *  - lt_linear_fwd / lt_linear_bwd_x under LT_PREC_BF16 (bias, <= 8 rows staying f32);
 *  - 10 training steps of the tiny golden llama with bf16 compute against the f32 loss curve.
 *
 * Tolerances. Both paths sum exactly the same products (a product of two bf16 values has 16
 * significant bits and is exact in f32), so they differ from the double reference only by f32
 * summation: each partial sum rounds with relative error <= 2^-24, and a blocked sum of K terms
 * accumulates O(log K .. K/32 + 32) roundings in practice (sgemm and AMX both add in blocks), so
 * |got - ref| <= 1e-5 * sum_k |x_k w_k| holds with a margin of ~10x for K <= 3000 (the observed
 * worst is printed). AMX flushes subnormals, which random N(0,1) data never produces.
 */
#include "io/io.h"
#include "lora/lora.h"
#include "ops/ops.h"
#include "test.h"
#include "test_quant.h"
#include "train/train.h"

#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}
static float *falloc(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) exit(2);
    return p;
}
static void fill(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] = s * frand();
}
static float rb(float v) { return lt_bf16_to_f32(lt_f32_to_bf16(v)); }

// A random weight (rows, cols) stored as dtype t (buffer returned, free()) and its exact f32
// values wf (what lt_mat_row_to_f32 gives).
static void *make_weight(lt_mat *W, float *wf, lt_dtype t, int64_t rows, int64_t cols) {
    float *w = falloc(rows * cols);
    fill(w, rows * cols, 0.5f);
    if (t == LT_DTYPE_NF4) { // codes, then the lt_q4_state and its absmax in the same buffer
        int64_t n = rows * cols, nb = (n + 63) / 64;
        char *buf = malloc((size_t)(n / 2) + sizeof(lt_q4_state) + sizeof(float) * (size_t)nb + 16);
        if (!buf) exit(2);
        lt_q4_state *st = (lt_q4_state *)(void *)(buf + ((n / 2 + 15) / 16) * 16);
        float *absmax = (float *)(void *)(st + 1);
        lt_q4_quantize(t, w, n, (uint8_t *)buf, absmax);
        *st = (lt_q4_state){.dtype = t, .n_blocks = nb, .absmax = absmax};
        CHECK(lt_mat_init_q4(W, rows, cols, (const uint8_t *)buf, st));
        for (int64_t r = 0; r < rows; r++) lt_mat_row_to_f32(W, r, 0, cols, wf + r * cols);
        free(w);
        return buf;
    }
    size_t nb = lt_dtype_nbytes(t, rows * cols);
    void *buf = malloc(nb ? nb : 1);
    if (!buf) exit(2);
    switch (t) {
    case LT_DTYPE_Q8_0: quantize_q8_0(buf, w, rows * cols); break;
    case LT_DTYPE_Q4_0: quantize_q4_0(buf, w, rows * cols); break;
    default: lt_from_f32(t, w, buf, rows * cols); break;
    }
    CHECK(lt_mat_init(W, t, rows, cols, buf));
    for (int64_t r = 0; r < rows; r++) lt_mat_row_to_f32(W, r, 0, cols, wf + r * cols);
    free(w);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// references in double over bf16-rounded inputs; mag = sum |x w| per output (the error scale)

static void ref_fwd(double *y, double *mag, const float *x, const float *wf, int64_t M, int64_t out,
                    int64_t in) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t o = 0; o < out; o++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < in; k++) {
                double p = (double)rb(x[i * in + k]) * (double)rb(wf[o * in + k]);
                s += p, a += fabs(p);
            }
            y[i * out + o] = s, mag[i * out + o] = a;
        }
}

static void ref_bwd(double *dx, double *mag, const float *dy, const float *wf, int64_t M,
                    int64_t out, int64_t in) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < in; k++) {
            double s = 0, a = 0;
            for (int64_t o = 0; o < out; o++) {
                double p = (double)rb(dy[i * out + o]) * (double)rb(wf[o * in + k]);
                s += p, a += fabs(p);
            }
            dx[i * in + k] = s, mag[i * in + k] = a;
        }
}

// got vs base + ref within rtol * mag (+ a tiny absolute floor for mag ~ 0); prints the worst
// ratio |err| / mag.
static void check_vs_ref(const char *what, const float *got, const float *base, const double *ref,
                         const double *mag, int64_t n, double rtol) {
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = (base ? (double)base[i] : 0.0) + ref[i];
        double scale = mag[i] + (base ? fabs((double)base[i]) : 0.0) + 1e-30;
        double e = fabs((double)got[i] - want) / scale;
        if (!(e <= worst)) worst = e, wi = i; // NaN counts as worst
    }
    bool ok = worst <= rtol;
    CHECK_MSG(ok, "%s", what);
    fprintf(stderr, "%s %s: n=%lld worst |err|/sum|xw| = %.3g at %lld (tol %.0e)\n",
            ok ? "ok  " : "FAIL", what, (long long)n, worst, (long long)wi, rtol);
}

static int max_rel(const float *a, const float *b, int64_t n, double *worst) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    *worst = m / (s + 1e-30);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// GEMM against the reference, both forms, both implementations

#define RTOL 1e-5

static void test_shape(lt_dtype t, int64_t M, int64_t out, int64_t in, bool amx) {
    lt_mat W;
    float *wf = falloc(out * in);
    void *wbuf = make_weight(&W, wf, t, out, in);
    float *x = falloc(M * in), *y0 = falloc(M * out), *y = falloc(M * out), *ye = falloc(M * out);
    float *dy = falloc(M * out), *dx0 = falloc(M * in), *dx = falloc(M * in), *dxe = falloc(M * in);
    double *ref = malloc(sizeof(double) * (size_t)(M * (out > in ? out : in)));
    double *mag = malloc(sizeof(double) * (size_t)(M * (out > in ? out : in)));
    if (!ref || !mag) exit(2);
    fill(x, M * in, 1), fill(y0, M * out, 1), fill(dy, M * out, 1), fill(dx0, M * in, 1);
    lt_bf16_impl impl = amx ? LT_BF16_AMX : LT_BF16_EMUL;
    char what[160];
    const char *name = amx ? "amx" : "emul";

    ref_fwd(ref, mag, x, wf, M, out, in);
    for (int acc = 0; acc < 2; acc++) {
        memcpy(y, y0, sizeof(float) * (size_t)(M * out));
        CHECK(lt_gemm_bf16_fwd(y, x, &W, M, acc, impl));
        snprintf(what, sizeof what, "%s fwd %s M=%lld out=%lld in=%lld acc=%d", name,
                 lt_dtype_name(t), (long long)M, (long long)out, (long long)in, acc);
        check_vs_ref(what, y, acc ? y0 : NULL, ref, mag, M * out, RTOL);
    }
    ref_bwd(ref, mag, dy, wf, M, out, in);
    memcpy(dx, dx0, sizeof(float) * (size_t)(M * in));
    CHECK(lt_gemm_bf16_bwd_x(dx, dy, &W, M, impl));
    snprintf(what, sizeof what, "%s bwd_x %s M=%lld out=%lld in=%lld", name, lt_dtype_name(t),
             (long long)M, (long long)out, (long long)in);
    check_vs_ref(what, dx, dx0, ref, mag, M * in, RTOL);

    if (amx) { // the two implementations side by side (same products, different sum order)
        memset(y, 0, sizeof(float) * (size_t)(M * out)), memset(ye, 0, sizeof(float) * (size_t)(M * out));
        CHECK(lt_gemm_bf16_fwd(y, x, &W, M, false, LT_BF16_AMX));
        CHECK(lt_gemm_bf16_fwd(ye, x, &W, M, false, LT_BF16_EMUL));
        memcpy(dx, dx0, sizeof(float) * (size_t)(M * in)), memcpy(dxe, dx0, sizeof(float) * (size_t)(M * in));
        CHECK(lt_gemm_bf16_bwd_x(dx, dy, &W, M, LT_BF16_AMX));
        CHECK(lt_gemm_bf16_bwd_x(dxe, dy, &W, M, LT_BF16_EMUL));
        double e1, e2;
        max_rel(y, ye, M * out, &e1), max_rel(dx, dxe, M * in, &e2);
        CHECK_MSG(e1 < 1e-4 && e2 < 1e-4, "amx vs emul %s: fwd %.3g bwd %.3g of max|y|", what, e1, e2);
    }
    free(ref), free(mag), free(x), free(y0), free(y), free(ye), free(dy), free(dx0), free(dx),
        free(dxe), free(wf), free(wbuf);
}

static void test_gemm(bool amx) {
    // (M, out, in): unit, odd, tails of 16/32, reductions past BF16_KC = 1024 (fwd: in, bwd: out)
    // and outputs past the BF16_NC = 256 panel
    static const int64_t plain[][3] = {{1, 1, 1},    {3, 5, 7},      {17, 33, 45},  {33, 31, 70},
                                       {40, 300, 64}, {9, 17, 1100}, {20, 1100, 40}, {64, 64, 64},
                                       {50, 270, 1030}};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        test_shape(LT_DTYPE_F32, plain[i][0], plain[i][1], plain[i][2], amx);
    // block dtypes need in % 32 == 0
    static const int64_t blk[][3] = {{1, 3, 32}, {19, 37, 96}, {35, 290, 64}, {21, 40, 1056}};
    const lt_dtype ts[] = {LT_DTYPE_BF16, LT_DTYPE_F16, LT_DTYPE_Q8_0, LT_DTYPE_Q4_0};
    for (size_t d = 0; d < sizeof ts / sizeof *ts; d++)
        for (size_t i = 0; i < sizeof blk / sizeof *blk; i++)
            test_shape(ts[d], blk[i][0], blk[i][1], blk[i][2], amx);
    test_shape(LT_DTYPE_BF16, 70, 1300, 100, amx); // bwd reduction 1300 = 1024 + 276
    test_shape(LT_DTYPE_NF4, 21, 40, 128, amx);     // NF4: 64-blocks, scales in W->aux
    test_shape(LT_DTYPE_NF4, 9, 300, 1088, amx);
}

// ---------------------------------------------------------------------------------------------
// lt_linear_* dispatch

static void test_linear_dispatch(void) {
    int64_t out = 48, in = 80;
    lt_mat W;
    float *wf = falloc(out * in);
    void *wbuf = make_weight(&W, wf, LT_DTYPE_BF16, out, in);
    float *ws = falloc((int64_t)lt_linear_ws_floats(&W));
    float *x = falloc(20 * in), *b = falloc(out), *y = falloc(20 * out), *yg = falloc(20 * out);
    float *dy = falloc(20 * out), *dx = falloc(20 * in), *dxg = falloc(20 * in);
    fill(x, 20 * in, 1), fill(b, out, 1), fill(dy, 20 * out, 1);
    CHECK(lt_ops_matmul_precision() == LT_PREC_F32);
    lt_ops_set_matmul_precision(LT_PREC_BF16);
    // 20 rows: the bf16 GEMM plus the bias in f32
    lt_linear_fwd(y, x, &W, b, 20, false, ws);
    CHECK(lt_gemm_bf16_fwd(yg, x, &W, 20, false, LT_BF16_AUTO));
    for (int64_t i = 0; i < 20; i++)
        for (int64_t o = 0; o < out; o++) yg[i * out + o] += b[o];
    CHECK_CLOSE("linear_fwd bf16 = gemm_bf16 + bias", y, yg, 20 * out, 0, 0);
    memset(dx, 0, sizeof(float) * (size_t)(20 * in)), memset(dxg, 0, sizeof(float) * (size_t)(20 * in));
    lt_linear_bwd_x(dx, dy, &W, 20, ws);
    CHECK(lt_gemm_bf16_bwd_x(dxg, dy, &W, 20, LT_BF16_AUTO));
    CHECK_CLOSE("linear_bwd_x bf16 = gemm_bf16", dx, dxg, 20 * in, 0, 0);
    // 8 rows (decode-sized): still the f32 path, equal to it exactly
    lt_linear_fwd(y, x, &W, b, 8, false, ws);
    lt_ops_set_matmul_precision(LT_PREC_F32);
    lt_linear_fwd(yg, x, &W, b, 8, false, ws);
    CHECK_CLOSE("linear_fwd 8 rows stays f32", y, yg, 8 * out, 0, 0);
    free(wf), free(wbuf), free(ws), free(x), free(b), free(y), free(yg), free(dy), free(dx), free(dxg);
}

// ---------------------------------------------------------------------------------------------
// training: the tiny golden llama (tests/fixtures/llama, tools/make_golden.py), 10 AdamW steps as
// in test_golden_llama.c, with bf16 compute, against torch's f32 loss curve.

static const int32_t *tensor_i32(lt_safetensors *g, const char *name, int64_t numel) {
    const lt_st_tensor *t = lt_safetensors_find(g, name);
    return t && t->dtype == LT_DTYPE_I32 && t->numel == numel ? (const int32_t *)t->data : NULL;
}

static void read_losses(const char *path, double *loss, int n) {
    char *text;
    size_t len;
    lt_err err;
    for (int i = 0; i < n; i++) loss[i] = NAN;
    if (lt_read_file(path, &text, &len, &err)) return;
    char *p = text;
    while ((p = strstr(p, "{\"step\": "))) {
        int step = atoi(p + 9);
        char *l = strstr(p, "\"loss\": "), *e = strchr(p, '\n');
        if (l && (!e || l < e) && step >= 1 && step <= n) loss[step - 1] = atof(l + 8);
        p += 9;
    }
    lt_free(text);
}

// Trains 10 steps with precision p; losses(10) from the metrics file. Returns false on error.
static bool train10(lt_matmul_prec p, double *losses, float *ref_curve) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_safetensors *g = NULL;
    bool ok = false;
    CHECK_OK(lt_model_load("tests/fixtures/llama/model", &m, &err), &err);
    CHECK_OK(lt_safetensors_open("tests/fixtures/llama/golden.safetensors", &g, &err), &err);
    if (m) CHECK_OK(lt_adapter_load_peft(m, "tests/fixtures/llama/adapter", &a, &err), &err);
    if (!m || !g || !a) goto out;
    lt_train_opts o;
    lt_train_opts_default(&o);
    o.lr = (float)atof(lt_safetensors_meta(g, "lr"));
    o.beta1 = (float)atof(lt_safetensors_meta(g, "beta1"));
    o.beta2 = (float)atof(lt_safetensors_meta(g, "beta2"));
    o.eps = (float)atof(lt_safetensors_meta(g, "eps"));
    o.weight_decay = (float)atof(lt_safetensors_meta(g, "weight_decay"));
    o.max_grad_norm = (float)atof(lt_safetensors_meta(g, "max_grad_norm"));
    o.warmup_steps = atoi(lt_safetensors_meta(g, "warmup"));
    o.max_steps = atoi(lt_safetensors_meta(g, "total_steps"));
    o.grad_accum = atoi(lt_safetensors_meta(g, "accum"));
    o.B = atoi(lt_safetensors_meta(g, "B"));
    o.T = atoi(lt_safetensors_meta(g, "T"));
    o.sched = LT_SCHED_COSINE;
    o.quiet = true;
    if (o.max_steps != 10) goto out;
    lt_dataset d;
    lt_dataset_init(&d);
    for (int mb = 0; mb < 2; mb++) {
        char n1[64], n2[64], n3[64];
        snprintf(n1, sizeof n1, "train_input_ids.%d", mb);
        snprintf(n2, sizeof n2, "train_labels.%d", mb);
        snprintf(n3, sizeof n3, "train_attention_mask.%d", mb);
        int64_t n = (int64_t)o.B * o.T;
        const int32_t *ids = tensor_i32(g, n1, n), *lab = tensor_i32(g, n2, n),
                      *km = tensor_i32(g, n3, n);
        if (!ids || !lab || !km) goto out_d;
        for (int b = 0; b < o.B; b++) {
            int len = 0;
            while (len < o.T && km[b * o.T + len]) len++;
            CHECK_OK(lt_dataset_add(&d, ids + b * o.T, lab + b * o.T, len, o.T, &err), &err);
        }
    }
    char tmp[128], mpath[200], cmd[200];
    snprintf(tmp, sizeof tmp, "/tmp/lt_bf16_train_%d", (int)getpid());
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", tmp);
    o.out_dir = tmp;
    o.metrics_path = mpath;
    lt_train_result res;
    lt_ops_set_matmul_precision(p);
    CHECK_OK(lt_train(m, a, &d, NULL, &o, &res, &err), &err);
    lt_ops_set_matmul_precision(LT_PREC_F32);
    read_losses(mpath, losses, 10);
    const lt_st_tensor *t = lt_safetensors_find(g, "train_loss");
    if (t && t->dtype == LT_DTYPE_F32 && t->numel == 10) memcpy(ref_curve, t->data, 40);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    ok = res.steps == 10;
out_d:
    lt_dataset_deinit(&d);
out:
    lt_adapter_free(a);
    lt_safetensors_close(g);
    lt_model_free(m);
    return ok;
}

static void test_train_bf16(void) {
    double l32[10], l16[10];
    float ref[10] = {0};
    bool ok = train10(LT_PREC_F32, l32, ref) && train10(LT_PREC_BF16, l16, ref);
    CHECK(ok);
    if (!ok) return;
    double worst = 0, worst_ref = 0, diff = 0;
    for (int i = 0; i < 10; i++) {
        worst = fmax(worst, fabs(l16[i] - l32[i]) / fabs(l32[i]));
        worst_ref = fmax(worst_ref, fabs(l16[i] - ref[i]) / fabs(ref[i]));
        diff = fmax(diff, fabs(l16[i] - l32[i]));
    }
    fprintf(stderr, "bf16 training: loss %.5f -> %.5f (f32 %.5f -> %.5f); max rel diff %.3g vs "
            "loratune f32, %.3g vs torch f32\n", l16[0], l16[9], l32[0], l32[9], worst, worst_ref);
    // See the tolerance note at the top of main().
    CHECK_MSG(worst < 5e-3 && worst_ref < 5e-3, "bf16 loss curve too far from f32");
    CHECK_MSG(diff > 0, "bf16 compute changed nothing (not dispatched?)");
}

int main(void) {
    test_gemm(false);
    if (lt_bf16_amx_available()) test_gemm(true);
    else fprintf(stderr, "SKIP AMX kernel tests: AMX-BF16 not detected (or LT_NO_AMX set)\n");
    test_linear_dispatch();
    test_train_bf16();
    lt_gemm_bf16_release();
    TEST_END();
}
