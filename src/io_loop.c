/* io_loop.c — the I/O thread's loop: poll, timers, the requests caller
 * threads hand it, and the end of elections and of the client.
 *
 * One leasehold_client owns one I/O thread.  That thread is the only one
 * that touches the nodes (connections), the state machines and the
 * services' lifecycles; other threads ask it to act through a locked request
 * queue and an eventfd in its poll set (curl_multi_wakeup's pattern).  What
 * other threads read directly, an election's valid_until and epoch, are
 * atomics: leasehold_is_leader() takes no lock.  I/O thread only.
 */
#include "client_internal.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

static __thread const leasehold_client *loop_thread_client; /* set on the I/O thread */

bool client_on_loop_thread(const leasehold_client *c)
{
    return loop_thread_client == c;
}

/* Unlinks a finished election; releases it or hands it to the thread that
 * waits in leasehold_election_free().  Pending entries forget it, and so do
 * later leasehold_resign() calls (of a service that outlived it). */
void client_unlink_election(leasehold_client *c, leasehold_election *e)
{
    pthread_mutex_lock(&e->mu);
    e->gone = true;
    atomic_store(&e->valid_until_ms, 0);
    pthread_mutex_unlock(&e->mu);
    timer_heap_remove(&c->timers, &e->timer);
    if (e->touched) {
        leasehold_election **tp = &c->touched;
        while (*tp != e)
            tp = &(*tp)->touched_next;
        *tp = e->touched_next;
        e->touched = false;
    }
    if (e->in_services) {
        leasehold_election **sp = &c->services;
        while (*sp != e)
            sp = &(*sp)->svc_next;
        *sp = e->svc_next;
        e->in_services = false;
    }
    chanmap_del(&c->chans, &e->chan);
    if (!chanmap_first(&c->chans, e->channel))
        sub_channel(e->home, e, false, clock_now_ms());
    for (size_t i = 0; i < c->node_count; i++) /* redirections may have sent some elsewhere */
        node_forget(c->nodes[i], e);
    leasehold_election **pp = &c->elections;
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    e->next = NULL;
    pthread_mutex_lock(&c->mu);
    /* Nobody waits for an election ended from a callback, or for one that
     * leasehold_client_free() ends: those are the loop's to free. */
    bool free_here = e->free_by_loop || (c->closing && !e->waited_for);
    e->unlinked = true;
    /* Requests still queued for it (a resign from its service thread, say)
     * must not outlive it. */
    request **qp = &c->req_head, *last = NULL, *holds = NULL;
    while (*qp) {
        request *r = *qp;
        if (r->e == e) {
            *qp = r->next;
            if (r->kind == REQ_RESIGN)
                atomic_fetch_sub(&e->resign_pending, 1);
            if (r->kind == REQ_HOLD) { /* its asker waits: answered below */
                r->next = holds;
                holds = r;
            } else if (r != e->end_req)
                free(r);
        } else {
            last = r;
            qp = &r->next;
        }
    }
    c->req_tail = last;
    leasehold_election **rp = &c->registry;
    while (*rp && *rp != e)
        rp = &(*rp)->reg_next;
    if (*rp)
        *rp = e->reg_next;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    while (holds) {
        request *r = holds;
        holds = r->next;
        query_finish(c, r->q, LEASEHOLD_ENOTLEADER, "the campaign ended before the hold", NULL);
        free(r);
    }
    if (free_here)
        election_release(e);
}

void election_touch(leasehold_election *e)
{
    leasehold_client *c = e->client;
    if (e->touched)
        return;
    e->touched = true;
    e->touched_next = c->touched;
    c->touched = e;
}

/* The next instant e needs the loop: its state machine's timer, or its
 * service's stop deadline. */
static uint64_t election_wake_at(const leasehold_election *e)
{
    uint64_t at = lease_wake_at(&e->lease);
    if (e->svc && !e->svc_overran && e->svc_stop_deadline_ms < at)
        at = e->svc_stop_deadline_ms;
    return at;
}

/* Settles every election acted on since the last time: a finished one is
 * unlinked (it may be freed), the others' timers set again. */
static void settle(leasehold_client *c)
{
    while (c->touched) {
        leasehold_election *e = c->touched;
        c->touched = e->touched_next;
        e->touched_next = NULL;
        e->touched = false;
        /* A campaign ended by a hold stays linked until its owner frees it
         * (or the client): only then may the loop let go of it. */
        if (e->stopped && !e->svc && e->pending_count == 0 && (!e->holding || e->end_asked))
            client_unlink_election(c, e);
        else
            timer_heap_set(&c->timers, &e->timer, election_wake_at(e));
    }
}

