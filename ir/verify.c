/* Verifiers of both dialects: the first violation, with its location. */
#include <string.h>

#include "nasc_ir.h"

uint32_t nasc_cell_out_values(const nasc_module *m, const nasc_cell *c, uint32_t *out, uint32_t cap) {
    if (c->n_outs) {
        for (uint32_t i = 0; i < c->n_outs && i < cap; i++) out[i] = m->args[c->first_out + i];
        return c->n_outs;
    }
    uint32_t n = 0;
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        uint32_t v = c->n_inputs + j;
        bool used = false;
        for (uint32_t k = j + 1; k < c->n_nodes && !used; k++) {
            const nasc_node *nd = &m->nodes[c->first_node + k];
            for (uint32_t a = 0; a < nd->n_args; a++)
                if (m->args[nd->first_arg + a] == v) used = true;
        }
        if (!used) {
            if (n < cap) out[n] = v;
            n++;
        }
    }
    return n;
}

/* h_t must depend on x_t and on h_{t-1}: a path from each to the cell's
 * first output (the state rule's h_t, else one of the loose ends that are
 * summed or averaged). */
static nasc_status verify_recurrent_paths(const nasc_module *m, const nasc_cell *c, const char *cname) {
    uint32_t nv = c->n_inputs + c->n_nodes;
    uint8_t small[256], *reach = nv <= sizeof small ? small : nasc_alloc(m->ctx, nv);
    if (!reach) return NASC_ENOMEM;
    uint32_t outs[64];
    uint32_t n_out = nasc_cell_out_values(m, c, outs, 64);
    if (c->out_rule == NASC_OUT_STATE || n_out > 64) n_out = n_out ? 1 : 0;
    nasc_status st = NASC_OK;
    for (uint32_t from = 0; from < 2 && !st; from++) {
        memset(reach, 0, nv);
        reach[from] = 1;
        for (uint32_t j = 0; j < c->n_nodes; j++) {
            const nasc_node *nd = &m->nodes[c->first_node + j];
            for (uint32_t a = 0; a < nd->n_args; a++)
                if (reach[m->args[nd->first_arg + a]]) reach[c->n_inputs + j] = 1;
        }
        bool any = false;
        for (uint32_t i = 0; i < n_out; i++) any |= reach[outs[i]] != 0;
        if (!any)
            st = nasc_error(m->ctx, NASC_EINPUT, m->source, c->n_outs ? c->out_loc : c->loc,
                            "cell '%s': h_t does not depend on %s (no path from the input '%s' to the cell's output)",
                            cname, from == 0 ? "x_t" : "h_{t-1}", from == 0 ? "x" : "h");
    }
    if (reach != small) nasc_free(m->ctx, reach);
    return st;
}

static nasc_status verify_skeleton(const nasc_module *m) {
    const nasc_skeleton *sk = &m->skel;
    nasc_ctx *ctx = m->ctx;
    const char *src = m->source;
    if (!m->has_skeleton) return nasc_error(ctx, NASC_EINPUT, src, NASC_NOLOC, "the net has no skeleton");
    struct {
        const char *name;
        int v;
    } pos[] = {{"input channels", sk->in_c}, {"input height", sk->in_h}, {"input width", sk->in_w},
               {"classes", sk->classes},     {"channels", sk->channels}, {"cells_per_stage", sk->cells_per_stage},
               {"stages", sk->stages},       {"stem_multiplier", sk->stem_multiplier}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v < 1 || pos[i].v > (1 << 20))
            return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "%s must be between 1 and 1048576, got %d", pos[i].name, pos[i].v);
    if (sk->stages > 8) return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "at most 8 stages, got %d", sk->stages);
    if (sk->cells_per_stage > 64)
        return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "at most 64 cells per stage, got %d", sk->cells_per_stage);
    struct role {
        const char *role;
        int cell;
        nasc_cell_kind kind;
        bool needed;
    } roles[2];
    int n_roles = 0;
    switch (sk->kind) {
    case NASC_NET_CELLS:
        roles[n_roles++] = (struct role){"normal", sk->normal_cell, NASC_CELL_NORMAL, true};
        roles[n_roles++] = (struct role){"reduction", sk->reduction_cell, NASC_CELL_REDUCTION, sk->stages > 1};
        break;
    case NASC_NET_MACRO:
        roles[n_roles++] = (struct role){"body", sk->normal_cell, NASC_CELL_MACRO, true};
        if (sk->reduction_cell >= 0)
            return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "a macro net has one body cell and no reduction cell");
        break;
    case NASC_NET_RECURRENT:
        roles[n_roles++] = (struct role){"recurrent", sk->normal_cell, NASC_CELL_RECURRENT, true};
        if (sk->reduction_cell >= 0)
            return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "a recurrent net has one cell and no reduction cell");
        break;
    default:
        return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "bad net kind");
    }
    for (int i = 0; i < n_roles; i++) {
        if (roles[i].cell < 0) {
            if (roles[i].needed)
                return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "a %s net needs a %s cell", nasc_net_kind_name(sk->kind), roles[i].role);
            continue;
        }
        if ((uint32_t)roles[i].cell >= m->n_cells)
            return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "the %s cell index %d is out of range", roles[i].role, roles[i].cell);
        const nasc_cell *c = &m->cells[roles[i].cell];
        if (c->kind != roles[i].kind)
            return nasc_error(ctx, NASC_EINPUT, src, sk->loc, "the %s cell '%s' is a %s cell, expected a %s cell", roles[i].role,
                              nasc_str(m, c->name), nasc_cell_kind_name(c->kind), nasc_cell_kind_name(roles[i].kind));
    }
    return NASC_OK;
}

