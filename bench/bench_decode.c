/*
 * bench_decode.c - generation speed over the key/value cache: prefill of a P-token prompt, then
 * N greedy steps, at batch 1 and batch 8 (rows of the same length), one JSON line per batch size
 * with the median of `runs` timed runs after a warm-up: prefill tokens/s and decode tokens/s
 * (B * N new tokens over the decode time, argmax included, no sampling or detokenisation).
 * The first line records the machine and the git commit.
 * Usage: bench_decode [MODEL [ADAPTER [P [N [runs]]]]]   MODEL: HF directory, .gguf or llama2.c
 * .bin (default: the SmolLM2 GGUF in ~/.cache/loratune, else ../shared/data stories260K, else the
 * tiny llama fixture); ADAPTER: a PEFT directory or "-" for none; P = 32, N = 64, runs = 5.
 * bench/decode_ref.py measures transformers' generate() on the same shapes for the ratio.
 */
#include "core/core.h"
#include "infer/infer.h"
#include "lora/lora.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void print_machine(void) {
    char cpu[128] = "unknown", commit[64] = "unknown", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n\"")] = 0;
            }
            break;
        }
    if (f) fclose(f);
    FILE *g = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (g) {
        if (fgets(line, sizeof line, g)) {
            line[strcspn(line, "\n")] = 0;
            if (line[0]) snprintf(commit, sizeof commit, "%.63s", line);
        }
        pclose(g);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("{\"machine\":{\"nproc\":%ld,\"cpu\":\"%s\",\"omp_threads\":%d},\"commit\":\"%s\"}\n",
           sysconf(_SC_NPROCESSORS_ONLN), cpu, threads, commit);
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

int main(int argc, char **argv) {
    char def[1024];
    const char *model = argc > 1 ? argv[1] : NULL;
    const char *adapter = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;
    int P = argc > 3 ? atoi(argv[3]) : 32, N = argc > 4 ? atoi(argv[4]) : 64;
    int runs = argc > 5 ? atoi(argv[5]) : 5;
    if (!model) {
        const char *home = getenv("HOME");
        snprintf(def, sizeof def, "%s/.cache/loratune/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : "");
        if (home && exists(def))
            model = def;
        else if (exists("../shared/data/models/stories260K.bin"))
            model = "../shared/data/models/stories260K.bin";
        else
            model = "tests/fixtures/llama/model";
    }
    if (P < 1 || N < 1 || runs < 1) {
        fprintf(stderr, "usage: bench_decode [MODEL [ADAPTER|- [P [N [runs]]]]]\n");
        return 2;
    }
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    if (lt_model_load(model, &m, &err) || (adapter && lt_adapter_load_peft(m, adapter, &a, &err))) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        lt_model_free(m);
        return 1;
    }
    if (P + N > m->cfg.max_pos) N = m->cfg.max_pos - P;
    print_machine();
    const int V = m->cfg.n_vocab;
    int batches[] = {1, 8};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        lt_kv *kv = NULL;
        if (lt_kv_new(m, B, P + N, &kv, &err)) {
            fprintf(stderr, "bench_decode: %s\n", err.msg);
            break;
        }
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)P),
                *next = malloc(sizeof(int32_t) * (size_t)B);
        float *logits = malloc(sizeof(float) * (size_t)B * (size_t)V);
        lt_rng r;
        lt_rng_seed(&r, 1);
        for (int i = 0; i < B * P; i++)
            ids[i] = 3 + (int32_t)lt_rng_below(&r, (uint64_t)(V > 3 ? V - 3 : 1));
        double tp[64], td[64];
        int nr = runs > 64 ? 64 : runs;
        for (int run = -1; run < nr; run++) { // run -1: warm-up
            lt_kv_reset(kv);
            double t0 = lt_time_sec();
            if (lt_model_decode(m, kv, ids, P, NULL, NULL, logits, false, &err)) break;
            double t1 = lt_time_sec();
            int steps = run < 0 ? (N < 4 ? N : 4) : N;
            for (int s = 0; s < steps; s++) {
                for (int b = 0; b < B; b++)
                    next[b] = lt_sample_argmax(logits + (size_t)b * (size_t)V, V);
                if (lt_model_decode(m, kv, next, 1, NULL, NULL, logits, false, &err)) break;
            }
            double t2 = lt_time_sec();
            if (run >= 0) tp[run] = t1 - t0, td[run] = t2 - t1;
        }
        if (err.code) {
            fprintf(stderr, "bench_decode: %s\n", err.msg);
        } else {
            qsort(tp, (size_t)nr, sizeof(double), cmp_double);
            qsort(td, (size_t)nr, sizeof(double), cmp_double);
            double p = tp[nr / 2], d = td[nr / 2];
            printf("{\"bench\":\"decode\",\"model\":\"%s\",\"adapter\":%s%s%s,\"batch\":%d,"
                   "\"prompt\":%d,"
                   "\"new\":%d,\"runs\":%d,\"prefill_ms\":%.2f,\"prefill_tok_s\":%.1f,\"decode_"
                   "ms\":%.2f,"
                   "\"decode_tok_s\":%.1f,\"ms_per_step\":%.3f,\"kv_mb\":%.1f}\n",
                   model, adapter ? "\"" : "", adapter ? adapter : "null", adapter ? "\"" : "", B,
                   P, N, nr, 1e3 * p, (double)B * P / p, 1e3 * d, (double)B * N / d, 1e3 * d / N,
                   (double)lt_kv_bytes(kv) / 1048576.0);
            fflush(stdout);
        }
        free(ids), free(next), free(logits);
        lt_kv_free(kv);
    }
    lt_adapter_free(a);
    lt_model_free(m);
    return err.code ? 1 : 0;
}
