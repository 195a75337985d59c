/*
 * json_constraint.c - JSON-schema constrained decoding: a schema subset compiled into a
 * byte-level automaton that accepts exactly the prefixes of conforming documents, the fewest
 * bytes that complete a document from any state, and a trie over the vocabulary's token bytes
 * for fast token masks (see infer.h for the subset and what is enforced).
 *
 * Why a distance: with a random model, "valid prefix" alone does not end the document (a string
 * can go on forever). lt_jstate_dist is exact (the shortest completion), so if dist <= tokens
 * left and a single-byte token exists for each byte of a shortest completion, some allowed token
 * keeps dist <= tokens left after it, by induction up to the closing brace.
 * Not here: nested objects and arrays, patterns, formats, exponents in numbers, $ref.
 * Reference: JSON (RFC 8259), JSON Schema validation keywords (draft 2020-12),
 * "Efficient Guided Generation for LLMs" (Willard & Louf 2023) for the token-mask idea.
 */
#include "infer/infer.h"

#include <math.h>
#include <string.h>

#define MAX_PROPS 64
#define WS_MAX 8
#define INF (1 << 28)
#define MICRO 1000000LL
#define MAX_INT_DIGITS 12
#define MAX_FRAC_DIGITS 6
#define MAG_MAX (1000000000000LL * MICRO - 1) // 1e12 - 1e-6 in micro units

enum { K_STRING = 0, K_NUMBER, K_INTEGER, K_LITS };
enum {
    S_START = 0,
    S_OPEN,
    S_KEY,
    S_COLON,
    S_VALUE,
    S_STR,
    S_LIT,
    S_NUM,
    S_AFTER,
    S_COMMA,
    S_DONE
};
// string escape states
enum {
    E_NONE = 0,
    E_BS = 1,
    E_HEX0 = 2,
    /* 2..5: hex digit esc-2 expected */ E_PAIR_BS = 6,
    E_PAIR_U,
    E_PAIR_D,
    E_PAIR_C,
    E_PAIR_H2,
    E_PAIR_H3
};

typedef struct jprop {
    char *key; // the key's JSON literal, quotes included
    int key_len;
    int kind;
    bool required;
    int min_len, max_len; // strings; max_len < 0: unbounded
    int64_t lo, hi;       // numbers, in micro units
    int lit0, nlit;       // K_LITS: literals lits[lit0 .. lit0 + nlit), sorted
    int minval;           // bytes of the shortest value
} jprop;

struct lt_jschema {
    int n;
    jprop props[MAX_PROPS];
    char **lits;
    int *lit_len;
    int n_lits, cap_lits;
    int first_req[MAX_PROPS + 1]; // first required index >= i, or n
    int close[MAX_PROPS + 1];     // bytes from S_AFTER with next = i to the end
    int min_bytes;
};

