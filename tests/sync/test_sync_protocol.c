/*
 * test_sync_protocol.c — the v1 wire codec (sync/protocol.h): record,
 * batch and pack JSON both ways, the strictness of the decoders, error
 * bodies, request signing and its checks.
 *
 * Expected values are written out here from PROTOCOL.md and published test
 * vectors (FIPS 180-2 SHA-256), never asked of the code under test.
 */
#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tap.h"
#include "protocol.h"

static meter_sync_record usage_rec(void)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "usage");
    strcpy(r.id, "0a1b2c3d4e5f6071-u42");
    strcpy(r.node, "node-a");
    strcpy(r.account, "acme");
    strcpy(r.job, "job 7 (ünïcode)");
    strcpy(r.output, "720p");
    strcpy(r.session_id, "0a1b2c3d4e5f6071-s3");
    r.cls = METER_CLASS_TSC;
    strcpy(r.ttype, "TESHD-10.H264.HD");
    strcpy(r.codec, "H264");
    r.width = 1280;
    r.height = 720;
    r.duration_us = 61500000;
    r.billed_us = 123000000;
    r.deductible = 1;
    r.daily = 0;
    r.started_at = INT64_C(1795686000000);
    r.at = INT64_C(1795686600000);
    strcpy(r.day, "2026-11-26");
    strcpy(r.state, "done");
    return r;
}

static meter_sync_record deduction_rec(int overage)
{
    meter_sync_record r;
    memset(&r, 0, sizeof r);
    strcpy(r.kind, "deduction");
    strcpy(r.id, "0a1b2c3d4e5f6071-d9");
    strcpy(r.node, "node-a");
    strcpy(r.account, "acme");
    strcpy(r.charge_id, "0a1b2c3d4e5f6071-u42");
    r.cls = METER_CLASS_GENERAL;
    strcpy(r.ttype, "Standard.H265.FHD");
    strcpy(r.day, "2026-11-26");
    r.amount_us = 30000000;
    if (!overage) {
        strcpy(r.pack_id, "pk-20261126-abcdef01");
        r.before_us = 90000000;
        r.after_us = 60000000;
    }
    r.at = INT64_C(1795686600001);
    return r;
}

static int same_record(const meter_sync_record *a, const meter_sync_record *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* Encodes, decodes, and compares with the original. */
static void round_trip(const meter_sync_record *r, const char *what)
{
    json_t *j = proto_record_to_json(r);
    if (!CHECK(j != NULL, "%s: encodes", what))
        return;
    /* through text, as on the wire */
    char *text = json_dumps(j, JSON_COMPACT);
    json_t *back = json_loads(text, 0, NULL);
    meter_sync_record out;
    char err[PROTO_ERRMAX] = "";
    int rc = proto_record_from_json(back, &out, err);
    if (!CHECK_EQ_INT(rc, PROTO_OK, "%s: decodes", what))
        tap_diag("error: %s", err);
    CHECK(same_record(r, &out), "%s: decodes to the same record", what);
    free(text);
    json_decref(j);
    json_decref(back);
}

static void test_round_trips(void)
{
    meter_sync_record u = usage_rec();
    round_trip(&u, "usage");
    memset(u.session_id, 0, sizeof u.session_id);   /* manual records have none */
    u.cls = METER_CLASS_GENERAL;
    u.deductible = 0;
    u.daily = 1;
    round_trip(&u, "usage without session");
    meter_sync_record d = deduction_rec(0);
    round_trip(&d, "deduction from a pack");
    d = deduction_rec(1);
    round_trip(&d, "overage deduction");

    meter_sync_record s;
    memset(&s, 0, sizeof s);
    strcpy(s.kind, "settlement");
    strcpy(s.id, "abc-s1");
    strcpy(s.node, "node-a");
    strcpy(s.account, "default");
    strcpy(s.day, "2028-02-29");
    s.cls = METER_CLASS_TSC;
    strcpy(s.ttype, "TESHD-20.Audio");
    s.deductible = 1;
    s.billed_us = 5;
    s.at = 1;
    round_trip(&s, "settlement");

    meter_sync_record e;
    memset(&e, 0, sizeof e);
    strcpy(e.kind, "pack_event");
    strcpy(e.id, "abc-e1");
    strcpy(e.node, "node-a");
    strcpy(e.account, "team.b:eu");
    strcpy(e.pack_id, "pk:1.x_y");
    strcpy(e.action, "refund");
    e.at = 0;
    round_trip(&e, "pack event");
}

static void test_encoding_shape(void)
{
    meter_sync_record u = usage_rec();
    u.session_id[0] = '\0';
    json_t *j = proto_record_to_json(&u);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "class")), "tsc", "class is a name");
    CHECK(json_is_null(json_object_get(j, "session_id")), "empty session_id is null");
    CHECK(json_is_true(json_object_get(j, "deductible")), "deductible is a boolean");
    CHECK_EQ_I64(json_integer_value(json_object_get(j, "started_ms")), INT64_C(1795686000000),
                 "started_at travels as started_ms");
    CHECK_EQ_I64(json_integer_value(json_object_get(j, "at_ms")), INT64_C(1795686600000),
                 "at travels as at_ms");
    CHECK(json_object_get(j, "pack_id") == NULL, "usage carries no deduction fields");
    json_decref(j);

    meter_sync_record d = deduction_rec(1);
    j = proto_record_to_json(&d);
    CHECK(json_is_null(json_object_get(j, "pack_id")), "overage: pack_id null");
    CHECK(json_is_null(json_object_get(j, "before_us")), "overage: before_us null");
    CHECK(json_is_null(json_object_get(j, "after_us")), "overage: after_us null");
    json_decref(j);

    meter_sync_record bad = usage_rec();
    strcpy(bad.kind, "refund");
    CHECK(proto_record_to_json(&bad) == NULL, "an unknown kind does not encode");
    bad = usage_rec();
    strcpy(bad.job, "\xff\xfe");
    CHECK(proto_record_to_json(&bad) == NULL, "text that is not UTF-8 does not encode");
}

