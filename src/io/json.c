/*
 * json.c - JSON through cJSON (not our own parser): parsing with line:column error messages and
 * typed getters.
 *
 * cJSON's allocator is set (once per process) to lt_alloc/lt_free, so that allocation-failure
 * tests reach it; a per-thread flag records whether cJSON saw an allocation fail, because cJSON
 * itself reports out-of-memory as a parse failure. The error position comes from
 * cJSON_ParseWithLengthOpts' return_parse_end, not from the global cJSON_GetErrorPtr, so parsing
 * is safe from several threads.
 */
#include "io/io.h"
#include "io/io_impl.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// allocator hooks

static _Thread_local bool json_oom_flag; // per thread, reset before each parse

static void *json_malloc(size_t n) {
    void *p = lt_alloc(n);
    if (!p) json_oom_flag = true;
    return p;
}
static void json_free(void *p) { lt_free(p); }

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void install_hooks(void) {
    cJSON_Hooks h = {json_malloc, json_free};
    cJSON_InitHooks(&h);
}

void lt_io_json_hooks(void) { pthread_once(&hooks_once, install_hooks); }
void lt_io_json_oom_reset(void) { json_oom_flag = false; }
bool lt_io_json_oom(void) { return json_oom_flag; }

// ---------------------------------------------------------------------------------------------
// parsing

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Formats the position of `pos` in text as line:column plus a printable excerpt.
static void describe_pos(const char *text, size_t n, size_t pos, char *buf, size_t bn) {
    long line = 1, col = 1;
    for (size_t i = 0; i < pos && i < n; i++) {
        if (text[i] == '\n')
            line++, col = 1;
        else
            col++;
    }
    char near[24];
    size_t k = 0;
    for (size_t i = pos; i < n && k < 20; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') break;
        near[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    near[k] = 0;
    if (pos >= n)
        snprintf(buf, bn, "line %ld, column %ld (at end of input)", line, col);
    else
        snprintf(buf, bn, "line %ld, column %ld near '%s'", line, col, near);
}

lt_status lt_json_parse(const char *text, size_t n, const char *what, cJSON **out, lt_err *err) {
    if (!what) what = "JSON";
    size_t start = 0;
    while (start < n && is_ws(text[start])) start++;
    if (start == n) return lt_err_set(err, LT_ERR_FORMAT, "%s: empty JSON document", what);
    lt_io_json_hooks();
    lt_io_json_oom_reset();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        if (lt_io_json_oom())
            return lt_err_set(err, LT_ERR_OOM, "%s: out of memory parsing JSON (%zu bytes)", what,
                              n);
        size_t pos = (end && end >= text && end <= text + n) ? (size_t)(end - text) : 0;
        char where[96];
        describe_pos(text, n, pos, where, sizeof where);
        return lt_err_set(err, LT_ERR_FORMAT, "%s: JSON syntax error at %s", what, where);
    }
    // cJSON stops after the first value; anything but whitespace after it is an error.
    size_t pos = (end && end >= text && end <= text + n) ? (size_t)(end - text) : n;
    while (pos < n && is_ws(text[pos])) pos++;
    if (pos < n) {
        char where[96];
        describe_pos(text, n, pos, where, sizeof where);
        cJSON_Delete(root);
        return lt_err_set(err, LT_ERR_FORMAT,
                          "%s: unexpected characters after the JSON value at %s", what, where);
    }
    *out = root;
    return LT_OK;
}

lt_status lt_json_parse_file(const char *path, cJSON **out, lt_err *err) {
    char *text;
    size_t n;
    lt_status st = lt_read_file(path, &text, &n, err);
    if (st) return st;
    st = lt_json_parse(text, n, path, out, err);
    lt_free(text);
    return st;
}

// ---------------------------------------------------------------------------------------------
// typed getters

const char *lt_json_type_name(const cJSON *item) {
    if (!item) return "missing";
    if (cJSON_IsString(item)) return "string";
    if (cJSON_IsNumber(item)) return "number";
    if (cJSON_IsBool(item)) return "boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsArray(item)) return "array";
    if (cJSON_IsObject(item)) return "object";
    return "invalid";
}

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

bool lt_json_as_int(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    // [-2^63, 2^63) and integral; NaN fails both comparisons
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

int64_t lt_json_int(const cJSON *obj, const char *key, int64_t dflt) {
    int64_t v;
    return lt_json_as_int(get(obj, key), &v) ? v : dflt;
}

double lt_json_num(const cJSON *obj, const char *key, double dflt) {
    const cJSON *it = get(obj, key);
    return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

bool lt_json_bool(const cJSON *obj, const char *key, bool dflt) {
    const cJSON *it = get(obj, key);
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : dflt;
}

const char *lt_json_str(const cJSON *obj, const char *key, const char *dflt) {
    const cJSON *it = get(obj, key);
    return cJSON_IsString(it) && it->valuestring ? it->valuestring : dflt;
}

lt_status lt_json_int_req(const cJSON *obj, const char *key, const char *what, int64_t *out,
                          lt_err *err) {
    const cJSON *it = get(obj, key);
    int64_t v;
    if (lt_json_as_int(it, &v)) {
        *out = v;
        return LT_OK;
    }
    if (cJSON_IsNumber(it))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" is %g, expected an integer",
                          what ? what : "JSON", key, it->valuedouble);
    return lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" is %s, expected an integer",
                      what ? what : "JSON", key, lt_json_type_name(it));
}

lt_status lt_json_num_req(const cJSON *obj, const char *key, const char *what, double *out,
                          lt_err *err) {
    const cJSON *it = get(obj, key);
    if (!cJSON_IsNumber(it))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" is %s, expected a number",
                          what ? what : "JSON", key, lt_json_type_name(it));
    *out = it->valuedouble;
    return LT_OK;
}

lt_status lt_json_bool_req(const cJSON *obj, const char *key, const char *what, bool *out,
                           lt_err *err) {
    const cJSON *it = get(obj, key);
    if (!cJSON_IsBool(it))
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" is %s, expected a boolean",
                          what ? what : "JSON", key, lt_json_type_name(it));
    *out = cJSON_IsTrue(it);
    return LT_OK;
}

lt_status lt_json_str_req(const cJSON *obj, const char *key, const char *what, const char **out,
                          lt_err *err) {
    const cJSON *it = get(obj, key);
    if (!cJSON_IsString(it) || !it->valuestring)
        return lt_err_set(err, LT_ERR_FORMAT, "%s: \"%s\" is %s, expected a string",
                          what ? what : "JSON", key, lt_json_type_name(it));
    *out = it->valuestring;
    return LT_OK;
}
