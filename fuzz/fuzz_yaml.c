/* libFuzzer target: arbitrary bytes through the YAML model loader. Any
 * outcome but a crash, a sanitizer report or a leak is fine. */
#include <stddef.h>
#include <stdint.h>

#include "nasc_frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL;
    nasc_status st = nasc_yaml_load_string(&ctx, (const char *)data, size, "fuzz.yaml", NULL, 0, &m);
    if (st == NASC_OK) {
        /* A loaded module is verified; lowering must not crash either. Keep
         * the nets small so the fuzzer spends its time in the parser. */
        if (m->skel.channels <= 64 && m->skel.in_h <= 64 && m->skel.in_w <= 64 &&
            m->skel.in_c <= 16 && m->skel.stages <= 3 && m->skel.cells_per_stage <= 3 &&
            m->skel.stem_multiplier <= 4 && m->n_nodes <= 64) {
            nasc_module *p = NULL;
            if (nasc_lower(m, &p) == NASC_OK) nasc_module_destroy(p);
        }
        nasc_module_destroy(m);
    }
    return 0;
}
