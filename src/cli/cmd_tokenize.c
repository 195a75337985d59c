// cmd_tokenize.c - `loratune tokenize`: shows the ids of the first examples of a dataset and which
// tokens carry loss, so users see what the model will learn (same data flags as `train`).
#include "cli/cli.h"
#include "data/data.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
                 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
        if (k == 9 || i + k >= n + (k == 0)) return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k + 1;
    }
    return true;
}

// Prints bytes as a quoted, escaped string: \n \t \r \\ \', \xNN for control bytes and for bytes
// of a token that is not valid UTF-8 on its own (half a character).
static void put_escaped(const char *s, size_t n, bool quotes) {
    bool raw_high = utf8_ok((const unsigned char *)s, n);
    if (quotes) putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\' && quotes) fputs("\\\\", stdout);
        else if (c == '\'' && quotes) fputs("\\'", stdout);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !raw_high)) printf("\\x%02X", c);
        else putchar(c);
    }
    if (quotes) putchar('\'');
}

static void show_example(const lt_tokenizer *tok, const int32_t *ids, const int32_t *labels,
                         size_t n, bool color) {
    int64_t nl = 0;
    for (size_t j = 1; j < n; j++) nl += labels[j] != -100;
    printf("%zu tokens, %lld with loss (* = the token carries loss; token 0 is never predicted)\n",
           n, (long long)nl);
    for (size_t j = 0; j < n; j++) {
        size_t len = 0;
        const char *b = lt_tokenizer_token_bytes(tok, ids[j], &len);
        printf("%6zu  [%d] ", j, ids[j]);
        put_escaped(b ? b : "", len, true);
        if (labels[j] != -100) fputs("  *", stdout);
        putchar('\n');
    }
    // the decoded text with the loss-carrying parts marked
    const char *on = color ? "\033[1;32m" : "[[", *off = color ? "\033[0m" : "]]";
    printf("text (loss on the %s parts):\n", color ? "green" : "[[bracketed]]");
    bool in = false;
    for (size_t j = 0; j < n; j++) {
        bool l = labels[j] != -100;
        if (l != in) fputs(l ? on : off, stdout), in = l;
        size_t len = 0;
        const char *b = lt_tokenizer_token_bytes(tok, ids[j], &len);
        for (size_t k = 0; b && k < len; k++) {
            unsigned char c = (unsigned char)b[k];
            if (c == '\n' || c == '\t' || c >= 0x20) putchar(c);
            else printf("\\x%02X", c);
        }
    }
    if (in) fputs(off, stdout);
    putchar('\n');
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *data = NULL, *field = "text",
               *data_format = "auto", *tmpl = NULL, *loss_on = "auto", *resp_tmpl = NULL,
               *trunc = "auto", *on_bad = "stop", *columns = NULL, *header = "auto",
               *chat_tmpl = NULL, *resp_field = NULL, *sep = "<|endoftext|>";
    int n_show = 3, seq = 0, skip = 0;
    bool no_eos = false, help = false, color = false, no_color = false;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model: HF directory or .gguf (its tokenizer is used)"},
        {"tokenizer", OPT_STR, &tok_path, "tokenizer.json, GGUF, directory, or llama2.c tokenizer.bin"},
        {"data", OPT_STR, &data, "data file: .jsonl/.json/.csv/.tsv records, .txt, or .ids.jsonl"},
        {"n", OPT_INT, &n_show, "how many examples to show (default 3)"},
        {"skip", OPT_INT, &skip, "start at this record (default 0)"},
        {"seq", OPT_INT, &seq, "maximum length as in train --seq (default: show whole examples)"},
        {"data-format", OPT_STR, &data_format, "auto | text | jsonl | json | csv | tsv"},
        {"template", OPT_STR, &tmpl, "prompt template: alpaca, alpaca-ja, ja, rasbt, a {field} string, or @FILE"},
        {"response-field", OPT_STR, &resp_field, "template placeholder where the response starts"},
        {"loss-on", OPT_STR, &loss_on, "completion | all | assistant (default: by record shape)"},
        {"response-template", OPT_STR, &resp_tmpl, "loss starts after the last match of this string's tokens"},
        {"chat-template", OPT_STR, &chat_tmpl, "Jinja chat template file (or tokenizer_config.json)"},
        {"no-eos", OPT_BOOL, &no_eos, "do not append EOS"},
        {"truncate", OPT_STR, &trunc, "right | left | split (with --seq)"},
        {"on-bad-record", OPT_STR, &on_bad, "skip | stop (default stop)"},
        {"columns", OPT_STR, &columns, "CSV/TSV column names, e.g. label,text"},
        {"header", OPT_STR, &header, "CSV/TSV header line: auto | yes | no"},
        {"text-field", OPT_STR, &field, "field holding the text (default text)"},
        {"separator", OPT_STR, &sep, "document separator in .txt data (default <|endoftext|>)"},
        {"color", OPT_BOOL, &color, "mark loss tokens in color (default: when stdout is a terminal)"},
        {"no-color", OPT_BOOL, &no_color, "mark loss tokens with [[ ]]"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("tokenize", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf("usage: loratune tokenize --model PATH --data FILE [--n 3] [data flags]\n\n"
               "Shows the first examples as `loratune train` builds them: each token with its id,\n"
               "`*` where it carries loss, then the text with the learned parts marked.\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    if (!data) return cli_usage_error("tokenize", "--data is required");
    if (!model && !tok_path) return cli_usage_error("tokenize", "--model or --tokenizer is required");
    if (n_show < 1) return cli_usage_error("tokenize", "--n must be at least 1");
    if (skip < 0) return cli_usage_error("tokenize", "--skip must be >= 0");
    if (seq < 0 || seq == 1) return cli_usage_error("tokenize", "--seq must be 0 (no limit) or >= 2");
    if (!no_color && !color) color = isatty(STDOUT_FILENO);
    if (no_color) color = false;

    lt_err err = {0};
    lt_status st;
    char *owned[3] = {0};
    lt_tokenizer *tok = NULL;
    lt_records recs;
    lt_records_init(&recs);
    lt_sft *s = NULL;
    lt_ids ids = {0}, labels = {0};
    lt_dataset d, v;
    lt_dataset_init(&d);
    lt_dataset_init(&v);
    lt_data_opts o;
    lt_data_opts_default(&o);
    o.path = data;
    o.separator = sep;
    o.read.columns = columns;
    o.sft.text_field = field;
    o.sft.response_field = resp_field;
    o.sft.add_eos = !no_eos;
    o.sft.max_len = seq ? seq : 1 << 30;
    if ((st = lt_data_format_parse(data_format, &o.read.format, &err)) ||
        (st = lt_loss_on_parse(loss_on, &o.sft.loss_on, &err)) ||
        (st = lt_truncate_parse(trunc, &o.sft.truncate, &err)) ||
        (st = lt_on_bad_parse(on_bad, &o.read.on_bad, &err)))
        return cli_usage_error("tokenize", "%s", err.msg);
    o.sft.on_bad = o.read.on_bad;
    if (!strcmp(header, "yes")) o.read.header = 1;
    else if (!strcmp(header, "no")) o.read.header = 0;
    else if (strcmp(header, "auto") != 0)
        return cli_usage_error("tokenize", "--header: yes, no or auto, not \"%s\"", header);
    if ((tmpl && (st = cli_text_arg(tmpl, &owned[0], &err))) ||
        (resp_tmpl && (st = cli_text_arg(resp_tmpl, &owned[1], &err))) ||
        (chat_tmpl && (st = cli_chat_template_arg(chat_tmpl, &owned[2], &err))))
        goto fail;
    o.sft.template_src = owned[0];
    o.sft.response_template = owned[1];
    o.sft.chat_template = owned[2];

    lt_data_format fmt = o.read.format == LT_DATA_AUTO ? lt_data_format_guess(data) : o.read.format;
    if ((st = cli_open_tokenizer(tok_path, model, NULL, &tok, &err))) goto fail;
    if (fmt == LT_DATA_TEXT || fmt == LT_DATA_IDS) { // examples as train makes them
        if (!seq) o.sft.max_len = 1 << 20;
        if ((st = lt_data_load(tok, lt_tokenizer_n_vocab(tok), &o, &d, &v, NULL, &err))) goto fail;
        for (int64_t i = skip; i < d.n && i < (int64_t)skip + n_show; i++) {
            printf("== example %lld of %s\n", (long long)i + 1, data);
            show_example(tok, d.ex[i].ids, d.ex[i].labels, (size_t)d.ex[i].len, color);
        }
        goto done;
    }
    o.read.format = fmt;
    o.read.max_records = (int64_t)skip + n_show;
    if ((st = lt_records_read(&recs, data, &o.read, &err))) goto fail;
    for (int i = 0; i < recs.bad.n_notes; i++) fprintf(stderr, "skipped: %s\n", recs.bad.notes[i]);
    if (recs.n == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: no records", data);
        goto fail;
    }
    if ((st = lt_sft_new(tok, &o.sft, &recs.rec[0], &s, &err))) goto fail;
    static const char *const loss_names[] = {"auto", "all tokens", "the completion", "assistant turns"};
    for (int64_t i = skip; i < recs.n; i++) {
        char where[256];
        lt_record_where(&recs, &recs.rec[i], where, sizeof where);
        unsigned notes = 0;
        lt_err e = {0};
        st = lt_sft_encode(s, &recs, i, &ids, &labels, &notes, &e);
        if (st) {
            if (st == LT_ERR_FORMAT && o.sft.on_bad == LT_ON_BAD_SKIP) {
                fprintf(stderr, "skipped: %s\n", e.msg);
                continue;
            }
            err = e;
            goto fail;
        }
        printf("== %s: %s record, loss on %s\n", where, lt_shape_name(lt_sft_shape(s)),
               loss_names[lt_sft_loss_on(s)]);
        if (notes & LT_SFT_BOUNDARY_MERGE)
            printf("note: a token spans the prompt/response boundary; it carries loss\n");
        if (notes & LT_SFT_RT_TEXT)
            printf("note: the response template matched the text but not its tokens\n");
        size_t n = ids.n;
        if (seq && n > (size_t)seq) {
            size_t before = n;
            if (lt_sft_truncation(s) == LT_TRUNC_SPLIT) {
                printf("note: %zu tokens, split into pieces of %d by train; the first piece:\n", before, seq);
                n = (size_t)seq;
            } else {
                lt_sft_truncate(s, ids.ids, labels.ids, &n);
                printf("note: %zu tokens, cut to %d (%s)\n", before, seq,
                       lt_sft_truncation(s) == LT_TRUNC_LEFT ? "left" : "right");
            }
        }
        show_example(tok, ids.ids, labels.ids, n, color);
    }
done:
    lt_ids_deinit(&ids);
    lt_ids_deinit(&labels);
    lt_sft_free(s);
    lt_records_deinit(&recs);
    lt_dataset_deinit(&d);
    lt_dataset_deinit(&v);
    lt_tokenizer_free(tok);
    for (int i = 0; i < 3; i++) lt_free(owned[i]);
    return 0;
fail:
    lt_ids_deinit(&ids);
    lt_ids_deinit(&labels);
    lt_sft_free(s);
    lt_records_deinit(&recs);
    lt_dataset_deinit(&d);
    lt_dataset_deinit(&v);
    lt_tokenizer_free(tok);
    for (int i = 0; i < 3; i++) lt_free(owned[i]);
    return cli_fail(&err);
}
