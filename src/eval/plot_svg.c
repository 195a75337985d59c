/*
 * plot_svg.c - line charts as standalone SVG 1.1 text (see plot.h): per panel a frame, grid lines,
 * ticks at 1/2/5 x 10^k with labels, axis titles, polylines, point markers and a legend box.
 * Deliberately plain: absolute coordinates, no CSS classes, no scripts, so every viewer (browsers,
 * rsvg, Inkscape, ImageMagick) draws the same thing.
 * Reference: SVG 1.1, https://www.w3.org/TR/SVG11/ (shapes, text, painting).
 */
#include "eval/plot.h"
#include "io/io.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

// Tableau 10, the matplotlib default cycle: readable on white and for most colour-blind readers.
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

typedef struct sv {
    char *p;
    size_t len, cap;
    bool oom;
} sv;

LT_PRINTF(2, 3) static void add(sv *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = s->cap - s->len;
        int w = vsnprintf(s->p ? s->p + s->len : NULL, room, fmt, ap);
        va_end(ap);
        if (w < 0) {
            s->oom = true;
            return;
        }
        if ((size_t)w < room) {
            s->len += (size_t)w;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 8192;
        while (cap - s->len <= (size_t)w) cap *= 2;
        char *np = lt_realloc(s->p, cap);
        if (!np) {
            s->oom = true;
            return;
        }
        s->p = np, s->cap = cap;
    }
}

static void add_escaped(sv *s, const char *t) {
    for (; t && *t; t++) {
        switch (*t) {
        case '<':
            add(s, "&lt;");
            break;
        case '>':
            add(s, "&gt;");
            break;
        case '&':
            add(s, "&amp;");
            break;
        case '"':
            add(s, "&quot;");
            break;
        default:
            if ((unsigned char)*t >= 0x20 || *t == '\t')
                add(s, "%c", *t); // no control chars in XML
        }
    }
}

int lt_plot_nice_ticks(double lo, double hi, int target, double *ticks, int max_ticks,
                       double *step) {
    if (!(hi > lo)) { // a flat or empty range: widen around the value
        double c = isfinite(lo) ? lo : 0, h = fabs(c) > 0 ? fabs(c) * 0.1 : 1.0;
        lo = c - h, hi = c + h;
    }
    if (target < 2) target = 2;
    double raw = (hi - lo) / (double)target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    double st = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    int n = 0;
    for (double v = ceil(lo / st - 1e-9) * st; v <= hi + st * 1e-9 && n < max_ticks; v += st)
        ticks[n++] = fabs(v) < st * 1e-9 ? 0.0 : v; // no "-0"
    if (step) *step = st;
    return n;
}

// Tick label with as many decimals as the step needs; thousands as "12k" when the step allows.
static void tick_label(double v, double step, char *buf, size_t n) {
    if (fabs(v) >= 10000 && fmod(step, 1000) == 0) {
        snprintf(buf, n, "%gk", v / 1000);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 8) dec = 8;
    snprintf(buf, n, "%.*f", dec, v);
}

typedef struct range {
    double lo, hi;
} range;

static range data_range(const lt_plot_panel *p, bool xaxis) {
    range r = {INFINITY, -INFINITY};
    for (int s = 0; s < p->n_series; s++) {
        const lt_plot_series *se = &p->series[s];
        for (int i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            double v = xaxis ? x : y;
            if (v < r.lo) r.lo = v;
            if (v > r.hi) r.hi = v;
        }
    }
    if (!(r.lo <= r.hi)) r.lo = 0, r.hi = 1; // no finite data
    return r;
}

