/* IDX data files: good loads (plain, gzipped, mixed), one test per kind of
 * bad file (each must be NASC_EINPUT naming the file), sizes that must not
 * allocate, the named data sets, a failing-allocator loop, and the real
 * Fashion-MNIST when the Debian package is installed. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- */
/* helpers                                                          */
/* ---------------------------------------------------------------- */

static char tmpdir[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nasc_test_idx_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Remove dir and everything in it (one level of subdirectories). */
static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state) {
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

/* A path in the temp dir; a few rotating static buffers. */
static const char *tpath(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

/* An image file: header (magic, n, rows, cols) then payload bytes, pixel
 * k = (k * 7 + 3) mod 256. */
static bytes images_file(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t payload) {
    bytes b = {malloc(16 + payload + 1), 16 + payload};
    assert_non_null(b.p);
    put32(b.p, magic);
    put32(b.p + 4, n);
    put32(b.p + 8, rows);
    put32(b.p + 12, cols);
    for (size_t k = 0; k < payload; k++) b.p[16 + k] = (uint8_t)((k * 7 + 3) % 256);
    return b;
}

/* A label file: label i = i mod classes, or the given list. */
static bytes labels_file(uint32_t magic, uint32_t n, size_t payload, const uint8_t *list) {
    bytes b = {malloc(8 + payload + 1), 8 + payload};
    assert_non_null(b.p);
    put32(b.p, magic);
    put32(b.p + 4, n);
    for (size_t i = 0; i < payload; i++) b.p[8 + i] = list ? list[i] : (uint8_t)(i % 10);
    return b;
}

static void write_file(const char *path, bytes b, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, b.p, (unsigned)b.n), (int)b.n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b.p, 1, b.n, f), b.n);
        fclose(f);
    }
    free(b.p);
}

static const uint32_t IM = 0x00000803, LB = 0x00000801;

/* The standard small pair: 5 images of 3x4, labels 0..4. */
static void write_good(const char *im, const char *lb, bool gz_im, bool gz_lb) {
    write_file(im, images_file(IM, 5, 3, 4, 60), gz_im);
    write_file(lb, labels_file(LB, 5, 5, NULL), gz_lb);
}

static bool is_zero(const nasc_dataset *d) {
    return d->n == 0 && d->c == 0 && d->h == 0 && d->w == 0 && d->classes == 0 && !d->images &&
           !d->labels;
}

static int n_wrong; /* wrong diagnostics so far (all are printed, then the test fails) */

/* Load expecting NASC_EINPUT in file with a message containing each of subs. */
static void expect_error(const char *im, const char *lb, int classes, const char *file,
                         const char *sub1, const char *sub2) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_dataset d;
    memset(&d, 0xab, sizeof d);
    nasc_status st = nasc_idx_load(&ctx, im, lb, classes, &d);
    if (st != NASC_EINPUT || strcmp(ctx.diag.file, file) != 0 ||
        (sub1 && !strstr(ctx.diag.msg, sub1)) || (sub2 && !strstr(ctx.diag.msg, sub2))) {
        fprintf(stderr, "want %s: ...%s...%s...\ngot  (status %d) ", file, sub1 ? sub1 : "",
                sub2 ? sub2 : "", (int)st);
        nasc_diag_print(&ctx.diag, stderr);
        n_wrong++;
    }
    assert_true(is_zero(&d));
    assert_int_equal(ta.live, 0);
}

/* ---------------------------------------------------------------- */
/* good files                                                        */
/* ---------------------------------------------------------------- */

static void check_good(const char *im, const char *lb) {
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_dataset d;
    nasc_status st = nasc_idx_load(&ctx, im, lb, 10, &d);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.c, 1);
    assert_int_equal(d.h, 3);
    assert_int_equal(d.w, 4);
    assert_int_equal(d.classes, 10);
    for (int k = 0; k < 60; k++) assert_int_equal(d.images[k], (k * 7 + 3) % 256);
    for (int i = 0; i < 5; i++) assert_int_equal(d.labels[i], i);
    assert_int_equal(ta.live, 2);
    nasc_dataset_free(&ctx, &d);
    assert_int_equal(ta.live, 0);
    assert_true(is_zero(&d));
    nasc_dataset_free(&ctx, &d); /* twice is harmless */
}

static void test_good_plain(void **state) {
    (void)state;
    write_good(tpath("gp-im"), tpath("gp-lb"), false, false);
    check_good(tpath("gp-im"), tpath("gp-lb"));
}

