/*
 * bench_ops.c - timings of the fast kernels in src/ops/ on fixed shapes, one JSON line each.
 *
 * What: linear forward and backward-x (F32 and BF16, plus the GGUF Q8_0/Q4_1 forward) on
 * 2048 x 768 -> 768 and 2048 x 2048 -> 5632, causal attention forward and backward at
 * B=4 T=512 NH=12 HS=64, and the memory-bound kernels (RMSNorm, SwiGLU, cross entropy). Each is
 * warmed up, then timed `runs` times, interleaved with the other cases of its shape; the median
 * is reported with its GFLOP/s and, as the ceiling to compare against, the GFLOP/s of a raw
 * cblas_sgemm of the same size timed in the same run (interleaved too).
 * The first line records the machine (nproc, CPU model, threads) and the git commit.
 * What not: no correctness checks (tests/unit/test_ops.c does those).
 * Usage: bench_ops [runs [group]]   runs: default 7, at least 5; group: linear, attn or mem
 * (default: all). On a shared machine, check that nothing else is running: the numbers are only
 * comparable within one run (each line carries its own sgemm ceiling).
 */
#include "core/core.h"
#include "ops/ops.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int runs = 7;

static void fill(float *x, size_t n, float sd, lt_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = sd * (2 * lt_rng_uniform(r) - 1);
}

// A group of cases timed interleaved: after one warm-up call each, every repetition calls each
// case once in turn, so a change of machine load (other jobs on a shared box) hits all cases of
// the group alike; the median over repetitions is reported.
typedef void (*bench_fn)(void *ctx);
typedef struct {
    bench_fn fn;
    void *ctx;
    double ms; // out: median
} bench_case;

static void time_group(bench_case *c, int nc) {
    enum { MAXR = 64 };
    double t[16][MAXR];
    int n = runs < MAXR ? runs : MAXR;
    LT_ASSERT(nc <= 16);
    for (int i = 0; i < nc; i++) c[i].fn(c[i].ctx);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < nc; i++) {
            double t0 = lt_time_sec();
            c[i].fn(c[i].ctx);
            t[i][r] = (lt_time_sec() - t0) * 1e3;
        }
    for (int i = 0; i < nc; i++) {
        qsort(t[i], (size_t)n, sizeof(double), cmp_double);
        c[i].ms = n % 2 ? t[i][n / 2] : 0.5 * (t[i][n / 2 - 1] + t[i][n / 2]);
    }
}

