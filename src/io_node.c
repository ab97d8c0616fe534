/* io_node.c — one Redis server as the I/O thread sees it, and the route from a
 * key to the node that serves it.  I/O thread only (node_create and
 * node_free: the creating thread, before and after it).
 *
 * A node owns two connections: one for scripts and INFO, whose replies come
 * back in order to the FIFO of pending entries kept here, and one for the
 * events channels (io_sub.c).  Its connection's events (ready, a reply,
 * down) are handed on to the elections whose keys are routed to it.
 *
 * A client has one node (the URL's server, or behind a Sentinel URL
 * whichever server the Sentinels name as master) or, for a Cluster, one per
 * master (io_cluster.c keeps the slot map).  Election driving asks
 * route_node() for the node of a key; an election's home is where it was
 * last routed, and io_cluster.c moves it when the map changes.
 *
 * Behind Sentinel, each attempt to connect first asks the Sentinels
 * (before_attempt parks the connection until they answer) and then checks
 * ROLE; a READONLY reply or a +switch-master announcement makes the node
 * reconnect, and so ask again.  Another master than the last one found is a
 * failover, which the failover guard (io_guard.c) holds claims for.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "error.h"

static void handle_ready(void *arg, conn *cn, uint64_t now_ms);
static void handle_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms);
static void handle_down(void *arg, conn *cn, int code, bool by_peer, const char *msg,
                        uint64_t now_ms);

node *route_node(leasehold_client *c, const char *key)
{
    if (c->slot_owner) {
        node *n = c->slot_owner[cluster_key_slot(key)];
        if (n)
            return n;
    }
    return c->nodes[0];
}

/* ------------------------------------------------------------ Sentinel */

/* Points cn at the master the Sentinels named and connects it, if it
 * waits for that. */
static void connect_parked(node *n, conn *cn, bool *parked, uint64_t now_ms)
{
    if (!*parked)
        return;
    *parked = false;
    url m;
    url_sentinel_master(&n->client->u, n->master_host, n->master_port, &m);
    conn_set_target(cn, &m);
    explicit_bzero(m.password, sizeof m.password);
    conn_connect(cn, now_ms);
}

/* A new master, seen at now_ms (or earlier, when a +switch-master told of
 * it first). */
static void master_changed(node *n, const char *host, uint16_t port, uint64_t now_ms)
{
    leasehold_client *c = n->client;
    uint64_t seen = now_ms;
    if (n->news_ms && strcmp(n->news_host, host) == 0 && n->news_port == port)
        seen = n->news_ms;
    n->failovers++;
    char why[600];
    snprintf(why, sizeof why, "'%s' failed over: the Sentinels name %s:%u as master (was %s:%u)",
             c->u.master_name, host, port, n->master_host, n->master_port);
    guard_failover(n, why, seen, now_ms);
}

/* The Sentinels answered: connect whatever waits for the master; a master
 * other than the last is a failover, and a connection still on the old one
 * is renewed.  A failure fails the waiting attempts with its reason. */
static void sentinel_resolved(void *arg, int code, const char *host, uint16_t port,
                              uint64_t role_age_ms, const char *msg, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    if (code < 0) {
        if (n->cmd_parked) {
            n->cmd_parked = false;
            conn_attempt_failed(n->cmd, code, msg, now_ms);
        }
        if (n->sub_parked) {
            n->sub_parked = false;
            conn_attempt_failed(n->sub, code, msg, now_ms);
        }
        return;
    }
    bool changed = strcmp(n->master_host, host) != 0 || n->master_port != port;
    if (changed && n->master_host[0])
        master_changed(n, host, port, now_ms);
    else if (changed)
        client_log(c, LEASEHOLD_LOG_INFO, "%s: the Sentinels name %s:%u as master of '%s'",
                   c->u.display, host, port, c->u.master_name);
    if (changed && role_age_ms < c->cfg.lease_ms) {
        /* A promotion this process did not see happen (it started since):
         * the new master may lack a key a leader of the old one holds. */
        char why[1100];
        snprintf(why, sizeof why,
                 "%s: the Sentinels saw %s:%u take the master's role %" PRIu64 " ms ago",
                 c->u.display, host, port, role_age_ms);
        guard_failover(n, why, now_ms > role_age_ms ? now_ms - role_age_ms : 0, now_ms);
    }
    snprintf(n->master_host, sizeof n->master_host, "%s", host);
    n->master_port = port;
    if (!c->first_connect)
        sentinel_watch(n->sen, now_ms);
    /* A connection still on the old master is renewed (conn_fail without a
     * socket does nothing); the parked ones go to the new one. */
    if (changed && !n->cmd_parked)
        conn_fail(n->cmd, LEASEHOLD_ENOMASTER, "the Sentinels name another master now", now_ms);
    if (changed && !n->sub_parked)
        conn_fail(n->sub, LEASEHOLD_ENOMASTER, "the Sentinels name another master now", now_ms);
    connect_parked(n, n->cmd, &n->cmd_parked, now_ms);
    connect_parked(n, n->sub, &n->sub_parked, now_ms);
}

