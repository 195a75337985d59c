/*
 * plan.h - the memory and speed planner behind `loratune train --plan`: the peak resident memory
 * and the tokens/s a LoRA training run will have, worked out before it runs.
 *
 * Memory is a sum of parts, each from the code that will allocate it or from a measurement:
 *   base        measured: the process before the model (libraries, BLAS and thread buffers);
 *   model load  measured: what loading the model made resident (headers, tables, any copies);
 *   tok + data  measured: the tokenizer and the tokenized data set;
 *   weights     the mmapped base weights training reads, page by page (every projection, the
 *               norms, the LM head, the embedding rows of the tokens in the data), or the 4-bit
 *               copy of the projections with --load-in-4bit (bitsandbytes' layout, quant.c);
 *   lora        LoRA parameters and their gradients (f32);
 *   optimizer   AdamW moments: 8 bytes per parameter, or adamw_8bit's blockwise states;
 *   activations lt_ctx_plan_bytes: the same sizing code lt_ctx_new allocates with (plus the
 *               evaluation context when there is a validation set);
 *   loop        the training loop's batch buffers.
 * Speed: the GEMM FLOPs of a step counted as bench/bench_train.c counts them (forward,
 * activation gradients where something below is trainable, LoRA, causal attention, LM head on
 * the rows with loss), divided by a measured sgemm rate times an efficiency calibrated on the
 * bench configs (see lt_plan_efficiency); with --grad-checkpoint the recomputed forward is added
 * to the time (not to the FLOP count). bf16 compute (--compute bf16) is not modelled.
 * What not: no allocation of the planned buffers, no quantisation, no training; page-cache
 * effects (a model read through mmap also fills the page cache, which RSS does not count).
 */
#ifndef LT_PLAN_H
#define LT_PLAN_H

#include "lora/lora.h"
#include "model/model.h"
#include "train/train.h"

typedef struct lt_plan_opts {
    int B, T, accum;         // micro-batch, sequence length, accumulation steps
    bool checkpoint;         // --grad-checkpoint
    bool load_4bit;          // --load-in-4bit (planned: the model passed in is not quantised)
    bool double_quant;       // with load_4bit
    lt_optim_kind optim;
    bool eval;               // a validation set: lt_train holds an evaluation context too
    int64_t n_examples;      // training examples (the loop keeps a permutation of them)
} lt_plan_opts;

// What the caller measured (bytes); zeros where unknown.
typedef struct lt_plan_measured {
    size_t base, model_load, tok_data;
    const uint8_t *rows_used; // (n_vocab) nonzero for the token ids in the data; NULL: all rows
    double sgemm_gflops;      // lt_plan_sgemm_gflops(); 0: no speed estimate
} lt_plan_measured;

typedef struct lt_plan {
    size_t base, model_load, tok_data; // as measured
    size_t weights, lora, optim, acts, loop;
    size_t total;                      // the planned peak RSS
    double flops_per_token;            // GEMM FLOPs of a training step per token
    double efficiency;                 // assumed fraction of the sgemm rate reached
    double tokens_per_s;               // 0 without a measured sgemm rate
} lt_plan;

// Plans a run of model m (not quantised) with adapter a (attached to m) under options o.
// Errors: LT_ERR_ARG for a bad shape, LT_ERR_OOM (the 8-bit state is sized by building it).
lt_status lt_plan_make(lt_model *m, const lt_adapter *a, const lt_plan_opts *o,
                       const lt_plan_measured *ms, lt_plan *out, lt_err *err);

// GEMM FLOPs of one training step of B x T tokens (bench_train's convention).
double lt_plan_step_flops(const lt_model *m, const lt_adapter *a, int B, int T);
// Fraction of the sgemm rate a training step reaches for this model (calibration in plan.c).
double lt_plan_efficiency(const lt_model *m);
// A quick sgemm rate (GFLOP/s, n = 1536, best of 2) on all threads; it also runs one small
// sgemm on every OpenMP thread first, so the BLAS buffers training will use are resident when
// the caller measures its baseline afterwards.
double lt_plan_sgemm_gflops(void);
// The process's current resident set (VmRSS) in bytes, 0 if unknown.
size_t lt_plan_rss_bytes(void);
// MemAvailable from /proc/meminfo in bytes, 0 if unknown.
size_t lt_plan_mem_available(void);

#endif
