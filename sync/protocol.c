/*
 * protocol.c — the v1 wire codec shared by node and ledger (protocol.h):
 * error bodies, value validators, record / batch / pack JSON, signing.
 *
 * Decoders are strict on purpose: a record the ledger takes is money, so a
 * wrong type or an out-of-range value is named and refused rather than
 * coerced.  Unknown fields are ignored so either side can grow.
 */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "protocol.h"

#define NELEM(a) (sizeof (a) / sizeof *(a))


static int failf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, PROTO_ERRMAX, fmt, ap);
        va_end(ap);
    }
    return PROTO_EINVAL;
}

/* ------------------------------------------------------------ errors -- */

static const struct { const char *name; int status; } error_table[PROTO_ERR_COUNT] = {
    [PROTO_ERR_BAD_REQUEST]     = { "bad_request", 400 },
    [PROTO_ERR_UNAUTHORIZED]    = { "unauthorized", 401 },
    [PROTO_ERR_FORBIDDEN]       = { "forbidden", 403 },
    [PROTO_ERR_NOT_FOUND]       = { "not_found", 404 },
    [PROTO_ERR_CONFLICT]        = { "conflict", 409 },
    [PROTO_ERR_TOO_LARGE]       = { "too_large", 413 },
    [PROTO_ERR_UNSUPPORTED_MEDIA] = { "unsupported_media_type", 415 },
    [PROTO_ERR_REFUSED]         = { "refused", 422 },
    [PROTO_ERR_RATE_LIMITED]    = { "rate_limited", 429 },
    [PROTO_ERR_INTERNAL]        = { "internal", 500 },
    [PROTO_ERR_UNAVAILABLE]     = { "unavailable", 503 },
};

const char *proto_error_name(proto_error e)
{
    return (unsigned)e < PROTO_ERR_COUNT ? error_table[e].name : "internal";
}

int proto_error_status(proto_error e)
{
    return (unsigned)e < PROTO_ERR_COUNT ? error_table[e].status : 500;
}

int proto_error_from_name(const char *name)
{
    for (int i = 0; name && i < PROTO_ERR_COUNT; i++)
        if (strcmp(error_table[i].name, name) == 0)
            return i;
    return -1;
}

proto_error proto_error_for_status(int status)
{
    for (int i = 0; i < PROTO_ERR_COUNT; i++)
        if (error_table[i].status == status)
            return (proto_error)i;
    if (status == 502 || status == 504)
        return PROTO_ERR_UNAVAILABLE;
    return status >= 500 ? PROTO_ERR_INTERNAL : PROTO_ERR_BAD_REQUEST;
}

