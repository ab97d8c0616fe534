/*
 * chaos_cluster — the chaos schedule against a Redis Cluster, many
 * elections per probe, each judged alone.
 *
 *     chaos_cluster [--seconds N] [--seed N] [--probes N] [--keys N] [--out DIR]
 *                   [--faults TYPE,TYPE...] [--min-replicas N]
 *
 * It starts a Redis Cluster of three masters with a replica each on
 * loopback, or each node in a network namespace when the partition fault
 * is on (tests/support/redis_cluster.h: cluster-node-timeout 1000 ms,
 * cluster-require-full-coverage no) and N chaos_probe processes (3 by
 * default), each one client campaigning for the same K keys (8 by default,
 * chaos:cluster:0 to :K-1, spread over the masters) by redis+cluster://,
 * printing to DIR/probe-<id>.log.  Then, until the time is up, it deals
 * faults from a shuffled deck (every type once per round; the first round
 * whole), logs each to DIR/faults.log, holds it, heals it, and lets the
 * cluster and the elections settle (the cluster ok again, then lease +
 * retry + 1 s) before the next:
 *
 *   migrate        a probe key's slot moves to another master: IMPORTING /
 *                  MIGRATING, its keys MIGRATEd (commands now get ASK), held,
 *                  then the slot handed over (MOVED)
 *   failover       CLUSTER FAILOVER on the replica of a master serving keys
 *   master-kill    a master serving keys SIGKILLed; healed once its replica
 *                  is promoted, by restarting it empty (it rejoins as a
 *                  replica)
 *   master-stop    a master serving keys SIGSTOPped past the node timeout
 *                  (its replica is promoted), then SIGCONTed
 *   partition      a master serving keys and the probe leading one of them
 *                  cut off from every other node and probe until the
 *                  master's replica is promoted, and 1-3 s more: on the
 *                  small side the probe renews its terms on the old master,
 *                  which no replica confirms any longer, until the master
 *                  refuses commands (CLUSTERDOWN, a node timeout after the
 *                  cut); on the large side the others claim on the promoted
 *                  one.  Then healed: the old master rejoins
 *                  as a replica.  With this fault every node and probe runs
 *                  in a network namespace of its own (tests/chaos/netns.h:
 *                  root and `ip` needed), a cut being blackhole routes.
 *   kill, stop, term  a probe SIGKILLed, SIGSTOPped past the lease, or
 *                  SIGTERMed (a graceful stop), then started again
 *
 * At the end it stops the probes, writes `end`, splits each probe's log
 * into one per key (DIR/key-<k>/probe-<id>.log) and runs the chaos
 * checker's rules (tests/chaos/checker.h) on each key: no two terms of a
 * key may ever act at once, and after every heal every key has a leader
 * within lease + retry + 1 s + the settle allowance (a failover guard's
 * lease, and the replica a promoted master needs before claims count).
 * Exit status 0 when every key passes, 1 otherwise (or if the run could
 * not go on), 2 on bad usage.  Without --out, DIR is a fresh temporary
 * directory, removed when every key passes.
 *
 * Every process started here is a registered child of the test support,
 * stopped by its pid on every way out.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checker.h"
#include "cluster.h"
#include "netns.h"
#include "redis_cluster.h"
#include "schedule.h"
#include "testutil.h"

#define MAX_PROBES    8
#define MAX_KEYS      32
#define KEY_PREFIX    "chaos:cluster"
#define SETTLE_MS     10000u /* the checker's extra allowance after a heal */
#define LEASE_MS      2000u
#define RENEW_MS      300u
#define RETRY_MS      1000u
#define DEADLINE_MS   1500u
#define TIMEOUT_MS    250u
#define CLUSTER_NODES 6 /* 3 masters, a replica each */
#define NET_PROBE(i)  (CLUSTER_NODES + (i))

typedef enum fault_type {
    FAULT_MIGRATE,
    FAULT_FAILOVER,
    FAULT_MASTER_KILL,
    FAULT_MASTER_STOP,
    FAULT_PARTITION,
    FAULT_KILL,
    FAULT_STOP,
    FAULT_TERM,
    FAULT_COUNT
} fault_type;

static const char *const fault_names[FAULT_COUNT] = {
    "migrate", "failover", "master-kill", "master-stop", "partition", "kill", "stop", "term"};

