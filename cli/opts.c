/* opts.c - option parsing and formatting shared by the verbs. */
#include "opts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void nasc_cli_args_init(nasc_cli_args *a, int argc, char **argv, void (*usage)(FILE *)) {
    a->verb = argc > 0 ? argv[0] : "?";
    a->usage = usage;
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->positional = false;
}

int nasc_cli_usage_error(const nasc_cli_args *a, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "nasc %s: ", a->verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (a->usage) a->usage(stderr);
    fprintf(stderr, "Try 'nasc help %s' for more.\n", a->verb);
    return NASC_EXIT_USAGE;
}

bool nasc_cli_is_help(const char *arg) {
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* "--name value" or "--name=value" (long options), "-o value" (short). */
int nasc_cli_value_opt(nasc_cli_args *a, const char *name, const char *short_name,
                       const char **value) {
    if (a->positional || a->i >= a->argc) return 0;
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    bool exact = strcmp(arg, name) == 0 || (short_name && strcmp(arg, short_name) == 0);
    if (!exact && strncmp(arg, name, n) == 0 && arg[n] == '=') {
        *value = arg + n + 1;
        a->i++;
        return 1;
    }
    if (!exact) return 0;
    if (a->i + 1 >= a->argc) {
        nasc_cli_usage_error(a, "option '%s' needs a value", arg);
        return -1;
    }
    *value = a->argv[a->i + 1];
    a->i += 2;
    return 1;
}

int nasc_cli_flag(nasc_cli_args *a, const char *name) {
    if (a->positional || a->i >= a->argc) return 0;
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
        nasc_cli_usage_error(a, "option '%s' takes no value", name);
        return -1;
    }
    if (strcmp(arg, name) != 0) return 0;
    a->i++;
    return 1;
}

int nasc_cli_model_opt(nasc_cli_args *a, nasc_cli_model *mo) {
    const char *kv = NULL;
    int r = nasc_cli_value_opt(a, "--set", NULL, &kv);
    if (r <= 0) return r;
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        nasc_cli_usage_error(a, "--set needs key=value, got '%s'", kv);
        return -1;
    }
    if (mo->n_ov == NASC_CLI_MAX_SET) {
        nasc_cli_usage_error(a, "too many --set options (at most %d)", NASC_CLI_MAX_SET);
        return -1;
    }
    /* Split in place: the key ends where '=' was. argv strings are ours to modify. */
    char *mut = (char *)eq;
    *mut = 0;
    mo->ov[mo->n_ov].key = kv;
    mo->ov[mo->n_ov].value = eq + 1;
    mo->n_ov++;
    return 1;
}

const char *nasc_cli_positional(nasc_cli_args *a) {
    if (a->i >= a->argc) return NULL;
    const char *arg = a->argv[a->i];
    if (!a->positional && strcmp(arg, "--") == 0) {
        a->positional = true;
        a->i++;
        if (a->i >= a->argc) return NULL;
        arg = a->argv[a->i];
    }
    if (!a->positional && arg[0] == '-' && arg[1] != 0) return NULL;
    a->i++;
    return arg;
}

/* One row against the argument under the cursor; like the matchers. */
static int match_opt(nasc_cli_args *a, const nasc_cli_opt *o, const char **raw) {
    if (o->kind == NASC_CLI_FLAG) {
        int r = nasc_cli_flag(a, o->name);
        if (r > 0) *(bool *)o->out = true;
        return r;
    }
    const char *v = NULL;
    int r = nasc_cli_value_opt(a, o->name, o->short_name, &v);
    if (r <= 0) return r;
    if (o->kind != NASC_CLI_LIST) {
        *raw = v; /* the last one wins */
        return 1;
    }
    if (*o->count >= o->cap) {
        nasc_cli_usage_error(a, "at most %d %s %s", o->cap, o->name, o->file ? "files" : "values");
        return -1;
    }
    ((const char **)o->out)[(*o->count)++] = v;
    return 1;
}

/* After the scan: the row's checks and its value into *out. */
static int finish_opt(nasc_cli_args *a, const nasc_cli_opt *o, const char *raw) {
    if (o->kind == NASC_CLI_LIST) {
        if (*o->count == 0 && o->missing) return nasc_cli_usage_error(a, "%s", o->missing);
        for (int i = 0; o->file && i < *o->count; i++)
            if (!*((const char **)o->out)[i]) return nasc_cli_usage_error(a, "%s wants a file name", o->name);
        return 0;
    }
    if (o->kind == NASC_CLI_FLAG) return 0;
    if (!raw) return o->missing ? nasc_cli_usage_error(a, "%s", o->missing) : 0;
    char want[96];
    switch (o->kind) {
    case NASC_CLI_STR:
        if (o->file && !*raw) return nasc_cli_usage_error(a, "%s wants a file name", o->name);
        *(const char **)o->out = raw;
        return 0;
    case NASC_CLI_INT:
        if (nasc_cli_parse_int(raw, (long)o->lo, (long)o->hi, (long *)o->out)) return 0;
        snprintf(want, sizeof want, "an integer in [%ld, %ld]", (long)o->lo, (long)o->hi);
        break;
    default:
        if (nasc_cli_parse_float(raw, o->lo, o->hi, (double *)o->out)) return 0;
        snprintf(want, sizeof want, "a number in [%g, %g]", o->lo, o->hi);
        break;
    }
    return nasc_cli_usage_error(a, "%s wants %s, got '%s'", o->name, o->want ? o->want : want, raw);
}

