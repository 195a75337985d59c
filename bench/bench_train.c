/*
 * bench_train.c - LoRA training throughput of loratune on the bench configs A, B, C (issue 2),
 * measured beside the PyTorch + PEFT reference (bench/train_ref.py, driven by
 * bench/run_train_bench.sh, which runs both on the same machine in the same run).
 *
 * What: loads a HF model directory made by `python bench/train_ref.py <cfg> --make-only`
 * (random LlamaForCausalLM, f32), attaches LoRA r=16 alpha=32 dropout 0 on the seven projections,
 * and runs full training steps on random full-length batches (labels = ids: every shifted
 * position carries loss): zero grads, lt_model_train_step, lt_clip_grad_norm(1.0),
 * lt_adamw_update(lr 1e-4, wd 0). One warm-up step, then the median of >= 3 timed steps. In the
 * same run it measures the raw OpenBLAS sgemm rate (2048^3, median of 5) so the achieved GFLOP/s
 * can be read as a fraction of the machine's peak. Prints one JSON line on stdout; progress on
 * stderr. What not: no data loading, tokenizer or checkpoint writing (those are not the step).
 * --compute bf16 (or COMPUTE=bf16 in the environment) runs the frozen-weight matmuls in bf16
 * with f32 accumulation (lt_ops_set_matmul_precision; AMX when present), as torch autocast would;
 * the JSON line then says "compute":"bf16" and sgemm_frac may exceed 1 (the FLOPs are the same,
 * the f32 sgemm peak is not their ceiling any more).
 *
 * FLOP convention (per step; N = B*T rows, M = B*(T-1) rows that carry loss, r = rank; only GEMM
 * work is counted, elementwise ops (norms, RoPE, softmax, SwiGLU, cross-entropy, AdamW) are not):
 *  - forward, base linears:  2 * N * in * out for each of the 7 projections of every layer;
 *    LM head 2 * M * C * V (logits exist only where a label carries loss; issue 9).
 *  - forward, attention (causal, so half of the T x T products): QK^T and PV are each
 *    2*B*NH*T*T*HS / 2, i.e. 2 * B * T * T * (NH*HS) together.
 *  - activation-gradient backward: the same GEMMs again for dx (2 * N * in * out per linear,
 *    2 * M * C * V for the head), EXCEPT q/k/v of the lowest adapted layer, whose input gradient
 *    nothing needs (the embedding is frozen; torch skips it too); attention backward is 4 causal
 *    products (dV, dP, dQ, dK) = 4 * B * T * T * (NH*HS). No weight gradients for frozen weights.
 *  - LoRA, per adapted module (in, out): forward 2*N*r*(in + out); backward gB 2*N*r*out,
 *    d(hidden) 2*N*r*out, gA 2*N*r*in, and dx 2*N*r*in (skipped where dx is not needed).
 * gflops = that count / median step time. Work that need not be done is not counted, so a faster
 * step from skipping it shows up in tokens_per_s rather than inflating gflops.
 *
 * Usage: bench_train [A|B|C] [model_dir] [--steps N]
 *   defaults: A, /tmp/lt_bench/<cfg>, 3 timed steps. LT_COMMIT overrides the commit string.
 */
#include "core/core.h"
#include "lora/lora.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/plan.h"
#include "train/train.h"
#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct bench_cfg {
    const char *name;
    int C, L, NH, NKV, F, V, T, B;
} bench_cfg;

static const bench_cfg CFGS[] = {
    {"A", 288, 6, 6, 6, 768, 32000, 256, 8},
    {"B", 768, 12, 12, 12, 2048, 32000, 512, 4},
    {"C", 2048, 4, 32, 4, 5632, 32000, 512, 1},
    {"S", 576, 30, 9, 3, 1536, 49152, 512, 4}, // SmolLM2-135M-Instruct (the GGUF file as model_dir)
};

#define MAX_STEPS 64
#define RANK 16
#define ALPHA 32.0f

// ---------------------------------------------------------------------------------------------
// helpers

// The shared machine string plus ", avx512" when the CPU has it.
static void machine_string_avx(char *buf, size_t n) {
    char m[200];
    machine_string(m, sizeof m);
    snprintf(buf, n, "%s%s", m, __builtin_cpu_supports("avx512f") ? ", avx512" : "");
}

// CPU accounting of the whole machine (/proc/stat, in seconds) and of this process, so the
// report can say how much of the machine other processes took while we were timing: the cores
// are shared, and a busy neighbour halves a 2-thread step.
typedef struct cpu_snap {
    double wall, busy, steal, self; // busy: user+nice+system+irq+softirq over all cpus
} cpu_snap;

static cpu_snap cpu_snap_now(void) {
    cpu_snap s = {lt_time_sec(), 0, 0, 0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) != 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    double hz = (double)sysconf(_SC_CLK_TCK);
    s.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
    s.steal = (double)v[7] / hz;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s.self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return s;
}

