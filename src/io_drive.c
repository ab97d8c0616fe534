/* io_drive.c — the I/O thread carries out the state machines' decisions.
 *
 * The state machine (lease.c) decides; this file only carries its decisions
 * out: it turns SEND actions into script calls on the node serving the key,
 * replies into lease_reply, and ELECTED / REVOKED into callbacks and service
 * starts and stops.  What a script's reply means is protocol.c's to say.
 * I/O thread only.
 */
#include "client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "redis_error.h"
#include "term.h"

static void start_service(leasehold_election *e, uint64_t epoch, uint64_t now_ms);
static void stop_service(leasehold_election *e, uint64_t now_ms);

/* The state machine's state as leasehold_state says it. */
static leasehold_state public_state(const lease *l)
{
    if (lease_halted(l))
        return LEASEHOLD_STATE_HALTED;
    switch (lease_get_state(l)) {
    case LEASE_IDLE:
        return LEASEHOLD_STATE_IDLE;
    case LEASE_FOLLOWER:
        return LEASEHOLD_STATE_FOLLOWER;
    case LEASE_CLAIMING:
        return LEASEHOLD_STATE_CLAIMING;
    case LEASE_LEADER:
        return LEASEHOLD_STATE_LEADER;
    case LEASE_DRAINING:
        return LEASEHOLD_STATE_STEPPING_DOWN;
    case LEASE_RELEASING:
        return LEASEHOLD_STATE_RELEASING;
    case LEASE_OBSERVING:
    case LEASE_READING:
        return LEASEHOLD_STATE_OBSERVING;
    }
    return LEASEHOLD_STATE_IDLE;
}

/* Makes what other threads read agree with the state machine.  The epoch
 * and valid_until go through term.h, which orders them so that a reader who
 * finds the term valid never reads epoch 0. */
static void publish(leasehold_election *e, uint64_t now_ms)
{
    uint64_t valid_until = lease_valid_until(&e->lease);
    term_publish(&e->epoch, &e->valid_until_ms, lease_epoch(&e->lease), valid_until);
    atomic_store(&e->term_deadline_ms, lease_hold_until(&e->lease));
    /* After the deadline: a reader that sees a new term's state sees its deadline. */
    stats_set_state(&e->stats, public_state(&e->lease), now_ms);
    atomic_store_explicit(&e->stats.epoch_seen, lease_max_epoch_seen(&e->lease),
                          memory_order_relaxed);
    if (e->svc && valid_until)
        service_extend(e->svc, valid_until);
}

/* Reports an error through the log and the error callback, once per
 * change: the same text again (a transient failure repeating on every
 * claim) is logged at DEBUG only and not handed to the callback.  A
 * permanent error (the election has halted) is logged at ERROR, a foreign
 * holder, an eviction policy or missing replica acknowledgements at WARN. */
void report_error(leasehold_election *e, int code)
{
    leasehold_client *c = e->client;
    leasehold_error err;
    const char *text = e->why[0] ? e->why : leasehold_strerror(code);
    error_set(&err, code, "key %s: %s", e->key, text);
    e->why[0] = '\0';
    stats_error(&c->stats, code);
    bool repeat = strcmp(e->last_reported, err.msg) == 0;
    leasehold_log_level level =
        code == LEASEHOLD_EFOREIGN || code == LEASEHOLD_EEVICTION || code == LEASEHOLD_ENOREPLICAS
            ? LEASEHOLD_LOG_WARN
            : LEASEHOLD_LOG_ERROR;
    client_log(c, repeat ? LEASEHOLD_LOG_DEBUG : level, "%s", err.msg);
    if (repeat)
        return;
    snprintf(e->last_reported, sizeof e->last_reported, "%s", err.msg);
    if (e->cb.error)
        e->cb.error(e, &err, e->arg);
}

protocol_key election_names(const leasehold_election *e, const node *n)
{
    const leasehold_client *c = e->client;
    return (protocol_key){.key = e->key,
                          .epoch_key = e->epoch_key,
                          .quarantine_key = e->quarantine_key,
                          .channel = e->channel,
                          .token = e->token,
                          .user = c->u.user,
                          .address = conn_display(n->cmd),
                          .sharded = c->sharded};
}

