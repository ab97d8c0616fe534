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
#include "random.h"
#include "redis_error.h"
#include "redis_info.h"
#include "protocol.h"
#include "service.h"
#include "sha1.h"
#include "term.h"
#include "url.h"

/* ---------------------------------------------------------------- types */

/* A command sent and not yet answered.  Replies come back in order, so these
 * form a FIFO that mirrors the connection's. */
typedef struct query query;

typedef struct pending {
    struct pending *next;
    leasehold_election *e; /* NULL once the election has gone */
    query *q;              /* or the leasehold_holder_get() it answers */
    bool info;             /* or the restart guard's INFO server */
    enum script_kind kind;
    uint32_t seq;
    uint64_t epoch; /* release */
    bool eval;      /* sent as EVAL (after NOSCRIPT) */
    /* A renew sent as a hold (leasehold_resign_hold): this TTL, not the lease. */
    uint32_t hold_ms;
} pending;

/* A leasehold_holder_get() under way.  The asking thread and the I/O thread
 * share it under client->mu; whichever is last to let go of it frees it. */
struct query {
    query *next; /* in the list of queries waiting for the connection */
    char *key, *epoch_key;
    bool done;      /* answered: code, msg and holder are set */
    bool abandoned; /* the asker gave up waiting: the I/O thread frees it */
    int code;
    char msg[256];
    leasehold_holder holder;
    /* leasehold_resign_hold(): the renew script with this token and TTL
     * instead of the read (hold_ms 0: a holder query). */
    char *token;
    uint32_t hold_ms;
};

typedef enum request_kind {
    REQ_CAMPAIGN,
    REQ_RESIGN,
    REQ_END,
    REQ_QUERY,
    REQ_RESUME,
    REQ_HOLD,
} request_kind;

typedef struct request {
    struct request *next;
    request_kind kind;
    leasehold_election *e;
    query *q;
} request;

struct leasehold_election {
    leasehold_election *next; /* in the client's list (I/O thread) */
    leasehold_client *client;
    char *key, *epoch_key, *channel, *token, *quarantine_key;
    lease lease;
    leasehold_callbacks cb;
    void *arg;
    service_fn service;
    void *service_arg;

    bool observer; /* leasehold_observe(): never claims */
    bool holding;  /* leasehold_resign_hold(): the term ends without a release (I/O thread) */
    /* REQ_END or shutdown came: a held campaign may now be let go of (I/O thread). */
    bool end_asked;

    /* Read by any thread. */
    _Atomic uint64_t valid_until_ms;   /* 0 when not leader */
    _Atomic uint64_t term_deadline_ms; /* valid_until of this or the last term */
    _Atomic uint64_t epoch;            /* of this or the last term (term.h) */
    atomic_uint resign_pending;        /* leasehold_resign() calls not yet carried out */

    /* Lifetime.  The election is freed when the last of these lets go: its
     * owner (leasehold_election_free(), or the loop) and each abandoned
     * service thread, which may still call is_leader, epoch or resign on
     * it.  `gone` (under mu) is set when the loop has let go of it: from
     * then on leasehold_resign() must not touch the client, which may be
     * freed. */
    atomic_uint refs;
    pthread_mutex_t mu;
    bool gone;

    /* I/O thread only. */
    service *svc; /* the running (or stopping) service */
    uint64_t svc_stop_deadline_ms;
    bool svc_overran;        /* the overrun was reported */
    unsigned pending_count;  /* entries in the pending FIFO that point here */
    bool ending;             /* REQ_END received: lease_stop() called */
    bool stopped;            /* LEASE_STOPPED received */
    bool free_by_loop;       /* ended from a callback: the loop frees it */
    char last_error[256];    /* the text behind the next LEASE_ERROR */
    char last_reported[256]; /* the last error reported; cleared by a reply that is not an
                                error, a term and a resume, so each change is reported once */
    uint64_t arm_gate_ms;    /* no claim before this: the quarantine found on connecting
                                (UINT64_MAX: not known yet; 0: none) */

    request *end_req; /* made at campaign, so that ending needs no memory */

    /* Guarded by client->mu. */
    leasehold_election *reg_next; /* in client->registry */
    bool unlinked;                /* the loop has let go of it; the ending thread may free it */
    bool waited_for;              /* a thread waits in leasehold_election_free() to free it */
};

struct leasehold_client {
    leasehold_config cfg; /* strings point into the copies below */
    char *url_copy, *identity;
    url u;
    conn *conn; /* scripts */
    conn *sub;  /* SUBSCRIBEd to the elections' events channels */
    char sha[SCRIPT_KINDS][41];
    uint64_t rng;

    pthread_t thread;
    atomic_bool thread_running;
    int wake_fd;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; an election unlinked, a query answered */
    request *req_head, *req_tail;
    bool closing;                 /* leasehold_client_free() has begun: no new campaigns */
    bool shut_down;               /* ... and the I/O thread is to end every election */
    unsigned waiters;             /* threads inside leasehold_election_free() or
                                     leasehold_holder_get(): client_free waits for them */
    leasehold_election *registry; /* every election not yet unlinked, for EEXIST */

