/*
 * tokenizer.h - text <-> token ids for the models loratune fine-tunes.
 *
 * One opaque object, lt_tokenizer, loaded from any of:
 *   - a llama2.c tokenizer.bin (karpathy/llama2.c tokenizer.py `export`):
 *       int32 max_token_length, then for each of vocab_size tokens:
 *       float32 score, int32 len, len bytes (no NUL); "▁" already replaced by " ",
 *       BOS stored as "\n<s>\n" (id 1), EOS as "\n</s>\n" (id 2), bytes as "<0xXX>" (id = byte+3).
 *     Encoding reproduces run.c `encode` exactly (see lt_tokenizer_load_llama2c).
 *   - a Hugging Face tokenizer.json (models BPE and Unigram; normalizers, pre-tokenizers,
 *     post-processors and decoders listed in tokenizer_json.c), optionally with
 *     tokenizer_config.json for bos/eos/pad and chat_template.
 *   - a GGUF vocabulary (tokenizer.ggml.* keys), encoding as llama.cpp does.
 * Encoding matches the reference implementation token for token on the golden sets in
 * tests/unit/test_tokenizer*.c (HF `tokenizers`, llama.cpp, llama2.c).
 *
 * Thread safety: a loaded tokenizer is read-only; encode and decode may run concurrently on the
 * same object from several threads (each call allocates its own scratch).
 * Deliberately not here: applying chat templates (chat_template.h renders the template string
 * that lt_tokenizer_chat_template returns),
 * truncation and padding (src/data), offsets/alignment tracking, WordPiece models.
 */
#ifndef LT_TOKENIZER_H
#define LT_TOKENIZER_H

#include "lt/lt.h"
#include <stdbool.h>

typedef struct lt_tokenizer lt_tokenizer;

// A growable id array owned by the caller: zero-initialise it (lt_ids v = {0}), let encode append
// to it, release the storage with lt_ids_deinit. ids is allocated with lt_alloc.
typedef struct lt_ids {
    int32_t *ids;
    size_t n, cap;
} lt_ids;
LT_API void lt_ids_deinit(lt_ids *v);

// ---------------------------------------------------------------------------------------------
// loading. On success *out owns everything it needs (the files can be deleted); free it with
// lt_tokenizer_free. On failure *out is untouched and err names the file and the problem.

// llama2.c tokenizer.bin with vocab_size entries (the checkpoint header's vocab_size; llama2.c
// does not store it in the file). Scores must be finite; lengths 0 < len <= max_token_length.
// bos = 1, eos = 2, no pad; add_special adds BOS only (as run.c generate does).
// Encode follows run.c: a dummy " " prefix when the text is not empty, each UTF-8 code point
// looked up whole (code points longer than 4 bytes are cut as run.c does), unknown ones as byte
// tokens id = byte + 3, then repeatedly the best-scoring adjacent merge (leftmost on ties).
// Any bytes are accepted (no UTF-8 validation), as in run.c.
// On the 50 hard strings of tests/fixtures/tokenizers this equals sentencepiece on
// llama2-tokenizer.model too. Known differences from run.c: run.c would also try to merge a byte token's text "<0xXX>"
// with its neighbour and would include BOS in the merge scan; no real vocabulary has such merges,
// so here byte tokens and BOS never merge. Text must not contain NUL in run.c; here NUL is
// encoded as the byte token <0x00>.
LT_API lt_status lt_tokenizer_load_llama2c(const char *path, int32_t vocab_size,
                                           lt_tokenizer **out, lt_err *err);

// Hugging Face tokenizer.json. config_path (tokenizer_config.json) may be NULL; when given, its
// bos_token / eos_token / pad_token (strings or {"content": ...}) choose the bos/eos/pad ids and
// its chat_template is kept (lt_tokenizer_chat_template). The json's truncation and padding
// blocks are ignored. Unsupported pieces (WordPiece/WordLevel models, Precompiled normalizer,
// ...) fail with LT_ERR_UNSUPPORTED naming the piece. Without a config the special ids are
// guessed: bos = the post-processor's first token, else a token named <s>, <|begin_of_text|>
// or <bos>; eos = the post-processor's last token, else </s>, <|end_of_text|>, <eos> or
// <|endoftext|>; pad = <pad>, <|pad|> or [PAD]. A config's explicit null means "none". For
// tokenizer_class Llama*/Gemma*, the config's add_bos_token/add_eos_token rebuild BOS/EOS adding
// as transformers does.
LT_API lt_status lt_tokenizer_load_hf(const char *json_path, const char *config_path,
                                      lt_tokenizer **out, lt_err *err);
// Same from memory; `what` names the source in messages (e.g. the file name). config may be NULL.
LT_API lt_status lt_tokenizer_load_hf_mem(const char *json, size_t json_len, const char *config,
                                          size_t config_len, const char *what,
                                          lt_tokenizer **out, lt_err *err);
