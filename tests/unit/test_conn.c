/* test_conn.c — the connection against a scripted peer on a socketpair(),
 * and against real loopback sockets for connect, refusal and back-off.
 *
 * Time is simulated: every conn_* call gets a now_ms chosen by the test, so
 * timeouts are checked without waiting.  Real waiting happens only for a
 * loopback connect to complete, through poll() with a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"

#define MAX_EVENTS 64
#define SHOWN_MAX  512

enum event_kind { EV_READY, EV_REPLY, EV_DOWN };

typedef struct event {
    enum event_kind kind;
    uint64_t tag;
    char reply[SHOWN_MAX]; /* EV_REPLY: the reply as show_reply writes it */
    int code;              /* EV_DOWN */
    bool by_peer;
    char msg[SHOWN_MAX];
    uint64_t now_ms;
} event;

/* What happens inside a handler, for the re-entrancy tests; REACT_SLOW: the
 * handler takes 500 ms by the test's clock. */
enum reaction { REACT_NONE, REACT_CLOSE, REACT_FREE, REACT_SEND, REACT_FAIL, REACT_SLOW };

/* The conn's clock (conn_options.clock_ms): the simulated time as far as a
 * handler moved it; 0 (never later than the now_ms a test passes) unless a
 * test moves it. */
static uint64_t clock_now;

static uint64_t test_clock(void)
{
    return clock_now;
}

typedef struct harness {
    conn *c;
    int peer; /* the test's end of the socketpair, -1 if none */
    event ev[MAX_EVENTS];
    size_t n;
    enum reaction on_reply_do, on_down_do, on_ready_do;
    bool freed;
} harness;

/* Writes r as text: nil, :42, $str, +status, -error, [a,b]. */
static void show_reply(const conn_reply *r, char *out, size_t cap)
{
    size_t n = strlen(out);
    switch (r->type) {
    case CONN_REPLY_NIL:
        snprintf(out + n, cap - n, "nil");
        break;
    case CONN_REPLY_INTEGER:
        snprintf(out + n, cap - n, ":%lld", r->integer);
        break;
    case CONN_REPLY_STRING:
        assert_int_equal(strlen(r->str), r->len);
        snprintf(out + n, cap - n, "$%s", r->str);
        break;
    case CONN_REPLY_STATUS:
        snprintf(out + n, cap - n, "+%s", r->str);
        break;
    case CONN_REPLY_ERROR:
        snprintf(out + n, cap - n, "-%s", r->str);
        break;
    case CONN_REPLY_ARRAY:
        snprintf(out + n, cap - n, "[");
        for (size_t i = 0; i < r->elements; i++) {
            if (i)
                snprintf(out + strlen(out), cap - strlen(out), ",");
            show_reply(&r->element[i], out, cap);
        }
        snprintf(out + strlen(out), cap - strlen(out), "]");
        break;
    }
}

static event *record(harness *t, enum event_kind kind, uint64_t now_ms)
{
    assert_true(t->n < MAX_EVENTS);
    event *e = &t->ev[t->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->now_ms = now_ms;
    return e;
}

static void react(harness *t, conn *c, enum reaction what, uint64_t now_ms)
{
    if (what == REACT_CLOSE) {
        conn_close(c);
    } else if (what == REACT_FREE) {
        conn_free(c);
        t->freed = true;
    } else if (what == REACT_SEND) {
        const char *argv[] = {"PING"};
        assert_int_equal(conn_send(c, 1, argv, NULL, 99, now_ms), 0);
    } else if (what == REACT_FAIL) {
        conn_fail(c, LEASEHOLD_EPROTO, "reply matches no command", now_ms);
    } else if (what == REACT_SLOW) {
        clock_now = now_ms + 500;
    }
}

static void on_ready(void *arg, conn *c, uint64_t now_ms)
{
    harness *t = arg;
    record(t, EV_READY, now_ms);
    react(t, c, t->on_ready_do, now_ms);
}

static void on_reply(void *arg, conn *c, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    harness *t = arg;
    event *e = record(t, EV_REPLY, now_ms);
    e->tag = tag;
    show_reply(r, e->reply, sizeof e->reply);
    react(t, c, t->on_reply_do, now_ms);
}

static void on_down(void *arg, conn *c, int code, bool by_peer, const char *msg, uint64_t now_ms)
{
    harness *t = arg;
    event *e = record(t, EV_DOWN, now_ms);
    e->code = code;
    e->by_peer = by_peer;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    react(t, c, t->on_down_do, now_ms);
}

static const conn_handler handler = {on_ready, on_reply, on_down};

static conn_options options(void)
{
    return (conn_options){.connect_timeout_ms = 1000,
                          .command_timeout_ms = 250,
                          .backoff_min_ms = 100,
                          .backoff_max_ms = 1000,
                          .seed = 42,
                          .clock_ms = test_clock};
}

static void make(harness *t, const char *url_s, const conn_options *opt)
{
    url u;
    leasehold_error err;
    memset(t, 0, sizeof *t);
    t->peer = -1;
    clock_now = 0;
    assert_int_equal(url_parse(url_s, &u, &err), 0);
    t->c = conn_new(&u, opt, &handler, t);
    assert_non_null(t->c);
}

/* A conn on a socketpair, adopted at now_ms. */
static void make_paired(harness *t, const char *url_s, uint64_t now_ms)
{
    conn_options opt = options();
    make(t, url_s, &opt);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t->peer = sv[1];
    assert_int_equal(conn_adopt_fd(t->c, sv[0], now_ms), 0);
}

/* Everything the conn has written to the peer so far. */
static void peer_read(harness *t, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(t->peer, out + n, cap - 1 - n, MSG_DONTWAIT);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
}

static void peer_write(harness *t, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(t->peer, s, len);
        assert_true(n > 0);
        s += n;
        len -= (size_t)n;
    }
}

/* A conn on a socketpair for a URL without AUTH or SELECT, its handshake
 * PING read and answered at now_ms: READY, no events recorded. */
