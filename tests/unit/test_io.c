/*
 * test_io.c - files, atomic writes, JSON, safetensors read/write, sharded model directories,
 * malformed inputs (each must give LT_ERR_FORMAT naming the file), allocation-failure sweeps,
 * and files written by Python's safetensors (tests/fixtures/io, made by tools/make_io_fixtures.py).
 */
#include "core/core.h"
#include "io/io.h"
#include "test.h"

#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static const char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}

static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

// ---------------------------------------------------------------------------------------------

static void test_files(void) {
    lt_err e = {0};
    char *data;
    size_t n;
    CHECK(lt_read_file(tpath("nope"), &data, &n, &e) == LT_ERR_IO);
    CHECK(strstr(e.msg, "nope") != NULL);
    CHECK(lt_read_file(tmpdir, &data, &n, &e) == LT_ERR_IO);

    CHECK_OK(lt_write_file_atomic(tpath("a.txt"), "hello\nworld", 11, &e), &e);
    CHECK_OK(lt_read_file(tpath("a.txt"), &data, &n, &e), &e);
    CHECK(n == 11 && memcmp(data, "hello\nworld", 12) == 0); // NUL-terminated
    lt_free(data);
    CHECK_OK(lt_write_file_atomic(tpath("empty"), NULL, 0, &e), &e);
    CHECK_OK(lt_read_file(tpath("empty"), &data, &n, &e), &e);
    CHECK(n == 0 && data[0] == 0);
    lt_free(data);

    // aborted atomic write: neither the final name nor the temp file remains
    lt_afile a;
    CHECK_OK(lt_afile_open(&a, tpath("aborted.bin"), &e), &e);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", a.tmp);
    fputs("partial", a.f);
    CHECK(lt_file_exists(tmp));
    lt_afile_abort(&a);
    CHECK(!lt_file_exists(tpath("aborted.bin")));
    CHECK(!lt_file_exists(tmp));
    // an aborted rewrite keeps the old content
    CHECK_OK(lt_afile_open(&a, tpath("a.txt"), &e), &e);
    fputs("new content", a.f);
    lt_afile_abort(&a);
    CHECK_OK(lt_read_file(tpath("a.txt"), &data, &n, &e), &e);
    CHECK(n == 11 && memcmp(data, "hello", 5) == 0);
    lt_free(data);
    // commit into a missing directory fails at open, naming the temp path
    CHECK(lt_afile_open(&a, tpath("no/such/dir/x"), &e) == LT_ERR_IO);
    CHECK(strstr(e.msg, "no/such/dir/x.tmp.") != NULL);

    // directories and paths
    CHECK_OK(lt_mkdir_p(tpath("d1/d2/d3/"), &e), &e);
    CHECK_OK(lt_mkdir_p(tpath("d1/d2"), &e), &e); // exists already
    CHECK(lt_file_exists(tpath("d1/d2/d3")));
    CHECK(lt_mkdir_p(tpath("a.txt/sub"), &e) == LT_ERR_IO);
    char buf[32];
    CHECK(lt_path_join(buf, sizeof buf, "dir", "f.json") && strcmp(buf, "dir/f.json") == 0);
    CHECK(lt_path_join(buf, sizeof buf, "dir/", "f") && strcmp(buf, "dir/f") == 0);
    CHECK(lt_path_join(buf, sizeof buf, "", "f") && strcmp(buf, "f") == 0);
    CHECK(lt_path_join(buf, sizeof buf, "dir", "/abs") && strcmp(buf, "/abs") == 0);
    CHECK(!lt_path_join(buf, 8, "directory", "file"));
    CHECK(!lt_file_exists(tpath("nope")));
}

// ---------------------------------------------------------------------------------------------

