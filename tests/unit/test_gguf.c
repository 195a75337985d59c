/*
 * test_gguf.c - the GGUF reader and writer: writer -> reader round trip, a file written by
 * gguf-py (tests/fixtures/io/pygguf.gguf, from tools/make_io_fixtures.py) including quantised
 * tensors checked against gguf-py's own dequantisation, the llama.cpp vocabulary files in
 * ../shared/data (skipped when absent), malformed inputs built byte by byte, and
 * allocation-failure sweeps.
 */
#include "core/core.h"
#include "io/gguf.h"
#include "io/io.h"
#include "test.h"

#include <stdint.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}

// ---------------------------------------------------------------------------------------------
// byte builder for hand-made files

typedef struct {
    uint8_t p[8192];
    size_t n;
} bb;

static void b_raw(bb *b, const void *p, size_t n) {
    if (b->n + n > sizeof b->p) abort();
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b32(bb *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_raw(b, x, 4);
}
static void b64(bb *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_raw(b, x, 8);
}
static void bstr(bb *b, const char *s) {
    b64(b, strlen(s));
    b_raw(b, s, strlen(s));
}
static void bhead(bb *b, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    b_raw(b, "GGUF", 4);
    b32(b, 3);
    b64(b, n_tensors);
    b64(b, n_kv);
}
static void bkv_u32(bb *b, const char *k, uint32_t v) {
    bstr(b, k);
    b32(b, LT_GGUF_TYPE_UINT32);
    b32(b, v);
}
// tensor info: name, ne (GGUF order), type, offset
static void binfo(bb *b, const char *name, int n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    bstr(b, name);
    b32(b, (uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) b64(b, ne[i]);
    b32(b, type);
    b64(b, off);
}
static void bpad(bb *b, size_t a) {
    while (b->n % a) b_raw(b, "", 1);
}

static lt_status open_bytes(const bb *b, const char *name, lt_err *e) {
    lt_gguf *g = NULL;
    lt_status s = lt_gguf_open_mem(b->p, b->n, name, &g, e);
    if (getenv("SHOW_MSG")) fprintf(stderr, "msg  %s: %s\n", name, s ? e->msg : "ok");
    lt_gguf_close(g);
    return s;
}

#define BAD(b, name, code, frag)                                                                   \
    do {                                                                                           \
        lt_status s_ = open_bytes(b, name, &e);                                                    \
        CHECK_MSG(s_ == (code) && strstr(e.msg, name) && strstr(e.msg, frag), "%s: got %s: %s",    \
                  name, lt_status_name(s_), s_ ? e.msg : "");                                      \
    } while (0)

// ---------------------------------------------------------------------------------------------
// writer -> reader

static float wf32[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.5f, 100.0f};
static uint16_t wf16[4], wbf16[4];
static uint8_t wq8[2 * 34], wq4_0[18], wq4_1[20];
static int32_t wi32[3] = {-7, 0, 1 << 30};

static lt_status write_sample(const char *path, uint32_t align, lt_err *e) {
    for (int i = 0; i < 4; i++) {
        wf16[i] = lt_f32_to_f16(wf32[i]);
        wbf16[i] = lt_f32_to_bf16(wf32[i]);
    }
    for (size_t i = 0; i < sizeof wq8; i++) wq8[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof wq4_0; i++) wq4_0[i] = (uint8_t)(i * 13 + 3);
    for (size_t i = 0; i < sizeof wq4_1; i++) wq4_1[i] = (uint8_t)(i * 5 + 2);
    wq8[1] = wq4_0[1] = wq4_1[1] = wq4_1[3] = 0x3c; // f16 scales near 1
    lt_gguf_writer *w = lt_gguf_writer_new();
    if (!w) return lt_err_set(e, LT_ERR_OOM, "writer");
    const char *toks[4] = {"<s>", "hello", "", "w\xc3\xb6rld"};
    float scores[3] = {0.5f, -1.0f, 2.25f};
    int32_t types[3] = {1, -2, 3};
    uint64_t u64s[2] = {1, UINT64_MAX};
    bool bools[3] = {true, false, true};
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s2x64[2] = {1, 64}, s32[1] = {32}, s3[1] = {3},
            s1x2x2[3] = {1, 2, 2}, s0[1] = {0};
    lt_status st;
    if ((st = lt_gguf_writer_set_str(w, "general.architecture", "llama", e)) ||
        (align && (st = lt_gguf_writer_set_u32(w, "general.alignment", align, e))) ||
        (st = lt_gguf_writer_set_u8(w, "k.u8", 250, e)) ||
        (st = lt_gguf_writer_set_i8(w, "k.i8", -3, e)) ||
        (st = lt_gguf_writer_set_u16(w, "k.u16", 65000, e)) ||
        (st = lt_gguf_writer_set_i16(w, "k.i16", -32000, e)) ||
        (st = lt_gguf_writer_set_u32(w, "k.u32", 4000000000u, e)) ||
        (st = lt_gguf_writer_set_i32(w, "k.i32", -123456, e)) ||
        (st = lt_gguf_writer_set_f32(w, "k.f32", 0.1f, e)) ||
        (st = lt_gguf_writer_set_u64(w, "k.u64", 1ull << 40, e)) ||
        (st = lt_gguf_writer_set_i64(w, "k.i64", -(1ll << 50), e)) ||
        (st = lt_gguf_writer_set_f64(w, "k.f64", 1e-300, e)) ||
        (st = lt_gguf_writer_set_bool(w, "k.bool", true, e)) ||
        (st = lt_gguf_writer_set_str(w, "k.str", "first", e)) ||
        (st = lt_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4, e)) ||
        (st = lt_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LT_GGUF_TYPE_FLOAT32, scores, 3,
                                     e)) ||
        (st = lt_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LT_GGUF_TYPE_INT32, types, 3,
                                     e)) ||
        (st = lt_gguf_writer_set_arr(w, "k.u64s", LT_GGUF_TYPE_UINT64, u64s, 2, e)) ||
        (st = lt_gguf_writer_set_arr(w, "k.bools", LT_GGUF_TYPE_BOOL, bools, 3, e)) ||
        (st = lt_gguf_writer_set_arr(w, "k.empty", LT_GGUF_TYPE_UINT8, NULL, 0, e)) ||
        (st = lt_gguf_writer_set_str(w, "k.str", "second", e)) || // replaces in place
        (st = lt_gguf_writer_add_tensor(w, "f32", LT_DTYPE_F32, 2, s23, wf32, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "f16", LT_DTYPE_F16, 1, s4, wf16, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "bf16", LT_DTYPE_BF16, 3, s1x2x2, wbf16, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "q8_0", LT_DTYPE_Q8_0, 2, s2x64, wq8, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "q4_0", LT_DTYPE_Q4_0, 1, s32, wq4_0, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "q4_1", LT_DTYPE_Q4_1, 1, s32, wq4_1, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "i32", LT_DTYPE_I32, 1, s3, wi32, e)) ||
        (st = lt_gguf_writer_add_tensor(w, "empty", LT_DTYPE_F32, 1, s0, NULL, e)))
        goto done;
    st = lt_gguf_writer_write(w, path, e);
