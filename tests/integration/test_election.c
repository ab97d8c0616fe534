/* test_election.c — elections among candidates in one process, against a
 * real redis-server: one leader at a time, fast handover on release, epochs
 * that increase, resign, and a key that someone else overwrites or deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* Waits for the first election and returns it in *ev. */
static void wait_first_leader(const leasehold_config *cfg, event *ev)
{
    *ev = fixture_first_leader(cfg, -1);
    assert_true(leasehold_is_leader(fx.cand[ev->who].election));
    assert_int_equal(leasehold_epoch(fx.cand[ev->who].election), ev->epoch);
}

/* Five candidates: exactly one leads, and keeps leading, while sampled
 * every 5 ms for two seconds; the others learn its token. */
static void test_one_leader_among_five(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    fixture_start_candidates(&cfg, "lh:election:five", 5);
    event el;
    wait_first_leader(&cfg, &el);

    uint64_t end = test_now_ms() + 2000;
    int samples = 0;
    while (test_now_ms() < end) {
        int who = -1;
        int n = fixture_count_leaders(&who);
        if (n != 1)
            fail_msg("sample %d: %d leaders, expected exactly one (candidate %d)", samples, n,
                     el.who);
        assert_int_equal(who, el.who);
        samples++;
        test_sleep_ms(5);
    }
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);

    const char *token = leasehold_election_token(fx.cand[el.who].election);
    assert_non_null(token);
    for (int i = 0; i < 5; i++) {
        if (i == el.who)
            continue;
        event_filter f = {EV_LEADER_CHANGED, i, -1, token};
        if (!events_wait(fx.q, f, cfg.retry_interval_ms + 1000, NULL))
            fail_msg("candidate %d never reported the holder %s", i, token);
    }
}

/* Lease 2000: the leader's client freed gracefully releases the key, so a
 * successor is elected well before the TTL could have run out. */
static void test_release_hands_over_fast(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.lease_ms = 2000;
    cfg.renew_deadline_ms = 1500;
    cfg.retry_interval_ms = 1000;
    fixture_start_candidates(&cfg, "lh:election:release", 3);
    event first;
    wait_first_leader(&cfg, &first);

    char first_token[300];
    snprintf(first_token, sizeof first_token, "%s",
             leasehold_election_token(fx.cand[first.who].election));
    uint64_t t0 = test_now_ms();
    candidate_stop(&fx.cand[first.who]);
    uint64_t freed = test_now_ms();
    /* Released: the key no longer holds the freed leader's token. */
    redisReply *r = redis_server_cmd(fx.srv, "GET %s", "lh:election:release");
    assert_non_null(r);
    bool still_held = r->type == REDIS_REPLY_STRING && strcmp(r->str, first_token) == 0;
    freeReplyObject(r);
    if (still_held)
        fail_msg("leasehold_client_free returned and the key still holds its token");
    event next;
    event_filter f = {EV_ELECTED, -1, first.who, NULL};
    assert_true(events_wait(fx.q, f, cfg.lease_ms, &next));
    uint64_t took = next.at_ms - t0;
    printf("# leasehold_client_free took %llu ms; successor elected %llu ms after it began\n",
           (unsigned long long)(freed - t0), (unsigned long long)took);
    if (took >= test_ms(cfg.lease_ms / 2))
        fail_msg("successor took %llu ms; a released lease should hand over in < %u ms",
                 (unsigned long long)took, cfg.lease_ms / 2);
    assert_true(next.epoch > first.epoch);
}

/* Resign hands the lead to another candidate; over several terms epochs
 * strictly increase, every follower learns each holder's token, and a
 * resigner campaigns again (with three candidates and four terms, someone
 * leads twice). */
