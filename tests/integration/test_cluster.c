/* test_cluster.c — elections on a Redis Cluster: three masters and three
 * replicas on loopback (redis_cluster.h), keys on every master, a slot
 * resharded (MOVED) and caught mid-migration (ASK), CLUSTER FAILOVER and a
 * SIGKILLed master.
 *
 * Three clients in this process campaign for the same keys, each client for
 * all of them, so one client speaks to every master at once.  While a fault
 * runs the test samples leasehold_is_leader() of every election every
 * 5 ms: no sample may show two leaders of one key.  The cluster is shared
 * by the tests, in order; each starts from one that is ok.
 *
 * A second group runs on a cluster of its own over TLS (rediss+cluster://),
 * as an ACL user with the README's rights: elections, `leasehold status`, a
 * CLUSTER FAILOVER, and the refusals a wrong password or a missing right
 * give.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "redis_cluster.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tool_proc.h"

static redis_cluster *topo;

#define CLIENTS 3
#define KEYS    3
/* How long a failover may take, end to end, on a busy machine: the
 * cluster's detection (node timeout 1 s) and election, then the failover
 * guard's lease and a claim. */
#define FAILOVER_MS 20000u

typedef struct member {
    leasehold_client *client;
    leasehold_election *e[KEYS];
} member;

static member mem[CLIENTS];
static char keys[KEYS][64];
static int nkeys;

static int group_setup(void **state)
{
    (void)state;
    topo = redis_cluster_start(NULL);
    return topo ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_cluster_stop(topo);
    topo = NULL;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return redis_cluster_wait_ok(topo, 60000) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < CLIENTS; i++) {
        for (int k = 0; k < KEYS; k++)
            if (mem[i].e[k])
                leasehold_election_free(mem[i].e[k]);
        if (mem[i].client)
            leasehold_client_free(mem[i].client);
        mem[i] = (member){0};
    }
    nkeys = 0;
    return 0;
}

/* The clients' log on stderr, marked with the client's number. */
static void log_line(leasehold_log_level level, const char *msg, void *arg)
{
    (void)level;
    fprintf(stderr, "  client %d: %s\n", (int)(intptr_t)arg, msg);
}

/* Three clients on url, each campaigning for keys[0..n). */
static void start_members_on(const char *url, int n)
{
    leasehold_config cfg;
    test_config(&cfg, url);
    /* LEASEHOLD_TEST_VERBOSE=1: every line of the clients' logs. */
    cfg.log_level = getenv("LEASEHOLD_TEST_VERBOSE") ? LEASEHOLD_LOG_DEBUG : LEASEHOLD_LOG_WARN;
    nkeys = n;
    for (int i = 0; i < CLIENTS; i++) {
        leasehold_error err;
        cfg.log = log_line;
        cfg.log_arg = (void *)(intptr_t)i;
        mem[i].client = leasehold_client_new(&cfg, &err);
        if (!mem[i].client)
            fail_msg("client %d: %s", i, err.msg);
        for (int k = 0; k < n; k++) {
            mem[i].e[k] = leasehold_campaign(mem[i].client, keys[k], NULL, NULL, &err);
            if (!mem[i].e[k])
                fail_msg("client %d, key %s: %s", i, keys[k], err.msg);
        }
    }
}

/* Three clients on the cluster's URL, each campaigning for keys[0..n). */
static void start_members(int n)
{
    start_members_on(topo->url, n);
}

/* Who leads key k now (-1: nobody); *count gets how many do. */
static int leader_of(int k, int *count)
{
    int who = -1;
    *count = 0;
    for (int i = 0; i < CLIENTS; i++)
        if (leasehold_is_leader(mem[i].e[k])) {
            who = i;
            (*count)++;
        }
    return who;
}

/* What the samples saw, per key. */
typedef struct watch {
    int doubles[KEYS];         /* samples with two leaders of the key */
    int leaderless_ms[KEYS];   /* the longest stretch without a leader */
    bool leader_changed[KEYS]; /* another client, or another epoch, led at some point */
    uint64_t epoch_seen[KEYS]; /* the first leader's epoch */
    int first_leader[KEYS];    /* -1: none at the first sample */
} watch;