static int imin(int a, int b) {
    return a < b ? a : b;
}
static bool is_ws(unsigned c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
static int hexval(unsigned c) {
    if (c >= '0' && c <= '9') return (int)c - '0';
    if (c >= 'a' && c <= 'f') return (int)c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return (int)c - 'A' + 10;
    return -1;
}
static int64_t pow10i(int k) {
    int64_t p = 1;
    while (k-- > 0) p *= 10;
    return p;
}
static int64_t ceil_div(int64_t a, int64_t b) {
    return a <= 0 ? 0 : (a + b - 1) / b;
}

// ---------------------------------------------------------------------------------------------
// numbers: the fewest characters that complete a decimal prefix to a value in range
//
// A prefix is (sign, ni integer digits with value I, a dot or not, nf fraction digits with value
// F). Magnitudes are in micro units; [A, B] is the allowed magnitude range for the sign.

static int mag_cost(bool frac_ok, int ni, int64_t I, bool dot, int nf, int64_t F, int64_t A,
                    int64_t B) {
    if (A > B) return INF;
    if (ni == 0) {
        int best = INF;
        for (int d = 0; d <= 9; d++)
            best = imin(best, 1 + mag_cost(frac_ok, 1, d, false, 0, 0, A, B));
        return best;
    }
    if (dot) {
        int64_t base = I * MICRO + F * pow10i(MAX_FRAC_DIGITS - nf);
        if (nf >= 1 && base >= A && base <= B) return 0;
        for (int k2 = 1; k2 <= MAX_FRAC_DIGITS - nf; k2++) {
            int64_t u = pow10i(MAX_FRAC_DIGITS - nf - k2);
            int64_t f = ceil_div(A - base, u);
            if (f < pow10i(k2) && base + f * u <= B) return k2;
        }
        return INF;
    }
    int best = INF;
    int kmax = I == 0 ? 0 : MAX_INT_DIGITS - ni;
    for (int k = 0; k <= kmax && k < best; k++) {
        int64_t p = pow10i(k), jlo = I * p, jhi = (I + 1) * p - 1;
        int64_t j = ceil_div(A, MICRO);
        if (j < jlo) j = jlo;
        if (j <= jhi && j * MICRO <= B) {
            best = imin(best, k);
            break;
        }
        if (!frac_ok) continue;
        int64_t xlo = A > jlo * MICRO ? A : jlo * MICRO;
        int64_t xhi = B < jhi * MICRO + MICRO - 1 ? B : jhi * MICRO + MICRO - 1;
        if (xlo > xhi) continue;
        // no integer lies in [xlo, xhi] (checked above), so it sits inside one unit
        int64_t base = (xlo / MICRO) * MICRO;
        for (int k2 = 1; k2 <= MAX_FRAC_DIGITS; k2++) {
            int64_t u = pow10i(MAX_FRAC_DIGITS - k2);
            int64_t f = ceil_div(xlo - base, u);
            if (base + f * u <= xhi) {
                best = imin(best, k + 1 + k2);
                break;
            }
        }
    }
    return best;
}

static void sign_range(const jprop *p, bool neg, int64_t *A, int64_t *B) {
    if (!neg) {
        *A = p->lo > 0 ? p->lo : 0;
        *B = p->hi; // < A when hi < 0
    } else {
        // no minus sign unless negative values are allowed ("-0" only then)
        *A = p->hi < 0 ? -p->hi : p->lo < 0 ? 0 : 1;
        *B = p->lo < 0 ? -p->lo : 0;
    }
}

static int num_cost_empty(const jprop *p) {
    int64_t A, B;
    bool fr = p->kind == K_NUMBER;
    sign_range(p, false, &A, &B);
    int c = mag_cost(fr, 0, 0, false, 0, 0, A, B);
    sign_range(p, true, &A, &B);
    return imin(c, 1 + mag_cost(fr, 0, 0, false, 0, 0, A, B));
}

static int num_cost(const jprop *p, const lt_jstate *st) {
    int64_t A, B;
    sign_range(p, st->neg, &A, &B);
    return mag_cost(p->kind == K_NUMBER, st->ni, st->ival, st->dot, st->nf, st->fval, A, B);
}

static bool num_complete(const jprop *p, const lt_jstate *st) {
    if (st->ni == 0 || (st->dot && st->nf == 0)) return false;
    int64_t mag = st->ival * MICRO + st->fval * pow10i(MAX_FRAC_DIGITS - st->nf);
    int64_t v = st->neg ? -mag : mag;
    return v >= p->lo && v <= p->hi;
}

// ---------------------------------------------------------------------------------------------
// distances

// Candidate keys at cursor n: n .. the first required one (or the last property).
static uint64_t cand_mask(const lt_jschema *s, int n) {
    if (n >= s->n) return 0;
    int r = s->first_req[n] < s->n ? s->first_req[n] : s->n - 1;
    uint64_t m = 0;
    for (int j = n; j <= r; j++) m |= 1ull << j;
    return m;
}

// "key":value then the rest, from property j
static int value_cost(const lt_jschema *s, int j) {
    return s->props[j].key_len + 1 + s->props[j].minval + s->close[j + 1];
}

static int after_comma_cost(const lt_jschema *s, int n) {
    uint64_t m = cand_mask(s, n);
    int best = INF;
    for (int j = 0; j < s->n; j++)
        if (m >> j & 1) best = imin(best, value_cost(s, j));
    return best;
}

static int open_cost(const lt_jschema *s) {
    return s->first_req[0] == s->n ? 1 : after_comma_cost(s, 0);
}

static int str_rest(const jprop *p, const lt_jstate *st) {
    int pending = 0;
    if (st->u8need)
        pending = st->u8need;
    else if (st->esc == E_BS)
        pending = 1;
    else if (st->esc >= E_HEX0 && st->esc < E_PAIR_BS) {
        pending = E_PAIR_BS - st->esc;
        if (st->esc >= E_HEX0 + 2 && st->hex0 == 0xD && st->hex1 >= 8) pending += 6;
    } else if (st->esc >= E_PAIR_BS) {
        pending = E_PAIR_H3 + 1 - st->esc;
    }
    int n = st->nchar + (pending > 0);
    int fill = p->min_len > n ? p->min_len - n : 0;
    return pending + fill + 1;
}

int lt_jstate_dist(const lt_jschema *s, const lt_jstate *st) {
    const jprop *p = st->prop >= 0 && st->prop < s->n ? &s->props[st->prop] : NULL;
    switch (st->mode) {
    case S_START:
        return 1 + open_cost(s);
    case S_OPEN:
        return open_cost(s);
    case S_KEY: {
        int best = INF;
        for (int j = 0; j < s->n; j++)
            if (st->keymask >> j & 1)
                best = imin(best, s->props[j].key_len - st->depth + 1 + s->props[j].minval +
                                      s->close[j + 1]);
        return best;
    }
    case S_COLON:
        return 1 + p->minval + s->close[st->prop + 1];
    case S_VALUE:
        return p->minval + s->close[st->prop + 1];
    case S_STR:
        return str_rest(p, st) + s->close[st->prop + 1];
    case S_LIT: {
        int best = INF;
        for (int i = st->lo; i < st->hi; i++) best = imin(best, s->lit_len[i] - st->depth);
        return best + s->close[st->prop + 1];
    }
    case S_NUM: {
        int c = num_cost(p, st);
        return c >= INF ? INF : c + s->close[st->prop + 1];
    }
    case S_AFTER:
        return s->close[st->next];
    case S_COMMA:
        return after_comma_cost(s, st->next);
    default:
        return 0;
    }
}

bool lt_jstate_done(const lt_jstate *st) {
    return st->mode == S_DONE;
}

void lt_jstate_init(const lt_jschema *s, lt_jstate *st) {
    (void)s;
    memset(st, 0, sizeof *st);
    st->mode = S_START;
    st->prop = -1;
}

// ---------------------------------------------------------------------------------------------
// the automaton

static bool ws_step(lt_jstate *st) {
    if (st->ws >= WS_MAX) return false;
    st->ws++;
    return true;
}

static void start_key(const lt_jschema *s, lt_jstate *st) {
    st->mode = S_KEY;
    st->keymask = cand_mask(s, st->next);
    st->depth = 1; // the opening quote, shared by every key literal
    st->ws = 0;
}

static void value_done(lt_jstate *st) {
    st->mode = S_AFTER;
    st->next = (int16_t)(st->prop + 1);
    st->ws = 0;
}

// Narrows the literal range by byte c at st->depth; false when nothing continues.
static bool lit_narrow(const lt_jschema *s, lt_jstate *st, unsigned c) {
    int lo = -1, hi = -1;
    for (int i = st->lo; i < st->hi; i++) {
        bool m = s->lit_len[i] > st->depth && (unsigned char)s->lits[i][st->depth] == c;
        if (m && lo < 0) lo = i;
        if (m) hi = i + 1;
    }
    if (lo < 0) return false;
    st->lo = lo, st->hi = hi;
    st->depth++;
    return true;
}

static bool str_byte(const jprop *p, lt_jstate *st, unsigned c) {
    if (st->u8need) {
        if (c < st->u8lo || c > st->u8hi) return false;
        st->u8lo = 0x80, st->u8hi = 0xBF;
        if (--st->u8need == 0) st->nchar++;
        return true;
    }
    int h;
    switch (st->esc) {
    case E_NONE:
        break;
    case E_BS:
        if (c == 'u') {
            st->esc = E_HEX0;
            return true;
        }
        if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return false;
        st->esc = E_NONE;
        st->nchar++;
        return true;
    case E_PAIR_BS:
        if (c != '\\') return false;
        st->esc++;
        return true;
    case E_PAIR_U:
        if (c != 'u') return false;
        st->esc++;
        return true;
    case E_PAIR_D:
        if (c != 'd' && c != 'D') return false;
        st->esc++;
        return true;
    case E_PAIR_C:
        h = hexval(c);
        if (h < 0xC) return false;
        st->esc++;
        return true;
    case E_PAIR_H2:
        if (hexval(c) < 0) return false;
        st->esc++;
        return true;
    case E_PAIR_H3:
        if (hexval(c) < 0) return false;
        st->esc = E_NONE;
        st->nchar++;
        return true;
    default: // E_HEX0 .. E_HEX0+3
        h = hexval(c);
        if (h < 0) return false;
        if (st->esc == E_HEX0) st->hex0 = (uint8_t)h;
        if (st->esc == E_HEX0 + 1) {
            st->hex1 = (uint8_t)h;
            if (st->hex0 == 0xD && h >= 0xC) return false; // a lone low surrogate
        }
        if (++st->esc == E_PAIR_BS) {
            if (!(st->hex0 == 0xD && st->hex1 >= 8)) {
                st->esc = E_NONE;
                st->nchar++;
            } // else a high surrogate: its low half must follow (E_PAIR_BS ...)
        }
        return true;
    }
    if (c == '"') {
        if (st->nchar < p->min_len) return false;
        value_done(st);
        return true;
    }
    if (c < 0x20) return false;
    if (p->max_len >= 0 && st->nchar >= p->max_len) return false;
    if (c == '\\') {
        st->esc = E_BS;
        return true;
    }
    if (c < 0x80) {
        st->nchar++;
        return true;
    }
    // UTF-8 lead bytes (RFC 3629 table): the range of the first continuation byte excludes
    // overlong forms and surrogates
    uint8_t need, lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else
        return false;
    st->u8need = need, st->u8lo = lo, st->u8hi = hi;
    return true;
}

static bool num_byte(const jprop *p, lt_jstate *st, unsigned c) {
    if (c >= '0' && c <= '9') {
        int d = (int)c - '0';
        if (st->dot) {
            if (st->nf >= MAX_FRAC_DIGITS) return false;
            st->fval = st->fval * 10 + d;
            st->nf++;
        } else if (st->ni == 0) {
            st->ival = d;
            st->ni = 1;
        } else {
            if (st->ival == 0 || st->ni >= MAX_INT_DIGITS) return false; // no leading zeros
            st->ival = st->ival * 10 + d;
            st->ni++;
        }
    } else if (c == '.') {
        if (p->kind != K_NUMBER || st->dot || st->ni == 0) return false;
        st->dot = 1;
    } else {
        return false;
    }
    return num_cost(p, st) < INF;
}

static bool feed1(const lt_jschema *s, lt_jstate *st, unsigned c) {
    for (;;) {
        const jprop *p = st->prop >= 0 ? &s->props[st->prop] : NULL;
        switch (st->mode) {
        case S_START:
            if (is_ws(c)) return ws_step(st);
            if (c != '{') return false;
            st->mode = S_OPEN, st->ws = 0, st->next = 0;
            return true;
        case S_OPEN:
        case S_COMMA:
            if (is_ws(c)) return ws_step(st);
            if (c == '"' && st->next < s->n) {
                start_key(s, st);
                return true;
            }
            if (c == '}' && st->mode == S_OPEN && s->first_req[0] == s->n) {
                st->mode = S_DONE;
                return true;
            }
            return false;
        case S_KEY: {
            uint64_t m = 0;
            for (int j = 0; j < s->n; j++)
                if ((st->keymask >> j & 1) && s->props[j].key_len > st->depth &&
                    (unsigned char)s->props[j].key[st->depth] == c)
                    m |= 1ull << j;
            if (!m) return false;
            st->keymask = m;
            st->depth++;
            for (int j = 0; j < s->n; j++)
                if ((m >> j & 1) && s->props[j].key_len == st->depth) {
                    st->prop = (int16_t)j;
                    st->mode = S_COLON, st->ws = 0;
                }
            return true;
        }
        case S_COLON:
            if (is_ws(c)) return ws_step(st);
            if (c != ':') return false;
            st->mode = S_VALUE, st->ws = 0;
            return true;
        case S_VALUE:
            if (is_ws(c)) return ws_step(st);
            switch (p->kind) {
            case K_STRING:
                if (c != '"') return false;
                st->mode = S_STR, st->nchar = 0, st->esc = E_NONE, st->u8need = 0;
                return true;
            case K_LITS:
                st->mode = S_LIT, st->lo = p->lit0, st->hi = p->lit0 + p->nlit, st->depth = 0;
                return lit_narrow(s, st, c); // a literal is at least 2 bytes or unquoted
            default:
                st->mode = S_NUM, st->neg = 0, st->ni = 0, st->dot = 0, st->nf = 0;
                st->ival = st->fval = 0;
                if (c == '-') {
                    st->neg = 1;
                    return num_cost(p, st) < INF;
                }
                return num_byte(p, st, c);
            }
        case S_STR:
            return str_byte(p, st, c);
        case S_LIT:
            if (lit_narrow(s, st, c)) {
                // a string literal ends at its closing quote; numbers/true/false/null end at
                // the next delimiter
                if (s->lit_len[st->lo] == st->depth && s->lits[st->lo][0] == '"') value_done(st);
                return true;
            }
            if (s->lit_len[st->lo] != st->depth) return false;
            value_done(st); // a complete unquoted literal: c must be a delimiter
            continue;
        case S_NUM:
            if ((c >= '0' && c <= '9') || c == '.') return num_byte(p, st, c);
            if (!num_complete(p, st)) return false;
            value_done(st);
            continue;
        case S_AFTER:
            if (is_ws(c)) return ws_step(st);
            if (c == ',' && st->next < s->n) {
                st->mode = S_COMMA, st->ws = 0;
                return true;
            }
            if (c == '}' && s->first_req[st->next] == s->n) {
                st->mode = S_DONE;
                return true;
            }
            return false;
        default:
            return false; // S_DONE: nothing may follow
        }
    }
}

bool lt_jstate_feed(const lt_jschema *s, lt_jstate *st, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!feed1(s, st, (unsigned char)bytes[i])) return false;
    return true;
}

