/*
 * loop.c - the training loop: batches from a seeded epoch order, gradient accumulation,
 * clipping, AdamW, schedules, periodic evaluation, metrics JSONL, progress, and resumable
 * checkpoints (one safetensors file: adapter params, Adam moments, position; written atomically).
 * Not here: data preparation (data/), the math of a step (model/forward.c).
 *
 * Data parallel (several ranks, dist.h): every rank walks the same epoch order and fills the
 * whole global batch (B x accumulation rows; cheap), so the loss normaliser (loss tokens of the
 * global batch) is known everywhere without communication; rank r runs the forward/backward of
 * micro-batches r, r+N, ...; the gradients and loss sums are then summed over ranks in a fixed
 * order and every rank applies the same clipping and AdamW step. Dropout masks depend on (seed,
 * step, module, position in the micro-batch), not on the rank, so N ranks train the model one
 * process would, up to the order of the gradient sum. Rank 0 alone writes files and talks.
 */
#include "dist/dist.h"
#include "io/io.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_status lt_train_state_init(lt_train_state *s, int64_t n_params, lt_err *err) {
    memset(s, 0, sizeof *s);
    s->m = lt_calloc((size_t)n_params, sizeof(float));
    s->v = lt_calloc((size_t)n_params, sizeof(float));
    if (!s->m || !s->v) {
        lt_train_state_deinit(s);
        return lt_err_set(err, LT_ERR_OOM, "out of memory for the Adam moments of %lld parameters",
                          (long long)n_params);
    }
    return LT_OK;
}

void lt_train_state_deinit(lt_train_state *s) {
    lt_free(s->m), lt_free(s->v);
    lt_adamw8_free(s->q8);
    memset(s, 0, sizeof *s);
}

void lt_train_take(lt_train_state *s, const int64_t *perm, int64_t n, int64_t *idx, int count) {
    for (int i = 0; i < count; i++) idx[i] = s->cursor < n ? perm[s->cursor++] : -1;
}

double lt_train_apply(lt_adapter *a, lt_train_state *s, const lt_train_opts *o, int64_t total,
                      int64_t warmup, int64_t *perm, int64_t n, float *lr_out) {
    double gnorm = lt_clip_grad_norm(a->grads, a->n_params, o->max_grad_norm);
    float lr = o->lr * lt_sched_factor(o->sched, s->step, warmup, total);
    if (s->q8)
        lt_adamw8_update(s->q8, a->params, a->grads, lr, o->beta1, o->beta2, o->eps,
                         o->weight_decay, s->step + 1);
    else
        lt_adamw_update(a->params, a->grads, s->m, s->v, a->n_params, lr, o->beta1, o->beta2,
                        o->eps, o->weight_decay, s->step + 1);
    s->step++;
    if (s->cursor >= n) { // epoch done: next step starts a new order
        s->epoch++;
        s->cursor = 0;
        lt_dataset_order(perm, n, o->seed, s->epoch);
    }
    if (lr_out) *lr_out = lr;
    return gnorm;
}

// ---------------------------------------------------------------------------------------------
// data parallel pieces

lt_status lt_train_sync_state(lt_adapter *a, lt_train_state *s, lt_err *err) {
    if (lt_dist_size() == 1) return LT_OK;
    size_t np = (size_t)a->n_params;
    int64_t pos[3] = {s->step, s->epoch, s->cursor};
    lt_status st = lt_dist_bcast(pos, sizeof pos, 0, err);
    if (!st) st = lt_dist_bcast(a->params, np * sizeof(float), 0, err);
    if (!st && !s->q8) st = lt_dist_bcast(s->m, np * sizeof(float), 0, err);
    if (!st && !s->q8) st = lt_dist_bcast(s->v, np * sizeof(float), 0, err);
    if (!st && s->q8) { // same layout everywhere (same adapter): only the contents move
        const lt_adamw8 *q = s->q8;
        size_t n8 = (size_t)q->n8, nb = (size_t)q->n_blocks * sizeof(float),
               n32 = (size_t)q->n32 * sizeof(float);
        st = lt_dist_bcast(q->qm, n8, 0, err);
        if (!st) st = lt_dist_bcast(q->qv, n8, 0, err);
        if (!st) st = lt_dist_bcast(q->am, nb, 0, err);
        if (!st) st = lt_dist_bcast(q->av, nb, 0, err);
        if (!st) st = lt_dist_bcast(q->m32, n32, 0, err);
        if (!st) st = lt_dist_bcast(q->v32, n32, 0, err);
    }
    if (!st) s->step = pos[0], s->epoch = pos[1], s->cursor = pos[2];
    return st;
}

