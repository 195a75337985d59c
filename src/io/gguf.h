/*
 * gguf.h - GGUF files (llama.cpp / ggml): reader (mmap, validated) and writer.
 *
 * Format (GGUF v2 and v3; all integers little-endian; no alignment inside the header):
 *   u32  magic            "GGUF" = bytes 47 47 55 46 (0x46554747 read as a u32)
 *   u32  version          2 or 3 (v1 had u32 counts and is not supported; v3 only adds the
 *                         possibility of big-endian files, which are not supported either)
 *   u64  n_tensors
 *   u64  n_kv
 *   n_kv times, a key/value pair:
 *        string key       (a GGUF string: u64 length in bytes, then the bytes, no NUL; UTF-8)
 *        u32    type      lt_gguf_type below
 *        value            UINT8/INT8/BOOL: 1 byte (bool 0 or 1); UINT16/INT16: 2;
 *                         UINT32/INT32/FLOAT32: 4; UINT64/INT64/FLOAT64: 8; STRING: a GGUF
 *                         string; ARRAY: u32 element type, u64 count, then count values of
 *                         that type packed back to back (an element may itself be an ARRAY)
 *   n_tensors times, a tensor info:
 *        string name      (< 64 bytes, ggml's GGML_MAX_NAME)
 *        u32    n_dims    0..4
 *        u64    ne[n_dims]  elements per dimension, ne[0] the innermost (contiguous) one
 *        u32    type      ggml type (F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, BF16 = 30,
 *                         ...); ne[0] must be a multiple of the type's block size
 *        u64    offset    of the tensor data from the start of the data section; a multiple
 *                         of the alignment
 *   padding               zeros up to a multiple of the alignment (from the start of the file)
 *   data section          the tensors' bytes; ggml writers pad each to the alignment
 * The alignment is the u32 value of "general.alignment" if present (a power of two), else 32.
 * Reference: ggml/docs/gguf.md and ggml/src/gguf.cpp (whose validation this reader follows).
 *
 * Shapes: GGUF lists dimensions innermost first (ne[0] = columns). lt_gguf_tensor gives both
 * ne[] in GGUF order and shape[] in row-major order (shape[i] = ne[n_dims-1-i], as numpy,
 * PyTorch and safetensors write it). A weight stored by llama.cpp as ne = {in, out} is the
 * row-major (out, in) matrix of PyTorch's nn.Linear. The writer takes row-major shapes and
 * writes ne[] reversed, so the two directions agree.
 *
 * Validation on open: magic, version, counts against the bytes left, every string and array
 * inside the file, known value types, nested arrays at most LT_GGUF_MAX_DEPTH deep, keys
 * non-empty, unique and free of NUL bytes, general.alignment a u32 power of two, tensor names
 * non-empty, < 64 bytes, unique, n_dims <= 4, dims >= 0, element and byte counts that do not
 * overflow, known ggml type, rows a multiple of the block size, offsets aligned, every tensor
 * inside the data section, no two tensors overlapping. Errors name the file and the key or
 * tensor and say what was expected and what was found.
 * Tensors of ggml types loratune does not compute with (Q4_K, Q6_K, IQ*, ...) are still
 * validated and listed (dtype == LT_DTYPE_COUNT); lt_gguf_get_tensor refuses them with
 * LT_ERR_UNSUPPORTED naming the tensor and the type.
 * Not done here: dequantisation (tensor/), byte swapping for big-endian files.
 */
#ifndef LT_GGUF_H
#define LT_GGUF_H

#include "tensor/tensor.h"
#include <stdbool.h>

#define LT_GGUF_MAGIC 0x46554747u // "GGUF"
#define LT_GGUF_DEFAULT_ALIGNMENT 32
#define LT_GGUF_MAX_DIMS 4
#define LT_GGUF_MAX_NAME 64 // tensor names are shorter than this (ggml GGML_MAX_NAME)
#define LT_GGUF_MAX_DEPTH 8 // nesting of arrays within arrays accepted by the reader

