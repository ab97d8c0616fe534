/* client.c — the I/O thread: poll loop, timers, and the elections it drives.
 *
 * One leasehold_client owns one Redis connection and one thread.  That thread
 * is the only one that touches the connection, the state machines and the
 * services' lifecycles; other threads ask it to act through a locked request
 * queue and an eventfd in its poll set (curl_multi_wakeup's pattern).  The two
 * things other threads read directly, an election's valid_until and epoch, are
 * atomics: leasehold_is_leader() takes no lock.
 *
 * The state machine (lease.c) decides; this file only carries its decisions
 * out: it turns SEND actions into script calls, replies into lease_reply, and
 * ELECTED / REVOKED into callbacks and service starts and stops.
 */
#include "leasehold.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "error.h"
#include "lease.h"
#include "service.h"
#include "sha1.h"
#include "url.h"

/* ------------------------------------------------------------- scripts */

/* Acquire: SET NX PX; on success the next fencing epoch (strictly above the
 * last one, and at least Redis's TIME in microseconds so it keeps growing
 * across a restart that lost the epoch key), stored and announced; on failure
 * {holder, PTTL, epoch}.  Lua numbers are doubles: exact up to 2^53, far above
 * microseconds since 1970. */
static const char SCRIPT_ACQUIRE[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local t = redis.call('TIME')\n"
    "  local epoch = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "  local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "  if last + 1 > epoch then epoch = last + 1 end\n"
    "  local s = string.format('%.0f', epoch)\n"
    "  redis.call('SET', KEYS[2], s)\n"
    "  redis.call('PUBLISH', ARGV[3], 'elected ' .. s .. ' ' .. ARGV[1])\n"
    "  return epoch\n"
    "end\n"
    "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', "
    "KEYS[2])}\n";

/* Renew: the original module's compare-and-PEXPIRE, answering distinctly:
 * 1 renewed, 0 the key is gone, a string: the token that holds it instead. */
static const char SCRIPT_RENEW[] = "local v = redis.call('GET', KEYS[1])\n"
                                   "if v == ARGV[1] then\n"
                                   "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                   "end\n"
                                   "if v then return v end\n"
                                   "return 0\n";

/* Release: compare-and-DEL, then announce it.  1 deleted, 0 not ours. */
static const char SCRIPT_RELEASE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[2], 'released ' .. ARGV[3] .. ' ' .. ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

enum script_kind { SCRIPT_KIND_ACQUIRE, SCRIPT_KIND_RENEW, SCRIPT_KIND_RELEASE, SCRIPT_KINDS };

static const char *const script_text[SCRIPT_KINDS] = {SCRIPT_ACQUIRE, SCRIPT_RENEW, SCRIPT_RELEASE};
static const char *const script_name[SCRIPT_KINDS] = {"acquire", "renew", "release"};

/* ---------------------------------------------------------------- types */

/* A command sent and not yet answered.  Replies come back in order, so these
 * form a FIFO that mirrors the connection's. */
typedef struct pending {
    struct pending *next;
    leasehold_election *e; /* NULL once the election has gone */
    enum script_kind kind;
    uint32_t seq;
    uint64_t epoch; /* release */
    bool eval;      /* sent as EVAL (after NOSCRIPT) */
} pending;

typedef enum request_kind { REQ_CAMPAIGN, REQ_RESIGN, REQ_END } request_kind;

typedef struct request {
    struct request *next;
    request_kind kind;
    leasehold_election *e;
} request;

struct leasehold_election {
    leasehold_election *next; /* in the client's list (I/O thread) */
    leasehold_client *client;
    char *key, *epoch_key, *channel, *token;
    lease lease;
    leasehold_callbacks cb;
    void *arg;
    service_fn service;
    void *service_arg;

    /* Read by any thread. */
    _Atomic uint64_t valid_until_ms; /* 0 when not leader */
    _Atomic uint64_t epoch;
    atomic_bool resign_pending; /* leasehold_resign() called, not yet carried out */

    /* I/O thread only. */
    service *svc; /* the running (or stopping) service */
    uint64_t svc_stop_deadline_ms;
    bool svc_overran;        /* the overrun was reported */
    unsigned pending_count;  /* entries in the pending FIFO that point here */
    bool ending;             /* REQ_END received: lease_stop() called */
    bool stopped;            /* LEASE_STOPPED received */
    bool free_by_loop;       /* ended from a callback: the loop frees it */
    char last_error[256];    /* the text behind the next LEASE_ERROR */
    char last_reported[256]; /* the last error text logged at ERROR level */

    /* Guarded by client->mu. */
    bool unlinked;   /* the loop has let go of it; the ending thread may free it */
    bool waited_for; /* a thread waits in leasehold_election_free() to free it */
};

struct leasehold_client {
    leasehold_config cfg; /* strings point into the copies below */
    char *url_copy, *identity;
    url u;
    conn *conn;
    char sha[SCRIPT_KINDS][41];
    uint64_t rng;

    pthread_t thread;
    atomic_bool thread_running;
    int wake_fd;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled when an election is unlinked */
    request *req_head, *req_tail;
    bool closing; /* leasehold_client_free() has begun: no new campaigns */

    /* I/O thread only. */
    leasehold_election *elections;
    pending *pend_head, *pend_tail;
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    char last_conn_error[256];

    /* Inside leasehold_client_new()'s first connect. */
    bool first_connect;
    int first_code;
    char first_msg[256];
};

static __thread leasehold_client *loop_thread_client; /* set on the I/O thread */

/* --------------------------------------------------------------- helpers */

static void client_log(leasehold_client *c, leasehold_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats and hands a line to the user's log callback, if it wants it. */
static void client_log(leasehold_client *c, leasehold_log_level level, const char *fmt, ...)
{
    if (!c->cfg.log || level > c->cfg.log_level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->cfg.log(level, line, c->cfg.log_arg);
}

static uint64_t random_u64(void)
{
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != sizeof x)
        x = clock_now_ns() ^ ((uint64_t)getpid() << 32);
    return x;
}

/* splitmix64: a seed for each election's and the connection's jitter. */
static uint64_t next_seed(leasehold_client *c)
{
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void wake(leasehold_client *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof one);
    (void)n; /* fails only on overflow, when it is readable anyway */
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *format_str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format_str(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* True when key holds a Redis Cluster hash tag: a '{' followed, later, by a
 * '}' with at least one byte between them. */
static bool has_hash_tag(const char *key)
{
    const char *open = strchr(key, '{');
    if (!open)
        return false;
    const char *close = strchr(open + 1, '}');
    return close && close > open + 1;
}

/* ------------------------------------------------------------ publishing */

/* Makes what other threads read agree with the state machine. */
static void publish(leasehold_election *e)
{
    atomic_store(&e->epoch, e->lease.epoch);
    atomic_store(&e->valid_until_ms, lease_valid_until(&e->lease));
}

/* ---------------------------------------------------------------- sending */

/* Sends script `kind` for e as EVALSHA (or EVAL after a NOSCRIPT) and queues
 * the matching pending entry.  A failure to queue means the connection is not
 * ready; the state machine learns of that through on_down. */
static void send_script(leasehold_election *e, enum script_kind kind, uint32_t seq, uint64_t epoch,
                        bool eval, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    char lease_ms[24], epoch_s[24];
    snprintf(lease_ms, sizeof lease_ms, "%" PRIu32, c->cfg.lease_ms);
    snprintf(epoch_s, sizeof epoch_s, "%" PRIu64, epoch);

    const char *argv[9];
    int argc = 0;
    argv[argc++] = eval ? "EVAL" : "EVALSHA";
    argv[argc++] = eval ? script_text[kind] : c->sha[kind];
    switch (kind) {
    case SCRIPT_KIND_ACQUIRE:
        argv[argc++] = "2";
        argv[argc++] = e->key;
        argv[argc++] = e->epoch_key;
        argv[argc++] = e->token;
        argv[argc++] = lease_ms;
        argv[argc++] = e->channel;
        break;
    case SCRIPT_KIND_RENEW:
        argv[argc++] = "1";
        argv[argc++] = e->key;
        argv[argc++] = e->token;
        argv[argc++] = lease_ms;
        break;
    case SCRIPT_KIND_RELEASE:
        argv[argc++] = "1";
        argv[argc++] = e->key;
        argv[argc++] = e->token;
        argv[argc++] = e->channel;
        argv[argc++] = epoch_s;
        break;
    default:
        return;
    }
    size_t argvlen[9];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);

    pending *p = calloc(1, sizeof *p);
    if (!p) {
        client_log(c, LEASEHOLD_LOG_ERROR, "%s: out of memory sending %s", e->key,
                   script_name[kind]);
        return;
    }
    p->e = e;
    p->kind = kind;
    p->seq = seq;
    p->epoch = epoch;
    p->eval = eval;
    int rc = conn_send(c->conn, argc, argv, argvlen, (uint64_t)(uintptr_t)p, now_ms);
    if (rc < 0) {
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s not sent: %s", e->key, script_name[kind],
                   rc == -ENOTCONN ? "not connected" : leasehold_strerror(rc));
        free(p);
        return;
    }
    e->pending_count++;
    if (c->pend_tail)
        c->pend_tail->next = p;
    else
        c->pend_head = p;
    c->pend_tail = p;
}

/* ------------------------------------------------------------ the drive */

static void start_service(leasehold_election *e, uint64_t epoch, uint64_t now_ms);
static void stop_service(leasehold_election *e, uint64_t now_ms);

static void report_error(leasehold_election *e, int code)
{
    leasehold_client *c = e->client;
    leasehold_error err;
    const char *text = e->last_error[0] ? e->last_error : leasehold_strerror(code);
    error_set(&err, code, "key %s: %s", e->key, text);
    /* The same failure repeats on every claim: say it loudly once. */
    bool repeat = strcmp(e->last_reported, err.msg) == 0;
    client_log(c, repeat ? LEASEHOLD_LOG_DEBUG : LEASEHOLD_LOG_ERROR, "%s", err.msg);
    snprintf(e->last_reported, sizeof e->last_reported, "%s", err.msg);
    e->last_error[0] = '\0';
    if (e->cb.error)
        e->cb.error(e, &err, e->arg);
}

/* Carries out every action the state machine has queued, in order: sends,
 * callbacks, service starts and stops.  Runs until the queue is empty,
 * including actions that carrying out earlier ones produced. */
static void drive(leasehold_election *e, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    lease_action a;
    for (;;) {
        publish(e);
        if (!lease_next_action(&e->lease, &a))
            break;
        switch (a.kind) {
        case LEASE_SEND_ACQUIRE:
            send_script(e, SCRIPT_KIND_ACQUIRE, a.seq, 0, false, now_ms);
            break;
        case LEASE_SEND_RENEW:
            send_script(e, SCRIPT_KIND_RENEW, a.seq, 0, false, now_ms);
            break;
        case LEASE_SEND_RELEASE:
            send_script(e, SCRIPT_KIND_RELEASE, a.seq, a.epoch, false, now_ms);
            break;
        case LEASE_ELECTED:
            e->last_reported[0] = '\0';
            client_log(c, LEASEHOLD_LOG_INFO, "%s: elected, epoch %" PRIu64 ", token %s", e->key,
                       a.epoch, e->token);
            if (e->cb.elected)
                e->cb.elected(e, a.epoch, e->arg);
            if (e->service)
                start_service(e, a.epoch, now_ms);
            break;
        case LEASE_REVOKED:
            client_log(c, LEASEHOLD_LOG_INFO, "%s: leadership ended (%s), token %s", e->key,
                       leasehold_reason_name(a.reason), e->token);
            if (e->svc)
                stop_service(e, now_ms);
            if (e->cb.revoked)
                e->cb.revoked(e, a.reason, e->arg);
            if (!e->svc)
                lease_service_stopped(&e->lease, now_ms);
            break;
        case LEASE_LEADER_CHANGED:
            client_log(c, LEASEHOLD_LOG_DEBUG, "%s: holder is now %s (epoch %" PRIu64 ")", e->key,
                       a.holder ? a.holder : "nobody", a.epoch);
            if (e->cb.leader_changed)
                e->cb.leader_changed(e, a.holder, a.epoch, e->arg);
            break;
        case LEASE_ERROR:
            report_error(e, a.error);
            break;
        case LEASE_STOPPED:
            e->stopped = true;
            break;
        }
    }
}

/* ------------------------------------------------------------- services */

static void start_service(leasehold_election *e, uint64_t epoch, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    int code = 0;
    e->svc = service_start(e, e->service, e->service_arg, epoch, c->wake_fd, &code);
    if (!e->svc) {
        snprintf(e->last_error, sizeof e->last_error, "cannot start the service thread: %s",
                 strerror(-code));
        report_error(e, code);
        lease_resign(&e->lease, now_ms);
        return;
    }
    e->svc_overran = false;
    e->svc_stop_deadline_ms = UINT64_MAX;
}

static void stop_service(leasehold_election *e, uint64_t now_ms)
{
    service_cancel(e->svc);
    if (e->svc_stop_deadline_ms == UINT64_MAX)
        e->svc_stop_deadline_ms = now_ms + e->client->cfg.stop_timeout_ms;
}

/* Joins a service that has returned, or deals with one that overran its stop
 * timeout.  A service that returned on its own while leader makes the
 * election resign: its work is done or failed, so another process should
 * have the chance to lead. */
static void check_service(leasehold_election *e, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    if (!e->svc)
        return;
    if (service_has_exited(e->svc)) {
        bool was_stopping = e->svc_stop_deadline_ms != UINT64_MAX;
        int rc = service_join(e->svc);
        e->svc = NULL;
        if (e->svc_overran)
            client_log(c, LEASEHOLD_LOG_WARN, "%s: the overdue service has finally returned (%d)",
                       e->key, rc);
        if (was_stopping) {
            lease_service_stopped(&e->lease, now_ms);
        } else {
            client_log(c, LEASEHOLD_LOG_WARN,
                       "%s: the service returned %d while leader; resigning so another process "
                       "can lead",
                       e->key, rc);
            lease_resign(&e->lease, now_ms);
        }
        drive(e, now_ms);
        return;
    }
    if (now_ms >= e->svc_stop_deadline_ms && !e->svc_overran) {
        e->svc_overran = true;
        snprintf(e->last_error, sizeof e->last_error,
                 "the service did not return within stop_timeout_ms (%" PRIu32
                 " ms) of being cancelled; no new term starts until it does",
                 c->cfg.stop_timeout_ms);
        report_error(e, LEASEHOLD_ETIMEDOUT);
    }
    if (e->svc_overran && e->ending) {
        client_log(c, LEASEHOLD_LOG_ERROR,
                   "%s: abandoning a service that ignores its cancellation; it is still running",
                   e->key);
        service_abandon(e->svc);
        e->svc = NULL;
        lease_service_stopped(&e->lease, now_ms);
        drive(e, now_ms);
    }
}

/* ------------------------------------------------------- reply handling */

static void copy_error(leasehold_election *e, const conn_reply *r)
{
    snprintf(e->last_error, sizeof e->last_error, "%s", r->str ? r->str : "error reply");
}

/* Turns the acquire script's reply into a lease_reply. */
static void on_acquire_reply(leasehold_election *e, const conn_reply *r, lease_reply *out)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER && r->integer > 0) {
        out->result = LEASE_ACQUIRED;
        out->epoch = (uint64_t)r->integer;
        return;
    }
    if (r->type == CONN_REPLY_ARRAY && r->elements == 3) {
        const conn_reply *h = &r->element[0], *t = &r->element[1], *ep = &r->element[2];
        out->result = LEASE_ACQUIRE_HELD;
        if (h->type == CONN_REPLY_STRING) {
            out->holder = h->str;
            out->holder_len = h->len;
        }
        out->pttl_ms = t->type == CONN_REPLY_INTEGER ? t->integer : -1;
        if (ep->type == CONN_REPLY_STRING)
            out->epoch = strtoull(ep->str, NULL, 10);
        return;
    }
    out->result = LEASE_ACQUIRE_FAILED;
    if (r->type == CONN_REPLY_ERROR) {
        out->error = conn_error_code(r);
        copy_error(e, r);
        if (out->error == LEASEHOLD_EWRONGTYPE)
            snprintf(e->last_error, sizeof e->last_error,
                     "the key (or %s) holds a value that is not a string; another program uses "
                     "it (%s)",
                     e->epoch_key, r->str);
    } else {
        out->error = LEASEHOLD_EPROTO;
        snprintf(e->last_error, sizeof e->last_error, "unexpected reply to the acquire script");
    }
}

