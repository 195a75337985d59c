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
               "Writes order-extraction records: a message and the JSON object it states, as chat "
               "\"messages\" (user, assistant), \"prompt\"/\"completion\", plain \"text\", and "
               "\"gold\" (the answer, for evaluation).\n\n");
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
        char user[800], text[1400];
        snprintf(user, sizeof user, "Extract the order as JSON with the keys order_id, customer, "
                 "quantity, unit_price and city.\nMessage: %s", msg);
        snprintf(text, sizeof text, "%s\nJSON: %s", user, json);
        // chat form (SFT through the model's chat template, loss on the assistant turn), the
        // prompt/completion form, plain text, and the gold answer for evaluation
        cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
        cJSON *mu = cJSON_CreateObject(), *ma = cJSON_CreateObject();
        cJSON_AddStringToObject(mu, "role", "user");
        cJSON_AddStringToObject(mu, "content", user);
        cJSON_AddStringToObject(ma, "role", "assistant");
        cJSON_AddStringToObject(ma, "content", json);
        cJSON_AddItemToArray(msgs, mu);
        cJSON_AddItemToArray(msgs, ma);
        cJSON_AddStringToObject(o, "prompt", user);
        cJSON_AddStringToObject(o, "completion", json);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddStringToObject(o, "gold", json);
        char *line = cJSON_PrintUnformatted(o);
        if (line) fprintf(f.f, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    }
    if (lt_afile_commit(&f, &err)) return cli_fail(&err);
    fprintf(stderr, "wrote %d records to %s\n", n, out);
    return 0;
}