    /* I/O thread only. */
    leasehold_election *elections;
    pending *pend_head, *pend_tail;
    query *unsent;          /* queries waiting for the connection */
    bool need_info;         /* INFO has yet to be asked on this connection */
    uint64_t claim_gate_ms; /* the restart guard: no claim before (UINT64_MAX: unknown) */
    char run_id[48];        /* the last connection's Redis instance, "" unknown */
    char policy[32];        /* its maxmemory-policy, "" unknown */
    char warned_policy[32]; /* the eviction policy last warned about */
    int reset_code;         /* nonzero: the connection must be reset (see reset_later) */
    char reset_why[128];
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    char last_conn_error[256];
    char last_sub_error[256]; /* the last refusal of SUBSCRIBE logged */

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

/* A seed for each election's and each connection's jitter. */
static uint64_t next_seed(leasehold_client *c)
{
    return random_next(&c->rng);
}

static void wake(leasehold_client *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof one);
    (void)n; /* fails only on overflow, when it is readable anyway */
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

/* ------------------------------------------------------------ publishing */

/* Makes what other threads read agree with the state machine.  The epoch
 * and valid_until go through term.h, which orders them so that a reader who
 * finds the term valid never reads epoch 0. */
static void publish(leasehold_election *e)
{
    uint64_t valid_until = lease_valid_until(&e->lease);
    term_publish(&e->epoch, &e->valid_until_ms, lease_epoch(&e->lease), valid_until);
    atomic_store(&e->term_deadline_ms, lease_hold_until(&e->lease));
    if (e->svc && valid_until)
        service_extend(e->svc, valid_until);
}

/* ---------------------------------------------------------------- sending */

/* Our bookkeeping and the connection's no longer agree (a command we could
 * not queue, a reply we cannot match): the only sound way on is a new
 * connection, on which every election learns what it must.  Done by the loop
 * once the current callback has returned. */
static void reset_later(leasehold_client *c, int code, const char *why)
{
    if (c->reset_code)
        return;
    c->reset_code = code;
    snprintf(c->reset_why, sizeof c->reset_why, "%s", why);
}

/* Sends p's script as EVALSHA (or EVAL after a NOSCRIPT) with the names it
 * needs, and queues p in the pending FIFO.  A failure to send means the
 * connection is not ready (the state machine learns of that through
 * on_down) or memory ran out; p is then freed and false returned. */
static bool send_script(leasehold_client *c, pending *p, const char *key, const char *epoch_key,
                        const char *quarantine_key, const char *token, const char *channel,
                        uint64_t now_ms)
{
    char lease_ms[24], epoch_s[24];
    snprintf(lease_ms, sizeof lease_ms, "%" PRIu32, p->hold_ms ? p->hold_ms : c->cfg.lease_ms);
    snprintf(epoch_s, sizeof epoch_s, "%" PRIu64, p->epoch);

    const char *argv[10];
    int argc = 0;
    argv[argc++] = p->eval ? "EVAL" : "EVALSHA";
    argv[argc++] = p->eval ? protocol_script(p->kind) : c->sha[p->kind];
    switch (p->kind) {
    case SCRIPT_ACQUIRE:
        argv[argc++] = "3";
        argv[argc++] = key;
        argv[argc++] = epoch_key;
        argv[argc++] = quarantine_key;
        argv[argc++] = token;
        argv[argc++] = lease_ms;
        argv[argc++] = channel;
        argv[argc++] = epoch_s; /* the floor of the next epoch */
        break;
    case SCRIPT_ARM:
        argv[argc++] = "2";
        argv[argc++] = epoch_key;
        argv[argc++] = quarantine_key;
        argv[argc++] = lease_ms;
        argv[argc++] = epoch_s;
        break;
    case SCRIPT_RENEW:
        argv[argc++] = "1";
        argv[argc++] = key;
        argv[argc++] = token;
        argv[argc++] = lease_ms;
        break;
    case SCRIPT_RELEASE:
        argv[argc++] = "2";
        argv[argc++] = key;
        argv[argc++] = epoch_key;
        argv[argc++] = token;
        argv[argc++] = channel;
        argv[argc++] = epoch_s;
        break;
    case SCRIPT_QUERY:
        argv[argc++] = "2";
        argv[argc++] = key;
        argv[argc++] = epoch_key;
        break;
    default:
        free(p);
        return false;
    }
    int rc = conn_send(c->conn, argc, argv, NULL, (uint64_t)(uintptr_t)p, now_ms);
    if (rc < 0) {
        client_log(c, LEASEHOLD_LOG_WARN, "%s: %s not sent: %s", key, protocol_script_name(p->kind),
                   rc == -ENOTCONN ? "not connected" : leasehold_strerror(rc));
        free(p);
        reset_later(c, rc == -ENOTCONN ? LEASEHOLD_EIO : rc, "a command could not be sent");
        return false;
    }
    p->next = NULL;
    if (c->pend_tail)
        c->pend_tail->next = p;
    else
        c->pend_head = p;
    c->pend_tail = p;
    return true;
}

/* Sends script `kind` for election e; the reply comes back to e's state
 * machine with seq. */
static void send_for_election(leasehold_election *e, enum script_kind kind, uint32_t seq,
                              uint64_t epoch, bool eval, uint64_t now_ms)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        client_log(e->client, LEASEHOLD_LOG_ERROR, "%s: out of memory sending %s", e->key,
                   protocol_script_name(kind));
        reset_later(e->client, LEASEHOLD_ENOMEM, "out of memory sending a command");
        return;
    }
    *p = (pending){.e = e, .kind = kind, .seq = seq, .epoch = epoch, .eval = eval};
    if (send_script(e->client, p, e->key, e->epoch_key, e->quarantine_key, e->token, e->channel,
                    now_ms))
        e->pending_count++;
}

/* ------------------------------------------------------------ the drive */

static void start_service(leasehold_election *e, uint64_t epoch, uint64_t now_ms);
static void stop_service(leasehold_election *e, uint64_t now_ms);
static void election_release(void *arg);

/* Reports an error through the log and the error callback, once per
 * change: the same text again (a transient failure repeating on every
 * claim) is logged at DEBUG only and not handed to the callback.  A
 * permanent error (the election has halted) is logged at ERROR, a foreign
 * holder or an eviction policy at WARN. */
static void report_error(leasehold_election *e, int code)
{
    leasehold_client *c = e->client;
    leasehold_error err;
    const char *text = e->last_error[0] ? e->last_error : leasehold_strerror(code);
    error_set(&err, code, "key %s: %s", e->key, text);
    e->last_error[0] = '\0';
    bool repeat = strcmp(e->last_reported, err.msg) == 0;
    leasehold_log_level level = code == LEASEHOLD_EFOREIGN || code == LEASEHOLD_EEVICTION
                                    ? LEASEHOLD_LOG_WARN
                                    : LEASEHOLD_LOG_ERROR;
    client_log(c, repeat ? LEASEHOLD_LOG_DEBUG : level, "%s", err.msg);
    if (repeat)
        return;
    snprintf(e->last_reported, sizeof e->last_reported, "%s", err.msg);
    if (e->cb.error)
        e->cb.error(e, &err, e->arg);
}

/* The message for a holder that is no lease (LEASEHOLD_ENOTLEASE) or not
 * a leasehold token (LEASEHOLD_EFOREIGN), value shown cut and escaped. */
static void explain_holder(leasehold_election *e, const lease_action *a)
{
    char v[80];
    const char *h = a->holder ? a->holder : "";
    redis_error_quote(h, strlen(h), 60, v, sizeof v);
    if (a->error == LEASEHOLD_ENOTLEASE)
        snprintf(e->last_error, sizeof e->last_error,
                 "holds '%s' with no TTL: not a lease, and nothing will ever free it (delete "
                 "it, or pick another key)",
                 v);
    else
        snprintf(e->last_error, sizeof e->last_error,
                 "holds '%s', which is not a leasehold token (another program's value, or the "
                 "original module's): waiting for it to expire (%" PRId64 " ms left)",
                 v, a->pttl_ms);
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
            send_for_election(e, SCRIPT_ACQUIRE, a.seq, a.epoch, false, now_ms);
            break;
        case LEASE_SEND_RENEW:
            send_for_election(e, SCRIPT_RENEW, a.seq, 0, false, now_ms);
            break;
        case LEASE_SEND_RELEASE:
            send_for_election(e, SCRIPT_RELEASE, a.seq, a.epoch, false, now_ms);
            break;
        case LEASE_SEND_QUERY:
            send_for_election(e, SCRIPT_QUERY, a.seq, 0, false, now_ms);
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
            /* Without a service of ours, the user's own code acts on the
             * term: after a resign it has stopped, but a term that ended
             * against its will may still be acted on until valid_until, so
             * its key is left to lapse rather than released. */
            if (!e->svc && a.reason == LEASEHOLD_RESIGNED && !e->holding)
                lease_service_stopped(&e->lease, now_ms);
            else if (!e->svc)
                lease_service_abandoned(&e->lease, now_ms);
            break;
        case LEASE_LEADER_CHANGED:
            if (c->cfg.log && c->cfg.log_level >= LEASEHOLD_LOG_DEBUG) {
                char holder[160] = "nobody";
                if (a.holder)
                    redis_error_quote(a.holder, strlen(a.holder), 60, holder, sizeof holder);
                client_log(c, LEASEHOLD_LOG_DEBUG, "%s: holder is now %s (epoch %" PRIu64 ")",
                           e->key, holder, a.epoch);
            }
            if (e->cb.leader_changed)
                e->cb.leader_changed(e, a.holder, a.epoch, e->arg);
            if (e->cb.observed) {
                bool began = a.change == LEASEHOLD_CHANGE_ELECTED;
                leasehold_observation o = {.change = a.change,
                                           .token = began ? a.holder : a.ended,
                                           .epoch = began ? a.epoch : a.ended_epoch};
                if (o.token && o.token[0]) /* an end of a term we never saw begin is no news */
                    e->cb.observed(e, &o, e->arg);
            }
            break;
        case LEASE_ERROR:
            if (a.error == LEASEHOLD_ENOTLEASE || a.error == LEASEHOLD_EFOREIGN)
                explain_holder(e, &a);
            if (a.error == LEASEHOLD_ECLOCKJUMP)
                snprintf(e->last_error, sizeof e->last_error,
                         "Redis's clock advanced %" PRIu64
                         " ms while ours advanced at most %" PRIu64
                         " ms: it was stepped forward, so the lease's TTL cannot be trusted and "
                         "the term ends now (the Redis host must slew its clock, never step it)",
                         a.redis_ms, a.local_ms);
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
    e->svc = service_start(e, e->service, e->service_arg, epoch, lease_valid_until(&e->lease),
                           c->wake_fd, &code);
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
        atomic_fetch_add(&e->refs, 1); /* the service thread's, until fn returns */
        if (!service_abandon(e->svc, election_release, e)) {
            atomic_fetch_sub(&e->refs, 1);
            return; /* it has just returned: joined when its wake arrives */
        }
        client_log(c, LEASEHOLD_LOG_ERROR,
                   "%s: abandoning a service that ignores its cancellation; it is still running",
                   e->key);
        e->svc = NULL;
        lease_service_abandoned(&e->lease, now_ms);
        drive(e, now_ms);
    }
}

