/*
 * generate.c - batched generation over the key/value cache: prompts are taken `batch` at a time,
 * left-padded to the longest one and prefilled in one lt_model_decode call; then each step picks
 * one token per unfinished row (processors, JSON mask, greedy or sampling) and feeds the picks back
 * as one more position. Rows stop at EOS, a stop string, a complete JSON document or
 * max_new_tokens; the batch stops when every row has.
 * The choice of each row's token runs in parallel over rows (each row has its own scratch and
 * RNG, so results do not depend on threads or batch size).
 * Not here: speculative decoding, beam search, continuous batching (a finished row keeps its slot
 * until its batch ends).
 */
#include "infer/infer.h"

#include <math.h>
#include <string.h>

#define LAZY_M 16 // greedy + JSON: candidates checked one by one before a full vocabulary scan

const char *lt_finish_name(lt_finish f) {
    switch (f) {
    case LT_FINISH_EOS:
        return "eos";
    case LT_FINISH_STOP:
        return "stop";
    case LT_FINISH_JSON:
        return "json";
    default:
        return "length";
    }
}

void lt_gen_opts_default(lt_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 128;
    o->sampler.temperature = 0;
    o->sampler.top_k = 0;
    o->sampler.top_p = 1;
    o->sampler.repetition_penalty = 1;
    o->batch = 8;
    o->eos_id = -1;
    o->pad_id = -1;
}

void lt_gen_out_deinit(lt_gen_out *outs, int64_t n) {
    if (!outs) return;
    for (int64_t i = 0; i < n; i++) {
        lt_free(outs[i].ids);
        lt_free(outs[i].text);
        memset(&outs[i], 0, sizeof outs[i]);
    }
}

// Per-row state of the batch being generated.
typedef struct row {
    int64_t idx;   // prompt index
    bool active;   // still generating
    int n_real;    // real tokens in the cache (prompt + fed generated ones)
    int32_t *hist; // (max_P + max_new) prompt then generated ids (for the repetition penalty)
    int n_hist, n_gen;
    lt_jstate js;
    lt_rng rng;
    lt_finish finish;
    char *bytes; // generated token bytes (for stop strings)
    size_t n_bytes, cap_bytes;
    // scratch
    float *work, *fscratch;  // (V)
    int32_t *iscratch;       // (V)
    uint8_t *seen, *allowed; // (V)
    int32_t pick;
    int failed; // 1: no allowed token (an internal invariant broke)
} row;

typedef struct gen {
    lt_model *m;
    const lt_tokenizer *tok;
    const lt_gen_opts *o;
    int V, V_ok;
    int32_t eos, pad;
} gen;

// Top-k under the JSON constraint without a full scan: candidates in descending logit order are
// checked one by one until k allowed ones are found and the next candidate is below the k-th
// (HF's top-k keeps ties with the k-th). Everything else becomes -inf. Returns false (w
// untouched) when the first M candidates do not settle it; the caller then scans everything.
static bool lazy_top_k(const gen *g, row *r, int budget) {
    const int V = g->V, k = g->o->sampler.top_k;
    int M = 4 * k > 64 ? 4 * k : 64;
    if (M > V) M = V;
    int32_t *cand = r->iscratch;
    int nc = lt_logits_top_m(r->work, V, M, cand), got = 0;
    float kth = -INFINITY;
    bool settled = false;
    memset(r->allowed, 0, (size_t)V);
    for (int i = 0; i < nc; i++) {
        float l = r->work[cand[i]];
        if (got >= k && l < kth) {
            settled = true;
            break;
        }
        if (lt_jvocab_token_ok(g->o->json, &r->js, cand[i], budget, NULL)) {
            r->allowed[cand[i]] = 1;
            if (++got == k) kth = l;
        }
    }
    if (!settled && nc < M && got > 0) settled = true; // every finite logit was looked at
    if (!settled) return false;
    for (int i = 0; i < V; i++)
        if (!r->allowed[i]) r->work[i] = -INFINITY;
    return true;
}