static void test_good_gzip(void **state) {
    (void)state;
    write_good(tpath("gg-im.gz"), tpath("gg-lb.gz"), true, true);
    check_good(tpath("gg-im.gz"), tpath("gg-lb.gz"));
    write_good(tpath("gm-im.gz"), tpath("gm-lb"), true, false);
    check_good(tpath("gm-im.gz"), tpath("gm-lb"));
}

/* A payload larger than the first read buffer (1 MiB) grows it. */
static void test_good_large(void **state) {
    (void)state;
    const uint32_t n = 3000, side = 28; /* 2.35 MB */
    write_file(tpath("lg-im.gz"), images_file(IM, n, side, side, (size_t)n * side * side), true);
    write_file(tpath("lg-lb"), labels_file(LB, n, n, NULL), false);
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d;
    assert_int_equal(nasc_idx_load(&ctx, tpath("lg-im.gz"), tpath("lg-lb"), 10, &d), NASC_OK);
    assert_int_equal(d.n, n);
    size_t last = (size_t)n * side * side - 1;
    assert_int_equal(d.images[last], (last * 7 + 3) % 256);
    assert_int_equal(d.labels[n - 1], (n - 1) % 10);
    nasc_dataset_free(&ctx, &d);
}

/* ---------------------------------------------------------------- */
/* bad files                                                         */
/* ---------------------------------------------------------------- */

static void test_wrong_magic(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("wm-im"), *lb = tpath("wm-lb"), *gim = tpath("wm-good-im"),
               *glb = tpath("wm-good-lb");
    write_good(gim, glb, false, true);
    /* labels where images belong and the other way round */
    expect_error(glb, gim, 10, glb, "bad magic number 0x00000801", "looks like an IDX label file");
    expect_error(gim, gim, 10, gim, "bad magic number 0x00000803", "looks like an IDX image file");
    /* not IDX at all */
    write_file(im, (bytes){(uint8_t *)strdup("hello, world: not a data file"), 29}, false);
    expect_error(im, glb, 10, im, "bad magic number 0x68656c6c", "not an IDX file");
    /* IDX, but floats */
    write_file(lb, labels_file(0x00000d01, 5, 5, NULL), false);
    expect_error(gim, lb, 10, lb, "0x00000d01", "unsigned-byte");
    assert_int_equal(n_wrong, 0);
}

static void test_truncated_images(void **state) {
    (void)state;
    n_wrong = 0;
    const char *lb = tpath("ti-lb"), *im = tpath("ti-im"), *gz = tpath("ti-im.gz"),
               *hd = tpath("ti-hd"), *mg = tpath("ti-mg");
    write_file(lb, labels_file(LB, 5, 5, NULL), false);
    write_file(im, images_file(IM, 5, 3, 4, 50), false);
    expect_error(im, lb, 10, im, "truncated: expected 60 bytes of image data (5 images of 3x4)",
                 "found 50");
    write_file(gz, images_file(IM, 5, 3, 4, 41), true);
    expect_error(gz, lb, 10, gz, "expected 60 bytes", "found 41");
    /* a header cut short, and a file shorter than its magic number */
    bytes b = images_file(IM, 5, 3, 4, 0);
    b.n = 10;
    write_file(hd, b, false);
    expect_error(hd, lb, 10, hd, "truncated IDX images file", "needs 16 bytes, found 10");
    b = images_file(IM, 5, 3, 4, 0);
    b.n = 3;
    write_file(mg, b, false);
    expect_error(mg, lb, 10, mg, "needs 16 bytes, found 3", NULL);
    write_file(mg, (bytes){malloc(1), 0}, false);
    expect_error(mg, lb, 10, mg, "found 0", NULL);
    assert_int_equal(n_wrong, 0);
}

/* A gzip stream cut in the middle reads as a short file, and says so; one
 * with corrupted compressed data is a read error. */
static void test_broken_gzip(void **state) {
    (void)state;
    n_wrong = 0;
    const char *lb = tpath("bg-lb"), *im = tpath("bg-im.gz");
    write_file(lb, labels_file(LB, 200, 200, NULL), false);
    write_file(im, images_file(IM, 200, 28, 28, 200 * 28 * 28), true);
    struct stat sb;
    assert_int_equal(stat(im, &sb), 0);
    assert_int_equal(truncate(im, sb.st_size / 2), 0);
    expect_error(im, lb, 10, im, "expected 156800 bytes", "the gzip stream ends early");

    write_file(im, images_file(IM, 200, 28, 28, 200 * 28 * 28), true);
    FILE *f = fopen(im, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 40, SEEK_SET), 0);
    for (int i = 0; i < 64; i++) fputc(0xff, f);
    fclose(f);
    expect_error(im, lb, 10, im, NULL, NULL);
    assert_int_equal(n_wrong, 0);
}

