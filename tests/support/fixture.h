/* fixture.h — what every integration test sets up: a private redis-server,
 * a queue of the library's events, candidates in this process and in child
 * processes, a temporary directory, and the waits they share.
 *
 * A test binary has one fixture, `fx`.  Its cmocka hooks come in pairs:
 *
 *   group hooks   fixture_group_setup / fixture_group_teardown: one Redis for
 *                 the whole binary (fixture_group_setup_tmpdir: and a
 *                 temporary directory);
 *   test hooks    fixture_setup / fixture_teardown: an event queue per test,
 *                 and whatever the test started stopped after it;
 *   both at once  fixture_setup_redis / fixture_teardown_redis: a Redis of
 *                 each test's own.
 *
 * A file with more state of its own wraps these in hooks of its own.  Call
 * everything here from the test's main thread (the asserts are cmocka's).
 */
#ifndef LEASEHOLD_FIXTURE_H
#define LEASEHOLD_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "leasehold.h"
#include "redis_server.h"

#define FIXTURE_MAX_CANDIDATES 51 /* in this process, at once */
#define FIXTURE_MAX_CHILDREN   3  /* candidates in child processes, at once */

typedef struct fixture {
    redis_server *srv; /* the private Redis */
    redis_server *own; /* a server a test started itself; fixture_teardown stops it */
    event_queue *q;    /* this test's events; NULL outside fixture_setup..teardown */
    /* in-process candidates, reporting to q as who = their index; cand[0..n)
     * started by fixture_start_candidates */
    candidate cand[FIXTURE_MAX_CANDIDATES];
    int n;
    events_child *child[FIXTURE_MAX_CHILDREN]; /* as cand, in child processes */
    bool fresh;       /* srv has not had an election yet (see fixture_fresh_ms) */
    char tmpdir[256]; /* the temporary directory, or "" */
} fixture;

/* The fixture of this test binary. */
extern fixture fx;

/* cmocka group setup: starts fx.srv (fresh).  -1 if it did not start. */
int fixture_group_setup(void **state);

/* As fixture_group_setup, and creates fx.tmpdir ($TMPDIR or /tmp). */
int fixture_group_setup_tmpdir(void **state);

/* cmocka group teardown: stops fx.srv and removes fx.tmpdir with everything
 * in it.  -1 if the directory could not be removed. */
int fixture_group_teardown(void **state);

/* cmocka setup: a new, empty fx.q and no candidates.  -1 when out of memory. */
int fixture_setup(void **state);

/* cmocka teardown: stops every child, every candidate (each client resigns
 * and releases) and fx.own, then frees fx.q.  Always 0. */
int fixture_teardown(void **state);

/* cmocka setup and teardown for a Redis of each test's own: the group
 * hooks and the test hooks at once. */
int fixture_setup_redis(void **state);
int fixture_teardown_redis(void **state);

/* A cmocka test run between fixture_setup and fixture_teardown. */
#define FIXTURE_TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)

/* ----------------------------------------------------------- candidates */

/* Starts fx.cand[0..n) campaigning for key with cfg (fx.n = n); fails the
 * test if one could not start. */
void fixture_start_candidates(const leasehold_config *cfg, const char *key, int n);

/* As fixture_start_candidates, each running service while it leads
 * (candidate_serve: its arg is the candidate's event_sink). */
void fixture_serve_candidates(const leasehold_config *cfg, const char *key, int n,
                              int (*service)(leasehold_token *t, void *arg));

/* How many of fx.cand[0..n) lead now; *which is set to the last of them. */
int fixture_count_leaders(int *which);

/* Starts candidates 0..n-1 as child processes (this binary again, see
 * fixture_run_child) campaigning for key on cfg's URL with cfg's lease and
 * retry interval, the rest as test_config's.  Each reports its events, and
 * every change of leasehold_is_leader() it samples every 5 ms (EV_SAMPLE),
 * and the first sample after it was stopped for more than 200 ms (EV_WOKE),
 * to fx.q as candidate i.  Fails the test if one did not start. */
void fixture_start_children(const leasehold_config *cfg, const char *key, int n);

/* First thing in main(): if this process is a child that
 * fixture_start_children started, runs it until killed (exits 1 or 2 if
 * it could not start); else returns at once. */
void fixture_run_child(int argc, char **argv);

/* ---------------------------------------------------------------- waits */

/* TEST_FRESH_REDIS_MS the first time it is called after fx.srv started (the
 * restart guard holds back the first election on a fresh Redis), else 0. */
uint64_t fixture_fresh_ms(void);

/* How long a first election may take: lease + retry + 1 s, plus
 * fixture_fresh_ms().  With a Redis per test that is every test's first
 * election; with one per group, only the binary's first. */
uint64_t fixture_first_election_ms(const leasehold_config *cfg);

/* Waits fixture_first_election_ms(cfg) for candidate who (-1: anyone) to
 * be elected and returns the event; fails the test if none was. */
event fixture_first_leader(const leasehold_config *cfg, int who);

/* ---------------------------------------------------------------- Redis */

/* The value of key on fx.srv, into out ("" when missing or not a string);
 * fails the test if the server does not answer. */
void fixture_redis_get(const char *key, char *out, size_t size);

/* Starts fx.own as a read-only replica of fx.srv; fails the test if it did
 * not start. */
void fixture_start_replica(void);

/* name's path in fx.tmpdir.  The string stays valid for the next seven
 * calls. */
const char *fixture_path(const char *name);

#endif
