/* fuzz_lease.c — the election state machine (src/lease*.c) fed arbitrary
 * sequences of inputs, with its promises checked after every one.
 *
 * The bytes are decoded into a configuration, a seed and then a sequence of
 * inputs: start (or observe), connected, disconnected, the replies to each
 * command (with any result, seq, epoch, PTTL and holder, including our own
 * token and holders longer than LEASE_HOLDER_MAX), events, ticks, resign,
 * stop, service stopped or abandoned and the restart guard's gate.  Time
 * never goes back; it moves by small or large steps, or straight to
 * lease_wake_at().  A model kept beside the lease, from the actions it
 * emits and the inputs it is given, checks:
 *
 * - the safety rule: lease_is_leader(now) implies now < T + lease_ms - drift,
 *   where T is the now of the input that emitted the SEND of the last
 *   acquire or renew answered with success (drift = lease_ms * drift_ppm / 10^6 + 2);
 * - at most one command in flight, and none while disconnected; every SEND
 *   has a new seq;
 * - after every input lease_wake_at() is in the future (a stricter form of
 *   "unless an action is pending": it holds even then); a LEADER after an
 *   input is a leader at that instant;
 * - ELECTED only for the acquire just answered ACQUIRED, with its epoch,
 *   never while the previous term's service runs, never after lease_stop and
 *   never for an observer; REVOKED once per ELECTED; no claim or release
 *   while a revoked term's service runs; LEADER exactly while a term is open;
 * - STOPPED only after lease_stop, at most once per campaign, in IDLE with
 *   nothing in flight and no service running, and nothing sent after it;
 * - no claim before the restart guard's gate; an observer only queries.
 * The state machine's own asserts (compiled in) are checked as well. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "me/4f1c"

/* The fuzz input, read front to back; zeros once it runs out. */
typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t u8(input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static uint32_t u32(input *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | u8(in);
    return v;
}

static uint64_t u64(input *in)
{
    return (uint64_t)u32(in) << 32 | u32(in);
}

/* What the lease has done so far, as seen from outside. */
typedef struct model {
    lease_config cfg;
    bool observer;
    bool connected;
    bool in_flight; /* a SEND not yet answered, nor lost with the connection */
    lease_action_kind in_flight_kind;
    uint32_t in_flight_seq;
    uint64_t in_flight_sent_ms;
    uint32_t last_seq;
    bool any_sent;
    bool success;             /* an acquire or renew was answered with success */
    uint64_t success_sent_ms; /* ... the now of the input that sent the last one */
    bool term_open;           /* ELECTED and no REVOKED yet */
    bool service_running;     /* REVOKED and no lease_service_stopped/abandoned yet */
    bool stop_called;         /* lease_stop in this campaign */
    bool stopped;             /* STOPPED emitted in this campaign */
    uint64_t gate_ms;
    /* The input being checked. */
    uint64_t now_ms;
    bool acquired; /* it is the reply to the acquire in flight, ACQUIRED */
    uint64_t acquired_epoch;
} model;

static uint64_t drift_ms(const lease_config *cfg)
{
    return (uint64_t)cfg->lease_ms * cfg->drift_ppm / 1000000 + 2;
}

/* One of a few sound configurations, or the bytes' own when they pass
 * lease_config_check. */
static lease_config decode_config(input *in)
{
    static const lease_config presets[] = {
        {.lease_ms = 2000,
         .renew_interval_ms = 300,
         .retry_interval_ms = 1000,
         .renew_deadline_ms = 1500,
         .stop_timeout_ms = 10000,
         .drift_ppm = 10000},
        {.lease_ms = 30,
         .renew_interval_ms = 5,
         .retry_interval_ms = 10,
         .renew_deadline_ms = 20,
         .stop_timeout_ms = 40,
         .drift_ppm = 10000},
        {.lease_ms = 500,
         .renew_interval_ms = 200,
         .retry_interval_ms = 700,
         .renew_deadline_ms = 400,
         .stop_timeout_ms = 5,
         .drift_ppm = 10000},
    };
    uint8_t pick = u8(in);
    lease_config cfg = presets[(pick & 0x7f) % 3];
    if (pick & 0x80) {
        lease_config own = {.lease_ms = u32(in) % 100000,
                            .renew_interval_ms = u32(in) % 100000,
                            .retry_interval_ms = u32(in) % 100000,
                            .renew_deadline_ms = u32(in) % 100000,
                            .stop_timeout_ms = u32(in) % 100000 + 1,
                            .drift_ppm = u32(in) % 200000 + 1};
        if (lease_config_check(&own, 1, NULL) == 0)
            cfg = own;
    }
    cfg.original_timing = u8(in) == 0xee;
    uint8_t prio = u8(in);
    cfg.priority = prio % 4; /* the preferred leader */
    cfg.standby = cfg.priority == 0 && (prio & 0x80);
    cfg.handover_interval_ms = (uint32_t)(prio >> 2) * 100;
    return cfg;
}

/* Moves time forward: a small or a large step, or to the next timer. */
static uint64_t advance_time(input *in, const lease *l, uint64_t now_ms)
{
    uint8_t b = u8(in);
    if (b < 64)
        return now_ms + b;
    if (b < 128)
        return now_ms + (uint64_t)(b - 64) * 16;
    if (b < 192)
        return now_ms + (uint64_t)(b - 128) * 256;
    uint64_t wake = lease_wake_at(l);
    if (wake == UINT64_MAX || wake <= now_ms)
        return now_ms + (b - 192);
    return wake - 1 + (b & 3); /* just before it, at it, or just after */
}

/* A holder (or event token): ours, another's, none, or raw bytes (up to
 * longer than LEASE_HOLDER_MAX).  Returned in a heap buffer of exactly its
 * length, so that reading past it is caught; *out is NULL for none. */
static char *decode_holder(input *in, const char **out, size_t *len)
{
    static const char *known[] = {TOKEN, "other/9a", "other/77", ""};
    uint8_t b = u8(in);
    const char *src = NULL;
    size_t n = 0;
    char raw[2 * LEASE_HOLDER_MAX];
    if (b % 6 < 4) {
        src = known[b % 6];
        n = strlen(src);
    } else if (b % 6 == 4) {
        n = (size_t)u8(in) * 2 % sizeof raw;
        for (size_t i = 0; i < n; i++)
            raw[i] = (char)u8(in);
        src = raw;
    }
    if (!src) {
        *out = NULL;
        *len = 0;
        return NULL;
    }
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, src, n);
    *out = copy;
    *len = n;
    return copy;
}