typedef struct options {
    unsigned seconds;
    uint64_t seed;
    int probes, keys, min_replicas;
    const char *out;
    bool fault_on[FAULT_COUNT];
} options;

typedef struct run {
    options opt;
    char dir[PATH_MAX];
    char bindir[PATH_MAX];
    redis_cluster *cl;
    bool netns;    /* the partition fault is on: nodes and probes in net's namespaces */
    chaos_net net; /* net node i < CLUSTER_NODES: cluster node i; then the probes */
    pid_t probe[MAX_PROBES];
    int fault_fd;
    uint64_t rng;
    unsigned injected[FAULT_COUNT];
    bool broken;
} run;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Appends "<kind> <ns> <what>" to the fault log (kind: fault or heal), and
 * says it on stdout. */
__attribute__((format(printf, 3, 4))) static void fault_log(run *r, const char *kind,
                                                            const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    dprintf(r->fault_fd, "%s %" PRIu64 " %s\n", kind, chaos_now_ns(), what);
    printf("  %s %s\n", kind, what);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: chaos_cluster [--seconds N] [--seed N] [--probes N] [--keys N] "
               "[--out DIR] [--faults TYPE,...] [--min-replicas N]\n"
               "fault types: migrate, failover, master-kill, master-stop, partition, kill, stop, "
               "term\n");
}

static bool parse_options(int argc, char **argv, options *o)
{
    *o = (options){.seconds = 90, .seed = 1, .probes = 3, .keys = 8, .min_replicas = -1};
    bool given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage(stderr);
            return false;
        }
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        bool num = end != v && *end == '\0' && v[0] != '-';
        if (strcmp(a, "--seconds") == 0 && num && n >= 1 && n <= 86400)
            o->seconds = (unsigned)n;
        else if (strcmp(a, "--seed") == 0 && num)
            o->seed = n;
        else if (strcmp(a, "--probes") == 0 && num && n >= 2 && n <= MAX_PROBES)
            o->probes = (int)n;
        else if (strcmp(a, "--keys") == 0 && num && n >= 1 && n <= MAX_KEYS)
            o->keys = (int)n;
        else if (strcmp(a, "--min-replicas") == 0 && num && n <= 1)
            o->min_replicas = (int)n;
        else if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--faults") == 0) {
            given = true;
            char list[256];
            snprintf(list, sizeof list, "%s", v);
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < FAULT_COUNT && strcmp(fault_names[k], t) != 0)
                    k++;
                if (k == FAULT_COUNT) {
                    fprintf(stderr, "chaos_cluster: unknown fault type '%s'\n", t);
                    usage(stderr);
                    return false;
                }
                o->fault_on[k] = true;
            }
        } else {
            fprintf(stderr, "chaos_cluster: bad option %s %s\n", a, v);
            usage(stderr);
            return false;
        }
        i++;
    }
    if (!given)
        for (int k = 0; k < FAULT_COUNT; k++)
            o->fault_on[k] = true;
    return true;
}

/* Starts (or restarts) probe i; its lines are appended to DIR/probe-<i+1>.log. */
static bool start_probe(run *r, int i)
{
    char path[PATH_MAX + 64], err_path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/probe-%d.log", r->dir, i + 1);
    snprintf(err_path, sizeof err_path, "%s/probe-%d.err", r->dir, i + 1);
    int out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    char exe[PATH_MAX + 32], id[16], keys[16], lease[16], renew[16], retry[16], deadline[16],
        timeout[16], minrep[16];
    snprintf(exe, sizeof exe, "%s/chaos_probe", r->bindir);
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(keys, sizeof keys, "%d", r->opt.keys);
    snprintf(lease, sizeof lease, "%u", LEASE_MS);
    snprintf(renew, sizeof renew, "%u", RENEW_MS);
    snprintf(retry, sizeof retry, "%u", RETRY_MS);
    snprintf(deadline, sizeof deadline, "%u", DEADLINE_MS);
    snprintf(timeout, sizeof timeout, "%u", TIMEOUT_MS);
    snprintf(minrep, sizeof minrep, "%d", r->opt.min_replicas);
    char *argv[] = {r->netns ? "ip" : exe,
                    "netns",
                    "exec",
                    r->net.ns[NET_PROBE(i)],
                    exe,
                    "--url",
                    r->cl->url,
                    "--key",
                    KEY_PREFIX,
                    "--keys",
                    keys,
                    "--id",
                    id,
                    "--lease-ms",
                    lease,
                    "--renew-ms",
                    renew,
                    "--retry-ms",
                    retry,
                    "--renew-deadline-ms",
                    deadline,
                    "--command-timeout-ms",
                    timeout,
                    r->opt.min_replicas >= 0 ? "--min-replicas" : NULL,
                    minrep,
                    NULL};
    char **run_argv = r->netns ? argv : argv + 4; /* in the probe's namespace, or here */
    r->probe[i] = out >= 0 && err >= 0 ? test_process_spawn_stdio(run_argv, -1, out, err) : -1;
    if (out >= 0)
        close(out);
    if (err >= 0)
        close(err);
    if (r->probe[i] < 0) {
        r->probe[i] = 0;
        r->broken = true;
        return false;
    }
    return true;
}

