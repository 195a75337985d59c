/*
 * dist.c - the collectives of dist.h over MPI (built with -DLT_MPI, see the Makefile's MPI
 * switch), or their single-process versions. Only this file includes mpi.h.
 * Reference: MPI 3.1 standard, sections 5.8 (Alltoallv), 5.7 (Allgatherv), 5.9.1 (reduction
 * order: "the order of evaluation ... may depend on the algorithm", which is why we do not use
 * MPI_Allreduce for floating-point sums).
 */
#include "dist/dist.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef LT_MPI
#include <mpi.h>
#endif

// Process-wide, like MPI's own state: written once by lt_dist_init, read everywhere after.
static int g_rank = 0, g_size = 1;
static bool g_mpi = false;     // MPI_Init was called by us
static uint64_t g_sent = 0;    // bytes sent by the sums
static bool g_failed = false;  // lt_dist_agree returned a failure
static void *g_scratch = NULL; // reduce-scatter receive buffer
static size_t g_scratch_bytes = 0;
static int *g_counts = NULL;   // (4 * size) counts and offsets of the sums

bool lt_dist_enabled(void) {
#ifdef LT_MPI
    return true;
#else
    return false;
#endif
}

// The size of the job this process was launched into by an MPI launcher, or 0 when none.
static long launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return getenv("PMIX_RANK") ? 1 : 0; // PMIx without a size variable: a launcher, size unknown
}

#ifdef LT_MPI
// mpirun binds every rank to one core (2 ranks or fewer) or one socket by default: OpenMP
// threads beyond the cores a rank may run on then share them, slower than a single thread.
static void warn_binding(void) {
#if defined(_OPENMP) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    int cores = CPU_COUNT(&set), threads = omp_get_max_threads();
    if (threads > cores)
        lt_warn("rank %d runs %d OpenMP threads on %d core%s it is bound to: the threads share "
                "them; launch with `mpirun --bind-to none` (or --map-by ...:PE=%d), or set "
                "OMP_NUM_THREADS=%d", g_rank, threads, cores, cores == 1 ? "" : "s", threads, cores);
#endif
}
#endif

lt_status lt_dist_init(int *argc, char ***argv, lt_err *err) {
    long n = launcher_size();
    if (n == 0) return LT_OK; // started directly: one process, MPI never initialised
#ifdef LT_MPI
    // OpenMP threads do the compute; only the main thread calls MPI.
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return lt_err_set(err, LT_ERR_IO, "MPI_Init failed (launched by mpirun with %ld ranks)", n);
    g_mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (!(g_counts = lt_alloc(sizeof(int) * 4 * (size_t)g_size)))
        lt_dist_abort("out of memory"); // the other ranks are past MPI_Init: stop them too
    warn_binding();
    return LT_OK;
#else
    (void)argc, (void)argv;
    if (n > 1)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "launched by mpirun with %ld ranks, but this "
                          "loratune was built without MPI (rebuild with `make MPI=1`; every rank "
                          "would otherwise train alone)", n);
    return LT_OK;
#endif
}

void lt_dist_finalize(void) {
    lt_free(g_scratch), lt_free(g_counts);
    g_scratch = NULL, g_scratch_bytes = 0, g_counts = NULL;
#ifdef LT_MPI
    if (g_mpi) MPI_Finalize();
#endif
    g_mpi = false, g_rank = 0, g_size = 1;
}

int lt_dist_rank(void) { return g_rank; }
int lt_dist_size(void) { return g_size; }
uint64_t lt_dist_bytes_sent(void) { return g_sent; }
bool lt_dist_failed_together(void) { return g_failed; }

_Noreturn void lt_dist_abort(const char *msg) {
    fprintf(stderr, "loratune: rank %d of %d: %s\n", g_rank, g_size, msg);
    fflush(stderr);
#ifdef LT_MPI
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
    exit(1);
}

// The receive buffer of a sum of n elements of es bytes: this rank's chunk from every rank.
static size_t scratch_need(int64_t n, size_t es) {
    return (size_t)(n / g_size + 1) * (size_t)g_size * es;
}

static lt_status grow_scratch(size_t need, lt_err *err) {
    if (need <= g_scratch_bytes) return LT_OK;
    void *p = lt_realloc(g_scratch, need);
    if (!p) return lt_err_set(err, LT_ERR_OOM, "out of memory for a %zu-byte reduce buffer", need);
    g_scratch = p, g_scratch_bytes = need;
    return LT_OK;
}

lt_status lt_dist_reserve(int64_t n, lt_err *err) {
    if (g_size == 1 || n <= 0) return LT_OK;
    return grow_scratch(scratch_need(n, sizeof(double)), err);
}

#ifdef LT_MPI
// Rank k owns elements [off(k), off(k) + cnt(k)): n split as evenly as possible.
static int chunk_cnt(int64_t n, int k) { return (int)(n / g_size + (k < n % g_size)); }
static int chunk_off(int64_t n, int k) {
    return (int)((n / g_size) * k + (k < n % g_size ? k : n % g_size));
}

