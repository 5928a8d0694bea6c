/* dataset.c - the in-memory image data set (frontend/ fills it, backend/ batches it). */
#include <string.h>

#include "nasc_ir.h"

void nasc_dataset_free(nasc_ctx *ctx, nasc_dataset *d) {
    if (!d) return;
    nasc_free(ctx, d->images);
    nasc_free(ctx, d->labels);
    memset(d, 0, sizeof *d);
}