static void test_json(void) {
    lt_err e = {0};
    cJSON *j = NULL;
    const char *doc = "{\"i\": 42, \"big\": 1e30, \"half\": 2.5, \"neg\": -7.0,\n"
                      " \"s\": \"x\\u00e9\", \"t\": true, \"arr\": [1, 2], \"nul\": null}  \n";
    CHECK_OK(lt_json_parse(doc, strlen(doc), "doc", &j, &e), &e);
    CHECK(lt_json_int(j, "i", 0) == 42);
    CHECK(lt_json_int(j, "neg", 0) == -7);
    CHECK(lt_json_int(j, "half", -1) == -1); // not integral
    CHECK(lt_json_int(j, "big", -1) == -1);  // out of int64 range
    CHECK(lt_json_int(j, "missing", 5) == 5);
    CHECK(lt_json_num(j, "half", 0) == 2.5);
    CHECK(lt_json_bool(j, "t", false) == true);
    CHECK(lt_json_bool(j, "i", false) == false);
    CHECK(strcmp(lt_json_str(j, "s", ""), "x\xc3\xa9") == 0);
    CHECK(lt_json_str(j, "i", NULL) == NULL);
    CHECK(lt_json_int(NULL, "i", 3) == 3);
    int64_t v = 0;
    CHECK_OK(lt_json_int_req(j, "i", "doc", &v, &e), &e);
    CHECK(v == 42);
    CHECK(lt_json_int_req(j, "half", "cfg.json", &v, &e) == LT_ERR_FORMAT);
    CHECK(strstr(e.msg, "cfg.json") && strstr(e.msg, "\"half\"") && strstr(e.msg, "2.5"));
    CHECK(lt_json_int_req(j, "nope", "cfg.json", &v, &e) == LT_ERR_FORMAT);
    CHECK(strstr(e.msg, "missing") != NULL);
    CHECK(lt_json_int_req(j, "s", "cfg.json", &v, &e) == LT_ERR_FORMAT);
    CHECK(strstr(e.msg, "string") != NULL);
    const char *s = NULL;
    CHECK_OK(lt_json_str_req(j, "s", "doc", &s, &e), &e);
    CHECK(lt_json_str_req(j, "arr", "doc", &s, &e) == LT_ERR_FORMAT && strstr(e.msg, "array"));
    bool b;
    CHECK_OK(lt_json_bool_req(j, "t", "doc", &b, &e), &e);
    CHECK(lt_json_bool_req(j, "nul", "doc", &b, &e) == LT_ERR_FORMAT && strstr(e.msg, "null"));
    double d;
    CHECK_OK(lt_json_num_req(j, "big", "doc", &d, &e), &e);
    CHECK(d == 1e30);
    cJSON_Delete(j);

    // syntax errors: line and column of the offending character
    const char *bad = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    j = NULL;
    CHECK(lt_json_parse(bad, strlen(bad), "bad.json", &j, &e) == LT_ERR_FORMAT && !j);
    CHECK_MSG(strstr(e.msg, "bad.json") && strstr(e.msg, "line 3, column"), "%s", e.msg);
    CHECK(lt_json_parse("[1, 2] x", 8, "t", &j, &e) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "line 1, column 8") != NULL, "%s", e.msg);
    CHECK(lt_json_parse("  \n ", 4, "t", &j, &e) == LT_ERR_FORMAT && strstr(e.msg, "empty"));
    CHECK(lt_json_parse("[1,", 3, "t", &j, &e) == LT_ERR_FORMAT);
    // the length is honoured: text after n is not read
    CHECK_OK(lt_json_parse("[1] garbage", 3, "t", &j, &e), &e);
    cJSON_Delete(j);

    // files
    write_raw(tpath("c.json"), "{\"x\": [1,\n 2,,]}", 16);
    CHECK(lt_json_parse_file(tpath("c.json"), &j, &e) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "c.json") && strstr(e.msg, "line 2, column 4"), "%s", e.msg);
    CHECK(lt_json_parse_file(tpath("none.json"), &j, &e) == LT_ERR_IO);
    write_raw(tpath("ok.json"), "{\"x\": 1}", 8);
    CHECK_OK(lt_json_parse_file(tpath("ok.json"), &j, &e), &e);
    CHECK(lt_json_int(j, "x", 0) == 1);
    cJSON_Delete(j);
}

// ---------------------------------------------------------------------------------------------
// safetensors round trip