/* Decodes `base` after setting key to value (NULL value: delete key);
 * expects failure with `want` in the message, or success when want NULL. */
static void mutate(const meter_sync_record *base, const char *key, json_t *value,
                   const char *want, const char *name)
{
    json_t *j = proto_record_to_json(base);
    if (value)
        json_object_set_new(j, key, value);
    else
        json_object_del(j, key);
    meter_sync_record out;
    char err[PROTO_ERRMAX] = "";
    int rc = proto_record_from_json(j, &out, err);
    if (!want) {
        if (!CHECK_EQ_INT(rc, PROTO_OK, "%s: accepted", name))
            tap_diag("error: %s", err);
    } else if (CHECK_EQ_INT(rc, PROTO_EINVAL, "%s: refused", name)) {
        if (!CHECK(strstr(err, want) != NULL, "%s: the message names %s", name, want))
            tap_diag("message: %s", err);
        CHECK(strchr(err, '\n') == NULL, "%s: one line", name);
    }
    json_decref(j);
}

static void test_strict_decoding(void)
{
    meter_sync_record u = usage_rec();
    char long_job[METER_NAME_MAX + 1];
    memset(long_job, 'j', METER_NAME_MAX);
    long_job[METER_NAME_MAX] = '\0';

    mutate(&u, "width", json_string("1920"), "usage.width", "width as a string");
    mutate(&u, "width", json_integer(-1), "usage.width", "negative width");
    mutate(&u, "width", json_real(1280.0), "usage.width", "width as a real");
    mutate(&u, "width", json_integer(INT64_C(3000000000)), "usage.width", "width beyond int");
    mutate(&u, "duration_us", json_integer(0), "usage.duration_us", "zero duration");
    mutate(&u, "duration_us", json_integer(METER_DURATION_MAX_US + 1), "usage.duration_us",
           "duration beyond libmeter's maximum");
    mutate(&u, "billed_us", json_integer(-5), "usage.billed_us", "negative billed");
    mutate(&u, "class", json_string("GENERAL"), "usage.class", "class in capitals");
    mutate(&u, "class", json_integer(0), "usage.class", "class as a number");
    mutate(&u, "deductible", json_integer(1), "usage.deductible", "deductible as a number");
    mutate(&u, "day", json_string("2026-02-30"), "usage.day", "a day that does not exist");
    mutate(&u, "day", json_string("2026-1-01"), "usage.day", "a day without padding");
    mutate(&u, "job", NULL, "usage.job: missing", "job missing");
    mutate(&u, "job", json_string("a\nb"), "usage.job", "job with a newline");
    mutate(&u, "job", json_string(""), "usage.job", "empty job");
    mutate(&u, "job", json_string(long_job), "usage.job", "job of 128 bytes");
    mutate(&u, "job", json_stringn("a\0b", 3), "usage.job", "job with a NUL");
    mutate(&u, "state", json_string("Done!"), "usage.state", "state with odd characters");
    mutate(&u, "started_ms", json_null(), "usage.started_ms", "started_ms null");
    mutate(&u, "session_id", json_null(), NULL, "session_id null");
    mutate(&u, "session_id", json_string("a b"), "usage.session_id", "session_id with a blank");
    mutate(&u, "id", json_string("has space"), "record.id", "id with a blank");
    mutate(&u, "id", NULL, "record.id: missing", "id missing");
    /* ids have one shape, <prefix>-<kind letter><seq> (hardening finding 1) */
    mutate(&u, "id", json_string("0a1b2c3d4e5f6071-d42"), "record.id",
           "a usage record under a deduction's id");
    mutate(&u, "id", json_string("0a1b2c3d4e5f6071-u042"), "record.id", "a leading zero");
    mutate(&u, "id", json_string("0a1b-2c3d-u42"), "record.id", "no prefix has '-'");
    mutate(&u, "id", json_string("-u42"), "record.id", "an empty prefix");
    mutate(&u, "id", json_string("0a1b2c3d4e5f6071-u"), "record.id", "no sequence number");
    mutate(&u, "id", json_string("0a1b2c3d4e5f6071-u12345678901234567890"), "record.id",
           "a sequence number beyond int64");
    /* amounts bounded to what one record can be (finding 2) */
    mutate(&u, "billed_us", json_integer(INT64_MAX), "usage.billed_us", "INT64_MAX billed");
    mutate(&u, "billed_us", json_integer(METER_BILLED_MAX_US + 1), "usage.billed_us",
           "billed beyond METER_BILLED_MAX_US");
    mutate(&u, "billed_us", json_integer(METER_BILLED_MAX_US), NULL,
           "billed of exactly METER_BILLED_MAX_US");
    mutate(&u, "node", json_string("node/a"), "record.node", "node with a slash");
    mutate(&u, "at_ms", json_integer(-1), "record.at_ms", "negative time");
    mutate(&u, "at_ms", json_integer(PROTO_TIME_MAX_MS + 1), "record.at_ms", "time after 9999");
    mutate(&u, "kind", json_string("bogus"), "record.kind", "unknown kind");
    mutate(&u, "kind", NULL, "record.kind: missing", "kind missing");
    mutate(&u, "future_field", json_string("x"), NULL, "an unknown field is ignored");

    meter_sync_record d = deduction_rec(0);
    mutate(&d, "after_us", json_integer(59999999), "deduction.after_us",
           "after_us that does not add up");
    mutate(&d, "after_us", json_null(), "deduction.after_us", "pack deduction without after_us");
    mutate(&d, "amount_us", json_integer(0), "deduction.amount_us", "zero amount");
    mutate(&d, "pack_id", json_string("-"), "deduction.pack_id", "pack id \"-\"");
    mutate(&d, "before_us", json_integer(INT64_MAX), "deduction.before_us",
           "a balance no pack can hold");
    json_t *wrap = proto_record_to_json(&d);   /* the finding: 9.2e18 µs from a pack */
    json_object_set_new(wrap, "amount_us", json_integer(INT64_C(9200000000000000000)));
    json_object_set_new(wrap, "before_us", json_integer(INT64_C(9200000000000000000)));
    json_object_set_new(wrap, "after_us", json_integer(0));
    meter_sync_record wout;
    char werr[PROTO_ERRMAX];
    CHECK(proto_record_from_json(wrap, &wout, werr) == PROTO_EINVAL &&
          strstr(werr, "deduction.amount_us"), "a pack deduction of 9.2e18 µs: %s", werr);
    json_object_set_new(wrap, "amount_us", json_integer(METER_PACK_TOTAL_MAX_US + 1));
    json_object_set_new(wrap, "before_us", json_integer(METER_PACK_TOTAL_MAX_US + 1));
    CHECK(proto_record_from_json(wrap, &wout, werr) == PROTO_EINVAL,
          "a pack deduction beyond the largest pack: %s", werr);
    json_decref(wrap);
    d = deduction_rec(1);
    mutate(&d, "before_us", json_integer(5), "deduction.before_us",
           "overage with a balance");
    mutate(&d, "amount_us", json_integer(INT64_MAX), "deduction.amount_us",
           "INT64_MAX of overage");

    meter_sync_record e;
    memset(&e, 0, sizeof e);
    strcpy(e.kind, "pack_event");
    strcpy(e.id, "x-e1");
    strcpy(e.node, "n");
    strcpy(e.pack_id, "pk-1");
    strcpy(e.action, "freeze");
    mutate(&e, "action", json_string("delete"), "pack_event.action", "unknown action");

    /* a refused record still names its id, for the "rejected" list */
    json_t *j = proto_record_to_json(&u);
    json_object_set_new(j, "width", json_string("wide"));
    meter_sync_record out;
    char err[PROTO_ERRMAX];
    proto_record_from_json(j, &out, err);
    CHECK_EQ_STR(out.id, u.id, "the id is kept when a later field fails");
    json_decref(j);

    json_t *arr = json_array();
    CHECK_EQ_INT(proto_record_from_json(arr, &out, err), PROTO_EINVAL, "an array is no record");
    CHECK_EQ_INT(proto_record_from_json(NULL, &out, err), PROTO_EINVAL, "NULL is no record");
    json_decref(arr);
}

