/*
 * data.h - datasets: records from files, prompt templates, loss masks, examples and batching.
 *
 * Data flow (DESIGN.md):
 *   file (JSONL / JSON array / CSV / TSV) --lt_records_read--> records of named fields
 *   record --lt_sft (shape: text, prompt/completion, instruction + template, chat messages)-->
 *     text with loss spans --tokenizer--> ids + labels --truncate / drop--> lt_dataset
 *   lt_dataset --lt_dataset_pack (optional)--> packed sequences --lt_batch_fill--> (B, T) batches
 * An example is a sequence of token ids with per-token labels (-100 = no loss, otherwise the id
 * itself; labels are not shifted: the model shifts, as transformers does). Batches are right-padded
 * to T with pad ids, labels -100 and key mask 0. The order of examples in each epoch is a seeded
 * shuffle, so (seed, epoch, cursor) fully determines the data a step sees (resumable runs).
 *
 * Files: dataset.c (examples, splits, batches), text.c (plain text), records.c (readers),
 * template.c (prompt templates), sft.c (records -> ids + labels), split.c (record splits,
 * packing, shuffling), synth.c (demo data).
 */
#ifndef LT_DATA_H
#define LT_DATA_H

#include "core/core.h"
#include "tokenizer/tokenizer.h"

typedef struct lt_example {
    int32_t *ids, *labels; // (len) each
    int len;
} lt_example;

typedef struct lt_dataset {
    lt_example *ex;
    int64_t n, cap;
    int64_t n_truncated; // examples cut to max length when added
} lt_dataset;

void lt_dataset_init(lt_dataset *d);
void lt_dataset_deinit(lt_dataset *d);
// Appends a copy of (ids, labels) (labels NULL: loss on every token), cut to max_len tokens.
lt_status lt_dataset_add(lt_dataset *d, const int32_t *ids, const int32_t *labels, int len,
                         int max_len, lt_err *err);
// Moves the last n_val examples (after a seeded shuffle) into val. n_val < d->n.
lt_status lt_dataset_split(lt_dataset *d, lt_dataset *val, int64_t n_val, uint64_t seed, lt_err *err);
// Reads JSONL records {"input_ids": [...], "labels": [...]} (labels optional). Errors name the
// file and line.
lt_status lt_dataset_read_ids_jsonl(lt_dataset *d, const char *path, int max_len, int n_vocab,
                                    lt_err *err);
// Cuts a token stream into consecutive examples of max_len tokens (the last one may be shorter;
// ones shorter than 2 tokens are dropped).
lt_status lt_dataset_add_stream(lt_dataset *d, const int32_t *ids, int64_t n, int max_len,
                                lt_err *err);

struct lt_tokenizer;
// Plain text: documents separated by `sep` (NULL: the whole file is one document), each encoded
// with the tokenizer's special tokens and cut into examples of at most max_len tokens.
lt_status lt_dataset_read_text(lt_dataset *d, const struct lt_tokenizer *tok, const char *path,
                               const char *sep, int max_len, lt_err *err);
// JSONL with one document per record in the string field `field` (e.g. "text").
lt_status lt_dataset_read_text_jsonl(lt_dataset *d, const struct lt_tokenizer *tok,
                                     const char *path, const char *field, int max_len, lt_err *err);

// The permutation of 0..n-1 used in epoch `epoch` (Fisher-Yates from (seed, epoch)).
void lt_dataset_order(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch);

// Fills a (B, T) batch from examples idx[0..B) (idx[i] < 0: an all-padding row).
// ids/labels/kmask are (B*T) arrays owned by the caller.
void lt_batch_fill(const lt_dataset *d, const int64_t *idx, int B, int T, int32_t pad_id,
                   int32_t *ids, int32_t *labels, int32_t *kmask);

