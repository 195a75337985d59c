// cmd_demo_data.c - `loratune demo-data`: writes the built-in demo dataset as JSONL.
#include "cli/cli.h"
#include "data/data.h"
#include "io/io.h"

#include <stdio.h>

int cmd_demo_data(int argc, char **argv) {
    const char *out = NULL;
    int n = 2000;
    int64_t seed = 1;
    bool help = false;
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "output JSONL file (required)"},
        {"n", OPT_INT, &n, "number of records (default 2000)"},
        {"seed", OPT_I64, &seed, "seed (default 1)"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int rc = cli_parse("demo-data", argc, argv, 2, opts, 4, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf("usage: loratune demo-data --out FILE [--n N] [--seed S]\n"
               "Writes order-extraction records {\"text\", \"message\", \"json\"}: a message and "
               "the JSON object it states.\n\n");
        cli_print_opts(opts, 4);
        return 0;
    }
    if (!out) return cli_usage_error("demo-data", "--out is required");
    if (n <= 0) return cli_usage_error("demo-data", "--n must be positive");
    lt_err err = {0};
    lt_afile f;
    if (lt_afile_open(&f, out, &err)) return cli_fail(&err);
    lt_rng r;
    lt_rng_seed(&r, (uint64_t)seed);
    for (int i = 0; i < n; i++) {
        char msg[512], json[512];
        lt_synth_order(&r, msg, sizeof msg, json, sizeof json);
        cJSON *o = cJSON_CreateObject();
        char text[1200];
        snprintf(text, sizeof text, "Extract the order as JSON.\nMessage: %s\nJSON: %s", msg, json);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddStringToObject(o, "message", msg);
        cJSON_AddStringToObject(o, "json", json);
        char *line = cJSON_PrintUnformatted(o);
        if (line) fprintf(f.f, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    }
    if (lt_afile_commit(&f, &err)) return cli_fail(&err);
    fprintf(stderr, "wrote %d records to %s\n", n, out);
    return 0;
}
