/* test_onnx.c - `nasc test-onnx`: run ONNX's own node test cases (a
 * folder with model.onnx and test_data_set_N/input_K.pb, output_K.pb)
 * through the importer and the oneDNN backend, compare every output. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "verbs.h"

#define RTOL 1e-3
#define ATOL 1e-5
#define MAX_IO 16
#define MAX_SETS 64

static void usage(FILE *out) { fputs("usage: nasc test-onnx [--threads T] [--quiet] CASE_DIR...\n", out); }

void nasc_cli_test_onnx_help(FILE *out) {
    fputs("nasc test-onnx - run ONNX node test cases through the importer and the backend\n\n", out);
    usage(out);
    fputs("\nEach CASE_DIR holds model.onnx and test_data_set_*/ folders of input_K.pb and\n"
          "output_K.pb TensorProto files (the layout of ONNX's backend test data, e.g.\n"
          "/usr/share/libonnx-testdata/data/node/test_relu). For every data set the\n"
          "model is imported with the inputs as feeds (an input read as a constant,\n"
          "such as a Conv weight or a Reshape shape, takes the data set's value),\n"
          "compiled for inference (batch = the input's dim 0 when the model's first dim\n"
          "is symbolic), run, and every output compared with the expected one:\n"
          "|got - want| <= 1e-5 + 1e-3 * |want| elementwise.\n\n"
          "One line per case: PASS with the largest error, or FAIL with the reason\n"
          "(the unsupported operator or attribute, or the worst element). The last line\n"
          "is `N passed, M failed`; the exit status is 0 only when every case passed.\n\n"
          "Options:\n"
          "  --threads T         threads (default: all cores)\n"
          "  --quiet             print only failures and the summary\n"
          "  -h, --help          this help\n\n"
          "Example:\n"
          "  nasc test-onnx /usr/share/libonnx-testdata/data/node/test_conv_*\n",
          out);
}

/* A file's bytes. */
typedef struct blob {
    char *data;
    size_t len;
} blob;

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The test_data_set_* folders of dir, sorted. */
static int data_sets(const char *dir, char **names, int cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "test_data_set_", 14) == 0 && n < cap) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *b = path;
    for (size_t i = 0; i + 1 < n; i++)
        if (path[i] == '/') b = path + i + 1;
    return b;
}

/* The result of one case. */
typedef struct verdict {
    bool pass;
    char why[640];
    double max_err;
    int sets;
} verdict;

static void fail_diag(verdict *v, const nasc_ctx *ctx) {
    v->pass = false;
    nasc_diag_format(&ctx->diag, v->why, sizeof v->why);
}

/* Compare got with want; on the first element out of tolerance say where. */
static bool compare(const float *got, const nasc_tensor_pb *want, double *max_err, int64_t *bad) {
    bool ok = true;
    *bad = -1;
    for (int64_t i = 0; i < want->numel; i++) {
        double g = got[i], w = want->data[i];
        if ((isnan(w) && isnan(g)) || g == w) continue; /* equal infinities too */
        double e = fabs(g - w);
        if (!(e <= *max_err)) *max_err = isnan(e) ? INFINITY : e;
        if (!(e <= ATOL + RTOL * fabs(w)) && ok) {
            ok = false;
            *bad = i;
        }
    }
    return ok;
}

/* One data set of a case on its way through the importer and the net. */
typedef struct set_run {
    nasc_ctx *ctx;
    const char *dir, *set;
    verdict *v;
    blob in[MAX_IO]; /* input_<i>.pb, in order */
    int n_in;
    bool imported; /* prim, w and info hold the import */
    nasc_module *prim;
    nasc_param_store *w;
    nasc_onnx_import_info info;
    nasc_net *net;
    int64_t batch;
} set_run;

static bool set_fail(set_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool set_fail(set_run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->v->why, sizeof r->v->why, fmt, ap);
    va_end(ap);
    r->v->pass = false;
    return false;
}

static bool diag_fail(set_run *r) {
    fail_diag(r->v, r->ctx);
    return false;
}

/* The input files, fed to the importer as constants where the model reads
 * them so. */
