/* sim.c — lease machines around one simulated Redis, in simulated time (sim.h).
 *
 * Everything happens in whole milliseconds of sim time.  Messages (connects,
 * commands, replies, closes) travel with a random latency and keep their order
 * within one connection; a message is delivered at the first step at or after
 * its time.  A frozen machine processes nothing, so messages wait for it; a
 * paused Redis holds what reaches it; a partition drops what would cross it.
 * Each machine reads its own clock (offset, rate within +-0.5%), and the
 * lease machine sees only that clock.
 */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX          32
#define PENDING_MAX        4
#define LATENCY_MAX_MS     30  /* usual one-way latency: 1..30 ms */
#define LATENCY_LARGE_MS   400 /* now and then: 50..400 ms, past the command timeout */
#define CONNECT_TIMEOUT_MS 1000
#define EPOCH_TIME_BASE_US 1700000000000000ULL /* Redis TIME at sim time 0 */

typedef enum msg_kind {
    MSG_CONNECT,   /* machine -> Redis */
    MSG_COMMAND,   /* machine -> Redis */
    MSG_CONNECTED, /* Redis -> machine */
    MSG_REFUSED,   /* Redis -> machine: Redis is down */
    MSG_REPLY,     /* Redis -> machine */
    MSG_CLOSED,    /* Redis -> machine: Redis closed the connection */
} msg_kind;

typedef struct msg {
    uint64_t at; /* sim time of delivery */
    unsigned machine;
    bool to_redis;
    msg_kind kind;
    uint32_t conn_id;
    lease_action_kind command; /* COMMAND, REPLY */
    uint32_t seq;              /* COMMAND, REPLY */
    char token[TOKEN_MAX];     /* COMMAND: the sender's token; REPLY: the holder, or "" */
    int result;                /* REPLY: as lease_reply.result */
    uint64_t epoch;
    int64_t pttl_ms;
    int error;
} msg;

typedef enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state;

typedef struct pending {
    uint32_t seq;
    lease_action_kind kind;
    uint64_t sent_local_ms;
} pending;

typedef struct machine {
    lease l;
    char token[TOKEN_MAX];
    int64_t clock_ppm;
    uint64_t clock_offset_ms;
    uint64_t frozen_until, partitioned_until; /* sim time */
    link_state link;
    uint32_t conn_id;
    uint64_t reconnect_at; /* LINK_DOWN: sim time of the next attempt */
    uint64_t connect_started_local;
    pending pending[PENDING_MAX]; /* commands sent on this connection, oldest first */
    unsigned npending;
    uint64_t fifo_to_machine, fifo_to_redis; /* last delivery time on this connection */
    uint64_t service_stop_at;                /* UINT64_MAX: no service is stopping */
    uint64_t campaign_at;                    /* UINT64_MAX: none planned */
    bool service_running;                    /* from ELECTED to lease_service_stopped() */
    bool ever_elected;
    uint64_t bound_local; /* the checker's valid_until, on this machine's clock */
} machine;

typedef struct redis {
    bool up;
    uint64_t up_at;        /* down: when it accepts connections again */
    uint64_t paused_until; /* holds every message until then */
    uint64_t quiet_until;  /* after a restart: no new freeze or partition before */
    bool has_key;
    char value[TOKEN_MAX];
    uint64_t expire_at;
    uint64_t epoch_counter;              /* {K}:epoch */
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
    uint64_t last_epoch;
    sim_stats stats;
    bool violated;
    char violation[512];
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
    return s->o.lease.lease_ms / 100 + 2;
}

static bool frozen(const sim *s, const machine *m)
{
    return m->frozen_until > s->now;
}

static bool cut_off(const sim *s, const machine *m)
{
    return m->partitioned_until > s->now;
}

/* Queues mg for delivery `delay` ms from now, after everything sent earlier
 * on the same connection in the same direction. */
