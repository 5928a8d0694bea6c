/* svg.c - SVG line charts of training curves and search progress (nasc_export.h).
 *
 * The writer works in three steps: fit the axes to the usable points (finite
 * x and y), lay the picture out from the tick labels and the legend, then
 * draw. Nothing is allocated but the output buffer: a thinned series is
 * walked bucket by bucket, so a 100k-point curve costs no scratch memory. */
#include "nasc_export.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    SIZE_W_DEFAULT = 720,
    SIZE_H_DEFAULT = 420,
    SIZE_W_MIN = 200,
    SIZE_H_MIN = 150,
    SIZE_LIMIT = 16384,
    PLOT_MIN = 60,                                /* smallest plot area side, px */
    THIN_BUCKETS = NASC_PLOT_MAX_POINTS / 4,      /* first, min, max, last of each */
    TICKS_MAX = 8,
    SERIES_MAX = 100000, /* keeps the legend's height (18 px a row) an int */
};

/* Values beyond this are treated like infinities: the axis arithmetic
 * (differences of two values, a 10% pad) then never overflows. */
#define VALUE_MAX 1e300
#define CHAR_W 6.6 /* mean glyph advance at font-size 11, px */

/* Okabe & Ito's colour-blind-safe palette without its yellow, which is too
 * pale on white. Series past the seventh reuse the colours with a dash
 * pattern (lines) or hollow markers. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000"};
enum { N_COLOURS = sizeof palette / sizeof palette[0] };
static const char *const dashes[] = {NULL, "6 3", "2 3", "8 3 2 3"};

/* ------------------------------------------------------------------ */
/* text                                                                */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p that is also an XML character, or
 * 0 when there is none. */
static size_t utf8_len(const unsigned char *p) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2, cp = p[0] & 0x1fu;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) n = 3, cp = p[0] & 0x0fu;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) n = 4, cp = p[0] & 0x07u;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
        cp == 0xffff)
        return 0;
    return n;
}

/* Append s as XML text: the five markup characters become entities, tabs
 * and newlines spaces, other control characters are dropped (XML 1.0 has
 * no way to write them) and bytes that are not UTF-8 become '?'. Any label
 * thus gives a well-formed document. */
static void put_text(nasc_buf *b, const char *str) {
    const unsigned char *s = (const unsigned char *)str, *run = s;
    while (*s) {
        const char *rep = NULL;
        size_t len = 1;
        if (*s == '&') rep = "&amp;";
        else if (*s == '<') rep = "&lt;";
        else if (*s == '>') rep = "&gt;";
        else if (*s == '"') rep = "&quot;";
        else if (*s == '\'') rep = "&apos;";
        else if (*s == '\t' || *s == '\n' || *s == '\r') rep = " ";
        else if (*s < 0x20 || *s == 0x7f) rep = "";
        else if (*s >= 0x80 && !(len = utf8_len(s))) len = 1, rep = "?";
        if (!rep) {
            s += len;
            continue;
        }
        nasc_buf_append(b, (const char *)run, (size_t)(s - run));
        nasc_buf_append(b, rep, strlen(rep));
        s += len;
        run = s;
    }
    nasc_buf_append(b, (const char *)run, (size_t)(s - run));
}

/* Estimated width of s in px: code points times a mean advance. */
static double text_width(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return (double)n * CHAR_W;
}

/* ------------------------------------------------------------------ */
/* axes                                                                */
/* ------------------------------------------------------------------ */

typedef struct axis {
    double data_lo, data_hi; /* the usable values' range */
    bool any;               /* were there usable values at all? */
    double lo, hi;          /* drawn range: the data range out to whole steps */
    long long first, last;  /* ticks are i * step for i in [first, last] */
    int m, k;               /* step = m * 10^k, m in {1, 2, 5} */
    bool sci;               /* labels in %e form */
    int digits;             /* decimals of the label (fixed or mantissa) */
    double label_w;         /* widest tick label, px */
} axis;

