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
 */
#ifndef LT_IO_H
#define LT_IO_H

#include "tensor/tensor.h"
#include <cjson/cJSON.h>
#include <stdio.h>

// ---------------------------------------------------------------------------------------------
// whole files and atomic writes

// Reads a whole file; *data is NUL-terminated (not counted in *n); caller lt_free()s it.
lt_status lt_read_file(const char *path, char **data, size_t *n, lt_err *err);
// Writes data to path atomically (temp file + fsync + rename).
lt_status lt_write_file_atomic(const char *path, const void *data, size_t n, lt_err *err);

// Streaming atomic writer: open, write through ->f, then commit (rename) or abort (unlink).
typedef struct lt_afile {
    FILE *f;
    char *path, *tmp;
} lt_afile;
lt_status lt_afile_open(lt_afile *a, const char *path, lt_err *err);
lt_status lt_afile_commit(lt_afile *a, lt_err *err); // closes; checks every write succeeded
void lt_afile_abort(lt_afile *a);                      // closes and removes the temp file

// Creates a directory (and parents) if missing.
lt_status lt_mkdir_p(const char *path, lt_err *err);
bool lt_file_exists(const char *path);
// Joins dir and name into buf; returns false if it does not fit.
bool lt_path_join(char *buf, size_t n, const char *dir, const char *name);

// ---------------------------------------------------------------------------------------------
// JSON (cJSON underneath)

// Parses a JSON file; on a syntax error the message names the file, line and column.
lt_status lt_json_parse_file(const char *path, cJSON **out, lt_err *err);
lt_status lt_json_parse(const char *text, size_t n, const char *what, cJSON **out, lt_err *err);
// Typed getters with defaults; *_req variants fail naming `what` and the key when the key is
// missing or of the wrong type.
int64_t lt_json_int(const cJSON *obj, const char *key, int64_t dflt);
double lt_json_num(const cJSON *obj, const char *key, double dflt);
bool lt_json_bool(const cJSON *obj, const char *key, bool dflt);
const char *lt_json_str(const cJSON *obj, const char *key, const char *dflt);
lt_status lt_json_int_req(const cJSON *obj, const char *key, const char *what, int64_t *out,
                          lt_err *err);

// ---------------------------------------------------------------------------------------------
// safetensors reading

typedef struct lt_st_tensor {
    const char *name;
    lt_dtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    const void *data; // inside the mapping, valid while the file is open
    size_t nbytes;
} lt_st_tensor;

typedef struct lt_safetensors lt_safetensors;

// mmaps the file read-only and validates the header. Close with lt_safetensors_close.
lt_status lt_safetensors_open(const char *path, lt_safetensors **out, lt_err *err);
void lt_safetensors_close(lt_safetensors *st);
int lt_safetensors_count(const lt_safetensors *st);
const lt_st_tensor *lt_safetensors_at(const lt_safetensors *st, int i);
const lt_st_tensor *lt_safetensors_find(const lt_safetensors *st, const char *name); // or NULL
const char *lt_safetensors_meta(const lt_safetensors *st, const char *key);         // or NULL
const char *lt_safetensors_path(const lt_safetensors *st);

// The weights of a Hugging Face model directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": name -> shard file). Tensors are views into the
// mmapped shards and stay valid until lt_st_set_close.
typedef struct lt_st_set lt_st_set;
lt_status lt_st_set_open_dir(const char *dir, lt_st_set **out, lt_err *err);
// Opens a single safetensors file as a set (for adapters).
lt_status lt_st_set_open_file(const char *path, lt_st_set **out, lt_err *err);
void lt_st_set_close(lt_st_set *s);
const lt_st_tensor *lt_st_set_find(const lt_st_set *s, const char *name); // or NULL
int lt_st_set_count(const lt_st_set *s);
const lt_st_tensor *lt_st_set_at(const lt_st_set *s, int i);
// Finds `name` and checks its dtype is a float dtype and its shape equals shape[0..ndim);
// the error names the tensor, the file, and expected vs found shape.
lt_status lt_st_set_get(const lt_st_set *s, const char *name, int ndim, const int64_t *shape,
                        const lt_st_tensor **out, lt_err *err);

// ---------------------------------------------------------------------------------------------
// safetensors writing

typedef struct lt_st_writer lt_st_writer;
lt_st_writer *lt_st_writer_new(void); // NULL on OOM
void lt_st_writer_free(lt_st_writer *w);
// Adds a tensor; data is BORROWED and must stay valid until lt_st_writer_write returns.
// Names must be unique. Tensors are written in the order added.
lt_status lt_st_writer_add(lt_st_writer *w, const char *name, lt_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, lt_err *err);
lt_status lt_st_writer_meta(lt_st_writer *w, const char *key, const char *value, lt_err *err);
// Writes the file atomically. Header padded with spaces to a multiple of 8 bytes.
lt_status lt_st_writer_write(lt_st_writer *w, const char *path, lt_err *err);

#endif
