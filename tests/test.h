/*
 * test.h - tiny test helpers (in the spirit of redis testhelp.h). Each CHECK counts a pass or a
 * failure and reports file:line on failure; TEST_END prints "N passed, N failed" and returns
 * non-zero when anything failed. SKIP_ALL prints why a test cannot run here and returns 0.
 */
#ifndef LT_TEST_H
#define LT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"

static int t_pass, t_fail;

// A whole file, NUL-terminated (*n its length when n is not NULL), or NULL; lt_free it.
static inline char *read_text(const char *path, size_t *n) {
    char *p = NULL;
    size_t k = 0;
    lt_err e = {0};
    if (lt_read_file(path, &p, &k, &e) != LT_OK) return NULL;
    if (n) *n = k;
    return p;
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (c) t_pass++;                                                                           \
        else {                                                                                     \
            t_fail++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                          \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(c, ...)                                                                          \
    do {                                                                                           \
        if (c) t_pass++;                                                                           \
        else {                                                                                     \
            t_fail++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);                          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

// Checks an lt_status call returned LT_OK, printing the error message otherwise.
#define CHECK_OK(call, errp)                                                                       \
    do {                                                                                           \
        lt_status st_ = (call);                                                                    \
        if (st_ == LT_OK) t_pass++;                                                                \
        else {                                                                                     \
            t_fail++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,              \
                    lt_status_name(st_), (errp)->msg);                                             \
        }                                                                                          \
    } while (0)

// Compares two float arrays: passes when |a-b| <= atol + rtol*|b| everywhere; prints the worst.
static inline int check_close_impl(const char *what, const float *a, const float *b, long n,
                                   double atol, double rtol, const char *file, int line) {
    double worst = 0, wa = 0, wb = 0, maxabs = 0;
    long wi = -1;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double excess = d - (atol + rtol * fabs((double)b[i]));
        if (d > maxabs) maxabs = d;
        if (wi < 0 || excess > worst || isnan(d)) {
            if (isnan(d) || wi < 0 || excess > worst) { worst = isnan(d) ? INFINITY : excess; wi = i; wa = a[i]; wb = b[i]; }
        }
    }
    int ok = n == 0 || worst <= 0;
    if (ok) t_pass++;
    else t_fail++;
    fprintf(stderr, "%s %s:%d: %s: n=%ld max|diff|=%.3g (worst at %ld: got %.7g want %.7g; atol %.1g rtol %.1g)\n",
            ok ? "ok  " : "FAIL", file, line, what, n, maxabs, wi, wa, wb, atol, rtol);
    return ok;
}
#define CHECK_CLOSE(what, a, b, n, atol, rtol)                                                     \
    check_close_impl(what, a, b, (long)(n), atol, rtol, __FILE__, __LINE__)

#define TEST_END()                                                                                 \
    do {                                                                                           \
        printf("%s: %d passed, %d failed\n", __FILE__, t_pass, t_fail);                            \
        return t_fail ? 1 : 0;                                                                     \
    } while (0)

// The real artifacts live beside the repository (../shared/data); tests that need them skip
// with a message when absent. LT_SHARED_DATA overrides the location.
static inline const char *shared_data_dir(void) {
    const char *e = getenv("LT_SHARED_DATA");
    static const char *cands[] = {"../shared/data", "../../shared/data"};
    struct stat sb;
    if (e && stat(e, &sb) == 0) return e;
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++)
        if (stat(cands[i], &sb) == 0) return cands[i];
    return NULL;
}

#endif
