/*
 * chat_template.c - compiles a Hugging Face chat template (Jinja2) into a tree that
 * chat_render.c evaluates. The lexer and the parser follow jinja2 3.1 (lexer.py, parser.py)
 * rule for rule, with the options transformers uses: trim_blocks=True, lstrip_blocks=True,
 * keep_trailing_newline=False, the loopcontrols extension and transformers' {% generation %} tag.
 *
 * Supported: {{ }}, {% %}, {# #}; whitespace control `-` and `+` on both sides; statements
 * if/elif/else, for (tuple targets, an `if` filter, else, loop.*), set (names, tuples,
 * namespace attributes, block set with filters), macro (positional and keyword arguments with
 * defaults), break, continue, with, filter blocks, generation; expressions: literals (strings
 * with Python escapes, ints incl. 0x/0o/0b, floats, true/false/none in both spellings, lists,
 * tuples, dicts), names, .attr, [index], slices, calls with keyword arguments, filters, tests,
 * unary + - not, ** * / // % + - ~, comparisons (chained), in / not in, and / or, x if c else y.
 * Deliberately not here (LT_ERR_UNSUPPORTED naming the construct): include, import, from,
 * extends, block, call, raw, autoescape, recursive loops, *args / **kwargs in calls, multiple
 * subscripts (x[a, b]), filters and tests outside the tables below.
 * Reference: https://github.com/pallets/jinja/blob/3.1.6/src/jinja2/{lexer,parser}.py
 */
#include "tokenizer/chat_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// filter and test tables (the parser rejects any other name, as jinja2 rejects unknown ones)

// Not here on purpose: safe, escape/e (they make Markup strings, which change what `+` does
// later), and the filters no chat template uses (batch, center, dictsort, groupby, ...).
const char *const ct_filter_names[F__COUNT] = {
    "abs",        "capitalize", "count",  "default",    "d",       "first",   "float",
    "indent",     "int",        "items",  "join",       "last",    "length",  "list",
    "lower",      "map",        "reject", "rejectattr", "replace", "reverse", "select",
    "selectattr", "string",     "title",  "tojson",     "trim",    "upper",
};

const char *const ct_test_names[T__COUNT] = {
    "boolean",     "callable", "defined",  "divisibleby", "eq",        "equalto",
    "==",          "even",     "false",    "float",       "ge",        ">=",
    "greaterthan", "gt",       ">",        "in",          "integer",   "iterable",
    "le",          "<=",       "lessthan", "lower",       "lt",        "<",
    "mapping",     "ne",       "!=",       "none",        "number",    "odd",
    "sameas",      "sequence", "string",   "true",        "undefined", "upper",
};

int ct_lookup_filter(const char *name) {
    for (int i = 0; i < F__COUNT; i++)
        if (!strcmp(ct_filter_names[i], name)) return i;
    return -1;
}

int ct_lookup_test(const char *name) {
    for (int i = 0; i < T__COUNT; i++)
        if (!strcmp(ct_test_names[i], name)) return i;
    return -1;
}

void ct_line_col(const lt_chat_template *t, uint32_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < t->len; i++) {
        unsigned char ch = (unsigned char)t->src[i];
        if (ch == '\n')
            l++, c = 1;
        else if ((ch & 0xc0) != 0x80)
            c++;
    }
    *line = l;
    *col = c;
}

// ---------------------------------------------------------------------------------------------
// tokens

typedef enum {
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
    TK_EOF
} tk_type;

enum {
    TO_ADD = 1,
    TO_SUB,
    TO_DIV,
    TO_FLOORDIV,
    TO_MUL,
    TO_MOD,
    TO_POW,
    TO_TILDE,
    TO_LBRACKET,
    TO_RBRACKET,
    TO_LPAREN,
    TO_RPAREN,
    TO_LBRACE,
    TO_RBRACE,
    TO_EQ,
    TO_NE,
    TO_GT,
    TO_GE,
    TO_LT,
    TO_LE,
    TO_ASSIGN,
    TO_DOT,
    TO_COLON,
    TO_PIPE,
    TO_COMMA,
    TO_SEMI
};

static const struct {
    const char *s;
    int op;
} op_table[] = {
    // longest first, as jinja2's operator regex
    {"//", TO_FLOORDIV}, {"**", TO_POW},   {"==", TO_EQ},      {"!=", TO_NE},      {">=", TO_GE},
    {"<=", TO_LE},       {"+", TO_ADD},    {"-", TO_SUB},      {"/", TO_DIV},      {"*", TO_MUL},
    {"%", TO_MOD},       {"~", TO_TILDE},  {"[", TO_LBRACKET}, {"]", TO_RBRACKET}, {"(", TO_LPAREN},
    {")", TO_RPAREN},    {"{", TO_LBRACE}, {"}", TO_RBRACE},   {">", TO_GT},       {"<", TO_LT},
    {"=", TO_ASSIGN},    {".", TO_DOT},    {":", TO_COLON},    {"|", TO_PIPE},     {",", TO_COMMA},
    {";", TO_SEMI},
};

typedef struct token {
    uint8_t type, op;
    uint32_t pos;
    const char *s; // TK_DATA / TK_NAME: into the source; TK_STRING: decoded, in the arena
    size_t n;
    int64_t i;
    double f;
} token;

typedef struct parser {
    lt_chat_template *t;
    ct_arena *a;
    const char *src;
    size_t len;
    token *tk;
    size_t ntk, cap, cur;
    lt_err *err;
    int depth, loops;
    const char *const *open_ends; // the end tags the innermost open block waits for
} parser;

static lt_status perr(parser *p, uint32_t pos, lt_status code, const char *fmt, ...)
    LT_PRINTF(4, 5);
