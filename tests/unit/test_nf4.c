/*
 * test_nf4.c - NF4/FP4 4-bit quantisation (tensor/nf4.c) and QLoRA base weights (model/quant.c):
 *  - code books and dynamic maps, 4-bit codes, block absmax, double-quantised scales and the
 *    dequantised values equal bitsandbytes 0.50.2's (tests/fixtures/nf4/nf4.safetensors, made by
 *    tools/make_nf4_fixtures.py, which checks its reference against bitsandbytes itself), bit for
 *    bit; the nested offset (a mean) within 1 ulp of torch's f32 sum;
 *  - round-trip error within the code book's bound: |x - deq| <= absmax * (half the widest gap
 *    between neighbouring code values) + |scale error| for double quantisation;
 *  - row conversion of an NF4 lt_mat (any k0, n) equals the flat dequantisation;
 *  - the linear kernels over NF4 (fast: small-N and slab paths; reference) equal the same kernels
 *    over a dequantised f32 copy (same numbers; only the sgemm blocking differs: 1e-5);
 *  - a quantised llama fixture model: loss and every LoRA gradient equal those of the same model
 *    whose projections are replaced by dequantised f32 copies (the reference that dequantises
 *    first), bits per parameter as computed from the layout, errors, and an allocation-failure
 *    sweep that leaves the model unchanged.
 */
#include "core/core.h"
#include "io/io.h"
#include "lora/lora.h"
#include "ops/ops.h"
#include "test.h"

static const lt_safetensors *fx;

static const lt_st_tensor *get(const char *name) {
    const lt_st_tensor *t = lt_safetensors_find(fx, name);
    CHECK_MSG(t != NULL, "fixture tensor %s missing", name);
    return t;
}

static float *to_f32(const lt_st_tensor *t) {
    float *x = malloc(sizeof(float) * (size_t)t->numel);
    lt_to_f32(t->dtype, t->data, x, t->numel);
    return x;
}

static int count_diff_u8(const uint8_t *a, const void *b, int64_t n) {
    int d = 0;
    for (int64_t i = 0; i < n; i++) d += a[i] != ((const uint8_t *)b)[i];
    return d;
}

