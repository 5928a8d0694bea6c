/* journal.c - the append-only trial journal of a search run.
 *
 * One JSON object per line, in a fixed key order, ending with a checksum
 * of the line's text before it:
 *
 *   {"trial":0,"hash":"5d0c...","status":"ok","reward":0.8125,"val_loss":0.52,
 *    "seconds":4.1,"params":20154,"macs":1834112,"decisions":[1,0,3],
 *    "reason":"","check":"9f86d081884c7d65"}
 *
 * "check" is the 64-bit FNV-1a hash of everything before `,"check"`. A
 * record is appended with one write() and an fsync(), so a crash leaves at
 * most the last line torn; opening cuts such a line off (with a warning)
 * and the trial is run again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nasc_search.h"

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

/* Parse one line (without its newline) into t; d gets n_dec values. */
static const char *parse_record(const char *line, size_t len, uint32_t n_dec, nasc_trial *t, uint32_t *d) {
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

    rd r = {line, ck, NULL};
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
    nasc_free(j->ctx, j->path);
    nasc_free(j->ctx, j);
}

nasc_status nasc_journal_open(nasc_ctx *ctx, const char *path, uint32_t n_decisions, nasc_journal **out,
                              char *warning, size_t warning_size) {
    *out = NULL;
    if (warning_size) warning[0] = 0;
    nasc_journal *j = nasc_alloc(ctx, sizeof *j);
    if (!j) return NASC_ENOMEM;
    memset(j, 0, sizeof *j);
    j->ctx = ctx;
    j->fd = -1;
    j->n_decisions = n_decisions;
    j->path = nasc_strdup(ctx, path);
    if (!j->path) {
        nasc_journal_close(j);
        return NASC_ENOMEM;
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
    int line = 0;
    while (!status && pos < len) {
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
        status = push(j, &t, d);
        pos += ll + 1;
        keep = pos;
    }
    nasc_free(ctx, text);
    nasc_free(ctx, d);
    if (!status && keep != len) {
        if (ftruncate(j->fd, (off_t)keep) != 0 || fsync(j->fd) != 0)
            status = nasc_error(ctx, NASC_EINPUT, path, NASC_NOLOC, "cannot cut the torn record off: %s",
                                strerror(errno));
    }
    if (status) {
        nasc_journal_close(j);
        return status;
    }
    *out = j;
    return NASC_OK;
}

nasc_status nasc_journal_append(nasc_journal *j, const nasc_trial *t) {
    nasc_buf b;
    nasc_buf_init(&b, j->ctx);
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
    if (b.oom) {
        nasc_buf_free(&b);
        return NASC_ENOMEM;
    }
    nasc_buf_printf(&b, ",\"check\":\"%016" PRIx64 "\"}\n", fnv64(b.data, b.len));
    if (b.oom) {
        nasc_buf_free(&b);
        return NASC_ENOMEM;
    }
    nasc_status st = NASC_OK;
    off_t end = lseek(j->fd, 0, SEEK_END);
    size_t done = 0;
    while (end >= 0 && done < b.len) {
        ssize_t k = pwrite(j->fd, b.data + done, b.len - done, end + (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        done += (size_t)k;
    }
    if (done != b.len || fsync(j->fd) != 0)
        st = nasc_error(j->ctx, NASC_EINPUT, j->path, NASC_NOLOC, "cannot append to the journal: %s", strerror(errno));
    nasc_buf_free(&b);
    if (!st) st = push(j, t, t->d);
    return st;
}

int64_t nasc_journal_best(const nasc_journal *j) {
    int64_t best = -1;
    for (int64_t i = 0; i < j->n; i++) {
        const nasc_trial *t = &j->trials[i];
        if (strcmp(t->status, "failed") == 0 || !isfinite(t->reward)) continue;
        if (best < 0 || t->reward > j->trials[best].reward) best = i;
    }
    return best;
}
