/*
 * template.c - prompt templates: text with {field} placeholders filled from a record, sections
 * (cut at blank lines) that disappear when their placeholders are all empty, and the offset where
 * the response placeholder starts (the loss boundary of completion-only training).
 *
 * Deliberately not here: Jinja (chat templates are tokenizer/chat_template.c), format specs
 * ("{x:>10}"), nested fields ("{a.b}" names a field called "a.b"), conditionals beyond dropping a
 * section. References: Stanford Alpaca train.py PROMPT_DICT; rasbt/LLMs-from-scratch ch07
 * format_input; Python str.format brace escapes.
 */
#include "data/data_impl.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------
// parsed form

typedef enum { PART_LIT, PART_FIELD, PART_SEP } part_kind; // SEP: a "\n\n" section break

typedef struct {
    part_kind kind;
    const char *s; // literal text or field name, inside the template's pool
    size_t len;
    bool optional; // {name?}
} part;

typedef struct {
    part *parts;
    int n;
} variant;

struct lt_template {
    char *pool;         // unescaped literals and names of both variants
    variant v[2];       // v[1] is used when alt_field renders empty (built-ins only)
    bool has_alt;
    const char *alt_field;
    char resp[64];      // response placeholder field, "" when none
};

typedef struct {
    const char *name, *main, *alt, *alt_field;
} builtin;

static const builtin builtins[] = {
    {"alpaca",
     "Below is an instruction that describes a task, paired with an input that provides further "
     "context. Write a response that appropriately completes the request.\n\n"
     "### Instruction:\n{instruction}\n\n### Input:\n{input?}\n\n### Response:\n{output}",
     "Below is an instruction that describes a task. Write a response that appropriately "
     "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}",
     "input"},
    {"alpaca-ja",
     "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。"
     "要求を適切に満たす応答を書きなさい。\n\n"
     "### 指示:\n{instruction}\n\n### 入力:\n{input?}\n\n### 応答:\n{output}",
     "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n\n"
     "### 指示:\n{instruction}\n\n### 応答:\n{output}",
     "input"},
    {"ja", "### 指示\n{instruction}\n\n### 入力\n{input?}\n\n### 応答\n{output}", NULL, NULL},
    {"rasbt",
     "Below is an instruction that describes a task. Write a response that appropriately "
     "completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input?}\n\n"
     "### Response:\n{output}",
     NULL, NULL},
};

const char *lt_template_builtins(void) { return "alpaca, alpaca-ja, ja, rasbt"; }

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static bool push_part(variant *v, int *cap, part p) {
    if (v->n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        part *np = lt_realloc(v->parts, sizeof *np * (size_t)nc);
        if (!np) return false;
        v->parts = np, *cap = nc;
    }
    v->parts[v->n++] = p;
    return true;
}

// Parses src into v; literals and names are copied (unescaped) to pool at *pool_n.
static lt_status parse_variant(const char *src, char *pool, size_t *pool_n, variant *v,
                               lt_err *err) {
    int cap = 0;
    size_t i = 0, n = strlen(src);
    size_t lit_start = *pool_n;
#define FLUSH_LIT()                                                                                \
    do {                                                                                           \
        if (*pool_n > lit_start) {                                                                 \
            if (!push_part(v, &cap, (part){PART_LIT, pool + lit_start, *pool_n - lit_start, 0}))   \
                goto oom;                                                                          \
            pool[(*pool_n)++] = 0;                                                                 \
        }                                                                                          \
        lit_start = *pool_n;                                                                       \
    } while (0)
    while (i < n) {
        char c = src[i];
        if (c == '{' && i + 1 < n && src[i + 1] == '{') {
            pool[(*pool_n)++] = '{', i += 2;
        } else if (c == '}' && i + 1 < n && src[i + 1] == '}') {
            pool[(*pool_n)++] = '}', i += 2;
        } else if (c == '\n' && i + 1 < n && src[i + 1] == '\n') {
            FLUSH_LIT();
            if (!push_part(v, &cap, (part){PART_SEP, "\n\n", 2, 0})) goto oom;
            i += 2;
        } else if (c == '{') {
            size_t j = i + 1;
            while (j < n && name_char(src[j])) j++;
            bool opt = j < n && src[j] == '?';
            size_t name_end = j;
            if (opt) j++;
            if (name_end == i + 1 || j >= n || src[j] != '}')
                return lt_err_set(err, LT_ERR_ARG, "template: '{' at byte %zu does not start a "
                                  "placeholder {name} (names are letters, digits, _ . -; write "
                                  "{{ for a literal brace)", i);
            FLUSH_LIT();
            size_t len = name_end - i - 1;
            memcpy(pool + *pool_n, src + i + 1, len);
            if (!push_part(v, &cap, (part){PART_FIELD, pool + *pool_n, len, opt})) goto oom;
            *pool_n += len;
            pool[(*pool_n)++] = 0;
            lit_start = *pool_n;
            i = j + 1;
        } else {
            pool[(*pool_n)++] = c, i++;
        }
    }
    FLUSH_LIT();
#undef FLUSH_LIT
    return LT_OK;
oom:
    return lt_err_set(err, LT_ERR_OOM, "out of memory parsing a template");
}

