/*
 * chat_render.c - evaluates a compiled chat template (chat_template.c) for one conversation.
 *
 * Values follow Python and jinja2 3.1's ImmutableSandboxedEnvironment as transformers sets it up
 * (chat_template_utils.py _cached_compile_jinja_template): Undefined prints as "" and fails on
 * attribute access, arithmetic and calls; attribute access on anything else that lacks it gives
 * Undefined (sandbox getattr/getitem); strings are code-point sequences; lists print as Python
 * reprs; tojson is json.dumps(ensure_ascii=False); namespace() objects take attribute
 * assignment; the for loop body gets a fresh scope each iteration (sets do not leak out).
 * Every value of a render lives in one arena (freed at the end), so no value is ever freed on
 * its own; the arena has a size limit and the interpreter counts steps, so no template can hang
 * or exhaust memory.
 * Deliberately not here: Markup (safe/escape), generators beyond what select/map/reverse need,
 * Python big integers, `caller`/varargs in macros, string % formatting and str.format.
 * Reference: https://github.com/pallets/jinja/blob/3.1.6/src/jinja2/{runtime,filters,tests,
 * sandbox,utils}.py; CPython Objects/unicodeobject.c (split, strip, replace, title, repr).
 */
#include "tokenizer/chat_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------------
// values

typedef enum {
    V_UNDEF,
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,
    V_DICT,
    V_NS,
    V_LOOP,
    V_FUNC,
    V_MACRO,
    V_METHOD
} vtype;
// value.sub of V_LIST: how it prints and behaves. A generator (select, map, reverse, |items)
// is always true and has no len() or [i]; a range or a dict view (d.items()) has a len() but
// prints in a way this module does not reproduce.
enum { L_LIST = 0, L_TUPLE, L_GEN, L_RANGE, L_VIEW };
enum { FN_RAISE, FN_NAMESPACE, FN_STRFTIME, FN_RANGE, FN_DICT, FN_CYCLER, FN_JOINER, FN_LIPSUM };

typedef struct value value;
typedef struct vlist vlist;
typedef struct vdict vdict;
typedef struct loopst loopst;
typedef struct bound bound;
typedef struct closure closure;
typedef struct frame frame;

struct value {
    uint8_t t, sub;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        vlist *l;
        vdict *d;
        loopst *loop;
        int fn;
        closure *macro;
        bound *m;
        struct {
            const char *name; // variable or attribute name, may be NULL
            const char *obj;  // type name of the object that lacked the attribute, or NULL
        } undef;
    } u;
};
struct vlist {
    size_t n;
    value *v;
    const char *fail; // a generator that raises this when iterated (jinja2 do_items); else NULL
};
struct vdict { // insertion-ordered, linear lookup (templates use small dicts)
    size_t n, cap;
    value *k, *v;
};
struct loopst {
    size_t index0, length;
    const vlist *items;
};
struct bound {
    value self;
    const char *name;
};
struct closure { // a macro and the scope it was defined in (its free names resolve there)
    const ct_node *node;
    frame *env;
};

static value vundef(const char *name, const char *obj) {
    value v = {.t = V_UNDEF};
    v.u.undef.name = name;
    v.u.undef.obj = obj;
    return v;
}
static value vnone(void) {
    return (value){.t = V_NONE};
}
static value vbool(bool b) {
    value v = {.t = V_BOOL};
    v.u.b = b;
    return v;
}
static value vint(int64_t i) {
    value v = {.t = V_INT};
    v.u.i = i;
    return v;
}
static value vflt(double f) {
    value v = {.t = V_FLOAT};
    v.u.f = f;
    return v;
}
static value vstr(const char *p, size_t n) {
    value v = {.t = V_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}
static value vlistv(vlist *l, int sub) {
    value v = {.t = V_LIST, .sub = (uint8_t)sub};
    v.u.l = l;
    return v;
}

static const char *tname(const value *v) {
    switch ((vtype)v->t) {
    case V_UNDEF:
        return "Undefined";
    case V_NONE:
        return "NoneType";
    case V_BOOL:
        return "bool";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float";
    case V_STR:
        return "str";
    case V_LIST:
        return v->sub == L_TUPLE   ? "tuple"
               : v->sub == L_GEN   ? "generator"
               : v->sub == L_RANGE ? "range"
               : v->sub == L_VIEW  ? "dict_items"
                                   : "list";
    case V_DICT:
        return "dict";
    case V_NS:
        return "Namespace";
    case V_LOOP:
        return "LoopContext";
    case V_FUNC:
        return "function";
    case V_MACRO:
        return "Macro";
    case V_METHOD:
        return "builtin_function_or_method";
    }
    return "object";
}

static bool is_num(const value *v) {
    return v->t == V_BOOL || v->t == V_INT || v->t == V_FLOAT;
}
static bool is_intlike(const value *v) {
    return v->t == V_BOOL || v->t == V_INT;
}
static int64_t as_int(const value *v) {
    return v->t == V_BOOL ? (int64_t)v->u.b : v->u.i;
}
static double as_dbl(const value *v) {
    return v->t == V_FLOAT ? v->u.f : (double)as_int(v);
}

static bool truthy(const value *v) {
    switch ((vtype)v->t) {
    case V_UNDEF:
    case V_NONE:
        return false;
    case V_BOOL:
        return v->u.b;
    case V_INT:
        return v->u.i != 0;
    case V_FLOAT:
        return v->u.f != 0;
    case V_STR:
        return v->u.s.n != 0;
    case V_LIST:
        return v->sub == L_GEN || v->u.l->n != 0; // a generator is always true
    case V_DICT:
        return v->u.d->n != 0;
    default:
        return true;
    }
}

// ---------------------------------------------------------------------------------------------
// render context, errors, memory

// Scopes live in the render arena (not on the C stack) because macros keep a pointer to the
// scope they were defined in, which may be a loop body or another macro's call.
struct frame {
    frame *parent;
    const char **names;
    value *vals;
    int n, cap;
};

enum { CTL_NONE = 0, CTL_BREAK, CTL_CONTINUE };

typedef struct rctx {
    const lt_chat_template *t;
    ct_arena a;
    lt_err *err;
    long steps;
    int depth, macro_depth, ctl;
    ct_buf *out;
    frame *f;
    value blockval;
} rctx;

static lt_status rerr(rctx *c, uint32_t pos, lt_status code, const char *fmt, ...) LT_PRINTF(4, 5);
static lt_status rerr(rctx *c, uint32_t pos, lt_status code, const char *fmt, ...) {
    char msg[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    ct_line_col(c->t, pos, &line, &col);
    return lt_err_set(c->err, code, "chat template %d:%d: %s", line, col, msg);
}

static lt_status memfail(rctx *c, uint32_t pos) {
    if (c->a.over_limit)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "rendering needs more than %u MiB",
                    (unsigned)(CT_MAX_RENDER_MEM >> 20));
    return rerr(c, pos, LT_ERR_OOM, "out of memory while rendering");
}

static lt_status undef_err(rctx *c, uint32_t pos, const value *v) {
    if (v->u.undef.obj && v->u.undef.name)
        return rerr(c, pos, LT_ERR_ARG, "'%s object' has no attribute '%.80s'", v->u.undef.obj,
                    v->u.undef.name);
    if (v->u.undef.obj)
        return rerr(c, pos, LT_ERR_ARG, "'%s object' has no such element", v->u.undef.obj);
    if (v->u.undef.name) return rerr(c, pos, LT_ERR_ARG, "'%.80s' is undefined", v->u.undef.name);
    return rerr(c, pos, LT_ERR_ARG, "an undefined value was used");
}

static lt_status type_err(rctx *c, uint32_t pos, const char *what, const value *a, const value *b) {
    if (b)
        return rerr(c, pos, LT_ERR_ARG, "unsupported operand types for %s: '%s' and '%s'", what,
                    tname(a), tname(b));
    return rerr(c, pos, LT_ERR_ARG, "%s: unsupported type '%s'", what, tname(a));
}

static lt_status step(rctx *c, uint32_t pos) {
    if (++c->steps > CT_MAX_STEPS)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "rendering takes more than %ld steps (a loop?)",
                    (long)CT_MAX_STEPS);
    return LT_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        lt_status st_ = (x);                                                                       \
        if (st_) return st_;                                                                       \
    } while (0)

static vlist *new_list(rctx *c, size_t n) {
    vlist *l = ct_alloc(&c->a, sizeof *l);
    size_t bytes;
    if (!l || !lt_mul_ok(n ? n : 1, sizeof(value), &bytes)) return NULL;
    if (!(l->v = ct_alloc(&c->a, bytes))) return NULL;
    l->n = n;
    l->fail = NULL;
    return l;
}

static vdict *new_dict(rctx *c, size_t cap) {
    vdict *d = ct_alloc(&c->a, sizeof *d);
    size_t bytes;
    if (!cap) cap = 4;
    if (!d || !lt_mul_ok(cap, sizeof(value), &bytes)) return NULL;
    d->k = ct_alloc(&c->a, bytes);
    d->v = ct_alloc(&c->a, bytes);
    if (!d->k || !d->v) return NULL;
    d->n = 0;
    d->cap = cap;
    return d;
}

static bool veq(const value *a, const value *b, int depth);

static value *dict_find(const vdict *d, const value *k) {
    for (size_t i = 0; i < d->n; i++)
        if (veq(&d->k[i], k, 0)) return &d->v[i];
    return NULL;
}

static value *dict_find_str(const vdict *d, const char *s, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == V_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, s, n))
            return &d->v[i];
    return NULL;
}

static bool dict_set(rctx *c, vdict *d, value k, value v) {
    value *slot = dict_find(d, &k);
    if (slot) {
        *slot = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap * 2, bytes;
        if (!lt_mul_ok(cap, sizeof(value), &bytes)) return false;
        value *nk = ct_alloc(&c->a, bytes), *nv = ct_alloc(&c->a, bytes);
        if (!nk || !nv) return false;
        memcpy(nk, d->k, d->n * sizeof(value));
        memcpy(nv, d->v, d->n * sizeof(value));
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return true;
}

static char *cstr(rctx *c, const value *s) {
    return ct_strndup(&c->a, s->u.s.p, s->u.s.n);
}

// ---------------------------------------------------------------------------------------------
// variables

static lt_status fset(rctx *c, frame *f, const char *name, value v, uint32_t pos) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return LT_OK;
        }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 8;
        const char **nn = ct_alloc(&c->a, (size_t)cap * sizeof *nn);
        value *nv = ct_alloc(&c->a, (size_t)cap * sizeof *nv);
        if (!nn || !nv) return memfail(c, pos);
        if (f->n) {
            memcpy(nn, f->names, (size_t)f->n * sizeof *nn);
            memcpy(nv, f->vals, (size_t)f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
    return LT_OK;
}

static value lookup(rctx *c, const char *name) {
    for (frame *f = c->f; f; f = f->parent)
        for (int i = f->n - 1; i >= 0; i--)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    static const struct {
        const char *name;
        int fn;
    } globals[] = {
        {"raise_exception", FN_RAISE}, {"namespace", FN_NAMESPACE}, {"strftime_now", FN_STRFTIME},
        {"range", FN_RANGE},           {"dict", FN_DICT},           {"cycler", FN_CYCLER},
        {"joiner", FN_JOINER},         {"lipsum", FN_LIPSUM}};
    for (size_t k = 0; k < sizeof globals / sizeof *globals; k++)
        if (!strcmp(globals[k].name, name)) {
            value v = {.t = V_FUNC};
            v.u.fn = globals[k].fn;
            return v;
        }
    return vundef(name, NULL);
}

// ---------------------------------------------------------------------------------------------
// text helpers (Python str semantics on UTF-8)

static size_t cp_len(const char *s, size_t n) {
    return ct_utf8_count(s, n);
}

// byte offset of code point index k (k <= number of code points)
static size_t cp_off(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
        k--;
    }
    return i;
}

static bool is_cased_cat(uint32_t cp) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT;
}

static bool is_case_ignorable(uint32_t cp) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
           cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM ||
           cat == UTF8PROC_CATEGORY_SK || cp == '\'' || cp == '.' || cp == ':' || cp == 0xb7 ||
           cp == 0x2019;
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE };

// Python's full case mappings for the characters where they differ from the simple ones and
// that occur in real text (SpecialCasing.txt, unconditional part).
static const char *special_case(uint32_t cp, int mode) {
    static const struct {
        uint32_t cp;
        const char *upper, *title;
    } tab[] = {
        {0xdf, "SS", "Ss"},   {0xfb00, "FF", "Ff"},   {0xfb01, "FI", "Fi"},
        {0xfb02, "FL", "Fl"}, {0xfb03, "FFI", "Ffi"}, {0xfb04, "FFL", "Ffl"},
        {0xfb05, "ST", "St"}, {0xfb06, "ST", "St"},   {0x149, "\xca\xbcN", "\xca\xbcN"},
    };
    if (mode == CASE_LOWER) return cp == 0x130 ? "i\xcc\x87" : NULL;
    for (size_t k = 0; k < sizeof tab / sizeof *tab; k++)
        if (tab[k].cp == cp) return mode == CASE_UPPER ? tab[k].upper : tab[k].title;
    return NULL;
}

// Appends cp case-mapped. For a lowercase capital sigma, s[0..n) and its byte offset at decide
// between σ and the final ς as Python does.
static bool put_case(ct_buf *b, uint32_t cp, int mode, const char *s, size_t n, size_t at,
                     size_t len) {
    const char *sp = special_case(cp, mode);
    if (sp) return ct_buf_puts(b, sp);
    uint32_t m;
    if (mode == CASE_LOWER && cp == 0x3a3) {
        bool before = false, after = false;
        for (size_t k = at; k > 0;) {
            size_t j = k - 1;
            while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
            uint32_t q;
            ct_utf8_dec(s + j, n - j, &q);
            k = j;
            if (is_case_ignorable(q)) continue;
            before = is_cased_cat(q);
            break;
        }
        for (size_t k = at + len; k < n;) {
            uint32_t q;
            k += ct_utf8_dec(s + k, n - k, &q);
            if (is_case_ignorable(q)) continue;
            after = is_cased_cat(q);
            break;
        }
        m = (before && !after) ? 0x3c2 : 0x3c3;
    } else {
        m = (uint32_t)(mode == CASE_UPPER   ? utf8proc_toupper((utf8proc_int32_t)cp)
                       : mode == CASE_LOWER ? utf8proc_tolower((utf8proc_int32_t)cp)
                                            : utf8proc_totitle((utf8proc_int32_t)cp));
    }
    char tmp[4];
    return ct_buf_put(b, tmp, ct_utf8_enc(m, tmp));
}

enum { TX_UPPER, TX_LOWER, TX_CAPITALIZE, TX_PYTITLE, TX_JTITLE };

