/*
 * sft.c - records to training examples: shapes (text, prompt/completion, instruction through a
 * template, chat messages through the tokenizer's chat template) -> text with loss spans ->
 * token ids and labels (-100 where no loss), EOS, truncation, the bad-record policy.
 *
 * The contract (shapes, loss roles, how a loss boundary inside a BPE token is handled, EOS,
 * truncation) is in data.h. References: TRL SFTTrainer (trl/trainer/sft_trainer.py: add_eos,
 * tokenize_fn, common_prefix_length), TRL's former DataCollatorForCompletionOnlyLM (response
 * template search), transformers apply_chat_template (tokenize with add_special_tokens=False).
 * Deliberately not here: tool calls and multimodal message contents, conversational
 * prompt/completion records, per-example position ids for packing.
 */
#include "data/data_impl.h"

#include <string.h>

// Chat records need tokenizer/chat_template.h (built in parallel); without it they fail with
// LT_ERR_UNSUPPORTED. LT_NO_CHAT_TEMPLATE forces that (builds against a tree where the header
// exists but its implementation is incomplete).
#if defined(__has_include) && !defined(LT_NO_CHAT_TEMPLATE)
#if __has_include("tokenizer/chat_template.h")
#include "tokenizer/chat_template.h"
#define LT_HAVE_CHAT_TEMPLATE 1
#endif
#endif

struct lt_sft {
    const lt_tokenizer *tok;
    lt_shape shape;
    lt_loss_on loss;
    lt_truncate trunc;
    int max_len;
    bool add_eos;
    lt_on_bad on_bad;
    lt_template *tmpl; // INSTRUCTION, TEMPLATE
    char *text_field;  // TEXT
    char *rt;          // response template string, NULL when none
    size_t rt_len;
    lt_ids rt_ids;     // its ids without special tokens
    int32_t bos, eos;
    char *bos_str, *eos_str; // their text, for chat templates ("" when none)
#ifdef LT_HAVE_CHAT_TEMPLATE
    lt_chat_template *chat;
#endif
};

static const char *const shape_names[] = {"auto", "text", "prompt/completion", "instruction",
                                          "template", "chat"};

const char *lt_shape_name(lt_shape s) {
    return (unsigned)s < sizeof shape_names / sizeof *shape_names ? shape_names[s] : "?";
}

lt_status lt_loss_on_parse(const char *s, lt_loss_on *out, lt_err *err) {
    if (!strcmp(s, "auto")) *out = LT_LOSS_AUTO;
    else if (!strcmp(s, "all")) *out = LT_LOSS_ALL;
    else if (!strcmp(s, "completion")) *out = LT_LOSS_COMPLETION;
    else if (!strcmp(s, "assistant")) *out = LT_LOSS_ASSISTANT;
    else
        return lt_err_set(err, LT_ERR_ARG, "loss must be completion, all or assistant, not \"%s\"",
                          s);
    return LT_OK;
}

lt_status lt_truncate_parse(const char *s, lt_truncate *out, lt_err *err) {
    if (!strcmp(s, "auto")) *out = LT_TRUNC_AUTO;
    else if (!strcmp(s, "right")) *out = LT_TRUNC_RIGHT;
    else if (!strcmp(s, "left")) *out = LT_TRUNC_LEFT;
    else if (!strcmp(s, "split")) *out = LT_TRUNC_SPLIT;
    else
        return lt_err_set(err, LT_ERR_ARG, "truncation must be right, left or split, not \"%s\"",
                          s);
    return LT_OK;
}

lt_status lt_on_bad_parse(const char *s, lt_on_bad *out, lt_err *err) {
    if (!strcmp(s, "stop")) *out = LT_ON_BAD_STOP;
    else if (!strcmp(s, "skip")) *out = LT_ON_BAD_SKIP;
    else return lt_err_set(err, LT_ERR_ARG, "on a bad record: skip or stop, not \"%s\"", s);
    return LT_OK;
}

