/* check.c - `nasc check`: load, verify, lower and cost a model; report. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "verbs.h"

static void usage(FILE *out) {
    fputs("usage: nasc check MODEL [--json] [--set KEY=VALUE]...\n", out);
}

void nasc_cli_check_help(FILE *out) {
    fputs("nasc check - verify a model and report its size and cost\n\n", out);
    usage(out);
    fputs("\nLoads MODEL, runs the verifier, lowers it to prim ops (CNN nets), runs the\n"
          "prim verifier and the cost model, and prints: the skeleton, the canonical\n"
          "hash, and per cost group (stem, cells, head) the parameters, multiply-adds\n"
          "per image and activation bytes per image. For a recurrent net the report\n"
          "is the parameters and multiply-adds per time step.\n\n"
          "Options:\n"
          "  --json              print the report as one JSON object\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExamples:\n"
          "  nasc check models/darts-v2.yaml\n"
          "  nasc check models/darts-v2.yaml --set input=3x32x32 --set channels=36\n"
          "  nasc check models/darts-v2.yaml --json\n",
          out);
}

/* ------------------------------------------------------------------ */
/* What the report shows                                               */
/* ------------------------------------------------------------------ */

typedef struct report {
    const char *path;
    const nasc_module *m;    /* as loaded (arch or prim) */
    const nasc_module *prim; /* the lowered (or loaded) prim module; NULL for recurrent nets */
    nasc_cost cost;          /* valid when prim != NULL */
    nasc_rnn_cost rnn;       /* valid for recurrent nets */
    bool recurrent;
    uint64_t hash;           /* canonical hash of an arch module with a skeleton */
} report;

/* The cell a cost group stands for, when the group is named "cellK" and the
 * skeleton says which cell sits at position K. The group names come from the
 * lowering; when they do not follow that pattern the column stays empty. */
static int group_cell(const report *r, const char *group, const char **kind) {
    const nasc_module *m = r->m;
    if (m->dialect != NASC_DIALECT_ARCH || !m->has_skeleton) return -1;
    if (strncmp(group, "cell", 4) != 0 || group[4] < '0' || group[4] > '9') return -1;
    char *end;
    long k = strtol(group + 4, &end, 10);
    if (*end != 0 || k < 0) return -1;
    const nasc_skeleton *s = &m->skel;
    int cell = -1;
    if (s->kind == NASC_NET_MACRO) {
        if (k == 0) cell = s->normal_cell;
    } else if (s->kind == NASC_NET_CELLS && s->cells_per_stage > 0 && s->stages > 0) {
        long per = s->cells_per_stage + 1; /* N normal cells then a reduction */
        long total = (long)s->stages * s->cells_per_stage + s->stages - 1;
        if (k < total) cell = (k % per == s->cells_per_stage) ? s->reduction_cell : s->normal_cell;
    }
    if (cell < 0 || (uint32_t)cell >= m->n_cells) return -1;
    *kind = nasc_cell_kind_name(m->cells[cell].kind);
    return cell;
}

/* "cellK" groups must match the skeleton's cell count for the column to be trusted. */
static bool cell_column_ok(const report *r) {
    const nasc_module *m = r->m;
    if (m->dialect != NASC_DIALECT_ARCH || !m->has_skeleton) return false;
    const nasc_skeleton *s = &m->skel;
    long expect = s->kind == NASC_NET_MACRO ? 1
                                            : (long)s->stages * s->cells_per_stage + s->stages - 1;
    long seen = 0;
    for (uint32_t g = 0; g < r->cost.n_groups; g++) {
        const char *name = nasc_str(r->prim, r->cost.groups[g].name);
        const char *kind;
        if (strncmp(name, "cell", 4) == 0) {
            if (group_cell(r, name, &kind) < 0) return false;
            seen++;
        }
    }
    return seen == expect;
}

