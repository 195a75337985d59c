// rng.c - xoshiro256** seeded by splitmix64 (Blackman & Vigna), and a stateless hash for masks.
#include "core/core.h"

#include <math.h>

uint64_t lt_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lt_rng_seed(lt_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = lt_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lt_rng_u64(lt_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float lt_rng_uniform(lt_rng *r) { return (float)(lt_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float lt_rng_normal(lt_rng *r) {
    float u1 = lt_rng_uniform(r), u2 = lt_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

uint64_t lt_rng_below(lt_rng *r, uint64_t n) {
    LT_ASSERT(n > 0);
    // rejection sampling removes modulo bias
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = lt_rng_u64(r);
    while (x >= lim);
    return x % n;
}

float lt_hash_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = seed ^ (a * 0x9E3779B97F4A7C15ull);
    lt_splitmix64(&x);
    x ^= b * 0xC2B2AE3D27D4EB4Full;
    lt_splitmix64(&x);
    x ^= c * 0x165667B19E3779F9ull;
    return (float)(lt_splitmix64(&x) >> 40) * (1.0f / 16777216.0f);
}
