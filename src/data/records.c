/*
 * records.c - dataset files to records of named fields: JSONL, JSON arrays of objects, CSV (RFC
 * 4180 quoting) and TSV (no quoting), with the bad-record policy (stop, or skip and count).
 *
 * Deliberately not here: streaming of files larger than memory (files are read whole, as the
 * datasets loratune tunes on are MBs, not GBs), CSV dialect sniffing, TSV escapes (\t, \n),
 * JSON Lines with a value other than an object per line, nested field paths ("a.b").
 * References: RFC 4180 (CSV), https://jsonlines.org, IANA text/tab-separated-values.
 * The JSON itself is parsed by cJSON (through io/io.h); UTF-8 is validated here because cJSON
 * does not.
 */
#include "data/data_impl.h"
#include "io/io.h"

#include <math.h>
#include <stdarg.h>
#include <stdalign.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// small shared helpers (declared in data_impl.h)

bool lt_sbuf_reserve(lt_sbuf *b, size_t extra) {
    size_t need;
    if (!lt_add_ok(b->n, extra, &need) || !lt_add_ok(need, 1, &need)) return false;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (!lt_mul_ok(cap, 2, &cap)) return false;
    }
    char *p = lt_realloc(b->p, cap);
    if (!p) return false;
    b->p = p, b->cap = cap;
    return true;
}

bool lt_sbuf_add(lt_sbuf *b, const char *s, size_t n) {
    if (!lt_sbuf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

void lt_sbuf_deinit(lt_sbuf *b) {
    lt_free(b->p);
    memset(b, 0, sizeof *b);
}

size_t lt_utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c == 0xE0) k = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) k = 2;
        else if (c == 0xED) k = 2, hi = 0x9F; // no surrogates
        else if (c >= 0xEE && c <= 0xEF) k = 2;
        else if (c == 0xF0) k = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) k = 3;
        else if (c == 0xF4) k = 3, hi = 0x8F; // <= U+10FFFF
        else return i;
        if (n - i <= k) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i;
        i += k + 1;
    }
    return n;
}

lt_status lt_bad_record(lt_bad_log *log, lt_on_bad on_bad, lt_status st, lt_err *err) {
    if (st == LT_OK) return LT_OK;
    if (st != LT_ERR_FORMAT || on_bad != LT_ON_BAD_SKIP) return st;
    if (log->n_notes < LT_BAD_NOTES) {
        snprintf(log->notes[log->n_notes], sizeof log->notes[0], "%s", err ? err->msg : "");
        log->n_notes++;
    }
    log->n++;
    return LT_OK;
}

// ---------------------------------------------------------------------------------------------
// formats and options