// =============================================================================================
// Records: JSONL, JSON arrays of objects, CSV and TSV files -> records of named fields.
//
// JSONL: one JSON object per line; blank lines are ignored; UTF-8 BOM skipped. A line that is not
//   a JSON object (syntax error, array, empty object) or holds invalid UTF-8 is a bad record.
// JSON: one array of objects. A syntax error anywhere breaks the whole file (LT_ERR_FORMAT with
//   line:column, whatever on_bad says); an element that is not an object, or is an empty object,
//   or holds invalid UTF-8 is a bad record named by its line and 1-based record number.
// CSV (RFC 4180): fields separated by ',', records by LF or CRLF; a field starting with '"' is
//   quoted: it may hold ',', '"' written as '""', CR and LF; after the closing quote only ',' or
//   the end of the record may follow. A '"' inside an unquoted field is kept as a literal.
//   Every record must have as many fields as the header (or `columns`). Blank lines are ignored.
// TSV: fields separated by TAB, records by LF or CRLF, no quoting and no escapes (as the IANA
//   text/tab-separated-values type and the SMS Spam Collection): '"' is an ordinary character.
// CSV/TSV header: the first record names the columns unless `columns` is given ("label,text");
//   header = 1 with `columns` skips the file's header line and uses `columns` instead.
// Values: JSON strings, numbers ("3", "0.5", as %.17g unless integral), booleans ("true") keep a
//   text form; "messages" (or ShareGPT "conversations" with from/value, mapped to role/content
//   as TRL does: human -> user, gpt -> assistant) must be an array of objects with string "role"
//   and "content", else the record is bad; other arrays, objects and null are kept as their type
//   only. CSV/TSV fields are strings. A NUL byte in a CSV/TSV field is a bad record.
// Bad records: with LT_ON_BAD_STOP the read fails with LT_ERR_FORMAT and a message
//   "file:line: what" ("file:line (record k): what" for JSON arrays); with LT_ON_BAD_SKIP the
//   record is left out, counted in ->bad.n, and the first LT_BAD_NOTES messages are kept.
// =============================================================================================

typedef enum {
    LT_DATA_AUTO = 0, // from the file name: .jsonl/.ndjson, .json, .csv, .tsv/.tab
    LT_DATA_JSONL,
    LT_DATA_JSON,
    LT_DATA_CSV,
    LT_DATA_TSV,
    LT_DATA_TEXT, // plain text (lt_dataset_read_text); not a record format
    LT_DATA_IDS,  // {"input_ids", "labels"} JSONL (lt_dataset_read_ids_jsonl); not a record format
} lt_data_format;

// Parses "auto", "jsonl", "json", "csv", "tsv", "text"; LT_ERR_ARG otherwise.
lt_status lt_data_format_parse(const char *s, lt_data_format *out, lt_err *err);
// The format `path` has under LT_DATA_AUTO: .ids.jsonl -> IDS, .jsonl/.ndjson -> JSONL, .json ->
// JSON, .csv -> CSV, .tsv/.tab -> TSV, anything else -> TEXT.
lt_data_format lt_data_format_guess(const char *path);
const char *lt_data_format_name(lt_data_format f);

typedef enum { LT_ON_BAD_STOP = 0, LT_ON_BAD_SKIP } lt_on_bad;

#define LT_BAD_NOTES 5
// Bad records that were skipped: how many, and the messages of the first LT_BAD_NOTES.
typedef struct lt_bad_log {
    int64_t n;
    int n_notes;
    char notes[LT_BAD_NOTES][256];
} lt_bad_log;

typedef enum {
    LT_FIELD_STR = 0, // str/len: the string (valid UTF-8, NUL-terminated)
    LT_FIELD_NUM,     // str/len: its text ("3", "0.25")
    LT_FIELD_BOOL,    // str/len: "true" or "false"
    LT_FIELD_NULL,
    LT_FIELD_MSGS, // msgs/n_msgs: chat messages
    LT_FIELD_OTHER // an array or object that is not chat messages
} lt_field_type;

// One chat message; same layout as lt_chat_msg of tokenizer/chat_template.h.
typedef struct lt_record_msg {
    const char *role, *content;
} lt_record_msg;

typedef struct lt_field {
    const char *key;
    lt_field_type type;
    const char *str; // STR/NUM/BOOL; NULL otherwise
    size_t len;
    const lt_record_msg *msgs; // MSGS; n_msgs >= 1
    int n_msgs;
} lt_field;

typedef struct lt_record {
    const lt_field *fields;
    int n_fields;
    int64_t line;  // 1-based line of the file where the record starts
    int64_t index; // 1-based position of the record in the file, bad ones counted
} lt_record;

// A set of records; everything it points to is owned by it (freed by lt_records_deinit).
typedef struct lt_records {
    lt_record *rec; // (n)
    int64_t n, cap;
    lt_data_format format; // of the file read
    char *path;            // the name used in messages
    lt_bad_log bad;        // bad records skipped while reading
    struct lt_rec_block *blocks; // private: storage of fields and strings
} lt_records;