static lt_status recase(rctx *c, uint32_t pos, const value *v, int how, value *out) {
    const char *s = v->u.s.p;
    size_t n = v->u.s.n;
    ct_buf b = {.a = &c->a};
    bool prev_cased = false, word_start = true;
    if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = ct_utf8_dec(s + i, n - i, &cp);
        int mode;
        switch (how) {
        case TX_UPPER:
            mode = CASE_UPPER;
            break;
        case TX_LOWER:
            mode = CASE_LOWER;
            break;
        case TX_CAPITALIZE:
            mode = i == 0 ? CASE_TITLE : CASE_LOWER;
            break;
        case TX_PYTITLE:
            mode = prev_cased ? CASE_LOWER : CASE_TITLE;
            break;
        default:
            mode = word_start ? CASE_UPPER : CASE_LOWER;
            break;
        }
        if (!put_case(&b, cp, mode, s, n, i, l)) return memfail(c, pos);
        prev_cased = is_cased_cat(cp);
        // jinja2 do_title: words begin after any of -, whitespace, (, {, [, <
        word_start =
            ct_py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        i += l;
    }
    *out = vstr(b.p, b.n);
    return LT_OK;
}

static bool in_chars(uint32_t cp, const value *chars) {
    const char *s = chars->u.s.p;
    size_t n = chars->u.s.n;
    for (size_t i = 0; i < n;) {
        uint32_t q;
        i += ct_utf8_dec(s + i, n - i, &q);
        if (q == cp) return true;
    }
    return false;
}

// str.strip/lstrip/rstrip; chars NULL: Unicode whitespace. which: 1 left, 2 right, 3 both
static value py_strip(const value *v, const value *chars, int which) {
    const char *s = v->u.s.p;
    size_t lo = 0, hi = v->u.s.n;
    if (which & 1)
        while (lo < hi) {
            uint32_t cp;
            size_t l = ct_utf8_dec(s + lo, hi - lo, &cp);
            if (chars ? !in_chars(cp, chars) : !ct_py_isspace(cp)) break;
            lo += l;
        }
    if (which & 2)
        while (hi > lo) {
            size_t k = hi - 1;
            while (k > lo && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
            uint32_t cp;
            ct_utf8_dec(s + k, hi - k, &cp);
            if (chars ? !in_chars(cp, chars) : !ct_py_isspace(cp)) break;
            hi = k;
        }
    return vstr(s + lo, hi - lo);
}

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static const char *memrfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

// str.replace(old, new, count); count < 0: all
static lt_status py_replace(rctx *c, uint32_t pos, const value *s, const value *old,
                            const value *nw, int64_t count, value *out) {
    ct_buf b = {.a = &c->a};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
    if (old->u.s.n == 0) { // inserts `new` before every character and at the end
        size_t i = 0;
        while (count != 0) {
            if (!ct_buf_put(&b, nw->u.s.p, nw->u.s.n)) return memfail(c, pos);
            if (count > 0) count--;
            if (i >= n) break;
            uint32_t cp;
            size_t l = ct_utf8_dec(p + i, n - i, &cp);
            if (!ct_buf_put(&b, p + i, l)) return memfail(c, pos);
            i += l;
            TRY(step(c, pos));
        }
        if (i < n && !ct_buf_put(&b, p + i, n - i)) return memfail(c, pos);
        *out = vstr(b.p, b.n);
        return LT_OK;
    }
    size_t i = 0;
    while (count != 0) {
        const char *hit = memfind(p + i, n - i, old->u.s.p, old->u.s.n);
        if (!hit) break;
        size_t at = (size_t)(hit - p);
        if (!ct_buf_put(&b, p + i, at - i) || !ct_buf_put(&b, nw->u.s.p, nw->u.s.n))
            return memfail(c, pos);
        i = at + old->u.s.n;
        if (count > 0) count--;
    }
    if (!ct_buf_put(&b, p + i, n - i)) return memfail(c, pos);
    *out = vstr(b.p, b.n);
    return LT_OK;
}

// a growable list of values in the arena
typedef struct lbuf {
    value *v;
    size_t n, cap;
} lbuf;

static bool lb_push(rctx *c, lbuf *l, value v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8, bytes;
        if (!lt_mul_ok(cap, sizeof(value), &bytes)) return false;
        value *nv = ct_alloc(&c->a, bytes);
        if (!nv) return false;
        if (l->n) memcpy(nv, l->v, l->n * sizeof(value));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

static lt_status lb_done(rctx *c, uint32_t pos, lbuf *l, int sub, value *out) {
    vlist *vl = ct_alloc(&c->a, sizeof *vl);
    if (!vl) return memfail(c, pos);
    vl->n = l->n;
    vl->v = l->v;
    vl->fail = NULL;
    *out = vlistv(vl, sub);
    return LT_OK;
}

// str.split / str.rsplit; sep NULL: runs of whitespace
static lt_status py_split(rctx *c, uint32_t pos, const value *s, const value *sep, int64_t maxsplit,
                          bool right, value *out) {
    lbuf l = {0};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (sep && sep->u.s.n == 0) return rerr(c, pos, LT_ERR_ARG, "split: empty separator");
    if (!sep) {
        if (!right) {
            size_t i = 0;
            for (;;) {
                while (i < n) { // skip whitespace
                    uint32_t cp;
                    size_t k = ct_utf8_dec(p + i, n - i, &cp);
                    if (!ct_py_isspace(cp)) break;
                    i += k;
                }
                if (i >= n) break;
                if (maxsplit == 0) {
                    if (!lb_push(c, &l, vstr(p + i, n - i))) return memfail(c, pos);
                    break;
                }
                size_t j = i;
                while (j < n) {
                    uint32_t cp;
                    size_t k = ct_utf8_dec(p + j, n - j, &cp);
                    if (ct_py_isspace(cp)) break;
                    j += k;
                }
                if (!lb_push(c, &l, vstr(p + i, j - i))) return memfail(c, pos);
                if (maxsplit > 0) maxsplit--;
                i = j;
            }
        } else {
            size_t i = n;
            for (;;) {
                while (i > 0) {
                    size_t k = i - 1;
                    while (k > 0 && ((unsigned char)p[k] & 0xc0) == 0x80) k--;
                    uint32_t cp;
                    ct_utf8_dec(p + k, i - k, &cp);
                    if (!ct_py_isspace(cp)) break;
                    i = k;
                }
                if (i == 0) break;
                if (maxsplit == 0) {
                    if (!lb_push(c, &l, vstr(p, i))) return memfail(c, pos);
                    break;
                }
                size_t j = i;
                while (j > 0) {
                    size_t k = j - 1;
                    while (k > 0 && ((unsigned char)p[k] & 0xc0) == 0x80) k--;
                    uint32_t cp;
                    ct_utf8_dec(p + k, j - k, &cp);
                    if (ct_py_isspace(cp)) break;
                    j = k;
                }
                if (!lb_push(c, &l, vstr(p + j, i - j))) return memfail(c, pos);
                if (maxsplit > 0) maxsplit--;
                i = j;
            }
        }
    } else {
        const char *d = sep->u.s.p;
        size_t dn = sep->u.s.n;
        if (!right) {
            size_t i = 0;
            for (;;) {
                const char *hit = maxsplit == 0 ? NULL : memfind(p + i, n - i, d, dn);
                if (!hit) {
                    if (!lb_push(c, &l, vstr(p + i, n - i))) return memfail(c, pos);
                    break;
                }
                size_t at = (size_t)(hit - p);
                if (!lb_push(c, &l, vstr(p + i, at - i))) return memfail(c, pos);
                i = at + dn;
                if (maxsplit > 0) maxsplit--;
            }
        } else {
            size_t i = n;
            for (;;) {
                const char *hit = maxsplit == 0 ? NULL : memrfind(p, i, d, dn);
                if (!hit) {
                    if (!lb_push(c, &l, vstr(p, i))) return memfail(c, pos);
                    break;
                }
                size_t at = (size_t)(hit - p);
                if (!lb_push(c, &l, vstr(p + at + dn, i - at - dn))) return memfail(c, pos);
                i = at;
                if (maxsplit > 0) maxsplit--;
            }
        }
    }
    if (right) // collected back to front
        for (size_t a = 0, b = l.n ? l.n - 1 : 0; a < b; a++, b--) {
            value t = l.v[a];
            l.v[a] = l.v[b];
            l.v[b] = t;
        }
    return lb_done(c, pos, &l, L_LIST, out);
}

// str.splitlines: the line boundaries of Python (\n \r \r\n \v \f \x1c-\x1e \x85 \u2028 \u2029)
static lt_status py_splitlines(rctx *c, uint32_t pos, const value *s, bool keepends, value *out) {
    lbuf l = {0};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, start = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = ct_utf8_dec(p + i, n - i, &cp);
        bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c ||
                  (cp >= 0x1c && cp <= 0x1e) || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!br) {
            i += k;
            continue;
        }
        size_t end = i + k;
        if (cp == '\r' && end < n && p[end] == '\n') end++;
        if (!lb_push(c, &l, vstr(p + start, (keepends ? end : i) - start))) return memfail(c, pos);
        start = i = end;
    }
    if (start < n && !lb_push(c, &l, vstr(p + start, n - start))) return memfail(c, pos);
    return lb_done(c, pos, &l, L_LIST, out);
}

// ---------------------------------------------------------------------------------------------
// str() and repr() into a buffer

static lt_status put_value(rctx *c, uint32_t pos, ct_buf *b, const value *v, bool repr, int depth);

static bool py_printable(uint32_t cp) {
    if (cp == ' ') return true;
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static bool put_str_repr(ct_buf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    bool ok = ct_buf_putc(b, q);
    for (size_t i = 0; i < n && ok;) {
        uint32_t cp;
        size_t k = ct_utf8_dec(s + i, n - i, &cp);
        char tmp[16];
        if (cp == (uint32_t)q || cp == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)cp;
            ok = ct_buf_put(b, tmp, 2);
        } else if (cp == '\n')
            ok = ct_buf_puts(b, "\\n");
        else if (cp == '\r')
            ok = ct_buf_puts(b, "\\r");
        else if (cp == '\t')
            ok = ct_buf_puts(b, "\\t");
        else if (!py_printable(cp)) {
            if (cp < 0x100)
                snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned)cp);
            else if (cp < 0x10000)
                snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp);
            else
                snprintf(tmp, sizeof tmp, "\\U%08x", (unsigned)cp);
            ok = ct_buf_puts(b, tmp);
        } else
            ok = ct_buf_put(b, s + i, k);
        i += k;
    }
    return ok && ct_buf_putc(b, q);
}

static lt_status put_value(rctx *c, uint32_t pos, ct_buf *b, const value *v, bool repr, int depth) {
    if (depth > CT_MAX_VALUE_DEPTH)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "value nested deeper than %d levels",
                    CT_MAX_VALUE_DEPTH);
    char tmp[48];
    bool ok = true;
    switch ((vtype)v->t) {
    case V_UNDEF:
        ok = repr ? ct_buf_puts(b, "Undefined") : true;
        break;
    case V_NONE:
        ok = ct_buf_puts(b, "None");
        break;
    case V_BOOL:
        ok = ct_buf_puts(b, v->u.b ? "True" : "False");
        break;
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        ok = ct_buf_puts(b, tmp);
        break;
    case V_FLOAT:
        ct_fmt_float(v->u.f, false, tmp);
        ok = ct_buf_puts(b, tmp);
        break;
    case V_STR:
        ok = repr ? put_str_repr(b, v->u.s.p, v->u.s.n) : ct_buf_put(b, v->u.s.p, v->u.s.n);
        break;
    case V_LIST: {
        if (v->sub == L_GEN || v->sub == L_RANGE || v->sub == L_VIEW)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "printing a %s object", tname(v));
        bool tup = v->sub == L_TUPLE;
        ok = ct_buf_putc(b, tup ? '(' : '[');
        for (size_t i = 0; ok && i < v->u.l->n; i++) {
            if (i) ok = ct_buf_puts(b, ", ");
            TRY(put_value(c, pos, b, &v->u.l->v[i], true, depth + 1));
        }
        if (ok && tup && v->u.l->n == 1) ok = ct_buf_putc(b, ',');
        ok = ok && ct_buf_putc(b, tup ? ')' : ']');
        break;
    }
    case V_NS:
    case V_DICT: {
        if (v->t == V_NS) ok = ct_buf_puts(b, "<Namespace ");
        ok = ok && ct_buf_putc(b, '{');
        for (size_t i = 0; ok && i < v->u.d->n; i++) {
            if (i) ok = ct_buf_puts(b, ", ");
            TRY(put_value(c, pos, b, &v->u.d->k[i], true, depth + 1));
            ok = ok && ct_buf_puts(b, ": ");
            TRY(put_value(c, pos, b, &v->u.d->v[i], true, depth + 1));
        }
        ok = ok && ct_buf_putc(b, '}');
        if (v->t == V_NS) ok = ok && ct_buf_putc(b, '>');
        break;
    }
    case V_LOOP:
        snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", v->u.loop->index0 + 1,
                 v->u.loop->length);
        ok = ct_buf_puts(b, tmp);
        break;
    case V_MACRO:
        ok = ct_buf_puts(b, "<Macro ") &&
             put_str_repr(b, v->u.macro->node->s, strlen(v->u.macro->node->s)) &&
             ct_buf_putc(b, '>');
        break;
    case V_FUNC:
    case V_METHOD:
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "printing a function object");
    }
    if (!ok || b->failed) return memfail(c, pos);
    return LT_OK;
}

// str(v) as a value (strings are returned as they are)
static lt_status to_str(rctx *c, uint32_t pos, const value *v, value *out) {
    if (v->t == V_STR) {
        *out = *v;
        return LT_OK;
    }
    ct_buf b = {.a = &c->a};
    if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
    TRY(put_value(c, pos, &b, v, false, 0));
    *out = vstr(b.p, b.n);
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// json.dumps (transformers' tojson: ensure_ascii=False, indent=None, separators=None,
// sort_keys=False)

typedef struct jopts {
    bool ensure_ascii, sort_keys;
    const char *indent; // NULL: no newlines
    size_t indent_n;
    const char *item_sep, *key_sep;
    size_t item_sep_n, key_sep_n;
} jopts;

static bool json_str(ct_buf *b, const char *s, size_t n, bool ensure_ascii) {
    bool ok = ct_buf_putc(b, '"');
    for (size_t i = 0; i < n && ok;) {
        uint32_t cp;
        size_t k = ct_utf8_dec(s + i, n - i, &cp);
        char tmp[16];
        switch (cp) {
        case '"':
            ok = ct_buf_puts(b, "\\\"");
            break;
        case '\\':
            ok = ct_buf_puts(b, "\\\\");
            break;
        case '\n':
            ok = ct_buf_puts(b, "\\n");
            break;
        case '\r':
            ok = ct_buf_puts(b, "\\r");
            break;
        case '\t':
            ok = ct_buf_puts(b, "\\t");
            break;
        case '\b':
            ok = ct_buf_puts(b, "\\b");
            break;
        case '\f':
            ok = ct_buf_puts(b, "\\f");
            break;
        default:
            if (cp < 0x20 || (ensure_ascii && cp > 0x7e)) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", (unsigned)(0xd800 + (v >> 10)),
                             (unsigned)(0xdc00 + (v & 0x3ff)));
                } else {
                    snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp);
                }
                ok = ct_buf_puts(b, tmp);
            } else {
                ok = ct_buf_put(b, s + i, k);
            }
        }
        i += k;
    }
    return ok && ct_buf_putc(b, '"');
}

