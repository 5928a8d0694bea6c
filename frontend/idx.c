/* idx.c - IDX image and label files (the MNIST / Fashion-MNIST format),
 * plain or gzipped, and the named data sets built from them.
 *
 * An IDX file is a 4-byte magic number (0, 0, element type, number of
 * dimensions), one big-endian u32 per dimension, then the elements in
 * row-major order. Images are u8 with 3 dimensions (0x00000803: n, rows,
 * columns), labels u8 with 1 dimension (0x00000801: n). zlib's gzread reads
 * gzipped and plain files alike.
 *
 * Everything the header claims is checked before anything is allocated, and
 * the payload buffer grows with the bytes actually read, so a short file that
 * claims a huge size never makes a huge allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nasc_frontend.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
/* Limits on what a header may claim: far beyond any image data set that fits
 * in memory, far below what would overflow the arithmetic. */
#define IDX_MAX_COUNT ((uint32_t)INT32_MAX) /* images or labels */
#define IDX_MAX_SIDE 65536u                 /* rows, columns */
#define IDX_MAX_BYTES ((uint64_t)1 << 36)   /* image payload, 64 GiB */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)   /* first payload buffer */
#define IDX_READ_CHUNK ((size_t)1 << 30)    /* gzread takes an unsigned */

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct idx_file {
    const char *path;
    gzFile gz;
    uint32_t dims[3]; /* images (n, rows, columns); labels (n) */
} idx_file;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static nasc_status idx_open(nasc_ctx *ctx, idx_file *f) {
    int fd = open(f->path, O_RDONLY);
    if (fd < 0)
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC, "cannot open: %s",
                          strerror(errno));
    struct stat sb;
    int e = fstat(fd, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC, "cannot read: %s", strerror(e));
    }
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd); /* gzdopen does not close fd when it fails */
        return nasc_error(ctx, NASC_ENOMEM, f->path, NASC_NOLOC,
                          "out of memory opening the file with zlib");
    }
    gzbuffer(f->gz, 1u << 17);
    return NASC_OK;
}

static void idx_close(idx_file *f) {
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

static nasc_status idx_read_error(nasc_ctx *ctx, const idx_file *f) {
    int zerr = Z_OK;
    const char *msg = gzerror(f->gz, &zerr);
    if (zerr == Z_ERRNO) msg = strerror(errno);
    if (zerr == Z_MEM_ERROR)
        return nasc_error(ctx, NASC_ENOMEM, f->path, NASC_NOLOC, "out of memory in zlib");
    return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC, "cannot read: %s",
                      msg && *msg ? msg : "read error");
}

/* Read up to want bytes; *got says how many there were before the end. */
static nasc_status idx_read(nasc_ctx *ctx, const idx_file *f, void *buf, size_t want,
                            size_t *got) {
    *got = 0;
    while (*got < want) {
        size_t chunk = want - *got < IDX_READ_CHUNK ? want - *got : IDX_READ_CHUNK;
        int r = gzread(f->gz, (unsigned char *)buf + *got, (unsigned)chunk);
        if (r < 0) return idx_read_error(ctx, f);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return NASC_OK;
}

/* " (the gzip stream ends early)" when zlib saw a truncated stream. */
static const char *idx_eof_note(const idx_file *f) {
    int zerr = Z_OK;
    gzerror(f->gz, &zerr);
    return zerr == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

/* Magic number and dimensions. what: "images" or "labels". */
static nasc_status idx_header(nasc_ctx *ctx, idx_file *f, uint32_t magic, int ndim,
                              const char *what) {
    unsigned char hdr[4 + 4 * 3];
    size_t got = 0;
    nasc_status st = idx_read(ctx, f, hdr, 4, &got);
    if (st) return st;
    if (got < 4)
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC,
                          "truncated IDX %s file: the header needs %d bytes, found %zu%s", what,
                          4 + 4 * ndim, got, idx_eof_note(f));
    uint32_t m = be32(hdr);
    if (m != magic) {
        const char *hint = "";
        if (m == IDX_MAGIC_IMAGES) hint = "; this looks like an IDX image file";
        else if (m == IDX_MAGIC_LABELS) hint = "; this looks like an IDX label file";
        else if (hdr[0] != 0 || hdr[1] != 0) hint = "; this is not an IDX file";
        else if (hdr[2] != 0x08) hint = "; only unsigned-byte elements (type 0x08) are supported";
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC,
                          "bad magic number 0x%08" PRIx32 " for IDX %s: expected 0x%08" PRIx32
                          " (unsigned bytes, %d dimension%s)%s",
                          m, what, magic, ndim, ndim == 1 ? "" : "s", hint);
    }
    st = idx_read(ctx, f, hdr + 4, 4 * (size_t)ndim, &got);
    if (st) return st;
    if (got < 4 * (size_t)ndim)
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC,
                          "truncated IDX %s file: the header needs %d bytes, found %zu%s", what,
                          4 + 4 * ndim, 4 + got, idx_eof_note(f));
    for (int i = 0; i < ndim; i++) f->dims[i] = be32(hdr + 4 + 4 * i);
    return NASC_OK;
}