static const char *ext_of(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : "";
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

lt_data_format lt_data_format_guess(const char *path) {
    if (ends_with(path, ".ids.jsonl")) return LT_DATA_IDS;
    const char *e = ext_of(path);
    if (!strcmp(e, ".jsonl") || !strcmp(e, ".ndjson")) return LT_DATA_JSONL;
    if (!strcmp(e, ".json")) return LT_DATA_JSON;
    if (!strcmp(e, ".csv")) return LT_DATA_CSV;
    if (!strcmp(e, ".tsv") || !strcmp(e, ".tab")) return LT_DATA_TSV;
    return LT_DATA_TEXT;
}

static const char *const format_names[] = {"auto", "jsonl", "json", "csv", "tsv", "text", "ids"};

const char *lt_data_format_name(lt_data_format f) {
    return (unsigned)f < sizeof format_names / sizeof *format_names ? format_names[f] : "?";
}

lt_status lt_data_format_parse(const char *s, lt_data_format *out, lt_err *err) {
    for (int i = 0; i <= (int)LT_DATA_TEXT; i++)
        if (!strcmp(s, format_names[i])) {
            *out = (lt_data_format)i;
            return LT_OK;
        }
    return lt_err_set(err, LT_ERR_ARG,
                      "data format must be auto, text, jsonl, json, csv or tsv, not \"%s\"", s);
}

void lt_read_opts_default(lt_read_opts *o) {
    memset(o, 0, sizeof *o);
    o->format = LT_DATA_AUTO;
    o->on_bad = LT_ON_BAD_STOP;
    o->header = -1;
}

// ---------------------------------------------------------------------------------------------
// storage: records, their fields and strings live in blocks owned by the lt_records

struct lt_rec_block {
    struct lt_rec_block *next;
    size_t used, cap;
    alignas(16) unsigned char data[];
};

void lt_records_init(lt_records *r) { memset(r, 0, sizeof *r); }

void lt_records_deinit(lt_records *r) {
    struct lt_rec_block *b = r->blocks;
    while (b) {
        struct lt_rec_block *next = b->next;
        lt_free(b);
        b = next;
    }
    lt_free(r->rec);
    lt_free(r->path);
    memset(r, 0, sizeof *r);
}

static void *store_alloc(lt_records *r, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    struct lt_rec_block *b = r->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10), tot;
        if (!lt_add_ok(cap, sizeof *b, &tot)) return NULL;
        b = lt_alloc(tot);
        if (!b) return NULL;
        b->cap = cap, b->used = 0, b->next = r->blocks;
        r->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static const char *store_str(lt_records *r, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = store_alloc(r, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

// Fields of the record being built, before they are copied into the store.
typedef struct {
    lt_field *f;
    int n, cap;
} field_vec;

static bool fv_push(field_vec *v, lt_field f) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 16;
        lt_field *p = lt_realloc(v->f, sizeof *p * (size_t)cap);
        if (!p) return false;
        v->f = p, v->cap = cap;
    }
    v->f[v->n++] = f;
    return true;
}

static lt_status push_record(lt_records *r, const field_vec *v, int64_t line, int64_t index,
                             lt_err *err) {
    if (r->n == r->cap) {
        int64_t cap = r->cap ? r->cap * 2 : 256;
        lt_record *p = lt_realloc(r->rec, sizeof *p * (size_t)cap);
        if (!p) return lt_err_set(err, LT_ERR_OOM, "%s: out of memory after %lld records", r->path,
                                  (long long)r->n);
        r->rec = p, r->cap = cap;
    }
    lt_field *f = store_alloc(r, sizeof *f * (size_t)v->n);
    if (!f)
        return lt_err_set(err, LT_ERR_OOM, "%s: out of memory after %lld records", r->path,
                          (long long)r->n);
    memcpy(f, v->f, sizeof *f * (size_t)v->n);
    r->rec[r->n++] = (lt_record){.fields = f, .n_fields = v->n, .line = line, .index = index};
    return LT_OK;
}

const lt_field *lt_record_get(const lt_record *rec, const char *key) {
    for (int i = 0; i < rec->n_fields; i++)
        if (!strcmp(rec->fields[i].key, key)) return &rec->fields[i];
    return NULL;
}

void lt_record_where(const lt_records *r, const lt_record *rec, char *buf, size_t n) {
    const char *path = r->path ? r->path : "data";
    if (r->format == LT_DATA_JSON)
        snprintf(buf, n, "%s:%lld (record %lld)", path, (long long)rec->line,
                 (long long)rec->index);
    else snprintf(buf, n, "%s:%lld", path, (long long)rec->line);
}

// The reading context: where we are, for messages.
typedef struct {
    lt_records *r;
    const lt_read_opts *o;
    lt_err e; // message of the current bad record
    int64_t line, index;
    int64_t good; // records kept by this read
} reader;

// Formats a bad-record message "path:line: what" into rd->e (code LT_ERR_FORMAT).
LT_PRINTF(2, 3) static lt_status bad(reader *rd, const char *fmt, ...) {
    char what[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (rd->r->format == LT_DATA_JSON)
        return lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld (record %lld): %s", rd->r->path,
                          (long long)rd->line, (long long)rd->index, what);
    return lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld: %s", rd->r->path, (long long)rd->line,
                      what);
}

static lt_status oom(reader *rd) {
    return lt_err_set(&rd->e, LT_ERR_OOM, "%s:%lld: out of memory", rd->r->path,
                      (long long)rd->line);
}

// A record was bad (st FORMAT) or failed (OOM): applies the policy.
static lt_status settle(reader *rd, lt_status st) {
    return lt_bad_record(&rd->r->bad, rd->o->on_bad, st, &rd->e);
}

static bool done(const reader *rd) { return rd->o->max_records > 0 && rd->good >= rd->o->max_records; }

// ---------------------------------------------------------------------------------------------
// JSON objects -> fields

