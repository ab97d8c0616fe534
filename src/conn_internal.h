/* conn_internal.h — what conn.c, conn_handshake.c and conn_reply.c share.
 *
 * Not for anyone else: the connection's owner includes conn.h, and no
 * hiredis or OpenSSL type leaves these files.  conn.c keeps the
 * connection's life (state, connect, timers, back-off, the send queue,
 * I/O); conn_tls.c the TLS of rediss://; conn_handshake.c the [AUTH]
 * [SELECT] PING that makes it READY; conn_reply.c the reply objects
 * hiredis's reader builds and what an error reply means.
 */
#ifndef LEASEHOLD_CONN_INTERNAL_H
#define LEASEHOLD_CONN_INTERNAL_H

#include "conn.h"

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <sys/types.h>

/* The longest array we take: a Cluster's slot map (CLUSTER SLOTS has an
 * entry per run of slots, CLUSTER SHARDS two numbers per run: at most 2 x
 * 16384).  An array header announcing more is a Redis out of step (or not
 * Redis), and allocating what it announces would let one line ask for
 * gigabytes. */
#define CONN_REPLY_ARRAY_MAX 32768

/* What a pending command is, so its reply goes to the right place. */
enum pending_kind { PENDING_USER, PENDING_AUTH, PENDING_SELECT, PENDING_PING, PENDING_ROLE };

typedef struct pending {
    enum pending_kind kind;
    uint64_t tag;
    uint64_t sent_ms;
} pending;

/* The TLS side of one connection (rediss://); all zero without TLS or
 * without a socket. */
typedef struct conn_tls {
    SSL *ssl;
    bool handshaking;        /* CONN_CONNECTING with TCP up: the TLS handshake is under way */
    bool want_write;         /* the last SSL call waits for the socket to take bytes */
    bool cert_requested;     /* the server asked for a client certificate */
    uint64_t probe_at_ms;    /* when to ask in plain text, if the server is silent (conn_probe.c) */
    X509 *refused;           /* the certificate verification failed on first, or NULL... */
    int refused_depth;       /* ...and its place in the chain (0: the server's own) */
    unsigned char first[48]; /* the server's first bytes on this connection */
    size_t first_len;
    int fail_code;      /* a TLS failure seen by a read or a write... */
    char fail_msg[512]; /* ...and what it was */
} conn_tls;

/* A question to a port that will not talk (conn_probe.c). */
enum probe_kind { PROBE_NONE, PROBE_FOR_PLAIN, PROBE_FOR_TLS };
typedef struct conn_probe {
    enum probe_kind kind; /* PROBE_NONE: no probe under way */
    bool sent;            /* the question is on its way */
} conn_probe;

struct conn {
    url u;
    conn_options opt;
    conn_handler h;
    void *arg;

    conn_state state;
    int fd;
    conn_tls tls;
    conn_probe probe;
    bool heard;      /* a byte has come from the server on this socket */
    bool read_again; /* TLS holds decrypted bytes a bounded read left behind */
    redisReader *reader;
    int oversized_array;        /* an array header asked for this many elements: refused */
    struct addrinfo *addrs;     /* from conn_resolve; kept for every reconnect */
    struct addrinfo *next_addr; /* the next address this attempt will try */
    struct addrinfo *cur_addr;  /* the address of the socket, NULL for unix:// */
    int last_connect_errno;     /* why the previous address of this attempt failed */

    char *out; /* encoded commands not yet written: out[out_off..out_len) */
    size_t out_len, out_off, out_cap;

    pending *queue; /* ring: queue[(head + i) % queue_cap], i < queue_len */
    size_t queue_head, queue_len, queue_cap;

    uint64_t connect_deadline_ms; /* CONNECTING / HANDSHAKE */
    uint64_t reconnect_at_ms;     /* DOWN: next attempt, UINT64_MAX if none */
    unsigned retries;             /* attempts since the last successful handshake */
    uint64_t rng;                 /* jitter generator state */
    int write_errno;              /* a send() failure seen by conn_send, handled by tick */

