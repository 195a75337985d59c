/*
 * core.h - status helpers, allocation with failure injection, RNG, logging and progress.
 *
 * Allocation: everything in loratune allocates through lt_alloc/lt_calloc/lt_free so that tests
 * can make the Nth allocation fail (lt_alloc_fail_after) and check that no path crashes or leaks.
 * RNG: a small deterministic generator (splitmix64 seeding xoshiro256**) with counter-based
 * helpers, so that dropout masks can be regenerated exactly when activations are recomputed.
 * Logging goes to stderr; the library never writes to stdout.
 */
#ifndef LT_CORE_H
#define LT_CORE_H

#include "lt/lt.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

// Aborts with file:line in every build. Only for internal invariants a user cannot trigger.
#define LT_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) lt_assert_fail(#c, __FILE__, __LINE__);                                          \
    } while (0)
_Noreturn void lt_assert_fail(const char *expr, const char *file, int line);

// ---------------------------------------------------------------------------------------------
// allocation

// Returns NULL on failure (or when failure injection says so). n == 0 returns a valid pointer.
void *lt_alloc(size_t n);
void *lt_calloc(size_t count, size_t size); // zeroed; NULL on overflow of count*size
void *lt_realloc(void *p, size_t n);
void lt_free(void *p);                      // lt_free(NULL) does nothing
char *lt_strdup(const char *s);
// 64-byte aligned allocation for kernels' buffers; free with lt_free_aligned.
void *lt_alloc_aligned(size_t n);
void lt_free_aligned(void *p);
// Test hook: the (n+1)th allocation from now fails; n < 0 turns injection off.
void lt_alloc_fail_after(long n);
// Number of allocations that have failed through injection (tests use it to stop a sweep).
long lt_alloc_injected_failures(void);

// Checked size arithmetic: return false on overflow.
static inline bool lt_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool lt_add_ok(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

// ---------------------------------------------------------------------------------------------
// RNG

typedef struct lt_rng {
    uint64_t s[4];
} lt_rng;

void lt_rng_seed(lt_rng *r, uint64_t seed);
uint64_t lt_rng_u64(lt_rng *r);
float lt_rng_uniform(lt_rng *r);               // [0, 1)
float lt_rng_normal(lt_rng *r);                // N(0, 1), Box-Muller
uint64_t lt_rng_below(lt_rng *r, uint64_t n);  // uniform in [0, n), n > 0
// Stateless hash of (seed, a, b, c) -> uniform [0,1): regenerates identical dropout masks.
float lt_hash_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t lt_splitmix64(uint64_t *x);

// ---------------------------------------------------------------------------------------------
// logging and progress (stderr)

typedef enum { LT_LOG_ERROR = 0, LT_LOG_WARN, LT_LOG_INFO, LT_LOG_DEBUG } lt_log_level;
void lt_log_set_level(lt_log_level level);
void lt_log(lt_log_level level, const char *fmt, ...) LT_PRINTF(2, 3);
#define lt_info(...) lt_log(LT_LOG_INFO, __VA_ARGS__)
#define lt_warn(...) lt_log(LT_LOG_WARN, __VA_ARGS__)

// A progress bar on a terminal (rate and ETA), plain log lines every `log_every` updates otherwise.
typedef struct lt_progress {
    const char *label;
    long total, done, printed_done;
    double t_start, t_last_print;
    bool tty;
    char unit[16];
    char extra[96];
} lt_progress;
void lt_progress_init(lt_progress *p, const char *label, long total, const char *unit);
// Sets the current count; `extra` (may be NULL) is shown after the bar, e.g. "loss 2.31".
void lt_progress_update(lt_progress *p, long done, const char *extra);
void lt_progress_finish(lt_progress *p);

double lt_time_sec(void); // monotonic seconds
long lt_peak_rss_kb(void); // peak resident set size of this process, or -1

#endif
