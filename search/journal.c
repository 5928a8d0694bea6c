/* journal.c - the append-only trial journal of a search run.
 *
 * One JSON object per line, in a fixed key order, each ending with a
 * checksum of the line's text before it. Line 1 says which search the
 * journal belongs to; every further line is one trial:
 *
 *   {"journal":"nasc search 1","space":"nasrl","option":"layers=2",
 *    "strategy":"evolution","decisions":"c4 c4 c4 c6 s0 c4 c4 c4 c6 s1",
 *    "check":"2c0d..."}
 *   {"trial":0,"hash":"5d0c...","status":"ok","reward":0.8125,"val_loss":0.52,
 *    "seconds":4.1,"params":20154,"macs":1834112,"decisions":[1,0,3],
 *    "reason":"","check":"9f86d081884c7d65"}
 *
 * "decisions" in the header is the space's decision list, one token per
 * decision: c<k> a choice of k options, s<k> a skip mask over k earlier
 * layers. A record of a distributed search may end (before "check") with
 * "proposal":N, the strategy's proposal number when it differs from the
 * trial number, and "rank":R, the MPI rank that evaluated it.
 * "check" is the 64-bit FNV-1a hash of everything before
 * `,"check"`. A record is appended with one write() and an fsync(), so a
 * crash leaves at most the last line torn; opening drops such a line (with a
 * warning) and the trial is run again. Opening never changes the file: the
 * torn bytes are cut off by the next append, so a journal that turns out to
 * belong to another search is left as it was. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nasc_search.h"
#include "space_internal.h"

static uint64_t fnv64(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void put_json_str(nasc_buf *b, const char *s) {
    nasc_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            nasc_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            nasc_buf_printf(b, "\\u%04x", c);
        else
            nasc_buf_append(b, (const char *)&c, 1);
    }
    nasc_buf_append(b, "\"", 1);
}

static void put_num(nasc_buf *b, double v) {
    if (isfinite(v))
        nasc_buf_printf(b, "%.17g", v);
    else
        nasc_buf_append(b, "null", 4);
}

/* ------------------------------------------------------------------ */
/* A small reader for exactly the records this file writes.            */
/* ------------------------------------------------------------------ */

typedef struct rd {
    const char *p, *end;
    const char *err;
} rd;

static void skip_ws(rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t')) r->p++;
}

static bool expect(rd *r, char c) {
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static bool read_key(rd *r, const char *key) {
    skip_ws(r);
    size_t n = strlen(key);
    if ((size_t)(r->end - r->p) < n + 3 || r->p[0] != '"' || memcmp(r->p + 1, key, n) != 0 || r->p[n + 1] != '"') {
        r->err = key;
        return false;
    }
    r->p += n + 2;
    if (!expect(r, ':')) {
        r->err = key;
        return false;
    }
    return true;
}

static bool read_num(rd *r, const char *key, double *v) {
    if (!read_key(r, key)) return false;
    skip_ws(r);
    if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
        r->p += 4;
        *v = NAN;
        return true;
    }
    char tmp[64];
    size_t n = 0;
    while (r->p + n < r->end && n < sizeof tmp - 1 && strchr("0123456789+-.eE", r->p[n])) n++;
    if (n == 0 || n == sizeof tmp - 1) {
        r->err = key;
        return false;
    }
    memcpy(tmp, r->p, n);
    tmp[n] = 0;
    char *e;
    errno = 0;
    *v = strtod(tmp, &e);
    if (*e || errno) {
        r->err = key;
        return false;
    }
    r->p += n;
    return true;
}

static bool read_int(rd *r, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    double d;
    if (!read_num(r, key, &d)) return false;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        r->err = key;
        return false;
    }
    *v = (int64_t)d;
    return true;
}

/* A string into buf (NUL-terminated, at most size-1 bytes). */
static bool read_str(rd *r, const char *key, char *buf, size_t size) {
    if (!read_key(r, key) || !expect(r, '"')) {
        r->err = key;
        return false;
    }
    size_t n = 0;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            if (r->p >= r->end) break;
            c = *r->p++;
            if (c == 'u') {
                if (r->end - r->p < 4) break;
                char hex[5] = {r->p[0], r->p[1], r->p[2], r->p[3], 0};
                char *e;
                long v = strtol(hex, &e, 16);
                if (*e || v < 0 || v > 0x7f) break;
                c = (char)v;
                r->p += 4;
            } else if (c != '"' && c != '\\') {
                break;
            }
        }
        if (n + 1 >= size) {
            r->err = key;
            return false;
        }
        buf[n++] = c;
    }
    if (r->p >= r->end || *r->p != '"') {
        r->err = key;
        return false;
    }
    r->p++;
    buf[n] = 0;
    return true;
}

