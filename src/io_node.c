/* io_node.c — one Redis server as the I/O thread sees it, and the route from a
 * key to the node that serves it.  I/O thread only (node_create and
 * node_free: the creating thread, before and after it).
 *
 * A node owns two connections: one for scripts and INFO, whose replies come
 * back in order to the FIFO of pending entries kept here, and one for the
 * events channels (io_sub.c).  Its connection's events (ready, a reply,
 * down) are handed on to the elections whose keys are routed to it.
 *
 * Today a client has one node, the URL's server.  Election driving asks
 * route_node() for the node of a key and never keeps it across inputs, so
 * that a Sentinel name's current master or a Cluster slot's owner can stand
 * behind it without touching the drive.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"

static void handle_ready(void *arg, conn *cn, uint64_t now_ms);
static void handle_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms);
static void handle_down(void *arg, conn *cn, int code, bool by_peer, const char *msg,
                        uint64_t now_ms);

node *route_node(leasehold_client *c, const char *key)
{
    (void)key;
    return c->node;
}

int node_create(leasehold_client *c, const conn_options *opt, leasehold_error *err)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    n->client = c;
    c->node = n;
    conn_handler h = {.on_ready = handle_ready, .on_reply = handle_reply, .on_down = handle_down};
    n->cmd = conn_new(&c->u, opt, &h, n);
    conn_options sub_opt = *opt;
    sub_opt.seed = client_next_seed(c);
    n->sub = n->cmd ? conn_new(&c->u, &sub_opt, &sub_handler, n) : NULL;
    if (!n->cmd || !n->sub)
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    int rc = conn_resolve(n->cmd, err);
    return rc < 0 ? rc : conn_resolve(n->sub, err);
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
    while (n->pend_head) {
        pending *p = n->pend_head;
        n->pend_head = p->next;
        if (p->e)
            p->e->pending_count--;
        if (p->q)
            query_finish(n->client, p->q, code, msg, NULL);
        free(p);
    }
    n->pend_tail = NULL;
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
    n->pend_head = p->next;
    if (!n->pend_head)
        n->pend_tail = NULL;
    if (p->info) {
        free(p);
        guard_answer(n, r, now_ms);
    } else if (p->q) {
        if (!p->eval && conn_reply_is_error(r, "NOSCRIPT"))
            query_send(n->client, p->q, true, now_ms);
        else
            query_finish(n->client, p->q, 0, NULL, r);
        free(p);
    } else if (p->e) {
        election_answer(p->e, p, r, now_ms);
    } else {
        free(p); /* its election has gone */
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
