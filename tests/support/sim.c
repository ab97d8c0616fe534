/* sim.c — lease machines around one simulated Redis, in simulated time (sim.h).
 *
 * Everything happens in whole milliseconds of sim time.  Messages (connects,
 * commands, replies, closes, events) travel with a random latency and keep
 * their order within one connection; a message is delivered at the first step
 * at or after its time.  A frozen machine processes nothing, so messages wait
 * for it; a paused Redis holds what reaches it; a partition drops what would
 * cross it, except the stale commands of a connection already given up (they
 * were sent; whether they arrive was decided when it was given up).  Each
 * machine reads its own clock (offset, rate within +-0.5%), and the lease
 * machine sees only that clock.
 */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX          32
#define PENDING_MAX        4
#define SERVICES_MAX       8   /* per machine: the term's, and abandoned ones still running */
#define LATENCY_MAX_MS     30  /* usual one-way latency: 1..30 ms */
#define LATENCY_LARGE_MS   400 /* now and then: 50..400 ms, past the command timeout */
#define STALE_DELAY_MAX_MS 400 /* a stale command runs up to this much later */
#define CONNECT_TIMEOUT_MS 1000
#define EPOCH_TIME_BASE_US 1700000000000000ULL /* Redis TIME at sim time 0 */

typedef enum msg_kind {
    MSG_CONNECT,   /* machine -> Redis */
    MSG_COMMAND,   /* machine -> Redis */
    MSG_CONNECTED, /* Redis -> machine */
    MSG_REFUSED,   /* Redis -> machine: Redis is down */
    MSG_REPLY,     /* Redis -> machine */
    MSG_CLOSED,    /* Redis -> machine: Redis closed the connection */
    MSG_EVENT,     /* Redis -> machine, on its subscription */
} msg_kind;

typedef struct msg {
    uint64_t at; /* sim time of delivery */
    unsigned machine;
    bool to_redis;
    msg_kind kind;
    uint32_t conn_id;
    uint32_t redis_gen;        /* CONNECTED, COMMAND: the Redis run the connection is on */
    bool stale;                /* COMMAND: its connection was given up */
    uint32_t stale_delay_ms;   /* COMMAND, stale: still to wait once it reaches Redis */
    lease_action_kind command; /* COMMAND, REPLY */
    uint32_t seq;              /* COMMAND, REPLY */
    char token[TOKEN_MAX];     /* COMMAND: the sender's; REPLY: the holder, or ""; EVENT */
    int result;                /* REPLY: as lease_reply.result; EVENT: lease_event_kind */
    uint64_t epoch;            /* COMMAND (release), REPLY, EVENT */
    int64_t pttl_ms;
    int error;
} msg;

typedef enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state;

typedef struct pending {
    uint32_t seq;
    lease_action_kind kind;
    uint64_t sent_local_ms;
} pending;

/* A term's service, from ELECTED until it returns. */
typedef struct service {
    bool running;
    uint64_t epoch;
    bool revoked;        /* REVOKED was emitted for its term */
    bool resigned;       /* ... with LEASEHOLD_RESIGNED */
    bool abandoned;      /* lease_service_abandoned() was called for it */
    uint64_t stop_at;    /* sim time it returns; UINT64_MAX: not asked yet */
    uint64_t abandon_at; /* sim time the client gives up on it; UINT64_MAX: never */
} service;

typedef struct machine {
    lease l;
    char token[TOKEN_MAX];
    int64_t clock_ppm;
    uint64_t clock_offset_ms;
    uint64_t frozen_until, partitioned_until, sub_down_until; /* sim time */
    link_state link;
    uint32_t conn_id;
    uint32_t conn_gen;     /* the Redis run that accepted the connection */
    uint64_t reconnect_at; /* LINK_DOWN: sim time of the next attempt */
    uint64_t connect_started_local;
    pending pending[PENDING_MAX]; /* commands sent on this connection, oldest first */
    unsigned npending;
    uint64_t fifo_to_machine, fifo_to_redis, fifo_events; /* last delivery time */
    service svc[SERVICES_MAX];
    uint64_t campaign_at;       /* UINT64_MAX: none planned */
    uint64_t resign_service_ms; /* UINT64_MAX: none; the next REVOKED's service time */
    bool ever_elected;
    uint64_t bound_local;     /* the checker's valid_until, on this machine's clock */
    uint64_t bug_valid_until; /* SIM_BUG_VALID_FROM_ARRIVAL: the buggy valid_until */
} machine;

typedef struct redis {
    bool up;
    uint32_t gen;          /* its run: a restart starts a new one */
    uint64_t up_at;        /* down: when it accepts connections again */
    uint64_t paused_until; /* holds every message until then */
    uint64_t quiet_until;  /* after a restart: no new freeze, partition or resign before */
    bool has_key;
    char value[TOKEN_MAX];
    uint64_t expire_at;
    uint64_t epoch_key;                  /* {K}:epoch, 0: missing */
    uint32_t accepted[SIM_MAX_MACHINES]; /* each machine's connection Redis knows, 0: none */
} redis;

