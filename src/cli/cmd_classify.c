/*
 * cmd_classify.c - sequence classification on the command line:
 *   `loratune train --task classify`  records (text fields + label) -> prompt template -> LoRA +
 *       a linear head on the last non-pad token; stratified splits, optional balancing and class
 *       weights, evaluation every N steps, best checkpoint, report.json, curves.svg;
 *   `loratune classify`  labels and probabilities for new texts (--text, a record file, a text
 *       file or stdin with one text per line), batched, as JSONL.
 * The label set, template and lengths travel with the adapter in labels.json (beside PEFT's
 * adapter_config.json, which stays as PEFT writes it, so PeftModel loads the directory unchanged).
 * Records and templates come from src/data (lt_records_read, lt_template_*, lt_cls_record); the
 * loop, splits and metrics from src/train/cls_train.c and src/eval/cls_metrics.c.
 */
#include "cli/cls_cli.h"
#include "data/data.h"
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool cli_train_task_is_classify(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--task") && i + 1 < argc)
            v = argv[i + 1];
        else if (!strncmp(argv[i], "--task=", 7))
            v = argv[i] + 7;
        if (v) return strcmp(v, "lm") != 0; // other values: cmd_train_classify says what is valid
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// job settings

void cls_job_default(cls_job *j) {
    memset(j, 0, sizeof *j);
    lt_cls_train_opts_default(&j->co);
    j->co.t.lr = 3e-4f;
    j->co.t.epochs = 3;
    j->co.t.B = 8;
    j->co.t.T = 128;
    j->lc = (lt_lora_config){.r = 8, .alpha = 16, .dropout = 0.05f, .layer_lo = 0, .layer_hi = -1};
    j->label_field = "label";
    j->split = "80,10,10";
    j->class_weights = "none";
    j->best_metric = "macro_f1";
    j->out = "out/classifier";
    j->targets = "all";
    j->sched = "cosine";
    j->optim = "adamw";
    j->format = "auto";
    j->on_bad = "stop";
    j->compute = "f32";
    j->header = "auto";
}

int cls_job_opts(cls_job *j, cli_opt *o) {
    lt_train_opts *t = &j->co.t;
    const cli_opt all[] = {
        {"model", OPT_STR, &j->model, "model: HF directory, .gguf, or llama2.c .bin"},
        {"tokenizer", OPT_STR, &j->tokenizer,
         "tokenizer.json, GGUF or llama2.c tokenizer.bin (default: the model's)"},
        {"data", OPT_STR, &j->data,
         "records: .jsonl, .json, .csv or .tsv with text field(s) and a label"},
        {"val-data", OPT_STR, &j->val_data, "validation records (instead of a split of --data)"},
        {"test-data", OPT_STR, &j->test_data, "test records (instead of a split of --data)"},
        {"data-format", OPT_STR, &j->format,
         "auto | jsonl | json | csv | tsv (default: from the file name)"},
        {"columns", OPT_STR, &j->columns,
         "CSV/TSV column names, e.g. label,text (files without a header)"},
        {"header", OPT_STR, &j->header,
         "CSV/TSV header line: auto | yes | no (default auto: yes unless --columns)"},
        {"on-bad-record", OPT_STR, &j->on_bad, "skip | stop (default stop)"},
        {"label-field", OPT_STR, &j->label_field,
         "field holding the label, string or integer (default label)"},
        {"template", OPT_STR, &j->template_src,
         "prompt over the fields, e.g. \"Subject: {subject}\\nBody: {body}\\nLabel:\" (\\n "
         "escapes) or @FILE (default {text})"},
        {"labels", OPT_STR, &j->labels,
         "label order, e.g. ham,spam (default: sorted values of the data)"},
        {"split", OPT_STR, &j->split,
         "train,validation,test proportions, stratified (default 80,10,10)"},
        {"balance", OPT_BOOL, &j->balance,
         "subsample every class to the size of the smallest (seeded)"},
        {"max-per-class", OPT_I64, &j->max_per_class,
         "keep at most N examples of each class (seeded; with --balance: both)"},
        {"class-weights", OPT_STR, &j->class_weights,
         "auto | none | w1,w2,...: loss weight per class (default none)"},
        {"best-metric", OPT_STR, &j->best_metric,
         "macro_f1 | accuracy | weighted_f1 | loss ...: best checkpoint (default macro_f1)"},
        {"out", OPT_STR, &j->out,
         "output directory (default out/classifier): adapter, best/, report.json, curves.svg"},
        {"metrics", OPT_STR, &j->metrics, "metrics JSONL (default <out>/metrics.jsonl)"},
        {"r", OPT_INT, &j->lc.r, "LoRA rank (default 8)"},
        {"alpha", OPT_FLOAT, &j->lc.alpha, "lora_alpha (default 16)"},
        {"dropout", OPT_FLOAT, &j->lc.dropout, "lora_dropout (default 0.05)"},
        {"rslora", OPT_BOOL, &j->lc.rslora, "rank-stabilised scaling alpha/sqrt(r)"},
        {"targets", OPT_STR, &j->targets,
         "modules: all or a list like q_proj,v_proj (default all)"},
        {"lr", OPT_FLOAT, &t->lr, "peak learning rate (default 3e-4)"},
        {"sched", OPT_STR, &j->sched, "constant | linear | cosine (default cosine)"},
        {"optim", OPT_STR, &j->optim,
         "adamw | adamw_8bit (bitsandbytes' 8-bit AdamW states) (default adamw)"},
        {"warmup-steps", OPT_INT, &t->warmup_steps, "warmup steps"},
        {"warmup-ratio", OPT_FLOAT, &t->warmup_ratio, "warmup as a fraction of the steps"},
        {"weight-decay", OPT_FLOAT, &t->weight_decay, "AdamW weight decay (default 0)"},
        {"clip", OPT_FLOAT, &t->max_grad_norm, "max gradient norm, 0 = off (default 1.0)"},
        {"epochs", OPT_INT, &t->epochs, "epochs (default 3)"},
        {"max-steps", OPT_I64, &t->max_steps, "optimizer steps (overrides --epochs)"},
        {"batch", OPT_INT, &t->B, "micro-batch size (default 8)"},
        {"seq", OPT_INT, &t->T,
         "maximum tokens per example (default 128; longer texts keep head + template end)"},
        {"accum", OPT_INT, &t->grad_accum, "gradient accumulation steps (default 1)"},
        {"grad-checkpoint", OPT_BOOL, &t->checkpoint_activations,
         "recompute blocks in backward (less memory)"},
        {"seed", OPT_I64, &t->seed,
         "seed for subsampling, splits, init, order and dropout (default 42)"},
        {"eval-every", OPT_INT, &t->eval_every,
         "validate every N steps (default: about 20 times per run)"},
        {"save-every", OPT_INT, &t->save_every, "write a resumable checkpoint every N steps"},
        {"resume", OPT_BOOL, &t->resume, "continue from <out>/checkpoint.safetensors if present"},
        {"no-plots", OPT_BOOL, &j->no_plots, "do not write curves.svg"},
        {"quiet", OPT_BOOL, &j->quiet, "no progress bar"},
        {"compute", OPT_STR, &j->compute, CLI_COMPUTE_HELP},
    };
    int n = (int)(sizeof all / sizeof *all);
    LT_ASSERT(n <= CLS_JOB_MAX_OPTS - 4);
    memcpy(o, all, sizeof all);
    return n;
}

static bool parse_fracs(const char *s, double *f) {
    char *end;
    for (int i = 0; i < 3; i++) {
        f[i] = strtod(s, &end);
        if (end == s || !isfinite(f[i]) || f[i] < 0) return false;
        s = end;
        if (i < 2) {
            if (*s != ',') return false;
            s++;
        }
    }
    return *s == 0 && f[0] > 0;
}

int cls_job_check(const char *cmd, cls_job *j) {
    lt_train_opts *t = &j->co.t;
    double f[3];
    if (!j->model) return cli_usage_error(cmd, "--model is required");
    if (!j->data) return cli_usage_error(cmd, "--data is required");
    if (!strcmp(j->sched, "cosine"))
        t->sched = LT_SCHED_COSINE;
    else if (!strcmp(j->sched, "linear"))
        t->sched = LT_SCHED_LINEAR;
    else if (!strcmp(j->sched, "constant"))
        t->sched = LT_SCHED_CONSTANT;
    else
        return cli_usage_error(cmd, "--sched must be constant, linear or cosine, not \"%s\"",
                               j->sched);
    if (!strcmp(j->optim, "adamw"))
        t->optim = LT_OPTIM_ADAMW;
    else if (!strcmp(j->optim, "adamw_8bit"))
        t->optim = LT_OPTIM_ADAMW_8BIT;
    else
        return cli_usage_error(cmd, "--optim must be adamw or adamw_8bit, not \"%s\"", j->optim);
    if (!parse_fracs(j->split, f))
        return cli_usage_error(cmd,
                               "--split expects three proportions train,validation,test with "
                               "train > 0, e.g. 70,10,20; got \"%s\"",
                               j->split);
    lt_cls_metrics probe = {.n_labels = 1};
    double v;
    bool hi;
    if (!lt_cls_metrics_get(&probe, j->best_metric, &v, &hi))
        return cli_usage_error(cmd,
                               "--best-metric must be macro_f1, accuracy, macro_precision, "
                               "macro_recall, weighted_f1 or loss, not \"%s\"",
                               j->best_metric);
    if (t->B <= 0 || t->T < 2 || t->grad_accum <= 0)
        return cli_usage_error(cmd, "--batch, --seq and --accum must be positive (--seq >= 2)");
    if (j->lc.r <= 0) return cli_usage_error(cmd, "--r must be positive");
    if (strcmp(j->header, "auto") && strcmp(j->header, "yes") && strcmp(j->header, "no"))
        return cli_usage_error(cmd, "--header must be auto, yes or no, not \"%s\"", j->header);
    if (j->max_per_class < 0) return cli_usage_error(cmd, "--max-per-class must be >= 0");
    if (t->eval_every < 0 || t->save_every < 0)
        return cli_usage_error(cmd, "--eval-every and --save-every must be >= 0");
    int rc = cli_set_compute(cmd, j->compute);
    if (rc) return rc;
    j->co.best_metric = j->best_metric;
    j->co.plots = !j->no_plots;
    t->quiet = j->quiet;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// templates, records and texts

// A template from the command line, as `train` reads one: "@FILE" reads the file; otherwise the
// escapes \n, \t and \\ become a newline, a tab and a backslash (so a template fits in one shell
// argument). NULL means "{text}". *out is lt_alloc'd.
static lt_status template_text(const char *src, char **out, lt_err *err) {
    if (!src) src = "{text}";
    if (src[0] == '@') {
        size_t n;
        return lt_read_file(src + 1, out, &n, err);
    }
    char *s = lt_strdup(src);
    if (!s) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (p[0] == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == '\\')) {
            *w++ = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : '\\';
            p++;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    *out = s;
    return LT_OK;
}

// The placeholders {name} / {name?} of a template, in order, without repeats ("{{" is literal).
// Returns the count (at most max); names are copied into buf.
static int template_fields(const char *t, char names[][64], bool *optional, int max) {
    int n = 0;
    for (const char *p = t; *p; p++) {
        if (p[0] == '{' && p[1] == '{') {
            p++;
            continue;
        }
        if (*p != '{') continue;
        const char *q = p + 1;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               *q == '_' || *q == '.' || *q == '-')
            q++;
        bool opt = *q == '?';
        if (opt) q++;
        if (*q != '}' || q == p + 1 || (size_t)(q - p - (opt ? 2 : 1)) >= 64) continue;
        size_t len = (size_t)(q - p - 1 - (opt ? 1 : 0));
        bool seen = false;
        for (int i = 0; i < n; i++)
            seen |= strlen(names[i]) == len && !strncmp(names[i], p + 1, len);
        if (!seen && n < max) {
            memcpy(names[n], p + 1, len);
            names[n][len] = 0;
            optional[n++] = opt;
        }
        p = q;
    }
    return n;
}

// Tokens of the template's end (after its last placeholder) + 1: kept when a text is cut, so the
// cue the head reads ("Label:") is still the last thing the model sees.
static int template_tail(const lt_tokenizer *tok, const char *t) {
    const char *last = strrchr(t, '}');
    const char *tail = last ? last + 1 : "";
    lt_ids ids = {0};
    lt_err err = {0};
    int n = 0;
    if (*tail && !lt_tokenizer_encode(tok, tail, strlen(tail), 0, &ids, &err)) n = (int)ids.n;
    lt_ids_deinit(&ids);
    return n + 1;
}

// Rendered texts of a record set with their labels (NULL when a record has none).
typedef struct texts {
    int64_t n;
    char **text; // (n) owned
    size_t *len;
    const char **label; // (n) borrowed from the records
    int64_t *rec;       // (n) record index (for messages)
    int64_t skipped;
} texts;

static void texts_free(texts *t) {
    for (int64_t i = 0; t->text && i < t->n; i++) lt_free(t->text[i]);
    lt_free(t->text), lt_free(t->len), lt_free(t->label), lt_free(t->rec);
    memset(t, 0, sizeof *t);
}

static const char *field_label(const lt_record *rec, const char *label_field) {
    const lt_field *f = lt_record_get(rec, label_field);
    if (!f || (f->type != LT_FIELD_STR && f->type != LT_FIELD_NUM && f->type != LT_FIELD_BOOL) ||
        !f->len)
        return NULL;
    return f->str;
}

// Renders every record; with need_label the label must be there (lt_cls_record), else it is
// optional. Bad records stop the run or are skipped (counted) by on_bad.
static lt_status render_all(const lt_records *rs, const lt_template *t, const char *label_field,
                            bool need_label, lt_on_bad on_bad, texts *out, lt_err *err) {
    texts x = {0};
    size_t n = (size_t)(rs->n > 0 ? rs->n : 1);
    x.text = lt_calloc(n, sizeof(char *));
    x.len = lt_calloc(n, sizeof(size_t));
    x.label = lt_calloc(n, sizeof(char *));
    x.rec = lt_calloc(n, sizeof(int64_t));
    if (!x.text || !x.len || !x.label || !x.rec) {
        texts_free(&x);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    for (int64_t i = 0; i < rs->n; i++) {
        const lt_record *rec = &rs->rec[i];
        char *s = NULL;
        size_t len = 0, resp;
        const char *label = NULL;
        lt_status st;
        if (need_label) {
            st = lt_cls_record(t, rec, label_field, &s, &len, &label, err);
        } else {
            st = lt_template_render(t, rec, &s, &len, &resp, err);
            if (!st && len == 0) {
                lt_free(s);
                st = lt_err_set(err, LT_ERR_FORMAT, "the text is empty");
            }
            label = field_label(rec, label_field);
        }
        if (st) {
            char where[300];
            lt_record_where(rs, rec, where, sizeof where);
            lt_err_wrap(err, "%s", where);
            if (st == LT_ERR_OOM || on_bad == LT_ON_BAD_STOP) {
                texts_free(&x);
                return st;
            }
            if (x.skipped++ < 3) lt_warn("skipping a bad record: %s", err->msg);
            continue;
        }
        x.text[x.n] = s, x.len[x.n] = len, x.label[x.n] = label, x.rec[x.n] = i;
        x.n++;
    }
    *out = x;
    return LT_OK;
}

// Texts -> examples: class ids from the label set (unknown labels: an error naming the record, or
// -1 with unknown_ok), tokens cut to T keeping `tail` end tokens.
static lt_status encode_all(const lt_records *rs, const texts *x, const lt_cls_labels *ls,
                            bool unknown_ok, const lt_tokenizer *tok, int T, int tail,
                            lt_cls_data *d, int64_t *n_cut, lt_err *err) {
    lt_ids ids = {0};
    lt_status st = LT_OK;
    for (int64_t i = 0; i < x->n && !st; i++) {
        int y = x->label[i] ? lt_cls_labels_find(ls, x->label[i]) : -1;
        if (y < 0 && x->label[i] && !unknown_ok) {
            char where[300], names[200] = "";
            lt_record_where(rs, &rs->rec[x->rec[i]], where, sizeof where);
            for (int k = 0; k < ls->n && strlen(names) < 150; k++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "",
                         ls->names[k]);
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: label \"%s\" is not one of the labels (%s)",
                            where, x->label[i], names);
            break;
        }
        bool cut;
        if ((st = lt_cls_encode(tok, x->text[i], x->len[i], T, tail, &ids, &cut, err))) break;
        *n_cut += cut;
        st = lt_cls_data_add(d, ids.ids, (int)ids.n, y, err);
    }
    lt_ids_deinit(&ids);
    return st;
}

static lt_status read_records(const char *path, const cls_job *j, lt_records *rs, lt_err *err) {
    lt_read_opts ro;
    lt_read_opts_default(&ro);
    lt_status st = lt_data_format_parse(j->format, &ro.format, err);
    if (!st) st = lt_on_bad_parse(j->on_bad, &ro.on_bad, err);
    if (st) return st;
    ro.columns = j->columns;
    ro.header = !strcmp(j->header, "yes") ? 1 : !strcmp(j->header, "no") ? 0 : -1;
    lt_records_init(rs);
    st = lt_records_read(rs, path, &ro, err);
    if (!st && rs->bad.n) lt_warn("%s: skipped %lld bad records", path, (long long)rs->bad.n);
    if (!st && rs->n == 0) st = lt_err_set(err, LT_ERR_FORMAT, "%s: no records", path);
    return st;
}

// ---------------------------------------------------------------------------------------------
// one training job

static cJSON *labels_json(const cls_job *j, const lt_cls_labels *ls, const char *tmpl, int tail,
                          int32_t pad, const char *tok_path) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "task", "classify");
    cJSON_AddStringToObject(o, "problem_type", "single_label_classification");
    cJSON_AddNumberToObject(o, "num_labels", ls->n);
    cJSON *l = cJSON_AddArrayToObject(o, "labels");
    cJSON *i2l = cJSON_AddObjectToObject(o, "id2label"),
          *l2i = cJSON_AddObjectToObject(o, "label2id");
    char b[32];
    for (int k = 0; k < ls->n && l && i2l && l2i; k++) {
        snprintf(b, sizeof b, "%d", k);
        cJSON_AddItemToArray(l, cJSON_CreateString(ls->names[k]));
        cJSON_AddStringToObject(i2l, b, ls->names[k]);
        cJSON_AddNumberToObject(l2i, ls->names[k], k);
    }
    cJSON_AddStringToObject(o, "template", tmpl);
    char names[16][64];
    bool opt[16];
    int nf = template_fields(tmpl, names, opt, 16);
    cJSON *tf = cJSON_AddArrayToObject(o, "text_fields");
    for (int k = 0; k < nf && tf; k++) cJSON_AddItemToArray(tf, cJSON_CreateString(names[k]));
    cJSON_AddStringToObject(o, "label_field", j->label_field);
    cJSON_AddNumberToObject(o, "max_length", j->co.t.T);
    cJSON_AddNumberToObject(o, "truncation_tail", tail);
    if (pad >= 0)
        cJSON_AddNumberToObject(o, "pad_token_id", pad);
    else
        cJSON_AddNullToObject(o, "pad_token_id");
    cJSON_AddStringToObject(o, "pooling",
                            pad >= 0 ? "last token whose id is not pad_token_id"
                                     : "last token of the attention mask");
    // absolute paths, so `classify` finds them from any directory
    char *am = realpath(j->model, NULL), *at = tok_path ? realpath(tok_path, NULL) : NULL;
    cJSON_AddStringToObject(o, "base_model", am ? am : j->model);
    if (tok_path)
        cJSON_AddStringToObject(o, "tokenizer", at ? at : tok_path);
    else
        cJSON_AddNullToObject(o, "tokenizer");
    free(am), free(at); // realpath allocates with malloc
    return o;
}

