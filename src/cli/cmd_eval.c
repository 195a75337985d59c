// cmd_eval.c - `loratune eval`: exact match, JSON-output classification, field-level exact match
// of JSON extractions (predictions JSONL vs gold JSONL, optionally base vs adapter predictions in
// one before/after report), and perplexity of a model with or without its adapter.
#include "cli/cli.h"
#include "data/data.h"
#include "eval/eval.h"
#include "lora/lora.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef enum { T_EM, T_JCLS, T_JFIELDS, T_PPL } task_kind;

typedef struct eval_args {
    task_kind task;
    const char *pred_field, *gold_field, *join_key, *norm, *labels, *synonyms_path;
    const char *label_key, *conf_key, *reason_key;
    bool coerce;
    float num_tol;
    int n_preview;
} eval_args;

// Splits "a,b,c" into a NULL-terminated list of lt_alloc'd strings.
static char **split_list(const char *s, int *n) {
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    char **v = lt_calloc((size_t)cap + 1, sizeof(char *));
    *n = 0;
    if (!v) return NULL;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l) {
            v[*n] = lt_alloc(l + 1);
            if (!v[*n]) break;
            memcpy(v[*n], p, l), v[*n][l] = 0;
            (*n)++;
        }
        if (!e) break;
        p = e + 1;
    }
    return v;
}

static void free_list(char **v, int n) {
    for (int i = 0; v && i < n; i++) lt_free(v[i]);
    lt_free(v);
}

// The gold value a record carries for the task, as text (EM, label) or an object (fields).
static const char *gold_key(const eval_args *a, const cJSON *rec) {
    if (a->gold_field) return a->gold_field;
    static const char *em[] = {"answers", "answer", "gold", "output", "completion", "label"};
    static const char *cls[] = {"label", "gold", "completion", "output", "json", "answer"};
    static const char *fld[] = {"gold", "json", "completion", "output", "answer"};
    if (a->task == T_EM) return lt_eval_pick_key(rec, em, 6);
    if (a->task == T_JCLS) return lt_eval_pick_key(rec, cls, 6);
    return lt_eval_pick_key(rec, fld, 5);
}

static const char *pred_key(const eval_args *a, const cJSON *rec) {
    if (a->pred_field) return a->pred_field;
    static const char *k[] = {"output", "json", "prediction", "text", "completion"};
    return lt_eval_pick_key(rec, k, 5);
}

