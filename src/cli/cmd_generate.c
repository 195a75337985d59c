// cmd_generate.c - `loratune generate`: text (or schema-constrained JSON) from a model, with or
// without a LoRA adapter, for one prompt (streamed) or a file of prompts (JSONL out).
#include "cli/cli.h"
#include "infer/infer.h"
#include "io/gguf.h"
#include "lora/lora.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_STOP 16

static void stream_token(void *ud, int64_t idx, int32_t id, const char *b, size_t n) {
    (void)ud, (void)idx, (void)id;
    if (b && n) fwrite(b, 1, n, stdout);
    fflush(stdout);
}

// Every "--stop S" / "--stop=S" of argv (cli_parse keeps only the last one).
static int collect_stops(int argc, char **argv, const char **stops) {
    int n = 0;
    for (int i = 2; i < argc && n < MAX_STOP; i++) {
        if (!strcmp(argv[i], "--stop") && i + 1 < argc)
            stops[n++] = argv[++i];
        else if (!strncmp(argv[i], "--stop=", 7))
            stops[n++] = argv[i] + 7;
    }
    return n;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *tok_path = NULL, *prompt = NULL,
               *prompts_path = NULL, *schema_path = NULL, *out_path = NULL, *stop_last = NULL,
               *system = NULL, *chat_tmpl_path = NULL, *tmpl = NULL, *field = NULL;
    int max_new = 128, top_k = 0, batch = 8;
    float temperature = -1, top_p = 1, rep = 1;
    int64_t seed = 0;
    bool chat = false, quiet = false, help = false;
    const char *compute = "f32"; // --compute
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model: HF directory, .gguf, or llama2.c .bin"},
        {"adapter", OPT_STR, &adapter, "PEFT adapter directory, applied unmerged (default: none)"},
        {"tokenizer", OPT_STR, &tok_path,
         "tokenizer.json, GGUF or llama2.c tokenizer.bin (default: the model's)"},
        {"prompt", OPT_STR, &prompt, "one prompt (the output is streamed to stdout)"},
        {"prompts", OPT_STR, &prompts_path,
         "prompts: .txt (one per line) or records (.jsonl/.json/.csv/.tsv)"},
        {"prompt-field", OPT_STR, &field,
         "record field holding the prompt (default prompt, else text)"},
        {"template", OPT_STR, &tmpl,
         "prompt template for records (built-in name or text with {field}s); cut at the response"},
        {"chat", OPT_BOOL, &chat,
         "render prompts with the chat template (user message, generation prompt)"},
        {"system", OPT_STR, &system, "system message for --chat"},
        {"chat-template", OPT_STR, &chat_tmpl_path,
         "Jinja chat template file (default: the tokenizer's)"},
        {"max-new-tokens", OPT_INT, &max_new, "tokens to generate at most (default 128)"},
        {"temperature", OPT_FLOAT, &temperature,
         "sampling temperature; 0 = greedy (default greedy)"},
        {"top-k", OPT_INT, &top_k, "keep the k most likely tokens (sampling; 0 = off)"},
        {"top-p", OPT_FLOAT, &top_p, "nucleus sampling mass (sampling; 1 = off)"},
        {"repetition-penalty", OPT_FLOAT, &rep, "HF repetition penalty (1 = off)"},
        {"seed", OPT_I64, &seed, "sampling seed (default 0)"},
        {"stop", OPT_STR, &stop_last,
         "stop string (repeatable); the output is cut before it (ignored with --json-schema)"},
        {"json-schema", OPT_STR, &schema_path,
         "constrain outputs to this JSON schema (object of string/number/integer/boolean/enum)"},
        {"batch", OPT_INT, &batch, "prompts decoded together (default 8)"},
        {"out", OPT_STR, &out_path, "output JSONL, one record per prompt (default: stdout)"},
        {"quiet", OPT_BOOL, &quiet, "no progress bar"},
        {"compute", OPT_STR, &compute, CLI_COMPUTE_HELP " (prompt prefill; decoding steps stay f32)"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("generate", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if ((rc = cli_set_compute("generate", compute))) return rc;
    if (help) {
        printf("usage: loratune generate --model PATH (--prompt TEXT | --prompts FILE) [flags]\n\n"
               "Greedy unless --temperature > 0 (or --top-k / --top-p, which sample at temperature "
               "1).\n"
               "With --json-schema every output is a complete document of the schema.\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    if (!model) return cli_usage_error("generate", "--model is required");
    if (!prompt == !prompts_path)
        return cli_usage_error("generate", "give exactly one of --prompt and --prompts");
    if (max_new < 1) return cli_usage_error("generate", "--max-new-tokens must be at least 1");
    if (batch < 1) return cli_usage_error("generate", "--batch must be at least 1");
    if (top_k < 0) return cli_usage_error("generate", "--top-k must be >= 0");
    if (!(top_p > 0 && top_p <= 1)) return cli_usage_error("generate", "--top-p must be in (0, 1]");
    if (!(rep > 0)) return cli_usage_error("generate", "--repetition-penalty must be > 0");
    if (temperature < 0) temperature = (top_k > 0 || top_p < 1) ? 1.0f : 0.0f;
    const char *stops[MAX_STOP];
    int n_stop = stop_last ? collect_stops(argc, argv, stops) : 0;

    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_tokenizer *tok = NULL;
    lt_jschema *sc = NULL;
    lt_jvocab *jv = NULL;
    lt_prompter *pm = NULL;
    lt_prompts ps = {0};
    lt_gen_out *outs = NULL;
    char *chat_src = NULL;
    lt_status st;
    if ((st = lt_model_load(model, &m, &err))) goto fail;
    if (adapter && (st = lt_adapter_load_peft(m, adapter, &a, &err))) goto fail;
    if ((st = cli_open_tokenizer(tok_path, model, m, &tok, &err))) goto fail;
    if (chat_tmpl_path) {
        size_t n;
        if ((st = lt_read_file(chat_tmpl_path, &chat_src, &n, &err))) goto fail;
    } else if (!lt_tokenizer_chat_template(tok) && m->gguf) { // GGUF: tokenizer.chat_template
        const char *s = NULL;
        size_t n = 0;
        if (lt_gguf_get_str(m->gguf, "tokenizer.chat_template", &s, &n, NULL) == LT_OK &&
            (chat_src = lt_alloc(n + 1)))
            memcpy(chat_src, s, n), chat_src[n] = 0;
    }
    lt_prompt_opts po = {.chat = chat,
                         .system = system,
                         .chat_template = chat_src,
                         .template_src = tmpl,
                         .field = field};
    if ((st = lt_prompter_new(tok, &po, &pm, &err))) goto fail;
    if (prompt)
        st = lt_prompts_add_text(&ps, pm, prompt, NULL, &err);
    else
        st = lt_prompts_load(&ps, pm, prompts_path, &err);
    if (st) goto fail;
    if (ps.n == 0) {
        st = lt_err_set(&err, LT_ERR_ARG, "%s: no prompts", prompts_path);
        goto fail;
    }
    if (schema_path) {
        if ((st = lt_jschema_load(schema_path, &sc, &err))) goto fail;
        if ((st = lt_jvocab_new(sc, tok, &jv, &err))) goto fail;
    }
    lt_gen_opts go;
    lt_gen_opts_default(&go);
    go.max_new_tokens = max_new;
    go.sampler = (lt_sampler_opts){
        .temperature = temperature, .top_k = top_k, .top_p = top_p, .repetition_penalty = rep};
    go.seed = (uint64_t)seed;
    go.stop = stops, go.n_stop = n_stop;
    go.batch = batch;
    go.json = jv;
    go.progress = !quiet && !prompt;
    bool stream = prompt && !out_path;
    if (stream) go.on_token = stream_token;
    if (!quiet)
        lt_info("generate: %lld prompt%s, %s%s, max %d new tokens, batch %d%s%s", (long long)ps.n,
                ps.n == 1 ? "" : "s", temperature > 0 ? "sampling" : "greedy", a ? ", adapter" : "",
                max_new, batch, jv ? ", JSON schema " : "", jv ? schema_path : "");
    if (!(outs = lt_calloc((size_t)ps.n, sizeof *outs))) {
        st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    double t0 = lt_time_sec();
    if ((st = lt_generate(m, tok, (const int32_t *const *)ps.ids, ps.len, ps.n, &go, outs, &err)))
        goto fail;
    double dt = lt_time_sec() - t0;
    if (stream) {
        // the streamed bytes are the raw tokens; a stop string is cut in the record, not the stream
        printf("\n");
    }
    if (!stream || out_path) {
        lt_afile af = {0};
        FILE *f = stdout;
        if (out_path) {
            if ((st = lt_afile_open(&af, out_path, &err))) goto fail;
            f = af.f;
        }
        for (int64_t i = 0; i < ps.n; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o) break;
            if (ps.id[i]) cJSON_AddStringToObject(o, "id", ps.id[i]);
            cJSON_AddStringToObject(o, "prompt", ps.text[i]);
            cJSON_AddStringToObject(o, "output", outs[i].text ? outs[i].text : "");
            if (jv) {
                cJSON *j = outs[i].text ? cJSON_Parse(outs[i].text) : NULL;
                if (j)
                    cJSON_AddItemToObject(o, "json", j);
                else
                    cJSON_AddNullToObject(o, "json");
            }
            cJSON_AddStringToObject(o, "finish", lt_finish_name(outs[i].finish));
            cJSON_AddNumberToObject(o, "n_tokens", outs[i].n_ids);
            char *line = cJSON_PrintUnformatted(o);
            if (line) fprintf(f, "%s\n", line);
            cJSON_free(line);
            cJSON_Delete(o);
        }
        if (out_path && (st = lt_afile_commit(&af, &err))) goto fail;
    }
    int64_t n_tok = 0, by_finish[4] = {0};
    for (int64_t i = 0; i < ps.n; i++) n_tok += outs[i].n_ids, by_finish[outs[i].finish]++;
    if (!quiet) {
        fprintf(stderr,
                "generated %lld tokens for %lld prompt%s in %.1f s (%.1f tokens/s); finished by "
                "eos %lld, stop %lld, length %lld%s",
                (long long)n_tok, (long long)ps.n, ps.n == 1 ? "" : "s", dt,
                dt > 0 ? (double)n_tok / dt : 0.0, (long long)by_finish[LT_FINISH_EOS],
                (long long)by_finish[LT_FINISH_STOP], (long long)by_finish[LT_FINISH_LENGTH],
                jv ? ", complete JSON " : "");
        if (jv) fprintf(stderr, "%lld", (long long)by_finish[LT_FINISH_JSON]);
        fprintf(stderr, "%s%s\n", out_path ? "; written to " : "", out_path ? out_path : "");
    }
    st = LT_OK;
fail:
    if (outs) lt_gen_out_deinit(outs, ps.n);
    lt_free(outs);
    lt_prompts_deinit(&ps);
    lt_prompter_free(pm);
    lt_jvocab_free(jv);
    lt_jschema_free(sc);
    lt_free(chat_src);
    lt_tokenizer_free(tok);
    lt_adapter_free(a);
    lt_model_free(m);
    return st ? cli_fail(&err) : 0;
}