static void render_panel(sv *s, const lt_plot_panel *p, double ox, double oy, double W, double H,
                         int *color_i) {
    const double ml = 72, mr = 18, mt = 34, mb = 52; // margins for tick labels and titles
    const double px = ox + ml, py = oy + mt, pw = W - ml - mr, ph = H - mt - mb;
    range xr = data_range(p, true), yr = data_range(p, false);
    if (p->y_fixed && p->y_max > p->y_min) {
        yr.lo = p->y_min, yr.hi = p->y_max;
    } else {
        if (p->y_zero && yr.lo >= 0) yr.lo = 0;
        double pad = (yr.hi - yr.lo) * 0.05;
        if (pad == 0) pad = fabs(yr.hi) > 0 ? fabs(yr.hi) * 0.1 : 0.5;
        if (!(p->y_zero && yr.lo == 0)) yr.lo -= pad;
        yr.hi += pad;
    }
    if (xr.hi == xr.lo) xr.lo -= 0.5, xr.hi += 0.5;
    if (xr.lo > 0 && xr.lo < 0.1 * (xr.hi - xr.lo)) xr.lo = 0; // counts (steps, examples) from 0
    double xt[32], yt[32], xs, ys;
    int nx = lt_plot_nice_ticks(xr.lo, xr.hi, 6, xt, 32, &xs);
    int ny = lt_plot_nice_ticks(yr.lo, yr.hi, 5, yt, 32, &ys);
#define MX(v) (px + ((v)-xr.lo) / (xr.hi - xr.lo) * pw)
#define MY(v) (py + ph - ((v)-yr.lo) / (yr.hi - yr.lo) * ph)
    // title
    add(s,
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">",
        px + pw / 2, oy + 22);
    add_escaped(s, p->title);
    add(s, "</text>\n");
    // grid and ticks
    char lb[48];
    for (int i = 0; i < ny; i++) {
        double y = MY(yt[i]);
        add(s,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\" "
            "stroke-width=\"1\"/>\n",
            px, y, px + pw, y);
        add(s,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" "
            "stroke-width=\"1\"/>\n",
            px - 5, y, px, y);
        tick_label(yt[i], ys, lb, sizeof lb);
        add(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%s</text>\n",
            px - 8, y + 4, lb);
    }
    for (int i = 0; i < nx; i++) {
        double x = MX(xt[i]);
        add(s,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\" "
            "stroke-width=\"1\"/>\n",
            x, py, x, py + ph);
        add(s,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" "
            "stroke-width=\"1\"/>\n",
            x, py + ph, x, py + ph + 5);
        tick_label(xt[i], xs, lb, sizeof lb);
        add(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n", x,
            py + ph + 19, lb);
    }
    // frame
    add(s,
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\" "
        "stroke-width=\"1\"/>\n",
        px, py, pw, ph);
    // axis titles
    add(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", px + pw / 2,
        oy + H - 12);
    add_escaped(s, p->xlabel);
    add(s,
        "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
        "transform=\"rotate(-90 %.1f %.1f)\">",
        ox + 18, py + ph / 2, ox + 18, py + ph / 2);
    add_escaped(s, p->ylabel);
    add(s, "</text>\n");
    // series, clipped to the plot area
    add(s,
        "<defs><clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
        "height=\"%.1f\"/></clipPath></defs>\n<g clip-path=\"url(#clip%d)\">\n",
        *color_i, px - 4, py - 4, pw + 8, ph + 8, *color_i);
    const char *colors[64];
    for (int k = 0; k < p->n_series && k < 64; k++) {
        const lt_plot_series *se = &p->series[k];
        const char *col =
            se->color ? se->color : palette[(size_t)k % (sizeof palette / sizeof *palette)];
        colors[k] = col;
        double wd = se->width > 0 ? se->width : 1.8;
        bool open = false;
        for (int i = 0; i < se->n; i++) {
            bool ok = isfinite(se->x[i]) && isfinite(se->y[i]);
            if (ok && !open) {
                add(s,
                    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                    "stroke-linejoin=\"round\"%s points=\"",
                    col, wd, se->dashed ? " stroke-dasharray=\"6 4\"" : "");
                open = true;
            } else if (!ok && open) {
                add(s, "\"/>\n");
                open = false;
            }
            if (ok) add(s, "%.1f,%.1f ", MX(se->x[i]), MY(se->y[i]));
        }
        if (open) add(s, "\"/>\n");
        if (se->markers)
            for (int i = 0; i < se->n; i++)
                if (isfinite(se->x[i]) && isfinite(se->y[i]))
                    add(s,
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\" stroke=\"white\" "
                        "stroke-width=\"0.8\"/>\n",
                        MX(se->x[i]), MY(se->y[i]), col);
    }
    add(s, "</g>\n");
    // legend (top right inside the plot area)
    if (p->n_series > 0) {
        double lw = 0;
        for (int k = 0; k < p->n_series; k++) {
            double l = (double)strlen(p->series[k].name ? p->series[k].name : "") * 7.0;
            if (l > lw) lw = l;
        }
        double bw = lw + 46, bh = 18.0 * p->n_series + 8, bx = px + pw - bw - 8, by = py + 8;
        // the corner whose box covers the fewest points (top right on ties)
        long best_hits = -1;
        for (int corner = 0; corner < 4; corner++) {
            double cx = corner & 1 ? px + 8 : px + pw - bw - 8,
                   cy = corner & 2 ? py + ph - bh - 8 : py + 8;
            long hits = 0;
            for (int k = 0; k < p->n_series; k++) {
                const lt_plot_series *se = &p->series[k];
                for (int i = 0; i < se->n; i++) {
                    if (!isfinite(se->x[i]) || !isfinite(se->y[i])) continue;
                    double X = MX(se->x[i]), Y = MY(se->y[i]);
                    hits += X >= cx - 4 && X <= cx + bw + 4 && Y >= cy - 4 && Y <= cy + bh + 4;
                }
            }
            if (best_hits < 0 || hits < best_hits) best_hits = hits, bx = cx, by = cy;
        }
        add(s,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
            "fill-opacity=\"0.85\" stroke=\"#bbb\" stroke-width=\"1\" rx=\"3\"/>\n",
            bx, by, bw, bh);
        for (int k = 0; k < p->n_series && k < 64; k++) {
            const lt_plot_series *se = &p->series[k];
            double y = by + 14 + 18.0 * k;
            add(s,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2.2\"%s/>\n",
                bx + 8, y - 4, bx + 32, y - 4, colors[k],
                se->dashed ? " stroke-dasharray=\"6 4\"" : "");
            if (se->markers)
                add(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n", bx + 20, y - 4,
                    colors[k]);
            add(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">", bx + 38, y);
            add_escaped(s, se->name);
            add(s, "</text>\n");
        }
    }
#undef MX
#undef MY
    (*color_i)++;
}