void lt_sft_opts_default(lt_sft_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_len = 256;
    o->add_eos = true;
    o->text_field = "text";
}

lt_shape lt_sft_shape(const lt_sft *s) { return s->shape; }
lt_loss_on lt_sft_loss_on(const lt_sft *s) { return s->loss; }
lt_truncate lt_sft_truncation(const lt_sft *s) { return s->trunc; }

void lt_sft_free(lt_sft *s) {
    if (!s) return;
    lt_template_free(s->tmpl);
    lt_free(s->text_field);
    lt_free(s->rt);
    lt_ids_deinit(&s->rt_ids);
    lt_free(s->bos_str);
    lt_free(s->eos_str);
#ifdef LT_HAVE_CHAT_TEMPLATE
    lt_chat_template_free(s->chat);
#endif
    lt_free(s);
}

// ---------------------------------------------------------------------------------------------
// setup

static const lt_field *msgs_field(const lt_record *rec) {
    const lt_field *f = lt_record_get(rec, "messages");
    return f ? f : lt_record_get(rec, "conversations");
}

// "a, b, c" of the record's field names, for messages.
static void field_list(const lt_record *rec, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < rec->n_fields && o + 1 < n; i++) {
        int w = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", rec->fields[i].key);
        if (w < 0) break;
        o += (size_t)w;
    }
}

static lt_status detect_shape(const lt_sft_opts *o, const lt_record *sample, lt_shape *out,
                              lt_err *err) {
    if (!sample)
        return lt_err_set(err, LT_ERR_ARG, "no records to tell the record shape from");
    if (msgs_field(sample)) *out = LT_SHAPE_CHAT;
    else if (lt_record_get(sample, "instruction") && lt_record_get(sample, "output"))
        *out = LT_SHAPE_INSTRUCTION;
    else if (o->template_src) *out = LT_SHAPE_TEMPLATE;
    else if (lt_record_get(sample, "prompt") && lt_record_get(sample, "completion"))
        *out = LT_SHAPE_PROMPT_COMPLETION;
    else if (lt_record_get(sample, o->text_field ? o->text_field : "text")) *out = LT_SHAPE_TEXT;
    else {
        char fields[160];
        field_list(sample, fields, sizeof fields);
        return lt_err_set(err, LT_ERR_ARG, "records have fields {%s}: none of the known shapes "
                          "{\"%s\"}, {\"prompt\",\"completion\"}, {\"instruction\",\"input\","
                          "\"output\"}, {\"messages\"}; give a template with {field} "
                          "placeholders (and, for a CSV/TSV file without a header line, the "
                          "column names)", fields, o->text_field ? o->text_field : "text");
    }
    return LT_OK;
}

static char *token_text(const lt_tokenizer *tok, int32_t id) {
    size_t n = 0;
    const char *s = id >= 0 ? lt_tokenizer_token_bytes(tok, id, &n) : NULL;
    char *r = lt_alloc(n + 1);
    if (!r) return NULL;
    if (s && n) memcpy(r, s, n);
    r[n] = 0;
    return r;
}