static void skeleton_line(const nasc_skeleton *s, char *buf, size_t size) {
    if (s->kind == NASC_NET_RECURRENT) {
        snprintf(buf, size, "input %d, vocabulary %d, hidden %d", s->in_c, s->classes,
                 s->channels);
    } else if (s->kind == NASC_NET_MACRO) {
        snprintf(buf, size, "input %dx%dx%d, %d classes, %d channels, stem multiplier %d",
                 s->in_c, s->in_h, s->in_w, s->classes, s->channels, s->stem_multiplier);
    } else {
        snprintf(buf, size,
                 "input %dx%dx%d, %d classes, %d channels, %d stages x %d cells, "
                 "stem multiplier %d",
                 s->in_c, s->in_h, s->in_w, s->classes, s->channels, s->stages,
                 s->cells_per_stage, s->stem_multiplier);
    }
}

static const char *kind_name(const report *r) {
    if (r->m->dialect == NASC_DIALECT_PRIM) return "prim";
    return r->m->has_skeleton ? nasc_net_kind_name(r->m->skel.kind) : "?";
}

/* "1,234,567 (1.23M)", or just the number when it is small. */
static void fmt_both(int64_t v, char *buf, size_t size) {
    char a[40], b[16];
    nasc_cli_fmt_int(v, a, sizeof a);
    nasc_cli_fmt_si(v, b, sizeof b);
    if (v >= 1000 || v <= -1000)
        snprintf(buf, size, "%s (%s)", a, b);
    else
        snprintf(buf, size, "%s", a);
}

/* ------------------------------------------------------------------ */
/* Text report                                                         */
/* ------------------------------------------------------------------ */

enum { COLS = 5 };

static void row_cells(const report *r, bool cells_ok, uint32_t g, char cols[COLS][96]) {
    if (g == r->cost.n_groups) {
        snprintf(cols[0], 96, "total");
        cols[1][0] = 0;
        fmt_both(r->cost.params, cols[2], 96);
        fmt_both(r->cost.macs, cols[3], 96);
        fmt_both(r->cost.act_bytes, cols[4], 96);
        return;
    }
    const nasc_cost_group *cg = &r->cost.groups[g];
    const char *name = nasc_str(r->prim, cg->name);
    snprintf(cols[0], 96, "%s", name[0] ? name : "(none)");
    cols[1][0] = 0;
    const char *kind = NULL;
    int cell = cells_ok ? group_cell(r, name, &kind) : -1;
    if (cell >= 0)
        snprintf(cols[1], 96, "%s @%s", kind, nasc_str(r->m, r->m->cells[cell].name));
    fmt_both(cg->params, cols[2], 96);
    fmt_both(cg->macs, cols[3], 96);
    fmt_both(cg->act_bytes, cols[4], 96);
}

static void print_table(const report *r) {
    static const char *head[COLS] = {"group", "cell", "params", "MACs/image", "act bytes/image"};
    bool cells_ok = cell_column_ok(r);
    size_t w[COLS];
    char cols[COLS][96];
    for (int c = 0; c < COLS; c++) w[c] = strlen(head[c]);
    for (uint32_t g = 0; g <= r->cost.n_groups; g++) {
        row_cells(r, cells_ok, g, cols);
        for (int c = 0; c < COLS; c++)
            if (strlen(cols[c]) > w[c]) w[c] = strlen(cols[c]);
    }
    int skip_cell = !cells_ok; /* no column when nothing fills it */
    size_t width = 0;
    for (int c = 0; c < COLS; c++) {
        if (c == 1 && skip_cell) continue;
        printf(c == 0 ? "%-*s" : c == 1 ? "  %-*s" : "  %*s", (int)w[c], head[c]);
        width += w[c] + (c ? 2 : 0);
    }
    printf("\n");
    for (uint32_t g = 0; g <= r->cost.n_groups; g++) {
        if (g == r->cost.n_groups) {
            for (size_t k = 0; k < width; k++) putchar('-');
            putchar('\n');
        }
        row_cells(r, cells_ok, g, cols);
        for (int c = 0; c < COLS; c++) {
            if (c == 1 && skip_cell) continue;
            printf(c == 0 ? "%-*s" : c == 1 ? "  %-*s" : "  %*s", (int)w[c], cols[c]);
        }
        printf("\n");
    }
}

