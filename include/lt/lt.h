/*
 * lt.h - the public interface of loratune: status codes and the error record.
 *
 * Every function that can fail returns lt_status and takes `lt_err *err` as its last argument.
 * On failure it fills err with the code and a message that names the file, record or tensor, and
 * what was expected against what was found. lt_err allocates nothing, so it can still report OOM.
 * `err` may be NULL when the caller does not want the message.
 */
#ifndef LT_H
#define LT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define LT_API __attribute__((visibility("default")))
#define LT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LT_API
#define LT_PRINTF(a, b)
#endif

typedef enum {
    LT_OK = 0,
    LT_ERR_IO,          // a file could not be opened, read, written or renamed
    LT_ERR_FORMAT,      // a file or record does not follow its format
    LT_ERR_SHAPE,       // tensor shapes do not agree
    LT_ERR_UNSUPPORTED, // valid input that loratune does not handle (yet)
    LT_ERR_OOM,         // allocation failed
    LT_ERR_ARG,         // a bad argument or flag from the caller
    LT_ERR_DEVICE,      // accelerator failure
} lt_status;

typedef struct lt_err {
    lt_status code;
    char msg[256];
} lt_err;

// Sets err (when not NULL) and returns code, so that `return lt_err_set(err, ...)` reads well.
LT_API lt_status lt_err_set(lt_err *err, lt_status code, const char *fmt, ...) LT_PRINTF(3, 4);
// Prepends "prefix: " to the message already in err (keeps the code). Returns err->code.
LT_API lt_status lt_err_wrap(lt_err *err, const char *fmt, ...) LT_PRINTF(2, 3);
LT_API const char *lt_status_name(lt_status s);

#endif
