/*
 * test_data.c - src/data: record readers (JSONL, JSON arrays, CSV quoting, TSV), bad records with
 * file:line messages and the skip/stop policy, prompt templates, SFT examples (loss masks, EOS,
 * response templates, truncation), splits (stratified proportions), packing, and golden ids and
 * labels from TRL / HF (tests/fixtures/data/golden.json, made by tools/make_data_fixtures.py).
 * Tests that need ../shared/data print "SKIP ..." and pass when it is absent.
 */
#include "data/data.h"
#include "io/io.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

static lt_status read_str(lt_records *r, const char *name, const char *text, lt_on_bad on_bad,
                          const char *columns, int header, lt_err *err) {
    lt_read_opts o;
    lt_read_opts_default(&o);
    o.on_bad = on_bad;
    o.columns = columns;
    o.header = header;
    lt_records_init(r);
    return lt_records_read_mem(r, text, strlen(text), name, &o, err);
}

static const char *get(const lt_record *rec, const char *k) {
    const lt_field *f = lt_record_get(rec, k);
    return f && f->str ? f->str : "(none)";
}

// ---------------------------------------------------------------------------------------------
// CSV / TSV

static void test_csv(void) {
    lt_records r;
    lt_err err = {0};
    // RFC 4180: quoted commas, doubled quotes, CRLF, a newline inside quotes, an empty last
    // field, a quote inside an unquoted field kept literally, a blank line skipped
    const char *csv = "\xEF\xBB\xBFtitle,body,label\r\n"
                      "\"Hello, world\",\"He said \"\"hi\"\"\",pos\r\n"
                      "multi,\"line one\nline two\",neg\r\n"
                      "\r\n"
                      "plain,5\" screen,\r\n"
                      "\"\",\"\",x";
    CHECK_OK(read_str(&r, "t.csv", csv, LT_ON_BAD_STOP, NULL, -1, &err), &err);
    CHECK(r.n == 4);
    if (r.n == 4) {
        CHECK(!strcmp(get(&r.rec[0], "title"), "Hello, world"));
        CHECK(!strcmp(get(&r.rec[0], "body"), "He said \"hi\""));
        CHECK(!strcmp(get(&r.rec[0], "label"), "pos"));
        CHECK(r.rec[0].line == 2);
        CHECK(!strcmp(get(&r.rec[1], "body"), "line one\nline two"));
        CHECK(r.rec[1].line == 3);
        CHECK(!strcmp(get(&r.rec[2], "body"), "5\" screen"));
        CHECK(!strcmp(get(&r.rec[2], "label"), ""));
        CHECK_MSG(r.rec[2].line == 6, "line %lld", (long long)r.rec[2].line); // after the quoted newline and the blank line
        CHECK(r.rec[3].line == 7 && !strcmp(get(&r.rec[3], "title"), "") &&
              !strcmp(get(&r.rec[3], "label"), "x"));
    }
    lt_records_deinit(&r);

    // bad records: text after a closing quote, wrong field count, invalid UTF-8, NUL
    const char *bad = "a,b\n"
                      "1,2\n"
                      "\"x\"y,2\n"
                      "1,2,3\n"
                      "\xC3\x28,2\n"
                      "ok,fine\n";
    CHECK(read_str(&r, "bad.csv", bad, LT_ON_BAD_STOP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "bad.csv:3:") != NULL, "%s", err.msg);
    CHECK(r.n == 1);
    lt_records_deinit(&r);
    CHECK_OK(read_str(&r, "bad.csv", bad, LT_ON_BAD_SKIP, NULL, -1, &err), &err);
    CHECK(r.n == 2 && r.bad.n == 3 && r.bad.n_notes == 3);
    if (r.bad.n_notes == 3) {
        CHECK_MSG(strstr(r.bad.notes[0], "bad.csv:3:") && strstr(r.bad.notes[0], "closing quote"), "%s", r.bad.notes[0]);
        CHECK_MSG(strstr(r.bad.notes[1], "bad.csv:4: expected 2 fields (a, b), found 3"), "%s", r.bad.notes[1]);
        CHECK_MSG(strstr(r.bad.notes[2], "bad.csv:5:") && strstr(r.bad.notes[2], "UTF-8"), "%s", r.bad.notes[2]);
    }
    if (r.n == 2) CHECK(!strcmp(get(&r.rec[1], "a"), "ok") && r.rec[1].line == 6);
    lt_records_deinit(&r);

    // an unterminated quote swallows the rest: one bad record naming where it opened
    CHECK(read_str(&r, "u.csv", "a,b\n1,\"never closed\n2,3\n", LT_ON_BAD_STOP, NULL, -1, &err) ==
          LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "u.csv:2:") && strstr(err.msg, "never closed"), "%s", err.msg);
    lt_records_deinit(&r);
    // a NUL byte inside a field
    const char nul[] = "a\nx\0y\n";
    lt_read_opts o;
    lt_read_opts_default(&o);
    lt_records_init(&r);
    CHECK(lt_records_read_mem(&r, nul, sizeof nul - 1, "n.csv", &o, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "n.csv:2:") && strstr(err.msg, "NUL"), "%s", err.msg);
    lt_records_deinit(&r);

    // header problems are never skippable
    CHECK(read_str(&r, "h.csv", "a,a\n1,2\n", LT_ON_BAD_SKIP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "twice"), "%s", err.msg);
    lt_records_deinit(&r);
    CHECK(read_str(&r, "h.csv", "a,\n1,2\n", LT_ON_BAD_SKIP, NULL, -1, &err) == LT_ERR_FORMAT);
    lt_records_deinit(&r);
    // no header line: names from columns; header=1 with columns skips the file's header
    CHECK_OK(read_str(&r, "c.csv", "spam,\"win, now\"\nham,hi\n", LT_ON_BAD_STOP, "label, text", -1, &err), &err);
    CHECK(r.n == 2 && !strcmp(get(&r.rec[0], "text"), "win, now") && !strcmp(get(&r.rec[1], "label"), "ham"));
    lt_records_deinit(&r);
    CHECK_OK(read_str(&r, "c.csv", "l,t\nspam,x\n", LT_ON_BAD_STOP, "label,text", 1, &err), &err);
    CHECK(r.n == 1 && !strcmp(get(&r.rec[0], "label"), "spam"));
    lt_records_deinit(&r);
    CHECK(read_str(&r, "c.csv", "x\n", LT_ON_BAD_STOP, NULL, 0, &err) == LT_ERR_ARG);
    lt_records_deinit(&r);
    CHECK(read_str(&r, "c.csv", "x\n", LT_ON_BAD_STOP, "a,,b", -1, &err) == LT_ERR_ARG);
    lt_records_deinit(&r);

    // TSV: no quoting ('"' is an ordinary character), CRLF
    CHECK_OK(read_str(&r, "s.tsv", "ham\t\"quoted\" text, with comma\r\nspam\tx\"y\r\n",
                      LT_ON_BAD_STOP, "label,text", -1, &err), &err);
    CHECK(r.n == 2);
    if (r.n == 2) {
        CHECK(!strcmp(get(&r.rec[0], "text"), "\"quoted\" text, with comma"));
        CHECK(!strcmp(get(&r.rec[1], "text"), "x\"y"));
    }
    lt_records_deinit(&r);
    CHECK(read_str(&r, "s.tsv", "a\tb\n1\t2\t3\n", LT_ON_BAD_STOP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.tsv:2: expected 2 fields"), "%s", err.msg);
    lt_records_deinit(&r);
}

// ---------------------------------------------------------------------------------------------
// JSONL / JSON

static void test_json(void) {
    lt_records r;
    lt_err err = {0};
    const char *jl = "{\"text\": \"one\", \"n\": 3, \"x\": 0.5, \"b\": true, \"z\": null}\n"
                     "\n"
                     "{\"text\": \"two\"\n"
                     "[1, 2]\n"
                     "{}\n"
                     "{\"text\": \"bad \xFF byte\"}\n"
                     "{\"messages\": \"hi\"}\n"
                     "{\"messages\": [{\"role\": \"user\", \"content\": null}]}\n"
                     "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\r\n";
    CHECK(read_str(&r, "d.jsonl", jl, LT_ON_BAD_STOP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "d.jsonl:3:") && strstr(err.msg, "syntax"), "%s", err.msg);
    lt_records_deinit(&r);
    CHECK_OK(read_str(&r, "d.jsonl", jl, LT_ON_BAD_SKIP, NULL, -1, &err), &err);
    CHECK(r.n == 2);
    CHECK_MSG(r.bad.n == 6, "%lld bad", (long long)r.bad.n);
    if (r.n == 2) {
        const lt_field *f = lt_record_get(&r.rec[0], "n");
        CHECK(f && f->type == LT_FIELD_NUM && !strcmp(f->str, "3"));
        f = lt_record_get(&r.rec[0], "x");
        CHECK(f && f->type == LT_FIELD_NUM && !strcmp(f->str, "0.5"));
        f = lt_record_get(&r.rec[0], "b");
        CHECK(f && f->type == LT_FIELD_BOOL && !strcmp(f->str, "true"));
        f = lt_record_get(&r.rec[0], "z");
        CHECK(f && f->type == LT_FIELD_NULL);
        f = lt_record_get(&r.rec[1], "conversations");
        CHECK(f && f->type == LT_FIELD_MSGS && f->n_msgs == 2 && r.rec[1].line == 9);
        if (f && f->n_msgs == 2)
            CHECK(!strcmp(f->msgs[0].role, "user") && !strcmp(f->msgs[1].role, "assistant") &&
                  !strcmp(f->msgs[1].content, "a"));
    }
    if (r.bad.n_notes == 5) {
        CHECK_MSG(strstr(r.bad.notes[1], "d.jsonl:4: expected a JSON object, found array"), "%s", r.bad.notes[1]);
        CHECK_MSG(strstr(r.bad.notes[2], "d.jsonl:5: empty record"), "%s", r.bad.notes[2]);
        CHECK_MSG(strstr(r.bad.notes[3], "d.jsonl:6: invalid UTF-8 at column 15 (byte 0xFF)"), "%s", r.bad.notes[3]);
        CHECK_MSG(strstr(r.bad.notes[4], "d.jsonl:7: \"messages\" is string"), "%s", r.bad.notes[4]);
    } else CHECK(r.bad.n_notes == 5);
    lt_records_deinit(&r);

    // JSON arrays: bad elements named by line and record number; syntax errors stop
    const char *ja = "[\n"
                     "  {\"instruction\": \"a\", \"output\": \"b\"},\n"
                     "  {\"instruction\": \"c [x], {y}\",\n"
                     "   \"output\": \"d\"},\n"
                     "  \"just a string\",\n"
                     "  {\"instruction\": \"e\", \"output\": \"f\"}\n"
                     "]\n";
    CHECK(read_str(&r, "a.json", ja, LT_ON_BAD_STOP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "a.json:5 (record 3): expected a JSON object, found string"), "%s", err.msg);
    lt_records_deinit(&r);
    CHECK_OK(read_str(&r, "a.json", ja, LT_ON_BAD_SKIP, NULL, -1, &err), &err);
    CHECK(r.n == 3 && r.bad.n == 1);
    if (r.n == 3) {
        CHECK(r.rec[0].line == 2 && r.rec[0].index == 1);
        CHECK(r.rec[1].line == 3 && r.rec[1].index == 2);
        CHECK(r.rec[2].line == 6 && r.rec[2].index == 4);
        char where[128];
        lt_record_where(&r, &r.rec[2], where, sizeof where);
        CHECK(!strcmp(where, "a.json:6 (record 4)"));
    }
    lt_records_deinit(&r);
    CHECK(read_str(&r, "b.json", "[{\"a\": 1},\n {\"b\": }]", LT_ON_BAD_SKIP, NULL, -1, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "line 2"), "%s", err.msg);
    lt_records_deinit(&r);
    CHECK(read_str(&r, "o.json", "{\"a\": 1}", LT_ON_BAD_SKIP, NULL, -1, &err) == LT_ERR_FORMAT);
    lt_records_deinit(&r);
    // invalid UTF-8 inside one element of an array
    CHECK_OK(read_str(&r, "u.json", "[{\"t\": \"ok\"},\n{\"t\": \"\xED\xA0\x80\"}]", LT_ON_BAD_SKIP, NULL, -1, &err), &err);
    CHECK(r.n == 1 && r.bad.n == 1 && strstr(r.bad.notes[0], "u.json:2 (record 2): invalid UTF-8"));
    lt_records_deinit(&r);
    // formats
    lt_data_format f;
    CHECK(lt_data_format_guess("x/y.ids.jsonl") == LT_DATA_IDS);
    CHECK(lt_data_format_guess("a.TSV") == LT_DATA_TEXT && lt_data_format_guess("a.tsv") == LT_DATA_TSV);
    CHECK(lt_data_format_parse("csv", &f, &err) == LT_OK && f == LT_DATA_CSV);
    CHECK(lt_data_format_parse("xml", &f, &err) == LT_ERR_ARG);
    lt_records_init(&r);
    CHECK(lt_records_read_mem(&r, "x", 1, "a.txt", NULL, &err) == LT_ERR_ARG);
    CHECK(lt_records_read(&r, "/nonexistent.jsonl", NULL, &err) == LT_ERR_IO);
    lt_records_deinit(&r);
}

// ---------------------------------------------------------------------------------------------
// templates

static void test_template(void) {
    lt_err err = {0};
    lt_template *t = NULL;
    lt_records r;
    CHECK_OK(read_str(&r, "t.jsonl",
                      "{\"instruction\": \"I\", \"input\": \"\", \"output\": \"O\", \"n\": 7}\n"
                      "{\"instruction\": \"I\", \"input\": \"X\", \"output\": \"O\"}\n"
                      "{\"instruction\": \"I\", \"output\": \"O\", \"m\": [1]}\n",
                      LT_ON_BAD_STOP, NULL, -1, &err), &err);
    char *s = NULL;
    size_t n = 0, resp = 0;
    // the brief's Japanese template: the input section disappears when input is empty
    CHECK_OK(lt_template_new("### 指示\n{instruction}\n\n### 入力\n{input}\n\n### 応答\n{output}", &t, &err), &err);
    CHECK(t && !strcmp(lt_template_response(t), "output"));
    CHECK_OK(lt_template_render(t, &r.rec[0], &s, &n, &resp, &err), &err);
    CHECK(s && !strcmp(s, "### 指示\nI\n\n### 応答\nO") && resp == n - 1);
    lt_free(s), s = NULL;
    CHECK_OK(lt_template_render(t, &r.rec[1], &s, &n, &resp, &err), &err);
    CHECK(s && !strcmp(s, "### 指示\nI\n\n### 入力\nX\n\n### 応答\nO"));
    lt_free(s), s = NULL;
    CHECK(lt_template_render(t, &r.rec[2], &s, &n, &resp, &err) == LT_ERR_FORMAT); // no input
    CHECK_MSG(strstr(err.msg, "missing field \"input\""), "%s", err.msg);
    lt_template_free(t), t = NULL;
    // built-in alpaca: its two preambles
    CHECK_OK(lt_template_new("alpaca", &t, &err), &err);
    CHECK_OK(lt_template_render(t, &r.rec[2], &s, &n, &resp, &err), &err);
    CHECK(s && !strncmp(s, "Below is an instruction that describes a task. Write", 52) &&
          !strcmp(s + resp, "O") && !strstr(s, "Input"));
    lt_free(s), s = NULL;
    CHECK_OK(lt_template_render(t, &r.rec[1], &s, &n, &resp, &err), &err);
    CHECK(s && strstr(s, "paired with an input") && strstr(s, "### Input:\nX\n\n### Response:\nO"));
    lt_free(s), s = NULL;
    lt_template_free(t), t = NULL;
    // braces, numbers, optional fields, response choice
    CHECK_OK(lt_template_new("{{\"n\": {n}}} {missing?}|{instruction}", &t, &err), &err);
    CHECK(t && lt_template_response(t) == NULL);
    CHECK_OK(lt_template_render(t, &r.rec[0], &s, &n, &resp, &err), &err);
    CHECK(s && !strcmp(s, "{\"n\": 7} |I") && resp == SIZE_MAX);
    lt_free(s), s = NULL;
    CHECK(lt_template_set_response(t, "nope", &err) == LT_ERR_ARG);
    CHECK_OK(lt_template_set_response(t, "instruction", &err), &err);
    CHECK_OK(lt_template_render(t, &r.rec[0], &s, &n, &resp, &err), &err);
    CHECK(resp == n - 1);
    lt_free(s), s = NULL;
    lt_template_free(t), t = NULL;
    CHECK_OK(lt_template_new("x {m}", &t, &err), &err);
    CHECK(lt_template_render(t, &r.rec[2], &s, &n, &resp, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "\"m\" is an array"), "%s", err.msg);
    lt_template_free(t), t = NULL;
    CHECK(lt_template_new("a {b c}", &t, &err) == LT_ERR_ARG && strstr(err.msg, "byte 2"));
    CHECK(lt_template_new("a {", &t, &err) == LT_ERR_ARG);
    CHECK(lt_template_new("a {}", &t, &err) == LT_ERR_ARG);
    // classification records: text + label
    lt_records c;
    CHECK_OK(read_str(&c, "c.csv", "title,body,label\nHi,There,pos\nA,B,\n", LT_ON_BAD_STOP, NULL, -1, &err), &err);
    CHECK_OK(lt_template_new("{title}\n{body}", &t, &err), &err);
    const char *label = NULL;
    CHECK_OK(lt_cls_record(t, &c.rec[0], "label", &s, &n, &label, &err), &err);
    CHECK(s && !strcmp(s, "Hi\nThere") && label && !strcmp(label, "pos"));
    lt_free(s), s = NULL;
    CHECK(lt_cls_record(t, &c.rec[1], "label", &s, &n, &label, &err) == LT_ERR_FORMAT);
    CHECK(lt_cls_record(NULL, &c.rec[0], "label", &s, &n, &label, &err) == LT_ERR_FORMAT); // no "text"
    lt_template_free(t);
    lt_records_deinit(&c);
    lt_records_deinit(&r);
}

// ---------------------------------------------------------------------------------------------
// SFT with the small byte-level BPE of the tokenizer tests (committed; EOS <|endoftext|> = 0)

static lt_tokenizer *small_tok(const char *config) {
    lt_tokenizer *t = NULL;
    lt_err err = {0};
    char *json = NULL;
    size_t n = 0;
    if (lt_read_file("tests/fixtures/tokenizers/bpe_bytelevel.tokenizer.json", &json, &n, &err)) {
        fprintf(stderr, "FAIL: %s\n", err.msg);
        t_fail++;
        return NULL;
    }
    if (lt_tokenizer_load_hf_mem(json, n, config, config ? strlen(config) : 0, "bpe_bytelevel",
                                 &t, &err)) {
        fprintf(stderr, "FAIL: %s\n", err.msg);
        t_fail++;
    }
    lt_free(json);
    return t;
}

static bool has_loss(const lt_ids *l) {
    for (size_t j = 1; j < l->n; j++)
        if (l->ids[j] != -100) return true;
    return false;
}

static void test_sft(void) {
    lt_tokenizer *tok = small_tok(NULL);
    if (!tok) return;
    lt_err err = {0};
    lt_records r;
    CHECK_OK(read_str(&r, "s.jsonl",
                      "{\"prompt\": \"Question: hi\\nAnswer:\", \"completion\": \" hello there\"}\n"
                      "{\"prompt\": \"x\"}\n"
                      "{\"prompt\": \"x\", \"completion\": \"\"}\n"
                      "{\"prompt\": \"x\", \"completion\": 5}\n"
                      "{\"prompt\": \"x\", \"completion\": [\"a\"]}\n",
                      LT_ON_BAD_STOP, NULL, -1, &err), &err);
    lt_sft_opts o;
    lt_sft_opts_default(&o);
    lt_sft *s = NULL;
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    CHECK(s && lt_sft_shape(s) == LT_SHAPE_PROMPT_COMPLETION && lt_sft_loss_on(s) == LT_LOSS_COMPLETION);
    lt_ids ids = {0}, lab = {0}, p = {0};
    unsigned notes = 0;
    CHECK_OK(lt_sft_encode(s, &r, 0, &ids, &lab, &notes, &err), &err);
    // the prompt's ids are a prefix: exactly those are masked; EOS appended with loss
    CHECK_OK(lt_tokenizer_encode(tok, "Question: hi\nAnswer:", 20, LT_TOK_ADD_SPECIAL, &p, &err), &err);
    CHECK(ids.n == lab.n && ids.n > p.n + 1 && !memcmp(ids.ids, p.ids, p.n * sizeof(int32_t)));
    for (size_t j = 0; j < ids.n; j++) CHECK(lab.ids[j] == (j < p.n ? -100 : ids.ids[j]));
    CHECK(ids.ids[ids.n - 1] == 0 && (notes & LT_SFT_EOS_ADDED) && !(notes & LT_SFT_BOUNDARY_MERGE));
    // bad records: messages name file:line
    CHECK(lt_sft_encode(s, &r, 1, &ids, &lab, NULL, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.jsonl:2: missing field \"completion\""), "%s", err.msg);
    CHECK(lt_sft_encode(s, &r, 2, &ids, &lab, NULL, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.jsonl:3: field \"completion\" is empty"), "%s", err.msg);
    CHECK_OK(lt_sft_encode(s, &r, 3, &ids, &lab, NULL, &err), &err); // a number is text "5"
    CHECK(lt_sft_encode(s, &r, 4, &ids, &lab, NULL, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.jsonl:5: field \"completion\" is an array or object, expected a string"), "%s", err.msg);
    // build: stop vs skip
    lt_dataset d;
    lt_dataset_init(&d);
    lt_sft_stats st = {0};
    CHECK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err) == LT_ERR_FORMAT && d.n == 1);
    lt_sft_free(s), s = NULL;
    lt_dataset_deinit(&d);
    o.on_bad = LT_ON_BAD_SKIP;
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    memset(&st, 0, sizeof st);
    CHECK_OK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err), &err);
    CHECK(d.n == 2 && st.n_examples == 2 && st.bad.n == 3 && st.n_records == 5);
    CHECK(st.bad.n_notes == 3 && strstr(st.bad.notes[2], "s.jsonl:5:"));
    lt_dataset_deinit(&d);
    lt_sft_free(s), s = NULL;

    // option checks
    o.loss_on = LT_LOSS_ASSISTANT;
    CHECK(lt_sft_new(tok, &o, &r.rec[0], &s, &err) == LT_ERR_ARG);
    o.loss_on = LT_LOSS_AUTO;
    o.template_src = "alpaca"; // a template makes any record a TEMPLATE record
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    CHECK(s && lt_sft_shape(s) == LT_SHAPE_TEMPLATE);
    CHECK(s && lt_sft_encode(s, &r, 0, &ids, &lab, NULL, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.jsonl:1: missing field \"instruction\""), "%s", err.msg);
    lt_sft_free(s), s = NULL;
    o.template_src = NULL;
    o.max_len = 1;
    CHECK(lt_sft_new(tok, &o, &r.rec[0], &s, &err) == LT_ERR_ARG);
    o.max_len = 256;
    CHECK(lt_sft_new(tok, &o, NULL, &s, &err) == LT_ERR_ARG);
    lt_records_deinit(&r);

    // text records: loss on all, split truncation by default; completion loss needs a response
    CHECK_OK(read_str(&r, "t.jsonl", "{\"text\": \"one two three four five six seven eight nine ten\"}\n"
                      "{\"text\": \"### Q: a\\n### A: b c\"}\n{\"title\": \"x\"}\n",
                      LT_ON_BAD_SKIP, NULL, -1, &err), &err);
    lt_sft_opts_default(&o);
    o.on_bad = LT_ON_BAD_SKIP;
    o.loss_on = LT_LOSS_COMPLETION;
    CHECK(lt_sft_new(tok, &o, &r.rec[0], &s, &err) == LT_ERR_ARG);
    o.loss_on = LT_LOSS_AUTO;
    o.max_len = 4;
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    CHECK(lt_sft_truncation(s) == LT_TRUNC_SPLIT && lt_sft_loss_on(s) == LT_LOSS_ALL);
    CHECK_OK(lt_sft_encode(s, &r, 0, &ids, &lab, NULL, &err), &err);
    size_t full = ids.n;
    memset(&st, 0, sizeof st);
    CHECK_OK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err), &err);
    CHECK(st.bad.n == 1 && strstr(st.bad.notes[0], "t.jsonl:3: missing field \"text\""));
    int64_t tot = 0;
    for (int64_t i = 0; i < d.n; i++) tot += d.ex[i].len;
    CHECK(st.n_truncated == 2 && tot >= (int64_t)full && d.n >= (int64_t)(full + 3) / 4);
    lt_dataset_deinit(&d);
    lt_sft_free(s), s = NULL;
    // response template on text records: loss after its last match
    o.max_len = 256;
    o.response_template = "### A:";
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[1], &s, &err), &err);
    CHECK(lt_sft_loss_on(s) == LT_LOSS_COMPLETION);
    CHECK_OK(lt_sft_encode(s, &r, 1, &ids, &lab, &notes, &err), &err);
    lt_ids rt = {0}, tail = {0};
    CHECK_OK(lt_tokenizer_encode(tok, "### A:", 6, 0, &rt, &err), &err);
    CHECK_OK(lt_tokenizer_encode(tok, " b c", 4, 0, &tail, &err), &err);
    size_t first = SIZE_MAX;
    for (size_t j = 0; j < lab.n; j++)
        if (lab.ids[j] != -100) { first = j; break; }
    CHECK_MSG(first != SIZE_MAX && first + tail.n + 1 == ids.n, "first %zu n %zu", first, ids.n);
    if (first != SIZE_MAX && first >= rt.n)
        CHECK(!memcmp(ids.ids + first - rt.n, rt.ids, rt.n * sizeof(int32_t)));
    CHECK(!(notes & LT_SFT_RT_TEXT));
    // not found at all: no loss, dropped when building
    CHECK_OK(lt_sft_encode(s, &r, 0, &ids, &lab, NULL, &err), &err);
    CHECK(!has_loss(&lab));
    memset(&st, 0, sizeof st);
    CHECK_OK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err), &err);
    CHECK(d.n == 1 && st.n_no_loss == 1);
    lt_dataset_deinit(&d);
    lt_sft_free(s), s = NULL;
    lt_ids_deinit(&rt), lt_ids_deinit(&tail);

    // instruction records; truncation right and left; a response cut away leaves no loss
    lt_records_deinit(&r);
    CHECK_OK(read_str(&r, "i.json",
                      "[{\"instruction\": \"Say yes\", \"input\": \"\", \"output\": \"yes yes yes\"}]",
                      LT_ON_BAD_STOP, NULL, -1, &err), &err);
    lt_sft_opts_default(&o);
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    CHECK(lt_sft_shape(s) == LT_SHAPE_INSTRUCTION && lt_sft_truncation(s) == LT_TRUNC_RIGHT);
    CHECK_OK(lt_sft_encode(s, &r, 0, &ids, &lab, NULL, &err), &err);
    lt_ids ref = {0}, rl = {0};
    CHECK_OK(lt_sft_encode(s, &r, 0, &ref, &rl, NULL, &err), &err);
    lt_sft_free(s), s = NULL;
    o.max_len = 8;
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    size_t m = ids.n;
    CHECK(lt_sft_truncate(s, ids.ids, lab.ids, &m) && m == 8);
    CHECK(!memcmp(ids.ids, ref.ids, 8 * sizeof(int32_t)));
    memset(&st, 0, sizeof st);
    CHECK_OK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err), &err);
    CHECK(d.n == 0 && st.n_no_loss == 1 && st.n_truncated == 1); // the response was cut away
    lt_dataset_deinit(&d);
    lt_sft_free(s), s = NULL;
    o.truncate = LT_TRUNC_LEFT;
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    memset(&st, 0, sizeof st);
    CHECK_OK(lt_sft_build(s, &r, NULL, 0, &d, &st, &err), &err);
    CHECK(d.n == 1 && d.n_truncated == 1);
    if (d.n == 1) {
        CHECK(d.ex[0].len == 8 && !memcmp(d.ex[0].ids, ref.ids + ref.n - 8, 8 * sizeof(int32_t)));
        CHECK(!memcmp(d.ex[0].labels, rl.ids + rl.n - 8, 8 * sizeof(int32_t)));
    }
    lt_dataset_deinit(&d);
    lt_sft_free(s), s = NULL;
    lt_ids_deinit(&ref), lt_ids_deinit(&rl);

    // rendering with spans
    lt_sft_opts_default(&o);
    CHECK_OK(lt_sft_new(tok, &o, &r.rec[0], &s, &err), &err);
    char *text = NULL;
    size_t tn = 0;
    lt_span *sp = NULL;
    int nsp = 0;
    CHECK_OK(lt_sft_render(s, &r, 0, &text, &tn, &sp, &nsp, &err), &err);
    CHECK(text && nsp == 1 && sp[0].e == tn && !strcmp(text + sp[0].b, "yes yes yes"));
    lt_free(text), lt_free(sp);
    lt_sft_free(s), s = NULL;

    // chat records through a ChatML template (skipped in a build without chat templates)
    lt_records_deinit(&r);
    lt_tokenizer_free(tok);
    tok = small_tok("{\"eos_token\": \"<|im_end|>\", \"bos_token\": null, \"chat_template\": "
                    "\"{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\\\n' + "
                    "m['content'] + '<|im_end|>\\\\n' }}{% endfor %}{% if add_generation_prompt "
                    "%}{{ '<|im_start|>assistant\\\\n' }}{% endif %}\"}");
    CHECK_OK(read_str(&r, "c.jsonl",
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": "
                      "\"assistant\", \"content\": \"yo\"}]}\n"
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
                      LT_ON_BAD_STOP, NULL, -1, &err), &err);
    lt_sft_opts_default(&o);
    lt_status cs = tok ? lt_sft_new(tok, &o, &r.rec[0], &s, &err) : LT_ERR_ARG;
    if (cs == LT_ERR_UNSUPPORTED) {
        fprintf(stderr, "SKIP chat: %s\n", err.msg);
    } else {
        CHECK_OK(cs, &err);
        CHECK_OK(lt_sft_encode(s, &r, 0, &ids, &lab, &notes, &err), &err);
        // "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" [yo<|im_end|>\n]
        lt_ids pre = {0}, all = {0};
        const char *ps = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
        CHECK_OK(lt_tokenizer_encode(tok, ps, strlen(ps), 0, &pre, &err), &err);
        CHECK_OK(lt_tokenizer_encode(tok, "yo<|im_end|>\n", 13, 0, &all, &err), &err);
        CHECK(ids.n == pre.n + all.n && !(notes & LT_SFT_EOS_ADDED));
        for (size_t j = 0; j < ids.n && ids.n == pre.n + all.n; j++)
            CHECK(lab.ids[j] == (j < pre.n ? -100 : ids.ids[j]));
        CHECK(lt_sft_encode(s, &r, 1, &ids, &lab, NULL, &err) == LT_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, "c.jsonl:2: no assistant message"), "%s", err.msg);
        lt_ids_deinit(&pre), lt_ids_deinit(&all);
    }
    lt_sft_free(s), s = NULL;
    lt_records_deinit(&r);
    lt_ids_deinit(&ids), lt_ids_deinit(&lab), lt_ids_deinit(&p);
    lt_tokenizer_free(tok);
}