    unsigned generation; /* bumped by every teardown */
    unsigned downs;      /* on_down reports so far */
    int last_down_code;  /* the code of the latest one */
    unsigned depth;      /* entry points currently on the stack */
    bool free_requested; /* conn_free was called from a handler */
};

/* --- conn.c */

/* Queues the pending entry of a command whose bytes are (or are about to
 * be) in the output buffer.  Returns false when out of memory. */
bool conn_queue_push(conn *c, enum pending_kind kind, uint64_t tag, uint64_t now_ms);

/* Appends an encoded command to the output buffer.  Returns 0 or
 * LEASEHOLD_ENOMEM (nothing appended). */
int conn_out_append(conn *c, int argc, const char **argv, const size_t *argvlen);

/* Writes as much of the output buffer as the socket takes.  Returns 0, or
 * the errno of a failed send(). */
int conn_flush(conn *c);

/* Closes the socket and forgets everything tied to it (the state stays). */
void conn_drop_socket(conn *c);

/* The leasehold code for a socket errno. */
int conn_errno_code(int e);

/* Ends the connection or the attempt with the message "<display url>:
 * <fmt...>": drops the socket and every pending command, schedules the
 * reconnect and calls on_down.  The caller must not touch the old socket's
 * state afterwards. */
void conn_go_down(conn *c, int code, bool by_peer, uint64_t now_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* --- conn_tls.c */

/* TCP is connected on a rediss:// connection: starts the TLS handshake
 * (CONN_CONNECTING), or goes down. */
void conn_tls_begin(conn *c, uint64_t now_ms);

/* Takes the TLS handshake as far as the socket allows; when it is done,
 * starts conn_handshake.c's, and when it fails goes down with the code and
 * the message of what went wrong. */
void conn_tls_step(conn *c, uint64_t now_ms);

/* As recv() and send() on the socket: bytes moved; 0 at the end of the
 * stream (read only); -1 with errno EAGAIN (poll: for POLLOUT when
 * c->tls.want_write), with the socket's errno, or with EPROTO and
 * c->tls.fail_code / fail_msg for a TLS failure. */
ssize_t conn_tls_read(conn *c, void *buf, size_t len);
ssize_t conn_tls_write(conn *c, const void *buf, size_t len);

/* When e (a read's or a write's errno) is a TLS failure: goes down with
 * its code and message and returns true; otherwise false. */
bool conn_tls_failed(conn *c, int e, uint64_t now_ms);

/* True when TLS holds decrypted bytes not read yet. */
bool conn_tls_buffered(const conn *c);

/* Frees the TLS state of the socket being dropped. */
void conn_tls_end(conn *c);

/* --- conn_probe.c */

/* Drops the socket and asks the same address, on a new one, what it
 * speaks (CONN_CONNECTING until it knows): PROBE_FOR_PLAIN after a TLS
 * handshake went unanswered, PROBE_FOR_TLS after a plain handshake was
 * reset.  Ends the attempt with the code of what it learns, or with the
 * failure that started it. */
void conn_probe_start(conn *c, enum probe_kind kind, uint64_t now_ms);

/* poll() reported revents on the probe's socket. */
void conn_probe_io(conn *c, short revents, uint64_t now_ms);

/* The attempt's deadline passed during the probe. */
void conn_probe_timeout(conn *c, uint64_t now_ms);

/* --- conn_handshake.c */

/* The socket is connected: sends the handshake (CONN_HANDSHAKE), or goes
 * down. */
void conn_handshake_start(conn *c, uint64_t now_ms);

/* Handles the reply to a handshake command; PING's +PONG makes the
 * connection READY and calls on_ready. */
void conn_handshake_reply(conn *c, enum pending_kind kind, const conn_reply *r, uint64_t now_ms);

/* "AUTH", "SELECT", "PING" or "ROLE", for messages. */
const char *conn_handshake_name(enum pending_kind kind);

/* --- conn_reply.c */

/* A reader that builds conn_reply trees (freed with conn_reply_free) and
 * notes an oversized array in c->oversized_array.  NULL when out of
 * memory. */
redisReader *conn_reader_new(conn *c);

/* Frees a reply the reader handed out (NULL is allowed). */
void conn_reply_free(void *obj);

#endif
