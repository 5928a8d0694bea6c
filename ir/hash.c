/* Canonical hashing of arch cells and nets.
 *
 * A node's hash is built from its op, attributes and its operands' hashes
 * (Merkle style), so node order and names never matter. Operands of
 * commutative ops (add, mul) are sorted first. A cell's outputs are hashed as
 * a multiset: reordering a concatenation permutes channels, which the
 * following 1x1 convolutions and the linear head absorb; only the ordered
 * (h_t, c_t) state of a recurrent cell keeps its order.
 *
 * Merkle hashes see the cell as a tree: "X read by two blocks" and "two
 * identical copies of X, each read once" would look alike. So the cell hash
 * also covers the graph itself: nodes are numbered in the order of their
 * Merkle hashes, each written as (hash, operand numbers), and the smallest
 * such encoding over all orderings of nodes with equal Merkle hashes is
 * taken (ties are rare and small in cells; past 5040 orderings the first
 * one is used, which can only make two equal cells hash apart).
 */
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

static uint64_t mix(uint64_t h, uint64_t v) {
    /* splitmix64 finaliser over the running state */
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorting small operand lists in place keeps this allocation-free. */
static void sort_small(uint64_t *v, uint32_t n) { qsort(v, n, sizeof *v, cmp_u64); }

typedef struct graph_key {
    const nasc_module *m;
    const nasc_cell *c;
    const uint64_t *h;  /* Merkle hash per cell-local value */
    uint32_t *order;    /* node values in canonical order */
    uint32_t *pos;      /* canonical number per cell-local value */
    const uint32_t *outs;
    uint32_t n_out;
} graph_key;

static uint64_t encode(graph_key *g) {
    const nasc_cell *c = g->c;
    uint32_t n = c->n_nodes;
    for (uint32_t k = 0; k < n; k++) g->pos[g->order[k]] = c->n_inputs + k;
    uint64_t e = 0x9a7f;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t v = g->order[k];
        const nasc_node *nd = &g->m->nodes[c->first_node + (v - c->n_inputs)];
        e = mix(e, g->h[v]);
        uint64_t ops[64];
        uint32_t na = nd->n_args < 64 ? nd->n_args : 64;
        for (uint32_t a = 0; a < na; a++) ops[a] = g->pos[g->m->args[nd->first_arg + a]];
        if (nasc_arch_op_commutative(nd->op)) sort_small(ops, na);
        for (uint32_t a = 0; a < na; a++) e = mix(e, ops[a]);
    }
    uint64_t o[256];
    for (uint32_t i = 0; i < g->n_out; i++) o[i] = g->pos[g->outs[i]];
    if (c->out_rule != NASC_OUT_STATE) sort_small(o, g->n_out);
    for (uint32_t i = 0; i < g->n_out; i++) e = mix(e, o[i]);
    return e;
}

/* Next permutation of a[0..n) in increasing order of values; false after the last. */
static bool next_perm(uint32_t *a, uint32_t n) {
    if (n < 2) return false;
    uint32_t i = n - 1;
    while (i > 0 && a[i - 1] >= a[i]) i--;
    if (i == 0) {
        for (uint32_t l = 0, r = n - 1; l < r; l++, r--) { uint32_t t = a[l]; a[l] = a[r]; a[r] = t; }
        return false;
    }
    uint32_t j = n - 1;
    while (a[j] <= a[i - 1]) j--;
    uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    for (uint32_t l = i, r = n - 1; l < r; l++, r--) { t = a[l]; a[l] = a[r]; a[r] = t; }
    return true;
}

/* The smallest graph encoding over the orderings of tied nodes. */
static uint64_t graph_hash(graph_key *g) {
    uint32_t n = g->c->n_nodes;
    for (uint32_t k = 0; k < n; k++) g->order[k] = g->c->n_inputs + k;
    /* insertion sort by Merkle hash (cells are small) */
    for (uint32_t i = 1; i < n; i++) {
        uint32_t t = g->order[i], j = i;
        while (j > 0 && (g->h[g->order[j - 1]] > g->h[t] || (g->h[g->order[j - 1]] == g->h[t] && g->order[j - 1] > t))) {
            g->order[j] = g->order[j - 1];
            j--;
        }
        g->order[j] = t;
    }
    /* tie groups and the number of orderings */
    double orderings = 1;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1;
        while (j < n && g->h[g->order[j]] == g->h[g->order[i]]) j++;
        for (uint32_t k = 2; k <= j - i; k++) orderings *= k;
        i = j;
    }
    uint64_t best = encode(g);
    if (orderings <= 1 || orderings > 5040) return best;
    /* odometer over the groups: each group steps through its permutations */
    for (;;) {
        bool advanced = false;
        for (uint32_t i = 0; i < n && !advanced;) {
            uint32_t j = i + 1;
            while (j < n && g->h[g->order[j]] == g->h[g->order[i]]) j++;
            if (j - i > 1 && next_perm(g->order + i, j - i)) advanced = true;
            i = j;
        }
        if (!advanced) break;
        uint64_t e = encode(g);
        if (e < best) best = e;
    }
    return best;
}

