/*
 * chaos_proxy — a TCP proxy between one candidate and Redis that breaks the
 * network on command.
 *
 *     chaos_proxy TARGET_PORT
 *
 * Listens on 127.0.0.1, port chosen by the kernel, and prints "port <P>" as
 * its first line.  Every connection accepted is paired with a connection of
 * its own to 127.0.0.1:TARGET_PORT, and nowhere else.  Commands come one per
 * line on stdin; each is answered "ok" or "error <why>" on stdout:
 *
 *     pass          forward both ways at once
 *     blackhole     forward nothing either way: the sockets stay open, nothing
 *                   is read, written or accepted until the next pass/latency
 *     latency <ms>  forward each chunk ms after it was read
 *     reset         RST every current connection (SO_LINGER {1,0}, close);
 *                   new connections are accepted as before
 *     keep on|off   keep on: when a connection to Redis ends or fails (Redis
 *                   restarted), the candidate's connection stays open and a
 *                   new one to Redis is made (retried every RECONNECT_MS)
 *                   and relayed from then on, as a connection-pooling proxy
 *                   would; what was in flight is lost (the candidate sees a
 *                   timeout, never an end of stream).  keep off (the
 *                   default): the candidate's connection ends with Redis's
 *
 * EOF on stdin ends the proxy (exit 0).  One thread, one poll loop; time
 * comes from CLOCK_MONOTONIC.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX       16384
#define QUEUE_MAX_BYTES (1u << 20) /* per direction: stop reading beyond this */
#define LATENCY_MAX_MS  600000u
#define COMMAND_MAX     256
#define RECONNECT_MS    20u /* keep mode: a failed reconnect is tried again this much later */

/* Bytes read from one side, due to be written to the other at due_ms.  A
 * chunk of length 0 stands for the end of the stream (EOF was read). */
typedef struct chunk {
    struct chunk *next;
    uint64_t due_ms;
    size_t len, sent;
    char data[];
} chunk;

/* What is on its way from one socket to the other, in order. */
typedef struct queue {
    chunk *head, *tail;
    size_t bytes;
    bool eof_queued; /* the reading side has ended: read no more from it */
} queue;

/* One proxied connection: the candidate's socket and ours to Redis.
 * to_up carries candidate → Redis, to_down Redis → candidate. */
typedef struct pair {
    int down, up;          /* up is -1 while a kept pair waits to reconnect */
    bool connecting;       /* up's non-blocking connect has not completed yet */
    uint64_t reconnect_ms; /* up == -1: when to try connecting again */
    bool down_hup, up_hup; /* poll reported POLLHUP on that socket */
    queue to_up, to_down;
    struct pair *next;
} pair;

typedef enum mode { MODE_PASS, MODE_BLACKHOLE } mode;

typedef struct proxy {
    int listener;
    int target_port;
    mode mode;
    bool keep; /* keep candidates' connections across Redis's end (keep on) */
    uint32_t latency_ms;
    pair *pairs;
    char cmd[COMMAND_MAX];
    size_t cmd_len;
    bool cmd_overlong; /* the line being read is too long: answer an error at its end */
} proxy;

/* Milliseconds of CLOCK_MONOTONIC. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes one line to the controller; a proxy whose controller has gone has
 * no reason to go on, so a failed write ends it. */
__attribute__((format(printf, 1, 2))) static void answer(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    if (n < 0 || fflush(stdout) != 0)
        exit(1);
}

