/* yaml.c - YAML model files into arch modules (docs/yaml-format.md).
 *
 * libyaml's document API builds the node tree; we walk it once, check every
 * key and every type, and feed the arch builder. Each cell is first collected
 * into a list of pending nodes (blocks expand to three nodes each), whose
 * operands are resolved by name and then sorted topologically, because the
 * file may name a node before defining it while the builder wants operands
 * before their users.
 *
 * libyaml allocates with its own malloc; everything of ours goes through the
 * context's allocator and is freed on every path.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "nasc_frontend.h"
#include "yaml_internal.h"

typedef struct yl {
    nasc_ctx *ctx;
    const char *file;
    yaml_document_t *doc;
    nasc_module *m;
} yl;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int clamp_int(size_t v) { return v >= (size_t)INT_MAX ? INT_MAX : (int)v; }

static nasc_loc mark_loc(yaml_mark_t mk) {
    return (nasc_loc){clamp_int(mk.line + 1), clamp_int(mk.column + 1)};
}

static nasc_loc node_loc(const yaml_node_t *n) { return mark_loc(n->start_mark); }

static nasc_status yerr(yl *y, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nasc_status yerr(yl *y, const yaml_node_t *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nasc_status st = nasc_verror(y->ctx, NASC_EINPUT, y->file, at ? node_loc(at) : NASC_NOLOC,
                                 fmt, ap);
    va_end(ap);
    return st;
}

static const char *kind_phrase(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }
static size_t slen(const yaml_node_t *n) { return n->data.scalar.length; }

/* Scalars quoted in messages are cut short so one bad value cannot fill the diagnostic. */
#define SHOW_MAX 64
#define SHOW(n) (int)(slen(n) > SHOW_MAX ? SHOW_MAX : slen(n)), sval(n)

static bool seq_eq(const yaml_node_t *n, const char *s) {
    return n->type == YAML_SCALAR_NODE && slen(n) == strlen(s) && memcmp(sval(n), s, slen(n)) == 0;
}

static yaml_node_t *get(yl *y, int id) { return yaml_document_get_node(y->doc, id); }

static size_t seq_len(const yaml_node_t *n) {
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_at(yl *y, const yaml_node_t *n, size_t i) {
    return get(y, n->data.sequence.items.start[i]);
}

static nasc_status expect(yl *y, const yaml_node_t *n, yaml_node_type_t type, const char *what) {
    if (n->type == type) return NASC_OK;
    const char *want = type == YAML_SCALAR_NODE     ? "a scalar"
                       : type == YAML_SEQUENCE_NODE ? "a sequence"
                                                    : "a mapping";
    return yerr(y, n, "%s must be %s, found %s", what, want, kind_phrase(n));
}

/* Strict decimal integer that fits an int. */
static bool parse_int(const char *s, size_t len, long *out) {
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == len) return false;
    long v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
        if (v > INT_MAX) return false;
    }
    *out = neg ? -v : v;
    return true;
}

static bool scalar_int(const yaml_node_t *n, long *out) {
    return n->type == YAML_SCALAR_NODE && parse_int(sval(n), slen(n), out);
}

int nasc_yaml_edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    enum { MAXN = 64 };
    if (na > MAXN || nb > MAXN) return INT_MAX;
    int prev[MAXN + 1], cur[MAXN + 1];
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(int) * (nb + 1));
    }
    return prev[nb];
}

/* How many edits still look like a typo: none for one- or two-letter names
 * (every short name is close to every other), more for longer ones. */
static int suggest_limit(size_t len) {
    if (len <= 2) return 0;
    if (len <= 4) return 1;
    return (int)(len / 3) + 1;
}

/* The candidate closest to s, or NULL when none is close enough to be a typo. */
static const char *nearest(const char *s, size_t len, const char *const *cands, size_t n) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = nasc_yaml_edit_distance(s, len, cands[i], strlen(cands[i]));
        if (d < bestd) bestd = d, best = cands[i];
    }
    return bestd <= suggest_limit(len) ? best : NULL;
}

/* " (did you mean 'x'?)" or "" */
static void did_you_mean(char *buf, size_t size, const char *s, size_t len,
                         const char *const *cands, size_t n) {
    const char *near = nearest(s, len, cands, n);
    if (near)
        snprintf(buf, size, " (did you mean '%s'?)", near);
    else
        buf[0] = 0;
}

/* ------------------------------------------------------------------ */
/* Mappings with a fixed set of keys                                   */
/* ------------------------------------------------------------------ */

#define MAX_KEYS 16

/* Check every key of map against names[0..n) (unknown keys, duplicates, keys
 * that are not scalars) and hand back each key's key and value node (NULL
 * when absent). what names the mapping in messages. */
static nasc_status read_map(yl *y, const yaml_node_t *map, const char *what,
                            const char *const *names, size_t n, yaml_node_t **keys,
                            yaml_node_t **vals) {
    for (size_t i = 0; i < n; i++) keys[i] = vals[i] = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = get(y, p->key), *v = get(y, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return yerr(y, k, "keys of %s must be scalars, found %s", what, kind_phrase(k));
        size_t i = 0;
        while (i < n && !seq_eq(k, names[i])) i++;
        if (i == n) {
            char allowed[256] = "", hint[96];
            size_t used = 0;
            for (size_t j = 0; j < n && used < sizeof allowed; j++)
                used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s",
                                         j ? ", " : "", names[j]);
            did_you_mean(hint, sizeof hint, sval(k), slen(k), names, n);
            return yerr(y, k, "unknown key '%.*s' in %s%s; allowed keys: %s", SHOW(k), what, hint,
                        allowed);
        }
        if (keys[i])
            return yerr(y, k, "duplicate key '%s' in %s (first at line %d)", names[i], what,
                        node_loc(keys[i]).line);
        keys[i] = k;
        vals[i] = v;
    }
    return NASC_OK;
}

/* ------------------------------------------------------------------ */
/* Ops and attributes                                                  */
/* ------------------------------------------------------------------ */

/* Paper spellings accepted on input (DARTS/NASNet genotypes). */
static const struct {
    const char *alias, *name;
} op_aliases[] = {
    {"skip_connect", "identity"},
    {"conv_7x1_1x7", "conv_1x7_7x1"},
    {"conv_3x1_1x3", "conv_1x3_3x1"},
};

