/*
 * bench_gemm_bf16.c - the bf16 GEMM (AMX when detected, else the sgemm emulation) against
 * OpenBLAS sgemm on the linear shapes of bench config B, forward and backward-x form.
 *
 * What: M = 2048 rows (B*T of config B) and (out, in) in (768, 768), (2048, 768), (768, 2048),
 * (32000, 768) (q/o, gate/up, down, LM head). For each shape and form, four cases are timed
 * interleaved (each repetition calls each case once, so a change of load on a shared machine hits
 * all alike): f32 sgemm on f32 weights (the LT_PREC_F32 path), the bf16 GEMM on f32 weights and
 * on bf16 weights (the conversion cost differs), and the bf16 GEMM through lt_linear_fwd /
 * lt_linear_bwd_x (the dispatch). One JSON line per case with the median of `runs` repetitions,
 * GFLOP/s (2 M out in per call) and its speed-up over sgemm in the same run.
 * What not: no correctness checks (tests/unit/test_gemm_bf16.c). Ratios are comparable within one
 * run only.
 * Usage: bench_gemm_bf16 [runs]   (default 5, at least 3)
 * On a loaded machine, OMP_NUM_THREADS=1 LT_BENCH_CPU_TIME=1 times process CPU time instead of
 * wall time: with one thread nothing spins, so that is the kernel's own cost per core.
 */
#include "core/core.h"
#include "ops/ops.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int runs = 5;
static bool cpu_time;