// ---------------------------------------------------------------------------------------------
// schema compilation

void lt_jschema_free(lt_jschema *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) lt_free(s->props[i].key);
    for (int i = 0; i < s->n_lits; i++) lt_free(s->lits[i]);
    lt_free(s->lits);
    lt_free(s->lit_len);
    lt_free(s);
}

int lt_jschema_n_props(const lt_jschema *s) {
    return s->n;
}
int lt_jschema_min_bytes(const lt_jschema *s) {
    return s->min_bytes;
}

// The canonical JSON spelling of an item (cJSON's), as an lt_alloc'd copy.
static char *print_item(const cJSON *it, int *len) {
    char *t = cJSON_PrintUnformatted(it);
    if (!t) return NULL;
    size_t n = strlen(t);
    char *c = lt_alloc(n + 1);
    if (c) memcpy(c, t, n + 1);
    cJSON_free(t);
    *len = (int)n;
    return c;
}

static lt_status add_lit(lt_jschema *s, const cJSON *v, const char *what, const char *name,
                         lt_err *err) {
    if (cJSON_IsObject(v) || cJSON_IsArray(v))
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: property \"%s\": enum values that are "
                          "objects or arrays are not supported",
                          what, name);
    if (s->n_lits == s->cap_lits) {
        int cap = s->cap_lits ? 2 * s->cap_lits : 16;
        char **l = lt_realloc(s->lits, sizeof(char *) * (size_t)cap);
        if (!l) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        s->lits = l;
        int *ll = lt_realloc(s->lit_len, sizeof(int) * (size_t)cap);
        if (!ll) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        s->lit_len = ll;
        s->cap_lits = cap;
    }
    int len = 0;
    char *t = print_item(v, &len);
    if (!t) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    if (len == 0 || len > 4096) {
        lt_free(t);
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: property \"%s\": an enum value of %d "
                          "bytes (1..4096 supported)",
                          what, name, len);
    }
    s->lits[s->n_lits] = t;
    s->lit_len[s->n_lits++] = len;
    return LT_OK;
}

