/* net.c - compile a prim module into a oneDNN net (forward, backward). */
#include <oneapi/dnnl/dnnl.h>

#include "nasc_backend.h"

nasc_net_options nasc_net_options_default(void) {
    nasc_net_options o = {0};
    o.batch = 64;
    o.mode = NASC_MODE_TRAIN;
    o.bn_momentum = 0.1f;
    return o;
}
