/*
 * fuzz_records.c - fuzz target for the dataset record readers (JSONL, JSON arrays, CSV, TSV) and
 * what runs on their output: field lookup, prompt templates, classification records, splits.
 * The first byte picks the format and the options (skip or stop, header, column names); the rest
 * is the file, in a buffer of exactly its size so that reads past the end show under ASan.
 */
#include "core/core.h"
#include "data/data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *fuzz_default_corpus = "tests/fuzz/corpus/records";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const lt_data_format fmts[4] = {LT_DATA_JSONL, LT_DATA_JSON, LT_DATA_CSV, LT_DATA_TSV};
    static const char *const names[4] = {"f.jsonl", "f.json", "f.csv", "f.tsv"};
    uint8_t sel = data[0];
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    if (n) memcpy(buf, data + 1, n);
    lt_read_opts o;
    lt_read_opts_default(&o);
    o.format = fmts[sel & 3];
    o.on_bad = (sel & 4) ? LT_ON_BAD_SKIP : LT_ON_BAD_STOP;
    if (sel & 8) o.columns = "label,text";
    o.header = (sel & 16) ? 1 : -1;
    if (sel & 32) o.max_records = 3;
    lt_records r;
    lt_records_init(&r);
    lt_err err;
    (void)lt_records_read_mem(&r, buf, n, names[sel & 3], &o, &err);
    lt_template *t = NULL;
    (void)lt_template_new((sel & 64) ? "alpaca" : "{text?}\n\n{label?}|{title?}", &t, &err);
    for (int64_t i = 0; i < r.n; i++) {
        const lt_record *rec = &r.rec[i];
        for (int k = 0; k < rec->n_fields; k++) {
            const lt_field *f = &rec->fields[k];
            if (f->str && strlen(f->str) > f->len) abort(); // the length is right
            if (f->type == LT_FIELD_MSGS)
                for (int m = 0; m < f->n_msgs; m++)
                    if (!f->msgs[m].role || !f->msgs[m].content) abort();
            (void)lt_record_get(rec, f->key);
        }
        char where[128], *s = NULL;
        size_t len, resp;
        const char *label;
        lt_record_where(&r, rec, where, sizeof where);
        if (t && lt_template_render(t, rec, &s, &len, &resp, &err) == LT_OK) {
            if (resp != SIZE_MAX && resp > len) abort();
            lt_free(s);
        }
        if (lt_cls_record(t, rec, "label", &s, &len, &label, &err) == LT_OK) lt_free(s);
    }
    int64_t *tr = NULL, *va = NULL, nt = 0, nv = 0;
    if (r.n > 1 && lt_records_split(&r, r.n / 3, 1, (sel & 128) ? "label" : NULL, &tr, &nt, &va,
                                    &nv, &err) == LT_OK) {
        if (nt + nv != r.n) abort();
        lt_free(tr);
        lt_free(va);
    }
    lt_template_free(t);
    lt_records_deinit(&r);
    free(buf);
    return 0;
}
