// cmd_merge.c - `loratune merge`: base model + PEFT adapter -> merged Hugging Face model directory.
#include "cli/cli.h"
#include "lora/merge.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// "2GB", "500MB", "1.5GiB", "123456" (bytes) -> bytes. Decimal units as transformers' "5GB".
static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return false;
    while (isspace((unsigned char)*end)) end++;
    static const struct {
        const char *u;
        double f;
    } units[] = {
        {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
        {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"K", 1e3},
        {"M", 1e6},   {"G", 1e9},
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcasecmp(end, units[i].u)) {
            double b = v * units[i].f;
            if (b < 1 || b > 1e18) return false;
            *out = (uint64_t)b;
            return true;
        }
    return false;
}

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *dtype_s = "keep", *shard_s = "2GB";
    bool verify = false, help = false;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "base model: HF directory, .gguf or llama2.c .bin"},
        {"adapter", OPT_STR, &adapter, "PEFT adapter directory (omit to convert the base alone)"},
        {"out", OPT_STR, &out, "output directory (HF layout: config.json + safetensors)"},
        {"dtype", OPT_STR, &dtype_s, "keep | f32 | bf16 | f16 (default keep: the base's dtype)"},
        {"shard-size", OPT_STR, &shard_s,
         "largest safetensors shard, e.g. 2GB, 500MB (default 2GB)"},
        {"verify", OPT_BOOL, &verify,
         "reload the result and compare logits with the unmerged model"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("merge", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf(
            "usage: loratune merge --model BASE --adapter DIR --out OUTDIR [flags]\n\n"
            "Merges W' = W + scale * B @ A (f32, rounded once to the output dtype) and writes a\n"
            "Hugging Face model directory that transformers / vLLM load.\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    if (!model) return cli_usage_error("merge", "--model is required");
    if (!out) return cli_usage_error("merge", "--out is required");
    lt_merge_opts mo = {.dtype = LT_DTYPE_KEEP};
    if (!cli_parse_dtype(dtype_s, true, false, &mo.dtype))
        return cli_usage_error("merge", "--dtype must be keep, f32, bf16 or f16 (got \"%s\")",
                               dtype_s);
    if (!parse_size(shard_s, &mo.shard_bytes))
        return cli_usage_error(
            "merge", "--shard-size must be a size like 2GB or 500MB (got \"%s\")", shard_s);
    lt_err err = {0};
    lt_model *m = NULL, *got = NULL;
    lt_adapter *a = NULL;
    int ret = 0;
    if (lt_model_load(model, &m, &err) || (adapter && lt_adapter_load_peft(m, adapter, &a, &err))) {
        ret = cli_fail(&err);
        goto done;
    }
    char labels[4096];
    if (a && a->n_labels > 0) { // a classifier: the head goes in as score.weight
        mo.cls = a;
        if (lt_path_join(labels, sizeof labels, adapter, "labels.json")) mo.labels_json = labels;
    }
    double t0 = lt_time_sec();
    if (lt_merge_save_hf(m, model, out, &mo, &err)) {
        ret = cli_fail(&err);
        goto done;
    }
    lt_dtype wd = lt_merge_written_dtype(m, mo.dtype);
    printf("merged %s%s%s -> %s (%s) in %.1f s\n", model, adapter ? " + " : "",
           adapter ? adapter : "", out,
           mo.dtype == LT_DTYPE_KEEP ? "dtype kept" : lt_dtype_name(wd), lt_time_sec() - t0);
    if (verify) {
        lt_verify_result vr = {0};
        if (lt_model_load(out, &got, &err) ||
            lt_verify_models(m, got, mo.dtype == LT_DTYPE_KEEP && m->st ? LT_DTYPE_F32 : wd,
                             lt_verify_rel_tol(wd), &vr, &err)) {
            ret = cli_fail(&err);
            goto done;
        }
        if (mo.cls) lt_verify_cls_head(a, got, &vr);
        cli_print_verify("merge", wd, &vr);
        if (!vr.ok) ret = 1;
    }
done:
    lt_model_free(got);
    lt_adapter_free(a);
    lt_model_free(m);
    return ret;
}
