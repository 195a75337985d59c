/*
 * forward.c - forward and hand-written backward of the decoder stack with LoRA, the chunked
 * LM head + cross-entropy, and gradient checkpointing (recompute a block from its saved input).
 *
 * Block (pre-norm, llama family):
 *   xn1 = rms(x; w1); q,k,v = Q(xn1),K(xn1),V(xn1); rope(q,k); ao = attn(q,k,v)
 *   xmid = x + O(ao); xn2 = rms(xmid; w2); h = silu(G(xn2)) * U(xn2); out = xmid + D(h)
 * Saved per layer for backward: q, k, v, the attention's log-sum-exp, ao, xmid, g, u, the norms'
 * statistics and the LoRA hiddens. xn1, xn2 and h are recomputed in the backward (elementwise
 * passes), the attention probabilities block by block inside its backward.
 * Each projection P(x) = x W^T + b + s * (drop(x) A^T) B^T when a LoRA module is attached.
 * Backward runs the same list in reverse; gradients flow only where something is trainable:
 * nothing is computed for frozen weights, and the backward stops at the lowest block holding
 * LoRA parameters. Logits are computed only for positions whose (shifted) label carries loss,
 * a chunk of rows at a time, so the (N, V) logits matrix never exists during training.
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

// Rows of logits computed at once by the LM head: HEAD_CHUNK, fewer for a vocabulary so large
// that a chunk would exceed HEAD_CHUNK_BYTES (but at least HEAD_CHUNK_MIN). Fewer rows would
// not save memory in training, where the chunk shares its bytes with the backward's scratch,
// and each chunk's sgemm packs the whole LM-head weight again (~260 MB for 2048 x 32000 f32).
#define HEAD_CHUNK 512
#define HEAD_CHUNK_MIN 64
#define HEAD_CHUNK_BYTES ((size_t)64 << 20)

typedef struct block_acts {
    float *mean1, *rstd1;       // (N), (N) of the attention norm; mean only for LayerNorm
    float *qkv;         // (N, QD + 2 KVD) fused projection output, or NULL
    float *q, *k, *v;   // (N,QD), (N,KVD), (N,KVD) after RoPE
    float *lse;         // (B,NH,T) attention log-sum-exp (the probabilities are recomputed)
    float *ao;          // (N,QD)
    float *xmid;        // (N,C)
    float *mean2, *rstd2;       // (N), (N) of the MLP norm
    float *g, *u;       // (N,F); u is the GELU input for GELU MLPs (h is recomputed from them)
    float *hl[LT_MOD_PER_LAYER]; // LoRA hidden (N, r) per module, NULL when no module
} block_acts;

struct lt_ctx {
    lt_model *m;
    int B, T;
    int64_t N;
    bool train, ckpt;
    int n_slots;       // activation slots: L when training without checkpointing, else 1
    block_acts *acts;  // (n_slots)
    float *xs;         // (L+1, N, C) block inputs (the residual stream)
    float *xf, *meanf, *rstdf; // (N,C), (N), (N) after the final norm
    // Recomputed per block rather than kept per layer (cheap elementwise passes over saved
    // inputs, so bit-identical to the forward's values):
    float *xn;         // (N,C) a norm's output (xn1, then xn2) of the block being run
    float *h;          // (N,F) MLP hidden of the block being run (forward, or backward recompute)
    // backward scratch: these and the logits chunk are views into one allocation, `scratch`,
    // the larger of the two: the chunk is dead before the backward of the blocks starts.
    float *scratch;
    float *dres, *dxn, *dao, *dq, *dk, *dv; // (N,C) (N,C) (N,QD) (N,QD) (N,KVD) (N,KVD)
    float *dxn2, *dqkv;                     // (N,C), (N, QD + 2 KVD) when fused
    float *dF1, *dF2, *dF3;                 // (N,F)
    float *dhl;                             // (max(N, hc), rmax)
    float *drop;                            // (max(N, hc), max in) dropout scratch, or NULL
    // LM head
    int hc;                    // rows of logits per chunk (head_chunk_rows)
    int32_t *sel, *tgt;        // (N) selected rows and their targets
    float *hsel, *dhsel;       // (N, C)
    float *chunk;              // (hc, V)
    float *hl_head;            // (hc, r) LoRA hidden of lm_head
    int32_t *pos0;             // (N) default positions
    float *lin_ws, *attn_ws;   // linear slabs; attention scratch for nthr threads
    int nthr;
    size_t bytes;
    // per-step settings
    uint64_t drop_seed;
    int64_t step;
};

// ---------------------------------------------------------------------------------------------
// context

static float *ctx_alloc(lt_ctx *c, size_t n, bool *ok) {
    if (n == 0) return NULL;
    float *p = lt_alloc_aligned(n * sizeof(float));
    if (!p) *ok = false;
    else c->bytes += n * sizeof(float);
    return p;
}

static void acts_free(block_acts *a) {
    lt_free_aligned(a->rstd1), lt_free_aligned(a->q);
    lt_free_aligned(a->mean1), lt_free_aligned(a->mean2), lt_free_aligned(a->qkv);
    lt_free_aligned(a->k), lt_free_aligned(a->v), lt_free_aligned(a->lse);
    lt_free_aligned(a->ao), lt_free_aligned(a->xmid);
    lt_free_aligned(a->rstd2), lt_free_aligned(a->g), lt_free_aligned(a->u);
    for (int k = 0; k < LT_MOD_PER_LAYER; k++) lt_free_aligned(a->hl[k]);
}

void lt_ctx_free(lt_ctx *c) {
    if (!c) return;
    if (c->acts)
        for (int i = 0; i < c->n_slots; i++) acts_free(&c->acts[i]);
    lt_free(c->acts);
    float *fs[] = {c->xs,    c->xf,    c->rstdf,   c->meanf,  c->xn, c->h, c->scratch, c->dhl,
                   c->drop,  c->hsel,  c->dhsel,   c->hl_head, c->lin_ws, c->attn_ws};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) lt_free_aligned(fs[i]);
    lt_free(c->sel);
    lt_free(c->tgt);
    lt_free(c->pos0);
    lt_free(c);
}

size_t lt_ctx_bytes(const lt_ctx *c) { return c->bytes; }

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Views into the scratch allocation start on 64-byte boundaries.
static size_t scratch_round(size_t n) { return (n + 15) & ~(size_t)15; }

// Points *p at the next n floats of the scratch (NULL for none).
static float *scratch_take(float **next, size_t n) {
    if (n == 0) return NULL;
    float *p = *next;
    *next += scratch_round(n);
    return p;
}

static int head_chunk_rows(int V) {
    size_t rows = HEAD_CHUNK_BYTES / ((size_t)V * sizeof(float));
    return rows >= HEAD_CHUNK ? HEAD_CHUNK : rows <= HEAD_CHUNK_MIN ? HEAD_CHUNK_MIN : (int)rows;
}

// The float count of every buffer lt_ctx_new allocates, worked out in this one place, so that
// the memory planner (lt_ctx_plan_bytes) and the allocation cannot drift apart.
typedef struct ctx_sizes {
    int n_slots;                       // activation slots
    size_t rstd1, mean1, mean2, qkv, q, k, v, lse, ao, xmid, rstd2, g, u, hl; // per slot
    size_t xs, xf, rstdf, meanf, xn, h;
    size_t dres, dxn, dxn2, dqkv, dao, dq, dk, dv, dF1, dF2, dF3; // training: views into scratch
    size_t chunk, scratch; // scratch = max(chunk, the sum of the views, each rounded up)
    size_t dhl, dhsel, drop, hsel, hl_head, lin_ws, attn_ws;
    size_t n_int32; // sel, tgt, pos0: N each
    int hc, nthr;
} ctx_sizes;

// proj_4bit: size the linear workspace as if the block projections were NF4 (the planner's
// --load-in-4bit before anything is quantised).
static void ctx_sizes_get(const lt_model *m, const lt_ctx_opts *o, bool proj_4bit, ctx_sizes *z) {
    const lt_config *cf = &m->cfg;
    bool train = o->train, ckpt = o->train && o->checkpoint;
    size_t N = (size_t)o->B * (size_t)o->T, C = (size_t)cf->n_embd, F = (size_t)cf->n_ff;
    size_t V = (size_t)cf->n_vocab, L = (size_t)cf->n_layer;
    size_t QD = (size_t)cf->n_head * (size_t)cf->head_dim, KVD = (size_t)cf->n_head_kv * (size_t)cf->head_dim;
    bool fused = m->arch.qkv != LT_QKV_SEPARATE;
    // The largest LoRA rank and input width among attached modules, and whether any has dropout.
    size_t rmax = 0, inmax = C;
    bool any_drop = false;
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_lora_mod *lm = m->layers[l].lin[k].lora;
            if (!lm) continue;
            rmax = max_sz(rmax, (size_t)lm->r);
            inmax = max_sz(inmax, (size_t)lm->in);
            any_drop |= lm->dropout > 0;
        }
    if (m->lm_head.lora) {
        rmax = max_sz(rmax, (size_t)m->lm_head.lora->r);
        any_drop |= m->lm_head.lora->dropout > 0;
    }
    memset(z, 0, sizeof *z);
    // no more rows than the batch has: the loss rows are a subset of its N rows
    z->hc = head_chunk_rows(cf->n_vocab);
    if ((size_t)z->hc > N) z->hc = (int)N;
    z->nthr = max_threads();
    size_t hc = (size_t)z->hc;
    z->n_slots = train && !ckpt ? (int)L : 1;
    z->rstd1 = N, z->mean1 = N, z->mean2 = N;
    z->qkv = fused ? N * (QD + 2 * KVD) : 0;
    z->q = N * QD, z->k = N * KVD, z->v = N * KVD;
    z->lse = (size_t)o->B * (size_t)cf->n_head * (size_t)o->T;
    z->ao = N * QD, z->xmid = N * C, z->rstd2 = N;
    z->g = N * F, z->u = N * F, z->hl = N * rmax;
    z->xs = (L + 1) * N * C, z->xf = N * C, z->rstdf = N, z->meanf = N, z->xn = N * C, z->h = N * F;
    if (train) {
        z->dres = N * C, z->dxn = N * C, z->dxn2 = N * C;
        z->dqkv = fused ? N * (QD + 2 * KVD) : 0;
        z->dao = N * QD, z->dq = N * QD, z->dk = N * KVD, z->dv = N * KVD;
        z->dF1 = N * F, z->dF2 = N * F, z->dF3 = N * F;
        z->dhl = max_sz(N, hc) * max_sz(rmax, 1);
        z->dhsel = N * C;
    }
    z->drop = any_drop ? max_sz(N, hc) * max_sz(inmax, F) : 0;
    z->hsel = N * C;
    z->chunk = hc * V;
    const size_t *views[] = {&z->dres, &z->dxn, &z->dxn2, &z->dqkv, &z->dao, &z->dq,
                             &z->dk,   &z->dv,  &z->dF1,  &z->dF2,  &z->dF3};
    size_t sum = 0;
    for (size_t i = 0; i < sizeof views / sizeof *views; i++) sum += scratch_round(*views[i]);
    z->scratch = max_sz(z->chunk, sum);
    z->hl_head = hc * max_sz(rmax, 1);
    size_t lws = lt_linear_ws_floats(&m->lm_head.w);
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_mat w = m->layers[l].lin[k].w;
            if (proj_4bit && w.rows && (w.dtype == LT_DTYPE_F32 || w.dtype == LT_DTYPE_F16 ||
                                        w.dtype == LT_DTYPE_BF16))
                w.dtype = LT_DTYPE_NF4;
            lws = max_sz(lws, lt_linear_ws_floats(&w));
        }
    z->lin_ws = max_sz(lws, 1);
    lt_attn_shape as = {.B = o->B, .T = o->T, .NH = cf->n_head, .NKV = cf->n_head_kv, .HS = cf->head_dim};
    z->attn_ws = lt_attn_ws_floats(&as, z->nthr);
    z->n_int32 = 3 * N;
}

static size_t ctx_sizes_bytes(const ctx_sizes *z) {
    size_t slot = z->rstd1 + z->mean1 + z->mean2 + z->qkv + z->q + z->k + z->v + z->lse + z->ao +
                  z->xmid + z->rstd2 + z->g + z->u + LT_MOD_PER_LAYER * z->hl;
    size_t rest = z->xs + z->xf + z->rstdf + z->meanf + z->xn + z->h + z->scratch + z->dhl + z->dhsel +
                  z->drop + z->hsel + z->hl_head + z->lin_ws + z->attn_ws;
    return sizeof(float) * ((size_t)z->n_slots * slot + rest) + sizeof(int32_t) * z->n_int32;
}

size_t lt_ctx_plan_bytes(const lt_model *m, const lt_ctx_opts *o, bool proj_4bit) {
    ctx_sizes z;
    ctx_sizes_get(m, o, proj_4bit, &z);
    return ctx_sizes_bytes(&z);
}

lt_status lt_ctx_new(lt_model *m, const lt_ctx_opts *o, lt_ctx **out, lt_err *err) {
    const lt_config *cf = &m->cfg;
    if (o->B <= 0 || o->T <= 0 || o->B > 1 << 16 || o->T > 1 << 20)
        return lt_err_set(err, LT_ERR_ARG, "batch %d x sequence %d is not a valid shape", o->B, o->T);
    if (o->T > cf->max_pos)
        return lt_err_set(err, LT_ERR_ARG, "sequence length %d exceeds the model's %d positions",
                          o->T, cf->max_pos);
    lt_ctx *c = lt_calloc(1, sizeof *c);
    if (!c) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    ctx_sizes z;
    ctx_sizes_get(m, o, false, &z);
    c->m = m;
    c->B = o->B, c->T = o->T;
    c->N = (int64_t)o->B * o->T;
    c->train = o->train;
    c->ckpt = o->train && o->checkpoint;
    c->hc = z.hc, c->nthr = z.nthr;
    c->n_slots = z.n_slots;
    bool ok = true;
    c->acts = lt_calloc((size_t)c->n_slots, sizeof *c->acts);
    if (!c->acts) ok = false;
    for (int s = 0; ok && s < c->n_slots; s++) {
        block_acts *a = &c->acts[s];
        a->rstd1 = ctx_alloc(c, z.rstd1, &ok);
        a->mean1 = ctx_alloc(c, z.mean1, &ok), a->mean2 = ctx_alloc(c, z.mean2, &ok);
        a->qkv = ctx_alloc(c, z.qkv, &ok);
        a->q = ctx_alloc(c, z.q, &ok), a->k = ctx_alloc(c, z.k, &ok);
        a->v = ctx_alloc(c, z.v, &ok), a->lse = ctx_alloc(c, z.lse, &ok);
        a->ao = ctx_alloc(c, z.ao, &ok), a->xmid = ctx_alloc(c, z.xmid, &ok);
        a->rstd2 = ctx_alloc(c, z.rstd2, &ok);
        a->g = ctx_alloc(c, z.g, &ok), a->u = ctx_alloc(c, z.u, &ok);
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) a->hl[k] = ctx_alloc(c, z.hl, &ok);
    }
    c->xs = ctx_alloc(c, z.xs, &ok);
    c->xf = ctx_alloc(c, z.xf, &ok), c->rstdf = ctx_alloc(c, z.rstdf, &ok);
    c->meanf = ctx_alloc(c, z.meanf, &ok), c->xn = ctx_alloc(c, z.xn, &ok);
    c->h = ctx_alloc(c, z.h, &ok);
    c->scratch = ctx_alloc(c, z.scratch, &ok);
    if (c->scratch) {
        float *next = c->scratch;
        c->chunk = c->scratch;
        c->dres = scratch_take(&next, z.dres), c->dxn = scratch_take(&next, z.dxn);
        c->dxn2 = scratch_take(&next, z.dxn2), c->dqkv = scratch_take(&next, z.dqkv);
        c->dao = scratch_take(&next, z.dao), c->dq = scratch_take(&next, z.dq);
        c->dk = scratch_take(&next, z.dk), c->dv = scratch_take(&next, z.dv);
        c->dF1 = scratch_take(&next, z.dF1), c->dF2 = scratch_take(&next, z.dF2);
        c->dF3 = scratch_take(&next, z.dF3);
    }
    c->dhl = ctx_alloc(c, z.dhl, &ok), c->dhsel = ctx_alloc(c, z.dhsel, &ok);
    c->drop = ctx_alloc(c, z.drop, &ok);
    c->hsel = ctx_alloc(c, z.hsel, &ok);
    c->hl_head = ctx_alloc(c, z.hl_head, &ok);
    c->lin_ws = ctx_alloc(c, z.lin_ws, &ok);
    c->attn_ws = ctx_alloc(c, z.attn_ws, &ok);
    size_t N = (size_t)c->N;
    c->sel = lt_alloc(N * sizeof(int32_t));
    c->tgt = lt_alloc(N * sizeof(int32_t));
    c->pos0 = lt_alloc(N * sizeof(int32_t));
    if (c->sel && c->tgt && c->pos0) c->bytes += z.n_int32 * sizeof(int32_t);
    if (!ok || !c->sel || !c->tgt || !c->pos0) {
        size_t want = c->bytes;
        lt_ctx_free(c);
        return lt_err_set(err, LT_ERR_OOM,
                          "out of memory allocating activations for batch %d x %d (%.1f MB so far)",
                          o->B, o->T, (double)want / 1e6);
    }
    LT_ASSERT(c->bytes == ctx_sizes_bytes(&z)); // the planner's figure is what was allocated
    for (int b = 0; b < o->B; b++)
        for (int t = 0; t < o->T; t++) c->pos0[(size_t)b * (size_t)o->T + (size_t)t] = t;
    *out = c;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// linear modules with LoRA

// Whether element e (row-major over (rows, in) from row 0 of the batch) survives the dropout
// of module lm in this step: a hash of (seed, step, module, element), so recomputation in
// backward reproduces the forward's mask exactly.
static inline bool drop_keeps(const lt_ctx *c, const lt_lora_mod *lm, int64_t e) {
    return lt_hash_uniform(c->drop_seed, (uint64_t)c->step, (uint64_t)lm->id, (uint64_t)e) <
           1.0f - lm->dropout;
}

// The input the LoRA path sees: x itself, or dropout(x) (into c->drop).
static const float *lora_input(lt_ctx *c, const lt_lora_mod *lm, const float *x, int64_t N,
                               int64_t row0) {
    if (!(lm->dropout > 0) || !c->train) return x;
    float inv = 1.0f / (1.0f - lm->dropout);
    int64_t in = lm->in;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < in; i++)
            c->drop[n * in + i] = drop_keeps(c, lm, (row0 + n) * in + i) ? x[n * in + i] * inv : 0.0f;
    return c->drop;
}

void lt_lin_fwd_infer(const lt_linear *li, const float *x, float *y, int64_t N, bool accumulate,
                      float *hl, float *ws) {
    lt_linear_fwd(y, x, &li->w, li->b, N, accumulate, ws);
    const lt_lora_mod *lm = li->lora;
    if (!lm) return;
    lt_sgemm(false, true, N, lm->r, lm->in, 1.0f, x, lm->in, lm->A, lm->in, 0.0f, hl, lm->r);
    lt_sgemm(false, true, N, lm->out, lm->r, lm->scale, hl, lm->r, lm->B, lm->r, 1.0f, y, lm->out);
}

// y (N,out) (+)= x (N,in) W^T + b + s * hl B^T with hl (N,r) = drop(x) A^T saved for backward.
static void lin_fwd(lt_ctx *c, const lt_linear *li, const float *x, float *y, int64_t N,
                    bool accumulate, float *hl, int64_t row0) {
    const lt_lora_mod *lm = li->lora;
    if (!lm || !(lm->dropout > 0) || !c->train) {
        lt_lin_fwd_infer(li, x, y, N, accumulate, hl, c->lin_ws);
        return;
    }
    lt_linear_fwd(y, x, &li->w, li->b, N, accumulate, c->lin_ws);
    const float *xa = lora_input(c, lm, x, N, row0);
    lt_sgemm(false, true, N, lm->r, lm->in, 1.0f, xa, lm->in, lm->A, lm->in, 0.0f, hl, lm->r);
    lt_sgemm(false, true, N, lm->out, lm->r, lm->scale, hl, lm->r, lm->B, lm->r, 1.0f, y, lm->out);
}

// dx (N,in) += dy W (+ the LoRA path), and the LoRA gradients. dx may be NULL when the input
// gradient is not needed (below it nothing is trainable).
static void lin_bwd(lt_ctx *c, const lt_linear *li, const float *x, const float *dy, float *dx,
                    int64_t N, const float *hl, int64_t row0) {
    if (dx) lt_linear_bwd_x(dx, dy, &li->w, N, c->lin_ws);
    lt_lora_mod *lm = li->lora;
    if (!lm) return;
    int r = lm->r;
    // gB (out,r) += s * dy^T hl ; dhl (N,r) = s * dy B ; gA (r,in) += dhl^T drop(x)
    lt_sgemm(true, false, lm->out, r, N, lm->scale, dy, lm->out, hl, r, 1.0f, lm->gB, r);
    lt_sgemm(false, false, N, r, lm->out, lm->scale, dy, lm->out, lm->B, r, 0.0f, c->dhl, r);
    const float *xa = lora_input(c, lm, x, N, row0);
    lt_sgemm(true, false, r, lm->in, N, 1.0f, c->dhl, r, xa, lm->in, 1.0f, lm->gA, lm->in);
    if (!dx) return;
    if (!(lm->dropout > 0)) {
        lt_sgemm(false, false, N, lm->in, r, 1.0f, c->dhl, r, lm->A, lm->in, 1.0f, dx, lm->in);
        return;
    }
    // through dropout: d drop(x)/dx = mask / keep. xa in c->drop is no longer needed, so the
    // product dhl A goes there and is masked while it is added to dx.
    float *t = c->drop;
    int64_t in = lm->in;
    float inv = 1.0f / (1.0f - lm->dropout);
    lt_sgemm(false, false, N, in, r, 1.0f, c->dhl, r, lm->A, in, 0.0f, t, in);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < in; i++)
            if (drop_keeps(c, lm, (row0 + n) * in + i)) dx[n * in + i] += t[n * in + i] * inv;
}

// ---------------------------------------------------------------------------------------------
// blocks

static lt_attn_shape attn_shape(const lt_ctx *c, const lt_batch *b) {
    const lt_config *cf = &c->m->cfg;
    lt_attn_shape s = {.B = c->B, .T = c->T, .NH = cf->n_head, .NKV = cf->n_head_kv,
                       .HS = cf->head_dim, .window = cf->sliding_window, .kmask = b->kmask};
    return s;
}

// ---- pieces shared with decode.c (model_impl.h) ----------------------------------------------

void lt_norm_fwd(const lt_model *m, const float *w, const float *b, float *out, float *mean,
                 float *rstd, const float *x, int64_t N) {
    if (m->arch.norm == LT_NORM_LAYER)
        lt_layernorm_fwd(out, mean, rstd, x, w, b, N, m->cfg.n_embd, m->cfg.norm_eps);
    else lt_rmsnorm_fwd(out, rstd, x, w, N, m->cfg.n_embd, m->cfg.norm_eps);
}

void lt_norm_bwd(const lt_model *m, const float *w, float *dx, const float *dout, const float *x,
                 const float *mean, const float *rstd, int64_t N) {
    if (m->arch.norm == LT_NORM_LAYER) lt_layernorm_bwd(dx, dout, x, w, mean, rstd, N, m->cfg.n_embd);
    else lt_rmsnorm_bwd(dx, NULL, dout, x, w, rstd, N, m->cfg.n_embd);
}

// Row n of the fused output: GPT-2 [q (QD) | k (KVD) | v (KVD)]; GPT-NeoX per head h
// [q_h (HS) k_h (HS) v_h (HS)]. pack = true goes the other way (gradients into the fused layout).
static void qkv_copy(const lt_model *m, float *qkv, float *q, float *k, float *v, int64_t N, bool pack) {
    const int NH = m->cfg.n_head, HS = m->cfg.head_dim, NKV = m->cfg.n_head_kv;
    const size_t QD = (size_t)NH * (size_t)HS, KVD = (size_t)NKV * (size_t)HS, W = QD + 2 * KVD;
    for (int64_t n = 0; n < N; n++) {
        float *f = qkv + (size_t)n * W, *qr = q + (size_t)n * QD, *kr = k + (size_t)n * KVD, *vr = v + (size_t)n * KVD;
        if (m->arch.qkv == LT_QKV_FUSED) {
            float *parts[3] = {qr, kr, vr};
            size_t off[3] = {0, QD, QD + KVD}, len[3] = {QD, KVD, KVD};
            for (int p = 0; p < 3; p++)
                if (pack) memcpy(f + off[p], parts[p], len[p] * sizeof(float));
                else memcpy(parts[p], f + off[p], len[p] * sizeof(float));
        } else { // per-head groups (NH == NKV for GPT-NeoX)
            for (int h = 0; h < NH; h++) {
                float *g = f + (size_t)h * 3 * (size_t)HS;
                float *parts[3] = {qr + (size_t)h * HS, kr + (size_t)h * HS, vr + (size_t)h * HS};
                for (int p = 0; p < 3; p++)
                    if (pack) memcpy(g + (size_t)p * HS, parts[p], (size_t)HS * sizeof(float));
                    else memcpy(parts[p], g + (size_t)p * HS, (size_t)HS * sizeof(float));
            }
        }
    }
}

void lt_qkv_split(const lt_model *m, const float *qkv, float *q, float *k, float *v, int64_t N) {
    qkv_copy(m, (float *)qkv, q, k, v, N, false);
}

void lt_embed(const lt_model *m, const int32_t *ids, const int32_t *pos, float *x, int64_t N) {
    const lt_mat *E = &m->tok_embd, *P = &m->pos_embd;
    int64_t C = E->cols;
    for (int64_t i = 0; i < N; i++) {
        lt_to_f32(E->dtype, lt_mat_row(E, ids[i]), x + i * C, C);
        if (!P->rows) continue;
        // learned positions (GPT-2): add wpe[pos], converted a piece at a time on the stack
        // (plain float dtypes only: block size 1)
        float t[256];
        const char *row = lt_mat_row(P, pos[i]);
        size_t es = lt_dtype_nbytes(P->dtype, 1);
        for (int64_t j0 = 0; j0 < C; j0 += 256) {
            int64_t n = C - j0 < 256 ? C - j0 : 256;
            lt_to_f32(P->dtype, row + (size_t)j0 * es, t, n);
            for (int64_t j = 0; j < n; j++) x[i * C + j0 + j] += t[j];
        }
    }
}

// ---- blocks -------------------------------------------------------------------------------------

// c->h = act(g, u): the MLP hidden, in the forward and again in the backward (the same
// elementwise function of the same saved inputs, so bit-identical), which saves an (N, F)
// buffer per layer for an elementwise pass.
static void mlp_act(lt_ctx *c, const block_acts *a) {
    int64_t n = c->N * c->m->cfg.n_ff;
    if (c->m->arch.mlp == LT_MLP_SWIGLU) lt_swiglu_fwd(c->h, a->g, a->u, n);
    else lt_gelu_fwd(c->h, a->u, n, c->m->arch.gelu_tanh);
}

static void block_fwd(lt_ctx *c, int l, const lt_batch *b, const float *x, float *xo, block_acts *a) {
    const lt_model *m = c->m;
    const lt_config *cf = &m->cfg;
    const lt_arch *ar = &m->arch;
    const lt_layer *L = &m->layers[l];
    int64_t N = c->N;
    size_t nC = sizeof(float) * (size_t)N * (size_t)cf->n_embd;
    const int32_t *pos = b->pos ? b->pos : c->pos0;
    lt_norm_fwd(m, L->attn_norm, L->attn_norm_b, c->xn, a->mean1, a->rstd1, x, N); // xn1
    if (ar->qkv == LT_QKV_SEPARATE) {
        lin_fwd(c, &L->lin[LT_MOD_Q], c->xn, a->q, N, false, a->hl[LT_MOD_Q], 0);
        lin_fwd(c, &L->lin[LT_MOD_K], c->xn, a->k, N, false, a->hl[LT_MOD_K], 0);
        lin_fwd(c, &L->lin[LT_MOD_V], c->xn, a->v, N, false, a->hl[LT_MOD_V], 0);
    } else {
        lin_fwd(c, &L->lin[LT_MOD_Q], c->xn, a->qkv, N, false, a->hl[LT_MOD_Q], 0);
        lt_qkv_split(m, a->qkv, a->q, a->k, a->v, N);
    }
    if (ar->pos == LT_POS_ROPE) {
        lt_rope_fwd(a->q, pos, m->rope_cos, m->rope_sin, N, cf->n_head, cf->head_dim, cf->rot_dim);
        lt_rope_fwd(a->k, pos, m->rope_cos, m->rope_sin, N, cf->n_head_kv, cf->head_dim, cf->rot_dim);
    }
    lt_attn_shape as = attn_shape(c, b);
    lt_attn_fwd(a->ao, a->lse, a->q, a->k, a->v, &as, c->attn_ws, c->nthr);
    // sequential: xmid = x + O(ao), the MLP reads norm(xmid); parallel: both branches read x
    float *mid = ar->parallel_residual ? xo : a->xmid;
    memcpy(mid, x, nC);
    lin_fwd(c, &L->lin[LT_MOD_O], a->ao, mid, N, true, a->hl[LT_MOD_O], 0);
    lt_norm_fwd(m, L->ffn_norm, L->ffn_norm_b, c->xn, a->mean2, a->rstd2, ar->parallel_residual ? x : mid, N); // xn2
    if (ar->mlp == LT_MLP_SWIGLU)
        lin_fwd(c, &L->lin[LT_MOD_GATE], c->xn, a->g, N, false, a->hl[LT_MOD_GATE], 0);
    lin_fwd(c, &L->lin[LT_MOD_UP], c->xn, a->u, N, false, a->hl[LT_MOD_UP], 0);
    mlp_act(c, a);
    if (!ar->parallel_residual) memcpy(xo, a->xmid, nC);
    lin_fwd(c, &L->lin[LT_MOD_DOWN], c->h, xo, N, true, a->hl[LT_MOD_DOWN], 0);
}

// c->dres holds d(out); on return it holds d(x) (unless need_dx is false: then stale).
static void block_bwd(lt_ctx *c, int l, const lt_batch *b, const float *x, block_acts *a,
                      bool need_dx) {
    const lt_model *m = c->m;
    const lt_config *cf = &m->cfg;
    const lt_arch *ar = &m->arch;
    const lt_layer *L = &m->layers[l];
    int64_t N = c->N;
    size_t nC = (size_t)N * (size_t)cf->n_embd, nF = (size_t)N * (size_t)cf->n_ff;
    size_t nQ = (size_t)N * (size_t)(cf->n_head * cf->head_dim);
    size_t nKV = (size_t)N * (size_t)(cf->n_head_kv * cf->head_dim);
    const int32_t *pos = b->pos ? b->pos : c->pos0;
    bool par = ar->parallel_residual;
    // MLP branch; with a parallel residual its input gradient only matters below this block
    float *dxm = !par || need_dx ? c->dxn : NULL;
    memset(c->dF1, 0, nF * sizeof(float));
    mlp_act(c, a);
    lin_bwd(c, &L->lin[LT_MOD_DOWN], c->h, c->dres, c->dF1, N, a->hl[LT_MOD_DOWN], 0);
    memset(c->dF3, 0, nF * sizeof(float));
    if (dxm) memset(dxm, 0, nC * sizeof(float));
    // xn2 again (the forward's values: same function, same input; mean2/rstd2 rewritten equal)
    lt_norm_fwd(m, L->ffn_norm, L->ffn_norm_b, c->xn, a->mean2, a->rstd2, par ? x : a->xmid, N);
    if (ar->mlp == LT_MLP_SWIGLU) {
        memset(c->dF2, 0, nF * sizeof(float));
        lt_swiglu_bwd(c->dF2, c->dF3, c->dF1, a->g, a->u, (int64_t)nF);
        lin_bwd(c, &L->lin[LT_MOD_GATE], c->xn, c->dF2, dxm, N, a->hl[LT_MOD_GATE], 0);
    } else {
        lt_gelu_bwd(c->dF3, c->dF1, a->u, (int64_t)nF, ar->gelu_tanh);
    }
    lin_bwd(c, &L->lin[LT_MOD_UP], c->xn, c->dF3, dxm, N, a->hl[LT_MOD_UP], 0);
    if (!par) lt_norm_bwd(m, L->ffn_norm, c->dres, c->dxn, a->xmid, a->mean2, a->rstd2, N);
    // attention branch (dres is d(xmid), or d(out) itself with a parallel residual)
    memset(c->dao, 0, nQ * sizeof(float));
    lin_bwd(c, &L->lin[LT_MOD_O], a->ao, c->dres, c->dao, N, a->hl[LT_MOD_O], 0);
    memset(c->dq, 0, nQ * sizeof(float));
    memset(c->dk, 0, nKV * sizeof(float));
    memset(c->dv, 0, nKV * sizeof(float));
    lt_attn_shape as = attn_shape(c, b);
    lt_attn_bwd(c->dq, c->dk, c->dv, c->dao, a->lse, a->q, a->k, a->v, &as, c->attn_ws, c->nthr);
    if (ar->pos == LT_POS_ROPE) {
        lt_rope_bwd(c->dq, pos, m->rope_cos, m->rope_sin, N, cf->n_head, cf->head_dim, cf->rot_dim);
        lt_rope_bwd(c->dk, pos, m->rope_cos, m->rope_sin, N, cf->n_head_kv, cf->head_dim, cf->rot_dim);
    }
    float *dxa = need_dx ? c->dxn2 : NULL;
    if (dxa) memset(dxa, 0, nC * sizeof(float));
    lt_norm_fwd(m, L->attn_norm, L->attn_norm_b, c->xn, a->mean1, a->rstd1, x, N); // xn1 again
    if (ar->qkv == LT_QKV_SEPARATE) {
        lin_bwd(c, &L->lin[LT_MOD_Q], c->xn, c->dq, dxa, N, a->hl[LT_MOD_Q], 0);
        lin_bwd(c, &L->lin[LT_MOD_K], c->xn, c->dk, dxa, N, a->hl[LT_MOD_K], 0);
        lin_bwd(c, &L->lin[LT_MOD_V], c->xn, c->dv, dxa, N, a->hl[LT_MOD_V], 0);
    } else {
        qkv_copy(m, c->dqkv, c->dq, c->dk, c->dv, N, true);
        lin_bwd(c, &L->lin[LT_MOD_Q], c->xn, c->dqkv, dxa, N, a->hl[LT_MOD_Q], 0);
    }
    if (!need_dx) return;
    if (par) lt_norm_bwd(m, L->ffn_norm, c->dres, c->dxn, x, a->mean2, a->rstd2, N);
    lt_norm_bwd(m, L->attn_norm, c->dres, c->dxn2, x, a->mean1, a->rstd1, N);
}

// ---------------------------------------------------------------------------------------------
// whole model

static lt_status check_batch(const lt_ctx *c, const lt_batch *b, lt_err *err) {
    const lt_config *cf = &c->m->cfg;
    for (int64_t i = 0; i < c->N; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= cf->n_vocab)
            return lt_err_set(err, LT_ERR_ARG, "token id %d at batch row %lld, position %lld is "
                              "outside the vocabulary (0..%d)", b->ids[i], (long long)(i / c->T),
                              (long long)(i % c->T), cf->n_vocab - 1);
        if (b->labels && b->labels[i] >= cf->n_vocab)
            return lt_err_set(err, LT_ERR_ARG, "label %d at batch row %lld is outside the vocabulary",
                              b->labels[i], (long long)(i / c->T));
        if (b->pos && (b->pos[i] < 0 || b->pos[i] >= cf->max_pos))
            return lt_err_set(err, LT_ERR_ARG, "position %d is outside 0..%d", b->pos[i],
                              cf->max_pos - 1);
    }
    return LT_OK;
}

static void embed(lt_ctx *c, const lt_batch *b) {
    lt_embed(c->m, b->ids, b->pos ? b->pos : c->pos0, c->xs, c->N);
}

// Runs all blocks and the final norm. Keeps per-block activations when training without
// checkpointing (slot l), otherwise reuses slot 0.
static void forward_blocks(lt_ctx *c, const lt_batch *b) {
    const lt_config *cf = &c->m->cfg;
    size_t nC = (size_t)c->N * (size_t)cf->n_embd;
    embed(c, b);
    for (int l = 0; l < cf->n_layer; l++) {
        block_acts *a = &c->acts[c->n_slots > 1 ? l : 0];
        block_fwd(c, l, b, c->xs + (size_t)l * nC, c->xs + (size_t)(l + 1) * nC, a);
    }
    lt_norm_fwd(c->m, c->m->final_norm, c->m->final_norm_b, c->xf, c->meanf, c->rstdf,
                c->xs + (size_t)cf->n_layer * nC, c->N);
}

int64_t lt_batch_n_targets(const lt_batch *b, int B, int T) {
    int64_t n = 0;
    for (int i = 0; i < B; i++)
        for (int t = 0; t + 1 < T; t++) n += b->labels[(int64_t)i * T + t + 1] >= 0;
    return n;
}

// Gathers the rows whose next label carries loss into hsel; returns their count.
static int64_t select_rows(lt_ctx *c, const lt_batch *b) {
    int64_t M = 0, C = c->m->cfg.n_embd;
    for (int i = 0; i < c->B; i++)
        for (int t = 0; t + 1 < c->T; t++) {
            int64_t r = (int64_t)i * c->T + t;
            int32_t y = b->labels[r + 1];
            if (y < 0) continue;
            c->sel[M] = (int32_t)r;
            c->tgt[M] = y;
            memcpy(c->hsel + M * C, c->xf + r * C, sizeof(float) * (size_t)C);
            M++;
        }
    return M;
}

// LM head + cross-entropy over the selected rows, chunk by chunk; with backward, the gradient
// w.r.t. the selected hidden rows goes to dhsel and the head's LoRA gradients accumulate.
static double head_loss(lt_ctx *c, int64_t M, float scale, bool backward) {
    const lt_model *m = c->m;
    int64_t C = m->cfg.n_embd;
    int V = m->cfg.n_vocab;
    double sum = 0;
    if (backward) memset(c->dhsel, 0, sizeof(float) * (size_t)(M * C));
    for (int64_t r0 = 0; r0 < M; r0 += c->hc) {
        int64_t n = M - r0 < c->hc ? M - r0 : c->hc;
        const float *h = c->hsel + r0 * C;
        lin_fwd(c, &m->lm_head, h, c->chunk, n, false, c->hl_head, r0);
        sum += lt_ce_fwd_bwd(backward ? c->chunk : NULL, c->chunk, c->tgt + r0, n, V, scale);
        if (backward) lin_bwd(c, &m->lm_head, h, c->chunk, c->dhsel + r0 * C, n, c->hl_head, r0);
    }
    return sum;
}

static int lowest_lora_layer(const lt_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++)
            if (m->layers[l].lin[k].lora) return l;
    return m->cfg.n_layer;
}

// Backward from c->dhsel, the gradients of the M selected final-norm rows c->sel, down to the
// lowest block holding LoRA modules.
static void backward_from_rows(lt_model *m, lt_ctx *c, const lt_batch *b, int64_t M) {
    const lt_config *cf = &m->cfg;
    int min_layer = lowest_lora_layer(m);
    if (min_layer >= cf->n_layer) return;
    size_t nC = (size_t)c->N * (size_t)cf->n_embd;
    memset(c->dxn, 0, nC * sizeof(float));
    for (int64_t i = 0; i < M; i++) // rows are distinct: scatter by copy
        memcpy(c->dxn + (size_t)c->sel[i] * (size_t)cf->n_embd, c->dhsel + i * cf->n_embd,
               sizeof(float) * (size_t)cf->n_embd);
    memset(c->dres, 0, nC * sizeof(float));
    lt_norm_bwd(m, m->final_norm, c->dres, c->dxn, c->xs + (size_t)cf->n_layer * nC, c->meanf,
                c->rstdf, c->N);
    for (int l = cf->n_layer - 1; l >= min_layer; l--) {
        block_acts *a = &c->acts[c->n_slots > 1 ? l : 0];
        const float *x = c->xs + (size_t)l * nC;
        if (c->ckpt) block_fwd(c, l, b, x, c->xs + (size_t)(l + 1) * nC, a);
        block_bwd(c, l, b, x, a, l > min_layer);
    }
}

lt_status lt_model_train_step(lt_model *m, lt_ctx *c, const lt_batch *b, float loss_scale,
                              uint64_t dropout_seed, int64_t step, double *loss_sum, lt_err *err) {
    if (!c->train) return lt_err_set(err, LT_ERR_ARG, "context was not created for training");
    lt_status st = check_batch(c, b, err);
    if (st) return st;
    c->drop_seed = dropout_seed;
    c->step = step;
    forward_blocks(c, b);
    int64_t M = select_rows(c, b);
    double sum = head_loss(c, M, loss_scale, true);
    backward_from_rows(m, c, b, M);
    *loss_sum = sum;
    return LT_OK;
}

int lt_cls_pool_position(const int32_t *ids, const int32_t *kmask, int T, int32_t pad_id) {
    int last = 0;
    for (int t = 0; t < T; t++)
        if (pad_id >= 0 ? ids[t] != pad_id : (kmask ? kmask[t] != 0 : 1)) last = t;
    return last;
}

lt_status lt_model_cls_step(lt_model *m, lt_ctx *c, const lt_batch *b, const lt_cls_head *h,
                            float loss_scale, bool backward, uint64_t dropout_seed, int64_t step,
                            double *loss_sum, float *scores, lt_err *err) {
    if (backward && !c->train) return lt_err_set(err, LT_ERR_ARG, "context was not created for training");
    if (h->n_labels <= 0 || !h->w) return lt_err_set(err, LT_ERR_ARG, "no classification head");
    lt_batch bb = *b;
    bb.labels = NULL;
    lt_status st = check_batch(c, &bb, err);
    if (st) return st;
    if (h->labels)
        for (int i = 0; i < c->B; i++)
            if (h->labels[i] >= h->n_labels)
                return lt_err_set(err, LT_ERR_ARG, "class label %d of row %d is not below %d",
                                  h->labels[i], i, h->n_labels);
    const int C = m->cfg.n_embd, NL = h->n_labels, B = c->B;
    if ((int64_t)B * NL > (int64_t)c->hc * m->cfg.n_vocab)
        return lt_err_set(err, LT_ERR_ARG, "%d rows x %d labels exceed the score buffer", B, NL);
    bool train = c->train;
    c->train = backward; // dropout only when training
    c->drop_seed = dropout_seed;
    c->step = step;
    forward_blocks(c, b);
    // pooled rows: the last non-pad token of each row (transformers' rule: rightmost id != pad)
    for (int i = 0; i < B; i++) {
        int t = lt_cls_pool_position(b->ids + (size_t)i * (size_t)c->T,
                                     b->kmask ? b->kmask + (size_t)i * (size_t)c->T : NULL, c->T, h->pad_id);
        c->sel[i] = (int32_t)((int64_t)i * c->T + t);
        memcpy(c->hsel + (size_t)i * (size_t)C, c->xf + (size_t)c->sel[i] * (size_t)C, sizeof(float) * (size_t)C);
    }
    // scores (B, NL) = hsel W^T, in the logits chunk buffer
    float *lg = c->chunk;
    lt_sgemm(false, true, B, NL, C, 1.0f, c->hsel, C, h->w, C, 0.0f, lg, NL);
    if (scores) memcpy(scores, lg, sizeof(float) * (size_t)(B * NL));
    double sum = 0;
    if (h->labels) {
        for (int i = 0; i < B; i++) {
            if (h->labels[i] < 0) { // an ignored (padding) row
                memset(lg + (size_t)i * (size_t)NL, 0, sizeof(float) * (size_t)NL);
                continue;
            }
            float wt = h->class_w ? h->class_w[h->labels[i]] : 1.0f;
            sum += wt * lt_ce_fwd_bwd(lg + (size_t)i * (size_t)NL, lg + (size_t)i * (size_t)NL,
                                      &h->labels[i], 1, NL, loss_scale * wt);
        }
    }
    if (backward && h->labels) {
        // gW (NL, C) += dlogits^T hsel ; dhsel (B, C) = dlogits W
        if (h->gw) lt_sgemm(true, false, NL, C, B, 1.0f, lg, NL, c->hsel, C, 1.0f, h->gw, C);
        lt_sgemm(false, false, B, C, NL, 1.0f, lg, NL, h->w, C, 0.0f, c->dhsel, C);
        backward_from_rows(m, c, b, B);
    }
    c->train = train;
    *loss_sum = sum;
    return LT_OK;
}

lt_status lt_model_eval_loss(lt_model *m, lt_ctx *c, const lt_batch *b, double *loss_sum,
                             lt_err *err) {
    lt_status st = check_batch(c, b, err);
    if (st) return st;
    bool train = c->train;
    c->train = false; // no dropout in evaluation
    forward_blocks(c, b);
    int64_t M = select_rows(c, b);
    *loss_sum = head_loss(c, M, 1.0f, false);
    c->train = train;
    return LT_OK;
}

lt_status lt_model_logits(lt_model *m, lt_ctx *c, const lt_batch *b, float *out, lt_err *err) {
    lt_batch bb = *b;
    bb.labels = NULL;
    lt_status st = check_batch(c, &bb, err);
    if (st) return st;
    bool train = c->train;
    c->train = false;
    forward_blocks(c, b);
    int64_t C = m->cfg.n_embd, V = m->cfg.n_vocab;
    for (int64_t r0 = 0; r0 < c->N; r0 += c->hc) {
        int64_t n = c->N - r0 < c->hc ? c->N - r0 : c->hc;
        lin_fwd(c, &m->lm_head, c->xf + r0 * C, out + r0 * V, n, false, c->hl_head, r0);
    }
    c->train = train;
    return LT_OK;
}