static void print_text(const report *r) {
    const nasc_module *m = r->m;
    char buf[512];
    printf("model     %s\n", r->path);
    printf("kind      %s%s\n", kind_name(r),
           m->dialect == NASC_DIALECT_PRIM ? " module (already lowered)" : " net");
    if (m->dialect == NASC_DIALECT_ARCH && m->has_skeleton) {
        skeleton_line(&m->skel, buf, sizeof buf);
        printf("skeleton  %s\n", buf);
        for (uint32_t c = 0; c < m->n_cells; c++) {
            const nasc_cell *cell = &m->cells[c];
            const char *role = "not used by the skeleton";
            if ((int)c == m->skel.reduction_cell) role = "the reduction cell";
            if ((int)c == m->skel.normal_cell)
                role = m->skel.kind == NASC_NET_MACRO       ? "the body"
                       : m->skel.kind == NASC_NET_RECURRENT ? "the recurrent cell"
                                                            : "the normal cell";
            printf("cell      @%s: %s cell, %u nodes, out %s%s (%s)\n", nasc_str(m, cell->name),
                   nasc_cell_kind_name(cell->kind), cell->n_nodes,
                   nasc_out_rule_name(cell->out_rule), cell->n_outs ? "" : " of the loose ends",
                   role);
        }
        printf("hash      %016" PRIx64 "\n", r->hash);
    }
    if (r->recurrent) {
        char a[64];
        printf("\ncost per time step (training unrolls the cell over the sequence: `nasc dump --level prim`)\n");
        fmt_both(r->rnn.embed_params, a, sizeof a);
        printf("  embedding params  %s\n", a);
        fmt_both(r->rnn.cell_params, a, sizeof a);
        printf("  cell params       %s\n", a);
        fmt_both(r->rnn.decoder_params, a, sizeof a);
        printf("  decoder params    %s\n", a);
        fmt_both(r->rnn.embed_params + r->rnn.cell_params + r->rnn.decoder_params, a, sizeof a);
        printf("  total params      %s\n", a);
        fmt_both(r->rnn.macs_per_step, a, sizeof a);
        printf("  MACs per step     %s\n", a);
        return;
    }
    printf("prim      %u ops, %u values\n\n", r->prim->n_prims, r->prim->n_values);
    print_table(r);
}

/* ------------------------------------------------------------------ */
/* JSON report                                                         */
/* ------------------------------------------------------------------ */

