/* lease.c — the election state machine for one key (see lease.h). */
#include "lease.h"

#include <assert.h>
#include <string.h>

#include "error.h"

/* The margin taken off every lease for clock-rate differences between this
 * process and Redis: 1% of the lease plus 2 ms of rounding. */
static uint64_t drift_ms(const lease_config *cfg)
{
    return cfg->lease_ms / 100 + 2;
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
 *   be tried again, on a new connection, before the deadline.
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

/* splitmix64: the jitter generator.  Seeded once, so a run replays exactly. */
static uint64_t next_random(lease *l)
{
    uint64_t z = (l->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
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

/* Records the holder seen on Redis (NULL: nobody) and reports it when it
 * differs from the one seen before (another token, or another known epoch). */
static void observe_holder(lease *l, const char *holder, size_t len, uint64_t epoch)
{
    if (!holder) {
        holder = "";
        len = 0;
    }
    if (len >= LEASE_HOLDER_MAX)
        len = LEASE_HOLDER_MAX - 1;
    bool same = l->holder_known && strlen(l->holder) == len && memcmp(l->holder, holder, len) == 0;
    if (same && (epoch == 0 || l->holder_epoch == 0 || epoch == l->holder_epoch)) {
        if (epoch)
            l->holder_epoch = epoch;
        return;
    }
    memcpy(l->holder, holder, len);
    l->holder[len] = '\0';
    l->holder_known = true;
    l->holder_epoch = epoch;
    push(l, (lease_action){
                .kind = LEASE_LEADER_CHANGED, .holder = len ? l->holder : NULL, .epoch = epoch});
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
    if (l->stopping) {
        l->state = LEASE_IDLE;
        emit_stopped(l);
        return;
    }
    l->state = LEASE_FOLLOWER;
    l->next_claim_ms = now_ms + delay_ms;
}

/* Sends the compare-and-delete for `epoch` and waits for its answer; then
 * the follower claims claim_delay_ms later. */
static void release(lease *l, uint64_t now_ms, uint64_t epoch, uint32_t claim_delay_ms)
{
    l->claim_delay_ms = claim_delay_ms;
    l->state = LEASE_RELEASING;
    send(l, now_ms, LEASE_SEND_RELEASE, epoch);
}

/* Ends the term: is_leader is false from this input on. */
static void revoke(lease *l, leasehold_reason reason)
{
    l->state = LEASE_DRAINING;
    l->drain_reason = reason;
    l->service_stopped = false;
    l->drain_epoch = l->epoch;
    l->epoch = 0;
    l->valid_until_ms = 0;
    push(l, (lease_action){.kind = LEASE_REVOKED, .reason = reason});
}

/* When a follower claims again after an acquire that did not win.  This is
 * the one place that decides it: today a jittered retry interval; the PTTL
 * in the reply will let it claim as the key expires (a later change). */
static uint32_t claim_delay_after(lease *l, const lease_reply *r)
{
    (void)r;
    return jittered(l, l->cfg.retry_interval_ms);
}

/*
 * The safety rule.  A process may believe it is leader only while the lease
 * is certainly still its own.  Every acquire and renew is emitted by an input
 * that carries now_ms, and the caller sends it right after that input, so
 * Redis runs it no earlier than now_ms.  When Redis answers that the command
 * succeeded, the key is ours for lease_ms from that run, hence surely until
 * now_ms + lease_ms of the input that emitted it; we take off a drift of
 * lease_ms / 100 + 2 ms for the difference between our clock's rate and
 * Redis's.  That instant is valid_until, and lease_is_leader(now) is true only
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
        revoke(l, LEASEHOLD_EXPIRED);
    else if (now_ms >= l->last_renewed_ms + l->cfg.renew_deadline_ms)
        revoke(l, LEASEHOLD_DEADLINE);
}

/* The service of the ended term has stopped and nothing is in flight: release
 * the key if it may still be ours, then claim again (later after a resign,
 * so that another candidate is preferred). */
static void end_drain(lease *l, uint64_t now_ms)
{
    leasehold_reason why = l->drain_reason;
    uint32_t delay = why == LEASEHOLD_RESIGNED ? l->cfg.retry_interval_ms
                                               : jittered(l, l->cfg.retry_interval_ms);
    bool may_be_ours =
        why == LEASEHOLD_DEADLINE || why == LEASEHOLD_DISCONNECTED || why == LEASEHOLD_RESIGNED;
    if (may_be_ours && l->connected)
        release(l, now_ms, l->drain_epoch, delay);
    else
        become_follower(l, now_ms, delay);
}

/* Runs the timers that are due and the steps an input made possible, so that
 * after any input lease_wake_at() is in the future. */
static void advance(lease *l, uint64_t now_ms)
{
    check_term(l, now_ms);
    if (l->state == LEASE_DRAINING && l->service_stopped && !l->in_flight)
        end_drain(l, now_ms);
    if (l->state == LEASE_FOLLOWER && l->connected && now_ms >= l->next_claim_ms) {
        l->state = LEASE_CLAIMING;
        send(l, now_ms, LEASE_SEND_ACQUIRE, 0);
    }
    if (l->state == LEASE_LEADER && l->connected && !l->in_flight && now_ms >= l->next_renew_ms) {
        l->next_renew_ms = now_ms + l->cfg.renew_interval_ms;
        send(l, now_ms, LEASE_SEND_RENEW, 0);
    }
}

/* The acquire sent at sent_ms won the term `epoch`.  A reply that comes after
 * lease_stop(), or so late that the lease may already have run out (or past
 * the renew deadline, where the term would end at once), is not a term: the
 * key is released without ELECTED. */
static void won(lease *l, uint64_t now_ms, uint64_t sent_ms, uint64_t epoch)
{
    uint64_t valid_until = sent_ms + l->cfg.lease_ms - drift_ms(&l->cfg);
    if (l->stopping || now_ms >= sent_ms + l->cfg.renew_deadline_ms || now_ms >= valid_until) {
        release(l, now_ms, epoch, jittered(l, l->cfg.retry_interval_ms));
        return;
    }
    l->state = LEASE_LEADER;
    l->epoch = epoch;
    l->last_renewed_ms = sent_ms;
    l->valid_until_ms = valid_until;
    l->next_renew_ms = sent_ms + l->cfg.renew_interval_ms;
    memcpy(l->holder, l->token, l->token_len + 1);
    l->holder_known = true;
    l->holder_epoch = epoch;
    push(l, (lease_action){.kind = LEASE_LEADER_CHANGED, .holder = l->holder, .epoch = epoch});
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

void lease_start(lease *l, uint64_t now_ms)
{
    if (l->state != LEASE_IDLE)
        return;
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
            revoke(l, LEASEHOLD_DISCONNECTED);
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
            won(l, now_ms, l->in_flight_sent_ms, r->epoch);
            break;
        case LEASE_ACQUIRE_HELD:
            if (is_own_token(l, r->holder, r->holder_len)) {
                /* A claim of ours won earlier but its reply was lost: give
                 * the key back and claim again as soon as that is done. */
                release(l, now_ms, r->epoch, 0);
                break;
            }
            observe_holder(l, r->holder, r->holder_len, r->epoch);
            become_follower(l, now_ms, claim_delay_after(l, r));
            break;
        default:
            push_error(l, r->error);
            become_follower(l, now_ms, claim_delay_after(l, r));
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
    if (take_reply(l, seq, LEASE_SEND_RENEW) && l->state == LEASE_LEADER) {
        switch (r->result) {
        case LEASE_RENEWED:
            l->last_renewed_ms = l->in_flight_sent_ms;
            l->valid_until_ms = l->in_flight_sent_ms + l->cfg.lease_ms - drift_ms(&l->cfg);
            break;
        case LEASE_RENEW_HELD:
            revoke(l, LEASEHOLD_LOST);
            observe_holder(l, r->holder, r->holder_len, r->epoch);
            break;
        case LEASE_RENEW_MISSING:
            revoke(l, LEASEHOLD_EXPIRED);
            observe_holder(l, NULL, 0, 0);
            break;
        default:
            if (r->error == LEASEHOLD_EWRONGTYPE)
                revoke(l, LEASEHOLD_LOST);
            push_error(l, r->error);
            break;
        }
    }
    advance(l, now_ms);
}

void lease_on_release(lease *l, uint64_t now_ms, uint32_t seq, const lease_reply *r)
{
    check_term(l, now_ms);
    if (take_reply(l, seq, LEASE_SEND_RELEASE)) {
        if (r->result < 0)
            push_error(l, r->result);
        else if (r->result == 1)
            observe_holder(l, NULL, 0, 0);
        become_follower(l, now_ms, l->claim_delay_ms);
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
        revoke(l, LEASEHOLD_RESIGNED);
    } else if (l->state == LEASE_FOLLOWER) {
        uint64_t later = now_ms + l->cfg.retry_interval_ms;
        if (l->next_claim_ms < later)
            l->next_claim_ms = later;
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
        revoke(l, LEASEHOLD_RESIGNED);
        break;
    default:
        l->stopping = true;
        break;
    }
    advance(l, now_ms);
}

void lease_service_stopped(lease *l, uint64_t now_ms)
{
    check_term(l, now_ms);
    if (l->state == LEASE_DRAINING)
        l->service_stopped = true;
    advance(l, now_ms);
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
        return can_send ? l->next_claim_ms : UINT64_MAX;
    case LEASE_LEADER: {
        uint64_t at = earliest(l->valid_until_ms, l->last_renewed_ms + l->cfg.renew_deadline_ms);
        return can_send ? earliest(at, l->next_renew_ms) : at;
    }
    default:
        return UINT64_MAX;
    }
}

bool lease_is_leader(const lease *l, uint64_t now_ms)
{
    return l->state == LEASE_LEADER && now_ms < l->valid_until_ms;
}

uint64_t lease_valid_until(const lease *l)
{
    return l->state == LEASE_LEADER ? l->valid_until_ms : 0;
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
