/*
 * io.h - files: whole-file reads, atomic writes, JSON, safetensors (read via mmap, write).
 *
 * Atomic writes: every output goes to "<path>.tmp.<pid>" first and is renamed over <path> only
 * when complete and flushed, so a crash never leaves a half-written file under the final name.
 *
 * safetensors (https://github.com/huggingface/safetensors):
 *   bytes 0..7   : N, little-endian u64, length of the JSON header
 *   bytes 8..8+N : UTF-8 JSON object {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 *                  ..., optional "__metadata__": {str: str}}; may be padded with spaces
 *   rest         : the byte buffer; offsets are relative to its start, b <= e, e - b equals
 *                  nbytes(dtype, shape), tensors do not overlap and lie inside the file.
 * The reader validates all of this and reports the file and tensor on any violation.
 * Unused gaps between tensors and trailing bytes are accepted (the reference rejects them).
 * Errors: LT_ERR_IO (open/read/write/rename), LT_ERR_FORMAT (the file breaks its format; the
 * message names the file, the tensor and expected vs found), LT_ERR_UNSUPPORTED (a valid
 * safetensors dtype loratune does not handle: U16, U32, U64, F8_*), LT_ERR_OOM.
 * Files: file.c (files, atomic writes), json.c, safetensors.c (reader, sets), st_writer.c.
 */
#ifndef LT_IO_H
#define LT_IO_H

#include "tensor/tensor.h"
#include <cjson/cJSON.h>
#include <stdio.h>

// ---------------------------------------------------------------------------------------------
// whole files and atomic writes

// Reads a whole file; *data is NUL-terminated (not counted in *n); caller lt_free()s it.
// Errors: LT_ERR_IO (missing, unreadable, a directory), LT_ERR_OOM.
lt_status lt_read_file(const char *path, char **data, size_t *n, lt_err *err);
// Writes data to path atomically (temp file + fsync + rename).
lt_status lt_write_file_atomic(const char *path, const void *data, size_t n, lt_err *err);

// Streaming atomic writer: open, write through ->f, then commit (rename) or abort (unlink).
// The caller owns the struct; open allocates path/tmp, and commit or abort (exactly one of them,
// after a successful open) releases everything, whatever the outcome. Write errors on ->f need
// not be checked by the caller: commit checks ferror, fflush, fsync and fclose, and on any
// failure removes the temp file and returns LT_ERR_IO naming it.
typedef struct lt_afile {
    FILE *f;
    char *path, *tmp;
} lt_afile;
lt_status lt_afile_open(lt_afile *a, const char *path, lt_err *err);
lt_status lt_afile_commit(lt_afile *a, lt_err *err); // closes; checks every write succeeded
void lt_afile_abort(lt_afile *a);                      // closes and removes the temp file

// Creates a directory (and parents) if missing. LT_ERR_IO when a component exists and is not
// a directory or cannot be created.
lt_status lt_mkdir_p(const char *path, lt_err *err);
bool lt_file_exists(const char *path); // anything stat() can see (file, directory, ...)
// Joins dir and name into buf ("dir/name"; no extra '/' when dir ends with one; name alone
// when dir is empty or name is absolute); returns false if it does not fit.
bool lt_path_join(char *buf, size_t n, const char *dir, const char *name);

// ---------------------------------------------------------------------------------------------
// JSON (cJSON underneath)

// Parses a JSON file; on a syntax error the message names the file, line and column.
// The caller frees *out with cJSON_Delete. cJSON allocates through lt_alloc (hooks installed
// on first use), so allocation-failure injection reaches it; its OOM gives LT_ERR_OOM.
lt_status lt_json_parse_file(const char *path, cJSON **out, lt_err *err);
// Parses text[0..n) (need not be NUL-terminated). `what` names the source in messages
// ("config.json", "train.jsonl line 12"). Exactly one JSON value, surrounded by optional
// whitespace; anything after it is LT_ERR_FORMAT with its line:column.
lt_status lt_json_parse(const char *text, size_t n, const char *what, cJSON **out, lt_err *err);
// Typed getters with defaults; *_req variants fail naming `what` and the key when the key is
// missing or of the wrong type. obj may be NULL or a non-object (then the default is returned).
// lt_json_int accepts only integral numbers in int64 range (1.0 yes, 1.5 and 1e30 give dflt).
int64_t lt_json_int(const cJSON *obj, const char *key, int64_t dflt);
double lt_json_num(const cJSON *obj, const char *key, double dflt);
bool lt_json_bool(const cJSON *obj, const char *key, bool dflt);
// The returned string belongs to obj (valid until cJSON_Delete).
const char *lt_json_str(const cJSON *obj, const char *key, const char *dflt);
lt_status lt_json_int_req(const cJSON *obj, const char *key, const char *what, int64_t *out,
                          lt_err *err);
lt_status lt_json_num_req(const cJSON *obj, const char *key, const char *what, double *out,
                          lt_err *err);
lt_status lt_json_bool_req(const cJSON *obj, const char *key, const char *what, bool *out,
                           lt_err *err);
lt_status lt_json_str_req(const cJSON *obj, const char *key, const char *what, const char **out,
                          lt_err *err);
