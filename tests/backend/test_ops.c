/* Backend numerics: every prim op, and whole lowered cells, against the
 * double-precision reference (ref.c) and central finite differences of it.
 *
 * Three groups:
 *  - reference: ref.c on its own, against hand-computed results, and its
 *    analytic backward against finite differences (all in double) on every
 *    op case below and on the two tiny nets. These need no backend: they
 *    say the ground truth is right.
 *  - ops: each prim op in a tiny module with random shapes (fixed seeds),
 *    compiled with nasc_net_compile (training, input gradients): forward
 *    against the reference (norm-wise relative error <= 1e-4), and the
 *    gradients of the inputs and of every parameter for a random output
 *    gradient R against finite differences of L = sum(ref_output * R)
 *    (<= 1e-2); a second step on the same net must give the same gradients
 *    ("again": nothing accumulates across steps). Wide cases (8-24
 *    channels) make oneDNN use blocked layouts. Inference batch norm
 *    (running statistics, with and without fusing) is checked forward only;
 *    bn_running_stats checks their update by a training forward. The
 *    ONNX-shaped cases (add_bcast ... max_pool_dilated) cover broadcasting
 *    add/mul, static first dims (ranks 1 to 4), concat on axis 0, reshape,
 *    matmul (broadcast batch dims forward only) and dilated max pooling.
 *  - cells: nasnet-a and enas-micro made tiny, lowered and compiled; logits
 *    and softmax cross-entropy (nasc_net_loss) against the reference,
 *    gradients of a random subset of parameter elements and of the input
 *    against finite differences of the reference loss, nasc_net_grads
 *    against nasc_net_read_grad, training with and without fusing (as
 *    nasc train compiles: relus inside batch norms and concats); inference
 *    forward with and without fusing.
 *
 * Every case prints one line: op, shapes and attributes, seed, forward
 * error, and per-tensor backward errors (norm-wise relative, max abs).
 * NASC_TEST_FILTER=<cmocka pattern> runs a subset, e.g. "conv*" or "*cells*".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nasc_backend.h"
#include "nasc_frontend.h"
#include "ref.h"
#include "testutil.h"

#define FWD_TOL 1e-4 /* backend forward vs reference */
#define BWD_TOL 1e-2 /* backend gradients vs finite differences */
#define REF_TOL 1e-6 /* reference gradients vs finite differences, both double */
#define LOSS_TOL 1e-4
/* Central-difference step, in double on the reference. Small enough that a
 * step rarely crosses a relu kink or a max-pool switch (op inputs keep a
 * gap of >= 1e-3 between values), large enough for negligible rounding. */
#define FD_EPS 1e-4
#define FD_EPS_NET 1e-5 /* whole nets: many kinks, so a smaller step */
#define KINK_TOL 1e-3   /* reference gradient vs its finite difference beyond this: a kink in the step */
#define FD_ALL 600      /* op cases: tensors up to this size are checked whole, */
#define FD_SAMPLES 300  /* bigger ones at this many random elements */

/* ---------------------------------------------------------------- */
/* Building tiny modules                                             */
/* ---------------------------------------------------------------- */

typedef enum gen_kind {
    GEN_NORMAL,   /* standard normal */
    GEN_DISTINCT, /* a permutation of an even grid in [-2, 2), gaps >= 1e-3, no 0: max_pool, relu */
} gen_kind;

typedef struct tcase {
    nasc_ctx ctx;
    nasc_module *m;
    nasc_param_store *ps;
    nasc_rng rng;
    uint64_t seed;
    int batch;
    gen_kind gen;
    double in_scale;     /* inputs are multiplied by this (default 1) */
    nasc_net_mode mode;  /* TRAIN: forward and backward; INFER: forward only */
    bool fuse;           /* INFER: ask the backend to fold batch norm and relu */
    nasc_net_parallel parallel; /* the backend net's threads (default AUTO: lanes in training) */
} tcase;

static int ri(tcase *t, int lo, int hi) { return lo + (int)nasc_rng_below(&t->rng, (uint64_t)(hi - lo + 1)); }

static void tc_begin(tcase *t, uint64_t seed) {
    memset(t, 0, sizeof *t);
    nasc_ctx_init(&t->ctx);
    t->m = nasc_module_create(&t->ctx, NASC_DIALECT_PRIM, "test_ops");
    t->ps = nasc_params_create(&t->ctx);
    assert_non_null(t->m);
    assert_non_null(t->ps);
    t->seed = seed;
    nasc_rng_seed(&t->rng, seed);
    t->batch = 2;
    t->gen = GEN_NORMAL;
    t->in_scale = 1;
    t->mode = NASC_MODE_TRAIN;
}

static void tc_end(tcase *t) {
    nasc_params_destroy(t->ps);
    nasc_module_destroy(t->m);
}

static void die_diag(tcase *t, const char *what) {
    nasc_diag_print(&t->ctx.diag, stderr);
    fail_msg("%s failed", what);
}

/* A net input (batch first); rank 2 or 4. */
static uint32_t tc_input(tcase *t, const char *name, int rank, int64_t d1, int64_t d2, int64_t d3) {
    nasc_type ty = {NASC_F32, rank, {NASC_BATCH, d1, rank > 2 ? d2 : 0, rank > 3 ? d3 : 0}};
    uint32_t v = nasc_prim_add_input(t->m, name, &ty);
    if (v == UINT32_MAX) die_diag(t, "nasc_prim_add_input");
    return v;
}

/* A parameter; data (numel floats) is written to the store, or NULL to
 * leave it to nasc_params_init and the randomisation of tc_check. */
static uint32_t tc_param(tcase *t, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                         const float *data) {
    nasc_type ty = {NASC_F32, rank, {d0, d1, d2, d3}};
    for (int i = rank; i < NASC_MAX_RANK; i++) ty.dims[i] = 0;
    uint32_t v = nasc_prim_add_param(t->m, name, &ty);
    if (v == UINT32_MAX) die_diag(t, "nasc_prim_add_param");
    if (data) {
        nasc_tensor *ts = nasc_params_get(t->ps, name, rank, ty.dims);
        assert_non_null(ts);
        memcpy(ts->data, data, (size_t)ts->numel * sizeof(float));
    }
    return v;
}

static uint32_t tc_op(tcase *t, nasc_prim_op op, const uint32_t *args, uint32_t n, const nasc_prim_attrs *a,
                      const char *name) {
    uint32_t v = nasc_prim_add_op(t->m, op, args, n, a, name, "test", NASC_NOLOC);
    if (v == UINT32_MAX) die_diag(t, "nasc_prim_add_op");
    return v;
}

static void tc_output(tcase *t, uint32_t v) {
    if (nasc_prim_add_output(t->m, v)) die_diag(t, "nasc_prim_add_output");
}

static nasc_prim_attrs attrs_window(int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.kh = kh;
    a.kw = kw;
    a.sh = sh;
    a.sw = sw;
    a.pt = pt;
    a.pl = pl;
    a.pb = pb;
    a.pr = pr;
    return a;
}

/* "conv(x f32[2,3,7,5], w f32[4,3,3,3]) k3x3 s2x1 p1,0,1,2 d1x1 g1 -> f32[2,4,4,3]; ..." */
static void describe(const nasc_module *m, int batch, char *buf, size_t size) {
    size_t off = 0;
    buf[0] = 0;
#define PUT(...) (off += (off < size ? (size_t)snprintf(buf + off, size - off, __VA_ARGS__) : 0))
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        const nasc_prim_op_info *info = nasc_prim_op_info_get(p->op);
        PUT("%s%s(", i ? "; " : "", info->name);
        for (uint32_t k = 0; k < p->n_args; k++) {
            uint32_t v = m->args[p->first_arg + k];
            int64_t d[NASC_MAX_RANK];
            int r = ref_dims(m, v, batch, d);
            PUT("%s%s[", k ? ", " : "", nasc_str(m, m->values[v].name));
            for (int j = 0; j < r; j++) PUT("%s%lld", j ? "," : "", (long long)d[j]);
            PUT("]");
        }
        PUT(")");
        const nasc_prim_attrs *a = &p->a;
        if (info->attrs & NASC_PATTR_KERNEL) PUT(" k%dx%d", a->kh, a->kw);
        if (info->attrs & NASC_PATTR_STRIDE) PUT(" s%dx%d", a->sh, a->sw);
        if (info->attrs & NASC_PATTR_PAD) PUT(" p%d,%d,%d,%d", a->pt, a->pl, a->pb, a->pr);
        if (info->attrs & (NASC_PATTR_DILATION | NASC_PATTR_OPT(NASC_PATTR_DILATION))) PUT(" d%dx%d", a->dh, a->dw);
        if (info->attrs & NASC_PATTR_OPT(NASC_PATTR_TRANS)) PUT(" t%d,%d", a->trans_a, a->trans_b);
        if (info->attrs & NASC_PATTR_GROUPS) PUT(" g%d", a->groups);
        if (info->attrs & NASC_PATTR_AXIS) PUT(" axis%d", a->axis);
        if (info->attrs & NASC_PATTR_COUNT_PAD) PUT(" cip%d", a->count_include_pad);
        if (info->attrs & NASC_PATTR_EPS) PUT(" eps%g", (double)a->eps);
        if (info->attrs & NASC_PATTR_OFFSET) PUT(" dy%d dx%d", a->dy, a->dx);
        if (info->attrs & NASC_PATTR_INDEX) PUT(" index%d", a->index);
        if (info->attrs & NASC_PATTR_ALPHA) PUT(" alpha%g", (double)a->alpha);
        int64_t d[NASC_MAX_RANK];
        int r = ref_dims(m, p->result, batch, d);
        PUT(" -> [");
        for (int j = 0; j < r; j++) PUT("%s%lld", j ? "," : "", (long long)d[j]);
        PUT("]");
    }
#undef PUT
}

/* ---------------------------------------------------------------- */
/* Random data                                                       */
/* ---------------------------------------------------------------- */

static void fill_normal(nasc_rng *r, float *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * nasc_rng_normal(r));
}

/* A random permutation of ((k + 0.3) / n - 0.5) * 4: distinct values with a
 * gap of 4/n (>= 1e-3 for n <= 4000), none within 0.8/n of zero. */
static void fill_distinct(nasc_rng *r, float *x, int64_t n, double scale) {
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    assert_non_null(perm);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nasc_rng_below(r, (uint64_t)i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * (((double)perm[i] + 0.3) / (double)n - 0.5) * 4.0);
    free(perm);
}

/* Which operand slot a parameter fills: batch-norm scale, shift, or other. */
static int param_role(const nasc_module *m, uint32_t v) {
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        if (p->op != NASC_PRIM_BATCH_NORM) continue;
        if (m->args[p->first_arg + 1] == v) return 1;
        if (m->args[p->first_arg + 2] == v) return 2;
    }
    return 0;
}

/* Create every parameter with nasc_params_init, then (unless keep_init)
 * overwrite it with random values: weights N(0, 1/fan_in), batch-norm
 * scales 1 + N(0, 0.25), shifts and biases N(0, 0.25). Always random
 * running statistics ("<bn>.mean", "<bn>.var") for inference. */
static void randomize_params(tcase *t, bool keep_init) {
    if (nasc_params_init(t->ps, t->m, t->seed)) die_diag(t, "nasc_params_init");
    nasc_rng r;
    nasc_rng_seed(&r, t->seed ^ 0x5eedull);
    for (uint32_t v = 0; v < t->m->n_values; v++) {
        if (t->m->values[v].kind != NASC_VAL_PARAM) continue;
        nasc_tensor *ts = nasc_params_find(t->ps, nasc_str(t->m, t->m->values[v].name));
        assert_non_null(ts);
        if (keep_init) continue;
        int role = param_role(t->m, v);
        if (ts->rank >= 2) {
            fill_normal(&r, ts->data, ts->numel, 1.0 / sqrt((double)(ts->numel / ts->dims[0])));
        } else {
            fill_normal(&r, ts->data, ts->numel, 0.5);
            if (role == 1)
                for (int64_t i = 0; i < ts->numel; i++) ts->data[i] += 1.0f;
        }
    }
    for (uint32_t i = 0; i < t->m->n_prims; i++) {
        const nasc_prim *p = &t->m->prims[i];
        if (p->op != NASC_PRIM_BATCH_NORM) continue;
        int64_t c = t->m->values[p->result].type.dims[1];
        char name[300];
        snprintf(name, sizeof name, "%s.mean", nasc_str(t->m, t->m->values[p->result].name));
        nasc_tensor *mean = nasc_params_get(t->ps, name, 1, &c);
        snprintf(name, sizeof name, "%s.var", nasc_str(t->m, t->m->values[p->result].name));
        nasc_tensor *var = nasc_params_get(t->ps, name, 1, &c);
        assert_non_null(mean);
        assert_non_null(var);
        fill_normal(&r, mean->data, c, 0.5);
        for (int64_t k = 0; k < c; k++) var->data[k] = 0.5f + nasc_rng_uniform(&r);
    }
}

/* The rows of the embedding table input v feeds as token numbers, or 0
 * when v is no embedding's ids operand. */
static int64_t ids_rows(const nasc_module *m, uint32_t v) {
    for (uint32_t i = 0; i < m->n_prims; i++) {
        const nasc_prim *p = &m->prims[i];
        if (p->op == NASC_PRIM_EMBEDDING && m->args[p->first_arg] == v)
            return m->values[m->args[p->first_arg + 1]].type.dims[0];
    }
    return 0;
}

/* ---------------------------------------------------------------- */
/* Checking a module                                                 */
/* ---------------------------------------------------------------- */

/* Everything one check needs: inputs as floats (what the backend sees) and
 * as doubles (the same numbers), reference values, output gradients R. */
typedef struct run {
    const nasc_module *m;
    int batch;
    uint32_t n_in;
    uint32_t in_ids[8];
    float *in_f[8];
    double *in_d[8];
    double **vals;     /* reference values by id */
    double **rg;       /* reference gradients by id (ref_backward) */
    float *r_f[8];     /* output gradients R, one per output */
    double *r_d[8];
} run;

static void run_init(run *r, tcase *t) {
    memset(r, 0, sizeof *r);
    r->m = t->m;
    r->batch = t->batch;
    for (uint32_t v = 0; v < t->m->n_values; v++) {
        if (t->m->values[v].kind != NASC_VAL_INPUT) continue;
        assert_true(r->n_in < 8);
        int64_t n = ref_numel(t->m, v, t->batch);
        uint32_t i = r->n_in++;
        r->in_ids[i] = v;
        r->in_f[i] = malloc((size_t)n * sizeof(float));
        r->in_d[i] = malloc((size_t)n * sizeof(double));
        assert_non_null(r->in_f[i]);
        assert_non_null(r->in_d[i]);
        int64_t rows = ids_rows(t->m, v);
        if (rows > 0) /* token numbers: mostly in the table, now and then one past either end */
            for (int64_t k = 0; k < n; k++)
                r->in_f[i][k] = (float)((int64_t)nasc_rng_below(&t->rng, (uint64_t)rows + 2) - 1);
        else if (t->gen == GEN_DISTINCT)
            fill_distinct(&t->rng, r->in_f[i], n, t->in_scale);
        else
            fill_normal(&t->rng, r->in_f[i], n, t->in_scale);
        for (int64_t k = 0; k < n; k++) r->in_d[i][k] = r->in_f[i][k];
    }
    assert_true(t->m->n_outputs <= 8);
    for (uint32_t i = 0; i < t->m->n_outputs; i++) {
        int64_t n = ref_numel(t->m, t->m->outputs[i], t->batch);
        r->r_f[i] = malloc((size_t)n * sizeof(float));
        r->r_d[i] = malloc((size_t)n * sizeof(double));
        assert_non_null(r->r_f[i]);
        assert_non_null(r->r_d[i]);
        fill_normal(&t->rng, r->r_f[i], n, 1.0);
        for (int64_t k = 0; k < n; k++) r->r_d[i][k] = r->r_f[i][k];
    }
    r->vals = calloc(t->m->n_values, sizeof *r->vals);
    r->rg = calloc(t->m->n_values, sizeof *r->rg);
    assert_non_null(r->vals);
    assert_non_null(r->rg);
}

static void run_free(run *r) {
    for (uint32_t i = 0; i < r->n_in; i++) {
        free(r->in_f[i]);
        free(r->in_d[i]);
    }
    for (uint32_t i = 0; i < 8; i++) {
        free(r->r_f[i]);
        free(r->r_d[i]);
    }
    ref_free(r->m, r->vals);
    ref_free(r->m, r->rg);
    free(r->vals);
    free(r->rg);
}