static void test_batch(void)
{
    meter_sync_record r[3] = { usage_rec(), deduction_rec(0), deduction_rec(1) };
    strcpy(r[2].id, "0a1b2c3d4e5f6071-d10");
    json_t *b = proto_batch_to_json("node-a", r, 3);
    const char *node;
    const json_t *recs;
    char err[PROTO_ERRMAX] = "";
    CHECK_EQ_INT(proto_batch_envelope(b, &node, &recs, err), PROTO_OK, "batch envelope");
    CHECK_EQ_STR(node, "node-a", "envelope node");
    CHECK_EQ_INT(json_array_size(recs), 3, "envelope records");
    json_object_set_new(b, "node", json_string("a b"));
    CHECK_EQ_INT(proto_batch_envelope(b, &node, &recs, err), PROTO_EINVAL, "bad node refused");
    CHECK(strstr(err, "batch.node") != NULL, "the message names batch.node");
    json_object_set_new(b, "node", json_string("node-a"));
    json_object_set_new(b, "records", json_object());
    CHECK_EQ_INT(proto_batch_envelope(b, &node, &recs, err), PROTO_EINVAL,
                 "records must be an array");
    json_t *big = json_array();
    for (int i = 0; i <= PROTO_MAX_BATCH; i++)
        json_array_append_new(big, json_object());
    json_object_set_new(b, "records", big);
    CHECK_EQ_INT(proto_batch_envelope(b, &node, &recs, err), PROTO_EINVAL,
                 "more than %d records refused", PROTO_MAX_BATCH);
    json_decref(b);

    /* the answer */
    proto_batch_result res;
    json_t *a = json_pack("{s:[s],s:[s],s:[{s:s,s:s}]}", "accepted", r[0].id, "duplicates",
                          r[1].id, "rejected", "id", r[2].id, "reason", "no\nsecond line");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_OK, "answer parses");
    CHECK_EQ_INT(res.n_accepted, 1, "one accepted");
    CHECK_EQ_STR(res.accepted[0], r[0].id, "accepted id");
    CHECK_EQ_STR(res.duplicates[0], r[1].id, "duplicate id");
    CHECK_EQ_STR(res.rejected[0].id, r[2].id, "rejected id");
    CHECK_EQ_STR(res.rejected[0].reason, "no", "the reason is cut to one line");
    proto_batch_result_free(&res);
    json_decref(a);

    a = json_pack("{s:[s],s:[],s:[]}", "accepted", r[0].id, "duplicates", "rejected");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_OK,
                 "ids left unlisted are allowed (sent again later)");
    proto_batch_result_free(&res);
    json_decref(a);

    a = json_pack("{s:[s],s:[s],s:[]}", "accepted", r[0].id, "duplicates", r[0].id, "rejected");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_EINVAL,
                 "an id in two lists is refused");
    CHECK(strstr(err, r[0].id) != NULL, "the message names the id");
    json_decref(a);

    a = json_pack("{s:[s],s:[],s:[]}", "accepted", "zz-not-sent", "duplicates", "rejected");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_EINVAL,
                 "an id that was not sent is refused");
    json_decref(a);

    a = json_pack("{s:[],s:[]}", "accepted", "duplicates");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_EINVAL,
                 "a missing list is refused");
    json_decref(a);

    a = json_pack("{s:[],s:[],s:[{s:s}]}", "accepted", "duplicates", "rejected", "id", r[1].id);
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_OK,
                 "a rejection without a reason parses");
    CHECK(res.n_rejected == 1 && res.rejected[0].reason[0], "and gets a reason");
    proto_batch_result_free(&res);
    json_decref(a);

    a = json_pack("{s:[i],s:[],s:[]}", "accepted", 5, "duplicates", "rejected");
    CHECK_EQ_INT(proto_batch_result_parse(a, r, 3, &res, err), PROTO_EINVAL,
                 "a number for an id is refused");
    json_decref(a);
}

