/*
 * bench_util.h - what the bench programs share: medians, aligned buffers, the thread count, and
 * the machine / commit each JSON line records.
 */
#ifndef LT_BENCH_UTIL_H
#define LT_BENCH_UTIL_H

#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The median of v(n) (sorts v).
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// n aligned floats, or the program stops (a benchmark has nothing to fall back to).
static inline float *falloc(size_t n) {
    float *p = lt_alloc_aligned(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu floats)\n", program_invocation_short_name, n);
        exit(2);
    }
    return p;
}

static inline int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// First line of a shell command's output (trailing newline removed), or "" on failure.
static inline void run_line(const char *cmd, char *buf, size_t n) {
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)n, p)) buf[0] = 0;
    pclose(p);
    buf[strcspn(buf, "\r\n")] = 0;
}

// The repository root: three levels above the binary (<root>/build/bench/<name>), so the
// commit is right whatever the working directory; "." when that cannot be told.
static inline void repo_root(char *root, size_t n) {
    snprintf(root, n, ".");
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return;
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *sl = strrchr(exe, '/');
        if (sl && sl != exe) *sl = 0;
    }
    if (!strchr(exe, '\'')) snprintf(root, n, "%s", exe);
}

// $LT_COMMIT, else the repository's short HEAD with "-dirty" when the tree has changes.
static inline void commit_string(char *buf, size_t n) {
    const char *env = getenv("LT_COMMIT");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return;
    }
    char root[1024], head[64], dirty[256], cmd[1200];
    repo_root(root, sizeof root);
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short HEAD 2>/dev/null", root);
    run_line(cmd, head, sizeof head);
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain 2>/dev/null | head -1", root);
    run_line(cmd, dirty, sizeof dirty);
    snprintf(buf, n, "%s%s", head[0] ? head : "unknown", dirty[0] ? "-dirty" : "");
}

// "<cpu model name>, <n> cpus" from /proc/cpuinfo.
static inline void machine_string(char *buf, size_t n) {
    char model[160] = "unknown cpu", line[512];
    int ncpu = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                const char *c = strchr(line, ':');
                if (c && ncpu == 0) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\r\n")] = 0;
                }
                ncpu++;
            }
        fclose(f);
    }
    snprintf(buf, n, "%s, %d cpus", model, ncpu);
}

#endif