/* L = sum over outputs of sum(y * R), from the current reference values. */
static double dot_loss(const run *r) {
    double l = 0;
    for (uint32_t i = 0; i < r->m->n_outputs; i++) {
        uint32_t v = r->m->outputs[i];
        int64_t n = ref_numel(r->m, v, r->batch);
        for (int64_t k = 0; k < n; k++) l += r->vals[v][k] * r->r_d[i][k];
    }
    return l;
}

/* dL/d(values[v][k]) by central differences on the reference (training mode). */
static double fd_at(run *r, uint32_t v, int64_t k, double eps, double (*loss)(const run *, const void *),
                    const void *ud) {
    /* only the ops from v's first use on change */
    uint32_t from = ref_first_use(r->m, v);
    double save = r->vals[v][k];
    r->vals[v][k] = save + eps;
    assert_int_equal(ref_run_from(r->m, NULL, REF_TRAIN, r->batch, r->vals, from), 0);
    double lp = loss(r, ud);
    r->vals[v][k] = save - eps;
    assert_int_equal(ref_run_from(r->m, NULL, REF_TRAIN, r->batch, r->vals, from), 0);
    double lm = loss(r, ud);
    r->vals[v][k] = save;
    assert_int_equal(ref_run_from(r->m, NULL, REF_TRAIN, r->batch, r->vals, from), 0);
    return (lp - lm) / (2 * eps);
}

static double dot_loss_cb(const run *r, const void *ud) {
    (void)ud;
    return dot_loss(r);
}

/* Which gradient is being checked: the backend's or the reference's own. */
typedef enum grad_src { SRC_BACKEND, SRC_REF } grad_src;

/* Append " name err (max m)" to a summary line. */
static void note(char *line, size_t size, const char *name, double err, double mx) {
    size_t off = strlen(line);
    if (off < size) snprintf(line + off, size - off, " %s %.2e (max %.1e)", name, err, mx);
}

/* The backend's gradients of every input and parameter, as doubles, into
 * got[v] (allocated here). False (with the diagnostic printed) when one
 * cannot be read; its entry is then zero. */
static bool net_grads(nasc_ctx *ctx, nasc_net *net, const nasc_module *m, int batch, double **got) {
    bool ok = true;
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind == NASC_VAL_OP) continue;
        int64_t n = ref_numel(m, v, batch);
        float *g = calloc((size_t)n, sizeof *g);
        if (!got[v]) got[v] = malloc((size_t)n * sizeof(double));
        assert_non_null(g);
        assert_non_null(got[v]);
        if (nasc_net_read_grad(net, nasc_str(m, m->values[v].name), g)) {
            nasc_diag_print(&ctx->diag, stderr);
            ok = false;
            memset(g, 0, (size_t)n * sizeof *g);
        }
        for (int64_t k = 0; k < n; k++) got[v][k] = g[k];
        free(g);
    }
    return ok;
}

/* The whole check of one module; returns true when every error is within
 * tolerance. Backend: forward vs reference, backward vs FD. Reference:
 * ref_backward vs FD. */
static bool tc_check(tcase *t, const char *label, grad_src src) {
    randomize_params(t, false);
    run r;
    run_init(&r, t);
    const nasc_module *m = t->m;
    bool ok = true;
    char shapes[2048], line[4096];
    describe(m, t->batch, shapes, sizeof shapes);
    snprintf(line, sizeof line, "[%s%s] seed %llu %s%s |", src == SRC_REF ? "ref:" : "", label,
             (unsigned long long)t->seed, shapes, t->mode == NASC_MODE_INFER ? (t->fuse ? " (infer, fused)" : " (infer)") : "");

    int rc = t->mode == NASC_MODE_TRAIN ? ref_forward(m, t->ps, t->batch, (const double *const *)r.in_d, r.vals)
                                        : ref_forward_infer(m, t->ps, t->batch, (const double *const *)r.in_d, r.vals);
    assert_int_equal(rc, 0);

    /* got[v]: the gradients under test, as doubles, for inputs and params. */
    double **got = calloc(m->n_values, sizeof *got);
    assert_non_null(got);
    nasc_net *net = NULL;
    if (src == SRC_BACKEND) {
        nasc_net_options o = nasc_net_options_default();
        o.batch = t->batch;
        o.mode = t->mode;
        o.input_grad = true;
        o.fuse = t->fuse;
        o.parallel = t->parallel;
        if (nasc_net_compile(&t->ctx, m, t->ps, &o, &net)) {
            nasc_diag_print(&t->ctx.diag, stderr);
            ok = false;
            goto done;
        }
        for (uint32_t i = 0; i < r.n_in; i++) assert_int_equal(nasc_net_set_input(net, i, r.in_f[i]), NASC_OK);
        if (nasc_net_forward(net)) {
            nasc_diag_print(&t->ctx.diag, stderr);
            ok = false;
            goto done;
        }
        double worst = 0, worst_mx = 0;
        for (uint32_t i = 0; i < m->n_outputs; i++) {
            uint32_t v = m->outputs[i];
            int64_t n = ref_numel(m, v, t->batch);
            float *y = malloc((size_t)n * sizeof *y);
            assert_non_null(y);
            if (nasc_net_read(net, nasc_str(m, m->values[v].name), y)) {
                nasc_diag_print(&t->ctx.diag, stderr);
                ok = false;
            } else {
                double mx, e = ref_rel_err_f(y, r.vals[v], n, &mx);
                if (!(e <= worst)) worst = e, worst_mx = mx;
            }
            free(y);
        }
        note(line, sizeof line, "fwd", worst, worst_mx);
        if (!(worst <= FWD_TOL)) ok = false;
        if (t->mode == NASC_MODE_INFER) goto done;
        for (uint32_t i = 0; i < m->n_outputs; i++)
            assert_int_equal(nasc_net_set_output_grad(net, i, r.r_f[i]), NASC_OK);
        if (nasc_net_backward(net)) {
            nasc_diag_print(&t->ctx.diag, stderr);
            ok = false;
            goto done;
        }
        if (!net_grads(&t->ctx, net, m, t->batch, got)) ok = false;
        /* A second step on the same net gives the same gradients: they are
         * overwritten, not accumulated, and nothing leaks from step to step. */
        double **again = calloc(m->n_values, sizeof *again);
        assert_non_null(again);
        for (uint32_t i = 0; i < r.n_in; i++) assert_int_equal(nasc_net_set_input(net, i, r.in_f[i]), NASC_OK);
        bool ran = !nasc_net_forward(net);
        for (uint32_t i = 0; ran && i < m->n_outputs; i++) ran = !nasc_net_set_output_grad(net, i, r.r_f[i]);
        ran = ran && !nasc_net_backward(net) && net_grads(&t->ctx, net, m, t->batch, again);
        double aw = ran ? 0 : 1, amx = 0;
        for (uint32_t v = 0; ran && v < m->n_values; v++) {
            if (!again[v]) continue;
            double mx, e = ref_rel_err_d(again[v], got[v], ref_numel(m, v, t->batch), &mx);
            if (!(e <= aw)) aw = e, amx = mx;
        }
        note(line, sizeof line, "again", aw, amx);
        if (!(aw <= 1e-6)) ok = false;
        for (uint32_t v = 0; v < m->n_values; v++) free(again[v]);
        free(again);
    } else {
        assert_int_equal(ref_backward(m, t->batch, r.vals, (const double *const *)r.r_d, r.rg), 0);
        for (uint32_t v = 0; v < m->n_values; v++) {
            if (m->values[v].kind == NASC_VAL_OP) continue;
            int64_t n = ref_numel(m, v, t->batch);
            got[v] = malloc((size_t)n * sizeof(double));
            assert_non_null(got[v]);
            memcpy(got[v], r.rg[v], (size_t)n * sizeof(double));
        }
    }

    /* Finite differences of every input and parameter element. */
    for (uint32_t v = 0; v < m->n_values; v++) {
        if (m->values[v].kind == NASC_VAL_OP) continue;
        int64_t n = ref_numel(m, v, t->batch);
        if (ids_rows(m, v) > 0) {
            /* token numbers are not differentiable: their gradient is 0 */
            double mx = 0;
            for (int64_t k = 0; k < n; k++) mx = fmax(mx, fabs(got[v][k]));
            note(line, sizeof line, nasc_str(m, m->values[v].name), mx, mx);
            if (mx != 0) ok = false;
            continue;
        }
        /* every element, or FD_SAMPLES random ones of a big tensor */
        int64_t ns = n <= FD_ALL ? n : FD_SAMPLES;
        double *fd = malloc((size_t)ns * sizeof *fd), *g = malloc((size_t)ns * sizeof *g);
        assert_non_null(fd);
        assert_non_null(g);
        /* inputs scaled down (to make batch-norm eps matter) get a step to match */
        double eps = m->values[v].kind == NASC_VAL_INPUT ? FD_EPS * t->in_scale : FD_EPS;
        for (int64_t s = 0; s < ns; s++) {
            int64_t k = ns == n ? s : (int64_t)nasc_rng_below(&t->rng, (uint64_t)n);
            fd[s] = fd_at(&r, v, k, eps, dot_loss_cb, NULL);
            g[s] = got[v][k];
        }
        double mx, e = ref_rel_err_d(g, fd, ns, &mx);
        note(line, sizeof line, nasc_str(m, m->values[v].name), e, mx);
        if (!(e <= (src == SRC_REF ? REF_TOL : BWD_TOL))) ok = false;
        free(fd);
        free(g);
    }

done:
    printf("%s%s\n", line, ok ? "" : "  <-- FAIL");
    fflush(stdout);
    nasc_net_destroy(net);
    for (uint32_t v = 0; v < m->n_values; v++) free(got[v]);
    free(got);
    run_free(&r);
    return ok;
}

/* ---------------------------------------------------------------- */
/* Op cases: each builds instance i of a random tiny module          */
/* ---------------------------------------------------------------- */

typedef struct conv_cfg {
    int c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups;
} conv_cfg;

/* Grow the input until the (dilated) kernel fits the padded input. */
static void conv_fit(conv_cfg *c) {
    while (c->h + c->pt + c->pb < (c->kh - 1) * c->dh + 1) c->h++;
    while (c->w + c->pl + c->pr < (c->kw - 1) * c->dw + 1) c->w++;
}

/* The conv of c on value x (weights "w") as the output "y". */
static void conv_output(tcase *t, uint32_t x, const conv_cfg *c) {
    uint32_t w = tc_param(t, "w", 4, c->o, c->c / c->groups, c->kh, c->kw, NULL);
    nasc_prim_attrs a = attrs_window(c->kh, c->kw, c->sh, c->sw, c->pt, c->pl, c->pb, c->pr);
    a.dh = c->dh;
    a.dw = c->dw;
    a.groups = c->groups;
    uint32_t args[2] = {x, w};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, args, 2, &a, "y"));
}

static void build_conv_cfg(tcase *t, conv_cfg c) {
    conv_fit(&c);
    conv_output(t, tc_input(t, "x", 4, c.c, c.h, c.w), &c);
}

/* A k x k conv with "same" padding (the odd pixel of an even kernel at the
 * bottom/right, as the lowering does), odd spatial sizes, batch 1-2. */
static conv_cfg conv_base(tcase *t, int k) {
    conv_cfg c = {0};
    c.c = ri(t, 1, 3);
    c.h = 2 * ri(t, 1, 3) + 1;
    c.w = 2 * ri(t, 1, 3) + 1;
    c.o = ri(t, 1, 4);
    c.kh = c.kw = k;
    c.sh = c.sw = c.dh = c.dw = c.groups = 1;
    c.pt = c.pl = (k - 1) / 2;
    c.pb = c.pr = (k - 1) - (k - 1) / 2;
    t->batch = ri(t, 1, 2);
    return c;
}

/* A convolution whose weights are computed by the net (SMASH's generated
 * weights): w = wa * wb, both parameters, so the weight gradient flows on
 * to what computed it. Instances: 1x1, 3x3, 3x3 on 16 channels (blocked
 * layouts for x and for the computed w), 3x3 in 2 groups. */
static void build_conv_computed_w(tcase *t, int i) {
    conv_cfg c = conv_base(t, i == 0 ? 1 : 3);
    c.o = ri(t, 2, 4);
    if (i == 2) c.c = c.o = 16;
    if (i == 3) {
        c.groups = 2;
        c.c = 2 * ri(t, 1, 2);
        c.o = 4;
    }
    conv_fit(&c);
    uint32_t x = tc_input(t, "x", 4, c.c, c.h, c.w);
    int64_t ci = c.c / c.groups;
    uint32_t wargs[2] = {tc_param(t, "wa", 4, c.o, ci, c.kh, c.kw, NULL), tc_param(t, "wb", 4, c.o, ci, c.kh, c.kw, NULL)};
    uint32_t w = tc_op(t, NASC_PRIM_MUL, wargs, 2, NULL, "w");
    nasc_prim_attrs a = attrs_window(c.kh, c.kw, 1, 1, c.pt, c.pl, c.pb, c.pr);
    a.groups = c.groups;
    uint32_t args[2] = {x, w};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, args, 2, &a, "y"));
}

/* SMASH's weight normalization: conv(x, normalize(w)), w a parameter
 * (instances 0, 1; 16 channels in 1) or computed, wa * wb (instance 2). */
static void build_conv_normalized_w(tcase *t, int i) {
    conv_cfg c = conv_base(t, 3);
    c.o = ri(t, 2, 4);
    if (i == 1) c.c = c.o = 16;
    conv_fit(&c);
    uint32_t x = tc_input(t, "x", 4, c.c, c.h, c.w);
    uint32_t w = tc_param(t, "wa", 4, c.o, c.c, c.kh, c.kw, NULL);
    if (i == 2) {
        uint32_t wargs[2] = {w, tc_param(t, "wb", 4, c.o, c.c, c.kh, c.kw, NULL)};
        w = tc_op(t, NASC_PRIM_MUL, wargs, 2, NULL, "w");
    }
    uint32_t wn = tc_op(t, NASC_PRIM_NORMALIZE, &w, 1, NULL, "wn");
    nasc_prim_attrs a = attrs_window(c.kh, c.kw, 1, 1, c.pt, c.pl, c.pb, c.pr);
    uint32_t args[2] = {x, wn};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, args, 2, &a, "y"));
}

static void build_conv_dense(tcase *t, int i) {
    static const int ks[] = {1, 3, 5, 3, 2};
    build_conv_cfg(t, conv_base(t, ks[i % 5]));
}

static void build_conv_strided(tcase *t, int i) {
    conv_cfg c = conv_base(t, i == 3 ? 2 : 3);
    c.sh = ri(t, 1, 3);
    c.sw = ri(t, 2, 3);
    c.h += 2;
    c.w += 2;
    c.pt = ri(t, 0, c.kh - 1);
    c.pb = ri(t, 0, c.kh - 1);
    c.pl = ri(t, 0, c.kw - 1);
    c.pr = ri(t, 0, c.kw - 1);
    build_conv_cfg(t, c);
}

static void build_conv_dilated(tcase *t, int i) {
    conv_cfg c = conv_base(t, i == 2 ? 2 : 3);
    c.dh = ri(t, 1, 3);
    c.dw = ri(t, 2, 3);
    int eh = (c.kh - 1) * c.dh, ew = (c.kw - 1) * c.dw;
    c.pt = ri(t, 0, eh);
    c.pb = ri(t, 0, eh);
    c.pl = ri(t, 0, ew);
    c.pr = ri(t, 0, ew);
    if (i == 3) c.sh = c.sw = 2;
    build_conv_cfg(t, c);
}

static void build_conv_grouped(tcase *t, int i) {
    conv_cfg c = conv_base(t, i == 1 ? 1 : 3);
    c.groups = ri(t, 2, 3);
    c.c = c.groups * ri(t, 1, 2);
    c.o = c.groups * ri(t, 1, 2);
    build_conv_cfg(t, c);
}

/* groups = C_in: NASNet/DARTS separable and dilated convs (multiplier 1). */
static void build_conv_depthwise(tcase *t, int i) {
    conv_cfg c = conv_base(t, i % 2 ? 5 : 3);
    c.c = c.groups = ri(t, 2, 4);
    c.o = i == 3 ? 2 * c.c : c.c;
    if (i == 2) c.sh = c.sw = 2;
    if (i == 1) c.dh = c.dw = 2, c.pt = c.pl = c.pb = c.pr = 4;
    build_conv_cfg(t, c);
}

static void build_conv_1x7(tcase *t, int i) {
    conv_cfg c = conv_base(t, 1);
    c.kh = 1;
    c.kw = 7;
    c.pt = c.pb = 0;
    c.pl = i == 0 ? 3 : ri(t, 0, 6);
    c.pr = i == 0 ? 3 : ri(t, 0, 6);
    c.sw = i == 2 ? 2 : 1;
    c.w = ri(t, 3, 9);
    build_conv_cfg(t, c);
}

