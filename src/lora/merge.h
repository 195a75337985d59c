/*
 * merge.h - shipping what was trained: the adapter merged into the base weights and written as
 * a Hugging Face model directory or a GGUF model, the adapter alone as a GGUF LoRA file for
 * llama.cpp, and the --verify check that runs the result against the unmerged model.
 *
 * Merge rule (PEFT LoraLayer.merge / get_delta_weight): W' = W + s * B @ A with A (r, in),
 * B (out, r), s = alpha / r (alpha / sqrt(r) with rsLoRA). It is computed in f32 one block of
 * rows at a time (W's rows converted from their stored dtype, B's rows times A by sgemm) and
 * rounded once to the output dtype, so a bf16 base gives round_bf16(W + s*B@A), the value PEFT's
 * merge_and_unload gives in bf16.
 *
 * Streaming: outputs are planned first (names, dtypes, shapes, byte sizes), then each tensor is
 * produced a block of rows at a time and written straight to the file, so memory beyond the
 * mmapped base stays at one block (<= 16 MB of f32) plus the headers.
 *
 * Atomicity: every output file goes to "<path>.tmp.<pid>" and all of them are renamed into place
 * only after every one was written and flushed (lt_afile); on any failure all temporary files are
 * removed and nothing under the final names changes.
 *
 * Files: merge.c (merged rows, the HF directory writer, --verify), export_gguf.c (GGUF model and
 * GGUF LoRA writers, tokenizer keys, Q8_0 quantisation, reading GGUF LoRA files back),
 * src/model/export.c (the model's tensors under HF and llama.cpp names, the RoPE row permutation,
 * config.json for bases that have none).
 */
#ifndef LT_MERGE_H
#define LT_MERGE_H

#include "lora/lora.h"
#include <stdio.h>

// "keep the dtype the base stores" for lt_merge_opts.dtype.
#define LT_DTYPE_KEEP LT_DTYPE_COUNT

// ---------------------------------------------------------------------------------------------
// model-side helpers (defined in src/model/export.c)

// One tensor of a model under its Hugging Face and llama.cpp names, as the merge and export
// writers see it. Matrices are (rows, cols) = (out, in) in HF row order (q/k un-permuted even
// for GGUF bases); vectors have rows = 1.
typedef struct lt_model_tensor {
    char hf_name[96];   // "model.layers.3.self_attn.q_proj.weight"
    char gguf_name[64]; // "blk.3.attn_q.weight"
    int layer;          // block index, -1 outside the blocks
    int mod;            // lt_mod_kind of a linear's weight or bias, -1 otherwise
    bool is_bias;
    int64_t rows, cols;   // vectors: rows = 1, cols = length
    const lt_mat *w;      // matrices: the stored weight (borrowed from the model)
    const float *vec;     // vectors: the model's f32 copy (norms, biases)
    const lt_linear *lin; // the linear whose weight this is (LoRA: lin->lora), or NULL
    bool transposed;      // the HF file stores this matrix (cols, rows): GPT-2's Conv1D (in, out);
                          // w, rows, cols stay (out, in) as in memory and in GGUF
} lt_model_tensor;

