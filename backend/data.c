/* data.c - float batches from a byte data set: shuffling, augmentation,
 * normalisation (the "Batches" section of nasc_backend.h). No oneDNN here.
 *
 * Determinism: epoch e's order is a Fisher-Yates shuffle of [begin, end) drawn
 * from a stream seeded by (seed, e) alone, so any epoch can be replayed
 * without replaying the ones before it. Each image's augmentation draws from
 * its own stream seeded by (seed, e, image index), so it does not depend on
 * the batch size or on where in the epoch the image lands.
 *
 * Padding (random crop) and cutout write 0 in normalised space, i.e. a
 * pixel at the normalisation mean (the data mean when mean and std come from
 * nasc_dataset_stats), not the normalised value of a black pixel; DARTS does
 * the same for cutout, which it applies after normalising. Augmentations run
 * in the order crop, flip, cutout; the cutout square (side cutout, centre
 * anywhere in the image) is clipped at the edges.
 *
 * Pixels go through a 256-entry table of (p/255 - mean)/std computed in
 * double, so every value is the correctly rounded float of the formula.
 */
#include <math.h>
#include <string.h>

#include "nasc_backend.h"

#define SALT_SHUFFLE 0x53485546464c4531ull /* "SHUFFLE1" */
#define SALT_AUGMENT 0x4155474d454e5431ull /* "AUGMENT1" */

struct nasc_batcher {
    nasc_ctx *ctx;
    const nasc_dataset *d;
    int64_t begin, n;        /* images [begin, begin + n) of d */
    nasc_batcher_options o;
    size_t img;              /* floats per image: c * h * w */
    int64_t *perm;           /* (n) dataset indices in this epoch's order; NULL without shuffle */
    int64_t pos;             /* images of this epoch handed out so far */
    int64_t epoch;
    uint64_t aug_key;        /* per-epoch key of the augmentation streams */
    bool augment;            /* crop, flip or cutout is on */
    float lut[256];          /* pixel byte -> normalised float */
};

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t epoch_key(uint64_t seed, int64_t epoch, uint64_t salt) {
    return mix64(mix64(seed ^ salt) + (uint64_t)epoch);
}

nasc_batcher_options nasc_batcher_options_default(void) {
    return (nasc_batcher_options){
        .batch = 64,
        .seed = 1,
        .shuffle = true,
        .drop_last = false,
        .crop_pad = 0,
        .flip = false,
        .cutout = 0,
        .mean = 0.0f,
        .std = 1.0f,
    };
}

nasc_status nasc_batcher_create(nasc_ctx *ctx, const nasc_dataset *d, int64_t begin, int64_t end,
                                const nasc_batcher_options *o, nasc_batcher **out) {
    *out = NULL;
    if (!d || !d->images || !d->labels || d->n < 0 || d->c < 1 || d->h < 1 || d->w < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "batcher: the data set is empty");
    if (begin < 0 || end < begin || end > d->n)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "batcher: image range [%lld, %lld) is not within the %lld images of "
                          "the data set",
                          (long long)begin, (long long)end, (long long)d->n);
    if (o->batch < 1)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "batcher: batch size %d must be at least 1", o->batch);
    if (!isfinite(o->mean) || !isfinite(o->std) || !(o->std > 0))
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "batcher: normalisation mean %g, std %g: both must be finite and the "
                          "std positive",
                          (double)o->mean, (double)o->std);
    int side = d->h > d->w ? d->h : d->w;
    if (o->crop_pad < 0 || o->crop_pad > side || o->cutout < 0 || o->cutout > side)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "batcher: crop padding %d and cutout %d must be in 0..%d (the image "
                          "side)",
                          o->crop_pad, o->cutout, side);

    nasc_batcher *b = nasc_alloc(ctx, sizeof *b);
    if (!b) return NASC_ENOMEM;
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    b->d = d;
    b->begin = begin;
    b->n = end - begin;
    b->o = *o;
    b->img = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    b->augment = o->crop_pad > 0 || o->flip || o->cutout > 0;
    for (int p = 0; p < 256; p++)
        b->lut[p] = (float)(((double)p / 255.0 - (double)o->mean) / (double)o->std);
    if (o->shuffle && b->n > 0) {
        b->perm = nasc_alloc(ctx, (size_t)b->n * sizeof *b->perm);
        if (!b->perm) {
            nasc_free(ctx, b);
            return NASC_ENOMEM;
        }
    }
    nasc_batcher_start(b, 0);
    *out = b;
    return NASC_OK;
}

void nasc_batcher_destroy(nasc_batcher *b) {
    if (!b) return;
    nasc_free(b->ctx, b->perm);
    nasc_free(b->ctx, b);
}