static bool variant_uses(const variant *v, const char *field) {
    for (int i = 0; i < v->n; i++)
        if (v->parts[i].kind == PART_FIELD && !strcmp(v->parts[i].s, field)) return true;
    return false;
}

bool lt_template_uses(const lt_template *t, const char *field) {
    return variant_uses(&t->v[0], field) || (t->has_alt && variant_uses(&t->v[1], field));
}

lt_status lt_template_set_response(lt_template *t, const char *field, lt_err *err) {
    if (!field) {
        static const char *const dflt[] = {"output", "completion", "response", "answer"};
        t->resp[0] = 0;
        for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++)
            if (variant_uses(&t->v[0], dflt[i])) {
                snprintf(t->resp, sizeof t->resp, "%s", dflt[i]);
                break;
            }
        return LT_OK;
    }
    if (strlen(field) >= sizeof t->resp || !lt_template_uses(t, field))
        return lt_err_set(err, LT_ERR_ARG, "the template has no placeholder {%s} for the "
                          "response", field);
    snprintf(t->resp, sizeof t->resp, "%s", field);
    return LT_OK;
}

const char *lt_template_response(const lt_template *t) { return t->resp[0] ? t->resp : NULL; }

void lt_template_free(lt_template *t) {
    if (!t) return;
    lt_free(t->v[0].parts);
    lt_free(t->v[1].parts);
    lt_free(t->pool);
    lt_free(t);
}