static lt_status perr(parser *p, uint32_t pos, lt_status code, const char *fmt, ...) {
    if (!p->err) return code;
    char msg[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    ct_line_col(p->t, pos, &line, &col);
    return lt_err_set(p->err, code, "chat template %d:%d: %s", line, col, msg);
}

static lt_status oom(parser *p) {
    return lt_err_set(p->err, LT_ERR_OOM, "chat template: out of memory while parsing");
}

static lt_status push_tok(parser *p, tk_type type, uint32_t pos, const char *s, size_t n) {
    if (p->ntk == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        token *nt = lt_realloc(p->tk, cap * sizeof *nt);
        if (!nt) return oom(p);
        p->tk = nt;
        p->cap = cap;
    }
    token *t = &p->tk[p->ntk++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->pos = pos;
    t->s = s;
    t->n = n;
    return LT_OK;
}

// Python str.rstrip() / re \s*: Unicode whitespace.
static size_t rstrip_ws(const char *s, size_t lo, size_t hi) {
    while (hi > lo) {
        size_t k = hi - 1;
        while (k > lo && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
        uint32_t cp;
        ct_utf8_dec(s + k, hi - k, &cp);
        if (!ct_py_isspace(cp)) break;
        hi = k;
    }
    return hi;
}

static size_t lstrip_ws(const char *s, size_t lo, size_t hi) {
    while (lo < hi) {
        uint32_t cp;
        size_t k = ct_utf8_dec(s + lo, hi - lo, &cp);
        if (!ct_py_isspace(cp)) break;
        lo += k;
    }
    return lo;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes a string literal's body the way jinja2 does: value.encode("ascii", "backslashreplace")
// .decode("unicode-escape"), i.e. Python escapes; an unknown escape keeps its backslash.
static lt_status decode_string(parser *p, uint32_t pos, const char *s, size_t n, token *out) {
    // escapes never lengthen the text, except "\\" + a non-ASCII character (at most 11 bytes
    // out for 5 in)
    if (n > (SIZE_MAX - 1) / 3) return oom(p);
    char *o = ct_alloc(p->a, 3 * n + 1);
    if (!o) return oom(p);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) {
            o[k++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        uint32_t cp = 0;
        int want = 0;
        i += 2;
        switch (e) {
        case '\n':
            continue; // line continuation
        case '\\':
            o[k++] = '\\';
            continue;
        case '\'':
            o[k++] = '\'';
            continue;
        case '"':
            o[k++] = '"';
            continue;
        case 'a':
            o[k++] = '\a';
            continue;
        case 'b':
            o[k++] = '\b';
            continue;
        case 'f':
            o[k++] = '\f';
            continue;
        case 'n':
            o[k++] = '\n';
            continue;
        case 'r':
            o[k++] = '\r';
            continue;
        case 't':
            o[k++] = '\t';
            continue;
        case 'v':
            o[k++] = '\v';
            continue;
        case 'x':
            want = 2;
            break;
        case 'u':
            want = 4;
            break;
        case 'U':
            want = 8;
            break;
        case 'N':
            return perr(p, pos, LT_ERR_UNSUPPORTED,
                        "\\N{...} escapes in strings are not supported");
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && i < n && s[i] >= '0' && s[i] <= '7'; d++, i++)
                    cp = cp * 8 + (uint32_t)(s[i] - '0');
                k += ct_utf8_enc(cp, o + k);
                continue;
            }
            if ((unsigned char)e >= 0x80) {
                // the backslash stays; the character went through backslashreplace first, so
                // its \xNN / \uNNNN / \UNNNNNNNN spelling follows as plain text
                uint32_t c;
                size_t used = ct_utf8_dec(s + i - 1, n - (i - 1), &c);
                i += used - 1;
                char tmp[16];
                int m = c < 0x100     ? snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)c)
                        : c < 0x10000 ? snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)c)
                                      : snprintf(tmp, sizeof tmp, "\\U%08x", (unsigned)c);
                memcpy(o + k, tmp, (size_t)m);
                k += (size_t)m;
                continue;
            }
            o[k++] = '\\';
            o[k++] = e;
            continue;
        }
        for (int d = 0; d < want; d++, i++) {
            int h = i < n ? hexval(s[i]) : -1;
            if (h < 0)
                return perr(p, pos, LT_ERR_FORMAT, "truncated \\%c escape in a string literal", e);
            cp = cp * 16 + (uint32_t)h;
        }
        if (cp > 0x10ffff)
            return perr(p, pos, LT_ERR_FORMAT, "illegal Unicode character in a string literal");
        if (cp >= 0xd800 && cp <= 0xdfff)
            return perr(p, pos, LT_ERR_UNSUPPORTED, "surrogate escape \\u%04x in a string literal",
                        (unsigned)cp);
        k += ct_utf8_enc(cp, o + k);
    }
    o[k] = 0;
    out->s = o;
    out->n = k;
    return LT_OK;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
