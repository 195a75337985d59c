/*
 * decode.c - incremental forward with a key/value cache, for generation: a prompt is fed in one
 * call (prefill) and each generated token in the next (T = 1), reusing the keys and values of
 * earlier positions. Same math as forward.c (tested against it), without saving anything for
 * backward. LoRA modules apply unmerged; no dropout.
 */
#include "core/core.h"
#include "lora/lora.h"
#include "model/model_impl.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define QBLOCK 64 // query rows per attention block in prefill

struct lt_kv {
    const lt_model *m;
    int B, max_T, n_past, n_threads;
    float *k, *v;      // (L, B, max_T, KVD)
    int32_t *mask;     // (B, max_T) 1 = real position
    // scratch for up to B*max_T new rows
    float *x, *xn, *rstd, *mean, *q, *kn, *vn, *qkv, *ao, *g, *u, *h, *hl, *ws, *scores, *last, *x2;
    int32_t *pos;
    size_t bytes;
};

static float *kv_alloc(lt_kv *kv, size_t n, bool *ok) {
    if (!n) n = 1;
    float *p = lt_alloc_aligned(n * sizeof(float));
    if (!p) *ok = false;
    else kv->bytes += n * sizeof(float);
    return p;
}

void lt_kv_free(lt_kv *kv) {
    if (!kv) return;
    float *fs[] = {kv->k,  kv->v, kv->x, kv->xn, kv->rstd, kv->q,  kv->kn,     kv->vn, kv->mean, kv->qkv, kv->x2,
                   kv->ao, kv->g, kv->u, kv->h,  kv->hl,   kv->ws, kv->scores, kv->last};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) lt_free_aligned(fs[i]);
    lt_free(kv->mask);
    lt_free(kv->pos);
    lt_free(kv);
}

void lt_kv_reset(lt_kv *kv) { kv->n_past = 0; }
int lt_kv_n_past(const lt_kv *kv) { return kv->n_past; }
size_t lt_kv_bytes(const lt_kv *kv) { return kv->bytes; }

lt_status lt_kv_new(const lt_model *m, int B, int max_T, lt_kv **out, lt_err *err) {
    const lt_config *c = &m->cfg;
    if (B <= 0 || max_T <= 0 || B > 4096 || max_T > c->max_pos)
        return lt_err_set(err, LT_ERR_ARG, "cache of %d rows x %d positions is not valid (model "
                          "has %d positions)", B, max_T, c->max_pos);
    lt_kv *kv = lt_calloc(1, sizeof *kv);
    if (!kv) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    kv->m = m;
    kv->B = B, kv->max_T = max_T;
#ifdef _OPENMP
    kv->n_threads = omp_get_max_threads();
#else
    kv->n_threads = 1;
#endif
    size_t N = (size_t)B * (size_t)max_T, C = (size_t)c->n_embd, F = (size_t)c->n_ff;
    size_t QD = (size_t)c->n_head * (size_t)c->head_dim, KVD = (size_t)c->n_head_kv * (size_t)c->head_dim;
    size_t rmax = 1, ws = lt_linear_ws_floats(&m->lm_head.w);
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            if (li->lora && (size_t)li->lora->r > rmax) rmax = (size_t)li->lora->r;
            size_t w = lt_linear_ws_floats(&li->w);
            if (w > ws) ws = w;
        }
    if (m->lm_head.lora && (size_t)m->lm_head.lora->r > rmax) rmax = (size_t)m->lm_head.lora->r;
    bool ok = true;
    size_t cache = (size_t)c->n_layer * N * KVD;
    kv->k = kv_alloc(kv, cache, &ok), kv->v = kv_alloc(kv, cache, &ok);
    kv->x = kv_alloc(kv, N * C, &ok), kv->xn = kv_alloc(kv, N * C, &ok);
    kv->rstd = kv_alloc(kv, N, &ok), kv->q = kv_alloc(kv, N * QD, &ok);
    kv->mean = kv_alloc(kv, N, &ok), kv->x2 = kv_alloc(kv, N * C, &ok);
    if (m->arch.qkv != LT_QKV_SEPARATE) kv->qkv = kv_alloc(kv, N * (QD + 2 * KVD), &ok);
    kv->kn = kv_alloc(kv, N * KVD, &ok), kv->vn = kv_alloc(kv, N * KVD, &ok);
    kv->ao = kv_alloc(kv, N * QD, &ok), kv->g = kv_alloc(kv, N * F, &ok);
    kv->u = kv_alloc(kv, N * F, &ok), kv->h = kv_alloc(kv, N * F, &ok);
    kv->hl = kv_alloc(kv, N * rmax, &ok), kv->ws = kv_alloc(kv, ws, &ok);
    kv->scores = kv_alloc(kv, (size_t)kv->n_threads * QBLOCK * (size_t)max_T, &ok);
    kv->last = kv_alloc(kv, (size_t)B * C, &ok);
    kv->mask = lt_calloc(N, sizeof(int32_t));
    kv->pos = lt_alloc(N * sizeof(int32_t));
    if (!ok || !kv->mask || !kv->pos) {
        lt_kv_free(kv);
        return lt_err_set(err, LT_ERR_OOM, "out of memory for a %d x %d key/value cache", B, max_T);
    }
    *out = kv;
    return LT_OK;
}