nasc_status nasc_cell_hash(const nasc_module *m, uint32_t cell, uint64_t *out) {
    if (cell >= m->n_cells)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "cell %u is not in the module (%u cells)", cell,
                          m->n_cells);
    const nasc_cell *c = &m->cells[cell];
    uint32_t nv = c->n_inputs + c->n_nodes;
    /* past 256 values the scratch arrays come from the allocator */
    uint64_t h_stack[256];
    uint32_t ord_stack[256], pos_stack[256];
    uint64_t *h = h_stack;
    uint32_t *ord = ord_stack, *pos = pos_stack;
    if (nv > 256) {
        h = nasc_alloc(m->ctx, nv * sizeof *h);
        ord = h ? nasc_alloc(m->ctx, nv * sizeof *ord) : NULL;
        pos = ord ? nasc_alloc(m->ctx, nv * sizeof *pos) : NULL;
        if (!pos) {
            nasc_free(m->ctx, ord);
            nasc_free(m->ctx, h);
            return NASC_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < c->n_inputs; i++) h[i] = mix(0x1a2b3c4du, i);
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        uint64_t ops[64];
        uint32_t n = nd->n_args < 64 ? nd->n_args : 64;
        for (uint32_t a = 0; a < n; a++) ops[a] = h[m->args[nd->first_arg + a]];
        if (nasc_arch_op_commutative(nd->op)) sort_small(ops, n);
        uint64_t x = mix(0x51ed27u, (uint64_t)nd->op);
        x = mix(x, (uint64_t)nd->attrs.kh << 48 | (uint64_t)nd->attrs.kw << 32 | (uint64_t)nd->attrs.stride << 24);
        x = mix(x, (uint64_t)nd->attrs.filters);
        /* dilation 0 and 1, groups 0 and 1 are the same convolution */
        int dh = nd->attrs.dh > 1 ? nd->attrs.dh : 1, dw = nd->attrs.dw > 1 ? nd->attrs.dw : 1;
        int g = nd->attrs.groups > 1 ? nd->attrs.groups : 1;
        if (dh > 1 || dw > 1 || g > 1) x = mix(x, (uint64_t)dh << 48 | (uint64_t)dw << 32 | (uint64_t)g);
        x = mix(x, nd->n_args);
        for (uint32_t a = 0; a < n; a++) x = mix(x, ops[a]);
        h[c->n_inputs + j] = x;
    }
    uint32_t outs[256];
    uint32_t n_out = nasc_cell_out_values(m, c, outs, 256);
    uint64_t res = mix(0xce11u, (uint64_t)c->kind);
    res = mix(res, c->n_inputs);
    res = mix(res, (uint64_t)c->out_rule);
    if (n_out > 256) {
        res = mix(res, n_out); /* pathological width: hash the count only beyond the first 256 */
        n_out = 256;
    }
    uint64_t oh[256];
    for (uint32_t i = 0; i < n_out; i++) oh[i] = h[outs[i]];
    if (c->out_rule != NASC_OUT_STATE) sort_small(oh, n_out);
    for (uint32_t i = 0; i < n_out; i++) res = mix(res, oh[i]);
    for (uint32_t i = 0; i < c->n_inputs; i++) pos[i] = i;
    graph_key g = {m, c, h, ord, pos, outs, n_out};
    res = mix(res, graph_hash(&g));
    if (h != h_stack) {
        nasc_free(m->ctx, pos);
        nasc_free(m->ctx, ord);
        nasc_free(m->ctx, h);
    }
    *out = res;
    return NASC_OK;
}

nasc_status nasc_arch_hash(const nasc_module *m, uint64_t *out) {
    const nasc_skeleton *sk = &m->skel;
    uint64_t h = mix(0xa4c5u, (uint64_t)sk->kind);
    int fields[] = {sk->in_c, sk->in_h, sk->in_w, sk->classes, sk->channels, sk->cells_per_stage, sk->stages,
                    sk->stem_multiplier};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) h = mix(h, (uint64_t)(int64_t)fields[i]);
    int cells[2] = {sk->normal_cell, sk->reduction_cell};
    for (int i = 0; i < 2; i++) {
        uint64_t ch = 0;
        if (cells[i] >= 0) {
            nasc_status st = nasc_cell_hash(m, (uint32_t)cells[i], &ch);
            if (st) return st;
        }
        h = mix(h, ch);
    }
    *out = h;
    return NASC_OK;
}
