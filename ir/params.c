/* params.c - the parameter store: named float tensors, their metadata,
 * initialisation from a prim module, and the checkpoint byte format
 * (docs/checkpoint.md).
 *
 * Tensors are kept in insertion order (so serialising is deterministic and
 * a round trip gives the same bytes) with an open-addressing hash of their
 * names beside them. Metadata is a short list searched linearly.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_ir.h"

/* A tensor and the unaligned block its data lives in. The nasc_tensor comes
 * first so the store's nasc_tensor pointers convert back. */
typedef struct tensor_box {
    nasc_tensor t;
    void *raw; /* what the allocator returned; t.data is raw rounded up to 64 bytes */
} tensor_box;

#define ALIGN 64
/* Keeps numel * 4 + ALIGN inside both size_t and int64_t. */
#define MAX_NUMEL ((int64_t)((SIZE_MAX < (uint64_t)INT64_MAX ? SIZE_MAX : (uint64_t)INT64_MAX) / 8))

static uint64_t hash_n(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* the same FNV-1a as nasc_hash_str */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* numel of a shape, or -1 when a dim is < 1, the rank is out of range or
 * the product is too large to allocate. */
static int64_t shape_numel(int rank, const int64_t *dims) {
    if (rank < 1 || rank > NASC_MAX_RANK) return -1;
    int64_t n = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 1 || dims[d] > MAX_NUMEL / n) return -1;
        n *= dims[d];
    }
    return n;
}

static void shape_format(int rank, const int64_t *dims, char *buf, size_t size) {
    nasc_type t = {NASC_F32, rank, {0}};
    for (int d = 0; d < rank && d < NASC_MAX_RANK; d++) t.dims[d] = dims[d];
    nasc_type_format(&t, buf, size);
}

static bool same_shape(const nasc_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return false;
    for (int d = 0; d < rank; d++)
        if (t->dims[d] != dims[d]) return false;
    return true;
}

static nasc_status shape_mismatch(nasc_ctx *ctx, const char *file, const nasc_tensor *t, int rank,
                                  const int64_t *dims) {
    char have[96], want[96];
    shape_format(t->rank, t->dims, have, sizeof have);
    shape_format(rank, dims, want, sizeof want);
    return nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC,
                      "tensor '%s' is %s in the parameter store but %s is wanted", t->name, have, want);
}

/* ---------------------------------------------------------------- */
/* Store                                                             */
/* ---------------------------------------------------------------- */