static cJSON *run_config(const cls_job *j, const lt_cls_train_opts *co, int64_t total,
                         const char *tmpl, const int64_t *counts, int K) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const lt_train_opts *t = &co->t;
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddStringToObject(o, "data", j->data);
    if (j->val_data) cJSON_AddStringToObject(o, "val_data", j->val_data);
    if (j->test_data) cJSON_AddStringToObject(o, "test_data", j->test_data);
    cJSON_AddStringToObject(o, "template", tmpl);
    cJSON_AddStringToObject(o, "split", j->split);
    cJSON_AddBoolToObject(o, "balance", j->balance);
    cJSON_AddNumberToObject(o, "max_per_class", (double)j->max_per_class);
    cJSON_AddStringToObject(o, "class_weights", j->class_weights);
    if (co->class_w) {
        cJSON *w = cJSON_AddArrayToObject(o, "class_weight_values");
        for (int k = 0; k < K && w; k++)
            cJSON_AddItemToArray(w, cJSON_CreateNumber(co->class_w[k]));
    }
    cJSON *c = cJSON_AddArrayToObject(o, "train_class_counts");
    for (int k = 0; k < K && c; k++) cJSON_AddItemToArray(c, cJSON_CreateNumber((double)counts[k]));
    cJSON_AddNumberToObject(o, "r", j->lc.r);
    cJSON_AddNumberToObject(o, "alpha", j->lc.alpha);
    cJSON_AddNumberToObject(o, "dropout", j->lc.dropout);
    cJSON_AddBoolToObject(o, "rslora", j->lc.rslora);
    cJSON_AddStringToObject(o, "targets", j->targets);
    cJSON_AddNumberToObject(o, "lr", t->lr);
    cJSON_AddStringToObject(o, "sched", j->sched);
    cJSON_AddNumberToObject(o, "warmup_steps", (double)lt_train_warmup_steps(t, total));
    cJSON_AddNumberToObject(o, "weight_decay", t->weight_decay);
    cJSON_AddNumberToObject(o, "max_grad_norm", t->max_grad_norm);
    cJSON_AddNumberToObject(o, "epochs", t->epochs);
    cJSON_AddNumberToObject(o, "max_steps", (double)total);
    cJSON_AddNumberToObject(o, "batch", t->B);
    cJSON_AddNumberToObject(o, "accum", t->grad_accum);
    cJSON_AddNumberToObject(o, "seq", t->T);
    cJSON_AddNumberToObject(o, "seed", (double)t->seed);
    cJSON_AddNumberToObject(o, "eval_every", t->eval_every);
    cJSON_AddStringToObject(o, "best_metric", co->best_metric);
    return o;
}