static float f32v[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
static uint16_t bf16v[4], f16v[4];
static int32_t i32v[3] = {-1, 0, 123456};
static int64_t i64v[2] = {-5000000000LL, 7};

static lt_status write_sample(const char *path, lt_err *e) {
    for (int i = 0; i < 4; i++) {
        bf16v[i] = lt_f32_to_bf16(f32v[i]);
        f16v[i] = lt_f32_to_f16(f32v[i]);
    }
    lt_st_writer *w = lt_st_writer_new();
    if (!w) return lt_err_set(e, LT_ERR_OOM, "writer");
    lt_status st;
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s3[1] = {3}, s2[1] = {2};
    if ((st = lt_st_writer_meta(w, "format", "pt", e)) ||
        (st = lt_st_writer_meta(w, "quote\"key", "tab\there\\", e)) ||
        (st = lt_st_writer_add(w, "model.layers.0.w", LT_DTYPE_F32, 2, s23, f32v, e)) ||
        (st = lt_st_writer_add(w, "bf16", LT_DTYPE_BF16, 1, s4, bf16v, e)) ||
        (st = lt_st_writer_add(w, "f16", LT_DTYPE_F16, 2, s22, f16v, e)) ||
        (st = lt_st_writer_add(w, "i32", LT_DTYPE_I32, 1, s3, i32v, e)) ||
        (st = lt_st_writer_add(w, "i64", LT_DTYPE_I64, 1, s2, i64v, e)) ||
        (st = lt_st_writer_add(w, "scalar", LT_DTYPE_F32, 0, NULL, f32v + 5, e)) ||
        (st = lt_st_writer_meta(w, "format", "pt2", e))) // replaces the value
        goto done;
    st = lt_st_writer_write(w, path, e);
done:
    lt_st_writer_free(w);
    return st;
}

static void test_st_roundtrip(void) {
    lt_err e = {0};
    const char *p = tpath("rt.safetensors");
    CHECK_OK(write_sample(p, &e), &e);
    lt_safetensors *st = NULL;
    CHECK_OK(lt_safetensors_open(p, &st, &e), &e);
    if (!st) return;
    CHECK(lt_safetensors_count(st) == 6);
    const char *order[6] = {"model.layers.0.w", "bf16", "f16", "i32", "i64", "scalar"};
    for (int i = 0; i < 6; i++) CHECK(strcmp(lt_safetensors_at(st, i)->name, order[i]) == 0);
    CHECK(lt_safetensors_at(st, 6) == NULL && lt_safetensors_at(st, -1) == NULL);
    const lt_st_tensor *t = lt_safetensors_find(st, "model.layers.0.w");
    CHECK(t && t->dtype == LT_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->numel == 6 && t->nbytes == 24 && memcmp(t->data, f32v, 24) == 0);
    CHECK(((uintptr_t)t->data) % 8 == 0); // header padded to 8
    t = lt_safetensors_find(st, "bf16");
    CHECK(t && t->dtype == LT_DTYPE_BF16 && t->nbytes == 8 && memcmp(t->data, bf16v, 8) == 0);
    t = lt_safetensors_find(st, "f16");
    CHECK(t && t->dtype == LT_DTYPE_F16 && t->ndim == 2 && memcmp(t->data, f16v, 8) == 0);
    float back[4];
    if (t) lt_to_f32(LT_DTYPE_F16, t->data, back, 4);
    CHECK(back[0] == 1.5f && back[1] == -2.0f && back[3] == 3.25f);
    t = lt_safetensors_find(st, "i32");
    CHECK(t && t->dtype == LT_DTYPE_I32 && memcmp(t->data, i32v, 12) == 0);
    t = lt_safetensors_find(st, "i64");
    CHECK(t && t->dtype == LT_DTYPE_I64 && memcmp(t->data, i64v, 16) == 0);
    t = lt_safetensors_find(st, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4 &&
          memcmp(t->data, f32v + 5, 4) == 0);
    CHECK(lt_safetensors_find(st, "nope") == NULL);
    CHECK(strcmp(lt_safetensors_meta(st, "format"), "pt2") == 0);
    CHECK(strcmp(lt_safetensors_meta(st, "quote\"key"), "tab\there\\") == 0);
    CHECK(lt_safetensors_meta(st, "nope") == NULL);
    CHECK(lt_safetensors_meta_count(st) == 2);
    const char *mv = NULL;
    CHECK(strcmp(lt_safetensors_meta_at(st, 1, &mv), "quote\"key") == 0 && mv);
    CHECK(lt_safetensors_meta_at(st, 2, &mv) == NULL);
    CHECK(strcmp(lt_safetensors_path(st), p) == 0);
    lt_safetensors_close(st);

    // the header: 8-byte multiple, __metadata__ first, space padded
    char *raw;
    size_t n;
    CHECK_OK(lt_read_file(p, &raw, &n, &e), &e);
    uint64_t hn = 0;
    memcpy(&hn, raw, 8);
    CHECK(hn % 8 == 0 && hn + 8 <= n);
    CHECK(strncmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt2\"", 31) == 0);
    CHECK(raw[8 + hn - 1] == ' ' || raw[8 + hn - 1] == '}');
    CHECK(n == 8 + hn + 24 + 8 + 8 + 12 + 16 + 4); // data back to back, nothing else
    lt_free(raw);

    // writer argument checks
    lt_st_writer *w = lt_st_writer_new();
    int64_t s1[1] = {1}, sneg[1] = {-1};
    CHECK(lt_st_writer_add(w, "q", LT_DTYPE_Q8_0, 1, s1, f32v, &e) == LT_ERR_ARG);
    CHECK(lt_st_writer_add(w, "n", LT_DTYPE_F32, 1, sneg, f32v, &e) == LT_ERR_ARG);
    CHECK(lt_st_writer_add(w, "__metadata__", LT_DTYPE_F32, 1, s1, f32v, &e) == LT_ERR_ARG);
    CHECK(lt_st_writer_add(w, "", LT_DTYPE_F32, 1, s1, f32v, &e) == LT_ERR_ARG);
    CHECK(lt_st_writer_add(w, "x", LT_DTYPE_F32, 9, s1, f32v, &e) == LT_ERR_ARG);
    CHECK_OK(lt_st_writer_add(w, "x", LT_DTYPE_F32, 1, s1, f32v, &e), &e);
    CHECK(lt_st_writer_add(w, "x", LT_DTYPE_F32, 1, s1, f32v, &e) == LT_ERR_ARG);
    CHECK(lt_st_writer_write(w, tpath("no/dir/x.safetensors"), &e) == LT_ERR_IO);
    lt_st_writer_free(w);
    lt_st_writer_free(NULL);

    // empty file: no tensors, no metadata
    w = lt_st_writer_new();
    CHECK_OK(lt_st_writer_write(w, tpath("empty.safetensors"), &e), &e);
    lt_st_writer_free(w);
    CHECK_OK(lt_safetensors_open(tpath("empty.safetensors"), &st, &e), &e);
    CHECK(lt_safetensors_count(st) == 0 && lt_safetensors_meta_count(st) == 0);
    lt_safetensors_close(st);
    lt_safetensors_close(NULL);
}

