/*
 * bench_tokenizer.c - encode speed of the GPT-2 tokenizer.json (byte-level BPE, PCRE2 regex)
 * over a few MB of real text: the shared datasets (the-verdict.txt, the Alpaca-style
 * instruction data, SMS spam collection, TinyStories sample) concatenated and repeated to
 * 4 MiB. One warm-up, then the median of 3 timed encodes of the whole text in one call.
 * Prints one JSON line. tools/bench_tokenizer_hf.py times HF `tokenizers` on the same text.
 * Without ../shared/data it prints a "skipped" line and exits 0.
 */
#include "test.h"
#include "core/core.h"
#include "tokenizer/tokenizer.h"
#include "bench_util.h"

#include <stdlib.h>
#include <string.h>

#define TARGET_BYTES (4u << 20)

int main(void) {
    const char *d = shared_data_dir();
    char path[1024];
    static const char *files[] = {"datasets/the-verdict.txt", "datasets/rasbt-instruction-data.json",
                                  "datasets/SMSSpamCollection.tsv", "datasets/tinystories_sample.txt"};
    if (!d) {
        printf("{\"bench\":\"tokenizer\",\"skipped\":\"../shared/data not found\"}\n");
        return 0;
    }
    // the corpus: each file once, then repeated up to TARGET_BYTES
    char *one = NULL;
    size_t one_n = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", d, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        one = realloc(one, one_n + (size_t)n + 1);
        one_n += fread(one + one_n, 1, (size_t)n, f);
        one[one_n++] = '\n';
        fclose(f);
    }
    if (!one_n) {
        printf("{\"bench\":\"tokenizer\",\"skipped\":\"no dataset files\"}\n");
        return 0;
    }
    size_t n = 0;
    char *text = malloc(TARGET_BYTES + one_n);
    while (n < TARGET_BYTES) {
        memcpy(text + n, one, one_n);
        n += one_n;
    }
    free(one);

    snprintf(path, sizeof path, "%s/tokenizers/gpt2-hf-tokenizer.json", d);
    lt_tokenizer *t = NULL;
    lt_err err = {0};
    double t0 = lt_time_sec();
    if (lt_tokenizer_load_hf(path, NULL, &t, &err) != LT_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    double load_ms = (lt_time_sec() - t0) * 1e3;
    lt_ids ids = {0};
    double ms[3];
    for (int r = -1; r < 3; r++) {
        ids.n = 0;
        double s = lt_time_sec();
        if (lt_tokenizer_encode(t, text, n, 0, &ids, &err) != LT_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        if (r >= 0) ms[r] = (lt_time_sec() - s) * 1e3;
    }
    qsort(ms, 3, sizeof *ms, cmp_double);
    char cpu[128] = "?";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[256];
        while (fgets(line, sizeof line, ci))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n\"")] = 0;
                break;
            }
        fclose(ci);
    }
    double med = ms[1];
    printf("{\"bench\":\"tokenizer\",\"tokenizer\":\"gpt2 tokenizer.json\",\"bytes\":%zu,"
           "\"tokens\":%zu,\"threads\":1,\"load_ms\":%.1f,\"ms\":%.1f,\"tokens_per_s\":%.0f,"
           "\"mb_per_s\":%.2f,\"cpu\":\"%s\"}\n",
           n, ids.n, load_ms, med, (double)ids.n / (med / 1e3), (double)n / (1 << 20) / (med / 1e3), cpu);
    lt_ids_deinit(&ids);
    lt_tokenizer_free(t);
    free(text);
    return 0;
}
