/*
 * prompts.c - prompt files and records -> prompt text -> token ids, for generation (rules in
 * infer.h). Records come through src/data's readers (JSONL, JSON, CSV, TSV), prompt templates
 * through lt_template, chats through the chat template module, so a prompt is rendered exactly
 * as the same record is rendered for training, up to where the answer starts.
 * Not here: truncation of long prompts (lt_generate refuses prompts that do not fit).
 */
#include "infer/infer.h"
#include "tokenizer/chat_template.h"

#include <string.h>

struct lt_prompter {
    const lt_tokenizer *tok;
    lt_prompt_opts o;
    lt_chat_template *chat; // NULL until a chat is rendered
    char *chat_src;
    lt_template *tmpl;   // the user's prompt template, or NULL
    lt_template *alpaca; // for instruction records without a user template (lazily)
    char *bos, *eos;     // token texts for the chat template
};

void lt_prompts_deinit(lt_prompts *p) {
    for (int64_t i = 0; i < p->n; i++) {
        lt_free(p->text[i]);
        lt_free(p->id[i]);
        lt_free(p->ids[i]);
    }
    lt_free(p->text), lt_free(p->id), lt_free(p->ids), lt_free(p->len);
    memset(p, 0, sizeof *p);
}

void lt_prompter_free(lt_prompter *p) {
    if (!p) return;
    lt_chat_template_free(p->chat);
    lt_template_free(p->tmpl);
    lt_template_free(p->alpaca);
    lt_free(p->chat_src), lt_free(p->bos), lt_free(p->eos);
    lt_free(p);
}

static char *token_text(const lt_tokenizer *tok, int32_t id) {
    size_t n = 0;
    const char *s = id >= 0 ? lt_tokenizer_token_bytes(tok, id, &n) : NULL;
    if (!s) return NULL;
    char *r = lt_alloc(n + 1);
    if (r) memcpy(r, s, n), r[n] = 0;
    return r;
}

lt_status lt_prompter_new(const lt_tokenizer *tok, const lt_prompt_opts *o, lt_prompter **out,
                          lt_err *err) {
    lt_prompter *p = lt_calloc(1, sizeof *p);
    if (!p) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = LT_OK;
    p->tok = tok;
    p->o = *o;
    const char *src = o->chat_template ? o->chat_template : lt_tokenizer_chat_template(tok);
    if (src && !(p->chat_src = lt_strdup(src))) goto oom;
    p->bos = token_text(tok, lt_tokenizer_bos(tok));
    p->eos = token_text(tok, lt_tokenizer_eos(tok));
    if (o->template_src && (st = lt_template_new(o->template_src, &p->tmpl, err))) goto fail;
    if (o->chat && !p->chat_src) {
        st = lt_err_set(err, LT_ERR_ARG,
                        "--chat needs a chat template and the tokenizer has none "
                        "(tokenizer_config.json chat_template or GGUF tokenizer.chat_template); "
                        "give one with --chat-template");
        goto fail;
    }
    *out = p;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
fail:
    lt_prompter_free(p);
    return st;
}

static lt_status chat_render(lt_prompter *pm, const lt_chat_msg *m, int n, char **text,
                             lt_err *err) {
    if (!pm->chat_src)
        return lt_err_set(err, LT_ERR_ARG,
                          "chat messages need a chat template and the tokenizer "
                          "has none; give one with --chat-template");
    if (!pm->chat) {
        lt_status st = lt_chat_template_parse(pm->chat_src, strlen(pm->chat_src), &pm->chat, err);
        if (st) return st;
    }
    lt_chat_vars v = {.bos_token = pm->bos, .eos_token = pm->eos, .add_generation_prompt = true};
    return lt_chat_template_render(pm->chat, m, n, &v, text, NULL, err);
}