#define JOURNAL_MAGIC "nasc search 1"

/* The checksum at the end of a line: NULL and *body (the length of the
 * text it covers) when it matches, else why not. */
static const char *split_check(const char *line, size_t len, size_t *body) {
    const char *ck = NULL;
    for (size_t i = len; i-- > 0;) {
        if (len - i >= 9 && memcmp(line + i, ",\"check\":", 9) == 0) {
            ck = line + i;
            break;
        }
    }
    if (!ck) return "no checksum";
    rd c = {ck + 1, line + len, NULL};
    char want[24];
    if (!read_str(&c, "check", want, sizeof want) || !expect(&c, '}')) return "malformed checksum";
    skip_ws(&c);
    if (c.p != c.end) return "text after the record";
    char got[24];
    snprintf(got, sizeof got, "%016" PRIx64, fnv64(line, (size_t)(ck - line)));
    if (strcmp(got, want) != 0) return "checksum mismatch";
    *body = (size_t)(ck - line);
    return NULL;
}

/* What the header line names. decisions points into memory the caller
 * owns (the line being read, or the buffer being written). */
typedef struct header {
    char magic[32];
    char space[64];
    char option[64];
    char strategy[64];
    const char *decisions;
} header;

/* The header of a search over sp with this strategy; the decision list is
 * written into dec. */
static void header_of(const nasc_space *sp, const char *strategy, nasc_buf *dec, header *h) {
    memset(h, 0, sizeof *h);
    snprintf(h->magic, sizeof h->magic, "%s", JOURNAL_MAGIC);
    snprintf(h->space, sizeof h->space, "%s", nasc_space_name(sp));
    int size = 0;
    const char *opt = nasc_space_option(sp, &size);
    snprintf(h->option, sizeof h->option, "%s=%d", opt, size);
    snprintf(h->strategy, sizeof h->strategy, "%s", strategy);
    const nasc_decision *d = nasc_space_decisions(sp);
    for (uint32_t i = 0; i < nasc_space_count(sp); i++)
        nasc_buf_printf(dec, "%s%c%d", i ? " " : "", d[i].kind == NASC_DEC_SKIP ? 's' : 'c', d[i].card);
    h->decisions = dec->data ? dec->data : "";
}

static void put_header(nasc_buf *b, const header *h) {
    size_t start = b->len;
    nasc_buf_append(b, "{\"journal\":", 11);
    put_json_str(b, h->magic);
    nasc_buf_append(b, ",\"space\":", 9);
    put_json_str(b, h->space);
    nasc_buf_append(b, ",\"option\":", 10);
    put_json_str(b, h->option);
    nasc_buf_append(b, ",\"strategy\":", 12);
    put_json_str(b, h->strategy);
    nasc_buf_append(b, ",\"decisions\":", 13);
    put_json_str(b, h->decisions);
    if (!b->oom) nasc_buf_printf(b, ",\"check\":\"%016" PRIx64 "\"}\n", fnv64(b->data + start, b->len - start));
}

/* Parse line 1; NULL or why it is not a header. dec (len + 1 bytes)
 * receives the decision list. */
static const char *parse_header(const char *line, size_t len, header *h, char *dec) {
    size_t body;
    const char *why = split_check(line, len, &body);
    if (why) return why;
    rd r = {line, line + body, NULL};
    memset(h, 0, sizeof *h);
    if (!expect(&r, '{') || !read_str(&r, "journal", h->magic, sizeof h->magic))
        return "not a journal header (a journal of an older nasc, or not a journal)";
    if (strcmp(h->magic, JOURNAL_MAGIC) != 0) return "a journal of another nasc version";
    if (!expect(&r, ',') || !read_str(&r, "space", h->space, sizeof h->space)) return "header field space";
    if (!expect(&r, ',') || !read_str(&r, "option", h->option, sizeof h->option)) return "header field option";
    if (!expect(&r, ',') || !read_str(&r, "strategy", h->strategy, sizeof h->strategy))
        return "header field strategy";
    if (!expect(&r, ',') || !read_str(&r, "decisions", dec, len + 1)) return "header field decisions";
    h->decisions = dec;
    skip_ws(&r);
    if (r.p != r.end) return "unexpected header field";
    return NULL;
}

