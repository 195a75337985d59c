// cmd_plan.c - `loratune train --plan`: loads what training would load (model, tokenizer, data,
// adapter), measures the process as it goes, and prints the planned peak memory, broken down,
// and tokens/s (src/train/plan.h), plus settings that fit when the machine's available memory is
// too small. Trains nothing. --json prints one JSON object instead of the table.
#include "cli/cmd_plan.h"

#include "cli/cli.h"
#include "io/io.h"
#include "tokenizer/tokenizer.h"
#include "train/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double mb(size_t b) { return (double)b / (1024.0 * 1024.0); }

// One planned alternative: the flags that differ from the user's and the options they give.
typedef struct variant {
    char flags[256];
    lt_plan_opts o;
    lt_plan p;
} variant;

static bool can_4bit(const lt_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            if (li->out <= 0 || li->in <= 0) continue;
            lt_dtype t = li->w.dtype;
            if ((t != LT_DTYPE_F32 && t != LT_DTYPE_F16 && t != LT_DTYPE_BF16) ||
                li->w.cols % LT_Q4_BLOCK)
                return false;
        }
    return true;
}

// Alternatives cheapest-to-accept first: one switch, then all three switches, then smaller
// batches (with more accumulation, so the effective batch stays) and shorter sequences.
static int make_variants(const lt_model *m, const lt_plan_opts *o, variant *v, int cap) {
    int n = 0;
    bool q4 = !o->load_4bit && can_4bit(m);
#define ADD(...)                                                                               \
    do {                                                                                       \
        if (n < cap) {                                                                         \
            v[n].o = *o;                                                                       \
            __VA_ARGS__;                                                                       \
            n++;                                                                               \
        }                                                                                      \
    } while (0)
    if (!o->checkpoint) ADD(v[n].o.checkpoint = true; strcpy(v[n].flags, "--grad-checkpoint"));
    if (o->optim != LT_OPTIM_ADAMW_8BIT)
        ADD(v[n].o.optim = LT_OPTIM_ADAMW_8BIT; strcpy(v[n].flags, "--optim adamw_8bit"));
    if (q4) ADD(v[n].o.load_4bit = true; strcpy(v[n].flags, "--load-in-4bit"));
    lt_plan_opts all = *o;
    all.checkpoint = true, all.optim = LT_OPTIM_ADAMW_8BIT, all.load_4bit |= q4;
    const char *all_flags = q4 ? "--grad-checkpoint --optim adamw_8bit --load-in-4bit"
                               : "--grad-checkpoint --optim adamw_8bit";
    ADD(v[n].o = all; snprintf(v[n].flags, sizeof v[n].flags, "%s", all_flags));
    for (int b = o->B / 2; b >= 1; b /= 2) {
        int acc = (o->accum > 0 ? o->accum : 1) * (o->B / b);
        ADD(v[n].o = all; v[n].o.B = b; v[n].o.accum = acc;
            snprintf(v[n].flags, sizeof v[n].flags, "%s --batch %d --accum %d", all_flags, b, acc));
    }
    char bflags[48] = "";
    if (o->B > 1)
        snprintf(bflags, sizeof bflags, " --batch 1 --accum %d", (o->accum > 0 ? o->accum : 1) * o->B);
    for (int t = o->T / 2; t >= 64; t /= 2)
        ADD(v[n].o = all; v[n].o.B = 1; v[n].o.T = t;
            v[n].o.accum = (o->accum > 0 ? o->accum : 1) * o->B;
            snprintf(v[n].flags, sizeof v[n].flags, "%s%s --seq %d", all_flags, bflags, t));
#undef ADD
    return n;
}

static const char *optim_name(lt_optim_kind k) { return k == LT_OPTIM_ADAMW_8BIT ? "adamw_8bit" : "adamw"; }

