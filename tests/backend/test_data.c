/* Batches: every image once per epoch, orders that repeat for a seed and
 * epoch and change between epochs, drop_last and the zero-filled short last
 * batch, normalisation values, augmentation (crop, flip, cutout) that is
 * deterministic and leaves plausible images, data set statistics, and the
 * real Fashion-MNIST (its known mean and std, and the batching speed) when
 * the Debian package is installed. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nasc_backend.h"

/* ---------------------------------------------------------------- */
/* helpers                                                          */
/* ---------------------------------------------------------------- */

/* n images of (c, h, w). Image i carries its index in its first two bytes
 * (i & 255, i >> 8); the rest are (i * 31 + k * 7) mod 256. Label i % classes. */
static nasc_dataset make_set(int64_t n, int c, int h, int w, int classes) {
    nasc_dataset d = {.n = n, .c = c, .h = h, .w = w, .classes = classes};
    size_t img = (size_t)c * h * w;
    d.images = malloc((size_t)n * img);
    d.labels = malloc((size_t)n);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = d.images + (size_t)i * img;
        for (size_t k = 0; k < img; k++) p[k] = (uint8_t)((i * 31 + (int64_t)k * 7) % 256);
        p[0] = (uint8_t)(i & 255);
        if (img > 1) p[1] = (uint8_t)(i >> 8);
        d.labels[i] = (uint8_t)(i % classes);
    }
    return d;
}