/* "4 options" or "a skip mask over 3 earlier layers" for a token c4 / s3. */
static void describe_token(const char *tok, size_t n, char *buf, size_t size) {
    int k = n > 1 ? atoi(tok + 1) : -1;
    if (n > 1 && tok[0] == 'c')
        snprintf(buf, size, "%d option%s", k, k == 1 ? "" : "s");
    else if (n > 1 && tok[0] == 's')
        snprintf(buf, size, "a skip mask over %d earlier layer%s", k, k == 1 ? "" : "s");
    else
        snprintf(buf, size, "'%.*s'", (int)(n < 32 ? n : 32), tok);
}

/* NASC_EINPUT at line 1 naming the first way the journal's header differs
 * from this search's. */
static nasc_status header_mismatch(nasc_ctx *ctx, const char *path, const nasc_space *sp, const header *got,
                                   const header *want) {
    nasc_loc at = {1, 1};
    const char *pre = "this journal belongs to another search";
    if (strcmp(got->space, want->space) != 0)
        return nasc_error(ctx, NASC_EINPUT, path, at, "%s: its space is '%s' (%s), this search's '%s' (%s)", pre,
                          got->space, got->option, want->space, want->option);
    if (strcmp(got->option, want->option) != 0)
        return nasc_error(ctx, NASC_EINPUT, path, at, "%s: its %s space has %s, this search's %s", pre, got->space,
                          got->option, want->option);
    if (strcmp(got->strategy, want->strategy) != 0)
        return nasc_error(ctx, NASC_EINPUT, path, at, "%s: its strategy is '%s', this search's '%s'", pre,
                          got->strategy, want->strategy);
    /* the same space by name and size, but another decision list: the space changed */
    const nasc_decision *d = nasc_space_decisions(sp);
    const char *a = got->decisions, *b = want->decisions;
    uint32_t i = 0, n_got = 0;
    for (const char *p = a; *p; p++) n_got += (p == a || p[-1] == ' ') && *p != ' ';
    if (n_got != nasc_space_count(sp))
        return nasc_error(ctx, NASC_EINPUT, path, at,
                          "%s: its %s space has %u decisions, this search's %u (the space changed since the "
                          "journal was written)",
                          pre, got->space, n_got, nasc_space_count(sp));
    for (;; i++) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (la == 0 || lb == 0) break;
        if (la != lb || memcmp(a, b, la) != 0) {
            char da[64], db[64];
            describe_token(a, la, da, sizeof da);
            describe_token(b, lb, db, sizeof db);
            return nasc_error(ctx, NASC_EINPUT, path, at,
                              "%s: decision %u '%s' has %s in the journal but %s in this %s space (the space "
                              "changed since the journal was written)",
                              pre, i, i < nasc_space_count(sp) ? d[i].name : "?", da, db, want->space);
        }
        a += la + (a[la] == ' ');
        b += lb + (b[lb] == ' ');
    }
    return nasc_error(ctx, NASC_EINPUT, path, at, "%s: its decision list '%.80s' is not written as nasc writes it",
                      pre, got->decisions);
}