static void test_truncated_labels(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("tl-im"), *lb = tpath("tl-lb"), *gz = tpath("tl-lb.gz");
    write_file(im, images_file(IM, 5, 3, 4, 60), false);
    write_file(lb, labels_file(LB, 5, 2, NULL), false);
    expect_error(im, lb, 10, lb, "expected 5 bytes of label data (5 labels)", "found 2");
    write_file(gz, labels_file(LB, 5, 0, NULL), true);
    expect_error(im, gz, 10, gz, "after the 8-byte header, found 0", NULL);
    bytes b = labels_file(LB, 5, 0, NULL);
    b.n = 6;
    write_file(lb, b, false);
    expect_error(im, lb, 10, lb, "truncated IDX labels file", "needs 8 bytes, found 6");
    assert_int_equal(n_wrong, 0);
}

static void test_trailing_bytes(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("tb-im"), *lb = tpath("tb-lb"), *gim = tpath("tb-good-im"),
               *glb = tpath("tb-good-lb.gz");
    write_good(gim, glb, false, true);
    write_file(im, images_file(IM, 5, 3, 4, 63), true);
    expect_error(im, glb, 10, im, "3 unexpected trailing bytes after the 60 bytes of image data",
                 NULL);
    write_file(lb, labels_file(LB, 5, 6, NULL), false);
    expect_error(gim, lb, 10, lb, "1 unexpected trailing byte after the 5 bytes of label data",
                 NULL);
    /* much more data than declared */
    write_file(im, images_file(IM, 1, 3, 4, 100000), false);
    write_file(lb, labels_file(LB, 1, 1, NULL), false);
    expect_error(im, lb, 10, im, "99988 unexpected trailing bytes", NULL);
    assert_int_equal(n_wrong, 0);
}

static void test_count_mismatch(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("cm-im"), *lb = tpath("cm-lb");
    write_file(im, images_file(IM, 5, 3, 4, 60), false);
    write_file(lb, labels_file(LB, 4, 4, NULL), false);
    char want[600];
    snprintf(want, sizeof want, "4 labels in this file but 5 images in %s", im);
    expect_error(im, lb, 10, lb, want, NULL);
    assert_int_equal(n_wrong, 0);
}

static void test_label_out_of_range(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("lr-im"), *lb = tpath("lr-lb");
    write_file(im, images_file(IM, 5, 3, 4, 60), false);
    const uint8_t list[5] = {0, 9, 1, 10, 255};
    write_file(lb, labels_file(LB, 5, 5, list), true);
    expect_error(im, lb, 10, lb, "label 10 at index 3 is out of range", "10 classes (labels 0..9)");
    /* with more classes the next one is found */
    expect_error(im, lb, 11, lb, "label 255 at index 4", NULL);
    /* and with 256 classes every byte is a label */
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_dataset d;
    assert_int_equal(nasc_idx_load(&ctx, im, lb, 256, &d), NASC_OK);
    assert_int_equal(d.labels[4], 255);
    nasc_dataset_free(&ctx, &d);
    /* a class count no byte label fits */
    expect_error(im, lb, 0, lb, "0 classes", NULL);
    expect_error(im, lb, 257, lb, "257 classes", NULL);
    assert_int_equal(n_wrong, 0);
}

static void test_zero_dims(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("zd-im"), *lb = tpath("zd-lb"), *glb = tpath("zd-good-lb");
    write_file(glb, labels_file(LB, 5, 5, NULL), false);
    const uint32_t dims[3][3] = {{0, 3, 4}, {5, 0, 4}, {5, 3, 0}};
    for (int i = 0; i < 3; i++) {
        write_file(im, images_file(IM, dims[i][0], dims[i][1], dims[i][2], 0), i == 1);
        expect_error(im, glb, 10, im, "empty IDX images", "every dimension must be at least 1");
    }
    write_file(im, images_file(IM, 5, 3, 4, 60), false);
    write_file(lb, labels_file(LB, 0, 0, NULL), false);
    expect_error(im, lb, 10, lb, "empty IDX labels", NULL);
    assert_int_equal(n_wrong, 0);
}

