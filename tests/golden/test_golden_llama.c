/*
 * test_golden_llama.c - loratune against transformers + PEFT (fixtures from tools/make_golden.py)
 * for the llama, mistral (sliding window 8 < T) and qwen2 (q/k/v bias, tied head, rsLoRA)
 * families, with weights stored in F32, BF16 and F16 respectively, and GPT-2 (F32: Conv1D,
 * fused c_attn, learned positions, LayerNorm, GELU tanh, tied head) and GPT-NeoX (BF16: fused
 * per-head query_key_value, partial rotary, parallel residual, GELU erf):
 *  - loads the PEFT-written adapter (interop PEFT -> loratune),
 *  - logits, loss and every LoRA gradient of one batch (with and without recomputation),
 *  - 10 AdamW steps (cosine warmup schedule, clipping, 2 accumulated micro-batches) through the
 *    real training loop: per-step losses and the final LoRA weights,
 *  - a run stopped after 5 steps and resumed equals the uninterrupted run exactly,
 *  - save -> load of the PEFT files is lossless.
 *
 * Tolerances. The reference runs in float32 from the same stored weights, so differences come
 * only from summation order (BLAS blocking vs torch's kernels): ~1e-6 relative per dot product of
 * length <= 128, amplified through 2 blocks and softmax. We allow 1e-4 absolute on logits of
 * magnitude ~1-10 (100x the observed float noise) and, for gradients, 1e-4 of the largest gradient
 * magnitude plus 1e-3 relative. After 10 Adam steps, updates are normalised (m/sqrt(v)), so a
 * gradient component near zero can change its update by O(lr) from noise alone; 2e-4 absolute on
 * weights of magnitude ~0.1 (lr 5e-3) still catches any real error (a wrong sign or scale moves
 * weights by ~lr per step).
 */
#include "io/io.h"
#include "lora/lora.h"
#include "test.h"
#include "train/train.h"

#include <unistd.h>

static const float *tensor_f32(lt_safetensors *g, const char *name, int64_t numel) {
    const lt_st_tensor *t = lt_safetensors_find(g, name);
    CHECK_MSG(t && t->dtype == LT_DTYPE_F32 && t->numel == numel, "tensor %s", name);
    return t && t->dtype == LT_DTYPE_F32 && t->numel == numel ? (const float *)t->data : NULL;
}

static const int32_t *tensor_i32(lt_safetensors *g, const char *name, int64_t numel) {
    const lt_st_tensor *t = lt_safetensors_find(g, name);
    CHECK_MSG(t && t->dtype == LT_DTYPE_I32 && t->numel == numel, "tensor %s", name);
    return t && t->dtype == LT_DTYPE_I32 && t->numel == numel ? (const int32_t *)t->data : NULL;
}

static float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

// Compares every LoRA gradient (or weight) of the adapter with "<prefix><peft key>" in g.
static void check_lora(lt_safetensors *g, const lt_adapter *a, const char *prefix, bool grads,
                       double atol_frac, double atol_min, double rtol) {
    char key[300], name[340];
    float worst = 0;
    int bad = 0;
    for (int i = 0; i < a->n_mod; i++) {
        const lt_lora_mod *mod = &a->mods[i];
        for (int b = 0; b < 2; b++) {
            lt_lora_key(mod, b, key, sizeof key);
            snprintf(name, sizeof name, "%s%s", prefix, key);
            int64_t n = (int64_t)mod->r * (b ? mod->out : mod->in);
            const float *ref = tensor_f32(g, name, n);
            if (!ref) continue;
            const float *got = grads ? (b ? mod->gB : mod->gA) : (b ? mod->B : mod->A);
            double atol = atol_frac * max_abs(ref, n);
            if (atol < atol_min) atol = atol_min;
            int before = t_fail;
            CHECK_CLOSE(name, got, ref, n, atol, rtol);
            bad += t_fail > before;
            (void)worst;
        }
    }
    CHECK_MSG(bad == 0, "%d LoRA tensors (%s) differ from the reference", bad, prefix);
}

static void train_opts(lt_safetensors *g, lt_train_opts *o) {
    lt_train_opts_default(o);
    o->lr = (float)atof(lt_safetensors_meta(g, "lr"));
    o->beta1 = (float)atof(lt_safetensors_meta(g, "beta1"));
    o->beta2 = (float)atof(lt_safetensors_meta(g, "beta2"));
    o->eps = (float)atof(lt_safetensors_meta(g, "eps"));
    o->weight_decay = (float)atof(lt_safetensors_meta(g, "weight_decay"));
    o->max_grad_norm = (float)atof(lt_safetensors_meta(g, "max_grad_norm"));
    o->warmup_steps = atoi(lt_safetensors_meta(g, "warmup"));
    o->max_steps = atoi(lt_safetensors_meta(g, "total_steps"));
    o->grad_accum = atoi(lt_safetensors_meta(g, "accum"));
    o->B = atoi(lt_safetensors_meta(g, "B"));
    o->T = atoi(lt_safetensors_meta(g, "T"));
    o->sched = LT_SCHED_COSINE;
    o->quiet = true;
}

