/* sentinel.h — finding a master through Redis Sentinel.
 *
 * As Sentinel's client protocol asks: the Sentinels of a redis+sentinel://
 * URL are asked in turn, each with a short timeout, `SENTINEL
 * get-master-addr-by-name <name>` (and `SENTINEL MASTER <name>`, for when
 * the master took its role); the first that answers with an address
 * moves to the front of the list for the next round.  The address is only
 * a candidate: the owner connects with ROLE checked (conn_options'
 * require_master) and asks again when it is not a master.  A second
 * connection stays subscribed to `+switch-master` on one Sentinel, so that
 * a failover is heard of at once; that is news, never proof.
 *
 * Non-blocking, driven like a conn: the owner polls sentinel_conns(),
 * ticks it at sentinel_wake_at().  I/O thread only.
 */
#ifndef LEASEHOLD_SENTINEL_H
#define LEASEHOLD_SENTINEL_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "url.h"

typedef struct sentinel sentinel;

typedef struct sentinel_handler {
    /* A round of questions has ended: code 0 and the master's host and
     * port, with how long ago the Sentinel saw it take the master's role
     * (role_age_ms; UINT64_MAX when it does not say), or the reason there
     * is none: LEASEHOLD_EMASTERNAME (every
     * Sentinel that answered knows no master of that name), LEASEHOLD_EAUTH
     * or _ENOPERM (every Sentinel that answered refused us), otherwise
     * LEASEHOLD_ESENTINEL (none could be reached); msg names each Sentinel's
     * answer. */
    void (*on_resolved)(void *arg, int code, const char *host, uint16_t port, uint64_t role_age_ms,
                        const char *msg, uint64_t now_ms);
    /* A Sentinel announced +switch-master for our master: host:port is the
     * new master, by its word. */
    void (*on_switch)(void *arg, const char *host, uint16_t port, uint64_t now_ms);
} sentinel_handler;

/* A resolver for u's master name (u is copied).  user and password are the
 * Sentinels' own (NULL: none); opt gives the timeouts (each Sentinel has
 * opt->connect_timeout_ms to connect and opt->command_timeout_ms to answer)
 * and the Sentinels' TLS context.  NULL when out of memory. */
sentinel *sentinel_new(const url *u, const char *user, const char *password,
                       const conn_options *opt, const sentinel_handler *h, void *arg);

void sentinel_free(sentinel *s);

/* Starts a round of questions unless one is under way; its end comes
 * through on_resolved (never from inside this call). */
void sentinel_resolve(sentinel *s, uint64_t now_ms);

/* True while a round is under way. */
bool sentinel_resolving(const sentinel *s);

/* Keeps a +switch-master subscription on a Sentinel from now on, moving
 * to the next Sentinel whenever it fails. */
void sentinel_watch(sentinel *s, uint64_t now_ms);

/* The connections to poll (up to 2), stored in out; their number. */
int sentinel_conns(sentinel *s, conn *out[2]);

/* The next instant sentinel_tick() has work, UINT64_MAX if none. */
uint64_t sentinel_wake_at(const sentinel *s);

/* Handles due timers of its connections and of the round. */
void sentinel_tick(sentinel *s, uint64_t now_ms);

#endif
