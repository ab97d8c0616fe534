/* conn.c — one Redis connection: our socket, hiredis's encoder and parser.
 *
 * The connection never blocks.  Every entry point is given now_ms, and
 * conn_wake_at() says when it next needs conn_tick(); the clock is read only
 * between replies handed out by one conn_on_io (through opt.clock_ms), so
 * that each reply comes with the time it is handled at.  It moves DOWN -> CONNECTING -> HANDSHAKE
 * -> READY and back to DOWN on any failure, which it reports once through on_down and follows with
 * a reconnect (at once the first time, then with jittered exponential back-off) unless conn_close()
 * was called.  The handshake always ends with a PING, and only its +PONG makes the connection READY
 * and starts the back-off over.
 *
 * Re-entrancy.  Handlers run inside conn_on_io, conn_tick, conn_connect,
 * conn_adopt_fd and conn_fail.  From a handler it is allowed to call
 * conn_send (after on_ready), conn_fail, conn_close, conn_connect, conn_free
 * and every getter.  The connection guards itself: each teardown bumps
 * `generation`, and code that called a handler checks it afterwards and
 * stops touching the old socket; conn_free from inside a handler only
 * closes, and the outermost entry point frees when it returns.
 *
 * Beside this file: conn_handshake.c (the [AUTH] [SELECT] PING that makes a
 * connection READY) and conn_reply.c (the reply trees hiredis's reader
 * builds); conn_internal.h is what the three share.
 */
#include "conn_internal.h"

#include "random.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"

#define READ_CHUNK 16384
/* Reads per conn_on_io: bounded work, so one busy peer cannot starve the
 * loop. */
#define READS_PER_CALL 16

/* ------------------------------------------------------------- helpers */

static uint64_t next_random(conn *c)
{
    return random_next(&c->rng);
}

bool conn_queue_push(conn *c, enum pending_kind kind, uint64_t tag, uint64_t now_ms)
{
    if (c->queue_len == c->queue_cap) {
        size_t cap = c->queue_cap ? c->queue_cap * 2 : 16;
        pending *q = malloc(cap * sizeof *q);
        if (!q)
            return false;
        for (size_t i = 0; i < c->queue_len; i++)
            q[i] = c->queue[(c->queue_head + i) % c->queue_cap];
        free(c->queue);
        c->queue = q;
        c->queue_cap = cap;
        c->queue_head = 0;
    }
    c->queue[(c->queue_head + c->queue_len) % c->queue_cap] =
        (pending){.kind = kind, .tag = tag, .sent_ms = now_ms};
    c->queue_len++;
    return true;
}

static pending queue_pop(conn *c)
{
    pending p = c->queue[c->queue_head];
    c->queue_head = (c->queue_head + 1) % c->queue_cap;
    c->queue_len--;
    return p;
}

/* Appends an encoded command to the output buffer. */
int conn_out_append(conn *c, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return LEASEHOLD_ENOMEM;
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + (size_t)len > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + (size_t)len)
            cap *= 2;
        if (cap != c->out_cap) {
            char *grown = realloc(c->out, cap);
            if (!grown) {
                redisFreeCommand(cmd);
                return LEASEHOLD_ENOMEM;
            }
            c->out = grown;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, cmd, (size_t)len);
    c->out_len += (size_t)len;
    redisFreeCommand(cmd);
    return 0;
}