static void make_ready(harness *t, const char *url_s, uint64_t now_ms)
{
    make_paired(t, url_s, now_ms);
    assert_int_equal(conn_get_state(t->c), CONN_HANDSHAKE);
    char got[64];
    peer_read(t, got, sizeof got);
    assert_string_equal(got, "*1\r\n$4\r\nPING\r\n");
    peer_write(t, "+PONG\r\n", 7);
    conn_on_io(t->c, POLLIN, now_ms);
    assert_int_equal(t->n, 1);
    assert_int_equal(t->ev[0].kind, EV_READY);
    assert_int_equal(conn_get_state(t->c), CONN_READY);
    t->n = 0;
}

static void destroy(harness *t)
{
    if (!t->freed)
        conn_free(t->c);
    if (t->peer >= 0)
        close(t->peer);
}

/* Feeds bytes from the peer and lets the conn read them. */
static void feed(harness *t, const char *s, size_t len, uint64_t now_ms)
{
    peer_write(t, s, len);
    conn_on_io(t->c, POLLIN, now_ms);
}

static void feed_str(harness *t, const char *s, uint64_t now_ms)
{
    feed(t, s, strlen(s), now_ms);
}

static void send_ping(harness *t, uint64_t tag, uint64_t now_ms)
{
    const char *argv[] = {"PING"};
    assert_int_equal(conn_send(t->c, 1, argv, NULL, tag, now_ms), 0);
}

static void assert_down(const event *e, int code, bool by_peer, const char *says)
{
    assert_int_equal(e->kind, EV_DOWN);
    if (e->code != code)
        fail_msg("down with %s (\"%s\"), expected %s", leasehold_errname(e->code), e->msg,
                 leasehold_errname(code));
    assert_int_equal(e->by_peer, by_peer);
    if (!strstr(e->msg, says))
        fail_msg("message \"%s\" does not say \"%s\"", e->msg, says);
}

/* ------------------------------------------------------------ parsing */

/* Replies of every kind, one after another on the wire, and how each must
 * reach on_reply. */
static const struct {
    const char *wire;
    const char *shown;
} script[] = {
    {"+OK\r\n", "+OK"},
    {":42\r\n", ":42"},
    {":-7\r\n", ":-7"},
    {"$5\r\nhello\r\n", "$hello"},
    {"$0\r\n\r\n", "$"},
    {"$-1\r\n", "nil"},
    {"-ERR unknown command 'FOO'\r\n", "-ERR unknown command 'FOO'"},
    {"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
     "-WRONGTYPE Operation against a key holding the wrong kind of value"},
    {"*0\r\n", "[]"},
    {"*-1\r\n", "nil"},
    {"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n*1\r\n+deep\r\n", "[:1,[$a,nil],[[+deep]]]"},
    {"*2\r\n$3\r\n1.5\r\n-NOSCRIPT No matching script\r\n", "[$1.5,-NOSCRIPT No matching script]"},
};
#define SCRIPT_LEN (sizeof script / sizeof script[0])

static size_t script_wire(char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < SCRIPT_LEN; i++) {
        memcpy(out + n, script[i].wire, strlen(script[i].wire));
        n += strlen(script[i].wire);
    }
    return n;
}

static void assert_script_replies(const harness *t, size_t count)
{
    assert_int_equal(t->n, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(t->ev[i].kind, EV_REPLY);
        assert_int_equal(t->ev[i].tag, 100 + i);
        assert_string_equal(t->ev[i].reply, script[i].shown);
    }
}

/* The whole script split in two at every byte position: each reply is
 * delivered exactly when its last byte has arrived, in order, with its
 * tag. */
static void test_replies_split_at_every_byte(void **state)
{
    (void)state;
    char wire[1024];
    size_t len = script_wire(wire);
    for (size_t cut = 1; cut < len; cut++) {
        harness t;
        make_ready(&t, "redis://127.0.0.1:6390", 0);
        for (size_t i = 0; i < SCRIPT_LEN; i++)
            send_ping(&t, 100 + i, 1);

        feed(&t, wire, cut, 2);
        size_t complete = 0, end = 0;
        while (complete < SCRIPT_LEN && end + strlen(script[complete].wire) <= cut)
            end += strlen(script[complete++].wire);
        assert_script_replies(&t, complete);
        assert_int_equal(conn_pending(t.c), SCRIPT_LEN - complete);

        feed(&t, wire + cut, len - cut, 3);
        assert_script_replies(&t, SCRIPT_LEN);
        assert_int_equal(conn_pending(t.c), 0);
        assert_int_equal(conn_get_state(t.c), CONN_READY);
        destroy(&t);
    }
}

/* One byte per read, and everything in one read. */
static void test_replies_bytewise_and_all_at_once(void **state)
{
    (void)state;
    char wire[1024];
    size_t len = script_wire(wire);
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    for (size_t i = 0; i < SCRIPT_LEN; i++)
        send_ping(&t, 100 + i, 1);
    for (size_t i = 0; i < len; i++)
        feed(&t, wire + i, 1, 2);
    assert_script_replies(&t, SCRIPT_LEN);
    destroy(&t);

    make_ready(&t, "redis://127.0.0.1:6390", 0);
    for (size_t i = 0; i < SCRIPT_LEN; i++)
        send_ping(&t, 100 + i, 1);
    feed(&t, wire, len, 2);
    assert_script_replies(&t, SCRIPT_LEN);
    destroy(&t);
}

/* A bulk reply larger than one read, and binary bytes in it. */
static void test_large_reply(void **state)
{
    (void)state;
    size_t size = 60000;
    char *wire = malloc(size + 32);
    assert_non_null(wire);
    int head = snprintf(wire, 32, "$%zu\r\n", size);
    memset(wire + head, 'x', size);
    memcpy(wire + head + size, "\r\n", 2);
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 7, 1);
    feed(&t, wire, (size_t)head + size + 2, 2);
    assert_int_equal(t.n, 1);
    assert_int_equal(strlen(t.ev[0].reply), SHOWN_MAX - 1); /* cut by show_reply */
    free(wire);
    destroy(&t);
}

/* Commands go out hiredis-encoded, pipelined, without waiting for replies. */
static void test_commands_encoded_and_pipelined(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    const char *argv[] = {"SET", "k", "a\0b", "PX", "2000"};
    size_t argvlen[] = {3, 1, 3, 2, 4};
    assert_int_equal(conn_send(t.c, 5, argv, argvlen, 1, 10), 0);
    send_ping(&t, 2, 11);
    char got[256];
    peer_read(&t, got, sizeof got);
    const char want[] = "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n$2\r\nPX\r\n$4\r\n2000\r\n"
                        "*1\r\n$4\r\nPING\r\n";
    assert_memory_equal(got, want, sizeof want - 1);
    assert_int_equal(conn_pending(t.c), 2);
    assert_int_equal(conn_poll_events(t.c), POLLIN);
    destroy(&t);
}