/* +switch-master: news of a failover.  It only makes the node reconnect,
 * and so ask the Sentinels again; the answer and ROLE decide. */
static void sentinel_switched(void *arg, const char *host, uint16_t port, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    if (strcmp(n->master_host, host) == 0 && n->master_port == port)
        return;
    snprintf(n->news_host, sizeof n->news_host, "%s", host);
    n->news_port = port;
    n->news_ms = now_ms;
    client_log(c, LEASEHOLD_LOG_INFO, "%s: a Sentinel announces a failover to %s:%u", c->u.display,
               host, port);
    conn_fail(n->cmd, LEASEHOLD_ENOMASTER, "a Sentinel announced a failover", now_ms);
    conn_fail(n->sub, LEASEHOLD_ENOMASTER, "a Sentinel announced a failover", now_ms);
}

static const sentinel_handler sentinel_h = {.on_resolved = sentinel_resolved,
                                            .on_switch = sentinel_switched};

/* A Cluster client that has no slot map yet (lazy_connect) tries its
 * seeds in turn: each attempt of the first node's connections goes to the
 * next seed. */
static void next_seed(node *n, conn *cn)
{
    leasehold_client *c = n->client;
    if (cn == n->cmd)
        c->seed_next = (c->seed_next + 1) % c->u.host_count;
    const url_endpoint *ep = &c->u.hosts[c->seed_next];
    url m;
    url_cluster_node(&c->u, ep->host, ep->port, &m);
    conn_set_target(cn, &m);
    explicit_bzero(m.password, sizeof m.password);
    snprintf(n->host, sizeof n->host, "%s", ep->host);
    n->port = ep->port;
}

bool node_before_attempt(void *arg, conn *cn, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    if (c->u.cluster && !c->topology_known && !c->first_connect && n == c->nodes[0] &&
        c->u.host_count > 1 && conn_get_state(cn) == CONN_DOWN) {
        next_seed(n, cn);
        return true;
    }
    if (!n->sen)
        return true;
    if (cn == n->cmd)
        n->cmd_parked = true;
    else
        n->sub_parked = true;
    sentinel_resolve(n->sen, now_ms);
    return false;
}

void node_connect(node *n, conn *cn, uint64_t now_ms)
{
    if (n->sen)
        node_before_attempt(n, cn, now_ms); /* connected once the Sentinels answer */
    else
        conn_connect(cn, now_ms);
}

int node_conns(node *n, conn *out[NODE_CONNS])
{
    int k = 0;
    out[k++] = n->cmd;
    out[k++] = n->sub;
    if (n->sen)
        k += sentinel_conns(n->sen, out + k);
    return k;
}

uint64_t node_wake_at(const node *n)
{
    uint64_t at = conn_wake_at(n->cmd);
    uint64_t w = conn_wake_at(n->sub);
    if (w < at)
        at = w;
    if (n->sen) {
        w = sentinel_wake_at(n->sen);
        if (w < at)
            at = w;
    }
    if (n->replicas_pending && n->info_again_ms && n->info_again_ms < at)
        at = n->info_again_ms;
    return at;
}