static void print_json(const report *r) {
    const nasc_module *m = r->m;
    printf("{\"model\":");
    nasc_cli_json_str(stdout, r->path);
    printf(",\"dialect\":\"%s\",\"kind\":\"%s\"",
           m->dialect == NASC_DIALECT_ARCH ? "arch" : "prim", kind_name(r));
    if (m->dialect == NASC_DIALECT_ARCH && m->has_skeleton) {
        const nasc_skeleton *s = &m->skel;
        printf(",\"skeleton\":{\"input\":[%d,%d,%d],\"classes\":%d,\"channels\":%d,"
               "\"cells_per_stage\":%d,\"stages\":%d,\"stem_multiplier\":%d,\"normal\":",
               s->in_c, s->in_h, s->in_w, s->classes, s->channels, s->cells_per_stage,
               s->stages, s->stem_multiplier);
        if (s->normal_cell >= 0 && (uint32_t)s->normal_cell < m->n_cells)
            nasc_cli_json_str(stdout, nasc_str(m, m->cells[s->normal_cell].name));
        else
            printf("null");
        printf(",\"reduction\":");
        if (s->reduction_cell >= 0 && (uint32_t)s->reduction_cell < m->n_cells)
            nasc_cli_json_str(stdout, nasc_str(m, m->cells[s->reduction_cell].name));
        else
            printf("null");
        printf("},\"cells\":[");
        for (uint32_t c = 0; c < m->n_cells; c++) {
            const nasc_cell *cell = &m->cells[c];
            printf("%s{\"name\":", c ? "," : "");
            nasc_cli_json_str(stdout, nasc_str(m, cell->name));
            printf(",\"kind\":\"%s\",\"nodes\":%u,\"out\":\"%s\"}",
                   nasc_cell_kind_name(cell->kind), cell->n_nodes,
                   nasc_out_rule_name(cell->out_rule));
        }
        printf("],\"hash\":\"%016" PRIx64 "\"", r->hash);
    } else {
        printf(",\"hash\":null");
    }
    if (r->recurrent) {
        int64_t total = r->rnn.embed_params + r->rnn.cell_params + r->rnn.decoder_params;
        printf(",\"rnn\":{\"embed_params\":%" PRId64 ",\"cell_params\":%" PRId64
               ",\"decoder_params\":%" PRId64 ",\"macs_per_step\":%" PRId64 "}",
               r->rnn.embed_params, r->rnn.cell_params, r->rnn.decoder_params,
               r->rnn.macs_per_step);
        printf(",\"total\":{\"params\":%" PRId64 ",\"macs\":%" PRId64 "}}\n", total,
               r->rnn.macs_per_step);
        return;
    }
    bool cells_ok = cell_column_ok(r);
    printf(",\"prim_ops\":%u,\"groups\":[", r->prim->n_prims);
    for (uint32_t g = 0; g < r->cost.n_groups; g++) {
        const nasc_cost_group *cg = &r->cost.groups[g];
        const char *name = nasc_str(r->prim, cg->name);
        const char *kind = NULL;
        int cell = cells_ok ? group_cell(r, name, &kind) : -1;
        printf("%s{\"name\":", g ? "," : "");
        nasc_cli_json_str(stdout, name);
        if (cell >= 0) {
            printf(",\"cell\":");
            nasc_cli_json_str(stdout, nasc_str(m, m->cells[cell].name));
            printf(",\"cell_kind\":\"%s\"", kind);
        }
        printf(",\"params\":%" PRId64 ",\"macs\":%" PRId64 ",\"act_bytes\":%" PRId64 "}",
               cg->params, cg->macs, cg->act_bytes);
    }
    printf("],\"total\":{\"params\":%" PRId64 ",\"macs\":%" PRId64 ",\"act_bytes\":%" PRId64
           "}}\n",
           r->cost.params, r->cost.macs, r->cost.act_bytes);
}

/* ------------------------------------------------------------------ */

int nasc_cli_check(int argc, char **argv) {
    nasc_cli_model mo = {0};
    bool json = false;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--json", NULL, NASC_CLI_FLAG, &json)},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_check_help);
    if (rc != NASC_CLI_GO) return rc;

    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    nasc_module *m = NULL, *prim = NULL;
    rc = nasc_cli_load(&ctx, &mo, &m);
    if (rc != NASC_EXIT_OK) return rc;

    report r;
    memset(&r, 0, sizeof r);
    r.path = mo.path;
    r.m = m;
    bool have_cost = false;
    if (m->dialect == NASC_DIALECT_PRIM) {
        if (nasc_prim_verify(m) != NASC_OK) goto fail;
        r.prim = m;
    } else {
        if (nasc_arch_verify(m) != NASC_OK) goto fail;
        if (m->has_skeleton && nasc_arch_hash(m, &r.hash) != NASC_OK) goto fail;
        if (m->has_skeleton && m->skel.kind == NASC_NET_RECURRENT) {
            r.recurrent = true;
            if (nasc_rnn_cost_compute(m, &r.rnn) != NASC_OK) goto fail;
        } else {
            if (nasc_lower(m, &prim) != NASC_OK) goto fail;
            if (nasc_prim_verify(prim) != NASC_OK) goto fail;
            r.prim = prim;
        }
    }
    if (r.prim) {
        if (nasc_cost_compute(r.prim, &r.cost) != NASC_OK) goto fail;
        have_cost = true;
    }
    if (json)
        print_json(&r);
    else
        print_text(&r);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "nasc check: error: cannot write the report\n");
        rc = NASC_EXIT_INPUT;
    }
    goto done;
fail:
    rc = nasc_cli_fail(&ctx);
done:
    if (have_cost) nasc_cost_free(r.prim, &r.cost);
    if (prim) nasc_module_destroy(prim);
    nasc_module_destroy(m);
    return rc;
}
