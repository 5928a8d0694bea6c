/* sample.c - `nasc sample`: one random architecture of a search space as a
 * YAML model file (the space's decode, then the YAML writer). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_export.h"
#include "nasc_search.h"
#include "opts.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc sample --space NAME [--seed K] [-o FILE.yaml] [--blocks B]\n"
          "                   [--layers L] [--decisions]\n",
          out);
}

void nasc_cli_sample_help(FILE *out) {
    fputs("nasc sample - a random architecture of a search space, as a YAML model\n\n", out);
    usage(out);
    fputs("\nDraws one decision vector uniformly (every decision independently) from a\n"
          "random stream seeded with K, decodes it and writes the architecture as a\n"
          "YAML model file that `nasc check`, `nasc train` and `nasc export` accept.\n"
          "Comments at the top give the command, the decision vector and the\n"
          "canonical hash (the hash `nasc check` prints). The same seed gives the\n"
          "same architecture on every machine.\n\n"
          "Options:\n"
          "  --space NAME        the search space (`nasc space` lists them):\n",
          out);
    char names[256];
    nasc_cli_registry_names(nasc_cli_spaces, ", ", names, sizeof names);
    nasc_cli_help_row(out, "", 22, names);
    fputs("  --seed K            seed of the random stream (default 1), 0..2^63-1\n"
          "  -o FILE             write the YAML to FILE (atomically) instead of\n"
          "                      standard output\n",
          out);
    nasc_cli_space_size_help(out, 22);
    fputs("  --decisions         print the decision vector (space-separated values in\n"
          "                      the order of `nasc space NAME`) on standard output;\n"
          "                      the YAML is then written only with -o\n"
          "  -h, --help          this help\n"
          "\nExit codes: 0 success, 1 unknown space, size out of range or an I/O\n"
          "error, 2 bad command line.\n"
          "\nExamples:\n"
          "  nasc sample --space nasnet --seed 7 -o nasnet-7.yaml && nasc check nasnet-7.yaml\n"
          "  nasc sample --space enas-macro --layers 6 --seed 3\n"
          "  nasc sample --space nasrl --seed 11 --decisions\n",
          out);
}

static void vector_text(nasc_buf *b, const uint32_t *d, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) nasc_buf_printf(b, "%s%u", i ? " " : "", d[i]);
}

int nasc_cli_sample(int argc, char **argv) {
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    nasc_space_options o = {0, 0};
    const char *space = NULL, *seed_s = NULL, *out = NULL;
    int decisions = 0;
    while (a.i < argc) {
        int r;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_sample_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_space_size_opt(&a, &o)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--space", NULL, &space)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--seed", NULL, &seed_s)) != 0 ||
            (r = nasc_cli_value_opt(&a, "--output", "-o", &out)) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            continue;
        }
        if ((r = nasc_cli_flag(&a, "--decisions")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            decisions = 1;
            continue;
        }
        if (a.i >= argc) break;
        return nasc_cli_usage_error(&a, "unexpected argument '%s'", argv[a.i]);
    }
    if (!space) return nasc_cli_usage_error(&a, "missing --space NAME (see `nasc space`)");
    uint64_t seed = NASC_DEFAULT_SEED;
    if (seed_s) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(seed_s, &end, 10);
        if (!*seed_s || *end || v < 0 || errno)
            return nasc_cli_usage_error(&a, "--seed wants an integer in [0, 2^63-1], got '%s'",
                                        seed_s);
        seed = (uint64_t)v;
    }
    if (out && !*out) return nasc_cli_usage_error(&a, "-o needs a file name");

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_space *sp = NULL;
    nasc_module *m = NULL;
    uint32_t *d = NULL;
    nasc_buf b;
    nasc_buf_init(&b, &ctx);
    int rc = NASC_EXIT_OK;
    if (nasc_space_create(&ctx, space, &o, &sp)) goto fail;
    uint32_t n = nasc_space_count(sp);
    d = nasc_alloc(&ctx, (n + 1) * sizeof *d);
    if (!d) goto fail;
    nasc_rng r;
    nasc_rng_seed(&r, seed);
    nasc_space_sample(sp, &r, d);
    if (nasc_space_decode(sp, d, &m)) goto fail;
    uint64_t hash;
    if (nasc_arch_hash(m, &hash)) goto fail;

    if (decisions) {
        nasc_buf v;
        nasc_buf_init(&v, &ctx);
        vector_text(&v, d, n);
        printf("%s\n", v.oom ? "" : v.data);
        nasc_buf_free(&v);
    }
    if (!decisions || out) {
        nasc_buf_printf(&b, "# nasc sample --space %s --seed %" PRIu64, nasc_space_name(sp), seed);
        if (o.blocks) nasc_buf_printf(&b, " --blocks %d", o.blocks);
        if (o.layers) nasc_buf_printf(&b, " --layers %d", o.layers);
        nasc_buf_printf(&b, "\n# space %s: %u decisions, 10^%.2f architectures\n# decisions: ",
                        nasc_space_name(sp), n, nasc_space_log10_size(sp));
        vector_text(&b, d, n);
        nasc_buf_printf(&b, "\n# hash %016" PRIx64 "\nname: %s-seed%" PRIu64 "\n", hash,
                        nasc_space_name(sp), seed);
        if (nasc_yaml_write(m, &b)) goto fail;
        if (b.oom) goto fail;
        if (out) {
            if (nasc_file_write_atomic(&ctx, out, b.data, b.len)) goto fail;
        } else if (fwrite(b.data, 1, b.len, stdout) != b.len) {
            rc = NASC_EXIT_INPUT;
        }
    }
    if (fflush(stdout) != 0) rc = NASC_EXIT_INPUT;
    if (rc) fprintf(stderr, "nasc sample: error: cannot write to standard output\n");
    goto done;
fail:
    rc = nasc_cli_fail(&ctx);
done:
    nasc_buf_free(&b);
    nasc_free(&ctx, d);
    nasc_module_destroy(m);
    nasc_space_destroy(sp);
    return rc;
}
