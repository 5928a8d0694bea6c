/* space.c - search spaces: the registry and what every space shares.
 *
 * A space is a list of decisions (built once, at create) plus decode and
 * encode (space_cells.c, space_macro.c). Everything here works from that
 * one list: check, sample, the log10 size and what `nasc space` prints, so
 * the listing and the decoder cannot disagree. decode verifies what it
 * built; encode decodes what it read and compares canonical cell hashes,
 * so a vector it returns always decodes to the arch it was given.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "space_internal.h"

/* The space table: the only place a space is registered. One row per space,
 * in the order help texts and listings show them:
 * X(name, one-line summary, definition). The name is what --space takes and
 * must be the definition's name. */
#define SPACE_TABLE(X)                                                                                         \
    X("nasnet", "NASNet normal and reduction cells, 13 ops (Zoph et al. 2018)", nasc_space_nasnet_def)          \
    X("enas-micro", "ENAS micro cells, 5 ops (Pham et al. 2018)", nasc_space_enas_micro_def)                    \
    X("enas-macro", "ENAS macro net: per layer one of 6 ops and skip connections (Pham et al. 2018)",           \
      nasc_space_enas_macro_def)                                                                               \
    X("nasrl", "NAS-RL layer-by-layer CNN: filter sizes, filters, strides, skips (Zoph & Le 2017)",            \
      nasc_space_nasrl_def)                                                                                    \
    X("enas-rnn", "ENAS recurrent cell: per node an earlier node and an activation (Pham et al. 2018)",       \
      nasc_space_enas_rnn_def)                                                                                 \
    X("nasrl-rnn", "NAS-RL recurrent tree cell: combinations, activations, memory inject (Zoph & Le 2017)",   \
      nasc_space_nasrl_rnn_def)                                                                               \
    X("smash", "SMASH memory banks: per op the banks read and written, kernels, dilations, groups (Brock et al. 2018)", \
      nasc_space_smash_def)

#define ROW_NAME(name, summary, def) name,
#define ROW_SUMMARY(name, summary, def) summary,
#define ROW_DEF(name, summary, def) &def,
const char *const nasc_space_names[] = {SPACE_TABLE(ROW_NAME) NULL};
static const char *const summaries[] = {SPACE_TABLE(ROW_SUMMARY)};
static const space_def *const defs[] = {SPACE_TABLE(ROW_DEF)};
#undef ROW_NAME
#undef ROW_SUMMARY
#undef ROW_DEF
#define N_DEFS (sizeof defs / sizeof defs[0])

bool nasc_space_registered(size_t i, nasc_space_entry *out) {
    if (i >= N_DEFS) return false;
    assert(strcmp(defs[i]->name, nasc_space_names[i]) == 0);
    out->name = nasc_space_names[i];
    out->summary = summaries[i];
    out->option = defs[i]->option;
    out->def_size = defs[i]->def_size;
    out->max_size = defs[i]->max_size;
    return true;
}

/* ------------------------------------------------------------------ */
/* Building the decision list                                          */
/* ------------------------------------------------------------------ */

static nasc_decision *space_push(nasc_space *sp) {
    if (sp->n == sp->cap) {
        uint32_t cap = sp->cap ? sp->cap * 2 : 64;
        nasc_decision *nd = nasc_realloc(sp->ctx, sp->decs, cap * sizeof *nd);
        if (!nd) return NULL;
        sp->decs = nd;
        sp->cap = cap;
    }
    nasc_decision *d = &sp->decs[sp->n++];
    memset(d, 0, sizeof *d);
    return d;
}

nasc_status space_add_choice(nasc_space *sp, int card, int layer, const char *const *labels,
                             const char *fmt, ...) {
    nasc_decision *d = space_push(sp);
    if (!d) return NASC_ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->name, sizeof d->name, fmt, ap);
    va_end(ap);
    d->kind = NASC_DEC_CHOICE;
    d->card = card;
    d->layer = layer;
    d->labels = labels;
    return NASC_OK;
}