static bool is_name0(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static bool is_name1(unsigned char c) {
    return is_name0(c) || is_digit((char)c);
}

// digits with single underscores between them: (\d+_)*\d+ ; returns the end or `at` if none
static size_t scan_digits(const char *s, size_t at, size_t n) {
    size_t i = at;
    if (i >= n || !is_digit(s[i])) return at;
    while (i < n && is_digit(s[i])) {
        i++;
        if (i + 1 < n && s[i] == '_' && is_digit(s[i + 1])) i++;
    }
    return i;
}

static lt_status lex_number(parser *p, size_t *pos_io) {
    const char *s = p->src;
    size_t n = p->len, at = *pos_io;
    // float: (?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+)
    if (!(at > 0 && s[at - 1] == '.')) {
        size_t i = scan_digits(s, at, n), end = 0;
        size_t j = i;
        bool frac = false;
        if (j < n && s[j] == '.') {
            size_t k = scan_digits(s, j + 1, n);
            if (k > j + 1) j = k, frac = true;
        }
        if (j < n && (s[j] == 'e' || s[j] == 'E')) {
            size_t k = j + 1;
            if (k < n && (s[k] == '+' || s[k] == '-')) k++;
            size_t m = scan_digits(s, k, n);
            if (m > k) end = m;
        }
        if (!end && frac) end = j;
        if (end) {
            char buf[128];
            size_t m = 0;
            for (size_t q = at; q < end && m + 1 < sizeof buf; q++)
                if (s[q] != '_') buf[m++] = s[q];
            buf[m] = 0;
            lt_status st = push_tok(p, TK_FLOAT, (uint32_t)at, s + at, end - at);
            if (st) return st;
            p->tk[p->ntk - 1].f = strtod(buf, NULL);
            *pos_io = end;
            return LT_OK;
        }
    }
    // integer: 0b.., 0o.., 0x.., [1-9](_?\d)*, 0(_?0)*
    int base = 10;
    size_t i = at, dstart = at;
    if (s[at] == '0' && at + 1 < n && strchr("bBoOxX", s[at + 1]) && s[at + 1]) {
        char b = (char)(s[at + 1] | 0x20);
        base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
        i = dstart = at + 2;
        for (;;) {
            size_t q = i;
            if (q < n && s[q] == '_') q++;
            int h = q < n ? hexval(s[q]) : -1;
            if (h < 0 || h >= base) break;
            i = q + 1;
        }
        if (i == dstart) { // "0x" alone: the integer is "0"
            base = 10;
            i = at + 1;
            dstart = at;
        }
    } else if (s[at] == '0') {
        i = at + 1;
        while (i < n && (s[i] == '0' || (s[i] == '_' && i + 1 < n && s[i + 1] == '0')))
            i += s[i] == '_' ? 2 : 1;
    } else {
        i = scan_digits(s, at, n);
    }
    uint64_t v = 0;
    for (size_t q = dstart; q < i; q++) {
        if (s[q] == '_') continue;
        uint64_t d = (uint64_t)hexval(s[q]);
        if (v > (UINT64_MAX - d) / (uint64_t)base || v * (uint64_t)base + d > (uint64_t)INT64_MAX)
            return perr(p, (uint32_t)at, LT_ERR_UNSUPPORTED, "integer literal larger than 64 bits");
        v = v * (uint64_t)base + d;
    }
    lt_status st = push_tok(p, TK_INT, (uint32_t)at, s + at, i - at);
    if (st) return st;
    p->tk[p->ntk - 1].i = (int64_t)v;
    *pos_io = i;
    return LT_OK;
}

// Splits the template into data and tag tokens, applying jinja2's whitespace rules
// (lexer.py tokeniter: OptionalLStrip, block_suffix_re, lstrip_unless_re).
static lt_status lex(parser *p) {
    const char *s = p->src;
    size_t n = p->len, pos = 0;
    bool line_start = true; // the previous match ended with "\n" (or nothing came before)
    lt_status st;
    while (pos < n) {
        size_t q = pos;
        char kind = 0;
        for (; q + 1 < n; q++)
            if (s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')) {
                kind = s[q + 1];
                break;
            }
        if (!kind) {
            if ((st = push_tok(p, TK_DATA, (uint32_t)pos, s + pos, n - pos))) return st;
            break;
        }
        size_t after = q + 2;
        char sign = 0;
        if (after < n && (s[after] == '-' || s[after] == '+')) sign = s[after++];
        size_t tend = q;
        if (sign == '-') {
            tend = rstrip_ws(s, pos, q);
        } else if (sign != '+' && kind != '{') {
            size_t l = q;
            while (l > pos && s[l - 1] != '\n') l--;
            // jinja2 3.1: whitespace_re.fullmatch(text, l_pos), i.e. Unicode \s (not only
            // spaces and tabs as in jinja2 2.x)
            if ((l > pos || line_start) && lstrip_ws(s, l, q) == q) tend = l;
        }
        if (tend > pos && (st = push_tok(p, TK_DATA, (uint32_t)pos, s + pos, tend - pos)))
            return st;
        if (kind == '#') {
            if (after == n) break; // jinja2's lexer stops silently on "{#" at the very end
            size_t h = after;
            while (h + 1 < n && !(s[h] == '#' && s[h + 1] == '}')) h++;
            if (h + 1 >= n)
                return perr(p, (uint32_t)q, LT_ERR_FORMAT, "missing end of comment tag");
            char esign = (h > after && (s[h - 1] == '-' || s[h - 1] == '+')) ? s[h - 1] : 0;
            pos = h + 2;
            if (esign == '-')
                pos = lstrip_ws(s, pos, n);
            else if (esign != '+' && pos < n && s[pos] == '\n')
                pos++;
            line_start = s[pos - 1] == '\n';
            continue;
        }
        bool block = kind == '%';
        if ((st = push_tok(p, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, (uint32_t)q, s + q, 2)))
            return st;
        pos = after;
        char stack[CT_MAX_NEST];
        int depth = 0;
        for (;;) {
            if (pos >= n)
                return perr(p, (uint32_t)q, LT_ERR_FORMAT, "unexpected end of template: %s",
                            block ? "missing '%}'" : "missing '}}'");
            if (depth == 0) {
                size_t end = 0;
                if (block) {
                    if (pos + 2 < n && s[pos] == '+' && s[pos + 1] == '%' && s[pos + 2] == '}')
                        end = pos + 3;
                    else if (pos + 2 < n && s[pos] == '-' && s[pos + 1] == '%' && s[pos + 2] == '}')
                        end = lstrip_ws(s, pos + 3, n);
                    else if (pos + 1 < n && s[pos] == '%' && s[pos + 1] == '}') {
                        end = pos + 2;
                        if (end < n && s[end] == '\n') end++;
                    }
                } else {
                    if (pos + 2 < n && s[pos] == '-' && s[pos + 1] == '}' && s[pos + 2] == '}')
                        end = lstrip_ws(s, pos + 3, n);
                    else if (pos + 1 < n && s[pos] == '}' && s[pos + 1] == '}')
                        end = pos + 2;
                }
                if (end) {
                    if ((st = push_tok(p, block ? TK_BLOCK_END : TK_VAR_END, (uint32_t)pos, s + pos,
                                       end - pos)))
                        return st;
                    pos = end;
                    line_start = s[pos - 1] == '\n';
                    break;
                }
            }
            unsigned char c = (unsigned char)s[pos];
            uint32_t cp;
            size_t cl = ct_utf8_dec(s + pos, n - pos, &cp);
            if (ct_py_isspace(cp)) {
                pos += cl;
            } else if (is_digit((char)c)) {
                if ((st = lex_number(p, &pos))) return st;
            } else if (is_name0(c)) {
                size_t e = pos;
                while (e < n && is_name1((unsigned char)s[e])) {
                    uint32_t cp2;
                    size_t l2 = ct_utf8_dec(s + e, n - e, &cp2);
                    if (ct_py_isspace(cp2)) break;
                    e += l2;
                }
                if ((st = push_tok(p, TK_NAME, (uint32_t)pos, s + pos, e - pos))) return st;
                pos = e;
            } else if (c == '\'' || c == '"') {
                size_t e = pos + 1;
                while (e < n && s[e] != (char)c) e += (s[e] == '\\' && e + 1 < n) ? 2 : 1;
                if (e >= n)
                    return perr(p, (uint32_t)pos, LT_ERR_FORMAT, "unterminated string literal");
                if ((st = push_tok(p, TK_STRING, (uint32_t)pos, NULL, 0))) return st;
                if ((st = decode_string(p, (uint32_t)pos, s + pos + 1, e - pos - 1,
                                        &p->tk[p->ntk - 1])))
                    return st;
                pos = e + 1;
            } else {
                int op = 0;
                size_t ol = 0;
                for (size_t k = 0; k < sizeof op_table / sizeof *op_table; k++) {
                    size_t l = strlen(op_table[k].s);
                    if (pos + l <= n && !memcmp(s + pos, op_table[k].s, l)) {
                        op = op_table[k].op;
                        ol = l;
                        break;
                    }
                }
                if (!op)
                    return perr(p, (uint32_t)pos, LT_ERR_FORMAT, "unexpected character '%.*s'",
                                (int)cl, s + pos);
                if (op == TO_LPAREN || op == TO_LBRACKET || op == TO_LBRACE) {
                    if (depth >= CT_MAX_NEST)
                        return perr(p, (uint32_t)pos, LT_ERR_UNSUPPORTED,
                                    "brackets nested deeper than %d", CT_MAX_NEST);
                    stack[depth++] = op == TO_LPAREN ? ')' : op == TO_LBRACKET ? ']' : '}';
                } else if (op == TO_RPAREN || op == TO_RBRACKET || op == TO_RBRACE) {
                    if (!depth) return perr(p, (uint32_t)pos, LT_ERR_FORMAT, "unexpected '%c'", c);
                    if (stack[--depth] != (char)c)
                        return perr(p, (uint32_t)pos, LT_ERR_FORMAT,
                                    "unexpected '%c', expected '%c'", c, stack[depth]);
                }
                if ((st = push_tok(p, TK_OP, (uint32_t)pos, s + pos, ol))) return st;
                p->tk[p->ntk - 1].op = (uint8_t)op;
                pos += ol;
            }
        }
    }
    return push_tok(p, TK_EOF, (uint32_t)n, s + n, 0);
}

// ---------------------------------------------------------------------------------------------
// parser helpers

static token *cur(parser *p) {
    return &p->tk[p->cur];
}
static token *peek(parser *p) {
    return &p->tk[p->cur + 1 < p->ntk ? p->cur + 1 : p->ntk - 1];
}
static void adv(parser *p) {
    if (p->cur + 1 < p->ntk) p->cur++;
}
static bool is_op(const token *t, int op) {
    return t->type == TK_OP && t->op == op;
}
static bool is_name(const token *t, const char *nm) {
    return t->type == TK_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}

static const char *describe(const token *t, char *buf, size_t cap) {
    switch (t->type) {
    case TK_DATA:
        return "template data";
    case TK_VAR_BEGIN:
        return "'{{'";
    case TK_VAR_END:
        return "end of print statement";
    case TK_BLOCK_BEGIN:
        return "'{%'";
    case TK_BLOCK_END:
        return "end of statement block";
    case TK_STRING:
        return "string";
    case TK_INT:
        return "integer";
    case TK_FLOAT:
        return "float";
    case TK_EOF:
        return "end of template";
    default:
        snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
        return buf;
    }
}

static lt_status unexpected(parser *p, const char *want) {
    char b[64];
    token *t = cur(p);
    if (t->type == TK_EOF)
        return perr(p, t->pos, LT_ERR_FORMAT, "unexpected end of template, expected %s", want);
    return perr(p, t->pos, LT_ERR_FORMAT, "expected %s, got %s", want, describe(t, b, sizeof b));
}

static lt_status expect_op(parser *p, int op, const char *what) {
    if (!is_op(cur(p), op)) return unexpected(p, what);
    adv(p);
    return LT_OK;
}

static ct_node *mk(parser *p, ct_kind kind, uint32_t pos) {
    ct_node *nd = ct_alloc(p->a, sizeof *nd);
    if (!nd) {
        oom(p);
        return NULL;
    }
    memset(nd, 0, sizeof *nd);
    nd->kind = (uint8_t)kind;
    nd->pos = pos;
    return nd;
}

static char *name_dup(parser *p, const token *t) {
    char *s = ct_strndup(p->a, t->s, t->n);
    if (!s) oom(p);
    return s;
}

// growable arrays of pointers in the arena
typedef struct pvec {
    void **v;
    int n, cap;
} pvec;

static bool pv_push(parser *p, pvec *x, void *e) {
    if (x->n == x->cap) {
        int cap = x->cap ? x->cap * 2 : 4;
        void **nv = ct_alloc(p->a, (size_t)cap * sizeof *nv);
        if (!nv) {
            oom(p);
            return false;
        }
        if (x->n) memcpy(nv, x->v, (size_t)x->n * sizeof *nv);
        x->v = nv;
        x->cap = cap;
    }
    x->v[x->n++] = e;
    return true;
}

#define ENTER(p, pos, fail)                                                                        \
    do {                                                                                           \
        if (++(p)->depth > CT_MAX_NEST) {                                                          \
            perr(p, pos, LT_ERR_UNSUPPORTED, "template nested deeper than %d levels",              \
                 CT_MAX_NEST);                                                                     \
            fail;                                                                                  \
        }                                                                                          \
    } while (0)

// ---------------------------------------------------------------------------------------------
// expressions (jinja2 parser.py, same function names)

static ct_node *parse_expression(parser *p, bool with_condexpr);
static ct_node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                            bool explicit_parens);
static ct_node *parse_unary(parser *p, bool with_filter);
static ct_node *parse_primary(parser *p);
static ct_node *parse_postfix(parser *p, ct_node *node);
static ct_node *parse_filter(parser *p, ct_node *node, bool start_inline);

