/*
 * test_merge_gpt.c - merge and export of the GPT-2 and GPT-NeoX families (src/model/export.c,
 * src/lora/merge.c, export_gguf.c, gguf_model.c) on the tiny golden fixtures of
 * tools/make_golden.py with their PEFT adapters (GPT-2: f32, Conv1D, tied head, adapter on c_attn,
 * c_proj, c_fc with fan_in_fan_out; GPT-NeoX: bf16, fused per-head query_key_value, partial
 * rotary, untied embed_out):
 *  - merged into a HF directory (f32 and the base's own dtype), reloaded, run against the
 *    unmerged base + adapter (lt_verify_models: config, every weight, logits);
 *  - GPT-2's merged Conv1D weights are checked in the file's own (in, out) layout against
 *    W_file + s * (B @ A)^T computed in double, independently of the loader;
 *  - a GPT-2 file without the "transformer." prefix (as openai-community/gpt2 ships) merges
 *    under its own names;
 *  - GGUF export (arch gpt2 / gptneox, f32 and f16) reloaded through lt_model_load with logits
 *    equal to the source model; that GGUF merged back into a HF directory (generated
 *    config.json); GGUF LoRA files read back exactly; bad gpt2 / gptneox GGUF files are errors
 *    naming the file and the tensor or key.
 *
 * Tolerances (logits of magnitude ~3-4 over 3 x 32 positions x 256 classes), as test_merge.c:
 *  F32 output: W + s*B@A rounded once in f32 against the unmerged s*B(Ax): float rounding only
 *    (observed ~1e-6), allowed 1e-4 of max(1, max|logit|).
 *  BF16 output (the NeoX base's own dtype): each merged weight rounded to bf16 (2^-8 relative)
 *    moves these random models' logits by ~1% of their scale; allowed 5%; the weights are
 *    checked exactly by the verify weights pass (within one bf16 rounding step).
 *  F16 GGUF: allowed 1%.
 * Every check also requires the adapter's own effect on the logits to be far above the
 * tolerance, so a merge that dropped the LoRA (or a transposed/regrouped layout error) fails.
 */
#include "core/core.h"
#include "io/gguf.h"
#include "io/io.h"
#include "lora/merge.h"
#include "test.h"

#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char tmpdir[256];
static const char *fams[2] = {"gpt2", "gpt_neox"};

static void sh(const char *cmd) {
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
}

static lt_model *load_with_adapter(const char *model_dir, const char *fam, lt_adapter **a) {
    lt_model *m = NULL;
    lt_err err = {0};
    CHECK_OK(lt_model_load(model_dir, &m, &err), &err);
    if (!m) return NULL;
    char p[256];
    snprintf(p, sizeof p, "tests/fixtures/%s/adapter", fam);
    CHECK_OK(lt_adapter_load_peft(m, p, a, &err), &err);
    return m;
}

static double test_tol(lt_dtype d) {
    return d == LT_DTYPE_F32 ? 1e-4 : d == LT_DTYPE_F16 ? 1e-2 : 5e-2;
}

static void verify(lt_model *ref, const char *path, lt_dtype d, const char *what) {
    lt_model *got = NULL;
    lt_err err = {0};
    CHECK_OK(lt_model_load(path, &got, &err), &err);
    if (!got) return;
    CHECK_MSG(!strcmp(got->arch.model_type, ref->arch.model_type), "%s: reloaded as %s", what,
              got->arch.model_type);
    lt_verify_result r = {0};
    CHECK_OK(lt_verify_models(ref, got, LT_DTYPE_F32, test_tol(d), &r, &err), &err);
    CHECK_MSG(r.config_ok, "%s: %s", what, r.config_msg);
    CHECK_MSG(r.weights_ok, "%s: %lld of %lld weights beyond the rounding bound (worst %.3g in %s)",
              what, (long long)r.n_bad, (long long)r.n_weights, r.worst, r.worst_name);
    CHECK_MSG(r.logits_ok && r.ok && r.T > 0, "%s: max diff %.3g > tol %.3g", what, r.max_diff,
              r.tol);
    CHECK_MSG(r.lora_effect > 5 * r.tol, "%s: adapter effect %.3g vs tolerance %.3g", what,
              r.lora_effect, r.tol);
    fprintf(stderr,
            "%s %s: %s, %lld weights within %.2f of the bound, %dx%d tokens, max|diff| %.3g "
            "(tol %.3g), adapter effect %.3g\n",
            r.ok ? "ok  " : "FAIL", what, lt_dtype_name(d), (long long)r.n_weights, r.worst, r.B,
            r.T, r.max_diff, r.tol, r.lora_effect);
    lt_model_free(got);
}