typedef struct lt_read_opts {
    lt_data_format format; // LT_DATA_AUTO: from the file name (TEXT and IDS are refused)
    lt_on_bad on_bad;
    int header;          // CSV/TSV: -1 auto (a header line unless columns is given), 0 no, 1 yes
    const char *columns; // CSV/TSV: comma-separated column names, e.g. "label,text"; or NULL
    int64_t max_records; // stop after this many good records; 0 = all
} lt_read_opts;

void lt_read_opts_default(lt_read_opts *o); // AUTO, STOP, header -1, no columns, all records
void lt_records_init(lt_records *r);
void lt_records_deinit(lt_records *r);
// Reads a file and APPENDS its records to r. Errors: LT_ERR_IO (the file), LT_ERR_FORMAT (a bad
// record with LT_ON_BAD_STOP, a broken JSON array, a bad CSV header), LT_ERR_ARG (options),
// LT_ERR_OOM. On failure r keeps the records read before the failing one.
lt_status lt_records_read(lt_records *r, const char *path, const lt_read_opts *o, lt_err *err);
// The same over data[0..n) (need not be NUL-terminated); `name` stands for the file in messages
// and, under LT_DATA_AUTO, gives the format by its extension.
lt_status lt_records_read_mem(lt_records *r, const char *data, size_t n, const char *name,
                              const lt_read_opts *o, lt_err *err);
// The field named key, or NULL. Borrowed from the records.
const lt_field *lt_record_get(const lt_record *rec, const char *key);
// "path:line" or, for JSON arrays, "path:line (record k)": the prefix of messages about rec.
void lt_record_where(const lt_records *r, const lt_record *rec, char *buf, size_t n);

// =============================================================================================
// Prompt templates: text with {field} placeholders filled from a record.
//
// Syntax: "{name}" is replaced by the record's field (string, number or boolean); "{name?}" may
// be missing (then it renders empty); "{{" and "}}" are literal braces; a lone "}" is literal.
// Names are [A-Za-z0-9_.-]+. A missing field without '?' or a field of another type is an error
// (LT_ERR_FORMAT) naming the field.
// Sections: the template is cut at blank lines ("\n\n"); a section with placeholders that all
// render empty is left out with its separator, so "### Input:\n{input}" disappears when input is
// "" (Stanford Alpaca / rasbt style).
// The response placeholder (the first of {output}, {completion}, {response}, {answer} the
// template contains, or the one lt_template_set_response names) marks where the response starts:
// everything from the start of its value to the end of the text is the response.
// Built-in templates by name (lt_template_builtins lists them):
//   alpaca     Stanford Alpaca (its two preambles, with and without input)
//   alpaca-ja  the Japanese Alpaca translation (以下は、タスクを説明する指示... ### 指示: ...)
//   ja         "### 指示\n{instruction}\n\n### 入力\n{input?}\n\n### 応答\n{output}"
//   rasbt      rasbt/LLMs-from-scratch ch. 7 (one preamble, input section dropped when empty)
// =============================================================================================

typedef struct lt_template lt_template;

// src is a built-in name or a template string (copied). LT_ERR_ARG on a syntax error (the
// message gives the byte offset), LT_ERR_OOM.
lt_status lt_template_new(const char *src, lt_template **out, lt_err *err);
void lt_template_free(lt_template *t); // NULL does nothing
// Comma-separated names of the built-in templates, for help texts.
const char *lt_template_builtins(void);
// Chooses the response placeholder (NULL: the default rule above). LT_ERR_ARG when the template
// has no such placeholder.
lt_status lt_template_set_response(lt_template *t, const char *field, lt_err *err);
// The response placeholder's field name, or NULL when the template has none.
const char *lt_template_response(const lt_template *t);
// True when the template has a placeholder for `field`.
bool lt_template_uses(const lt_template *t, const char *field);
// Renders rec. *text (NUL-terminated, lt_alloc'd, caller frees) and *len; *resp_off is the byte
// offset where the response placeholder's value starts, or SIZE_MAX when there is none.
// Errors: LT_ERR_FORMAT (missing field / wrong type; message names the field), LT_ERR_OOM.
lt_status lt_template_render(const lt_template *t, const lt_record *rec, char **text, size_t *len,
                             size_t *resp_off, lt_err *err);

// A classification record -> its text (rendered by t; t NULL renders "{text}") and its label
// (the string, number or boolean text of field label_field, not empty; borrowed from rec).
lt_status lt_cls_record(const lt_template *t, const lt_record *rec, const char *label_field,
                        char **text, size_t *len, const char **label, lt_err *err);

