/*
 * optim8.c - 8-bit AdamW: bitsandbytes' AdamW8bit with block-wise dynamic quantisation of both
 * moments (contract and formulas in train.h).
 *
 * What: per tensor of the flat parameter array, moments stored as 8-bit codes of bnb's dynamic
 * maps with an f32 absmax per block of 256 (tensors under 4096 elements keep f32 moments, as
 * bnb's min_8bit_size does); each step dequantises a block into f32 on the stack, updates the
 * moments and the parameters in f32, and requantises the block.
 * What not: no paged memory (bnb's paged optimizers move state to the host under GPU memory
 * pressure; on CPU the state is already in RAM), no percentile clipping, no max_unorm.
 * Threads: blocks are independent; OpenMP over them with schedule(static), so the result does
 * not depend on the thread count.
 * Reference: bitsandbytes 0.50 backends/cpu/ops.py (_optimizer_update_8bit_blockwise_cpu,
 * _optimizer_update_32bit_cpu), optim/optimizer.py (Optimizer2State: min_8bit_size, blocks of
 * 256, qmap1 = signed dynamic, qmap2 = unsigned dynamic).
 */
#include "core/core.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lt_adamw8_deinit(lt_adamw8 *o) {
    if (!o) return;
    lt_free(o->seg);
    lt_free(o->qm), lt_free(o->qv), lt_free(o->am), lt_free(o->av);
    lt_free(o->m32), lt_free(o->v32);
    memset(o, 0, sizeof *o);
}

lt_status lt_adamw8_init(lt_adamw8 *o, const int64_t *sizes, int n_seg, int64_t min_8bit_size,
                         lt_err *err) {
    memset(o, 0, sizeof *o);
    if (n_seg <= 0) return lt_err_set(err, LT_ERR_ARG, "8-bit AdamW: no parameters");
    o->seg = lt_calloc((size_t)n_seg, sizeof *o->seg);
    if (!o->seg) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    o->n_seg = n_seg;
    for (int i = 0; i < n_seg; i++) {
        if (sizes[i] <= 0) {
            lt_adamw8_deinit(o);
            return lt_err_set(err, LT_ERR_ARG, "8-bit AdamW: tensor %d has %lld elements", i,
                              (long long)sizes[i]);
        }
        lt_adamw8_seg *s = &o->seg[i];
        s->off = o->n;
        s->n = sizes[i];
        s->q8 = sizes[i] >= min_8bit_size;
        if (s->q8) {
            s->soff = o->n8;
            s->boff = o->n_blocks;
            o->n8 += s->n;
            o->n_blocks += (s->n + LT_ADAMW8_BLOCK - 1) / LT_ADAMW8_BLOCK;
        } else {
            s->soff = o->n32;
            o->n32 += s->n;
        }
        o->n += s->n;
    }
    // zero codes with zero absmax read back as 0 whatever code 0 means
    o->qm = lt_calloc((size_t)o->n8, 1);
    o->qv = lt_calloc((size_t)o->n8, 1);
    o->am = lt_calloc((size_t)o->n_blocks, sizeof(float));
    o->av = lt_calloc((size_t)o->n_blocks, sizeof(float));
    o->m32 = lt_calloc((size_t)o->n32, sizeof(float));
    o->v32 = lt_calloc((size_t)o->n32, sizeof(float));
    if ((o->n8 && (!o->qm || !o->qv || !o->am || !o->av)) || (o->n32 && (!o->m32 || !o->v32))) {
        lt_adamw8_deinit(o);
        return lt_err_set(err, LT_ERR_OOM, "out of memory for the 8-bit AdamW state");
    }
    return LT_OK;
}

typedef struct span {
    int64_t off, n;
} span;

static int span_cmp(const void *a, const void *b) {
    int64_t x = ((const span *)a)->off, y = ((const span *)b)->off;
    return (x > y) - (x < y);
}