// ---------------------------------------------------------------------------------------------
// files written by Python

static void test_python_fixture(void) {
    lt_err e = {0};
    lt_safetensors *st = NULL;
    CHECK_OK(lt_safetensors_open("tests/fixtures/io/pyst.safetensors", &st, &e), &e);
    if (!st) return;
    CHECK(lt_safetensors_count(st) == 9);
    CHECK(strcmp(lt_safetensors_meta(st, "format"), "np") == 0);
    CHECK(strcmp(lt_safetensors_meta(st, "note"), "made by tools/make_io_fixtures.py") == 0);
    const lt_st_tensor *t = lt_safetensors_find(st, "f32");
    float f[6];
    CHECK(t && t->dtype == LT_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    if (t) {
        memcpy(f, t->data, 24);
        for (int i = 0; i < 6; i++) CHECK(f[i] == (float)i * 0.5f - 1.0f);
    }
    t = lt_safetensors_find(st, "f16");
    CHECK(t && t->dtype == LT_DTYPE_F16 && t->numel == 4);
    if (t) {
        uint16_t h[4];
        memcpy(h, t->data, 8);
        CHECK(lt_f16_to_f32(h[0]) == 1.0f && lt_f16_to_f32(h[1]) == -2.5f);
        CHECK(lt_f16_to_f32(h[2]) == 65504.0f && lt_f16_to_f32(h[3]) == 0x1p-14f);
    }
    t = lt_safetensors_find(st, "f64");
    double dv = 0;
    if (t) memcpy(&dv, t->data, 8);
    CHECK(t && t->dtype == LT_DTYPE_F64 && dv == 3.141592653589793);
    t = lt_safetensors_find(st, "i64");
    int64_t iv[3] = {0};
    if (t) memcpy(iv, t->data, 24);
    CHECK(t && t->dtype == LT_DTYPE_I64 && iv[0] == -1 && iv[1] == 0 && iv[2] == (1LL << 40));
    t = lt_safetensors_find(st, "i32");
    int32_t jv[4] = {0};
    if (t) memcpy(jv, t->data, 16);
    CHECK(t && t->dtype == LT_DTYPE_I32 && t->ndim == 2 && jv[1] == -2 && jv[3] == -4);
    t = lt_safetensors_find(st, "u8");
    CHECK(t && t->dtype == LT_DTYPE_U8 && ((const uint8_t *)t->data)[1] == 255);
    t = lt_safetensors_find(st, "flags");
    CHECK(t && t->dtype == LT_DTYPE_BOOL && t->nbytes == 3 && ((const uint8_t *)t->data)[2] == 1);
    t = lt_safetensors_find(st, "scalar");
    if (t) memcpy(f, t->data, 4);
    CHECK(t && t->ndim == 0 && t->numel == 1 && f[0] == 7.0f);
    t = lt_safetensors_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4 && t->numel == 0 &&
          t->nbytes == 0);
    lt_safetensors_close(st);

    st = NULL;
    CHECK_OK(lt_safetensors_open("tests/fixtures/io/pyst_torch.safetensors", &st, &e), &e);
    if (!st) return;
    t = lt_safetensors_find(st, "bf16");
    CHECK(t && t->dtype == LT_DTYPE_BF16 && t->ndim == 2 && t->shape[1] == 3);
    if (t) {
        float want[6] = {1.0f, -2.0f, 0.5f, 3.140625f, 0.0f, -0.0078125f};
        lt_to_f32(LT_DTYPE_BF16, t->data, f, 6);
        CHECK_CLOSE("torch bf16", f, want, 6, 0, 0);
    }
    lt_safetensors_close(st);
}

