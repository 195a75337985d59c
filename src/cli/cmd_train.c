// cmd_train.c - `loratune train`: LoRA training of a causal LM on text, records (JSONL, JSON, CSV,
// TSV: text, prompt/completion, instruction, chat) or token ids.
#include "cli/cli.h"
#include "cli/cmd_plan.h"
#include "data/data.h"
#include "io/io.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// Fills the data options from the data flags; LT_ERR_ARG names the bad flag. Strings made here
// (template, response template, chat template) go to *owned[0..2] for the caller to lt_free.
static lt_status data_flags(lt_data_opts *d, const char *format, const char *tmpl,
                            const char *loss, const char *rt, const char *trunc,
                            const char *on_bad, const char *header, const char *chat_tmpl,
                            char **owned, lt_err *err) {
    lt_status st;
    if ((st = lt_data_format_parse(format, &d->read.format, err))) return lt_err_wrap(err, "--data-format");
    if ((st = lt_loss_on_parse(loss, &d->sft.loss_on, err))) return lt_err_wrap(err, "--loss-on");
    if ((st = lt_truncate_parse(trunc, &d->sft.truncate, err))) return lt_err_wrap(err, "--truncate");
    if ((st = lt_on_bad_parse(on_bad, &d->read.on_bad, err))) return lt_err_wrap(err, "--on-bad-record");
    d->sft.on_bad = d->read.on_bad;
    if (!strcmp(header, "auto")) d->read.header = -1;
    else if (!strcmp(header, "yes")) d->read.header = 1;
    else if (!strcmp(header, "no")) d->read.header = 0;
    else return lt_err_set(err, LT_ERR_ARG, "--header: yes, no or auto, not \"%s\"", header);
    if (tmpl && (st = cli_text_arg(tmpl, &owned[0], err))) return st;
    if (rt && (st = cli_text_arg(rt, &owned[1], err))) return st;
    if (chat_tmpl && (st = cli_chat_template_arg(chat_tmpl, &owned[2], err))) return st;
    d->sft.template_src = owned[0];
    d->sft.response_template = owned[1];
    d->sft.chat_template = owned[2];
    return LT_OK;
}

static void free_owned(char **owned) {
    for (int i = 0; i < 3; i++) lt_free(owned[i]), owned[i] = NULL;
}