lt_status lt_adamw8_init_adapter(lt_adamw8 *o, const lt_adapter *a, lt_err *err) {
    int ns = 2 * a->n_mod + (a->score ? 1 : 0);
    span *sp = lt_alloc(sizeof *sp * (size_t)(ns > 0 ? ns : 1));
    int64_t *sizes = lt_alloc(sizeof *sizes * (size_t)(ns > 0 ? ns : 1));
    lt_status st = LT_OK;
    if (!sp || !sizes) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    int k = 0;
    int64_t in_mods = 0;
    for (int i = 0; i < a->n_mod; i++) {
        const lt_lora_mod *md = &a->mods[i];
        sp[k++] = (span){md->A - a->params, (int64_t)md->r * md->in};
        sp[k++] = (span){md->B - a->params, (int64_t)md->out * md->r};
        in_mods += sp[k - 2].n + sp[k - 1].n;
    }
    if (a->score) sp[k++] = (span){a->score - a->params, a->n_params - in_mods}; // (n_labels, C)
    qsort(sp, (size_t)k, sizeof *sp, span_cmp);
    // the tensors must tile the flat array; otherwise treat it as one tensor
    int64_t at = 0;
    bool tiled = true;
    for (int i = 0; i < k; i++) {
        if (sp[i].off != at || sp[i].n <= 0) tiled = false;
        at += sp[i].n;
        sizes[i] = sp[i].n;
    }
    if (!tiled || at != a->n_params) {
        sizes[0] = a->n_params;
        k = 1;
    }
    st = lt_adamw8_init(o, sizes, k, LT_ADAMW8_MIN_SIZE, err);
done:
    lt_free(sp);
    lt_free(sizes);
    return st;
}

size_t lt_adamw8_state_bytes(const lt_adamw8 *o) {
    return 2 * (size_t)o->n8 + 2 * sizeof(float) * (size_t)o->n_blocks +
           2 * sizeof(float) * (size_t)o->n32;
}

// ---------------------------------------------------------------------------------------------
// update

typedef struct adam_k {
    float lr, b1, b2, w1, w2, eps, decay; // decay = 1 - lr*wd (used when wd > 0)
    bool wd;
    float neg_step8;  // 8-bit path: -lr / c1 (addcdiv value)
    float c2;         // sqrt(1 - b2^t)
    float neg_step32; // 32-bit path: -lr * c2 / c1
    float eps_c2;     // 32-bit path: eps * c2
} adam_k;

// One block of an 8-bit tensor: n <= 256 elements at p/g, codes at qm/qv, scales *am/*av.
static void block8(float *p, const float *g, uint8_t *qm, uint8_t *qv, float *am, float *av,
                   int64_t n, const adam_k *k) {
    const float *ms = lt_dyn8_map(true), *vs = lt_dyn8_map(false);
    float m[LT_ADAMW8_BLOCK], v[LT_ADAMW8_BLOCK];
    float a1 = *am, a2 = *av;
    for (int64_t i = 0; i < n; i++) {
        m[i] = ms[qm[i]] * a1;
        v[i] = vs[qv[i]] * a2;
    }
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = m[i] * k->b1 + k->w1 * gi;
        v[i] = v[i] * k->b2 + k->w2 * gi * gi;
        float denom = sqrtf(v[i]) / k->c2 + k->eps;
        float pi = p[i];
        if (k->wd) pi *= k->decay;
        p[i] = pi + k->neg_step8 * (m[i] / denom);
    }
    lt_dyn8_quantize(ms, m, n, LT_ADAMW8_BLOCK, qm, am);
    lt_dyn8_quantize(vs, v, n, LT_ADAMW8_BLOCK, qv, av);
}

// A block of a small tensor with f32 moments (bnb's 32-bit update).
static void block32(float *p, const float *g, float *m, float *v, int64_t n, const adam_k *k) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = m[i] * k->b1 + k->w1 * gi;
        v[i] = v[i] * k->b2 + k->w2 * gi * gi;
        float pi = p[i];
        if (k->wd) pi *= k->decay;
        p[i] = pi + k->neg_step32 * (m[i] / (sqrtf(v[i]) + k->eps_c2));
    }
}