static bool same_f32(const float *a, const void *b, int64_t n) {
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

static void test_tables(void) {
    CHECK(same_f32(lt_q4_codebook(LT_DTYPE_NF4), get("nf4_code")->data, 16));
    CHECK(same_f32(lt_q4_codebook(LT_DTYPE_FP4), get("fp4_code")->data, 16));
    CHECK(same_f32(lt_dyn8_map(true), get("dyn8_signed")->data, 256));
    CHECK(same_f32(lt_dyn8_map(false), get("dyn8_unsigned")->data, 256));
}

// Half the widest gap between neighbouring values of a sorted copy of code[0..n).
static float half_gap(const float *code, int n) {
    float s[256], g = 0;
    memcpy(s, code, sizeof(float) * (size_t)n);
    for (int i = 1; i < n; i++) // insertion sort
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            float t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    for (int i = 1; i < n; i++) g = s[i] - s[i - 1] > g ? s[i] - s[i - 1] : g;
    return g / 2;
}

// One input against one fixture variant (name.qt[_dq]).
static void check_variant(const char *name, const float *x, int64_t rows, int64_t cols, lt_dtype t,
                          bool dq) {
    char pre[64], key[96];
    snprintf(pre, sizeof pre, "%s.%s%s", name, t == LT_DTYPE_NF4 ? "nf4" : "fp4", dq ? "_dq" : "");
    int64_t n = rows * cols, nb = n / 64, ng = (nb + 255) / 256;
    uint8_t *codes = malloc((size_t)n / 2), *qabs = malloc((size_t)nb);
    float *absmax = malloc(sizeof(float) * (size_t)nb),
          *absmax2 = malloc(sizeof(float) * (size_t)ng);
    float *deq = malloc(sizeof(float) * (size_t)n), *row = malloc(sizeof(float) * (size_t)cols);
    lt_q4_quantize(t, x, n, codes, absmax);
    snprintf(key, sizeof key, "%s.codes", pre);
    int bad = count_diff_u8(codes, get(key)->data, n / 2);
    CHECK_MSG(bad == 0, "%s: %d of %lld code bytes differ from bitsandbytes", pre, bad,
              (long long)(n / 2));
    lt_q4_state s = {.dtype = t, .n_blocks = nb};
    if (!dq) {
        snprintf(key, sizeof key, "%s.absmax", pre);
        CHECK_MSG(same_f32(absmax, get(key)->data, nb), "%s: absmax differs", pre);
        s.absmax = absmax;
    } else {
        float off;
        lt_q4_double_quant(absmax, nb, qabs, absmax2, &off);
        snprintf(key, sizeof key, "%s.offset", pre);
        float want;
        memcpy(&want, get(key)->data, 4);
        // mean: double accumulation here, torch's f32 cascade there
        CHECK_MSG(fabsf(off - want) <= nextafterf(fabsf(want), INFINITY) - fabsf(want),
                  "%s: offset %.9g, bitsandbytes %.9g", pre, (double)off, (double)want);
        bool same_off = off == want;
        snprintf(key, sizeof key, "%s.qabsmax", pre);
        bad = count_diff_u8(qabs, get(key)->data, nb);
        CHECK_MSG(same_off ? bad == 0 : bad <= 2, "%s: %d nested codes differ", pre, bad);
        snprintf(key, sizeof key, "%s.absmax2", pre);
        CHECK_MSG(!same_off || same_f32(absmax2, get(key)->data, ng), "%s: absmax2 differs", pre);
        s.qabsmax = qabs, s.absmax2 = absmax2, s.offset = off;
    }
    lt_q4_dequantize(&s, codes, 0, n, deq);
    snprintf(key, sizeof key, "%s.deq", pre);
    const lt_st_tensor *want = get(key);
    float *w = to_f32(want);
    CHECK_CLOSE(pre, deq, w, n, 0, dq ? 2e-7 : 0); // bit-exact (a 1-ulp offset gives ~1e-7)
    free(w);
    // round-trip bound: half the widest code gap times the block's scale, plus the scale's error
    const float hg = half_gap(lt_q4_codebook(t), 16);
    double worst = 0, se = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / 64;
        // bnb clamps the scale at 1e-38 when quantising: a block of subnormal-sized values is
        // coded against 1e-38 and decoded with its true absmax (the fixture has one such block)
        if (absmax[b] < 1e-38f) continue;
        float sc = lt_q4_block_scale(&s, b);
        double bound = (double)hg * fabs((double)sc) + fabs((double)sc - (double)absmax[b]) +
                       1e-6 * fabs((double)sc);
        double e = fabs((double)x[i] - (double)deq[i]);
        if (e - bound > worst) worst = e - bound;
        se += e * e;
    }
    CHECK_MSG(worst <= 0, "%s: round-trip error exceeds its bound by %g", pre, worst);
    fprintf(stderr, "     %s: rms round-trip error %.3g\n", pre, sqrt(se / (double)n));
    // the matrix view: rows, and runs starting inside a block or on a low nibble
    if (cols % 64 == 0) {
        lt_mat W;
        CHECK(lt_mat_init_q4(&W, rows, cols, codes, &s));
        bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            lt_mat_row_to_f32(&W, r, 0, cols, row);
            bad += memcmp(row, deq + r * cols, sizeof(float) * (size_t)cols) != 0;
            int64_t k0 = (r * 7) % cols, kn = cols - k0 < 45 ? cols - k0 : 45;
            lt_mat_row_to_f32(&W, r, k0, kn, row);
            bad += memcmp(row, deq + r * cols + k0, sizeof(float) * (size_t)kn) != 0;
        }
        CHECK_MSG(bad == 0, "%s: %d row conversions differ from the flat dequantisation", pre, bad);
    }
    free(codes), free(qabs), free(absmax), free(absmax2), free(deq), free(row);
}

