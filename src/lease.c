/* lease.c — the election state machine for one key (see lease.h): its
 * inputs, the campaign (follow, claim, observe, stop, halt), the action
 * queue and the accessors.  A term, from won to released, is in
 * lease_term.c; what is known of the key's holder in lease_holder.c. */
#include "lease_internal.h"

#include "random.h"

#include <assert.h>
#include <string.h>

#include "error.h"

/* The margin taken off every lease for clock-rate differences between this
 * process and Redis: drift_ppm of the lease plus 2 ms of rounding. */
uint64_t lease_drift_ms(const lease_config *cfg)
{
    return (uint64_t)cfg->lease_ms * cfg->drift_ppm / 1000000u + 2;
}

/*
 * The rules below are the ones a configuration must follow, each for a reason:
 * - every value is positive (zero never means "no time");
 * - renew_interval_ms <= lease_ms / 2: a lease survives one lost renewal;
 * - renew_deadline_ms < lease_ms - drift: a leader steps down, and its service
 *   is told to stop, while the lease is still certainly its own;
 * - renew_interval_ms < renew_deadline_ms: at least one renewal is tried
 *   before the deadline;
 * - command_timeout_ms <= renew_deadline_ms / 2: a renewal that timed out can
 *   be tried again, on a new connection, before the deadline;
 * - drift_ppm is 1 to 200000: clocks never agree exactly, and a rate bound
 *   above 20% leaves a lease nothing to count on.
 */
int lease_config_check(const lease_config *cfg, uint32_t command_timeout_ms, leasehold_error *err)
{
    const struct {
        const char *name;
        uint32_t value;
    } all[] = {
        {"lease_ms", cfg->lease_ms},
        {"renew_interval_ms", cfg->renew_interval_ms},
        {"retry_interval_ms", cfg->retry_interval_ms},
        {"renew_deadline_ms", cfg->renew_deadline_ms},
        {"command_timeout_ms", command_timeout_ms},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].value == 0)
            return error_set(err, LEASEHOLD_ECONFIG, "%s must be positive, not 0", all[i].name);
    if (cfg->drift_ppm == 0 || cfg->drift_ppm > 200000)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "clock_drift_ppm (%lu) must be 1 to 200000: no two clocks run at exactly "
                         "the same rate",
                         (unsigned long)cfg->drift_ppm);

    uint64_t lease_ms = cfg->lease_ms, renew = cfg->renew_interval_ms;
    uint64_t deadline = cfg->renew_deadline_ms, timeout = command_timeout_ms;
    uint64_t drift = lease_drift_ms(cfg);
    uint64_t certain = lease_ms > drift ? lease_ms - drift : 0;
    if (renew * 2 > lease_ms)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "renew_interval_ms (%llu) must be at most half of lease_ms (%llu)",
                         (unsigned long long)renew, (unsigned long long)lease_ms);
    if (deadline >= certain)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "renew_deadline_ms (%llu) must be below lease_ms - drift (%llu)",
                         (unsigned long long)deadline, (unsigned long long)certain);
    if (renew >= deadline)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "renew_interval_ms (%llu) must be below renew_deadline_ms (%llu)",
                         (unsigned long long)renew, (unsigned long long)deadline);
    if (timeout * 2 > deadline)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "command_timeout_ms (%llu) must be at most half of renew_deadline_ms "
                         "(%llu)",
                         (unsigned long long)timeout, (unsigned long long)deadline);
    error_clear(err);
    return 0;
}

static uint64_t next_random(lease *l)
{
    return random_next(&l->rng);
}

/* A wait in [3/4, 1] x base_ms, so that candidates that failed together do
 * not claim together again. */
uint32_t lease_jittered(lease *l, uint32_t base_ms)
{
    uint32_t low = (uint32_t)((uint64_t)base_ms * 3 / 4);
    return low + (uint32_t)(next_random(l) % (base_ms - low + 1));
}

/* The queue holds what one input produces; the caller drains it after each. */
void lease_push(lease *l, lease_action a)
{
    assert(l->q_len < LEASE_QUEUE_MAX && "actions must be drained after each input");
    l->queue[(l->q_head + l->q_len) % LEASE_QUEUE_MAX] = a;
    l->q_len++;
}

