/*
 * gemm_bf16.c - bf16 mixed-precision matmuls over frozen weights (what torch.autocast(bf16) does
 * to a linear layer): y = bf16(x) @ bf16(W)^T and dx += bf16(dy) @ bf16(W), products accumulated
 * in f32, outputs f32. Portable part: the process-wide matmul precision, AMX detection, the
 * emulated path and the workspace; the AMX kernel itself is gemm_bf16_amx.c.
 *
 * Dispatch: LT_BF16_AUTO runs the AMX kernel when the CPU has AMX-BF16 and AVX512-BF16 and the
 * kernel granted the tile state (arch_prctl), else the emulation: x and W rounded to bf16 (nearest
 * even) into f32 buffers and multiplied by OpenBLAS sgemm. Products of two bf16 values are exact
 * in f32, so both paths compute the same sum of the same products and differ only by summation
 * order (and the AMX unit's flushing of subnormals). Environment LT_NO_AMX=1 forces emulation.
 * What not: no bf16 outputs (autocast's linear returns bf16; here the output stays f32), no
 * cached bf16 copy of the weights (they are converted tile by tile on each call).
 * Workspace: one buffer owned by this file, grown to the largest call and then reused (a training
 * step allocates nothing after its first), guarded by a mutex so concurrent callers serialise.
 * Reference: torch.autocast CPU op list (linear/matmul run in bf16); Intel SDM CPUID leaf 7.
 */
#include "ops/ops.h"

#include "core/core.h"
#include "ops/gemm_bf16_impl.h"
#include "ops/simd_avx2.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include "ops/ops_omp.h"

// Columns (forward) or rows (bwd_x) of W per slab of the emulated path, as in ops_cpu.c.
#define EMUL_KT 256

// ---------------------------------------------------------------------------------------------
// process-wide precision (like torch.set_float32_matmul_precision): read by lt_linear_fwd and
// lt_linear_bwd_x on every call

static atomic_int matmul_precision = LT_PREC_F32;

void lt_ops_set_matmul_precision(lt_matmul_prec p) { atomic_store(&matmul_precision, (int)p); }

lt_matmul_prec lt_ops_matmul_precision(void) {
    return (lt_matmul_prec)atomic_load(&matmul_precision);
}

// ---------------------------------------------------------------------------------------------
// AMX detection: CPUID says the unit exists, XCR0 says the OS saves tile state, and arch_prctl
// grants this process the right to use it (Linux >= 5.16 makes tile data opt-in per process)

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_ok;

#if defined(__x86_64__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void amx_detect(void) {
#if defined(__x86_64__)
    const char *env = getenv("LT_NO_AMX");
    if (env && env[0] && strcmp(env, "0") != 0) return;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; // OSXSAVE
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24), avx512f = b & (1u << 16);
    if (!amx_bf16 || !amx_tile || !avx512f) return;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return; // AVX512_BF16
    // XCR0: SSE/AVX (1, 2), AVX-512 opmask/ZMM (5, 6, 7), XTILECFG/XTILEDATA (17, 18)
    uint64_t need = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) |
                    (1u << 18);
    if ((xgetbv0() & need) != need) return;
    // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): per process, once
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return;
    amx_ok = true;
#endif
}

bool lt_bf16_amx_available(void) {
    pthread_once(&amx_once, amx_detect);
    return amx_ok;
}

// ---------------------------------------------------------------------------------------------
// workspace

static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ws_buf;
static size_t ws_cap;

// Called with ws_lock held. NULL if the buffer cannot grow to `bytes`.
static void *ws_get(size_t bytes) {
    if (bytes <= ws_cap) return ws_buf;
    lt_free_aligned(ws_buf);
    ws_buf = lt_alloc_aligned(bytes);
    ws_cap = ws_buf ? bytes : 0;
    return ws_buf;
}

void lt_gemm_bf16_release(void) {
    pthread_mutex_lock(&ws_lock);
    lt_free_aligned(ws_buf);
    ws_buf = NULL, ws_cap = 0;
    pthread_mutex_unlock(&ws_lock);
}

// ---------------------------------------------------------------------------------------------
// emulation: round to bf16 in f32 buffers, multiply with sgemm

static inline float round_bf16(float v) { return lt_bf16_to_f32(lt_f32_to_bf16(v)); }

// dst(rows, n) = bf16-rounded src[r * lds + c] for c < n
static void round_rows(float *dst, const float *src, int64_t lds, int64_t rows, int64_t n) {
    OMP_PARALLEL_FOR(if (rows * n >= (1 << 16)))
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < n; c++) dst[r * n + c] = round_bf16(src[r * lds + c]);
}

