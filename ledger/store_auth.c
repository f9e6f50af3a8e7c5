/*
 * store_auth.c — credentials in the ledger store: nodes and their secrets,
 * nonces (replay protection shared by every instance), admins, and reading
 * the audit log.
 *
 * Node secrets are kept as they are (the ledger must compute the HMAC with
 * them) plus their SHA-256 for bearer look-ups; admin tokens only as their
 * SHA-256.  Both are 32 random bytes, so a plain hash is enough: there is
 * nothing to brute-force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

/* --------------------------------------------------------------- nodes -- */

struct node_add_ctx {
    const char *name;
    meter_time now;
    const ledger_actor *who;
    char *secret;
};

static int node_add_tx(ledger_store *st, void *vctx)
{
    struct node_add_ctx *c = vctx;
    int rc = store_random_hex(st, c->secret, LEDGER_SECRET_HEX / 2);
    if (rc != METER_OK)
        return rc;
    char hash[65];
    store_sha256_hex(c->secret, hash);
    lparam p[] = { P_TEXT(c->name), P_TEXT(c->secret), P_TEXT(hash), P_INT(c->now) };
    rc = store_exec(st, "INSERT INTO nodes (name, secret, secret_sha256, created_ms)"
                        " VALUES ($1, $2, $3, $4)", p, 4, NULL);
    if (rc == METER_EEXIST)
        return store_fail(st, rc, "node '%s' already exists", c->name);
    if (rc == METER_OK)
        rc = store_audit(st, c->who, c->now, "node.add", c->name);
    return rc;
}

int ledger_node_add(ledger_store *st, const char *name, meter_time now,
                    const ledger_actor *who, char secret[LEDGER_SECRET_HEX + 1])
{
    if (!name || !*name || strlen(name) >= METER_NAME_MAX)
        return store_fail(st, METER_EINVAL, "a node name must be 1 to %d bytes",
                          METER_NAME_MAX - 1);
    struct node_add_ctx c = { name, now, who, secret };
    return store_tx(st, node_add_tx, &c);
}

struct node_bind_ctx {
    const char *node, *prefix;
    meter_time now;
    const ledger_actor *who;
};

static int node_bind_tx(ledger_store *st, void *vctx)
{
    struct node_bind_ctx *c = vctx;
    lparam p[] = { P_TEXT(c->prefix), P_TEXT(c->node), P_INT(c->now) };
    lres r;
    int rc = store_exec(st, "SELECT 1 FROM nodes WHERE name = $1", p + 1, 1, &r);
    if (rc != METER_OK)
        return rc;
    int known = r.nrows > 0;
    lres_free(&r);
    if (!known)
        return store_fail(st, METER_ENOTFOUND, "no node '%s'", c->node);
    rc = store_exec(st, "SELECT node FROM node_ids WHERE prefix = $1", p, 1, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0) {
        char owner[METER_NAME_MAX];
        lres_text(&r, 0, 0, owner, sizeof owner);
        lres_free(&r);
        return store_fail(st, METER_EEXIST, "record ids '%s-…' are bound to node '%s' already",
                          c->prefix, owner);
    }
    lres_free(&r);
    rc = store_exec(st, "INSERT INTO node_ids (prefix, node, bound_ms, how)"
                        " VALUES ($1, $2, $3, 'admin')", p, 3, NULL);
    if (rc == METER_OK) {
        char target[METER_NAME_MAX + METER_ID_MAX + 2];
        snprintf(target, sizeof target, "%s %s", c->node, c->prefix);
        rc = store_audit(st, c->who, c->now, "node.bind", target);
    }
    return rc;
}

int ledger_node_bind(ledger_store *st, const char *node, const char *prefix, meter_time now,
                     const ledger_actor *who)
{
    if (!prefix || !*prefix || strlen(prefix) >= METER_ID_MAX - 22 || strchr(prefix, '-'))
        return store_fail(st, METER_EINVAL, "an id prefix is a node database's node_id "
                          "(meterctl config get node_id): 1 to %d bytes without '-'",
                          METER_ID_MAX - 23);
    for (const char *q = prefix; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '.' || *q == '_' || *q == ':'))
            return store_fail(st, METER_EINVAL, "id prefix '%.40s': use letters, digits, "
                              "'.', '_', ':'", prefix);
    struct node_bind_ctx c = { node, prefix, now, who };
    return store_tx(st, node_bind_tx, &c);
}