static void build_conv_7x1(tcase *t, int i) {
    conv_cfg c = conv_base(t, 1);
    c.kh = 7;
    c.kw = 1;
    c.pl = c.pr = 0;
    c.pt = i == 0 ? 3 : ri(t, 0, 6);
    c.pb = i == 0 ? 3 : ri(t, 0, 6);
    c.sh = i == 2 ? 2 : 1;
    c.h = ri(t, 3, 9);
    build_conv_cfg(t, c);
}

static void build_conv_asym_pad(tcase *t, int i) {
    conv_cfg c = conv_base(t, 3);
    c.kh = ri(t, 2, 4);
    c.kw = ri(t, 2, 4);
    c.pt = ri(t, 0, c.kh - 1);
    c.pl = ri(t, 0, c.kw - 1);
    c.pb = ri(t, 0, c.kh - 1);
    c.pr = ri(t, 0, c.kw - 1);
    c.h = ri(t, 3, 8);
    c.w = ri(t, 3, 8);
    if (i == 0) c.pt = 0, c.pl = 1, c.pb = 2, c.pr = 0;
    build_conv_cfg(t, c);
}

/* The factorized-reduction convs: 1x1, stride 2, no padding, odd and even sizes. */
static void build_conv_1x1_s2(tcase *t, int i) {
    conv_cfg c = conv_base(t, 1);
    c.sh = c.sw = 2;
    c.h = 4 + i;
    c.w = 5 + i;
    build_conv_cfg(t, c);
}

static void build_bn(tcase *t, int rank, float eps) {
    int c = ri(t, 1, 4);
    uint32_t x = rank == 4 ? tc_input(t, "x", 4, c, ri(t, 1, 4), ri(t, 1, 4)) : tc_input(t, "x", 2, c, 0, 0);
    uint32_t args[3] = {x, tc_param(t, "bn.scale", 1, c, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, c, 0, 0, 0, NULL)};
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.eps = eps;
    tc_output(t, tc_op(t, NASC_PRIM_BATCH_NORM, args, 3, &a, "bn"));
}

static void build_bn_train4(tcase *t, int i) {
    t->batch = ri(t, 2, 3);
    /* a small input variance makes the eps matter: using the wrong one shows */
    if (i == 2) t->in_scale = 0.05;
    build_bn(t, 4, i % 2 ? 1e-3f : 1e-5f);
}

static void build_bn_train2(tcase *t, int i) {
    t->batch = ri(t, 3, 6);
    if (i == 1) t->in_scale = 0.05;
    build_bn(t, 2, i % 2 ? 1e-3f : 1e-5f);
}

static void build_bn_infer(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    t->mode = NASC_MODE_INFER;
    build_bn(t, i % 2 ? 2 : 4, i == 2 ? 1e-3f : 1e-5f);
}

/* conv -> bn -> relu -> conv in training, with fusion on: the relu runs
 * inside the batch norm, forward and backward. Channels 3 (plain layout)
 * and 16 (blocked); i == 3 adds a second use of the batch norm's result,
 * which keeps the relu separate. */
static void build_bn_relu_train(tcase *t, int i) {
    t->fuse = true;
    t->batch = ri(t, 2, 3);
    int c = i % 2 ? 16 : 3;
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 3, 5), ri(t, 3, 5));
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x, tc_param(t, "conv.w", 4, c, c, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t bargs[3] = {y, tc_param(t, "bn.scale", 1, c, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, c, 0, 0, 0, NULL)};
    uint32_t b = tc_op(t, NASC_PRIM_BATCH_NORM, bargs, 3, NULL, "bn");
    uint32_t r = tc_op(t, NASC_PRIM_RELU, &b, 1, NULL, "relu");
    uint32_t c2[2] = {r, tc_param(t, "conv2.w", 4, c, c, 3, 3, NULL)};
    uint32_t z = tc_op(t, NASC_PRIM_CONV, c2, 2, &a, "conv2");
    if (i == 3) {
        uint32_t sum[2] = {z, b};
        z = tc_op(t, NASC_PRIM_ADD, sum, 2, NULL, "sum");
    }
    tc_output(t, z);
}

/* Inference with fusion: add(a, conv -> bn) where a is a conv's folded
 * batch norm (i 0, 1), an average pool (i 2) or an earlier add (i 3): the conv
 * sums into a's tensor. 16 channels (blocked) for i odd, else 3. */
static void build_conv_sum_infer(tcase *t, int i) {
    t->mode = NASC_MODE_INFER;
    t->fuse = true;
    t->batch = ri(t, 1, 2);
    int c = i % 2 ? 16 : 3;
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 3, 5), ri(t, 3, 5));
    nasc_prim_attrs a3 = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t a;
    if (i == 2) {
        a = tc_op(t, NASC_PRIM_AVG_POOL, &x, 1, &a3, "pool");
    } else {
        uint32_t ca[2] = {x, tc_param(t, "ca.w", 4, c, c, 3, 3, NULL)};
        uint32_t y = tc_op(t, NASC_PRIM_CONV, ca, 2, &a3, "ca");
        uint32_t ba[3] = {y, tc_param(t, "ba.scale", 1, c, 0, 0, 0, NULL), tc_param(t, "ba.shift", 1, c, 0, 0, 0, NULL)};
        a = tc_op(t, NASC_PRIM_BATCH_NORM, ba, 3, NULL, "ba");
    }
    if (i == 3) {
        uint32_t xx[2] = {x, a};
        a = tc_op(t, NASC_PRIM_ADD, xx, 2, NULL, "first");
    }
    uint32_t cb[2] = {x, tc_param(t, "cb.w", 4, c, c, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cb, 2, &a3, "cb");
    uint32_t bb[3] = {y, tc_param(t, "bb.scale", 1, c, 0, 0, 0, NULL), tc_param(t, "bb.shift", 1, c, 0, 0, 0, NULL)};
    uint32_t b = tc_op(t, NASC_PRIM_BATCH_NORM, bb, 3, NULL, "bb");
    uint32_t ab[2] = {i == 1 ? b : a, i == 1 ? a : b};
    tc_output(t, tc_op(t, NASC_PRIM_ADD, ab, 2, NULL, "sum"));
}

/* conv 3x3 -> bn in inference at a shape oneDNN runs with a Winograd
 * kernel on AVX-512 (stride 1, batch 4 or more, channels multiples of 16;
 * test_winograd_chosen checks that it does), fused (i odd: the batch norm
 * folded into the convolution's weights and bias) and not, reading the net
 * input (plain, i < 2) or a relu of it (the net's layout). No relu after the
 * batch norm: the reference's own gradient check of this case (in training
 * mode) would cross its kink. */
static void build_conv_winograd_infer(tcase *t, int i) {
    t->mode = NASC_MODE_INFER;
    t->fuse = i % 2;
    t->batch = i < 2 ? 4 : 8;
    int c = 16 * ri(t, 1, 2), o = 16 * ri(t, 1, 2);
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 6, 10), ri(t, 6, 10));
    if (i >= 2) x = tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "in");
    uint32_t w = tc_param(t, "conv.w", 4, o, c, 3, 3, NULL);
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x, w};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t bargs[3] = {y, tc_param(t, "bn.scale", 1, o, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, o, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_BATCH_NORM, bargs, 3, NULL, "bn"));
}

/* conv -> bn -> relu in inference, fused (i odd) and not. */
static void build_conv_bn_relu_infer(tcase *t, int i) {
    t->mode = NASC_MODE_INFER;
    t->fuse = i % 2;
    t->batch = ri(t, 1, 3);
    int c = ri(t, 1, 3), o = ri(t, 1, 4);
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 3, 7), ri(t, 3, 7));
    uint32_t w = tc_param(t, "conv.w", 4, o, c, 3, 3, NULL);
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x, w};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t bargs[3] = {y, tc_param(t, "bn.scale", 1, o, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, o, 0, 0, 0, NULL)};
    y = tc_op(t, NASC_PRIM_BATCH_NORM, bargs, 3, NULL, "bn");
    tc_output(t, tc_op(t, NASC_PRIM_RELU, &y, 1, NULL, "relu"));
}

static void build_unary(tcase *t, int i, nasc_prim_op op) {
    t->batch = ri(t, 1, 3);
    uint32_t x = i % 2 ? tc_input(t, "x", 2, ri(t, 1, 7), 0, 0) : tc_input(t, "x", 4, ri(t, 1, 3), ri(t, 1, 5), ri(t, 1, 5));
    tc_output(t, tc_op(t, op, &x, 1, NULL, "y"));
}

static void build_relu(tcase *t, int i) {
    t->gen = GEN_DISTINCT; /* no input within 1e-3 of the kink */
    build_unary(t, i, NASC_PRIM_RELU);
}
static void build_tanh(tcase *t, int i) { build_unary(t, i, NASC_PRIM_TANH); }
static void build_sigmoid(tcase *t, int i) {
    t->in_scale = 2;
    build_unary(t, i, NASC_PRIM_SIGMOID);
}
static void build_identity(tcase *t, int i) { build_unary(t, i, NASC_PRIM_IDENTITY); }

static void build_pool(tcase *t, nasc_prim_op op, int cip) {
    t->batch = ri(t, 1, 2);
    t->gen = GEN_DISTINCT; /* no ties: max_pool is differentiable everywhere we probe */
    int kh = ri(t, 1, 4), kw = ri(t, 2, 4);
    nasc_prim_attrs a = attrs_window(kh, kw, ri(t, 1, 3), ri(t, 1, 2), ri(t, 0, kh - 1), ri(t, 0, kw - 1),
                                     ri(t, 0, kh - 1), ri(t, 0, kw - 1));
    a.count_include_pad = cip;
    int h = ri(t, 3, 8), w = ri(t, 3, 8);
    if (h + a.pt + a.pb < kh) h = kh;
    if (w + a.pl + a.pr < kw) w = kw;
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 3), h, w);
    tc_output(t, tc_op(t, op, &x, 1, &a, "y"));
}

/* The lowering's pools: 3x3, pads 1, stride 1 or 2, count_include_pad 0. */
static void build_pool_3x3(tcase *t, nasc_prim_op op, int i) {
    t->batch = 2;
    t->gen = GEN_DISTINCT;
    int s = i % 2 + 1;
    nasc_prim_attrs a = attrs_window(3, 3, s, s, 1, 1, 1, 1);
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 3), ri(t, 3, 8), ri(t, 3, 8));
    tc_output(t, tc_op(t, op, &x, 1, &a, "y"));
}

static void build_max_pool(tcase *t, int i) {
    if (i < 2)
        build_pool_3x3(t, NASC_PRIM_MAX_POOL, i);
    else
        build_pool(t, NASC_PRIM_MAX_POOL, 0);
}
static void build_avg_pool_excl(tcase *t, int i) {
    if (i < 2)
        build_pool_3x3(t, NASC_PRIM_AVG_POOL, i);
    else
        build_pool(t, NASC_PRIM_AVG_POOL, 0);
}
static void build_avg_pool_incl(tcase *t, int i) {
    (void)i;
    build_pool(t, NASC_PRIM_AVG_POOL, 1);
}

static void build_global_avg_pool(tcase *t, int i) {
    (void)i;
    t->batch = ri(t, 1, 3);
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 4), ri(t, 1, 6), ri(t, 1, 6));
    tc_output(t, tc_op(t, NASC_PRIM_GLOBAL_AVG_POOL, &x, 1, NULL, "y"));
}

static void build_shift(tcase *t, int i) {
    t->batch = ri(t, 1, 2);
    int h = ri(t, 2, 6), w = ri(t, 2, 6);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    static const int fixed[3][2] = {{1, 1}, {0, 1}, {1, 0}};
    a.dy = i < 3 ? fixed[i][0] : ri(t, 0, h - 1);
    a.dx = i < 3 ? fixed[i][1] : ri(t, 0, w - 1);
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 3), h, w);
    tc_output(t, tc_op(t, NASC_PRIM_SHIFT, &x, 1, &a, "y"));
}

/* Inputs x0..x{n-1} of one random shape (rank 4 when i is even, else 2). */
static void same_inputs(tcase *t, int i, uint32_t n, uint32_t *ids) {
    t->batch = ri(t, 1, 3);
    int c = ri(t, 1, 3), h = ri(t, 1, 5), w = ri(t, 1, 5);
    for (uint32_t k = 0; k < n; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%u", k);
        ids[k] = i % 2 ? tc_input(t, name, 2, c * h, 0, 0) : tc_input(t, name, 4, c, h, w);
    }
}

static void build_add2(tcase *t, int i) {
    uint32_t x[2];
    same_inputs(t, i, 2, x);
    tc_output(t, tc_op(t, NASC_PRIM_ADD, x, 2, NULL, "y"));
}

static void build_add3(tcase *t, int i) {
    uint32_t x[3];
    same_inputs(t, i, 3, x);
    tc_output(t, tc_op(t, NASC_PRIM_ADD, x, 3, NULL, "y"));
}

/* add(x0, x1, x0): an operand repeated in one op; its gradient counts twice. */
static void build_add_repeat(tcase *t, int i) {
    uint32_t x[2];
    same_inputs(t, i, 2, x);
    uint32_t args[3] = {x[0], x[1], x[0]};
    tc_output(t, tc_op(t, NASC_PRIM_ADD, args, 3, NULL, "y"));
}

static void build_mul(tcase *t, int i) {
    uint32_t x[2];
    same_inputs(t, i, 2, x);
    tc_output(t, tc_op(t, NASC_PRIM_MUL, x, 2, NULL, "y"));
}

/* The same unary op applied to one value more than once (a cell's ops
 * each apply their own relu to a shared input): computed once, with every
 * copy's gradient reaching x. Copies feed different ops; i odd: on a
 * blocked 16-channel activation; i == 2: one copy is an output; i == 3 in
 * inference. */
static void build_repeated_unary(tcase *t, int i) {
    uint32_t x;
    if (i % 2) {
        t->batch = 2;
        uint32_t in = tc_input(t, "x", 4, 16, 3, 3);
        uint32_t cargs[2] = {in, tc_param(t, "w", 4, 16, 16, 1, 1, NULL)};
        nasc_prim_attrs a = attrs_window(1, 1, 1, 1, 0, 0, 0, 0);
        x = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "h");
    } else {
        same_inputs(t, i, 1, &x);
    }
    if (i == 3) t->mode = NASC_MODE_INFER;
    uint32_t r1 = tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "r1");
    uint32_t s1 = tc_op(t, NASC_PRIM_SIGMOID, &x, 1, NULL, "s1");
    uint32_t r2 = tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "r2");
    uint32_t s2 = tc_op(t, NASC_PRIM_SIGMOID, &x, 1, NULL, "s2");
    uint32_t r3 = tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "r3");
    uint32_t margs[2] = {r2, s2};
    uint32_t mu = tc_op(t, NASC_PRIM_MUL, margs, 2, NULL, "m");
    uint32_t aargs[3] = {r1, s1, mu};
    tc_output(t, tc_op(t, NASC_PRIM_ADD, aargs, 3, NULL, "y"));
    if (i == 2) tc_output(t, r3);
}

/* Fan-out: t = tanh(x) feeds three ops (twice into one of them) and x feeds
 * two; three outputs, each with its own gradient. Gradients must
 * accumulate over every use. */
static void build_fanout(tcase *t, int i) {
    uint32_t x;
    same_inputs(t, i, 1, &x);
    uint32_t th = tc_op(t, NASC_PRIM_TANH, &x, 1, NULL, "t");
    uint32_t aargs[3] = {th, x, th};
    uint32_t a = tc_op(t, NASC_PRIM_ADD, aargs, 3, NULL, "a");
    uint32_t margs[2] = {th, th};
    uint32_t b = tc_op(t, NASC_PRIM_MUL, margs, 2, NULL, "b");
    uint32_t s = tc_op(t, NASC_PRIM_SIGMOID, &x, 1, NULL, "s");
    uint32_t cargs[2] = {s, th};
    uint32_t c = tc_op(t, NASC_PRIM_CONCAT, cargs, 2, NULL, "c");
    tc_output(t, a);
    tc_output(t, b);
    tc_output(t, c);
}

/* Inputs with the same shape except along axis, n of them. */
static void concat_inputs(tcase *t, int rank, int axis, uint32_t n, uint32_t *ids) {
    t->batch = ri(t, 1, 3);
    int64_t d[4] = {0, ri(t, 1, 3), ri(t, 1, 4), ri(t, 1, 4)};
    for (uint32_t k = 0; k < n; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%u", k);
        d[axis] = ri(t, 1, 4);
        ids[k] = tc_input(t, name, rank, d[1], d[2], d[3]);
    }
}

static void build_concat2(tcase *t, int i) {
    uint32_t x[2];
    concat_inputs(t, i == 3 ? 2 : 4, 1, 2, x);
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, x, 2, NULL, "y"));
}