typedef enum {
    LT_GGUF_TYPE_UINT8 = 0,
    LT_GGUF_TYPE_INT8 = 1,
    LT_GGUF_TYPE_UINT16 = 2,
    LT_GGUF_TYPE_INT16 = 3,
    LT_GGUF_TYPE_UINT32 = 4,
    LT_GGUF_TYPE_INT32 = 5,
    LT_GGUF_TYPE_FLOAT32 = 6,
    LT_GGUF_TYPE_BOOL = 7,
    LT_GGUF_TYPE_STRING = 8,
    LT_GGUF_TYPE_ARRAY = 9,
    LT_GGUF_TYPE_UINT64 = 10,
    LT_GGUF_TYPE_INT64 = 11,
    LT_GGUF_TYPE_FLOAT64 = 12,
    LT_GGUF_TYPE_COUNT
} lt_gguf_type;

// ggml tensor types (ggml.h enum ggml_type) that loratune names; other known ids are listed
// by lt_ggml_type_name.
enum {
    LT_GGML_TYPE_F32 = 0,
    LT_GGML_TYPE_F16 = 1,
    LT_GGML_TYPE_Q4_0 = 2,
    LT_GGML_TYPE_Q4_1 = 3,
    LT_GGML_TYPE_Q5_0 = 6,
    LT_GGML_TYPE_Q5_1 = 7,
    LT_GGML_TYPE_Q8_0 = 8,
    LT_GGML_TYPE_Q2_K = 10,
    LT_GGML_TYPE_Q3_K = 11,
    LT_GGML_TYPE_Q4_K = 12,
    LT_GGML_TYPE_Q5_K = 13,
    LT_GGML_TYPE_Q6_K = 14,
    LT_GGML_TYPE_I8 = 24,
    LT_GGML_TYPE_I16 = 25,
    LT_GGML_TYPE_I32 = 26,
    LT_GGML_TYPE_I64 = 27,
    LT_GGML_TYPE_F64 = 28,
    LT_GGML_TYPE_BF16 = 30,
};

const char *lt_gguf_type_name(lt_gguf_type t); // "u8", "i32", "f32", "str", "arr", ...; "?"
const char *lt_ggml_type_name(uint32_t t);     // "f32", "q8_0", "q6_K", ...; NULL if unknown
// ggml type -> lt dtype (F32, F16, BF16, Q8_0, Q4_0, Q4_1, F64, I8, I16, I32, I64); false for
// the others. And back: false for lt dtypes GGUF cannot hold (U8, BOOL).
bool lt_ggml_to_dtype(uint32_t ggml_type, lt_dtype *out);
bool lt_dtype_to_ggml(lt_dtype t, uint32_t *out);

// ---------------------------------------------------------------------------------------------
// reading

typedef struct lt_gguf lt_gguf;

typedef struct lt_gguf_tensor {
    const char *name;
    uint32_t ggml_type;              // raw type id from the file
    lt_dtype dtype;                  // LT_DTYPE_COUNT when loratune does not support ggml_type
    int n_dims;                      // 0..4 as in the file (0: one element)
    int64_t ne[LT_GGUF_MAX_DIMS];    // GGUF order, ne[0] innermost; entries >= n_dims are 1
    int64_t shape[LT_GGUF_MAX_DIMS]; // row-major: shape[i] = ne[n_dims-1-i], i < n_dims
    int64_t numel;
    uint64_t offset; // from the start of the data section (a multiple of the alignment)
    // In the read-only mapping, valid until lt_gguf_close; aligned to the file's alignment
    // relative to a page-aligned mapping (so at least 32 bytes for ggml-written files).
    const void *data;
    size_t nbytes;
} lt_gguf_tensor;

// mmaps and validates the file (see the top of this header). Close with lt_gguf_close.
// Errors: LT_ERR_IO, LT_ERR_FORMAT, LT_ERR_UNSUPPORTED (version 1 or > 3, big-endian), LT_ERR_OOM.
// All strings and tensors returned below belong to the object and stay valid until close.
lt_status lt_gguf_open(const char *path, lt_gguf **out, lt_err *err);
// The same over a caller's buffer (BORROWED: must outlive the object). `name` is used in
// messages in place of a path.
lt_status lt_gguf_open_mem(const void *data, size_t n, const char *name, lt_gguf **out,
                           lt_err *err);
