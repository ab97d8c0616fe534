/* test_sentinel.c — elections behind Redis Sentinel: one master, two
 * replicas and three Sentinels on loopback (sentinels.h), failovers of
 * every kind, and the errors of discovery.
 *
 * Candidates run in child processes that sample leasehold_is_leader()
 * every 5 ms (fixture_start_children): after each failover the samples of
 * all of them must show at most one leader at any moment.  The topology is
 * shared by the tests, in order; each starts from a synced one.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "sentinels.h"
#include "testutil.h"
#include "tool_proc.h"

static sentinels *topo;
static sentinels *tls_topo; /* test_tls's own */

/* How long a failover of any kind may take, end to end, on a busy
 * machine: Sentinel's detection (down-after 1 s) and election, the
 * promotion, then the failover guard's lease and a claim. */
#define FAILOVER_MS 20000u

static int group_setup(void **state)
{
    if (fixture_group_setup_tmpdir(state) != 0)
        return -1;
    topo = sentinels_start(NULL);
    return topo ? 0 : -1;
}

static int group_teardown(void **state)
{
    sentinels_stop(topo);
    topo = NULL;
    return fixture_group_teardown(state);
}

/* Each test starts from a master with both replicas in sync.  The last
 * test's old master is demoted at once rather than at the Sentinels' next
 * INFO, up to 10 s later: these tests time failovers, not that. */
static int setup(void **state)
{
    sentinels_demote_stale(topo);
    if (!sentinels_wait_synced(topo, 30000))
        return -1;
    return fixture_setup(state);
}

/* What each candidate said first on waking from a stop, as longest_overlap()
 * found it: -1 not seen, else leasehold_is_leader(). */
static int woke_leader[FIXTURE_MAX_CHILDREN];

/* One candidate's leadership as its samples show it: [from, to). */
typedef struct span {
    int who;
    uint64_t from, to;
} span;

/* Drains the samples in fx.q into leadership spans (still open: to = now)
 * and returns the longest overlap between two candidates' spans in ms
 * (0: never two leaders at once).  A sample is taken every 5 ms, so a
 * span's ends are each late by up to 5 ms, the same for every candidate.
 * A candidate stopped while it led (SIGSTOP) and no longer leader on
 * waking led until its last sample before the stop: frozen, it could not
 * act. */
static uint64_t longest_overlap(void)
{
    span spans[256];
    int n = 0;
    uint64_t open_from[FIXTURE_MAX_CHILDREN] = {0};
    bool open[FIXTURE_MAX_CHILDREN] = {false};
    for (int w = 0; w < FIXTURE_MAX_CHILDREN; w++)
        woke_leader[w] = -1;
    event ev;
    while (events_wait(fx.q, (event_filter){EV_ANY, -1, -1, NULL}, 0, &ev)) {
        if ((ev.kind != EV_SAMPLE && ev.kind != EV_WOKE) || ev.who < 0 ||
            ev.who >= FIXTURE_MAX_CHILDREN)
            continue;
        if (ev.kind == EV_WOKE) {
            woke_leader[ev.who] = (int)ev.value;
            if (!ev.value && open[ev.who] && n < 256) {
                open[ev.who] = false;
                spans[n++] = (span){ev.who, open_from[ev.who], ev.epoch};
            }
            continue;
        }
        if (ev.value && !open[ev.who]) {
            open[ev.who] = true;
            open_from[ev.who] = ev.at_ms;
        } else if (!ev.value && open[ev.who] && n < 256) {
            open[ev.who] = false;
            spans[n++] = (span){ev.who, open_from[ev.who], ev.at_ms};
        }
    }
    for (int w = 0; w < FIXTURE_MAX_CHILDREN; w++)
        if (open[w] && n < 256)
            spans[n++] = (span){w, open_from[w], test_now_ms()};
    uint64_t worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (spans[i].who == spans[j].who)
                continue;
            uint64_t from = spans[i].from > spans[j].from ? spans[i].from : spans[j].from;
            uint64_t to = spans[i].to < spans[j].to ? spans[i].to : spans[j].to;
            if (to > from && to - from > worst)
                worst = to - from;
        }
    return worst;
}

/* Waits until the Sentinels name a master other than old, and prints how
 * long after t0 (the fault) that was: the part of a failover that is
 * Sentinel's own. */