nasc_param_store *nasc_params_create(nasc_ctx *ctx) {
    nasc_param_store *s = nasc_alloc(ctx, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    return s;
}

static void tensor_free(nasc_ctx *ctx, nasc_tensor *t) {
    tensor_box *b = (tensor_box *)t;
    nasc_free(ctx, b->raw);
    nasc_free(ctx, t->name);
    nasc_free(ctx, b);
}

void nasc_params_destroy(nasc_param_store *s) {
    if (!s) return;
    nasc_ctx *ctx = s->ctx;
    for (uint32_t i = 0; i < s->n; i++) tensor_free(ctx, s->tensors[i]);
    for (uint32_t i = 0; i < s->n_meta; i++) {
        nasc_free(ctx, s->meta_keys[i]);
        nasc_free(ctx, s->meta_vals[i]);
    }
    nasc_free(ctx, s->tensors);
    nasc_free(ctx, s->index);
    nasc_free(ctx, s->meta_keys);
    nasc_free(ctx, s->meta_vals);
    nasc_free(ctx, s);
}

static nasc_tensor *find_n(const nasc_param_store *s, const char *name, size_t len) {
    if (!s->index_cap) return NULL;
    uint32_t mask = s->index_cap - 1;
    for (uint32_t i = (uint32_t)hash_n(name, len) & mask;; i = (i + 1) & mask) {
        uint32_t e = s->index[i];
        if (!e) return NULL;
        nasc_tensor *t = s->tensors[e - 1];
        if (strncmp(t->name, name, len) == 0 && t->name[len] == 0) return t;
    }
}

nasc_tensor *nasc_params_find(const nasc_param_store *s, const char *name) {
    return find_n(s, name, strlen(name));
}

/* Room for one more tensor in the array and the index (load <= 1/2). On
 * failure nothing visible changes. */
static bool reserve_one(nasc_param_store *s) {
    nasc_ctx *ctx = s->ctx;
    if (s->n >= UINT32_MAX / 4) {
        nasc_error(ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "too many tensors in one parameter store");
        return false;
    }
    if (s->n + 1 > s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 16;
        nasc_tensor **nt = nasc_realloc(ctx, s->tensors, ncap * sizeof *nt);
        if (!nt) return false;
        s->tensors = nt;
        s->cap = ncap;
    }
    if ((s->n + 1) * 2 > s->index_cap) {
        uint32_t ncap = s->index_cap ? s->index_cap * 2 : 32;
        uint32_t *idx = nasc_alloc(ctx, ncap * sizeof *idx);
        if (!idx) return false;
        memset(idx, 0, ncap * sizeof *idx);
        for (uint32_t k = 0; k < s->n; k++) {
            const char *nm = s->tensors[k]->name;
            uint32_t i = (uint32_t)hash_n(nm, strlen(nm)) & (ncap - 1);
            while (idx[i]) i = (i + 1) & (ncap - 1);
            idx[i] = k + 1;
        }
        nasc_free(ctx, s->index);
        s->index = idx;
        s->index_cap = ncap;
    }
    return true;
}

/* A new zero-filled tensor (name len bytes, not in the store yet, shape
 * valid with numel elements), appended to the store. */
static nasc_tensor *tensor_add(nasc_param_store *s, const char *name, size_t len, int rank,
                               const int64_t *dims, int64_t numel) {
    nasc_ctx *ctx = s->ctx;
    if (!reserve_one(s)) return NULL;
    tensor_box *b = nasc_alloc(ctx, sizeof *b);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->t.name = nasc_alloc(ctx, len + 1);
    size_t bytes = (size_t)numel * sizeof(float);
    b->raw = b->t.name ? nasc_alloc(ctx, bytes + ALIGN - 1) : NULL;
    if (!b->raw) {
        nasc_free(ctx, b->t.name);
        nasc_free(ctx, b);
        return NULL;
    }
    memcpy(b->t.name, name, len);
    b->t.name[len] = 0;
    b->t.rank = rank;
    for (int d = 0; d < rank; d++) b->t.dims[d] = dims[d];
    b->t.numel = numel;
    b->t.data = (float *)(((uintptr_t)b->raw + (ALIGN - 1)) & ~(uintptr_t)(ALIGN - 1));
    memset(b->t.data, 0, bytes);

    uint32_t mask = s->index_cap - 1, i = (uint32_t)hash_n(name, len) & mask;
    while (s->index[i]) i = (i + 1) & mask;
    s->index[i] = s->n + 1;
    s->tensors[s->n++] = &b->t;
    return &b->t;
}

nasc_tensor *nasc_params_get(nasc_param_store *s, const char *name, int rank, const int64_t *dims) {
    nasc_tensor *t = nasc_params_find(s, name);
    if (t) {
        if (!same_shape(t, rank, dims)) {
            shape_mismatch(s->ctx, NULL, t, rank, dims);
            return NULL;
        }
        return t;
    }
    if (!name[0]) {
        nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "a tensor in the parameter store needs a name");
        return NULL;
    }
    int64_t numel = shape_numel(rank, dims);
    if (numel < 0) {
        char shape[96] = "a rank out of range";
        if (rank >= 1 && rank <= NASC_MAX_RANK) shape_format(rank, dims, shape, sizeof shape);
        nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC,
                   "tensor '%s': %s is not a valid shape (rank 1 to %d, every dim at least 1)", name,
                   shape, NASC_MAX_RANK);
        return NULL;
    }
    return tensor_add(s, name, strlen(name), rank, dims, numel);
}

