/*
 * quant.c - load_in_4bit: quantise the block projections of a loaded model to NF4/FP4
 * (bitsandbytes blockwise 4-bit, optional double quantisation) into storage the model owns.
 *
 * What: for each of the seven projections of every layer, one allocation holding the scales and
 * the packed 4-bit codes (layout in tensor.h), filled a row at a time from the source dtype
 * (F32/F16/BF16, converted through lt_mat_row_to_f32) with OpenMP over rows; the lt_linear's view
 * is then repointed at it. The source view is kept (merge into the original base), and pages of
 * a mmapped safetensors source are dropped from RSS once converted (madvise MADV_DONTNEED on a
 * read-only file mapping only re-reads the file if touched again).
 * What not: embeddings, LM head and norms are left alone (bitsandbytes replaces nn.Linear
 * modules only and transformers skips lm_head); no re-quantisation of GGUF q4/q8 blocks (they
 * train as stored); no loading of checkpoints saved already quantised by bitsandbytes.
 * Reference: bitsandbytes functional.quantize_4bit; transformers BitsAndBytesConfig
 * (load_in_4bit, bnb_4bit_quant_type, bnb_4bit_use_double_quant); QLoRA (arXiv 2305.14314).
 */
#include "core/core.h"
#include "model/model.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct quant_mat {
    lt_linear *lin;
    int layer, kind;
    lt_mat orig;    // the full-precision view it replaced
    lt_q4_state st; // scales (inside mem); lin->w.aux points here
    void *mem;      // scales then codes
} quant_mat;

struct lt_model_quant {
    lt_dtype dtype;
    bool dq;
    int n_mat;
    quant_mat *mats; // (n_mat); never reallocated (views point into it)
    int64_t n_params;
    size_t bytes, src_bytes;
};

void lt_model_quant_free(struct lt_model_quant *q) {
    if (!q) return;
    for (int i = 0; i < q->n_mat; i++) lt_free(q->mats[i].mem);
    lt_free(q->mats);
    lt_free(q);
}

// Bytes of the scales of nb blocks (floats first, for alignment, then the u8 codes of nested
// scales), and of everything for n values.
static size_t scale_bytes(int64_t nb, bool dq) {
    int64_t ng = (nb + LT_DYN8_DQ_BLOCK - 1) / LT_DYN8_DQ_BLOCK;
    return dq ? (size_t)ng * sizeof(float) + (size_t)nb : (size_t)nb * sizeof(float);
}

// Drops the resident pages of [p, p + n) when they lie in the model's mmapped safetensors file
// (pages wholly inside the range only). `name` is the tensor's name in the file.
static void release_mapped(const lt_model *m, const char *name, const void *p, size_t n) {
    if (!m->st) return;
    const lt_st_tensor *t = lt_st_set_find(m->st, name);
    if (!t || t->data != p) return; // not a view of the file (e.g. a copy the loader made)
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

// Quantises one matrix into qm (allocates qm->mem). ws: threads * cols floats of row buffers.
static lt_status quantize_mat(quant_mat *qm, lt_dtype t, bool dq, float *ws, int n_thr,
                              lt_err *err) {
    const lt_mat *W = &qm->orig;
    int64_t rows = W->rows, cols = W->cols, n = rows * cols, nb = n / LT_Q4_BLOCK;
    int64_t bpr = cols / LT_Q4_BLOCK; // blocks per row
    size_t sb = scale_bytes(nb, dq), cb = (size_t)n / 2;
    float *absmax_tmp = NULL;
    qm->mem = lt_alloc(sb + cb);
    if (dq) absmax_tmp = lt_alloc(sizeof(float) * (size_t)nb);
    if (!qm->mem || (dq && !absmax_tmp)) {
        lt_free(qm->mem), lt_free(absmax_tmp);
        qm->mem = NULL;
        return lt_err_set(err, LT_ERR_OOM, "out of memory quantising %s (%lld x %lld)",
                          qm->lin->name, (long long)rows, (long long)cols);
    }
    char *base = qm->mem;
    uint8_t *codes = (uint8_t *)base + sb;
    lt_q4_state *s = &qm->st;
    memset(s, 0, sizeof *s);
    s->dtype = t;
    s->n_blocks = nb;
    float *absmax;
    if (dq) {
        int64_t ng = (nb + LT_DYN8_DQ_BLOCK - 1) / LT_DYN8_DQ_BLOCK;
        s->absmax2 = (float *)(void *)base;
        s->qabsmax = (uint8_t *)base + (size_t)ng * sizeof(float);
        absmax = absmax_tmp;
    } else {
        s->absmax = (float *)(void *)base;
        absmax = (float *)(void *)base;
    }
    (void)n_thr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_thr)
#endif
    for (int64_t r = 0; r < rows; r++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *buf = ws + (size_t)tid * (size_t)cols;
        lt_mat_row_to_f32(W, r, 0, cols, buf);
        lt_q4_quantize(t, buf, cols, codes + (size_t)r * (size_t)cols / 2, absmax + r * bpr);
    }
    if (dq) {
        lt_q4_double_quant(absmax_tmp, nb, (uint8_t *)s->qabsmax, (float *)s->absmax2, &s->offset);
        lt_free(absmax_tmp);
    }
    return LT_OK;
}

