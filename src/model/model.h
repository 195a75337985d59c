/*
 * model.h - one decoder-only transformer described by an architecture record, loaded from a
 * Hugging Face model directory (config.json + safetensors) or a llama2.c checkpoint, with
 * hand-written forward and backward passes (no autograd graph).
 *
 * Families: llama / mistral / qwen2 (RMSNorm, RoPE rotate_half, GQA, SwiGLU). GPT-2 and
 * GPT-NeoX come in their own issue through the same record (norm kind, position kind, MLP kind,
 * residual kind, fused projections).
 *
 * Weights stay as stored: a bf16 file is mmapped and its matrices are viewed in bf16 (converted
 * in tiles inside the matmuls); only the small vectors (norm weights, biases) are converted to f32
 * copies. llama2.c checkpoints are f32; their wq/wk rows are permuted at load into the HF layout
 * (the permute() of transformers' convert_llama_weights_to_hf), so one RoPE convention serves all.
 */
#ifndef LT_MODEL_H
#define LT_MODEL_H

#include "io/io.h"
#include "tensor/tensor.h"

typedef enum { LT_NORM_RMS = 0, LT_NORM_LAYER } lt_norm_kind;
typedef enum { LT_POS_ROPE = 0, LT_POS_LEARNED } lt_pos_kind;
typedef enum { LT_MLP_SWIGLU = 0, LT_MLP_GELU } lt_mlp_kind;
// How q, k, v come out of the block input: three projections (llama), one fused projection
// with output [q | k | v] (GPT-2 c_attn), or one fused projection with per-head [q k v] groups
// (GPT-NeoX query_key_value).
typedef enum { LT_QKV_SEPARATE = 0, LT_QKV_FUSED, LT_QKV_FUSED_HEADS } lt_qkv_kind;

// The architecture record: what differs between families is data here, not code paths per
// family in the forward pass.
typedef struct lt_arch {
    char model_type[32]; // "llama", "mistral", "qwen2", "gpt2", "gpt_neox"
    lt_norm_kind norm;
    lt_pos_kind pos;
    lt_mlp_kind mlp;
    lt_qkv_kind qkv;
    bool parallel_residual; // x + attn(ln1(x)) + mlp(ln2(x)) (GPT-NeoX)
    bool gelu_tanh;         // GELU tanh approximation (GPT-2 gelu_new) instead of erf
    bool conv1d;            // the checkpoint stores projections (in, out) (GPT-2 Conv1D; PEFT
                            // adapters for it say fan_in_fan_out = true)
    bool qkv_bias;  // q/k/v projections have biases (qwen2)
    bool tied_head; // lm_head shares the token embedding
} lt_arch;

typedef struct lt_config {
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, max_pos;
    int rot_dim;        // rotary dims per head (== head_dim for llama)
    float rope_theta, norm_eps;
    int sliding_window; // 0: none
    int bos_id, eos_id, pad_id; // -1 when unknown
} lt_config;

// The linear module slots of one block. Families with a fused q/k/v projection use the Q slot
// for it (K and V stay empty: out == 0), UP for the first MLP projection (c_fc, dense_h_to_4h),
// DOWN for the second, and leave GATE empty.
typedef enum {
    LT_MOD_Q = 0, LT_MOD_K, LT_MOD_V, LT_MOD_O, LT_MOD_GATE, LT_MOD_UP, LT_MOD_DOWN,
    LT_MOD_PER_LAYER, // count
    LT_MOD_LM_HEAD = LT_MOD_PER_LAYER,
} lt_mod_kind;
const char *lt_mod_short_name(lt_mod_kind k); // llama names: "q_proj", ..., "lm_head"

struct lt_lora_mod;

typedef struct lt_linear {
    char name[80];            // HF module path, e.g. "model.layers.3.self_attn.q_proj"
    lt_mat w;                 // (out, in), borrowed from the file or the model's own storage
    const float *b;           // (out) or NULL
    int in, out;
    struct lt_lora_mod *lora; // attached adapter module or NULL (owned by the adapter)
} lt_linear;

typedef struct lt_layer {
    const float *attn_norm, *attn_norm_b; // (C); biases for LayerNorm, else NULL
    const float *ffn_norm, *ffn_norm_b;   // (C)
    lt_linear lin[LT_MOD_PER_LAYER];
} lt_layer;

typedef struct lt_model {
    lt_arch arch;
    lt_config cfg;
    lt_mat tok_embd;        // (V, C)
    lt_mat pos_embd;        // (max_pos, C) learned positions (GPT-2), else rows = 0
    const float *final_norm, *final_norm_b; // (C)
    lt_linear lm_head;      // (V, C); w aliases tok_embd when tied
    lt_layer *layers;       // (L)
    float *rope_cos, *rope_sin; // (max_pos, rot/2)
    // storage
    lt_st_set *st;          // mmapped safetensors (HF dirs) or NULL
    struct lt_gguf *gguf;   // mmapped GGUF file or NULL
    void *owned;            // weights owned by the model (llama2.c) or NULL
    float *small;           // f32 copies of norms and biases
    char *src_path;         // where the model came from (for adapter_config.json)
    struct lt_model_quant *quant; // NF4/FP4 storage made by lt_model_quantize (quant.c) or NULL
} lt_model;

