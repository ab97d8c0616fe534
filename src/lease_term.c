/* lease_term.c — a term of the election state machine (see lease.h): won,
 * renewed, ended, drained while its service stops, released.  The safety
 * rule lives here. */
#include "lease_internal.h"

#include <assert.h>

/*
 * The safety rule.  A process may believe it is leader only while the lease
 * is certainly still its own.  Every acquire and renew is emitted by an input
 * that carries now_ms, and the caller sends it right after that input, so
 * Redis runs it no earlier than now_ms.  When Redis answers that the command
 * succeeded, the key is ours for lease_ms from that run, hence surely until
 * now_ms + lease_ms of the input that emitted it; we take off a drift of
 * lease_ms * drift_ppm / 10^6 + 2 ms for the difference between our clock's
 * rate and Redis's (and check, from Redis's TIME, that its clock keeps to
 * that rate: see clock_jumped).  That instant is valid_until, and
 * lease_is_leader(now) is true only in the LEADER state and while
 * now < valid_until.  It is never computed from a reply's arrival time, so a
 * reply that is late, or never comes, cannot stretch it.
 *
 * Every input first checks the term (lease_check_term): a leader whose
 * valid_until has passed (the process was paused) or whose renewals have
 * failed for renew_deadline_ms ends its term before anything else is looked
 * at.  A term that ends becomes DRAINING, whose part of the struct has no
 * valid_until, so is_leader is false from that input on, while the service
 * is being stopped.  Only then is the key released (when it may still be
 * ours), and only then can a new claim start.  At most one command is in
 * flight; a reply that is not the one awaited is ignored.
 */
void lease_check_term(lease *l, uint64_t now_ms)
{
    if (l->state != LEASE_LEADER)
        return;
    if (now_ms >= l->as.leader.valid_until_ms)
        lease_revoke(l, now_ms, LEASEHOLD_EXPIRED);
    else if (now_ms >= l->as.leader.renewal.last_renewed_ms + l->cfg.renew_deadline_ms)
        lease_revoke(l, now_ms, LEASEHOLD_DEADLINE);
}

/* A reply that comes after lease_stop(), or so late that the lease may
 * already have run out (or past the renew deadline, where the term would end
 * at once), is not a term: the key is released without ELECTED. */
void lease_won(lease *l, uint64_t now_ms, uint64_t sent_ms, uint64_t epoch, uint64_t redis_time_us)
{
    lease_see_epoch(l, epoch);
    uint64_t valid_until = sent_ms + l->cfg.lease_ms - lease_drift_ms(&l->cfg);
    if (l->stopping || l->back_off || l->halted || now_ms >= sent_ms + l->cfg.renew_deadline_ms ||
        now_ms >= valid_until) {
        lease_send_release(l, now_ms, epoch, lease_jittered(l, l->cfg.retry_interval_ms));
        return;
    }
    lease_enter(l, LEASE_LEADER);
    l->as.leader.epoch = epoch;
    l->as.leader.won_ms = now_ms;
    l->as.leader.valid_until_ms = valid_until;
    l->as.leader.renewal = (lease_renewal){
        .last_renewed_ms = sent_ms,
        .next_renew_ms = sent_ms + l->cfg.renew_interval_ms,
        .clock_known = redis_time_us != 0,
        .clock_redis_us = redis_time_us,
        .clock_sent_ms = sent_ms,
    };
    l->hold_until_ms = valid_until;
    lease_note_holder(l, l->token, l->token_len, epoch, LEASEHOLD_CHANGE_EXPIRED);
    lease_push(l, (lease_action){.kind = LEASE_ELECTED, .epoch = epoch});
}

/* is_leader is false from this input on.  A term given up on purpose
 * (resign, shutdown) keeps its key renewed while the service stops, for up
 * to stop_timeout_ms: nobody else can be elected until the service is done
 * and the key released, so the two never overlap. */
