/* dump.c - `nasc dump`: show a model's IR after a pass, as text or DOT. */
#include <errno.h>
#include <string.h>

#include "nasc_export.h"
#include "model.h"
#include "opts.h"
#include "verbs.h"

/* The passes `dump` can stop after, in pipeline order. */
static const struct {
    const char *name;
    const char *what;
} passes[] = {
    {"frontend", "the arch module as read from the model file and verified"},
    {"lower", "the prim module: nasc_lower, then the prim verifier"},
};
enum { PASS_FRONTEND, PASS_LOWER, N_PASSES };

static void usage(FILE *out) {
    fputs("usage: nasc dump MODEL [--level arch|prim] [--after PASS] [--format text|dot]\n"
          "                 [-o FILE] [--set KEY=VALUE]...\n",
          out);
}

static void list_passes(FILE *out) {
    fputs("Passes (in pipeline order):\n", out);
    for (int i = 0; i < N_PASSES; i++) fprintf(out, "  %-10s %s\n", passes[i].name, passes[i].what);
}

void nasc_cli_dump_help(FILE *out) {
    fputs("nasc dump - print a model's IR after a compiler pass\n\n", out);
    usage(out);
    fputs("\nOptions:\n"
          "  --level arch|prim   arch: the cell DAGs as read (default); prim: the\n"
          "                      lowered tensor ops (same as --after lower)\n"
          "  --after PASS        stop after PASS; `--after help` lists the passes\n"
          "  --format text|dot   text IR (default, see docs/text-ir.md) or a graphviz\n"
          "                      digraph (pipe it into `dot -Tsvg`)\n"
          "  -o FILE             write to FILE instead of standard output\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nA prim model (.nir starting with `prim {`) can only be dumped at the prim\n"
          "level. A recurrent net is lowered unrolled over 35 steps (--set steps=T).\n\n"
          "Examples:\n"
          "  nasc dump models/darts-v2.yaml                    # arch text IR\n"
          "  nasc dump models/darts-v2.yaml --level prim       # lowered ops\n"
          "  nasc dump models/darts-v2.yaml --format dot | dot -Tsvg > cells.svg\n"
          "  nasc dump models/darts-v2.yaml -o darts.nir && nasc dump darts.nir\n",
          out);
}

static int find_pass(const char *name) {
    for (int i = 0; i < N_PASSES; i++)
        if (strcmp(passes[i].name, name) == 0) return i;
    return -1;
}

static int write_out(const char *path, const nasc_buf *b) {
    FILE *f = stdout;
    if (path) {
        f = fopen(path, "wb");
        if (!f) {
            fprintf(stderr, "%s: error: cannot open for writing: %s\n", path, strerror(errno));
            return NASC_EXIT_INPUT;
        }
    }
    size_t w = fwrite(b->data, 1, b->len, f);
    int bad = w != b->len || ferror(f);
    if (path) bad |= fclose(f) != 0;
    else bad |= fflush(f) != 0;
    if (bad) {
        fprintf(stderr, "%s: error: write failed: %s\n", path ? path : "<stdout>",
                strerror(errno));
        return NASC_EXIT_INPUT;
    }
    return NASC_EXIT_OK;
}

int nasc_cli_dump(int argc, char **argv) {
    nasc_cli_model mo = {0};
    const char *level = NULL, *after = NULL, *format = "text", *outpath = NULL;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--level", NULL, NASC_CLI_STR, &level)},
        {NASC_CLI_OPT("--after", NULL, NASC_CLI_STR, &after)},
        {NASC_CLI_OPT("--format", NULL, NASC_CLI_STR, &format)},
        {NASC_CLI_OPT("--output", "-o", NASC_CLI_STR, &outpath)},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    /* MODEL is checked below: `--after help` needs none */
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_MAYBE_MODEL, nasc_cli_dump_help);
    if (rc != NASC_CLI_GO) return rc;

    if (after && strcmp(after, "help") == 0) {
        list_passes(stdout);
        return NASC_EXIT_OK;
    }
    int pass = -1;
    if (after) {
        pass = find_pass(after);
        if (pass < 0) {
            nasc_cli_usage_error(&a, "unknown pass '%s'", after);
            list_passes(stderr);
            return NASC_EXIT_USAGE;
        }
    }
    if (level) {
        int lp;
        if (strcmp(level, "arch") == 0) lp = PASS_FRONTEND;
        else if (strcmp(level, "prim") == 0) lp = PASS_LOWER;
        else return nasc_cli_usage_error(&a, "--level must be arch or prim, got '%s'", level);
        if (pass >= 0 && pass != lp)
            return nasc_cli_usage_error(&a, "--level %s contradicts --after %s", level, after);
        pass = lp;
    }
    bool dot;
    if (strcmp(format, "text") == 0) dot = false;
    else if (strcmp(format, "dot") == 0) dot = true;
    else return nasc_cli_usage_error(&a, "--format must be text or dot, got '%s'", format);
    if (!mo.path) return nasc_cli_usage_error(&a, "missing MODEL");

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL, *prim = NULL;
    rc = nasc_cli_load(&ctx, &mo, &m);
    if (rc != NASC_EXIT_OK) return rc;

    const nasc_module *shown = m;
    if (m->dialect == NASC_DIALECT_PRIM) {
        /* A prim file is already past the lowering. */
        if (pass == PASS_FRONTEND) {
            nasc_error(&ctx, NASC_EINPUT, mo.path, NASC_NOLOC,
                       "this is a prim module; it can only be dumped at the prim level "
                       "(--level prim)");
            rc = nasc_cli_fail(&ctx);
            goto done;
        }
    } else if (pass == PASS_LOWER) {
        nasc_lower_options lo;
        if (nasc_cli_lower_options(&ctx, &mo, m, &lo) != NASC_OK || nasc_lower_with(m, &lo, &prim) != NASC_OK ||
            nasc_prim_verify(prim) != NASC_OK) {
            rc = nasc_cli_fail(&ctx);
            goto done;
        }
        shown = prim;
    }

    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    nasc_status st;
    if (dot)
        st = shown->dialect == NASC_DIALECT_ARCH ? nasc_dot_arch(shown, &b)
                                                 : nasc_dot_prim(shown, &b);
    else
        st = nasc_text_print(shown, &b);
    if (st == NASC_OK && b.oom) st = nasc_error(&ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "out of memory");
    rc = st != NASC_OK ? nasc_cli_fail(&ctx) : write_out(outpath, &b);
    nasc_buf_free(&b);

done:
    if (prim) nasc_module_destroy(prim);
    nasc_module_destroy(m);
    return rc;
}