static nasc_status resolve_op(yl *y, const yaml_node_t *n, nasc_op *out) {
    nasc_status st = expect(y, n, YAML_SCALAR_NODE, "an op");
    if (st) return st;
    const char *s = sval(n);
    size_t len = slen(n);
    for (size_t i = 0; i < sizeof op_aliases / sizeof op_aliases[0]; i++)
        if (seq_eq(n, op_aliases[i].alias)) {
            s = op_aliases[i].name;
            len = strlen(s);
        }
    if (seq_eq(n, "none"))
        return yerr(y, n, "the 'none' op (zero) is not part of a final architecture; "
                          "leave the edge out instead");
    int op = nasc_arch_op_from_name(s, len);
    if (op >= 0) {
        *out = (nasc_op)op;
        return NASC_OK;
    }
    const char *cands[NASC_OP_COUNT + sizeof op_aliases / sizeof op_aliases[0]];
    size_t nc = 0;
    for (int i = 0; i < NASC_OP_COUNT; i++) cands[nc++] = nasc_arch_op_info_get((nasc_op)i)->name;
    for (size_t i = 0; i < sizeof op_aliases / sizeof op_aliases[0]; i++)
        cands[nc++] = op_aliases[i].alias;
    char hint[96];
    did_you_mean(hint, sizeof hint, sval(n), slen(n), cands, nc);
    return yerr(y, n, "unknown op '%.*s'%s", SHOW(n), hint);
}

static const char *op_name(nasc_op op) { return nasc_arch_op_info_get(op)->name; }

/* A positive integer no larger than max. */
static nasc_status positive(yl *y, const yaml_node_t *n, const char *what, long max, int *out) {
    long v;
    if (!scalar_int(n, &v) || v <= 0 || v > max)
        return n->type == YAML_SCALAR_NODE
                   ? yerr(y, n, "%s must be a positive integer (at most %ld), found '%.*s'", what,
                          max, SHOW(n))
                   : yerr(y, n, "%s must be a positive integer, found %s", what, kind_phrase(n));
    *out = (int)v;
    return NASC_OK;
}

#define MAX_CELL_NODES (1u << 20)
#define MAX_KERNEL 64
#define MAX_STRIDE 8
#define MAX_FILTERS (1L << 20)

/* kernel or dilation (`what`): K or "KHxKW" (D or "DHxDW") */
static nasc_status parse_pair(yl *y, const yaml_node_t *n, const char *what, int *h_out, int *w_out) {
    const char L = (char)(what[0] - 'a' + 'A');
    long v;
    if (scalar_int(n, &v)) {
        nasc_status st = positive(y, n, what, MAX_KERNEL, h_out);
        *w_out = *h_out;
        return st;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = sval(n), *x = memchr(s, 'x', slen(n));
        long h, w;
        if (x && parse_int(s, (size_t)(x - s), &h) &&
            parse_int(x + 1, slen(n) - (size_t)(x - s) - 1, &w) && h > 0 && w > 0 &&
            h <= MAX_KERNEL && w <= MAX_KERNEL) {
            *h_out = (int)h;
            *w_out = (int)w;
            return NASC_OK;
        }
        return yerr(y, n, "%s must be %cHx%cW or %c with positive sizes (at most %d), found '%.*s'", what, L, L, L,
                    MAX_KERNEL, SHOW(n));
    }
    return yerr(y, n, "%s must be %cHx%cW or %c, found %s", what, L, L, L, kind_phrase(n));
}

static void attr_list(char *buf, size_t size, unsigned attrs) {
    static const char *const names[] = {"kernel", "filters", "stride", "dilation", "groups"};
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < 5; i++)
        if ((attrs & (1u << i)) && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", names[i]);
    if (!used) snprintf(buf, size, "none");
}

/* ------------------------------------------------------------------ */
/* Cells                                                               */
/* ------------------------------------------------------------------ */

/* An operand before the cell is built: a name to resolve, a cell input or a pending node. */
enum { REF_NAME, REF_INPUT, REF_NODE };

typedef struct pref {
    int kind;
    uint32_t idx;           /* input number or pending-node index */
    const yaml_node_t *src; /* the scalar that named it (NULL for block-internal refs) */
} pref;

typedef struct pnode {
    const char *name; /* NUL-terminated: a YAML scalar or buf */
    size_t name_len;
    char buf[32];     /* generated names: b<i>a, b<i>b, b<i>, n<i> */
    bool generated;   /* name chosen by us (n<i>), for messages */
    nasc_op op;
    nasc_node_attrs attrs;
    nasc_loc loc;
    uint32_t first_ref, n_refs;
    uint32_t value;  /* cell-local value once sorted */
    uint32_t stackpos;
    int state;       /* 0 unvisited, 1 on the sort stack, 2 placed */
} pnode;

typedef struct cellb {
    yl *y;
    const char *name;
    nasc_cell_kind kind;
    uint32_t n_inputs;
    pnode *nodes;
    uint32_t n_nodes;
    pref *refs;
    uint32_t n_refs;
    uint32_t *table; /* open addressing over node names: index+1, 0 empty */
    uint32_t table_mask;
} cellb;

static bool valid_node_name(const char *s, size_t len) {
    if (len == 0 || len > 128) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9')) return false;
    }
    return true;
}

static bool valid_cell_name(const char *s, size_t len) {
    if (len == 0 || len > 128) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

static uint32_t name_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Pending node named s, or -1. */
static int64_t table_find(const cellb *cb, const char *s, size_t len) {
    for (uint32_t h = name_hash(s, len) & cb->table_mask;; h = (h + 1) & cb->table_mask) {
        uint32_t e = cb->table[h];
        if (!e) return -1;
        const pnode *p = &cb->nodes[e - 1];
        if (p->name_len == len && memcmp(p->name, s, len) == 0) return e - 1;
    }
}

static void table_insert(cellb *cb, uint32_t idx) {
    const pnode *p = &cb->nodes[idx];
    uint32_t h = name_hash(p->name, p->name_len) & cb->table_mask;
    while (cb->table[h]) h = (h + 1) & cb->table_mask;
    cb->table[h] = idx + 1;
}

static int input_of(const cellb *cb, const char *s, size_t len, uint32_t n_inputs) {
    for (uint32_t i = 0; i < n_inputs; i++) {
        const char *in = nasc_cell_input_name(cb->kind, i);
        if (in && strlen(in) == len && memcmp(in, s, len) == 0) return (int)i;
    }
    return -1;
}

static void inputs_phrase(const cellb *cb, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < cb->n_inputs && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                                 nasc_cell_input_name(cb->kind, i));
}