static bool json_newline(ct_buf *b, const jopts *o, int level) {
    if (!ct_buf_putc(b, '\n')) return false;
    for (int k = 0; k < level; k++)
        if (!ct_buf_put(b, o->indent, o->indent_n)) return false;
    return true;
}

static int vcmp_simple(const value *a, const value *b); // for sort_keys

static lt_status put_json(rctx *c, uint32_t pos, ct_buf *b, const value *v, const jopts *o,
                          int level) {
    if (level > CT_MAX_VALUE_DEPTH)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "value nested deeper than %d levels",
                    CT_MAX_VALUE_DEPTH);
    char tmp[48];
    bool ok = true;
    switch ((vtype)v->t) {
    case V_NONE:
        ok = ct_buf_puts(b, "null");
        break;
    case V_BOOL:
        ok = ct_buf_puts(b, v->u.b ? "true" : "false");
        break;
    case V_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
        ok = ct_buf_puts(b, tmp);
        break;
    case V_FLOAT:
        ct_fmt_float(v->u.f, true, tmp);
        ok = ct_buf_puts(b, tmp);
        break;
    case V_STR:
        ok = json_str(b, v->u.s.p, v->u.s.n, o->ensure_ascii);
        break;
    case V_LIST:
        if (v->sub != L_LIST && v->sub != L_TUPLE) goto bad;
        if (!v->u.l->n) {
            ok = ct_buf_puts(b, "[]");
            break;
        }
        ok = ct_buf_putc(b, '[');
        for (size_t i = 0; ok && i < v->u.l->n; i++) {
            if (i) ok = ct_buf_put(b, o->item_sep, o->item_sep_n);
            if (ok && o->indent) ok = json_newline(b, o, level + 1);
            if (ok) TRY(put_json(c, pos, b, &v->u.l->v[i], o, level + 1));
        }
        if (ok && o->indent) ok = json_newline(b, o, level);
        ok = ok && ct_buf_putc(b, ']');
        break;
    case V_DICT: {
        const vdict *d = v->u.d;
        if (!d->n) {
            ok = ct_buf_puts(b, "{}");
            break;
        }
        size_t *order = ct_alloc(&c->a, d->n * sizeof *order);
        if (!order) return memfail(c, pos);
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) { // insertion sort, stable; keys must be mutually comparable
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0; j--) {
                    int r = vcmp_simple(&d->k[order[j - 1]], &d->k[order[j]]);
                    if (r == 2)
                        return rerr(c, pos, LT_ERR_ARG,
                                    "tojson(sort_keys): keys of different types");
                    if (r <= 0) break;
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        }
        ok = ct_buf_putc(b, '{');
        for (size_t i = 0; ok && i < d->n; i++) {
            const value *k = &d->k[order[i]];
            if (i) ok = ct_buf_put(b, o->item_sep, o->item_sep_n);
            if (ok && o->indent) ok = json_newline(b, o, level + 1);
            if (!ok) break;
            if (k->t == V_STR)
                ok = json_str(b, k->u.s.p, k->u.s.n, o->ensure_ascii);
            else if (k->t == V_NONE || k->t == V_BOOL || k->t == V_INT || k->t == V_FLOAT) {
                // json.dumps turns these keys into strings: "null", "true", "1", "1.5"
                if (k->t == V_NONE)
                    strcpy(tmp, "null");
                else if (k->t == V_BOOL)
                    strcpy(tmp, k->u.b ? "true" : "false");
                else if (k->t == V_INT)
                    snprintf(tmp, sizeof tmp, "%lld", (long long)k->u.i);
                else
                    ct_fmt_float(k->u.f, true, tmp);
                ok = ct_buf_putc(b, '"') && ct_buf_puts(b, tmp) && ct_buf_putc(b, '"');
            } else {
                return rerr(c, pos, LT_ERR_ARG,
                            "tojson: keys must be str, int, float, bool or None, not %s", tname(k));
            }
            ok = ok && ct_buf_put(b, o->key_sep, o->key_sep_n);
            if (ok) TRY(put_json(c, pos, b, &d->v[order[i]], o, level + 1));
        }
        if (ok && o->indent) ok = json_newline(b, o, level);
        ok = ok && ct_buf_putc(b, '}');
        break;
    }
    default:
        goto bad;
    }
    if (!ok || b->failed) return memfail(c, pos);
    return LT_OK;
bad:
    if (v->t == V_UNDEF) return undef_err(c, pos, v);
    return rerr(c, pos, LT_ERR_ARG, "tojson: Object of type %s is not JSON serializable", tname(v));
}

// ---------------------------------------------------------------------------------------------
// equality, ordering, membership

static bool veq(const value *a, const value *b, int depth) {
    if (depth > CT_MAX_VALUE_DEPTH) return false;
    if (is_num(a) && is_num(b)) {
        if (a->t == V_FLOAT || b->t == V_FLOAT) return as_dbl(a) == as_dbl(b);
        return as_int(a) == as_int(b);
    }
    if (a->t != b->t) return false;
    switch ((vtype)a->t) {
    case V_UNDEF:
    case V_NONE:
        return true;
    case V_STR:
        return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    case V_LIST:
        if (a->sub == L_GEN || b->sub == L_GEN) return a->u.l == b->u.l;
        if (a->sub != b->sub || a->u.l->n != b->u.l->n) return false;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!veq(&a->u.l->v[i], &b->u.l->v[i], depth + 1)) return false;
        return true;
    case V_DICT:
        if (a->u.d->n != b->u.d->n) return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const value *o = dict_find(b->u.d, &a->u.d->k[i]);
            if (!o || !veq(&a->u.d->v[i], o, depth + 1)) return false;
        }
        return true;
    case V_NS:
        return a->u.d == b->u.d;
    case V_LOOP:
        return a->u.loop == b->u.loop;
    case V_FUNC:
        return a->u.fn == b->u.fn;
    case V_MACRO:
        return a->u.macro == b->u.macro;
    case V_METHOD:
        return a->u.m == b->u.m;
    default:
        return false;
    }
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
    int r = memcmp(a, b, an < bn ? an : bn); // UTF-8 byte order is code point order
    if (r) return r < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

