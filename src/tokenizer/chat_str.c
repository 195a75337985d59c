/*
 * chat_str.c - helpers of the chat template module: the arena that holds a template or a
 * render, growable buffers in it, UTF-8, Python's notion of whitespace and Python's repr of
 * floats. Deliberately not here: anything about Jinja itself.
 * References: Python Objects/unicodetype_db.h (_PyUnicode_IsWhitespace), Python float_repr_style
 * 'short' (repr uses the shortest digits that round-trip, scientific below 1e-4 and from 1e16).
 */
#include "tokenizer/chat_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// arena

struct ct_chunk {
    ct_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define CT_CHUNK 65536u

void *ct_alloc(ct_arena *a, size_t n) {
    size_t need = (n + 15u) & ~(size_t)15u;
    if (need < n) return NULL;
    ct_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > CT_CHUNK ? need : CT_CHUNK, total;
        if (!lt_add_ok(sizeof *c, cap, &total)) return NULL;
        if (a->limit && (total > a->limit || a->total > a->limit - total)) {
            a->over_limit = true;
            return NULL;
        }
        ct_chunk *nc = lt_alloc(total);
        if (!nc) {
            a->over_limit = false;
            return NULL;
        }
        a->total += total;
        nc->used = 0;
        nc->cap = cap;
        // a big block goes behind the current chunk so the current one keeps filling
        if (c && need > CT_CHUNK) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

char *ct_strndup(ct_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = ct_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ct_arena_free(ct_arena *a) {
    ct_chunk *c = a->head;
    while (c) {
        ct_chunk *nx = c->next;
        lt_free(c);
        c = nx;
    }
    a->head = NULL;
    a->total = 0;
}

bool ct_buf_put(ct_buf *b, const char *s, size_t n) {
    if (b->failed) return false;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return false;
            }
            cap *= 2;
        }
        char *p = ct_alloc(b->a, cap);
        if (!p) {
            b->failed = true;
            return false;
        }
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

bool ct_buf_putc(ct_buf *b, char ch) {
    return ct_buf_put(b, &ch, 1);
}
bool ct_buf_puts(ct_buf *b, const char *s) {
    return ct_buf_put(b, s, strlen(s));
}

// ---------------------------------------------------------------------------------------------
// UTF-8

size_t ct_utf8_dec(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        *cp = 0;
        return 0;
    }
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if ((u[0] & 0xe0) == 0xc0 && n >= 2) {
        *cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        return 2;
    }
    if ((u[0] & 0xf0) == 0xe0 && n >= 3) {
        *cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        return 3;
    }
    if (n >= 4) {
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
              ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
        return 4;
    }
    *cp = u[0]; // not reached for valid text
    return 1;
}

size_t ct_utf8_enc(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as Python's decoder.
bool ct_utf8_valid(const char *s, size_t n, size_t *bad_at) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t len;
        uint32_t min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0)
            len = 2, min = 0x80, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            len = 3, min = 0x800, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            len = 4, min = 0x10000, cp = c & 0x07;
        else
            goto bad;
        if (n - i < len) goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80) goto bad;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) goto bad;
        i += len;
    }
    return true;
bad:
    if (bad_at) *bad_at = i;
    return false;
}

size_t ct_utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

bool ct_py_isspace(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20);
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// ---------------------------------------------------------------------------------------------
// floats, as Python repr() and json.dumps print them

void ct_fmt_float(double d, bool json, char *buf) {
    if (isnan(d)) {
        strcpy(buf, json ? "NaN" : "nan");
        return;
    }
    if (isinf(d)) {
        strcpy(buf, d < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
        return;
    }
    if (d == 0) {
        strcpy(buf, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    // the shortest %e that reads back as the same double
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    const char *p = tmp;
    char digits[24];
    int nd = 0;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--; // %e may pad the mantissa
    char *o = buf;
    if (neg) *o++ = '-';
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int k = 0; k <= exp; k++) *o++ = k < nd ? digits[k] : '0';
            *o++ = '.';
            if (nd > exp + 1)
                for (int k = exp + 1; k < nd; k++) *o++ = digits[k];
            else
                *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int k = 0; k < -exp - 1; k++) *o++ = '0';
            for (int k = 0; k < nd; k++) *o++ = digits[k];
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int k = 1; k < nd; k++) *o++ = digits[k];
        }
        snprintf(o, 16, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}