lt_status lt_train_reduce(lt_adapter *a, double *sums, int n_sums, lt_status local, lt_err *err) {
    if (lt_dist_size() == 1) return local;
    LT_ASSERT(n_sums >= 0 && n_sums < 15);
    // one small sum carries the caller's totals and whether any rank failed, so the common path
    // costs two collectives per step
    double buf[16];
    memcpy(buf, sums, sizeof(double) * (size_t)n_sums);
    buf[n_sums] = local ? 1.0 : 0.0;
    lt_err mine = {0};
    if (local && err) mine = *err;
    lt_status st = lt_dist_sum_f64(buf, n_sums + 1, err);
    if (st) return st;
    if (buf[n_sums] > 0) { // some rank failed: all agree on who and why, and stop
        if (err) *err = mine;
        return lt_dist_agree(local, err);
    }
    memcpy(sums, buf, sizeof(double) * (size_t)n_sums);
    return a ? lt_dist_sum_f32(a->grads, a->n_params, err) : LT_OK;
}

lt_status lt_train_checkpoint_save(const char *path, const lt_adapter *a, const lt_train_state *s,
                                   const lt_train_opts *o, const lt_ckpt_hook *hook, lt_err *err) {
    lt_st_writer *w = lt_st_writer_new();
    if (!w) return lt_err_set(err, LT_ERR_OOM, "out of memory");
    int64_t shape[1] = {a->n_params};
    char buf[64];
    lt_status st = lt_st_writer_add(w, "params", LT_DTYPE_F32, 1, shape, a->params, err);
    if (!st && !s->q8) st = lt_st_writer_add(w, "adam_m", LT_DTYPE_F32, 1, shape, s->m, err);
    if (!st && !s->q8) st = lt_st_writer_add(w, "adam_v", LT_DTYPE_F32, 1, shape, s->v, err);
    if (!st && s->q8) st = lt_adamw8_ckpt_save(w, s->q8, err);
#define META(k, fmt, val)                                                                          \
    if (!st) {                                                                                     \
        snprintf(buf, sizeof buf, fmt, val);                                                       \
        st = lt_st_writer_meta(w, k, buf, err);                                                    \
    }
    META("step", "%lld", (long long)s->step);
    META("epoch", "%lld", (long long)s->epoch);
    META("cursor", "%lld", (long long)s->cursor);
    META("seed", "%llu", (unsigned long long)o->seed);
    META("n_params", "%lld", (long long)a->n_params);
    META("r", "%d", a->cfg.r);
    META("targets", "%u", a->cfg.targets);
#undef META
    if (!st && hook && hook->save) st = hook->save(w, hook->ud, err);
    if (!st) st = lt_st_writer_write(w, path, err);
    lt_st_writer_free(w);
    return st;
}

static int64_t meta_i64(const lt_safetensors *f, const char *k, bool *ok) {
    const char *v = lt_safetensors_meta(f, k);
    char *end;
    if (!v) { *ok = false; return 0; }
    long long x = strtoll(v, &end, 10);
    if (*end) *ok = false;
    return x;
}

lt_status lt_train_checkpoint_load(const char *path, lt_adapter *a, lt_train_state *s,
                                   const lt_train_opts *o, const lt_ckpt_hook *hook, lt_err *err) {
    lt_safetensors *f;
    lt_status st = lt_safetensors_open(path, &f, err);
    if (st) return st;
    bool ok = true;
    int64_t step = meta_i64(f, "step", &ok), epoch = meta_i64(f, "epoch", &ok),
            cursor = meta_i64(f, "cursor", &ok), np = meta_i64(f, "n_params", &ok),
            seed = meta_i64(f, "seed", &ok);
    const char *names[3] = {"params", "adam_m", "adam_v"};
    float *dst[3] = {a->params, s->m, s->v};
    if (!ok) {
        st = lt_err_set(err, LT_ERR_FORMAT, "%s: checkpoint metadata is incomplete", path);
    } else if (np != a->n_params || (uint64_t)seed != o->seed) {
        st = lt_err_set(err, LT_ERR_ARG, "%s: checkpoint is for another run (%lld parameters, "
                        "seed %lld; this run has %lld, seed %llu)", path, (long long)np,
                        (long long)seed, (long long)a->n_params, (unsigned long long)o->seed);
    }
    for (int i = 0; i < (s->q8 ? 1 : 3) && !st; i++) { // 8-bit moments: lt_adamw8_ckpt_load
        const lt_st_tensor *t = lt_safetensors_find(f, names[i]);
        if (!t || t->dtype != LT_DTYPE_F32 || t->numel != a->n_params)
            st = lt_err_set(err, LT_ERR_FORMAT, "%s: tensor %s missing or not F32[%lld]", path,
                            names[i], (long long)a->n_params);
        else memcpy(dst[i], t->data, sizeof(float) * (size_t)a->n_params);
    }
    if (!st && s->q8) st = lt_adamw8_ckpt_load(f, s->q8, path, err);
    if (!st && hook && hook->load) st = hook->load(f, hook->ud, err);
    if (!st) s->step = step, s->epoch = epoch, s->cursor = cursor;
    lt_safetensors_close(f);
    return st;
}