static void test_packs(void)
{
    /* memset first: the round trip compares bytes, padding included (an
     * initializer need not zero the padding; the decoder memsets) */
    meter_remote_pack p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "pk-central-1");
    p.type = METER_CLASS_TSC;
    p.total_us = 600 * METER_US_PER_MIN;
    p.start = INT64_C(1795686600000);
    p.end = INT64_C(1827222600000);
    p.frozen = 1;
    json_t *j = proto_pack_to_json(&p);
    CHECK(json_is_null(json_object_get(j, "refunded_ms")), "not refunded: refunded_ms null");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "type")), "tsc", "type is a name");
    meter_remote_pack q;
    char err[PROTO_ERRMAX] = "";
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_OK, "pack decodes");
    CHECK(memcmp(&p, &q, sizeof p) == 0, "pack round trip");
    json_decref(j);

    p.refunded_at = INT64_C(1795686700000);
    p.frozen = 0;
    j = proto_pack_to_json(&p);
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_OK, "refunded pack decodes");
    CHECK_EQ_I64(q.refunded_at, p.refunded_at, "refunded_ms kept");
    json_object_set_new(j, "remaining_us", json_integer(1));   /* ledger extras */
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_OK, "extra fields are ignored");
    json_object_set_new(j, "end_ms", json_integer(p.start));
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_EINVAL, "end not after start");
    CHECK(strstr(err, "pack.end_ms") != NULL, "names pack.end_ms");
    json_object_set_new(j, "end_ms", json_integer(p.end));
    json_object_set_new(j, "total_us", json_integer(0));
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_EINVAL, "an empty pack is refused");
    json_object_set_new(j, "total_us", json_integer(p.total_us));
    json_object_set_new(j, "frozen", json_string("no"));
    CHECK_EQ_INT(proto_pack_from_json(j, &q, err), PROTO_EINVAL, "frozen must be a boolean");

    json_t *list = json_pack("{s:[o,{s:s}]}", "packs", proto_pack_to_json(&p), "id", "x");
    meter_remote_pack *ps;
    size_t n;
    CHECK_EQ_INT(proto_packs_from_json(list, &ps, &n, err), PROTO_EINVAL,
                 "one bad pack fails the list");
    CHECK(strstr(err, "packs[1]") != NULL, "the message names the index");
    json_decref(list);
    json_object_set_new(j, "frozen", json_true());
    list = json_pack("{s:[O,O]}", "packs", j, j);
    CHECK_EQ_INT(proto_packs_from_json(list, &ps, &n, err), PROTO_OK, "a list of packs");
    CHECK_EQ_INT(n, 2, "two packs");
    free(ps);
    json_decref(list);
    json_decref(j);
}