/* ---------------------------------------------------------------- */
/* Metadata                                                          */
/* ---------------------------------------------------------------- */

static int meta_index(const nasc_param_store *s, const char *key, size_t len) {
    for (uint32_t i = 0; i < s->n_meta; i++)
        if (strncmp(s->meta_keys[i], key, len) == 0 && s->meta_keys[i][len] == 0) return (int)i;
    return -1;
}

static char *dup_n(nasc_ctx *ctx, const char *p, size_t n) {
    char *d = nasc_alloc(ctx, n + 1);
    if (!d) return NULL;
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

static bool meta_reserve_one(nasc_param_store *s) {
    if (s->n_meta < s->cap_meta) return true;
    if (s->cap_meta >= UINT32_MAX / 4) {
        nasc_error(s->ctx, NASC_ENOMEM, NULL, NASC_NOLOC, "too many metadata entries");
        return false;
    }
    uint32_t ncap = s->cap_meta ? s->cap_meta * 2 : 8;
    /* Growing one array and then failing on the other is harmless: the
     * capacity only counts once both have room. */
    char **k = nasc_realloc(s->ctx, s->meta_keys, ncap * sizeof *k);
    if (!k) return false;
    s->meta_keys = k;
    char **v = nasc_realloc(s->ctx, s->meta_vals, ncap * sizeof *v);
    if (!v) return false;
    s->meta_vals = v;
    s->cap_meta = ncap;
    return true;
}

/* Add a key that is not present (takes ownership of key and value). */
static bool meta_push(nasc_param_store *s, char *key, char *val) {
    if (!meta_reserve_one(s)) return false;
    s->meta_keys[s->n_meta] = key;
    s->meta_vals[s->n_meta] = val;
    s->n_meta++;
    return true;
}

nasc_status nasc_params_set_meta(nasc_param_store *s, const char *key, const char *value) {
    nasc_ctx *ctx = s->ctx;
    if (!key || !value)
        return nasc_error(ctx, NASC_EINPUT, NULL, NASC_NOLOC, "metadata key and value must not be NULL");
    char *v = nasc_strdup(ctx, value);
    if (!v) return NASC_ENOMEM;
    int i = meta_index(s, key, strlen(key));
    if (i >= 0) {
        nasc_free(ctx, s->meta_vals[i]);
        s->meta_vals[i] = v;
        return NASC_OK;
    }
    char *k = nasc_strdup(ctx, key);
    if (!k || !meta_push(s, k, v)) {
        nasc_free(ctx, k);
        nasc_free(ctx, v);
        return NASC_ENOMEM;
    }
    return NASC_OK;
}

const char *nasc_params_meta(const nasc_param_store *s, const char *key) {
    int i = meta_index(s, key, strlen(key));
    return i >= 0 ? s->meta_vals[i] : NULL;
}

/* ---------------------------------------------------------------- */
/* Initialisation                                                    */
/* ---------------------------------------------------------------- */

enum init_kind {
    INIT_UNUSED = 0,
    INIT_CONV_WEIGHT, /* U(-b, b), b = 1/sqrt(fan_in), fan_in = C_in/groups * kh * kw */
    INIT_FC_WEIGHT,   /* U(-b, b), fan_in = I */
    INIT_ZERO,        /* batch-norm shift, an add operand */
    INIT_ONE,         /* batch-norm scale, a factor of mul */
    INIT_MATMUL_WEIGHT, /* U(-b, b), fan_in = dims[rank-2] (K of an untransposed (..., K, N)) */
    INIT_FC_BIAS,     /* U(-b, b) with the fan_in of the op's weight */
    INIT_EMBEDDING,   /* N(0, 1), as torch.nn.Embedding */
    INIT_NORMALIZED,  /* N(0, 1): normalize keeps only the direction, uniform on the sphere */
    INIT_SLICED,      /* U(-b, b), fan_in = the product of the dims after the first (a conv's C_in kh kw) */
};

static const char *init_role(enum init_kind k) {
    switch (k) {
    case INIT_CONV_WEIGHT: return "a conv weight";
    case INIT_FC_WEIGHT: return "an inner_product weight";
    case INIT_ZERO: return "a batch_norm shift or add operand";
    case INIT_FC_BIAS: return "an inner_product bias";
    case INIT_ONE: return "a batch_norm scale or mul factor";
    case INIT_MATMUL_WEIGHT: return "a matmul operand";
    case INIT_EMBEDDING: return "an embedding table";
    case INIT_NORMALIZED: return "a normalize operand";
    case INIT_SLICED: return "a slice operand";
    default: return "unused";
    }
}

/* The role of operand a of prim op, or INIT_UNUSED when a parameter there
 * has no initialisation rule. */
static enum init_kind operand_role(nasc_prim_op op, uint32_t a) {
    if (op == NASC_PRIM_CONV && a == 1) return INIT_CONV_WEIGHT;
    if (op == NASC_PRIM_INNER_PRODUCT && a == 1) return INIT_FC_WEIGHT;
    if (op == NASC_PRIM_INNER_PRODUCT && a == 2) return INIT_FC_BIAS;
    if (op == NASC_PRIM_BATCH_NORM && a == 1) return INIT_ONE;
    if (op == NASC_PRIM_BATCH_NORM && a == 2) return INIT_ZERO;
    if (op == NASC_PRIM_ADD || op == NASC_PRIM_SUB) return INIT_ZERO;
    if (op == NASC_PRIM_EMBEDDING && a == 1) return INIT_EMBEDDING;
    if (op == NASC_PRIM_NORMALIZE) return INIT_NORMALIZED;
    if (op == NASC_PRIM_SLICE) return INIT_SLICED;
    if (op == NASC_PRIM_MUL) return INIT_ONE;
    if (op == NASC_PRIM_MATMUL) return INIT_MATMUL_WEIGHT;
    return INIT_UNUSED;
}

/* Decide every parameter's role from its uses (all uses must agree) and
 * check the rank each role needs. */
static nasc_status init_roles(nasc_ctx *ctx, const nasc_module *m, uint8_t *role, int64_t *fan) {
    for (uint32_t p = 0; p < m->n_prims; p++) {
        const nasc_prim *pr = &m->prims[p];
        for (uint32_t a = 0; a < pr->n_args; a++) {
            uint32_t v = m->args[pr->first_arg + a];
            if (v >= m->n_values || m->values[v].kind != NASC_VAL_PARAM) continue;
            const char *name = nasc_str(m, m->values[v].name);
            const char *opname = nasc_prim_op_info_get(pr->op) ? nasc_prim_op_info_get(pr->op)->name : "?";
            enum init_kind k = operand_role(pr->op, a);
            if (k == INIT_UNUSED)
                return nasc_error(ctx, NASC_EINPUT, m->source, pr->loc,
                                  "parameter '%%%s' is operand %u of %s: nasc has no initialisation for it",
                                  name, a + 1, opname);
            if (role[v] != INIT_UNUSED && role[v] != k)
                return nasc_error(ctx, NASC_EINPUT, m->source, pr->loc,
                                  "parameter '%%%s' is used both as %s and as %s", name,
                                  init_role((enum init_kind)role[v]), init_role(k));
            int want = k == INIT_CONV_WEIGHT ? 4 : k == INIT_FC_WEIGHT || k == INIT_EMBEDDING ? 2 : 0;
            if (want && m->values[v].type.rank != want)
                return nasc_error(ctx, NASC_EINPUT, m->source, pr->loc,
                                  "parameter '%%%s' has rank %d but %s has rank %d", name,
                                  m->values[v].type.rank, init_role(k), want);
            role[v] = (uint8_t)k;
            if (k == INIT_FC_BIAS) {
                const nasc_type *w = &m->values[m->args[pr->first_arg + 1]].type;
                fan[v] = w->rank == 2 ? w->dims[1] : 1;
            }
        }
    }
    for (uint32_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == NASC_VAL_PARAM && role[v] == INIT_UNUSED)
            return nasc_error(ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                              "parameter '%%%s' is not used by any op, so nasc cannot choose its "
                              "initialisation",
                              nasc_str(m, m->values[v].name));
    return NASC_OK;
}

/* Weights and biases as PyTorch initialises Conv2d and Linear by default
 * (kaiming_uniform_ with a = sqrt(5), which is U(-b, b) with
 * b = 1/sqrt(fan_in); biases the same with the weight's fan_in), the
 * initialisation the DARTS and ENAS reference code trains from. With batch
 * norm after a conv the scale of a weight sets its effective learning rate;
 * He-normal weights (2.4x larger) trained DARTS-V2 1.6 points worse after
 * one epoch of the same recipe (docs/training.md). */
static void init_fill(nasc_tensor *t, enum init_kind k, int64_t bias_fan, uint64_t seed) {
    if (k == INIT_ZERO) return; /* nasc_params_get zero-fills */
    if (k == INIT_ONE) {
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = 1.0f;
        return;
    }
    if (k == INIT_EMBEDDING || k == INIT_NORMALIZED) {
        nasc_rng r;
        nasc_rng_seed(&r, seed ^ nasc_hash_str(t->name));
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = nasc_rng_normal(&r);
        return;
    }
    int64_t rest = 1;
    for (int d = 1; d < t->rank; d++) rest *= t->dims[d];
    int64_t fan_in = k == INIT_CONV_WEIGHT     ? t->dims[1] * t->dims[2] * t->dims[3]
                     : k == INIT_SLICED        ? rest
                     : k == INIT_MATMUL_WEIGHT ? (t->rank >= 2 ? t->dims[t->rank - 2] : t->dims[0])
                     : k == INIT_FC_BIAS       ? bias_fan
                                               : t->dims[1];
    float b = (float)(1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1)));
    nasc_rng r;
    nasc_rng_seed(&r, seed ^ nasc_hash_str(t->name));
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = b * (2.0f * nasc_rng_uniform(&r) - 1.0f);
}

