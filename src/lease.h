/* lease.h — the election state machine for one key.
 *
 * Pure: it is fed events (the time, a reply, a lost connection, the user's
 * requests) and answers with actions (commands to send, callbacks to fire)
 * and the next instant it must be woken.  It never sleeps, reads a clock,
 * touches a socket, allocates or calls user code, and its jitter comes from
 * a generator seeded in the struct, so a run replays exactly.
 *
 * The safety rule (README, "The safety rule"):
 *
 *     valid_until = (now_ms of the input that emitted the successful
 *                    acquire or renew) + lease_ms - drift,
 *     drift       = lease_ms * drift_ppm / 10^6 + 2
 *
 * and lease_is_leader(now) is state == LEADER && now < valid_until.  Because
 * the caller sends a command only after the input that asked for it, the send
 * happens at or after that now_ms: the lease on Redis cannot end before
 * valid_until, whenever the reply arrives.
 *
 * Usage: after each lease_* input, drain lease_next_action() until it returns
 * false, perform each action in order, then sleep until lease_wake_at() (or an
 * earlier event) and call lease_tick().
 */
#ifndef LEASEHOLD_LEASE_H
#define LEASEHOLD_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "leasehold.h"

#define LEASE_HOLDER_MAX 256 /* a holder token longer than this is cut for display */
#define LEASE_QUEUE_MAX  16  /* actions one input can produce, with room to spare */

typedef struct lease_config {
    uint32_t lease_ms;
    uint32_t renew_interval_ms;
    uint32_t retry_interval_ms;
    uint32_t renew_deadline_ms;
    uint32_t stop_timeout_ms;      /* a resigning term holds its key this long at most */
    uint32_t drift_ppm;            /* the largest clock-rate difference with Redis's host */
    uint32_t priority;             /* the preferred leader: 1 none, more preferred; 0 (as in a
                                      zeroed config): it never asks for a handover */
    bool standby;                  /* leasehold_config.priority 0: claims a retry interval
                                      late, and hands over at once to any candidate that asks */
    uint32_t handover_interval_ms; /* a leader hands over for priority only after its term has
                                      lasted this long (a standby leader: at once) */
    bool original_timing;          /* behave as the original module did, for comparison:
                                      blind claims every retry_interval_ms, events ignored,
                                      no release */
} lease_config;

typedef enum lease_state {
    LEASE_IDLE,      /* not campaigning: before lease_start, or after a stop finished */
    LEASE_FOLLOWER,  /* waiting for the next claim */
    LEASE_CLAIMING,  /* an acquire is in flight */
    LEASE_LEADER,    /* holds the lease, renews it */
    LEASE_DRAINING,  /* the term ended; waiting for lease_service_stopped() */
    LEASE_RELEASING, /* a release is in flight */
    LEASE_OBSERVING, /* an observer (lease_observe) waiting for its next read */
    LEASE_READING,   /* an observer's read is in flight */
} lease_state;

typedef enum lease_action_kind {
    LEASE_SEND_ACQUIRE,   /* send the acquire script with .epoch as the floor of the next
                             epoch (0: none); the reply goes to lease_on_acquire */
    LEASE_SEND_RENEW,     /* send the renew script; reply to lease_on_renew */
    LEASE_SEND_RELEASE,   /* send the release script (with .epoch); reply to lease_on_release */
    LEASE_SEND_QUERY,     /* observers: read the key; reply to lease_on_query */
    LEASE_ELECTED,        /* fire elected(.epoch); start the service */
    LEASE_REVOKED,        /* fire revoked(.reason); stop the service, then call
                             lease_service_stopped() (at once when there is none) */
    LEASE_LEADER_CHANGED, /* fire leader_changed(.holder or NULL, .epoch) and
                             observed(.change, .holder or .ended, ...) */
    LEASE_ERROR,          /* report .error (a leasehold error code) to the user; when
                             leasehold_error_is_permanent(.error) the election has halted */
    LEASE_STOPPED,        /* the campaign has ended (after lease_stop); state is IDLE */
    LEASE_RESIGN_ASKED,   /* a resign request named this term (.epoch), or a preferred
                             candidate asked for it (.holder: that successor, else NULL): the
                             caller decides how to step down (lease_resign once what the
                             term started has stopped, or at once), and for a successor
                             announces the handover first; the state machine changes nothing */
    LEASE_SEND_PREFER,    /* publish a request that the holder .holder of the term .epoch hand
                             over to us (we are preferred: cfg.priority); nothing answers it */
} lease_action_kind;