nasc_status space_add_skip(nasc_space *sp, int card, int layer, const char *fmt, ...) {
    nasc_decision *d = space_push(sp);
    if (!d) return NASC_ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->name, sizeof d->name, fmt, ap);
    va_end(ap);
    d->kind = NASC_DEC_SKIP;
    d->card = card;
    d->layer = layer;
    d->labels = NULL;
    return NASC_OK;
}

nasc_status space_reject(const nasc_space *sp, const nasc_module *m, const nasc_cell *c,
                         const nasc_node *nd, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nasc_loc loc = nd ? nd->loc : c ? c->loc : NASC_NOLOC;
    if (c && nd)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, loc,
                          "not an architecture of the %s space: cell '%s', node '%s': %s",
                          sp->def->name, nasc_str(m, c->name), nasc_str(m, nd->name), msg);
    if (c)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, loc,
                          "not an architecture of the %s space: cell '%s': %s", sp->def->name,
                          nasc_str(m, c->name), msg);
    return nasc_error(m->ctx, NASC_EINPUT, m->source, loc,
                      "not an architecture of the %s space: %s", sp->def->name, msg);
}

nasc_status space_build_status(const nasc_module *m) {
    return m->ctx->diag.status ? m->ctx->diag.status : NASC_EINTERNAL;
}

/* ------------------------------------------------------------------ */
/* The public interface                                                */
/* ------------------------------------------------------------------ */

static void known_spaces(char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; nasc_space_names[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                                 nasc_space_names[i]);
}

nasc_status nasc_space_create(nasc_ctx *ctx, const char *name, const nasc_space_options *opt,
                              nasc_space **out) {
    *out = NULL;
    const space_def *def = NULL;
    for (size_t i = 0; i < N_DEFS && name; i++)
        if (strcmp(nasc_space_names[i], name) == 0) {
            assert(strcmp(defs[i]->name, nasc_space_names[i]) == 0);
            def = defs[i];
        }
    if (!def) {
        char known[128];
        known_spaces(known, sizeof known);
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "unknown search space '%.64s' (spaces: %s)", name ? name : "", known);
    }
    nasc_space_options o = {0, 0};
    if (opt) o = *opt;
    bool blocks = strcmp(def->option, "blocks") == 0;
    int size = blocks ? o.blocks : o.layers, other = blocks ? o.layers : o.blocks;
    if (other != 0)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "the %s space has no '%s' option (its size option is '%s')", def->name,
                          blocks ? "layers" : "blocks", def->option);
    if (size == 0) size = def->def_size;
    if (size < 1 || size > def->max_size)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                          "%s must be between 1 and %d in the %s space, got %d", def->option,
                          def->max_size, def->name, size);
    nasc_space *sp = nasc_alloc(ctx, sizeof *sp);
    if (!sp) return NASC_ENOMEM;
    memset(sp, 0, sizeof *sp);
    sp->ctx = ctx;
    sp->def = def;
    sp->size = size;
    nasc_status st = def->build(sp);
    if (st) {
        nasc_space_destroy(sp);
        return st;
    }
    *out = sp;
    return NASC_OK;
}

void nasc_space_destroy(nasc_space *sp) {
    if (!sp) return;
    nasc_free(sp->ctx, sp->decs);
    nasc_free(sp->ctx, sp);
}

const char *nasc_space_name(const nasc_space *sp) { return sp->def->name; }
const char *nasc_space_summary(const nasc_space *sp) { return sp->summary; }
uint32_t nasc_space_count(const nasc_space *sp) { return sp->n; }
bool nasc_space_recurrent(const nasc_space *sp) { return sp->def->recurrent; }

void nasc_space_share_key(const nasc_space *sp, const uint32_t *d, const char *name, char *out, size_t size) {
    if (!size) return;
    if (sp->def->share_key) {
        sp->def->share_key(sp, d, name, out, size);
        return;
    }
    snprintf(out, size, "%s", name);
}

const char *nasc_space_option(const nasc_space *sp, int *value) {
    *value = sp->size;
    return sp->def->option;
}
const nasc_decision *nasc_space_decisions(const nasc_space *sp) { return sp->decs; }

double nasc_space_log10_size(const nasc_space *sp) {
    double s = 0;
    for (uint32_t i = 0; i < sp->n; i++) {
        const nasc_decision *d = &sp->decs[i];
        s += d->kind == NASC_DEC_SKIP ? d->card * log10(2.0) : log10((double)d->card);
    }
    return s;
}

