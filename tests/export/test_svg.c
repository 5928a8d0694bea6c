/* Tests of the SVG line-chart writer (export/svg.c). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nasc_export.h"

#define assert_has(hay, needle)                                                     \
    do {                                                                            \
        if (!strstr((hay), (needle)))                                               \
            fail_msg("expected to find [%s] in the SVG output:\n%.4000s", (needle), (hay)); \
    } while (0)
#define assert_lacks(hay, needle)                                                   \
    do {                                                                            \
        if (strstr((hay), (needle)))                                                \
            fail_msg("did not expect [%s] in the SVG output:\n%.4000s", (needle), (hay)); \
    } while (0)

static int count(const char *hay, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle)) n++;
    return n;
}

/* Render p with the libc allocator; the caller frees the buffer. */
static void render(nasc_ctx *ctx, const nasc_plot *p, nasc_buf *b) {
    nasc_ctx_init(ctx);
    nasc_buf_init(b, ctx);
    nasc_status st = nasc_svg_plot(p, b);
    if (st != NASC_OK) {
        nasc_diag_print(&ctx->diag, stderr);
        fail_msg("nasc_svg_plot returned %d", (int)st);
    }
    assert_non_null(b->data);
}

/* The text between `<g class="cls"` (or `<g class="series" id="cls"`) and
 * its `</g>`, copied into a malloc'd string. Groups do not nest. */
static char *group(const char *svg, const char *cls) {
    char open[64];
    snprintf(open, sizeof open, "class=\"%s\"", cls);
    const char *p = strstr(svg, open);
    if (!p) {
        snprintf(open, sizeof open, "id=\"%s\"", cls);
        p = strstr(svg, open);
    }
    if (!p) fail_msg("no group %s in:\n%.4000s", cls, svg);
    const char *e = strstr(p, "</g>");
    assert_non_null(e);
    size_t n = (size_t)(e - p);
    char *g = malloc(n + 1);
    assert_non_null(g);
    memcpy(g, p, n);
    g[n] = 0;
    return g;
}

/* The tick labels of a ticks group, as numbers and as text. Returns the count. */
static int ticks(const char *svg, const char *cls, double *v, char (*txt)[64], int max) {
    char *g = group(svg, cls);
    int n = 0;
    for (const char *p = strstr(g, "<text"); p; p = strstr(p + 1, "<text")) {
        const char *s = strchr(p, '>') + 1, *e = strstr(s, "</text>");
        assert_true(n < max);
        size_t len = (size_t)(e - s);
        assert_true(len < 64);
        memcpy(txt[n], s, len);
        txt[n][len] = 0;
        char *end;
        v[n] = strtod(txt[n], &end);
        if (*end) fail_msg("tick label [%s] is not a number", txt[n]);
        n++;
    }
    free(g);
    return n;
}

/* Vertices drawn for one series: polyline points and circle centres. */
typedef struct verts {
    int n_poly, n_circ, n;
    double x[2 * NASC_PLOT_MAX_POINTS + 8], y[2 * NASC_PLOT_MAX_POINTS + 8];
} verts;

static void series_verts(const char *svg, int i, verts *out) {
    char id[32];
    snprintf(id, sizeof id, "series%d", i);
    char *g = group(svg, id);
    memset(out, 0, sizeof *out);
    out->n_poly = count(g, "<polyline");
    out->n_circ = count(g, "<circle");
    for (const char *p = strstr(g, "points=\""); p; p = strstr(p + 1, "points=\"")) {
        char *q = (char *)p + 8;
        while (*q != '"') {
            assert_true(out->n < 2 * NASC_PLOT_MAX_POINTS + 8);
            out->x[out->n] = strtod(q, &q);
            assert_true(*q == ',');
            out->y[out->n++] = strtod(q + 1, &q);
            while (*q == ' ') q++;
        }
    }
    for (const char *p = strstr(g, "<circle cx=\""); p; p = strstr(p + 1, "<circle cx=\"")) {
        assert_true(out->n < 2 * NASC_PLOT_MAX_POINTS + 8);
        char *q;
        out->x[out->n] = strtod(p + 12, &q);
        assert_true(strncmp(q, "\" cy=\"", 6) == 0);
        out->y[out->n++] = strtod(q + 6, NULL);
    }
    free(g);
}

