/*
 * plan.c - the memory and speed planner (plan.h): sums the parts of a training run's peak RSS
 * from the sizing code that allocates them, and estimates tokens/s from the step's GEMM FLOPs.
 * What not: it allocates none of the planned buffers and touches no weight page.
 * Reference: /proc/self/status (VmRSS), /proc/meminfo (MemAvailable); bitsandbytes'
 * blockwise 4-bit layout (quant.c); bench/bench_train.c for the FLOP convention.
 */
#include "train/plan.h"

#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ---------------------------------------------------------------------------------------------
// measurements

// "Key:   N kB" from a /proc file, in bytes; 0 if absent.
static size_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            unsigned long long kb = 0;
            if (sscanf(line + klen + 1, "%llu", &kb) == 1) v = (size_t)kb * 1024;
            break;
        }
    fclose(f);
    return v;
}

size_t lt_plan_rss_bytes(void) { return proc_kb("/proc/self/status", "VmRSS"); }

size_t lt_plan_mem_available(void) { return proc_kb("/proc/meminfo", "MemAvailable"); }

// Scratch for the measurement, straight from mmap: freeing it gives every page back. Through
// malloc, freeing a multi-MB block raises glibc's dynamic mmap threshold, later blocks of that
// size come from the heap, and the RSS the caller measures next would keep them.
static float *map_floats(size_t n) {
    void *p = mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
static void unmap_floats(float *p, size_t n) {
    if (p) munmap(p, n * sizeof(float));
}

double lt_plan_sgemm_gflops(void) {
    // n = 2048, the size bench_train calibrated the efficiencies against (n = 1536 measured a
    // third lower on the 2-core machine, and the plan under-estimated tokens/s by 25-38%)
    enum { N = 2048, SMALL = 64 };
    // every thread's BLAS buffers, as attention's per-thread sgemm calls will allocate them
    float sa[SMALL * SMALL], sb[SMALL * SMALL];
    for (int i = 0; i < SMALL * SMALL; i++) sa[i] = 1.0f / (float)(1 + i % 7);
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        float sc[SMALL * SMALL];
        lt_sgemm(false, false, SMALL, SMALL, SMALL, 1.0f, sa, SMALL, sa, SMALL, 0.0f, sc, SMALL);
#ifdef _OPENMP
#pragma omp master
#endif
        memcpy(sb, sc, sizeof sb);
    }
    (void)sb;
    // One wide product (M = 256, K = 1024, N = 16384): OpenBLAS packs B panels of up to K-block x
    // N-block floats (~20 MB on AVX-512) into buffers it keeps, which training's large GEMMs
    // fill; a square product of this size would leave most of them untouched and the baseline
    // short.
    const size_t na = 1024 * 16384, nb = 256 * 1024, nc = 256 * 16384, nn = (size_t)N * N;
    float *a = map_floats(na), *b = map_floats(nb), *c = map_floats(nc);
    if (a && b && c) // mmap's pages are zero
        lt_sgemm(false, false, 256, 16384, 1024, 1.0f, b, 1024, a, 16384, 0.0f, c, 16384);
    unmap_floats(a, na), unmap_floats(b, nb), unmap_floats(c, nc);
    a = map_floats(nn), b = map_floats(nn), c = map_floats(nn);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) a[i] = b[i] = (float)(i % 13) * 0.01f;
        for (int rep = 0; rep < 3; rep++) { // the first is a warm-up
            double t0 = lt_time_sec();
            lt_sgemm(false, false, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
            double dt = lt_time_sec() - t0;
            double g = 2.0 * N * N * (double)N / (dt > 0 ? dt : 1e-9) / 1e9;
            if (rep > 0 && g > best) best = g;
        }
    }
    unmap_floats(a, nn), unmap_floats(b, nn), unmap_floats(c, nn);
    return best;
}

// ---------------------------------------------------------------------------------------------
// speed