static void test_resign_epochs_and_recampaign(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    fixture_start_candidates(&cfg, "lh:election:resign", 3);
    event el;
    wait_first_leader(&cfg, &el);

    int terms[3] = {0};
    uint64_t last_epoch = 0;
    for (int term = 0; term < 4; term++) {
        int w = el.who;
        assert_true(el.epoch > last_epoch);
        last_epoch = el.epoch;
        terms[w]++;
        const char *token = leasehold_election_token(fx.cand[w].election);
        for (int i = 0; i < 3; i++) {
            event_filter f = {EV_LEADER_CHANGED, i, -1, token};
            if (!events_wait(fx.q, f, cfg.retry_interval_ms + 1000, NULL))
                fail_msg("term %d: candidate %d never reported the holder %s", term, i, token);
        }

        /* The successor may be elected before the resigner's revocation is
         * read back, so the clock starts before the resign. */
        uint64_t t0 = test_now_ms();
        assert_int_equal(leasehold_resign(fx.cand[w].election), 0);
        assert_false(leasehold_is_leader(fx.cand[w].election));
        event rv;
        assert_true(events_wait(fx.q, events_of(EV_REVOKED, w), 1000, &rv));
        assert_int_equal(rv.value, LEASEHOLD_RESIGNED);

        event_filter next = {EV_ELECTED, -1, -1, NULL};
        assert_true(events_wait(fx.q, next, cfg.lease_ms, &el));
        if (el.who == w)
            fail_msg("term %d: the resigner %d was elected again at once", term, w);
        if (el.at_ms - t0 >= test_ms(cfg.lease_ms / 2))
            fail_msg("term %d: successor after resign took %llu ms", term,
                     (unsigned long long)(el.at_ms - t0));
    }
    assert_true(el.epoch > last_epoch);
    terms[el.who]++;
    int most = 0;
    for (int i = 0; i < 3; i++)
        most = terms[i] > most ? terms[i] : most;
    assert_true(most >= 2);
}

/* The key overwritten by someone else: the leader's next renewal finds a
 * foreign token and the term ends at once with LEASEHOLD_LOST, long before
 * the renew deadline. */
static void test_overwritten_key_is_lost(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.lease_ms = 2000;
    cfg.renew_deadline_ms = 1500;
    fixture_start_candidates(&cfg, "lh:election:overwrite", 1);
    event el;
    wait_first_leader(&cfg, &el);

    uint64_t t0 = test_now_ms();
    redisReply *r =
        redis_server_cmd(fx.srv, "SET %s %s PX %d", "lh:election:overwrite", "intruder/1", 10000);
    assert_non_null(r);
    freeReplyObject(r);
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), cfg.renew_deadline_ms, &rv));
    assert_int_equal(rv.value, LEASEHOLD_LOST);
    assert_false(leasehold_is_leader(fx.cand[0].election));
    uint64_t took = rv.at_ms - t0;
    if (took >= test_ms(cfg.renew_interval_ms + 300))
        fail_msg("revoked %llu ms after the overwrite; the next renewal (every %u ms) should "
                 "have seen it",
                 (unsigned long long)took, cfg.renew_interval_ms);
    event_filter f = {EV_LEADER_CHANGED, 0, -1, "intruder/1"};
    assert_true(events_wait(fx.q, f, cfg.retry_interval_ms + 1000, NULL));
}

/* The key deleted under the leader: the next renewal finds it missing and
 * the term ends with LEASEHOLD_EXPIRED. */
static void test_deleted_key_is_expired(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.lease_ms = 2000;
    cfg.renew_deadline_ms = 1500;
    fixture_start_candidates(&cfg, "lh:election:delete", 1);
    event el;
    wait_first_leader(&cfg, &el);

    uint64_t t0 = test_now_ms();
    redisReply *r = redis_server_cmd(fx.srv, "DEL %s", "lh:election:delete");
    assert_non_null(r);
    freeReplyObject(r);
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), cfg.renew_deadline_ms, &rv));
    assert_int_equal(rv.value, LEASEHOLD_EXPIRED);
    uint64_t took = rv.at_ms - t0;
    if (took >= test_ms(cfg.renew_interval_ms + 300))
        fail_msg("revoked %llu ms after DEL; expected at the next renewal",
                 (unsigned long long)took);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_one_leader_among_five),        FIXTURE_TEST(test_release_hands_over_fast),
        FIXTURE_TEST(test_resign_epochs_and_recampaign), FIXTURE_TEST(test_overwritten_key_is_lost),
        FIXTURE_TEST(test_deleted_key_is_expired),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