/* Turns the renew script's reply into a lease_reply. */
static void on_renew_reply(leasehold_election *e, const conn_reply *r, lease_reply *out)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER && r->integer == 1) {
        out->result = LEASE_RENEWED;
    } else if (r->type == CONN_REPLY_INTEGER && r->integer == 0) {
        out->result = LEASE_RENEW_MISSING;
    } else if (r->type == CONN_REPLY_STRING) {
        out->result = LEASE_RENEW_HELD;
        out->holder = r->str;
        out->holder_len = r->len;
    } else if (r->type == CONN_REPLY_ERROR) {
        out->result = LEASE_RENEW_FAILED;
        out->error = conn_error_code(r);
        copy_error(e, r);
    } else {
        out->result = LEASE_RENEW_FAILED;
        out->error = LEASEHOLD_EPROTO;
        snprintf(e->last_error, sizeof e->last_error, "unexpected reply to the renew script");
    }
}

static void on_release_reply(leasehold_election *e, const conn_reply *r, lease_reply *out)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER) {
        out->result = r->integer == 1 ? 1 : 0;
    } else if (r->type == CONN_REPLY_ERROR) {
        out->result = conn_error_code(r);
        out->error = out->result;
        copy_error(e, r);
    } else {
        out->result = LEASEHOLD_EPROTO;
        out->error = LEASEHOLD_EPROTO;
    }
}