struct sim {
    sim_options o;
    uint64_t now;
    uint64_t rng;
    uint32_t next_conn_id;
    machine m[SIM_MAX_MACHINES];
    redis r;
    msg *q; /* in flight, by delivery time, then by sending order */
    size_t nq, capq;
    uint64_t last_elected_epoch; /* checker: the last epoch ELECTED reported */
    uint64_t last_redis_epoch;   /* checker: the last epoch Redis handed out */
    sim_stats stats;
    bool violated;
    char violation[640];
};

/* ------------------------------------------------------------ randomness */

static uint64_t rnd64(sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint64_t rnd(sim *s, uint64_t n)
{
    return rnd64(s) % n;
}

static bool one_in(sim *s, uint64_t n)
{
    return rnd(s, n) == 0;
}

static uint64_t latency(sim *s)
{
    if (one_in(s, 100))
        return 50 + rnd(s, LATENCY_LARGE_MS - 50 + 1);
    return 1 + rnd(s, LATENCY_MAX_MS);
}

/* ---------------------------------------------------------------- basics */

static void violate(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violate(sim *s, const char *fmt, ...)
{
    if (s->violated)
        return;
    s->violated = true;
    int len = snprintf(s->violation, sizeof s->violation,
                       "seed %llu, t=%llu ms: ", (unsigned long long)s->o.seed,
                       (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation + len, sizeof s->violation - (size_t)len, fmt, ap);
    va_end(ap);
}

/* The machine's clock: an offset and a rate within +-0.5% of sim time. */
static uint64_t local_now(const machine *m, uint64_t t)
{
    int64_t skew = (int64_t)t * m->clock_ppm / 1000000;
    return m->clock_offset_ms + (uint64_t)((int64_t)t + skew);
}

static uint64_t drift_ms(const sim *s)
{
    return (uint64_t)s->o.lease.lease_ms * s->o.lease.drift_ppm / 1000000 + 2;
}

static bool frozen(const sim *s, const machine *m)
{
    return m->frozen_until > s->now;
}

static bool cut_off(const sim *s, const machine *m)
{
    return m->partitioned_until > s->now;
}

static bool sub_down(const sim *s, const machine *m)
{
    return m->sub_down_until > s->now;
}

/* Inserts mg in the queue at mg->at, after everything due at the same time. */
static void enqueue(sim *s, const msg *mg)
{
    if (s->nq == s->capq) {
        s->capq = s->capq ? s->capq * 2 : 64;
        s->q = realloc(s->q, s->capq * sizeof *s->q);
        if (!s->q)
            abort();
    }
    size_t i = s->nq;
    while (i > 0 && s->q[i - 1].at > mg->at)
        i--;
    memmove(&s->q[i + 1], &s->q[i], (s->nq - i) * sizeof *s->q);
    s->q[i] = *mg;
    s->nq++;
}

/* Queues mg for delivery `delay` ms from now, after everything sent earlier
 * on the same connection (or subscription) in the same direction. */
static void post(sim *s, msg *mg, uint64_t delay)
{
    machine *m = &s->m[mg->machine];
    uint64_t *fifo = mg->kind == MSG_EVENT ? &m->fifo_events
                     : mg->to_redis        ? &m->fifo_to_redis
                                           : &m->fifo_to_machine;
    mg->at = s->now + delay;
    if (mg->at < *fifo)
        mg->at = *fifo;
    *fifo = mg->at;
    enqueue(s, mg);
}

/* ----------------------------------------------------------------- Redis */

static void redis_expire(sim *s)
{
    if (s->r.has_key && s->now >= s->r.expire_at)
        s->r.has_key = false;
}

/* PUBLISH on the events channel: each subscription that is up gets it with
 * its own latency; one that is down (or cut off) misses it. */
static void publish(sim *s, lease_event_kind kind, uint64_t epoch, const char *token)
{
    for (unsigned i = 0; i < s->o.machines; i++) {
        machine *m = &s->m[i];
        if (sub_down(s, m) || cut_off(s, m)) {
            s->stats.events_lost++;
            continue;
        }
        msg ev = {.machine = i, .kind = MSG_EVENT, .result = (int)kind, .epoch = epoch};
        snprintf(ev.token, sizeof ev.token, "%s", token);
        post(s, &ev, latency(s));
    }
}

/* The acquire script: the epoch is read first, then SET NX PX; on success
 * epoch = max(last + 1, TIME in us), stored and published; on failure
 * {GET K, PTTL K, GET K:epoch}. */
static void redis_acquire(sim *s, const msg *cmd, msg *reply)
{
    redis *r = &s->r;
    uint64_t last = r->epoch_key;
    if (r->has_key) {
        reply->result = LEASE_ACQUIRE_HELD;
        snprintf(reply->token, sizeof reply->token, "%s", r->value);
        reply->pttl_ms = (int64_t)(r->expire_at - s->now);
        reply->epoch = last;
        return;
    }
    uint64_t time_us = EPOCH_TIME_BASE_US + s->now * 1000;
    uint64_t epoch = last + 1 > time_us ? last + 1 : time_us;
    if ((s->o.checks & SIM_CHECK_EPOCHS) && epoch <= s->last_redis_epoch)
        violate(s, "Redis handed out epoch %llu, not above the last one %llu",
                (unsigned long long)epoch, (unsigned long long)s->last_redis_epoch);
    s->last_redis_epoch = epoch;
    r->has_key = true;
    snprintf(r->value, sizeof r->value, "%s", cmd->token);
    r->expire_at = s->now + s->o.lease.lease_ms;
    r->epoch_key = epoch;
    reply->result = LEASE_ACQUIRED;
    reply->epoch = epoch;
    if (cmd->stale)
        s->stats.ghost_claims++;
    publish(s, LEASE_EVENT_ELECTED, epoch, cmd->token);
}

/* The release script: DEL only when the key holds the token and the epoch
 * key the term's epoch (the token alone with SIM_BUG_RELEASE_TOKEN_ONLY). */
static void redis_release(sim *s, const msg *cmd, msg *reply)
{
    redis *r = &s->r;
    bool token = r->has_key && strcmp(r->value, cmd->token) == 0;
    bool epoch = r->epoch_key == cmd->epoch;
    if (token && !epoch)
        s->stats.stale_releases++;
    if (!token || !(epoch || s->o.bug == SIM_BUG_RELEASE_TOKEN_ONLY)) {
        reply->result = 0;
        return;
    }
    /* The key's epoch is the epoch key's: only the acquire sets either. */
    if ((s->o.checks & SIM_CHECK_RELEASE) && r->epoch_key != cmd->epoch)
        violate(s,
                "a%s release for epoch %llu deleted the key holding %s with epoch %llu (sent "
                "by machine %u)",
                cmd->stale ? " stale" : "", (unsigned long long)cmd->epoch, r->value,
                (unsigned long long)r->epoch_key, cmd->machine);
    r->has_key = false;
    reply->result = 1;
    publish(s, LEASE_EVENT_RELEASED, cmd->epoch, cmd->token);
}

/* Runs one command as the Lua scripts do, atomically, and fills the reply. */
static void redis_execute(sim *s, const msg *cmd, msg *reply)
{
    redis *r = &s->r;
    redis_expire(s);
    if (one_in(s, 500)) { /* an error reply, the script not run */
        reply->error = LEASEHOLD_EREDIS;
        reply->result = cmd->command == LEASE_SEND_ACQUIRE ? LEASE_ACQUIRE_FAILED
                        : cmd->command == LEASE_SEND_RENEW ? LEASE_RENEW_FAILED
                                                           : LEASEHOLD_EREDIS;
        return;
    }
    switch (cmd->command) {
    case LEASE_SEND_ACQUIRE:
        redis_acquire(s, cmd, reply);
        break;
    case LEASE_SEND_RENEW:
        if (r->has_key && strcmp(r->value, cmd->token) == 0) {
            r->expire_at = s->now + s->o.lease.lease_ms;
            reply->result = LEASE_RENEWED;
        } else if (r->has_key) {
            reply->result = LEASE_RENEW_HELD;
            snprintf(reply->token, sizeof reply->token, "%s", r->value);
        } else {
            reply->result = LEASE_RENEW_MISSING;
        }
        break;
    default:
        redis_release(s, cmd, reply);
        break;
    }
}

static void redis_receive(sim *s, const msg *in)
{
    msg out = {.machine = in->machine, .conn_id = in->conn_id};
    if (!s->r.up) {
        if (in->kind == MSG_CONNECT) {
            out.kind = MSG_REFUSED;
            post(s, &out, latency(s));
        }
        return; /* commands of connections that died with Redis vanish */
    }
    if (in->kind == MSG_CONNECT) {
        s->r.accepted[in->machine] = in->conn_id;
        out.kind = MSG_CONNECTED;
        out.redis_gen = s->r.gen;
        post(s, &out, latency(s));
        return;
    }
    if (in->stale) {
        /* A connection its client gave up: what it sent still runs, unless
         * Redis restarted since, and nobody reads the reply. */
        if (in->stale_delay_ms) {
            msg later = *in;
            later.at = s->now + in->stale_delay_ms;
            later.stale_delay_ms = 0;
            enqueue(s, &later);
            return;
        }
        if (in->redis_gen != s->r.gen)
            return;
        s->stats.stale_run++;
        redis_execute(s, in, &out);
        return;
    }
    if (s->r.accepted[in->machine] != in->conn_id)
        return; /* a connection Redis no longer has */
    out.kind = MSG_REPLY;
    out.command = in->command;
    out.seq = in->seq;
    redis_execute(s, in, &out);
    post(s, &out, latency(s));
}

/* -------------------------------------------------------------- machines */

/* How long a service takes to return once told to stop.  Some never do in
 * time: past stop_timeout_ms the client abandons them. */
static uint64_t service_stop_delay(sim *s)
{
    uint64_t dice = rnd(s, 100);
    uint64_t timeout = s->o.lease.stop_timeout_ms;
    if (dice < 70)
        return rnd(s, 20);
    if (dice < 90)
        return rnd(s, 300);
    if (dice < 96)
        return rnd(s, timeout + 1);
    return timeout + 1 + rnd(s, 2 * (uint64_t)s->o.lease.lease_ms);
}

static service *running_service(machine *m, uint64_t epoch)
{
    for (unsigned k = 0; k < SERVICES_MAX; k++)
        if (m->svc[k].running && m->svc[k].epoch == epoch)
            return &m->svc[k];
    return NULL;
}

/* The term's service, the one REVOKED is about: running, not yet revoked. */
static service *term_service(machine *m)
{
    for (unsigned k = 0; k < SERVICES_MAX; k++)
        if (m->svc[k].running && !m->svc[k].revoked)
            return &m->svc[k];
    return NULL;
}

static void start_service(sim *s, unsigned i, uint64_t epoch)
{
    machine *m = &s->m[i];
    if (term_service(m)) {
        violate(s, "machine %u got ELECTED while the service of its last term was not revoked", i);
        return;
    }
    for (unsigned k = 0; k < SERVICES_MAX; k++) {
        if (!m->svc[k].running) {
            m->svc[k] = (service){
                .running = true, .epoch = epoch, .stop_at = UINT64_MAX, .abandon_at = UINT64_MAX};
            return;
        }
    }
    violate(s, "sim: machine %u runs more than %d services", i, SERVICES_MAX);
}

/* REVOKED: the service is told to stop.  It returns after its stop delay,
 * or, when that is longer than stop_timeout_ms, the client abandons it then
 * and it keeps running until it returns. */
static void stop_service(sim *s, unsigned i, leasehold_reason reason)
{
    machine *m = &s->m[i];
    service *sv = term_service(m);
    if (!sv) {
        violate(s, "machine %u got REVOKED without a running term", i);
        return;
    }
    uint64_t delay = service_stop_delay(s);
    if (m->resign_service_ms != UINT64_MAX) {
        delay = m->resign_service_ms;
        m->resign_service_ms = UINT64_MAX;
    }
    sv->revoked = true;
    sv->resigned = reason == LEASEHOLD_RESIGNED;
    sv->stop_at = s->now + delay;
    if (delay > s->o.lease.stop_timeout_ms)
        sv->abandon_at = s->now + s->o.lease.stop_timeout_ms;
}

/* A release is checked against the services still running: the term it
 * names must have stopped (or the key must not be released at all when it
 * was abandoned). */
static void check_release(sim *s, unsigned i, uint64_t epoch)
{
    const service *sv = running_service(&s->m[i], epoch);
    if (!sv || !(s->o.checks & SIM_CHECK_RELEASE))
        return;
    violate(s, "machine %u released epoch %llu while the term's service still runs%s", i,
            (unsigned long long)epoch,
            sv->abandoned ? " (lease_service_abandoned() was called: the key must lapse)" : "");
}

/* Faults aimed where stale commands matter: now and then Redis stalls just
 * as a claim or a release is sent, so that it times out and its connection
 * is given up while the command may still run. */
static void stall_at_send(sim *s, lease_action_kind kind)
{
    uint64_t lease_ms = s->o.lease.lease_ms;
    if (kind == LEASE_SEND_ACQUIRE && one_in(s, 50))
        sim_redis_pause(s, 20 + rnd(s, lease_ms / 2));
    else if (kind == LEASE_SEND_RELEASE && one_in(s, 4))
        sim_redis_pause(s, 20 + rnd(s, 2 * lease_ms));
}

/* Whether machine m takes itself for leader at `local` on its clock:
 * lease_is_leader(), or what a machine with the deliberate bug would
 * believe instead (the lease itself is left correct). */
static bool believes_leader(const sim *s, const machine *m, uint64_t local)
{
    bool leader_state = lease_get_state(&m->l) == LEASE_LEADER;
    switch (s->o.bug) {
    case SIM_BUG_TRUST_STATE:
        return leader_state;
    case SIM_BUG_VALID_FROM_ARRIVAL:
        return leader_state && local < m->bug_valid_until;
    default:
        return lease_is_leader(&m->l, local);
    }
}

/* Performs the actions of the last input, as the client's loop does. */
static void drain(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    uint64_t local = local_now(m, s->now);
    lease_action a;
    while (!s->violated && lease_next_action(&m->l, &a)) {
        switch (a.kind) {
        case LEASE_SEND_QUERY:
            violate(s, "machine %u, a candidate, sent an observer's query", i);
            return;
        case LEASE_SEND_ACQUIRE:
        case LEASE_SEND_RENEW:
        case LEASE_SEND_RELEASE: {
            if (m->link != LINK_UP) {
                violate(s, "machine %u sent a command while not connected", i);
                return;
            }
            if (m->npending > 0) {
                violate(s, "machine %u sent a second command while one is in flight", i);
                return;
            }
            if (a.kind == LEASE_SEND_RELEASE)
                check_release(s, i, a.epoch);
            if (s->o.faults)
                stall_at_send(s, a.kind);
            m->pending[m->npending++] = (pending){a.seq, a.kind, local};
            msg cmd = {.machine = i,
                       .to_redis = true,
                       .kind = MSG_COMMAND,
                       .conn_id = m->conn_id,
                       .redis_gen = m->conn_gen,
                       .command = a.kind,
                       .seq = a.seq,
                       .epoch = a.kind == LEASE_SEND_RELEASE ? a.epoch : 0};
            snprintf(cmd.token, sizeof cmd.token, "%s", m->token);
            post(s, &cmd, latency(s));
            break;
        }
        case LEASE_ELECTED:
            s->stats.elections++;
            if (!m->ever_elected)
                s->stats.distinct_leaders++;
            m->ever_elected = true;
            if (!believes_leader(s, m, local))
                violate(s, "machine %u got ELECTED but is not leader", i);
            if ((s->o.checks & SIM_CHECK_EPOCHS) && a.epoch <= s->last_elected_epoch)
                violate(s, "machine %u elected with epoch %llu, not above the last one %llu", i,
                        (unsigned long long)a.epoch, (unsigned long long)s->last_elected_epoch);
            s->last_elected_epoch = a.epoch;
            start_service(s, i, a.epoch);
            break;
        case LEASE_REVOKED:
            stop_service(s, i, a.reason);
            break;
        case LEASE_STOPPED:
            m->campaign_at = s->now + 100 + rnd(s, 2000);
            break;
        case LEASE_ERROR:
            s->stats.errors++;
            break;
        case LEASE_LEADER_CHANGED:
        case LEASE_RESIGN_ASKED: /* the simulation sends no resign requests */
        case LEASE_SEND_PREFER:  /* nor priorities */
            break;
        }
    }
}

/* After each input: the actions; the next wake-up must be in the future,
 * or the client's loop would spin. */
static void after_input(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    uint64_t local = local_now(m, s->now);
    drain(s, i);
    if (lease_wake_at(&m->l) <= local)
        violate(s, "machine %u: wake_at %llu is not after now %llu", i,
                (unsigned long long)lease_wake_at(&m->l), (unsigned long long)local);
}

/* The client gave up on connection conn_id: each command still on its way
 * is lost, or runs later (its bytes were sent), after up to
 * STALE_DELAY_MAX_MS more once it reaches Redis. */
static void strand_commands(sim *s, unsigned i, uint32_t conn_id)
{
    size_t k = 0;
    while (k < s->nq) {
        msg *mg = &s->q[k];
        if (mg->machine != i || !mg->to_redis || mg->kind != MSG_COMMAND ||
            mg->conn_id != conn_id || mg->stale) {
            k++;
            continue;
        }
        if (one_in(s, 2)) {
            s->stats.stale_lost++;
            memmove(&s->q[k], &s->q[k + 1], (s->nq - k - 1) * sizeof *mg);
            s->nq--;
            continue;
        }
        mg->stale = true;
        mg->stale_delay_ms = 1 + (uint32_t)rnd(s, STALE_DELAY_MAX_MS);
        k++;
    }
}

static void close_link(sim *s, unsigned i, bool by_peer)
{
    machine *m = &s->m[i];
    if (!by_peer)
        strand_commands(s, i, m->conn_id);
    m->link = LINK_DOWN;
    m->npending = 0;
    m->reconnect_at = s->now + 20 + rnd(s, 80);
    lease_on_disconnected(&m->l, local_now(m, s->now), by_peer);
    after_input(s, i);
}

static void connect_link(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    m->conn_id = ++s->next_conn_id;
    m->link = LINK_CONNECTING;
    m->connect_started_local = local_now(m, s->now);
    m->fifo_to_machine = m->fifo_to_redis = 0; /* a new connection orders its own messages */
    msg c = {.machine = i, .to_redis = true, .kind = MSG_CONNECT, .conn_id = m->conn_id};
    post(s, &c, latency(s));
}

static void deliver_reply(sim *s, unsigned i, const msg *in)
{
    machine *m = &s->m[i];
    unsigned k = 0;
    while (k < m->npending && m->pending[k].seq != in->seq)
        k++;
    if (k == m->npending)
        return;
    pending p = m->pending[k];
    memmove(&m->pending[k], &m->pending[k + 1], (m->npending - k - 1) * sizeof p);
    m->npending--;

    uint64_t local = local_now(m, s->now);
    lease_reply r = {
        .result = in->result, .epoch = in->epoch, .pttl_ms = in->pttl_ms, .error = in->error};
    if (in->token[0]) {
        r.holder = in->token;
        r.holder_len = strlen(in->token);
    }
    bool success = (p.kind == LEASE_SEND_ACQUIRE && in->result == LEASE_ACQUIRED) ||
                   (p.kind == LEASE_SEND_RENEW && in->result == LEASE_RENEWED);
    if (success) {
        uint64_t bound = p.sent_local_ms + s->o.lease.lease_ms - drift_ms(s);
        if (bound > m->bound_local)
            m->bound_local = bound;
    }
    if (p.kind == LEASE_SEND_ACQUIRE)
        lease_on_acquire(&m->l, local, in->seq, &r);
    else if (p.kind == LEASE_SEND_RENEW)
        lease_on_renew(&m->l, local, in->seq, &r);
    else
        lease_on_release(&m->l, local, in->seq, &r);
    if (s->o.bug == SIM_BUG_VALID_FROM_ARRIVAL && success && lease_get_state(&m->l) == LEASE_LEADER)
        m->bug_valid_until = local + s->o.lease.lease_ms;
    after_input(s, i);
}

static void machine_receive(sim *s, const msg *in)
{
    unsigned i = in->machine;
    machine *m = &s->m[i];
    if (in->kind == MSG_EVENT) {
        if (sub_down(s, m)) {
            s->stats.events_lost++;
            return;
        }
        s->stats.events++;
        lease_on_event(&m->l, local_now(m, s->now), (lease_event_kind)in->result, in->token,
                       strlen(in->token), in->epoch);
        after_input(s, i);
        return;
    }
    if (in->conn_id != m->conn_id)
        return; /* an old connection's */
    switch (in->kind) {
    case MSG_CONNECTED:
        if (m->link == LINK_CONNECTING) {
            m->link = LINK_UP;
            m->conn_gen = in->redis_gen;
            lease_on_connected(&m->l, local_now(m, s->now));
            after_input(s, i);
        }
        break;
    case MSG_REFUSED:
        if (m->link == LINK_CONNECTING) {
            m->link = LINK_DOWN;
            m->reconnect_at = s->now + 20 + rnd(s, 80);
        }
        break;
    case MSG_CLOSED:
        if (m->link != LINK_DOWN)
            close_link(s, i, s->o.bug != SIM_BUG_IGNORE_PEER_CLOSE);
        break;
    case MSG_REPLY:
        if (m->link == LINK_UP)
            deliver_reply(s, i, in);
        break;
    default:
        break;
    }
}

/* Delivers what is due.  Messages for a frozen machine or a paused Redis
 * wait in place (order kept); those across a partition are dropped, except
 * stale commands. */
static void deliver(sim *s)
{
    size_t i = 0;
    while (!s->violated && i < s->nq && s->q[i].at <= s->now) {
        const machine *m = &s->m[s->q[i].machine];
        bool cut = cut_off(s, m) && !s->q[i].stale;
        bool wait = s->q[i].to_redis ? s->r.up && s->r.paused_until > s->now : frozen(s, m);
        if (wait && !cut) {
            i++;
            continue;
        }
        msg mg = s->q[i];
        memmove(&s->q[i], &s->q[i + 1], (s->nq - i - 1) * sizeof mg);
        s->nq--;
        if (cut) {
            if (mg.kind == MSG_EVENT)
                s->stats.events_lost++;
            continue;
        }
        if (mg.to_redis)
            redis_receive(s, &mg);
        else
            machine_receive(s, &mg);
    }
}

static void new_campaign(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    uint64_t local = local_now(m, s->now);
    snprintf(m->token, sizeof m->token, "m%u/%016llx", i, (unsigned long long)rnd64(s));
    lease_init(&m->l, &s->o.lease, m->token, rnd64(s));
    lease_start(&m->l, local);
    if (m->link == LINK_UP)
        lease_on_connected(&m->l, local);
    after_input(s, i);
}

/* The services' ends and abandonments that are due. */
static void service_timers(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    for (unsigned k = 0; k < SERVICES_MAX && !s->violated; k++) {
        service *sv = &m->svc[k];
        if (!sv->running)
            continue;
        if (sv->stop_at <= s->now) {
            sv->running = false;
            if (!sv->abandoned) {
                lease_service_stopped(&m->l, local_now(m, s->now));
                after_input(s, i);
            }
        } else if (sv->abandon_at <= s->now && !sv->abandoned) {
            sv->abandoned = true;
            s->stats.abandons++;
            lease_service_abandoned(&m->l, local_now(m, s->now));
            after_input(s, i);
        }
    }
}

/* The machine's own timers: its services, its connection, its lease. */
static void machine_timers(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    if (frozen(s, m))
        return;
    service_timers(s, i);
    uint64_t local = local_now(m, s->now);
    if (m->campaign_at <= s->now) {
        m->campaign_at = UINT64_MAX;
        new_campaign(s, i);
    }
    if (m->link == LINK_UP && m->npending &&
        local >= m->pending[0].sent_local_ms + s->o.command_timeout_ms) {
        s->stats.timeouts++;
        close_link(s, i, false);
    }
    if (m->link == LINK_CONNECTING && local >= m->connect_started_local + CONNECT_TIMEOUT_MS) {
        m->link = LINK_DOWN;
        m->reconnect_at = s->now + 20 + rnd(s, 80);
    }
    if (m->link == LINK_DOWN && s->now >= m->reconnect_at)
        connect_link(s, i);
    if (lease_wake_at(&m->l) <= local) {
        lease_tick(&m->l, local);
        after_input(s, i);
    }
}

/* ---------------------------------------------------------------- faults */

int sim_leader(const sim *s)
{
    for (unsigned i = 0; i < s->o.machines; i++)
        if (believes_leader(s, &s->m[i], local_now(&s->m[i], s->now)))
            return (int)i;
    return -1;
}

/* Half of the time the leader, since faults there matter most. */
static unsigned pick_machine(sim *s)
{
    int leader = sim_leader(s);
    if (leader >= 0 && one_in(s, 2))
        return (unsigned)leader;
    return (unsigned)rnd(s, s->o.machines);
}

/* A frozen process's subscription is dropped by Redis now and then (its
 * output buffer overflows); otherwise its events wait for it. */
void sim_freeze(sim *s, unsigned index, uint64_t ms)
{
    machine *m = &s->m[index];
    if (m->frozen_until < s->now + ms)
        m->frozen_until = s->now + ms;
    if (one_in(s, 2) && m->sub_down_until < m->frozen_until + 1) {
        m->sub_down_until = m->frozen_until + 1 + rnd(s, 200);
        s->stats.sub_drops++;
    }
    s->stats.freezes++;
}

void sim_partition(sim *s, unsigned index, uint64_t ms)
{
    machine *m = &s->m[index];
    if (m->partitioned_until < s->now + ms)
        m->partitioned_until = s->now + ms;
    s->stats.partitions++;
}

void sim_redis_pause(sim *s, uint64_t ms)
{
    if (s->r.paused_until < s->now + ms)
        s->r.paused_until = s->now + ms;
    s->stats.pauses++;
}

bool sim_resign(sim *s, unsigned index, uint64_t service_ms)
{
    machine *m = &s->m[index];
    if (frozen(s, m))
        return false;
    m->resign_service_ms = service_ms;
    s->stats.resigns++;
    lease_resign(&m->l, local_now(m, s->now));
    after_input(s, index);
    m->resign_service_ms = UINT64_MAX; /* only for the term this resign ended */
    return true;
}

/* True while a term ended by a resign holds its key for a service that still
 * runs: what the resign hold promises. */
static bool resign_holds(const sim *s, const machine *m)
{
    for (unsigned k = 0; k < SERVICES_MAX; k++)
        if (m->svc[k].running && m->svc[k].resigned &&
            local_now(m, s->now) < lease_hold_until(&m->l))
            return true;
    return false;
}

/* Every leader must hear the close before Redis comes back (see sim.h).  The
 * close travels on the connection after what is already on it; a leader
 * with nothing in flight has nothing ahead of it, so it hears the close
 * within LATENCY_MAX_MS, well before its next command could time out. */
bool sim_redis_restart(sim *s)
{
    if (!s->r.up)
        return false;
    for (unsigned i = 0; i < s->o.machines; i++) {
        const machine *m = &s->m[i];
        if (resign_holds(s, m))
            return false;
        if (lease_get_state(&m->l) != LEASE_LEADER)
            continue;
        if (frozen(s, m) || cut_off(s, m) || m->link != LINK_UP || m->npending ||
            s->r.accepted[i] != m->conn_id)
            return false;
    }
    uint64_t last = s->now;
    for (unsigned i = 0; i < s->o.machines; i++) {
        if (!s->r.accepted[i])
            continue;
        msg c = {.machine = i, .kind = MSG_CLOSED, .conn_id = s->r.accepted[i]};
        post(s, &c, 1 + rnd(s, LATENCY_MAX_MS));
        if (c.at > last)
            last = c.at;
        s->r.accepted[i] = 0;
    }
    s->r.up = false;
    s->r.gen++;
    s->r.has_key = false;
    s->r.epoch_key = 0;
    s->r.paused_until = 0;
    s->r.up_at = last + 1 + rnd(s, 500);
    s->r.quiet_until = s->r.up_at;
    s->stats.restarts++;
    return true;
}

/* From a restart until Redis is up again. */
static bool restarting(const sim *s)
{
    return s->now < s->r.quiet_until;
}

/*
 * Rates per ms, for runs of about 100 s: a dozen partitions, freezes and
 * dropped subscriptions, a few pauses, restarts, resigns and stops.  No
 * freeze, partition, resign or stop starts while Redis restarts (see
 * sim_redis_restart).
 */
static void inject_faults(sim *s)
{
    uint32_t lease_ms = s->o.lease.lease_ms;
    if (!restarting(s) && one_in(s, 8000))
        sim_partition(s, pick_machine(s), 100 + rnd(s, 3 * (uint64_t)lease_ms));
    if (!restarting(s) && one_in(s, 8000))
        sim_freeze(s, pick_machine(s), rnd(s, 3 * (uint64_t)lease_ms + 1));
    if (one_in(s, 8000)) {
        machine *m = &s->m[pick_machine(s)];
        m->sub_down_until = s->now + 50 + rnd(s, 3 * (uint64_t)lease_ms);
        s->stats.sub_drops++;
    }
    if (one_in(s, 25000))
        sim_redis_pause(s, 50 + rnd(s, 2 * (uint64_t)lease_ms));
    if (one_in(s, 4000)) /* a stall: a slow command, a fork */
        sim_redis_pause(s, 20 + rnd(s, lease_ms / 3));
    if (one_in(s, 30000))
        sim_redis_restart(s);
    if (!restarting(s) && one_in(s, 15000)) {
        int leader = sim_leader(s);
        if (leader >= 0)
            sim_resign(s, (unsigned)leader, service_stop_delay(s));
    }
    if (!restarting(s) && one_in(s, 40000)) {
        unsigned i = (unsigned)rnd(s, s->o.machines);
        machine *m = &s->m[i];
        if (!frozen(s, m) && lease_get_state(&m->l) != LEASE_IDLE && !lease_stopping(&m->l)) {
            s->stats.stops++;
            lease_stop(&m->l, local_now(m, s->now));
            after_input(s, i);
        }
    }
}

/* --------------------------------------------------------------- checker */

static void check(sim *s)
{
    int leader = -1;
    for (unsigned i = 0; i < s->o.machines && !s->violated; i++) {
        machine *m = &s->m[i];
        uint64_t local = local_now(m, s->now);
        if (!believes_leader(s, m, local))
            continue;
        if ((s->o.checks & SIM_CHECK_VALID_UNTIL) && local >= m->bound_local)
            violate(s,
                    "machine %u is leader at %llu on its clock, past %llu (its last successful "
                    "acquire or renew was sent at %llu)",
                    i, (unsigned long long)local, (unsigned long long)m->bound_local,
                    (unsigned long long)(m->bound_local + drift_ms(s) - s->o.lease.lease_ms));
        if ((s->o.checks & SIM_CHECK_ONE_LEADER) && leader >= 0)
            violate(s, "machines %d and %u are both leader (Redis holds %s)", leader, i,
                    s->r.has_key ? s->r.value : "nothing");
        for (unsigned j = 0; j < s->o.machines && (s->o.checks & SIM_CHECK_RESIGN_HOLD); j++)
            if (j != i && resign_holds(s, &s->m[j]))
                violate(s,
                        "machine %u is leader while machine %u, which resigned, still runs its "
                        "service and holds the key until %llu (now %llu on its clock; Redis "
                        "holds %s)",
                        i, j, (unsigned long long)lease_hold_until(&s->m[j].l),
                        (unsigned long long)local_now(&s->m[j], s->now),
                        s->r.has_key ? s->r.value : "nothing");
        leader = (int)i;
    }
    if (leader >= 0)
        s->stats.leader_ms++;
}

/* ------------------------------------------------------------------- API */

void sim_options_init(sim_options *o, uint64_t seed, unsigned machines)
{
    *o = (sim_options){
        .seed = seed,
        .machines = machines,
        .lease = {.lease_ms = 2000,
                  .renew_interval_ms = 300,
                  .retry_interval_ms = 1000,
                  .renew_deadline_ms = 1500,
                  .stop_timeout_ms = 1000,
                  .drift_ppm = 10000},
        .command_timeout_ms = 250,
        .faults = false,
        .bug = SIM_BUG_NONE,
        .checks = SIM_CHECK_ALL,
    };
}

sim *sim_new(const sim_options *o)
{
    if (o->machines < 1 || o->machines > SIM_MAX_MACHINES)
        return NULL;
    sim *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->o = *o;
    s->rng = o->seed;
    s->r.up = true;
    s->r.gen = 1;
    for (unsigned i = 0; i < o->machines; i++) {
        machine *m = &s->m[i];
        m->clock_ppm = (int64_t)rnd(s, 10001) - 5000;
        m->clock_offset_ms = 1000 + rnd(s, 1000000);
        m->link = LINK_DOWN;
        m->campaign_at = UINT64_MAX;
        m->resign_service_ms = UINT64_MAX;
        new_campaign(s, i);
    }
    return s;
}

void sim_free(sim *s)
{
    if (s) {
        free(s->q);
        free(s);
    }
}

bool sim_step(sim *s)
{
    if (s->violated)
        return false;
    s->now++;
    if (!s->r.up && s->now >= s->r.up_at)
        s->r.up = true;
    if (s->o.faults)
        inject_faults(s);
    deliver(s);
    for (unsigned i = 0; i < s->o.machines && !s->violated; i++)
        machine_timers(s, i);
    check(s);
    s->stats.steps++;
    return !s->violated;
}

bool sim_run(sim *s, uint64_t steps)
{
    for (uint64_t k = 0; k < steps; k++)
        if (!sim_step(s))
            return false;
    return true;
}

const char *sim_violation(const sim *s)
{
    return s->violated ? s->violation : NULL;
}

const sim_stats *sim_get_stats(const sim *s)
{
    return &s->stats;
}
