/*
 * cmd_sweep.c - `loratune sweep`: `train --task classify` over a grid of settings (learning rate,
 * rank, alpha, batch size, epochs, dropout, prompt template) on one loaded model, each run in its
 * own directory, and one table of validation and test metrics per run (sweep.csv, sweep.md),
 * rewritten after every run so a stopped sweep keeps what it finished. The best run is the one
 * with the highest validation macro-F1 (ties: the lower validation loss, then the earlier run);
 * its test figures are the ones to quote, since the test split took no part in the choice.
 * Grid flags take comma lists (--lr 1e-4,3e-4 --r 4,8); --template may be given several times.
 * Every other flag is a `train --task classify` flag and holds for all runs.
 */
#include "cli/cls_cli.h"
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 32
#define MAX_RUNS 1000

typedef struct axis {
    const char *flag; // without "--"
    bool is_int;
    int n;
    double v[MAX_VALUES];
    const char *raw; // the list as given (for messages)
} axis;

enum { AX_LR = 0, AX_R, AX_ALPHA, AX_BATCH, AX_EPOCHS, AX_DROPOUT, AX_N };

static int parse_list(axis *ax, const char *list) {
    ax->raw = list;
    ax->n = 0;
    const char *p = list;
    for (;;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || (ax->is_int && (v != floor(v) || v < 1 || v > 1e6)) ||
            v < 0)
            return cli_usage_error("sweep", "--%s expects a comma list of %s, got \"%s\"", ax->flag,
                                   ax->is_int ? "positive integers" : "numbers >= 0", list);
        if (ax->n == MAX_VALUES)
            return cli_usage_error("sweep", "--%s: more than %d values", ax->flag, MAX_VALUES);
        ax->v[ax->n++] = v;
        if (*end == 0) return 0;
        if (*end != ',') return cli_usage_error("sweep", "--%s: bad list \"%s\"", ax->flag, list);
        p = end + 1;
    }
}

typedef struct run_row {
    double lr, alpha, dropout;
    int r, batch, epochs, tmpl;
    cls_job_result res;
    bool ok;
    char status[300];
    char dir[4096];
} run_row;