static pref *add_ref(cellb *cb) { return &cb->refs[cb->n_refs++]; }

/* A reference by name (or, inside block number blk >= 0, by integer). */
static nasc_status name_ref(cellb *cb, const yaml_node_t *n, int blk) {
    yl *y = cb->y;
    nasc_status st = expect(y, n, YAML_SCALAR_NODE, "an input reference");
    if (st) return st;
    long k;
    if (parse_int(sval(n), slen(n), &k)) {
        if (blk < 0)
            return yerr(y, n, "integer input %ld: integers name inputs only inside blocks; "
                              "use a name (an input of the cell or a node)", k);
        if (k < 0 || k > blk + 1)
            return yerr(y, n, "input index %ld out of range: block %d may use 0..%d", k, blk,
                        blk + 1);
        pref *r = add_ref(cb);
        r->src = n;
        if (k < 2) {
            r->kind = REF_INPUT;
            r->idx = (uint32_t)k;
        } else {
            r->kind = REF_NODE;
            r->idx = (uint32_t)(3 * (k - 2) + 2);
        }
        return NASC_OK;
    }
    pref *r = add_ref(cb);
    r->kind = REF_NAME;
    r->idx = 0;
    r->src = n;
    return NASC_OK;
}

static nasc_status check_arity(cellb *cb, const yaml_node_t *at, nasc_op op, uint32_t n) {
    int arity = nasc_arch_op_info_get(op)->arity;
    if (arity < 0 && n == 0)
        return yerr(cb->y, at, "op '%s' needs at least one input", op_name(op));
    if (arity >= 0 && (uint32_t)arity != n)
        return yerr(cb->y, at, "op '%s' takes %d input%s, found %u", op_name(op), arity,
                    arity == 1 ? "" : "s", n);
    return NASC_OK;
}

/* One block [in_a, op_a, in_b, op_b, combine] -> nodes b<i>a, b<i>b, b<i>. */
static nasc_status read_block(cellb *cb, const yaml_node_t *blk, uint32_t i) {
    yl *y = cb->y;
    nasc_status st = expect(y, blk, YAML_SEQUENCE_NODE, "a block");
    if (st) return st;
    if (seq_len(blk) != 5)
        return yerr(y, blk, "a block is [in_a, op_a, in_b, op_b, combine]; found %zu item%s",
                    seq_len(blk), seq_len(blk) == 1 ? "" : "s");
    int bi = i > INT_MAX - 2 ? INT_MAX - 2 : (int)i;
    for (int half = 0; half < 2; half++) {
        pnode *p = &cb->nodes[cb->n_nodes];
        memset(p, 0, sizeof *p);
        snprintf(p->buf, sizeof p->buf, "b%u%c", i, half ? 'b' : 'a');
        p->name = p->buf;
        p->name_len = strlen(p->buf);
        p->loc = node_loc(blk);
        p->first_ref = cb->n_refs;
        p->n_refs = 1;
        if ((st = name_ref(cb, seq_at(y, blk, 2 * (size_t)half), bi))) return st;
        const yaml_node_t *opn = seq_at(y, blk, 2 * (size_t)half + 1);
        if ((st = resolve_op(y, opn, &p->op))) return st;
        if (nasc_arch_op_info_get(p->op)->arity != 1)
            return yerr(y, opn, "op '%s' cannot be a block's input op: it takes %s inputs",
                        op_name(p->op),
                        nasc_arch_op_info_get(p->op)->arity < 0 ? "several" : "more");
        cb->n_nodes++;
    }
    pnode *p = &cb->nodes[cb->n_nodes];
    memset(p, 0, sizeof *p);
    snprintf(p->buf, sizeof p->buf, "b%u", i);
    p->name = p->buf;
    p->name_len = strlen(p->buf);
    const yaml_node_t *comb = seq_at(y, blk, 4);
    if ((st = resolve_op(y, comb, &p->op))) return st;
    if (p->op != NASC_OP_ADD && p->op != NASC_OP_CONCAT)
        return yerr(y, comb, "a block's combine op must be add or concat, found '%.*s'",
                    SHOW(comb));
    p->loc = node_loc(comb);
    p->first_ref = cb->n_refs;
    p->n_refs = 2;
    for (uint32_t k = 0; k < 2; k++) {
        pref *r = add_ref(cb);
        r->kind = REF_NODE;
        r->idx = cb->n_nodes - 2 + k;
        r->src = NULL;
    }
    cb->n_nodes++;
    return NASC_OK;
}

static const char *const node_keys[] = {"name", "op", "in", "kernel", "filters", "stride", "dilation", "groups"};
enum { NK_NAME, NK_OP, NK_IN, NK_KERNEL, NK_FILTERS, NK_STRIDE, NK_DILATION, NK_GROUPS, NK_COUNT };

