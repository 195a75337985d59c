/*
 * cli.h - shared helpers of the `loratune` commands: flag parsing with validation and the one
 * place that turns an lt_status into a message and an exit code.
 */
#ifndef LT_CLI_H
#define LT_CLI_H

#include "core/core.h"

// Exit codes: 0 ok, 1 runtime failure (bad file, OOM...), 2 usage error.
int cli_fail(const lt_err *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) LT_PRINTF(2, 3);

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

#endif