// ---------------------------------------------------------------------------------------------
// splits and packing

static void test_split(void) {
    lt_err err = {0};
    lt_records r;
    // 100 records: 70 a, 20 b, 10 c, interleaved
    char buf[4096];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "label,text\n");
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s,t%d\n", i % 10 == 0 ? "c" : i % 10 < 3 ? "b" : "a", i);
    CHECK_OK(read_str(&r, "s.csv", buf, LT_ON_BAD_STOP, NULL, -1, &err), &err);
    int64_t *tr = NULL, *va = NULL, nt = 0, nv = 0;
    CHECK_OK(lt_records_split(&r, 20, 7, "label", &tr, &nt, &va, &nv, &err), &err);
    CHECK(nt == 80 && nv == 20);
    int cnt[3] = {0};
    for (int64_t i = 0; i < nv; i++) cnt[get(&r.rec[va[i]], "label")[0] - 'a']++;
    CHECK_MSG(cnt[0] == 14 && cnt[1] == 4 && cnt[2] == 2, "a %d b %d c %d", cnt[0], cnt[1], cnt[2]);
    for (int64_t i = 1; i < nv; i++) CHECK(va[i] > va[i - 1]);
    int64_t *va2 = NULL, *tr2 = NULL, nt2, nv2;
    // deterministic for a seed, different for another
    CHECK_OK(lt_records_split(&r, 20, 7, "label", &tr2, &nt2, &va2, &nv2, &err), &err);
    CHECK(nv2 == nv && !memcmp(va, va2, sizeof *va * (size_t)nv));
    lt_free(tr2), lt_free(va2);
    CHECK_OK(lt_records_split(&r, 20, 8, "label", &tr2, &nt2, &va2, &nv2, &err), &err);
    CHECK(nv2 == nv && memcmp(va, va2, sizeof *va * (size_t)nv) != 0);
    lt_free(tr2), lt_free(va2);
    lt_free(tr), lt_free(va);
    // largest remainders: 7 of 100 -> a 4.9 -> 4 (+1), b 1.4 -> 1, c 0.7 -> 0 (+1): 5, 1, 1
    CHECK_OK(lt_records_split(&r, 7, 1, "label", &tr, &nt, &va, &nv, &err), &err);
    memset(cnt, 0, sizeof cnt);
    for (int64_t i = 0; i < nv; i++) cnt[get(&r.rec[va[i]], "label")[0] - 'a']++;
    CHECK_MSG(nv == 7 && cnt[0] == 5 && cnt[1] == 1 && cnt[2] == 1, "a %d b %d c %d", cnt[0], cnt[1], cnt[2]);
    lt_free(tr), lt_free(va);
    // plain random split; errors
    CHECK_OK(lt_records_split(&r, 10, 1, NULL, &tr, &nt, &va, &nv, &err), &err);
    CHECK(nt == 90 && nv == 10);
    lt_free(tr), lt_free(va);
    CHECK_OK(lt_records_split(&r, 0, 1, NULL, &tr, &nt, &va, &nv, &err), &err);
    CHECK(nt == 100 && nv == 0);
    lt_free(tr), lt_free(va);
    CHECK(lt_records_split(&r, 100, 1, NULL, &tr, &nt, &va, &nv, &err) == LT_ERR_ARG);
    CHECK(lt_records_split(&r, 5, 1, "nope", &tr, &nt, &va, &nv, &err) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "s.csv:2:"), "%s", err.msg);
    lt_records_deinit(&r);
}

