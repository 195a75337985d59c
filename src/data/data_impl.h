/*
 * data_impl.h - helpers shared by the files of src/data (private to the module): a growable byte
 * buffer, UTF-8 validation, and the bad-record policy.
 */
#ifndef LT_DATA_IMPL_H
#define LT_DATA_IMPL_H

#include "data/data.h"

// A growable byte buffer, always NUL-terminated once anything was appended. Zero-initialise.
typedef struct lt_sbuf {
    char *p;
    size_t n, cap;
} lt_sbuf;

bool lt_sbuf_reserve(lt_sbuf *b, size_t extra); // false on OOM or overflow
bool lt_sbuf_add(lt_sbuf *b, const char *s, size_t n);
void lt_sbuf_deinit(lt_sbuf *b);

// Returns the length of the longest valid UTF-8 prefix of s[0..n) (n when all of it is valid).
// Rejects overlong forms, surrogates and code points above U+10FFFF, as the Unicode standard
// (Table 3-7) does.
size_t lt_utf8_valid_prefix(const char *s, size_t n);

// Applies the bad-record policy to status st (its message in err): LT_ERR_FORMAT under SKIP is
// counted in log (its message kept among the first notes) and gives LT_OK; anything else
// (STOP, OOM, I/O, unsupported) is returned as it is.
lt_status lt_bad_record(lt_bad_log *log, lt_on_bad on_bad, lt_status st, lt_err *err);

#endif