/* An allocator that records the largest block asked for. */
typedef struct sized_alloc {
    nasc_test_alloc ta;
    size_t max;
} sized_alloc;

static void *sized_realloc(void *ud, void *ptr, size_t size) {
    sized_alloc *a = ud;
    if (size > a->max) a->max = size;
    return nasc_test_realloc(&a->ta, ptr, size);
}

static void test_huge_dims(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("hd-im"), *lb = tpath("hd-lb");
    write_file(lb, labels_file(LB, 5, 5, NULL), false);
    /* Beyond the limits: an error before any allocation. */
    const uint32_t dims[][3] = {
        {0xffffffff, 0xffffffff, 0xffffffff},
        {5, 0xffffffff, 4},
        {5, 3, 65537},
        {0x80000000u, 1, 1},
        {0x7fffffff, 65536, 65536},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        write_file(im, images_file(IM, dims[i][0], dims[i][1], dims[i][2], 100), false);
        sized_alloc a = {{0}, 0};
        nasc_ctx ctx;
        nasc_ctx_init(&ctx);
        nasc_ctx_set_allocator(&ctx, sized_realloc, &a);
        nasc_dataset d;
        assert_int_equal(nasc_idx_load(&ctx, im, lb, 10, &d), NASC_EINPUT);
        assert_string_equal(ctx.diag.file, im);
        assert_non_null(strstr(ctx.diag.msg, "IDX images too large"));
        assert_int_equal(a.ta.count, 0);
        assert_true(is_zero(&d));
    }
    /* Within the limits (2 GB claimed) but the file is short: the buffer
     * grows with the data read, so nothing big is allocated. */
    write_file(im, images_file(IM, 2000000, 32, 32, 5000), false);
    write_file(lb, labels_file(LB, 2000000, 0, NULL), false);
    sized_alloc a = {{0}, 0};
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_ctx_set_allocator(&ctx, sized_realloc, &a);
    nasc_dataset d;
    assert_int_equal(nasc_idx_load(&ctx, im, lb, 10, &d), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, im);
    assert_non_null(strstr(ctx.diag.msg, "expected 2048000000 bytes"));
    assert_non_null(strstr(ctx.diag.msg, "found 5000"));
    assert_true(a.max <= (1u << 20));
    assert_int_equal(a.ta.live, 0);
    assert_int_equal(n_wrong, 0);
}

static void test_missing_file(void **state) {
    (void)state;
    n_wrong = 0;
    const char *im = tpath("mf-im"), *lb = tpath("mf-lb"), *no = tpath("mf-nothing");
    write_good(im, lb, false, false);
    expect_error(no, lb, 10, no, "cannot open", "No such file");
    expect_error(im, no, 10, no, "cannot open", "No such file");
    expect_error(tmpdir, lb, 10, tmpdir, "cannot read", "directory");
    assert_int_equal(n_wrong, 0);
}

/* ---------------------------------------------------------------- */
/* named data sets                                                   */
/* ---------------------------------------------------------------- */

static void make_set_dir(const char *dir, const char *sep, bool gz) {
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *split[2] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        char p[512];
        uint32_t n = s == 0 ? 7 : 3;
        snprintf(p, sizeof p, "%s/%s-images%sidx3-ubyte%s", dir, split[s], sep, gz ? ".gz" : "");
        write_file(p, images_file(IM, n, 2, 2, n * 4), gz);
        snprintf(p, sizeof p, "%s/%s-labels%sidx1-ubyte%s", dir, split[s], sep, gz ? ".gz" : "");
        write_file(p, labels_file(LB, n, n, NULL), gz);
    }
}

static void test_data_load_dir(void **state) {
    (void)state;
    const char *dirs[2] = {tpath("set-fashion"), tpath("set-mnist")};
    make_set_dir(dirs[0], "-", true);
    make_set_dir(dirs[1], ".", false);
    for (int i = 0; i < 2; i++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, 0);
        nasc_dataset tr, te;
        nasc_status st = nasc_data_load(&ctx, dirs[i], &tr, &te);
        if (st) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, NASC_OK);
        assert_int_equal(tr.n, 7);
        assert_int_equal(te.n, 3);
        assert_int_equal(tr.h, 2);
        assert_int_equal(te.w, 2);
        assert_int_equal(tr.classes, 10);
        assert_int_equal(tr.labels[6], 6);
        nasc_dataset_free(&ctx, &tr);
        nasc_dataset_free(&ctx, &te);
        assert_int_equal(ta.live, 0);
    }
}