static int lit_cmp(const char *a, int na, const char *b, int nb) {
    int n = na < nb ? na : nb, c = memcmp(a, b, (size_t)n);
    return c ? c : (na > nb) - (na < nb);
}

// Sorts (insertion sort: enums are short) and removes duplicates of lits[lit0 ..].
static void sort_lits(lt_jschema *s, jprop *p) {
    char **L = s->lits + p->lit0;
    int *N = s->lit_len + p->lit0;
    for (int i = 1; i < p->nlit; i++)
        for (int j = i; j > 0 && lit_cmp(L[j - 1], N[j - 1], L[j], N[j]) > 0; j--) {
            char *t = L[j];
            L[j] = L[j - 1], L[j - 1] = t;
            int tn = N[j];
            N[j] = N[j - 1], N[j - 1] = tn;
        }
    int w = 1;
    for (int i = 1; i < p->nlit; i++) {
        if (lit_cmp(L[w - 1], N[w - 1], L[i], N[i]) == 0) {
            lt_free(L[i]);
            continue;
        }
        L[w] = L[i], N[w++] = N[i];
    }
    s->n_lits -= p->nlit - w;
    p->nlit = w;
}

// A bound in micro units, rounded inwards (up for a minimum, down for a maximum).
static int64_t to_micro(double v, bool up) {
    double x = v * (double)MICRO, r = nearbyint(x);
    if (fabs(x - r) <= 1e-6 * fmax(1.0, fabs(x)))
        x = r;
    else
        x = up ? ceil(x) : floor(x);
    if (x > (double)MAG_MAX) return MAG_MAX;
    if (x < -(double)MAG_MAX) return -MAG_MAX;
    return (int64_t)x;
}

