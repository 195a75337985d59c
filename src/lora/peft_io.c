/*
 * peft_io.c - PEFT adapter files: adapter_config.json + adapter_model.safetensors.
 * Keys "base_model.model.<module>.lora_A.weight" (r, in) and ".lora_B.weight" (out, r), saved in
 * f32. Loading accepts f32/bf16/f16 tensors and the config fields PEFT writes; anything that
 * changes the math and is not implemented (DoRA, rank/alpha patterns, bias training, regex target
 * strings) is refused with a message rather than silently ignored.
 * Reference: peft/utils/save_and_load.py, peft/tuners/lora/config.py.
 */
#include "core/core.h"
#include "lora/lora.h"

#include <stdio.h>
#include <string.h>

// The classification head as PEFT saves modules_to_save of a *ForSequenceClassification model.
#define SCORE_KEY "base_model.model.score.weight"

lt_status lt_adapter_save_peft(const lt_adapter *a, const lt_model *m, const char *dir,
                               lt_err *err) {
    char path[4096], key[256];
    lt_status st = lt_mkdir_p(dir, err);
    if (st) return st;
    // adapter_model.safetensors
    lt_st_writer *w = lt_st_writer_new();
    if (!w) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    for (int i = 0; i < a->n_mod && !st; i++) {
        const lt_lora_mod *mod = &a->mods[i];
        int64_t sa[2] = {mod->r, mod->in}, sb[2] = {mod->out, mod->r};
        lt_lora_key(mod, false, key, sizeof key);
        st = lt_st_writer_add(w, key, LT_DTYPE_F32, 2, sa, mod->A, err);
        lt_lora_key(mod, true, key, sizeof key);
        if (!st) st = lt_st_writer_add(w, key, LT_DTYPE_F32, 2, sb, mod->B, err);
    }
    if (!st && a->n_labels) {
        int64_t ss[2] = {a->n_labels, m->cfg.n_embd};
        st = lt_st_writer_add(w, SCORE_KEY, LT_DTYPE_F32, 2, ss, a->score, err);
    }
    if (!st) st = lt_st_writer_meta(w, "format", "pt", err);
    lt_quant_info qi;
    if (!st && lt_model_quant_info(m, &qi)) {
        // QLoRA: how the base was quantised when this adapter was trained (as bitsandbytes'
        // load_in_4bit / bnb_4bit_quant_type / bnb_4bit_use_double_quant). PEFT ignores it;
        // loratune reports it, and merges belong on the full-precision base.
        char bs[16];
        snprintf(bs, sizeof bs, "%d", qi.blocksize);
        st = lt_st_writer_meta(w, "loratune.load_in_4bit", "true", err);
        if (!st) st = lt_st_writer_meta(w, "loratune.bnb_4bit_quant_type",
                                         qi.dtype == LT_DTYPE_NF4 ? "nf4" : "fp4", err);
        if (!st) st = lt_st_writer_meta(w, "loratune.bnb_4bit_use_double_quant",
                                         qi.double_quant ? "true" : "false", err);
        if (!st) st = lt_st_writer_meta(w, "loratune.bnb_4bit_blocksize", bs, err);
    }
    if (!st && !lt_path_join(path, sizeof path, dir, "adapter_model.safetensors"))
        st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    if (!st) st = lt_st_writer_write(w, path, err);
    lt_st_writer_free(w);
    if (st) return st;
    // adapter_config.json
    cJSON *j = cJSON_CreateObject(), *tm = cJSON_CreateArray();
    if (!j || !tm) {
        cJSON_Delete(j), cJSON_Delete(tm);
        return lt_err_set(err, LT_ERR_OOM, "out of memory");
    }
    for (int k = 0; k <= LT_MOD_LM_HEAD; k++) { // model names, each once (GPT-2 c_proj twice)
        const char *nm = lt_model_mod_name(m, k);
        bool dup = false;
        for (int k2 = 0; k2 < k; k2++)
            dup |= ((a->cfg.targets >> k2) & 1) && lt_model_mod_name(m, k2) && nm &&
                   !strcmp(lt_model_mod_name(m, k2), nm);
        if (((a->cfg.targets >> k) & 1) && nm && !dup)
            cJSON_AddItemToArray(tm, cJSON_CreateString(nm));
    }
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddStringToObject(j, "base_model_name_or_path", m->src_path ? m->src_path : "");
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", m->arch.conv1d);
    cJSON_AddBoolToObject(j, "inference_mode", true);
    cJSON_AddBoolToObject(j, "init_lora_weights", true);
    if (a->cfg.layer_lo > 0 || a->cfg.layer_hi < m->cfg.n_layer) {
        cJSON *lt = cJSON_CreateArray();
        for (int l = a->cfg.layer_lo; l < a->cfg.layer_hi; l++)
            cJSON_AddItemToArray(lt, cJSON_CreateNumber(l));
        cJSON_AddItemToObject(j, "layers_to_transform", lt);
    } else {
        cJSON_AddNullToObject(j, "layers_to_transform");
    }
    cJSON_AddNumberToObject(j, "lora_alpha", a->cfg.alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", a->cfg.dropout);
    if (a->n_labels) { // PEFT adds these for SEQ_CLS; "score" is the head of *ForSequenceClassification
        cJSON *ms = cJSON_CreateArray();
        cJSON_AddItemToArray(ms, cJSON_CreateString("classifier"));
        cJSON_AddItemToArray(ms, cJSON_CreateString("score"));
        cJSON_AddItemToObject(j, "modules_to_save", ms);
    } else {
        cJSON_AddNullToObject(j, "modules_to_save");
    }
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", a->cfg.r);
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddItemToObject(j, "target_modules", tm);
    cJSON_AddStringToObject(j, "task_type", a->n_labels ? "SEQ_CLS" : "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_dora", false);
    cJSON_AddBoolToObject(j, "use_rslora", a->cfg.rslora);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    if (!lt_path_join(path, sizeof path, dir, "adapter_config.json")) {
        cJSON_free(text);
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    }
    st = lt_write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return st;
}

// The layer number and module kind named by a PEFT key, or false if it names no known module.
static bool parse_key(const char *key, const lt_model *m, int *layer, int *kind, bool *is_b) {
    const char *pre = "base_model.model.";
    if (strncmp(key, pre, strlen(pre))) return false;
    const char *name = key + strlen(pre);
    const char *suf = strstr(name, ".lora_");
    if (!suf) return false;
    if (!strcmp(suf, ".lora_A.weight")) *is_b = false;
    else if (!strcmp(suf, ".lora_B.weight")) *is_b = true;
    else return false;
    size_t n = (size_t)(suf - name);
    if (n == strlen(m->lm_head.name) && !strncmp(name, m->lm_head.name, n)) {
        *layer = -1, *kind = LT_MOD_LM_HEAD;
        return true;
    }
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &m->layers[l].lin[k];
            if (strlen(li->name) == n && !strncmp(li->name, name, n)) {
                *layer = l, *kind = k;
                return true;
            }
        }
    return false;
}

