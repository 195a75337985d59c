/*
 * replay_main.c - runs a fuzz target (LLVMFuzzerTestOneInput) over every file in the corpus
 * folders given as arguments, plus a fixed number of seeded random mutations of each, so that the
 * fuzz targets run in `make test` without libFuzzer. With clang -fsanitize=fuzzer this file is not
 * linked and the same target runs under libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern const char *fuzz_default_corpus; // set by each target

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xs(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int run_file(const char *path, int mutations) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64 << 20)) { fclose(f); return 0; }
    uint8_t *buf = malloc((size_t)n + 1), *mut = malloc((size_t)n + 16);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, got);
    for (int m = 0; m < mutations; m++) {
        size_t len = got;
        memcpy(mut, buf, got);
        int kind = (int)(xs() % 4);
        if (kind == 0 && len) len = xs() % len;                                   // truncate
        else if (kind == 1 && len) for (int i = 0; i < 4; i++) mut[xs() % len] = (uint8_t)xs(); // bytes
        else if (kind == 2 && len >= 8) memset(mut + xs() % (len - 7), 0xff, 8);  // huge values
        else if (len) mut[xs() % len] ^= (uint8_t)(1u << (xs() % 8));              // bit flip
        LLVMFuzzerTestOneInput(mut, len);
    }
    free(buf);
    free(mut);
    return 1;
}

int main(int argc, char **argv) {
    int files = 0, mutations = 200;
    const char *env = getenv("FUZZ_MUTATIONS");
    if (env) mutations = atoi(env);
    const char *dirs[16];
    int nd = 0;
    for (int i = 1; i < argc && nd < 16; i++) dirs[nd++] = argv[i];
    if (nd == 0) dirs[nd++] = fuzz_default_corpus;
    for (int d = 0; d < nd; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir) { files += run_file(dirs[d], mutations); continue; }
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dirs[d], e->d_name);
            files += run_file(p, mutations);
        }
        closedir(dir);
    }
    // reaching here without a crash or sanitizer report is the pass
    printf("fuzz replay: %d passed, 0 failed\n", files);
    return 0;
}