// -1, 0, 1; 2 when the types cannot be ordered
static int vcmp_simple(const value *a, const value *b) {
    if (is_num(a) && is_num(b)) {
        if (a->t == V_FLOAT || b->t == V_FLOAT) {
            double x = as_dbl(a), y = as_dbl(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = as_int(a), y = as_int(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a->t == V_STR && b->t == V_STR) return cmp_bytes(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
    return 2;
}

// Python ordering (<, <=, >, >=); lists and tuples lexicographically
static lt_status vorder(rctx *c, uint32_t pos, const value *a, const value *b, int op, bool *res,
                        int depth) {
    if (a->t == V_UNDEF) return undef_err(c, pos, a);
    if (b->t == V_UNDEF) return undef_err(c, pos, b);
    if (depth > CT_MAX_VALUE_DEPTH)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "value nested deeper than %d levels",
                    CT_MAX_VALUE_DEPTH);
    static const char *const opname[] = {
        [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">="};
    int r = vcmp_simple(a, b);
    if (r == 2 && a->t == V_LIST && b->t == V_LIST && a->sub == b->sub &&
        (a->sub == L_LIST || a->sub == L_TUPLE)) {
        size_t i = 0;
        while (i < a->u.l->n && i < b->u.l->n && veq(&a->u.l->v[i], &b->u.l->v[i], 0)) i++;
        if (i < a->u.l->n && i < b->u.l->n)
            return vorder(c, pos, &a->u.l->v[i], &b->u.l->v[i], op, res, depth + 1);
        size_t an = a->u.l->n, bn = b->u.l->n;
        r = an < bn ? -1 : an > bn ? 1 : 0;
    }
    if (r == 2)
        return rerr(c, pos, LT_ERR_ARG, "'%s' not supported between instances of '%s' and '%s'",
                    opname[op], tname(a), tname(b));
    *res = op == OP_LT ? r < 0 : op == OP_LE ? r <= 0 : op == OP_GT ? r > 0 : r >= 0;
    return LT_OK;
}

static lt_status iterate(rctx *c, uint32_t pos, const value *v, const vlist **out);

// Python hash(): lists, dicts and tuples holding them are unhashable (dict keys, `in` a dict)
static bool hashable(const value *v, int depth) {
    if (v->t == V_DICT || (v->t == V_LIST && v->sub == L_LIST)) return false;
    if (v->t == V_LIST && v->sub == L_TUPLE && depth < CT_MAX_VALUE_DEPTH)
        for (size_t i = 0; i < v->u.l->n; i++)
            if (!hashable(&v->u.l->v[i], depth + 1)) return false;
    return true;
}

static lt_status vin(rctx *c, uint32_t pos, const value *x, const value *seq, bool *res) {
    switch ((vtype)seq->t) {
    case V_STR:
        if (x->t != V_STR) {
            if (x->t == V_UNDEF) return undef_err(c, pos, x);
            return rerr(c, pos, LT_ERR_ARG, "'in <string>' requires string as left operand, not %s",
                        tname(x));
        }
        *res = memfind(seq->u.s.p, seq->u.s.n, x->u.s.p, x->u.s.n) != NULL;
        return LT_OK;
    case V_LIST: {
        const vlist *items;
        TRY(iterate(c, pos, seq, &items));
        *res = false;
        for (size_t i = 0; i < items->n && !*res; i++) *res = veq(x, &items->v[i], 0);
        return LT_OK;
    }
    case V_DICT:
        if (!hashable(x, 0)) return rerr(c, pos, LT_ERR_ARG, "unhashable type: '%s'", tname(x));
        *res = dict_find(seq->u.d, x) != NULL;
        return LT_OK;
    case V_UNDEF:
        *res = false;
        return LT_OK; // iterating Undefined yields nothing
    default:
        return rerr(c, pos, LT_ERR_ARG, "argument of type '%s' is not iterable", tname(seq));
    }
}

// ---------------------------------------------------------------------------------------------
// iteration, attributes, items

// the items a for loop (or list(), join, ...) sees
static lt_status iterate(rctx *c, uint32_t pos, const value *v, const vlist **out) {
    static vlist empty = {0, NULL, NULL};
    switch ((vtype)v->t) {
    case V_LIST:
        if (v->u.l->fail) return rerr(c, pos, LT_ERR_ARG, "%s", v->u.l->fail);
        *out = v->u.l;
        return LT_OK;
    case V_UNDEF:
        *out = &empty;
        return LT_OK;
    case V_DICT: {
        vlist *l = new_list(c, v->u.d->n);
        if (!l) return memfail(c, pos);
        memcpy(l->v, v->u.d->k, v->u.d->n * sizeof(value));
        *out = l;
        return LT_OK;
    }
    case V_STR: {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n;
        vlist *l = new_list(c, cp_len(s, n));
        if (!l) return memfail(c, pos);
        size_t k = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t len = ct_utf8_dec(s + i, n - i, &cp);
            l->v[k++] = vstr(s + i, len);
            i += len;
        }
        *out = l;
        return LT_OK;
    }
    default:
        return rerr(c, pos, LT_ERR_ARG, "'%s' object is not iterable", tname(v));
    }
}

static bool is_str_method(const char *name) {
    static const char *const m[] = {
        "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
        "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
        "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
        "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
        "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
        "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
        "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
        "swapcase",     "title",       "translate", "upper",      "zfill"};
    for (size_t k = 0; k < sizeof m / sizeof *m; k++)
        if (!strcmp(m[k], name)) return true;
    return false;
}

static bool is_dict_method(const char *name) {
    static const char *const m[] = {"clear", "copy",    "fromkeys",   "get",    "items", "keys",
                                    "pop",   "popitem", "setdefault", "update", "values"};
    for (size_t k = 0; k < sizeof m / sizeof *m; k++)
        if (!strcmp(m[k], name)) return true;
    return false;
}

static bool is_list_method(const char *name) {
    static const char *const m[] = {"append", "clear", "copy",   "count",   "extend", "index",
                                    "insert", "pop",   "remove", "reverse", "sort"};
    for (size_t k = 0; k < sizeof m / sizeof *m; k++)
        if (!strcmp(m[k], name)) return true;
    return false;
}

static lt_status bind_method(rctx *c, uint32_t pos, const value *self, const char *name,
                             value *out) {
    bound *m = ct_alloc(&c->a, sizeof *m);
    if (!m) return memfail(c, pos);
    m->self = *self;
    m->name = name;
    value v = {.t = V_METHOD};
    v.u.m = m;
    *out = v;
    return LT_OK;
}

// sandboxed getattr(obj, name): a method, a key of a dict, or Undefined
static lt_status get_attr(rctx *c, uint32_t pos, const value *obj, const char *name, value *out) {
    if (obj->t == V_UNDEF) return undef_err(c, pos, obj);
    if (name[0] == '_') { // the sandbox hides every attribute starting with '_'
        if ((obj->t == V_DICT || obj->t == V_NS)) {
            const value *hit = dict_find_str(obj->u.d, name, strlen(name));
            if (hit && obj->t == V_DICT) {
                *out = *hit;
                return LT_OK;
            }
        }
        *out = vundef(name, tname(obj));
        return LT_OK;
    }
    switch ((vtype)obj->t) {
    case V_STR:
        if (is_str_method(name)) return bind_method(c, pos, obj, name, out);
        break;
    case V_DICT: {
        if (is_dict_method(name)) return bind_method(c, pos, obj, name, out);
        const value *hit = dict_find_str(obj->u.d, name, strlen(name));
        if (hit) {
            *out = *hit;
            return LT_OK;
        }
        break;
    }
    case V_NS: {
        const value *hit = dict_find_str(obj->u.d, name, strlen(name));
        if (hit) {
            *out = *hit;
            return LT_OK;
        }
        break;
    }
    case V_LIST:
        if (obj->sub != L_GEN && is_list_method(name)) return bind_method(c, pos, obj, name, out);
        break;
    case V_BOOL:
    case V_INT:
    case V_FLOAT: {
        // Python's number attributes exist (so jinja2 would not give Undefined); none is modelled
        static const char *const num_attrs[] = {
            "real",       "imag",      "numerator", "denominator", "conjugate",
            "bit_length", "bit_count", "to_bytes",  "from_bytes",  "as_integer_ratio",
            "is_integer", "hex",       "fromhex"};
        for (size_t k = 0; k < sizeof num_attrs / sizeof *num_attrs; k++)
            if (!strcmp(num_attrs[k], name))
                return rerr(c, pos, LT_ERR_UNSUPPORTED, "attribute %s.%s", tname(obj), name);
        break;
    }
    case V_LOOP: {
        const loopst *l = obj->u.loop;
        if (!strcmp(name, "index0"))
            *out = vint((int64_t)l->index0);
        else if (!strcmp(name, "index"))
            *out = vint((int64_t)l->index0 + 1);
        else if (!strcmp(name, "revindex0"))
            *out = vint((int64_t)(l->length - l->index0 - 1));
        else if (!strcmp(name, "revindex"))
            *out = vint((int64_t)(l->length - l->index0));
        else if (!strcmp(name, "first"))
            *out = vbool(l->index0 == 0);
        else if (!strcmp(name, "last"))
            *out = vbool(l->index0 + 1 == l->length);
        else if (!strcmp(name, "length"))
            *out = vint((int64_t)l->length);
        else if (!strcmp(name, "depth"))
            *out = vint(1);
        else if (!strcmp(name, "depth0"))
            *out = vint(0);
        else if (!strcmp(name, "previtem"))
            *out = l->index0 > 0 ? l->items->v[l->index0 - 1] : vundef("previtem", NULL);
        else if (!strcmp(name, "nextitem"))
            *out =
                l->index0 + 1 < l->length ? l->items->v[l->index0 + 1] : vundef("nextitem", NULL);
        else if (!strcmp(name, "cycle") || !strcmp(name, "changed"))
            return bind_method(c, pos, obj, name, out);
        else
            break;
        return LT_OK;
    }
    default:
        break;
    }
    *out = vundef(name, tname(obj));
    return LT_OK;
}

static bool py_index(const value *k, size_t n, size_t *at) {
    if (!is_intlike(k)) return false;
    int64_t i = as_int(k);
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *at = (size_t)i;
    return true;
}

// sandboxed getitem(obj, key): obj[key], else the attribute named key, else Undefined
static lt_status get_item(rctx *c, uint32_t pos, const value *obj, const value *key, value *out) {
    if (obj->t == V_UNDEF) return undef_err(c, pos, obj);
    size_t at;
    switch ((vtype)obj->t) {
    case V_LIST:
        if ((obj->sub == L_LIST || obj->sub == L_TUPLE || obj->sub == L_RANGE) &&
            py_index(key, obj->u.l->n, &at)) {
            *out = obj->u.l->v[at];
            return LT_OK;
        }
        break;
    case V_STR: {
        size_t n = cp_len(obj->u.s.p, obj->u.s.n);
        if (py_index(key, n, &at)) {
            size_t a = cp_off(obj->u.s.p, obj->u.s.n, at);
            size_t b = cp_off(obj->u.s.p + a, obj->u.s.n - a, 1);
            *out = vstr(obj->u.s.p + a, b);
            return LT_OK;
        }
        break;
    }
    case V_DICT: {
        const value *hit = dict_find(obj->u.d, key);
        if (hit) {
            *out = *hit;
            return LT_OK;
        }
        break;
    }
    default:
        break;
    }
    if (key->t == V_STR && !memchr(key->u.s.p, 0, key->u.s.n)) {
        char *name = cstr(c, key);
        if (!name) return memfail(c, pos);
        return get_attr(c, pos, obj, name, out);
    }
    *out = vundef(NULL, tname(obj));
    return LT_OK;
}

// obj[start:stop:step]. jinja2 compiles slices to a plain Python subscript (not the sandbox's
// getitem), so anything but a list, tuple or string, and indices other than ints and None, fail.
static lt_status get_slice(rctx *c, uint32_t pos, const value *obj, const value *bounds,
                           value *out) {
    if (obj->t == V_UNDEF) return undef_err(c, pos, obj);
    if (!((obj->t == V_LIST && obj->sub != L_GEN && obj->sub != L_VIEW) || obj->t == V_STR))
        return rerr(c, pos, LT_ERR_ARG, "'%s' object cannot be sliced", tname(obj));
    for (int k = 0; k < 3; k++) {
        if (bounds[k].t == V_UNDEF) return undef_err(c, pos, &bounds[k]);
        if (bounds[k].t != V_NONE && !is_intlike(&bounds[k]))
            return rerr(c, pos, LT_ERR_ARG, "slice indices must be integers or None");
    }
    int64_t stp = bounds[2].t == V_NONE ? 1 : as_int(&bounds[2]);
    if (stp == 0) return rerr(c, pos, LT_ERR_ARG, "slice step cannot be zero");
    if (stp == INT64_MIN) stp = -INT64_MAX;
    bool is_str = obj->t == V_STR;
    int64_t len = (int64_t)(is_str ? cp_len(obj->u.s.p, obj->u.s.n) : obj->u.l->n);
    int64_t start, stop;
    // PySlice_AdjustIndices
    if (bounds[0].t == V_NONE)
        start = stp < 0 ? len - 1 : 0;
    else {
        start = as_int(&bounds[0]);
        if (start < 0) {
            start = start < -len ? -len : start;
            start += len;
            if (start < 0) start = stp < 0 ? -1 : 0;
        } else if (start >= len)
            start = stp < 0 ? len - 1 : len;
    }
    if (bounds[1].t == V_NONE)
        stop = stp < 0 ? -1 : len;
    else {
        stop = as_int(&bounds[1]);
        if (stop < 0) {
            stop = stop < -len ? -len : stop;
            stop += len;
            if (stop < 0) stop = stp < 0 ? -1 : 0;
        } else if (stop >= len)
            stop = stp < 0 ? len - 1 : len;
    }
    int64_t cnt = 0;
    if (stp > 0 && stop > start) cnt = (stop - start - 1) / stp + 1;
    if (stp < 0 && stop < start) cnt = (start - stop - 1) / (-stp) + 1;
    if (is_str) {
        const char *s = obj->u.s.p;
        size_t n = obj->u.s.n;
        if (stp == 1) {
            size_t a = cp_off(s, n, (size_t)start);
            size_t b = cnt ? cp_off(s, n, (size_t)(start + cnt)) : a;
            *out = vstr(s + a, b - a);
            return LT_OK;
        }
        size_t *off = ct_alloc(&c->a, ((size_t)len + 1) * sizeof *off);
        char *o = ct_alloc(&c->a, n + 1);
        if (!off || !o) return memfail(c, pos);
        size_t k = 0;
        for (size_t i = 0; i < n; k++) {
            off[k] = i;
            i += cp_off(s + i, n - i, 1);
        }
        off[k] = n;
        size_t m = 0;
        for (int64_t j = 0, i = start; j < cnt; j++, i += stp) {
            size_t a = off[i], l = off[i + 1] - a;
            memcpy(o + m, s + a, l);
            m += l;
        }
        o[m] = 0;
        *out = vstr(o, m);
        return LT_OK;
    }
    vlist *l = new_list(c, (size_t)cnt);
    if (!l) return memfail(c, pos);
    for (int64_t j = 0, i = start; j < cnt; j++, i += stp) l->v[j] = obj->u.l->v[i];
    *out = vlistv(l, obj->sub == L_TUPLE ? L_TUPLE : L_LIST);
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// arithmetic

static lt_status overflow(rctx *c, uint32_t pos) {
    return rerr(c, pos, LT_ERR_UNSUPPORTED, "integer result does not fit 64 bits");
}

static lt_status repeat(rctx *c, uint32_t pos, const value *seq, int64_t times, value *out) {
    if (times < 0) times = 0;
    if (seq->t == V_STR) {
        size_t total;
        if (!lt_mul_ok(seq->u.s.n, (size_t)times, &total) || total > CT_MAX_RENDER_MEM)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "string repetition larger than %u MiB",
                        (unsigned)(CT_MAX_RENDER_MEM >> 20));
        char *o = ct_alloc(&c->a, total + 1);
        if (!o) return memfail(c, pos);
        for (int64_t k = 0; k < times; k++)
            memcpy(o + (size_t)k * seq->u.s.n, seq->u.s.p, seq->u.s.n);
        o[total] = 0;
        *out = vstr(o, total);
        return LT_OK;
    }
    size_t total;
    if (!lt_mul_ok(seq->u.l->n, (size_t)times, &total) || total > CT_MAX_RENDER_MEM / sizeof(value))
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "list repetition too large");
    vlist *l = new_list(c, total);
    if (!l) return memfail(c, pos);
    for (int64_t k = 0; seq->u.l->n && k < times; k++)
        memcpy(l->v + (size_t)k * seq->u.l->n, seq->u.l->v, seq->u.l->n * sizeof(value));
    *out = vlistv(l, seq->sub == L_TUPLE ? L_TUPLE : L_LIST);
    return LT_OK;
}

static lt_status binop(rctx *c, uint32_t pos, int op, const value *a, const value *b, value *out) {
    static const char *const opname[] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (op == OP_MOD && a->t == V_STR)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "printf-style string formatting with %%");
    if (a->t == V_UNDEF) return undef_err(c, pos, a);
    if (b->t == V_UNDEF) return undef_err(c, pos, b);
    if (is_num(a) && is_num(b)) {
        bool flt = a->t == V_FLOAT || b->t == V_FLOAT;
        if (!flt) {
            int64_t x = as_int(a), y = as_int(b), r;
            switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r)) return overflow(c, pos);
                *out = vint(r);
                return LT_OK;
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r)) return overflow(c, pos);
                *out = vint(r);
                return LT_OK;
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r)) return overflow(c, pos);
                *out = vint(r);
                return LT_OK;
            case OP_DIV:
                if (y == 0) return rerr(c, pos, LT_ERR_ARG, "division by zero");
                *out = vflt((double)x / (double)y);
                return LT_OK;
            case OP_FLOORDIV:
            case OP_MOD: {
                if (y == 0) return rerr(c, pos, LT_ERR_ARG, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) return overflow(c, pos);
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) q--, m += y;
                *out = vint(op == OP_MOD ? m : q);
                return LT_OK;
            }
            case OP_POW:
                if (y >= 0) {
                    int64_t acc = 1, base = x;
                    for (int64_t e = y; e; e >>= 1) {
                        if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                            return overflow(c, pos);
                        if ((e >> 1) && __builtin_mul_overflow(base, base, &base))
                            return overflow(c, pos);
                    }
                    *out = vint(acc);
                    return LT_OK;
                }
                if (x == 0)
                    return rerr(c, pos, LT_ERR_ARG, "0.0 cannot be raised to a negative power");
                *out = vflt(pow((double)x, (double)y));
                return LT_OK;
            }
        }
        double x = as_dbl(a), y = as_dbl(b);
        switch (op) {
        case OP_ADD:
            *out = vflt(x + y);
            return LT_OK;
        case OP_SUB:
            *out = vflt(x - y);
            return LT_OK;
        case OP_MUL:
            *out = vflt(x * y);
            return LT_OK;
        case OP_DIV:
            if (y == 0) return rerr(c, pos, LT_ERR_ARG, "float division by zero");
            *out = vflt(x / y);
            return LT_OK;
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0) return rerr(c, pos, LT_ERR_ARG, "float modulo");
            // CPython float_divmod
            double mod = fmod(x, y), div = (x - mod) / y, fl;
            if (mod != 0) {
                if ((y < 0) != (mod < 0)) mod += y, div -= 1.0;
            } else {
                mod = copysign(0.0, y);
            }
            if (div != 0) {
                fl = floor(div);
                if (div - fl > 0.5) fl += 1.0;
            } else {
                fl = copysign(0.0, x / y);
            }
            *out = vflt(op == OP_MOD ? mod : fl);
            return LT_OK;
        }
        case OP_POW:
            if (x == 0 && y < 0)
                return rerr(c, pos, LT_ERR_ARG, "0.0 cannot be raised to a negative power");
            if (x < 0 && y != floor(y))
                return rerr(c, pos, LT_ERR_UNSUPPORTED, "complex result of **");
            *out = vflt(pow(x, y));
            return LT_OK;
        }
    }
    if (op == OP_ADD && a->t == V_STR && b->t == V_STR) {
        size_t n;
        if (!lt_add_ok(a->u.s.n, b->u.s.n, &n)) return memfail(c, pos);
        char *o = ct_alloc(&c->a, n + 1);
        if (!o) return memfail(c, pos);
        memcpy(o, a->u.s.p, a->u.s.n);
        memcpy(o + a->u.s.n, b->u.s.p, b->u.s.n);
        o[n] = 0;
        *out = vstr(o, n);
        return LT_OK;
    }
    if (op == OP_ADD && a->t == V_LIST && b->t == V_LIST && a->sub == b->sub &&
        (a->sub == L_LIST || a->sub == L_TUPLE)) {
        vlist *l = new_list(c, a->u.l->n + b->u.l->n);
        if (!l) return memfail(c, pos);
        if (a->u.l->n) memcpy(l->v, a->u.l->v, a->u.l->n * sizeof(value));
        if (b->u.l->n) memcpy(l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof(value));
        *out = vlistv(l, a->sub);
        return LT_OK;
    }
    if (op == OP_MUL) {
        const value *seq = (a->t == V_STR || a->t == V_LIST) ? a : b, *k = seq == a ? b : a;
        if ((seq->t == V_STR ||
             (seq->t == V_LIST && (seq->sub == L_LIST || seq->sub == L_TUPLE))) &&
            is_intlike(k))
            return repeat(c, pos, seq, as_int(k), out);
    }
    return type_err(c, pos, opname[op], a, b);
}

// ---------------------------------------------------------------------------------------------
// calls: arguments

typedef struct args {
    value *pos;
    int npos;
    const char **kwn;
    value *kwv;
    int nkw;
} args;

static lt_status eval(rctx *c, const ct_node *n, value *out);

static lt_status eval_args(rctx *c, const ct_node *n, args *a) {
    memset(a, 0, sizeof *a);
    if (n->n) {
        if (!(a->pos = ct_alloc(&c->a, (size_t)n->n * sizeof(value)))) return memfail(c, n->pos);
        for (int i = 0; i < n->n; i++) TRY(eval(c, n->items[i], &a->pos[i]));
    }
    if (n->n2) {
        if (!(a->kwv = ct_alloc(&c->a, (size_t)n->n2 * sizeof(value)))) return memfail(c, n->pos);
        for (int i = 0; i < n->n2; i++) TRY(eval(c, n->items2[i], &a->kwv[i]));
    }
    a->npos = n->n;
    a->kwn = n->names;
    a->nkw = n->n2;
    return LT_OK;
}

#define NOARG 0xff // value.t of a parameter the call did not give

// Binds a (from positional argument `skip` on) to params; slots of missing ones get t=NOARG.
static lt_status bind(rctx *c, uint32_t pos, const char *what, const args *a, int skip,
                      const char *const *params, int np, value *slots) {
    for (int i = 0; i < np; i++) slots[i].t = NOARG;
    int npos = a->npos - skip;
    if (npos > np)
        return rerr(c, pos, LT_ERR_ARG, "%s takes at most %d argument%s (%d given)", what, np,
                    np == 1 ? "" : "s", npos);
    for (int i = 0; i < npos; i++) slots[i] = a->pos[skip + i];
    for (int k = 0; k < a->nkw; k++) {
        int i = 0;
        while (i < np && strcmp(params[i], a->kwn[k])) i++;
        if (i == np)
            return rerr(c, pos, LT_ERR_ARG, "%s got an unexpected keyword argument '%.60s'", what,
                        a->kwn[k]);
        if (slots[i].t != NOARG)
            return rerr(c, pos, LT_ERR_ARG, "%s got multiple values for argument '%s'", what,
                        params[i]);
        slots[i] = a->kwv[k];
    }
    return LT_OK;
}