void node_tick(node *n, uint64_t now_ms)
{
    conn_tick(n->cmd, now_ms);
    conn_tick(n->sub, now_ms);
    if (n->sen)
        sentinel_tick(n->sen, now_ms);
    guard_tick(n, now_ms);
}

/* Appends n to c's nodes; false when out of memory. */
static bool nodes_append(leasehold_client *c, node *n)
{
    if (c->node_count == c->node_cap) {
        size_t cap = c->node_cap ? 2 * c->node_cap : 4;
        node **nodes = realloc(c->nodes, cap * sizeof *nodes);
        if (!nodes)
            return false;
        c->nodes = nodes;
        c->node_cap = cap;
    }
    c->nodes[c->node_count++] = n;
    return true;
}

static const conn_handler cmd_handler = {.on_ready = handle_ready,
                                         .on_reply = handle_reply,
                                         .on_down = handle_down,
                                         .before_attempt = node_before_attempt};

/* A node for target (NULL: c's URL) with its two connections, in c->nodes;
 * NULL when out of memory (then freed). */
static node *node_new(leasehold_client *c, const url *target)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->client = c;
    const url *u = target ? target : &c->u;
    conn_options cmd_opt = c->node_opt;
    cmd_opt.require_master = c->u.sentinel;
    cmd_opt.tls = c->u.tls ? c->node_opt.tls : NULL;
    cmd_opt.seed = client_next_seed(c);
    n->cmd = conn_new(u, &cmd_opt, &cmd_handler, n);
    conn_options sub_opt = cmd_opt;
    sub_opt.seed = client_next_seed(c);
    n->sub = n->cmd ? conn_new(u, &sub_opt, &sub_handler, n) : NULL;
    if (!n->cmd || !n->sub || !nodes_append(c, n)) {
        node_free(n);
        return NULL;
    }
    c->stats_nodes_dirty = true;
    return n;
}

int node_create(leasehold_client *c, const char *sentinel_user, const char *sentinel_password,
                leasehold_error *err)
{
    url seed;
    if (c->u.cluster)
        url_cluster_node(&c->u, c->u.hosts[0].host, c->u.hosts[0].port, &seed);
    node *n = node_new(c, c->u.cluster ? &seed : NULL);
    explicit_bzero(seed.password, sizeof seed.password);
    if (!n)
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    if (c->u.cluster) {
        snprintf(n->host, sizeof n->host, "%s", c->u.hosts[0].host);
        n->port = c->u.hosts[0].port;
        c->slot_owner = calloc(CLUSTER_SLOTS, sizeof *c->slot_owner);
        c->sharded = true; /* until CLUSTER SHARDS is refused (Redis 6) */
        if (!c->slot_owner)
            return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    }
    if (c->u.sentinel) {
        /* Each Sentinel is given a short time: one that does not answer
         * must not hold up asking the next. */
        conn_options sen_opt = c->node_opt;
        sen_opt.seed = client_next_seed(c);
        sen_opt.tls =
            (c->u.sentinel_tls < 0 ? c->u.tls : c->u.sentinel_tls) ? c->node_opt.tls : NULL;
        if (sen_opt.connect_timeout_ms > 500)
            sen_opt.connect_timeout_ms = 500;
        n->sen = sentinel_new(&c->u, sentinel_user, sentinel_password, &sen_opt, &sentinel_h, n);
        if (!n->sen)
            return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return 0;
    }
    if (c->u.cluster)
        return 0; /* each seed is resolved as it is tried: one that does not resolve is passed */
    int rc = conn_resolve(n->cmd, err);
    return rc < 0 ? rc : conn_resolve(n->sub, err);
}

node *node_add(leasehold_client *c, const char *host, uint16_t port, uint64_t now_ms)
{
    url m;
    url_cluster_node(&c->u, host, port, &m);
    node *n = node_new(c, &m);
    explicit_bzero(m.password, sizeof m.password);
    if (!n) {
        client_log(c, LEASEHOLD_LOG_ERROR, "%s: out of memory adding the node %s:%u", c->u.display,
                   host, port);
        return NULL;
    }
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    leasehold_error err;
    if (conn_resolve(n->cmd, &err) < 0 || conn_resolve(n->sub, &err) < 0) {
        client_log(c, LEASEHOLD_LOG_ERROR, "%s: %s", c->u.display, err.msg);
        c->node_count--; /* the last one: it was just appended */
        node_free(n);
        return NULL;
    }
    if (!c->first_connect) {
        conn_connect(n->cmd, now_ms);
        if (!c->cfg.original_timing)
            conn_connect(n->sub, now_ms);
    }
    return n;
}