lt_status lt_sft_new(const lt_tokenizer *tok, const lt_sft_opts *o, const lt_record *sample,
                     lt_sft **out, lt_err *err) {
    if (!tok || !o) return lt_err_set(err, LT_ERR_ARG, "lt_sft_new: no tokenizer or options");
    if (o->max_len < 2)
        return lt_err_set(err, LT_ERR_ARG, "maximum length must be at least 2 tokens, not %d",
                          o->max_len);
    lt_sft *s = lt_calloc(1, sizeof *s);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = LT_OK;
    s->tok = tok;
    s->max_len = o->max_len;
    s->add_eos = o->add_eos;
    s->on_bad = o->on_bad;
    s->bos = lt_tokenizer_bos(tok);
    s->eos = lt_tokenizer_eos(tok);
    s->text_field = lt_strdup(o->text_field ? o->text_field : "text");
    s->bos_str = token_text(tok, s->bos);
    s->eos_str = token_text(tok, s->eos);
    if (!s->text_field || !s->bos_str || !s->eos_str) goto oom;
    s->shape = o->shape;
    if (s->shape == LT_SHAPE_AUTO && (st = detect_shape(o, sample, &s->shape, err))) goto fail;

    // templates
    if (s->shape == LT_SHAPE_INSTRUCTION || s->shape == LT_SHAPE_TEMPLATE) {
        const char *src = o->template_src ? o->template_src : "alpaca";
        if (s->shape == LT_SHAPE_TEMPLATE && !o->template_src) {
            st = lt_err_set(err, LT_ERR_ARG, "the template shape needs a template");
            goto fail;
        }
        if ((st = lt_template_new(src, &s->tmpl, err))) goto fail;
        if (o->response_field && (st = lt_template_set_response(s->tmpl, o->response_field, err)))
            goto fail;
    } else if (o->template_src) {
        st = lt_err_set(err, LT_ERR_ARG, "a prompt template does not apply to %s records%s",
                        lt_shape_name(s->shape),
                        s->shape == LT_SHAPE_CHAT ? " (they use the chat template)" : "");
        goto fail;
    }
    if (s->shape == LT_SHAPE_CHAT) {
#ifdef LT_HAVE_CHAT_TEMPLATE
        const char *src = o->chat_template ? o->chat_template : lt_tokenizer_chat_template(tok);
        if (!src) {
            st = lt_err_set(err, LT_ERR_ARG, "chat records need a chat template: the tokenizer "
                            "has none (tokenizer_config.json chat_template); give one");
            goto fail;
        }
        if ((st = lt_chat_template_parse(src, strlen(src), &s->chat, err))) goto fail;
#else
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "chat records need chat templates, which this "
                        "build lacks (tokenizer/chat_template.h)");
        goto fail;
#endif
    }

    // response template
    if (o->response_template && o->response_template[0]) {
        s->rt_len = strlen(o->response_template);
        if (!(s->rt = lt_strdup(o->response_template))) goto oom;
        if ((st = lt_tokenizer_encode(tok, s->rt, s->rt_len, 0, &s->rt_ids, err))) goto fail;
        if (s->rt_ids.n == 0) {
            st = lt_err_set(err, LT_ERR_ARG, "the response template encodes to no tokens");
            goto fail;
        }
    }

    // loss
    bool has_resp = s->shape == LT_SHAPE_PROMPT_COMPLETION || s->shape == LT_SHAPE_CHAT ||
                    (s->tmpl && lt_template_response(s->tmpl));
    s->loss = o->loss_on;
    if (s->loss == LT_LOSS_AUTO) {
        if (s->rt) s->loss = LT_LOSS_COMPLETION;
        else if (s->shape == LT_SHAPE_CHAT) s->loss = LT_LOSS_ASSISTANT;
        else s->loss = has_resp ? LT_LOSS_COMPLETION : LT_LOSS_ALL;
    }
    if (s->loss == LT_LOSS_ASSISTANT && s->shape != LT_SHAPE_CHAT) {
        st = lt_err_set(err, LT_ERR_ARG, "loss on assistant turns needs chat (messages) records, "
                        "not %s records", lt_shape_name(s->shape));
        goto fail;
    }
    if (s->loss == LT_LOSS_COMPLETION && !has_resp && !s->rt) {
        st = lt_err_set(err, LT_ERR_ARG, "loss on the completion needs a response: "
                        "prompt/completion or instruction records, a template with {output}, or "
                        "a response template; %s records have none", lt_shape_name(s->shape));
        goto fail;
    }
    if (s->rt && s->loss == LT_LOSS_ALL) {
        st = lt_err_set(err, LT_ERR_ARG, "a response template marks where the loss starts; it "
                        "does not go with loss on all tokens");
        goto fail;
    }
    s->trunc = o->truncate;
    if (s->trunc == LT_TRUNC_AUTO)
        s->trunc = s->shape == LT_SHAPE_TEXT && s->loss == LT_LOSS_ALL ? LT_TRUNC_SPLIT
                                                                       : LT_TRUNC_RIGHT;
    *out = s;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