static void build_concat3(tcase *t, int i) {
    uint32_t x[3];
    concat_inputs(t, i == 3 ? 2 : 4, 1, 3, x);
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, x, 3, NULL, "y"));
}

/* concat(x0, x1, x0): the same value twice, as a cell output can. */
static void build_concat_repeat(tcase *t, int i) {
    (void)i;
    uint32_t x[2];
    concat_inputs(t, 4, 1, 2, x);
    uint32_t args[3] = {x[0], x[1], x[0]};
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, args, 3, NULL, "y"));
}

/* Along H or W: the IR allows it (the lowering only concatenates channels). */
static void build_concat_spatial(tcase *t, int i) {
    uint32_t x[2];
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.axis = 2 + i % 2;
    concat_inputs(t, 4, a.axis, 2, x);
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, x, 2, &a, "y"));
}

static void build_inner_product(tcase *t, int i) {
    (void)i;
    t->batch = ri(t, 1, 4);
    int in = ri(t, 1, 12), out = ri(t, 1, 6);
    uint32_t args[3] = {tc_input(t, "x", 2, in, 0, 0), tc_param(t, "fc.w", 2, out, in, 0, 0, NULL),
                        tc_param(t, "fc.b", 1, out, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "y"));
}

static void build_flatten(tcase *t, int i) {
    (void)i;
    t->batch = ri(t, 1, 3);
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 3), ri(t, 1, 4), ri(t, 1, 4));
    tc_output(t, tc_op(t, NASC_PRIM_FLATTEN, &x, 1, NULL, "y"));
}

/* The head: flatten (N,C,H,W) -> (N, CHW), then inner product. */
static void build_flatten_ip(tcase *t, int i) {
    (void)i;
    t->batch = ri(t, 1, 3);
    int c = ri(t, 1, 3), h = ri(t, 1, 3), w = ri(t, 1, 3), out = ri(t, 1, 5);
    uint32_t x = tc_input(t, "x", 4, c, h, w);
    uint32_t f = tc_op(t, NASC_PRIM_FLATTEN, &x, 1, NULL, "flat");
    uint32_t args[3] = {f, tc_param(t, "fc.w", 2, out, c * h * w, 0, 0, NULL), tc_param(t, "fc.b", 1, out, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "y"));
}

static void build_softmax(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    t->in_scale = 2;
    uint32_t x = i % 2 ? tc_input(t, "x", 4, ri(t, 2, 4), ri(t, 1, 3), ri(t, 1, 3)) : tc_input(t, "x", 2, ri(t, 2, 8), 0, 0);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.axis = 1;
    tc_output(t, tc_op(t, NASC_PRIM_SOFTMAX, &x, 1, &a, "y"));
}

/* A small net: conv -> bn -> relu -> max_pool -> conv (depthwise) -> add
 * (skip) -> avg_pool -> global_avg_pool -> flatten -> inner_product. */
static void build_chain(tcase *t, int i) {
    t->batch = 2 + i % 2;
    int c = ri(t, 1, 2), f = ri(t, 2, 4);
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 5, 8), ri(t, 5, 8));
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t args[3] = {x, tc_param(t, "c1.w", 4, f, c, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, args, 2, &a, "c1");
    uint32_t bargs[3] = {y, tc_param(t, "bn.scale", 1, f, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, f, 0, 0, 0, NULL)};
    y = tc_op(t, NASC_PRIM_BATCH_NORM, bargs, 3, NULL, "bn");
    y = tc_op(t, NASC_PRIM_RELU, &y, 1, NULL, "relu");
    nasc_prim_attrs pa = attrs_window(3, 3, 2, 2, 1, 1, 1, 1);
    uint32_t p = tc_op(t, NASC_PRIM_MAX_POOL, &y, 1, &pa, "mp");
    nasc_prim_attrs da = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    da.groups = f;
    uint32_t dargs[2] = {p, tc_param(t, "dw.w", 4, f, 1, 3, 3, NULL)};
    uint32_t d = tc_op(t, NASC_PRIM_CONV, dargs, 2, &da, "dw");
    uint32_t sargs[2] = {d, p};
    uint32_t s = tc_op(t, NASC_PRIM_ADD, sargs, 2, NULL, "skip");
    nasc_prim_attrs aa = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t ap = tc_op(t, NASC_PRIM_AVG_POOL, &s, 1, &aa, "ap");
    uint32_t g = tc_op(t, NASC_PRIM_GLOBAL_AVG_POOL, &ap, 1, NULL, "gap");
    uint32_t fl = tc_op(t, NASC_PRIM_FLATTEN, &g, 1, NULL, "flat");
    uint32_t iargs[3] = {fl, tc_param(t, "fc.w", 2, 3, f, 0, 0, NULL), tc_param(t, "fc.b", 1, 3, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_INNER_PRODUCT, iargs, 3, NULL, "logits"));
}

/* Wide tensors (8 to 24 channels): oneDNN picks blocked layouts
 * (nChw8c/nChw16c) for these, so reorders and channel padding get tested. */
static void build_conv_wide(tcase *t, int i) {
    static const int cs[4][2] = {{8, 16}, {16, 8}, {16, 24}, {13, 16}};
    conv_cfg c = conv_base(t, i == 1 ? 1 : 3);
    c.c = cs[i % 4][0];
    c.o = cs[i % 4][1];
    c.h = ri(t, 3, 5);
    c.w = ri(t, 3, 5);
    c.sh = c.sw = i == 2 ? 2 : 1;
    t->batch = 1 + i % 2;
    build_conv_cfg(t, c);
}

static void build_conv_depthwise_wide(tcase *t, int i) {
    conv_cfg c = conv_base(t, i % 2 ? 5 : 3);
    c.c = c.o = c.groups = i == 2 ? 12 : 16;
    c.h = ri(t, 3, 6);
    c.w = ri(t, 3, 6);
    if (i == 1) c.sh = c.sw = 2;
    build_conv_cfg(t, c);
}

/* Dilated and grouped convolutions on blocked activations (a 1x1 conv puts
 * the input in the net's 8-channel layout): the backward-data oneDNN has no
 * jit kernel for (dilated depthwise) runs as a forward convolution with the
 * flipped kernel; instances cover depthwise 3x3/5x5 with dilation 2 and 3,
 * random pads, and a grouped one whose per-group channels are swapped. */
static void build_conv_dilated_wide(tcase *t, int i) {
    conv_cfg c = conv_base(t, i % 2 ? 5 : 3);
    c.c = 16;
    c.o = 16;
    c.groups = i == 3 ? 2 : 16;
    if (i == 3) c.o = 8;
    c.dh = c.dw = i == 2 ? 3 : 2;
    int eh = (c.kh - 1) * c.dh;
    c.pt = ri(t, 0, eh);
    c.pb = ri(t, 0, eh);
    c.pl = ri(t, 0, eh);
    c.pr = ri(t, 0, eh);
    c.h = ri(t, 3, 7);
    c.w = ri(t, 3, 7);
    conv_fit(&c);
    t->batch = 1 + i % 2;
    uint32_t x = tc_input(t, "x", 4, c.c, c.h, c.w);
    uint32_t w0 = tc_param(t, "w0", 4, c.c, c.c, 1, 1, NULL);
    nasc_prim_attrs a0 = attrs_window(1, 1, 1, 1, 0, 0, 0, 0);
    uint32_t args0[2] = {x, w0};
    conv_output(t, tc_op(t, NASC_PRIM_CONV, args0, 2, &a0, "h"), &c);
}

static void build_bn_wide(tcase *t, int i) {
    t->batch = 2;
    int c = i % 2 ? 16 : 13;
    uint32_t x = tc_input(t, "x", 4, c, ri(t, 1, 3), ri(t, 1, 3));
    uint32_t args[3] = {x, tc_param(t, "bn.scale", 1, c, 0, 0, 0, NULL), tc_param(t, "bn.shift", 1, c, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_BATCH_NORM, args, 3, NULL, "bn"));
}

static void build_pool_wide(tcase *t, int i) {
    t->batch = 1 + i % 2;
    t->gen = GEN_DISTINCT;
    int s = i % 2 + 1;
    nasc_prim_attrs a = attrs_window(3, 3, s, s, 1, 1, 1, 1);
    a.count_include_pad = i == 2;
    uint32_t x = tc_input(t, "x", 4, 16, ri(t, 2, 5), ri(t, 2, 5));
    tc_output(t, tc_op(t, i == 0 ? NASC_PRIM_MAX_POOL : NASC_PRIM_AVG_POOL, &x, 1, &a, "y"));
}

/* Channel concat of wide and narrow, aligned and not (8 + 5 + 16), then a
 * 1x1 conv as in a cell output feeding the next cell's preprocessing. */
static void build_concat_wide(tcase *t, int i) {
    static const int cs[3][3] = {{8, 5, 16}, {16, 16, 8}, {3, 13, 8}};
    t->batch = 2;
    int h = ri(t, 2, 4), w = ri(t, 2, 4), total = 0;
    uint32_t x[3];
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", k);
        x[k] = tc_input(t, name, 4, cs[i % 3][k], h, w);
        total += cs[i % 3][k];
    }
    uint32_t c = tc_op(t, NASC_PRIM_CONCAT, x, 3, NULL, "cat");
    nasc_prim_attrs a = nasc_prim_attrs_default();
    uint32_t args[2] = {c, tc_param(t, "w", 4, 8, total, 1, 1, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, args, 2, &a, "y"));
    tc_output(t, c);
}

static void build_add_wide(tcase *t, int i) {
    t->batch = 2;
    int c = i % 2 ? 16 : 12, h = ri(t, 2, 4), w = ri(t, 2, 4);
    uint32_t x[3];
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", k);
        x[k] = tc_input(t, name, 4, c, h, w);
    }
    /* one of them through a conv so that layouts of the operands differ */
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t args[2] = {x[0], tc_param(t, "w", 4, c, c, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, args, 2, &a, "conv");
    uint32_t sargs[3] = {y, x[1], x[2]};
    tc_output(t, tc_op(t, NASC_PRIM_ADD, sargs, 3, NULL, "y"));
}

/* A cell's output: adds whose only use is a concat (the backend writes
 * them into the concat's tensor), next to an operand the concat copies (a
 * conv's result the adds use too), and two relus of the concat, as the
 * next two cells' inputs; with fusing (i = 1) the concat writes the relu's
 * result. i = 2 also outputs the concat itself, which it then cannot
 * hold relu'd. */
static void build_concat_adds(tcase *t, int i) {
    t->batch = 2;
    t->fuse = i >= 1;
    int c = 16, h = ri(t, 2, 4), w = ri(t, 2, 4);
    uint32_t x0 = tc_input(t, "x0", 4, c, h, w), x1 = tc_input(t, "x1", 4, c, h, w);
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x0, tc_param(t, "w", 4, c, c, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t s1a[2] = {y, x1}, s2a[3] = {x0, y, x1};
    uint32_t parts[3] = {tc_op(t, NASC_PRIM_ADD, s1a, 2, NULL, "s1"), y, tc_op(t, NASC_PRIM_ADD, s2a, 3, NULL, "s2")};
    nasc_prim_attrs cat = nasc_prim_attrs_default();
    cat.axis = 1;
    uint32_t cv = tc_op(t, NASC_PRIM_CONCAT, parts, 3, &cat, "cat");
    uint32_t r1 = tc_op(t, NASC_PRIM_RELU, &cv, 1, NULL, "r1"), r2 = tc_op(t, NASC_PRIM_RELU, &cv, 1, NULL, "r2");
    nasc_prim_attrs one = nasc_prim_attrs_default();
    uint32_t pargs[2] = {r1, tc_param(t, "p", 4, 8, 3 * c, 1, 1, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, pargs, 2, &one, "next"));
    tc_output(t, r2);
    if (i == 2) tc_output(t, cv);
}

/* A factorized reduction: two 1x1 stride-2 convolutions of one relu'd
 * input, the second through a shift, concatenated. The backend runs each
 * as a subsample and a stride-1 convolution; with fuse the shift is folded
 * into the second one's subsample, unless the shift's result is an output
 * too, and the second path's gradient is added into the first's at its
 * pixels (offset 0,0: the same pixels). Instances: channels 16 in and out
 * (nChw16c on AVX-512), 3 or 20 (plain layouts); the net input itself as
 * the source (no relu); odd sizes, bottom/right pads and offsets anywhere
 * in the input reach samples past it (zero). */
static void build_factorized_reduce(tcase *t, int i) {
    static const struct {
        int c, fuse, offset, input, shift_out; /* offset: 1 (1,1), 0 (0,0), -1 random */
    } k[8] = {{16, 0, 1, 0, 0},  {16, 1, -1, 0, 0}, {3, 0, -1, 0, 0},  {16, 1, 0, 0, 0},
              {20, 1, -1, 0, 1}, {16, 1, 1, 1, 0},  {16, 0, -1, 1, 0}, {3, 1, -1, 0, 0}};
    t->batch = 2;
    t->fuse = k[i].fuse;
    int c = k[i].c, co = c == 16 ? 16 : 8, h = ri(t, 2, 7), w = ri(t, 2, 7), pb = ri(t, 0, 1), pr = ri(t, 0, 1);
    uint32_t x = tc_input(t, "x", 4, c, h, w);
    uint32_t r = k[i].input ? x : tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "r");
    nasc_prim_attrs sa = nasc_prim_attrs_default();
    sa.dy = k[i].offset >= 0 ? k[i].offset : ri(t, 0, h - 1);
    sa.dx = k[i].offset >= 0 ? k[i].offset : ri(t, 0, w - 1);
    uint32_t sh = tc_op(t, NASC_PRIM_SHIFT, &r, 1, &sa, "shift");
    nasc_prim_attrs a = attrs_window(1, 1, 2, 2, 0, 0, pb, pr);
    uint32_t a1[2] = {r, tc_param(t, "p1", 4, co, c, 1, 1, NULL)}, a2[2] = {sh, tc_param(t, "p2", 4, co, c, 1, 1, NULL)};
    uint32_t parts[2] = {tc_op(t, NASC_PRIM_CONV, a1, 2, &a, "path1"), tc_op(t, NASC_PRIM_CONV, a2, 2, &a, "path2")};
    nasc_prim_attrs cat = nasc_prim_attrs_default();
    cat.axis = 1;
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, parts, 2, &cat, "cat"));
    if (k[i].shift_out) tc_output(t, sh);
}

/* 1x1 convolutions on 16-channel blocks, whose weight gradient nasc's own
 * kernel computes on AVX-512 (conv1x1.h) in a training lane or a one-thread
 * net (test_1x1_own_chosen checks that it runs): several whole images a
 * chunk of pixels, the last chunk short (256 channels in, batch 14: chunks
 * of 5 and 2 images in each of two lanes); runs of one image's pixels, the
 * last run short (19x19 at 48 + 32 channels), in a lane of one image and in
 * a one-thread net of two; two convolutions of one input concatenated; one
 * weight used by two convolutions (the second one's gradient added into the
 * first's). */
static void build_conv_1x1_16c(tcase *t, int i) {
    static const struct {
        int c, o, hw, batch, convs, shared, one;
    } k[6] = {{16, 16, 5, 2, 1, 0, 0},  {48, 32, 19, 2, 1, 0, 0}, {256, 16, 4, 14, 1, 0, 0},
              {32, 16, 6, 3, 2, 0, 0},  {48, 32, 19, 2, 1, 0, 1}, {16, 16, 6, 2, 2, 1, 1}};
    t->batch = k[i].batch;
    if (k[i].one) t->parallel = NASC_NET_PARALLEL_ONE;
    uint32_t x = tc_input(t, "x", 4, k[i].c, k[i].hw, k[i].hw);
    nasc_prim_attrs a = attrs_window(1, 1, 1, 1, 0, 0, 0, 0);
    uint32_t y[2], w = tc_param(t, "w1", 4, k[i].o, k[i].c, 1, 1, NULL);
    for (int j = 0; j < k[i].convs; j++) {
        if (j == 1 && !k[i].shared) w = tc_param(t, "w2", 4, k[i].o, k[i].c, 1, 1, NULL);
        uint32_t in = j == 1 && k[i].shared ? tc_op(t, NASC_PRIM_RELU, &x, 1, NULL, "r") : x;
        uint32_t args[2] = {in, w};
        y[j] = tc_op(t, NASC_PRIM_CONV, args, 2, &a, j ? "y2" : "y1");
    }
    if (k[i].convs == 1) {
        tc_output(t, y[0]);
        return;
    }
    nasc_prim_attrs cat = nasc_prim_attrs_default();
    cat.axis = 1;
    tc_output(t, tc_op(t, NASC_PRIM_CONCAT, y, 2, &cat, "y"));
}

/* Flatten after a conv with 16 channels: the features are in (C, H, W)
 * order whatever layout the conv produced. */
