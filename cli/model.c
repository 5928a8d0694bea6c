/* model.c - what train, eval and bench share: a model as a prim module,
 * its identity in checkpoints, and the data set. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

static bool is_onnx(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n >= 5 && strcmp(path + n - 5, ".onnx") == 0;
}

nasc_status nasc_cli_lower_options(nasc_ctx *ctx, const nasc_cli_model *mo, const nasc_module *loaded,
                                   nasc_lower_options *lo) {
    *lo = nasc_lower_options_default();
    for (size_t i = 0; i < mo->n_ov; i++) {
        if (strcmp(mo->ov[i].key, "steps") != 0) continue;
        long t;
        bool rnn = loaded->dialect == NASC_DIALECT_ARCH && loaded->skel.kind == NASC_NET_RECURRENT;
        if (!rnn)
            return nasc_error(ctx, NASC_EINPUT, mo->path, NASC_NOLOC,
                              "not a recurrent model: only a language model (a recurrent arch model) is unrolled over "
                              "time steps (steps=%s)",
                              mo->ov[i].value);
        if (!nasc_cli_parse_int(mo->ov[i].value, 1, NASC_MAX_SEQ_LEN, &t))
            return nasc_error(ctx, NASC_EINPUT, mo->path, NASC_NOLOC,
                              "--set steps=T unrolls a recurrent model over T steps, T in 1..%d; got '%s'",
                              NASC_MAX_SEQ_LEN, mo->ov[i].value);
        lo->seq_len = (int)t;
    }
    return NASC_OK;
}

int nasc_cli_load_prim(nasc_ctx *ctx, const nasc_cli_model *mo, nasc_cli_net *out) {
    memset(out, 0, sizeof *out);
    int rc;
    if (is_onnx(mo->path)) {
        /* an ONNX model: a prim module with its initializers as weights */
        if (mo->n_ov) {
            nasc_error(ctx, NASC_EINPUT, mo->path, NASC_NOLOC,
                       "--set applies to YAML and arch models; an ONNX model's shapes are fixed");
            return nasc_cli_fail(ctx);
        }
        if (nasc_onnx_load(ctx, mo->path, &out->loaded, &out->weights) != NASC_OK) {
            nasc_cli_net_free(out);
            return nasc_cli_fail(ctx);
        }
        rc = NASC_EXIT_OK;
    } else {
        rc = nasc_cli_load(ctx, mo, &out->loaded);
    }
    if (rc) return rc;
    nasc_lower_options lo;
    if (nasc_cli_lower_options(ctx, mo, out->loaded, &lo)) {
        nasc_cli_net_free(out);
        return nasc_cli_fail(ctx);
    }
    if (out->loaded->dialect == NASC_DIALECT_PRIM) {
        out->prim = out->loaded;
    } else if (nasc_lower_with(out->loaded, &lo, &out->lowered) != NASC_OK || nasc_prim_verify(out->lowered) != NASC_OK) {
        nasc_cli_net_free(out);
        return nasc_cli_fail(ctx);
    } else {
        out->prim = out->lowered;
    }
    /* identity: the canonical arch hash, or a hash of the prim text */
    if (out->loaded->dialect == NASC_DIALECT_ARCH) {
        uint64_t h;
        if (nasc_arch_hash(out->loaded, &h) != NASC_OK) {
            nasc_cli_net_free(out);
            return nasc_cli_fail(ctx);
        }
        snprintf(out->hash, sizeof out->hash, "arch:%016llx", (unsigned long long)h);
    } else {
        nasc_buf b;
        nasc_buf_init(&b, ctx);
        nasc_text_print(out->prim, &b);
        snprintf(out->hash, sizeof out->hash, "prim:%016llx",
                 (unsigned long long)(b.data ? nasc_hash_str(b.data) : 0));
        nasc_buf_free(&b);
    }
    return NASC_EXIT_OK;
}

void nasc_cli_net_free(nasc_cli_net *n) {
    nasc_params_destroy(n->weights);
    nasc_module_destroy(n->lowered);
    nasc_module_destroy(n->loaded);
    memset(n, 0, sizeof *n);
}