/* Every transition comes through here, so the per-state part (`as`) never
 * carries a value from one state into another: what must survive a
 * transition is copied by the caller after it (see lease_revoke). */
void lease_enter(lease *l, lease_state state)
{
    l->state = state;
    memset(&l->as, 0, sizeof l->as);
}

/* A permanent error: a leader's term ends at once (REVOKED comes before the
 * error, so the service is cancelled before the user's callback runs), and
 * from now on no claim, renewal or read goes out until lease_resume().  A
 * command still in flight is let finish: a claim that turns out to have won
 * is given back (see lease_won).  The error is pushed once, on the input that
 * halts; a halted election sends nothing that could fail again. */
void lease_halt_with(lease *l, uint64_t now_ms, lease_action error)
{
    if (l->halted)
        return;
    if (l->state == LEASE_LEADER)
        lease_lose(l, now_ms, LEASEHOLD_HALTED);
    if (l->state == LEASE_DRAINING)
        l->as.draining.renewing = false;
    l->halted = true;
    lease_push(l, error);
}

/* Permanent codes (leasehold_error_is_permanent) halt; the rest are only
 * reported, and the next claim or renewal tries again. */
void lease_reply_error(lease *l, uint64_t now_ms, int code)
{
    if (leasehold_error_is_permanent(code))
        lease_halt_with(l, now_ms, (lease_action){.kind = LEASE_ERROR, .error = code});
    else
        lease_push(l, (lease_action){.kind = LEASE_ERROR, .error = code});
}

/* The seq names the command for its reply; one command at most is in flight. */
void lease_queue_send(lease *l, uint64_t now_ms, lease_action_kind kind, uint64_t epoch)
{
    assert(l->connected && !l->in_flight);
    l->seq++;
    l->in_flight = true;
    l->in_flight_kind = kind;
    l->in_flight_sent_ms = now_ms;
    lease_push(l, (lease_action){.kind = kind, .seq = l->seq, .epoch = epoch});
}

/* A late reply (a command given up with its connection) is not the one
 * awaited, and is ignored. */
bool lease_take_reply(lease *l, uint32_t seq, lease_action_kind kind)
{
    if (!l->in_flight || seq != l->seq || l->in_flight_kind != kind)
        return false;
    l->in_flight = false;
    return true;
}

static bool is_own_token(const lease *l, const char *holder, size_t len)
{
    return holder && len == l->token_len && memcmp(holder, l->token, len) == 0;
}

static void emit_stopped(lease *l)
{
    if (!l->stopped)
        lease_push(l, (lease_action){.kind = LEASE_STOPPED});
    l->stopped = true;
}

/* Waits until at_ms for the next claim or, for an observer, the next read. */
static void wait_until(lease *l, uint64_t at_ms)
{
    if (l->observer) {
        lease_enter(l, LEASE_OBSERVING);
        l->as.observing.next_read_ms = at_ms;
    } else {
        lease_enter(l, LEASE_FOLLOWER);
        l->as.follower.next_claim_ms = at_ms;
    }
}

/* The timer of a FOLLOWER's next claim or an OBSERVING observer's next read;
 * NULL in the other states. */
static uint64_t *waiting_timer(lease *l)
{
    if (l->state == LEASE_FOLLOWER)
        return &l->as.follower.next_claim_ms;
    if (l->state == LEASE_OBSERVING)
        return &l->as.observing.next_read_ms;
    return NULL;
}

/* A standby (priority 0) claims a retry interval after any other
 * candidate would, so that it leads only when nobody else is there. */
static uint32_t standby_delay(const lease *l)
{
    return l->cfg.standby && !l->observer ? l->cfg.retry_interval_ms : 0;
}

/* Where every claim, read, drain and release ends: the campaign goes on
 * (FOLLOWER or OBSERVING) or, once lease_stop() was called, ends (IDLE). */