int ledger_node_prefixes(ledger_store *st, const char *node, char **list)
{
    *list = NULL;
    lparam p[] = { P_TEXT(node) };
    lres r;
    int rc = store_exec(st, "SELECT prefix FROM node_ids WHERE node = $1 ORDER BY bound_ms,"
                            " prefix", p, 1, &r);
    if (rc != METER_OK)
        return rc;
    size_t len = 1;
    for (int i = 0; i < r.nrows; i++)
        len += strlen(lres_get(&r, i, 0)) + 1;
    if (!(*list = calloc(1, len))) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows; i++) {
        if (i)
            strcat(*list, " ");
        strcat(*list, lres_get(&r, i, 0));
    }
    lres_free(&r);
    return METER_OK;
}

int ledger_node_list(ledger_store *st, ledger_node **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    lres r;
    int rc = store_exec(st, "SELECT name, created_ms, last_seen_ms FROM nodes ORDER BY name",
                        NULL, 0, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0 && !(*rows = calloc((size_t)r.nrows, sizeof **rows))) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows; i++) {
        lres_text(&r, i, 0, (*rows)[i].name, sizeof (*rows)[i].name);
        (*rows)[i].created_at = lres_int(&r, i, 1);
        (*rows)[i].last_seen = lres_int(&r, i, 2);
    }
    *n = (size_t)r.nrows;
    lres_free(&r);
    return METER_OK;
}

int ledger_node_secret(ledger_store *st, const char *name, char secret[LEDGER_SECRET_HEX + 1])
{
    lparam p[] = { P_TEXT(name) };
    lres r;
    int rc = store_exec(st, "SELECT secret FROM nodes WHERE name = $1", p, 1, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "unknown node '%s'", name);
    else
        lres_text(&r, 0, 0, secret, LEDGER_SECRET_HEX + 1);
    lres_free(&r);
    return rc;
}

/* The name whose stored SHA-256 of a credential matches `credential`
 * (sql selects name by $1 = the hex hash); METER_ENOTFOUND with `who` in
 * the message when none does. */
static int name_by_credential(ledger_store *st, const char *sql, const char *who,
                              const char *credential, char name[METER_NAME_MAX])
{
    char hash[65];
    store_sha256_hex(credential, hash);
    lparam p[] = { P_TEXT(hash) };
    lres r;
    int rc = store_exec(st, sql, p, 1, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows == 0)
        rc = store_fail(st, METER_ENOTFOUND, "no %s has this token", who);
    else
        lres_text(&r, 0, 0, name, METER_NAME_MAX);
    lres_free(&r);
    return rc;
}

int ledger_node_by_secret(ledger_store *st, const char *secret, char name[METER_NAME_MAX])
{
    return name_by_credential(st, "SELECT name FROM nodes WHERE secret_sha256 = $1", "node",
                              secret, name);
}

struct seen_ctx {
    const char *name, *nonce;
    meter_time now, expires;
};

static int seen_tx(ledger_store *st, void *vctx)
{
    struct seen_ctx *c = vctx;
    int rc = METER_OK;
    if (c->nonce) {
        lparam pd[] = { P_INT(c->now) };
        rc = store_exec(st, "DELETE FROM nonces WHERE expires_ms < $1", pd, 1, NULL);
        /* ON CONFLICT DO NOTHING: a concurrent request with the same nonce
         * waits for this one and then finds it, on either backend. */
        lparam p[] = { P_TEXT(c->name), P_TEXT(c->nonce), P_INT(c->expires) };
        lres r;
        if (rc == METER_OK)
            rc = store_exec(st, "INSERT INTO nonces (node, nonce, expires_ms) VALUES ($1, $2, $3)"
                                " ON CONFLICT (node, nonce) DO NOTHING", p, 3, &r);
        if (rc != METER_OK)
            return rc;
        int64_t added = r.changes;
        lres_free(&r);
        if (added == 0)
            return store_fail(st, METER_EEXIST, "nonce already used (a replayed request)");
    }
    lparam p[] = { P_TEXT(c->name), P_INT(c->now) };
    lres r;
    rc = store_exec(st, "UPDATE nodes SET last_seen_ms = $2 WHERE name = $1"
                        " AND (last_seen_ms IS NULL OR last_seen_ms < $2)", p, 2, &r);
    lres_free(&r);
    return rc;
}

