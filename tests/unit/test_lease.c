/* test_lease.c — the election state machine, transition by transition.
 *
 * Each scenario is a table of inputs; after each input the driver renders
 * the actions it produced as text ("changed(me/1,7) elected(7)") and checks
 * them, the state, lease_is_leader(now) and, where given, valid_until and
 * lease_wake_at().  After every input the driver also checks that
 * lease_wake_at() is in the future, so the caller's loop cannot spin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lease.h"

enum input {
    START,
    CONNECTED,
    DISC_PEER,    /* lease_on_disconnected(by_peer = true) */
    DISC_TIMEOUT, /* lease_on_disconnected(by_peer = false) */
    ACQ_OK,
    ACQ_HELD,
    ACQ_FAILED,
    RENEWED,
    RENEW_HELD,
    RENEW_MISSING,
    RENEW_FAILED,
    RELEASED,
    TICK,
    RESIGN,
    STOP,
    SERVICE_STOPPED,
    SERVICE_ABANDONED, /* lease_service_abandoned() */
    GATE,              /* lease_gate_claims(.epoch as the instant; 0: UINT64_MAX) */
    OBSERVE,           /* lease_observe() */
    QUERY_HELD,        /* lease_on_query(LEASE_QUERY_HELD) */
    QUERY_FREE,        /* lease_on_query(LEASE_QUERY_FREE) */
    EV_ELECTED,        /* lease_on_event(LEASE_EVENT_ELECTED, holder, epoch) */
    EV_RELEASED,       /* lease_on_event(LEASE_EVENT_RELEASED, holder, epoch) */
    CHECK,             /* no input: only lease_is_leader(now) is checked */
    HALT,              /* lease_halt(.result) */
    RESUME,            /* lease_resume() */
};

#define AT_WAKE UINT64_MAX /* step.now: the instant lease_wake_at() named */
#define NO_WAKE UINT64_MAX /* step.wake: lease_wake_at() is UINT64_MAX */
#define NO_TTL  (-1)       /* step.pttl: the key has no TTL */

typedef struct step {
    enum input in;
    uint64_t now;
    const char *expect; /* the actions, rendered; NULL for CHECK */
    lease_state state;
    const char *holder;          /* ACQ_HELD, RENEW_HELD, QUERY_HELD, EV_* */
    int64_t pttl;                /* ACQ_HELD, QUERY_HELD: the key's PTTL; 0: a lease's 2000;
                                    NO_TTL: -1 (none) */
    uint64_t epoch;              /* ACQ_OK, ACQ_HELD, RENEW_HELD */
    int result;                  /* RELEASED: 1, 0 or an error; *_FAILED: the error */
    uint32_t stale;              /* replies: answer the command sent this many sends ago */
    bool leader;                 /* lease_is_leader(now) after the input */
    uint64_t valid_until;        /* when nonzero: lease_valid_until() */
    uint64_t hold_until;         /* when nonzero: lease_hold_until() */
    uint64_t wake;               /* when nonzero: lease_wake_at() exactly */
    uint64_t wake_min, wake_max; /* when wake_max is nonzero: lease_wake_at() within */
} step;

typedef struct scenario {
    const char *name;
    const step *steps;
    size_t n;
} scenario;

static const lease_config cfg = {.lease_ms = 2000,
                                 .renew_interval_ms = 300,
                                 .retry_interval_ms = 1000,
                                 .renew_deadline_ms = 1500,
                                 .stop_timeout_ms = 1000,
                                 .drift_ppm = 10000};

/* drift = 2000/100 + 2 = 22: a command sent at s is ours until s + 1978. */

/* Renders the actions of the last input; *last_seq becomes the seq of the
 * last SEND among them, as the caller would remember it. */
static void render(lease *l, char *out, size_t size, uint32_t *last_seq)
{
    lease_action a;
    size_t len = 0;
    out[0] = '\0';
    while (lease_next_action(l, &a)) {
        char one[LEASE_HOLDER_MAX + 64];
        if (a.kind == LEASE_SEND_ACQUIRE || a.kind == LEASE_SEND_RENEW ||
            a.kind == LEASE_SEND_RELEASE || a.kind == LEASE_SEND_QUERY)
            *last_seq = a.seq;
        switch (a.kind) {
        case LEASE_SEND_ACQUIRE:
            snprintf(one, sizeof one, "acquire");
            break;
        case LEASE_SEND_RENEW:
            snprintf(one, sizeof one, "renew");
            break;
        case LEASE_SEND_RELEASE:
            snprintf(one, sizeof one, "release(%llu)", (unsigned long long)a.epoch);
            break;
        case LEASE_SEND_QUERY:
            snprintf(one, sizeof one, "query");
            break;
        case LEASE_ELECTED:
            snprintf(one, sizeof one, "elected(%llu)", (unsigned long long)a.epoch);
            break;
        case LEASE_REVOKED:
            snprintf(one, sizeof one, "revoked(%s)", leasehold_reason_name(a.reason));
            break;
        case LEASE_LEADER_CHANGED:
            if (a.holder)
                snprintf(one, sizeof one, "changed(%s,%llu)", a.holder,
                         (unsigned long long)a.epoch);
            else
                snprintf(one, sizeof one, "changed(-:%s:%s)", leasehold_change_name(a.change),
                         a.ended && a.ended[0] ? a.ended : "?");
            break;
        case LEASE_ERROR:
            snprintf(one, sizeof one, "error(%s)", leasehold_errname(a.error));
            break;
        case LEASE_STOPPED:
            snprintf(one, sizeof one, "stopped");
            break;
        case LEASE_RESIGN_ASKED:
            snprintf(one, sizeof one, "resign_asked(%llu)", (unsigned long long)a.epoch);
            break;
        case LEASE_SEND_PREFER:
            snprintf(one, sizeof one, "prefer(%s,%llu)", a.holder, (unsigned long long)a.epoch);
            break;
        }
        len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "", one);
        assert_true(len < size);
    }
}

/* Feeds one input; replies answer the command sent s->stale sends before
 * the last one, whose seq is last_seq. */
static void feed(lease *l, const step *s, uint64_t now, uint32_t last_seq)
{
    lease_reply r = {0};
    uint32_t seq = last_seq - s->stale;
    if (s->holder) {
        r.holder = s->holder;
        r.holder_len = strlen(s->holder);
    }
    r.epoch = s->epoch;
    r.pttl_ms = s->pttl == NO_TTL ? -1 : s->pttl ? s->pttl : 2000;
    switch (s->in) {
    case START:
        lease_start(l, now);
        break;
    case CONNECTED:
        lease_on_connected(l, now);
        break;
    case DISC_PEER:
    case DISC_TIMEOUT:
        lease_on_disconnected(l, now, s->in == DISC_PEER);
        break;
    case ACQ_OK:
    case ACQ_HELD:
    case ACQ_FAILED:
        r.result = s->in == ACQ_OK     ? LEASE_ACQUIRED
                   : s->in == ACQ_HELD ? LEASE_ACQUIRE_HELD
                                       : LEASE_ACQUIRE_FAILED;
        r.error = s->result;
        lease_on_acquire(l, now, seq, &r);
        break;
    case RENEWED:
    case RENEW_HELD:
    case RENEW_MISSING:
    case RENEW_FAILED:
        r.result = s->in == RENEWED         ? LEASE_RENEWED
                   : s->in == RENEW_HELD    ? LEASE_RENEW_HELD
                   : s->in == RENEW_MISSING ? LEASE_RENEW_MISSING
                                            : LEASE_RENEW_FAILED;
        r.error = s->result;
        lease_on_renew(l, now, seq, &r);
        break;
    case RELEASED:
        r.result = s->result;
        lease_on_release(l, now, seq, &r);
        break;
    case TICK:
        lease_tick(l, now);
        break;
    case RESIGN:
        lease_resign(l, now);
        break;
    case STOP:
        lease_stop(l, now);
        break;
    case SERVICE_STOPPED:
        lease_service_stopped(l, now);
        break;
    case SERVICE_ABANDONED:
        lease_service_abandoned(l, now);
        break;
    case GATE:
        lease_gate_claims(l, now, s->epoch ? s->epoch : UINT64_MAX);
        break;
    case OBSERVE:
        lease_observe(l, now);
        break;
    case QUERY_HELD:
    case QUERY_FREE:
        r.result = s->in == QUERY_HELD ? LEASE_QUERY_HELD : LEASE_QUERY_FREE;
        lease_on_query(l, now, seq, &r);
        break;
    case EV_ELECTED:
    case EV_RELEASED:
        lease_on_event(l, now, s->in == EV_ELECTED ? LEASE_EVENT_ELECTED : LEASE_EVENT_RELEASED,
                       s->holder, strlen(s->holder), s->epoch);
        break;
    case HALT:
        lease_halt(l, now, s->result);
        break;
    case RESUME:
        lease_resume(l, now);
        break;
    case CHECK:
        break;
    }
}

