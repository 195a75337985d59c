// mpi_cls_train.c - classification training (lt_cls_train) of the tiny llama fixture under
// mpirun, for tests/mpi/run_mpi.sh: the synthetic 3-class task of tests/golden/test_cls_train.c
// (the class is the token range a sequence is drawn from), LoRA r=4 + head, dropout 0.1,
// --batch 2 --accum 4, 40 steps, validation every 10 (best macro-F1 kept), a test set at the end.
// Rank 0 prints one line of results (best step, validation and test figures, to 6 decimals) that
// must be the same for any number of ranks; the adapters in OUT are compared by the script.
// usage: mpi_cls_train OUT [STOP_AFTER [resume]]   (run from the repository root)
#include "dist/dist.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 3

static lt_status make_set(lt_cls_data *d, int n, uint64_t seed, lt_err *err) {
    lt_rng r;
    lt_rng_seed(&r, seed);
    lt_cls_data_init(d, K);
    for (int i = 0; i < n; i++) {
        int c = i % K, len = 4 + (int)lt_rng_below(&r, 9);
        int32_t ids[16];
        ids[0] = 1; // BOS
        for (int t = 1; t < len; t++) ids[t] = 20 + 60 * c + (int32_t)lt_rng_below(&r, 50);
        lt_status st = lt_cls_data_add(d, ids, len, c, err);
        if (st) return st;
    }
    return LT_OK;
}

int main(int argc, char **argv) {
    lt_err err = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: mpi_cls_train OUT [STOP_AFTER [resume]]\n");
        return 2;
    }
    if (lt_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "mpi_cls_train: %s\n", err.msg);
        return 1;
    }
    lt_model *m = NULL;
    lt_adapter *a = NULL;
    lt_cls_data tr = {0}, va = {0}, te = {0};
    lt_cls_train_result res = {0};
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1f, .layer_hi = -1, .n_labels = K};
    lt_status st = lt_model_load("tests/fixtures/llama/model", &m, &err);
    if (!st) st = make_set(&tr, 60, 1, &err);
    if (!st) st = make_set(&va, 30, 2, &err);
    if (!st) st = make_set(&te, 30, 3, &err);
    if (!st) st = lt_lora_parse_targets(m, "all", &lc.targets, &err);
    if (!st) st = lt_adapter_new(m, &lc, 11, &a, &err);
    if (!st) {
        lt_cls_train_opts o;
        lt_cls_train_opts_default(&o);
        o.t.lr = 1e-2f, o.t.B = 2, o.t.grad_accum = 4, o.t.T = 16, o.t.max_steps = 40;
        o.t.eval_every = 10, o.t.warmup_steps = 4, o.t.seed = 5, o.t.quiet = true;
        o.t.out_dir = argv[1], o.t.save_every = 5;
        o.t.stop_after = argc > 2 ? atoll(argv[2]) : 0;
        o.t.resume = argc > 3 && !strcmp(argv[3], "resume");
        o.pad_id = 0;
        o.plots = false;
        st = lt_cls_train(m, a, &tr, &va, &te, &o, &res, &err);
    }
    if (st) {
        if (lt_dist_rank() == 0) fprintf(stderr, "mpi_cls_train: %s\n", err.msg);
    } else if (lt_dist_rank() == 0 && res.steps == 40) {
        printf("best step %lld: validation loss %.6f macro-F1 %.6f; test accuracy %.6f loss %.6f\n",
               (long long)res.best_step, res.val.loss, res.val.macro_f1, res.test.accuracy,
               res.test.loss);
    }
    lt_cls_train_result_deinit(&res);
    lt_adapter_free(a);
    lt_cls_data_deinit(&tr), lt_cls_data_deinit(&va), lt_cls_data_deinit(&te);
    lt_model_free(m);
    lt_dist_finalize();
    return st ? 1 : 0;
}
