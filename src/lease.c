/* lease.c — the election state machine for one key (see lease.h). */
#include "lease.h"

#include "random.h"

#include <assert.h>
#include <string.h>

#include "error.h"

/* The largest epoch taken as a floor: Lua numbers are doubles, exact to 2^53,
 * so an epoch above this (forged on the events channel, say) is ignored
 * rather than allowed to make epochs stop growing. */
#define EPOCH_FLOOR_MAX (1ull << 52)

/* The margin taken off every lease for clock-rate differences between this
 * process and Redis: drift_ppm of the lease plus 2 ms of rounding. */
static uint64_t drift_ms(const lease_config *cfg)
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
    uint64_t drift = drift_ms(cfg);
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
static uint32_t jittered(lease *l, uint32_t base_ms)
{
    uint32_t low = (uint32_t)((uint64_t)base_ms * 3 / 4);
    return low + (uint32_t)(next_random(l) % (base_ms - low + 1));
}

static void push(lease *l, lease_action a)
{
    assert(l->q_len < LEASE_QUEUE_MAX && "actions must be drained after each input");
    l->queue[(l->q_head + l->q_len) % LEASE_QUEUE_MAX] = a;
    l->q_len++;
}

static void push_error(lease *l, int code)
{
    push(l, (lease_action){.kind = LEASE_ERROR, .error = code});
}

static void lose(lease *l, uint64_t now_ms, leasehold_reason reason);

/* A permanent error: a leader's term ends at once (REVOKED comes before the
 * error, so the service is cancelled before the user's callback runs), and
 * from now on no claim, renewal or read goes out until lease_resume().  A
 * command still in flight is let finish: a claim that turns out to have won
 * is given back (see won).  The error is pushed once, on the input that
 * halts; a halted election sends nothing that could fail again. */
static void halt(lease *l, uint64_t now_ms, lease_action error)
{
    if (l->halted)
        return;
    if (l->state == LEASE_LEADER)
        lose(l, now_ms, LEASEHOLD_HALTED);
    l->drain_renewing = false;
    l->halted = true;
    push(l, error);
}

/*
 * A holder seen in a reply that may not be a lease of ours.  A value with no
 * TTL (PTTL -1) is no lease at all: nothing will ever free the key, so the
 * election halts with LEASEHOLD_ENOTLEASE.  A value with a TTL that is not a
 * leasehold token belongs to another program, such as the original module,
 * which writes any value: it is waited for like any holder, and reported
 * (LEASEHOLD_EFOREIGN) once per distinct value.
 */
static void check_holder(lease *l, uint64_t now_ms, const lease_reply *r)
{
    char v[LEASE_HOLDER_MAX];
    if (!r->holder)
        return; /* a reply that names no holder (protocol.c never makes one) */
    size_t n = r->holder_len < sizeof v - 1 ? r->holder_len : sizeof v - 1;
    memcpy(v, r->holder, n);
    v[n] = '\0';
    bool token = n == r->holder_len && strlen(v) == n && leasehold_is_token(v);
    if (r->pttl_ms == -1) {
        memcpy(l->foreign, v, n + 1);
        halt(l, now_ms,
             (lease_action){.kind = LEASE_ERROR,
                            .error = LEASEHOLD_ENOTLEASE,
                            .holder = l->foreign,
                            .pttl_ms = -1});
    } else if (!token && strcmp(v, l->foreign) != 0) {
        memcpy(l->foreign, v, n + 1);
        push(l, (lease_action){.kind = LEASE_ERROR,
                               .error = LEASEHOLD_EFOREIGN,
                               .holder = l->foreign,
                               .pttl_ms = r->pttl_ms});
    }
}

/* Reports an error reply: it halts the election when no retry can fix it. */
static void reply_error(lease *l, uint64_t now_ms, int code)
{
    if (leasehold_error_is_permanent(code))
        halt(l, now_ms, (lease_action){.kind = LEASE_ERROR, .error = code});
    else
        push_error(l, code);
}

/* Emits a command.  The caller sends it right after this input, so now_ms is
 * a lower bound of the instant Redis runs it: the safety rule builds on that. */
static void send(lease *l, uint64_t now_ms, lease_action_kind kind, uint64_t epoch)
{
    assert(l->connected && !l->in_flight);
    l->seq++;
    l->in_flight = true;
    l->in_flight_kind = kind;
    l->in_flight_sent_ms = now_ms;
    push(l, (lease_action){.kind = kind, .seq = l->seq, .epoch = epoch});
}