int nasc_cli_check_weights(nasc_ctx *ctx, const nasc_cli_net *n, const nasc_param_store *s, const char *path) {
    const char *h = nasc_params_meta(s, "model/hash");
    if (!h) {
        nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "the checkpoint does not say which model it belongs to");
        return nasc_cli_fail(ctx);
    }
    if (strcmp(h, n->hash) != 0) {
        const char *m = nasc_params_meta(s, "model/path");
        nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC,
                   "the checkpoint is for another architecture (%s, from %s) than %s (%s)", h, m ? m : "?",
                   n->loaded->source ? n->loaded->source : "the model", n->hash);
        return nasc_cli_fail(ctx);
    }
    return NASC_EXIT_OK;
}

int nasc_cli_load_data(nasc_ctx *ctx, const char *spec, nasc_dataset *train, nasc_dataset *test) {
    if (nasc_data_load(ctx, spec, train, test) != NASC_OK) return nasc_cli_fail(ctx);
    return NASC_EXIT_OK;
}

int nasc_cli_mkdirs(nasc_ctx *ctx, const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "bad output directory name");
        return nasc_cli_fail(ctx);
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            nasc_error(ctx, NASC_EINPUT, buf, NASC_NOLOC, "cannot create the directory: %s", strerror(errno));
            return nasc_cli_fail(ctx);
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "not a directory");
        return nasc_cli_fail(ctx);
    }
    return NASC_EXIT_OK;
}

int nasc_cli_net_weights(nasc_ctx *ctx, const nasc_cli_net *n, const char *ckpt, nasc_param_store **out,
                         bool *owned) {
    *out = NULL;
    *owned = false;
    if (n->weights) {
        if (ckpt) {
            nasc_error(ctx, NASC_EINPUT, ckpt, NASC_NOLOC, "%s carries its own weights; drop --weights",
                       n->loaded->source ? n->loaded->source : "the model");
            return nasc_cli_fail(ctx);
        }
        *out = n->weights;
        return NASC_EXIT_OK;
    }
    nasc_param_store *s = NULL;
    if (ckpt) {
        if (nasc_params_load(ctx, ckpt, &s) != NASC_OK) return nasc_cli_fail(ctx);
        int rc = nasc_cli_check_weights(ctx, n, s, ckpt);
        if (rc) {
            nasc_params_destroy(s);
            return rc;
        }
    } else {
        s = nasc_params_create(ctx);
        if (!s) return nasc_cli_fail(ctx);
        if (nasc_params_init(s, n->prim, NASC_DEFAULT_SEED) != NASC_OK) {
            nasc_params_destroy(s);
            return nasc_cli_fail(ctx);
        }
    }
    *out = s;
    *owned = true;
    return NASC_EXIT_OK;
}

int nasc_cli_job_open(nasc_cli_job *j, const nasc_cli_model *mo, nasc_cli_weights how, const char *ckpt) {
    nasc_ctx_init(&j->ctx);
    j->weights = NULL;
    j->owned = false;
    int rc = nasc_cli_load_prim(&j->ctx, mo, &j->net);
    if (rc) return rc;
    if (how == NASC_CLI_ANY_WEIGHTS) {
        rc = nasc_cli_net_weights(&j->ctx, &j->net, ckpt, &j->weights, &j->owned);
    } else if (how == NASC_CLI_CKPT_WEIGHTS) {
        if (nasc_params_load(&j->ctx, ckpt, &j->weights) != NASC_OK) {
            rc = nasc_cli_fail(&j->ctx);
        } else {
            j->owned = true;
            rc = nasc_cli_check_weights(&j->ctx, &j->net, j->weights, ckpt);
        }
    }
    if (rc) nasc_cli_job_close(j);
    return rc;
}

void nasc_cli_job_close(nasc_cli_job *j) {
    if (j->owned) nasc_params_destroy(j->weights);
    j->weights = NULL;
    j->owned = false;
    nasc_cli_net_free(&j->net);
}

bool nasc_cli_is_lm(const nasc_module *prim) {
    return prim->n_values && prim->values[0].kind == NASC_VAL_INPUT && prim->values[0].type.rank == 2 &&
           prim->n_outputs && prim->values[prim->outputs[0]].type.rank == 3;
}