void lt_adamw8_update(lt_adamw8 *o, float *p, const float *g, float lr, float b1, float b2,
                      float eps, float wd, int64_t t) {
    // Scalars as PyTorch uses Python floats on f32 tensors: computed in double, then rounded.
    double c1 = 1.0 - pow((double)b1, (double)t), c2 = sqrt(1.0 - pow((double)b2, (double)t));
    adam_k k = {.lr = lr,
                .b1 = b1,
                .b2 = b2,
                .w1 = (float)(1.0 - (double)b1),
                .w2 = (float)(1.0 - (double)b2),
                .eps = eps,
                .decay = (float)(1.0 - (double)lr * (double)wd),
                .wd = wd > 0,
                .neg_step8 = (float)(-(double)lr / c1),
                .c2 = (float)c2,
                .neg_step32 = (float)(-(double)lr * c2 / c1),
                .eps_c2 = (float)((double)eps * c2)};
    // Work items: every block of every tensor (8-bit blocks and 256-element chunks of f32 ones).
    int64_t n_items = 0;
    for (int s = 0; s < o->n_seg; s++)
        n_items += (o->seg[s].n + LT_ADAMW8_BLOCK - 1) / LT_ADAMW8_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (o->n >= (1 << 16))
#endif
    for (int64_t it = 0; it < n_items; it++) {
        // find the segment of item `it` (segments are few: a linear walk)
        int s = 0;
        int64_t first = 0;
        for (;; s++) {
            int64_t nb = (o->seg[s].n + LT_ADAMW8_BLOCK - 1) / LT_ADAMW8_BLOCK;
            if (it < first + nb) break;
            first += nb;
        }
        const lt_adamw8_seg *sg = &o->seg[s];
        int64_t b = it - first, e0 = b * LT_ADAMW8_BLOCK;
        int64_t n = sg->n - e0 < LT_ADAMW8_BLOCK ? sg->n - e0 : LT_ADAMW8_BLOCK;
        float *pp = p + sg->off + e0;
        const float *gg = g + sg->off + e0;
        if (sg->q8)
            block8(pp, gg, o->qm + sg->soff + e0, o->qv + sg->soff + e0, o->am + sg->boff + b,
                   o->av + sg->boff + b, n, &k);
        else
            block32(pp, gg, o->m32 + sg->soff + e0, o->v32 + sg->soff + e0, n, &k);
    }
}

