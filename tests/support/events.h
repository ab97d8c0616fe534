/* events.h — what the library's callbacks report, queued for the test thread.
 *
 * Callbacks run on the library's I/O thread, where a cmocka assert must not
 * run.  They push events into a locked queue instead; the test thread waits
 * for the event it expects, with a deadline, and asserts there.  A child
 * process (a candidate of its own) reports the same events as lines on a
 * pipe; a reader thread in the parent queues them, so the test waits for a
 * child's events exactly as for its own.
 */
#ifndef LEASEHOLD_EVENTS_H
#define LEASEHOLD_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "leasehold.h"

typedef enum event_kind {
    EV_ANY = 0,        /* in a filter: any kind */
    EV_ELECTED,        /* epoch */
    EV_REVOKED,        /* value: leasehold_reason */
    EV_LEADER_CHANGED, /* text: holder token ("" for none, has_text false); epoch */
    EV_ERROR,          /* value: error code; text: message */
    EV_LOG,            /* value: log level; text: line */
    EV_SAMPLE,         /* from a child: value = leasehold_is_leader() as sampled at at_ms */
    EV_WOKE,           /* from a child: it was stopped; value = is_leader() first thing after,
                          epoch = the time (ms) of its last sample before the stop */
    EV_EXIT,           /* from a child's reader: the child closed its pipe */
    EV_NOTE,           /* a test's own: value and text as the test likes */
} event_kind;

typedef struct event {
    event_kind kind;
    int who;        /* which candidate (the sink's index) */
    uint64_t epoch; /* elected / leader_changed */
    long long value;
    bool has_text;
    char text[300];
    uint64_t at_ms; /* CLOCK_MONOTONIC when it happened */
} event;

/* Selects events: kind EV_ANY and who -1 match anything; text, when not
 * NULL, must equal the event's text; not_who, when >= 0, excludes one. */
typedef struct event_filter {
    event_kind kind;
    int who;
    int not_who;
    const char *text;
} event_filter;

typedef struct event_queue event_queue;

/* An empty queue; NULL only when out of memory. */
event_queue *events_new(void);

/* Frees q; every child still attached must have been stopped. */
void events_free(event_queue *q);

/* Appends ev (at_ms set to now when 0).  Thread-safe. */
void events_push(event_queue *q, const event *ev);

/* Removes and returns (in *out, may be NULL) the oldest event matching f,
 * waiting up to test_ms(max_ms) for one to arrive.  False on timeout.  Call
 * from the test thread. */
bool events_wait(event_queue *q, event_filter f, uint64_t max_ms, event *out);

/* The number of queued events matching f, without removing them. */
int events_count(event_queue *q, event_filter f);

/* Drops every queued event. */
void events_clear(event_queue *q);

/* Filters, for brevity: events_of(EV_ELECTED, 2), events_of(EV_ANY, -1). */
event_filter events_of(event_kind kind, int who);

/* Where a candidate's callbacks report: to q (in this process), or as
 * lines to fd (in a child, q NULL).  The callbacks' and log's arg. */
typedef struct event_sink {
    event_queue *q;
    int fd;
    int who;
} event_sink;

/* Callbacks that report every event of an election to the event_sink given
 * as their arg. */
extern const leasehold_callbacks events_callbacks;

/* A leasehold_log_fn reporting EV_LOG to the event_sink given as log_arg. */
void events_log(leasehold_log_level level, const char *msg, void *arg);

/* Reports ev through s (who and at_ms filled in).  Thread-safe. */
void events_emit(event_sink *s, const event *ev);

/* ------------------------------------------------------------ candidates */

/* One candidate in this process: its own client, campaigning for one key,
 * reporting to a queue. */
typedef struct candidate {
    leasehold_client *client;
    leasehold_election *election;
    event_sink sink; /* its address is the callbacks' arg: do not move a live candidate */
} candidate;

/* Creates a client for cfg (its log reports to the sink too) and campaigns
 * for key with events_callbacks, as candidate `who` of q.  Returns 0, or the
 * error code with the message printed. */
int candidate_start(candidate *cd, const leasehold_config *cfg, const char *key, event_queue *q,
                    int who);

/* As candidate_start, but runs service while it leads (leasehold_serve_cb):
 * service's arg, like the callbacks', is &cd->sink, whose `who` tells the
 * candidate. */
int candidate_serve(candidate *cd, const leasehold_config *cfg, const char *key,
                    int (*service)(leasehold_token *t, void *arg), event_queue *q, int who);

/* Frees the candidate's client (which resigns and releases); idempotent. */
void candidate_stop(candidate *cd);

/* ---------------------------------------------------- child processes */

typedef struct events_child events_child;

/* Starts argv (NULL-terminated, usually test_process_self() and a mode
 * argument) with its stdout on a pipe whose lines (written by an event_sink
 * with that fd) are queued in q as events of candidate `who`.  NULL on
 * failure (printed). */
events_child *events_child_start(event_queue *q, int who, char *const argv[]);

/* The child's pid. */
pid_t events_child_pid(const events_child *ch);

/* Kills the child (SIGKILL), reaps it, stops the reader and frees ch.
 * NULL is ignored. */
void events_child_stop(events_child *ch);

#endif