typedef struct lease_action {
    lease_action_kind kind;
    uint32_t seq;            /* SEND_*: pass it back with the reply */
    uint64_t epoch;          /* ELECTED, LEADER_CHANGED, SEND_RELEASE, SEND_ACQUIRE (floor),
                                RESIGN_ASKED */
    leasehold_reason reason; /* REVOKED */
    int error;               /* ERROR */
    const char *holder;      /* LEADER_CHANGED: NUL-terminated, or NULL for "nobody";
                                valid until the next lease_* input */
    leasehold_change change; /* LEADER_CHANGED: what happened */
    const char *ended;       /* LEADER_CHANGED, RELEASED / EXPIRED: the token whose term
                                ended ("" when unknown); valid as .holder */
    uint64_t ended_epoch;    /* LEADER_CHANGED, RELEASED / EXPIRED: its epoch, 0 unknown */
    int64_t pttl_ms;         /* ERROR LEASEHOLD_EFOREIGN / _ENOTLEASE: the key's PTTL; the
                                value is in .holder (NUL-terminated, cut) */
    uint64_t redis_ms;       /* ERROR LEASEHOLD_ECLOCKJUMP: how far Redis's clock advanced */
    uint64_t local_ms;       /* ... while ours advanced at most this much */
} lease_action;

/* Reply to an acquire. */
typedef enum lease_acquire_result {
    LEASE_ACQUIRED,       /* the key is ours; .epoch is the new term's epoch */
    LEASE_ACQUIRE_HELD,   /* someone holds it: .holder, .pttl_ms (-1: no TTL), .epoch (0 unknown) */
    LEASE_ACQUIRE_FAILED, /* error reply: .error */
    LEASE_ACQUIRE_QUARANTINED, /* {K}:epoch was missing (data lost or never used): no claim
                                  succeeds for .pttl_ms more */
} lease_acquire_result;

/* Reply to a renew. */
typedef enum lease_renew_result {
    LEASE_RENEWED,       /* PEXPIRE done */
    LEASE_RENEW_HELD,    /* the key holds another token: .holder */
    LEASE_RENEW_MISSING, /* the key is gone */
    LEASE_RENEW_FAILED,  /* error reply: .error (LEASEHOLD_EWRONGTYPE ends the term at once) */
} lease_renew_result;

/* Reply to a query (observers). */
typedef enum lease_query_result {
    LEASE_QUERY_HELD,   /* .holder, .pttl_ms (-1: no TTL), .epoch */
    LEASE_QUERY_FREE,   /* nobody holds the key; .epoch is the last one handed out */
    LEASE_QUERY_FAILED, /* error reply: .error */
} lease_query_result;

/* What the key's events channel said. */
typedef enum lease_event_kind {
    LEASE_EVENT_ELECTED,  /* "elected <epoch> <token>" */
    LEASE_EVENT_RELEASED, /* "released <epoch> <token>" */
    LEASE_EVENT_RESIGN,   /* "resign <epoch> <token>": someone asks the leader of that term to
                             step down (leasehold_request_resign) */
} lease_event_kind;

/* The preferred leader's messages on the events channel:
 *   "prefer <epoch> <holder> <priority> <asker>"  asker, of that priority, asks the
 *                                                 holder of term epoch to hand over
 *   "handover <epoch> <holder> <successor>"       that holder steps down for successor */
typedef struct lease_request {
    bool handover; /* else prefer */
    uint64_t epoch;
    const char *holder; /* not NUL-terminated */
    size_t holder_len;
    uint32_t priority; /* prefer */
    const char *other; /* the asker, or the successor; not NUL-terminated */
    size_t other_len;
} lease_request;

typedef struct lease_reply {
    int result; /* lease_acquire_result, lease_renew_result or lease_query_result;
                   release: 1 deleted, 0 not ours, <0 a leasehold error */
    uint64_t epoch;
    int64_t pttl_ms;
    const char *holder; /* not necessarily NUL-terminated */
    size_t holder_len;
    int error;
    uint64_t redis_time_us; /* acquire and renew: Redis's TIME when it ran the script, 0 unknown */
    bool fresh;             /* QUARANTINED: this claim found the epoch key missing */
} lease_reply;