static void test_data_load_errors(void **state) {
    (void)state;
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_dataset tr, te;

    /* not a directory, not a known name */
    assert_int_equal(nasc_data_load(&ctx, tpath("no-such-set"), &tr, &te), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, tpath("no-such-set"));
    assert_non_null(strstr(ctx.diag.msg, "'fashion-mnist' or a directory"));

    /* a directory with only the training files: the names tried are listed */
    const char *dir = tpath("set-half");
    make_set_dir(dir, "-", false);
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(nasc_data_load(&ctx, dir, &tr, &te), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, dir);
    assert_non_null(strstr(ctx.diag.msg, "no t10k-labels file"));
    assert_non_null(strstr(ctx.diag.msg, "t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz, "
                                         "t10k-labels.idx1-ubyte, t10k-labels.idx1-ubyte.gz"));
    assert_true(is_zero(&tr) && is_zero(&te));
    assert_int_equal(ta.live, 0); /* the training set that did load is freed */

    /* a bad file inside: its own message */
    write_file(p, labels_file(LB, 3, 3, (const uint8_t *)"\x01\x02\x0b"), false);
    assert_int_equal(nasc_data_load(&ctx, dir, &tr, &te), NASC_EINPUT);
    assert_string_equal(ctx.diag.file, p);
    assert_non_null(strstr(ctx.diag.msg, "label 11 at index 2"));
    assert_int_equal(ta.live, 0);
}

/* tests/bad/idx: one data-set directory per case, its `expect` file saying
 * "FILE: SUBSTRING" (FILE "." for the directory). Also under a failing
 * allocator: every case either reports its error or runs out of memory,
 * and frees everything. */
static void test_bad_corpus(void **state) {
    (void)state;
    char *root = nasc_test_path("tests/bad/idx");
    assert_non_null(root);
    DIR *dir = opendir(root);
    assert_non_null(dir);
    int cases = 0;
    n_wrong = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        char d[512], p[600];
        snprintf(d, sizeof d, "%s/%s", root, e->d_name);
        snprintf(p, sizeof p, "%s/expect", d);
        FILE *f = fopen(p, "r");
        if (!f) continue; /* make.py */
        char line[400] = "";
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
        line[strcspn(line, "\n")] = 0;
        char *colon = strstr(line, ": ");
        assert_non_null(colon);
        *colon = 0;
        const char *sub = colon + 2;
        char want_file[1024];
        if (strcmp(line, ".") == 0)
            snprintf(want_file, sizeof want_file, "%s", d);
        else
            snprintf(want_file, sizeof want_file, "%s/%s", d, line);
        cases++;
        for (long k = 0;; k++) {
            nasc_ctx ctx;
            nasc_test_alloc ta;
            nasc_test_ctx(&ctx, &ta, k);
            nasc_dataset tr, te;
            nasc_status st = nasc_data_load(&ctx, d, &tr, &te);
            assert_true(is_zero(&tr) && is_zero(&te));
            assert_int_equal(ta.live, 0);
            if (ta.failed) {
                assert_int_equal(st, NASC_ENOMEM);
                continue;
            }
            if (st != NASC_EINPUT || strcmp(ctx.diag.file, want_file) != 0 ||
                !strstr(ctx.diag.msg, sub)) {
                fprintf(stderr, "%s: want %s: ...%s...\ngot  (status %d) ", e->d_name, want_file,
                        sub, (int)st);
                nasc_diag_print(&ctx.diag, stderr);
                n_wrong++;
            }
            if (k > 0) break; /* k == 0: no failures; then the failing runs */
        }
    }
    closedir(dir);
    free(root);
    assert_true(cases >= 10);
    assert_int_equal(n_wrong, 0);
}

/* ---------------------------------------------------------------- */
/* failing allocator                                                  */
/* ---------------------------------------------------------------- */

/* Make allocation k fail for k = 1, 2, ... until the call gets through;
 * each time the status is NASC_ENOMEM, the output zeroed, nothing live.
 * Returns the number of allocations the call makes. */
static long fail_each(const char *im, const char *lb, nasc_status want) {
    for (long k = 1;; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_dataset d;
        nasc_status st = nasc_idx_load(&ctx, im, lb, 10, &d);
        if (ta.failed) {
            if (st != NASC_ENOMEM) nasc_diag_print(&ctx.diag, stderr);
            assert_int_equal(st, NASC_ENOMEM);
            assert_true(is_zero(&d));
            assert_int_equal(ta.live, 0);
            continue;
        }
        if (st != want) nasc_diag_print(&ctx.diag, stderr);
        assert_int_equal(st, want);
        nasc_dataset_free(&ctx, &d);
        assert_int_equal(ta.live, 0);
        return k - 1;
    }
}

