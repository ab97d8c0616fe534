/* io_query.c — the I/O thread's side of leasehold_holder_get(),
 * leasehold_resign_hold() and leasehold_request_resign().
 *
 * The asking thread waits on the client's condition for q->done (see
 * await_query in api_election.c); this file sends the query on the node
 * serving its key and hands it its answer, under client->mu.
 */
#include "client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_error.h"

/* q's names for a script: no campaign (no quarantine key, no channel), so
 * its errors are not retried. */
static protocol_key query_names(leasehold_client *c, const query *q)
{
    return (protocol_key){.key = q->key,
                          .epoch_key = q->epoch_key,
                          .token = q->token,
                          .user = c->u.user,
                          .address = conn_display(route_node(c, q->key)->cmd),
                          .sharded = c->sharded};
}

/* The answer to a hold (the renew script with the hold's TTL) into q: 0
 * when the key was still this term's and now has the hold's TTL.  An error
 * reply is explained as every script's is; another holder is quoted. */
static void hold_answer(leasehold_client *c, query *q, const conn_reply *r)
{
    lease_reply lr;
    char why[300] = "";
    protocol_key k = query_names(c, q);
    protocol_renew_reply(r, &k, &lr, why, sizeof why);
    if (lr.result == LEASE_RENEWED)
        return;
    q->code = lr.result == LEASE_RENEW_FAILED ? lr.error : LEASEHOLD_ENOTLEADER;
    if (lr.result == LEASE_RENEW_MISSING) {
        snprintf(q->msg, sizeof q->msg, "key %s: gone before the hold: the lease had run out",
                 q->key);
    } else if (lr.result == LEASE_RENEW_HELD) {
        char refusal[200];
        protocol_renew_refusal(&lr, refusal, sizeof refusal);
        snprintf(q->msg, sizeof q->msg, "key %s: %s before the hold", q->key, refusal);
    } else {
        snprintf(q->msg, sizeof q->msg, "key %s: hold failed: %.200s", q->key, why);
    }
}

/* The answer to a publish (leasehold_request_resign) into q: how many
 * received it, or why it was refused. */
static void publish_answer(leasehold_client *c, query *q, const conn_reply *r)
{
    if (r->type == CONN_REPLY_INTEGER) {
        q->receivers = r->integer;
        return;
    }
    if (r->type != CONN_REPLY_ERROR) {
        q->code = LEASEHOLD_EPROTO;
        snprintf(q->msg, sizeof q->msg, "key %s: unexpected reply to PUBLISH", q->key);
        return;
    }
    q->code = conn_error_code(r);
    char why[300];
    redis_error_ctx ctx = {.key = q->key, .channel = q->channel, .user = c->u.user};
    redis_error_explain(r->str, &ctx, why, sizeof why);
    snprintf(q->msg, sizeof q->msg, "key %s: publishing the request on %s refused: %.150s", q->key,
             q->channel, why);
}

/* Hands a query its answer (code 0 and r) or its failure, and wakes the
 * asker; frees it when the asker has given up. */