/* Samples every election every 5 ms for ms (lower bound, not scaled). */
static void sample(watch *w, uint64_t ms)
{
    uint64_t end = test_now_ms() + ms, none_since[KEYS];
    for (int k = 0; k < nkeys; k++) {
        w->doubles[k] = w->leaderless_ms[k] = 0;
        w->leader_changed[k] = false;
        w->first_leader[k] = -2;
        none_since[k] = 0;
    }
    while (test_now_ms() < end) {
        uint64_t now = test_now_ms();
        for (int k = 0; k < nkeys; k++) {
            int count;
            int who = leader_of(k, &count);
            if (count > 1)
                w->doubles[k]++;
            if (w->first_leader[k] == -2) {
                w->first_leader[k] = who;
                w->epoch_seen[k] = who >= 0 ? leasehold_epoch(mem[who].e[k]) : 0;
            } else if (who >= 0 && (who != w->first_leader[k] ||
                                    leasehold_epoch(mem[who].e[k]) != w->epoch_seen[k])) {
                w->leader_changed[k] = true;
            }
            if (who < 0 && !none_since[k])
                none_since[k] = now;
            if ((who >= 0 || test_now_ms() + 5 >= end) && none_since[k]) {
                int gap = (int)(now - none_since[k]);
                if (gap > w->leaderless_ms[k])
                    w->leaderless_ms[k] = gap;
                none_since[k] = 0;
            }
            if (who < 0 && w->first_leader[k] >= 0)
                w->leader_changed[k] = true;
        }
        test_sleep_ms(5);
    }
}

/* Waits until key k has exactly one leader; returns it. */
static int wait_leader(int k, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        int count;
        int who = leader_of(k, &count);
        assert_true(count <= 1);
        if (who >= 0)
            return who;
        if (test_now_ms() >= deadline)
            fail_msg("key %s: no leader within %llu ms", keys[k], (unsigned long long)max_ms);
        test_sleep_ms(5);
    }
}

/* Waits until key k is led by someone other than (who, epoch) or in
 * another term; returns the new leader and prints how long it took. */
static int wait_new_term(int k, int who, uint64_t epoch, uint64_t t0, const char *what)
{
    uint64_t deadline = test_now_ms() + test_ms(FAILOVER_MS);
    for (;;) {
        int count;
        int now_who = leader_of(k, &count);
        assert_true(count <= 1);
        if (now_who >= 0 && (now_who != who || leasehold_epoch(mem[now_who].e[k]) != epoch))
            break;
        if (test_now_ms() >= deadline)
            fail_msg("%s: no new term within %u ms", what, FAILOVER_MS);
        test_sleep_ms(5);
    }
    printf("# %s: new term %llu ms after the fault\n", what,
           (unsigned long long)(test_now_ms() - t0));
    return leader_of(k, &(int){0});
}

/* The value of key on node s, into out ("" when missing). */
static void get_on(redis_server *s, const char *key, char *out, size_t size)
{
    redisReply *r = redis_server_cmd(s, "GET %s", key);
    assert_non_null(r);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* Keys named prefix<N>, one on each of the first KEYS masters, and three
 * clients on url campaigning for all of them: each key gets one leader,
 * its lease on the master serving its slot, and another client's holder
 * query names that master (by its TLS port when tls). */
static void lead_on_every_master(const char *prefix, const char *url, bool tls)
{
    for (int k = 0; k < KEYS; k++)
        redis_cluster_key_on(topo, topo->node[k], prefix, keys[k], sizeof keys[k]);
    start_members_on(url, KEYS);
    for (int k = 0; k < KEYS; k++) {
        int who = wait_leader(k, 10000);
        char val[300];
        get_on(topo->node[k], keys[k], val, sizeof val);
        assert_string_equal(val, leasehold_election_token(mem[who].e[k]));
        leasehold_holder h;
        leasehold_error err;
        assert_int_equal(leasehold_holder_get(mem[(who + 1) % CLIENTS].client, keys[k], &h, &err),
                         0);
        assert_string_equal(h.token, val);
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d",
                 tls ? topo->node[k]->tls_port : topo->node[k]->port);
        assert_string_equal(h.master, addr);
    }
}

/* CLUSTER FAILOVER on replica s, then waits until s serves key's slot
 * (what names the step if it does not). */