/* Ends every election (services stopped, leases released); the loop exits
 * when all have finished, or at the deadline, whichever comes first. */
static void begin_shutdown(leasehold_client *c, uint64_t now_ms)
{
    if (c->shutting_down)
        return;
    c->shutting_down = true;
    c->shutdown_deadline_ms =
        now_ms + c->cfg.stop_timeout_ms + 4 * (uint64_t)c->cfg.command_timeout_ms + 1000;
    for (leasehold_election *e = c->elections; e; e = e->next) {
        e->end_asked = true;
        election_touch(e);
        if (!e->ending) {
            e->ending = true;
            lease_stop(&e->lease, now_ms);
            drive(e, now_ms);
        }
    }
}

/* Carries out what caller threads asked for, in the order they asked. */
static void handle_requests(leasehold_client *c, uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    request *r = c->req_head;
    c->req_head = c->req_tail = NULL;
    bool shut_down = c->shut_down;
    pthread_mutex_unlock(&c->mu);
    if (shut_down)
        begin_shutdown(c, now_ms);
    while (r) {
        request *next = r->next;
        leasehold_election *e = r->e;
        if (r->kind == REQ_HOLD) {
            query_hold_term(c, e, r->q, now_ms);
            free(r);
            r = next;
            continue;
        }
        if (r->kind == REQ_QUERY) {
            query_start(c, r->q, now_ms);
            free(r);
            r = next;
            continue;
        }
        switch (r->kind) {
        case REQ_CAMPAIGN:
            e->next = c->elections;
            c->elections = e;
            e->chan.channel = e->channel;
            chanmap_add(&c->chans, &e->chan);
            e->home = route_node(c, e->key);
            sub_channel(e->home, e, true, now_ms);
            guard_campaign_started(e, now_ms);
            if (e->observer)
                lease_observe(&e->lease, now_ms);
            else
                lease_start(&e->lease, now_ms);
            if (conn_get_state(route_node(c, e->key)->cmd) == CONN_READY)
                lease_on_connected(&e->lease, now_ms);
            if (c->shutting_down) {
                e->ending = true;
                lease_stop(&e->lease, now_ms);
            }
            break;
        case REQ_RESIGN:
            if (!e->ending)
                lease_resign(&e->lease, now_ms);
            break;
        case REQ_END:
            e->end_asked = true;
            if (!e->ending) {
                e->ending = true;
                lease_stop(&e->lease, now_ms);
            }
            break;
        case REQ_RESUME:
            if (!e->ending && lease_halted(&e->lease)) {
                client_log(c, LEASEHOLD_LOG_INFO, "%s: resumed", e->key);
                e->last_reported[0] = '\0';
                lease_resume(&e->lease, now_ms);
            }
            break;
        case REQ_QUERY:
        case REQ_HOLD:
            break;
        }
        drive(e, now_ms);
        if (r->kind == REQ_RESIGN)
            atomic_fetch_sub(&e->resign_pending, 1);
        if (r != e->end_req)
            free(r);
        r = next;
    }
}

/* The earliest instant anything needs the loop; UINT64_MAX for nothing. */
static uint64_t next_wake(leasehold_client *c)
{
    uint64_t at = cluster_wake_at(c);
    for (size_t i = 0; i < c->node_count; i++) {
        uint64_t w = node_wake_at(c->nodes[i]);
        if (w < at)
            at = w;
    }
    uint64_t first = timer_heap_next_at(&c->timers);
    if (first < at)
        at = first;
    if (c->shutting_down && c->shutdown_deadline_ms < at)
        at = c->shutdown_deadline_ms;
    return at;
}

/* Everything that is due at now_ms: connection timers, the elections whose
 * timers are due, services that returned or overran (a service's thread
 * wakes the loop as it returns). */
static void run_due(leasehold_client *c, uint64_t now_ms)
{
    for (size_t i = 0; i < c->node_count; i++) /* node_tick may add nodes: counted each time */
        node_tick(c->nodes[i], now_ms);
    cluster_tick(c, now_ms);
    timer_node *t;
    while ((t = timer_heap_pop_due(&c->timers, now_ms))) {
        leasehold_election *e =
            (leasehold_election *)((char *)t - offsetof(leasehold_election, timer));
        lease_tick(&e->lease, now_ms);
        drive(e, now_ms);
    }
    leasehold_election **sp = &c->services;
    while (*sp) {
        leasehold_election *e = *sp;
        check_service(e, now_ms);
        if (e->svc) {
            sp = &e->svc_next;
        } else {
            *sp = e->svc_next;
            e->svc_next = NULL;
            e->in_services = false;
            election_touch(e);
        }
    }
}

