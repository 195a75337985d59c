/*
 * infer.h - generation: logits processors and sampling, JSON-schema constrained decoding, and
 * batched generation of many prompts over the key/value cache of model.h (lt_kv_new /
 * lt_model_decode), with or without an attached (unmerged) LoRA adapter.
 *
 * Files: sample.c (processors, sampling), json_constraint.c (schema -> byte automaton, vocabulary
 * trie, token masks), generate.c (the batched loop), prompts.c (prompt files and records ->
 * prompt text -> ids, with prompt templates and chat templates).
 *
 * Semantics follow transformers' generate() so results can be compared token for token:
 *  - prompts of a batch are LEFT-padded; the position of a token is the number of real tokens
 *    before it in its row (HF: attention_mask.cumsum(-1) - 1); padding keys are never attended;
 *  - processors run in HF's order: repetition penalty, then (sampling only) temperature, top-k,
 *    top-p; the JSON mask (when constrained) is applied before top-k / top-p, so they choose among
 *    allowed tokens only;
 *  - greedy picks the first maximum (torch.argmax); sampling draws from the softmax with a
 *    per-prompt lt_rng seeded from (seed, prompt index), so results do not depend on --batch.
 * Deliberate differences from HF: the repetition penalty counts real tokens of the prompt and the
 * generated ones, not the left padding (HF also penalises the pad id of padded rows); sampling
 * uses lt_rng, not torch's generator (seeded runs reproduce here, not in torch).
 */
#ifndef LT_INFER_H
#define LT_INFER_H

#include "core/core.h"
#include "data/data.h"
#include "io/io.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

// ---------------------------------------------------------------------------------------------
// logits processors and sampling (sample.c). logits is one row of V floats, changed in place;
// removed tokens become -INFINITY.

// HF RepetitionPenaltyLogitsProcessor: for every DISTINCT id in ids[0..n), a logit l becomes
// l / penalty when l > 0 and l * penalty otherwise. penalty == 1 does nothing. seen is a
// caller scratch of V bytes, all zero on entry and left all zero on return. Ids outside
// [0, V) are ignored.
void lt_logits_repetition_penalty(float *logits, int V, const int32_t *ids, int n, float penalty,
                                  uint8_t *seen);
// HF TemperatureLogitsWarper: l / t (t > 0).
void lt_logits_temperature(float *logits, int V, float t);
// HF TopKLogitsWarper: keeps the logits >= the k-th largest (ties with it are kept, so more than
// k may survive); k <= 0 or k >= V does nothing. scratch: V floats.
void lt_logits_top_k(float *logits, int V, int k, float *scratch);
// HF TopPLogitsWarper: sorts ascending, removes the tokens whose cumulative probability is
// <= 1 - p, always keeping the most likely one. p >= 1 does nothing. idx: V int32 scratch.
void lt_logits_top_p(float *logits, int V, float p, int32_t *idx);
// Index of the first maximum (torch.argmax); -1 when every logit is -inf or NaN.
int32_t lt_sample_argmax(const float *logits, int V);
// Draws from softmax(logits) (entries at -inf have probability 0); -1 when none is finite.
int32_t lt_sample_softmax(const float *logits, int V, lt_rng *r);
// The m largest logits' indices in descending order (first index first on ties), m <= V;
// returns how many were written (fewer when fewer are finite).
int lt_logits_top_m(const float *logits, int V, int m, int32_t *idx);

typedef struct lt_sampler_opts {
    float temperature;        // <= 0: greedy (HF do_sample=False); else sample at this temperature
    int top_k;                // 0: off
    float top_p;              // >= 1: off
    float repetition_penalty; // 1: off; must be > 0
} lt_sampler_opts;

// ---------------------------------------------------------------------------------------------
// JSON-schema constrained decoding (json_constraint.c)
//
// Schema subset (JSON Schema draft 2020-12 keywords): one top-level object
//   {"type": "object", "properties": {name: prop, ...}, "required": [names]}
// where each prop is one of
//   {"type": "string", "minLength"?: n, "maxLength"?: n}      code points, escapes count as one
//   {"type": "number" | "integer", "minimum"?, "maximum"?, "exclusiveMinimum"?,
//   "exclusiveMaximum"?}
//   {"type": "boolean"}
//   {"enum": [v, ...]} or {"const": v}  (strings, numbers, booleans or null; "type" optional)
// Nested objects and arrays, $ref, patterns and formats are LT_ERR_UNSUPPORTED (named in the
// message); "additionalProperties" and "description"/"title" are accepted and ignored (no
// additional property is ever allowed). At most 64 properties.
//
// What the automaton enforces, byte by byte, so that every accepted prefix extends to a
// document that parses and conforms:
//  - keys in the order of "properties", each at most once; required keys must appear, optional
//    ones may be skipped; keys and enum values are matched in their canonical JSON spelling
//    (cJSON's, e.g. "caf\u00e9" is matched as the UTF-8 bytes "café");
//  - strings: valid UTF-8 (no overlongs, no surrogates), no raw control characters, escapes
//    \" \\ \/ \b \f \n \r \t \uXXXX (a high surrogate must be followed by a low one), min/max
//    length in code points;
//  - numbers: a plain decimal grammar  -?(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?  (no exponent, at
//    most 12 integer and 6 fraction digits; integers have no fraction), and the bounds exactly:
//    a digit is allowed only if some completion of the number lies in [minimum, maximum]
//    (bounds are kept in units of 1e-6, so a bound with more decimals is rounded inwards; the
//    grammar's own range is +-(1e12 - 1e-6));
//  - whitespace: runs of at most 8 of " \n\r\t" before and inside the object, between tokens;
//    nothing after the closing brace (generation stops there: EOS is never needed).
// It also knows the fewest bytes that complete the document from any state (lt_jstate_dist),
// which generation uses as a budget: a token is allowed only if the rest still fits in the
// tokens left, so even a model that "wants garbage" ends with a complete document.