void nasc_batcher_start(nasc_batcher *b, int64_t epoch) {
    b->epoch = epoch;
    b->pos = 0;
    b->aug_key = epoch_key(b->o.seed, epoch, SALT_AUGMENT);
    if (!b->perm) return;
    int64_t *p = b->perm;
    for (int64_t i = 0; i < b->n; i++) p[i] = b->begin + i;
    nasc_rng r;
    nasc_rng_seed(&r, epoch_key(b->o.seed, epoch, SALT_SHUFFLE));
    for (int64_t i = b->n - 1; i > 0; i--) {
        int64_t j = (int64_t)nasc_rng_below(&r, (uint64_t)i + 1);
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

int64_t nasc_batcher_count(const nasc_batcher *b) {
    int64_t bs = b->o.batch;
    return b->o.drop_last ? b->n / bs : (b->n + bs - 1) / bs;
}

static void convert(const float *restrict lut, const uint8_t *restrict src, float *restrict dst,
                    size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = lut[src[i]];
}

/* One image with crop, flip and cutout, all drawn from the image's own stream. */
static void augment(const nasc_batcher *b, int64_t idx, float *restrict dst) {
    const nasc_dataset *d = b->d;
    const int h = d->h, w = d->w;
    const uint8_t *src = d->images + (size_t)idx * b->img;
    nasc_rng r;
    nasc_rng_seed(&r, mix64(b->aug_key ^ (uint64_t)idx));
    int dy = 0, dx = 0;
    if (b->o.crop_pad > 0) {
        uint64_t span = 2 * (uint64_t)b->o.crop_pad + 1;
        dy = (int)nasc_rng_below(&r, span) - b->o.crop_pad;
        dx = (int)nasc_rng_below(&r, span) - b->o.crop_pad;
    }
    bool flip = b->o.flip && (nasc_rng_next(&r) >> 63);
    /* Output (y, x) reads source (y + dy, sx(x)); sx(x) = x + dx, or with the
     * flip w - 1 - x + dx. Source pixels in [x0, x1) of the row exist. */
    int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? w - dx : w; /* valid x before the flip */
    if (x0 > w) x0 = w;
    if (x1 < x0) x1 = x0;
    for (int c = 0; c < d->c; c++) {
        for (int y = 0; y < h; y++) {
            float *o = dst + ((size_t)c * h + y) * w;
            int sy = y + dy;
            if (sy < 0 || sy >= h) {
                memset(o, 0, (size_t)w * sizeof *o);
                continue;
            }
            const uint8_t *s = src + ((size_t)c * h + sy) * w;
            if (!flip) {
                for (int x = 0; x < x0; x++) o[x] = 0;
                convert(b->lut, s + x0 + dx, o + x0, (size_t)(x1 - x0));
                for (int x = x1; x < w; x++) o[x] = 0;
            } else {
                /* cropped column x' = w - 1 - x lies in [x0, x1) */
                for (int x = 0; x < w - x1; x++) o[x] = 0;
                for (int x = w - x1; x < w - x0; x++) o[x] = b->lut[s[w - 1 - x + dx]];
                for (int x = w - x0; x < w; x++) o[x] = 0;
            }
        }
    }
    if (b->o.cutout > 0) {
        int cy = (int)nasc_rng_below(&r, (uint64_t)h), cx = (int)nasc_rng_below(&r, (uint64_t)w);
        int ya = cy - b->o.cutout / 2, xa = cx - b->o.cutout / 2;
        int yb = ya + b->o.cutout, xb = xa + b->o.cutout;
        if (ya < 0) ya = 0;
        if (xa < 0) xa = 0;
        if (yb > h) yb = h;
        if (xb > w) xb = w;
        for (int c = 0; c < d->c; c++)
            for (int y = ya; y < yb; y++)
                memset(dst + ((size_t)c * h + y) * w + xa, 0, (size_t)(xb - xa) * sizeof *dst);
    }
}

int nasc_batcher_next(nasc_batcher *b, float *x, int32_t *y) {
    int64_t left = b->n - b->pos;
    if (left <= 0) return 0;
    int k = left < b->o.batch ? (int)left : b->o.batch;
    if (b->o.drop_last && k < b->o.batch) {
        b->pos = b->n;
        return 0;
    }
    const nasc_dataset *d = b->d;
    if (!b->perm && !b->augment) {
        /* In order, no augmentation: one contiguous run of images. */
        int64_t first = b->begin + b->pos;
        convert(b->lut, d->images + (size_t)first * b->img, x, (size_t)k * b->img);
        if (y)
            for (int i = 0; i < k; i++) y[i] = d->labels[first + i];
    } else {
        for (int i = 0; i < k; i++) {
            int64_t idx = b->perm ? b->perm[b->pos + i] : b->begin + b->pos + i;
            float *dst = x + (size_t)i * b->img;
            if (b->augment)
                augment(b, idx, dst);
            else
                convert(b->lut, d->images + (size_t)idx * b->img, dst, b->img);
            if (y) y[i] = d->labels[idx];
        }
    }
    if (k < b->o.batch) {
        memset(x + (size_t)k * b->img, 0, (size_t)(b->o.batch - k) * b->img * sizeof *x);
        if (y) memset(y + k, 0, (size_t)(b->o.batch - k) * sizeof *y);
    }
    b->pos += k;
    return k;
}

/* Population statistics (divided by the pixel count). The range is clamped
 * to the data set; an empty one gives mean 0 and std 0. */
void nasc_dataset_stats(const nasc_dataset *d, int64_t begin, int64_t end, float *mean,
                        float *std) {
    *mean = 0;
    *std = 0;
    if (!d || !d->images) return;
    if (begin < 0) begin = 0;
    if (end > d->n) end = d->n;
    if (end <= begin) return;
    size_t img = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    const uint8_t *p = d->images + (size_t)begin * img;
    size_t n = (size_t)(end - begin) * img;
    /* A histogram makes the sums exact; four of them keep the increments independent. */
    uint64_t hist[4][256];
    memset(hist, 0, sizeof hist);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        hist[0][p[i]]++;
        hist[1][p[i + 1]]++;
        hist[2][p[i + 2]]++;
        hist[3][p[i + 3]]++;
    }
    for (; i < n; i++) hist[0][p[i]]++;
    double s1 = 0, s2 = 0;
    for (int v = 0; v < 256; v++) {
        double cnt = (double)(hist[0][v] + hist[1][v] + hist[2][v] + hist[3][v]);
        double f = v / 255.0;
        s1 += cnt * f;
        s2 += cnt * f * f;
    }
    double m = s1 / (double)n;
    double var = s2 / (double)n - m * m;
    *mean = (float)m;
    *std = (float)sqrt(var > 0 ? var : 0);
}