// PEFT (save_embedding_layers="auto") also stores the full base weight of a targeted lm_head
// as "base_model.model.lm_head.base_layer.weight". When it equals the model's own weight it carries
// nothing new; a different one (a resized or retrained head) is refused rather than ignored.
static bool is_saved_base_layer(const lt_st_tensor *t, const lt_model *m) {
    char want[128];
    snprintf(want, sizeof want, "base_model.model.%s.base_layer.weight", m->lm_head.name);
    return !strcmp(t->name, want);
}

static lt_status check_saved_base_layer(const lt_st_tensor *t, const lt_model *m, const char *path,
                                        lt_err *err) {
    const lt_mat *w = &m->lm_head.w;
    if (t->ndim != 2 || t->shape[0] != w->rows || t->shape[1] != w->cols || !lt_dtype_is_float(t->dtype))
        return lt_err_set(err, LT_ERR_SHAPE, "%s: %s has shape [%lld, %lld], the model's lm_head is "
                          "[%lld, %lld]", path, t->name, (long long)t->shape[0],
                          (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)w->rows,
                          (long long)w->cols);
    float *a = lt_alloc(sizeof(float) * (size_t)w->cols), *b = lt_alloc(sizeof(float) * (size_t)w->cols);
    lt_status st = LT_OK;
    if (!a || !b) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    size_t rb = lt_dtype_nbytes(t->dtype, w->cols);
    for (int64_t r = 0; r < w->rows && !st; r++) {
        lt_to_f32(t->dtype, (const char *)t->data + (size_t)r * rb, a, w->cols);
        lt_to_f32(w->dtype, lt_mat_row(w, r), b, w->cols);
        if (memcmp(a, b, sizeof(float) * (size_t)w->cols))
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: %s differs from the base model's lm_head "
                            "(row %lld): adapters that replace the head are not supported",
                            path, t->name, (long long)r);
    }
    lt_free(a), lt_free(b);
    return st;
}