/* One general node {name, op, in, kernel, filters, stride, dilation, groups}. */
static nasc_status read_node(cellb *cb, const yaml_node_t *nd, uint32_t i) {
    yl *y = cb->y;
    nasc_status st = expect(y, nd, YAML_MAPPING_NODE, "a node");
    if (st) return st;
    yaml_node_t *k[NK_COUNT], *v[NK_COUNT];
    char what[192];
    snprintf(what, sizeof what, "node %u of cell '%s'", i, cb->name);
    if ((st = read_map(y, nd, what, node_keys, NK_COUNT, k, v))) return st;
    pnode *p = &cb->nodes[cb->n_nodes];
    memset(p, 0, sizeof *p);
    p->loc = node_loc(nd);
    if (v[NK_NAME]) {
        if ((st = expect(y, v[NK_NAME], YAML_SCALAR_NODE, "a node name"))) return st;
        if (!valid_node_name(sval(v[NK_NAME]), slen(v[NK_NAME])))
            return yerr(y, v[NK_NAME],
                        "invalid node name '%.*s': names are letters, digits and _, "
                        "not starting with a digit",
                        SHOW(v[NK_NAME]));
        p->name = sval(v[NK_NAME]);
        p->name_len = slen(v[NK_NAME]);
    } else {
        snprintf(p->buf, sizeof p->buf, "n%u", i);
        p->name = p->buf;
        p->name_len = strlen(p->buf);
        p->generated = true;
    }
    if (!v[NK_OP]) return yerr(y, nd, "node '%s' has no 'op'", p->name);
    if ((st = resolve_op(y, v[NK_OP], &p->op))) return st;
    if (!v[NK_IN]) return yerr(y, nd, "node '%s' has no 'in' (its inputs)", p->name);
    p->first_ref = cb->n_refs;
    if (v[NK_IN]->type == YAML_SCALAR_NODE) {
        if ((st = name_ref(cb, v[NK_IN], -1))) return st;
        p->n_refs = 1;
    } else {
        if ((st = expect(y, v[NK_IN], YAML_SEQUENCE_NODE, "'in'"))) return st;
        size_t n = seq_len(v[NK_IN]);
        for (size_t j = 0; j < n; j++)
            if ((st = name_ref(cb, seq_at(y, v[NK_IN], j), -1))) return st;
        p->n_refs = (uint32_t)n;
    }
    if ((st = check_arity(cb, v[NK_IN], p->op, p->n_refs))) return st;
    unsigned allowed = nasc_arch_op_info_get(p->op)->attrs;
    static const unsigned bits[NK_COUNT] = {0, 0, 0, NASC_ATTR_KERNEL, NASC_ATTR_FILTERS,
                                            NASC_ATTR_STRIDE, NASC_ATTR_DILATION, NASC_ATTR_GROUPS};
    for (int a = NK_KERNEL; a < NK_COUNT; a++) {
        if (!v[a]) continue;
        if (!(allowed & bits[a])) {
            char list[64];
            attr_list(list, sizeof list, allowed);
            return yerr(y, k[a], "op '%s' does not take '%s' (its attributes: %s)",
                        op_name(p->op), node_keys[a], list);
        }
    }
    if (v[NK_KERNEL] && (st = parse_pair(y, v[NK_KERNEL], "kernel", &p->attrs.kh, &p->attrs.kw))) return st;
    if (v[NK_DILATION] && (st = parse_pair(y, v[NK_DILATION], "dilation", &p->attrs.dh, &p->attrs.dw))) return st;
    if (v[NK_GROUPS] && (st = positive(y, v[NK_GROUPS], "groups", MAX_FILTERS, &p->attrs.groups))) return st;
    if (v[NK_FILTERS] && (st = positive(y, v[NK_FILTERS], "filters", MAX_FILTERS, &p->attrs.filters)))
        return st;
    if (v[NK_STRIDE] && (st = positive(y, v[NK_STRIDE], "stride", MAX_STRIDE, &p->attrs.stride)))
        return st;
    if (p->op == NASC_OP_CONV && !v[NK_KERNEL])
        return yerr(y, nd, "op 'conv' needs a 'kernel' (KHxKW or K)");
    cb->n_nodes++;
    return NASC_OK;
}

/* Operands named by a string: cell inputs first, then nodes. */
static nasc_status resolve_ref(cellb *cb, pref *r) {
    if (r->kind != REF_NAME) return NASC_OK;
    const char *s = sval(r->src);
    size_t len = slen(r->src);
    int in = input_of(cb, s, len, cb->n_inputs);
    if (in >= 0) {
        r->kind = REF_INPUT;
        r->idx = (uint32_t)in;
        return NASC_OK;
    }
    int64_t idx = table_find(cb, s, len);
    if (idx >= 0) {
        r->kind = REF_NODE;
        r->idx = (uint32_t)idx;
        return NASC_OK;
    }
    /* Suggest the closest input or node name. */
    const char *best = NULL;
    int bestd = INT_MAX;
    for (uint32_t i = 0; i < cb->n_inputs + cb->n_nodes; i++) {
        const char *c = i < cb->n_inputs ? nasc_cell_input_name(cb->kind, i)
                                         : cb->nodes[i - cb->n_inputs].name;
        int d = nasc_yaml_edit_distance(s, len, c, strlen(c));
        if (d < bestd) bestd = d, best = c;
    }
    char ins[64];
    inputs_phrase(cb, ins, sizeof ins);
    if (best && bestd <= suggest_limit(len) && bestd > 0)
        return yerr(cb->y, r->src,
                    "unknown input '%.*s' in cell '%s' (did you mean '%s'?): not an input of "
                    "the cell (%s) or a node",
                    SHOW(r->src), cb->name, best, ins);
    return yerr(cb->y, r->src,
                "unknown input '%.*s' in cell '%s': not an input of the cell (%s) or a node",
                SHOW(r->src), cb->name, ins);
}

/* Stable topological sort: depth-first in file order, so a file that is
 * already in dependency order keeps its order. */
static nasc_status sort_nodes(cellb *cb, uint32_t *order) {
    uint32_t *stack = nasc_alloc(cb->y->ctx, sizeof(uint32_t) * 2 * (cb->n_nodes + 1));
    if (!stack) return NASC_ENOMEM;
    uint32_t placed = 0;
    nasc_status st = NASC_OK;
    for (uint32_t s = 0; s < cb->n_nodes && !st; s++) {
        if (cb->nodes[s].state) continue;
        uint32_t sp = 0;
        stack[0] = s;
        stack[1] = 0;
        cb->nodes[s].state = 1;
        cb->nodes[s].stackpos = 0;
        sp = 1;
        while (sp > 0) {
            uint32_t top = stack[2 * (sp - 1)];
            uint32_t *next = &stack[2 * (sp - 1) + 1];
            pnode *p = &cb->nodes[top];
            if (*next < p->n_refs) {
                const pref *r = &cb->refs[p->first_ref + (*next)++];
                if (r->kind != REF_NODE) continue;
                pnode *q = &cb->nodes[r->idx];
                if (q->state == 0) {
                    q->state = 1;
                    q->stackpos = sp;
                    stack[2 * sp] = r->idx;
                    stack[2 * sp + 1] = 0;
                    sp++;
                } else if (q->state == 1) {
                    /* stack[q..top]: each entry uses the next one, so data flows
                     * top -> ... -> q -> top. */
                    char path[400];
                    size_t used = 0;
                    for (uint32_t j = sp; j-- > q->stackpos && used < sizeof path;) {
                        const pnode *e = &cb->nodes[stack[2 * j]];
                        used += (size_t)snprintf(path + used, sizeof path - used, "%s -> ",
                                                 e->name);
                    }
                    if (used < sizeof path)
                        snprintf(path + used, sizeof path - used, "%s", p->name);
                    st = nasc_error(cb->y->ctx, NASC_EINPUT, cb->y->file, p->loc,
                                    "cycle: %s", path);
                    break;
                }
            } else {
                p->state = 2;
                order[placed++] = top;
                sp--;
            }
        }
    }
    nasc_free(cb->y->ctx, stack);
    return st;
}

