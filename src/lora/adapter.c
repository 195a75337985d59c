/*
 * adapter.c - creating, attaching and describing LoRA adapters (Hu et al. 2021, "LoRA:
 * Low-Rank Adaptation of Large Language Models"; rsLoRA: Kalajdzievski 2023, scale alpha/sqrt(r)).
 * Initialisation as PEFT's LoraLayer.reset_lora_parameters(init_lora_weights=True):
 * nn.init.kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)); B = 0.
 * The random stream is loratune's own (seeded), not torch's: golden tests load PEFT's weights.
 */
#include "core/core.h"
#include "lora/lora.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

lt_status lt_lora_parse_targets(const lt_model *m, const char *list, uint32_t *out, lt_err *err) {
    uint32_t mask = 0;
    const char *p = list;
    char known[256] = "";
    for (int k = 0; k <= LT_MOD_LM_HEAD; k++) {
        const char *nm = lt_model_mod_name(m, k);
        if (nm && !strstr(known, nm)) {
            size_t l = strlen(known);
            snprintf(known + l, sizeof known - l, "%s%s", l ? ", " : "", nm);
        }
    }
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && *p == ' ') p++, n--;
        while (n && p[n - 1] == ' ') n--;
        if (n == 3 && !strncmp(p, "all", 3)) {
            for (int k = 0; k < LT_MOD_PER_LAYER; k++)
                if (lt_model_mod_name(m, k)) mask |= 1u << k;
        } else if (n) {
            uint32_t hit = 0;
            for (int k = 0; k <= LT_MOD_LM_HEAD; k++) {
                const char *nm = lt_model_mod_name(m, k);
                if (nm && strlen(nm) == n && !strncmp(p, nm, n)) hit |= 1u << k;
            }
            if (!hit)
                return lt_err_set(err, LT_ERR_ARG, "unknown LoRA target \"%.*s\" for this %s model "
                                  "(known: %s, all)", (int)n, p, m->arch.model_type, known);
            mask |= hit;
        }
        if (!e) break;
        p = e + 1;
    }
    if (!mask) return lt_err_set(err, LT_ERR_ARG, "no LoRA target modules given");
    *out = mask;
    return LT_OK;
}

static void detach(lt_adapter *a) {
    for (int i = 0; i < a->n_mod; i++)
        if (a->mods[i].lin && a->mods[i].lin->lora == &a->mods[i]) a->mods[i].lin->lora = NULL;
}

void lt_adapter_free(lt_adapter *a) {
    if (!a) return;
    detach(a);
    lt_free(a->mods);
    lt_free_aligned(a->params);
    lt_free_aligned(a->grads);
    lt_free(a);
}

void lt_adapter_zero_grad(lt_adapter *a) {
    memset(a->grads, 0, sizeof(float) * (size_t)a->n_params);
}