static double tick_value(const axis *a, long long i) {
    double u = (double)(i * a->m);
    return a->k < 0 ? u / pow(10, -a->k) : u * pow(10, a->k);
}

static void tick_label(const axis *a, long long i, char *dst, size_t size) {
    double v = tick_value(a, i);
    snprintf(dst, size, a->sci ? "%.*e" : "%.*f", a->digits, v);
}

/* Fit ticks to the data range: the smallest 1/2/5 x 10^k step that needs
 * at most max_ticks ticks once the range is widened to whole steps. With
 * max_ticks = 8 its predecessor needed 9 or more, so the range spans more
 * than 6 of those steps, hence more than 2.4 of ours (steps grow by at most
 * 2.5x): at least 4 ticks. A range that is a point (or nearly) is padded
 * first; no data at all is 0..1. */
static void axis_fit(axis *a, int max_ticks) {
    static const int ms[3] = {1, 2, 5};
    double lo = a->any ? a->data_lo : 0, hi = a->any ? a->data_hi : 1;
    double mag = fmax(fabs(lo), fabs(hi));
    if (hi - lo < fmax(mag * 1e-9, 1e-280)) {
        if (mag < 1e-270) {
            lo = -1, hi = 1;
        } else {
            double c = lo / 2 + hi / 2;
            lo = c - mag * 0.1, hi = c + mag * 0.1;
        }
    }
    /* k0 starts a step below (hi - lo) / max_ticks, which always needs too
     * many ticks; 10^(k0 + 4) is far above it and always fits. */
    int k0 = (int)floor(log10((hi - lo) / max_ticks)) - 1;
    bool done = false;
    for (int k = k0; k <= k0 + 4 && !done; k++) {
        for (int j = 0; j < 3 && !done; j++) {
            double step = ms[j] * pow(10, k);
            double f = floor(lo / step + 1e-9), l = ceil(hi / step - 1e-9);
            done = l - f + 1 <= max_ticks;
            a->m = ms[j], a->k = k;
            a->first = (long long)f, a->last = (long long)l;
        }
    }
    a->lo = tick_value(a, a->first);
    a->hi = tick_value(a, a->last);
    double big = fmax(fabs(a->lo), fabs(a->hi));
    a->sci = a->k < -4 || big >= 1e6;
    if (a->sci) {
        int d = (int)floor(log10(big)) - a->k;
        a->digits = d < 0 ? 0 : d > 15 ? 15 : d;
    } else {
        a->digits = a->k < 0 ? -a->k : 0;
    }
    a->label_w = 0;
    for (long long i = a->first; i <= a->last; i++) {
        char t[64];
        tick_label(a, i, t, sizeof t);
        a->label_w = fmax(a->label_w, text_width(t));
    }
}

/* ------------------------------------------------------------------ */
/* points                                                              */
/* ------------------------------------------------------------------ */

static double sx(const nasc_plot_series *s, long long i) { return s->x ? s->x[i] : (double)i; }

static bool usable(const nasc_plot_series *s, long long i) {
    double x = sx(s, i), y = s->y[i];
    return isfinite(x) && isfinite(y) && fabs(x) <= VALUE_MAX && fabs(y) <= VALUE_MAX;
}

/* Is there a point that is not drawn strictly between a and b? Then the
 * line breaks there. */
static bool gap_between(const nasc_plot_series *s, int a, int b) {
    for (int i = a + 1; i < b; i++)
        if (!usable(s, i)) return true;
    return false;
}

/* Walks the indices of the points that are drawn, in order. A series with
 * at most NASC_PLOT_MAX_POINTS usable points is drawn whole; a longer one
 * is cut into THIN_BUCKETS runs of consecutive points and each run keeps
 * its first, lowest, highest and last usable point (first occurrences), so
 * the envelope of the curve and its extremes survive. */