json_t *proto_error_json(proto_error e, const char *message)
{
    char line[PROTO_ERRMAX];
    const char *m = message && *message ? message : proto_error_name(e);
    size_t n = strcspn(m, "\r\n");
    if (n == 0) {   /* a message whose first line is empty says no more than its code */
        m = proto_error_name(e);
        n = strlen(m);
    }
    if (n >= sizeof line) {
        n = sizeof line - 1;
        /* do not cut a UTF-8 sequence in two */
        while (n > 0 && ((unsigned char)m[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(line, m, n);
    line[n] = '\0';
    /* the message may come from untrusted input: keep it valid UTF-8 */
    json_t *msg = json_stringn(line, n);
    if (!msg)
        msg = json_string("(message not valid UTF-8)");
    return json_pack("{s:{s:s,s:o}}", "error", "code", proto_error_name(e), "message", msg);
}

char *proto_error_body(proto_error e, const char *message)
{
    json_t *j = proto_error_json(e, message);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

int proto_error_parse(const char *body, size_t len, char code[32], char message[PROTO_ERRMAX])
{
    code[0] = message[0] = '\0';
    if (!body || len == 0)
        return PROTO_EINVAL;
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    if (!json_is_object(e)) {
        json_decref(j);
        return PROTO_EINVAL;
    }
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(code, 32, "%s", c ? c : "");
    if (m) {
        size_t n = strcspn(m, "\r\n");
        snprintf(message, PROTO_ERRMAX, "%.*s", (int)(n < PROTO_ERRMAX ? n : PROTO_ERRMAX - 1), m);
    }
    json_decref(j);
    return PROTO_OK;
}

/* -------------------------------------------------------- validators -- */

static int id_chars(const char *s, size_t max)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-:", s[i]))
            return 0;
    return 1;
}

int proto_valid_node(const char *s)      { return id_chars(s, METER_NAME_MAX); }
int proto_valid_record_id(const char *s) { return id_chars(s, METER_ID_MAX); }
int proto_record_id_prefix(const char *id, const char *kind, char prefix[METER_ID_MAX])
{
    static const struct { const char *kind; char letter; } letters[] = {
        { "usage", 'u' }, { "deduction", 'd' }, { "settlement", 's' }, { "pack_event", 'e' },
        { "lease", 'l' },   /* not a record, but in the node's namespace too */
    };
    if (!proto_valid_record_id(id))
        return 0;
    const char *dash = strchr(id, '-');
    if (!dash || dash == id)
        return 0;
    const char *k = dash + 1, *seq = dash + 2;
    int letter_ok = 0;
    for (size_t i = 0; i < NELEM(letters); i++)
        if (*k == letters[i].letter && (!kind || strcmp(kind, letters[i].kind) == 0))
            letter_ok = 1;
    size_t nseq = strspn(seq, "0123456789");
    if (!letter_ok || nseq == 0 || nseq > 19 || seq[nseq] != '\0' || seq[0] == '0')
        return 0;
    if (prefix) {
        memcpy(prefix, id, (size_t)(dash - id));
        prefix[dash - id] = '\0';
    }
    return 1;
}

int proto_valid_pack_id(const char *s)
{
    return meter_pack_id_valid(s);   /* the pack rules' own syntax */
}

int proto_valid_day(const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

int proto_valid_nonce(const char *s)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n < PROTO_NONCE_MIN || n > PROTO_NONCE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Text that libmeter accepts as a job/output name: no control chars. */
static int plain_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* ------------------------------------------------------ field readers -- */

/* ctx is "usage", "deduction", … for messages: "usage.width: …". */
typedef struct rd {
    const json_t *obj;
    const char *ctx;
    char *err;
} rd;

static const json_t *field(const rd *r, const char *key, int *rc)
{
    const json_t *v = json_object_get(r->obj, key);
    if (!v)
        *rc = failf(r->err, "%s.%s: missing", r->ctx, key);
    return v;
}

enum str_rule { S_TEXT, S_NODE, S_RECORD_ID, S_PACK_ID, S_DAY, S_WORD };

static const char *rule_text(enum str_rule rule)
{
    switch (rule) {
    case S_NODE:
    case S_PACK_ID:
    case S_RECORD_ID: return "letters, digits, '.', '_', '-', ':'";
    case S_DAY:       return "a date YYYY-MM-DD";
    case S_WORD:      return "lowercase letters and '_'";
    default:          return "text without control characters";
    }
}

static int str_ok(enum str_rule rule, const char *s, size_t cap)
{
    switch (rule) {
    case S_NODE:      return proto_valid_node(s);
    case S_RECORD_ID: return proto_valid_record_id(s);
    case S_PACK_ID:   return proto_valid_pack_id(s);
    case S_DAY:       return proto_valid_day(s);
    case S_WORD:
        if (!*s || strlen(s) >= cap)
            return 0;
        for (const char *p = s; *p; p++)
            if (!(*p >= 'a' && *p <= 'z') && *p != '_')
                return 0;
        return 1;
    default:          return plain_text(s, cap);
    }
}

/* A string field into dst[cap].  nullable: JSON null (or, when absent is
 * not allowed, missing is an error) gives "" and *is_null = 1. */
static int get_str(const rd *r, const char *key, enum str_rule rule, char *dst, size_t cap,
                   int nullable)
{
    int rc = PROTO_OK;
    const json_t *v = field(r, key, &rc);
    if (!v)
        return rc;
    if (json_is_null(v) && nullable) {
        dst[0] = '\0';
        return PROTO_OK;
    }
    if (!json_is_string(v))
        return failf(r->err, "%s.%s: must be a string%s", r->ctx, key,
                     nullable ? " or null" : "");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n)
        return failf(r->err, "%s.%s: contains a NUL character", r->ctx, key);
    if (n >= cap)
        return failf(r->err, "%s.%s: too long (%zu bytes, at most %zu)", r->ctx, key, n,
                     cap - 1);
    if (!str_ok(rule, s, cap))
        return failf(r->err, "%s.%s: invalid value (%s)", r->ctx, key, rule_text(rule));
    memcpy(dst, s, n + 1);
    return PROTO_OK;
}

static int get_int(const rd *r, const char *key, int64_t min, int64_t max, int64_t *out,
                   int nullable, int *is_null)
{
    int rc = PROTO_OK;
    const json_t *v = field(r, key, &rc);
    if (is_null)
        *is_null = 0;
    if (!v)
        return rc;
    if (json_is_null(v) && nullable) {
        *out = 0;
        if (is_null)
            *is_null = 1;
        return PROTO_OK;
    }
    if (!json_is_integer(v))
        return failf(r->err, "%s.%s: must be an integer%s", r->ctx, key,
                     nullable ? " or null" : "");
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return failf(r->err, "%s.%s: %" JSON_INTEGER_FORMAT " is out of range (%" PRId64
                     " to %" PRId64 ")", r->ctx, key, x, min, max);
    *out = (int64_t)x;
    return PROTO_OK;
}

static int get_bool(const rd *r, const char *key, int *out)
{
    int rc = PROTO_OK;
    const json_t *v = field(r, key, &rc);
    if (!v)
        return rc;
    if (!json_is_boolean(v))
        return failf(r->err, "%s.%s: must be true or false", r->ctx, key);
    *out = json_is_true(v);
    return PROTO_OK;
}

static int get_class(const rd *r, const char *key, meter_class *out)
{
    int rc = PROTO_OK;
    const json_t *v = field(r, key, &rc);
    if (!v)
        return rc;
    const char *t = json_string_value(v);
    if (!t || (strcmp(t, "general") && strcmp(t, "tsc")))
        return failf(r->err, "%s.%s: must be \"general\" or \"tsc\"", r->ctx, key);
    *out = strcmp(t, "tsc") == 0 ? METER_CLASS_TSC : METER_CLASS_GENERAL;
    return PROTO_OK;
}

static const char *class_name(meter_class c)
{
    return c == METER_CLASS_TSC ? "tsc" : "general";
}

/* ----------------------------------------------------------- records -- */

static const char *const kinds[] = { "usage", "deduction", "settlement", "pack_event" };
static const char *const actions[] = { "purchase", "freeze", "unfreeze", "refund" };

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

/* json_object_set_new that remembers a failure. */
static void put(json_t *o, const char *key, json_t *v, int *ok)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *ok = 0;
}

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

json_t *proto_record_to_json(const meter_sync_record *r)
{
    if (!r || !in_list(r->kind, kinds, NELEM(kinds)))
        return NULL;
    json_t *o = json_object();
    int ok = o != NULL;
    if (!ok)
        return NULL;
    put(o, "kind", json_string(r->kind), &ok);
    put(o, "id", json_string(r->id), &ok);
    put(o, "node", json_string(r->node), &ok);
    put(o, "account", json_string(r->account[0] ? r->account : METER_ACCOUNT_DEFAULT), &ok);
    put(o, "at_ms", json_integer(r->at), &ok);
    if (strcmp(r->kind, "usage") == 0) {
        put(o, "job", json_string(r->job), &ok);
        put(o, "output", json_string(r->output), &ok);
        put(o, "session_id", str_or_null(r->session_id), &ok);
        put(o, "class", json_string(class_name(r->cls)), &ok);
        put(o, "ttype", json_string(r->ttype), &ok);
        put(o, "codec", json_string(r->codec), &ok);
        put(o, "width", json_integer(r->width), &ok);
        put(o, "height", json_integer(r->height), &ok);
        put(o, "duration_us", json_integer(r->duration_us), &ok);
        put(o, "billed_us", json_integer(r->billed_us), &ok);
        put(o, "deductible", json_boolean(r->deductible), &ok);
        put(o, "daily", json_boolean(r->daily), &ok);
        put(o, "started_ms", json_integer(r->started_at), &ok);
        put(o, "day", json_string(r->day), &ok);
        put(o, "state", json_string(r->state), &ok);
    } else if (strcmp(r->kind, "deduction") == 0) {
        int overage = r->pack_id[0] == '\0';
        put(o, "charge_id", json_string(r->charge_id), &ok);
        put(o, "pack_id", str_or_null(r->pack_id), &ok);
        if (r->lease_id[0])
            put(o, "lease_id", json_string(r->lease_id), &ok);
        put(o, "class", json_string(class_name(r->cls)), &ok);
        put(o, "ttype", json_string(r->ttype), &ok);
        put(o, "day", json_string(r->day), &ok);
        put(o, "amount_us", json_integer(r->amount_us), &ok);
        put(o, "before_us", overage ? json_null() : json_integer(r->before_us), &ok);
        put(o, "after_us", overage ? json_null() : json_integer(r->after_us), &ok);
    } else if (strcmp(r->kind, "settlement") == 0) {
        put(o, "day", json_string(r->day), &ok);
        put(o, "class", json_string(class_name(r->cls)), &ok);
        put(o, "ttype", json_string(r->ttype), &ok);
        put(o, "deductible", json_boolean(r->deductible), &ok);
        put(o, "billed_us", json_integer(r->billed_us), &ok);
    } else {
        put(o, "pack_id", json_string(r->pack_id), &ok);
        put(o, "action", json_string(r->action), &ok);
    }
    if (!ok) {   /* ENOMEM, or a string that is not UTF-8 */
        json_decref(o);
        return NULL;
    }
    return o;
}

static int decode_usage(const rd *r, meter_sync_record *o)
{
    int64_t v;
    int rc;
    if ((rc = get_str(r, "job", S_TEXT, o->job, sizeof o->job, 0)) ||
        (rc = get_str(r, "output", S_TEXT, o->output, sizeof o->output, 0)) ||
        (rc = get_str(r, "session_id", S_RECORD_ID, o->session_id, sizeof o->session_id, 1)) ||
        (rc = get_class(r, "class", &o->cls)) ||
        (rc = get_str(r, "ttype", S_TEXT, o->ttype, sizeof o->ttype, 0)) ||
        (rc = get_str(r, "codec", S_TEXT, o->codec, sizeof o->codec, 0)))
        return rc;
    if ((rc = get_int(r, "width", 0, INT_MAX, &v, 0, NULL)))
        return rc;
    o->width = (int)v;
    if ((rc = get_int(r, "height", 0, INT_MAX, &v, 0, NULL)))
        return rc;
    o->height = (int)v;
    if ((rc = get_int(r, "duration_us", 1, METER_DURATION_MAX_US, &o->duration_us, 0, NULL)) ||
        (rc = get_int(r, "billed_us", 0, METER_BILLED_MAX_US, &o->billed_us, 0, NULL)) ||
        (rc = get_bool(r, "deductible", &o->deductible)) ||
        (rc = get_bool(r, "daily", &o->daily)) ||
        (rc = get_int(r, "started_ms", 0, PROTO_TIME_MAX_MS, &o->started_at, 0, NULL)) ||
        (rc = get_str(r, "day", S_DAY, o->day, sizeof o->day, 0)) ||
        (rc = get_str(r, "state", S_WORD, o->state, sizeof o->state, 0)))
        return rc;
    return PROTO_OK;
}

static int decode_deduction(const rd *r, meter_sync_record *o)
{
    int rc, before_null, after_null;
    if ((rc = get_str(r, "charge_id", S_RECORD_ID, o->charge_id, sizeof o->charge_id, 0)) ||
        (rc = get_str(r, "pack_id", S_PACK_ID, o->pack_id, sizeof o->pack_id, 1)) ||
        (rc = get_class(r, "class", &o->cls)) ||
        (rc = get_str(r, "ttype", S_TEXT, o->ttype, sizeof o->ttype, 0)) ||
        (rc = get_str(r, "day", S_DAY, o->day, sizeof o->day, 0)) ||
        (rc = get_int(r, "amount_us", 1, METER_BILLED_MAX_US, &o->amount_us, 0, NULL)) ||
        (rc = get_int(r, "before_us", 0, METER_PACK_TOTAL_MAX_US, &o->before_us, 1,
                      &before_null)) ||
        (rc = get_int(r, "after_us", 0, METER_PACK_TOTAL_MAX_US, &o->after_us, 1, &after_null)))
        return rc;
    /* lease_id: optional (deductions of a v1 node, or from an own pack) */
    const json_t *lease = json_object_get(r->obj, "lease_id");
    if (lease && !json_is_null(lease)) {
        if ((rc = get_str(r, "lease_id", S_RECORD_ID, o->lease_id, sizeof o->lease_id, 0)))
            return rc;
        if (!proto_record_id_prefix(o->lease_id, "lease", NULL))
            return failf(r->err, "deduction.lease_id: '%s' is not a lease id "
                         "(<node_id>-l<seq>)", o->lease_id);
        if (o->pack_id[0] == '\0')
            return failf(r->err, "deduction.lease_id: set on an overage deduction "
                         "(pack_id null)");
    }
    if (o->pack_id[0] != '\0' && o->amount_us > METER_PACK_TOTAL_MAX_US)
        return failf(r->err, "deduction.amount_us: %" PRId64 " is more than any pack holds "
                     "(%" PRId64 ")", o->amount_us, METER_PACK_TOTAL_MAX_US);
    if (o->pack_id[0] == '\0') {
        if (!before_null || !after_null)
            return failf(r->err, "deduction.before_us: must be null for overage "
                         "(pack_id null), as must after_us");
    } else {
        if (before_null || after_null)
            return failf(r->err, "deduction.%s: must be an integer when pack_id is set",
                         before_null ? "before_us" : "after_us");
        if (o->before_us - o->amount_us != o->after_us)
            return failf(r->err, "deduction.after_us: %" PRId64 " is not before_us - "
                         "amount_us (%" PRId64 " - %" PRId64 ")", o->after_us,
                         o->before_us, o->amount_us);
    }
    return PROTO_OK;
}

static int decode_settlement(const rd *r, meter_sync_record *o)
{
    int rc;
    if ((rc = get_str(r, "day", S_DAY, o->day, sizeof o->day, 0)) ||
        (rc = get_class(r, "class", &o->cls)) ||
        (rc = get_str(r, "ttype", S_TEXT, o->ttype, sizeof o->ttype, 0)) ||
        (rc = get_bool(r, "deductible", &o->deductible)) ||
        (rc = get_int(r, "billed_us", 0, METER_BILLED_MAX_US, &o->billed_us, 0, NULL)))
        return rc;
    return PROTO_OK;
}

static int decode_pack_event(const rd *r, meter_sync_record *o)
{
    int rc;
    if ((rc = get_str(r, "pack_id", S_PACK_ID, o->pack_id, sizeof o->pack_id, 0)) ||
        (rc = get_str(r, "action", S_WORD, o->action, sizeof o->action, 0)))
        return rc;
    if (!in_list(o->action, actions, NELEM(actions)))
        return failf(r->err, "pack_event.action: must be purchase, freeze, unfreeze or refund");
    return PROTO_OK;
}

int proto_record_from_json(const json_t *j, meter_sync_record *out, char err[PROTO_ERRMAX])
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return failf(err, "record: must be an object");
    rd r = { j, "record", err };
    int rc;
    /* the id first, so a rejection can name the record */
    if ((rc = get_str(&r, "id", S_RECORD_ID, out->id, sizeof out->id, 0)))
        return rc;
    const json_t *k = json_object_get(j, "kind");
    if (!k)
        return failf(err, "record.kind: missing");
    const char *kind = json_string_value(k);
    if (!kind || !in_list(kind, kinds, NELEM(kinds)))
        return failf(err, "record.kind: must be usage, deduction, settlement or pack_event");
    strcpy(out->kind, kind);
    if (!proto_record_id_prefix(out->id, kind, NULL))
        return failf(err, "record.id: '%s' is not an id of a %s record "
                     "(<node_id>-%c<seq>)", out->id, kind,
                     kind[0] == 'p' ? 'e' : kind[0]);
    if ((rc = get_str(&r, "node", S_NODE, out->node, sizeof out->node, 0)) ||
        (rc = get_int(&r, "at_ms", 0, PROTO_TIME_MAX_MS, &out->at, 0, NULL)))
        return rc;
    /* account: optional, a node of protocol v1 sends none */
    if (json_object_get(j, "account")) {
        if ((rc = get_str(&r, "account", S_NODE, out->account, sizeof out->account, 0)))
            return rc;
    } else {
        strcpy(out->account, METER_ACCOUNT_DEFAULT);
    }
    r.ctx = out->kind;
    if (strcmp(kind, "usage") == 0)
        return decode_usage(&r, out);
    if (strcmp(kind, "deduction") == 0)
        return decode_deduction(&r, out);
    if (strcmp(kind, "settlement") == 0)
        return decode_settlement(&r, out);
    return decode_pack_event(&r, out);
}

/* ------------------------------------------------------------ leases -- */

static const char *const lease_states[] = { "open", "released", "expired" };

json_t *proto_lease_request_to_json(const proto_lease_request *q)
{
    json_t *o = json_object();
    int ok = o != NULL;
    if (!ok)
        return NULL;
    put(o, "id", json_string(q->id), &ok);
    put(o, "account", json_string(q->account), &ok);
    put(o, "class", json_string(class_name(q->cls)), &ok);
    put(o, "want_us", json_integer(q->want_us), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int proto_lease_request_from_json(const json_t *j, proto_lease_request *out,
                                  char err[PROTO_ERRMAX])
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return failf(err, "lease request: body must be a JSON object");
    rd r = { j, "lease", err };
    int rc;
    if ((rc = get_str(&r, "id", S_RECORD_ID, out->id, sizeof out->id, 0)))
        return rc;
    if (!proto_record_id_prefix(out->id, "lease", NULL))
        return failf(err, "lease.id: '%s' is not a lease id (<node_id>-l<seq>)", out->id);
    if ((rc = get_str(&r, "account", S_NODE, out->account, sizeof out->account, 0)) ||
        (rc = get_class(&r, "class", &out->cls)) ||
        (rc = get_int(&r, "want_us", 1, METER_PACK_TOTAL_MAX_US, &out->want_us, 0, NULL)))
        return rc;
    return PROTO_OK;
}

static json_t *int_or_null(int64_t v)
{
    return v ? json_integer(v) : json_null();
}

json_t *proto_lease_to_json(const proto_lease *l)
{
    json_t *o = json_object(), *a = json_array();
    int ok = o && a;
    for (size_t i = 0; ok && i < l->nslices; i++) {
        const proto_lease_slice *s = &l->slices[i];
        json_t *e = json_object();
        ok = e != NULL;
        put(e, "pack_id", json_string(s->pack_id), &ok);
        put(e, "granted_us", json_integer(s->granted_us), &ok);
        put(e, "posted_us", json_integer(s->posted_us), &ok);
        put(e, "start_ms", json_integer(s->start_ms), &ok);
        put(e, "end_ms", json_integer(s->end_ms), &ok);
        put(e, "voided", json_boolean(s->voided), &ok);
        if (!ok || json_array_append_new(a, e) != 0)
            ok = 0;
    }
    put(o, "id", json_string(l->id), &ok);
    put(o, "node", json_string(l->node), &ok);
    put(o, "account", json_string(l->account), &ok);
    put(o, "class", json_string(class_name(l->cls)), &ok);
    put(o, "state", json_string(l->state), &ok);
    put(o, "requested_us", json_integer(l->requested_us), &ok);
    put(o, "granted_us", json_integer(l->granted_us), &ok);
    put(o, "created_ms", json_integer(l->created_ms), &ok);
    put(o, "expires_ms", json_integer(l->expires_ms), &ok);
    put(o, "ttl_ms", json_integer(l->ttl_ms), &ok);
    put(o, "resolved_ms", int_or_null(l->resolved_ms), &ok);
    if (ok) {
        put(o, "slices", a, &ok);
        a = NULL;
    }
    json_decref(a);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int decode_slice(const json_t *e, size_t i, proto_lease_slice *s, char *err)
{
    char ctx[32];   /* i < PROTO_LEASE_SLICES_MAX: "%u" cannot be cut */
    snprintf(ctx, sizeof ctx, "lease.slices[%u]", (unsigned)i);
    if (!json_is_object(e))
        return failf(err, "%s: must be an object", ctx);
    rd r = { e, ctx, err };
    int rc;
    if ((rc = get_str(&r, "pack_id", S_PACK_ID, s->pack_id, sizeof s->pack_id, 0)) ||
        (rc = get_int(&r, "granted_us", 0, METER_PACK_TOTAL_MAX_US, &s->granted_us, 0, NULL)) ||
        (rc = get_int(&r, "posted_us", 0, METER_PACK_TOTAL_MAX_US, &s->posted_us, 0, NULL)) ||
        (rc = get_int(&r, "start_ms", 0, PROTO_TIME_MAX_MS, &s->start_ms, 0, NULL)) ||
        (rc = get_int(&r, "end_ms", 0, PROTO_TIME_MAX_MS, &s->end_ms, 0, NULL)) ||
        (rc = get_bool(&r, "voided", &s->voided)))
        return rc;
    if (s->posted_us > s->granted_us)
        return failf(err, "%s.posted_us: %" PRId64 " is more than granted_us %" PRId64, ctx,
                     s->posted_us, s->granted_us);
    if (s->end_ms <= s->start_ms)
        return failf(err, "%s.end_ms: not after start_ms", ctx);
    return PROTO_OK;
}

int proto_lease_from_json(const json_t *j, proto_lease *out, char err[PROTO_ERRMAX])
{
    memset(out, 0, sizeof *out);
    const json_t *inner = json_is_object(j) ? json_object_get(j, "lease") : NULL;
    if (inner)
        j = inner;
    if (!json_is_object(j))
        return failf(err, "lease: must be an object");
    rd r = { j, "lease", err };
    int rc, resolved_null;
    if ((rc = get_str(&r, "id", S_RECORD_ID, out->id, sizeof out->id, 0)))
        return rc;
    if (!proto_record_id_prefix(out->id, "lease", NULL))
        return failf(err, "lease.id: '%s' is not a lease id (<node_id>-l<seq>)", out->id);
    if ((rc = get_str(&r, "node", S_NODE, out->node, sizeof out->node, 0)) ||
        (rc = get_str(&r, "account", S_NODE, out->account, sizeof out->account, 0)) ||
        (rc = get_class(&r, "class", &out->cls)) ||
        (rc = get_str(&r, "state", S_WORD, out->state, sizeof out->state, 0)) ||
        (rc = get_int(&r, "requested_us", 0, METER_PACK_TOTAL_MAX_US, &out->requested_us, 0,
                      NULL)) ||
        (rc = get_int(&r, "granted_us", 0, METER_PACK_TOTAL_MAX_US, &out->granted_us, 0,
                      NULL)) ||
        (rc = get_int(&r, "created_ms", 0, PROTO_TIME_MAX_MS, &out->created_ms, 0, NULL)) ||
        (rc = get_int(&r, "expires_ms", 0, PROTO_TIME_MAX_MS, &out->expires_ms, 0, NULL)) ||
        (rc = get_int(&r, "ttl_ms", 0, PROTO_TIME_MAX_MS, &out->ttl_ms, 0, NULL)) ||
        (rc = get_int(&r, "resolved_ms", 0, PROTO_TIME_MAX_MS, &out->resolved_ms, 1,
                      &resolved_null)))
        return rc;
    if (!in_list(out->state, lease_states, NELEM(lease_states)))
        return failf(err, "lease.state: must be open, released or expired");
    if (resolved_null != (strcmp(out->state, "open") == 0))
        return failf(err, "lease.resolved_ms: must be null exactly while the lease is open");
    const json_t *a = json_object_get(j, "slices");
    if (!json_is_array(a))
        return failf(err, "lease.slices: %s", a ? "must be an array" : "missing");
    if (json_array_size(a) > PROTO_LEASE_SLICES_MAX)
        return failf(err, "lease.slices: %zu slices, at most %d", json_array_size(a),
                     PROTO_LEASE_SLICES_MAX);
    int64_t sum = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        if ((rc = decode_slice(json_array_get(a, i), i, &out->slices[i], err)))
            return rc;
        for (size_t k = 0; k < i; k++)
            if (strcmp(out->slices[k].pack_id, out->slices[i].pack_id) == 0)
                return failf(err, "lease.slices[%zu].pack_id: '%s' appears twice", i,
                             out->slices[i].pack_id);
        sum += out->slices[i].granted_us;   /* ≤ 64 × 6·10^14: no overflow */
        out->nslices = i + 1;
    }
    if (sum != out->granted_us)
        return failf(err, "lease.granted_us: %" PRId64 " is not the sum of its slices "
                     "(%" PRId64 ")", out->granted_us, sum);
    return PROTO_OK;
}

/* ------------------------------------------------------------- batch -- */

json_t *proto_batch_to_json(const char *node, const meter_sync_record *r, size_t n)
{
    json_t *arr = json_array();
    json_t *o = json_object();
    int ok = arr && o;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(arr, proto_record_to_json(&r[i])) == 0;
    put(o, "node", node ? json_string(node) : NULL, &ok);
    if (ok) {
        put(o, "records", arr, &ok);
        arr = NULL;
    }
    json_decref(arr);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int proto_batch_envelope(const json_t *j, const char **node, const json_t **records,
                         char err[PROTO_ERRMAX])
{
    *node = NULL;
    *records = NULL;
    if (!json_is_object(j))
        return failf(err, "batch: body must be a JSON object");
    const json_t *n = json_object_get(j, "node");
    if (!n)
        return failf(err, "batch.node: missing");
    const char *s = json_string_value(n);
    if (!s || strlen(s) != json_string_length(n) || !proto_valid_node(s))
        return failf(err, "batch.node: must be a node name (letters, digits, '.', '_', "
                     "'-', ':'; at most %d bytes)", METER_NAME_MAX - 1);
    const json_t *a = json_object_get(j, "records");
    if (!a)
        return failf(err, "batch.records: missing");
    if (!json_is_array(a))
        return failf(err, "batch.records: must be an array");
    if (json_array_size(a) > PROTO_MAX_BATCH)
        return failf(err, "batch.records: %zu records, at most %d per batch",
                     json_array_size(a), PROTO_MAX_BATCH);
    *node = s;
    *records = a;
    return PROTO_OK;
}

/* One id of the answer and the list it came from, for the checks. */
typedef struct tagged {
    const char *id;
    int list;
} tagged;

static int cmp_tagged(const void *a, const void *b)
{
    return strcmp(((const tagged *)a)->id, ((const tagged *)b)->id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void proto_batch_result_free(proto_batch_result *r)
{
    if (!r)
        return;
    free(r->accepted);
    free(r->duplicates);
    free(r->rejected);
    memset(r, 0, sizeof *r);
}

static const char *const list_names[] = { "accepted", "duplicates", "rejected" };

/* Reads one of the three lists; ids go to `ids` (and the tagged index). */
static int read_list(const json_t *j, int which, tagged *all, size_t *nall, size_t cap,
                     proto_batch_result *out, char *err)
{
    const char *name = list_names[which];
    const json_t *a = json_object_get(j, name);
    if (!a)
        return failf(err, "batch answer: \"%s\" is missing", name);
    if (!json_is_array(a))
        return failf(err, "batch answer: \"%s\" must be an array", name);
    size_t n = json_array_size(a);
    if (*nall + n > cap)
        return failf(err, "batch answer: lists more ids than were sent");
    if (n == 0)
        return PROTO_OK;
    char (*ids)[METER_ID_MAX] = NULL;
    proto_rejected *rej = NULL;
    if (which == 2)
        rej = calloc(n, sizeof *rej);
    else
        ids = calloc(n, sizeof *ids);
    if (!rej && !ids)
        return failf(err, "out of memory");
    if (which == 0) { out->accepted = ids; out->n_accepted = n; }
    if (which == 1) { out->duplicates = ids; out->n_duplicates = n; }
    if (which == 2) { out->rejected = rej; out->n_rejected = n; }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(a, i);
        const json_t *idv = which == 2 && json_is_object(e) ? json_object_get(e, "id") : e;
        const char *id = json_string_value(idv);
        if (!id || !proto_valid_record_id(id))
            return failf(err, "batch answer: %s[%zu] is not a record id%s", name, i,
                         which == 2 ? " object {\"id\", \"reason\"}" : "");
        if (which == 2) {
            const char *reason = json_string_value(json_object_get(e, "reason"));
            if (!reason || !*reason || *reason == '\r' || *reason == '\n')
                reason = "rejected (the ledger gave no reason)";
            size_t rn = strcspn(reason, "\r\n");
            snprintf(rej[i].reason, sizeof rej[i].reason, "%.*s",
                     (int)(rn < PROTO_ERRMAX ? rn : PROTO_ERRMAX - 1), reason);
            strcpy(rej[i].id, id);
            all[*nall].id = rej[i].id;
        } else {
            strcpy(ids[i], id);
            all[*nall].id = ids[i];
        }
        all[*nall].list = which;
        (*nall)++;
    }
    return PROTO_OK;
}

int proto_batch_result_parse(const json_t *j, const meter_sync_record *sent, size_t n_sent,
                             proto_batch_result *out, char err[PROTO_ERRMAX])
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return failf(err, "batch answer: not a JSON object");
    size_t cap = n_sent, nall = 0;
    tagged *all = calloc(cap ? cap : 1, sizeof *all);
    const char **ids = calloc(n_sent ? n_sent : 1, sizeof *ids);
    int rc = all && ids ? PROTO_OK : failf(err, "out of memory");
    for (int w = 0; rc == PROTO_OK && w < 3; w++)
        rc = read_list(j, w, all, &nall, cap, out, err);
    if (rc == PROTO_OK) {
        for (size_t i = 0; i < n_sent; i++)
            ids[i] = sent[i].id;
        qsort(ids, n_sent, sizeof *ids, cmp_str);
        qsort(all, nall, sizeof *all, cmp_tagged);
        for (size_t i = 0; rc == PROTO_OK && i < nall; i++) {
            if (i > 0 && strcmp(all[i].id, all[i - 1].id) == 0)
                rc = failf(err, "batch answer: id %s appears in \"%s\" and \"%s\"", all[i].id,
                           list_names[all[i - 1].list], list_names[all[i].list]);
            else if (!bsearch(&all[i].id, ids, n_sent, sizeof *ids, cmp_str))
                rc = failf(err, "batch answer: id %s in \"%s\" was not sent", all[i].id,
                           list_names[all[i].list]);
        }
    }
    free(all);
    free(ids);
    if (rc != PROTO_OK)
        proto_batch_result_free(out);
    return rc;
}

/* ------------------------------------------------------------- packs -- */

json_t *proto_pack_to_json(const meter_remote_pack *p)
{
    json_t *o = json_object();
    int ok = o != NULL;
    if (!ok)
        return NULL;
    put(o, "id", json_string(p->id), &ok);
    put(o, "type", json_string(class_name(p->type)), &ok);
    put(o, "total_us", json_integer(p->total_us), &ok);
    put(o, "start_ms", json_integer(p->start), &ok);
    put(o, "end_ms", json_integer(p->end), &ok);
    put(o, "frozen", json_boolean(p->frozen), &ok);
    put(o, "refunded_ms", p->refunded_at ? json_integer(p->refunded_at) : json_null(), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int proto_pack_from_json(const json_t *j, meter_remote_pack *out, char err[PROTO_ERRMAX])
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return failf(err, "pack: must be an object");
    rd r = { j, "pack", err };
    int rc, refunded_null;
    if ((rc = get_str(&r, "id", S_PACK_ID, out->id, sizeof out->id, 0)) ||
        (rc = get_class(&r, "type", &out->type)) ||
        (rc = get_int(&r, "total_us", 1, METER_PACK_TOTAL_MAX_US, &out->total_us, 0, NULL)) ||
        (rc = get_int(&r, "start_ms", 0, PROTO_TIME_MAX_MS, &out->start, 0, NULL)) ||
        (rc = get_int(&r, "end_ms", 1, PROTO_TIME_MAX_MS, &out->end, 0, NULL)) ||
        (rc = get_bool(&r, "frozen", &out->frozen)) ||
        (rc = get_int(&r, "refunded_ms", 1, PROTO_TIME_MAX_MS, &out->refunded_at, 1,
                      &refunded_null)))
        return rc;
    if (out->end <= out->start)
        return failf(err, "pack.end_ms: must be after start_ms");
    return PROTO_OK;
}

int proto_packs_from_json(const json_t *j, meter_remote_pack **out, size_t *n,
                          char err[PROTO_ERRMAX])
{
    *out = NULL;
    *n = 0;
    const json_t *a = json_is_object(j) ? json_object_get(j, "packs") : NULL;
    if (!json_is_array(a))
        return failf(err, "packs answer: expected {\"packs\": [...]}");
    size_t cnt = json_array_size(a);
    meter_remote_pack *p = calloc(cnt ? cnt : 1, sizeof *p);
    if (!p)
        return failf(err, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        char e[PROTO_ERRMAX];
        if (proto_pack_from_json(json_array_get(a, i), &p[i], e) != PROTO_OK) {
            free(p);
            return failf(err, "packs[%zu]: %s", i, e);
        }
    }
    *out = p;
    *n = cnt;
    return PROTO_OK;
}

/* ----------------------------------------------------------- signing -- */

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int proto_body_hash(const void *body, size_t len, char out_hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char empty = 0;
    if (!EVP_Digest(len ? body : &empty, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        out_hex[0] = '\0';
        return PROTO_ECRYPTO;
    }
    to_hex(md, 32, out_hex);
    return PROTO_OK;
}

int proto_sign(const char *secret, const char *method, const char *path_with_query,
               int64_t time_s, const char *nonce, const void *body, size_t len,
               char out_hex[65])
{
    out_hex[0] = '\0';
    if (!secret || !*secret || !method || !path_with_query || !nonce)
        return PROTO_EINVAL;
    char bh[65];
    int rc = proto_body_hash(body, len, bh);
    if (rc != PROTO_OK)
        return rc;
    size_t cap = strlen(method) + strlen(path_with_query) + strlen(nonce) + 96;
    char *sts = malloc(cap);
    if (!sts)
        return PROTO_ENOMEM;
    int n = snprintf(sts, cap, "%s\n%s\n%" PRId64 "\n%s\n%s", method, path_with_query,
                     time_s, nonce, bh);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const unsigned char *ok = n > 0 && (size_t)n < cap
        ? HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)sts,
               (size_t)n, mac, &maclen)
        : NULL;
    OPENSSL_cleanse(sts, cap);
    free(sts);
    if (!ok || maclen != 32)
        return PROTO_ECRYPTO;
    to_hex(mac, 32, out_hex);
    OPENSSL_cleanse(mac, sizeof mac);
    return PROTO_OK;
}

int proto_verify(const char *secret, const char *method, const char *path_with_query,
                 int64_t time_s, const char *nonce, const void *body, size_t len,
                 const char *sig_hex)
{
    char want[65], got[65];
    if (!sig_hex || strlen(sig_hex) != PROTO_SIG_HEXLEN)
        return 0;
    for (int i = 0; i < PROTO_SIG_HEXLEN; i++) {
        if (!isxdigit((unsigned char)sig_hex[i]))
            return 0;
        got[i] = (char)tolower((unsigned char)sig_hex[i]);
    }
    got[PROTO_SIG_HEXLEN] = '\0';
    if (proto_sign(secret, method, path_with_query, time_s, nonce, body, len, want) != PROTO_OK)
        return 0;
    int eq = CRYPTO_memcmp(want, got, PROTO_SIG_HEXLEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return eq;
}

int proto_time_ok(int64_t time_s, int64_t now_s)
{
    /* now_s is a clock reading, far from the int64 ends: no overflow */
    if (now_s < INT64_MIN / 2 || now_s > INT64_MAX / 2)
        return 0;
    return time_s >= now_s - PROTO_TIME_WINDOW_S && time_s <= now_s + PROTO_TIME_WINDOW_S;
}

int proto_nonce(char out[33])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        out[0] = '\0';
        return PROTO_ECRYPTO;
    }
    to_hex(b, sizeof b, out);
    return PROTO_OK;
}

int proto_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (!a || !b || alen != blen)
        return 0;
    return alen == 0 || CRYPTO_memcmp(a, b, alen) == 0;
}

int proto_ct_streq(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    return proto_ct_equal(a, strlen(a), b, strlen(b));
}
