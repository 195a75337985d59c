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
// adamw: torch.optim.AdamW with f32 moments; adamw_8bit: bitsandbytes AdamW8bit (optim8.c).
typedef enum { LT_OPTIM_ADAMW = 0, LT_OPTIM_ADAMW_8BIT } lt_optim_kind;

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
    lt_optim_kind optim; // default LT_OPTIM_ADAMW
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
    size_t optim_state_bytes;       // bytes of optimizer state (both moments and their scales)
} lt_train_result;

// Trains the attached adapter `a` of model m on `train` (and evaluates on `val`, may be NULL or
// empty), writing metrics, checkpoints and the final adapter (PEFT files in out_dir). Under
// mpirun (dist.h) every rank calls it with the same arguments and data: micro-batch mb of each
// step is computed by rank mb % N, and rank 0 alone writes files and prints; a failure on any
// rank is returned on every rank, naming the rank.
lt_status lt_train(lt_model *m, lt_adapter *a, const lt_dataset *train, const lt_dataset *val,
                   const lt_train_opts *o, lt_train_result *res, lt_err *err);

// Mean token loss of the model (with whatever adapter is attached) over a dataset. In a job of
// several ranks every rank must call it: the batches are split across ranks and the sums gathered.
lt_status lt_eval_dataset(lt_model *m, const lt_dataset *d, int B, int T, int32_t pad_id,
                          double *mean_loss, lt_err *err);


// ---------------------------------------------------------------------------------------------
// pieces of the loop, shared by lt_train and lt_cls_train

// Optimizer state and data position of a run.
typedef struct lt_train_state {
    int64_t step;   // optimizer steps done
    int64_t epoch;  // current epoch (its order is lt_dataset_order(seed, epoch))
    int64_t cursor; // next position in that order
    float *m, *v;   // Adam moments (n_params each), owned
    struct lt_adamw8 *q8; // adamw_8bit (lt_train_state_use_8bit): its moments, owned; m, v NULL
} lt_train_state;
// Zeroed position and moments for n_params parameters. Release with lt_train_state_deinit
// (which also accepts a zeroed struct).
lt_status lt_train_state_init(lt_train_state *s, int64_t n_params, lt_err *err);
void lt_train_state_deinit(lt_train_state *s);
// Resumable checkpoint: one safetensors file written atomically holding the adapter's params,
// both moments, and step/epoch/cursor/seed as metadata. load checks it belongs to this run (same
// parameter count and seed; LT_ERR_ARG otherwise) and restores params, moments and position.
// hook (may be NULL) carries the extra state of a loop that has more than lt_train: its save adds
// tensors and metadata to the writer (their data must stay valid until the file is written), its
// load reads them back from the open file after the common part was restored.
typedef struct lt_ckpt_hook {
    lt_status (*save)(lt_st_writer *w, void *ud, lt_err *err);
    lt_status (*load)(const lt_safetensors *f, void *ud, lt_err *err);
    void *ud;
} lt_ckpt_hook;
lt_status lt_train_checkpoint_save(const char *path, const lt_adapter *a, const lt_train_state *s,
                                   const lt_train_opts *o, const lt_ckpt_hook *hook, lt_err *err);
lt_status lt_train_checkpoint_load(const char *path, lt_adapter *a, lt_train_state *s,
                                   const lt_train_opts *o, const lt_ckpt_hook *hook, lt_err *err);
// Data parallel (dist.h; no-ops in a single process). sync_state copies rank 0's parameters,
// optimizer moments and position (step, epoch, cursor) to every rank: after a resume only rank 0
// has read the checkpoint. reduce ends a step: every rank passes its partial sums(n_sums < 15)
// and its own status; when all succeeded, sums and a->grads (a may be NULL: sums only) become
// their totals over ranks (fixed rank order) and LT_OK is returned; when any rank failed, every
// rank returns that failure ("rank k: ..."), so all stop at the same step. Every rank must call
// both at the same points.
lt_status lt_train_sync_state(lt_adapter *a, lt_train_state *s, lt_err *err);
lt_status lt_train_reduce(lt_adapter *a, double *sums, int n_sums, lt_status local, lt_err *err);
// The next `count` examples of the epoch order perm (of n examples): idx[i] = perm[cursor++], or
// -1 (an all-padding row) past the end of the epoch.
void lt_train_take(lt_train_state *s, const int64_t *perm, int64_t n, int64_t *idx, int count);
// One optimizer step on the gradients accumulated in a->grads: clipping (o->max_grad_norm), the
// schedule's rate at s->step, AdamW, step++; when the epoch order is used up, perm becomes the
// next epoch's. Returns the gradient norm before clipping; *lr (may be NULL) gets the rate used.
double lt_train_apply(lt_adapter *a, lt_train_state *s, const lt_train_opts *o, int64_t total,
                      int64_t warmup, int64_t *perm, int64_t n, float *lr);


