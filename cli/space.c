/* space.c - `nasc space`: list the search spaces, or show one space's
 * decisions (index, name, kind, cardinality, options) and its size. What
 * it prints comes from the space's decision list, the one decode uses. */
#include <stdlib.h>
#include <string.h>

#include "nasc_search.h"
#include "opts.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc space [NAME] [--blocks B] [--layers L]\n"
          "       nasc space --list\n",
          out);
}

void nasc_cli_space_help(FILE *out) {
    fputs("nasc space - the search spaces and their decisions\n\n", out);
    usage(out);
    fputs("\nWithout NAME (or with --list), lists the spaces. With NAME, describes the\n"
          "space and prints its decisions in order: index, name, kind (choice: one of\n"
          "card options; skip: a bit mask over card earlier layers), cardinality and\n"
          "the options, then the number of architectures as a power of ten.\n\n"
          "Spaces:\n",
          out);
    nasc_cli_registry_help(nasc_cli_spaces, out, 14);
    fputs("\nOptions:\n", out);
    nasc_cli_space_size_help(out, 22);
    fputs("  --list              list the spaces\n"
          "  -h, --help          this help\n"
          "\nExit codes: 0 success, 1 unknown space or size out of range, 2 bad command\n"
          "line. docs/search-spaces.md describes each space.\n"
          "\nExamples:\n"
          "  nasc space\n"
          "  nasc space nasnet\n"
          "  nasc space enas-macro --layers 6\n",
          out);
}

int nasc_cli_space_size_opt(nasc_cli_args *a, nasc_space_options *o) {
    const char *v = NULL;
    int *slot = NULL;
    int r = nasc_cli_value_opt(a, "--blocks", NULL, &v);
    if (r > 0) slot = &o->blocks;
    if (r == 0) {
        r = nasc_cli_value_opt(a, "--layers", NULL, &v);
        if (r > 0) slot = &o->layers;
    }
    if (r <= 0) return r;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1 || n > 1000000) {
        nasc_cli_usage_error(a, "%s wants a positive integer, got '%s'",
                             slot == &o->blocks ? "--blocks" : "--layers", v);
        return -1;
    }
    *slot = (int)n;
    return 1;
}

static int list_spaces(void) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    printf("%-11s %9s  %-13s  %s\n", "space", "decisions", "size", "about");
    nasc_space_entry e;
    for (size_t i = 0; nasc_space_registered(i, &e); i++) {
        nasc_space *sp = NULL;
        if (nasc_space_create(&ctx, e.name, NULL, &sp)) return nasc_cli_fail(&ctx);
        char size[32];
        snprintf(size, sizeof size, "10^%.2f", nasc_space_log10_size(sp));
        printf("%-11s %9u  %-13s  %s\n", e.name, nasc_space_count(sp), size, e.summary);
        nasc_space_destroy(sp);
    }
    printf("\nSizes are for the default options; `nasc space NAME` shows the decisions.\n");
    return fflush(stdout) ? NASC_EXIT_INPUT : NASC_EXIT_OK;
}

static void print_options(const nasc_decision *d) {
    if (d->kind == NASC_DEC_SKIP) {
        if (d->card == 0)
            printf("(no earlier layer: always 0)");
        else
            printf("mask of %d bit%s (0..%llu)", d->card, d->card == 1 ? "" : "s",
                   (unsigned long long)((1ull << d->card) - 1));
        return;
    }
    if (!d->labels) {
        printf("0..%d", d->card - 1);
        return;
    }
    for (int k = 0; k < d->card; k++) printf("%s%s", k ? " " : "", d->labels[k]);
}

static int show_space(const char *name, const nasc_space_options *o) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = NULL;
    if (nasc_space_create(&ctx, name, o, &sp)) return nasc_cli_fail(&ctx);
    uint32_t n = nasc_space_count(sp);
    const nasc_decision *d = nasc_space_decisions(sp);
    double lg = nasc_space_log10_size(sp);
    printf("space      %s\n", nasc_space_name(sp));
    printf("decisions  %u\n", n);
    printf("size       10^%.3f architectures (log10 of the number of decision vectors)\n\n", lg);
    printf("%s\n\n", nasc_space_summary(sp));
    size_t w = 4;
    for (uint32_t i = 0; i < n; i++)
        if (strlen(d[i].name) > w) w = strlen(d[i].name);
    printf("%5s  %-*s  %-6s  %4s  %s\n", "#", (int)w, "name", "kind", "card", "options");
    for (uint32_t i = 0; i < n; i++) {
        printf("%5u  %-*s  %-6s  %4d  ", i, (int)w, d[i].name,
               d[i].kind == NASC_DEC_SKIP ? "skip" : "choice", d[i].card);
        print_options(&d[i]);
        putchar('\n');
    }
    nasc_space_destroy(sp);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "nasc space: error: cannot write the listing\n");
        return NASC_EXIT_INPUT;
    }
    return NASC_EXIT_OK;
}

int nasc_cli_space(int argc, char **argv) {
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    nasc_space_options o = {0, 0};
    const char *name = NULL;
    int list = 0;
    while (a.i < argc) {
        int r;
        const char *pos;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_space_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_space_size_opt(&a, &o)) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            continue;
        }
        if ((r = nasc_cli_flag(&a, "--list")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            list = 1;
            continue;
        }
        if ((pos = nasc_cli_positional(&a)) != NULL) {
            if (name) return nasc_cli_usage_error(&a, "one space at a time (got '%s' and '%s')", name, pos);
            name = pos;
            continue;
        }
        if (a.i >= argc) break;
        return nasc_cli_usage_error(&a, "unknown option '%s'", argv[a.i]);
    }
    if (list && name) return nasc_cli_usage_error(&a, "--list takes no space name");
    if (!name) {
        if (o.blocks || o.layers) return nasc_cli_usage_error(&a, "--blocks and --layers need a space NAME");
        return list_spaces();
    }
    return show_space(name, &o);
}