done:
    lt_gguf_writer_free(w);
    return st;
}

static void check_sample(const char *path, size_t align) {
    lt_err e = {0};
    lt_gguf *g = NULL;
    CHECK_OK(lt_gguf_open(path, &g, &e), &e);
    if (!g) return;
    CHECK(lt_gguf_version(g) == 3 && lt_gguf_alignment(g) == align);
    CHECK(lt_gguf_data_offset(g) % align == 0);
    CHECK(lt_gguf_kv_count(g) == (align != 32 ? 20 : 19));
    CHECK(strcmp(lt_gguf_kv_key(g, 0), "general.architecture") == 0);
    CHECK(lt_gguf_kv_key(g, 100) == NULL && lt_gguf_kv_type(g, -1) == LT_GGUF_TYPE_COUNT);
    int64_t ks = lt_gguf_find_key(g, "k.str");
    CHECK(ks >= 0 && strcmp(lt_gguf_kv_key(g, ks), "k.str") == 0);
    CHECK(lt_gguf_kv_type(g, ks) == LT_GGUF_TYPE_STRING);
    CHECK(lt_gguf_find_key(g, "k.str") < lt_gguf_find_key(g, "tokenizer.ggml.tokens")); // in place
    CHECK(lt_gguf_find_key(g, "nope") == -1);

    uint32_t u32 = 0;
    int32_t i32 = 0;
    float f = 0;
    bool b = false;
    int64_t iv = 0;
    double dv = 0;
    const char *s = NULL;
    size_t len = 0;
    CHECK_OK(lt_gguf_get_u32(g, "k.u32", &u32, &e), &e);
    CHECK(u32 == 4000000000u);
    CHECK_OK(lt_gguf_get_i32(g, "k.i32", &i32, &e), &e);
    CHECK(i32 == -123456);
    CHECK_OK(lt_gguf_get_f32(g, "k.f32", &f, &e), &e);
    CHECK(f == 0.1f);
    CHECK_OK(lt_gguf_get_bool(g, "k.bool", &b, &e), &e);
    CHECK(b);
    CHECK_OK(lt_gguf_get_str(g, "k.str", &s, &len, &e), &e);
    CHECK(s && strcmp(s, "second") == 0 && len == 6);
    CHECK_OK(lt_gguf_get_int(g, "k.u8", &iv, &e), &e);
    CHECK(iv == 250);
    CHECK_OK(lt_gguf_get_int(g, "k.i8", &iv, &e), &e);
    CHECK(iv == -3);
    CHECK_OK(lt_gguf_get_int(g, "k.u16", &iv, &e), &e);
    CHECK(iv == 65000);
    CHECK_OK(lt_gguf_get_int(g, "k.i16", &iv, &e), &e);
    CHECK(iv == -32000);
    CHECK_OK(lt_gguf_get_int(g, "k.i32", &iv, &e), &e);
    CHECK(iv == -123456);
    CHECK_OK(lt_gguf_get_int(g, "k.u64", &iv, &e), &e);
    CHECK(iv == 1ll << 40);
    CHECK_OK(lt_gguf_get_int(g, "k.i64", &iv, &e), &e);
    CHECK(iv == -(1ll << 50));
    CHECK_OK(lt_gguf_get_float(g, "k.f64", &dv, &e), &e);
    CHECK(dv == 1e-300);
    CHECK_OK(lt_gguf_get_float(g, "k.f32", &dv, &e), &e);
    CHECK(dv == (double)0.1f);
    // wrong types and missing keys name the file, the key, expected and found
    CHECK(lt_gguf_get_u32(g, "k.i32", &u32, &e) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, path) && strstr(e.msg, "'k.i32'") &&
                  strstr(e.msg, "is i32, expected u32"),
              "%s", e.msg);
    CHECK(lt_gguf_get_str(g, "tokenizer.ggml.tokens", &s, NULL, &e) == LT_ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "arr[str, 4]") != NULL, "%s", e.msg);
    CHECK(lt_gguf_get_u32(g, "missing.key", &u32, &e) == LT_ERR_FORMAT &&
          strstr(e.msg, "not found"));
    CHECK(lt_gguf_get_int(g, "k.str", &iv, &e) == LT_ERR_FORMAT);
    CHECK(lt_gguf_get_float(g, "k.u32", &dv, &e) == LT_ERR_FORMAT);
    CHECK(u32 == 4000000000u); // untouched on failure

    // arrays
    lt_gguf_type et;
    uint64_t n = 0;
    CHECK_OK(lt_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n, &e), &e);
    CHECK(et == LT_GGUF_TYPE_STRING && n == 4);
    CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 3, &s, &len, &e), &e);
    CHECK(strcmp(s, "w\xc3\xb6rld") == 0 && len == 6);
    CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 2, &s, &len, &e), &e);
    CHECK(s[0] == 0 && len == 0);
    CHECK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 4, &s, &len, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_get_arr_str(g, "tokenizer.ggml.scores", 0, &s, &len, &e) == LT_ERR_FORMAT);
    CHECK(strstr(e.msg, "array of f32, expected str") != NULL);
    float sc[3] = {0};
    CHECK_OK(lt_gguf_get_arr_data(g, "tokenizer.ggml.scores", LT_GGUF_TYPE_FLOAT32, sc, 3, &e), &e);
    CHECK(sc[0] == 0.5f && sc[1] == -1.0f && sc[2] == 2.25f);
    CHECK(lt_gguf_get_arr_data(g, "tokenizer.ggml.scores", LT_GGUF_TYPE_FLOAT32, sc, 4, &e) ==
          LT_ERR_ARG);
    CHECK(lt_gguf_get_arr_data(g, "tokenizer.ggml.scores", LT_GGUF_TYPE_INT32, sc, 3, &e) ==
          LT_ERR_FORMAT);
    int32_t ty[3] = {0};
    CHECK_OK(lt_gguf_get_arr_data(g, "tokenizer.ggml.token_type", LT_GGUF_TYPE_INT32, ty, 3, &e),
             &e);
    CHECK(ty[0] == 1 && ty[1] == -2 && ty[2] == 3);
    uint64_t u64s[2] = {0};
    CHECK_OK(lt_gguf_get_arr_data(g, "k.u64s", LT_GGUF_TYPE_UINT64, u64s, 2, &e), &e);
    CHECK(u64s[0] == 1 && u64s[1] == UINT64_MAX);
    uint8_t bools[3] = {9, 9, 9};
    CHECK_OK(lt_gguf_get_arr_data(g, "k.bools", LT_GGUF_TYPE_BOOL, bools, 3, &e), &e);
    CHECK(bools[0] == 1 && bools[1] == 0 && bools[2] == 1);
    CHECK_OK(lt_gguf_get_arr_info(g, "k.empty", &et, &n, &e), &e);
    CHECK(et == LT_GGUF_TYPE_UINT8 && n == 0);
    CHECK(lt_gguf_get_arr_info(g, "k.u8", &et, &n, &e) == LT_ERR_FORMAT);

    // tensors
    CHECK(lt_gguf_tensor_count(g) == 8);
    const lt_gguf_tensor *t = lt_gguf_find_tensor(g, "f32");
    CHECK(t && t->ggml_type == LT_GGML_TYPE_F32 && t->dtype == LT_DTYPE_F32 && t->n_dims == 2);
    CHECK(t && t->ne[0] == 3 && t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1);
    CHECK(t && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6 && t->nbytes == 24);
    CHECK(t && memcmp(t->data, wf32, 24) == 0);
    for (int64_t i = 0; i < lt_gguf_tensor_count(g); i++) {
        const lt_gguf_tensor *ti = lt_gguf_tensor_at(g, i);
        CHECK(ti->offset % align == 0 && (uintptr_t)ti->data % align == 0);
    }
    t = lt_gguf_find_tensor(g, "bf16");
    CHECK(t && t->n_dims == 3 && t->shape[0] == 1 && t->shape[1] == 2 && t->shape[2] == 2);
    CHECK(t && t->ne[0] == 2 && t->ne[1] == 2 && t->ne[2] == 1 && memcmp(t->data, wbf16, 8) == 0);
    t = lt_gguf_find_tensor(g, "f16");
    CHECK(t && t->dtype == LT_DTYPE_F16 && memcmp(t->data, wf16, 8) == 0);
    t = lt_gguf_find_tensor(g, "q8_0");
    CHECK(t && t->dtype == LT_DTYPE_Q8_0 && t->ne[0] == 64 && t->ne[1] == 1 && t->nbytes == 68);
    CHECK(t && memcmp(t->data, wq8, 68) == 0);
    t = lt_gguf_find_tensor(g, "q4_0");
    CHECK(t && t->dtype == LT_DTYPE_Q4_0 && t->nbytes == 18 && memcmp(t->data, wq4_0, 18) == 0);
    t = lt_gguf_find_tensor(g, "q4_1");
    CHECK(t && t->dtype == LT_DTYPE_Q4_1 && t->nbytes == 20 && memcmp(t->data, wq4_1, 20) == 0);
    t = lt_gguf_find_tensor(g, "i32");
    CHECK(t && t->dtype == LT_DTYPE_I32 && memcmp(t->data, wi32, 12) == 0);
    t = lt_gguf_find_tensor(g, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0);
    CHECK(lt_gguf_find_tensor(g, "nope") == NULL && lt_gguf_tensor_at(g, 8) == NULL);
    CHECK_OK(lt_gguf_get_tensor(g, "q8_0", &t, &e), &e);
    CHECK(lt_gguf_get_tensor(g, "nope", &t, &e) == LT_ERR_FORMAT && strstr(e.msg, "'nope'"));
    lt_gguf_close(g);
}