static void csv_field(FILE *f, const char *s) {
    bool quote = strpbrk(s, ",\"\n\r") != NULL;
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void md_field(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '\r' || *s == '\t')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static void fmt_num(char *b, size_t n, double v, const char *fmt) {
    if (isfinite(v))
        snprintf(b, n, fmt, v);
    else
        snprintf(b, n, "%s", "");
}

static int best_row(const run_row *rows, int n) {
    int b = -1;
    for (int i = 0; i < n; i++) {
        const cls_job_result *x = &rows[i].res;
        if (!rows[i].ok || !isfinite(x->val_f1)) continue;
        if (b < 0 || x->val_f1 > rows[b].res.val_f1 ||
            (x->val_f1 == rows[b].res.val_f1 && x->val_loss < rows[b].res.val_loss))
            b = i; // ties: the lower validation loss, then the earlier run
    }
    return b;
}

// sweep.csv and sweep.md under root, atomically.
static lt_status write_tables(const char *root, const run_row *rows, int n,
                              const char *const *tmpls, lt_err *err) {
    static const char *cols[] = {"run",           "lr",           "r",         "alpha",
                                 "dropout",       "batch",        "epochs",    "template",
                                 "val_accuracy",  "val_macro_f1", "val_loss",  "test_accuracy",
                                 "test_macro_f1", "test_loss",    "best_step", "steps",
                                 "seconds",       "adapter",      "status"};
    const int nc = (int)(sizeof cols / sizeof *cols);
    int best = best_row(rows, n);
    char path[4096];
    lt_afile af[2];
    const char *names[2] = {"sweep.csv", "sweep.md"};
    for (int t = 0; t < 2; t++) {
        if (!lt_path_join(path, sizeof path, root, names[t]))
            return lt_err_set(err, LT_ERR_ARG, "%s: path too long", root);
        lt_status st = lt_afile_open(&af[t], path, err);
        if (st) {
            if (t == 1) lt_afile_abort(&af[0]);
            return st;
        }
    }
    FILE *c = af[0].f, *m = af[1].f;
    for (int k = 0; k < nc; k++) fprintf(c, "%s%s", k ? "," : "", cols[k]);
    fprintf(c, ",best\n");
    fprintf(m, "| best |");
    for (int k = 0; k < nc; k++) fprintf(m, " %s |", cols[k]);
    fprintf(m, "\n|---|");
    for (int k = 0; k < nc; k++) fprintf(m, "---|");
    fprintf(m, "\n");
    for (int i = 0; i < n; i++) {
        const run_row *w = &rows[i];
        char v[19][64];
        snprintf(v[0], 64, "%d", i + 1);
        snprintf(v[1], 64, "%g", w->lr);
        snprintf(v[2], 64, "%d", w->r);
        snprintf(v[3], 64, "%g", w->alpha);
        snprintf(v[4], 64, "%g", w->dropout);
        snprintf(v[5], 64, "%d", w->batch);
        snprintf(v[6], 64, "%d", w->epochs);
        fmt_num(v[8], 64, w->res.val_acc, "%.4f");
        fmt_num(v[9], 64, w->res.val_f1, "%.4f");
        fmt_num(v[10], 64, w->res.val_loss, "%.4f");
        fmt_num(v[11], 64, w->res.test_acc, "%.4f");
        fmt_num(v[12], 64, w->res.test_f1, "%.4f");
        fmt_num(v[13], 64, w->res.test_loss, "%.4f");
        snprintf(v[14], 64, "%lld", (long long)w->res.best_step);
        snprintf(v[15], 64, "%lld", (long long)w->res.steps);
        fmt_num(v[16], 64, w->res.seconds, "%.1f");
        const char *tm = tmpls[w->tmpl] ? tmpls[w->tmpl] : "{text}";
        for (int k = 0; k < nc; k++) {
            const char *s = k == 7 ? tm : k == 17 ? w->dir : k == 18 ? w->status : v[k];
            if (k) fputc(',', c);
            csv_field(c, s);
        }
        fprintf(c, ",%s\n", i == best ? "1" : "0");
        fprintf(m, "| %s |", i == best ? "**best**" : "");
        for (int k = 0; k < nc; k++) {
            const char *s = k == 7 ? tm : k == 17 ? w->dir : k == 18 ? w->status : v[k];
            fputc(' ', m);
            if (k == 7) fputc('`', m);
            md_field(m, s);
            if (k == 7) fputc('`', m);
            fprintf(m, " |");
        }
        fprintf(m, "\n");
    }
    if (best >= 0)
        fprintf(m,
                "\nBest by validation macro-F1: run %d (validation macro-F1 %.4f, test accuracy "
                "%.4f, test macro-F1 %.4f), adapter %s/best.\n",
                best + 1, rows[best].res.val_f1, rows[best].res.test_acc, rows[best].res.test_f1,
                rows[best].dir);
    lt_status st = lt_afile_commit(&af[0], err);
    if (st) {
        lt_afile_abort(&af[1]);
        return st;
    }
    return lt_afile_commit(&af[1], err);
}

int cmd_sweep(int argc, char **argv) {
    axis ax[AX_N] = {{"lr", false, 0, {0}, NULL},    {"r", true, 0, {0}, NULL},
                     {"alpha", false, 0, {0}, NULL}, {"batch", true, 0, {0}, NULL},
                     {"epochs", true, 0, {0}, NULL}, {"dropout", false, 0, {0}, NULL}};
    const char *tmpls[MAX_VALUES];
    int n_tmpl = 0, rc;
    // 1. take the grid flags out of argv; the rest are job flags
    char **rest = lt_alloc(sizeof(char *) * (size_t)(argc + 1));
    int nrest = 0;
    if (!rest) {
        fprintf(stderr, "loratune sweep: out of memory\n");
        return 1;
    }
    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int hit = -1;
        bool is_tmpl = false;
        size_t len = 0;
        if (!strncmp(a, "--", 2)) {
            const char *eq = strchr(a + 2, '=');
            len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            for (int k = 0; k < AX_N; k++)
                if (strlen(ax[k].flag) == len && !strncmp(a + 2, ax[k].flag, len)) hit = k;
            is_tmpl = len == 8 && !strncmp(a + 2, "template", 8);
        }
        if (hit < 0 && !is_tmpl) {
            rest[nrest++] = argv[i];
            continue;
        }
        const char *v = a[2 + len] == '=' ? a + 3 + len : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            lt_free(rest);
            return cli_usage_error("sweep", "%s needs a value", a);
        }
        if (is_tmpl) {
            if (n_tmpl == MAX_VALUES) {
                lt_free(rest);
                return cli_usage_error("sweep", "more than %d templates", MAX_VALUES);
            }
            tmpls[n_tmpl++] = v;
        } else if ((rc = parse_list(&ax[hit], v))) {
            lt_free(rest);
            return rc;
        }
    }
    rest[nrest] = NULL;
    // 2. the job flags
    cls_job base;
    cls_job_default(&base);
    base.out = "out/sweep";
    cli_opt opts[CLS_JOB_MAX_OPTS];
    int n = cls_job_opts(&base, opts);
    bool help = false;
    opts[n++] = (cli_opt){"help", OPT_BOOL, &help, "this help"};
    rc = cli_parse("sweep", nrest, rest, 2, opts, n, NULL, 0, NULL);
    lt_free(rest);
    if (rc) return rc;
    if (help) {
        printf(
            "usage: loratune sweep --model PATH --data FILE [grid flags] [train --task classify "
            "flags]\n\n"
            "grid flags (comma lists; every combination is one run):\n"
            "  --lr LIST                  learning rates, e.g. 1e-4,3e-4,1e-3\n"
            "  --r LIST                   LoRA ranks, e.g. 4,8,16\n"
            "  --alpha LIST               lora_alpha values (default: the --alpha of all runs)\n"
            "  --batch LIST               micro-batch sizes\n"
            "  --epochs LIST              epochs\n"
            "  --dropout LIST             LoRA dropout values\n"
            "  --template T               a prompt template; give it again for more (\\n escapes, "
            "@FILE)\n\n"
            "Runs go to <out>/run_NNN (default out = out/sweep); the table to <out>/sweep.csv and\n"
            "<out>/sweep.md; the best run has the highest validation macro-F1\n(ties: the lower "
            "validation loss).\n\nflags of every "
            "run:\n");
        cli_print_opts(opts, n);
        return 0;
    }
    if ((rc = cls_job_check("sweep", &base))) return rc;
    // defaults of axes not given: the base job's value
    double base_v[AX_N] = {base.co.t.lr, base.lc.r,        base.lc.alpha,
                           base.co.t.B,  base.co.t.epochs, base.lc.dropout};
    long total = n_tmpl ? n_tmpl : 1;
    for (int k = 0; k < AX_N; k++) {
        if (ax[k].n == 0) ax[k].v[0] = base_v[k], ax[k].n = 1;
        total *= ax[k].n;
        if (total > MAX_RUNS)
            return cli_usage_error("sweep", "the grid has more than %d runs", MAX_RUNS);
    }
    if (n_tmpl == 0) tmpls[n_tmpl++] = base.template_src;
    run_row *rows = lt_calloc((size_t)total, sizeof(run_row));
    if (!rows) {
        fprintf(stderr, "loratune sweep: out of memory\n");
        return 1;
    }
    lt_err err = {0};
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    double t0 = lt_time_sec();
    lt_status st = lt_model_load(base.model, &m, &err);
    if (!st) st = cli_open_tokenizer(base.tokenizer, base.model, m, &tok, &err);
    if (!st) st = lt_mkdir_p(base.out, &err);
    if (st) {
        lt_free(rows);
        lt_tokenizer_free(tok);
        lt_model_free(m);
        return cli_fail(&err);
    }
    printf("sweep: %ld runs on %s -> %s\n", total, base.model, base.out);
    for (long i = 0; i < total; i++) {
        long q = i;
        int pick[AX_N + 1];
        pick[AX_N] = (int)(q % n_tmpl), q /= n_tmpl; // the template varies fastest, lr slowest
        for (int k = AX_N - 1; k >= 0; k--) pick[k] = (int)(q % ax[k].n), q /= ax[k].n;
        run_row *w = &rows[i];
        cls_job j = base;
        j.co.t.lr = (float)ax[AX_LR].v[pick[AX_LR]];
        j.lc.r = (int)ax[AX_R].v[pick[AX_R]];
        j.lc.alpha = (float)ax[AX_ALPHA].v[pick[AX_ALPHA]];
        j.co.t.B = (int)ax[AX_BATCH].v[pick[AX_BATCH]];
        j.co.t.epochs = (int)ax[AX_EPOCHS].v[pick[AX_EPOCHS]];
        j.lc.dropout = (float)ax[AX_DROPOUT].v[pick[AX_DROPOUT]];
        j.template_src = tmpls[pick[AX_N]];
        j.metrics = NULL;
        char sub[32];
        snprintf(sub, sizeof sub, "run_%03ld", i + 1);
        if (!lt_path_join(w->dir, sizeof w->dir, base.out, sub)) {
            err.code = LT_ERR_ARG;
            snprintf(err.msg, sizeof err.msg, "%s: path too long", base.out);
            st = LT_ERR_ARG;
            break;
        }
        j.out = w->dir;
        w->lr = j.co.t.lr, w->r = j.lc.r, w->alpha = j.lc.alpha, w->batch = j.co.t.B;
        w->epochs = j.co.t.epochs, w->dropout = j.lc.dropout, w->tmpl = pick[AX_N];
        printf("\n=== run %ld/%ld: lr %g, r %d, alpha %g, batch %d, epochs %d, dropout %g, "
               "template %d -> %s\n",
               i + 1, total, w->lr, w->r, w->alpha, w->batch, w->epochs, w->dropout, w->tmpl + 1,
               w->dir);
        fflush(stdout);
        lt_err e = {0};
        lt_status rs = cls_job_run(m, tok, &j, &w->res, &e);
        w->ok = rs == LT_OK;
        snprintf(w->status, sizeof w->status, "%s", rs ? e.msg : "ok");
        if (rs) fprintf(stderr, "loratune sweep: run %ld failed: %s\n", i + 1, e.msg);
        if (rs == LT_ERR_OOM) break;
        if ((st = write_tables(base.out, rows, (int)(i + 1), tmpls, &err))) break;
    }
    int best = best_row(rows, (int)total);
    if (!st) {
        printf("\nsweep done: %ld runs in %.1f s; table: %s/sweep.csv, %s/sweep.md\n", total,
               lt_time_sec() - t0, base.out, base.out);
        printf("%-4s %-8s %-3s %-6s %-5s %-6s %-4s %-8s %-8s %-8s %-8s\n", "run", "lr", "r",
               "alpha", "batch", "epochs", "tmpl", "val_acc", "val_f1", "test_acc", "test_f1");
        for (long i = 0; i < total; i++) {
            const run_row *w = &rows[i];
            printf("%-4ld %-8g %-3d %-6g %-5d %-6d %-4d %-8.4f %-8.4f %-8.4f %-8.4f%s%s\n", i + 1,
                   w->lr, w->r, w->alpha, w->batch, w->epochs, w->tmpl + 1, w->res.val_acc,
                   w->res.val_f1, w->res.test_acc, w->res.test_f1,
                   i == best ? "  <- best (validation macro-F1)" : "", w->ok ? "" : "  FAILED");
        }
        if (best >= 0) printf("best adapter: %s/best\n", rows[best].dir);
    }
    lt_free(rows);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    if (st) return cli_fail(&err);
    return best >= 0 ? 0 : 1;
}