// =============================================================================================
// SFT examples: records -> token ids with labels (loss masks).
//
// Shapes (LT_SHAPE_AUTO picks from the first record: messages/conversations -> CHAT,
// instruction + output -> INSTRUCTION, prompt + completion -> PROMPT_COMPLETION, else the
// text field -> TEXT; a user template makes it TEMPLATE):
//   TEXT               {"text"}: the whole text; loss on all tokens.
//   PROMPT_COMPLETION  {"prompt","completion"}: text = prompt + completion (as TRL).
//   INSTRUCTION        {"instruction","input","output"}: rendered by the template (default
//                      alpaca); the response starts where {output} starts.
//   TEMPLATE           any fields, rendered by a user template; the response (if the template
//                      has one) starts at its response placeholder.
//   CHAT               {"messages":[{"role","content"}...]}: rendered by the tokenizer's chat
//                      template (or opts.chat_template); the assistant turn k spans
//                      [len(render(msgs[:k], add_generation_prompt)), len(render(msgs[:k+1])))
//                      of the full rendering, as TRL's assistant-only masks do.
// Loss (LT_LOSS_AUTO: COMPLETION for prompt/completion, instruction and templates with a response,
//   ASSISTANT for chats, ALL otherwise):
//   ALL         every token; COMPLETION: the response only (for chats: the last assistant turn);
//   ASSISTANT   every assistant turn (chats only).
//   response_template: TRL's DataCollatorForCompletionOnlyLM: the ids of this string (encoded
//   without special tokens) are searched in the example's ids; tokens after the LAST match carry
//   loss, the match and everything before it do not. When the ids do not occur (the string
//   tokenizes differently in context) the string is searched in the text and the loss starts at
//   the first token that reaches past its end (counted in n_rt_text); when neither occurs the
//   example has no loss and is dropped (TRL kept it with every label -100).
// Tokenisation: non-chat text is encoded with the tokenizer's special tokens (BOS as its
//   post-processor adds it; HF add_special_tokens=True); a chat rendering without (the template
//   writes bos_token itself; apply_chat_template does the same). A span boundary at byte b maps to
//   a token index by encoding text[0..b): when those ids are a prefix of the full ids the boundary
//   is exactly there (post-processor tokens at the end of the prefix's ids, such as an added EOS,
//   are dropped first). Otherwise a BPE merge crosses the boundary (a prompt ending in a space,
//   say): the tokens whose bytes lie entirely before b stay on the prompt side and the token
//   straddling b goes with the response, so it carries loss (counted in n_boundary_merge). TRL
//   starts the completion at the common prefix of both id lists; that is the same token in the
//   usual case and never later than ours.
// EOS: for non-chat shapes (add_eos) the tokenizer's EOS id is appended, with the loss of the
//   last token, unless the ids already end with it (TRL appends eos_token to the text unless it
//   ends with it). Chat templates write their own end-of-turn tokens.
// Truncation to max_len: RIGHT keeps the first max_len tokens, LEFT the last ones (keeping a
//   leading BOS), SPLIT cuts the example into consecutive pieces of max_len (pieces under 2
//   tokens dropped; the old plain-text behaviour). Truncated examples are counted. An example
//   with no loss left on tokens 1.. (token 0 is never predicted) is dropped and counted.
// Bad records (missing field, wrong type, empty text/completion/output, no assistant message
//   for assistant loss): LT_ERR_FORMAT "file:line: what" with LT_ON_BAD_STOP, else skipped and
//   counted in the stats.
// =============================================================================================

typedef enum {
    LT_SHAPE_AUTO = 0,
    LT_SHAPE_TEXT,
    LT_SHAPE_PROMPT_COMPLETION,
    LT_SHAPE_INSTRUCTION,
    LT_SHAPE_TEMPLATE,
    LT_SHAPE_CHAT,
} lt_shape;
typedef enum { LT_LOSS_AUTO = 0, LT_LOSS_ALL, LT_LOSS_COMPLETION, LT_LOSS_ASSISTANT } lt_loss_on;
typedef enum { LT_TRUNC_AUTO = 0, LT_TRUNC_RIGHT, LT_TRUNC_LEFT, LT_TRUNC_SPLIT } lt_truncate;

const char *lt_shape_name(lt_shape s);
lt_status lt_loss_on_parse(const char *s, lt_loss_on *out, lt_err *err); // completion|all|assistant|auto
lt_status lt_truncate_parse(const char *s, lt_truncate *out, lt_err *err); // right|left|split|auto
lt_status lt_on_bad_parse(const char *s, lt_on_bad *out, lt_err *err);     // skip|stop

