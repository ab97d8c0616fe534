/* io_cluster.c — a Redis Cluster on the I/O thread: the slot map, a node
 * per master, MOVED and ASK, and elections moving between nodes.
 *
 * The map comes from CLUSTER SHARDS (CLUSTER SLOTS on a Redis that lacks
 * it), asked of any connected node: on start, every TOPOLOGY_EVERY_MS, and
 * soon after a redirection or a node going down.  A MOVED reply also
 * updates its slot at once, and the command is sent again to the node it
 * names; an ASK sends it there once, after ASKING, without touching the
 * map.  All of this is news that only redirects: an election leads only by
 * a script that succeeds on the node serving its key now.
 *
 * A slot that changes hands may have changed because its master failed over
 * (the promoted replica may lack the latest writes) or because it was
 * migrated.  Both look alike from here, so the node that took slots over is
 * held by the failover guard (io_guard.c): no claim there for a lease, and
 * with min_replicas none until its replicas follow it.  Renewals are never
 * held back.
 */
#include "client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "redis_error.h"

/* The map is asked again this often when nothing hastens it... */
#define TOPOLOGY_EVERY_MS 5000
/* ...and this often while a node that serves slots is unreachable (its
 * replica may be promoted any moment). */
#define TOPOLOGY_DOWN_EVERY_MS 500
/* ...and no more often than this. */
#define TOPOLOGY_MIN_GAP_MS 100
/* A command follows at most this many redirections, then fails. */
#define REDIRECTS_MAX 5

static bool ready(const node *n)
{
    return n && conn_get_state(n->cmd) == CONN_READY;
}

void cluster_refresh_soon(leasehold_client *c, uint64_t now_ms)
{
    uint64_t at = c->topology_last_ms + TOPOLOGY_MIN_GAP_MS;
    if (at < now_ms)
        at = now_ms;
    if (at < c->topology_due_ms)
        c->topology_due_ms = at;
}

uint64_t cluster_wake_at(const leasehold_client *c)
{
    return c->slot_owner && !c->topology_inflight ? c->topology_due_ms : UINT64_MAX;
}

void cluster_tick(leasehold_client *c, uint64_t now_ms)
{
    if (!c->slot_owner || c->topology_inflight || now_ms < c->topology_due_ms)
        return;
    node *n = NULL;
    for (size_t i = 0; i < c->node_count && !n; i++)
        if (conn_get_state(c->nodes[i]->cmd) == CONN_READY)
            n = c->nodes[i];
    if (!n) { /* asked again once a node is connected */
        c->topology_due_ms = now_ms + TOPOLOGY_MIN_GAP_MS;
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        c->topology_due_ms = now_ms + TOPOLOGY_MIN_GAP_MS;
        return;
    }
    p->topology = true;
    const char *argv[2] = {"CLUSTER", c->shards_refused ? "SLOTS" : "SHARDS"};
    bool owner_down = false;
    for (size_t i = 0; i < c->node_count && !owner_down; i++)
        owner_down = c->nodes[i]->slots && !ready(c->nodes[i]);
    c->topology_last_ms = now_ms;
    c->topology_due_ms = now_ms + (owner_down ? TOPOLOGY_DOWN_EVERY_MS : TOPOLOGY_EVERY_MS);
    if (node_send(n, p, 2, argv, conn_display(n->cmd), "CLUSTER SHARDS", now_ms))
        c->topology_inflight = true;
}

/* The node at host:port, added (and connected) when there is none. */
static node *node_at(leasehold_client *c, const char *host, uint16_t port, uint64_t now_ms)
{
    for (size_t i = 0; i < c->node_count; i++)
        if (c->nodes[i]->port == port && strcmp(c->nodes[i]->host, host) == 0)
            return c->nodes[i];
    node *n = node_add(c, host, port, now_ms);
    if (n)
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: cluster node %s added", c->u.display,
                   conn_display(n->cmd));
    return n;
}

void cluster_rehome(leasehold_election *e, uint64_t now_ms)
{
    leasehold_client *c = e->client;
    node *from = e->home, *to = route_node(c, e->key);
    if (from == to)
        return;
    e->home = to;
    if (!e->stopped && from)
        sub_channel(from, e, false, now_ms);
    if (!e->stopped)
        sub_channel(to, e, true, now_ms);
    lease_events_resumed(&e->lease);
    if (ready(to)) {
        if (!ready(from))
            lease_on_connected(&e->lease, now_ms);
        if (!to->need_info)
            guard_campaign_started(e, now_ms); /* else guard_ask arms it */
    } else if (ready(from)) {
        lease_on_disconnected(&e->lease, now_ms, false);
    }
    drive(e, now_ms);
}