static void new_master(const redis_server *old, uint64_t t0)
{
    assert_non_null(sentinels_wait_new_master(topo, old, FAILOVER_MS));
    printf("# the Sentinels name a new master %llu ms after the fault\n",
           (unsigned long long)(test_now_ms() - t0));
}

/* Waits for an election after t0 (by anyone, epoch above `above`) and
 * prints how long it took. */
static event wait_new_leader(uint64_t t0, uint64_t above, const char *what)
{
    event ev;
    uint64_t deadline = test_now_ms() + test_ms(FAILOVER_MS);
    for (;;) {
        uint64_t now = test_now_ms();
        if (now >= deadline)
            fail_msg("no leader within %u ms after %s", FAILOVER_MS, what);
        if (events_wait(fx.q, events_of(EV_ELECTED, -1), deadline - now, &ev) && ev.epoch > above)
            break;
    }
    printf("# %s: new leader %llu ms after the fault\n", what, (unsigned long long)(ev.at_ms - t0));
    return ev;
}

/* Three candidates through Sentinel; the first leader.  A test may start
 * soon after the last one's failover, while new processes still apply the
 * failover guard (a lease after the promotion, and the replicas), so the
 * bound is a failover's. */
static event start_three(leasehold_config *cfg, const char *key)
{
    test_config(cfg, topo->url);
    fixture_start_children(cfg, key, 3);
    event ev;
    if (!events_wait(fx.q, events_of(EV_ELECTED, -1), FAILOVER_MS, &ev)) {
        while (events_wait(fx.q, events_of(EV_LOG, -1), 0, &ev))
            fprintf(stderr, "  candidate %d: %s\n", ev.who, ev.text);
        fail_msg("nobody was elected within %u ms", FAILOVER_MS);
    }
    return ev;
}

/* Checks the samples: never two leaders at once. */
static void assert_one_leader_at_a_time(const char *what)
{
    uint64_t overlap = longest_overlap();
    printf("# %s: longest overlap of two leaders %llu ms\n", what, (unsigned long long)overlap);
    assert_true(overlap <= 5); /* one sampling period: the spans' ends are each up to 5 ms late */
}

/* True once candidate *arg has reported waking from a stop. */
static bool woke_reported(void *arg)
{
    return events_count(fx.q, events_of(EV_WOKE, *(int *)arg)) > 0;
}

/* -------------------------------------------------------------- tests */

/* An election through the Sentinels: one leader, its key on the master
 * they name, and the key replicated (WAIT by default behind Sentinel). */
static void test_election(void **state)
{
    (void)state;
    leasehold_config cfg;
    event first = start_three(&cfg, "lh:sentinel:election");
    redis_server *m = sentinels_master(topo);
    assert_non_null(m);
    redisReply *r = redis_server_cmd(m, "GET lh:sentinel:election");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    for (int d = 0; d < topo->n_data; d++) {
        if (topo->data[d] == m)
            continue;
        r = redis_server_cmd(topo->data[d], "GET {lh:sentinel:election}:epoch");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_true(strtoull(r->str, NULL, 10) >= first.epoch);
        freeReplyObject(r);
    }
    assert_one_leader_at_a_time("election");
}

/* SENTINEL FAILOVER: the candidates follow the promotion; whoever leads
 * on the new master, never two at once. */
static void test_failover_command(void **state)
{
    (void)state;
    leasehold_config cfg;
    event first = start_three(&cfg, "lh:sentinel:failover");
    redis_server *old = sentinels_master(topo);
    uint64_t t0 = test_now_ms();
    assert_int_equal(sentinels_failover(topo), 0);
    new_master(old, t0);
    wait_new_leader(t0, first.epoch, "SENTINEL FAILOVER");
    assert_one_leader_at_a_time("SENTINEL FAILOVER");
}

/* The master is SIGKILLed: the Sentinels promote a replica after
 * down-after-milliseconds; the candidates find it.  The old master comes
 * back empty and the Sentinels make it a replica. */