void lease_become_follower(lease *l, uint64_t now_ms, uint32_t delay_ms)
{
    if (l->stopping) {
        lease_enter(l, LEASE_IDLE);
        emit_stopped(l);
        return;
    }
    /* A resign asked for while claiming, draining or releasing: give the
     * other candidates their turn first. */
    if (l->back_off && delay_ms < l->cfg.retry_interval_ms)
        delay_ms = l->cfg.retry_interval_ms;
    l->back_off = false;
    wait_until(l, now_ms + delay_ms + standby_delay(l));
}

/* When a follower claims (or an observer reads the key) again after a reply
 * that showed a holder.  The reply's PTTL says when the key will expire: a
 * holder that stopped renewing is replaced within milliseconds of that, plus
 * a jitter of up to lease_ms / 400 so that followers do not all arrive in the
 * same instant.  A healthy holder renews before then, so the wait is bounded
 * by retry_interval_ms: one claim per interval is what an idle follower
 * costs.  Without a usable PTTL (an error, a key without TTL) the wait is
 * the jittered retry interval. */
static uint32_t claim_delay_after(lease *l, const lease_reply *r, bool held)
{
    uint32_t retry = l->cfg.retry_interval_ms;
    if (l->cfg.original_timing)
        return retry;
    if (!held || r->pttl_ms < 0)
        return lease_jittered(l, retry);
    if (r->pttl_ms >= (int64_t)retry)
        return retry;
    uint32_t spread = l->cfg.lease_ms / 400 + 1;
    return (uint32_t)r->pttl_ms + 1 + (uint32_t)(next_random(l) % spread);
}

/* When the next claim may go out: its own timer, and no sooner than the
 * restart guard allows (observers' reads are not held back). */
static uint64_t claim_time(const lease *l)
{
    if (l->halted)
        return UINT64_MAX;
    uint64_t at = l->as.follower.next_claim_ms;
    if (at < l->claim_gate_ms)
        at = l->claim_gate_ms;
    if (at < l->claim_hold_ms)
        at = l->claim_hold_ms;
    return at;
}

/* When a follower next asks the holder to hand over to it (see
 * lease_on_request): as soon as it learns of a term and again every retry
 * interval (as often as it claims): three times in all at priority 1 (a
 * request that reached a leader still confirming its claim is not lost), for
 * as long as the term lasts above 1, since the leader hands over only once
 * its term has lasted its own interval.  UINT64_MAX when it does not
 * ask: a standby or a priority-1 candidate that asked this term already, no holder known with its
 * epoch, our own term, halted, or held back by the restart guard. */
static uint64_t ask_time(const lease *l)
{
    if (l->state != LEASE_FOLLOWER || l->cfg.priority == 0 || l->cfg.original_timing || l->halted ||
        !l->holder_known || !l->holder[0] || !l->holder_epoch || strcmp(l->holder, l->token) == 0)
        return UINT64_MAX;
    uint64_t at = l->holder_epoch != l->asked_epoch              ? 0
                  : l->cfg.priority > 1 || l->asks_this_term < 3 ? l->next_ask_ms
                                                                 : UINT64_MAX;
    return at < l->claim_gate_ms ? l->claim_gate_ms : at;
}

/* A preferred candidate asked this term to hand over lately enough to be
 * there still: it asks every retry interval. */
static bool asker_fresh(const lease *l, uint64_t now_ms)
{
    return l->successor_seen_ms &&
           now_ms <= l->successor_seen_ms + 2 * (uint64_t)l->cfg.retry_interval_ms;
}

/* When a leader hands over to the best asker: once its term has lasted
 * the handover interval (a standby: at once); UINT64_MAX when nobody asks,
 * or the asker will no longer count as there by then (it asks again). */
static uint64_t handover_time(const lease *l)
{
    if (l->state != LEASE_LEADER || l->as.leader.handing_over || !l->successor_seen_ms ||
        l->successor_seen_ms < l->as.leader.won_ms)
        return UINT64_MAX;
    uint64_t at = l->cfg.standby ? 0 : l->as.leader.won_ms + l->cfg.handover_interval_ms;
    if (at < l->successor_seen_ms)
        at = l->successor_seen_ms;
    return asker_fresh(l, at) ? at : UINT64_MAX;
}

