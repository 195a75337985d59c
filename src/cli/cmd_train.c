// cmd_train.c - `loratune train`: LoRA training of a causal LM on text or token ids.
#include "cli/cli.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// The tokenizer: --tokenizer (llama2.c .bin or tokenizer.json), else the model directory's.
static lt_status open_tokenizer(const char *tok_path, const char *model_path, const lt_model *m,
                                lt_tokenizer **out, lt_err *err) {
    struct stat sb;
    if (tok_path) {
        if (ends_with(tok_path, ".bin")) return lt_tokenizer_load_llama2c(tok_path, m->cfg.n_vocab, out, err);
        if (stat(tok_path, &sb) == 0 && S_ISDIR(sb.st_mode)) return lt_tokenizer_load_hf_dir(tok_path, out, err);
        if (ends_with(tok_path, ".gguf")) return lt_tokenizer_load_gguf_file(tok_path, out, err);
        return lt_tokenizer_load_hf(tok_path, NULL, out, err);
    }
    if (stat(model_path, &sb) == 0 && S_ISDIR(sb.st_mode)) return lt_tokenizer_load_hf_dir(model_path, out, err);
    if (m->gguf) return lt_tokenizer_load_gguf(m->gguf, out, err);
    return lt_err_set(err, LT_ERR_ARG, "%s has no tokenizer: give --tokenizer (a llama2.c "
                      "tokenizer.bin or a tokenizer.json), or use token-id data (.ids.jsonl)", model_path);
}