lt_status lt_eval_dataset(lt_model *m, const lt_dataset *d, int B, int T, int32_t pad_id,
                          double *mean_loss, lt_err *err) {
    lt_ctx *c = NULL;
    lt_ctx_opts co = {.B = B, .T = T};
    // a failure here still goes through the gathering below: the other ranks wait there
    lt_status st = lt_ctx_new(m, &co, &c, err);
    size_t bt = (size_t)B * (size_t)T;
    int32_t *ids = lt_alloc(bt * 4), *lab = lt_alloc(bt * 4), *km = lt_alloc(bt * 4);
    int64_t *idx = lt_alloc(sizeof(int64_t) * (size_t)B);
    double sum = 0;
    int64_t ntok = 0;
    const int R = lt_dist_rank(), N = lt_dist_size();
    if (!st && (!ids || !lab || !km || !idx)) st = lt_err_set(err, LT_ERR_OOM, "out of memory");
    // several ranks: batch k (rows kB ..) is rank k % N's; the sums are gathered below
    for (int64_t i = (int64_t)R * B; i < d->n && !st; i += (int64_t)B * N) {
        for (int b = 0; b < B; b++) idx[b] = i + b < d->n ? i + b : -1;
        lt_batch_fill(d, idx, B, T, pad_id, ids, lab, km);
        lt_batch bt_ = {.ids = ids, .labels = lab, .kmask = km};
        double s;
        st = lt_model_eval_loss(m, c, &bt_, &s, err);
        sum += s;
        ntok += lt_batch_n_targets(&bt_, B, T);
    }
    double tot[2] = {sum, (double)ntok};
    st = lt_train_reduce(NULL, tot, 2, st, err);
    sum = tot[0], ntok = (int64_t)tot[1];
    if (!st) *mean_loss = ntok ? sum / (double)ntok : NAN;
    lt_free(ids), lt_free(lab), lt_free(km), lt_free(idx);
    lt_ctx_free(c);
    return st;
}

static lt_status check_opts(const lt_train_opts *o, const lt_dataset *train, lt_err *err) {
    if (o->B <= 0 || o->T < 2 || o->grad_accum <= 0)
        return lt_err_set(err, LT_ERR_ARG, "batch %d, sequence %d, accumulation %d: all must be "
                          "positive (sequence >= 2)", o->B, o->T, o->grad_accum);
    if (!(o->lr >= 0) || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
        !(o->eps > 0) || !(o->weight_decay >= 0))
        return lt_err_set(err, LT_ERR_ARG, "bad optimizer settings (lr %g, betas %g %g, eps %g, "
                          "weight decay %g)", (double)o->lr, (double)o->beta1, (double)o->beta2,
                          (double)o->eps, (double)o->weight_decay);
    if (o->max_steps <= 0 && o->epochs <= 0)
        return lt_err_set(err, LT_ERR_ARG, "give a number of epochs or max steps");
    if (!train || train->n == 0) return lt_err_set(err, LT_ERR_ARG, "the training set is empty");
    return LT_OK;
}

