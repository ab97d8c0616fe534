/* lease_holder.c — what the election state machine (see lease.h) knows of
 * the key's holder, from replies and events: the epochs seen, the holder
 * last observed and its changes (LEASE_LEADER_CHANGED), values that are not
 * leases of ours. */
#include "lease_internal.h"

#include <string.h>

/* The largest epoch taken as a floor: Lua numbers are doubles, exact to 2^53,
 * so an epoch above this (forged on the events channel, say) is ignored
 * rather than allowed to make epochs stop growing. */
#define EPOCH_FLOOR_MAX (1ull << 52)

/* Epochs then keep growing even when Redis lost the epoch key and its
 * clock went back. */
void lease_see_epoch(lease *l, uint64_t epoch)
{
    if (epoch > l->max_epoch_seen && epoch < EPOCH_FLOOR_MAX)
        l->max_epoch_seen = epoch;
}

/* Reports the holder when it differs from the one seen before (another
 * token, or another known epoch).  `gone` says how a term that is no longer
 * there ended, when the key is seen free: LEASEHOLD_CHANGE_RELEASED (its
 * holder said so) or _EXPIRED. */
void lease_note_holder(lease *l, const char *holder, size_t len, uint64_t epoch,
                       leasehold_change gone)
{
    lease_see_epoch(l, epoch);
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
        if (epoch) {
            l->holder_epoch = epoch;
            l->holder_epoch_fresh = true;
        }
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
    l->holder_epoch_fresh = epoch != 0;
    a.holder = len ? l->holder : NULL;
    a.epoch = len ? epoch : 0; /* nobody holds the key: no holder's epoch */
    lease_push(l, a);
}

const char *lease_known_holder(const lease *l, uint64_t *epoch)
{
    *epoch = 0;
    if (!l->holder_known || !l->holder[0] || !l->holder_epoch || !l->holder_epoch_fresh)
        return NULL;
    if (strlen(l->holder) == l->token_len && memcmp(l->holder, l->token, l->token_len) == 0)
        return NULL;
    *epoch = l->holder_epoch;
    return l->holder;
}

void lease_events_resumed(lease *l)
{
    l->holder_epoch_fresh = false;
    l->asked_epoch = 0; /* a request to hand over, sent or not meanwhile, is sent again */
}

/* The channel's news of a release names the holder it had: news of the
 * holder we know of (or the first holder we hear of) at the same term. */
bool lease_note_release(lease *l, const char *token, size_t token_len, uint64_t epoch)
{
    size_t cut = token_len < LEASE_HOLDER_MAX ? token_len : LEASE_HOLDER_MAX - 1;
    if (!l->holder_known) { /* the news names the holder we had not seen */
        memcpy(l->holder, token, cut);
        l->holder[cut] = '\0';
        l->holder_epoch = epoch;
        l->holder_known = true;
    }
    bool same_term = !epoch || !l->holder_epoch || epoch == l->holder_epoch;
    if (!same_term || strlen(l->holder) != cut || memcmp(l->holder, token, cut) != 0)
        return false;
    lease_note_holder(l, NULL, 0, epoch, LEASEHOLD_CHANGE_RELEASED);
    return true;
}

/*
 * A holder seen in a reply that may not be a lease of ours.  A value with no
 * TTL (PTTL -1) is no lease at all: nothing will ever free the key, so the
 * election halts with LEASEHOLD_ENOTLEASE.  A value with a TTL that is not a
 * leasehold token belongs to another program, such as the original module,
 * which writes any value: it is waited for like any holder, and reported
 * (LEASEHOLD_EFOREIGN) once per distinct value.
 */
void lease_check_holder(lease *l, uint64_t now_ms, const lease_reply *r)
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
        lease_halt_with(l, now_ms,
                        (lease_action){.kind = LEASE_ERROR,
                                       .error = LEASEHOLD_ENOTLEASE,
                                       .holder = l->foreign,
                                       .pttl_ms = -1});
    } else if (!token && strcmp(v, l->foreign) != 0) {
        memcpy(l->foreign, v, n + 1);
        lease_push(l, (lease_action){.kind = LEASE_ERROR,
                                     .error = LEASEHOLD_EFOREIGN,
                                     .holder = l->foreign,
                                     .pttl_ms = r->pttl_ms});
    }
}