/* Every election whose key is now served by another node goes there. */
static void rehome_all(leasehold_client *c, uint64_t now_ms)
{
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (e->home != route_node(c, e->key))
            cluster_rehome(e, now_ms);
}

/* Node `to` took slots over from `was` (gained of them): a failover or a
 * migration, which the failover guard holds claims for. */
static void took_over(leasehold_client *c, node *to, const node *was, unsigned gained,
                      uint64_t now_ms)
{
    char why[700];
    snprintf(why, sizeof why,
             "%s: %u slot%s moved to %s (from %s and maybe others): a failover or a "
             "migration; the new owner may lack the latest writes",
             c->u.display, gained, gained == 1 ? "" : "s", conn_display(to->cmd),
             conn_display(was->cmd));
    to->failovers++;
    guard_failover(to, why, now_ms, now_ms);
}

/* Applies a slot map: its masters become nodes, slots it names change
 * hands, slots it leaves out keep their last owner.  The first map of a
 * process holds claims everywhere for a lease too: a Cluster does not say
 * when a master was promoted, so one promoted just before this process
 * started (which may lack a leader's last renewal) cannot be told apart
 * (Sentinel's role-reported-time serves for that behind Sentinel). */
static void apply_map(leasehold_client *c, const cluster_map *map, uint64_t now_ms)
{
    bool first = !c->topology_known;
    for (size_t i = 0; i < map->count; i++) {
        const cluster_range *r = &map->ranges[i];
        node *to = node_at(c, r->host, r->port, now_ms);
        if (!to)
            continue;
        unsigned gained = 0;
        node *was = NULL;
        for (unsigned s = r->first; s <= r->last; s++) {
            node *old = c->slot_owner[s];
            if (old && old != to) {
                gained++;
                was = old;
            }
            c->slot_owner[s] = to;
        }
        if (gained && !first)
            took_over(c, to, was, gained, now_ms);
    }
    for (size_t i = 0; i < c->node_count; i++)
        c->nodes[i]->slots = 0;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
        if (c->slot_owner[s])
            c->slot_owner[s]->slots++;
    if (first)
        for (size_t i = 0; i < c->node_count; i++)
            if (c->nodes[i]->slots) {
                char why[600];
                snprintf(why, sizeof why,
                         "%s: serves slots as this process starts; a Cluster does not say "
                         "whether it was promoted within the last lease",
                         conn_display(c->nodes[i]->cmd));
                guard_failover(c->nodes[i], why, now_ms, now_ms);
            }
    c->topology_known = true;
    rehome_all(c, now_ms);
}

/* The code and message (into msg) for a seed that could not give the slot
 * map (why: its error reply, or what was wrong with its answer): an ACL
 * refusal names the right to grant, a node without cluster support (or an
 * answer that is no slot map) asks whether it is a Cluster node. */
static int topology_refusal(const leasehold_client *c, node *n, const conn_reply *r,
                            const char *why, char *msg, size_t size)
{
    int code = r->type == CONN_REPLY_ERROR ? redis_error_code(r->str) : LEASEHOLD_EPROTO;
    if (code == LEASEHOLD_ENOPERM) {
        snprintf(
            msg, size,
            "%.80s: the ACL user may not run CLUSTER %s: grant ACL SETUSER %.32s +cluster|shards "
            "on every node (+cluster|slots too on Redis 6)",
            conn_display(n->cmd), c->shards_refused ? "SLOTS" : "SHARDS",
            c->u.user[0] ? c->u.user : "default");
    } else if (code != LEASEHOLD_EPROTO && !strstr(why, "cluster support disabled")) {
        snprintf(msg, size, "%.100s: cannot read the Cluster's slot map: %.80s",
                 conn_display(n->cmd), why);
    } else {
        code = LEASEHOLD_EPROTO;
        snprintf(msg, size,
                 "%.100s: cannot read the Cluster's slot map: %.80s (is it a Cluster node?)",
                 conn_display(n->cmd), why);
    }
    return code;
}

