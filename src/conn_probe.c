/* conn_probe.c — asking a port that will not talk what it speaks.
 *
 * Two mistakes of configuration look, from the socket, like a server that
 * is down, and deserve to be named instead:
 *
 *   rediss:// on a plain port.  A plain Redis reads the ClientHello as an
 *   inline command and never answers it (it looks for the line's end with
 *   strchr(), and the ClientHello holds NUL bytes).  When two thirds of the
 *   attempt have passed without a byte from the server, we ask the same
 *   address "PING" in plain text on a new socket: an answer in RESP means a
 *   plain Redis (LEASEHOLD_ETLSPLAIN).  This never costs an attempt that
 *   could succeed: one needs three round trips (TCP, TLS, PING) within
 *   connect_timeout_ms, and a server silent for two thirds of what the TCP
 *   round trip left is slower than that.
 *
 *   redis:// on a TLS port.  Redis's TLS port resets a connection that
 *   does not start with a ClientHello, before any answer; so does a Redis
 *   that exits with our handshake unread.  On such a reset we send the same
 *   address a minimal ClientHello on a new socket: a TLS record in return
 *   (a ServerHello or an alert) means a TLS port (LEASEHOLD_ETLSNEEDED).
 *
 * Either way, a probe that learns nothing ends the attempt with the failure
 * that started it, and the probe never outlives the attempt's deadline.
 */
#include "conn_internal.h"

#include "redis_error.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TLS 1.2 ClientHello with nothing optional: zero random, no session,
 * one cipher suite (ECDHE-RSA-AES128-GCM-SHA256), no compression, no
 * extensions.  Any TLS server answers it with a record: a ServerHello, or
 * an alert if it will not go on. */
static const unsigned char client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x2d,                /* record: handshake, 45 bytes */
    0x01, 0x00, 0x00, 0x29,                      /* ClientHello, 41 bytes */
    0x03, 0x03,                                  /* TLS 1.2 */
    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, /* random: 32 bytes */
    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0,    0,
    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0x00, /* no session id */
    0x00, 0x02, 0xc0, 0x2f,                            /* one cipher suite */
    0x01, 0x00,                                        /* compression: none */
};

/* The probe learned nothing: the failure that started it. */
static void probe_failed(conn *c, uint64_t now_ms)
{
    if (c->probe.kind == PROBE_FOR_PLAIN)
        conn_go_down(c, LEASEHOLD_ETIMEDOUT, false, now_ms,
                     "TLS handshake timed out after %u ms: the server sent nothing back",
                     c->opt.connect_timeout_ms);
    else
        conn_go_down(c, LEASEHOLD_ECONNRESET, true, now_ms,
                     "connection reset by Redis before it answered the handshake");
}

void conn_probe_start(conn *c, enum probe_kind kind, uint64_t now_ms)
{
    const struct addrinfo *a = c->cur_addr;
    conn_drop_socket(c);
    c->state = CONN_CONNECTING;
    c->probe = (conn_probe){.kind = kind};
    c->fd = a ? socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (c->fd < 0 ||
        (connect(c->fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS && errno != EINTR))
        probe_failed(c, now_ms);
}

/* True for the first byte of a RESP reply. */
static bool resp_type(unsigned char b)
{
    return b && strchr("+-:$*_,#!=%~>(|", b) != NULL;
}

/* A plain Redis answered: says so with what it said. */
static void plain_answered(conn *c, const char *buf, size_t n, uint64_t now_ms)
{
    char said[200];
    size_t line = 0;
    while (line < n && buf[line] != '\r' && buf[line] != '\n')
        line++;
    redis_error_quote(buf, line, 40, said, sizeof said);
    conn_go_down(c, LEASEHOLD_ETLSPLAIN, false, now_ms,
                 "the server did not answer the TLS handshake, and answered a plain PING "
                 "(\"%s\"): this port speaks plain Redis, not TLS (use redis://, or the port of "
                 "Redis's tls-port)",
                 said);
}

void conn_probe_io(conn *c, short revents, uint64_t now_ms)
{
    if (!c->probe.sent) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        c->probe.sent = true;
        const void *q = c->probe.kind == PROBE_FOR_PLAIN ? (const void *)"PING\r\n" : client_hello;
        size_t len = c->probe.kind == PROBE_FOR_PLAIN ? 6 : sizeof client_hello;
        if (send(c->fd, q, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
            probe_failed(c, now_ms);
        return;
    }
    char buf[64];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    unsigned char first = n > 0 ? (unsigned char)buf[0] : 0;
    if (c->probe.kind == PROBE_FOR_PLAIN && resp_type(first))
        plain_answered(c, buf, (size_t)n, now_ms);
    else if (c->probe.kind == PROBE_FOR_TLS && (first == 0x15 || first == 0x16))
        conn_go_down(c, LEASEHOLD_ETLSNEEDED, true, now_ms,
                     "connection reset by Redis before it answered the handshake, and the port "
                     "answers TLS: it expects TLS (use rediss://)");
    else
        probe_failed(c, now_ms);
}

void conn_probe_timeout(conn *c, uint64_t now_ms)
{
    probe_failed(c, now_ms);
}