// ---------------------------------------------------------------------------------------------
// sequence classification (cls_train.c): LoRA plus the linear head "score" (n_labels, C) on the
// last non-pad token, as transformers' *ForSequenceClassification + PEFT modules_to_save.
// Loss: cross-entropy, optionally class-weighted; a step's loss is the weighted mean over all the
// rows of its micro-batches, sum_i w[y_i] ce_i / sum_i w[y_i] (torch CrossEntropyLoss(weight)
// over the effective batch). Evaluation reports the same quantity.
#include "eval/cls_metrics.h"

// Tokenised classification examples: x.ex[i].ids is an example's text (x.ex[i].labels unused),
// y[i] its class in [0, n_labels), or -1 when unknown (prediction only).
typedef struct lt_cls_data {
    lt_dataset x;
    int32_t *y;   // (x.n), owned
    int64_t cap_y;
    int n_labels;
} lt_cls_data;
void lt_cls_data_init(lt_cls_data *d, int n_labels);
void lt_cls_data_deinit(lt_cls_data *d); // also accepts a zeroed struct
// Appends a copy of ids[0..len) (len >= 1) with class y (-1 or in [0, n_labels)).
lt_status lt_cls_data_add(lt_cls_data *d, const int32_t *ids, int len, int32_t y, lt_err *err);
// Examples per class into counts (n_labels); unknown classes are not counted.
void lt_cls_data_counts(const lt_cls_data *d, int64_t *counts);
// Appends copies of the examples i of src with keep[i] == part into dst (same n_labels).
lt_status lt_cls_data_take(const lt_cls_data *src, const int8_t *part_of, int8_t part,
                           lt_cls_data *dst, lt_err *err);

// The label set: names[k] is class k's name.
typedef struct lt_cls_labels {
    int n;
    char **names; // (n), owned
} lt_cls_labels;
// The distinct values of labels[0..n), ordered numerically when all are integers (e.g. "0".."8"),
// else by byte order (as scikit-learn's LabelEncoder). LT_ERR_ARG when there are none, or more
// than 65536.
lt_status lt_cls_labels_from_values(lt_cls_labels *l, const char *const *labels, int64_t n,
                                    lt_err *err);
// An explicit, ordered list "ham,spam" (no duplicates, none empty).
lt_status lt_cls_labels_parse(lt_cls_labels *l, const char *list, lt_err *err);
// Reads "labels" (an array of strings) of a labels.json object.
lt_status lt_cls_labels_from_json(lt_cls_labels *l, const cJSON *j, const char *what, lt_err *err);
int lt_cls_labels_find(const lt_cls_labels *l, const char *name); // class id or -1
void lt_cls_labels_deinit(lt_cls_labels *l);

struct lt_tokenizer;
// Tokenises one text for classification with the tokenizer's special tokens (BOS), REPLACING
// out's content. When it is longer than max_len tokens, the first max_len - tail tokens are kept
// with the last `tail` ones, so that a cue ending the prompt ("...\nLabel:") survives: the head
// reads the last token. *truncated tells whether it cut (may be NULL).
lt_status lt_cls_encode(const struct lt_tokenizer *tok, const char *text, size_t len, int max_len,
                        int tail, lt_ids *out, bool *truncated, lt_err *err);

// Stratified split: each class's examples are put in a seeded random order and cut at the
// rounded cumulative fractions fracs[0..n_parts) (normalised to sum 1), so every part keeps the
// class proportions. part_of[i] gets the part of example i; examples with y < 0 get -1.
// LT_ERR_ARG for n_parts outside [1, 8] or fractions that are negative or all 0.
lt_status lt_cls_split(const int32_t *y, int64_t n, int n_labels, const double *fracs,
                       int n_parts, uint64_t seed, int8_t *part_of, lt_err *err);
// Subsample: keeps at most cap examples of each class (cap <= 0: as many as the smallest class
// that has any, i.e. a balanced set), drawn by a seeded shuffle. keep[i] = 0 or 1.
lt_status lt_cls_subsample(const int32_t *y, int64_t n, int n_labels, int64_t cap, uint64_t seed,
                           int8_t *keep, lt_err *err);
// Class weights: "none" (all NULL: *w untouched, returns false), "auto" (scikit-learn's
// "balanced": n / (K * count_k); 0 for a class without examples) or an explicit list
// "w1,w2,..." of K finite non-negative numbers. Returns true when *w was filled.
lt_status lt_cls_class_weights(const char *spec, const int64_t *counts, int K, float *w,
                               bool *filled, lt_err *err);