/* send() or, on a TLS connection, SSL_write: the same contract. */
static ssize_t sock_write(conn *c, const void *buf, size_t len)
{
    if (c->tls.ssl)
        return conn_tls_write(c, buf, len);
    return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* recv() or, on a TLS connection, SSL_read: the same contract. */
static ssize_t sock_read(conn *c, void *buf, size_t len)
{
    if (c->tls.ssl)
        return conn_tls_read(c, buf, len);
    return recv(c->fd, buf, len, MSG_DONTWAIT);
}

/* Writes as much of the output buffer as the socket takes.  Returns 0, or
 * the errno of a failed send() (EPROTO: a TLS failure, in c->tls). */
int conn_flush(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = sock_write(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return n < 0 ? errno : EIO;
        }
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* The leasehold code for a socket errno. */
int conn_errno_code(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ENOENT: /* unix socket file missing: nobody listens there */
        return LEASEHOLD_ECONNREFUSED;
    case ETIMEDOUT:
        return LEASEHOLD_ETIMEDOUT;
    case ECONNRESET:
    case EPIPE:
        return LEASEHOLD_ECONNRESET;
    case ENOMEM:
    case ENOBUFS:
        return LEASEHOLD_ENOMEM;
    default:
        return LEASEHOLD_EIO;
    }
}

/* Closes the socket and forgets everything tied to it. */
void conn_drop_socket(conn *c)
{
    conn_tls_end(c);
    c->probe = (conn_probe){0};
    c->heard = c->read_again = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->reader)
        redisReaderFree(c->reader);
    c->reader = NULL;
    c->out_len = c->out_off = 0;
    c->queue_head = c->queue_len = 0;
    c->write_errno = 0;
    c->generation++;
}

/* The delay before the next attempt: none the first time after going down,
 * then backoff_min_ms doubling up to backoff_max_ms, each drawn uniformly
 * from [d/2, d]. */
static uint64_t backoff_delay(conn *c)
{
    unsigned n = c->retries++;
    if (n == 0)
        return 0;
    uint64_t d = c->opt.backoff_min_ms;
    for (unsigned i = 1; i < n && d < c->opt.backoff_max_ms; i++)
        d *= 2;
    if (d > c->opt.backoff_max_ms)
        d = c->opt.backoff_max_ms;
    uint64_t lo = d / 2;
    return lo + next_random(c) % (d - lo + 1);
}

/* Ends the connection or the attempt: drops the socket and every pending
 * command, schedules the reconnect and tells the handler.  The caller must
 * not touch the old socket's state afterwards (the handler may even have
 * started a new one). */
static void report_down(conn *c, int code, bool by_peer, uint64_t now_ms, const char *msg)
{
    conn_drop_socket(c);
    c->state = CONN_DOWN;
    c->reconnect_at_ms = now_ms + backoff_delay(c);
    c->downs++;
    c->last_down_code = code;
    if (c->h.on_down)
        c->h.on_down(c->arg, c, code, by_peer, msg, now_ms);
}

/* report_down with the message "<display url>: <fmt...>". */
void conn_go_down(conn *c, int code, bool by_peer, uint64_t now_ms, const char *fmt, ...)
{
    char msg[768];
    int n = snprintf(msg, sizeof msg, "%s: ", c->u.display);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    report_down(c, code, by_peer, now_ms, msg);
}

static void enter(conn *c)
{
    c->depth++;
}

/* Leaves an entry point; the outermost one carries out a conn_free that a
 * handler asked for. */
static void leave(conn *c)
{
    if (--c->depth == 0 && c->free_requested) {
        c->free_requested = false;
        conn_free(c);
    }
}

/* ------------------------------------------------------------- connect */

static void connect_failed(conn *c, int e, uint64_t now_ms)
{
    if (e == ECONNREFUSED)
        conn_go_down(c, LEASEHOLD_ECONNREFUSED, false, now_ms, "connection refused");
    else
        conn_go_down(c, conn_errno_code(e), false, now_ms, "cannot connect: %s", strerror(e));
}

static void socket_ready(conn *c, uint64_t now_ms)
{
    if (c->u.kind == URL_TCP) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (c->opt.tls)
        conn_tls_begin(c, now_ms);
    else
        conn_handshake_start(c, now_ms);
}

/* Tries the remaining addresses in turn until a connect() is under way or
 * done; reports the attempt as failed when none is left. */
