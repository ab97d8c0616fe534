/* io_guard.c — the restart guard and the eviction check, on the I/O
 * thread.
 *
 * A Redis that restarted without persistence has lost every key: a lease
 * another process still believes it holds would go to a second process if we
 * claimed at once.  Two holds stand in the way, and they overlap rather than
 * add up, since both start when a connection does:
 *   - the quarantine, in Redis itself (protocol.c): a missing {K}:epoch holds
 *     every claim for one lease.  Each new connection runs the arm script for
 *     every campaign at once, so the quarantine's lease starts then, not
 *     after the hold below;
 *   - the restart guard, from INFO on each new connection: no claim on a
 *     Redis up for less than the lease, or whose run_id differs from the one
 *     the last connection met (a restart, whatever uptime says), for one lease
 *     from then.
 * A third hold has the same reason: the failover guard.  A master other
 * than the last one (the Sentinels name another, or the same address
 * answers with another replication ID: a promotion) may lack the latest
 * writes, replication being asynchronous; no claim for one lease from the
 * moment the change was seen.  With replica acknowledgement, claims also
 * wait until min_replicas replicas follow the new master, and a lease more:
 * until a replica has switched to the new master, it may still confirm the
 * old leader's renewals on the old one (Sentinel tells clients of the new
 * master while it is still reconfiguring the replicas), and each of those
 * keeps that leader's term alive for a lease after it.
 * Renewals are never held back: a key that is gone answers so.  The same INFO
 * gives the eviction policy: any other than noeviction may drop the lease key
 * from a full Redis, which is reported to every election.
 */
#include "client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_info.h"

/* The instant before which e may not claim: the later of the two holds. */
static uint64_t claim_gate(const leasehold_election *e)
{
    const node *n = route_node(e->client, e->key);
    if (n->replicas_pending)
        return UINT64_MAX;
    uint64_t gate = n->claim_gate_ms > n->failover_gate_ms ? n->claim_gate_ms : n->failover_gate_ms;
    return e->arm_gate_ms > gate ? e->arm_gate_ms : gate;
}

/* Tells e's state machine when it may claim, and carries out what follows. */
static void apply_gate(leasehold_election *e, uint64_t now_ms)
{
    lease_gate_claims(&e->lease, now_ms, claim_gate(e));
    drive(e, now_ms);
}

/* Logs a quarantine: loudly when this process's script set it. */
void guard_log_quarantine(leasehold_election *e, int64_t remaining_ms, bool fresh)
{
    client_log(e->client, fresh ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG,
               "%s: %s was missing (Redis lost its data, it was flushed or evicted, or the key "
               "was never used): no claim succeeds for %" PRId64 " ms (quarantine)",
               e->key, e->epoch_key, remaining_ms);
}

/* Sends the arm script for e on the new connection (campaigns only). */
static void arm_send(leasehold_election *e, uint64_t now_ms)
{
    if (e->observer || e->ending || lease_halted(&e->lease)) {
        e->arm_gate_ms = 0; /* a halted campaign sends nothing; its acquire checks anyway */
        return;
    }
    e->arm_gate_ms = UINT64_MAX;
    uint64_t seen = lease_max_epoch_seen(&e->lease);
    send_for_election(e, SCRIPT_ARM, 0, seen ? seen + 1 : 0, false, now_ms);
}

/* The arm script's answer: claims wait for the quarantine it found. */
void guard_arm_answer(leasehold_election *e, const conn_reply *r, uint64_t now_ms)
{
    int64_t remaining_ms = 0;
    bool fresh = false;
    char why[256];
    protocol_key k = election_names(e, route_node(e->client, e->key));
    int code = protocol_arm_reply(r, &k, &remaining_ms, &fresh, why, sizeof why);
    e->arm_gate_ms = 0;
    if (code < 0) {
        /* The acquire script will meet the same refusal and report it. */
        client_log(e->client, LEASEHOLD_LOG_DEBUG, "%s: quarantine check failed: %s", e->key, why);
    } else if (remaining_ms > 0) {
        guard_log_quarantine(e, remaining_ms, fresh);
        /* As the acquire does: a quarantine lasts a lease at most (a marker
         * with a longer TTL is not ours, and the acquire decides anyway). */
        uint64_t wait = (uint64_t)remaining_ms;
        e->arm_gate_ms = now_ms + (wait < e->client->cfg.lease_ms ? wait : e->client->cfg.lease_ms);
    }
    apply_gate(e, now_ms);
}

/* A new connection: its Redis is not known yet.  With the restart guard,
 * every claim waits for INFO and each campaign's arm script. */
