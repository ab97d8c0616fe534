/* stats.h — the counters behind leasehold_election_stats_get() and
 * leasehold_client_stats_get().
 *
 * The I/O thread is the only writer; any thread reads.  An election's
 * counters are relaxed atomics (a reader never waits, even for a wedged
 * I/O thread); a client's node list and error counts sit under a lock of
 * their own that is held only to copy them.
 */
#ifndef LEASEHOLD_STATS_H
#define LEASEHOLD_STATS_H

#include "leasehold.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One election's counters (leasehold_election_stats). */
typedef struct election_counters {
    atomic_int state; /* leasehold_state */
    _Atomic uint64_t state_since_ms;
    _Atomic uint64_t epoch_seen;
    _Atomic uint64_t terms_won, terms_lost[8], leader_changes;
    _Atomic uint64_t claims, renewals, renewals_failed;
    _Atomic uint64_t rtt_last_us, rtt_sent_ms, rtt_count, rtt_sum_us;
    _Atomic uint64_t rtt_buckets[LEASEHOLD_RTT_BUCKETS];
} election_counters;

/* A client's (leasehold_client_stats). */
typedef struct client_counters {
    _Atomic uint64_t connects, disconnects;
    _Atomic uint64_t busy_since_ms; /* the I/O thread woke then; 0 while it waits */
    pthread_mutex_t mu;             /* over what follows */
    unsigned node_count;
    leasehold_node_stats nodes[LEASEHOLD_STATS_NODES];
    unsigned error_kinds;
    int error_codes[LEASEHOLD_STATS_ERRORS];
    uint64_t error_counts[LEASEHOLD_STATS_ERRORS];
} client_counters;

/* Adds one to a counter.  I/O thread. */
static inline void stats_add(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Records the state the election is in (entered at now_ms when it
 * changed).  I/O thread. */
void stats_set_state(election_counters *s, leasehold_state state, uint64_t now_ms);

/* A renewal that counted: sent at sent_ns, answered at now_ns
 * (clock_now_ns()).  I/O thread. */
void stats_renewal_counted(election_counters *s, uint64_t sent_ns, uint64_t now_ns);

/* Counts one occurrence of the error code.  I/O thread. */
void stats_error(client_counters *s, int code);

/* Prepares and disposes of a client's counters.  0 or -errno. */
int client_counters_init(client_counters *s);
void client_counters_destroy(client_counters *s);

#endif
