/*
 * data.h - tokenised training examples and batching.
 *
 * An example is a sequence of token ids with per-token labels (-100 = no loss, otherwise the id
 * itself; labels are not shifted: the model shifts, as transformers does). Batches are right-padded
 * to T with pad ids, labels -100 and key mask 0. The order of examples in each epoch is a seeded
 * shuffle, so (seed, epoch, cursor) fully determines the data a step sees (resumable runs).
 */
#ifndef LT_DATA_H
#define LT_DATA_H

#include "core/core.h"

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

// The built-in demo task: one order message and the JSON object {"order_id", "customer",
// "quantity", "unit_price", "city"} it states, drawn from r. Both NUL-terminated, cut to fit.
void lt_synth_order(lt_rng *r, char *msg, size_t nmsg, char *json, size_t njson);

#endif