typedef struct lt_sft_opts {
    lt_shape shape;
    const char *template_src;      // built-in name or template string; NULL: per shape
    const char *response_field;    // response placeholder (NULL: default rule of templates)
    const char *text_field;        // TEXT shape field (default "text")
    const char *chat_template;     // Jinja source overriding the tokenizer's; NULL: the tokenizer's
    lt_loss_on loss_on;
    const char *response_template; // NULL or "" for none
    int max_len;                   // tokens per example (> 1)
    lt_truncate truncate;          // AUTO: SPLIT for TEXT with ALL loss, RIGHT otherwise
    bool add_eos;                  // default true
    lt_on_bad on_bad;
} lt_sft_opts;
void lt_sft_opts_default(lt_sft_opts *o); // AUTO everything, max_len 256, add_eos, STOP

typedef struct lt_sft_stats {
    int64_t n_records;        // records looked at
    int64_t n_examples;       // examples added to the dataset
    int64_t n_tokens;         // tokens in them
    int64_t n_loss_tokens;    // tokens carrying loss (position 0 excluded)
    int64_t n_truncated;      // examples cut to max_len (SPLIT: examples that were split)
    int64_t n_no_loss;        // examples dropped because no token carries loss
    int64_t n_boundary_merge; // a BPE merge (or a chat template) crossed a loss boundary
    int64_t n_rt_text;        // response template found in the text only, not as ids
    lt_bad_log bad;           // bad records skipped
} lt_sft_stats;

typedef struct lt_sft lt_sft;
struct lt_tokenizer;

// Prepares the conversion: resolves the shape (AUTO looks at `sample`, which may then not be
// NULL), the template, the chat template and the loss. tok is borrowed (must outlive s).
// Errors: LT_ERR_ARG (inconsistent options: assistant loss without chats, completion loss
// without a response, a chat shape without a chat template, ...; a template syntax error),
// LT_ERR_UNSUPPORTED (chat records in a build without chat templates), LT_ERR_OOM.
lt_status lt_sft_new(const struct lt_tokenizer *tok, const lt_sft_opts *o, const lt_record *sample,
                     lt_sft **out, lt_err *err);
void lt_sft_free(lt_sft *s); // NULL does nothing
lt_shape lt_sft_shape(const lt_sft *s);
lt_loss_on lt_sft_loss_on(const lt_sft *s);
lt_truncate lt_sft_truncation(const lt_sft *s);

// A byte range [b, e) of a rendered text that carries loss.
typedef struct lt_span {
    size_t b, e;
} lt_span;
// Record i of recs rendered as text with its loss spans (before tokenisation). *text and *spans
// are lt_alloc'd (caller frees both); *n_spans may be 0 (ALL loss has one span over the text).
lt_status lt_sft_render(const lt_sft *s, const lt_records *recs, int64_t i, char **text,
                        size_t *len, lt_span **spans, int *n_spans, lt_err *err);

// Per-example notes from lt_sft_encode.
enum {
    LT_SFT_BOUNDARY_MERGE = 1u << 0, // a loss boundary fell inside a token
    LT_SFT_RT_TEXT = 1u << 1,        // response template found only in the text
    LT_SFT_EOS_ADDED = 1u << 2,      // EOS appended
};
// Record i of recs -> the full example (not truncated): ids and labels (same length) are
// REPLACED (n reset to 0 first). *notes gets LT_SFT_* bits (may be NULL). A bad record gives
// LT_ERR_FORMAT "file:line: what" whatever on_bad says (lt_sft_build applies the policy).
lt_status lt_sft_encode(const lt_sft *s, const lt_records *recs, int64_t i, lt_ids *ids,
                        lt_ids *labels, unsigned *notes, lt_err *err);
// Cuts an example to max_len per s's truncation (RIGHT or LEFT; SPLIT acts as RIGHT here):
// *len is updated, the arrays are edited in place. Returns true when it cut.
bool lt_sft_truncate(const lt_sft *s, int32_t *ids, int32_t *labels, size_t *len);
// Encodes records idx[0..n_idx) (idx NULL: all records in order), truncates, and appends the
// examples to d. stats (may be NULL) is ADDED to, so several calls accumulate.
lt_status lt_sft_build(const lt_sft *s, const lt_records *recs, const int64_t *idx, int64_t n_idx,
                       lt_dataset *d, lt_sft_stats *stats, lt_err *err);