typedef struct point_iter {
    const nasc_plot_series *s;
    bool thin;
    int next;            /* whole series: the next index to look at */
    int bucket;          /* thinned: the next bucket to fill */
    int kept[4], n_kept; /* thinned: the current bucket's points, ascending */
    int pos;             /* thinned: the next of kept[] to return */
} point_iter;

static void iter_init(point_iter *it, const nasc_plot_series *s, int n_usable) {
    memset(it, 0, sizeof *it);
    it->s = s;
    it->thin = n_usable > NASC_PLOT_MAX_POINTS;
}

static void fill_bucket(point_iter *it) {
    const nasc_plot_series *s = it->s;
    int b0 = (int)((long long)it->bucket * s->n / THIN_BUCKETS);
    int b1 = (int)((long long)(it->bucket + 1) * s->n / THIN_BUCKETS);
    int first = -1, last = -1, lo = -1, hi = -1;
    for (int i = b0; i < b1; i++) {
        if (!usable(s, i)) continue;
        if (first < 0) first = lo = hi = i;
        if (s->y[i] < s->y[lo]) lo = i;
        if (s->y[i] > s->y[hi]) hi = i;
        last = i;
    }
    it->bucket++;
    it->n_kept = it->pos = 0;
    if (first < 0) return;
    int cand[4] = {first, lo < hi ? lo : hi, lo < hi ? hi : lo, last};
    for (int j = 0; j < 4; j++)
        if (it->n_kept == 0 || cand[j] > it->kept[it->n_kept - 1]) it->kept[it->n_kept++] = cand[j];
}

/* The next drawn index, or -1 at the end. */
static int iter_next(point_iter *it) {
    const nasc_plot_series *s = it->s;
    if (!it->thin) {
        while (it->next < s->n && !usable(s, it->next)) it->next++;
        return it->next < s->n ? it->next++ : -1;
    }
    while (it->pos == it->n_kept) {
        if (it->bucket == THIN_BUCKETS) return -1;
        fill_bucket(it);
    }
    return it->kept[it->pos++];
}

/* ------------------------------------------------------------------ */
/* layout and drawing                                                  */
/* ------------------------------------------------------------------ */

typedef struct frame {
    int w, h;                      /* the whole picture, px */
    double left, top, pw, ph;      /* the plot area */
    double legend_y;               /* baseline of the first legend row */
    double legend_x0, legend_wrap; /* legend rows run from x0 to wrap */
    axis x, y, y2;
    bool has_y2;
} frame;

static double px(const frame *f, double x) {
    double t = (x - f->x.lo) / (f->x.hi - f->x.lo);
    return f->left + fmin(fmax(t, 0), 1) * f->pw;
}

static double py(const frame *f, const axis *a, double y) {
    double t = (y - a->lo) / (a->hi - a->lo);
    return f->top + f->ph - fmin(fmax(t, 0), 1) * f->ph;
}

static const char *series_label(const nasc_plot_series *s, int i, char *tmp, size_t size) {
    if (s->label) return s->label;
    snprintf(tmp, size, "series %d", i + 1);
    return tmp;
}

static const char *right_suffix(const frame *f, const nasc_plot_series *s) {
    return f->has_y2 && s->axis == 1 ? " (right)" : "";
}

static void put_swatch(nasc_buf *b, int i, const nasc_plot_series *s, double x, double y) {
    const char *col = palette[i % N_COLOURS];
    const char *dash = dashes[(i / N_COLOURS) % 4];
    if (s->points) {
        nasc_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\" "
                           "stroke=\"%s\"/>\n",
                        x + 8.5, y - 7.5, i >= N_COLOURS ? "#ffffff" : col, col);
        return;
    }
    nasc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"2\"",
                    x, y - 4, x + 24, y - 4, col);
    if (dash) nasc_buf_printf(b, " stroke-dasharray=\"%s\"", dash);
    nasc_buf_printf(b, "/>\n");
}