nasc_status nasc_params_init(nasc_param_store *s, const nasc_module *prim, uint64_t seed) {
    nasc_ctx *ctx = s->ctx;
    if (prim->dialect != NASC_DIALECT_PRIM)
        return nasc_error(ctx, NASC_EINPUT, prim->source, NASC_NOLOC,
                          "parameters are initialised from a prim module, not an arch module");
    uint8_t *role = nasc_alloc(ctx, prim->n_values ? prim->n_values : 1);
    int64_t *fan = nasc_alloc(ctx, (prim->n_values ? prim->n_values : 1) * sizeof *fan);
    if (!role || !fan) {
        nasc_free(ctx, role);
        nasc_free(ctx, fan);
        return NASC_ENOMEM;
    }
    memset(role, 0, prim->n_values);
    memset(fan, 0, prim->n_values * sizeof *fan);
    nasc_status st = init_roles(ctx, prim, role, fan);
    /* Check every existing tensor before creating any, so a mismatch leaves
     * the store as it was. */
    for (uint32_t v = 0; st == NASC_OK && v < prim->n_values; v++) {
        const nasc_value *val = &prim->values[v];
        if (val->kind != NASC_VAL_PARAM) continue;
        nasc_tensor *t = nasc_params_find(s, nasc_str(prim, val->name));
        if (t && !same_shape(t, val->type.rank, val->type.dims))
            st = shape_mismatch(ctx, prim->source, t, val->type.rank, val->type.dims);
    }
    for (uint32_t v = 0; st == NASC_OK && v < prim->n_values; v++) {
        const nasc_value *val = &prim->values[v];
        if (val->kind != NASC_VAL_PARAM) continue;
        const char *name = nasc_str(prim, val->name);
        if (nasc_params_find(s, name)) continue;
        nasc_tensor *t = nasc_params_get(s, name, val->type.rank, val->type.dims);
        if (!t) {
            st = ctx->diag.status;
            break;
        }
        init_fill(t, (enum init_kind)role[v], fan[v], seed);
    }
    nasc_free(ctx, role);
    nasc_free(ctx, fan);
    return st;
}

