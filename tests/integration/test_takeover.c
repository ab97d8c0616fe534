/* test_takeover.c — fast takeover (issue 4) against a real redis-server: a
 * release wakes a follower at once, a crashed leader is replaced as soon as
 * its lease can have lapsed and not sooner, the events subscription comes
 * back after CLIENT KILL and a Redis restart, leader_changed follows the
 * epochs, leasehold_holder_get reads the key, and followers cause no
 * thundering herd.
 *
 * These tests check behaviour, not speed: every upper bound has a wide
 * margin and is scaled by LEASEHOLD_TEST_TIMEOUT_MULTIPLIER; the measured
 * times are printed.  Each test starts its own redis-server.  Candidates that
 * must be killed run in child processes (fixture_start_children). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

#define OBSERVER    FIXTURE_MAX_CANDIDATES /* the sink index of the observer (test 4) */
#define MAX_WHO     (FIXTURE_MAX_CANDIDATES + 1)
#define HISTORY_MAX 128

/* A release must wake a follower well under this (test 1 and 3). */
#define WAKE_BOUND_MS 1000u

/* The events, in order, one participant reported. */
typedef struct history {
    event ev[HISTORY_MAX];
    int n;
    bool overflow;
} history;

/* What the tests keep besides the fixture. */
typedef struct takeover_state {
    leasehold_client *extra; /* a client that does not campaign: observer or reader */
    leasehold_election *watch;
    event_sink extra_sink;
    history changes[MAX_WHO]; /* leader_changed, per participant */
    history observed;         /* the observer's `observed` callbacks (EV_NOTE) */
} takeover_state;

static takeover_state tk;

/* A Redis of each test's own, so that every first election is on a fresh
 * server. */
static int setup(void **state)
{
    memset(&tk, 0, sizeof tk);
    return fixture_setup_redis(state);
}

static int teardown(void **state)
{
    if (tk.extra)
        leasehold_client_free(tk.extra);
    memset(&tk, 0, sizeof tk);
    return fixture_teardown_redis(state);
}

/* test_config with the lease and retry interval a test is about. */
static void takeover_config(leasehold_config *cfg, uint32_t lease_ms, uint32_t retry_ms)
{
    test_config(cfg, fx.srv->url);
    cfg->lease_ms = lease_ms;
    cfg->retry_interval_ms = retry_ms;
}

/* True for a participant that still runs: a candidate, a child or the
 * observer. */
static bool participant(int who)
{
    if (who == OBSERVER)
        return tk.watch != NULL;
    if (who < FIXTURE_MAX_CHILDREN && fx.child[who])
        return true;
    return who < fx.n && fx.cand[who].client != NULL;
}

static void history_add(history *h, const event *ev)
{
    if (h->n < HISTORY_MAX)
        h->ev[h->n++] = *ev;
    else
        h->overflow = true;
}

/* Moves every queued leader_changed (and observed) event into the
 * participants' histories, in order. */
static void collect(void)
{
    event ev;
    while (events_wait(fx.q, events_of(EV_LEADER_CHANGED, -1), 0, &ev))
        if (ev.who >= 0 && ev.who < MAX_WHO)
            history_add(&tk.changes[ev.who], &ev);
    while (events_wait(fx.q, events_of(EV_NOTE, OBSERVER), 0, &ev))
        history_add(&tk.observed, &ev);
}

static bool has_reported(int who, uint64_t epoch)
{
    const history *h = &tk.changes[who];
    for (int i = 0; i < h->n; i++)
        if (h->ev[i].epoch == epoch)
            return true;
    return false;
}

/* wait_until predicate: every participant has reported the holder of the
 * term `*(uint64_t *)arg` through leader_changed. */
static bool all_report(void *arg)
{
    uint64_t epoch = *(const uint64_t *)arg;
    collect();
    for (int i = 0; i < MAX_WHO; i++)
        if (participant(i) && !has_reported(i, epoch))
            return false;
    return true;
}

/* Waits until every participant knows the term `epoch`: a follower can only
 * be woken by the release of the holder it knows. */
