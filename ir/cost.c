/* Cost model: parameters, multiply-adds and activation bytes per image. */
#include <string.h>

#include "nasc_ir.h"

static int64_t conv_macs(const nasc_module *m, const nasc_prim *p) {
    const nasc_type *out = &m->values[p->result].type;
    const nasc_type *w = &m->values[m->args[p->first_arg + 1]].type;
    /* every output element is a dot product over C_in/groups * kh * kw */
    return nasc_type_numel(out) * w->dims[1] * w->dims[2] * w->dims[3];
}

static int find_group(nasc_cost *c, uint32_t name) {
    for (uint32_t i = 0; i < c->n_groups; i++)
        if (c->groups[i].name == name) return (int)i;
    return -1;
}

nasc_status nasc_cost_compute(const nasc_module *m, nasc_cost *c) {
    memset(c, 0, sizeof *c);
    if (m->dialect != NASC_DIALECT_PRIM)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the cost model needs a prim module");
    /* groups are at most one per op */
    if (m->n_prims) {
        c->groups = nasc_alloc(m->ctx, m->n_prims * sizeof *c->groups);
        if (!c->groups) return NASC_ENOMEM;
    }
    bool *seen = NULL;
    if (m->n_values) {
        seen = nasc_alloc(m->ctx, m->n_values * sizeof *seen);
        if (!seen) {
            nasc_cost_free(m, c);
            return NASC_ENOMEM;
        }
        memset(seen, 0, m->n_values * sizeof *seen);
    }
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        int g = find_group(c, p->group);
        if (g < 0) {
            g = (int)c->n_groups++;
            memset(&c->groups[g], 0, sizeof c->groups[g]);
            c->groups[g].name = p->group;
        }
        nasc_cost_group *cg = &c->groups[g];
        /* a parameter counts once, in the group of its first user */
        for (uint32_t a = 0; a < p->n_args; a++) {
            uint32_t v = m->args[p->first_arg + a];
            if (m->values[v].kind == NASC_VAL_PARAM && !seen[v]) {
                seen[v] = true;
                cg->params += nasc_type_numel(&m->values[v].type);
            }
        }
        int64_t macs = 0;
        if (p->op == NASC_PRIM_CONV)
            macs = conv_macs(m, p);
        else if (p->op == NASC_PRIM_INNER_PRODUCT) {
            const nasc_type *w = &m->values[m->args[p->first_arg + 1]].type;
            macs = w->dims[0] * w->dims[1];
        } else if (p->op == NASC_PRIM_MATMUL) {
            /* every output element is a dot product of length K */
            const nasc_type *x = &m->values[m->args[p->first_arg]].type;
            macs = nasc_type_numel(&m->values[p->result].type) * x->dims[x->rank - (p->a.trans_a ? 2 : 1)];
        }
        cg->macs += macs;
        cg->act_bytes += nasc_type_numel(&m->values[p->result].type) * 4;
    }
    for (uint32_t g = 0; g < c->n_groups; g++) {
        c->params += c->groups[g].params;
        c->macs += c->groups[g].macs;
        c->act_bytes += c->groups[g].act_bytes;
    }
    /* parameters no op uses still count toward the total */
    for (uint32_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == NASC_VAL_PARAM && !seen[v]) c->params += nasc_type_numel(&m->values[v].type);
    nasc_free(m->ctx, seen);
    return NASC_OK;
}

void nasc_cost_free(const nasc_module *m, nasc_cost *c) {
    nasc_free(m->ctx, c->groups);
    c->groups = NULL;
    c->n_groups = 0;
}

nasc_status nasc_rnn_cost_compute(const nasc_module *a, nasc_rnn_cost *out) {
    memset(out, 0, sizeof *out);
    nasc_status s = nasc_arch_verify(a);
    if (s) return s;
    const nasc_skeleton *sk = &a->skel;
    if (sk->kind != NASC_NET_RECURRENT)
        return nasc_error(a->ctx, NASC_EINPUT, a->source, sk->loc, "not a recurrent net");
    const nasc_cell *c = &a->cells[sk->normal_cell];
    int64_t hidden = sk->channels;
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const nasc_node *nd = &a->nodes[c->first_node + j];
        if (nd->op != NASC_OP_LINEAR) continue;
        /* linear(a, b, ...) = sum_k W_k a_k + b: one (hidden x size(a_k))
         * matrix per operand and a bias of the hidden size */
        for (uint32_t k = 0; k < nd->n_args; k++) {
            uint32_t v = a->args[nd->first_arg + k];
            int64_t in = v == 0 ? sk->in_c : hidden;
            out->cell_params += in * hidden;
            out->macs_per_step += in * hidden;
        }
        out->cell_params += hidden;
    }
    out->embed_params = (int64_t)sk->classes * sk->in_c;
    out->decoder_params = hidden * sk->classes + sk->classes;
    out->macs_per_step += hidden * sk->classes;
    return NASC_OK;
}