/* ------------------------------------------------------------- queries */

/* What the error reply r to a script for `key` means: its code, and in why
 * the cause and the fix, with the ACL user, the key's side keys and its
 * channel named, and nothing of the script's internals. */
static int explain_reply(leasehold_client *c, const char *key, const char *epoch_key,
                         const char *quarantine_key, const char *channel, const conn_reply *r,
                         char *why, size_t why_size)
{
    bool election = channel != NULL; /* a campaign retries; leasehold_holder_get() does not */
    char side[600];
    snprintf(side, sizeof side, "~%s%s%s", epoch_key, quarantine_key ? " ~" : "",
             quarantine_key ? quarantine_key : "");
    redis_error_ctx ctx = {.key = key,
                           .epoch_key = epoch_key,
                           .side_keys = side,
                           .channel = channel,
                           .user = c->u.user[0] ? c->u.user : "default",
                           .address = conn_display(c->conn),
                           .retried = election};
    return redis_error_explain(r->str, &ctx, why, why_size);
}

/* Frees a query and its strings. */
static void query_free(query *q)
{
    free(q->key);
    free(q->epoch_key);
    free(q->token);
    free(q);
}

/* The answer to a hold (the renew script with the hold's TTL) into q: 0
 * when the key was still this term's and now has the hold's TTL.  An error
 * reply is explained as every script's is; another holder is quoted. */
static void hold_answer(leasehold_client *c, query *q, const conn_reply *r)
{
    lease_reply lr;
    char why[300] = "";
    protocol_renew_reply(r, &lr, why, sizeof why);
    if (lr.result == LEASE_RENEWED)
        return;
    q->code = lr.result == LEASE_RENEW_FAILED ? lr.error : LEASEHOLD_ENOTLEADER;
    if (lr.result == LEASE_RENEW_FAILED && r->type == CONN_REPLY_ERROR)
        q->code = explain_reply(c, q->key, q->epoch_key, NULL, NULL, r, why, sizeof why);
    if (lr.result == LEASE_RENEW_MISSING) {
        snprintf(q->msg, sizeof q->msg, "key %s: gone before the hold: the lease had run out",
                 q->key);
    } else if (lr.result == LEASE_RENEW_HELD) {
        char holder[160];
        redis_error_quote(lr.holder ? lr.holder : "", lr.holder_len, 60, holder, sizeof holder);
        snprintf(q->msg, sizeof q->msg, "key %s: held by '%s' before the hold", q->key, holder);
    } else {
        snprintf(q->msg, sizeof q->msg, "key %s: hold failed: %.200s", q->key, why);
    }
}

/* Hands a query its answer (code 0 and r) or its failure, and wakes the
 * asker; frees it when the asker has given up. */
static void finish_query(leasehold_client *c, query *q, int code, const char *msg,
                         const conn_reply *r)
{
    pthread_mutex_lock(&c->mu);
    bool abandoned = q->abandoned;
    if (!abandoned) {
        q->code = code;
        snprintf(q->msg, sizeof q->msg, "%s", msg ? msg : "");
        if (code == 0 && r && q->hold_ms) {
            hold_answer(c, q, r);
        } else if (code == 0 && r) {
            lease_reply lr;
            char why[200] = "";
            protocol_query_reply(r, q->epoch_key, &lr, why, sizeof why);
            if (lr.result == LEASE_QUERY_FAILED) {
                q->code = lr.error;
                if (r->type == CONN_REPLY_ERROR)
                    q->code =
                        explain_reply(c, q->key, q->epoch_key, NULL, NULL, r, why, sizeof why);
                snprintf(q->msg, sizeof q->msg, "key %s: %s", q->key, why);
            } else if (lr.result == LEASE_QUERY_HELD) {
                size_t n = lr.holder_len < sizeof q->holder.token ? lr.holder_len
                                                                  : sizeof q->holder.token - 1;
                memcpy(q->holder.token, lr.holder, n);
                q->holder.token[n] = '\0';
                q->holder.ttl_ms = lr.pttl_ms;
            }
            q->holder.epoch = lr.epoch;
            snprintf(q->holder.maxmemory_policy, sizeof q->holder.maxmemory_policy, "%s",
                     c->policy);
        }
        q->done = true;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    if (abandoned)
        query_free(q);
}

static void send_query(leasehold_client *c, query *q, bool eval, uint64_t now_ms)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        finish_query(c, q, LEASEHOLD_ENOMEM, "out of memory", NULL);
        return;
    }
    *p = (pending){.q = q,
                   .kind = q->hold_ms ? SCRIPT_RENEW : SCRIPT_QUERY,
                   .eval = eval,
                   .hold_ms = q->hold_ms};
    if (!send_script(c, p, q->key, q->epoch_key, NULL, q->token, NULL, now_ms))
        finish_query(c, q, LEASEHOLD_ECONNRESET, "the connection to Redis went down", NULL);
}

/* Sends the queries that waited for the connection. */
static void send_unsent_queries(leasehold_client *c, uint64_t now_ms)
{
    query *q = c->unsent;
    c->unsent = NULL;
    while (q) {
        query *next = q->next;
        q->next = NULL;
        send_query(c, q, false, now_ms);
        q = next;
    }
}

/* leasehold_resign_hold() on the I/O thread.  The campaign ends without a
 * release (no renewal or release of it follows), then the hold goes out: on
 * the one connection, after every renewal of the term, so none of them can
 * overwrite its TTL.  A term that ended meanwhile gets no hold. */
static void hold_term(leasehold_client *c, leasehold_election *e, query *q, uint64_t now_ms)
{
    bool ended = e->ending || !lease_is_leader(&e->lease, now_ms);
    /* Either way the campaign ends here, without a release: the caller is
     * no longer leader for good, so it must not be elected again. */
    e->holding = true;
    if (!e->ending) {
        e->ending = true;
        lease_stop(&e->lease, now_ms);
        drive(e, now_ms);
    }
    if (ended) {
        char msg[sizeof q->msg];
        snprintf(msg, sizeof msg, "key %s: the term ended before the hold", e->key);
        finish_query(c, q, LEASEHOLD_ENOTLEADER, msg, NULL);
        return;
    }
    if (conn_get_state(c->conn) == CONN_READY)
        send_query(c, q, false, now_ms);
    else
        finish_query(c, q, LEASEHOLD_ECONNRESET,
                     "not connected to Redis: the key lapses with its lease, without the hold",
                     NULL);
}

/* ------------------------------------------------------- reply handling */

static void guard_answer(leasehold_client *c, const conn_reply *r, uint64_t now_ms);
static void arm_answer(leasehold_election *e, const conn_reply *r, uint64_t now_ms);
static void log_quarantine(leasehold_election *e, int64_t remaining_ms, bool fresh);