// Evaluates one predictions file against the gold records.
static lt_status eval_preds(const eval_args *a, const char *pred_path, const lt_jsonl *gold,
                            cJSON **report, cJSON **errors, lt_err *err) {
    lt_jsonl pred = {0};
    lt_status st = lt_jsonl_read(pred_path, &pred, err);
    if (st) return st;
    int64_t n = gold->n;
    int64_t *map = lt_alloc(sizeof(int64_t) * ((size_t)n + 1));
    const char **ptext = lt_calloc((size_t)n + 1, sizeof(char *));
    const char **ids = lt_calloc((size_t)n + 1, sizeof(char *));
    char **owned = lt_calloc(3 * ((size_t)n + 1), sizeof(char *)); // pred, id, gold texts
    const char **gtext = lt_calloc((size_t)n + 1, sizeof(char *));
    cJSON **gobj = lt_calloc((size_t)n + 1, sizeof(cJSON *));
    const char ***galts = lt_calloc((size_t)n + 1, sizeof(char **));
    int *ngold = lt_calloc((size_t)n + 1, sizeof(int));
    char **labels = NULL;
    int n_labels = 0;
    cJSON *syn = NULL;
    bool any_id = false;
    if (!map || !ptext || !ids || !owned || !gtext || !gobj || !galts || !ngold) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto done;
    }
    if ((st = lt_eval_join(&pred, gold, a->join_key, map, err))) goto done;
    const char *idk = a->join_key ? a->join_key : "id";
    for (int64_t i = 0; i < n; i++) {
        const cJSON *pr = pred.rec[map[i]], *gr = gold->rec[i];
        const char *pk = pred_key(a, pr);
        ptext[i] = pk ? lt_eval_field_text(pr, pk, &owned[3 * i]) : NULL;
        if (!ptext[i]) ptext[i] = ""; // a missing prediction is simply wrong
        ids[i] = lt_eval_field_text(gr, idk, &owned[3 * i + 1]);
        any_id = any_id || ids[i];
        const char *gk = gold_key(a, gr);
        const cJSON *gv = gk ? cJSON_GetObjectItemCaseSensitive(gr, gk) : NULL;
        if (!gv || cJSON_IsNull(gv)) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: no gold %s (give --gold-field)",
                            gold->path, (long long)gold->line[i],
                            a->gold_field ? a->gold_field : "field");
            goto done;
        }
        if (a->task == T_EM) {
            if (cJSON_IsArray(gv)) {
                int k = cJSON_GetArraySize(gv), j = 0;
                if (!(galts[i] = lt_calloc((size_t)k + 1, sizeof(char *)))) goto oom;
                for (const cJSON *e = gv->child; e; e = e->next)
                    if (cJSON_IsString(e)) galts[i][j++] = e->valuestring;
                ngold[i] = j;
            } else {
                if (!(galts[i] = lt_calloc(1, sizeof(char *)))) goto oom;
                galts[i][0] = lt_eval_field_text(gr, gk, &owned[3 * i + 2]);
                ngold[i] = galts[i][0] != NULL;
            }
        } else if (a->task == T_JCLS) {
            // the label itself, or the label_key of a JSON object (possibly held in a string)
            cJSON *o = NULL;
            if (cJSON_IsObject(gv))
                o = cJSON_Duplicate(gv, true);
            else if (cJSON_IsString(gv) && strcmp(gk, "label"))
                if ((st = lt_json_first_object(gv->valuestring, strlen(gv->valuestring), &o, NULL,
                                               NULL, err)))
                    goto done;
            if (o) {
                gtext[i] = lt_eval_field_text(o, a->label_key, &owned[3 * i + 2]);
                if (gtext[i] && !owned[3 * i + 2] && !(owned[3 * i + 2] = lt_strdup(gtext[i]))) {
                    cJSON_Delete(o);
                    goto oom;
                }
                gtext[i] = owned[3 * i + 2];
                cJSON_Delete(o);
            } else {
                gtext[i] = lt_eval_field_text(gr, gk, &owned[3 * i + 2]);
            }
            if (!gtext[i]) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: field \"%s\" has no label",
                                gold->path, (long long)gold->line[i], gk);
                goto done;
            }
        } else {
            if (cJSON_IsObject(gv))
                gobj[i] = cJSON_Duplicate(gv, true);
            else if (cJSON_IsString(gv))
                if ((st = lt_json_first_object(gv->valuestring, strlen(gv->valuestring), &gobj[i],
                                               NULL, NULL, err)))
                    goto done;
            if (!gobj[i]) {
                st = lt_err_set(err, LT_ERR_FORMAT, "%s:%lld: field \"%s\" holds no JSON object",
                                gold->path, (long long)gold->line[i], gk);
                goto done;
            }
        }
    }
    unsigned norm = 0;
    if (a->task == T_EM) {
        if ((st = lt_norm_parse(a->norm ? a->norm : "default", &norm, err))) goto done;
        uint8_t *ok = lt_alloc((size_t)n + 1);
        lt_em_result r;
        if (!ok) goto oom;
        st = lt_exact_match(ptext, (const char *const *const *)galts, ngold, n, norm, ok, &r, err);
        if (!st) {
            cJSON *rep = cJSON_CreateObject(), *errs = cJSON_CreateArray();
            cJSON_AddStringToObject(rep, "task", "exact-match");
            cJSON_AddStringToObject(rep, "normalisation", a->norm ? a->norm : "default");
            cJSON_AddNumberToObject(rep, "n", (double)r.n);
            cJSON_AddNumberToObject(rep, "correct", (double)r.correct);
            cJSON_AddNumberToObject(rep, "exact_match", r.accuracy);
            for (int64_t i = 0; i < n && errs && cJSON_GetArraySize(errs) < a->n_preview; i++) {
                if (ok[i]) continue;
                cJSON *e = cJSON_CreateObject();
                cJSON_AddItemToArray(errs, e);
                cJSON_AddNumberToObject(e, "index", (double)i);
                if (ids[i]) cJSON_AddStringToObject(e, "id", ids[i]);
                cJSON_AddStringToObject(e, "pred", ptext[i]);
                cJSON *g = cJSON_AddArrayToObject(e, "gold");
                for (int k = 0; k < ngold[i]; k++)
                    cJSON_AddItemToArray(g, cJSON_CreateString(galts[i][k]));
            }
            *report = rep;
            if (errors)
                *errors = errs;
            else
                cJSON_Delete(errs);
        }
        lt_free(ok);
    } else if (a->task == T_JCLS) {
        lt_jcls_opts o;
        lt_jcls_opts_default(&o);
        o.label_key = a->label_key, o.confidence_key = a->conf_key, o.reason_key = a->reason_key;
        o.n_preview = a->n_preview;
        if (a->norm && (st = lt_norm_parse(a->norm, &o.label_norm, err))) goto done;
        if (a->labels) {
            if (!(labels = split_list(a->labels, &n_labels))) goto oom;
            o.labels = (const char *const *)labels, o.n_labels = n_labels;
        }
        if (a->synonyms_path && (st = lt_json_parse_file(a->synonyms_path, &syn, err))) goto done;
        o.synonyms = syn;
        st = lt_eval_json_class(&o, ptext, gtext, any_id ? ids : NULL, n, report, errors, err);
    } else {
        lt_jfields_opts o;
        lt_jfields_opts_default(&o);
        o.coerce_numbers = a->coerce;
        o.n_preview = a->n_preview;
        if (a->num_tol >= 0) o.num_rel_tol = a->num_tol;
        if (a->norm && (st = lt_norm_parse(a->norm, &o.str_norm, err))) goto done;
        st = lt_eval_json_fields(&o, ptext, (const cJSON *const *)gobj, any_id ? ids : NULL, n,
                                 report, errors, err);
    }
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
done:
    for (int64_t i = 0; owned && i < 3 * n; i++) lt_free(owned[i]);
    for (int64_t i = 0; gobj && i < n; i++) cJSON_Delete(gobj[i]);
    for (int64_t i = 0; galts && i < n; i++) lt_free((void *)galts[i]);
    lt_free(map), lt_free(ptext), lt_free(ids), lt_free(owned), lt_free(gtext), lt_free(gobj);
    lt_free(galts), lt_free(ngold);
    free_list(labels, n_labels);
    cJSON_Delete(syn);
    lt_jsonl_deinit(&pred);
    return st;
}

