/*
 * ops_metrics.h — what an operator's tools ask of a running election:
 * Prometheus metrics, whether the elector is healthy, whether this process
 * leads.  Used by ops.c's HTTP answers and systemd notifications; reads
 * only the library's statistics (cheap, lock-free), so it answers even
 * while the I/O thread is stuck.
 */
#ifndef LEASEHOLD_OPS_METRICS_H
#define LEASEHOLD_OPS_METRICS_H

#include <leasehold.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Unhealthy past these: the I/O thread busy with one wake-up this long (it
 * takes well under a millisecond when healthy), or a term still believed
 * held this long after its deadline (a healthy I/O thread ends it on time). */
#define OPS_LOOP_STUCK_MS   1000u
#define OPS_TERM_OVERDUE_MS 500u

/* The election a tool runs, and its client. */
typedef struct ops_target {
    leasehold_client *client;
    leasehold_election *election;
    const char *program; /* "leasehold run", "server" */
    const char *version;
} ops_target;

/* Writes every metric in the Prometheus text format (version 0.0.4). */
void ops_metrics_write(const ops_target *t, FILE *out);

/* True when the elector is healthy; else false with the reasons in why. */
bool ops_healthy(const ops_target *t, char *why, size_t why_size);

/* True while this process leads (leasehold_is_leader()); what it is doing
 * in what (for /readyz and systemd's STATUS=). */
bool ops_ready(const ops_target *t, char *what, size_t what_size);

#endif
