/*
 * test_plot.c - SVG line charts: nice tick steps, the document's structure (one polyline per
 * unbroken run of finite points, markers, legend entries, escaped text), no NaN in coordinates,
 * argument errors, and the atomic file write.
 */
#include "eval/plot.h"
#include "io/io.h"
#include "test.h"

#include <unistd.h>

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_ticks(void) {
    double t[32], step;
    int n = lt_plot_nice_ticks(0, 1, 5, t, 32, &step);
    CHECK(n == 6 && fabs(step - 0.2) < 1e-12 && t[0] == 0 && fabs(t[5] - 1) < 1e-12);
    n = lt_plot_nice_ticks(0, 97, 6, t, 32, &step);
    CHECK(n == 5 && step == 20 && t[4] == 80);           // raw 16.2 -> 20
    n = lt_plot_nice_ticks(0.31, 0.69, 5, t, 32, &step); // raw 0.076 -> 0.1: 0.4 .. 0.6
    CHECK(n == 3 && fabs(step - 0.1) < 1e-12 && fabs(t[0] - 0.4) < 1e-12);
    n = lt_plot_nice_ticks(-1, 1, 4, t, 32, &step); // 0.5 steps, an exact 0 (no "-0")
    CHECK(n == 5 && step == 0.5 && t[2] == 0 && !signbit(t[2]));
    n = lt_plot_nice_ticks(3, 3, 5, t, 32, &step); // flat range widened around 3
    CHECK(n >= 2 && t[0] <= 3 && t[n - 1] >= 3);
    n = lt_plot_nice_ticks(0, 1e6, 5, t, 3, &step); // capped by max_ticks
    CHECK(n == 3);
}

static void test_render(void) {
    const double x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {2.0, 1.5, NAN, 1.0, 0.8, 0.7};
    const double xe[2] = {3, 6}, ye[2] = {1.2, 0.9};
    lt_plot_series s[2] = {{.name = "train <loss>", .x = x, .y = y, .n = 6},
                           {.name = "validation & co",
                            .x = xe,
                            .y = ye,
                            .n = 2,
                            .markers = true,
                            .dashed = true,
                            .color = "#ff7f0e"}};
    lt_plot_panel p[2] = {{.title = "Loss \"vs\" steps",
                           .xlabel = "step",
                           .ylabel = "loss",
                           .series = s,
                           .n_series = 2,
                           .y_zero = true},
                          {.title = "empty panel", .xlabel = "x", .ylabel = "y"}};
    char *svg = NULL;
    size_t n = 0;
    lt_err err = {0};
    CHECK_OK(lt_plot_svg_render(p, 2, 2, 0, 0, "figure & title", &svg, &n, &err), &err);
    if (!svg) return;
    CHECK(strlen(svg) == n);
    CHECK(!strncmp(svg, "<?xml", 5) && strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") &&
          strstr(svg, "</svg>\n"));
    CHECK(strstr(svg, "width=\"1120\" height=\"394\"")); // 2 panels of 560 x 360 + title band
    CHECK(count(svg, "<polyline") == 3);                 // the NaN breaks the first series in two
    CHECK(count(svg, "<circle") == 2 + 1);               // two markers + the legend's marker
    CHECK(strstr(svg, "stroke-dasharray") != NULL);
    CHECK(strstr(svg, "train &lt;loss&gt;") && strstr(svg, "validation &amp; co") &&
          strstr(svg, "Loss &quot;vs&quot; steps") && strstr(svg, "figure &amp; title"));
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
    CHECK(strstr(svg, ">0.0<") || strstr(svg, ">0<")); // y starts at 0 (y_zero)
    CHECK(strstr(svg, "empty panel") != NULL);
    lt_free(svg);
    // fixed y range: ticks 0..1
    lt_plot_panel q = {.title = "acc",
                       .xlabel = "step",
                       .ylabel = "accuracy",
                       .series = s,
                       .n_series = 1,
                       .y_fixed = true,
                       .y_min = 0,
                       .y_max = 1};
    CHECK_OK(lt_plot_svg_render(&q, 1, 1, 400, 300, NULL, &svg, &n, &err), &err);
    if (svg)
        CHECK(strstr(svg, ">1.0<") && strstr(svg, ">0.2<") &&
              strstr(svg, "width=\"400\" height=\"300\""));
    lt_free(svg);
    // argument errors
    svg = NULL;
    CHECK(lt_plot_svg_render(p, 0, 1, 0, 0, NULL, &svg, &n, &err) == LT_ERR_ARG && !svg);
    lt_plot_series bad = {.name = "x", .n = 3};
    lt_plot_panel pb = {.series = &bad, .n_series = 1};
    CHECK(lt_plot_svg_render(&pb, 1, 1, 0, 0, NULL, &svg, &n, &err) == LT_ERR_ARG);
    // the file
    char path[64];
    snprintf(path, sizeof path, "/tmp/lt_plot_%d.svg", (int)getpid());
    CHECK_OK(lt_plot_svg_write(path, p, 2, 1, 0, 0, NULL, &err), &err);
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(lt_read_file(path, &data, &len, &err), &err);
    CHECK(data && len > 1000 && strstr(data, "</svg>"));
    lt_free(data);
    unlink(path);
}

// Every allocation of a render may fail: an error, never a crash or a leak (ASan checks leaks).
static void test_alloc_failures(void) {
    const double x[3] = {0, 1, 2}, y[3] = {1, 2, 3};
    lt_plot_series s = {.name = "s", .x = x, .y = y, .n = 3};
    lt_plot_panel p = {.title = "t", .xlabel = "x", .ylabel = "y", .series = &s, .n_series = 1};
    int oom = 0;
    for (long k = 0; k < 50; k++) {
        char *svg = NULL;
        size_t n;
        lt_err err = {0};
        long before = lt_alloc_injected_failures();
        lt_alloc_fail_after(k);
        lt_status st = lt_plot_svg_render(&p, 1, 1, 0, 0, "t", &svg, &n, &err);
        long after = lt_alloc_injected_failures();
        lt_alloc_fail_after(-1);
        oom += st == LT_ERR_OOM;
        lt_free(svg);
        if (after == before) break;
    }
    CHECK(oom > 0);
}

int main(void) {
    test_ticks();
    test_render();
    test_alloc_failures();
    TEST_END();
}