/* ---------------------------------------------------------------- */
/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib)     */
/* ---------------------------------------------------------------- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------- */
/* Serialisation                                                     */
/* ---------------------------------------------------------------- */

static const char MAGIC[8] = {'N', 'A', 'S', 'C', 'P', 'R', 'M', '1'};
#define FORMAT_VERSION 1u
/* Smallest encodings, for bounding counts before allocating. */
#define MIN_META_BYTES 8u    /* two empty strings */
#define MIN_TENSOR_BYTES 21u /* name length, 1-byte name, rank, one dim, one float */

static void put_u32(nasc_buf *b, uint32_t v) {
    char c[4] = {(char)(v & 0xff), (char)(v >> 8 & 0xff), (char)(v >> 16 & 0xff), (char)(v >> 24)};
    nasc_buf_append(b, c, 4);
}

static void put_i64(nasc_buf *b, int64_t x) {
    uint64_t v = (uint64_t)x;
    char c[8];
    for (int i = 0; i < 8; i++) c[i] = (char)(v >> (8 * i) & 0xff);
    nasc_buf_append(b, c, 8);
}

static bool put_str(nasc_buf *b, const char *s) {
    size_t n = strlen(s);
    if (n > UINT32_MAX) return false;
    put_u32(b, (uint32_t)n);
    nasc_buf_append(b, s, n);
    return true;
}