static const char *const cell_keys[] = {"kind", "inputs", "blocks", "nodes", "output"};
enum { CK_KIND, CK_INPUTS, CK_BLOCKS, CK_NODES, CK_OUTPUT, CK_COUNT };

static nasc_status parse_cell_kind(yl *y, const yaml_node_t *n, nasc_cell_kind *out) {
    static const char *const names[] = {"normal", "reduction", "macro", "recurrent"};
    nasc_status st = expect(y, n, YAML_SCALAR_NODE, "a cell kind");
    if (st) return st;
    for (int i = 0; i < 4; i++)
        if (seq_eq(n, names[i])) {
            *out = (nasc_cell_kind)i;
            return NASC_OK;
        }
    char hint[96];
    did_you_mean(hint, sizeof hint, sval(n), slen(n), names, 4);
    return yerr(y, n, "unknown cell kind '%.*s'%s; kinds: normal, reduction, macro, recurrent",
                SHOW(n), hint);
}

static nasc_status parse_rule(yl *y, const yaml_node_t *n, nasc_cell_kind kind,
                              nasc_out_rule *out) {
    static const char *const names[] = {"concat", "sum", "avg", "state"};
    nasc_status st = expect(y, n, YAML_SCALAR_NODE, "an output rule");
    if (st) return st;
    for (int i = 0; i < 4; i++)
        if (seq_eq(n, names[i])) {
            if (i == NASC_OUT_STATE && kind != NASC_CELL_RECURRENT)
                return yerr(y, n, "output rule 'state' is for recurrent cells only");
            *out = (nasc_out_rule)i;
            return NASC_OK;
        }
    char hint[96];
    did_you_mean(hint, sizeof hint, sval(n), slen(n), names, 4);
    return yerr(y, n, "unknown output rule '%.*s'%s; rules: concat, sum, avg, state", SHOW(n),
                hint);
}

