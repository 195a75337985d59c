/*
 * bench_qlora.c - QLoRA on CPU: peak RSS, step time and tokens/s of a LoRA training step over a
 * BF16 base (as stored, mmapped) against the same base quantised at load to NF4 and to NF4 with
 * double quantisation (and NF4+DQ with 8-bit AdamW), and the bits per base parameter.
 *
 * What: each variant runs in its own forked process (peak RSS is per process): lt_model_load,
 * lt_model_quantize (NF4/FP4 variants), LoRA r=16 alpha=32 dropout 0 on q/k/v/o/gate/up/down,
 * lt_ctx_new(train), then per step: zero grads, lt_model_train_step on a random full-length batch
 * (labels = ids), lt_clip_grad_norm(1.0), AdamW (f32 moments, or 8-bit). One warm-up step, then
 * the median of `steps` timed steps. One JSON line per variant on stdout:
 *   variant, optim, base_params (the quantised projections), base_bytes (their storage),
 *   base_bits_per_param (16 for BF16; 4.5 NF4; ~4.127 NF4+DQ), load_s, quant_s, step_s (median),
 *   step_times_s, step_cpu_s (median CPU seconds of a step, user + system: on a shared machine
 *   it compares variants when wall times do not), tokens_per_s, rss_after_load_mb (VmRSS after
 *   loading + quantising),
 *   peak_rss_mb (ru_maxrss), optim_state_bytes, threads, machine, commit.
 * The model directory defaults to /tmp/lt_qlora/C (bench config C: dim 2048, 32 heads / 4 kv,
 * MLP 5632, 4 layers, vocab 32000; seq 512, batch 1), made on first use by
 * `python3 tools/make_7b_shaped.py C /tmp/lt_qlora/C` (random BF16 weights); without Python it
 * prints a "skipped" line. tools/make_7b_shaped.py 7b DIR [--layers N] makes Mistral-7B-shaped
 * stacks for the same program.
 * What not: no comparison with bitsandbytes (GPU-only kernels for the 4-bit matmul); no
 * correctness checks (tests/unit/test_nf4.c, test_optim8.c).
 *
 * Usage: bench_qlora [model_dir] [--steps N] [--seq T] [--batch B] [--grad-checkpoint]
 *                    [--variants bf16,nf4,nf4_dq,nf4_dq_8bit,fp4_dq]
 *   defaults: /tmp/lt_qlora/C, 3 steps, seq 512, batch 1, variants bf16,nf4,nf4_dq,nf4_dq_8bit.
 */
#include "core/core.h"
#include "lora/lora.h"
#include "model/model.h"
#include "train/train.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_STEPS 32

typedef struct variant {
    const char *name;
    lt_dtype qt; // LT_DTYPE_BF16: as stored
    bool dq, adam8;
} variant;

static const variant VARIANTS[] = {
    {"bf16", LT_DTYPE_BF16, false, false}, {"nf4", LT_DTYPE_NF4, false, false},
    {"nf4_dq", LT_DTYPE_NF4, true, false}, {"nf4_dq_8bit", LT_DTYPE_NF4, true, true},
    {"fp4_dq", LT_DTYPE_FP4, true, false},
};

typedef struct opts {
    const char *dir;
    int steps, T, B;
    bool ckpt;
    char variants[256];
} opts;