/* The renewals of a held key: a leader's, and those of a resigning term
 * while its service stops (DRAINING takes them over from LEADER). */
typedef struct lease_renewal {
    uint64_t last_renewed_ms; /* send time of the last successful acquire or renew */
    uint64_t next_renew_ms;   /* when to send the next renew */
    bool clock_known;         /* the last reply's Redis TIME is known (see clock_jumped) */
    uint64_t clock_redis_us;  /* ... Redis's TIME in that reply */
    uint64_t clock_sent_ms;   /* ... the send time of the command it answered */
} lease_renewal;

/*
 * The whole state of one election.  Fields are private to the state machine
 * (src/lease*.c); the struct is public only so the caller can embed
 * it without allocation: read it through the functions below.
 *
 * What only means something in one state lives in that state's part of `as`,
 * which every transition (lease_enter) clears; the rest spans states.
 */
typedef struct lease {
    lease_config cfg;             /* as given to lease_init */
    lease_state state;            /* changed only by lease_enter */
    char token[LEASE_HOLDER_MAX]; /* our token, to recognise our own key */
    size_t token_len;             /* its length */
    uint64_t rng;                 /* jitter generator state */
    bool observer;                /* lease_observe(): OBSERVING and READING, never claims */
    bool connected;               /* commands can be sent */
    bool stopping;                /* lease_stop() was called: it ends once nothing is in flight */
    bool stopped;                 /* LEASE_STOPPED was emitted (it is, once per campaign) */
    bool back_off; /* resign while claiming, draining or releasing: no term, then wait */
    bool halted;   /* no claim, renewal or read until lease_resume() */
    char foreign[LEASE_HOLDER_MAX]; /* the last foreign value reported (LEASEHOLD_EFOREIGN) */

    /* The command in flight, at most one.  It may outlive the state that
     * sent it: a leader's renew can be answered while DRAINING. */
    uint32_t seq;                     /* of the command in flight */
    bool in_flight;                   /* a command is in flight */
    lease_action_kind in_flight_kind; /* LEASE_SEND_ACQUIRE, _RENEW, _RELEASE or _QUERY */
    uint64_t in_flight_sent_ms;       /* the now_ms of the input that emitted it */

    uint64_t hold_until_ms;   /* the key is certainly ours before this (never cleared) */
    uint64_t claim_gate_ms;   /* the restart guard: no claim before this */
    uint64_t max_epoch_seen;  /* the highest epoch seen anywhere: the next one is above */
    uint64_t hasten_ok_ms;    /* an event may hasten a claim or renewal to no sooner
                                 than this (the event floor, see lease_on_event) */
    bool abandoned;           /* the last ended term's service was given up while it
                                 still runs: its key must lapse, not be released;
                                 cleared when the next term ends */
    uint64_t abandoned_epoch; /* ... that term's epoch */

    /* The preferred leader (cfg.priority). */
    uint64_t next_ask_ms;    /* a follower's next request that the holder hand over to it */
    uint64_t asked_epoch;    /* ... the holder's term it last asked */
    uint64_t claim_hold_ms;  /* a term handed over to another candidate: no claim before this */
    uint64_t handover_epoch; /* ... that term (a handover is honoured once per term) */
    unsigned asks_this_term; /* requests sent for asked_epoch */
    char successor[LEASE_HOLDER_MAX]; /* a leader's best asker: the highest priority ... */
    uint32_t successor_priority;      /* ... its priority ... */
    uint64_t successor_seen_ms;       /* ... and when it last asked (0: nobody) */

    /* What is known of the key's holder, from replies and events. */
    char holder[LEASE_HOLDER_MAX]; /* the holder last observed, "" for none */
    bool holder_known;             /* a holder (or its absence) was observed */
    uint64_t holder_epoch;         /* its term's epoch, 0 unknown */
    bool holder_epoch_fresh;       /* ...learned since the events channel last came up */
    char ended[LEASE_HOLDER_MAX];  /* the holder whose term ended, for LEADER_CHANGED */

    /* Per state: cleared by every transition.  IDLE, CLAIMING and READING
     * have no data of their own (the claim or read is the command in flight). */
    union {
        struct {
            uint64_t next_claim_ms; /* when to claim */
        } follower;
        struct {
            uint64_t next_read_ms; /* when to read the key */
        } observing;
        struct {
            uint64_t epoch;          /* this term's epoch */
            uint64_t won_ms;         /* when it was won */
            bool handing_over;       /* a preferred candidate's request was announced */
            uint64_t valid_until_ms; /* the lease is certainly ours before this */
            lease_renewal renewal;
        } leader;
        struct {
            leasehold_reason reason; /* why the term ended */
            uint64_t epoch;          /* the ended term's, for the release */
            bool service_stopped;    /* lease_service_stopped() was called */
            bool renewing;           /* after a resign: the key is still renewed ... */
            uint64_t renew_until_ms; /* ... until the service stops or this instant */
            lease_renewal renewal;   /* the term's, taken over from LEADER */
        } draining;
        struct {
            uint64_t epoch;          /* the term being released */
            uint32_t claim_delay_ms; /* the follower's wait before its next claim */
        } releasing;
    } as;

    lease_action queue[LEASE_QUEUE_MAX]; /* the actions of the last input (lease_next_action) */
    unsigned q_head, q_len;              /* ... the first one and how many */
} lease;