/* ------------------------------------------------------------- faults */

static void test_garbage_resets_with_eproto(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 1);
    send_ping(&t, 2, 1);
    feed_str(&t, "+OK\r\n?garbage\r\n", 5);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ev[0].reply, "+OK");
    assert_down(&t.ev[1], LEASEHOLD_EPROTO, false, "redis://127.0.0.1:6390: protocol error");
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_pending(t.c), 0);
    assert_int_equal(conn_fd(t.c), -1);
    assert_int_equal(conn_poll_events(t.c), 0);
    assert_int_equal(conn_wake_at(t.c), 5); /* first reconnect at once */
    destroy(&t);
}

/* An array header that announces more elements than any reply of ours has
 * is refused before anything is allocated for it. */
static void test_huge_array_header_resets_with_eproto(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 1);
    feed_str(&t, "*311111111\r\n", 2);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_EPROTO, false, "an array of 311111111 elements");
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    destroy(&t);
}

static void test_unsolicited_reply_resets_with_eproto(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 1);
    feed_str(&t, "+PONG\r\n+EXTRA\r\n", 2);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ev[0].reply, "+PONG");
    assert_down(&t.ev[1], LEASEHOLD_EPROTO, false, "no command pending (\"EXTRA\")");
    destroy(&t);
}

static void test_eof_mid_reply_is_down_by_peer(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 1);
    send_ping(&t, 2, 1);
    char sent[128];
    peer_read(&t, sent, sizeof sent); /* so that close() sends EOF, not a reset */
    peer_write(&t, ":1\r\n$5\r\nhel", 12);
    close(t.peer);
    t.peer = -1;
    conn_on_io(t.c, POLLIN | POLLHUP, 3);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.ev[0].reply, ":1");
    assert_down(&t.ev[1], LEASEHOLD_ECONNRESET, true,
                "redis://127.0.0.1:6390: connection closed by Redis");
    assert_int_equal(conn_pending(t.c), 0);
    destroy(&t);
}

/* A peer that closes with our command unread resets the connection: also
 * the peer's doing. */
static void test_reset_is_down_by_peer(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 1);
    close(t.peer);
    t.peer = -1;
    conn_on_io(t.c, POLLIN | POLLHUP | POLLERR, 3);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ECONNRESET, true, "redis://127.0.0.1:6390: connection ");
    destroy(&t);
}

/* The oldest unanswered command times the connection out, to the
 * millisecond, and only then. */
static void test_silent_peer_times_out(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX); /* idle: no timer */
    send_ping(&t, 1, 1000);
    send_ping(&t, 2, 1100);
    assert_int_equal(conn_wake_at(t.c), 1250);
    feed_str(&t, "+PONG\r\n", 1200);
    assert_int_equal(conn_wake_at(t.c), 1350);
    conn_tick(t.c, 1349);
    assert_int_equal(t.n, 1);
    conn_tick(t.c, 1350);
    assert_int_equal(t.n, 2);
    assert_down(&t.ev[1], LEASEHOLD_ETIMEDOUT, false,
                "redis://127.0.0.1:6390: command timed out after 250 ms");
    assert_int_equal(t.ev[1].now_ms, 1350);
    assert_int_equal(conn_pending(t.c), 0);
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    destroy(&t);
}

/* A send() failure is not reported from conn_send (which never calls a
 * handler) but from the next tick, which conn_wake_at() asks for at once. */
static void test_write_to_closed_peer(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    close(t.peer);
    t.peer = -1;
    send_ping(&t, 1, 10);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_wake_at(t.c), 0);
    conn_tick(t.c, 11);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ECONNRESET, true, "connection closed by Redis");
    destroy(&t);
}

static void test_send_when_not_ready(void **state)
{
    (void)state;
    harness t;
    conn_options opt = options();
    make(&t, "redis://127.0.0.1:6390", &opt);
    const char *argv[] = {"PING"};
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_send(t.c, 1, argv, NULL, 1, 0), -ENOTCONN);
    assert_int_equal(conn_fd(t.c), -1);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX); /* never connected: no timer */
    conn_close(t.c);
    assert_int_equal(conn_get_state(t.c), CONN_CLOSED);
    assert_int_equal(conn_send(t.c, 1, argv, NULL, 1, 0), -ENOTCONN);
    assert_string_equal(conn_display(t.c), "redis://127.0.0.1:6390");
    destroy(&t);
}

/* ---------------------------------------------------------- handshake */

/* With neither AUTH nor SELECT in the URL the handshake is a PING: the
 * connection is not ready (and refuses commands) until +PONG comes back. */
static void test_handshake_ping_only(void **state)
{
    (void)state;
    harness t;
    make_paired(&t, "redis://127.0.0.1:6390", 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    assert_int_equal(conn_poll_events(t.c), POLLIN);
    assert_int_equal(conn_wake_at(t.c), 1000); /* the connect timeout covers it */
    const char *argv[] = {"PING"};
    assert_int_equal(conn_send(t.c, 1, argv, NULL, 1, 0), -ENOTCONN);
    char got[64];
    peer_read(&t, got, sizeof got);
    assert_string_equal(got, "*1\r\n$4\r\nPING\r\n");
    feed_str(&t, "+PO", 5);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    feed_str(&t, "NG\r\n", 6);
    assert_int_equal(conn_get_state(t.c), CONN_READY);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.ev[0].kind, EV_READY);
    assert_int_equal(t.ev[0].now_ms, 6);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX);
    destroy(&t);
}