void lt_gguf_close(lt_gguf *g); // NULL does nothing

const char *lt_gguf_path(const lt_gguf *g);
uint32_t lt_gguf_version(const lt_gguf *g);
size_t lt_gguf_alignment(const lt_gguf *g);
size_t lt_gguf_data_offset(const lt_gguf *g); // file offset of the data section

// Key/value pairs, in file order.
int64_t lt_gguf_kv_count(const lt_gguf *g);
const char *lt_gguf_kv_key(const lt_gguf *g, int64_t i);     // NULL when out of range
lt_gguf_type lt_gguf_kv_type(const lt_gguf *g, int64_t i);   // LT_GGUF_TYPE_COUNT when out of range
int64_t lt_gguf_find_key(const lt_gguf *g, const char *key); // its index, or -1

// Typed getters. They fail with LT_ERR_FORMAT naming the file and the key when the key is
// missing ("not found") or has another type ("is i32, expected u32"); *out is written only on
// success. Strings are NUL-terminated copies owned by g; *len (may be NULL) gives the length
// in bytes (GGUF strings may contain NUL bytes; keys and tensor names may not).
lt_status lt_gguf_get_u32(const lt_gguf *g, const char *key, uint32_t *out, lt_err *err);
lt_status lt_gguf_get_i32(const lt_gguf *g, const char *key, int32_t *out, lt_err *err);
lt_status lt_gguf_get_f32(const lt_gguf *g, const char *key, float *out, lt_err *err);
lt_status lt_gguf_get_bool(const lt_gguf *g, const char *key, bool *out, lt_err *err);
lt_status lt_gguf_get_str(const lt_gguf *g, const char *key, const char **out, size_t *len,
                          lt_err *err);
// Lenient numeric getters: any integer type (u8..i64; a u64 above INT64_MAX fails) and any
// float type (f32, f64) respectively. For hyper-parameters written with varying widths.
lt_status lt_gguf_get_int(const lt_gguf *g, const char *key, int64_t *out, lt_err *err);
lt_status lt_gguf_get_float(const lt_gguf *g, const char *key, double *out, lt_err *err);

// Arrays. _arr_info gives the element type and count (the key must hold an array).
lt_status lt_gguf_get_arr_info(const lt_gguf *g, const char *key, lt_gguf_type *elem_type,
                               uint64_t *n, lt_err *err);
// Element i of an array of strings (e.g. tokenizer.ggml.tokens); i out of range is LT_ERR_ARG.
lt_status lt_gguf_get_arr_str(const lt_gguf *g, const char *key, uint64_t i, const char **out,
                              size_t *len, lt_err *err);
// Copies elements [0, n) of an array of scalars into dst (n * element size bytes); elem_type
// must equal the array's element type and n must not exceed its length. Bools are one byte
// each (0/1). The array data in the file is unaligned, hence the copy.
lt_status lt_gguf_get_arr_data(const lt_gguf *g, const char *key, lt_gguf_type elem_type, void *dst,
                               uint64_t n, lt_err *err);
// Nested arrays: the reader accepts them; this gives element i of an array of arrays as an
// opaque handle usable with the lt_gguf_arr_* functions below (NULL when not such an array).
typedef struct lt_gguf_value lt_gguf_value;
const lt_gguf_value *lt_gguf_get_value(const lt_gguf *g, const char *key); // NULL if missing
lt_gguf_type lt_gguf_value_type(const lt_gguf_value *v);
lt_gguf_type lt_gguf_arr_type(const lt_gguf_value *v); // element type; COUNT if not an array
uint64_t lt_gguf_arr_len(const lt_gguf_value *v);      // 0 if not an array
const lt_gguf_value *lt_gguf_arr_at(const lt_gguf_value *v, uint64_t i); // arrays of arrays only