fail:
    lt_sft_free(s);
    return st;
}

// ---------------------------------------------------------------------------------------------
// rendering: record -> text + loss spans

typedef struct {
    lt_span *v;
    int n, cap;
} span_vec;

static bool span_add(span_vec *sv, size_t b, size_t e) {
    if (e <= b) return true;
    if (sv->n && sv->v[sv->n - 1].e == b) { // contiguous: merge
        sv->v[sv->n - 1].e = e;
        return true;
    }
    if (sv->n == sv->cap) {
        int cap = sv->cap ? sv->cap * 2 : 8;
        lt_span *p = lt_realloc(sv->v, sizeof *p * (size_t)cap);
        if (!p) return false;
        sv->v = p, sv->cap = cap;
    }
    sv->v[sv->n++] = (lt_span){b, e};
    return true;
}

// A string field (numbers and booleans as their text). Missing or of another type: an error.
static lt_status need_str(const lt_record *rec, const char *k, bool nonempty, const char **s,
                          size_t *n, lt_err *err) {
    const lt_field *f = lt_record_get(rec, k);
    if (!f) return lt_err_set(err, LT_ERR_FORMAT, "missing field \"%s\"", k);
    if (f->type != LT_FIELD_STR && f->type != LT_FIELD_NUM && f->type != LT_FIELD_BOOL) {
        static const char *const tn[] = {"a string", "a number", "a boolean", "null",
                                         "a list of messages", "an array or object"};
        return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is %s, expected a string", k,
                          tn[f->type]);
    }
    if (nonempty && f->len == 0) return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is empty", k);
    *s = f->str, *n = f->len;
    return LT_OK;
}

#ifdef LT_HAVE_CHAT_TEMPLATE
static lt_status chat_render(const lt_sft *s, const lt_chat_msg *m, int n, bool gen, char **out,
                             size_t *len, lt_err *err) {
    // a tokenizer without BOS/EOS leaves the variable undefined, as transformers does
    lt_chat_vars v = {.bos_token = s->bos >= 0 ? s->bos_str : NULL,
                      .eos_token = s->eos >= 0 ? s->eos_str : NULL,
                      .add_generation_prompt = gen};
    return lt_chat_template_render(s->chat, m, n, &v, out, len, err);
}

static size_t common_prefix(const char *a, size_t na, const char *b, size_t nb) {
    size_t i = 0, n = na < nb ? na : nb;
    while (i < n && a[i] == b[i]) i++;
    return i;
}
#endif

// Renders a chat: the full text and the spans of the assistant turns (all of them, or the last
// one for COMPLETION). *merged is set when a prefix rendering is not a prefix of the full one.
static lt_status render_chat(const lt_sft *s, lt_loss_on loss, const lt_field *mf, lt_sbuf *text,
                             span_vec *sv, bool *merged, lt_err *err) {
#ifdef LT_HAVE_CHAT_TEMPLATE
    int n = mf->n_msgs;
    lt_chat_msg *m = lt_alloc(sizeof *m * (size_t)n);
    if (!m) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    int last_asst = -1;
    for (int i = 0; i < n; i++) {
        m[i].role = mf->msgs[i].role, m[i].content = mf->msgs[i].content;
        if (!strcmp(m[i].role, "assistant")) last_asst = i;
    }
    char *full = NULL, *part = NULL;
    size_t nfull = 0, npart = 0;
    lt_status st = chat_render(s, m, n, false, &full, &nfull, err);
    if (!st && loss != LT_LOSS_ALL && last_asst < 0)
        st = lt_err_set(err, LT_ERR_FORMAT, "no assistant message to learn from (roles must be "
                        "\"assistant\" for the loss on assistant turns)");
    if (!st && loss == LT_LOSS_ALL && !span_add(sv, 0, nfull)) goto oom;
    for (int k = 0; k < n && !st && loss != LT_LOSS_ALL; k++) {
        if (strcmp(m[k].role, "assistant") != 0) continue;
        if (loss == LT_LOSS_COMPLETION && k != last_asst) continue;
        if ((st = chat_render(s, m, k, true, &part, &npart, err))) break;
        size_t b = common_prefix(part, npart, full, nfull);
        if (b < npart) *merged = true;
        lt_free(part), part = NULL;
        if ((st = chat_render(s, m, k + 1, false, &part, &npart, err))) break;
        size_t e = common_prefix(part, npart, full, nfull);
        if (e < npart) *merged = true;
        lt_free(part), part = NULL;
        if (e <= b) {
            st = lt_err_set(err, LT_ERR_FORMAT, "the chat template renders assistant message %d "
                            "differently on its own: cannot find its span", k + 1);
            break;
        }
        if (!span_add(sv, b, e)) goto oom;
    }
    if (!st && !lt_sbuf_add(text, full, nfull)) goto oom;
    lt_free(full);
    lt_free(part);
    lt_free(m);
    return st;
oom:
    lt_free(full);
    lt_free(part);
    lt_free(m);
    return lt_err_set(err, LT_ERR_OOM, "out of memory");
#else
    (void)s, (void)loss, (void)mf, (void)text, (void)sv, (void)merged;
    return lt_err_set(err, LT_ERR_UNSUPPORTED, "chat templates are not in this build");
#endif
}