static void test_handshake_auth_user_and_select(void **state)
{
    (void)state;
    harness t;
    make_paired(&t, "redis://alice:s3cr3t@127.0.0.1:6390/3", 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    assert_int_equal(conn_wake_at(t.c), 1000);
    const char *argv[] = {"PING"};
    assert_int_equal(conn_send(t.c, 1, argv, NULL, 1, 0), -ENOTCONN);

    char got[256];
    peer_read(&t, got, sizeof got);
    assert_string_equal(got, "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$6\r\ns3cr3t\r\n"
                             "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
                             "*1\r\n$4\r\nPING\r\n");
    feed_str(&t, "+OK\r\n", 5);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    feed_str(&t, "+OK\r\n", 6);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE); /* PING still unanswered */
    assert_int_equal(conn_send(t.c, 1, argv, NULL, 1, 6), -ENOTCONN);
    assert_int_equal(t.n, 0);
    feed_str(&t, "+PONG\r\n", 7);
    assert_int_equal(conn_get_state(t.c), CONN_READY);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.ev[0].kind, EV_READY);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX);
    send_ping(&t, 9, 7);
    feed_str(&t, "+PONG\r\n", 8);
    assert_int_equal(t.ev[1].tag, 9);
    destroy(&t);
}

static void test_handshake_password_only(void **state)
{
    (void)state;
    harness t;
    make_paired(&t, "redis://:pw@127.0.0.1:6390", 0);
    char got[256];
    peer_read(&t, got, sizeof got);
    assert_string_equal(got, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n");
    feed_str(&t, "+OK\r\n", 5);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    feed_str(&t, "+PONG\r\n", 6);
    assert_int_equal(conn_get_state(t.c), CONN_READY);

    destroy(&t);
    make_paired(&t, "redis://127.0.0.1:6390/15", 0);
    peer_read(&t, got, sizeof got);
    assert_string_equal(got, "*2\r\n$6\r\nSELECT\r\n$2\r\n15\r\n*1\r\n$4\r\nPING\r\n");
    destroy(&t);
}

static void test_handshake_failures(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *replies;
        int code;
        const char *says;
    } cases[] = {
        {"redis://:s3cr3t@127.0.0.1:6390",
         "-WRONGPASS invalid username-password pair or user is disabled.\r\n", LEASEHOLD_EAUTH,
         "redis://:***@127.0.0.1:6390: authentication refused: WRONGPASS invalid "
         "username-password pair or user is disabled."},
        {"redis://:s3cr3t@127.0.0.1:6390", "-ERR invalid password\r\n", LEASEHOLD_EAUTH,
         "redis://:***@127.0.0.1:6390: authentication refused: ERR invalid password"},
        {"redis://:s3cr3t@127.0.0.1:6390",
         "-ERR AUTH <password> called without any password configured for the default user. "
         "Are you sure your configuration is correct?\r\n",
         LEASEHOLD_EAUTH, "authentication refused: ERR AUTH <password> called without"},
        {"redis://127.0.0.1:6390/2", "-NOAUTH Authentication required.\r\n", LEASEHOLD_EAUTH,
         "redis://127.0.0.1:6390/2: authentication required and the URL has no password: "
         "NOAUTH Authentication required."},
        {"redis://127.0.0.1:6390/16", "-ERR DB index is out of range\r\n", LEASEHOLD_EDB,
         "redis://127.0.0.1:6390/16: database 16 rejected: ERR DB index is out of range"},
        {"redis://bob:s3cr3t@127.0.0.1:6390/1",
         "+OK\r\n-NOPERM this user has no permissions to run the 'select' command\r\n",
         LEASEHOLD_ENOPERM,
         "redis://bob:***@127.0.0.1:6390/1: permission denied for SELECT: NOPERM this user"},
        {"redis://:s3cr3t@127.0.0.1:6390", "$2\r\nOK\r\n", LEASEHOLD_EPROTO,
         "unexpected reply to AUTH (expected +OK)"},
        {"redis://:s3cr3t@127.0.0.1:6390", "+OK\r\n+PONG\r\n+OK\r\n", LEASEHOLD_EPROTO,
         "no command pending"},
        /* PING's answer: a Redis that wants a password the URL lacks... */
        {"redis://127.0.0.1:6390", "-NOAUTH Authentication required.\r\n", LEASEHOLD_EAUTH,
         "redis://127.0.0.1:6390: authentication required and the URL has no password: "
         "NOAUTH Authentication required."},
        /* ...a user who may not PING... */
        {"redis://bob:s3cr3t@127.0.0.1:6390",
         "+OK\r\n-NOPERM User bob has no permissions to run the 'ping' command\r\n",
         LEASEHOLD_ENOPERM,
         "redis://bob:***@127.0.0.1:6390: permission denied for PING: NOPERM User bob"},
        /* ...a Redis still loading its data set... */
        {"redis://127.0.0.1:6390", "-LOADING Redis is loading the dataset in memory\r\n",
         LEASEHOLD_EREDIS,
         "redis://127.0.0.1:6390: PING refused: LOADING Redis is loading the dataset in memory"},
        /* ...and something that is not +PONG. */
        {"redis://127.0.0.1:6390", "+OK\r\n", LEASEHOLD_EPROTO,
         "redis://127.0.0.1:6390: unexpected reply to PING (expected +PONG)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness t;
        make_paired(&t, cases[i].url, 0);
        feed_str(&t, cases[i].replies, 5);
        /* The "no command pending" case: the stray +OK arrives after
         * on_ready; in every other case nothing comes before the failure. */
        assert_true(t.n >= 1);
        event *down = &t.ev[t.n - 1];
        if (t.n > 1)
            assert_int_equal(t.ev[0].kind, EV_READY);
        assert_int_equal(t.n, strstr(cases[i].says, "no command pending") ? 2 : 1);
        assert_down(down, cases[i].code, false, cases[i].says);
        assert_null(strstr(down->msg, "s3cr3t"));
        assert_int_equal(conn_get_state(t.c), CONN_DOWN);
        destroy(&t);
    }
}

/* The connect timeout runs through the handshake, and the message names
 * the command left unanswered. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    harness t;
    make_paired(&t, "redis://:pw@127.0.0.1:6390", 500);
    conn_tick(t.c, 1499);
    assert_int_equal(t.n, 0);
    conn_tick(t.c, 1500);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ETIMEDOUT, false,
                "redis://:***@127.0.0.1:6390: no answer to AUTH: handshake timed out after "
                "1000 ms");
    destroy(&t);

    make_paired(&t, "redis://:pw@127.0.0.1:6390", 500);
    feed_str(&t, "+OK\r\n", 900); /* AUTH answered, PING not */
    conn_tick(t.c, 1499);
    assert_int_equal(t.n, 0);
    conn_tick(t.c, 1500);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ETIMEDOUT, false,
                "no answer to PING: handshake timed out after 1000 ms");
    assert_int_equal(conn_pending(t.c), 0);
    destroy(&t);
}