static void test_pack(void) {
    lt_err err = {0};
    lt_dataset src, dst;
    lt_dataset_init(&src);
    lt_dataset_init(&dst);
    // lengths 6, 5, 4, 3, 2 (ids i*10+j; labels -100 on the first token), EOS = 99 ends #1
    int lens[5] = {6, 5, 4, 3, 2};
    for (int i = 0; i < 5; i++) {
        int32_t ids[8], lab[8];
        for (int j = 0; j < lens[i]; j++) ids[j] = i * 10 + j, lab[j] = j ? ids[j] : -100;
        if (i == 1) ids[lens[i] - 1] = 99, lab[lens[i] - 1] = 99;
        CHECK_OK(lt_dataset_add(&src, ids, lab, lens[i], 100, &err), &err);
    }
    // T = 8: sizes with separators 7, 5 (ends with EOS), 5, 4, 3 -> best fit decreasing:
    // [#0 7] [#1 5, #4 3] [#2 5] -> #3 (4) fits no bin with 1, 3 left -> new bin [#3 4]
    CHECK_OK(lt_dataset_pack(&src, 8, 99, &dst, &err), &err);
    CHECK_MSG(dst.n == 4, "%lld sequences", (long long)dst.n);
    int64_t tot = 0, seps = 0;
    for (int64_t i = 0; i < dst.n; i++) {
        CHECK(dst.ex[i].len <= 8);
        tot += dst.ex[i].len;
        for (int j = 0; j < dst.ex[i].len; j++) seps += dst.ex[i].ids[j] == 99 && dst.ex[i].labels[j] == -100;
    }
    CHECK(tot == 20 + 4 && seps == 4);
    if (dst.n == 4) {
        // the second sequence: example 1 (ends with EOS, no separator) then example 4 + separator
        static const int32_t want[] = {10, 11, 12, 13, 99, 40, 41, 99};
        static const int32_t wlab[] = {-100, 11, 12, 13, 99, -100, 41, -100};
        CHECK(dst.ex[1].len == 8 && !memcmp(dst.ex[1].ids, want, sizeof want) &&
              !memcmp(dst.ex[1].labels, wlab, sizeof wlab));
    }
    lt_dataset_deinit(&dst);
    lt_dataset_init(&dst);
    // longer than T: cut and counted; no separator id
    CHECK_OK(lt_dataset_pack(&src, 4, -1, &dst, &err), &err);
    CHECK(dst.n_truncated == 2);
    tot = 0;
    for (int64_t i = 0; i < dst.n; i++) tot += dst.ex[i].len;
    CHECK(tot == 4 + 4 + 4 + 3 + 2);
    lt_dataset_deinit(&dst);
    // shuffle keeps the examples
    lt_dataset_shuffle(&src, 3);
    int seen = 0;
    for (int64_t i = 0; i < src.n; i++) seen |= 1 << (src.ex[i].ids[0] / 10);
    CHECK(seen == 31);
    lt_dataset_deinit(&src);
}