static void try_next_address(conn *c, uint64_t now_ms)
{
    while (true) {
        struct sockaddr_un sun;
        const struct sockaddr *sa;
        socklen_t salen;
        int family;
        if (c->u.kind == URL_UNIX) {
            if (c->last_connect_errno) {
                connect_failed(c, c->last_connect_errno, now_ms);
                return;
            }
            memset(&sun, 0, sizeof sun);
            sun.sun_family = AF_UNIX;
            memcpy(sun.sun_path, c->u.path, strlen(c->u.path) + 1);
            sa = (const struct sockaddr *)&sun;
            salen = sizeof sun;
            family = AF_UNIX;
        } else {
            if (!c->next_addr) {
                connect_failed(c, c->last_connect_errno ? c->last_connect_errno : EHOSTUNREACH,
                               now_ms);
                return;
            }
            sa = c->next_addr->ai_addr;
            salen = c->next_addr->ai_addrlen;
            family = c->next_addr->ai_family;
            c->cur_addr = c->next_addr;
            c->next_addr = c->next_addr->ai_next;
        }

        c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            c->last_connect_errno = errno;
            continue;
        }
        if (connect(c->fd, sa, salen) == 0) {
            socket_ready(c, now_ms);
            return;
        }
        /* EINTR: a signal arrived, and the connection goes on being made
         * asynchronously (POSIX), as with EINPROGRESS; calling connect()
         * again would only find EALREADY.  (A unix socket's EAGAIN means a
         * full backlog: a failure, not "in progress".) */
        if (errno == EINPROGRESS || errno == EINTR) {
            c->state = CONN_CONNECTING;
            return;
        }
        c->last_connect_errno = errno;
        close(c->fd);
        c->fd = -1;
    }
}

int conn_resolve(conn *c, leasehold_error *err)
{
    if (c->u.kind == URL_UNIX)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", c->u.port);
    int rc = getaddrinfo(c->u.host, port, &hints, &list);
    if (rc != 0) {
        const char *why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
        return error_set(err, LEASEHOLD_ERESOLVE, "%s: host name did not resolve: %s", c->u.display,
                         why);
    }
    if (c->addrs)
        freeaddrinfo(c->addrs);
    c->addrs = list;
    c->next_addr = c->cur_addr = NULL; /* an attempt under way must not use the freed list */
    return 0;
}

/* Starts one attempt over every address.  Resolves first if conn_resolve()
 * was never called (which blocks). */
static int start_attempt(conn *c, uint64_t now_ms)
{
    unsigned downs = c->downs;
    c->reconnect_at_ms = UINT64_MAX;
    c->connect_deadline_ms = now_ms + c->opt.connect_timeout_ms;
    c->last_connect_errno = 0;
    if (c->u.kind == URL_TCP && !c->addrs) {
        leasehold_error err;
        int rc = conn_resolve(c, &err);
        if (rc) {
            report_down(c, rc, false, now_ms, err.msg);
            return rc;
        }
    }
    c->next_addr = c->addrs;
    c->state = CONN_CONNECTING;
    try_next_address(c, now_ms);
    /* A failure that happened at once (a refused unix socket...) is also
     * returned. */
    return c->downs != downs ? c->last_down_code : 0;
}

int conn_connect(conn *c, uint64_t now_ms)
{
    if (c->state != CONN_DOWN && c->state != CONN_CLOSED)
        return -EISCONN;
    enter(c);
    int rc = start_attempt(c, now_ms);
    leave(c);
    return rc;
}

int conn_adopt_fd(conn *c, int fd, uint64_t now_ms)
{
    if (c->state != CONN_DOWN && c->state != CONN_CLOSED)
        return -EISCONN;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    enter(c);
    c->fd = fd;
    c->reconnect_at_ms = UINT64_MAX;
    c->connect_deadline_ms = now_ms + c->opt.connect_timeout_ms;
    socket_ready(c, now_ms);
    leave(c);
    return 0;
}

/* The non-blocking connect() finished: SO_ERROR says how. */
static void connect_done(conn *c, uint64_t now_ms)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    if (e == 0) {
        socket_ready(c, now_ms);
        return;
    }
    c->last_connect_errno = e;
    close(c->fd);
    c->fd = -1;
    try_next_address(c, now_ms);
}

/* ---------------------------------------------------------------- I/O */

/* The caller's clock read again, never before now_ms. */
static uint64_t clock_again(const conn *c, uint64_t now_ms)
{
    uint64_t t = c->opt.clock_ms ? c->opt.clock_ms() : clock_now_ms();
    return t > now_ms ? t : now_ms;
}