/* The plot area from <rect class="frame" x y width height>. */
static void frame_rect(const char *svg, double r[4]) {
    const char *p = strstr(svg, "class=\"frame\"");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "class=\"frame\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &r[0], &r[1], &r[2], &r[3]),
                     4);
}

/* ------------------------------------------------------------------ */
/* scenarios (shared with the XML check)                               */
/* ------------------------------------------------------------------ */

static const double ep[5] = {1, 2, 3, 4, 5};
static const double loss[5] = {2.31, 1.2, 0.9, 0.71, 0.65};
static const double acc[5] = {0.41, 0.62, 0.71, 0.78, 0.8};

static nasc_plot basic_plot(nasc_plot_series *s) {
    s[0] = (nasc_plot_series){"train loss", ep, loss, 5, 0, false};
    s[1] = (nasc_plot_series){"val accuracy", ep, acc, 5, 1, true};
    return (nasc_plot){"training", "epoch", "loss", "accuracy", s, 2, 0, 0};
}

static const char *weird_title = "a<b & \"c\" > 'd'";
static const char *weird_label = "<script>&amp;</script>";
static const char *weird_x = "ctl\x01\x1f|bad\xff\xc0\xed\xa0\x80|ok \xc2\xb5s \xe2\x9c\x93";

static nasc_plot escaping_plot(nasc_plot_series *s) {
    s[0] = (nasc_plot_series){weird_label, ep, loss, 5, 0, false};
    return (nasc_plot){weird_title, weird_x, "y\"2\"", NULL, s, 1, 0, 0};
}

static double nan_y[10] = {0, 0.1, 0.2, 0.3, NAN, 0.5, NAN, 0.7, 0.8, 1};
static double inf_y[6] = {0, 1, INFINITY, 0.5, -INFINITY, 0.25};
static double nan_x[6] = {0, 1, 2, NAN, 4, 5};
static double all_nan[3] = {NAN, NAN, NAN};

static nasc_plot nan_plot(nasc_plot_series *s) {
    s[0] = (nasc_plot_series){"nan gaps", NULL, nan_y, 10, 0, false};
    s[1] = (nasc_plot_series){"infs", NULL, inf_y, 6, 0, false};
    s[2] = (nasc_plot_series){"nan x", nan_x, inf_y, 6, 0, false};
    s[3] = (nasc_plot_series){"all nan", NULL, all_nan, 3, 0, false};
    s[4] = (nasc_plot_series){"nan markers", NULL, nan_y, 10, 0, true};
    return (nasc_plot){"gaps", NULL, NULL, NULL, s, 5, 0, 0};
}

#define BIG 100000
static double *big_x, *big_y, *big_gap;

/* 100k points: a slow sine in [0, 1] with one spike to 2 and one dip to -1
 * (so the y axis is exactly -1..2); a copy with a NaN stretch. */
static nasc_plot big_plot(nasc_plot_series *s) {
    if (!big_x) {
        big_x = malloc(BIG * sizeof *big_x);
        big_y = malloc(BIG * sizeof *big_y);
        big_gap = malloc(BIG * sizeof *big_gap);
        assert_true(big_x && big_y && big_gap);
        for (int i = 0; i < BIG; i++) {
            big_x[i] = i;
            big_y[i] = 0.5 + 0.5 * sin(i * 0.001);
            big_gap[i] = i >= 40000 && i < 41000 ? NAN : 0.25 + 0.25 * cos(i * 0.37);
        }
        big_y[31337] = 2;
        big_y[77777] = -1;
    }
    s[0] = (nasc_plot_series){"curve", big_x, big_y, BIG, 0, false};
    s[1] = (nasc_plot_series){"with gap", big_x, big_gap, BIG, 0, false};
    s[2] = (nasc_plot_series){"markers", big_x, big_gap, BIG, 0, true};
    return (nasc_plot){"100k", "step", "loss", NULL, s, 3, 0, 0};
}

static const double one_x[1] = {3}, one_y[1] = {0.42};
static const double flat_y[5] = {7, 7, 7, 7, 7};

static nasc_plot edge_plot(nasc_plot_series *s) {
    s[0] = (nasc_plot_series){"empty", NULL, NULL, 0, 0, false};
    s[1] = (nasc_plot_series){"one", one_x, one_y, 1, 0, false};
    s[2] = (nasc_plot_series){NULL, NULL, flat_y, 5, 1, false};
    return (nasc_plot){NULL, NULL, NULL, "flat", s, 3, 0, 0};
}