/* Announces the handover (LEASE_RESIGN_ASKED with the successor) once it is
 * due: the caller steps down. */
static void hand_over(lease *l, uint64_t now_ms)
{
    if (handover_time(l) > now_ms)
        return;
    l->as.leader.handing_over = true;
    lease_push(l, (lease_action){.kind = LEASE_RESIGN_ASKED,
                                 .epoch = l->as.leader.epoch,
                                 .holder = l->successor});
}

/* Sends the request of ask_time() when it is due. */
static void ask_holder(lease *l, uint64_t now_ms)
{
    if (!l->connected || ask_time(l) > now_ms)
        return;
    l->asks_this_term = l->asked_epoch == l->holder_epoch ? l->asks_this_term + 1 : 1;
    l->asked_epoch = l->holder_epoch;
    l->next_ask_ms = now_ms + l->cfg.retry_interval_ms;
    lease_push(l, (lease_action){
                      .kind = LEASE_SEND_PREFER, .epoch = l->holder_epoch, .holder = l->holder});
}

/* When an observer's next read may go out. */
static uint64_t read_time(const lease *l)
{
    return l->halted ? UINT64_MAX : l->as.observing.next_read_ms;
}

/* Runs the timers that are due and the steps an input made possible, so that
 * after any input lease_wake_at() is in the future. */
static void advance(lease *l, uint64_t now_ms)
{
    lease_check_term(l, now_ms);
    lease_term_advance(l, now_ms);
    ask_holder(l, now_ms);
    hand_over(l, now_ms);
    if (l->state == LEASE_FOLLOWER && l->connected && now_ms >= claim_time(l)) {
        lease_enter(l, LEASE_CLAIMING);
        uint64_t floor = l->max_epoch_seen ? l->max_epoch_seen + 1 : 0;
        lease_queue_send(l, now_ms, LEASE_SEND_ACQUIRE, floor);
    } else if (l->state == LEASE_OBSERVING && l->connected && now_ms >= read_time(l)) {
        lease_enter(l, LEASE_READING);
        lease_queue_send(l, now_ms, LEASE_SEND_QUERY, 0);
    }
}

void lease_init(lease *l, const lease_config *cfg, const char *token, uint64_t seed)
{
    size_t len = strlen(token);
    assert(len < LEASE_HOLDER_MAX);
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    memcpy(l->token, token, len + 1);
    l->token_len = len;
    l->rng = seed;
    lease_enter(l, LEASE_IDLE);
}

/* The role is chosen when the campaign starts, never in its middle. */
void lease_observe(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_IDLE)
        l->observer = true;
    lease_start(l, now_ms);
}

void lease_start(lease *l, uint64_t now_ms)
{
    if (l->state != LEASE_IDLE) {
        advance(l, now_ms); /* already campaigning: only the clock moved */
        return;
    }
    l->stopping = false;
    l->stopped = false;
    wait_until(l, now_ms + standby_delay(l));
    advance(l, now_ms);
}

/* A new connection: a leader renews at once, since a renew may have been
 * lost with the old connection. */
void lease_on_connected(lease *l, uint64_t now_ms)
{
    lease_check_term(l, now_ms);
    l->connected = true;
    if (l->state == LEASE_LEADER)
        l->as.leader.renewal.next_renew_ms = now_ms;
    advance(l, now_ms);
}

/* The command in flight is lost.  A claim (or read) is retried as soon as
 * the connection is back (a claim may have won: the next one then finds our
 * own token and releases it).  A leader stays leader on a timeout
 * (valid_until does not move without a renewal) but not when Redis closed
 * the connection, since Redis may have restarted without the key. */
void lease_on_disconnected(lease *l, uint64_t now_ms, bool by_peer)
{
    lease_check_term(l, now_ms);
    l->connected = false;
    l->in_flight = false;
    switch (l->state) {
    case LEASE_CLAIMING:
    case LEASE_READING:
        lease_become_follower(l, now_ms, 0);
        break;
    case LEASE_LEADER:
        if (by_peer)
            lease_revoke(l, now_ms, LEASEHOLD_DISCONNECTED);
        break;
    case LEASE_RELEASING:
        lease_become_follower(l, now_ms, l->as.releasing.claim_delay_ms);
        break;
    default:
        break;
    }
    advance(l, now_ms);
}