int cmd_train(int argc, char **argv) {
    if (cli_train_task_is_classify(argc, argv)) return cmd_train_classify(argc, argv); // cmd_classify.c
    const char *model = NULL, *data = NULL, *tok_path = NULL, *out = "out/adapter", *metrics = NULL,
               *targets = "all", *sched = "cosine", *adapter_in = NULL, *sep = "<|endoftext|>",
               *field = "text", *data_format = "auto", *tmpl = NULL, *loss_on = "auto",
               *resp_tmpl = NULL, *trunc = "auto", *on_bad = "stop", *columns = NULL,
               *header = "auto", *stratify = NULL, *chat_tmpl = NULL, *resp_field = NULL;
    bool packing = false, no_eos = false;
    const char *task = "lm";
    char *owned[3] = {0};
    lt_train_opts o;
    lt_train_opts_default(&o);
    lt_lora_config lc = {.r = 16, .alpha = 32, .dropout = 0.05f, .layer_lo = 0, .layer_hi = -1};
    int val_n = 0;
    float val_frac = 0;
    bool help = false, quiet = false;
    const char *optim = "adamw", *quant_type = "nf4"; // QLoRA (issue 8)
    bool load_4bit = false, double_quant = false;
    bool plan = false, plan_json = false; // --plan (cmd_plan.c)
    const char *compute = "f32"; // --compute (issue 9)
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model: HF directory (config.json + safetensors), .gguf, or llama2.c .bin"},
        {"task", OPT_STR, &task, "lm (default) | classify (LoRA + a classification head: see --task classify --help)"},
        {"data", OPT_STR, &data, "training data: .txt, .jsonl/.json/.csv/.tsv records, or .ids.jsonl {\"input_ids\",\"labels\"}"},
        {"data-format", OPT_STR, &data_format, "auto | text | jsonl | json | csv | tsv (default: from the file name)"},
        {"template", OPT_STR, &tmpl, "prompt template: alpaca, alpaca-ja, ja, rasbt, a string with {field} placeholders (\\n escapes), or @FILE"},
        {"response-field", OPT_STR, &resp_field, "the template placeholder where the response starts (default output/completion/response/answer)"},
        {"loss-on", OPT_STR, &loss_on, "completion | all | assistant (default: by record shape)"},
        {"response-template", OPT_STR, &resp_tmpl, "loss starts after the last match of this string's tokens (TRL completion-only collator)"},
        {"chat-template", OPT_STR, &chat_tmpl, "Jinja chat template file (or a tokenizer_config.json) instead of the tokenizer's"},
        {"no-eos", OPT_BOOL, &no_eos, "do not append EOS to each example"},
        {"truncate", OPT_STR, &trunc, "right | left | split: examples longer than --seq (default right; split for {\"text\"})"},
        {"packing", OPT_BOOL, &packing, "pack several examples into each --seq sequence (EOS between them)"},
        {"on-bad-record", OPT_STR, &on_bad, "skip | stop (default stop)"},
        {"columns", OPT_STR, &columns, "CSV/TSV column names, e.g. label,text (files without a header)"},
        {"header", OPT_STR, &header, "CSV/TSV header line: auto | yes | no (default auto: yes unless --columns)"},
        {"stratify", OPT_STR, &stratify, "stratify the validation split by this field (e.g. label)"},
        {"tokenizer", OPT_STR, &tok_path, "tokenizer.json, GGUF or llama2.c tokenizer.bin (default: the model's own)"},
        {"separator", OPT_STR, &sep, "document separator in .txt data (default <|endoftext|>)"},
        {"text-field", OPT_STR, &field, "field of records holding the text (default text)"},
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
        {"compute", OPT_STR, &compute, CLI_COMPUTE_HELP},
        {"optim", OPT_STR, &optim, "adamw | adamw_8bit (bitsandbytes' 8-bit AdamW states) (default adamw)"},
        {"load-in-4bit", OPT_BOOL, &load_4bit, "quantise the base model's projections to 4 bits (QLoRA)"},
        {"bnb-4bit-quant-type", OPT_STR, &quant_type, "nf4 | fp4, with --load-in-4bit (default nf4)"},
        {"double-quant", OPT_BOOL, &double_quant, "with --load-in-4bit: quantise the block scales too (~4.127 bits/param)"},
        {"seed", OPT_I64, &o.seed, "seed for data order, init and dropout (default 42)"},
        {"val", OPT_INT, &val_n, "hold out this many examples for validation"},
        {"val-frac", OPT_FLOAT, &val_frac, "hold out this fraction of examples for validation"},
        {"eval-every", OPT_INT, &o.eval_every, "evaluate every N steps (default: at the end)"},
        {"save-every", OPT_INT, &o.save_every, "write a resumable checkpoint every N steps"},
        {"resume", OPT_BOOL, &o.resume, "continue from --out/checkpoint.safetensors if present"},
        {"metrics", OPT_STR, &metrics, "metrics JSONL (default <out>/metrics.jsonl)"},
        {"quiet", OPT_BOOL, &quiet, "no progress bar"},
        {"stop-after", OPT_I64, &o.stop_after, "testing: stop after N steps as if killed (keeps the checkpoint)"},
        {"plan", OPT_BOOL, &plan, "print the planned peak memory and tokens/s (and settings that fit) without training"},
        {"json", OPT_BOOL, &plan_json, "with --plan: print the plan as one JSON object"},
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
    if (!model) return cli_usage_error("train", "--model is required");
    if (!data) return cli_usage_error("train", "--data is required");
    if (!strcmp(sched, "cosine")) o.sched = LT_SCHED_COSINE;
    else if (!strcmp(sched, "linear")) o.sched = LT_SCHED_LINEAR;
    else if (!strcmp(sched, "constant")) o.sched = LT_SCHED_CONSTANT;
    else return cli_usage_error("train", "--sched must be constant, linear or cosine, not \"%s\"", sched);
    if (val_frac < 0 || val_frac >= 1) return cli_usage_error("train", "--val-frac must be in [0, 1)");
    if (!strcmp(optim, "adamw")) o.optim = LT_OPTIM_ADAMW;
    else if (!strcmp(optim, "adamw_8bit")) o.optim = LT_OPTIM_ADAMW_8BIT;
    else return cli_usage_error("train", "--optim must be adamw or adamw_8bit, not \"%s\"", optim);
    lt_dtype qtype = LT_DTYPE_NF4;
    if (!strcmp(quant_type, "fp4")) qtype = LT_DTYPE_FP4;
    else if (strcmp(quant_type, "nf4")) return cli_usage_error("train", "--bnb-4bit-quant-type must be nf4 or fp4, not \"%s\"", quant_type);
    if (double_quant && !load_4bit) return cli_usage_error("train", "--double-quant needs --load-in-4bit");
    if ((rc = cli_set_compute("train", compute))) return rc;
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
    lt_data_opts dopt;
    lt_data_opts_default(&dopt);
    if ((st = data_flags(&dopt, data_format, tmpl, loss_on, resp_tmpl, trunc, on_bad, header,
                         chat_tmpl, owned, &err))) {
        if (st == LT_ERR_ARG) {
            rc = cli_usage_error("train", "%s", err.msg);
            free_owned(owned);
            return rc;
        }
        goto fail;
    }
    dopt.path = data;
    dopt.read.columns = columns;
    dopt.sft.text_field = field;
    dopt.sft.response_field = resp_field;
    dopt.sft.max_len = o.T;
    dopt.sft.add_eos = !no_eos;
    dopt.separator = sep;
    dopt.packing = packing;
    dopt.n_val = val_n;
    dopt.val_frac = val_frac;
    dopt.stratify = stratify;
    dopt.seed = (uint64_t)o.seed;
    if (plan) {
        cli_plan_args pa = {model, tok_path, targets, adapter_in, &dopt, &lc, &o, load_4bit, double_quant, plan_json};
        rc = cmd_train_plan(&pa);
        free_owned(owned);
        return rc;
    }
    if ((st = lt_model_load(model, &m, &err))) goto fail;
    lt_info("model %s: %s, %d layers, hidden %d, heads %d/%d, vocab %d", model, m->arch.model_type,
            m->cfg.n_layer, m->cfg.n_embd, m->cfg.n_head, m->cfg.n_head_kv, m->cfg.n_vocab);
    if (load_4bit) {
        if ((st = lt_model_quantize(m, qtype, double_quant, &err))) goto fail;
        lt_quant_info qi;
        lt_model_quant_info(m, &qi);
        lt_info("base weights: %d projections in %s%s, %.1f MB -> %.1f MB (%.3f bits/param)", qi.n_mat,
                quant_type, double_quant ? " + double quantisation" : "", (double)qi.src_bytes / 1e6,
                (double)qi.bytes / 1e6, qi.bits_per_param);
    }
    lt_data_format fmt = dopt.read.format == LT_DATA_AUTO ? lt_data_format_guess(data)
                                                          : dopt.read.format;
    if (fmt != LT_DATA_IDS && (st = cli_open_tokenizer(tok_path, model, m, &tok, &err))) goto fail;
    lt_data_summary sum;
    if ((st = lt_data_load(tok, m->cfg.n_vocab, &dopt, &train, &val, &sum, &err))) goto fail;
    char line[1024];
    lt_data_summary_describe(&sum, data, &train, &val, o.T, line, sizeof line);
    lt_info("data %s", line);
    for (int i = 0; i < sum.read_bad.n_notes; i++) lt_warn("skipped: %s", sum.read_bad.notes[i]);
    for (int i = 0; i < sum.stats.bad.n_notes; i++) lt_warn("skipped: %s", sum.stats.bad.notes[i]);
    if (train.n == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: no training examples", data);
        goto fail;
    }
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
    if (o.stop_after > 0 && res.steps == o.stop_after) {
        printf("stopped after %lld steps (--stop-after); continue with --resume\n",
               (long long)res.steps);
        goto done;
    }
    lt_info("optimizer state (%s): %.2f MB", optim, (double)res.optim_state_bytes / 1e6);
    printf("trained %lld steps in %.1f s (%.0f tokens/s, peak RSS %.0f MB): loss %.4f -> %.4f",
           (long long)res.steps, res.seconds, res.tokens_per_s, (double)res.peak_rss_kb / 1024.0,
           res.first_loss, res.last_loss);
    if (!isnan(res.last_eval)) printf(", validation loss %.4f", res.last_eval);
    printf("\nadapter written to %s (adapter_config.json, adapter_model.safetensors)\n", out);
done:
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_dataset_deinit(&train);
    lt_dataset_deinit(&val);
    free_owned(owned);
    return 0;
fail:
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_dataset_deinit(&train);
    lt_dataset_deinit(&val);
    free_owned(owned);
    return cli_fail(&err);
}