static nasc_status build_cell(yl *y, const yaml_node_t *keyn, const yaml_node_t *body) {
    nasc_ctx *ctx = y->ctx;
    nasc_status st;
    if (!valid_cell_name(sval(keyn), slen(keyn)))
        return yerr(y, keyn, "invalid cell name '%.*s': names are letters, digits, _ and .",
                    SHOW(keyn));
    const char *name = sval(keyn);
    int prev = nasc_cell_find(y->m, name);
    if (prev >= 0)
        return yerr(y, keyn, "duplicate cell name '%s' (first defined at line %d)", name,
                    y->m->cells[prev].loc.line);
    char what[192];
    snprintf(what, sizeof what, "cell '%s'", name);
    if ((st = expect(y, body, YAML_MAPPING_NODE, what))) return st;
    yaml_node_t *k[CK_COUNT], *v[CK_COUNT];
    if ((st = read_map(y, body, what, cell_keys, CK_COUNT, k, v))) return st;

    cellb cb = {.y = y, .name = name};
    if (!v[CK_KIND])
        return yerr(y, body, "cell '%s' has no 'kind' (normal, reduction, macro or recurrent)",
                    name);
    if ((st = parse_cell_kind(y, v[CK_KIND], &cb.kind))) return st;
    bool nasnet = cb.kind == NASC_CELL_NORMAL || cb.kind == NASC_CELL_REDUCTION;
    cb.n_inputs = nasnet ? 2 : cb.kind == NASC_CELL_MACRO ? 1 : 2;
    if (v[CK_INPUTS]) {
        const yaml_node_t *in = v[CK_INPUTS];
        if (cb.kind != NASC_CELL_RECURRENT)
            return yerr(y, k[CK_INPUTS], "'inputs' is for recurrent cells only; a %s cell's "
                                         "inputs are fixed",
                        nasc_cell_kind_name(cb.kind));
        if ((st = expect(y, in, YAML_SEQUENCE_NODE, "'inputs'"))) return st;
        size_t n = seq_len(in);
        bool ok = n == 2 || n == 3;
        for (size_t i = 0; ok && i < n; i++)
            ok = seq_eq(seq_at(y, in, i), nasc_cell_input_name(NASC_CELL_RECURRENT, (uint32_t)i));
        if (!ok) return yerr(y, in, "recurrent cell inputs must be [x, h] or [x, h, c]");
        cb.n_inputs = (uint32_t)n;
    }
    if (v[CK_BLOCKS] && !nasnet)
        return yerr(y, k[CK_BLOCKS], "'blocks' are for normal and reduction cells; use 'nodes' "
                                     "in a %s cell",
                    nasc_cell_kind_name(cb.kind));
    size_t nb = 0, nn = 0, nrefs = 0;
    if (v[CK_BLOCKS]) {
        if ((st = expect(y, v[CK_BLOCKS], YAML_SEQUENCE_NODE, "'blocks'"))) return st;
        nb = seq_len(v[CK_BLOCKS]);
        nrefs += 4 * nb;
    }
    if (v[CK_NODES]) {
        if ((st = expect(y, v[CK_NODES], YAML_SEQUENCE_NODE, "'nodes'"))) return st;
        nn = seq_len(v[CK_NODES]);
        for (size_t i = 0; i < nn; i++) {
            const yaml_node_t *nd = seq_at(y, v[CK_NODES], i);
            if (nd->type != YAML_MAPPING_NODE) continue; /* read_node reports it */
            for (yaml_node_pair_t *p = nd->data.mapping.pairs.start;
                 p < nd->data.mapping.pairs.top; p++) {
                const yaml_node_t *key = get(y, p->key), *val = get(y, p->value);
                if (seq_eq(key, "in"))
                    nrefs += val->type == YAML_SEQUENCE_NODE ? seq_len(val) : 1;
            }
        }
    }
    if (3 * nb + nn > MAX_CELL_NODES || nrefs > 4 * (size_t)MAX_CELL_NODES)
        return yerr(y, body, "cell '%s' is too large", name);
    uint32_t total = (uint32_t)(3 * nb + nn);
    uint32_t tsize = 16;
    while (tsize < 2 * total) tsize *= 2;
    cb.table_mask = tsize - 1;

    uint32_t *order = NULL, *argv = NULL, *outs = NULL;
    cb.nodes = nasc_alloc(ctx, sizeof(pnode) * (total + 1));
    cb.refs = cb.nodes ? nasc_alloc(ctx, sizeof(pref) * (nrefs + 1)) : NULL;
    cb.table = cb.refs ? nasc_alloc(ctx, sizeof(uint32_t) * tsize) : NULL;
    order = cb.table ? nasc_alloc(ctx, sizeof(uint32_t) * (total + 1)) : NULL;
    if (!order) {
        st = NASC_ENOMEM;
        goto done;
    }
    memset(cb.table, 0, sizeof(uint32_t) * tsize);

    for (size_t i = 0; i < nb; i++)
        if ((st = read_block(&cb, seq_at(y, v[CK_BLOCKS], i), (uint32_t)i))) goto done;
    for (size_t i = 0; i < nn; i++)
        if ((st = read_node(&cb, seq_at(y, v[CK_NODES], i), (uint32_t)i))) goto done;

    /* Names: unique, and no node may shadow an input. */
    for (uint32_t i = 0; i < cb.n_nodes; i++) {
        pnode *p = &cb.nodes[i];
        uint32_t n_shadow = cb.kind == NASC_CELL_RECURRENT ? 3 : cb.n_inputs;
        if (input_of(&cb, p->name, p->name_len, n_shadow) >= 0) {
            st = nasc_error(ctx, NASC_EINPUT, y->file, p->loc,
                            "node name '%s' shadows an input of %s cell '%s'", p->name,
                            nasc_cell_kind_name(cb.kind), name);
            goto done;
        }
        int64_t dup = table_find(&cb, p->name, p->name_len);
        if (dup >= 0) {
            const pnode *q = &cb.nodes[dup];
            st = nasc_error(ctx, NASC_EINPUT, y->file, p->loc,
                            "duplicate node name '%s' in cell '%s' (first at line %d)%s", p->name,
                            name, q->loc.line,
                            p->generated ? "; unnamed nodes are called n<index>" : "");
            goto done;
        }
        table_insert(&cb, i);
    }
    for (uint32_t i = 0; i < cb.n_refs; i++)
        if ((st = resolve_ref(&cb, &cb.refs[i]))) goto done;
    if ((st = sort_nodes(&cb, order))) goto done;
    for (uint32_t i = 0; i < cb.n_nodes; i++) cb.nodes[order[i]].value = cb.n_inputs + i;

    /* Output rule: a scalar, or {rule, from}. */
    nasc_out_rule rule = cb.kind == NASC_CELL_RECURRENT ? NASC_OUT_AVG : NASC_OUT_CONCAT;
    const yaml_node_t *from = NULL;
    nasc_loc out_loc = node_loc(body);
    if (v[CK_OUTPUT]) {
        const yaml_node_t *o = v[CK_OUTPUT];
        out_loc = node_loc(o);
        if (o->type == YAML_MAPPING_NODE) {
            static const char *const okeys[] = {"rule", "from"};
            yaml_node_t *ok[2], *ov[2];
            char owhat[224];
            snprintf(owhat, sizeof owhat, "the output of cell '%s'", name);
            if ((st = read_map(y, o, owhat, okeys, 2, ok, ov))) goto done;
            if (ov[0] && (st = parse_rule(y, ov[0], cb.kind, &rule))) goto done;
            if (ov[1]) {
                from = ov[1];
                if ((st = expect(y, from, YAML_SEQUENCE_NODE, "'from'"))) goto done;
                if (seq_len(from) == 0) {
                    st = yerr(y, from, "'from' lists no values; leave it out for the loose ends");
                    goto done;
                }
            }
        } else if ((st = parse_rule(y, o, cb.kind, &rule))) {
            goto done;
        }
    }
    size_t n_from = from ? seq_len(from) : 0;
    uint32_t max_args = 0;
    for (uint32_t i = 0; i < cb.n_nodes; i++)
        if (cb.nodes[i].n_refs > max_args) max_args = cb.nodes[i].n_refs;
    outs = nasc_alloc(ctx, sizeof(uint32_t) * (n_from + 1));
    argv = outs ? nasc_alloc(ctx, sizeof(uint32_t) * (max_args + 1)) : NULL;
    if (!argv) {
        st = NASC_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_from; i++) {
        const yaml_node_t *f = seq_at(y, from, i);
        if ((st = expect(y, f, YAML_SCALAR_NODE, "an output value"))) goto done;
        pref r = {.kind = REF_NAME, .src = f};
        if ((st = resolve_ref(&cb, &r))) goto done;
        outs[i] = r.kind == REF_INPUT ? r.idx : cb.nodes[r.idx].value;
    }

    int ci = nasc_cell_begin(y->m, name, cb.kind, cb.n_inputs, node_loc(keyn));
    if (ci < 0) {
        st = ctx->diag.status ? ctx->diag.status : NASC_EINTERNAL;
        goto done;
    }
    for (uint32_t i = 0; i < cb.n_nodes; i++) {
        const pnode *p = &cb.nodes[order[i]];
        for (uint32_t j = 0; j < p->n_refs; j++) {
            const pref *r = &cb.refs[p->first_ref + j];
            argv[j] = r->kind == REF_INPUT ? r->idx : cb.nodes[r->idx].value;
        }
        if (nasc_cell_add_node(y->m, p->op, argv, p->n_refs, &p->attrs, p->name, p->loc) ==
            UINT32_MAX) {
            st = ctx->diag.status ? ctx->diag.status : NASC_EINTERNAL;
            goto done;
        }
    }
    if ((st = nasc_cell_set_output(y->m, rule, outs, (uint32_t)n_from))) goto done;
    y->m->cells[ci].out_loc = out_loc;
    st = nasc_cell_end(y->m);

done:
    nasc_free(ctx, outs);
    nasc_free(ctx, argv);
    nasc_free(ctx, order);
    nasc_free(ctx, cb.table);
    nasc_free(ctx, cb.refs);
    nasc_free(ctx, cb.nodes);
    return st;
}

