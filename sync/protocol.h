/*
 * protocol.h — the wire contract of sync protocol v1, shared by the node
 * client (sync/) and the ledger (ledger/).  PROTOCOL.md is the prose;
 * this header is the one place for names, limits, the record and pack JSON
 * codecs, request signing and error bodies.
 *
 * JSON is jansson, hashing/HMAC/randomness is OpenSSL libcrypto.  Every
 * function is thread-safe (no global state) and never aborts on bad input:
 * decoders return PROTO_OK or PROTO_EINVAL with a one-line message naming
 * the offending field in `err` (PROTO_ERRMAX bytes).
 *
 * Implemented in sync/protocol.c alone (needs jansson + libcrypto, not
 * libcurl): the ledger compiles that one file, or links
 * $(BUILD)/libmetersync.a, which pulls in only the objects it uses.
 */
#ifndef METER_SYNC_PROTOCOL_H
#define METER_SYNC_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- names -- */

#define PROTO_VERSION        1
#define PROTO_API_PREFIX     "/v1"
#define PROTO_PATH_BATCH     "/v1/usage/batch"
#define PROTO_PATH_NODE_PACKS_FMT "/v1/nodes/%s/packs"   /* node name */
#define PROTO_PATH_LEASES    "/v1/leases"
#define PROTO_PATH_LEASE_RENEW_FMT   "/v1/leases/%s/renew"     /* lease id */
#define PROTO_PATH_LEASE_RELEASE_FMT "/v1/leases/%s/release"
#define PROTO_PATH_HEALTHZ   "/healthz"
#define PROTO_PATH_METRICS   "/metrics"

#define PROTO_HDR_NODE       "X-Meter-Node"
#define PROTO_HDR_TIME       "X-Meter-Time"
#define PROTO_HDR_NONCE      "X-Meter-Nonce"
#define PROTO_HDR_SIGNATURE  "X-Meter-Signature"
#define PROTO_HDR_AUTH       "Authorization"
#define PROTO_BEARER_PREFIX  "Bearer "
#define PROTO_HDR_RETRY_AFTER "Retry-After"
#define PROTO_CONTENT_TYPE   "application/json"

/* ------------------------------------------------------------ limits -- */

#define PROTO_MAX_BODY       (4 * 1024 * 1024)  /* bytes; 413 beyond */
#define PROTO_MAX_BATCH      1000               /* records; 413 beyond */
#define PROTO_TIME_WINDOW_S  300                /* |ledger clock − X-Meter-Time| */
#define PROTO_NONCE_MIN      16                 /* hex chars */
#define PROTO_NONCE_MAX      64
#define PROTO_SIG_HEXLEN     64                 /* hex(HMAC-SHA256) */
#define PROTO_ERRMAX         256                /* == METER_ERRMAX */
/* Amounts on the wire: duration_us ≤ METER_DURATION_MAX_US; billed_us
 * and amount_us ≤ METER_BILLED_MAX_US; a pack deduction's amount_us,
 * before_us and after_us ≤ METER_PACK_TOTAL_MAX_US (meter.h). */
/* Largest time accepted on the wire: 9999-12-31T23:59:59.999Z in ms. */
#define PROTO_TIME_MAX_MS    INT64_C(253402300799999)

enum proto_rc {
    PROTO_OK      = 0,
    PROTO_EINVAL  = -1,   /* malformed input (err says which field) */
    PROTO_ENOMEM  = -2,
    PROTO_ECRYPTO = -3,   /* libcrypto failed */
};

/* ------------------------------------------------------- error codes -- */

/* The "code" strings of error bodies and their HTTP status. */
typedef enum proto_error {
    PROTO_ERR_BAD_REQUEST = 0,       /* 400 */
    PROTO_ERR_UNAUTHORIZED,          /* 401 */
    PROTO_ERR_FORBIDDEN,             /* 403 */
    PROTO_ERR_NOT_FOUND,             /* 404 */
    PROTO_ERR_CONFLICT,              /* 409 */
    PROTO_ERR_TOO_LARGE,             /* 413 */
    PROTO_ERR_UNSUPPORTED_MEDIA,     /* 415 "unsupported_media_type" */
    PROTO_ERR_REFUSED,               /* 422 */
    PROTO_ERR_RATE_LIMITED,          /* 429 (+ Retry-After) */
    PROTO_ERR_INTERNAL,              /* 500 */
    PROTO_ERR_UNAVAILABLE,           /* 503 (+ Retry-After) */
    PROTO_ERR_COUNT
} proto_error;