// The training examples: the rows of both fixture micro-batches, unpadded. Since the step loss is
// normalised over the whole accumulation window, the order of examples inside a step does not
// change the gradient, and with 4 examples = 1 step per epoch every step sees all of them.
static void train_data(lt_safetensors *g, int B, int T, lt_dataset *d) {
    lt_err err;
    for (int mb = 0; mb < 2; mb++) {
        char n1[64], n2[64], n3[64];
        snprintf(n1, sizeof n1, "train_input_ids.%d", mb);
        snprintf(n2, sizeof n2, "train_labels.%d", mb);
        snprintf(n3, sizeof n3, "train_attention_mask.%d", mb);
        const int32_t *ids = tensor_i32(g, n1, (int64_t)B * T), *lab = tensor_i32(g, n2, (int64_t)B * T),
                      *km = tensor_i32(g, n3, (int64_t)B * T);
        if (!ids || !lab || !km) return;
        for (int b = 0; b < B; b++) {
            int len = 0;
            while (len < T && km[b * T + len]) len++;
            CHECK_OK(lt_dataset_add(d, ids + b * T, lab + b * T, len, T, &err), &err);
        }
    }
}

static void read_losses(const char *path, double *loss, int n) {
    char *text;
    size_t len;
    lt_err err;
    for (int i = 0; i < n; i++) loss[i] = NAN;
    if (lt_read_file(path, &text, &len, &err)) return;
    char *p = text;
    while ((p = strstr(p, "{\"step\": "))) {
        int step = atoi(p + 9);
        char *l = strstr(p, "\"loss\": "), *e = strchr(p, '\n');
        if (l && (!e || l < e) && step >= 1 && step <= n) loss[step - 1] = atof(l + 8);
        p += 9;
    }
    lt_free(text);
}

