/*
 * fuzz_protocol.c — the sync protocol's decoders (sync/protocol.c) on
 * bodies from the network, both ways:
 *
 *   ledger side  proto_batch_envelope + proto_record_from_json on a batch
 *                body (parsed as the ledger does, duplicate keys refused);
 *   node side    proto_packs_from_json (the packs answer),
 *                proto_batch_result_parse (the batch answer) against the
 *                ids the input's "sent" array names (or a fixed set),
 *                proto_error_parse on the raw bytes (any error body),
 *                proto_lease_from_json (a lease answer);
 *   both         proto_lease_request_from_json (a lease request).
 *
 * Beyond "no crash", it checks what the decoders promise: a record or pack
 * that decodes survives encode → decode unchanged; a batch answer that
 * parses lists only ids that were sent, each once; an error body built
 * from the input's first line parses back to that line.
 *
 * The input is one JSON document (seeds: tests/fuzz/corpus/protocol/).
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_util.h"
#include "protocol.h"

static void check_record_roundtrip(const meter_sync_record *r)
{
    json_t *j = proto_record_to_json(r);
    /* every decoded string is valid UTF-8 and a known kind: it encodes */
    fuzz_check(j != NULL, "record %s decoded but does not encode", r->id);
    char err[PROTO_ERRMAX];
    meter_sync_record back;
    int rc = proto_record_from_json(j, &back, err);
    fuzz_check(rc == PROTO_OK, "record %s does not decode after encoding: %s", r->id, err);
    fuzz_check(memcmp(&back, r, sizeof back) == 0, "record %s changed in a round trip", r->id);
    json_decref(j);
}

static void fuzz_batch(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    const char *node;
    const json_t *records;
    char err[PROTO_ERRMAX];
    if (proto_batch_envelope(j, &node, &records, err) == PROTO_OK) {
        fuzz_check(proto_valid_node(node), "envelope took node '%s'", node);
        for (size_t i = 0; i < json_array_size(records); i++) {
            meter_sync_record r;
            memset(&r, 0xA5, sizeof r);   /* the decoder must clear it all */
            if (proto_record_from_json(json_array_get(records, i), &r, err) == PROTO_OK)
                check_record_roundtrip(&r);
            else
                fuzz_check(strlen(err) > 0 && !strchr(err, '\n'),
                           "a refusal needs a one-line reason");
        }
    } else {
        fuzz_check(strlen(err) > 0, "envelope refused without a reason");
    }
    json_decref(j);
}

static void fuzz_packs(const json_t *j)
{
    meter_remote_pack *p = NULL;
    size_t n = 0;
    char err[PROTO_ERRMAX];
    if (proto_packs_from_json(j, &p, &n, err) != PROTO_OK) {
        fuzz_check(p == NULL && n == 0, "a refused pack list left output");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fuzz_check(p[i].end > p[i].start && p[i].total_us > 0, "pack %s out of range", p[i].id);
        json_t *o = proto_pack_to_json(&p[i]);
        fuzz_check(o != NULL, "pack %s decoded but does not encode", p[i].id);
        meter_remote_pack back;
        fuzz_check(proto_pack_from_json(o, &back, err) == PROTO_OK,
                   "pack %s does not decode after encoding: %s", p[i].id, err);
        fuzz_check(memcmp(&back, &p[i], sizeof back) == 0, "pack %s changed in a round trip",
                   p[i].id);
        json_decref(o);
    }
    free(p);
}

/* The ids the harness "sent": the input's "sent" array when it has one
 * (so the fuzzer can make answers that match), else a fixed few. */
static size_t sent_ids(const json_t *j, meter_sync_record *sent, size_t cap)
{
    static const char *const fixed[] = { "n1-u1", "n1-u2", "n1-d3", "n1-s4", "n1-p5" };
    const json_t *a = json_object_get(j, "sent");
    size_t n = 0;
    if (json_is_array(a)) {
        for (size_t i = 0; i < json_array_size(a) && n < cap; i++) {
            const char *s = json_string_value(json_array_get(a, i));
            if (s && proto_valid_record_id(s))
                snprintf(sent[n++].id, sizeof sent->id, "%s", s);
        }
        return n;
    }
    for (; n < sizeof fixed / sizeof *fixed; n++)
        snprintf(sent[n].id, sizeof sent->id, "%s", fixed[n]);
    return n;
}

static int was_sent(const char *id, const meter_sync_record *sent, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(sent[i].id, id) == 0)
            return 1;
    return 0;
}