static void fail_over_to(redis_server *s, const char *key, const char *what)
{
    redisReply *rep = redis_server_cmd(s, "CLUSTER FAILOVER");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    uint64_t deadline = test_now_ms() + test_ms(FAILOVER_MS);
    while (redis_cluster_owner(topo, cluster_key_slot(key)) != s) {
        if (test_now_ms() >= deadline)
            fail_msg("%s: port %d did not take the slot of %s", what, s->port, key);
        test_sleep_ms(20);
    }
}

/* ----------------------------------------------------------------- tests */

/* One key per master, three clients each campaigning for all three: each
 * key gets one leader, its lease on the master serving its slot, and the
 * holder query names that master. */
static void test_keys_on_every_master(void **state)
{
    (void)state;
    lead_on_every_master("lh:cluster:every:", topo->url, false);
    watch w;
    sample(&w, 1000);
    for (int k = 0; k < KEYS; k++) {
        assert_int_equal(w.doubles[k], 0);
        assert_false(w.leader_changed[k]);
    }
}

/* A slot moved to another master while its election runs (the keys
 * migrated, then the slot handed over): the leader's renewals follow ASK,
 * then MOVED, and its term goes on unbroken on the new master. */
static void test_resharding_keeps_the_term(void **state)
{
    (void)state;
    redis_server *from = topo->node[0], *to = topo->node[1];
    redis_cluster_key_on(topo, from, "lh:cluster:moved:", keys[0], sizeof keys[0]);
    start_members(1);
    int who = wait_leader(0, 10000);
    uint64_t epoch = leasehold_epoch(mem[who].e[0]);
    unsigned slot = cluster_key_slot(keys[0]);

    uint64_t t0 = test_now_ms();
    assert_int_equal(redis_cluster_migrate_keys(topo, slot, from, to), 0);
    printf("# the slot's keys migrated in %llu ms\n", (unsigned long long)(test_now_ms() - t0));
    watch w;
    sample(&w, 1500); /* past the renew deadline: renewals must go through ASK */
    assert_int_equal(w.doubles[0], 0);
    assert_false(w.leader_changed[0]);
    assert_int_equal(w.leaderless_ms[0], 0);

    assert_int_equal(redis_cluster_finish_migration(topo, slot, from, to), 0);
    sample(&w, 1500); /* ...and now through MOVED */
    assert_int_equal(w.doubles[0], 0);
    assert_false(w.leader_changed[0]);
    assert_int_equal(w.leaderless_ms[0], 0);
    assert_true(leasehold_is_leader(mem[who].e[0]));
    assert_int_equal(leasehold_epoch(mem[who].e[0]), epoch);
    char val[300];
    get_on(to, keys[0], val, sizeof val);
    assert_string_equal(val, leasehold_election_token(mem[who].e[0]));
    assert_true(redis_cluster_wait_ok(topo, 30000));
}

/* The leader's client is told of the slot's new master only by MOVED and
 * its own map; a client started after the move finds it by the map. */
static void test_late_client_finds_moved_slot(void **state)
{
    (void)state;
    redis_server *from = topo->node[2], *to = topo->node[0];
    redis_cluster_key_on(topo, from, "lh:cluster:late:", keys[0], sizeof keys[0]);
    unsigned slot = cluster_key_slot(keys[0]);
    assert_int_equal(redis_cluster_migrate_keys(topo, slot, from, to), 0);
    assert_int_equal(redis_cluster_finish_migration(topo, slot, from, to), 0);
    assert_true(redis_cluster_wait_ok(topo, 30000));
    start_members(1);
    int who = wait_leader(0, 10000);
    char val[300];
    get_on(to, keys[0], val, sizeof val);
    assert_string_equal(val, leasehold_election_token(mem[who].e[0]));
}

/* CLUSTER FAILOVER on the replica of the master serving the key: the
 * replica takes over (no write lost: it waits for the master's offset);
 * whoever leads after, never two at once. */