static void run_scenario(void **state)
{
    const scenario *sc = *state;
    lease l;
    uint32_t last_seq = 0;
    lease_init(&l, &cfg, "me/1", 42);
    for (size_t i = 0; i < sc->n; i++) {
        const step *s = &sc->steps[i];
        uint64_t now = s->now == AT_WAKE ? lease_wake_at(&l) : s->now;
        char got[1024];
        feed(&l, s, now, last_seq);
        if (s->in == CHECK) {
            if (lease_is_leader(&l, now) != s->leader)
                fail_msg("%s, step %zu: is_leader(%llu) should be %d", sc->name, i,
                         (unsigned long long)now, s->leader);
            continue;
        }
        render(&l, got, sizeof got, &last_seq);
        if (strcmp(got, s->expect) != 0)
            fail_msg("%s, step %zu at %llu: actions \"%s\", expected \"%s\"", sc->name, i,
                     (unsigned long long)now, got, s->expect);
        if (lease_get_state(&l) != s->state)
            fail_msg("%s, step %zu: state %s, expected %s", sc->name, i,
                     lease_state_name(lease_get_state(&l)), lease_state_name(s->state));
        if (lease_is_leader(&l, now) != s->leader)
            fail_msg("%s, step %zu: is_leader should be %d", sc->name, i, s->leader);
        uint64_t wake = lease_wake_at(&l);
        if (wake <= now)
            fail_msg("%s, step %zu at %llu: wake_at %llu is not in the future", sc->name, i,
                     (unsigned long long)now, (unsigned long long)wake);
        if (s->valid_until && lease_valid_until(&l) != s->valid_until)
            fail_msg("%s, step %zu: valid_until %llu, expected %llu", sc->name, i,
                     (unsigned long long)lease_valid_until(&l), (unsigned long long)s->valid_until);
        if (s->hold_until && lease_hold_until(&l) != s->hold_until)
            fail_msg("%s, step %zu: hold_until %llu, expected %llu", sc->name, i,
                     (unsigned long long)lease_hold_until(&l), (unsigned long long)s->hold_until);
        if (s->wake && wake != s->wake)
            fail_msg("%s, step %zu: wake_at %llu, expected %llu", sc->name, i,
                     (unsigned long long)wake, (unsigned long long)s->wake);
        if (s->wake_max && (wake < s->wake_min || wake > s->wake_max))
            fail_msg("%s, step %zu: wake_at %llu, expected within [%llu, %llu]", sc->name, i,
                     (unsigned long long)wake, (unsigned long long)s->wake_min,
                     (unsigned long long)s->wake_max);
    }
}

/* Elected at 1010 for a claim sent at 1000: valid until 2978, renew at 1300,
 * deadline at 2500. */
#define ELECT                                                                                      \
    {START, 1000, "", LEASE_FOLLOWER, .wake = NO_WAKE},                                            \
        {CONNECTED, 1000, "acquire", LEASE_CLAIMING, .wake = NO_WAKE},                             \
    {                                                                                              \
        ACQ_OK, 1010, "changed(me/1,7) elected(7)", LEASE_LEADER,                                  \
            .epoch = 7, .leader = true, .valid_until = 2978, .wake = 1300                          \
    }

static const step renewals[] = {
    ELECT,
    {TICK, 1299, "", LEASE_LEADER, .leader = true, .wake = 1300},
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true, .wake = 2500},
    {RENEWED, 1320, "", LEASE_LEADER, .leader = true, .valid_until = 3278, .wake = 1600},
    {TICK, AT_WAKE, "renew", LEASE_LEADER, .leader = true, .wake = 2800},
    {RENEWED, 1610, "", LEASE_LEADER, .leader = true, .valid_until = 3578, .wake = 1900},
};

static const step renew_errors_then_deadline[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEW_FAILED, 1310, "error(LEASEHOLD_EREDIS)", LEASE_LEADER, .result = LEASEHOLD_EREDIS,
     .leader = true, .valid_until = 2978, .wake = 1600},
    {TICK, 1600, "renew", LEASE_LEADER, .leader = true, .wake = 2500},
    {DISC_TIMEOUT, 1850, "", LEASE_LEADER, .leader = true, .wake = 2500},
    {TICK, 1900, "", LEASE_LEADER, .leader = true, .wake = 2500},
    {CONNECTED, 2000, "renew", LEASE_LEADER, .leader = true, .wake = 2500},
    {TICK, 2499, "", LEASE_LEADER, .leader = true, .wake = 2500},
    {TICK, 2500, "revoked(renew deadline passed)", LEASE_DRAINING, .wake = NO_WAKE},
    /* the renew sent at 2000 comes back: it only frees the slot */
    {RENEWED, 2510, "", LEASE_DRAINING},
    {SERVICE_STOPPED, 2600, "release(7)", LEASE_RELEASING},
    {RELEASED, 2610, "changed(-:released:me/1)", LEASE_FOLLOWER, .result = 1, .wake_min = 3360,
     .wake_max = 3610},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
};

static const step drain_waits_for_renew_in_flight[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RESIGN, 1310, "revoked(resigned)", LEASE_DRAINING},
    {SERVICE_STOPPED, 1320, "", LEASE_DRAINING},
    {RENEWED, 1330, "release(7)", LEASE_RELEASING},
    {RELEASED, 1340, "changed(-:released:me/1)", LEASE_FOLLOWER, .result = 1, .wake = 2340},
};

static const step renew_held_by_another[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEW_HELD, 1310, "revoked(lost) changed(other/0000000000000002,9)", LEASE_DRAINING,
     .holder = "other/0000000000000002", .epoch = 9},
    {SERVICE_STOPPED, 1400, "", LEASE_FOLLOWER, .wake_min = 2150, .wake_max = 2400},
};

static const step renew_missing[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEW_MISSING, 1310, "revoked(expired) changed(-:expired:me/1)", LEASE_DRAINING},
    {SERVICE_STOPPED, 1400, "", LEASE_FOLLOWER, .wake_min = 2150, .wake_max = 2400},
};

static const step renew_wrongtype[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEW_FAILED, 1310, "revoked(halted) error(LEASEHOLD_EWRONGTYPE)", LEASE_DRAINING,
     .result = LEASEHOLD_EWRONGTYPE, .hold_until = 1310},
    /* halted: no release, no claim, nothing to wake for */
    {SERVICE_STOPPED, 1400, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {TICK, 5000, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {RESUME, 6000, "acquire", LEASE_CLAIMING},
};

static const step stale_replies_ignored[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    /* the acquire's seq, answered again */
    {RENEWED, 1305, "", LEASE_LEADER, .stale = 1, .leader = true, .valid_until = 2978},
    /* the right seq, the wrong kind of reply */
    {ACQ_OK, 1306, "", LEASE_LEADER, .epoch = 8, .leader = true, .valid_until = 2978},
    {RELEASED, 1307, "", LEASE_LEADER, .result = 1, .leader = true, .valid_until = 2978},
    {RENEW_MISSING, 1308, "", LEASE_LEADER, .stale = 1, .leader = true},
    {RENEWED, 1320, "", LEASE_LEADER, .leader = true, .valid_until = 3278},
    /* the same reply twice */
    {RENEW_MISSING, 1330, "", LEASE_LEADER, .leader = true, .valid_until = 3278},
};

static const step reply_dropped_by_disconnect_is_stale[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {DISC_TIMEOUT, 1100, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {ACQ_OK, 1110, "", LEASE_FOLLOWER, .epoch = 7},
    /* the claim may have won: it is retried at once */
    {CONNECTED, 1200, "acquire", LEASE_CLAIMING},
};

static const step slow_acquire_past_valid_until[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 2978, "release(7)", LEASE_RELEASING, .epoch = 7},
    {RELEASED, 2990, "changed(-:released:?)", LEASE_FOLLOWER, .result = 1, .wake_min = 3740,
     .wake_max = 3990},
};

/* A reply later than the renew deadline is no term either: it would be
 * revoked in the same breath. */
static const step slow_acquire_past_deadline[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 2500, "release(7)", LEASE_RELEASING, .epoch = 7},
    {RELEASED, 2510, "changed(-:released:?)", LEASE_FOLLOWER, .result = 1},
};