static void test_master_killed(void **state)
{
    (void)state;
    leasehold_config cfg;
    event first = start_three(&cfg, "lh:sentinel:kill");
    redis_server *old = sentinels_master(topo);
    uint64_t t0 = test_now_ms();
    redis_server_kill(old);
    new_master(old, t0);
    wait_new_leader(t0, first.epoch, "master SIGKILLed");
    assert_int_equal(redis_server_restart(old, false), 0);
    assert_one_leader_at_a_time("master SIGKILLed");
}

/* The master hangs (SIGSTOP) past down-after-milliseconds: the leader's
 * renewals go unanswered, it steps down at its deadline, and the
 * candidates follow the Sentinels to the promoted replica.  Resumed, the
 * old master is demoted. */
static void test_master_stopped(void **state)
{
    (void)state;
    leasehold_config cfg;
    event first = start_three(&cfg, "lh:sentinel:stop");
    redis_server *old = sentinels_master(topo);
    uint64_t t0 = test_now_ms();
    redis_server_pause(old);
    new_master(old, t0);
    wait_new_leader(t0, first.epoch, "master SIGSTOPped");
    redis_server_resume(old);
    assert_true(sentinels_wait_synced(topo, 30000));
    assert_one_leader_at_a_time("master SIGSTOPped");
}

/* The leader's process is paused while its master is demoted: woken, it
 * knows at once it no longer leads (its lease ran out), and it finds the
 * new master like the others; never two leaders. */
static void test_leader_paused_during_failover(void **state)
{
    (void)state;
    leasehold_config cfg;
    event first = start_three(&cfg, "lh:sentinel:paused-leader");
    redis_server *old = sentinels_master(topo);
    pid_t leader = events_child_pid(fx.child[first.who]);
    test_process_signal(leader, SIGSTOP);
    uint64_t t0 = test_now_ms();
    assert_int_equal(sentinels_failover(topo), 0);
    new_master(old, t0);
    event next = wait_new_leader(t0, first.epoch, "failover while the leader is paused");
    assert_int_not_equal(next.who, first.who);
    test_process_signal(leader, SIGCONT);
    /* It campaigns again on the new master, as a follower. */
    event ch;
    assert_true(events_wait(fx.q, events_of(EV_LEADER_CHANGED, first.who), FAILOVER_MS, &ch));
    int who = first.who;
    assert_true(wait_until(woke_reported, &who, 5000));
    assert_one_leader_at_a_time("failover while the leader is paused");
    assert_int_equal(woke_leader[first.who], 0); /* it knew at once it no longer led */
}

/* Each failure of discovery has its own code and words. */
static void test_discovery_errors(void **state)
{
    (void)state;
    leasehold_config cfg;
    leasehold_error err;
    char url[700];

    int p1 = redis_server_free_port(), p2 = redis_server_free_port();
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster", p1, p2);
    test_config(&cfg, url);
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_ESENTINEL);
    assert_non_null(strstr(err.msg, "no Sentinel reachable for master 'mymaster'"));
    assert_non_null(strstr(err.msg, "connection refused"));

    /* One Sentinel down, the next one answers. */
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster", p1,
             topo->sen[1]->port);
    test_config(&cfg, url);
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    leasehold_client_free(c);

    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/nosuchmaster", topo->sen[0]->port);
    test_config(&cfg, url);
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_EMASTERNAME);
    assert_non_null(strstr(err.msg, "no Sentinel knows a master named 'nosuchmaster'"));

    /* A Sentinel that names a replica: no master there (yet). */
    redis_server *replica = NULL;
    redis_server *m = sentinels_master(topo);
    for (int d = 0; d < topo->n_data && !replica; d++)
        if (topo->data[d] != m)
            replica = topo->data[d];
    redisReply *r =
        sentinels_cmd(topo, 0, "SENTINEL MONITOR notamaster 127.0.0.1 %d 2", replica->port);
    assert_non_null(r);
    freeReplyObject(r);
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/notamaster", topo->sen[0]->port);
    test_config(&cfg, url);
    assert_null(leasehold_client_new(&cfg, &err));
    r = sentinels_cmd(topo, 0, "SENTINEL REMOVE notamaster");
    if (r)
        freeReplyObject(r);
    assert_int_equal(err.code, LEASEHOLD_ENOMASTER);
    assert_non_null(strstr(err.msg, "ROLE says it is a replica"));

    /* A Sentinel password where the Sentinels have none is refused by them. */
    test_config(&cfg, topo->url);
    cfg.sentinel_password = "nope";
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_EAUTH);
    assert_non_null(strstr(err.msg, "Sentinel 127.0.0.1:"));
    assert_null(strstr(err.msg, "nope"));

    /* A Sentinel password with a URL that is not a Sentinel's. */
    test_config(&cfg, "redis://127.0.0.1:1");
    cfg.sentinel_password = "x";
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_ECONFIG);
}

