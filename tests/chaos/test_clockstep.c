/*
 * test_clockstep — leasehold against a Redis whose wall clock steps (the
 * clockshift.so shim preloaded into redis-server): a step forward ends the
 * leader's term at its next renewal with LEASEHOLD_CLOCK_JUMPED, an error
 * naming the step, and a deadline of now; a step back changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clockshift.h"
#include "events.h"
#include "redis_server.h"
#include "testutil.h"

typedef struct fixture {
    redis_server *redis;
    int64_t *shift;
    char path[128];
    char env_file[200];
    char env_preload[4200];
    event_queue *q;
    candidate cand;
} fixture;

static fixture fx;

static int group_setup(void **state)
{
    (void)state;
    snprintf(fx.path, sizeof fx.path, "/tmp/test_clockstep.%d", (int)getpid());
    fx.shift = clockshift_create(fx.path);
    if (!fx.shift)
        return -1;
    snprintf(fx.env_file, sizeof fx.env_file, "%s=%s", CLOCKSHIFT_ENV, fx.path);
    snprintf(fx.env_preload, sizeof fx.env_preload, "LD_PRELOAD=%s", CLOCKSHIFT_PATH);
    const char *env[] = {fx.env_file, fx.env_preload, NULL};
    redis_server_opts o = {.env = env};
    fx.redis = redis_server_start(&o);
    return fx.redis ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_server_stop(fx.redis);
    clockshift_close(fx.shift);
    unlink(fx.path);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    fx.q = events_new();
    return fx.q ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    candidate_stop(&fx.cand);
    events_free(fx.q);
    fx.q = NULL;
    return 0;
}

/* Elects a candidate on key (restart guard off: the server is fresh). */
static event elect(const char *key, leasehold_config *cfg)
{
    test_config(cfg, fx.redis->url);
    cfg->restart_guard = false;
    assert_int_equal(candidate_start(&fx.cand, cfg, key, fx.q, 0), 0);
    event el;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 4 * cfg->lease_ms, &el));
    return el;
}

/* Steps Redis's clock by step_us while a leader leads and returns when its
 * term ended (failing if it did not within a few renewals). */
static void step_and_expect_jump(int64_t step_us, const char *key)
{
    leasehold_config cfg;
    elect(key, &cfg); /* the acquire's reply gave the first reading of Redis's clock */
    assert_true(leasehold_is_leader(fx.cand.election));
    uint64_t t_step = test_now_ms();
    clockshift_set(fx.shift, clockshift_get(fx.shift) + step_us);
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), 3 * cfg.renew_interval_ms, &rv));
    uint64_t deadline = leasehold_term_deadline_ms(fx.cand.election);
    uint64_t now = leasehold_now_ms();
    printf("# step of %+lld ms: term ended %llu ms later (%s)\n", (long long)(step_us / 1000),
           (unsigned long long)(rv.at_ms - t_step),
           leasehold_reason_name((leasehold_reason)rv.value));
    assert_int_equal(rv.value, LEASEHOLD_CLOCK_JUMPED);
    assert_false(leasehold_is_leader(fx.cand.election));
    assert_true(deadline <= now); /* not valid_until: the lease cannot be trusted */
    event err;
    assert_true(events_wait(fx.q, events_of(EV_ERROR, 0), 1000, &err));
    assert_int_equal(err.value, LEASEHOLD_ECLOCKJUMP);
    assert_non_null(strstr(err.text, "clock advanced"));
}

/* +5 s: more than the lease, the key vanishes at once. */
static void test_step_past_the_lease(void **state)
{
    (void)state;
    step_and_expect_jump(5000000, "lh:step:big");
}

/* +500 ms: the key survives (it had most of its 1000 ms left), but its TTL
 * shrank behind the leader's back; the term ends all the same. */
static void test_step_within_the_lease(void **state)
{
    (void)state;
    step_and_expect_jump(500000, "lh:step:small");
}

/* A step back lengthens every TTL: the leader goes on, renewals included. */
static void test_step_back(void **state)
{
    (void)state;
    leasehold_config cfg;
    elect("lh:step:back", &cfg);
    clockshift_set(fx.shift, clockshift_get(fx.shift) - 30000000);
    assert_false(events_wait(fx.q, events_of(EV_REVOKED, 0), 5 * cfg.renew_interval_ms, NULL));
    assert_true(leasehold_is_leader(fx.cand.election));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_step_past_the_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_within_the_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
