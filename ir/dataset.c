/* dataset.c - the in-memory image data set and text corpus (frontend/ fills
 * them, backend/ batches them). */
#include <string.h>

#include "nasc_ir.h"

void nasc_dataset_free(nasc_ctx *ctx, nasc_dataset *d) {
    if (!d) return;
    nasc_free(ctx, d->images);
    nasc_free(ctx, d->labels);
    memset(d, 0, sizeof *d);
}

void nasc_corpus_free(nasc_ctx *ctx, nasc_corpus *c) {
    if (!c) return;
    nasc_free(ctx, c->bytes);
    memset(c, 0, sizeof *c);
}

void nasc_corpus_split(int64_t n, int64_t *train_end, int64_t *val_end) {
    *train_end = n / 20 * 18 + n % 20 * 18 / 20; /* 90% without overflow */
    *val_end = *train_end + (n - *train_end) / 2;
}