// GPT-2: the merged file keeps Conv1D's (in, out) layout: M[i][o] = W[i][o] + s * sum_j B[o][j]
// A[j][i], checked from the two files and the adapter alone (not through the loader).
static void check_conv1d_layout(const lt_model *m, const char *base_dir, const char *out_dir,
                                const char *prefix) {
    lt_st_set *bs = NULL, *os = NULL;
    lt_err err = {0};
    CHECK_OK(lt_st_set_open_dir(base_dir, &bs, &err), &err);
    CHECK_OK(lt_st_set_open_dir(out_dir, &os, &err), &err);
    int n_checked = 0, n_bad = 0;
    double worst = 0;
    for (int l = 0; bs && os && l < m->cfg.n_layer; l++)
        for (int k = 0; k < LT_MOD_PER_LAYER; k++) {
            const lt_linear *li = &m->layers[l].lin[k];
            if (!li->lora) continue;
            char name[160];
            snprintf(name, sizeof name, "%s%s.weight", prefix, li->name + strlen("transformer."));
            const lt_st_tensor *w = lt_st_set_find(bs, name), *o = lt_st_set_find(os, name);
            CHECK_MSG(w && o && o->ndim == 2 && o->shape[0] == li->in && o->shape[1] == li->out &&
                          w->dtype == LT_DTYPE_F32 && o->dtype == LT_DTYPE_F32,
                      "%s in %s", name, out_dir);
            if (!w || !o || o->shape[0] != li->in || o->shape[1] != li->out) continue;
            const float *wf = w->data, *of = o->data;
            const lt_lora_mod *lm = li->lora;
            for (int i = 0; i < li->in; i++)
                for (int c = 0; c < li->out; c++) {
                    double acc = 0, mag = 0;
                    for (int j = 0; j < lm->r; j++) {
                        acc += (double)lm->B[c * lm->r + j] * lm->A[j * lm->in + i];
                        mag += fabs((double)lm->B[c * lm->r + j] * lm->A[j * lm->in + i]);
                    }
                    double want = wf[(size_t)i * (size_t)li->out + (size_t)c] + lm->scale * acc;
                    double terms = fabs((double)wf[(size_t)i * (size_t)li->out + (size_t)c]) +
                                   fabs((double)lm->scale) * mag;
                    // f32 rounding of the result and of the sum of its terms
                    double d = fabs(of[(size_t)i * (size_t)li->out + (size_t)c] - want) /
                               (fabs(want) * 1.2e-7 + terms * 5e-7 + 1e-30);
                    if (d > worst) worst = d;
                    n_bad += d > 1;
                    n_checked++;
                }
        }
    CHECK_MSG(n_bad == 0 && n_checked > 0, "%s: %d of %d Conv1D weights off (worst %.2f)", out_dir,
              n_bad, n_checked, worst);
    fprintf(stderr, "%s %s: %d merged Conv1D weights in (in, out) layout within %.2f steps\n",
            n_bad ? "FAIL" : "ok  ", out_dir, n_checked, worst);
    lt_st_set_close(bs);
    lt_st_set_close(os);
}

static void test_merge_hf(void) {
    lt_err err = {0};
    for (int f = 0; f < 2; f++) {
        char base[128], out[512], what[160];
        snprintf(base, sizeof base, "tests/fixtures/%s/model", fams[f]);
        lt_adapter *a = NULL;
        lt_model *m = load_with_adapter(base, fams[f], &a);
        if (!m || !a) {
            lt_model_free(m);
            continue;
        }
        lt_dtype ds[2] = {LT_DTYPE_F32, LT_DTYPE_KEEP};
        for (int i = 0; i < 2; i++) {
            snprintf(out, sizeof out, "%s/%s_%d", tmpdir, fams[f], i);
            lt_merge_opts o = {.dtype = ds[i]};
            CHECK_OK(lt_merge_save_hf(m, base, out, &o, &err), &err);
            lt_dtype wd = lt_merge_written_dtype(m, ds[i]);
            snprintf(what, sizeof what, "%s merged to HF (%s)", fams[f],
                     i ? "base dtype" : "f32");
            verify(m, out, wd, what);
            if (f == 0 && i == 0) check_conv1d_layout(m, base, out, "transformer.");
        }
        lt_adapter_free(a);
        lt_model_free(m);
    }
}

