// optim.c - AdamW (torch.optim.AdamW, single-tensor path), schedules, gradient clipping.
#include "train/train.h"

#include <math.h>

void lt_train_opts_default(lt_train_opts *o) {
    *o = (lt_train_opts){.lr = 2e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                         .weight_decay = 0.0f, .max_grad_norm = 1.0f, .sched = LT_SCHED_COSINE,
                         .warmup_ratio = 0.0f, .epochs = 1, .B = 4, .T = 256, .grad_accum = 1,
                         .seed = 42};
}

float lt_sched_factor(lt_sched_kind k, int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return (float)step / (float)(warmup > 1 ? warmup : 1);
    if (k == LT_SCHED_CONSTANT) return 1.0f;
    double span = (double)(total - warmup > 1 ? total - warmup : 1);
    double progress = (double)(step - warmup) / span;
    if (k == LT_SCHED_LINEAR) {
        double f = (double)(total - step) / span;
        return (float)(f > 0 ? f : 0);
    }
    double f = 0.5 * (1.0 + cos(M_PI * progress)); // num_cycles = 0.5
    return (float)(f > 0 ? f : 0);
}

int64_t lt_train_warmup_steps(const lt_train_opts *o, int64_t total) {
    if (o->warmup_steps > 0) return o->warmup_steps;
    return (int64_t)ceil((double)o->warmup_ratio * (double)total);
}

int64_t lt_train_total_steps(const lt_train_opts *o, int64_t n) {
    if (o->max_steps > 0) return o->max_steps;
    int64_t per = (int64_t)o->B * o->grad_accum;
    return (int64_t)o->epochs * ((n + per - 1) / per);
}

void lt_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float b1,
                     float b2, float eps, float wd, int64_t t) {
    double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * wd, w1 = 1.0f - b1, w2 = 1.0f - b2;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t i = 0; i < n; i++) {
        p[i] *= decay;
        m[i] += w1 * (g[i] - m[i]); // lerp, as torch does
        v[i] = v[i] * b2 + w2 * g[i] * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

double lt_clip_grad_norm(float *g, int64_t n, float max_norm) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    double norm = sqrt(s);
    if (max_norm > 0) {
        double coef = (double)max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (int64_t i = 0; i < n; i++) g[i] *= (float)coef;
    }
    return norm;
}