/* Takes the reply to the command in flight: true only for the reply to the
 * command still awaited (same seq, same kind), which frees the slot. */
static bool take_reply(lease *l, uint32_t seq, lease_action_kind kind)
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

/* Notes an epoch seen anywhere, so that the next claim asks for one above
 * it: epochs then keep growing even when Redis lost the epoch key and its
 * clock went back. */
static void see_epoch(lease *l, uint64_t epoch)
{
    if (epoch > l->max_epoch_seen && epoch < EPOCH_FLOOR_MAX)
        l->max_epoch_seen = epoch;
}

/* Records the holder seen on Redis (NULL: nobody) and reports it when it
 * differs from the one seen before (another token, or another known epoch).
 * `gone` says how a term that is no longer there ended, when the key is seen
 * free: LEASEHOLD_CHANGE_RELEASED (its holder said so) or _EXPIRED. */
static void observe_holder(lease *l, const char *holder, size_t len, uint64_t epoch,
                           leasehold_change gone)
{
    see_epoch(l, epoch);
    if (!holder) {
        holder = "";
        len = 0;
    }
    if (len >= LEASE_HOLDER_MAX)
        len = LEASE_HOLDER_MAX - 1;
    /* Replies and events travel on two connections and can arrive out of
     * order: an observation older than what we know is no news.  Epochs
     * order them (0: unknown, e.g. a holder that speaks only the original
     * protocol).  A free key seen at epoch E means term E has ended: news of
     * that same term's holder is stale, while another token at epoch E is a
     * holder that hands out no epochs (the original protocol). */
    if (l->holder_known && epoch && l->holder_epoch) {
        bool ended_term = l->holder[0] == '\0' && epoch == l->holder_epoch && len &&
                          strlen(l->ended) == len && memcmp(l->ended, holder, len) == 0;
        if (epoch < l->holder_epoch || ended_term)
            return;
    }
    bool same = l->holder_known && strlen(l->holder) == len && memcmp(l->holder, holder, len) == 0;
    if (same && (epoch == 0 || l->holder_epoch == 0 || epoch == l->holder_epoch)) {
        if (epoch)
            l->holder_epoch = epoch;
        return;
    }
    lease_action a = {.kind = LEASE_LEADER_CHANGED, .change = LEASEHOLD_CHANGE_ELECTED};
    if (len == 0) {
        /* The term that ended is the one we knew of, if any. */
        memcpy(l->ended, l->holder, sizeof l->ended);
        a.change = gone;
        a.ended = l->ended;
        a.ended_epoch = l->holder_epoch;
    }
    memcpy(l->holder, holder, len);
    l->holder[len] = '\0';
    l->holder_known = true;
    l->holder_epoch = epoch;
    a.holder = len ? l->holder : NULL;
    a.epoch = len ? epoch : 0; /* nobody holds the key: no holder's epoch */
    push(l, a);
}

static void emit_stopped(lease *l)
{
    if (!l->stopped)
        push(l, (lease_action){.kind = LEASE_STOPPED});
    l->stopped = true;
}

/* Becomes a follower that claims delay_ms from now or, when the campaign is
 * ending, IDLE with LEASE_STOPPED. */
static void become_follower(lease *l, uint64_t now_ms, uint32_t delay_ms)
{
    l->drain_renewing = false;
    if (l->stopping) {
        l->state = LEASE_IDLE;
        emit_stopped(l);
        return;
    }
    /* A resign asked for while claiming, draining or releasing: give the
     * other candidates their turn first. */
    if (l->back_off && delay_ms < l->cfg.retry_interval_ms)
        delay_ms = l->cfg.retry_interval_ms;
    l->back_off = false;
    l->state = LEASE_FOLLOWER;
    l->next_claim_ms = now_ms + delay_ms;
}

/* Sends the compare-and-delete for `epoch` and waits for its answer; then
 * the follower claims claim_delay_ms later. */
static void release(lease *l, uint64_t now_ms, uint64_t epoch, uint32_t claim_delay_ms)
{
    l->release_epoch = epoch;
    l->claim_delay_ms = claim_delay_ms;
    l->state = LEASE_RELEASING;
    send(l, now_ms, LEASE_SEND_RELEASE, epoch);
}