// (args, kwargs) of a call, a filter or a test; current token is '('
static lt_status parse_call_args(parser *p, ct_node *nd) {
    pvec args = {0}, kwn = {0}, kwv = {0};
    uint32_t pos = cur(p)->pos;
    adv(p);
    bool need_comma = false;
    while (!is_op(cur(p), TO_RPAREN)) {
        if (need_comma) {
            lt_status st = expect_op(p, TO_COMMA, "','");
            if (st) return st;
            if (is_op(cur(p), TO_RPAREN)) break;
        }
        if (is_op(cur(p), TO_MUL) || is_op(cur(p), TO_POW))
            return perr(p, cur(p)->pos, LT_ERR_UNSUPPORTED, "*args and **kwargs in calls");
        if (cur(p)->type == TK_NAME && is_op(peek(p), TO_ASSIGN)) {
            char *k = name_dup(p, cur(p));
            if (!k) return LT_ERR_OOM;
            adv(p);
            adv(p);
            ct_node *v = parse_expression(p, true);
            if (!v) return p->err ? p->err->code : LT_ERR_FORMAT;
            if (!pv_push(p, &kwn, k) || !pv_push(p, &kwv, v)) return LT_ERR_OOM;
        } else {
            if (kwn.n)
                return perr(p, pos, LT_ERR_FORMAT, "invalid syntax for function call expression");
            ct_node *v = parse_expression(p, true);
            if (!v) return p->err ? p->err->code : LT_ERR_FORMAT;
            if (!pv_push(p, &args, v)) return LT_ERR_OOM;
        }
        need_comma = true;
    }
    adv(p);
    nd->items = (ct_node **)args.v;
    nd->n = args.n;
    nd->names = (const char **)kwn.v;
    nd->items2 = (ct_node **)kwv.v;
    nd->n2 = kwv.n;
    return LT_OK;
}

#define FAILED(p) ((p)->err ? (p)->err->code : LT_ERR_FORMAT)

static ct_node *parse_test(parser *p, ct_node *node) {
    uint32_t pos = cur(p)->pos;
    adv(p); // 'is'
    bool negated = false;
    if (is_name(cur(p), "not")) adv(p), negated = true;
    if (cur(p)->type != TK_NAME) {
        unexpected(p, "a test name");
        return NULL;
    }
    ct_node *nd = mk(p, N_TEST, pos);
    if (!nd) return NULL;
    nd->a = node;
    nd->s = name_dup(p, cur(p));
    if (!nd->s) return NULL;
    uint32_t npos = cur(p)->pos;
    adv(p);
    if (is_op(cur(p), TO_DOT)) {
        perr(p, npos, LT_ERR_UNSUPPORTED, "dotted test name '%s.'", nd->s);
        return NULL;
    }
    int id = ct_lookup_test(nd->s);
    if (id < 0) {
        perr(p, npos, LT_ERR_UNSUPPORTED, "unsupported test '%s'", nd->s);
        return NULL;
    }
    nd->id = (uint16_t)id;
    token *t = cur(p);
    if (is_op(t, TO_LPAREN)) {
        if (parse_call_args(p, nd)) return NULL;
    } else if ((t->type == TK_NAME || t->type == TK_STRING || t->type == TK_INT ||
                t->type == TK_FLOAT || is_op(t, TO_LPAREN) || is_op(t, TO_LBRACKET) ||
                is_op(t, TO_LBRACE)) &&
               !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
        if (is_name(t, "is")) {
            perr(p, t->pos, LT_ERR_FORMAT, "you cannot chain multiple tests with is");
            return NULL;
        }
        ct_node *arg = parse_primary(p);
        if (!arg || !(arg = parse_postfix(p, arg))) return NULL;
        nd->items = ct_alloc(p->a, sizeof *nd->items);
        if (!nd->items) {
            oom(p);
            return NULL;
        }
        nd->items[0] = arg;
        nd->n = 1;
    }
    if (negated) {
        ct_node *no = mk(p, N_NOT, pos);
        if (!no) return NULL;
        no->a = nd;
        return no;
    }
    return nd;
}

static ct_node *parse_filter(parser *p, ct_node *node, bool start_inline) {
    while (is_op(cur(p), TO_PIPE) || start_inline) {
        if (!start_inline) adv(p);
        start_inline = false;
        if (cur(p)->type != TK_NAME) {
            unexpected(p, "a filter name");
            return NULL;
        }
        ct_node *nd = mk(p, N_FILTER, cur(p)->pos);
        if (!nd || !(nd->s = name_dup(p, cur(p)))) return NULL;
        adv(p);
        if (is_op(cur(p), TO_DOT)) {
            perr(p, nd->pos, LT_ERR_UNSUPPORTED, "dotted filter name '%s.'", nd->s);
            return NULL;
        }
        int id = ct_lookup_filter(nd->s);
        if (id < 0) {
            perr(p, nd->pos, LT_ERR_UNSUPPORTED, "unsupported filter '%s'", nd->s);
            return NULL;
        }
        nd->id = (uint16_t)id;
        nd->a = node;
        if (is_op(cur(p), TO_LPAREN) && parse_call_args(p, nd)) return NULL;
        node = nd;
    }
    return node;
}

static ct_node *parse_call(parser *p, ct_node *node) {
    ct_node *nd = mk(p, N_CALL, node->kind == N_NAME ? node->pos : cur(p)->pos);
    if (!nd) return NULL;
    nd->a = node;
    if (parse_call_args(p, nd)) return NULL;
    return nd;
}