/* Read exactly want payload bytes (after a header of hdr_bytes) into a new
 * buffer, then make sure nothing follows. desc names the payload in errors. */
static nasc_status idx_payload(nasc_ctx *ctx, const idx_file *f, size_t want, int hdr_bytes,
                               const char *desc, uint8_t **out) {
    *out = NULL;
    size_t cap = want < IDX_FIRST_CHUNK ? want : IDX_FIRST_CHUNK;
    uint8_t *buf = nasc_alloc(ctx, cap);
    if (!buf) return NASC_ENOMEM;
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            if (cap == want) break;
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = nasc_realloc(ctx, buf, ncap);
            if (!nb) {
                nasc_free(ctx, buf);
                return NASC_ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = 0;
        nasc_status st = idx_read(ctx, f, buf + got, cap - got, &r);
        if (st) {
            nasc_free(ctx, buf);
            return st;
        }
        if (r == 0) break;
        got += r;
    }
    if (got < want) {
        nasc_free(ctx, buf);
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC,
                          "truncated: expected %zu bytes of %s after the %d-byte header, found "
                          "%zu%s",
                          want, desc, hdr_bytes, got, idx_eof_note(f));
    }
    /* Count what follows (the file is finite; this reads no more than it holds). */
    unsigned char tail[4096];
    uint64_t extra = 0;
    for (;;) {
        size_t r = 0;
        nasc_status st = idx_read(ctx, f, tail, sizeof tail, &r);
        if (st) {
            nasc_free(ctx, buf);
            return st;
        }
        if (r == 0) break;
        extra += r;
    }
    if (extra > 0) {
        nasc_free(ctx, buf);
        return nasc_error(ctx, NASC_EINPUT, f->path, NASC_NOLOC,
                          "%" PRIu64 " unexpected trailing byte%s after the %zu bytes of %s that "
                          "the header declares",
                          extra, extra == 1 ? "" : "s", want, desc);
    }
    *out = buf;
    return NASC_OK;
}

nasc_status nasc_idx_load(nasc_ctx *ctx, const char *images_path, const char *labels_path,
                          int classes, nasc_dataset *out) {
    memset(out, 0, sizeof *out);
    if (classes < 1 || classes > 256)
        return nasc_error(ctx, NASC_EINPUT, labels_path, NASC_NOLOC,
                          "%d classes: byte labels need 1 to 256 classes", classes);
    idx_file im = {.path = images_path}, lb = {.path = labels_path};
    uint8_t *images = NULL, *labels = NULL;
    char desc[128];

    nasc_status st = idx_open(ctx, &im);
    if (st) goto done;
    st = idx_header(ctx, &im, IDX_MAGIC_IMAGES, 3, "images");
    if (st) goto done;
    uint32_t n = im.dims[0], rows = im.dims[1], cols = im.dims[2];
    if (n == 0 || rows == 0 || cols == 0) {
        st = nasc_error(ctx, NASC_EINPUT, images_path, NASC_NOLOC,
                        "empty IDX images: the header declares %" PRIu32 " images of %" PRIu32
                        "x%" PRIu32 "; every dimension must be at least 1",
                        n, rows, cols);
        goto done;
    }
    /* Past the first three tests the product is below 2^63. */
    if (n > IDX_MAX_COUNT || rows > IDX_MAX_SIDE || cols > IDX_MAX_SIDE ||
        (uint64_t)n * rows * cols > IDX_MAX_BYTES || (uint64_t)n * rows * cols > SIZE_MAX) {
        st = nasc_error(ctx, NASC_EINPUT, images_path, NASC_NOLOC,
                        "IDX images too large: the header declares %" PRIu32 " images of %" PRIu32
                        "x%" PRIu32 " (at most %" PRIu32 " images, %u rows and columns, "
                        "%" PRIu64 " bytes in all)",
                        n, rows, cols, IDX_MAX_COUNT, IDX_MAX_SIDE, (uint64_t)IDX_MAX_BYTES);
        goto done;
    }

    st = idx_open(ctx, &lb);
    if (st) goto done;
    st = idx_header(ctx, &lb, IDX_MAGIC_LABELS, 1, "labels");
    if (st) goto done;
    if (lb.dims[0] == 0) {
        st = nasc_error(ctx, NASC_EINPUT, labels_path, NASC_NOLOC,
                        "empty IDX labels: the header declares 0 labels");
        goto done;
    }
    if (lb.dims[0] != n) {
        st = nasc_error(ctx, NASC_EINPUT, labels_path, NASC_NOLOC,
                        "%" PRIu32 " labels in this file but %" PRIu32 " images in %s", lb.dims[0],
                        n, images_path);
        goto done;
    }

    uint64_t bytes = (uint64_t)n * rows * cols;
    snprintf(desc, sizeof desc, "image data (%" PRIu32 " images of %" PRIu32 "x%" PRIu32 ")", n,
             rows, cols);
    st = idx_payload(ctx, &im, (size_t)bytes, 16, desc, &images);
    if (st) goto done;
    snprintf(desc, sizeof desc, "label data (%" PRIu32 " labels)", n);
    st = idx_payload(ctx, &lb, n, 8, desc, &labels);
    if (st) goto done;
    for (uint32_t i = 0; i < n; i++) {
        if (labels[i] >= classes) {
            st = nasc_error(ctx, NASC_EINPUT, labels_path, NASC_NOLOC,
                            "label %u at index %" PRIu32 " is out of range: there are %d classes "
                            "(labels 0..%d)",
                            (unsigned)labels[i], i, classes, classes - 1);
            goto done;
        }
    }
    out->n = n;
    out->c = 1;
    out->h = (int)rows;
    out->w = (int)cols;
    out->classes = classes;
    out->images = images;
    out->labels = labels;
    images = labels = NULL;

done:
    idx_close(&im);
    idx_close(&lb);
    nasc_free(ctx, images);
    nasc_free(ctx, labels);
    return st;
}