// Tensors, in file order.
int64_t lt_gguf_tensor_count(const lt_gguf *g);
const lt_gguf_tensor *lt_gguf_tensor_at(const lt_gguf *g, int64_t i);          // NULL out of range
const lt_gguf_tensor *lt_gguf_find_tensor(const lt_gguf *g, const char *name); // or NULL
// Finds a tensor loratune can compute with: missing -> LT_ERR_FORMAT; a ggml type without an
// lt dtype -> LT_ERR_UNSUPPORTED, both naming the tensor, the file and the type.
lt_status lt_gguf_get_tensor(const lt_gguf *g, const char *name, const lt_gguf_tensor **out,
                             lt_err *err);

// ---------------------------------------------------------------------------------------------
// writing

// Collects key/value pairs and tensors, then writes a GGUF v3 file atomically (temp file +
// rename): header, kv pairs in the order first set, tensor infos in the order added, zero
// padding to the alignment, each tensor's data padded to the alignment (as ggml writes it).
// The alignment is general.alignment when set (it must be a u32 power of two), else 32.
// Keys are copied; setting a key again replaces its value in place. Array values are copied.
// Tensor data is BORROWED until lt_gguf_writer_write returns.
typedef struct lt_gguf_writer lt_gguf_writer;
lt_gguf_writer *lt_gguf_writer_new(void);    // NULL on OOM
void lt_gguf_writer_free(lt_gguf_writer *w); // NULL does nothing

lt_status lt_gguf_writer_set_u8(lt_gguf_writer *w, const char *key, uint8_t v, lt_err *err);
lt_status lt_gguf_writer_set_i8(lt_gguf_writer *w, const char *key, int8_t v, lt_err *err);
lt_status lt_gguf_writer_set_u16(lt_gguf_writer *w, const char *key, uint16_t v, lt_err *err);
lt_status lt_gguf_writer_set_i16(lt_gguf_writer *w, const char *key, int16_t v, lt_err *err);
lt_status lt_gguf_writer_set_u32(lt_gguf_writer *w, const char *key, uint32_t v, lt_err *err);
lt_status lt_gguf_writer_set_i32(lt_gguf_writer *w, const char *key, int32_t v, lt_err *err);
lt_status lt_gguf_writer_set_f32(lt_gguf_writer *w, const char *key, float v, lt_err *err);
lt_status lt_gguf_writer_set_u64(lt_gguf_writer *w, const char *key, uint64_t v, lt_err *err);
lt_status lt_gguf_writer_set_i64(lt_gguf_writer *w, const char *key, int64_t v, lt_err *err);
lt_status lt_gguf_writer_set_f64(lt_gguf_writer *w, const char *key, double v, lt_err *err);
lt_status lt_gguf_writer_set_bool(lt_gguf_writer *w, const char *key, bool v, lt_err *err);
lt_status lt_gguf_writer_set_str(lt_gguf_writer *w, const char *key, const char *v, lt_err *err);
// An array of n scalars of elem_type (not STRING or ARRAY) read from data (host layout: e.g.
// float[] for FLOAT32, one byte per bool).
lt_status lt_gguf_writer_set_arr(lt_gguf_writer *w, const char *key, lt_gguf_type elem_type,
                                 const void *data, uint64_t n, lt_err *err);
// An array of n NUL-terminated strings (e.g. tokenizer.ggml.tokens).
lt_status lt_gguf_writer_set_arr_str(lt_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n, lt_err *err);
// Adds a tensor with a ROW-MAJOR shape (shape[ndim-1] contiguous; written as ne[] reversed).
// dtype F32, F16, BF16, Q8_0, Q4_0, Q4_1, F64, I8, I16, I32 or I64; 1 <= ndim <= 4; quantised
// dtypes need shape[ndim-1] to be a multiple of 32. Name unique, non-empty, < 64 bytes.
// Violations are LT_ERR_ARG.
lt_status lt_gguf_writer_add_tensor(lt_gguf_writer *w, const char *name, lt_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data, lt_err *err);
lt_status lt_gguf_writer_write(lt_gguf_writer *w, const char *path, lt_err *err);

#endif