/* ------------------------------------------------------------------ */
/* tests                                                               */
/* ------------------------------------------------------------------ */

static void test_basic(void **state) {
    (void)state;
    nasc_plot_series s[2];
    nasc_plot p = basic_plot(s);
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    const char *t = b.data;

    assert_true(strncmp(t, "<?xml version=\"1.0\"", 19) == 0);
    assert_has(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"720\" "
                  "height=\"420\" viewBox=\"0 0 720 420\"");
    assert_true(b.len > 7 && strcmp(t + b.len - 7, "</svg>\n") == 0);
    assert_has(t, "<title>training</title>");
    assert_has(t, "class=\"title\" x=\"360.0\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" "
                  "font-weight=\"bold\">training</text>");
    assert_has(t, "class=\"xlabel\"");
    assert_has(t, ">epoch</text>");
    assert_has(t, "rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">loss</text>");
    assert_has(t, "rotate(90)\" text-anchor=\"middle\" font-size=\"12\">accuracy</text>");
    assert_has(t, "class=\"y2ticks\"");

    /* a line, five markers, distinct colours */
    verts v;
    series_verts(t, 0, &v);
    assert_int_equal(v.n_poly, 1);
    assert_int_equal(v.n_circ, 0);
    assert_int_equal(v.n, 5);
    for (int i = 1; i < 5; i++) assert_true(v.x[i] > v.x[i - 1]);
    for (int i = 1; i < 5; i++) assert_true(v.y[i] > v.y[i - 1]); /* loss falls: y px grows */
    series_verts(t, 1, &v);
    assert_int_equal(v.n_poly, 0);
    assert_int_equal(v.n_circ, 5);
    for (int i = 1; i < 5; i++) assert_true(v.y[i] < v.y[i - 1]); /* accuracy rises */
    assert_int_equal(count(t, "<polyline"), 1);
    assert_int_equal(count(t, "<circle"), 5);
    char *g0 = group(t, "series0"), *g1 = group(t, "series1");
    assert_has(g0, "stroke=\"#0072B2\"");
    assert_has(g1, "fill=\"#D55E00\"");
    free(g0);
    free(g1);

    /* legend: both labels, the right-axis one marked, swatches in series colours */
    char *lg = group(t, "legend");
    assert_has(lg, ">train loss</text>");
    assert_has(lg, ">val accuracy (right)</text>");
    assert_has(lg, "<line");
    assert_has(lg, "stroke=\"#0072B2\"");
    assert_has(lg, "<rect");
    assert_has(lg, "fill=\"#D55E00\"");
    free(lg);

    /* every data point lies inside the plot area */
    double r[4];
    frame_rect(t, r);
    for (int k = 0; k < 2; k++) {
        series_verts(t, k, &v);
        for (int i = 0; i < v.n; i++) {
            assert_true(v.x[i] >= r[0] - 0.05 && v.x[i] <= r[0] + r[2] + 0.05);
            assert_true(v.y[i] >= r[1] - 0.05 && v.y[i] <= r[1] + r[3] + 0.05);
        }
    }

    /* the same input gives the same bytes; a second document appends */
    nasc_buf b2;
    nasc_buf_init(&b2, &ctx);
    assert_int_equal(nasc_svg_plot(&p, &b2), NASC_OK);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    nasc_buf_free(&b2);

    /* explicit size */
    nasc_plot q = p;
    q.width = 300;
    q.height = 200;
    nasc_buf_free(&b);
    render(&ctx, &q, &b);
    assert_has(b.data, "width=\"300\" height=\"200\" viewBox=\"0 0 300 200\"");
    nasc_buf_free(&b);
}

/* Render a two-point series spanning [lo, hi] and read its y tick labels. */
static int y_ticks_for(double lo, double hi, double *v, char (*txt)[64]) {
    double y[2] = {lo, hi};
    nasc_plot_series s = {"r", NULL, y, 2, 0, false};
    nasc_plot p = {NULL, NULL, NULL, NULL, &s, 1, 0, 0};
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    int n = ticks(b.data, "yticks", v, txt, 16);
    nasc_buf_free(&b);
    return n;
}

static void check_nice(double lo, double hi) {
    double v[16];
    char txt[16][64];
    int n = y_ticks_for(lo, hi, v, txt);
    if (n < 4 || n > 8) fail_msg("[%g, %g]: %d ticks", lo, hi, n);
    double step = (v[n - 1] - v[0]) / (n - 1);
    assert_true(step > 0);
    /* 1, 2 or 5 times a power of ten */
    double e = pow(10, floor(log10(step) + 1e-9));
    double m = step / e;
    if (!(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6))
        fail_msg("[%g, %g]: step %g is not 1/2/5 x 10^k", lo, hi, step);
    /* evenly spaced, distinct labels, covering the data */
    for (int i = 1; i < n; i++) {
        if (fabs(v[i] - v[i - 1] - step) > step * 1e-6)
            fail_msg("[%g, %g]: uneven ticks %s %s", lo, hi, txt[i - 1], txt[i]);
        if (strcmp(txt[i], txt[i - 1]) == 0)
            fail_msg("[%g, %g]: repeated label %s", lo, hi, txt[i]);
    }
    if (lo < hi) {
        assert_true(v[0] <= lo + step * 1e-6);
        assert_true(v[n - 1] >= hi - step * 1e-6);
    } else {
        assert_true(v[0] < lo && v[n - 1] > hi); /* a point range is padded */
    }
}

static void test_ticks(void **state) {
    (void)state;
    double v[16];
    char txt[16][64];
    /* 0..1 gives 0, 0.2, ..., 1 */
    int n = y_ticks_for(0, 1, v, txt);
    assert_int_equal(n, 6);
    static const char *want[6] = {"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"};
    for (int i = 0; i < 6; i++) assert_string_equal(txt[i], want[i]);
    /* data inside nice bounds widens to them */
    n = y_ticks_for(0.013, 0.987, v, txt);
    assert_int_equal(n, 6);
    assert_string_equal(txt[0], "0.0");
    assert_string_equal(txt[5], "1.0");
    /* integers print without decimals */
    n = y_ticks_for(1, 50, v, txt);
    assert_int_equal(n, 6);
    assert_string_equal(txt[0], "0");
    assert_string_equal(txt[5], "50");
    /* a negative start */
    n = y_ticks_for(-1, 2, v, txt);
    assert_int_equal(n, 7);
    assert_string_equal(txt[0], "-1.0");
    assert_string_equal(txt[6], "2.0");
    /* small and large magnitudes switch to exponents */
    n = y_ticks_for(1e-7, 3e-7, v, txt);
    assert_has(txt[0], "e-0");
    n = y_ticks_for(0, 4e6, v, txt);
    assert_string_equal(txt[n - 1], "4e+06");

    static const double ranges[][2] = {
        {0, 1},        {1, 50},       {0.013, 0.987}, {-3.7, 12345}, {1e-7, 3e-7},
        {0.5, 0.5000001}, {1e6, 5e6}, {-1e300, 1e300}, {2.5, 2.5},   {0, 0},
        {1e10, 1e10 + 100}, {0.001, 0.0015}, {-5, -4.99}, {-1e-300, 1e-300}, {42, 42.000000000001},
        {1, 1e9},      {-0.3, 0.1},   {99, 101},      {3e-12, 3e-12}, {-7, -7},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        check_nice(ranges[i][0], ranges[i][1]);
    /* and a deterministic spread of random ranges and magnitudes */
    unsigned long long r = 12345;
    for (int i = 0; i < 300; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        double a = (double)(r >> 11) / 9007199254740992.0;
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        double w = (double)(r >> 11) / 9007199254740992.0;
        double scale = pow(10, (int)(r % 25) - 12);
        double lo = (a - 0.5) * scale * 20, hi = lo + w * scale;
        check_nice(lo, hi);
    }
}

static void test_escaping(void **state) {
    (void)state;
    nasc_plot_series s[1];
    nasc_plot p = escaping_plot(s);
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    const char *t = b.data;
    assert_has(t, "<title>a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;</title>");
    assert_has(t, ">&lt;script&gt;&amp;amp;&lt;/script&gt;</text>");
    assert_lacks(t, "<script");
    assert_has(t, ">y&quot;2&quot;</text>");
    /* control characters dropped, each byte of bad UTF-8 (a stray byte, an
     * overlong lead, an encoded surrogate) replaced, good UTF-8 kept */
    assert_has(t, ">ctl|bad?????|ok \xc2\xb5s \xe2\x9c\x93</text>");
    nasc_buf_free(&b);
}

static void test_nan(void **state) {
    (void)state;
    nasc_plot_series s[5];
    nasc_plot p = nan_plot(s);
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    const char *t = b.data;
    verts v;
    /* 0..3 | NaN | 5 | NaN | 7..9: two lines and a dot */
    series_verts(t, 0, &v);
    assert_int_equal(v.n_poly, 2);
    assert_int_equal(v.n_circ, 1);
    assert_int_equal(v.n, 8);
    /* 0, 1 | inf | 0.5 | -inf | 0.25: a line and two dots */
    series_verts(t, 1, &v);
    assert_int_equal(v.n_poly, 1);
    assert_int_equal(v.n_circ, 2);
    assert_int_equal(v.n, 4);
    /* x NaN breaks too: (0,0) (1,1) | inf | x NaN | (4,-inf) | (5,.25) */
    series_verts(t, 2, &v);
    assert_int_equal(v.n_poly, 1);
    assert_int_equal(v.n_circ, 1);
    /* all NaN: nothing drawn, still in the legend */
    series_verts(t, 3, &v);
    assert_int_equal(v.n, 0);
    assert_has(t, ">all nan</text>");
    /* markers: one per usable point */
    series_verts(t, 4, &v);
    assert_int_equal(v.n_poly, 0);
    assert_int_equal(v.n_circ, 8);
    /* infinities do not stretch the axes: y is 0..1, x 0..9 -> 0..10 */
    double tv[16];
    char txt[16][64];
    int n = ticks(t, "yticks", tv, txt, 16);
    assert_string_equal(txt[0], "0.0");
    assert_string_equal(txt[n - 1], "1.0");
    n = ticks(t, "xticks", tv, txt, 16);
    assert_string_equal(txt[0], "0");
    assert_string_equal(txt[n - 1], "10");
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "series%d", i);
        char *g = group(t, id);
        assert_lacks(g, "nan");
        assert_lacks(g, "inf");
        free(g);
    }
    nasc_buf_free(&b);
}