/* -------------------------------------------------------- re-entrancy */

/* Replies that arrive together are handed out one by one: a handler that
 * took a while (500 ms by the conn's clock) leaves the next reply a fresh
 * now_ms, not the one read before the first, so its lateness is judged
 * right. */
static void test_slow_handler_next_reply_gets_fresh_now(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6379", 1000);
    send_ping(&t, 1, 1000);
    send_ping(&t, 2, 1000);
    send_ping(&t, 3, 1000);
    t.on_reply_do = REACT_SLOW;
    feed_str(&t, "+PONG\r\n+PONG\r\n+PONG\r\n", 1010);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.ev[0].tag, 1);
    assert_int_equal(t.ev[0].now_ms, 1010);
    assert_int_equal(t.ev[1].tag, 2);
    assert_int_equal(t.ev[1].now_ms, 1510);
    assert_int_equal(t.ev[2].tag, 3);
    assert_int_equal(t.ev[2].now_ms, 2010);
    /* A clock behind the caller's now_ms never takes it back. */
    clock_now = 0;
    t.on_reply_do = REACT_NONE;
    t.n = 0;
    send_ping(&t, 4, 3000);
    send_ping(&t, 5, 3000);
    feed_str(&t, "+PONG\r\n+PONG\r\n", 3000);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[1].now_ms, 3000);
    destroy(&t);
}

static void test_close_inside_on_reply(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_reply_do = REACT_CLOSE;
    send_ping(&t, 1, 1);
    send_ping(&t, 2, 1);
    send_ping(&t, 3, 1);
    feed_str(&t, ":1\r\n:2\r\n:3\r\n", 2);
    assert_int_equal(t.n, 1); /* no more replies, no on_down */
    assert_int_equal(conn_get_state(t.c), CONN_CLOSED);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX); /* closed: no reconnect */
    assert_int_equal(conn_fd(t.c), -1);
    conn_tick(t.c, 10000);
    assert_int_equal(t.n, 1);
    destroy(&t);
}

static void test_free_inside_handlers(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_reply_do = REACT_FREE;
    send_ping(&t, 1, 1);
    send_ping(&t, 2, 1);
    feed_str(&t, ":1\r\n:2\r\n", 2);
    assert_int_equal(t.n, 1);
    assert_true(t.freed);
    destroy(&t);

    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_down_do = REACT_FREE;
    feed_str(&t, "!bad\r\n", 2);
    assert_int_equal(t.n, 1);
    assert_true(t.freed);
    destroy(&t);

    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_down_do = REACT_FREE;
    send_ping(&t, 1, 1);
    conn_tick(t.c, 251);
    assert_true(t.freed);
    destroy(&t);
}

/* on_ready may send at once; the reply then comes back in order. */
static void test_send_inside_on_ready(void **state)
{
    (void)state;
    harness t;
    conn_options opt = options();
    make(&t, "redis://:pw@127.0.0.1:6390", &opt);
    t.on_ready_do = REACT_SEND;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t.peer = sv[1];
    assert_int_equal(conn_adopt_fd(t.c, sv[0], 0), 0);
    feed_str(&t, "+OK\r\n+PONG\r\n+PONG\r\n", 1);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[0].kind, EV_READY);
    assert_int_equal(t.ev[1].tag, 99);
    assert_string_equal(t.ev[1].reply, "+PONG");
    char got[256];
    peer_read(&t, got, sizeof got);
    assert_string_equal(got, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n"
                             "*1\r\n$4\r\nPING\r\n");
    destroy(&t);
}

/* ---------------------------------------------------------- conn_fail */

/* The owner's reset is a command timeout in all but the message: socket
 * closed, pending commands dropped without a reply, one on_down, an
 * immediate first reconnect, then the usual back-off. */
static void test_fail_resets_like_a_timeout(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    send_ping(&t, 1, 10);
    send_ping(&t, 2, 11);
    conn_fail(t.c, LEASEHOLD_ENOMEM, "out of memory tracking a command", 20);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ENOMEM, false, "");
    assert_string_equal(t.ev[0].msg, "redis://127.0.0.1:6390: out of memory tracking a command");
    assert_int_equal(t.ev[0].now_ms, 20);
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_pending(t.c), 0);
    assert_int_equal(conn_fd(t.c), -1);
    assert_int_equal(conn_wake_at(t.c), 20); /* first reconnect at once */
    char buf[64];
    assert_int_equal(recv(t.peer, buf, sizeof buf, MSG_DONTWAIT), 28); /* the two PINGs */
    assert_int_equal(recv(t.peer, buf, sizeof buf, MSG_DONTWAIT), 0);  /* then EOF */

    /* Failing again before a handshake completes backs off. */
    close(t.peer);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t.peer = sv[1];
    assert_int_equal(conn_adopt_fd(t.c, sv[0], 30), 0);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    conn_fail(t.c, LEASEHOLD_EPROTO, "gave up", 40);
    assert_int_equal(t.n, 2);
    assert_down(&t.ev[1], LEASEHOLD_EPROTO, false, "redis://127.0.0.1:6390: gave up");
    uint64_t at = conn_wake_at(t.c);
    assert_true(at >= 40 + 50 && at <= 40 + 100);
    destroy(&t);
}

/* With no socket there is nothing to fail: no event, no timer change. */
static void test_fail_without_connection_does_nothing(void **state)
{
    (void)state;
    harness t;
    conn_options opt = options();
    make(&t, "redis://127.0.0.1:6390", &opt);
    conn_fail(t.c, LEASEHOLD_EPROTO, "nothing to fail", 5);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX);
    destroy(&t);

    make_ready(&t, "redis://127.0.0.1:6390", 0);
    conn_close(t.c);
    conn_fail(t.c, LEASEHOLD_EPROTO, "nothing to fail", 5);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_get_state(t.c), CONN_CLOSED);
    assert_int_equal(conn_wake_at(t.c), UINT64_MAX);
    destroy(&t);

    /* From on_down the connection is already down: still one report. */
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_down_do = REACT_FAIL;
    send_ping(&t, 1, 1);
    conn_tick(t.c, 251);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ETIMEDOUT, false, "command timed out");
    assert_int_equal(conn_wake_at(t.c), 251);
    destroy(&t);
}

