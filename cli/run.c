/* run.c - `nasc run`: one inference pass on tensors from ONNX TensorProto files. */
#include <string.h>

#include "model.h"
#include "nasc_export.h"
#include "verbs.h"

#define MAX_FILES 16

static void usage(FILE *out) {
    fputs("usage: nasc run MODEL [--weights CKPT] --input IN.pb [--input IN2.pb]...\n"
          "                --output OUT.pb [--output OUT2.pb]... [--threads T] [--set KEY=VALUE]...\n",
          out);
}

void nasc_cli_run_help(FILE *out) {
    fputs("nasc run - run a model once on input tensors (ONNX TensorProto files)\n\n", out);
    usage(out);
    fputs("\nCompiles MODEL for inference (running batch-norm statistics, batch norm\n"
          "folded into the conv, relu fused), reads each --input (one per net input, in\n"
          "order; dim 0 is the batch, the rest must match the net input), runs the\n"
          "net forward and writes output i to the i-th --output as a TensorProto with\n"
          "float raw_data: the format of ONNX test data (onnx.numpy_helper reads it).\n"
          "The net takes normalised images: (x - mean) / std with the training set's\n"
          "mean and std (meta data/mean, data/std of a trained checkpoint; the\n"
          "nasc.data_mean / nasc.data_std metadata of an exported ONNX file).\n\n"
          "Options:\n"
          "  --weights CKPT      checkpoint.nasc from nasc train (default: fresh weights)\n"
          "  -i, --input FILE    an input tensor (.pb), repeated for several net inputs\n"
          "  -o, --output FILE   where to write an output tensor (.pb), repeated for\n"
          "                      several net outputs (at least one)\n"
          "  --threads T         threads (default: all cores)\n"
          "  -h, --help          this help\n",
          out);
    nasc_cli_model_help(out);
    fputs("\nExample:\n"
          "  nasc run models/darts-v2.yaml --weights runs/darts/checkpoint.nasc \\\n"
          "      --input input_0.pb --output output_0.pb\n",
          out);
}

static void shape_str(const int64_t *dims, int rank, bool batch, char *buf, size_t size) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && k < size; i++) {
        if (i == 0 && batch)
            k += (size_t)snprintf(buf + k, size - k, "N");
        else
            k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (k < size) snprintf(buf + k, size - k, "]");
}

/* Inputs of a prim module in order (value ids). */
static uint32_t net_inputs(const nasc_module *m, uint32_t *ids, uint32_t cap) {
    uint32_t n = 0;
    for (uint32_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == NASC_VAL_INPUT) {
            if (n < cap) ids[n] = v;
            n++;
        }
    return n;
}

/* The tensor of file path must fit net input v; sets or checks *batch. */
static nasc_status check_input(nasc_ctx *ctx, const nasc_module *m, uint32_t v, const nasc_tensor_pb *t,
                               const char *path, int64_t *batch) {
    const nasc_type *ty = &m->values[v].type;
    char want[128], got[128];
    shape_str(ty->dims, ty->rank, ty->dims[0] == NASC_BATCH, want, sizeof want);
    shape_str(t->dims, t->rank, false, got, sizeof got);
    const char *name = nasc_str(m, m->values[v].name);
    bool ok = t->rank == ty->rank;
    for (int d = 0; ok && d < ty->rank; d++)
        ok = d == 0 && ty->dims[0] == NASC_BATCH ? t->dims[0] >= 1 : t->dims[d] == ty->dims[d];
    if (!ok)
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                          "the tensor has shape %s; input '%s' of the model wants %s (N: any batch >= 1)", got, name,
                          want);
    if (t->dims[0] > 65536)
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "batch %lld is too large (at most 65536)",
                          (long long)t->dims[0]);
    if (*batch && t->dims[0] != *batch)
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                          "the tensor has batch %lld, the first input has %lld; all inputs need the same",
                          (long long)t->dims[0], (long long)*batch);
    *batch = t->dims[0];
    return NASC_OK;
}