static ct_node *parse_filter_expr(parser *p, ct_node *node) {
    for (;;) {
        if (!node) return NULL;
        token *t = cur(p);
        if (is_op(t, TO_PIPE))
            node = parse_filter(p, node, false);
        else if (is_name(t, "is"))
            node = parse_test(p, node);
        else if (is_op(t, TO_LPAREN))
            node = parse_call(p, node);
        else
            return node;
    }
}

// one subscript: an expression or a slice [a]:[b][:[c]]
static ct_node *parse_subscribed(parser *p) {
    uint32_t pos = cur(p)->pos;
    ct_node *args[3] = {NULL, NULL, NULL};
    if (is_op(cur(p), TO_COLON)) {
        adv(p);
    } else {
        ct_node *e = parse_expression(p, true);
        if (!e) return NULL;
        if (!is_op(cur(p), TO_COLON)) return e;
        adv(p);
        args[0] = e;
    }
    if (!is_op(cur(p), TO_COLON) && !is_op(cur(p), TO_RBRACKET) && !is_op(cur(p), TO_COMMA))
        if (!(args[1] = parse_expression(p, true))) return NULL;
    if (is_op(cur(p), TO_COLON)) {
        adv(p);
        if (!is_op(cur(p), TO_RBRACKET) && !is_op(cur(p), TO_COMMA))
            if (!(args[2] = parse_expression(p, true))) return NULL;
    }
    ct_node *nd = mk(p, N_SLICE, pos);
    if (!nd || !(nd->items = ct_alloc(p->a, 3 * sizeof *nd->items))) {
        if (nd) oom(p);
        return NULL;
    }
    memcpy(nd->items, args, sizeof args);
    nd->n = 3;
    return nd;
}

