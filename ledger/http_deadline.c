/*
 * http_deadline.c — closing connections whose request takes too long to
 * arrive (http_deadline.h).
 *
 * Every connection libmicrohttpd accepts is on a list, with the time its
 * current request's clock started.  A watcher thread looks twice a second
 * and shuts down the socket of each connection over the deadline:
 * shutdown(), not close() — the descriptor stays libmicrohttpd's, whose
 * connection thread then sees the end of the stream and closes the
 * connection its usual way (its memory, the per-IP count, the completion
 * callback).
 *
 * Why this is safe: libmicrohttpd reports MHD_CONNECTION_NOTIFY_CLOSED
 * before it closes the descriptor (daemon.c, MHD_cleanup_connections), and
 * the watcher shuts a socket down only under the lock, for a connection
 * still on the list — so it never touches a descriptor that was closed
 * and perhaps reused.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http.h"
#include "http_deadline.h"

struct watched {
    struct watched *prev, *next;
    deadline_watch *w;
    MHD_socket fd;
    double since;            /* monotonic seconds: this request's clock started */
    int on_clock;            /* the request is still arriving */
    int cut;                 /* shut down already */
    char addr[NI_MAXHOST];
};

struct deadline_watch {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stop;
    double seconds;
    struct watched *head;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One look at every connection: shuts down the overdue ones (under the
 * lock); returns how many, the first one's address in first. */
static int sweep(deadline_watch *w, char first[NI_MAXHOST])
{
    double now = mono_now();
    int n = 0;
    for (struct watched *c = w->head; c; c = c->next) {
        if (!c->on_clock || c->cut || now - c->since <= w->seconds)
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->cut = 1;
        if (n++ == 0)
            memcpy(first, c->addr, NI_MAXHOST);
    }
    return n;
}

static void *watcher(void *arg)
{
    deadline_watch *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 500 * 1000 * 1000;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000 * 1000 * 1000;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (w->stop)
            break;
        char first[NI_MAXHOST];
        int n = sweep(w, first);
        if (n) {
            pthread_mutex_unlock(&w->lock);
            ledger_log("closed %d connection(s) whose request had not arrived after %.0f s "
                       "(the first from %s)", n, w->seconds, first);
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

deadline_watch *deadline_start(int seconds)
{
    deadline_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->seconds = seconds;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(&w->thread, NULL, watcher, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void deadline_stop(deadline_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* the daemon has stopped: every connection was reported closed */
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void deadline_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    deadline_watch *w = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct watched *c = calloc(1, sizeof *c);
        if (!c || !fd) {
            /* out of memory: this one connection goes unwatched (its idle
             * timeout still applies) */
            free(c);
            *socket_context = NULL;
            return;
        }
        c->w = w;
        c->fd = fd->connect_fd;
        c->since = mono_now();
        c->on_clock = 1;
        strcpy(c->addr, "?");
        if (ad && ad->client_addr) {
            socklen_t len = ad->client_addr->sa_family == AF_INET6
                                ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
            getnameinfo(ad->client_addr, len, c->addr, sizeof c->addr, NULL, 0,
                        NI_NUMERICHOST);
        }
        pthread_mutex_lock(&w->lock);
        c->next = w->head;
        if (w->head)
            w->head->prev = c;
        w->head = c;
        pthread_mutex_unlock(&w->lock);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct watched *c = *socket_context;
        if (!c)
            return;
        pthread_mutex_lock(&w->lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            w->head = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&w->lock);
        free(c);
        *socket_context = NULL;
    }
}

static struct watched *watched_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(
        conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

void deadline_received(struct MHD_Connection *conn)
{
    struct watched *c = watched_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&c->w->lock);
    c->on_clock = 0;
    pthread_mutex_unlock(&c->w->lock);
}

void deadline_restart(struct MHD_Connection *conn)
{
    struct watched *c = watched_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&c->w->lock);
    c->since = mono_now();
    c->on_clock = 1;
    pthread_mutex_unlock(&c->w->lock);
}
