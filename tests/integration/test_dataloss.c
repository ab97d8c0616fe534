/* test_dataloss.c — a Redis that loses data under a live lease, with every
 * connection kept open (FLUSHALL stands for a restart behind a proxy that
 * keeps client connections, or an eviction): the quarantine holds every claim
 * for one lease, epochs still grow past the highest one seen, and an
 * eviction policy that could drop the key is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* The test timings without the restart guard: only the quarantine holds. */
static void config(leasehold_config *cfg)
{
    test_config(cfg, fx.srv->url);
    cfg->restart_guard = false;
}

static void redis_ok(const char *fmt, const char *a, const char *b)
{
    redisReply *r = redis_server_cmd(fx.srv, fmt, a, b);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A key never used: the first claim finds no epoch key and quarantines it,
 * so nobody is elected for a lease; a key whose epoch key exists is claimed
 * at once.  The lower bound is a safety property and is not scaled. */
static void test_unused_key_waits_a_lease(void **state)
{
    (void)state;
    leasehold_config cfg;
    config(&cfg);
    uint64_t t0 = test_now_ms();
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:loss:new", fx.q, 0), 0);
    event el;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms * 3), &el));
    printf("# first election on an unused key after %llu ms\n",
           (unsigned long long)(el.at_ms - t0));
    assert_true(el.at_ms - t0 >= cfg.lease_ms - 20);
    candidate_stop(&fx.cand[0]);

    redis_ok("SET %s %s", "{lh:loss:known}:epoch", "5");
    events_clear(fx.q);
    t0 = test_now_ms();
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:loss:known", fx.q, 0), 0);
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms), &el));
    assert_true(el.at_ms - t0 < cfg.lease_ms - 100);
    assert_true(el.epoch > 5);
}

/* On a Redis that has just started, with the restart guard on, a key never
 * used is held by both the guard and the quarantine; the quarantine check
 * runs as the connection is made, so the two holds overlap: the first leader
 * is elected about one lease after the start, not two. */
static void test_holds_overlap(void **state)
{
    (void)state;
    redis_server *fresh = redis_server_start(NULL);
    assert_non_null(fresh);
    leasehold_config cfg;
    test_config(&cfg, fresh->url);
    cfg.lease_ms = 2000;
    cfg.renew_deadline_ms = 1500;
    uint64_t t0 = test_now_ms();
    int rc = candidate_start(&fx.cand[0], &cfg, "lh:loss:overlap", fx.q, 0);
    event el;
    bool elected = rc == 0 && events_wait(fx.q, events_of(EV_ELECTED, 0), 3 * cfg.lease_ms, &el);
    candidate_stop(&fx.cand[0]);
    redis_server_stop(fresh);
    assert_true(elected);
    printf("# first election on a fresh Redis and an unused key after %llu ms\n",
           (unsigned long long)(el.at_ms - t0));
    assert_true(el.at_ms - t0 >= cfg.lease_ms - 20 - 1000); /* uptime may read 1 s high */
    /* Not scaled: both holds run on real time whatever the build, and two
     * leases in a row would take 4000 ms. */
    assert_true(el.at_ms - t0 < cfg.lease_ms + cfg.lease_ms / 2 + 250);
}

/* Redis loses its data while A leads and every connection stays open: A's
 * next renewal finds the key gone and ends its term at once, and B, which
 * would otherwise claim the moment it looks, is held by the quarantine for a
 * lease from the loss, so it cannot overlap whatever A was still doing. */