static ct_node *parse_subscript(parser *p, ct_node *node) {
    token *t = cur(p);
    uint32_t pos = t->pos;
    adv(p);
    if (t->op == TO_DOT) {
        token *at = cur(p);
        if (at->type == TK_NAME) {
            ct_node *nd = mk(p, N_GETATTR, pos);
            if (!nd || !(nd->s = name_dup(p, at))) return NULL;
            nd->a = node;
            adv(p);
            return nd;
        }
        if (at->type != TK_INT) {
            unexpected(p, "name or number");
            return NULL;
        }
        ct_node *k = mk(p, N_INT, at->pos), *nd = mk(p, N_GETITEM, pos);
        if (!k || !nd) return NULL;
        k->i = at->i;
        nd->a = node;
        nd->b = k;
        adv(p);
        return nd;
    }
    ct_node *arg = NULL;
    int n = 0;
    while (!is_op(cur(p), TO_RBRACKET)) {
        if (n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (n == 1) {
            perr(p, pos, LT_ERR_UNSUPPORTED, "multiple subscripts (x[a, b])");
            return NULL;
        }
        if (!(arg = parse_subscribed(p))) return NULL;
        n++;
    }
    if (!n) {
        unexpected(p, "a subscript");
        return NULL;
    }
    adv(p);
    ct_node *nd = mk(p, N_GETITEM, pos);
    if (!nd) return NULL;
    nd->a = node;
    nd->b = arg;
    return nd;
}

static ct_node *parse_postfix(parser *p, ct_node *node) {
    for (;;) {
        if (!node) return NULL;
        token *t = cur(p);
        if (is_op(t, TO_DOT) || is_op(t, TO_LBRACKET))
            node = parse_subscript(p, node);
        else if (is_op(t, TO_LPAREN))
            node = parse_call(p, node);
        else
            return node;
    }
}

static ct_node *parse_list(parser *p) {
    ct_node *nd = mk(p, N_LIST, cur(p)->pos);
    if (!nd) return NULL;
    adv(p);
    pvec items = {0};
    while (!is_op(cur(p), TO_RBRACKET)) {
        if (items.n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (is_op(cur(p), TO_RBRACKET)) break;
        ct_node *e = parse_expression(p, true);
        if (!e || !pv_push(p, &items, e)) return NULL;
    }
    adv(p);
    nd->items = (ct_node **)items.v;
    nd->n = items.n;
    return nd;
}

static ct_node *parse_dict(parser *p) {
    ct_node *nd = mk(p, N_DICT, cur(p)->pos);
    if (!nd) return NULL;
    adv(p);
    pvec keys = {0}, vals = {0};
    while (!is_op(cur(p), TO_RBRACE)) {
        if (keys.n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (is_op(cur(p), TO_RBRACE)) break;
        ct_node *k = parse_expression(p, true);
        if (!k || expect_op(p, TO_COLON, "':'")) return NULL;
        ct_node *v = parse_expression(p, true);
        if (!v || !pv_push(p, &keys, k) || !pv_push(p, &vals, v)) return NULL;
    }
    adv(p);
    nd->items = (ct_node **)keys.v;
    nd->items2 = (ct_node **)vals.v;
    nd->n = nd->n2 = keys.n;
    return nd;
}

static ct_node *parse_primary(parser *p) {
    token *t = cur(p);
    ct_node *nd = NULL;
    switch (t->type) {
    case TK_NAME:
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") ||
            is_name(t, "False")) {
            if (!(nd = mk(p, N_BOOL, t->pos))) return NULL;
            nd->i = t->s[0] == 't' || t->s[0] == 'T';
        } else if (is_name(t, "none") || is_name(t, "None")) {
            if (!(nd = mk(p, N_NONE, t->pos))) return NULL;
        } else {
            if (!(nd = mk(p, N_NAME, t->pos)) || !(nd->s = name_dup(p, t))) return NULL;
        }
        adv(p);
        return nd;
    case TK_STRING: {
        if (!(nd = mk(p, N_STR, t->pos))) return NULL;
        nd->s = t->s;
        nd->slen = t->n;
        adv(p);
        if (cur(p)->type == TK_STRING) { // adjacent literals concatenate
            size_t total = nd->slen;
            for (size_t k = p->cur; p->tk[k].type == TK_STRING; k++) total += p->tk[k].n;
            char *s = ct_alloc(p->a, total + 1);
            if (!s) {
                oom(p);
                return NULL;
            }
            memcpy(s, nd->s, nd->slen);
            size_t o = nd->slen;
            for (; cur(p)->type == TK_STRING; adv(p)) {
                memcpy(s + o, cur(p)->s, cur(p)->n);
                o += cur(p)->n;
            }
            s[o] = 0;
            nd->s = s;
            nd->slen = o;
        }
        return nd;
    }
    case TK_INT:
        if (!(nd = mk(p, N_INT, t->pos))) return NULL;
        nd->i = t->i;
        adv(p);
        return nd;
    case TK_FLOAT:
        if (!(nd = mk(p, N_FLOAT, t->pos))) return NULL;
        nd->f = t->f;
        adv(p);
        return nd;
    case TK_OP:
        if (t->op == TO_LPAREN) {
            adv(p);
            nd = parse_tuple(p, false, true, NULL, true);
            if (!nd || expect_op(p, TO_RPAREN, "')'")) return NULL;
            return nd;
        }
        if (t->op == TO_LBRACKET) return parse_list(p);
        if (t->op == TO_LBRACE) return parse_dict(p);
        break;
    default:
        break;
    }
    char b[64];
    if (t->type == TK_EOF)
        perr(p, t->pos, LT_ERR_FORMAT, "unexpected end of template");
    else
        perr(p, t->pos, LT_ERR_FORMAT, "unexpected %s", describe(t, b, sizeof b));
    return NULL;
}

static ct_node *parse_unary(parser *p, bool with_filter) {
    token *t = cur(p);
    uint32_t pos = t->pos;
    ENTER(p, pos, return NULL);
    ct_node *node;
    if (is_op(t, TO_SUB) || is_op(t, TO_ADD)) {
        adv(p);
        ct_node *in = parse_unary(p, false);
        node = in ? mk(p, is_op(t, TO_SUB) ? N_NEG : N_POS, pos) : NULL;
        if (node) node->a = in;
    } else {
        node = parse_primary(p);
    }
    node = parse_postfix(p, node);
    if (with_filter) node = parse_filter_expr(p, node);
    p->depth--;
    return node;
}

static ct_node *bin(parser *p, int op, uint32_t pos, ct_node *l, ct_node *r) {
    if (!l || !r) return NULL;
    ct_node *nd = mk(p, N_BIN, pos);
    if (!nd) return NULL;
    nd->op = (uint8_t)op;
    nd->a = l;
    nd->b = r;
    return nd;
}

static ct_node *parse_pow(parser *p) {
    ct_node *l = parse_unary(p, true);
    while (l && is_op(cur(p), TO_POW)) {
        uint32_t pos = cur(p)->pos;
        adv(p);
        l = bin(p, OP_POW, pos, l, parse_unary(p, true));
    }
    return l;
}

static ct_node *parse_math2(parser *p) {
    ct_node *l = parse_pow(p);
    for (;;) {
        token *t = cur(p);
        int op = is_op(t, TO_MUL)        ? OP_MUL
                 : is_op(t, TO_DIV)      ? OP_DIV
                 : is_op(t, TO_FLOORDIV) ? OP_FLOORDIV
                 : is_op(t, TO_MOD)      ? OP_MOD
                                         : 0;
        if (!l || !op) return l;
        adv(p);
        l = bin(p, op, t->pos, l, parse_pow(p));
    }
}

static ct_node *parse_concat(parser *p) {
    uint32_t pos = cur(p)->pos;
    ct_node *first = parse_math2(p);
    if (!first || !is_op(cur(p), TO_TILDE)) return first;
    pvec args = {0};
    if (!pv_push(p, &args, first)) return NULL;
    while (is_op(cur(p), TO_TILDE)) {
        adv(p);
        ct_node *e = parse_math2(p);
        if (!e || !pv_push(p, &args, e)) return NULL;
    }
    ct_node *nd = mk(p, N_CONCAT, pos);
    if (!nd) return NULL;
    nd->items = (ct_node **)args.v;
    nd->n = args.n;
    return nd;
}

static ct_node *parse_math1(parser *p) {
    ct_node *l = parse_concat(p);
    for (;;) {
        token *t = cur(p);
        int op = is_op(t, TO_ADD) ? OP_ADD : is_op(t, TO_SUB) ? OP_SUB : 0;
        if (!l || !op) return l;
        adv(p);
        l = bin(p, op, t->pos, l, parse_concat(p));
    }
}

static ct_node *parse_compare(parser *p) {
    uint32_t pos = cur(p)->pos;
    ct_node *first = parse_math1(p);
    if (!first) return NULL;
    pvec operands = {0};
    uint8_t ops[64];
    for (;;) {
        token *t = cur(p);
        int op = is_op(t, TO_EQ)   ? OP_EQ
                 : is_op(t, TO_NE) ? OP_NE
                 : is_op(t, TO_LT) ? OP_LT
                 : is_op(t, TO_LE) ? OP_LE
                 : is_op(t, TO_GT) ? OP_GT
                 : is_op(t, TO_GE) ? OP_GE
                                   : 0;
        if (op)
            adv(p);
        else if (is_name(t, "in"))
            adv(p), op = OP_IN;
        else if (is_name(t, "not") && is_name(peek(p), "in"))
            adv(p), adv(p), op = OP_NOTIN;
        else
            break;
        if (operands.n >= (int)sizeof ops) {
            perr(p, t->pos, LT_ERR_UNSUPPORTED, "more than %d chained comparisons",
                 (int)sizeof ops);
            return NULL;
        }
        ops[operands.n] = (uint8_t)op;
        ct_node *r = parse_math1(p);
        if (!r || !pv_push(p, &operands, r)) return NULL;
    }
    if (!operands.n) return first;
    ct_node *nd = mk(p, N_COMPARE, pos);
    if (!nd || !(nd->ops = ct_alloc(p->a, (size_t)operands.n))) {
        if (nd) oom(p);
        return NULL;
    }
    memcpy(nd->ops, ops, (size_t)operands.n);
    nd->a = first;
    nd->items = (ct_node **)operands.v;
    nd->n = operands.n;
    return nd;
}

static ct_node *parse_not(parser *p) {
    if (!is_name(cur(p), "not")) return parse_compare(p);
    uint32_t pos = cur(p)->pos;
    ENTER(p, pos, return NULL);
    adv(p);
    ct_node *in = parse_not(p);
    ct_node *nd = in ? mk(p, N_NOT, pos) : NULL;
    if (nd) nd->a = in;
    p->depth--;
    return nd;
}

static ct_node *parse_and(parser *p) {
    ct_node *l = parse_not(p);
    while (l && is_name(cur(p), "and")) {
        uint32_t pos = cur(p)->pos;
        adv(p);
        ct_node *r = parse_not(p), *nd = r ? mk(p, N_AND, pos) : NULL;
        if (!nd) return NULL;
        nd->a = l;
        nd->b = r;
        l = nd;
    }
    return l;
}

static ct_node *parse_or(parser *p) {
    ct_node *l = parse_and(p);
    while (l && is_name(cur(p), "or")) {
        uint32_t pos = cur(p)->pos;
        adv(p);
        ct_node *r = parse_and(p), *nd = r ? mk(p, N_OR, pos) : NULL;
        if (!nd) return NULL;
        nd->a = l;
        nd->b = r;
        l = nd;
    }
    return l;
}

static ct_node *parse_condexpr(parser *p) {
    uint32_t pos = cur(p)->pos;
    ENTER(p, pos, return NULL);
    ct_node *e1 = parse_or(p);
    while (e1 && is_name(cur(p), "if")) {
        adv(p);
        ct_node *e2 = parse_or(p), *e3 = NULL;
        if (!e2) return NULL;
        if (is_name(cur(p), "else")) {
            adv(p);
            if (!(e3 = parse_condexpr(p))) return NULL;
        }
        ct_node *nd = mk(p, N_COND, pos);
        if (!nd) return NULL;
        nd->a = e2;
        nd->b = e1;
        nd->c = e3;
        e1 = nd;
    }
    p->depth--;
    return e1;
}

static ct_node *parse_expression(parser *p, bool with_condexpr) {
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

static bool tuple_end(parser *p, const char *extra_end) {
    token *t = cur(p);
    if (t->type == TK_VAR_END || t->type == TK_BLOCK_END || is_op(t, TO_RPAREN)) return true;
    return extra_end && is_name(t, extra_end);
}

static ct_node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                            bool explicit_parens) {
    uint32_t pos = cur(p)->pos;
    pvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (tuple_end(p, extra_end)) break;
        ct_node *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        if (!e || !pv_push(p, &args, e)) return NULL;
        if (is_op(cur(p), TO_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens) {
            char b[64];
            perr(p, cur(p)->pos, LT_ERR_FORMAT, "expected an expression, got %s",
                 describe(cur(p), b, sizeof b));
            return NULL;
        }
    }
    ct_node *nd = mk(p, N_LIST, pos);
    if (!nd) return NULL;
    nd->op = 1;
    nd->items = (ct_node **)args.v;
    nd->n = args.n;
    return nd;
}

// ---------------------------------------------------------------------------------------------
// statements

static lt_status subparse(parser *p, const char *const *end_names, pvec *body);

// parse_statements: optional ':', '%}', the body up to one of end_names; the end name stays
// current unless drop_needle.
static lt_status parse_statements(parser *p, const char *const *end_names, bool drop_needle,
                                  pvec *body) {
    if (is_op(cur(p), TO_COLON)) adv(p);
    if (cur(p)->type != TK_BLOCK_END) return unexpected(p, "end of statement block");
    adv(p);
    lt_status st = subparse(p, end_names, body);
    if (st) return st;
    if (cur(p)->type == TK_EOF) {
        char want[96] = "";
        for (int k = 0; end_names[k]; k++) {
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "%s'%s'", k ? " or " : "", end_names[k]);
        }
        return perr(p, cur(p)->pos, LT_ERR_FORMAT, "unexpected end of template: expected %s", want);
    }
    if (drop_needle) adv(p);
    return LT_OK;
}

// a target: name, or names separated by commas (optionally in parentheses)
static lt_status parse_assign_target(parser *p, ct_node *nd, const char *extra_end) {
    uint32_t pos = cur(p)->pos;
    ct_node *t = parse_tuple(p, true, false, extra_end, false);
    if (!t) return FAILED(p);
    ct_node *single[1] = {t};
    ct_node **items = single;
    int n = 1;
    if (t->kind == N_LIST && t->op == 1) items = t->items, n = t->n, nd->op = 1;
    if (!(nd->names = ct_alloc(p->a, (size_t)(n ? n : 1) * sizeof *nd->names))) return oom(p);
    for (int k = 0; k < n; k++) {
        if (items[k]->kind != N_NAME)
            return perr(p, items[k]->pos, LT_ERR_FORMAT, "can't assign to this expression");
        nd->names[k] = items[k]->s;
    }
    nd->n_names = n;
    if (!n) return perr(p, pos, LT_ERR_FORMAT, "can't assign to an empty tuple");
    return LT_OK;
}

static ct_node *parse_for(parser *p, uint32_t pos) {
    static const char *const ends_body[] = {"endfor", "else", NULL};
    static const char *const ends_else[] = {"endfor", NULL};
    ct_node *nd = mk(p, N_FOR, pos);
    if (!nd || parse_assign_target(p, nd, "in")) return NULL;
    if (!is_name(cur(p), "in")) {
        unexpected(p, "'in'");
        return NULL;
    }
    adv(p);
    if (!(nd->a = parse_tuple(p, false, false, "recursive", false))) return NULL;
    if (is_name(cur(p), "if")) {
        adv(p);
        if (!(nd->b = parse_expression(p, true))) return NULL;
    }
    if (is_name(cur(p), "recursive")) {
        perr(p, cur(p)->pos, LT_ERR_UNSUPPORTED, "recursive for loops");
        return NULL;
    }
    pvec body = {0}, els = {0};
    p->loops++;
    lt_status st = parse_statements(p, ends_body, false, &body);
    p->loops--;
    if (st) return NULL;
    if (is_name(cur(p), "else")) {
        adv(p);
        if (parse_statements(p, ends_else, true, &els)) return NULL;
    } else {
        adv(p);
    }
    nd->items = (ct_node **)body.v;
    nd->n = body.n;
    nd->items2 = (ct_node **)els.v;
    nd->n2 = els.n;
    return nd;
}

static ct_node *parse_if(parser *p, uint32_t pos) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends_else[] = {"endif", NULL};
    ct_node *result = mk(p, N_IF, pos), *node = result;
    if (!result) return NULL;
    for (;;) {
        if (!(node->a = parse_tuple(p, false, false, NULL, false))) return NULL;
        pvec body = {0};
        if (parse_statements(p, ends, false, &body)) return NULL;
        node->items = (ct_node **)body.v;
        node->n = body.n;
        token *t = cur(p);
        adv(p);
        if (is_name(t, "elif")) {
            ct_node *e = mk(p, N_IF, t->pos);
            if (!e || !(node->items2 = ct_alloc(p->a, sizeof *node->items2))) {
                if (e) oom(p);
                return NULL;
            }
            node->items2[0] = e;
            node->n2 = 1;
            node = e;
            continue;
        }
        if (is_name(t, "else")) {
            pvec els = {0};
            if (parse_statements(p, ends_else, true, &els)) return NULL;
            node->items2 = (ct_node **)els.v;
            node->n2 = els.n;
        }
        return result;
    }
}

