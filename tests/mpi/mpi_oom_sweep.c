// mpi_oom_sweep.c - a rank that fails in the middle of a job stops every rank, cleanly, with a
// message naming it. Under `mpirun -np 2`: for n = 0, 1, 2, ... rank F's (n+1)-th allocation
// fails (lt_alloc_fail_after) while lt_train runs 4 steps of the tiny llama with an evaluation
// and a checkpoint every 2 steps (F = 0 also fails inside the checkpoint and adapter writing).
// Every run must end on both ranks (a hang is caught by the caller's timeout) with the same
// status and the message "rank F: ..."; no file in OUT may be half-written (no temporary file
// left; an adapter_model.safetensors present opens). The sweep ends with the first run that
// completes without reaching the injected failure.
// usage: mpi_oom_sweep OUT F   (run from the repository root)
#include "dist/dist.h"
#include "io/io.h"
#include "train/train.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

// Whether dir holds only whole files: no "*.tmp.*" left by an interrupted write, and the
// adapter, when there, opens as a valid safetensors file.
static bool files_whole(const char *dir, const char *adapter) {
    DIR *d = opendir(dir);
    bool ok = true;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) ok = false;
    if (d) closedir(d);
    lt_safetensors *f = NULL;
    if (lt_file_exists(adapter) && lt_safetensors_open(adapter, &f, NULL)) ok = false;
    lt_safetensors_close(f);
    return ok;
}

int main(int argc, char **argv) {
    lt_err err = {0};
    if (argc != 3 || lt_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "usage: mpirun -np 2 mpi_oom_sweep OUT F (%s)\n", err.msg);
        return 2;
    }
    const int R = lt_dist_rank(), F = argv[2][0] == '0' ? 0 : 1;
    char want[16];
    snprintf(want, sizeof want, "rank %d: ", F);
    int pass = 0, fail = 0, runs = 0;
    lt_model *m = NULL;
    lt_dataset d;
    lt_dataset_init(&d);
    char ad[4096];
    snprintf(ad, sizeof ad, "%s/adapter_model.safetensors", argv[1]);
    lt_status st = lt_model_load("tests/fixtures/llama/model", &m, &err);
    if (!st) st = lt_dataset_read_ids_jsonl(&d, "tests/mpi/seq.ids.jsonl", 32, m->cfg.n_vocab, &err);
    if (st || lt_dist_size() != 2) {
        fprintf(stderr, "mpi_oom_sweep: %s\n", st ? err.msg : "needs 2 ranks");
        lt_dist_abort("setup failed");
    }
    for (long n = 0; n < 5000; n++) {
        lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.05f, .layer_hi = -1};
        lt_adapter *a = NULL;
        if (lt_lora_parse_targets(m, "all", &lc.targets, &err) || lt_adapter_new(m, &lc, 3, &a, &err))
            lt_dist_abort(err.msg);
        lt_train_opts o;
        lt_train_opts_default(&o);
        o.B = 2, o.T = 16, o.grad_accum = 2, o.max_steps = 4, o.eval_every = 2, o.save_every = 2;
        o.lr = 5e-3f, o.seed = 3, o.quiet = true, o.out_dir = argv[1];
        if (R == 0) remove(ad);
        lt_train_result res;
        long before = lt_alloc_injected_failures();
        if (R == F) lt_alloc_fail_after(n);
        lt_err e = {0};
        st = lt_train(m, a, &d, &d, &o, &res, &e);
        lt_alloc_fail_after(-1);
        // rank F's view (did the injection fire? its status) goes to every rank
        int mine[2] = {lt_alloc_injected_failures() > before, (int)st}, r1[2] = {mine[0], mine[1]};
        if (lt_dist_bcast(r1, sizeof r1, F, &err)) lt_dist_abort(err.msg);
        lt_adapter_free(a);
        runs++;
        if (!r1[0]) { // the run never reached the failure: it must have succeeded everywhere
            if (st || r1[1]) fail++, fprintf(stderr, "FAIL: n=%ld: no failure injected, status %d/%d: %s\n", n, (int)st, r1[1], e.msg);
            else pass++;
            break;
        }
        bool ok = st && r1[1] == (int)st && !strncmp(e.msg, want, strlen(want)) &&
                  (R != 0 || files_whole(argv[1], ad));
        if (ok) pass++;
        else if (fail++ < 5)
            fprintf(stderr, "FAIL: n=%ld: rank %d status %d (rank F: %d), \"%s\"%s\n", n, R,
                    (int)st, r1[1], e.msg, R == 0 && !files_whole(argv[1], ad) ? ", a file is not whole" : "");
        if (R == 0 && n == 0) printf("first failure: %s\n", e.msg);
    }
    if (R == 0)
        printf("oom sweep of rank %d: %d runs, each failure stopped both ranks naming it\n"
               "mpi_oom_sweep: %d passed, %d failed\n", F, runs, pass, fail);
    lt_dataset_deinit(&d);
    lt_model_free(m);
    lt_dist_finalize();
    return fail ? 1 : 0;
}