static lt_status json_messages(reader *rd, const cJSON *arr, const char *key, bool sharegpt,
                               lt_field *f) {
    if (!cJSON_IsArray(arr))
        return bad(rd, "\"%s\" is %s, expected an array of {\"role\", \"content\"}", key,
                   lt_json_type_name(arr));
    int n = cJSON_GetArraySize(arr);
    if (n <= 0) return bad(rd, "\"%s\" is an empty array", key);
    lt_record_msg *m = store_alloc(rd->r, sizeof *m * (size_t)n);
    if (!m) return oom(rd);
    const char *rk = sharegpt ? "from" : "role", *ck = sharegpt ? "value" : "content";
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (!cJSON_IsObject(it))
            return bad(rd, "\"%s\"[%d] is %s, expected an object {\"%s\", \"%s\"}", key, i,
                       lt_json_type_name(it), rk, ck);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, rk);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, ck);
        if (sharegpt && !role && !content) { // ShareGPT files sometimes use role/content already
            role = cJSON_GetObjectItemCaseSensitive(it, "role");
            content = cJSON_GetObjectItemCaseSensitive(it, "content");
            rk = "role", ck = "content";
        }
        if (!cJSON_IsString(role) || !role->valuestring)
            return bad(rd, "\"%s\"[%d].%s is %s, expected a string", key, i, rk,
                       lt_json_type_name(role));
        if (!cJSON_IsString(content) || !content->valuestring)
            return bad(rd, "\"%s\"[%d].%s is %s, expected a string", key, i, ck,
                       lt_json_type_name(content));
        const char *rs = role->valuestring;
        if (sharegpt) { // TRL maybe_convert_to_chatml
            if (!strcmp(rs, "human")) rs = "user";
            else if (!strcmp(rs, "gpt")) rs = "assistant";
        }
        m[i].role = store_str(rd->r, rs, strlen(rs));
        m[i].content = store_str(rd->r, content->valuestring, strlen(content->valuestring));
        if (!m[i].role || !m[i].content) return oom(rd);
    }
    f->type = LT_FIELD_MSGS;
    f->msgs = m;
    f->n_msgs = n;
    return LT_OK;
}

static lt_status json_record(reader *rd, const cJSON *obj, field_vec *fv) {
    if (!cJSON_IsObject(obj)) return bad(rd, "expected a JSON object, found %s", lt_json_type_name(obj));
    if (!obj->child) return bad(rd, "empty record {}");
    fv->n = 0;
    for (const cJSON *it = obj->child; it; it = it->next) {
        lt_field f = {0};
        const char *key = it->string ? it->string : "";
        f.key = store_str(rd->r, key, strlen(key));
        if (!f.key) return oom(rd);
        char num[40];
        lt_status st = LT_OK;
        if (!strcmp(key, "messages") || !strcmp(key, "conversations")) {
            st = json_messages(rd, it, key, !strcmp(key, "conversations"), &f);
        } else if (cJSON_IsString(it)) {
            f.type = LT_FIELD_STR;
            f.len = strlen(it->valuestring);
            f.str = store_str(rd->r, it->valuestring, f.len);
        } else if (cJSON_IsNumber(it)) {
            double d = it->valuedouble;
            if (d == floor(d) && fabs(d) < 1e15) snprintf(num, sizeof num, "%lld", (long long)d);
            else snprintf(num, sizeof num, "%.17g", d);
            f.type = LT_FIELD_NUM;
            f.len = strlen(num);
            f.str = store_str(rd->r, num, f.len);
        } else if (cJSON_IsBool(it)) {
            f.type = LT_FIELD_BOOL;
            f.len = cJSON_IsTrue(it) ? 4 : 5;
            f.str = store_str(rd->r, cJSON_IsTrue(it) ? "true" : "false", f.len);
        } else if (cJSON_IsNull(it)) {
            f.type = LT_FIELD_NULL;
        } else {
            f.type = LT_FIELD_OTHER;
        }
        if (st) return st;
        if ((f.type == LT_FIELD_STR || f.type == LT_FIELD_NUM || f.type == LT_FIELD_BOOL) && !f.str)
            return oom(rd);
        if (!fv_push(fv, f)) return oom(rd);
    }
    return LT_OK;
}