typedef struct lt_jschema lt_jschema;

// Compiles a schema. `what` names it in messages (e.g. the file name). *out freed with
// lt_jschema_free. Errors: LT_ERR_FORMAT (not a valid schema of the subset), LT_ERR_UNSUPPORTED
// (a keyword or type outside it), LT_ERR_OOM.
lt_status lt_jschema_compile(const cJSON *schema, const char *what, lt_jschema **out, lt_err *err);
lt_status lt_jschema_load(const char *path, lt_jschema **out, lt_err *err);
void lt_jschema_free(lt_jschema *s);
int lt_jschema_n_props(const lt_jschema *s);
// Bytes of the shortest conforming document.
int lt_jschema_min_bytes(const lt_jschema *s);

// The automaton's state: a small value type, copied freely.
typedef struct lt_jstate {
    uint8_t mode, ws, esc, u8need;
    uint8_t u8lo, u8hi, hex0, hex1;
    int16_t prop, next;
    int16_t depth;
    uint8_t neg, ni, dot, nf;
    int32_t lo, hi;     // literal range [lo, hi) of the current property
    int32_t nchar;      // code points in the current string
    uint64_t keymask;   // candidate keys still matching
    int64_t ival, fval; // number: integer digits, fraction digits
} lt_jstate;

void lt_jstate_init(const lt_jschema *s, lt_jstate *st);
// Feeds bytes. Returns false (st unspecified) when they do not keep the output a valid prefix.
bool lt_jstate_feed(const lt_jschema *s, lt_jstate *st, const char *bytes, size_t n);
// Fewest bytes that complete a conforming document from st (0 when complete).
int lt_jstate_dist(const lt_jschema *s, const lt_jstate *st);
bool lt_jstate_done(const lt_jstate *st);

// A schema joined with a tokenizer's vocabulary: the non-special tokens' bytes in a trie, so a
// full scan validates shared prefixes once and prunes whole subtrees.
typedef struct lt_jvocab lt_jvocab;
// The schema is BORROWED (must outlive jv); the tokenizer is only read during the call.
// Fails with LT_ERR_UNSUPPORTED when the vocabulary lacks a single-byte token for a byte that a
// shortest completion may need (structural characters, digits, bytes of keys and enum values),
// since the budget counts one token per byte.
lt_status lt_jvocab_new(const lt_jschema *s, const lt_tokenizer *tok, lt_jvocab **out, lt_err *err);
void lt_jvocab_free(lt_jvocab *jv);
const lt_jschema *lt_jvocab_schema(const lt_jvocab *jv);
// Whether token id may follow state st when `budget` tokens may still come after it. If so and
// after != NULL, *after is the state after it.
bool lt_jvocab_token_ok(const lt_jvocab *jv, const lt_jstate *st, int32_t id, int budget,
                        lt_jstate *after);
// Full scan: allowed[id] = 1 for every allowed token, 0 otherwise, for ids < n (n is at least
// the tokenizer's vocabulary size or the model's, whichever the caller uses; ids beyond the
// tokenizer are 0). Returns the number allowed.
int lt_jvocab_allowed(const lt_jvocab *jv, const lt_jstate *st, int budget, uint8_t *allowed,
                      int n);

// ---------------------------------------------------------------------------------------------
// batched generation (generate.c)

typedef enum {
    LT_FINISH_LENGTH = 0, // max_new_tokens reached
    LT_FINISH_EOS,        // the model chose EOS (not part of the output)
    LT_FINISH_STOP,       // a stop string appeared (the text is cut before it)
    LT_FINISH_JSON,       // constrained: the document is complete
} lt_finish;
const char *lt_finish_name(lt_finish f); // "length", "eos", "stop", "json"

