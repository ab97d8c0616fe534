/* test_flood.c — forged messages on a key's events channel, against a real
 * redis-server.  Anyone who can PUBLISH may send `elected` and `released`
 * for any key; they are news, never proof, and the work they cause an
 * election is bounded by the event floor (lease_ms / 40 between two
 * hastened commands), however fast they come. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

#define FORGED 2000

/* The calls of the scripts so far: EVALSHA and EVAL, from INFO commandstats. */
static long long script_calls(void)
{
    redisReply *r = redis_server_cmd(fx.srv, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long total = 0;
    const char *names[] = {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="};
    for (size_t i = 0; i < 2; i++) {
        const char *p = strstr(r->str, names[i]);
        if (p)
            total += strtoll(p + strlen(names[i]), NULL, 10);
    }
    freeReplyObject(r);
    return total;
}

/*
 * A leader and a follower; FORGED messages published one after the other as
 * fast as one connection can (not pipelined, so the flood lasts long enough
 * for every message to find no command in flight), pairs of "elected E forged/1" and
 * "released E forged/1" with E rising above the real epoch, so each pair
 * would make the leader renew and the follower claim at once.  A last
 * message names a sentinel holder: once both have reported it, they have
 * handled the whole flood.  The scripts Redis ran meanwhile must stay within
 * what the floor allows for that time (plus the elections' own timers), with
 * a wide margin; without the floor each message costs a command.
 */
static void test_forged_event_flood_is_bounded(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    const char *key = "lh:flood";
    fixture_start_candidates(&cfg, key, 2);
    event el = fixture_first_leader(&cfg, -1);
    int follower = 1 - el.who;
    const char *token = leasehold_election_token(fx.cand[el.who].election);
    event_filter knows = {EV_LEADER_CHANGED, follower, -1, token};
    assert_true(events_wait(fx.q, knows, cfg.retry_interval_ms + 1000, NULL));

    redisContext *pub = redisConnect("127.0.0.1", fx.srv->port);
    assert_non_null(pub);
    assert_int_equal(pub->err, 0);
    long long before = script_calls();
    uint64_t t0 = test_now_ms();
    char channel[64], msg[128];
    snprintf(channel, sizeof channel, "{%s}:events", key);
    for (int i = 0; i <= FORGED; i++) {
        if (i < FORGED)
            snprintf(msg, sizeof msg, "%s %llu forged/1", i % 2 ? "released" : "elected",
                     (unsigned long long)(el.epoch + 1 + (uint64_t)i / 2));
        else
            snprintf(msg, sizeof msg, "elected %llu sentinel/1",
                     (unsigned long long)(el.epoch + FORGED));
        redisReply *r = redisCommand(pub, "PUBLISH %s %s", channel, msg);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, 2); /* both candidates listen */
        freeReplyObject(r);
    }
    redisFree(pub);
    for (int i = 0; i < 2; i++) {
        event_filter seen = {EV_LEADER_CHANGED, i, -1, "sentinel/1"};
        if (!events_wait(fx.q, seen, 10000, NULL))
            fail_msg("candidate %d never handled the end of the flood", i);
    }
    uint64_t took = test_now_ms() - t0;
    long long calls = script_calls() - before;

    /* Per election and second: one hastened command per floor, plus its own
     * timers (a renewal per renew interval; a claim per 3/4 of the retry
     * interval at most); a few more for commands in flight at either end of
     * the window; then twice all that as a margin. */
    double secs = (double)(took + 50) / 1000.0;
    double per_s = 1000.0 / (cfg.lease_ms / 40) + 1000.0 / cfg.renew_interval_ms +
                   1000.0 / (cfg.retry_interval_ms * 3 / 4);
    long long bound = (long long)(2 * (2 * (secs * per_s + 3)));
    printf("# %d forged messages handled in %llu ms; the scripts ran %lld times (bound %lld)\n",
           FORGED, (unsigned long long)took, calls, bound);
    if (calls > bound)
        fail_msg("%lld script calls during a flood of %d forged messages (%llu ms): more than %lld",
                 calls, FORGED, (unsigned long long)took, bound);
    /* News is never proof: the leader still leads. */
    assert_true(leasehold_is_leader(fx.cand[el.who].election));
    assert_false(leasehold_is_leader(fx.cand[follower].election));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_forged_event_flood_is_bounded),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
