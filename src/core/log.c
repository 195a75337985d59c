// log.c - stderr logging, a terminal progress bar with rate and ETA, timers and peak RSS.
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static lt_log_level log_level = LT_LOG_INFO; // set once by the CLI before any work starts

void lt_log_set_level(lt_log_level level) { log_level = level; }

void lt_log(lt_log_level level, const char *fmt, ...) {
    if (level > log_level) return;
    static const char *tags[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "[%s] ", tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double lt_time_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long lt_peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss;
}

void lt_progress_init(lt_progress *p, const char *label, long total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->tty = isatty(STDERR_FILENO) != 0;
    p->t_start = p->t_last_print = lt_time_sec();
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
}

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_print(lt_progress *p, bool final) {
    double now = lt_time_sec(), el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    double eta = (rate > 0 && p->total > 0) ? (double)(p->total - p->done) / rate : -1;
    char e1[32], e2[32];
    fmt_time(e1, sizeof e1, el);
    fmt_time(e2, sizeof e2, eta);
    if (p->tty) {
        int width = 28, fill = p->total > 0 ? (int)((double)width * (double)p->done / (double)p->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld %.2f %s/s %s<%s %s\033[K", p->label, bar, p->done, p->total,
                rate, p->unit, e1, e2, p->extra);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %ld/%ld (%.2f %s/s, elapsed %s, eta %s) %s\n", p->label, p->done, p->total,
                rate, p->unit, e1, e2, p->extra);
    }
    fflush(stderr);
    p->t_last_print = now;
    p->printed_done = p->done;
}

void lt_progress_update(lt_progress *p, long done, const char *extra) {
    p->done = done;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    double now = lt_time_sec();
    // terminal: redraw at most 10x a second; log: a line every 10 s (and at the end)
    double gap = p->tty ? 0.1 : 10.0;
    if (now - p->t_last_print >= gap) progress_print(p, false);
}

void lt_progress_finish(lt_progress *p) {
    // a log line for this count was already written: do not repeat it
    if (!p->tty && p->printed_done == p->done && p->done > 0) return;
    progress_print(p, true);
}
