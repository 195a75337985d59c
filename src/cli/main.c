// main.c - `loratune <command>`: dispatch, usage, and the shared flag parser.
#include "cli/cli.h"
#include "dist/dist.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LT_VERSION "0.1.0"

// Under mpirun, an error every rank knows of (lt_dist_agree) is printed once, by rank 0. One rank's
// own error (e.g. a file missing on its machine before training starts) is kept for main(), which
// shares it with the other ranks (they meet it in their next lt_dist_agree) before exiting.
static lt_err pending_err;
static bool has_pending_err = false;

int cli_fail(const lt_err *err) {
    if (lt_dist_size() > 1 && !lt_dist_failed_together()) {
        pending_err = *err;
        if (!pending_err.code) pending_err.code = LT_ERR_IO;
        has_pending_err = true;
    } else if (lt_dist_rank() == 0) {
        fprintf(stderr, "loratune: error: %s\n", err->msg[0] ? err->msg : lt_status_name(err->code));
    }
    return err->code == LT_ERR_ARG ? 2 : 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    if (lt_dist_rank() != 0) return 2; // every rank parsed the same flags: rank 0 says it
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loratune %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `loratune %s --help`)\n", cmd);
    va_end(ap);
    return 2;
}

static int parse_value(const char *cmd, const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_STR: *(const char **)o->dst = v; return 0;
    case OPT_INT:
    case OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v || (o->kind == OPT_INT && (x < INT_MIN || x > INT_MAX)))
            return cli_usage_error(cmd, "--%s expects an integer, got \"%s\"", o->name, v);
        if (o->kind == OPT_INT) *(int *)o->dst = (int)x;
        else *(int64_t *)o->dst = x;
        return 0;
    }
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (errno || *end || end == v || !isfinite(x))
            return cli_usage_error(cmd, "--%s expects a number, got \"%s\"", o->name, v);
        *(float *)o->dst = (float)x;
        return 0;
    }
    case OPT_BOOL: *(bool *)o->dst = true; return 0;
    }
    return 2;
}

int cli_parse(const char *cmd, int argc, char **argv, int first, const cli_opt *opts, int n_opts,
              const char **pos, int n_pos, int *n_pos_found) {
    int np = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (np >= n_pos) return cli_usage_error(cmd, "unexpected argument \"%s\"", a);
            pos[np++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == len && !strncmp(opts[k].name, name, len)) o = &opts[k];
        if (!o) return cli_usage_error(cmd, "unknown flag --%.*s", (int)len, name);
        const char *v;
        if (o->kind == OPT_BOOL) {
            if (eq) return cli_usage_error(cmd, "--%s takes no value", o->name);
            v = "1";
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return cli_usage_error(cmd, "--%s needs a value", o->name);
            v = argv[++i];
        }
        int rc = parse_value(cmd, o, v);
        if (rc) return rc;
    }
    if (n_pos_found) *n_pos_found = np;
    return 0;
}

void cli_print_opts(const cli_opt *opts, int n) {
    for (int i = 0; i < n; i++) {
        const char *arg = opts[i].kind == OPT_BOOL ? "" : opts[i].kind == OPT_STR ? " S" : " N";
        char left[48];
        snprintf(left, sizeof left, "--%s%s", opts[i].name, arg);
        printf("  %-26s %s\n", left, opts[i].help);
    }
}

static void usage(void) {
    printf("loratune %s - LoRA fine-tuning of decoder-only LLMs, in C\n\n"
           "usage: loratune <command> [flags]\n\n"
           "commands:\n"
           "  train     train a LoRA adapter (causal LM on text or token ids)\n"
           "  info      describe a model (architecture, sizes, parameter count)\n"
           "  demo-data write the built-in demo dataset (order messages -> JSON)\n"
           "  tokenize  show the ids of a dataset's first examples and which tokens carry loss\n"
           "  merge     merge an adapter into the base -> Hugging Face model directory\n"
           "  export    write a GGUF model (merged) or a GGUF LoRA adapter for llama.cpp\n"
           "  generate  generate text (or schema-constrained JSON) with or without an adapter\n"
           "  eval      exact match, JSON classification / field reports, perplexity; before/after\n"
           "  classify  label new texts with a classifier from train --task classify (JSONL)\n"
           "  sweep     train --task classify over a grid (lr, r, batch, template) -> one table\n"
           "  version   print the version\n\n"
           "`loratune <command> --help` lists a command's flags.\n",
           LT_VERSION);
}

static int run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *c = argv[1];
    if (lt_dist_size() > 1 && strcmp(c, "train")) {
        if (lt_dist_rank() == 0)
            fprintf(stderr, "loratune: only `train` runs as several processes (mpirun -np N)\n");
        return 2;
    }
    if (!strcmp(c, "train")) return cmd_train(argc, argv);
    if (!strcmp(c, "info")) return cmd_info(argc, argv);
    if (!strcmp(c, "demo-data")) return cmd_demo_data(argc, argv);
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc, argv);
    if (!strcmp(c, "merge")) return cmd_merge(argc, argv);
    if (!strcmp(c, "export")) return cmd_export(argc, argv);
    if (!strcmp(c, "generate")) return cmd_generate(argc, argv);
    if (!strcmp(c, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(c, "classify")) return cmd_classify(argc, argv);
    if (!strcmp(c, "sweep")) return cmd_sweep(argc, argv);
    if (!strcmp(c, "version") || !strcmp(c, "--version")) {
        printf("loratune %s\n", LT_VERSION);
        return 0;
    }
    fprintf(stderr, "loratune: unknown command \"%s\"\n\n", c);
    usage();
    return 2;
}

// Under mpirun (dist.h) MPI starts before any command and ends after it; a program started
// directly never starts MPI.
int main(int argc, char **argv) {
    lt_err err = {0};
    if (lt_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "loratune: error: %s\n", err.msg);
        return 1;
    }
    if (lt_dist_rank() != 0) { // rank 0 alone talks; the others print only errors
        lt_log_set_level(LT_LOG_ERROR);
        if (!freopen("/dev/null", "w", stdout)) lt_dist_abort("cannot redirect stdout");
    }
    int rc = run(argc, argv);
    if (has_pending_err) {
        lt_dist_agree(pending_err.code, &pending_err);
        if (lt_dist_rank() == 0) fprintf(stderr, "loratune: error: %s\n", pending_err.msg);
    }
    lt_dist_finalize();
    return rc;
}