static void free_set(nasc_dataset *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* The index an unaugmented image carries (mean 0, std 1). */
static int64_t index_of(const float *x) {
    return lroundf(x[0] * 255.0f) + 256 * lroundf(x[1] * 255.0f);
}

static nasc_batcher *make_batcher(nasc_ctx *ctx, const nasc_dataset *d, int64_t begin,
                                  int64_t end, const nasc_batcher_options *o) {
    nasc_batcher *b = NULL;
    nasc_status st = nasc_batcher_create(ctx, d, begin, end, o, &b);
    if (st) nasc_diag_print(&ctx->diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_non_null(b);
    return b;
}

/* The image indices of epoch e in order (n of them), via the batches. */
static void epoch_order(nasc_batcher *b, int64_t e, const nasc_dataset *d, int batch,
                        int64_t *order, int64_t n) {
    size_t img = (size_t)d->c * d->h * d->w;
    float *x = malloc((size_t)batch * img * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    nasc_batcher_start(b, e);
    int64_t got = 0;
    int k;
    while ((k = nasc_batcher_next(b, x, y)) > 0) {
        for (int i = 0; i < k; i++) {
            assert_true(got < n);
            order[got] = index_of(x + (size_t)i * img);
            assert_int_equal(y[i], d->labels[order[got]]);
            got++;
        }
    }
    assert_int_equal(got, n);
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- */
/* order                                                             */
/* ---------------------------------------------------------------- */

static void test_defaults(void **state) {
    (void)state;
    nasc_batcher_options o = nasc_batcher_options_default();
    assert_int_equal(o.batch, 64);
    assert_int_equal(o.seed, 1);
    assert_true(o.shuffle);
    assert_false(o.drop_last);
    assert_int_equal(o.crop_pad, 0);
    assert_false(o.flip);
    assert_int_equal(o.cutout, 0);
    assert_true(o.mean == 0.0f && o.std == 1.0f);
}

/* Shuffled: each image exactly once per epoch; the short last batch is
 * zero-filled. */
static void test_cover_once(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_dataset d = make_set(1000, 1, 4, 5, 10);
    nasc_batcher_options o = nasc_batcher_options_default();
    nasc_batcher *b = make_batcher(&ctx, &d, 0, 1000, &o);
    assert_int_equal(nasc_batcher_count(b), 16);
    float x[64 * 20];
    int32_t y[64];
    for (int64_t e = 0; e < 3; e++) {
        char seen[1000] = {0};
        nasc_batcher_start(b, e);
        int batches = 0, k;
        int64_t total = 0;
        for (;;) {
            memset(x, 0x7f, sizeof x);
            memset(y, 0x7f, sizeof y);
            k = nasc_batcher_next(b, x, y);
            if (k == 0) break;
            batches++;
            assert_int_equal(k, batches < 16 ? 64 : 1000 - 15 * 64);
            for (int i = 0; i < k; i++) {
                int64_t idx = index_of(x + i * 20);
                assert_true(idx >= 0 && idx < 1000);
                assert_false(seen[idx]);
                seen[idx] = 1;
                assert_int_equal(y[i], idx % 10);
            }
            for (int i = k * 20; i < 64 * 20; i++) assert_true(x[i] == 0.0f);
            for (int i = k; i < 64; i++) assert_int_equal(y[i], 0);
            total += k;
        }
        assert_int_equal(batches, 16);
        assert_int_equal(total, 1000);
        assert_int_equal(nasc_batcher_next(b, x, y), 0); /* stays at the end */
    }
    nasc_batcher_destroy(b);
    assert_int_equal(ta.live, 0);
    free_set(&d);
}

static bool same_order(const int64_t *a, const int64_t *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void test_order_repeats(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    enum { N = 500 };
    nasc_dataset d = make_set(N, 1, 2, 3, 7);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = 33;
    o.seed = 42;
    nasc_batcher *a = make_batcher(&ctx, &d, 0, N, &o);
    nasc_batcher *b = make_batcher(&ctx, &d, 0, N, &o);
    o.seed = 43;
    nasc_batcher *c = make_batcher(&ctx, &d, 0, N, &o);
    o.shuffle = false;
    nasc_batcher *s = make_batcher(&ctx, &d, 0, N, &o);
    static int64_t ord[4][N], again[N], ident[N];
    for (int64_t e = 0; e < 4; e++) epoch_order(a, e, &d, 33, ord[e], N);
    /* same seed and epoch, other batcher, other history: same order */
    epoch_order(b, 2, &d, 33, again, N);
    assert_true(same_order(ord[2], again, N));
    epoch_order(a, 1, &d, 33, again, N);
    assert_true(same_order(ord[1], again, N));
    /* epochs differ from each other and from the identity */
    for (int i = 0; i < N; i++) ident[i] = i;
    for (int e = 0; e < 4; e++) {
        assert_false(same_order(ord[e], ident, N));
        for (int f = e + 1; f < 4; f++) assert_false(same_order(ord[e], ord[f], N));
    }
    /* another seed, another order */
    epoch_order(c, 0, &d, 33, again, N);
    assert_false(same_order(ord[0], again, N));
    /* without shuffling: in order, every epoch */
    epoch_order(s, 0, &d, 33, again, N);
    assert_true(same_order(again, ident, N));
    epoch_order(s, 5, &d, 33, again, N);
    assert_true(same_order(again, ident, N));
    /* a shuffle moves most images (a fixed point has chance 1/N each) */
    int fixed = 0;
    for (int i = 0; i < N; i++) fixed += ord[0][i] == i;
    assert_true(fixed < 10);
    nasc_batcher_destroy(a);
    nasc_batcher_destroy(b);
    nasc_batcher_destroy(c);
    nasc_batcher_destroy(s);
    free_set(&d);
}

/* Over many epochs every order of three images turns up about equally often
 * (a biased shuffle, e.g. Sattolo's cycles, would miss some). */
static void test_shuffle_uniform(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d = make_set(3, 1, 1, 2, 3);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = 3;
    nasc_batcher *b = make_batcher(&ctx, &d, 0, 3, &o);
    int counts[3][3][3] = {{{0}}};
    int64_t ord[3];
    for (int64_t e = 0; e < 1200; e++) {
        epoch_order(b, e, &d, 3, ord, 3);
        counts[ord[0]][ord[1]][ord[2]]++;
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) {
                if (i == j || j == k || i == k) continue;
                assert_true(counts[i][j][k] > 140 && counts[i][j][k] < 260);
            }
    nasc_batcher_destroy(b);
    free_set(&d);
}

/* Batches over a range [begin, end) only see those images. */
static void test_range(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d = make_set(300, 1, 2, 2, 10);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = 16;
    int64_t ord[50];
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        o.shuffle = shuffle;
        nasc_batcher *b = make_batcher(&ctx, &d, 250, 300, &o);
        assert_int_equal(nasc_batcher_count(b), 4);
        epoch_order(b, 3, &d, 16, ord, 50);
        char seen[50] = {0};
        for (int i = 0; i < 50; i++) {
            assert_true(ord[i] >= 250 && ord[i] < 300);
            assert_false(seen[ord[i] - 250]);
            seen[ord[i] - 250] = 1;
            if (!shuffle) assert_int_equal(ord[i], 250 + i);
        }
        nasc_batcher_destroy(b);
    }
    /* an empty range: no batches */
    nasc_batcher *b = make_batcher(&ctx, &d, 7, 7, &o);
    float x[16 * 4];
    int32_t y[16];
    assert_int_equal(nasc_batcher_count(b), 0);
    assert_int_equal(nasc_batcher_next(b, x, y), 0);
    nasc_batcher_destroy(b);
    free_set(&d);
}

static void test_drop_last(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d = make_set(100, 1, 2, 2, 10);
    float x[32 * 4];
    int32_t y[32];
    const struct {
        int64_t n;
        bool drop;
        int64_t count;
        int sizes[5];
    } cases[] = {
        {100, true, 3, {32, 32, 32, 0}},
        {100, false, 4, {32, 32, 32, 4, 0}},
        {96, true, 3, {32, 32, 32, 0}},
        {96, false, 3, {32, 32, 32, 0}},
        {20, true, 0, {0}},
        {20, false, 1, {20, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nasc_batcher_options o = nasc_batcher_options_default();
        o.batch = 32;
        o.drop_last = cases[c].drop;
        nasc_batcher *b = make_batcher(&ctx, &d, 0, cases[c].n, &o);
        assert_int_equal(nasc_batcher_count(b), cases[c].count);
        for (int e = 0; e < 2; e++) {
            nasc_batcher_start(b, e);
            for (int i = 0;; i++) {
                int k = nasc_batcher_next(b, x, y);
                assert_int_equal(k, cases[c].sizes[i]);
                if (k == 0) break;
            }
            assert_int_equal(nasc_batcher_next(b, x, y), 0);
        }
        nasc_batcher_destroy(b);
    }
    free_set(&d);
}

/* ---------------------------------------------------------------- */
/* values                                                            */
/* ---------------------------------------------------------------- */

static void test_normalisation(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d = make_set(40, 3, 5, 6, 10); /* several channels */
    const float means[] = {0.0f, 0.5f, 0.2860f};
    const float stds[] = {1.0f, 0.25f, 0.3530f};
    float x[8 * 90];
    int32_t y[8];
    for (int m = 0; m < 3; m++) {
        for (int shuffle = 0; shuffle < 2; shuffle++) {
            nasc_batcher_options o = nasc_batcher_options_default();
            o.batch = 8;
            o.shuffle = shuffle;
            o.mean = means[m];
            o.std = stds[m];
            nasc_batcher *b = make_batcher(&ctx, &d, 0, 40, &o);
            int k;
            int64_t pos = 0;
            while ((k = nasc_batcher_next(b, x, y)) > 0) {
                for (int i = 0; i < k; i++, pos++) {
                    /* find the image by its label and first pixel */
                    const float *xi = x + i * 90;
                    int64_t idx = lround(((double)xi[0] * stds[m] + means[m]) * 255.0);
                    if (!shuffle) assert_int_equal(idx, pos);
                    const uint8_t *p = d.images + idx * 90;
                    for (int j = 0; j < 90; j++) {
                        double want = ((double)p[j] / 255.0 - means[m]) / stds[m];
                        assert_true(fabs(xi[j] - want) <= 1e-6 * fmax(1.0, fabs(want)));
                    }
                    assert_int_equal(y[i], d.labels[idx]);
                }
            }
            assert_int_equal(pos, 40);
            nasc_batcher_destroy(b);
        }
    }
    /* the ends of the byte range exactly (mean 0, std 1) */
    nasc_dataset e = {.n = 1, .c = 1, .h = 1, .w = 3, .classes = 2};
    uint8_t px[3] = {0, 255, 51}, lb[1] = {1};
    e.images = px;
    e.labels = lb;
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = 1;
    nasc_batcher *b = make_batcher(&ctx, &e, 0, 1, &o);
    assert_int_equal(nasc_batcher_next(b, x, y), 1);
    assert_true(x[0] == 0.0f && x[1] == 1.0f && x[2] == 0.2f);
    assert_int_equal(y[0], 1);
    nasc_batcher_destroy(b);
    free_set(&d);
}

static void test_create_errors(void **state) {
    (void)state;
    nasc_dataset d = make_set(10, 1, 4, 4, 10);
    nasc_batcher_options good = nasc_batcher_options_default();
    struct {
        int64_t begin, end;
        nasc_batcher_options o;
        const char *sub;
    } cases[8];
    int n = 0;
    for (int i = 0; i < 8; i++) {
        cases[i].begin = 0;
        cases[i].end = 10;
        cases[i].o = good;
    }
    cases[n].o.batch = 0, cases[n++].sub = "batch size 0";
    cases[n].o.std = 0, cases[n++].sub = "std positive";
    cases[n].o.mean = NAN, cases[n++].sub = "finite";
    cases[n].end = 11, cases[n++].sub = "[0, 11) is not within the 10 images";
    cases[n].begin = 6, cases[n].end = 5, cases[n++].sub = "[6, 5)";
    cases[n].o.crop_pad = -1, cases[n++].sub = "crop padding -1";
    cases[n].o.cutout = 5, cases[n++].sub = "cutout 5 must be in 0..4";
    for (int i = 0; i < n; i++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_batcher *b = (nasc_batcher *)&d;
        nasc_status st = nasc_batcher_create(&ctx, &d, cases[i].begin, cases[i].end, &cases[i].o, &b);
        assert_int_equal(st, NASC_EINPUT);
        assert_null(b);
        if (!strstr(ctx.diag.msg, cases[i].sub)) {
            nasc_diag_print(&ctx.diag, stderr);
            fail_msg("want ...%s...", cases[i].sub);
        }
        assert_int_equal(ta.count, 0);
    }
    /* failing allocations: the batcher, then the permutation */
    for (long k = 1;; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_batcher *b = (nasc_batcher *)&d;
        nasc_status st = nasc_batcher_create(&ctx, &d, 0, 10, &good, &b);
        if (ta.failed) {
            assert_int_equal(st, NASC_ENOMEM);
            assert_null(b);
            assert_int_equal(ta.live, 0);
            continue;
        }
        assert_int_equal(st, NASC_OK);
        assert_int_equal(k, 3);
        nasc_batcher_destroy(b);
        assert_int_equal(ta.live, 0);
        break;
    }
    nasc_batcher_destroy(NULL);
    free_set(&d);
}

/* ---------------------------------------------------------------- */
/* augmentation                                                      */
/* ---------------------------------------------------------------- */

enum { AN = 300, AH = 12, AW = 10, AB = 32 };

/* One epoch's batches of d with o, all of them, into x (AN * AH * AW) and y. */
static void run_epoch(const nasc_dataset *d, const nasc_batcher_options *o, int64_t epoch,
                      float *x, int32_t *y) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_batcher *b = make_batcher(&ctx, d, 0, d->n, o);
    nasc_batcher_start(b, epoch);
    size_t img = (size_t)d->c * d->h * d->w;
    float *bx = malloc((size_t)o->batch * img * sizeof *bx);
    int32_t *by = malloc((size_t)o->batch * sizeof *by);
    assert_non_null(bx);
    assert_non_null(by);
    int64_t pos = 0;
    int k;
    while ((k = nasc_batcher_next(b, bx, by)) > 0) {
        memcpy(x + pos * img, bx, (size_t)k * img * sizeof *x);
        memcpy(y + pos, by, (size_t)k * sizeof *y);
        pos += k;
    }
    assert_int_equal(pos, d->n);
    free(bx);
    free(by);
    nasc_batcher_destroy(b);
}

/* Images of random pixels; label = index mod 10 (only used for identity). */
static nasc_dataset random_set(int64_t n, int c, int h, int w, uint64_t seed) {
    nasc_dataset d = {.n = n, .c = c, .h = h, .w = w, .classes = 10};
    size_t bytes = (size_t)n * c * h * w;
    d.images = malloc(bytes);
    d.labels = malloc((size_t)n);
    assert_non_null(d.images);
    assert_non_null(d.labels);
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    for (size_t k = 0; k < bytes; k++) d.images[k] = (uint8_t)(nasc_rng_next(&r) >> 56);
    for (int64_t i = 0; i < n; i++) d.labels[i] = (uint8_t)(i % 10);
    return d;
}

/* Where in the order (and so which image) each output came from: the same
 * seed without augmentation gives the same order. */
static void source_images(const nasc_dataset *d, const nasc_batcher_options *o, int64_t epoch,
                          int64_t *src) {
    nasc_batcher_options p = *o;
    p.crop_pad = 0;
    p.flip = false;
    p.cutout = 0;
    p.mean = 0;
    p.std = 1;
    nasc_dataset tagged = make_set(d->n, d->c, d->h, d->w, d->classes);
    float *x = malloc((size_t)d->n * d->c * d->h * d->w * sizeof *x);
    int32_t *y = malloc((size_t)d->n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    run_epoch(&tagged, &p, epoch, x, y);
    size_t img = (size_t)d->c * d->h * d->w;
    for (int64_t i = 0; i < d->n; i++) src[i] = index_of(x + i * img);
    free(x);
    free(y);
    free_set(&tagged);
}

/* Does out equal src shifted by (dy, dx), optionally mirrored, with zeros
 * where the source is outside? Values compared after normalisation with
 * mean 0, std 1. */
static bool is_shift(const uint8_t *src, const float *out, int h, int w, int dy, int dx,
                     bool flip) {
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int cx = flip ? w - 1 - x : x; /* column in the cropped image */
            int sy = y + dy, sx = cx + dx;
            float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] / 255.0f : 0.0f;
            if (fabsf(out[y * w + x] - want) > 1e-6f) return false;
        }
    }
    return true;
}

static void test_crop_flip(void **state) {
    (void)state;
    nasc_dataset d = random_set(AN, 1, AH, AW, 7);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = AB;
    o.seed = 9;
    o.crop_pad = 3;
    o.flip = true;
    static float x[AN * AH * AW], x2[AN * AH * AW];
    static int32_t y[AN], y2[AN];
    static int64_t src[AN];
    run_epoch(&d, &o, 2, x, y);
    source_images(&d, &o, 2, src);
    /* each output is its source image shifted by at most 3 and maybe mirrored */
    int shift_y[7] = {0}, shift_x[7] = {0}, flips = 0;
    for (int i = 0; i < AN; i++) {
        assert_int_equal(y[i], d.labels[src[i]]);
        const uint8_t *s = d.images + src[i] * AH * AW;
        int found = 0;
        for (int f = 0; f < 2 && !found; f++)
            for (int dy = -3; dy <= 3 && !found; dy++)
                for (int dx = -3; dx <= 3 && !found; dx++)
                    if (is_shift(s, x + i * AH * AW, AH, AW, dy, dx, f)) {
                        found = 1;
                        shift_y[dy + 3]++;
                        shift_x[dx + 3]++;
                        flips += f;
                    }
        assert_true(found);
    }
    /* every offset turns up in each direction, about half are flipped */
    for (int a = 0; a < 7; a++) assert_true(shift_y[a] > AN / 7 - 30 && shift_x[a] > AN / 7 - 30);
    assert_true(flips > AN / 2 - 50 && flips < AN / 2 + 50);
    /* deterministic: the same (seed, epoch) again gives the same bytes */
    run_epoch(&d, &o, 2, x2, y2);
    assert_memory_equal(x, x2, sizeof x);
    assert_memory_equal(y, y2, sizeof y);
    /* another epoch: other crops */
    run_epoch(&d, &o, 3, x2, y2);
    assert_memory_not_equal(x, x2, sizeof x);
    /* the batch size does not change what an image gets in an epoch */
    o.batch = 7;
    run_epoch(&d, &o, 2, x2, y2);
    assert_memory_equal(x, x2, sizeof x);
    /* without shuffling too */
    o.shuffle = false;
    run_epoch(&d, &o, 2, x2, y2);
    source_images(&d, &o, 2, src);
    for (int i = 0; i < AN; i++) assert_int_equal(src[i], i);
    free_set(&d);
}

static void test_cutout(void **state) {
    (void)state;
    /* white images: normalised 1 everywhere, so the cutout is the zeros */
    nasc_dataset d = random_set(AN, 2, AH, AW, 3);
    memset(d.images, 255, (size_t)AN * 2 * AH * AW);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = AB;
    o.cutout = 4;
    static float x[AN * 2 * AH * AW], x2[AN * 2 * AH * AW];
    static int32_t y[AN], y2[AN];
    run_epoch(&d, &o, 0, x, y);
    double sum = 0;
    int full = 0;
    for (int i = 0; i < AN; i++) {
        const float *im = x + (size_t)i * 2 * AH * AW;
        /* the zeros form one rectangle of at most 4x4, the same in both channels */
        int y0 = AH, y1 = -1, x0 = AW, x1 = -1, zeros = 0;
        for (int yy = 0; yy < AH; yy++)
            for (int xx = 0; xx < AW; xx++) {
                float v = im[yy * AW + xx];
                assert_true(v == 0.0f || v == 1.0f);
                assert_true(im[AH * AW + yy * AW + xx] == v);
                if (v == 0.0f) {
                    zeros++;
                    if (yy < y0) y0 = yy;
                    if (yy > y1) y1 = yy;
                    if (xx < x0) x0 = xx;
                    if (xx > x1) x1 = xx;
                }
            }
        assert_true(zeros > 0); /* the centre is always inside the image */
        assert_true(y1 - y0 < 4 && x1 - x0 < 4);
        assert_int_equal(zeros, (y1 - y0 + 1) * (x1 - x0 + 1));
        full += zeros == 16;
        for (int k = 0; k < 2 * AH * AW; k++) sum += im[k];
    }
    /* a centre 2 or more from the top/left and 1 or more from the bottom/right
     * edge keeps the whole square: (12-3)*(10-3)/(12*10) of the draws */
    assert_true(full > AN * 63 / 120 - 40 && full < AN * 63 / 120 + 40);
    double mean = sum / ((double)AN * 2 * AH * AW);
    assert_true(mean > 1.0 - 16.0 / (AH * AW) && mean < 1.0 - 4.0 / (AH * AW));
    run_epoch(&d, &o, 0, x2, y2);
    assert_memory_equal(x, x2, sizeof x);
    run_epoch(&d, &o, 1, x2, y2);
    assert_memory_not_equal(x, x2, sizeof x);
    free_set(&d);
}

/* All three at once on random images: pixel statistics stay plausible. */
static void test_augment_stats(void **state) {
    (void)state;
    nasc_dataset d = random_set(AN, 1, AH, AW, 11);
    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = AB;
    o.crop_pad = 2;
    o.flip = true;
    o.cutout = 3;
    o.mean = 0.5f;
    o.std = 0.29f;
    static float x[AN * AH * AW], x2[AN * AH * AW];
    static int32_t y[AN], y2[AN];
    run_epoch(&d, &o, 4, x, y);
    /* uniform bytes normalise to mean ~0 and std ~1; zeros (padding and
     * cutout) keep the mean near 0 and shrink the std a little */
    double s1 = 0, s2 = 0;
    int zeros = 0;
    for (int k = 0; k < AN * AH * AW; k++) {
        s1 += x[k];
        s2 += (double)x[k] * x[k];
        zeros += x[k] == 0.0f;
        assert_true(x[k] >= (0 - 0.5f) / 0.29f - 1e-5f && x[k] <= (1 - 0.5f) / 0.29f + 1e-5f);
    }
    double mean = s1 / (AN * AH * AW), var = s2 / (AN * AH * AW) - mean * mean;
    assert_true(fabs(mean) < 0.05);
    assert_true(var > 0.6 && var < 1.05);
    double zf = (double)zeros / (AN * AH * AW);
    assert_true(zf > 0.05 && zf < 0.35);
    /* labels follow the unaugmented order */
    static int64_t src[AN];
    source_images(&d, &o, 4, src);
    for (int i = 0; i < AN; i++) assert_int_equal(y[i], d.labels[src[i]]);
    run_epoch(&d, &o, 4, x2, y2);
    assert_memory_equal(x, x2, sizeof x);
    o.seed = 2;
    run_epoch(&d, &o, 4, x2, y2);
    assert_memory_not_equal(x, x2, sizeof x);
    free_set(&d);
}

/* ---------------------------------------------------------------- */
/* statistics                                                        */
/* ---------------------------------------------------------------- */

static void test_stats(void **state) {
    (void)state;
    uint8_t px[6] = {0, 255, 255, 255, 51, 102}, lb[3] = {0, 1, 2};
    nasc_dataset d = {.n = 3, .c = 1, .h = 1, .w = 2, .classes = 3, .images = px, .labels = lb};
    float m, s;
    nasc_dataset_stats(&d, 0, 2, &m, &s); /* 0, 1, 1, 1 */
    assert_float_equal(m, 0.75f, 1e-6f);
    assert_float_equal(s, sqrtf(0.1875f), 1e-6f);
    nasc_dataset_stats(&d, 1, 2, &m, &s); /* 1, 1 */
    assert_float_equal(m, 1.0f, 1e-6f);
    assert_float_equal(s, 0.0f, 1e-6f);
    nasc_dataset_stats(&d, 2, 3, &m, &s); /* 0.2, 0.4 */
    assert_float_equal(m, 0.3f, 1e-6f);
    assert_float_equal(s, 0.1f, 1e-6f);
    nasc_dataset_stats(&d, 0, 3, &m, &s); /* 0, 1, 1, 1, 0.2, 0.4 */
    double mm = (0 + 1 + 1 + 1 + 0.2 + 0.4) / 6.0;
    double vv = (0 + 1 + 1 + 1 + 0.04 + 0.16) / 6.0 - mm * mm;
    assert_float_equal(m, mm, 1e-6f);
    assert_float_equal(s, sqrt(vv), 1e-6f);
    nasc_dataset_stats(&d, 2, 2, &m, &s); /* empty */
    assert_true(m == 0.0f && s == 0.0f);
    nasc_dataset_stats(&d, -5, 99, &m, &s); /* clamped to the set */
    assert_float_equal(m, mm, 1e-6f);
}

/* ---------------------------------------------------------------- */
/* the real Fashion-MNIST                                             */
/* ---------------------------------------------------------------- */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_fashion_mnist(void **state) {
    (void)state;
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        nasc_test_skip("dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)");
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset tr, te;
    nasc_status st = nasc_data_load(&ctx, "fashion-mnist", &tr, &te);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    /* the figures everyone normalises Fashion-MNIST with */
    float m, s;
    nasc_dataset_stats(&tr, 0, tr.n, &m, &s);
    assert_float_equal(m, 0.2860f, 5e-4f);
    assert_float_equal(s, 0.3530f, 5e-4f);

    nasc_batcher_options o = nasc_batcher_options_default();
    o.batch = 256;
    o.mean = m;
    o.std = s;
    nasc_batcher *b = make_batcher(&ctx, &tr, 0, 55000, &o);
    float *x = malloc(256 * 784 * sizeof *x);
    int32_t y[256];
    assert_non_null(x);
    double t0 = seconds();
    int64_t images = 0;
    int k;
    double sum = 0;
    while ((k = nasc_batcher_next(b, x, y)) > 0) {
        images += k;
        sum += x[0];
    }
    double t1 = seconds();
    assert_int_equal(images, 55000);
    o.crop_pad = 2;
    o.flip = true;
    o.cutout = 8;
    nasc_batcher *ba = make_batcher(&ctx, &tr, 0, 55000, &o);
    double t2 = seconds();
    while ((k = nasc_batcher_next(ba, x, y)) > 0) sum += x[0];
    double t3 = seconds();
    fprintf(stderr, "batching Fashion-MNIST: %.0f images/s plain, %.0f images/s augmented (%g)\n",
            55000 / (t1 - t0), 55000 / (t3 - t2), sum * 0);
    nasc_batcher_destroy(b);
    nasc_batcher_destroy(ba);
    free(x);
    nasc_dataset_free(&ctx, &tr);
    nasc_dataset_free(&ctx, &te);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_cover_once),
        cmocka_unit_test(test_order_repeats),
        cmocka_unit_test(test_shuffle_uniform),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_drop_last),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_crop_flip),
        cmocka_unit_test(test_cutout),
        cmocka_unit_test(test_augment_stats),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_fashion_mnist),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("backend/data", tests, NULL, NULL));
}
