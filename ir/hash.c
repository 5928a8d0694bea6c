/* Canonical hashing of arch cells and nets.
 *
 * A node's hash is built from its op, attributes and its operands' hashes
 * (Merkle style), so node order and names never matter. Operands of
 * commutative ops (add, mul) are sorted first. A cell's outputs are hashed as
 * a multiset: reordering a concatenation permutes channels, which the
 * following 1x1 convolutions and the linear head absorb; only the ordered
 * (h_t, c_t) state of a recurrent cell keeps its order.
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

uint64_t nasc_cell_hash(const nasc_module *m, uint32_t cell) {
    if (cell >= m->n_cells) return 0;
    const nasc_cell *c = &m->cells[cell];
    uint32_t nv = c->n_inputs + c->n_nodes;
    uint64_t stack[256];
    uint64_t *h = nv <= 256 ? stack : nasc_alloc(m->ctx, nv * sizeof *h);
    if (!h) return 0;
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
        x = mix(x, nd->n_args);
        for (uint32_t a = 0; a < n; a++) x = mix(x, ops[a]);
        h[c->n_inputs + j] = x;
    }
    uint32_t outs_stack[256], *outs = outs_stack;
    uint32_t n_out = nasc_cell_out_values(m, c, outs_stack, 256);
    uint64_t res = mix(0xce11u, (uint64_t)c->kind);
    res = mix(res, c->n_inputs);
    res = mix(res, (uint64_t)c->out_rule);
    if (n_out > 256) {
        res = mix(res, n_out); /* pathological width: hash the count only beyond the first 256 */
        n_out = 256;
    }
    uint64_t oh_stack[256];
    for (uint32_t i = 0; i < n_out; i++) oh_stack[i] = h[outs[i]];
    if (c->out_rule != NASC_OUT_STATE) sort_small(oh_stack, n_out);
    for (uint32_t i = 0; i < n_out; i++) res = mix(res, oh_stack[i]);
    if (h != stack) nasc_free(m->ctx, h);
    return res;
}

uint64_t nasc_arch_hash(const nasc_module *m) {
    const nasc_skeleton *sk = &m->skel;
    uint64_t h = mix(0xa4c5u, (uint64_t)sk->kind);
    int fields[] = {sk->in_c, sk->in_h, sk->in_w, sk->classes, sk->channels, sk->cells_per_stage, sk->stages,
                    sk->stem_multiplier};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) h = mix(h, (uint64_t)(int64_t)fields[i]);
    h = mix(h, sk->normal_cell >= 0 ? nasc_cell_hash(m, (uint32_t)sk->normal_cell) : 0);
    h = mix(h, sk->reduction_cell >= 0 ? nasc_cell_hash(m, (uint32_t)sk->reduction_cell) : 0);
    return h;
}