static void test_edge_cases(void **state) {
    (void)state;
    nasc_plot_series s[3];
    nasc_plot p = edge_plot(s);
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    const char *t = b.data;
    verts v;
    series_verts(t, 0, &v); /* empty */
    assert_int_equal(v.n, 0);
    series_verts(t, 1, &v); /* one point: a dot */
    assert_int_equal(v.n_poly, 0);
    assert_int_equal(v.n_circ, 1);
    series_verts(t, 2, &v); /* flat on the right axis: a line in the middle */
    assert_int_equal(v.n_poly, 1);
    assert_int_equal(v.n, 5);
    double r[4];
    frame_rect(t, r);
    for (int i = 0; i < 5; i++) {
        assert_true(v.y[i] > r[1] + 1 && v.y[i] < r[1] + r[3] - 1);
        assert_true(fabs(v.y[i] - v.y[0]) < 1e-9);
    }
    assert_has(t, ">series 3 (right)</text>");
    assert_lacks(t, "<title>");
    /* the single point's axis is padded around 0.42, the flat one around 7 */
    double tv[16];
    char txt[16][64];
    int n = ticks(t, "yticks", tv, txt, 16);
    assert_true(n >= 4 && n <= 8 && tv[0] < 0.42 && tv[n - 1] > 0.42);
    n = ticks(t, "y2ticks", tv, txt, 16);
    assert_true(n >= 4 && n <= 8 && tv[0] < 7 && tv[n - 1] > 7);
    nasc_buf_free(&b);

    /* no series at all: axes 0..1, no legend */
    nasc_plot none = {"nothing", "x", "y", NULL, NULL, 0, 0, 0};
    render(&ctx, &none, &b);
    assert_lacks(b.data, "class=\"legend\"");
    assert_int_equal(count(b.data, "<polyline"), 0);
    n = ticks(b.data, "xticks", tv, txt, 16);
    assert_int_equal(n, 6);
    nasc_buf_free(&b);

    /* ten series: seven colours, then dashes */
    double y[2] = {0, 1};
    nasc_plot_series many[10];
    for (int i = 0; i < 10; i++) many[i] = (nasc_plot_series){NULL, NULL, y, 2, 0, false};
    nasc_plot pm = {"many", NULL, NULL, NULL, many, 10, 0, 0};
    render(&ctx, &pm, &b);
    static const char *cols[7] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                  "#E69F00", "#56B4E9", "#000000"};
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "series%d", i);
        char *g = group(b.data, id);
        char want[32];
        snprintf(want, sizeof want, "stroke=\"%s\"", cols[i % 7]);
        assert_has(g, want);
        if (i < 7) assert_lacks(g, "dasharray");
        else assert_has(g, "stroke-dasharray");
        free(g);
    }
    nasc_buf_free(&b);

    /* a long legend wraps into rows and the picture grows to fit */
    char labels[40][48];
    nasc_plot_series wide[40];
    for (int i = 0; i < 40; i++) {
        snprintf(labels[i], sizeof labels[i], "a rather long series label number %d", i);
        wide[i] = (nasc_plot_series){labels[i], NULL, y, 2, 0, false};
    }
    nasc_plot pw = {"wide", NULL, NULL, NULL, wide, 40, 200, 150};
    render(&ctx, &pw, &b);
    frame_rect(b.data, r);
    assert_true(r[3] >= 60);
    int h = 0;
    assert_int_equal(sscanf(strstr(b.data, "<svg "), "<svg xmlns=\"http://www.w3.org/2000/svg\" "
                                                     "version=\"1.1\" width=\"%*d\" height=\"%d\"",
                            &h),
                     1);
    assert_true(h > 150);
    nasc_buf_free(&b);
}