// rec -> text (appended to the empty buffer) and loss spans. With a response template the spans
// are decided after tokenisation, so none are produced here.
static lt_status render(const lt_sft *s, const lt_record *rec, lt_sbuf *text, span_vec *sv,
                        bool *merged, lt_err *err) {
    lt_status st = LT_OK;
    const char *a, *b;
    size_t na, nb;
    size_t resp = SIZE_MAX;
    if (!lt_sbuf_reserve(text, 0)) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    text->p[0] = 0;
    switch (s->shape) {
    case LT_SHAPE_TEXT:
        if ((st = need_str(rec, s->text_field, true, &a, &na, err))) return st;
        if (!lt_sbuf_add(text, a, na)) goto oom;
        break;
    case LT_SHAPE_PROMPT_COMPLETION:
        if ((st = need_str(rec, "prompt", false, &a, &na, err))) return st;
        if ((st = need_str(rec, "completion", true, &b, &nb, err))) return st;
        if (!lt_sbuf_add(text, a, na) || !lt_sbuf_add(text, b, nb)) goto oom;
        resp = na;
        break;
    case LT_SHAPE_INSTRUCTION:
    case LT_SHAPE_TEMPLATE: {
        const char *rf = lt_template_response(s->tmpl);
        if (s->shape == LT_SHAPE_INSTRUCTION && lt_template_uses(s->tmpl, "instruction") &&
            (st = need_str(rec, "instruction", true, &a, &na, err)))
            return st;
        char *t = NULL;
        size_t nt = 0;
        if ((st = lt_template_render(s->tmpl, rec, &t, &nt, &resp, err))) return st;
        if (rf && (st = need_str(rec, rf, true, &a, &na, err))) { // present but maybe empty
            lt_free(t);
            return st;
        }
        bool ok = lt_sbuf_add(text, t, nt);
        lt_free(t);
        if (!ok) goto oom;
        if (nt == 0) return lt_err_set(err, LT_ERR_FORMAT, "the template renders empty text");
        break;
    }
    case LT_SHAPE_CHAT: {
        const lt_field *mf = msgs_field(rec);
        if (!mf) return lt_err_set(err, LT_ERR_FORMAT, "missing field \"messages\"");
        if (mf->type != LT_FIELD_MSGS)
            return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is not a list of messages",
                              mf->key);
        if (s->rt) { // the response template decides: the whole chat, no spans
            span_vec none = {0};
            st = render_chat(s, LT_LOSS_ALL, mf, text, &none, merged, err);
            lt_free(none.v);
            return st;
        }
        return render_chat(s, s->loss, mf, text, sv, merged, err);
    }
    default: return lt_err_set(err, LT_ERR_ARG, "record shape not set");
    }
    if (s->rt) return LT_OK;
    if (s->loss == LT_LOSS_ALL) {
        if (!span_add(sv, 0, text->n)) goto oom;
    } else if (resp != SIZE_MAX) {
        if (!span_add(sv, resp, text->n)) goto oom;
    }
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "out of memory");
}

