/* bench.h — the parts of the failover benchmark (bench/failover.c is the
 * driver): the candidate child process, the fleet of candidates the bench
 * runs, and what campaigning costs Redis and each process.
 *
 * Every timestamp in the benchmark is CLOCK_BOOTTIME in nanoseconds, the
 * clock leasehold_now_ms() reads; it is one clock for every process on the
 * machine, so a time taken in a child compares with one taken in the bench.
 */
#ifndef LEASEHOLD_BENCH_H
#define LEASEHOLD_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "redis_server.h"

#define BENCH_MAX_CANDIDATES 10

/* CLOCK_BOOTTIME in nanoseconds. */
uint64_t bench_now_ns(void);

/* Parses a decimal uint32 (digits only); false if it is not one. */
bool bench_parse_u32(const char *text, uint32_t *out);

/* Writes one whole line to fd with one write(), so that lines written by
 * several threads never interleave; a line too long is cut. */
void bench_write_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ candidate */

/* How every candidate of one configuration is set up. */
typedef struct candidate_setup {
    const char *url;
    const char *key;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms, command_timeout_ms;
    bool original_timing; /* leasehold_config.original_timing */
    bool debug;           /* the library's debug log on the candidate's stderr */
} candidate_setup;

/* The arguments candidate_main() takes after "--candidate". */
#define CANDIDATE_ARGC 10

/*
 * The child (this binary re-executed with --candidate ARGS): campaigns with
 * leasehold_serve_cb() and writes one line per event on stdout, a pipe to the
 * bench: "ready <ns>", "elected <epoch> <ns>", "revoked <reason> <ns>",
 * "error <message>".  On SIGTERM it calls leasehold_client_free() (stop the
 * service, release the lease) and exits 0.
 */
int candidate_main(int argc, char **argv);

/* ---------------------------------------------------------------- fleet */

typedef struct candidate {
    pid_t pid; /* 0: not running */
    int fd;    /* read end of its stdout, -1 when closed */
    char id[32];
    bool ready;          /* it said "ready" */
    uint64_t elected_ns; /* when it was last elected, 0 if never */
    char buf[1024];
    size_t len;
} candidate;

/* Up to BENCH_MAX_CANDIDATES candidates of one configuration. */
typedef struct fleet {
    const candidate_setup *setup;
    candidate cand[BENCH_MAX_CANDIDATES];
    unsigned generation;  /* makes every candidate's identity unique */
    unsigned revocations; /* terms that ended other than by the bench's signal */
} fleet;

/* An empty fleet for setup (which must outlive it). */
void fleet_init(fleet *f, const candidate_setup *setup);

/* Starts a candidate in slot and waits until it campaigns. */
void fleet_start(fleet *f, int slot);

/* Waits until a candidate other than `not_slot` (-1: any) has been elected
 * after t0_ns; returns its slot (the earliest, if several were). */
int fleet_wait_elected(fleet *f, uint64_t t0_ns, int not_slot);

/* SIGKILL (if still running) and reap. */
void fleet_kill(fleet *f, int slot);

/* SIGTERM; waits for the candidate to exit (it releases its lease first)
 * and reaps it. */
void fleet_stop(fleet *f, int slot);

/* Takes in whatever the candidates have written, without waiting. */
void fleet_drain(fleet *f);

/* ----------------------------------------------------------------- cost */

/* Calls per command name, from INFO commandstats. */
typedef struct command_calls {
    int n;
    char name[64][48];
    unsigned long long calls[64];
    int servers; /* how many servers' INFO commandstats are summed here */
} command_calls;

void cost_read_commandstats(redis_server *redis, command_calls *out);

/* Adds more's calls to sum's, command by command (a Cluster's masters). */
void cost_add_calls(command_calls *sum, const command_calls *more);

/* What a stretch of time cost Redis, per second: every command Redis ran
 * (the ones Lua scripts run included), and the requests clients sent (the
 * same less the commands leasehold's scripts run inside). */
typedef struct command_rates {
    double commands, requests;
    char detail[512]; /* "evalsha 1.00, get 2.00, ..." */
} command_rates;

/* The rates between two samples taken `seconds` apart; the bench's own INFO
 * is left out. */
void cost_rates(const command_calls *before, const command_calls *after, double seconds,
                command_rates *out);

/* utime + stime of pid in clock ticks (/proc/PID/stat), or -1. */
long long cost_cpu_ticks(pid_t pid);

/* VmRSS of pid in kB (/proc/PID/status), or -1. */
long cost_rss_kb(pid_t pid);

#endif
