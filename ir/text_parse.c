/* text_parse.c - the parser of the textual IR (docs/text-ir.md).
 *
 * A hand-written scanner over (text, len): it never reads past len, so
 * embedded NULs and unterminated input are ordinary bad bytes. Newlines end
 * statements; blank lines and `#` comments are skipped. The grammar has no
 * nesting, so nothing recurses.
 *
 * Modules are built only through the public builder (nasc_cell_*,
 * nasc_prim_add_*), which owns type inference and structural checks. The
 * parser checks what it can first so that the diagnostic points at the token
 * (file:line:col), and gives builder diagnostics that lack a location the
 * location of the statement. After the last statement the module is verified.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

/* ------------------------------------------------------------ symbols */

/* Open-addressing map from a name (pointer into the text) to a value id. */
typedef struct sym {
    const char *s; /* NULL: empty slot */
    uint32_t len;
    uint32_t val;
} sym;

typedef struct symtab {
    sym *slots;
    uint32_t cap, n; /* cap is a power of two or 0 */
} symtab;

static uint32_t hash_name(const char *s, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static sym *sym_slot(const symtab *t, const char *s, uint32_t len) {
    uint32_t i = hash_name(s, len) & (t->cap - 1);
    for (;;) {
        sym *e = &t->slots[i];
        if (!e->s || (e->len == len && memcmp(e->s, s, len) == 0)) return e;
        i = (i + 1) & (t->cap - 1);
    }
}

static bool sym_find(const symtab *t, const char *s, uint32_t len, uint32_t *val) {
    if (!t->cap) return false;
    const sym *e = sym_slot(t, s, len);
    if (!e->s) return false;
    *val = e->val;
    return true;
}

/* Adds a name known to be absent; false when out of memory. */
static bool sym_add(nasc_ctx *ctx, symtab *t, const char *s, uint32_t len, uint32_t val) {
    if ((t->n + 1) * 2 > t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        sym *slots = nasc_alloc(ctx, (size_t)cap * sizeof *slots);
        if (!slots) return false;
        memset(slots, 0, (size_t)cap * sizeof *slots);
        symtab nt = {slots, cap, 0};
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->slots[i].s) *sym_slot(&nt, t->slots[i].s, t->slots[i].len) = t->slots[i];
        nasc_free(ctx, t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    sym *e = sym_slot(t, s, len);
    e->s = s;
    e->len = len;
    e->val = val;
    t->n++;
    return true;
}

static void sym_clear(symtab *t) {
    if (t->cap) memset(t->slots, 0, (size_t)t->cap * sizeof *t->slots);
    t->n = 0;
}

/* ------------------------------------------------------------- parser */

typedef struct parser {
    nasc_ctx *ctx;
    const char *file;
    const char *p, *end;
    const char *line_start;
    int line;
    nasc_module *m;
    symtab vals;  /* values of the current cell, or of the prim module */
    symtab cells; /* cell names -> cell index */
    nasc_loc end_loc; /* where verifier errors without a location are reported */
    char *name;   /* NUL-terminated copies handed to the builder */
    size_t name_cap;
    char *group;
    size_t group_cap;
    uint32_t *args; /* operands of the current statement */
    nasc_type *types;
    size_t args_cap;
} parser;

typedef struct token {
    const char *s;
    uint32_t len;
    nasc_loc loc;
} token;

static nasc_loc here(const parser *P) {
    ptrdiff_t col = P->p - P->line_start + 1;
    return (nasc_loc){P->line, col > INT_MAX ? INT_MAX : (int)col};
}

static nasc_status perr(parser *P, nasc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nasc_status perr(parser *P, nasc_loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nasc_verror(P->ctx, NASC_EINPUT, P->file, loc, fmt, ap);
    va_end(ap);
    return NASC_EINPUT;
}

/* The status of a failed builder call, with our location when it has none. */
static nasc_status builder_fail(parser *P, nasc_loc loc) {
    nasc_diag *d = &P->ctx->diag;
    if (d->status == NASC_OK)
        return nasc_error(P->ctx, NASC_EINTERNAL, P->file, loc, "the IR builder failed");
    if (d->status != NASC_ENOMEM && d->line == 0) {
        d->line = loc.line;
        d->col = loc.col;
        if (!d->file[0]) snprintf(d->file, sizeof d->file, "%s", P->file);
    }
    return d->status;
}

static bool eof(const parser *P) { return P->p >= P->end; }

/* Skip blanks and a comment on the current line (not the newline). */
static void ws(parser *P) {
    while (P->p < P->end) {
        char c = *P->p;
        if (c == ' ' || c == '\t' || c == '\r') {
            P->p++;
        } else if (c == '#') {
            while (P->p < P->end && *P->p != '\n') P->p++;
        } else {
            break;
        }
    }
}

static void newline(parser *P) {
    P->p++;
    P->line++;
    P->line_start = P->p;
}

/* Skip blank lines and comment lines. */
static void blank(parser *P) {
    for (;;) {
        ws(P);
        if (P->p < P->end && *P->p == '\n')
            newline(P);
        else
            return;
    }
}

static bool at_eol(parser *P) {
    ws(P);
    return eof(P) || *P->p == '\n';
}

/* A short description of what stands at the cursor, for "found ..." */
static const char *found(parser *P, char *buf, size_t size) {
    ws(P);
    const char *q = P->p;
    if (q >= P->end) return "end of file";
    unsigned char c = (unsigned char)*q;
    if (c == '\n') return "end of line";
    const char *e = q;
    if (c == '%' || c == '@') e++;
    while (e < P->end && nasc_text_name_char((unsigned char)*e)) e++;
    if (e > q + 1 || (e == q + 1 && nasc_text_name_char(c))) {
        size_t n = (size_t)(e - q);
        if (n > 48)
            snprintf(buf, size, "'%.48s...'", q);
        else
            snprintf(buf, size, "'%.*s'", (int)n, q);
    } else if (c >= 32 && c < 127) {
        snprintf(buf, size, "'%c'", c);
    } else {
        snprintf(buf, size, "byte 0x%02x", c);
    }
    return buf;
}

/* "expected WHAT, found X" at the cursor. */
static nasc_status expected(parser *P, const char *what) {
    char buf[64];
    const char *f = found(P, buf, sizeof buf);
    return perr(P, here(P), "expected %s, found %s", what, f);
}

static bool accept(parser *P, char c) {
    ws(P);
    if (P->p < P->end && *P->p == c) {
        P->p++;
        return true;
    }
    return false;
}

static nasc_status expect_char(parser *P, char c, const char *what) {
    if (accept(P, c)) return NASC_OK;
    return expected(P, what);
}

/* End of a statement: the rest of the line must be empty. */
static nasc_status eol(parser *P, const char *after) {
    if (!at_eol(P)) {
        char what[96];
        snprintf(what, sizeof what, "end of line after %s", after);
        return expected(P, what);
    }
    blank(P);
    return NASC_OK;
}

/* A bare word of name characters (keywords, ops, kinds); len 0 if none. */
static token word(parser *P) {
    ws(P);
    token t = {P->p, 0, here(P)};
    while (P->p < P->end && nasc_text_name_char((unsigned char)*P->p)) P->p++;
    t.len = (uint32_t)(P->p - t.s);
    return t;
}

static bool tok_is(token t, const char *s) { return t.len == strlen(s) && !memcmp(t.s, s, t.len); }

/* sigil + name; t.s/t.len exclude the sigil, t.loc is the sigil's. */
static nasc_status sigil_name(parser *P, char sigil, const char *what, token *t) {
    ws(P);
    t->loc = here(P);
    const char *q = P->p;
    if (q < P->end && *q == sigil && q + 1 < P->end && nasc_text_name_char((unsigned char)q[1])) {
        q++;
        t->s = q;
        while (q < P->end && nasc_text_name_char((unsigned char)*q)) q++;
        if ((size_t)(q - t->s) >= UINT32_MAX / 2)
            return perr(P, t->loc, "name is too long");
        t->len = (uint32_t)(q - t->s);
        P->p = q;
        return NASC_OK;
    }
    return expected(P, what);
}

/* A decimal integer with an optional '-', within [lo, hi]. */
static nasc_status integer(parser *P, const char *what, int64_t lo, int64_t hi, int64_t *out) {
    ws(P);
    nasc_loc loc = here(P);
    const char *q = P->p;
    bool neg = q < P->end && *q == '-';
    if (neg) q++;
    if (q >= P->end || *q < '0' || *q > '9') return expected(P, what);
    uint64_t v = 0;
    bool over = false;
    const char *start = P->p;
    for (; q < P->end && *q >= '0' && *q <= '9'; q++) {
        if (v > (UINT64_MAX - 9) / 10) over = true;
        if (!over) v = v * 10 + (uint64_t)(*q - '0');
    }
    P->p = q;
    int n = (int)(q - start > 40 ? 40 : q - start);
    const char *more = q - start > 40 ? "..." : "";
    if (over || v > (uint64_t)INT64_MAX || (!neg && (int64_t)v > hi))
        return perr(P, loc, "integer '%.*s%s' is too large (at most %lld)", n, start, more,
                    (long long)hi);
    int64_t s = neg ? -(int64_t)v : (int64_t)v;
    if (s < lo)
        return perr(P, loc, "integer '%.*s%s' is too small (at least %lld)", n, start, more,
                    (long long)lo);
    *out = s;
    return NASC_OK;
}

static nasc_status int32v(parser *P, const char *what, int *out) {
    int64_t v;
    nasc_status st = integer(P, what, INT_MIN, INT_MAX, &v);
    if (!st) *out = (int)v;
    return st;
}

/* "AxB" */
static nasc_status pair_x(parser *P, const char *what, int *a, int *b) {
    nasc_status st = int32v(P, what, a);
    if (st) return st;
    if (P->p >= P->end || *P->p != 'x') {
        char e[96];
        snprintf(e, sizeof e, "'x' in %s", what);
        return expected(P, e);
    }
    P->p++;
    return int32v(P, what, b);
}

/* Copy a token into a NUL-terminated buffer for the builder. */
static const char *cstr(parser *P, char **buf, size_t *cap, token t) {
    if ((size_t)t.len + 1 > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < (size_t)t.len + 1) nc *= 2;
        char *nb = nasc_realloc(P->ctx, *buf, nc);
        if (!nb) return NULL;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf, t.s, t.len);
    (*buf)[t.len] = 0;
    return *buf;
}

static nasc_status reserve_args(parser *P, size_t n) {
    if (n <= P->args_cap) return NASC_OK;
    size_t nc = P->args_cap ? P->args_cap * 2 : 16;
    while (nc < n) nc *= 2;
    uint32_t *a = nasc_realloc(P->ctx, P->args, nc * sizeof *a);
    if (!a) return NASC_ENOMEM;
    P->args = a;
    nasc_type *t = nasc_realloc(P->ctx, P->types, nc * sizeof *t);
    if (!t) return NASC_ENOMEM;
    P->types = t;
    P->args_cap = nc;
    return NASC_OK;
}

/* A value reference: %name that is already defined. */
static nasc_status use(parser *P, const char *what, uint32_t *val, nasc_loc *loc) {
    token t;
    nasc_status st = sigil_name(P, '%', what, &t);
    if (st) return st;
    if (loc) *loc = t.loc;
    if (!sym_find(&P->vals, t.s, t.len, val))
        return perr(P, t.loc, "use of undefined value '%%%.*s'", t.len > 64 ? 64 : (int)t.len,
                    t.s);
    return NASC_OK;
}

static nasc_status define(parser *P, token t, uint32_t val) {
    if (!sym_add(P->ctx, &P->vals, t.s, t.len, val)) return NASC_ENOMEM;
    return NASC_OK;
}

static nasc_status check_fresh(parser *P, token t) {
    uint32_t v;
    if (sym_find(&P->vals, t.s, t.len, &v))
        return perr(P, t.loc, "duplicate name '%%%.*s'", t.len > 64 ? 64 : (int)t.len, t.s);
    return NASC_OK;
}

/* "a, b or c" lists of names for messages. */
static void name_list(char *buf, size_t size, const char *(*fn)(int), int n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < size; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        int w = snprintf(buf + k, size - k, "%s%s", sep, fn(i));
        if (w < 0) break;
        k += (size_t)w;
    }
}

static const char *net_kind_i(int i) { return nasc_net_kind_name((nasc_net_kind)i); }
static const char *cell_kind_i(int i) { return nasc_cell_kind_name((nasc_cell_kind)i); }
static const char *out_rule_i(int i) { return nasc_out_rule_name((nasc_out_rule)i); }

/* Index of a word among n names given by fn, -1 when none. */
static int lookup_kw(token t, const char *(*fn)(int), int n) {
    for (int i = 0; i < n; i++)
        if (tok_is(t, fn(i))) return i;
    return -1;
}

/* ---------------------------------------------------------------- arch */

enum { SK_KIND, SK_INPUT, SK_CLASSES, SK_CHANNELS, SK_CPS, SK_STAGES, SK_STEM, SK_NORMAL,
       SK_REDUCTION, SK_COUNT };
static const char *const sk_keys[SK_COUNT] = {"kind",   "input",           "classes",
                                              "channels", "cells_per_stage", "stages",
                                              "stem_multiplier", "normal", "reduction"};

typedef struct skel_text {
    bool set[SK_COUNT];
    nasc_skeleton sk;
    token cell_ref[2]; /* normal, reduction */
    nasc_loc loc;
} skel_text;

static nasc_status parse_skeleton(parser *P, skel_text *S) {
    nasc_status st = expect_char(P, '{', "'{' after 'arch'");
    if (!st) st = eol(P, "'{'");
    if (st) return st;
    nasc_skeleton *sk = &S->sk;
    int *ints[] = {NULL, NULL, &sk->classes, &sk->channels, &sk->cells_per_stage, &sk->stages,
                   &sk->stem_multiplier};
    for (;;) {
        if (accept(P, '}')) return eol(P, "'}'");
        token k = word(P);
        if (k.len == 0) return expected(P, "a skeleton key or '}'");
        int key = -1;
        for (int i = 0; i < SK_COUNT; i++)
            if (tok_is(k, sk_keys[i])) key = i;
        if (key < 0)
            return perr(P, k.loc, "unknown skeleton key '%.*s'", k.len > 64 ? 64 : (int)k.len,
                        k.s);
        if (S->set[key]) return perr(P, k.loc, "duplicate skeleton key '%s'", sk_keys[key]);
        S->set[key] = true;
        if (key == SK_KIND) {
            token v = word(P);
            int kind = lookup_kw(v, net_kind_i, 3);
            if (kind < 0) {
                char list[96];
                name_list(list, sizeof list, net_kind_i, 3);
                char what[128];
                snprintf(what, sizeof what, "a net kind (%s)", list);
                P->p = v.s;
                return expected(P, what);
            }
            sk->kind = (nasc_net_kind)kind;
        } else if (key == SK_INPUT) {
            if ((st = int32v(P, "the input size", &sk->in_c))) return st;
            if (P->p < P->end && *P->p == 'x') {
                P->p++;
                if ((st = pair_x(P, "the input size (CxHxW)", &sk->in_h, &sk->in_w))) return st;
            } else {
                sk->in_h = sk->in_w = 1;
            }
        } else if (key == SK_NORMAL || key == SK_REDUCTION) {
            if ((st = sigil_name(P, '@', "a cell name", &S->cell_ref[key - SK_NORMAL])))
                return st;
        } else {
            if ((st = int32v(P, "an integer", ints[key]))) return st;
        }
        if ((st = eol(P, "the skeleton value"))) return st;
    }
}

/* Node attributes {kernel=KHxKW, filters=N, stride=S, dilation=DHxDW, groups=G}. */
static nasc_status parse_node_attrs(parser *P, nasc_op op, nasc_node_attrs *a) {
    const nasc_arch_op_info *info = nasc_arch_op_info_get(op);
    static const char *const names[5] = {"kernel", "filters", "stride", "dilation", "groups"};
    static const unsigned bits[5] = {NASC_ATTR_KERNEL, NASC_ATTR_FILTERS, NASC_ATTR_STRIDE, NASC_ATTR_DILATION,
                                     NASC_ATTR_GROUPS};
    unsigned seen = 0;
    nasc_status st;
    for (;;) {
        token k = word(P);
        if (k.len == 0) return expected(P, "an attribute name");
        int i = -1;
        for (int j = 0; j < 5; j++)
            if (tok_is(k, names[j])) i = j;
        if (i < 0)
            return perr(P, k.loc, "unknown attribute '%.*s'", k.len > 64 ? 64 : (int)k.len, k.s);
        if (!(info->attrs & bits[i]))
            return perr(P, k.loc, "op '%s' does not take attribute '%s'", info->name, names[i]);
        if (seen & bits[i]) return perr(P, k.loc, "duplicate attribute '%s'", names[i]);
        seen |= bits[i];
        if ((st = expect_char(P, '=', "'=' after the attribute name"))) return st;
        if (i == 0)
            st = pair_x(P, "the kernel size (KHxKW)", &a->kh, &a->kw);
        else if (i == 3)
            st = pair_x(P, "the dilation (DHxDW)", &a->dh, &a->dw);
        else
            st = int32v(P, "an integer", i == 1 ? &a->filters : i == 2 ? &a->stride : &a->groups);
        if (st) return st;
        if (accept(P, '}')) return NASC_OK;
        if ((st = expect_char(P, ',', "',' or '}' after the attribute"))) return st;
    }
}

static nasc_status arity_error(parser *P, nasc_loc loc, const char *op, int arity, uint32_t n) {
    if (arity < 0) return perr(P, loc, "op '%s' takes one or more operands, found %u", op, n);
    return perr(P, loc, "op '%s' takes %d operand%s, found %u", op, arity, arity == 1 ? "" : "s",
                n);
}

static bool domain_ok(const nasc_arch_op_info *info, nasc_cell_kind kind) {
    int need = kind == NASC_CELL_RECURRENT ? NASC_DOM_RNN : NASC_DOM_CNN;
    return (info->domain & need) != 0;
}

/* %name = op %a, %b {attrs} */
static nasc_status parse_node(parser *P, nasc_cell_kind kind, uint32_t *n_values) {
    token name;
    nasc_status st = sigil_name(P, '%', "a node or 'out'", &name);
    if (st || (st = check_fresh(P, name))) return st;
    if ((st = expect_char(P, '=', "'=' after the node name"))) return st;
    token opt = word(P);
    if (opt.len == 0) return expected(P, "an op name");
    int op = nasc_arch_op_from_name(opt.s, opt.len);
    if (op < 0)
        return perr(P, opt.loc, "unknown op '%.*s'", opt.len > 64 ? 64 : (int)opt.len, opt.s);
    const nasc_arch_op_info *info = nasc_arch_op_info_get((nasc_op)op);
    if (!domain_ok(info, kind))
        return perr(P, opt.loc, "op '%s' cannot be used in a %s cell", info->name,
                    nasc_cell_kind_name(kind));
    const char *after = info->attrs ? "',', '{' or end of line after operand"
                                    : "',' or end of line after operand";
    uint32_t n = 0;
    nasc_node_attrs attrs = {0, 0, 0, 0, 0, 0, 0};
    for (;;) {
        if ((st = reserve_args(P, (size_t)n + 1))) return st;
        if ((st = use(P, "an operand", &P->args[n], NULL))) return st;
        n++;
        if (accept(P, ',')) continue;
        if (at_eol(P)) break;
        if (info->attrs && accept(P, '{')) {
            if ((st = parse_node_attrs(P, (nasc_op)op, &attrs))) return st;
            break;
        }
        return expected(P, after);
    }
    if (info->arity >= 0 ? n != (uint32_t)info->arity : n == 0)
        return arity_error(P, opt.loc, info->name, info->arity, n);
    if (op == NASC_OP_CONV && (!attrs.kh || !attrs.kw))
        return perr(P, opt.loc, "op 'conv' needs attribute 'kernel'");
    if (op == NASC_OP_CONV && !attrs.filters)
        return perr(P, opt.loc, "op 'conv' needs attribute 'filters'");
    if ((st = eol(P, "the node"))) return st;
    const char *cname = cstr(P, &P->name, &P->name_cap, name);
    if (!cname) return NASC_ENOMEM;
    if (nasc_cell_add_node(P->m, (nasc_op)op, P->args, n, &attrs, cname, name.loc) == UINT32_MAX)
        return builder_fail(P, name.loc);
    if ((st = define(P, name, *n_values))) return st;
    (*n_values)++;
    return NASC_OK;
}

static nasc_status parse_cell(parser *P, token kw) {
    token cn;
    nasc_status st = sigil_name(P, '@', "a cell name after 'cell'", &cn);
    if (st) return st;
    uint32_t dup;
    if (sym_find(&P->cells, cn.s, cn.len, &dup))
        return perr(P, cn.loc, "duplicate cell '@%.*s'", cn.len > 64 ? 64 : (int)cn.len, cn.s);
    token kt = word(P);
    int kind = lookup_kw(kt, cell_kind_i, 4);
    if (kind < 0) {
        char list[96], what[128];
        name_list(list, sizeof list, cell_kind_i, 4);
        snprintf(what, sizeof what, "a cell kind (%s)", list);
        P->p = kt.s;
        return expected(P, what);
    }
    uint32_t lo = kind == NASC_CELL_MACRO ? 1 : 2;
    uint32_t hi = kind == NASC_CELL_MACRO ? 1 : kind == NASC_CELL_RECURRENT ? 3 : 2;
    char sig[40] = "(";
    for (uint32_t i = 0; i < hi; i++) {
        size_t k = strlen(sig);
        snprintf(sig + k, sizeof sig - k, "%s%s%%%s%s", i == lo ? "[" : "", i ? ", " : "",
                 nasc_cell_input_name((nasc_cell_kind)kind, i), i + 1 == hi && hi > lo ? "]" : "");
    }
    strncat(sig, ")", sizeof sig - strlen(sig) - 1);
    if ((st = expect_char(P, '(', "'(' before the cell inputs"))) return st;
    sym_clear(&P->vals);
    uint32_t n_in = 0;
    for (;;) {
        token in;
        if ((st = sigil_name(P, '%', "an input name", &in))) return st;
        if (n_in >= hi)
            return perr(P, in.loc, "too many inputs: a %s cell has inputs %s",
                        nasc_cell_kind_name((nasc_cell_kind)kind), sig);
        const char *want = nasc_cell_input_name((nasc_cell_kind)kind, n_in);
        if (!tok_is(in, want))
            return perr(P, in.loc, "expected input '%%%s' (a %s cell has inputs %s), found '%%%.*s'",
                        want, nasc_cell_kind_name((nasc_cell_kind)kind), sig,
                        in.len > 64 ? 64 : (int)in.len, in.s);
        if ((st = define(P, in, n_in))) return st;
        n_in++;
        if (accept(P, ',')) continue;
        nasc_loc close = here(P);
        if ((st = expect_char(P, ')', "',' or ')' after the input"))) return st;
        if (n_in < lo)
            return perr(P, close, "missing inputs: a %s cell has inputs %s",
                        nasc_cell_kind_name((nasc_cell_kind)kind), sig);
        break;
    }
    if ((st = expect_char(P, '{', "'{' after the cell inputs"))) return st;
    if ((st = eol(P, "'{'"))) return st;
    const char *name = cstr(P, &P->name, &P->name_cap, cn);
    if (!name) return NASC_ENOMEM;
    int idx = nasc_cell_begin(P->m, name, (nasc_cell_kind)kind, n_in, kw.loc);
    if (idx < 0) return builder_fail(P, kw.loc);
    if (!sym_add(P->ctx, &P->cells, cn.s, cn.len, (uint32_t)idx)) return NASC_ENOMEM;
    uint32_t n_values = n_in;
    for (;;) {
        ws(P);
        if (P->p < P->end && *P->p == '%') {
            if ((st = parse_node(P, (nasc_cell_kind)kind, &n_values))) return st;
            continue;
        }
        token k = word(P);
        if (!tok_is(k, "out")) {
            P->p = k.s;
            return expected(P, "a node or 'out'");
        }
        token rt = word(P);
        int rule = lookup_kw(rt, out_rule_i, 4);
        if (rule < 0) {
            char list[96], what[128];
            name_list(list, sizeof list, out_rule_i, 4);
            snprintf(what, sizeof what, "an output rule (%s)", list);
            P->p = rt.s;
            return expected(P, what);
        }
        uint32_t n = 0;
        while (!at_eol(P)) {
            if ((st = reserve_args(P, (size_t)n + 1))) return st;
            if ((st = use(P, "an output value", &P->args[n], NULL))) return st;
            n++;
            if (at_eol(P)) break;
            if ((st = expect_char(P, ',', "',' or end of line after output value"))) return st;
        }
        if ((st = eol(P, "the outputs"))) return st;
        if ((uint32_t)idx < P->m->n_cells) P->m->cells[idx].out_loc = k.loc;
        if (nasc_cell_set_output(P->m, (nasc_out_rule)rule, P->args, n))
            return builder_fail(P, k.loc);
        nasc_loc close = here(P);
        if ((st = expect_char(P, '}', "'}' after 'out'"))) return st;
        if (nasc_cell_end(P->m)) return builder_fail(P, close);
        return eol(P, "'}'");
    }
}

static nasc_status parse_arch(parser *P, token kw) {
    skel_text S;
    memset(&S, 0, sizeof S);
    S.loc = kw.loc;
    nasc_status st = parse_skeleton(P, &S);
    if (st) return st;
    for (;;) {
        blank(P);
        if (eof(P)) break;
        token k = word(P);
        if (!tok_is(k, "cell")) {
            P->p = k.s;
            return expected(P, "'cell' or end of file");
        }
        if ((st = parse_cell(P, k))) return st;
    }
    bool any = false;
    for (int i = 0; i < SK_COUNT; i++) any |= S.set[i];
    if (!any) return NASC_OK; /* `arch {}`: no skeleton */
    nasc_skeleton sk = nasc_skeleton_default(S.set[SK_KIND] ? S.sk.kind : NASC_NET_CELLS);
    if (S.set[SK_INPUT]) sk.in_c = S.sk.in_c, sk.in_h = S.sk.in_h, sk.in_w = S.sk.in_w;
    if (S.set[SK_CLASSES]) sk.classes = S.sk.classes;
    if (S.set[SK_CHANNELS]) sk.channels = S.sk.channels;
    if (S.set[SK_CPS]) sk.cells_per_stage = S.sk.cells_per_stage;
    if (S.set[SK_STAGES]) sk.stages = S.sk.stages;
    if (S.set[SK_STEM]) sk.stem_multiplier = S.sk.stem_multiplier;
    sk.normal_cell = sk.reduction_cell = -1;
    for (int i = 0; i < 2; i++) {
        if (!S.set[SK_NORMAL + i]) continue;
        token t = S.cell_ref[i];
        uint32_t idx;
        if (!sym_find(&P->cells, t.s, t.len, &idx))
            return perr(P, t.loc, "use of undefined cell '@%.*s'", t.len > 64 ? 64 : (int)t.len,
                        t.s);
        *(i == 0 ? &sk.normal_cell : &sk.reduction_cell) = (int)idx;
    }
    sk.loc = S.loc;
    P->ctx->diag.status = NASC_OK; /* set_skeleton reports failure only in the diagnostic */
    nasc_net_set_skeleton(P->m, &sk);
    if (P->ctx->diag.status != NASC_OK) return builder_fail(P, S.loc);
    return NASC_OK;
}

/* ---------------------------------------------------------------- prim */

static nasc_status parse_type(parser *P, nasc_type *t, nasc_loc *loc) {
    ws(P);
    if (loc) *loc = here(P);
    token d = word(P);
    if (!tok_is(d, "f32")) {
        P->p = d.s;
        return expected(P, "a type (f32[...])");
    }
    memset(t, 0, sizeof *t);
    t->dtype = NASC_F32;
    nasc_status st = expect_char(P, '[', "'[' after 'f32'");
    if (st) return st;
    if (accept(P, ']')) return NASC_OK;
    for (;;) {
        ws(P);
        nasc_loc dl = here(P);
        int64_t v;
        if (P->p < P->end && *P->p == 'N' &&
            !(P->p + 1 < P->end && nasc_text_name_char((unsigned char)P->p[1]))) {
            P->p++;
            v = NASC_BATCH;
        } else if ((st = integer(P, "a dimension (an integer or N)", 0, INT64_MAX, &v))) {
            return st;
        }
        if (t->rank == NASC_MAX_RANK)
            return perr(P, dl, "a type has at most %d dimensions", NASC_MAX_RANK);
        t->dims[t->rank++] = v;
        if (accept(P, ']')) return NASC_OK;
        if ((st = expect_char(P, ',', "',' or ']' in the type"))) return st;
    }
}

/* shape=D0xD1x... with N for a batch first dim (reshape). */
static nasc_status shape_attr(parser *P, nasc_prim_attrs *a) {
    a->shape_rank = 0;
    for (;;) {
        ws(P);
        nasc_loc dl = here(P);
        int64_t v;
        nasc_status st;
        if (P->p < P->end && *P->p == 'N' && a->shape_rank == 0 &&
            (P->p + 1 >= P->end || P->p[1] == 'x' || !nasc_text_name_char((unsigned char)P->p[1]))) {
            P->p++;
            v = NASC_BATCH;
        } else if ((st = integer(P, "a dimension (an integer, or N first)", 1, INT64_MAX, &v))) {
            return st;
        }
        if (a->shape_rank == NASC_MAX_RANK) return perr(P, dl, "a shape has at most %d dimensions", NASC_MAX_RANK);
        a->shape[a->shape_rank++] = v;
        if (P->p >= P->end || *P->p != 'x') return NASC_OK;
        P->p++;
    }
}

/* begin=B0xB1x... (slice): indices >= 0, one per dim; dims left out
 * begin at 0. */
static nasc_status begin_attr(parser *P, nasc_prim_attrs *a) {
    for (int k = 0;; k++) {
        ws(P);
        nasc_loc dl = here(P);
        if (k == NASC_MAX_RANK) return perr(P, dl, "begin has at most %d indices", NASC_MAX_RANK);
        nasc_status st = integer(P, "an index (an integer >= 0)", 0, INT64_MAX, &a->begin[k]);
        if (st) return st;
        if (P->p >= P->end || *P->p != 'x') return NASC_OK;
        P->p++;
    }
}

/* A number after "name=" (eps, alpha), as strtod reads it. */
static nasc_status float_attr(parser *P, const char *name, float *out) {
    nasc_loc el = here(P);
    const char *q = P->p;
    while (q < P->end && (nasc_text_name_char((unsigned char)*q) || *q == '+' || *q == '-')) q++;
    char num[64];
    size_t n = (size_t)(q - P->p);
    if (n == 0) {
        char what[48];
        snprintf(what, sizeof what, "a number after '%s='", name);
        return expected(P, what);
    }
    if (n >= sizeof num) return perr(P, el, "number after '%s=' is too long", name);
    memcpy(num, P->p, n);
    num[n] = 0;
    char *endp;
    double d = strtod(num, &endp);
    if (*endp || endp == num) return perr(P, el, "bad number '%s' after '%s='", num, name);
    *out = (float)d;
    P->p = q;
    return NASC_OK;
}

static nasc_status parse_prim_attrs(parser *P, nasc_prim_op op, nasc_prim_attrs *a) {
    static const char *const names[] = {"kernel", "stride", "pad", "dilation", "groups", "axis",
                                        "count_include_pad", "eps", "offset", "trans", "shape",
                                        "index", "alpha", "begin"};
    enum { N_NAMES = sizeof names / sizeof names[0] };
    const nasc_prim_op_info *info = nasc_prim_op_info_get(op);
    unsigned seen = 0;
    nasc_status st;
    for (;;) {
        token k = word(P);
        if (k.len == 0) return expected(P, "an attribute name");
        int i = -1;
        for (int j = 0; j < N_NAMES; j++)
            if (tok_is(k, names[j])) i = j;
        if (i < 0)
            return perr(P, k.loc, "unknown attribute '%.*s'", k.len > 64 ? 64 : (int)k.len, k.s);
        unsigned bit = 1u << i;
        if (!(info->attrs & (bit | NASC_PATTR_OPT(bit))))
            return perr(P, k.loc, "op '%s' does not take attribute '%s'", info->name, names[i]);
        if (seen & bit) return perr(P, k.loc, "duplicate attribute '%s'", names[i]);
        seen |= bit;
        if ((st = expect_char(P, '=', "'=' after the attribute name"))) return st;
        ws(P);
        switch (bit) {
        case NASC_PATTR_KERNEL: st = pair_x(P, "the kernel size (KHxKW)", &a->kh, &a->kw); break;
        case NASC_PATTR_STRIDE: st = pair_x(P, "the strides (SHxSW)", &a->sh, &a->sw); break;
        case NASC_PATTR_DILATION: st = pair_x(P, "the dilation (DHxDW)", &a->dh, &a->dw); break;
        case NASC_PATTR_GROUPS: st = int32v(P, "an integer", &a->groups); break;
        case NASC_PATTR_AXIS: st = int32v(P, "an integer", &a->axis); break;
        case NASC_PATTR_COUNT_PAD: st = int32v(P, "an integer", &a->count_include_pad); break;
        case NASC_PATTR_PAD: {
            int *pads[4] = {&a->pt, &a->pl, &a->pb, &a->pr};
            for (int j = 0; j < 4 && !st; j++) {
                if (j && (st = expect_char(P, ',', "',' in pad=T,L,B,R"))) break;
                st = int32v(P, "a pad (pad=T,L,B,R)", pads[j]);
            }
            break;
        }
        case NASC_PATTR_TRANS:
            st = int32v(P, "a transpose flag (trans=A,B)", &a->trans_a);
            if (!st) st = expect_char(P, ',', "',' in trans=A,B");
            if (!st) st = int32v(P, "a transpose flag (trans=A,B)", &a->trans_b);
            break;
        case NASC_PATTR_SHAPE: st = shape_attr(P, a); break;
        case NASC_PATTR_OFFSET:
            st = int32v(P, "an offset (offset=DY,DX)", &a->dy);
            if (!st) st = expect_char(P, ',', "',' in offset=DY,DX");
            if (!st) st = int32v(P, "an offset (offset=DY,DX)", &a->dx);
            break;
        case NASC_PATTR_INDEX: st = int32v(P, "an integer", &a->index); break;
        case NASC_PATTR_ALPHA: st = float_attr(P, "alpha", &a->alpha); break;
        case NASC_PATTR_EPS: st = float_attr(P, "eps", &a->eps); break;
        case NASC_PATTR_BEGIN: st = begin_attr(P, a); break;
        }
        if (st) return st;
        if (accept(P, '}')) return NASC_OK;
        if ((st = expect_char(P, ',', "',' or '}' after the attribute"))) return st;
    }
}

static bool type_eq(const nasc_type *a, const nasc_type *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

static nasc_status parse_prim_op(parser *P, token gname) {
    token name;
    nasc_status st = sigil_name(P, '%', "an op", &name);
    if (st || (st = check_fresh(P, name))) return st;
    if ((st = expect_char(P, '=', "'=' after the value name"))) return st;
    token opt = word(P);
    if (opt.len == 0) return expected(P, "an op name");
    int op = nasc_prim_op_from_name(opt.s, opt.len);
    if (op < 0)
        return perr(P, opt.loc, "unknown op '%.*s'", opt.len > 64 ? 64 : (int)opt.len, opt.s);
    const nasc_prim_op_info *info = nasc_prim_op_info_get((nasc_prim_op)op);
    const char *after = info->attrs ? "',', '{' or ':' after operand" : "',' or ':' after operand";
    uint32_t n = 0;
    nasc_prim_attrs a = nasc_prim_attrs_default();
    for (;;) {
        if ((st = reserve_args(P, (size_t)n + 1))) return st;
        if ((st = use(P, "an operand", &P->args[n], NULL))) return st;
        P->types[n] = P->m->values[P->args[n]].type;
        n++;
        if (accept(P, ',')) continue;
        ws(P);
        if (P->p < P->end && *P->p == ':') break;
        if (info->attrs && accept(P, '{')) {
            if ((st = parse_prim_attrs(P, (nasc_prim_op)op, &a))) return st;
            break;
        }
        return expected(P, after);
    }
    if (info->arity >= 0 ? n != (uint32_t)info->arity : n == 0)
        return arity_error(P, opt.loc, info->name, info->arity, n);
    if ((st = expect_char(P, ':', "':' and the result type"))) return st;
    nasc_type written, inferred;
    nasc_loc tloc;
    if ((st = parse_type(P, &written, &tloc))) return st;
    if ((st = eol(P, "the op"))) return st;
    char msg[256] = "";
    if (nasc_prim_infer((nasc_prim_op)op, &a, P->types, n, &inferred, msg, sizeof msg))
        return perr(P, name.loc, "%s '%%%.*s': %s", info->name, name.len > 64 ? 64 : (int)name.len,
                    name.s, msg[0] ? msg : "operand types do not fit the op");
    if (!type_eq(&written, &inferred)) {
        char w[96], i[96];
        nasc_type_format(&written, w, sizeof w);
        nasc_type_format(&inferred, i, sizeof i);
        return perr(P, tloc, "type mismatch: op '%s' gives %s, the text says %s", info->name, i,
                    w);
    }
    const char *cname = cstr(P, &P->name, &P->name_cap, name);
    const char *group = cname ? cstr(P, &P->group, &P->group_cap, gname) : NULL;
    if (!group) return NASC_ENOMEM;
    uint32_t id = nasc_prim_add_op(P->m, (nasc_prim_op)op, P->args, n, &a, cname, group, name.loc);
    if (id == UINT32_MAX) return builder_fail(P, name.loc);
    return define(P, name, id);
}

static nasc_status parse_prim(parser *P) {
    nasc_status st = expect_char(P, '{', "'{' after 'prim'");
    if (!st) st = eol(P, "'{'");
    if (st) return st;
    enum { DECLS, OPS, OUTPUTS } phase = DECLS;
    token group = {"", 0, {0, 0}};
    for (;;) {
        ws(P);
        P->end_loc = here(P);
        if (accept(P, '}')) break;
        if (P->p < P->end && *P->p == '%' && phase != OUTPUTS) {
            phase = OPS;
            if ((st = parse_prim_op(P, group))) return st;
            continue;
        }
        token k = word(P);
        if ((tok_is(k, "input") || tok_is(k, "param")) && phase == DECLS) {
            bool input = tok_is(k, "input");
            token name;
            nasc_type t;
            if ((st = sigil_name(P, '%', "a value name", &name))) return st;
            if ((st = check_fresh(P, name))) return st;
            if ((st = expect_char(P, ':', "':' and the type"))) return st;
            if ((st = parse_type(P, &t, NULL))) return st;
            if ((st = eol(P, input ? "the input" : "the param"))) return st;
            const char *cname = cstr(P, &P->name, &P->name_cap, name);
            if (!cname) return NASC_ENOMEM;
            uint32_t id = input ? nasc_prim_add_input(P->m, cname, &t)
                                : nasc_prim_add_param(P->m, cname, &t);
            if (id == UINT32_MAX) return builder_fail(P, k.loc);
            if ((st = define(P, name, id))) return st;
        } else if (tok_is(k, "group") && phase != OUTPUTS) {
            ws(P);
            group.s = P->p;
            while (P->p < P->end && nasc_text_group_char((unsigned char)*P->p)) P->p++;
            group.len = (uint32_t)(P->p - group.s);
            if ((st = eol(P, "the group name"))) return st;
        } else if (tok_is(k, "output")) {
            phase = OUTPUTS;
            uint32_t v;
            if ((st = use(P, "an output value", &v, NULL))) return st;
            if ((st = eol(P, "the output"))) return st;
            if (nasc_prim_add_output(P->m, v)) return builder_fail(P, k.loc);
        } else {
            P->p = k.s;
            return expected(P, phase == DECLS    ? "'input', 'param', 'group', an op or '}'"
                               : phase == OPS    ? "'group', an op, 'output' or '}'"
                                                 : "'output' or '}'");
        }
    }
    if ((st = eol(P, "'}'"))) return st;
    if (!eof(P)) return expected(P, "end of file after the prim block");
    return NASC_OK;
}

/* ---------------------------------------------------------------- entry */

nasc_status nasc_text_parse(nasc_ctx *ctx, const char *text, size_t len, const char *file,
                            nasc_module **out) {
    *out = NULL;
    memset(&ctx->diag, 0, sizeof ctx->diag);
    parser P;
    memset(&P, 0, sizeof P);
    P.ctx = ctx;
    P.file = file ? file : "";
    P.p = P.line_start = text ? text : "";
    P.end = P.p + (text ? len : 0);
    P.line = 1;
    nasc_status st;
    blank(&P);
    token kw = word(&P);
    bool arch = tok_is(kw, "arch");
    if (!arch && !tok_is(kw, "prim")) {
        P.p = kw.s;
        return expected(&P, "'arch' or 'prim'");
    }
    P.m = nasc_module_create(ctx, arch ? NASC_DIALECT_ARCH : NASC_DIALECT_PRIM, P.file);
    if (!P.m) return ctx->diag.status ? ctx->diag.status : NASC_ENOMEM;
    P.end_loc = kw.loc;
    st = arch ? parse_arch(&P, kw) : parse_prim(&P);
    if (!st) {
        ctx->diag.status = NASC_OK;
        st = nasc_module_verify(P.m);
        if (st) builder_fail(&P, P.end_loc);
    }
    nasc_free(ctx, P.vals.slots);
    nasc_free(ctx, P.cells.slots);
    nasc_free(ctx, P.name);
    nasc_free(ctx, P.group);
    nasc_free(ctx, P.args);
    nasc_free(ctx, P.types);
    if (st) {
        nasc_module_destroy(P.m);
        return st;
    }
    *out = P.m;
    return NASC_OK;
}
