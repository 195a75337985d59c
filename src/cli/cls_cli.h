/*
 * cls_cli.h - the classification job shared by `loratune train --task classify` and
 * `loratune sweep` (cmd_classify.c, cmd_sweep.c): settings parsed from flags, one run from
 * records to report, and its headline numbers. Private to src/cli.
 */
#ifndef LT_CLS_CLI_H
#define LT_CLS_CLI_H

#include "cli/cli.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

typedef struct cls_job {
    const char *model, *tokenizer;
    const char *data, *val_data, *test_data;        // records; val/test files replace those splits
    const char *format, *columns, *header, *on_bad; // record reading (data.h lt_read_opts)
    const char *label_field;                        // default "label"
    const char *template_src;                       // {field} template; NULL: "{text}"
    const char *labels;                             // explicit label order "a,b,c", or NULL
    const char *split;                              // train,val,test proportions (default 80,10,10)
    bool balance;                                   // subsample every class to the smallest one
    int64_t max_per_class;                          // or cap each class (0: off)
    const char *class_weights;                      // auto | none | w1,w2,...
    const char *best_metric;                        // default macro_f1
    const char *out, *metrics, *targets, *sched, *optim;
    const char *compute;                            // --compute f32 | bf16
    lt_lora_config lc;
    lt_cls_train_opts co;
    bool quiet, no_plots;
} cls_job;

// Defaults of a classification job (r 8, alpha 16, lr 3e-4, 3 epochs, batch 8, seq 128, ...).
void cls_job_default(cls_job *j);
// The job's flags (pointing into j) into opts (room for CLS_JOB_MAX_OPTS); returns the count.
#define CLS_JOB_MAX_OPTS 64
int cls_job_opts(cls_job *j, cli_opt *opts);
// Checks flag values after parsing and fills derived settings; returns 0 or a usage error (2).
int cls_job_check(const char *cmd, cls_job *j);

typedef struct cls_job_result {
    int64_t n_train, n_val, n_test, steps, best_step;
    double val_acc, val_f1, val_loss, test_acc, test_f1, test_loss, seconds;
} cls_job_result;

// Runs one job on a loaded model and tokenizer: reads and splits the data, trains, writes the
// adapter, best/, report.json and curves.svg under j->out, prints a summary (stdout).
lt_status cls_job_run(lt_model *m, const lt_tokenizer *tok, const cls_job *j, cls_job_result *r,
                      lt_err *err);

#endif