static uint64_t decode_epoch(input *in, uint64_t hint)
{
    uint8_t b = u8(in);
    switch (b & 3) {
    case 0:
        return 0;
    case 1:
        return hint + 1 + (b >> 2);
    case 2:
        return b >> 2;
    default:
        return u64(in);
    }
}

static int decode_error(input *in)
{
    static const int codes[] = {
        LEASEHOLD_EREDIS,    LEASEHOLD_EWRONGTYPE, LEASEHOLD_ENOPERM, LEASEHOLD_EREADONLY,
        LEASEHOLD_ENOSCRIPT, LEASEHOLD_EPROTO,     LEASEHOLD_ENOMEM,  0};
    return codes[u8(in) % (sizeof codes / sizeof codes[0])];
}

/* A reply's seq: the one awaited, mostly; sometimes a stale or future one. */
static uint32_t decode_seq(input *in, const model *m)
{
    uint8_t b = u8(in);
    if (b < 0xc0)
        return m->in_flight ? m->in_flight_seq : m->last_seq;
    return m->last_seq + (uint32_t)(b & 0x3f) - 32;
}

/* Checks one action as it comes out of the lease and updates the model. */
static void check_action(model *m, const lease_action *a)
{
    switch (a->kind) {
    case LEASE_SEND_ACQUIRE:
    case LEASE_SEND_RENEW:
    case LEASE_SEND_RELEASE:
    case LEASE_SEND_QUERY:
        fuzz_require(m->connected, "nothing is sent while disconnected");
        fuzz_require(!m->in_flight, "at most one command in flight");
        fuzz_require(!m->stopped, "nothing is sent after STOPPED");
        fuzz_require(!m->any_sent || a->seq != m->last_seq, "every command has a new seq");
        fuzz_require((a->kind == LEASE_SEND_QUERY) == m->observer,
                     "an observer only queries, a candidate never does");
        if (a->kind == LEASE_SEND_ACQUIRE) {
            fuzz_require(m->now_ms >= m->gate_ms, "no claim before the restart guard's gate");
            fuzz_require(!m->term_open, "no claim during a term");
        }
        if (a->kind == LEASE_SEND_ACQUIRE || a->kind == LEASE_SEND_RELEASE)
            fuzz_require(!m->service_running,
                         "no claim or release while the ended term's service runs");
        if (a->kind == LEASE_SEND_RENEW)
            fuzz_require(m->term_open || m->service_running,
                         "a renew belongs to a term or to a service that is stopping");
        m->in_flight = true;
        m->in_flight_kind = a->kind;
        m->in_flight_seq = a->seq;
        m->in_flight_sent_ms = m->now_ms;
        m->last_seq = a->seq;
        m->any_sent = true;
        break;
    case LEASE_ELECTED:
        fuzz_require(m->acquired, "ELECTED answers an acquire that succeeded");
        fuzz_require(a->epoch == m->acquired_epoch, "ELECTED carries the acquire's epoch");
        fuzz_require(!m->term_open, "one term at a time");
        fuzz_require(!m->service_running, "no term while the previous term's service runs");
        fuzz_require(!m->stop_called, "no term after lease_stop");
        fuzz_require(!m->observer, "an observer is never elected");
        m->term_open = true;
        break;
    case LEASE_REVOKED:
        fuzz_require(m->term_open, "REVOKED ends a term that was ELECTED");
        fuzz_require(a->reason >= LEASEHOLD_LOST && a->reason <= LEASEHOLD_HALTED,
                     "REVOKED has a known reason");
        m->term_open = false;
        m->service_running = true;
        break;
    case LEASE_LEADER_CHANGED:
        /* Not necessarily non-empty: a value with a NUL byte in it (never
         * one of our tokens) shows only up to that byte. */
        if (a->holder)
            fuzz_require(strnlen(a->holder, LEASE_HOLDER_MAX) < LEASE_HOLDER_MAX,
                         "a holder is a NUL-terminated string");
        if (a->ended)
            fuzz_require(strnlen(a->ended, LEASE_HOLDER_MAX) < LEASE_HOLDER_MAX,
                         "an ended holder is a NUL-terminated string");
        break;
    case LEASE_ERROR:
        break;
    case LEASE_RESIGN_ASKED:
        fuzz_require(m->term_open && a->epoch == m->acquired_epoch,
                     "a resign request is announced only for the term held");
        break;
    case LEASE_SEND_PREFER:
        fuzz_require(!m->term_open && !m->observer, "only a follower asks for a handover");
        fuzz_require(a->holder && a->holder[0] && a->epoch, "a request names a term");
        break;
    case LEASE_STOPPED:
        fuzz_require(m->stop_called, "STOPPED only after lease_stop");
        fuzz_require(!m->stopped, "STOPPED once per campaign");
        fuzz_require(!m->in_flight && !m->term_open && !m->service_running,
                     "STOPPED with nothing in flight and no service running");
        m->stopped = true;
        break;
    default:
        fuzz_require(false, "an action has a known kind");
    }
}