static const step slow_acquire_just_in_time[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    /* the renew due at 1300 goes at once */
    {ACQ_OK, 2499, "changed(me/1,7) elected(7) renew", LEASE_LEADER, .epoch = 7, .leader = true,
     .valid_until = 2978, .wake = 2500},
    {TICK, 2500, "revoked(renew deadline passed)", LEASE_DRAINING},
};

static const step stop_while_claiming_wins[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {STOP, 1005, "", LEASE_CLAIMING},
    {ACQ_OK, 1010, "release(7)", LEASE_RELEASING, .epoch = 7},
    {RELEASED, 1020, "changed(-:released:?) stopped", LEASE_IDLE, .result = 1, .wake = NO_WAKE},
    {STOP, 1030, "", LEASE_IDLE},
    {TICK, 5000, "", LEASE_IDLE},
    {CONNECTED, 5000, "", LEASE_IDLE},
};

static const step stop_while_claiming_held[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {STOP, 1005, "", LEASE_CLAIMING},
    {STOP, 1006, "", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5) stopped", LEASE_IDLE,
     .holder = "other/0000000000000002", .epoch = 5},
};

static const step stop_while_claiming_disconnected[] = {
    {START, 1000, "", LEASE_FOLLOWER}, {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {STOP, 1005, "", LEASE_CLAIMING},  {DISC_TIMEOUT, 1255, "stopped", LEASE_IDLE},
    {CONNECTED, 1300, "", LEASE_IDLE},
};

/* Our own token with an epoch the key's epoch no longer matches (the epoch
 * key was evicted): the release finds nothing to do, and the follower waits
 * instead of releasing and claiming in a loop. */
static const step own_token_release_refused[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "release(0)", LEASE_RELEASING, .holder = "me/1"},
    {RELEASED, 1020, "", LEASE_FOLLOWER, .result = 0, .wake_min = 1770, .wake_max = 2020},
};

static const step own_token_seen_as_holder[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "release(6)", LEASE_RELEASING, .holder = "me/1", .epoch = 6},
    {RELEASED, 1020, "changed(-:released:?) acquire", LEASE_CLAIMING, .result = 1},
    {ACQ_OK, 1030, "changed(me/1,8) elected(8)", LEASE_LEADER, .epoch = 8, .leader = true,
     .valid_until = 1020 + 1978},
};

static const step paused_past_valid_until[] = {
    ELECT,
    /* no input between 1010 and 2978: the process was stopped */
    {CHECK, 2977, NULL, .leader = true},
    {CHECK, 2978, NULL, .leader = false},
    {TICK, 2978, "revoked(expired)", LEASE_DRAINING, .valid_until = 0},
    {SERVICE_STOPPED, 2990, "", LEASE_FOLLOWER},
};

static const step reply_after_pause_is_no_renewal[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEWED, 3000, "revoked(expired)", LEASE_DRAINING},
    {SERVICE_STOPPED, 3010, "", LEASE_FOLLOWER},
};

static const step disconnect_by_peer[] = {
    ELECT,
    {DISC_PEER, 1100, "revoked(disconnected)", LEASE_DRAINING, .wake = NO_WAKE},
    /* not connected: nothing to release */
    {SERVICE_STOPPED, 1200, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {CONNECTED, 1300, "", LEASE_FOLLOWER, .wake_min = 1950, .wake_max = 2200},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
};

static const step disconnect_by_peer_reconnected_then_released[] = {
    ELECT,
    {DISC_PEER, 1100, "revoked(disconnected)", LEASE_DRAINING},
    {CONNECTED, 1150, "", LEASE_DRAINING},
    {SERVICE_STOPPED, 1200, "release(7)", LEASE_RELEASING},
    {RELEASED, 1210, "", LEASE_FOLLOWER, .result = 0, .wake_min = 1960, .wake_max = 2210},
};

static const step disconnect_timeout_keeps_leader[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {DISC_TIMEOUT, 1550, "", LEASE_LEADER, .leader = true, .valid_until = 2978, .wake = 2500},
    {CONNECTED, 1560, "renew", LEASE_LEADER, .leader = true},
    {RENEWED, 1570, "", LEASE_LEADER, .leader = true, .valid_until = 1560 + 1978, .wake = 1860},
};

static const step never_two_renews_in_flight[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {TICK, 1600, "", LEASE_LEADER, .leader = true, .wake = 2500},
    /* the renew due at 1600 goes as soon as the slot is free */
    {RENEWED, 1650, "renew", LEASE_LEADER, .leader = true, .valid_until = 3278, .wake = 2800},
};

static const step resign_as_leader[] = {
    ELECT,
    {RESIGN, 1100, "revoked(resigned)", LEASE_DRAINING, .valid_until = 0},
    {RESIGN, 1150, "", LEASE_DRAINING},
    {SERVICE_STOPPED, 1200, "release(7)", LEASE_RELEASING},
    /* the next claim waits a whole retry interval, so another is preferred */
    {RELEASED, 1210, "changed(-:released:me/1)", LEASE_FOLLOWER, .result = 1, .wake = 2210},
    {TICK, 2209, "", LEASE_FOLLOWER},
    {TICK, 2210, "acquire", LEASE_CLAIMING},
};

/* A resigning leader keeps its key renewed (while no longer leader) until
 * its service has stopped, for stop_timeout_ms at most, then releases it:
 * the service and a successor never overlap. */
static const step resign_holds_key_while_service_stops[] = {
    ELECT,
    {RESIGN, 1100, "revoked(resigned)", LEASE_DRAINING, .hold_until = 2978, .wake = 1300},
    {TICK, 1300, "renew", LEASE_DRAINING, .wake = NO_WAKE},
    {RENEWED, 1310, "", LEASE_DRAINING, .hold_until = 3278, .wake = 1600},
    {TICK, 1600, "renew", LEASE_DRAINING},
    {RENEWED, 1605, "", LEASE_DRAINING, .hold_until = 3578, .wake = 1900},
    {TICK, 1900, "renew", LEASE_DRAINING},
    {RENEWED, 1905, "", LEASE_DRAINING, .hold_until = 3878, .wake = 2200},
    /* stop_timeout_ms (1000) after the resign: renewing ends, the key lapses */
    {TICK, 2200, "", LEASE_DRAINING, .hold_until = 3878, .wake = NO_WAKE},
    {SERVICE_STOPPED, 2500, "release(7)", LEASE_RELEASING},
    {RELEASED, 2510, "changed(-:released:me/1)", LEASE_FOLLOWER, .result = 1, .wake = 3510},
};

/* A renewal that finds the key gone ends the holding at once. */
static const step resign_hold_ends_when_key_lost[] = {
    ELECT,
    {RESIGN, 1100, "revoked(resigned)", LEASE_DRAINING, .wake = 1300},
    {TICK, 1300, "renew", LEASE_DRAINING},
    {RENEW_MISSING, 1310, "", LEASE_DRAINING, .wake = NO_WAKE},
};

/* A resign while a claim is in flight: if the claim wins, the key is given
 * back without a term, and the next claim waits a retry interval. */
static const step resign_while_claiming[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {RESIGN, 1005, "", LEASE_CLAIMING},
    {ACQ_OK, 1010, "release(7)", LEASE_RELEASING, .epoch = 7},
    {RELEASED, 1020, "changed(-:released:?)", LEASE_FOLLOWER, .result = 1, .wake = 2020},
};

/* A service that was abandoned still runs: no release, the key lapses. */
static const step abandoned_service_keeps_key_unreleased[] = {
    ELECT,
    {DISC_PEER, 1100, "revoked(disconnected)", LEASE_DRAINING},
    {CONNECTED, 1150, "", LEASE_DRAINING},
    {SERVICE_ABANDONED, 1200, "", LEASE_FOLLOWER, .wake_min = 1950, .wake_max = 2200},
    /* its own key, of that term, is seen again: still not released */
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 2210, "", LEASE_FOLLOWER, .holder = "me/1", .epoch = 7, .pttl = 700,
     .wake_min = 2911, .wake_max = 2916},
};

static const step resign_as_follower[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {RESIGN, 1005, "", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5, .wake_min = 1760, .wake_max = 2010},
    {RESIGN, 1500, "", LEASE_FOLLOWER, .wake = 2500},
};