/* A claim's answer: a term won (lease_won), or the wait before the next. */
void lease_on_acquire(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    lease_check_term(l, now_ms);
    if (lease_take_reply(l, seq, LEASE_SEND_ACQUIRE)) {
        switch (r->result) {
        case LEASE_ACQUIRED:
            lease_won(l, now_ms, l->in_flight_sent_ms, r->epoch, r->redis_time_us);
            break;
        case LEASE_ACQUIRE_QUARANTINED: {
            /* Redis lost the epoch key (or never had it): nobody may be
             * elected until the quarantine it set has run out. */
            uint32_t spread = l->cfg.lease_ms / 400 + 1;
            uint64_t wait = r->pttl_ms > 0 ? (uint64_t)r->pttl_ms : 0;
            if (wait > l->cfg.lease_ms)
                wait = l->cfg.lease_ms;
            lease_become_follower(l, now_ms,
                                  (uint32_t)wait + 1 + (uint32_t)(next_random(l) % spread));
            break;
        }
        case LEASE_ACQUIRE_HELD:
            if (is_own_token(l, r->holder, r->holder_len) && l->abandoned &&
                r->epoch == l->abandoned_epoch) {
                /* The key of a term whose service was abandoned and still
                 * runs: it must lapse, not be released. */
                lease_become_follower(l, now_ms, claim_delay_after(l, r, true));
                break;
            }
            if (is_own_token(l, r->holder, r->holder_len)) {
                lease_see_epoch(l, r->epoch);
                /* A claim of ours won earlier but its reply was lost: give
                 * the key back and claim again as soon as that is done. */
                lease_send_release(l, now_ms, r->epoch, 0);
                break;
            }
            lease_note_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            lease_check_holder(l, now_ms, r);
            lease_become_follower(l, now_ms, claim_delay_after(l, r, true));
            break;
        default:
            lease_reply_error(l, now_ms, r->error);
            lease_become_follower(l, now_ms, claim_delay_after(l, r, false));
            break;
        }
    }
    advance(l, now_ms);
}

