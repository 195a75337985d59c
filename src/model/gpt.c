/*
 * gpt.c - GPT-2 and GPT-NeoX models from Hugging Face directories, mapped onto the one
 * transformer of forward.c by their architecture record:
 *   GPT-2:   LayerNorm, learned positions, fused c_attn [q|k|v], GELU (tanh) MLP, sequential
 *            residual, tied head; Conv1D weights stored (in, out) are transposed once at load
 *            into (out, in) in their own dtype (PEFT's lora_A/lora_B keep nn.Linear shapes).
 *   GPT-NeoX: LayerNorm, partial rotary (rotary_pct / partial_rotary_factor), fused
 *            query_key_value with per-head [q k v] groups, GELU (erf) MLP, parallel residual,
 *            untied embed_out.
 * Names and config keys: transformers' modeling_gpt2.py, modeling_gpt_neox.py.
 */
#include "core/core.h"
#include "model/model_impl.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    lt_model *m;
    const char *prefix; // "transformer." (or "" for old GPT-2 files), "gpt_neox."
    float *cur;         // small f32 storage cursor
} gl;

static lt_status vec(gl *g, const char *name, int64_t n, const float **out, lt_err *err) {
    char full[200];
    snprintf(full, sizeof full, "%s%s", g->prefix, name);
    const lt_st_tensor *t;
    lt_status st = lt_st_set_get(g->m->st, full, 1, &n, &t, err);
    if (st) return st;
    lt_to_f32(t->dtype, t->data, g->cur, n);
    *out = g->cur;
    g->cur += n;
    return LT_OK;
}

static lt_status mat(gl *g, const char *name, int64_t rows, int64_t cols, lt_mat *out, lt_err *err) {
    char full[200];
    snprintf(full, sizeof full, "%s%s", g->prefix, name);
    const lt_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    lt_status st = lt_st_set_get(g->m->st, full, 2, shape, &t, err);
    if (st) return st;
    if (!lt_mat_init(out, t->dtype, rows, cols, t->data))
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: dtype %s cannot be used as a matrix", full,
                          lt_dtype_name(t->dtype));
    return LT_OK;
}

// A Conv1D weight stored (in, out): copied transposed to (out, in) at *own (same dtype).
static lt_status conv1d(gl *g, const char *name, int64_t in, int64_t out, char **own, lt_mat *dst,
                        lt_err *err) {
    lt_mat src;
    lt_status st = mat(g, name, in, out, &src, err);
    if (st) return st;
    if (lt_dtype_block(src.dtype) != 1)
        return lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: a Conv1D weight in %s", name, lt_dtype_name(src.dtype));
    size_t es = lt_dtype_nbytes(src.dtype, 1);
    const char *s = src.data;
    char *d = *own;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) memcpy(d + ((size_t)o * (size_t)in + (size_t)i) * es, s + ((size_t)i * (size_t)out + (size_t)o) * es, es);
    lt_mat_init(dst, src.dtype, out, in, d);
    *own += (size_t)in * (size_t)out * es;
    return LT_OK;
}