/* Ends the term: is_leader is false from this input on.  A term given up
 * on purpose (resign, shutdown) keeps its key renewed while the service
 * stops, for up to stop_timeout_ms: nobody else can be elected until the
 * service is done and the key released, so the two never overlap. */
static void revoke(lease *l, uint64_t now_ms, leasehold_reason reason)
{
    l->state = LEASE_DRAINING;
    l->drain_reason = reason;
    l->service_stopped = false;
    l->service_abandoned = false;
    l->drain_epoch = l->epoch;
    l->epoch = 0;
    l->valid_until_ms = 0;
    l->drain_renewing = reason == LEASEHOLD_RESIGNED;
    l->drain_renew_until_ms = now_ms + l->cfg.stop_timeout_ms;
    push(l, (lease_action){.kind = LEASE_REVOKED, .reason = reason});
}

/* Ends the term on evidence that the key is not, or may not be, ours any more
 * although valid_until has not passed (another token in it, the key gone,
 * Redis's clock stepped): that can only happen when Redis lost or expired the
 * key early, so another process may lead already.  The term's deadline is
 * now, not valid_until: what acts on the term must stop at once. */
static void lose(lease *l, uint64_t now_ms, leasehold_reason reason)
{
    revoke(l, now_ms, reason);
    l->hold_until_ms = now_ms;
}