static void queue_clear(queue *q)
{
    while (q->head) {
        chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* Appends len bytes (len 0: the end of the stream) due at due_ms. */
static bool queue_push(queue *q, const char *data, size_t len, uint64_t due_ms)
{
    chunk *c = malloc(sizeof *c + len);
    if (!c)
        return false;
    c->next = NULL;
    c->due_ms = due_ms;
    c->len = len;
    c->sent = 0;
    memcpy(c->data, data, len);
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += len;
    if (len == 0)
        q->eof_queued = true;
    return true;
}

/* Closes fd so that the peer sees a reset rather than an orderly end. */
static void close_with_rst(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Ends a pair: both sockets closed (reset when rst), queues dropped. */
static void pair_close(pair *p, bool rst)
{
    if (rst) {
        close_with_rst(p->down);
        if (p->up >= 0)
            close_with_rst(p->up);
    } else {
        close(p->down);
        if (p->up >= 0)
            close(p->up);
    }
    queue_clear(&p->to_up);
    queue_clear(&p->to_down);
    p->down = p->up = -1;
}

/* Starts a non-blocking connect to Redis: the socket, with *connecting
 * set when it has not completed yet; or -1 when it failed at once. */
static int connect_up(const proxy *px, bool *connecting)
{
    int up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up < 0)
        return -1;
    int one = 1;
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)px->target_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *connecting = false;
    if (connect(up, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS) {
            close(up);
            return -1;
        }
        *connecting = true;
    }
    return up;
}

/* Keep mode: the pair's connection to Redis ended or failed.  It is closed,
 * what was on its way either way is dropped (a reply half relayed cannot be
 * finished by another connection; a command half sent cannot be either), and
 * a new connection is due at once.  The candidate's side is untouched. */
static void lose_up(pair *p, uint64_t now)
{
    if (p->up >= 0)
        close(p->up);
    p->up = -1;
    p->connecting = false;
    p->up_hup = false;
    queue_clear(&p->to_up);
    queue_clear(&p->to_down);
    p->to_down.eof_queued = false;
    p->reconnect_ms = now;
}

/* Keep mode: starts the new connection of every pair whose reconnect is
 * due; one that fails at once is tried again RECONNECT_MS later. */
static void reconnect_due(proxy *px, uint64_t now)
{
    for (pair *p = px->pairs; p; p = p->next) {
        if (p->up >= 0 || p->reconnect_ms > now)
            continue;
        p->up = connect_up(px, &p->connecting);
        if (p->up < 0)
            p->reconnect_ms = now + RECONNECT_MS;
    }
}

/* Accepts one candidate connection and starts the paired connect to Redis.
 * A connect that fails at once (Redis down) resets the candidate, as a
 * refused connection would; in keep mode the candidate is kept and the
 * connect retried. */
static void accept_one(proxy *px)
{
    int down = accept4(px->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (down < 0)
        return;
    int one = 1;
    setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool connecting = false;
    int up = connect_up(px, &connecting);
    if (up < 0 && !px->keep) {
        close_with_rst(down);
        return;
    }
    pair *p = calloc(1, sizeof *p);
    if (!p) {
        close_with_rst(down);
        if (up >= 0)
            close(up);
        return;
    }
    p->down = down;
    p->up = up;
    p->connecting = connecting;
    p->reconnect_ms = now_ms() + RECONNECT_MS;
    p->next = px->pairs;
    px->pairs = p;
}

/* Reads what from has for q.  Returns false when the pair must end with a
 * reset (a read error, or no memory).  *eof is set when the stream ended
 * and stop_at_eof asked not to queue its end (keep mode, from Redis). */
static bool pump_in(proxy *px, int from, queue *q, bool stop_at_eof, bool *eof)
{
    char buf[CHUNK_MAX];
    ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0 && stop_at_eof) {
        *eof = true;
        return true;
    }
    return queue_push(q, buf, (size_t)n, now_ms() + px->latency_ms);
}

/* Writes the chunks of q that are due to `to`.  Returns false when the pair
 * must end: *rst says whether with a reset (a write error) or in order (the
 * end of the stream was reached). */
static bool pump_out(int to, queue *q, uint64_t now, bool *rst)
{
    while (q->head && q->head->due_ms <= now) {
        chunk *c = q->head;
        if (c->len == 0) {
            *rst = false;
            return false;
        }
        ssize_t n = send(to, c->data + c->sent, c->len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return true;
            *rst = true;
            return false;
        }
        c->sent += (size_t)n;
        q->bytes -= (size_t)n;
        if (c->sent < c->len)
            return true;
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        free(c);
    }
    return true;
}

/* Resets every current connection; the listener stays. */
static void reset_all(proxy *px)
{
    while (px->pairs) {
        pair *p = px->pairs;
        px->pairs = p->next;
        pair_close(p, true);
        free(p);
    }
}

/* Parses a whole number of milliseconds in [0, LATENCY_MAX_MS]. */
static bool parse_ms(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v > LATENCY_MAX_MS)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Carries out one command line and answers it. */
static void run_command(proxy *px, char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        line[--len] = '\0';
    if (strcmp(line, "pass") == 0) {
        px->mode = MODE_PASS;
        px->latency_ms = 0;
    } else if (strcmp(line, "blackhole") == 0) {
        px->mode = MODE_BLACKHOLE;
    } else if (strncmp(line, "latency ", 8) == 0) {
        uint32_t ms;
        if (!parse_ms(line + 8, &ms)) {
            answer("error latency wants whole milliseconds from 0 to 600000, not '%s'\n", line + 8);
            return;
        }
        px->mode = MODE_PASS;
        px->latency_ms = ms;
    } else if (strcmp(line, "reset") == 0) {
        reset_all(px);
    } else if (strcmp(line, "keep on") == 0 || strcmp(line, "keep off") == 0) {
        px->keep = line[6] == 'n';
    } else {
        answer("error unknown command '%s' (pass, blackhole, latency <ms>, reset, keep on|off)\n",
               line);
        return;
    }
    answer("ok\n");
}

/* Reads stdin and runs every complete line.  Returns false at EOF. */
static bool read_commands(proxy *px)
{
    char buf[512];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            px->cmd[px->cmd_len] = '\0';
            if (px->cmd_overlong)
                answer("error command longer than %zu bytes\n", sizeof px->cmd - 1);
            else
                run_command(px, px->cmd);
            px->cmd_len = 0;
            px->cmd_overlong = false;
        } else if (px->cmd_len + 1 < sizeof px->cmd) {
            px->cmd[px->cmd_len++] = buf[i];
        } else {
            px->cmd_overlong = true;
        }
    }
    return true;
}