// Attention of T new rows per batch row over the cache (positions 0 .. n_past+T).
static void attend(lt_kv *kv, int l, int T) {
    const lt_config *c = &kv->m->cfg;
    const int B = kv->B, NH = c->n_head, NKV = c->n_head_kv, HS = c->head_dim;
    const int64_t QD = (int64_t)NH * HS, KVD = (int64_t)NKV * HS;
    const int W = c->sliding_window;
    const float scale = 1.0f / sqrtf((float)HS);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, g = h / (NH / NKV);
#ifdef _OPENMP
        float *S = kv->scores + (size_t)omp_get_thread_num() * QBLOCK * (size_t)kv->max_T;
#else
        float *S = kv->scores;
#endif
        const float *K = kv->k + (((size_t)l * (size_t)B + (size_t)b) * (size_t)kv->max_T) * (size_t)KVD + (size_t)g * (size_t)HS;
        const float *V = kv->v + (((size_t)l * (size_t)B + (size_t)b) * (size_t)kv->max_T) * (size_t)KVD + (size_t)g * (size_t)HS;
        const int32_t *mk = kv->mask + (size_t)b * (size_t)kv->max_T;
        for (int t0 = 0; t0 < T; t0 += QBLOCK) {
            int nt = T - t0 < QBLOCK ? T - t0 : QBLOCK;
            int n_keys = kv->n_past + t0 + nt; // keys any row of the block may see
            const float *Q = kv->q + ((size_t)b * (size_t)T + (size_t)t0) * (size_t)QD + (size_t)h * (size_t)HS;
            float *O = kv->ao + ((size_t)b * (size_t)T + (size_t)t0) * (size_t)QD + (size_t)h * (size_t)HS;
            lt_sgemm(false, true, nt, n_keys, HS, scale, Q, QD, K, KVD, 0.0f, S, n_keys);
            for (int i = 0; i < nt; i++) {
                float *s = S + (size_t)i * (size_t)n_keys;
                int qi = kv->n_past + t0 + i; // absolute index of the query
                float mx = -INFINITY;
                for (int j = 0; j < n_keys; j++) {
                    bool vis = j <= qi && mk[j] && (W <= 0 || qi - j < W);
                    if (!vis) s[j] = -INFINITY;
                    else if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int j = 0; j < n_keys; j++) {
                    float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
                    s[j] = e;
                    sum += e;
                }
                float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
                for (int j = 0; j < n_keys; j++) s[j] *= inv;
            }
            lt_sgemm(false, false, nt, HS, n_keys, 1.0f, S, n_keys, V, KVD, 0.0f, O, QD);
        }
    }
}