// Scores data d with model m and its attached adapter through head h (n_labels, pad_id, w and
// class_w are used; labels/gw ignored). Batches of B rows of T tokens; c is a context for (B, T)
// (NULL: one is created for the call). met (initialised for h->n_labels, may be NULL) is reset and
// then counts every example with y >= 0, with met->loss the (weighted) mean loss over them.
// probs (d->x.n, n_labels) gets softmax probabilities (may be NULL).
lt_status lt_cls_evaluate(lt_model *m, lt_ctx *c, int B, int T, const lt_cls_head *h,
                          const lt_cls_data *d, lt_cls_metrics *met, float *probs, lt_err *err);

typedef struct lt_cls_train_opts {
    lt_train_opts t;          // optimizer, schedule, B/T/accumulation, steps, eval_every,
                              // save_every, resume, seed, out_dir, metrics_path, quiet, stop_after
    int32_t pad_id;           // padding and pooling id (transformers' pad_token_id); -1: pad with
                              // 0 and pool at the last position of the attention mask
    const float *class_w;     // (n_labels) or NULL
    const char *best_metric;  // a lt_cls_metrics_get name (default "macro_f1")
    const char *const *label_names; // (n_labels) for reports, or NULL
    const char *labels_json;  // written as labels.json beside every adapter saved, or NULL
    const cJSON *report_config; // copied into report.json as "config", or NULL
    bool plots;               // write curves.svg (default true)
} lt_cls_train_opts;
void lt_cls_train_opts_default(lt_cls_train_opts *o);

// One evaluation during training.
typedef struct lt_cls_point {
    int64_t step, examples;          // optimizer steps and training examples seen so far
    double train_loss, train_acc;    // means over the steps since the previous evaluation
    double val_loss, val_acc, val_f1; // NaN without a validation set
} lt_cls_point;

typedef struct lt_cls_train_result {
    int64_t steps, examples_seen;
    double first_loss, last_loss;  // training loss of the first and last step
    int64_t best_step;             // step of the best validation metric; -1 without validation
    double best_value;
    lt_cls_metrics val;            // validation metrics of the best step (n = 0: no validation)
    lt_cls_metrics val_final;      // validation metrics after the last step
    lt_cls_metrics test;           // test metrics of the best parameters (n = 0: no test set)
    lt_cls_point *hist;            // (n_hist) evaluations, owned
    int n_hist;
    double seconds, examples_per_s;
    long peak_rss_kb;
} lt_cls_train_result;
void lt_cls_train_result_deinit(lt_cls_train_result *r); // also accepts a zeroed struct

// Trains adapter a of model m (a->n_labels > 0: its head) on train. Validation (val, may be NULL
// or empty) runs every t.eval_every steps and after the last one; the parameters with the best
// validation metric are kept. At the end a holds the best parameters (the final ones without
// validation), test (may be NULL) is evaluated with them, and out_dir (when set) holds:
//   adapter_config.json, adapter_model.safetensors, labels.json  the final adapter
//   best/ (same files + best.json)                                the best adapter
//   report.json      labels, config, best step and value, validation and test metrics (per
//                    class, confusion matrix), history; written atomically
//   curves.svg       training/validation loss and accuracy against steps and examples seen
//   checkpoint.safetensors  while running with t.save_every (removed when the run completes)
// Metrics JSONL (t.metrics_path): one line per step and one per evaluation ("split").
// Resumable like lt_train: with t.resume a run continues from out_dir/checkpoint.safetensors
// (which also holds the best parameters so far and the history) and ends as an uninterrupted run.
lt_status lt_cls_train(lt_model *m, lt_adapter *a, const lt_cls_data *train,
                       const lt_cls_data *val, const lt_cls_data *test,
                       const lt_cls_train_opts *o, lt_cls_train_result *res, lt_err *err);

