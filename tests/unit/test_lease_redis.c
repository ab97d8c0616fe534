/*
 * test_lease_redis — the state machine against a Redis that misbehaves in
 * ways the key alone cannot show: its wall clock steps (every TTL shrinks at
 * once), it lost its data (the quarantine), epochs that would go backwards
 * (the floor).  Each test drives one lease by hand with a simulated clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lease.h"

static const lease_config cfg = {.lease_ms = 2000,
                                 .renew_interval_ms = 300,
                                 .retry_interval_ms = 1000,
                                 .renew_deadline_ms = 1500,
                                 .stop_timeout_ms = 1000,
                                 .drift_ppm = 10000};

/* Redis's TIME in microseconds at a made-up wall-clock origin. */
#define REDIS_T0_US 1700000000000000ull

/* Pops every action; returns how many were of `kind`, the last in *last. */
static int drain(lease *l, lease_action_kind kind, lease_action *last)
{
    int n = 0;
    lease_action a;
    while (lease_next_action(l, &a))
        if (a.kind == kind) {
            n++;
            if (last)
                *last = a;
        }
    return n;
}

/* Drains until an action of `kind` and returns it (fails when none). */
static lease_action expect(lease *l, lease_action_kind kind)
{
    lease_action a;
    while (lease_next_action(l, &a))
        if (a.kind == kind)
            return a;
    fail_msg("no action of kind %d", (int)kind);
    return a;
}

/* A leader elected at t=0 with epoch 100, its acquire run at Redis time
 * REDIS_T0_US; the first renewal is due at 300. */
static void elect_at(lease *l, uint64_t redis_us)
{
    lease_init(l, &cfg, "me/1", 7);
    lease_on_connected(l, 0);
    lease_start(l, 0);
    lease_action a = expect(l, LEASE_SEND_ACQUIRE);
    lease_reply r = {.result = LEASE_ACQUIRED, .epoch = 100, .redis_time_us = redis_us};
    lease_on_acquire(l, 2, a.seq, &r);
    expect(l, LEASE_ELECTED);
    assert_true(lease_is_leader(l, 2));
}

static void elect(lease *l)
{
    elect_at(l, REDIS_T0_US);
}

/* Sends the renewal due at `at` and answers it at at + rtt with `result`,
 * Redis's clock reading redis_us when it ran. */
static void renew(lease *l, uint64_t at, uint64_t rtt, int result, uint64_t redis_us)
{
    lease_tick(l, at);
    lease_action a = expect(l, LEASE_SEND_RENEW);
    lease_reply r = {.result = result, .redis_time_us = redis_us};
    lease_on_renew(l, at + rtt, a.seq, &r);
}

/* Redis's clock keeps pace with ours (even 0.9% fast): renewals go on. */
static void test_clock_in_step(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    uint64_t redis = REDIS_T0_US;
    for (uint64_t t = 300; t <= 3000; t += 300) {
        redis += 300 * 1009; /* 300 ms and 0.9% more */
        renew(&l, t, 1, LEASE_RENEWED, redis);
        assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
        assert_true(lease_is_leader(&l, t + 1));
    }
}

/* Redis's clock stepped 5 s forward between two renewals, the key still
 * there: the term ends at once with its own reason and error, and its
 * deadline is now rather than valid_until. */
static void test_clock_step_renewed(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    renew(&l, 300, 1, LEASE_RENEWED, REDIS_T0_US + 300000);
    drain(&l, LEASE_REVOKED, NULL);
    lease_tick(&l, 600);
    lease_action a = expect(&l, LEASE_SEND_RENEW);
    lease_reply r = {.result = LEASE_RENEWED, .redis_time_us = REDIS_T0_US + 5300000};
    lease_on_renew(&l, 601, a.seq, &r);
    lease_action err = {0}, rev = {0};
    lease_action b;
    while (lease_next_action(&l, &b)) {
        if (b.kind == LEASE_ERROR)
            err = b;
        if (b.kind == LEASE_REVOKED)
            rev = b;
    }
    assert_int_equal(err.error, LEASEHOLD_ECLOCKJUMP);
    assert_int_equal(err.redis_ms, 5000);
    assert_int_equal(err.local_ms, 301); /* from the last renewal's send to this reply */
    assert_int_equal(rev.kind, LEASE_REVOKED);
    assert_int_equal(rev.reason, LEASEHOLD_CLOCK_JUMPED);
    assert_false(lease_is_leader(&l, 601));
    assert_int_equal(lease_hold_until(&l), 601);
}

/* The step made the key vanish: the reason names the step, not expiry. */
static void test_clock_step_missing(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    renew(&l, 300, 1, LEASE_RENEW_MISSING, REDIS_T0_US + 10300000);
    lease_action rev = {0};
    assert_int_equal(drain(&l, LEASE_REVOKED, &rev), 1);
    assert_int_equal(rev.reason, LEASEHOLD_CLOCK_JUMPED);
    assert_int_equal(lease_hold_until(&l), 301);
}

/* A step just within the allowance is no step; one just past it is. */
static void test_clock_step_threshold(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    /* From the acquire's send (0) to this reply (301): 301 ms, allowance
     * 301 * 1% + 2 = 5 ms (rounded down): 306 ms is fine, 307 is not. */
    renew(&l, 300, 1, LEASE_RENEWED, REDIS_T0_US + 306999);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
    renew(&l, 600, 1, LEASE_RENEWED, REDIS_T0_US + 306999 + 308000);
    lease_action rev = {0};
    assert_int_equal(drain(&l, LEASE_REVOKED, &rev), 1);
    assert_int_equal(rev.reason, LEASEHOLD_CLOCK_JUMPED);
}