static void test_errors(void)
{
    for (int e = 0; e < PROTO_ERR_COUNT; e++) {
        CHECK_EQ_INT(proto_error_from_name(proto_error_name((proto_error)e)), e,
                     "code %s maps back", proto_error_name((proto_error)e));
        CHECK_EQ_INT(proto_error_for_status(proto_error_status((proto_error)e)), e,
                     "status %d maps back", proto_error_status((proto_error)e));
    }
    CHECK_EQ_INT(proto_error_status(PROTO_ERR_RATE_LIMITED), 429, "rate_limited is 429");
    CHECK_EQ_STR(proto_error_name(PROTO_ERR_UNSUPPORTED_MEDIA), "unsupported_media_type",
                 "415's name");
    CHECK_EQ_INT(proto_error_for_status(418), PROTO_ERR_BAD_REQUEST, "other 4xx: bad_request");
    CHECK_EQ_INT(proto_error_for_status(502), PROTO_ERR_UNAVAILABLE, "502: unavailable");
    CHECK_EQ_INT(proto_error_for_status(599), PROTO_ERR_INTERNAL, "other 5xx: internal");
    CHECK_EQ_INT(proto_error_from_name("nope"), -1, "unknown name");

    char *body = proto_error_body(PROTO_ERR_TOO_LARGE, "body over 4 MiB\nsecret detail");
    char code[32], msg[PROTO_ERRMAX];
    CHECK_EQ_INT(proto_error_parse(body, strlen(body), code, msg), PROTO_OK, "error body parses");
    CHECK_EQ_STR(code, "too_large", "code");
    CHECK_EQ_STR(msg, "body over 4 MiB", "message cut at the newline");
    free(body);
    body = proto_error_body(PROTO_ERR_CONFLICT, "\nonly a second line");
    CHECK(body && proto_error_parse(body, strlen(body), code, msg) == PROTO_OK &&
          !strcmp(msg, "conflict"), "a message whose first line is empty: the code's name (%s)",
          msg);
    free(body);

    char longmsg[400];
    memset(longmsg, 'x', sizeof longmsg);
    memcpy(longmsg + 250, "\xc3\xa9\xc3\xa9\xc3\xa9", 6);   /* é across the cut */
    longmsg[399] = '\0';
    body = proto_error_body(PROTO_ERR_INTERNAL, longmsg);
    CHECK(body && proto_error_parse(body, strlen(body), code, msg) == PROTO_OK,
          "a long message still makes a valid body");
    CHECK(strlen(msg) < PROTO_ERRMAX, "and is cut to fit");
    free(body);

    CHECK_EQ_INT(proto_error_parse("{\"accepted\":[]}", 15, code, msg), PROTO_EINVAL,
                 "not an error body");
    CHECK_EQ_INT(proto_error_parse("<html>", 6, code, msg), PROTO_EINVAL, "not JSON");
}