// ---------------------------------------------------------------------------------------------
// sharded model directories

static void write_shard(const char *path, const char *n1, const char *n2, const float *d) {
    lt_err e;
    lt_st_writer *w = lt_st_writer_new();
    int64_t s[2] = {2, 2};
    lt_st_writer_add(w, n1, LT_DTYPE_F32, 2, s, d, &e);
    if (n2) lt_st_writer_add(w, n2, LT_DTYPE_F32, 2, s, d + 4, &e);
    CHECK_OK(lt_st_writer_write(w, path, &e), &e);
    lt_st_writer_free(w);
}

static void test_st_set(void) {
    lt_err e = {0};
    float d[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    CHECK_OK(lt_mkdir_p(tpath("sharded"), &e), &e);
    write_shard(tpath("sharded/model-00001-of-00002.safetensors"), "a", "b", d);
    write_shard(tpath("sharded/model-00002-of-00002.safetensors"), "c", "unlisted", d + 4);
    const char *idx = "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {\n"
                      " \"a\": \"model-00001-of-00002.safetensors\",\n"
                      " \"c\": \"model-00002-of-00002.safetensors\",\n"
                      " \"b\": \"model-00001-of-00002.safetensors\"}}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx, strlen(idx));
    lt_st_set *s = NULL;
    CHECK_OK(lt_st_set_open_dir(tpath("sharded"), &s, &e), &e);
    if (s) {
        CHECK(lt_st_set_count(s) == 3);
        CHECK(strcmp(lt_st_set_at(s, 0)->name, "a") == 0 &&
              strcmp(lt_st_set_at(s, 1)->name, "c") == 0);
        CHECK(lt_st_set_at(s, 3) == NULL);
        const lt_st_tensor *t = lt_st_set_find(s, "c");
        CHECK(t && memcmp(t->data, d + 4, 16) == 0);
        t = lt_st_set_find(s, "b");
        CHECK(t && memcmp(t->data, d + 4, 16) == 0);
        CHECK(lt_st_set_find(s, "unlisted") == NULL);
        CHECK(strstr(lt_st_set_file_of(s, "c"), "model-00002-of-00002") != NULL);
        int64_t good[2] = {2, 2}, bad[2] = {4, 1};
        CHECK_OK(lt_st_set_get(s, "a", 2, good, &t, &e), &e);
        CHECK(lt_st_set_get(s, "a", 2, bad, &t, &e) == LT_ERR_SHAPE);
        CHECK_MSG(strstr(e.msg, "'a'") && strstr(e.msg, "[2, 2]") && strstr(e.msg, "[4, 1]") &&
                      strstr(e.msg, "model-00001-of-00002.safetensors"),
                  "%s", e.msg);
        CHECK(lt_st_set_get(s, "a", 1, good, &t, &e) == LT_ERR_SHAPE);
        CHECK(lt_st_set_get(s, "zz", 2, good, &t, &e) == LT_ERR_FORMAT && strstr(e.msg, "'zz'"));
        lt_st_set_close(s);
    }
    // a tensor listed in the index but missing from its shard
    const char *idx2 = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
                       "\"ghost\": \"model-00002-of-00002.safetensors\"}}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx2, strlen(idx2));
    s = NULL;
    CHECK(lt_st_set_open_dir(tpath("sharded"), &s, &e) == LT_ERR_FORMAT && !s);
    CHECK_MSG(strstr(e.msg, "'ghost'") && strstr(e.msg, "model-00002-of-00002.safetensors") &&
                  strstr(e.msg, "index.json"),
              "%s", e.msg);
    // shard names must stay inside the directory; missing shard files are I/O errors
    const char *idx3 = "{\"weight_map\": {\"a\": \"../rt.safetensors\"}}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx3, strlen(idx3));
    CHECK(lt_st_set_open_dir(tpath("sharded"), &s, &e) == LT_ERR_FORMAT);
    const char *idx4 = "{\"weight_map\": {\"a\": \"missing.safetensors\"}}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx4, strlen(idx4));
    CHECK(lt_st_set_open_dir(tpath("sharded"), &s, &e) == LT_ERR_IO &&
          strstr(e.msg, "missing.safetensors"));
    const char *idx5 = "{\"weight_map\": [1]}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx5, strlen(idx5));
    CHECK(lt_st_set_open_dir(tpath("sharded"), &s, &e) == LT_ERR_FORMAT &&
          strstr(e.msg, "weight_map"));
    CHECK(lt_st_set_open_dir(tpath("d1"), &s, &e) == LT_ERR_IO);

    // model.safetensors directory, and a single file as a set
    CHECK_OK(lt_mkdir_p(tpath("single"), &e), &e);
    write_shard(tpath("single/model.safetensors"), "w", NULL, d);
    s = NULL;
    CHECK_OK(lt_st_set_open_dir(tpath("single"), &s, &e), &e);
    if (s) {
        CHECK(lt_st_set_count(s) == 1 && lt_st_set_find(s, "w"));
        lt_st_set_close(s);
    }
    s = NULL;
    CHECK_OK(lt_st_set_open_file(tpath("rt.safetensors"), &s, &e), &e);
    if (s) {
        const lt_st_tensor *t;
        int64_t sh[2] = {2, 2};
        CHECK(lt_st_set_count(s) == 6);
        CHECK(lt_st_set_get(s, "i32", 1, sh, &t, &e) == LT_ERR_FORMAT && strstr(e.msg, "float"));
        lt_st_set_close(s);
    }
    lt_st_set_close(NULL);
}

// ---------------------------------------------------------------------------------------------
// malformed files: every one gives LT_ERR_FORMAT (or UNSUPPORTED) with the file name

// Writes u64 header length + header + data bytes, opens it, returns the status.
static lt_status try_header(const char *name, const char *header, size_t data_bytes, lt_err *e) {
    size_t hn = strlen(header), n = 8 + hn + data_bytes;
    uint8_t *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, header, hn);
    write_raw(tpath(name), buf, n);
    free(buf);
    lt_safetensors *st = NULL;
    lt_status s = lt_safetensors_open(tpath(name), &st, e);
    if (s == LT_OK) lt_safetensors_close(st);
    return s;
}

