/*
 * test_cli_compute.c - `--compute f32|bf16` on the commands that run the model: an unknown value
 * is a usage error (exit 2) naming the flag, and `eval --task perplexity` in bf16 stays close to
 * f32 on the tiny llama fixture.
 *
 * Tolerance: bf16 rounds every input of the frozen matmuls to 8 significant bits (2^-9 relative);
 * through two layers of a random model the mean loss moves by ~1e-3 (observed 9e-4 on 5.94): 1e-2
 * absolute leaves room and still catches a wrong product (which moves it by whole units).
 */
#include "test.h"

#include <unistd.h>

static char tmp[64], bin[300];

static int sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The mean loss of `eval --task perplexity` with the given --compute, or NAN.
static double mean_loss(const char *compute) {
    char cmd[1024], path[128];
    snprintf(path, sizeof path, "%s/ppl_%s.json", tmp, compute);
    snprintf(cmd, sizeof cmd,
             "%s eval --task perplexity --model tests/fixtures/llama/model --data %s/ppl.ids.jsonl "
             "--seq 32 --compute %s > %s 2>/dev/null",
             bin, tmp, compute, path);
    if (sh(cmd) != 0) return NAN;
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    char line[256];
    double v = NAN;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"mean_loss\":");
        if (p) v = strtod(p + strlen("\"mean_loss\":"), NULL);
    }
    fclose(f);
    return v;
}

int main(void) {
    const char *b = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/loratune", b && *b ? b : "build");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not built\n", bin);
        TEST_END();
    }
    snprintf(tmp, sizeof tmp, "/tmp/lt_test_compute_%d", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmp, tmp);
    CHECK(sh(cmd) == 0);
    // four rows of 32 token ids inside the fixture's 256-token vocabulary
    snprintf(cmd, sizeof cmd, "%s/ppl.ids.jsonl", tmp);
    FILE *f = fopen(cmd, "w");
    CHECK(f != NULL);
    if (!f) TEST_END();
    for (int i = 0; i < 4; i++) {
        fprintf(f, "{\"input_ids\": [");
        for (int j = 0; j < 32; j++) fprintf(f, "%s%d", j ? ", " : "", (i * 7 + j * 13) % 200);
        fprintf(f, "]}\n");
    }
    fclose(f);

    // train checks its required flags first; the others check --compute right after parsing
    const char *cmds[] = {"train --model tests/fixtures/llama/model --data x --out x", "generate",
                          "eval", "classify", "train --task classify --model m --data d"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        snprintf(cmd, sizeof cmd, "cd %s && %s%s %s --compute fp8 2> err.txt; test $? -eq 2 && "
                 "grep -q -- '--compute must be f32 or bf16' err.txt", tmp, bin[0] == '/' ? "" : "$OLDPWD/",
                 bin, cmds[i]);
        CHECK_MSG(sh(cmd) == 0, "%s --compute fp8 should be a usage error", cmds[i]);
    }
    double l32 = mean_loss("f32"), l16 = mean_loss("bf16");
    CHECK_MSG(isfinite(l32) && isfinite(l16) && fabs(l32 - l16) < 1e-2,
              "perplexity mean loss f32 %.6f vs bf16 %.6f", l32, l16);
    fprintf(stderr, "ok   perplexity mean loss f32 %.6f, bf16 %.6f (diff %.2g)\n", l32, l16,
            fabs(l32 - l16));
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    sh(cmd);
    TEST_END();
}