/* conn_fail from on_reply stops the delivery: the replies after it are
 * dropped with the socket. */
static void test_fail_inside_on_reply(void **state)
{
    (void)state;
    harness t;
    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_reply_do = REACT_FAIL;
    send_ping(&t, 1, 1);
    send_ping(&t, 2, 1);
    send_ping(&t, 3, 1);
    feed_str(&t, ":1\r\n:2\r\n:3\r\n", 2);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[0].kind, EV_REPLY);
    assert_int_equal(t.ev[0].tag, 1);
    assert_down(&t.ev[1], LEASEHOLD_EPROTO, false,
                "redis://127.0.0.1:6390: reply matches no command");
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_pending(t.c), 0);
    assert_int_equal(conn_fd(t.c), -1);
    assert_int_equal(conn_wake_at(t.c), 2);
    destroy(&t);
}

/* From on_ready, and with conn_free in the on_down it causes. */
static void test_fail_inside_on_ready_and_free_in_on_down(void **state)
{
    (void)state;
    harness t;
    make_paired(&t, "redis://127.0.0.1:6390", 0);
    t.on_ready_do = REACT_FAIL;
    feed_str(&t, "+PONG\r\n", 3);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ev[0].kind, EV_READY);
    assert_down(&t.ev[1], LEASEHOLD_EPROTO, false, "reply matches no command");
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    destroy(&t);

    make_ready(&t, "redis://127.0.0.1:6390", 0);
    t.on_down_do = REACT_FREE;
    send_ping(&t, 1, 1);
    conn_fail(t.c, LEASEHOLD_EPROTO, "reset", 2);
    assert_int_equal(t.n, 1);
    assert_true(t.freed);
    destroy(&t);
}

/* ----------------------------------------------------- error replies */