/* Parse one line (without its newline) into t; d gets n_dec values. */
static const char *parse_record(const char *line, size_t len, uint32_t n_dec, nasc_trial *t, uint32_t *d) {
    size_t body;
    const char *why = split_check(line, len, &body);
    if (why) return why;
    rd r = {line, line + body, NULL};
    double v;
    char hash[24];
    int64_t iv;
    memset(t, 0, sizeof *t);
    if (!expect(&r, '{')) return "not a JSON object";
    if (!read_int(&r, "trial", 0, INT64_C(1) << 40, &t->index) || !expect(&r, ',')) return "field trial";
    if (!read_str(&r, "hash", hash, sizeof hash) || !expect(&r, ',')) return "field hash";
    char *e;
    errno = 0;
    t->hash = strtoull(hash, &e, 16);
    if (*e || errno || strlen(hash) != 16) return "field hash";
    if (!read_str(&r, "status", t->status, sizeof t->status) || !expect(&r, ',')) return "field status";
    if (strcmp(t->status, "ok") && strcmp(t->status, "failed") && strcmp(t->status, "cached")) return "field status";
    if (!read_num(&r, "reward", &t->reward) || !expect(&r, ',')) return "field reward";
    if (!read_num(&r, "val_loss", &t->val_loss) || !expect(&r, ',')) return "field val_loss";
    if (!read_num(&r, "seconds", &v) || !expect(&r, ',')) return "field seconds";
    t->seconds = v;
    if (!read_int(&r, "params", -1, INT64_C(1) << 50, &t->params) || !expect(&r, ',')) return "field params";
    if (!read_int(&r, "macs", -1, INT64_C(1) << 60, &t->macs) || !expect(&r, ',')) return "field macs";
    if (!read_key(&r, "decisions") || !expect(&r, '[')) return "field decisions";
    for (uint32_t i = 0; i < n_dec; i++) {
        if (i && !expect(&r, ',')) return "field decisions (fewer values than the space has decisions)";
        skip_ws(&r);
        r.err = NULL;
        /* numbers only: reuse read_num's scanner without a key */
        size_t n = 0;
        while (r.p + n < r.end && n < 12 && r.p[n] >= '0' && r.p[n] <= '9') n++;
        if (n == 0 || n >= 12) return "field decisions";
        char tmp[16];
        memcpy(tmp, r.p, n);
        tmp[n] = 0;
        iv = strtoll(tmp, NULL, 10);
        if (iv > UINT32_MAX) return "field decisions";
        d[i] = (uint32_t)iv;
        r.p += n;
    }
    if (!expect(&r, ']')) return "field decisions (more values than the space has decisions)";
    if (!expect(&r, ',') || !read_str(&r, "reason", t->reason, sizeof t->reason)) return "field reason";
    t->proposal = t->index;
    skip_ws(&r);
    if (r.p < r.end && *r.p == ',' && r.end - r.p > 12 && memcmp(r.p + 1, "\"proposal\"", 10) == 0) {
        r.p++;
        if (!read_int(&r, "proposal", 0, INT64_C(1) << 40, &t->proposal)) return "field proposal";
    }
    skip_ws(&r);
    if (r.p < r.end && *r.p == ',') {
        r.p++;
        if (!read_int(&r, "rank", 1, INT32_MAX, &iv)) return "field rank";
        t->rank = (int)iv;
    }
    skip_ws(&r);
    if (r.p != r.end) return "unexpected field";
    if (strcmp(t->status, "failed") != 0 && !isfinite(t->reward)) return "field reward (null in a successful trial)";
    return NULL;
}

/* ------------------------------------------------------------------ */

static nasc_status grow(nasc_journal *j) {
    if (j->n < j->cap) return NASC_OK;
    int64_t cap = j->cap ? j->cap * 2 : 64;
    nasc_trial *t = nasc_realloc(j->ctx, j->trials, (size_t)cap * sizeof *t);
    if (!t) return NASC_ENOMEM;
    j->trials = t;
    j->cap = cap;
    return NASC_OK;
}

static nasc_status push(nasc_journal *j, const nasc_trial *t, const uint32_t *d) {
    if (grow(j)) return NASC_ENOMEM;
    uint32_t *copy = nasc_alloc(j->ctx, (size_t)(j->n_decisions ? j->n_decisions : 1) * sizeof *copy);
    if (!copy) return NASC_ENOMEM;
    memcpy(copy, d, (size_t)j->n_decisions * sizeof *copy);
    j->trials[j->n] = *t;
    j->trials[j->n].d = copy;
    j->n++;
    return NASC_OK;
}

void nasc_journal_close(nasc_journal *j) {
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    for (int64_t i = 0; i < j->n; i++) nasc_free(j->ctx, j->trials[i].d);
    nasc_free(j->ctx, j->trials);
    nasc_free(j->ctx, j->header);
    nasc_free(j->ctx, j->path);
    nasc_free(j->ctx, j);
}

/* Line 1 of text (len bytes, len > 0): NASC_OK with *keep past it when it is
 * this search's header, or 0 and a warning when it is a torn last line. */