void query_finish(leasehold_client *c, query *q, int code, const char *msg, const conn_reply *r)
{
    pthread_mutex_lock(&c->mu);
    bool abandoned = q->abandoned;
    if (!abandoned) {
        q->code = code;
        snprintf(q->msg, sizeof q->msg, "%s", msg ? msg : "");
        if (code == 0 && r && q->message) {
            publish_answer(c, q, r);
        } else if (code == 0 && r && q->hold_ms) {
            hold_answer(c, q, r);
        } else if (code == 0 && r) {
            lease_reply lr;
            char why[200] = "";
            protocol_key k = query_names(c, q);
            protocol_query_reply(r, &k, &lr, why, sizeof why);
            if (lr.result == LEASE_QUERY_FAILED) {
                q->code = lr.error;
                snprintf(q->msg, sizeof q->msg, "key %s: %s", q->key, why);
            } else if (lr.result == LEASE_QUERY_HELD) {
                size_t n = lr.holder_len < sizeof q->holder.token ? lr.holder_len
                                                                  : sizeof q->holder.token - 1;
                memcpy(q->holder.token, lr.holder, n);
                q->holder.token[n] = '\0';
                q->holder.ttl_ms = lr.pttl_ms;
            }
            q->holder.epoch = lr.epoch;
            node *n = route_node(c, q->key);
            snprintf(q->holder.maxmemory_policy, sizeof q->holder.maxmemory_policy, "%s",
                     n->policy);
            if (n->sen || n->host[0]) {
                const char *host = n->sen ? n->master_host : n->host;
                bool v6 = strchr(host, ':') != NULL;
                snprintf(q->holder.master, sizeof q->holder.master, "%s%s%s:%u", v6 ? "[" : "",
                         host, v6 ? "]" : "", n->sen ? n->master_port : n->port);
                q->holder.failovers = n->failovers;
            }
        }
        q->done = true;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    if (abandoned)
        query_free(q);
}

/* Sends q (eval: as EVAL, after a NOSCRIPT): the query script, or for a
 * hold the renew script with the hold's TTL.  A send that fails fails q. */
void query_send(leasehold_client *c, query *q, bool eval, uint64_t now_ms)
{
    query_send_on(c, q, route_node(c, q->key), false, eval, now_ms);
}

void query_send_on(leasehold_client *c, query *q, node *n, bool asking, bool eval, uint64_t now_ms)
{
    if (asking) {
        pending *a = calloc(1, sizeof *a);
        if (!a) {
            query_finish(c, q, LEASEHOLD_ENOMEM, "out of memory", NULL);
            return;
        }
        a->asking = true;
        const char *argv[1] = {"ASKING"};
        if (!node_send(n, a, 1, argv, q->key, "ASKING", now_ms)) {
            query_finish(c, q, LEASEHOLD_ECONNRESET, "the connection to Redis went down", NULL);
            return;
        }
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        query_finish(c, q, LEASEHOLD_ENOMEM, "out of memory", NULL);
        return;
    }
    if (q->message) {
        *p = (pending){.q = q, .kind = SCRIPT_QUERY, .eval = true}; /* no script: no NOSCRIPT */
        const char *argv[3] = {c->sharded ? "SPUBLISH" : "PUBLISH", q->channel, q->message};
        if (!node_send(n, p, 3, argv, q->key, argv[0], now_ms))
            query_finish(c, q, LEASEHOLD_ECONNRESET, "the connection to Redis went down", NULL);
        return;
    }
    *p = (pending){.q = q,
                   .kind = q->hold_ms ? SCRIPT_RENEW : SCRIPT_QUERY,
                   .eval = eval,
                   .hold_ms = q->hold_ms};
    protocol_key k = query_names(c, q);
    protocol_call call;
    protocol_call_init(&call, p->kind, eval ? NULL : c->sha[c->sharded][p->kind], &k, q->hold_ms,
                       0);
    if (!node_send(n, p, call.argc, call.argv, q->key, protocol_script_name(p->kind), now_ms))
        query_finish(c, q, LEASEHOLD_ECONNRESET, "the connection to Redis went down", NULL);
}

/* Sends q now when its node is connected, else once it is. */
void query_start(leasehold_client *c, query *q, uint64_t now_ms)
{
    node *n = route_node(c, q->key);
    if (conn_get_state(n->cmd) == CONN_READY) {
        query_send(c, q, false, now_ms);
    } else {
        q->next = n->unsent;
        n->unsent = q;
    }
}

/* Sends the queries that waited for the connection. */
void query_send_unsent(node *n, uint64_t now_ms)
{
    query *q = n->unsent;
    n->unsent = NULL;
    while (q) {
        query *next = q->next;
        q->next = NULL;
        query_send(n->client, q, false, now_ms);
        q = next;
    }
}

/* leasehold_resign_hold() on the I/O thread.  The campaign ends without a
 * release (no renewal or release of it follows), then the hold goes out: on
 * the one connection, after every renewal of the term, so none of them can
 * overwrite its TTL.  A term that ended meanwhile gets no hold. */
void query_hold_term(leasehold_client *c, leasehold_election *e, query *q, uint64_t now_ms)
{
    bool ended = e->ending || !lease_is_leader(&e->lease, now_ms);
    /* Either way the campaign ends here, without a release: the caller is
     * no longer leader for good, so it must not be elected again. */
    e->holding = true;
    if (!e->ending) {
        e->ending = true;
        lease_stop(&e->lease, now_ms);
        drive(e, now_ms);
    }
    if (ended) {
        char msg[sizeof q->msg];
        snprintf(msg, sizeof msg, "key %s: the term ended before the hold", e->key);
        query_finish(c, q, LEASEHOLD_ENOTLEADER, msg, NULL);
        return;
    }
    if (conn_get_state(route_node(c, q->key)->cmd) == CONN_READY)
        query_send(c, q, false, now_ms);
    else
        query_finish(c, q, LEASEHOLD_ECONNRESET,
                     "not connected to Redis: the key lapses with its lease, without the hold",
                     NULL);
}
