/*
 * alloc.c - the one place loratune allocates, with failure injection for tests
 * (the idea of Lua's ltests.c l_alloc and redis zmalloc). The counter is process-wide test state,
 * not program state: it is only ever set by tests.
 */
#include "core/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long fail_countdown = -1; // test hook only
static _Atomic long injected = 0;

void lt_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }
long lt_alloc_injected_failures(void) { return atomic_load(&injected); }

static bool should_fail(void) {
    long c = atomic_load(&fail_countdown);
    if (c < 0) return false;
    if (c == 0) {
        atomic_fetch_add(&injected, 1);
        return true;
    }
    atomic_fetch_sub(&fail_countdown, 1);
    return false;
}

void *lt_alloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *lt_calloc(size_t count, size_t size) {
    size_t n;
    if (!lt_mul_ok(count, size, &n)) return NULL;
    if (should_fail()) return NULL;
    return calloc(n ? n : 1, 1);
}

void *lt_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void lt_free(void *p) { free(p); }

char *lt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = lt_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *lt_alloc_aligned(size_t n) {
    if (should_fail()) return NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void lt_free_aligned(void *p) { free(p); }