/* Stops probe i: SIGTERM, waited for; killed if it hangs. */
static void stop_probe(run *r, int i)
{
    if (r->probe[i] <= 0)
        return;
    test_process_signal(r->probe[i], SIGCONT);
    test_process_signal(r->probe[i], SIGTERM);
    if (!test_process_wait(r->probe[i], test_ms(10000), NULL)) {
        fprintf(stderr, "chaos_cluster: probe %d did not stop on SIGTERM; killed\n", i + 1);
        test_process_kill(r->probe[i]);
    }
    r->probe[i] = 0;
}

/* Sleeps ms in short steps, noticing a signal to stop. */
static void pass_time(uint64_t ms)
{
    uint64_t deadline = test_now_ms() + ms;
    while (!interrupted && test_now_ms() < deadline)
        test_sleep_ms(20);
}

/* The masters that serve a probe key now (each once), into out; their number. */
static int key_masters(run *r, redis_server *out[3])
{
    int n = 0;
    for (int k = 0; k < r->opt.keys; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s:%d", KEY_PREFIX, k);
        redis_server *m = redis_cluster_owner(r->cl, cluster_key_slot(key));
        bool seen = false;
        for (int i = 0; i < n; i++)
            seen |= out[i] == m;
        if (m && !seen && n < 3)
            out[n++] = m;
    }
    return n;
}

/* A master serving keys, drawn at random, or NULL. */
static redis_server *draw_master(run *r)
{
    redis_server *ms[3];
    int n = key_masters(r, ms);
    return n ? ms[chaos_rng_range(&r->rng, 0, (uint32_t)n - 1)] : NULL;
}

/* Waits up to max_ms until the slot's owner is another node than old. */
static bool wait_owner_changes(run *r, unsigned slot, const redis_server *old, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    while (!interrupted && test_now_ms() < deadline) {
        redis_server *o = redis_cluster_owner(r->cl, slot);
        if (o && o != old)
            return true;
        test_sleep_ms(50);
    }
    return false;
}

/* The first slot among the probe keys that master m serves. */
static unsigned slot_of_master(run *r, const redis_server *m)
{
    for (int k = 0; k < r->opt.keys; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s:%d", KEY_PREFIX, k);
        unsigned s = cluster_key_slot(key);
        if (redis_cluster_owner(r->cl, s) == m)
            return s;
    }
    return 0;
}

/* The index of cluster node s. */
static int node_index(run *r, const redis_server *s)
{
    for (int i = 0; i < r->cl->n; i++)
        if (r->cl->node[i] == s)
            return i;
    return -1;
}

/* True when s answers ROLE as a master. */
static bool says_master(redis_server *s)
{
    redisReply *rep = redis_server_cmd(s, "ROLE");
    bool yes = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
               rep->element[0]->type == REDIS_REPLY_STRING &&
               strcmp(rep->element[0]->str, "master") == 0;
    if (rep)
        freeReplyObject(rep);
    return yes;
}

/* The probe that leads a key master m serves (its lease's token begins
 * with the probe's id), or -1 if none does. */
static int leader_on(run *r, redis_server *m)
{
    for (int k = 0; k < r->opt.keys; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s:%d", KEY_PREFIX, k);
        if (redis_cluster_owner(r->cl, cluster_key_slot(key)) != m)
            continue;
        redisReply *v = redis_server_cmd(m, "GET %s", key);
        int id = v && v->type == REDIS_REPLY_STRING ? atoi(v->str) : 0;
        if (v)
            freeReplyObject(v);
        if (id >= 1 && id <= r->opt.probes)
            return id - 1;
    }
    return -1;
}

