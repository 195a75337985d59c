/*
 * metrics.c - text normalisation for answer matching (utf8proc for NFKC and case folding;
 * SQuAD's normalize_answer for punctuation and articles), exact match and Pearson's r.
 * (Classification figures are in cls_metrics.c.) Reference: SQuAD v1.1 evaluate-v1.1.py.
 */
#include "eval/eval.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

lt_status lt_norm_parse(const char *list, unsigned *flags, lt_err *err) {
    unsigned f = 0;
    const char *p = list ? list : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        struct {
            const char *name;
            unsigned bits;
        } names[] = {
            {"strip", LT_NORM_STRIP},
            {"nfkc", LT_NORM_NFKC},
            {"case", LT_NORM_CASE},
            {"casefold", LT_NORM_CASE},
            {"lower", LT_NORM_CASE},
            {"spaces", LT_NORM_SPACES},
            {"punct", LT_NORM_PUNCT},
            {"articles", LT_NORM_ARTICLES},
            {"none", 0},
            {"default", LT_NORM_STRIP | LT_NORM_NFKC | LT_NORM_CASE | LT_NORM_SPACES},
            {"squad",
             LT_NORM_CASE | LT_NORM_PUNCT | LT_NORM_ARTICLES | LT_NORM_SPACES | LT_NORM_STRIP},
        };
        bool found = false;
        for (size_t i = 0; i < sizeof names / sizeof *names && !found; i++)
            if (strlen(names[i].name) == n && !strncmp(p, names[i].name, n))
                f |= names[i].bits, found = true;
        if (!found && n > 0)
            return lt_err_set(err, LT_ERR_ARG,
                              "unknown normalisation \"%.*s\" (use strip, nfkc, "
                              "case, spaces, punct, articles, none, default or squad)",
                              (int)n, p);
        p += n + (e != NULL);
    }
    *flags = f;
    return LT_OK;
}

static bool is_space_cp(int32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85) return true;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