static void test_error_codes(void **state)
{
    (void)state;
    static const struct {
        const char *str;
        int code;
    } cases[] = {
        {"WRONGTYPE Operation against a key", LEASEHOLD_EWRONGTYPE},
        {"NOPERM this user has no permissions", LEASEHOLD_ENOPERM},
        {"READONLY You can't write against a read only replica.", LEASEHOLD_EREADONLY},
        {"WRONGPASS invalid username-password pair", LEASEHOLD_EAUTH},
        {"NOAUTH Authentication required.", LEASEHOLD_EAUTH},
        {"ERR invalid password", LEASEHOLD_EAUTH},
        {"ERR unknown command", LEASEHOLD_EREDIS},
        {"NOSCRIPT No matching script", LEASEHOLD_ENOSCRIPT}, /* after the EVAL fallback */
        {"ERR unknown command 'evalsha', with args beginning with: 'x'", LEASEHOLD_ENOSCRIPT},
        {"ERR unknown command 'hello', with args beginning with: ", LEASEHOLD_EREDIS},
        {"ERR The user executing the script can't run this command or subcommand",
         LEASEHOLD_ENOPERM},
        {"OOM command not allowed when used memory > 'maxmemory'.", LEASEHOLD_EREDIS},
        {"WRONGTYPEX no", LEASEHOLD_EREDIS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conn_reply r = {.type = CONN_REPLY_ERROR, .str = cases[i].str, .len = strlen(cases[i].str)};
        assert_int_equal(conn_error_code(&r), cases[i].code);
    }
    conn_reply e = {.type = CONN_REPLY_ERROR, .str = "NOSCRIPT No", .len = 11};
    conn_reply bare = {.type = CONN_REPLY_ERROR, .str = "NOSCRIPT", .len = 8};
    conn_reply s = {.type = CONN_REPLY_STATUS, .str = "NOSCRIPT", .len = 8};
    assert_true(conn_reply_is_error(&e, "NOSCRIPT"));
    assert_true(conn_reply_is_error(&bare, "NOSCRIPT"));
    assert_false(conn_reply_is_error(&e, "NOSCRIPTS"));
    assert_false(conn_reply_is_error(&e, "NOSCR"));
    assert_false(conn_reply_is_error(&s, "NOSCRIPT"));
    assert_false(conn_reply_is_error(NULL, "NOSCRIPT"));
}

/* ---------------------------------------------------- real sockets */

/* A loopback port that nobody listens on: bound, read, closed. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Polls the conn's socket and hands it what poll() saw, until the conn has
 * left CONN_CONNECTING and recorded `events` events, or 5 s have passed.
 * The simulated clock stays at now_ms. */
static void drive(harness *t, size_t events, uint64_t now_ms)
{
    for (int i = 0; i < 500; i++) {
        if ((conn_get_state(t->c) != CONN_CONNECTING && t->n >= events) || conn_fd(t->c) < 0)
            break;
        struct pollfd p = {.fd = conn_fd(t->c), .events = conn_poll_events(t->c)};
        int n = poll(&p, 1, 10);
        assert_true(n >= 0);
        if (n > 0)
            conn_on_io(t->c, p.revents, now_ms);
    }
    assert_true(conn_get_state(t->c) != CONN_CONNECTING);
    assert_true(t->n >= events);
}

/* Reads from the peer (blocking, bounded by a 5 s poll) until exactly
 * `want` has arrived. */
static void peer_expect(harness *t, const char *want)
{
    char got[256] = "";
    size_t n = 0, len = strlen(want);
    assert_true(len < sizeof got);
    while (n < len) {
        struct pollfd p = {.fd = t->peer, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t r = recv(t->peer, got + n, len - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_string_equal(got, want);
}

static void test_tcp_connect_and_talk(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);

    char url_s[64];
    /* localhost: resolved from /etc/hosts, no DNS traffic. */
    snprintf(url_s, sizeof url_s, "redis://localhost:%u", ntohs(a.sin_port));
    harness t;
    conn_options opt = options();
    make(&t, url_s, &opt);
    leasehold_error err;
    assert_int_equal(conn_resolve(t.c, &err), 0);
    assert_int_equal(conn_connect(t.c, 100), 0);
    assert_int_equal(conn_connect(t.c, 100), -EISCONN);
    if (conn_get_state(t.c) == CONN_CONNECTING) {
        assert_int_equal(conn_poll_events(t.c), POLLOUT);
        assert_int_equal(conn_wake_at(t.c), 1100);
        drive(&t, 0, 100);
    }
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    assert_int_equal(conn_wake_at(t.c), 1100);
    assert_int_equal(t.n, 0);
    int fd = conn_fd(t.c);
    int flags = fcntl(fd, F_GETFL);
    assert_true(flags & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    t.peer = accept(lfd, NULL, NULL);
    assert_true(t.peer >= 0);
    peer_expect(&t, "*1\r\n$4\r\nPING\r\n"); /* the handshake */
    peer_write(&t, "+PONG\r\n", 7);
    drive(&t, 1, 150);
    assert_int_equal(conn_get_state(t.c), CONN_READY);
    assert_int_equal(t.ev[0].kind, EV_READY);

    send_ping(&t, 5, 200);
    peer_expect(&t, "*1\r\n$4\r\nPING\r\n");
    peer_write(&t, "+PONG\r\n", 7);
    drive(&t, 2, 200);
    assert_int_equal(t.ev[1].tag, 5);
    assert_string_equal(t.ev[1].reply, "+PONG");
    destroy(&t);
    close(lfd);
}

/*
 * connect(2) for this binary: the kernel's, except that while
 * connect_interrupts is positive a connect that went under way (or even
 * finished) reports EINTR instead, as POSIX allows when a signal arrives:
 * "the connection request shall not be aborted, and the connection shall be
 * established asynchronously".  Linux's non-blocking connect does not sleep,
 * so no real signal can land there on cue; interposing is the honest way to
 * provoke it.  (It replaces libc's symbol for the whole executable, conn.c
 * included; the sanitizers' interceptors are weak and give way.)
 */
static int connect_interrupts;

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    long rc = syscall(SYS_connect, fd, addr.__sockaddr__, len);
    if (connect_interrupts > 0 && (rc == 0 || errno == EINPROGRESS)) {
        connect_interrupts--;
        errno = EINTR;
        return -1;
    }
    return (int)rc;
}

/* A connect() interrupted by a signal goes on asynchronously: the attempt
 * continues (no failure reported, no second connect() that could only find
 * EALREADY) and the connection becomes ready.  The listener's accept queue
 * (backlog 0: one connection) is full when the conn connects, so its
 * connect stays under way until the queue is emptied and the kernel sends
 * the SYN again (about a second later). */
static void test_tcp_connect_interrupted_goes_on(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "redis://127.0.0.1:%u", ntohs(a.sin_port));
    harness t;
    conn_options opt = options();
    make(&t, url_s, &opt);
    leasehold_error err;
    assert_int_equal(conn_resolve(t.c, &err), 0);
    connect_interrupts = 1;
    int rc = conn_connect(t.c, 100);
    int left = connect_interrupts;
    connect_interrupts = 0;
    assert_int_equal(left, 0); /* the interruption did happen */
    if (t.n)
        fail_msg("an interrupted connect was counted as a failed attempt: %s", t.ev[0].msg);
    assert_int_equal(rc, 0);
    assert_int_equal(conn_get_state(t.c), CONN_CONNECTING);
    int queued = accept(lfd, NULL, NULL); /* room for the conn's connection */
    assert_true(queued >= 0);
    close(queued);
    close(filler);
    drive(&t, 0, 100);
    assert_int_equal(t.n, 0);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
    t.peer = accept(lfd, NULL, NULL);
    assert_true(t.peer >= 0);
    peer_expect(&t, "*1\r\n$4\r\nPING\r\n");
    peer_write(&t, "+PONG\r\n", 7);
    drive(&t, 1, 150);
    assert_int_equal(t.ev[0].kind, EV_READY);
    assert_int_equal(conn_get_state(t.c), CONN_READY);
    destroy(&t);
    close(lfd);
}

/* A listener that never answers, like a stopped Redis whose kernel still
 * completes connections: each attempt connects, sends PING and times out in
 * the handshake, never READY, and the delays between attempts grow. */
static void test_tcp_silent_server_backs_off(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    char url_s[64];
    snprintf(url_s, sizeof url_s, "redis://127.0.0.1:%u", ntohs(a.sin_port));
    harness t;
    conn_options opt = options();
    make(&t, url_s, &opt);

    uint64_t now = 100, delays[4];
    conn_connect(t.c, now);
    for (size_t i = 0; i < 4; i++) {
        drive(&t, i, now);
        assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);
        assert_int_equal(t.n, i); /* no on_ready */
        const char *argv[] = {"GET", "k"};
        assert_int_equal(conn_send(t.c, 2, argv, NULL, 1, now), -ENOTCONN);
        uint64_t deadline = conn_wake_at(t.c);
        assert_int_equal(deadline, now + 1000);
        conn_tick(t.c, deadline);
        assert_int_equal(t.n, i + 1);
        assert_down(&t.ev[i], LEASEHOLD_ETIMEDOUT, false, "no answer to PING");
        delays[i] = conn_wake_at(t.c) - deadline;
        now = conn_wake_at(t.c);
        conn_tick(t.c, now);
    }
    assert_int_equal(delays[0], 0);
    assert_true(delays[1] >= 50 && delays[1] <= 100);
    assert_true(delays[2] >= 100 && delays[2] <= 200);
    assert_true(delays[3] >= 200 && delays[3] <= 400);

    /* What reached the server: a PING on each connection, nothing else. */
    for (int i = 0; i < 4; i++) {
        t.peer = accept(lfd, NULL, NULL);
        assert_true(t.peer >= 0);
        peer_expect(&t, "*1\r\n$4\r\nPING\r\n");
        close(t.peer);
    }
    t.peer = -1;
    destroy(&t);
    close(lfd);
}

static void test_tcp_connect_refused(void **state)
{
    (void)state;
    uint16_t port = closed_port();
    char url_s[64], want[96];
    snprintf(url_s, sizeof url_s, "redis://127.0.0.1:%u", port);
    snprintf(want, sizeof want, "redis://127.0.0.1:%u: connection refused", port);
    harness t;
    conn_options opt = options();
    make(&t, url_s, &opt);
    int rc = conn_connect(t.c, 100); /* resolves by itself: a numeric host */
    if (conn_get_state(t.c) == CONN_CONNECTING)
        drive(&t, 1, 100);
    else
        assert_int_equal(rc, LEASEHOLD_ECONNREFUSED);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ECONNREFUSED, false, want);
    assert_string_equal(t.ev[0].msg, want);
    assert_int_equal(conn_get_state(t.c), CONN_DOWN);
    assert_int_equal(conn_wake_at(t.c), 100); /* the first retry is immediate */
    destroy(&t);
}