static void handle_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    pending *p = c->pend_head;
    if (!p || (uint64_t)(uintptr_t)p != tag) {
        client_log(c, LEASEHOLD_LOG_ERROR, "%s: reply does not match the command sent",
                   conn_display(c->conn));
        return;
    }
    c->pend_head = p->next;
    if (!c->pend_head)
        c->pend_tail = NULL;
    leasehold_election *e = p->e;
    if (!e) {
        free(p);
        return;
    }
    e->pending_count--;
    if (!p->eval && conn_reply_is_error(r, "NOSCRIPT")) {
        /* SCRIPT FLUSH or a restarted Redis: send the script itself. */
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s script not cached, sending it", e->key,
                   script_name[p->kind]);
        send_script(e, p->kind, p->seq, p->epoch, true, now_ms);
        free(p);
        return;
    }
    lease_reply lr;
    switch (p->kind) {
    case SCRIPT_KIND_ACQUIRE:
        on_acquire_reply(e, r, &lr);
        lease_on_acquire(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_KIND_RENEW:
        on_renew_reply(e, r, &lr);
        if (lr.result == LEASE_RENEW_MISSING || lr.result == LEASE_RENEW_HELD)
            client_log(c, LEASEHOLD_LOG_WARN, "%s: renewal refused: the key %s%.*s", e->key,
                       lr.result == LEASE_RENEW_MISSING ? "is gone" : "is held by ",
                       (int)lr.holder_len, lr.holder ? lr.holder : "");
        else if (lr.result == LEASE_RENEW_FAILED)
            client_log(c, LEASEHOLD_LOG_WARN, "%s: renewal failed: %s", e->key, e->last_error);
        lease_on_renew(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_KIND_RELEASE:
        on_release_reply(e, r, &lr);
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: release %s", e->key,
                   lr.result == 1   ? "done"
                   : lr.result == 0 ? "found the key not ours"
                                    : "failed");
        lease_on_release(&e->lease, now_ms, p->seq, &lr);
        break;
    default:
        break;
    }
    free(p);
    drive(e, now_ms);
}