void lt_adamw8_moments(const lt_adamw8 *o, float *m, float *v) {
    for (int s = 0; s < o->n_seg; s++) {
        const lt_adamw8_seg *sg = &o->seg[s];
        if (sg->q8) {
            lt_dyn8_dequantize(lt_dyn8_map(true), o->qm + sg->soff, o->am + sg->boff, sg->n,
                               LT_ADAMW8_BLOCK, m + sg->off);
            lt_dyn8_dequantize(lt_dyn8_map(false), o->qv + sg->soff, o->av + sg->boff, sg->n,
                               LT_ADAMW8_BLOCK, v + sg->off);
        } else {
            memcpy(m + sg->off, o->m32 + sg->soff, sizeof(float) * (size_t)sg->n);
            memcpy(v + sg->off, o->v32 + sg->soff, sizeof(float) * (size_t)sg->n);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the training loop's state and checkpoints

void lt_adamw8_free(lt_adamw8 *o) {
    if (!o) return;
    lt_adamw8_deinit(o);
    lt_free(o);
}

lt_status lt_train_state_use_8bit(lt_train_state *s, const lt_adapter *a, lt_err *err) {
    lt_adamw8 *o = lt_calloc(1, sizeof *o);
    if (!o) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = lt_adamw8_init_adapter(o, a, err);
    if (st) {
        lt_free(o);
        return st;
    }
    lt_free(s->m), lt_free(s->v);
    s->m = s->v = NULL;
    lt_adamw8_free(s->q8);
    s->q8 = o;
    return LT_OK;
}

size_t lt_train_state_bytes(const lt_train_state *s, int64_t n_params) {
    if (s->q8) return lt_adamw8_state_bytes(s->q8);
    return s->m ? 2 * sizeof(float) * (size_t)n_params : 0;
}

// "n:q8,n:f32,..." describing the segments (bounded: long layouts are cut, then compared cut).
static void layout_str(const lt_adamw8 *o, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < o->n_seg && at + 32 < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld:%s", i ? "," : "", (long long)o->seg[i].n,
                               o->seg[i].q8 ? "q8" : "f32");
}

lt_status lt_adamw8_ckpt_save(lt_st_writer *w, const lt_adamw8 *o, lt_err *err) {
    int64_t s8[1] = {o->n8}, sb[1] = {o->n_blocks}, s32[1] = {o->n32};
    char lay[1024];
    layout_str(o, lay, sizeof lay);
    lt_status st = lt_st_writer_add(w, "adam8_qm", LT_DTYPE_U8, 1, s8, o->qm, err);
    if (!st) st = lt_st_writer_add(w, "adam8_qv", LT_DTYPE_U8, 1, s8, o->qv, err);
    if (!st) st = lt_st_writer_add(w, "adam8_am", LT_DTYPE_F32, 1, sb, o->am, err);
    if (!st) st = lt_st_writer_add(w, "adam8_av", LT_DTYPE_F32, 1, sb, o->av, err);
    if (!st) st = lt_st_writer_add(w, "adam8_m32", LT_DTYPE_F32, 1, s32, o->m32, err);
    if (!st) st = lt_st_writer_add(w, "adam8_v32", LT_DTYPE_F32, 1, s32, o->v32, err);
    if (!st) st = lt_st_writer_meta(w, "optim", "adamw_8bit", err);
    if (!st) st = lt_st_writer_meta(w, "adam8_layout", lay, err);
    return st;
}

lt_status lt_adamw8_ckpt_load(const lt_safetensors *f, lt_adamw8 *o, const char *path,
                              lt_err *err) {
    const char *opt = lt_safetensors_meta(f, "optim"),
               *lay = lt_safetensors_meta(f, "adam8_layout");
    char want[1024];
    layout_str(o, want, sizeof want);
    if (!opt || strcmp(opt, "adamw_8bit") != 0)
        return lt_err_set(err, LT_ERR_ARG,
                          "%s: checkpoint was written by AdamW with f32 moments; "
                          "resume it with --optim adamw",
                          path);
    if (!lay || strcmp(lay, want) != 0)
        return lt_err_set(err, LT_ERR_ARG,
                          "%s: 8-bit AdamW state is for other tensors (%.60s; "
                          "this run: %.60s)",
                          path, lay ? lay : "?", want);
    struct {
        const char *name;
        lt_dtype dt;
        int64_t n;
        void *dst;
    } ts[6] = {{"adam8_qm", LT_DTYPE_U8, o->n8, o->qm},
               {"adam8_qv", LT_DTYPE_U8, o->n8, o->qv},
               {"adam8_am", LT_DTYPE_F32, o->n_blocks, o->am},
               {"adam8_av", LT_DTYPE_F32, o->n_blocks, o->av},
               {"adam8_m32", LT_DTYPE_F32, o->n32, o->m32},
               {"adam8_v32", LT_DTYPE_F32, o->n32, o->v32}};
    for (int i = 0; i < 6; i++) {
        const lt_st_tensor *t = lt_safetensors_find(f, ts[i].name);
        if (!t || t->dtype != ts[i].dt || t->numel != ts[i].n)
            return lt_err_set(err, LT_ERR_FORMAT, "%s: tensor %s missing or not %s[%lld]", path,
                              ts[i].name, lt_dtype_name(ts[i].dt), (long long)ts[i].n);
    }
    for (int i = 0; i < 6; i++) {
        const lt_st_tensor *t = lt_safetensors_find(f, ts[i].name);
        if (ts[i].n) memcpy(ts[i].dst, t->data, t->nbytes);
    }
    return LT_OK;
}