static nasc_status verify_cell(const nasc_module *m, const nasc_cell *c) {
    nasc_ctx *ctx = m->ctx;
    const char *src = m->source, *cname = nasc_str(m, c->name);
    int dom = c->kind == NASC_CELL_RECURRENT ? NASC_DOM_RNN : NASC_DOM_CNN;
    if (c->first_node + c->n_nodes > m->n_nodes) return nasc_error(ctx, NASC_EINTERNAL, src, c->loc, "cell '%s' nodes out of range", cname);
    for (uint32_t j = 0; j < c->n_nodes; j++) {
        const nasc_node *nd = &m->nodes[c->first_node + j];
        const nasc_arch_op_info *info = nasc_arch_op_info_get(nd->op);
        const char *nname = nasc_str(m, nd->name);
        if (!info) return nasc_error(ctx, NASC_EINPUT, src, nd->loc, "node '%s' has an unknown op", nname);
        if (!(info->domain & dom))
            return nasc_error(ctx, NASC_EINPUT, src, nd->loc, "op '%s' cannot be used in a %s cell", info->name, nasc_cell_kind_name(c->kind));
        if ((info->arity >= 0 && nd->n_args != (uint32_t)info->arity) || nd->n_args < 1)
            return nasc_error(ctx, NASC_EINPUT, src, nd->loc, "node '%s': op '%s' has the wrong number of operands (%u)", nname, info->name, nd->n_args);
        for (uint32_t a = 0; a < nd->n_args; a++)
            if (m->args[nd->first_arg + a] >= c->n_inputs + j)
                return nasc_error(ctx, NASC_EINPUT, src, nd->loc, "node '%s' uses a value that is not defined before it", nname);
        if (nd->op == NASC_OP_CONV && (nd->attrs.kh < 1 || nd->attrs.kw < 1))
            return nasc_error(ctx, NASC_EINPUT, src, nd->loc, "node '%s': conv needs a kernel", nname);
    }
    switch (c->out_rule) {
    case NASC_OUT_STATE:
        if (c->kind != NASC_CELL_RECURRENT)
            return nasc_error(ctx, NASC_EINPUT, src, c->out_loc, "cell '%s': the 'state' output rule is for recurrent cells", cname);
        if (c->n_outs + 1 != c->n_inputs)
            return nasc_error(ctx, NASC_EINPUT, src, c->out_loc,
                              "cell '%s': 'state' lists h_t, plus c_t when the cell has a c input", cname);
        break;
    case NASC_OUT_CONCAT:
        if (c->kind == NASC_CELL_RECURRENT)
            return nasc_error(ctx, NASC_EINPUT, src, c->out_loc, "cell '%s': a recurrent cell's output is avg, sum or state, not concat", cname);
        break;
    case NASC_OUT_SUM:
    case NASC_OUT_AVG:
        if (c->kind == NASC_CELL_RECURRENT && c->n_inputs == 3)
            return nasc_error(ctx, NASC_EINPUT, src, c->n_outs ? c->out_loc : c->loc,
                              "cell '%s' reads a memory state c, so its output must be 'state' listing h_t and c_t",
                              cname);
        break;
    default:
        return nasc_error(ctx, NASC_EINPUT, src, c->out_loc, "cell '%s': bad output rule", cname);
    }
    for (uint32_t i = 0; i < c->n_outs; i++)
        if (m->args[c->first_out + i] >= c->n_inputs + c->n_nodes)
            return nasc_error(ctx, NASC_EINPUT, src, c->out_loc, "cell '%s': output %u is not a value of the cell", cname, i + 1);
    if (c->n_outs == 0 && c->n_nodes == 0)
        return nasc_error(ctx, NASC_EINPUT, src, c->loc, "cell '%s' has no nodes and no outputs", cname);
    if (c->kind == NASC_CELL_RECURRENT) {
        nasc_status st = verify_recurrent_paths(m, c, cname);
        if (st) return st;
    }
    if (c->n_outs) {
        /* With an explicit output list, a node nobody reads is a mistake. */
        for (uint32_t j = 0; j < c->n_nodes; j++) {
            uint32_t v = c->n_inputs + j;
            bool used = false;
            for (uint32_t i = 0; i < c->n_outs && !used; i++) used = m->args[c->first_out + i] == v;
            for (uint32_t k = j + 1; k < c->n_nodes && !used; k++) {
                const nasc_node *nd = &m->nodes[c->first_node + k];
                for (uint32_t a = 0; a < nd->n_args; a++) used |= m->args[nd->first_arg + a] == v;
            }
            if (!used) {
                const nasc_node *nd = &m->nodes[c->first_node + j];
                return nasc_error(ctx, NASC_EINPUT, src, nd->loc,
                                  "node '%s' of cell '%s' is never used: no node reads it and the output list leaves it out",
                                  nasc_str(m, nd->name), cname);
            }
        }
    }
    return NASC_OK;
}