static void drop_pending(leasehold_client *c)
{
    while (c->pend_head) {
        pending *p = c->pend_head;
        c->pend_head = p->next;
        if (p->e)
            p->e->pending_count--;
        free(p);
    }
    c->pend_tail = NULL;
}

static void handle_ready(void *arg, conn *cn, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    if (c->first_connect) {
        c->first_code = 1; /* ready */
        return;
    }
    if (c->last_conn_error[0])
        client_log(c, LEASEHOLD_LOG_INFO, "%s: connected", conn_display(c->conn));
    c->last_conn_error[0] = '\0';
    for (leasehold_election *e = c->elections; e; e = e->next) {
        lease_on_connected(&e->lease, now_ms);
        drive(e, now_ms);
    }
}

static void handle_down(void *arg, conn *cn, int code, bool by_peer, const char *msg,
                        uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    drop_pending(c);
    if (c->first_connect) {
        if (c->first_code == 0) {
            c->first_code = code;
            snprintf(c->first_msg, sizeof c->first_msg, "%s", msg);
        }
        return;
    }
    /* A Redis that stays away fails every reconnect: log each new reason. */
    bool repeat = strcmp(c->last_conn_error, msg) == 0;
    client_log(c, repeat ? LEASEHOLD_LOG_DEBUG : LEASEHOLD_LOG_WARN, "%s", msg);
    snprintf(c->last_conn_error, sizeof c->last_conn_error, "%s", msg);
    for (leasehold_election *e = c->elections; e; e = e->next) {
        lease_on_disconnected(&e->lease, now_ms, by_peer);
        drive(e, now_ms);
    }
}