// ---------------------------------------------------------------------------------------------
// golden ids and labels (TRL / HF) with the GPT-2 tokenizer

// Builds a tokenizer of golden.json's "tokenizers": the shared GPT-2 tokenizer.json with extra
// added tokens, maybe another post-processor, and a tokenizer_config.json.
static lt_tokenizer *golden_tok(const cJSON *gpt2, const cJSON *spec) {
    cJSON *j = cJSON_Duplicate(gpt2, 1);
    lt_tokenizer *t = NULL;
    if (!j) return NULL;
    cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(spec, "added_tokens");
    for (const cJSON *a = add ? add->child : NULL; a; a = a->next)
        cJSON_AddItemToArray(at, cJSON_Duplicate(a, 1));
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(spec, "post_processor");
    if (pp && !cJSON_IsNull(pp)) cJSON_ReplaceItemInObject(j, "post_processor", cJSON_Duplicate(pp, 1));
    char *js = cJSON_PrintUnformatted(j);
    char *cs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(spec, "config"));
    lt_err err = {0};
    if (!js || !cs || lt_tokenizer_load_hf_mem(js, strlen(js), cs, strlen(cs), "golden", &t, &err)) {
        fprintf(stderr, "FAIL golden tokenizer: %s\n", err.msg);
        t_fail++;
        t = NULL;
    }
    cJSON_free(js), cJSON_free(cs);
    cJSON_Delete(j);
    return t;
}

