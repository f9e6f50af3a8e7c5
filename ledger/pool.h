/*
 * pool.h — store connections for the request threads.
 *
 * A store is used by one thread at a time; each request borrows one and
 * gives it back.  Idle connections are kept for the next request (up to a
 * limit); a connection found broken on return is closed, and a new one is
 * opened on demand, so a database restart heals by itself.
 */
#ifndef LEDGER_POOL_H
#define LEDGER_POOL_H

#include "store.h"

typedef struct store_pool store_pool;

/* db or pg as in ledger_store_open (the schema must be current). */
int pool_create(const char *db, const char *pg, int max_idle, store_pool **out);
/* A store, or NULL with the reason in err (the database is unreachable…). */
ledger_store *pool_get(store_pool *p, char err[METER_ERRMAX]);
void pool_put(store_pool *p, ledger_store *st);
void pool_destroy(store_pool *p);

#endif /* LEDGER_POOL_H */