void cluster_topology_answer(node *n, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    c->topology_inflight = false;
    bool shards = !c->shards_refused;
    if (shards && r->type == CONN_REPLY_ERROR &&
        (strstr(r->str, "nknown subcommand") || strstr(r->str, "nknown command"))) {
        /* Redis 6: no CLUSTER SHARDS, and no sharded pub/sub either. */
        client_log(c, LEASEHOLD_LOG_INFO,
                   "%s: CLUSTER SHARDS is unknown (Redis before 7): reading CLUSTER SLOTS, and "
                   "events go by classic PUBLISH",
                   c->u.display);
        c->shards_refused = true;
        c->sharded = false;
        for (size_t i = 0; i < c->node_count; i++) /* subscribe again, the classic way */
            conn_fail(c->nodes[i]->sub, LEASEHOLD_EIO, "events move to classic pub/sub", now_ms);
        c->topology_due_ms = now_ms;
        cluster_tick(c, now_ms); /* CLUSTER SLOTS now (leasehold_client_new() waits for it) */
        return;
    }
    cluster_map map;
    char why[200];
    int rc = r->type == CONN_REPLY_ERROR ? (snprintf(why, sizeof why, "%s", r->str), -1)
             : shards ? cluster_parse_shards(r, c->u.tls, n->host, &map, why, sizeof why)
                      : cluster_parse_slots(r, n->host, &map, why, sizeof why);
    if (rc < 0) {
        client_log(c, LEASEHOLD_LOG_WARN, "%s: cannot read the slot map: %s", conn_display(n->cmd),
                   why);
        if (c->first_connect && c->first_code == 0)
            c->first_code = topology_refusal(c, n, r, why, c->first_msg, sizeof c->first_msg);
        cluster_refresh_soon(c, now_ms + 1000);
        return;
    }
    client_log(c, LEASEHOLD_LOG_DEBUG, "%s: slot map read: %zu range%s", conn_display(n->cmd),
               map.count, map.count == 1 ? "" : "s");
    apply_map(c, &map, now_ms);
    cluster_map_free(&map);
    if (c->first_connect && c->first_code == 0)
        c->first_code = 1;
}

/* Feeds r (a redirection not followed) to p's election or query. */
static void give_up(node *n, pending *p, const conn_reply *r, uint64_t now_ms)
{
    if (p->q) {
        query_finish(n->client, p->q, 0, NULL, r);
        free(p);
    } else if (p->e) {
        election_answer(p->e, p, r, now_ms);
    } else {
        free(p);
    }
}

bool cluster_redirect(node *n, pending *p, const conn_reply *r, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    bool ask;
    unsigned slot;
    char host[256];
    uint16_t port;
    if (r->type != CONN_REPLY_ERROR || p->wait || p->info || (!p->e && !p->q) ||
        !cluster_parse_redirect(r->str, n->host, &ask, &slot, host, &port))
        return false;
    node *to = node_at(c, host, port, now_ms);
    if (!ask) {
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: %s", conn_display(n->cmd), r->str);
        if (to && c->slot_owner[slot] != to) {
            node *was = c->slot_owner[slot];
            if (was)
                was->slots--;
            c->slot_owner[slot] = to;
            to->slots++;
            if (was)
                took_over(c, to, was, 1, now_ms);
            rehome_all(c, now_ms);
        }
        cluster_refresh_soon(c, now_ms);
    }
    uint8_t redirects = p->q ? p->q->redirects : p->redirects;
    /* A claim waits for the target's guards like any claim there; a
     * renewal of a term ended by a hold must not follow the hold. */
    bool gated = p->e && p->kind == SCRIPT_ACQUIRE &&
                 (to == NULL || to->replicas_pending || now_ms < to->claim_gate_ms ||
                  now_ms < to->failover_gate_ms);
    bool held = p->e && p->kind == SCRIPT_RENEW && p->e->holding;
    if (!to || !ready(to) || redirects >= REDIRECTS_MAX || gated || held) {
        /* Failed as it is: the state machine retries, on the node the map
         * names by then. */
        give_up(n, p, r, now_ms);
        return true;
    }
    if (p->q) {
        p->q->redirects++;
        query_send_on(c, p->q, to, ask, p->eval, now_ms);
    } else {
        p->e->pending_count--;
        send_script(p->e, to, ask, p->kind, p->seq, p->epoch, p->eval, redirects + 1, now_ms);
    }
    free(p);
    return true;
}