static void wait_all_report(uint64_t epoch, uint64_t max_ms)
{
    if (!wait_until(all_report, &epoch, max_ms)) {
        for (int i = 0; i < MAX_WHO; i++)
            if (participant(i) && !has_reported(i, epoch))
                fail_msg("participant %d never reported the holder of epoch %llu", i,
                         (unsigned long long)epoch);
    }
}

/* The subscribers of a channel (PUBSUB NUMSUB), or -1. */
static long long numsub(const char *channel)
{
    redisReply *r = redis_server_cmd(fx.srv, "PUBSUB NUMSUB %s", channel);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        n = r->element[1]->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

typedef struct subscribers {
    const char *channel;
    long long n;
} subscribers;

static bool subscribed(void *arg)
{
    const subscribers *s = arg;
    return numsub(s->channel) == s->n;
}

/* Waits until n clients subscribe to channel. */
static void wait_subscribed(const char *channel, long long n, uint64_t max_ms)
{
    subscribers s = {channel, n};
    if (!wait_until(subscribed, &s, max_ms))
        fail_msg("%s has %lld subscribers, expected %lld", channel, numsub(channel), n);
}

/* Ends the term of candidate w (leasehold_resign, or leasehold_client_free
 * when `by_free`) and returns the successor's election; fails unless it came
 * within WAKE_BOUND_MS, far below the retry interval. */
static event hand_over(int w, bool by_free, const leasehold_config *cfg, const char *what)
{
    uint64_t t0 = test_now_ms();
    if (by_free)
        candidate_stop(&fx.cand[w]);
    else
        assert_int_equal(leasehold_resign(fx.cand[w].election), 0);
    event next;
    event_filter f = {EV_ELECTED, -1, w, NULL};
    if (!events_wait(fx.q, f, cfg->retry_interval_ms, &next))
        fail_msg("%s: no successor within the retry interval (%u ms)", what,
                 cfg->retry_interval_ms);
    uint64_t took = next.at_ms - t0;
    printf("# %s: successor elected %llu ms after the %s (retry interval %u ms)\n", what,
           (unsigned long long)took, by_free ? "free" : "resign", cfg->retry_interval_ms);
    if (took >= test_ms(WAKE_BOUND_MS))
        fail_msg("%s: successor took %llu ms; a release should wake a follower in < %llu ms", what,
                 (unsigned long long)took, (unsigned long long)test_ms(WAKE_BOUND_MS));
    return next;
}

/* The commands leasehold's scripts run inside Redis: INFO commandstats
 * counts them as well as the EVALSHA that ran them, but they cost no round
 * trip and are not what a client sends. */
static bool run_by_scripts(const char *name, size_t len)
{
    static const char *const inner[] = {"get", "set", "del", "pttl", "pexpire", "time", "publish"};
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++)
        if (strlen(inner[i]) == len && memcmp(inner[i], name, len) == 0)
            return true;
    return false;
}

typedef struct command_counts {
    long long sent;   /* commands clients sent (not those run by scripts) */
    long long claims; /* EVALSHA and EVAL: claims, renewals, releases */
} command_counts;