static void test_flush_quarantines(void **state)
{
    (void)state;
    leasehold_config cfg;
    config(&cfg);
    const char *key = "lh:loss:flush";
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, key, fx.q, 0), 0);
    event a;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms * 3), &a));
    assert_int_equal(candidate_start(&fx.cand[1], &cfg, key, fx.q, 1), 0);
    event seen; /* B has read the key: it knows A's epoch */
    assert_true(events_wait(fx.q, events_of(EV_LEADER_CHANGED, 1), test_ms(2000), &seen));

    uint64_t t_flush = test_now_ms();
    redisReply *r = redis_server_cmd(fx.srv, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), test_ms(cfg.lease_ms), &rv));
    assert_true(rv.value == LEASEHOLD_EXPIRED || rv.value == LEASEHOLD_LOST);
    event b;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, -1), test_ms(cfg.lease_ms * 4), &b));
    printf("# after the flush: revoked after %llu ms, next leader (%d) after %llu ms\n",
           (unsigned long long)(rv.at_ms - t_flush), b.who,
           (unsigned long long)(b.at_ms - t_flush));
    assert_true(b.at_ms - t_flush >= cfg.lease_ms - 20);
    assert_true(b.epoch > a.epoch);
}

/* Epochs grow past the highest one a candidate has seen, even when Redis lost
 * the epoch key and its clock is behind that epoch (here: an epoch far in
 * Redis's future, as one handed out before its clock stepped back). */
static void test_epoch_floor(void **state)
{
    (void)state;
    leasehold_config cfg;
    config(&cfg);
    const char *key = "lh:loss:floor";
    const char *future = "4000000000000000"; /* 2096, in microseconds */
    redis_ok("SET %s %s", "{lh:loss:floor}:epoch", future);
    redisReply *r = redis_server_cmd(fx.srv, "SET %s %s PX 1500", key, "other/1");
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, key, fx.q, 0), 0);
    event seen;
    assert_true(events_wait(fx.q, events_of(EV_LEADER_CHANGED, 0), test_ms(2000), &seen));
    assert_int_equal(seen.epoch, 4000000000000000ull);
    r = redis_server_cmd(fx.srv, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    event el;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms * 4), &el));
    assert_true(el.epoch > 4000000000000000ull);
}

/* A Redis that may evict keys is reported to every election (once), and
 * leasehold_holder_get() names the policy. */
static void test_eviction_policy(void **state)
{
    (void)state;
    redis_ok("CONFIG SET %s %s", "maxmemory-policy", "allkeys-lru");
    leasehold_config cfg;
    config(&cfg);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:loss:evict", fx.q, 0), 0);
    event err;
    bool warned = events_wait(fx.q, events_of(EV_ERROR, 0), test_ms(2000), &err);
    leasehold_holder h;
    leasehold_error e;
    int rc = leasehold_holder_get(fx.cand[0].client, "lh:loss:evict", &h, &e);
    redis_ok("CONFIG SET %s %s", "maxmemory-policy", "noeviction");
    assert_true(warned);
    assert_int_equal(err.value, LEASEHOLD_EEVICTION);
    assert_non_null(strstr(err.text, "allkeys-lru"));
    assert_int_equal(rc, 0);
    assert_string_equal(h.maxmemory_policy, "allkeys-lru");

    /* A campaign started after the client learnt the policy is warned too. */
    redis_ok("CONFIG SET %s %s", "maxmemory-policy", "volatile-ttl");
    candidate *late = &fx.cand[1];
    late->sink = (event_sink){fx.q, -1, 1};
    leasehold_config lcfg = cfg;
    lcfg.log = events_log;
    lcfg.log_arg = &late->sink;
    late->client = leasehold_client_new(&lcfg, &e);
    assert_non_null(late->client);
    /* Its answer comes after INFO's, which every new connection asks first. */
    rc = leasehold_holder_get(late->client, "lh:loss:evict", &h, &e);
    late->election =
        leasehold_campaign(late->client, "lh:loss:evict2", &events_callbacks, &late->sink, &e);
    warned = events_wait(fx.q, events_of(EV_ERROR, 1), test_ms(2000), &err);
    redis_ok("CONFIG SET %s %s", "maxmemory-policy", "noeviction");
    assert_int_equal(rc, 0);
    assert_string_equal(h.maxmemory_policy, "volatile-ttl");
    assert_non_null(late->election);
    assert_true(warned);
    assert_int_equal(err.value, LEASEHOLD_EEVICTION);
    assert_non_null(strstr(err.text, "volatile-ttl"));
    candidate_stop(late);

    candidate_stop(&fx.cand[0]);
    events_clear(fx.q);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:loss:evict", fx.q, 0), 0);
    assert_int_equal(leasehold_holder_get(fx.cand[0].client, "lh:loss:evict", &h, &e), 0);
    assert_string_equal(h.maxmemory_policy, "noeviction");
    event el;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms * 3), &el));
    assert_int_equal(events_count(fx.q, events_of(EV_ERROR, 0)), 0);
}