static lt_status need_str(rctx *c, uint32_t pos, const char *what, const value *v) {
    if (v->t == V_STR) return LT_OK;
    if (v->t == V_UNDEF) return undef_err(c, pos, v);
    return rerr(c, pos, LT_ERR_ARG, "%s: expected a string, got %s", what, tname(v));
}

static lt_status need_int(rctx *c, uint32_t pos, const char *what, const value *v) {
    if (is_intlike(v)) return LT_OK;
    if (v->t == V_UNDEF) return undef_err(c, pos, v);
    return rerr(c, pos, LT_ERR_ARG, "%s: expected an integer, got %s", what, tname(v));
}

// ---------------------------------------------------------------------------------------------
// string methods and other methods

static lt_status call_value(rctx *c, uint32_t pos, const value *f, const args *a, value *out);

static int64_t cp_index_of(const value *s, const char *hit) {
    return (int64_t)cp_len(s->u.s.p, (size_t)(hit - s->u.s.p));
}

static lt_status str_method(rctx *c, uint32_t pos, const value *s, const char *name, const args *a,
                            value *out) {
    value p[3];
    char what[48];
    snprintf(what, sizeof what, "str.%s()", name);
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        static const char *const prm[] = {"chars"};
        TRY(bind(c, pos, what, a, 0, prm, 1, p));
        const value *chars = (p[0].t == NOARG || p[0].t == V_NONE) ? NULL : &p[0];
        if (chars) TRY(need_str(c, pos, what, chars));
        *out = py_strip(s, chars, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        return LT_OK;
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (a->npos != 1 || a->nkw)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s with start/end arguments", what);
        const value *x = &a->pos[0];
        const vlist one = {1, (value *)x, NULL};
        const vlist *cands = &one;
        if (x->t == V_LIST && x->sub == L_TUPLE) cands = x->u.l;
        bool hit = false;
        for (size_t i = 0; i < cands->n; i++) {
            const value *pre = &cands->v[i];
            if (pre->t != V_STR)
                return rerr(c, pos, LT_ERR_ARG,
                            "%s first arg must be str or a tuple of str, not %s", what, tname(pre));
            if (pre->u.s.n <= s->u.s.n &&
                !memcmp(name[0] == 's' ? s->u.s.p : s->u.s.p + s->u.s.n - pre->u.s.n, pre->u.s.p,
                        pre->u.s.n))
                hit = true;
        }
        *out = vbool(hit);
        return LT_OK;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        static const char *const prm[] = {"sep", "maxsplit"};
        TRY(bind(c, pos, what, a, 0, prm, 2, p));
        const value *sep = (p[0].t == NOARG || p[0].t == V_NONE) ? NULL : &p[0];
        if (sep) TRY(need_str(c, pos, what, sep));
        int64_t maxsplit = -1;
        if (p[1].t != NOARG) {
            TRY(need_int(c, pos, what, &p[1]));
            maxsplit = as_int(&p[1]);
        }
        if (maxsplit < 0) maxsplit = -1;
        return py_split(c, pos, s, sep, maxsplit, name[0] == 'r', out);
    }
    if (!strcmp(name, "splitlines")) {
        static const char *const prm[] = {"keepends"};
        TRY(bind(c, pos, what, a, 0, prm, 1, p));
        return py_splitlines(c, pos, s, p[0].t != NOARG && truthy(&p[0]), out);
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        TRY(bind(c, pos, what, a, 0, NULL, 0, p));
        int how = name[0] == 'l'   ? TX_LOWER
                  : name[0] == 'u' ? TX_UPPER
                  : name[0] == 't' ? TX_PYTITLE
                                   : TX_CAPITALIZE;
        return recase(c, pos, s, how, out);
    }
    if (!strcmp(name, "replace")) {
        static const char *const prm[] = {"old", "new", "count"};
        TRY(bind(c, pos, what, a, 0, prm, 3, p));
        if (p[0].t == NOARG || p[1].t == NOARG)
            return rerr(c, pos, LT_ERR_ARG, "%s needs old and new", what);
        TRY(need_str(c, pos, what, &p[0]));
        TRY(need_str(c, pos, what, &p[1]));
        int64_t count = -1;
        if (p[2].t != NOARG) {
            TRY(need_int(c, pos, what, &p[2]));
            count = as_int(&p[2]);
        }
        if (count < 0) count = -1;
        return py_replace(c, pos, s, &p[0], &p[1], count, out);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") ||
        !strcmp(name, "rindex") || !strcmp(name, "count")) {
        if (a->npos != 1 || a->nkw)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s with start/end arguments", what);
        TRY(need_str(c, pos, what, &a->pos[0]));
        const value *sub = &a->pos[0];
        if (!strcmp(name, "count")) {
            int64_t k = 0;
            if (!sub->u.s.n)
                k = (int64_t)cp_len(s->u.s.p, s->u.s.n) + 1;
            else
                for (const char *h = s->u.s.p, *e = s->u.s.p + s->u.s.n;
                     (h = memfind(h, (size_t)(e - h), sub->u.s.p, sub->u.s.n)); h += sub->u.s.n)
                    k++;
            *out = vint(k);
            return LT_OK;
        }
        bool rev = name[0] == 'r';
        const char *hit = rev ? memrfind(s->u.s.p, s->u.s.n, sub->u.s.p, sub->u.s.n)
                              : memfind(s->u.s.p, s->u.s.n, sub->u.s.p, sub->u.s.n);
        if (!hit && (!strcmp(name, "index") || !strcmp(name, "rindex")))
            return rerr(c, pos, LT_ERR_ARG, "%s: substring not found", what);
        *out = vint(hit ? cp_index_of(s, hit) : -1);
        return LT_OK;
    }
    if (!strcmp(name, "join")) {
        if (a->npos != 1 || a->nkw) return rerr(c, pos, LT_ERR_ARG, "%s takes one argument", what);
        const vlist *items;
        TRY(iterate(c, pos, &a->pos[0], &items));
        ct_buf b = {.a = &c->a};
        if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != V_STR)
                return rerr(c, pos, LT_ERR_ARG,
                            "sequence item %zu: expected str instance, %s found", i,
                            tname(&items->v[i]));
            if ((i && !ct_buf_put(&b, s->u.s.p, s->u.s.n)) ||
                !ct_buf_put(&b, items->v[i].u.s.p, items->v[i].u.s.n))
                return memfail(c, pos);
        }
        *out = vstr(b.p, b.n);
        return LT_OK;
    }
    if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        if (a->npos != 1 || a->nkw) return rerr(c, pos, LT_ERR_ARG, "%s takes one argument", what);
        TRY(need_str(c, pos, what, &a->pos[0]));
        const value *x = &a->pos[0];
        *out = *s;
        if (x->u.s.n <= s->u.s.n) {
            if (name[6] == 'p' && !memcmp(s->u.s.p, x->u.s.p, x->u.s.n))
                *out = vstr(s->u.s.p + x->u.s.n, s->u.s.n - x->u.s.n);
            if (name[6] == 's' && !memcmp(s->u.s.p + s->u.s.n - x->u.s.n, x->u.s.p, x->u.s.n))
                *out = vstr(s->u.s.p, s->u.s.n - x->u.s.n);
        }
        return LT_OK;
    }
    if (!strcmp(name, "isspace")) {
        TRY(bind(c, pos, what, a, 0, NULL, 0, p));
        bool all = s->u.s.n > 0;
        for (size_t i = 0; i < s->u.s.n && all;) {
            uint32_t cp;
            i += ct_utf8_dec(s->u.s.p + i, s->u.s.n - i, &cp);
            all = ct_py_isspace(cp);
        }
        *out = vbool(all);
        return LT_OK;
    }
    return rerr(c, pos, LT_ERR_UNSUPPORTED, "string method %s", what);
}

static lt_status call_method(rctx *c, uint32_t pos, const value *self, const char *name,
                             const args *a, value *out) {
    value p[2];
    char what[48];
    snprintf(what, sizeof what, "%s.%s()", tname(self), name);
    if (self->t == V_STR) return str_method(c, pos, self, name, a, out);
    if (self->t == V_DICT) {
        const vdict *d = self->u.d;
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            TRY(bind(c, pos, what, a, 0, NULL, 0, p));
            vlist *l = new_list(c, d->n);
            if (!l) return memfail(c, pos);
            for (size_t i = 0; i < d->n; i++) {
                if (name[0] == 'k')
                    l->v[i] = d->k[i];
                else if (name[0] == 'v')
                    l->v[i] = d->v[i];
                else {
                    vlist *pair = new_list(c, 2);
                    if (!pair) return memfail(c, pos);
                    pair->v[0] = d->k[i];
                    pair->v[1] = d->v[i];
                    l->v[i] = vlistv(pair, L_TUPLE);
                }
            }
            *out = vlistv(l, L_VIEW);
            return LT_OK;
        }
        if (!strcmp(name, "get")) {
            if (a->npos < 1 || a->npos > 2 || a->nkw)
                return rerr(c, pos, LT_ERR_ARG, "dict.get() takes 1 or 2 arguments");
            if (!hashable(&a->pos[0], 0))
                return rerr(c, pos, LT_ERR_ARG, "unhashable type: '%s'", tname(&a->pos[0]));
            const value *hit = dict_find(d, &a->pos[0]);
            *out = hit ? *hit : a->npos == 2 ? a->pos[1] : vnone();
            return LT_OK;
        }
    }
    if (self->t == V_LOOP && !strcmp(name, "cycle")) {
        if (a->npos == 0 || a->nkw) return rerr(c, pos, LT_ERR_ARG, "no items for cycling given");
        *out = a->pos[self->u.loop->index0 % (size_t)a->npos];
        return LT_OK;
    }
    return rerr(c, pos, LT_ERR_UNSUPPORTED, "method %s", what);
}

// ---------------------------------------------------------------------------------------------
// global functions and macros

static lt_status exec_body(rctx *c, ct_node *const *body, int n);

static lt_status capture(rctx *c, ct_node *const *body, int n, value *out) {
    ct_buf b = {.a = &c->a}, *saved = c->out;
    if (!ct_buf_put(&b, "", 0)) return memfail(c, n ? body[0]->pos : 0);
    c->out = &b;
    lt_status st = exec_body(c, body, n);
    c->out = saved;
    if (st) return st;
    *out = vstr(b.p, b.n);
    return LT_OK;
}

static frame *new_frame(rctx *c, frame *parent) {
    frame *f = ct_alloc(&c->a, sizeof *f);
    if (f) *f = (frame){.parent = parent};
    return f;
}

static lt_status call_macro(rctx *c, uint32_t pos, const closure *cl, const args *a, value *out) {
    const ct_node *m = cl->node;
    if (c->macro_depth >= CT_MAX_MACRO_DEPTH)
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "macro calls nested deeper than %d",
                    CT_MAX_MACRO_DEPTH);
    int np = m->n_names;
    value *slots = ct_alloc(&c->a, (size_t)(np ? np : 1) * sizeof *slots);
    if (!slots) return memfail(c, pos);
    char what[80];
    snprintf(what, sizeof what, "macro '%.60s'", m->s);
    TRY(bind(c, pos, what, a, 0, m->names, np, slots));
    frame *fr = new_frame(c, cl->env), *saved = c->f;
    if (!fr) return memfail(c, pos);
    c->f = fr;
    c->macro_depth++;
    lt_status st = LT_OK;
    for (int i = 0; i < np && !st; i++) {
        value v = slots[i];
        if (v.t == NOARG) {
            int d = i - (np - m->n2); // defaults belong to the last n2 parameters
            if (d >= 0)
                st = eval(c, m->items2[d], &v);
            else
                v = vundef(m->names[i], NULL);
        }
        if (!st) st = fset(c, fr, m->names[i], v, pos);
    }
    if (!st) st = capture(c, m->items, m->n, out);
    c->macro_depth--;
    c->f = saved;
    return st;
}

static lt_status kwargs_dict(rctx *c, uint32_t pos, const char *what, const args *a, bool ns,
                             value *out) {
    if (a->npos > 1)
        return rerr(c, pos, LT_ERR_ARG, "%s takes at most one positional argument", what);
    vdict *d = new_dict(c, (size_t)(a->nkw + 4));
    if (!d) return memfail(c, pos);
    if (a->npos == 1) {
        const value *src = &a->pos[0];
        if (src->t != V_DICT && src->t != V_NS)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s from a %s", what, tname(src));
        for (size_t i = 0; i < src->u.d->n; i++)
            if (!dict_set(c, d, src->u.d->k[i], src->u.d->v[i])) return memfail(c, pos);
    }
    for (int k = 0; k < a->nkw; k++)
        if (!dict_set(c, d, vstr(a->kwn[k], strlen(a->kwn[k])), a->kwv[k])) return memfail(c, pos);
    if (ns)
        for (size_t i = 0; i < d->n; i++)
            if (d->k[i].t == V_STR && d->k[i].u.s.n && d->k[i].u.s.p[0] == '_')
                return rerr(c, pos, LT_ERR_ARG,
                            "chat templates cannot store underscore-prefixed attributes on a "
                            "namespace");
    value v = {.t = (uint8_t)(ns ? V_NS : V_DICT)};
    v.u.d = d;
    *out = v;
    return LT_OK;
}

static lt_status call_func(rctx *c, uint32_t pos, int fn, const args *a, value *out) {
    switch (fn) {
    case FN_RAISE: {
        value msg = a->npos ? a->pos[0] : vstr("", 0);
        TRY(to_str(c, pos, &msg, &msg));
        int line, col;
        ct_line_col(c->t, pos, &line, &col);
        return lt_err_set(c->err, LT_ERR_ARG, "chat template %d:%d: raise_exception: %.*s", line,
                          col, (int)(msg.u.s.n > 200 ? 200 : msg.u.s.n), msg.u.s.p);
    }
    case FN_NAMESPACE:
        return kwargs_dict(c, pos, "namespace()", a, true, out);
    case FN_DICT:
        return kwargs_dict(c, pos, "dict()", a, false, out);
    case FN_RANGE: {
        if (a->nkw || a->npos < 1 || a->npos > 3)
            return rerr(c, pos, LT_ERR_ARG, "range() takes 1 to 3 integer arguments");
        for (int i = 0; i < a->npos; i++) TRY(need_int(c, pos, "range()", &a->pos[i]));
        int64_t start = 0, stop, stp = 1;
        if (a->npos == 1)
            stop = as_int(&a->pos[0]);
        else
            start = as_int(&a->pos[0]), stop = as_int(&a->pos[1]);
        if (a->npos == 3) stp = as_int(&a->pos[2]);
        if (stp == 0) return rerr(c, pos, LT_ERR_ARG, "range() arg 3 must not be zero");
        double cnt_d =
            stp > 0 ? (stop > start ? ceil(((double)stop - (double)start) / (double)stp) : 0)
                    : (stop < start ? ceil(((double)start - (double)stop) / (double)-stp) : 0);
        if (cnt_d > CT_MAX_RANGE)
            return rerr(c, pos, LT_ERR_ARG, "range too big, maximum size for range is %d",
                        CT_MAX_RANGE);
        size_t cnt = (size_t)cnt_d;
        vlist *l = new_list(c, cnt);
        if (!l) return memfail(c, pos);
        for (size_t i = 0; i < cnt; i++) l->v[i] = vint(start + (int64_t)i * stp);
        *out = vlistv(l, L_RANGE);
        return LT_OK;
    }
    case FN_STRFTIME: {
        if (a->npos != 1 || a->nkw) return rerr(c, pos, LT_ERR_ARG, "strftime_now(format)");
        TRY(need_str(c, pos, "strftime_now()", &a->pos[0]));
        char *fmt = cstr(c, &a->pos[0]), buf[512];
        if (!fmt) return memfail(c, pos);
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        size_t n = strftime(buf, sizeof buf, fmt, &tmv);
        if (n == 0 && fmt[0])
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "strftime_now: result longer than 511 bytes");
        size_t bad;
        if (!ct_utf8_valid(buf, n, &bad))
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "strftime_now: the locale gave invalid UTF-8");
        char *o = ct_strndup(&c->a, buf, n);
        if (!o) return memfail(c, pos);
        *out = vstr(o, n);
        return LT_OK;
    }
    default: {
        static const char *const names[] = {
            [FN_CYCLER] = "cycler", [FN_JOINER] = "joiner", [FN_LIPSUM] = "lipsum"};
        return rerr(c, pos, LT_ERR_UNSUPPORTED, "global function %s()", names[fn]);
    }
    }
}