static void build_flatten_wide(tcase *t, int i) {
    t->batch = 2;
    int c = i ? 13 : 16, h = 2, w = 3;
    uint32_t x = tc_input(t, "x", 4, 8, h, w);
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x, tc_param(t, "conv.w", 4, c, 8, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t f = tc_op(t, NASC_PRIM_FLATTEN, &y, 1, NULL, "flat");
    uint32_t args[3] = {f, tc_param(t, "fc.w", 2, 4, c * h * w, 0, 0, NULL), tc_param(t, "fc.b", 1, 4, 0, 0, 0, NULL)};
    tc_output(t, tc_op(t, NASC_PRIM_INNER_PRODUCT, args, 3, NULL, "y"));
}

/* ---------------------------------------------------------------- */
/* ONNX-shaped cases: broadcasts, fixed first dims, matmul, reshape  */
/* ---------------------------------------------------------------- */

/* An input of any rank with the given dims (dims[0] may be NASC_BATCH or a
 * fixed number, as an ONNX model's static first dim). */
static uint32_t tc_input_dims(tcase *t, const char *name, int rank, const int64_t *dims) {
    nasc_type ty = {NASC_F32, rank, {0, 0, 0, 0}};
    for (int i = 0; i < rank; i++) ty.dims[i] = dims[i];
    uint32_t v = nasc_prim_add_input(t->m, name, &ty);
    if (v == UINT32_MAX) die_diag(t, "nasc_prim_add_input");
    return v;
}

/* A parameter of any rank, left to nasc_params_init and randomize_params. */
static uint32_t tc_param_dims(tcase *t, const char *name, int rank, const int64_t *dims) {
    int64_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < rank; i++) d[i] = dims[i];
    return tc_param(t, name, rank, d[0], d[1], d[2], d[3], NULL);
}

/* Random dims of a result of rank r (the first one N when batched), and of
 * an operand broadcasting to it: a lower rank and/or dims of 1. */
static void bcast_shapes(tcase *t, int r, bool batched, int64_t *yd, int *orank, int64_t *od) {
    for (int i = 0; i < r; i++) yd[i] = ri(t, 2, 4);
    if (batched) yd[0] = NASC_BATCH;
    *orank = ri(t, 1, r);
    for (int i = 0; i < *orank; i++) {
        int64_t full = yd[r - *orank + i];
        od[i] = (full == NASC_BATCH || ri(t, 0, 2) == 0) ? 1 : full;
    }
}

/* add(x, b) and add(x, y, b), b spreading; i selects rank, batch and
 * whether b is a parameter (a bias). */
static void build_add_bcast(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    int r = 1 + i % 4;
    int64_t yd[4], od[4];
    int orank;
    bcast_shapes(t, r, i % 2 == 1, yd, &orank, od);
    uint32_t x = tc_input_dims(t, "x", r, yd);
    uint32_t b = i >= 4 ? tc_param_dims(t, "b", orank, od) : tc_input_dims(t, "b", orank, od);
    uint32_t args[3] = {x, b, x};
    if (i == 5) args[2] = tc_input_dims(t, "y", r, yd);
    tc_output(t, tc_op(t, NASC_PRIM_ADD, args, i >= 5 ? 3 : 2, NULL, "y_"));
}

static void build_mul_bcast(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    int r = 1 + i % 4;
    int64_t yd[4], od[4];
    int orank;
    bcast_shapes(t, r, i % 2 == 1, yd, &orank, od);
    uint32_t x = tc_input_dims(t, "x", r, yd);
    uint32_t b = i >= 4 ? tc_param_dims(t, "b", orank, od) : tc_input_dims(t, "b", orank, od);
    uint32_t args[2] = {x, b};
    tc_output(t, tc_op(t, NASC_PRIM_MUL, args, 2, NULL, "y"));
}

/* conv + a per-channel bias (C,1,1), the way ONNX Conv's B is imported;
 * 16 channels so that the conv's result is blocked. */
static void build_conv_bias(tcase *t, int i) {
    t->batch = 2;
    int c = i ? 16 : 3;
    uint32_t x = tc_input(t, "x", 4, 3, ri(t, 3, 5), ri(t, 3, 5));
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t args[2] = {x, tc_param(t, "w", 4, c, 3, 3, 3, NULL)};
    uint32_t y = tc_op(t, NASC_PRIM_CONV, args, 2, &a, "conv");
    int64_t bd[3] = {c, 1, 1};
    uint32_t bargs[2] = {y, tc_param_dims(t, "bias", 3, bd)};
    tc_output(t, tc_op(t, NASC_PRIM_ADD, bargs, 2, NULL, "y"));
}

/* Elementwise ops, concat and softmax on static ONNX-like shapes (fixed
 * first dims, ranks 1 to 4), in inference as nasc test-onnx runs them. */
static void build_static_shapes(tcase *t, int i) {
    t->batch = 5; /* no value has N: the batch option must not matter */
    int r = 1 + i % 4;
    int64_t d[4];
    for (int k = 0; k < r; k++) d[k] = ri(t, 1, 4);
    uint32_t x = tc_input_dims(t, "x", r, d);
    uint32_t th = tc_op(t, NASC_PRIM_TANH, &x, 1, NULL, "th");
    uint32_t sg = tc_op(t, NASC_PRIM_SIGMOID, &x, 1, NULL, "sg");
    uint32_t margs[2] = {th, sg};
    uint32_t mu = tc_op(t, NASC_PRIM_MUL, margs, 2, NULL, "mu");
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.axis = ri(t, 0, r - 1);
    uint32_t cargs[2] = {mu, x};
    uint32_t ca = tc_op(t, NASC_PRIM_CONCAT, cargs, 2, &a, "cat");
    a.axis = ri(t, 0, r - 1);
    tc_output(t, tc_op(t, NASC_PRIM_SOFTMAX, &ca, 1, &a, "sm"));
    tc_output(t, tc_op(t, NASC_PRIM_IDENTITY, &mu, 1, NULL, "id"));
    if (r >= 2) tc_output(t, tc_op(t, NASC_PRIM_FLATTEN, &ca, 1, NULL, "fl"));
}

/* concat along axis 0 of fixed-first-dim tensors; then shift on a static
 * 4-D value (its plane count comes from the fixed dim, not the batch). */
static void build_concat_axis0(tcase *t, int i) {
    t->batch = 3;
    int64_t d0[4] = {ri(t, 1, 3), ri(t, 1, 3), ri(t, 2, 4), ri(t, 2, 4)}, d1[4];
    memcpy(d1, d0, sizeof d1);
    d1[0] = ri(t, 1, 3);
    int r = i % 2 ? 4 : 2;
    uint32_t x[2] = {tc_input_dims(t, "x0", r, d0), tc_input_dims(t, "x1", r, d1)};
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.axis = 0;
    uint32_t c = tc_op(t, NASC_PRIM_CONCAT, x, 2, &a, "cat");
    if (r == 4) {
        nasc_prim_attrs s = nasc_prim_attrs_default();
        s.dy = 1;
        s.dx = 1;
        c = tc_op(t, NASC_PRIM_SHIFT, &c, 1, &s, "sh");
    }
    tc_output(t, c);
}

static void build_reshape(tcase *t, int i) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    if (i % 2) {
        /* batched: (N, C, H, W) -> (N, H*W, C) after a conv (blocked layout) */
        t->batch = 2;
        int c = 8, h = ri(t, 1, 3), w = ri(t, 1, 3);
        uint32_t x = tc_input(t, "x", 4, 3, h, w);
        nasc_prim_attrs ca = attrs_window(1, 1, 1, 1, 0, 0, 0, 0);
        uint32_t args[2] = {x, tc_param(t, "w", 4, c, 3, 1, 1, NULL)};
        uint32_t y = tc_op(t, NASC_PRIM_CONV, args, 2, &ca, "conv");
        a.shape_rank = 3;
        a.shape[0] = NASC_BATCH, a.shape[1] = h * w, a.shape[2] = c;
        tc_output(t, tc_op(t, NASC_PRIM_RESHAPE, &y, 1, &a, "y"));
    } else {
        t->batch = 4;
        int64_t d[3] = {2, 3, 4};
        uint32_t x = tc_input_dims(t, "x", 3, d);
        static const int64_t shapes[3][4] = {{4, 6, 0, 0}, {24, 0, 0, 0}, {2, 3, 2, 2}};
        const int64_t *s = shapes[(i / 2) % 3];
        a.shape_rank = s[1] == 0 ? 1 : s[2] == 0 ? 2 : 4;
        for (int k = 0; k < a.shape_rank; k++) a.shape[k] = s[k];
        tc_output(t, tc_op(t, NASC_PRIM_RESHAPE, &x, 1, &a, "y"));
    }
}

/* matmul: 2-D with the batch as M, 3-D and 4-D with equal batch dims,
 * transposes, a parameter as b; broadcast batch dims (inference only, but
 * for a rank-2 parameter b shared by every batch element, as a language
 * model's decoder). */
static void build_matmul(tcase *t, int i) {
    nasc_prim_attrs a = nasc_prim_attrs_default();
    int64_t m = ri(t, 1, 4), k = ri(t, 1, 5), n = ri(t, 1, 4);
    a.trans_a = i == 2 || i == 5;
    a.trans_b = i == 3 || i == 5 || i == 8;
    int r = i < 4 ? 2 + i % 3 : i == 8 ? 4 : 3;
    int64_t ad[4], bd[4];
    for (int d = 0; d < r - 2; d++) ad[d] = bd[d] = ri(t, 1, 3);
    ad[r - 2] = a.trans_a ? k : m, ad[r - 1] = a.trans_a ? m : k;
    bd[r - 2] = a.trans_b ? n : k, bd[r - 1] = a.trans_b ? k : n;
    t->batch = ri(t, 1, 3);
    if (r == 2 && !a.trans_a) ad[0] = NASC_BATCH;
    if (i == 6) bd[0] = 1, t->mode = NASC_MODE_INFER; /* b's batch dim broadcasts */
    uint32_t args[2] = {tc_input_dims(t, "a", r, ad), 0};
    if (i >= 7) { /* (K, N) or (N, K) weights shared by every batch element, trained too */
        args[1] = tc_param_dims(t, "b", 2, bd + r - 2);
    } else if (i == 4 || i == 3) {
        args[1] = tc_param_dims(t, "b", r, bd);
    } else {
        args[1] = tc_input_dims(t, "b", r, bd);
    }
    tc_output(t, tc_op(t, NASC_PRIM_MATMUL, args, 2, &a, "y"));
}

/* slice: a conv's 3x3 weights cut from a 5x5 parameter (instance 0), a
 * matmul's (K, N) weights cut from a larger rank-2 parameter (1), and
 * SMASH's chain: weights computed (wa * wb), cut, normalized, convolved (2). */
static void build_slice(tcase *t, int i) {
    if (i == 1) {
        t->batch = ri(t, 1, 3);
        int64_t k = ri(t, 1, 4), n = ri(t, 1, 4), bk = ri(t, 0, 2), bn = ri(t, 0, 2);
        nasc_prim_attrs a = nasc_prim_attrs_default();
        a.shape_rank = 2;
        a.shape[0] = k, a.shape[1] = n;
        a.begin[0] = bk, a.begin[1] = bn;
        uint32_t w = tc_param(t, "big", 2, k + bk + ri(t, 0, 2), n + bn + ri(t, 0, 2), 0, 0, NULL);
        uint32_t args[2] = {tc_input(t, "x", 2, k, 0, 0), tc_op(t, NASC_PRIM_SLICE, &w, 1, &a, "w")};
        tc_output(t, tc_op(t, NASC_PRIM_MATMUL, args, 2, NULL, "y"));
        return;
    }
    conv_cfg c = conv_base(t, 3);
    c.o = ri(t, 1, 4);
    conv_fit(&c);
    uint32_t x = tc_input(t, "x", 4, c.c, c.h, c.w);
    int64_t bo = ri(t, 0, 1), bc = ri(t, 0, 1);
    uint32_t w = tc_param(t, "wa", 4, c.o + bo, c.c + bc, 5, 5, NULL);
    if (i == 2) {
        uint32_t wargs[2] = {w, tc_param(t, "wb", 4, c.o + bo, c.c + bc, 5, 5, NULL)};
        w = tc_op(t, NASC_PRIM_MUL, wargs, 2, NULL, "wm");
    }
    nasc_prim_attrs sa = nasc_prim_attrs_default();
    sa.shape_rank = 4;
    sa.shape[0] = c.o, sa.shape[1] = c.c, sa.shape[2] = sa.shape[3] = 3;
    sa.begin[0] = bo, sa.begin[1] = bc, sa.begin[2] = 1, sa.begin[3] = ri(t, 0, 2);
    w = tc_op(t, NASC_PRIM_SLICE, &w, 1, &sa, "w");
    if (i == 2) w = tc_op(t, NASC_PRIM_NORMALIZE, &w, 1, NULL, "wn");
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, c.pt, c.pl, c.pb, c.pr);
    uint32_t args[2] = {x, w};
    tc_output(t, tc_op(t, NASC_PRIM_CONV, args, 2, &a, "y"));
}

/* sub: same shapes, or b broadcasting (a vector of the last dim, a
 * parameter). */
static void build_sub(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    int64_t c = ri(t, 1, 5), h = ri(t, 1, 4);
    uint32_t a = tc_input(t, "a", 3, c, h, 0);
    uint32_t b = i == 0 ? tc_input(t, "b", 3, c, h, 0) : i == 1 ? tc_param(t, "b", 1, h, 0, 0, 0, NULL) : a;
    uint32_t args[2] = {a, b};
    tc_output(t, tc_op(t, NASC_PRIM_SUB, args, 2, NULL, "y"));
}

/* scale by a factor of either sign, or 0. */
static void build_scale(tcase *t, int i) {
    t->batch = ri(t, 1, 3);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.alpha = i == 0 ? 0.25f : i == 1 ? -1.5f : 0.0f;
    uint32_t x = tc_input(t, "x", 2, ri(t, 1, 7), 0, 0);
    tc_output(t, tc_op(t, NASC_PRIM_SCALE, &x, 1, &a, "y"));
}

/* embedding: one column of token numbers (some outside the table, which
 * read zeros) through a table; two steps reading the same table (its
 * gradients add up), and the first and last columns. */
static void build_embedding(tcase *t, int i) {
    t->batch = ri(t, 1, 4);
    int64_t steps = ri(t, i == 2 ? 2 : 1, 4), rows = ri(t, 2, 7), e = ri(t, 1, 6);
    uint32_t ids = tc_input(t, "ids", 2, steps, 0, 0);
    uint32_t args[2] = {ids, tc_param(t, "table", 2, rows, e, 0, 0, NULL)};
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.index = i == 0 ? 0 : (int)steps - 1;
    uint32_t y = tc_op(t, NASC_PRIM_EMBEDDING, args, 2, &a, "y");
    if (i == 2) {
        a.index = (int)(steps / 2);
        uint32_t y2 = tc_op(t, NASC_PRIM_EMBEDDING, args, 2, &a, "y2");
        uint32_t s2[2] = {y, y2};
        y = tc_op(t, NASC_PRIM_MUL, s2, 2, NULL, "y12");
    }
    tc_output(t, y);
}

/* Dilated max pooling (ONNX MaxPool dilations), with pads. */
static void build_max_pool_dilated(tcase *t, int i) {
    t->batch = ri(t, 1, 2);
    t->gen = GEN_DISTINCT;
    int kh = ri(t, 2, 3), kw = ri(t, 2, 3);
    nasc_prim_attrs a = attrs_window(kh, kw, ri(t, 1, 2), ri(t, 1, 2), i % 2, i % 2, 0, i % 2);
    a.dh = ri(t, 1, 3);
    a.dw = 2;
    uint32_t x = tc_input(t, "x", 4, ri(t, 1, 3), ri(t, 7, 9), ri(t, 7, 9));
    tc_output(t, tc_op(t, NASC_PRIM_MAX_POOL, &x, 1, &a, "y"));
}

typedef struct op_case {
    const char *name;
    void (*build)(tcase *t, int i);
    int count; /* random instances, seeds hash(name) + i */
} op_case;