static lt_status push(lt_prompts *ps, const lt_prompter *p, char *text, bool chat, const char *id,
                      lt_err *err) {
    lt_ids v = {0};
    lt_status st =
        lt_tokenizer_encode(p->tok, text, strlen(text), chat ? 0 : LT_TOK_ADD_SPECIAL, &v, err);
    if (st) goto fail;
    int32_t eos = lt_tokenizer_eos(p->tok);
    if (!chat && v.n > 1 && v.ids[v.n - 1] == eos) { // an EOS the post-processor appended
        size_t el = 0;
        const char *eb = lt_tokenizer_token_bytes(p->tok, eos, &el);
        size_t tl = strlen(text);
        if (!eb || tl < el || memcmp(text + tl - el, eb, el)) v.n--;
    }
    if (v.n == 0) {
        st = lt_err_set(err, LT_ERR_ARG,
                        "prompt %lld encodes to no tokens (an empty prompt without "
                        "BOS)",
                        (long long)ps->n + 1);
        goto fail;
    }
    if (ps->n == ps->cap) {
        int64_t cap = ps->cap ? 2 * ps->cap : 64;
        char **t = lt_realloc(ps->text, sizeof(char *) * (size_t)cap);
        if (t) ps->text = t;
        char **d = t ? lt_realloc(ps->id, sizeof(char *) * (size_t)cap) : NULL;
        if (d) ps->id = d;
        int32_t **q = d ? lt_realloc(ps->ids, sizeof(int32_t *) * (size_t)cap) : NULL;
        if (q) ps->ids = q;
        int *l = q ? lt_realloc(ps->len, sizeof(int) * (size_t)cap) : NULL;
        if (!l) goto oom;
        ps->len = l;
        ps->cap = cap;
    }
    char *idc = NULL;
    if (id && !(idc = lt_strdup(id))) goto oom;
    if (v.n > (size_t)1 << 30) {
        lt_free(idc);
        st = lt_err_set(err, LT_ERR_ARG, "prompt %lld is too long", (long long)ps->n + 1);
        goto fail;
    }
    ps->text[ps->n] = text, ps->id[ps->n] = idc, ps->ids[ps->n] = v.ids, ps->len[ps->n] = (int)v.n;
    ps->n++;
    return LT_OK;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
fail:
    lt_ids_deinit(&v);
    lt_free(text);
    return st;
}

