/*
 * cli.h - shared helpers of the `loratune` commands: flag parsing with validation and the one
 * place that turns an lt_status into a message and an exit code.
 */
#ifndef LT_CLI_H
#define LT_CLI_H

#include "core/core.h"
#include "tensor/tensor.h"

// Exit codes: 0 ok, 1 runtime failure (bad file, OOM...), 2 usage error.
int cli_fail(const lt_err *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) LT_PRINTF(2, 3);
// --compute f32|bf16 of train, classify, generate and eval: sets the process's matmul precision
// (ops.h) and warns when bf16 has no AMX to run on; returns 0 or a usage error naming cmd.
#define CLI_COMPUTE_HELP                                                                           \
    "f32 | bf16: bf16 = frozen-weight matmuls in bf16 with f32 accumulation, on AMX when the CPU " \
    "has it (like torch autocast; LoRA, norms, attention, loss and optimizer stay f32) (default f32)"
int cli_set_compute(const char *cmd, const char *compute);

// Flag parsing: flags are "--name value" or "--name=value"; booleans are "--name".
typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_FLOAT, OPT_BOOL } opt_kind;
typedef struct cli_opt {
    const char *name;
    opt_kind kind;
    void *dst;
    const char *help;
} cli_opt;
// Parses argv[first..argc) into opts; positional arguments go to pos (up to n_pos). Returns 0 or
// prints a usage error and returns 2.
int cli_parse(const char *cmd, int argc, char **argv, int first, const cli_opt *opts, int n_opts,
              const char **pos, int n_pos, int *n_pos_found);
void cli_print_opts(const cli_opt *opts, int n);

int cmd_train(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_demo_data(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
// Sequence classification (cmd_classify.c, cmd_sweep.c): `train --task classify`, `classify`,
// `sweep`. cli_train_task_is_classify: argv has --task with a value other than lm.
int cmd_train_classify(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
bool cli_train_task_is_classify(int argc, char **argv);
bool cli_ends_with(const char *s, const char *suf);
// --dtype of merge/export: f32|f16|bf16 (float32/...), "keep" when allow_keep, q8_0 when allow_q8.
bool cli_parse_dtype(const char *s, bool allow_keep, bool allow_q8, lt_dtype *out);
// The --verify report of merge/export (stdout).
struct lt_verify_result;
void cli_print_verify(const char *what, lt_dtype d, const struct lt_verify_result *r);
// A text argument: "@FILE" reads the file; otherwise \n, \t and \\ escapes become a newline, a
// tab and a backslash (shells do not expand them in quotes). *out is lt_alloc'd.
lt_status cli_text_arg(const char *arg, char **out, lt_err *err);
// --chat-template: a Jinja file, or a tokenizer_config.json whose "chat_template" is used.
lt_status cli_chat_template_arg(const char *path, char **out, lt_err *err);
// The tokenizer of a model: tok_path (llama2.c .bin, tokenizer.json (+ tokenizer_config.json
// beside it), HF directory or .gguf), else the model directory's tokenizer.json, else a GGUF
// model's vocabulary. m may be NULL (the llama2.c vocabulary size is then read from model_path).
struct lt_model;
struct lt_tokenizer;
lt_status cli_open_tokenizer(const char *tok_path, const char *model_path, const struct lt_model *m,
                             struct lt_tokenizer **out, lt_err *err);

#endif