#define BAD(name, header, data, code, frag)                                                        \
    do {                                                                                           \
        lt_status s_ = try_header(name, header, data, &e);                                         \
        if (getenv("SHOW_MSG")) fprintf(stderr, "msg  %s\n", e.msg);                               \
        CHECK_MSG(s_ == (code) && strstr(e.msg, name) && strstr(e.msg, frag), "%s: got %s: %s",    \
                  name, lt_status_name(s_), s_ ? e.msg : "");                                      \
    } while (0)

static void test_st_malformed(void) {
    lt_err e = {0};
    const char *T = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],";
    char h[512];
    // sanity: the helper makes valid files
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,8]}}", T);
    CHECK_OK(try_header("ok.st", h, 8, &e), &e);

    { // header length larger than the file
        uint8_t b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
        write_raw(tpath("len_big.st"), b, 10);
        lt_safetensors *st;
        CHECK(lt_safetensors_open(tpath("len_big.st"), &st, &e) == LT_ERR_FORMAT);
        CHECK(strstr(e.msg, "len_big.st") && strstr(e.msg, "65535"));
        uint8_t c[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'}; // 2^63
        write_raw(tpath("len_huge.st"), c, 10);
        CHECK(lt_safetensors_open(tpath("len_huge.st"), &st, &e) == LT_ERR_FORMAT);
        write_raw(tpath("short.st"), c, 5);
        CHECK(lt_safetensors_open(tpath("short.st"), &st, &e) == LT_ERR_FORMAT &&
              strstr(e.msg, "short.st"));
        write_raw(tpath("zero.st"), c, 0);
        CHECK(lt_safetensors_open(tpath("zero.st"), &st, &e) == LT_ERR_FORMAT &&
              strstr(e.msg, "zero.st"));
        CHECK(lt_safetensors_open(tpath("absent.st"), &st, &e) == LT_ERR_IO &&
              strstr(e.msg, "absent.st"));
        CHECK(lt_safetensors_open(tmpdir, &st, &e) == LT_ERR_IO);
    }
    { // truncated copies of a valid file: every prefix fails cleanly
        char *raw;
        size_t n;
        CHECK_OK(lt_read_file(tpath("rt.safetensors"), &raw, &n, &e), &e);
        int bad = 0;
        for (size_t k = 0; k < n; k++) {
            write_raw(tpath("trunc.st"), raw, k);
            lt_safetensors *st;
            lt_status s = lt_safetensors_open(tpath("trunc.st"), &st, &e);
            if (s != LT_ERR_FORMAT || !strstr(e.msg, "trunc.st")) bad++;
            if (s == LT_OK) lt_safetensors_close(st);
        }
        CHECK_MSG(bad == 0, "%d truncated prefixes were not rejected", bad);
        lt_free(raw);
    }
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,8]}}", T);
    BAD("past_end.st", h, 4, LT_ERR_FORMAT, "outside the data area");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[8,16]}}", T);
    BAD("past_end2.st", h, 12, LT_ERR_FORMAT, "[8, 16]");
    snprintf(h, sizeof h,
             "{%s\"data_offsets\":[0,8]}, \"u\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[4,12]}}",
             T);
    BAD("overlap.st", h, 12, LT_ERR_FORMAT, "overlap");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,12]}}", T);
    BAD("nbytes.st", h, 12, LT_ERR_FORMAT, "expected 8");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[8,0]}}", T);
    BAD("reversed.st", h, 12, LT_ERR_FORMAT, "'t'");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0]}}", T);
    BAD("offs1.st", h, 12, LT_ERR_FORMAT, "data_offsets");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,-8]}}", T);
    BAD("offsneg.st", h, 12, LT_ERR_FORMAT, "data_offsets");
    BAD("dtype.st", "{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "F33");
    BAD("dtype_q.st", "{\"t\":{\"dtype\":\"Q8_0\",\"shape\":[32],\"data_offsets\":[0,34]}}", 34,
        LT_ERR_FORMAT, "Q8_0");
    BAD("dtype_num.st", "{\"t\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "dtype");
    BAD("dtype_u16.st", "{\"t\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
        LT_ERR_UNSUPPORTED, "U16");
    BAD("negdim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "dimension 0");
    BAD("fracdim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "dimension 0");
    BAD("strdim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "string");
    BAD("absurd.st",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "overflow");
    BAD("absurd2.st",
        "{\"t\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "'t'");
    BAD("hugedim.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "dimension 0");
    BAD("ndim9.st",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
        LT_ERR_FORMAT, "9 dimensions");
    BAD("noshape.st", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, LT_ERR_FORMAT,
        "shape");
    BAD("array.st", "[1, 2, 3]", 0, LT_ERR_FORMAT, "expected an object");
    BAD("string.st", "\"x\"", 0, LT_ERR_FORMAT, "expected an object");
    BAD("entry.st", "{\"t\": 5}", 0, LT_ERR_FORMAT, "'t'");
    BAD("syntax.st", "{\"t\": {\"dtype\": }}", 0, LT_ERR_FORMAT, "line 1, column");
    BAD("trailing.st", "{} {}", 0, LT_ERR_FORMAT, "after the JSON value");
    BAD("emptyhdr.st", "", 0, LT_ERR_FORMAT, "empty");
    BAD("meta.st", "{\"__metadata__\": {\"a\": 1}}", 0, LT_ERR_FORMAT, "__metadata__");
    BAD("meta2.st", "{\"__metadata__\": [\"a\"]}", 0, LT_ERR_FORMAT, "__metadata__");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,8]}, %s\"data_offsets\":[0,8]}}", T, T);
    BAD("dup.st", h, 8, LT_ERR_FORMAT, "twice");
    BAD("utf8.st", "{\"\xff\xfe\": 1}", 0, LT_ERR_FORMAT, "UTF-8");
    // header limit: 100 MB (the header claims more than the cap; the file is that big sparse)
    {
        FILE *f = fopen(tpath("cap.st"), "wb");
        uint8_t b[8];
        uint64_t hn = 100000001;
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hn >> (8 * i));
        fwrite(b, 1, 8, f);
        fseek(f, (long)hn + 8 - 1, SEEK_SET);
        fputc(' ', f);
        fclose(f);
        lt_safetensors *st;
        CHECK(lt_safetensors_open(tpath("cap.st"), &st, &e) == LT_ERR_FORMAT);
        CHECK_MSG(strstr(e.msg, "cap.st") && strstr(e.msg, "limit"), "%s", e.msg);
        remove(tpath("cap.st"));
    }
    // fine: null metadata, unknown extra fields, zero-sized tensors anywhere, gaps
    CHECK_OK(try_header("null_meta.st", "{\"__metadata__\": null}", 0, &e), &e);
    CHECK_OK(try_header("zero_sized.st",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4],\"x\":1},"
                        "\"g\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[10,11]}}   ",
                        12, &e),
             &e);
    // in-memory open names the buffer
    lt_safetensors *st;
    CHECK(lt_safetensors_open_mem("\x02\0\0\0\0\0\0\0[]", 10, "membuf", &st, &e) == LT_ERR_FORMAT);
    CHECK(strstr(e.msg, "membuf") != NULL);
    CHECK(lt_safetensors_open_mem(NULL, 0, NULL, &st, &e) == LT_ERR_FORMAT);
}

// ---------------------------------------------------------------------------------------------
// allocation failures: each allocation in turn fails; no crash, no leak, status OOM

typedef lt_status (*op_fn)(lt_err *e);

static lt_status op_open_close(lt_err *e) {
    lt_safetensors *st;
    lt_status s = lt_safetensors_open(tpath("rt.safetensors"), &st, e);
    if (!s) lt_safetensors_close(st);
    return s;
}
static lt_status op_open_py(lt_err *e) {
    lt_safetensors *st;
    lt_status s = lt_safetensors_open("tests/fixtures/io/pyst.safetensors", &st, e);
    if (!s) lt_safetensors_close(st);
    return s;
}
static lt_status op_set_dir(lt_err *e) {
    lt_st_set *s;
    lt_status r = lt_st_set_open_dir(tpath("sharded"), &s, e);
    if (!r) lt_st_set_close(s);
    return r;
}
static lt_status op_write(lt_err *e) { return write_sample(tpath("sweep.safetensors"), e); }
static lt_status op_json(lt_err *e) {
    cJSON *j;
    lt_status s = lt_json_parse_file("tests/fuzz/corpus/json/config.json", &j, e);
    if (!s) cJSON_Delete(j);
    return s;
}
static lt_status op_read_file(lt_err *e) {
    char *d;
    size_t n;
    lt_status s = lt_read_file("tests/fuzz/corpus/json/config.json", &d, &n, e);
    if (!s) lt_free(d);
    return s;
}

static void sweep(const char *what, op_fn op) {
    lt_err e = {0};
    int bad = 0;
    long i;
    for (i = 0; i < 100000; i++) {
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(i);
        lt_status s = op(&e);
        lt_alloc_fail_after(-1);
        bool injected = lt_alloc_injected_failures() != before;
        if (!injected) {
            if (s != LT_OK) {
                bad++;
                fprintf(stderr, "%s: no failure injected at %ld but got %s: %s\n", what, i,
                        lt_status_name(s), e.msg);
            }
            break;
        }
        if (s != LT_ERR_OOM) {
            bad++;
            fprintf(stderr, "%s: allocation %ld failed but got %s: %s\n", what, i,
                    lt_status_name(s), s ? e.msg : "");
        }
    }
    CHECK_MSG(bad == 0 && i > 0, "%s: %d bad outcomes over %ld allocations", what, bad, i);
    fprintf(stderr, "ok   sweep %s: %ld allocations\n", what, i);
}

static void test_alloc_sweep(void) {
    sweep("safetensors open+close", op_open_close);
    sweep("python safetensors open+close", op_open_py);
    sweep("sharded dir open+close", op_set_dir);
    sweep("safetensors write", op_write);
    sweep("json parse file", op_json);
    sweep("read file", op_read_file);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lt_test_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_files();
    test_json();
    test_st_roundtrip();
    test_python_fixture();
    test_st_set();
    test_st_malformed();
    // the sharded dir must be valid again for the sweep
    const char *idx = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
                      "\"c\": \"model-00002-of-00002.safetensors\"}}";
    write_raw(tpath("sharded/model.safetensors.index.json"), idx, strlen(idx));
    test_alloc_sweep();
    rm_rf(tmpdir);
    TEST_END();
}