static void post(sim *s, msg *mg, uint64_t delay)
{
    machine *m = &s->m[mg->machine];
    uint64_t *fifo = mg->to_redis ? &m->fifo_to_redis : &m->fifo_to_machine;
    mg->at = s->now + delay;
    if (mg->at < *fifo)
        mg->at = *fifo;
    *fifo = mg->at;
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

/* ----------------------------------------------------------------- Redis */

static void redis_expire(sim *s)
{
    if (s->r.has_key && s->now >= s->r.expire_at)
        s->r.has_key = false;
}

/* Runs one command as the Lua scripts do, atomically, and fills the reply. */
static void redis_execute(sim *s, const msg *cmd, msg *reply)
{
    redis *r = &s->r;
    redis_expire(s);
    bool ours = r->has_key && strcmp(r->value, cmd->token) == 0;
    if (one_in(s, 500)) { /* an error reply, the script not run */
        reply->error = LEASEHOLD_EREDIS;
        reply->result = cmd->command == LEASE_SEND_ACQUIRE ? LEASE_ACQUIRE_FAILED
                        : cmd->command == LEASE_SEND_RENEW ? LEASE_RENEW_FAILED
                                                           : LEASEHOLD_EREDIS;
        return;
    }
    switch (cmd->command) {
    case LEASE_SEND_ACQUIRE:
        if (!r->has_key) {
            uint64_t time_us = EPOCH_TIME_BASE_US + s->now * 1000;
            r->has_key = true;
            snprintf(r->value, sizeof r->value, "%s", cmd->token);
            r->expire_at = s->now + s->o.lease.lease_ms;
            r->epoch_counter = r->epoch_counter + 1 > time_us ? r->epoch_counter + 1 : time_us;
            reply->result = LEASE_ACQUIRED;
            reply->epoch = r->epoch_counter;
        } else {
            reply->result = LEASE_ACQUIRE_HELD;
            snprintf(reply->token, sizeof reply->token, "%s", r->value);
            reply->pttl_ms = (int64_t)(r->expire_at - s->now);
            reply->epoch = r->epoch_counter;
        }
        break;
    case LEASE_SEND_RENEW:
        if (ours) {
            r->expire_at = s->now + s->o.lease.lease_ms;
            reply->result = LEASE_RENEWED;
        } else if (r->has_key) {
            reply->result = LEASE_RENEW_HELD;
            snprintf(reply->token, sizeof reply->token, "%s", r->value);
            reply->epoch = r->epoch_counter;
        } else {
            reply->result = LEASE_RENEW_MISSING;
        }
        break;
    default:
        reply->result = ours;
        if (ours)
            r->has_key = false;
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
        post(s, &out, latency(s));
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

static uint64_t service_stop_delay(sim *s)
{
    uint64_t dice = rnd(s, 100);
    if (dice < 70)
        return rnd(s, 20);
    if (dice < 95)
        return rnd(s, 300);
    return rnd(s, 1500);
}

/* Performs the actions of the last input, as the client's loop does. */
static void drain(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    uint64_t local = local_now(m, s->now);
    lease_action a;
    while (lease_next_action(&m->l, &a)) {
        switch (a.kind) {
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
            if (a.kind == LEASE_SEND_RELEASE && m->service_running) {
                violate(s, "machine %u released the lease while its service still runs", i);
                return;
            }
            m->pending[m->npending++] = (pending){a.seq, a.kind, local};
            msg cmd = {.machine = i,
                       .to_redis = true,
                       .kind = MSG_COMMAND,
                       .conn_id = m->conn_id,
                       .command = a.kind,
                       .seq = a.seq};
            snprintf(cmd.token, sizeof cmd.token, "%s", m->token);
            post(s, &cmd, latency(s));
            break;
        }
        case LEASE_ELECTED:
            s->stats.elections++;
            if (!m->ever_elected)
                s->stats.distinct_leaders++;
            m->ever_elected = true;
            m->service_running = true;
            if (!lease_is_leader(&m->l, local))
                violate(s, "machine %u got ELECTED but is not leader", i);
            if (a.epoch <= s->last_epoch)
                violate(s, "machine %u elected with epoch %llu, not above the last one %llu", i,
                        (unsigned long long)a.epoch, (unsigned long long)s->last_epoch);
            s->last_epoch = a.epoch;
            break;
        case LEASE_REVOKED:
            m->service_stop_at = s->now + service_stop_delay(s);
            break;
        case LEASE_STOPPED:
            m->campaign_at = s->now + 100 + rnd(s, 2000);
            break;
        case LEASE_ERROR:
            s->stats.errors++;
            break;
        case LEASE_LEADER_CHANGED:
            break;
        }
    }
}

/* After each input: the deliberate bug, if any, then the actions; the next
 * wake-up must be in the future, or the client's loop would spin. */
static void after_input(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    uint64_t local = local_now(m, s->now);
    if (s->o.bug == SIM_BUG_TRUST_STATE && m->l.state == LEASE_LEADER)
        m->l.valid_until_ms = UINT64_MAX;
    drain(s, i);
    if (lease_wake_at(&m->l) <= local)
        violate(s, "machine %u: wake_at %llu is not after now %llu", i,
                (unsigned long long)lease_wake_at(&m->l), (unsigned long long)local);
}

static void close_link(sim *s, unsigned i, bool by_peer)
{
    machine *m = &s->m[i];
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
    if (s->o.bug == SIM_BUG_VALID_FROM_ARRIVAL && success && m->l.state == LEASE_LEADER)
        m->l.valid_until_ms = local + s->o.lease.lease_ms;
    after_input(s, i);
}

static void machine_receive(sim *s, const msg *in)
{
    unsigned i = in->machine;
    machine *m = &s->m[i];
    if (in->conn_id != m->conn_id)
        return; /* an old connection's */
    switch (in->kind) {
    case MSG_CONNECTED:
        if (m->link == LINK_CONNECTING) {
            m->link = LINK_UP;
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
 * wait in place (order kept); those across a partition are dropped. */
static void deliver(sim *s)
{
    size_t i = 0;
    while (!s->violated && i < s->nq && s->q[i].at <= s->now) {
        const machine *m = &s->m[s->q[i].machine];
        bool cut = cut_off(s, m);
        bool wait = s->q[i].to_redis ? s->r.up && s->r.paused_until > s->now : frozen(s, m);
        if (wait && !cut) {
            i++;
            continue;
        }
        msg mg = s->q[i];
        memmove(&s->q[i], &s->q[i + 1], (s->nq - i - 1) * sizeof mg);
        s->nq--;
        if (cut)
            continue;
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

/* The machine's own timers: its service, its connection, its lease. */
static void machine_timers(sim *s, unsigned i)
{
    machine *m = &s->m[i];
    if (frozen(s, m))
        return;
    uint64_t local = local_now(m, s->now);
    if (m->service_stop_at <= s->now) {
        m->service_stop_at = UINT64_MAX;
        m->service_running = false;
        lease_service_stopped(&m->l, local);
        after_input(s, i);
    }
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
        if (lease_is_leader(&s->m[i].l, local_now(&s->m[i], s->now)))
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

void sim_freeze(sim *s, unsigned index, uint64_t ms)
{
    machine *m = &s->m[index];
    if (m->frozen_until < s->now + ms)
        m->frozen_until = s->now + ms;
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
        if (m->l.state != LEASE_LEADER)
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
    s->r.has_key = false;
    s->r.epoch_counter = 0;
    s->r.paused_until = 0;
    s->r.up_at = last + 1 + rnd(s, 500);
    s->r.quiet_until = s->r.up_at;
    s->stats.restarts++;
    return true;
}

/*
 * Rates per ms, for runs of about 100 s: a dozen partitions and freezes,
 * a few pauses, restarts, resigns and stops.  No freeze or partition starts
 * while Redis restarts (see sim_redis_restart).
 */
static void inject_faults(sim *s)
{
    uint32_t lease_ms = s->o.lease.lease_ms;
    bool quiet = s->now < s->r.quiet_until;
    if (!quiet && one_in(s, 8000))
        sim_partition(s, pick_machine(s), 100 + rnd(s, 3 * (uint64_t)lease_ms));
    if (!quiet && one_in(s, 8000))
        sim_freeze(s, pick_machine(s), rnd(s, 3 * (uint64_t)lease_ms + 1));
    if (one_in(s, 25000))
        sim_redis_pause(s, 50 + rnd(s, 2 * (uint64_t)lease_ms));
    if (one_in(s, 30000))
        sim_redis_restart(s);
    if (one_in(s, 15000)) {
        int leader = sim_leader(s);
        if (leader >= 0 && !frozen(s, &s->m[leader])) {
            machine *m = &s->m[leader];
            s->stats.resigns++;
            lease_resign(&m->l, local_now(m, s->now));
            after_input(s, (unsigned)leader);
        }
    }
    if (one_in(s, 40000)) {
        unsigned i = (unsigned)rnd(s, s->o.machines);
        machine *m = &s->m[i];
        if (!frozen(s, m) && m->l.state != LEASE_IDLE && !m->l.stopping) {
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
    for (unsigned i = 0; i < s->o.machines; i++) {
        machine *m = &s->m[i];
        uint64_t local = local_now(m, s->now);
        if (!lease_is_leader(&m->l, local))
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
                  .renew_deadline_ms = 1500},
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
    for (unsigned i = 0; i < o->machines; i++) {
        machine *m = &s->m[i];
        m->clock_ppm = (int64_t)rnd(s, 10001) - 5000;
        m->clock_offset_ms = 1000 + rnd(s, 1000000);
        m->link = LINK_DOWN;
        m->service_stop_at = UINT64_MAX;
        m->campaign_at = UINT64_MAX;
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