static void test_alloc_fail(void **state) {
    (void)state;
    const char *im = tpath("af-im.gz"), *lb = tpath("af-lb"), *bad = tpath("af-bad"),
               *big = tpath("af-big.gz");
    write_good(im, lb, true, false);
    assert_true(fail_each(im, lb, NASC_OK) >= 2);
    const uint8_t list[5] = {0, 1, 2, 3, 12};
    write_file(bad, labels_file(LB, 5, 5, list), false);
    assert_true(fail_each(im, bad, NASC_EINPUT) >= 2);
    write_file(bad, labels_file(LB, 5, 9, NULL), false);
    assert_true(fail_each(im, bad, NASC_EINPUT) >= 2);
    /* a payload that grows its buffer: the reallocs fail too */
    const uint32_t n = 4000;
    write_file(big, images_file(IM, n, 28, 28, (size_t)n * 28 * 28), true);
    write_file(bad, labels_file(LB, n, n, NULL), false);
    assert_true(fail_each(big, bad, NASC_OK) >= 4);
}

static void test_alloc_fail_data_load(void **state) {
    (void)state;
    const char *dir = tpath("set-alloc");
    make_set_dir(dir, "-", true);
    for (long k = 1;; k++) {
        nasc_ctx ctx;
        nasc_test_alloc ta;
        nasc_test_ctx(&ctx, &ta, k);
        nasc_dataset tr, te;
        nasc_status st = nasc_data_load(&ctx, dir, &tr, &te);
        if (ta.failed) {
            assert_int_equal(st, NASC_ENOMEM);
            assert_true(is_zero(&tr) && is_zero(&te));
            assert_int_equal(ta.live, 0);
            continue;
        }
        assert_int_equal(st, NASC_OK);
        assert_true(k > 4);
        nasc_dataset_free(&ctx, &tr);
        nasc_dataset_free(&ctx, &te);
        assert_int_equal(ta.live, 0);
        break;
    }
}

/* ---------------------------------------------------------------- */
/* the real Fashion-MNIST                                             */
/* ---------------------------------------------------------------- */

static void test_fashion_mnist(void **state) {
    (void)state;
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        nasc_test_skip("dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)");
    nasc_ctx ctx;
    nasc_test_alloc ta;
    nasc_test_ctx(&ctx, &ta, 0);
    nasc_dataset tr, te;
    nasc_status st = nasc_data_load(&ctx, "fashion-mnist", &tr, &te);
    if (st) nasc_diag_print(&ctx.diag, stderr);
    assert_int_equal(st, NASC_OK);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(te.n, 10000);
    assert_true(tr.c == 1 && tr.h == 28 && tr.w == 28 && te.h == 28 && te.w == 28);
    assert_int_equal(tr.classes, 10);
    int64_t cnt_tr[10] = {0}, cnt_te[10] = {0};
    for (int64_t i = 0; i < tr.n; i++) cnt_tr[tr.labels[i]]++;
    for (int64_t i = 0; i < te.n; i++) cnt_te[te.labels[i]]++;
    for (int c = 0; c < 10; c++) {
        assert_int_equal(cnt_tr[c], 6000);
        assert_int_equal(cnt_te[c], 1000);
    }
    /* the first training image is an ankle boot (class 9) */
    assert_int_equal(tr.labels[0], 9);
    nasc_dataset_free(&ctx, &tr);
    nasc_dataset_free(&ctx, &te);
    assert_int_equal(ta.live, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_plain),
        cmocka_unit_test(test_good_gzip),
        cmocka_unit_test(test_good_large),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_truncated_images),
        cmocka_unit_test(test_broken_gzip),
        cmocka_unit_test(test_truncated_labels),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_count_mismatch),
        cmocka_unit_test(test_label_out_of_range),
        cmocka_unit_test(test_zero_dims),
        cmocka_unit_test(test_huge_dims),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_data_load_dir),
        cmocka_unit_test(test_data_load_errors),
        cmocka_unit_test(test_bad_corpus),
        cmocka_unit_test(test_alloc_fail),
        cmocka_unit_test(test_alloc_fail_data_load),
        cmocka_unit_test(test_fashion_mnist),
    };
    return nasc_test_exit(cmocka_run_group_tests_name("frontend/idx", tests, setup, teardown));
}