static double now_sec(void) {
    if (!cpu_time) return lt_time_sec();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { CASE_SGEMM, CASE_BF16_W32, CASE_BF16_W16, CASE_LINEAR, N_CASES };
static const char *case_name[N_CASES] = {"sgemm_f32", "bf16_gemm_wf32", "bf16_gemm_wbf16",
                                         "linear_bf16_wbf16"};

typedef struct {
    int64_t M, out, in;
    bool bwd;
    const float *x, *dy;
    float *y, *dx, *ws;
    lt_mat W32, W16;
} shape_ctx;

static void run_case(shape_ctx *s, int c) {
    if (!s->bwd) {
        switch (c) {
        case CASE_SGEMM:
            lt_sgemm(false, true, s->M, s->out, s->in, 1.0f, s->x, s->in, s->W32.data, s->in, 0.0f,
                     s->y, s->out);
            break;
        case CASE_BF16_W32: lt_gemm_bf16_fwd(s->y, s->x, &s->W32, s->M, false, LT_BF16_AUTO); break;
        case CASE_BF16_W16: lt_gemm_bf16_fwd(s->y, s->x, &s->W16, s->M, false, LT_BF16_AUTO); break;
        default: lt_linear_fwd(s->y, s->x, &s->W16, NULL, s->M, false, s->ws); break;
        }
    } else {
        switch (c) {
        case CASE_SGEMM:
            lt_sgemm(false, false, s->M, s->in, s->out, 1.0f, s->dy, s->out, s->W32.data, s->in,
                     1.0f, s->dx, s->in);
            break;
        case CASE_BF16_W32: lt_gemm_bf16_bwd_x(s->dx, s->dy, &s->W32, s->M, LT_BF16_AUTO); break;
        case CASE_BF16_W16: lt_gemm_bf16_bwd_x(s->dx, s->dy, &s->W16, s->M, LT_BF16_AUTO); break;
        default: lt_linear_bwd_x(s->dx, s->dy, &s->W16, s->M, s->ws); break;
        }
    }
}

static void bench_shape(int64_t M, int64_t out, int64_t in, lt_rng *rng) {
    size_t nw = (size_t)(out * in);
    float *w = falloc(nw), *x = falloc((size_t)(M * in)), *dy = falloc((size_t)(M * out));
    float *y = falloc((size_t)(M * out)), *dx = falloc((size_t)(M * in));
    uint16_t *w16 = lt_alloc_aligned(nw * 2);
    if (!w16) exit(2);
    for (size_t i = 0; i < nw; i++) w[i] = 0.05f * (2 * lt_rng_uniform(rng) - 1);
    for (int64_t i = 0; i < M * in; i++) x[i] = 2 * lt_rng_uniform(rng) - 1;
    for (int64_t i = 0; i < M * out; i++) dy[i] = 2 * lt_rng_uniform(rng) - 1;
    memset(dx, 0, sizeof(float) * (size_t)(M * in));
    lt_from_f32(LT_DTYPE_BF16, w, w16, (int64_t)nw);
    shape_ctx s = {.M = M, .out = out, .in = in, .x = x, .dy = dy, .y = y, .dx = dx};
    LT_ASSERT(lt_mat_init(&s.W32, LT_DTYPE_F32, out, in, w));
    LT_ASSERT(lt_mat_init(&s.W16, LT_DTYPE_BF16, out, in, w16));
    s.ws = falloc(lt_linear_ws_floats(&s.W16) + 1);
    double flops = 2.0 * (double)M * (double)out * (double)in;
    char shape[96];
    snprintf(shape, sizeof shape, "M=%lld out=%lld in=%lld", (long long)M, (long long)out,
             (long long)in);
    for (int bwd = 0; bwd < 2; bwd++) {
        s.bwd = bwd;
        enum { MAXR = 64 };
        double t[N_CASES][MAXR], med[N_CASES];
        int n = runs < MAXR ? runs : MAXR;
        lt_ops_set_matmul_precision(LT_PREC_BF16); // for the CASE_LINEAR dispatch only
        for (int c = 0; c < N_CASES; c++) run_case(&s, c); // warm-up (and workspace growth)
        for (int r = 0; r < n; r++)
            for (int c = 0; c < N_CASES; c++) {
                double t0 = now_sec();
                run_case(&s, c);
                t[c][r] = (now_sec() - t0) * 1e3;
            }
        lt_ops_set_matmul_precision(LT_PREC_F32);
        for (int c = 0; c < N_CASES; c++) {
            qsort(t[c], (size_t)n, sizeof(double), cmp_double);
            med[c] = n % 2 ? t[c][n / 2] : 0.5 * (t[c][n / 2 - 1] + t[c][n / 2]);
        }
        for (int c = 0; c < N_CASES; c++)
            printf("{\"op\":\"%s\",\"form\":\"%s\",\"shape\":\"%s\",\"impl\":\"%s\",\"threads\":%d,"
                   "\"runs\":%d,\"ms\":%.3f,\"gflops\":%.1f,\"speedup_vs_sgemm\":%.2f}\n",
                   case_name[c], bwd ? "bwd_x" : "fwd", shape,
                   c == CASE_SGEMM ? "openblas" : lt_bf16_amx_available() ? "amx" : "emul",
                   n_threads(), n, med[c], flops / (med[c] * 1e6), med[CASE_SGEMM] / med[c]);
        fflush(stdout);
    }
    lt_free_aligned(w), lt_free_aligned(x), lt_free_aligned(dy), lt_free_aligned(y);
    lt_free_aligned(dx), lt_free_aligned(w16), lt_free_aligned(s.ws);
}

int main(int argc, char **argv) {
    if (argc > 1) runs = atoi(argv[1]);
    if (runs < 3) runs = 3;
    const char *e = getenv("LT_BENCH_CPU_TIME");
    cpu_time = e && e[0] == '1';
    printf("{\"machine\":{\"omp_threads\":%d,\"blas\":\"%s\",\"amx\":%s},\"clock\":\"%s\"}\n",
           n_threads(), OPENBLAS_VERSION, lt_bf16_amx_available() ? "true" : "false",
           cpu_time ? "process_cpu" : "wall");
    lt_rng rng;
    lt_rng_seed(&rng, 1234);
    static const int64_t shapes[][2] = {{768, 768}, {2048, 768}, {768, 2048}, {32000, 768}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        bench_shape(2048, shapes[i][0], shapes[i][1], &rng);
    lt_gemm_bf16_release();
    return 0;
}