static ct_node *parse_set(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endset", NULL};
    ct_node *nd = mk(p, N_SET, pos);
    if (!nd) return NULL;
    if (cur(p)->type == TK_NAME && is_op(peek(p), TO_DOT)) { // namespace attribute
        nd->s = name_dup(p, cur(p));
        adv(p);
        adv(p);
        if (!nd->s) return NULL;
        if (cur(p)->type != TK_NAME) {
            unexpected(p, "an attribute name");
            return NULL;
        }
        if (!(nd->names = ct_alloc(p->a, sizeof *nd->names)) ||
            !(nd->names[0] = name_dup(p, cur(p)))) {
            oom(p);
            return NULL;
        }
        nd->n_names = 1;
        nd->op = 2;
        adv(p);
    } else if (parse_assign_target(p, nd, NULL)) {
        return NULL;
    }
    if (is_op(cur(p), TO_ASSIGN)) {
        adv(p);
        if (!(nd->a = parse_tuple(p, false, true, NULL, false))) return NULL;
        return nd;
    }
    nd->kind = N_SETBLOCK;
    if (is_op(cur(p), TO_PIPE)) {
        ct_node *hole = mk(p, N_BLOCKVAL, cur(p)->pos);
        if (!hole || !(nd->c = parse_filter(p, hole, false))) return NULL;
    }
    pvec body = {0};
    if (parse_statements(p, ends, true, &body)) return NULL;
    nd->items = (ct_node **)body.v;
    nd->n = body.n;
    return nd;
}