// Loads a model from a HF directory, a GGUF file or a llama2.c .bin checkpoint, dispatching on
// what `path` is.
lt_status lt_model_load(const char *path, lt_model **out, lt_err *err);
lt_status lt_model_load_hf(const char *dir, lt_model **out, lt_err *err);
lt_status lt_model_load_llama2c(const char *path, lt_model **out, lt_err *err);
// A llama.cpp GGUF file (architectures llama, qwen2). Matrices stay in the file's dtype (F32,
// F16, BF16, Q8_0, Q4_0, Q4_1). llama.cpp's converter permutes attn_q/attn_k rows for ggml's
// RoPE; those two matrices are copied once (in their stored dtype) back into the HF row order,
// so adapters trained here are in the layout transformers builds from the same file.
lt_status lt_model_load_gguf(const char *path, lt_model **out, lt_err *err);
void lt_model_free(lt_model *m);
// The PEFT target name of a slot in this model ("q_proj", "c_attn", "query_key_value", ...,
// "lm_head" / "embed_out"), or NULL when the family has no module there.
const char *lt_model_mod_name(const lt_model *m, int kind);
// Parameters of the base model (tied weights counted once), as PEFT counts them.
int64_t lt_model_n_params(const lt_model *m);

// ---------------------------------------------------------------------------------------------
// forward / backward

// Buffers for one (B, T) shape, allocated once and reused by every step (a step allocates nothing).
typedef struct lt_ctx lt_ctx;

typedef struct lt_ctx_opts {
    int B, T;
    bool train;        // keep what backward needs
    bool checkpoint;   // recompute each block in backward, keep only block inputs
} lt_ctx_opts;

lt_status lt_ctx_new(lt_model *m, const lt_ctx_opts *o, lt_ctx **out, lt_err *err);
void lt_ctx_free(lt_ctx *c);
// Bytes held by the context's buffers (for --plan and reports).
size_t lt_ctx_bytes(const lt_ctx *c);
// The bytes lt_ctx_new(m, o) would allocate now (m with its LoRA modules attached), from the
// same sizing code; proj_4bit sizes the linear workspace as if the block projections were
// already quantised to 4 bits (planning --load-in-4bit without quantising).
size_t lt_ctx_plan_bytes(const lt_model *m, const lt_ctx_opts *o, bool proj_4bit);

// One batch. ids, labels (B,T); labels < 0 carry no loss; kmask (B,T) 1 = real token (NULL: all
// real); pos (B,T) positions (NULL: 0..T-1 for every row). labels are NOT shifted: the logit at t
// predicts labels[t+1], as in transformers.
typedef struct lt_batch {
    const int32_t *ids, *labels, *kmask, *pos;
} lt_batch;

// Number of (shifted) labels that carry loss in the batch.
int64_t lt_batch_n_targets(const lt_batch *b, int B, int T);

// Forward + backward: returns the SUM of token losses of the batch in *loss_sum; adds
// loss_scale * d(sum)/d(param) into the LoRA gradients of the attached adapter (so that
// loss_scale = 1/total_targets over an accumulation window gives the mean's gradient).
// dropout_seed/step make LoRA dropout masks reproducible (recomputation regenerates them).
lt_status lt_model_train_step(lt_model *m, lt_ctx *c, const lt_batch *b, float loss_scale,
                              uint64_t dropout_seed, int64_t step, double *loss_sum, lt_err *err);
// Sequence classification (transformers *ForSequenceClassification): the final hidden state of
// each row's last non-pad token (the rightmost position whose id != pad_id; when pad_id < 0, the
// last position with kmask 1) times a head W (n_labels, C), no bias; cross-entropy against
// labels, optionally weighted per class (loss = sum_i w[y_i] * ce_i; divide by sum_i w[y_i] for
// torch's weighted mean, which the caller does through loss_scale).
typedef struct lt_cls_head {
    int n_labels;
    int32_t pad_id;
    const float *w;       // (n_labels, C)
    float *gw;            // (n_labels, C) gradient accumulator, or NULL
    const int32_t *labels; // (B) class ids, < 0 for padding rows; NULL: scores only
    const float *class_w; // (n_labels) or NULL
} lt_cls_head;