lt_status lt_prompts_add_text(lt_prompts *ps, const lt_prompter *p, const char *text,
                              const char *id, lt_err *err) {
    char *t = NULL;
    lt_status st;
    if (p->o.chat) {
        lt_chat_msg m[2];
        int n = 0;
        if (p->o.system) m[n++] = (lt_chat_msg){"system", p->o.system};
        m[n++] = (lt_chat_msg){"user", text};
        if ((st = chat_render((lt_prompter *)p, m, n, &t, err))) return st;
    } else if (!(t = lt_strdup(text))) {
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    return push(ps, p, t, p->o.chat, id, err);
}

// The text of a string / number / boolean field, or NULL.
static const char *str_field(const lt_record *rec, const char *key) {
    const lt_field *f = lt_record_get(rec, key);
    return f && (f->type == LT_FIELD_STR || f->type == LT_FIELD_NUM || f->type == LT_FIELD_BOOL)
               ? f->str
               : NULL;
}

// Renders rec with template t up to the start of its response placeholder.
static lt_status template_prompt(const lt_template *t, const lt_record *rec, char **out,
                                 lt_err *err) {
    const char *rf = lt_template_response(t);
    lt_field *fields = NULL;
    lt_record r2 = *rec;
    if (rf && !lt_record_get(rec, rf)) { // a placeholder answer: the prompt does not depend on it
        fields = lt_alloc(sizeof(lt_field) * ((size_t)rec->n_fields + 1));
        if (!fields) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        memcpy(fields, rec->fields, sizeof(lt_field) * (size_t)rec->n_fields);
        fields[rec->n_fields] = (lt_field){.key = rf, .type = LT_FIELD_STR, .str = "x", .len = 1};
        r2.fields = fields, r2.n_fields = rec->n_fields + 1;
    }
    char *text = NULL;
    size_t len = 0, resp = SIZE_MAX;
    lt_status st = lt_template_render(t, &r2, &text, &len, &resp, err);
    lt_free(fields);
    if (st) return st;
    if (resp != SIZE_MAX && resp <= len) text[resp] = 0;
    *out = text;
    return LT_OK;
}

static lt_status record_prompt(lt_prompter *p, const lt_record *rec, char **out, bool *chat,
                               lt_err *err) {
    const char *field = p->o.field ? p->o.field : "prompt";
    const lt_field *mf = lt_record_get(rec, "messages");
    if (!mf) mf = lt_record_get(rec, "conversations");
    *chat = false;
    if (mf && mf->type == LT_FIELD_MSGS && (p->o.chat || !str_field(rec, field)) && !p->tmpl) {
        int n = mf->n_msgs; // a final assistant message is the answer: left out
        if (n > 0 && !strcmp(mf->msgs[n - 1].role, "assistant")) n--;
        if (n <= 0)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "the messages hold no prompt before the "
                              "assistant's answer");
        *chat = true;
        return chat_render(p, (const lt_chat_msg *)mf->msgs, n, out, err);
    }
    if (p->tmpl) return template_prompt(p->tmpl, rec, out, err);
    if (str_field(rec, "instruction") && !str_field(rec, field)) {
        if (!p->alpaca) {
            lt_status st = lt_template_new("alpaca", &p->alpaca, err);
            if (st) return st;
        }
        return template_prompt(p->alpaca, rec, out, err);
    }
    const char *s = str_field(rec, field);
    if (!s && !p->o.field) s = str_field(rec, "text");
    if (!s)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "no prompt: the record has no string field \"%s\"%s, "
                          "no \"instruction\" and no \"messages\" (choose the field with "
                          "--prompt-field or give --template)",
                          field, p->o.field ? "" : " or \"text\"");
    if (!p->o.chat) {
        if (!(*out = lt_strdup(s))) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        return LT_OK;
    }
    lt_chat_msg m[2];
    int n = 0;
    if (p->o.system) m[n++] = (lt_chat_msg){"system", p->o.system};
    m[n++] = (lt_chat_msg){"user", s};
    *chat = true;
    return chat_render(p, m, n, out, err);
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

lt_status lt_prompts_load(lt_prompts *ps, const lt_prompter *pc, const char *path, lt_err *err) {
    lt_prompter *p = (lt_prompter *)pc; // compiles its chat template on first use
    lt_status st = LT_OK;
    if (ends_with(path, ".txt") || lt_data_format_guess(path) == LT_DATA_TEXT) {
        char *data = NULL;
        size_t n = 0;
        if ((st = lt_read_file(path, &data, &n, err))) return st;
        size_t b = 0;
        int64_t line = 0;
        while (b < n && !st) {
            size_t e = b;
            while (e < n && data[e] != '\n') e++;
            line++;
            size_t q = e;
            if (q > b && data[q - 1] == '\r') q--;
            if (q > b) {
                char save = data[q];
                data[q] = 0;
                if ((st = lt_prompts_add_text(ps, p, data + b, NULL, err)))
                    lt_err_wrap(err, "%s:%lld", path, (long long)line);
                data[q] = save;
            }
            b = e + 1;
        }
        lt_free(data);
        return st;
    }
    lt_records recs;
    lt_records_init(&recs);
    lt_read_opts ro;
    lt_read_opts_default(&ro);
    if ((st = lt_records_read(&recs, path, &ro, err))) goto done;
    const char *idf = p->o.id_field ? p->o.id_field : "id";
    for (int64_t i = 0; i < recs.n && !st; i++) {
        char *text = NULL;
        bool chat = false;
        char where[600];
        lt_record_where(&recs, &recs.rec[i], where, sizeof where);
        if ((st = record_prompt(p, &recs.rec[i], &text, &chat, err))) {
            lt_err_wrap(err, "%s", where);
            break;
        }
        if ((st = push(ps, p, text, chat, str_field(&recs.rec[i], idf), err)))
            lt_err_wrap(err, "%s", where);
    }
done:
    lt_records_deinit(&recs);
    return st;
}
