/* fuzz_reply.c — arbitrary bytes from "Redis" through the conn's parsing
 * (hiredis's redisReader building our conn_reply, in conn_reply.c) into our
 * interpretation of them: protocol.c's protocol_*_reply for the scripts'
 * replies and protocol_parse_event for the events channel's messages.
 *
 * A conn adopts one end of a socketpair, exactly as the client's
 * connection would run; the harness writes the bytes on the other end, in
 * chunks, and calls conn_on_io after each.  No connection to anything is
 * ever attempted (conn_tick, which would reconnect, is never called).
 *
 * Input: byte 0 holds flags, byte 1 the commands sent once the connection
 * is ready (up to four scripts, two bits each), byte 2 the chunk size
 * (0: all at once); the rest is what the peer says.
 *   flag 0x01  the harness answers the handshake itself (+OK / +PONG);
 *              otherwise the bytes must
 *   flag 0x02  the URL has a user, a password and a database: the handshake
 *              is AUTH, SELECT, PING
 *   flag 0x0c  number of commands - 1
 *   flag 0x10  a subscriber connection: every reply is first offered as a
 *              published message, as the client's events connection does
 *   flag 0x20  the peer closes its end after the bytes (EOF)
 * Checked: no crash, leak, out-of-bounds read or undefined behaviour; every
 * reply is well formed (strings NUL-terminated at their length, arrays with
 * their elements); every interpretation is one of the documented results,
 * with a holder inside the reply and a reason for each error; every
 * on_down carries an error code and a message. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "fuzz.h"
#include "cluster.h"
#include "protocol.h"

/* The names the replies are about (error messages name them). */
static const protocol_key K = {.key = "k",
                               .epoch_key = "k:epoch",
                               .quarantine_key = "k:quarantine",
                               .channel = "k:events",
                               .token = "host:1/00ff",
                               .user = "app",
                               .address = "127.0.0.1:6379"};
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS       1000
#define MAX_COMMANDS 4

typedef struct harness {
    int commands[MAX_COMMANDS]; /* script kinds to send once ready */
    int ncommands;
    bool subscriber;
    bool ready;
    bool down;
    int replies;
} harness;

/* Reads every byte of a buffer the interpretation pointed into, so that
 * ASan sees a pointer or a length that is off. */
static void touch(const char *p, size_t len)
{
    volatile char sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= p[i];
    (void)sink;
}

/* A reply as conn.h promises it: strings NUL-terminated at len, arrays with
 * their elements. */
static void check_reply(const conn_reply *r, int depth)
{
    fuzz_require(depth < 64, "replies nest a bounded number of levels");
    switch (r->type) {
    case CONN_REPLY_STRING:
    case CONN_REPLY_STATUS:
    case CONN_REPLY_ERROR:
        fuzz_require(r->str != NULL && r->str[r->len] == '\0',
                     "a string reply is NUL-terminated at its length");
        touch(r->str, r->len);
        break;
    case CONN_REPLY_ARRAY:
        fuzz_require(r->elements == 0 || r->element != NULL, "an array has its elements");
        for (size_t i = 0; i < r->elements; i++)
            check_reply(&r->element[i], depth + 1);
        break;
    case CONN_REPLY_NIL:
    case CONN_REPLY_INTEGER:
        break;
    default:
        fuzz_require(false, "a reply has a known type");
    }
}

/* An error comes with a reason: Redis's words (which may be empty: an
 * error reply "-\r\n" has none) or ours. */
static void check_why(const conn_reply *r, const lease_reply *lr, const char *why, size_t size)
{
    fuzz_require(lr->error < 0, "a failed reply carries an error code");
    fuzz_require(memchr(why, '\0', size) != NULL, "the reason is a string");
    fuzz_require(why[0] != '\0' || (r->type == CONN_REPLY_ERROR && r->str[0] == '\0'),
                 "a failed reply says why");
}

static void check_holder(const lease_reply *lr)
{
    fuzz_require(lr->holder != NULL, "a held key names its holder");
    touch(lr->holder, lr->holder_len);
}

/* A slot map that parsed: every range inside the slots, with an address. */
static void check_map(const cluster_map *m)
{
    for (size_t i = 0; i < m->count; i++) {
        const cluster_range *r = &m->ranges[i];
        fuzz_require(r->first <= r->last && r->last < CLUSTER_SLOTS, "a range is inside the slots");
        fuzz_require(memchr(r->host, '\0', sizeof r->host) && r->port > 0,
                     "a range has an address");
    }
}

/* r read as the Cluster's answers: the slot map (both ways, over TLS or
 * not) and, for an error, a redirection. */