/* A step back lengthens every TTL: no reason to end the term. */
static void test_clock_step_back(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    renew(&l, 300, 1, LEASE_RENEWED, REDIS_T0_US - 60000000);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
    renew(&l, 600, 1, LEASE_RENEWED, REDIS_T0_US - 60000000 + 300000);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
    assert_true(lease_is_leader(&l, 602));
}

/* Without Redis's TIME (replies that lack it) nothing is concluded; the
 * first TIME is the base the next one is compared with. */
static void test_clock_unknown(void **state)
{
    (void)state;
    lease l;
    elect_at(&l, 0);
    renew(&l, 300, 1, LEASE_RENEWED, 0);
    renew(&l, 600, 1, LEASE_RENEWED, REDIS_T0_US + 9000000);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
    assert_true(lease_is_leader(&l, 602));
    renew(&l, 900, 1, LEASE_RENEWED, REDIS_T0_US + 9000000 + 300000);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 0);
    renew(&l, 1200, 1, LEASE_RENEWED, REDIS_T0_US + 9000000 + 300000 + 2000000);
    assert_int_equal(drain(&l, LEASE_REVOKED, NULL), 1);
}

/* Another token in the key, or the key gone, before valid_until: the lease
 * was lost early, so the term's deadline is now. */
static void test_lost_early_deadline_now(void **state)
{
    (void)state;
    lease l;
    elect(&l);
    lease_tick(&l, 300);
    lease_action a = expect(&l, LEASE_SEND_RENEW);
    lease_reply r = {.result = LEASE_RENEW_HELD, .holder = "other/2", .holder_len = 7};
    lease_on_renew(&l, 305, a.seq, &r);
    lease_action rev = {0};
    assert_int_equal(drain(&l, LEASE_REVOKED, &rev), 1);
    assert_int_equal(rev.reason, LEASEHOLD_LOST);
    assert_int_equal(lease_hold_until(&l), 305);

    elect(&l);
    renew(&l, 300, 5, LEASE_RENEW_MISSING, 0);
    assert_int_equal(drain(&l, LEASE_REVOKED, &rev), 1);
    assert_int_equal(rev.reason, LEASEHOLD_EXPIRED);
    assert_int_equal(lease_hold_until(&l), 305);
}

/* A quarantined claim waits for the quarantine, then claims again. */
static void test_quarantine_waits(void **state)
{
    (void)state;
    lease l;
    lease_init(&l, &cfg, "me/1", 7);
    lease_on_connected(&l, 0);
    lease_start(&l, 0);
    lease_action a = expect(&l, LEASE_SEND_ACQUIRE);
    lease_reply r = {.result = LEASE_ACQUIRE_QUARANTINED, .pttl_ms = 2000, .fresh = true};
    lease_on_acquire(&l, 1, a.seq, &r);
    assert_int_equal(drain(&l, LEASE_SEND_ACQUIRE, NULL), 0);
    assert_int_equal(lease_get_state(&l), LEASE_FOLLOWER);
    uint64_t wake = lease_wake_at(&l);
    assert_true(wake >= 2001 && wake <= 2001 + 2000 / 400 + 1);
    lease_tick(&l, 1999);
    assert_int_equal(drain(&l, LEASE_SEND_ACQUIRE, NULL), 0);
    lease_tick(&l, wake);
    assert_int_equal(drain(&l, LEASE_SEND_ACQUIRE, NULL), 1);
}

/* The acquire asks for an epoch above every one seen: held keys' epochs,
 * events, its own terms; an epoch past 2^52 (forged, or corrupt) is no
 * floor, since Lua could not count past it. */
static void test_epoch_floor(void **state)
{
    (void)state;
    lease l;
    lease_init(&l, &cfg, "me/1", 7);
    lease_on_connected(&l, 0);
    lease_start(&l, 0);
    lease_action a = expect(&l, LEASE_SEND_ACQUIRE);
    assert_int_equal(a.epoch, 0); /* nothing seen yet */
    lease_reply r = {.result = LEASE_ACQUIRE_HELD,
                     .holder = "other/2",
                     .holder_len = 7,
                     .pttl_ms = 500,
                     .epoch = 5000};
    lease_on_acquire(&l, 1, a.seq, &r);
    lease_on_event(&l, 2, LEASE_EVENT_ELECTED, "third/3", 7, 7000);
    lease_on_event(&l, 3, LEASE_EVENT_ELECTED, "forged/4", 8, (1ull << 52) + 5);
    assert_int_equal(lease_max_epoch_seen(&l), 7000);
    lease_tick(&l, lease_wake_at(&l));
    lease_action b = {0};
    assert_int_equal(drain(&l, LEASE_SEND_ACQUIRE, &b), 1);
    assert_int_equal(b.epoch, 7001);
    lease_reply won = {.result = LEASE_ACQUIRED, .epoch = 9000};
    lease_on_acquire(&l, lease_wake_at(&l) + 1, b.seq, &won);
    assert_int_equal(lease_max_epoch_seen(&l), 9000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_in_step),
        cmocka_unit_test(test_clock_step_renewed),
        cmocka_unit_test(test_clock_step_missing),
        cmocka_unit_test(test_clock_step_threshold),
        cmocka_unit_test(test_clock_step_back),
        cmocka_unit_test(test_clock_unknown),
        cmocka_unit_test(test_lost_early_deadline_now),
        cmocka_unit_test(test_quarantine_waits),
        cmocka_unit_test(test_epoch_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