static const step stop_as_leader[] = {
    ELECT,
    {STOP, 1100, "revoked(resigned)", LEASE_DRAINING},
    {STOP, 1150, "", LEASE_DRAINING},
    {SERVICE_STOPPED, 1200, "release(7)", LEASE_RELEASING},
    {RELEASED, 1210, "changed(-:released:me/1) stopped", LEASE_IDLE, .result = 1},
    {STOP, 1220, "", LEASE_IDLE},
};

static const step stop_while_draining_after_loss[] = {
    ELECT,
    {TICK, 1300, "renew", LEASE_LEADER, .leader = true},
    {RENEW_HELD, 1310, "revoked(lost) changed(other/0000000000000002,9)", LEASE_DRAINING,
     .holder = "other/0000000000000002", .epoch = 9},
    {STOP, 1320, "", LEASE_DRAINING},
    {SERVICE_STOPPED, 1400, "stopped", LEASE_IDLE},
};

static const step stop_while_releasing_disconnected[] = {
    ELECT,
    {STOP, 1100, "revoked(resigned)", LEASE_DRAINING},
    {SERVICE_STOPPED, 1200, "release(7)", LEASE_RELEASING},
    {DISC_PEER, 1210, "stopped", LEASE_IDLE},
    {RELEASED, 1220, "", LEASE_IDLE, .result = 1},
};

static const step stop_as_follower_and_idle[] = {
    {STOP, 900, "stopped", LEASE_IDLE}, {STOP, 950, "", LEASE_IDLE},
    {START, 1000, "", LEASE_FOLLOWER},  {STOP, 1010, "stopped", LEASE_IDLE},
    {STOP, 1020, "", LEASE_IDLE},       {TICK, 1030, "", LEASE_IDLE},
};

/* A transient error (OOM, LOADING, BUSY...): claimed again a retry
 * interval later, and reported each time (the client reports a repeat only
 * at DEBUG). */
static const step acquire_failed[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_FAILED, 1010, "error(LEASEHOLD_EREDIS)", LEASE_FOLLOWER, .result = LEASEHOLD_EREDIS,
     .wake_min = 1760, .wake_max = 2010},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_FAILED, 2100, "error(LEASEHOLD_EREDIS)", LEASE_FOLLOWER, .result = LEASEHOLD_EREDIS},
};

/* A permanent error halts: reported once, then nothing is sent until
 * lease_resume(), which claims at once. */
static const step acquire_refused_halts[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_FAILED, 1010, "error(LEASEHOLD_EREADONLY)", LEASE_FOLLOWER, .result = LEASEHOLD_EREADONLY,
     .wake = NO_WAKE},
    {TICK, 9000, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {EV_RELEASED, 9100, "changed(-:released:other/0000000000000002)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5, .wake = NO_WAKE},
    {DISC_TIMEOUT, 9200, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {CONNECTED, 9300, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {RESUME, 9400, "acquire", LEASE_CLAIMING},
    {ACQ_FAILED, 9410, "error(LEASEHOLD_ENOSCRIPT)", LEASE_FOLLOWER, .result = LEASEHOLD_ENOSCRIPT,
     .wake = NO_WAKE},
    {RESUME, 9500, "acquire", LEASE_CLAIMING},
    {RESUME, 9501, "", LEASE_CLAIMING}, /* not halted: nothing */
};

/* A value with no TTL is no lease: halted (ENOTLEASE), until resumed. */
static const step no_ttl_halts[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5) error(LEASEHOLD_ENOTLEASE)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5, .pttl = NO_TTL, .wake = NO_WAKE},
    {RESUME, 2000, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 2010, "changed(me/1,7) elected(7)", LEASE_LEADER, .epoch = 7, .leader = true},
};

/* A value that is not a leasehold token, with a TTL: waited for, reported
 * once per distinct value. */
static const step foreign_value_reported_once[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(cron-job,0) error(LEASEHOLD_EFOREIGN)", LEASE_FOLLOWER,
     .holder = "cron-job", .pttl = 1900, .wake = 2010},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 2020, "", LEASE_FOLLOWER, .holder = "cron-job", .pttl = 900},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 3000, "changed(other job,0) error(LEASEHOLD_EFOREIGN)", LEASE_FOLLOWER,
     .holder = "other job", .pttl = 900},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 4000, "changed(me/1,7) elected(7)", LEASE_LEADER, .epoch = 7, .leader = true},
};

/* A permanent error met outside the replies (lease_halt) ends a term at
 * once: REVOKED before the error; the key is left to lapse. */
static const step leader_halted[] = {
    ELECT,
    {HALT, 1100, "revoked(halted) error(LEASEHOLD_ENOPERM)", LEASE_DRAINING,
     .result = LEASEHOLD_ENOPERM, .hold_until = 1100},
    {HALT, 1200, "", LEASE_DRAINING, .result = LEASEHOLD_ENOPERM},
    {SERVICE_STOPPED, 1300, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {RESUME, 1400, "acquire", LEASE_CLAIMING},
};

/* Halted while a claim is in flight: a claim that won is given back. */
static const step halted_while_claiming[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {HALT, 1005, "error(LEASEHOLD_EAUTH)", LEASE_CLAIMING, .result = LEASEHOLD_EAUTH},
    {ACQ_OK, 1010, "release(7)", LEASE_RELEASING, .epoch = 7},
    {RELEASED, 1020, "changed(-:released:?)", LEASE_FOLLOWER, .result = 1, .wake = NO_WAKE},
};

/* An observer halts too: no more reads. */
static const step observer_halts[] = {
    {OBSERVE, 1000, "", LEASE_OBSERVING},
    {CONNECTED, 1000, "query", LEASE_READING},
    {QUERY_HELD, 1010, "changed(junk,0) error(LEASEHOLD_ENOTLEASE)", LEASE_OBSERVING,
     .holder = "junk", .pttl = NO_TTL, .wake = NO_WAKE},
    {RESUME, 1100, "query", LEASE_READING},
};

static const step holder_reported_on_change_only[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 2500, "", LEASE_FOLLOWER, .holder = "other/0000000000000002", .epoch = 5},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 4000, "changed(other/0000000000000002,6)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 6},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 5500, "changed(other/0000000000000003,6)", LEASE_FOLLOWER,
     .holder = "other/0000000000000003", .epoch = 6},
};

/* A failed claim learns when the key expires: a holder that stops renewing
 * is replaced at once; a healthy one is asked again one retry interval later
 * (never sooner: that is an idle follower's whole cost). */
static const step claims_timed_by_pttl[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5, .pttl = 1900, .wake = 2010},
    {TICK, 2010, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 2012, "", LEASE_FOLLOWER, .holder = "other/0000000000000002", .epoch = 5,
     .pttl = 400, .wake_min = 2413, .wake_max = 2418},
    {TICK, AT_WAKE, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 2420, "changed(me/1,6) elected(6)", LEASE_LEADER, .epoch = 6, .leader = true},
};

/* `released` makes a follower claim at once; `elected` reports the holder;
 * neither decides anything by itself. */
static const step events_hasten_claims[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5, .pttl = 1900, .wake = 2010},
    {EV_ELECTED, 1100, "", LEASE_FOLLOWER, .holder = "other/0000000000000002", .epoch = 5,
     .wake = 2010},
    {EV_RELEASED, 1200, "changed(-:released:other/0000000000000002) acquire", LEASE_CLAIMING,
     .holder = "other/0000000000000002", .epoch = 5},
    {ACQ_HELD, 1202, "changed(other/0000000000000003,6)", LEASE_FOLLOWER,
     .holder = "other/0000000000000003", .epoch = 6, .pttl = 1999, .wake = 2202},
    /* a stale release, for a term that is over, changes nothing */
    {EV_RELEASED, 1300, "", LEASE_FOLLOWER, .holder = "other/0000000000000002", .epoch = 5,
     .wake = 2202},
};

/* A leader that hears of another's election renews at once: the key's
 * answer, not the message, ends its term. */
static const step leader_hears_another_elected[] = {
    ELECT,
    {EV_ELECTED, 1100, "changed(other/0000000000000002,9) renew", LEASE_LEADER,
     .holder = "other/0000000000000002", .epoch = 9, .leader = true},
    {RENEW_HELD, 1105, "revoked(lost)", LEASE_DRAINING, .holder = "other/0000000000000002",
     .epoch = 9},
};