/* Counts from one `INFO commandstats` (which the next one counts too). */
static command_counts count_commands(void)
{
    redisReply *r = redis_server_cmd(fx.srv, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    command_counts c = {0, 0};
    const char *prefix = "cmdstat_";
    for (const char *p = strstr(r->str, prefix); p; p = strstr(p + 1, prefix)) {
        const char *name = p + strlen(prefix);
        const char *colon = strchr(name, ':');
        if (!colon || strncmp(colon, ":calls=", 7) != 0)
            continue;
        size_t len = (size_t)(colon - name);
        long long calls = atoll(colon + 7);
        if (!run_by_scripts(name, len))
            c.sent += calls;
        if ((len == 7 && memcmp(name, "evalsha", 7) == 0) ||
            (len == 4 && memcmp(name, "eval", 4) == 0))
            c.claims += calls;
    }
    freeReplyObject(r);
    return c;
}

/* -------------------------------------------------------------- tests */

/* Lease 2000, retry 5000: a resign and then a leasehold_client_free each
 * hand over in far less than the retry interval, which only the `released`
 * event can explain. */
static void test_release_wakes_follower(void **state)
{
    (void)state;
    const char *key = "lh:takeover:release";
    leasehold_config cfg;
    takeover_config(&cfg, 2000, 5000);
    fixture_start_candidates(&cfg, key, 3);
    wait_subscribed("{lh:takeover:release}:events", 3, 2000);
    event el = fixture_first_leader(&cfg, -1);
    wait_all_report(el.epoch, 1000);

    event next = hand_over(el.who, false, &cfg, "resign");
    assert_true(next.epoch > el.epoch);
    wait_all_report(next.epoch, 1000);

    event last = hand_over(next.who, true, &cfg, "free");
    assert_true(last.epoch > next.epoch);
}

/*
 * A leader SIGKILLed: lease 2000, retry 1000.  The successor is elected
 * before lease + retry after the kill, but never while the dead leader's key
 * can still be valid: not before the PTTL Redis reported right after the
 * kill has run out, and so not before lease - renew_interval (its last
 * renewal was at most one interval before the kill; 100 ms of slack for the
 * loop).  Those lower bounds are safety properties and are not scaled.
 */
static void test_crashed_leader_replaced(void **state)
{
    (void)state;
    const char *key = "lh:takeover:crash";
    leasehold_config cfg;
    takeover_config(&cfg, 2000, 1000);
    fixture_start_children(&cfg, key, 3);
    event el = fixture_first_leader(&cfg, -1);
    wait_all_report(el.epoch, cfg.retry_interval_ms + 1000);

    uint64_t t_kill = test_now_ms();
    events_child_stop(fx.child[el.who]);
    fx.child[el.who] = NULL;
    uint64_t t_pttl = test_now_ms();
    redisReply *r = redis_server_cmd(fx.srv, "PTTL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long pttl = r->integer;
    freeReplyObject(r);
    if (pttl <= 0)
        fail_msg("the killed leader's key had PTTL %lld right after the kill", pttl);

    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    if (!events_wait(fx.q, f, cfg.lease_ms + cfg.retry_interval_ms + 2000, &next))
        fail_msg("no successor of the killed leader");
    uint64_t took = next.at_ms - t_kill;
    printf("# crashed leader: successor elected %llu ms after SIGKILL (key PTTL %lld ms %llu ms "
           "after it; lease %u, retry %u)\n",
           (unsigned long long)took, pttl, (unsigned long long)(t_pttl - t_kill), cfg.lease_ms,
           cfg.retry_interval_ms);
    assert_true(next.epoch > el.epoch);
    if (took >= test_ms(cfg.lease_ms + cfg.retry_interval_ms))
        fail_msg("successor took %llu ms, not less than lease + retry (%u ms)",
                 (unsigned long long)took, cfg.lease_ms + cfg.retry_interval_ms);
    if (next.at_ms + 2 < t_pttl + (uint64_t)pttl)
        fail_msg("successor elected %llu ms after the kill while the dead leader's key was "
                 "valid until %llu ms",
                 (unsigned long long)took, (unsigned long long)(t_pttl + pttl - t_kill));
    if (took < cfg.lease_ms - cfg.renew_interval_ms - 100)
        fail_msg("successor elected %llu ms after the kill, before lease - renew interval "
                 "(%u ms)",
                 (unsigned long long)took, cfg.lease_ms - cfg.renew_interval_ms);
}

/* The subscription connections killed (CLIENT KILL TYPE pubsub), and
 * separately Redis restarted empty: each time every client subscribes again
 * and a release again wakes a follower at once. */
static void test_subscriptions_come_back(void **state)
{
    (void)state;
    const char *key = "lh:takeover:resubscribe";
    const char *channel = "{lh:takeover:resubscribe}:events";
    leasehold_config cfg;
    takeover_config(&cfg, 2000, 5000);
    fixture_start_candidates(&cfg, key, 3);
    wait_subscribed(channel, 3, 2000);
    event el = fixture_first_leader(&cfg, -1);
    wait_all_report(el.epoch, 1000);

    redisReply *r = redis_server_cmd(fx.srv, "CLIENT KILL TYPE pubsub");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 3);
    freeReplyObject(r);
    uint64_t t_kill = test_now_ms();
    wait_subscribed(channel, 3, 3000);
    printf("# CLIENT KILL TYPE pubsub: all subscribed again after %llu ms\n",
           (unsigned long long)(test_now_ms() - t_kill));
    event next = hand_over(el.who, false, &cfg, "after CLIENT KILL");
    assert_true(next.epoch > el.epoch);
    wait_all_report(next.epoch, 1000);

    uint64_t t_restart = test_now_ms();
    assert_int_equal(redis_server_restart(fx.srv, false), 0);
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, next.who), 1000, &rv));
    assert_int_equal(rv.value, LEASEHOLD_DISCONNECTED);
    event again;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, -1),
                            TEST_FRESH_REDIS_MS + cfg.lease_ms + cfg.retry_interval_ms + 1000,
                            &again));
    assert_true(again.epoch > next.epoch);
    wait_subscribed(channel, 3, 3000);
    wait_all_report(again.epoch, cfg.retry_interval_ms + 1000);
    printf("# Redis restarted: new leader after %llu ms, all subscribed and informed after "
           "%llu ms\n",
           (unsigned long long)(again.at_ms - t_restart),
           (unsigned long long)(test_now_ms() - t_restart));
    event last = hand_over(again.who, false, &cfg, "after a Redis restart");
    assert_true(last.epoch > again.epoch);
}