static void handle_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    pending *p = c->pend_head;
    if (!p || (uint64_t)(uintptr_t)p != tag) {
        reset_later(c, LEASEHOLD_EPROTO, "a reply does not match the command sent");
        return;
    }
    c->pend_head = p->next;
    if (!c->pend_head)
        c->pend_tail = NULL;
    if (p->info) {
        free(p);
        guard_answer(c, r, now_ms);
        return;
    }
    if (p->q) {
        if (!p->eval && conn_reply_is_error(r, "NOSCRIPT"))
            send_query(c, p->q, true, now_ms);
        else
            finish_query(c, p->q, 0, NULL, r);
        free(p);
        return;
    }
    leasehold_election *e = p->e;
    if (!e) {
        free(p);
        return;
    }
    e->pending_count--;
    if (!p->eval && conn_reply_is_error(r, "NOSCRIPT")) {
        /* SCRIPT FLUSH or a restarted Redis: send the script itself. */
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s script not cached, sending it", e->key,
                   protocol_script_name(p->kind));
        send_for_election(e, p->kind, p->seq, p->epoch, true, now_ms);
        free(p);
        return;
    }
    lease_reply lr;
    /* A reply that is not an error is a success of sorts: the next failure
     * is news again. */
    e->last_error[0] = '\0';
    if (r->type == CONN_REPLY_ERROR)
        explain_reply(c, e->key, e->epoch_key, e->quarantine_key, e->channel, r, e->last_error,
                      sizeof e->last_error);
    else
        e->last_reported[0] = '\0';
    char raw[256]; /* Redis's own words: e->last_error says it better */
    switch (p->kind) {
    case SCRIPT_ACQUIRE:
        protocol_acquire_reply(r, e->epoch_key, &lr, raw, sizeof raw);
        if (lr.result == LEASE_ACQUIRE_QUARANTINED)
            log_quarantine(e, lr.pttl_ms, lr.fresh);
        lease_on_acquire(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_ARM:
        arm_answer(e, r, now_ms);
        break;
    case SCRIPT_RENEW:
        protocol_renew_reply(r, &lr, raw, sizeof raw);
        if (lr.result == LEASE_RENEW_MISSING || lr.result == LEASE_RENEW_HELD) {
            char holder[160];
            redis_error_quote(lr.holder ? lr.holder : "", lr.holder_len, 60, holder, sizeof holder);
            client_log(c, LEASEHOLD_LOG_WARN, "%s: renewal refused: the key %s%s%s", e->key,
                       lr.result == LEASE_RENEW_MISSING ? "is gone" : "is held by '", holder,
                       lr.result == LEASE_RENEW_MISSING ? "" : "'");
        } else if (lr.result == LEASE_RENEW_FAILED) { /* reported once per change as an error */
            client_log(c, LEASEHOLD_LOG_DEBUG, "%s: renewal failed: %s", e->key, e->last_error);
        }
        lease_on_renew(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_RELEASE:
        protocol_release_reply(r, &lr, raw, sizeof raw);
        client_log(c, lr.result == 1 ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG, "%s: %s", e->key,
                   lr.result == 1   ? "lease released"
                   : lr.result == 0 ? "release found the key not ours"
                                    : "release failed");
        lease_on_release(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_QUERY:
        protocol_query_reply(r, e->epoch_key, &lr, raw, sizeof raw);
        lease_on_query(&e->lease, now_ms, p->seq, &lr);
        break;
    default:
        break;
    }
    free(p);
    drive(e, now_ms);
}

/* Forgets every command in flight (the connection that carried them is
 * gone); a query among them fails with code and msg. */
static void drop_pending(leasehold_client *c, int code, const char *msg)
{
    while (c->pend_head) {
        pending *p = c->pend_head;
        c->pend_head = p->next;
        if (p->e)
            p->e->pending_count--;
        if (p->q)
            finish_query(c, p->q, code, msg, NULL);
        free(p);
    }
    c->pend_tail = NULL;
}

/* ---------------------------------------------------------- restart guard */

/*
 * A Redis that restarted without persistence has lost every key: a lease
 * another process still believes it holds would go to a second process if we
 * claimed at once.  Two holds stand in the way, and they overlap rather than
 * add up, since both start when a connection does:
 *   - the quarantine, in Redis itself (protocol.c): a missing {K}:epoch holds
 *     every claim for one lease.  Each new connection runs the arm script for
 *     every campaign at once, so the quarantine's lease starts then, not
 *     after the hold below;
 *   - the restart guard, from INFO on each new connection: no claim on a
 *     Redis up for less than the lease, or whose run_id differs from the one
 *     the last connection met (a restart, whatever uptime says), for one lease
 *     from then.
 * Renewals are never held back: a key that is gone answers so.  The same INFO
 * gives the eviction policy: any other than noeviction may drop the lease key
 * from a full Redis, which is reported to every election.
 */

/* The instant before which e may not claim: the later of the two holds. */
static uint64_t claim_gate(const leasehold_election *e)
{
    uint64_t gate = e->client->claim_gate_ms;
    return e->arm_gate_ms > gate ? e->arm_gate_ms : gate;
}

/* Tells e's state machine when it may claim, and carries out what follows. */
static void apply_gate(leasehold_election *e, uint64_t now_ms)
{
    lease_gate_claims(&e->lease, now_ms, claim_gate(e));
    drive(e, now_ms);
}

/* Logs a quarantine: loudly when this process's script set it. */
static void log_quarantine(leasehold_election *e, int64_t remaining_ms, bool fresh)
{
    client_log(e->client, fresh ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG,
               "%s: %s was missing (Redis lost its data, it was flushed or evicted, or the key "
               "was never used): no claim succeeds for %" PRId64 " ms (quarantine)",
               e->key, e->epoch_key, remaining_ms);
}

/* Sends the arm script for e on the new connection (campaigns only). */
static void arm_send(leasehold_election *e, uint64_t now_ms)
{
    if (e->observer || e->ending || lease_halted(&e->lease)) {
        e->arm_gate_ms = 0; /* a halted campaign sends nothing; its acquire checks anyway */
        return;
    }
    e->arm_gate_ms = UINT64_MAX;
    uint64_t seen = lease_max_epoch_seen(&e->lease);
    send_for_election(e, SCRIPT_ARM, 0, seen ? seen + 1 : 0, false, now_ms);
}

/* The arm script's answer: claims wait for the quarantine it found. */
static void arm_answer(leasehold_election *e, const conn_reply *r, uint64_t now_ms)
{
    int64_t remaining_ms = 0;
    bool fresh = false;
    char raw[256];
    int code = protocol_arm_reply(r, &remaining_ms, &fresh, raw, sizeof raw);
    e->arm_gate_ms = 0;
    if (code < 0) {
        /* The acquire script will meet the same refusal and report it. */
        client_log(e->client, LEASEHOLD_LOG_DEBUG, "%s: quarantine check failed: %s", e->key,
                   e->last_error[0] ? e->last_error : raw);
        e->last_error[0] = '\0';
    } else if (remaining_ms > 0) {
        log_quarantine(e, remaining_ms, fresh);
        /* As the acquire does: a quarantine lasts a lease at most (a marker
         * with a longer TTL is not ours, and the acquire decides anyway). */
        uint64_t wait = (uint64_t)remaining_ms;
        e->arm_gate_ms = now_ms + (wait < e->client->cfg.lease_ms ? wait : e->client->cfg.lease_ms);
    }
    apply_gate(e, now_ms);
}

/* A new connection: its Redis is not known yet.  With the restart guard,
 * every claim waits for INFO and each campaign's arm script. */
static void guard_connected(leasehold_client *c, uint64_t now_ms)
{
    c->need_info = true;
    if (!c->cfg.restart_guard)
        return;
    c->claim_gate_ms = UINT64_MAX;
    for (leasehold_election *e = c->elections; e; e = e->next) {
        e->arm_gate_ms = e->observer ? 0 : UINT64_MAX;
        lease_gate_claims(&e->lease, now_ms, UINT64_MAX);
    }
}

/* Asks the connection's Redis about itself (INFO), then arms each campaign's
 * quarantine check; once per connection, before anything else is sent. */
static void guard_ask(leasehold_client *c, uint64_t now_ms)
{
    if (!c->need_info || conn_get_state(c->conn) != CONN_READY)
        return;
    c->need_info = false;
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        reset_later(c, LEASEHOLD_ENOMEM, "out of memory asking INFO");
        return;
    }
    p->info = true;
    const char *argv[1] = {"INFO"};
    if (conn_send(c->conn, 1, argv, NULL, (uint64_t)(uintptr_t)p, now_ms) < 0) {
        free(p);
        reset_later(c, LEASEHOLD_EIO, "INFO could not be sent");
        return;
    }
    if (c->pend_tail)
        c->pend_tail->next = p;
    else
        c->pend_head = p;
    c->pend_tail = p;
    if (c->cfg.restart_guard)
        for (leasehold_election *e = c->elections; e; e = e->next)
            arm_send(e, now_ms);
}

/* True when the connection's Redis may evict keys (its policy is known). */
static bool may_evict(const leasehold_client *c)
{
    return c->policy[0] && strcmp(c->policy, "noeviction") != 0;
}

/* Tells election e that Redis may evict its key. */
static void warn_eviction(leasehold_election *e)
{
    snprintf(e->last_error, sizeof e->last_error,
             "Redis at %s has maxmemory-policy %s: when full it may evict the lease key while "
             "its leader still believes it holds it; set maxmemory-policy noeviction",
             conn_display(e->client->conn), e->client->policy);
    report_error(e, LEASEHOLD_EEVICTION);
}

/* Warns every election, once per policy, when Redis may evict the lease key
 * (elections started later are warned as they start). */
static void check_eviction(leasehold_client *c, const char *policy)
{
    snprintf(c->policy, sizeof c->policy, "%s", policy);
    if (!may_evict(c) || strcmp(policy, c->warned_policy) == 0)
        return;
    snprintf(c->warned_policy, sizeof c->warned_policy, "%s", policy);
    for (leasehold_election *e = c->elections; e; e = e->next)
        warn_eviction(e);
}

/* INFO's answer.  Claims may go out once Redis has been up for the lease:
 * uptime_in_seconds is a difference of whole wall-clock seconds and can read
 * up to 1 s high, so it is counted one second short.  A run_id other than the
 * last connection's is a restart just now, whatever uptime says.  A Redis
 * that will not say (ACL) is taken to have just started. */
static void guard_answer(leasehold_client *c, const conn_reply *r, uint64_t now_ms)
{
    redis_info info;
    redis_info_parse(r->type == CONN_REPLY_STRING ? r->str : NULL, &info);
    check_eviction(c, info.maxmemory_policy);
    bool restarted = info.run_id[0] && c->run_id[0] && strcmp(info.run_id, c->run_id) != 0;
    if (c->cfg.restart_guard && !info.has_uptime) {
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: INFO gave no uptime (%s); the restart guard assumes Redis has just "
                   "started",
                   conn_display(c->conn), r->type == CONN_REPLY_ERROR ? r->str : "no such field");
    } else if (c->cfg.restart_guard && restarted) {
        client_log(c, LEASEHOLD_LOG_INFO, "%s: Redis restarted (its run_id changed from %s to %s)",
                   conn_display(c->conn), c->run_id, info.run_id);
        info.up_ms = 0; /* a restart just now, whatever uptime says */
    }
    if (info.run_id[0])
        snprintf(c->run_id, sizeof c->run_id, "%s", info.run_id);
    if (!c->cfg.restart_guard)
        return;
    uint64_t wait_ms = redis_info_guard_wait_ms(&info, c->cfg.lease_ms);
    c->claim_gate_ms = now_ms + wait_ms;
    if (wait_ms > 0)
        client_log(c, LEASEHOLD_LOG_INFO,
                   "%s: Redis has been up for less than the lease (%" PRIu64
                   " ms counted): no claim for %" PRIu64 " ms (restart guard)",
                   conn_display(c->conn), info.up_ms, wait_ms);
    for (leasehold_election *e = c->elections; e; e = e->next)
        apply_gate(e, now_ms);
}