static lt_status perplexity(const char *model, const char *adapter, const char *tok_path,
                            const char *data, int seq, int batch, bool compare_base, cJSON **report,
                            lt_err *err) {
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_tokenizer *tok = NULL;
    lt_dataset d, none;
    lt_dataset_init(&d), lt_dataset_init(&none);
    cJSON *after = NULL, *before = NULL;
    lt_status st;
    if ((st = lt_model_load(model, &m, err))) goto done;
    if (adapter && (st = lt_adapter_load_peft(m, adapter, &a, err))) goto done;
    if (lt_data_format_guess(data) != LT_DATA_IDS &&
        (st = cli_open_tokenizer(tok_path, model, m, &tok, err)))
        goto done;
    lt_data_opts o;
    lt_data_opts_default(&o);
    o.path = data;
    o.sft.max_len = seq;
    lt_data_summary sum;
    if ((st = lt_data_load(tok, m->cfg.n_vocab, &o, &d, &none, &sum, err))) goto done;
    char desc[512];
    lt_data_summary_describe(&sum, data, &d, &none, seq, desc, sizeof desc);
    lt_info("%s", desc);
    int32_t pad = tok && lt_tokenizer_pad(tok) >= 0 ? lt_tokenizer_pad(tok)
                  : m->cfg.pad_id >= 0              ? m->cfg.pad_id
                                                    : 0;
    lt_ppl_result r;
    if ((st = lt_eval_perplexity(m, &d, batch, seq, pad, &r, err))) goto done;
    if (!(after = lt_ppl_report(&r))) goto oom;
    if (a && compare_base) {
        lt_adapter_free(a); // detaches: the base model alone
        a = NULL;
        if ((st = lt_eval_perplexity(m, &d, batch, seq, pad, &r, err))) goto done;
        if (!(before = lt_ppl_report(&r))) goto oom;
        if (!(*report = lt_report_compare(before, after))) goto oom;
    } else {
        *report = after, after = NULL;
    }
    goto done;
oom:
    st = lt_err_set(err, LT_ERR_OOM, "out of memory");
done:
    cJSON_Delete(after), cJSON_Delete(before);
    lt_dataset_deinit(&d), lt_dataset_deinit(&none);
    lt_adapter_free(a);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    return st;
}