/* Redis's uptime in seconds, 0 when it does not say. */
static long long uptime_s(redis_server *srv)
{
    redisReply *r = redis_server_cmd(srv, "INFO server");
    long long up = 0;
    const char *f =
        r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "uptime_in_seconds:") : NULL;
    if (f)
        up = atoll(f + strlen("uptime_in_seconds:"));
    if (r)
        freeReplyObject(r);
    return up;
}

typedef struct two_servers {
    redis_server *x, *y;
} two_servers;

/* Both have been up for 2 s, so uptime alone (counted 1 s short) would let a
 * claim with a 1000 ms lease through at once. */
static bool both_up_2s(void *arg)
{
    two_servers *t = arg;
    return uptime_s(t->x) >= 2 && uptime_s(t->y) >= 2;
}

/*
 * A reconnection that lands on another Redis instance (a name that now
 * resolves elsewhere, a promoted replica) is a restart, whatever its uptime
 * says: the run_id differs from the one the last connection met, so claims
 * wait a lease.  Here a unix socket path is switched from X to Y, both up
 * long enough; Y has the epoch key (so the quarantine does not hold) but not
 * the lease, as a replica that missed the last writes.
 */
static void test_run_id_changed(void **state)
{
    (void)state;
    redis_server_opts opts = {.unix_socket = true};
    two_servers t = {redis_server_start(&opts), redis_server_start(&opts)};
    assert_non_null(t.x);
    assert_non_null(t.y);
    char link[400], next[410], url[420];
    snprintf(link, sizeof link, "%s/lease.sock", t.x->dir);
    snprintf(next, sizeof next, "%s.new", link);
    snprintf(url, sizeof url, "unix://%s", link);
    assert_int_equal(symlink(t.x->unix_path, link), 0);
    assert_true(wait_until(both_up_2s, &t, 10000));

    const char *key = "lh:loss:runid";
    redisReply *r = redis_server_cmd(t.x, "SET %s %s PX 60000", key, "other/1");
    freeReplyObject(r);
    r = redis_server_cmd(t.x, "SET %s %s", "{lh:loss:runid}:epoch", "5");
    freeReplyObject(r);
    r = redis_server_cmd(t.y, "SET %s %s", "{lh:loss:runid}:epoch", "5");
    freeReplyObject(r);
    leasehold_config cfg;
    test_config(&cfg, url);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, key, fx.q, 0), 0);
    event seen;
    assert_true(events_wait(fx.q, events_of(EV_LEADER_CHANGED, 0), test_ms(3000), &seen));

    assert_int_equal(symlink(t.y->unix_path, next), 0);
    assert_int_equal(rename(next, link), 0);
    uint64_t t_switch = test_now_ms();
    r = redis_server_cmd(t.x, "CLIENT KILL TYPE normal");
    freeReplyObject(r);
    event el;
    bool elected = events_wait(fx.q, events_of(EV_ELECTED, 0), test_ms(cfg.lease_ms * 4), &el);
    candidate_stop(&fx.cand[0]);
    unlink(link);
    redis_server_stop(t.x);
    redis_server_stop(t.y);
    assert_true(elected);
    printf("# elected on the other instance %llu ms after the switch\n",
           (unsigned long long)(el.at_ms - t_switch));
    assert_true(el.at_ms - t_switch >= cfg.lease_ms - 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_unused_key_waits_a_lease), FIXTURE_TEST(test_holds_overlap),
        FIXTURE_TEST(test_flush_quarantines),        FIXTURE_TEST(test_epoch_floor),
        FIXTURE_TEST(test_eviction_policy),          FIXTURE_TEST(test_run_id_changed),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
