// cmd_export.c - `loratune export`: a GGUF model of the (merged) model, or the adapter alone as a
// llama.cpp GGUF LoRA file.
#include "cli/cli.h"
#include "lora/merge.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int cmd_export(int argc, char **argv) {
    const char *format = "gguf", *model = NULL, *adapter = NULL, *out = NULL, *dtype_s = NULL,
               *tok = NULL, *name = NULL;
    bool verify = false, help = false;
    cli_opt opts[] = {
        {"format", OPT_STR, &format, "gguf (the merged model) | gguf-lora (the adapter alone)"},
        {"model", OPT_STR, &model, "base model: HF directory, .gguf or llama2.c .bin"},
        {"adapter", OPT_STR, &adapter, "PEFT adapter directory (required for gguf-lora)"},
        {"out", OPT_STR, &out, "output .gguf file"},
        {"dtype", OPT_STR, &dtype_s,
         "gguf: f32 | f16 | bf16 | q8_0 (default f16); gguf-lora: f32 | f16 | bf16 (default f32)"},
        {"tokenizer", OPT_STR, &tok,
         "tokenizer.json (or its directory) for the vocabulary keys (default: the base's)"},
        {"name", OPT_STR, &name, "general.name (default: the base's file or directory name)"},
        {"verify", OPT_BOOL, &verify,
         "reload the result and compare logits with the unmerged model"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("export", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf("usage: loratune export --format gguf|gguf-lora --model BASE [--adapter DIR] "
               "--out FILE.gguf [flags]\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    bool lora = !strcmp(format, "gguf-lora");
    if (!lora && strcmp(format, "gguf"))
        return cli_usage_error("export", "--format must be gguf or gguf-lora (got \"%s\")", format);
    if (!model) return cli_usage_error("export", "--model is required");
    if (!out) return cli_usage_error("export", "--out is required");
    if (lora && !adapter) return cli_usage_error("export", "--format gguf-lora needs --adapter");
    lt_dtype d = lora ? LT_DTYPE_F32 : LT_DTYPE_F16;
    if (dtype_s && (!cli_parse_dtype(dtype_s, false, true, &d) || (lora && d == LT_DTYPE_Q8_0)))
        return cli_usage_error("export", "--dtype must be %s (got \"%s\")",
                               lora ? "f32, f16 or bf16" : "f32, f16, bf16 or q8_0", dtype_s);
    lt_err err = {0};
    lt_model *m = NULL, *got = NULL;
    lt_adapter *a = NULL;
    int ret = 0;
    if (lt_model_load(model, &m, &err) || (adapter && lt_adapter_load_peft(m, adapter, &a, &err))) {
        ret = cli_fail(&err);
        goto done;
    }
    if (a && a->n_labels > 0 && !lora)
        fprintf(
            stderr,
            "loratune export: warning: the adapter's classification head (%d labels) has "
            "no place in a llama.cpp causal-LM GGUF and is left out (loratune merge keeps it)\n",
            a->n_labels);
    double t0 = lt_time_sec();
    lt_export_opts eo = {.dtype = d, .tokenizer_path = tok, .name = name};
    if (lora ? lt_export_gguf_lora(m, a, out, d, &err) : lt_export_gguf(m, model, out, &eo, &err)) {
        ret = cli_fail(&err);
        goto done;
    }
    printf("exported %s%s%s -> %s (%s, %s) in %.1f s\n", model, adapter ? " + " : "",
           adapter ? adapter : "", out, lora ? "GGUF LoRA" : "GGUF", lt_dtype_name(d),
           lt_time_sec() - t0);
    if (verify) {
        lt_verify_result vr = {0};
        lt_status st = lora ? lt_verify_gguf_lora(m, out, d, lt_verify_rel_tol(d), &vr, &err)
                            : lt_model_load_gguf(out, &got, &err);
        if (!st && !lora)
            st = lt_verify_models(m, got, LT_DTYPE_F32, lt_verify_rel_tol(d), &vr, &err);
        if (st) {
            ret = cli_fail(&err);
            goto done;
        }
        cli_print_verify(lora ? "gguf-lora" : "gguf", d, &vr);
        if (!vr.ok) ret = 1;
    }
done:
    lt_model_free(got);
    lt_adapter_free(a);
    lt_model_free(m);
    return ret;
}