/* ------------------------------------------------------------------ */
/* The model                                                           */
/* ------------------------------------------------------------------ */

static const char *const top_keys[] = {
    "name",           "kind",   "input",           "classes", "channels",
    "cells_per_stage", "stages", "stem_multiplier", "normal",  "reduction",
    "body",           "cell",   "cells",
};
enum {
    TK_NAME, TK_KIND, TK_INPUT, TK_CLASSES, TK_CHANNELS, TK_CELLS_PER_STAGE, TK_STAGES,
    TK_STEM_MULTIPLIER, TK_NORMAL, TK_REDUCTION, TK_BODY, TK_CELL, TK_CELLS, TK_COUNT
};
/* The skeleton keys nasc_skeleton_set knows: top_keys[TK_INPUT .. TK_STEM_MULTIPLIER]. */
#define TK_SKEL_FIRST TK_INPUT
#define TK_SKEL_LAST TK_STEM_MULTIPLIER


nasc_status nasc_yaml_apply_overrides(nasc_ctx *ctx, const char *file, nasc_skeleton *sk,
                                      const nasc_override *ov, size_t n_ov) {
    for (size_t i = 0; i < n_ov; i++) {
        const char *key = ov[i].key ? ov[i].key : "", *val = ov[i].value ? ov[i].value : "";
        char msg[256] = "";
        if (nasc_skeleton_set(sk, key, val, msg, sizeof msg) != NASC_OK)
            return nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC, "--set %s=%s: %s", key, val,
                              msg[0] ? msg : "invalid value");
    }
    return NASC_OK;
}

static bool overridden(const nasc_override *ov, size_t n_ov, const char *key) {
    for (size_t i = 0; i < n_ov; i++)
        if (ov[i].key && strcmp(ov[i].key, key) == 0) return true;
    return false;
}

/* normal/reduction/body/cell: the name of a cell of the given kind. */
static nasc_status cell_ref(yl *y, const yaml_node_t *key, const yaml_node_t *val,
                            nasc_cell_kind want, int *out) {
    nasc_status st = expect(y, val, YAML_SCALAR_NODE, "a cell reference");
    if (st) return st;
    int ci = nasc_cell_find(y->m, sval(val));
    if (ci < 0 || strlen(sval(val)) != slen(val)) {
        const char **names = nasc_alloc(y->ctx, sizeof(char *) * (y->m->n_cells + 1));
        if (!names) return NASC_ENOMEM;
        for (uint32_t i = 0; i < y->m->n_cells; i++) names[i] = nasc_str(y->m, y->m->cells[i].name);
        char hint[96];
        did_you_mean(hint, sizeof hint, sval(val), slen(val), names, y->m->n_cells);
        nasc_free(y->ctx, names);
        return yerr(y, val, "'%s' names cell '%.*s', which is not defined under 'cells'%s",
                    sval(key), SHOW(val), hint);
    }
    nasc_cell_kind got = y->m->cells[ci].kind;
    if (got != want)
        return yerr(y, val, "'%s' must name a %s cell, but cell '%s' is a %s cell", sval(key),
                    nasc_cell_kind_name(want), sval(val), nasc_cell_kind_name(got));
    *out = ci;
    return NASC_OK;
}

static nasc_status build_model(yl *y, const yaml_node_t *root, const nasc_override *ov,
                               size_t n_ov) {
    nasc_status st;
    yaml_node_t *k[TK_COUNT], *v[TK_COUNT];
    if ((st = read_map(y, root, "the model", top_keys, TK_COUNT, k, v))) return st;
    if (v[TK_NAME] && (st = expect(y, v[TK_NAME], YAML_SCALAR_NODE, "'name'"))) return st;

    nasc_net_kind kind = NASC_NET_CELLS;
    if (v[TK_KIND]) {
        static const char *const kinds[] = {"cells", "macro", "recurrent"};
        if ((st = expect(y, v[TK_KIND], YAML_SCALAR_NODE, "'kind'"))) return st;
        int i = 0;
        while (i < 3 && !seq_eq(v[TK_KIND], kinds[i])) i++;
        if (i == 3) {
            char hint[96];
            did_you_mean(hint, sizeof hint, sval(v[TK_KIND]), slen(v[TK_KIND]), kinds, 3);
            return yerr(y, v[TK_KIND], "unknown net kind '%.*s'%s; kinds: cells, macro, recurrent",
                        SHOW(v[TK_KIND]), hint);
        }
        kind = (nasc_net_kind)i;
    }
    nasc_skeleton sk = nasc_skeleton_default(kind);
    sk.loc = node_loc(root);
    for (int i = TK_SKEL_FIRST; i <= TK_SKEL_LAST; i++) {
        const yaml_node_t *val = v[i];
        if (!val) continue;
        char what[64];
        snprintf(what, sizeof what, "'%s'", top_keys[i]);
        if ((st = expect(y, val, YAML_SCALAR_NODE, what))) return st;
        if (overridden(ov, n_ov, top_keys[i])) continue;
        if (strlen(sval(val)) != slen(val))
            return yerr(y, val, "%s contains a NUL byte", what);
        char msg[256] = "";
        if (nasc_skeleton_set(&sk, top_keys[i], sval(val), msg, sizeof msg) != NASC_OK)
            return yerr(y, val, "%s", msg[0] ? msg : "invalid value");
    }
    if ((st = nasc_yaml_apply_overrides(y->ctx, y->file, &sk, ov, n_ov))) return st;

    /* Which keys name the net's cells depends on its kind. */
    static const struct {
        int key;
        nasc_net_kind net;
        nasc_cell_kind cell;
        bool required;
    } refs[] = {
        {TK_NORMAL, NASC_NET_CELLS, NASC_CELL_NORMAL, true},
        {TK_REDUCTION, NASC_NET_CELLS, NASC_CELL_REDUCTION, false},
        {TK_BODY, NASC_NET_MACRO, NASC_CELL_MACRO, true},
        {TK_CELL, NASC_NET_RECURRENT, NASC_CELL_RECURRENT, true},
    };
    static const char *const uses[] = {"'normal' (and 'reduction')", "'body'", "'cell'"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        if (refs[i].net == kind) {
            if (!v[refs[i].key] && refs[i].required)
                return yerr(y, root, "missing key '%s': a %s net names its cell%s with %s",
                            top_keys[refs[i].key], nasc_net_kind_name(kind),
                            kind == NASC_NET_CELLS ? "s" : "", uses[kind]);
        } else if (v[refs[i].key]) {
            return yerr(y, k[refs[i].key], "'%s' is for %s nets; a %s net uses %s",
                        top_keys[refs[i].key], nasc_net_kind_name(refs[i].net),
                        nasc_net_kind_name(kind), uses[kind]);
        }
    }
    if (!v[TK_CELLS]) return yerr(y, root, "missing key 'cells': the model defines no cells");
    const yaml_node_t *cells = v[TK_CELLS];
    if ((st = expect(y, cells, YAML_MAPPING_NODE, "'cells'"))) return st;
    for (yaml_node_pair_t *p = cells->data.mapping.pairs.start; p < cells->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = get(y, p->key);
        if ((st = expect(y, key, YAML_SCALAR_NODE, "a cell name"))) return st;
        if ((st = build_cell(y, key, get(y, p->value)))) return st;
    }
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        if (refs[i].net != kind || !v[refs[i].key]) continue;
        int ci = -1;
        if ((st = cell_ref(y, k[refs[i].key], v[refs[i].key], refs[i].cell, &ci))) return st;
        if (refs[i].key == TK_REDUCTION)
            sk.reduction_cell = ci;
        else
            sk.normal_cell = ci;
    }
    nasc_net_set_skeleton(y->m, &sk);
    return NASC_OK;
}

