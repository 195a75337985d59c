/*
 * tok_internal.h - private to src/tokenizer: the tokenizer object and the pieces of the encode
 * pipeline shared by the loaders (llama2c.c, tokenizer_json.c, gguf_vocab.c) and the engine
 * (tokenizer.c, pretok.c, bpe.c, unigram.c).
 *
 * The pipeline follows Hugging Face `tokenizers` (tokenizer/mod.rs encode_single_sequence):
 *   text --split by added tokens that are not normalized (special ones by default)-->
 *   each remaining segment --normalizers--> --split by normalized added tokens-->
 *   --pre-tokenizers (words)--> --model (BPE / Unigram) per word--> ids
 *   --post-processor (BOS/EOS) when asked--> result.
 * A llama2.c tokenizer.bin and a GGUF vocabulary are mapped onto the same pipeline with the
 * settings that reproduce llama2.c run.c and llama.cpp respectively.
 */
#ifndef LT_TOK_INTERNAL_H
#define LT_TOK_INTERNAL_H

#include "core/core.h"
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// ---------------------------------------------------------------------------------------------
// small containers

// Chunked string arena: strings live until the arena is freed. NUL-terminated copies.
typedef struct tk_arena_block tk_arena_block;
typedef struct tk_arena {
    tk_arena_block *head;
} tk_arena;
char *tk_arena_dup(tk_arena *a, const char *s, size_t n); // NULL on OOM
void tk_arena_free(tk_arena *a);

// Growable byte buffer.
typedef struct tk_buf {
    char *p;
    size_t n, cap;
} tk_buf;
bool tk_buf_reserve(tk_buf *b, size_t extra);
bool tk_buf_put(tk_buf *b, const void *s, size_t n);
static inline bool tk_buf_putc(tk_buf *b, char c) { return tk_buf_put(b, &c, 1); }
void tk_buf_free(tk_buf *b);

// Map from byte string to int32 (open addressing). Keys are borrowed and must outlive the map.
typedef struct tk_strmap {
    struct tk_strmap_slot *slots;
    size_t mask, count;
} tk_strmap;
bool tk_strmap_init(tk_strmap *m, size_t expected);
void tk_strmap_free(tk_strmap *m);
// Inserts key -> val; keeps the existing value when the key is already present (first wins).
// Returns false on OOM.
bool tk_strmap_put(tk_strmap *m, const char *key, size_t len, int32_t val);
int32_t tk_strmap_get(const tk_strmap *m, const char *key, size_t len); // -1 when absent
uint64_t tk_hash(const char *s, size_t n);

// Map from an ordered pair of ids to a merge (rank, result id).
typedef struct tk_pairmap {
    struct tk_pair_slot *slots;
    size_t mask, count;
} tk_pairmap;
bool tk_pairmap_init(tk_pairmap *m, size_t expected);
void tk_pairmap_free(tk_pairmap *m);
bool tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id); // last wins
bool tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);

// Growable id list used internally (same layout as lt_ids).
bool tk_ids_push(lt_ids *v, int32_t id);

// UTF-8: length of the sequence starting with byte c (1 for invalid leads), and validation.
static inline size_t tk_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}
// Returns the offset of the first invalid byte, or n when s[0..n) is valid UTF-8.
size_t tk_utf8_check(const char *s, size_t n);
// Decodes one code point at s (valid UTF-8 assumed, n > 0); sets *len.
int32_t tk_utf8_decode(const char *s, size_t n, size_t *len);
size_t tk_utf8_encode(int32_t cp, char out[4]);

// ---------------------------------------------------------------------------------------------
// pipeline pieces

typedef enum {
    TK_NORM_NFC,
    TK_NORM_NFD,
    TK_NORM_NFKC,
    TK_NORM_NFKD,
    TK_NORM_LOWERCASE,
    TK_NORM_STRIP,        // a = strip left, b = strip right (Unicode whitespace)
    TK_NORM_STRIP_ACCENTS,
    TK_NORM_PREPEND,      // str, only when the text is not empty
    TK_NORM_APPEND,       // str, only when the text is not empty
    TK_NORM_REPLACE,      // literal str -> str2, or regex re -> str2
    TK_NORM_BYTE_LEVEL,   // bytes -> GPT-2 byte-level characters
    TK_NORM_PRECOMPILED,  // SentencePiece charsmap in str (len bytes), a = trie units (precompiled.c)
} tk_norm_kind;