void lease_revoke(lease *l, uint64_t now_ms, leasehold_reason reason)
{
    assert(l->state == LEASE_LEADER);
    uint64_t epoch = l->as.leader.epoch;
    lease_renewal renewal = l->as.leader.renewal;
    lease_enter(l, LEASE_DRAINING);
    l->as.draining.reason = reason;
    l->as.draining.epoch = epoch;
    l->as.draining.renewal = renewal;
    l->as.draining.renewing = reason == LEASEHOLD_RESIGNED;
    l->as.draining.renew_until_ms = now_ms + l->cfg.stop_timeout_ms;
    l->abandoned = false;
    lease_push(l, (lease_action){.kind = LEASE_REVOKED, .reason = reason});
}

/* The evidence (another token in the key, the key gone, Redis's clock
 * stepped) can only come while valid_until has not passed when Redis lost or
 * expired the key early, so another process may lead already.  The term's
 * deadline is now, not valid_until: what acts on the term must stop at once. */
void lease_lose(lease *l, uint64_t now_ms, leasehold_reason reason)
{
    lease_revoke(l, now_ms, reason);
    l->hold_until_ms = now_ms;
}

/* The compare-and-delete removes the key only while it holds our token at
 * `epoch`; its answer is taken by lease_on_release. */
void lease_send_release(lease *l, uint64_t now_ms, uint64_t epoch, uint32_t claim_delay_ms)
{
    lease_enter(l, LEASE_RELEASING);
    l->as.releasing.epoch = epoch;
    l->as.releasing.claim_delay_ms = claim_delay_ms;
    lease_queue_send(l, now_ms, LEASE_SEND_RELEASE, epoch);
}

/* Reports a step of Redis's clock (see clock_jumped). */
static void push_clock_jump(lease *l, uint64_t redis_ms, uint64_t local_ms)
{
    lease_push(l, (lease_action){.kind = LEASE_ERROR,
                                 .error = LEASEHOLD_ECLOCKJUMP,
                                 .redis_ms = redis_ms,
                                 .local_ms = local_ms});
}

/*
 * Redis counts a key's TTL on its host's wall clock, so a step of that clock
 * shortens every lease on it at once.  Each acquire and renew reply carries
 * Redis's TIME when it ran.  Between the previous command's run (at or after
 * its send, clock_sent_ms) and this reply's arrival (now_ms) our clock
 * advanced at most now_ms - clock_sent_ms; Redis's may advance more by the
 * drift allowance only (plus 2 ms of rounding).  More than that is a step,
 * and valid_until cannot be trusted.  A step back lengthens TTLs (safe) and
 * is not reported here.  Takes r's TIME as the next comparison's base.
 */
static bool clock_jumped(lease *l, lease_renewal *rn, uint64_t now_ms, const lease_reply *r,
                         uint64_t *redis_ms, uint64_t *local_ms)
{
    bool jumped = false;
    if (r->redis_time_us == 0)
        return false;
    if (rn->clock_known && r->redis_time_us > rn->clock_redis_us) {
        *redis_ms = (r->redis_time_us - rn->clock_redis_us) / 1000;
        *local_ms = now_ms > rn->clock_sent_ms ? now_ms - rn->clock_sent_ms : 0;
        jumped = *redis_ms > *local_ms + *local_ms * l->cfg.drift_ppm / 1000000u + 2;
    }
    rn->clock_known = true;
    rn->clock_redis_us = r->redis_time_us;
    rn->clock_sent_ms = l->in_flight_sent_ms;
    return jumped;
}

/* The renewals that go on: a leader's, or a resigning term's while its
 * service stops; NULL when the key is not being renewed. */
static lease_renewal *renewing(lease *l)
{
    if (l->state == LEASE_LEADER)
        return &l->as.leader.renewal;
    if (l->state == LEASE_DRAINING && l->as.draining.renewing)
        return &l->as.draining.renewal;
    return NULL;
}

/* A resigning term's renewal: it keeps the key held while the service stops. */
static void drain_renewed(lease *l, uint64_t now_ms, const lease_reply *r, bool jumped,
                          uint64_t redis_ms, uint64_t local_ms)
{
    if (jumped) {
        /* The key may be gone already: stop holding it, stop now. */
        l->as.draining.renewing = false;
        l->hold_until_ms = now_ms;
        push_clock_jump(l, redis_ms, local_ms);
    } else if (r->result == LEASE_RENEWED) {
        l->as.draining.renewal.last_renewed_ms = l->in_flight_sent_ms;
        l->hold_until_ms = l->in_flight_sent_ms + l->cfg.lease_ms - lease_drift_ms(&l->cfg);
    } else if (r->result != LEASE_RENEW_FAILED) {
        l->as.draining.renewing = false; /* no longer ours: nothing to hold */
    }
}