typedef struct lt_gen_opts {
    int max_new_tokens;      // default 128
    lt_sampler_opts sampler; // default greedy, no penalty
    uint64_t seed;           // default 0
    const char *const *stop; // stop strings (borrowed), n_stop of them; ignored with json
    int n_stop;
    int batch;             // prompts decoded together (default 8)
    int32_t eos_id;        // -1 (default): the tokenizer's, else the model config's
    int32_t pad_id;        // id fed at padded positions; -1 (default): pad, eos or 0
    const lt_jvocab *json; // constrain to this schema (needs the tokenizer); NULL: free text
    bool progress;         // progress bar over prompts on stderr
    // Streaming (may be NULL): called for each generated token of prompt `idx` with its bytes
    // (lt_tokenizer_token_bytes; NULL/0 without a tokenizer), in generation order.
    void (*on_token)(void *ud, int64_t idx, int32_t id, const char *bytes, size_t n);
    void *ud;
} lt_gen_opts;
void lt_gen_opts_default(lt_gen_opts *o);

typedef struct lt_gen_out {
    int32_t *ids; // generated ids, EOS excluded (lt_alloc; lt_gen_out_deinit frees)
    int n_ids;
    char *text;      // lt_tokenizer_decode(ids, skip special), cut before a stop string;
    size_t text_len; // NULL without a tokenizer
    lt_finish finish;
    int n_prompt; // prompt tokens
} lt_gen_out;

// Generates for n prompts (prompts[i] has prompt_len[i] >= 1 ids, already encoded with any BOS).
// m may have an adapter attached (it is applied unmerged by lt_model_decode). tok may be NULL
// when there are no stop strings and no JSON constraint (then ids only). out is a caller array of
// n entries, filled on success (zeroed on failure). Prompts must fit: prompt_len + max_new_tokens
// <= the model's positions (LT_ERR_ARG naming the prompt otherwise). With a JSON constraint,
// max_new_tokens must be at least lt_jschema_min_bytes (LT_ERR_ARG otherwise); every output then
// parses and conforms.
lt_status lt_generate(lt_model *m, const lt_tokenizer *tok, const int32_t *const *prompts,
                      const int *prompt_len, int64_t n, const lt_gen_opts *o, lt_gen_out *out,
                      lt_err *err);
void lt_gen_out_deinit(lt_gen_out *outs, int64_t n); // frees the arrays' contents, not outs

// ---------------------------------------------------------------------------------------------
// prompts (prompts.c): what `loratune generate` feeds the model
//
// A record gives its prompt text by the first rule that applies:
//  1. a "messages" (or "conversations") list, when chat is on or the record has no prompt field:
//     the messages up to the last assistant message (that one is the answer, left out) rendered
//     by the chat template with add_generation_prompt, as training renders them;
//  2. a prompt template (opts.template_src, or "alpaca" for {"instruction", ...} records): the
//     rendering up to where its response placeholder starts (a record without the response
//     field gets a placeholder value, so the prompt is the same with or without it);
//  3. the string field opts.field (default "prompt"; "text" when there is no "prompt"); with
//     chat on it becomes the user message (after opts.system, if any) of a chat rendering.
// Chat renderings are encoded without special tokens (the template writes them, as
// apply_chat_template does); plain prompts with them (BOS where the tokenizer adds one; an EOS the
// post-processor appends is dropped, the answer has to come first).

typedef struct lt_prompt_opts {
    bool chat;                 // plain prompts become user messages of a chat rendering
    const char *system;        // system message for chat-wrapped plain prompts (NULL: none)
    const char *chat_template; // Jinja source overriding the tokenizer's (NULL: the tokenizer's)
    const char *template_src;  // prompt template (built-in name or text) for records, or NULL
    const char *field;         // the prompt field (NULL: "prompt", else "text")
    const char *id_field;      // copied to the output records (NULL: "id")
} lt_prompt_opts;

// A list of prompts: the text given to the tokenizer, the ids, and each record's id (or NULL).
typedef struct lt_prompts {
    int64_t n, cap;
    char **text, **id; // (n) lt_alloc'd strings
    int32_t **ids;     // (n) lt_alloc'd
    int *len;          // (n)
} lt_prompts;
void lt_prompts_deinit(lt_prompts *p);

typedef struct lt_prompter lt_prompter;
// tok is borrowed (must outlive p). Errors: LT_ERR_ARG (a chat template needed and missing, a
// template syntax error), LT_ERR_FORMAT / LT_ERR_UNSUPPORTED from the chat template, LT_ERR_OOM.
lt_status lt_prompter_new(const lt_tokenizer *tok, const lt_prompt_opts *o, lt_prompter **out,
                          lt_err *err);
void lt_prompter_free(lt_prompter *p);
// Appends one plain prompt (with chat wrapping when on). id may be NULL.
lt_status lt_prompts_add_text(lt_prompts *ps, const lt_prompter *p, const char *text,
                              const char *id, lt_err *err);
// Appends the prompts of a file: .txt gives one prompt per non-empty line (a trailing "\r" is
// dropped); .jsonl / .json / .csv / .tsv give one per record (rules above). Errors name the file
// and line.
lt_status lt_prompts_load(lt_prompts *ps, const lt_prompter *p, const char *path, lt_err *err);

#endif
