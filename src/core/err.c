// err.c - lt_err helpers and the assertion handler.
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_status lt_err_set(lt_err *err, lt_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

lt_status lt_err_wrap(lt_err *err, const char *fmt, ...) {
    if (!err) return LT_ERR_ARG;
    char prefix[256], old[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = 0;
    // "prefix: old", cut to fit
    size_t np = strlen(prefix), no = strlen(old), cap = sizeof err->msg - 1, o = 0;
    if (np > cap) np = cap;
    memcpy(err->msg, prefix, np), o = np;
    if (o + 2 <= cap) memcpy(err->msg + o, ": ", 2), o += 2;
    if (no > cap - o) no = cap - o;
    memcpy(err->msg + o, old, no), o += no;
    err->msg[o] = 0;
    return err->code;
}

const char *lt_status_name(lt_status s) {
    switch (s) {
    case LT_OK: return "ok";
    case LT_ERR_IO: return "i/o error";
    case LT_ERR_FORMAT: return "format error";
    case LT_ERR_SHAPE: return "shape error";
    case LT_ERR_UNSUPPORTED: return "unsupported";
    case LT_ERR_OOM: return "out of memory";
    case LT_ERR_ARG: return "bad argument";
    case LT_ERR_DEVICE: return "device error";
    }
    return "unknown error";
}

void lt_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "loratune: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
    abort();
}