/* An observer reads the key and reports every change, never claims. */
static const step observer_reports_changes[] = {
    {OBSERVE, 1000, "", LEASE_OBSERVING},
    {CONNECTED, 1000, "query", LEASE_READING},
    {QUERY_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_OBSERVING,
     .holder = "other/0000000000000002", .epoch = 5, .pttl = 300, .wake_min = 1311,
     .wake_max = 1316},
    {TICK, AT_WAKE, "query", LEASE_READING},
    {QUERY_FREE, 1320, "changed(-:expired:other/0000000000000002)", LEASE_OBSERVING, .wake = 2320},
    {EV_ELECTED, 1400, "changed(other/0000000000000003,6)", LEASE_OBSERVING,
     .holder = "other/0000000000000003", .epoch = 6},
    {EV_RELEASED, 1500, "changed(-:released:other/0000000000000003) query", LEASE_READING,
     .holder = "other/0000000000000003", .epoch = 6},
    {QUERY_FREE, 1502, "", LEASE_OBSERVING, .wake = 2502},
    {STOP, 1600, "stopped", LEASE_IDLE, .wake = NO_WAKE},
};

/* An observer's read lost with its connection is made again on the next
 * one; a stop waits for the read in flight. */
static const step observer_read_lost_then_stopped[] = {
    {OBSERVE, 1000, "", LEASE_OBSERVING},
    {CONNECTED, 1000, "query", LEASE_READING},
    {DISC_TIMEOUT, 1200, "", LEASE_OBSERVING, .wake = NO_WAKE},
    {CONNECTED, 1300, "query", LEASE_READING},
    {STOP, 1310, "", LEASE_READING, .wake = NO_WAKE},
    {QUERY_FREE, 1320, "changed(-:expired:?) stopped", LEASE_IDLE, .wake = NO_WAKE},
};

/* Replies and events come on two connections, in no fixed order: epochs
 * put them in order, and an observation older than what is known is no news. */
static const step stale_observations_ignored[] = {
    {OBSERVE, 1000, "", LEASE_OBSERVING},
    {CONNECTED, 1000, "query", LEASE_READING},
    /* the announcement of term 5 overtakes the answer to a read made before it */
    {EV_ELECTED, 1001, "changed(other/0000000000000002,5)", LEASE_READING,
     .holder = "other/0000000000000002", .epoch = 5},
    {QUERY_FREE, 1002, "", LEASE_OBSERVING, .epoch = 4},
    /* a release of an earlier term of the same token */
    {EV_RELEASED, 1003, "", LEASE_OBSERVING, .holder = "other/0000000000000002", .epoch = 3},
    {EV_RELEASED, 1004, "changed(-:released:other/0000000000000002) query", LEASE_READING,
     .holder = "other/0000000000000002", .epoch = 5},
    /* once term 5 is known over, its late announcement is no news either */
    {EV_ELECTED, 1005, "", LEASE_READING, .holder = "other/0000000000000002", .epoch = 5},
};

/* Our own announcement can arrive before the reply to our claim. */
static const step own_election_announced_first[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {EV_ELECTED, 1004, "changed(me/1,7)", LEASE_CLAIMING, .holder = "me/1", .epoch = 7},
    {ACQ_OK, 1005, "elected(7)", LEASE_LEADER, .epoch = 7, .leader = true},
};

/* A follower that resigned waits a retry interval before claiming the term
 * it gave up; a later term released by another is its chance like anyone's
 * (else candidates that all resigned lately would wait out each other). */