static void test_bnb_values(void) {
    const lt_st_tensor *xb = get("x_bf16"), *xs = get("x_small");
    if (!xb || !xs) return;
    float *big = to_f32(xb), *small = to_f32(xs);
    for (int t = 0; t < 2; t++)
        for (int dq = 0; dq < 2; dq++) {
            lt_dtype d = t ? LT_DTYPE_FP4 : LT_DTYPE_NF4;
            check_variant("big", big, xb->shape[0], xb->shape[1], d, dq);
            check_variant("small", small, xs->shape[0], xs->shape[1], d, dq);
        }
    free(big), free(small);
    // 8-bit blockwise, signed and unsigned maps, a short last block and an all-zero block
    const lt_st_tensor *y = get("dyn8_x");
    if (!y) return;
    int64_t n = y->numel, nb = (n + 255) / 256;
    float *x = to_f32(y), *deq = malloc(sizeof(float) * (size_t)n), am[8];
    uint8_t *q = malloc((size_t)n);
    for (int sgn = 1; sgn >= 0; sgn--) {
        if (!sgn)
            for (int64_t i = 0; i < n; i++) x[i] = fabsf(x[i]);
        lt_dyn8_quantize(lt_dyn8_map(sgn), x, n, 256, q, am);
        lt_dyn8_dequantize(lt_dyn8_map(sgn), q, am, n, 256, deq);
        char key[64];
        snprintf(key, sizeof key, "dyn8_%s.q", sgn ? "s" : "u");
        int bad = count_diff_u8(q, get(key)->data, n);
        CHECK_MSG(bad == 0, "%s: %d codes differ", key, bad);
        snprintf(key, sizeof key, "dyn8_%s.absmax", sgn ? "s" : "u");
        CHECK(same_f32(am, get(key)->data, nb));
        snprintf(key, sizeof key, "dyn8_%s.deq", sgn ? "s" : "u");
        CHECK(same_f32(deq, get(key)->data, n));
        // round trip within half the widest gap of the map
        float hg = half_gap(lt_dyn8_map(sgn), 256);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)x[i] - deq[i]) - (double)hg * am[i / 256] * (1 + 1e-6);
            worst = e > worst ? e : worst;
        }
        CHECK_MSG(worst <= 0, "dyn8 round trip exceeds its bound by %g", worst);
    }
    free(x), free(deq), free(q);
}

// ---------------------------------------------------------------------------------------------
// linear kernels over NF4 against a dequantised copy

static void test_linear(void) {
    enum { OUT = 96, IN = 320, NMAX = 37 };
    lt_rng r;
    lt_rng_seed(&r, 5);
    float *w = malloc(sizeof(float) * OUT * IN), *wd = malloc(sizeof(float) * OUT * IN);
    for (int i = 0; i < OUT * IN; i++) w[i] = 0.05f * lt_rng_normal(&r);
    int64_t nb = OUT * IN / 64;
    uint8_t *codes = malloc(OUT * IN / 2), *qa = malloc((size_t)nb);
    float *am = malloc(sizeof(float) * (size_t)nb), am2[4];
    lt_q4_quantize(LT_DTYPE_NF4, w, OUT * IN, codes, am);
    lt_q4_state s = {.dtype = LT_DTYPE_NF4, .n_blocks = nb};
    lt_q4_double_quant(am, nb, qa, am2, &s.offset);
    s.qabsmax = qa, s.absmax2 = am2;
    lt_mat Wq, Wf;
    CHECK(lt_mat_init_q4(&Wq, OUT, IN, codes, &s));
    lt_q4_dequantize(&s, codes, 0, OUT * IN, wd);
    CHECK(lt_mat_init(&Wf, LT_DTYPE_F32, OUT, IN, wd));
    CHECK(!lt_mat_init(&Wf, LT_DTYPE_NF4, OUT, IN, codes)); // NF4 needs its scales
    CHECK(lt_linear_ws_floats(&Wq) > 0);
    float *ws = lt_alloc_aligned(sizeof(float) * lt_linear_ws_floats(&Wq));
    float *x = malloc(sizeof(float) * NMAX * IN), *y1 = malloc(sizeof(float) * NMAX * OUT),
          *y2 = malloc(sizeof(float) * NMAX * OUT), *dy = malloc(sizeof(float) * NMAX * OUT),
          *dx1 = calloc(NMAX * IN, sizeof(float)), *dx2 = calloc(NMAX * IN, sizeof(float));
    for (int i = 0; i < NMAX * IN; i++) x[i] = lt_rng_normal(&r);
    for (int i = 0; i < NMAX * OUT; i++) dy[i] = lt_rng_normal(&r);
    int ns[2] = {4, NMAX}; // the fused small-N path and the slab + sgemm path
    for (int k = 0; k < 2; k++) {
        int N = ns[k];
        lt_linear_fwd(y1, x, &Wq, NULL, N, false, ws);
        lt_linear_fwd(y2, x, &Wf, NULL, N, false, NULL);
        CHECK_CLOSE("linear_fwd NF4 vs dequantised f32", y1, y2, N * OUT, 1e-5, 1e-5);
        lt_linear_fwd_ref(y1, x, &Wq, NULL, N, false);
        CHECK_CLOSE("linear_fwd_ref NF4 vs dequantised f32", y1, y2, N * OUT, 1e-5, 1e-5);
        memset(dx1, 0, sizeof(float) * NMAX * IN), memset(dx2, 0, sizeof(float) * NMAX * IN);
        lt_linear_bwd_x(dx1, dy, &Wq, N, ws);
        lt_linear_bwd_x(dx2, dy, &Wf, N, NULL);
        CHECK_CLOSE("linear_bwd_x NF4 vs dequantised f32", dx1, dx2, N * IN, 1e-5, 1e-5);
        memset(dx1, 0, sizeof(float) * NMAX * IN);
        lt_linear_bwd_x_ref(dx1, dy, &Wq, N);
        CHECK_CLOSE("linear_bwd_x_ref NF4 vs dequantised f32", dx1, dx2, N * IN, 1e-5, 1e-5);
    }
    lt_free_aligned(ws);
    free(w), free(wd), free(codes), free(qa), free(am), free(x), free(y1), free(y2), free(dy);
    free(dx1), free(dx2);
}