const char *proto_error_name(proto_error e);      /* "bad_request", … */
int proto_error_status(proto_error e);            /* 400, … */
/* The code for a name; -1 when unknown. */
int proto_error_from_name(const char *name);
/* The code a status maps to (unknown 4xx → bad_request, 5xx → internal). */
proto_error proto_error_for_status(int status);

/* {"error": {"code": NAME, "message": MESSAGE}} as a new json_t (NULL on
 * ENOMEM) or as a malloc'd compact string (free()).  The message is cut to
 * one line (a newline or CR ends it). */
json_t *proto_error_json(proto_error e, const char *message);
char *proto_error_body(proto_error e, const char *message);
/* Parses an error body.  code/message get "" when absent; returns
 * PROTO_EINVAL when the body is not an error object at all. */
int proto_error_parse(const char *body, size_t len,
                      char code[32], char message[PROTO_ERRMAX]);

/* -------------------------------------------------- value validators -- */

/* Node names and pack ids on the wire: 1…METER_NAME_MAX−1 bytes of
 * [A-Za-z0-9._:-] (so they need no escaping in paths); pack ids also not
 * "-".  Record ids: 1…METER_ID_MAX−1 bytes of the same set. */
int proto_valid_node(const char *s);
int proto_valid_pack_id(const char *s);
int proto_valid_record_id(const char *s);
/* Record ids have one shape: "<prefix>-<k><seq>", where prefix is the
 * node database's node_id (no '-' in it), k the kind's letter (u usage,
 * d deduction, s settlement, e pack_event) and seq a decimal number
 * without leading zeros.  The prefix is the id's namespace: the ledger
 * binds each prefix to one node.  Returns 1 when id has that shape (for
 * `kind`, or any kind when NULL) and copies the prefix to `prefix` (may be
 * NULL); 0 otherwise. */
int proto_record_id_prefix(const char *id, const char *kind, char prefix[METER_ID_MAX]);
/* "YYYY-MM-DD", a real calendar date. */
int proto_valid_day(const char *s);
/* 16…64 lowercase or uppercase hex digits. */
int proto_valid_nonce(const char *s);

/* ----------------------------------------------------------- records -- */

/* One outbox record as JSON (PROTOCOL.md, RECORD).  Fields a kind does not
 * use are left out; empty session_id / overage pack_id become null.  NULL
 * on ENOMEM or an unknown kind. */
json_t *proto_record_to_json(const meter_sync_record *r);

/* Strict decode: the kind's required fields with the right types and
 * ranges; unknown fields are ignored.  outbox_seq is 0.  On error returns
 * PROTO_EINVAL and err names the field ("usage.width: must be an
 * integer", "record.kind: missing").  A record id, when it could be read, is copied to
 * out->id even on error so the ledger can name it in "rejected". */
int proto_record_from_json(const json_t *j, meter_sync_record *out,
                           char err[PROTO_ERRMAX]);

/* {"node": node, "records": [...]} for n records (NULL on ENOMEM). */
json_t *proto_batch_to_json(const char *node, const meter_sync_record *r, size_t n);

/* Splits a batch body: *node and *records point into j (not copied).
 * Checks the envelope only (object, "node" valid, "records" an array of
 * at most PROTO_MAX_BATCH); each record is decoded separately. */
int proto_batch_envelope(const json_t *j, const char **node,
                         const json_t **records, char err[PROTO_ERRMAX]);

/* The 200 answer to a batch. */
typedef struct proto_rejected {
    char id[METER_ID_MAX];
    char reason[PROTO_ERRMAX];
} proto_rejected;

typedef struct proto_batch_result {
    char (*accepted)[METER_ID_MAX];
    size_t n_accepted;
    char (*duplicates)[METER_ID_MAX];
    size_t n_duplicates;
    proto_rejected *rejected;
    size_t n_rejected;
} proto_batch_result;

/* Parses and checks a batch answer against the ids that were sent: every
 * id listed must have been sent and appear in exactly one list.  Ids sent
 * but listed nowhere are allowed (the client resends them later).  Free
 * with proto_batch_result_free (also after an error). */
int proto_batch_result_parse(const json_t *j, const meter_sync_record *sent, size_t n_sent,
                             proto_batch_result *out, char err[PROTO_ERRMAX]);
void proto_batch_result_free(proto_batch_result *r);

/* ------------------------------------------------------------- packs -- */