lt_status lt_sft_render(const lt_sft *s, const lt_records *recs, int64_t i, char **text,
                        size_t *len, lt_span **spans, int *n_spans, lt_err *err) {
    if (i < 0 || i >= recs->n) return lt_err_set(err, LT_ERR_ARG, "record %lld out of range", (long long)i);
    lt_sbuf t = {0};
    span_vec sv = {0};
    bool merged = false;
    lt_status st = render(s, &recs->rec[i], &t, &sv, &merged, err);
    if (st) {
        char where[160];
        lt_record_where(recs, &recs->rec[i], where, sizeof where);
        lt_err_wrap(err, "%s", where);
        lt_sbuf_deinit(&t);
        lt_free(sv.v);
        return st;
    }
    *text = t.p, *len = t.n, *spans = sv.v, *n_spans = sv.n;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// tokenisation: text + spans -> ids + labels

typedef struct {
    const lt_sft *s;
    const char *text;
    size_t len;
    unsigned flags;
    const lt_ids *full;
    size_t *cum; // (full->n + 1) byte offsets of the tokens in token-byte space; lazily built
    lt_ids tmp;
} bctx;

static lt_status build_cum(bctx *c, lt_err *err) {
    if (c->cum) return LT_OK;
    c->cum = lt_alloc(sizeof *c->cum * (c->full->n + 1));
    if (!c->cum) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    c->cum[0] = 0;
    for (size_t j = 0; j < c->full->n; j++) {
        size_t n = 0;
        (void)lt_tokenizer_token_bytes(c->s->tok, c->full->ids[j], &n);
        c->cum[j + 1] = c->cum[j] + n;
    }
    return LT_OK;
}

// The token index of byte offset b of the text. start: a token straddling b counts as after it
// (the first token reaching past b); !start: as before it (the first token starting at or past
// b). Both are the same when the prefix's own ids are a prefix of the full ids.
static lt_status boundary(bctx *c, size_t b, bool start, size_t *out, bool *merged, lt_err *err) {
    const lt_ids *full = c->full;
    if (b >= c->len) {
        *out = full->n;
        return LT_OK;
    }
    c->tmp.n = 0;
    lt_status st = lt_tokenizer_encode(c->s->tok, c->text, b, c->flags, &c->tmp, err);
    if (st) return st;
    size_t k = c->tmp.n;
    for (;;) {
        if (k <= full->n && (k == 0 || !memcmp(c->tmp.ids, full->ids, sizeof(int32_t) * k))) {
            *out = k;
            return LT_OK;
        }
        // a post-processor token after the prefix (an added EOS) is not part of the full text
        if (k > 0 && (c->flags & LT_TOK_ADD_SPECIAL) && lt_tokenizer_is_special(c->s->tok, c->tmp.ids[k - 1]))
            k--;
        else break;
    }
    // A merge crosses b: locate it by bytes.
    *merged = true;
    if ((st = build_cum(c, err))) return st;
    size_t P = 0;
    for (size_t j = 0; j < k; j++) {
        size_t n = 0;
        (void)lt_tokenizer_token_bytes(c->s->tok, c->tmp.ids[j], &n);
        P += n;
    }
    size_t j = 0;
    if (start) {
        while (j < full->n && c->cum[j + 1] <= P) j++;
    } else {
        while (j < full->n && c->cum[j] < P) j++;
    }
    *out = j;
    return LT_OK;
}

// Index of the last occurrence of pat in ids, or SIZE_MAX.
static size_t find_last(const int32_t *ids, size_t n, const int32_t *pat, size_t m) {
    if (m == 0 || m > n) return SIZE_MAX;
    for (size_t i = n - m + 1; i-- > 0;)
        if (ids[i] == pat[0] && !memcmp(ids + i, pat, sizeof(int32_t) * m)) return i;
    return SIZE_MAX;
}

static size_t find_last_bytes(const char *h, size_t n, const char *p, size_t m) {
    if (m == 0 || m > n) return SIZE_MAX;
    for (size_t i = n - m + 1; i-- > 0;)
        if (h[i] == p[0] && !memcmp(h + i, p, m)) return i;
    return SIZE_MAX;
}

static bool ids_push(lt_ids *v, int32_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = lt_realloc(v->ids, sizeof *p * cap);
        if (!p) return false;
        v->ids = p, v->cap = cap;
    }
    v->ids[v->n++] = x;
    return true;
}