// Picks row r's next token from its logits (V floats, already copied into r->work).
static void pick_token(const gen *g, row *r) {
    const lt_gen_opts *o = g->o;
    const lt_sampler_opts *so = &o->sampler;
    float *w = r->work;
    const int V = g->V;
    for (int i = g->V_ok; i < V; i++) w[i] = -INFINITY;
    lt_logits_repetition_penalty(w, V, r->hist, r->n_hist, so->repetition_penalty, r->seen);
    bool greedy = !(so->temperature > 0);
    r->pick = -1;
    if (o->json) {
        int budget = o->max_new_tokens - r->n_gen - 1;
        if (g->eos >= 0 && g->eos < V) w[g->eos] = -INFINITY; // the document ends the row
        if (greedy) {
            int32_t cand[LAZY_M];
            int nc = lt_logits_top_m(w, V, LAZY_M, cand);
            for (int i = 0; i < nc && r->pick < 0; i++)
                if (lt_jvocab_token_ok(o->json, &r->js, cand[i], budget, NULL)) r->pick = cand[i];
            if (r->pick >= 0) return;
        }
        if (!greedy && so->top_k > 0 && lazy_top_k(g, r, budget)) {
            // w now holds the top-k allowed tokens (ties with the k-th included), as a full mask
            // followed by top-k would leave it
        } else {
            lt_jvocab_allowed(o->json, &r->js, budget, r->allowed, V);
            for (int i = 0; i < V; i++)
                if (!r->allowed[i]) w[i] = -INFINITY;
        }
    }
    if (greedy) {
        r->pick = lt_sample_argmax(w, V);
    } else {
        lt_logits_temperature(w, V, so->temperature);
        lt_logits_top_k(w, V, so->top_k, r->fscratch);
        lt_logits_top_p(w, V, so->top_p, r->iscratch);
        r->pick = lt_sample_softmax(w, V, &r->rng);
    }
    if (r->pick < 0) r->failed = 1;
}

// Appends bytes to the row's text and reports whether a stop string now appears in it.
static int stop_hit(const gen *g, row *r, const char *b, size_t n, lt_err *err) {
    if (!g->o->n_stop || !b || g->o->json) return 0; // a document ends itself
    if (r->n_bytes + n + 1 > r->cap_bytes) {
        size_t cap = (r->n_bytes + n + 1) * 2;
        char *nb = lt_realloc(r->bytes, cap);
        if (!nb) {
            lt_err_set(err, LT_ERR_OOM, "out of memory");
            return -1;
        }
        r->bytes = nb, r->cap_bytes = cap;
    }
    memcpy(r->bytes + r->n_bytes, b, n);
    size_t old = r->n_bytes;
    r->n_bytes += n;
    for (int k = 0; k < g->o->n_stop; k++) {
        size_t sl = strlen(g->o->stop[k]);
        if (sl == 0 || sl > r->n_bytes) continue;
        size_t from = old + 1 > sl ? old + 1 - sl : 0; // only matches that end in the new bytes
        for (size_t i = from; i + sl <= r->n_bytes; i++)
            if (!memcmp(r->bytes + i, g->o->stop[k], sl)) return 1;
    }
    return 0;
}

static lt_status finish_row(const gen *g, row *r, lt_gen_out *out, lt_err *err) {
    out->n_prompt = r->n_hist - r->n_gen;
    out->finish = r->finish;
    out->n_ids = r->n_gen;
    out->ids = lt_alloc(sizeof(int32_t) * (size_t)(r->n_gen ? r->n_gen : 1));
    if (!out->ids) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    memcpy(out->ids, r->hist + out->n_prompt, sizeof(int32_t) * (size_t)r->n_gen);
    if (!g->tok) return LT_OK;
    lt_status st = lt_tokenizer_decode(g->tok, out->ids, (size_t)out->n_ids, LT_TOK_SKIP_SPECIAL,
                                       &out->text, &out->text_len, err);
    if (st) return st;
    if (r->finish == LT_FINISH_STOP) { // cut before the earliest stop string
        size_t cut = out->text_len;
        for (int k = 0; k < g->o->n_stop; k++) {
            const char *hit = strstr(out->text, g->o->stop[k]);
            if (g->o->stop[k][0] && hit && (size_t)(hit - out->text) < cut)
                cut = (size_t)(hit - out->text);
        }
        out->text[cut] = 0;
        out->text_len = cut;
    }
    return LT_OK;
}