static void interpret_cluster(const conn_reply *r)
{
    cluster_map m;
    char why[200];
    for (int tls = 0; tls < 2; tls++) {
        if (cluster_parse_shards(r, tls, "asked", &m, why, sizeof why) == 0)
            check_map(&m);
        else
            fuzz_require(m.count == 0 && m.ranges == NULL && why[0], "a failed map says why");
        cluster_map_free(&m);
    }
    if (cluster_parse_slots(r, "asked", &m, why, sizeof why) == 0)
        check_map(&m);
    cluster_map_free(&m);
    bool ask;
    unsigned slot;
    char host[256];
    uint16_t port;
    if (r->type == CONN_REPLY_ERROR &&
        cluster_parse_redirect(r->str, "asked", &ask, &slot, host, &port))
        fuzz_require(slot < CLUSTER_SLOTS && port > 0 && host[0], "a redirection is whole");
}

/* Interprets r as the reply to the script `kind`, as the client does. */
static void interpret(int kind, const conn_reply *r)
{
    lease_reply lr;
    char why[256] = "";
    switch (kind) {
    case SCRIPT_ACQUIRE:
        protocol_acquire_reply(r, &K, &lr, why, sizeof why);
        if (lr.result == LEASE_ACQUIRED)
            fuzz_require(lr.epoch > 0, "a won claim has an epoch");
        else if (lr.result == LEASE_ACQUIRE_HELD)
            check_holder(&lr);
        else
            fuzz_require(lr.result == LEASE_ACQUIRE_FAILED ||
                             lr.result == LEASE_ACQUIRE_QUARANTINED,
                         "an acquire result is known");
        if (lr.result == LEASE_ACQUIRE_FAILED)
            check_why(r, &lr, why, sizeof why);
        break;
    case SCRIPT_RENEW:
        protocol_renew_reply(r, &K, &lr, why, sizeof why);
        if (lr.result == LEASE_RENEW_HELD)
            check_holder(&lr);
        else if (lr.result == LEASE_RENEW_FAILED)
            check_why(r, &lr, why, sizeof why);
        else
            fuzz_require(lr.result == LEASE_RENEWED || lr.result == LEASE_RENEW_MISSING,
                         "a renew result is known");
        break;
    case SCRIPT_RELEASE:
        protocol_release_reply(r, &K, &lr, why, sizeof why);
        if (lr.result < 0)
            check_why(r, &lr, why, sizeof why);
        else
            fuzz_require(lr.result == 0 || lr.result == 1, "a release result is 0 or 1");
        break;
    default: {
        /* The arm script's reply shares the query's slot, and so do the
         * Cluster's answers: every reading of any reply must be sound. */
        interpret_cluster(r);
        int64_t remaining = -1;
        bool fresh = true;
        int code = protocol_arm_reply(r, &K, &remaining, &fresh, why, sizeof why);
        fuzz_require(code <= 0, "an arm result is 0 or an error");
        if (code < 0) {
            fuzz_require(remaining == 0 && !fresh, "a failed arm reply says nothing");
            lease_reply failed = {.error = code};
            check_why(r, &failed, why, sizeof why);
        }
        why[0] = '\0';
        protocol_query_reply(r, &K, &lr, why, sizeof why);
        if (lr.result == LEASE_QUERY_HELD)
            check_holder(&lr);
        else if (lr.result == LEASE_QUERY_FAILED)
            check_why(r, &lr, why, sizeof why);
        else
            fuzz_require(lr.result == LEASE_QUERY_FREE, "a query result is known");
        break;
    }
    }
}

/* protocol_parse_event on a heap copy of exactly len bytes. */
static void parse_event(const char *payload, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, payload, len);
    lease_event_kind kind;
    uint64_t epoch;
    const char *token;
    size_t token_len;
    if (protocol_parse_event(copy, len, &kind, &epoch, &token, &token_len) == 0) {
        fuzz_require(kind == LEASE_EVENT_ELECTED || kind == LEASE_EVENT_RELEASED ||
                         kind == LEASE_EVENT_RESIGN,
                     "an event has a known kind");
        fuzz_require(token_len > 0 && token > copy && token + token_len == copy + len,
                     "an event's token is the end of its payload");
    }
    free(copy);
}

static void on_ready(void *arg, conn *c, uint64_t now_ms)
{
    harness *h = arg;
    h->ready = true;
    for (int i = 0; i < h->ncommands; i++) {
        const char *argv[] = {"EVALSHA", protocol_script_name(h->commands[i]), "1", "k"};
        fuzz_require(conn_send(c, 4, argv, NULL, (uint64_t)h->commands[i], now_ms) == 0,
                     "a ready connection takes commands");
    }
}

