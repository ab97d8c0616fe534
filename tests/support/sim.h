/* sim.h — a deterministic simulation of lease machines around one Redis.
 *
 * One simulated Redis that does what src/protocol.c's scripts do (acquire:
 * read the epoch, SET NX PX, epoch = max(last + 1, Redis time in us), publish
 * `elected`; renew: 1, 0 when the key is gone, or the holder's token; release:
 * delete only when both the token and the epoch match, publish `released`)
 * and N lease machines, each with a connection of random latency, a command
 * timeout, a subscription to the events channel and a clock of its own rate.
 * Time advances 1 ms per step.
 *
 * Commands outlive their connection: when a machine gives up on a connection
 * (command timeout), each command still on its way is either lost or run by
 * Redis later, its reply discarded: stale releases and ghost claims.
 *
 * Faults, at random when enabled or through the knobs below: partitions,
 * frozen machines, Redis paused, Redis restarted without the key, lost
 * subscriptions, slow services and services that never stop (abandoned),
 * resigns, stops.
 *
 * After every step the checker asserts:
 * - no two machines are leader at the same instant;
 * - no machine is leader at or past the checker's own bound: the send time of
 *   its last successful acquire or renew, plus lease_ms - drift, on its clock;
 * - the resign hold: while the service of a term ended by a resign still runs
 *   and its machine's lease_hold_until() is ahead, no other machine leads;
 * - a release never deletes a key holding an epoch other than its own, and is
 *   never sent for a term whose service still runs (abandoned ones included);
 * - epochs handed out by Redis, and those ELECTED reports, strictly increase;
 * - the lease contract: commands only when connected and one at a time,
 *   ELECTED only when lease_is_leader() is true, a wake-up in the future.
 * A run with the same options replays exactly.
 */
#ifndef LEASEHOLD_SIM_H
#define LEASEHOLD_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "lease.h"

#define SIM_MAX_MACHINES 7

/* A deliberate bug, to prove that the checker can fail. */
typedef enum sim_bug {
    SIM_BUG_NONE,
    SIM_BUG_VALID_FROM_ARRIVAL, /* machines: valid_until = reply arrival + lease_ms */
    SIM_BUG_TRUST_STATE,        /* machines: leader while LEADER, whatever the time */
    SIM_BUG_IGNORE_PEER_CLOSE,  /* machines: a close by Redis taken for a timeout */
    SIM_BUG_RELEASE_TOKEN_ONLY, /* Redis: the release compares the token, not the epoch */
} sim_bug;

/* What the checker looks at (a bit set). */
enum {
    SIM_CHECK_ONE_LEADER = 1,  /* never two leaders at one instant */
    SIM_CHECK_VALID_UNTIL = 2, /* never leader past the checker's own bound */
    SIM_CHECK_RESIGN_HOLD = 4, /* nobody else leads while a resigned service holds */
    SIM_CHECK_RELEASE = 8,     /* releases delete only their own term, after its service */
    SIM_CHECK_EPOCHS = 16,     /* epochs strictly increase */
    SIM_CHECK_ALL = 31,
};

typedef struct sim_options {
    uint64_t seed;
    unsigned machines; /* 1..SIM_MAX_MACHINES */
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
    uint64_t stale_lost;     /* commands of a timed-out connection that never ran */
    uint64_t stale_run;      /* ... that Redis ran later, reply discarded */
    uint64_t ghost_claims;   /* stale acquires that won the key */
    uint64_t stale_releases; /* stale releases that found their token but another epoch */
    uint64_t events, events_lost, sub_drops;
    uint64_t abandons; /* lease_service_abandoned() calls */
} sim_stats;

typedef struct sim sim;

/* Defaults: the library's timings (stop_timeout_ms 1000), all checks, no
 * faults, no bug. */
void sim_options_init(sim_options *o, uint64_t seed, unsigned machines);

/* A new simulation at time 0; every machine starts campaigning at once. */
sim *sim_new(const sim_options *o);
void sim_free(sim *s);

/* Advances 1 ms and checks.  False once an invariant was violated. */
bool sim_step(sim *s);

/* Up to `steps` steps; false (and stops) at the first violation. */
bool sim_run(sim *s, uint64_t steps);

/* The first violation, described with the seed, the time and the machines;
 * NULL if none. */
const char *sim_violation(const sim *s);

const sim_stats *sim_get_stats(const sim *s);

/* The machine that is leader now, or -1. */
int sim_leader(const sim *s);

/* Knobs, the same ones the random faults use. */
void sim_freeze(sim *s, unsigned machine, uint64_t ms);
void sim_partition(sim *s, unsigned machine, uint64_t ms);
void sim_redis_pause(sim *s, uint64_t ms);
/* The machine resigns (lease_resign) now; its service then takes
 * service_ms to stop, and is abandoned at stop_timeout_ms when that is
 * longer.  False when the machine is frozen. */
bool sim_resign(sim *s, unsigned machine, uint64_t service_ms);
/* Restarts Redis without its data.  Refused (false) unless every machine in
 * the LEADER state will hear of the closed connection before Redis is up
 * again (it is neither frozen nor partitioned, its connection is up and has
 * no command in flight), and no resigned term still holds its key for a
 * running service.  What the restart guard (Redis uptime checked before a
 * claim) protects is not modelled. */
bool sim_redis_restart(sim *s);

#endif
