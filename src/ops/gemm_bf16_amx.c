/*
 * gemm_bf16_amx.c - bf16 GEMM on Intel AMX tiles (TDPBF16PS), f32 accumulation.
 *
 * What: C(M, NO) (=|+=) A(M, R) @ B(R, NO) with A f32 (rounded to bf16 while packing) and B the
 * frozen weight W in any dtype (F32 rows read in place and rounded, BF16 rows copied as stored,
 * other dtypes converted with simd_mat_row_to_f32 and rounded) laid out in the VNNI pair layout
 * TDPBF16PS reads. Each output block of 32 x 32 is 2 x 2
 * accumulator tiles (tmm0-3) fed by two A tiles (tmm4-5, 16 rows x 32 k) and two B tiles
 * (tmm6-7, 16 k-pairs x 16 columns): 4 tile products per 4 tile loads.
 * Blocking: the reduction in chunks of BF16_KC, A packed once per chunk for all rows (the threads
 * share that work); output columns in panels of at most BF16_NC that the threads take
 * round-robin, each packing its panel of B into its own buffer (<= 512 KB: it stays in L2 while
 * every 32-row block of A streams past it). One OpenMP region per call and one barrier per
 * chunk: on a machine shared with other work, a barrier per panel (an earlier version) made a
 * descheduled thread stall the other one hundreds of times per call.
 * Numerics: products of bf16 values are exact in f32; TDPBF16PS adds them in f32 (round to
 * nearest even) but treats bf16 subnormal inputs as zero and flushes subnormal results; f32 to
 * bf16 rounding is VCVTNE2PS2BF16 (nearest even, subnormal inputs taken as zero). So the result
 * equals the f32 sum of bf16(A) * bf16(B) up to summation order, except where inputs are
 * subnormal (|x| < 1.2e-38).
 * What not: this file is built with -mamx-tile -mamx-bf16 -mavx512f -mavx512bf16 and must run
 * only after lt_bf16_amx_available() (gemm_bf16.c) said yes: every entry point is called from
 * there. No allocation (the caller's workspace), no cached packed weights (the frozen weight is
 * re-packed each call: O(NO R) work against O(M NO R) products).
 * Reference: Intel SDM vol. 1 ch. 3 (AMX), Intel Optimization Manual ch. 20 (AMX GEMM blocking),
 * the Linux kernel's Documentation/arch/x86/xstate.rst (arch_prctl XTILEDATA permission).
 */
#include "ops/gemm_bf16_impl.h"

#include "ops/simd_avx2.h"

#include <immintrin.h>
#include <string.h>

#include "ops/ops_omp.h"

#define TILE_ELEMS 512 // bf16 values in one A or B tile (16 rows x 64 bytes)

// ---------------------------------------------------------------------------------------------
// tile configuration: all eight tiles 16 rows x 64 bytes, loaded once per thread (a thread keeps
// its configuration until it exits; nothing else in the process uses tiles)

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static _Thread_local bool tile_ready;

static void tile_setup(void) {
    if (tile_ready) return;
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
    _tile_loadconfig(&c);
    tile_ready = true;
}

// ---------------------------------------------------------------------------------------------
// packing

// 32 bf16 (16 words, element 2i in the low half of word i) from p[0, n), zero past n (n >= 1):
// from f32 rounded to nearest even, or from bf16 as stored.
static inline __m512i bf16x32_f32(const float *p, int64_t n) {
    if (n >= 32) return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p));
    __mmask16 ml = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __mmask16 mh = (__mmask16)(n <= 16 ? 0 : (1u << (n - 16)) - 1);
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(mh, p + 16),
                                        _mm512_maskz_loadu_ps(ml, p));
}
static inline __m512i bf16x32_bf16(const uint16_t *p, int64_t n) {
    if (n >= 32) return _mm512_loadu_si512((const void *)p);
    _Alignas(64) uint16_t t[32] = {0};
    memcpy(t, p, (size_t)n * 2);
    return _mm512_load_si512((const void *)t);
}
// 16 bf16 from p[0, n) into 16-bit lanes, zero past n (n may be <= 0: all zero).
static inline __m256i bf16x16_f32(const float *p, int64_t n) {
    if (n <= 0) return _mm256_setzero_si256();
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, p));
}
static inline __m256i bf16x16_bf16(const uint16_t *p, int64_t n) {
    if (n >= 16) return _mm256_loadu_si256((const void *)p);
    _Alignas(32) uint16_t t[16] = {0};
    if (n > 0) memcpy(t, p, (size_t)n * 2);
    return _mm256_load_si256((const void *)t);
}

