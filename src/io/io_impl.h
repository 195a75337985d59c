/*
 * io_impl.h - helpers shared by the files of src/io (private to the module; the rest of src/
 * uses io.h and gguf.h only): read-only file mappings, a name -> index hash table, a growable
 * byte buffer for building headers, UTF-8 validation and little-endian loads/stores.
 */
#ifndef LT_IO_IMPL_H
#define LT_IO_IMPL_H

#include "core/core.h"
#include "tensor/tensor.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// read-only file mapping

typedef struct lt_io_map {
    const uint8_t *data; // NULL for an empty file
    size_t size;
} lt_io_map;

// mmaps a regular file read-only (MAP_PRIVATE). An empty file gives data == NULL, size == 0.
// Errors: LT_ERR_IO naming the path and the system error.
lt_status lt_io_map_file(const char *path, lt_io_map *m, lt_err *err);
void lt_io_unmap(lt_io_map *m);

// ---------------------------------------------------------------------------------------------
// name -> index hash table (open addressing); names are owned by the caller and must stay
// valid and unchanged while the table is used.

typedef struct lt_io_index {
    uint32_t *slots;   // 0 = empty, else index + 1
    const char **keys; // keys[i] = name of entry i (borrowed)
    size_t cap;        // power of two, > 2 * max entries
    size_t n;
} lt_io_index;

// Sizes the table for up to max_n entries. LT_ERR_OOM on failure.
lt_status lt_io_index_init(lt_io_index *ix, size_t max_n, lt_err *err);
void lt_io_index_deinit(lt_io_index *ix);
// Adds name as entry number n (entries are numbered in insertion order). Returns -1 when
// added, or the number of the earlier entry with the same name (nothing is added then).
long lt_io_index_add(lt_io_index *ix, const char *name);
long lt_io_index_find(const lt_io_index *ix, const char *name); // -1 when missing

// ---------------------------------------------------------------------------------------------
// growable byte buffer

typedef struct lt_io_buf {
    char *data;
    size_t len, cap;
    bool oom; // set when an append failed; later appends do nothing
} lt_io_buf;

void lt_io_buf_append(lt_io_buf *b, const void *p, size_t n);
void lt_io_buf_puts(lt_io_buf *b, const char *s);
void lt_io_buf_printf(lt_io_buf *b, const char *fmt, ...) LT_PRINTF(2, 3);
// Appends s as a JSON string literal (quotes included), escaping '"', '\\' and control bytes.
void lt_io_buf_json_str(lt_io_buf *b, const char *s);
void lt_io_buf_free(lt_io_buf *b);

// ---------------------------------------------------------------------------------------------
// misc

// True for the dtypes a safetensors file can hold (the reader produces only these).
bool lt_st_dtype_ok(lt_dtype t);

// True when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). When false,
// *bad is the offset of the first invalid byte.
bool lt_io_utf8_valid(const char *s, size_t n, size_t *bad);

// Installs lt_alloc/lt_free as cJSON's allocator (once per process) so that failure injection
// reaches JSON parsing, and resets/reads a per-thread "cJSON ran out of memory" flag.
void lt_io_json_hooks(void);
void lt_io_json_oom_reset(void);
bool lt_io_json_oom(void);

static inline uint32_t lt_io_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t lt_io_le64(const uint8_t *p) {
    return (uint64_t)lt_io_le32(p) | (uint64_t)lt_io_le32(p + 4) << 32;
}
static inline void lt_io_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void lt_io_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#endif