// openai-community/gpt2 stores "h.0.attn.c_attn.weight", "wte.weight", ... without the
// "transformer." prefix; the merge must find and write its tensors under those names.
static void test_gpt2_bare_names(void) {
    lt_err err = {0};
    lt_safetensors *src = NULL;
    char dir[300], path[400], out[300];
    snprintf(dir, sizeof dir, "%s/gpt2_bare", tmpdir);
    snprintf(out, sizeof out, "%s/gpt2_bare_merged", tmpdir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp tests/fixtures/gpt2/model/config.json %s/", dir,
             dir);
    sh(cmd);
    CHECK_OK(lt_safetensors_open("tests/fixtures/gpt2/model/model.safetensors", &src, &err), &err);
    if (!src) return;
    lt_st_writer *w = lt_st_writer_new();
    for (int i = 0; w && i < lt_safetensors_count(src); i++) {
        const lt_st_tensor *t = lt_safetensors_at(src, i);
        const char *nm = t->name;
        if (!strncmp(nm, "transformer.", 12)) nm += 12;
        CHECK_OK(lt_st_writer_add(w, nm, t->dtype, t->ndim, t->shape, t->data, &err), &err);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(lt_st_writer_write(w, path, &err), &err);
    lt_st_writer_free(w);
    lt_safetensors_close(src);
    lt_adapter *a = NULL;
    lt_model *m = load_with_adapter(dir, "gpt2", &a);
    if (m && a) {
        lt_merge_opts o = {.dtype = LT_DTYPE_KEEP};
        CHECK_OK(lt_merge_save_hf(m, dir, out, &o, &err), &err);
        lt_st_set *s = NULL;
        CHECK_OK(lt_st_set_open_dir(out, &s, &err), &err);
        CHECK(s && lt_st_set_find(s, "h.1.mlp.c_fc.weight") && lt_st_set_find(s, "wte.weight") &&
              !lt_st_set_find(s, "transformer.wte.weight") && lt_st_set_count(s) == 28);
        lt_st_set_close(s);
        verify(m, out, LT_DTYPE_F32, "gpt2 without the transformer. prefix merged");
        check_conv1d_layout(m, dir, out, "");
    }
    lt_adapter_free(a);
    lt_model_free(m);
}

// GGUF model (f32, f16) reloaded through lt_model_load (arch gpt2 / gptneox; NeoX's attn_qkv
// regrouped to [q | k | v] in the file and back on load), and a GGUF LoRA read back.
static void test_gguf(void) {
    lt_err err = {0};
    for (int f = 0; f < 2; f++) {
        char base[128], out[512], what[160];
        snprintf(base, sizeof base, "tests/fixtures/%s/model", fams[f]);
        lt_adapter *a = NULL;
        lt_model *m = load_with_adapter(base, fams[f], &a);
        if (!m || !a) {
            lt_model_free(m);
            continue;
        }
        lt_dtype ds[2] = {LT_DTYPE_F32, LT_DTYPE_F16};
        for (int i = 0; i < 2; i++) {
            snprintf(out, sizeof out, "%s/%s_%d.gguf", tmpdir, fams[f], i);
            lt_export_opts o = {.dtype = ds[i]};
            CHECK_OK(lt_export_gguf(m, base, out, &o, &err), &err);
            snprintf(what, sizeof what, "%s exported to GGUF", fams[f]);
            verify(m, out, ds[i], what);
            if (i == 0) { // the file holds llama.cpp's names and layout
                lt_gguf *g = NULL;
                CHECK_OK(lt_gguf_open(out, &g, &err), &err);
                const char *arch = NULL;
                if (g) CHECK_OK(lt_gguf_get_str(g, "general.architecture", &arch, NULL, &err), &err);
                CHECK(arch && !strcmp(arch, f ? "gptneox" : "gpt2"));
                const lt_gguf_tensor *t = g ? lt_gguf_find_tensor(g, "blk.1.attn_qkv.weight") : NULL;
                CHECK(t && t->shape[0] == 3 * m->cfg.n_embd && t->shape[1] == m->cfg.n_embd);
                CHECK(g && (lt_gguf_find_tensor(g, "position_embd.weight") != NULL) == (f == 0));
                CHECK(g && (lt_gguf_find_tensor(g, "output.weight") != NULL) == (f == 1));
                CHECK(g && lt_gguf_find_tensor(g, "blk.0.ffn_down.bias") &&
                      lt_gguf_find_tensor(g, "output_norm.bias"));
                if (t && f == 1) { // row C + 0 of the file (k of head 0) is HF row hs (per-head)
                    const lt_linear *li = &m->layers[1].lin[LT_MOD_Q];
                    float want[64], got[64];
                    lt_merge_rows(&(lt_model_tensor){.w = &li->w, .lin = li, .rows = li->out,
                                                     .cols = li->in},
                                  m->cfg.head_dim, 1, want);
                    lt_to_f32(LT_DTYPE_F32, (const float *)t->data + m->cfg.n_embd * li->in, got,
                              li->in);
                    CHECK_CLOSE("gptneox attn_qkv row C = HF per-head k row", got, want, li->in,
                                1e-6, 1e-6);
                }
                lt_gguf_close(g);
                // that GGUF as a base, written as a HF directory: config.json from the record,
                // GPT-2's Conv1D weights transposed back to (in, out)
                lt_model *gm = NULL;
                char hf[600];
                snprintf(hf, sizeof hf, "%s/%s_from_gguf", tmpdir, fams[f]);
                CHECK_OK(lt_model_load(out, &gm, &err), &err);
                lt_merge_opts mo = {.dtype = LT_DTYPE_KEEP};
                if (gm) CHECK_OK(lt_merge_save_hf(gm, out, hf, &mo, &err), &err);
                lt_model_free(gm);
                snprintf(what, sizeof what, "%s GGUF -> HF directory", fams[f]);
                verify(m, hf, LT_DTYPE_F32, what);
                if (f == 0) check_conv1d_layout(m, base, hf, "transformer.");
            }
        }
        snprintf(out, sizeof out, "%s/%s_lora.gguf", tmpdir, fams[f]);
        CHECK_OK(lt_export_gguf_lora(m, a, out, LT_DTYPE_F32, &err), &err);
        lt_verify_result r = {0};
        CHECK_OK(lt_verify_gguf_lora(m, out, LT_DTYPE_F32, 1e-4, &r, &err), &err);
        CHECK_MSG(r.ok && r.weights_ok && r.max_diff == 0, "%s gguf-lora: max diff %.3g, worst %.3g",
                  fams[f], r.max_diff, r.worst);
        fprintf(stderr, "%s %s GGUF LoRA read back: %lld weights, logits max|diff| %.3g\n",
                r.ok ? "ok  " : "FAIL", fams[f], (long long)r.n_weights, r.max_diff);
        lt_adapter_free(a);
        lt_model_free(m);
    }
}

// Bad GPT-2 / NeoX GGUF files are errors naming the file and what is wrong, never crashes.
static void test_bad_gguf(void) {
    float data[3 * 8 * 8] = {0};
    struct {
        const char *arch;
        int heads;
        int64_t qkv_rows; // 0: no attn_qkv tensor
        const char *want; // in the message
    } cases[] = {
        {"gpt2", 2, 0, "position_embd.weight"},    // GPT-2 without learned positions
        {"gptneox", 3, 24, "multiple of 3 heads"}, // 8 not divisible by 3
        {"gptneox", 2, 16, "blk.0.attn_qkv.weight"}, // qkv of the wrong shape
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lt_err err = {0};
        lt_gguf_writer *w = lt_gguf_writer_new();
        char path[400], key[64];
        snprintf(path, sizeof path, "%s/bad_%zu.gguf", tmpdir, i);
        CHECK_OK(lt_gguf_writer_set_str(w, "general.architecture", cases[i].arch, &err), &err);
        const char *ks[] = {"block_count", "embedding_length", "attention.head_count",
                            "context_length", "feed_forward_length"};
        uint32_t vs[] = {1, 8, (uint32_t)cases[i].heads, 4, 16};
        for (int k = 0; k < 5; k++) {
            snprintf(key, sizeof key, "%s.%s", cases[i].arch, ks[k]);
            CHECK_OK(lt_gguf_writer_set_u32(w, key, vs[k], &err), &err);
        }
        int64_t se[2] = {16, 8}, sq[2] = {cases[i].qkv_rows, 8}, sv[1] = {8};
        CHECK_OK(lt_gguf_writer_add_tensor(w, "token_embd.weight", LT_DTYPE_F32, 2, se, data, &err),
                 &err);
        const char *vecs[] = {"output_norm.weight", "output_norm.bias", "blk.0.attn_norm.weight",
                              "blk.0.attn_norm.bias", "blk.0.ffn_norm.weight", "blk.0.ffn_norm.bias"};
        for (int k = 0; k < 6; k++)
            CHECK_OK(lt_gguf_writer_add_tensor(w, vecs[k], LT_DTYPE_F32, 1, sv, data, &err), &err);
        if (sq[0])
            CHECK_OK(lt_gguf_writer_add_tensor(w, "blk.0.attn_qkv.weight", LT_DTYPE_F32, 2, sq, data,
                                               &err), &err);
        CHECK_OK(lt_gguf_writer_write(w, path, &err), &err);
        lt_gguf_writer_free(w);
        lt_model *m = NULL;
        lt_status st = lt_model_load(path, &m, &err);
        CHECK_MSG(st != LT_OK && !m && strstr(err.msg, cases[i].want) && strstr(err.msg, path),
                  "case %zu: %s: %s", i, lt_status_name(st), err.msg);
        lt_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lt_test_merge_gpt_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    sh(cmd);
    test_merge_hf();
    test_gpt2_bare_names();
    test_gguf();
    test_bad_gguf();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    sh(cmd);
    TEST_END();
}