lt_status lt_adapter_load_peft(lt_model *m, const char *dir, lt_adapter **out, lt_err *err) {
    char path[4096];
    cJSON *j = NULL;
    lt_st_set *st_set = NULL;
    lt_adapter *a = NULL;
    lt_status st;
    if (!lt_path_join(path, sizeof path, dir, "adapter_config.json"))
        return lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
    if ((st = lt_json_parse_file(path, &j, err))) return st;
    lt_lora_config cfg = {.layer_lo = 0, .layer_hi = -1};
    const char *pt = lt_json_str(j, "peft_type", "LORA");
    int64_t r;
    if (strcmp(pt, "LORA")) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: peft_type \"%s\" is not LORA", path, pt);
        goto fail;
    }
    if ((st = lt_json_int_req(j, "r", path, &r, err))) goto fail;
    cfg.r = (int)r;
    cfg.alpha = (float)lt_json_num(j, "lora_alpha", 8.0);
    cfg.dropout = (float)lt_json_num(j, "lora_dropout", 0.0);
    cfg.rslora = lt_json_bool(j, "use_rslora", false);
    if (lt_json_bool(j, "use_dora", false)) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: DoRA adapters are not supported", path);
        goto fail;
    }
    if (strcmp(lt_json_str(j, "bias", "none"), "none")) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: bias \"%s\" is not supported (only none)",
                        path, lt_json_str(j, "bias", ""));
        goto fail;
    }
    // fan_in_fan_out only says how the base stores its weights (GPT-2 Conv1D); lora_A/lora_B
    // have nn.Linear shapes either way. It must agree with the model.
    if (lt_json_bool(j, "fan_in_fan_out", false) != m->arch.conv1d) {
        st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: fan_in_fan_out = %s does not match the %s "
                        "model (expected %s)", path, m->arch.conv1d ? "false" : "true",
                        m->arch.model_type, m->arch.conv1d ? "true" : "false");
        goto fail;
    }
    const char *pats[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, pats[i]);
        if (p && cJSON_IsObject(p) && p->child) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: %s is not supported", path, pats[i]);
            goto fail;
        }
    }
    const cJSON *mts = cJSON_GetObjectItemCaseSensitive(j, "modules_to_save");
    if (mts && !cJSON_IsNull(mts)) {
        const cJSON *it;
        bool ok = cJSON_IsArray(mts);
        cJSON_ArrayForEach(it, mts) ok &= cJSON_IsString(it) && (!strcmp(it->valuestring, "score") ||
                                                                 !strcmp(it->valuestring, "classifier"));
        if (!ok) {
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: modules_to_save other than the "
                            "classification head (score) are not supported", path);
            goto fail;
        }
    }
    // the target set comes from the tensors present (PEFT may store a regex in target_modules)
    if (!lt_path_join(path, sizeof path, dir, "adapter_model.safetensors")) {
        st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", dir);
        goto fail;
    }
    if ((st = lt_st_set_open_file(path, &st_set, err))) goto fail;
    int lo = m->cfg.n_layer, hi = -1, n_base = 0;
    for (int i = 0; i < lt_st_set_count(st_set); i++) {
        const lt_st_tensor *t = lt_st_set_at(st_set, i);
        int l, kind;
        bool is_b;
        if (!strcmp(t->name, SCORE_KEY)) {
            if (t->ndim != 2 || t->shape[1] != m->cfg.n_embd || t->shape[0] <= 0 ||
                t->shape[0] > 1 << 20 || !lt_dtype_is_float(t->dtype)) {
                st = lt_err_set(err, LT_ERR_SHAPE, "%s: %s should be a float (num_labels, %d) matrix",
                                path, t->name, m->cfg.n_embd);
                goto fail;
            }
            cfg.n_labels = (int)t->shape[0];
            n_base++;
            continue;
        }
        if (is_saved_base_layer(t, m)) {
            if ((st = check_saved_base_layer(t, m, path, err))) goto fail;
            n_base++;
            continue;
        }
        if (!parse_key(t->name, m, &l, &kind, &is_b)) {
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: tensor \"%s\" names no LoRA module of this %s "
                            "model", path, t->name, m->arch.model_type);
            goto fail;
        }
        cfg.targets |= 1u << kind;
        if (kind != LT_MOD_LM_HEAD) {
            if (l < lo) lo = l;
            if (l > hi) hi = l;
        }
    }
    if (!cfg.targets) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: no LoRA tensors in the file", path);
        goto fail;
    }
    if (hi >= 0) cfg.layer_lo = lo, cfg.layer_hi = hi + 1;
    if ((st = lt_adapter_new(m, &cfg, 0, &a, err))) goto fail;
    if (lt_st_set_count(st_set) - n_base != 2 * a->n_mod) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: %d tensors, but the modules they name need %d "
                        "(each module needs lora_A and lora_B in every adapted layer)",
                        path, lt_st_set_count(st_set) - n_base, 2 * a->n_mod);
        goto fail;
    }
    for (int i = 0; i < a->n_mod; i++) {
        lt_lora_mod *mod = &a->mods[i];
        for (int b = 0; b < 2; b++) {
            char key[256];
            lt_lora_key(mod, b, key, sizeof key);
            int64_t shape[2] = {b ? mod->out : mod->r, b ? mod->r : mod->in};
            const lt_st_tensor *t;
            if ((st = lt_st_set_get(st_set, key, 2, shape, &t, err))) goto fail;
            lt_to_f32(t->dtype, t->data, b ? mod->B : mod->A, shape[0] * shape[1]);
        }
    }
    if (a->n_labels) {
        const lt_st_tensor *t = lt_st_set_find(st_set, SCORE_KEY);
        lt_to_f32(t->dtype, t->data, a->score, (int64_t)a->n_labels * m->cfg.n_embd);
    }
    lt_st_set_close(st_set);
    cJSON_Delete(j);
    *out = a;
    return LT_OK;
fail:
    lt_adapter_free(a);
    lt_st_set_close(st_set);
    cJSON_Delete(j);
    return st;
}