lt_status lt_model_quantize(lt_model *m, lt_dtype t, bool double_quant, lt_err *err) {
    if (t != LT_DTYPE_NF4 && t != LT_DTYPE_FP4)
        return lt_err_set(err, LT_ERR_ARG, "4-bit quantisation type must be nf4 or fp4, not %s",
                          lt_dtype_name(t));
    if (m->quant) return lt_err_set(err, LT_ERR_ARG, "the model is already quantised to 4 bits");
    const int L = m->cfg.n_layer;
    int n = 0;
    int64_t max_cols = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            if (li->out <= 0 || li->in <= 0) continue; // an empty slot (fused q/k/v families)
            const lt_mat *w = &li->w;
            if (w->dtype != LT_DTYPE_F32 && w->dtype != LT_DTYPE_F16 && w->dtype != LT_DTYPE_BF16)
                return lt_err_set(err, LT_ERR_UNSUPPORTED,
                                  "%s: weights are %s; 4-bit quantisation takes F32, F16 or BF16 "
                                  "(quantised GGUF weights train as they are stored)",
                                  li->name, lt_dtype_name(w->dtype));
            if (w->cols % LT_Q4_BLOCK != 0)
                return lt_err_set(err, LT_ERR_UNSUPPORTED,
                                  "%s: rows of %lld values are not a multiple of the 4-bit block "
                                  "size %d",
                                  li->name, (long long)w->cols, LT_Q4_BLOCK);
            if (w->cols > max_cols) max_cols = w->cols;
            n++;
        }
    int n_thr = 1;
#ifdef _OPENMP
    n_thr = omp_get_max_threads();
#endif
    lt_status st = LT_OK;
    struct lt_model_quant *q = lt_calloc(1, sizeof *q);
    float *ws = lt_alloc(sizeof(float) * (size_t)n_thr * (size_t)(max_cols > 0 ? max_cols : 1));
    if (q) q->mats = lt_calloc((size_t)(n > 0 ? n : 1), sizeof *q->mats);
    if (!q || !q->mats || !ws) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    q->dtype = t;
    q->dq = double_quant;
    char name[128];
    for (int l = 0; l < L && !st; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER && !st; k++) {
            lt_linear *li = &m->layers[l].lin[k];
            if (li->out <= 0 || li->in <= 0) continue;
            quant_mat *qm = &q->mats[q->n_mat];
            qm->lin = li, qm->layer = l, qm->kind = k, qm->orig = li->w;
            if ((st = quantize_mat(qm, t, double_quant, ws, n_thr, err))) break;
            q->n_mat++;
            int64_t np = li->w.rows * li->w.cols;
            q->n_params += np;
            q->src_bytes += (size_t)li->w.rows * li->w.row_bytes;
            q->bytes += (size_t)np / 2 + scale_bytes(np / LT_Q4_BLOCK, double_quant) +
                        (double_quant ? sizeof(float) : 0); // + the offset
            const uint8_t *codes =
                (const uint8_t *)qm->mem + scale_bytes(np / LT_Q4_BLOCK, double_quant);
            bool ok = lt_mat_init_q4(&li->w, qm->orig.rows, qm->orig.cols, codes, &qm->st);
            LT_ASSERT(ok); // cols % 64 == 0 was checked above
            snprintf(name, sizeof name, "%s.weight", li->name);
            release_mapped(m, name, qm->orig.data, (size_t)qm->orig.rows * qm->orig.row_bytes);
        }
    if (st) goto fail;
    lt_free(ws);
    m->quant = q;
    return LT_OK;
fail:
    if (q && q->mats)
        for (int i = 0; i < q->n_mat; i++) q->mats[i].lin->w = q->mats[i].orig; // undo
    lt_model_quant_free(q);
    lt_free(ws);
    return st;
}

bool lt_model_quant_info(const lt_model *m, lt_quant_info *out) {
    const struct lt_model_quant *q = m->quant;
    if (!q) return false;
    *out = (lt_quant_info){.dtype = q->dtype,
                           .double_quant = q->dq,
                           .blocksize = LT_Q4_BLOCK,
                           .n_mat = q->n_mat,
                           .n_params = q->n_params,
                           .bytes = q->bytes,
                           .src_bytes = q->src_bytes,
                           .bits_per_param =
                               q->n_params ? 8.0 * (double)q->bytes / (double)q->n_params : 0.0};
    return true;
}

const lt_mat *lt_model_quant_source(const lt_model *m, int layer, lt_mod_kind k) {
    const struct lt_model_quant *q = m->quant;
    if (!q) return NULL;
    for (int i = 0; i < q->n_mat; i++)
        if (q->mats[i].layer == layer && q->mats[i].kind == (int)k) return &q->mats[i].orig;
    return NULL;
}