typedef struct tk_norm {
    tk_norm_kind kind;
    int a, b;
    char *str, *str2; // arena
    size_t len, len2;
    pcre2_code *re; // owned; NULL for a literal pattern
} tk_norm;

typedef enum {
    TK_SPLIT_REMOVED,
    TK_SPLIT_ISOLATED,
    TK_SPLIT_MERGED_PREV,
    TK_SPLIT_MERGED_NEXT,
    TK_SPLIT_CONTIGUOUS,
} tk_split_behavior;

typedef enum {
    TK_PRE_BYTE_LEVEL,  // a = add_prefix_space, b = use_regex (GPT-2 pattern in re)
    TK_PRE_SPLIT,       // re or literal str, behavior, invert
    TK_PRE_METASPACE,   // str = replacement, a = prepend scheme (0 never, 1 first, 2 always), b = split
    TK_PRE_WHITESPACE,  // \w+|[^\w\s]+ (re)
    TK_PRE_WS_SPLIT,    // split on Unicode whitespace, removed
    TK_PRE_DIGITS,      // a = individual digits
    TK_PRE_PUNCT,       // behavior
    TK_PRE_BERT,        // whitespace split + punctuation isolated
    TK_PRE_CHAR_DELIM,  // str = the delimiter character, removed
} tk_pre_kind;

typedef struct tk_pre {
    tk_pre_kind kind;
    int a, b;
    tk_split_behavior behavior;
    bool invert;
    char *str;
    size_t len;
    pcre2_code *re;
} tk_pre;

typedef enum {
    TK_DEC_BYTE_LEVEL,
    TK_DEC_METASPACE,   // str = replacement, a = prepend scheme (0 never)
    TK_DEC_REPLACE,     // str -> str2 (literal)
    TK_DEC_BYTE_FALLBACK,
    TK_DEC_FUSE,
    TK_DEC_STRIP,       // str = content char, a = start, b = stop
    TK_DEC_WORDPIECE,   // str = prefix, a = cleanup
    TK_DEC_BPE_SUFFIX,  // str = suffix (BPEDecoder)
} tk_dec_kind;

typedef struct tk_dec {
    tk_dec_kind kind;
    int a, b;
    char *str, *str2;
    size_t len, len2;
} tk_dec;

typedef enum {
    TK_MODEL_BPE,     // merges by rank (HF BPE, GGUF "gpt2")
    TK_MODEL_SPM_BPE, // merges by the score of the merged piece (llama2.c, GGUF "llama")
    TK_MODEL_UNIGRAM, // Viterbi over piece scores
} tk_model_kind;

// token attributes
enum {
    TK_ATTR_SPECIAL = 1,  // skipped by decode with LT_TOK_SKIP_SPECIAL
    TK_ATTR_ADDED = 2,    // an added token (matched in text before the model runs)
    TK_ATTR_BYTE = 4,     // <0xXX> byte piece
    TK_ATTR_UNUSED = 8,   // never produced by the model (GGUF UNUSED)
    TK_ATTR_CONTROL = 16, // GGUF CONTROL: not produced by merges
    TK_ATTR_MODEL = 32,   // part of the model's vocabulary (BPE / Unigram may produce it)
};

typedef struct tk_added {
    int32_t id;
    char *content; // arena
    size_t len;
    bool single_word, lstrip, rstrip, normalized, special;
} tk_added;

struct lt_tokenizer {
    char *path; // for messages
    tk_arena arena;

    // vocabulary: ids 0..n_vocab-1; piece[i] may be NULL for a hole
    int32_t n_vocab;
    char **piece;       // as stored in the file ("Ġhello", "▁hello", " hello", "<0x0A>")
    uint32_t *piece_len;
    char **bytes;       // what the token stands for in text (decode of one token)
    uint32_t *bytes_len;
    double *score;      // SPM / Unigram scores (f64 as HF keeps them), NULL otherwise
    uint8_t *attr;
    uint32_t max_piece_len;

    tk_model_kind model;
    tk_strmap vocab;    // model vocabulary: piece -> id
    tk_pairmap merges;  // BPE: (left id, right id) -> (rank, merged id)
    int32_t unk;        // model's unknown token or -1
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_id[256];      // <0xXX> pieces (-1 when absent)
    double unigram_min_score;
    bool llama2c;             // run.c quirks: codepoints grouped as run.c does, any bytes accepted