nasc_status nasc_arch_verify(const nasc_module *m) {
    if (m->dialect != NASC_DIALECT_ARCH)
        return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "expected an arch module");
    if (m->open_cell >= 0) return nasc_error(m->ctx, NASC_EINPUT, m->source, NASC_NOLOC, "a cell was not ended");
    for (uint32_t i = 0; i < m->n_cells; i++) {
        nasc_status s = verify_cell(m, &m->cells[i]);
        if (s) return s;
    }
    return verify_skeleton(m);
}

nasc_status nasc_prim_verify(const nasc_module *m) {
    nasc_ctx *ctx = m->ctx;
    const char *src = m->source;
    if (m->dialect != NASC_DIALECT_PRIM) return nasc_error(ctx, NASC_EINPUT, src, NASC_NOLOC, "expected a prim module");
    for (uint32_t v = 0; v < m->n_values; v++) {
        const nasc_value *val = &m->values[v];
        if (val->kind == NASC_VAL_OP && (val->def >= m->n_prims || m->prims[val->def].result != v))
            return nasc_error(ctx, NASC_EINTERNAL, src, NASC_NOLOC, "value '%%%s' has a bad definition", nasc_str(m, val->name));
    }
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        const nasc_prim_op_info *info = nasc_prim_op_info_get(p->op);
        const char *name = p->result < m->n_values ? nasc_str(m, m->values[p->result].name) : "?";
        if (!info) return nasc_error(ctx, NASC_EINPUT, src, p->loc, "'%%%s' has an unknown op", name);
        if (p->result >= m->n_values) return nasc_error(ctx, NASC_EINTERNAL, src, p->loc, "op %u has no result", i);
        nasc_type small[8];
        if (p->n_args > 8 && info->arity >= 0)
            return nasc_error(ctx, NASC_EINPUT, src, p->loc, "'%%%s': too many operands", name);
        nasc_type *types = small;
        if (p->n_args > 8) {
            types = nasc_alloc(ctx, p->n_args * sizeof *types);
            if (!types) return NASC_ENOMEM;
        }
        nasc_status s = NASC_OK;
        for (uint32_t a = 0; a < p->n_args && !s; a++) {
            uint32_t v = m->args[p->first_arg + a];
            if (v >= p->result)
                s = nasc_error(ctx, NASC_EINPUT, src, p->loc, "'%%%s': operand %u is not defined before it", name, a + 1);
            else
                types[a] = m->values[v].type;
        }
        nasc_type out;
        char msg[400];
        if (!s && nasc_prim_infer(p->op, &p->a, types, p->n_args, &out, msg, sizeof msg))
            s = nasc_error(ctx, NASC_EINPUT, src, p->loc, "%s '%%%s': %s", info->name, name, msg);
        if (types != small) nasc_free(ctx, types);
        if (s) return s;
        const nasc_type *rt = &m->values[p->result].type;
        bool same = rt->rank == out.rank;
        for (int d = 0; same && d < out.rank; d++) same = rt->dims[d] == out.dims[d];
        if (!same) {
            char a[64], b[64];
            nasc_type_format(rt, a, sizeof a);
            nasc_type_format(&out, b, sizeof b);
            return nasc_error(ctx, NASC_EINPUT, src, p->loc, "'%%%s' has type %s but %s gives %s", name, a, info->name, b);
        }
    }
    if (m->n_outputs == 0) return nasc_error(ctx, NASC_EINPUT, src, NASC_NOLOC, "the module has no output");
    return NASC_OK;
}

nasc_status nasc_module_verify(const nasc_module *m) {
    return m->dialect == NASC_DIALECT_ARCH ? nasc_arch_verify(m) : nasc_prim_verify(m);
}