lt_status lt_template_new(const char *src, lt_template **out, lt_err *err) {
    if (!src) return lt_err_set(err, LT_ERR_ARG, "no template");
    const builtin *b = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (!strcmp(src, builtins[i].name)) b = &builtins[i];
    const char *main_src = b ? b->main : src, *alt_src = b ? b->alt : NULL;
    size_t need = strlen(main_src) + 1, tot;
    // each part adds at most one NUL; parts <= bytes
    if (!lt_mul_ok(need, 2, &tot) || (alt_src && !lt_add_ok(tot, 2 * strlen(alt_src) + 2, &tot)))
        return lt_err_set(err, LT_ERR_ARG, "template too long");
    lt_template *t = lt_calloc(1, sizeof *t);
    if (!t || !(t->pool = lt_alloc(tot))) {
        lt_free(t);
        return lt_err_set(err, LT_ERR_OOM, "out of memory parsing a template");
    }
    size_t pn = 0;
    lt_status st = parse_variant(main_src, t->pool, &pn, &t->v[0], err);
    if (!st && alt_src) {
        st = parse_variant(alt_src, t->pool, &pn, &t->v[1], err);
        t->has_alt = true;
        t->alt_field = b->alt_field;
    }
    if (!st) st = lt_template_set_response(t, NULL, err);
    if (st) {
        lt_template_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// rendering

// The text of a field for a placeholder: *s/*n, or an error. Missing optional fields and nulls
// render empty.
static lt_status field_text(const lt_record *rec, const char *name, bool optional, const char **s,
                            size_t *n, lt_err *err) {
    const lt_field *f = lt_record_get(rec, name);
    if (!f || f->type == LT_FIELD_NULL) {
        if (optional) {
            *s = "", *n = 0;
            return LT_OK;
        }
        if (!f) return lt_err_set(err, LT_ERR_FORMAT, "missing field \"%s\"", name);
        return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is null, expected a string", name);
    }
    if (f->type == LT_FIELD_MSGS || f->type == LT_FIELD_OTHER)
        return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is %s, expected a string", name,
                          f->type == LT_FIELD_MSGS ? "a list of messages" : "an array or object");
    *s = f->str, *n = f->len;
    return LT_OK;
}

static bool alt_applies(const lt_template *t, const lt_record *rec) {
    if (!t->has_alt) return false;
    const lt_field *f = lt_record_get(rec, t->alt_field);
    return !f || f->type == LT_FIELD_NULL || ((f->type == LT_FIELD_STR) && f->len == 0);
}

lt_status lt_template_render(const lt_template *t, const lt_record *rec, char **text, size_t *len,
                             size_t *resp_off, lt_err *err) {
    const variant *v = &t->v[alt_applies(t, rec) ? 1 : 0];
    lt_sbuf b = {0};
    size_t resp = SIZE_MAX;
    lt_status st = LT_OK;
    bool any_kept = false;
    if (!lt_sbuf_reserve(&b, 0)) goto oom;
    b.p[0] = 0;
    for (int i = 0; i < v->n && !st;) {
        // one section: parts up to the next SEP
        size_t mark = b.n;
        if (any_kept && !lt_sbuf_add(&b, "\n\n", 2)) goto oom;
        size_t sec_resp = SIZE_MAX;
        bool has_field = false, all_empty = true;
        for (; i < v->n && v->parts[i].kind != PART_SEP; i++) {
            const part *p = &v->parts[i];
            const char *s = p->s;
            size_t n = p->len;
            if (p->kind == PART_FIELD) {
                if ((st = field_text(rec, p->s, p->optional, &s, &n, err))) break;
                has_field = true;
                if (n) all_empty = false;
                if (t->resp[0] && !strcmp(p->s, t->resp) && sec_resp == SIZE_MAX) sec_resp = b.n;
            }
            if (!lt_sbuf_add(&b, s, n)) goto oom;
        }
        if (st) break;
        if (has_field && all_empty) { // drop the section and its separator
            b.n = mark;
            b.p[b.n] = 0;
        } else {
            any_kept = true;
            if (sec_resp != SIZE_MAX && resp == SIZE_MAX) resp = sec_resp;
        }
        if (i < v->n) i++; // past the SEP
    }
    if (st) {
        lt_sbuf_deinit(&b);
        return st;
    }
    *text = b.p, *len = b.n, *resp_off = resp;
    return LT_OK;
oom:
    lt_sbuf_deinit(&b);
    return lt_err_set(err, LT_ERR_OOM, "out of memory rendering a template");
}

lt_status lt_cls_record(const lt_template *t, const lt_record *rec, const char *label_field,
                        char **text, size_t *len, const char **label, lt_err *err) {
    const lt_field *lf = lt_record_get(rec, label_field);
    if (!lf) return lt_err_set(err, LT_ERR_FORMAT, "missing field \"%s\"", label_field);
    if (lf->type != LT_FIELD_STR && lf->type != LT_FIELD_NUM && lf->type != LT_FIELD_BOOL)
        return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is not a string, number or boolean",
                          label_field);
    if (lf->len == 0) return lt_err_set(err, LT_ERR_FORMAT, "field \"%s\" is empty", label_field);
    char *s = NULL;
    size_t n = 0, resp;
    lt_status st;
    if (t) {
        st = lt_template_render(t, rec, &s, &n, &resp, err);
    } else {
        const char *src;
        st = field_text(rec, "text", false, &src, &n, err);
        if (!st && !(s = lt_alloc(n + 1))) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        if (!st) memcpy(s, src, n), s[n] = 0;
    }
    if (st) return st;
    if (n == 0) {
        lt_free(s);
        return lt_err_set(err, LT_ERR_FORMAT, "the text is empty");
    }
    *text = s, *len = n, *label = lf->str;
    return LT_OK;
}