// Elements [k0, k0 + n) of row r of W, read in place for F32 and BF16 (no copy: the pack then
// reads the weight once), else converted to f32 into buf(n).
typedef struct {
    const float *f;    // f32 values, or NULL
    const uint16_t *h; // bf16 values, or NULL
} row_src;

static inline row_src row_get(const lt_mat *W, int64_t r, int64_t k0, int64_t n, float *buf) {
    row_src s = {NULL, NULL};
    const char *row = (const char *)lt_mat_row(W, r);
    if (W->dtype == LT_DTYPE_F32) s.f = (const float *)(const void *)row + k0;
    else if (W->dtype == LT_DTYPE_BF16) s.h = (const uint16_t *)(const void *)row + k0;
    else simd_mat_row_to_f32(buf, W, r, k0, n), s.f = buf;
    return s;
}

// A tiles: ap[(mt * KS + ks) * 512 + i * 32 + c] = bf16(A[mt*16 + i][ks*32 + c]), zero past M
// rows and kn columns. Mp rows (a multiple of 32). Called inside the parallel region: the
// threads share the tiles (orphaned `omp for`, with its barrier at the end).
static void pack_a(uint16_t *ap, const float *A, int64_t lda, int64_t M, int64_t Mp, int64_t kn,
                   int64_t KS) {
    OMP_PRAGMA(omp for schedule(static))
    for (int64_t mt = 0; mt < Mp / 16; mt++) {
        for (int64_t i = 0; i < 16; i++) {
            int64_t row = mt * 16 + i;
            for (int64_t ks = 0; ks < KS; ks++) {
                uint16_t *dst = ap + (mt * KS + ks) * TILE_ELEMS + i * 32;
                __m512i v = row < M ? bf16x32_f32(A + row * lda + ks * 32, kn - ks * 32)
                                    : _mm512_setzero_si512();
                _mm512_storeu_si512((void *)dst, v);
            }
        }
    }
}

// In-place transpose of 16 x 16 32-bit words: word j of r[i] goes to word i of r[j].
static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

// B tiles of the forward (B = W^T, W rows are output columns): tile (nt, ks) holds, as 32-bit
// words, word[kk][j] = {bf16 W[n0 + nt*16 + j][k0 + ks*32 + 2kk], ... + 2kk + 1}: the 32 values
// of 16 W rows at a k-step, as 16 vectors of 16 words, transposed. NT tiles (covering nn <=
// BF16_NC rows of W, zero past them). One thread's own panel.
static void pack_b_fwd(uint16_t *bp, const lt_mat *W, int64_t n0, int64_t nn, int64_t NT,
                       int64_t k0, int64_t kn, int64_t KS) {
    // Other dtypes are converted a whole row chunk at a time: k0 is a multiple of BF16_KC and
    // kn reaches BF16_KC or the row's end, so the chunk is whole blocks of every dtype (the
    // k-quants' are 256 elements); 32-element pieces would not be.
    static _Thread_local float conv[16][BF16_KC];
    for (int64_t nt = 0; nt < NT; nt++) {
        row_src src[16];
        for (int64_t j = 0; j < 16; j++) {
            src[j].f = NULL, src[j].h = NULL;
            if (nt * 16 + j < nn) src[j] = row_get(W, n0 + nt * 16 + j, k0, kn, conv[j]);
        }
        for (int64_t ks = 0; ks < KS; ks++) {
            int64_t r = kn - ks * 32;
            __m512i v[16];
            for (int64_t j = 0; j < 16; j++) {
                if (nt * 16 + j >= nn) v[j] = _mm512_setzero_si512();
                else if (src[j].h) v[j] = bf16x32_bf16(src[j].h + ks * 32, r);
                else v[j] = bf16x32_f32(src[j].f + ks * 32, r);
            }
            transpose16(v);
            uint16_t *tile = bp + (nt * KS + ks) * TILE_ELEMS;
            for (int kk = 0; kk < 16; kk++) _mm512_storeu_si512((void *)(tile + kk * 32), v[kk]);
        }
    }
}