static lt_status check_opts(const lt_model *m, const lt_tokenizer *tok,
                            const int32_t *const *prompts, const int *plen, int64_t n,
                            const lt_gen_opts *o, lt_err *err) {
    const lt_sampler_opts *s = &o->sampler;
    if (o->max_new_tokens < 1 || o->batch < 1 || o->batch > 4096)
        return lt_err_set(err, LT_ERR_ARG,
                          "max_new_tokens %d and batch %d must be >= 1 (batch <= "
                          "4096)",
                          o->max_new_tokens, o->batch);
    if (!isfinite(s->temperature) || !(s->top_p > 0) || s->top_k < 0 ||
        !(s->repetition_penalty > 0) || !isfinite(s->repetition_penalty))
        return lt_err_set(err, LT_ERR_ARG,
                          "bad sampling settings: temperature %g, top_k %d, top_p "
                          "%g (0 < p <= 1), repetition_penalty %g (> 0)",
                          (double)s->temperature, s->top_k, (double)s->top_p,
                          (double)s->repetition_penalty);
    if ((o->json || o->n_stop) && !tok)
        return lt_err_set(err, LT_ERR_ARG, "stop strings and JSON constraints need a tokenizer");
    if (o->n_stop < 0 || (o->n_stop && !o->stop))
        return lt_err_set(err, LT_ERR_ARG, "bad stop string list");
    if (o->json && lt_jschema_min_bytes(lt_jvocab_schema(o->json)) > o->max_new_tokens)
        return lt_err_set(err, LT_ERR_ARG,
                          "max_new_tokens %d is too small for the JSON schema: its "
                          "shortest document takes %d bytes, and a byte may need a token of its "
                          "own",
                          o->max_new_tokens, lt_jschema_min_bytes(lt_jvocab_schema(o->json)));
    for (int64_t i = 0; i < n; i++) {
        if (plen[i] < 1 || !prompts[i])
            return lt_err_set(err, LT_ERR_ARG,
                              "prompt %lld is empty (it needs at least one token, "
                              "e.g. BOS)",
                              (long long)i);
        if (plen[i] > m->cfg.max_pos - o->max_new_tokens)
            return lt_err_set(err, LT_ERR_ARG,
                              "prompt %lld has %d tokens: with max_new_tokens %d it "
                              "exceeds the model's %d positions",
                              (long long)i, plen[i], o->max_new_tokens, m->cfg.max_pos);
        for (int t = 0; t < plen[i]; t++)
            if (prompts[i][t] < 0 || prompts[i][t] >= m->cfg.n_vocab)
                return lt_err_set(err, LT_ERR_ARG,
                                  "prompt %lld: token %d is id %d, outside the "
                                  "model's vocabulary of %d",
                                  (long long)i, t, prompts[i][t], m->cfg.n_vocab);
    }
    return LT_OK;
}