static void handle_ready(void *arg, conn *cn, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    guard_connected(c, now_ms);
    if (c->first_connect) {
        c->first_code = 1; /* ready */
        return;
    }
    if (c->last_conn_error[0])
        client_log(c, LEASEHOLD_LOG_INFO, "%s: connected", conn_display(c->conn));
    c->last_conn_error[0] = '\0';
    guard_ask(c, now_ms); /* INFO first: a query's answer can then name the eviction policy */
    send_unsent_queries(c, now_ms);
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
    drop_pending(c, code, msg);
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
    /* A refusal no retry can fix (the password, the ACL user's right to
     * connect, the database) halts every election; the connection keeps
     * trying with its back-off, so a fixed ACL is found again on resume. */
    bool permanent = code == LEASEHOLD_EAUTH || code == LEASEHOLD_ENOPERM || code == LEASEHOLD_EDB;
    for (leasehold_election *e = c->elections; e; e = e->next) {
        lease_on_disconnected(&e->lease, now_ms, by_peer);
        if (permanent && !lease_halted(&e->lease)) {
            snprintf(e->last_error, sizeof e->last_error, "%s", msg);
            lease_halt(&e->lease, now_ms, code);
        }
        drive(e, now_ms);
    }
}

/* --------------------------------------------------------- subscription */

/* The events channels are news that hastens claims and reports changes;
 * nothing about leadership is ever concluded from them, so losing the
 * subscription costs speed, never safety.  One connection carries the
 * channels of every election of the client. */

static void subscribe(leasehold_client *c, const char *channel, const char *verb, uint64_t now_ms)
{
    if (conn_get_state(c->sub) != CONN_READY)
        return; /* sub_ready subscribes to everything */
    const char *argv[2] = {verb, channel};
    conn_send(c->sub, 2, argv, NULL, 0, now_ms);
}

static void sub_ready(void *arg, conn *cn, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    client_log(c, LEASEHOLD_LOG_DEBUG, "%s: events subscription connected", conn_display(c->sub));
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (!e->stopped)
            subscribe(c, e->channel, "SUBSCRIBE", now_ms);
}

/* The answers to SUBSCRIBE and UNSUBSCRIBE: only a refusal is news, logged
 * once per change.  It halts nothing: the channel only hastens claims and
 * reads (a campaign whose ACL lacks the channel halts on its acquire, which
 * publishes there). */
static void sub_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn, (void)tag, (void)now_ms;
    if (r->type != CONN_REPLY_ERROR || strcmp(c->last_sub_error, r->str) == 0)
        return;
    snprintf(c->last_sub_error, sizeof c->last_sub_error, "%s", r->str);
    if (conn_error_code(r) == LEASEHOLD_ENOPERM)
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: ACL user '%s' may not subscribe to the events channels: followers claim "
                   "and observers read on their timers only (grant each key K's channel: ACL "
                   "SETUSER %s &{K}:events)",
                   conn_display(c->sub), c->u.user[0] ? c->u.user : "default",
                   c->u.user[0] ? c->u.user : "default");
    else
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: events subscription refused (%s); followers claim on their timers only",
                   conn_display(c->sub), r->str);
}

static void sub_down(void *arg, conn *cn, int code, bool by_peer, const char *msg, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn, (void)code, (void)by_peer, (void)now_ms;
    client_log(c, LEASEHOLD_LOG_DEBUG, "events subscription: %s", msg);
}

/* A published message: ["message", channel, payload].  Handed to every
 * election on that channel. */
static bool sub_push(void *arg, conn *cn, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = arg;
    (void)cn;
    if (r->type != CONN_REPLY_ARRAY || r->elements != 3 ||
        r->element[0].type != CONN_REPLY_STRING || strcmp(r->element[0].str, "message") != 0)
        return false;
    const conn_reply *ch = &r->element[1], *msg = &r->element[2];
    lease_event_kind kind;
    uint64_t epoch;
    const char *token;
    size_t token_len;
    if (ch->type != CONN_REPLY_STRING || msg->type != CONN_REPLY_STRING ||
        protocol_parse_event(msg->str, msg->len, &kind, &epoch, &token, &token_len) < 0)
        return true; /* not ours to understand: ignored */
    for (leasehold_election *e = c->elections; e; e = e->next) {
        if (strcmp(e->channel, ch->str) != 0)
            continue;
        lease_on_event(&e->lease, now_ms, kind, token, token_len, epoch);
        drive(e, now_ms);
    }
    return true;
}