static void test_golden(void) {
    const char *d = shared_data_dir();
    char path[1024];
    if (!d || snprintf(path, sizeof path, "%s/tokenizers/gpt2-hf-tokenizer.json", d) >= (int)sizeof path ||
        !lt_file_exists(path)) {
        fprintf(stderr, "SKIP golden: ../shared/data/tokenizers/gpt2-hf-tokenizer.json not found\n");
        return;
    }
    lt_err err = {0};
    cJSON *gold = NULL, *gpt2 = NULL;
    CHECK_OK(lt_json_parse_file("tests/fixtures/data/golden.json", &gold, &err), &err);
    CHECK_OK(lt_json_parse_file(path, &gpt2, &err), &err);
    if (!gold || !gpt2) goto out;
    const cJSON *specs = cJSON_GetObjectItemCaseSensitive(gold, "tokenizers");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(gold, "cases");
    const char *names[8];
    lt_tokenizer *toks[8] = {0};
    int nt = 0, n_ok = 0, n_skip = 0;
    for (const cJSON *sp = specs ? specs->child : NULL; sp && nt < 8; sp = sp->next) {
        names[nt] = sp->string;
        toks[nt++] = golden_tok(gpt2, sp);
    }
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const char *name = lt_json_str(c, "name", "?"), *tn = lt_json_str(c, "tokenizer", "");
        lt_tokenizer *tok = NULL;
        for (int i = 0; i < nt; i++)
            if (!strcmp(names[i], tn)) tok = toks[i];
        if (!tok) continue;
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(c, "opts");
        lt_sft_opts o;
        lt_sft_opts_default(&o);
        o.template_src = lt_json_str(op, "template", NULL);
        o.response_field = lt_json_str(op, "response_field", NULL);
        o.response_template = lt_json_str(op, "response_template", NULL);
        if (lt_json_str(op, "loss_on", NULL)) lt_loss_on_parse(lt_json_str(op, "loss_on", NULL), &o.loss_on, &err);
        char *line = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "record"));
        lt_records r;
        lt_records_init(&r);
        lt_sft *s = NULL;
        lt_ids ids = {0}, lab = {0};
        lt_status st = lt_records_read_mem(&r, line, strlen(line), name, &(lt_read_opts){.format = LT_DATA_JSONL, .header = -1}, &err);
        if (!st) st = lt_sft_new(tok, &o, &r.rec[0], &s, &err);
        if (st == LT_ERR_UNSUPPORTED) {
            n_skip++;
        } else if (st || (st = lt_sft_encode(s, &r, 0, &ids, &lab, NULL, &err))) {
            CHECK_MSG(0, "%s/%s: %s", tn, name, err.msg);
        } else {
            const cJSON *wi = cJSON_GetObjectItemCaseSensitive(c, "ids");
            const cJSON *wl = cJSON_GetObjectItemCaseSensitive(c, "labels");
            bool ok = (size_t)cJSON_GetArraySize(wi) == ids.n && ids.n == lab.n;
            size_t j = 0;
            for (const cJSON *a = wi->child, *b = wl->child; ok && a && b; a = a->next, b = b->next, j++)
                ok = a->valueint == ids.ids[j] && b->valueint == lab.ids[j];
            CHECK_MSG(ok, "%s/%s: ids/labels differ at %zu (n %zu, want %d)", tn, name, j, ids.n,
                      cJSON_GetArraySize(wi));
            if (!ok) {
                fprintf(stderr, "  got:");
                for (size_t k = 0; k < ids.n; k++) fprintf(stderr, " %d/%d", ids.ids[k], lab.ids[k]);
                fprintf(stderr, "\n");
            }
            n_ok += ok;
        }
        lt_ids_deinit(&ids), lt_ids_deinit(&lab);
        lt_sft_free(s);
        lt_records_deinit(&r);
        cJSON_free(line);
    }
    fprintf(stderr, "golden: %d cases match TRL/HF%s\n", n_ok, n_skip ? "" : "");
    if (n_skip) fprintf(stderr, "SKIP golden chat: %d cases need chat templates, not in this build\n", n_skip);
    for (int i = 0; i < nt; i++) lt_tokenizer_free(toks[i]);