static lt_status compile_prop(lt_jschema *s, jprop *p, const cJSON *ps, const char *what,
                              lt_err *err) {
    const char *name = ps->string;
    if (!cJSON_IsObject(ps))
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: property \"%s\": expected a schema object, "
                          "found %s",
                          what, name, lt_json_type_name(ps));
    static const char *known[] = {"type",
                                  "enum",
                                  "const",
                                  "minLength",
                                  "maxLength",
                                  "minimum",
                                  "maximum",
                                  "exclusiveMinimum",
                                  "exclusiveMaximum",
                                  "description",
                                  "title",
                                  "default",
                                  "examples",
                                  "$comment"};
    for (const cJSON *k = ps->child; k; k = k->next) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            ok = ok || !strcmp(k->string, known[i]);
        if (!ok)
            return lt_err_set(err, LT_ERR_UNSUPPORTED,
                              "%s: property \"%s\": keyword \"%s\" is "
                              "not supported (supported: type, enum, const, minLength, maxLength, "
                              "minimum, maximum, exclusiveMinimum, exclusiveMaximum)",
                              what, name, k->string);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ps, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(ps, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(ps, "const");
    p->max_len = -1;
    p->lo = -MAG_MAX, p->hi = MAG_MAX;
    lt_status st;
    if (en || cn) {
        p->kind = K_LITS;
        p->lit0 = s->n_lits;
        if (cn) {
            if ((st = add_lit(s, cn, what, name, err))) return st;
        } else {
            if (!cJSON_IsArray(en) || !en->child)
                return lt_err_set(err, LT_ERR_FORMAT,
                                  "%s: property \"%s\": \"enum\" must be a "
                                  "non-empty array",
                                  what, name);
            for (const cJSON *v = en->child; v; v = v->next)
                if ((st = add_lit(s, v, what, name, err))) return st;
        }
        p->nlit = s->n_lits - p->lit0;
        sort_lits(s, p);
        return LT_OK;
    }
    if (!type)
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: property \"%s\" has neither \"type\" nor "
                          "\"enum\"",
                          what, name);
    if (!cJSON_IsString(type))
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: property \"%s\": \"type\" must be one "
                          "type name (lists of types are not supported)",
                          what, name);
    const char *t = type->valuestring;
    if (!strcmp(t, "boolean") || !strcmp(t, "null")) {
        p->kind = K_LITS;
        p->lit0 = s->n_lits;
        cJSON *a = !strcmp(t, "null") ? cJSON_CreateNull() : cJSON_CreateFalse();
        cJSON *b = !strcmp(t, "null") ? NULL : cJSON_CreateTrue();
        st = a && (b || !strcmp(t, "null")) ? LT_OK : lt_err_set(err, LT_ERR_OOM, "out of memory");
        if (!st) st = add_lit(s, a, what, name, err);
        if (!st && b) st = add_lit(s, b, what, name, err);
        cJSON_Delete(a);
        cJSON_Delete(b);
        if (st) return st;
        p->nlit = s->n_lits - p->lit0;
        sort_lits(s, p);
        return LT_OK;
    }
    if (!strcmp(t, "string")) {
        p->kind = K_STRING;
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(ps, "minLength");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(ps, "maxLength");
        int64_t v;
        if (mn) {
            if (!lt_json_as_int(mn, &v) || v < 0 || v > 100000)
                return lt_err_set(err, LT_ERR_FORMAT,
                                  "%s: property \"%s\": minLength must be an "
                                  "integer in 0..100000",
                                  what, name);
            p->min_len = (int)v;
        }
        if (mx) {
            if (!lt_json_as_int(mx, &v) || v < 0 || v > 1000000)
                return lt_err_set(err, LT_ERR_FORMAT,
                                  "%s: property \"%s\": maxLength must be an "
                                  "integer in 0..1000000",
                                  what, name);
            p->max_len = (int)v;
        }
        if (p->max_len >= 0 && p->max_len < p->min_len)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: property \"%s\": maxLength %d < minLength "
                              "%d",
                              what, name, p->max_len, p->min_len);
        return LT_OK;
    }
    if (!strcmp(t, "number") || !strcmp(t, "integer")) {
        p->kind = !strcmp(t, "number") ? K_NUMBER : K_INTEGER;
        static const char *bk[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
        for (int i = 0; i < 4; i++) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(ps, bk[i]);
            if (!b) continue;
            if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble))
                return lt_err_set(err, LT_ERR_FORMAT, "%s: property \"%s\": %s must be a number",
                                  what, name, bk[i]);
            double x = b->valuedouble;
            bool lower = (i % 2) == 0, excl = i >= 2;
            int64_t u = to_micro(x, lower);
            if (excl && (double)u == x * (double)MICRO) u += lower ? 1 : -1; // open bound
            if (lower && u > p->lo) p->lo = u;
            if (!lower && u < p->hi) p->hi = u;
        }
        if (p->kind == K_INTEGER) { // round the range inwards to whole numbers
            int64_t lo = p->lo >= 0 ? ceil_div(p->lo, MICRO) : -((-p->lo) / MICRO);
            int64_t hi = p->hi >= 0 ? p->hi / MICRO : -ceil_div(-p->hi, MICRO);
            p->lo = lo * MICRO, p->hi = hi * MICRO;
        }
        if (p->lo > p->hi)
            return lt_err_set(err, LT_ERR_FORMAT,
                              "%s: property \"%s\": the range of allowed "
                              "values is empty",
                              what, name);
        return LT_OK;
    }
    if (!strcmp(t, "object") || !strcmp(t, "array"))
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: property \"%s\": nested %ss are not "
                          "supported (only strings, numbers, integers, booleans and enums)",
                          what, name, t);
    return lt_err_set(err, LT_ERR_FORMAT, "%s: property \"%s\": unknown type \"%s\"", what, name,
                      t);
}