static void print_counts(const char *what, const lt_cls_data *d, const lt_cls_labels *ls) {
    int64_t c[64];
    int K = ls->n < 64 ? ls->n : 64;
    int64_t *cnt = ls->n <= 64 ? c : NULL;
    if (!cnt) {
        printf("%s: %lld examples\n", what, (long long)d->x.n);
        return;
    }
    lt_cls_data_counts(d, cnt);
    printf("%s: %lld examples (", what, (long long)d->x.n);
    for (int k = 0; k < K; k++) printf("%s%s %lld", k ? ", " : "", ls->names[k], (long long)cnt[k]);
    printf(")\n");
}

lt_status cls_job_run(lt_model *m, const lt_tokenizer *tok, const cls_job *j, cls_job_result *res,
                      lt_err *err) {
    memset(res, 0, sizeof *res);
    res->val_acc = res->val_f1 = res->val_loss = res->test_acc = res->test_f1 = res->test_loss =
        NAN;
    res->best_step = -1;
    lt_status st = LT_OK;
    char *tmpl = NULL, *lj_text = NULL, mpath[4096];
    lt_template *t = NULL;
    lt_records recs[3];
    texts tx[3];
    lt_cls_data all, part[3];
    lt_cls_labels ls = {0};
    lt_adapter *a = NULL;
    int8_t *keep = NULL, *part_of = NULL;
    float *cw = NULL;
    int64_t *counts = NULL;
    cJSON *lj = NULL, *cfg = NULL;
    lt_cls_train_result tr = {0};
    memset(recs, 0, sizeof recs);
    memset(tx, 0, sizeof tx);
    lt_cls_data_init(&all, 0);
    for (int i = 0; i < 3; i++) lt_cls_data_init(&part[i], 0);
    const char *files[3] = {j->data, j->val_data, j->test_data};
    char fnames[16][64];
    bool fopt[16];
    if ((st = template_text(j->template_src, &tmpl, err))) goto done;
    if (template_fields(tmpl, fnames, fopt, 16) == 0) {
        st = lt_err_set(err, LT_ERR_ARG, "template \"%s\" has no {field} placeholder", tmpl);
        goto done;
    }
    if ((st = lt_template_new(tmpl, &t, err))) goto done;
    // records -> texts + labels
    for (int f = 0; f < 3; f++) {
        if (!files[f]) continue;
        lt_on_bad ob;
        if ((st = lt_on_bad_parse(j->on_bad, &ob, err))) goto done;
        if ((st = read_records(files[f], j, &recs[f], err))) goto done;
        if ((st = render_all(&recs[f], t, j->label_field, true, ob, &tx[f], err))) goto done;
        if (tx[f].n == 0) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: no usable records", files[f]);
            goto done;
        }
    }
    if (j->labels)
        st = lt_cls_labels_parse(&ls, j->labels, err);
    else
        st = lt_cls_labels_from_values(&ls, tx[0].label, tx[0].n, err);
    if (st) goto done;
    if (ls.n < 2) {
        st = lt_err_set(err, LT_ERR_ARG,
                        "%s: only one label (\"%s\") in field \"%s\": a classifier "
                        "needs two or more",
                        j->data, ls.names[0], j->label_field);
        goto done;
    }
    const int K = ls.n, T = j->co.t.T, tail = template_tail(tok, tmpl);
    all.n_labels = K;
    for (int i = 0; i < 3; i++) part[i].n_labels = K;
    int64_t n_cut = 0;
    if ((st = encode_all(&recs[0], &tx[0], &ls, false, tok, T, tail, &all, &n_cut, err))) goto done;
    for (int f = 1; f < 3; f++)
        if (files[f] &&
            (st = encode_all(&recs[f], &tx[f], &ls, false, tok, T, tail, &part[f], &n_cut, err)))
            goto done;
    if (n_cut)
        lt_info("%lld of %lld texts are longer than %d tokens: cut, keeping their start and the "
                "template's end",
                (long long)n_cut, (long long)(all.x.n + part[1].x.n + part[2].x.n), T);
    // subsample, split
    keep = lt_alloc((size_t)all.x.n);
    part_of = lt_alloc((size_t)all.x.n);
    counts = lt_calloc((size_t)K, sizeof(int64_t));
    cw = lt_calloc((size_t)K, sizeof(float));
    if (!keep || !part_of || !counts || !cw) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    print_counts(j->data, &all, &ls);
    if (j->balance || j->max_per_class > 0) {
        lt_cls_data sub;
        lt_cls_data_init(&sub, K);
        // --balance: as many as the smallest class; --max-per-class: at most N; both: the smaller
        int64_t cap = j->max_per_class;
        if (j->balance) {
            lt_cls_data_counts(&all, counts);
            for (int k = 0; k < K; k++)
                if (counts[k] > 0 && (cap <= 0 || counts[k] < cap)) cap = counts[k];
        }
        st = lt_cls_subsample(all.y, all.x.n, K, cap, j->co.t.seed, keep, err);
        if (!st) st = lt_cls_data_take(&all, keep, 1, &sub, err);
        lt_cls_data_deinit(&all);
        all = sub;
        if (st) goto done;
        print_counts(j->balance ? "balanced subsample" : "subsample", &all, &ls);
    }
    double fr[3];
    parse_fracs(j->split, fr);
    if (j->val_data) fr[1] = 0;
    if (j->test_data) fr[2] = 0;
    if ((st = lt_cls_split(all.y, all.x.n, K, fr, 3, j->co.t.seed, part_of, err))) goto done;
    for (int p = 0; p < 3 && !st; p++)
        if (!files[p] || p == 0) st = lt_cls_data_take(&all, part_of, (int8_t)p, &part[p], err);
    if (st) goto done;
    if (part[0].x.n == 0) {
        st = lt_err_set(err, LT_ERR_ARG, "the training split is empty (%lld examples, split %s)",
                        (long long)all.x.n, j->split);
        goto done;
    }
    {
        printf("split (stratified, seed %llu): ", (unsigned long long)j->co.t.seed);
        printf("train %lld, validation %lld, test %lld\n", (long long)part[0].x.n,
               (long long)part[1].x.n, (long long)part[2].x.n);
        print_counts("train", &part[0], &ls);
    }
    // class weights, adapter, options
    lt_cls_data_counts(&part[0], counts);
    bool have_w;
    if ((st = lt_cls_class_weights(j->class_weights, counts, K, cw, &have_w, err))) goto done;
    lt_lora_config lc = j->lc;
    lc.n_labels = K;
    if ((st = lt_lora_parse_targets(m, j->targets, &lc.targets, err))) goto done;
    if ((st = lt_adapter_new(m, &lc, j->co.t.seed, &a, err))) goto done;
    lt_cls_train_opts co = j->co;
    co.t.out_dir = j->out;
    if (j->metrics)
        co.t.metrics_path = j->metrics;
    else if (lt_path_join(mpath, sizeof mpath, j->out, "metrics.jsonl"))
        co.t.metrics_path = mpath;
    co.pad_id = m->cfg.pad_id >= 0 ? m->cfg.pad_id : -1;
    co.class_w = have_w ? cw : NULL;
    co.label_names = (const char *const *)ls.names;
    int64_t total = lt_train_total_steps(&co.t, part[0].x.n);
    if (co.t.eval_every <= 0) co.t.eval_every = (int)(total >= 20 ? total / 20 : 1);
    lj = labels_json(j, &ls, tmpl, tail, co.pad_id, j->tokenizer);
    lj_text = lj ? cJSON_Print(lj) : NULL;
    cfg = run_config(j, &co, total, tmpl, counts, K);
    if (!lj_text || !cfg) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    co.labels_json = lj_text;
    co.report_config = cfg;
    {
        char desc[200];
        lt_adapter_describe(a, m, desc, sizeof desc);
        printf(
            "%s\n%lld steps (batch %d x accum %d, %d epochs), validation every %d steps, best by "
            "validation %s%s\n",
            desc, (long long)total, co.t.B, co.t.grad_accum, co.t.epochs, co.t.eval_every,
            co.best_metric, have_w ? ", class-weighted loss" : "");
        fflush(stdout);
    }
    if ((st = lt_cls_train(m, a, &part[0], &part[1], &part[2], &co, &tr, err))) goto done;
    if (tr.steps < total) goto done; // stopped early (testing hook)
    res->n_train = part[0].x.n, res->n_val = part[1].x.n, res->n_test = part[2].x.n;
    res->steps = tr.steps, res->best_step = tr.best_step, res->seconds = tr.seconds;
    if (tr.val.n)
        res->val_acc = tr.val.accuracy, res->val_f1 = tr.val.macro_f1, res->val_loss = tr.val.loss;
    if (tr.test.n)
        res->test_acc = tr.test.accuracy, res->test_f1 = tr.test.macro_f1,
        res->test_loss = tr.test.loss;
    {
        printf("trained %lld steps, %lld examples in %.1f s (%.1f examples/s), loss %.4f -> %.4f\n",
               (long long)tr.steps, (long long)tr.examples_seen, tr.seconds, tr.examples_per_s,
               tr.first_loss, tr.last_loss);
        if (tr.best_step >= 0)
            printf("best validation %s %.4f at step %lld -> %s/best\n", co.best_metric,
                   tr.best_value, (long long)tr.best_step, j->out);
        char buf[8192];
        if (tr.val.n) {
            lt_cls_metrics_format(&tr.val, co.label_names, buf, sizeof buf);
            printf("\nvalidation (best checkpoint):\n%s", buf);
        }
        if (tr.test.n) {
            lt_cls_metrics_format(&tr.test, co.label_names, buf, sizeof buf);
            printf("\ntest (best checkpoint):\n%s", buf);
        }
        if (tr.test.n)
            printf("\nresult: test accuracy %.4f, test macro-F1 %.4f (%lld test examples, best "
                   "checkpoint of step %lld), training %.1f s\n",
                   tr.test.accuracy, tr.test.macro_f1, (long long)tr.test.n,
                   (long long)(tr.best_step >= 0 ? tr.best_step : tr.steps), tr.seconds);
        printf("\nwritten: %s/{adapter_config.json, adapter_model.safetensors, labels.json, "
               "report.json, metrics.jsonl%s}, %s/best/\n",
               j->out, co.plots ? ", curves.svg" : "", j->out);
        fflush(stdout);
    }