/* Sends WAIT on n after the claim or renewal p, on the same connection:
 * its success counts only once enough replicas have it
 * (election_wait_answer).  A renewal's WAIT goes right after it (p->wait_for
 * then holds it); a claim's only once the claim has won (held: its reply),
 * so that the claims that find the key held, a follower's every retry,
 * cost one request and not two.  A WAIT that cannot be sent resets the
 * connection, which the state machine learns of as the node going down. */
static void send_wait(leasehold_election *e, node *n, pending *p, const lease_reply *held,
                      uint64_t now_ms)
{
    leasehold_client *c = e->client;
    pending *w = calloc(1, sizeof *w);
    if (!w) {
        node_reset_later(n, LEASEHOLD_ENOMEM, "out of memory sending WAIT");
        return;
    }
    *w = (pending){.e = e, .wait = true, .kind = p->kind, .seq = p->seq};
    if (held) {
        w->held = *held;
        w->held.holder = NULL; /* a success names no holder */
        w->held.holder_len = 0;
        w->held_set = true;
    }
    char replicas[16], timeout[16];
    snprintf(replicas, sizeof replicas, "%d", c->cfg.min_replicas);
    snprintf(timeout, sizeof timeout, "%" PRIu32, c->cfg.replica_timeout_ms);
    const char *argv[3] = {"WAIT", replicas, timeout};
    if (!node_send(n, w, 3, argv, e->key, "WAIT", now_ms))
        return;
    e->pending_count++;
    if (!held)
        p->wait_for = w;
}

/* A token's hash (FNV-1a), to tell whether a claim's answer names the
 * holder the claim named. */
static uint64_t holder_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* Sends ASKING on n, the command after it being redirected there by ASK;
 * false when it could not (the connection is then reset). */
static bool send_asking(node *n, const char *key, uint64_t now_ms)
{
    pending *a = calloc(1, sizeof *a);
    if (!a) {
        node_reset_later(n, LEASEHOLD_ENOMEM, "out of memory sending ASKING");
        return false;
    }
    a->asking = true;
    const char *argv[1] = {"ASKING"};
    return node_send(n, a, 1, argv, key, "ASKING", now_ms);
}

/* Sends script `kind` for election e on the node serving its key, as
 * EVALSHA (EVAL after a NOSCRIPT); the reply comes back to
 * election_answer() with seq.  A send that fails resets the connection,
 * which the state machine learns of through the node going down. */
void send_for_election(leasehold_election *e, enum script_kind kind, uint32_t seq, uint64_t epoch,
                       bool eval, uint64_t now_ms)
{
    send_script(e, route_node(e->client, e->key), false, kind, seq, epoch, eval, 0, now_ms);
}

void send_script(leasehold_election *e, node *n, bool asking, enum script_kind kind, uint32_t seq,
                 uint64_t epoch, bool eval, uint8_t redirects, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    if (asking && !send_asking(n, e->key, now_ms))
        return;
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        client_log(c, LEASEHOLD_LOG_ERROR, "%s: out of memory sending %s", e->key,
                   protocol_script_name(kind));
        node_reset_later(n, LEASEHOLD_ENOMEM, "out of memory sending a command");
        return;
    }
    *p = (pending){
        .e = e, .kind = kind, .seq = seq, .epoch = epoch, .eval = eval, .redirects = redirects};
    protocol_key k = election_names(e, n);
    if (kind == SCRIPT_ACQUIRE && n->events_live) {
        k.known_holder = lease_known_holder(&e->lease, &p->named_epoch);
        if (k.known_holder)
            p->named_hash = holder_hash(k.known_holder, strlen(k.known_holder));
    }
    protocol_call call;
    protocol_call_init(&call, kind, eval ? NULL : c->sha[c->sharded][kind], &k, c->cfg.lease_ms,
                       epoch);
    if (!node_send(n, p, call.argc, call.argv, e->key, protocol_script_name(kind), now_ms)) {
        if (kind == SCRIPT_RENEW)
            stats_add(&e->stats.renewals_failed);
        return;
    }
    e->pending_count++;
    if (c->cfg.min_replicas > 0 && kind == SCRIPT_RENEW)
        send_wait(e, n, p, NULL, now_ms);
}

/* Publishes msg (malloc'd; freed here) on e's events channel, on the node
 * serving its key, and forgets it: nothing waits for the answer.  Not sent
 * while that node's command connection is not ready. */