/* Every op case: (name, instances). */
#define OP_CASES(X)                                                                                                    \
    X(conv_dense, 5)                                                                                                   \
    X(conv_strided, 4)                                                                                                 \
    X(conv_dilated, 4)                                                                                                 \
    X(conv_grouped, 3)                                                                                                 \
    X(conv_depthwise, 4)                                                                                               \
    X(conv_1x7, 3)                                                                                                     \
    X(conv_7x1, 3)                                                                                                     \
    X(conv_asym_pad, 4)                                                                                                \
    X(conv_1x1_s2, 2)                                                                                                  \
    X(bn_train4, 4)                                                                                                    \
    X(bn_train2, 3)                                                                                                    \
    X(bn_infer, 3)                                                                                                     \
    X(conv_bn_relu_infer, 4)                                                                                           \
    X(conv_winograd_infer, 4)                                                                                          \
    X(bn_relu_train, 4)                                                                                                \
    X(conv_sum_infer, 4)                                                                                               \
    X(relu, 4)                                                                                                         \
    X(tanh, 3)                                                                                                         \
    X(sigmoid, 3)                                                                                                      \
    X(identity, 2)                                                                                                     \
    X(max_pool, 5)                                                                                                     \
    X(avg_pool_excl, 5)                                                                                                \
    X(avg_pool_incl, 4)                                                                                                \
    X(global_avg_pool, 3)                                                                                              \
    X(shift, 5)                                                                                                        \
    X(add2, 3)                                                                                                         \
    X(add3, 3)                                                                                                         \
    X(add_repeat, 2)                                                                                                   \
    X(fanout, 3)                                                                                                       \
    X(repeated_unary, 4)                                                                                               \
    X(mul, 3)                                                                                                          \
    X(concat2, 4)                                                                                                      \
    X(concat3, 4)                                                                                                      \
    X(concat_repeat, 2)                                                                                                \
    X(concat_spatial, 2)                                                                                               \
    X(inner_product, 4)                                                                                                \
    X(flatten, 3)                                                                                                      \
    X(flatten_ip, 3)                                                                                                   \
    X(softmax, 4)                                                                                                      \
    X(chain, 3)                                                                                                        \
    X(conv_wide, 4)                                                                                                    \
    X(conv_depthwise_wide, 3)                                                                                          \
    X(conv_dilated_wide, 4)                                                                                            \
    X(bn_wide, 2)                                                                                                      \
    X(pool_wide, 3)                                                                                                    \
    X(concat_wide, 3)                                                                                                  \
    X(add_wide, 2)                                                                                                     \
    X(concat_adds, 3)                                                                                                  \
    X(factorized_reduce, 8)                                                                                            \
    X(conv_1x1_16c, 6)                                                                                                 \
    X(flatten_wide, 2)                                                                                                 \
    X(add_bcast, 6)                                                                                                    \
    X(mul_bcast, 6)                                                                                                    \
    X(conv_bias, 2)                                                                                                    \
    X(static_shapes, 8)                                                                                                \
    X(concat_axis0, 2)                                                                                                 \
    X(reshape, 6)                                                                                                      \
    X(matmul, 9)                                                                                                       \
    X(max_pool_dilated, 3)                                                                                             \
    X(sub, 3)                                                                                                          \
    X(scale, 3)                                                                                                        \
    X(embedding, 3)                                                                                                    \
    X(conv_computed_w, 4)                                                                                              \
    X(conv_normalized_w, 3)                                                                                            \
    X(slice, 3)

#define DEF_CASE(id, n) static op_case CASE_##id = {#id, build_##id, n};
OP_CASES(DEF_CASE)
#undef DEF_CASE

static void run_case(void **state, grad_src src) {
    const op_case *c = *state;
    int failed = 0;
    for (int i = 0; i < c->count; i++) {
        tcase t;
        tc_begin(&t, nasc_hash_str(c->name) + (uint64_t)i);
        c->build(&t, i);
        /* the reference checks its backward in training mode only */
        if (src == SRC_REF && t.mode == NASC_MODE_INFER) {
            t.mode = NASC_MODE_TRAIN;
            t.fuse = false;
        }
        if (!tc_check(&t, c->name, src)) failed++;
        tc_end(&t);
    }
    if (failed) fail_msg("%s: %d of %d instances out of tolerance (see the lines above)", c->name, failed, c->count);
}

/* A training forward moves the running statistics in the store toward the
 * batch's: running = (1 - m) running + m batch, with the unbiased batch
 * variance (times n / (n - 1), as PyTorch does); an inference forward
 * leaves them alone. */
/* Inference with fusion on, computed weights (w = wa * wb) into conv ->
 * batch norm -> relu: the batch norm is not folded into weights the net
 * computes, and a change of wa alone in the store reaches the next
 * inference pass (nothing prepared from w is kept across passes). Checked
 * against the conv of a training net (which prepares nothing) for each of
 * the two values of wa, with the running statistics the inference passes
 * read. */
static void test_computed_w_infer(void **state) {
    (void)state;
    tcase t;
    tc_begin(&t, 91);
    enum { C = 16, H = 5, N = 2 };
    uint32_t x = tc_input(&t, "x", 4, C, H, H);
    uint32_t wargs[2] = {tc_param(&t, "wa", 4, C, C, 3, 3, NULL), tc_param(&t, "wb", 4, C, C, 3, 3, NULL)};
    uint32_t w = tc_op(&t, NASC_PRIM_MUL, wargs, 2, NULL, "w");
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    uint32_t cargs[2] = {x, w};
    uint32_t y = tc_op(&t, NASC_PRIM_CONV, cargs, 2, &a, "conv");
    uint32_t bargs[3] = {y, tc_param(&t, "bn.scale", 1, C, 0, 0, 0, NULL), tc_param(&t, "bn.shift", 1, C, 0, 0, 0, NULL)};
    nasc_prim_attrs ba = nasc_prim_attrs_default();
    uint32_t b = tc_op(&t, NASC_PRIM_BATCH_NORM, bargs, 3, &ba, "bn");
    tc_output(&t, tc_op(&t, NASC_PRIM_RELU, &b, 1, NULL, "y"));
    assert_int_equal(nasc_prim_verify(t.m), NASC_OK);
    assert_int_equal(nasc_params_init(t.ps, t.m, 5), NASC_OK);
    nasc_net_options io = nasc_net_options_default(), to = io;
    io.batch = to.batch = N;
    io.mode = NASC_MODE_INFER;
    io.fuse = true;
    to.mode = NASC_MODE_TRAIN;
    nasc_net *inf = NULL, *trn = NULL;
    assert_int_equal(nasc_net_compile(&t.ctx, t.m, t.ps, &io, &inf), NASC_OK);
    const size_t n = (size_t)N * C * H * H, nw = (size_t)C * C * 9;
    static float in[N * C * H * H], out[2][N * C * H * H], conv[N * C * H * H], wa_val[2][C * C * 9];
    for (size_t i = 0; i < n; i++) in[i] = nasc_rng_normal(&t.rng);
    nasc_tensor *wa = nasc_params_find(t.ps, "wa");
    const nasc_tensor *sc = nasc_params_find(t.ps, "bn.scale"), *sh = nasc_params_find(t.ps, "bn.shift");
    const nasc_tensor *rm = nasc_params_find(t.ps, "bn.mean"), *rv = nasc_params_find(t.ps, "bn.var");
    assert_true(wa && sc && sh && rm && rv && (size_t)wa->numel == nw);
    float mean[C], var[C];
    memcpy(mean, rm->data, sizeof mean);
    memcpy(var, rv->data, sizeof var);
    memcpy(wa_val[0], wa->data, sizeof wa_val[0]);
    for (size_t i = 0; i < nw; i++) wa_val[1][i] = -0.5f * wa_val[0][i];
    for (int k = 0; k < 2; k++) { /* two inference passes, wa changed in between */
        memcpy(wa->data, wa_val[k], sizeof wa_val[k]);
        assert_int_equal(nasc_net_set_input(inf, 0, in), NASC_OK);
        assert_int_equal(nasc_net_forward(inf), NASC_OK);
        assert_int_equal(nasc_net_read(inf, "y", out[k]), NASC_OK);
    }
    double err = 0, scale = 0, diff = 0;
    for (int k = 0; k < 2; k++) {
        memcpy(wa->data, wa_val[k], sizeof wa_val[k]);
        assert_int_equal(nasc_net_compile(&t.ctx, t.m, t.ps, &to, &trn), NASC_OK);
        assert_int_equal(nasc_net_set_input(trn, 0, in), NASC_OK);
        assert_int_equal(nasc_net_forward(trn), NASC_OK);
        assert_int_equal(nasc_net_read(trn, "conv", conv), NASC_OK);
        nasc_net_destroy(trn);
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i / (H * H)) % C;
            double want = (conv[i] - mean[c]) / sqrt(var[c] + ba.eps) * sc->data[c] + sh->data[c];
            want = want > 0 ? want : 0;
            err = fmax(err, fabs(out[k][i] - want));
            scale = fmax(scale, fabs(want));
            if (k == 1) diff = fmax(diff, fabs(out[1][i] - out[0][i]));
        }
    }
    printf("computed weights, inference with fusion: max error %.2e (largest output %.2e), passes differ by %.2e\n",
           err, scale, diff);
    assert_true(err <= 1e-5 * fmax(1.0, scale));
    assert_true(diff > 1e-2 * scale);
    nasc_net_destroy(inf);
    tc_end(&t);
}

/* The convolutions of conv_winograd_infer run on a Winograd kernel where
 * oneDNN has one (AVX-512; the net input is read in the net's layout), so
 * that case checks its numbers; training compiles direct convolutions only. */
static void test_winograd_chosen(void **state) {
    (void)state;
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    for (int i = 0; i < 4; i++) {
        tcase t;
        tc_begin(&t, nasc_hash_str("conv_winograd_infer") + (uint64_t)i);
        build_conv_winograd_infer(&t, i);
        assert_int_equal(nasc_prim_verify(t.m), NASC_OK);
        assert_int_equal(nasc_params_init(t.ps, t.m, 5), NASC_OK);
        nasc_net_options o = nasc_net_options_default();
        o.batch = t.batch;
        o.mode = t.mode;
        o.fuse = t.fuse;
        nasc_net_stats st[2];
        for (int k = 0; k < 2; k++) {
            nasc_net *net = NULL;
            assert_int_equal(nasc_net_compile(&t.ctx, t.m, t.ps, &o, &net), NASC_OK);
            nasc_net_get_stats(net, &st[k]);
            nasc_net_destroy(net);
            o.mode = NASC_MODE_TRAIN;
            o.fuse = false;
        }
        printf("[winograd] instance %d, batch %d: inference %d, training %d winograd convolutions (AVX-512: %s)\n", i,
               t.batch, st[0].n_winograd, st[1].n_winograd, avx512 ? "yes" : "no: direct only");
        if (avx512) assert_int_equal(st[0].n_winograd, 1);
        assert_int_equal(st[1].n_winograd, 0);
        tc_end(&t);
    }
}

/* The 1x1 weight gradients of conv_1x1_16c run nasc's kernel (conv1x1.h)
 * on AVX-512, in training lanes (when the process has two threads or more)
 * and in one-thread nets, and oneDNN's elsewhere: the training step's
 * profile names the kernel's steps. */
static void test_1x1_own_chosen(void **state) {
    (void)state;
    bool avx512 = __builtin_cpu_supports("avx512f");
    for (int i = 0; i < 6; i++) {
        tcase t;
        tc_begin(&t, nasc_hash_str("conv_1x1_16c") + (uint64_t)i);
        build_conv_1x1_16c(&t, i);
        assert_int_equal(nasc_prim_verify(t.m), NASC_OK);
        assert_int_equal(nasc_params_init(t.ps, t.m, 5), NASC_OK);
        nasc_net_options o = nasc_net_options_default();
        o.batch = t.batch;
        o.parallel = t.parallel;
        o.profile = true;
        nasc_net *net = NULL;
        assert_int_equal(nasc_net_compile(&t.ctx, t.m, t.ps, &o, &net), NASC_OK);
        nasc_net_stats st;
        nasc_net_get_stats(net, &st);
        int64_t n = 1;
        for (int d = 1; d < 4; d++) n *= t.m->values[0].type.dims[d];
        float *x = calloc((size_t)(n * t.batch), sizeof *x);
        assert_non_null(x);
        assert_int_equal(nasc_net_set_input(net, 0, x), NASC_OK);
        assert_int_equal(nasc_net_forward(net), NASC_OK);
        assert_int_equal(nasc_net_backward(net), NASC_OK);
        char text[8192] = {0};
        FILE *f = tmpfile();
        assert_non_null(f);
        nasc_net_profile_print(net, f);
        rewind(f);
        size_t got = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[got] = 0;
        bool own = strstr(text, "conv bwd-weights (nasc)") != NULL;
        bool one_thread = t.parallel == NASC_NET_PARALLEL_ONE || st.n_lanes > 1;
        printf("[1x1 own] instance %d: %d lanes, nasc's kernel %s (AVX-512: %s)\n", i, st.n_lanes, own ? "yes" : "no",
               avx512 ? "yes" : "no");
        assert_true(own == (avx512 && one_thread));
        free(x);
        nasc_net_destroy(net);
        tc_end(&t);
    }
}

static void test_bn_running_stats(void **state) {
    (void)state;
    int failed = 0;
    for (int rank = 2; rank <= 4; rank += 2) {
        tcase t;
        tc_begin(&t, 70 + (uint64_t)rank);
        t.batch = 3;
        build_bn(&t, rank, 1e-5f);
        randomize_params(&t, false);
        run r;
        run_init(&r, &t);
        const nasc_module *m = t.m;
        uint32_t bn = m->outputs[0];
        int64_t c = m->values[bn].type.dims[1], d[NASC_MAX_RANK];
        ref_dims(m, m->args[m->prims[m->values[bn].def].first_arg], t.batch, d);
        double n = (double)(d[0] * (rank == 4 ? d[2] * d[3] : 1));
        nasc_tensor *rm = nasc_params_find(t.ps, "bn.mean"), *rv = nasc_params_find(t.ps, "bn.var");
        assert_non_null(rm);
        assert_non_null(rv);
        double *bm = calloc((size_t)c, sizeof *bm), *bv = calloc((size_t)c, sizeof *bv);
        double *want_m = calloc((size_t)c, sizeof *want_m), *want_v = calloc((size_t)c, sizeof *want_v);
        float *old_m = calloc((size_t)c, sizeof *old_m), *old_v = calloc((size_t)c, sizeof *old_v);
        assert_true(bm && bv && want_m && want_v && old_m && old_v);
        memcpy(old_m, rm->data, (size_t)c * sizeof *old_m);
        memcpy(old_v, rv->data, (size_t)c * sizeof *old_v);
        assert_int_equal(ref_forward(m, t.ps, t.batch, (const double *const *)r.in_d, r.vals), 0);
        assert_int_equal(ref_bn_stats(m, t.batch, r.vals, bn, bm, bv), 0);
        const double mom = 0.25;
        for (int64_t k = 0; k < c; k++) {
            want_m[k] = (1 - mom) * old_m[k] + mom * bm[k];
            want_v[k] = (1 - mom) * old_v[k] + mom * bv[k] * n / (n - 1);
        }
        nasc_net_options o = nasc_net_options_default();
        o.batch = t.batch;
        o.bn_momentum = (float)mom;
        nasc_net *net = NULL;
        double em = 1, ev = 1, im = 1, iv = 1;
        if (nasc_net_compile(&t.ctx, m, t.ps, &o, &net) || nasc_net_set_input(net, 0, r.in_f[0]) ||
            nasc_net_forward(net)) {
            nasc_diag_print(&t.ctx.diag, stderr);
        } else {
            em = ref_rel_err_f(rm->data, want_m, c, NULL);
            ev = ref_rel_err_f(rv->data, want_v, c, NULL);
        }
        nasc_net_destroy(net);
        net = NULL;
        /* inference: the statistics are read, not written */
        memcpy(old_m, rm->data, (size_t)c * sizeof *old_m);
        memcpy(old_v, rv->data, (size_t)c * sizeof *old_v);
        o.mode = NASC_MODE_INFER;
        if (nasc_net_compile(&t.ctx, m, t.ps, &o, &net) || nasc_net_set_input(net, 0, r.in_f[0]) ||
            nasc_net_forward(net)) {
            nasc_diag_print(&t.ctx.diag, stderr);
        } else {
            im = memcmp(old_m, rm->data, (size_t)c * sizeof *old_m) != 0;
            iv = memcmp(old_v, rv->data, (size_t)c * sizeof *old_v) != 0;
        }
        nasc_net_destroy(net);
        bool ok = em <= 1e-5 && ev <= 1e-5 && im == 0 && iv == 0;
        printf("[bn_running_stats] rank %d, %lld channels, momentum %g | train mean %.2e var %.2e | infer %s%s\n", rank,
               (long long)c, mom, em, ev, im == 0 && iv == 0 ? "unchanged" : "CHANGED", ok ? "" : "  <-- FAIL");
        failed += !ok;
        free(bm);
        free(bv);
        free(want_m);
        free(want_v);
        free(old_m);
        free(old_v);
        run_free(&r);
        tc_end(&t);
    }
    assert_int_equal(failed, 0);
}

static void test_ref_case(void **state) { run_case(state, SRC_REF); }
static void test_backend_case(void **state) { run_case(state, SRC_BACKEND); }