/* ------------------------------------------------------------- requests */

static void election_destroy(leasehold_election *e)
{
    free(e->key);
    free(e->epoch_key);
    free(e->channel);
    free(e->token);
    free(e);
}

/* Unlinks a finished election; frees it or hands it to the thread that
 * waits in leasehold_election_free().  Pending entries forget it. */
static void unlink_election(leasehold_client *c, leasehold_election *e)
{
    for (pending *p = c->pend_head; p; p = p->next)
        if (p->e == e)
            p->e = NULL;
    leasehold_election **pp = &c->elections;
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    e->next = NULL;
    pthread_mutex_lock(&c->mu);
    /* Nobody waits for an election ended from a callback, or for one that
     * leasehold_client_free() ends: those are the loop's to free. */
    bool free_here = e->free_by_loop || (c->closing && !e->waited_for);
    e->unlinked = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (free_here)
        election_destroy(e);
}

/* Ends every election (services stopped, leases released); the loop exits
 * when all have finished, or at the deadline, whichever comes first. */
static void begin_shutdown(leasehold_client *c, uint64_t now_ms)
{
    if (c->shutting_down)
        return;
    c->shutting_down = true;
    c->shutdown_deadline_ms =
        now_ms + c->cfg.stop_timeout_ms + 4 * (uint64_t)c->cfg.command_timeout_ms + 1000;
    for (leasehold_election *e = c->elections; e; e = e->next) {
        if (!e->ending) {
            e->ending = true;
            lease_stop(&e->lease, now_ms);
            drive(e, now_ms);
        }
    }
}

static void handle_requests(leasehold_client *c, uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    request *r = c->req_head;
    c->req_head = c->req_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (r) {
        request *next = r->next;
        leasehold_election *e = r->e;
        if (!e) { /* leasehold_client_free(): end every election */
            begin_shutdown(c, now_ms);
            free(r);
            r = next;
            continue;
        }
        switch (r->kind) {
        case REQ_CAMPAIGN:
            e->next = c->elections;
            c->elections = e;
            lease_start(&e->lease, now_ms);
            if (conn_get_state(c->conn) == CONN_READY)
                lease_on_connected(&e->lease, now_ms);
            if (c->shutting_down) {
                e->ending = true;
                lease_stop(&e->lease, now_ms);
            }
            break;
        case REQ_RESIGN:
            if (!e->ending)
                lease_resign(&e->lease, now_ms);
            break;
        case REQ_END:
            if (!e->ending) {
                e->ending = true;
                lease_stop(&e->lease, now_ms);
            }
            break;
        }
        drive(e, now_ms);
        if (r->kind == REQ_RESIGN)
            atomic_store(&e->resign_pending, false);
        free(r);
        r = next;
    }
}

static int enqueue(leasehold_client *c, request_kind kind, leasehold_election *e)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return LEASEHOLD_ENOMEM;
    r->kind = kind;
    r->e = e;
    pthread_mutex_lock(&c->mu);
    if (c->req_tail)
        c->req_tail->next = r;
    else
        c->req_head = r;
    c->req_tail = r;
    pthread_mutex_unlock(&c->mu);
    wake(c);
    return 0;
}