static void publish_for_election(leasehold_election *e, char *msg, const char *what,
                                 uint64_t now_ms)
{
    leasehold_client *c = e->client;
    node *n = route_node(c, e->key);
    pending *p = msg && conn_get_state(n->cmd) == CONN_READY ? calloc(1, sizeof *p) : NULL;
    if (p) {
        const char *argv[3] = {c->sharded ? "SPUBLISH" : "PUBLISH", e->channel, msg};
        node_send(n, p, 3, argv, e->key, what, now_ms); /* p: freed on its answer */
    } else {
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s not sent (%s)", e->key, what,
                   msg ? "not connected" : "out of memory");
    }
    free(msg);
}

/* A resign request named e's current term (epoch): a service is stopped
 * and the key released (lease_resign); without one, the user's callback
 * decides when, and without that the term ends with its key left to lapse,
 * since code acting on it may still run. */
static void resign_asked(leasehold_election *e, uint64_t epoch, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    const char *how = e->service               ? "stopping the service, then releasing"
                      : e->cb.resign_requested ? "told the program (resign_requested)"
                                               : "the key is left to lapse (no service, no "
                                                 "resign_requested callback)";
    client_log(c, LEASEHOLD_LOG_INFO,
               "%s: asked to step down by a request naming this term (epoch %" PRIu64 "): %s",
               e->key, epoch, how);
    if (e->cb.resign_requested)
        e->cb.resign_requested(e, epoch, e->arg);
    if (e->service) {
        lease_resign(&e->lease, now_ms);
    } else if (!e->cb.resign_requested) {
        /* Not claimed back before the key has lapsed and others had their turn. */
        e->lapse_on_resign = true;
        lease_resign(&e->lease, now_ms);
        lease_hold_claims(&e->lease, now_ms, now_ms + c->cfg.lease_ms + c->cfg.retry_interval_ms);
    }
}

/* Carries out every action the state machine has queued, in order: sends,
 * callbacks, service starts and stops.  Runs until the queue is empty,
 * including actions that carrying out earlier ones produced. */