int nasc_cli_parse(nasc_cli_args *a, const nasc_cli_opt *opts, size_t n, nasc_cli_model *mo,
                   nasc_cli_model_arg model, void (*help)(FILE *out)) {
    const char *raw[NASC_CLI_MAX_OPTS] = {0};
    if (n > NASC_CLI_MAX_OPTS) n = NASC_CLI_MAX_OPTS;
    while (a->i < a->argc) {
        if (!a->positional && nasc_cli_is_help(a->argv[a->i])) {
            help(stdout);
            return NASC_EXIT_OK;
        }
        int r = mo ? nasc_cli_model_opt(a, mo) : 0;
        for (size_t k = 0; r == 0 && k < n; k++) r = match_opt(a, &opts[k], &raw[k]);
        if (r < 0) return NASC_EXIT_USAGE;
        if (r > 0) continue;
        const char *pos = nasc_cli_positional(a);
        if (pos && (model == NASC_CLI_NO_MODEL || !mo))
            return nasc_cli_usage_error(a, "unexpected argument '%s'", pos);
        if (pos && mo->path)
            return nasc_cli_usage_error(a, "one model at a time (got '%s' and '%s')", mo->path, pos);
        if (pos) {
            mo->path = pos;
            continue;
        }
        if (a->i >= a->argc) break;
        return nasc_cli_usage_error(a, "unknown option '%s'", a->argv[a->i]);
    }
    if (model == NASC_CLI_ONE_MODEL && !mo->path) return nasc_cli_usage_error(a, "missing MODEL");
    for (size_t k = 0; k < n; k++)
        if (finish_opt(a, &opts[k], raw[k])) return NASC_EXIT_USAGE;
    return NASC_CLI_GO;
}