static void emit(const char *op, const char *shape, const char *dtype, double ms, double flops,
                 double peak_gflops) {
    printf("{\"op\":\"%s\",\"shape\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"ms\":%.3f,"
           "\"gflops\":%.1f,\"peak_sgemm_gflops\":%.1f}\n",
           op, shape, dtype, n_threads(), ms, flops / (ms * 1e6), peak_gflops);
    fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// raw sgemm of a given size (the ceiling each op is compared with)

typedef struct {
    bool ta, tb;
    int64_t M, N, K, reps;
    const float *A, *B;
    float *C;
} gemm_ctx;

static void run_gemm(void *p) {
    gemm_ctx *g = p;
    for (int64_t r = 0; r < g->reps; r++)
        lt_sgemm(g->ta, g->tb, g->M, g->N, g->K, 1.0f, g->A, g->ta ? g->M : g->K, g->B,
                 g->tb ? g->K : g->N, 0.0f, g->C, g->N);
}

static gemm_ctx gemm_new(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t reps) {
    float *A = falloc((size_t)(M * K)), *B = falloc((size_t)(K * N)), *C = falloc((size_t)(M * N));
    lt_rng r;
    lt_rng_seed(&r, 7);
    fill(A, (size_t)(M * K), 1, &r);
    fill(B, (size_t)(K * N), 1, &r);
    return (gemm_ctx){ta, tb, M, N, K, reps, A, B, C};
}
static double gemm_gflops(const gemm_ctx *g, double ms) {
    return 2.0 * (double)(g->M * g->N * g->K * g->reps) / (ms * 1e6);
}
static void gemm_free(gemm_ctx *g) {
    lt_free_aligned((void *)g->A), lt_free_aligned((void *)g->B), lt_free_aligned(g->C);
}

// ---------------------------------------------------------------------------------------------
// linear

typedef struct {
    lt_mat W;
    const float *x, *dy;
    float *y, *dx, *ws;
    int64_t N;
} lin_ctx;

static void run_lin_fwd(void *p) {
    lin_ctx *c = p;
    lt_linear_fwd(c->y, c->x, &c->W, NULL, c->N, false, c->ws);
}
static void run_lin_bwd(void *p) {
    lin_ctx *c = p;
    lt_linear_bwd_x(c->dx, c->dy, &c->W, c->N, c->ws);
}

static void bench_linear(int64_t N, int64_t in, int64_t out) {
    lt_rng r;
    lt_rng_seed(&r, 1);
    float *w = falloc((size_t)(out * in)), *x = falloc((size_t)(N * in));
    float *y = falloc((size_t)(N * out)), *dy = falloc((size_t)(N * out));
    float *dx = falloc((size_t)(N * in));
    fill(w, (size_t)(out * in), 0.05f, &r), fill(x, (size_t)(N * in), 1, &r);
    fill(dy, (size_t)(N * out), 1, &r), memset(dx, 0, (size_t)(N * in) * sizeof *dx);
    double flops = 2.0 * (double)N * (double)in * (double)out;
    char shape[96];
    snprintf(shape, sizeof shape, "N=%lld in=%lld out=%lld", (long long)N, (long long)in,
             (long long)out);
    enum { ND = 4 };
    lt_dtype dts[ND] = {LT_DTYPE_F32, LT_DTYPE_BF16, LT_DTYPE_Q8_0, LT_DTYPE_Q4_1};
    lin_ctx c[ND];
    void *wb[ND] = {0};
    for (int d = 0; d < ND; d++) {
        lt_dtype t = dts[d];
        c[d] = (lin_ctx){.x = x, .dy = dy, .y = y, .dx = dx, .N = N};
        if (t == LT_DTYPE_F32) {
            lt_mat_init(&c[d].W, t, out, in, w);
        } else if (t == LT_DTYPE_BF16) {
            wb[d] = lt_alloc(lt_dtype_nbytes(t, out * in));
            lt_from_f32(t, w, wb[d], out * in);
            lt_mat_init(&c[d].W, t, out, in, wb[d]);
        } else { // quantised: any bit pattern with a sane f16 scale is a valid weight to time
            size_t nb = lt_dtype_nbytes(t, out * in), bs = t == LT_DTYPE_Q8_0 ? 34 : 20;
            uint8_t *q = lt_alloc(nb);
            for (size_t i = 0; i < nb; i++) q[i] = (uint8_t)lt_rng_u64(&r);
            uint16_t sc = lt_f32_to_f16(0.01f);
            for (size_t b = 0; b < nb; b += bs) {
                memcpy(q + b, &sc, 2);
                if (t == LT_DTYPE_Q4_1) memcpy(q + b + 2, &sc, 2);
            }
            wb[d] = q;
            lt_mat_init(&c[d].W, t, out, in, wb[d]);
        }
        size_t wsn = lt_linear_ws_floats(&c[d].W);
        c[d].ws = wsn ? falloc(wsn) : NULL;
    }
    // the ceilings: raw sgemm of the forward (y = x W^T) and backward (dx = dy W) sizes
    gemm_ctx gf = gemm_new(false, true, N, out, in, 1), gb = gemm_new(false, false, N, in, out, 1);
    bench_case cs[2 + ND + 2] = {{run_gemm, &gf, 0}, {run_gemm, &gb, 0}};
    int nc = 2;
    for (int d = 0; d < ND; d++) {
        cs[nc++] = (bench_case){run_lin_fwd, &c[d], 0};
        if (d < 2) cs[nc++] = (bench_case){run_lin_bwd, &c[d], 0}; // F32, BF16
    }
    time_group(cs, nc);
    double pf = gemm_gflops(&gf, cs[0].ms), pb = gemm_gflops(&gb, cs[1].ms);
    for (int i = 2, d = 0; d < ND; d++) {
        emit("linear_fwd", shape, lt_dtype_name(dts[d]), cs[i++].ms, flops, pf);
        if (d < 2) emit("linear_bwd_x", shape, lt_dtype_name(dts[d]), cs[i++].ms, flops, pb);
    }
    for (int d = 0; d < ND; d++) lt_free_aligned(c[d].ws), lt_free(wb[d]);
    gemm_free(&gf), gemm_free(&gb);
    lt_free_aligned(w), lt_free_aligned(x), lt_free_aligned(y), lt_free_aligned(dy);
    lt_free_aligned(dx);
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct {
    lt_attn_shape s;
    const float *q, *k, *v, *dout;
    float *out, *att, *dq, *dk, *dv, *ws; // att: the (B, NH, T) log-sum-exp
    int nthr;
} attn_ctx;

static void run_attn_fwd(void *p) {
    attn_ctx *c = p;
    lt_attn_fwd(c->out, c->att, c->q, c->k, c->v, &c->s, c->ws, c->nthr);
}
static void run_attn_bwd(void *p) {
    attn_ctx *c = p;
    lt_attn_bwd(c->dq, c->dk, c->dv, c->dout, c->att, c->q, c->k, c->v, &c->s, c->ws, c->nthr);
}

static void bench_attn(int B, int T, int NH, int NKV, int HS) {
    lt_rng r;
    lt_rng_seed(&r, 2);
    lt_attn_shape s = {.B = B, .T = T, .NH = NH, .NKV = NKV, .HS = HS};
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS;
    size_t na = (size_t)B * NH * T;
    attn_ctx c = {.s = s};
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *dout = falloc(nq);
    fill(q, nq, 1, &r), fill(k, nk, 1, &r), fill(v, nk, 1, &r), fill(dout, nq, 1, &r);
    c.q = q, c.k = k, c.v = v, c.dout = dout;
    c.out = falloc(nq), c.att = falloc(na), c.dq = falloc(nq), c.dk = falloc(nk);
    c.dv = falloc(nk), c.nthr = n_threads(), c.ws = falloc(lt_attn_ws_floats(&s, c.nthr));
    memset(c.dq, 0, nq * 4), memset(c.dk, 0, nk * 4), memset(c.dv, 0, nk * 4);
    // useful flops of the causal half: QK^T and PV forward (2 matmuls), 4 matmuls backward
    double f_fwd = 2.0 * 2.0 * B * NH * (double)T * T * HS / 2, f_bwd = 2 * f_fwd;
    // ceiling: one head's dense QK^T-sized (T, T, HS) sgemm, B*NH times, BLAS-threaded
    gemm_ctx g = gemm_new(false, true, T, T, HS, (int64_t)B * NH);
    bench_case cs[3] = {{run_gemm, &g, 0}, {run_attn_fwd, &c, 0}, {run_attn_bwd, &c, 0}};
    time_group(cs, 3);
    double peak = gemm_gflops(&g, cs[0].ms);
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d T=%d NH=%d NKV=%d HS=%d causal", B, T, NH, NKV, HS);
    emit("attn_fwd", shape, "F32", cs[1].ms, f_fwd, peak);
    emit("attn_bwd", shape, "F32", cs[2].ms, f_bwd, peak);
    gemm_free(&g);
    lt_free_aligned(q), lt_free_aligned(k), lt_free_aligned(v), lt_free_aligned(dout);
    lt_free_aligned(c.out), lt_free_aligned(c.att), lt_free_aligned(c.dq);
    lt_free_aligned(c.dk), lt_free_aligned(c.dv), lt_free_aligned(c.ws);
}

// ---------------------------------------------------------------------------------------------
// memory-bound kernels (flops are nominal; compare ms)

typedef struct {
    float *a, *b, *c, *d, *e;
    int32_t *t;
    int64_t N;
    int C;
} mb_ctx;

static void run_rms_fwd(void *p) {
    mb_ctx *m = p;
    lt_rmsnorm_fwd(m->b, m->c, m->a, m->d, m->N, m->C, 1e-5f);
}
static void run_rms_bwd(void *p) {
    mb_ctx *m = p;
    lt_rmsnorm_bwd(m->e, NULL, m->a, m->a, m->d, m->c, m->N, m->C);
}
static void run_swiglu_fwd(void *p) {
    mb_ctx *m = p;
    lt_swiglu_fwd(m->c, m->a, m->b, m->N * m->C);
}
static void run_swiglu_bwd(void *p) {
    mb_ctx *m = p;
    lt_swiglu_bwd(m->d, m->e, m->c, m->a, m->b, m->N * m->C);
}
static void run_ce(void *p) {
    mb_ctx *m = p;
    lt_ce_fwd_bwd(m->b, m->a, m->t, m->N, m->C, 1.0f);
}

static void bench_membound(void) {
    lt_rng r;
    lt_rng_seed(&r, 3);
    char shape[64];
    { // RMSNorm (N=2048, C=2048)
        mb_ctx m = {.N = 2048, .C = 2048};
        size_t n = (size_t)m.N * m.C;
        m.a = falloc(n), m.b = falloc(n), m.c = falloc((size_t)m.N), m.d = falloc((size_t)m.C);
        m.e = falloc(n);
        fill(m.a, n, 1, &r), fill(m.d, (size_t)m.C, 1, &r), memset(m.e, 0, n * 4);
        snprintf(shape, sizeof shape, "N=%lld C=%d", (long long)m.N, m.C);
        bench_case cs[2] = {{run_rms_fwd, &m, 0}, {run_rms_bwd, &m, 0}};
        time_group(cs, 2);
        emit("rmsnorm_fwd", shape, "F32", cs[0].ms, 4.0 * (double)n, 0);
        emit("rmsnorm_bwd", shape, "F32", cs[1].ms, 8.0 * (double)n, 0);
        lt_free_aligned(m.a), lt_free_aligned(m.b), lt_free_aligned(m.c), lt_free_aligned(m.d);
        lt_free_aligned(m.e);
    }
    { // SwiGLU (2048 x 5632)
        mb_ctx m = {.N = 2048, .C = 5632};
        size_t n = (size_t)m.N * m.C;
        m.a = falloc(n), m.b = falloc(n), m.c = falloc(n), m.d = falloc(n), m.e = falloc(n);
        fill(m.a, n, 3, &r), fill(m.b, n, 1, &r), fill(m.c, n, 1, &r);
        memset(m.d, 0, n * 4), memset(m.e, 0, n * 4);
        snprintf(shape, sizeof shape, "n=%lld*%d", (long long)m.N, m.C);
        bench_case cs[2] = {{run_swiglu_fwd, &m, 0}, {run_swiglu_bwd, &m, 0}};
        time_group(cs, 2);
        emit("swiglu_fwd", shape, "F32", cs[0].ms, 5.0 * (double)n, 0);
        emit("swiglu_bwd", shape, "F32", cs[1].ms, 10.0 * (double)n, 0);
        lt_free_aligned(m.a), lt_free_aligned(m.b), lt_free_aligned(m.c), lt_free_aligned(m.d);
        lt_free_aligned(m.e);
    }
    { // cross entropy (N=2048 rows, V=49152: SmolLM2's vocabulary), dlogits in place
        mb_ctx m = {.N = 2048, .C = 49152};
        size_t n = (size_t)m.N * m.C;
        m.a = falloc(n), m.b = falloc(n);
        m.t = lt_alloc((size_t)m.N * sizeof *m.t);
        fill(m.a, n, 3, &r);
        for (int64_t i = 0; i < m.N; i++) m.t[i] = (int32_t)lt_rng_below(&r, (uint64_t)m.C);
        snprintf(shape, sizeof shape, "N=%lld V=%d", (long long)m.N, m.C);
        bench_case cs[1] = {{run_ce, &m, 0}};
        time_group(cs, 1);
        emit("cross_entropy", shape, "F32", cs[0].ms, 5.0 * (double)n, 0);
        lt_free_aligned(m.a), lt_free_aligned(m.b), lt_free(m.t);
    }
}

// ---------------------------------------------------------------------------------------------

static void print_machine(void) {
    char cpu[128] = "unknown", commit[64] = "unknown", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c += 1 + (c[1] == ' ');
                    c[strcspn(c, "\n")] = 0;
                    snprintf(cpu, sizeof cpu, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    FILE *g = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (g) {
        if (fgets(line, sizeof line, g) && line[0]) {
            line[strcspn(line, "\n")] = 0;
            if (line[0]) snprintf(commit, sizeof commit, "%.63s", line);
        }
        pclose(g);
    }
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    printf("{\"machine\":{\"nproc\":%ld,\"cpu\":\"%s\",\"omp_threads\":%d,\"blas_threads\":%d,"
           "\"blas\":\"%s\"},\"commit\":\"%s\",\"runs\":%d}\n",
           nproc, cpu, n_threads(), openblas_get_num_threads(), OPENBLAS_VERSION, commit, runs);
}

int main(int argc, char **argv) {
    if (argc > 1) runs = atoi(argv[1]);
    if (runs < 5) runs = 5;
    const char *group = argc > 2 ? argv[2] : "";
    bool all = group[0] == 0;
    print_machine();
    if (all || strcmp(group, "linear") == 0) {
        bench_linear(2048, 768, 768);
        bench_linear(2048, 2048, 5632);
    }
    if (all || strcmp(group, "attn") == 0) bench_attn(4, 512, 12, 12, 64);
    if (all || strcmp(group, "mem") == 0) bench_membound();
    return 0;
}
