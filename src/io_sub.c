/* io_sub.c — the events subscription, on the I/O thread.
 *
 * The events channels are news that hastens claims and reports changes;
 * nothing about leadership is ever concluded from them, so losing the
 * subscription costs speed, never safety.  Each node's second connection
 * carries the channels of every election routed to it: by SUBSCRIBE, or on
 * a Redis 7 Cluster by SSUBSCRIBE on the node serving the channel's slot
 * (the scripts then announce by SPUBLISH), which answers "ssubscribe" and
 * delivers "smessage" and, when the slot leaves it, an unasked
 * "sunsubscribe".
 */
#include "client_internal.h"

#include "redis_error.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

void sub_channel(node *n, const leasehold_election *e, bool subscribe, uint64_t now_ms)
{
    bool sharded = n->client->sharded;
    if (conn_get_state(n->sub) != CONN_READY)
        return; /* sub_ready subscribes to everything */
    const char *verb = subscribe ? (sharded ? "SSUBSCRIBE" : "SUBSCRIBE")
                                 : (sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE");
    const char *argv[2] = {verb, e->channel};
    bool sunsubscribe = sharded && !subscribe; /* tagged 1: its answer is told apart */
    if (conn_send(n->sub, 2, argv, NULL, sunsubscribe, now_ms) == 0 && sunsubscribe)
        n->sunsubscribes++;
}

/* The subscription is (again) connected: every live election's channel. */
static void sub_ready(void *arg, conn *cn, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    (void)cn;
    n->events_live = false;
    n->sunsubscribes = 0;
    stats_add(&c->stats.connects);
    client_log(c, LEASEHOLD_LOG_DEBUG, "%s: events subscription connected", conn_display(n->sub));
    for (leasehold_election *e = c->elections; e; e = e->next)
        if (!e->stopped && e->home == n)
            sub_channel(n, e, true, now_ms);
}

/* The answers to SUBSCRIBE and UNSUBSCRIBE.  The first confirmation on a
 * new connection makes the channel live: news flows again, and what the
 * elections knew of their holders' epochs from before is learned anew (a
 * term missed meanwhile would otherwise go unseen by claims that name the
 * holder).  A refusal makes it not live, and is logged once per change.
 * It halts nothing: the channel only hastens claims and reads (a campaign
 * whose ACL lacks the channel halts on its acquire, which publishes
 * there). */
static void sub_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    (void)cn;
    if (tag == 1 && n->sunsubscribes > 0)
        n->sunsubscribes--;
    if (r->type == CONN_REPLY_ERROR && c->slot_owner &&
        (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
         strncmp(r->str, "TRYAGAIN", 8) == 0)) {
        /* A channel whose slot is elsewhere now: the slot map will say
         * where, and the election's channel moves with it. */
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: events: %s", conn_display(n->sub), r->str);
        cluster_refresh_soon(c, now_ms);
        return;
    }
    if (r->type != CONN_REPLY_ERROR) {
        if (!n->events_live) {
            n->events_live = true;
            c->stats_nodes_dirty = true;
            for (leasehold_election *e = c->elections; e; e = e->next)
                if (e->home == n) {
                    lease_events_resumed(&e->lease);
                    election_touch(e); /* its timers: a request to hand over may be due */
                }
        }
        return;
    }
    n->events_live = false;
    if (strcmp(n->last_sub_error, r->str) == 0)
        return;
    snprintf(n->last_sub_error, sizeof n->last_sub_error, "%s", r->str);
    if (conn_error_code(r) == LEASEHOLD_ENOPERM) {
        /* Which permission: the command, or the channel (each key K's). */
        char why[300];
        redis_error_ctx ctx = {.user = c->u.user, .channel = "{K}:events"};
        redis_error_explain(r->str, &ctx, why, sizeof why);
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: may not subscribe to the events channel: %s; followers claim and "
                   "observers read on their timers only",
                   conn_display(n->sub), why);
    } else
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: events subscription refused (%s); followers claim on their timers only",
                   conn_display(n->sub), r->str);
}

/* The subscription went down: it reconnects by itself. */
static void sub_down(void *arg, conn *cn, int code, bool by_peer, const char *msg, uint64_t now_ms)
{
    node *n = arg;
    (void)cn, (void)code, (void)by_peer, (void)now_ms;
    n->events_live = false;
    stats_add(&n->client->stats.disconnects);
    n->client->stats_nodes_dirty = true;
    client_log(n->client, LEASEHOLD_LOG_DEBUG, "events subscription: %s", msg);
}

/* A published message: ["message", channel, payload] (or "smessage").
 * Handed to every election on that channel (and no other: the channel map
 * finds them).  An "sunsubscribe" nobody asked for (more than the
 * SUNSUBSCRIBEs in flight) is the slot leaving this node: the slot map is
 * asked again, which moves the channel with its election. */
static bool sub_push(void *arg, conn *cn, const conn_reply *r, uint64_t now_ms)
{
    node *n = arg;
    leasehold_client *c = n->client;
    (void)cn;
    if (r->type != CONN_REPLY_ARRAY || r->elements != 3 || r->element[0].type != CONN_REPLY_STRING)
        return false;
    const char *what = r->element[0].str;
    if (strcmp(what, "sunsubscribe") == 0 && n->sunsubscribes == 0) {
        client_log(c, LEASEHOLD_LOG_DEBUG, "%s: events: a channel's slot left this node",
                   conn_display(n->sub));
        if (c->slot_owner)
            cluster_refresh_soon(c, now_ms);
        return true;
    }
    if (strcmp(what, "message") != 0 && strcmp(what, "smessage") != 0)
        return false;
    const conn_reply *ch = &r->element[1], *msg = &r->element[2];
    lease_event_kind kind;
    uint64_t epoch;
    const char *token;
    size_t token_len;
    lease_request req;
    if (ch->type != CONN_REPLY_STRING || msg->type != CONN_REPLY_STRING ||
        memchr(ch->str, '\0', ch->len))
        return true; /* no channel of ours */
    bool event = protocol_parse_event(msg->str, msg->len, &kind, &epoch, &token, &token_len) == 0;
    if (!event && protocol_parse_request(msg->str, msg->len, &req) < 0)
        return true; /* not ours to understand: ignored */
    for (chan_link *l = chanmap_first(&c->chans, ch->str); l; l = chanmap_next(l)) {
        leasehold_election *e =
            (leasehold_election *)((char *)l - offsetof(leasehold_election, chan));
        if (e->home != n)
            continue;
        if (event)
            lease_on_event(&e->lease, now_ms, kind, token, token_len, epoch);
        else
            lease_on_request(&e->lease, now_ms, &req);
        drive(e, now_ms);
    }
    return true;
}

const conn_handler sub_handler = {.on_ready = sub_ready,
                                  .on_reply = sub_reply,
                                  .on_down = sub_down,
                                  .on_push = sub_push,
                                  .before_attempt = node_before_attempt};
