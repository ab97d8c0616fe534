/* stats.c — leasehold_election_stats_get() and leasehold_client_stats_get(),
 * and the I/O thread's side of the counters they read. */
#include "client_internal.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void stats_set_state(election_counters *s, leasehold_state state, uint64_t now_ms)
{
    if (LOAD(s->state) == (int)state)
        return;
    atomic_store_explicit(&s->state_since_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&s->state, (int)state, memory_order_release);
}

void stats_renewal_counted(election_counters *s, uint64_t sent_ns, uint64_t now_ns)
{
    static const uint64_t bounds[LEASEHOLD_RTT_BUCKETS] = LEASEHOLD_RTT_BOUNDS_US;
    uint64_t rtt_us = now_ns > sent_ns ? (now_ns - sent_ns + 999) / 1000 : 1;
    size_t i = 0;
    while (rtt_us > bounds[i])
        i++; /* the last bound is UINT64_MAX */
    atomic_store_explicit(&s->rtt_last_us, rtt_us, memory_order_relaxed);
    atomic_store_explicit(&s->rtt_sent_ms, sent_ns / 1000000u, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->rtt_sum_us, rtt_us, memory_order_relaxed);
    stats_add(&s->rtt_buckets[i]);
    stats_add(&s->rtt_count);
}

void stats_error(client_counters *s, int code)
{
    pthread_mutex_lock(&s->mu);
    unsigned i = 0;
    while (i < s->error_kinds && s->error_codes[i] != code)
        i++;
    if (i == s->error_kinds && i < LEASEHOLD_STATS_ERRORS) {
        s->error_codes[i] = code;
        s->error_counts[i] = 0;
        s->error_kinds++;
    }
    if (i < s->error_kinds)
        s->error_counts[i]++;
    pthread_mutex_unlock(&s->mu);
}

int client_counters_init(client_counters *s)
{
    memset(s, 0, sizeof *s);
    return -pthread_mutex_init(&s->mu, NULL);
}

void client_counters_destroy(client_counters *s)
{
    pthread_mutex_destroy(&s->mu);
}

int leasehold_election_stats_get(const leasehold_election *e, leasehold_election_stats *out)
{
    if (!e || !out)
        return LEASEHOLD_EINVAL;
    const election_counters *s = &e->stats;
    uint64_t now = clock_now_ms();
    memset(out, 0, sizeof *out);
    out->state = (leasehold_state)atomic_load_explicit(&s->state, memory_order_acquire);
    uint64_t since = LOAD(s->state_since_ms);
    out->state_ms = now > since ? now - since : 0;
    out->epoch = leasehold_epoch(e);
    out->epoch_seen = LOAD(s->epoch_seen);
    uint64_t valid_until = atomic_load(&e->valid_until_ms);
    if (out->epoch && valid_until > now)
        out->lease_left_ms = (int64_t)(valid_until - now);
    uint64_t deadline = atomic_load(&e->term_deadline_ms);
    if (out->state == LEASEHOLD_STATE_LEADER && deadline && now > deadline)
        out->term_overdue_ms = now - deadline;
    out->terms_won = LOAD(s->terms_won);
    for (int i = 0; i < 8; i++)
        out->terms_lost[i] = LOAD(s->terms_lost[i]);
    out->leader_changes = LOAD(s->leader_changes);
    out->claims = LOAD(s->claims);
    out->renewals = LOAD(s->renewals);
    out->renewals_failed = LOAD(s->renewals_failed);
    out->last_renewal_rtt_us = LOAD(s->rtt_last_us);
    uint64_t sent = LOAD(s->rtt_sent_ms);
    out->last_renewal_age_ms = !out->last_renewal_rtt_us ? UINT64_MAX : now > sent ? now - sent : 0;
    out->renewal_rtt_count = LOAD(s->rtt_count);
    out->renewal_rtt_sum_us = LOAD(s->rtt_sum_us);
    for (int i = 0; i < LEASEHOLD_RTT_BUCKETS; i++)
        out->renewal_rtt_buckets[i] = LOAD(s->rtt_buckets[i]);
    return 0;
}

int leasehold_client_stats_get(leasehold_client *c, leasehold_client_stats *out)
{
    if (!c || !out)
        return LEASEHOLD_EINVAL;
    client_counters *s = &c->stats;
    memset(out, 0, sizeof *out);
    out->connects = LOAD(s->connects);
    out->disconnects = LOAD(s->disconnects);
    uint64_t busy = LOAD(s->busy_since_ms), now = clock_now_ms();
    out->loop_busy_ms = busy && now > busy ? now - busy : 0;
    pthread_mutex_lock(&s->mu);
    out->node_count = s->node_count;
    memcpy(out->nodes, s->nodes, sizeof out->nodes);
    out->error_kinds = s->error_kinds;
    for (unsigned i = 0; i < s->error_kinds; i++) {
        out->errors[i].code = s->error_codes[i];
        out->errors[i].count = s->error_counts[i];
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Copies what the nodes' connections are doing into the counters, when it
 * may have changed.  I/O thread. */
void stats_refresh_nodes(leasehold_client *c)
{
    if (!c->stats_nodes_dirty)
        return;
    c->stats_nodes_dirty = false;
    client_counters *s = &c->stats;
    pthread_mutex_lock(&s->mu);
    s->node_count = (unsigned)c->node_count;
    for (size_t i = 0; i < c->node_count && i < LEASEHOLD_STATS_NODES; i++) {
        const node *n = c->nodes[i];
        leasehold_node_stats *ns = &s->nodes[i];
        if (n->host[0])
            snprintf(ns->address, sizeof ns->address, "%.100s:%u", n->host, n->port);
        else if (n->master_host[0])
            snprintf(ns->address, sizeof ns->address, "%.100s:%u", n->master_host, n->master_port);
        else
            snprintf(ns->address, sizeof ns->address, "%.120s", conn_display(n->cmd));
        ns->connected = conn_get_state(n->cmd) == CONN_READY;
        ns->events_connected = n->events_live;
    }
    pthread_mutex_unlock(&s->mu);
}
