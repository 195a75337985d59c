// cli_common.c - helpers shared by the commands: suffix tests, opening a model's tokenizer, and
// the @FILE / escape rules of text arguments.
#include "cli/cli.h"
#include "io/io.h"
#include "lora/merge.h"
#include "model/model.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <strings.h>
#include <string.h>
#include <sys/stat.h>

bool cli_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// vocab_size of a llama2.c checkpoint header (7 int32; the 6th is negative when the classifier is
// not shared), or 0.
static int32_t llama2c_vocab(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int32_t h[7];
    size_t got = fread(h, sizeof *h, 7, f);
    fclose(f);
    if (got != 7 || h[5] == INT32_MIN) return 0;
    return h[5] < 0 ? -h[5] : h[5];
}

// tokenizer.json, with the tokenizer_config.json beside it when there is one (bos/eos, chat template).
static lt_status load_hf_json(const char *path, lt_tokenizer **out, lt_err *err) {
    char cfg[4096];
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    if (dir + sizeof "tokenizer_config.json" > sizeof cfg) return lt_tokenizer_load_hf(path, NULL, out, err);
    memcpy(cfg, path, dir);
    memcpy(cfg + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
    return lt_tokenizer_load_hf(path, lt_file_exists(cfg) ? cfg : NULL, out, err);
}

lt_status cli_open_tokenizer(const char *tok_path, const char *model_path, const lt_model *m,
                             lt_tokenizer **out, lt_err *err) {
    struct stat sb;
    if (tok_path) {
        if (cli_ends_with(tok_path, ".bin")) { // llama2.c: the vocabulary size is in the checkpoint
            int32_t nv = m ? m->cfg.n_vocab : model_path ? llama2c_vocab(model_path) : 0;
            if (nv <= 0)
                return lt_err_set(err, LT_ERR_ARG, "%s: a llama2.c tokenizer needs the vocabulary "
                                  "size: give the llama2.c checkpoint with --model", tok_path);
            return lt_tokenizer_load_llama2c(tok_path, nv, out, err);
        }
        if (stat(tok_path, &sb) == 0 && S_ISDIR(sb.st_mode)) return lt_tokenizer_load_hf_dir(tok_path, out, err);
        if (cli_ends_with(tok_path, ".gguf")) return lt_tokenizer_load_gguf_file(tok_path, out, err);
        return load_hf_json(tok_path, out, err);
    }
    if (!model_path) return lt_err_set(err, LT_ERR_ARG, "give --model or --tokenizer");
    if (stat(model_path, &sb) == 0 && S_ISDIR(sb.st_mode)) return lt_tokenizer_load_hf_dir(model_path, out, err);
    if (m && m->gguf) return lt_tokenizer_load_gguf(m->gguf, out, err);
    if (cli_ends_with(model_path, ".gguf")) return lt_tokenizer_load_gguf_file(model_path, out, err);
    return lt_err_set(err, LT_ERR_ARG, "%s has no tokenizer: give --tokenizer (tokenizer.json, a "
                      "GGUF, or a llama2.c tokenizer.bin), or use token-id data (.ids.jsonl)", model_path);
}

lt_status cli_text_arg(const char *arg, char **out, lt_err *err) {
    if (arg[0] == '@') {
        size_t n;
        return lt_read_file(arg + 1, out, &n, err);
    }
    size_t n = strlen(arg), o = 0;
    char *s = lt_alloc(n + 1);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char c = arg[i];
        if (c == '\\' && i + 1 < n && (arg[i + 1] == 'n' || arg[i + 1] == 't' || arg[i + 1] == '\\')) {
            c = arg[i + 1] == 'n' ? '\n' : arg[i + 1] == 't' ? '\t' : '\\';
            i++;
        }
        s[o++] = c;
    }
    s[o] = 0;
    *out = s;
    return LT_OK;
}

lt_status cli_chat_template_arg(const char *path, char **out, lt_err *err) {
    size_t n;
    if (!cli_ends_with(path, ".json")) return lt_read_file(path, out, &n, err);
    cJSON *j = NULL;
    lt_status st = lt_json_parse_file(path, &j, err);
    if (st) return st;
    const char *t = lt_json_str(j, "chat_template", NULL);
    if (!t) st = lt_err_set(err, LT_ERR_FORMAT, "%s: no string \"chat_template\"", path);
    else if (!(*out = lt_strdup(t))) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    cJSON_Delete(j);
    return st;
}

int cli_set_compute(const char *cmd, const char *compute) {
    if (!strcmp(compute, "f32")) {
        lt_ops_set_matmul_precision(LT_PREC_F32);
        return 0;
    }
    if (strcmp(compute, "bf16"))
        return cli_usage_error(cmd, "--compute must be f32 or bf16, not \"%s\"", compute);
    lt_ops_set_matmul_precision(LT_PREC_BF16);
    if (!lt_bf16_amx_available())
        lt_warn("--compute bf16: AMX not available (CPU, kernel or LT_NO_AMX); bf16 is emulated: "
                "same numerics, slower than f32");
    return 0;
}

bool cli_parse_dtype(const char *s, bool allow_keep, bool allow_q8, lt_dtype *out) {
    if (allow_keep && !strcasecmp(s, "keep"))
        *out = LT_DTYPE_KEEP;
    else if (!strcasecmp(s, "f32") || !strcasecmp(s, "float32"))
        *out = LT_DTYPE_F32;
    else if (!strcasecmp(s, "f16") || !strcasecmp(s, "float16"))
        *out = LT_DTYPE_F16;
    else if (!strcasecmp(s, "bf16") || !strcasecmp(s, "bfloat16"))
        *out = LT_DTYPE_BF16;
    else if (allow_q8 && !strcasecmp(s, "q8_0"))
        *out = LT_DTYPE_Q8_0;
    else
        return false;
    return true;
}

void cli_print_verify(const char *what, lt_dtype d, const lt_verify_result *r) {
    printf(
        "verify %s (%s): config %s%s; weights: %lld compared with the exact merge, worst at "
        "%.2f of the %s rounding bound%s%s -> %s; logits: %d prompts x %d tokens, max |diff| %.3g "
        "vs the unmerged model (max |logit| %.3g, tolerance %.3g) -> %s; the adapter moves logits "
        "by up to %.3g\n",
        what, lt_dtype_name(d), r->config_ok ? "OK" : "DIFFERS: ", r->config_msg,
        (long long)r->n_weights, r->worst, lt_dtype_name(d), r->worst_name[0] ? " in " : "",
        r->worst_name, r->weights_ok ? "OK" : "FAILED", r->B, r->T, r->max_diff, r->max_ref, r->tol,
        r->logits_ok ? "OK" : "FAILED", r->lora_effect);
    if (r->config_ok && r->lora_effect > 0 && r->lora_effect < r->tol)
        printf("note: the adapter moves logits by less than the %s logits tolerance; the weight "
               "check is what sees it\n",
               lt_dtype_name(d));
    printf("verify: %s\n", r->ok ? "OK" : "FAILED");
}