/* Checks a configuration: renew interval and deadline well below the lease
 * and so on.  Returns 0, or LEASEHOLD_ECONFIG with the reason in err. */
int lease_config_check(const lease_config *cfg, uint32_t command_timeout_ms, leasehold_error *err);

/* Prepares l (IDLE).  token (our "<identity>/<nonce>") is copied; it must be
 * shorter than LEASE_HOLDER_MAX. */
void lease_init(lease *l, const lease_config *cfg, const char *token, uint64_t seed);

/* Starts campaigning: the first claim is due at once (when connected). */
void lease_start(lease *l, uint64_t now_ms);

/* Starts observing instead: the key is read (LEASE_SEND_QUERY) at once, then
 * again when its holder's TTL runs out, at least every retry_interval_ms;
 * LEADER_CHANGED reports every change.  Never claims: an observer is
 * OBSERVING or READING where a candidate would be FOLLOWER or CLAIMING.
 * A lease already campaigning stays what it is. */
void lease_observe(lease *l, uint64_t now_ms);

/* The connection is ready: commands may be sent again. */
void lease_on_connected(lease *l, uint64_t now_ms);

/* The connection went down; the command in flight, if any, is lost.
 * by_peer: Redis closed or reset it, which ends a term at once. */
void lease_on_disconnected(lease *l, uint64_t now_ms, bool by_peer);

/* Replies to the command sent with seq; stale seqs are ignored. */
void lease_on_acquire(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r);
void lease_on_renew(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r);
void lease_on_release(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r);
void lease_on_query(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r);

/* A message on the key's events channel.  It is news, never proof: it only
 * reports a change and hastens the next claim (after `released`) or renewal
 * (a leader that hears of another's election); only the key decides who
 * leads.  A `resign` naming this process's current term (its epoch and our
 * token) is announced (LEASE_RESIGN_ASKED) for the caller to act on; any
 * other is ignored, so a late request cannot end a later term.  Anyone may publish on the channel,
 * so hastening is rate-limited: a hastened command goes out no sooner than lease_event_floor_ms()
 * after the previous hastened one.  The first event after a quiet period still acts at once. */
void lease_on_event(lease *l, uint64_t now_ms, lease_event_kind kind, const char *token,
                    size_t token_len, uint64_t epoch);

/* A preferred leader's message (see lease_request).  A "prefer" naming
 * this process's current term, from a candidate of higher priority, is
 * remembered (the highest priority among the askers still asking); once
 * the term has lasted handover_interval_ms (at once for a standby) the
 * handover to that asker is announced (LEASE_RESIGN_ASKED with .holder =
 * the asker), once per term.  Equal or lower priorities are ignored, so
 * equals never hand over to each other.  A "handover" to another candidate
 * makes this follower hold its claims back for lease_ms + retry_interval_ms,
 * and for retry_interval_ms after that term's release, so that the
 * successor wins the key, released or lapsed; only for the holder and
 * epoch it knows, once per term. */
void lease_on_request(lease *l, uint64_t now_ms, const lease_request *r);