static bool is_punct_cp(int32_t c) {
    if (c < 0x80) return ispunct(c) != 0; // Python's string.punctuation, symbols included
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static bool is_article(const char *w, size_t n) {
    return (n == 1 && w[0] == 'a') || (n == 2 && !memcmp(w, "an", 2)) ||
           (n == 3 && !memcmp(w, "the", 3));
}

lt_status lt_text_normalize(const char *s, size_t n, unsigned flags, char **out, lt_err *err) {
    // validate and, when asked, NFKC / case fold through utf8proc (which allocates with malloc)
    utf8proc_uint8_t *mapped = NULL;
    const unsigned char *src = (const unsigned char *)s;
    size_t len = n;
    {
        size_t i = 0;
        while (i < n) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t l = utf8proc_iterate(src + i, (utf8proc_ssize_t)(n - i), &cp);
            if (l <= 0)
                return lt_err_set(err, LT_ERR_ARG, "invalid UTF-8 at byte %zu of \"%.40s\"", i, s);
            i += (size_t)l;
        }
    }
    if (flags & (LT_NORM_NFKC | LT_NORM_CASE)) {
        int opt = UTF8PROC_STABLE;
        if (flags & LT_NORM_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        if (flags & LT_NORM_CASE) opt |= UTF8PROC_CASEFOLD;
        utf8proc_ssize_t r =
            utf8proc_map(src, (utf8proc_ssize_t)n, &mapped, (utf8proc_option_t)opt);
        if (r < 0)
            return lt_err_set(err, r == UTF8PROC_ERROR_NOMEM ? LT_ERR_OOM : LT_ERR_ARG,
                              "normalising \"%.40s\": %s", s, utf8proc_errmsg(r));
        src = mapped, len = (size_t)r;
    }
    char *o = lt_alloc(len + 1);
    if (!o) {
        free(mapped);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    // one pass over code points: drop punctuation; in collapsing mode cut words at whitespace,
    // drop articles and put one space between words
    size_t w = 0, word_start = 0;
    bool collapse = flags & (LT_NORM_SPACES | LT_NORM_ARTICLES), in_space = false, new_word = true;
    for (size_t i = 0;;) {
        bool end = i >= len;
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t l = 0;
        if (!end) l = utf8proc_iterate(src + i, (utf8proc_ssize_t)(len - i), &cp);
        if (!end && (flags & LT_NORM_PUNCT) && is_punct_cp(cp)) {
            i += (size_t)l;
            continue;
        }
        if (end || (collapse && is_space_cp(cp))) {
            if (!new_word && (flags & LT_NORM_ARTICLES) &&
                is_article(o + word_start, w - word_start))
                w = word_start > 0 && o[word_start - 1] == ' ' && w > 0 ? word_start - 1
                                                                        : word_start;
            if (end) break;
            in_space = new_word = true;
            i += (size_t)l;
            continue;
        }
        if (in_space && (w > 0 || !(flags & LT_NORM_STRIP))) o[w++] = ' ';
        in_space = false;
        if (new_word) word_start = w, new_word = false;
        memcpy(o + w, src + i, (size_t)l);
        w += (size_t)l;
        i += (size_t)l;
    }
    if (in_space && !(flags & LT_NORM_STRIP)) o[w++] = ' ';
    o[w] = 0;
    free(mapped);
    if (flags & LT_NORM_STRIP) { // trim (also covers the non-collapsing case)
        size_t b = 0, e = w;
        while (b < e) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t l =
                utf8proc_iterate((const utf8proc_uint8_t *)o + b, (utf8proc_ssize_t)(e - b), &cp);
            if (l <= 0 || !is_space_cp(cp)) break;
            b += (size_t)l;
        }
        while (e > b) {
            size_t k = e - 1;
            while (k > b && ((unsigned char)o[k] & 0xC0) == 0x80) k--;
            utf8proc_int32_t cp;
            utf8proc_iterate((const utf8proc_uint8_t *)o + k, (utf8proc_ssize_t)(e - k), &cp);
            if (!is_space_cp(cp)) break;
            e = k;
        }
        memmove(o, o + b, e - b);
        o[e - b] = 0;
    }
    *out = o;
    return LT_OK;
}

lt_status lt_exact_match(const char *const *pred, const char *const *const *gold, const int *n_gold,
                         int64_t n, unsigned flags, uint8_t *correct, lt_em_result *res,
                         lt_err *err) {
    lt_em_result r = {.n = n};
    for (int64_t i = 0; i < n; i++) {
        char *p = NULL;
        lt_status st = lt_text_normalize(pred[i] ? pred[i] : "", pred[i] ? strlen(pred[i]) : 0,
                                         flags, &p, err);
        if (st) return lt_err_wrap(err, "prediction %lld", (long long)i + 1);
        bool hit = false;
        for (int k = 0; k < n_gold[i] && !hit; k++) {
            char *g = NULL;
            if ((st = lt_text_normalize(gold[i][k], strlen(gold[i][k]), flags, &g, err))) {
                lt_free(p);
                return lt_err_wrap(err, "gold answer %lld", (long long)i + 1);
            }
            hit = !strcmp(p, g);
            lt_free(g);
        }
        lt_free(p);
        r.correct += hit;
        if (correct) correct[i] = hit;
    }
    r.accuracy = n ? (double)r.correct / (double)n : 0.0;
    *res = r;
    return LT_OK;
}

bool lt_pearson(const double *x, const double *y, int64_t n, double *r, const char **why) {
    if (n < 2) {
        *why = "fewer than 2 predictions with a numeric confidence";
        return false;
    }
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n, my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int64_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy, sxx += dx * dx, syy += dy * dy;
    }
    if (syy == 0) {
        *why = my > 0.5 ? "correctness is constant: every prediction with a confidence is correct"
                        : "correctness is constant: every prediction with a confidence is wrong";
        return false;
    }
    if (sxx == 0) {
        *why = "confidence is constant";
        return false;
    }
    double v = sxy / sqrt(sxx * syy);
    *r = v > 1 ? 1 : v < -1 ? -1 : v;
    return true;
}