static nasc_status read_header(nasc_journal *j, const nasc_space *sp, const char *text, size_t len, size_t *keep,
                               char *warning, size_t warning_size) {
    const char *nl = memchr(text, '\n', len);
    size_t ll = nl ? (size_t)(nl - text) : len, body;
    const char *why = split_check(text, ll, &body);
    if (!nl || why) {
        if (!nl || ll + 1 == len) {
            /* a crash while the first record (and the header with it) was written */
            snprintf(warning, warning_size, "%s:1: dropped a torn header (%s); the journal starts again", j->path,
                     why ? why : "no newline at the end");
            *keep = 0;
            return NASC_OK;
        }
        return nasc_error(j->ctx, NASC_EINPUT, j->path, (nasc_loc){1, 1}, "corrupt journal header: %s", why);
    }
    char *dec = nasc_alloc(j->ctx, ll + 1);
    if (!dec) return NASC_ENOMEM;
    header got, want;
    nasc_status st = NASC_OK;
    why = parse_header(text, ll, &got, dec);
    if (why) {
        st = nasc_error(j->ctx, NASC_EINPUT, j->path, (nasc_loc){1, 1}, "corrupt journal header: %s", why);
    } else {
        /* this search's header, parsed back from the line it would write */
        char *dec2 = nasc_alloc(j->ctx, j->header_len + 1);
        if (!dec2) {
            st = NASC_ENOMEM;
        } else {
            if (parse_header(j->header, j->header_len - 1, &want, dec2) != NULL)
                st = nasc_error(j->ctx, NASC_EINTERNAL, j->path, NASC_NOLOC, "cannot read back the journal header");
            else if (strcmp(got.space, want.space) || strcmp(got.option, want.option) ||
                     strcmp(got.strategy, want.strategy) || strcmp(got.decisions, want.decisions))
                st = header_mismatch(j->ctx, j->path, sp, &got, &want);
            nasc_free(j->ctx, dec2);
        }
    }
    nasc_free(j->ctx, dec);
    *keep = ll + 1;
    return st;
}

nasc_status nasc_journal_open(nasc_ctx *ctx, const char *path, const nasc_space *sp, const char *strategy,
                              nasc_journal **out, char *warning, size_t warning_size) {
    *out = NULL;
    if (warning_size) warning[0] = 0;
    uint32_t n_decisions = nasc_space_count(sp);
    nasc_journal *j = nasc_alloc(ctx, sizeof *j);
    if (!j) return NASC_ENOMEM;
    memset(j, 0, sizeof *j);
    j->ctx = ctx;
    j->fd = -1;
    j->n_decisions = n_decisions;
    j->recurrent = nasc_space_recurrent(sp);
    j->path = nasc_strdup(ctx, path);
    if (!j->path) {
        nasc_journal_close(j);
        return NASC_ENOMEM;
    }
    {
        nasc_buf dec, hb;
        nasc_buf_init(&dec, ctx);
        nasc_buf_init(&hb, ctx);
        header want;
        header_of(sp, strategy, &dec, &want);
        if (!dec.oom) put_header(&hb, &want);
        bool oom = dec.oom || hb.oom;
        nasc_buf_free(&dec);
        if (oom) {
            nasc_buf_free(&hb);
            nasc_journal_close(j);
            return NASC_ENOMEM;
        }
        j->header = hb.data; /* the buffer's block, freed with the journal */
        j->header_len = hb.len;
    }
    j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        nasc_journal_close(j);
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot open the journal: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(j->fd, &st) != 0) {
        nasc_journal_close(j);
        return nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot stat the journal: %s", strerror(errno));
    }
    size_t len = (size_t)st.st_size;
    char *text = nasc_alloc(ctx, len + 1);
    uint32_t *d = nasc_alloc(ctx, (size_t)(n_decisions ? n_decisions : 1) * sizeof *d);
    if (!text || !d) {
        nasc_free(ctx, text);
        nasc_free(ctx, d);
        nasc_journal_close(j);
        return NASC_ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t k = pread(j->fd, text + got, len - got, (off_t)got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    nasc_status status = NASC_OK;
    if (got != len) status = nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot read the journal");
    size_t pos = 0, keep = 0;
    if (!status && len > 0) status = read_header(j, sp, text, len, &pos, warning, warning_size);
    keep = pos;
    int line = 1;
    while (!status && pos > 0 && pos < len) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        nasc_trial t;
        const char *why = parse_record(text + pos, ll, n_decisions, &t, d);
        bool last = !nl || (size_t)(nl - text) + 1 == len;
        if (!why && !nl) why = "no newline at the end";
        if (!why && t.index != j->n) why = "trial numbers out of order";
        if (why) {
            if (last && strcmp(why, "trial numbers out of order") != 0) {
                /* a torn final record: drop it, the trial runs again */
                snprintf(warning, warning_size,
                         "%s:%d: dropped a torn last record (%s); that trial runs again", path, line, why);
                break;
            }
            status = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){line, 1}, "corrupt journal record: %s", why);
            break;
        }
        if (nasc_space_check(sp, d) != NASC_OK) {
            char msg[600]; /* the check reports on the space's context */
            snprintf(msg, sizeof msg, "%s", sp->ctx->diag.msg);
            status = nasc_error(ctx, NASC_EINPUT, path, (nasc_loc){line, 1},
                                "trial %lld does not fit this search's space: %s", (long long)t.index, msg);
            break;
        }
        status = push(j, &t, d);
        pos += ll + 1;
        keep = pos;
    }
    nasc_free(ctx, text);
    nasc_free(ctx, d);
    if (status) {
        nasc_journal_close(j);
        return status;
    }
    /* torn bytes stay until the next append cuts them off */
    j->size = (int64_t)keep;
    j->torn = keep != len;
    *out = j;
    return NASC_OK;
}