/* {"id","type","total_us","start_ms","end_ms","frozen","refunded_ms"}
 * (refunded_ms null when not refunded).  The ledger may add fields. */
json_t *proto_pack_to_json(const meter_remote_pack *p);
int proto_pack_from_json(const json_t *j, meter_remote_pack *out, char err[PROTO_ERRMAX]);

/* {"packs": [...]} → array of packs (malloc'd, free()); strict: one bad
 * pack fails the whole list with the index in err. */
int proto_packs_from_json(const json_t *j, meter_remote_pack **out, size_t *n,
                          char err[PROTO_ERRMAX]);

/* ------------------------------------------------------------ leases -- */
/*
 * A lease reserves pack minutes of one account and class for one node
 * (PROTOCOL.md, "Leases").  Lease ids are in the node's id namespace:
 * "<node_id>-l<seq>" (proto_record_id_prefix with kind "lease").
 */

#define PROTO_LEASE_SLICES_MAX 64   /* packs one lease may span */

/* POST /v1/leases: {"id", "account", "class", "want_us"}. */
typedef struct proto_lease_request {
    char id[METER_ID_MAX];
    char account[METER_NAME_MAX];
    meter_class cls;
    int64_t want_us;                /* 1 … METER_PACK_TOTAL_MAX_US */
} proto_lease_request;

json_t *proto_lease_request_to_json(const proto_lease_request *q);
int proto_lease_request_from_json(const json_t *j, proto_lease_request *out,
                                  char err[PROTO_ERRMAX]);

/* One pack's part of a lease. */
typedef struct proto_lease_slice {
    char pack_id[METER_NAME_MAX];
    int64_t granted_us;             /* reserved from the pack for this lease */
    int64_t posted_us;              /* of which usage has been posted */
    int64_t start_ms, end_ms;       /* the pack's validity */
    int voided;                     /* 1: the pack was frozen or refunded; the
                                       unposted rest went back to it */
} proto_lease_slice;

/* LEASE: what the ledger answers to a request, a renewal or a release. */
typedef struct proto_lease {
    char id[METER_ID_MAX];
    char node[METER_NAME_MAX];
    char account[METER_NAME_MAX];
    meter_class cls;
    char state[12];                 /* open | released | expired */
    int64_t requested_us, granted_us;
    int64_t created_ms, expires_ms; /* the ledger's clock */
    int64_t ttl_ms;                 /* expires_ms − the ledger's now when it
                                       answered: the node's own clock counts it */
    int64_t resolved_ms;            /* 0 while open */
    size_t nslices;
    proto_lease_slice slices[PROTO_LEASE_SLICES_MAX];
} proto_lease;

/* {"lease": LEASE} (or LEASE alone with proto_lease_to_json). */
json_t *proto_lease_to_json(const proto_lease *l);
/* Strict: every field, Σ slices' granted_us = granted_us, posted ≤ granted
 * per slice.  Accepts LEASE or {"lease": LEASE}. */
int proto_lease_from_json(const json_t *j, proto_lease *out, char err[PROTO_ERRMAX]);

/* --------------------------------------------------------- signing -- */

/* hex(SHA-256(body)) into out (65 bytes); len 0 (body may be NULL) gives
 * the empty-body hash. */
int proto_body_hash(const void *body, size_t len, char out_hex[65]);

/* hex(HMAC-SHA256(secret, METHOD\nPATH_WITH_QUERY\nTIME\nNONCE\nhex(SHA-256(body)))).
 * path_with_query is exactly as sent on the request line (not decoded). */
int proto_sign(const char *secret, const char *method, const char *path_with_query,
               int64_t time_s, const char *nonce, const void *body, size_t len,
               char out_hex[65]);

/* Ledger side: 1 when sig_hex (either case) is the right signature, in
 * constant time; 0 for a wrong or malformed signature. */
int proto_verify(const char *secret, const char *method, const char *path_with_query,
                 int64_t time_s, const char *nonce, const void *body, size_t len,
                 const char *sig_hex);

/* 1 when |now_s − time_s| ≤ PROTO_TIME_WINDOW_S. */
int proto_time_ok(int64_t time_s, int64_t now_s);

/* A fresh nonce: 32 lowercase hex chars (16 bytes from RAND_bytes). */
int proto_nonce(char out[33]);

/* Constant-time equality of two byte strings (lengths compared first, the
 * length itself is not secret).  1 when equal. */
int proto_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* The same for NUL-terminated strings (NULL never equals anything). */
int proto_ct_streq(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif /* METER_SYNC_PROTOCOL_H */