static void test_unix_connect_missing_socket(void **state)
{
    (void)state;
    harness t;
    conn_options opt = options();
    make(&t, "unix:///nonexistent-dir/leasehold.sock", &opt);
    assert_int_equal(conn_connect(t.c, 0), LEASEHOLD_ECONNREFUSED);
    assert_int_equal(t.n, 1);
    assert_down(&t.ev[0], LEASEHOLD_ECONNREFUSED, false,
                "unix:///nonexistent-dir/leasehold.sock: cannot connect: No such file");
    destroy(&t);
}

/* Collects the delays of n failed attempts, each retried when due. */
static void backoff_delays(uint64_t seed, uint64_t *delays, size_t n)
{
    harness t;
    conn_options opt = options();
    opt.seed = seed;
    make(&t, "unix:///nonexistent-dir/leasehold.sock", &opt);
    uint64_t now = 1000;
    conn_connect(t.c, now);
    for (size_t i = 0; i < n; i++) {
        uint64_t at = conn_wake_at(t.c);
        assert_true(at != UINT64_MAX);
        delays[i] = at - now;
        if (at > now) {
            conn_tick(t.c, at - 1);
            assert_int_equal(t.n, i + 1); /* not due yet */
        }
        conn_tick(t.c, at);
        assert_int_equal(t.n, i + 2);
        now = at;
    }
    destroy(&t);
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    uint64_t d[8], again[8];
    backoff_delays(42, d, 8);
    assert_int_equal(d[0], 0); /* immediate */
    uint64_t cap[] = {0, 100, 200, 400, 800, 1000, 1000, 1000};
    for (size_t i = 1; i < 8; i++) {
        if (d[i] < cap[i] / 2 || d[i] > cap[i])
            fail_msg("delay %zu is %llu ms, not within [%llu, %llu]", i, (unsigned long long)d[i],
                     (unsigned long long)cap[i] / 2, (unsigned long long)cap[i]);
    }
    backoff_delays(42, again, 8);
    assert_memory_equal(d, again, sizeof d); /* the seed replays the schedule */
    backoff_delays(43, again, 8);
    assert_memory_not_equal(d, again, sizeof d);
}

/* Only a handshake answered to the end (PING's +PONG) starts the schedule
 * over, not a connect: then the next loss is retried at once. */
static void test_backoff_resets_after_ready(void **state)
{
    (void)state;
    harness t;
    conn_options opt = options();
    make(&t, "unix:///nonexistent-dir/leasehold.sock", &opt);
    conn_connect(t.c, 0);
    conn_tick(t.c, 0);
    assert_true(conn_wake_at(t.c) >= 50); /* second failure: backed off */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t.peer = sv[1];
    assert_int_equal(conn_adopt_fd(t.c, sv[0], 10), 0);
    assert_int_equal(conn_get_state(t.c), CONN_HANDSHAKE);

    /* Connected, but closed before PING's answer: still backing off. */
    close(t.peer);
    conn_on_io(t.c, POLLIN | POLLHUP, 20);
    assert_down(&t.ev[t.n - 1], LEASEHOLD_ECONNRESET, true, "connection "); /* PING unread */
    assert_true(conn_wake_at(t.c) >= 20 + 100); /* the third delay: [100, 200] */

    /* +PONG: the next loss is retried at once. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    t.peer = sv[1];
    assert_int_equal(conn_adopt_fd(t.c, sv[0], 30), 0);
    feed_str(&t, "+PONG\r\n", 31);
    assert_int_equal(conn_get_state(t.c), CONN_READY);
    close(t.peer);
    t.peer = -1;
    conn_on_io(t.c, POLLIN | POLLHUP, 40);
    assert_down(&t.ev[t.n - 1], LEASEHOLD_ECONNRESET, true, "connection ");
    assert_int_equal(conn_wake_at(t.c), 40);
    destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_split_at_every_byte),
        cmocka_unit_test(test_replies_bytewise_and_all_at_once),
        cmocka_unit_test(test_large_reply),
        cmocka_unit_test(test_commands_encoded_and_pipelined),
        cmocka_unit_test(test_garbage_resets_with_eproto),
        cmocka_unit_test(test_huge_array_header_resets_with_eproto),
        cmocka_unit_test(test_unsolicited_reply_resets_with_eproto),
        cmocka_unit_test(test_eof_mid_reply_is_down_by_peer),
        cmocka_unit_test(test_reset_is_down_by_peer),
        cmocka_unit_test(test_silent_peer_times_out),
        cmocka_unit_test(test_write_to_closed_peer),
        cmocka_unit_test(test_send_when_not_ready),
        cmocka_unit_test(test_handshake_ping_only),
        cmocka_unit_test(test_handshake_auth_user_and_select),
        cmocka_unit_test(test_handshake_password_only),
        cmocka_unit_test(test_handshake_failures),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_slow_handler_next_reply_gets_fresh_now),
        cmocka_unit_test(test_close_inside_on_reply),
        cmocka_unit_test(test_free_inside_handlers),
        cmocka_unit_test(test_send_inside_on_ready),
        cmocka_unit_test(test_fail_resets_like_a_timeout),
        cmocka_unit_test(test_fail_without_connection_does_nothing),
        cmocka_unit_test(test_fail_inside_on_reply),
        cmocka_unit_test(test_fail_inside_on_ready_and_free_in_on_down),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_tcp_connect_and_talk),
        cmocka_unit_test(test_tcp_connect_interrupted_goes_on),
        cmocka_unit_test(test_tcp_silent_server_backs_off),
        cmocka_unit_test(test_tcp_connect_refused),
        cmocka_unit_test(test_unix_connect_missing_socket),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_backoff_resets_after_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