static nasc_status run_net(nasc_ctx *ctx, const nasc_module *m, nasc_param_store *store, const char **inputs,
                           int n_in, const char **outputs, int n_out, int threads) {
    uint32_t ids[MAX_FILES];
    uint32_t n_net = net_inputs(m, ids, MAX_FILES);
    if ((uint32_t)n_in != n_net)
        return nasc_error(ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the model has %u input%s, %d --input given", n_net,
                          n_net == 1 ? "" : "s", n_in);
    if ((uint32_t)n_out > m->n_outputs)
        return nasc_error(ctx, NASC_EINPUT, m->source, NASC_NOLOC, "the model has %u output%s, %d --output given",
                          m->n_outputs, m->n_outputs == 1 ? "" : "s", n_out);
    nasc_tensor_pb t[MAX_FILES];
    memset(t, 0, sizeof t);
    int64_t batch = 0;
    nasc_status st = NASC_OK;
    for (int i = 0; i < n_in && !st; i++) {
        st = nasc_tensor_pb_load(ctx, inputs[i], &t[i]);
        if (!st) st = check_input(ctx, m, ids[i], &t[i], inputs[i], &batch);
    }
    nasc_net *net = NULL;
    if (!st) {
        nasc_net_options o = nasc_net_options_default();
        o.mode = NASC_MODE_INFER;
        o.fuse = true;
        o.fixed_weights = true;
        o.batch = (int)batch;
        o.threads = threads;
        st = nasc_net_compile(ctx, m, store, &o, &net);
    }
    for (int i = 0; i < n_in && !st; i++) st = nasc_net_set_input(net, (uint32_t)i, t[i].data);
    if (!st) st = nasc_net_forward(net);
    nasc_buf b;
    nasc_buf_init(&b, ctx);
    for (int k = 0; k < n_out && !st; k++) {
        uint32_t v = m->outputs[k];
        const nasc_type *ty = &m->values[v].type;
        const char *name = nasc_str(m, m->values[v].name);
        int64_t dims[NASC_MAX_RANK];
        int64_t numel = 1;
        for (int d = 0; d < ty->rank; d++) {
            dims[d] = d == 0 && ty->dims[0] == NASC_BATCH ? batch : ty->dims[d];
            numel *= dims[d];
        }
        float *y = nasc_alloc(ctx, (size_t)numel * sizeof *y);
        if (!y) {
            st = NASC_ENOMEM;
            break;
        }
        st = nasc_net_read(net, name, y);
        b.len = 0;
        if (!st) st = nasc_tensor_pb_write(name, ty->rank, dims, y, &b);
        if (!st) st = nasc_file_write_atomic(ctx, outputs[k], b.data, b.len);
        if (!st) {
            char shape[128];
            shape_str(dims, ty->rank, false, shape, sizeof shape);
            printf("wrote %s: %s %s\n", outputs[k], name, shape);
        }
        nasc_free(ctx, y);
    }
    nasc_buf_free(&b);
    nasc_net_destroy(net);
    for (int i = 0; i < n_in; i++) nasc_tensor_pb_free(ctx, &t[i]);
    return st;
}

int nasc_cli_run(int argc, char **argv) {
    nasc_cli_model mo = {0};
    const char *weights = NULL;
    const char *inputs[MAX_FILES], *outputs[MAX_FILES];
    int n_in = 0, n_out = 0;
    long t = 0;
    const nasc_cli_opt opts[] = {
        {NASC_CLI_OPT("--input", "-i", NASC_CLI_LIST, inputs), .missing = "missing --input IN.pb", .count = &n_in,
         .cap = MAX_FILES, .file = true},
        {NASC_CLI_OPT("--output", "-o", NASC_CLI_LIST, outputs), .missing = "missing --output OUT.pb",
         .count = &n_out, .cap = MAX_FILES, .file = true},
        {NASC_CLI_OPT("--weights", "-w", NASC_CLI_STR, &weights)},
        {NASC_CLI_OPT("--threads", NULL, NASC_CLI_INT, &t), .lo = 0, .hi = 1024},
    };
    nasc_cli_args a;
    nasc_cli_args_init(&a, argc, argv, usage);
    int rc = nasc_cli_parse(&a, NASC_CLI_TABLE(opts), &mo, NASC_CLI_ONE_MODEL, nasc_cli_run_help);
    if (rc != NASC_CLI_GO) return rc;

    nasc_cli_job j;
    rc = nasc_cli_job_open(&j, &mo, NASC_CLI_ANY_WEIGHTS, weights);
    if (rc) return rc;
    if (run_net(&j.ctx, j.net.prim, j.weights, inputs, n_in, outputs, n_out, (int)t) != NASC_OK)
        rc = nasc_cli_fail(&j.ctx);
    nasc_cli_job_close(&j);
    return rc;
}
