/* checkpoint.c - read a parameter store from disk (docs/checkpoint.md). */
#include "nasc_frontend.h"

nasc_status nasc_params_load(nasc_ctx *ctx, const char *path, nasc_param_store **out) {
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    nasc_status st = nasc_file_read(ctx, path, &data, &len);
    if (st != NASC_OK) return st;
    st = nasc_params_deserialize(ctx, data, len, path, out);
    nasc_free(ctx, data);
    return st;
}