// =============================================================================================
// Splits, shuffling, packing.
// =============================================================================================

// Splits records 0..recs->n-1 into training and validation index lists (each in increasing
// order; lt_free both). n_val validation records are drawn with a seeded shuffle. With
// `stratify` (a field name, e.g. "label"), each class (distinct value of that field) gives
// floor(n_c * n_val / n) records and the remaining ones go to the classes with the largest
// remainders (ties: first class in file order), so per-class proportions are kept and the total
// is exactly n_val. Errors: LT_ERR_ARG (n_val < 0 or >= n), LT_ERR_FORMAT (a record without a
// string/number/boolean stratify field, named by file:line), LT_ERR_OOM.
lt_status lt_records_split(const lt_records *recs, int64_t n_val, uint64_t seed,
                           const char *stratify, int64_t **train_idx, int64_t *n_train,
                           int64_t **val_idx, int64_t *n_val_out, lt_err *err);

// Shuffles the examples of d in place (Fisher-Yates from seed).
void lt_dataset_shuffle(lt_dataset *d, uint64_t seed);

// Packs the examples of src into sequences of at most T tokens and APPENDS them to dst (src is
// unchanged). Best-fit decreasing, as TRL's default "bfd" packing: longest first, each into the
// fullest sequence that still has room (ties: the one that got that room first, as TRL's
// deque per free space); examples keep their order of
// placement inside a sequence. When sep_id >= 0, an example that does not end with sep_id gets
// one appended (label -100) if it fits, so examples stay apart. Labels stay per example.
// Examples longer than T are cut to T (counted in dst->n_truncated). Note: attention is not
// blocked between packed examples (no per-example position ids), as in TRL without
// padding_free.
lt_status lt_dataset_pack(const lt_dataset *src, int T, int32_t sep_id, lt_dataset *dst,
                          lt_err *err);

// =============================================================================================
// Loading a training set in one call (what `loratune train` does with its data flags).
// =============================================================================================

typedef struct lt_data_opts {
    const char *path;
    lt_read_opts read;     // format (AUTO: from the name), on_bad, header, columns
    lt_sft_opts sft;       // shape, template, loss, response template, max_len, truncation
    const char *separator; // plain text: document separator (NULL: the whole file is one)
    bool packing;          // pack examples into max_len sequences (EOS between them)
    int64_t n_val;         // validation records (examples for text / ids files)
    double val_frac;       // or this fraction of them (rounded up) when n_val is 0
    const char *stratify;  // records: stratify the validation split by this field
    uint64_t seed;         // split seed
} lt_data_opts;
void lt_data_opts_default(lt_data_opts *o);

typedef struct lt_data_summary {
    lt_data_format format; // the format used
    int64_t n_records;     // records read (records formats)
    lt_bad_log read_bad;   // bad records skipped while reading
    lt_shape shape;        // records: the shape used
    lt_loss_on loss;       // records: the loss used
    lt_truncate trunc;     // records: the truncation used
    lt_sft_stats stats;    // records: train and validation together
    int64_t n_before_pack; // examples before packing (train + val); 0 without packing
} lt_data_summary;

// Reads o->path into train and val (both initialised by the caller; val may stay empty):
// .txt -> lt_dataset_read_text, .ids.jsonl -> lt_dataset_read_ids_jsonl (n_vocab checks ids),
// records -> lt_records_read + lt_records_split + lt_sft_build (+ lt_dataset_pack). tok may be
// NULL only for ids files. sum (may be NULL) says what happened. Errors as the functions called.
lt_status lt_data_load(const struct lt_tokenizer *tok, int32_t n_vocab, const lt_data_opts *o,
                       lt_dataset *train, lt_dataset *val, lt_data_summary *sum, lt_err *err);
// One line describing sum for users ("data.jsonl (jsonl, instruction records, loss on
// completion): 1100 records -> 990 training + 110 validation examples; ..."), cut to fit buf.
// The bad-record notes (sum->read_bad, sum->stats.bad) are not included.
void lt_data_summary_describe(const lt_data_summary *sum, const char *path,
                              const lt_dataset *train, const lt_dataset *val, int max_len,
                              char *buf, size_t n);

// The built-in demo task: one order message and the JSON object {"order_id", "customer",
// "quantity", "unit_price", "city"} it states, drawn from r. Both NUL-terminated, cut to fit.
void lt_synth_order(lt_rng *r, char *msg, size_t nmsg, char *json, size_t njson);

#endif