// An item as an integer (integral number in int64 range); false otherwise. *out set on success.
bool lt_json_as_int(const cJSON *item, int64_t *out);
// "string", "number", "boolean", "null", "array", "object", or "missing" for NULL: for messages.
const char *lt_json_type_name(const cJSON *item);

// ---------------------------------------------------------------------------------------------
// safetensors reading

typedef struct lt_st_tensor {
    const char *name;
    lt_dtype dtype;   // F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL
    int ndim;         // 0..8 (0: a scalar, numel 1)
    int64_t shape[8]; // row-major, as in the file: shape[ndim-1] is contiguous
    int64_t numel;
    // Inside the mapping, valid while the file is open. Aligned only as far as the file's
    // offsets are (a page-aligned mapping + 8 + header length + data_offsets[0]); files from
    // lt_st_writer and from Python's safetensors keep 8-byte alignment of the data area, but an
    // odd-sized tensor shifts the ones after it. Read through memcpy when in doubt.
    const void *data;
    size_t nbytes;
} lt_st_tensor;

typedef struct lt_safetensors lt_safetensors;

// mmaps the file read-only and validates the header. Close with lt_safetensors_close.
// All strings returned by the functions below belong to the file object (valid until close).
lt_status lt_safetensors_open(const char *path, lt_safetensors **out, lt_err *err);
// The same over a caller's buffer (BORROWED: it must outlive the object; nothing is copied).
// `name` stands for the file in messages. For fuzzing and for files already in memory.
lt_status lt_safetensors_open_mem(const void *data, size_t n, const char *name,
                                  lt_safetensors **out, lt_err *err);
void lt_safetensors_close(lt_safetensors *st); // NULL does nothing
int lt_safetensors_count(const lt_safetensors *st);
// Tensors in header order; NULL when i is out of range.
const lt_st_tensor *lt_safetensors_at(const lt_safetensors *st, int i);
const lt_st_tensor *lt_safetensors_find(const lt_safetensors *st, const char *name); // or NULL
const char *lt_safetensors_meta(const lt_safetensors *st, const char *key);         // or NULL
// __metadata__ entries in file order: returns the key (NULL past the end), *value its value.
int lt_safetensors_meta_count(const lt_safetensors *st);
const char *lt_safetensors_meta_at(const lt_safetensors *st, int i, const char **value);
const char *lt_safetensors_path(const lt_safetensors *st);

// The weights of a Hugging Face model directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": name -> shard file). Tensors are views into the
// mmapped shards and stay valid until lt_st_set_close.
// model.safetensors wins when both exist (as in transformers). With an index, the set holds
// exactly the tensors of weight_map, in its order; each shard is opened once; shard names must
// be plain file names in dir; a tensor listed but missing from its shard is LT_ERR_FORMAT
// naming the tensor, the index and the shard. Neither file present: LT_ERR_IO.
typedef struct lt_st_set lt_st_set;
lt_status lt_st_set_open_dir(const char *dir, lt_st_set **out, lt_err *err);
// Opens a single safetensors file as a set (for adapters).
lt_status lt_st_set_open_file(const char *path, lt_st_set **out, lt_err *err);
void lt_st_set_close(lt_st_set *s); // NULL does nothing
const lt_st_tensor *lt_st_set_find(const lt_st_set *s, const char *name); // or NULL
int lt_st_set_count(const lt_st_set *s);
const lt_st_tensor *lt_st_set_at(const lt_st_set *s, int i);
// The path of the file holding tensor `name`, or NULL when the set has no such tensor.
const char *lt_st_set_file_of(const lt_st_set *s, const char *name);
// Finds `name` and checks its dtype is a float dtype and its shape equals shape[0..ndim);
// the error names the tensor, the file, and expected vs found shape.
// Errors: missing -> LT_ERR_FORMAT, not a float dtype -> LT_ERR_FORMAT, shape -> LT_ERR_SHAPE.
lt_status lt_st_set_get(const lt_st_set *s, const char *name, int ndim, const int64_t *shape,
                        const lt_st_tensor **out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// safetensors writing

typedef struct lt_st_writer lt_st_writer;
lt_st_writer *lt_st_writer_new(void); // NULL on OOM
void lt_st_writer_free(lt_st_writer *w);
// Adds a tensor; data is BORROWED and must stay valid until lt_st_writer_write returns.
// Names must be unique, non-empty, valid UTF-8 and not "__metadata__"; dtype one of the
// safetensors dtypes (not Q8_0/Q4_0/Q4_1); 0 <= ndim <= 8. Violations are LT_ERR_ARG.
// Tensors are written in the order added, back to back after the header.
lt_status lt_st_writer_add(lt_st_writer *w, const char *name, lt_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, lt_err *err);
// Sets a __metadata__ entry (key and value copied; setting a key again replaces its value).
lt_status lt_st_writer_meta(lt_st_writer *w, const char *key, const char *value, lt_err *err);
// Writes the file atomically. Header padded with spaces to a multiple of 8 bytes.
lt_status lt_st_writer_write(lt_st_writer *w, const char *path, lt_err *err);

#endif