/* Legend entries are a 24 px swatch, the label and a gap, in rows that wrap
 * at the picture's width. Returns the number of rows; draws them when draw
 * (layout first calls it only to count). */
static int legend_rows(const nasc_plot *p, const frame *f, bool draw, nasc_buf *b) {
    if (p->n_series == 0) return 0;
    if (draw) nasc_buf_printf(b, "<g class=\"legend\">\n");
    int rows = 1;
    double x = f->legend_x0, y = f->legend_y;
    for (int i = 0; i < p->n_series; i++) {
        const nasc_plot_series *s = &p->series[i];
        char tmp[32];
        const char *label = series_label(s, i, tmp, sizeof tmp);
        const char *suffix = right_suffix(f, s);
        double w = 24 + 6 + text_width(label) + text_width(suffix) + 18;
        if (x > f->legend_x0 && x + w > f->legend_wrap) {
            rows++;
            x = f->legend_x0;
            y += 18;
        }
        if (draw) {
            put_swatch(b, i, s, x, y);
            double room = f->legend_wrap - f->legend_x0 - 30;
            nasc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\"", x + 30, y);
            if (w - 48 > room) /* one label wider than a row: squeeze it */
                nasc_buf_printf(b, " textLength=\"%.1f\" lengthAdjust=\"spacingAndGlyphs\"",
                                room);
            nasc_buf_printf(b, ">");
            put_text(b, label);
            put_text(b, suffix);
            nasc_buf_printf(b, "</text>\n");
        }
        x += w;
    }
    if (draw) nasc_buf_printf(b, "</g>\n");
    return rows;
}

static int ticks_that_fit(double length, double spacing) {
    double n = floor(length / spacing) + 1;
    return n >= TICKS_MAX ? TICKS_MAX : n <= 2 ? 2 : (int)n;
}

static void layout(const nasc_plot *p, frame *f, int width, int height) {
    char t[64];
    tick_label(&f->x, f->x.last, t, sizeof t);
    double last_x_half = text_width(t) / 2;
    f->top = p->title ? 36 : 14;
    f->left = 12 + (p->ylabel ? 18 : 0) + f->y.label_w + 8;
    double right = f->has_y2 ? 8 + f->y2.label_w + 10 + (p->y2label ? 18 : 0)
                             : fmax(16, last_x_half + 6);
    f->w = width;
    if (width - f->left - right < PLOT_MIN) f->w = (int)ceil(f->left + right + PLOT_MIN);
    f->pw = f->w - f->left - right;

    f->legend_x0 = 12;
    f->legend_wrap = f->w - 12;
    double axis_h = 8 + 13 + (p->xlabel ? 20 : 0); /* ticks, their labels, the x label */
    f->legend_y = 0;
    int rows = legend_rows(p, f, false, NULL);
    double bottom = axis_h + (rows ? 10 + rows * 18.0 : 0) + 8;
    f->h = height;
    if (height - f->top - bottom < PLOT_MIN) f->h = (int)ceil(f->top + bottom + PLOT_MIN);
    f->ph = f->h - f->top - bottom;
    f->legend_y = f->top + f->ph + axis_h + 10 + 12;
}

static void put_header(nasc_buf *b, const nasc_plot *p, const frame *f) {
    nasc_buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    nasc_buf_printf(b,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                    "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, "
                    "sans-serif\" font-size=\"11\" fill=\"#222222\">\n",
                    f->w, f->h, f->w, f->h);
    if (p->title) {
        nasc_buf_printf(b, "<title>");
        put_text(b, p->title);
        nasc_buf_printf(b, "</title>\n");
    }
    nasc_buf_printf(b, "<rect class=\"background\" x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
                       "fill=\"#ffffff\"/>\n",
                    f->w, f->h);
}

