/* conn.h — one Redis connection: connect, send, parse, timeouts, reconnect.
 *
 * The connection owns its socket and never blocks: the caller's poll loop asks
 * which descriptor and events to wait for (conn_fd, conn_poll_events), tells
 * it what happened (conn_on_io) and when time passes (conn_tick), and learns
 * the next instant it must be woken (conn_wake_at).  hiredis encodes commands
 * and parses replies; no hiredis type appears in this header.
 *
 * Not thread-safe: one thread (the client's I/O thread) owns a conn.
 *
 * Handlers run inside conn_connect, conn_adopt_fd, conn_on_io, conn_tick and
 * conn_fail.  From a handler it is safe to call conn_send (once on_ready has
 * run for the current connection), conn_fail, conn_close, conn_connect,
 * conn_free and the getters: the conn notices and stops using the old
 * socket; conn_free from a handler only closes, and the memory is freed when
 * the outermost conn_* call returns.  After conn_free, do not touch the conn
 * again (even from the rest of that handler).  Handlers must not call
 * conn_on_io or conn_tick.
 */
#ifndef LEASEHOLD_CONN_H
#define LEASEHOLD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "leasehold.h"
#include "url.h"

typedef struct conn conn;
struct tls_ctx;

typedef enum conn_reply_type {
    CONN_REPLY_NIL,
    CONN_REPLY_INTEGER,
    CONN_REPLY_STRING, /* bulk string */
    CONN_REPLY_STATUS, /* +OK */
    CONN_REPLY_ERROR,  /* -ERR ..., str holds the whole line without the '-' */
    CONN_REPLY_ARRAY,
} conn_reply_type;

/* A parsed reply.  Valid only during the on_reply call that receives it. */
typedef struct conn_reply {
    conn_reply_type type;
    long long integer;                /* INTEGER */
    const char *str;                  /* STRING, STATUS, ERROR; NUL-terminated */
    size_t len;                       /* length of str */
    size_t elements;                  /* ARRAY */
    const struct conn_reply *element; /* ARRAY: elements entries */
} conn_reply;

typedef enum conn_state {
    CONN_DOWN,       /* no socket; reconnects at conn_wake_at() unless closed */
    CONN_CONNECTING, /* non-blocking connect under way */
    CONN_HANDSHAKE,  /* [AUTH] [SELECT] PING sent, answers pending */
    CONN_READY,      /* PING answered: commands may be sent */
    CONN_CLOSED,     /* conn_close() was called; stays down */
} conn_state;

typedef struct conn_handler {
    /* Connected, AUTH and SELECT (when the URL asks for them) accepted and
     * PING answered +PONG: commands may be sent. */
    void (*on_ready)(void *arg, conn *c, uint64_t now_ms);
    /* The reply to the command sent with `tag`, in sending order. */
    void (*on_reply)(void *arg, conn *c, uint64_t tag, const conn_reply *r, uint64_t now_ms);
    /* The connection (or an attempt to make one) ended.  Every command sent
     * and not yet answered is dropped without an on_reply.  code is a
     * leasehold error (LEASEHOLD_ECONNREFUSED, LEASEHOLD_ETIMEDOUT,
     * LEASEHOLD_EAUTH, ...), msg names the cause and the URL.  by_peer is true
     * when an established connection was closed or reset by Redis (EOF,
     * ECONNRESET), as opposed to a timeout, a failed attempt or a local
     * decision.  Called also for failed attempts while reconnecting. */
    void (*on_down)(void *arg, conn *c, int code, bool by_peer, const char *msg, uint64_t now_ms);
    /* Optional, for a connection in pub/sub mode: offered every reply before
     * it is matched to a command; returns true when r is a push (a published
     * message) that it has taken, which then answers no command. */
    bool (*on_push)(void *arg, conn *c, const conn_reply *r, uint64_t now_ms);
    /* Optional: called when the back-off has run out, before the next
     * attempt.  Returning false parks the connection (CONN_DOWN, no timer)
     * until the owner calls conn_connect() or conn_attempt_failed(): an
     * owner that must first learn where to connect (a Sentinel's master)
     * does so in between and may call conn_set_target(). */
    bool (*before_attempt)(void *arg, conn *c, uint64_t now_ms);
} conn_handler;

/* All times must be > 0 (asserted): the caller validates its configuration
 * and merges in the URL's connect_timeout_ms / command_timeout_ms, which
 * conn itself ignores.  The reconnect schedule after going down: the first
 * attempt at once, then delays of backoff_min_ms, 2x, 4x... up to
 * backoff_max_ms, each drawn uniformly from [d/2, d]; it starts over only
 * when a handshake ends with PING's +PONG, not when TCP connects. */
typedef struct conn_options {
    uint32_t connect_timeout_ms; /* a connect + handshake that takes longer fails */
    uint32_t command_timeout_ms; /* a command unanswered this long resets the connection */
    uint32_t backoff_min_ms;     /* first reconnect delay after a failed attempt */
    uint32_t backoff_max_ms;     /* the delays double up to this, with jitter */
    uint64_t seed;               /* for the jitter */
    /* The clock the caller's now_ms comes from; NULL: clock_now_ms().  Read
     * again before each reply after the first that one conn_on_io call hands
     * out, so a slow handler does not make the next reply's now_ms stale
     * (the later of the two is used: now_ms never goes back).  A test with
     * simulated time gives its own. */
    uint64_t (*clock_ms)(void);
    /* For a rediss:// URL, the client's TLS context (tls.h), which must
     * outlive the conn; NULL for any other.  The TLS handshake runs within
     * connect_timeout_ms. */
    const struct tls_ctx *tls;
    /* Ask ROLE after PING: only a master makes the connection ready; a
     * replica or a Sentinel ends the attempt with LEASEHOLD_ENOMASTER. */
    bool require_master;
} conn_options;