int ledger_node_seen(ledger_store *st, const char *name, const char *nonce,
                     meter_time now, meter_time expires)
{
    struct seen_ctx c = { name, nonce, now, expires };
    return store_tx(st, seen_tx, &c);
}

int ledger_nonce_used(ledger_store *st, const char *name, const char *nonce, meter_time now)
{
    lparam p[] = { P_TEXT(name), P_TEXT(nonce), P_INT(now) };
    lres r;
    int rc = store_exec(st, "SELECT 1 FROM nonces WHERE node = $1 AND nonce = $2"
                            " AND expires_ms >= $3", p, 3, &r);
    if (rc != METER_OK)
        return rc;
    int used = r.nrows > 0;
    lres_free(&r);
    return used ? store_fail(st, METER_EEXIST, "nonce already used (a replayed request)")
                : METER_OK;
}

/* -------------------------------------------------------------- admins -- */

struct admin_add_ctx {
    const char *name;
    meter_time now;
    char *token;
};

static int admin_add_tx(ledger_store *st, void *vctx)
{
    struct admin_add_ctx *c = vctx;
    int rc = store_random_hex(st, c->token, LEDGER_SECRET_HEX / 2);
    if (rc != METER_OK)
        return rc;
    char hash[65];
    store_sha256_hex(c->token, hash);
    lparam p[] = { P_TEXT(c->name), P_TEXT(hash), P_INT(c->now) };
    rc = store_exec(st, "INSERT INTO admins (name, token_sha256, created_ms) VALUES ($1, $2, $3)",
                    p, 3, NULL);
    if (rc == METER_EEXIST)
        return store_fail(st, rc, "admin '%s' already exists", c->name);
    if (rc == METER_OK) {
        ledger_actor cli = { "cli", NULL };
        rc = store_audit(st, &cli, c->now, "admin.add", c->name);
    }
    return rc;
}

int ledger_admin_add(ledger_store *st, const char *name, meter_time now,
                     char token[LEDGER_SECRET_HEX + 1])
{
    if (!name || !*name || strlen(name) >= METER_NAME_MAX)
        return store_fail(st, METER_EINVAL, "an admin name must be 1 to %d bytes",
                          METER_NAME_MAX - 1);
    struct admin_add_ctx c = { name, now, token };
    return store_tx(st, admin_add_tx, &c);
}

int ledger_admin_by_token(ledger_store *st, const char *token, char name[METER_NAME_MAX])
{
    return name_by_credential(st, "SELECT name FROM admins WHERE token_sha256 = $1", "admin",
                              token, name);
}

/* --------------------------------------------------------------- audit -- */

int ledger_audit_list(ledger_store *st, meter_time from, meter_time to,
                      ledger_audit_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    lparam p[] = { P_INT(from), P_INT(to ? to : INT64_MAX) };
    lres r;
    int rc = store_exec(st, "SELECT seq, at_ms, admin, action, target, body FROM audit"
                            " WHERE at_ms >= $1 AND at_ms < $2 ORDER BY seq", p, 2, &r);
    if (rc != METER_OK)
        return rc;
    if (r.nrows > 0 && !(*rows = calloc((size_t)r.nrows, sizeof **rows))) {
        lres_free(&r);
        return store_fail(st, METER_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r.nrows; i++) {
        ledger_audit_row *a = &(*rows)[i];
        a->seq = lres_int(&r, i, 0);
        a->at = lres_int(&r, i, 1);
        lres_text(&r, i, 2, a->admin, sizeof a->admin);
        lres_text(&r, i, 3, a->action, sizeof a->action);
        lres_text(&r, i, 4, a->target, sizeof a->target);
        const char *b = lres_get(&r, i, 5);
        if (b && !(a->body = strdup(b))) {
            ledger_audit_free(*rows, (size_t)i);
            *rows = NULL;
            lres_free(&r);
            return store_fail(st, METER_ENOMEM, "out of memory");
        }
    }
    *n = (size_t)r.nrows;
    lres_free(&r);
    return METER_OK;
}

void ledger_audit_free(ledger_audit_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        free(rows[i].body);
    free(rows);
}