static lt_status call_value(rctx *c, uint32_t pos, const value *f, const args *a, value *out) {
    switch ((vtype)f->t) {
    case V_FUNC:
        return call_func(c, pos, f->u.fn, a, out);
    case V_MACRO:
        return call_macro(c, pos, f->u.macro, a, out);
    case V_METHOD:
        return call_method(c, pos, &f->u.m->self, f->u.m->name, a, out);
    case V_UNDEF:
        return undef_err(c, pos, f);
    default:
        return rerr(c, pos, LT_ERR_ARG, "'%s' object is not callable", tname(f));
    }
}

// ---------------------------------------------------------------------------------------------
// tests

static lt_status apply_test(rctx *c, uint32_t pos, int id, const value *v, const args *a,
                            bool *res) {
    const char *name = ct_test_names[id];
    int want = 0;
    switch (id) {
    case T_DIVISIBLEBY:
    case T_EQ:
    case T_EQUALTO:
    case T_EQ2:
    case T_GE:
    case T_GE2:
    case T_GREATERTHAN:
    case T_GT:
    case T_GT2:
    case T_IN:
    case T_LE:
    case T_LE2:
    case T_LESSTHAN:
    case T_LT:
    case T_LT2:
    case T_NE:
    case T_NE2:
    case T_SAMEAS:
        want = 1;
        break;
    default:
        break;
    }
    if (a->npos != want || a->nkw)
        return rerr(c, pos, LT_ERR_ARG, "test '%s' takes %d argument%s", name, want,
                    want == 1 ? "" : "s");
    const value *x = want ? &a->pos[0] : NULL;
    switch (id) {
    case T_BOOLEAN:
        *res = v->t == V_BOOL;
        return LT_OK;
    case T_CALLABLE: // Undefined has a __call__ (that raises)
        *res = v->t == V_FUNC || v->t == V_MACRO || v->t == V_METHOD || v->t == V_UNDEF;
        return LT_OK;
    case T_DEFINED:
        *res = v->t != V_UNDEF;
        return LT_OK;
    case T_UNDEFINED:
        *res = v->t == V_UNDEF;
        return LT_OK;
    case T_NONE:
        *res = v->t == V_NONE;
        return LT_OK;
    case T_TRUE:
        *res = v->t == V_BOOL && v->u.b;
        return LT_OK;
    case T_FALSE:
        *res = v->t == V_BOOL && !v->u.b;
        return LT_OK;
    case T_STRING:
        *res = v->t == V_STR;
        return LT_OK;
    case T_NUMBER:
        *res = is_num(v);
        return LT_OK;
    case T_INTEGER:
        *res = v->t == V_INT;
        return LT_OK;
    case T_FLOAT:
        *res = v->t == V_FLOAT;
        return LT_OK;
    case T_MAPPING:
        *res = v->t == V_DICT;
        return LT_OK;
    case T_ITERABLE:
        *res =
            v->t == V_STR || v->t == V_LIST || v->t == V_DICT || v->t == V_UNDEF || v->t == V_LOOP;
        return LT_OK;
    case T_SEQUENCE: // len() and __getitem__
        *res = v->t == V_STR || v->t == V_DICT || v->t == V_UNDEF ||
               (v->t == V_LIST && v->sub != L_GEN && v->sub != L_VIEW);
        return LT_OK;
    case T_EQ:
    case T_EQUALTO:
    case T_EQ2:
        *res = veq(v, x, 0);
        return LT_OK;
    case T_NE:
    case T_NE2:
        *res = !veq(v, x, 0);
        return LT_OK;
    case T_LT:
    case T_LT2:
    case T_LESSTHAN:
        return vorder(c, pos, v, x, OP_LT, res, 0);
    case T_LE:
    case T_LE2:
        return vorder(c, pos, v, x, OP_LE, res, 0);
    case T_GT:
    case T_GT2:
    case T_GREATERTHAN:
        return vorder(c, pos, v, x, OP_GT, res, 0);
    case T_GE:
    case T_GE2:
        return vorder(c, pos, v, x, OP_GE, res, 0);
    case T_IN:
        return vin(c, pos, v, x, res);
    case T_SAMEAS:
        // Python identity, approximated: None/True/False are singletons, ints -5..256 are
        // cached, strings and containers are the same object when they share storage
        switch ((vtype)v->t) {
        case V_NONE:
        case V_BOOL:
            *res = veq(v, x, 0) && v->t == x->t;
            break;
        case V_INT:
            *res = x->t == V_INT && v->u.i == x->u.i && v->u.i >= -5 && v->u.i <= 256;
            break;
        case V_STR:
            *res = x->t == V_STR && v->u.s.p == x->u.s.p && v->u.s.n == x->u.s.n;
            break;
        case V_LIST:
            *res = x->t == V_LIST && v->u.l == x->u.l;
            break;
        case V_DICT:
        case V_NS:
            *res = x->t == v->t && v->u.d == x->u.d;
            break;
        default:
            *res = x->t == v->t && veq(v, x, 0) && v->t != V_UNDEF;
            break;
        }
        return LT_OK;
    case T_ODD:
    case T_EVEN:
    case T_DIVISIBLEBY: {
        value two = vint(2), m;
        TRY(binop(c, pos, OP_MOD, v, id == T_DIVISIBLEBY ? x : &two, &m));
        *res = id == T_ODD ? veq(&m, &(value){.t = V_INT, .u.i = 1}, 0)
                           : veq(&m, &(value){.t = V_INT, .u.i = 0}, 0);
        return LT_OK;
    }
    case T_LOWER:
    case T_UPPER: {
        value s;
        TRY(to_str(c, pos, v, &s));
        bool cased = false, ok = true;
        for (size_t i = 0; i < s.u.s.n && ok;) {
            uint32_t cp;
            i += ct_utf8_dec(s.u.s.p + i, s.u.s.n - i, &cp);
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
            if (cat == UTF8PROC_CATEGORY_LT)
                ok = false;
            else if (cat == UTF8PROC_CATEGORY_LU) {
                cased = true;
                if (id == T_LOWER) ok = false;
            } else if (cat == UTF8PROC_CATEGORY_LL) {
                cased = true;
                if (id == T_UPPER) ok = false;
            }
        }
        *res = ok && cased;
        return LT_OK;
    }
    }
    return rerr(c, pos, LT_ERR_UNSUPPORTED, "test '%s'", name);
}

// ---------------------------------------------------------------------------------------------
// filters

static lt_status apply_filter(rctx *c, uint32_t pos, int id, const value *v, const args *a,
                              int skip, value *out);

// select/reject/selectattr/rejectattr/map (jinja2 filters.py select_or_reject, do_map)
static lt_status filter_select(rctx *c, uint32_t pos, int id, const value *v, const args *a,
                               int skip, value *out) {
    const vlist *items;
    TRY(iterate(c, pos, v, &items));
    bool attr_mode = id == F_SELECTATTR || id == F_REJECTATTR;
    bool reject = id == F_REJECT || id == F_REJECTATTR;
    const char *fname = ct_filter_names[id];
    if (a->nkw) return rerr(c, pos, LT_ERR_UNSUPPORTED, "keyword arguments to %s", fname);
    int k = skip;
    const value *attr = NULL;
    if (attr_mode) {
        if (k >= a->npos) return rerr(c, pos, LT_ERR_ARG, "%s: missing attribute name", fname);
        attr = &a->pos[k++];
        if (attr->t != V_STR)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s with a non-string attribute", fname);
        if (memchr(attr->u.s.p, '.', attr->u.s.n))
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s with a dotted attribute", fname);
    }
    int test = -1;
    if (k < a->npos) {
        TRY(need_str(c, pos, fname, &a->pos[k]));
        char *tn = cstr(c, &a->pos[k]);
        if (!tn) return memfail(c, pos);
        if ((test = ct_lookup_test(tn)) < 0)
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "%s: test '%.60s'", fname, tn);
        k++;
    }
    args targs = {.pos = k < a->npos ? a->pos + k : NULL, .npos = a->npos - k};
    lbuf l = {0};
    for (size_t i = 0; i < items->n; i++) {
        TRY(step(c, pos));
        value x = items->v[i];
        if (attr) TRY(get_item(c, pos, &items->v[i], attr, &x));
        bool keep;
        if (test >= 0)
            TRY(apply_test(c, pos, test, &x, &targs, &keep));
        else
            keep = truthy(&x);
        if (keep != reject && !lb_push(c, &l, items->v[i])) return memfail(c, pos);
    }
    return lb_done(c, pos, &l, L_GEN, out);
}

static lt_status filter_map(rctx *c, uint32_t pos, const value *v, const args *a, value *out) {
    const vlist *items;
    TRY(iterate(c, pos, v, &items));
    lbuf l = {0};
    if (a->npos == 0) { // map(attribute='x'[, default=...])
        const value *attr = NULL, *dflt = NULL;
        for (int k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kwn[k], "attribute"))
                attr = &a->kwv[k];
            else if (!strcmp(a->kwn[k], "default"))
                dflt = &a->kwv[k];
            else
                return rerr(c, pos, LT_ERR_ARG, "map: unexpected keyword argument '%.60s'",
                            a->kwn[k]);
        }
        if (!attr) return rerr(c, pos, LT_ERR_ARG, "map: no filter or attribute given");
        if (attr->t == V_STR && memchr(attr->u.s.p, '.', attr->u.s.n))
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "map with a dotted attribute");
        for (size_t i = 0; i < items->n; i++) {
            value x;
            TRY(get_item(c, pos, &items->v[i], attr, &x));
            if (x.t == V_UNDEF && dflt) x = *dflt;
            if (!lb_push(c, &l, x)) return memfail(c, pos);
        }
        return lb_done(c, pos, &l, L_GEN, out);
    }
    TRY(need_str(c, pos, "map", &a->pos[0]));
    char *fname = cstr(c, &a->pos[0]);
    if (!fname) return memfail(c, pos);
    int id = ct_lookup_filter(fname);
    if (id < 0) return rerr(c, pos, LT_ERR_UNSUPPORTED, "map: filter '%.60s'", fname);
    for (size_t i = 0; i < items->n; i++) {
        value x;
        TRY(step(c, pos));
        TRY(apply_filter(c, pos, id, &items->v[i], a, 1, &x));
        if (!lb_push(c, &l, x)) return memfail(c, pos);
    }
    return lb_done(c, pos, &l, L_GEN, out);
}

static lt_status filter_tojson(rctx *c, uint32_t pos, const value *v, const value *p, value *out) {
    // p: ensure_ascii, indent, separators, sort_keys
    jopts o = {.item_sep = ", ", .key_sep = ": ", .item_sep_n = 2, .key_sep_n = 2};
    if (p[0].t != NOARG) o.ensure_ascii = truthy(&p[0]);
    if (p[3].t != NOARG) o.sort_keys = truthy(&p[3]);
    char *spaces = NULL;
    if (p[1].t != NOARG && p[1].t != V_NONE) {
        if (is_intlike(&p[1])) {
            int64_t k = as_int(&p[1]);
            if (k < 0) k = 0;
            if (k > 1000) return rerr(c, pos, LT_ERR_UNSUPPORTED, "tojson: indent above 1000");
            if (!(spaces = ct_alloc(&c->a, (size_t)k + 1))) return memfail(c, pos);
            memset(spaces, ' ', (size_t)k);
            o.indent = spaces;
            o.indent_n = (size_t)k;
        } else if (p[1].t == V_STR) {
            o.indent = p[1].u.s.p;
            o.indent_n = p[1].u.s.n;
        } else {
            return rerr(c, pos, LT_ERR_UNSUPPORTED, "tojson: indent of type %s", tname(&p[1]));
        }
        o.item_sep = ",";
        o.item_sep_n = 1;
    }
    if (p[2].t != NOARG && p[2].t != V_NONE) {
        const value *s = &p[2];
        if (s->t != V_LIST || s->sub == L_GEN || s->u.l->n != 2 || s->u.l->v[0].t != V_STR ||
            s->u.l->v[1].t != V_STR)
            return rerr(c, pos, LT_ERR_ARG, "tojson: separators must be a pair of strings");
        o.item_sep = s->u.l->v[0].u.s.p;
        o.item_sep_n = s->u.l->v[0].u.s.n;
        o.key_sep = s->u.l->v[1].u.s.p;
        o.key_sep_n = s->u.l->v[1].u.s.n;
    }
    ct_buf b = {.a = &c->a};
    if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
    TRY(put_json(c, pos, &b, v, &o, 0));
    *out = vstr(b.p, b.n);
    return LT_OK;
}