// One JSON text (a JSONL line or an array element's span) that cJSON has not seen yet or has.
static lt_status utf8_check(reader *rd, const char *s, size_t n) {
    size_t ok = lt_utf8_valid_prefix(s, n);
    if (ok == n) return LT_OK;
    // column of the bad byte on its line
    size_t col = 1;
    for (size_t i = ok; i > 0 && s[i - 1] != '\n'; i--) col++;
    int64_t line = rd->line;
    for (size_t i = 0; i < ok; i++) line += s[i] == '\n';
    int64_t save = rd->line;
    rd->line = line;
    lt_status st = bad(rd, "invalid UTF-8 at column %zu (byte 0x%02X)", col,
                       (unsigned)(unsigned char)s[ok]);
    rd->line = save;
    return st;
}

static size_t skip_bom(const char *t, size_t n) {
    return n >= 3 && (unsigned char)t[0] == 0xEF && (unsigned char)t[1] == 0xBB &&
                   (unsigned char)t[2] == 0xBF
               ? 3
               : 0;
}

static lt_status read_jsonl(reader *rd, const char *t, size_t n) {
    field_vec fv = {0};
    lt_status st = LT_OK;
    size_t p = skip_bom(t, n);
    while (p < n && !st && !done(rd)) {
        const char *nl = memchr(t + p, '\n', n - p);
        size_t e = nl ? (size_t)(nl - t) : n;
        rd->line++;
        size_t q = p;
        while (q < e && (t[q] == ' ' || t[q] == '\t' || t[q] == '\r')) q++;
        if (q < e) {
            rd->index++;
            lt_status rs = utf8_check(rd, t + p, e - p);
            if (!rs) {
                char what[96];
                snprintf(what, sizeof what, "%s:%lld", rd->r->path, (long long)rd->line);
                cJSON *j = NULL;
                rs = lt_json_parse(t + p, e - p, what, &j, &rd->e);
                if (!rs) {
                    rs = json_record(rd, j, &fv);
                    if (!rs) rs = push_record(rd->r, &fv, rd->line, rd->index, &rd->e);
                    if (!rs) rd->good++;
                }
                cJSON_Delete(j);
            }
            st = settle(rd, rs);
        }
        p = e + 1;
    }
    lt_free(fv.f);
    return st;
}