static void put_grid(nasc_buf *b, const frame *f) {
    nasc_buf_printf(b, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (long long i = f->x.first + 1; i < f->x.last; i++) {
        double x = px(f, tick_value(&f->x, i));
        nasc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x, f->top,
                        x, f->top + f->ph);
    }
    for (long long i = f->y.first + 1; i < f->y.last; i++) {
        double y = py(f, &f->y, tick_value(&f->y, i));
        nasc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left,
                        y, f->left + f->pw, y);
    }
    nasc_buf_printf(b, "</g>\n");
}

/* Tick marks and labels of one axis: side 0 bottom, 1 left, 2 right. */
static void put_ticks(nasc_buf *b, const frame *f, const axis *a, int side) {
    static const char *const cls[3] = {"xticks", "yticks", "y2ticks"};
    static const char *const anchor[3] = {"middle", "end", "start"};
    nasc_buf_printf(b, "<g class=\"%s\" text-anchor=\"%s\">\n", cls[side], anchor[side]);
    double bottom = f->top + f->ph, right = f->left + f->pw;
    for (long long i = a->first; i <= a->last; i++) {
        char t[64];
        tick_label(a, i, t, sizeof t);
        double v = tick_value(a, i);
        if (side == 0) {
            double x = px(f, v);
            nasc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                               "stroke=\"#444444\"/>\n",
                            x, bottom, x, bottom + 5);
            nasc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x, bottom + 8 + 10, t);
        } else {
            double y = py(f, a, v), x0 = side == 1 ? f->left : right;
            double dx = side == 1 ? -5 : 5;
            nasc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                               "stroke=\"#444444\"/>\n",
                            x0, y, x0 + dx, y);
            nasc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x0 + 1.6 * dx, y + 4, t);
        }
    }
    nasc_buf_printf(b, "</g>\n");
}

/* One label: `<text class=... (where) ...>text</text>`, bold when large.
 * A text estimated wider than room gets a smaller font (down to 8 px) and,
 * if that is not enough, a textLength that squeezes it into room, so a long
 * title does not run off the picture. */
static void put_label(nasc_buf *b, const char *cls, const char *where, double size,
                      const char *text, double room) {
    bool bold = size > 13;
    double est = text_width(text) / 11 * (bold ? 1.1 : 1.0); /* width per px of font size */
    double fit = est > 0 ? floor(room / est * 10) / 10 : size;
    double font = fit < size ? (fit < 8 ? 8 : fit) : size;
    nasc_buf_printf(b, "<text class=\"%s\" %s text-anchor=\"middle\" font-size=\"%g\"%s", cls,
                    where, font, bold ? " font-weight=\"bold\"" : "");
    if (est * font > room)
        nasc_buf_printf(b, " textLength=\"%.1f\" lengthAdjust=\"spacingAndGlyphs\"", room);
    nasc_buf_printf(b, ">");
    put_text(b, text);
    nasc_buf_printf(b, "</text>\n");
}

static void put_labels(nasc_buf *b, const nasc_plot *p, const frame *f) {
    char where[96];
    if (p->title) {
        snprintf(where, sizeof where, "x=\"%.1f\" y=\"22\"", f->w / 2.0);
        put_label(b, "title", where, 14, p->title, f->w - 20);
    }
    if (p->xlabel) {
        snprintf(where, sizeof where, "x=\"%.1f\" y=\"%.1f\"", f->left + f->pw / 2,
                 f->top + f->ph + 8 + 13 + 16);
        put_label(b, "xlabel", where, 12, p->xlabel, f->pw);
    }
    if (p->ylabel) {
        snprintf(where, sizeof where, "transform=\"translate(%.1f,%.1f) rotate(-90)\"", 24.0,
                 f->top + f->ph / 2);
        put_label(b, "ylabel", where, 12, p->ylabel, f->ph);
    }
    if (p->y2label) {
        snprintf(where, sizeof where, "transform=\"translate(%.1f,%.1f) rotate(90)\"",
                 f->left + f->pw + 8 + f->y2.label_w + 10 + 6, f->top + f->ph / 2);
        put_label(b, "y2label", where, 12, p->y2label, f->ph);
    }
}