// int(s, base) of Python for the common forms: optional sign, digits with single underscores,
// surrounding whitespace; base 10 or 0/2/8/16 prefixes
static bool parse_pyint(const char *s, size_t n, int64_t base, int64_t *out) {
    value sv = py_strip(&(value){.t = V_STR, .u.s = {s, n}}, NULL, 3);
    const char *p = sv.u.s.p, *e = p + sv.u.s.n;
    bool neg = false;
    if (p < e && (*p == '+' || *p == '-')) neg = *p++ == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (e - p > 2 && p[0] == '0') {
            char x = (char)(p[1] | 0x20);
            int64_t b = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
            if (b && (base == 0 || base == b)) base = b, p += 2;
        }
        if (base == 0) base = 10;
    }
    if (base < 2 || base > 36 || p >= e || *p == '_') return false;
    uint64_t v = 0;
    bool prev_us = false;
    for (; p < e; p++) {
        if (*p == '_') {
            if (prev_us) return false;
            prev_us = true;
            continue;
        }
        prev_us = false;
        int d = (*p >= '0' && *p <= '9')                     ? *p - '0'
                : ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ? (*p | 0x20) - 'a' + 10
                                                             : 99;
        if (d >= base) return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
        if (v > (uint64_t)INT64_MAX + 1) return false;
    }
    if (prev_us) return false;
    if (!neg && v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_pyfloat(const char *s, size_t n, double *out) {
    value sv = py_strip(&(value){.t = V_STR, .u.s = {s, n}}, NULL, 3);
    if (!sv.u.s.n || sv.u.s.n > 64 || memchr(sv.u.s.p, '_', sv.u.s.n)) return false;
    char buf[72];
    memcpy(buf, sv.u.s.p, sv.u.s.n);
    buf[sv.u.s.n] = 0;
    if (strchr(buf, 'x') || strchr(buf, 'X')) return false; // strtod reads hex, Python does not
    char *end;
    *out = strtod(buf, &end);
    return *end == 0;
}

static lt_status apply_filter(rctx *c, uint32_t pos, int id, const value *v, const args *a,
                              int skip, value *out) {
    const char *fname = ct_filter_names[id];
    value p[4];
    switch ((ct_filter_id)id) {
    case F_MAP: {
        args sub = *a;
        if (skip) sub.pos += skip; // (skip <= npos) never offsets a NULL pointer
        sub.npos -= skip;
        return filter_map(c, pos, v, &sub, out);
    }
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
        return filter_select(c, pos, id, v, a, skip, out);
    default:
        break;
    }
    static const char *const prm_default[] = {"default_value", "boolean"};
    static const char *const prm_indent[] = {"width", "first", "blank"};
    static const char *const prm_int[] = {"default", "base"};
    static const char *const prm_join[] = {"d", "attribute"};
    static const char *const prm_replace[] = {"old", "new", "count"};
    static const char *const prm_tojson[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    static const char *const prm_trim[] = {"chars"};
    static const char *const prm_float[] = {"default"};
    const char *const *prm = NULL;
    int np = 0;
    switch ((ct_filter_id)id) {
    case F_DEFAULT:
    case F_D:
        prm = prm_default, np = 2;
        break;
    case F_INDENT:
        prm = prm_indent, np = 3;
        break;
    case F_INT:
        prm = prm_int, np = 2;
        break;
    case F_FLOAT:
        prm = prm_float, np = 1;
        break;
    case F_JOIN:
        prm = prm_join, np = 2;
        break;
    case F_REPLACE:
        prm = prm_replace, np = 3;
        break;
    case F_TOJSON:
        prm = prm_tojson, np = 4;
        break;
    case F_TRIM:
        prm = prm_trim, np = 1;
        break;
    default:
        break;
    }
    char what[40];
    snprintf(what, sizeof what, "filter '%s'", fname);
    TRY(bind(c, pos, what, a, skip, prm, np, p));
    switch ((ct_filter_id)id) {
    case F_ABS:
        if (v->t == V_FLOAT)
            *out = vflt(fabs(v->u.f));
        else if (is_intlike(v)) {
            int64_t x = as_int(v);
            if (x == INT64_MIN) return overflow(c, pos);
            *out = vint(x < 0 ? -x : x);
        } else
            return type_err(c, pos, "abs()", v, NULL);
        return LT_OK;
    case F_CAPITALIZE:
    case F_LOWER:
    case F_UPPER:
    case F_TITLE: {
        value s;
        TRY(to_str(c, pos, v, &s));
        int how = id == F_CAPITALIZE ? TX_CAPITALIZE
                  : id == F_LOWER    ? TX_LOWER
                  : id == F_UPPER    ? TX_UPPER
                                     : TX_JTITLE;
        return recase(c, pos, &s, how, out);
    }
    case F_COUNT:
    case F_LENGTH:
        switch ((vtype)v->t) {
        case V_STR:
            *out = vint((int64_t)cp_len(v->u.s.p, v->u.s.n));
            return LT_OK;
        case V_LIST:
            if (v->sub == L_GEN) break;
            *out = vint((int64_t)v->u.l->n);
            return LT_OK;
        case V_DICT:
            *out = vint((int64_t)v->u.d->n);
            return LT_OK;
        case V_UNDEF:
            *out = vint(0);
            return LT_OK;
        case V_LOOP:
            *out = vint((int64_t)v->u.loop->length);
            return LT_OK;
        default:
            break;
        }
        return rerr(c, pos, LT_ERR_ARG, "object of type '%s' has no len()", tname(v));
    case F_DEFAULT:
    case F_D: {
        bool boolean = p[1].t != NOARG && truthy(&p[1]);
        if (v->t == V_UNDEF || (boolean && !truthy(v)))
            *out = p[0].t == NOARG ? vstr("", 0) : p[0];
        else
            *out = *v;
        return LT_OK;
    }
    case F_FIRST:
    case F_LAST: {
        if (id == F_LAST && v->t == V_LIST && v->sub == L_GEN)
            return rerr(c, pos, LT_ERR_ARG, "'generator' object is not reversible");
        const vlist *items;
        TRY(iterate(c, pos, v, &items));
        if (!items->n)
            *out = vundef(NULL, NULL);
        else
            *out = items->v[id == F_FIRST ? 0 : items->n - 1];
        return LT_OK;
    }
    case F_FLOAT: {
        double d = 0;
        if (v->t == V_UNDEF) return undef_err(c, pos, v); // Undefined.__float__ raises
        value dflt = p[0].t == NOARG ? vflt(0.0) : p[0];
        if (is_num(v))
            *out = vflt(as_dbl(v));
        else if (v->t == V_STR && parse_pyfloat(v->u.s.p, v->u.s.n, &d))
            *out = vflt(d);
        else
            *out = dflt;
        return LT_OK;
    }
    case F_INT: {
        value dflt = p[0].t == NOARG ? vint(0) : p[0];
        int64_t base = 10, r;
        if (v->t == V_UNDEF) return undef_err(c, pos, v); // Undefined.__int__ raises
        if (p[1].t != NOARG) {
            TRY(need_int(c, pos, what, &p[1]));
            base = as_int(&p[1]);
        }
        if (is_intlike(v))
            *out = vint(as_int(v));
        else if (v->t == V_FLOAT) {
            if (!(v->u.f > -9.2e18 && v->u.f < 9.2e18)) {
                if (isnan(v->u.f) || isinf(v->u.f))
                    *out = dflt;
                else
                    return overflow(c, pos);
            } else
                *out = vint((int64_t)v->u.f);
        } else if (v->t == V_STR) {
            double d;
            if (parse_pyint(v->u.s.p, v->u.s.n, base, &r))
                *out = vint(r);
            else if (parse_pyfloat(v->u.s.p, v->u.s.n, &d) && !isnan(d) && !isinf(d)) {
                if (!(d > -9.2e18 && d < 9.2e18)) return overflow(c, pos);
                *out = vint((int64_t)d);
            } else
                *out = dflt;
        } else
            *out = dflt;
        return LT_OK;
    }
    case F_INDENT: {
        value s, ind;
        TRY(to_str(c, pos, v, &s));
        if (p[0].t == NOARG)
            ind = vstr("    ", 4);
        else if (p[0].t == V_STR)
            ind = p[0];
        else {
            TRY(need_int(c, pos, what, &p[0]));
            TRY(repeat(c, pos, &(value){.t = V_STR, .u.s = {" ", 1}}, as_int(&p[0]), &ind));
        }
        bool first = p[1].t != NOARG && truthy(&p[1]), blank = p[2].t != NOARG && truthy(&p[2]);
        // s += "\n"; lines = s.splitlines()
        ct_buf t = {.a = &c->a};
        if (!ct_buf_put(&t, s.u.s.p, s.u.s.n) || !ct_buf_putc(&t, '\n')) return memfail(c, pos);
        value lines;
        TRY(py_splitlines(c, pos, &(value){.t = V_STR, .u.s = {t.p, t.n}}, false, &lines));
        ct_buf b = {.a = &c->a};
        bool ok = ct_buf_put(&b, "", 0);
        if (first) ok = ok && ct_buf_put(&b, ind.u.s.p, ind.u.s.n);
        for (size_t i = 0; ok && i < lines.u.l->n; i++) {
            const value *ln = &lines.u.l->v[i];
            if (i) {
                ok = ct_buf_putc(&b, '\n');
                if (blank || ln->u.s.n) ok = ok && ct_buf_put(&b, ind.u.s.p, ind.u.s.n);
            }
            ok = ok && ct_buf_put(&b, ln->u.s.p, ln->u.s.n);
        }
        if (!ok) return memfail(c, pos);
        *out = vstr(b.p, b.n);
        return LT_OK;
    }
    case F_ITEMS: {
        if (v->t == V_UNDEF) {
            lbuf l = {0};
            return lb_done(c, pos, &l, L_GEN, out);
        }
        if (v->t != V_DICT) { // do_items is a generator: it raises only when iterated
            vlist *l = new_list(c, 0);
            if (!l) return memfail(c, pos);
            l->fail = "Can only get item pairs from a mapping.";
            *out = vlistv(l, L_GEN);
            return LT_OK;
        }
        args none = {0};
        TRY(call_method(c, pos, v, "items", &none, out));
        out->sub = L_GEN;
        return LT_OK;
    }
    case F_JOIN: {
        const vlist *items;
        TRY(iterate(c, pos, v, &items));
        value sep = vstr("", 0);
        if (p[0].t != NOARG) TRY(to_str(c, pos, &p[0], &sep));
        ct_buf b = {.a = &c->a};
        if (!ct_buf_put(&b, "", 0)) return memfail(c, pos);
        for (size_t i = 0; i < items->n; i++) {
            value x = items->v[i];
            if (p[1].t != NOARG) {
                if (p[1].t == V_STR && memchr(p[1].u.s.p, '.', p[1].u.s.n))
                    return rerr(c, pos, LT_ERR_UNSUPPORTED, "join with a dotted attribute");
                TRY(get_item(c, pos, &items->v[i], &p[1], &x));
            }
            if (i && !ct_buf_put(&b, sep.u.s.p, sep.u.s.n)) return memfail(c, pos);
            TRY(put_value(c, pos, &b, &x, false, 0));
        }
        *out = vstr(b.p, b.n);
        return LT_OK;
    }
    case F_LIST: {
        const vlist *items;
        TRY(iterate(c, pos, v, &items));
        vlist *l = new_list(c, items->n);
        if (!l) return memfail(c, pos);
        if (items->n) memcpy(l->v, items->v, items->n * sizeof(value));
        *out = vlistv(l, L_LIST);
        return LT_OK;
    }
    case F_REPLACE: {
        value s, o, nw;
        if (p[0].t == NOARG || p[1].t == NOARG)
            return rerr(c, pos, LT_ERR_ARG, "filter 'replace' needs old and new");
        TRY(to_str(c, pos, v, &s));
        TRY(to_str(c, pos, &p[0], &o));
        TRY(to_str(c, pos, &p[1], &nw));
        int64_t count = -1;
        if (p[2].t != NOARG && p[2].t != V_NONE) {
            TRY(need_int(c, pos, what, &p[2]));
            count = as_int(&p[2]);
        }
        if (count < 0) count = -1;
        return py_replace(c, pos, &s, &o, &nw, count, out);
    }
    case F_REVERSE: {
        if (v->t == V_STR) {
            value none = vnone(), b3[3] = {none, none, vint(-1)};
            return get_slice(c, pos, v, b3, out);
        }
        const vlist *items;
        TRY(iterate(c, pos, v, &items)); // Undefined: reversed() of an empty sequence
        vlist *l = new_list(c, items->n);
        if (!l) return memfail(c, pos);
        for (size_t i = 0; i < items->n; i++) l->v[i] = items->v[items->n - 1 - i];
        *out = vlistv(l, L_GEN); // reversed() is an iterator
        return LT_OK;
    }
    case F_STRING:
        return to_str(c, pos, v, out);
    case F_TOJSON:
        return filter_tojson(c, pos, v, p, out);
    case F_TRIM: {
        value s;
        TRY(to_str(c, pos, v, &s));
        const value *chars = (p[0].t == NOARG || p[0].t == V_NONE) ? NULL : &p[0];
        if (chars) TRY(need_str(c, pos, what, chars));
        *out = py_strip(&s, chars, 3);
        return LT_OK;
    }
    default:
        break;
    }
    return rerr(c, pos, LT_ERR_UNSUPPORTED, "filter '%s'", fname);
}

// ---------------------------------------------------------------------------------------------
// expressions

static lt_status eval_inner(rctx *c, const ct_node *n, value *out) {
    value a, b;
    switch ((ct_kind)n->kind) {
    case N_STR:
        *out = vstr(n->s, n->slen);
        return LT_OK;
    case N_INT:
        *out = vint(n->i);
        return LT_OK;
    case N_FLOAT:
        *out = vflt(n->f);
        return LT_OK;
    case N_BOOL:
        *out = vbool(n->i != 0);
        return LT_OK;
    case N_NONE:
        *out = vnone();
        return LT_OK;
    case N_BLOCKVAL:
        *out = c->blockval;
        return LT_OK;
    case N_LIST: {
        vlist *l = new_list(c, (size_t)n->n);
        if (!l) return memfail(c, n->pos);
        for (int i = 0; i < n->n; i++) TRY(eval(c, n->items[i], &l->v[i]));
        *out = vlistv(l, n->op ? L_TUPLE : L_LIST);
        return LT_OK;
    }
    case N_DICT: {
        vdict *d = new_dict(c, (size_t)n->n);
        if (!d) return memfail(c, n->pos);
        for (int i = 0; i < n->n; i++) {
            TRY(eval(c, n->items[i], &a));
            TRY(eval(c, n->items2[i], &b));
            if (!hashable(&a, 0))
                return rerr(c, n->items[i]->pos, LT_ERR_ARG, "unhashable type: '%s'", tname(&a));
            if (a.t == V_UNDEF) return undef_err(c, n->items[i]->pos, &a);
            if (!dict_set(c, d, a, b)) return memfail(c, n->pos);
        }
        value v = {.t = V_DICT};
        v.u.d = d;
        *out = v;
        return LT_OK;
    }
    case N_NAME:
        *out = lookup(c, n->s);
        return LT_OK;
    case N_GETATTR:
        TRY(eval(c, n->a, &a));
        return get_attr(c, n->pos, &a, n->s, out);
    case N_GETITEM:
        TRY(eval(c, n->a, &a));
        if (n->b->kind == N_SLICE) {
            value bounds[3];
            for (int k = 0; k < 3; k++) {
                bounds[k] = vnone();
                if (n->b->items[k]) TRY(eval(c, n->b->items[k], &bounds[k]));
            }
            return get_slice(c, n->pos, &a, bounds, out);
        }
        TRY(eval(c, n->b, &b));
        return get_item(c, n->pos, &a, &b, out);
    case N_CALL: {
        args ar;
        TRY(eval(c, n->a, &a));
        TRY(eval_args(c, n, &ar));
        return call_value(c, n->pos, &a, &ar, out);
    }
    case N_FILTER: {
        args ar;
        TRY(eval(c, n->a, &a));
        TRY(eval_args(c, n, &ar));
        return apply_filter(c, n->pos, n->id, &a, &ar, 0, out);
    }
    case N_TEST: {
        args ar;
        bool r;
        TRY(eval(c, n->a, &a));
        TRY(eval_args(c, n, &ar));
        TRY(apply_test(c, n->pos, n->id, &a, &ar, &r));
        *out = vbool(r);
        return LT_OK;
    }
    case N_NEG:
    case N_POS:
        TRY(eval(c, n->a, &a));
        if (a.t == V_UNDEF) return undef_err(c, n->pos, &a);
        if (a.t == V_FLOAT)
            *out = vflt(n->kind == N_NEG ? -a.u.f : a.u.f);
        else if (is_intlike(&a)) {
            int64_t x = as_int(&a);
            if (n->kind == N_NEG && x == INT64_MIN) return overflow(c, n->pos);
            *out = vint(n->kind == N_NEG ? -x : x);
        } else
            return type_err(c, n->pos, n->kind == N_NEG ? "unary -" : "unary +", &a, NULL);
        return LT_OK;
    case N_NOT:
        TRY(eval(c, n->a, &a));
        *out = vbool(!truthy(&a));
        return LT_OK;
    case N_BIN:
        TRY(eval(c, n->a, &a));
        TRY(eval(c, n->b, &b));
        return binop(c, n->pos, n->op, &a, &b, out);
    case N_CONCAT: {
        ct_buf buf = {.a = &c->a};
        if (!ct_buf_put(&buf, "", 0)) return memfail(c, n->pos);
        for (int i = 0; i < n->n; i++) {
            TRY(eval(c, n->items[i], &a));
            TRY(put_value(c, n->pos, &buf, &a, false, 0));
        }
        *out = vstr(buf.p, buf.n);
        return LT_OK;
    }
    case N_AND:
        TRY(eval(c, n->a, &a));
        if (!truthy(&a)) {
            *out = a;
            return LT_OK;
        }
        return eval(c, n->b, out);
    case N_OR:
        TRY(eval(c, n->a, &a));
        if (truthy(&a)) {
            *out = a;
            return LT_OK;
        }
        return eval(c, n->b, out);
    case N_COMPARE: {
        TRY(eval(c, n->a, &a));
        bool r = true;
        for (int i = 0; i < n->n && r; i++) {
            TRY(eval(c, n->items[i], &b));
            switch (n->ops[i]) {
            case OP_EQ:
                r = veq(&a, &b, 0);
                break;
            case OP_NE:
                r = !veq(&a, &b, 0);
                break;
            case OP_IN:
                TRY(vin(c, n->pos, &a, &b, &r));
                break;
            case OP_NOTIN:
                TRY(vin(c, n->pos, &a, &b, &r));
                r = !r;
                break;
            default:
                TRY(vorder(c, n->pos, &a, &b, n->ops[i], &r, 0));
                break;
            }
            a = b;
        }
        *out = vbool(r);
        return LT_OK;
    }
    case N_COND:
        TRY(eval(c, n->a, &a));
        if (truthy(&a)) return eval(c, n->b, out);
        if (n->c) return eval(c, n->c, out);
        *out = vundef(NULL, NULL);
        return LT_OK;
    default:
        break;
    }
    return rerr(c, n->pos, LT_ERR_UNSUPPORTED, "expression kind %d", n->kind);
}

static lt_status eval(rctx *c, const ct_node *n, value *out) {
    TRY(step(c, n->pos));
    if (++c->depth > CT_MAX_EVAL_DEPTH) {
        c->depth--;
        return rerr(c, n->pos, LT_ERR_UNSUPPORTED, "expression nested deeper than %d levels",
                    CT_MAX_EVAL_DEPTH);
    }
    lt_status st = eval_inner(c, n, out);
    c->depth--;
    return st;
}

// ---------------------------------------------------------------------------------------------
// statements

static lt_status unpack(rctx *c, uint32_t pos, frame *f, const char *const *names, int n,
                        bool tuple, const value *v) {
    if (!tuple) return fset(c, f, names[0], *v, pos);
    const vlist *items;
    if (v->t == V_UNDEF) return undef_err(c, pos, v);
    if (v->t == V_LIST || v->t == V_STR)
        TRY(iterate(c, pos, v, &items));
    else
        return rerr(c, pos, LT_ERR_ARG, "cannot unpack non-iterable %s object", tname(v));
    if (items->n != (size_t)n)
        return rerr(c, pos, LT_ERR_ARG, "%s values to unpack (expected %d, got %zu)",
                    items->n < (size_t)n ? "not enough" : "too many", n, items->n);
    for (int i = 0; i < n; i++) TRY(fset(c, f, names[i], items->v[i], pos));
    return LT_OK;
}

static lt_status apply_block_filter(rctx *c, const ct_node *chain, value body, value *out) {
    if (!chain) {
        *out = body;
        return LT_OK;
    }
    value saved = c->blockval;
    c->blockval = body;
    lt_status st = eval(c, chain, out);
    c->blockval = saved;
    return st;
}

static lt_status exec_for(rctx *c, const ct_node *n) {
    value itv;
    TRY(eval(c, n->a, &itv));
    const vlist *items;
    TRY(iterate(c, n->a->pos, &itv, &items));
    frame *fr = new_frame(c, c->f), *saved = c->f;
    lt_status st = LT_OK;
    if (!fr) return memfail(c, n->pos);
    c->f = fr;
    if (n->b) { // for x in xs if cond: the filtered items make up the loop (loop.length etc.)
        lbuf kept = {0};
        for (size_t i = 0; i < items->n && !st; i++) {
            value ok;
            fr->n = 0;
            if (!(st = unpack(c, n->pos, fr, n->names, n->n_names, n->op == 1, &items->v[i])) &&
                !(st = eval(c, n->b, &ok)) && truthy(&ok) && !lb_push(c, &kept, items->v[i]))
                st = memfail(c, n->pos);
        }
        if (!st) {
            vlist *l = ct_alloc(&c->a, sizeof *l);
            if (!l)
                st = memfail(c, n->pos);
            else {
                l->n = kept.n;
                l->v = kept.v;
                items = l;
            }
        }
    }
    loopst *ls = st ? NULL : ct_alloc(&c->a, sizeof *ls);
    if (!st && !ls) st = memfail(c, n->pos);
    if (!st) {
        ls->length = items->n;
        ls->items = items;
        value lv = {.t = V_LOOP};
        lv.u.loop = ls;
        for (size_t i = 0; i < items->n; i++) {
            if ((st = step(c, n->pos))) break;
            fr->n = 0; // each iteration starts from a fresh scope, as in jinja2
            ls->index0 = i;
            if ((st = fset(c, fr, "loop", lv, n->pos))) break;
            if ((st = unpack(c, n->pos, fr, n->names, n->n_names, n->op == 1, &items->v[i]))) break;
            if ((st = exec_body(c, n->items, n->n))) break;
            if (c->ctl == CTL_BREAK) {
                c->ctl = CTL_NONE;
                break;
            }
            c->ctl = CTL_NONE;
        }
    }
    c->f = saved;
    if (!st && items->n == 0 && n->n2) st = exec_body(c, n->items2, n->n2);
    return st;
}

static lt_status exec_node(rctx *c, const ct_node *n) {
    value v;
    switch ((ct_kind)n->kind) {
    case N_TEXT:
        if (!ct_buf_put(c->out, n->s, n->slen)) return memfail(c, n->pos);
        return LT_OK;
    case N_OUTPUT:
        TRY(eval(c, n->a, &v));
        return put_value(c, n->pos, c->out, &v, false, 0);
    case N_IF:
        TRY(eval(c, n->a, &v));
        if (truthy(&v)) return exec_body(c, n->items, n->n);
        return exec_body(c, n->items2, n->n2);
    case N_FOR:
        return exec_for(c, n);
    case N_SET:
    case N_SETBLOCK:
        if (n->kind == N_SET)
            TRY(eval(c, n->a, &v));
        else {
            value body;
            TRY(capture(c, n->items, n->n, &body));
            TRY(apply_block_filter(c, n->c, body, &v));
        }
        if (n->op == 2) { // ns.attr = v
            value ns = lookup(c, n->s);
            if (ns.t != V_NS)
                return rerr(c, n->pos, LT_ERR_ARG,
                            "cannot assign attribute on non-namespace object '%.60s'", n->s);
            if (n->names[0][0] == '_')
                return rerr(c, n->pos, LT_ERR_ARG,
                            "chat templates cannot store underscore-prefixed attributes on a "
                            "namespace");
            if (!dict_set(c, ns.u.d, vstr(n->names[0], strlen(n->names[0])), v))
                return memfail(c, n->pos);
            return LT_OK;
        }
        return unpack(c, n->pos, c->f, n->names, n->n_names, n->op == 1, &v);
    case N_MACRO: {
        closure *cl = ct_alloc(&c->a, sizeof *cl);
        if (!cl) return memfail(c, n->pos);
        cl->node = n;
        cl->env = c->f;
        value m = {.t = V_MACRO};
        m.u.macro = cl;
        return fset(c, c->f, n->s, m, n->pos);
    }
    case N_BREAK:
        c->ctl = CTL_BREAK;
        return LT_OK;
    case N_CONTINUE:
        c->ctl = CTL_CONTINUE;
        return LT_OK;
    case N_WITH: {
        frame *fr = new_frame(c, c->f), *saved = c->f;
        value *vals = ct_alloc(&c->a, (size_t)(n->n2 ? n->n2 : 1) * sizeof *vals);
        if (!vals) return memfail(c, n->pos);
        for (int i = 0; i < n->n2; i++) TRY(eval(c, n->items2[i], &vals[i]));
        if (!fr) return memfail(c, n->pos);
        for (int i = 0; i < n->n_names; i++) TRY(fset(c, fr, n->names[i], vals[i], n->pos));
        c->f = fr;
        lt_status st = exec_body(c, n->items, n->n);
        c->f = saved;
        return st;
    }
    case N_FILTERBLOCK: {
        if (!n->c) return exec_body(c, n->items, n->n); // {% generation %}
        value body;
        TRY(capture(c, n->items, n->n, &body));
        TRY(apply_block_filter(c, n->c, body, &v));
        return put_value(c, n->pos, c->out, &v, false, 0);
    }
    default:
        break;
    }
    return rerr(c, n->pos, LT_ERR_UNSUPPORTED, "statement kind %d", n->kind);
}

static lt_status exec_body(rctx *c, ct_node *const *body, int n) {
    for (int i = 0; i < n; i++) {
        TRY(step(c, body[i]->pos));
        if (++c->depth > CT_MAX_EVAL_DEPTH) {
            c->depth--;
            return rerr(c, body[i]->pos, LT_ERR_UNSUPPORTED, "blocks nested deeper than %d levels",
                        CT_MAX_EVAL_DEPTH);
        }
        lt_status st = exec_node(c, body[i]);
        c->depth--;
        if (st) return st;
        if (c->ctl) return LT_OK;
    }
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// API

static lt_status check_text(lt_err *err, const char *what, int idx, const char *s) {
    size_t bad;
    if (!ct_utf8_valid(s, strlen(s), &bad)) {
        if (idx >= 0)
            return lt_err_set(err, LT_ERR_ARG,
                              "chat template: message %d: %s is not valid UTF-8 "
                              "(byte %zu)",
                              idx, what, bad);
        return lt_err_set(err, LT_ERR_ARG, "chat template: %s is not valid UTF-8 (byte %zu)", what,
                          bad);
    }
    return LT_OK;
}

lt_status lt_chat_template_render(const lt_chat_template *t, const lt_chat_msg *msgs, int n_msgs,
                                  const lt_chat_vars *v, char **out, size_t *out_len, lt_err *err) {
    if (!t || !out || n_msgs < 0 || (n_msgs > 0 && !msgs) ||
        (v && v->n_extra > 0 && (!v->extra_keys || !v->extra_vals)) || (v && v->n_extra < 0))
        return lt_err_set(err, LT_ERR_ARG, "chat template: bad arguments to render");
    for (int i = 0; i < n_msgs; i++) {
        if (!msgs[i].role)
            return lt_err_set(err, LT_ERR_ARG, "chat template: message %d has no role", i);
        TRY(check_text(err, "role", i, msgs[i].role));
        if (msgs[i].content) TRY(check_text(err, "content", i, msgs[i].content));
    }
    if (v) {
        if (v->bos_token) TRY(check_text(err, "bos_token", -1, v->bos_token));
        if (v->eos_token) TRY(check_text(err, "eos_token", -1, v->eos_token));
        for (int i = 0; i < v->n_extra; i++) {
            if (!v->extra_keys[i])
                return lt_err_set(err, LT_ERR_ARG, "chat template: extra variable %d has no name",
                                  i);
            TRY(check_text(err, v->extra_keys[i], -1, v->extra_keys[i]));
            if (v->extra_vals[i]) TRY(check_text(err, v->extra_keys[i], -1, v->extra_vals[i]));
        }
    }
    lt_err scratch;
    rctx c = {.t = t, .err = err ? err : &scratch};
    c.a.limit = CT_MAX_RENDER_MEM;
    frame root = {0};
    ct_buf ob = {.a = &c.a};
    c.f = &root;
    c.out = &ob;
    lt_status st = LT_OK;
    vlist *ml = new_list(&c, (size_t)n_msgs);
    if (!ml || !ct_buf_put(&ob, "", 0)) {
        st = memfail(&c, 0);
        goto done;
    }
    for (int i = 0; i < n_msgs; i++) {
        vdict *d = new_dict(&c, 2);
        if (!d) {
            st = memfail(&c, 0);
            goto done;
        }
        d->k[0] = vstr("role", 4);
        d->v[0] = vstr(msgs[i].role, strlen(msgs[i].role));
        d->k[1] = vstr("content", 7);
        d->v[1] = msgs[i].content ? vstr(msgs[i].content, strlen(msgs[i].content)) : vnone();
        d->n = 2;
        ml->v[i] = (value){.t = V_DICT, .u.d = d};
    }
    if ((st = fset(&c, &root, "messages", vlistv(ml, L_LIST), 0)) ||
        (st = fset(&c, &root, "tools", vnone(), 0)) ||
        (st = fset(&c, &root, "documents", vnone(), 0)) ||
        (st = fset(&c, &root, "add_generation_prompt", vbool(v && v->add_generation_prompt), 0)))
        goto done;
    if (v && v->bos_token &&
        (st = fset(&c, &root, "bos_token", vstr(v->bos_token, strlen(v->bos_token)), 0)))
        goto done;
    if (v && v->eos_token &&
        (st = fset(&c, &root, "eos_token", vstr(v->eos_token, strlen(v->eos_token)), 0)))
        goto done;
    for (int i = 0; v && i < v->n_extra; i++) {
        const char *val = v->extra_vals[i];
        if ((st = fset(&c, &root, v->extra_keys[i], val ? vstr(val, strlen(val)) : vnone(), 0)))
            goto done;
    }
    if ((st = exec_body(&c, t->body, t->n_body))) goto done;
    char *res = lt_alloc(ob.n + 1);
    if (!res) {
        st = lt_err_set(err, LT_ERR_OOM, "chat template: out of memory for the rendered text");
        goto done;
    }
    memcpy(res, ob.p, ob.n);
    res[ob.n] = 0;
    *out = res;
    if (out_len) *out_len = ob.n;
done:
    ct_arena_free(&c.a);
    return st;
}