static void test_validators(void)
{
    CHECK(proto_valid_day("2028-02-29"), "2028-02-29 (leap)");
    CHECK(proto_valid_day("2000-02-29"), "2000-02-29 (leap, div 400)");
    CHECK(!proto_valid_day("2100-02-29"), "2100-02-29 (not leap)");
    CHECK(!proto_valid_day("2026-02-29"), "2026-02-29");
    CHECK(!proto_valid_day("2026-13-01"), "month 13");
    CHECK(!proto_valid_day("2026-11-26T"), "trailing text");
    CHECK(proto_valid_node("node-a.farm:1_x"), "node charset");
    CHECK(!proto_valid_node("node a"), "blank in node");
    CHECK(!proto_valid_node(""), "empty node");
    CHECK(!proto_valid_pack_id("-"), "pack id '-' (overage marker)");
    char id[METER_ID_MAX + 1];
    memset(id, 'a', METER_ID_MAX);
    id[METER_ID_MAX - 1] = '\0';
    CHECK(proto_valid_record_id(id), "record id of %d bytes", METER_ID_MAX - 1);
    id[METER_ID_MAX - 1] = 'a';
    id[METER_ID_MAX] = '\0';
    CHECK(!proto_valid_record_id(id), "record id of %d bytes", METER_ID_MAX);

    char prefix[METER_ID_MAX] = "";
    CHECK(proto_record_id_prefix("0a1b2c3d4e5f6071-u42", "usage", prefix) &&
          !strcmp(prefix, "0a1b2c3d4e5f6071"), "the prefix of a usage id: %s", prefix);
    CHECK(proto_record_id_prefix("n0-e7", "pack_event", NULL), "a pack event's id (e)");
    CHECK(proto_record_id_prefix("n0-s7", NULL, NULL), "any kind when none is given");
    CHECK(!proto_record_id_prefix("n0-s7", "usage", NULL), "a settlement id is no usage id");
    CHECK(!proto_record_id_prefix("n0-j7", NULL, NULL), "a session id (j) is no record id");
    CHECK(!proto_record_id_prefix("n0-u0", NULL, NULL), "sequence 0 (leading zero)");
    CHECK(!proto_record_id_prefix("n0-u7x", NULL, NULL), "trailing text");
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_signing(void)
{
    char h[65];
    CHECK_EQ_INT(proto_body_hash("abc", 3, h), PROTO_OK, "hash");
    CHECK_EQ_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 "SHA-256(\"abc\") (FIPS 180-2)");
    proto_body_hash(NULL, 0, h);
    CHECK_EQ_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 "SHA-256 of the empty body");

    /* the string to sign exactly as PROTOCOL.md spells it */
    const char *body = "{\"node\":\"node-a\",\"records\":[]}";
    const char *nonce = "3f1c9a0b5d2e4f60";
    char sts[512], bh[65], want[65], sig[65];
    proto_body_hash(body, strlen(body), bh);
    snprintf(sts, sizeof sts, "POST\n/v1/usage/batch\n1795686600\n%s\n%s", nonce, bh);
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), "s3cr3t", 6, (const unsigned char *)sts, strlen(sts), mac, &len);
    hex(mac, 32, want);
    CHECK_EQ_INT(proto_sign("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                            strlen(body), sig), PROTO_OK, "sign");
    CHECK_EQ_STR(sig, want, "signature = HMAC-SHA256 over the documented string");

    CHECK(proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                       strlen(body), sig), "verify accepts the signature");
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)toupper((unsigned char)sig[i]);
    CHECK(proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                       strlen(body), upper), "verify accepts uppercase hex");
    CHECK(!proto_verify("s3cr3u", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body), sig), "another secret");
    CHECK(!proto_verify("s3cr3t", "GET", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body), sig), "another method");
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch?x", 1795686600, nonce, body,
                        strlen(body), sig), "another path");
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686601, nonce, body,
                        strlen(body), sig), "another time");
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, "3f1c9a0b5d2e4f61",
                        body, strlen(body), sig), "another nonce");
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body) - 1, sig), "another body");
    sig[63] = '\0';
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body), sig), "a short signature");
    sig[62] = 'g';
    sig[63] = '0';
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body), sig), "a signature that is not hex");
    CHECK(!proto_verify("s3cr3t", "POST", "/v1/usage/batch", 1795686600, nonce, body,
                        strlen(body), NULL), "no signature");
    CHECK_EQ_INT(proto_sign("", "GET", "/", 1, nonce, NULL, 0, sig), PROTO_EINVAL,
                 "an empty secret cannot sign");

    CHECK(proto_time_ok(1000, 1300), "300 s behind is in the window");
    CHECK(proto_time_ok(1600, 1300), "300 s ahead is in the window");
    CHECK(!proto_time_ok(999, 1300), "301 s behind is not");
    CHECK(!proto_time_ok(1601, 1300), "301 s ahead is not");
    CHECK(!proto_time_ok(INT64_MIN, 1300), "INT64_MIN is not");
    CHECK(!proto_time_ok(INT64_MAX, 1300), "INT64_MAX is not");

    char n1[33], n2[33];
    CHECK_EQ_INT(proto_nonce(n1), PROTO_OK, "nonce");
    proto_nonce(n2);
    CHECK_EQ_INT(strlen(n1), 32, "nonce: 32 hex chars");
    CHECK(proto_valid_nonce(n1), "own nonce is valid");
    CHECK(strcmp(n1, n2) != 0, "two nonces differ");
    CHECK(!proto_valid_nonce("0123456789abcde"), "15 chars");
    CHECK(!proto_valid_nonce("gggggggggggggggg"), "not hex");
    char n65[66];
    memset(n65, 'a', 65);
    n65[65] = '\0';
    CHECK(!proto_valid_nonce(n65), "65 chars");

    CHECK(proto_ct_streq("abc", "abc"), "ct: equal");
    CHECK(!proto_ct_streq("abc", "abd"), "ct: differ");
    CHECK(!proto_ct_streq("abc", "abcd"), "ct: lengths differ");
    CHECK(!proto_ct_streq(NULL, "a"), "ct: NULL");
    CHECK(proto_ct_equal("", 0, "", 0), "ct: empty equals empty");
}