static void run_family(const char *fam) {
    char dir[256], path[300], tmp[256];
    lt_err err = {0};
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_safetensors *g = NULL;
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fam);
    fprintf(stderr, "--- %s\n", fam);
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK_OK(lt_model_load(path, &m, &err), &err);
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    CHECK_OK(lt_safetensors_open(path, &g, &err), &err);
    if (!m || !g) goto out;
    snprintf(path, sizeof path, "%s/adapter", dir);
    CHECK_OK(lt_adapter_load_peft(m, path, &a, &err), &err);
    if (!a) goto out;
    CHECK((float)atof(lt_safetensors_meta(g, "scaling")) == a->mods[0].scale);
    int B = atoi(lt_safetensors_meta(g, "B")), T = atoi(lt_safetensors_meta(g, "T"));
    int V = m->cfg.n_vocab;
    const int32_t *ids = tensor_i32(g, "input_ids", (int64_t)B * T);
    const int32_t *km = tensor_i32(g, "attention_mask", (int64_t)B * T);
    const int32_t *lab = tensor_i32(g, "labels", (int64_t)B * T);
    const float *ref_logits = tensor_f32(g, "logits", (int64_t)B * T * V);
    const float *ref_loss = tensor_f32(g, "loss", 1);
    if (!ids || !km || !lab || !ref_logits || !ref_loss) goto out;
    lt_batch b = {.ids = ids, .labels = lab, .kmask = km};

    for (int ck = 0; ck < 2; ck++) {
        lt_ctx *c = NULL;
        lt_ctx_opts co = {.B = B, .T = T, .train = true, .checkpoint = ck == 1};
        CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
        if (!c) goto out;
        float *logits = malloc(sizeof(float) * (size_t)(B * T * V));
        CHECK_OK(lt_model_logits(m, c, &b, logits, &err), &err);
        if (ck == 0) CHECK_CLOSE("logits", logits, ref_logits, (int64_t)B * T * V, 1e-4, 1e-4);
        free(logits);
        int64_t ntgt = lt_batch_n_targets(&b, B, T);
        double sum = 0;
        lt_adapter_zero_grad(a);
        CHECK_OK(lt_model_train_step(m, c, &b, 1.0f / (float)ntgt, 0, 0, &sum, &err), &err);
        float loss = (float)(sum / (double)ntgt);
        CHECK_CLOSE(ck ? "loss (recomputed blocks)" : "loss", &loss, ref_loss, 1, 1e-5, 1e-5);
        check_lora(g, a, "grad.", true, 1e-4, 1e-7, 1e-3);
        double ev;
        CHECK_OK(lt_model_eval_loss(m, c, &b, &ev, &err), &err);
        CHECK(fabs(ev - sum) <= 1e-6 * fabs(sum));
        lt_ctx_free(c);
    }

    // PEFT save -> load round trip
    snprintf(tmp, sizeof tmp, "/tmp/lt_golden_%s_%d", fam, (int)getpid());
    CHECK_OK(lt_adapter_save_peft(a, m, tmp, &err), &err);
    float *orig = malloc(sizeof(float) * (size_t)a->n_params);
    memcpy(orig, a->params, sizeof(float) * (size_t)a->n_params);
    int64_t np = a->n_params;
    lt_adapter_free(a);
    a = NULL;
    CHECK_OK(lt_adapter_load_peft(m, tmp, &a, &err), &err);
    if (!a) { free(orig); goto out; }
    CHECK(a->n_params == np && memcmp(a->params, orig, sizeof(float) * (size_t)np) == 0);

    // 10 training steps through lt_train
    lt_train_opts o;
    train_opts(g, &o);
    lt_dataset d;
    lt_dataset_init(&d);
    train_data(g, o.B, o.T, &d);
    CHECK(d.n == (int64_t)o.B * o.grad_accum);
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", tmp);
    o.out_dir = tmp;
    o.metrics_path = mpath;
    lt_train_result res;
    CHECK_OK(lt_train(m, a, &d, NULL, &o, &res, &err), &err);
    CHECK(res.steps == o.max_steps);
    const float *ref_tl = tensor_f32(g, "train_loss", o.max_steps);
    double losses[64];
    read_losses(mpath, losses, (int)o.max_steps);
    if (ref_tl) {
        float got[64];
        for (int i = 0; i < o.max_steps; i++) got[i] = (float)losses[i];
        CHECK_CLOSE("train losses (10 steps)", got, ref_tl, o.max_steps, 1e-5, 1e-5);
    }
    check_lora(g, a, "final.", false, 0, 2e-4, 0);
    float *final = malloc(sizeof(float) * (size_t)np);
    memcpy(final, a->params, sizeof(float) * (size_t)np);

    // killed after 5 steps (checkpoint at 4), resumed: identical to the uninterrupted run
    memcpy(a->params, orig, sizeof(float) * (size_t)np);
    o.save_every = 2;
    o.stop_after = 5;
    CHECK_OK(lt_train(m, a, &d, NULL, &o, &res, &err), &err);
    CHECK(res.steps == 5);
    memcpy(a->params, orig, sizeof(float) * (size_t)np); // the "new process" starts fresh
    o.stop_after = 0;
    o.resume = true;
    CHECK_OK(lt_train(m, a, &d, NULL, &o, &res, &err), &err);
    CHECK(res.steps == o.max_steps);
    CHECK_MSG(memcmp(a->params, final, sizeof(float) * (size_t)np) == 0,
              "resumed run differs from the uninterrupted one");
    read_losses(mpath, losses, (int)o.max_steps);
    CHECK_MSG(!isnan(losses[0]) && !isnan(losses[o.max_steps - 1]), "metrics after resume cover all steps");
    // Interop loratune -> PEFT: with LT_DUMP_DIR set, write the trained adapter and its logits on
    // the fixture input for tools/check_peft_adapter.py (run by tools/check_interop.sh).
    const char *dump = getenv("LT_DUMP_DIR");
    if (dump) {
        char ad[400], lp[460];
        snprintf(ad, sizeof ad, "%s/%s", dump, fam);
        CHECK_OK(lt_adapter_save_peft(a, m, ad, &err), &err);
        lt_ctx *c = NULL;
        lt_ctx_opts co = {.B = B, .T = T};
        CHECK_OK(lt_ctx_new(m, &co, &c, &err), &err);
        float *lg = malloc(sizeof(float) * (size_t)(B * T * V));
        CHECK_OK(lt_model_logits(m, c, &b, lg, &err), &err);
        lt_st_writer *w = lt_st_writer_new();
        int64_t shape[3] = {B, T, V};
        snprintf(lp, sizeof lp, "%s/logits.safetensors", ad);
        CHECK_OK(lt_st_writer_add(w, "logits", LT_DTYPE_F32, 3, shape, lg, &err), &err);
        CHECK_OK(lt_st_writer_write(w, lp, &err), &err);
        lt_st_writer_free(w);
        free(lg);
        lt_ctx_free(c);
    }
    free(final);
    free(orig);
    lt_dataset_deinit(&d);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
out:
    lt_adapter_free(a);
    lt_safetensors_close(g);
    lt_model_free(m);
}

int main(void) {
    const char *fams[] = {"llama", "mistral", "qwen2", "gpt2", "gpt_neox"};
    for (int i = 0; i < 5; i++) run_family(fams[i]);
    TEST_END();
}