/* observed callback of the observer: EV_NOTE with value = the change, text
 * = the token, epoch = the epoch. */
static void note_observed(leasehold_election *e, const leasehold_observation *o, void *arg)
{
    (void)e;
    event ev = {.kind = EV_NOTE, .value = o->change, .epoch = o->epoch, .has_text = true};
    snprintf(ev.text, sizeof ev.text, "%s", o->token);
    events_emit(arg, &ev);
}

/* Prints a history, for a failure's diagnosis. */
static void print_history(const char *what, int who, const history *h)
{
    for (int i = 0; i < h->n; i++)
        printf("# %s of %d, #%d at %llu: value %lld, holder \"%s\", epoch %llu\n", what, who, i,
               (unsigned long long)h->ev[i].at_ms, h->ev[i].value, h->ev[i].text,
               (unsigned long long)h->ev[i].epoch);
}

/* Fails unless the non-zero epochs of participant who's leader_changed
 * strictly increase. */
static void check_changes_increase(int who)
{
    const history *h = &tk.changes[who];
    assert_false(h->overflow);
    uint64_t last = 0;
    for (int i = 0; i < h->n; i++) {
        uint64_t epoch = h->ev[i].epoch;
        if (epoch == 0)
            continue;
        if (epoch <= last) {
            print_history("leader_changed", who, h);
            fail_msg("participant %d: leader_changed #%d (holder %s) has epoch %llu after %llu",
                     who, i, h->ev[i].text, (unsigned long long)epoch, (unsigned long long)last);
        }
        last = epoch;
    }
}

typedef struct term {
    uint64_t epoch;
    char token[300];
} term;

/* Fails unless the observer saw term t begin (ELECTED) and end (RELEASED)
 * with its token and epoch. */
static void check_observed_term(const term *t, bool ended)
{
    bool began = false, released = false;
    for (int i = 0; i < tk.observed.n; i++) {
        const event *o = &tk.observed.ev[i];
        bool same = o->epoch == t->epoch && strcmp(o->text, t->token) == 0;
        began |= same && o->value == LEASEHOLD_CHANGE_ELECTED;
        released |= same && o->value == LEASEHOLD_CHANGE_RELEASED;
    }
    if (!began || (ended && !released))
        print_history("observed", OBSERVER, &tk.observed);
    if (!began)
        fail_msg("the observer never saw term %llu (%s) elected", (unsigned long long)t->epoch,
                 t->token);
    if (ended && !released)
        fail_msg("the observer never saw term %llu (%s) released", (unsigned long long)t->epoch,
                 t->token);
}