static ct_node *parse_macro(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endmacro", NULL};
    ct_node *nd = mk(p, N_MACRO, pos);
    if (!nd) return NULL;
    if (cur(p)->type != TK_NAME) {
        unexpected(p, "a macro name");
        return NULL;
    }
    if (!(nd->s = name_dup(p, cur(p)))) return NULL;
    adv(p);
    if (expect_op(p, TO_LPAREN, "'('")) return NULL;
    pvec params = {0}, defs = {0};
    while (!is_op(cur(p), TO_RPAREN)) {
        if (params.n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (cur(p)->type != TK_NAME) {
            unexpected(p, "a parameter name");
            return NULL;
        }
        char *nm = name_dup(p, cur(p));
        if (!nm || !pv_push(p, &params, nm)) return NULL;
        adv(p);
        if (is_op(cur(p), TO_ASSIGN)) {
            adv(p);
            ct_node *d = parse_expression(p, true);
            if (!d || !pv_push(p, &defs, d)) return NULL;
        } else if (defs.n) {
            perr(p, cur(p)->pos, LT_ERR_FORMAT, "non-default argument follows default argument");
            return NULL;
        }
    }
    adv(p);
    nd->names = (const char **)params.v;
    nd->n_names = params.n;
    nd->items2 = (ct_node **)defs.v;
    nd->n2 = defs.n;
    int saved_loops = p->loops;
    p->loops = 0; // break/continue do not cross a macro
    pvec body = {0};
    lt_status st = parse_statements(p, ends, true, &body);
    p->loops = saved_loops;
    if (st) return NULL;
    nd->items = (ct_node **)body.v;
    nd->n = body.n;
    return nd;
}

static ct_node *parse_with(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endwith", NULL};
    ct_node *nd = mk(p, N_WITH, pos);
    if (!nd) return NULL;
    pvec names = {0}, vals = {0};
    while (cur(p)->type != TK_BLOCK_END) {
        if (names.n && expect_op(p, TO_COMMA, "','")) return NULL;
        if (cur(p)->type != TK_NAME) {
            unexpected(p, "a name");
            return NULL;
        }
        char *nm = name_dup(p, cur(p));
        if (!nm || !pv_push(p, &names, nm)) return NULL;
        adv(p);
        if (expect_op(p, TO_ASSIGN, "'='")) return NULL;
        ct_node *v = parse_expression(p, true);
        if (!v || !pv_push(p, &vals, v)) return NULL;
    }
    nd->names = (const char **)names.v;
    nd->n_names = names.n;
    nd->items2 = (ct_node **)vals.v;
    nd->n2 = vals.n;
    pvec body = {0};
    if (parse_statements(p, ends, true, &body)) return NULL;
    nd->items = (ct_node **)body.v;
    nd->n = body.n;
    return nd;
}

static ct_node *parse_statement(parser *p) {
    token *t = cur(p);
    uint32_t pos = t->pos;
    if (t->type != TK_NAME) {
        unexpected(p, "a tag name");
        return NULL;
    }
    adv(p);
    if (is_name(t, "for")) return parse_for(p, pos);
    if (is_name(t, "if")) return parse_if(p, pos);
    if (is_name(t, "set")) return parse_set(p, pos);
    if (is_name(t, "macro")) return parse_macro(p, pos);
    if (is_name(t, "with")) return parse_with(p, pos);
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops) {
            perr(p, pos, LT_ERR_FORMAT, "'%.*s' outside of a loop", (int)t->n, t->s);
            return NULL;
        }
        return mk(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, pos);
    }
    if (is_name(t, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        ct_node *nd = mk(p, N_FILTERBLOCK, pos), *hole = nd ? mk(p, N_BLOCKVAL, pos) : NULL;
        if (!hole || !(nd->c = parse_filter(p, hole, true))) return NULL;
        pvec body = {0};
        if (parse_statements(p, ends, true, &body)) return NULL;
        nd->items = (ct_node **)body.v;
        nd->n = body.n;
        return nd;
    }
    if (is_name(t, "generation")) {
        // transformers' AssistantTracker: renders its body unchanged (it only records where the
        // assistant text is). Represented as a filter block without a filter.
        static const char *const ends[] = {"endgeneration", NULL};
        ct_node *nd = mk(p, N_FILTERBLOCK, pos);
        if (!nd) return NULL;
        pvec body = {0};
        if (parse_statements(p, ends, true, &body)) return NULL;
        nd->items = (ct_node **)body.v;
        nd->n = body.n;
        return nd;
    }
    static const char *const known[] = {"include", "import", "from",      "extends",
                                        "block",   "call",   "raw",       "autoescape",
                                        "do",      "trans",  "pluralize", "debug"};
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
        if (is_name(t, known[k])) {
            perr(p, pos, LT_ERR_UNSUPPORTED, "unsupported tag '%s'", known[k]);
            return NULL;
        }
    static const char *const ends[] = {"endfor",   "endif",   "elif",      "else",         "endset",
                                       "endmacro", "endwith", "endfilter", "endgeneration"};
    for (size_t k = 0; k < sizeof ends / sizeof *ends; k++)
        if (is_name(t, ends[k])) {
            if (!p->open_ends)
                perr(p, pos, LT_ERR_FORMAT, "unexpected '%s' (no block is open that it closes)",
                     ends[k]);
            else {
                char want[96] = "";
                for (int e = 0; p->open_ends[e]; e++) {
                    size_t l = strlen(want);
                    snprintf(want + l, sizeof want - l, "%s'%s'", e ? " or " : "", p->open_ends[e]);
                }
                perr(p, pos, LT_ERR_FORMAT, "unexpected '%s', expected %s", ends[k], want);
            }
            return NULL;
        }
    perr(p, pos, LT_ERR_UNSUPPORTED, "unknown tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    return NULL;
}

static lt_status subparse(parser *p, const char *const *end_names, pvec *body) {
    ENTER(p, cur(p)->pos, return FAILED(p));
    lt_status st = LT_OK;
    for (;;) {
        token *t = cur(p);
        if (t->type == TK_EOF) break;
        ct_node *nd = NULL;
        if (t->type == TK_DATA) {
            if (!(nd = mk(p, N_TEXT, t->pos))) goto fail;
            nd->s = t->s;
            nd->slen = t->n;
            adv(p);
        } else if (t->type == TK_VAR_BEGIN) {
            adv(p);
            ct_node *e = parse_tuple(p, false, true, NULL, false);
            if (!e) goto fail;
            if (cur(p)->type != TK_VAR_END) {
                unexpected(p, "end of print statement");
                goto fail;
            }
            adv(p);
            if (!(nd = mk(p, N_OUTPUT, t->pos))) goto fail;
            nd->a = e;
        } else if (t->type == TK_BLOCK_BEGIN) {
            adv(p);
            bool is_end = false;
            for (int k = 0; end_names && end_names[k]; k++) is_end |= is_name(cur(p), end_names[k]);
            if (is_end) break;
            const char *const *saved = p->open_ends;
            p->open_ends = end_names;
            nd = parse_statement(p);
            p->open_ends = saved;
            if (!nd) goto fail;
            if (cur(p)->type != TK_BLOCK_END) {
                unexpected(p, "end of statement block");
                goto fail;
            }
            adv(p);
        } else {
            char b[64];
            perr(p, t->pos, LT_ERR_FORMAT, "unexpected %s", describe(t, b, sizeof b));
            goto fail;
        }
        if (!pv_push(p, body, nd)) goto fail;
    }
    p->depth--;
    return st;
fail:
    return FAILED(p);
}

// ---------------------------------------------------------------------------------------------
// API

lt_status lt_chat_template_parse(const char *src, size_t len, lt_chat_template **out, lt_err *err) {
    if (!out || (!src && len)) return lt_err_set(err, LT_ERR_ARG, "chat template: NULL argument");
    size_t bad;
    if (!ct_utf8_valid(src, len, &bad))
        return lt_err_set(err, LT_ERR_FORMAT, "chat template: invalid UTF-8 at byte %zu", bad);
    if (len > UINT32_MAX - 16)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "chat template: %zu bytes is too long", len);
    lt_chat_template *t = lt_calloc(1, sizeof *t);
    if (!t) return lt_err_set(err, LT_ERR_OOM, "chat template: out of memory while parsing");
    lt_err scratch;
    parser p = {.t = t, .a = &t->arena, .err = err ? err : &scratch};
    // jinja2 normalises newlines ("\r\n", "\r" -> "\n") and drops one trailing newline
    char *s = ct_alloc(&t->arena, len + 1);
    lt_status st;
    if (!s) {
        st = oom(&p);
        goto fail;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    t->src = p.src = s;
    t->len = p.len = n;
    if ((st = lex(&p))) goto fail;
    pvec body = {0};
    if ((st = subparse(&p, NULL, &body))) goto fail;
    t->body = (ct_node **)body.v;
    t->n_body = body.n;
    lt_free(p.tk);
    *out = t;
    return LT_OK;
fail:
    lt_free(p.tk);
    lt_chat_template_free(t);
    return st;
}

void lt_chat_template_free(lt_chat_template *t) {
    if (!t) return;
    ct_arena_free(&t->arena);
    lt_free(t);
}