static void put_floats(nasc_buf *b, const float *x, int64_t n) {
    char chunk[4096];
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &x[i], 4);
        chunk[k++] = (char)(v & 0xff);
        chunk[k++] = (char)(v >> 8 & 0xff);
        chunk[k++] = (char)(v >> 16 & 0xff);
        chunk[k++] = (char)(v >> 24);
        if (k == sizeof chunk) {
            nasc_buf_append(b, chunk, k);
            k = 0;
        }
    }
    nasc_buf_append(b, chunk, k);
}

nasc_status nasc_params_serialize(const nasc_param_store *s, nasc_buf *out) {
    size_t start = out->len;
    nasc_buf_append(out, MAGIC, sizeof MAGIC);
    put_u32(out, FORMAT_VERSION);
    put_u32(out, s->n_meta);
    put_u32(out, s->n);
    for (uint32_t i = 0; i < s->n_meta; i++)
        if (!put_str(out, s->meta_keys[i]) || !put_str(out, s->meta_vals[i]))
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "metadata entry %u is too long", i);
    for (uint32_t i = 0; i < s->n; i++) {
        const nasc_tensor *t = s->tensors[i];
        if (!put_str(out, t->name))
            return nasc_error(s->ctx, NASC_EINPUT, NULL, NASC_NOLOC, "tensor name %u is too long", i);
        put_u32(out, (uint32_t)t->rank);
        for (int d = 0; d < t->rank; d++) put_i64(out, t->dims[d]);
        put_floats(out, t->data, t->numel);
    }
    if (out->oom) return NASC_ENOMEM;
    put_u32(out, crc32_update(0, (const uint8_t *)out->data + start, out->len - start));
    return out->oom ? NASC_ENOMEM : NASC_OK;
}

typedef struct reader {
    nasc_ctx *ctx;
    const char *file;
    const uint8_t *p;
    size_t len, pos;
} reader;

static size_t remain(const reader *r) { return r->len - r->pos; }

/* Whether n more bytes are there; the error names what was expected. */
static bool need(reader *r, uint64_t n, const char *what, const char *name) {
    if (n <= remain(r)) return true;
    nasc_error(r->ctx, NASC_EINPUT, r->file, NASC_NOLOC,
               "truncated at byte %zu: expected %s%s%s%s (%llu bytes), %zu remain", r->pos, what,
               name ? " '" : "", name ? name : "", name ? "'" : "", (unsigned long long)n, remain(r));
    return false;
}