// Offsets [start, end) of the elements of the top-level array of t (valid JSON: cJSON accepted
// it). Returns how many were found (at most max).
static int64_t array_spans(const char *t, size_t n, size_t p, size_t *starts, size_t *ends,
                           int64_t max) {
    while (p < n && t[p] != '[') p++;
    p++;
    int64_t k = 0;
    while (p < n && k < max) {
        while (p < n && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r')) p++;
        if (p >= n || t[p] == ']') break;
        size_t s = p;
        int depth = 0;
        bool in_str = false;
        for (; p < n; p++) {
            char c = t[p];
            if (in_str) {
                if (c == '\\') p++;
                else if (c == '"') in_str = false;
            } else if (c == '"') in_str = true;
            else if (c == '[' || c == '{') depth++;
            else if (c == ']' || c == '}') {
                if (depth == 0) break;
                depth--;
            } else if (c == ',' && depth == 0) break;
        }
        size_t e = p;
        while (e > s && (t[e - 1] == ' ' || t[e - 1] == '\t' || t[e - 1] == '\n' || t[e - 1] == '\r')) e--;
        starts[k] = s, ends[k] = e;
        k++;
        if (p < n && t[p] == ',') p++;
    }
    return k;
}

static lt_status read_json(reader *rd, const char *t, size_t n) {
    size_t p0 = skip_bom(t, n);
    cJSON *root = NULL;
    lt_status st = lt_json_parse(t + p0, n - p0, rd->r->path, &root, &rd->e);
    if (st) return st; // a broken file is never a skippable record
    if (!cJSON_IsArray(root)) {
        st = lt_err_set(&rd->e, LT_ERR_FORMAT, "%s: expected a JSON array of objects, found %s",
                        rd->r->path, lt_json_type_name(root));
        cJSON_Delete(root);
        return st;
    }
    int64_t count = cJSON_GetArraySize(root);
    size_t *starts = lt_calloc(count ? (size_t)count : 1, sizeof *starts);
    size_t *ends = lt_calloc(count ? (size_t)count : 1, sizeof *ends);
    field_vec fv = {0};
    if (!starts || !ends) {
        st = oom(rd);
        goto out;
    }
    int64_t found = array_spans(t, n, p0, starts, ends, count);
    size_t pos = 0;
    int64_t line = 1;
    int64_t k = 0;
    for (const cJSON *it = root->child; it && !st && !done(rd); it = it->next, k++) {
        rd->index = k + 1;
        bool have = k < found;
        if (have) {
            for (; pos < starts[k]; pos++) line += t[pos] == '\n';
        }
        rd->line = have ? line : 0;
        lt_status rs = have ? utf8_check(rd, t + starts[k], ends[k] - starts[k]) : LT_OK;
        if (!rs) rs = json_record(rd, it, &fv);
        if (!rs) rs = push_record(rd->r, &fv, rd->line, rd->index, &rd->e);
        if (!rs) rd->good++;
        st = settle(rd, rs);
    }
out:
    lt_free(fv.f);
    lt_free(starts);
    lt_free(ends);
    cJSON_Delete(root);
    return st;
}

// ---------------------------------------------------------------------------------------------
// CSV and TSV

// The fields of one raw record: their bytes back to back in buf, offsets in off (n + 1 entries).
typedef struct {
    lt_sbuf buf;
    size_t *off;
    int n, cap;
} raw_rec;

static bool raw_end_field(raw_rec *rr) {
    if (rr->n + 2 > rr->cap) {
        int cap = rr->cap ? rr->cap * 2 : 16;
        size_t *o = lt_realloc(rr->off, sizeof *o * (size_t)cap);
        if (!o) return false;
        rr->off = o, rr->cap = cap;
    }
    rr->n++;
    rr->off[rr->n] = rr->buf.n;
    return true;
}

typedef enum { RAW_OK, RAW_BAD, RAW_OOM } raw_status;

// Parses one record starting at *pp. On return *pp is past its line end (or at n), *lines is the
// number of line breaks consumed. RAW_BAD: `why` says what; *pp is past the rest of the line.
static raw_status parse_raw(const char *t, size_t n, size_t *pp, char delim, bool quoting,
                            raw_rec *rr, int64_t *lines, char *why, size_t nwhy) {
    size_t p = *pp;
    rr->n = 0;
    rr->buf.n = 0;
    if (!lt_sbuf_reserve(&rr->buf, 0)) return RAW_OOM;
    rr->buf.p[0] = 0;
    if (rr->cap < 2) {
        size_t *o = lt_realloc(rr->off, sizeof *o * 16);
        if (!o) return RAW_OOM;
        rr->off = o, rr->cap = 16;
    }
    rr->off[0] = 0;
    *lines = 0;
    for (;;) {
        if (quoting && p < n && t[p] == '"') {
            p++;
            for (;;) {
                if (p >= n) {
                    snprintf(why, nwhy, "quoted field opened here is never closed");
                    *pp = n;
                    return RAW_BAD;
                }
                if (t[p] == '"') {
                    if (p + 1 < n && t[p + 1] == '"') {
                        if (!lt_sbuf_add(&rr->buf, "\"", 1)) return RAW_OOM;
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                size_t q = p;
                while (q < n && t[q] != '"') {
                    if (t[q] == '\n') (*lines)++;
                    q++;
                }
                if (!lt_sbuf_add(&rr->buf, t + p, q - p)) return RAW_OOM;
                p = q;
            }
            bool at_end = p >= n || t[p] == delim || t[p] == '\n' ||
                          (t[p] == '\r' && (p + 1 >= n || t[p + 1] == '\n'));
            if (!at_end) {
                snprintf(why, nwhy, "'%c' after the closing quote of field %d (a quote inside a "
                         "quoted field is written \"\")", (t[p] >= 0x20 && t[p] < 0x7f) ? t[p] : '?',
                         rr->n + 1);
                const char *nl = memchr(t + p, '\n', n - p);
                *pp = nl ? (size_t)(nl - t) + 1 : n;
                if (nl) (*lines)++;
                return RAW_BAD;
            }
        } else {
            size_t q = p;
            while (q < n && t[q] != delim && t[q] != '\n') q++;
            size_t e = q;
            if (e > p && t[e - 1] == '\r' && (q >= n || t[q] == '\n')) e--;
            if (!lt_sbuf_add(&rr->buf, t + p, e - p)) return RAW_OOM;
            p = q;
        }
        if (!raw_end_field(rr)) return RAW_OOM;
        if (p < n && t[p] == '\r') p++; // CRLF after a quoted field
        if (p < n && t[p] == delim) {
            p++;
            continue;
        }
        if (p < n && t[p] == '\n') p++, (*lines)++;
        break;
    }
    *pp = p;
    return RAW_OK;
}

static bool raw_blank(const raw_rec *rr) { return rr->n == 1 && rr->off[1] == 0; }

// Splits "a,b,c" into names stored in the records' store.
static lt_status split_columns(reader *rd, const char *cols, const char ***names, int *n_names) {
    int n = 1;
    for (const char *c = cols; *c; c++) n += *c == ',';
    const char **v = store_alloc(rd->r, sizeof *v * (size_t)n);
    if (!v) return oom(rd);
    int k = 0;
    const char *s = cols;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && (*s == ' ')) s++, len--;
        while (len && s[len - 1] == ' ') len--;
        if (!len)
            return lt_err_set(&rd->e, LT_ERR_ARG, "column names \"%s\": name %d is empty", cols,
                              k + 1);
        v[k] = store_str(rd->r, s, len);
        if (!v[k]) return oom(rd);
        for (int j = 0; j < k; j++)
            if (!strcmp(v[j], v[k]))
                return lt_err_set(&rd->e, LT_ERR_ARG, "column names \"%s\": \"%s\" twice", cols,
                                  v[k]);
        k++;
        if (!e) break;
        s = e + 1;
    }
    *names = v, *n_names = k;
    return LT_OK;
}

static lt_status header_names(reader *rd, const raw_rec *rr, const char ***names, int *n_names) {
    const char **v = store_alloc(rd->r, sizeof *v * (size_t)rr->n);
    if (!v) return oom(rd);
    for (int i = 0; i < rr->n; i++) {
        const char *s = rr->buf.p + rr->off[i];
        size_t len = rr->off[i + 1] - rr->off[i];
        if (i == 0) { // a BOM in front of the first name
            size_t b = skip_bom(s, len);
            s += b, len -= b;
        }
        while (len && (*s == ' ' || *s == '\t')) s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
        if (!len)
            return lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld: header: column %d has no name "
                              "(give the names with columns, e.g. --columns label,text)",
                              rd->r->path, (long long)rd->line, i + 1);
        if (lt_utf8_valid_prefix(s, len) != len || memchr(s, 0, len))
            return lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld: header: column %d name is not "
                              "valid UTF-8", rd->r->path, (long long)rd->line, i + 1);
        v[i] = store_str(rd->r, s, len);
        if (!v[i]) return oom(rd);
        for (int j = 0; j < i; j++)
            if (!strcmp(v[j], v[i]))
                return lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld: header: column \"%s\" appears "
                                  "twice", rd->r->path, (long long)rd->line, v[i]);
    }
    *names = v, *n_names = rr->n;
    return LT_OK;
}