/* Hands every complete reply in the reader to its command.  *handed counts
 * the replies handed out in this conn_on_io: each after the first gets the
 * clock read again, since handlers before it may have taken a while, and
 * *now moves with it.  Returns false if the connection went down
 * meanwhile. */
static bool deliver_replies(conn *c, uint64_t *now, unsigned *handed)
{
    unsigned gen = c->generation;
    while (true) {
        void *obj = NULL;
        if (redisReaderGetReply(c->reader, &obj) != REDIS_OK) {
            if (c->oversized_array)
                conn_go_down(c, LEASEHOLD_EPROTO, false, *now,
                             "a reply announced an array of %d elements, more than any reply "
                             "leasehold expects (%d): out of step with Redis",
                             c->oversized_array, CONN_REPLY_ARRAY_MAX);
            else
                conn_go_down(c, LEASEHOLD_EPROTO, false, *now, "protocol error in reply: %s",
                             c->reader->errstr);
            c->oversized_array = 0;
            return false;
        }
        if (!obj)
            return true;
        conn_reply *r = obj;
        if ((*handed)++)
            *now = clock_again(c, *now);
        uint64_t now_ms = *now;
        if (c->h.on_push && c->h.on_push(c->arg, c, r, now_ms)) {
            conn_reply_free(r);
            if (c->generation != gen)
                return false;
            continue;
        }
        if (c->queue_len == 0) {
            char head[48] = "";
            if (r->str)
                snprintf(head, sizeof head, "%s", r->str);
            conn_reply_free(r);
            conn_go_down(c, LEASEHOLD_EPROTO, false, now_ms,
                         "reply with no command pending (\"%s\"): out of step with Redis", head);
            return false;
        }
        pending p = queue_pop(c);
        if (p.kind == PENDING_USER) {
            if (c->h.on_reply)
                c->h.on_reply(c->arg, c, p.tag, r, now_ms);
        } else {
            conn_handshake_reply(c, p.kind, r, now_ms);
        }
        conn_reply_free(r);
        if (c->generation != gen)
            return false;
    }
}

/* Reads what the socket has, up to a bound, and delivers the replies
 * (*now moves as deliver_replies says).  Returns false if the connection
 * went down. */
static bool read_socket(conn *c, short revents, uint64_t *now)
{
    char buf[READ_CHUNK];
    unsigned handed = 0;
    for (int i = 0; i < READS_PER_CALL; i++) {
        ssize_t n = sock_read(c, buf, sizeof buf);
        uint64_t now_ms = *now;
        if (n > 0) {
            c->heard = true;
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                conn_go_down(c, LEASEHOLD_ENOMEM, false, now_ms, "out of memory reading a reply");
                return false;
            }
            if (!deliver_replies(c, now, &handed))
                return false;
            continue;
        }
        if (n == 0) {
            conn_go_down(c, LEASEHOLD_ECONNRESET, true, now_ms, "connection closed by Redis");
            return false;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!(revents & POLLERR))
                return true;
            int e = 0;
            socklen_t len = sizeof e;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len);
            if (e == 0)
                return true;
            errno = e;
        }
        if (conn_tls_failed(c, errno, now_ms))
            return false;
        if (errno == ECONNRESET && !c->opt.tls && !c->heard && c->state == CONN_HANDSHAKE &&
            c->u.kind == URL_TCP)
            conn_probe_start(c, PROBE_FOR_TLS, now_ms);
        else if (errno == ECONNRESET)
            conn_go_down(c, LEASEHOLD_ECONNRESET, true, now_ms, "connection reset by Redis");
        else
            conn_go_down(c, conn_errno_code(errno), false, now_ms, "read failed: %s",
                         strerror(errno));
        return false;
    }
    /* A plain socket's unread bytes wake poll() again; TLS may hold them
     * already decrypted, where poll() cannot see them. */
    c->read_again = conn_tls_buffered(c);
    return true;
}