static void test_cluster_failover(void **state)
{
    (void)state;
    redis_server *m = topo->node[1];
    redis_cluster_key_on(topo, m, "lh:cluster:failover:", keys[0], sizeof keys[0]);
    start_members(1);
    wait_leader(0, 10000);
    redis_server *r = redis_cluster_replica_of(topo, m);
    assert_non_null(r);
    redisReply *rep = redis_server_cmd(r, "CLUSTER FAILOVER");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    watch w;
    sample(&w, 4000);
    assert_int_equal(w.doubles[0], 0);
    wait_leader(0, FAILOVER_MS);
    printf("# CLUSTER FAILOVER: the term %s; longest without a leader %d ms (of 4000 ms "
           "watched from the command)\n",
           w.leader_changed[0] ? "changed" : "went on", w.leaderless_ms[0]);
    assert_true(redis_cluster_owner(topo, cluster_key_slot(keys[0])) == r);
    /* New claims on the promoted master: the failover guard holds them
     * until a replica follows it (the old master, at once) and a lease
     * more, on connections that never went down. */
    int who = wait_leader(0, FAILOVER_MS);
    uint64_t epoch = leasehold_epoch(mem[who].e[0]);
    uint64_t t1 = test_now_ms();
    assert_int_equal(leasehold_resign(mem[who].e[0]), 0);
    wait_new_term(0, who, epoch, t1, "resign after CLUSTER FAILOVER");
    sample(&w, 500);
    assert_int_equal(w.doubles[0], 0);

    /* And back: the old master, which the clients are still connected to,
     * takes its slots again; claims there wait for its replica as well
     * (asked of the connection that stays), then go through. */
    assert_true(redis_cluster_wait_ok(topo, 30000));
    fail_over_to(m, keys[0], "failing back");
    sample(&w, 300);
    assert_int_equal(w.doubles[0], 0);
    who = wait_leader(0, FAILOVER_MS);
    epoch = leasehold_epoch(mem[who].e[0]);
    t1 = test_now_ms();
    assert_int_equal(leasehold_resign(mem[who].e[0]), 0);
    wait_new_term(0, who, epoch, t1, "resign after failing back");
    sample(&w, 500);
    assert_int_equal(w.doubles[0], 0);
}

/* The master serving the key is SIGKILLed: its replica is promoted after
 * the node timeout and the old leader steps down at its renew deadline.
 * With one replica per master and min_replicas 1 (the default), no claim
 * counts until the promoted master has a replica again: the old master
 * comes back empty and rejoins as one, and a new term begins once the
 * failover guard allows.  Never two leaders at once. */
static void test_master_killed(void **state)
{
    (void)state;
    redis_server *m = topo->node[2];
    if (!redis_cluster_replica_of(topo, m))
        m = topo->node[0];
    redis_cluster_key_on(topo, m, "lh:cluster:kill:", keys[0], sizeof keys[0]);
    unsigned slot = cluster_key_slot(keys[0]);
    start_members(1);
    int who = wait_leader(0, 10000);
    uint64_t epoch = leasehold_epoch(mem[who].e[0]);
    uint64_t t0 = test_now_ms();
    redis_server_kill(m);
    watch w;
    sample(&w, 1000);
    assert_int_equal(w.doubles[0], 0);
    uint64_t deadline = test_now_ms() + test_ms(FAILOVER_MS);
    redis_server *owner;
    while ((owner = redis_cluster_owner(topo, slot)) == NULL || owner == m) {
        if (test_now_ms() >= deadline)
            fail_msg("the replica was not promoted within %u ms", FAILOVER_MS);
        test_sleep_ms(20);
    }
    printf("# master SIGKILLed: its replica promoted %llu ms after\n",
           (unsigned long long)(test_now_ms() - t0));
    assert_int_equal(redis_server_restart(m, false), 0);
    wait_new_term(0, who, epoch, t0, "master SIGKILLed");
    sample(&w, 1000);
    assert_int_equal(w.doubles[0], 0);
    assert_true(redis_cluster_wait_ok(topo, 60000));
}

/* Discovery: a seed that is down is passed over for the next; a seed that
 * is no Cluster node, or none reachable, fails leasehold_client_new() with
 * a message naming each seed. */