static uint32_t get_u32(reader *r) {
    const uint8_t *c = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
}

static int64_t get_i64(reader *r) {
    const uint8_t *c = r->p + r->pos;
    r->pos += 8;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)c[i] << (8 * i);
    return (int64_t)v;
}

static bool read_u32(reader *r, uint32_t *v, const char *what, const char *name) {
    if (!need(r, 4, what, name)) return false;
    *v = get_u32(r);
    return true;
}

/* A length-prefixed string copied into a new NUL-terminated block. */
static nasc_status read_str(reader *r, const char *what, char **out, size_t *out_len) {
    *out = NULL;
    uint32_t n;
    size_t at = r->pos;
    if (!read_u32(r, &n, what, NULL) || !need(r, n, what, NULL)) return NASC_EINPUT;
    const char *s = (const char *)r->p + r->pos;
    if (memchr(s, 0, n))
        return nasc_error(r->ctx, NASC_EINPUT, r->file, NASC_NOLOC, "%s at byte %zu contains a NUL byte",
                          what, at);
    *out = dup_n(r->ctx, s, n);
    if (!*out) return NASC_ENOMEM;
    r->pos += n;
    if (out_len) *out_len = n;
    return NASC_OK;
}

static nasc_status read_meta(reader *r, nasc_param_store *s) {
    size_t at = r->pos;
    char *k = NULL, *v = NULL;
    nasc_status st = read_str(r, "a metadata key", &k, NULL);
    if (st == NASC_OK) st = read_str(r, "a metadata value", &v, NULL);
    if (st == NASC_OK && nasc_params_meta(s, k))
        st = nasc_error(r->ctx, NASC_EINPUT, r->file, NASC_NOLOC, "duplicate metadata key '%s' at byte %zu",
                        k, at);
    if (st == NASC_OK && !meta_push(s, k, v)) st = NASC_ENOMEM;
    if (st != NASC_OK) {
        nasc_free(r->ctx, k);
        nasc_free(r->ctx, v);
    }
    return st;
}

static nasc_status read_tensor(reader *r, nasc_param_store *s) {
    nasc_ctx *ctx = r->ctx;
    size_t at = r->pos;
    uint32_t n;
    if (!read_u32(r, &n, "a tensor name length", NULL) || !need(r, n, "a tensor name", NULL))
        return NASC_EINPUT;
    const char *name = (const char *)r->p + r->pos;
    if (n == 0) return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC, "empty tensor name at byte %zu", at);
    if (memchr(name, 0, n))
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC, "tensor name at byte %zu contains a NUL byte", at);
    char shown[128]; /* the name for messages, cut short when long */
    snprintf(shown, sizeof shown, "%.*s", n < sizeof shown ? (int)n : (int)sizeof shown - 1, name);
    if (find_n(s, name, n))
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC, "duplicate tensor '%s' at byte %zu", shown, at);
    r->pos += n;
    uint32_t rank;
    size_t rank_at = r->pos;
    if (!read_u32(r, &rank, "the rank of tensor", shown)) return NASC_EINPUT;
    if (rank < 1 || rank > NASC_MAX_RANK)
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                          "tensor '%s' has rank %u at byte %zu; nasc tensors have rank 1 to %d", shown, rank,
                          rank_at, NASC_MAX_RANK);
    if (!need(r, 8ull * rank, "the dims of tensor", shown)) return NASC_EINPUT;
    int64_t dims[NASC_MAX_RANK];
    int64_t numel = 1;
    for (uint32_t d = 0; d < rank; d++) {
        size_t dim_at = r->pos;
        dims[d] = get_i64(r);
        if (dims[d] < 1)
            return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                              "dimension %u of tensor '%s' is %lld at byte %zu; dims must be positive", d, shown,
                              (long long)dims[d], dim_at);
        if (dims[d] > MAX_NUMEL / numel)
            return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                              "tensor '%s' at byte %zu is too large (the product of its dims overflows)", shown,
                              at);
        numel *= dims[d];
    }
    if (!need(r, (uint64_t)numel * 4, "the data of tensor", shown)) return NASC_EINPUT;
    nasc_tensor *t = tensor_add(s, name, n, (int)rank, dims, numel);
    if (!t) return ctx->diag.status;
    const uint8_t *c = r->p + r->pos;
    for (int64_t i = 0; i < numel; i++, c += 4) {
        uint32_t v = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
        memcpy(&t->data[i], &v, 4);
    }
    r->pos += (size_t)numel * 4;
    return NASC_OK;
}