static bool import_set(set_run *r, const blob *model) {
    char path[4096];
    nasc_onnx_feed feeds[MAX_IO];
    for (; r->n_in < MAX_IO; r->n_in++) {
        snprintf(path, sizeof path, "%s/%s/input_%d.pb", r->dir, r->set, r->n_in);
        if (!exists(path)) break;
        blob *b = &r->in[r->n_in];
        if (nasc_file_read(r->ctx, path, &b->data, &b->len) != NASC_OK) return diag_fail(r);
        feeds[r->n_in] = (nasc_onnx_feed){NULL, b->data, b->len};
    }
    nasc_onnx_import_options o = nasc_onnx_import_options_default();
    o.feeds = feeds;
    o.n_feeds = (uint32_t)r->n_in;
    snprintf(path, sizeof path, "%s/model.onnx", r->dir);
    if (nasc_onnx_import_ex(r->ctx, model->data, model->len, path, &o, &r->prim, &r->w, &r->info) != NASC_OK)
        return diag_fail(r);
    r->imported = true;
    return true;
}

/* The batch: dim 0 of a fed input whose first dim is symbolic. */
static bool find_batch(set_run *r) {
    r->batch = 1;
    for (uint32_t i = 0; i < r->info.n_inputs; i++) {
        if (r->info.inputs[i].value < 0) continue;
        const nasc_type *ty = &r->prim->values[r->info.inputs[i].value].type;
        if (i >= (uint32_t)r->n_in)
            return set_fail(r, "%s: no input_%u.pb for graph input '%.100s'", r->set, i, r->info.inputs[i].name);
        nasc_tensor_pb t;
        memset(&t, 0, sizeof t);
        if (nasc_tensor_pb_read(r->ctx, r->in[i].data, r->in[i].len, "input", &t) != NASC_OK) return diag_fail(r);
        if (ty->dims[0] == NASC_BATCH && t.rank >= 1) r->batch = t.dims[0];
        nasc_tensor_pb_free(r->ctx, &t);
    }
    return true;
}

/* An inference net at that batch, with the inputs set. */
static bool compile_and_feed(set_run *r, int threads) {
    if (r->batch < 1 || r->batch > 65536)
        return set_fail(r, "%s: batch %lld is not supported", r->set, (long long)r->batch);
    nasc_net_options no = nasc_net_options_default();
    no.mode = NASC_MODE_INFER;
    no.fuse = true;
    no.threads = threads;
    no.batch = (int)r->batch;
    if (nasc_net_compile(r->ctx, r->prim, r->w, &no, &r->net) != NASC_OK) return diag_fail(r);
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->info.n_inputs; i++) {
        if (r->info.inputs[i].value < 0) continue;
        const nasc_type *ty = &r->prim->values[r->info.inputs[i].value].type;
        nasc_tensor_pb t;
        memset(&t, 0, sizeof t);
        if (nasc_tensor_pb_read(r->ctx, r->in[i].data, r->in[i].len, "input", &t) != NASC_OK) return diag_fail(r);
        int64_t want = nasc_type_numel(ty) * (ty->dims[0] == NASC_BATCH ? r->batch : 1);
        bool ok = t.numel == want ? true
                                  : set_fail(r, "%s: input_%u.pb has %lld values, input '%.100s' takes %lld", r->set,
                                             i, (long long)t.numel, r->info.inputs[i].name, (long long)want);
        if (ok && nasc_net_set_input(r->net, k++, t.data) != NASC_OK) ok = diag_fail(r);
        nasc_tensor_pb_free(r->ctx, &t);
        if (!ok) return false;
    }
    return true;
}

/* Output j of the net against output_<j>.pb; t is the expected tensor. */
static bool check_output(set_run *r, uint32_t j, const nasc_tensor_pb *t) {
    uint32_t val = (uint32_t)r->info.outputs[j].value;
    const nasc_type *ty = &r->prim->values[val].type;
    int64_t n = nasc_type_numel(ty) * (ty->dims[0] == NASC_BATCH ? r->batch : 1);
    if (t->numel != n)
        return set_fail(r, "%s: output %u '%.100s' has %lld values, the expected tensor %lld", r->set, j,
                        r->info.outputs[j].name, (long long)n, (long long)t->numel);
    float *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    if (!got) return set_fail(r, "out of memory");
    bool ok = true;
    int64_t bad;
    if (nasc_net_read(r->net, nasc_str(r->prim, r->prim->values[val].name), got) != NASC_OK)
        ok = diag_fail(r);
    else if (!compare(got, t, &r->v->max_err, &bad))
        ok = set_fail(r, "%s: output %u '%.100s' element %lld is %.9g, expected %.9g (max error %.3g)", r->set, j,
                      r->info.outputs[j].name, (long long)bad, (double)got[bad], (double)t->data[bad],
                      r->v->max_err);
    free(got);
    return ok;
}