static lt_status delimited_record(reader *rd, const raw_rec *rr, const char **names, int n_names,
                                  field_vec *fv) {
    if (rr->n != n_names) {
        char cols[96];
        size_t o = 0;
        cols[0] = 0;
        for (int i = 0; i < n_names && o + 4 < sizeof cols; i++) {
            int w = snprintf(cols + o, sizeof cols - o, "%s%s", i ? ", " : "", names[i]);
            if (w < 0) break;
            o += (size_t)w;
        }
        if (o >= sizeof cols) memcpy(cols + sizeof cols - 4, "...", 4);
        return bad(rd, "expected %d fields (%s), found %d", n_names, cols, rr->n);
    }
    fv->n = 0;
    for (int i = 0; i < rr->n; i++) {
        const char *s = rr->buf.p + rr->off[i];
        size_t len = rr->off[i + 1] - rr->off[i];
        size_t ok = lt_utf8_valid_prefix(s, len);
        if (ok != len)
            return bad(rd, "field \"%s\": invalid UTF-8 at byte %zu (0x%02X)", names[i], ok + 1,
                       (unsigned)(unsigned char)s[ok]);
        if (memchr(s, 0, len)) return bad(rd, "field \"%s\" contains a NUL byte", names[i]);
        lt_field f = {.key = names[i], .type = LT_FIELD_STR, .len = len};
        f.str = store_str(rd->r, s, len);
        if (!f.str || !fv_push(fv, f)) return oom(rd);
    }
    return LT_OK;
}