bool nasc_cli_parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool nasc_cli_parse_float(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

int nasc_cli_fail(const nasc_ctx *ctx) {
    if (ctx->diag.status == NASC_OK) {
        fprintf(stderr, "nasc: error: unknown failure\n");
    } else {
        nasc_diag_print(&ctx->diag, stderr);
    }
    return NASC_EXIT_INPUT;
}

/* The parameters of recurrent net m with hidden size h (sk: its skeleton). */
static nasc_status rnn_params(nasc_module *m, nasc_skeleton *sk, int h, int64_t *n) {
    sk->channels = h;
    nasc_net_set_skeleton(m, sk);
    nasc_rnn_cost c;
    nasc_status st = nasc_rnn_cost_compute(m, &c);
    *n = c.embed_params + c.cell_params + c.decoder_params;
    return st;
}

/* --set params=N: the hidden size that brings a recurrent net's parameter
 * count closest to N (the count grows with it). */
static nasc_status size_to_params(nasc_ctx *ctx, nasc_module *m, const char *value) {
    long want;
    if (!nasc_cli_parse_int(value, 1, 1L << 40, &want))
        return nasc_error(ctx, NASC_EINPUT, m->source, NASC_NOLOC, "--set params needs a positive integer, got '%s'",
                          value);
    if (!m->has_skeleton || m->skel.kind != NASC_NET_RECURRENT)
        return nasc_error(ctx, NASC_EINPUT, m->source, NASC_NOLOC,
                          "--set params=N sizes a recurrent net by its hidden size; this model is not one "
                          "(use --set channels=C)");
    nasc_skeleton sk = m->skel;
    int lo = 1, hi = 65536;
    int64_t at_lo = 0, below = 0;
    while (lo < hi) { /* the smallest hidden size with at least N parameters */
        int mid = lo + (hi - lo) / 2;
        int64_t n;
        nasc_status st = rnn_params(m, &sk, mid, &n);
        if (st) return st;
        if (n >= want)
            hi = mid;
        else
            lo = mid + 1;
    }
    nasc_status st = rnn_params(m, &sk, lo, &at_lo);
    if (!st && lo > 1) st = rnn_params(m, &sk, lo - 1, &below);
    if (st) return st;
    sk.channels = lo > 1 && llabs(below - want) < llabs(at_lo - want) ? lo - 1 : lo; /* the closer one */
    nasc_net_set_skeleton(m, &sk);
    return NASC_OK;
}

int nasc_cli_load(nasc_ctx *ctx, const nasc_cli_model *mo, nasc_module **out) {
    *out = NULL;
    nasc_override ov[NASC_CLI_MAX_SET];
    size_t n_ov = 0;
    const char *params = NULL;
    for (size_t i = 0; i < mo->n_ov; i++) {
        if (strcmp(mo->ov[i].key, "params") == 0)
            params = mo->ov[i].value;
        else if (strcmp(mo->ov[i].key, "steps") != 0) /* a lowering option (nasc_cli_load_prim) */
            ov[n_ov++] = mo->ov[i];
    }
    if (nasc_model_load(ctx, mo->path, ov, n_ov, out) != NASC_OK || !*out ||
        (params && size_to_params(ctx, *out, params) != NASC_OK)) {
        if (*out) {
            nasc_module_destroy(*out);
            *out = NULL;
        }
        return nasc_cli_fail(ctx);
    }
    return NASC_EXIT_OK;
}

void nasc_cli_model_help(FILE *out) {
    fputs("\nModel options:\n"
          "  MODEL               a YAML model (.yaml, .yml), a text IR file (.nir) or an\n"
          "                      ONNX model (.onnx, with its weights)\n"
          "  --set KEY=VALUE     override a skeleton value (repeatable): input (CxHxW,\n"
          "                      or N for recurrent nets), classes, channels,\n"
          "                      cells_per_stage, stages, stem_multiplier; params=N\n"
          "                      sizes a recurrent net's hidden size to about N\n"
          "                      parameters (models of equal size); steps=T unrolls a\n"
          "                      recurrent net over T characters (default 35; 1 is\n"
          "                      one step: tokens and state in, logits and state out)\n",
          out);
}

void nasc_cli_help_row(FILE *out, const char *left, int col, const char *text) {
    enum { WIDTH = 79 };
    int used = fprintf(out, "  %s", left);
    if (used < 0) return;
    if (used >= col - 1) {
        fputc('\n', out);
        used = 0;
    }
    const char *p = text;
    while (*p) {
        fprintf(out, "%*s", col - used, "");
        /* as many words as fit in WIDTH - col columns (at least one),
         * keeping a parenthesis on one line where it can be */
        size_t room = (size_t)(WIDTH - col), n = strlen(p), take = n;
        if (n > room) {
            size_t any = 0, outside = 0;
            int depth = 0;
            for (size_t k = 0; k <= room && p[k]; k++) {
                depth += (p[k] == '(') - (p[k] == ')');
                if (p[k] == ' ') {
                    any = k;
                    if (depth == 0) outside = k;
                }
            }
            take = outside ? outside : any ? any : strcspn(p, " ");
        }
        fprintf(out, "%.*s\n", (int)take, p);
        p += take;
        while (*p == ' ') p++;
        used = 0;
    }
    if (!*text) fputc('\n', out);
}

volatile sig_atomic_t nasc_cli_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    nasc_cli_interrupted = 1;
}

void nasc_cli_sigint_catch(struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    nasc_cli_interrupted = 0;
    sigaction(SIGINT, &sa, old);
}

void nasc_cli_sigint_restore(const struct sigaction *old) { sigaction(SIGINT, old, NULL); }

double nasc_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nasc_cli_fmt_duration(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0) || seconds > 1e8) seconds = 0;
    long t = (long)(seconds + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void nasc_cli_fmt_int(int64_t v, char *buf, size_t size) {
    char digits[32];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int n = snprintf(digits, sizeof digits, "%" PRIu64, u);
    char tmp[48];
    size_t k = 0;
    if (v < 0) tmp[k++] = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) tmp[k++] = ',';
        tmp[k++] = digits[i];
    }
    tmp[k] = 0;
    snprintf(buf, size, "%s", tmp);
}

void nasc_cli_fmt_si(int64_t v, char *buf, size_t size) {
    static const char suffix[] = "KMGTP";
    double x = (double)v;
    double ax = x < 0 ? -x : x;
    if (ax < 1000.0) {
        snprintf(buf, size, "%" PRId64, v);
        return;
    }
    int s = -1;
    while (ax >= 999.5 && s < 4) {
        x /= 1000.0;
        ax /= 1000.0;
        s++;
    }
    if (ax >= 99.95)
        snprintf(buf, size, "%.0f%c", x, suffix[s]);
    else if (ax >= 9.995)
        snprintf(buf, size, "%.1f%c", x, suffix[s]);
    else
        snprintf(buf, size, "%.2f%c", x, suffix[s]);
}

void nasc_cli_json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}