nasc_status nasc_journal_append(nasc_journal *j, const nasc_trial *t) {
    nasc_buf b;
    nasc_buf_init(&b, j->ctx);
    /* the first record of a journal goes out with its header, in one write */
    if (j->size == 0) nasc_buf_append(&b, j->header, j->header_len);
    size_t start = b.len;
    nasc_buf_printf(&b, "{\"trial\":%" PRId64 ",\"hash\":\"%016" PRIx64 "\",\"status\":", t->index, t->hash);
    put_json_str(&b, t->status);
    nasc_buf_append(&b, ",\"reward\":", 10);
    put_num(&b, t->reward);
    nasc_buf_append(&b, ",\"val_loss\":", 12);
    put_num(&b, t->val_loss);
    nasc_buf_append(&b, ",\"seconds\":", 11);
    put_num(&b, t->seconds);
    nasc_buf_printf(&b, ",\"params\":%" PRId64 ",\"macs\":%" PRId64 ",\"decisions\":[", t->params, t->macs);
    for (uint32_t i = 0; i < j->n_decisions; i++) nasc_buf_printf(&b, "%s%u", i ? "," : "", t->d[i]);
    nasc_buf_append(&b, "],\"reason\":", 11);
    put_json_str(&b, t->reason);
    if (t->proposal != t->index) nasc_buf_printf(&b, ",\"proposal\":%" PRId64, t->proposal);
    if (t->rank > 0) nasc_buf_printf(&b, ",\"rank\":%d", t->rank);
    if (b.oom) {
        nasc_buf_free(&b);
        return NASC_ENOMEM;
    }
    nasc_buf_printf(&b, ",\"check\":\"%016" PRIx64 "\"}\n", fnv64(b.data + start, b.len - start));
    if (b.oom) {
        nasc_buf_free(&b);
        return NASC_ENOMEM;
    }
    nasc_status st = NASC_OK;
    if (j->torn && ftruncate(j->fd, (off_t)j->size) != 0)
        st = nasc_error(j->ctx, NASC_EINPUT, j->path, NASC_NOLOC, "cannot cut the torn record off: %s",
                        strerror(errno));
    size_t done = 0;
    while (!st && done < b.len) {
        ssize_t k = pwrite(j->fd, b.data + done, b.len - done, (off_t)j->size + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        done += (size_t)k;
    }
    if (!st && (done != b.len || fsync(j->fd) != 0))
        st = nasc_error(j->ctx, NASC_EINPUT, j->path, NASC_NOLOC, "cannot append to the journal: %s", strerror(errno));
    if (!st) {
        j->size += (int64_t)b.len;
        j->torn = false;
    } else {
        j->torn = true; /* part of the record may be there: the next append cuts it off */
    }
    nasc_buf_free(&b);
    if (!st) st = push(j, t, t->d);
    return st;
}

int64_t nasc_journal_best(const nasc_journal *j) {
    int64_t best = -1;
    for (int64_t i = 0; i < j->n; i++) {
        const nasc_trial *t = &j->trials[i];
        if (strcmp(t->status, "failed") == 0 || !isfinite(t->reward)) continue;
        /* ties: the earliest proposal, so that a distributed search, which
         * journals results as they arrive, picks what one process would */
        if (best < 0 || t->reward > j->trials[best].reward ||
            (t->reward == j->trials[best].reward && t->proposal < j->trials[best].proposal))
            best = i;
    }
    return best;
}
