/*
 * load.c - one call from a data file and its options to training and validation examples:
 * plain text and token-id files as before, record files through records -> split -> SFT
 * examples -> optional packing. The CLI commands (train, tokenize) share it.
 */
#include "data/data_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lt_data_opts_default(lt_data_opts *o) {
    memset(o, 0, sizeof *o);
    lt_read_opts_default(&o->read);
    lt_sft_opts_default(&o->sft);
    o->seed = 42;
}

static int64_t val_count(const lt_data_opts *o, int64_t n) {
    if (o->n_val > 0) return o->n_val;
    if (o->val_frac > 0) return (int64_t)ceil(o->val_frac * (double)n);
    return 0;
}

lt_status lt_data_load(const lt_tokenizer *tok, int32_t n_vocab, const lt_data_opts *o,
                       lt_dataset *train, lt_dataset *val, lt_data_summary *sum, lt_err *err) {
    lt_data_summary local;
    if (!sum) sum = &local;
    memset(sum, 0, sizeof *sum);
    if (!o->path) return lt_err_set(err, LT_ERR_ARG, "no data file");
    int max_len = o->sft.max_len;
    lt_data_format f = o->read.format == LT_DATA_AUTO ? lt_data_format_guess(o->path)
                                                      : o->read.format;
    sum->format = f;
    lt_status st;
    if (f == LT_DATA_IDS || f == LT_DATA_TEXT) {
        if (f == LT_DATA_IDS) {
            st = lt_dataset_read_ids_jsonl(train, o->path, max_len, n_vocab, err);
        } else {
            if (!tok) return lt_err_set(err, LT_ERR_ARG, "%s: text data needs a tokenizer", o->path);
            st = lt_dataset_read_text(train, tok, o->path,
                                      o->separator && o->separator[0] ? o->separator : NULL,
                                      max_len, err);
        }
        if (!st) st = lt_dataset_split(train, val, val_count(o, train->n), o->seed, err);
        return st;
    }
    if (!tok) return lt_err_set(err, LT_ERR_ARG, "%s: record data needs a tokenizer", o->path);
    lt_records recs;
    lt_records_init(&recs);
    lt_sft *s = NULL;
    int64_t *tr = NULL, *va = NULL, ntr = 0, nva = 0;
    lt_dataset tmp_tr, tmp_va;
    lt_dataset_init(&tmp_tr);
    lt_dataset_init(&tmp_va);
    lt_read_opts ro = o->read;
    ro.format = f;
    if ((st = lt_records_read(&recs, o->path, &ro, err))) goto out;
    sum->n_records = recs.n;
    sum->read_bad = recs.bad;
    if (recs.n == 0) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: no records%s", o->path,
                        recs.bad.n ? " (all of them were bad)" : "");
        goto out;
    }
    if ((st = lt_sft_new(tok, &o->sft, &recs.rec[0], &s, err))) goto out;
    sum->shape = lt_sft_shape(s);
    sum->loss = lt_sft_loss_on(s);
    sum->trunc = lt_sft_truncation(s);
    if ((st = lt_records_split(&recs, val_count(o, recs.n), o->seed, o->stratify, &tr, &ntr, &va,
                               &nva, err)))
        goto out;
    lt_dataset *dtr = o->packing ? &tmp_tr : train, *dva = o->packing ? &tmp_va : val;
    if ((st = lt_sft_build(s, &recs, tr, ntr, dtr, &sum->stats, err))) goto out;
    if ((st = lt_sft_build(s, &recs, va, nva, dva, &sum->stats, err))) goto out;
    if (o->packing) {
        int32_t sep = lt_tokenizer_eos(tok);
        sum->n_before_pack = tmp_tr.n + tmp_va.n;
        if ((st = lt_dataset_pack(&tmp_tr, max_len, sep, train, err))) goto out;
        if ((st = lt_dataset_pack(&tmp_va, max_len, sep, val, err))) goto out;
        train->n_truncated += tmp_tr.n_truncated;
        val->n_truncated += tmp_va.n_truncated;
    }
out:
    lt_dataset_deinit(&tmp_tr);
    lt_dataset_deinit(&tmp_va);
    lt_free(tr);
    lt_free(va);
    lt_sft_free(s);
    lt_records_deinit(&recs);
    return st;
}

static const char *loss_name(lt_loss_on l) {
    switch (l) {
    case LT_LOSS_ALL: return "all tokens";
    case LT_LOSS_COMPLETION: return "the completion";
    case LT_LOSS_ASSISTANT: return "assistant turns";
    default: return "auto";
    }
}

LT_PRINTF(3, 4) static void cat(char *buf, size_t n, const char *fmt, ...) {
    size_t o = strlen(buf);
    if (o + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + o, n - o, fmt, ap);
    va_end(ap);
}

void lt_data_summary_describe(const lt_data_summary *sum, const char *path,
                              const lt_dataset *train, const lt_dataset *val, int max_len,
                              char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    const lt_sft_stats *st = &sum->stats;
    bool records = sum->format != LT_DATA_TEXT && sum->format != LT_DATA_IDS;
    if (records)
        cat(buf, n, "%s (%s, %s records, loss on %s): %lld records -> ", path,
            lt_data_format_name(sum->format), lt_shape_name(sum->shape), loss_name(sum->loss),
            (long long)sum->n_records);
    else cat(buf, n, "%s (%s): ", path, lt_data_format_name(sum->format));
    cat(buf, n, "%lld training + %lld validation %s", (long long)train->n, (long long)val->n,
        sum->n_before_pack ? "packed sequences" : "examples");
    if (sum->n_before_pack) cat(buf, n, " (from %lld examples)", (long long)sum->n_before_pack);
    int64_t bad = sum->read_bad.n + st->bad.n;
    if (bad) cat(buf, n, "; %lld bad records skipped", (long long)bad);
    int64_t cut = records ? st->n_truncated : train->n_truncated + val->n_truncated;
    bool split = records ? sum->trunc == LT_TRUNC_SPLIT : sum->format == LT_DATA_TEXT;
    if (cut)
        cat(buf, n, "; %lld examples longer than %d tokens %s", (long long)cut, max_len,
            split ? "split into pieces" : sum->trunc == LT_TRUNC_LEFT ? "cut on the left" : "cut");
    if (st->n_no_loss) cat(buf, n, "; %lld without any loss token dropped", (long long)st->n_no_loss);
    if (st->n_boundary_merge)
        cat(buf, n, "; %lld with a token across the prompt/response boundary (it carries loss)",
            (long long)st->n_boundary_merge);
    if (st->n_rt_text)
        cat(buf, n, "; %lld where the response template matched the text but not its tokens",
            (long long)st->n_rt_text);
    if (records && st->n_tokens)
        cat(buf, n, "; %lld tokens, %lld with loss", (long long)st->n_tokens,
            (long long)st->n_loss_tokens);
}
