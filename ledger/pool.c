/*
 * pool.c — a stack of idle store connections behind a mutex (pool.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

struct store_pool {
    pthread_mutex_t lock;
    char *db, *pg;
    int max_idle, nidle;
    ledger_store **idle;
};

int pool_create(const char *db, const char *pg, int max_idle, store_pool **out)
{
    store_pool *p = calloc(1, sizeof *p);
    if (!p)
        return METER_ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    p->max_idle = max_idle > 0 ? max_idle : 1;
    p->idle = calloc((size_t)p->max_idle, sizeof *p->idle);
    p->db = db ? strdup(db) : NULL;
    p->pg = pg ? strdup(pg) : NULL;
    if (!p->idle || (db && !p->db) || (pg && !p->pg)) {
        pool_destroy(p);
        return METER_ENOMEM;
    }
    *out = p;
    return METER_OK;
}

ledger_store *pool_get(store_pool *p, char err[METER_ERRMAX])
{
    ledger_store *st = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nidle > 0)
        st = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->lock);
    if (st)
        return st;
    /* opened outside the lock: connecting may take a while */
    if (ledger_store_open(p->db, p->pg, 0, &st, err) != METER_OK)
        return NULL;
    return st;
}

void pool_put(store_pool *p, ledger_store *st)
{
    if (!st)
        return;
    if (!ledger_store_broken(st)) {
        pthread_mutex_lock(&p->lock);
        if (p->nidle < p->max_idle) {
            p->idle[p->nidle++] = st;
            st = NULL;
        }
        pthread_mutex_unlock(&p->lock);
    }
    ledger_store_close(st);
}

void pool_destroy(store_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        ledger_store_close(p->idle[i]);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p->db);
    free(p->pg);
    free(p);
}