lt_status lt_sft_encode(const lt_sft *s, const lt_records *recs, int64_t i, lt_ids *ids,
                        lt_ids *labels, unsigned *notes, lt_err *err) {
    if (i < 0 || i >= recs->n) return lt_err_set(err, LT_ERR_ARG, "record %lld out of range", (long long)i);
    const lt_record *rec = &recs->rec[i];
    lt_sbuf text = {0};
    span_vec sv = {0};
    bool merged = false, rt_text = false;
    unsigned nt = 0;
    bctx c = {.s = s, .full = ids};
    ids->n = 0, labels->n = 0;
    lt_status st = render(s, rec, &text, &sv, &merged, err);
    if (st) goto done;
    c.text = text.p, c.len = text.n;
    c.flags = s->shape == LT_SHAPE_CHAT ? 0u : (unsigned)LT_TOK_ADD_SPECIAL;
    if ((st = lt_tokenizer_encode(s->tok, text.p, text.n, c.flags, ids, err))) goto done;
    size_t n = ids->n;
    if (labels->cap < n + 1) {
        int32_t *p = lt_realloc(labels->ids, sizeof *p * (n + 1));
        if (!p) goto oom;
        labels->ids = p, labels->cap = n + 1;
    }
    labels->n = n;
    for (size_t j = 0; j < n; j++) labels->ids[j] = -100;
    if (s->rt) {
        size_t at = find_last(ids->ids, n, s->rt_ids.ids, s->rt_ids.n), from = SIZE_MAX;
        if (at != SIZE_MAX) {
            from = at + s->rt_ids.n;
        } else {
            size_t pos = find_last_bytes(text.p, text.n, s->rt, s->rt_len);
            if (pos != SIZE_MAX) {
                bool m2 = false;
                if ((st = boundary(&c, pos + s->rt_len, true, &from, &m2, err))) goto done;
                rt_text = true;
            }
        }
        for (size_t j = from; j < n && from != SIZE_MAX; j++) labels->ids[j] = ids->ids[j];
    } else {
        for (int k = 0; k < sv.n; k++) {
            size_t tb, te;
            if (s->loss == LT_LOSS_ALL) {
                tb = 0, te = n; // every token, BOS included (TRL: labels = input_ids)
            } else {
                if ((st = boundary(&c, sv.v[k].b, true, &tb, &merged, err))) goto done;
                if ((st = boundary(&c, sv.v[k].e, false, &te, &merged, err))) goto done;
            }
            for (size_t j = tb; j < te && j < n; j++) labels->ids[j] = ids->ids[j];
        }
    }
    if (s->add_eos && s->shape != LT_SHAPE_CHAT && s->eos >= 0 && (n == 0 || ids->ids[n - 1] != s->eos)) {
        bool loss = n > 0 && labels->ids[n - 1] != -100;
        if (!ids_push(ids, s->eos)) goto oom;
        labels->ids[n] = loss ? s->eos : -100;
        labels->n = n + 1;
        nt |= LT_SFT_EOS_ADDED;
    }
    if (merged) nt |= LT_SFT_BOUNDARY_MERGE;
    if (rt_text) nt |= LT_SFT_RT_TEXT;
    if (notes) *notes = nt;
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
done:
    if (st) {
        ids->n = 0, labels->n = 0;
        if (st == LT_ERR_FORMAT || st == LT_ERR_ARG) {
            char where[160];
            lt_record_where(recs, rec, where, sizeof where);
            lt_err_wrap(err, "%s", where);
            st = LT_ERR_FORMAT; // a record the tokenizer rejects is a bad record too
        }
    }
    lt_free(c.cum);
    lt_ids_deinit(&c.tmp);
    lt_sbuf_deinit(&text);
    lt_free(sv.v);
    return st;
}