// The fixed-order sum of dist.h for f32 or f64 elements.
static lt_status sum_ordered(void *buf, int64_t n, bool f64, lt_err *err) {
    if (g_size == 1 || n == 0) return LT_OK;
    if (n < 0 || n > INT_MAX)
        return lt_err_set(err, LT_ERR_ARG, "cannot sum %lld elements across ranks (at most %d)",
                          (long long)n, INT_MAX);
    size_t es = f64 ? sizeof(double) : sizeof(float);
    int me = g_rank, mine = chunk_cnt(n, me);
    // Returning here would leave the other ranks waiting in the exchange below: callers reserve
    // the buffer in their setup (lt_dist_reserve), so this is the last resort.
    if (grow_scratch(scratch_need(n, es), err)) lt_dist_abort(err ? err->msg : "out of memory");
    int *cnt = g_counts, *off = cnt + g_size, *rcnt = off + g_size, *roff = rcnt + g_size;
    for (int k = 0; k < g_size; k++) {
        cnt[k] = chunk_cnt(n, k), off[k] = chunk_off(n, k);
        rcnt[k] = mine, roff[k] = k * mine;
    }
    MPI_Datatype t = f64 ? MPI_DOUBLE : MPI_FLOAT;
    lt_status st = LT_OK;
    // 1. reduce-scatter: rank me receives chunk me of every rank, in rank order in g_scratch
    if (MPI_Alltoallv(buf, cnt, off, t, g_scratch, rcnt, roff, t, MPI_COMM_WORLD) != MPI_SUCCESS) {
        st = lt_err_set(err, LT_ERR_IO, "MPI_Alltoallv of %lld elements failed", (long long)n);
        goto done;
    }
    // 2. sum its chunk in rank order: ((x_0 + x_1) + x_2) + ... for every element
    if (f64) {
        const double *s = g_scratch;
        double *d = (double *)buf + off[me];
        for (int i = 0; i < mine; i++) {
            double acc = s[i];
            for (int k = 1; k < g_size; k++) acc += s[(size_t)k * (size_t)mine + (size_t)i];
            d[i] = acc;
        }
    } else {
        const float *s = g_scratch;
        float *d = (float *)buf + off[me];
        for (int i = 0; i < mine; i++) {
            float acc = s[i];
            for (int k = 1; k < g_size; k++) acc += s[(size_t)k * (size_t)mine + (size_t)i];
            d[i] = acc;
        }
    }
    // 3. allgather: every rank gets every summed chunk
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, t, buf, cnt, off, t, MPI_COMM_WORLD) != MPI_SUCCESS) {
        st = lt_err_set(err, LT_ERR_IO, "MPI_Allgatherv of %lld elements failed", (long long)n);
        goto done;
    }
    g_sent += ((uint64_t)(n - mine) + (uint64_t)mine * (uint64_t)(g_size - 1)) * es;
done:
    return st;
}
#endif

lt_status lt_dist_sum_f32(float *buf, int64_t n, lt_err *err) {
#ifdef LT_MPI
    return sum_ordered(buf, n, false, err);
#else
    (void)buf, (void)n, (void)err;
    return LT_OK;
#endif
}

lt_status lt_dist_sum_f64(double *buf, int n, lt_err *err) {
#ifdef LT_MPI
    return sum_ordered(buf, n, true, err);
#else
    (void)buf, (void)n, (void)err;
    return LT_OK;
#endif
}

lt_status lt_dist_bcast(void *buf, size_t bytes, int root, lt_err *err) {
#ifdef LT_MPI
    if (g_size == 1 || bytes == 0) return LT_OK;
    // MPI counts are ints: large buffers go in pieces of at most 1 GiB
    for (size_t o = 0; o < bytes;) {
        size_t k = bytes - o < ((size_t)1 << 30) ? bytes - o : ((size_t)1 << 30);
        if (MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return lt_err_set(err, LT_ERR_IO, "MPI_Bcast of %zu bytes from rank %d failed", bytes,
                              root);
        o += k;
    }
#else
    (void)buf, (void)bytes, (void)root, (void)err;
#endif
    return LT_OK;
}

lt_status lt_dist_agree(lt_status st, lt_err *err) {
#ifdef LT_MPI
    if (g_size == 1) return st;
    // the lowest failing rank (an integer minimum: exact whatever the order)
    int mine = st ? g_rank : g_size, first = g_size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        lt_dist_abort("MPI_Allreduce of the error flags failed");
    if (first == g_size) return LT_OK;
    lt_err e = {0};
    if (g_rank == first) {
        e.code = st;
        snprintf(e.msg, sizeof e.msg, "%s", err && err->msg[0] ? err->msg : lt_status_name(st));
    }
    if (MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, MPI_COMM_WORLD) != MPI_SUCCESS)
        lt_dist_abort("MPI_Bcast of an error message failed");
    g_failed = true;
    return lt_err_set(err, e.code ? e.code : LT_ERR_IO, "rank %d: %s", first, e.msg);
#else
    return st;
#endif
}