void drive(leasehold_election *e, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    lease_action a;
    election_touch(e);
    for (;;) {
        publish(e, now_ms);
        if (!lease_next_action(&e->lease, &a))
            break;
        switch (a.kind) {
        case LEASE_SEND_ACQUIRE:
            stats_add(&e->stats.claims);
            send_for_election(e, SCRIPT_ACQUIRE, a.seq, a.epoch, false, now_ms);
            break;
        case LEASE_SEND_RENEW:
            stats_add(&e->stats.renewals);
            send_for_election(e, SCRIPT_RENEW, a.seq, 0, false, now_ms);
            break;
        case LEASE_SEND_RELEASE:
            send_for_election(e, SCRIPT_RELEASE, a.seq, a.epoch, false, now_ms);
            break;
        case LEASE_SEND_QUERY:
            send_for_election(e, SCRIPT_QUERY, a.seq, 0, false, now_ms);
            break;
        case LEASE_ELECTED:
            stats_add(&e->stats.terms_won);
            e->last_reported[0] = '\0';
            client_log(c, LEASEHOLD_LOG_INFO, "%s: elected, epoch %" PRIu64 ", token %s", e->key,
                       a.epoch, e->token);
            if (e->cb.elected)
                e->cb.elected(e, a.epoch, e->arg);
            if (e->service)
                start_service(e, a.epoch, now_ms);
            break;
        case LEASE_REVOKED:
            if (a.reason >= 1 && a.reason < 8)
                stats_add(&e->stats.terms_lost[a.reason]);
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
            if (!e->svc && a.reason == LEASEHOLD_RESIGNED && !e->holding && !e->lapse_on_resign)
                lease_service_stopped(&e->lease, now_ms);
            else if (!e->svc)
                lease_service_abandoned(&e->lease, now_ms);
            e->lapse_on_resign = false;
            break;
        case LEASE_LEADER_CHANGED:
            if (a.change == LEASEHOLD_CHANGE_ELECTED && a.holder)
                stats_add(&e->stats.leader_changes);
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
                protocol_explain_holder(a.error, a.holder, a.pttl_ms, e->why, sizeof e->why);
            if (a.error == LEASEHOLD_ECLOCKJUMP)
                snprintf(e->why, sizeof e->why,
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
        case LEASE_RESIGN_ASKED:
            if (a.holder) { /* a preferred candidate asked: the others are to hold back */
                client_log(c, LEASEHOLD_LOG_INFO,
                           "%s: %s, of a higher priority than ours (%" PRIu32
                           "), asked for this term: handing over",
                           e->key, a.holder, c->cfg.priority);
                publish_for_election(e, protocol_handover_message(a.epoch, e->token, a.holder),
                                     "handover", now_ms);
            }
            resign_asked(e, a.epoch, now_ms);
            break;
        case LEASE_SEND_PREFER:
            if (route_node(c, e->key)->events_live) { /* connected, and hearing the answer */
                client_log(c, LEASEHOLD_LOG_DEBUG,
                           "%s: asking %s (epoch %" PRIu64 ") to hand over (priority %" PRIu32 ")",
                           e->key, a.holder, a.epoch, c->cfg.priority);
                publish_for_election(
                    e, protocol_prefer_message(a.epoch, a.holder, c->cfg.priority, e->token),
                    "prefer", now_ms);
            }
            break;
        }
    }
}

/* A claim or renewal succeeded in Redis: its reply waits, in the WAIT
 * entry that follows it, for the replicas' acknowledgement.  Frees p. */
static void hold_for_wait(pending *p, const lease_reply *lr)
{
    pending *w = p->wait_for;
    w->held = *lr;
    w->held.holder = NULL; /* a success names no holder */
    w->held.holder_len = 0;
    w->held_set = true;
    free(p);
}

void election_wait_answer(leasehold_election *e, pending *w, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    e->pending_count--;
    election_touch(e);
    if (!w->held_set) { /* the claim or renewal failed and was answered already */
        free(w);
        return;
    }
    lease_reply lr = w->held;
    const char *what = w->kind == SCRIPT_ACQUIRE ? "claim" : "renewal";
    if (r->type == CONN_REPLY_INTEGER && r->integer >= c->cfg.min_replicas) {
        e->why[0] = '\0';
        if (w->kind == SCRIPT_RENEW && lr.result == LEASE_RENEWED)
            stats_renewal_counted(&e->stats, w->sent_ns, clock_now_ns());
    } else {
        if (w->kind == SCRIPT_RENEW)
            stats_add(&e->stats.renewals_failed);
        lr = (lease_reply){.result = w->kind == SCRIPT_ACQUIRE ? (int)LEASE_ACQUIRE_FAILED
                                                               : (int)LEASE_RENEW_FAILED};
        if (r->type == CONN_REPLY_INTEGER) {
            lr.error = LEASEHOLD_ENOREPLICAS;
            snprintf(e->why, sizeof e->why,
                     "the %s succeeded on the master %s but only %lld of the %d replicas asked "
                     "for acknowledged it within %" PRIu32
                     " ms (WAIT): it does not count (is the master cut off from its replicas?)",
                     what, conn_display(route_node(c, e->key)->cmd), r->integer,
                     c->cfg.min_replicas, c->cfg.replica_timeout_ms);
        } else if (r->type == CONN_REPLY_ERROR) {
            lr.error = conn_error_code(r);
            redis_error_ctx ctx = {.user = c->u.user};
            char why[300];
            redis_error_explain(r->str, &ctx, why, sizeof why);
            snprintf(e->why, sizeof e->why, "WAIT after the %s was refused: %.200s", what, why);
        } else {
            lr.error = LEASEHOLD_EPROTO;
            snprintf(e->why, sizeof e->why, "unexpected reply to WAIT after the %s", what);
        }
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s", e->key, e->why);
    }
    if (w->kind == SCRIPT_ACQUIRE)
        lease_on_acquire(&e->lease, now_ms, w->seq, &lr);
    else
        lease_on_renew(&e->lease, now_ms, w->seq, &lr);
    free(w);
    drive(e, now_ms);
}

/* The reply to one of e's scripts, fed to its state machine (or, NOSCRIPT,
 * the script sent again as EVAL).  e->why takes the reply's explanation,
 * for the LEASE_ERROR it may lead to. */
void election_answer(leasehold_election *e, pending *p, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    e->pending_count--;
    election_touch(e);
    if (!p->eval && conn_reply_is_error(r, "NOSCRIPT")) {
        /* SCRIPT FLUSH or a restarted Redis: send the script itself. */
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s script not cached, sending it", e->key,
                   protocol_script_name(p->kind));
        send_for_election(e, p->kind, p->seq, p->epoch, true, now_ms);
        free(p);
        return;
    }
    protocol_key k = election_names(e, route_node(c, e->key));
    /* A reply that is not an error is a success of sorts: the next failure
     * is news again. */
    e->why[0] = '\0';
    if (r->type != CONN_REPLY_ERROR)
        e->last_reported[0] = '\0';
    lease_reply lr;
    char refusal[200];
    switch (p->kind) {
    case SCRIPT_ACQUIRE:
        protocol_acquire_reply(r, &k, &lr, e->why, sizeof e->why);
        /* The holder the claim named: the script left out the epoch we knew
         * when sending, which keeps a late answer in its place among the
         * events (lease_note_holder drops news older than it knows). */
        if (lr.result == LEASE_ACQUIRE_HELD && lr.epoch == 0 && p->named_epoch &&
            holder_hash(lr.holder, lr.holder_len) == p->named_hash)
            lr.epoch = p->named_epoch;
        if (lr.result == LEASE_ACQUIRED && c->cfg.min_replicas > 0) {
            /* Won in Redis: it counts once the replicas have it. */
            if (conn_get_state(p->sent_on->cmd) == CONN_READY)
                send_wait(e, p->sent_on, p, &lr, now_ms);
            free(p);
            return;
        }
        if (lr.result == LEASE_ACQUIRE_QUARANTINED)
            guard_log_quarantine(e, lr.pttl_ms, lr.fresh);
        lease_on_acquire(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_ARM:
        guard_arm_answer(e, r, now_ms);
        break;
    case SCRIPT_RENEW:
        protocol_renew_reply(r, &k, &lr, e->why, sizeof e->why);
        if (lr.result == LEASE_RENEWED && p->wait_for) {
            hold_for_wait(p, &lr);
            return;
        }
        if (lr.result == LEASE_RENEWED && !p->hold_ms)
            stats_renewal_counted(&e->stats, p->sent_ns, clock_now_ns());
        else if (lr.result != LEASE_RENEWED)
            stats_add(&e->stats.renewals_failed);
        if (lr.result == LEASE_RENEW_MISSING || lr.result == LEASE_RENEW_HELD) {
            protocol_renew_refusal(&lr, refusal, sizeof refusal);
            client_log(c, LEASEHOLD_LOG_WARN, "%s: renewal refused: the key is %s", e->key,
                       refusal);
        } else if (lr.result == LEASE_RENEW_FAILED) { /* reported once per change as an error */
            client_log(c, LEASEHOLD_LOG_DEBUG, "%s: renewal failed: %s", e->key, e->why);
        }
        lease_on_renew(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_RELEASE:
        protocol_release_reply(r, &k, &lr, e->why, sizeof e->why);
        client_log(c, lr.result == 1 ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG, "%s: %s", e->key,
                   lr.result == 1   ? "lease released"
                   : lr.result == 0 ? "release found the key not ours"
                                    : "release failed");
        lease_on_release(&e->lease, now_ms, p->seq, &lr);
        break;
    case SCRIPT_QUERY:
        protocol_query_reply(r, &k, &lr, e->why, sizeof e->why);
        lease_on_query(&e->lease, now_ms, p->seq, &lr);
        break;
    default:
        break;
    }
    free(p);
    drive(e, now_ms);
}

/* ------------------------------------------------------------- services */

static void start_service(leasehold_election *e, uint64_t epoch, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    int code = 0;
    e->svc = service_start(e, e->service, e->service_arg, epoch, lease_valid_until(&e->lease),
                           c->wake_fd, &code);
    if (!e->svc) {
        snprintf(e->why, sizeof e->why, "cannot start the service thread: %s", strerror(-code));
        report_error(e, code);
        lease_resign(&e->lease, now_ms);
        return;
    }
    e->svc_overran = false;
    if (!e->in_services) {
        e->svc_next = c->services;
        c->services = e;
        e->in_services = true;
    }
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
void check_service(leasehold_election *e, uint64_t now_ms)
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
        snprintf(e->why, sizeof e->why,
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