static lt_status read_delimited(reader *rd, const char *t, size_t n, char delim, bool quoting) {
    raw_rec rr = {0};
    field_vec fv = {0};
    const char **names = NULL;
    int n_names = 0;
    lt_status st = LT_OK;
    const lt_read_opts *o = rd->o;
    bool want_header = o->header == 1 || (o->header < 0 && !o->columns);
    if (o->header == 0 && !o->columns)
        return lt_err_set(&rd->e, LT_ERR_ARG, "%s: without a header line the columns need names "
                          "(e.g. --columns label,text)", rd->r->path);
    if (o->columns && (st = split_columns(rd, o->columns, &names, &n_names))) goto out;
    size_t p = skip_bom(t, n);
    int64_t next_line = 1;
    while (p < n && !st && !done(rd)) {
        char why[200];
        int64_t lines;
        rd->line = next_line;
        raw_status rs = parse_raw(t, n, &p, delim, quoting, &rr, &lines, why, sizeof why);
        next_line += lines;
        if (rs == RAW_OOM) {
            st = oom(rd);
            break;
        }
        if (rs == RAW_OK && raw_blank(&rr)) continue;
        if (want_header) {
            want_header = false;
            if (rs == RAW_BAD) {
                st = lt_err_set(&rd->e, LT_ERR_FORMAT, "%s:%lld: header: %s", rd->r->path,
                                (long long)rd->line, why);
                break;
            }
            if (!names) st = header_names(rd, &rr, &names, &n_names);
            continue;
        }
        rd->index++;
        lt_status r = rs == RAW_BAD ? bad(rd, "%s", why)
                                    : delimited_record(rd, &rr, names, n_names, &fv);
        if (!r) r = push_record(rd->r, &fv, rd->line, rd->index, &rd->e);
        if (!r) rd->good++;
        st = settle(rd, r);
    }
out:
    lt_sbuf_deinit(&rr.buf);
    lt_free(rr.off);
    lt_free(fv.f);
    return st;
}

// ---------------------------------------------------------------------------------------------
// entry points

lt_status lt_records_read_mem(lt_records *r, const char *data, size_t n, const char *name,
                              const lt_read_opts *o, lt_err *err) {
    lt_read_opts dflt;
    if (!o) lt_read_opts_default(&dflt), o = &dflt;
    if (!name) name = "data";
    lt_data_format f = o->format == LT_DATA_AUTO ? lt_data_format_guess(name) : o->format;
    if (f != LT_DATA_JSONL && f != LT_DATA_JSON && f != LT_DATA_CSV && f != LT_DATA_TSV)
        return lt_err_set(err, LT_ERR_ARG, "%s: not a record file (%s); records are read from "
                          ".jsonl, .json, .csv or .tsv files (or give the format)", name,
                          lt_data_format_name(f));
    if (o->header > 1 || o->header < -1)
        return lt_err_set(err, LT_ERR_ARG, "header must be -1, 0 or 1");
    if (!r->path || strcmp(r->path, name) != 0) {
        char *p = lt_strdup(name);
        if (!p) return lt_err_set(err, LT_ERR_OOM, "out of memory");
        lt_free(r->path);
        r->path = p;
    }
    r->format = f;
    reader rd = {.r = r, .o = o};
    lt_status st;
    switch (f) {
    case LT_DATA_JSONL: st = read_jsonl(&rd, data, n); break;
    case LT_DATA_JSON: st = read_json(&rd, data, n); break;
    case LT_DATA_CSV: st = read_delimited(&rd, data, n, ',', true); break;
    default: st = read_delimited(&rd, data, n, '\t', false); break;
    }
    if (st) {
        if (err) *err = rd.e;
        return st;
    }
    return LT_OK;
}

lt_status lt_records_read(lt_records *r, const char *path, const lt_read_opts *o, lt_err *err) {
    char *text = NULL;
    size_t n = 0;
    lt_status st = lt_read_file(path, &text, &n, err);
    if (st) return st;
    st = lt_records_read_mem(r, text, n, path, o, err);
    lt_free(text);
    return st;
}