/* A connection to u (copied), down until conn_connect() or conn_adopt_fd().
 * Returns NULL only when out of memory. */
conn *conn_new(const url *u, const conn_options *opt, const conn_handler *h, void *arg);

/* Resolves the URL's host name (blocking: call it outside the poll loop).
 * Returns 0, or LEASEHOLD_ERESOLVE with the name and the resolver's message.
 * unix:// URLs need no resolution and return 0.  The addresses are kept for
 * every later attempt; if this was never called (or failed), each attempt
 * resolves first, blocking. */
int conn_resolve(conn *c, leasehold_error *err);

/* Starts connecting now (non-blocking), trying each resolved address in
 * turn within connect_timeout_ms.  Failures are reported through on_down
 * (and also returned when they happen at once).  Allowed from CONN_DOWN and
 * CONN_CLOSED (it reopens a closed conn); otherwise returns -EISCONN. */
int conn_connect(conn *c, uint64_t now_ms);

/* Uses fd, an already connected stream socket (a test's socketpair end), as
 * the connection: the handshake ([AUTH] [SELECT] PING) is sent at once and
 * on_ready comes with PING's answer.  When this returns 0 the conn owns fd
 * and closes it.  Returns 0, -EISCONN or -errno of fcntl. */
int conn_adopt_fd(conn *c, int fd, uint64_t now_ms);

/* Queues a command (hiredis-encoded) to be written at once or when the socket
 * allows; tag comes back with its reply.  argvlen may be NULL (strlen of
 * each argv).  Never calls a handler: a write failure is reported by the
 * next conn_on_io/conn_tick (conn_wake_at() becomes 0).  Returns
 *   0                 queued;
 *   -ENOTCONN         not CONN_READY (down, connecting, in the handshake or
 *                     closed): nothing queued;
 *   LEASEHOLD_ENOMEM  no memory to encode or queue it: nothing queued, the
 *                     connection unchanged. */
int conn_send(conn *c, int argc, const char **argv, const size_t *argvlen, uint64_t tag,
              uint64_t now_ms);

conn_state conn_get_state(const conn *c);

/* The descriptor to poll, or -1, and the events to poll it for. */
int conn_fd(const conn *c);
short conn_poll_events(const conn *c);

/* Handles what poll() reported for conn_fd().  now_ms is the time of the
 * first reply handed out; each later one gets the clock read again (see
 * conn_options.clock_ms). */
void conn_on_io(conn *c, short revents, uint64_t now_ms);

/* Handles due timers: connect and command timeouts (which reset the
 * connection), the reconnect back-off. */
void conn_tick(conn *c, uint64_t now_ms);

/* The next instant conn_tick() has work, UINT64_MAX if none. */
uint64_t conn_wake_at(const conn *c);

/* Number of commands sent and not yet answered. */
size_t conn_pending(const conn *c);

/* The URL as shown in messages (password hidden). */
const char *conn_display(const conn *c);

/* Resets the connection on the owner's behalf, exactly as a command timeout
 * does: closes the socket, drops every pending command (no on_reply for
 * them), calls on_down(code, by_peer = false, "<URL>: msg") and reconnects
 * on the usual back-off schedule.  For an owner that cannot keep its own
 * bookkeeping in step with the connection (a send that failed for lack of
 * memory, a reply that matches no command it sent).  code is a leasehold
 * error (< 0, asserted); msg names the cause, the conn prefixes its URL
 * (password hidden).  While connecting or in the handshake it fails the
 * attempt; with no socket (CONN_DOWN, CONN_CLOSED) it does nothing.  Safe
 * to call from a handler. */
void conn_fail(conn *c, int code, const char *msg, uint64_t now_ms);

/* Points the connection at u (copied) for its next attempt; only without a
 * socket (CONN_DOWN or CONN_CLOSED), else -EISCONN.  The new host is
 * resolved (blocking) at the next attempt: give addresses, not names, from
 * the I/O thread. */
int conn_set_target(conn *c, const url *u);

/* Counts an attempt the owner could not even start (no address to connect
 * to) as a failed one: without a socket (else nothing happens), schedules
 * the next attempt on the back-off and calls on_down(code, false, msg) with
 * msg as given.  Safe to call from a handler. */
void conn_attempt_failed(conn *c, int code, const char *msg, uint64_t now_ms);

/* Closes the socket, drops pending commands (on_down is not called) and stays
 * down: no reconnect. */
void conn_close(conn *c);

void conn_free(conn *c);

/* Maps an error reply to a leasehold error code by its first word:
 * WRONGTYPE -> LEASEHOLD_EWRONGTYPE, NOPERM -> LEASEHOLD_ENOPERM,
 * READONLY -> LEASEHOLD_EREADONLY, WRONGPASS / invalid password / NOAUTH ->
 * LEASEHOLD_EAUTH, anything else -> LEASEHOLD_EREDIS. */
int conn_error_code(const conn_reply *r);

/* True when r is an error reply whose first word is `word` ("NOSCRIPT"). */
bool conn_reply_is_error(const conn_reply *r, const char *word);

#endif