/* One data set of a case. */
static void run_set(nasc_ctx *ctx, const char *dir, const blob *model, const char *set, int threads, verdict *v) {
    set_run r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.dir = dir;
    r.set = set;
    r.v = v;
    bool ok = import_set(&r, model) && find_batch(&r) && compile_and_feed(&r, threads);
    if (ok && nasc_net_forward(r.net) != NASC_OK) ok = diag_fail(&r);
    for (uint32_t j = 0; ok && j < r.info.n_outputs; j++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/output_%u.pb", dir, set, j);
        nasc_tensor_pb t;
        memset(&t, 0, sizeof t);
        if (nasc_tensor_pb_load(ctx, path, &t) != NASC_OK)
            ok = diag_fail(&r);
        else
            ok = check_output(&r, j, &t);
        nasc_tensor_pb_free(ctx, &t);
    }
    nasc_net_destroy(r.net);
    if (r.imported) {
        nasc_onnx_import_info_free(ctx, &r.info);
        nasc_module_destroy(r.prim);
        nasc_params_destroy(r.w);
    }
    for (int i = 0; i < r.n_in; i++) nasc_free(ctx, r.in[i].data);
}

static void run_case(const char *dir, int threads, verdict *v) {
    nasc_ctx ctx;
    nasc_ctx_init(&ctx);
    memset(v, 0, sizeof *v);
    v->pass = true;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    blob model = {NULL, 0};
    if (nasc_file_read(&ctx, path, &model.data, &model.len) != NASC_OK) {
        fail_diag(v, &ctx);
        return;
    }
    char *sets[MAX_SETS];
    int n = data_sets(dir, sets, MAX_SETS);
    if (n <= 0) {
        v->pass = false;
        snprintf(v->why, sizeof v->why, "%s: no test_data_set_* folders", dir);
    }
    for (int i = 0; i < n; i++) {
        if (v->pass) {
            run_set(&ctx, dir, &model, sets[i], threads, v);
            v->sets++;
        }
        free(sets[i]);
    }
    nasc_free(&ctx, model.data);
}

int nasc_cli_test_onnx(int argc, char **argv) {
    nasc_cli_args a;
    const char *threads = NULL;
    bool quiet = false;
    const char *dirs[4096];
    int n_dirs = 0;
    nasc_cli_args_init(&a, argc, argv, usage);
    while (a.i < argc) {
        int r;
        const char *pos;
        if (!a.positional && nasc_cli_is_help(argv[a.i])) {
            nasc_cli_test_onnx_help(stdout);
            return NASC_EXIT_OK;
        }
        if ((r = nasc_cli_value_opt(&a, "--threads", NULL, &threads)) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            continue;
        }
        if ((r = nasc_cli_flag(&a, "--quiet")) != 0) {
            if (r < 0) return NASC_EXIT_USAGE;
            quiet = true;
            continue;
        }
        if ((pos = nasc_cli_positional(&a)) != NULL) {
            if (n_dirs == (int)(sizeof dirs / sizeof dirs[0])) return nasc_cli_usage_error(&a, "too many case folders");
            dirs[n_dirs++] = pos;
            continue;
        }
        if (a.i >= argc) break;
        return nasc_cli_usage_error(&a, "unknown option '%s'", argv[a.i]);
    }
    long t = 0;
    if (threads && !nasc_cli_parse_int(threads, 0, 1024, &t))
        return nasc_cli_usage_error(&a, "--threads wants an integer in [0, 1024], got '%s'", threads);
    if (n_dirs == 0) return nasc_cli_usage_error(&a, "missing CASE_DIR");
    int passed = 0, failed = 0;
    for (int i = 0; i < n_dirs; i++) {
        verdict v;
        run_case(dirs[i], (int)t, &v);
        if (v.pass) {
            passed++;
            if (!quiet)
                printf("PASS %s (%d data set%s, max error %.3g)\n", base_name(dirs[i]), v.sets, v.sets == 1 ? "" : "s",
                       v.max_err);
        } else {
            failed++;
            printf("FAIL %s: %s\n", base_name(dirs[i]), v.why);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? NASC_EXIT_INPUT : NASC_EXIT_OK;
}