// The pooled position of one row (ids, kmask of length T).
int lt_cls_pool_position(const int32_t *ids, const int32_t *kmask, int T, int32_t pad_id);
// Forward (+ backward when `backward`): writes scores (B, n_labels) when not NULL, the loss sum in
// *loss_sum, and with backward the LoRA gradients and gw, scaled by loss_scale.
lt_status lt_model_cls_step(lt_model *m, lt_ctx *c, const lt_batch *b, const lt_cls_head *h,
                            float loss_scale, bool backward, uint64_t dropout_seed, int64_t step,
                            double *loss_sum, float *scores, lt_err *err);

// Forward only: loss sum over the batch (no gradients). For evaluation.
lt_status lt_model_eval_loss(lt_model *m, lt_ctx *c, const lt_batch *b, double *loss_sum,
                             lt_err *err);
// Forward only: full logits (B, T, V) into out (caller-owned). For tests and inference.
lt_status lt_model_logits(lt_model *m, lt_ctx *c, const lt_batch *b, float *out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// incremental decoding with a key/value cache (generation)

typedef struct lt_kv lt_kv;

// A cache for B rows of up to max_T positions. Create it AFTER attaching any adapter (its
// scratch is sized for the attached LoRA rank). Holds (L, B, max_T, NKV*HS) keys and values.
lt_status lt_kv_new(const lt_model *m, int B, int max_T, lt_kv **out, lt_err *err);
void lt_kv_free(lt_kv *kv);
void lt_kv_reset(lt_kv *kv); // forget everything (n_past = 0)
int lt_kv_n_past(const lt_kv *kv);
size_t lt_kv_bytes(const lt_kv *kv);

// Appends T new positions to every row: ids (B,T); kmask (B,T) 1 = real token, 0 = padding (NULL:
// all real; padding keys are never attended, e.g. left padding of batched prompts); pos (B,T)
// positions (NULL: n_past + t). Writes logits of each row's last new position, (B, V), or of every
// new position, (B, T, V), when all_logits. Fails when n_past + T > max_T.
// The attention of new token t sees cached positions j <= n_past + t that are real (and inside
// the sliding window); a row that sees none gets a zero attention output, as in training.
lt_status lt_model_decode(lt_model *m, lt_kv *kv, const int32_t *ids, int T, const int32_t *kmask,
                          const int32_t *pos, float *logits, bool all_logits, lt_err *err);

// ---------------------------------------------------------------------------------------------
// 4-bit base weights (quant.c): QLoRA's load_in_4bit

// Quantises the projections of every block (q, k, v, o, gate, up, down; the embeddings, the
// LM head and the norms stay as they are, as bitsandbytes leaves them) to t = LT_DTYPE_NF4 or
// LT_DTYPE_FP4, blocksize 64, with double quantisation of the block scales when double_quant
// (bitsandbytes quantize_4bit semantics, tensor.h). The 4-bit codes and scales are owned by the
// model (freed by lt_model_free); each lt_linear.w becomes an NF4/FP4 view (lt_mat.aux -> its
// scales), which lt_linear_fwd / lt_linear_bwd_x convert a slab at a time, so no dequantised copy
// of a matrix ever exists. The original full-precision views stay valid (lt_model_quant_source:
// merge into them, not into the 4-bit weights); source pages of a mmapped safetensors file are
// released from RSS after each matrix (madvise; the file is re-read if they are used again), and
// nothing the model does not own is freed.
// Weights must be F32, F16 or BF16 with rows a multiple of 64 long.
// Errors: LT_ERR_ARG (t is not NF4/FP4; the model is already quantised), LT_ERR_UNSUPPORTED
// (another weight dtype, e.g. GGUF q8_0, which trains as it is; a row length not a multiple of
// 64), LT_ERR_OOM. On error the model is unchanged.
lt_status lt_model_quantize(lt_model *m, lt_dtype t, bool double_quant, lt_err *err);

typedef struct lt_quant_info {
    lt_dtype dtype;       // LT_DTYPE_NF4 or LT_DTYPE_FP4
    bool double_quant;
    int blocksize;        // 64
    int n_mat;            // matrices quantised
    int64_t n_params;     // their parameters
    size_t bytes;         // their storage: codes, scales, nested scales and offsets
    size_t src_bytes;     // the same parameters in their original dtypes
    double bits_per_param; // 8 * bytes / n_params: 4.5, or ~4.127 with double quantisation
} lt_quant_info;
// Fills *out and returns true when the model has been quantised; false (out untouched) if not.
bool lt_model_quant_info(const lt_model *m, lt_quant_info *out);
// The full-precision view a quantised projection was made from (valid while m lives), or NULL
// when that module was not quantised.
const lt_mat *lt_model_quant_source(const lt_model *m, int layer, lt_mod_kind k);
// Frees the storage of lt_model_quantize (called by lt_model_free; NULL does nothing).
void lt_model_quant_free(struct lt_model_quant *q);

#endif
