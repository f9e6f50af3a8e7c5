/*
 * api_json.h — the JSON shapes of the admin API, query-argument parsing and
 * the shared request-body check, for the endpoint files (api_*.c).
 */
#ifndef LEDGER_API_JSON_H
#define LEDGER_API_JSON_H

#include <jansson.h>

#include "http.h"
#include "store.h"

/* A pack as admins see it: the node's fields (proto_pack_to_json) plus
 * used/remaining, status, account, node, pooled, reserved/free, and
 * minutes with 3 decimals ("*_min"). */
json_t *pack_json(const ledger_pack *p);
/* The node's view of a pack, for GET /v1/nodes/{node}/packs (with its
 * account). */
json_t *node_pack_json(const ledger_pack *p);
/* A lease in the wire shape (proto_lease_to_json), ttl_ms from now. */
json_t *lease_json(const ledger_lease *l, meter_time now);
/* An account with its per-class balances (GET /v1/accounts). */
json_t *account_json(const ledger_account *a);
/* Sets key to the minutes of us as "12.345" (truncated, exact). */
int put_minutes(json_t *o, const char *key, int64_t us);

/* Query arguments.  Each returns 1 (absent: *out unchanged, or set) or 0
 * after answering 400 naming the argument. */
int arg_time(request *rq, const char *name, meter_time *out);      /* epoch ms */
int arg_int(request *rq, const char *name, int min, int max, int *out);
int arg_class(request *rq, const char *name, int *out);            /* -1 when absent */
/* A name-like argument (node, pack id, record id: protocol characters). */
int arg_name(request *rq, const char *name, const char **out);
/* Free text up to cap bytes, no control characters (ttype, job). */
int arg_text(request *rq, const char *name, size_t cap, const char **out);

/* The body of POST /v1/accounts and POST /v1/nodes: a JSON object whose
 * "name" is a valid name (1 to METER_NAME_MAX - 1 protocol characters).
 * Returns 1 with *body (the caller's to json_decref) and *name (inside
 * it), or 0 after answering 400. */
int body_name(request *rq, json_t **body, const char **name);

#endif /* LEDGER_API_JSON_H */