static void test_roundtrip(void) {
    lt_err e = {0};
    CHECK_OK(write_sample(tpath("rt.gguf"), 0, &e), &e);
    check_sample(tpath("rt.gguf"), 32);
    CHECK_OK(write_sample(tpath("rt64.gguf"), 64, &e), &e);
    check_sample(tpath("rt64.gguf"), 64);

    // writer argument checks
    lt_gguf_writer *w = lt_gguf_writer_new();
    int64_t s31[1] = {31}, s2[1] = {2}, s5[5] = {1, 1, 1, 1, 2};
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK(lt_gguf_writer_add_tensor(w, "q", LT_DTYPE_Q8_0, 1, s31, wq8, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_add_tensor(w, "u8", LT_DTYPE_U8, 1, s2, wq8, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_add_tensor(w, "d5", LT_DTYPE_F32, 5, s5, wf32, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_add_tensor(w, longname, LT_DTYPE_F32, 1, s2, wf32, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_add_tensor(w, "", LT_DTYPE_F32, 1, s2, wf32, &e) == LT_ERR_ARG);
    CHECK_OK(lt_gguf_writer_add_tensor(w, "a", LT_DTYPE_F32, 1, s2, wf32, &e), &e);
    CHECK(lt_gguf_writer_add_tensor(w, "a", LT_DTYPE_F32, 1, s2, wf32, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_set_u32(w, "", 1, &e) == LT_ERR_ARG);
    CHECK(lt_gguf_writer_set_arr(w, "x", LT_GGUF_TYPE_STRING, wf32, 1, &e) == LT_ERR_ARG);
    CHECK_OK(lt_gguf_writer_set_u32(w, "general.alignment", 48, &e), &e);
    CHECK(lt_gguf_writer_write(w, tpath("bad_align.gguf"), &e) == LT_ERR_ARG);
    CHECK(!lt_file_exists(tpath("bad_align.gguf")));
    CHECK_OK(lt_gguf_writer_set_u32(w, "general.alignment", 16, &e), &e);
    CHECK_OK(lt_gguf_writer_write(w, tpath("a16.gguf"), &e), &e);
    lt_gguf_writer_free(w);
    lt_gguf_writer_free(NULL);
    lt_gguf *g = NULL;
    CHECK_OK(lt_gguf_open(tpath("a16.gguf"), &g, &e), &e);
    CHECK(g && lt_gguf_alignment(g) == 16 && lt_gguf_tensor_count(g) == 1);
    lt_gguf_close(g);
    lt_gguf_close(NULL);

    // a writer with nothing: header only, no padding
    w = lt_gguf_writer_new();
    CHECK_OK(lt_gguf_writer_write(w, tpath("nothing.gguf"), &e), &e);
    lt_gguf_writer_free(w);
    char *raw;
    size_t n;
    CHECK_OK(lt_read_file(tpath("nothing.gguf"), &raw, &n, &e), &e);
    CHECK(n == 24 && memcmp(raw, "GGUF\3\0\0\0", 8) == 0);
    lt_free(raw);
    g = NULL;
    CHECK_OK(lt_gguf_open(tpath("nothing.gguf"), &g, &e), &e);
    CHECK(g && lt_gguf_kv_count(g) == 0 && lt_gguf_tensor_count(g) == 0);
    lt_gguf_close(g);
}

// ---------------------------------------------------------------------------------------------
// a file written by gguf-py

static void check_deq(lt_gguf *g, const char *name) {
    lt_err e = {0};
    char deq[64];
    snprintf(deq, sizeof deq, "%s.deq", name);
    const lt_gguf_tensor *q = NULL, *ref = NULL;
    CHECK_OK(lt_gguf_get_tensor(g, name, &q, &e), &e);
    CHECK_OK(lt_gguf_get_tensor(g, deq, &ref, &e), &e);
    if (!q || !ref) return;
    CHECK(q->ne[0] == 64 && q->ne[1] == 3 && q->shape[0] == 3 && q->shape[1] == 64);
    CHECK(ref->numel == q->numel && ref->dtype == LT_DTYPE_F32);
    float got[192], want[192];
    lt_to_f32(q->dtype, q->data, got, q->numel);
    memcpy(want, ref->data, sizeof want);
    // gguf-py and tensor.c compute d*q (+m) in f32 from the same f16 scales: exact
    CHECK_CLOSE(name, got, want, 192, 0, 0);
}

static void test_python_fixture(void) {
    lt_err e = {0};
    lt_gguf *g = NULL;
    const char *path = "tests/fixtures/io/pygguf.gguf";
    CHECK_OK(lt_gguf_open(path, &g, &e), &e);
    if (!g) return;
    const char *s;
    size_t len;
    CHECK_OK(lt_gguf_get_str(g, "general.architecture", &s, &len, &e), &e);
    CHECK(strcmp(s, "llama") == 0);
    CHECK_OK(lt_gguf_get_str(g, "general.name", &s, &len, &e), &e);
    CHECK(strcmp(s, "loratune-fixture") == 0);
    CHECK_OK(lt_gguf_get_str(g, "t.str", &s, &len, &e), &e);
    CHECK(strcmp(s, "h\xc3\xa9llo") == 0 && len == 6);
    int64_t iv;
    CHECK(lt_gguf_get_int(g, "t.u8", &iv, &e) == LT_OK && iv == 200);
    CHECK(lt_gguf_get_int(g, "t.i8", &iv, &e) == LT_OK && iv == -100);
    CHECK(lt_gguf_get_int(g, "t.u16", &iv, &e) == LT_OK && iv == 60000);
    CHECK(lt_gguf_get_int(g, "t.i16", &iv, &e) == LT_OK && iv == -30000);
    CHECK(lt_gguf_get_int(g, "t.u32", &iv, &e) == LT_OK && iv == 4000000000LL);
    CHECK(lt_gguf_get_int(g, "t.i32", &iv, &e) == LT_OK && iv == -2000000000LL);
    CHECK(lt_gguf_get_int(g, "t.i64", &iv, &e) == LT_OK && iv == -(1LL << 40));
    CHECK(lt_gguf_get_int(g, "t.u64", &iv, &e) == LT_ERR_FORMAT); // 2^63 + 5
    CHECK(strstr(e.msg, "9223372036854775813") != NULL);
    float f;
    double d;
    CHECK(lt_gguf_get_f32(g, "t.f32", &f, &e) == LT_OK && f == 0.125f);
    CHECK(lt_gguf_get_float(g, "t.f64", &d, &e) == LT_OK && d == -2.5e-300);
    bool b = false;
    CHECK(lt_gguf_get_bool(g, "t.bool", &b, &e) == LT_OK && b);
    CHECK_OK(lt_gguf_get_arr_str(g, "t.tokens", 3, &s, &len, &e), &e);
    CHECK(strcmp(s, "\xe2\x96\x81"
                    "b") == 0);
    float sc[3];
    CHECK_OK(lt_gguf_get_arr_data(g, "t.scores", LT_GGUF_TYPE_FLOAT32, sc, 3, &e), &e);
    CHECK(sc[0] == 0.5f && sc[1] == -1.25f && sc[2] == 3.0f);
    int32_t ty[3];
    CHECK_OK(lt_gguf_get_arr_data(g, "t.types", LT_GGUF_TYPE_INT32, ty, 3, &e), &e);
    CHECK(ty[0] == 1 && ty[1] == -2 && ty[2] == 3);
    // nested array [[1, 2], [3, 4, 5]] of i32
    const lt_gguf_value *v = lt_gguf_get_value(g, "t.nested");
    CHECK(lt_gguf_value_type(v) == LT_GGUF_TYPE_ARRAY && lt_gguf_arr_type(v) == LT_GGUF_TYPE_ARRAY);
    CHECK(lt_gguf_arr_len(v) == 2);
    CHECK(lt_gguf_arr_len(lt_gguf_arr_at(v, 1)) == 3);
    CHECK(lt_gguf_arr_type(lt_gguf_arr_at(v, 0)) == LT_GGUF_TYPE_INT32);
    CHECK(lt_gguf_arr_at(v, 2) == NULL && lt_gguf_arr_at(lt_gguf_arr_at(v, 0), 0) == NULL);

    const lt_gguf_tensor *t = NULL;
    CHECK_OK(lt_gguf_get_tensor(g, "f32", &t, &e), &e);
    if (t) {
        CHECK(t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 3 && t->shape[0] == 3 &&
              t->shape[1] == 4);
        float x[12];
        memcpy(x, t->data, sizeof x);
        int ok = 1;
        for (int i = 0; i < 12; i++) ok &= x[i] == (float)i - 5.5f;
        CHECK(ok);
    }
    CHECK_OK(lt_gguf_get_tensor(g, "f16", &t, &e), &e);
    if (t) {
        float x[4];
        lt_to_f32(t->dtype, t->data, x, 4);
        CHECK(t->shape[0] == 2 && x[0] == 1.0f && x[1] == -2.0f && x[3] == 65504.0f);
    }
    check_deq(g, "bf16");
    check_deq(g, "q8_0");
    check_deq(g, "q4_0");
    check_deq(g, "q4_1");
    // a k-quant block (all zero bytes: d = 0, so every value is 0); test_kquant.c checks values
    CHECK_OK(lt_gguf_get_tensor(g, "q6_k", &t, &e), &e);
    if (t) {
        CHECK(t->dtype == LT_DTYPE_Q6_K && t->ggml_type == 14 && t->ne[0] == 256 && t->nbytes == 210);
        float x[256];
        lt_to_f32(t->dtype, t->data, x, 256);
        bool zero = true;
        for (int i = 0; i < 256; i++) zero &= x[i] == 0.0f;
        CHECK(zero);
    }
    lt_gguf_close(g);

    // a type that is parsed (its size is known) but not converted: named in the error
    static bb iqb;
    uint64_t ne[1] = {256};
    iqb.n = 0;
    bhead(&iqb, 1, 0);
    binfo(&iqb, "iq", 1, ne, 16 /* iq2_xxs, 66 bytes */, 0);
    bpad(&iqb, 32);
    for (int i = 0; i < 66; i++) b_raw(&iqb, "", 1);
    g = NULL;
    CHECK_OK(lt_gguf_open_mem(iqb.p, iqb.n, "iq.gguf", &g, &e), &e);
    if (g) {
        CHECK(lt_gguf_get_tensor(g, "iq", &t, &e) == LT_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(e.msg, "'iq'") && strstr(e.msg, "iq2_xxs") && strstr(e.msg, "iq.gguf"), "%s", e.msg);
        lt_gguf_close(g);
    }
}

// ---------------------------------------------------------------------------------------------
// llama.cpp vocabulary files (../shared/data)

static void test_vocab_files(void) {
    const char *dir = shared_data_dir();
    if (!dir) {
        fprintf(stderr,
                "SKIP test_gguf vocab files: ../shared/data not found (set LT_SHARED_DATA)\n");
        return;
    }
    static const struct {
        const char *file, *model;
        uint64_t n_tokens;
        const char *tok0, *tok_last;
        uint32_t bos;
    } files[] = {
        {"ggml-vocab-gpt-2.gguf", "gpt2", 50257, "!", "<|endoftext|>", 50256},
        {"ggml-vocab-llama-spm.gguf", "llama", 32000, "<unk>", NULL, 1},
        {"ggml-vocab-gpt-neox.gguf", "gpt2", 50432, "<|endoftext|>", NULL, 0},
    };
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tokenizers/llama.cpp-vocab/%s", dir, files[k].file);
        lt_err e = {0};
        lt_gguf *g = NULL;
        CHECK_OK(lt_gguf_open(path, &g, &e), &e);
        if (!g) continue;
        const char *s;
        size_t len;
        CHECK(lt_gguf_version(g) == 3 && lt_gguf_tensor_count(g) == 0);
        CHECK_OK(lt_gguf_get_str(g, "tokenizer.ggml.model", &s, &len, &e), &e);
        CHECK_MSG(strcmp(s, files[k].model) == 0, "%s: model %s", files[k].file, s);
        lt_gguf_type et;
        uint64_t n = 0;
        CHECK_OK(lt_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n, &e), &e);
        CHECK_MSG(et == LT_GGUF_TYPE_STRING && n == files[k].n_tokens, "%s: %llu tokens",
                  files[k].file, (unsigned long long)n);
        CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 0, &s, &len, &e), &e);
        CHECK(strcmp(s, files[k].tok0) == 0);
        if (files[k].tok_last) {
            CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len, &e), &e);
            CHECK(strcmp(s, files[k].tok_last) == 0);
        }
        uint32_t bos = 99;
        CHECK_OK(lt_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &e), &e);
        CHECK(bos == files[k].bos);
        if (k == 0) { // gpt-2: merges, e.g. "Ġ t" first
            CHECK_OK(lt_gguf_get_arr_info(g, "tokenizer.ggml.merges", &et, &n, &e), &e);
            CHECK(n == 50000);
            CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.merges", 0, &s, &len, &e), &e);
            CHECK(strcmp(s, "\xc4\xa0 t") == 0);
            uint32_t nl = 0;
            CHECK(lt_gguf_get_u32(g, "gpt2.block_count", &nl, &e) == LT_OK && nl == 12);
        }
        if (k == 1) { // llama-spm: scores, token types, add_bos_token
            CHECK_OK(lt_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len, &e), &e);
            CHECK(strcmp(s, "<s>") == 0);
            int32_t ty[3] = {0};
            CHECK_OK(
                lt_gguf_get_arr_data(g, "tokenizer.ggml.token_type", LT_GGUF_TYPE_INT32, ty, 3, &e),
                &e);
            CHECK(ty[0] == 2 && ty[1] == 3 && ty[2] == 3);
            CHECK_OK(lt_gguf_get_arr_info(g, "tokenizer.ggml.scores", &et, &n, &e), &e);
            CHECK(et == LT_GGUF_TYPE_FLOAT32 && n == 32000);
            bool b = false;
            CHECK(lt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &e) == LT_OK && b);
            float eps = 0;
            CHECK(lt_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &e) == LT_OK);
            CHECK(eps == 1e-5f);
        }
        lt_gguf_close(g);
    }
}