lt_status lt_train(lt_model *m, lt_adapter *a, const lt_dataset *train, const lt_dataset *val,
                   const lt_train_opts *o, lt_train_result *res, lt_err *err) {
    lt_status st = check_opts(o, train, err); // same options on every rank: fails everywhere
    if (st) return st;
    const int B = o->B, T = o->T, A = o->grad_accum;
    const int R = lt_dist_rank(), N = lt_dist_size();
    const bool lead = R == 0, talk = lead && !o->quiet; // rank 0 alone writes and prints
    const int32_t pad = m->cfg.pad_id >= 0 ? m->cfg.pad_id : (m->cfg.eos_id >= 0 ? m->cfg.eos_id : 0);
    int64_t total = lt_train_total_steps(o, train->n), warmup = lt_train_warmup_steps(o, total);
    size_t bt = (size_t)B * (size_t)T * (size_t)A;
    char ckpt_path[4096] = "";
    lt_ctx *c = NULL;
    FILE *mf = NULL;
    lt_train_state s = {0};
    int32_t *ids = lt_alloc(bt * 4), *lab = lt_alloc(bt * 4), *km = lt_alloc(bt * 4);
    int64_t *perm = lt_alloc(sizeof(int64_t) * (size_t)train->n);
    int64_t *idx = lt_alloc(sizeof(int64_t) * (size_t)B * (size_t)A);
    res->first_loss = res->last_loss = res->first_eval = res->last_eval = NAN;
    res->seconds = res->tokens_per_s = 0;
    // Setup: failures here may be one rank's own (memory, files), so every rank reaches the
    // agreement below, which stops all of them together.
    if (!ids || !lab || !km || !perm || !idx) {
        st = lt_err_set(err, LT_ERR_OOM, "out of memory");
        goto setup_done;
    }
    if ((st = lt_train_state_init(&s, a->n_params, err))) goto setup_done;
    if ((st = lt_dist_reserve(a->n_params, err))) goto setup_done; // gradient sums
    if (o->optim == LT_OPTIM_ADAMW_8BIT && (st = lt_train_state_use_8bit(&s, a, err))) goto setup_done;
    lt_ctx_opts co = {.B = B, .T = T, .train = true, .checkpoint = o->checkpoint_activations};
    if ((st = lt_ctx_new(m, &co, &c, err))) goto setup_done;
    if (o->out_dir) {
        if (!lt_path_join(ckpt_path, sizeof ckpt_path, o->out_dir, "checkpoint.safetensors")) {
            st = lt_err_set(err, LT_ERR_ARG, "%s: path too long", o->out_dir);
            goto setup_done;
        }
        if (lead && (st = lt_mkdir_p(o->out_dir, err))) goto setup_done;
        // only rank 0 reads the checkpoint (the others' machines need not have it): its state
        // reaches them through lt_train_sync_state
        if (lead && o->resume && lt_file_exists(ckpt_path)) {
            if ((st = lt_train_checkpoint_load(ckpt_path, a, &s, o, NULL, err))) goto setup_done;
            if (talk) lt_info("resuming from %s at step %lld", ckpt_path, (long long)s.step);
        }
    }
    if (lead && o->metrics_path && !(mf = fopen(o->metrics_path, s.step > 0 ? "a" : "w")))
        st = lt_err_set(err, LT_ERR_IO, "%s: cannot open metrics file for writing", o->metrics_path);
setup_done:
    if ((st = lt_dist_agree(st, err))) goto done;
    if ((st = lt_train_sync_state(a, &s, err))) goto done; // identical start on every rank
    if (talk && N > 1) {
        lt_info("data parallel: %d ranks; micro-batch m of each step's %d runs on rank m mod %d; "
                "each rank sends %.2f MB per step", N, A, N,
                2.0 * (N - 1) / N * 4.0 * (double)a->n_params / 1e6);
        if (A % N) // ranks wait for the busiest at every step
            lt_warn("--accum %d is not a multiple of %d ranks: %d of every %d micro-batch slots "
                    "idle", A, N, N * ((A + N - 1) / N) - A, N * ((A + N - 1) / N));
    }
    lt_dataset_order(perm, train->n, o->seed, s.epoch);
    lt_progress pb;
    lt_progress_init(&pb, "train", (long)total, "step");
    double t0 = lt_time_sec(), tok_seen = 0, train_time = 0;
    int64_t start_step = s.step;
    while (s.step < total) {
        double ts = lt_time_sec();
        uint64_t sent0 = lt_dist_bytes_sent();
        // examples of this step: rows of the current epoch; past its end, padding rows. Every
        // rank fills the whole global batch, so every rank knows its number of loss tokens.
        lt_train_take(&s, perm, train->n, idx, B * A);
        int64_t ntgt = 0;
        for (int mb = 0; mb < A; mb++) {
            size_t off = (size_t)mb * (size_t)B * (size_t)T;
            lt_batch_fill(train, idx + mb * B, B, T, pad, ids + off, lab + off, km + off);
            lt_batch b = {.ids = ids + off, .labels = lab + off, .kmask = km + off};
            ntgt += lt_batch_n_targets(&b, B, T);
            for (size_t i = 0; i < (size_t)B * (size_t)T; i++) tok_seen += km[off + i];
        }
        float scale = ntgt > 0 ? 1.0f / (float)ntgt : 0.0f;
        lt_adapter_zero_grad(a);
        double loss_sum = 0;
        lt_status step_st = LT_OK;
        for (int mb = R; mb < A && !step_st; mb += N) { // this rank's micro-batches
            size_t off = (size_t)mb * (size_t)B * (size_t)T;
            lt_batch b = {.ids = ids + off, .labels = lab + off, .kmask = km + off};
            double ls = 0;
            step_st = lt_model_train_step(m, c, &b, scale, o->seed, s.step, &ls, err);
            loss_sum += ls;
        }
        // gradients and loss summed over ranks (one process: nothing moves)
        if ((st = lt_train_reduce(a, &loss_sum, 1, step_st, err))) goto done;
        double loss = ntgt ? loss_sum / (double)ntgt : NAN;
        float lr;
        double gnorm = lt_train_apply(a, &s, o, total, warmup, perm, train->n, &lr);
        train_time += lt_time_sec() - ts;
        if (s.step == start_step + 1) res->first_loss = loss;
        res->last_loss = loss;
        double el = lt_time_sec() - t0;
        if (mf) {
            fprintf(mf, "{\"step\": %lld, \"epoch\": %lld, \"loss\": %.6f, \"lr\": %.6g, "
                    "\"grad_norm\": %.6f, \"tokens\": %.0f, \"tokens_per_s\": %.1f, "
                    "\"elapsed_s\": %.3f", (long long)s.step, (long long)s.epoch, loss,
                    (double)lr, gnorm, tok_seen, train_time > 0 ? tok_seen / train_time : 0.0, el);
            if (N > 1) // bytes rank 0 sent in this step's sums (the other ranks send as many)
                fprintf(mf, ", \"ranks\": %d, \"sent_bytes\": %llu", N,
                        (unsigned long long)(lt_dist_bytes_sent() - sent0));
            fprintf(mf, "}\n");
            fflush(mf);
        }
        bool last = s.step == total;
        if (val && val->n > 0 && ((o->eval_every > 0 && s.step % o->eval_every == 0) || last)) {
            double ev;
            if ((st = lt_eval_dataset(m, val, B, T, pad, &ev, err))) goto done; // all ranks
            if (isnan(res->first_eval)) res->first_eval = ev;
            res->last_eval = ev;
            if (mf) {
                fprintf(mf, "{\"step\": %lld, \"eval_loss\": %.6f}\n", (long long)s.step, ev);
                fflush(mf);
            }
            if (talk) lt_info("step %lld: eval loss %.4f", (long long)s.step, ev);
        }
        if (talk) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f lr %.2e %.0f tok/s", loss, (double)lr,
                     train_time > 0 ? tok_seen / train_time : 0.0);
            lt_progress_update(&pb, (long)s.step, extra);
        }
        if (ckpt_path[0] && o->save_every > 0 && s.step % o->save_every == 0 && !last) {
            if (lead) st = lt_train_checkpoint_save(ckpt_path, a, &s, o, NULL, err);
            if ((st = lt_dist_agree(st, err))) goto done; // a failed write stops every rank
        }
        if (o->stop_after > 0 && s.step >= o->stop_after && !last) goto done; // simulated kill
    }
    if (talk) lt_progress_finish(&pb);
    if (o->out_dir) {
        if (lead && !(st = lt_adapter_save_peft(a, m, o->out_dir, err)) && lt_file_exists(ckpt_path))
            remove(ckpt_path); // the run is complete
        if ((st = lt_dist_agree(st, err))) goto done;
    }
    res->seconds = lt_time_sec() - t0;
    res->tokens_per_s = train_time > 0 ? tok_seen / train_time : 0;
done:
    res->steps = s.step;
    res->peak_rss_kb = lt_peak_rss_kb();
    res->optim_state_bytes = lt_train_state_bytes(&s, a->n_params);
    if (mf) fclose(mf);
    lt_ctx_free(c);
    lt_free(ids), lt_free(lab), lt_free(km), lt_free(perm), lt_free(idx);
    lt_train_state_deinit(&s);
    return st;
}