static const step resigned_follower_claims_a_later_release[] = {
    ELECT,
    {RESIGN, 1100, "revoked(resigned)", LEASE_DRAINING},
    {SERVICE_STOPPED, 1200, "release(7)", LEASE_RELEASING},
    {RELEASED, 1210, "changed(-:released:me/1)", LEASE_FOLLOWER, .result = 1, .wake = 2210},
    {EV_ELECTED, 1220, "changed(other/0000000000000002,8)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 8},
    {EV_RELEASED, 1300, "changed(-:released:other/0000000000000002) acquire", LEASE_CLAIMING,
     .holder = "other/0000000000000002", .epoch = 8},
};

/* The restart guard holds claims (not renewals) until the new Redis has been
 * up for the lease. */
static const step restart_guard_holds_claims[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {GATE, 1000, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {CONNECTED, 1001, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {GATE, 1005, "", LEASE_FOLLOWER, .epoch = 3005, .wake = 3005},
    {TICK, 3004, "", LEASE_FOLLOWER, .wake = 3005},
    {TICK, 3005, "acquire", LEASE_CLAIMING},
    {ACQ_OK, 3010, "changed(me/1,7) elected(7)", LEASE_LEADER, .epoch = 7, .leader = true,
     .wake = 3305},
    /* a new connection, not yet asked: the leader still renews */
    {DISC_TIMEOUT, 3100, "", LEASE_LEADER, .leader = true},
    {GATE, 3101, "", LEASE_LEADER, .leader = true},
    {CONNECTED, 3102, "renew", LEASE_LEADER, .leader = true},
};

static const step claim_due_while_disconnected[] = {
    {START, 1000, "", LEASE_FOLLOWER},
    {CONNECTED, 1000, "acquire", LEASE_CLAIMING},
    {ACQ_HELD, 1010, "changed(other/0000000000000002,5)", LEASE_FOLLOWER,
     .holder = "other/0000000000000002", .epoch = 5},
    {DISC_TIMEOUT, 1100, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {TICK, 3000, "", LEASE_FOLLOWER, .wake = NO_WAKE},
    {CONNECTED, 3000, "acquire", LEASE_CLAIMING},
};

#define SCENARIO(s)                                                                                \
    {                                                                                              \
#s, s, sizeof s / sizeof s[0]                                                              \
    }

static const scenario scenarios[] = {
    SCENARIO(renewals),
    SCENARIO(renew_errors_then_deadline),
    SCENARIO(drain_waits_for_renew_in_flight),
    SCENARIO(renew_held_by_another),
    SCENARIO(renew_missing),
    SCENARIO(renew_wrongtype),
    SCENARIO(stale_replies_ignored),
    SCENARIO(reply_dropped_by_disconnect_is_stale),
    SCENARIO(slow_acquire_past_valid_until),
    SCENARIO(slow_acquire_past_deadline),
    SCENARIO(slow_acquire_just_in_time),
    SCENARIO(stop_while_claiming_wins),
    SCENARIO(stop_while_claiming_held),
    SCENARIO(stop_while_claiming_disconnected),
    SCENARIO(own_token_seen_as_holder),
    SCENARIO(paused_past_valid_until),
    SCENARIO(reply_after_pause_is_no_renewal),
    SCENARIO(disconnect_by_peer),
    SCENARIO(disconnect_by_peer_reconnected_then_released),
    SCENARIO(disconnect_timeout_keeps_leader),
    SCENARIO(never_two_renews_in_flight),
    SCENARIO(resign_as_leader),
    SCENARIO(resign_as_follower),
    SCENARIO(stop_as_leader),
    SCENARIO(stop_while_draining_after_loss),
    SCENARIO(stop_while_releasing_disconnected),
    SCENARIO(stop_as_follower_and_idle),
    SCENARIO(acquire_failed),
    SCENARIO(acquire_refused_halts),
    SCENARIO(no_ttl_halts),
    SCENARIO(foreign_value_reported_once),
    SCENARIO(leader_halted),
    SCENARIO(halted_while_claiming),
    SCENARIO(observer_halts),
    SCENARIO(holder_reported_on_change_only),
    SCENARIO(claim_due_while_disconnected),
    SCENARIO(claims_timed_by_pttl),
    SCENARIO(own_token_release_refused),
    SCENARIO(restart_guard_holds_claims),
    SCENARIO(stale_observations_ignored),
    SCENARIO(own_election_announced_first),
    SCENARIO(resigned_follower_claims_a_later_release),
    SCENARIO(resign_holds_key_while_service_stops),
    SCENARIO(resign_hold_ends_when_key_lost),
    SCENARIO(resign_while_claiming),
    SCENARIO(abandoned_service_keeps_key_unreleased),
    SCENARIO(events_hasten_claims),
    SCENARIO(leader_hears_another_elected),
    SCENARIO(observer_reports_changes),
    SCENARIO(observer_read_lost_then_stopped),
};

/* ------------------------------------------------------------ config check */

typedef struct config_case {
    lease_config cfg;
    uint32_t command_timeout_ms;
    const char *msg; /* NULL: accepted */
} config_case;

static void test_config_check(void **state)
{
    (void)state;
    static const config_case cases[] = {
        {{2000, 300, 1000, 1500}, 250, NULL},
        {{500, 100, 250, 350}, 60, NULL},
        {{0, 300, 1000, 1500}, 250, "lease_ms must be positive, not 0"},
        {{2000, 0, 1000, 1500}, 250, "renew_interval_ms must be positive, not 0"},
        {{2000, 300, 0, 1500}, 250, "retry_interval_ms must be positive, not 0"},
        {{2000, 300, 1000, 0}, 250, "renew_deadline_ms must be positive, not 0"},
        {{2000, 300, 1000, 1500}, 0, "command_timeout_ms must be positive, not 0"},
        {{2000, 1001, 1000, 1500},
         250,
         "renew_interval_ms (1001) must be at most half of lease_ms (2000)"},
        {{2000, 300, 1000, 2500},
         250,
         "renew_deadline_ms (2500) must be below lease_ms - drift (1978)"},
        {{2000, 300, 1000, 1978},
         250,
         "renew_deadline_ms (1978) must be below lease_ms - drift (1978)"},
        {{2, 1, 1, 1}, 1, "renew_deadline_ms (1) must be below lease_ms - drift (0)"},
        {{2000, 300, 1000, 300},
         250,
         "renew_interval_ms (300) must be below renew_deadline_ms (300)"},
        {{2000, 200, 1000, 1500}, 250, NULL}, /* a renewal may outlast the interval */
        {{2000, 1000, 1000, 1200},
         700,
         "command_timeout_ms (700) must be at most half of renew_deadline_ms (1200)"},
        /* The drift allowance (the rest of the cases take 10000 ppm). */
        {{2000, 300, 1000, 1500, 0, 100000}, 250, NULL},
        {{2000, 300, 1000, 1799, 0, 100000},
         250,
         "renew_deadline_ms (1799) must be below lease_ms - drift (1798)"},
        {{2000, 300, 1000, 1500, 0, 200000}, 250, NULL},
        {{2000, 300, 1000, 1500, 0, 200001},
         250,
         "clock_drift_ppm (200001) must be 1 to 200000: no two clocks run at exactly the same "
         "rate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        leasehold_error err = {.code = 99, .msg = "stale"};
        lease_config c = cases[i].cfg;
        if (c.drift_ppm == 0)
            c.drift_ppm = 10000;
        int rc = lease_config_check(&c, cases[i].command_timeout_ms, &err);
        if (!cases[i].msg) {
            if (rc != 0)
                fail_msg("case %zu rejected: %s", i, err.msg);
            assert_int_equal(err.code, 0);
            continue;
        }
        assert_int_equal(rc, LEASEHOLD_ECONFIG);
        assert_int_equal(err.code, LEASEHOLD_ECONFIG);
        assert_string_equal(err.msg, cases[i].msg);
        assert_int_equal(lease_config_check(&c, cases[i].command_timeout_ms, NULL),
                         LEASEHOLD_ECONFIG);
    }
    lease_config zero = {2000, 300, 1000, 1500, 1000, 0, false};
    leasehold_error err;
    assert_int_equal(lease_config_check(&zero, 250, &err), LEASEHOLD_ECONFIG);
    assert_non_null(strstr(err.msg, "clock_drift_ppm (0) must be 1 to 200000"));
}

/* ----------------------------------------------------------- event flood */

/* Drains l's actions, answers a command at once the way a healthy Redis
 * held by "real/1" (epoch 5) would, and returns the commands sent. */
static int answer_all(lease *l, uint64_t now)
{
    int sent = 0;
    lease_action a;
    while (lease_next_action(l, &a)) {
        lease_reply r = {.holder = "real/1", .holder_len = 6, .epoch = 5, .pttl_ms = 1900};
        if (a.kind == LEASE_SEND_RENEW) {
            sent++;
            r.result = LEASE_RENEWED;
            lease_on_renew(l, now, a.seq, &r);
        } else if (a.kind == LEASE_SEND_ACQUIRE) {
            sent++;
            r.result = LEASE_ACQUIRE_HELD;
            lease_on_acquire(l, now, a.seq, &r);
        }
    }
    return sent;
}

/*
 * Anyone may publish on {K}:events.  A flood of forged messages, one every
 * millisecond for a second, answered by Redis at once: a leader told of
 * others' elections and a follower told of releases each send at most one
 * event-hastened command per floor (lease_ms / 40 = 50 ms) besides their
 * own timers (a renewal every 300 ms; a claim per retry interval).
 */
static void test_event_flood_bounded(void **state)
{
    (void)state;
    for (int leader = 0; leader <= 1; leader++) {
        lease l;
        lease_init(&l, &cfg, "me/1", 7);
        uint64_t now = 1000;
        lease_start(&l, now);
        lease_on_connected(&l, now);
        lease_action a;
        assert_true(lease_next_action(&l, &a));
        assert_int_equal(a.kind, LEASE_SEND_ACQUIRE);
        lease_reply won = {.result = LEASE_ACQUIRED, .epoch = 7};
        lease_reply held = {.result = LEASE_ACQUIRE_HELD,
                            .holder = "real/1",
                            .holder_len = 6,
                            .epoch = 5,
                            .pttl_ms = 1900};
        lease_on_acquire(&l, now, a.seq, leader ? &won : &held);
        answer_all(&l, now);
        assert_int_equal(lease_get_state(&l), leader ? LEASE_LEADER : LEASE_FOLLOWER);

        int sent = 0;
        uint64_t end = now + 1000;
        for (uint64_t i = 1; now < end; i++) {
            now++;
            /* Pairs of "elected E forged/1", "released E forged/1", E rising. */
            uint64_t epoch = 1000 + (i + 1) / 2;
            lease_on_event(&l, now, i % 2 ? LEASE_EVENT_ELECTED : LEASE_EVENT_RELEASED, "forged/1",
                           8, epoch);
            sent += answer_all(&l, now);
            if (lease_wake_at(&l) <= now) {
                lease_tick(&l, now);
                sent += answer_all(&l, now);
            }
        }
        int bound = (int)(1000 / lease_event_floor_ms(&cfg) +
                          1000 / (leader ? cfg.renew_interval_ms : cfg.retry_interval_ms) + 2);
        if (sent > bound)
            fail_msg("%s: %d commands in a second of forged events, more than %d",
                     leader ? "leader" : "follower", sent, bound);
        assert_int_equal(lease_get_state(&l), leader ? LEASE_LEADER : LEASE_FOLLOWER);
        /* The flood did hasten: more than the timers alone would send. */
        assert_true(sent > (int)(1000 / (leader ? cfg.renew_interval_ms : cfg.retry_interval_ms)));

        /* After a quiet period the first release acts at once. */
        if (!leader) {
            for (end = now + 1000; now < end; now++) {
                lease_tick(&l, now);
                answer_all(&l, now);
            }
            lease_on_event(&l, now, LEASE_EVENT_ELECTED, "other/0000000000000003", 7, 5000);
            answer_all(&l, now);
            assert_true(lease_wake_at(&l) > now + 1); /* no claim due by its timer */
            lease_on_event(&l, now + 1, LEASE_EVENT_RELEASED, "other/0000000000000003", 7, 5000);
            bool claimed = false;
            while (lease_next_action(&l, &a))
                claimed |= a.kind == LEASE_SEND_ACQUIRE;
            assert_true(claimed);
        }
    }
}

/* ----------------------------------------------------- resign requests */

/*
 * "resign <epoch> <token>" is announced to the caller for the term it
 * names, and nothing else: another
 * epoch (a late request), another token, or a follower hearing it changes
 * nothing, and the epoch it names is not taken as news of a term.
 */
static void test_resign_request(void **state)
{
    (void)state;
    static const char me[] = "me/000000000000000a";
    lease l;
    lease_init(&l, &cfg, me, 7);
    uint64_t now = 1000;
    lease_start(&l, now);
    lease_on_connected(&l, now);
    lease_action a;
    assert_true(lease_next_action(&l, &a));
    assert_int_equal(a.kind, LEASE_SEND_ACQUIRE);
    lease_reply won = {.result = LEASE_ACQUIRED, .epoch = 7000};
    lease_on_acquire(&l, now, a.seq, &won);
    while (lease_next_action(&l, &a)) {
    }
    assert_int_equal(lease_get_state(&l), LEASE_LEADER);

    /* Not this term: ignored. */
    lease_on_event(&l, now, LEASE_EVENT_RESIGN, me, strlen(me), 6999);
    lease_on_event(&l, now, LEASE_EVENT_RESIGN, me, strlen(me), 7001);
    lease_on_event(&l, now, LEASE_EVENT_RESIGN, "other/000000000000000b", 22, 7000);
    assert_false(lease_next_action(&l, &a));
    assert_int_equal(lease_get_state(&l), LEASE_LEADER);
    assert_int_equal(lease_max_epoch_seen(&l), 7000); /* 7001 was no news */

    /* This term: announced, and nothing else; the caller's resign then
     * steps down, and releases once its service stopped. */
    lease_on_event(&l, now + 1, LEASE_EVENT_RESIGN, me, strlen(me), 7000);
    assert_true(lease_next_action(&l, &a));
    assert_int_equal(a.kind, LEASE_RESIGN_ASKED);
    assert_int_equal(a.epoch, 7000);
    assert_false(lease_next_action(&l, &a));
    assert_true(lease_is_leader(&l, now + 1));
    lease_resign(&l, now + 1);
    assert_true(lease_next_action(&l, &a));
    assert_int_equal(a.kind, LEASE_REVOKED);
    assert_int_equal(a.reason, LEASEHOLD_RESIGNED);
    assert_false(lease_is_leader(&l, now + 1));
    lease_service_stopped(&l, now + 2);
    bool released = false;
    while (lease_next_action(&l, &a))
        released |= a.kind == LEASE_SEND_RELEASE && a.epoch == 7000;
    assert_true(released);

    /* A follower ignores it too. */
    lease f;
    lease_init(&f, &cfg, "you/000000000000000c", 8);
    lease_start(&f, now);
    lease_on_connected(&f, now);
    while (lease_next_action(&f, &a)) {
    }
    lease_on_event(&f, now, LEASE_EVENT_RESIGN, "you/000000000000000c", 20, 7000);
    assert_false(lease_next_action(&f, &a));
    assert_int_equal(lease_max_epoch_seen(&f), 0);
}

/* --------------------------------------------------- the preferred leader */

/* A lease of priority prio (a standby when standby) leading the term 7000,
 * won at now (a standby: claimed a retry interval later). */
static void lead_with_priority(lease *l, uint32_t prio, bool standby, uint64_t now)
{
    lease_config c = cfg;
    c.priority = prio;
    c.standby = standby;
    c.handover_interval_ms = 1000;
    lease_init(l, &c, "me/000000000000000a", 7);
    lease_start(l, now);
    lease_on_connected(l, now);
    if (standby) { /* a standby claims a retry interval late */
        now = lease_wake_at(l);
        lease_tick(l, now);
    }
    lease_action a;
    while (lease_next_action(l, &a))
        if (a.kind == LEASE_SEND_ACQUIRE) {
            lease_reply won = {.result = LEASE_ACQUIRED, .epoch = 7000};
            lease_on_acquire(l, now, a.seq, &won);
        }
    assert_int_equal(lease_get_state(l), LEASE_LEADER);
}

/* The actions queued now, rendered, and the queue emptied. */
static void drain_into(lease *l, char *out, size_t size)
{
    uint32_t seq = 0;
    render(l, out, size, &seq);
}

/*
 * A leader hands over to a candidate of higher priority once its term has
 * lasted the handover interval (a standby at once), once per term; equal
 * or lower priorities, other terms and other holders are ignored.  A
 * follower asks a holder it learns of, again every retry interval when its
 * priority is above 1, never when it is a standby; hearing of a handover to
 * another, it holds its claims back after that term's release.
 */
static void test_preferred_leader(void **state)
{
    (void)state;
    static const char me[] = "me/000000000000000a", asker[] = "hi/000000000000000b";
    char out[512];
    lease l;
    lead_with_priority(&l, 2, false, 1000);
    lease_request ask = {.epoch = 7000,
                         .holder = me,
                         .holder_len = strlen(me),
                         .priority = 3,
                         .other = asker,
                         .other_len = strlen(asker)};
    ask.priority = 2;
    lease_on_request(&l, 1500, &ask); /* not higher */
    ask.priority = 3;
    ask.epoch = 6999;
    lease_on_request(&l, 1500, &ask); /* another term */
    ask.epoch = 7000;
    lease_on_request(&l, 1600, &ask); /* too early in the term: remembered */
    static const char best[] = "top/000000000000000d";
    lease_request top = ask;
    top.priority = 4;
    top.other = best;
    top.other_len = strlen(best);
    lease_on_request(&l, 1700, &top); /* a higher one: the one handed to */
    lease_on_request(&l, 1800, &ask);
    drain_into(&l, out, sizeof out);
    assert_null(strstr(out, "resign_asked"));
    assert_int_equal(lease_wake_at(&l) <= 2000, true);
    lease_tick(&l, 2000); /* the term has lasted the interval */
    lease_action a;
    bool handed = false;
    while (lease_next_action(&l, &a))
        if (a.kind == LEASE_RESIGN_ASKED) {
            assert_string_equal(a.holder, best);
            handed = true;
        }
    assert_true(handed);
    assert_true(lease_is_leader(&l, 2000)); /* the caller steps down, not the machine */
    lease_on_request(&l, 2100, &top);
    lease_tick(&l, 2200);
    drain_into(&l, out, sizeof out);
    assert_null(strstr(out, "resign_asked")); /* once per term */

    /* A standby hands over at once, to any priority above its own. */
    lead_with_priority(&l, 0, true, 1000);
    ask.priority = 1;
    lease_on_request(&l, 2001, &ask);
    drain_into(&l, out, sizeof out);
    assert_non_null(strstr(out, "resign_asked"));

    /* Followers: priority 2 asks at once and again; 1 once; a standby never. */
    for (uint32_t prio = 0; prio <= 2; prio++) {
        lease_config c = cfg;
        c.priority = prio;
        c.standby = prio == 0;
        c.handover_interval_ms = 4000;
        lease f;
        lease_init(&f, &c, "you/000000000000000c", 8);
        lease_start(&f, 1000);
        lease_on_connected(&f, 1000);
        uint64_t now = 1000;
        int asked = 0;
        for (; now<8000; now = lease_wake_at(&f)> now ? lease_wake_at(&f) : now + 1) {
            lease_tick(&f, now);
            while (lease_next_action(&f, &a)) {
                if (a.kind == LEASE_SEND_ACQUIRE) {
                    lease_reply held = {.result = LEASE_ACQUIRE_HELD,
                                        .holder = me,
                                        .holder_len = strlen(me),
                                        .epoch = 7000,
                                        .pttl_ms = 1900};
                    lease_on_acquire(&f, now, a.seq, &held);
                } else if (a.kind == LEASE_SEND_PREFER) {
                    assert_string_equal(a.holder, me);
                    assert_int_equal(a.epoch, 7000);
                    asked++;
                }
            }
        }
        /* 2: at once, then every retry interval (1000 ms); 1: three times */
        assert_int_equal(asked, prio == 2 ? 7 : prio == 1 ? 3 : 0);

        /* A handover to another: no claim for a retry interval after the release. */
        lease_request hand = {.handover = true,
                              .epoch = 7000,
                              .holder = me,
                              .holder_len = strlen(me),
                              .other = asker,
                              .other_len = strlen(asker)};
        lease_request forged = hand;
        forged.epoch = 9999; /* not the term it knows: no hold */
        lease_on_request(&f, now, &forged);
        assert_int_equal(f.claim_hold_ms, 0);
        lease_on_request(&f, now, &hand);
        uint64_t held = f.claim_hold_ms;
        assert_true(held >= now + cfg.lease_ms);
        lease_on_request(&f, now + 500, &hand); /* a repeat does not extend it */
        assert_int_equal(f.claim_hold_ms, held);
        lease_on_event(&f, now + 3500, LEASE_EVENT_RELEASED, me, strlen(me), 7000);
        assert_true(f.claim_hold_ms >= now + 3500 + cfg.retry_interval_ms); /* from the release */
    }
}

/* ------------------------------------------------------------------- fuzz */

static uint64_t fuzz_rng;

static uint64_t fuzz_next(void)
{
    fuzz_rng ^= fuzz_rng << 13;
    fuzz_rng ^= fuzz_rng >> 7;
    fuzz_rng ^= fuzz_rng << 17;
    return fuzz_rng;
}

/*
 * Random inputs in any order, answered at random.  After each: wake_at in
 * the future, at most one command in flight, is_leader only before the
 * bound the driver computes itself from the send time of the last
 * successful acquire or renew, STOPPED at most once per campaign, ELECTED
 * only when not already leader.
 */
static void test_fuzz(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        lease l;
        lease_init(&l, &cfg, "me/1", seed);
        fuzz_rng = seed * 0x9e3779b97f4a7c15ULL;
        uint64_t now = 1000, bound = 0;
        bool outstanding = false, started = false, stopped = false, elected = false;
        lease_action_kind kind = LEASE_SEND_ACQUIRE;
        uint32_t seq = 0;
        uint64_t sent = 0;
        for (int i = 0; i < 5000; i++) {
            now += fuzz_next() % 200;
            lease_reply r = {0};
            uint32_t answer_seq = fuzz_next() % 8 == 0 ? seq - 1 : seq;
            unsigned what = (unsigned)(fuzz_next() % 12);
            if (!started) {
                lease_init(&l, &cfg, "me/1", seed + (uint64_t)i);
                lease_start(&l, now);
                started = true;
                stopped = false;
                elected = false;
                outstanding = false;
            } else if (what <= 3 && outstanding) {
                bool ok = fuzz_next() % 4 != 0;
                if (kind == LEASE_SEND_ACQUIRE) {
                    r.result = ok ? LEASE_ACQUIRED : (int)(fuzz_next() % 3);
                    r.epoch = (uint64_t)i;
                    r.holder = fuzz_next() % 2 ? "me/1" : "other/0000000000000002";
                    r.holder_len = strlen(r.holder);
                    r.error = LEASEHOLD_EREDIS;
                    if (r.result == LEASE_ACQUIRED && answer_seq == seq && now < sent + 1978)
                        bound = sent + 1978;
                    lease_on_acquire(&l, now, answer_seq, &r);
                } else if (kind == LEASE_SEND_RENEW) {
                    r.result = ok ? LEASE_RENEWED : (int)(fuzz_next() % 4);
                    r.holder = "other/0000000000000002";
                    r.holder_len = 7;
                    r.error = fuzz_next() % 2 ? LEASEHOLD_EREDIS : LEASEHOLD_EWRONGTYPE;
                    if (r.result == LEASE_RENEWED && answer_seq == seq)
                        bound = sent + 1978;
                    lease_on_renew(&l, now, answer_seq, &r);
                } else {
                    r.result = (int)(fuzz_next() % 2);
                    lease_on_release(&l, now, answer_seq, &r);
                }
                if (answer_seq == seq)
                    outstanding = false;
            } else if (what == 4) {
                bool peer = fuzz_next() % 2;
                lease_on_disconnected(&l, now, peer);
                outstanding = false;
            } else if (what == 5) {
                lease_on_connected(&l, now);
            } else if (what == 6 && fuzz_next() % 4 == 0) {
                lease_resign(&l, now);
            } else if (what == 7 && fuzz_next() % 8 == 0) {
                lease_stop(&l, now);
            } else if (what == 8) {
                lease_service_stopped(&l, now);
            } else {
                lease_tick(&l, now);
            }
            lease_action a;
            while (lease_next_action(&l, &a)) {
                switch (a.kind) {
                case LEASE_SEND_ACQUIRE:
                case LEASE_SEND_RENEW:
                case LEASE_SEND_RELEASE:
                    if (outstanding)
                        fail_msg("seed %llu step %d: a second command in flight",
                                 (unsigned long long)seed, i);
                    outstanding = true;
                    kind = a.kind;
                    seq = a.seq;
                    sent = now;
                    break;
                case LEASE_ELECTED:
                    assert_false(elected);
                    elected = true;
                    break;
                case LEASE_REVOKED:
                    assert_true(elected);
                    elected = false;
                    break;
                case LEASE_STOPPED:
                    assert_false(stopped);
                    stopped = true;
                    break;
                default:
                    break;
                }
            }
            if (stopped && lease_get_state(&l) == LEASE_IDLE && fuzz_next() % 4 == 0)
                started = false;
            if (lease_wake_at(&l) <= now)
                fail_msg("seed %llu step %d: wake_at %llu <= now %llu", (unsigned long long)seed, i,
                         (unsigned long long)lease_wake_at(&l), (unsigned long long)now);
            if (lease_is_leader(&l, now) && now >= bound)
                fail_msg("seed %llu step %d: leader at %llu past %llu", (unsigned long long)seed, i,
                         (unsigned long long)now, (unsigned long long)bound);
            if (lease_get_state(&l) != LEASE_LEADER && (lease_epoch(&l) || lease_valid_until(&l)))
                fail_msg("seed %llu step %d: epoch or valid_until kept outside a term",
                         (unsigned long long)seed, i);
            if (elected != (lease_get_state(&l) == LEASE_LEADER))
                fail_msg("seed %llu step %d: elected %d but state %s", (unsigned long long)seed, i,
                         elected, lease_state_name(lease_get_state(&l)));
        }
    }
}

/* Ticks l to its next claim and returns the claim's seq (drains the rest). */
static uint32_t next_claim(lease *l, uint64_t *now)
{
    for (int i = 0; i < 100; i++) {
        lease_action a;
        uint32_t seq = 0;
        while (lease_next_action(l, &a))
            if (a.kind == LEASE_SEND_ACQUIRE)
                seq = a.seq;
        if (seq)
            return seq;
        *now = lease_wake_at(l);
        assert_true(*now != UINT64_MAX);
        lease_tick(l, *now);
    }
    fail_msg("no claim came");
    return 0;
}

/* What a claim may name as the holder it knows: another campaign's token
 * whose epoch was learned since the events channel last came up; never one
 * with an unknown epoch; nothing once the key is seen free. */
static void test_known_holder(void **state)
{
    (void)state;
    const char *other = "other:1/0123456789abcdef";
    lease l;
    lease_init(&l, &cfg, "me:1/fedcba9876543210", 7);
    uint64_t now = 0, epoch = 1;
    lease_start(&l, now);
    lease_on_connected(&l, now);
    uint32_t seq = next_claim(&l, &now);
    assert_null(lease_known_holder(&l, &epoch));
    assert_int_equal(epoch, 0);

    lease_reply r = {.result = LEASE_ACQUIRE_HELD,
                     .holder = other,
                     .holder_len = strlen(other),
                     .pttl_ms = 1500,
                     .epoch = 5};
    lease_on_acquire(&l, now, seq, &r);
    assert_string_equal(lease_known_holder(&l, &epoch), other);
    assert_int_equal(epoch, 5);

    lease_events_resumed(&l); /* news may have been missed: learn the epoch again */
    assert_null(lease_known_holder(&l, &epoch));
    seq = next_claim(&l, &now);
    lease_on_acquire(&l, now, seq, &r);
    assert_string_equal(lease_known_holder(&l, &epoch), other);

    seq = next_claim(&l, &now); /* an answer without the epoch changes nothing */
    r.epoch = 0;
    lease_on_acquire(&l, now, seq, &r);
    assert_string_equal(lease_known_holder(&l, &epoch), other);
    assert_int_equal(epoch, 5);

    lease_on_event(&l, now, LEASE_EVENT_RELEASED, other, strlen(other), 5);
    assert_null(lease_known_holder(&l, &epoch));
}

int main(void)
{
    enum { N = sizeof scenarios / sizeof scenarios[0] };
    struct CMUnitTest tests[N + 6];
    for (size_t i = 0; i < N; i++)
        tests[i] = (struct CMUnitTest){.name = scenarios[i].name,
                                       .test_func = run_scenario,
                                       .initial_state = (void *)&scenarios[i]};
    tests[N] = (struct CMUnitTest){.name = "config_check", .test_func = test_config_check};
    tests[N + 1] = (struct CMUnitTest){.name = "fuzz", .test_func = test_fuzz};
    tests[N + 2] =
        (struct CMUnitTest){.name = "event_flood_bounded", .test_func = test_event_flood_bounded};
    tests[N + 3] = (struct CMUnitTest){.name = "known_holder", .test_func = test_known_holder};
    tests[N + 4] = (struct CMUnitTest){.name = "resign_request", .test_func = test_resign_request};
    tests[N + 5] =
        (struct CMUnitTest){.name = "preferred_leader", .test_func = test_preferred_leader};
    return _cmocka_run_group_tests("lease", tests, N + 6, NULL, NULL);
}