lt_status lt_model_decode(lt_model *m, lt_kv *kv, const int32_t *ids, int T, const int32_t *kmask,
                          const int32_t *pos, float *logits, bool all_logits, lt_err *err) {
    const lt_config *c = &m->cfg;
    if (kv->m != m) return lt_err_set(err, LT_ERR_ARG, "the cache belongs to another model");
    if (T <= 0 || kv->n_past + T > kv->max_T)
        return lt_err_set(err, LT_ERR_ARG, "%d new positions after %d do not fit the cache of %d",
                          T, kv->n_past, kv->max_T);
    const int B = kv->B, C = c->n_embd;
    const int64_t N = (int64_t)B * T;
    const size_t KVD = (size_t)c->n_head_kv * (size_t)c->head_dim;
    for (int64_t i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= c->n_vocab)
            return lt_err_set(err, LT_ERR_ARG, "token id %d is outside the vocabulary (0..%d)", ids[i],
                              c->n_vocab - 1);
        int p = pos ? pos[i] : kv->n_past + (int)(i % T);
        if (p < 0 || p >= c->max_pos)
            return lt_err_set(err, LT_ERR_ARG, "position %d is outside 0..%d", p, c->max_pos - 1);
        kv->pos[i] = p;
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            kv->mask[(size_t)b * (size_t)kv->max_T + (size_t)(kv->n_past + t)] = kmask ? kmask[b * T + t] != 0 : 1;
    lt_embed(m, ids, kv->pos, kv->x, N);
    const lt_arch *ar = &m->arch;
    size_t nC = sizeof(float) * (size_t)N * (size_t)C;
    for (int l = 0; l < c->n_layer; l++) {
        const lt_layer *L = &m->layers[l];
        lt_norm_fwd(m, L->attn_norm, L->attn_norm_b, kv->xn, kv->mean, kv->rstd, kv->x, N);
        if (ar->qkv == LT_QKV_SEPARATE) {
            lt_lin_fwd_infer(&L->lin[LT_MOD_Q], kv->xn, kv->q, N, false, kv->hl, kv->ws);
            lt_lin_fwd_infer(&L->lin[LT_MOD_K], kv->xn, kv->kn, N, false, kv->hl, kv->ws);
            lt_lin_fwd_infer(&L->lin[LT_MOD_V], kv->xn, kv->vn, N, false, kv->hl, kv->ws);
        } else {
            lt_lin_fwd_infer(&L->lin[LT_MOD_Q], kv->xn, kv->qkv, N, false, kv->hl, kv->ws);
            lt_qkv_split(m, kv->qkv, kv->q, kv->kn, kv->vn, N);
        }
        if (ar->pos == LT_POS_ROPE) {
            lt_rope_fwd(kv->q, kv->pos, m->rope_cos, m->rope_sin, N, c->n_head, c->head_dim, c->rot_dim);
            lt_rope_fwd(kv->kn, kv->pos, m->rope_cos, m->rope_sin, N, c->n_head_kv, c->head_dim, c->rot_dim);
        }
        for (int b = 0; b < B; b++) { // append to the cache
            size_t dst = (((size_t)l * (size_t)B + (size_t)b) * (size_t)kv->max_T + (size_t)kv->n_past) * KVD;
            memcpy(kv->k + dst, kv->kn + (size_t)b * (size_t)T * KVD, sizeof(float) * (size_t)T * KVD);
            memcpy(kv->v + dst, kv->vn + (size_t)b * (size_t)T * KVD, sizeof(float) * (size_t)T * KVD);
        }
        attend(kv, l, T);
        // parallel residual: the MLP reads norm(x) of the block input, kept in x2
        if (ar->parallel_residual) memcpy(kv->x2, kv->x, nC);
        lt_lin_fwd_infer(&L->lin[LT_MOD_O], kv->ao, kv->x, N, true, kv->hl, kv->ws);
        lt_norm_fwd(m, L->ffn_norm, L->ffn_norm_b, kv->xn, kv->mean, kv->rstd,
                    ar->parallel_residual ? kv->x2 : kv->x, N);
        if (ar->mlp == LT_MLP_SWIGLU) {
            lt_lin_fwd_infer(&L->lin[LT_MOD_GATE], kv->xn, kv->g, N, false, kv->hl, kv->ws);
            lt_lin_fwd_infer(&L->lin[LT_MOD_UP], kv->xn, kv->u, N, false, kv->hl, kv->ws);
            lt_swiglu_fwd(kv->h, kv->g, kv->u, N * c->n_ff);
        } else {
            lt_lin_fwd_infer(&L->lin[LT_MOD_UP], kv->xn, kv->u, N, false, kv->hl, kv->ws);
            lt_gelu_fwd(kv->h, kv->u, N * c->n_ff, ar->gelu_tanh);
        }
        lt_lin_fwd_infer(&L->lin[LT_MOD_DOWN], kv->h, kv->x, N, true, kv->hl, kv->ws);
    }
    kv->n_past += T;
    if (all_logits) {
        lt_norm_fwd(m, m->final_norm, m->final_norm_b, kv->xn, kv->mean, kv->rstd, kv->x, N);
        lt_lin_fwd_infer(&m->lm_head, kv->xn, logits, N, false, kv->hl, kv->ws);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(kv->last + (size_t)b * (size_t)C, kv->x + ((size_t)b * (size_t)T + (size_t)T - 1) * (size_t)C,
                   sizeof(float) * (size_t)C);
        lt_norm_fwd(m, m->final_norm, m->final_norm_b, kv->xn, kv->mean, kv->rstd, kv->last, B);
        lt_lin_fwd_infer(&m->lm_head, kv->xn, logits, B, false, kv->hl, kv->ws);
    }
    return LT_OK;
}