lt_status lt_plot_svg_render(const lt_plot_panel *panels, int n_panels, int cols, int panel_w,
                             int panel_h, const char *title, char **out, size_t *out_len,
                             lt_err *err) {
    if (n_panels < 1 || cols < 1)
        return lt_err_set(err, LT_ERR_ARG,
                          "a figure needs at least one panel and one column "
                          "(got %d panels, %d columns)",
                          n_panels, cols);
    for (int i = 0; i < n_panels; i++) {
        if (panels[i].n_series < 0 || (panels[i].n_series > 0 && !panels[i].series))
            return lt_err_set(err, LT_ERR_ARG, "panel %d: bad series list", i);
        if (panels[i].n_series > 64)
            return lt_err_set(err, LT_ERR_ARG, "panel %d: %d series (at most 64)", i,
                              panels[i].n_series);
        for (int k = 0; k < panels[i].n_series; k++) {
            const lt_plot_series *se = &panels[i].series[k];
            if (se->n < 0 || (se->n > 0 && (!se->x || !se->y)))
                return lt_err_set(err, LT_ERR_ARG, "panel %d series %d: %d points without data", i,
                                  k, se->n);
        }
    }
    double W = panel_w > 0 ? panel_w : 560, H = panel_h > 0 ? panel_h : 360;
    if (cols > n_panels) cols = n_panels;
    int rows = (n_panels + cols - 1) / cols;
    double top = title && title[0] ? 34 : 0;
    double FW = W * cols, FH = H * rows + top;
    sv s = {0};
    add(&s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
        "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
        FW, FH, FW, FH, FW, FH);
    if (top > 0) {
        add(&s,
            "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"17\" "
            "font-weight=\"bold\">",
            FW / 2);
        add_escaped(&s, title);
        add(&s, "</text>\n");
    }
    int clip_id = 0;
    for (int i = 0; i < n_panels; i++)
        render_panel(&s, &panels[i], W * (i % cols), top + H * (i / cols), W, H, &clip_id);
    add(&s, "</svg>\n");
    if (s.oom) {
        lt_free(s.p);
        return lt_err_set(err, LT_ERR_OOM, "out of memory rendering a plot");
    }
    *out = s.p;
    *out_len = s.len;
    return LT_OK;
}

lt_status lt_plot_svg_write(const char *path, const lt_plot_panel *panels, int n_panels, int cols,
                            int panel_w, int panel_h, const char *title, lt_err *err) {
    char *svg;
    size_t n;
    lt_status st =
        lt_plot_svg_render(panels, n_panels, cols, panel_w, panel_h, title, &svg, &n, err);
    if (st) return st;
    st = lt_write_file_atomic(path, svg, n, err);
    lt_free(svg);
    return st;
}
