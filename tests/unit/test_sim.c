/* test_sim.c — the election in simulation: safety after every step, under
 * faults (stale commands, lost events, abandoned services included), for
 * several seeds; the resign hold in two directed runs; and proof that the
 * checker can fail (broken machines, a Redis whose release ignores the epoch).
 *
 * LEASEHOLD_SIM_SEED=n runs only seed n in the fault tests (the default
 * timings with 3 + n % 5 machines, and the short lease with 5);
 * LEASEHOLD_SIM_STEPS=n changes the length of each run (default 100000 ms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim.h"

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end)
        fail_msg("%s=%s is not a number", name, v);
    return n;
}

static void print_stats(const sim_options *o, const sim_stats *st)
{
    print_message("seed %llu, %u machines: %llu ms, %llu elections by %u machines, leader "
                  "%llu%% of the time; %llu partitions, %llu freezes, %llu pauses, %llu "
                  "restarts, %llu resigns, %llu stops, %llu abandons, %llu timeouts (%llu stale "
                  "commands run, %llu lost; %llu ghost claims, %llu stale releases), %llu events "
                  "(%llu lost, %llu dropped subscriptions), %llu errors\n",
                  (unsigned long long)o->seed, o->machines, (unsigned long long)st->steps,
                  (unsigned long long)st->elections, st->distinct_leaders,
                  (unsigned long long)(st->steps ? st->leader_ms * 100 / st->steps : 0),
                  (unsigned long long)st->partitions, (unsigned long long)st->freezes,
                  (unsigned long long)st->pauses, (unsigned long long)st->restarts,
                  (unsigned long long)st->resigns, (unsigned long long)st->stops,
                  (unsigned long long)st->abandons, (unsigned long long)st->timeouts,
                  (unsigned long long)st->stale_run, (unsigned long long)st->stale_lost,
                  (unsigned long long)st->ghost_claims, (unsigned long long)st->stale_releases,
                  (unsigned long long)st->events, (unsigned long long)st->events_lost,
                  (unsigned long long)st->sub_drops, (unsigned long long)st->errors);
}

/* Runs one seeded simulation with faults and checks safety and progress. */
static void run_with_faults(sim_options *o, uint64_t steps)
{
    o->faults = true;
    sim *s = sim_new(o);
    assert_non_null(s);
    bool ok = sim_run(s, steps);
    const sim_stats *st = sim_get_stats(s);
    print_stats(o, st);
    if (!ok) {
        print_error("replay with LEASEHOLD_SIM_SEED=%llu\n", (unsigned long long)o->seed);
        fail_msg("%s", sim_violation(s));
    }
    /* Progress: terms keep being won, by more than one machine, and the key
     * is led most of the time in spite of the faults. */
    if (st->elections < 3 || st->distinct_leaders < 2 || st->leader_ms * 2 < st->steps)
        fail_msg("seed %llu: too little progress: %llu elections by %u machines, leader %llu "
                 "of %llu ms",
                 (unsigned long long)o->seed, (unsigned long long)st->elections,
                 st->distinct_leaders, (unsigned long long)st->leader_ms,
                 (unsigned long long)st->steps);
    sim_free(s);
}

/* The seeds to run: [first, last], or only LEASEHOLD_SIM_SEED when set. */
static void seeds(uint64_t *first, uint64_t *last)
{
    uint64_t only = env_u64("LEASEHOLD_SIM_SEED", 0);
    if (only)
        *first = *last = only;
}

static void test_faults_many_seeds(void **state)
{
    (void)state;
    uint64_t steps = env_u64("LEASEHOLD_SIM_STEPS", 100000);
    uint64_t first = 1, last = 32;
    seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        sim_options o;
        sim_options_init(&o, seed, 3 + (unsigned)(seed % 5));
        run_with_faults(&o, steps);
    }
}