static lt_status parse_config(const char *path, const cJSON *j, lt_model *m, lt_err *err) {
    lt_status st = LT_OK;
    lt_config *c = &m->cfg;
    lt_arch *a = &m->arch;
    const char *mt = lt_json_str(j, "model_type", "");
    snprintf(a->model_type, sizeof a->model_type, "%s", mt);
    a->norm = LT_NORM_LAYER;
    a->mlp = LT_MLP_GELU;
    c->bos_id = (int)lt_json_int(j, "bos_token_id", -1);
    c->eos_id = (int)lt_json_int(j, "eos_token_id", -1);
    c->pad_id = (int)lt_json_int(j, "pad_token_id", -1);
    if (!strcmp(mt, "gpt2")) {
        a->pos = LT_POS_LEARNED;
        a->qkv = LT_QKV_FUSED;
        a->conv1d = true;
        a->tied_head = lt_json_bool(j, "tie_word_embeddings", true);
        c->n_embd = (int)lt_json_int(j, "n_embd", 0);
        c->n_layer = (int)lt_json_int(j, "n_layer", 0);
        c->n_head = (int)lt_json_int(j, "n_head", 0);
        c->n_vocab = (int)lt_json_int(j, "vocab_size", 0);
        c->max_pos = (int)lt_json_int(j, "n_positions", lt_json_int(j, "n_ctx", 1024));
        c->norm_eps = (float)lt_json_num(j, "layer_norm_epsilon", 1e-5);
        const cJSON *ni = cJSON_GetObjectItemCaseSensitive(j, "n_inner");
        c->n_ff = cJSON_IsNumber(ni) ? (int)ni->valuedouble : 4 * c->n_embd;
        const char *act = lt_json_str(j, "activation_function", "gelu_new");
        a->gelu_tanh = strcmp(act, "gelu") != 0;
        if (strcmp(act, "gelu_new") && strcmp(act, "gelu") && strcmp(act, "gelu_pytorch_tanh"))
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: activation_function \"%s\" is not supported", path, act);
        if (lt_json_bool(j, "scale_attn_by_inverse_layer_idx", false) || lt_json_bool(j, "reorder_and_upcast_attn", false) ||
            !lt_json_bool(j, "scale_attn_weights", true))
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: non-default GPT-2 attention scaling is not supported", path);
        c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
        c->rot_dim = 2; // unused (learned positions); keeps the config check simple
        c->rope_theta = 10000.0f;
    } else {
        a->pos = LT_POS_ROPE;
        a->qkv = LT_QKV_FUSED_HEADS;
        a->tied_head = lt_json_bool(j, "tie_word_embeddings", false);
        a->parallel_residual = lt_json_bool(j, "use_parallel_residual", true);
        c->n_embd = (int)lt_json_int(j, "hidden_size", 0);
        c->n_layer = (int)lt_json_int(j, "num_hidden_layers", 0);
        c->n_head = (int)lt_json_int(j, "num_attention_heads", 0);
        c->n_vocab = (int)lt_json_int(j, "vocab_size", 0);
        c->n_ff = (int)lt_json_int(j, "intermediate_size", 4 * c->n_embd);
        c->max_pos = (int)lt_json_int(j, "max_position_embeddings", 2048);
        c->norm_eps = (float)lt_json_num(j, "layer_norm_eps", 1e-5);
        double pct = lt_json_num(j, "rotary_pct", 0.25);
        c->rope_theta = (float)lt_json_num(j, "rotary_emb_base", lt_json_num(j, "rope_theta", 10000.0));
        const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
        if (cJSON_IsObject(rp)) {
            pct = lt_json_num(rp, "partial_rotary_factor", pct);
            c->rope_theta = (float)lt_json_num(rp, "rope_theta", c->rope_theta);
            if (strcmp(lt_json_str(rp, "rope_type", "default"), "default"))
                st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: rope_type \"%s\" is not supported yet", path,
                                lt_json_str(rp, "rope_type", ""));
        }
        const char *act = lt_json_str(j, "hidden_act", "gelu");
        a->gelu_tanh = !strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast");
        if (!a->gelu_tanh && strcmp(act, "gelu"))
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported", path, act);
        if (!lt_json_bool(j, "attention_bias", true))
            st = lt_err_set(err, LT_ERR_UNSUPPORTED, "%s: attention_bias=false is not supported", path);
        c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
        c->rot_dim = (int)((double)c->head_dim * pct);
        c->rot_dim -= c->rot_dim % 2;
        if (c->rot_dim <= 0) c->rot_dim = 2;
    }
    c->n_head_kv = c->n_head;
    if (!st && (c->n_head <= 0 || c->n_embd % c->n_head))
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: hidden size %d is not a multiple of %d heads", path, c->n_embd, c->n_head);
    if (!st) st = lt_model_check_config(c, path, err);
    return st;
}

// module slots: Q = fused qkv, O = attention output, UP / DOWN = MLP; K, V, GATE empty
static const char *g2n[] = {"attn.c_attn", "", "", "attn.c_proj", "", "mlp.c_fc", "mlp.c_proj"};
static const char *nxn[] = {"attention.query_key_value", "", "", "attention.dense", "",
                            "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};

void lt_model_gpt_slots(lt_model *m) {
    bool g2 = m->arch.qkv == LT_QKV_FUSED;
    int C = m->cfg.n_embd, F = m->cfg.n_ff;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &m->layers[l].lin[k];
            const char *nm = g2 ? g2n[k] : nxn[k];
            if (!nm[0]) {
                li->in = li->out = 0;
                li->name[0] = 0;
                continue;
            }
            snprintf(li->name, sizeof li->name, "%s%s.%d.%s", g2 ? "transformer." : "gpt_neox.",
                     g2 ? "h" : "layers", l, nm);
            li->in = k == LT_MOD_DOWN ? F : C;
            li->out = k == LT_MOD_Q ? 3 * C : k == LT_MOD_UP ? F : C;
        }
    snprintf(m->lm_head.name, sizeof m->lm_head.name, "%s", g2 ? "lm_head" : "embed_out");
}