out:
    cJSON_Delete(gold);
    cJSON_Delete(gpt2);
}

// ---------------------------------------------------------------------------------------------
// the real datasets of ../shared/data

static void test_shared(void) {
    const char *d = shared_data_dir();
    if (!d) {
        fprintf(stderr, "SKIP shared datasets: ../shared/data not found\n");
        return;
    }
    char path[1024];
    lt_err err = {0};
    lt_records r;
    lt_read_opts o;
    lt_read_opts_default(&o);
    o.columns = "label,text";
    lt_records_init(&r);
    snprintf(path, sizeof path, "%s/datasets/SMSSpamCollection.tsv", d);
    CHECK_OK(lt_records_read(&r, path, &o, &err), &err);
    CHECK_MSG(r.n == 5574 && r.bad.n == 0, "%lld records", (long long)r.n);
    int64_t spam = 0;
    for (int64_t i = 0; i < r.n; i++) spam += !strcmp(get(&r.rec[i], "label"), "spam");
    CHECK(spam == 747);
    // stratified 10%: 558 = 483 ham + 75 spam (747 * 558 / 5574 = 74.8)
    int64_t *tr = NULL, *va = NULL, nt = 0, nv = 0, vs = 0;
    CHECK_OK(lt_records_split(&r, 558, 42, "label", &tr, &nt, &va, &nv, &err), &err);
    for (int64_t i = 0; i < nv; i++) vs += !strcmp(get(&r.rec[va[i]], "label"), "spam");
    CHECK_MSG(nv == 558 && vs == 75, "val %lld spam %lld", (long long)nv, (long long)vs);
    lt_free(tr), lt_free(va);
    lt_records_deinit(&r);

    lt_records_init(&r);
    snprintf(path, sizeof path, "%s/datasets/rasbt-instruction-data.json", d);
    lt_read_opts_default(&o);
    CHECK_OK(lt_records_read(&r, path, &o, &err), &err);
    CHECK(r.n == 1100 && r.rec[2].line == 12 && r.rec[2].index == 3);
    CHECK(r.n == 1100 && !strcmp(get(&r.rec[2], "output"), "45 kilometers is 45000 meters."));
    // the whole file through the alpaca template with GPT-2: every record gives an example
    snprintf(path, sizeof path, "%s/tokenizers/gpt2-hf-tokenizer.json", d);
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load_hf(path, NULL, &tok, &err), &err);
    if (tok) {
        lt_sft_opts so;
        lt_sft_opts_default(&so);
        so.max_len = 1024;
        lt_sft *s = NULL;
        lt_dataset ds;
        lt_dataset_init(&ds);
        lt_sft_stats st = {0};
        CHECK_OK(lt_sft_new(tok, &so, &r.rec[0], &s, &err), &err);
        CHECK_OK(lt_sft_build(s, &r, NULL, 0, &ds, &st, &err), &err);
        CHECK_MSG(ds.n == 1100 && st.bad.n == 0 && st.n_no_loss == 0 && st.n_truncated == 0,
                  "%lld examples", (long long)ds.n);
        CHECK(st.n_loss_tokens > 0 && st.n_loss_tokens < st.n_tokens);
        lt_dataset packed;
        lt_dataset_init(&packed);
        CHECK_OK(lt_dataset_pack(&ds, 1024, lt_tokenizer_eos(tok), &packed, &err), &err);
        int64_t loss_a = 0, loss_b = 0;
        for (int64_t i = 0; i < ds.n; i++)
            for (int j = 0; j < ds.ex[i].len; j++) loss_a += ds.ex[i].labels[j] != -100;
        for (int64_t i = 0; i < packed.n; i++)
            for (int j = 0; j < packed.ex[i].len; j++) loss_b += packed.ex[i].labels[j] != -100;
        CHECK_MSG(packed.n < ds.n / 4 && loss_a == loss_b, "%lld sequences", (long long)packed.n);
        lt_dataset_deinit(&packed);
        lt_dataset_deinit(&ds);
        lt_sft_free(s);
        // lt_data_load: 10% validation, packing
        lt_data_opts dopt;
        lt_data_opts_default(&dopt);
        snprintf(path, sizeof path, "%s/datasets/rasbt-instruction-data.json", d);
        dopt.path = path;
        dopt.sft.max_len = 512;
        dopt.val_frac = 0.1;
        lt_dataset tr2, va2;
        lt_dataset_init(&tr2), lt_dataset_init(&va2);
        lt_data_summary sum;
        CHECK_OK(lt_data_load(tok, lt_tokenizer_n_vocab(tok), &dopt, &tr2, &va2, &sum, &err), &err);
        CHECK(tr2.n == 990 && va2.n == 110 && sum.shape == LT_SHAPE_INSTRUCTION);
        char line[512];
        lt_data_summary_describe(&sum, "rasbt.json", &tr2, &va2, 512, line, sizeof line);
        CHECK_MSG(strstr(line, "1100 records -> 990 training + 110 validation examples"), "%s", line);
        lt_dataset_deinit(&tr2), lt_dataset_deinit(&va2);
        lt_tokenizer_free(tok);
    }
    lt_records_deinit(&r);
}


