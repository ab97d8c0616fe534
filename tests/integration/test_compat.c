/* test_compat.c — leasehold beside a candidate that speaks only the original
 * protocol (plain SET NX PX and the original renewal script), and a
 * self-check of the test harness itself. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* The original module's renewal, verbatim. */
#define ORIGINAL_RENEW                                                                             \
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], "         \
    "ARGV[2]) else return 0 end"
#define ORIGINAL_LEASE_MS 2000
#define ORIGINAL_RENEW_MS 300

/* The original module's timings: lease 2000, renew 300; retry short. */
static void compat_config(leasehold_config *cfg)
{
    test_config(cfg, fx.srv->url);
    cfg->lease_ms = ORIGINAL_LEASE_MS;
    cfg->renew_deadline_ms = 1500;
}

static long long original_renew(const char *key, const char *value)
{
    redisReply *r = redis_server_cmd(fx.srv, "EVAL %s 1 %s %s %d", ORIGINAL_RENEW, key, value,
                                     ORIGINAL_LEASE_MS);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The harness: start (with a password and a unix socket), PING, pause,
 * resume, restart with and without data, stop; nothing is left behind. */
static void test_harness_selfcheck(void **state)
{
    (void)state;
    redis_server_opts o = {.password = "selfcheck-pw", .unix_socket = true};
    redis_server *s = redis_server_start(&o);
    assert_non_null(s);
    assert_true(s->port > 0);
    assert_non_null(strstr(s->url, "127.0.0.1"));
    struct stat st;
    assert_int_equal(stat(s->unix_path, &st), 0);
    redisReply *r = redis_server_cmd(s, "PING");
    assert_non_null(r);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    r = redis_server_cmd(s, "SET kept 1");
    assert_non_null(r);
    freeReplyObject(r);

    redis_server_pause(s);
    assert_null(redis_server_cmd(s, "PING")); /* times out */
    redis_server_resume(s);
    r = redis_server_cmd(s, "PING");
    assert_non_null(r);
    freeReplyObject(r);

    int port = s->port;
    assert_int_equal(redis_server_restart(s, true), 0);
    assert_int_equal(s->port, port);
    r = redis_server_cmd(s, "GET kept");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    assert_int_equal(redis_server_restart(s, false), 0);
    r = redis_server_cmd(s, "GET kept");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    char dir[sizeof s->dir];
    snprintf(dir, sizeof dir, "%s", s->dir);
    pid_t pid = s->pid;
    redis_server_stop(s);
    assert_int_not_equal(stat(dir, &st), 0);
    assert_int_not_equal(kill(pid, 0), 0);
}

/*
 * The original holds the key and renews it every 300 ms: no leasehold
 * candidate leads (sampled for three seconds), and they report "myvalue" as
 * the holder.  When it stops renewing, one of them takes over within lease
 * + retry + margin.
 */
static void test_original_holder_keeps_leasehold_out(void **state)
{
    (void)state;
    const char *key = "snaketron:leader:compat-a";
    redisReply *r =
        redis_server_cmd(fx.srv, "SET %s %s NX PX %d", key, "myvalue", ORIGINAL_LEASE_MS);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    leasehold_config cfg;
    compat_config(&cfg);
    fixture_start_candidates(&cfg, key, 2);
    uint64_t hold_ms = 3000 + fixture_fresh_ms();
    uint64_t end = test_now_ms() + hold_ms, next_renew = 0;
    while (test_now_ms() < end) {
        if (test_now_ms() >= next_renew) {
            assert_int_equal(original_renew(key, "myvalue"), 1);
            next_renew = test_now_ms() + ORIGINAL_RENEW_MS;
        }
        for (int i = 0; i < 2; i++)
            if (leasehold_is_leader(fx.cand[i].election))
                fail_msg("candidate %d leads while the original holds the key", i);
        test_sleep_ms(10);
    }
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);
    for (int i = 0; i < 2; i++) {
        event_filter f = {EV_LEADER_CHANGED, i, -1, "myvalue"};
        if (!events_wait(fx.q, f, 1000, NULL))
            fail_msg("candidate %d never reported the holder \"myvalue\"", i);
    }

    /* The original stops renewing now; its key lives ORIGINAL_LEASE_MS more. */
    uint64_t t0 = test_now_ms();
    event el;
    if (!events_wait(fx.q, events_of(EV_ELECTED, -1),
                     ORIGINAL_LEASE_MS + cfg.retry_interval_ms + 1000, &el))
        fail_msg("no leasehold candidate took over after the original stopped");
    printf("# took over %llu ms after the original's last renewal\n",
           (unsigned long long)(el.at_ms - t0));
    r = redis_server_cmd(fx.srv, "GET %s", key);
    assert_non_null(r);
    assert_string_equal(r->str, leasehold_election_token(fx.cand[el.who].election));
    freeReplyObject(r);
}

/* While leasehold leads, the original's SET NX PX fails and its renewal of
 * "myvalue" answers 0; the key holds the leader's token with a TTL. */
static void test_original_stays_out_while_leasehold_leads(void **state)
{
    (void)state;
    const char *key = "snaketron:leader:compat-b";
    leasehold_config cfg;
    compat_config(&cfg);
    fixture_start_candidates(&cfg, key, 1);
    fixture_first_leader(&cfg, 0);

    for (int round = 0; round < 5; round++) {
        redisReply *r =
            redis_server_cmd(fx.srv, "SET %s %s NX PX %d", key, "myvalue", ORIGINAL_LEASE_MS);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_NIL);
        freeReplyObject(r);
        assert_int_equal(original_renew(key, "myvalue"), 0);
        r = redis_server_cmd(fx.srv, "PTTL %s", key);
        assert_non_null(r);
        assert_true(r->integer > 0 && r->integer <= ORIGINAL_LEASE_MS);
        freeReplyObject(r);
        test_sleep_ms(ORIGINAL_RENEW_MS);
    }
    assert_true(leasehold_is_leader(fx.cand[0].election));
    redisReply *r = redis_server_cmd(fx.srv, "GET %s", key);
    assert_non_null(r);
    assert_string_equal(r->str, leasehold_election_token(fx.cand[0].election));
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_harness_selfcheck),
        FIXTURE_TEST(test_original_holder_keeps_leasehold_out),
        FIXTURE_TEST(test_original_stays_out_while_leasehold_leads),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