/* True once the observer's observed callback has reported term t's start
 * (it comes after leader_changed, which wait_all_report waited for). */
static bool observed_elected(void *arg)
{
    const term *t = arg;
    collect();
    for (int i = 0; i < tk.observed.n; i++) {
        const event *o = &tk.observed.ev[i];
        if (o->value == LEASEHOLD_CHANGE_ELECTED && o->epoch == t->epoch &&
            strcmp(o->text, t->token) == 0)
            return true;
    }
    return false;
}

/*
 * Five terms, ended by resigns, among three candidates and one observer
 * (leasehold_observe, its own client): every candidate's leader_changed
 * epochs strictly increase; the observer's ELECTED epochs strictly
 * increase, and each RELEASED names the token and epoch of the term that
 * ended (the last ELECTED before it).
 */
static void test_changes_follow_epochs(void **state)
{
    (void)state;
    const char *key = "lh:takeover:order";
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);

    tk.extra_sink = (event_sink){fx.q, -1, OBSERVER};
    leasehold_config ocfg = cfg;
    ocfg.log = events_log;
    ocfg.log_arg = &tk.extra_sink;
    leasehold_error err;
    tk.extra = leasehold_client_new(&ocfg, &err);
    if (!tk.extra)
        fail_msg("leasehold_client_new: %s", err.msg);
    leasehold_callbacks cb = events_callbacks;
    cb.observed = note_observed;
    tk.watch = leasehold_observe(tk.extra, key, &cb, &tk.extra_sink, &err);
    if (!tk.watch)
        fail_msg("leasehold_observe: %s", err.msg);
    fixture_start_candidates(&cfg, key, 3);
    wait_subscribed("{lh:takeover:order}:events", 4, 2000);

    enum { TERMS = 5 };
    term terms[TERMS];
    event el = fixture_first_leader(&cfg, -1);
    for (int k = 0; k < TERMS; k++) {
        terms[k].epoch = el.epoch;
        snprintf(terms[k].token, sizeof terms[k].token, "%s",
                 leasehold_election_token(fx.cand[el.who].election));
        wait_all_report(el.epoch, cfg.retry_interval_ms + 1000);
        if (k == TERMS - 1)
            break;
        assert_int_equal(leasehold_resign(fx.cand[el.who].election), 0);
        event_filter f = {EV_ELECTED, -1, el.who, NULL};
        event next;
        if (!events_wait(fx.q, f, cfg.lease_ms, &next))
            fail_msg("term %d: no successor after the resign", k);
        assert_true(next.epoch > el.epoch);
        el = next;
    }
    /* The observer's observed callback runs just after its leader_changed. */
    wait_until(observed_elected, &terms[TERMS - 1], 2000);
    collect();

    for (int i = 0; i < 3; i++)
        check_changes_increase(i);
    check_changes_increase(OBSERVER);

    assert_false(tk.observed.overflow);
    uint64_t last_elected = 0;
    const event *current = NULL;
    for (int i = 0; i < tk.observed.n; i++) {
        const event *o = &tk.observed.ev[i];
        if (o->value == LEASEHOLD_CHANGE_ELECTED) {
            if (o->epoch <= last_elected) {
                print_history("observed", OBSERVER, &tk.observed);
                fail_msg("observed #%d: ELECTED epoch %llu after %llu", i,
                         (unsigned long long)o->epoch, (unsigned long long)last_elected);
            }
            last_elected = o->epoch;
            current = o;
        } else if (o->value == LEASEHOLD_CHANGE_RELEASED) {
            if (!current || o->epoch != current->epoch || strcmp(o->text, current->text) != 0) {
                print_history("observed", OBSERVER, &tk.observed);
                fail_msg("observed #%d: RELEASED %s epoch %llu, but the term that ended is %s "
                         "epoch %llu",
                         i, o->text, (unsigned long long)o->epoch, current ? current->text : "none",
                         (unsigned long long)(current ? current->epoch : 0));
            }
            current = NULL;
        }
    }
    for (int k = 0; k < TERMS; k++)
        check_observed_term(&terms[k], k < TERMS - 1);
    printf("# %d terms: the observer saw %d changes, candidates %d/%d/%d\n", TERMS, tk.observed.n,
           tk.changes[0].n, tk.changes[1].n, tk.changes[2].n);
}