void guard_connected(node *n, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    n->need_info = true;
    if (!c->cfg.restart_guard)
        return;
    n->claim_gate_ms = UINT64_MAX;
    for (leasehold_election *e = c->elections; e; e = e->next) {
        if (route_node(c, e->key) != n)
            continue;
        e->arm_gate_ms = e->observer ? 0 : UINT64_MAX;
        lease_gate_claims(&e->lease, now_ms, UINT64_MAX);
    }
}

/* Sends INFO on n's command connection (guard_answer() gets the reply);
 * false when it could not (the connection is then reset). */
static bool send_info(node *n, uint64_t now_ms)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        node_reset_later(n, LEASEHOLD_ENOMEM, "out of memory asking INFO");
        return false;
    }
    p->info = true;
    const char *argv[1] = {"INFO"};
    return node_send(n, p, 1, argv, conn_display(n->cmd), "INFO", now_ms);
}

/* Asks n's Redis about itself (INFO), then arms the quarantine check of
 * each campaign routed there; once per connection, before anything else is
 * sent. */
void guard_ask(node *n, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    if (!n->need_info || conn_get_state(n->cmd) != CONN_READY)
        return;
    n->need_info = false;
    if (!send_info(n, now_ms))
        return;
    if (c->cfg.restart_guard)
        for (leasehold_election *e = c->elections; e; e = e->next)
            if (route_node(c, e->key) == n)
                arm_send(e, now_ms);
}

/* True when n's Redis may evict keys (its policy is known). */
static bool may_evict(const node *n)
{
    return n->policy[0] && strcmp(n->policy, "noeviction") != 0;
}

/* Tells election e that the Redis serving its key may evict it. */
static void warn_eviction(leasehold_election *e, const node *n)
{
    snprintf(e->why, sizeof e->why,
             "Redis at %s has maxmemory-policy %s: when full it may evict the lease key while "
             "its leader still believes it holds it; set maxmemory-policy noeviction",
             conn_display(n->cmd), n->policy);
    report_error(e, LEASEHOLD_EEVICTION);
}

/* Warns every election routed to n, once per policy, when its Redis may
 * evict the lease key (elections started later are warned as they start). */
static void check_eviction(node *n, const char *policy)
{
    leasehold_client *c = n->client;
    snprintf(n->policy, sizeof n->policy, "%s", policy);
    if (!may_evict(n) || strcmp(policy, n->warned_policy) == 0)
        return;
    snprintf(n->warned_policy, sizeof n->warned_policy, "%s", policy);
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (route_node(c, e->key) == n)
            warn_eviction(e, n);
}

void guard_failover(node *n, const char *why, uint64_t seen_ms, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    uint64_t until = seen_ms + c->cfg.lease_ms;
    bool wait_replicas = c->cfg.restart_guard && c->cfg.min_replicas > 0;
    if (!c->cfg.restart_guard || (until <= now_ms && !wait_replicas)) {
        client_log(c, LEASEHOLD_LOG_INFO, "%s", why);
        return;
    }
    /* The same change seen again (by the events connection's own question)
     * moves nothing: logged at DEBUG. */
    bool news = until > n->failover_gate_ms || (wait_replicas && !n->replicas_pending);
    if (wait_replicas)
        client_log(c, news ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG,
                   "%s; no claim until %d replica%s follow%s it, and for a lease after that "
                   "(failover guard)",
                   why, c->cfg.min_replicas, c->cfg.min_replicas == 1 ? "" : "s",
                   c->cfg.min_replicas == 1 ? "s" : "");
    else
        client_log(c, news ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_DEBUG,
                   "%s; no claim for %" PRIu64 " ms (failover guard)", why, until - now_ms);
    if (!news)
        return;
    if (until > n->failover_gate_ms)
        n->failover_gate_ms = until;
    if (wait_replicas) {
        /* INFO counts them: the next connection's, or at once on a
         * connection that stays (a Cluster slot's new owner). */
        n->replicas_pending = true;
        n->info_again_ms = conn_get_state(n->cmd) == CONN_READY && !n->need_info ? now_ms : 0;
    }
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (route_node(c, e->key) == n)
            apply_gate(e, now_ms);
}

/* INFO while the failover guard waits for replicas: once min_replicas
 * are online, claims wait a lease more; until then INFO is asked again
 * every retry interval. */