// B tiles of bwd_x (B = W, W rows are the reduction): tile (nt, ks) holds word[kk][j] =
// {bf16 W[k0 + ks*32 + 2kk][n0 + nt*16 + j], W[k0 + ks*32 + 2kk + 1][same column]}: two W rows
// interleaved. Columns past nn and rows past kn are zero. One thread's own panel.
static void pack_b_bwd(uint16_t *bp, const lt_mat *W, int64_t n0, int64_t nn, int64_t NT,
                       int64_t k0, int64_t kn, int64_t KS) {
    for (int64_t ks = 0; ks < KS; ks++) {
        float buf0[BF16_NC], buf1[BF16_NC];
        for (int64_t kk = 0; kk < 16; kk++) {
            int64_t k = ks * 32 + 2 * kk;
            row_src s0 = {NULL, NULL}, s1 = {NULL, NULL};
            if (k < kn) s0 = row_get(W, k0 + k, n0, nn, buf0);
            if (k + 1 < kn) s1 = row_get(W, k0 + k + 1, n0, nn, buf1);
            for (int64_t nt = 0; nt < NT; nt++) {
                int64_t c = nt * 16, r = nn - c;
                __m256i a = s0.h ? bf16x16_bf16(s0.h + c, r)
                            : s0.f ? bf16x16_f32(s0.f + c, r) : _mm256_setzero_si256();
                __m256i b = s1.h ? bf16x16_bf16(s1.h + c, r)
                            : s1.f ? bf16x16_f32(s1.f + c, r) : _mm256_setzero_si256();
                __m512i w = _mm512_or_si512(_mm512_cvtepu16_epi32(a),
                                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
                _mm512_storeu_si512((void *)(bp + (nt * KS + ks) * TILE_ELEMS + kk * 32), w);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// product

// One 32 x 32 block of C at c (ldc floats per row; mrem, nrem rows/columns of it exist) from two
// A tile rows a (tiles a + ks*512, then a + KS*512 + ks*512) and two B tile columns b (same).
// load_c: start from C's values (accumulate), else from zero.
static void block_32x32(float *c, int64_t ldc, int64_t mrem, int64_t nrem, bool load_c,
                        const uint16_t *a, const uint16_t *b, int64_t KS) {
    _Alignas(64) float cb[4 * 256];
    bool full = mrem >= 32 && nrem >= 32;
    float *c0 = cb, *c1 = cb + 256, *c2 = cb + 512, *c3 = cb + 768;
    size_t stride = 64;
    if (full) {
        c0 = c, c1 = c + 16, c2 = c + 16 * ldc, c3 = c + 16 * ldc + 16;
        stride = (size_t)ldc * sizeof(float);
    } else if (load_c) {
        for (int64_t i = 0; i < 32; i++)
            for (int64_t j = 0; j < 32; j++)
                cb[((i / 16) * 2 + j / 16) * 256 + (i % 16) * 16 + j % 16] =
                    i < mrem && j < nrem ? c[i * ldc + j] : 0.0f;
    }
    if (load_c) {
        _tile_loadd(0, c0, stride);
        _tile_loadd(1, c1, stride);
        _tile_loadd(2, c2, stride);
        _tile_loadd(3, c3, stride);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const uint16_t *a1 = a + KS * TILE_ELEMS, *b1 = b + KS * TILE_ELEMS;
    for (int64_t ks = 0; ks < KS; ks++) {
        _tile_loadd(4, a + ks * TILE_ELEMS, 64);
        _tile_loadd(6, b + ks * TILE_ELEMS, 64);
        _tile_loadd(5, a1 + ks * TILE_ELEMS, 64);
        _tile_loadd(7, b1 + ks * TILE_ELEMS, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c0, stride);
    _tile_stored(1, c1, stride);
    _tile_stored(2, c2, stride);
    _tile_stored(3, c3, stride);
    if (!full) {
        for (int64_t i = 0; i < mrem && i < 32; i++)
            for (int64_t j = 0; j < nrem && j < 32; j++)
                c[i * ldc + j] = cb[((i / 16) * 2 + j / 16) * 256 + (i % 16) * 16 + j % 16];
    }
}

// Output columns per panel: BF16_NC, or fewer when that leaves fewer than two panels per
// thread (N = 768 on 2 threads: 4 panels of 192, not 3 of 256 where one thread would do two).
// In bwd_x the panel is a range of W's columns, converted row by row: whole blocks of W's dtype
// (a multiple of `unit`, up to 256 for the k-quants; BF16_NC is a multiple of 256).
static int64_t panel_cols(int64_t NO, int nthr, int64_t unit) {
    int64_t nc = bf16_round_up((NO + 2 * nthr - 1) / (2 * nthr), unit);
    return nc < unit ? unit : nc > BF16_NC ? BF16_NC : nc;
}

void lt_gemm_bf16_amx(float *C,        // (M, NO), ldc
                      int64_t ldc,
                      const float *A,  // (M, R), lda
                      int64_t lda, int64_t M,
                      const lt_mat *W, // (NO, R) when w_rows_are_out, else (R, NO)
                      bool w_rows_are_out, bool accumulate, void *ws, int nthr) {
    int64_t NO = w_rows_are_out ? W->rows : W->cols;
    int64_t R = w_rows_are_out ? W->cols : W->rows;
    int64_t Mp = bf16_round_up(M, 32), MB = Mp / 32;
    int64_t kcp = bf16_round_up(R < BF16_KC ? R : BF16_KC, 32);
    int64_t blk = lt_dtype_block(W->dtype), unit = !w_rows_are_out && blk > 32 ? blk : 32;
    int64_t nc = panel_cols(NO, nthr, unit), NP = (NO + nc - 1) / nc;
    uint16_t *ap = ws, *bps = ap + Mp * kcp;
    (void)nthr;
    OMP_PRAGMA(omp parallel num_threads(nthr))
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), T = omp_get_num_threads();
#endif
        uint16_t *bp = bps + (int64_t)t * BF16_NC * kcp;
        tile_setup();
        for (int64_t k0 = 0; k0 < R; k0 += BF16_KC) {
            int64_t kn = R - k0 < BF16_KC ? R - k0 : BF16_KC, KS = (kn + 31) / 32;
            bool load_c = accumulate || k0 > 0;
            pack_a(ap, A + k0, lda, M, Mp, kn, KS); // (ends with a barrier)
            for (int64_t p = t; p < NP; p += T) {
                int64_t n0 = p * nc, nn = NO - n0 < nc ? NO - n0 : nc;
                int64_t NB = (nn + 31) / 32, NT = 2 * NB;
                if (w_rows_are_out) pack_b_fwd(bp, W, n0, nn, NT, k0, kn, KS);
                else pack_b_bwd(bp, W, n0, nn, NT, k0, kn, KS);
                for (int64_t mb = 0; mb < MB; mb++)
                    for (int64_t nb = 0; nb < NB; nb++)
                        block_32x32(C + mb * 32 * ldc + n0 + nb * 32, ldc, M - mb * 32,
                                    nn - nb * 32, load_c, ap + mb * 2 * KS * TILE_ELEMS,
                                    bp + nb * 2 * KS * TILE_ELEMS, KS);
            }
            OMP_PRAGMA(omp barrier) // the next chunk's pack_a overwrites ap
        }
    }
}