// Lists the model's tensors under the family's own HF names (llama/mistral/qwen2: model.*;
// GPT-2: [transformer.]wte/wpe/h.N.*/ln_f as the file has them; GPT-NeoX: gpt_neox.*, embed_out):
// embedding, learned positions (GPT-2), per block: the 2 norms (weight, and bias for LayerNorm),
// the projections the family has (fused q/k/v in the Q slot) each followed by its bias when
// present; final norm (+ bias); lm_head when untied OR when it carries a LoRA module - merging
// that unties it. Writes up to cap entries into out and returns the total count.
// lt_model_check_exportable: LT_ERR_UNSUPPORTED (naming `what` and the family) for
// architectures the list does not describe.
lt_status lt_model_check_exportable(const lt_model *m, const char *what, lt_err *err);
int lt_model_tensors(const lt_model *m, lt_model_tensor *out, int cap);
// The inverse of lt_model_unpermute_rope_rows: HF row order -> llama.cpp's (interleaved RoPE)
// order, as convert_hf_to_gguf.py LlamaModel.permute: dst row h*hs + 2j + s = src row
// h*hs + s*hs/2 + j. Rows are opaque blocks of row_bytes. dst and src must not overlap.
void lt_model_permute_rope_rows(void *dst, const void *src, int n_heads, int hs, size_t row_bytes);
// config.json for a model loaded from a GGUF or llama2.c file (LlamaForCausalLM /
// Qwen2ForCausalLM / GPT2LMHeadModel / GPTNeoXForCausalLM keys transformers reads). torch_dtype
// e.g. "float32". Caller cJSON_Deletes. Errors: LT_ERR_UNSUPPORTED when the model cannot be
// described (partial rotary outside GPT-NeoX), LT_ERR_OOM.
lt_status lt_model_hf_config(const lt_model *m, const char *torch_dtype, cJSON **out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// merged rows

// Rows [r0, r0 + n) of tensor t in f32 with its LoRA module (if any) merged: dst (n, t->cols).
// Vectors: r0 = 0, n = 1.
void lt_merge_rows(const lt_model_tensor *t, int64_t r0, int64_t n, float *dst);

// GPT-NeoX's fused query_key_value stores per head h the rows [q_h k_h v_h]; llama.cpp's
// gptneox graph reads [q | k | v] (convert_hf_to_gguf.py GPTNeoXModel.modify_tensors). Row r of
// the [q | k | v] layout is row lt_qkv_heads_src_row(r, n_head, hs) of the per-head one.
int64_t lt_qkv_heads_src_row(int64_t r, int n_head, int64_t hs);

// ggml's Q8_0 (quantize_row_q8_0_ref): per block of 32, d = max|x| / 127 stored as f16,
// q = roundf(x / d) (as x * (1/d), 0 when d == 0). n a multiple of 32; dst 34 * n / 32 bytes.
void lt_quantize_q8_0(const float *src, void *dst, int64_t n);

// ---------------------------------------------------------------------------------------------
// planned output tensors (shared by merge.c and export_gguf.c; not for other modules)

typedef struct lt_out_tensor {
    char name[96];
    lt_dtype dtype;   // output dtype (F32/F16/BF16/Q8_0 when produced from rows)
    int ndim;         // 0..2
    int64_t shape[2]; // row-major, as written
    size_t nbytes;
    const void *raw;     // non-NULL: these nbytes are written as they are
    lt_model_tensor src; // else: rows from lt_merge_rows(&src, ...)
    bool own_mat;        // src.w is &mat (a view of a file tensor without a model slot)
    lt_mat mat;
    int perm_hs; // > 0: rows (a bias: its elements) permuted for llama.cpp RoPE, head size
    int qkv_heads; // > 0: GPT-NeoX per-head [q k v] rows (a bias: elements) regrouped into
                   // [q | k | v] for llama.cpp, this many heads
    bool transpose; // written as src transposed (shape (src.cols, src.rows)): GPT-2 Conv1D
} lt_out_tensor;

typedef struct lt_out_scratch {
    float *buf, *buf2; // (floats) each
    void *enc;         // floats * 4 bytes
    size_t floats;
} lt_out_scratch;

// Floats of one block of rows of t (whole heads when permuting), at most ~16 MB worth.
size_t lt_out_chunk_floats(const lt_out_tensor *t);
// Scratch big enough for every tensor of ts[0..n). Free with lt_out_scratch_free.
lt_status lt_out_scratch_new(const lt_out_tensor *ts, int n, lt_out_scratch *s, lt_err *err);
void lt_out_scratch_free(lt_out_scratch *s);
// Streams t's bytes to f (errors name the tensor; LT_ERR_IO on a failed write).
lt_status lt_out_tensor_write(FILE *f, const lt_out_tensor *t, lt_out_scratch *s, lt_err *err);

// ---------------------------------------------------------------------------------------------
// Hugging Face model directory

typedef struct lt_merge_opts {
    lt_dtype dtype;       // LT_DTYPE_KEEP (default), F32, F16 or BF16
    uint64_t shard_bytes; // largest shard; 0: 2 GB (2e9 bytes). Larger outputs are split into
                          // model-0000i-of-0000n.safetensors + model.safetensors.index.json
    // A classification head (an adapter trained with n_labels > 0, or NULL): written as
    // "score.weight" (n_labels, C) and the config becomes <Arch>ForSequenceClassification with
    // num_labels / id2label / label2id (from labels_json, the labels.json `loratune classify`
    // writes beside the adapter, when given; else LABEL_<i>) and its pad_token_id.
    const lt_adapter *cls;
    const char *labels_json;
} lt_merge_opts;

// Writes m with the LoRA modules attached to it (lin->lora; none: a plain copy/conversion) as a
// HF model directory out_dir (created if missing): config.json, the safetensors (sharded when
// larger than shard_bytes) and, for HF bases, the tokenizer files found beside the base
// (tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json,
// tokenizer.model, chat_template.jinja, vocab.json, merges.txt, added_tokens.json).
// base_path is what m was loaded from.
// HF bases: every tensor of the base is written under its own name (extra ones such as a
// classification head included), adapted ones merged; dtype KEEP keeps each tensor's dtype.
// GGUF / llama2.c bases: HF names, q/k in HF order, a generated config.json; KEEP means f32
// when any matrix is f32 or quantised, else the matrices' common dtype (f16/bf16).
// A tied lm_head that carries LoRA is written as its own lm_head.weight and the config gets
// tie_word_embeddings = false.
// Errors: LT_ERR_ARG (out_dir is the base directory, bad dtype), LT_ERR_IO, LT_ERR_OOM.
lt_status lt_merge_save_hf(lt_model *m, const char *base_path, const char *out_dir,
                           const lt_merge_opts *o, lt_err *err);

// ---------------------------------------------------------------------------------------------
// GGUF

typedef struct lt_export_opts {
    lt_dtype dtype;             // F32, F16 (default when KEEP), BF16 or Q8_0 for 2-D tensors;
                                // vectors are always F32 (as llama.cpp's converter writes them)
    const char *tokenizer_path; // tokenizer.json or a directory with one; NULL: the base's own
                                // (HF directory: its tokenizer.json; GGUF: its tokenizer.* keys)
    const char *name;           // general.name, or NULL
} lt_export_opts;

// Writes m (with its attached LoRA merged) as a llama.cpp GGUF model: general.architecture
// llama (llama, mistral - whose sliding window llama.cpp's llama graph does not apply) or qwen2,
// the <arch>.* hyper-parameters, tokenizer.ggml.* keys, llama.cpp tensor names, attn_q/attn_k
// rows (and biases) permuted for llama. Q8_0 rows that are not a multiple of 32 fall back to F16
// (as convert_hf_to_gguf.py does). Tokenizers loratune cannot describe in GGUF terms are left
// out with a warning (the model still loads; llama.cpp needs a vocabulary to run it).
lt_status lt_export_gguf(lt_model *m, const char *base_path, const char *out_path,
                         const lt_export_opts *o, lt_err *err);

// The tokenizer.ggml.* keys for a Hugging Face tokenizer.json (+ tokenizer_config.json beside
// it when present): BPE with a ByteLevel pre-tokenizer -> "gpt2" (tokens, token_type, merges,
// tokenizer.ggml.pre from the pre-tokenizer), BPE with byte_fallback / Metaspace -> "llama"
// (tokens, scores = -rank of the merge that makes the piece, token_type); bos/eos/pad/unk ids,
// add_bos_token/add_eos_token, chat_template. n_vocab: the model's vocabulary (ids the tokenizer
// lacks become "[PAD<i>]" user-defined tokens, as llama.cpp's converter does); fewer model rows
// than tokenizer ids is LT_ERR_FORMAT. `config` (may be NULL) gives fallback special ids.
// Writes into the opaque key list kv (see lt_gguf_kv_* below).
typedef struct lt_gguf_kv lt_gguf_kv;
lt_gguf_kv *lt_gguf_kv_new(void);
void lt_gguf_kv_free(lt_gguf_kv *kv);
lt_status lt_gguf_kv_tokenizer_hf(lt_gguf_kv *kv, const char *tokenizer_json, int n_vocab,
                                  const lt_config *config, lt_err *err);
// The other direction, for HF directories merged from a GGUF base: tokenizer.json and
// tokenizer_config.json text (caller frees both with cJSON_free) for a "gpt2" (byte-level BPE)
// vocabulary whose tokenizer.ggml.pre loratune knows (the names gguf_vocab.c reads); vocab,
// merges, added tokens from token_type CONTROL/USER_DEFINED, BOS/EOS as the post-processor when
// add_bos/add_eos, special tokens and chat_template in the config. max_len: model_max_length
// (<= 0: left out). Other vocabularies: LT_ERR_UNSUPPORTED.
lt_status lt_gguf_tokenizer_to_hf(const struct lt_gguf *g, int max_len, char **tokenizer_json,
                                  char **tokenizer_config, lt_err *err);
// Writes a GGUF file holding only the keys of kv (for tests and tokenizer-only files).
lt_status lt_gguf_kv_write_file(const lt_gguf_kv *kv, const char *path, lt_err *err);

// The attached adapter as a llama.cpp LoRA GGUF (convert_lora_to_gguf.py layout):
// general.type = "adapter", general.architecture, adapter.type = "lora", adapter.lora.alpha
// (f32), and per module "<llama.cpp weight name>.lora_a" (ne {in, r}: row-major (r, in)) and
// ".lora_b" (ne {r, out}: row-major (out, r)). llama.cpp scales by alpha / r with r = lora_b
// ne[0]; rsLoRA's alpha / sqrt(r) is folded in as alpha' = alpha * sqrt(r). For llama, lora_b
// rows of q/k are permuted like the base weights. dtype F32 (default when KEEP), F16 or BF16.
// A LoRA on a tied lm_head is refused (llama.cpp has no output.weight to apply it to), as is an
// adapter with a classification head.
lt_status lt_export_gguf_lora(const lt_model *m, const lt_adapter *a, const char *out_path,
                              lt_dtype dtype, lt_err *err);
// Reads a llama.cpp LoRA GGUF (as written above or by convert_lora_to_gguf.py, F32/F16/BF16)
// onto m and attaches it: all modules must share one rank; scale alpha / r as llama.cpp applies
// it (cfg.alpha = adapter.lora.alpha, rslora off). Errors name the file and tensor.
lt_status lt_adapter_load_gguf_lora(lt_model *m, const char *path, lt_adapter **out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// --verify

typedef struct lt_verify_result {
    // 1. configuration: the reloaded model's hyper-parameters equal the base's
    bool config_ok;
    char config_msg[160]; // the first difference, or ""
    // 2. weights: every tensor of the result against the exact f32 merge of the base (LoRA
    //    weights against the adapter for GGUF LoRA files), within the rounding of the dtype
    //    it is stored in: F32 2^-20 of the row's largest value, F16/BF16 half a unit in the
    //    last place, Q8_0 0.6 x the block's scale max|x|/127 (half a step, plus the f16
    //    rounding of the scale)
    int64_t n_weights, n_bad; // elements compared, elements beyond their bound
    double worst;             // largest |written - exact| / bound (<= 1 passes)
    char worst_name[128];     // the tensor holding it
    bool weights_ok;
    // 3. logits of B fixed prompts of T tokens
    int B, T;
    double max_diff;    // max |logit(result) - logit(unmerged)| over all B*T*V logits
    double max_ref;     // max |logit(unmerged)|
    double lora_effect; // max |logit(unmerged) - logit(base without the adapter)|
    double tol;         // the tolerance applied to max_diff (absolute)
    bool logits_ok;
    bool ok; // all three
} lt_verify_result;

// Relative logits tolerance for a written dtype, applied as tol = rel * max(1, max|ref logit|).
// Rounding every weight perturbs a real model's logits by far more than the rounding unit:
// SmolLM2-135M's logits (|logit| up to ~35) move by 4% of their scale when its weights are
// rounded to f16 and by 13% for bf16 and q8_0, and more once an adapter has sharpened the model.
// The bounds are set above that (F32 1e-3, F16 0.1, BF16 0.5, Q8_0 0.5) so that a correct
// export passes; the exact check is the weight comparison (2. above), which does not depend
// on how sensitive the model is.
double lt_verify_rel_tol(lt_dtype written);
// Verifies a written result: `ref` is the base with its adapter attached, `got` the result
// loaded back (lt_model_load). vec_dtype is the dtype the result stores vectors (norms,
// biases) in: F32 for GGUF, the output dtype of a HF merge (KEEP: exact). Runs B=3 fixed
// prompts of T tokens (T = min(32, max positions; where only one model applies a sliding
// window, no longer than it) through ref, got, and ref with its adapter detached (reattached
// after, for lora_effect). Errors (not a failed check): LT_ERR_OOM, or a context that cannot be
// built.
lt_status lt_verify_models(lt_model *ref, lt_model *got, lt_dtype vec_dtype, double tol_rel,
                           lt_verify_result *res, lt_err *err);

// The same for a GGUF LoRA file: `m` carries the original adapter (attached); the file is read
// back with lt_adapter_load_gguf_lora and run on the same base in its place (the original is
// detached meanwhile and reattached before returning, also on failure). The weights check
// compares the loaded A, B (B un-permuted) and scale with the original's; file_dtype is the
// dtype the file stores them in.
lt_status lt_verify_gguf_lora(lt_model *m, const char *path, lt_dtype file_dtype, double tol_rel,
                              lt_verify_result *res, lt_err *err);
// Adds the weights check of a merged classification head: score.weight of `got`'s files (a HF
// directory) against cls->score, within the rounding of the dtype it was written in.
void lt_verify_cls_head(const lt_adapter *cls, const lt_model *got, lt_verify_result *res);
// The dtype lt_merge_save_hf writes for `requested` (KEEP resolved as described there; for an HF
// base with mixed dtypes the coarsest, which sets the --verify tolerance).
lt_dtype lt_merge_written_dtype(const lt_model *m, lt_dtype requested);

#endif