/* The tools through Sentinel: `leasehold status` names the master that
 * answered; `server` is elected, follows a failover and logs it. */
static void test_tools(void **state)
{
    (void)state;
    redis_server *m = sentinels_master(topo);
    char want[64];
    snprintf(want, sizeof want, "; master 127.0.0.1:%d", m->port);
    const char *status[] = {"status", "--url", topo->url, "--key", "lh:sentinel:tools", NULL};
    proc *p = proc_start("leasehold", NULL, status);
    expect_exit(p, 3, 10000);
    expect_mentions(p, "status through Sentinel", want);
    proc_free(p);

    const char *env[] = {"SNAKETRON_REGION=sentinel-tools", NULL};
    const char *args[] = {"--url", topo->url, "--lease", "1s", NULL};
    p = proc_start("server", env, args);
    expect_output(p, "This server is now the leader!", 15000);
    assert_int_equal(sentinels_failover(topo), 0);
    redis_server *next = sentinels_wait_new_master(topo, m, FAILOVER_MS);
    assert_non_null(next);
    char failover[160];
    snprintf(failover, sizeof failover, "'mymaster' failed over: the Sentinels name 127.0.0.1:%d",
             next->port);
    expect_output(p, failover, FAILOVER_MS);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 10000);
    proc_free(p);
}

/* rediss+sentinel://: master, replicas and Sentinels over TLS (verified
 * against the test's CA); an election, a SENTINEL FAILOVER followed, never
 * two leaders; and the Sentinels on their plain ports with the master over
 * TLS (sentinel_tls=no). */
static void test_tls(void **state)
{
    (void)state;
    tls_certs certs;
    assert_true(tls_certs_make(fx.tmpdir, &certs));
    sentinels_opts o = {.tls = &certs};
    sentinels *tt = tls_topo = sentinels_start(&o);
    assert_non_null(tt);
    leasehold_config cfg;
    test_config(&cfg, tt->url);
    fixture_start_children(&cfg, "lh:sentinel:tls", 3);
    event first = fixture_first_leader(&cfg, -1);
    redis_server *old = sentinels_master(tt);
    assert_non_null(old);
    uint64_t t0 = test_now_ms();
    assert_int_equal(sentinels_failover(tt), 0);
    redis_server *next = sentinels_wait_new_master(tt, old, FAILOVER_MS);
    assert_non_null(next);
    wait_new_leader(t0, first.epoch, "SENTINEL FAILOVER over TLS");
    assert_one_leader_at_a_time("SENTINEL FAILOVER over TLS");

    char url[900], want[64];
    snprintf(url, sizeof url,
             "rediss+sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster?sentinel_tls=no&tls_ca_file=%s",
             tt->sen[0]->port, tt->sen[1]->port, certs.ca);
    snprintf(want, sizeof want, "; master 127.0.0.1:%d", next->tls_port);
    const char *status[] = {"status", "--url", url, "--key", "lh:sentinel:tls-status", NULL};
    proc *p = proc_start("leasehold", NULL, status);
    expect_exit(p, 3, 10000);
    expect_mentions(p, "status with plain Sentinels and a TLS master", want);
    proc_free(p);
}

/* test_tools's teardown: the tools it ran, then the fixture's test hook. */
static int teardown_tools(void **state)
{
    proc_free_all(state);
    return fixture_teardown(state);
}

/* test_tls's teardown: its candidates, then its topology. */
static int teardown_tls(void **state)
{
    teardown_tools(state);
    sentinels_stop(tls_topo);
    tls_topo = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    fixture_run_child(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_discovery_errors, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_election, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_failover_command, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_master_killed, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_master_stopped, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_leader_paused_during_failover, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tools, setup, teardown_tools),
        cmocka_unit_test_setup_teardown(test_tls, fixture_setup, teardown_tls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