static void put_dot(nasc_buf *b, double x, double y, double r, const char *fill,
                    const char *stroke) {
    nasc_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" stroke=\"%s\"/>\n",
                    x, y, r, fill, stroke);
}

/* Lines: one polyline per run of drawn points between gaps; a run of one
 * point is a dot, since a one-point polyline shows nothing. Markers: a
 * circle per drawn point. */
static void put_series(nasc_buf *b, const frame *f, int si, const nasc_plot_series *s,
                       int n_usable) {
    const char *col = palette[si % N_COLOURS];
    const char *dash = dashes[(si / N_COLOURS) % 4];
    const axis *a = s->axis == 1 ? &f->y2 : &f->y;
    point_iter it;
    iter_init(&it, s, n_usable);
    nasc_buf_printf(b, "<g class=\"series\" id=\"series%d\">\n", si);
    if (s->points) {
        const char *fill = si >= N_COLOURS ? "#ffffff" : col;
        for (int i = iter_next(&it); i >= 0; i = iter_next(&it))
            put_dot(b, px(f, sx(s, i)), py(f, a, s->y[i]), 2.5, fill, col);
        nasc_buf_printf(b, "</g>\n");
        return;
    }
    int cur = iter_next(&it);
    while (cur >= 0) {
        int nxt = iter_next(&it);
        if (nxt < 0 || gap_between(s, cur, nxt)) {
            put_dot(b, px(f, sx(s, cur)), py(f, a, s->y[cur]), 2, col, "none");
            cur = nxt;
            continue;
        }
        nasc_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                           "stroke-linejoin=\"round\" stroke-linecap=\"round\"",
                        col);
        if (dash) nasc_buf_printf(b, " stroke-dasharray=\"%s\"", dash);
        nasc_buf_printf(b, " points=\"%.1f,%.1f", px(f, sx(s, cur)), py(f, a, s->y[cur]));
        while (nxt >= 0 && !gap_between(s, cur, nxt)) {
            nasc_buf_printf(b, " %.1f,%.1f", px(f, sx(s, nxt)), py(f, a, s->y[nxt]));
            cur = nxt;
            nxt = iter_next(&it);
        }
        nasc_buf_printf(b, "\"/>\n");
        cur = nxt;
    }
    nasc_buf_printf(b, "</g>\n");
}

/* ------------------------------------------------------------------ */
/* entry point                                                         */
/* ------------------------------------------------------------------ */

static nasc_status check(const nasc_plot *p, nasc_ctx *ctx) {
#define BAD(...) nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "svg plot: " __VA_ARGS__)
    if (!p) return BAD("no plot");
    if (p->n_series < 0 || p->n_series > SERIES_MAX)
        return BAD("n_series is %d (0..%d)", p->n_series, SERIES_MAX);
    if (p->n_series > 0 && !p->series) return BAD("%d series but no array", p->n_series);
    if (p->width != 0 && (p->width < SIZE_W_MIN || p->width > SIZE_LIMIT))
        return BAD("width %d is outside [%d, %d] (0: %d)", p->width, SIZE_W_MIN, SIZE_LIMIT,
                   SIZE_W_DEFAULT);
    if (p->height != 0 && (p->height < SIZE_H_MIN || p->height > SIZE_LIMIT))
        return BAD("height %d is outside [%d, %d] (0: %d)", p->height, SIZE_H_MIN, SIZE_LIMIT,
                   SIZE_H_DEFAULT);
    for (int i = 0; i < p->n_series; i++) {
        const nasc_plot_series *s = &p->series[i];
        if (s->n < 0) return BAD("series %d has n = %d", i, s->n);
        if (s->n > 0 && !s->y) return BAD("series %d has %d points but no y", i, s->n);
        if (s->axis != 0 && s->axis != 1) return BAD("series %d has axis %d (0 or 1)", i, s->axis);
        if (s->axis == 1 && !p->y2label)
            return BAD("series %d is on the right axis but y2label is NULL", i);
    }
    return NASC_OK;
#undef BAD
}

