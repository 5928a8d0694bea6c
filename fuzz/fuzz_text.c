/* libFuzzer target: arbitrary bytes through the text IR parser. Bad input
 * must give a diagnostic, never a crash, a sanitizer report or a leak. What
 * parses must round-trip: print, parse the printed text, print again and get
 * the same bytes; that invariant is the only reason to abort. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL;
    if (nasc_text_parse(&ctx, (const char *)data, size, "fuzz.nir", &m) != NASC_OK) return 0;
    nasc_buf b1, b2;
    nasc_buf_init(&b1, &ctx);
    nasc_buf_init(&b2, &ctx);
    if (nasc_text_print(m, &b1) != NASC_OK) abort(); /* a parsed module always prints */
    nasc_module *m2 = NULL;
    if (nasc_text_parse(&ctx, b1.data, b1.len, "fuzz-printed.nir", &m2) != NASC_OK) abort();
    if (nasc_text_print(m2, &b2) != NASC_OK) abort();
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) abort();
    nasc_buf_free(&b1);
    nasc_buf_free(&b2);
    nasc_module_destroy(m2);
    nasc_module_destroy(m);
    return 0;
}