static void count_replicas(node *n, const redis_info *info, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    if (!n->replicas_pending)
        return;
    if (info->online_replicas < c->cfg.min_replicas) {
        n->info_again_ms = now_ms + c->cfg.retry_interval_ms;
        return;
    }
    n->replicas_pending = false;
    n->info_again_ms = 0;
    uint64_t until = now_ms + c->cfg.lease_ms;
    if (until > n->failover_gate_ms)
        n->failover_gate_ms = until;
    client_log(c, LEASEHOLD_LOG_INFO,
               "%s: %d replica%s follow%s it now; no claim for %" PRIu32 " ms (failover guard)",
               conn_display(n->cmd), info->online_replicas, info->online_replicas == 1 ? "" : "s",
               info->online_replicas == 1 ? "s" : "", c->cfg.lease_ms);
}

void guard_tick(node *n, uint64_t now_ms)
{
    if (!n->replicas_pending || !n->info_again_ms || now_ms < n->info_again_ms ||
        conn_get_state(n->cmd) != CONN_READY)
        return;
    n->info_again_ms = 0;
    send_info(n, now_ms);
}

/* Notes which server INFO came from; behind Sentinel, a promotion on the
 * same address (another replication ID, the same run_id) is a failover. */
static void check_promotion(node *n, const redis_info *info, bool same_address, uint64_t now_ms)
{
    if (same_address && info->replid[0] && n->replid[0] && strcmp(info->replid, n->replid) != 0 &&
        strcmp(info->run_id, n->run_id) == 0) {
        char why[300];
        snprintf(why, sizeof why,
                 "%s: its replication ID changed from %s to %s (it was a replica in between, "
                 "or was promoted): it may lack the latest writes",
                 conn_display(n->cmd), n->replid, info->replid);
        guard_failover(n, why, now_ms, now_ms);
    }
    if (info->replid[0])
        snprintf(n->replid, sizeof n->replid, "%s", info->replid);
}

/* INFO's answer.  Claims may go out once Redis has been up for the lease:
 * uptime_in_seconds is a difference of whole wall-clock seconds and can read
 * up to 1 s high, so it is counted one second short.  A run_id other than the
 * last connection's, at the same address, is a restart just now, whatever
 * uptime says.  A Redis
 * that will not say (ACL) is taken to have just started. */
void guard_answer(node *n, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    redis_info info;
    redis_info_parse(r->type == CONN_REPLY_STRING ? r->str : NULL, &info);
    check_eviction(n, info.maxmemory_policy);
    /* Behind Sentinel another address is another server, not a restart:
     * the failover guard holds for that. */
    bool same_address =
        !n->sen || (strcmp(n->info_host, n->master_host) == 0 && n->info_port == n->master_port);
    snprintf(n->info_host, sizeof n->info_host, "%s", n->master_host);
    n->info_port = n->master_port;
    bool restarted =
        same_address && info.run_id[0] && n->run_id[0] && strcmp(info.run_id, n->run_id) != 0;
    check_promotion(n, &info, same_address, now_ms);
    count_replicas(n, &info, now_ms);
    if (c->cfg.restart_guard && !info.has_uptime) {
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: INFO gave no uptime (%s); the restart guard assumes Redis has just "
                   "started",
                   conn_display(n->cmd), r->type == CONN_REPLY_ERROR ? r->str : "no such field");
    } else if (c->cfg.restart_guard && restarted) {
        client_log(c, LEASEHOLD_LOG_INFO, "%s: Redis restarted (its run_id changed from %s to %s)",
                   conn_display(n->cmd), n->run_id, info.run_id);
        info.up_ms = 0; /* a restart just now, whatever uptime says */
    }
    if (info.run_id[0])
        snprintf(n->run_id, sizeof n->run_id, "%s", info.run_id);
    if (!c->cfg.restart_guard)
        return;
    uint64_t wait_ms = redis_info_guard_wait_ms(&info, c->cfg.lease_ms);
    n->claim_gate_ms = now_ms + wait_ms;
    if (wait_ms > 0)
        client_log(c, LEASEHOLD_LOG_INFO,
                   "%s: Redis has been up for less than the lease (%" PRIu64
                   " ms counted): no claim for %" PRIu64 " ms (restart guard)",
                   conn_display(n->cmd), info.up_ms, wait_ms);
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (route_node(c, e->key) == n)
            apply_gate(e, now_ms);
}

/* A campaign joins the I/O thread.  On a connection already asked, its own
 * quarantine check goes out now, so that it overlaps the restart guard's
 * hold instead of following it; a known eviction policy is warned of; its
 * claims wait for the later of the two holds. */
void guard_campaign_started(leasehold_election *e, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    node *n = route_node(c, e->key);
    if (c->cfg.restart_guard && !n->need_info && conn_get_state(n->cmd) == CONN_READY)
        arm_send(e, now_ms);
    if (may_evict(n))
        warn_eviction(e, n);
    lease_gate_claims(&e->lease, now_ms, claim_gate(e));
}
