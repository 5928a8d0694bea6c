/* registry.c - what the verbs print from the space and strategy tables
 * (search/space.c, search/strategies.c): names in usage lines, one help
 * row per space or strategy, the --blocks / --layers help and the
 * "known: ..." message of a name that is not in a table. Nothing here lists
 * a space or a strategy by name, so a new table row shows up everywhere. */
#include <string.h>

#include "nasc_search.h"
#include "opts.h"
#include "verbs.h"

bool nasc_cli_spaces(size_t i, const char **name, const char **summary) {
    nasc_space_entry e;
    if (!nasc_space_registered(i, &e)) return false;
    *name = e.name;
    *summary = e.summary;
    return true;
}

bool nasc_cli_strategies(size_t i, const char **name, const char **summary) {
    nasc_strategy_entry e;
    if (!nasc_strategy_registered(i, &e)) return false;
    *name = e.name;
    *summary = e.summary;
    return true;
}

void nasc_cli_registry_names(nasc_cli_registry rows, const char *sep, char *buf, size_t size) {
    const char *name, *summary;
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; used < size && rows(i, &name, &summary); i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? sep : "", name);
}

void nasc_cli_registry_help(nasc_cli_registry rows, FILE *out, int col) {
    const char *name, *summary;
    for (size_t i = 0; rows(i, &name, &summary); i++) nasc_cli_help_row(out, name, col, summary);
}

bool nasc_cli_registry_find(nasc_cli_registry rows, nasc_ctx *ctx, const char *what, const char *name) {
    const char *n, *summary;
    for (size_t i = 0; rows(i, &n, &summary); i++)
        if (strcmp(n, name) == 0) return true;
    char known[512];
    nasc_cli_registry_names(rows, ", ", known, sizeof known);
    nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "unknown %s '%s' (known: %s)", what, name, known);
    return false;
}

/* "blocks per cell: nasnet (default 5, 1..10), enas-micro (...)" for the
 * spaces whose size option is opt. */
static void size_text(const char *opt, const char *about, char *buf, size_t size) {
    nasc_space_entry e;
    size_t used = (size_t)snprintf(buf, size, "%s:", about);
    int k = 0;
    for (size_t i = 0; used < size && nasc_space_registered(i, &e); i++) {
        if (strcmp(e.option, opt) != 0) continue;
        used += (size_t)snprintf(buf + used, size - used, "%s %s (default %d, 1..%d)", k++ ? "," : "", e.name,
                                 e.def_size, e.max_size);
    }
}

void nasc_cli_space_size_help(FILE *out, int col) {
    char text[512];
    size_text("blocks", "blocks per cell", text, sizeof text);
    nasc_cli_help_row(out, "--blocks B", col, text);
    size_text("layers", "layers", text, sizeof text);
    nasc_cli_help_row(out, "--layers L", col, text);
}
