/*
 * train.h - AdamW, learning-rate schedules, gradient clipping and the training loop with
 * gradient accumulation, evaluation, metrics JSONL and resumable checkpoints.
 *
 * Semantics follow PyTorch and the HF Trainer so that runs can be compared step for step:
 *  - AdamW: torch.optim.AdamW (decoupled decay p *= 1 - lr*wd, bias-corrected moments,
 *    denom = sqrt(v)/sqrt(1-b2^t) + eps).
 *  - schedules: transformers get_{constant,linear,cosine}_schedule_with_warmup (lr at optimizer
 *    step s, counting from 0, is lr * lambda(s)).
 *  - clipping: torch.nn.utils.clip_grad_norm_ (coef = max/(norm+1e-6), clamped to 1).
 *  - accumulation: the loss of a step is the sum of token losses over its micro-batches divided
 *    by the number of loss tokens in all of them (the Trainer's num_items_in_batch).
 * Checkpoints hold the adapter, both Adam moments, the step, the data position and the config,
 * in one safetensors file written atomically: a run killed at any moment resumes from the last
 * checkpoint and ends with the same adapter as an uninterrupted run.
 */
#ifndef LT_TRAIN_H
#define LT_TRAIN_H

#include "data/data.h"
#include "lora/lora.h"

typedef enum { LT_SCHED_CONSTANT = 0, LT_SCHED_LINEAR, LT_SCHED_COSINE } lt_sched_kind;

typedef struct lt_train_opts {
    float lr, beta1, beta2, eps, weight_decay, max_grad_norm; // max_grad_norm <= 0: no clipping
    lt_sched_kind sched;
    int warmup_steps;   // used when > 0, else warmup_ratio * total steps (rounded up)
    float warmup_ratio;
    int64_t max_steps;  // > 0 overrides epochs
    int epochs;
    int B, T, grad_accum;
    bool checkpoint_activations;
    uint64_t seed;
    int eval_every;     // steps; 0: only at the end (when a validation set is given)
    int save_every;     // steps between resumable checkpoints; 0: none
    const char *out_dir;      // adapter (PEFT files) and checkpoint.safetensors go here
    const char *metrics_path; // JSONL, or NULL
    bool resume;        // continue from out_dir/checkpoint.safetensors when present
    int64_t stop_after; // testing hook: return after this many steps (simulates a kill); 0: off
    bool quiet;         // no progress output
} lt_train_opts;

void lt_train_opts_default(lt_train_opts *o);

// lr multiplier at optimizer step `step` (0-based) of `total`.
float lt_sched_factor(lt_sched_kind k, int64_t step, int64_t warmup, int64_t total);
int64_t lt_train_warmup_steps(const lt_train_opts *o, int64_t total);
// Total optimizer steps for a dataset of n examples.
int64_t lt_train_total_steps(const lt_train_opts *o, int64_t n);

// One AdamW update of n parameters at step t (1-based).
void lt_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1,
                     float b2, float eps, float wd, int64_t t);
// L2 norm of the gradient (accumulated in double); clips in place like clip_grad_norm_ and
// returns the pre-clip norm.
double lt_clip_grad_norm(float *g, int64_t n, float max_norm);

typedef struct lt_train_result {
    int64_t steps;
    double first_loss, last_loss;   // training loss of the first and last step
    double first_eval, last_eval;   // validation loss (NaN when none)
    double tokens_per_s;            // training tokens (non-pad) per second
    double seconds;
    long peak_rss_kb;
} lt_train_result;

// Trains the attached adapter `a` of model m on `train` (and evaluates on `val`, may be NULL or
// empty), writing metrics, checkpoints and the final adapter (PEFT files in out_dir).
lt_status lt_train(lt_model *m, lt_adapter *a, const lt_dataset *train, const lt_dataset *val,
                   const lt_train_opts *o, lt_train_result *res, lt_err *err);

// Mean token loss of the model (with whatever adapter is attached) over a dataset.
lt_status lt_eval_dataset(lt_model *m, const lt_dataset *d, int B, int T, int32_t pad_id,
                          double *mean_loss, lt_err *err);

#endif