/* ---------------------------------------------------------------- */
/* Reference against hand-computed results                           */
/* ---------------------------------------------------------------- */

/* Evaluate t's module with the reference and compare output 0 with want. */
static void expect_out(tcase *t, ref_mode mode, const double *const *inputs, const double *want, int64_t n) {
    double **v = calloc(t->m->n_values, sizeof *v);
    assert_non_null(v);
    int rc = mode == REF_TRAIN ? ref_forward(t->m, t->ps, t->batch, inputs, v)
                               : ref_forward_infer(t->m, t->ps, t->batch, inputs, v);
    assert_int_equal(rc, 0);
    uint32_t out = t->m->outputs[0];
    assert_int_equal(ref_numel(t->m, out, t->batch), n);
    for (int64_t i = 0; i < n; i++) {
        if (fabs(v[out][i] - want[i]) > 1e-9 * fmax(1, fabs(want[i])))
            fail_msg("element %lld: got %.12g, want %.12g", (long long)i, v[out][i], want[i]);
    }
    ref_free(t->m, v);
    free(v);
}

static const double IOTA16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* One 4x4 image 1..16 through a 3x3 conv with the given attributes. */
static void conv4x4(const float *w, int kh, int kw, nasc_prim_attrs a, const double *want, int64_t n) {
    tcase t;
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t x = tc_input(&t, "x", 4, 1, 4, 4);
    uint32_t args[2] = {x, tc_param(&t, "w", 4, 1, 1, kh, kw, w)};
    tc_output(&t, tc_op(&t, NASC_PRIM_CONV, args, 2, &a, "y"));
    const double *in[1] = {IOTA16};
    expect_out(&t, REF_TRAIN, in, want, n);
    tc_end(&t);
}

static void test_ref_conv(void **state) {
    (void)state;
    static const float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    /* valid 3x3 windows of 1..16 */
    conv4x4(ones, 3, 3, attrs_window(3, 3, 1, 1, 0, 0, 0, 0), (const double[]){54, 63, 90, 99}, 4);
    /* cross-correlation, not convolution: this kernel reads x[i+1][j+2] */
    static const float pick[9] = {0, 0, 0, 0, 0, 1, 0, 0, 0};
    conv4x4(pick, 3, 3, attrs_window(3, 3, 1, 1, 0, 0, 0, 0), (const double[]){7, 8, 11, 12}, 4);
    /* pad 1 all round, stride 2: windows at rows/cols -1 and 1 */
    conv4x4(ones, 3, 3, attrs_window(3, 3, 2, 2, 1, 1, 1, 1), (const double[]){14, 30, 57, 99}, 4);
    /* asymmetric pads: left 1 and bottom 1 only -> 3x3 output */
    conv4x4(ones, 3, 3, attrs_window(3, 3, 1, 1, 0, 1, 1, 0),
            (const double[]){1 + 2 + 5 + 6 + 9 + 10, 1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, 2 + 3 + 4 + 6 + 7 + 8 + 10 + 11 + 12,
                             5 + 6 + 9 + 10 + 13 + 14, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15, 6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16,
                             9 + 10 + 13 + 14, 9 + 10 + 11 + 13 + 14 + 15, 10 + 11 + 12 + 14 + 15 + 16},
            9);
    /* dilation 2 (ONNX convention: 1 is dense): a 2x2 kernel spans 3x3 */
    static const float w22[4] = {1, 10, 100, 1000};
    nasc_prim_attrs a = attrs_window(2, 2, 1, 1, 0, 0, 0, 0);
    a.dh = a.dw = 2;
    conv4x4(w22, 2, 2, a, (const double[]){1 + 30 + 900 + 11000, 2 + 40 + 1000 + 12000, 5 + 70 + 1300 + 15000, 6 + 80 + 1400 + 16000}, 4);
    /* 1x3 kernel, pads left/right 1: a horizontal [1,10,100] on row 0 */
    static const float w13[3] = {1, 10, 100};
    conv4x4(w13, 1, 3, attrs_window(1, 3, 4, 1, 0, 1, 0, 1), (const double[]){10 + 200, 1 + 20 + 300, 2 + 30 + 400, 3 + 40}, 4);

    /* groups 2, 1x1: y0 = 2 x0, y1 = 3 x1 (no mixing across groups) */
    tcase t;
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t x = tc_input(&t, "x", 4, 2, 1, 2);
    static const float wg[2] = {2, 3};
    uint32_t args[2] = {x, tc_param(&t, "w", 4, 2, 1, 1, 1, wg)};
    nasc_prim_attrs ga = nasc_prim_attrs_default();
    ga.groups = 2;
    tc_output(&t, tc_op(&t, NASC_PRIM_CONV, args, 2, &ga, "y"));
    const double *in[1] = {(const double[]){1, 2, 3, 4}};
    expect_out(&t, REF_TRAIN, in, (const double[]){2, 4, 9, 12}, 4);
    tc_end(&t);

    /* depthwise with multiplier 2 (groups 2, 4 outputs): outputs 0,1 read channel 0 */
    tc_begin(&t, 1);
    t.batch = 1;
    x = tc_input(&t, "x", 4, 2, 1, 1);
    static const float wd[4] = {1, 2, 3, 4};
    args[0] = x;
    args[1] = tc_param(&t, "w", 4, 4, 1, 1, 1, wd);
    tc_output(&t, tc_op(&t, NASC_PRIM_CONV, args, 2, &ga, "y"));
    const double *in2[1] = {(const double[]){10, 100}};
    expect_out(&t, REF_TRAIN, in2, (const double[]){10, 20, 300, 400}, 4);
    tc_end(&t);
}

/* A 3x3 image through a 3x3 pool with pads 1, stride 1. */
static void pool3x3(nasc_prim_op op, int cip, const double *img, const double *want) {
    tcase t;
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t x = tc_input(&t, "x", 4, 1, 3, 3);
    nasc_prim_attrs a = attrs_window(3, 3, 1, 1, 1, 1, 1, 1);
    a.count_include_pad = cip;
    tc_output(&t, tc_op(&t, op, &x, 1, &a, "y"));
    const double *in[1] = {img};
    expect_out(&t, REF_TRAIN, in, want, 9);
    tc_end(&t);
}