/* The least time between two commands hastened by events: lease_ms / 40
 * (50 ms for the default lease), at least 1 ms.  A flood of messages on the
 * events channel costs an election at most 1000 / floor extra commands per
 * second, however fast it comes. */
uint32_t lease_event_floor_ms(const lease_config *cfg);

/* Timers: claims, renewals, the renew deadline and the end of valid_until. */
void lease_tick(lease *l, uint64_t now_ms);

/* Steps down if leader (REVOKED with LEASEHOLD_RESIGNED), releases after the
 * service stopped, then claims again no sooner than retry_interval_ms later. */
void lease_resign(lease *l, uint64_t now_ms);

/* Ends the campaign: as resign if leader, then LEASE_STOPPED once nothing is
 * in flight.  A claim in flight that turns out to have won is released
 * without ELECTED. */
void lease_stop(lease *l, uint64_t now_ms);

/* The service of the ended term has stopped (after LEASE_REVOKED). */
void lease_service_stopped(lease *l, uint64_t now_ms);

/* The service of the ended term will not stop and was given up: the term
 * ends without a release, so its key lapses with its TTL rather than at
 * once while the service still runs. */
void lease_service_abandoned(lease *l, uint64_t now_ms);

/* The highest epoch seen: own terms, holders in replies, events. */
uint64_t lease_max_epoch_seen(const lease *l);

/* The holder of another campaign whose epoch is known, for a claim to name
 * (the script then need not read the epoch again while it holds), with that
 * epoch in *epoch; NULL when there is none: no holder seen, its epoch
 * unknown or learned before the events channel last came up (see
 * lease_events_resumed), or our own token, whose epoch a claim must always
 * learn.  A claim may name it only while the events channel carries news:
 * the same holder's next term is then heard of as an `elected` event. */
const char *lease_known_holder(const lease *l, uint64_t *epoch);

/* The events channel went down or came back: what was learned of the
 * holder's epoch before may have been overtaken by news that was missed,
 * so claims read the epoch again until it is learned anew; and a preferred
 * follower asks the holder again (its request may not have gone out). */
void lease_events_resumed(lease *l);

/* The restart guard: no claim goes out before not_before_ms (UINT64_MAX:
 * not until told otherwise; 0: no limit).  Renewals and observers' reads are
 * not held back. */
void lease_gate_claims(lease *l, uint64_t now_ms, uint64_t not_before_ms);

/* A permanent error (leasehold_error_is_permanent(code)) met outside the
 * state machine's own replies (the connection's handshake):
 * a leader's term ends at once (REVOKED with LEASEHOLD_HALTED), then
 * LEASE_ERROR with code, and nothing more is sent for the key until
 * lease_resume().  The replies the state machine takes halt it the same way
 * by themselves.  Already halted: nothing happens. */
void lease_halt(lease *l, uint64_t now_ms, int code);

/* Ends a halt: the next claim (or read) is due at once.  Not halted:
 * nothing happens. */
void lease_resume(lease *l, uint64_t now_ms);

/* No claim before until_ms (kept if already later): a term that resigned
 * with its key left to lapse is not claimed back by its own process before
 * the key is gone and another candidate had its chance. */
void lease_hold_claims(lease *l, uint64_t now_ms, uint64_t until_ms);

/* True while halted. */
bool lease_halted(const lease *l);

/* True from lease_stop() until the campaign starts again. */
bool lease_stopping(const lease *l);

/* Pops the next action; false when there is none. */
bool lease_next_action(lease *l, lease_action *out);

/* The next instant lease_tick() has work; UINT64_MAX for none. */
uint64_t lease_wake_at(const lease *l);

/* The safety rule: LEADER and now_ms < valid_until. */
bool lease_is_leader(const lease *l, uint64_t now_ms);

/* valid_until while LEADER, else 0. */
uint64_t lease_valid_until(const lease *l);

/* The epoch of the term held while LEADER, else 0. */
uint64_t lease_epoch(const lease *l);

/* The instant before which the key is certainly ours: valid_until while
 * leader, extended by the renewals of a resigning term; after that the last
 * such instant (0 before the first term).  What a term started must be
 * stopped before it. */
uint64_t lease_hold_until(const lease *l);

lease_state lease_get_state(const lease *l);
const char *lease_state_name(lease_state s);

#endif
