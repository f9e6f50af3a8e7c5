/*
 * http_deadline.h — the request deadline: a connection whose request has
 * not fully arrived within --request-deadline seconds is closed, however
 * steadily it trickles bytes (libmicrohttpd's own timeout only measures
 * silence, so one byte a second keeps a connection forever).
 *
 * The clock starts when a connection opens and again each time a request
 * on it ends (keep-alive: waiting for the next request counts too); it
 * stops once the request is fully received (the handler runs, the answer
 * is sent under the idle timeout).  A watcher thread closes overdue
 * connections.
 */
#ifndef LEDGER_HTTP_DEADLINE_H
#define LEDGER_HTTP_DEADLINE_H

#include <microhttpd.h>

typedef struct deadline_watch deadline_watch;

/* Starts the watcher thread; NULL when it cannot (out of memory or
 * threads).  Start it before the daemon and stop it after the daemon has
 * stopped. */
deadline_watch *deadline_start(int seconds);
void deadline_stop(deadline_watch *w);

/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the watch): tracks each
 * connection from open to close. */
void deadline_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code);

/* The connection's request has fully arrived: off the clock. */
void deadline_received(struct MHD_Connection *conn);
/* The connection's request has ended: the clock restarts for the next. */
void deadline_restart(struct MHD_Connection *conn);

#endif /* LEDGER_HTTP_DEADLINE_H */