// ---------------------------------------------------------------------------------------------
// truncation and building

bool lt_sft_truncate(const lt_sft *s, int32_t *ids, int32_t *labels, size_t *len) {
    size_t n = *len, T = (size_t)s->max_len;
    if (n <= T) return false;
    if (s->trunc == LT_TRUNC_LEFT) {
        size_t keep = (s->bos >= 0 && ids[0] == s->bos) ? 1 : 0; // keep a leading BOS
        memmove(ids + keep, ids + n - (T - keep), sizeof *ids * (T - keep));
        memmove(labels + keep, labels + n - (T - keep), sizeof *labels * (T - keep));
    }
    *len = T;
    return true;
}

static int64_t loss_tokens(const int32_t *labels, size_t n) {
    int64_t k = 0;
    for (size_t j = 1; j < n; j++) k += labels[j] != -100;
    return k;
}

// Adds ids/labels[0..n) as one example when it has loss; updates stats.
static lt_status add_example(lt_dataset *d, const int32_t *ids, const int32_t *labels, size_t n,
                             lt_sft_stats *stats, lt_err *err) {
    int64_t nl = loss_tokens(labels, n);
    if (nl == 0 || n < 2) {
        stats->n_no_loss++;
        return LT_OK;
    }
    lt_status st = lt_dataset_add(d, ids, labels, (int)n, (int)n, err);
    if (st) return st;
    stats->n_examples++;
    stats->n_tokens += (int64_t)n;
    stats->n_loss_tokens += nl;
    return LT_OK;
}

lt_status lt_sft_build(const lt_sft *s, const lt_records *recs, const int64_t *idx, int64_t n_idx,
                       lt_dataset *d, lt_sft_stats *stats, lt_err *err) {
    lt_sft_stats local;
    if (!stats) memset(&local, 0, sizeof local), stats = &local;
    if (!idx) n_idx = recs->n;
    lt_ids ids = {0}, labels = {0};
    lt_status st = LT_OK;
    lt_err e = {0};
    for (int64_t k = 0; k < n_idx && !st; k++) {
        int64_t i = idx ? idx[k] : k;
        unsigned notes = 0;
        stats->n_records++;
        lt_status rs = lt_sft_encode(s, recs, i, &ids, &labels, &notes, &e);
        if (rs) {
            st = lt_bad_record(&stats->bad, s->on_bad, rs, &e);
            continue;
        }
        if (notes & LT_SFT_BOUNDARY_MERGE) stats->n_boundary_merge++;
        if (notes & LT_SFT_RT_TEXT) stats->n_rt_text++;
        size_t n = ids.n, T = (size_t)s->max_len;
        if (s->trunc == LT_TRUNC_SPLIT && n > T) {
            stats->n_truncated++;
            d->n_truncated++;
            for (size_t o = 0; o < n && !st; o += T) {
                size_t m = n - o < T ? n - o : T;
                if (m < 2) break;
                st = add_example(d, ids.ids + o, labels.ids + o, m, stats, &e);
            }
            continue;
        }
        if (lt_sft_truncate(s, ids.ids, labels.ids, &n)) {
            stats->n_truncated++;
            d->n_truncated++;
        }
        st = add_example(d, ids.ids, labels.ids, n, stats, &e);
    }
    lt_ids_deinit(&ids);
    lt_ids_deinit(&labels);
    if (st && err) *err = e;
    return st;
}
