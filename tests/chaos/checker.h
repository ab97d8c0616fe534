/*
 * checker.h — the chaos test's verdict: reads the driver's fault log and the
 * probes' output and decides whether leadership was ever shared (safety) and
 * whether a leader came back after every fault (liveness).
 *
 * Fault log lines (the driver's): "fault <ns> <type> [<detail>]",
 * "heal <ns> <type>", "end <ns>".  Probe log lines (chaos_probe's):
 * "elected <ns> <epoch> <id>", "revoked <ns> <reason...>",
 * "action <ns> <epoch> <id>", "exit <ns>".  Times are CLOCK_MONOTONIC
 * nanoseconds; blank lines are ignored; anything else is bad input.
 *
 * The rules:
 * - Safety.  A term is one (id, epoch).  Sorted by time, the action lines of
 *   different terms never interleave: each term's actions form one
 *   contiguous run, that is, no two terms' spans [first action, last action]
 *   meet.  And from term to term, in the order they began, epochs strictly
 *   increase.  Each breach is a violation, reported with the overlap and the
 *   last fault before it.  One exception, the Redis clock step: an overlap
 *   whose later term began between a `clock-step` fault line and its heal,
 *   and that lasted no longer than clock_step_bound_ms, is tolerated
 *   (counted and reported, not a violation).  A forward step of Redis's
 *   wall clock expires the lease early, so a TTL design cannot make that
 *   overlap zero, only bound it (the leader sees the step on its next
 *   renewal); every other fault, and the backward step at the heal, keep
 *   the zero bound.
 * - Liveness.  After every heal, some probe prints "elected" or "action"
 *   within lease + retry + 1000 ms (+ settle, see checker_opts); a leader
 *   that keeps acting through the heal satisfies this at once.  A heal whose
 *   window outlasts the log is not judged, and is counted as such.
 * - Time to leader, per heal: from the heal to the first action after it,
 *   or 0 when that action continues the term that was acting just before the
 *   heal (leadership never lapsed).
 *
 * Not thread-safe; nothing here keeps global state.
 */
#ifndef LEASEHOLD_CHAOS_CHECKER_H
#define LEASEHOLD_CHAOS_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A gap between two actions of one term longer than this is a lapse: the
 * leader stopped acting (time to leader is then measured, not 0). */
#define CHECKER_LAPSE_NS 100000000ull

typedef struct checker_opts {
    uint64_t lease_ms;
    uint64_t retry_ms;
    uint64_t settle_ms;           /* extra allowance added to the liveness bound; 0 by default */
    uint64_t clock_step_bound_ms; /* longest overlap tolerated within a clock-step; 0: none */
} checker_opts;

/* lease + retry + 1000 + settle, in ms: how soon after a heal a leader must show. */
uint64_t checker_liveness_bound_ms(const checker_opts *o);

/* One line of the fault log. */
typedef enum checker_fault_kind { CHECKER_FAULT, CHECKER_HEAL } checker_fault_kind;

typedef struct checker_fault {
    checker_fault_kind kind;
    uint64_t ns;
    char type[32];
    char detail[96]; /* "" for heals and faults without one */
} checker_fault;

/* One probe line that bears on the verdict. */
typedef enum checker_event_kind {
    CHECKER_ELECTED,
    CHECKER_REVOKED,
    CHECKER_ACTION,
    CHECKER_EXIT
} checker_event_kind;

typedef struct checker_event {
    checker_event_kind kind;
    uint64_t ns;
    uint64_t epoch; /* elected, action */
    size_t id;      /* index into checker_history.ids */
} checker_event;

/* Everything read from the logs; faults sorted by time, events as read. */
typedef struct checker_history {
    checker_fault *faults;
    size_t n_faults;
    checker_event *events;
    size_t n_events;
    char **ids; /* the distinct probe ids that elected or action lines named */
    size_t n_ids;
    size_t n_logs;     /* probe logs read */
    uint64_t start_ns; /* the earliest time in any log: times are printed relative to it */
    uint64_t end_ns;   /* the "end" line, or else the latest time in any log */
} checker_history;

/* One term: an (id, epoch) and the span of its actions. */
typedef struct checker_term {
    size_t id;
    uint64_t epoch;
    uint64_t first_ns, last_ns;
    size_t actions;
} checker_term;

typedef enum checker_violation_kind {
    CHECKER_OVERLAP,    /* b began while a was still acting */
    CHECKER_EPOCH_ORDER /* b began after a with an epoch not above a's */
} checker_violation_kind;

typedef struct checker_violation {
    checker_violation_kind kind;
    checker_term a, b;   /* a began first */
    uint64_t at_ns;      /* when b began */
    uint64_t overlap_ns; /* CHECKER_OVERLAP: how long both acted; else 0 */
    long fault;          /* index of the last "fault" line at or before at_ns, or -1 */
} checker_violation;

typedef enum checker_liveness {
    CHECKER_LIVE,    /* a leader showed within the bound */
    CHECKER_MISS,    /* none did */
    CHECKER_UNJUDGED /* the log ended before the bound, with no leader yet */
} checker_liveness;

typedef struct checker_heal {
    size_t fault; /* index of the heal line in checker_history.faults */
    checker_liveness liveness;
    bool led;              /* some action came after the heal */
    uint64_t to_leader_ns; /* when led: the time to leader */
} checker_heal;

typedef struct checker_result {
    checker_violation *violations;
    size_t n_violations;
    checker_violation *tolerated; /* clock-step overlaps within the bound */
    size_t n_tolerated;
    checker_heal *heals;
    size_t n_heals;
    size_t n_misses;
    size_t n_unjudged;
    size_t n_terms;
    size_t n_actions;
} checker_result;

/*
 * Reads the fault log and the probe logs into h.  Returns 0, or -1 with the
 * reason ("probe1.log:12: action line wants <ns> <epoch> <id>") in why;
 * h is then empty.
 */
int checker_load(checker_history *h, const char *fault_log, const char *const *probe_logs,
                 size_t n_probe_logs, char *why, size_t why_len);

/* Applies the rules to h.  Returns 0, or -1 when out of memory. */
int checker_analyze(const checker_history *h, const checker_opts *o, checker_result *r);

/* Prints the report: faults by type, violations, liveness misses, time to
 * leader per fault type (median / p90 / max, nearest rank), the verdict. */
void checker_print(const checker_history *h, const checker_opts *o, const checker_result *r,
                   FILE *out);

/* 0 when there is no violation and no liveness miss, else 1. */
int checker_verdict(const checker_result *r);

void checker_history_free(checker_history *h);
void checker_result_free(checker_result *r);

/* Loads, analyzes and prints to out (errors too).  Returns the exit status:
 * 0 pass, 1 violation or liveness miss, 2 bad input. */
int checker_run(const checker_opts *o, const char *fault_log, const char *const *probe_logs,
                size_t n_probe_logs, FILE *out);

#endif