lt_status lt_jschema_compile(const cJSON *schema, const char *what, lt_jschema **out, lt_err *err) {
    if (!what) what = "schema";
    if (!cJSON_IsObject(schema))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: expected a JSON schema object, found %s", what,
                          lt_json_type_name(schema));
    static const char *known[] = {"type",    "properties", "required", "additionalProperties",
                                  "$schema", "$id",        "title",    "description",
                                  "$comment"};
    for (const cJSON *k = schema->child; k; k = k->next) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            ok = ok || !strcmp(k->string, known[i]);
        if (!ok)
            return lt_err_set(err, LT_ERR_UNSUPPORTED,
                              "%s: keyword \"%s\" is not supported at the "
                              "top level (supported: type, properties, required, "
                              "additionalProperties)",
                              what, k->string);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "object")))
        return lt_err_set(err, LT_ERR_UNSUPPORTED,
                          "%s: the top level must be {\"type\": "
                          "\"object\", ...}",
                          what);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    if (!cJSON_IsObject(props))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"properties\" must be an object, found %s",
                          what, lt_json_type_name(props));
    int n = cJSON_GetArraySize(props);
    if (n > MAX_PROPS)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: %d properties (at most %d supported)", what,
                          n, MAX_PROPS);
    lt_jschema *s = lt_calloc(1, sizeof *s);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = LT_OK;
    for (const cJSON *ps = props->child; ps; ps = ps->next) {
        jprop *p = &s->props[s->n];
        cJSON *k = cJSON_CreateString(ps->string);
        p->key = k ? print_item(k, &p->key_len) : NULL;
        cJSON_Delete(k);
        if (!p->key) {
            st = lt_err_set(err, LT_ERR_OOM, "out of memory");
            goto fail;
        }
        s->n++;
        for (int j = 0; j < s->n - 1; j++)
            if (!strcmp(s->props[j].key, p->key)) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s: property \"%s\" is listed twice", what,
                                ps->string);
                goto fail;
            }
        if ((st = compile_prop(s, p, ps, what, err))) goto fail;
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    if (req && !cJSON_IsArray(req)) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: \"required\" must be an array of property names",
                        what);
        goto fail;
    }
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        const cJSON *ps =
            cJSON_IsString(r) ? cJSON_GetObjectItemCaseSensitive(props, r->valuestring) : NULL;
        if (!ps) {
            st = lt_err_set(err, LT_ERR_FORMAT,
                            "%s: \"required\" names %s, which is not a "
                            "property",
                            what, cJSON_IsString(r) ? r->valuestring : "a non-string");
            goto fail;
        }
        int i = 0;
        for (const cJSON *q = props->child; q != ps; q = q->next) i++;
        s->props[i].required = true;
    }
    // shortest values, then the closing costs from the back
    for (int i = 0; i < s->n; i++) {
        jprop *p = &s->props[i];
        if (p->kind == K_STRING)
            p->minval = 2 + p->min_len;
        else if (p->kind == K_LITS) {
            p->minval = INF;
            for (int j = 0; j < p->nlit; j++) p->minval = imin(p->minval, s->lit_len[p->lit0 + j]);
        } else {
            p->minval = num_cost_empty(p);
        }
        if (p->minval >= INF) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: property \"%s\": no value fits", what, p->key);
            goto fail;
        }
    }
    s->first_req[s->n] = s->n;
    for (int i = s->n - 1; i >= 0; i--)
        s->first_req[i] = s->props[i].required ? i : s->first_req[i + 1];
    s->close[s->n] = 1;
    for (int i = s->n - 1; i >= 0; i--) {
        if (s->first_req[i] == s->n) {
            s->close[i] = 1;
            continue;
        }
        int best = INF;
        for (int j = i; j <= s->first_req[i]; j++) best = imin(best, 1 + value_cost(s, j));
        s->close[i] = best;
    }
    lt_jstate st0;
    lt_jstate_init(s, &st0);
    s->min_bytes = lt_jstate_dist(s, &st0);
    *out = s;
    return LT_OK;