// dst(r1 - r0, kn) = bf16-rounded W[r0:r1, k0:k0+kn]
static void round_w_slab(float *dst, const lt_mat *W, int64_t r0, int64_t r1, int64_t k0,
                         int64_t kn) {
    OMP_PARALLEL_FOR(if ((r1 - r0) * kn >= (1 << 16)))
    for (int64_t r = r0; r < r1; r++) {
        float *d = dst + (r - r0) * kn;
        simd_mat_row_to_f32(d, W, r, k0, kn);
        for (int64_t c = 0; c < kn; c++) d[c] = round_bf16(d[c]);
    }
}

static bool emul_fwd(float *y, const float *x, const lt_mat *W, int64_t M, bool accumulate) {
    int64_t in = W->cols, out = W->rows, kt = in < EMUL_KT ? in : EMUL_KT;
    float *xb = ws_get((size_t)(M + out) * (size_t)kt * sizeof(float));
    if (!xb) return false;
    float *wb = xb + M * kt;
    for (int64_t k0 = 0; k0 < in; k0 += EMUL_KT) {
        int64_t kn = in - k0 < EMUL_KT ? in - k0 : EMUL_KT;
        round_rows(xb, x + k0, in, M, kn);
        round_w_slab(wb, W, 0, out, k0, kn);
        lt_sgemm(false, true, M, out, kn, 1.0f, xb, kn, wb, kn,
                 k0 == 0 && !accumulate ? 0.0f : 1.0f, y, out);
    }
    return true;
}

static bool emul_bwd_x(float *dx, const float *dy, const lt_mat *W, int64_t M) {
    int64_t in = W->cols, out = W->rows, rt = out < EMUL_KT ? out : EMUL_KT;
    float *dyb = ws_get((size_t)(M + in) * (size_t)rt * sizeof(float));
    if (!dyb) return false;
    float *wb = dyb + M * rt;
    for (int64_t r0 = 0; r0 < out; r0 += EMUL_KT) {
        int64_t rn = out - r0 < EMUL_KT ? out - r0 : EMUL_KT;
        round_rows(dyb, dy + r0, out, M, rn);
        round_w_slab(wb, W, r0, r0 + rn, 0, in);
        lt_sgemm(false, false, M, in, rn, 1.0f, dyb, rn, wb, in, 1.0f, dx, in);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// entry points

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static bool use_amx(lt_bf16_impl impl) {
    if (impl == LT_BF16_EMUL) return false;
    return lt_bf16_amx_available(); // LT_BF16_AMX without AMX falls back to the emulation
}

bool lt_gemm_bf16_fwd(float *y,        // (M, out)
                      const float *x,  // (M, in)
                      const lt_mat *W, // (out, in)
                      int64_t M, bool accumulate, lt_bf16_impl impl) {
    if (M <= 0 || W->rows <= 0) return true;
    if (W->cols <= 0) {
        if (!accumulate) memset(y, 0, (size_t)(M * W->rows) * sizeof(float));
        return true;
    }
    bool ok;
    pthread_mutex_lock(&ws_lock);
    if (use_amx(impl)) {
        int nthr = max_threads();
        void *ws = ws_get(bf16_amx_ws_bytes(M, W->cols, nthr));
        if ((ok = ws != NULL))
            lt_gemm_bf16_amx(y, W->rows, x, W->cols, M, W, true, accumulate, ws, nthr);
    } else {
        ok = emul_fwd(y, x, W, M, accumulate);
    }
    pthread_mutex_unlock(&ws_lock);
    return ok;
}

bool lt_gemm_bf16_bwd_x(float *dx,       // (M, in) +=
                        const float *dy, // (M, out)
                        const lt_mat *W, // (out, in)
                        int64_t M, lt_bf16_impl impl) {
    if (M <= 0 || W->rows <= 0 || W->cols <= 0) return true;
    bool ok;
    pthread_mutex_lock(&ws_lock);
    if (use_amx(impl)) {
        int nthr = max_threads();
        void *ws = ws_get(bf16_amx_ws_bytes(M, W->rows, nthr));
        if ((ok = ws != NULL)) lt_gemm_bf16_amx(dx, W->cols, dy, W->rows, M, W, false, true, ws, nthr);
    } else {
        ok = emul_bwd_x(dx, dy, W, M);
    }
    pthread_mutex_unlock(&ws_lock);
    return ok;
}