// The step's FLOPs (bench_train's convention); *fwd_lo: the forward FLOPs of the blocks from the
// lowest LoRA layer up, which gradient checkpointing runs a second time.
static double step_flops(const lt_model *m, const lt_adapter *ad, int B, int T, double *fwd_lo) {
    const lt_config *cf = &m->cfg;
    double N = (double)B * T, M = (double)B * (T - 1);
    double QD = (double)cf->n_head * cf->head_dim;
    int lo = ad->min_layer;
    double f = 0;
    for (int l = 0; l < cf->n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            double io = (double)li->in * li->out;
            // the lowest LoRA layer's q/k/v need no input gradient; nothing below it does
            bool need_dx = l > lo || !(k == LT_MOD_Q || k == LT_MOD_K || k == LT_MOD_V);
            if (l < lo) need_dx = false;
            double fw = 2 * N * io;       // forward
            if (need_dx) f += 2 * N * io; // activation gradient
            const lt_lora_mod *lm = li->lora;
            if (lm) {
                double r = lm->r;
                fw += 2 * N * r * (li->in + li->out);      // forward: x A^T, h B^T
                f += 2 * N * r * (2.0 * li->out + li->in); // gB, d(hidden), gA
                if (need_dx) f += 2 * N * r * li->in;      // dx through A
            }
            f += fw;
            if (l >= lo) *fwd_lo += fw;
        }
    double attn = 2 * (double)B * T * T * QD; // causal QK^T + PV
    f += cf->n_layer * attn;                  // forward
    if (lo < cf->n_layer) *fwd_lo += (cf->n_layer - lo) * attn;
    f += (cf->n_layer - lo) * 2 * attn;       // backward: dV, dP, dQ, dK (recomputed P not counted)
    double head = 2 * M * cf->n_embd * cf->n_vocab;
    f += 2 * head; // logits + d(hidden) of the LM head on the rows with loss
    return f;
}

double lt_plan_step_flops(const lt_model *m, const lt_adapter *ad, int B, int T) {
    double fwd_lo = 0;
    return step_flops(m, ad, B, T, &fwd_lo);
}

// Measured on this project's 2-core AVX-512 machine (bench/results, undisturbed runs, r = 16 on
// all seven projections): gflops / sgemm peak = 0.63 for config A (hidden 288), 0.70 for B
// (768), 0.80 for C (2048). Small models lose more to the non-GEMM work (norms, softmax,
// cross-entropy, copies) per FLOP, so the efficiency is modelled as linear in log2(hidden):
// 0.63 at 288 rising 0.06 per doubling, held within [0.5, 0.85].
double lt_plan_efficiency(const lt_model *m) {
    double e = 0.63 + 0.06 * (log2((double)m->cfg.n_embd) - log2(288.0));
    return e < 0.5 ? 0.5 : e > 0.85 ? 0.85 : e;
}

// ---------------------------------------------------------------------------------------------
// memory

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

// Pages covering [p, p + n), in bytes.
static size_t span_pages(const void *p, size_t n) {
    if (!p || n == 0) return 0;
    size_t ps = page_size(), a = (size_t)(uintptr_t)p;
    return ((a + n + ps - 1) / ps - a / ps) * ps;
}

static size_t mat_bytes(const lt_mat *w) { return (size_t)w->rows * w->row_bytes; }

// Linux maps up to fault_around_bytes (64 KB by default) of a file's cached pages around each
// page fault, so reading a few scattered rows of a cached file makes whole 64 KB blocks resident
// (measured: ~700 random 2 KB rows of a freshly written 16 MB embedding -> 12 MB resident). The
// planner counts those blocks: an upper bound when the file is cached, as it is after a first run.
#define FAULT_AROUND ((size_t)64 << 10)

// Bytes made resident by reading the rows of w whose rows_used flag is set (all rows if NULL).
static size_t rows_pages(const lt_mat *w, const uint8_t *used) {
    if (!used) return span_pages(w->data, mat_bytes(w));
    size_t ps = page_size() > FAULT_AROUND ? page_size() : FAULT_AROUND, total = 0, last = SIZE_MAX;
    for (int64_t r = 0; r < w->rows; r++) {
        if (!used[r]) continue;
        size_t a = (size_t)(uintptr_t)lt_mat_row(w, r);
        size_t p0 = a / ps, p1 = (a + w->row_bytes - 1) / ps;
        if (p0 == last) p0++; // shared with the previous used row
        if (p1 >= p0) total += (p1 - p0 + 1) * ps;
        last = p1;
    }
    size_t all = span_pages(w->data, mat_bytes(w));
    return total < all ? total : all;
}

// Bytes bitsandbytes' blockwise 4-bit layout takes for n values (quant.c).
static size_t q4_bytes(int64_t n, bool dq) {
    int64_t nb = n / LT_Q4_BLOCK, ng = (nb + LT_DYN8_DQ_BLOCK - 1) / LT_DYN8_DQ_BLOCK;
    size_t scales = dq ? (size_t)ng * sizeof(float) + (size_t)nb : (size_t)nb * sizeof(float);
    return scales + (size_t)n / 2;
}

static bool float_dtype(lt_dtype t) {
    return t == LT_DTYPE_F32 || t == LT_DTYPE_F16 || t == LT_DTYPE_BF16;
}

static size_t vec_pages(const float *v, int C) {
    return v ? span_pages(v, sizeof(float) * (size_t)C) : 0;
}