nasc_status nasc_svg_plot(const nasc_plot *p, nasc_buf *out) {
    if (!out || !out->ctx) return NASC_EINPUT; /* nowhere to write, nowhere to say why */
    nasc_status st = check(p, out->ctx);
    if (st != NASC_OK) return st;

    /* Ranges over the usable points. */
    double xlo = INFINITY, xhi = -INFINITY, ylo[2] = {INFINITY, INFINITY},
           yhi[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < p->n_series; i++) {
        const nasc_plot_series *s = &p->series[i];
        for (int j = 0; j < s->n; j++) {
            if (!usable(s, j)) continue;
            double x = sx(s, j), y = s->y[j];
            xlo = fmin(xlo, x), xhi = fmax(xhi, x);
            ylo[s->axis] = fmin(ylo[s->axis], y), yhi[s->axis] = fmax(yhi[s->axis], y);
        }
    }
    frame f;
    memset(&f, 0, sizeof f);
    f.has_y2 = p->y2label != NULL;
    f.x = (axis){.data_lo = xlo, .data_hi = xhi, .any = xlo <= xhi};
    f.y = (axis){.data_lo = ylo[0], .data_hi = yhi[0], .any = ylo[0] <= yhi[0]};
    f.y2 = (axis){.data_lo = ylo[1], .data_hi = yhi[1], .any = ylo[1] <= yhi[1]};
    int width = p->width ? p->width : SIZE_W_DEFAULT;
    int height = p->height ? p->height : SIZE_H_DEFAULT;
    axis_fit(&f.x, TICKS_MAX);
    axis_fit(&f.y, TICKS_MAX);
    axis_fit(&f.y2, TICKS_MAX);
    layout(p, &f, width, height);
    /* A small picture may not have room to label 8 ticks apart: refit to
     * what fits (labels 16 px apart vertically, their width plus 10 px
     * horizontally), keeping 4 where at all possible, and lay out again. */
    int fit_x = ticks_that_fit(f.pw, f.x.label_w + 10);
    int fit_y = ticks_that_fit(f.ph, 16), fit_y2 = fit_y;
    bool refit = false;
    if (f.x.last - f.x.first + 1 > fit_x) axis_fit(&f.x, fit_x), refit = true;
    if (f.y.last - f.y.first + 1 > fit_y) axis_fit(&f.y, fit_y), refit = true;
    if (f.y2.last - f.y2.first + 1 > fit_y2) axis_fit(&f.y2, fit_y2), refit = true;
    if (refit) layout(p, &f, width, height);

    put_header(out, p, &f);
    put_grid(out, &f);
    nasc_buf_printf(out, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                         "height=\"%.1f\" fill=\"none\" stroke=\"#444444\"/>\n",
                    f.left, f.top, f.pw, f.ph);
    put_ticks(out, &f, &f.x, 0);
    put_ticks(out, &f, &f.y, 1);
    if (f.has_y2) put_ticks(out, &f, &f.y2, 2);
    put_labels(out, p, &f);
    for (int i = 0; i < p->n_series; i++) {
        const nasc_plot_series *s = &p->series[i];
        int n_usable = 0;
        for (int j = 0; j < s->n; j++) n_usable += usable(s, j);
        put_series(out, &f, i, s, n_usable);
    }
    legend_rows(p, &f, true, out);
    nasc_buf_printf(out, "</svg>\n");
    if (out->oom)
        return nasc_error(out->ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory writing SVG");
    return NASC_OK;
}
