/* test_onnx.c - `nasc test-onnx`: run ONNX's own node test cases (a
 * folder with model.onnx and test_data_set_N/input_K.pb, output_K.pb)
 * through the importer and the oneDNN backend, compare every output. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
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

/* One data set of a case. */
static void run_set(nasc_ctx *ctx, const char *dir, const blob *model, const char *set, int threads, verdict *v) {
    char path[4096];
    blob in[MAX_IO];
    nasc_onnx_feed feeds[MAX_IO];
    int n_in = 0;
    memset(in, 0, sizeof in);
    for (; n_in < MAX_IO; n_in++) {
        snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, set, n_in);
        if (!exists(path)) break;
        if (nasc_file_read(ctx, path, &in[n_in].data, &in[n_in].len) != NASC_OK) {
            fail_diag(v, ctx);
            goto done_inputs;
        }
        feeds[n_in] = (nasc_onnx_feed){NULL, in[n_in].data, in[n_in].len};
    }
    nasc_onnx_import_options o = nasc_onnx_import_options_default();
    o.feeds = feeds;
    o.n_feeds = (uint32_t)n_in;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    nasc_module *prim = NULL;
    nasc_param_store *w = NULL;
    nasc_onnx_import_info info;
    nasc_net *net = NULL;
    float *got = NULL;
    nasc_tensor_pb t;
    memset(&t, 0, sizeof t);
    if (nasc_onnx_import_ex(ctx, model->data, model->len, path, &o, &prim, &w, &info) != NASC_OK) {
        fail_diag(v, ctx);
        goto done_inputs;
    }
    /* the batch: dim 0 of a fed input whose first dim is symbolic */
    int64_t batch = 1;
    uint32_t k = 0;
    for (uint32_t i = 0; i < info.n_inputs; i++) {
        if (info.inputs[i].value < 0) continue;
        const nasc_type *ty = &prim->values[info.inputs[i].value].type;
        if (i >= (uint32_t)n_in) {
            v->pass = false;
            snprintf(v->why, sizeof v->why, "%s: no input_%u.pb for graph input '%.100s'", set, i, info.inputs[i].name);
            goto done;
        }
        if (nasc_tensor_pb_read(ctx, in[i].data, in[i].len, "input", &t) != NASC_OK) {
            fail_diag(v, ctx);
            goto done;
        }
        if (ty->dims[0] == NASC_BATCH && t.rank >= 1) batch = t.dims[0];
        nasc_tensor_pb_free(ctx, &t);
    }
    nasc_net_options no = nasc_net_options_default();
    no.mode = NASC_MODE_INFER;
    no.fuse = true;
    no.threads = threads;
    no.batch = (int)batch;
    if (batch < 1 || batch > 65536 || nasc_net_compile(ctx, prim, w, &no, &net) != NASC_OK) {
        if (batch < 1 || batch > 65536)
            snprintf(v->why, sizeof v->why, "%s: batch %lld is not supported", set, (long long)batch), v->pass = false;
        else
            fail_diag(v, ctx);
        goto done;
    }
    for (uint32_t i = 0; i < info.n_inputs; i++) {
        if (info.inputs[i].value < 0) continue;
        const nasc_type *ty = &prim->values[info.inputs[i].value].type;
        if (nasc_tensor_pb_read(ctx, in[i].data, in[i].len, "input", &t) != NASC_OK) {
            fail_diag(v, ctx);
            goto done;
        }
        int64_t want = nasc_type_numel(ty) * (ty->dims[0] == NASC_BATCH ? batch : 1);
        if (t.numel != want) {
            v->pass = false;
            snprintf(v->why, sizeof v->why, "%s: input_%u.pb has %lld values, input '%.100s' takes %lld", set, i,
                     (long long)t.numel, info.inputs[i].name, (long long)want);
            goto done;
        }
        if (nasc_net_set_input(net, k++, t.data) != NASC_OK) {
            fail_diag(v, ctx);
            goto done;
        }
        nasc_tensor_pb_free(ctx, &t);
    }
    if (nasc_net_forward(net) != NASC_OK) {
        fail_diag(v, ctx);
        goto done;
    }
    for (uint32_t j = 0; j < info.n_outputs; j++) {
        snprintf(path, sizeof path, "%s/%s/output_%u.pb", dir, set, j);
        if (nasc_tensor_pb_load(ctx, path, &t) != NASC_OK) {
            fail_diag(v, ctx);
            goto done;
        }
        uint32_t val = (uint32_t)info.outputs[j].value;
        const nasc_type *ty = &prim->values[val].type;
        int64_t n = nasc_type_numel(ty) * (ty->dims[0] == NASC_BATCH ? batch : 1);
        if (t.numel != n) {
            v->pass = false;
            snprintf(v->why, sizeof v->why, "%s: output %u '%.100s' has %lld values, the expected tensor %lld", set, j,
                     info.outputs[j].name, (long long)n, (long long)t.numel);
            goto done;
        }
        free(got);
        got = malloc((size_t)(n ? n : 1) * sizeof *got);
        if (!got || nasc_net_read(net, nasc_str(prim, prim->values[val].name), got) != NASC_OK) {
            if (got)
                fail_diag(v, ctx);
            else
                snprintf(v->why, sizeof v->why, "out of memory"), v->pass = false;
            goto done;
        }
        int64_t bad;
        if (!compare(got, &t, &v->max_err, &bad)) {
            v->pass = false;
            snprintf(v->why, sizeof v->why,
                     "%s: output %u '%.100s' element %lld is %.9g, expected %.9g (max error %.3g)", set, j,
                     info.outputs[j].name, (long long)bad, (double)got[bad], (double)t.data[bad], v->max_err);
            goto done;
        }
        nasc_tensor_pb_free(ctx, &t);
    }
done:
    nasc_tensor_pb_free(ctx, &t);
    free(got);
    nasc_net_destroy(net);
    nasc_onnx_import_info_free(ctx, &info);
    nasc_module_destroy(prim);
    nasc_params_destroy(w);
done_inputs:
    for (int i = 0; i < n_in; i++) nasc_free(ctx, in[i].data);
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