fail:
    lt_jschema_free(s);
    return st;
}

lt_status lt_jschema_load(const char *path, lt_jschema **out, lt_err *err) {
    cJSON *j = NULL;
    lt_status st = lt_json_parse_file(path, &j, err);
    if (st) return st;
    st = lt_jschema_compile(j, path, out, err);
    cJSON_Delete(j);
    return st;
}

// ---------------------------------------------------------------------------------------------
// the vocabulary trie

struct lt_jvocab {
    const lt_jschema *s;
    int n_tok;
    int32_t n_nodes, cap_nodes;
    uint8_t *nbyte;             // (n_nodes) the byte on the edge into the node
    int32_t *child, *sib, *tok; // first child, next sibling, first token ending here (-1: none)
    int32_t *tok_next;          // (n_tok) next token with the same bytes, -1
    char **bytes;               // (n_tok) copies of the token bytes (NULL: not a candidate)
    uint32_t *blen;
    bool has_cont; // single-byte tokens exist for every UTF-8 continuation byte
};

void lt_jvocab_free(lt_jvocab *jv) {
    if (!jv) return;
    if (jv->bytes)
        for (int i = 0; i < jv->n_tok; i++) lt_free(jv->bytes[i]);
    lt_free(jv->bytes);
    lt_free(jv->blen);
    lt_free(jv->nbyte);
    lt_free(jv->child);
    lt_free(jv->sib);
    lt_free(jv->tok);
    lt_free(jv->tok_next);
    lt_free(jv);
}

const lt_jschema *lt_jvocab_schema(const lt_jvocab *jv) {
    return jv->s;
}

static int32_t new_node(lt_jvocab *jv, uint8_t b) {
    if (jv->n_nodes == jv->cap_nodes) {
        int32_t cap = jv->cap_nodes ? jv->cap_nodes * 2 : 4096;
        uint8_t *nb = lt_realloc(jv->nbyte, (size_t)cap);
        if (!nb) return -1;
        jv->nbyte = nb;
        int32_t **arrs[] = {&jv->child, &jv->sib, &jv->tok};
        for (int i = 0; i < 3; i++) {
            int32_t *a = lt_realloc(*arrs[i], sizeof(int32_t) * (size_t)cap);
            if (!a) return -1;
            *arrs[i] = a;
        }
        jv->cap_nodes = cap;
    }
    int32_t i = jv->n_nodes++;
    jv->nbyte[i] = b;
    jv->child[i] = jv->sib[i] = jv->tok[i] = -1;
    return i;
}