// ---------------------------------------------------------------------------------------------
// malformed inputs

static void test_malformed(void) {
    lt_err e = {0};
    static bb b;
    // a valid base: one kv, one f32 tensor of 4 elements
    uint64_t ne4[1] = {4};
    bhead(&b, 1, 1);
    bkv_u32(&b, "k", 1);
    binfo(&b, "t", 1, ne4, 0, 0);
    bpad(&b, 32);
    b_raw(&b, "0123456789abcdef", 16);
    CHECK_OK(open_bytes(&b, "base.gguf", &e), &e);
    { // every truncation fails cleanly, except cutting into the padding after the data
        static bb c;
        size_t data_end = b.n, bad = 0;
        for (size_t k = 0; k < data_end; k++) {
            memcpy(c.p, b.p, k);
            c.n = k;
            lt_gguf *g = NULL;
            lt_status s = lt_gguf_open_mem(c.p, c.n, "trunc.gguf", &g, &e);
            if (s != LT_ERR_FORMAT || !strstr(e.msg, "trunc.gguf")) bad++;
            lt_gguf_close(g);
        }
        CHECK_MSG(bad == 0, "%zu truncations accepted or misreported", bad);
    }
    b.n = 0;
    BAD(&b, "empty.gguf", LT_ERR_FORMAT, "too short");
    bhead(&b, 0, 0);
    memcpy(b.p, "GGML", 4);
    BAD(&b, "magic.gguf", LT_ERR_FORMAT, "expected 'GGUF'");
    bhead(&b, 0, 0);
    b.p[4] = 1;
    BAD(&b, "v1.gguf", LT_ERR_UNSUPPORTED, "version 1");
    b.p[4] = 4;
    BAD(&b, "v4.gguf", LT_ERR_UNSUPPORTED, "version 4");
    b.p[4] = 0;
    b.p[7] = 3;
    BAD(&b, "bigendian.gguf", LT_ERR_UNSUPPORTED, "big-endian");
    b.p[7] = 0;
    BAD(&b, "v0.gguf", LT_ERR_FORMAT, "version 0");
    bhead(&b, 0, 1ull << 60);
    BAD(&b, "nkv.gguf", LT_ERR_FORMAT, "key/value pairs");
    bhead(&b, UINT64_MAX, 0);
    BAD(&b, "ntensors.gguf", LT_ERR_FORMAT, "tensors cannot fit");
    bhead(&b, 0, 1);
    b64(&b, 1ull << 62);
    b_raw(&b, "abcdefghijklmn", 14);
    BAD(&b, "strlen.gguf", LT_ERR_FORMAT, "length 4611686018427387904");
    bhead(&b, 0, 1);
    bstr(&b, "k");
    b32(&b, 13);
    b32(&b, 0);
    BAD(&b, "kvtype.gguf", LT_ERR_FORMAT, "value type 13");
    bhead(&b, 0, 1);
    bstr(&b, "arr");
    b32(&b, LT_GGUF_TYPE_ARRAY);
    b32(&b, LT_GGUF_TYPE_UINT32);
    b64(&b, 1ull << 61);
    b32(&b, 0);
    BAD(&b, "arrlen.gguf", LT_ERR_FORMAT, "cannot fit");
    bhead(&b, 0, 1);
    bstr(&b, "arr");
    b32(&b, LT_GGUF_TYPE_ARRAY);
    b32(&b, 77);
    b64(&b, 0);
    BAD(&b, "arrtype.gguf", LT_ERR_FORMAT, "element type 77");
    bhead(&b, 0, 1);
    bstr(&b, "deep");
    b32(&b, LT_GGUF_TYPE_ARRAY);
    for (int i = 0; i < 12; i++) {
        b32(&b, LT_GGUF_TYPE_ARRAY);
        b64(&b, 1);
    }
    b32(&b, LT_GGUF_TYPE_UINT8);
    b64(&b, 0);
    BAD(&b, "deep.gguf", LT_ERR_FORMAT, "nested deeper");
    bhead(&b, 0, 2);
    bkv_u32(&b, "same", 1);
    bkv_u32(&b, "same", 2);
    BAD(&b, "dupkey.gguf", LT_ERR_FORMAT, "'same' appears twice");
    bhead(&b, 0, 1);
    bkv_u32(&b, "", 1);
    BAD(&b, "emptykey.gguf", LT_ERR_FORMAT, "empty");
    bhead(&b, 0, 1);
    bstr(&b, "general.alignment");
    b32(&b, LT_GGUF_TYPE_UINT64);
    b64(&b, 32);
    BAD(&b, "aligntype.gguf", LT_ERR_FORMAT, "expected u32");
    bhead(&b, 0, 1);
    bkv_u32(&b, "general.alignment", 24);
    BAD(&b, "align24.gguf", LT_ERR_FORMAT, "power of two");
    bhead(&b, 0, 1);
    bkv_u32(&b, "general.alignment", 0);
    BAD(&b, "align0.gguf", LT_ERR_FORMAT, "power of two");

    // tensor infos
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    bhead(&b, 1, 0);
    binfo(&b, "t", 5, ne5, 0, 0);
    BAD(&b, "ndims.gguf", LT_ERR_FORMAT, "5 dimensions");
    uint64_t neneg[2] = {4, (uint64_t)-3};
    bhead(&b, 1, 0);
    binfo(&b, "t", 2, neneg, 0, 0);
    BAD(&b, "negdim.gguf", LT_ERR_FORMAT, "expected >= 0");
    uint64_t nebig[3] = {1ull << 32, 1ull << 32, 1ull << 32};
    bhead(&b, 1, 0);
    binfo(&b, "t", 3, nebig, 0, 0);
    BAD(&b, "overflow.gguf", LT_ERR_FORMAT, "overflows");
    uint64_t nebytes[1] = {1ull << 62};
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, nebytes, 0, 0); // f32: 2^64 bytes
    BAD(&b, "bytes.gguf", LT_ERR_FORMAT, "byte size overflows");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, 4, 0); // removed type 4 (q4_2)
    BAD(&b, "type4.gguf", LT_ERR_FORMAT, "unknown ggml type 4");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, 1000, 0);
    BAD(&b, "type1000.gguf", LT_ERR_FORMAT, "unknown ggml type 1000");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, LT_GGML_TYPE_Q8_0, 0);
    BAD(&b, "block.gguf", LT_ERR_FORMAT, "multiple of the block size 32");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, 0, 8);
    BAD(&b, "unaligned.gguf", LT_ERR_FORMAT, "not a multiple of the alignment");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, 0, 32);
    bpad(&b, 32);
    b_raw(&b, "0123456789abcdef", 16);
    BAD(&b, "pastend.gguf", LT_ERR_FORMAT, "outside the data section");
    uint64_t ne8[1] = {8};
    bhead(&b, 2, 0);
    binfo(&b, "t", 1, ne8, 0, 0);
    binfo(&b, "u", 1, ne4, 0, 0);
    bpad(&b, 32);
    b_raw(&b, "0123456789abcdef0123456789abcdef", 32);
    BAD(&b, "overlap.gguf", LT_ERR_FORMAT, "overlap");
    bhead(&b, 2, 0);
    binfo(&b, "t", 1, ne4, 0, 0);
    binfo(&b, "t", 1, ne4, 0, 32);
    bpad(&b, 32);
    b_raw(&b, "0123456789abcdef0123456789abcdef0123456789abcdef", 48);
    BAD(&b, "duptensor.gguf", LT_ERR_FORMAT, "'t' appears twice");
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = 0;
    bhead(&b, 1, 0);
    binfo(&b, name64, 1, ne4, 0, 0);
    BAD(&b, "longname.gguf", LT_ERR_FORMAT, "expected < 64");
    bhead(&b, 1, 0);
    binfo(&b, "", 1, ne4, 0, 0);
    BAD(&b, "emptyname.gguf", LT_ERR_FORMAT, "empty name");
    bhead(&b, 1, 0);
    binfo(&b, "t", 1, ne4, 0, 0); // no data section at all
    BAD(&b, "nodata.gguf", LT_ERR_FORMAT, "past the end");
    // accepted: n_dims 0 (one element), gaps between tensors, unused trailing bytes
    bhead(&b, 2, 0);
    binfo(&b, "s", 0, NULL, 0, 0);
    binfo(&b, "t", 1, ne4, 0, 64);
    bpad(&b, 32);
    b_raw(&b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefXYZ",
          83);
    CHECK_OK(open_bytes(&b, "gaps.gguf", &e), &e);
    // and from a file: missing file, directory
    lt_gguf *g = NULL;
    CHECK(lt_gguf_open(tpath("absent.gguf"), &g, &e) == LT_ERR_IO && strstr(e.msg, "absent.gguf"));
    CHECK(lt_gguf_open(tmpdir, &g, &e) == LT_ERR_IO);
}