/* ------------------------------------------------------------- requests */

static void election_destroy(leasehold_election *e)
{
    pthread_mutex_destroy(&e->mu);
    free(e->end_req);
    free(e->key);
    free(e->epoch_key);
    free(e->channel);
    free(e->quarantine_key);
    free(e->token);
    free(e);
}

/* Drops one reference to e (see refs); the last one frees it.  Any thread. */
static void election_release(void *arg)
{
    leasehold_election *e = arg;
    if (atomic_fetch_sub(&e->refs, 1) == 1)
        election_destroy(e);
}

/* Unlinks a finished election; releases it or hands it to the thread that
 * waits in leasehold_election_free().  Pending entries forget it, and so do
 * later leasehold_resign() calls (of a service that outlived it). */
static void unlink_election(leasehold_client *c, leasehold_election *e)
{
    pthread_mutex_lock(&e->mu);
    e->gone = true;
    atomic_store(&e->valid_until_ms, 0);
    pthread_mutex_unlock(&e->mu);
    bool shared = false;
    for (leasehold_election *o = c->elections; o; o = o->next)
        shared |= o != e && strcmp(o->channel, e->channel) == 0;
    if (!shared)
        subscribe(c, e->channel, "UNSUBSCRIBE", clock_now_ms());
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
    /* Requests still queued for it (a resign from its service thread, say)
     * must not outlive it. */
    request **qp = &c->req_head, *last = NULL, *holds = NULL;
    while (*qp) {
        request *r = *qp;
        if (r->e == e) {
            *qp = r->next;
            if (r->kind == REQ_RESIGN)
                atomic_fetch_sub(&e->resign_pending, 1);
            if (r->kind == REQ_HOLD) { /* its asker waits: answered below */
                r->next = holds;
                holds = r;
            } else if (r != e->end_req)
                free(r);
        } else {
            last = r;
            qp = &r->next;
        }
    }
    c->req_tail = last;
    leasehold_election **rp = &c->registry;
    while (*rp && *rp != e)
        rp = &(*rp)->reg_next;
    if (*rp)
        *rp = e->reg_next;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    while (holds) {
        request *r = holds;
        holds = r->next;
        finish_query(c, r->q, LEASEHOLD_ENOTLEADER, "the campaign ended before the hold", NULL);
        free(r);
    }
    if (free_here)
        election_release(e);
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
        e->end_asked = true;
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
    bool shut_down = c->shut_down;
    pthread_mutex_unlock(&c->mu);
    if (shut_down)
        begin_shutdown(c, now_ms);
    while (r) {
        request *next = r->next;
        leasehold_election *e = r->e;
        if (r->kind == REQ_HOLD) {
            hold_term(c, e, r->q, now_ms);
            free(r);
            r = next;
            continue;
        }
        if (r->kind == REQ_QUERY) {
            if (conn_get_state(c->conn) == CONN_READY) {
                send_query(c, r->q, false, now_ms);
            } else {
                r->q->next = c->unsent;
                c->unsent = r->q;
            }
            free(r);
            r = next;
            continue;
        }
        switch (r->kind) {
        case REQ_CAMPAIGN:
            e->next = c->elections;
            c->elections = e;
            subscribe(c, e->channel, "SUBSCRIBE", now_ms);
            /* A new campaign on a connection already asked: its own
             * quarantine check now, so that it overlaps the restart guard's
             * hold instead of following it. */
            if (c->cfg.restart_guard && !c->need_info && conn_get_state(c->conn) == CONN_READY)
                arm_send(e, now_ms);
            if (may_evict(c))
                warn_eviction(e);
            lease_gate_claims(&e->lease, now_ms, claim_gate(e));
            if (e->observer)
                lease_observe(&e->lease, now_ms);
            else
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
            e->end_asked = true;
            if (!e->ending) {
                e->ending = true;
                lease_stop(&e->lease, now_ms);
            }
            break;
        case REQ_RESUME:
            if (!e->ending && lease_halted(&e->lease)) {
                client_log(c, LEASEHOLD_LOG_INFO, "%s: resumed", e->key);
                e->last_reported[0] = '\0';
                lease_resume(&e->lease, now_ms);
            }
            break;
        case REQ_QUERY:
        case REQ_HOLD:
            break;
        }
        drive(e, now_ms);
        if (r->kind == REQ_RESIGN)
            atomic_fetch_sub(&e->resign_pending, 1);
        if (r != e->end_req)
            free(r);
        r = next;
    }
}

/* Queues r for the I/O thread, with c->mu held; the caller wakes it. */
static void push_locked(leasehold_client *c, request *r)
{
    r->next = NULL;
    if (c->req_tail)
        c->req_tail->next = r;
    else
        c->req_head = r;
    c->req_tail = r;
}

/* Hands r to the I/O thread. */
static void push_request(leasehold_client *c, request *r)
{
    pthread_mutex_lock(&c->mu);
    push_locked(c, r);
    pthread_mutex_unlock(&c->mu);
    wake(c);
}

static int enqueue(leasehold_client *c, request_kind kind, leasehold_election *e, query *q)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return LEASEHOLD_ENOMEM;
    *r = (request){.kind = kind, .e = e, .q = q};
    push_request(c, r);
    return 0;
}

/* ------------------------------------------------------------- the loop */

/* The earliest instant anything needs the loop; UINT64_MAX for nothing. */
static uint64_t next_wake(leasehold_client *c)
{
    uint64_t at = conn_wake_at(c->conn);
    uint64_t sub_at = conn_wake_at(c->sub);
    if (sub_at < at)
        at = sub_at;
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
    conn_tick(c->sub, now_ms);
    leasehold_election *e = c->elections;
    while (e) {
        leasehold_election *next = e->next;
        if (lease_wake_at(&e->lease) <= now_ms) {
            lease_tick(&e->lease, now_ms);
            drive(e, now_ms);
        }
        check_service(e, now_ms);
        /* A campaign ended by a hold stays linked until its owner frees it
         * (or the client): only then may the loop let go of it. */
        if (e->stopped && !e->svc && e->pending_count == 0 && (!e->holding || e->end_asked))
            unlink_election(c, e);
        e = next;
    }
}

static void apply_reset(leasehold_client *c)
{
    if (c->reset_code) {
        int code = c->reset_code;
        c->reset_code = 0;
        conn_fail(c->conn, code, c->reset_why, clock_now_ms());
    }
}

static void *loop_main(void *arg)
{
    leasehold_client *c = arg;
    loop_thread_client = c;
    for (;;) {
        uint64_t now = clock_now_ms();
        guard_ask(c, now); /* the first connection was made before the loop ran */
        handle_requests(c, now);
        run_due(c, now);
        apply_reset(c);
        if (c->shutting_down && (!c->elections || now >= c->shutdown_deadline_ms))
            break;

        uint64_t at = next_wake(c);
        now = clock_now_ms();
        int timeout = at == UINT64_MAX   ? -1
                      : at <= now        ? 0
                      : at - now > 60000 ? 60000
                                         : (int)(at - now);
        struct pollfd pfd[3] = {{.fd = c->wake_fd, .events = POLLIN},
                                {.fd = conn_fd(c->conn), .events = conn_poll_events(c->conn)},
                                {.fd = conn_fd(c->sub), .events = conn_poll_events(c->sub)}};
        int n = poll(pfd, 3, timeout); /* a negative fd is skipped */
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
        if (n > 0 && pfd[2].fd >= 0 && pfd[2].revents && pfd[2].fd == conn_fd(c->sub))
            conn_on_io(c->sub, pfd[2].revents, now);
        apply_reset(c);
    }
    /* Anything still here is past every deadline. */
    while (c->elections) {
        leasehold_election *e = c->elections;
        if (e->svc) {
            atomic_fetch_add(&e->refs, 1); /* the service thread's, until fn returns */
            if (!service_abandon(e->svc, election_release, e)) {
                atomic_fetch_sub(&e->refs, 1);
                service_join(e->svc); /* it has just returned */
            }
            e->svc = NULL;
        }
        unlink_election(c, e);
    }
    return NULL;
}