/* ------------------------------------------------------------------ */
/* Named data sets                                                     */
/* ------------------------------------------------------------------ */

static bool is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Find one of the four files in dir: stem "train-images", kind "idx3".
 * The Fashion-MNIST names (train-images-idx3-ubyte) come first, then the
 * MNIST ones (train-images.idx3-ubyte), each plain then gzipped. */
static nasc_status find_idx(nasc_ctx *ctx, const char *dir, const char *stem, const char *kind,
                            bool system, char *path, size_t size) {
    static const char *const seps[] = {"-", "."};
    static const char *const exts[] = {"", ".gz"};
    char tried[512] = "";
    size_t tl = 0;
    for (int s = 0; s < 2; s++) {
        for (int e = 0; e < 2; e++) {
            int k = snprintf(path, size, "%s/%s%s%s-ubyte%s", dir, stem, seps[s], kind, exts[e]);
            if (k < 0 || (size_t)k >= size)
                return nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC, "path too long");
            if (is_regular(path)) return NASC_OK;
            int t = snprintf(tried + tl, sizeof tried - tl, "%s%s%s%s-ubyte%s", tl ? ", " : "",
                             stem, seps[s], kind, exts[e]);
            if (t > 0 && (size_t)t < sizeof tried - tl) tl += (size_t)t;
        }
    }
    path[0] = 0;
    if (system)
        return nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC,
                          "Fashion-MNIST is not installed (no %s%s%s-ubyte[.gz] here): install "
                          "the Debian package dataset-fashion-mnist, or pass a directory "
                          "holding the IDX files",
                          stem, seps[0], kind);
    return nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC, "no %s file in this directory (tried %s)",
                      stem, tried);
}

static nasc_status load_split(nasc_ctx *ctx, const char *dir, const char *split, bool system,
                              nasc_dataset *out) {
    char stem[32], images[4096], labels[4096];
    snprintf(stem, sizeof stem, "%s-images", split);
    nasc_status st = find_idx(ctx, dir, stem, "idx3", system, images, sizeof images);
    if (st) return st;
    snprintf(stem, sizeof stem, "%s-labels", split);
    st = find_idx(ctx, dir, stem, "idx1", system, labels, sizeof labels);
    if (st) return st;
    return nasc_idx_load(ctx, images, labels, 10, out);
}

nasc_status nasc_data_load(nasc_ctx *ctx, const char *spec, nasc_dataset *train,
                           nasc_dataset *test) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    bool system = strcmp(spec, "fashion-mnist") == 0;
    const char *dir = system ? FASHION_MNIST_DIR : spec;
    if (system && !is_dir(dir))
        return nasc_error(ctx, NASC_EINPUT, dir, NASC_NOLOC,
                          "Fashion-MNIST is not installed: install the Debian package "
                          "dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or "
                          "pass a directory holding the IDX files");
    if (!system && !is_dir(dir))
        return nasc_error(ctx, NASC_EINPUT, spec, NASC_NOLOC,
                          "unknown data set: expected 'fashion-mnist' or a directory holding "
                          "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                          "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz)");
    nasc_status st = load_split(ctx, dir, "train", system, train);
    if (st) return st;
    st = load_split(ctx, dir, "t10k", system, test);
    if (st) nasc_dataset_free(ctx, train);
    return st;
}