/* leader_changed of the probe candidate: calls leasehold_holder_get on its
 * own client, which must refuse at once (EV_NOTE value = the code). */
static void probe_leader_changed(leasehold_election *e, const char *holder, uint64_t epoch,
                                 void *arg)
{
    events_callbacks.leader_changed(e, holder, epoch, arg);
    leasehold_holder h;
    leasehold_error err = {0};
    int rc = leasehold_holder_get(fx.cand[0].client, leasehold_key(e), &h, &err);
    event ev = {.kind = EV_NOTE, .value = rc, .has_text = true};
    snprintf(ev.text, sizeof ev.text, "%s", err.msg);
    events_emit(arg, &ev);
}

/* leasehold_holder_get: the holder's token, epoch and TTL; nobody once the
 * key is released; WRONGTYPE naming a key that holds a hash; EDEADLK from a
 * callback. */
static void test_holder_get(void **state)
{
    (void)state;
    const char *key = "lh:takeover:holder";
    leasehold_config cfg;
    takeover_config(&cfg, 2000, 300);
    leasehold_error err;
    tk.extra = leasehold_client_new(&cfg, &err);
    if (!tk.extra)
        fail_msg("leasehold_client_new: %s", err.msg);

    candidate *cd = &fx.cand[0];
    cd->sink = (event_sink){fx.q, -1, 0};
    leasehold_config ccfg = cfg;
    ccfg.log = events_log;
    ccfg.log_arg = &cd->sink;
    cd->client = leasehold_client_new(&ccfg, &err);
    if (!cd->client)
        fail_msg("leasehold_client_new: %s", err.msg);
    fx.n = 1;
    leasehold_callbacks cb = events_callbacks;
    cb.leader_changed = probe_leader_changed;
    cd->election = leasehold_campaign(cd->client, key, &cb, &cd->sink, &err);
    if (!cd->election)
        fail_msg("leasehold_campaign: %s", err.msg);

    event el, probe;
    el = fixture_first_leader(&cfg, 0);
    assert_true(events_wait(fx.q, events_of(EV_NOTE, 0), 1000, &probe));
    if (probe.value != LEASEHOLD_EDEADLK)
        fail_msg("leasehold_holder_get from a callback returned %s (%s), expected "
                 "LEASEHOLD_EDEADLK",
                 leasehold_errname((int)probe.value), probe.text);

    leasehold_holder h;
    assert_int_equal(leasehold_holder_get(tk.extra, key, &h, &err), 0);
    assert_string_equal(h.token, leasehold_election_token(cd->election));
    assert_int_equal(h.epoch, el.epoch);
    if (h.ttl_ms <= 0 || h.ttl_ms > (int64_t)cfg.lease_ms)
        fail_msg("holder TTL %lld ms, expected within (0, %u]", (long long)h.ttl_ms, cfg.lease_ms);
    printf("# holder %s, epoch %llu, ttl %lld ms\n", h.token, (unsigned long long)h.epoch,
           (long long)h.ttl_ms);

    candidate_stop(cd); /* releases the key */
    assert_int_equal(leasehold_holder_get(tk.extra, key, &h, &err), 0);
    assert_string_equal(h.token, "");
    assert_int_equal(h.ttl_ms, 0);
    assert_int_equal(h.epoch, el.epoch);

    assert_int_equal(leasehold_holder_get(tk.extra, "lh:takeover:never", &h, &err), 0);
    assert_string_equal(h.token, "");
    assert_int_equal(h.ttl_ms, 0);
    assert_int_equal(h.epoch, 0);

    redisReply *r = redis_server_cmd(fx.srv, "HSET %s %s %s", "lh:takeover:hash", "f", "v");
    assert_non_null(r);
    freeReplyObject(r);
    int rc = leasehold_holder_get(tk.extra, "lh:takeover:hash", &h, &err);
    if (rc != LEASEHOLD_EWRONGTYPE)
        fail_msg("holder_get on a hash returned %s (%s), expected LEASEHOLD_EWRONGTYPE",
                 leasehold_errname(rc), err.msg);
    assert_int_equal(err.code, LEASEHOLD_EWRONGTYPE);
    if (!strstr(err.msg, "lh:takeover:hash"))
        fail_msg("the WRONGTYPE message does not name the key: %s", err.msg);
    printf("# on a hash: %s\n", err.msg);
}