/* Carries out the connection resets the nodes' handlers asked for. */
static void apply_resets(leasehold_client *c)
{
    for (size_t i = 0; i < c->node_count; i++)
        node_apply_reset(c->nodes[i]);
}

/* Fills c->pfd with the wake fd and every node's connections (c->pfd_conns
 * says whose each is); their number, the wake fd aside.  Should memory run
 * out, the nodes that fit are polled. */
static size_t poll_set(leasehold_client *c)
{
    size_t want = 1 + c->node_count * NODE_CONNS;
    if (want > c->pfd_cap) {
        struct pollfd *pfd = realloc(c->pfd, want * sizeof *pfd);
        if (pfd)
            c->pfd = pfd;
        conn **conns = pfd ? realloc(c->pfd_conns, want * sizeof *conns) : NULL;
        if (conns)
            c->pfd_conns = conns;
        if (pfd && conns)
            c->pfd_cap = want;
    }
    size_t k = 0;
    c->pfd[0] = (struct pollfd){.fd = c->wake_fd, .events = POLLIN};
    for (size_t i = 0; i < c->node_count && 1 + k + NODE_CONNS <= c->pfd_cap; i++) {
        conn *cs[NODE_CONNS];
        int m = node_conns(c->nodes[i], cs);
        for (int j = 0; j < m; j++, k++) {
            c->pfd_conns[k] = cs[j];
            c->pfd[1 + k] =
                (struct pollfd){.fd = conn_fd(cs[j]), .events = conn_poll_events(cs[j])};
        }
    }
    return k;
}

/* Runs until every election has ended after leasehold_client_free() asked
 * (or past the shutdown deadline). */
void *client_loop_main(void *arg)
{
    leasehold_client *c = arg;
    loop_thread_client = c;
    for (;;) {
        uint64_t now = clock_now_ms();
        atomic_store_explicit(&c->stats.busy_since_ms, now ? now : 1, memory_order_relaxed);
        for (size_t i = 0; i < c->node_count; i++)
            guard_ask(c->nodes[i], now); /* the first connection was made before the loop ran */
        handle_requests(c, now);
        run_due(c, now);
        apply_resets(c);
        settle(c);
        if (c->shutting_down && (!c->elections || now >= c->shutdown_deadline_ms))
            break;

        stats_refresh_nodes(c);
        uint64_t at = next_wake(c);
        now = clock_now_ms();
        int timeout = at == UINT64_MAX   ? -1
                      : at <= now        ? 0
                      : at - now > 60000 ? 60000
                                         : (int)(at - now);
        size_t k = poll_set(c);
        struct pollfd *pfd = c->pfd;
        atomic_store_explicit(&c->stats.busy_since_ms, 0, memory_order_relaxed);
        int ready = poll(pfd, (nfds_t)(1 + k), timeout); /* a negative fd is skipped */
        if (ready < 0 && errno != EINTR)
            client_log(c, LEASEHOLD_LOG_ERROR, "poll: %s", strerror(errno));
        now = clock_now_ms();
        atomic_store_explicit(&c->stats.busy_since_ms, now ? now : 1, memory_order_relaxed);
        if (ready > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rd = read(c->wake_fd, &v, sizeof v);
            (void)rd;
        }
        /* A handler may have closed or replaced a later connection's socket:
         * only events for the socket it still has are its own.  Nodes added
         * meanwhile are polled next time round (the set is not touched). */
        for (size_t i = 0; ready > 0 && i < k; i++)
            if (pfd[1 + i].fd >= 0 && pfd[1 + i].revents &&
                pfd[1 + i].fd == conn_fd(c->pfd_conns[i]))
                conn_on_io(c->pfd_conns[i], pfd[1 + i].revents, now);
        apply_resets(c);
        settle(c);
    }
    /* Anything still here is past every deadline. */
    while (c->elections) {
        leasehold_election *e = c->elections;
        if (e->svc) {
            atomic_fetch_add(&e->refs, 1); /* the service thread's, until fn returns */
            if (!service_abandon(e->svc, election_release, e)) {
                atomic_fetch_sub(&e->refs, 1);
                service_join(e->svc); /* it has just returned */
            }
            e->svc = NULL;
        }
        client_unlink_election(c, e);
    }
    return NULL;
}
