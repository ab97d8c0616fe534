/* sim.h — a deterministic simulation of lease machines around one Redis.
 *
 * One simulated Redis (the key with its expiry in sim time, SET NX PX, the
 * compare-and-renew with its three answers, compare-and-delete, the epoch
 * counter) and N lease machines, each with a connection of random latency, a
 * command timeout and a clock of its own rate.  Time advances 1 ms per step.
 * Faults, at random when enabled or through the knobs below: partitions,
 * frozen machines, Redis paused, Redis restarted without the key, slow
 * services, resigns, stops.
 *
 * After every step the checker asserts that no two machines are leader at the
 * same instant, and that no machine is leader at or past the bound the
 * checker computes by itself: the send time of the machine's last successful
 * acquire or renew, plus lease_ms - drift, on the machine's clock.  It also
 * holds each machine to the lease contract: commands only when connected and
 * one at a time, ELECTED only when lease_is_leader() is true, no release
 * while the term's service still runs, epochs that increase from term to
 * term.  A run with the same options replays exactly.
 */
#ifndef LEASEHOLD_SIM_H
#define LEASEHOLD_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "lease.h"

#define SIM_MAX_MACHINES 7

/* A deliberate bug in every machine, to prove that the checker can fail. */
typedef enum sim_bug {
    SIM_BUG_NONE,
    SIM_BUG_VALID_FROM_ARRIVAL, /* valid_until = reply arrival + lease_ms */
    SIM_BUG_TRUST_STATE,        /* leader while in the LEADER state, whatever the time */
    SIM_BUG_IGNORE_PEER_CLOSE,  /* a connection closed by Redis taken for a timeout */
} sim_bug;

/* What the checker looks at (a bit set). */
enum {
    SIM_CHECK_ONE_LEADER = 1,  /* never two leaders at one instant */
    SIM_CHECK_VALID_UNTIL = 2, /* never leader past the checker's own bound */
    SIM_CHECK_ALL = 3,
};

typedef struct sim_options {
    uint64_t seed;
    unsigned machines; /* 3..SIM_MAX_MACHINES */
    lease_config lease;
    uint32_t command_timeout_ms;
    bool faults; /* inject faults at random */
    sim_bug bug;
    unsigned checks; /* SIM_CHECK_* */
} sim_options;

typedef struct sim_stats {
    uint64_t steps;
    uint64_t elections;        /* ELECTED actions */
    unsigned distinct_leaders; /* machines elected at least once */
    uint64_t leader_ms;        /* steps with a leader */
    uint64_t partitions, freezes, pauses, restarts, resigns, stops, timeouts, errors;
} sim_stats;

typedef struct sim sim;

/* Defaults: the library's timings, all checks, no faults, no bug. */
void sim_options_init(sim_options *o, uint64_t seed, unsigned machines);

/* A new simulation at time 0; every machine starts campaigning at once. */
sim *sim_new(const sim_options *o);
void sim_free(sim *s);

/* Advances 1 ms and checks.  False once an invariant was violated. */
bool sim_step(sim *s);

/* Up to `steps` steps; false (and stops) at the first violation. */
bool sim_run(sim *s, uint64_t steps);

/* The first violation, described with the time and the machines; NULL if none. */
const char *sim_violation(const sim *s);

const sim_stats *sim_get_stats(const sim *s);

/* The machine that is leader now, or -1. */
int sim_leader(const sim *s);

/* Knobs, the same ones the random faults use. */
void sim_freeze(sim *s, unsigned machine, uint64_t ms);
void sim_partition(sim *s, unsigned machine, uint64_t ms);
void sim_redis_pause(sim *s, uint64_t ms);
/* Restarts Redis without its data.  Refused (false) unless every machine in
 * the LEADER state will hear of the closed connection before Redis is up
 * again: it is neither frozen nor partitioned, its connection is up and has
 * no command in flight.  A leader that cannot hear it is what the restart
 * guard (Redis uptime checked before a claim) protects; it comes later. */
bool sim_redis_restart(sim *s);

#endif