/* An observer's read: who holds the key, and when to read it again. */
void lease_on_query(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    lease_check_term(l, now_ms);
    if (lease_take_reply(l, seq, LEASE_SEND_QUERY)) {
        switch (r->result) {
        case LEASE_QUERY_HELD:
            lease_note_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            lease_check_holder(l, now_ms, r);
            lease_become_follower(l, now_ms, claim_delay_after(l, r, true));
            break;
        case LEASE_QUERY_FREE:
            lease_note_holder(l, NULL, 0, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            lease_become_follower(l, now_ms, l->cfg.retry_interval_ms);
            break;
        default:
            lease_reply_error(l, now_ms, r->error);
            lease_become_follower(l, now_ms, claim_delay_after(l, r, false));
            break;
        }
    }
    advance(l, now_ms);
}

uint32_t lease_event_floor_ms(const lease_config *cfg)
{
    uint32_t floor_ms = cfg->lease_ms / 40;
    return floor_ms ? floor_ms : 1;
}

/* Moves *timer_ms to now_ms for an event, but no sooner than the event floor
 * after the last instant an event moved a timer to, and never later than it
 * already was.  Anyone may publish on the channel: this bounds what forged
 * messages cost (one hastened command per floor), while the first event
 * after a quiet period (a real release) still acts at once. */
static void hasten(lease *l, uint64_t now_ms, uint64_t *timer_ms)
{
    uint64_t at = now_ms > l->hasten_ok_ms ? now_ms : l->hasten_ok_ms;
    if (at >= *timer_ms)
        return; /* due by then anyway: no extra command */
    *timer_ms = at;
    l->hasten_ok_ms = at + lease_event_floor_ms(&l->cfg);
}

void lease_on_event(lease *l, uint64_t now_ms, lease_event_kind kind, const char *token,
                    size_t token_len, uint64_t epoch)
{
    lease_check_term(l, now_ms);
    if (l->cfg.original_timing) {
        advance(l, now_ms);
        return;
    }
    bool own = is_own_token(l, token, token_len);
    if (kind == LEASE_EVENT_RESIGN) {
        if (l->state == LEASE_LEADER && own && epoch == l->as.leader.epoch)
            lease_push(l, (lease_action){.kind = LEASE_RESIGN_ASKED, .epoch = epoch});
        advance(l, now_ms);
        return;
    }
    lease_see_epoch(l, epoch);
    if (kind == LEASE_EVENT_ELECTED) {
        lease_note_holder(l, token, token_len, epoch, LEASEHOLD_CHANGE_EXPIRED);
        /* Someone else says it won while we lead: renew soon to learn the
         * truth from the key (only its answer can end our term). */
        if (l->state == LEASE_LEADER && !own)
            hasten(l, now_ms, &l->as.leader.renewal.next_renew_ms);
    } else {
        /* A release of the holder we know of (a stale one, for an older
         * term, is ignored) ... */
        /* The release of a term handed over to another: it claims first. */
        if (l->handover_epoch && epoch == l->handover_epoch && !own &&
            now_ms + l->cfg.retry_interval_ms > l->claim_hold_ms)
            l->claim_hold_ms = now_ms + l->cfg.retry_interval_ms;
        if (lease_note_release(l, token, token_len, epoch) && (l->observer || !l->cfg.standby)) {
            /* ... and a follower claims (an observer reads) at once.  (A resign's back-off is for
             * the term it gave up, whose release it never hears as news; a later term released by
             * another is everyone's chance, or candidates that all resigned lately would wait out
             * each other's back-off.) */
            uint64_t *timer = waiting_timer(l);
            if (timer && !own)
                hasten(l, now_ms, timer);
        }
    }
    advance(l, now_ms);
}

void lease_on_request(lease *l, uint64_t now_ms, const lease_request *r)
{
    lease_check_term(l, now_ms);
    if (l->cfg.original_timing) {
        advance(l, now_ms);
        return;
    }
    bool ours = is_own_token(l, r->holder, r->holder_len);
    bool asker_ok = r->other_len > 0 && r->other_len < sizeof l->successor &&
                    !is_own_token(l, r->other, r->other_len);
    if (r->handover) {
        /* Another candidate is to succeed the term we know of: its key
         * may lapse (no release) within a lease, or be released once what
         * the term started has stopped (see the release in lease_on_event).
         * Only the holder we know, at its epoch, and once per term: a
         * forged or repeated message cannot hold claims back for longer. */
        bool known = l->holder_known && r->epoch && r->epoch == l->holder_epoch &&
                     strlen(l->holder) == r->holder_len &&
                     memcmp(l->holder, r->holder, r->holder_len) == 0;
        if (!ours && asker_ok && known && !l->observer && r->epoch != l->handover_epoch) {
            l->handover_epoch = r->epoch;
            uint64_t until = now_ms + l->cfg.lease_ms + l->cfg.retry_interval_ms;
            if (until > l->claim_hold_ms)
                l->claim_hold_ms = until;
        }
    } else if (ours && asker_ok && l->state == LEASE_LEADER && r->epoch == l->as.leader.epoch &&
               !l->as.leader.handing_over && r->priority > l->cfg.priority) {
        /* The best of the askers still asking: each asks every retry interval. */
        bool same = strlen(l->successor) == r->other_len &&
                    memcmp(l->successor, r->other, r->other_len) == 0;
        if (!asker_fresh(l, now_ms) || same || r->priority > l->successor_priority) {
            memcpy(l->successor, r->other, r->other_len);
            l->successor[r->other_len] = '\0';
            l->successor_priority = r->priority;
            l->successor_seen_ms = now_ms;
        }
    }
    advance(l, now_ms);
}

void lease_tick(lease *l, uint64_t now_ms)
{
    advance(l, now_ms);
}

void lease_resign(lease *l, uint64_t now_ms)
{
    lease_check_term(l, now_ms);
    uint64_t *timer = waiting_timer(l);
    if (l->state == LEASE_LEADER) {
        lease_revoke(l, now_ms, LEASEHOLD_RESIGNED);
    } else if (timer) {
        uint64_t later = now_ms + l->cfg.retry_interval_ms;
        if (*timer < later)
            *timer = later;
    } else if (l->state != LEASE_IDLE) {
        l->back_off = true; /* a claim that wins is given back; the next one waits */
    }
    advance(l, now_ms);
}

/* Ends the campaign.  Whatever is in flight is waited for, so that a claim
 * that won is released and LEASE_STOPPED comes only when nothing of ours is
 * left on Redis that we could have removed. */
void lease_stop(lease *l, uint64_t now_ms)
{
    lease_check_term(l, now_ms);
    switch (l->state) {
    case LEASE_IDLE:
        emit_stopped(l);
        break;
    case LEASE_FOLLOWER:
    case LEASE_OBSERVING:
        l->stopping = true;
        lease_become_follower(l, now_ms, 0);
        break;
    case LEASE_LEADER:
        l->stopping = true;
        lease_revoke(l, now_ms, LEASEHOLD_RESIGNED);
        break;
    default:
        l->stopping = true;
        break;
    }
    advance(l, now_ms);
}

void lease_halt(lease *l, uint64_t now_ms, int code)
{
    lease_check_term(l, now_ms);
    lease_halt_with(l, now_ms, (lease_action){.kind = LEASE_ERROR, .error = code});
    advance(l, now_ms);
}

void lease_resume(lease *l, uint64_t now_ms)
{
    lease_check_term(l, now_ms);
    if (l->halted) {
        l->halted = false;
        l->foreign[0] = '\0';
        uint64_t *timer = waiting_timer(l);
        if (timer)
            *timer = now_ms;
    }
    advance(l, now_ms);
}

bool lease_halted(const lease *l)
{
    return l->halted;
}

bool lease_stopping(const lease *l)
{
    return l->stopping;
}

bool lease_next_action(lease *l, lease_action *out)
{
    if (l->q_len == 0)
        return false;
    *out = l->queue[l->q_head];
    l->q_head = (l->q_head + 1) % LEASE_QUEUE_MAX;
    l->q_len--;
    return true;
}

/* Only the timers advance() acts on: a claim or read that cannot be sent
 * (disconnected, or a command in flight) is no reason to wake. */
uint64_t lease_wake_at(const lease *l)
{
    bool can_send = l->connected && !l->in_flight;
    switch (l->state) {
    case LEASE_FOLLOWER: {
        if (!can_send)
            return UINT64_MAX;
        uint64_t claim = claim_time(l);
        uint64_t ask = ask_time(l);
        return ask < claim ? ask : claim;
    }
    case LEASE_OBSERVING:
        return can_send ? read_time(l) : UINT64_MAX;
    default: {
        uint64_t term = lease_term_wake_at(l);
        uint64_t hand = handover_time(l);
        return hand < term ? hand : term;
    }
    }
}

void lease_hold_claims(lease *l, uint64_t now_ms, uint64_t until_ms)
{
    lease_check_term(l, now_ms);
    if (until_ms > l->claim_hold_ms)
        l->claim_hold_ms = until_ms;
    advance(l, now_ms);
}

void lease_gate_claims(lease *l, uint64_t now_ms, uint64_t not_before_ms)
{
    lease_check_term(l, now_ms);
    l->claim_gate_ms = not_before_ms;
    advance(l, now_ms);
}

uint64_t lease_max_epoch_seen(const lease *l)
{
    return l->max_epoch_seen;
}

lease_state lease_get_state(const lease *l)
{
    return l->state;
}

const char *lease_state_name(lease_state s)
{
    switch (s) {
    case LEASE_IDLE:
        return "idle";
    case LEASE_FOLLOWER:
        return "follower";
    case LEASE_CLAIMING:
        return "claiming";
    case LEASE_LEADER:
        return "leader";
    case LEASE_DRAINING:
        return "draining";
    case LEASE_RELEASING:
        return "releasing";
    case LEASE_OBSERVING:
        return "observing";
    case LEASE_READING:
        return "reading";
    }
    return "unknown";
}