static void test_discovery_errors(void **state)
{
    (void)state;
    leasehold_config cfg;
    leasehold_error err;
    int dead = redis_server_free_port();
    assert_true(dead > 0);
    char u[200];
    snprintf(u, sizeof u, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", dead, topo->node[1]->port);
    test_config(&cfg, u);
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c)
        fail_msg("the second seed should have served: %s", err.msg);
    leasehold_client_free(c);

    /* lazy_connect: the seeds are tried in turn as the connection retries. */
    cfg.lazy_connect = true;
    c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    snprintf(keys[0], sizeof keys[0], "lh:cluster:lazy");
    leasehold_election *e = leasehold_campaign(c, keys[0], NULL, NULL, &err);
    assert_non_null(e);
    uint64_t deadline = test_now_ms() + test_ms(15000);
    while (!leasehold_is_leader(e)) {
        if (test_now_ms() >= deadline)
            fail_msg("lazy_connect with a dead first seed: never elected");
        test_sleep_ms(10);
    }
    leasehold_election_free(e);
    leasehold_client_free(c);

    /* A seed name that does not resolve is passed over too. */
    snprintf(u, sizeof u, "redis+cluster://no-such-host.invalid:7000,127.0.0.1:%d",
             topo->node[2]->port);
    test_config(&cfg, u);
    c = leasehold_client_new(&cfg, &err);
    if (!c)
        fail_msg("the second seed should have served: %s", err.msg);
    leasehold_client_free(c);

    snprintf(u, sizeof u, "redis+cluster://127.0.0.1:%d", dead);
    test_config(&cfg, u);
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_ECONNREFUSED);
    assert_non_null(strstr(err.msg, "refused"));

    redis_server *plain = redis_server_start(NULL);
    assert_non_null(plain);
    snprintf(u, sizeof u, "redis+cluster://127.0.0.1:%d", plain->port);
    test_config(&cfg, u);
    c = leasehold_client_new(&cfg, &err);
    redis_server_stop(plain);
    assert_null(c);
    assert_int_equal(err.code, LEASEHOLD_EPROTO);
    assert_non_null(strstr(err.msg, "cluster support disabled"));
    assert_non_null(strstr(err.msg, "is it a Cluster node?"));
}

/* The tools on a Cluster URL: `leasehold status` names the slot's master;
 * `leasehold run` and `server` are elected through it. */
static void test_tools(void **state)
{
    (void)state;
    redis_cluster_key_on(topo, topo->node[0], "lh:cluster:tools:", keys[0], sizeof keys[0]);
    char want[64];
    snprintf(want, sizeof want, "; master 127.0.0.1:%d", topo->node[0]->port);
    const char *status[] = {"status", "--url", topo->url, "--key", keys[0], NULL};
    proc *p = proc_start("leasehold", NULL, status);
    expect_exit(p, 3, 10000);
    expect_mentions(p, "status on a Cluster", want);
    proc_free(p);

    const char *run[] = {
        "run", "--url", topo->url, "--key", keys[0], "--", "sh", "-c", "echo led on the Cluster",
        NULL};
    p = proc_start("leasehold", NULL, run);
    expect_output(p, "led on the Cluster", 15000);
    expect_exit(p, 0, 10000);
    proc_free(p);

    const char *env[] = {"SNAKETRON_REGION=cluster-tools", NULL};
    const char *args[] = {"--url", topo->url, "--lease", "1s", NULL};
    p = proc_start("server", env, args);
    expect_output(p, "This server is now the leader!", 15000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 10000);
    proc_free(p);
}

/* ---------------------------------------------------------- over TLS */

/* A second cluster whose clients speak TLS only (rediss+cluster:// on the
 * nodes' TLS ports; bus and replication over TLS too), with an ACL user on
 * every node holding exactly the rights the README's "Redis Cluster" adds
 * to "Least privilege", for keys under one prefix. */
static char tls_dir[300];
static tls_certs certs;
static char acl_url[1200];

#define TLS_PREFIX "lh:tls:"
#define ACL_RIGHTS                                                                                 \
    "resetkeys resetchannels -@all +ping +evalsha +eval +get +set +pttl +pexpire +del +publish "   \
    "+time +info +subscribe +unsubscribe +spublish +ssubscribe +sunsubscribe +asking +wait "       \
    "~" TLS_PREFIX "* ~{" TLS_PREFIX "*}:* &{" TLS_PREFIX "*}:events"