// ---------------------------------------------------------------------------------------------
// the summary

static void print_value(const cJSON *v) {
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x == floor(x) && fabs(x) < 1e15)
            printf("%.0f", x);
        else
            printf("%.4f", x);
    } else if (cJSON_IsNull(v) || !v) {
        printf("null");
    } else if (cJSON_IsString(v)) {
        printf("%s", v->valuestring);
    }
}

static void summary_line(const cJSON *rep, const char *key, const char *name) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(rep, "before");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rep, "after");
    if (a) {
        const cJSON *va = cJSON_GetObjectItemCaseSensitive(a, key),
                    *vb = cJSON_GetObjectItemCaseSensitive(b, key);
        if (!va) return;
        printf("  %-28s ", name);
        print_value(vb);
        printf(" -> ");
        print_value(va);
        if (cJSON_IsNumber(va) && cJSON_IsNumber(vb))
            printf("  (%+.4f)", va->valuedouble - vb->valuedouble);
        printf("\n");
        return;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rep, key);
    if (!v) return;
    printf("  %-28s ", name);
    print_value(v);
    printf("\n");
}

static void print_summary(const cJSON *rep, task_kind t) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rep, "after");
    const cJSON *r = a ? a : rep;
    printf("%s%s\n", lt_json_str(r, "task", "eval"), a ? " (before -> after)" : "");
    static const char *em[][2] = {{"n", "examples"}, {"exact_match", "exact match"}};
    static const char *cls[][2] = {{"n", "examples"},
                                   {"parse_success_rate", "JSON parse rate"},
                                   {"accuracy", "accuracy"},
                                   {"macro_precision", "macro precision"},
                                   {"macro_recall", "macro recall"},
                                   {"macro_f1", "macro F1"},
                                   {"avg_confidence", "mean confidence"},
                                   {"avg_reason_length", "mean reason length (chars)"},
                                   {"confidence_correctness_pearson", "confidence~correct (r)"}};
    static const char *fld[][2] = {{"n", "examples"},
                                   {"parse_success_rate", "JSON parse rate"},
                                   {"all_fields_exact_match", "exact match, all fields"},
                                   {"macro_field_exact_match", "exact match, mean of fields"}};
    static const char *ppl[][2] = {
        {"n_tokens", "tokens"}, {"mean_loss", "mean loss"}, {"perplexity", "perplexity"}};
    const char *(*rows)[2] = t == T_EM ? em : t == T_JCLS ? cls : t == T_JFIELDS ? fld : ppl;
    int nr = t == T_EM ? 2 : t == T_JCLS ? 9 : t == T_JFIELDS ? 4 : 3;
    for (int i = 0; i < nr; i++) summary_line(rep, rows[i][0], rows[i][1]);
    if (t == T_JFIELDS) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "fields");
        const cJSON *bf = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(rep, "before"), "fields");
        for (const cJSON *e = f ? f->child : NULL; e; e = e->next) {
            printf("  field %-22s ", e->string);
            if (bf) {
                print_value(cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(bf, e->string), "exact_match"));
                printf(" -> ");
            }
            print_value(cJSON_GetObjectItemCaseSensitive(e, "exact_match"));
            printf("\n");
        }
    }
    const char *note = lt_json_str(r, "confidence_correctness_pearson_note", NULL);
    if (note) printf("  (correlation undefined: %s)\n", note);
}