lt_status lt_model_load_hf_gpt(const char *dir, const char *config_path, const cJSON *config,
                               lt_model **out, lt_err *err) {
    lt_model *m = lt_calloc(1, sizeof *m);
    if (!m) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    lt_status st;
    if ((st = parse_config(config_path, config, m, err))) goto fail;
    if ((st = lt_st_set_open_dir(dir, &m->st, err))) goto fail;
    const lt_config *c = &m->cfg;
    bool g2 = m->arch.qkv == LT_QKV_FUSED;
    int64_t C = c->n_embd, F = c->n_ff, L = c->n_layer;
    // small f32 storage: 2 norms (w, b) per layer + final, biases of 4 linears per layer
    size_t n_small = (size_t)(C * (4 * L + 2) + L * (3 * C + C + F + C));
    if ((st = lt_model_alloc(m, n_small, err))) goto fail;
    m->src_path = lt_strdup(dir);
    if (!m->src_path) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    gl g = {.m = m, .cur = m->small};
    if (g2) g.prefix = lt_st_set_find(m->st, "transformer.wte.weight") ? "transformer." : "";
    else g.prefix = "gpt_neox.";
    char name[160];
    lt_model_gpt_slots(m);
    if ((st = mat(&g, g2 ? "wte.weight" : "embed_in.weight", c->n_vocab, C, &m->tok_embd, err))) goto fail;
    if (g2 && (st = mat(&g, "wpe.weight", c->max_pos, C, &m->pos_embd, err))) goto fail;
    const char *fn = g2 ? "ln_f" : "final_layer_norm";
    snprintf(name, sizeof name, "%s.weight", fn);
    if ((st = vec(&g, name, C, &m->final_norm, err))) goto fail;
    snprintf(name, sizeof name, "%s.bias", fn);
    if ((st = vec(&g, name, C, &m->final_norm_b, err))) goto fail;
    if (m->arch.tied_head) m->lm_head.w = m->tok_embd;
    else {
        const char *save = g.prefix;
        g.prefix = "";
        st = mat(&g, g2 ? "lm_head.weight" : "embed_out.weight", c->n_vocab, C, &m->lm_head.w, err);
        g.prefix = save;
        if (st) goto fail;
    }
    if (g2) { // owned (out, in) copies of the Conv1D weights
        size_t es = 4;
        snprintf(name, sizeof name, "%sh.0.attn.c_attn.weight", g.prefix);
        const lt_st_tensor *t0 = lt_st_set_find(m->st, name);
        if (t0) es = lt_dtype_nbytes(t0->dtype, 1);
        size_t per = (size_t)(3 * C * C + C * C + 2 * C * F);
        m->owned = lt_alloc(per * (size_t)L * (es ? es : 4));
        if (!m->owned) { st = lt_err_set(err, LT_ERR_OOM, "out of memory"); goto fail; }
    }
    char *own = m->owned;
    for (int l = 0; l < L; l++) {
        lt_layer *Ly = &m->layers[l];
        const char *ln1 = g2 ? "ln_1" : "input_layernorm", *ln2 = g2 ? "ln_2" : "post_attention_layernorm";
        const char *lp = g2 ? "h" : "layers";
        snprintf(name, sizeof name, "%s.%d.%s.weight", lp, l, ln1);
        if ((st = vec(&g, name, C, &Ly->attn_norm, err))) goto fail;
        snprintf(name, sizeof name, "%s.%d.%s.bias", lp, l, ln1);
        if ((st = vec(&g, name, C, &Ly->attn_norm_b, err))) goto fail;
        snprintf(name, sizeof name, "%s.%d.%s.weight", lp, l, ln2);
        if ((st = vec(&g, name, C, &Ly->ffn_norm, err))) goto fail;
        snprintf(name, sizeof name, "%s.%d.%s.bias", lp, l, ln2);
        if ((st = vec(&g, name, C, &Ly->ffn_norm_b, err))) goto fail;
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            lt_linear *li = &Ly->lin[k];
            if (!li->out) continue;
            const char *nm = g2 ? g2n[k] : nxn[k];
            snprintf(name, sizeof name, "%s.%d.%s.weight", lp, l, nm);
            if (g2) st = conv1d(&g, name, li->in, li->out, &own, &li->w, err);
            else st = mat(&g, name, li->out, li->in, &li->w, err);
            if (st) goto fail;
            snprintf(name, sizeof name, "%s.%d.%s.bias", lp, l, nm);
            if ((st = vec(&g, name, li->out, &li->b, err))) goto fail;
        }
    }
    LT_ASSERT(g.cur <= m->small + n_small);
    *out = m;
    return LT_OK;
fail:
    lt_model_free(m);
    return st;
}