static void test_thinning(void **state) {
    (void)state;
    nasc_plot_series s[3];
    nasc_plot p = big_plot(s);
    nasc_ctx ctx;
    nasc_buf b;
    render(&ctx, &p, &b);
    const char *t = b.data;
    double r[4];
    frame_rect(t, r);
    static verts v;

    series_verts(t, 0, &v);
    assert_int_equal(v.n_poly, 1);
    assert_true(v.n <= NASC_PLOT_MAX_POINTS);
    assert_true(v.n >= NASC_PLOT_MAX_POINTS / 4); /* at least one point per bucket */
    /* in order, and the spike (top of the plot) and dip (bottom) survive */
    bool top = false, bottom = false;
    for (int i = 0; i < v.n; i++) {
        if (i) assert_true(v.x[i] >= v.x[i - 1]);
        top |= fabs(v.y[i] - r[1]) < 0.06;
        bottom |= fabs(v.y[i] - (r[1] + r[3])) < 0.11;
    }
    assert_true(top);
    assert_true(bottom);
    double tv[16];
    char txt[16][64];
    int n = ticks(t, "yticks", tv, txt, 16);
    assert_string_equal(txt[0], "-1.0");
    assert_string_equal(txt[n - 1], "2.0");

    /* the NaN stretch still breaks the thinned line */
    series_verts(t, 1, &v);
    assert_int_equal(v.n_poly, 2);
    assert_true(v.n <= NASC_PLOT_MAX_POINTS);
    series_verts(t, 2, &v);
    assert_int_equal(v.n_poly, 0);
    assert_true(v.n_circ <= NASC_PLOT_MAX_POINTS && v.n_circ > NASC_PLOT_MAX_POINTS / 4);

    /* deterministic */
    nasc_buf b2;
    nasc_buf_init(&b2, &ctx);
    assert_int_equal(nasc_svg_plot(&p, &b2), NASC_OK);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    nasc_buf_free(&b2);
    nasc_buf_free(&b);

    /* exactly NASC_PLOT_MAX_POINTS points are drawn whole, one more is thinned */
    s[0].n = NASC_PLOT_MAX_POINTS;
    p.n_series = 1;
    render(&ctx, &p, &b);
    series_verts(b.data, 0, &v);
    assert_int_equal(v.n, NASC_PLOT_MAX_POINTS);
    nasc_buf_free(&b);
    s[0].n = NASC_PLOT_MAX_POINTS + 1;
    render(&ctx, &p, &b);
    series_verts(b.data, 0, &v);
    assert_true(v.n < NASC_PLOT_MAX_POINTS);
    nasc_buf_free(&b);
}