/* Line and column of a byte offset (libyaml's reader errors only give the offset). */
static nasc_loc offset_loc(const char *text, size_t len, size_t off) {
    nasc_loc l = {1, 1};
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n')
            l.line++, l.col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80)
            l.col++;
    }
    return l;
}

static nasc_status parse_error(nasc_ctx *ctx, const char *file, const yaml_parser_t *p,
                               const char *text, size_t len) {
    if (p->error == YAML_MEMORY_ERROR)
        return nasc_error(ctx, NASC_ENOMEM, file, NASC_NOLOC, "out of memory in the YAML parser");
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR)
        return nasc_error(ctx, NASC_EINPUT, file, offset_loc(text, len, p->problem_offset),
                          "YAML syntax error: %s", problem);
    if (p->context)
        return nasc_error(ctx, NASC_EINPUT, file, mark_loc(p->problem_mark),
                          "YAML syntax error: %s %s (line %d)", problem, p->context,
                          mark_loc(p->context_mark).line);
    return nasc_error(ctx, NASC_EINPUT, file, mark_loc(p->problem_mark), "YAML syntax error: %s",
                      problem);
}

/* A first pass over libyaml's events that only counts nesting, and stops at
 * the first collection deeper than NASC_YAML_MAX_DEPTH. libyaml's scanner
 * spends time proportional to the current flow depth on every token, so a
 * few hundred kB of '[' would keep the document loader busy for minutes;
 * the event stream lets us refuse such a file after a few thousand tokens.
 * Syntax errors are left to the loader, which reports them the same way. */
static nasc_status check_depth(nasc_ctx *ctx, const char *name, const char *text, size_t len) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return nasc_error(ctx, NASC_ENOMEM, name, NASC_NOLOC, "out of memory in the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    nasc_status st = NASC_OK;
    int depth = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) break; /* the loader reports it */
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > NASC_YAML_MAX_DEPTH)
                st = nasc_error(ctx, NASC_EINPUT, name, mark_loc(ev.start_mark),
                                "YAML nested more than %d levels deep (a model needs fewer than "
                                "ten; see docs/yaml-format.md)",
                                NASC_YAML_MAX_DEPTH);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (st || type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&p);
    return st;
}

nasc_status nasc_yaml_load_string(nasc_ctx *ctx, const char *text, size_t len, const char *name,
                                  const nasc_override *ov, size_t n_ov, nasc_module **out) {
    *out = NULL;
    if (!name) name = "<yaml>";
    if (!text) len = 0;
    nasc_status dst = check_depth(ctx, name, text ? text : "", len);
    if (dst) return dst;
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    if (!yaml_parser_initialize(&parser))
        return nasc_error(ctx, NASC_ENOMEM, name, NASC_NOLOC, "out of memory in the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        nasc_status st = parse_error(ctx, name, &parser, text, len);
        yaml_parser_delete(&parser);
        return st;
    }
    nasc_status st = NASC_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        st = nasc_error(ctx, NASC_EINPUT, name, (nasc_loc){1, 1},
                        "empty file: expected a YAML mapping that describes a model "
                        "(see docs/yaml-format.md)");
        goto done;
    }
    /* A second document is an error, and so is a syntax error after the first. */
    if (!yaml_parser_load(&parser, &extra)) {
        st = parse_error(ctx, name, &parser, text, len);
        goto done;
    }
    if (yaml_document_get_root_node(&extra)) {
        st = nasc_error(ctx, NASC_EINPUT, name, mark_loc(extra.start_mark),
                        "multiple documents: a model file holds exactly one YAML document");
        yaml_document_delete(&extra);
        goto done;
    }
    yaml_document_delete(&extra);
    if (root->type != YAML_MAPPING_NODE) {
        st = nasc_error(ctx, NASC_EINPUT, name, node_loc(root),
                        "not a YAML model: the top level must be a mapping with keys such as "
                        "kind, input, cells; found %s",
                        kind_phrase(root));
        goto done;
    }
    yl y = {.ctx = ctx, .file = name, .doc = &doc};
    y.m = nasc_module_create(ctx, NASC_DIALECT_ARCH, name);
    if (!y.m) {
        st = ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
        goto done;
    }
    st = build_model(&y, root, ov, n_ov);
    if (!st) st = nasc_arch_verify(y.m);
    if (st)
        nasc_module_destroy(y.m);
    else
        *out = y.m;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}