static int listen_loopback(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    return ntohs(a.sin_port);
}

/* True while a side may be read: its stream has not ended and what it sent
 * still waiting has room. */
static bool wants_read(const queue *in)
{
    return !in->eof_queued && in->bytes < QUEUE_MAX_BYTES;
}

/*
 * The poll entry for one side of a pair.  In a blackhole the side is left out
 * altogether (fd -1): POLLHUP and POLLERR are reported whether asked for or
 * not, and a peer that gave up during the blackhole would otherwise spin the
 * loop; its end is noticed at the next pass.  A side that has hung up is left
 * out once there is nothing more to read from it, for the same reason.
 */
static struct pollfd side_poll(const proxy *px, int fd, bool hup, const queue *in, const queue *out,
                               bool writable, uint64_t now)
{
    struct pollfd pfd = {.fd = -1};
    if (px->mode == MODE_BLACKHOLE || (hup && !wants_read(in)))
        return pfd;
    pfd.fd = fd;
    if (wants_read(in))
        pfd.events |= POLLIN;
    if (writable && out->head && out->head->due_ms <= now)
        pfd.events |= POLLOUT;
    return pfd;
}

/* The earliest instant after now a queued chunk falls due or a kept pair
 * reconnects, or UINT64_MAX. */
static uint64_t next_due(const proxy *px, uint64_t now)
{
    uint64_t due = UINT64_MAX;
    if (px->mode == MODE_BLACKHOLE)
        return due;
    for (const pair *p = px->pairs; p; p = p->next) {
        if (p->up < 0 && p->reconnect_ms < due)
            due = p->reconnect_ms > now ? p->reconnect_ms : now;
        const chunk *heads[2] = {p->to_up.head, p->to_down.head};
        for (int i = 0; i < 2; i++)
            if (heads[i] && heads[i]->due_ms > now && heads[i]->due_ms < due)
                due = heads[i]->due_ms;
    }
    return due;
}

/*
 * Handles what poll reported for one pair, then writes whatever is due both
 * ways.  An error on either socket resets the pair; a side that hung up is
 * drained and then only remembered (see side_poll).  In keep mode, an end or
 * error of the Redis side only replaces that connection (lose_up).  Returns
 * false when the pair has ended (and its sockets are closed).
 */