lt_status lt_generate(lt_model *m, const lt_tokenizer *tok, const int32_t *const *prompts,
                      const int *prompt_len, int64_t n, const lt_gen_opts *o, lt_gen_out *out,
                      lt_err *err) {
    lt_status st = check_opts(m, tok, prompts, prompt_len, n, o, err);
    if (st) return st;
    memset(out, 0, sizeof *out * (size_t)n);
    if (n == 0) return LT_OK;
    gen g = {.m = m, .tok = tok, .o = o, .V = m->cfg.n_vocab};
    g.V_ok = tok && lt_tokenizer_n_vocab(tok) < g.V ? lt_tokenizer_n_vocab(tok) : g.V;
    g.eos = o->eos_id >= 0 ? o->eos_id : tok ? lt_tokenizer_eos(tok) : m->cfg.eos_id;
    g.pad = o->pad_id >= 0                      ? o->pad_id
            : tok && lt_tokenizer_pad(tok) >= 0 ? lt_tokenizer_pad(tok)
            : g.eos >= 0                        ? g.eos
                                                : 0;
    if (g.pad >= g.V) g.pad = 0;
    const int V = g.V, max_new = o->max_new_tokens;
    int max_P = 0;
    for (int64_t i = 0; i < n; i++) max_P = prompt_len[i] > max_P ? prompt_len[i] : max_P;
    const int B = n < o->batch ? (int)n : o->batch;
    const int hist_cap = max_P + max_new;

    lt_kv *kv = NULL;
    int kv_rows = 0;
    row *rows = lt_calloc((size_t)B, sizeof(row));
    int32_t *ids = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)max_P);
    int32_t *km = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)max_P);
    int32_t *pos = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)max_P);
    float *logits = lt_alloc(sizeof(float) * (size_t)B * (size_t)V);
    if (!rows || !ids || !km || !pos || !logits) goto oom;
    for (int b = 0; b < B; b++) {
        row *r = &rows[b];
        r->hist = lt_alloc(sizeof(int32_t) * (size_t)hist_cap);
        r->work = lt_alloc(sizeof(float) * (size_t)V);
        r->fscratch = lt_alloc(sizeof(float) * (size_t)V);
        r->iscratch = lt_alloc(sizeof(int32_t) * (size_t)V);
        r->seen = lt_calloc((size_t)V, 1);
        r->allowed = lt_alloc((size_t)V);
        if (!r->hist || !r->work || !r->fscratch || !r->iscratch || !r->seen || !r->allowed)
            goto oom;
    }
    lt_progress pb;
    if (o->progress) lt_progress_init(&pb, "generate", (long)n, "prompts");
    double t0 = lt_time_sec();
    int64_t n_tok = 0;

    for (int64_t s0 = 0; s0 < n; s0 += B) {
        const int nb = n - s0 < B ? (int)(n - s0) : B;
        if (kv_rows != nb) { // the last batch may be smaller
            lt_kv_free(kv);
            kv = NULL;
            if ((st = lt_kv_new(m, nb, max_P + max_new, &kv, err))) goto fail;
            kv_rows = nb;
        }
        lt_kv_reset(kv);
        int P = 0;
        for (int b = 0; b < nb; b++) P = prompt_len[s0 + b] > P ? prompt_len[s0 + b] : P;
        for (int b = 0; b < nb; b++) {
            row *r = &rows[b];
            int64_t i = s0 + b;
            int L = prompt_len[i], padn = P - L;
            r->idx = i;
            r->active = true;
            r->n_real = L;
            r->n_hist = L, r->n_gen = 0;
            r->n_bytes = 0;
            r->failed = 0;
            r->finish = LT_FINISH_LENGTH;
            memcpy(r->hist, prompts[i], sizeof(int32_t) * (size_t)L);
            uint64_t sd = o->seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
            lt_rng_seed(&r->rng, lt_splitmix64(&sd));
            if (o->json) lt_jstate_init(lt_jvocab_schema(o->json), &r->js);
            for (int t = 0; t < P; t++) {
                size_t k = (size_t)b * (size_t)P + (size_t)t;
                bool real = t >= padn;
                ids[k] = real ? prompts[i][t - padn] : g.pad;
                km[k] = real;
                pos[k] = real ? t - padn : 0; // HF: cumsum(mask) - 1
            }
        }
        if ((st = lt_model_decode(m, kv, ids, P, km, pos, logits, false, err))) goto fail;
        for (int step = 0; step < max_new; step++) {
            int any = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(                                                                 \
    dynamic, 1) if (nb > 1 && (o->json || (size_t)V * (size_t)nb >= ((size_t)1 << 20)))
#endif
            for (int b = 0; b < nb; b++) {
                row *r = &rows[b];
                if (!r->active) continue;
                memcpy(r->work, logits + (size_t)b * (size_t)V, sizeof(float) * (size_t)V);
                pick_token(&g, r);
            }
            for (int b = 0; b < nb; b++) {
                row *r = &rows[b];
                ids[b] = g.pad, km[b] = 0, pos[b] = 0;
                if (!r->active) continue;
                if (r->failed) {
                    st = lt_err_set(err, LT_ERR_ARG,
                                    "prompt %lld, new token %d: no token is "
                                    "allowed (every logit is -inf or NaN%s)",
                                    (long long)r->idx, r->n_gen,
                                    o->json ? ", or the JSON constraint left none" : "");
                    goto fail;
                }
                int32_t t = r->pick;
                if (t == g.eos && !o->json) {
                    r->active = false;
                    r->finish = LT_FINISH_EOS;
                    continue;
                }
                r->hist[r->n_hist++] = t;
                r->n_gen++;
                n_tok++;
                size_t nbytes = 0;
                const char *bytes = tok ? lt_tokenizer_token_bytes(tok, t, &nbytes) : NULL;
                if (o->on_token) o->on_token(o->ud, r->idx, t, bytes, nbytes);
                if (o->json) {
                    if (!lt_jstate_feed(lt_jvocab_schema(o->json), &r->js, bytes, nbytes)) {
                        st = lt_err_set(err, LT_ERR_ARG,
                                        "prompt %lld: internal error: the JSON "
                                        "state rejected the token it allowed",
                                        (long long)r->idx);
                        goto fail;
                    }
                    if (lt_jstate_done(&r->js)) {
                        r->active = false;
                        r->finish = LT_FINISH_JSON;
                        continue;
                    }
                }
                int sh = stop_hit(&g, r, bytes, nbytes, err);
                if (sh < 0) {
                    st = LT_ERR_OOM;
                    goto fail;
                }
                if (sh) {
                    r->active = false;
                    r->finish = LT_FINISH_STOP;
                    continue;
                }
                if (r->n_gen >= max_new) {
                    r->active = false;
                    continue;
                }
                ids[b] = t, km[b] = 1, pos[b] = r->n_real++;
                any = 1;
            }
            if (!any) break;
            if ((st = lt_model_decode(m, kv, ids, 1, km, pos, logits, false, err))) goto fail;
        }
        for (int b = 0; b < nb; b++)
            if ((st = finish_row(&g, &rows[b], &out[s0 + b], err))) goto fail;
        if (o->progress) {
            char extra[64];
            double dt = lt_time_sec() - t0;
            snprintf(extra, sizeof extra, "%.1f tok/s", dt > 0 ? (double)n_tok / dt : 0.0);
            lt_progress_update(&pb, (long)(s0 + nb), extra);
        }
    }
    if (o->progress) lt_progress_finish(&pb);
    goto done;
oom:
    st =
        lt_err_set(err, LT_ERR_OOM, "out of memory for generation (batch %d, vocabulary %d)", B, V);
fail:
    lt_gen_out_deinit(out, n);
done:
    if (rows)
        for (int b = 0; b < B; b++) {
            row *r = &rows[b];
            lt_free(r->hist), lt_free(r->work), lt_free(r->fscratch), lt_free(r->iscratch);
            lt_free(r->seen), lt_free(r->allowed), lt_free(r->bytes);
        }
    lt_free(rows);
    lt_free(ids), lt_free(km), lt_free(pos), lt_free(logits);
    lt_kv_free(kv);
    return st;
}
