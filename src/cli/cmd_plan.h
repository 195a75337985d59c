// cmd_plan.h - `loratune train --plan`: what cmd_train hands the planner (cmd_plan.c).
#ifndef LT_CMD_PLAN_H
#define LT_CMD_PLAN_H

#include "data/data.h"
#include "lora/lora.h"
#include "train/train.h"

typedef struct cli_plan_args {
    const char *model, *tok_path, *targets, *adapter_in; // as the train flags
    const lt_data_opts *data;      // data flags, filled as for training
    const lt_lora_config *lora;    // --r, --alpha, --dropout, ...
    const lt_train_opts *train;    // --batch, --seq, --accum, --grad-checkpoint, --optim, ...
    bool load_4bit, double_quant;  // --load-in-4bit, --double-quant
    bool json;                     // --json: one JSON object instead of the table
} cli_plan_args;

// Loads what training would load (model, tokenizer, data, adapter), prints the plan and returns
// the exit code. Environment: LT_MEM_AVAILABLE_MB overrides /proc/meminfo's MemAvailable.
int cmd_train_plan(const cli_plan_args *p);

#endif