// ---------------------------------------------------------------------------------------------
// allocation failures: every allocation of reading, templating, splitting and packing fails in
// turn; each call must return LT_ERR_OOM (or succeed) and leak nothing (ASan checks the leaks)

static lt_status oom_work(lt_err *err) {
    static const char *const inputs[][2] = {
        {"o.csv", "label,text\n\"a,\"\"b\",c\nx,y\n"},
        {"o.tsv", "a\tb\n1\t2\n"},
        {"o.jsonl", "{\"text\": \"t\", \"label\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"c\"}]}\n{\"text\": \"u\", \"label\": 2}\n"},
        {"o.json", "[{\"instruction\": \"i\", \"input\": \"\", \"output\": \"o\", \"label\": \"x\"}, {\"label\": \"y\"}]"},
    };
    lt_status st = LT_OK;
    for (size_t k = 0; k < sizeof inputs / sizeof *inputs && !st; k++) {
        lt_records r;
        lt_records_init(&r);
        lt_read_opts o;
        lt_read_opts_default(&o);
        o.on_bad = LT_ON_BAD_SKIP;
        st = lt_records_read_mem(&r, inputs[k][1], strlen(inputs[k][1]), inputs[k][0], &o, err);
        lt_template *t = NULL;
        if (!st) st = lt_template_new(k == 3 ? "alpaca" : "{text}: {label}", &t, err);
        for (int64_t i = 0; i < r.n && !st; i++) {
            char *s = NULL;
            size_t n, resp;
            lt_status rs = lt_template_render(t, &r.rec[i], &s, &n, &resp, err);
            if (rs == LT_ERR_OOM) st = rs;
            lt_free(s);
        }
        int64_t *tr = NULL, *va = NULL, nt, nv;
        if (!st && r.n > 1) st = lt_records_split(&r, 1, 1, "label", &tr, &nt, &va, &nv, err);
        lt_free(tr), lt_free(va);
        lt_template_free(t);
        lt_records_deinit(&r);
    }
    lt_dataset a, b;
    lt_dataset_init(&a), lt_dataset_init(&b);
    int32_t ids[5] = {1, 2, 3, 4, 5};
    for (int i = 0; i < 3 && !st; i++) st = lt_dataset_add(&a, ids, NULL, 3 + i, 8, err);
    if (!st) st = lt_dataset_pack(&a, 8, 9, &b, err);
    lt_dataset_deinit(&a), lt_dataset_deinit(&b);
    return st;
}

static void test_oom(void) {
    lt_err err = {0};
    CHECK_OK(oom_work(&err), &err);
    int runs = 0, bad = 0;
    for (long k = 0; k < 2000; k++) {
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(k);
        lt_status st = oom_work(&err);
        lt_alloc_fail_after(-1);
        runs++;
        if (st != LT_OK && st != LT_ERR_OOM) {
            bad++;
            fprintf(stderr, "FAIL oom sweep at %ld: %s: %s\n", k, lt_status_name(st), err.msg);
        }
        if (lt_alloc_injected_failures() == before) break; // no allocation failed: done
    }
    CHECK_MSG(bad == 0 && runs > 10, "%d runs, %d bad", runs, bad);
}

int main(void) {
    test_csv();
    test_json();
    test_template();
    test_sft();
    test_split();
    test_pack();
    test_oom();
    test_golden();
    test_shared();
    TEST_END();
}