void node_free(node *n)
{
    if (!n)
        return;
    node_drop_pending(n, LEASEHOLD_ECLOSED, "the client is shutting down (leasehold_client_free)");
    if (n->cmd)
        conn_free(n->cmd);
    if (n->sub)
        conn_free(n->sub);
    sentinel_free(n->sen);
    free(n);
}

bool node_send(node *n, pending *p, int argc, const char **argv, const char *key, const char *what,
               uint64_t now_ms)
{
    int rc = conn_send(n->cmd, argc, argv, NULL, (uint64_t)(uintptr_t)p, now_ms);
    if (rc < 0) {
        client_log(n->client, LEASEHOLD_LOG_WARN, "%s: %s not sent: %s", key, what,
                   rc == -ENOTCONN ? "not connected" : leasehold_strerror(rc));
        free(p);
        node_reset_later(n, rc == -ENOTCONN ? LEASEHOLD_EIO : rc, "a command could not be sent");
        return false;
    }
    p->next = NULL;
    p->sent_on = n;
    p->sent_ns = clock_now_ns();
    if (n->pend_tail)
        n->pend_tail->next = p;
    else
        n->pend_head = p;
    n->pend_tail = p;
    return true;
}

/* Our bookkeeping and the connection's no longer agree (a command we could
 * not queue, a reply we cannot match): the only sound way on is a new
 * connection, on which every election learns what it must.  Done by the loop
 * once the current callback has returned. */
void node_reset_later(node *n, int code, const char *why)
{
    if (n->reset_code)
        return;
    n->reset_code = code;
    snprintf(n->reset_why, sizeof n->reset_why, "%s", why);
}

void node_apply_reset(node *n)
{
    if (n->reset_code) {
        int code = n->reset_code;
        n->reset_code = 0;
        conn_fail(n->cmd, code, n->reset_why, clock_now_ms());
    }
}

void node_drop_pending(node *n, int code, const char *msg)
{
    leasehold_election *stranded = NULL;
    while (n->pend_head) {
        pending *p = n->pend_head;
        n->pend_head = p->next;
        if (p->e)
            p->e->pending_count--;
        /* A renewal never answered, or answered but not yet confirmed by WAIT. */
        if (p->e && p->kind == SCRIPT_RENEW && !p->asking && !p->topology && !p->info &&
            (!p->wait || p->held_set) && !p->hold_ms)
            stats_add(&p->e->stats.renewals_failed);
        if (p->e && !p->asking && p->e->home != n && !p->e->stranded) {
            p->e->stranded = true;
            p->e->stranded_next = stranded;
            stranded = p->e;
        }
        if (p->q)
            query_finish(n->client, p->q, code, msg, NULL);
        if (p->topology)
            n->client->topology_inflight = false;
        free(p);
    }
    n->pend_tail = NULL;
    /* Their state machines still wait for an answer that will not come. */
    uint64_t now_ms = stranded ? clock_now_ms() : 0;
    while (stranded) {
        leasehold_election *e = stranded;
        stranded = e->stranded_next;
        e->stranded = false;
        lease_on_disconnected(&e->lease, now_ms, false);
        if (e->home && conn_get_state(e->home->cmd) == CONN_READY) {
            lease_on_connected(&e->lease, now_ms);
            if (!e->home->need_info)
                guard_campaign_started(e, now_ms); /* its quarantine check, if that was lost */
        }
        drive(e, now_ms);
    }
}

void node_forget(node *n, const leasehold_election *e)
{
    for (pending *p = n->pend_head; p; p = p->next)
        if (p->e == e)
            p->e = NULL;
}

/* The command connection is ready: INFO first (a query's answer can then
 * name the eviction policy), the queries that waited, then every election
 * routed here learns it may send. */