done:
    lt_cls_train_result_deinit(&tr);
    cJSON_Delete(lj), cJSON_Delete(cfg);
    cJSON_free(lj_text);
    lt_adapter_free(a);
    lt_free(keep), lt_free(part_of), lt_free(counts), lt_free(cw);
    lt_cls_labels_deinit(&ls);
    lt_cls_data_deinit(&all);
    for (int i = 0; i < 3; i++) {
        lt_cls_data_deinit(&part[i]);
        texts_free(&tx[i]);
        lt_records_deinit(&recs[i]);
    }
    lt_template_free(t);
    lt_free(tmpl);
    return st;
}

// `loratune train --task classify ...`
int cmd_train_classify(int argc, char **argv) {
    cls_job j;
    cls_job_default(&j);
    cli_opt opts[CLS_JOB_MAX_OPTS];
    int n = cls_job_opts(&j, opts);
    const char *task = NULL;
    bool help = false;
    opts[n++] = (cli_opt){"task", OPT_STR, &task,
                          "classify (this help) or lm (causal LM; see loratune train --help)"};
    opts[n++] = (cli_opt){"help", OPT_BOOL, &help, "this help"};
    int rc = cli_parse("train", argc, argv, 2, opts, n, NULL, 0, NULL);
    if (rc) return rc;
    if (help) {
        printf(
            "usage: loratune train --task classify --model PATH --data FILE [flags]\n\n"
            "Fine-tunes a sequence classifier: LoRA plus a linear head on the last non-pad token\n"
            "(transformers *ForSequenceClassification, PEFT modules_to_save \"score\").\n\n");
        cli_print_opts(opts, n);
        return 0;
    }
    if (!task || strcmp(task, "classify") != 0)
        return cli_usage_error("train", "--task must be lm or classify, not \"%s\"",
                               task ? task : "");
    if ((rc = cls_job_check("train", &j))) return rc;
    lt_err err = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    double t0 = lt_time_sec();
    lt_status st = lt_model_load(j.model, &m, &err);
    if (!st) st = cli_open_tokenizer(j.tokenizer, j.model, m, &tok, &err);
    if (!st && !j.quiet)
        lt_info("model %s: %s, %d layers, hidden %d, vocab %d", j.model, m->arch.model_type,
                m->cfg.n_layer, m->cfg.n_embd, m->cfg.n_vocab);
    cls_job_result r;
    if (!st) st = cls_job_run(m, tok, &j, &r, &err);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    if (st) return cli_fail(&err);
    printf("wall time %.1f s\n", lt_time_sec() - t0);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// `loratune classify`

// One JSONL document per text line ("-": stdin), each {"<field>": line}; blank lines skipped.
static lt_status lines_to_jsonl(const char *path, const char *field, char **out, size_t *out_n,
                                lt_err *err) {
    char *data = NULL;
    size_t n = 0;
    lt_status st = LT_OK;
    if (!strcmp(path, "-")) {
        size_t cap = 0;
        for (;;) {
            if (n + 4096 + 1 > cap) {
                size_t nc = cap ? cap * 2 : 65536;
                char *p = lt_realloc(data, nc);
                if (!p) {
                    lt_free(data);
                    return lt_err_set(err, LT_ERR_OOM, "out of memory reading stdin");
                }
                data = p, cap = nc;
            }
            size_t r = fread(data + n, 1, 4096, stdin);
            n += r;
            if (r < 4096) break;
        }
        data[n] = 0;
    } else if ((st = lt_read_file(path, &data, &n, err))) {
        return st;
    }
    size_t cap = 2 * n + 64, len = 0;
    char *o = lt_alloc(cap);
    if (!o) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    for (char *p = data; !st && p < data + n;) {
        char *e = memchr(p, '\n', (size_t)(data + n - p));
        if (!e) e = data + n;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r') l--;
        bool blank = true;
        for (size_t i = 0; i < l; i++) blank &= p[i] == ' ' || p[i] == '\t';
        if (!blank) {
            cJSON *obj = cJSON_CreateObject();
            char save = p[l];
            p[l] = 0;
            char *js =
                obj && cJSON_AddStringToObject(obj, field, p) ? cJSON_PrintUnformatted(obj) : NULL;
            p[l] = save;
            cJSON_Delete(obj);
            if (!js) {
                st = lt_err_set(err, LT_ERR_OOM, "out of memory");
                break;
            }
            size_t jl = strlen(js);
            if (len + jl + 2 > cap) {
                size_t nc = (len + jl + 2) * 2;
                char *q = lt_realloc(o, nc);
                if (!q) {
                    cJSON_free(js);
                    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
                    break;
                }
                o = q, cap = nc;
            }
            memcpy(o + len, js, jl);
            len += jl;
            o[len++] = '\n';
            cJSON_free(js);
        }
        p = e + 1;
    }
    lt_free(data);
    if (st) {
        lt_free(o);
        return st;
    }
    *out = o, *out_n = len;
    return LT_OK;
}

int cmd_classify(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *tok_path = NULL, *text = NULL, *input = NULL,
               *format = "auto", *columns = NULL, *on_bad = "stop", *label_field = NULL, *out = "-";
    int B = 16, seq = 0;
    bool help = false, quiet = false;
    const char *compute = "f32"; // --compute
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "the base model the adapter was trained on"},
        {"adapter", OPT_STR, &adapter,
         "adapter directory from train --task classify (e.g. out/classifier/best)"},
        {"tokenizer", OPT_STR, &tok_path, "tokenizer (default: labels.json's, else the model's)"},
        {"text", OPT_STR, &text, "one text to classify"},
        {"input", OPT_STR, &input,
         "records (.jsonl/.json/.csv/.tsv), a .txt file or - (stdin): one text per line"},
        {"data-format", OPT_STR, &format,
         "record format of --input: auto | jsonl | json | csv | tsv"},
        {"columns", OPT_STR, &columns,
         "CSV/TSV column names, e.g. label,text (files without a header)"},
        {"on-bad-record", OPT_STR, &on_bad, "skip | stop (default stop)"},
        {"label-field", OPT_STR, &label_field,
         "gold label field in --input (default: labels.json's); scored when present"},
        {"batch", OPT_INT, &B, "texts per forward pass (default 16)"},
        {"seq", OPT_INT, &seq, "maximum tokens (default: the training length in labels.json)"},
        {"out", OPT_STR, &out, "predictions JSONL (default - = stdout)"},
        {"quiet", OPT_BOOL, &quiet, "no summary on stderr"},
        {"compute", OPT_STR, &compute, CLI_COMPUTE_HELP},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("classify", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if ((rc = cli_set_compute("classify", compute))) return rc;
    if (help) {
        printf(
            "usage: loratune classify --model M --adapter DIR (--text T | --input FILE) [flags]\n\n"
            "Writes one JSON line per text: {\"index\", \"text\", \"label\", \"confidence\", "
            "\"probs\": {label: p}, \"gold\"}.\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    if (!model || !adapter)
        return cli_usage_error("classify", "--model and --adapter are required");
    if (!text == !input)
        return cli_usage_error("classify", "give exactly one of --text and --input");
    if (B <= 0 || seq < 0)
        return cli_usage_error("classify", "--batch must be positive, --seq >= 0");
    lt_err err = {0};
    lt_status st = LT_OK;
    char path[4096];
    cJSON *lj = NULL;
    lt_cls_labels ls = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_adapter *a = NULL;
    lt_template *t = NULL;
    lt_records rs;
    texts tx = {0};
    lt_cls_data d;
    lt_cls_metrics met = {0};
    float *probs = NULL;
    char *mem = NULL;
    size_t mem_n = 0;
    lt_afile af = {0};
    bool af_open = false;
    FILE *fo = stdout;
    lt_records_init(&rs);
    lt_cls_data_init(&d, 0);
    double t0 = lt_time_sec();
    if (!lt_path_join(path, sizeof path, adapter, "labels.json")) {
        st = lt_err_set(&err, LT_ERR_ARG, "%s: path too long", adapter);
        goto done;
    }
    if ((st = lt_json_parse_file(path, &lj, &err))) {
        lt_err_wrap(&err, "%s is not a classification adapter (train it with --task classify)",
                    adapter);
        goto done;
    }
    if ((st = lt_cls_labels_from_json(&ls, lj, path, &err))) goto done;
    const char *tmpl = lt_json_str(lj, "template", "{text}");
    int T = (int)lt_json_int(lj, "max_length", 128),
        tail = (int)lt_json_int(lj, "truncation_tail", 1);
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(lj, "pad_token_id");
    int32_t pad = cJSON_IsNumber(pj) ? (int32_t)pj->valuedouble : -1;
    if (!label_field) label_field = lt_json_str(lj, "label_field", "label");
    if (seq > 0) T = seq;
    if (T < 2 || T > 1 << 20) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: max_length %d is not valid", path, T);
        goto done;
    }
    char fn[16][64];
    bool fo_opt[16];
    int nf = template_fields(tmpl, fn, fo_opt, 16), n_req = 0;
    for (int i = 0; i < nf; i++) n_req += !fo_opt[i];
    if (nf == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: template \"%s\" has no {field}", path, tmpl);
        goto done;
    }
    // model, tokenizer, adapter
    if ((st = lt_model_load(model, &m, &err))) goto done;
    if (!tok_path) {
        const char *h = lt_json_str(lj, "tokenizer", NULL);
        if (h && lt_file_exists(h)) tok_path = h;
    }
    if ((st = cli_open_tokenizer(tok_path, model, m, &tok, &err))) goto done;
    if ((st = lt_adapter_load_peft(m, adapter, &a, &err))) goto done;
    if (a->n_labels != ls.n) {
        st =
            lt_err_set(&err, LT_ERR_FORMAT, "%s: the adapter's head has %d classes, labels.json %d",
                       adapter, a->n_labels, ls.n);
        goto done;
    }
    // records
    lt_read_opts ro;
    lt_read_opts_default(&ro);
    if ((st = lt_on_bad_parse(on_bad, &ro.on_bad, &err))) goto done;
    if (text || !strcmp(input, "-") || cli_ends_with(input, ".txt")) {
        if (n_req > 1) {
            st = lt_err_set(&err, LT_ERR_ARG,
                            "the template \"%s\" needs %d fields: give records "
                            "(--input FILE.jsonl/.csv/.tsv) rather than plain text",
                            tmpl, n_req);
            goto done;
        }
        if (text) {
            cJSON *o = cJSON_CreateObject();
            mem = o && cJSON_AddStringToObject(o, fn[0], text) ? cJSON_PrintUnformatted(o) : NULL;
            cJSON_Delete(o);
            if (!mem) {
                st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
                goto done;
            }
            char *c = lt_strdup(mem); // lt_free-able copy
            cJSON_free(mem);
            mem = c;
            mem_n = c ? strlen(c) : 0;
            if (!c) {
                st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
                goto done;
            }
        } else if ((st = lines_to_jsonl(input, fn[0], &mem, &mem_n, &err))) {
            goto done;
        }
        ro.format = LT_DATA_JSONL;
        st = lt_records_read_mem(&rs, mem, mem_n, text ? "--text" : input, &ro, &err);
    } else {
        if ((st = lt_data_format_parse(format, &ro.format, &err))) goto done;
        ro.columns = columns;
        st = lt_records_read(&rs, input, &ro, &err);
    }
    if (st) goto done;
    if ((st = lt_template_new(tmpl, &t, &err))) goto done;
    if ((st = render_all(&rs, t, label_field, false, ro.on_bad, &tx, &err))) goto done;
    d.n_labels = ls.n;
    int64_t n_cut = 0;
    if ((st = encode_all(&rs, &tx, &ls, true, tok, T, tail, &d, &n_cut, &err))) goto done;
    if (d.x.n == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: nothing to classify", text ? "--text" : input);
        goto done;
    }
    int Tb = 2; // pad batches only to the longest text
    for (int64_t i = 0; i < d.x.n; i++)
        if (d.x.ex[i].len > Tb) Tb = d.x.ex[i].len;
    if (B > d.x.n) B = (int)d.x.n;
    probs = lt_alloc(sizeof(float) * (size_t)d.x.n * (size_t)ls.n);
    if (!probs) {
        st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    if ((st = lt_cls_metrics_init(&met, ls.n, &err))) goto done;
    lt_cls_head h = {.n_labels = ls.n, .pad_id = pad, .w = a->score};
    if ((st = lt_cls_evaluate(m, NULL, B, Tb, &h, &d, &met, probs, &err))) goto done;
    // output
    if (strcmp(out, "-") != 0) {
        if ((st = lt_afile_open(&af, out, &err))) goto done;
        af_open = true;
        fo = af.f;
    }
    for (int64_t i = 0; i < d.x.n; i++) {
        const float *p = probs + (size_t)i * (size_t)ls.n;
        int best = 0;
        for (int k = 1; k < ls.n; k++)
            if (p[k] > p[best]) best = k;
        cJSON *o = cJSON_CreateObject(), *pr;
        if (!o) {
            st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
            break;
        }
        cJSON_AddNumberToObject(o, "index", (double)i);
        const lt_field *tf = lt_record_get(&rs.rec[tx.rec[i]], fn[0]);
        if (tf && tf->str) cJSON_AddStringToObject(o, "text", tf->str);
        cJSON_AddStringToObject(o, "label", ls.names[best]);
        cJSON_AddNumberToObject(o, "confidence", round((double)p[best] * 1e6) / 1e6);
        if ((pr = cJSON_AddObjectToObject(o, "probs")))
            for (int k = 0; k < ls.n; k++)
                cJSON_AddNumberToObject(pr, ls.names[k], round((double)p[k] * 1e6) / 1e6);
        if (tx.label[i]) cJSON_AddStringToObject(o, "gold", tx.label[i]);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) {
            st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
            break;
        }
        fprintf(fo, "%s\n", s);
        cJSON_free(s);
    }
    if (af_open) {
        af_open = false;
        if (st)
            lt_afile_abort(&af);
        else
            st = lt_afile_commit(&af, &err);
    } else {
        fflush(stdout);
    }
    if (st) goto done;
    if (!quiet) {
        fprintf(stderr, "classified %lld texts in %.2f s (batch %d, %d tokens max%s)\n",
                (long long)d.x.n, lt_time_sec() - t0, B, Tb,
                n_cut ? ", some cut to the training length" : "");
        if (met.n > 0) {
            char buf[8192];
            lt_cls_metrics_format(&met, (const char *const *)ls.names, buf, sizeof buf);
            fprintf(stderr, "against the gold labels of %s (%lld of %lld texts have one):\n%s",
                    input ? input : "--text", (long long)met.n, (long long)d.x.n, buf);
        }
    }
done:
    if (af_open) lt_afile_abort(&af);
    lt_free(probs);
    lt_free(mem);
    lt_cls_metrics_deinit(&met);
    lt_cls_data_deinit(&d);
    texts_free(&tx);
    lt_records_deinit(&rs);
    lt_template_free(t);
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_cls_labels_deinit(&ls);
    cJSON_Delete(lj);
    return st ? cli_fail(&err) : 0;
}
