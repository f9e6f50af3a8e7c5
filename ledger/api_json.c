/*
 * api_json.c — JSON shapes, query arguments and body checks of the admin API.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_json.h"

int put_minutes(json_t *o, const char *key, int64_t us)
{
    char buf[32];
    meter_format_minutes(us, buf);
    return json_object_set_new(o, key, json_string(buf));
}

static meter_remote_pack remote_of(const ledger_pack *p)
{
    meter_remote_pack r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", p->id);
    r.type = p->type;
    r.total_us = p->total_us;
    r.start = p->start;
    r.end = p->end;
    r.frozen = p->frozen;
    r.refunded_at = p->refunded_at;
    return r;
}

json_t *node_pack_json(const ledger_pack *p)
{
    meter_remote_pack r = remote_of(p);
    json_t *o = proto_pack_to_json(&r);
    if (o && (json_object_set_new(o, "remaining_us", json_integer(p->remaining_us)) ||
              json_object_set_new(o, "status", json_string(p->status)) ||
              json_object_set_new(o, "account", json_string(p->account)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *pack_json(const ledger_pack *p)
{
    json_t *o = node_pack_json(p);
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "used_us", json_integer(p->used_us)) ||
              json_object_set_new(o, "deductions", json_integer(p->deductions)) ||
              json_object_set_new(o, "node", p->node[0] ? json_string(p->node) : json_null()) ||
              json_object_set_new(o, "pooled", json_boolean(!p->node[0])) ||
              json_object_set_new(o, "reserved_us", json_integer(p->reserved_us)) ||
              json_object_set_new(o, "free_us", json_integer(p->free_us)) ||
              json_object_set_new(o, "created_ms", json_integer(p->created_at)) ||
              put_minutes(o, "total_min", p->total_us) ||
              put_minutes(o, "used_min", p->used_us) ||
              put_minutes(o, "remaining_min", p->remaining_us) ||
              put_minutes(o, "reserved_min", p->reserved_us) ||
              put_minutes(o, "free_min", p->free_us);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------- arguments -- */

int arg_time(request *rq, const char *name, meter_time *out)
{
    const char *v = rq_arg(rq, name);
    if (!v)
        return 1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < 0 || x > PROTO_TIME_MAX_MS || !isdigit((unsigned char)*v)) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s must be epoch milliseconds, not '%.40s'",
                    name, v);
        return 0;
    }
    *out = x;
    return 1;
}

int arg_int(request *rq, const char *name, int min, int max, int *out)
{
    const char *v = rq_arg(rq, name);
    if (!v)
        return 1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < min || x > max) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s must be an integer from %d to %d, not '%.40s'",
                    name, min, max, v);
        return 0;
    }
    *out = (int)x;
    return 1;
}

int arg_class(request *rq, const char *name, int *out)
{
    *out = -1;
    const char *v = rq_arg(rq, name);
    if (!v || !*v)
        return 1;
    meter_class c;
    if (meter_class_parse(v, &c) != METER_OK) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s must be general or tsc, not '%.40s'", name, v);
        return 0;
    }
    *out = (int)c;
    return 1;
}

int arg_name(request *rq, const char *name, const char **out)
{
    const char *v = rq_arg(rq, name);
    if (!v || !*v)
        return 1;
    if (!proto_valid_record_id(v)) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s: invalid value (letters, digits, '.', '_', "
                    "'-', ':')", name);
        return 0;
    }
    *out = v;
    return 1;
}

int arg_text(request *rq, const char *name, size_t cap, const char **out)
{
    const char *v = rq_arg(rq, name);
    if (!v || !*v)
        return 1;
    size_t n = strlen(v);
    int ok = n < cap;
    for (const unsigned char *p = (const unsigned char *)v; ok && *p; p++)
        ok = *p >= 0x20 && *p != 0x7f;
    if (!ok) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "%s: invalid value (at most %zu bytes of text)",
                    name, cap - 1);
        return 0;
    }
    *out = v;
    return 1;
}

/* --------------------------------------------------------------- bodies -- */

int body_name(request *rq, json_t **body, const char **name)
{
    if (!rq_json_body(rq, 0, body))
        return 0;
    json_t *v = json_object_get(*body, "name");
    if (!json_is_string(v) || !proto_valid_node(json_string_value(v))) {
        reply_error(rq, PROTO_ERR_BAD_REQUEST, "name: must be 1 to %d letters, digits, '.', "
                    "'_', '-', ':'", METER_NAME_MAX - 1);
        json_decref(*body);
        return 0;
    }
    *name = json_string_value(v);
    return 1;
}