lt_status lt_jvocab_new(const lt_jschema *s, const lt_tokenizer *tok, lt_jvocab **out,
                        lt_err *err) {
    lt_jvocab *jv = lt_calloc(1, sizeof *jv);
    if (!jv) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st = LT_OK;
    jv->s = s;
    jv->n_tok = lt_tokenizer_n_vocab(tok);
    jv->bytes = lt_calloc((size_t)jv->n_tok + 1, sizeof(char *));
    jv->blen = lt_calloc((size_t)jv->n_tok + 1, sizeof(uint32_t));
    jv->tok_next = lt_alloc(sizeof(int32_t) * ((size_t)jv->n_tok + 1));
    if (!jv->bytes || !jv->blen || !jv->tok_next || new_node(jv, 0) != 0) goto oom;
    bool single[256] = {0};
    for (int32_t id = 0; id < jv->n_tok; id++) {
        jv->tok_next[id] = -1;
        size_t n = 0;
        const char *b = lt_tokenizer_token_bytes(tok, id, &n);
        if (!b || n == 0 || lt_tokenizer_is_special(tok, id)) continue;
        jv->bytes[id] = lt_alloc(n);
        if (!jv->bytes[id]) goto oom;
        memcpy(jv->bytes[id], b, n);
        jv->blen[id] = (uint32_t)n;
        if (n == 1) single[(unsigned char)b[0]] = true;
        int32_t node = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)b[i];
            int32_t ch = jv->child[node];
            while (ch >= 0 && jv->nbyte[ch] != c) ch = jv->sib[ch];
            if (ch < 0) {
                if ((ch = new_node(jv, c)) < 0) goto oom;
                jv->sib[ch] = jv->child[node];
                jv->child[node] = ch;
            }
            node = ch;
        }
        jv->tok_next[id] = jv->tok[node];
        jv->tok[node] = id;
    }
    jv->has_cont = true;
    for (int c = 0x80; c <= 0xBF; c++) jv->has_cont = jv->has_cont && single[c];
    // bytes a shortest completion may need, each of which must be one token
    const char *need = "{}\":,.-0123456789acdu\\";
    for (const char *c = need; *c; c++)
        if (!single[(unsigned char)*c]) goto missing_ascii;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->props[i].key_len; k++)
            if (!single[(unsigned char)s->props[i].key[k]]) {
                st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                                "constrained decoding: the vocabulary has "
                                "no single-byte token for byte 0x%02x of key %s",
                                (unsigned char)s->props[i].key[k], s->props[i].key);
                goto fail;
            }
    for (int i = 0; i < s->n_lits; i++)
        for (int k = 0; k < s->lit_len[i]; k++)
            if (!single[(unsigned char)s->lits[i][k]]) {
                st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                                "constrained decoding: the vocabulary has "
                                "no single-byte token for byte 0x%02x of enum value %s",
                                (unsigned char)s->lits[i][k], s->lits[i]);
                goto fail;
            }
    *out = jv;
    return LT_OK;
missing_ascii:
    st = lt_err_set(err, LT_ERR_UNSUPPORTED,
                    "constrained decoding needs a single-byte token for "
                    "each of  {}\":,.-0123456789acdu\\  and this vocabulary lacks one (no byte "
                    "fallback?)");
    goto fail;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory building the vocabulary trie");
fail:
    lt_jvocab_free(jv);
    return st;
}

// A token may end in the middle of a UTF-8 character only when the rest can come one byte at a
// time.
static bool end_ok(const lt_jvocab *jv, const lt_jstate *st, int budget) {
    if (st->u8need && !jv->has_cont) return false;
    return lt_jstate_dist(jv->s, st) <= budget;
}

bool lt_jvocab_token_ok(const lt_jvocab *jv, const lt_jstate *st, int32_t id, int budget,
                        lt_jstate *after) {
    if (id < 0 || id >= jv->n_tok || !jv->bytes[id]) return false;
    lt_jstate s2 = *st;
    if (!lt_jstate_feed(jv->s, &s2, jv->bytes[id], jv->blen[id])) return false;
    if (!end_ok(jv, &s2, budget)) return false;
    if (after) *after = s2;
    return true;
}

static int scan(const lt_jvocab *jv, int32_t node, const lt_jstate *st, int budget,
                uint8_t *allowed, int n) {
    int count = 0;
    for (int32_t ch = jv->child[node]; ch >= 0; ch = jv->sib[ch]) {
        lt_jstate s2 = *st;
        if (!feed1(jv->s, &s2, jv->nbyte[ch])) continue; // prunes every token below
        if (jv->tok[ch] >= 0 && end_ok(jv, &s2, budget))
            for (int32_t id = jv->tok[ch]; id >= 0; id = jv->tok_next[id])
                if (id < n) allowed[id] = 1, count++;
        if (jv->child[ch] >= 0 && s2.mode != S_DONE) count += scan(jv, ch, &s2, budget, allowed, n);
    }
    return count;
}

int lt_jvocab_allowed(const lt_jvocab *jv, const lt_jstate *st, int budget, uint8_t *allowed,
                      int n) {
    memset(allowed, 0, (size_t)n);
    return scan(jv, 0, st, budget, allowed, n);
}