/* Reports a step of Redis's clock (see clock_jumped). */
static void push_clock_jump(lease *l, uint64_t redis_ms, uint64_t local_ms)
{
    push(l, (lease_action){.kind = LEASE_ERROR,
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
static bool clock_jumped(lease *l, uint64_t now_ms, const lease_reply *r, uint64_t *redis_ms,
                         uint64_t *local_ms)
{
    bool jumped = false;
    if (r->redis_time_us == 0)
        return false;
    if (l->clock_known && r->redis_time_us > l->clock_redis_us) {
        *redis_ms = (r->redis_time_us - l->clock_redis_us) / 1000;
        *local_ms = now_ms > l->clock_sent_ms ? now_ms - l->clock_sent_ms : 0;
        jumped = *redis_ms > *local_ms + *local_ms * l->cfg.drift_ppm / 1000000u + 2;
    }
    l->clock_known = true;
    l->clock_redis_us = r->redis_time_us;
    l->clock_sent_ms = l->in_flight_sent_ms;
    return jumped;
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
        return jittered(l, retry);
    if (r->pttl_ms >= (int64_t)retry)
        return retry;
    uint32_t spread = l->cfg.lease_ms / 400 + 1;
    return (uint32_t)r->pttl_ms + 1 + (uint32_t)(next_random(l) % spread);
}

/*
 * The safety rule.  A process may believe it is leader only while the lease
 * is certainly still its own.  Every acquire and renew is emitted by an input
 * that carries now_ms, and the caller sends it right after that input, so
 * Redis runs it no earlier than now_ms.  When Redis answers that the command
 * succeeded, the key is ours for lease_ms from that run, hence surely until
 * now_ms + lease_ms of the input that emitted it; we take off a drift of
 * lease_ms * drift_ppm / 10^6 + 2 ms for the difference between our clock's
 * rate and Redis's (and check, from Redis's TIME, that its clock keeps to
 * that rate: see clock_jumped).  That instant is valid_until, and lease_is_leader(now) is true only
 * in the LEADER state and while now < valid_until.  It is never computed from
 * a reply's arrival time, so a reply that is late, or never comes, cannot
 * stretch it.
 *
 * Every input first checks the term (check_term): a leader whose valid_until
 * has passed (the process was paused) or whose renewals have failed for
 * renew_deadline_ms ends its term before anything else is looked at.  A term
 * that ends becomes DRAINING with valid_until cleared, so is_leader is false
 * from that input on, while the service is being stopped.  Only then is the
 * key released (when it may still be ours), and only then can a new claim
 * start.  At most one command is in flight; a reply that is not the one
 * awaited is ignored.
 */
static void check_term(lease *l, uint64_t now_ms)
{
    if (l->state != LEASE_LEADER)
        return;
    if (now_ms >= l->valid_until_ms)
        revoke(l, now_ms, LEASEHOLD_EXPIRED);
    else if (now_ms >= l->last_renewed_ms + l->cfg.renew_deadline_ms)
        revoke(l, now_ms, LEASEHOLD_DEADLINE);
}

/* The service of the ended term has stopped and nothing is in flight: release
 * the key if it may still be ours, then claim again (later after a resign,
 * so that another candidate is preferred). */
static void end_drain(lease *l, uint64_t now_ms)
{
    leasehold_reason why = l->drain_reason;
    uint32_t delay = why == LEASEHOLD_RESIGNED ? l->cfg.retry_interval_ms
                                               : jittered(l, l->cfg.retry_interval_ms);
    bool may_be_ours = why == LEASEHOLD_DEADLINE || why == LEASEHOLD_DISCONNECTED ||
                       why == LEASEHOLD_RESIGNED || why == LEASEHOLD_CLOCK_JUMPED;
    /* A service that was abandoned still runs: the key is left to lapse. */
    if (may_be_ours && l->connected && !l->service_abandoned && !l->cfg.original_timing)
        release(l, now_ms, l->drain_epoch, delay);
    else
        become_follower(l, now_ms, delay);
}

/* True when a renewal may be sent at or after now_ms, once its time comes:
 * a leader's, or a resigning term's while its service stops (until
 * stop_timeout_ms has passed or renewals have failed for the deadline). */
static bool renew_possible(const lease *l)
{
    if (!l->connected || l->in_flight || l->halted)
        return false;
    return l->state == LEASE_LEADER || (l->state == LEASE_DRAINING && l->drain_renewing);
}

static bool renew_due(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_DRAINING && l->drain_renewing &&
        (now_ms >= l->drain_renew_until_ms ||
         now_ms >= l->last_renewed_ms + l->cfg.renew_deadline_ms))
        l->drain_renewing = false; /* the service took too long, or Redis is away */
    return renew_possible(l) && now_ms >= l->next_renew_ms;
}

/* When the next claim (or an observer's read) may go out: its own timer, and
 * for a claim no sooner than the restart guard allows. */
static uint64_t claim_time(const lease *l)
{
    if (l->halted)
        return UINT64_MAX;
    if (l->observer || l->next_claim_ms >= l->claim_gate_ms)
        return l->next_claim_ms;
    return l->claim_gate_ms;
}

/* Runs the timers that are due and the steps an input made possible, so that
 * after any input lease_wake_at() is in the future. */
static void advance(lease *l, uint64_t now_ms)
{
    check_term(l, now_ms);
    if (l->state == LEASE_DRAINING && l->service_stopped && !l->in_flight)
        end_drain(l, now_ms);
    if (l->state == LEASE_FOLLOWER && l->connected && now_ms >= claim_time(l)) {
        l->state = LEASE_CLAIMING;
        uint64_t floor = l->max_epoch_seen ? l->max_epoch_seen + 1 : 0;
        send(l, now_ms, l->observer ? LEASE_SEND_QUERY : LEASE_SEND_ACQUIRE,
             l->observer ? 0 : floor);
    }
    if (renew_due(l, now_ms)) {
        l->next_renew_ms = now_ms + l->cfg.renew_interval_ms;
        send(l, now_ms, LEASE_SEND_RENEW, 0);
    }
}

/* The acquire sent at sent_ms won the term `epoch`.  A reply that comes after
 * lease_stop(), or so late that the lease may already have run out (or past
 * the renew deadline, where the term would end at once), is not a term: the
 * key is released without ELECTED. */
static void won(lease *l, uint64_t now_ms, uint64_t sent_ms, uint64_t epoch, uint64_t redis_time_us)
{
    see_epoch(l, epoch);
    l->clock_known = redis_time_us != 0;
    l->clock_redis_us = redis_time_us;
    l->clock_sent_ms = sent_ms;
    uint64_t valid_until = sent_ms + l->cfg.lease_ms - drift_ms(&l->cfg);
    if (l->stopping || l->back_off || l->halted || now_ms >= sent_ms + l->cfg.renew_deadline_ms ||
        now_ms >= valid_until) {
        release(l, now_ms, epoch, jittered(l, l->cfg.retry_interval_ms));
        return;
    }
    l->state = LEASE_LEADER;
    l->hold_until_ms = valid_until;
    l->epoch = epoch;
    l->last_renewed_ms = sent_ms;
    l->valid_until_ms = valid_until;
    l->next_renew_ms = sent_ms + l->cfg.renew_interval_ms;
    observe_holder(l, l->token, l->token_len, epoch, LEASEHOLD_CHANGE_EXPIRED);
    push(l, (lease_action){.kind = LEASE_ELECTED, .epoch = epoch});
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
    l->state = LEASE_IDLE;
}

void lease_observe(lease *l, uint64_t now_ms)
{
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
    l->state = LEASE_FOLLOWER;
    l->next_claim_ms = now_ms;
    advance(l, now_ms);
}

/* A new connection: a leader renews at once, since a renew may have been
 * lost with the old connection. */
void lease_on_connected(lease *l, uint64_t now_ms)
{
    check_term(l, now_ms);
    l->connected = true;
    if (l->state == LEASE_LEADER)
        l->next_renew_ms = now_ms;
    advance(l, now_ms);
}

/* The command in flight is lost.  A claim is retried as soon as the
 * connection is back (it may have won: the next claim then finds our own
 * token and releases it).  A leader stays leader on a timeout (valid_until
 * does not move without a renewal) but not when Redis closed the connection,
 * since Redis may have restarted without the key. */
void lease_on_disconnected(lease *l, uint64_t now_ms, bool by_peer)
{
    check_term(l, now_ms);
    l->connected = false;
    l->in_flight = false;
    switch (l->state) {
    case LEASE_CLAIMING:
        become_follower(l, now_ms, 0);
        break;
    case LEASE_LEADER:
        if (by_peer)
            revoke(l, now_ms, LEASEHOLD_DISCONNECTED);
        break;
    case LEASE_RELEASING:
        become_follower(l, now_ms, l->claim_delay_ms);
        break;
    default:
        break;
    }
    advance(l, now_ms);
}

void lease_on_acquire(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    check_term(l, now_ms);
    if (take_reply(l, seq, LEASE_SEND_ACQUIRE)) {
        switch (r->result) {
        case LEASE_ACQUIRED:
            won(l, now_ms, l->in_flight_sent_ms, r->epoch, r->redis_time_us);
            break;
        case LEASE_ACQUIRE_QUARANTINED: {
            /* Redis lost the epoch key (or never had it): nobody may be
             * elected until the quarantine it set has run out. */
            uint32_t spread = l->cfg.lease_ms / 400 + 1;
            uint64_t wait = r->pttl_ms > 0 ? (uint64_t)r->pttl_ms : 0;
            if (wait > l->cfg.lease_ms)
                wait = l->cfg.lease_ms;
            become_follower(l, now_ms, (uint32_t)wait + 1 + (uint32_t)(next_random(l) % spread));
            break;
        }
        case LEASE_ACQUIRE_HELD:
            if (is_own_token(l, r->holder, r->holder_len) && l->service_abandoned &&
                r->epoch == l->drain_epoch) {
                /* The key of a term whose service was abandoned and still
                 * runs: it must lapse, not be released. */
                become_follower(l, now_ms, claim_delay_after(l, r, true));
                break;
            }
            if (is_own_token(l, r->holder, r->holder_len)) {
                see_epoch(l, r->epoch);
                /* A claim of ours won earlier but its reply was lost: give
                 * the key back and claim again as soon as that is done. */
                release(l, now_ms, r->epoch, 0);
                break;
            }
            observe_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            check_holder(l, now_ms, r);
            become_follower(l, now_ms, claim_delay_after(l, r, true));
            break;
        default:
            reply_error(l, now_ms, r->error);
            become_follower(l, now_ms, claim_delay_after(l, r, false));
            break;
        }
    }
    advance(l, now_ms);
}

/* A renew's answer.  In DRAINING it is the renew sent before the term ended:
 * it only frees the slot, so that the release can go. */
void lease_on_renew(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    check_term(l, now_ms);
    bool mine = take_reply(l, seq, LEASE_SEND_RENEW);
    uint64_t redis_ms = 0, local_ms = 0;
    bool jumped = mine && (l->state == LEASE_LEADER || l->drain_renewing) &&
                  clock_jumped(l, now_ms, r, &redis_ms, &local_ms);
    if (mine && l->state == LEASE_DRAINING && l->drain_renewing) {
        if (jumped) {
            /* The key may be gone already: stop holding it, stop now. */
            l->drain_renewing = false;
            l->hold_until_ms = now_ms;
            push_clock_jump(l, redis_ms, local_ms);
        } else if (r->result == LEASE_RENEWED) {
            l->last_renewed_ms = l->in_flight_sent_ms;
            l->hold_until_ms = l->in_flight_sent_ms + l->cfg.lease_ms - drift_ms(&l->cfg);
        } else if (r->result != LEASE_RENEW_FAILED) {
            l->drain_renewing = false; /* no longer ours: nothing to hold */
        }
    }
    if (mine && l->state == LEASE_LEADER && jumped) {
        /* REVOKED first: it cancels the service before the user's error
         * callback runs, however long that takes. */
        lose(l, now_ms, LEASEHOLD_CLOCK_JUMPED);
        push_clock_jump(l, redis_ms, local_ms);
        if (r->result == LEASE_RENEW_HELD)
            observe_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
        else if (r->result == LEASE_RENEW_MISSING)
            observe_holder(l, NULL, 0, 0, LEASEHOLD_CHANGE_EXPIRED);
    } else if (mine && l->state == LEASE_LEADER) {
        switch (r->result) {
        case LEASE_RENEWED:
            l->last_renewed_ms = l->in_flight_sent_ms;
            l->valid_until_ms = l->in_flight_sent_ms + l->cfg.lease_ms - drift_ms(&l->cfg);
            l->hold_until_ms = l->valid_until_ms;
            break;
        case LEASE_RENEW_HELD:
            lose(l, now_ms, LEASEHOLD_LOST);
            observe_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            break;
        case LEASE_RENEW_MISSING:
            lose(l, now_ms, LEASEHOLD_EXPIRED);
            observe_holder(l, NULL, 0, 0, LEASEHOLD_CHANGE_EXPIRED);
            break;
        default:
            reply_error(l, now_ms, r->error);
            break;
        }
    } else if (mine && r->result == LEASE_RENEW_FAILED && leasehold_error_is_permanent(r->error)) {
        reply_error(l, now_ms, r->error); /* a resigning term's renewal */
    }
    advance(l, now_ms);
}

void lease_on_release(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    check_term(l, now_ms);
    if (take_reply(l, seq, LEASE_SEND_RELEASE)) {
        if (r->result < 0)
            reply_error(l, now_ms, r->result);
        else if (r->result == 1)
            observe_holder(l, NULL, 0, l->release_epoch, LEASEHOLD_CHANGE_RELEASED);
        /* A release that found the key not ours (or not of that epoch: its
         * epoch key is gone) must not turn into a release-claim loop. */
        uint32_t delay = l->claim_delay_ms;
        if (r->result != 1 && delay < l->cfg.retry_interval_ms / 4)
            delay = jittered(l, l->cfg.retry_interval_ms);
        become_follower(l, now_ms, delay);
    }
    advance(l, now_ms);
}

void lease_on_query(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    check_term(l, now_ms);
    if (take_reply(l, seq, LEASE_SEND_QUERY)) {
        switch (r->result) {
        case LEASE_QUERY_HELD:
            observe_holder(l, r->holder, r->holder_len, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            check_holder(l, now_ms, r);
            become_follower(l, now_ms, claim_delay_after(l, r, true));
            break;
        case LEASE_QUERY_FREE:
            observe_holder(l, NULL, 0, r->epoch, LEASEHOLD_CHANGE_EXPIRED);
            become_follower(l, now_ms, l->cfg.retry_interval_ms);
            break;
        default:
            reply_error(l, now_ms, r->error);
            become_follower(l, now_ms, claim_delay_after(l, r, false));
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
    check_term(l, now_ms);
    if (l->cfg.original_timing) {
        advance(l, now_ms);
        return;
    }
    bool own = is_own_token(l, token, token_len);
    see_epoch(l, epoch);
    if (kind == LEASE_EVENT_ELECTED) {
        observe_holder(l, token, token_len, epoch, LEASEHOLD_CHANGE_EXPIRED);
        /* Someone else says it won while we lead: renew soon to learn the
         * truth from the key (only its answer can end our term). */
        if (l->state == LEASE_LEADER && !own)
            hasten(l, now_ms, &l->next_renew_ms);
    } else {
        /* A release of the holder we know of (a stale one, for an older
         * term, is ignored); and a follower claims at once. */
        size_t cut = token_len < LEASE_HOLDER_MAX ? token_len : LEASE_HOLDER_MAX - 1;
        if (!l->holder_known) { /* the news names the holder we had not seen */
            memcpy(l->holder, token, cut);
            l->holder[cut] = '\0';
            l->holder_epoch = epoch;
            l->holder_known = true;
        }
        bool same_term = !epoch || !l->holder_epoch || epoch == l->holder_epoch;
        if (same_term && strlen(l->holder) == cut && memcmp(l->holder, token, cut) == 0) {
            observe_holder(l, NULL, 0, epoch, LEASEHOLD_CHANGE_RELEASED);
            /* A follower claims at once.  (A resign's back-off is for the
             * term it gave up, whose release it never hears as news; a
             * later term released by another is everyone's chance, or
             * candidates that all resigned lately would wait out each
             * other's back-off.) */
            if (l->state == LEASE_FOLLOWER && !own)
                hasten(l, now_ms, &l->next_claim_ms);
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
    check_term(l, now_ms);
    if (l->state == LEASE_LEADER) {
        revoke(l, now_ms, LEASEHOLD_RESIGNED);
    } else if (l->state == LEASE_FOLLOWER) {
        uint64_t later = now_ms + l->cfg.retry_interval_ms;
        if (l->next_claim_ms < later)
            l->next_claim_ms = later;
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
    check_term(l, now_ms);
    switch (l->state) {
    case LEASE_IDLE:
        emit_stopped(l);
        break;
    case LEASE_FOLLOWER:
        l->stopping = true;
        become_follower(l, now_ms, 0);
        break;
    case LEASE_LEADER:
        l->stopping = true;
        revoke(l, now_ms, LEASEHOLD_RESIGNED);
        break;
    default:
        l->stopping = true;
        break;
    }
    advance(l, now_ms);
}

void lease_service_abandoned(lease *l, uint64_t now_ms)
{
    if (l->state == LEASE_DRAINING)
        l->service_abandoned = true;
    lease_service_stopped(l, now_ms);
}

void lease_service_stopped(lease *l, uint64_t now_ms)
{
    /* Only a term that had already ended has a service that stopped; the
     * clock is looked at afterwards. */
    if (l->state == LEASE_DRAINING)
        l->service_stopped = true;
    advance(l, now_ms);
}

void lease_halt(lease *l, uint64_t now_ms, int code)
{
    check_term(l, now_ms);
    halt(l, now_ms, (lease_action){.kind = LEASE_ERROR, .error = code});
    advance(l, now_ms);
}

void lease_resume(lease *l, uint64_t now_ms)
{
    check_term(l, now_ms);
    if (l->halted) {
        l->halted = false;
        l->foreign[0] = '\0';
        if (l->state == LEASE_FOLLOWER)
            l->next_claim_ms = now_ms;
    }
    advance(l, now_ms);
}

bool lease_halted(const lease *l)
{
    return l->halted;
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

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Only the timers advance() acts on: a claim or renew that cannot be sent
 * (disconnected, or a command in flight) is no reason to wake. */
uint64_t lease_wake_at(const lease *l)
{
    bool can_send = l->connected && !l->in_flight;
    switch (l->state) {
    case LEASE_FOLLOWER:
        return can_send ? claim_time(l) : UINT64_MAX;
    case LEASE_LEADER: {
        uint64_t at = earliest(l->valid_until_ms, l->last_renewed_ms + l->cfg.renew_deadline_ms);
        return can_send ? earliest(at, l->next_renew_ms) : at;
    }
    case LEASE_DRAINING: /* a resigning term renews while its service stops */
        return renew_possible(l) ? l->next_renew_ms : UINT64_MAX;
    default:
        return UINT64_MAX;
    }
}

bool lease_is_leader(const lease *l, uint64_t now_ms)
{
    return l->state == LEASE_LEADER && now_ms < l->valid_until_ms;
}

void lease_gate_claims(lease *l, uint64_t now_ms, uint64_t not_before_ms)
{
    check_term(l, now_ms);
    l->claim_gate_ms = not_before_ms;
    advance(l, now_ms);
}

uint64_t lease_max_epoch_seen(const lease *l)
{
    return l->max_epoch_seen;
}

uint64_t lease_hold_until(const lease *l)
{
    return l->hold_until_ms;
}

uint64_t lease_valid_until(const lease *l)
{
    return l->state == LEASE_LEADER ? l->valid_until_ms : 0;
}

uint64_t lease_epoch(const lease *l)
{
    return l->state == LEASE_LEADER ? l->epoch : 0;
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
    }
    return "unknown";
}