/* The tightest timings the configuration check accepts. */
static void test_faults_short_lease(void **state)
{
    (void)state;
    uint64_t steps = env_u64("LEASEHOLD_SIM_STEPS", 100000);
    uint64_t first = 101, last = 108;
    seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        sim_options o;
        sim_options_init(&o, seed, 5);
        o.lease = (lease_config){.lease_ms = 500,
                                 .renew_interval_ms = 100,
                                 .retry_interval_ms = 250,
                                 .renew_deadline_ms = 350,
                                 .stop_timeout_ms = 250,
                                 .drift_ppm = 10000};
        o.command_timeout_ms = 60;
        run_with_faults(&o, steps);
    }
}

/* Without faults one machine wins at once and keeps the lease. */
static void test_no_faults_one_term(void **state)
{
    (void)state;
    sim_options o;
    sim_options_init(&o, 7, 5);
    sim *s = sim_new(&o);
    assert_true(sim_run(s, 30000));
    const sim_stats *st = sim_get_stats(s);
    assert_int_equal(st->elections, 1);
    assert_true(st->leader_ms > 30000 - 200);
    sim_free(s);
}

/* A Redis restart loses the key: the leader hears the close and steps down,
 * and a new term starts once Redis is back. */
static void test_restart_hands_over(void **state)
{
    (void)state;
    sim_options o;
    sim_options_init(&o, 11, 4);
    sim *s = sim_new(&o);
    assert_true(sim_run(s, 3000));
    assert_true(sim_leader(s) >= 0);
    int tries = 0;
    while (!sim_redis_restart(s)) {
        assert_true(sim_step(s));
        assert_true(++tries < 1000);
    }
    if (!sim_run(s, 10000))
        fail_msg("%s", sim_violation(s));
    assert_int_equal(sim_get_stats(s)->elections, 2);
    assert_true(sim_leader(s) >= 0);
    sim_free(s);
}

/* A leader frozen for longer than the lease, in a simulation whose machines
 * have `bug`: the checker must report it. */
static void expect_violation(sim_bug bug, unsigned checks, const char *what)
{
    sim_options o;
    sim_options_init(&o, 3, 3);
    o.bug = bug;
    o.checks = checks;
    sim *s = sim_new(&o);
    assert_true(sim_run(s, 3000));
    int leader = sim_leader(s);
    assert_true(leader >= 0);
    sim_freeze(s, (unsigned)leader, 3 * o.lease.lease_ms);
    assert_false(sim_run(s, 10000));
    const char *v = sim_violation(s);
    assert_non_null(v);
    print_message("reported as it should: %s\n", v);
    if (!strstr(v, what))
        fail_msg("expected a violation with \"%s\", got: %s", what, v);
    sim_free(s);
}

static void test_checker_catches_valid_until_from_arrival(void **state)
{
    (void)state;
    expect_violation(SIM_BUG_VALID_FROM_ARRIVAL, SIM_CHECK_ALL, "past");
}

static void test_checker_catches_two_leaders(void **state)
{
    (void)state;
    expect_violation(SIM_BUG_TRUST_STATE, SIM_CHECK_ONE_LEADER, "both leader");
}

/* Runs the fault simulation over the default seeds with `bug`: some run must
 * report a violation naming `what`, and no run another one. */
static void expect_violation_in_some_seed(sim_bug bug, const char *what)
{
    unsigned caught = 0, runs = 32;
    for (uint64_t seed = 1; seed <= runs; seed++) {
        sim_options o;
        sim_options_init(&o, seed, 3 + (unsigned)(seed % 5));
        o.faults = true;
        o.bug = bug;
        sim *s = sim_new(&o);
        if (!sim_run(s, 100000)) {
            const char *v = sim_violation(s);
            if (!strstr(v, what))
                fail_msg("expected \"%s\", got: %s", what, v);
            if (!caught)
                print_message("reported as it should: %s\n", v);
            caught++;
        }
        sim_free(s);
    }
    print_message("%u of %u runs caught it\n", caught, runs);
    assert_true(caught > 0);
}

/* Taking Redis's close for a timeout keeps a leader leading on a Redis that
 * restarted without its key: some run must show two leaders. */