static void test_ref_pool(void **state) {
    (void)state;
    static const double img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, neg[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    pool3x3(NASC_PRIM_MAX_POOL, 0, img, (const double[]){5, 6, 6, 8, 9, 9, 8, 9, 9});
    /* padding never wins a max: a zero-padding implementation would give 0s */
    pool3x3(NASC_PRIM_MAX_POOL, 0, neg, (const double[]){-1, -1, -2, -1, -1, -2, -4, -4, -5});
    /* count_include_pad 0: corners divide by 4, edges by 6 */
    pool3x3(NASC_PRIM_AVG_POOL, 0, img,
            (const double[]){12 / 4.0, 21 / 6.0, 16 / 4.0, 27 / 6.0, 5, 33 / 6.0, 24 / 4.0, 39 / 6.0, 28 / 4.0});
    /* count_include_pad 1: always divide by 9 */
    pool3x3(NASC_PRIM_AVG_POOL, 1, img,
            (const double[]){12 / 9.0, 21 / 9.0, 16 / 9.0, 27 / 9.0, 5, 33 / 9.0, 24 / 9.0, 39 / 9.0, 28 / 9.0});

    /* asymmetric: 2x2 window, stride 2, pads bottom/right 1 on a 3x3 image */
    tcase t;
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t x = tc_input(&t, "x", 4, 1, 3, 3);
    nasc_prim_attrs a = attrs_window(2, 2, 2, 2, 0, 0, 1, 1);
    tc_output(&t, tc_op(&t, NASC_PRIM_AVG_POOL, &x, 1, &a, "y"));
    const double *in[1] = {img};
    expect_out(&t, REF_TRAIN, in, (const double[]){(1 + 2 + 4 + 5) / 4.0, (3 + 6) / 2.0, (7 + 8) / 2.0, 9}, 4);
    tc_end(&t);

    /* global average pool: per (n, c) mean */
    tc_begin(&t, 1);
    t.batch = 2;
    x = tc_input(&t, "x", 4, 2, 1, 2);
    tc_output(&t, tc_op(&t, NASC_PRIM_GLOBAL_AVG_POOL, &x, 1, NULL, "y"));
    const double *in2[1] = {(const double[]){1, 2, 3, 5, 10, 20, -1, 1}};
    expect_out(&t, REF_TRAIN, in2, (const double[]){1.5, 4, 15, 0}, 4);
    tc_end(&t);
}

static void test_ref_batch_norm(void **state) {
    (void)state;
    /* two values of one channel: mean 2, biased variance 1 */
    for (int mode = 0; mode < 2; mode++) {
        tcase t;
        tc_begin(&t, 1);
        t.batch = 2;
        uint32_t x = tc_input(&t, "x", 2, 1, 0, 0);
        static const float g[1] = {2}, b[1] = {1};
        uint32_t args[3] = {x, tc_param(&t, "bn.scale", 1, 1, 0, 0, 0, g), tc_param(&t, "bn.shift", 1, 1, 0, 0, 0, b)};
        tc_output(&t, tc_op(&t, NASC_PRIM_BATCH_NORM, args, 3, NULL, "bn"));
        const double *in[1] = {(const double[]){1, 3}};
        double eps = (double)1e-5f;
        if (mode == 0) {
            double s = 2 / sqrt(1 + eps);
            expect_out(&t, REF_TRAIN, in, (const double[]){1 - s, 1 + s}, 2);
        } else {
            /* inference: "<bn>.mean" = 1, "<bn>.var" = 4 from the store */
            int64_t one = 1;
            nasc_params_get(t.ps, "bn.mean", 1, &one)->data[0] = 1;
            nasc_params_get(t.ps, "bn.var", 1, &one)->data[0] = 4;
            double s = 2 / sqrt(4 + eps);
            expect_out(&t, REF_INFER, in, (const double[]){1 + 0 * s, 1 + 2 * s}, 2);
        }
        tc_end(&t);
    }
    /* rank 4: statistics over N, H and W per channel; eps from the attrs */
    tcase t;
    tc_begin(&t, 1);
    t.batch = 2;
    uint32_t x = tc_input(&t, "x", 4, 2, 1, 2);
    static const float g2[2] = {1, 1}, b2[2] = {0, 0};
    uint32_t args[3] = {x, tc_param(&t, "bn.scale", 1, 2, 0, 0, 0, g2), tc_param(&t, "bn.shift", 1, 2, 0, 0, 0, b2)};
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.eps = 0.25f;
    tc_output(&t, tc_op(&t, NASC_PRIM_BATCH_NORM, args, 3, &a, "bn"));
    /* channel 0 holds {0, 2, 0, 2} (mean 1, var 1), channel 1 {5, 5, 5, 5} (var 0) */
    const double *in[1] = {(const double[]){0, 2, 5, 5, 0, 2, 5, 5}};
    double s = 1 / sqrt(1.25);
    expect_out(&t, REF_TRAIN, in, (const double[]){-s, s, 0, 0, -s, s, 0, 0}, 8);
    tc_end(&t);
}

static void test_ref_misc(void **state) {
    (void)state;
    tcase t;
    /* shift (1, 1) of 1..9: up-left by one, zeros enter at the bottom/right */
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t x = tc_input(&t, "x", 4, 1, 3, 3);
    nasc_prim_attrs a = nasc_prim_attrs_default();
    a.dy = a.dx = 1;
    tc_output(&t, tc_op(&t, NASC_PRIM_SHIFT, &x, 1, &a, "y"));
    const double *in[1] = {(const double[]){1, 2, 3, 4, 5, 6, 7, 8, 9}};
    expect_out(&t, REF_TRAIN, in, (const double[]){5, 6, 0, 8, 9, 0, 0, 0, 0}, 9);
    tc_end(&t);

    /* concat on channels: per image, x0's channel then x1's two */
    tc_begin(&t, 1);
    t.batch = 2;
    uint32_t c[2] = {tc_input(&t, "x0", 4, 1, 1, 1), tc_input(&t, "x1", 4, 2, 1, 1)};
    tc_output(&t, tc_op(&t, NASC_PRIM_CONCAT, c, 2, NULL, "y"));
    const double *cin[2] = {(const double[]){1, 2}, (const double[]){10, 11, 20, 21}};
    expect_out(&t, REF_TRAIN, cin, (const double[]){1, 10, 11, 2, 20, 21}, 6);
    tc_end(&t);

    /* concat on W */
    tc_begin(&t, 1);
    t.batch = 1;
    c[0] = tc_input(&t, "x0", 4, 1, 2, 1);
    c[1] = tc_input(&t, "x1", 4, 1, 2, 2);
    a = nasc_prim_attrs_default();
    a.axis = 3;
    tc_output(&t, tc_op(&t, NASC_PRIM_CONCAT, c, 2, &a, "y"));
    const double *win[2] = {(const double[]){1, 2}, (const double[]){10, 11, 20, 21}};
    expect_out(&t, REF_TRAIN, win, (const double[]){1, 10, 11, 2, 20, 21}, 6);
    tc_end(&t);

    /* inner product: y = W x + b with W (3, 2) */
    tc_begin(&t, 1);
    t.batch = 1;
    static const float w[6] = {1, 0, 0, 1, 1, 1}, b[3] = {0, 1, 2};
    uint32_t ip[3] = {tc_input(&t, "x", 2, 2, 0, 0), tc_param(&t, "w", 2, 3, 2, 0, 0, w), tc_param(&t, "b", 1, 3, 0, 0, 0, b)};
    tc_output(&t, tc_op(&t, NASC_PRIM_INNER_PRODUCT, ip, 3, NULL, "y"));
    const double *iin[1] = {(const double[]){1, 2}};
    expect_out(&t, REF_TRAIN, iin, (const double[]){1, 3, 5}, 3);
    tc_end(&t);

    /* add of three, mul, eltwise */
    tc_begin(&t, 1);
    t.batch = 1;
    uint32_t s3[3] = {tc_input(&t, "x0", 2, 2, 0, 0), tc_input(&t, "x1", 2, 2, 0, 0), tc_input(&t, "x2", 2, 2, 0, 0)};
    uint32_t sum = tc_op(&t, NASC_PRIM_ADD, s3, 3, NULL, "sum");
    uint32_t pr[2] = {sum, s3[0]};
    uint32_t prod = tc_op(&t, NASC_PRIM_MUL, pr, 2, NULL, "prod");
    tc_output(&t, tc_op(&t, NASC_PRIM_RELU, &prod, 1, NULL, "y"));
    const double *ain[3] = {(const double[]){1, -2}, (const double[]){10, 20}, (const double[]){100, 200}};
    expect_out(&t, REF_TRAIN, ain, (const double[]){111, 0}, 2);
    tc_end(&t);

    tc_begin(&t, 1);
    t.batch = 1;
    x = tc_input(&t, "x", 2, 3, 0, 0);
    uint32_t th = tc_op(&t, NASC_PRIM_SIGMOID, &x, 1, NULL, "s");
    tc_output(&t, tc_op(&t, NASC_PRIM_TANH, &th, 1, NULL, "y"));
    const double *ein[1] = {(const double[]){0, log(3.0), -log(3.0)}};
    /* sigmoid: 1/2, 3/4, 1/4; tanh of those */
    expect_out(&t, REF_TRAIN, ein, (const double[]){tanh(0.5), tanh(0.75), tanh(0.25)}, 3);
    tc_end(&t);

    /* softmax over a row, on axis 1 of (N, C, 1, 2) too, and flatten */
    tc_begin(&t, 1);
    t.batch = 1;
    x = tc_input(&t, "x", 2, 3, 0, 0);
    tc_output(&t, tc_op(&t, NASC_PRIM_SOFTMAX, &x, 1, NULL, "y"));
    const double *sin_[1] = {(const double[]){0, log(2.0), log(3.0)}};
    expect_out(&t, REF_TRAIN, sin_, (const double[]){1 / 6.0, 2 / 6.0, 3 / 6.0}, 3);
    tc_end(&t);

    tc_begin(&t, 1);
    t.batch = 1;
    x = tc_input(&t, "x", 4, 2, 1, 2);
    uint32_t sm = tc_op(&t, NASC_PRIM_SOFTMAX, &x, 1, NULL, "sm");
    tc_output(&t, tc_op(&t, NASC_PRIM_FLATTEN, &sm, 1, NULL, "y"));
    /* channels 0 and 1 at w=0: (0, log 3) -> 1/4, 3/4; at w=1: (5, 5) -> 1/2, 1/2 */
    const double *s4[1] = {(const double[]){0, 5, log(3.0), 5}};
    expect_out(&t, REF_TRAIN, s4, (const double[]){0.25, 0.5, 0.75, 0.5}, 4);
    tc_end(&t);

    /* cross-entropy: mean over the batch of -log p[label] */
    const double logits[6] = {0, log(2.0), log(3.0), 0, 0, 0};
    const int32_t labels[2] = {2, 1};
    double l = ref_softmax_xent(logits, 2, 3, labels);
    assert_true(fabs(l - (log(2.0) + log(3.0)) / 2) < 1e-12);
    double g[6];
    ref_softmax_xent_grad(logits, 2, 3, labels, g);
    const double gw[6] = {1 / 12.0, 2 / 12.0, (3 / 6.0 - 1) / 2, 1 / 6.0, (1 / 3.0 - 1) / 2, 1 / 6.0};
    for (int i = 0; i < 6; i++) assert_true(fabs(g[i] - gw[i]) < 1e-12);
    assert_int_equal(ref_correct(logits, 2, 3, labels), 1);
}

/* ---------------------------------------------------------------- */
/* Whole cells                                                       */
/* ---------------------------------------------------------------- */

typedef struct xent_ud {
    int n, k;
    const int32_t *labels;
} xent_ud;

static double xent_loss_cb(const run *r, const void *ud) {
    const xent_ud *x = ud;
    return ref_softmax_xent(r->vals[r->m->outputs[0]], x->n, x->k, x->labels);
}

/* Whether some image's two largest logits are within 1e-4 (argmax may
 * then differ between float and double). */
static bool near_tie(const double *logits, int n, int k) {
    for (int i = 0; i < n; i++)
        for (int a = 0; a < k; a++)
            for (int b = a + 1; b < k; b++)
                if (fabs(logits[i * k + a] - logits[i * k + b]) < 1e-4) return true;
    return false;
}

/* One whole-net check: a model file made tiny by overrides. */
typedef struct model_cfg {
    const char *file;
    const char *input;    /* --set input= */
    const char *channels; /* --set channels= */
    int batch;
    uint64_t seed;
    nasc_net_mode mode; /* INFER: logits only, against the running statistics */
    bool fuse;
} model_cfg;

/* Load cfg's model (one cell per stage, two stages: normal, reduction,
 * normal), lower it, and check logits and loss against the reference, and
 * (training) the gradients of a random subset of elements (20 of each of 10
 * random parameters, 20 of the input) against finite differences of the
 * reference loss. */
static bool check_model(const model_cfg *cfg, grad_src src) {
    tcase t;
    memset(&t, 0, sizeof t);
    nasc_ctx_init(&t.ctx);
    const nasc_override ov[] = {{"input", cfg->input}, {"channels", cfg->channels}, {"cells_per_stage", "1"},
                                {"stages", "2"},       {"classes", "5"}};
    char *path = nasc_test_path(cfg->file);
    assert_non_null(path);
    nasc_module *arch = NULL;
    if (nasc_model_load(&t.ctx, path, ov, sizeof ov / sizeof ov[0], &arch)) die_diag(&t, "nasc_model_load");
    free(path);
    if (nasc_lower(arch, &t.m)) die_diag(&t, "nasc_lower");
    nasc_module_destroy(arch);
    t.ps = nasc_params_create(&t.ctx);
    assert_non_null(t.ps);
    t.seed = cfg->seed;
    nasc_rng_seed(&t.rng, cfg->seed);
    t.batch = cfg->batch;
    t.in_scale = 1;
    t.mode = src == SRC_REF ? NASC_MODE_TRAIN : cfg->mode;
    t.fuse = cfg->fuse;
    /* weights from nasc_params_init; random batch-norm scales,
     * shifts and biases, so that their gradients are not special; random
     * running statistics */
    randomize_params(&t, true);
    nasc_rng pr;
    nasc_rng_seed(&pr, cfg->seed ^ 0xb1a5ull);
    for (uint32_t v = 0; v < t.m->n_values; v++) {
        if (t.m->values[v].kind != NASC_VAL_PARAM) continue;
        nasc_tensor *ts = nasc_params_find(t.ps, nasc_str(t.m, t.m->values[v].name));
        if (ts->rank == 1)
            for (int64_t k = 0; k < ts->numel; k++) ts->data[k] += (float)(0.2 * nasc_rng_normal(&pr));
    }
    const nasc_module *m = t.m;
    run r;
    run_init(&r, &t);
    uint32_t out = m->outputs[0];
    int k = (int)m->values[out].type.dims[1];
    int32_t *labels = malloc((size_t)t.batch * sizeof *labels);
    assert_non_null(labels);
    for (int i = 0; i < t.batch; i++) labels[i] = (int32_t)nasc_rng_below(&t.rng, (uint64_t)k);
    xent_ud ud = {t.batch, k, labels};
    int rc = t.mode == NASC_MODE_TRAIN ? ref_forward(m, t.ps, t.batch, (const double *const *)r.in_d, r.vals)
                                       : ref_forward_infer(m, t.ps, t.batch, (const double *const *)r.in_d, r.vals);
    assert_int_equal(rc, 0);
    double l_ref = ref_softmax_xent(r.vals[out], t.batch, k, labels);

    uint32_t n_params = 0;
    for (uint32_t v = 0; v < m->n_values; v++) n_params += m->values[v].kind == NASC_VAL_PARAM;
    char line[4096];
    snprintf(line, sizeof line, "[%s%s] seed %llu input %s channels %s%s: %u ops, %u params, batch %d, loss %.6f |",
             src == SRC_REF ? "ref:" : "", cfg->file, (unsigned long long)cfg->seed, cfg->input, cfg->channels,
             t.mode == NASC_MODE_INFER ? (t.fuse ? " (infer, fused)" : " (infer)") : t.fuse ? " (fused)" : "", m->n_prims, n_params, t.batch,
             l_ref);
    bool ok = true;
    double **got = calloc(m->n_values, sizeof *got);
    assert_non_null(got);
    nasc_net *net = NULL;
    if (src == SRC_BACKEND) {
        nasc_net_options o = nasc_net_options_default();
        o.batch = t.batch;
        o.mode = t.mode;
        o.fuse = t.fuse;
        o.input_grad = true;
        if (nasc_net_compile(&t.ctx, m, t.ps, &o, &net) || nasc_net_set_input(net, 0, r.in_f[0]) ||
            nasc_net_forward(net)) {
            nasc_diag_print(&t.ctx.diag, stderr);
            ok = false;
            goto done;
        }
        int64_t nl = (int64_t)t.batch * k;
        float *logits = malloc((size_t)nl * sizeof *logits);
        assert_non_null(logits);
        double mx = 0, e = 1;
        if (nasc_net_read(net, nasc_str(m, m->values[out].name), logits) == NASC_OK)
            e = ref_rel_err_f(logits, r.vals[out], nl, &mx);
        free(logits);
        note(line, sizeof line, "logits", e, mx);
        if (!(e <= FWD_TOL)) ok = false;
        if (t.mode == NASC_MODE_INFER) goto done;
        float loss = 0;
        int correct = -1;
        if (nasc_net_loss(net, labels, &loss, &correct) || nasc_net_backward(net)) {
            nasc_diag_print(&t.ctx.diag, stderr);
            ok = false;
            goto done;
        }
        double le = fabs(loss - l_ref) / fmax(fabs(l_ref), 1e-30);
        int want_correct = ref_correct(r.vals[out], t.batch, k, labels);
        size_t off = strlen(line);
        snprintf(line + off, sizeof line - off, " loss %.2e correct %d/%d", le, correct, want_correct);
        if (!(le <= LOSS_TOL)) ok = false;
        if (correct != want_correct && !near_tie(r.vals[out], t.batch, k)) ok = false;
        if (!net_grads(&t.ctx, net, m, t.batch, got)) ok = false;
        /* nasc_net_grads lists every parameter once, agreeing with read_grad */
        const nasc_param_grad *pg = NULL;
        uint32_t ng = nasc_net_grads(net, &pg);
        if (ng != n_params) {
            printf("nasc_net_grads lists %u gradients for %u parameters\n", ng, n_params);
            ok = false;
        }
        for (uint32_t j = 0; j < ng; j++) {
            int64_t v = nasc_prim_lookup(m, pg[j].param->name, strlen(pg[j].param->name));
            bool same = v >= 0 && m->values[v].kind == NASC_VAL_PARAM && pg[j].param->numel == ref_numel(m, (uint32_t)v, 1);
            for (int64_t e2 = 0; same && e2 < pg[j].param->numel; e2++) same = pg[j].grad[e2] == (float)got[v][e2];
            if (!same) {
                printf("nasc_net_grads entry %u ('%s') is not the parameter's nasc_net_read_grad\n", j, pg[j].param->name);
                ok = false;
            }
        }
    }
    /* the reference's own gradients: the oracle where a finite difference
     * straddles a kink (below); for SRC_REF, what is checked */
    double *og = malloc((size_t)t.batch * (size_t)k * sizeof *og);
    assert_non_null(og);
    ref_softmax_xent_grad(r.vals[out], t.batch, k, labels, og);
    const double *ogs[1] = {og};
    assert_int_equal(ref_backward(m, t.batch, r.vals, ogs, r.rg), 0);
    free(og);
    if (src == SRC_REF) {
        for (uint32_t v = 0; v < m->n_values; v++) {
            if (m->values[v].kind == NASC_VAL_OP) continue;
            int64_t n = ref_numel(m, v, t.batch);
            got[v] = malloc((size_t)n * sizeof(double));
            assert_non_null(got[v]);
            memcpy(got[v], r.rg[v], (size_t)n * sizeof(double));
        }
    }

    /* the input and 10 random parameters (a partial Fisher-Yates draw) */
    uint32_t *pick = malloc((m->n_values + 1) * sizeof *pick), n_pick = 0;
    assert_non_null(pick);
    for (uint32_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == NASC_VAL_PARAM) pick[n_pick++] = v;
    for (uint32_t i = 0; i < n_pick && i < 10; i++) {
        uint32_t j = i + (uint32_t)nasc_rng_below(&t.rng, n_pick - i), tmp = pick[i];
        pick[i] = pick[j];
        pick[j] = tmp;
    }
    if (n_pick > 10) n_pick = 10;
    pick[n_pick++] = r.in_ids[0];
    double worst = 0;
    int kinks = 0, checked = 0;
    for (uint32_t i = 0; i < n_pick; i++) {
        uint32_t v = pick[i];
        int64_t n = ref_numel(m, v, t.batch), ns = n < 20 ? n : 20;
        double fd[20], g[20];
        for (int64_t s = 0; s < ns; s++) {
            int64_t e2 = n <= 20 ? s : (int64_t)nasc_rng_below(&t.rng, (uint64_t)n);
            fd[s] = fd_at(&r, v, e2, FD_EPS_NET, xent_loss_cb, &ud);
            g[s] = got[v][e2];
            /* A whole net has relu and max-pool kinks: where the central
             * difference of the double-precision reference disagrees with
             * the reference's own gradient, a kink lies within the step and
             * the difference measures nothing; the backend is held to the
             * reference's gradient there instead (which the ref: cases check
             * against finite differences at points without kinks). */
            if (src == SRC_BACKEND && fabs(fd[s] - r.rg[v][e2]) > KINK_TOL * fmax(fabs(r.rg[v][e2]), 1e-6)) {
                fd[s] = r.rg[v][e2];
                kinks++;
            }
            checked++;
        }
        double mx, e = ref_rel_err_d(g, fd, ns, &mx);
        note(line, sizeof line, nasc_str(m, m->values[v].name), e, mx);
        if (!(e <= worst)) worst = e;
    }
    free(pick);
    if (kinks) {
        size_t off = strlen(line);
        snprintf(line + off, sizeof line - off, " (%d of %d checked against the reference at a kink)", kinks, checked);
    }
    /* kinks are rare: most elements must meet the finite differences */
    if (!(worst <= (src == SRC_REF ? REF_TOL : BWD_TOL)) || kinks * 4 > checked) ok = false;

done:
    printf("%s%s\n", line, ok ? "" : "  <-- FAIL");
    fflush(stdout);
    nasc_net_destroy(net);
    for (uint32_t v = 0; v < m->n_values; v++) free(got[v]);
    free(got);
    free(labels);
    run_free(&r);
    tc_end(&t);
    return ok;
}

static const model_cfg NASNET_REF = {"models/nasnet-a.yaml", "1x8x8", "4", 4, 11, NASC_MODE_TRAIN, false};
static const model_cfg ENAS_REF = {"models/enas-micro.yaml", "1x8x8", "4", 4, 12, NASC_MODE_TRAIN, false};
/* Per model: two tiny training nets, one with 12+ channels everywhere
 * (oneDNN's blocked layouts, with concat offsets that are not multiples of
 * the block) and three input channels, and inference with and without
 * fusing. */
static const model_cfg NASNET[] = {
    {"models/nasnet-a.yaml", "1x8x8", "4", 4, 21, NASC_MODE_TRAIN, false},
    {"models/nasnet-a.yaml", "1x7x7", "4", 3, 22, NASC_MODE_TRAIN, false},
    {"models/nasnet-a.yaml", "3x8x8", "12", 2, 23, NASC_MODE_TRAIN, false},
    {"models/nasnet-a.yaml", "1x8x8", "8", 4, 26, NASC_MODE_TRAIN, true}, /* as nasc train compiles */
    /* 16 channels: nasc's own depthwise forward and backward-data on
     * AVX-512 (nChw16c), 8x8 and 4x4 planes */
    {"models/nasnet-a.yaml", "1x8x8", "16", 2, 27, NASC_MODE_TRAIN, true},
    {"models/nasnet-a.yaml", "1x8x8", "8", 4, 24, NASC_MODE_INFER, false},
    {"models/nasnet-a.yaml", "1x8x8", "8", 4, 25, NASC_MODE_INFER, true},
};
static const model_cfg ENAS[] = {
    {"models/enas-micro.yaml", "1x8x8", "4", 4, 31, NASC_MODE_TRAIN, false},
    {"models/enas-micro.yaml", "1x7x7", "4", 3, 32, NASC_MODE_TRAIN, false},
    {"models/enas-micro.yaml", "3x8x8", "12", 2, 33, NASC_MODE_TRAIN, false},
    {"models/enas-micro.yaml", "3x8x8", "8", 2, 36, NASC_MODE_TRAIN, false},
    {"models/enas-micro.yaml", "1x8x8", "8", 4, 37, NASC_MODE_TRAIN, true},
    {"models/enas-micro.yaml", "2x7x7", "16", 2, 38, NASC_MODE_TRAIN, true}, /* 7x7 and 4x4, nChw16c */
    {"models/enas-micro.yaml", "1x8x8", "8", 4, 34, NASC_MODE_INFER, false},
    {"models/enas-micro.yaml", "1x8x8", "8", 4, 35, NASC_MODE_INFER, true},
};

static void test_ref_nasnet(void **state) {
    (void)state;
    assert_true(check_model(&NASNET_REF, SRC_REF));
}
static void test_ref_enas(void **state) {
    (void)state;
    assert_true(check_model(&ENAS_REF, SRC_REF));
}
static void test_cells_nasnet(void **state) {
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof NASNET / sizeof NASNET[0]; i++) failed += !check_model(&NASNET[i], SRC_BACKEND);
    assert_int_equal(failed, 0);
}
static void test_cells_enas(void **state) {
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof ENAS / sizeof ENAS[0]; i++) failed += !check_model(&ENAS[i], SRC_BACKEND);
    assert_int_equal(failed, 0);
}

int main(void) {
    const char *filter = getenv("NASC_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
#define REF_TEST(id, n) {"ref_grad_" #id, test_ref_case, NULL, NULL, &CASE_##id},
#define NET_TEST(id, n) {#id, test_backend_case, NULL, NULL, &CASE_##id},
    const struct CMUnitTest reference[] = {
        cmocka_unit_test(test_ref_conv),
        cmocka_unit_test(test_ref_pool),
        cmocka_unit_test(test_ref_batch_norm),
        cmocka_unit_test(test_ref_misc),
        OP_CASES(REF_TEST) cmocka_unit_test(test_ref_nasnet),
        cmocka_unit_test(test_ref_enas),
    };
    const struct CMUnitTest ops[] = {OP_CASES(NET_TEST) cmocka_unit_test(test_bn_running_stats),
                                     cmocka_unit_test(test_computed_w_infer), cmocka_unit_test(test_winograd_chosen),
                                     cmocka_unit_test(test_1x1_own_chosen)};
    const struct CMUnitTest cells[] = {
        cmocka_unit_test(test_cells_nasnet),
        cmocka_unit_test(test_cells_enas),
    };
#undef REF_TEST
#undef NET_TEST
    int failed = cmocka_run_group_tests_name("reference", reference, NULL, NULL);
    failed += cmocka_run_group_tests_name("ops", ops, NULL, NULL);
    failed += cmocka_run_group_tests_name("cells", cells, NULL, NULL);
    return failed ? 1 : 0;
}