/* The invariants that hold between inputs. */
static void check_state(const model *m, const lease *l)
{
    uint64_t now = m->now_ms;
    lease_state s = lease_get_state(l);
    fuzz_require((s == LEASE_LEADER) == m->term_open, "LEADER exactly while a term is open");
    if (s == LEASE_LEADER)
        fuzz_require(lease_is_leader(l, now), "a LEADER after an input leads at that instant");
    if (lease_is_leader(l, now)) {
        uint64_t bound = m->success_sent_ms + m->cfg.lease_ms - drift_ms(&m->cfg);
        fuzz_require(m->success && now < bound, "the safety rule");
        fuzz_require(lease_valid_until(l) <= bound, "valid_until within the safety rule");
    }
    if (s == LEASE_DRAINING)
        fuzz_require(m->service_running || m->in_flight,
                     "DRAINING while the service stops or a command is answered");
    if (m->stopped)
        fuzz_require(s == LEASE_IDLE, "IDLE after STOPPED");
    fuzz_require(lease_wake_at(l) > now, "the next wake-up is in the future");
}

/* A reply to the command in flight (same seq, same kind) frees the slot;
 * one that tells of success moves the safety rule's T. */
static void note_reply(model *m, lease_action_kind kind, uint32_t seq, bool success)
{
    if (!m->in_flight || seq != m->in_flight_seq || kind != m->in_flight_kind)
        return;
    m->in_flight = false;
    if (success) {
        m->success = true;
        m->success_sent_ms = m->in_flight_sent_ms;
    }
}