/*
 * Fifty idle followers and one leader (lease 2000, renew 300, retry 1000, the
 * defaults): over 5 s, the followers send Redis at most 1.2 commands per
 * second each (commands clients send, after taking off the leader's
 * renewals; not those the scripts run inside Redis).  Then a resign makes
 * each follower claim at most once: the EVALSHA/EVAL count of the handover,
 * from before the resign until every follower knows the successor, is at
 * most 50 claims and the release, plus the renewals and regular claims that
 * fit in that short window.
 */
static void test_no_thundering_herd(void **state)
{
    (void)state;
    const char *key = "lh:takeover:herd";
    enum { FOLLOWERS = 50 };
    leasehold_config cfg;
    leasehold_config_init(&cfg);
    cfg.url = fx.srv->url;
    fixture_start_candidates(&cfg, key, FOLLOWERS + 1);
    wait_subscribed("{lh:takeover:herd}:events", FOLLOWERS + 1, 3000);
    event el = fixture_first_leader(&cfg, -1);
    wait_all_report(el.epoch, cfg.retry_interval_ms + 1000);

    /* The measurement window is the test's own pacing, not a wait. */
    const uint64_t window_ms = 5000;
    command_counts c0 = count_commands();
    uint64_t t0 = test_now_ms();
    test_sleep_ms(window_ms);
    command_counts c1 = count_commands();
    double secs = (double)(test_now_ms() - t0) / 1000.0;
    assert_int_equal(events_count(fx.q, events_of(EV_REVOKED, -1)), 0);
    long long total = c1.sent - c0.sent - 1; /* our first INFO */
    long long leader = (long long)(secs * 1000.0) / cfg.renew_interval_ms + 2;
    double per_follower = (double)(total - leader) / FOLLOWERS / secs;
    printf("# idle: %lld commands in %.2f s (%lld EVALSHA/EVAL), leader's renewals <= %lld: "
           "%.2f commands/s per follower\n",
           total, secs, c1.claims - c0.claims, leader, per_follower);
    if (per_follower > 1.2)
        fail_msg("an idle follower costs %.2f commands/s, more than 1.2", per_follower);

    command_counts h0 = count_commands();
    uint64_t t_resign = test_now_ms();
    assert_int_equal(leasehold_resign(fx.cand[el.who].election), 0);
    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    assert_true(events_wait(fx.q, f, WAKE_BOUND_MS, &next));
    wait_all_report(next.epoch, 1000);
    command_counts h1 = count_commands();
    uint64_t took_ms = test_now_ms() - t_resign;
    long long claims = h1.claims - h0.claims;
    /* One claim per follower and the release; besides those, two for
     * renewals the resigning term may have sent, the new leader's renewals
     * and the followers' regular claims that fall in the window, or that
     * came due in the half second before it while a busy machine (a
     * sanitizer build, parallel tests) had not yet run their threads. */
    long long bound = FOLLOWERS + 1 + 2 + ((long long)took_ms / cfg.renew_interval_ms + 1) +
                      (((long long)took_ms + 500) * FOLLOWERS / cfg.retry_interval_ms + 1);
    printf("# handover: %lld EVALSHA/EVAL in %llu ms (successor after %llu ms), bound %lld\n",
           claims, (unsigned long long)took_ms, (unsigned long long)(next.at_ms - t_resign), bound);
    if (claims > bound)
        fail_msg("the handover cost %lld scripts; at most %lld (one claim per follower, the "
                 "release, renewals)",
                 claims, bound);
}