// ---------------------------------------------------------------------------------------------
// a quantised model against the same model over dequantised f32 copies

typedef struct deq_store {
    float *w[2][LT_MOD_PER_LAYER];
} deq_store;

static void train_step(lt_model *m, double *loss, float **grads, int64_t *np, float *logits) {
    lt_err err = {0};
    lt_adapter *a = NULL;
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0, .targets = 0x7f, .layer_hi = -1};
    CHECK_OK(lt_adapter_new(m, &lc, 11, &a, &err), &err);
    if (!a) return;
    lt_rng r;
    lt_rng_seed(&r, 12);
    for (int i = 0; i < a->n_mod; i++) // nonzero B so that A's gradients flow
        for (int j = 0; j < a->mods[i].out * a->mods[i].r; j++)
            a->mods[i].B[j] = 0.1f * lt_rng_normal(&r);
    enum { B = 2, T = 12 };
    int32_t ids[B * T], lab[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = lab[i] = 3 + (int32_t)lt_rng_below(&r, 250);
    lt_batch b = {.ids = ids, .labels = lab};
    lt_ctx *c = NULL;
    lt_ctx_opts co = {.B = B, .T = T, .train = true};
    CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
    if (c) {
        lt_adapter_zero_grad(a);
        CHECK_OK(lt_model_train_step(m, c, &b, 1.0f / (float)lt_batch_n_targets(&b, B, T), 1, 0,
                                     loss, &err),
                 &err);
        *np = a->n_params;
        *grads = malloc(sizeof(float) * (size_t)a->n_params);
        memcpy(*grads, a->grads, sizeof(float) * (size_t)a->n_params);
        lt_ctx_free(c);
        c = NULL;
        lt_ctx_opts ce = {.B = B, .T = T};
        CHECK_OK(lt_ctx_new(m, &ce, &c, &err), &err);
        if (c) CHECK_OK(lt_model_logits(m, c, &b, logits, &err), &err);
        lt_ctx_free(c);
    }
    lt_adapter_free(a);
}