static void print_table(const char *model, const lt_model *m, const lt_adapter *a,
                        const lt_plan_opts *o, const lt_plan *p, double sgemm, size_t budget) {
    printf("plan: %s (%s, %d layers, hidden %d, vocab %d), batch %d x seq %d, accum %d, %lld LoRA "
           "params, %s%s%s\n",
           model, m->arch.model_type, m->cfg.n_layer, m->cfg.n_embd, m->cfg.n_vocab, o->B, o->T,
           o->accum, (long long)a->n_params, optim_name(o->optim),
           o->checkpoint ? ", grad-checkpoint" : "", o->load_4bit ? ", 4-bit base" : "");
    printf("peak memory (MiB):\n");
    printf("  %-44s %9.1f\n", "process baseline (measured)", mb(p->base));
    printf("  %-44s %9.1f\n", "model loading (measured)", mb(p->model_load));
    printf("  %-44s %9.1f\n", "tokenizer + data (measured)", mb(p->tok_data));
    printf("  %-44s %9.1f\n", o->load_4bit ? "base weights (4-bit projections + rest touched)"
                                           : "base weights touched (mmapped pages)",
           mb(p->weights));
    printf("  %-44s %9.1f\n", "LoRA parameters + gradients", mb(p->lora));
    printf("  %-44s %9.1f\n", o->optim == LT_OPTIM_ADAMW_8BIT ? "optimizer states (8-bit AdamW)"
                                                              : "optimizer states (AdamW, f32)",
           mb(p->optim));
    printf("  %-44s %9.1f\n", o->eval ? "activations + scratch (train + eval contexts)"
                                      : "activations + scratch",
           mb(p->acts));
    printf("  %-44s %9.1f\n", "training loop buffers", mb(p->loop));
    printf("  %-44s %9.1f\n", "total (planned peak RSS)", mb(p->total));
    if (budget)
        printf("available: %.0f MiB (MemAvailable + this process): %s\n", mb(budget),
               p->total <= budget ? "fits" : "DOES NOT FIT");
    if (p->tokens_per_s > 0)
        printf("speed: %.3f GFLOP per token (forward, activation gradients, LoRA, causal attention,\n"
               "  LM head)%s; sgemm %.1f GFLOP/s measured x %.2f efficiency (calibrated on the\n"
               "  bench configs) -> ~%.0f tokens/s, %.2f s per micro-batch step\n",
               p->flops_per_token / 1e9, o->checkpoint ? ", plus the recomputed forward," : "",
               sgemm, p->efficiency, p->tokens_per_s, (double)o->B * o->T / p->tokens_per_s);
}

static cJSON *plan_json(const lt_plan_opts *o, const lt_plan *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch", o->B);
    cJSON_AddNumberToObject(j, "seq", o->T);
    cJSON_AddNumberToObject(j, "accum", o->accum);
    cJSON_AddBoolToObject(j, "grad_checkpoint", o->checkpoint);
    cJSON_AddBoolToObject(j, "load_in_4bit", o->load_4bit);
    cJSON_AddStringToObject(j, "optim", optim_name(o->optim));
    cJSON_AddNumberToObject(j, "base_bytes", (double)p->base);
    cJSON_AddNumberToObject(j, "model_load_bytes", (double)p->model_load);
    cJSON_AddNumberToObject(j, "tok_data_bytes", (double)p->tok_data);
    cJSON_AddNumberToObject(j, "weights_bytes", (double)p->weights);
    cJSON_AddNumberToObject(j, "lora_bytes", (double)p->lora);
    cJSON_AddNumberToObject(j, "optim_bytes", (double)p->optim);
    cJSON_AddNumberToObject(j, "acts_bytes", (double)p->acts);
    cJSON_AddNumberToObject(j, "loop_bytes", (double)p->loop);
    cJSON_AddNumberToObject(j, "total_bytes", (double)p->total);
    cJSON_AddNumberToObject(j, "total_mb", mb(p->total));
    cJSON_AddNumberToObject(j, "flops_per_token", p->flops_per_token);
    cJSON_AddNumberToObject(j, "efficiency", p->efficiency);
    cJSON_AddNumberToObject(j, "tokens_per_s", p->tokens_per_s);
    return j;
}

// Marks the token ids of d (and the padding id) in used (n_vocab).
static void mark_rows(const lt_dataset *d, uint8_t *used, int V) {
    for (int64_t i = 0; i < d->n; i++)
        for (int t = 0; t < d->ex[i].len; t++) {
            int32_t id = d->ex[i].ids[t];
            if (id >= 0 && id < V) used[id] = 1;
        }
}