// Fraction of the machine's CPU time used by other processes (and stolen by the host) between
// two snapshots; *self_frac gets ours.
static double cpu_other_frac(cpu_snap a, cpu_snap b, double *self_frac, double *steal_frac) {
    double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN), cap = (b.wall - a.wall) * ncpu;
    if (cap <= 0) return 0;
    *self_frac = (b.self - a.self) / cap;
    *steal_frac = (b.steal - a.steal) / cap;
    double o = (b.busy - a.busy - (b.self - a.self)) / cap;
    return o < 0 ? 0 : o;
}

// Writes s as a JSON string literal (quotes included).
static void json_str(FILE *o, const char *s) {
    fputc('"', o);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(o, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(o, "\\u%04x", ch);
        else
            fputc(ch, o);
    }
    fputc('"', o);
}

// The raw cblas_sgemm rate (GFLOP/s) on n x n x n, median of `reps` after one warm-up.
static double sgemm_peak_gflops(int n, int reps) {
    size_t nn = (size_t)n * (size_t)n;
    float *a = lt_alloc_aligned(nn * sizeof(float)), *b = lt_alloc_aligned(nn * sizeof(float)),
          *c = lt_alloc_aligned(nn * sizeof(float));
    double t[16], g = 0;
    if (a && b && c && reps <= 16) {
        lt_rng rng;
        lt_rng_seed(&rng, 7);
        for (size_t i = 0; i < nn; i++) a[i] = lt_rng_uniform(&rng) - 0.5f, b[i] = a[nn - 1 - i];
        for (int i = -1; i < reps; i++) {
            double t0 = lt_time_sec();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                        c, n);
            if (i >= 0) t[i] = lt_time_sec() - t0;
        }
        g = 2.0 * (double)n * (double)n * (double)n / median(t, reps) / 1e9;
    }
    lt_free_aligned(a), lt_free_aligned(b), lt_free_aligned(c);
    return g;
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    const char *cfg_name = "A", *dir = NULL;
    const char *compute = getenv("COMPUTE");
    int steps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--compute") && i + 1 < argc)
            compute = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fprintf(stderr, "usage: %s [A|B|C|S] [model_dir] [--steps N] [--compute f32|bf16]\n",
                    argv[0]);
            return 0;
        } else if (strlen(argv[i]) == 1)
            cfg_name = argv[i];
        else
            dir = argv[i];
    }
    const bench_cfg *bc = NULL;
    for (size_t i = 0; i < sizeof CFGS / sizeof *CFGS; i++)
        if (!strcmp(CFGS[i].name, cfg_name)) bc = &CFGS[i];
    if (!bc) {
        fprintf(stderr, "bench_train: unknown config '%s' (A, B, C or S)\n", cfg_name);
        return 2;
    }
    if (!compute || !compute[0]) compute = "f32";
    if (!strcmp(compute, "bf16")) {
        lt_ops_set_matmul_precision(LT_PREC_BF16);
    } else if (strcmp(compute, "f32")) {
        fprintf(stderr, "bench_train: --compute must be f32 or bf16, not '%s'\n", compute);
        return 2;
    }
    if (steps < 3 || steps > MAX_STEPS) {
        fprintf(stderr, "bench_train: --steps must be in 3..%d\n", MAX_STEPS);
        return 2;
    }
    char defdir[256];
    snprintf(defdir, sizeof defdir, "/tmp/lt_bench/%s", bc->name);
    if (!strcmp(bc->name, "S")) {
        const char *home = getenv("HOME");
        snprintf(defdir, sizeof defdir, "%s/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
    }
    if (!dir) dir = defdir;
    if (!lt_file_exists(dir)) {
        // `make bench` runs every bench program without arguments: skip rather than fail.
        fprintf(stderr,
                "bench_train: no model at %s; make it with `python bench/train_ref.py %s "
                "--make-only` (skipped)\n",
                dir, bc->name);
        return 0;
    }

    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *ad = NULL;
    lt_ctx *ctx = NULL;
    int32_t *ids = NULL;
    float *am = NULL, *av = NULL;
    int rc = 1;
    double t_load = lt_time_sec();
    if (lt_model_load(dir, &m, &err)) goto fail;
    const lt_config *cf = &m->cfg;
    if (cf->n_embd != bc->C || cf->n_layer != bc->L || cf->n_head != bc->NH ||
        cf->n_head_kv != bc->NKV || cf->n_ff != bc->F || cf->n_vocab != bc->V) {
        lt_err_set(&err, LT_ERR_ARG,
                   "%s is not config %s (dim %d, %d layers, %d/%d heads, ffn %d,"
                   " vocab %d)",
                   dir, bc->name, cf->n_embd, cf->n_layer, cf->n_head, cf->n_head_kv, cf->n_ff,
                   cf->n_vocab);
        goto fail;
    }
    lt_lora_config lc = {
        .r = RANK, .alpha = ALPHA, .dropout = 0.0f, .rslora = false, .layer_lo = 0, .layer_hi = -1};
    if (lt_lora_parse_targets(m, "all", &lc.targets, &err)) goto fail;
    if (lt_adapter_new(m, &lc, 1234, &ad, &err)) goto fail;
    lt_ctx_opts co = {.B = bc->B, .T = bc->T, .train = true, .checkpoint = false};
    if (lt_ctx_new(m, &co, &ctx, &err)) goto fail;
    t_load = lt_time_sec() - t_load;

    int B = bc->B, T = bc->T;
    size_t N = (size_t)B * (size_t)T;
    ids = lt_alloc(N * sizeof(int32_t));
    am = lt_calloc((size_t)ad->n_params, sizeof(float));
    av = lt_calloc((size_t)ad->n_params, sizeof(float));
    if (!ids || !am || !av) {
        lt_err_set(&err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    char desc[160];
    lt_adapter_describe(ad, m, desc, sizeof desc);
    fprintf(stderr, "loratune %s: %s; context %.1f MB; load %.2f s\n", bc->name, desc,
            (double)lt_ctx_bytes(ctx) / 1e6, t_load);

    lt_rng rng;
    lt_rng_seed(&rng, 1234);
    double times[MAX_STEPS], t_sorted[MAX_STEPS], first_loss = 0, last_loss = 0;
    cpu_snap snap0 = cpu_snap_now();
    for (int s = 0; s <= steps; s++) {
        if (s == 1) snap0 = cpu_snap_now(); // after the warm-up
        for (size_t i = 0; i < N; i++) ids[i] = (int32_t)lt_rng_below(&rng, (uint64_t)bc->V);
        lt_batch b = {.ids = ids, .labels = ids, .kmask = NULL, .pos = NULL};
        int64_t nt = lt_batch_n_targets(&b, B, T);
        double loss_sum = 0, t0 = lt_time_sec();
        lt_adapter_zero_grad(ad);
        if (lt_model_train_step(m, ctx, &b, 1.0f / (float)nt, 1234, s, &loss_sum, &err)) goto fail;
        lt_clip_grad_norm(ad->grads, ad->n_params, 1.0f);
        lt_adamw_update(ad->params, ad->grads, am, av, ad->n_params, 1e-4f, 0.9f, 0.999f, 1e-8f,
                        0.0f, s + 1);
        double dt = lt_time_sec() - t0, loss = loss_sum / (double)nt;
        if (s == 0)
            first_loss = loss;
        else
            times[s - 1] = dt;
        last_loss = loss;
        fprintf(stderr, "loratune %s step %d: %.3f s loss %.4f\n", bc->name, s, dt, loss);
    }
    double self_frac = 0, steal_frac = 0;
    double other_frac = cpu_other_frac(snap0, cpu_snap_now(), &self_frac, &steal_frac);
    long rss_kb = lt_peak_rss_kb(); // before the sgemm probe allocates its matrices
    memcpy(t_sorted, times, sizeof(double) * (size_t)steps);
    double step_s = median(t_sorted, steps);
    double flops = lt_plan_step_flops(m, ad, B, T); // the planner's count (train/plan.c)
    double peak = sgemm_peak_gflops(2048, 5);
    double gflops = flops / step_s / 1e9;

    int omp_threads = 1;
#ifdef _OPENMP
    omp_threads = omp_get_max_threads();
#endif
    char machine[256], commit[96];
    machine_string_avx(machine, sizeof machine);
    commit_string(commit, sizeof commit);

    printf("{\"impl\":\"loratune\",\"config\":\"%s\",\"compute\":\"%s\",\"amx\":%s,"
           "\"tokens_per_s\":%.2f,\"step_s\":%.4f,"
           "\"peak_rss_mb\":%.1f,\"gflops\":%.2f,\"sgemm_peak_gflops\":%.2f,\"sgemm_frac\":%.3f,"
           "\"gflop_per_step\":%.3f,\"threads\":%d,\"blas_threads\":%d,\"machine\":",
           bc->name, compute,
           !strcmp(compute, "bf16") && lt_bf16_amx_available() ? "true" : "false",
           (double)N / step_s, step_s, (double)rss_kb / 1024.0, gflops, peak,
           peak > 0 ? gflops / peak : 0.0, flops / 1e9, omp_threads, openblas_get_num_threads());
    json_str(stdout, machine);
    printf(",\"commit\":");
    json_str(stdout, commit);
    printf(",\"B\":%d,\"T\":%d,\"timed_steps\":%d,\"step_times_s\":[", B, T, steps);
    for (int s = 0; s < steps; s++) printf("%s%.4f", s ? "," : "", times[s]);
    printf("],\"trainable_params\":%lld,\"ctx_mb\":%.1f,\"first_loss\":%.4f,\"last_loss\":%.4f,"
           "\"cpu_self\":%.3f,\"cpu_other\":%.3f,\"cpu_steal\":%.3f}\n",
           (long long)ad->n_params, (double)lt_ctx_bytes(ctx) / 1e6, first_loss, last_loss,
           self_frac, other_frac, steal_frac);
    fflush(stdout);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_train %s: %s: %s\n", bc->name, lt_status_name(err.code), err.msg);
done:
    lt_free(ids), lt_free(am), lt_free(av);
    lt_ctx_free(ctx);
    lt_adapter_free(ad);
    lt_model_free(m);
    return rc;
}