static void test_checker_catches_ignored_close(void **state)
{
    (void)state;
    expect_violation_in_some_seed(SIM_BUG_IGNORE_PEER_CLOSE, "both leader");
}

/* A release script that compares the token only (the old one) lets a stale
 * release, run after its machine won a later term with the same token,
 * delete that term. */
static void test_checker_catches_release_by_token_only(void **state)
{
    (void)state;
    expect_violation_in_some_seed(SIM_BUG_RELEASE_TOKEN_ONLY, "deleted the key");
}

/* Runs until a leader is elected and returns it. */
static unsigned elect(sim *s)
{
    if (!sim_run(s, 3000))
        fail_msg("%s", sim_violation(s));
    int leader = sim_leader(s);
    assert_true(leader >= 0);
    return (unsigned)leader;
}

/* A resign whose service takes most of stop_timeout_ms to stop: the key is
 * renewed meanwhile and released after, so the successor is elected only
 * once the service has stopped (the checker holds it to that). */
static void test_resign_holds_until_service_stops(void **state)
{
    (void)state;
    sim_options o;
    sim_options_init(&o, 5, 4);
    sim *s = sim_new(&o);
    unsigned leader = elect(s);
    assert_true(sim_resign(s, leader, o.lease.stop_timeout_ms - 100));
    if (!sim_run(s, o.lease.stop_timeout_ms - 100))
        fail_msg("%s", sim_violation(s));
    assert_int_equal(sim_get_stats(s)->elections, 1);
    if (!sim_run(s, 2000))
        fail_msg("%s", sim_violation(s));
    assert_int_equal(sim_get_stats(s)->elections, 2);
    assert_true(sim_leader(s) >= 0 && (unsigned)sim_leader(s) != leader);
    sim_free(s);
}

/* A resign whose service never stops in time: the client abandons it at
 * stop_timeout_ms, the key is not released but left to lapse (the checker
 * fails any release of that term while its service runs, and any election
 * before the resigner's hold ends), and a successor is elected after. */
static void test_abandoned_service_key_lapses(void **state)
{
    (void)state;
    sim_options o;
    sim_options_init(&o, 9, 4);
    sim *s = sim_new(&o);
    unsigned leader = elect(s);
    assert_true(sim_resign(s, leader, 3 * (uint64_t)o.lease.lease_ms));
    if (!sim_run(s, 3 * (uint64_t)o.lease.lease_ms + 2000))
        fail_msg("%s", sim_violation(s));
    assert_int_equal(sim_get_stats(s)->abandons, 1);
    assert_true(sim_get_stats(s)->elections >= 2);
    sim_free(s);
}

/* The same freeze without a bug is safe: the frozen leader's lease lapses
 * before another machine can be elected. */
static void test_frozen_leader_is_safe(void **state)
{
    (void)state;
    sim_options o;
    sim_options_init(&o, 3, 3);
    sim *s = sim_new(&o);
    assert_true(sim_run(s, 3000));
    int leader = sim_leader(s);
    assert_true(leader >= 0);
    sim_freeze(s, (unsigned)leader, 3 * o.lease.lease_ms);
    if (!sim_run(s, 10000))
        fail_msg("%s", sim_violation(s));
    assert_int_equal(sim_get_stats(s)->elections, 2);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_faults_one_term),
        cmocka_unit_test(test_frozen_leader_is_safe),
        cmocka_unit_test(test_restart_hands_over),
        cmocka_unit_test(test_checker_catches_valid_until_from_arrival),
        cmocka_unit_test(test_checker_catches_two_leaders),
        cmocka_unit_test(test_checker_catches_ignored_close),
        cmocka_unit_test(test_checker_catches_release_by_token_only),
        cmocka_unit_test(test_resign_holds_until_service_stops),
        cmocka_unit_test(test_abandoned_service_key_lapses),
        cmocka_unit_test(test_faults_many_seeds),
        cmocka_unit_test(test_faults_short_lease),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