// The base weights a training step reads, resident.
static size_t weights_bytes(const lt_model *m, const lt_plan_opts *o, const uint8_t *used) {
    const lt_config *cf = &m->cfg;
    size_t w = 0;
    for (int l = 0; l < cf->n_layer; l++) {
        const lt_layer *L = &m->layers[l];
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &L->lin[k];
            if (li->out <= 0 || li->in <= 0) continue;
            if (o->load_4bit && float_dtype(li->w.dtype))
                w += q4_bytes(li->w.rows * li->w.cols, o->double_quant);
            else w += span_pages(li->w.data, mat_bytes(&li->w));
            w += vec_pages(li->b, li->out);
        }
        w += vec_pages(L->attn_norm, cf->n_embd) + vec_pages(L->attn_norm_b, cf->n_embd);
        w += vec_pages(L->ffn_norm, cf->n_embd) + vec_pages(L->ffn_norm_b, cf->n_embd);
    }
    w += vec_pages(m->final_norm, cf->n_embd) + vec_pages(m->final_norm_b, cf->n_embd);
    // the LM head reads every row; the embedding only the rows of the tokens seen
    if (m->arch.tied_head || m->lm_head.w.data == m->tok_embd.data) w += rows_pages(&m->tok_embd, NULL);
    else w += rows_pages(&m->tok_embd, used) + span_pages(m->lm_head.w.data, mat_bytes(&m->lm_head.w));
    if (m->pos_embd.rows) { // learned positions 0..T-1
        size_t n = (size_t)(o->T < m->pos_embd.rows ? o->T : m->pos_embd.rows) * m->pos_embd.row_bytes;
        w += span_pages(m->pos_embd.data, n);
    }
    return w;
}

static lt_status optim_bytes(const lt_adapter *a, lt_optim_kind k, size_t *out, lt_err *err) {
    if (k == LT_OPTIM_ADAMW) {
        *out = 2 * sizeof(float) * (size_t)a->n_params;
        return LT_OK;
    }
    // adamw_8bit: its layout (which tensors go 8-bit, block scales) is built by optim8.c, so
    // the planner builds one and asks for its size (LoRA states are small)
    lt_train_state s = {0};
    lt_status st = lt_train_state_init(&s, a->n_params, err);
    if (!st) st = lt_train_state_use_8bit(&s, a, err);
    if (!st) *out = lt_train_state_bytes(&s, a->n_params);
    lt_train_state_deinit(&s);
    return st;
}

lt_status lt_plan_make(lt_model *m, const lt_adapter *a, const lt_plan_opts *o,
                       const lt_plan_measured *ms, lt_plan *out, lt_err *err) {
    if (o->B <= 0 || o->T <= 1 || o->B > 1 << 16 || o->T > 1 << 20)
        return lt_err_set(err, LT_ERR_ARG, "batch %d x sequence %d is not a valid shape", o->B, o->T);
    if (o->T > m->cfg.max_pos)
        return lt_err_set(err, LT_ERR_ARG, "sequence length %d exceeds the model's %d positions",
                          o->T, m->cfg.max_pos);
    lt_plan p = {.base = ms->base, .model_load = ms->model_load, .tok_data = ms->tok_data};
    p.weights = weights_bytes(m, o, ms->rows_used);
    p.lora = 2 * sizeof(float) * (size_t)a->n_params; // parameters + gradients
    lt_status st = optim_bytes(a, o->optim, &p.optim, err);
    if (st) return st;
    lt_ctx_opts co = {.B = o->B, .T = o->T, .train = true, .checkpoint = o->checkpoint};
    p.acts = lt_ctx_plan_bytes(m, &co, o->load_4bit);
    if (o->eval) {
        lt_ctx_opts ce = {.B = o->B, .T = o->T};
        p.acts += lt_ctx_plan_bytes(m, &ce, o->load_4bit);
    }
    size_t bt = (size_t)o->B * (size_t)o->T * (size_t)(o->accum > 0 ? o->accum : 1);
    p.loop = 3 * sizeof(int32_t) * bt + sizeof(int64_t) * ((size_t)o->n_examples + bt);
    p.total = p.base + p.model_load + p.tok_data + p.weights + p.lora + p.optim + p.acts + p.loop;
    double fwd_lo = 0, tokens = (double)o->B * o->T;
    p.flops_per_token = step_flops(m, a, o->B, o->T, &fwd_lo) / tokens;
    // the time counts checkpointing's second forward, which the FLOP convention does not
    double work = p.flops_per_token + (o->checkpoint ? fwd_lo / tokens : 0);
    p.efficiency = lt_plan_efficiency(m);
    p.tokens_per_s = ms->sgemm_gflops > 0 ? ms->sgemm_gflops * 1e9 * p.efficiency / work : 0;
    *out = p;
    return LT_OK;
}