static bool serve_pair(proxy *px, pair *p, short down_rev, short up_rev)
{
    if (px->mode == MODE_BLACKHOLE)
        return true;
    uint64_t now = now_ms();
    if (p->up < 0)
        up_rev = 0;
    if (p->connecting && (up_rev & (POLLOUT | POLLERR | POLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(p->up, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            if (!px->keep) {
                pair_close(p, true);
                return false;
            }
            lose_up(p, now);
            p->reconnect_ms = now + RECONNECT_MS;
        } else {
            p->connecting = false;
        }
        up_rev = 0;
    }
    if (down_rev & POLLERR) {
        pair_close(p, true);
        return false;
    }
    if (up_rev & POLLERR) {
        if (!px->keep) {
            pair_close(p, true);
            return false;
        }
        lose_up(p, now);
        up_rev = 0;
    }
    if ((down_rev & (POLLIN | POLLHUP)) && wants_read(&p->to_up) &&
        !pump_in(px, p->down, &p->to_up, false, NULL)) {
        pair_close(p, true);
        return false;
    }
    bool up_eof = false;
    if ((up_rev & (POLLIN | POLLHUP)) && wants_read(&p->to_down)) {
        if (!pump_in(px, p->up, &p->to_down, px->keep, &up_eof)) {
            if (!px->keep) {
                pair_close(p, true);
                return false;
            }
            up_eof = true;
        }
        if (up_eof) {
            lose_up(p, now);
            up_rev = 0;
        }
    }
    p->down_hup |= (down_rev & POLLHUP) != 0;
    p->up_hup |= (up_rev & POLLHUP) != 0;
    now = now_ms();
    bool rst = false;
    if (p->up >= 0 && !p->connecting && !pump_out(p->up, &p->to_up, now, &rst)) {
        if (!px->keep || !rst) {
            pair_close(p, rst);
            return false;
        }
        lose_up(p, now);
    }
    if (!pump_out(p->down, &p->to_down, now, &rst)) {
        pair_close(p, rst);
        return false;
    }
    return true;
}

/* The poll loop: stdin, the listener, then two entries per pair. */
static int run(proxy *px)
{
    struct pollfd *fds = NULL;
    size_t cap = 0;
    for (;;) {
        size_t n_pairs = 0;
        for (pair *p = px->pairs; p; p = p->next)
            n_pairs++;
        if (2 + 2 * n_pairs > cap) {
            cap = 2 * (2 + 2 * n_pairs);
            struct pollfd *grown = realloc(fds, cap * sizeof *fds);
            if (!grown) {
                fprintf(stderr, "chaos_proxy: out of memory for %zu connections\n", n_pairs);
                free(fds);
                return 1;
            }
            fds = grown;
        }
        uint64_t now = now_ms();
        fds[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        fds[1] =
            (struct pollfd){.fd = px->listener, .events = px->mode == MODE_BLACKHOLE ? 0 : POLLIN};
        size_t i = 2;
        for (pair *p = px->pairs; p; p = p->next, i += 2) {
            fds[i] = side_poll(px, p->down, p->down_hup, &p->to_up, &p->to_down, true, now);
            if (p->up < 0)
                fds[i + 1] = (struct pollfd){.fd = -1};
            else if (p->connecting)
                fds[i + 1] = (struct pollfd){.fd = px->mode == MODE_BLACKHOLE ? -1 : p->up,
                                             .events = POLLOUT};
            else
                fds[i + 1] = side_poll(px, p->up, p->up_hup, &p->to_down, &p->to_up, true, now);
        }
        uint64_t due = next_due(px, now);
        int timeout = due == UINT64_MAX ? -1 : (int)(due - now);
        if (poll(fds, i, timeout) < 0 && errno != EINTR) {
            perror("chaos_proxy: poll");
            free(fds);
            return 1;
        }
        /* Pairs first: a command below may reset them and change the list. */
        i = 2;
        for (pair **link = &px->pairs; *link; i += 2) {
            pair *p = *link;
            if (serve_pair(px, p, fds[i].revents, fds[i + 1].revents)) {
                link = &p->next;
            } else {
                *link = p->next;
                free(p);
            }
        }
        if ((fds[1].revents & POLLIN) && px->mode != MODE_BLACKHOLE)
            accept_one(px);
        if (px->mode != MODE_BLACKHOLE)
            reconnect_due(px, now_ms());
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !read_commands(px)) {
            reset_all(px);
            free(fds);
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    char *end;
    long target = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || target < 1 || target > 65535) {
        fprintf(stderr, "usage: chaos_proxy TARGET_PORT (1-65535; Redis on 127.0.0.1)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    proxy px = {.target_port = (int)target, .mode = MODE_PASS};
    px.listener = listen_loopback();
    int port = px.listener >= 0 ? listen_port(px.listener) : -1;
    if (port < 0) {
        perror("chaos_proxy: listen on 127.0.0.1");
        return 1;
    }
    answer("port %d\n", port);
    return run(&px);
}