static void expect_bad(const nasc_plot *p, const char *msg) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    assert_int_equal(nasc_svg_plot(p, &b), NASC_EINPUT);
    assert_int_equal(ctx.diag.status, NASC_EINPUT);
    if (!strstr(ctx.diag.msg, msg)) fail_msg("message [%s] lacks [%s]", ctx.diag.msg, msg);
    assert_int_equal(b.len, 0);
    nasc_buf_free(&b);
}

static void test_bad_input(void **state) {
    (void)state;
    double y[2] = {0, 1};
    nasc_plot_series s = {"s", NULL, y, 2, 0, false};
    nasc_plot ok = {"t", NULL, NULL, NULL, &s, 1, 0, 0};
    nasc_plot p;

    expect_bad(NULL, "no plot");
    p = ok, p.n_series = -1;
    expect_bad(&p, "n_series is -1");
    p = ok, p.n_series = 100001;
    expect_bad(&p, "n_series is 100001");
    p = ok, p.series = NULL;
    expect_bad(&p, "no array");
    p = ok, p.width = 50;
    expect_bad(&p, "width 50");
    p = ok, p.width = -720;
    expect_bad(&p, "width -720");
    p = ok, p.height = 20;
    expect_bad(&p, "height 20");
    p = ok, p.height = 100000;
    expect_bad(&p, "height 100000");
    nasc_plot_series bad = s;
    p = ok, p.series = &bad;
    bad.n = -3;
    expect_bad(&p, "series 0 has n = -3");
    bad = s, bad.y = NULL;
    expect_bad(&p, "no y");
    bad = s, bad.axis = 2;
    expect_bad(&p, "axis 2");
    bad = s, bad.axis = 1;
    expect_bad(&p, "y2label is NULL");
    /* a NULL buffer has nowhere to report */
    assert_int_equal(nasc_svg_plot(&ok, NULL), NASC_EINPUT);
}