// ---------------------------------------------------------------------------------------------
// 8-bit AdamW (optim8.c): bitsandbytes' AdamW8bit with block-wise quantised moments
// (Dettmers et al., 8-bit Optimizers via Block-wise Quantization, arXiv 2110.02861), following
// the CPU kernel of bitsandbytes 0.50 (backends/cpu/ops.py _optimizer_update_8bit_blockwise_cpu):
//  - the flat parameter array is split into its tensors (segments); as bnb, a tensor with fewer
//    than min_8bit_size (4096) elements keeps f32 moments and bnb's 32-bit update;
//  - an 8-bit tensor keeps m as codes of the signed dynamic map and v of the unsigned one
//    (lt_dyn8_map), with an f32 absmax per block of 256 elements of the tensor;
//  - a step, per block: m = dyn8s[qm] * am, v = dyn8u[qv] * av (f32); m = m*b1 + (1-b1) g;
//    v = v*b2 + (1-b2) g*g; p *= 1 - lr*wd (when wd > 0); p -= lr/(1-b1^t) * m/(sqrt(v)/c2 + eps)
//    with c2 = sqrt(1-b2^t); then m and v are requantised (nearest code, lt_dyn8_quantize).
//    The update uses the unrounded new moments; only the next step reads the quantised ones.
// Differences from bnb: bnb's native CPU library searches the 8-bit code approximately (small v
// get a larger code than the nearest); CUDA's kernel also applies the weight decay after the
// update and nudges an m code whose sign flipped. Known limit (bnb's too): within a block, a
// gradient 1e4 times smaller than the block's largest makes v read back as 0 while m does not.
// State: 2 bytes + 8/256 bytes per parameter of 8-bit tensors, 8 bytes of the others.
typedef struct lt_adamw8_seg {
    int64_t off, n;    // elements [off, off + n) of the flat arrays
    bool q8;           // 8-bit moments (n >= min_8bit_size) or f32
    int64_t soff;      // offset of its moments in qm/qv (q8) or m32/v32 (f32)
    int64_t boff;      // q8: offset of its first block in am/av
} lt_adamw8_seg;

typedef struct lt_adamw8 {
    int64_t n;          // parameters
    int n_seg;
    lt_adamw8_seg *seg; // (n_seg)
    uint8_t *qm, *qv;   // (n8) codes; all zero = zero moments (absmax 0)
    float *am, *av;     // (n_blocks) block absmax
    float *m32, *v32;   // (n32) f32 moments of the small tensors
    int64_t n8, n32, n_blocks;
} lt_adamw8;

#define LT_ADAMW8_BLOCK 256
#define LT_ADAMW8_MIN_SIZE 4096 // bnb's min_8bit_size

// Sets up zero state for tensors of sizes[0..n_seg) laid end to end (n = their sum). Tensors
// with fewer than min_8bit_size elements keep f32 moments (bnb: 4096; 0 quantises all).
// Release with lt_adamw8_deinit. Errors: LT_ERR_ARG (bad sizes), LT_ERR_OOM.
lt_status lt_adamw8_init(lt_adamw8 *o, const int64_t *sizes, int n_seg, int64_t min_8bit_size,
                         lt_err *err);
// The same with one segment per tensor of the adapter (each module's A and B, the head).
lt_status lt_adamw8_init_adapter(lt_adamw8 *o, const lt_adapter *a, lt_err *err);
void lt_adamw8_deinit(lt_adamw8 *o); // zeroes *o; safe on a zeroed or deinit'ed struct
// One update of p(n) with gradient g(n) at step t (1-based). Allocates nothing.
void lt_adamw8_update(lt_adamw8 *o, float *p, const float *g, float lr, float b1, float b2,
                      float eps, float wd, int64_t t);
// Bytes of optimizer state (codes, block scales, f32 moments of small tensors).
size_t lt_adamw8_state_bytes(const lt_adamw8 *o);
// The moments as f32 (m(n), v(n)), for tests and inspection.
void lt_adamw8_moments(const lt_adamw8 *o, float *m, float *v);
void lt_adamw8_free(lt_adamw8 *o); // deinit + free of a heap object; NULL does nothing

// The training loop's use (loop.c): replaces the f32 moments of s (freed) by 8-bit ones for the
// adapter's tensors (s->q8). Call after lt_train_state_init, before loading a checkpoint.
lt_status lt_train_state_use_8bit(lt_train_state *s, const lt_adapter *a, lt_err *err);
// Bytes of optimizer state of s: 8 per parameter for f32 AdamW, lt_adamw8_state_bytes for 8-bit.
size_t lt_train_state_bytes(const lt_train_state *s, int64_t n_params);
// Checkpoints: save adds tensors adam8_qm, adam8_qv (U8 codes), adam8_am, adam8_av (F32 block
// absmax), adam8_m32, adam8_v32 (F32 moments of small tensors) and metadata "optim" =
// "adamw_8bit" and "adam8_layout" (the tensor sizes), whose data must stay valid until written.
// load checks the layout matches o's and restores the state; a checkpoint of f32 AdamW (or of
// another layout) is LT_ERR_ARG naming path: resume with the optimizer it was written with.
lt_status lt_adamw8_ckpt_save(lt_st_writer *w, const lt_adamw8 *o, lt_err *err);
lt_status lt_adamw8_ckpt_load(const lt_safetensors *f, lt_adamw8 *o, const char *path,
                              lt_err *err);

#endif