// ---------------------------------------------------------------------------------------------
// allocation failures

typedef lt_status (*op_fn)(lt_err *e);

static lt_status op_open_rt(lt_err *e) {
    lt_gguf *g;
    lt_status s = lt_gguf_open(tpath("rt.gguf"), &g, e);
    if (!s) lt_gguf_close(g);
    return s;
}
static lt_status op_open_py(lt_err *e) {
    lt_gguf *g;
    lt_status s = lt_gguf_open("tests/fixtures/io/pygguf.gguf", &g, e);
    if (!s) lt_gguf_close(g);
    return s;
}
static lt_status op_write(lt_err *e) { return write_sample(tpath("sweep.gguf"), 0, e); }

static void sweep(const char *what, op_fn op) {
    lt_err e = {0};
    int bad = 0;
    long i;
    for (i = 0; i < 100000; i++) {
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(i);
        lt_status s = op(&e);
        lt_alloc_fail_after(-1);
        if (lt_alloc_injected_failures() == before) {
            if (s != LT_OK) {
                bad++;
                fprintf(stderr, "%s: no failure injected but got %s: %s\n", what, lt_status_name(s),
                        e.msg);
            }
            break;
        }
        if (s != LT_ERR_OOM) {
            bad++;
            fprintf(stderr, "%s: allocation %ld failed but got %s: %s\n", what, i,
                    lt_status_name(s), s ? e.msg : "");
        }
    }
    CHECK_MSG(bad == 0 && i > 0, "%s: %d bad outcomes", what, bad);
    fprintf(stderr, "ok   sweep %s: %ld allocations\n", what, i);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lt_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_python_fixture();
    test_vocab_files();
    test_malformed();
    sweep("gguf open+close", op_open_rt);
    sweep("gguf-py file open+close", op_open_py);
    sweep("gguf write", op_write);
    const char *names[] = {"rt.gguf", "rt64.gguf", "a16.gguf", "nothing.gguf", "sweep.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) remove(tpath(names[i]));
    rmdir(tmpdir);
    TEST_END();
}