/* ------------------------------------------------------------- the loop */

/* The earliest instant anything needs the loop; UINT64_MAX for nothing. */
static uint64_t next_wake(leasehold_client *c)
{
    uint64_t at = conn_wake_at(c->conn);
    for (leasehold_election *e = c->elections; e; e = e->next) {
        uint64_t w = lease_wake_at(&e->lease);
        if (w < at)
            at = w;
        if (e->svc && !e->svc_overran && e->svc_stop_deadline_ms < at)
            at = e->svc_stop_deadline_ms;
    }
    if (c->shutting_down && c->shutdown_deadline_ms < at)
        at = c->shutdown_deadline_ms;
    return at;
}

/* Everything that is due at now_ms: connection timers, elections' timers,
 * services that returned, elections that finished. */
static void run_due(leasehold_client *c, uint64_t now_ms)
{
    conn_tick(c->conn, now_ms);
    leasehold_election *e = c->elections;
    while (e) {
        leasehold_election *next = e->next;
        if (lease_wake_at(&e->lease) <= now_ms) {
            lease_tick(&e->lease, now_ms);
            drive(e, now_ms);
        }
        check_service(e, now_ms);
        if (e->stopped && !e->svc && e->pending_count == 0)
            unlink_election(c, e);
        e = next;
    }
}

static void *loop_main(void *arg)
{
    leasehold_client *c = arg;
    loop_thread_client = c;
    for (;;) {
        uint64_t now = clock_now_ms();
        handle_requests(c, now);
        run_due(c, now);
        if (c->shutting_down && (!c->elections || now >= c->shutdown_deadline_ms))
            break;

        uint64_t at = next_wake(c);
        now = clock_now_ms();
        int timeout = at == UINT64_MAX   ? -1
                      : at <= now        ? 0
                      : at - now > 60000 ? 60000
                                         : (int)(at - now);
        struct pollfd pfd[2] = {{.fd = c->wake_fd, .events = POLLIN},
                                {.fd = conn_fd(c->conn), .events = conn_poll_events(c->conn)}};
        int n = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR)
            client_log(c, LEASEHOLD_LOG_ERROR, "poll: %s", strerror(errno));
        now = clock_now_ms();
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rd = read(c->wake_fd, &v, sizeof v);
            (void)rd;
        }
        if (n > 0 && pfd[1].fd >= 0 && pfd[1].revents)
            conn_on_io(c->conn, pfd[1].revents, now);
    }
    /* Anything still here is past every deadline. */
    while (c->elections) {
        leasehold_election *e = c->elections;
        if (e->svc) {
            service_abandon(e->svc);
            e->svc = NULL;
        }
        unlink_election(c, e);
    }
    return NULL;
}

/* --------------------------------------------------------------- public */

const char *leasehold_reason_name(leasehold_reason reason)
{
    switch (reason) {
    case LEASEHOLD_LOST:
        return "lost";
    case LEASEHOLD_EXPIRED:
        return "expired";
    case LEASEHOLD_DEADLINE:
        return "renew deadline passed";
    case LEASEHOLD_DISCONNECTED:
        return "disconnected";
    case LEASEHOLD_RESIGNED:
        return "resigned";
    }
    return "unknown";
}

void leasehold_config_init(leasehold_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->version = LEASEHOLD_CONFIG_VERSION;
    cfg->lease_ms = 2000;
    cfg->renew_interval_ms = 300;
    cfg->retry_interval_ms = 1000;
    cfg->renew_deadline_ms = 1500;
    cfg->command_timeout_ms = 250;
    cfg->connect_timeout_ms = 1000;
    cfg->stop_timeout_ms = 10000;
    cfg->log_level = LEASEHOLD_LOG_INFO;
}

/* Checks what lease.c does not: the connection's and the service's times,
 * the identity. */
static int check_config(const leasehold_config *cfg, leasehold_error *err)
{
    if (cfg->version != LEASEHOLD_CONFIG_VERSION)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "config version %d is not %d: start from leasehold_config_init()",
                         cfg->version, LEASEHOLD_CONFIG_VERSION);
    if (!cfg->url || !cfg->url[0])
        return error_set(err, LEASEHOLD_ECONFIG, "no Redis URL given (config url is empty)");
    if (cfg->connect_timeout_ms == 0)
        return error_set(err, LEASEHOLD_ECONFIG, "connect_timeout_ms must be above 0");
    if (cfg->stop_timeout_ms == 0)
        return error_set(err, LEASEHOLD_ECONFIG, "stop_timeout_ms must be above 0");
    if (cfg->log_level < LEASEHOLD_LOG_ERROR || cfg->log_level > LEASEHOLD_LOG_DEBUG)
        return error_set(err, LEASEHOLD_ECONFIG, "log_level %d is not a leasehold_log_level",
                         (int)cfg->log_level);
    if (cfg->identity) {
        size_t n = strlen(cfg->identity);
        if (n == 0 || n > 200)
            return error_set(err, LEASEHOLD_ECONFIG, "identity must be 1 to 200 bytes long");
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)cfg->identity[i];
            if (ch <= ' ' || ch == 0x7f)
                return error_set(err, LEASEHOLD_ECONFIG,
                                 "identity \"%s\" holds a space or control character",
                                 cfg->identity);
        }
    }
    return 0;
}