static void on_reply(void *arg, conn *c, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    harness *h = arg;
    (void)c, (void)now_ms;
    fuzz_require(h->ready, "no reply reaches the owner before the handshake ended");
    fuzz_require(h->replies < h->ncommands, "at most one reply per command");
    fuzz_require(tag == (uint64_t)h->commands[h->replies], "replies come in sending order");
    h->replies++;
    check_reply(r, 0);
    (void)conn_reply_is_error(r, "NOSCRIPT");
    if (r->type == CONN_REPLY_ERROR)
        fuzz_require(conn_error_code(r) < 0, "an error reply maps to an error code");
    interpret((int)tag, r);
}

static void on_down(void *arg, conn *c, int code, bool by_peer, const char *msg, uint64_t now_ms)
{
    harness *h = arg;
    (void)c, (void)by_peer, (void)now_ms;
    fuzz_require(!h->down, "one on_down per connection");
    fuzz_require(code < 0 && msg != NULL && msg[0] != '\0', "going down says why");
    h->down = true;
}

/* The client's events connection: ["message", channel, payload]. */
static bool on_push(void *arg, conn *c, const conn_reply *r, uint64_t now_ms)
{
    harness *h = arg;
    (void)c, (void)now_ms;
    check_reply(r, 0);
    if (!h->subscriber || r->type != CONN_REPLY_ARRAY || r->elements != 3 ||
        r->element[0].type != CONN_REPLY_STRING || strcmp(r->element[0].str, "message") != 0)
        return false;
    const conn_reply *msg = &r->element[2];
    if (msg->type == CONN_REPLY_STRING)
        parse_event(msg->str, msg->len);
    return true;
}

/* Writes what the socket takes of buf; the rest is for the next round. */
static size_t feed(int fd, const uint8_t *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n > 0 ? (size_t)n : 0;
}

static conn *new_conn(bool with_auth, harness *h)
{
    static url plain, auth;
    static bool parsed;
    if (!parsed) {
        /* Port 1 on loopback: never connected to, only displayed. */
        fuzz_require(url_parse("redis://127.0.0.1:1", &plain, NULL) == 0 &&
                         url_parse("redis://u:pw@127.0.0.1:1/3", &auth, NULL) == 0,
                     "the harness's URLs parse");
        parsed = true;
    }
    conn_options opt = {.connect_timeout_ms = 1000,
                        .command_timeout_ms = 1000,
                        .backoff_min_ms = 25,
                        .backoff_max_ms = 1000,
                        .seed = 1};
    conn_handler handler = {
        .on_ready = on_ready, .on_reply = on_reply, .on_down = on_down, .on_push = on_push};
    return conn_new(with_auth ? &auth : &plain, &opt, &handler, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0], cmds = data[1], chunk = data[2];
    const uint8_t *bytes = data + 3;
    size_t len = size - 3;
    parse_event((const char *)bytes, len);

    harness h = {.ncommands = 1 + ((flags >> 2) & 3), .subscriber = flags & 0x10};
    for (int i = 0; i < h.ncommands; i++)
        h.commands[i] = (cmds >> (2 * i)) & 3;
    bool with_auth = flags & 0x02;
    conn *c = new_conn(with_auth, &h);
    int sv[2];
    if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        conn_free(c);
        return 0;
    }
    fuzz_require(conn_adopt_fd(c, sv[0], NOW_MS) == 0, "a fresh conn adopts a socket");

    if (flags & 0x01) {
        const char *answer = with_auth ? "+OK\r\n+OK\r\n+PONG\r\n" : "+PONG\r\n";
        fuzz_require(feed(sv[1], (const uint8_t *)answer, strlen(answer)) == strlen(answer),
                     "the handshake's answer fits the socket");
        conn_on_io(c, POLLIN, NOW_MS);
        fuzz_require(h.ready && conn_get_state(c) == CONN_READY, "the handshake ends");
    }
    size_t step = chunk ? chunk : len;
    size_t off = 0;
    while (off < len && conn_fd(c) >= 0) {
        size_t n = feed(sv[1], bytes + off, len - off < step ? len - off : step);
        off += n;
        conn_on_io(c, POLLIN, NOW_MS);
        if (n == 0 && conn_fd(c) >= 0) {
            /* The socket is full and the conn reads nothing more: it must
             * have stopped reading, which it only does once down. */
            fuzz_require(false, "the conn drains its socket");
        }
    }
    if ((flags & 0x20) && conn_fd(c) >= 0) {
        close(sv[1]);
        sv[1] = -1;
        conn_on_io(c, POLLIN | POLLHUP, NOW_MS);
        fuzz_require(conn_fd(c) < 0 && h.down, "EOF takes the connection down");
    }
    if (conn_fd(c) < 0)
        fuzz_require(h.down && conn_pending(c) == 0, "a connection that went down said so");
    conn_free(c);
    if (sv[1] >= 0)
        close(sv[1]);
    return 0;
}