nasc_status nasc_space_check(const nasc_space *sp, const uint32_t *d) {
    for (uint32_t i = 0; i < sp->n; i++) {
        const nasc_decision *dc = &sp->decs[i];
        uint64_t limit = dc->kind == NASC_DEC_SKIP ? (uint64_t)1 << dc->card : (uint64_t)dc->card;
        if (d[i] >= limit) {
            if (dc->kind == NASC_DEC_SKIP)
                return nasc_error(sp->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                                  "decision %u '%s' of the %s space is %u: a skip mask over %d "
                                  "earlier layer%s must be below %llu",
                                  i, dc->name, sp->def->name, d[i], dc->card,
                                  dc->card == 1 ? "" : "s", (unsigned long long)limit);
            return nasc_error(sp->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                              "decision %u '%s' of the %s space is %u, but it has %d option%s "
                              "(0..%d)",
                              i, dc->name, sp->def->name, d[i], dc->card, dc->card == 1 ? "" : "s",
                              dc->card - 1);
        }
    }
    return NASC_OK;
}

void nasc_space_sample(const nasc_space *sp, nasc_rng *r, uint32_t *d) {
    for (uint32_t i = 0; i < sp->n; i++) {
        const nasc_decision *dc = &sp->decs[i];
        uint64_t limit = dc->kind == NASC_DEC_SKIP ? (uint64_t)1 << dc->card : (uint64_t)dc->card;
        d[i] = limit > 1 ? (uint32_t)nasc_rng_below(r, limit) : 0;
    }
}

nasc_status nasc_space_decode(const nasc_space *sp, const uint32_t *d, nasc_module **out) {
    *out = NULL;
    nasc_status st = nasc_space_check(sp, d);
    if (st) return st;
    nasc_module *m = nasc_module_create(sp->ctx, NASC_DIALECT_ARCH, sp->def->name);
    if (!m) return sp->ctx->diag.status ? sp->ctx->diag.status : NASC_ENOMEM;
    st = sp->def->decode(sp, d, m);
    if (!st) st = nasc_arch_verify(m);
    if (st) {
        nasc_module_destroy(m);
        return st;
    }
    *out = m;
    return NASC_OK;
}

/* The cells a net is made of, by role: (normal or body, reduction). */
static void role_cells(const nasc_module *m, int roles[2]) {
    roles[0] = m->skel.normal_cell;
    roles[1] = m->skel.kind == NASC_NET_CELLS ? m->skel.reduction_cell : -1;
}

nasc_status nasc_space_encode(const nasc_space *sp, const nasc_module *arch, uint32_t *d) {
    nasc_status st = nasc_arch_verify(arch);
    if (st) return st;
    uint32_t *tmp = nasc_alloc(sp->ctx, (sp->n + 1) * sizeof *tmp);
    if (!tmp) return NASC_ENOMEM;
    memset(tmp, 0, (sp->n + 1) * sizeof *tmp);
    st = sp->def->encode(sp, arch, tmp);
    nasc_module *back = NULL;
    if (!st) st = nasc_space_decode(sp, tmp, &back);
    if (!st) {
        int ra[2], rb[2];
        role_cells(arch, ra);
        role_cells(back, rb);
        for (int i = 0; i < 2 && !st; i++) {
            if (rb[i] < 0) continue;
            uint64_t ha = 0, hb = 0;
            if (ra[i] >= 0) st = nasc_cell_hash(arch, (uint32_t)ra[i], &ha);
            if (!st) st = nasc_cell_hash(back, (uint32_t)rb[i], &hb);
            if (!st && (ra[i] < 0 || ha != hb))
                st = space_reject(sp, arch, ra[i] >= 0 ? &arch->cells[ra[i]] : NULL, NULL,
                                  "its decisions decode to a different cell (the cell is not "
                                  "written the way this space builds it; see "
                                  "docs/search-spaces.md)");
        }
    }
    if (!st) memcpy(d, tmp, sp->n * sizeof *d);
    nasc_module_destroy(back);
    nasc_free(sp->ctx, tmp);
    return st;
}