static nasc_status read_all(reader *r, nasc_param_store *s) {
    nasc_ctx *ctx = r->ctx;
    if (r->len == 0) return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC, "empty file: not a nasc checkpoint");
    size_t m = r->len < sizeof MAGIC ? r->len : sizeof MAGIC;
    if (memcmp(r->p, MAGIC, m) != 0)
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                          "not a nasc checkpoint (it does not start with \"NASCPRM1\")");
    if (!need(r, sizeof MAGIC, "the magic \"NASCPRM1\"", NULL)) return NASC_EINPUT;
    r->pos = sizeof MAGIC;
    uint32_t version, n_meta, n_tensors;
    if (!read_u32(r, &version, "the format version", NULL)) return NASC_EINPUT;
    if (version != FORMAT_VERSION)
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC, "format version %u, this nasc reads %u",
                          version, FORMAT_VERSION);
    if (!read_u32(r, &n_meta, "the metadata count", NULL) || !read_u32(r, &n_tensors, "the tensor count", NULL))
        return NASC_EINPUT;
    /* Bound the counts by the bytes left before trusting them. */
    uint64_t least = (uint64_t)n_meta * MIN_META_BYTES + (uint64_t)n_tensors * MIN_TENSOR_BYTES + 4;
    if (least > remain(r)) {
        nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                   "truncated at byte %zu: expected %u metadata entries and %u tensors (at least %llu "
                   "bytes), %zu remain",
                   r->pos, n_meta, n_tensors, (unsigned long long)least, remain(r));
        return NASC_EINPUT;
    }
    for (uint32_t i = 0; i < n_meta; i++) {
        nasc_status st = read_meta(r, s);
        if (st) return st;
    }
    for (uint32_t i = 0; i < n_tensors; i++) {
        nasc_status st = read_tensor(r, s);
        if (st) return st;
    }
    size_t crc_at = r->pos;
    uint32_t stored;
    if (!read_u32(r, &stored, "the CRC-32", NULL)) return NASC_EINPUT;
    uint32_t computed = crc32_update(0, r->p, crc_at);
    if (stored != computed)
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                          "checksum mismatch: the file is corrupt (CRC-32 at byte %zu is %08x, the data gives "
                          "%08x)",
                          crc_at, stored, computed);
    if (r->pos != r->len)
        return nasc_error(ctx, NASC_EINPUT, r->file, NASC_NOLOC,
                          "%zu trailing bytes at byte %zu, after the checksum", r->len - r->pos, r->pos);
    return NASC_OK;
}

nasc_status nasc_params_deserialize(nasc_ctx *ctx, const void *data, size_t len, const char *file,
                                    nasc_param_store **out) {
    *out = NULL;
    reader r = {ctx, file, data, len, 0};
    if (!data && len) return nasc_error(ctx, NASC_EINPUT, file, NASC_NOLOC, "no data");
    nasc_param_store *s = nasc_params_create(ctx);
    if (!s) return NASC_ENOMEM;
    nasc_status st = read_all(&r, s);
    if (st != NASC_OK) {
        nasc_params_destroy(s);
        return st;
    }
    *out = s;
    return NASC_OK;
}