lt_status lt_adapter_new(lt_model *m, const lt_lora_config *cfg, uint64_t seed, lt_adapter **out,
                         lt_err *err) {
    const lt_config *c = &m->cfg;
    int hi = cfg->layer_hi < 0 || cfg->layer_hi > c->n_layer ? c->n_layer : cfg->layer_hi;
    int lo = cfg->layer_lo < 0 ? 0 : cfg->layer_lo;
    if (cfg->r <= 0 || cfg->r > 65536)
        return lt_err_set(err, LT_ERR_ARG, "LoRA rank r = %d is not in 1..65536", cfg->r);
    if (!(cfg->alpha > 0)) return lt_err_set(err, LT_ERR_ARG, "lora_alpha must be > 0");
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return lt_err_set(err, LT_ERR_ARG, "lora_dropout %g is not in [0, 1)", (double)cfg->dropout);
    if (!cfg->targets) return lt_err_set(err, LT_ERR_ARG, "no LoRA target modules");
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++)
            if (m->layers[l].lin[k].lora)
                return lt_err_set(err, LT_ERR_ARG, "the model already has an adapter attached");
    lt_adapter *a = lt_calloc(1, sizeof *a);
    if (!a) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    a->cfg = *cfg;
    a->cfg.layer_lo = lo, a->cfg.layer_hi = hi;
    int n = 0;
    for (int l = lo; l < hi; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) n += ((cfg->targets >> k) & 1) && m->layers[l].lin[k].out;
    bool head = (cfg->targets >> LT_MOD_LM_HEAD) & 1;
    n += head;
    a->mods = lt_calloc((size_t)n, sizeof *a->mods);
    if (!a->mods) goto oom;
    float scale = cfg->rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;
    int64_t np = 0;
    a->min_layer = c->n_layer;
    for (int l = lo; l <= hi; l++) {
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li;
            if (l == hi) { // lm_head after the blocks
                if (k > 0 || !head) break;
                li = &m->lm_head;
            } else {
                if (!((cfg->targets >> k) & 1) || !m->layers[l].lin[k].out) continue;
                li = &m->layers[l].lin[k];
                if (l < a->min_layer) a->min_layer = l;
            }
            lt_lora_mod *mod = &a->mods[a->n_mod];
            mod->lin = li;
            mod->in = li->in, mod->out = li->out, mod->r = cfg->r;
            mod->scale = scale;
            mod->dropout = cfg->dropout;
            mod->id = a->n_mod++;
            np += (int64_t)cfg->r * (li->in + li->out);
        }
    }
    LT_ASSERT(a->n_mod == n);
    if (cfg->n_labels < 0 || cfg->n_labels > 1 << 20) {
        lt_adapter_free(a);
        return lt_err_set(err, LT_ERR_ARG, "number of labels %d is not valid", cfg->n_labels);
    }
    a->n_labels = cfg->n_labels;
    np += (int64_t)cfg->n_labels * c->n_embd;
    a->n_params = np;
    a->params = lt_alloc_aligned(sizeof(float) * (size_t)np);
    a->grads = lt_alloc_aligned(sizeof(float) * (size_t)np);
    if (!a->params || !a->grads) goto oom;
    memset(a->grads, 0, sizeof(float) * (size_t)np);
    lt_rng rng;
    lt_rng_seed(&rng, seed);
    float *p = a->params, *g = a->grads;
    for (int i = 0; i < a->n_mod; i++) {
        lt_lora_mod *mod = &a->mods[i];
        size_t na = (size_t)mod->r * (size_t)mod->in, nb = (size_t)mod->out * (size_t)mod->r;
        mod->A = p, mod->gA = g;
        mod->B = p + na, mod->gB = g + na;
        float bound = 1.0f / sqrtf((float)mod->in);
        for (size_t j = 0; j < na; j++) mod->A[j] = (2.0f * lt_rng_uniform(&rng) - 1.0f) * bound;
        memset(mod->B, 0, nb * sizeof(float));
        p += na + nb, g += na + nb;
        mod->lin->lora = mod;
    }
    if (a->n_labels) { // transformers _init_weights: normal(0, initializer_range = 0.02)
        a->score = p, a->gscore = g;
        for (int64_t j = 0; j < (int64_t)a->n_labels * c->n_embd; j++) a->score[j] = 0.02f * lt_rng_normal(&rng);
    }
    *out = a;
    return LT_OK;
oom:
    lt_adapter_free(a);
    return lt_err_set(err, LT_ERR_OOM, "out of memory allocating the adapter");
}

static void fmt_thousands(char *buf, size_t n, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
}

void lt_adapter_describe(const lt_adapter *a, const lt_model *m, char *buf, size_t n) {
    int64_t all = lt_model_n_params(m) + a->n_params;
    char t[32], al[32];
    fmt_thousands(t, sizeof t, a->n_params);
    fmt_thousands(al, sizeof al, all);
    snprintf(buf, n, "trainable params: %s || all params: %s || trainable%%: %.4f", t, al,
             100.0 * (double)a->n_params / (double)all);
}

void lt_lora_key(const lt_lora_mod *mod, bool is_b, char *buf, size_t n) {
    snprintf(buf, n, "base_model.model.%s.lora_%c.weight", mod->lin->name, is_b ? 'B' : 'A');
}