/* --------------------------------------------------------------- public */

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
    cfg->clock_drift_ppm = 10000;
    cfg->log_level = LEASEHOLD_LOG_INFO;
    cfg->restart_guard = true;
}

/* The part of the configuration the state machine takes. */
static lease_config lease_config_of(const leasehold_config *cfg)
{
    return (lease_config){.lease_ms = cfg->lease_ms,
                          .renew_interval_ms = cfg->renew_interval_ms,
                          .retry_interval_ms = cfg->retry_interval_ms,
                          .renew_deadline_ms = cfg->renew_deadline_ms,
                          .stop_timeout_ms = cfg->stop_timeout_ms,
                          .drift_ppm = cfg->clock_drift_ppm,
                          .original_timing = cfg->original_timing};
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

/* Fails every leasehold_holder_get() the I/O thread has not answered: sent,
 * waiting for the connection, or still queued.  Called once the I/O thread
 * has ended (or never ran), so that the askers return at once with
 * LEASEHOLD_ECLOSED instead of waiting out their timeout. */
static void fail_queries(leasehold_client *c)
{
    static const char why[] = "the client is shutting down (leasehold_client_free)";
    drop_pending(c, LEASEHOLD_ECLOSED, why);
    while (c->unsent) {
        query *q = c->unsent;
        c->unsent = q->next;
        finish_query(c, q, LEASEHOLD_ECLOSED, why, NULL);
    }
    pthread_mutex_lock(&c->mu);
    request *queued = NULL, **rp = &c->req_head, *last = NULL;
    while (*rp) {
        request *r = *rp;
        if (r->kind == REQ_QUERY || r->kind == REQ_HOLD) {
            *rp = r->next;
            r->next = queued;
            queued = r;
        } else {
            last = r;
            rp = &r->next;
        }
    }
    c->req_tail = last;
    pthread_mutex_unlock(&c->mu);
    while (queued) {
        request *r = queued;
        queued = r->next;
        finish_query(c, r->q, LEASEHOLD_ECLOSED, why, NULL);
        free(r);
    }
}

static void client_destroy(leasehold_client *c)
{
    if (c->conn)
        conn_free(c->conn);
    if (c->sub)
        conn_free(c->sub);
    fail_queries(c);
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
    lease_config lc = lease_config_of(cfg);
    if (lease_config_check(&lc, command_timeout_ms, err) < 0)
        return NULL;

    leasehold_client *c = calloc(1, sizeof *c);
    if (!c) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    c->wake_fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->cfg = *cfg;
    c->cfg.command_timeout_ms = command_timeout_ms;
    c->cfg.connect_timeout_ms = connect_timeout_ms;
    c->u = u;
    c->url_copy = strdup(cfg->url);
    c->identity = cfg->identity ? strdup(cfg->identity) : default_identity();
    c->cfg.url = c->url_copy;
    c->cfg.identity = c->identity;
    c->rng = cfg->seed ? cfg->seed : random_u64();
    for (int k = 0; k < SCRIPT_KINDS; k++)
        sha1_hex(protocol_script(k), strlen(protocol_script(k)), c->sha[k]);
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
    conn_options sub_opt = opt;
    sub_opt.seed = next_seed(c);
    conn_handler sub_h = {
        .on_ready = sub_ready, .on_reply = sub_reply, .on_down = sub_down, .on_push = sub_push};
    c->sub = conn_new(&c->u, &sub_opt, &sub_h, c);
    if (!c->sub) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        client_destroy(c);
        return NULL;
    }
    if (conn_resolve(c->conn, err) < 0 || conn_resolve(c->sub, err) < 0) {
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
    if (cfg->original_timing)
        conn_close(c->sub); /* the original module had no events channel */
    else
        conn_connect(c->sub, clock_now_ms());

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
    c->shut_down = true;
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->thread_running)) {
        wake(c); /* the loop ends every election itself */
        pthread_join(c->thread, NULL);
    }
    fail_queries(c);
    /* A thread still inside leasehold_election_free() or
     * leasehold_holder_get() waits on the client's condition: let it leave
     * before the two are destroyed. */
    pthread_mutex_lock(&c->mu);
    while (c->waiters > 0)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    client_destroy(c);
}

static leasehold_election *campaign(leasehold_client *c, const char *key,
                                    const leasehold_callbacks *cb, void *arg, service_fn fn,
                                    void *service_arg, bool observer, leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0]) {
        error_set(err, LEASEHOLD_EINVAL, "%s", !c ? "no client given" : "the key is empty");
        return NULL;
    }
    if (protocol_check_key(key, err) < 0)
        return NULL;
    leasehold_election *e = calloc(1, sizeof *e);
    if (!e) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    e->client = c;
    atomic_init(&e->refs, 1);
    pthread_mutex_init(&e->mu, NULL);
    e->key = strdup(key);
    e->epoch_key = protocol_epoch_key(key);
    e->channel = protocol_channel(key);
    e->quarantine_key = protocol_quarantine_key(key);
    e->token = format_str("%s/%016" PRIx64, c->identity, random_u64());
    if (cb)
        e->cb = *cb;
    e->arg = arg;
    e->service = fn;
    e->service_arg = service_arg;
    e->observer = observer;
    e->end_req = calloc(1, sizeof *e->end_req);
    atomic_init(&e->valid_until_ms, 0);
    atomic_init(&e->term_deadline_ms, 0);
    atomic_init(&e->epoch, 0);
    atomic_init(&e->resign_pending, 0);
    if (!e->key || !e->epoch_key || !e->channel || !e->quarantine_key || !e->token || !e->end_req) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        goto fail;
    }
    lease_config lc = lease_config_of(&c->cfg);
    pthread_mutex_lock(&c->mu);
    uint64_t seed = next_seed(c);
    int code = 0;
    if (c->closing)
        code = error_set(err, LEASEHOLD_ECLOSED, "the client is shutting down");
    for (leasehold_election *o = c->registry; o && !code && !observer; o = o->reg_next)
        if (!o->observer && strcmp(o->key, key) == 0)
            code = error_set(err, LEASEHOLD_EEXIST,
                             "this client already campaigns for %s: end that campaign first", key);
    if (!code) {
        lease_init(&e->lease, &lc, e->token, seed);
        e->reg_next = c->registry;
        c->registry = e;
    }
    pthread_mutex_unlock(&c->mu);
    if (code)
        goto fail;
    if (enqueue(c, REQ_CAMPAIGN, e, NULL) < 0) {
        pthread_mutex_lock(&c->mu);
        c->registry = e->reg_next; /* e is still the head: nothing else links it */
        pthread_mutex_unlock(&c->mu);
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
    return campaign(c, key, cb, arg, NULL, NULL, false, err);
}

leasehold_election *leasehold_serve_cb(leasehold_client *c, const char *key, service_fn fn,
                                       void *arg, const leasehold_callbacks *cb,
                                       leasehold_error *err)
{
    if (!fn) {
        error_set(err, LEASEHOLD_EINVAL, "no service function given");
        return NULL;
    }
    return campaign(c, key, cb, arg, fn, arg, false, err);
}

leasehold_election *leasehold_serve(leasehold_client *c, const char *key, service_fn fn, void *arg,
                                    leasehold_error *err)
{
    return leasehold_serve_cb(c, key, fn, arg, NULL, err);
}

leasehold_election *leasehold_observe(leasehold_client *c, const char *key,
                                      const leasehold_callbacks *cb, void *arg,
                                      leasehold_error *err)
{
    return campaign(c, key, cb, arg, NULL, NULL, true, err);
}