static void handle_ready(void *arg, conn *cn, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    (void)cn;
    stats_add(&c->stats.connects);
    c->stats_nodes_dirty = true;
    guard_connected(n, now_ms);
    if (c->first_connect) {
        c->first_code = 1; /* ready */
        return;
    }
    if (n->last_conn_error[0])
        client_log(c, LEASEHOLD_LOG_INFO, "%s: connected", conn_display(n->cmd));
    n->last_conn_error[0] = '\0';
    guard_ask(n, now_ms);
    query_send_unsent(n, now_ms);
    for (leasehold_election *e = c->elections; e; e = e->next) {
        if (route_node(c, e->key) != n)
            continue;
        lease_on_connected(&e->lease, now_ms);
        drive(e, now_ms);
    }
}

/* A reply: to the oldest command in flight, which must be the one tagged. */
static void handle_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    node *n = arg;
    (void)cn;
    pending *p = n->pend_head;
    if (!p || (uint64_t)(uintptr_t)p != tag) {
        node_reset_later(n, LEASEHOLD_EPROTO, "a reply does not match the command sent");
        return;
    }
    if (n->sen && conn_reply_is_error(r, "READONLY")) {
        /* Demoted under us: what is in flight is dropped with the
         * connection, and the next attempt asks the Sentinels. */
        node_reset_later(n, LEASEHOLD_ENOMASTER,
                         "answered READONLY: it is a replica now; asking the Sentinels again");
        return;
    }
    n->pend_head = p->next;
    if (!n->pend_head)
        n->pend_tail = NULL;
    if (p->asking || (!p->e && !p->q && !p->info && !p->topology)) {
        free(p); /* ASKING's +OK, or an election that has gone */
    } else if (p->topology) {
        free(p);
        cluster_topology_answer(n, r, now_ms);
    } else if (n->client->slot_owner && cluster_redirect(n, p, r, now_ms)) {
        /* sent on to the node named, or failed */
    } else if (p->info) {
        free(p);
        guard_answer(n, r, now_ms);
    } else if (p->wait && p->e) {
        election_wait_answer(p->e, p, r, now_ms);
    } else if (p->q) {
        if (!p->eval && conn_reply_is_error(r, "NOSCRIPT"))
            query_send(n->client, p->q, true, now_ms);
        else
            query_finish(n->client, p->q, 0, NULL, r);
        free(p);
    } else {
        election_answer(p->e, p, r, now_ms);
    }
}

/* The command connection went down: what was in flight is lost, every
 * election routed here is told, and a refusal no retry can fix (the
 * password, the ACL user's right to connect, the database) halts them; the
 * connection keeps trying with its back-off, so a fixed ACL is found again
 * on resume. */
static void handle_down(void *arg, conn *cn, int code, bool by_peer, const char *msg,
                        uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    (void)cn;
    stats_add(&c->stats.disconnects);
    stats_error(&c->stats, code);
    c->stats_nodes_dirty = true;
    node_drop_pending(n, code, msg);
    if (c->first_connect) {
        if (c->first_code == 0) {
            c->first_code = code;
            snprintf(c->first_msg, sizeof c->first_msg, "%s", msg);
        }
        return;
    }
    /* A Redis that stays away fails every reconnect: log each new reason. */
    bool repeat = strcmp(n->last_conn_error, msg) == 0;
    if (c->slot_owner && !repeat)
        cluster_refresh_soon(c, now_ms); /* a failover may have moved its slots */
    client_log(c, repeat ? LEASEHOLD_LOG_DEBUG : LEASEHOLD_LOG_WARN, "%s", msg);
    snprintf(n->last_conn_error, sizeof n->last_conn_error, "%s", msg);
    bool permanent = leasehold_error_is_permanent(code);
    for (leasehold_election *e = c->elections; e; e = e->next) {
        if (route_node(c, e->key) != n)
            continue;
        lease_on_disconnected(&e->lease, now_ms, by_peer);
        if (permanent && !lease_halted(&e->lease)) {
            snprintf(e->why, sizeof e->why, "%s", msg);
            lease_halt(&e->lease, now_ms, code);
        }
        drive(e, now_ms);
    }
}