static void fuzz_batch_result(const json_t *j)
{
    static meter_sync_record sent[64];
    memset(sent, 0, sizeof sent);
    size_t n_sent = sent_ids(j, sent, 64);
    proto_batch_result res;
    char err[PROTO_ERRMAX];
    if (proto_batch_result_parse(j, sent, n_sent, &res, err) == PROTO_OK) {
        /* every listed id was sent and is listed once */
        const char *seen[64];
        size_t nseen = 0;
        size_t total = res.n_accepted + res.n_duplicates + res.n_rejected;
        fuzz_check(total <= n_sent, "answer lists %zu ids for %zu sent", total, n_sent);
        for (size_t l = 0; l < 3; l++) {
            size_t cnt = l == 0 ? res.n_accepted : l == 1 ? res.n_duplicates : res.n_rejected;
            for (size_t i = 0; i < cnt; i++) {
                const char *id = l == 0 ? res.accepted[i] : l == 1 ? res.duplicates[i]
                                                                   : res.rejected[i].id;
                fuzz_check(was_sent(id, sent, n_sent), "answer lists unsent id %s", id);
                for (size_t k = 0; k < nseen; k++)
                    fuzz_check(strcmp(seen[k], id) != 0, "answer lists %s twice", id);
                seen[nseen++] = id;
                if (l == 2)
                    fuzz_check(res.rejected[i].reason[0] &&
                               !strpbrk(res.rejected[i].reason, "\r\n"),
                               "rejection of %s without a one-line reason", id);
            }
        }
    }
    proto_batch_result_free(&res);
}

/* An error body made from the input's first line parses back to it. */
static void fuzz_error_roundtrip(const uint8_t *data, size_t size)
{
    char msg[600];
    size_t n = size < sizeof msg - 1 ? size : sizeof msg - 1;
    memcpy(msg, data, n);
    msg[n] = '\0';
    proto_error e = (proto_error)(size % PROTO_ERR_COUNT);
    char *body = proto_error_body(e, msg);
    fuzz_check(body != NULL, "no error body for a message");
    char code[32], back[PROTO_ERRMAX];
    fuzz_check(proto_error_parse(body, strlen(body), code, back) == PROTO_OK,
               "our own error body does not parse: %s", body);
    fuzz_check(strcmp(code, proto_error_name(e)) == 0, "code %s became %s",
               proto_error_name(e), code);
    fuzz_check(!strpbrk(back, "\r\n"), "error message is not one line");
    /* what was sent: the first line, or when that is too long a prefix of
     * it cut before a UTF-8 continuation byte; the code's name when that
     * line is empty;
     * a stand-in when the (cut) line is not UTF-8 */
    size_t line = strcspn(msg, "\r\n");
    if (line == 0)   /* empty, or starting with a line break: the code's name */
        fuzz_check(strcmp(back, proto_error_name(e)) == 0, "message with an empty first line "
                   "became '%s'", back);
    else if (strcmp(back, "(message not valid UTF-8)") != 0)
        fuzz_check(strlen(back) <= line && strncmp(back, msg, strlen(back)) == 0 &&
                   (strlen(back) == line || line >= PROTO_ERRMAX),
                   "message '%.*s' came back as '%s'", (int)line, msg, back);
    free(body);
    (void)proto_error_from_name(code);
}

/* Lease answers (node side) and lease requests (ledger side): what
 * decodes survives encode → decode unchanged. */
static void fuzz_leases(const json_t *j)
{
    char err[PROTO_ERRMAX];
    static proto_lease l, back;   /* 64 slices: too big for a fuzzer's stack */
    memset(&l, 0xA5, sizeof l);
    if (proto_lease_from_json(j, &l, err) == PROTO_OK) {
        json_t *e = proto_lease_to_json(&l);
        fuzz_check(e != NULL, "lease %s decoded but does not encode", l.id);
        fuzz_check(proto_lease_from_json(e, &back, err) == PROTO_OK,
                   "lease %s does not decode after encoding: %s", l.id, err);
        fuzz_check(memcmp(&l, &back, sizeof l) == 0, "lease %s changed in a round trip", l.id);
        json_decref(e);
    } else {
        fuzz_check(strlen(err) > 0 && !strchr(err, '\n'), "a lease refusal needs one line");
    }
    proto_lease_request q, qb;
    memset(&q, 0xA5, sizeof q);
    if (proto_lease_request_from_json(j, &q, err) == PROTO_OK) {
        json_t *e = proto_lease_request_to_json(&q);
        fuzz_check(e != NULL, "lease request %s does not encode", q.id);
        fuzz_check(proto_lease_request_from_json(e, &qb, err) == PROTO_OK &&
                   memcmp(&q, &qb, sizeof q) == 0, "lease request %s changed in a round trip",
                   q.id);
        json_decref(e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_batch(data, size);

    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    fuzz_packs(j);
    fuzz_batch_result(j);
    fuzz_leases(j);
    json_decref(j);

    char code[32], message[PROTO_ERRMAX];
    if (proto_error_parse((const char *)data, size, code, message) == PROTO_OK) {
        fuzz_check(strlen(code) < sizeof code && !strpbrk(message, "\r\n"),
                   "error parse broke its bounds");
        (void)proto_error_from_name(code);
    }
    fuzz_error_roundtrip(data, size);
    return 0;
}