uint64_t leasehold_term_deadline_ms(const leasehold_election *e)
{
    return e ? atomic_load(&((leasehold_election *)e)->term_deadline_ms) : 0;
}

/* Waits, on the thread that queued q (counted in c->waiters), for its answer:
 * at most command_timeout_ms, or connect_timeout_ms more when the connection
 * is being re-established.  0 with q to read and free; else the error in err
 * and q freed, or left to the I/O thread when it timed out. */
static int await_query(leasehold_client *c, query *q, leasehold_error *err)
{
    uint32_t wait_ms = c->cfg.command_timeout_ms + c->cfg.connect_timeout_ms;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!q->done)
        if (pthread_cond_timedwait(&c->cond, &c->mu, &until) == ETIMEDOUT)
            break;
    bool done = q->done;
    if (!done) {
        q->abandoned = true; /* the I/O thread frees it */
        error_set(err, LEASEHOLD_ETIMEDOUT, "%s: no answer about key %s within %" PRIu32 " ms",
                  conn_display(c->conn), q->key, wait_ms);
    }
    c->waiters--; /* from here on c may be freed */
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return LEASEHOLD_ETIMEDOUT;
    int code = q->code;
    if (code != 0) {
        error_set(err, code, "%s", q->msg);
        query_free(q);
    }
    return code;
}

int leasehold_holder_get(leasehold_client *c, const char *key, leasehold_holder *out,
                         leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0] || !out)
        return error_set(err, LEASEHOLD_EINVAL, "%s",
                         !c     ? "no client given"
                         : !out ? "no result given"
                                : "the key is empty");
    int bad_key = protocol_check_key(key, err);
    if (bad_key)
        return bad_key;
    if (loop_thread_client == c)
        return error_set(err, LEASEHOLD_EDEADLK,
                         "leasehold_holder_get() called from a callback would wait for itself");
    memset(out, 0, sizeof *out);
    query *q = calloc(1, sizeof *q);
    request *r = calloc(1, sizeof *r);
    if (q) {
        q->key = strdup(key);
        q->epoch_key = protocol_epoch_key(key);
    }
    int code = 0;
    if (!q || !r || !q->key || !q->epoch_key) {
        code = error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    } else {
        /* Counted as a waiter, and queued, in one step with the check: a
         * leasehold_client_free() either sees us (fails the query, waits
         * for us to leave) or we see it. */
        *r = (request){.kind = REQ_QUERY, .q = q};
        pthread_mutex_lock(&c->mu);
        if (c->closing) {
            code = error_set(err, LEASEHOLD_ECLOSED,
                             "key %s: the client is shutting down (leasehold_client_free)", key);
        } else {
            c->waiters++;
            push_locked(c, r);
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (code) {
        if (q)
            query_free(q);
        free(r);
        return code;
    }
    wake(c);
    code = await_query(c, q, err);
    if (code == 0) {
        *out = q->holder;
        query_free(q);
    }
    return code;
}

bool leasehold_is_leader(const leasehold_election *e)
{
    leasehold_election *m = (leasehold_election *)e;
    if (!e || atomic_load(&m->resign_pending) > 0)
        return false;
    return clock_now_ms() < atomic_load(&m->valid_until_ms);
}

/* Nonzero whenever the leader check it makes passes: see term.h. */
uint64_t leasehold_epoch(const leasehold_election *e)
{
    leasehold_election *m = (leasehold_election *)e;
    if (!e || atomic_load(&m->resign_pending) > 0)
        return 0;
    return term_epoch(&m->epoch, &m->valid_until_ms, clock_now_ms());
}

const char *leasehold_key(const leasehold_election *e)
{
    return e ? e->key : "";
}

const char *leasehold_election_token(const leasehold_election *e)
{
    return e ? e->token : "";
}

/* Queues a resign for the I/O thread, unless the election has already been
 * let go of (an abandoned service calling it late): e->mu keeps the client
 * from being freed between the check and the queueing. */
int leasehold_resign(leasehold_election *e)
{
    if (!e)
        return LEASEHOLD_EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = LEASEHOLD_ECLOSED;
    if (!e->gone) {
        atomic_fetch_add(&e->resign_pending, 1);
        rc = enqueue(e->client, REQ_RESIGN, e, NULL);
        if (rc < 0)
            atomic_fetch_sub(&e->resign_pending, 1);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Queues a resume for the I/O thread, as leasehold_resign() does. */
int leasehold_resume(leasehold_election *e)
{
    if (!e)
        return LEASEHOLD_EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = e->gone ? LEASEHOLD_ECLOSED : enqueue(e->client, REQ_RESUME, e, NULL);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Queues the hold for the I/O thread and waits for its answer.  The
 * process stops being leader here, before anything is sent, for good: the
 * caller's work has ended and a term that is being handed a hold must not
 * be acted on again, whatever the answer.  e->mu, then c->mu, as in
 * leasehold_resign(): a client being freed either fails the hold or waits
 * for it. */
int leasehold_resign_hold(leasehold_election *e, uint32_t hold_ms, leasehold_error *err)
{
    error_clear(err);
    if (!e || hold_ms == 0)
        return error_set(err, LEASEHOLD_EINVAL, "%s",
                         !e ? "no election given"
                            : "hold_ms is 0: a hold needs at least 1 ms (leasehold_resign() "
                              "releases the key at once)");
    if (e->service || e->observer)
        return error_set(err, LEASEHOLD_EINVAL,
                         "key %s: leasehold_resign_hold() is for campaigns without a service "
                         "(leasehold_campaign())",
                         e->key);
    leasehold_client *c = e->client;
    if (loop_thread_client == c)
        return error_set(err, LEASEHOLD_EDEADLK,
                         "leasehold_resign_hold() called from a callback would wait for itself");
    if (!leasehold_is_leader(e))
        return error_set(err, LEASEHOLD_ENOTLEADER, "key %s: not the leader: no term to hold",
                         e->key);
    query *q = calloc(1, sizeof *q);
    request *r = calloc(1, sizeof *r);
    if (q) {
        q->key = strdup(e->key);
        q->epoch_key = strdup(e->epoch_key); /* for the messages */
        q->token = strdup(e->token);
        q->hold_ms = hold_ms;
    }
    if (!q || !r || !q->key || !q->epoch_key || !q->token) {
        if (q)
            query_free(q);
        free(r);
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    }
    atomic_fetch_add(&e->resign_pending, 1); /* never decremented: not leader from now on */
    *r = (request){.kind = REQ_HOLD, .e = e, .q = q};
    int code = 0;
    pthread_mutex_lock(&e->mu);
    pthread_mutex_lock(&c->mu);
    if (e->gone || c->closing) {
        code = error_set(err, LEASEHOLD_ECLOSED,
                         "key %s: the election or its client is being freed: no hold", e->key);
    } else {
        c->waiters++;
        push_locked(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&e->mu);
    if (code) {
        query_free(q);
        free(r);
        return code;
    }
    wake(c);
    code = await_query(c, q, err);
    if (code == 0)
        query_free(q);
    return code;
}

void leasehold_election_free(leasehold_election *e)
{
    if (!e)
        return;
    leasehold_client *c = e->client;
    atomic_fetch_add(&e->resign_pending, 1); /* not leader from now on, for good */
    bool on_loop = loop_thread_client == c;
    pthread_mutex_lock(&c->mu);
    e->free_by_loop = on_loop;
    e->waited_for = !on_loop;
    c->waiters += !on_loop;
    pthread_mutex_unlock(&c->mu);
    request *r = e->end_req;
    *r = (request){.kind = REQ_END, .e = e};
    push_request(c, r);
    if (on_loop)
        return;
    pthread_mutex_lock(&c->mu);
    while (!e->unlinked)
        pthread_cond_wait(&c->cond, &c->mu);
    c->waiters--;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    election_release(e);
}