/* A leader's renewal: it moves valid_until, or ends the term. */
static void leader_renewed(lease *l, uint64_t now_ms, const lease_reply *r, bool jumped,
                           uint64_t redis_ms, uint64_t local_ms)
{
    if (jumped) {
        /* REVOKED first: it cancels the service before the user's error
         * callback runs, however long that takes. */
        lease_lose(l, now_ms, LEASEHOLD_CLOCK_JUMPED);
        push_clock_jump(l, redis_ms, local_ms);
        if (r->result == LEASE_RENEW_HELD)
            lease_note_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
        else if (r->result == LEASE_RENEW_MISSING)
            lease_note_holder(l, NULL, 0, 0, LEASEHOLD_CHANGE_EXPIRED);
        return;
    }
    switch (r->result) {
    case LEASE_RENEWED:
        l->as.leader.renewal.last_renewed_ms = l->in_flight_sent_ms;
        l->as.leader.valid_until_ms =
            l->in_flight_sent_ms + l->cfg.lease_ms - lease_drift_ms(&l->cfg);
        l->hold_until_ms = l->as.leader.valid_until_ms;
        break;
    case LEASE_RENEW_HELD:
        lease_lose(l, now_ms, LEASEHOLD_LOST);
        lease_note_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
        break;
    case LEASE_RENEW_MISSING:
        lease_lose(l, now_ms, LEASEHOLD_EXPIRED);
        lease_note_holder(l, NULL, 0, 0, LEASEHOLD_CHANGE_EXPIRED);
        break;
    default:
        lease_reply_error(l, now_ms, r->error);
        break;
    }
}

/* A renew's answer.  In DRAINING without renewals it is the renew sent
 * before the term ended: it only frees the slot, so that the release can go. */
void lease_on_renew(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    lease_check_term(l, now_ms);
    bool mine = lease_take_reply(l, seq, LEASE_SEND_RENEW);
    lease_renewal *rn = mine ? renewing(l) : NULL;
    uint64_t redis_ms = 0, local_ms = 0;
    bool jumped = rn && clock_jumped(l, rn, now_ms, r, &redis_ms, &local_ms);
    if (rn && l->state == LEASE_DRAINING)
        drain_renewed(l, now_ms, r, jumped, redis_ms, local_ms);
    if (mine && l->state == LEASE_LEADER)
        leader_renewed(l, now_ms, r, jumped, redis_ms, local_ms);
    else if (mine && r->result == LEASE_RENEW_FAILED && leasehold_error_is_permanent(r->error))
        lease_reply_error(l, now_ms, r->error); /* a resigning term's renewal */
    lease_tick(l, now_ms);
}

/* A release's answer: the key reported free when it was deleted, then the
 * follower's wait before its next claim. */
void lease_on_release(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    lease_check_term(l, now_ms);
    if (lease_take_reply(l, seq, LEASE_SEND_RELEASE)) {
        assert(l->state == LEASE_RELEASING);
        if (r->result < 0)
            lease_reply_error(l, now_ms, r->result);
        else if (r->result == 1)
            lease_note_holder(l, NULL, 0, l->as.releasing.epoch, LEASEHOLD_CHANGE_RELEASED);
        /* A release that found the key not ours (or not of that epoch: its
         * epoch key is gone) must not turn into a release-claim loop. */
        uint32_t delay = l->as.releasing.claim_delay_ms;
        if (r->result != 1 && delay < l->cfg.retry_interval_ms / 4)
            delay = lease_jittered(l, l->cfg.retry_interval_ms);
        lease_become_follower(l, now_ms, delay);
    }
    lease_tick(l, now_ms);
}

/* The term ends as if its service had stopped, but its key is left to
 * lapse (see end_drain), and a claim that finds it later does not release it
 * either (lease_on_acquire). */
void lease_service_abandoned(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_DRAINING) {
        l->abandoned = true;
        l->abandoned_epoch = l->as.draining.epoch;
    }
    lease_service_stopped(l, now_ms);
}