/* Decodes text; returns the rc and leaves the message in err. */
static int decode_text(const char *text, meter_sync_record *out, char err[PROTO_ERRMAX])
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j)
        return 99;
    int rc = proto_record_from_json(j, out, err);
    json_decref(j);
    return rc;
}

static void test_accounts_on_records(void)
{
    meter_sync_record r;
    char err[PROTO_ERRMAX] = "";
    /* an older node sends no account: it is the default one */
    int rc = decode_text("{\"kind\":\"pack_event\",\"id\":\"ab-e1\",\"node\":\"n\","
                         "\"at_ms\":1,\"pack_id\":\"pk-1\",\"action\":\"freeze\"}", &r, err);
    CHECK_EQ_INT(rc, PROTO_OK, "a record without account decodes (%s)", err);
    CHECK_EQ_STR(r.account, "default", "a record without account is account default");
    rc = decode_text("{\"kind\":\"pack_event\",\"id\":\"ab-e1\",\"node\":\"n\","
                     "\"account\":\"a/b\",\"at_ms\":1,\"pack_id\":\"pk-1\","
                     "\"action\":\"freeze\"}", &r, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "an account name with '/' is refused");
    CHECK(strstr(err, "record.account") != NULL, "the error names record.account: %s", err);
    rc = decode_text("{\"kind\":\"pack_event\",\"id\":\"ab-e1\",\"node\":\"n\","
                     "\"account\":7,\"at_ms\":1,\"pack_id\":\"pk-1\",\"action\":\"freeze\"}",
                     &r, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a non-string account is refused");

    /* an empty account in a struct goes out as the default one */
    meter_sync_record u = usage_rec();
    u.account[0] = '\0';
    json_t *j = proto_record_to_json(&u);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "account")), "default",
                 "an empty account is sent as default");
    json_decref(j);

    /* a deduction from a lease slice */
    meter_sync_record d = deduction_rec(0);
    strcpy(d.lease_id, "0a1b2c3d4e5f6071-l3");
    round_trip(&d, "deduction from a lease");
    j = proto_record_to_json(&d);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "lease_id")), "0a1b2c3d4e5f6071-l3",
                 "lease_id is on the wire");
    json_object_set_new(j, "lease_id", json_string("0a1b2c3d4e5f6071-u3"));
    rc = proto_record_from_json(j, &r, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a lease_id that is not a lease id is refused");
    CHECK(strstr(err, "deduction.lease_id") != NULL, "the error names lease_id: %s", err);
    json_decref(j);
    meter_sync_record o = deduction_rec(1);
    strcpy(o.lease_id, "0a1b2c3d4e5f6071-l3");
    j = proto_record_to_json(&o);
    rc = proto_record_from_json(j, &r, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "an overage deduction naming a lease is refused (%s)", err);
    json_decref(j);
    d = deduction_rec(0);
    j = proto_record_to_json(&d);
    CHECK(json_object_get(j, "lease_id") == NULL, "no lease_id for an own pack");
    json_decref(j);
    char prefix[METER_ID_MAX];
    CHECK(proto_record_id_prefix("ab12-l7", "lease", prefix) && !strcmp(prefix, "ab12"),
          "lease ids are in the node's namespace");
    CHECK(!proto_record_id_prefix("ab12-u7", "lease", NULL), "a usage id is not a lease id");
}