int cmd_eval(int argc, char **argv) {
    const char *task = NULL, *pred = NULL, *pred_base = NULL, *gold = NULL, *report = NULL,
               *errors_path = NULL, *model = NULL, *adapter = NULL, *tok_path = NULL, *data = NULL;
    eval_args a = {.label_key = "label",
                   .conf_key = "confidence",
                   .reason_key = "reason",
                   .num_tol = -1,
                   .n_preview = 20};
    int seq = 256, batch = 4;
    bool compare_base = false, help = false;
    const char *compute = "f32"; // --compute
    cli_opt opts[] = {
        {"task", OPT_STR, &task, "exact-match | json-class | json-fields | perplexity"},
        {"pred", OPT_STR, &pred, "predictions JSONL (e.g. from generate --out)"},
        {"pred-base", OPT_STR, &pred_base, "predictions of the base model: a before/after report"},
        {"gold", OPT_STR, &gold, "gold JSONL (joined by position, or by --join-key)"},
        {"join-key", OPT_STR, &a.join_key, "join predictions and gold by this field (e.g. id)"},
        {"pred-field", OPT_STR, &a.pred_field,
         "prediction field (default output, json, prediction, text)"},
        {"gold-field", OPT_STR, &a.gold_field,
         "gold field (default per task: answer(s)/label/gold/json/completion/output)"},
        {"norm", OPT_STR, &a.norm,
         "normalisation: strip,nfkc,case,spaces,punct,articles | default | squad | none"},
        {"labels", OPT_STR, &a.labels,
         "json-class: the label set, comma-separated (default: gold + predicted)"},
        {"synonyms", OPT_STR, &a.synonyms_path,
         "json-class: JSON file {\"label\": [\"alias\", ...]}"},
        {"label-key", OPT_STR, &a.label_key, "json-class: key of the label (default label)"},
        {"confidence-key", OPT_STR, &a.conf_key,
         "json-class: key of the confidence (default confidence)"},
        {"reason-key", OPT_STR, &a.reason_key, "json-class: key of the reason (default reason)"},
        {"coerce-numbers", OPT_BOOL, &a.coerce, "json-fields: \"3\" equals 3"},
        {"num-tol", OPT_FLOAT, &a.num_tol,
         "json-fields: relative tolerance for numbers (default 1e-9)"},
        {"errors", OPT_STR, &errors_path, "error preview JSONL (default <report>.errors.jsonl)"},
        {"n-errors", OPT_INT, &a.n_preview, "errors in the preview (default 20)"},
        {"report", OPT_STR, &report, "report JSON, written atomically (default: printed)"},
        {"model", OPT_STR, &model, "perplexity: the model"},
        {"adapter", OPT_STR, &adapter, "perplexity: PEFT adapter (applied unmerged)"},
        {"compare-base", OPT_BOOL, &compare_base,
         "perplexity: also without the adapter (before/after)"},
        {"tokenizer", OPT_STR, &tok_path, "perplexity: tokenizer (default: the model's)"},
        {"data", OPT_STR, &data,
         "perplexity: .txt, records (.jsonl/.json/.csv/.tsv) or .ids.jsonl"},
        {"seq", OPT_INT, &seq, "perplexity: sequence length (default 256)"},
        {"batch", OPT_INT, &batch, "perplexity: batch size (default 4)"},
        {"compute", OPT_STR, &compute, "perplexity: " CLI_COMPUTE_HELP},
        {"help", OPT_BOOL, &help, "this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    int rc = cli_parse("eval", argc, argv, 2, opts, n_opts, NULL, 0, NULL);
    if (rc) return rc;
    if ((rc = cli_set_compute("eval", compute))) return rc;
    if (help) {
        printf("usage: loratune eval --task TASK --pred P.jsonl --gold G.jsonl [--pred-base "
               "B.jsonl] [--report R.json]\n"
               "       loratune eval --task perplexity --model M [--adapter D [--compare-base]] "
               "--data FILE\n\n");
        cli_print_opts(opts, n_opts);
        return 0;
    }
    if (!task) return cli_usage_error("eval", "--task is required");
    if (!strcmp(task, "exact-match"))
        a.task = T_EM;
    else if (!strcmp(task, "json-class"))
        a.task = T_JCLS;
    else if (!strcmp(task, "json-fields"))
        a.task = T_JFIELDS;
    else if (!strcmp(task, "perplexity"))
        a.task = T_PPL;
    else
        return cli_usage_error(
            "eval", "--task must be exact-match, json-class, json-fields or perplexity, not \"%s\"",
            task);
    if (a.task == T_PPL && (!model || !data))
        return cli_usage_error("eval", "perplexity needs --model and --data");
    if (a.task != T_PPL && (!pred || !gold))
        return cli_usage_error("eval", "--pred and --gold are required");
    if (seq < 2 || batch < 1) return cli_usage_error("eval", "--seq must be >= 2 and --batch >= 1");
    if (a.n_preview < 0) return cli_usage_error("eval", "--n-errors must be >= 0");

    lt_err err = {0};
    lt_status st = LT_OK;
    cJSON *rep = NULL, *errs = NULL, *rb = NULL;
    lt_jsonl g = {0};
    char epath[4096];
    if (a.task == T_PPL) {
        if ((st = perplexity(model, adapter, tok_path, data, seq, batch, compare_base, &rep, &err)))
            goto fail;
    } else {
        if ((st = lt_jsonl_read(gold, &g, &err))) goto fail;
        if ((st = eval_preds(&a, pred, &g, &rep, &errs, &err))) goto fail;
        if (pred_base) {
            if ((st = eval_preds(&a, pred_base, &g, &rb, NULL, &err))) goto fail;
            cJSON *c = lt_report_compare(rb, rep);
            if (!c) {
                st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
                goto fail;
            }
            cJSON_Delete(rep);
            rep = c;
        }
    }
    print_summary(rep, a.task);
    if (report) {
        if ((st = lt_report_write(report, rep, &err))) goto fail;
        printf("report: %s\n", report);
    } else {
        char *t = cJSON_Print(rep);
        if (t) printf("%s\n", t);
        cJSON_free(t);
    }
    if (errs) {
        if (!errors_path && report) {
            snprintf(epath, sizeof epath, "%.*s.errors.jsonl",
                     (int)(strlen(report) > 5 && !strcmp(report + strlen(report) - 5, ".json")
                               ? strlen(report) - 5
                               : strlen(report)),
                     report);
            errors_path = epath;
        }
        if (errors_path) {
            if ((st = lt_jsonl_write(errors_path, errs, &err))) goto fail;
            printf("errors (first %d): %s\n", cJSON_GetArraySize(errs), errors_path);
        }
    }
fail:
    cJSON_Delete(rep), cJSON_Delete(errs), cJSON_Delete(rb);
    lt_jsonl_deinit(&g);
    return st ? cli_fail(&err) : 0;
}