/* Every allocation may fail: NASC_ENOMEM, a diagnostic, nothing leaked. */
static void test_failing_alloc(void **state) {
    (void)state;
    nasc_plot_series s[3];
    nasc_plot p = big_plot(s);
    long k;
    for (k = 1;; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_buf b;
        nasc_buf_init(&b, &ctx);
        nasc_status st = nasc_svg_plot(&p, &b);
        nasc_buf_free(&b);
        assert_int_equal(ta.live, 0);
        if (!ta.failed) {
            assert_int_equal(st, NASC_OK);
            break;
        }
        assert_int_equal(st, NASC_ENOMEM);
        assert_int_equal(ctx.diag.status, NASC_ENOMEM);
        assert_non_null(strstr(ctx.diag.msg, "SVG"));
    }
    assert_true(k > 5); /* the buffer grew several times */
}

/* Each document parses as XML with an <svg> root in the SVG namespace and a
 * viewBox. Needs /usr/bin/python3; without it the test is skipped, not passed. */
static void test_xml_valid(void **state) {
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0)
        nasc_test_skip("/usr/bin/python3 not found; the XML well-formedness check cannot run");
    nasc_plot_series s[5];
    nasc_plot none = {"nothing", "x", "y", "y2", NULL, 0, 0, 0};
    nasc_plot plots[6] = {basic_plot(s), none, {0}, {0}, {0}, {0}};
    nasc_plot_series s1[1], s2[5], s3[3], s4[3];
    plots[2] = escaping_plot(s1);
    plots[3] = nan_plot(s2);
    plots[4] = big_plot(s3);
    plots[5] = edge_plot(s4);
    for (int i = 0; i < 6; i++) {
        nasc_ctx ctx;
        nasc_buf b;
        render(&ctx, &plots[i], &b);
        char path[] = "/tmp/nasc_test_svg_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
        close(fd);
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c 'import xml.dom.minidom,sys; "
                 "r=xml.dom.minidom.parse(sys.argv[1]).documentElement; "
                 "assert r.tagName==\"svg\" and "
                 "r.getAttribute(\"xmlns\")==\"http://www.w3.org/2000/svg\" and "
                 "r.getAttribute(\"viewBox\")' %s",
                 path);
        int st = system(cmd);
        unlink(path);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("plot %d is not well-formed SVG (status %d):\n%.4000s", i, st, b.data);
        nasc_buf_free(&b);
    }
}

static int teardown(void **state) {
    (void)state;
    free(big_x);
    free(big_y);
    free(big_gap);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),         cmocka_unit_test(test_ticks),
        cmocka_unit_test(test_escaping),      cmocka_unit_test(test_nan),
        cmocka_unit_test(test_edge_cases),    cmocka_unit_test(test_thinning),
        cmocka_unit_test(test_bad_input),     cmocka_unit_test(test_failing_alloc),
        cmocka_unit_test(test_xml_valid),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("export/svg", tests, NULL, teardown));
}