void lease_service_stopped(lease *l, uint64_t now_ms)
{
    /* Only a term that had already ended has a service that stopped; the
     * clock is looked at afterwards. */
    if (l->state == LEASE_DRAINING)
        l->as.draining.service_stopped = true;
    lease_tick(l, now_ms);
}

/* The service of the ended term has stopped and nothing is in flight: release
 * the key if it may still be ours, then claim again (later after a resign,
 * so that another candidate is preferred). */
static void end_drain(lease *l, uint64_t now_ms)
{
    leasehold_reason why = l->as.draining.reason;
    uint32_t delay = why == LEASEHOLD_RESIGNED ? l->cfg.retry_interval_ms
                                               : lease_jittered(l, l->cfg.retry_interval_ms);
    bool may_be_ours = why == LEASEHOLD_DEADLINE || why == LEASEHOLD_DISCONNECTED ||
                       why == LEASEHOLD_RESIGNED || why == LEASEHOLD_CLOCK_JUMPED;
    /* A service that was abandoned still runs: the key is left to lapse. */
    if (may_be_ours && l->connected && !l->abandoned && !l->cfg.original_timing)
        lease_send_release(l, now_ms, l->as.draining.epoch, delay);
    else
        lease_become_follower(l, now_ms, delay);
}

/* True when a renewal may be sent, once its time comes: a leader's, or a
 * resigning term's while its service stops (until stop_timeout_ms has passed
 * or renewals have failed for the deadline). */
static bool renew_possible(const lease *l)
{
    if (!l->connected || l->in_flight || l->halted)
        return false;
    return l->state == LEASE_LEADER || (l->state == LEASE_DRAINING && l->as.draining.renewing);
}

/* True when a renewal is to be sent now; a resigning term stops renewing
 * once its service took too long or Redis stayed away past the deadline. */
static bool renew_due(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_DRAINING && l->as.draining.renewing &&
        (now_ms >= l->as.draining.renew_until_ms ||
         now_ms >= l->as.draining.renewal.last_renewed_ms + l->cfg.renew_deadline_ms))
        l->as.draining.renewing = false; /* the service took too long, or Redis is away */
    return renew_possible(l) && now_ms >= renewing(l)->next_renew_ms;
}

/* Assumes lease_check_term ran first in this input.  A drain's end may
 * leave the state FOLLOWER, whose claim the caller then looks at. */
void lease_term_advance(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_DRAINING && l->as.draining.service_stopped && !l->in_flight)
        end_drain(l, now_ms);
    if (renew_due(l, now_ms)) {
        renewing(l)->next_renew_ms = now_ms + l->cfg.renew_interval_ms;
        lease_queue_send(l, now_ms, LEASE_SEND_RENEW, 0);
    }
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Only the timers lease_term_advance acts on: a renew that cannot be sent
 * (disconnected, or a command in flight) is no reason to wake, while the
 * end of valid_until and the renew deadline always are. */
uint64_t lease_term_wake_at(const lease *l)
{
    bool can_send = l->connected && !l->in_flight;
    switch (l->state) {
    case LEASE_LEADER: {
        const lease_renewal *rn = &l->as.leader.renewal;
        uint64_t at =
            earliest(l->as.leader.valid_until_ms, rn->last_renewed_ms + l->cfg.renew_deadline_ms);
        return can_send ? earliest(at, rn->next_renew_ms) : at;
    }
    case LEASE_DRAINING: /* a resigning term renews while its service stops */
        return renew_possible(l) ? l->as.draining.renewal.next_renew_ms : UINT64_MAX;
    default:
        return UINT64_MAX;
    }
}

bool lease_is_leader(const lease *l, uint64_t now_ms)
{
    return l->state == LEASE_LEADER && now_ms < l->as.leader.valid_until_ms;
}

uint64_t lease_valid_until(const lease *l)
{
    return l->state == LEASE_LEADER ? l->as.leader.valid_until_ms : 0;
}

uint64_t lease_epoch(const lease *l)
{
    return l->state == LEASE_LEADER ? l->as.leader.epoch : 0;
}

uint64_t lease_hold_until(const lease *l)
{
    return l->hold_until_ms;
}