static char *default_identity(void)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if ((unsigned char)*p <= ' ')
            *p = '_';
    return format_str("%.180s:%ld", host, (long)getpid());
}

static void client_destroy(leasehold_client *c)
{
    if (c->conn)
        conn_free(c->conn);
    drop_pending(c);
    while (c->req_head) {
        request *r = c->req_head;
        c->req_head = r->next;
        free(r);
    }
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c->url_copy);
    free(c->identity);
    free(c);
}

/* Connects on the caller's thread, before the I/O thread exists, so that a
 * wrong URL, password or database is reported by leasehold_client_new(). */
static int first_connect(leasehold_client *c, leasehold_error *err)
{
    c->first_connect = true;
    c->first_code = 0;
    conn_connect(c->conn, clock_now_ms());
    while (c->first_code == 0) {
        uint64_t now = clock_now_ms();
        uint64_t at = conn_wake_at(c->conn);
        int timeout = at == UINT64_MAX ? 100 : at <= now ? 0 : (int)(at - now);
        struct pollfd pfd = {.fd = conn_fd(c->conn), .events = conn_poll_events(c->conn)};
        if (pfd.fd < 0) {
            conn_tick(c->conn, now);
            continue;
        }
        int n = poll(&pfd, 1, timeout);
        now = clock_now_ms();
        if (n > 0)
            conn_on_io(c->conn, pfd.revents, now);
        else
            conn_tick(c->conn, now);
    }
    c->first_connect = false;
    if (c->first_code < 0)
        return error_set(err, c->first_code, "%s", c->first_msg);
    return 0;
}

leasehold_client *leasehold_client_new(const leasehold_config *cfg, leasehold_error *err)
{
    error_clear(err);
    if (!cfg) {
        error_set(err, LEASEHOLD_EINVAL, "no configuration given");
        return NULL;
    }
    if (check_config(cfg, err) < 0)
        return NULL;
    url u;
    if (url_parse(cfg->url, &u, err) < 0)
        return NULL;
    uint32_t command_timeout_ms =
        u.command_timeout_ms ? u.command_timeout_ms : cfg->command_timeout_ms;
    uint32_t connect_timeout_ms =
        u.connect_timeout_ms ? u.connect_timeout_ms : cfg->connect_timeout_ms;
    lease_config lc = {.lease_ms = cfg->lease_ms,
                       .renew_interval_ms = cfg->renew_interval_ms,
                       .retry_interval_ms = cfg->retry_interval_ms,
                       .renew_deadline_ms = cfg->renew_deadline_ms};
    if (lease_config_check(&lc, command_timeout_ms, err) < 0)
        return NULL;

    leasehold_client *c = calloc(1, sizeof *c);
    if (!c) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    c->wake_fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->cfg = *cfg;
    c->cfg.command_timeout_ms = command_timeout_ms;
    c->cfg.connect_timeout_ms = connect_timeout_ms;
    c->u = u;
    c->url_copy = dup_str(cfg->url);
    c->identity = cfg->identity ? dup_str(cfg->identity) : default_identity();
    c->cfg.url = c->url_copy;
    c->cfg.identity = c->identity;
    c->rng = cfg->seed ? cfg->seed : random_u64();
    for (int k = 0; k < SCRIPT_KINDS; k++)
        sha1_hex(script_text[k], strlen(script_text[k]), c->sha[k]);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!c->url_copy || !c->identity || c->wake_fd < 0) {
        error_set(err, c->wake_fd < 0 ? -errno : LEASEHOLD_ENOMEM, "cannot set up the client: %s",
                  c->wake_fd < 0 ? strerror(errno) : "out of memory");
        client_destroy(c);
        return NULL;
    }

    conn_options opt = {.connect_timeout_ms = connect_timeout_ms,
                        .command_timeout_ms = command_timeout_ms,
                        .backoff_min_ms = 25,
                        .backoff_max_ms = 1000,
                        .seed = next_seed(c)};
    conn_handler h = {.on_ready = handle_ready, .on_reply = handle_reply, .on_down = handle_down};
    c->conn = conn_new(&c->u, &opt, &h, c);
    if (!c->conn) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        client_destroy(c);
        return NULL;
    }
    if (conn_resolve(c->conn, err) < 0) {
        client_destroy(c);
        return NULL;
    }
    if (!cfg->lazy_connect) {
        if (first_connect(c, err) < 0) {
            client_destroy(c);
            return NULL;
        }
        client_log(c, LEASEHOLD_LOG_INFO, "%s: connected", conn_display(c->conn));
    } else {
        conn_connect(c->conn, clock_now_ms());
    }

    int rc = pthread_create(&c->thread, NULL, loop_main, c);
    if (rc != 0) {
        error_set(err, -rc, "cannot start the I/O thread: %s", strerror(rc));
        client_destroy(c);
        return NULL;
    }
    atomic_store(&c->thread_running, true);
    return c;
}