static void test_model(void) {
    lt_err err = {0};
    lt_model *mq = NULL, *mf = NULL;
    const char *dir = "tests/fixtures/mistral/model"; // BF16 weights, like the models QLoRA loads
    CHECK_OK(lt_model_load(dir, &mq, &err), &err);
    CHECK_OK(lt_model_load(dir, &mf, &err), &err);
    if (!mq || !mf) goto out;
    lt_quant_info qi;
    CHECK(!lt_model_quant_info(mq, &qi));
    CHECK(lt_model_quantize(mq, LT_DTYPE_Q8_0, false, &err) == LT_ERR_ARG);
    // allocation failures: the model stays as it was
    for (long k = 0;; k++) {
        lt_alloc_fail_after(k);
        lt_status st = lt_model_quantize(mq, LT_DTYPE_NF4, true, &err);
        lt_alloc_fail_after(-1);
        if (st == LT_OK) break;
        CHECK_MSG(st == LT_ERR_OOM && mq->quant == NULL &&
                      mq->layers[0].lin[0].w.dtype == LT_DTYPE_BF16,
                  "failure %ld: %s", k, err.msg);
        if (k > 200) break;
    }
    CHECK(lt_model_quant_info(mq, &qi));
    CHECK(lt_model_quantize(mq, LT_DTYPE_NF4, true, &err) == LT_ERR_ARG); // already
    const lt_config *c = &mq->cfg;
    int64_t np = 0;
    size_t bytes = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &mq->layers[l].lin[k];
            int64_t n = (int64_t)li->in * li->out, nb = n / 64;
            np += n;
            bytes += (size_t)n / 2 + (size_t)nb + 4 * (size_t)((nb + 255) / 256) + 4;
            CHECK(li->w.dtype == LT_DTYPE_NF4 && li->w.aux != NULL);
            const lt_mat *src = lt_model_quant_source(mq, l, (lt_mod_kind)k);
            CHECK(src && src->dtype == LT_DTYPE_BF16 && src->rows == li->out);
        }
    CHECK(mq->tok_embd.dtype == LT_DTYPE_BF16 && mq->lm_head.w.dtype == LT_DTYPE_BF16);
    CHECK(qi.n_params == np && qi.bytes == bytes && qi.n_mat == c->n_layer * 7 && qi.double_quant);
    CHECK(fabs(qi.bits_per_param - 8.0 * (double)bytes / (double)np) < 1e-12);
    fprintf(stderr,
            "     fixture model: %lld base parameters, %.4f bits/param (NF4 + DQ; small "
            "matrices fill few nested groups)\n",
            (long long)np, qi.bits_per_param);
    // the reference: mf's projections replaced by f32 dequantised copies of mq's
    deq_store ds = {{{0}}};
    for (int l = 0; l < c->n_layer && l < 2; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *lq = &mq->layers[l].lin[k], *lf = &mf->layers[l].lin[k];
            float *w = malloc(sizeof(float) * (size_t)lq->in * (size_t)lq->out);
            for (int64_t r = 0; r < lq->out; r++)
                lt_mat_row_to_f32(&lq->w, r, 0, lq->in, w + r * lq->in);
            ds.w[l][k] = w;
            CHECK(lt_mat_init(&lf->w, LT_DTYPE_F32, lq->out, lq->in, w));
        }
    double lq_, lf_;
    float *gq = NULL, *gf = NULL;
    int64_t nq = 0, nf = 0;
    size_t nl = 2 * 12 * (size_t)c->n_vocab;
    float *zq = malloc(sizeof(float) * nl), *zf = malloc(sizeof(float) * nl);
    train_step(mq, &lq_, &gq, &nq, zq);
    train_step(mf, &lf_, &gf, &nf, zf);
    CHECK_MSG(fabs(lq_ - lf_) <= 1e-5 * fabs(lf_), "loss %.9g vs %.9g", lq_, lf_);
    if (gq && gf && nq == nf) {
        double gmax = 0;
        for (int64_t i = 0; i < nf; i++) gmax = fmax(gmax, fabs((double)gf[i]));
        // same weights, same math; only sgemm blocking differs: 1e-4 of the largest gradient
        CHECK_CLOSE("QLoRA grads vs dequantise-first", gq, gf, nf, 1e-4 * gmax, 1e-4);
    }
    CHECK_CLOSE("QLoRA logits vs dequantise-first", zq, zf, nl, 1e-4, 1e-4);
    free(gq), free(gf), free(zq), free(zf);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) free(ds.w[l][k]);
out:
    lt_model_free(mq);
    lt_model_free(mf);
}

int main(void) {
    lt_err err = {0};
    lt_safetensors *f = NULL;
    CHECK_OK(lt_safetensors_open("tests/fixtures/nf4/nf4.safetensors", &f, &err), &err);
    if (f) {
        fx = f;
        test_tables();
        test_bnb_values();
        lt_safetensors_close(f);
    }
    test_linear();
    test_model();
    TEST_END();
}