    // byte-level (GPT-2) mapping
    bool byte_level;            // a ByteLevel pre-tokenizer is pending at the model: words are raw bytes
    int32_t byte_char_id[256];  // id of the one-character piece of byte b (-1 when absent)
    char bl_char[256][3];       // byte -> UTF-8 of its byte-level character
    uint8_t bl_char_len[256];

    tk_norm *norms;
    int n_norms;
    tk_pre *pres;
    int n_pres;
    tk_dec *decs;
    int n_decs;
    bool has_decoder;

    tk_added *added;
    int n_added;
    int32_t added_first[256]; // index into by_first of the first added token starting with byte
    int32_t *by_first;        // added token indices sorted by first byte, then longest first
    bool any_normalized_added;

    // post-processor for a single sequence
    int32_t *prefix, *suffix;
    int n_prefix, n_suffix;

    int32_t bos, eos, pad;
    char *chat_template;
};

// pretok.c
void tk_byte_level_table(char out[256][3], uint8_t out_len[256]);
// Compiles a pattern with UTF + UCP; the error names `what`.
lt_status tk_regex_compile(const char *pat, size_t len, const char *what, pcre2_code **out,
                           lt_err *err);
// Applies the normalizers to s[0..n) and writes the result to out (replacing its content).
lt_status tk_normalize(const lt_tokenizer *t, const char *s, size_t n, tk_buf *out, lt_err *err);
// The Precompiled normalizer: parse a base64 charsmap into nm (copied into the arena), and
// apply it to s[0..n) (out replaced; false on OOM).
lt_status tk_precompiled_parse(tk_arena *arena, const char *b64, const char *what, tk_norm *nm,
                               lt_err *err);
bool tk_precompiled_apply(const tk_norm *nm, const char *s, size_t n, tk_buf *out);

// A word list: spans into buf. origin: the span starts at offset 0 of the original text.
typedef struct tk_span {
    size_t off, len;
    bool origin;
} tk_span;
typedef struct tk_words {
    tk_buf buf;
    tk_span *sp;
    size_t n, cap;
} tk_words;
bool tk_words_push(tk_words *w, const char *s, size_t n, bool origin);
void tk_words_free(tk_words *w);
// Runs the pre-tokenizers over one segment; words are appended to *out (which is reset first).
// scratch is a second word list reused between calls.
lt_status tk_pretokenize(const lt_tokenizer *t, const char *s, size_t n, bool origin,
                         pcre2_match_data *md, tk_words *out, tk_words *scratch, lt_err *err);

// bpe.c / unigram.c: encode one word (after pre-tokenization) and append ids.
typedef struct tk_scratch tk_scratch;
tk_scratch *tk_scratch_new(void);
void tk_scratch_free(tk_scratch *s);
lt_status tk_bpe_word(const lt_tokenizer *t, const char *w, size_t n, bool raw_bytes,
                      tk_scratch *s, lt_ids *out, lt_err *err);
lt_status tk_unigram_word(const lt_tokenizer *t, const char *w, size_t n, tk_scratch *s,
                          lt_ids *out, lt_err *err);

// tokenizer.c: construction helpers for loaders
lt_tokenizer *tk_new(const char *path); // NULL on OOM
// Allocates the per-id arrays for n ids (all holes). with_scores allocates score[].
lt_status tk_alloc_vocab(lt_tokenizer *t, int32_t n, bool with_scores, lt_err *err);
// Sets piece id (copied into the arena); bytes are derived later by tk_finish.
lt_status tk_set_piece(lt_tokenizer *t, int32_t id, const char *s, size_t n, lt_err *err);
// Adds an added token (its piece must already be set, or is set here).
lt_status tk_add_added(lt_tokenizer *t, const tk_added *a, lt_err *err);
// Builds the lookup maps, byte tables and per-token bytes after the loader filled the rest.
lt_status tk_finish(lt_tokenizer *t, lt_err *err);
int32_t tk_find_special(const lt_tokenizer *t, const char *const *names);
// Reads a whole file (NUL-terminated, caller lt_frees).
lt_status tk_read_file(const char *path, char **data, size_t *n, lt_err *err);

#endif