static double rss_now_mb(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

// CPU seconds (user + system) this process has used: on a shared machine, where wall time
// depends on the neighbours, the CPU time of a step still compares variants.
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

// One variant, in the calling (child) process. Returns an exit code.
static int run_variant(const opts *o, const variant *v) {
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_ctx *c = NULL;
    float *am = NULL, *av = NULL;
    int32_t *ids = NULL;
    lt_adamw8 q8 = {0};
    int rc = 1;
    double t0 = lt_time_sec();
    if (lt_model_load(o->dir, &m, &err)) goto fail;
    double t1 = lt_time_sec();
    int64_t base_params = 0;
    size_t base_bytes = 0;
    if (v->qt != LT_DTYPE_BF16) {
        if (lt_model_quantize(m, v->qt, v->dq, &err)) goto fail;
        lt_quant_info qi;
        lt_model_quant_info(m, &qi);
        base_params = qi.n_params, base_bytes = qi.bytes;
    } else {
        for (int l = 0; l < m->cfg.n_layer; l++)
            for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
                const lt_mat *w = &m->layers[l].lin[k].w;
                base_params += w->rows * w->cols;
                base_bytes += (size_t)w->rows * w->row_bytes;
            }
    }
    double t2 = lt_time_sec(), rss_load = rss_now_mb();
    lt_lora_config lc = {.r = 16, .alpha = 32, .dropout = 0, .targets = 0x7f, .layer_hi = -1};
    if (lt_adapter_new(m, &lc, 1, &a, &err)) goto fail;
    lt_ctx_opts co = {.B = o->B, .T = o->T, .train = true, .checkpoint = o->ckpt};
    if (lt_ctx_new(m, &co, &c, &err)) goto fail;
    size_t np = (size_t)a->n_params, optim_bytes;
    if (v->adam8) {
        if (lt_adamw8_init_adapter(&q8, a, &err)) goto fail;
        optim_bytes = lt_adamw8_state_bytes(&q8);
    } else {
        am = lt_calloc(np, sizeof(float)), av = lt_calloc(np, sizeof(float));
        if (!am || !av) goto oom;
        optim_bytes = 2 * sizeof(float) * np;
    }
    int BT = o->B * o->T;
    ids = lt_alloc(sizeof(int32_t) * (size_t)BT);
    if (!ids) goto oom;
    lt_rng r;
    lt_rng_seed(&r, 7);
    for (int i = 0; i < BT; i++)
        ids[i] = 3 + (int32_t)lt_rng_below(&r, (uint64_t)m->cfg.n_vocab - 3);
    lt_batch b = {.ids = ids, .labels = ids};
    float scale = 1.0f / (float)lt_batch_n_targets(&b, o->B, o->T);
    double times[MAX_STEPS], cpus[MAX_STEPS], loss = 0;
    for (int s = 0; s <= o->steps; s++) { // step 0 warms up
        double ts = lt_time_sec(), cs = cpu_s();
        lt_adapter_zero_grad(a);
        if (lt_model_train_step(m, c, &b, scale, 1, s, &loss, &err)) goto fail;
        lt_clip_grad_norm(a->grads, a->n_params, 1.0f);
        if (v->adam8)
            lt_adamw8_update(&q8, a->params, a->grads, 1e-4f, 0.9f, 0.999f, 1e-8f, 0, s + 1);
        else
            lt_adamw_update(a->params, a->grads, am, av, a->n_params, 1e-4f, 0.9f, 0.999f, 1e-8f, 0,
                            s + 1);
        if (s > 0) times[s - 1] = lt_time_sec() - ts, cpus[s - 1] = cpu_s() - cs;
        fprintf(stderr, "bench_qlora %s: step %d %.2f s, loss %.4f\n", v->name, s,
                lt_time_sec() - ts, loss * scale);
    }
    double sorted[MAX_STEPS];
    memcpy(sorted, times, sizeof(double) * (size_t)o->steps);
    qsort(sorted, (size_t)o->steps, sizeof(double), cmp_double);
    double med = o->steps % 2 ? sorted[o->steps / 2]
                              : 0.5 * (sorted[o->steps / 2 - 1] + sorted[o->steps / 2]);
    memcpy(sorted, cpus, sizeof(double) * (size_t)o->steps);
    qsort(sorted, (size_t)o->steps, sizeof(double), cmp_double);
    double med_cpu = o->steps % 2 ? sorted[o->steps / 2]
                                  : 0.5 * (sorted[o->steps / 2 - 1] + sorted[o->steps / 2]);
    char machine[256], commit[96], st[512] = "";
    machine_string(machine, sizeof machine);
    commit_string(commit, sizeof commit);
    for (int s = 0; s < o->steps; s++)
        snprintf(st + strlen(st), sizeof st - strlen(st), "%s%.3f", s ? "," : "", times[s]);
    const lt_config *cf = &m->cfg;
    printf(
        "{\"bench\":\"qlora\",\"model\":\"%s\",\"shape\":{\"dim\":%d,\"layers\":%d,\"heads\":%d,"
        "\"kv_heads\":%d,\"ffn\":%d,\"vocab\":%d},\"seq\":%d,\"batch\":%d,\"grad_checkpoint\":%s,"
        "\"variant\":\"%s\",\"optim\":\"%s\",\"lora_r\":16,\"base_params\":%lld,"
        "\"base_bytes\":%zu,\"base_bits_per_param\":%.4f,\"load_s\":%.2f,\"quant_s\":%.2f,"
        "\"step_s\":%.3f,\"step_times_s\":[%s],\"step_cpu_s\":%.3f,\"tokens_per_s\":%.1f,"
        "\"rss_after_load_mb\":%.0f,"
        "\"peak_rss_mb\":%.0f,\"optim_state_bytes\":%zu,\"threads\":%d,\"machine\":\"%s\","
        "\"commit\":\"%s\"}\n",
        o->dir, cf->n_embd, cf->n_layer, cf->n_head, cf->n_head_kv, cf->n_ff, cf->n_vocab, o->T,
        o->B, o->ckpt ? "true" : "false", v->name, v->adam8 ? "adamw_8bit" : "adamw",
        (long long)base_params, base_bytes, 8.0 * (double)base_bytes / (double)base_params, t1 - t0,
        t2 - t1, med, st, med_cpu, (double)BT / med, rss_load, (double)lt_peak_rss_kb() / 1024.0,
        optim_bytes, n_threads(), machine, commit);
    fflush(stdout);
    rc = 0;
    goto done;
oom:
    lt_err_set(&err, LT_ERR_OOM, "out of memory");
fail:
    fprintf(stderr, "bench_qlora %s: %s\n", v->name, err.msg);
done:
    lt_free(ids), lt_free(am), lt_free(av);
    lt_adamw8_deinit(&q8);
    lt_ctx_free(c);
    lt_adapter_free(a);
    lt_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    opts o = {.dir = "/tmp/lt_qlora/C", .steps = 3, .T = 512, .B = 1};
    snprintf(o.variants, sizeof o.variants, "bf16,nf4,nf4_dq,nf4_dq_8bit");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            o.steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
            o.T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            o.B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--grad-checkpoint"))
            o.ckpt = true;
        else if (!strcmp(argv[i], "--variants") && i + 1 < argc)
            snprintf(o.variants, sizeof o.variants, "%s", argv[++i]);
        else if (argv[i][0] != '-')
            o.dir = argv[i];
        else {
            fprintf(stderr,
                    "usage: bench_qlora [model_dir] [--steps N] [--seq T] [--batch B] "
                    "[--grad-checkpoint] [--variants bf16,nf4,nf4_dq,nf4_dq_8bit,fp4_dq]\n");
            return 2;
        }
    }
    if (o.steps < 1 || o.steps > MAX_STEPS || o.T < 2 || o.B < 1) {
        fprintf(stderr, "bench_qlora: steps must be 1..%d, seq >= 2, batch >= 1\n", MAX_STEPS);
        return 2;
    }
    struct stat sb;
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", o.dir);
    if (stat(path, &sb) != 0) {
        if (strcmp(o.dir, "/tmp/lt_qlora/C") != 0) {
            fprintf(stderr,
                    "bench_qlora: %s is not a model directory (make one with "
                    "tools/make_7b_shaped.py)\n",
                    o.dir);
            return 2;
        }
        char root[1024], cmd[1400];
        repo_root(root, sizeof root);
        snprintf(cmd, sizeof cmd, "python3 '%s/tools/make_7b_shaped.py' C /tmp/lt_qlora/C", root);
        fprintf(stderr, "bench_qlora: making the random config C model: %s\n", cmd);
        if (system(cmd) != 0 || stat(path, &sb) != 0) {
            printf("{\"bench\":\"qlora\",\"skipped\":\"could not make /tmp/lt_qlora/C "
                   "(python3 with numpy needed)\"}\n");
            return 0;
        }
    }
    int failed = 0;
    for (size_t k = 0; k < sizeof VARIANTS / sizeof *VARIANTS; k++) {
        const variant *v = &VARIANTS[k];
        // whole-word match in the comma list
        const char *p = o.variants;
        size_t ln = strlen(v->name);
        bool want = false;
        while ((p = strstr(p, v->name))) {
            if ((p == o.variants || p[-1] == ',') && (p[ln] == 0 || p[ln] == ',')) want = true;
            p += ln;
        }
        if (!want) continue;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) _exit(run_variant(&o, v));
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "bench_qlora: variant %s failed\n", v->name);
            failed = 1;
        }
    }
    return failed;
}