/* The partition fault: a master serving keys and a probe on one side, every
 * other node and probe on the other (the driver, outside every namespace,
 * still reaches all); held until the master's replica is promoted and
 * `hold` ms more, then healed. */
static bool partition(run *r, uint32_t hold)
{
    redis_server *m = draw_master(r);
    redis_server *rep = m ? redis_cluster_replica_of(r->cl, m) : NULL;
    int p = m ? leader_on(r, m) : -1;
    if (p < 0)
        p = (int)chaos_rng_range(&r->rng, 0, (uint32_t)r->opt.probes - 1);
    if (!rep || r->probe[p] <= 0)
        return false;
    unsigned slot = slot_of_master(r, m);
    bool small[CHAOS_NET_MAX] = {false};
    small[node_index(r, m)] = small[NET_PROBE(p)] = true;
    fault_log(r, "fault", "partition: master %s:%d and probe %d cut off from the rest", m->host,
              m->port, p + 1);
    for (int a = 0; a < r->net.n; a++)
        for (int b = a + 1; b < r->net.n; b++)
            if (small[a] != small[b] && !chaos_net_set_cut(&r->net, a, b, true)) {
                r->broken = true;
                chaos_net_heal_all(&r->net);
                return false;
            }
    uint64_t t0 = test_now_ms(), deadline = t0 + test_ms(30000);
    while (!interrupted && !says_master(rep) && test_now_ms() < deadline)
        test_sleep_ms(50);
    bool promoted = says_master(rep);
    printf("  (replica %s:%d %s %" PRIu64 " ms after the cut)\n", rep->host, rep->port,
           promoted ? "promoted" : "NOT promoted", test_now_ms() - t0);
    if (promoted)
        pass_time(hold);
    chaos_net_heal_all(&r->net);
    fault_log(r, "heal", "partition");
    /* A cut that cut nothing must not pass for a partition survived. */
    if (!promoted || !wait_owner_changes(r, slot, m, 30000)) {
        fprintf(stderr, "chaos_cluster: the partition did not fail the master over\n");
        r->broken = true;
        return false;
    }
    return true;
}

/* One fault: injected, held, healed; false if it could not be. */
static bool inject(run *r, fault_type t)
{
    uint32_t hold = chaos_rng_range(&r->rng, 1000, 3000);
    const char *name = fault_names[t];
    switch (t) {
    case FAULT_MIGRATE: {
        int k = (int)chaos_rng_range(&r->rng, 0, (uint32_t)r->opt.keys - 1);
        char key[64];
        snprintf(key, sizeof key, "%s:%d", KEY_PREFIX, k);
        unsigned slot = cluster_key_slot(key);
        redis_server *from = redis_cluster_owner(r->cl, slot), *to = NULL;
        for (int tries = 0; from && tries < 10 && (!to || to == from); tries++) {
            to = r->cl->node[chaos_rng_range(&r->rng, 0, (uint32_t)r->cl->n - 1)];
            if (to->pid <= 0 || redis_cluster_replica_of(r->cl, to) == NULL)
                to = NULL; /* a master with a replica */
        }
        if (!from || !to || to == from)
            return false;
        fault_log(r, "fault", "migrate slot %u of key %d, %s:%d to %s:%d", slot, k, from->host,
                  from->port, to->host, to->port);
        if (redis_cluster_migrate_keys(r->cl, slot, from, to) < 0)
            return r->broken = true, false;
        pass_time(hold);
        bool ok = redis_cluster_finish_migration(r->cl, slot, from, to) == 0;
        fault_log(r, "heal", "migrate");
        return ok || (r->broken = true, false);
    }
    case FAULT_FAILOVER: {
        redis_server *m = draw_master(r);
        redis_server *rep = m ? redis_cluster_replica_of(r->cl, m) : NULL;
        if (!rep)
            return false;
        fault_log(r, "fault", "failover %s:%d takes over from %s:%d", rep->host, rep->port, m->host,
                  m->port);
        redisReply *x = redis_server_cmd(rep, "CLUSTER FAILOVER");
        bool ok = x && x->type == REDIS_REPLY_STATUS;
        if (x)
            freeReplyObject(x);
        ok = ok && wait_owner_changes(r, slot_of_master(r, m), m, 20000);
        fault_log(r, "heal", "failover");
        return ok || (r->broken = true, false);
    }
    case FAULT_MASTER_KILL:
    case FAULT_MASTER_STOP: {
        redis_server *m = draw_master(r);
        if (!m || !redis_cluster_replica_of(r->cl, m))
            return false;
        unsigned slot = slot_of_master(r, m);
        fault_log(r, "fault", "%s %s:%d", name, m->host, m->port);
        if (t == FAULT_MASTER_KILL)
            redis_server_kill(m);
        else
            redis_server_pause(m);
        bool ok = wait_owner_changes(r, slot, m, 30000);
        pass_time(hold);
        if (t == FAULT_MASTER_KILL)
            ok = redis_server_restart(m, false) == 0 && ok;
        else
            redis_server_resume(m);
        fault_log(r, "heal", "%s", name);
        return ok || (r->broken = true, false);
    }
    case FAULT_PARTITION:
        return partition(r, hold);
    case FAULT_KILL:
    case FAULT_STOP:
    case FAULT_TERM: {
        int i = (int)chaos_rng_range(&r->rng, 0, (uint32_t)r->opt.probes - 1);
        if (t == FAULT_STOP)
            hold = chaos_rng_range(&r->rng, LEASE_MS + 500, LEASE_MS + 3000);
        if (r->probe[i] <= 0)
            return false;
        fault_log(r, "fault", "%s probe %d", name, i + 1);
        if (t == FAULT_KILL) {
            test_process_kill(r->probe[i]);
            r->probe[i] = 0;
        } else if (t == FAULT_STOP) {
            test_process_signal(r->probe[i], SIGSTOP);
        } else {
            stop_probe(r, i);
        }
        pass_time(hold);
        if (t == FAULT_STOP)
            test_process_signal(r->probe[i], SIGCONT);
        else
            start_probe(r, i);
        fault_log(r, "heal", "%s", name);
        return !r->broken;
    }
    default:
        return false;
    }
}

