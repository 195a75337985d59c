/*
 * plot.h - line charts written as standalone SVG (hand-written: no plotting library, no Python),
 * for training curves a person opens in a browser or image viewer.
 *
 * A figure is a grid of panels; each panel has a title, axis labels, "nice" ticks (1, 2, 5 x 10^k)
 * with labels and light grid lines, one polyline per series (optionally dashed and/or with point
 * markers) and a legend. Non-finite points are skipped (the line breaks there). Axis ranges come
 * from the finite data (y may be forced to start at 0, or fixed, e.g. [0, 1] for accuracy).
 * Text is XML-escaped. Not here: log axes, bar charts, PNG output.
 */
#ifndef LT_PLOT_H
#define LT_PLOT_H

#include "core/core.h"

typedef struct lt_plot_series {
    const char *name;    // legend text
    const double *x, *y; // (n) each; borrowed for the call
    int n;
    const char *color; // CSS colour, e.g. "#1f77b4"; NULL picks from a palette
    bool dashed;
    bool markers; // draw a dot at each point (for sparse series such as evaluations)
    float width;  // stroke width in px; 0: 1.8
} lt_plot_series;

typedef struct lt_plot_panel {
    const char *title, *xlabel, *ylabel;
    const lt_plot_series *series;
    int n_series;
    bool y_zero;  // the y axis starts at 0 (when all data are >= 0)
    bool y_fixed; // use [y_min, y_max] instead of the data range
    double y_min, y_max;
} lt_plot_panel;

// Renders panels in a grid of `cols` columns (each panel panel_w x panel_h px; 0: 560 x 360)
// under an optional figure title. *out is NUL-terminated, allocated with lt_alloc; the caller
// lt_frees it. Errors: LT_ERR_ARG (no panels, cols < 1, a series with n < 0 or missing x/y),
// LT_ERR_OOM.
lt_status lt_plot_svg_render(const lt_plot_panel *panels, int n_panels, int cols, int panel_w,
                             int panel_h, const char *title, char **out, size_t *out_len,
                             lt_err *err);
// The same written to path atomically.
lt_status lt_plot_svg_write(const char *path, const lt_plot_panel *panels, int n_panels, int cols,
                            int panel_w, int panel_h, const char *title, lt_err *err);

// Tick positions for [lo, hi]: step = 1, 2 or 5 x 10^k giving about `target` ticks; writes up
// to max_ticks values into ticks and returns the count. lo == hi is widened first.
int lt_plot_nice_ticks(double lo, double hi, int target, double *ticks, int max_ticks,
                       double *step);

#endif
