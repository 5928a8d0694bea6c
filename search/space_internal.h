/* space_internal.h - what the search-space files share.
 *
 * space.c owns the registry and the generic half of every space (options,
 * the decision list, check, sample, log10 size, and the decode/encode
 * wrappers that verify); space_cells.c holds the two cell spaces (nasnet,
 * enas-micro), space_macro.c the two layer-by-layer spaces (enas-macro,
 * nasrl), space_rnn.c the two recurrent-cell spaces (enas-rnn, nasrl-rnn),
 * space_smash.c SMASH's memory-bank space. A space is one space_def row:
 * how to list its decisions, how to
 * build an arch from a checked decision vector, and how to read a vector
 * back from an arch. docs/search-spaces.md describes each space.
 */
#ifndef NASC_SPACE_INTERNAL_H
#define NASC_SPACE_INTERNAL_H

#include "nasc_search.h"

typedef struct space_def space_def;

struct nasc_space {
    nasc_ctx *ctx;
    const space_def *def;
    int size;              /* the size option: blocks per cell or layers */
    nasc_decision *decs;   /* (n,) in decision order */
    uint32_t n, cap;
    char summary[768];     /* nasc_space_summary */
};

struct space_def {
    const char *name;
    const char *option;    /* "blocks" or "layers" */
    int def_size, max_size;
    /* Fill sp->decs (space_add_choice / space_add_skip) and sp->summary. */
    nasc_status (*build)(nasc_space *sp);
    /* Build the net of a checked vector into the empty arch module m (cells
     * and skeleton); the caller verifies it. */
    nasc_status (*decode)(const nasc_space *sp, const uint32_t *d, nasc_module *m);
    /* Read the vector of a verified arch module; NASC_EINPUT naming the cell
     * and node that does not fit. The caller checks the result by decoding
     * it again and comparing the canonical cell hashes. */
    nasc_status (*encode)(const nasc_space *sp, const nasc_module *arch, uint32_t *d);
    /* Its children are recurrent nets (language models). */
    bool recurrent;
    /* NULL, or the one-shot store name of a parameter of child d
     * (nasc_space_share_key); a name it does not know it copies. */
    void (*share_key)(const nasc_space *sp, const uint32_t *d, const char *name, char *out, size_t size);
};

extern const space_def nasc_space_nasnet_def;
extern const space_def nasc_space_enas_micro_def;
extern const space_def nasc_space_enas_macro_def;
extern const space_def nasc_space_nasrl_def;
extern const space_def nasc_space_enas_rnn_def;
extern const space_def nasc_space_nasrl_rnn_def;
extern const space_def nasc_space_smash_def;

/* Append a decision; NASC_ENOMEM when the list cannot grow. The name is
 * printf-formatted (at most 47 characters). */
nasc_status space_add_choice(nasc_space *sp, int card, int layer, const char *const *labels,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
nasc_status space_add_skip(nasc_space *sp, int card, int layer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* NASC_EINPUT at the arch module's source: "cell 'c', node 'n': msg". */
nasc_status space_reject(const nasc_space *sp, const nasc_module *m, const nasc_cell *c,
                         const nasc_node *nd, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The builder's failure as a status (its diagnostic is already set). */
nasc_status space_build_status(const nasc_module *m);

#endif /* NASC_SPACE_INTERNAL_H */