/* Decodes one input, feeds it to the lease and checks the result.  Returns
 * false when the bytes have run out. */
static bool step(input *in, model *m, lease *l)
{
    if (in->n == 0)
        return false;
    uint8_t op = u8(in);
    uint64_t now = advance_time(in, l, m->now_ms);
    m->now_ms = now;
    m->acquired = false;
    char *holder_buf = NULL;
    lease_reply r = {0};
    uint32_t seq;
    switch (op % 16) {
    case 0:
        if (lease_get_state(l) != LEASE_IDLE) {
            /* lease_start ignores a running campaign without running its
             * timers (wake_at would stay in the past): a caller starts once,
             * so this input is a tick. */
            lease_tick(l, now);
            break;
        }
        m->stop_called = false;
        m->stopped = false;
        if (m->observer)
            lease_observe(l, now);
        else
            lease_start(l, now);
        break;
    case 1:
        m->connected = true;
        lease_on_connected(l, now);
        break;
    case 2:
        m->connected = false;
        m->in_flight = false;
        lease_on_disconnected(l, now, op & 0x10);
        break;
    case 3:
        seq = decode_seq(in, m);
        r.result = u8(in) % 5; /* acquired, held, failed, quarantined, or anything */
        if (r.result == 4)
            r.result = (int8_t)u8(in);
        r.epoch = decode_epoch(in, m->last_seq);
        r.pttl_ms = (int16_t)(u8(in) << 8 | u8(in));
        holder_buf = decode_holder(in, &r.holder, &r.holder_len);
        r.error = decode_error(in);
        if (m->in_flight && seq == m->in_flight_seq && m->in_flight_kind == LEASE_SEND_ACQUIRE &&
            r.result == LEASE_ACQUIRED) {
            m->acquired = true;
            m->acquired_epoch = r.epoch;
        }
        note_reply(m, LEASE_SEND_ACQUIRE, seq, r.result == LEASE_ACQUIRED);
        lease_on_acquire(l, now, seq, &r);
        break;
    case 4:
        seq = decode_seq(in, m);
        r.result = u8(in) % 5;
        if (r.result == 4)
            r.result = (int8_t)u8(in);
        holder_buf = decode_holder(in, &r.holder, &r.holder_len);
        r.epoch = decode_epoch(in, m->last_seq);
        r.error = decode_error(in);
        if (op & 0x20) /* Redis's TIME: steps forward and back as the bytes say */
            r.redis_time_us = 1700000000000000ull + (uint64_t)(u8(in) << 8 | u8(in)) * 10000u;
        note_reply(m, LEASE_SEND_RENEW, seq, r.result == LEASE_RENEWED);
        lease_on_renew(l, now, seq, &r);
        break;
    case 5:
        seq = decode_seq(in, m);
        r.result = (int8_t)u8(in) % 3;
        if (r.result < 0)
            r.result = decode_error(in);
        note_reply(m, LEASE_SEND_RELEASE, seq, false);
        lease_on_release(l, now, seq, &r);
        break;
    case 6:
        seq = decode_seq(in, m);
        r.result = u8(in) % 4;
        if (r.result == 3)
            r.result = (int8_t)u8(in);
        holder_buf = decode_holder(in, &r.holder, &r.holder_len);
        r.epoch = decode_epoch(in, m->last_seq);
        r.pttl_ms = (int16_t)(u8(in) << 8 | u8(in));
        r.error = decode_error(in);
        note_reply(m, LEASE_SEND_QUERY, seq, false);
        lease_on_query(l, now, seq, &r);
        break;
    case 7: {
        const char *token;
        size_t len;
        holder_buf = decode_holder(in, &token, &len);
        uint64_t epoch = decode_epoch(in, m->last_seq);
        if (op & 0x40) { /* a preferred leader's request: prefer or handover */
            const char *other;
            size_t other_len;
            char *other_buf = decode_holder(in, &other, &other_len);
            lease_request req = {.handover = op & 0x10,
                                 .epoch = epoch,
                                 .holder = token ? token : "",
                                 .holder_len = len,
                                 .priority = u8(in) % 4,
                                 .other = other ? other : "",
                                 .other_len = other_len};
            lease_on_request(l, now, &req);
            free(other_buf);
            break;
        }
        lease_on_event(l, now,
                       op & 0x20   ? LEASE_EVENT_RESIGN
                       : op & 0x10 ? LEASE_EVENT_RELEASED
                                   : LEASE_EVENT_ELECTED,
                       token ? token : "", len, epoch);
        break;
    }
    case 8:
        lease_tick(l, now);
        break;
    case 9: /* a permanent error met outside the replies, or a resume */
        if (op & 0x10)
            lease_halt(l, now, op & 0x20 ? LEASEHOLD_ENOPERM : LEASEHOLD_EAUTH);
        else
            lease_resume(l, now);
        break;
    case 10:
        lease_resign(l, now);
        break;
    case 11:
        m->stop_called = true;
        lease_stop(l, now);
        break;
    case 12:
    case 13:
        if (!m->service_running && lease_get_state(l) == LEASE_LEADER) {
            /* Outside the contract (the client calls these only after
             * REVOKED): the term is checked first, so at the instant it
             * ends the call would count as the stop of the service it has
             * just revoked.  Stray calls in other states are fed. */
            lease_tick(l, now);
            break;
        }
        m->service_running = false;
        if (op % 16 == 12)
            lease_service_stopped(l, now);
        else
            lease_service_abandoned(l, now);
        break;
    case 14: {
        uint8_t b = u8(in);
        m->gate_ms = b < 0x40 ? 0 : b < 0x80 ? UINT64_MAX : now + (uint64_t)(b - 0x80) * 50;
        lease_gate_claims(l, now, m->gate_ms);
        break;
    }
    default: { /* straight to the next timer */
        uint64_t wake = lease_wake_at(l);
        if (wake != UINT64_MAX && wake > now)
            m->now_ms = now = wake;
        lease_tick(l, now);
        break;
    }
    }
    free(holder_buf);

    lease_action a;
    while (lease_next_action(l, &a))
        check_action(m, &a);
    check_state(m, l);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    model m = {0};
    m.cfg = decode_config(&in);
    m.observer = u8(&in) & 1;
    uint64_t seed = u64(&in);
    m.now_ms = (uint64_t)u8(&in) * 1000;
    lease l;
    lease_init(&l, &m.cfg, TOKEN, seed);
    while (step(&in, &m, &l))
        ;
    return 0;
}