void leasehold_client_free(leasehold_client *c)
{
    if (!c)
        return;
    if (loop_thread_client == c) {
        client_log(c, LEASEHOLD_LOG_ERROR,
                   "leasehold_client_free() called from a callback of the same client: ignored");
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->thread_running)) {
        /* The loop ends every election itself: mark them from its side. */
        enqueue(c, REQ_END, NULL);
        pthread_join(c->thread, NULL);
    }
    client_destroy(c);
}

static leasehold_election *campaign(leasehold_client *c, const char *key,
                                    const leasehold_callbacks *cb, void *arg, service_fn fn,
                                    void *service_arg, leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0]) {
        error_set(err, LEASEHOLD_EINVAL, "%s", !c ? "no client given" : "the key is empty");
        return NULL;
    }
    leasehold_election *e = calloc(1, sizeof *e);
    if (!e) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    e->client = c;
    e->key = dup_str(key);
    bool tagged = has_hash_tag(key);
    e->epoch_key = format_str(tagged ? "%s:epoch" : "{%s}:epoch", key);
    e->channel = format_str(tagged ? "%s:events" : "{%s}:events", key);
    e->token = format_str("%s/%016" PRIx64, c->identity, random_u64());
    if (cb)
        e->cb = *cb;
    e->arg = arg;
    e->service = fn;
    e->service_arg = service_arg;
    atomic_init(&e->valid_until_ms, 0);
    atomic_init(&e->epoch, 0);
    atomic_init(&e->resign_pending, false);
    if (!e->key || !e->epoch_key || !e->channel || !e->token) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        goto fail;
    }
    lease_config lc = {.lease_ms = c->cfg.lease_ms,
                       .renew_interval_ms = c->cfg.renew_interval_ms,
                       .retry_interval_ms = c->cfg.retry_interval_ms,
                       .renew_deadline_ms = c->cfg.renew_deadline_ms};
    pthread_mutex_lock(&c->mu);
    uint64_t seed = next_seed(c);
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        error_set(err, LEASEHOLD_ECLOSED, "the client is shutting down");
        goto fail;
    }
    lease_init(&e->lease, &lc, e->token, seed);
    if (enqueue(c, REQ_CAMPAIGN, e) < 0) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        goto fail;
    }
    return e;
fail:
    election_destroy(e);
    return NULL;
}

leasehold_election *leasehold_campaign(leasehold_client *c, const char *key,
                                       const leasehold_callbacks *cb, void *arg,
                                       leasehold_error *err)
{
    return campaign(c, key, cb, arg, NULL, NULL, err);
}

leasehold_election *leasehold_serve_cb(leasehold_client *c, const char *key, service_fn fn,
                                       void *arg, const leasehold_callbacks *cb,
                                       leasehold_error *err)
{
    if (!fn) {
        error_set(err, LEASEHOLD_EINVAL, "no service function given");
        return NULL;
    }
    return campaign(c, key, cb, arg, fn, arg, err);
}

leasehold_election *leasehold_serve(leasehold_client *c, const char *key, service_fn fn, void *arg,
                                    leasehold_error *err)
{
    return leasehold_serve_cb(c, key, fn, arg, NULL, err);
}

bool leasehold_is_leader(const leasehold_election *e)
{
    leasehold_election *m = (leasehold_election *)e;
    if (!e || atomic_load(&m->resign_pending))
        return false;
    return clock_now_ms() < atomic_load(&m->valid_until_ms);
}

uint64_t leasehold_epoch(const leasehold_election *e)
{
    if (!leasehold_is_leader(e))
        return 0;
    return atomic_load(&((leasehold_election *)e)->epoch);
}

const char *leasehold_key(const leasehold_election *e)
{
    return e ? e->key : "";
}

const char *leasehold_token_string(const leasehold_election *e)
{
    return e ? e->token : "";
}

int leasehold_resign(leasehold_election *e)
{
    if (!e)
        return LEASEHOLD_EINVAL;
    atomic_store(&e->resign_pending, true);
    int rc = enqueue(e->client, REQ_RESIGN, e);
    if (rc < 0)
        atomic_store(&e->resign_pending, false);
    return rc;
}

void leasehold_election_free(leasehold_election *e)
{
    if (!e)
        return;
    leasehold_client *c = e->client;
    atomic_store(&e->resign_pending, true); /* not leader from now on */
    bool on_loop = loop_thread_client == c;
    pthread_mutex_lock(&c->mu);
    e->free_by_loop = on_loop;
    e->waited_for = !on_loop;
    pthread_mutex_unlock(&c->mu);
    if (enqueue(c, REQ_END, e) < 0) {
        /* Out of memory: the election keeps running until the client ends. */
        return;
    }
    if (on_loop)
        return;
    pthread_mutex_lock(&c->mu);
    while (!e->unlinked)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    election_destroy(e);
}