static proto_lease sample_lease(void)
{
    proto_lease l;
    memset(&l, 0, sizeof l);
    strcpy(l.id, "3fa9c0-l12");
    strcpy(l.node, "node-a");
    strcpy(l.account, "acme");
    l.cls = METER_CLASS_TSC;
    strcpy(l.state, "open");
    l.requested_us = INT64_C(600000000);
    l.granted_us = INT64_C(500000000);
    l.created_ms = INT64_C(1795686600000);
    l.expires_ms = INT64_C(1795686900000);
    l.ttl_ms = 300000;
    l.nslices = 2;
    strcpy(l.slices[0].pack_id, "pk-1");
    l.slices[0].granted_us = INT64_C(400000000);
    l.slices[0].posted_us = INT64_C(100);
    l.slices[0].start_ms = INT64_C(1795000000000);
    l.slices[0].end_ms = INT64_C(1826536000000);
    strcpy(l.slices[1].pack_id, "pk-2");
    l.slices[1].granted_us = INT64_C(100000000);
    l.slices[1].start_ms = INT64_C(1795000000001);
    l.slices[1].end_ms = INT64_C(1826536000001);
    l.slices[1].voided = 1;
    return l;
}

static void test_leases(void)
{
    char err[PROTO_ERRMAX] = "";
    proto_lease l = sample_lease(), back;
    json_t *j = proto_lease_to_json(&l);
    char *text = json_dumps(j, JSON_COMPACT);
    json_t *again = json_loads(text, 0, NULL);
    int rc = proto_lease_from_json(again, &back, err);
    CHECK_EQ_INT(rc, PROTO_OK, "a lease decodes (%s)", err);
    CHECK(memcmp(&l, &back, sizeof l) == 0, "a lease round-trips exactly");
    CHECK(json_is_null(json_object_get(j, "resolved_ms")), "an open lease has resolved_ms null");
    json_t *wrapped = json_pack("{s:O}", "lease", j);
    rc = proto_lease_from_json(wrapped, &back, err);
    CHECK_EQ_INT(rc, PROTO_OK, "{\"lease\": LEASE} decodes too");
    json_decref(wrapped);
    free(text);
    json_decref(again);

    json_object_set_new(j, "granted_us", json_integer(500000001));
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "granted_us other than the slices' sum is refused");
    CHECK(strstr(err, "lease.granted_us") != NULL, "names granted_us: %s", err);
    json_object_set_new(j, "granted_us", json_integer(500000000));
    json_object_set_new(j, "state", json_string("released"));
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a released lease without resolved_ms is refused");
    json_object_set_new(j, "resolved_ms", json_integer(1795686700000));
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_OK, "a released lease with resolved_ms decodes (%s)", err);
    json_object_set_new(j, "state", json_string("pending"));
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "an unknown state is refused");
    json_decref(j);

    l = sample_lease();
    l.slices[0].posted_us = l.slices[0].granted_us + 1;
    j = proto_lease_to_json(&l);
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a slice posted beyond its grant is refused");
    CHECK(strstr(err, "slices[0].posted_us") != NULL, "names the slice: %s", err);
    json_decref(j);
    l = sample_lease();
    strcpy(l.slices[1].pack_id, "pk-1");
    j = proto_lease_to_json(&l);
    rc = proto_lease_from_json(j, &back, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a pack twice in one lease is refused");
    json_decref(j);

    proto_lease_request q = { "3fa9c0-l12", "acme", METER_CLASS_GENERAL, 600000000 }, qb;
    j = proto_lease_request_to_json(&q);
    rc = proto_lease_request_from_json(j, &qb, err);
    CHECK(rc == PROTO_OK && memcmp(&q, &qb, sizeof q) == 0, "a lease request round-trips");
    json_object_set_new(j, "want_us", json_integer(0));
    rc = proto_lease_request_from_json(j, &qb, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "want_us 0 is refused");
    json_object_set_new(j, "want_us", json_integer(METER_PACK_TOTAL_MAX_US + 1));
    rc = proto_lease_request_from_json(j, &qb, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "want_us beyond the largest pack is refused");
    json_object_set_new(j, "want_us", json_integer(1));
    json_object_set_new(j, "id", json_string("3fa9c0-u12"));
    rc = proto_lease_request_from_json(j, &qb, err);
    CHECK_EQ_INT(rc, PROTO_EINVAL, "a request id that is not a lease id is refused");
    CHECK(strstr(err, "lease.id") != NULL, "names lease.id: %s", err);
    json_decref(j);
}

int main(void)
{
    test_accounts_on_records();
    test_leases();
    test_round_trips();
    test_encoding_shape();
    test_strict_decoding();
    test_batch();
    test_packs();
    test_errors();
    test_validators();
    test_signing();
    return done_testing();
}