/* One `INFO commandstats`: the calls of each command in names (lower case),
 * into calls. */
static void commandstats(const char *const *names, long long *calls, size_t n)
{
    redisReply *r = redis_server_cmd(fx.srv, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    for (size_t i = 0; i < n; i++) {
        char field[64];
        snprintf(field, sizeof field, "cmdstat_%s:calls=", names[i]);
        const char *p = strstr(r->str, field);
        calls[i] = p ? atoll(p + strlen(field)) : 0;
    }
    freeReplyObject(r);
}

/* The claims made so far (EVALSHA), for wait_until. */
static bool claims_made(void *arg)
{
    static const char *const names[] = {"evalsha"};
    long long calls;
    commandstats(names, &calls, 1);
    return calls >= *(long long *)arg;
}

/*
 * What a failed claim costs inside Redis: a follower that already knows the
 * holder runs GET and PTTL of the key and nothing else (Redis counts the
 * commands a script runs in commandstats).  The key is held by a token set
 * by hand, so no leader's renewals are counted.  The follower names the
 * holder only while its events channel is live, and learns the epoch anew
 * once it is: the count starts a few claims after the subscription.
 */
static void test_failed_claim_cost(void **state)
{
    (void)state;
    const char *key = "lh:takeover:cost";
    const char *holder = "elsewhere:1/0123456789abcdef";
    redisReply *r = redis_server_cmd(fx.srv, "SET {%s}:epoch 42", key);
    assert_non_null(r);
    freeReplyObject(r);
    r = redis_server_cmd(fx.srv, "SET %s %s PX 60000", key, holder);
    assert_non_null(r);
    freeReplyObject(r);
    leasehold_config cfg;
    takeover_config(&cfg, 1000, 50);
    fixture_start_candidates(&cfg, key, 1);
    event ev;
    assert_true(events_wait(fx.q, (event_filter){EV_LEADER_CHANGED, 0, -1, holder}, 5000, &ev));
    assert_int_equal(ev.epoch, 42);

    char channel[64];
    snprintf(channel, sizeof channel, "{%s}:events", key);
    wait_subscribed(channel, 1, 2000);
    r = redis_server_cmd(fx.srv, "CONFIG RESETSTAT");
    assert_non_null(r);
    freeReplyObject(r);
    long long want = 3;
    assert_true(wait_until(claims_made, &want, 10000));
    r = redis_server_cmd(fx.srv, "CONFIG RESETSTAT");
    assert_non_null(r);
    freeReplyObject(r);
    want = 20;
    assert_true(wait_until(claims_made, &want, 10000));
    static const char *const names[] = {"evalsha", "eval", "get",     "pttl",
                                        "time",    "set",  "publish", "pexpire"};
    long long calls[8];
    commandstats(names, calls, 8);
    printf("# %lld claims of a known holder's key: %lld GET, %lld PTTL, %lld TIME, %lld SET\n",
           calls[0] + calls[1], calls[2], calls[3], calls[4], calls[5]);
    assert_int_equal(calls[1], 0);        /* the script was loaded before */
    assert_int_equal(calls[2], calls[0]); /* one GET per claim */
    assert_int_equal(calls[3], calls[0]); /* one PTTL per claim */
    for (int i = 4; i < 8; i++)
        assert_int_equal(calls[i], 0);
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);
}

int main(int argc, char **argv)
{
    fixture_run_child(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_release_wakes_follower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crashed_leader_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_come_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_follow_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holder_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_thundering_herd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_claim_cost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