/* ACL SETUSER user on >password <rights...> on every node; 0 or -1. */
static int set_user(const char *user, const char *rights)
{
    for (int i = 0; i < topo->n; i++) {
        char line[1024];
        snprintf(line, sizeof line, "ACL SETUSER %s on >pw-%s %s", user, user, rights);
        redisReply *r = redis_server_cmd(topo->node[i], line);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
            fprintf(stderr, "%s on node %d: %s\n", line, i, r && r->str ? r->str : "no answer");
        if (r)
            freeReplyObject(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* The TLS seeds with user's credentials, into out. */
static void url_as(const char *user, const char *password, char *out, size_t size)
{
    snprintf(out, size, "rediss+cluster://%s:%s@127.0.0.1:%d,127.0.0.1:%d?tls_ca_file=%s", user,
             password, topo->node[0]->tls_port, topo->node[1]->tls_port, certs.ca);
}

static int tls_group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(tls_dir, sizeof tls_dir, "%s/leasehold-test_cluster-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tls_dir)) {
        tls_dir[0] = '\0';
        return -1;
    }
    if (!tls_certs_make(tls_dir, &certs))
        return -1;
    redis_cluster_opts o = {.tls = &certs};
    topo = redis_cluster_start(&o);
    if (!topo || set_user("lh", ACL_RIGHTS " +cluster|shards") < 0 ||
        set_user("lhnoshards", ACL_RIGHTS) < 0)
        return -1;
    url_as("lh", "pw-lh", acl_url, sizeof acl_url);
    return 0;
}

static int tls_group_teardown(void **state)
{
    group_teardown(state);
    if (!tls_dir[0])
        return 0;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir);
    tls_dir[0] = '\0';
    return system(cmd) == 0 ? 0 : -1;
}

/* Over TLS, as the ACL user: one leader per key on every master, each
 * lease on the master serving its slot (named by its TLS port, learnt from
 * CLUSTER SHARDS); `leasehold status` says the same; a CLUSTER FAILOVER
 * and a resign after it (WAIT and the failover guard's INFO, over TLS and
 * within the ACL rule) never give a key two leaders. */
static void test_tls_acl(void **state)
{
    (void)state;
    lead_on_every_master(TLS_PREFIX "every:", acl_url, true);
    char want[64];
    snprintf(want, sizeof want, "; master 127.0.0.1:%d", topo->node[0]->tls_port);
    const char *status[] = {"status", "--url", acl_url, "--key", keys[0], NULL};
    proc *p = proc_start("leasehold", NULL, status);
    expect_exit(p, 0, 10000);
    expect_mentions(p, "status on a Cluster over TLS", want);
    proc_free(p);

    redis_server *r = redis_cluster_replica_of(topo, topo->node[1]);
    assert_non_null(r);
    fail_over_to(r, keys[1], "CLUSTER FAILOVER over TLS");
    watch w;
    sample(&w, 300); /* the resign below comes while the failover guard holds claims */
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(w.doubles[k], 0);
    int who = wait_leader(1, FAILOVER_MS);
    uint64_t epoch = leasehold_epoch(mem[who].e[1]);
    uint64_t t1 = test_now_ms();
    assert_int_equal(leasehold_resign(mem[who].e[1]), 0);
    who = wait_new_term(1, who, epoch, t1, "resign after CLUSTER FAILOVER over TLS");
    sample(&w, 500);
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(w.doubles[k], 0);
    leasehold_holder h;
    leasehold_error err;
    assert_int_equal(leasehold_holder_get(mem[who].client, keys[1], &h, &err), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", r->tls_port);
    assert_string_equal(h.master, addr); /* the new term is on the promoted replica */
}

/* Refusals name their cause: a wrong password (every seed says so), and a
 * user without +cluster|shards, whose message names the command. */
static void test_tls_refusals(void **state)
{
    (void)state;
    leasehold_config cfg;
    leasehold_error err;
    char u[1200];
    url_as("lh", "wrong", u, sizeof u);
    test_config(&cfg, u);
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_EAUTH);

    url_as("lhnoshards", "pw-lhnoshards", u, sizeof u);
    test_config(&cfg, u);
    assert_null(leasehold_client_new(&cfg, &err));
    assert_int_equal(err.code, LEASEHOLD_ENOPERM);
    if (!strstr(err.msg, "ACL SETUSER lhnoshards +cluster|shards"))
        fail_msg("the refusal does not name the right to grant: %s", err.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_discovery_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_on_every_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resharding_keeps_the_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_client_finds_moved_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_killed, setup, teardown),
    };
    const struct CMUnitTest tls_tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_acl, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("plain", tests, group_setup, group_teardown);
    return failed +
           cmocka_run_group_tests_name("tls", tls_tests, tls_group_setup, tls_group_teardown);
}