/* Deals and injects faults until the time is up (the first round whole). */
static void run_schedule(run *r)
{
    int deck[FAULT_COUNT], size = 0, left = 0;
    for (int k = 0; k < FAULT_COUNT; k++)
        if (r->opt.fault_on[k])
            deck[size++] = k;
    uint64_t end = test_now_ms() + (uint64_t)r->opt.seconds * 1000u;
    bool first_round = true;
    while (!interrupted && !r->broken && (first_round || test_now_ms() < end)) {
        if (size == 0)
            break;
        if (left == 0) {
            for (int i = size - 1; i > 0; i--) {
                int j = (int)chaos_rng_range(&r->rng, 0, (uint32_t)i);
                int x = deck[i];
                deck[i] = deck[j];
                deck[j] = x;
            }
            left = size;
        }
        fault_type t = (fault_type)deck[--left];
        if (left == 0)
            first_round = false;
        if (inject(r, t))
            r->injected[t]++;
        else if (!r->broken)
            printf("  (%s skipped: no target)\n", fault_names[t]);
        if (!redis_cluster_wait_ok(r->cl, 60000)) {
            fprintf(stderr, "chaos_cluster: the cluster is not ok 60 s after %s\n", fault_names[t]);
            r->broken = true;
        }
        pass_time(LEASE_MS + RETRY_MS + 1000);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Splits probe i's log into DIR/key-<k>/probe-<i+1>.log, the key number
 * taken off each line; `exit` lines go to every key's. */
static bool split_log(run *r, int i)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/probe-%d.log", r->dir, i + 1);
    FILE *in = fopen(path, "r");
    if (!in)
        return false;
    FILE *out[MAX_KEYS] = {0};
    bool ok = true;
    for (int k = 0; k < r->opt.keys && ok; k++) {
        snprintf(path, sizeof path, "%s/key-%d", r->dir, k);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/key-%d/probe-%d.log", r->dir, k, i + 1);
        ok = (out[k] = fopen(path, "w")) != NULL;
    }
    char line[512];
    while (ok && fgets(line, sizeof line, in)) {
        char *end;
        long k = strtol(line, &end, 10);
        if (end != line && *end == ' ' && k >= 0 && k < r->opt.keys)
            fputs(end + 1, out[k]);
        else if (strncmp(line, "exit ", 5) == 0)
            for (int j = 0; j < r->opt.keys; j++)
                fputs(line, out[j]);
        else if (line[0] != '\n')
            fprintf(stderr, "chaos_cluster: probe %d printed '%.60s'\n", i + 1, line);
    }
    fclose(in);
    for (int k = 0; k < r->opt.keys; k++)
        if (out[k])
            ok &= fclose(out[k]) == 0;
    return ok;
}

/* The checker's rules on each key; the number of keys that failed. */
static int check_keys(run *r)
{
    checker_opts co = {.lease_ms = LEASE_MS, .retry_ms = RETRY_MS, .settle_ms = SETTLE_MS};
    char faults[PATH_MAX + 32];
    snprintf(faults, sizeof faults, "%s/faults.log", r->dir);
    int failed = 0;
    for (int k = 0; k < r->opt.keys; k++) {
        char logs[MAX_PROBES][PATH_MAX + 64];
        const char *names[MAX_PROBES];
        for (int i = 0; i < r->opt.probes; i++) {
            snprintf(logs[i], sizeof logs[i], "%s/key-%d/probe-%d.log", r->dir, k, i + 1);
            names[i] = logs[i];
        }
        char key[64];
        snprintf(key, sizeof key, "%s:%d", KEY_PREFIX, k);
        printf("\n== key %s (slot %u)\n", key, cluster_key_slot(key));
        int rc = checker_run(&co, faults, names, (size_t)r->opt.probes, stdout);
        if (rc != 0)
            failed++;
    }
    return failed;
}

int main(int argc, char **argv)
{
    run r = {0};
    if (!parse_options(argc, argv, &r.opt))
        return 2;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    r.rng = r.opt.seed;
    snprintf(r.bindir, sizeof r.bindir, "%s", test_process_self());
    char *slash = strrchr(r.bindir, '/');
    if (slash)
        *slash = '\0';
    if (r.opt.out) {
        snprintf(r.dir, sizeof r.dir, "%s", r.opt.out);
        if (mkdir(r.dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "chaos_cluster: cannot create %s: %s\n", r.dir, strerror(errno));
            return 1;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(r.dir, sizeof r.dir, "%s/leasehold-chaos-cluster-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(r.dir))
            return 1;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/faults.log", r.dir);
    r.fault_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r.fault_fd < 0)
        return 1;
    printf("chaos_cluster: %d probes x %d keys on a 3-master cluster, %u s, seed %" PRIu64
           ", logs in %s\n",
           r.opt.probes, r.opt.keys, r.opt.seconds, r.opt.seed, r.dir);
    fflush(stdout);
    redis_cluster_opts co = {0};
    const char *ns[CLUSTER_NODES], *hosts[CLUSTER_NODES];
    r.netns = r.opt.fault_on[FAULT_PARTITION];
    if (r.netns) {
        if (!chaos_net_create(&r.net, NET_PROBE(r.opt.probes)))
            return 1;
        for (int i = 0; i < CLUSTER_NODES; i++) {
            ns[i] = r.net.ns[i];
            hosts[i] = r.net.ip[i];
        }
        co.netns = ns;
        co.host = hosts;
    }
    r.cl = redis_cluster_start(&co);
    if (!r.cl) {
        if (r.netns)
            chaos_net_destroy(&r.net);
        return 1;
    }
    for (int i = 0; i < r.opt.probes; i++)
        start_probe(&r, i);
    pass_time(LEASE_MS + RETRY_MS + 3000); /* the first elections */
    run_schedule(&r);
    for (int i = 0; i < r.opt.probes; i++)
        stop_probe(&r, i);
    dprintf(r.fault_fd, "end %" PRIu64 "\n", chaos_now_ns());
    close(r.fault_fd);
    redis_cluster_stop(r.cl);
    if (r.netns)
        chaos_net_destroy(&r.net);
    printf("faults injected:");
    for (int k = 0; k < FAULT_COUNT; k++)
        if (r.opt.fault_on[k])
            printf(" %s %u", fault_names[k], r.injected[k]);
    printf("\n");
    bool split = true;
    for (int i = 0; i < r.opt.probes; i++)
        split &= split_log(&r, i);
    if (!split || r.broken || interrupted) {
        fprintf(stderr, "chaos_cluster: the run could not go on; logs in %s\n", r.dir);
        return 1;
    }
    int failed = check_keys(&r);
    printf("\nchaos_cluster: %d of %d keys failed the check%s%s\n", failed, r.opt.keys,
           failed ? "; logs in " : "", failed ? r.dir : "");
    if (!failed && !r.opt.out)
        nftw(r.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