int cmd_train_plan(const cli_plan_args *a) {
    lt_err err = {0};
    lt_status st = LT_OK;
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_adapter *ad = NULL;
    uint8_t *used = NULL;
    variant *vs = NULL;
    lt_dataset train, val;
    lt_dataset_init(&train);
    lt_dataset_init(&val);
    const lt_train_opts *to = a->train;
    // BLAS and thread buffers first, so the baseline holds them as a training run would
    double sgemm = lt_plan_sgemm_gflops();
    lt_plan_measured ms = {.base = lt_plan_rss_bytes(), .sgemm_gflops = sgemm};
    if ((st = lt_model_load(a->model, &m, &err))) goto fail;
    size_t r1 = lt_plan_rss_bytes();
    ms.model_load = r1 > ms.base ? r1 - ms.base : 0;
    lt_data_format fmt = a->data->read.format == LT_DATA_AUTO ? lt_data_format_guess(a->data->path)
                                                              : a->data->read.format;
    if (fmt != LT_DATA_IDS && (st = cli_open_tokenizer(a->tok_path, a->model, m, &tok, &err)))
        goto fail;
    lt_data_summary sum;
    if ((st = lt_data_load(tok, m->cfg.n_vocab, a->data, &train, &val, &sum, &err))) goto fail;
    size_t r2 = lt_plan_rss_bytes();
    ms.tok_data = r2 > r1 ? r2 - r1 : 0;
    if (train.n == 0) {
        st = lt_err_set(&err, LT_ERR_FORMAT, "%s: no training examples", a->data->path);
        goto fail;
    }
    used = lt_calloc((size_t)m->cfg.n_vocab, 1);
    if (!used) {
        st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    mark_rows(&train, used, m->cfg.n_vocab);
    mark_rows(&val, used, m->cfg.n_vocab);
    int32_t pad = m->cfg.pad_id >= 0 ? m->cfg.pad_id : (m->cfg.eos_id >= 0 ? m->cfg.eos_id : 0);
    if (pad < m->cfg.n_vocab) used[pad] = 1;
    ms.rows_used = used;
    if (a->adapter_in) {
        if ((st = lt_adapter_load_peft(m, a->adapter_in, &ad, &err))) goto fail;
    } else {
        lt_lora_config lc = *a->lora;
        if ((st = lt_lora_parse_targets(m, a->targets, &lc.targets, &err))) goto fail;
        if ((st = lt_adapter_new(m, &lc, (uint64_t)to->seed, &ad, &err))) goto fail;
    }
    lt_plan_opts o = {.B = to->B, .T = to->T, .accum = to->grad_accum > 0 ? to->grad_accum : 1,
                      .checkpoint = to->checkpoint_activations, .load_4bit = a->load_4bit,
                      .double_quant = a->double_quant, .optim = to->optim, .eval = val.n > 0,
                      .n_examples = train.n};
    lt_plan p;
    if ((st = lt_plan_make(m, ad, &o, &ms, &p, &err))) goto fail;
    size_t avail = lt_plan_mem_available();
    const char *env = getenv("LT_MEM_AVAILABLE_MB");
    if (env && *env) avail = (size_t)(atof(env) * 1024 * 1024);
    // what this process holds now (base, model, data) is planned as part of the total
    size_t budget = avail ? avail + lt_plan_rss_bytes() : 0;
    enum { MAXV = 40 };
    vs = lt_calloc(MAXV, sizeof *vs);
    if (!vs) {
        st = lt_err_set(&err, LT_ERR_OOM, "out of memory");
        goto fail;
    }
    int nv = make_variants(m, &o, vs, MAXV);
    for (int i = 0; i < nv; i++)
        if ((st = lt_plan_make(m, ad, &vs[i].o, &ms, &vs[i].p, &err))) goto fail;
    bool fits = !budget || p.total <= budget;
    if (a->json) {
        cJSON *j = plan_json(&o, &p);
        cJSON_AddStringToObject(j, "model", a->model);
        cJSON_AddNumberToObject(j, "lora_params", (double)ad->n_params);
        cJSON_AddNumberToObject(j, "sgemm_gflops", sgemm);
        cJSON_AddNumberToObject(j, "mem_available_bytes", (double)avail);
        cJSON_AddNumberToObject(j, "budget_bytes", (double)budget);
        cJSON_AddBoolToObject(j, "fits", fits);
        cJSON *arr = cJSON_AddArrayToObject(j, "suggestions");
        for (int i = 0; i < nv; i++) {
            cJSON *s = plan_json(&vs[i].o, &vs[i].p);
            cJSON_AddStringToObject(s, "flags", vs[i].flags);
            cJSON_AddBoolToObject(s, "fits", !budget || vs[i].p.total <= budget);
            cJSON_AddItemToArray(arr, s);
        }
        char *txt = cJSON_PrintUnformatted(j);
        if (txt) printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(j);
    } else {
        print_table(a->model, m, ad, &o, &p, sgemm, budget);
        if (!fits) {
            int shown = 0;
            printf("settings that fit (planned peak):\n");
            for (int i = 0; i < nv && shown < 6; i++)
                if (vs[i].p.total <= budget)
                    printf("  %-76s %9.1f MiB\n", vs[i].flags, mb(vs[i].p.total)), shown++;
            if (!shown) {
                int best = 0;
                for (int i = 1; i < nv; i++)
                    if (vs[i].p.total < vs[best].p.total) best = i;
                if (nv)
                    printf("  none of the usual settings fits; the smallest: %s (%.1f MiB)\n",
                           vs[best].flags, mb(vs[best].p.total));
            }
        }
    }
fail: // also the way out on success (st == LT_OK)
    lt_free(vs);
    lt_free(used);
    lt_adapter_free(ad);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    lt_dataset_deinit(&train);
    lt_dataset_deinit(&val);
    return st ? cli_fail(&err) : 0;
}