// A model directory: dir/tokenizer.json plus dir/tokenizer_config.json when present.
LT_API lt_status lt_tokenizer_load_hf_dir(const char *dir, lt_tokenizer **out, lt_err *err);

// A GGUF vocabulary (tokenizer.ggml.* keys; see gguf_vocab.c for the mapping onto llama.cpp's
// behaviour): tokenizer.ggml.model "llama" (SentencePiece scores) or "gpt2" (byte-level BPE with
// merges; tokenizer.ggml.pre picks the regex: gpt-2, mpt, olmo, jais, default or missing, llama3,
// llama-bpe, qwen2, stablelm2, smollm, starcoder, ...). g is only read during the call.
typedef struct lt_gguf lt_gguf;
LT_API lt_status lt_tokenizer_load_gguf(const lt_gguf *g, lt_tokenizer **out, lt_err *err);
LT_API lt_status lt_tokenizer_load_gguf_file(const char *path, lt_tokenizer **out, lt_err *err);

LT_API void lt_tokenizer_free(lt_tokenizer *t); // NULL is fine

// ---------------------------------------------------------------------------------------------
// encoding

enum {
    LT_TOK_ADD_SPECIAL = 1u << 0,   // add the post-processor's tokens (BOS/EOS) around the text
    LT_TOK_SPLIT_SPECIAL = 1u << 1, // do not match special tokens in the text: "<s>" in the text
                                    // is encoded as ordinary text (HF split_special_tokens=True)
};

// Encodes text[0..len) and APPENDS the ids to *out (growing it with lt_realloc). text need not be
// NUL-terminated. Except for llama2.c tokenizers, text must be valid UTF-8 (LT_ERR_ARG naming the
// byte offset otherwise). On failure *out keeps its previous ids (its capacity may have grown).
LT_API lt_status lt_tokenizer_encode(const lt_tokenizer *t, const char *text, size_t len,
                                     unsigned flags, lt_ids *out, lt_err *err);
// Same into a caller array: writes min(n, cap) ids to ids[] and sets *n_needed = n (snprintf
// style: when *n_needed > cap the result is truncated and the caller may retry with a bigger
// array). ids may be NULL when cap == 0.
LT_API lt_status lt_tokenizer_encode_to(const lt_tokenizer *t, const char *text, size_t len,
                                        unsigned flags, int32_t *ids, size_t cap,
                                        size_t *n_needed, lt_err *err);

// ---------------------------------------------------------------------------------------------
// decoding

enum {
    LT_TOK_SKIP_SPECIAL = 1u << 0, // leave out special tokens (HF skip_special_tokens=True)
};

// Decodes a sequence the way the reference does (HF decoder chain: ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace, WordPiece; llama2.c: strip the space after BOS). Invalid
// UTF-8 produced by byte tokens becomes U+FFFD as in HF (llama2.c: raw bytes, as run.c prints).
// *out is NUL-terminated (not counted in *out_len), allocated with lt_alloc; the caller lt_frees
// it. Ids outside [0, n_vocab) or holes fail with LT_ERR_ARG.
LT_API lt_status lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, size_t n,
                                     unsigned flags, char **out, size_t *out_len, lt_err *err);
// The bytes one token stands for, for streaming output: "Ġhello" -> " hello", "▁hello" ->
// " hello", "<0x0A>" -> "\n", an added token -> its content. No leading-space stripping and no
// UTF-8 repair (a byte token may be half a character). Borrowed: valid until the tokenizer is
// freed. Returns NULL (and *len = 0) for ids out of range or holes.
LT_API const char *lt_tokenizer_token_bytes(const lt_tokenizer *t, int32_t id, size_t *len);

// ---------------------------------------------------------------------------------------------
// vocabulary

// Number of ids (1 + the largest id of the model vocabulary and the added tokens).
LT_API int32_t lt_tokenizer_n_vocab(const lt_tokenizer *t);
// The token's string as stored in the vocabulary ("Ġhello", "▁hello", "<|endoftext|>"),
// NUL-terminated, borrowed until the tokenizer is freed; NULL for ids out of range or holes.
LT_API const char *lt_tokenizer_id_to_token(const lt_tokenizer *t, int32_t id);
// The id of a vocabulary string (added tokens first, then the model vocabulary), or -1.
LT_API int32_t lt_tokenizer_token_to_id(const lt_tokenizer *t, const char *tok, size_t len);
LT_API bool lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id);
// Special ids, -1 when the tokenizer has none.
LT_API int32_t lt_tokenizer_bos(const lt_tokenizer *t);
LT_API int32_t lt_tokenizer_eos(const lt_tokenizer *t);
LT_API int32_t lt_tokenizer_pad(const lt_tokenizer *t);
LT_API int32_t lt_tokenizer_unk(const lt_tokenizer *t);
// tokenizer_config.json's chat_template (the "default" one when it lists several), or NULL.
// Borrowed until the tokenizer is freed.
LT_API const char *lt_tokenizer_chat_template(const lt_tokenizer *t);

#endif