int cmd_train(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *tok_path = NULL, *out = "out/adapter", *metrics = NULL,
               *targets = "all", *sched = "cosine", *adapter_in = NULL, *sep = "<|endoftext|>",
               *field = "text";
    lt_train_opts o;
    lt_train_opts_default(&o);
    lt_lora_config lc = {.r = 16, .alpha = 32, .dropout = 0.05f, .layer_lo = 0, .layer_hi = -1};
    int val_n = 0, log_level = 2;
    float val_frac = 0;
    bool help = false, quiet = false;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model: HF directory (config.json + safetensors), .gguf, or llama2.c .bin"},
        {"data", OPT_STR, &data, "training data: .txt, .jsonl {\"text\"}, or .ids.jsonl {\"input_ids\",\"labels\"}"},
        {"tokenizer", OPT_STR, &tok_path, "tokenizer.json, GGUF or llama2.c tokenizer.bin (default: the model's own)"},
        {"separator", OPT_STR, &sep, "document separator in .txt data (default <|endoftext|>)"},
        {"text-field", OPT_STR, &field, "field of .jsonl records holding the text (default text)"},
        {"out", OPT_STR, &out, "output directory for the PEFT adapter and checkpoints (default out/adapter)"},
        {"adapter", OPT_STR, &adapter_in, "start from this PEFT adapter directory instead of a new one"},
        {"r", OPT_INT, &lc.r, "LoRA rank (default 16)"},
        {"alpha", OPT_FLOAT, &lc.alpha, "lora_alpha (default 32)"},
        {"dropout", OPT_FLOAT, &lc.dropout, "lora_dropout (default 0.05)"},
        {"rslora", OPT_BOOL, &lc.rslora, "rank-stabilised scaling alpha/sqrt(r)"},
        {"targets", OPT_STR, &targets, "modules: all or a list like q_proj,v_proj (default all)"},
        {"lr", OPT_FLOAT, &o.lr, "peak learning rate (default 2e-4)"},
        {"sched", OPT_STR, &sched, "constant | linear | cosine (default cosine)"},
        {"warmup-steps", OPT_INT, &o.warmup_steps, "warmup steps"},
        {"warmup-ratio", OPT_FLOAT, &o.warmup_ratio, "warmup as a fraction of the steps"},
        {"weight-decay", OPT_FLOAT, &o.weight_decay, "AdamW weight decay (default 0)"},
        {"beta1", OPT_FLOAT, &o.beta1, "AdamW beta1 (default 0.9)"},
        {"beta2", OPT_FLOAT, &o.beta2, "AdamW beta2 (default 0.999)"},
        {"eps", OPT_FLOAT, &o.eps, "AdamW eps (default 1e-8)"},
        {"clip", OPT_FLOAT, &o.max_grad_norm, "max gradient norm, 0 = off (default 1.0)"},
        {"epochs", OPT_INT, &o.epochs, "epochs (default 1)"},
        {"max-steps", OPT_I64, &o.max_steps, "optimizer steps (overrides --epochs)"},
        {"batch", OPT_INT, &o.B, "micro-batch size (default 4)"},
        {"seq", OPT_INT, &o.T, "sequence length (default 256)"},
        {"accum", OPT_INT, &o.grad_accum, "gradient accumulation steps (default 1)"},
        {"grad-checkpoint", OPT_BOOL, &o.checkpoint_activations, "recompute blocks in backward (less memory)"},
        {"seed", OPT_I64, &o.seed, "seed for data order, init and dropout (default 42)"},
        {"val", OPT_INT, &val_n, "hold out this many examples for validation"},
        {"val-frac", OPT_FLOAT, &val_frac, "hold out this fraction of examples for validation"},
        {"eval-every", OPT_INT, &o.eval_every, "evaluate every N steps (default: at the end)"},
        {"save-every", OPT_INT, &o.save_every, "write a resumable checkpoint every N steps"},
        {"resume", OPT_BOOL, &o.resume, "continue from --out/checkpoint.safetensors if present"},
        {"metrics", OPT_STR, &metrics, "metrics JSONL (default <out>/metrics.jsonl)"},
        {"quiet", OPT_BOOL, &quiet, "no progress bar"},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("train", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf("usage: loratune train --model PATH --data FILE [flags]\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    (void)log_level;
    if (!model) return cli_usage_error("train", "--model is required");
    if (!data) return cli_usage_error("train", "--data is required");
    if (!strcmp(sched, "cosine")) o.sched = LT_SCHED_COSINE;
    else if (!strcmp(sched, "linear")) o.sched = LT_SCHED_LINEAR;
    else if (!strcmp(sched, "constant")) o.sched = LT_SCHED_CONSTANT;
    else return cli_usage_error("train", "--sched must be constant, linear or cosine, not \"%s\"", sched);
    if (val_frac < 0 || val_frac >= 1) return cli_usage_error("train", "--val-frac must be in [0, 1)");
    o.quiet = quiet;
    o.out_dir = out;
    char mpath[4096];
    if (!metrics) {
        if (!lt_path_join(mpath, sizeof mpath, out, "metrics.jsonl"))
            return cli_usage_error("train", "--out path too long");
        metrics = mpath;
    }
    o.metrics_path = metrics;

    lt_err err = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_adapter *a = NULL;
    lt_dataset train, val;
    lt_dataset_init(&train);
    lt_dataset_init(&val);
    lt_status st;
    if ((st = lt_model_load(model, &m, &err))) goto fail;
    lt_info("model %s: %s, %d layers, hidden %d, heads %d/%d, vocab %d", model, m->arch.model_type,
            m->cfg.n_layer, m->cfg.n_embd, m->cfg.n_head, m->cfg.n_head_kv, m->cfg.n_vocab);
    if (ends_with(data, ".ids.jsonl")) {
        st = lt_dataset_read_ids_jsonl(&train, data, o.T, m->cfg.n_vocab, &err);
    } else {
        if ((st = open_tokenizer(tok_path, model, m, &tok, &err))) goto fail;
        if (ends_with(data, ".jsonl")) st = lt_dataset_read_text_jsonl(&train, tok, data, field, o.T, &err);
        else st = lt_dataset_read_text(&train, tok, data, sep[0] ? sep : NULL, o.T, &err);
    }
    if (st) goto fail;
    if (train.n == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: no training examples", data);
        goto fail;
    }
    if (val_frac > 0) val_n = (int)ceil(val_frac * (double)train.n);
    if ((st = lt_dataset_split(&train, &val, val_n, o.seed, &err))) goto fail;
    lt_info("data %s: %lld training examples, %lld validation (%lld cut to %d tokens)", data,
            (long long)train.n, (long long)val.n, (long long)train.n_truncated, o.T);
    if (adapter_in) {
        if ((st = lt_adapter_load_peft(m, adapter_in, &a, &err))) goto fail;
        a->cfg.dropout = lc.dropout;
        for (int i = 0; i < a->n_mod; i++) a->mods[i].dropout = lc.dropout;
    } else {
        if ((st = lt_lora_parse_targets(m, targets, &lc.targets, &err))) goto fail;
        if ((st = lt_adapter_new(m, &lc, o.seed, &a, &err))) goto fail;
    }
    char desc[160];
    lt_adapter_describe(a, m, desc, sizeof desc);
    printf("%s\n", desc);
    fflush(stdout);
    lt_train_result res;
    if ((st = lt_train(m, a, &train, val.n ? &val : NULL, &o, &res, &err))) goto fail;
    printf("trained %lld steps in %.1f s (%.0f tokens/s, peak RSS %.0f MB): loss %.4f -> %.4f",
           (long long)res.steps, res.seconds, res.tokens_per_s, (double)res.peak_rss_kb / 1024.0,
           res.first_loss, res.last_loss);
    if (!isnan(res.last_eval)) printf(", validation loss %.4f", res.last_eval);
    printf("\nadapter written to %s (adapter_config.json, adapter_model.safetensors)\n", out);
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_dataset_deinit(&train);
    lt_dataset_deinit(&val);
    return 0;
fail:
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_dataset_deinit(&train);
    lt_dataset_deinit(&val);
    return cli_fail(&err);
}
