/*
 * dist.h - data-parallel training across processes and machines: the few collectives the
 * training loops need, over MPI (OpenMPI) when built with LT_MPI, or for a single process.
 *
 * A job is `mpirun -np N loratune train ...`: N ranks run the same program on the same data.
 * Every rank holds the frozen base and an identical copy of the trainable parameters; each
 * global batch is split across ranks; gradients are summed (lt_dist_sum_f32) before clipping and
 * the optimizer step, so every rank applies the same update and stays identical.
 *
 * Without LT_MPI (or when not started by mpirun) the same API describes one process: rank 0 of
 * size 1, the sums are identities, broadcasts do nothing, so callers need no #ifdefs.
 *
 * Determinism: MPI_Allreduce(MPI_SUM) may add the ranks' contributions in an order that depends
 * on the algorithm MPI picks (message size, process count, topology), so two runs could differ
 * in the last bits. lt_dist_sum_f32/f64 instead add, for every element, rank 0's value, then rank
 * 1's, ... in rank order, always: a reduce-scatter (MPI_Alltoallv: rank k receives chunk k of
 * every rank and sums it in rank order) followed by an MPI_Allgatherv of the summed chunks. That
 * moves 2 (N-1)/N of the buffer per rank, the same as a ring allreduce, and needs one buffer-sized
 * scratch. Not here: overlapping communication with compute, or compression.
 *
 * State: rank and size are process-wide (as MPI's own are), set once by lt_dist_init.
 */
#ifndef LT_DIST_H
#define LT_DIST_H

#include "core/core.h"

#include <stdint.h>

// Starts MPI when this process was launched by mpirun/mpiexec (OpenMPI's OMPI_COMM_WORLD_SIZE
// or PMIx/PMI variables are set); a program started directly stays a single process and never
// initialises MPI. Returns LT_ERR_UNSUPPORTED when launched with N > 1 ranks by a binary built
// without MPI (N independent copies would each train alone), LT_ERR_IO when MPI_Init fails.
lt_status lt_dist_init(int *argc, char ***argv, lt_err *err);
// Ends MPI (when started). Call once at exit on the normal path.
void lt_dist_finalize(void);
int lt_dist_rank(void); // 0 .. size-1; 0 in a single process
int lt_dist_size(void); // ranks in the job; 1 in a single process
bool lt_dist_enabled(void); // built with MPI support

// Sums buf(n) element-wise over all ranks, in rank order (see above); every rank gets the sum.
// Uses a scratch of about n elements, kept for the next sums (lt_dist_reserve; lt_dist_finalize
// frees it). Errors: LT_ERR_ARG (n > INT_MAX), LT_ERR_IO (an MPI call failed).
lt_status lt_dist_sum_f32(float *buf, int64_t n, lt_err *err);
lt_status lt_dist_sum_f64(double *buf, int n, lt_err *err); // small buffers (counts, losses)
// Makes sure the sums of up to n elements (f32 or f64) need no allocation: call it in a setup
// phase whose failures the ranks agree on (lt_dist_agree), because a sum that cannot allocate
// cannot tell the other ranks, which wait for it: it stops the job (lt_dist_abort). LT_ERR_OOM.
lt_status lt_dist_reserve(int64_t n, lt_err *err);
// Copies buf(bytes) of rank root to every rank.
lt_status lt_dist_bcast(void *buf, size_t bytes, int root, lt_err *err);

// Agreement at a synchronisation point: every rank passes its own status (and err when it
// failed). Returns LT_OK when all ranks succeeded; otherwise every rank returns the status of
// the lowest failing rank k with err set to "rank k: <its message>" (in a single process: st and
// err unchanged). All ranks must call it the same number of times.
lt_status lt_dist_agree(lt_status st, lt_err *err);
// Whether an lt_dist_agree call has returned a failure (every rank knows of it).
bool lt_dist_failed_together(void);

// Prints "loratune: rank R: msg" to stderr and stops the whole job (MPI_Abort). For failures
// where the other ranks cannot be reached through lt_dist_agree. In a single process: exit(1).
_Noreturn void lt_dist_abort(const char *msg);

// Bytes this rank has sent through lt_dist_sum_* since lt_dist_init (for benchmarks).
uint64_t lt_dist_bytes_sent(void);

#endif