/* A send() failure on an established connection: the peer is gone. */
static void write_failed(conn *c, int e, uint64_t now_ms)
{
    if (conn_tls_failed(c, e, now_ms))
        return;
    if (e == EPIPE || e == ECONNRESET)
        conn_go_down(c, LEASEHOLD_ECONNRESET, true, now_ms, "connection closed by Redis");
    else
        conn_go_down(c, conn_errno_code(e), false, now_ms, "write failed: %s", strerror(e));
}

void conn_on_io(conn *c, short revents, uint64_t now_ms)
{
    if (c->fd < 0 || revents == 0)
        return;
    enter(c);
    unsigned gen = c->generation;
    if (revents & POLLNVAL) {
        conn_go_down(c, LEASEHOLD_EIO, false, now_ms, "socket is no longer valid");
    } else if (c->state == CONN_CONNECTING && c->tls.handshaking) {
        conn_tls_step(c, now_ms);
    } else if (c->state == CONN_CONNECTING && c->probe.kind) {
        conn_probe_io(c, revents, now_ms);
    } else if (c->state == CONN_CONNECTING) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            connect_done(c, now_ms);
    } else {
        int e = 0;
        if ((revents & (POLLIN | POLLHUP | POLLERR)) || (c->tls.want_write && (revents & POLLOUT)))
            read_socket(c, revents, &now_ms);
        if (c->generation == gen && c->fd >= 0)
            e = c->write_errno ? c->write_errno : conn_flush(c);
        if (e)
            write_failed(c, e, now_ms);
    }
    leave(c);
}

/* ------------------------------------------------------------- timers */

uint64_t conn_wake_at(const conn *c)
{
    switch (c->state) {
    case CONN_DOWN:
        return c->reconnect_at_ms;
    case CONN_CONNECTING:
        if (c->tls.handshaking && c->tls.first_len == 0 &&
            c->tls.probe_at_ms < c->connect_deadline_ms)
            return c->tls.probe_at_ms;
        return c->connect_deadline_ms;
    case CONN_HANDSHAKE:
        return c->read_again ? 0 : c->connect_deadline_ms;
    case CONN_READY:
        if (c->write_errno || c->read_again)
            return 0;
        if (c->queue_len == 0)
            return UINT64_MAX;
        return c->queue[c->queue_head].sent_ms + c->opt.command_timeout_ms;
    case CONN_CLOSED:
    default:
        return UINT64_MAX;
    }
}

void conn_tick(conn *c, uint64_t now_ms)
{
    if (now_ms < conn_wake_at(c))
        return;
    enter(c);
    if (c->read_again && (c->state == CONN_HANDSHAKE || c->state == CONN_READY)) {
        read_socket(c, 0, &now_ms);
        leave(c);
        return;
    }
    switch (c->state) {
    case CONN_DOWN:
        if (c->h.before_attempt && !c->h.before_attempt(c->arg, c, now_ms)) {
            if (c->state == CONN_DOWN && c->reconnect_at_ms <= now_ms)
                c->reconnect_at_ms = UINT64_MAX; /* parked until the owner acts */
            break;
        }
        if (c->state == CONN_DOWN)
            start_attempt(c, now_ms);
        break;
    case CONN_CONNECTING:
        if (c->tls.handshaking && now_ms < c->connect_deadline_ms)
            conn_probe_start(c, PROBE_FOR_PLAIN, now_ms);
        else if (c->probe.kind)
            conn_probe_timeout(c, now_ms);
        else if (c->tls.handshaking)
            conn_go_down(c, LEASEHOLD_ETIMEDOUT, false, now_ms,
                         "TLS handshake timed out after %u ms", c->opt.connect_timeout_ms);
        else
            conn_go_down(c, LEASEHOLD_ETIMEDOUT, false, now_ms, "connect timed out after %u ms",
                         c->opt.connect_timeout_ms);
        break;
    case CONN_HANDSHAKE:
        conn_go_down(c, LEASEHOLD_ETIMEDOUT, false, now_ms,
                     "no answer to %s: handshake timed out after %u ms",
                     conn_handshake_name(c->queue[c->queue_head].kind), c->opt.connect_timeout_ms);
        break;
    case CONN_READY:
        if (c->write_errno)
            write_failed(c, c->write_errno, now_ms);
        else
            conn_go_down(c, LEASEHOLD_ETIMEDOUT, false, now_ms, "command timed out after %u ms",
                         c->opt.command_timeout_ms);
        break;
    case CONN_CLOSED:
        break;
    }
    leave(c);
}

