/* libFuzzer target: arbitrary bytes through the ONNX importer. Bad input
 * must give a diagnostic, never a crash, a sanitizer report or a leak. What
 * imports must hold together: every parameter of the module is in the
 * store with the same dims, the cost model runs (no overflow under UBSan),
 * and the module's text round-trips (print, parse, print gives the same
 * bytes); a violation aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL;
    nasc_param_store *w = NULL;
    nasc_onnx_import_info info;
    nasc_status st = nasc_onnx_import_ex(&ctx, data, size, "fuzz.onnx", NULL, &m, &w, &info);
    if (st != NASC_OK) {
        if (m || w || st == NASC_EINTERNAL || ctx.diag.msg[0] == 0) abort(); /* failures say why, keep nothing */
        return 0;
    }
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        if (val->kind != NASC_VAL_PARAM) continue;
        const nasc_tensor *t = nasc_params_find(w, nasc_str(m, val->name));
        if (!t || t->rank != val->type.rank) abort();
        for (int d = 0; d < t->rank; d++)
            if (t->dims[d] != val->type.dims[d]) abort();
    }
    if (info.n_outputs != m->n_outputs) abort();
    nasc_cost cost; /* sizes that overflow show up here under UBSan */
    if (nasc_cost_compute(m, &cost) != NASC_OK) abort();
    nasc_cost_free(m, &cost);
    nasc_buf b1, b2;
    nasc_buf_init(&b1, &ctx);
    nasc_buf_init(&b2, &ctx);
    if (nasc_text_print(m, &b1) != NASC_OK) abort();
    nasc_module *m2 = NULL;
    if (nasc_text_parse(&ctx, b1.data, b1.len, "fuzz-printed.nir", &m2) != NASC_OK) abort();
    if (nasc_text_print(m2, &b2) != NASC_OK) abort();
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) abort();
    nasc_buf_free(&b1);
    nasc_buf_free(&b2);
    nasc_module_destroy(m2);
    nasc_module_destroy(m);
    nasc_params_destroy(w);
    nasc_onnx_import_info_free(&ctx, &info);
    return 0;
}