/* ------------------------------------------------------------ the rest */

conn *conn_new(const url *u, const conn_options *opt, const conn_handler *h, void *arg)
{
    assert(opt->connect_timeout_ms > 0 && opt->command_timeout_ms > 0 && opt->backoff_min_ms > 0);
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->u = *u;
    c->opt = *opt;
    if (c->opt.backoff_max_ms < c->opt.backoff_min_ms)
        c->opt.backoff_max_ms = c->opt.backoff_min_ms;
    c->h = *h;
    c->arg = arg;
    c->state = CONN_DOWN;
    c->fd = -1;
    c->reconnect_at_ms = UINT64_MAX;
    c->rng = opt->seed;
    return c;
}

int conn_send(conn *c, int argc, const char **argv, const size_t *argvlen, uint64_t tag,
              uint64_t now_ms)
{
    if (c->state != CONN_READY)
        return -ENOTCONN;
    if (!conn_queue_push(c, PENDING_USER, tag, now_ms))
        return LEASEHOLD_ENOMEM;
    int rc = conn_out_append(c, argc, argv, argvlen);
    if (rc) {
        c->queue_len--; /* keep the queue in step with the bytes sent */
        return rc;
    }
    if (!c->write_errno)
        c->write_errno = conn_flush(c);
    return 0;
}

conn_state conn_get_state(const conn *c)
{
    return c->state;
}

int conn_fd(const conn *c)
{
    return c->fd;
}

short conn_poll_events(const conn *c)
{
    switch (c->state) {
    case CONN_CONNECTING:
        if (c->tls.handshaking)
            return c->tls.want_write ? POLLOUT : POLLIN;
        if (c->probe.kind)
            return c->probe.sent ? POLLIN : POLLOUT;
        return POLLOUT;
    case CONN_HANDSHAKE:
    case CONN_READY: {
        bool out = (c->out_off < c->out_len && !c->write_errno) || c->tls.want_write;
        return (short)(POLLIN | (out ? POLLOUT : 0));
    }
    default:
        return 0;
    }
}

size_t conn_pending(const conn *c)
{
    return c->queue_len;
}

const char *conn_display(const conn *c)
{
    return c->u.display;
}

void conn_fail(conn *c, int code, const char *msg, uint64_t now_ms)
{
    assert(code < 0);
    if (c->state == CONN_DOWN || c->state == CONN_CLOSED)
        return; /* no connection to fail */
    enter(c);
    conn_go_down(c, code, false, now_ms, "%s", msg);
    leave(c);
}

int conn_set_target(conn *c, const url *u)
{
    if (c->state != CONN_DOWN && c->state != CONN_CLOSED)
        return -EISCONN;
    explicit_bzero(c->u.password, sizeof c->u.password);
    c->u = *u;
    if (c->addrs)
        freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = c->cur_addr = NULL;
    return 0;
}

void conn_attempt_failed(conn *c, int code, const char *msg, uint64_t now_ms)
{
    assert(code < 0);
    if (c->state != CONN_DOWN && c->state != CONN_CLOSED)
        return;
    enter(c);
    report_down(c, code, false, now_ms, msg);
    leave(c);
}

void conn_close(conn *c)
{
    conn_drop_socket(c);
    c->state = CONN_CLOSED;
    c->reconnect_at_ms = UINT64_MAX;
}

void conn_free(conn *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        conn_close(c);
        c->free_requested = true;
        return;
    }
    conn_drop_socket(c);
    if (c->addrs)
        freeaddrinfo(c->addrs);
    explicit_bzero(c->u.password, sizeof c->u.password);
    if (c->out)
        explicit_bzero(c->out, c->out_cap); /* it held AUTH's password */
    free(c->out);
    free(c->queue);
    free(c);
}
